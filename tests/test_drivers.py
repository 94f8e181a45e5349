"""Drivers: effects against hand-worked examples, the q-values, the landmark, and the
calibration (nothing planted) and power (a planted feedback effect) of issue 23."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import funnelkit as fk
from funnelkit.drivers import COLUMNS, bh, selective_q


def _two_teams(with_calls: bool = False):
    """20 deals enter A on day 0 and resolve on day 5: team x (d00–d09) advances 8 of 10
    to B, team y (d10–d19) 4 of 10; the rest are lost. B is open at as_of. With
    ``with_calls``, the deals that advance get a call on day 1 (the others none)."""
    rows, acts = [], []
    t0 = pd.Timestamp("2025-01-01")
    for i in range(20):
        team = "x" if i < 10 else "y"
        adv = (i < 8) if i < 10 else (i < 14)
        d = f"d{i:02d}"
        rows.append((d, "A", t0 + pd.Timedelta(days=i % 3), team))
        rows.append((d, "B" if adv else "lost", t0 + pd.Timedelta(days=5 + i % 3), team))
        if with_calls and adv:
            acts.append((d, t0 + pd.Timedelta(days=1 + i % 3), "call"))
    ev = pd.DataFrame(rows, columns=["deal", "stage", "ts", "team"])
    log = fk.EventLog(
        ev, deal="deal", stage="stage", time="ts", stages=["A", "B"], won="won",
        lost="lost", attrs=["team"], as_of="2025-03-01",
    )  # fmt: skip
    if with_calls:
        a = pd.DataFrame(acts, columns=["deal", "ts", "kind"])
        log = log.with_activities(a, deal="deal", time="ts", kind="kind")
    return log


def test_attribute_effect_and_fisher_test_against_hand_counts():
    d = _two_teams().drivers("A", min_visits=5)
    assert list(d.columns) == COLUMNS
    assert len(d) == 1  # two teams: one test
    r = d.iloc[0]
    assert (r["feature"], r["group"], r["source"]) == ("team", "x", "attribute")
    assert (r["visits_with"], r["visits_without"]) == (10, 10)
    # nothing censored at A: the conversions are the shares that advanced
    assert r["conversion_with"] == pytest.approx(0.8)
    assert r["conversion_without"] == pytest.approx(0.4)
    assert r["effect"] == pytest.approx(0.4)
    # 10 effective deals a group: Fisher's exact test on [[8, 2], [4, 6]]
    assert r["test"] == "fisher"
    assert r["p_value"] == pytest.approx(stats.fisher_exact([[8, 2], [4, 6]]).pvalue)
    assert r["ci_low"] < r["effect"] < r["ci_high"]
    assert r["q_value"] == pytest.approx(r["p_value"])  # one family, one value


def test_too_small_groups_are_not_tested_and_say_so():
    d = _two_teams().drivers("A")  # min_visits=20 > 10 a group
    r = d.iloc[0]
    assert np.isnan(r["p_value"]) and not r["is_key"]
    assert "too few to compare (10 vs 10 deals; 20 a group needed)" in r["reason"]


def test_activity_feature_is_measured_in_the_landmark_window():
    log = _two_teams(with_calls=True)
    d = log.drivers("A", attrs=[], min_visits=5)
    r = d.set_index("feature").loc["calls per visit"]
    assert r["group"] == "1 or more in the first 3 days"
    assert (r["visits_with"], r["visits_without"]) == (12, 8)
    assert r["conversion_with"] == pytest.approx(1.0)
    assert r["conversion_without"] == pytest.approx(0.0)
    # a landmark after every deal resolved: no deal is still in A then, nothing to test
    assert log.drivers("A", attrs=[], landmark="6D").empty
    # a call on day 1 lies outside a 1-day window: no contrast, no row
    assert log.drivers("A", attrs=[], landmark="1D", min_visits=5).empty


def test_selective_q_values_by_hand():
    stage = np.zeros(5, dtype=int)
    feature = np.array(["f1", "f2", "f2", "f2", "f3"])
    p = np.array([0.001, 0.01, 0.2, 0.5, 0.04])
    # families: f1 0.001, f2 3 × 0.01 = 0.03, f3 0.04 -> BH q 0.003, 0.04, 0.04; R = m = 3
    q = selective_q(stage, feature, p, 0.05)
    np.testing.assert_allclose(q, [0.003, 0.04, 0.6, 1.0, 0.04])
    np.testing.assert_allclose(
        bh(np.array([0.001, 0.03, 0.04])),
        stats.false_discovery_control([0.001, 0.03, 0.04], method="bh"),
    )


def test_sample_finds_team_c_at_demo_and_reads_it():
    log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    log = log.with_activities(
        fk.datasets.load_sample_activities(), **fk.datasets.SAMPLE_ACTIVITIES_KWARGS
    )
    d = log.drivers()
    key = d[d["is_key"]]
    assert (key["stage"].astype(str) == "Demo").all()
    top = key.iloc[0]
    assert (top["feature"], top["group"]) == ("team", "Team C")
    assert top["reason"].startswith("Demo deals with team = Team C advance 32% vs 69%")
    # rows are ordered by stage, key rows first
    assert d["stage"].cat.codes.is_monotonic_increasing
    with pytest.raises(fk.InvalidParameterError, match="not attributes of the log"):
        log.drivers(attrs=["nope"])


def _drivers(seed: int, planted: bool) -> pd.DataFrame:
    events, acts = fk.datasets.synthetic(
        3000,
        seed=seed,
        activities=True,
        feedback_effect={"stage": "Proposal", "effect": -0.15} if planted else None,
    )
    log = fk.EventLog(events, **fk.datasets.SAMPLE_KWARGS, as_of="2025-06-30")
    log = log.with_activities(acts, **fk.datasets.SAMPLE_ACTIVITIES_KWARGS)
    return log.drivers()


@pytest.mark.slow
def test_calibration_under_the_null():
    """20 logs of 3,000 deals with nothing planted: the share of (log, stage) pairs with
    any key row stays within 3 standard errors above the nominal 5% (120 pairs: SE 2.0
    points), and single tests reject at p < 0.05 at the nominal rate (± 3 SE). The full
    study (200 logs) is benchmarks/drivers.py."""
    res = pd.concat([_drivers(s, False).assign(seed=s) for s in range(20)])
    per_stage = res.groupby(["seed", "stage"], observed=True)["is_key"].any()
    n = per_stage.size
    assert n == 120
    assert per_stage.mean() <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / n)
    p = res["p_value"].dropna()
    assert abs((p < 0.05).mean() - 0.05) <= 3 * np.sqrt(0.05 * 0.95 / p.size)


@pytest.mark.slow
def test_power_for_low_feedback_at_proposal():
    """20 logs of 3,000 deals where low survey answers at Proposal advance 15 points less:
    the `survey score` row at Proposal is key with a negative effect in at least 80% of
    them, less 3 standard errors of a 20-log estimate (8.9 points each)."""
    found = []
    for s in range(20):
        d = _drivers(s, True)
        r = d[(d["stage"] == "Proposal") & (d["feature"] == "survey score")].iloc[0]
        found.append(bool(r["is_key"]) and r["effect"] < 0)
    assert np.mean(found) >= 0.8 - 3 * np.sqrt(0.8 * 0.2 / 20)


def test_visit_attribute_is_read_at_the_deals_first_visit_of_the_stage():
    """The visit attribute (the owner on the event that entered A) splits the deals as
    the team does in :func:`_two_teams`: the same numbers."""
    log = _two_teams()
    ev = pd.DataFrame(
        {
            "deal": log.visits()["deal"].astype(str).tolist(),
            "stage": log.visits()["stage"].astype(str).tolist(),
            "ts": log.visits()["entered"].tolist(),
        }
    )
    ev["rep"] = np.where(ev["deal"].str[1:].astype(int) < 10, "r1", "r2")
    term = log.deals()
    lost = term[term["outcome"] == "lost"]
    extra = pd.DataFrame(
        {
            "deal": lost["deal"].astype(str),
            "stage": "lost",
            "ts": [
                log.visits().set_index("deal").loc[d, "entered"] + pd.Timedelta(days=5)
                for d in lost["deal"]
            ],
            "rep": "other",  # a different value on the terminal event is not read
        }
    )
    ev = pd.concat([ev, extra], ignore_index=True)
    vlog = fk.EventLog(
        ev, deal="deal", stage="stage", time="ts", stages=["A", "B"], won="won",
        lost="lost", visit_attrs=["rep"], as_of="2025-03-01",
    )  # fmt: skip
    r = vlog.drivers("A", min_visits=5).iloc[0]
    assert (r["feature"], r["group"], r["source"]) == ("rep", "r1", "visit attribute")
    assert (r["conversion_with"], r["conversion_without"]) == pytest.approx((0.8, 0.4))


def test_batches_of_tests_give_the_table_of_one_call(monkeypatch):
    """The scan estimates its tests in batches of at most BATCH_ROWS replicated rows (a
    value of twelve is in eleven "others"): each group's estimate depends on its own rows
    only, so any batching gives the same table — here one test per call against all in one."""
    import funnelkit.drivers as D

    log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    log = log.with_activities(
        fk.datasets.load_sample_activities(), **fk.datasets.SAMPLE_ACTIVITIES_KWARGS
    )
    monkeypatch.setattr(D, "BATCH_ROWS", 10**9)
    whole = log.drivers()
    monkeypatch.setattr(D, "BATCH_ROWS", 1)  # every test its own call
    pd.testing.assert_frame_equal(log.drivers(), whole)
    assert len(whole) > 20 and set(whole["source"]) == {"attribute", "activity"}
