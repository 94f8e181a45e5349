"""Wide CRM exports (`EventLog.from_milestones`): every deal accounted for, outcomes from the
status column, day-first dates with `date_format`, errors in the caller's columns and deals.
The fixture `tests/data/crm_wide.csv` mirrors the public "CRM sales opportunities" shape."""

from __future__ import annotations

import inspect
import pydoc
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk

DATA = Path(__file__).parent / "data"
WIDE = DATA / "crm_wide.csv"
KW = dict(
    deal="opportunity_id",
    stage_dates={"Engaging": "engage_date"},
    status="deal_stage",
    closed_at="close_date",
    stages=["Prospecting", "Engaging"],
    won="Won",
    lost="Lost",
    amount="close_value",
    attrs=["sales_agent", "product"],
)
DMY = "%d-%m-%y"


@pytest.fixture(scope="module")
def wide() -> pd.DataFrame:
    return pd.read_csv(WIDE)


def _dates(col: pd.Series) -> pd.Series:
    return pd.to_datetime(col, format=DMY, errors="coerce")


def test_fixture_is_current(wide):
    sys.path.insert(0, str(DATA))
    try:
        from make_crm_wide import BROKEN, make
    finally:
        sys.path.remove(str(DATA))
    assert make().to_csv(index=False) == WIDE.read_text()
    assert len(wide) == 600 and len(BROKEN) == 5


def test_every_deal_is_in_the_log_or_rejected(wide):
    log = fk.EventLog.from_milestones(wide, date_format=DMY, errors="drop", **KW)
    ids = set(wide["opportunity_id"])
    in_log = set(log.deals()["deal"])
    rej = log.rejects
    left_out = set(rej["opportunity_id"]) - in_log
    assert in_log | left_out == ids and not in_log & left_out
    q = log.quality
    assert (q.rows_in, q.deals, q.rows_dropped) == (600, len(in_log), len(left_out))
    assert q.rows_in == q.rows_used + q.rows_dropped and q.source == "deals"
    # the deals still prospecting have no date at all: rejected as such, not lost silently
    prospecting = set(wide.loc[wide["deal_stage"] == "Prospecting", "opportunity_id"])
    no_dates = rej[rej["reason"] == "no_dates"]
    assert set(no_dates["opportunity_id"]) == prospecting and len(prospecting) == 40
    assert (no_dates["column"] == "engage_date, close_date").all()
    # won/lost deals whose close date is missing or unreadable are left out whole
    assert left_out == prospecting | {"OPP00011", "OPP00057", "OPP00301", "OPP00302"}
    # a won deal with an unreadable engage date stays (its outcome is dated)
    assert "OPP00123" in in_log
    assert rej.loc[
        rej["opportunity_id"] == "OPP00123", ["column", "value", "reason"]
    ].values.tolist() == [["engage_date", "soon", "unparseable_time"]]


def test_quality_counts_rows_of_the_users_table(wide):
    log = fk.EventLog.from_milestones(wide, date_format=DMY, errors="drop", **KW)
    q = log.quality
    assert q.by_column == {
        "engage_date": {"unparseable_time": 1},
        "close_date": {"unparseable_time": 2, "missing_time": 2},
        "engage_date, close_date": {"no_dates": 40},
    }
    assert q.by_reason == {"missing_time": 2, "unparseable_time": 3, "no_dates": 40}
    assert sum(q.by_reason.values()) == len(log.rejects)
    text = str(q)
    assert "600 in = 556 in the log + 44 left out" in text
    assert "rejected in `close_date`: unparseable_time 2, missing_time 2" in text
    assert "`ts`" not in text and "15," not in text
    frame = q.to_frame().set_index("item")["count"]
    assert frame["rows_in"] == 600 and frame["close_date: missing_time"] == 2
    assert "556 deals" in repr(log) and f"{log.n_events:,} events" in repr(log)


def test_outcomes_come_from_the_status_column(wide):
    log = fk.EventLog.from_milestones(
        wide, date_format=DMY, errors="drop", created_at="created_on", **KW
    )
    d = log.deals().set_index("deal")
    src = wide.set_index("opportunity_id").loc[d.index]
    expect = src["deal_stage"].map(
        {"Won": "won", "Lost": "lost", "Engaging": "open", "Prospecting": "open"}
    )
    assert (d["outcome"].astype(str) == expect).all()
    assert (d["outcome"] == "won").sum() == 292 and (d["outcome"] == "lost").sum() == 169
    # with created_at every deal entered the first stage then: prospecting deals are in
    assert log.n_deals == 596 and log.quality.rows_dropped == 4
    # dates read day-first: the cycle runs from creation to the close date
    closed = d["outcome"].isin(["won", "lost"])
    cycle = _dates(src["close_date"]) - _dates(src["created_on"])
    pd.testing.assert_series_equal(
        d.loc[closed, "cycle_time"], cycle[closed], check_names=False, check_dtype=False
    )
    f = log.funnel().set_index("stage")
    assert f.loc["Prospecting", "reached"] == 596
    assert f.loc["Engaging", "reached"] == (src["deal_stage"] != "Prospecting").sum()


def test_date_format_reads_day_first_dates(wide):
    log = fk.EventLog.from_milestones(wide, date_format=DMY, errors="drop", **KW)
    v = log.visits()
    row = v[v["deal"] == "OPP00000"]
    assert row["entered"].tolist() == [pd.Timestamp("2023-04-02")]  # engage 02-04-23
    assert row["next_stage"].tolist() == ["Won"]
    assert row["dwell"].tolist() == [pd.Timedelta(days=21)]  # closed 23-04-23
    # one format per column: ISO engage dates beside day-first close dates
    iso = wide.assign(engage_date=_dates(wide["engage_date"]).dt.strftime("%Y-%m-%d"))
    per_col = fk.EventLog.from_milestones(
        iso, date_format={"close_date": DMY}, errors="drop", **KW
    )
    pd.testing.assert_frame_equal(per_col.deals(), log.deals().loc[per_col.deals().index])


def test_without_date_format_day_first_dates_fail_loudly_in_the_users_words(wide):
    with pytest.raises(fk.EventLogError) as info:
        fk.EventLog.from_milestones(wide, **KW)
    msg = str(info.value)
    engage = int((wide["engage_date"].notna()).sum())
    closed = int(wide["close_date"].notna().sum())
    assert msg.startswith("600 of 600 deals (rows of `deals`) have invalid values:")
    assert f"column `engage_date`: {engage:,} deals with an unparseable date" in msg
    assert f"column `close_date`: {closed:,} deals with an unparseable date" in msg
    assert "date_format='%d-%m-%y'" in msg
    assert "columns `engage_date`, `close_date`: 40 deals with no date for any stage" in msg
    assert "`ts`" not in msg and "input rows" not in msg
    cases = info.value.failure_cases
    assert {"row", "opportunity_id", "column", "value", "reason"} <= set(cases.columns)
    assert cases["row"].between(0, 599).all()


def test_status_rules(wide):
    small = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e", "f"],
            "status": ["Engaging", "Won", "Frozen", None, "Prospecting", "Lost"],
            "created": ["2025-01-01"] * 6,
            "engage": [None, "2025-01-03", "2025-01-04", "2025-01-05", None, "2025-01-02"],
            "won": [None, None, None, None, None, None],
            "closed": [None, "2025-01-09", None, None, "2025-03-01", "2025-01-08"],
        }
    )
    kw = dict(deal="id", stage_dates={"Engaging": "engage"}, status="status", won="Won",
              lost="Lost", stages=["Prospecting", "Engaging"])  # fmt: skip
    with pytest.raises(fk.EventLogError) as info:
        fk.EventLog.from_milestones(small, closed_at="closed", created_at="created", **kw)
    msg = str(info.value)
    assert "3 of 6 deals" in msg
    assert "column `engage`: 1 deal in this stage by `status` with no date" in msg
    assert "column `status`: 1 deal with a status that is no stage or outcome" in msg
    assert "values ['Frozen']" in msg and "column `status`: 1 deal with no status" in msg
    log = fk.EventLog.from_milestones(
        small, closed_at="closed", created_at="created", errors="drop", **kw
    )
    d = log.deals().set_index("deal")
    # a deal whose status cannot be honoured is left out whole, not kept as open
    assert sorted(d.index) == ["b", "e", "f"]
    assert d["outcome"].astype(str).to_dict() == {"b": "won", "e": "open", "f": "lost"}
    # the expected close date of an open deal (e) is not an event
    assert d.loc["e", "last_event"] == pd.Timestamp("2025-01-01")
    assert log.rejects["reason"].tolist() == ["missing_time", "unknown_stage", "missing_stage"]
    # without closed_at the outcome's date comes from a stage_dates column of its name
    with pytest.raises(fk.EventLogError, match="won or lost with no date for it"):
        fk.EventLog.from_milestones(small.iloc[[1]], **kw)
    both = {"Engaging": "engage", "Won": "closed"}
    one = fk.EventLog.from_milestones(small.iloc[[1]], **{**kw, "stage_dates": both})
    assert one.quality.won == 1
    with pytest.raises(ValueError, match="`closed_at`='closed' needs `status`"):
        fk.EventLog.from_milestones(small, **{**kw, "status": None}, closed_at="closed")


def test_no_date_anywhere_is_an_error_not_a_silent_drop():
    wide = pd.DataFrame({"id": ["a", "b"], "lead": ["2025-01-01", None]})
    with pytest.raises(fk.EventLogError, match=r"columns `lead`: 1 deal with no date"):
        fk.EventLog.from_milestones(wide, deal="id", stage_dates={"Lead": "lead"})
    with pytest.raises(fk.EventLogError, match="2 of 2 deals"):
        fk.EventLog.from_milestones(
            wide.assign(lead=None), deal="id", stage_dates={"Lead": "lead"}, errors="drop"
        )


def test_after_as_of_and_collapsed_values_map_back_to_the_users_rows():
    wide = pd.DataFrame(
        {
            "id": ["a", "b"],
            "lead": ["2025-01-01", "2025-01-02"],
            "won_date": ["2025-01-05", "2025-03-01"],
            "status": ["Won", "Won"],
        }
    )
    kw = dict(deal="id", stage_dates={"Lead": "lead", "Won": "won_date"}, won="Won", lost=None)
    with pytest.raises(fk.EventLogError, match=r"column `won_date`: 1 deal: after as of"):
        fk.EventLog.from_milestones(wide, as_of="2025-02-01", **kw)
    log = fk.EventLog.from_milestones(
        wide, status="status", closed_at="won_date", as_of="2025-02-01", errors="drop", **kw
    )
    rej = log.rejects
    assert rej[["row", "id", "column", "reason"]].values.tolist() == [
        [0, "a", "won_date", "terminal_run"],  # the same date read twice: one outcome
        [1, "b", "won_date", "after_as_of"],
        [1, "b", "won_date", "after_as_of"],
    ]
    assert log.quality.rows_used == 2 and log.quality.won == 1


def test_help_shows_the_signature_and_docstring():
    sig = inspect.signature(fk.EventLog.from_milestones)
    params = list(sig.parameters)
    assert params[:7] == [
        "deals", "deal", "stage_dates", "status", "closed_at", "created_at", "date_format",
    ]  # fmt: skip
    assert {"stages", "won", "lost", "amount", "attrs", "as_of", "stale_after", "errors",
            "stage_map"} <= set(params)  # fmt: skip
    assert all(sig.parameters[p].kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    text = pydoc.render_doc(fk.EventLog.from_milestones, renderer=pydoc.plaintext)
    assert "from_milestones(deals: 'pd.DataFrame', *, deal: 'str' = 'deal_id', stage_dates" in text
    assert "**kwargs" not in text and "closed_at : str, optional" in text
    assert inspect.signature(fk.io.from_milestones).parameters.keys() == sig.parameters.keys()


def test_help_of_the_class_shows_its_real_signature():
    """help(fk.EventLog) showed ``EventLog(events=None, *args, **kwargs)`` (its __new__,
    which sends dask frames to DaskEventLog): the keywords, date_format among them, were
    only in the docstring."""
    sig = inspect.signature(fk.EventLog)
    assert list(sig.parameters)[:4] == ["events", "deal", "stage", "time"]
    assert {"date_format", "errors", "stale_after", "visit_attrs"} <= set(sig.parameters)
    assert sig.parameters["date_format"].default is None
    text = pydoc.render_doc(fk.EventLog, renderer=pydoc.plaintext)
    assert "EventLog(events: 'pd.DataFrame | pa.Table', *, deal: 'str' = 'deal_id'" in text
    first = next(line for line in text.splitlines() if "EventLog(events" in line)
    assert "*args" not in first and "date_format: 'str | None' = None" in first


def test_long_logs_take_date_format(tmp_path):
    p = tmp_path / "long.csv"
    p.write_text("deal,stage,ts\na,A,\nb,A,01-02-23\nc,A,\nd,B,13-02-23\ne,B,2023-02-13\n")
    kw = dict(deal="deal", stage="stage", time="ts")
    # empty cells are missing times, the rest unparseable as ISO 8601 (from pandas and files)
    for read in (lambda **k: fk.EventLog(pd.read_csv(p), **k), lambda **k: fk.read_events(p, **k)):
        with pytest.raises(fk.EventLogError) as info:
            read(**kw)
        msg = str(info.value)
        assert "2 rows missing time" in msg and "2 rows unparseable time" in msg
        assert "date_format='%d-%m-%y'" in msg
        log = read(date_format=DMY, errors="drop", **kw)
        assert log.quality.by_reason == {"missing_time": 2, "unparseable_time": 1}
        d = log.deals().set_index("deal")
        assert d.loc["b", "first_event"] == pd.Timestamp("2023-02-01")
        assert d.loc["d", "first_event"] == pd.Timestamp("2023-02-13")
    with pytest.raises(fk.EventLogError, match=r"must match date_format='%d-%m-%y'"):
        fk.read_events(p, date_format=DMY, **kw)
    with pytest.raises(TypeError, match="`date_format`"):
        fk.read_events(p, date_format=1, **kw)
    with pytest.raises(ValueError, match="no % directive"):
        fk.read_events(p, date_format="dd-mm-yy", **kw)


def test_aware_and_naive_columns_do_not_mix():
    wide = pd.DataFrame(
        {
            "id": ["a", "b"],
            "lead": ["2025-01-01T00:00Z", "2025-01-02T00:00Z"],
            "demo": ["2025-01-03", np.nan],
        }  # fmt: skip
    )
    with pytest.raises(fk.EventLogError, match="column `demo`: 1 deal: mixed timezone"):
        fk.EventLog.from_milestones(wide, deal="id", stage_dates={"Lead": "lead", "Demo": "demo"})


def test_wide_log_analyses_equal_the_same_events_given_long():
    wide = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "status": ["Won", "Lost", "Engaging", "Won"],
            "created": ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-01"],
            "engage": ["2025-03-01", "2025-01-05", "2025-01-06", "2025-01-09"],
            "closed": ["2025-01-05", "2025-02-01", "2025-03-01", "2025-01-20"],
        }
    )
    kw = dict(stages=["New", "Engaging"], won="Won", lost="Lost", stale_after="30D")
    log = fk.EventLog.from_milestones(
        wide, deal="id", stage_dates={"Engaging": "engage"}, status="status",
        closed_at="closed", created_at="created", **kw,
    )  # fmt: skip
    long = pd.DataFrame(
        [("a", "New", "2025-01-01"), ("a", "Won", "2025-01-05"), ("a", "Engaging", "2025-03-01"),
         ("b", "New", "2025-01-02"), ("b", "Engaging", "2025-01-05"), ("b", "Lost", "2025-02-01"),
         ("c", "New", "2025-01-03"), ("c", "Engaging", "2025-01-06"),
         ("d", "New", "2025-01-01"), ("d", "Engaging", "2025-01-09"), ("d", "Won", "2025-01-20")],
        columns=["id", "stage", "ts"],
    )  # fmt: skip
    ref = fk.EventLog(long, deal="id", stage="stage", time="ts", **kw)
    pd.testing.assert_frame_equal(log.funnel(), ref.funnel())
    pd.testing.assert_frame_equal(log.deals(), ref.deals())
    # a won close date before the engage date: the deal was reopened (a's won is removed)
    assert log.rejects[["id", "column", "reason"]].values.tolist() == [
        ["a", "closed", "reopened_terminal"]
    ]
    # the removed event is still activity: on 2 February deal a was last active on
    # 5 January (28 days), so it is not stale — as in the long log
    moved = log.movement("2025-01-04", "2025-02-02")
    pd.testing.assert_frame_equal(moved, ref.movement("2025-01-04", "2025-02-02"))
    assert moved.set_index("category").loc["stale", "deals"] == 0


def test_date_format_on_the_dask_engine_equals_in_memory():
    dd = pytest.importorskip("dask.dataframe")
    df = pd.DataFrame(
        {
            "deal": list("aabbc"),
            "stage": ["A", "B", "A", "B", "A"],
            "ts": ["01-02-23", "05-02-23", "03-02-23", "", "31-01-23"],
        }
    )
    kw = dict(deal="deal", stage="stage", time="ts", date_format=DMY, errors="drop")
    ref = fk.EventLog(df, **kw)
    dist = fk.EventLog(dd.from_pandas(df, npartitions=2), **kw)
    assert ref.quality.by_reason == dist.quality.by_reason == {"missing_time": 1}
    pd.testing.assert_frame_equal(ref.funnel(), dist.funnel())


def test_read_events_reads_a_wide_export_from_csv_and_parquet(wide, tmp_path):
    kw = {**KW, "date_format": DMY, "errors": "drop"}
    ref = fk.EventLog.from_milestones(wide, **kw)
    path = tmp_path / "crm.parquet"
    wide.to_parquet(path)
    for source in (WIDE, path):
        log = fk.read_events(source, **kw)
        pd.testing.assert_frame_equal(log.funnel(), ref.funnel())
        assert log.quality.by_column == ref.quality.by_column
        assert log.rejects["opportunity_id"].tolist() == ref.rejects["opportunity_id"].tolist()
    with pytest.raises(fk.EventLogError, match=r"`nope` \(status\) not found"):
        fk.read_events(WIDE, **{**kw, "status": "nope"})
