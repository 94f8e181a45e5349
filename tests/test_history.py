"""Field history (issue 22): with_history, snapshot, slippage and the movement waterfall.

The hand-worked example has six deals (d1..d6) and a Q2 2025 window; every expected number
below is worked out by hand in the comments. The property test checks the waterfall
reconciles on random logs with random histories, and compares the fields "as known at a
time" and the slippage counts with slow, obvious loops over the history rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import funnelkit as fk
from funnelkit._columns import to_timestamp
from funnelkit.errors import EventLogError, InvalidParameterError
from funnelkit.history import MOVEMENT_CATEGORIES
from funnelkit.monitoring import CATEGORIES, _states
from logs import LOG_KW, random_log

T = pd.Timestamp


# --------------------------------------------------------------------------- the example
def example_events() -> pd.DataFrame:
    rows = [
        ("d1", "A", "2025-03-01", 100, "Ann"),
        ("d1", "B", "2025-04-10", 100, "Ann"),
        ("d2", "A", "2025-03-05", 200, "Ann"),
        ("d3", "A", "2025-02-01", 300, "Ann"),
        ("d3", "B", "2025-03-15", 300, "Ann"),
        ("d3", "won", "2025-05-20", 300, "Ann"),
        ("d4", "A", "2025-01-10", 400, "Bo"),
        ("d4", "lost", "2025-06-05", 400, "Bo"),
        ("d5", "A", "2025-04-15", 500, "Bo"),
        ("d6", "A", "2024-11-01", 600, "Bo"),
        ("d6", "B", "2025-05-05", 600, "Bo"),
    ]
    df = pd.DataFrame(rows, columns=["deal_id", "stage", "ts", "amount", "owner"])
    df["ts"] = pd.to_datetime(df["ts"])
    df["amount"] = df["amount"].astype(float)
    return df


def example_history() -> pd.DataFrame:
    rows = [
        ("d1", "close_date", "2025-05-15", "2025-03-01"),
        ("d1", "forecast_category", "Pipeline", "2025-03-01"),
        ("d1", "close_date", "2025-06-20", "2025-04-10"),  # push, 36 days, in Q2
        ("d1", "forecast_category", "Commit", "2025-05-25"),
        ("d1", "close_date", "2025-07-20", "2025-06-15"),  # push, 30 days, Q2 -> Q3
        ("d2", "close_date", "2025-08-10", "2025-03-05"),
        ("d2", "close_date", "2025-06-10", "2025-05-01"),  # pull-in, 61 days, Q3 -> Q2
        ("d2", "amount", "250", "2025-05-20"),  # increase 200 -> 250
        ("d3", "close_date", "2025-04-30", "2025-02-01"),
        ("d3", "close_date", "2025-05-31", "2025-04-25"),  # push, 31 days
        ("d3", "amount", "280", "2025-05-10"),  # decrease 300 -> 280
        ("d3", "close_date", "2025-05-20", "2025-05-20"),  # set at the win: pull, 11 days
        ("d4", "close_date", "2025-03-31", "2025-01-10"),
        ("d4", "close_date", "2025-06-15", "2025-03-20"),  # push, 76 days, Q1 -> Q2
        ("d5", "close_date", "2025-06-25", "2025-04-15"),
        ("d6", "close_date", "2024-12-31", "2024-11-01"),
        ("d6", "close_date", "2025-02-28", "2024-12-20"),  # push, 59 days, Q4 -> Q1
        ("d6", "close_date", "2025-03-31", "2025-02-25"),  # push, 31 days
        ("d6", "close_date", "2025-05-31", "2025-03-28"),  # push, 61 days, Q1 -> Q2
    ]
    df = pd.DataFrame(rows, columns=["deal_id", "field", "new_value", "changed_at"])
    df["changed_at"] = pd.to_datetime(df["changed_at"])
    return df


EXAMPLE_KW = dict(
    deal="deal_id",
    stage="stage",
    time="ts",
    stages=["A", "B"],
    won="won",
    lost="lost",
    amount="amount",
    attrs=["owner"],
    as_of="2025-07-15",
)
Q2 = ("2025-04-01", "2025-06-30")


@pytest.fixture
def base() -> fk.EventLog:
    return fk.EventLog(example_events(), **EXAMPLE_KW)


@pytest.fixture
def log(base) -> fk.EventLog:
    return base.with_history(example_history())


def table(m: pd.DataFrame) -> dict[str, tuple[int, float]]:
    return {r.category: (int(r.deals), float(r.amount)) for r in m.itertuples(index=False)}


def test_example_waterfall_of_the_q2_pipeline(log):
    m = log.movement("2025-03-31", "2025-06-30", closing=Q2)
    assert m["category"].tolist() == list(MOVEMENT_CATEGORIES)
    assert table(m) == {
        # close date in Q2 at 03-31: d1 (05-15) 100, d3 (04-30) 300, d4 (06-15) 400,
        # d6 (05-31) 600; d2's close date is 08-10 then
        "open_at_start": (4, 1400.0),
        "created": (1, 500.0),  # d5, created 04-15 closing 06-25
        "pulled_in": (1, 200.0),  # d2 on 05-01 (08-10 -> 06-10), amount 200 then
        "increased": (1, 50.0),  # d2 200 -> 250 while in the window's pipeline
        "advanced": (1, 600.0),  # d6 A -> B, in the pipeline at both dates
        "regressed": (0, 0.0),
        "won": (1, 280.0),  # d3, won 05-20 at its amount then (280)
        "lost": (1, 400.0),  # d4, lost 06-05 with close date 06-15
        "stale": (0, 0.0),
        "pushed_out": (1, 100.0),  # d1 on 06-15 (06-20 -> 07-20)
        "decreased": (1, 20.0),  # d3 300 -> 280 before it was won
        "open_at_end": (3, 1350.0),  # d2 250, d5 500, d6 600
    }
    # 1400 + 500 + 200 + 50 - 280 - 400 - 100 - 20 == 1350; 4 + 1 + 1 - 1 - 1 - 1 == 3


def test_example_waterfall_of_all_open_deals(log, base):
    m = log.movement("2025-03-31", "2025-06-30")
    assert table(m) == {
        "open_at_start": (5, 1600.0),  # d1, d2, d3, d4, d6 at their amounts on 03-31
        "created": (1, 500.0),
        "pulled_in": (0, 0.0),
        "increased": (1, 50.0),
        "advanced": (2, 700.0),  # d1 (B on 04-10) and d6, at their amounts at the end
        "regressed": (0, 0.0),
        "won": (1, 280.0),
        "lost": (1, 400.0),
        "stale": (0, 0.0),
        "pushed_out": (0, 0.0),
        "decreased": (1, 20.0),
        "open_at_end": (4, 1450.0),  # d1 100, d2 250, d5 500, d6 600
    }
    # the deal counts are the log's own, with or without a history
    plain = base.movement("2025-03-31", "2025-06-30").set_index("category")["deals"]
    with_h = m.set_index("category")["deals"]
    assert (with_h[list(CATEGORIES)] == plain).all()
    assert base.movement("2025-03-31", "2025-06-30")["category"].tolist() == list(CATEGORIES)


def test_example_snapshot_uses_changes_at_or_before_the_moment(log):
    s = log.snapshot("2025-06-01")
    assert s["deal"].tolist() == ["d1", "d2", "d4", "d5", "d6"]  # d3 was won on 05-20
    assert s["stage"].astype(str).tolist() == ["B", "A", "A", "A", "B"]
    assert s["amount"].tolist() == [100.0, 250.0, 400.0, 500.0, 600.0]
    assert s["close_date"].tolist() == [
        T("2025-06-20"),
        T("2025-06-10"),
        T("2025-06-15"),
        T("2025-06-25"),
        T("2025-05-31"),
    ]
    assert s["forecast_category"].tolist()[0] == "Commit"
    assert s["forecast_category"].isna().tolist() == [False, True, True, True, True]
    assert s["owner"].astype(str).tolist() == ["Ann", "Ann", "Bo", "Bo", "Bo"]
    # d2's pull-in was made at 05-01 00:00: known at that moment, not a minute before
    at = log.snapshot("2025-05-01").set_index("deal")
    before = log.snapshot("2025-04-30 23:59").set_index("deal")
    assert at.loc["d2", "close_date"] == T("2025-06-10")
    assert before.loc["d2", "close_date"] == T("2025-08-10")
    # before its first close-date row a deal's close date is unknown, its amount the log's
    early = log.snapshot("2024-11-01").set_index("deal")
    assert early.loc["d6", "close_date"] == T("2024-12-31")
    assert log.snapshot("2024-10-31").empty


def test_example_slippage_per_deal(log):
    s = log.slippage().set_index("deal")
    assert s["pushes"].to_dict() == {"d1": 2, "d2": 0, "d3": 1, "d4": 1, "d5": 0, "d6": 3}
    assert s["days_pushed"].to_dict() == {
        "d1": 66.0,
        "d2": 0.0,
        "d3": 31.0,
        "d4": 76.0,
        "d5": 0.0,
        "d6": 151.0,
    }
    assert s["pulls"].to_dict() == {"d1": 0, "d2": 1, "d3": 1, "d4": 0, "d5": 0, "d6": 0}
    assert s["days_pulled"].to_dict() == {
        "d1": 0.0,
        "d2": 61.0,
        "d3": 11.0,
        "d4": 0.0,
        "d5": 0.0,
        "d6": 0.0,
    }
    assert s["quarters_slipped"].to_dict() == {
        "d1": 1,
        "d2": 0,
        "d3": 0,
        "d4": 1,
        "d5": 0,
        "d6": 2,
    }
    assert s["chronic"].to_dict() == {
        "d1": False,
        "d2": False,
        "d3": False,
        "d4": False,
        "d5": False,
        "d6": True,
    }
    assert s.loc["d1", "first_close_date"] == T("2025-05-15")
    assert s.loc["d1", "last_close_date"] == T("2025-07-20")
    assert s.loc["d6", "first_close_date"] == T("2024-12-31")
    assert s.loc["d3", "last_close_date"] == T("2025-05-20")
    assert s["amount_first"].tolist() == [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]
    assert s["amount_last"].tolist() == [100.0, 250.0, 280.0, 400.0, 500.0, 600.0]
    assert s["amount_change"].tolist() == [0.0, 50.0, -20.0, 0.0, 0.0, 0.0]
    assert s["outcome"].astype(str).tolist() == ["open", "open", "won", "lost", "open", "open"]
    assert log.slippage(chronic_pushes=2)["chronic"].sum() == 2  # d1 and d6


def test_example_slippage_by_stage_and_owner(log):
    st_ = log.slippage(by="stage").set_index("stage")
    # A: d4 (1 push, 76 d), d6 (3 pushes, 151 d), d2's pull (61 d); every deal entered A
    # B: d1 (2 pushes, 66 d), d3 (1 push, 31 d); won: d3's pull at the win (11 d)
    assert st_.loc["A", ["deals", "deals_pushed", "pushes", "pulls", "chronic"]].tolist() == [
        6,
        2,
        4,
        1,
        1,
    ]
    assert st_.loc["A", "days_pushed"] == 227.0
    assert st_.loc["A", "days_pulled"] == 61.0
    assert st_.loc["B", ["deals", "deals_pushed", "pushes", "pulls", "chronic"]].tolist() == [
        3,
        2,
        3,
        0,
        0,
    ]
    assert st_.loc["B", "days_pushed"] == 97.0
    assert st_.loc["won", ["deals", "pushes", "pulls"]].tolist() == [1, 0, 1]
    assert st_.loc["won", "days_pulled"] == 11.0
    assert st_.loc["lost", ["deals", "pushes", "pulls"]].tolist() == [1, 0, 0]
    assert st_.loc["A", "share_pushed"] == pytest.approx(2 / 6)
    low, high = st_.loc["A", ["share_pushed_low", "share_pushed_high"]]
    assert low < 2 / 6 < high

    ow = log.slippage(by="owner").set_index("owner")
    assert ow.loc["Ann", ["deals", "deals_pushed", "pushes", "pulls", "chronic"]].tolist() == [
        3,
        2,
        3,
        2,
        0,
    ]
    assert ow.loc["Ann", "days_pushed"] == 97.0
    assert ow.loc["Ann", "days_pulled"] == 72.0
    assert ow.loc["Ann", "amount_change"] == 30.0
    assert ow.loc["Bo", ["deals", "deals_pushed", "pushes", "pulls", "chronic"]].tolist() == [
        3,
        2,
        4,
        0,
        1,
    ]
    assert ow.loc["Bo", "days_pushed"] == 227.0


def test_with_history_leaves_the_log_alone(base, log):
    assert base.history is None
    assert log.history is not None
    assert log.history.quality.rows_in == 19
    assert log.history.quality.changes == {
        "close_date": 15,
        "amount": 2,
        "forecast_category": 2,
    }
    assert log.history.quality.deals == 6
    ch = log.history.changes
    assert ch.columns.tolist() == [
        "deal",
        "field",
        "changed_at",
        "close_date",
        "amount",
        "forecast_category",
    ]
    assert len(ch) == 19
    pd.testing.assert_frame_equal(log.deals(), base.deals())
    with pytest.raises(EventLogError, match="close-date history"):
        base.movement("2025-03-31", "2025-06-30", closing=Q2)
    with pytest.raises(EventLogError, match="with_history"):
        base.slippage()


# --------------------------------------------------------------------------- bad rows
def bad_history() -> pd.DataFrame:
    h = example_history()
    extra = pd.DataFrame(
        [
            ("zz", "close_date", "2025-05-01", T("2025-04-01")),  # unknown deal
            ("d1", "StageName", "B", T("2025-04-01")),  # unknown field
            ("d1", "close_date", "next week", T("2025-04-02")),  # no date
            ("d2", "amount", "-5", T("2025-04-03")),  # negative amount
            ("d2", "amount", "lots", T("2025-04-03")),  # no number
            ("d3", "close_date", "2025-05-01", T("2025-08-01")),  # after as_of
            ("d3", "close_date", "2025-05-01", pd.NaT),  # no time
            (None, "close_date", "2025-05-01", T("2025-04-01")),  # no deal
        ],
        columns=h.columns,
    )
    return pd.concat([h, extra], ignore_index=True)


def test_bad_history_rows_raise_with_column_count_and_example(base):
    with pytest.raises(EventLogError) as err:
        base.with_history(bad_history())
    msg = str(err.value)
    assert "8 bad rows of 27" in msg
    assert "unknown_deal (1 rows, column `deal_id`), e.g. row 19: 'zz'" in msg
    assert "unknown_field (1 rows, column `field`), e.g. row 20: 'StageName'" in msg
    assert "invalid_value (3 rows, column `new_value`)" in msg
    assert "after_as_of (1 rows, column `changed_at`)" in msg
    assert "missing_time (1 rows" in msg and "missing_deal (1 rows" in msg
    assert "errors='drop'" in msg
    cases = err.value.failure_cases
    assert cases["row"].tolist() == list(range(19, 27))


def test_bad_history_rows_dropped_are_kept_and_counted(base, log):
    dropped = base.with_history(bad_history(), errors="drop")
    q = dropped.history.quality
    assert q.rows_in == 27 and q.rows_used == 19 and q.rows_rejected == 8
    assert q.by_reason == {
        "missing_deal": 1,
        "unknown_deal": 1,
        "unknown_field": 1,
        "missing_time": 1,
        "after_as_of": 1,
        "invalid_value": 3,
    }
    rej = dropped.history.rejects
    assert rej["row"].tolist() == list(range(19, 27))
    assert rej["reason"].tolist() == [
        "unknown_deal",
        "unknown_field",
        "invalid_value",
        "invalid_value",
        "invalid_value",
        "after_as_of",
        "missing_time",
        "missing_deal",
    ]
    assert rej.columns.tolist() == ["row", "deal_id", "field", "new_value", "changed_at", "reason"]
    q_frame = q.to_frame().set_index("metric")["value"]
    assert q_frame["rows_in"] == q_frame["rows_used"] + q_frame["rows_rejected"]
    # the good rows give the same analyses as the clean history
    pd.testing.assert_frame_equal(
        dropped.movement("2025-03-31", "2025-06-30", closing=Q2),
        log.movement("2025-03-31", "2025-06-30", closing=Q2),
    )


def test_field_names_are_mapped_and_values_parsed(base, log):
    h = example_history()
    names = {"close_date": "CloseDate", "amount": ["Amount", "amount__c"]}
    h["field"] = h["field"].map(
        {"close_date": "CloseDate", "amount": "amount__c", "forecast_category": "Forecast"}
    )
    names["forecast_category"] = "Forecast"
    h["changed_at"] = h["changed_at"].dt.strftime("%d/%m/%Y")
    h = h.rename(columns={"deal_id": "OpportunityId", "new_value": "NewValue"})
    mapped = base.with_history(
        h,
        deal="OpportunityId",
        value="NewValue",
        fields=names,
        date_format="%d/%m/%Y",
    )
    assert mapped.history.quality.rows_rejected == 0
    pd.testing.assert_frame_equal(mapped.slippage(), log.slippage())
    with pytest.raises(InvalidParameterError, match="funnelkit's fields"):
        base.with_history(example_history(), fields={"closedate": "CloseDate"})
    with pytest.raises(EventLogError, match="`deal`.*OpportunityId|OpportunityId"):
        base.with_history(h)


def test_a_time_zone_mismatch_is_refused(base):
    h = example_history()
    h["changed_at"] = h["changed_at"].dt.tz_localize("UTC")
    with pytest.raises(EventLogError, match="time-zone-aware.*naive"):
        base.with_history(h)


def test_cleared_close_date_is_unknown_and_no_push(base):
    h = example_history()
    h.loc[len(h)] = ["d5", "close_date", None, T("2025-05-01")]
    h.loc[len(h)] = ["d5", "close_date", "2025-07-05", T("2025-05-02")]
    log = base.with_history(h)
    s = log.snapshot("2025-05-01 12:00").set_index("deal")
    assert pd.isna(s.loc["d5", "close_date"])
    # 06-25 -> cleared -> 07-05: compared with the last known date, a push of 10 days
    sl = log.slippage().set_index("deal")
    assert sl.loc["d5", "pushes"] == 1 and sl.loc["d5", "days_pushed"] == 10.0


def test_closing_checks_its_window(log):
    with pytest.raises(InvalidParameterError, match="first date is after"):
        log.movement("2025-03-31", "2025-06-30", closing=("2025-06-30", "2025-04-01"))
    with pytest.raises(InvalidParameterError, match="closing"):
        log.movement("2025-03-31", "2025-06-30", closing=("2025-06-30",))


# --------------------------------------------------------------------------- properties
def slow_known(changes: pd.DataFrame, deal: str, field: str, t: pd.Timestamp, default):
    """The field as known at t: the last change of the deal and field at or before t."""
    value = default
    for r in changes.itertuples(index=False):  # sorted by deal, field, time (stable)
        if r.deal == deal and r.field == field and r.changed_at <= t:
            value = getattr(r, field)
    return value


def random_history(rng: np.random.Generator, events: pd.DataFrame) -> pd.DataFrame:
    deals = events["deal"].unique()
    t0, t1 = events["ts"].min(), events["ts"].max()
    span = (t1 - t0) / pd.Timedelta(days=1)
    rows = []
    for d in deals:
        for _ in range(int(rng.integers(0, 6))):
            when = t0 + pd.Timedelta(days=float(rng.uniform(-5, span)))
            when = min(when, t1)
            kind = rng.integers(0, 3)
            if kind == 0:
                value = (t0 + pd.Timedelta(days=int(rng.integers(-20, int(span) + 60)))).strftime(
                    "%Y-%m-%d"
                )
                rows.append((d, "close_date", None if rng.random() < 0.1 else value, when))
            elif kind == 1:
                rows.append((d, "amount", str(int(rng.integers(0, 50)) * 10), when))
            else:
                rows.append((d, "forecast_category", str(rng.choice(["P", "B", "C"])), when))
    h = pd.DataFrame(rows, columns=["deal", "field", "value", "at"])
    h["at"] = pd.to_datetime(h["at"])
    if len(h) and h["at"].dt.tz is None and events["ts"].dt.tz is not None:
        h["at"] = h["at"].dt.tz_localize("UTC")
    return h


@pytest.mark.slow
@settings(derandomize=True, deadline=None, max_examples=40)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 25),
    st.sampled_from([None, "UTC"]),
    st.floats(0.0, 1.0),
    st.floats(0.05, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.booleans(),
)
def test_waterfall_reconciles_on_random_logs(seed, n, zone, a, b, c1, c2, stale):
    rng = np.random.default_rng(seed)
    events = random_log(rng, n, tz=zone)
    per_deal = {d: float(rng.integers(0, 100) * 10) for d in events["deal"].unique()}
    events["amount"] = events["deal"].map(per_deal)  # whole amounts: sums are exact
    kw = dict(LOG_KW, amount="amount", stale_after="30D" if stale else None)
    log = fk.EventLog(events, **kw).with_history(
        random_history(rng, events),
        deal="deal",
        field="field",
        value="value",
        time="at",
    )
    first_ns, as_of = log._first_ns.min(), log.as_of
    lo = pd.Timestamp(int(first_ns) - 10 * 86_400 * 10**9, tz=as_of.tz)
    span = as_of - lo
    start = lo + a * (1 - b) * span
    end = start + b * (as_of - start)
    if not start < end:
        return
    days = pd.date_range(lo.tz_localize(None).normalize(), periods=400, freq="D")
    f, g = sorted([int(c1 * 399), int(c2 * 399)])
    for closing in (None, (days[f], days[g])):
        m = log.movement(start, end, closing=closing).set_index("category")
        d, amt = m["deals"], m["amount"]
        assert (d >= 0).all() and (amt >= 0).all()
        assert (
            d["open_at_start"] + d["created"] + d["pulled_in"]
            - d["won"] - d["lost"] - d["stale"] - d["pushed_out"]
            == d["open_at_end"]
        )  # fmt: skip
        assert (
            amt["open_at_start"] + amt["created"] + amt["pulled_in"] + amt["increased"]
            - amt["won"] - amt["lost"] - amt["stale"] - amt["pushed_out"] - amt["decreased"]
            == amt["open_at_end"]
        )  # fmt: skip
        # the pipeline at each end, by slow lookups on the log's own states
        changes = log.history.changes
        labels = log.deals()["deal"].tolist()
        base_amount = log.deals()["amount"].to_numpy()
        for t, cat in ((start, "open_at_start"), (end, "open_at_end")):
            state = _states(log, to_timestamp(t, log._aware, "t"))[0]
            count, total = 0, 0.0
            tt = pd.Timestamp(t)
            for i, deal in enumerate(labels):
                if state[i] != 1:
                    continue
                if closing is not None:
                    cd = slow_known(changes, deal, "close_date", tt, pd.NaT)
                    if pd.isna(cd) or not (closing[0] <= cd <= closing[1]):
                        continue
                count += 1
                val = slow_known(changes, deal, "amount", tt, base_amount[i])
                total += 0.0 if pd.isna(val) else val
            assert d[cat] == count
            assert amt[cat] == total
        if closing is None:
            assert d["pulled_in"] == 0 and d["pushed_out"] == 0


@pytest.mark.slow
@settings(derandomize=True, deadline=None, max_examples=30)
@given(st.integers(0, 2**32 - 1), st.integers(1, 20))
def test_snapshot_and_slippage_match_slow_loops(seed, n):
    rng = np.random.default_rng(seed)
    events = random_log(rng, n)
    log = fk.EventLog(events, **dict(LOG_KW, amount="amount", stale_after="30D"))
    log = log.with_history(
        random_history(rng, events), deal="deal", field="field", value="value", time="at"
    )
    changes = log.history.changes
    deals = log.deals()
    at = log.as_of - (log.as_of - deals["first_event"].min()) * float(rng.random())
    snap = log.snapshot(at)
    for r in snap.itertuples(index=False):
        i = deals.index[deals["deal"] == r.deal][0]
        assert slow_known(changes, r.deal, "close_date", at, pd.NaT) is pd.NaT or (
            slow_known(changes, r.deal, "close_date", at, pd.NaT) == r.close_date
        )
        amount = slow_known(changes, r.deal, "amount", at, deals.loc[i, "amount"])
        assert (pd.isna(amount) and pd.isna(r.amount)) or amount == r.amount
        cat = slow_known(changes, r.deal, "forecast_category", at, None)
        assert (cat is None and pd.isna(r.forecast_category)) or cat == r.forecast_category
    sl = log.slippage().set_index("deal")
    for deal in deals["deal"]:
        known = [
            v
            for v in changes.loc[
                (changes["deal"] == deal) & (changes["field"] == "close_date"), "close_date"
            ]
            if not pd.isna(v)
        ]
        steps = [(b - a).days for a, b in zip(known, known[1:], strict=False)]
        assert sl.loc[deal, "pushes"] == sum(s > 0 for s in steps)
        assert sl.loc[deal, "pulls"] == sum(s < 0 for s in steps)
        assert sl.loc[deal, "days_pushed"] == sum(s for s in steps if s > 0)
        assert sl.loc[deal, "days_pulled"] == -sum(s for s in steps if s < 0)
        assert sl.loc[deal, "chronic"] == (sum(s > 0 for s in steps) >= 3)


# --------------------------------------------------------------------------- data
def test_synthetic_history_keeps_the_events():
    plain = fk.datasets.synthetic(120, seed=3)
    events, history = fk.datasets.synthetic(120, seed=3, history=True)
    pd.testing.assert_frame_equal(plain, events)
    ev2, truth, h2 = fk.datasets.synthetic(120, seed=3, history=True, return_truth=True)
    pd.testing.assert_frame_equal(history, h2)
    log = fk.EventLog(
        events,
        stages=list(truth.stages),
        won=truth.won,
        lost=list(truth.lost),
        amount="amount",
    ).with_history(history, **fk.datasets.SAMPLE_HISTORY_KWARGS)
    assert log.history.quality.rows_rejected == 0
    assert log.history.quality.deals == log.n_deals
    assert log.slippage()["pushes"].sum() > 0


def test_sample_history_is_the_generator_output():
    from importlib import resources

    from funnelkit.datasets._sample import build_sample_history

    text = resources.files("funnelkit.datasets").joinpath("sample_history.csv").read_text("utf-8")
    assert text == build_sample_history()
    h = fk.datasets.load_sample_history()
    assert str(h["changed_at"].dtype) == "datetime64[ns, UTC]"
    log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    log = log.with_history(h, **fk.datasets.SAMPLE_HISTORY_KWARGS)
    assert log.history.quality.rows_rejected == 0
    assert (h["changed_at"] <= log.as_of).all()


# --------------------------------------------------------------------------- charts
def test_waterfall_draws_the_hand_worked_table(log):
    ax = fk.plot.waterfall(log, "2025-03-31", "2025-06-30", closing=Q2)
    bars = {p.get_gid(): (p.get_x(), p.get_width()) for p in ax.patches}
    # (left, width): the running total 1400 -> +500 -> +200 -> +50 -> -280 -> -400 -> -0
    # -> -100 -> -20 -> 1350
    assert bars == {
        "waterfall-open_at_start": (0.0, 1400.0),
        "waterfall-created": (1400.0, 500.0),
        "waterfall-pulled_in": (1900.0, 200.0),
        "waterfall-increased": (2100.0, 50.0),
        "waterfall-won": (1870.0, 280.0),
        "waterfall-lost": (1470.0, 400.0),
        "waterfall-stale": (1470.0, 0.0),
        "waterfall-pushed_out": (1370.0, 100.0),
        "waterfall-decreased": (1350.0, 20.0),
        "waterfall-open_at_end": (0.0, 1350.0),
    }
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "Open at start" and labels[4] == "won" and labels[-1] == "Open at end"
    # by deals: the amount-change rows are no flows of deals
    ax2 = fk.plot.waterfall(log.movement("2025-03-31", "2025-06-30", closing=Q2), value="deals")
    widths = {p.get_gid(): p.get_width() for p in ax2.patches}
    assert "waterfall-increased" not in widths
    assert widths["waterfall-open_at_start"] == 4 and widths["waterfall-open_at_end"] == 3
    assert [t.get_text() for t in ax2.get_yticklabels()][3] == "Won"  # a table: no log names


def test_waterfall_without_history_has_the_six_flows(base):
    ax = fk.plot.waterfall(base, "2025-03-31", "2025-06-30")
    gids = [p.get_gid() for p in ax.patches]
    assert gids == [
        "waterfall-open_at_start",
        "waterfall-created",
        "waterfall-won",
        "waterfall-lost",
        "waterfall-stale",
        "waterfall-open_at_end",
    ]
    ends = ax.patches[-1]
    assert ends.get_width() == 1400.0  # the log's own amounts: d1 100, d2 200, d5 500, d6 600


def test_slippage_chart_draws_the_shares(log):
    table = log.slippage(by="owner")
    ax = fk.plot.slippage(log, "owner")
    widths = [p.get_width() for p in ax.patches]
    assert widths == pytest.approx(table["share_pushed"].tolist())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Ann", "Bo"]
    with pytest.raises(ValueError, match="lacks the column"):
        fk.plot.slippage(log.slippage(), "owner")


def test_a_dask_log_takes_a_history_by_collecting():
    dd = pytest.importorskip("dask.dataframe")
    from funnelkit.dask import DaskEventLog

    events = dd.from_pandas(example_events(), npartitions=2)
    dist = DaskEventLog(events, **EXAMPLE_KW)
    history = dd.from_pandas(example_history(), npartitions=2)
    mem = dist.with_history(history)
    assert isinstance(mem, fk.EventLog)
    expected = fk.EventLog(example_events(), **EXAMPLE_KW).with_history(example_history())
    pd.testing.assert_frame_equal(
        mem.movement("2025-03-31", "2025-06-30", closing=Q2),
        expected.movement("2025-03-31", "2025-06-30", closing=Q2),
    )
    # the collected deal ids keep dask's string dtype: compare the values
    pd.testing.assert_frame_equal(mem.slippage(), expected.slippage(), check_dtype=False)


# --------------------------------------------------------------------------- report
@pytest.mark.slow
def test_the_report_shows_the_pipeline_section_only_with_a_history(log, base, tmp_path):
    from funnelkit.report import build_report

    rep = build_report(log, charts=True)
    # as_of 2025-07-15: the quarter Q3 2025, from 07-01 to as_of
    pd.testing.assert_frame_equal(
        rep.tables["movement"],
        log.movement("2025-07-01", log.as_of, closing=("2025-07-01", "2025-09-30")),
    )
    pd.testing.assert_frame_equal(rep.tables["slippage_by_stage"], log.slippage(by="stage"))
    assert {"waterfall", "slippage"} <= set(rep.charts)
    assert any("deals closing in 2025Q3" in n for n in rep.notes)
    plain = build_report(base, charts=False)
    assert "movement" not in plain.tables and "slippage_by_stage" not in plain.tables
    out = tmp_path / "rep"
    rep.save(out)
    assert (out / "tables" / "movement.parquet").exists()
    assert (out / "charts" / "waterfall.png").exists()
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<h2>Pipeline movement</h2>" in page and "Slippage per stage" in page
    plain.save(tmp_path / "plain")
    assert "Pipeline movement" not in (tmp_path / "plain" / "report.html").read_text("utf-8")


def test_filter_keeps_the_history_of_the_kept_deals(log):
    part = log.filter(where="owner == 'Ann'")
    assert part.history is not None
    assert part.history.quality.rows_in == 12  # d1 5, d2 3, d3 4 rows
    full = log.slippage()
    expected = full[full["deal"].isin(["d1", "d2", "d3"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(part.slippage(), expected, check_categorical=False)
