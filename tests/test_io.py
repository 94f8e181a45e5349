"""Readers: CSV, Parquet, folders of Parquet, and wide milestone exports."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import funnelkit as fk
from conftest import GOLDEN, GOLDEN_KW


def test_csv_parquet_and_folder_give_the_same_log(tmp_path, golden_events, golden_log):
    ref = golden_log.transitions()
    csv = fk.read_events(GOLDEN / "events.csv", **GOLDEN_KW)
    pd.testing.assert_frame_equal(csv.transitions(), ref)
    path = tmp_path / "events.parquet"
    golden_events.assign(extra=1).to_parquet(path)
    pd.testing.assert_frame_equal(fk.read_events(path, **GOLDEN_KW).transitions(), ref)
    folder = tmp_path / "parts"
    folder.mkdir()
    table = pa.Table.from_pandas(golden_events, preserve_index=False)
    pq.write_table(table.slice(0, 15), folder / "a.parquet")
    pq.write_table(table.slice(15), folder / "b.parquet")
    log = fk.read_events(folder, **GOLDEN_KW)
    pd.testing.assert_frame_equal(log.transitions(), ref)
    assert log.quality.rows_in == 31


def test_read_only_mapped_columns(tmp_path, golden_events):
    path = tmp_path / "events.parquet"
    golden_events.assign(secret=["x"] * len(golden_events)).to_parquet(path)
    log = fk.read_events(path, **GOLDEN_KW)
    assert "secret" not in log.rejects.columns


def test_read_errors(tmp_path, golden_events):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fk.read_events(tmp_path / "missing.csv", **GOLDEN_KW)
    path = tmp_path / "events.parquet"
    golden_events.to_parquet(path)
    with pytest.raises(fk.EventLogError, match=r"`owner` \(attrs\) not found.*Available columns"):
        fk.read_events(path, attrs=["owner"], **GOLDEN_KW)
    with pytest.raises(fk.EventLogError, match="unknown file type"):
        (tmp_path / "x.xlsx").write_text("")
        fk.read_events(tmp_path / "x.xlsx", **GOLDEN_KW)


def test_from_milestones_equals_long_form():
    wide = pd.DataFrame(
        {
            "opportunity_id": ["o1", "o2", "o3"],
            "owner": ["ann", "bob", "ann"],
            "lead_date": ["2025-01-01", "2025-01-02", "2025-01-03"],
            "demo_date": ["2025-01-05", None, "2025-01-09"],
            "won_date": ["2025-01-20", None, None],
            "lost_date": [None, "2025-01-04", ""],
        }
    )
    log = fk.EventLog.from_milestones(
        wide,
        deal="opportunity_id",
        stage_dates={
            "Lead": "lead_date",
            "Demo": "demo_date",
            "Won": "won_date",
            "Lost": "lost_date",
        },
        attrs=["owner"],
        won="Won",
        lost="Lost",
    )
    assert log.stages == ["Lead", "Demo"]
    d = log.deals().set_index("deal")
    assert d["outcome"].astype(str).to_dict() == {"o1": "won", "o2": "lost", "o3": "open"}
    assert d.loc["o2", "furthest_stage"] == "Lead"
    assert d.loc["o3", "owner"] == "ann"
    f = log.funnel().set_index("stage")
    assert f.loc["Lead", "reached"] == 3 and f.loc["Demo", "reached"] == 2
    with pytest.raises(fk.EventLogError, match="not found in `deals`"):
        fk.EventLog.from_milestones(wide, deal="id", stage_dates={"Lead": "lead_date"})
