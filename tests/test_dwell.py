"""Kaplan–Meier dwell: hand-worked values and scipy.stats.ecdf with CensoredData."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import funnelkit as fk
from conftest import days
from funnelkit import _stats


def scipy_summary(t: np.ndarray, censored: np.ndarray) -> dict[str, float]:
    data = stats.CensoredData(uncensored=t[~censored], right=t[censored])
    sf = stats.ecdf(data).sf
    x, s = sf.quantiles, sf.probabilities
    out = {}
    for q in (0.5, 0.75, 0.9):
        hit = np.flatnonzero(s <= 1 - q + 1e-9)
        out[f"q{round(100 * q)}"] = float(x[hit[0]]) if hit.size else np.nan
    # restricted mean up to the largest observed time: area under the step function
    tmax = float(t.max())
    grid = np.concatenate(([0.0], x[x < tmax], [tmax]))
    vals = np.concatenate(([1.0], s[x < tmax]))
    out["mean"] = float(np.sum(vals * np.diff(grid)))
    return out


def test_hand_worked_km():
    # 3, 7, 10, 12 events and 14 censored: S = .8, .6, .4, .2 (golden stage C)
    km = _stats.kaplan_meier(
        np.zeros(5, dtype=np.int64), np.array([10, 3, 14, 7, 12]), np.array([0, 0, 1, 0, 0]), 1
    )
    assert km["q50"][0] == 10 and km["q75"][0] == 12 and np.isnan(km["q90"][0])
    assert km["mean"][0] == pytest.approx(3 + 4 * 0.8 + 3 * 0.6 + 2 * 0.4 + 2 * 0.2)
    assert km["n"][0] == 5 and km["censored"][0] == 1


def test_km_ties_event_before_censoring():
    # at t=5: two events and one censoring among 4 at risk → S(5) = 2/4, then t=8 event: 0
    km = _stats.kaplan_meier(
        np.zeros(4, dtype=np.int64), np.array([5, 5, 5, 8]), np.array([1, 0, 0, 0]), 1
    )
    assert km["q50"][0] == 5  # S(5) = 0.5 exactly: the tolerance keeps the boundary
    assert km["mean"][0] == pytest.approx(5 + 0.5 * 3)


@pytest.mark.parametrize("seed", range(10))
def test_km_equals_scipy_ecdf(seed):
    rng = np.random.default_rng(seed)
    n_groups = 4
    n = 400
    g = rng.integers(0, n_groups, n)
    t = rng.integers(0, 60, n)  # coarse grid: many ties
    c = rng.random(n) < 0.3
    km = _stats.kaplan_meier(g, t, c.astype(np.int64), n_groups)
    for k in range(n_groups):
        sel = g == k
        ref = scipy_summary(t[sel].astype(float), c[sel])
        for key, val in ref.items():
            np.testing.assert_allclose(
                km[key][k], val, rtol=1e-12, equal_nan=True, err_msg=f"{key} group {k}"
            )


def test_dwell_of_sample_equals_scipy_per_stage():
    log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    v = log.visits()
    v = v[v["dwell"].notna()]
    got = log.dwell().set_index("stage")
    for stage, grp in v.groupby("stage", observed=True):
        ref = scipy_summary(days(grp["dwell"]), grp["censored"].to_numpy())
        assert got.loc[stage, "visits"] == len(grp)
        assert got.loc[stage, "censored"] == int(grp["censored"].sum())
        for col, key in (("median", "q50"), ("p75", "q75"), ("p90", "q90"), ("mean", "mean")):
            np.testing.assert_allclose(
                days(pd.Series([got.loc[stage, col]]))[0], ref[key], rtol=1e-9, equal_nan=True
            )


def test_dwell_first_and_repeat_visits_partition(golden_log):
    all_ = golden_log.dwell().set_index("stage")
    first = golden_log.dwell(visits="first").set_index("stage")
    rep = golden_log.dwell(visits="repeat").set_index("stage")
    assert (first["visits"] + rep["visits"]).tolist() == all_["visits"].tolist()
    assert rep.loc["B", "visits"] == 1 and rep.loc["C", "visits"] == 1
    assert rep.loc["B", "median"] == pd.Timedelta(days=8)
    with pytest.raises(fk.EventLogError, match="`visits` must be"):
        golden_log.dwell(visits="second")


def test_dwell_by_segment_equals_sub_log():
    log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    by = log.dwell(by="team")
    events = fk.datasets.load_sample()
    for team, block in by.groupby("team", observed=True):
        deals = log.deals()
        ids = deals.loc[deals["team"] == team, "deal"]
        sub = fk.EventLog(
            events[events["deal_id"].isin(ids)],
            **{**fk.datasets.SAMPLE_KWARGS, "as_of": log.as_of},
        )
        pd.testing.assert_frame_equal(
            block.drop(columns="team").reset_index(drop=True), sub.dwell()
        )
