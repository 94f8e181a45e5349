"""EventLog: input rules of DESIGN §1, errors, rejects and the quality report."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import funnelkit as fk
from conftest import GOLDEN_KW

KW = dict(deal="deal", stage="stage", time="ts", won="W", lost=["L1", "L2"])


def ev(rows, **extra):
    df = pd.DataFrame(rows, columns=["deal", "stage", "ts"])
    for k, v in extra.items():
        df[k] = v
    return df


# ---------------------------------------------------------------- errors
def test_missing_column_lists_available():
    df = ev([["a", "A", "2025-01-01"]])
    with pytest.raises(
        fk.EventLogError,
        match=r"`deal_id` \(deal\) not found.*Available columns: \['deal', 'stage', 'ts'\]",
    ):
        fk.EventLog(df)


def test_not_a_dataframe():
    with pytest.raises(TypeError, match="pandas DataFrame, a pyarrow Table or a dask DataFrame"):
        fk.EventLog([1, 2, 3])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rows", "reason", "column"),
    [
        ([[None, "A", "2025-01-01"]], "missing_deal", "deal"),
        ([["a", None, "2025-01-01"]], "missing_stage", "stage"),
        ([["a", "A", None]], "missing_time", "ts"),
        ([["a", "A", "yesterday"]], "unparseable_time", "ts"),
        ([["a", "X", "2025-01-01"]], "unknown_stage", "stage"),
    ],
)
def test_bad_rows_raise_with_failure_cases(rows, reason, column):
    good = [["b", "A", "2025-01-01"], ["b", "B", "2025-01-03"]]
    df = ev(good + rows)
    with pytest.raises(fk.EventLogError) as info:
        fk.EventLog(df, stages=["A", "B"], **KW)
    msg = str(info.value)
    assert f"column `{column}`" in msg
    assert "1 rows" in msg and "errors='drop'" in msg
    fc = info.value.failure_cases
    assert fc["row"].tolist() == [2]
    assert fc["reason"].tolist() == [reason]
    # under drop the log is built from the good rows and the bad row is in rejects
    log = fk.EventLog(df, stages=["A", "B"], errors="drop", **KW)
    assert log.rejects["row"].tolist() == [2]
    assert log.rejects["reason"].tolist() == [reason]
    assert log.quality.rows_dropped == 1
    assert log.quality.rows_used == 2


def test_unknown_stage_names_them():
    df = ev([["a", "A", "2025-01-01"], ["a", "Zed", "2025-01-02"], ["b", "Q", "2025-01-02"]])
    with pytest.raises(fk.EventLogError, match=r"stages \['Q', 'Zed'\].*stage_map"):
        fk.EventLog(df, stages=["A"], **KW)


def test_events_after_as_of():
    df = ev([["a", "A", "2025-01-01"], ["a", "B", "2025-03-01"]])
    with pytest.raises(fk.EventLogError, match="after_as_of|after as of"):
        fk.EventLog(df, as_of="2025-02-01", **KW)
    log = fk.EventLog(df, as_of="2025-02-01", errors="drop", **KW)
    assert log.rejects["reason"].tolist() == ["after_as_of"]
    assert log.as_of == pd.Timestamp("2025-02-01")


def test_conflicting_outcome():
    df = ev(
        [
            ["a", "A", "2025-01-01"],
            ["a", "W", "2025-01-02"],
            ["a", "L1", "2025-01-03"],
            ["b", "A", "2025-01-01"],
            ["b", "W", "2025-01-05"],
        ]
    )
    with pytest.raises(fk.EventLogError, match=r"conflicting outcome.*deals \['a'\]"):
        fk.EventLog(df, **KW)
    log = fk.EventLog(df, errors="drop", **KW)
    assert log.n_deals == 1
    assert sorted(log.rejects["row"]) == [0, 1, 2]
    assert set(log.rejects["reason"]) == {"conflicting_outcome"}
    q = log.quality
    assert q.rows_in == q.rows_used + q.rows_rejected


def test_won_and_lost_overlap():
    with pytest.raises(fk.EventLogError, match="both `won` and `lost`"):
        fk.EventLog(
            ev([["a", "A", "2025-01-01"]]),
            deal="deal",
            stage="stage",
            time="ts",
            won="X",
            lost="X",
        )


def test_all_rows_bad():
    with pytest.raises(fk.EventLogError, match="No usable events"):
        fk.EventLog(ev([["a", "A", "nope"]]), errors="drop", **KW)


def test_bad_parameters():
    df = ev([["a", "A", "2025-01-01"]])
    with pytest.raises(fk.EventLogError, match="`errors` must be"):
        fk.EventLog(df, errors="ignore", **KW)  # type: ignore[arg-type]
    with pytest.raises(fk.EventLogError, match="`stale_after`"):
        fk.EventLog(df, stale_after="soon", **KW)
    with pytest.raises(fk.EventLogError, match="terminal stages"):
        fk.EventLog(df, stages=["A", "W"], **KW)
    with pytest.raises(fk.EventLogError, match="more than once"):
        fk.EventLog(df, stages=["A", "A"], **KW)


# ---------------------------------------------------------------- time zones and parsing
def test_mixed_offsets_become_utc():
    # a deal crossing the DST change in Amsterdam: +01:00 then +02:00
    df = ev(
        [
            ["a", "A", "2025-03-29 10:00:00+01:00"],
            ["a", "B", "2025-03-31 10:00:00+02:00"],
            ["a", "W", "2025-04-01T08:00:00Z"],
        ]
    )
    log = fk.EventLog(df, **KW)
    v = log.visits()
    assert str(v["entered"].dt.tz) == "UTC"
    assert v["entered"].tolist() == [
        pd.Timestamp("2025-03-29 09:00", tz="UTC"),
        pd.Timestamp("2025-03-31 08:00", tz="UTC"),
    ]
    assert v["dwell"].tolist() == [pd.Timedelta(hours=47), pd.Timedelta(days=1)]


def test_aware_datetime_column_and_naive_as_of():
    ts = pd.to_datetime(["2025-03-29 10:00", "2025-03-31 10:00"]).tz_localize("Europe/Amsterdam")
    df = pd.DataFrame({"deal": ["a", "a"], "stage": ["A", "B"], "ts": ts})
    log = fk.EventLog(df, as_of="2025-04-01", **KW)
    assert log.as_of == pd.Timestamp("2025-04-01", tz="UTC")
    assert log.visits()["dwell"].iloc[0] == pd.Timedelta(hours=47)


def test_naive_mixed_with_aware_is_an_error():
    df = ev(
        [
            ["a", "A", "2025-01-01 10:00+01:00"],
            ["a", "B", "2025-01-02 10:00+01:00"],
            ["a", "C", "2025-01-03 10:00"],
        ]
    )
    with pytest.raises(fk.EventLogError, match="mix naive and time-zone-aware"):
        fk.EventLog(df, **KW)
    log = fk.EventLog(df, errors="drop", **KW)
    assert log.rejects["reason"].tolist() == ["mixed_timezone"]
    assert log.rejects["row"].tolist() == [2]


def test_naive_object_datetimes_mixed_with_aware():
    import datetime as dt

    vals = [
        dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
        dt.datetime(2025, 1, 2),
        dt.datetime(2025, 1, 3, tzinfo=dt.timezone.utc),
    ]
    df = pd.DataFrame(
        {"deal": ["a"] * 3, "stage": ["A", "B", "C"], "ts": pd.Series(vals, dtype=object)}
    )
    with pytest.raises(fk.EventLogError, match="mixed timezone"):
        fk.EventLog(df, **KW)


def test_iso_strings_of_mixed_precision():
    df = ev(
        [
            ["a", "A", "2025-01-07"],
            ["a", "B", "2025-01-07 09:00"],
            ["a", "C", "2025-01-07T09:30:15.5"],
        ]
    )
    log = fk.EventLog(df, **KW)
    assert log.visits()["dwell"].tolist()[:2] == [
        pd.Timedelta(hours=9),
        pd.Timedelta(minutes=30, seconds=15.5),
    ]


def test_as_of_with_tz_on_naive_log():
    with pytest.raises(fk.EventLogError, match="has a time zone"):
        fk.EventLog(ev([["a", "A", "2025-01-01"]]), as_of="2025-02-01T00:00Z", **KW)


# ---------------------------------------------------------------- path rules
def test_ties_terminal_last_then_declared_order_then_input_order():
    df = ev(
        [
            ["a", "W", "2025-01-02"],
            ["a", "B", "2025-01-01"],
            ["a", "A", "2025-01-01"],
            ["a", "C", "2025-01-02"],
        ]
    )
    log = fk.EventLog(df, stages=["A", "B", "C"], **KW)
    assert log.visits()["stage"].astype(str).tolist() == ["A", "B", "C"]
    assert log.deals()["outcome"].tolist() == ["won"]
    assert log.quality.unresolved_ties == 0
    # without a declared order input order decides, and the tie is counted
    log2 = fk.EventLog(df, **KW)
    assert log2.visits()["stage"].astype(str).tolist() == ["B", "A", "C"]
    assert log2.quality.unresolved_ties == 1


def test_reopened_and_terminal_runs():
    df = ev(
        [
            ["a", "A", "2025-01-01"],
            ["a", "L1", "2025-01-02"],
            ["a", "B", "2025-01-03"],
            ["a", "W", "2025-01-04"],
            ["a", "W", "2025-01-05"],
        ]
    )
    log = fk.EventLog(df, **KW)
    d = log.deals().iloc[0]
    assert d["outcome"] == "won" and d["reopened"]
    assert d["cycle_time"] == pd.Timedelta(days=3)
    assert d["last_event"] == pd.Timestamp("2025-01-05")
    assert dict(zip(log.rejects["row"], log.rejects["reason"], strict=False)) == {
        1: "reopened_terminal",
        4: "terminal_run",
    }


def test_several_won_names_collapse_into_first():
    df = ev([["a", "A", "2025-01-01"], ["a", "W2", "2025-01-03"], ["a", "W1", "2025-01-03"]])
    log = fk.EventLog(df, deal="deal", stage="stage", time="ts", won=["W1", "W2"], lost=None)
    assert log.deals()["outcome_stage"].tolist() == ["W2"]  # input order among tied terminals
    assert log.rejects["reason"].tolist() == ["terminal_run"]


def test_only_terminal_event_and_stale():
    df = ev([["a", "W", "2025-01-01"], ["b", "A", "2025-01-01"], ["c", "A", "2025-02-20"]])
    log = fk.EventLog(df, stale_after="30D", as_of="2025-03-01", **KW)
    d = log.deals().set_index("deal")
    assert d.loc["a", "outcome"] == "won" and pd.isna(d.loc["a", "furthest_stage"])
    assert d.loc["b", "outcome"] == "stale" and d.loc["c", "outcome"] == "open"


def test_stale_is_strictly_more_than():
    df = ev([["a", "A", "2025-01-30"]])
    log = fk.EventLog(df, stale_after="30D", as_of="2025-03-01", **KW)
    assert log.deals()["outcome"].tolist() == ["open"]  # exactly 30 days: not stale


def test_relogged_stage_counts_as_activity_for_stale():
    df = ev([["a", "A", "2025-01-01"], ["a", "A", "2025-02-15"]])
    log = fk.EventLog(df, stale_after="30D", as_of="2025-03-01", **KW)
    assert log.deals()["outcome"].tolist() == ["open"]
    assert log.visits()["dwell"].tolist() == [pd.Timedelta(days=59)]


def test_stage_map_merges_names():
    df = ev(
        [
            ["a", "Discovery Call", "2025-01-01"],
            ["a", "Discovery", "2025-01-02"],
            ["a", "Demo", "2025-01-03"],
        ]
    )
    log = fk.EventLog(
        df, stage_map={"Discovery Call": "Discovery"}, stages=["Discovery", "Demo"], **KW
    )
    assert log.visits()["stage"].astype(str).tolist() == ["Discovery", "Demo"]
    assert log.rejects["reason"].tolist() == ["repeat"]


def test_inferred_order_is_reported():
    df = ev(
        [
            ["a", "B", "2025-01-02"],
            ["a", "A", "2025-01-01"],
            ["b", "A", "2025-01-01"],
            ["b", "C", "2025-01-05"],
            ["c", "B", "2025-01-01"],
            ["c", "C", "2025-01-02"],
        ]
    )
    log = fk.EventLog(df, **KW)
    assert log.stages == ["A", "B", "C"]
    assert log.quality.stage_order_inferred
    assert any("inferred" in w for w in log.quality.warnings)


def test_attrs_and_amount_first_non_null_value():
    df = ev(
        [
            ["a", "A", "2025-01-02"],
            ["a", "B", "2025-01-01"],
            ["a", "C", "2025-01-03"],
            ["b", "A", "2025-01-01"],
        ],
        owner=["bob", None, "carol", "dan"],
        amount=[200.0, np.nan, 100.0, np.nan],
    )
    log = fk.EventLog(df, amount="amount", attrs=["owner"], stages=["A", "B", "C"], **KW)
    d = log.deals().set_index("deal")
    # a: first event in time order is B (owner null, amount null) → next is A
    assert d.loc["a", "owner"] == "bob" and d.loc["a", "amount"] == 200.0
    assert log.quality.attr_changes == {"amount": 1, "owner": 1}
    assert log.quality.deals_without_amount == 1


def test_integer_and_string_ids_give_the_same_log(golden_events):
    as_int = golden_events.assign(deal=golden_events["deal"].str[1:].astype(int))
    a = fk.EventLog(golden_events, **GOLDEN_KW).funnel()
    b = fk.EventLog(as_int, **GOLDEN_KW).funnel()
    pd.testing.assert_frame_equal(a, b)


def test_pyarrow_table_input(golden_events):
    t = pa.Table.from_pandas(golden_events)
    a = fk.EventLog(golden_events, **GOLDEN_KW)
    b = fk.EventLog(t, **GOLDEN_KW)
    pd.testing.assert_frame_equal(a.transitions(), b.transitions())
    assert b.rejects["reason"].tolist() == a.rejects["reason"].tolist()


def test_categorical_stage_and_variable_width_ids(golden_events):
    df = golden_events.assign(
        stage=golden_events["stage"].astype("category"),
        deal=golden_events["deal"].map(lambda d: d * int(d[1:])),
    )
    log = fk.EventLog(df, **GOLDEN_KW)
    assert log.quality.rows_used == 27


def test_quality_accounts_for_every_row_and_deal(golden_log):
    q = golden_log.quality
    assert q.rows_in == q.rows_used + q.rows_dropped + q.rows_removed + q.rows_collapsed
    assert q.deals == q.won + q.lost + q.stale + q.open
    f = q.to_frame()
    assert set(f.columns) == {"section", "item", "count"}
    assert f.set_index("item").loc["rows_in", "count"] == 31
    assert "31 in" in str(q)
    assert "funnelkit" in q._repr_html_()


def test_repr_html_escapes_stage_names():
    df = ev([["a", "<script>alert(1)</script>", "2025-01-01"]])
    log = fk.EventLog(df, **KW)
    assert "<script>" not in log._repr_html_()
    assert "&lt;script&gt;" in log._repr_html_()
    assert "1 deals" in repr(log)


class FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return 1


def test_allocator_is_left_alone_by_default(golden_events, monkeypatch):
    """A library is a guest: no mallopt and no numpy switch unless the user opts in."""
    from funnelkit import _memory

    monkeypatch.delenv("FUNNELKIT_MALLOC", raising=False)
    libc = FakeLibc()
    monkeypatch.setattr(_memory, "_LIBC", libc)
    flips = []
    monkeypatch.setattr(_memory, "_SET", lambda on: flips.append(on) or True)
    log = fk.EventLog(golden_events, **GOLDEN_KW)
    log.transitions(), log.funnel(), log.dwell()
    assert libc.calls == [] and flips == [] and _memory._depth == 0


@pytest.mark.parametrize("how", ["block", "env"])
def test_allocator_switches_when_opted_in_are_set_once_and_restored(
    golden_events, monkeypatch, how
):
    from funnelkit import _memory

    monkeypatch.delenv("FUNNELKIT_MALLOC", raising=False)
    libc = FakeLibc()
    monkeypatch.setattr(_memory, "_LIBC", libc)
    hot = [(-3, _memory._HOT_MMAP), (-1, _memory._HOT_TRIM)]
    settled = [(-3, _memory._SETTLED_MMAP), (-1, _memory._SETTLED_TRIM)]
    if how == "env":
        monkeypatch.setenv("FUNNELKIT_MALLOC", "1")
        opt_in = contextlib.nullcontext()
    else:
        opt_in = fk.tuned_allocator()
    with opt_in:
        log = fk.EventLog(golden_events, **GOLDEN_KW)
        log.transitions()  # nested: transitions computes the visits inside
    assert libc.calls == (hot + settled) * 2  # once for the build, once for transitions
    assert _memory._depth == 0

    @_memory.hot_path
    def fails():
        raise RuntimeError("boom")

    libc.calls.clear()
    with fk.tuned_allocator(), pytest.raises(RuntimeError):
        fails()
    assert libc.calls == hot + settled and _memory._depth == 0
    libc.calls.clear()
    if how == "block":
        fails_outside = pytest.raises(RuntimeError)
        with fails_outside:
            fails()
        assert libc.calls == []  # the block has ended: left alone again


def test_numpy_setting_restored_to_its_previous_value_across_threads(monkeypatch):
    """The numpy switch is flipped and restored under the lock, once for all threads, to
    the value it had before (not to a constant)."""
    import threading

    from funnelkit import _memory

    monkeypatch.setattr(_memory, "_LIBC", None)
    state = {"on": None}

    def fake_set(on):
        before, state["on"] = state["on"], on
        return before

    monkeypatch.setattr(_memory, "_SET", fake_set)
    barrier = threading.Barrier(4)
    seen = []

    @_memory.hot_path
    def kernel():
        barrier.wait(timeout=10)
        seen.append(state["on"])

    for before in (True, False):
        state["on"] = before
        with fk.tuned_allocator():
            threads = [threading.Thread(target=kernel) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert seen[-4:] == [False] * 4  # off while any kernel runs
        assert state["on"] is before and _memory._depth == 0


def test_numpy_huge_page_setting_is_restored(golden_events):
    from funnelkit._memory import _SET

    if _SET is None:
        pytest.skip("this numpy has no huge-page switch")
    before = _SET(True)
    _SET(before)
    log = fk.EventLog(golden_events, **GOLDEN_KW)
    log.transitions(), log.funnel(), log.dwell()
    after = _SET(before)
    assert after == before
