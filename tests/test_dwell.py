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


# ---- 95% intervals (issue 17 item 7)
def plain_python_km_ci(t, censored, z=_stats.Z95):
    """Independent loop over distinct times: Greenwood, log(−log) bands, Brookmeyer–Crowley
    quantile limits (smallest time whose band is <= 1 − q), restricted-mean variance."""
    import math

    times = sorted(set(t.tolist()))
    n_at, s, v = len(t), 1.0, 0.0
    rows = []  # (time, S, var sum, deaths, at risk)
    for u in times:
        d = sum(1 for x, c in zip(t, censored, strict=True) if x == u and not c)
        m = sum(1 for x in t if x == u)
        if d:
            s *= 1 - d / n_at
            if n_at > d:
                v += d / (n_at * (n_at - d))
        rows.append((u, s, v, d, n_at))
        n_at -= m
    out = {}
    for q in (0.5, 0.75, 0.9):
        lo = hi = math.nan
        for u, su, vu, _, _ in rows:
            if 0 < su < 1:
                w = z * math.sqrt(vu) / abs(math.log(su))
                band_lo, band_hi = su ** math.exp(w), su ** math.exp(-w)
            else:
                band_lo, band_hi = su, (su if su > 0 else math.nan)
            if math.isnan(lo) and band_lo <= 1 - q + 1e-9:
                lo = u
            if math.isnan(hi) and band_hi <= 1 - q + 1e-9:
                hi = u
        out[f"q{round(100 * q)}_low"], out[f"q{round(100 * q)}_high"] = lo, hi
    tmax = max(times)
    mean, prev_t, prev_s, var = 0.0, 0.0, 1.0, 0.0
    for u, su, _, _, _ in rows:
        mean += prev_s * (u - prev_t)
        prev_t, prev_s = u, su
    for i, (_, _, _, d, n) in enumerate(rows):
        if d and n > d:
            area = sum(
                rows[j][1] * ((rows[j + 1][0] if j + 1 < len(rows) else tmax) - rows[j][0])
                for j in range(i, len(rows))
            )
            var += area**2 * d / (n * (n - d))
    se = math.sqrt(var)
    out["mean_low"], out["mean_high"] = max(mean - z * se, 0.0), mean + z * se
    return out


def test_hand_worked_km_intervals_golden_c():
    # golden stage C: events 3, 7, 10, 12, censored 14 (d4). Greenwood sums V = .05,
    # .1333, .3, .8; lower log-log band at t=3: .8^exp(1.96·√.05/|ln .8|) = .204 <= .5 →
    # median_low 3; upper band at 12: .2^exp(−1.96·√.8/|ln .2|) = .582 > .5 and S never
    # falls further → median_high undefined. Restricted mean 9.2: areas after the events
    # 6.2, 3, 1.2, .4 → var = 6.2²/20 + 3²/12 + 1.2²/6 + .4²/2 = 2.992.
    km = _stats.kaplan_meier(
        np.zeros(5, dtype=np.int64), np.array([10, 3, 14, 7, 12]), np.array([0, 0, 1, 0, 0]), 1
    )
    assert km["q50_low"][0] == 3 and np.isnan(km["q50_high"][0])
    se = np.sqrt(2.992)
    assert km["mean_low"][0] == pytest.approx(9.2 - _stats.Z95 * se, rel=1e-12)
    assert km["mean_high"][0] == pytest.approx(9.2 + _stats.Z95 * se, rel=1e-12)


def test_golden_dwell_intervals(golden_log):
    d = golden_log.dwell().set_index("stage")
    # B: 0, 3, 4.625, 5, 8, 16, 43 days, no censoring: the lower band at 0 days is
    # (6/7)^exp(1.96·√(1/42)/|ln 6/7|) = .334 <= .5; the upper band first reaches .5 at
    # 16 days: (1/7)^exp(−1.96·√(6/7)/ln 7) = .465 (at 8 days: .611)
    assert d.loc["B", "median"] == pd.Timedelta(days=5)
    assert d.loc["B", "median_low"] == pd.Timedelta(0)
    assert d.loc["B", "median_high"] == pd.Timedelta(days=16)
    assert d.loc["C", "median"] == pd.Timedelta(days=10)
    assert d.loc["C", "median_low"] == pd.Timedelta(days=3)
    assert pd.isna(d.loc["C", "median_high"])
    # one visit (D): S falls to 0 at once, the upper band is undefined
    assert d.loc["D", "median_low"] == pd.Timedelta(days=5) and pd.isna(d.loc["D", "median_high"])
    cols = list(d.reset_index().columns)
    assert cols == [
        "stage", "visits", "censored", "mean", "median", "p75", "p90",
        "mean_low", "mean_high", "median_low", "median_high",
        "p75_low", "p75_high", "p90_low", "p90_high",
    ]  # fmt: skip


@pytest.mark.parametrize("seed", range(8))
def test_km_intervals_equal_plain_python(seed):
    rng = np.random.default_rng(seed)
    n_groups = 3
    n = rng.integers(5, 150)
    g = rng.integers(0, n_groups, n)
    t = rng.integers(0, 25, n)  # coarse grid: many ties, events and censorings together
    c = rng.random(n) < rng.uniform(0, 0.6)
    km = _stats.kaplan_meier(g, t, c.astype(np.int64), n_groups)
    for k in range(n_groups):
        sel = g == k
        if not sel.any():
            continue
        ref = plain_python_km_ci(t[sel].astype(float), c[sel])
        for key, val in ref.items():
            np.testing.assert_allclose(
                km[key][k], val, rtol=1e-12, equal_nan=True, err_msg=f"{key} group {k}"
            )
        assert km["q50_low"][k] <= km["q50"][k] or np.isnan(km["q50"][k])


@pytest.mark.filterwarnings("ignore:The confidence interval is undefined:RuntimeWarning")
def test_km_bands_equal_scipy_loglog():
    # the pointwise log(−log) band that the quantile limits read equals scipy's
    rng = np.random.default_rng(3)
    t = rng.integers(1, 40, 200).astype(float)
    c = rng.random(200) < 0.3
    sf = stats.ecdf(stats.CensoredData(uncensored=t[~c], right=t[c])).sf
    ci = sf.confidence_interval(0.95, method="log-log")
    x, lo, hi = sf.quantiles, ci.low.probabilities, ci.high.probabilities
    km = _stats.kaplan_meier(
        np.zeros(200, dtype=np.int64), t.astype(np.int64), c.astype(np.int64), 1
    )
    for q in (0.5, 0.75):
        lvl = 1 - q + 1e-9
        ok_lo, ok_hi = np.flatnonzero(lo <= lvl), np.flatnonzero(hi <= lvl)
        assert km[f"q{round(100 * q)}_low"][0] == x[ok_lo[0]]
        assert km[f"q{round(100 * q)}_high"][0] == x[ok_hi[0]]


def test_plain_intervals_order_statistics_and_t():
    x = np.arange(1.0, 21.0)  # n = 20: Binomial(20, .5) 2.5% quantile is 6 → [x(6), x(15)]
    out = _stats.plain_intervals(x, np.ones(20, dtype=np.int64))
    assert (out["q50_low"], out["q50_high"]) == (6.0, 15.0)
    half = stats.t.ppf(0.975, 19) * np.std(x, ddof=1) / np.sqrt(20)
    assert out["mean_low"] == pytest.approx(10.5 - half)
    assert out["mean_high"] == pytest.approx(10.5 + half)
    small = _stats.plain_intervals(np.array([1.0, 2.0]), np.array([1, 1]))
    assert np.isnan(small["q50_low"])  # n = 2: no order statistics give 95%


def test_cycle_time_intervals_columns(golden_log):
    ct = golden_log.cycle_time()
    assert list(ct.columns)[7:] == [c for c, _ in _stats.CI_COLUMNS]
    anyrow = ct[ct["outcome"] == "any"].iloc[0]
    assert anyrow["median_low"] <= anyrow["median"]
