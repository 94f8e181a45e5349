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


# ------------------------------------------------------------ hostile files (issue 25)
K = dict(deal="d", stage="s", time="t", won="won", lost="lost")
GOOD_ROWS = "a,Lead,2025-01-01\na,Demo,2025-01-05\na,won,2025-01-10\n"


@pytest.mark.parametrize("cell", ["", "NA", "null", "NULL", "NaN", "None", "N/A", "   ", "\t"])
def test_csv_empty_or_na_cells_are_missing_values(tmp_path, cell):
    # before: "" / "NA" ids became a phantom deal, stage "" or "null" joined the funnel
    path = tmp_path / "events.csv"
    rows = [f"{cell},Lead,2025-01-02", f"b,{cell},2025-01-03", f"c,Lead,{cell}"]
    path.write_text("d,s,t\n" + GOOD_ROWS + "\n".join(rows) + "\n")
    with pytest.raises(fk.EventLogError, match=r"column `d`: 1 rows? missing deal") as err:
        fk.read_events(path, **K)
    assert "column `s`: 1 row" in str(err.value) and "column `t`: 1 row" in str(err.value)
    assert err.value.failure_cases["row"].tolist() == [3, 4, 5]
    log = fk.read_events(path, errors="drop", **K)
    assert log.stages == ["Lead", "Demo"]
    assert log.deals()["deal"].tolist() == ["a"]
    assert log.quality.by_reason == {"missing_deal": 1, "missing_stage": 1, "missing_time": 1}
    assert log.rejects["row"].tolist() == [3, 4, 5]
    assert log.quality.rows_in == 6


def test_csv_na_values_keep_a_real_na_id(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("d,s,t\nNA,Lead,2025-01-01\nNA,won,2025-01-02\n,Lead,2025-01-03\n")
    log = fk.read_events(path, na_values=[""], errors="drop", **K)
    assert log.deals()["deal"].tolist() == ["NA"]
    assert log.quality.by_reason == {"missing_deal": 1}  # empty cells stay missing
    with pytest.raises(TypeError, match="`na_values` must be a list of strings"):
        fk.read_events(path, na_values="NA", **K)
    with pytest.raises(TypeError, match="strings only"):
        fk.read_events(path, na_values=["NA", 1], **K)


def test_csv_na_cells_in_attrs_and_amount(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "d,s,t,team,amt\na,Lead,2025-01-01,NA,N/A\na,won,2025-01-02,Red,10\nb,Lead,2025-01-01, ,\n"
    )
    log = fk.read_events(path, attrs=["team"], amount="amt", **K)
    deals = log.deals().set_index("deal")
    assert deals.loc["a", "team"] == "Red" and deals.loc["a", "amount"] == 10.0
    assert pd.isna(deals.loc["b", "team"]) and pd.isna(deals.loc["b", "amount"])


def _parquet_folder(tmp_path, *parts: pd.DataFrame):
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, part in enumerate(parts):
        part.to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "d": list("aaabb"),
            "s": ["Lead", "Demo", "won", "Lead", "lost"],
            "t": pd.to_datetime(
                ["2025-01-01", "2025-01-05", "2025-01-10", "2025-01-02", "2025-01-03"]
            ),
        }
    )


def test_csv_with_a_mapped_column_twice_in_the_header_raises(tmp_path):
    # before: the first `s` column was read, the second ignored without a word
    path = tmp_path / "dup.csv"
    path.write_text("d,s,t,s\na,Lead,2025-01-01,Demo\na,won,2025-01-02,won\n")
    with pytest.raises(
        fk.EventLogError,
        match=r"Column\(s\) `s` \(2 times\) appear more than once in the "
        r"header of `.*dup\.csv`",
    ):
        fk.read_events(path, **K)
    # a duplicated column the log does not read is fine
    path.write_text("d,s,t,x,x\na,Lead,2025-01-01,1,2\na,won,2025-01-02,1,2\n")
    assert fk.read_events(path, **K).n_deals == 1


def test_dask_engine_checks_a_csv_like_the_pandas_one(tmp_path):
    # before: a raw UnicodeDecodeError, and the first of two `s` columns read silently
    pytest.importorskip("dask.dataframe")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("d,s,t\nä,Lead,2025-01-01\nä,won,2025-01-02\n".encode("latin-1"))
    with pytest.raises(fk.EventLogError, match=r"`.*latin\.csv` is not UTF-8 text.*encoding="):
        fk.read_events(latin, engine="dask", **K)
    log = fk.read_events(latin, engine="dask", encoding="latin-1", **K)
    assert log.deals().compute()["deal"].tolist() == ["ä"]
    dup = tmp_path / "dup.csv"
    dup.write_text("d,s,t,s\na,Lead,2025-01-01,Demo\na,won,2025-01-02,won\n")
    with pytest.raises(fk.EventLogError, match=r"`s` \(2 times\) appear more than once"):
        fk.read_events(dup, engine="dask", **K)


def test_parquet_folder_mixing_aware_and_naive_times_raises(tmp_path):
    # before: the naive file was silently read as UTC
    e = _events()
    aware = e.iloc[:3].assign(t=e["t"].iloc[:3].dt.tz_localize("UTC"))
    folder = _parquet_folder(tmp_path, aware, e.iloc[3:])
    with pytest.raises(
        fk.EventLogError,
        match=r"column `t` \(time\) mixes time zones: time-zone-aware timestamps in "
        r"part-0\.parquet, naive ones in part-1\.parquet",
    ) as err:
        fk.read_events(folder, **K)
    cases = err.value.failure_cases
    assert cases.to_dict("list") == {
        "file": ["part-0.parquet", "part-1.parquet"],
        "column": ["t", "t"],
        "type": ["time-zone-aware timestamp", "naive timestamp"],
        "reason": ["mixed_timezone", "mixed_timezone"],
    }
    with pytest.raises(fk.EventLogError, match="mixes time zones"):
        fk.read_events(folder, errors="drop", **K)


def test_parquet_folder_with_different_time_zones_becomes_utc(tmp_path):
    e = _events()
    utc = e.iloc[:3].assign(t=e["t"].iloc[:3].dt.tz_localize("UTC"))
    plus2 = e.iloc[3:].assign(t=e["t"].iloc[3:].dt.tz_localize("Etc/GMT-2"))  # UTC+02:00
    log = fk.read_events(_parquet_folder(tmp_path, plus2, utc), **K)
    first = log.deals().set_index("deal")["first_event"]
    assert first["a"] == pd.Timestamp("2025-01-01", tz="UTC")
    assert first["b"] == pd.Timestamp("2025-01-01 22:00", tz="UTC")


def test_parquet_folder_with_int_and_text_ids_raises(tmp_path):
    # before: a raw ArrowInvalid "Failed to parse string: 'b' as a scalar of type int64"
    e = _events()
    folder = _parquet_folder(tmp_path, e.iloc[:3].assign(d=[1, 1, 1]), e.iloc[3:])
    with pytest.raises(
        fk.EventLogError,
        match=r"column `d` \(deal\) has different types: integer in part-0\.parquet; text in "
        r"part-1\.parquet; write every file with one type",
    ) as err:
        fk.read_events(folder, **K)
    assert set(err.value.failure_cases["reason"]) == {"mixed_types"}
    # and the other order (pyarrow would have turned 1 into "1" silently)
    folder2 = tmp_path / "other"
    folder2.mkdir()
    e.iloc[3:].to_parquet(folder2 / "part-0.parquet")
    e.iloc[:3].assign(d=[1, 1, 1]).to_parquet(folder2 / "part-1.parquet")
    with pytest.raises(fk.EventLogError, match="integer in part-1.parquet"):
        fk.read_events(folder2, **K)


@pytest.mark.parametrize(
    "first, second, words",
    [
        ("aware", "naive", r"column `t` \(time\) mixes time zones"),
        ("int_ids", "text", r"column `d` \(deal\) has different types: integer in part-0"),
        ("text", "no_stage", r"column `s` \(stage\) is missing from 1 of 2 files"),
    ],
)
def test_dask_engine_checks_a_parquet_folder_like_the_pandas_one(tmp_path, first, second, words):
    # before: dask read the folder with the first file's schema (naive times relabelled,
    # ids cast, a raw KeyError for a missing column) and gave two deals or crashed
    pytest.importorskip("dask.dataframe")
    e = _events()
    parts = {
        "aware": e.iloc[:3].assign(t=e["t"].iloc[:3].dt.tz_localize("UTC")),
        "int_ids": e.iloc[:3].assign(d=[1, 1, 1]),
        "text": e.iloc[:3],
        "naive": e.iloc[3:],
        "no_stage": e.iloc[3:].rename(columns={"s": "stage"}),
    }
    folder = _parquet_folder(tmp_path, parts[first], parts[second])
    for engine in ("pandas", "dask"):
        with pytest.raises(fk.EventLogError, match=words):
            fk.read_events(folder, engine=engine, **K)


def test_parquet_folder_with_a_column_missing_from_a_file_raises(tmp_path):
    e = _events().assign(amt=1.0)
    folder = _parquet_folder(tmp_path, e.iloc[:3], e.iloc[3:].drop(columns="amt"))
    with pytest.raises(
        fk.EventLogError,
        match=r"column `amt` \(amount\) is missing from 1 of 2 files \(part-1\.parquet\)",
    ):
        fk.read_events(folder, amount="amt", **K)
    # compatible types (int and float amounts, ms and ns times, dictionary stages) are fine
    e2 = _events()
    folder2 = tmp_path / "ok"
    folder2.mkdir()
    e2.iloc[:3].assign(amt=[1, 2, 3], t=e2["t"].iloc[:3].astype("datetime64[ms]")).to_parquet(
        folder2 / "a.parquet"
    )
    e2.iloc[3:].assign(amt=[1.5, 2.5], s=e2["s"].iloc[3:].astype("category")).to_parquet(
        folder2 / "b.parquet"
    )
    log = fk.read_events(folder2, amount="amt", **K)
    assert log.n_deals == 2 and log.deals()["amount"].tolist() == [1.0, 1.5]


def test_latin1_csv_names_the_problem_and_reads_with_encoding(tmp_path):
    # before: ArrowInvalid "In CSV column #0: CSV conversion error to string: invalid UTF8"
    path = tmp_path / "events.csv"
    path.write_bytes("d,s,t\nx,Lead,2025-01-01\nx,Démo,2025-01-03\n".encode("latin-1"))
    with pytest.raises(
        fk.EventLogError, match=r"is not UTF-8 text \(column `s`\).*encoding='latin-1'"
    ):
        fk.read_events(path, **K)
    log = fk.read_events(path, encoding="latin-1", **K)
    assert log.stages == ["Lead", "Démo"]
    with pytest.raises(ValueError, match="unknown text encoding 'klingon'"):
        fk.read_events(path, encoding="klingon", **K)
    path16 = tmp_path / "events16.csv"
    path16.write_bytes("d,s,t\nx,Lead,2025-01-01\n".encode("utf-16"))
    with pytest.raises(fk.EventLogError, match="UTF-16 text, not UTF-8"):
        fk.read_events(path16, **K)
    assert fk.read_events(path16, encoding="utf-16", **K).n_deals == 1


def test_unparseable_csv_names_the_file(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("d,s,t\na,Lead,2025-01-01,extra\n")
    with pytest.raises(fk.EventLogError, match=r"events\.csv` could not be read as CSV"):
        fk.read_events(path, **K)


def test_corrupt_parquet_and_empty_folder_name_the_input(tmp_path):
    bad = tmp_path / "events.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(fk.EventLogError, match=r"events\.parquet` could not be read as Parquet"):
        fk.read_events(bad, **K)
    folder = tmp_path / "parts"
    folder.mkdir()
    with pytest.raises(fk.EventLogError, match="folder without Parquet files"):
        fk.read_events(folder, **K)
    _events().to_parquet(folder / "a.parquet")
    (folder / "b.parquet").write_bytes(b"junk")
    with pytest.raises(fk.EventLogError, match=r"could not be read as Parquet.*b\.parquet"):
        fk.read_events(folder, **K)
