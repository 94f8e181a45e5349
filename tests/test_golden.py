"""The eight golden deals (tests/data/golden, a copy of the design notes' example): every
table, exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from conftest import GOLDEN, GOLDEN_KW, days


def expected(name: str) -> pd.DataFrame:
    return pd.read_csv(GOLDEN / f"expected_{name}.csv", keep_default_na=True)


def assert_days(actual: pd.Series, expect: pd.Series) -> None:
    np.testing.assert_allclose(
        days(actual), expect.to_numpy(dtype=float), atol=1e-6, equal_nan=True
    )


def test_row_accounting(golden_log):
    q = golden_log.quality
    assert (q.rows_in, q.rows_used, q.rows_removed, q.rows_collapsed, q.rows_dropped) == (
        31,
        27,
        1,
        3,
        0,
    )
    assert q.by_reason == {"reopened_terminal": 1, "repeat": 2, "terminal_run": 1}
    assert (q.won, q.lost, q.stale, q.open, q.reopened) == (3, 3, 1, 1, 1)
    rej = golden_log.rejects
    assert len(rej) == 4
    got = set(zip(rej["deal"], rej["stage"], rej["ts"], rej["reason"], strict=False))
    assert got == {
        ("d7", "L1", "2025-01-10", "reopened_terminal"),
        ("d4", "B", "2025-01-04", "repeat"),
        ("d7", "A", "2025-01-20", "repeat"),
        ("d7", "W", "2025-02-10 01:00", "terminal_run"),
    }


def test_visits(golden_log):
    exp = expected("visits")
    got = golden_log.visits()
    assert list(got.columns) == [
        "deal",
        "stage",
        "visit",
        "entered",
        "next_stage",
        "dwell",
        "censored",
    ]
    assert got["deal"].astype(str).tolist() == exp["deal"].tolist()
    assert got["stage"].astype(str).tolist() == exp["stage"].tolist()
    assert got["visit"].tolist() == exp["visit"].tolist()
    assert (got["entered"] == pd.to_datetime(exp["entered"])).all()
    nxt = got["next_stage"].astype(object).where(got["next_stage"].notna(), None).tolist()
    assert nxt == exp["next_stage"].astype(object).where(exp["next_stage"].notna(), None).tolist()
    assert got["censored"].tolist() == exp["censored"].tolist()
    assert_days(got["dwell"], exp["dwell_days"])


def test_deals(golden_log):
    exp = expected("deals")
    got = golden_log.deals()
    assert got["deal"].astype(str).tolist() == exp["deal"].tolist()
    assert got["outcome"].astype(str).tolist() == exp["outcome"].tolist()
    oc = got["outcome_stage"].astype(object).where(got["outcome_stage"].notna(), None).tolist()
    assert (
        oc
        == exp["outcome_stage"].astype(object).where(exp["outcome_stage"].notna(), None).tolist()
    )
    assert got["furthest_stage"].astype(str).tolist() == exp["furthest_stage"].tolist()
    assert (got["first_event"] == pd.to_datetime(exp["first_event"])).all()
    assert (got["last_event"] == pd.to_datetime(exp["last_event"])).all()
    assert_days(got["cycle_time"], exp["cycle_time_days"])
    assert got["reopened"].tolist() == exp["reopened"].tolist()


def test_transitions(golden_log):
    exp = expected("transitions")
    got = golden_log.transitions().sort_values(["from_stage", "to_stage"]).reset_index(drop=True)
    exp = exp.sort_values(["from_stage", "to_stage"]).reset_index(drop=True)
    for col in ("from_stage", "to_stage", "transitions", "deals"):
        assert got[col].tolist() == exp[col].tolist(), col
    np.testing.assert_allclose(got["share"], exp["share"], atol=1e-6)
    assert_days(got["dwell_mean"], exp["dwell_mean_days"])
    assert_days(got["dwell_median"], exp["dwell_median_days"])
    assert_days(got["dwell_p90"], exp["dwell_p90_days"])


@pytest.mark.parametrize("skips", ["implied", "strict"])
def test_funnel(golden_log, skips):
    exp = expected(f"funnel_{skips}")
    got = golden_log.funnel(skips=skips)
    assert got["stage"].tolist() == exp["stage"].tolist()
    for col in ("reached", "advanced", "dropped", "open"):
        assert got[col].tolist() == exp[col].tolist(), col
    # the expected tables hold the closed-deal ratios (the golden README's last paragraph);
    # the Aalen–Johansen columns are worked out by hand in test_conversion_by_hand
    for exp_col, col in (
        ("conversion", "conversion_closed"),
        ("conversion_low", "conversion_closed_low"),
        ("conversion_high", "conversion_closed_high"),
        ("conversion_raw", "conversion_raw"),
        ("cumulative", "cumulative_closed"),
        ("win_rate_from", "win_rate_from_closed"),
    ):
        np.testing.assert_allclose(got[col], exp[exp_col], atol=1e-6, err_msg=col)
    assert (got["skips"] == skips).all()


def test_dwell(golden_log):
    exp = expected("dwell")
    got = golden_log.dwell()
    assert got["stage"].tolist() == exp["stage"].tolist()
    assert got["visits"].tolist() == exp["visits"].tolist()
    assert got["censored"].tolist() == exp["censored"].tolist()
    for col in ("mean", "median", "p75", "p90"):
        assert_days(got[col], exp[f"{col}_days"])


def test_conversion_by_hand(golden_log):
    """The Aalen–Johansen ``conversion`` and ``win_rate_from`` of the eight golden deals.

    One subject per deal and stage reached; the clock starts at the deal's first entry of
    the stage, or, for a reach implied by a later stage or the win (no visit), at the
    moment it went past, so it advances at 0 days. Advance = first entry of a later stage
    or the win (d3's backward move C → B does not undo its progress); drop = the loss;
    deals not resolved at as_of (2025-03-01) — open, and d5, stale since 2025-02-06 —
    censored there. A stage's silent rest counts as stale (lost) only when its curve has
    levelled off: no advance during the last ``stale_after`` (30 days) of its follow-up.

    Stage B (implied), 8 subjects, times in days:
      0 d2 advance (skipped B: implied reach when entering C on 01-08), 0 d6 lost (L2 at
      its entry), 3 d3 advance, 4.625 d8 lost, 5 d1 advance, 16.04 d7 advance (won 02-10
      01:00 from 01-25), 43 d4 advance (B 01-03 → C 02-15), 53 d5 censored (silent since
      entering B on 01-07):
      F = 1/8 + 6/8·1/6 + (5/8·4/5)·1/4 + 3/8·1/3 + 2/8·1/2 = 5/8 = 0.625, S = 1/8.
      d4 advanced after 43 days of silence in B, only 10 days before the largest
      follow-up (53 < 43 + 30): deals do revive after 30 silent days here, so d5's 1/8
      stays unresolved (the interval reaches up to 0.75 and more), although the counts
      call d5 stale, as DESIGN §2 defines.
    Stage C (implied), 5 subjects: 0 d7 advance (won without entering C), 7 d2 lost,
      10 d1 advance, 14 d4 censored (still in C at as_of), 23 d3 advance (first entry
      01-09, won 02-01):
        t=0:  Y=5, one advance  F = 1/5 = 0.2,            S = 4/5
        t=7:  Y=4, one loss                               S = 0.8·3/4 = 0.6
        t=10: Y=3, one advance  F = 0.2 + 0.6/3 = 0.4,    S = 0.4
        t=14: d4 censored (Y 2 → 1): its 0.4 of unresolved mass moves to those still at risk
        t=23: Y=1, one advance  F = 0.4 + 0.4/1 = 0.8,    S = 0
      so conversion = 0.8 (the closed ratio says 3/4). d4 leaves S(14) = 0.4 unresolved,
      which the estimator hands to d3's later advance: to fewer than 10 deals at risk
      (MIN_AT_RISK; here one), so those 0.4 count as unresolved and the interval's lower
      end drops by them (the upper end keeps the log(−log) value: nothing went to loss). Variance (Marubini–Valsecchi): first term 0.6²/(5·4) + 0.6²/(4·3) +
      0.4²/(3·2) = 0.0746667, second 1·1·4/5³ + 0.36·2/3³ = 0.0586667, third 0.6/5² +
      0.4·0.6/3² = 0.0506667: var = 0.0746667 + 0.0586667 − 2·0.0506667 = 0.032.
    Stage A: all 8 advance (d4 reaches A implied, at 0) → 1.0; D: d1 (5 days), d3 and d7
      (implied by the win, 0) advance → 1.0. cumulative = 1, 1, 0.625, 0.5.
    win_rate_from C: 0 d7 won, 7 d2 lost, 14 d4 censored, 15 d1 won, 23 d3 won →
      F = 0.2, S 0.6 after 7, then 0.6/2 = 0.3 at 15 and 0.3 at 23: 0.8.
    win_rate_from A: 4 d6 L, 4.625 d8 L, 14 d2 L, 24 d1 W, 30 d3 W, 35.04 d7 W, 55 d5 and
      57 d4 censored → 3 × 1/8 = 0.375 (the closed share says 3/7); B: 0 d6 L, 4.625 d8 L,
      7 d2 L, 16.04 d7 W, 20 d1 W, 26 d3 W, 53 d5 and 57 d4 censored → 0.375.
    Strict (only entering counts): B drops d2: 4/7; C drops d7: 7 d2 lost, 10 d1
      advance (F = 3/4·1/3 = 0.25), 14 d4 censored, 23 d3 advance (+0.5) → 0.75.
    """
    f = golden_log.funnel().set_index("stage")
    np.testing.assert_allclose(f["conversion"], [1.0, 0.625, 0.8, 1.0], atol=1e-12)
    np.testing.assert_allclose(f["unresolved"], [0.0, 0.125, 0.4, 0.0], atol=1e-12)
    assert f.loc["B", "conversion_high"] >= 0.75
    np.testing.assert_allclose(f["cumulative"], [1.0, 1.0, 0.625, 0.5], atol=1e-12)
    np.testing.assert_allclose(f["win_rate_from"], [0.375, 0.375, 0.8, 1.0], atol=1e-12)
    z = 1.959963984540054
    se = np.sqrt(0.032) / (0.8 * abs(np.log(0.8)))
    theta = np.log(-np.log(0.8))
    low = np.exp(-np.exp(theta + z * se))  # 0.204: minus the 0.4 handed to d3, floored
    assert f.loc["C", "conversion_low"] == max(low - 0.4, 0.0) == 0.0
    assert f.loc["C", "conversion_high"] == pytest.approx(np.exp(-np.exp(theta - z * se)))
    # an estimate of 1 has no spread to transform: the Wilson interval with n = 8 deals
    assert f.loc["A", "conversion_low"] == pytest.approx(0.675592, abs=1e-6)
    s = golden_log.funnel(skips="strict").set_index("stage")
    np.testing.assert_allclose(s["conversion"], [1.0, 4 / 7, 0.75, 1.0], atol=1e-12)


def test_unresolved_mass_widens_the_interval(golden_events):
    """Without stale_after, d5 stays open in B (censored at 53 days, after d4's advance
    at 43): B's estimate is 5/8 with 1/8 unresolved, and the upper bound adds it."""
    kw = {k: v for k, v in GOLDEN_KW.items() if k != "stale_after"}
    f = fk.EventLog(golden_events, **kw).funnel().set_index("stage")
    assert f.loc["B", "conversion"] == pytest.approx(0.625)
    assert f.loc["B", "unresolved"] == pytest.approx(0.125)
    assert f.loc["B", "conversion_high"] >= 0.625 + 0.125
    # with stale_after, a later as_of lets B's curve level off: 30 days pass after d4's
    # late advance (43 days) with d5 still silent, so d5 counts as stale — lost
    later = fk.EventLog(golden_events, **{**GOLDEN_KW, "as_of": "2025-04-15"}).funnel()
    later = later.set_index("stage")
    assert later.loc["B", "conversion"] == pytest.approx(0.625)
    assert later.loc["B", "unresolved"] == 0.0
    now = fk.EventLog(golden_events, **GOLDEN_KW).funnel().set_index("stage")
    assert now.loc["B", "unresolved"] == pytest.approx(0.125)
    assert later.loc["B", "conversion_high"] == pytest.approx(
        now.loc["B", "conversion_high"] - 0.125
    )
    # nothing resolved at all: NaN and a warning that says why
    one = golden_events[golden_events["deal"] == "d4"]
    with pytest.warns(fk.FunnelkitWarning, match="conversion is NaN for 1 stage"):
        g = fk.EventLog(one, **kw).funnel().set_index("stage")
    assert np.isnan(g.loc["C", "conversion"]) and g.loc["C", "open"] == 1


def test_readme_numbers(golden_log):
    """The numbers the golden README asks to check by hand first."""
    t = golden_log.transitions().set_index(["from_stage", "to_stage"])
    ab = t.loc[("A", "B")]
    assert ab["transitions"] == 6
    assert days(pd.Series([ab["dwell_mean"], ab["dwell_median"], ab["dwell_p90"]])).tolist() == [
        5.5,
        4.0,
        11.5,
    ]
    f = golden_log.funnel(skips="strict").set_index("stage")
    assert f.loc["D", "reached"] == 1
    assert f.loc["D", "cumulative_closed"] == pytest.approx(8 / 21)


def test_in_repo_copy_matches_the_design_notes_golden_example(shared_golden):
    """tests/data/golden is a copy (a plain clone must pass its tests); it must not drift."""
    original = shared_golden
    names = sorted(p.name for p in original.iterdir())
    assert names == sorted(p.name for p in GOLDEN.iterdir())
    for name in names:
        if name == "README.md":  # the copy adds a paragraph pointing at the hand-worked tests
            assert (GOLDEN / name).read_bytes().startswith((original / name).read_bytes())
            continue
        assert (GOLDEN / name).read_bytes() == (original / name).read_bytes(), name


def test_visits_columns_selects_without_building_the_others(golden_log):
    full = golden_log.visits()
    some = golden_log.visits(columns=["dwell", "stage"])
    pd.testing.assert_frame_equal(some, full[["dwell", "stage"]])
    with pytest.raises(ValueError, match=r"`columns`: \['nope'\] are not columns"):
        golden_log.visits(columns=["stage", "nope"])
