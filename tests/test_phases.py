"""Stage phases (``phases=``, ``by_phase``) and post-sale stages (``post_sale=``).

Hand-worked values on a four-deal log; the phase log equal to a log built directly from
the stage column mapped with pandas (sample and synthetic logs); post-sale events that do
not reopen a deal, and those that are bad rows.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.errors import InvalidParameterError

DAY = pd.Timedelta(days=1)

# ---------------------------------------------------------------- a hand-worked log
#: stages A B C D; phases P1 = {A, B}, P2 = {C}, P3 = {D}
HAND_PHASES = {"A": "P1", "B": "P1", "C": "P2", "D": "P3"}
HAND_KW = dict(
    deal="deal",
    stage="stage",
    time="ts",
    stages=["A", "B", "C", "D"],
    won="W",
    lost="L",
    as_of="2025-01-31",
)


def hand_events() -> pd.DataFrame:
    rows = [
        # d1: A B | C | D | won — P1 (1st) → P2 (10th) → P3 (12th) → W (20th)
        ("d1", "A", "2025-01-01"),
        ("d1", "B", "2025-01-03"),
        ("d1", "C", "2025-01-10"),
        ("d1", "D", "2025-01-12"),
        ("d1", "W", "2025-01-20"),
        # d2: back and forth — P1 (2nd) → P2 (5th) → P1 (8th) → P2 (15th) → L (25th)
        ("d2", "A", "2025-01-02"),
        ("d2", "C", "2025-01-05"),
        ("d2", "B", "2025-01-08"),
        ("d2", "C", "2025-01-15"),
        ("d2", "L", "2025-01-25"),
        # d3: open in P1 since the 5th (A then B: one visit of P1)
        ("d3", "A", "2025-01-05"),
        ("d3", "B", "2025-01-06"),
        # d4: A B A then lost — one visit of P1 (10th to 16th)
        ("d4", "A", "2025-01-10"),
        ("d4", "B", "2025-01-12"),
        ("d4", "A", "2025-01-14"),
        ("d4", "L", "2025-01-16"),
    ]
    df = pd.DataFrame(rows, columns=["deal", "stage", "ts"])
    df["ts"] = pd.to_datetime(df["ts"])
    return df


@pytest.fixture
def hand_log() -> fk.EventLog:
    return fk.EventLog(hand_events(), **HAND_KW, phases={"p": HAND_PHASES})


def test_hand_worked_funnel_per_phase(hand_log):
    by = hand_log.by_phase("p")
    assert by.stages == ["P1", "P2", "P3"]
    f = by.funnel().set_index("stage")
    # P1: all four reached; d1 (won) and d2 (furthest P2) advanced; d4 lost there; d3 open
    # P2: d1 (won: reached every phase) and d2; d1 advanced, d2 lost in P2
    # P3: d1 only
    assert f["reached"].tolist() == [4, 2, 1]
    assert f["advanced"].tolist() == [2, 1, 1]
    assert f["dropped"].tolist() == [1, 1, 0]
    assert f["open"].tolist() == [1, 0, 0]


def test_hand_worked_visits_and_dwell_per_phase(hand_log):
    by = hand_log.by_phase("p")
    v = by.visits()
    got = [
        (r.deal, r.stage, r.visit, r.entered.day, r.dwell / DAY, r.censored)
        for r in v.itertuples()
    ]
    assert got == [
        ("d1", "P1", 1, 1, 9.0, False),
        ("d1", "P2", 1, 10, 2.0, False),
        ("d1", "P3", 1, 12, 8.0, False),
        ("d2", "P1", 1, 2, 3.0, False),
        ("d2", "P2", 1, 5, 3.0, False),
        ("d2", "P1", 2, 8, 7.0, False),
        ("d2", "P2", 2, 15, 10.0, False),
        ("d3", "P1", 1, 5, 26.0, True),
        ("d4", "P1", 1, 10, 6.0, False),
    ]
    d = by.dwell().set_index("stage")
    # P1: dwell 3, 6, 7, 9 days and 26 censored: Kaplan–Meier S = .8, .6, .4, .2 after
    # each event; median 7 (first S <= .5), p75 9, p90 undefined (S never <= .1);
    # restricted mean to 26 days = 3 + 3*.8 + 1*.6 + 2*.4 + 17*.2 = 10.2 days
    assert d.loc["P1", "visits"] == 5 and d.loc["P1", "censored"] == 1
    assert d.loc["P1", "median"] == 7 * DAY
    assert d.loc["P1", "p75"] == 9 * DAY
    assert pd.isna(d.loc["P1", "p90"])
    assert d.loc["P1", "mean"] / DAY == pytest.approx(10.2)
    # P2: 2, 3 and 10 days, all complete: median 3, mean 5, p90 10
    assert d.loc["P2", "median"] == 3 * DAY
    assert d.loc["P2", "mean"] / DAY == pytest.approx(5.0)
    assert d.loc["P2", "p90"] == 10 * DAY
    assert d.loc["P3", "median"] == 8 * DAY and d.loc["P3", "visits"] == 1


def test_hand_worked_quality_and_rejects_carried_over(hand_log):
    by = hand_log.by_phase("p")
    q, q0 = by.quality, hand_log.quality
    assert (q.rows_in, q.deals, q.won, q.lost, q.open) == (q0.rows_in, 4, 1, 2, 1)
    assert q.as_of == q0.as_of == pd.Timestamp("2025-01-31")
    # four events merge into a phase visit: d1 B, d3 B, d4 B and A
    assert q0.rows_collapsed == 0 and q.rows_collapsed == 4
    assert q.rows_used == 12 and q.rows_in == q.rows_used + q.rows_rejected
    rej = by.rejects
    assert rej["reason"].tolist() == ["repeat"] * 4
    assert rej["row"].tolist() == [1, 11, 13, 14]
    assert by.phases == {} and hand_log.phases == {"p": HAND_PHASES}


def test_phase_log_keeps_the_options(hand_events_with_amount=None):
    ev = hand_events().assign(amount=100.0, team=lambda d: np.where(d.deal < "d3", "x", "y"))
    log = fk.EventLog(
        ev,
        **HAND_KW,
        amount="amount",
        attrs=["team"],
        stale_after="20D",
        phases={"p": HAND_PHASES},
    )
    by = log.by_phase("p")
    assert by.as_of == log.as_of and by.stale_after == log.stale_after
    assert by.attrs == ["team"] and by.won == ["W"] and by.lost == ["L"]
    # d3 silent since the 6th: stale in both views
    assert by.quality.stale == log.quality.stale == 1
    a, b = by.deals(), log.deals()
    for col in ("outcome_stage", "furthest_stage"):
        a[col], b[col] = a[col].astype(str), b[col].astype(str)
    pd.testing.assert_frame_equal(
        a.drop(columns="furthest_stage"), b.drop(columns="furthest_stage")
    )
    assert by.deals()["furthest_stage"].astype(str).tolist() == ["P3", "P2", "P1", "P1"]
    assert by.funnel(weight="amount")["reached"].tolist() == [400.0, 200.0, 100.0]


# ---------------------------------------------------------------- an independent build
SAMPLE_PHASES = {
    "decision": {
        "Lead": "need recognition",
        "Qualified": "need recognition",
        "Discovery": "information search",
        "Demo": "evaluation",
        "Proposal": "evaluation",
        "Negotiation": "purchase decision",
    },
    "sales": {
        "Lead": "lead identification",
        "Qualified": "first contact",
        "Discovery": "needs analysis",
        "Demo": "solution design",
        "Proposal": "solution design",
        "Negotiation": "contract negotiation",
    },
}


def _direct(events: pd.DataFrame, kw: dict, mapping: dict, as_of) -> fk.EventLog:
    """The phase log built by hand: the stage column mapped with pandas."""
    ev = events.copy()
    ev[kw["stage"]] = ev[kw["stage"]].map(lambda s: mapping.get(s, s))
    stages = list(dict.fromkeys(mapping[s] for s in kw["stages"]))
    return fk.EventLog(ev, **{**kw, "stages": stages, "as_of": as_of})


def _assert_same_tables(a: fk.EventLog, b: fk.EventLog) -> None:
    assert a.stages == b.stages
    pd.testing.assert_frame_equal(a.visits(), b.visits())
    pd.testing.assert_frame_equal(a.deals(), b.deals())
    pd.testing.assert_frame_equal(a.transitions(), b.transitions())
    pd.testing.assert_frame_equal(a.funnel(), b.funnel())
    pd.testing.assert_frame_equal(a.dwell(), b.dwell())
    pd.testing.assert_frame_equal(a.kpis(), b.kpis())
    # rejects show the input rows as given: the phase log's hold the raw stage names
    cols = ["row", "reason"]
    pd.testing.assert_frame_equal(a.rejects[cols], b.rejects[cols])
    assert a.quality == b.quality


@pytest.mark.parametrize("name", ["decision", "sales"])
def test_sample_by_phase_equals_a_log_of_mapped_stages(name):
    events = fk.datasets.load_sample()
    kw = fk.datasets.SAMPLE_KWARGS
    log = fk.EventLog(events, **kw, phases=SAMPLE_PHASES)
    by = log.by_phase(name)
    direct = _direct(events, kw, SAMPLE_PHASES[name], log.as_of)
    _assert_same_tables(by, direct)
    # the views differ from the stage log where they should: fewer steps, same deals
    assert by.quality.deals == log.quality.deals and by.n_events < log.n_events
    assert by.funnel()["reached"].iloc[0] == log.funnel()["reached"].iloc[0]


def test_synthetic_by_phase_equals_a_log_of_mapped_stages():
    # ties, re-logged stages, backward moves and reopened deals all present
    events = fk.datasets.synthetic(800, seed=7, p_tie=0.1, p_back=0.1, p_reopen=0.05)
    kw = dict(
        deal="deal_id",
        stage="stage",
        time="ts",
        stages=list(fk.datasets.SAMPLE_KWARGS["stages"]),
        won="Won",
        lost=["Lost", "Disqualified"],
        amount="amount",
        attrs=["team"],
        stale_after="45D",
    )
    log = fk.EventLog(events, **kw, phases=SAMPLE_PHASES)
    assert log.quality.reopened > 0 and log.quality.rows_collapsed > 0
    for name in SAMPLE_PHASES:
        by = log.by_phase(name)
        _assert_same_tables(by, _direct(events, kw, SAMPLE_PHASES[name], log.as_of))


def test_every_analysis_reads_per_phase():
    events = fk.datasets.load_sample()
    kw = fk.datasets.SAMPLE_KWARGS
    by = fk.EventLog(events, **kw, phases=SAMPLE_PHASES).by_phase("decision")
    direct = _direct(events, kw, SAMPLE_PHASES["decision"], by.as_of)
    pd.testing.assert_frame_equal(by.trend(freq="QE"), direct.trend(freq="QE"))
    pd.testing.assert_frame_equal(by.compare(by="team"), direct.compare(by="team"))
    pd.testing.assert_frame_equal(
        by.key_stages(n_boot=50, seed=1, progress=False),
        direct.key_stages(n_boot=50, seed=1, progress=False),
    )
    rep = by.report(charts=False, key_kwargs={"n_boot": 20})
    assert rep.tables["funnel"]["stage"].tolist() == by.stages
    pd.testing.assert_frame_equal(rep.tables["funnel"], by.funnel())


def test_dropped_rows_stay_rejects_in_the_phase_log():
    ev = hand_events()
    ev.loc[2, "ts"] = None  # d1 C: missing time
    ev.loc[len(ev)] = ["d5", "P2", pd.Timestamp("2025-01-03")]  # not a stage, named as a phase
    log = fk.EventLog(ev, **{**HAND_KW, "errors": "drop"}, phases={"p": HAND_PHASES})
    by = log.by_phase("p")
    bad = {"missing_time", "unknown_stage"}
    r0, r1 = log.rejects, by.rejects
    pd.testing.assert_frame_equal(
        r0[r0["reason"].isin(bad)].reset_index(drop=True),
        r1[r1["reason"].isin(bad)].reset_index(drop=True),
    )
    assert r1["reason"].value_counts()["unknown_stage"] == 1  # "P2" stays unknown
    assert "d5" not in set(by.deals()["deal"])


def test_stage_map_composes_with_phases():
    ev = hand_events()
    ev["stage"] = ev["stage"].replace({"A": "a (old)"})
    kw = {**HAND_KW, "stage_map": {"a (old)": "A"}}
    by = fk.EventLog(ev, **kw, phases={"p": HAND_PHASES}).by_phase("p")
    ref = fk.EventLog(hand_events(), **HAND_KW, phases={"p": HAND_PHASES}).by_phase("p")
    pd.testing.assert_frame_equal(by.funnel(), ref.funnel())
    pd.testing.assert_frame_equal(by.visits(), ref.visits())


def test_inferred_stage_order_orders_phases_by_first_stage():
    ev = hand_events()
    kw = {k: v for k, v in HAND_KW.items() if k != "stages"}
    log = fk.EventLog(ev, **kw, phases={"p": {"A": "x", "B": "x", "C": "y", "D": "z"}})
    assert log.stages == ["A", "B", "C", "D"]
    assert log.by_phase("p").stages == ["x", "y", "z"]


def test_filter_keeps_the_phases_of_the_stages_kept(hand_log):
    kept = hand_log.filter(stages=["A", "C"])
    assert kept.phases == {"p": {"A": "P1", "C": "P2"}}
    assert kept.by_phase("p").stages == ["P1", "P2"]
    north = hand_log.filter(deals=["d1", "d2"]).by_phase("p")
    assert north.funnel()["reached"].tolist() == [2, 2, 1]


# ---------------------------------------------------------------- validation
def test_unknown_stage_in_a_mapping_names_a_close_match():
    bad = {**HAND_PHASES, "Bb": "P1"}
    with pytest.raises(InvalidParameterError, match=r"phases\['p'\].*'Bb' \(did you mean 'B'\?\)"):
        fk.EventLog(hand_events(), **HAND_KW, phases={"p": bad})


def test_unmapped_stages_are_named():
    partial = {"A": "P1", "C": "P2"}
    with pytest.raises(InvalidParameterError, match=r"leaves 2 stage\(s\) unmapped: \['B', 'D'\]"):
        fk.EventLog(hand_events(), **HAND_KW, phases={"p": partial})


@pytest.mark.parametrize("clash", ["W", "L", "stale"])
def test_phase_named_like_an_outcome_is_refused(clash):
    with pytest.raises(InvalidParameterError, match="outcome names"):
        fk.EventLog(hand_events(), **HAND_KW, phases={"p": {**HAND_PHASES, "D": clash}})


def test_outcomes_are_not_mapped():
    with pytest.raises(InvalidParameterError, match=r"maps the outcomes \['W'\]"):
        fk.EventLog(hand_events(), **HAND_KW, phases={"p": {**HAND_PHASES, "W": "P3"}})


@pytest.mark.parametrize(
    "phases, match",
    [
        ([("p", HAND_PHASES)], "must be a mapping"),
        ({"p": {}}, "non-empty mapping"),
        ({"p": {**HAND_PHASES, "D": 3}}, "phase names must be non-empty strings"),
        ({"": HAND_PHASES}, "names must be non-empty strings"),
    ],
)
def test_malformed_phases(phases, match):
    with pytest.raises(InvalidParameterError, match=match):
        fk.EventLog(hand_events(), **HAND_KW, phases=phases)


def test_by_phase_of_an_unknown_name(hand_log):
    log = fk.EventLog(hand_events(), **HAND_KW, phases={"decision": HAND_PHASES})
    with pytest.raises(InvalidParameterError, match=r"'decison' is not.*did you mean 'decision'"):
        log.by_phase("decison")
    plain = fk.EventLog(hand_events(), **HAND_KW)
    with pytest.raises(InvalidParameterError, match="declare them with"):
        plain.by_phase("p")


# ---------------------------------------------------------------- post-sale stages
def post_sale_events() -> pd.DataFrame:
    ev = hand_events()
    extra = pd.DataFrame(
        [
            ("d1", "Delivery", "2025-01-20"),  # at the win's time: after it
            ("d1", "After-sales", "2025-01-30"),
        ],
        columns=["deal", "stage", "ts"],
    )
    extra["ts"] = pd.to_datetime(extra["ts"])
    return pd.concat([ev, extra], ignore_index=True)


PS = ["Delivery", "After-sales"]


def test_events_after_a_win_reopen_the_deal_without_post_sale():
    kw = {k: v for k, v in HAND_KW.items() if k != "stages"}
    log = fk.EventLog(post_sale_events(), **kw)
    d1 = log.deals().set_index("deal").loc["d1"]
    assert d1["reopened"] and d1["outcome"] == "open"
    assert log.quality.reopened == 1 and log.quality.won == 0


def test_post_sale_events_do_not_reopen_the_deal():
    log = fk.EventLog(post_sale_events(), **HAND_KW, post_sale=PS)
    q = log.quality
    assert (q.won, q.reopened, q.rows_post_sale, q.post_sale_deals) == (1, 0, 2, 1)
    assert q.rows_in == q.rows_used + q.rows_rejected == 18
    assert q.by_reason == {"post_sale": 2}
    t = log.post_sale()
    assert list(t.columns) == ["deal", "stage", "time", "won_at", "days_after_won"]
    assert t["deal"].tolist() == ["d1", "d1"]
    assert t["stage"].tolist() == PS and list(t["stage"].cat.categories) == PS
    assert t["days_after_won"].tolist() == [0.0, 10.0]
    assert (t["won_at"] == pd.Timestamp("2025-01-20")).all()
    assert log.rejects["reason"].tolist() == ["post_sale", "post_sale"]
    assert log.rejects["row"].tolist() == [16, 17]
    # the funnel itself is the one without the post-sale rows
    plain = fk.EventLog(hand_events(), **HAND_KW)
    pd.testing.assert_frame_equal(log.funnel(), plain.funnel())
    pd.testing.assert_frame_equal(log.dwell(), plain.dwell())
    d = q.to_dict()
    assert (d["rows_post_sale"], d["post_sale_deals"]) == (2, 1)
    frame = q.to_frame().set_index("item")["count"]
    assert frame["rows_post_sale"] == 2 and frame["post_sale_deals"] == 1
    assert "2 post-sale" in str(q)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_report_page_counts_post_sale_rows(lang):
    from funnelkit.report import build_report

    log = fk.EventLog(post_sale_events(), **HAND_KW, post_sale=PS)
    page = build_report(log, charts=False, key_kwargs={"n_boot": 0}, lang=lang).to_html()
    words = {
        "en": "After-sale events (post-sale stages such as delivery): 2 rows; won deals with "
        "such events: 1.",
        "zh": "1 笔赢单的 2 行是售后事件",
    }
    assert words[lang] in page
    # the rejects table describes the reason too
    described = {"en": "after-sale event of a won deal", "zh": "赢单后的售后事件"}
    assert described[lang] in page
    plain = build_report(fk.EventLog(hand_events(), **HAND_KW), charts=False,
                         key_kwargs={"n_boot": 0}, lang=lang).to_html()  # fmt: skip
    assert "after-sale" not in plain and "售后事件" not in plain


def test_post_sale_events_are_used_rows_for_the_default_as_of():
    kw = {k: v for k, v in HAND_KW.items() if k != "as_of"}
    log = fk.EventLog(post_sale_events(), **kw, post_sale=PS)
    assert log.as_of == pd.Timestamp("2025-01-30")  # the after-sales event
    with pytest.raises(fk.EventLogError, match="after as of"):
        fk.EventLog(post_sale_events(), **kw, post_sale=PS, as_of="2025-01-25")


def test_post_sale_carries_amount_and_attributes():
    ev = post_sale_events().assign(amount=lambda d: np.where(d.deal == "d1", 50.0, 10.0))
    ev["team"] = "t1"
    log = fk.EventLog(ev, **HAND_KW, post_sale=PS, amount="amount", attrs=["team"])
    t = log.post_sale()
    assert t["amount"].tolist() == [50.0, 50.0] and t["team"].tolist() == ["t1", "t1"]


def test_days_after_won_counts_from_the_first_of_a_run_of_wins():
    ev = post_sale_events()
    ev.loc[len(ev)] = ["d1", "W", pd.Timestamp("2025-01-22")]  # a repeated win: collapsed
    ev.loc[len(ev)] = ["d1", "Delivery", pd.Timestamp("2025-01-25")]
    log = fk.EventLog(ev, **HAND_KW, post_sale=PS)
    t = log.post_sale()
    assert t["time"].dt.day.tolist() == [20, 25, 30]
    assert t["days_after_won"].tolist() == [0.0, 5.0, 10.0]
    assert log.quality.by_reason == {"terminal_run": 1, "post_sale": 3}


def test_post_sale_before_the_win_is_a_bad_row():
    ev = post_sale_events()
    ev.loc[len(ev)] = ["d3", "Delivery", pd.Timestamp("2025-01-07")]  # d3 never won
    ev.loc[len(ev)] = ["d1", "Delivery", pd.Timestamp("2025-01-15")]  # before d1's win
    with pytest.raises(
        fk.EventLogError, match=r"2 rows post sale not won.*log the won event"
    ) as e:
        fk.EventLog(ev, **HAND_KW, post_sale=PS)
    assert e.value.failure_cases["row"].tolist() == [16 + 2, 16 + 3]
    log = fk.EventLog(ev, **{**HAND_KW, "errors": "drop"}, post_sale=PS)
    q = log.quality
    assert q.by_reason == {"post_sale_not_won": 2, "post_sale": 2}
    assert (q.rows_dropped, q.rows_post_sale, q.won) == (2, 2, 1)
    r = log.rejects
    assert r.loc[r["reason"] == "post_sale_not_won", "row"].tolist() == [18, 19]
    assert q.rows_in == q.rows_used + q.rows_rejected


def test_post_sale_in_a_reopened_deal():
    rows = [
        # won, delivered, then back in the funnel: the delivery followed a win
        ("r1", "A", "2025-01-01"),
        ("r1", "W", "2025-01-05"),
        ("r1", "Delivery", "2025-01-06"),
        ("r1", "B", "2025-01-10"),
        # won, back in the funnel, then a delivery: not after a win (bad row)
        ("r2", "A", "2025-01-01"),
        ("r2", "W", "2025-01-05"),
        ("r2", "B", "2025-01-06"),
        ("r2", "Delivery", "2025-01-08"),
    ]
    ev = pd.DataFrame(rows, columns=["deal", "stage", "ts"]).assign(
        ts=lambda d: pd.to_datetime(d["ts"])
    )
    log = fk.EventLog(ev, **{**HAND_KW, "errors": "drop"}, post_sale=PS)
    assert log.quality.reopened == 2
    t = log.post_sale()
    assert t["deal"].tolist() == ["r1"] and t["days_after_won"].tolist() == [1.0]
    assert log.quality.by_reason["post_sale_not_won"] == 1


def test_post_sale_with_business_days():
    cal = fk.BusinessCalendar()
    log = fk.EventLog(post_sale_events(), **HAND_KW, post_sale=PS, calendar=cal)
    # 2025-01-20 (Mon) to 2025-01-30 (Thu): 8 business days
    assert log.post_sale()["days_after_won"].tolist() == [0.0, 8.0]


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(post_sale=["W"]), r"also in `won`"),
        (dict(post_sale=["A"]), r"also in `stages`"),
        (dict(post_sale=["Delivery", "Delivery"]), "more than once"),
        (dict(post_sale=["Delivery"], won=None), "needs a `won` stage"),
    ],
)
def test_post_sale_validation(kw, match):
    with pytest.raises(InvalidParameterError, match=match):
        fk.EventLog(post_sale_events(), **{**HAND_KW, **kw})


def test_empty_post_sale_table_has_the_columns():
    log = fk.EventLog(hand_events(), **HAND_KW, post_sale=PS)
    t = log.post_sale()
    assert len(t) == 0 and list(t.columns) == ["deal", "stage", "time", "won_at", "days_after_won"]
    assert log.quality.rows_post_sale == 0


def test_post_sale_phases_in_the_phase_log():
    phases = {"p": {**HAND_PHASES, "Delivery": "after-sales", "After-sales": "after-sales"}}
    log = fk.EventLog(post_sale_events(), **HAND_KW, post_sale=PS, phases=phases)
    by = log.by_phase("p")
    assert by.post_sale_stages == ["after-sales"] and by.stages == ["P1", "P2", "P3"]
    t = by.post_sale()
    assert t["stage"].tolist() == ["after-sales"] * 2
    assert t["days_after_won"].tolist() == [0.0, 10.0]
    assert (by.quality.rows_post_sale, by.quality.won) == (2, 1)
    # a post-sale stage left out of the mapping keeps its name
    kept = fk.EventLog(post_sale_events(), **HAND_KW, post_sale=PS, phases={"p": HAND_PHASES})
    assert kept.by_phase("p").post_sale()["stage"].tolist() == PS


def test_a_phase_cannot_mix_funnel_and_post_sale_stages():
    phases = {"p": {**HAND_PHASES, "Delivery": "P3"}}
    with pytest.raises(InvalidParameterError, match=r"phases \['P3'\] hold both"):
        fk.EventLog(post_sale_events(), **HAND_KW, post_sale=PS, phases=phases)


def test_post_sale_row_order_invariance(rng):
    ev = post_sale_events()
    a = fk.EventLog(ev, **HAND_KW, post_sale=PS)
    b = fk.EventLog(ev.iloc[rng.permutation(len(ev))], **HAND_KW, post_sale=PS)
    pd.testing.assert_frame_equal(a.post_sale(), b.post_sale())
    assert a.quality == b.quality


def test_sample_with_deliveries_after_the_wins(rng):
    sample = fk.datasets.load_sample()
    won = sample[sample["stage"] == "Won"]
    extra = won.assign(
        stage="Delivery", ts=won["ts"] + pd.to_timedelta(rng.integers(1, 30, len(won)), unit="D")
    )
    events = pd.concat([sample, extra], ignore_index=True)
    kw = fk.datasets.SAMPLE_KWARGS
    log = fk.EventLog(events, **kw, post_sale="Delivery", as_of="2025-09-01")
    base = fk.EventLog(sample, **kw, as_of="2025-09-01")
    t = log.post_sale()
    # independent: each delivery minus its deal's win, from the input
    ref = extra.merge(won[["deal_id", "ts"]], on="deal_id", suffixes=("", "_won"))
    ref = ref.sort_values(["deal_id", "ts"]).reset_index(drop=True)
    assert t["deal"].tolist() == ref["deal_id"].tolist()
    np.testing.assert_allclose(t["days_after_won"], (ref["ts"] - ref["ts_won"]) / DAY)
    assert log.quality.rows_post_sale == len(extra) == log.quality.post_sale_deals
    pd.testing.assert_frame_equal(log.funnel(), base.funnel())
    assert log.quality.reopened == base.quality.reopened


# ---------------------------------------------------------------- dask
def test_dask_by_phase_and_post_sale_equal_in_memory():
    dd = pytest.importorskip("dask.dataframe")
    events = post_sale_events()
    kw = dict(HAND_KW, post_sale=PS, phases={"p": HAND_PHASES})
    mem = fk.EventLog(events, **kw)
    dlog = fk.EventLog(dd.from_pandas(events, npartitions=2), **kw)
    assert dlog.phases == mem.phases and dlog.post_sale_stages == PS
    assert dlog.quality == mem.quality
    # the deal ids come back from dask as its string dtype: compare the values
    pd.testing.assert_frame_equal(dlog.post_sale(), mem.post_sale(), check_dtype=False)
    by = dlog.by_phase("p")
    assert by.stages == ["P1", "P2", "P3"]
    pd.testing.assert_frame_equal(by.funnel(), mem.by_phase("p").funnel())
    assert by.quality == mem.by_phase("p").quality
    with pytest.raises(InvalidParameterError, match="not a phase mapping"):
        dlog.by_phase("nope")


# ---------------------------------------------------------------- command line
CONFIG = """
post_sale = ["Delivery"]
[phases.decision]
Lead = "need recognition"
Qualified = "need recognition"
Discovery = "information search"
Demo = "evaluation"
Proposal = "evaluation"
Negotiation = "purchase decision"
Delivery = "after-sales"
"""


def _sample_with_deliveries(path):
    sample = fk.datasets.load_sample()
    won = sample[sample["stage"] == "Won"]
    extra = won.assign(stage="Delivery", ts=won["ts"] + pd.Timedelta(days=3))
    events = pd.concat([sample, extra], ignore_index=True)
    events.to_parquet(path)
    return events


def _cli_args(data):
    kw = fk.datasets.SAMPLE_KWARGS
    return [
        str(data),
        "--deal",
        "deal_id",
        "--stage",
        "stage",
        "--time",
        "ts",
        "--stages",
        ",".join(kw["stages"]),
        "--won",
        "Won",
        "--lost",
        "Lost,Disqualified",
        "--stale-after",
        "60D",
    ]


def test_cli_validate_per_phase_with_post_sale_from_config(tmp_path, capsys):
    from funnelkit.cli import main

    cfg = tmp_path / "funnel.toml"
    cfg.write_text(CONFIG)
    data = tmp_path / "events.parquet"
    events = _sample_with_deliveries(data)
    rc = main(
        ["validate", *_cli_args(data), "--config", str(cfg), "--phases", "decision", "--json"]
    )
    assert rc == 0
    q = json.loads(capsys.readouterr().out)
    assert q["stages"] == list(dict.fromkeys(SAMPLE_PHASES["decision"].values()))
    assert q["rows_post_sale"] == q["post_sale_deals"] == 60
    kw = {k: v for k, v in fk.datasets.SAMPLE_KWARGS.items() if k not in ("amount", "attrs")}
    lib = fk.EventLog(
        events, **kw, post_sale="Delivery", phases={"decision": SAMPLE_PHASES["decision"]}
    )
    assert q == json.loads(json.dumps(lib.by_phase("decision").quality.to_dict()))


def test_cli_post_sale_option(tmp_path, capsys):
    from funnelkit.cli import main

    data = tmp_path / "events.parquet"
    _sample_with_deliveries(data)
    assert main(["validate", *_cli_args(data), "--post-sale", "Delivery", "--json"]) == 0
    q = json.loads(capsys.readouterr().out)
    assert q["rows_post_sale"] == 60 and q["by_reason"]["post_sale"] == 60
    # without it the deliveries are unknown stages: a usage error naming them
    assert main(["validate", *_cli_args(data)]) == 2
    assert "Delivery" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_report_per_phase_equals_the_library(tmp_path):
    from funnelkit.cli import main

    cfg = tmp_path / "funnel.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "report"
    rc = main(["report", "--sample", "--config", str(cfg), "--phases", "decision", "--quiet",
               "-o", str(out)])  # fmt: skip
    assert rc == 0
    got = pd.read_parquet(out / "tables" / "funnel.parquet")
    log = fk.EventLog(
        fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS, post_sale="Delivery",
        phases={"decision": SAMPLE_PHASES["decision"]},
    )  # fmt: skip
    want = log.by_phase("decision").funnel()
    assert got["stage"].astype(str).tolist() == want["stage"].astype(str).tolist()
    assert got["reached"].tolist() == want["reached"].tolist()
    np.testing.assert_allclose(got["conversion"], want["conversion"])


def test_cli_monitor_per_phase_equals_the_library(tmp_path):
    """funnelkit monitor --phases NAME checks the log per phase, as log.by_phase(NAME)."""
    from funnelkit.cli import main

    cfg = tmp_path / "funnel.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "alerts"
    rc = main(["monitor", "--sample", "--config", str(cfg), "--phases", "decision",
               "--weeks", "4", "-o", str(out)])  # fmt: skip
    doc = json.loads((out / "alerts.json").read_text())
    assert rc == (3 if doc["fired"] else 0)
    log = fk.EventLog(
        fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS, post_sale="Delivery",
        phases={"decision": SAMPLE_PHASES["decision"]},
    )  # fmt: skip
    want = log.by_phase("decision").alerts(weeks=4)
    got = pd.DataFrame(doc["checks"])
    assert len(got) == len(want) and doc["fired"] == int(want["alert"].sum())
    phases = set(SAMPLE_PHASES["decision"].values())
    stages = {x for x in got["stage"].dropna()}
    assert stages and stages <= phases  # the checks are per phase, not per stage
    assert sorted(got["rule"].unique()) == sorted(want["rule"].unique())


@pytest.mark.parametrize(
    "config, extra, words",
    [
        (
            CONFIG,
            ["--phases", "sales"],
            "no [phases.sales] table in --config; it declares decision",
        ),
        ("", ["--phases", "decision"], "the log has no phases"),
        ("phases = 3\n", [], "`phases` must hold one table per mapping"),
        ("[phases.decision]\nLead = 1\n", [], "`phases` must hold one table per mapping"),
        ("[phases.decision]\nLeed = 'x'\n", [], "did you mean 'Lead'"),
    ],
)
def test_cli_phase_errors_exit_2(tmp_path, capsys, config, extra, words):
    from funnelkit.cli import main

    cfg = tmp_path / "funnel.toml"
    cfg.write_text(config)
    assert main(["validate", "--sample", "--config", str(cfg), *extra]) == 2
    assert words in capsys.readouterr().err
