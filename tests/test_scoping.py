"""Scoping: filter, conversion windows, hand-offs (visit attributes), business calendars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

import funnelkit as fk
from logs import LOG_KW, event_logs

KW = dict(deal="deal", stage="stage", time="ts", stages=["A", "B", "C"], won="W", lost="L")


def ev(rows, **cols):
    df = pd.DataFrame(rows, columns=["deal", "stage", "ts"])
    for k, v in cols.items():
        df[k] = v
    return df


def sample_log(**kw):
    return fk.EventLog(fk.datasets.load_sample(), **{**fk.datasets.SAMPLE_KWARGS, **kw})


# ---------------------------------------------------------------- filter
def test_filter_where_equals_funnel_by_block():
    log = sample_log()
    by = log.funnel(by="team")
    for team in ("Team A", "Team C"):
        sub = log.filter(where=f"team == '{team}'")
        block = by[by["team"] == team].drop(columns="team").reset_index(drop=True)
        pd.testing.assert_frame_equal(sub.funnel(), block)
        assert sub.quality.filtered["deals"] == log.n_deals - sub.n_deals
        assert sub.as_of == log.as_of and sub.stages == log.stages


def test_filter_mask_callable_created_and_deals():
    log = sample_log()
    d = log.deals()
    a = log.filter(where=(d["amount"] > 30_000).to_numpy())
    b = log.filter(where=lambda t: t["amount"] > 30_000)
    assert a.n_deals == b.n_deals == int((d["amount"] > 30_000).sum())
    c = log.filter(created=("2025-01-01", None))
    assert c.n_deals == int((d["first_event"] >= pd.Timestamp("2025-01-01", tz="UTC")).sum())
    ids = d["deal"].iloc[:5].tolist()
    assert sorted(log.filter(deals=ids).deals()["deal"].tolist()) == sorted(ids)


def test_filter_stages_removes_them_before_the_path_rules():
    df = ev(
        [
            ["x", "A", "2025-01-01"],
            ["x", "B", "2025-01-03"],
            ["x", "C", "2025-01-06"],
            ["x", "W", "2025-01-07"],
        ]
    )
    log = fk.EventLog(df, **KW)
    sub = log.filter(stages=["A", "C"])
    assert sub.stages == ["A", "C"]
    t = sub.transitions()
    assert t[["from_stage", "to_stage"]].values.tolist() == [["A", "C"], ["C", "W"]]
    assert t["dwell_mean"].tolist() == [pd.Timedelta(days=5), pd.Timedelta(days=1)]
    assert sub.quality.filtered == {"deals": 0, "rows": 1}


def test_filter_errors():
    log = sample_log()
    with pytest.raises(fk.EventLogError, match="could not be evaluated"):
        log.filter(where="colour == 'red'")
    with pytest.raises(fk.EventLogError, match="keeps no deals"):
        log.filter(deals=["nope"])
    with pytest.raises(fk.EventLogError, match="not stages of this log"):
        log.filter(stages=["Zed"])
    with pytest.raises(fk.EventLogError, match="one boolean per deal"):
        log.filter(where=[True, False])


# ---------------------------------------------------------------- conversion windows
def window_log():
    # as_of 2025-03-01
    rows = [
        ["fast", "A", "2025-01-01"],
        ["fast", "B", "2025-01-05"],  # A→B in 4 days
        ["slow", "A", "2025-01-01"],
        ["slow", "B", "2025-01-25"],  # A→B in 24 days
        ["recent", "A", "2025-02-25"],  # 4 days in A: censored
        ["stuck", "A", "2025-01-10"],  # 50 days in A, open
        ["lost", "A", "2025-02-26"],
        ["lost", "L", "2025-02-27"],  # lost inside window
        ["end", "A", "2025-03-01"],
    ]
    return fk.EventLog(ev(rows), as_of="2025-03-01", **KW)


def test_window_hand_worked():
    log = window_log()
    f = log.funnel(within="10D").set_index("stage")
    a = f.loc["A"]
    # fast advanced; slow advanced too late → dropped; stuck open past the window → dropped;
    # lost → dropped; recent and end still inside their window → open (censored)
    assert (a["reached"], a["advanced"], a["dropped"], a["open"]) == (6, 1, 3, 2)
    assert a["conversion_closed"] == pytest.approx(1 / 4)
    # Aalen–Johansen by 10 days: end censored at 0; lost at 1 day (Y = 5, S = 0.8); fast
    # advances at 4 days while recent is censored there (Y = 4): F = 0.8 / 4 = 0.2, S = 0.6;
    # slow (advances at 24 days) and stuck are censored at the window
    assert a["conversion"] == pytest.approx(0.2)
    # the 0.6 left at the window did not advance within it: resolved. But after "end" is
    # censored at 0 fewer than 10 deals are at risk, so the 0.2 lost (Y = 5) and the 0.2
    # advanced (Y = 4) rest on too few deals: unresolved 0.4, 0.2 each side
    assert a["unresolved"] == pytest.approx(0.4)
    no_window = log.funnel().set_index("stage").loc["A"]
    assert (no_window["advanced"], no_window["dropped"], no_window["open"]) == (2, 1, 3)


def test_window_per_stage_dict_and_errors():
    log = window_log()
    f = log.funnel(within={"A": "30D"}).set_index("stage")
    assert f.loc["A", "advanced"] == 2  # slow (24 days) is within 30 days
    with pytest.raises(fk.EventLogError, match="not a stage"):
        log.funnel(within={"Zed": "3D"})
    with pytest.raises(fk.EventLogError, match="not a duration"):
        log.funnel(within="soon")


@settings(max_examples=20)
@given(event_logs())
def test_long_window_equals_no_window(events):
    log = fk.EventLog(events, **LOG_KW, stale_after="30D")
    for skips in ("implied", "strict"):
        pd.testing.assert_frame_equal(
            log.funnel(skips=skips), log.funnel(skips=skips, within="36500D")
        )


# ---------------------------------------------------------------- hand-offs
def test_handoff_attributes_each_stage_to_its_holder():
    rows = [
        ["x", "A", "2025-01-01"],
        ["x", "B", "2025-01-05"],
        ["x", "L", "2025-01-09"],
        ["y", "A", "2025-01-01"],
        ["y", "B", "2025-01-02"],
        ["y", "W", "2025-01-04"],
    ]
    owners = ["ann", "bob", "bob", "ann", "ann", "ann"]
    log = fk.EventLog(ev(rows, owner=owners), visit_attrs=["owner"], attrs=["owner"], **KW)
    v = log.visits()
    assert v["owner"].astype(str).tolist() == ["ann", "bob", "ann", "ann"]
    f = log.funnel(by="owner").set_index(["owner", "stage"])
    # stage A: both deals held by ann and both advanced
    assert f.loc[("ann", "A"), "advanced"] == 2
    # stage B: x held by bob (lost), y held by ann (won)
    assert f.loc[("bob", "B"), "dropped"] == 1 and f.loc[("ann", "B"), "advanced"] == 1
    d = log.dwell(by="owner").set_index(["owner", "stage"])
    assert d.loc[("bob", "B"), "median"] == pd.Timedelta(days=4)
    assert d.loc[("ann", "A"), "visits"] == 2
    only_visits = fk.EventLog(ev(rows, owner=owners), visit_attrs=["owner"], **KW)
    with pytest.raises(fk.EventLogError, match="visit attribute"):
        only_visits.kpis(by="owner")


def test_compare_by_holder_counts_each_stage_for_its_holder():
    rows = [
        ["x", "A", "2025-01-01"],  # ann reaches A, bob takes B and loses it
        ["x", "B", "2025-01-05"],
        ["x", "L", "2025-01-09"],
        ["y", "A", "2025-01-01"],  # ann all the way to a win
        ["y", "B", "2025-01-02"],
        ["y", "W", "2025-01-04"],
        ["z", "A", "2025-01-02"],  # bob: lost at A
        ["z", "L", "2025-01-03"],
        ["u", "A", "2025-01-03"],  # ann at A, bob at C (B implied: reached by bob's event)
        ["u", "C", "2025-01-06"],
    ]
    owners = ["ann", "bob", "bob", "ann", "ann", "ann", "bob", "bob", "ann", "bob"]
    log = fk.EventLog(ev(rows, owner=owners), visit_attrs=["owner"], **KW)
    c = log.compare(by="owner").set_index(["owner", "stage"])
    cols = ["reached", "advanced", "dropped", "open", "rest_advanced", "rest_dropped"]
    assert c.loc[("ann", "A"), cols].tolist() == [3, 3, 0, 0, 0, 1]
    assert c.loc[("bob", "A"), cols].tolist() == [1, 0, 1, 0, 3, 0]
    assert c.loc[("ann", "B"), cols].tolist() == [1, 1, 0, 0, 1, 1]
    assert c.loc[("bob", "B"), cols].tolist() == [2, 1, 1, 0, 1, 0]
    # C: u is open there (bob); y's win reaches C too, attributed to ann's won event
    assert c.loc[("bob", "C"), cols].tolist() == [1, 0, 0, 1, 1, 0]
    assert c.loc[("ann", "C"), cols].tolist() == [1, 1, 0, 0, 0, 0]
    assert c.loc[("ann", "A"), "deals"] == 3  # x, y, u
    assert c.loc[("bob", "A"), "deals"] == 3  # x, z, u
    assert c.loc[("bob", "B"), "conversion"] == 0.5
    assert c.loc[("bob", "B"), "rest_conversion"] == 1.0
    assert c.loc[("ann", "A"), "rest_conversion"] == 0.0  # z, lost at A under bob
    # counts and conversions are those of the hand-off funnel
    f = log.funnel(by="owner").set_index(["owner", "stage"])
    cols = ["reached", "advanced", "dropped", "open", "conversion", "conversion_low"]
    cols += ["conversion_high", "unresolved", "conversion_closed"]
    pd.testing.assert_frame_equal(c[cols], f.loc[c.index, cols])
    # two holders: the rest of each is the other, stage by stage
    for a, b in (("ann", "bob"), ("bob", "ann")):
        np.testing.assert_array_equal(c.loc[a, "rest_conversion"], c.loc[b, "conversion"])
        np.testing.assert_array_equal(c.loc[a, "rest_unresolved"], c.loc[b, "unresolved"])


def test_compare_by_visit_attribute_constant_per_deal_equals_deal_attribute():
    events = fk.datasets.load_sample()
    log = fk.EventLog(events, visit_attrs=["team"], **fk.datasets.SAMPLE_KWARGS)
    plain = fk.EventLog(events, **fk.datasets.SAMPLE_KWARGS)
    pd.testing.assert_frame_equal(log.compare(by="team"), plain.compare(by="team"))


def handoff_log() -> fk.EventLog:
    events = fk.datasets.load_sample()
    pod = {"Team A": "SDR pod 1", "Team B": "SDR pod 2", "Team C": "SDR pod 1"}
    early = events["stage"].isin(["Lead", "Qualified"])
    events["held_by"] = np.where(early, events["team"].map(pod), events["team"])
    return fk.EventLog(events, visit_attrs=["held_by"], **fk.datasets.SAMPLE_KWARGS)


def test_key_stages_by_holder_tests_the_compare_counts():
    log = handoff_log()
    ks = log.key_stages(by="held_by", n_boot=0, signals=["dropoff", "heterogeneity"])
    c = log.compare(by="held_by").set_index(["held_by", "stage"])
    drop = ks[(ks["signal"] == "dropoff") & ks["effect"].notna()]
    assert len(drop) >= 10
    for _, row in drop.iterrows():
        r = c.loc[(row["segment"], row["stage"])]
        # drop-off effect = the segment's loss (1 - conversion) minus the rest's: the
        # same Aalen-Johansen estimates compare() gives, stage by stage for the holder
        assert row["effect"] == pytest.approx(r["rest_conversion"] - r["conversion"])
    het = ks[(ks["signal"] == "heterogeneity") & ks["p_value"].notna()]
    assert set(het["stage"]) >= {"Lead", "Discovery", "Demo"}  # pods early, teams later
    report = log.report(by="held_by", key_kwargs={"n_boot": 0}, charts=False)
    assert {"compare_by", "funnel_by", "key_stages"} <= set(report.tables)


def test_key_stages_by_visit_attribute_constant_per_deal_equals_deal_attribute():
    events = fk.datasets.load_sample()
    log = fk.EventLog(events, visit_attrs=["team"], **fk.datasets.SAMPLE_KWARGS)
    plain = fk.EventLog(events, **fk.datasets.SAMPLE_KWARGS)
    kw = dict(by="team", n_boot=0, signals=["dropoff", "heterogeneity"])
    pd.testing.assert_frame_equal(log.key_stages(**kw), plain.key_stages(**kw))


def test_visit_attribute_constant_per_deal_equals_deal_attribute():
    events = fk.datasets.load_sample()
    log = fk.EventLog(events, visit_attrs=["team"], **fk.datasets.SAMPLE_KWARGS)
    plain = fk.EventLog(events, **fk.datasets.SAMPLE_KWARGS)
    pd.testing.assert_frame_equal(log.funnel(by="team"), plain.funnel(by="team"))
    pd.testing.assert_frame_equal(log.dwell(by="team"), plain.dwell(by="team"))


# ---------------------------------------------------------------- business calendars
def test_weekend_and_holiday_inside_a_dwell():
    # Wed 2025-12-24 12:00 → Mon 2025-12-29 12:00: half of Wed, 25th holiday, Fri, weekend, half of Mon
    df = ev(
        [
            ["x", "A", "2025-12-24 12:00"],
            ["x", "B", "2025-12-29 12:00"],
            ["x", "W", "2025-12-30 12:00"],
        ]
    )
    cal = fk.BusinessCalendar(holidays=["2025-12-25"])
    log = fk.EventLog(df, calendar=cal, **KW)
    assert log.visits()["dwell"].tolist() == [pd.Timedelta(days=2), pd.Timedelta(days=1)]
    assert log.deals()["cycle_time"].iloc[0] == pd.Timedelta(days=3)
    plain = fk.EventLog(df, **KW)
    assert plain.dwell(calendar=cal).set_index("stage").loc["A", "median"] == pd.Timedelta(days=2)
    assert plain.dwell().set_index("stage").loc["A", "median"] == pd.Timedelta(days=5)
    assert plain.cycle_time(calendar="business").set_index("outcome").loc[
        "won", "median"
    ] == pd.Timedelta(days=4)
    # a 3-business-day window covers the holiday week but 3 calendar days do not
    assert plain.funnel(within="3D", calendar=cal).set_index("stage").loc["A", "advanced"] == 1
    assert plain.funnel(within="3D").set_index("stage").loc["A", "advanced"] == 0


def test_bad_calendar():
    with pytest.raises(fk.EventLogError, match="calendar"):
        fk.EventLog(ev([["x", "A", "2025-01-01"]]), calendar="lunar", **KW)
    with pytest.raises(fk.EventLogError, match="BusinessCalendar"):
        fk.BusinessCalendar(weekmask="Funday")


def test_calendar_pickles():
    """A calendar travels to the workers of a distributed log: pickled and back, it is the
    same calendar and counts the same business time (numpy's busdaycalendar inside does
    not pickle by itself)."""
    import pickle

    cal = fk.BusinessCalendar(weekmask="Mon Tue Wed Thu", holidays=["2025-01-02"])
    back = pickle.loads(pickle.dumps(cal))
    assert back == cal
    start, end = pd.Timestamp("2024-12-30 12:00"), pd.Timestamp("2025-01-06 12:00")
    # Mon noon to Mon noon: Tue, Wed and two half days (Thu a holiday, Fri not a workday)
    assert back.between(start, end) == cal.between(start, end) == pd.Timedelta(days=3)
    # numpy's seven flags are kept as text: the calendar stays hashable, equal by value
    flags = fk.BusinessCalendar(weekmask=[1, 1, 1, 1, 0, 0, 0], holidays=["2025-01-02"])
    assert flags.weekmask == "1111000" and hash(flags) == hash(pickle.loads(pickle.dumps(flags)))
    assert flags.between(start, end) == pd.Timedelta(days=3)
    with pytest.raises(fk.EventLogError, match="7 flags"):
        fk.BusinessCalendar(weekmask=[1, 1, 1])


@settings(max_examples=20)
@given(event_logs())
def test_business_dwell_never_exceeds_calendar_dwell(events):
    log = fk.EventLog(events, **LOG_KW)
    cal = log._visits().dwell
    bus = log._visits(fk.BusinessCalendar()).dwell
    ok = cal != np.iinfo(np.int64).min
    assert (bus[ok] <= cal[ok]).all() and (bus[ok] >= 0).all()


def test_filter_stages_keeps_reopened_terminals_removed():
    # Lost, then reopened into B, then won: without B the Lost would sit next to the Won
    df = ev(
        [
            ["x", "A", "2025-01-01"],
            ["x", "L", "2025-01-02"],
            ["x", "B", "2025-01-03"],
            ["x", "W", "2025-01-04"],
        ]
    )
    log = fk.EventLog(df, **KW)
    sub = log.filter(stages=["A"])
    assert sub.deals()["outcome"].tolist() == ["won"]
    assert sub.quality.filtered == {"deals": 0, "rows": 2}
    sample = sample_log()
    assert sample.filter(stages=["Lead", "Demo", "Proposal"]).n_deals == sample.n_deals
