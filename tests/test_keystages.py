"""Key stages: every number recomputed independently, calibration under the null, power."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse, stats

import funnelkit as fk
from funnelkit._ajtests import (
    Rate,
    allocate_many,
    allocate_two,
    conversion_rates,
    effective_n,
    many_groups,
    mover,
    one_sample,
    two_groups,
)
from funnelkit._periods import newcombe
from funnelkit._stats import wilson
from funnelkit.funnel import competing_estimates
from funnelkit.keystages import COLUMNS, NO_BASELINE, SIGNALS, key_stages
from funnelkit.markov import (
    bootstrap_counts,
    chain_from_log,
    deal_counts,
    deal_patterns,
    pattern_bootstrap,
    pattern_chain,
)

KW = fk.datasets.SAMPLE_KWARGS
PLANTED = dict(
    segment_effect={"column": "team", "value": "Team C", "stage": "Demo", "advance": 0.35},
    stall={"stage": "Proposal", "after_days": 30, "advance": 0.15},
)
DAY = pd.Timedelta(days=1)


def pct(p: float) -> str:
    return f"{100 * p:.0f}%"


@pytest.fixture(scope="module")
def sample_log():
    return fk.EventLog(fk.datasets.load_sample(), **KW)


@pytest.fixture(scope="module")
def planted_log():
    events = fk.datasets.synthetic(3000, seed=11, **PLANTED)
    return fk.EventLog(events, **KW)


@pytest.fixture(scope="module")
def planted_ks(planted_log):
    return key_stages(planted_log, by="team", period="2025-01-01", n_boot=30)


def rows(ks: pd.DataFrame, signal: str) -> pd.DataFrame:
    return ks[ks["signal"] == signal].set_index("stage")


# --------------------------------------------------------------------------- shape
def test_columns_order_and_dtypes(planted_log, planted_ks):
    ks = planted_ks
    assert list(ks.columns) == COLUMNS
    assert list(dict.fromkeys(ks["signal"])) == list(SIGNALS)
    for sig in ("leverage", "stall", "heterogeneity", "change"):
        assert ks.loc[ks["signal"] == sig, "stage"].tolist() == planted_log.stages
    assert ks["is_key"].dtype == bool
    assert ks["n_deals"].dtype == np.int64
    assert str(ks["dwell_threshold"].dtype) == "timedelta64[ns]"
    for col in ("effect", "ci_low", "ci_high", "p_value", "q_value", "value", "baseline"):
        assert ks[col].dtype == np.float64
    assert ks.loc[ks["signal"] == "leverage", "p_value"].isna().all()
    assert ks.loc[ks["signal"] != "stall", "dwell_threshold"].isna().all()
    assert (ks["reason"].str.len() > 0).all() and not ks["reason"].str.contains("\n").any()
    # no rounding of returned numbers
    assert (ks["effect"].dropna() != ks["effect"].dropna().round(4)).any()


def test_default_signals_follow_the_options(sample_log):
    assert set(key_stages(sample_log, n_boot=0)["signal"]) == {"leverage", "dropoff", "stall"}
    ks = key_stages(sample_log, by="team", period="2025-01-01", n_boot=0)
    assert set(ks["signal"]) == set(SIGNALS)
    only = key_stages(sample_log, signals="stall")
    assert set(only["signal"]) == {"stall"}


def test_deterministic_and_invariant_to_row_order(sample_log):
    a = key_stages(sample_log, by="team", period="2025-01-01", n_boot=40, seed=3)
    b = key_stages(sample_log, by="team", period="2025-01-01", n_boot=40, seed=3)
    pd.testing.assert_frame_equal(a, b)
    shuffled = fk.datasets.load_sample().sample(frac=1.0, random_state=5)
    c = key_stages(fk.EventLog(shuffled, **KW), by="team", period="2025-01-01", n_boot=40, seed=3)
    pd.testing.assert_frame_equal(a, c)
    d = key_stages(sample_log, by="team", period="2025-01-01", n_boot=40, seed=4)
    lev = (a["signal"] == "leverage").to_numpy()
    assert not np.allclose(a.loc[lev, "ci_low"], d.loc[lev, "ci_low"])
    # the seed moves the bootstrap and the Monte-Carlo tests only
    fixed = ~lev & (a["test"] != "monte-carlo chi-square").to_numpy()
    pd.testing.assert_frame_equal(a.loc[fixed], d.loc[fixed])


# --------------------------------------------------------------------------- leverage
def test_leverage_is_the_exact_chain_what_if(planted_log, planted_ks):
    lev = rows(planted_ks, "leverage")
    exact = chain_from_log(planted_log).leverage(0.10).set_index("stage")
    np.testing.assert_allclose(lev["effect"], exact["leverage"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(lev["value"], exact["win_probability_after"], atol=1e-15)
    np.testing.assert_allclose(lev["baseline"], exact["win_probability"], atol=1e-15)
    assert (lev["ci_low"] <= lev["effect"]).all() and (lev["effect"] <= lev["ci_high"]).all()
    assert (lev["test"] == "bootstrap").all()
    threshold = 0.05 * lev["baseline"]
    want = (lev["ci_low"] >= threshold) & (lev["n_deals"] >= 30)
    pd.testing.assert_series_equal(lev["is_key"], want, check_names=False)
    # the stage with the biggest loss share has the biggest leverage and is key
    assert lev["effect"].idxmax() == "Proposal" and lev.loc["Proposal", "is_key"]


# ci of `key_stages(sample, signals="leverage", n_boot=50, seed=7)` from the former,
# all-draws-at-once implementation (commit d6e1fbf): effect, ci_low, ci_high per stage
def test_leverage_patterns_are_the_deals_counted(sample_log):
    """The deals summarised as distinct patterns (starting state, exit counts) hold the
    same chain: every deal's row of ``deal_counts`` is one pattern's, and each pattern is
    counted as often as deals share it."""
    exits, start = deal_counts(sample_log)
    cd = pattern_chain(deal_patterns(sample_log), sample_log._catalogue, sample_log._kind)
    assert int(cd.deals.sum()) == sample_log.n_deals
    deals = sparse.hstack([start, exits]).tocsr()
    pats = sparse.hstack([cd.start, cd.exits]).tocsr()
    key = lambda m: [tuple(m[i].toarray().ravel()) for i in range(m.shape[0])]  # noqa: E731
    per_deal = pd.Series(key(deals)).value_counts()
    per_pattern = pd.Series(cd.deals, index=key(pats))
    assert per_pattern.index.is_unique
    pd.testing.assert_series_equal(
        per_pattern.sort_index(), per_deal.sort_index(), check_names=False, check_dtype=False
    )


def test_pattern_bootstrap_has_the_deal_bootstrap_distribution(sample_log):
    """Multinomial pattern multiplicities resample whole deals: the exit counts of the
    draws have the mean and spread of resampling the deals themselves (the earlier,
    deal-level implementation, kept in ``markov.bootstrap_counts``), within Monte-Carlo
    error; and ``progress`` is called in order up to the last draw."""
    exits, start = deal_counts(sample_log)
    cd = pattern_chain(deal_patterns(sample_log), sample_log._catalogue, sample_log._kind)
    n_boot = 2000
    calls = []
    pat, _ = pattern_bootstrap(
        cd, n_boot, np.random.default_rng(1), progress=lambda d, t: calls.append((d, t))
    )
    deal, _ = bootstrap_counts(exits, start, n_boot=n_boot, rng=np.random.default_rng(2))
    pat, deal = pat.reshape(n_boot, -1), deal.reshape(n_boot, -1)
    used = deal.std(axis=0) > 0
    se_mean = deal.std(axis=0)[used] / np.sqrt(n_boot)
    assert np.all(np.abs(pat.mean(axis=0)[used] - deal.mean(axis=0)[used]) < 5 * se_mean)
    ratio = pat.std(axis=0)[used] / deal.std(axis=0)[used]
    assert np.all(np.abs(ratio - 1) < 5 / np.sqrt(2 * n_boot))  # sd of an sd ratio
    assert calls[-1] == (n_boot, n_boot) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_leverage_reason_quotes_its_numbers(planted_log, planted_ks):
    lev = rows(planted_ks, "leverage")
    chain = chain_from_log(planted_log)
    p = chain.probabilities
    for i, stage in enumerate(planted_log.stages):
        r = lev.loc[stage]
        loss = p[i][chain.lost].sum()
        assert (
            f"Cutting {stage}'s losses by 10% ({100 * loss:.1f}% → {100 * loss * 0.9:.1f}% of exits)"
            in r["reason"]
        )
        assert f"from {100 * r['baseline']:.1f}% to {100 * r['value']:.1f}%" in r["reason"]
        assert (
            f"({100 * r['effect']:+.2f} points, 95% CI {100 * r['ci_low']:+.2f} to " in r["reason"]
        )


def test_leverage_uplift_and_no_bootstrap(sample_log):
    ks = key_stages(sample_log, signals="leverage", uplift=0.25, n_boot=0)
    exact = chain_from_log(sample_log).leverage(0.25)
    np.testing.assert_allclose(ks["effect"], exact["leverage"], atol=1e-15)
    assert ks["ci_low"].isna().all() and not ks["is_key"].any()
    assert (ks["test"] == "none").all()
    assert ks["reason"].str.contains("by 25%").all()
    assert ks["reason"].str.contains("no bootstrap interval").all()


# --------------------------------------------------------------------------- drop-off
def test_dropoff_without_baseline_says_so(sample_log):
    ks = key_stages(sample_log, signals="dropoff")
    f = sample_log.funnel().set_index("stage")
    assert (ks["reason"] == NO_BASELINE).all()
    assert ks[["effect", "ci_low", "ci_high", "p_value", "q_value"]].isna().all().all()
    assert not ks["is_key"].any()
    np.testing.assert_allclose(ks["value"], 1 - f["conversion"].to_numpy(), rtol=1e-13)
    np.testing.assert_array_equal(ks["n_deals"], f["reached"])


# ---- references computed from funnel() tables, independently of keystages / _ajtests
Z = stats.norm.ppf(0.975)


def aj_from_funnel(row) -> tuple[float, float, float]:
    """(conversion F, its variance V, effective deals F(1−F)/V) of a funnel() row, V read
    back from the log(−log) interval: log(−log low) − log(−log high) = 2 z se(log(−log F))
    and se(log(−log F)) = √V / (F |log F|). Valid where nothing is unresolved (the
    interval is not widened) and 0 < F < 1."""
    F, lo, hi = row["conversion"], row["conversion_low"], row["conversion_high"]
    assert row["unresolved"] == 0 and 0 < lo < F < hi < 1
    se = (np.log(-np.log(lo)) - np.log(-np.log(hi))) / (2 * Z)
    V = (se * F * abs(np.log(F))) ** 2
    return F, V, F * (1 - F) / V


def two_group_p(p1, V1, p0, V0, alternative):
    """Wald test of two independent estimates; Fisher on rounded effective counts when a
    group has fewer than 100 effective deals."""
    n1, n0 = p1 * (1 - p1) / V1, p0 * (1 - p0) / V0
    if min(n1, n0) >= 100:
        z = (p1 - p0) / np.sqrt(V1 + V0)
        return stats.norm.sf(z) if alternative == "greater" else 2 * stats.norm.sf(abs(z))
    m1, m0 = round(n1), round(n0)
    x1, x0 = round(p1 * m1), round(p0 * m0)
    return stats.fisher_exact([[x1, m1 - x1], [x0, m0 - x0]], alternative=alternative).pvalue


def sub_funnel(events: pd.DataFrame, log: fk.EventLog, deals) -> pd.DataFrame:
    """funnel() of the log of some deals only (same as_of: per-deal subjects unchanged)."""
    sub = events[events["deal_id"].isin(set(deals))]
    return fk.EventLog(sub, **KW, as_of=log.as_of).funnel().set_index("stage")


def test_effective_counts_on_hand_examples():
    # F = 0.25 with variance 0.0075: as informative as 25 binomial deals, 6.25 advanced
    n = effective_n(np.array([0.25, 0.0, 1.0]), np.array([0.0075, 0.0, 0.0]), np.array([9, 7, 4]))
    np.testing.assert_allclose(n, [25.0, 7.0, 4.0])  # 0 or 1: the fallback (resolved deals)
    # without censoring the Aalen–Johansen estimate is the proportion and its variance the
    # binomial one: the effective counts are the counts (3 of 8 advanced)
    t = np.arange(1, 9)
    cause = np.array([1, 2, 1, 2, 2, 1, 2, 2])
    g = np.zeros(8, dtype=np.int64)
    aj = competing_estimates((g, t, cause, None, None), (g, t, cause, None, None), 1)
    assert aj["cif"][0] == pytest.approx(3 / 8, rel=1e-14)
    assert aj["var"][0] == pytest.approx(3 / 8 * 5 / 8 / 8, rel=1e-12)
    r = conversion_rates(aj, np.array([8]), Z)
    assert r.n[0] == pytest.approx(8, rel=1e-12) and r.p[0] * r.n[0] == pytest.approx(3)
    # with Wilson-type intervals MOVER is Newcombe's interval
    a = Rate(*(np.atleast_1d(v) for v in (0.3, 0, 50, 0, 0, *wilson(15, 50, z=Z), 50)))
    b = Rate(*(np.atleast_1d(v) for v in (0.5, 0, 40, 0, 0, *wilson(20, 40, z=Z), 40)))
    lo, hi = mover(a, b)
    assert (lo[0], hi[0]) == pytest.approx(newcombe(15, 50, 20, 40, Z), rel=1e-12)


def test_unresolved_mass_is_allocated_least_favourably():
    def rate(p, n, below, above):
        return Rate(*(np.atleast_1d(float(v)) for v in (p, 0, n, below, above, 0, 1, n)))

    # 0.60 ∈ [0.55, 0.62] vs 0.40 ∈ [0.38, 0.50]: closest to equal are 0.55 and 0.50
    a, b = rate(0.60, 500, 0.05, 0.02), rate(0.40, 400, 0.02, 0.10)
    assert allocate_two(a, b, "two-sided") == pytest.approx((0.55, 0.50))
    p, test = two_groups(a, b, "two-sided")
    z = 0.05 / np.sqrt(0.55 * 0.45 / 500 + 0.5 * 0.5 / 400)
    assert test == "z" and p == pytest.approx(2 * stats.norm.sf(z), rel=1e-12)
    # equality reachable: p = 1
    assert two_groups(a, rate(0.40, 400, 0.0, 0.16), "two-sided")[0] == 1.0
    # one-sided "a above b": a at its lowest, b at its highest (may reverse the sign)
    assert allocate_two(rate(0.5, 500, 0.04, 0), rate(0.45, 500, 0, 0.03), "greater") == (
        pytest.approx(0.46),
        pytest.approx(0.48),
    )
    # k groups: the box point with the smallest weighted spread (here, equal weights)
    r = Rate(
        np.array([0.2, 0.5, 0.9]),
        np.zeros(3),
        np.array([100.0, 100.0, 100.0]),
        np.array([0.0, 0.1, 0.1]),
        np.array([0.1, 0.1, 0.0]),
        np.zeros(3),
        np.ones(3),
        np.full(3, 100.0),
    )
    np.testing.assert_allclose(allocate_many(r), [0.3, 0.55, 0.8])  # m = 0.55
    r.above[:] = [0.7, 0.3, 0.0]  # reachable (at 0.8): all equal
    v = allocate_many(r)
    assert np.ptp(v) == 0 and many_groups(r, np.random.default_rng(0))[0] == 1.0


def test_dropoff_against_a_benchmark(sample_log):
    bench = {"Qualified": 0.15, "Demo": 0.25, "Proposal": 0.70}
    ks = rows(key_stages(sample_log, benchmark=bench, signals="dropoff"), "dropoff")
    table = pd.DataFrame({"stage": list(bench), "loss_rate": list(bench.values())})
    pd.testing.assert_frame_equal(
        ks.reset_index(),
        key_stages(sample_log, benchmark=table, signals="dropoff"),
    )
    f = sample_log.funnel().set_index("stage")
    for stage, p0 in bench.items():
        r, fr = ks.loc[stage], f.loc[stage]
        loss = 1 - fr["conversion"]
        assert r["value"] == pytest.approx(loss, abs=1e-15)
        assert r["effect"] == pytest.approx(loss - p0, abs=1e-15)
        # the interval is funnel()'s conversion interval, turned into a loss interval
        assert r["ci_low"] == pytest.approx(1 - fr["conversion_high"] - p0, abs=1e-12)
        assert r["ci_high"] == pytest.approx(1 - fr["conversion_low"] - p0, abs=1e-12)
        assert r["n_deals"] == fr["reached"] and r["test"] == "binomial"
        if fr["unresolved"] == 0:
            _, V, n = aj_from_funnel(fr)
            x = round(loss * round(n))
            p = stats.binomtest(x, round(n), p0, alternative="greater").pvalue
            assert r["p_value"] == pytest.approx(p, rel=1e-9)
            assert (
                f"{stage} loses {pct(loss)} of the {fr['reached']} deals that reached it vs "
                f"the {pct(p0)} benchmark" in r["reason"]
            )
    assert ks.loc["Demo", "is_key"]  # 41% lost vs a 25% benchmark
    assert not ks.loc["Proposal", "is_key"]  # better than the benchmark: one-sided
    assert (
        ks.loc[["Lead", "Discovery", "Negotiation"], "reason"] == "no benchmark for this stage"
    ).all()


def test_dropoff_benchmark_unresolved_mass_counts_for_the_stage():
    """The loss the unresolved mass could still turn into an advance is no evidence
    against the benchmark: the test runs at loss − (the conversion's up mass)."""
    # hand example: loss 0.40 of 200 effective deals, 0.05 of it may still advance
    r = Rate(*(np.atleast_1d(float(v)) for v in (0.40, 0.0012, 200, 0.05, 0.02, 0.3, 0.5, 260)))
    p, v, test = one_sample(r, 0.30)
    assert v == pytest.approx(0.35) and test == "binomial"
    assert p == stats.binomtest(70, 200, 0.30, alternative="greater").pvalue
    # a young pipeline: unresolved mass at the late stages, said in the reasons
    log = fk.EventLog(
        fk.datasets.synthetic(1500, seed=3, start="2025-04-15", end="2025-06-30"), **KW
    )
    f = log.funnel().set_index("stage")
    ks = rows(
        key_stages(log, benchmark=dict.fromkeys(log.stages, 0.2), signals="dropoff"), "dropoff"
    )
    late = f.index[f["unresolved"] >= 0.005]
    assert len(late) >= 3
    for stage in late:
        r = ks.loc[stage]
        assert r["value"] == pytest.approx(1 - f.loc[stage, "conversion"], abs=1e-15)
        assert f"(est., {pct(f.loc[stage, 'unresolved'])} unresolved)" in r["reason"]
        assert r["ci_high"] == pytest.approx(1 - f.loc[stage, "conversion_low"] - 0.2, abs=1e-12)


def test_dropoff_segment_against_the_rest(planted_log):
    events = fk.datasets.synthetic(3000, seed=11, **PLANTED)
    ks = key_stages(planted_log, by="team", signals="dropoff")
    f = planted_log.funnel(by="team")
    d = planted_log.deals()
    checked = 0
    for team in ["Team A", "Team B", "Team C"]:
        rest = sub_funnel(events, planted_log, d.loc[d["team"] != team, "deal"])
        own = f[f["team"] == team].set_index("stage")
        got = ks[ks["segment"] == team].set_index("stage")
        for stage in planted_log.stages:
            r = got.loc[stage]
            l1, l0 = 1 - own.loc[stage, "conversion"], 1 - rest.loc[stage, "conversion"]
            assert r["value"] == pytest.approx(l1, abs=1e-14)
            assert r["baseline"] == pytest.approx(l0, abs=1e-14)
            assert r["n_deals"] == own.loc[stage, "reached"] + rest.loc[stage, "reached"]
            if own.loc[stage, "unresolved"] or rest.loc[stage, "unresolved"]:
                continue
            _, V1, n1 = aj_from_funnel(own.loc[stage])
            _, V0, n0 = aj_from_funnel(rest.loc[stage])
            if min(n1, n0) < 30:
                assert "not tested" in r["reason"] and np.isnan(r["p_value"])
                continue
            assert r["effect"] == pytest.approx(l1 - l0, abs=1e-14)
            assert r["p_value"] == pytest.approx(two_group_p(l1, V1, l0, V0, "greater"), rel=1e-6)
            assert (
                f"{stage} loses {pct(l1)} of the {own.loc[stage, 'reached']} {team} deals vs "
                f"{pct(l0)} of the {rest.loc[stage, 'reached']} other deals" in r["reason"]
            )
            checked += 1
    assert checked >= 12
    demo_c = ks[(ks["stage"] == "Demo") & (ks["segment"] == "Team C")].iloc[0]
    assert demo_c["is_key"] and demo_c["test"] == "z"


def test_period_signals_are_wald_tests_of_the_two_periods_funnels(planted_log, planted_ks):
    """change (two-sided) from funnel() of the log of deals created before the date and of
    those since; dropoff does not test the same counts again (one comparison, one
    family)."""
    events = fk.datasets.synthetic(3000, seed=11, **PLANTED)
    d = planted_log.deals()
    since = d["first_event"] >= pd.Timestamp("2025-01-01", tz="UTC")
    before = sub_funnel(events, planted_log, d.loc[~since, "deal"])
    after = sub_funnel(events, planted_log, d.loc[since, "deal"])
    change = rows(planted_ks, "change")
    assert planted_ks.loc[planted_ks["signal"] == "dropoff", "segment"].notna().all()
    checked = 0
    for stage in planted_log.stages:
        c = change.loc[stage]
        F0, F1 = before.loc[stage, "conversion"], after.loc[stage, "conversion"]
        assert c["value"] == pytest.approx(F1, abs=1e-14)
        assert c["baseline"] == pytest.approx(F0, abs=1e-14)
        assert c["n_deals"] == before.loc[stage, "reached"] + after.loc[stage, "reached"]
        if before.loc[stage, "unresolved"] or after.loc[stage, "unresolved"]:
            # unresolved mass: never more significant than the point estimates alone
            continue
        _, V0, _ = aj_from_funnel(before.loc[stage])
        _, V1, _ = aj_from_funnel(after.loc[stage])
        assert c["effect"] == pytest.approx(F1 - F0, abs=1e-14)
        assert c["p_value"] == pytest.approx(two_group_p(F1, V1, F0, V0, "two-sided"), rel=1e-6)
        verb = "rose" if F1 > F0 else "fell"
        assert (
            f"{stage} conversion {verb} from {pct(F0)} of the {before.loc[stage, 'reached']} "
            f"deals created before 2025-01-01 to {pct(F1)} of the {after.loc[stage, 'reached']} "
            "since" in c["reason"]
        )
        # the interval: MOVER from the two funnel intervals
        lo = (
            F1
            - F0
            - np.hypot(
                F1 - after.loc[stage, "conversion_low"], before.loc[stage, "conversion_high"] - F0
            )
        )
        assert c["ci_low"] == pytest.approx(lo, abs=1e-12)
        checked += 1
    assert checked >= 4
    # the planted stage with unresolved mass: the test at the allocation closest to equal
    r = change.loc["Proposal"]
    assert after.loc["Proposal", "unresolved"] > 0
    assert "unresolved" in r["reason"]


def km_median(x: pd.DataFrame, z: float = Z) -> tuple[float, float, float]:
    """Kaplan–Meier median (days) of visits (scipy's ecdf) and its Brookmeyer–Crowley
    interval, written out: the times whose log(−log) band around S contains 0.5."""
    secs = x["dwell"].dt.total_seconds().to_numpy()
    cens = x["censored"].to_numpy()
    sf = stats.ecdf(stats.CensoredData(uncensored=secs[~cens], right=secs[cens])).sf
    t, s = sf.quantiles, sf.probabilities
    med = t[np.searchsorted(-s, -(0.5 + 1e-9), side="left")]
    # Greenwood at each time of the curve: Σ d / (n (n − d))
    d = np.array([(secs[~cens] == u).sum() for u in t])
    n = np.array([(secs >= u).sum() for u in t])
    gw = np.cumsum(np.where(d > 0, d / (n * (n - d)).clip(1e-300), 0.0))
    inside = (s > 0) & (s < 1)
    g = np.log(-np.log(np.where(inside, s, 0.5)))
    half = z * np.sqrt(gw) / -np.log(np.where(inside, s, 0.5))
    c = np.log(-np.log(0.5 + 1e-9))
    low = t[np.argmax(np.where(inside, g + half, np.where(s <= 0, np.inf, -np.inf)) >= c)]
    hit = np.where(inside, g - half, -np.inf) >= c
    high = t[np.argmax(hit)] if hit.any() else np.nan
    return med / 86400, low / 86400, high / 86400


def logrank_p(a: pd.DataFrame, b: pd.DataFrame) -> float:
    def data(x):
        secs = x["dwell"].dt.total_seconds().to_numpy()
        cens = x["censored"].to_numpy()
        return stats.CensoredData(uncensored=secs[~cens], right=secs[cens])

    return float(stats.logrank(data(a), data(b)).pvalue)


def first_visits(log: fk.EventLog) -> pd.DataFrame:
    v = log.visits()
    d = log.deals().set_index("deal")
    v = v[v["visit"] == 1].copy()
    # a silent (stale) visit is still in the stage as far as the log knows: censored at as_of
    stale = v["dwell"].isna()
    v.loc[stale, "dwell"] = log.as_of - v.loc[stale, "entered"]
    v.loc[stale, "censored"] = True
    v["after"] = (
        d.loc[v["deal"], "first_event"] >= pd.Timestamp("2025-01-01", tz="UTC")
    ).to_numpy()
    v["team"] = d.loc[v["deal"], "team"].astype(str).to_numpy()
    return v


def test_dwell_family_is_log_rank_with_the_median_ratio(planted_log, planted_ks):
    """Each dwell row against scipy's log-rank test and Kaplan–Meier medians of the two
    groups' first visits (open and silent ones censored at as_of)."""
    v = first_visits(planted_log)
    dw = planted_ks[planted_ks["signal"] == "dwell"]
    assert len(dw) == len(planted_log.stages) * 4  # 3 teams + after vs before
    checked = 0
    for r in dw.itertuples(index=False):
        x = v[v["stage"] == r.stage]
        if r.segment is None or pd.isna(r.segment):
            a, b = x[x["after"]], x[~x["after"]]
        else:
            a, b = x[x["team"] == r.segment], x[x["team"] != r.segment]
        assert r.n_deals == len(a) + len(b)
        if min(len(a), len(b)) < 30:
            assert np.isnan(r.p_value) and "not tested" in r.reason
            continue
        assert r.test == "log-rank" and r.alternative == "two-sided"
        assert r.p_value == pytest.approx(logrank_p(a, b), rel=1e-9)
        (ma, la, ha), (mb, lb, hb) = km_median(a), km_median(b)
        assert r.value == pytest.approx(ma, rel=1e-12)
        assert r.baseline == pytest.approx(mb, rel=1e-12)
        assert r.effect == pytest.approx(ma / mb, rel=1e-12)
        se = np.hypot(np.log(ha / la), np.log(hb / lb)) / (2 * Z)
        assert r.ci_low == pytest.approx(ma / mb * np.exp(-Z * se), rel=1e-9)
        assert r.ci_high == pytest.approx(ma / mb * np.exp(Z * se), rel=1e-9)
        assert f"{ma:.1f} days at the median for the {len(a)}" in r.reason
        assert f"{ma / mb:.2f}× (95% interval {r.ci_low:.2f}–{r.ci_high:.2f})" in r.reason
        checked += 1
    assert checked >= 15


def test_a_slower_segment_is_a_dwell_flag_only():
    """A team whose Proposal visits last twice as long is flagged by the dwell family
    (slower: the bad side) and by no conversion family."""
    slow = {"column": "team", "value": "Team C", "stage": "Proposal", "factor": 2.0}
    log = fk.EventLog(fk.datasets.synthetic(3000, seed=5, dwell_effect=slow), **KW)
    ks = key_stages(log, by="team", signals=["dropoff", "heterogeneity", "dwell"])
    key = ks[ks["is_key"]]
    assert [(r.signal, r.stage, r.segment) for r in key.itertuples()] == [
        ("dwell", "Proposal", "Team C")
    ]
    r = key.iloc[0]
    assert 1.6 <= r["effect"] <= 2.5 and r["ci_low"] > 1


# --------------------------------------------------------------------------- stall
def stall_cohort(log: fk.EventLog, stage: str) -> pd.DataFrame:
    """First visits of the stage that ended by advancing (a later stage, or won) or by a
    lost event — from the public visits table."""
    v = log.visits()
    x = v[(v["stage"] == stage) & (v["visit"] == 1)].copy()
    nxt = x["next_stage"].astype(object)
    rank = {s: i for i, s in enumerate(log.stages)}
    forward = nxt.map(lambda n: n in rank and rank[n] > rank[stage]).astype(bool)
    won = nxt.isin(list(log.won))
    lost = nxt.isin(list(log.lost))
    x["advanced"] = (forward | won).to_numpy()
    return x[(forward | won | lost).to_numpy()]


def test_stall_numbers_and_reason(planted_log, planted_ks):
    st = rows(planted_ks, "stall")
    for stage in planted_log.stages:
        r = st.loc[stage]
        x = stall_cohort(planted_log, stage)
        assert r["n_deals"] == len(x)
        days = x["dwell"].dt.total_seconds().to_numpy() / 86400
        # the declared threshold: the median, rounded up to whole days
        t = r["dwell_threshold"]
        assert t == pd.Timedelta(days=max(np.ceil(np.median(days)), 1))
        above = (x["dwell"] > t).to_numpy()
        adv = x["advanced"].to_numpy()
        xa, na = int((adv & above).sum()), int(above.sum())
        xb, nb = int((adv & ~above).sum()), int((~above).sum())
        table = [[xa, na - xa], [xb, nb - xb]]
        assert r["p_value"] == pytest.approx(
            stats.fisher_exact(table, alternative="less").pvalue, rel=1e-9
        )
        assert r["value"] == pytest.approx(xa / na, abs=1e-15)
        assert r["baseline"] == pytest.approx(xb / nb, abs=1e-15)
        assert r["effect"] == pytest.approx(xa / na - xb / nb, abs=1e-15)
        lo, hi = newcombe(xa, na, xb, nb, Z)
        assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi), abs=1e-12)
        n_days = t // DAY
        assert r["reason"].startswith(
            f"First visits to {stage} that lasted more than {n_days} days (the stage's median)"
        )
        assert (
            f"advanced {pct(xa / na)} of the time vs {pct(xb / nb)} for shorter ones "
            f"({xa} of {na} vs {xb} of {nb};" in r["reason"]
        )
    prop = st.loc["Proposal"]
    assert prop["is_key"] and prop["effect"] <= -0.10 and prop["ci_high"] < 0


def test_stall_excludes_open_silent_and_backward_visits(planted_log):
    v = planted_log.visits()
    ks = rows(key_stages(planted_log, signals="stall"), "stall")
    x = v[(v["stage"] == "Proposal") & (v["visit"] == 1)]
    silent = (x["next_stage"] == "stale").to_numpy()
    assert silent.any() and x["censored"].any()
    assert ks.loc["Proposal", "n_deals"] == len(stall_cohort(planted_log, "Proposal"))
    assert ks.loc["Proposal", "n_deals"] < len(x) - silent.sum() - x["censored"].sum() + 1


def test_stall_is_not_fooled_by_a_young_pipeline():
    """The audit's log: 60% of deals open, winners of the recent past look fast. Visits
    are judged by how they ended in the stage, not by the deal's outcome, so no flag."""
    ev = fk.datasets.synthetic(3000, seed=7, start="2025-01-01", end="2025-03-15")
    ks = key_stages(fk.EventLog(ev, **KW), signals=["stall"], n_boot=0, seed=7)
    assert not ks["is_key"].any()
    assert (ks.loc[ks["p_value"].notna(), "p_value"] > 0.01).all()


# --------------------------------------------------------------------------- heterogeneity
def test_heterogeneity_numbers_and_reason(planted_log, planted_ks):
    het = rows(planted_ks, "heterogeneity")
    f = planted_log.funnel(by="team")
    checked = 0
    for stage in planted_log.stages:
        g = f[f["stage"] == stage].set_index("team")
        r = het.loc[stage]
        worst, best = g["conversion"].idxmin(), g["conversion"].idxmax()
        assert r["segment"] == worst
        assert r["effect"] == pytest.approx(g["conversion"].max() - g["conversion"].min())
        assert r["n_deals"] == g["reached"].sum()
        if (g["unresolved"] > 0).any():
            continue
        est = [aj_from_funnel(g.loc[t]) for t in g.index]
        F, V, n = (np.array(x) for x in zip(*est, strict=True))
        if n.min() < 100:
            continue
        # Cochran's Q: Σ (F − F̄)² / V with inverse-variance weights, k − 1 df
        w = 1 / V
        q = np.sum(w * (F - np.average(F, weights=w)) ** 2)
        assert r["test"] == "chi-square"
        assert r["p_value"] == pytest.approx(stats.chi2.sf(q, len(F) - 1), rel=1e-6)
        assert (
            "across 3 team values (chi-square p" in r["reason"]
            and f"from {pct(F.min())} ({worst}, {g.loc[worst, 'reached']} deals) to "
            f"{pct(F.max())} ({best}, {g.loc[best, 'reached']} deals)"
            in r["reason"]
        )
        # the spread's interval: Šidák-simultaneous log(−log) intervals of the 3 teams
        z3 = stats.norm.ppf(1 - (1 - 0.95 ** (1 / 3)) / 2)
        se = np.sqrt(V) / (F * np.abs(np.log(F)))
        th = np.log(-np.log(F))
        low, high = np.exp(-np.exp(th + z3 * se)), np.exp(-np.exp(th - z3 * se))
        assert r["ci_low"] == pytest.approx(max(low.max() - high.min(), 0), abs=1e-12)
        assert r["ci_high"] == pytest.approx(high.max() - low.min(), abs=1e-12)
        checked += 1
    assert checked >= 4
    demo = het.loc["Demo"]
    assert demo["is_key"] and demo["segment"] == "Team C" and demo["ci_low"] > 0


def chi2(advanced, n):
    """Pearson chi-square of 2 × k tables (rows: advanced, dropped)."""
    e = n * advanced.sum(axis=-1, keepdims=True) / n.sum()
    return ((advanced - e) ** 2 / e + ((n - advanced) - (n - e)) ** 2 / (n - e)).sum(axis=-1)


@pytest.mark.slow
def test_heterogeneity_small_counts_use_exact_or_monte_carlo():
    # every deal resolved long before as_of: nothing unresolved, effective = actual counts
    log = fk.EventLog(fk.datasets.synthetic(600, seed=2, as_of="2026-06-30"), **KW)
    ks = rows(key_stages(log, by="owner", signals="heterogeneity", min_deals=10), "heterogeneity")
    mc = ks[(ks["test"] == "monte-carlo chi-square")]
    assert len(mc) == 6  # 12 owners of about 50 deals: under 100 effective deals each
    f = log.funnel(by="owner")
    checked = 0
    for stage, r in mc.iterrows():
        g = f[f["stage"] == stage].set_index("owner")
        if (g["unresolved"] > 0).any():
            continue
        # an owner that lost none: effective deals = its deals (all resolved)
        est = [
            aj_from_funnel(g.loc[o]) if g.loc[o, "dropped"] else (1.0, 0.0, g.loc[o, "reached"])
            for o in g.index
        ]
        F, _, n_eff = (np.array(x) for x in zip(*est, strict=True))
        keep = n_eff >= 10
        n = np.rint(n_eff[keep]).astype(int)
        adv = np.rint(F[keep] * n).astype(int)
        # independent permutation test: shuffle the rounded outcomes across segments
        outcome = np.concatenate(
            [np.r_[np.ones(a), np.zeros(k - a)] for a, k in zip(adv, n, strict=True)]
        )
        perm = np.random.default_rng(1).permuted(np.tile(outcome, (20_000, 1)), axis=1)
        sims = np.add.reduceat(perm, np.r_[0, np.cumsum(n)[:-1]], axis=1)
        p_perm = (1 + (chi2(sims, n) >= chi2(adv, n) * (1 - 1e-12)).sum()) / 20_001
        assert abs(r["p_value"] - p_perm) < 0.02  # two Monte-Carlo errors of ~0.0035 each
        checked += 1
    assert checked == 6
    again = rows(
        key_stages(log, by="owner", signals="heterogeneity", min_deals=10), "heterogeneity"
    )
    pd.testing.assert_frame_equal(ks, again)


def test_segments_of_several_columns_and_missing_values(sample_log):
    events = fk.datasets.load_sample()
    events.loc[events["region"] == "North", "region"] = None
    log = fk.EventLog(events, **KW)
    ks = key_stages(log, by=["team", "region"], signals=["dropoff", "heterogeneity"], min_deals=10)
    segs = set(ks.loc[ks["signal"] == "dropoff", "segment"])
    assert "Team A / (missing)" in segs and "Team C / South" in segs
    assert ks.loc[ks["signal"] == "heterogeneity", "reason"].str.contains("team × region").all()


# --------------------------------------------------------------------------- decisions
def test_q_values_are_bh_within_each_family_and_is_key_follows_the_rule(planted_ks):
    ks = planted_ks
    fams = [
        ("dropoff", 0.05),
        ("stall", 0.10),
        ("heterogeneity", 0.10),
        ("change", 0.05),
        ("dwell", 0.25),
    ]
    for fam, m in fams:
        r = ks[(ks["signal"] == fam) & ks["p_value"].notna()]
        q = stats.false_discovery_control(r["p_value"].to_numpy(), method="bh")
        np.testing.assert_allclose(r["q_value"].to_numpy(), q, rtol=1e-12)
        eff, lo, hi = r["effect"], r["ci_low"], r["ci_high"]
        material = {
            "dropoff": eff >= m,
            "stall": eff <= -m,
            "heterogeneity": eff >= m,
            "dwell": eff >= 1 + m,
        }.get(fam, eff.abs() >= m)
        # and the interval excludes "no effect" on the flagged side
        clear = {
            "stall": hi < 0,
            "change": (lo > 0) | (hi < 0),
            "dwell": lo > 1,
        }.get(fam, lo > 0)
        want = (r["q_value"] <= 0.05) & material & clear
        pd.testing.assert_series_equal(r["is_key"], want, check_names=False)
        untested = ks[(ks["signal"] == fam) & ks["p_value"].isna()]
        assert not untested["is_key"].any() and untested["q_value"].isna().all()


def test_min_effect_and_alpha_change_the_flags(planted_log):
    base = key_stages(planted_log, by="team", signals="heterogeneity")
    strict = key_stages(
        planted_log, by="team", signals="heterogeneity", min_effect={"heterogeneity": 0.5}
    )
    assert base["is_key"].any() and not strict["is_key"].any()
    pd.testing.assert_series_equal(base["q_value"], strict["q_value"])
    tight = key_stages(planted_log, by="team", signals="heterogeneity", alpha=1e-30)
    assert not tight["is_key"].any()


def test_small_logs_are_not_tested(golden_log):
    ks = key_stages(
        golden_log, period="2025-01-04", n_boot=20, signals=["leverage", "stall", "change"]
    )
    assert not ks["is_key"].any()
    tested = ks[ks["signal"] != "leverage"]
    assert tested["p_value"].isna().all()
    assert tested["reason"].str.contains("not tested, only").all()


def test_progress_feedback(sample_log, capsys):
    calls = []
    key_stages(
        sample_log, signals="leverage", n_boot=40, progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1] == (40, 40) and len(calls) >= 10
    key_stages(sample_log, signals="leverage", n_boot=20, progress=True)
    err = capsys.readouterr().err
    assert "bootstrap draw 20/20" in err


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(by="colour"), fk.EventLogError, "not a carried attribute"),
        (dict(period="not a date"), fk.EventLogError, "`period`"),
        (dict(period="2030-01-01"), fk.EventLogError, "no deal was created after"),
        (dict(period="2000-01-01"), fk.EventLogError, "no deal was created before"),
        (dict(benchmark={"Nowhere": 0.2}), fk.EventLogError, r"stages \['Nowhere'\]"),
        (dict(benchmark={"Demo": 1.5}), fk.EventLogError, r"\[0, 1\]"),
        (dict(benchmark=pd.DataFrame({"stage": ["Demo"]})), fk.EventLogError, "loss_rate"),
        (dict(benchmark=[0.1, 0.2]), TypeError, "benchmark"),
        (dict(signals=["leverage", "bottleneck"]), fk.EventLogError, "bottleneck"),
        (dict(signals="heterogeneity"), fk.EventLogError, "by="),
        (dict(signals="change"), fk.EventLogError, "period="),
        (dict(alpha=1.5), fk.EventLogError, "alpha"),
        (dict(uplift=0), fk.EventLogError, "uplift"),
        (dict(n_boot=-1), fk.EventLogError, "n_boot"),
        (dict(n_boot=2.5), TypeError, "n_boot"),
        (dict(min_deals=0), fk.EventLogError, "min_deals"),
        (dict(min_effect={"speed": 0.1}), fk.EventLogError, "speed"),
        (dict(min_effect={"stall": -1}), fk.EventLogError, "stall"),
        (dict(min_effect=0.1), TypeError, "min_effect"),
        (dict(progress="yes"), TypeError, "progress"),
    ],
)
def test_bad_parameters_raise_clear_errors(sample_log, kwargs, error, match):
    with pytest.raises(error, match=match):
        key_stages(sample_log, **kwargs)


# --------------------------------------------------------------------------- honesty
N_DEALS = 3000
SIGNALS_TESTED = ["dropoff", "stall", "heterogeneity", "change"]


def test_power_planted_segment_and_stall_are_found():
    """A planted weak team at Demo and a planted stall at Proposal are flagged in >= 85%
    of 20 logs of 3,000 deals (the benchmark runs more seeds and sizes)."""
    seeds = range(20)
    het = stall = 0
    for seed in seeds:
        log = fk.EventLog(fk.datasets.synthetic(N_DEALS, seed=100 + seed, **PLANTED), **KW)
        ks = key_stages(log, by="team", signals=["stall", "heterogeneity"], seed=seed)
        key = ks[ks["is_key"]]
        het += bool(
            (
                (key["signal"] == "heterogeneity")
                & (key["stage"] == "Demo")
                & (key["segment"] == "Team C")
            ).any()
        )
        stall += bool(((key["signal"] == "stall") & (key["stage"] == "Proposal")).any())
    n = len(seeds)
    print(
        f"power over {n} logs of {N_DEALS} deals: heterogeneity {het / n:.2f}, stall {stall / n:.2f}"
    )
    assert het / n >= 0.85 and stall / n >= 0.85


OWNERS_40 = tuple(f"Owner {i:02d}" for i in range(1, 41))
#: null set-ups (generator keywords, log keywords, by, period): mature, young (2.5 months),
#: 40 owners, and the audit's heavily censored one (60% open, dwell × 8, no stale rule)
NULL_SETUPS = {
    "mature": ({}, KW, "team", "2025-01-01"),
    "young": ({"start": "2025-04-15", "end": "2025-06-30"}, KW, "team", "2025-05-23"),
    "40 owners": ({"owners": OWNERS_40}, KW, "owner", "2025-01-01"),
    "young, slow, no stale rule": (
        {
            "start": "2025-01-01",
            "end": "2025-03-15",
            "dwell_median": [8 * d for d in (3, 6, 9, 10, 18, 12)],
        },
        {**KW, "stale_after": None},
        "team",
        "2025-02-07",
    ),
}
NULL_FAMILIES = ["dropoff", "heterogeneity", "change", "stall", "dwell"]


@pytest.fixture(scope="module")
def null_runs():
    """20 null logs per set-up; per log the segment signals (by=: dropoff, heterogeneity,
    dwell) with stall, and the period signals (period=: change, dwell)."""
    out = {}
    for name, (gen, log_kw, by, period) in NULL_SETUPS.items():
        runs = []
        for seed in range(20):
            ev = fk.datasets.synthetic(N_DEALS, seed=700 + seed, **gen)
            log = fk.EventLog(ev, **log_kw)
            seg = key_stages(
                log, by=by, signals=["dropoff", "stall", "heterogeneity", "dwell"], seed=seed
            )
            per = key_stages(log, period=period, signals=["change", "dwell"], seed=seed)
            runs.append((seg, per))
        out[name] = runs
    return out


def family_rows(run, fam: str) -> list[pd.DataFrame]:
    seg, per = run
    return [t[t["signal"] == fam] for t in (seg, per) if (t["signal"] == fam).any()]


@pytest.mark.slow
def test_calibration_no_flags_beyond_the_nominal_rate_under_the_null(null_runs):
    """With nothing planted, the share of analyses with any flag in a family stays at or
    below alpha plus two simulation standard errors, pooled over the mature, young and
    40-owner and heavily censored set-ups (20 logs of 3,000 deals each); and within each
    set-up at or below alpha plus three."""
    alpha = 0.05
    pooled = dict.fromkeys(NULL_FAMILIES, (0, 0))
    for name, runs in null_runs.items():
        for fam in NULL_FAMILIES:
            flags = [bool(t["is_key"].any()) for run in runs for t in family_rows(run, fam)]
            n = len(flags)
            rate = sum(flags) / n
            print(f"{name} {fam}: any-flag rate {rate:.3f} over {n} analyses")
            assert rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / n), (name, fam, rate)
            pooled[fam] = (pooled[fam][0] + sum(flags), pooled[fam][1] + n)
    for fam, (k, n) in pooled.items():
        assert k / n <= alpha + 2 * np.sqrt(alpha * (1 - alpha) / n), (fam, k / n)


@pytest.mark.slow  # shares its siblings' fixture (several seconds to build)
def test_null_p_values_are_not_small_too_often(null_runs):
    """Below the flags: under the null the share of p-values below 0.05 across stages,
    segments and logs stays at or below 0.05 plus three standard errors in each set-up
    (the tests may be conservative: unresolved mass and exact tests only lower it) —
    materiality does not hide a miscalibrated test."""
    for name, runs in null_runs.items():
        for fam in NULL_FAMILIES:
            p = np.concatenate(
                [t["p_value"].dropna().to_numpy() for run in runs for t in family_rows(run, fam)]
            )
            se = np.sqrt(0.05 * 0.95 / p.size)
            share = float((p < 0.05).mean())
            print(f"{name} {fam}: {p.size} p-values, share < 0.05 = {share:.3f}")
            assert p.size >= 40 and share <= 0.05 + 3 * se, (name, fam, share)


@pytest.mark.slow
def test_power_twice_the_dwell_is_a_dwell_flag_not_a_conversion_flag():
    """Team C's Proposal visits last twice as long (nothing else planted): the dwell
    family flags it in most of 20 logs of 3,000 deals (the benchmark measures >= 0.8 over
    more seeds), and conversion families rarely flag that stage."""
    slow = {"column": "team", "value": "Team C", "stage": "Proposal", "factor": 2.0}
    hit = conversion = 0
    for seed in range(20):
        ev = fk.datasets.synthetic(N_DEALS, seed=900 + seed, dwell_effect=slow)
        ks = key_stages(
            fk.EventLog(ev, **KW), by="team", signals=["dropoff", "heterogeneity", "dwell"]
        )
        key = ks[ks["is_key"] & (ks["stage"] == "Proposal")]
        hit += bool(((key["signal"] == "dwell") & (key["segment"] == "Team C")).any())
        conversion += bool(key["signal"].isin(["dropoff", "heterogeneity"]).any())
    print(
        f"2x dwell over 20 logs: dwell flag {hit / 20:.2f}, conversion flag {conversion / 20:.2f}"
    )
    assert hit / 20 >= 0.7 and conversion / 20 <= 0.15


@pytest.mark.slow
def test_power_on_a_young_pipeline_and_for_a_change():
    """Power, 20 logs of 3,000 deals each: the planted weak team at Demo on a young
    pipeline (2.5 months of deals: much of it unresolved, which the tests give the
    benefit of the doubt — the benchmark finds 0.38 for dropoff, against 1.00 on a mature
    log), and a planted change at Demo on a mature one (0.45 instead of 0.65 for visits
    entering Demo since 2025-01-01; benchmark 0.81)."""
    young = dict(start="2025-04-15", end="2025-06-30")
    seg_effect = PLANTED["segment_effect"]
    drop = change = 0
    for seed in range(20):
        ev = fk.datasets.synthetic(N_DEALS, seed=300 + seed, segment_effect=seg_effect, **young)
        ks = key_stages(fk.EventLog(ev, **KW), by="team", signals="dropoff", seed=seed)
        drop += bool((ks["is_key"] & (ks["stage"] == "Demo") & (ks["segment"] == "Team C")).any())
        plant = {"date": "2025-01-01", "stage": "Demo", "advance": 0.45}
        ev = fk.datasets.synthetic(N_DEALS, seed=400 + seed, change=plant)
        ks = key_stages(fk.EventLog(ev, **KW), period="2025-01-01", signals="change")
        change += bool((ks["is_key"] & (ks["stage"] == "Demo")).any())
    print(f"power over 20 logs: young dropoff {drop / 20:.2f}, change {change / 20:.2f}")
    assert drop / 20 >= 0.2 and change / 20 >= 0.7


# ------------------------------------------------------------ degenerate logs (issue 25)
def _tiny(d, s, t, **kw) -> fk.EventLog:
    events = pd.DataFrame({"d": list(d), "s": s, "t": t})
    return fk.EventLog(events, deal="d", stage="s", time="t", won="won", lost="lost", **kw)


def test_terminal_events_only_give_an_empty_table(sample_log):
    # before: ValueError "need at least one array to stack" from the leverage bootstrap
    log = _tiny("abc", ["won", "lost", "won"], ["2025-01-01", "2025-01-02", "2025-01-03"])
    assert log.stages == []
    ks = log.key_stages(by=None)
    assert ks.empty and list(ks.columns) == COLUMNS
    assert ks.dtypes.equals(sample_log.key_stages(n_boot=0).dtypes)
    # declared stages that no deal entered: one row per stage and signal, with a reason
    log = _tiny(
        "abc", ["won", "lost", "won"], ["2025-01-01", "2025-01-02", "2025-01-03"], stages=["A"]
    )
    ks = log.key_stages(n_boot=20)
    assert ks["stage"].tolist() == ["A"] * 3 and not ks["is_key"].any()
    assert ks["n_deals"].tolist()[0] == 0


@pytest.mark.parametrize(
    ("d", "s"),
    [("aaa", ["Lead", "Demo", "won"]), ("aab", ["Lead", "Demo", "Lead"]), ("a", ["Lead"])],
    ids=["one_deal", "all_open", "one_row"],
)
def test_one_deal_and_all_open_logs(d, s):
    times = ["2025-01-01", "2025-01-02", "2025-01-03"][: len(d)]
    ks = _tiny(d, s, times).key_stages(n_boot=20)
    assert set(ks["stage"]) == set(s) - {"won"}
    assert not ks["is_key"].any()  # one deal can never support a flag


# --------------------------------------------------------------------------- engine-neutral parts
def _median_threshold(d: np.ndarray) -> int:
    """The stall threshold as first written: the float median, rounded up to a whole day
    (hour below two days)."""
    day, hour = 86_400 * 10**9, 3_600 * 10**9
    med = float(np.median(d))
    unit = day if med >= 2 * day else hour
    return int(max(np.ceil(med / unit), 1) * unit)


def test_stall_table_threshold_and_merge_match_the_visits():
    """The threshold read from hour buckets equals the median rule on the dwell values
    (odd and even counts, middles split across buckets, values on the two-day edge), and
    tables of parts merge into the table of the whole."""
    from funnelkit.keystages import StallTable

    rng = np.random.default_rng(3)
    hour = 3_600 * 10**9
    for trial in range(400):
        n = int(rng.integers(1, 40))
        scale = [hour, 24 * hour, 10**9][trial % 3]
        d = rng.integers(0, 200, n) * scale // int(rng.integers(1, 4))
        if trial % 7 == 0:
            d[: n // 2] = 48 * hour  # the two-day edge
        adv = rng.integers(0, 2, n)
        ones = np.ones(n, dtype=np.int64)
        stage = np.zeros(n, dtype=np.int64)
        whole = StallTable._grouped(stage, -(-d // hour), ones, adv, d, d)
        t = whole.threshold(slice(0, len(whole.n)))
        assert t == _median_threshold(d), (trial, d)
        cut = int(rng.integers(0, n + 1))
        parts = [
            StallTable._grouped(stage[sl], -(-d[sl] // hour), ones[sl], adv[sl], d[sl], d[sl])
            for sl in (slice(0, cut), slice(cut, n))
        ]
        merged = StallTable.merge(parts)
        for f in ("stage", "bucket", "n", "advanced", "low", "high"):
            np.testing.assert_array_equal(getattr(merged, f), getattr(whole, f))
        upto = whole.bucket * hour <= t
        assert int(whole.n[upto].sum()) == int((d <= t).sum())
        assert int(whole.advanced[upto].sum()) == int(adv[d <= t].sum())


def test_one_vs_rest_with_counts_equals_the_subjects_one_by_one():
    from funnelkit._stats import one_vs_rest

    rng = np.random.default_rng(4)
    t = rng.integers(0, 15, 300).astype(np.float64)
    ev = rng.random(300) < 0.7
    g = rng.integers(0, 3, 300)
    one = one_vs_rest(t, ev, g, np.array([0, 1, 2]))
    keys, count = np.unique(np.column_stack([t, ev, g]), axis=0, return_counts=True)
    agg = one_vs_rest(keys[:, 0], keys[:, 1].astype(bool), keys[:, 2].astype(np.int64),
                      np.array([0, 1, 2]), count=count)  # fmt: skip
    for k in one:
        np.testing.assert_allclose(agg[k], one[k], rtol=1e-12, equal_nan=True)


def test_leverage_draws_in_blocks_equal_the_draws_at_once(sample_log, monkeypatch):
    """The bootstrap runs in blocks of ``markov.batch_size`` draws, so its memory does not
    grow with ``n_boot``: blocks of 3 give the table of one block, and the progress
    callback still counts every draw in order up to the last."""
    from funnelkit import keystages

    whole = key_stages(sample_log, signals="leverage", n_boot=20, seed=2)
    monkeypatch.setattr(keystages, "batch_size", lambda t, n: 3)
    calls: list[tuple[int, int]] = []
    blocks = key_stages(
        sample_log,
        signals="leverage",
        n_boot=20,
        seed=2,
        progress=lambda d, t: calls.append((d, t)),
    )
    pd.testing.assert_frame_equal(whole, blocks)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == 20 and {t for _, t in calls} == {20}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stall_table_counted_equals_sorted(seed):
    """The stall table's (stage, hour) cells counted without a sort equal the sorted
    grouping: the same cells in the same order, counts, advances and dwell bounds."""
    from funnelkit import keystages as K

    rng = np.random.default_rng(seed)
    n = 5_000
    stage = rng.integers(0, 6, n)
    dwell = rng.integers(0, 400 * 3_600_000_000_000, n)
    bucket = -(-dwell // 3_600_000_000_000)
    adv = rng.integers(0, 2, n)
    ones = np.ones(n, dtype=np.int64)
    counted = K.StallTable._grouped(stage, bucket, ones, adv, dwell, dwell)
    # the sorted path, forced by a negative stage shifted back afterwards
    shifted = K.StallTable._grouped(stage - 1, bucket, ones, adv, dwell, dwell)
    assert counted.bucket.size < n  # cells are shared
    np.testing.assert_array_equal(counted.stage, shifted.stage + 1)
    for f in ("bucket", "n", "advanced", "low", "high"):
        np.testing.assert_array_equal(getattr(counted, f), getattr(shifted, f), err_msg=f)
    # by hand: one cell
    m = (stage == 2) & (bucket == counted.bucket[counted.stage == 2][0])
    i = np.flatnonzero(counted.stage == 2)[0]
    assert counted.n[i] == m.sum() and counted.advanced[i] == adv[m].sum()
    assert counted.low[i] == dwell[m].min() and counted.high[i] == dwell[m].max()
