"""Monitoring: compare, trend, movement and KPIs per period — numbers recomputed
independently, planted effects found, no false differences under the null, and a
pipeline waterfall that reconciles on generated and real logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import funnelkit as fk
from funnelkit import monitoring as M
from logs import LOG_KW, SPAN_HOURS, START, event_logs
from reference import deal_paths, km_summary

KW = fk.datasets.SAMPLE_KWARGS
DAY = pd.Timedelta(days=1)
N_DEALS = 3000
SEGMENT_EFFECT = {"column": "team", "value": "Team C", "stage": "Demo", "advance": 0.35}
CHANGE_DATE = "2024-10-01"
CHANGE = {"date": CHANGE_DATE, "stage": "Demo", "advance": 0.8}  # from 0.65


@pytest.fixture(scope="module")
def sample_events() -> pd.DataFrame:
    return fk.datasets.load_sample()


@pytest.fixture(scope="module")
def sample_log(sample_events):
    return fk.EventLog(sample_events, **KW)


def sub_log(events: pd.DataFrame, deals, as_of) -> fk.EventLog:
    """The log of some deals only: per-deal results are the same as in the full log."""
    return fk.EventLog(events[events["deal_id"].isin(deals)], **KW, as_of=as_of)


# --------------------------------------------------------------------------- compare
AJ_COLS = ["conversion", "conversion_low", "conversion_high", "unresolved"]
CLOSED_COLS = ["conversion_closed", "conversion_closed_low", "conversion_closed_high"]
COUNTS = ["reached", "advanced", "dropped", "open"]


@pytest.mark.parametrize("by", ["team", ["team", "region"]])
def test_compare_by_equals_the_funnel_by_segment(sample_log, by):
    """Each segment's row is the funnel's (the Aalen–Johansen conversion, its widened
    interval, the unresolved mass, the closed ratio); the rest's conversion is the funnel
    of the log of every other deal."""
    c = M.compare(sample_log, by=by)
    f = sample_log.funnel(by=by)
    keys = [by] if isinstance(by, str) else by
    cols = [*keys, "stage", *COUNTS, *AJ_COLS, *CLOSED_COLS]
    pd.testing.assert_frame_equal(c[cols], f[cols], check_exact=True)
    # the rest is every other deal: its counts, and its own estimate
    total = sample_log.funnel().set_index("stage")
    rest_adv = total.loc[c["stage"], "advanced"].to_numpy() - c["advanced"].to_numpy()
    rest_drop = total.loc[c["stage"], "dropped"].to_numpy() - c["dropped"].to_numpy()
    np.testing.assert_array_equal(c["rest_advanced"], rest_adv)
    np.testing.assert_array_equal(c["rest_dropped"], rest_drop)
    labels = c[keys].drop_duplicates()
    for _, lab in labels.iterrows():
        inside = np.ones(sample_log.n_deals, dtype=bool)
        d = sample_log.deals()
        for k in keys:
            inside &= (d[k] == lab[k]).to_numpy()
        rest = sample_log.filter(where=~inside).funnel()
        rows = c.loc[(c[keys] == lab[keys].to_numpy()).all(axis=1)]
        np.testing.assert_allclose(rows["rest_conversion"], rest["conversion"], atol=1e-12)
        np.testing.assert_allclose(rows["rest_unresolved"], rest["unresolved"], atol=1e-12)
    np.testing.assert_allclose(c["difference"], c["conversion"] - c["rest_conversion"])
    deals = sample_log.deals().groupby(keys, dropna=False, observed=True).size()
    assert c.groupby(keys, dropna=False, observed=True)["deals"].first().sum() == deals.sum()
    assert "reached_by" not in c.columns


def one_stage_log(groups: dict[str, tuple[int, int, int]]) -> fk.EventLog:
    """Deals of one stage A in segments: per segment (advanced, lost, open). Every win and
    loss comes within 20 days of entering A; the open deals entered A 100 days before
    as_of, so they are censored after every event: the Aalen–Johansen estimate is the
    plain share, its variance the binomial one, and the open share is unresolved."""
    t0 = pd.Timestamp("2025-01-01", tz="UTC")
    rows = []
    for seg, (adv, lost, still) in groups.items():
        for i in range(adv + lost + still):
            deal, start = f"{seg}{i}", t0 + pd.Timedelta(hours=i)
            rows.append((deal, "A", start, seg))
            if i < adv + lost:
                end = start + pd.Timedelta(days=1 + i % 19)
                rows.append((deal, "Won" if i < adv else "Lost", end, seg))
    events = pd.DataFrame(rows, columns=["deal", "stage", "ts", "seg"])
    return fk.EventLog(
        events, deal="deal", stage="stage", time="ts", stages=["A"], won="Won", lost="Lost",
        attrs=["seg"], as_of=t0 + pd.Timedelta(days=100),
    )  # fmt: skip


def test_compare_wald_test_by_hand():
    """x: 30 of 40 advance; y: 30 of 60. No censoring before the events: F = x/n,
    V = F(1 − F)/n, at least the binomial variance at the pooled estimate."""
    log = one_stage_log({"x": (30, 10, 0), "y": (30, 30, 0)})
    c = M.compare(log, by="seg").set_index("seg")
    F1, n1, F2, n2 = 0.75, 40, 0.5, 60
    pooled = (n1 * F1 + n2 * F2) / (n1 + n2)  # 0.6
    v1 = max(F1 * (1 - F1) / n1, pooled * (1 - pooled) / n1)  # the floor: 0.006
    v2 = max(F2 * (1 - F2) / n2, pooled * (1 - pooled) / n2)  # its own: 0.25 / 60
    se = np.sqrt(v1 + v2)
    z = (F1 - F2) / se
    p = 2 * stats.norm.sf(z)
    assert p == pytest.approx(0.0131595, abs=1e-7)  # z = 2.47942
    x = c.loc["x"]
    assert x["conversion"] == pytest.approx(F1, rel=1e-12) and x["unresolved"] == 0
    assert x["rest_conversion"] == pytest.approx(F2, rel=1e-12)
    assert x["p_value"] == pytest.approx(p, rel=1e-12)
    assert c.loc["y", "p_value"] == pytest.approx(p, rel=1e-12)
    q = stats.norm.ppf(0.975)
    assert x["difference_low"] == pytest.approx(F1 - F2 - q * se, rel=1e-12)
    assert x["difference_high"] == pytest.approx(F1 - F2 + q * se, rel=1e-12)
    assert x["differs"] and c.loc["y", "differs"] and x["test"] == "z"
    # the conversion and its interval are the funnel's of the segment alone
    f = log.filter(where="seg == 'x'").funnel().iloc[0]
    assert (x["conversion_low"], x["conversion_high"]) == (
        f["conversion_low"],
        f["conversion_high"],
    )


def test_compare_wald_test_at_the_least_favourable_allocation():
    """x: 12 advanced, 4 lost, 4 open of 20 — F = 0.6, and the open 0.2 is unresolved
    (no stale_after: nothing settles it), so x may lie anywhere in [0.6, 0.8]; y: 10 of
    30 advance, all resolved. The test is at the allocation nearest to y, 0.6."""
    c = M.compare(one_stage_log({"x": (12, 4, 4), "y": (10, 20, 0)}), by="seg")
    x = c.set_index("seg").loc["x"]
    assert x["conversion"] == pytest.approx(0.6, rel=1e-12)
    assert x["unresolved"] == pytest.approx(0.2, rel=1e-12)
    assert x["conversion_high"] >= 0.8
    F1, n1, F2, n2 = 0.6, 20, 1 / 3, 30
    pooled = (n1 * F1 + n2 * F2) / (n1 + n2)  # 0.44
    se = np.sqrt(
        max(F1 * (1 - F1) / n1, pooled * (1 - pooled) / n1)
        + max(F2 * (1 - F2) / n2, pooled * (1 - pooled) / n2)
    )
    nearest = (F1 - 0.0) - (F2 + 0.0)  # x's lowest allocation minus y's highest
    assert x["p_value"] == pytest.approx(2 * stats.norm.sf(nearest / se), rel=1e-9)
    q = stats.norm.ppf(0.975)
    assert x["difference_low"] == pytest.approx(nearest - q * se, rel=1e-9)
    assert x["difference_high"] == pytest.approx((F1 + 0.2) - F2 + q * se, rel=1e-9)
    assert x["difference"] == pytest.approx(F1 - F2, rel=1e-12)
    # y at 0.7 is inside x's range [0.6, 0.8]: a difference of 0 is possible, p = 1
    c = M.compare(one_stage_log({"x": (12, 4, 4), "y": (21, 9, 0)}), by="seg")
    x = c.set_index("seg").loc["x"]
    assert x["p_value"] == 1.0 and not x["differs"]
    assert x["difference_low"] < 0 < x["difference_high"]


def test_compare_tests_and_q_values(sample_log):
    c = M.compare(sample_log, by="region")
    tested = c["p_value"].notna().to_numpy()
    assert tested.sum() >= len(c) - 2
    assert (c.loc[~tested, "test"] == "none").all()
    assert set(c.loc[tested, "test"]) == {"z", "fisher"}  # Fisher: small expected counts
    ok = c.loc[tested]
    assert (ok["difference_low"] <= ok["difference"]).all()
    assert (ok["difference"] <= ok["difference_high"]).all()
    q = stats.false_discovery_control(ok["p_value"], method="bh")
    np.testing.assert_allclose(ok["q_value"], q, rtol=1e-12)
    excludes = (c["difference_low"] > 0) | (c["difference_high"] < 0)
    want = (c["q_value"] <= 0.05).fillna(False) & excludes
    pd.testing.assert_series_equal(c["differs"], want, check_names=False)
    assert c["differs"].dtype == bool
    # where nothing is unresolved on either side, the p-value is the plain Wald test
    # with the interval half-width: p < alpha exactly when the interval excludes 0
    plain = ok[(ok["unresolved"] == 0) & (ok["rest_unresolved"] == 0) & (ok["test"] == "z")]
    assert len(plain) >= 10
    np.testing.assert_array_equal(
        plain["p_value"] < 0.05,
        (plain["difference_low"] > 0) | (plain["difference_high"] < 0),
    )


@pytest.mark.slow
@pytest.mark.parametrize("cells", [1 << 21, 50])  # blocks of tables: one, or many small
def test_vectorised_fisher_equals_scipy_per_table(monkeypatch, cells):
    import itertools

    from funnelkit._stats import fisher_exact_2x2

    monkeypatch.setattr(fk._stats, "_FISHER_CELLS", cells)

    small = np.array(list(itertools.product(range(7), repeat=4)))  # every table up to 6
    rng = np.random.default_rng(5)
    lopsided = np.column_stack(
        [
            rng.integers(0, 4, 400),
            rng.integers(0, 300, 400),
            rng.integers(0, 40, 400),
            rng.integers(0, 3000, 400),
        ]
    )
    tables = np.vstack([small, lopsided, lopsided[:, [1, 0, 3, 2]]])
    for alternative in ("two-sided", "greater", "less"):
        got = fisher_exact_2x2(*tables.T, alternative=alternative)
        want = [
            stats.fisher_exact(t.reshape(2, 2), alternative=alternative).pvalue for t in tables
        ]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="alternative"):
        fisher_exact_2x2(1, 2, 3, 4, alternative="bigger")


def seg_log(n_deals: int, n_seg: int, seed: int) -> fk.EventLog:
    """A synthetic log with a random segment attribute ``seg`` of ``n_seg`` values."""
    events = fk.datasets.synthetic(n_deals, seed=seed)
    rng = np.random.default_rng(seed + 1)
    codes = events["deal_id"].astype("category").cat.codes.to_numpy()
    seg = rng.integers(0, n_seg, codes.max() + 1)[codes]
    events["seg"] = np.char.add("s", seg.astype(str))
    return fk.EventLog(events, **{**KW, "attrs": [*KW["attrs"], "seg"]})


@pytest.mark.slow
def test_compare_of_many_small_segments_estimates_every_complement(monkeypatch):
    """1,500 deals in 300 segments, the complements estimated in many blocks of segments:
    each complement is the funnel of the log without the segment; nothing is planted, and
    nothing differs."""
    log = seg_log(1500, 300, seed=8)
    monkeypatch.setattr(M, "_CHUNK_ROWS", 50_000)  # about 10 segments per block
    c = M.compare(log, by="seg")
    f = log.funnel(by="seg")
    pd.testing.assert_frame_equal(c[["seg", "stage", *AJ_COLS]], f[["seg", "stage", *AJ_COLS]])
    for seg in ("s0", "s137", "s299"):
        rest = log.filter(where=f"seg != '{seg}'").funnel()
        rows = c[c["seg"] == seg]
        np.testing.assert_allclose(rows["rest_conversion"], rest["conversion"], atol=1e-12)
        np.testing.assert_allclose(rows["rest_unresolved"], rest["unresolved"], atol=1e-12)
    # tiny segments: Fisher's exact test of the resolved deals (a segment of 2 lost deals
    # against a rest converting 91% has a Wald p of 7e-6 but an exact p of 0.008)
    tested = c[c["test"] != "none"]
    assert len(tested) > 1000 and (tested["test"] == "fisher").mean() > 0.9
    for r in tested.itertuples():
        x, n = r.advanced, r.advanced + r.dropped
        xr, nr = r.rest_advanced, r.rest_advanced + r.rest_dropped
        if r.test == "fisher":
            want = stats.fisher_exact([[x, n - x], [xr, nr - xr]]).pvalue
            assert r.p_value == pytest.approx(want, rel=0, abs=1e-12)
    assert not c["differs"].any()


def test_compare_beyond_the_row_budget_approximates_the_complements(monkeypatch):
    """Above the row budget the complements come from the whole and the segment
    (``_complement_mixture``): close to the exact estimates, with the same flags."""
    for log, by in (
        (fk.EventLog(fk.datasets.load_sample(), **KW), "team"),
        (seg_log(3000, 12, seed=4), "seg"),
    ):
        exact = M.compare(log, by=by)
        with monkeypatch.context() as mp:
            mp.setattr(M, "_REST_ROWS", 0)
            approx = M.compare(log, by=by)
        gap = (approx["rest_conversion"] - exact["rest_conversion"]).abs()
        gap_u = (approx["rest_unresolved"] - exact["rest_unresolved"]).abs()
        print(f"rest estimate from the mixture, by={by}: largest gap {gap.max():.4f}")
        assert gap.max() <= 0.02 and gap_u.max() <= 0.02
        pd.testing.assert_series_equal(approx["differs"], exact["differs"])
        pd.testing.assert_frame_equal(approx[AJ_COLS], exact[AJ_COLS])


def test_compare_alpha_sets_the_interval_level_and_the_flag(sample_log):
    a = M.compare(sample_log, by="team", alpha=0.05)
    b = M.compare(sample_log, by="team", alpha=0.2)
    for col in ("conversion", "conversion_closed", "difference"):
        wide = a[f"{col}_high"] - a[f"{col}_low"]
        narrow = b[f"{col}_high"] - b[f"{col}_low"]
        assert (narrow <= wide).all() and (narrow < wide).mean() > 0.9
    np.testing.assert_array_equal(a["q_value"], b["q_value"])
    assert b["differs"].sum() >= a["differs"].sum()
    excludes = (b["difference_low"] > 0) | (b["difference_high"] < 0)
    np.testing.assert_array_equal(b["differs"], (b["q_value"] <= 0.2) & excludes)


def test_compare_period_is_the_funnel_of_each_period(sample_log):
    """Before and after a date: each side's row is the funnel of the log of the deals
    created on that side (every deal counts: open deals are censored), and the rest is
    the other side."""
    c = M.compare(sample_log, period="2025-01-01")
    assert c["period"].tolist() == ["before"] * 6 + ["after"] * 6
    assert "reached_by" not in c.columns
    before = c[c["period"] == "before"].set_index("stage")
    after = c[c["period"] == "after"].set_index("stage")
    cols = [*COUNTS, *AJ_COLS, *CLOSED_COLS]
    for side, created in ((after, ("2025-01-01", None)), (before, (None, "2025-01-01"))):
        f = sample_log.filter(created=created).funnel().set_index("stage")
        np.testing.assert_allclose(side[cols], f[cols], rtol=0, atol=1e-12)
    np.testing.assert_allclose(after["rest_conversion"], before["conversion"])
    np.testing.assert_allclose(after["rest_unresolved"], before["unresolved"])
    np.testing.assert_array_equal(before["rest_advanced"], after["advanced"])
    np.testing.assert_array_equal(before["rest_dropped"], after["dropped"])
    # both rows of a stage carry the same test, with opposite signs
    np.testing.assert_allclose(before["difference"], -after["difference"])
    np.testing.assert_allclose(before["p_value"], after["p_value"])
    np.testing.assert_allclose(before["difference_low"], -after["difference_high"])
    # every deal is in one group; summed over the groups, reached is the funnel's
    first = sample_log.deals()["first_event"]
    assert before["deals"].iloc[0] == (first < pd.Timestamp("2025-01-01", tz="UTC")).sum()
    assert before["deals"].iloc[0] + after["deals"].iloc[0] == sample_log.n_deals
    assert (c["reached"] == c["advanced"] + c["dropped"] + c["open"]).all()
    f = sample_log.funnel().set_index("stage")
    np.testing.assert_array_equal(before["reached"] + after["reached"], f["reached"])
    # the young period's open deals leave mass unresolved
    assert after["open"].sum() > 0 and after["unresolved"].max() > 0.1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(), fk.EventLogError, "exactly one of `by`"),
        (dict(by="team", period="2025-01-01"), fk.EventLogError, "got both"),
        (dict(by="colour"), fk.EventLogError, "not a carried attribute"),
        (dict(by="stage"), fk.EventLogError, "output column"),
        (dict(period="not a date"), fk.EventLogError, "`period`"),
        (dict(period="2030-01-01"), fk.EventLogError, "no deal was created after"),
        (dict(by="team", alpha=1.5), fk.EventLogError, "`alpha`"),
        (dict(by="team", alpha="x"), fk.EventLogError, "`alpha`"),
    ],
)
def test_compare_bad_parameters(sample_log, kwargs, error, match):
    with pytest.raises(error, match=match):
        M.compare(sample_log, **kwargs)


@pytest.mark.slow
def test_compare_power_planted_segment_and_change_are_found():
    """A weak Team C at Demo and a better Demo since CHANGE_DATE (+15 points) are flagged
    in >= 85% of 20 logs of 3,000 deals each."""
    seeds = range(20)
    seg = per = 0
    for seed in seeds:
        events = fk.datasets.synthetic(N_DEALS, seed=100 + seed, segment_effect=SEGMENT_EFFECT)
        c = M.compare(fk.EventLog(events, **KW), by="team")
        hit = c[c["differs"] & (c["stage"] == "Demo") & (c["team"] == "Team C")]
        seg += bool(len(hit) and (hit["difference"] < 0).all())
        events = fk.datasets.synthetic(N_DEALS, seed=200 + seed, change=CHANGE)
        c = M.compare(fk.EventLog(events, **KW), period=CHANGE_DATE)
        hit = c[c["differs"] & (c["stage"] == "Demo") & (c["period"] == "after")]
        per += bool(len(hit) and (hit["difference"] > 0).all())
    n = len(seeds)
    print(f"compare power over {n} logs: by=team {seg / n:.2f}, period {per / n:.2f}")
    assert seg / n >= 0.85 and per / n >= 0.85


@pytest.mark.slow
def test_compare_null_no_false_differences_beyond_the_nominal_rate():
    """Nothing planted: the share of analyses with any `differs` stays within alpha plus two
    standard errors (BH under the complete null controls it at alpha), and the p-values are
    below 0.05 at most about 5% of the time — by team, region, a random two-way split
    (two segments of the same process) and before/after a date."""
    alpha = 0.05
    flagged = n = 0
    ps: list[float] = []
    for seed in range(20):
        log = seg_log(N_DEALS, 2, seed=500 + seed)
        for kw in (dict(by="team"), dict(by="region"), dict(by="seg"), dict(period="2025-01-01")):
            c = M.compare(log, **kw)
            flagged += bool(c["differs"].any())
            n += 1
            if "period" in c or "seg" in c:  # two groups: both rows carry the same test
                c = c.iloc[len(c) // 2 :]
            ps.extend(c["p_value"].dropna())
    rate = flagged / n
    bound = alpha + 2 * np.sqrt(alpha * (1 - alpha) / n)
    p = np.asarray(ps)
    share = float((p < 0.05).mean())
    se = np.sqrt(0.05 * 0.95 / p.size)
    print(f"null: any-differs rate {rate:.3f} over {n} analyses (bound {bound:.3f}); ")
    print(f"share of {p.size} p-values < 0.05: {share:.3f}")
    assert rate <= bound
    assert share <= 0.05 + 3 * se


# --------------------------------------------------------------------------- trend
def maturity_cutoffs(log: fk.EventLog) -> pd.Series:
    """Independently, with pandas: per stage, as_of − stale_after − KM p90 of first-visit
    dwell."""
    p90 = log.dwell(visits="first").set_index("stage")["p90"]
    return log.as_of - log.stale_after - p90


def quarter_of(times: pd.Series) -> pd.Series:
    return times.dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("Q").astype(str)


def test_trend_conversion_equals_the_funnel_of_each_cohort(sample_log):
    """Each cohort's rows are the funnel of the log of the cohort's deals (same as_of):
    counts, Aalen–Johansen conversion, interval, unresolved mass and closed ratio."""
    t = M.trend(sample_log, freq="QE")
    d = sample_log.deals()
    quarter = quarter_of(d["first_event"])
    assert t["period"].unique().tolist() == sorted(quarter.unique())
    cols = [*COUNTS, *AJ_COLS, *CLOSED_COLS]
    for period in sorted(quarter.unique()):
        cohort = sample_log.filter(deals=d.loc[quarter == period, "deal"])
        assert cohort.as_of == sample_log.as_of
        f = cohort.funnel()
        rows = t[t["period"] == period]
        assert rows["stage"].tolist() == f["stage"].tolist()
        np.testing.assert_allclose(rows[cols].to_numpy(float), f[cols].to_numpy(float), atol=1e-12)
    assert "counted" not in t.columns
    # reached_by (informative now) and mature, recomputed
    cutoff = maturity_cutoffs(sample_log)
    cut = t.drop_duplicates("stage").set_index("stage")["reached_by"]
    pd.testing.assert_series_equal(cut, cutoff.loc[cut.index], check_names=False)
    want_mature = t["period_end"] - pd.Timedelta(1, "ns") <= t["reached_by"]
    pd.testing.assert_series_equal(t["mature"], want_mature, check_names=False)
    # summed over cohorts, reached is the funnel's; the young cohort has unresolved mass
    f = sample_log.funnel().set_index("stage")["reached"]
    sums = t.groupby("stage")["reached"].sum()
    pd.testing.assert_series_equal(sums, f.loc[sums.index], check_names=False)
    last = t[t["period"] == t["period"].iloc[-1]]
    assert last["open"].sum() > 0 and (last["unresolved"] > 0).sum() >= 3


def test_trend_cohort_table_and_by(sample_log):
    t = M.trend(sample_log, freq="ME", by="team")
    first = sample_log.deals()["first_event"]
    n_months = len(
        pd.period_range(first.min().tz_localize(None), first.max().tz_localize(None), freq="M")
    )
    assert len(t) == 3 * n_months * len(sample_log.stages)
    assert list(t.columns[:5]) == ["team", "period", "period_start", "period_end", "stage"]
    assert str(t["period_start"].dtype) == "datetime64[ns, UTC]"
    assert t["period"].iloc[0] == "2024-01"
    assert (t["period_end"] > t["period_start"]).all()
    whole = M.trend(sample_log, freq="ME")
    for col in COUNTS:
        sums = t.groupby(["period", "stage"], sort=False)[col].sum().to_numpy()
        np.testing.assert_array_equal(sums, whole[col].to_numpy())
    # one cell: the funnel of the team's deals created that month
    d = sample_log.deals()
    month = d["first_event"].dt.tz_localize(None).dt.to_period("M").astype(str)
    sel = (d["team"] == "Team B") & (month == "2024-08")
    f = sample_log.filter(deals=d.loc[sel, "deal"]).funnel()
    cell = t[(t["team"] == "Team B") & (t["period"] == "2024-08")]
    np.testing.assert_allclose(cell[AJ_COLS].to_numpy(float), f[AJ_COLS].to_numpy(float))
    pd.testing.assert_frame_equal(M.trend(sample_log, freq="M"), whole)
    pd.testing.assert_frame_equal(M.trend(sample_log, freq="Q"), M.trend(sample_log, freq="QE"))
    w = M.trend(sample_log, freq="W", metric="win_rate")
    assert (w["period_end"] - w["period_start"] == 7 * DAY).all()
    assert (w["period_start"].dt.day_of_week == 0).all()  # weeks end on Sunday
    q = M.trend(sample_log, freq="QE-NOV", metric="win_rate")
    assert q["period_start"].iloc[1] == pd.Timestamp("2024-03-01", tz="UTC")


def test_trend_period_boundaries_are_utc():
    """A deal created at 01:30 on 1 April in +02:00 was created on 31 March in UTC."""
    events = pd.DataFrame(
        {
            "deal": ["a", "a", "b", "b"],
            "stage": ["A", "W", "A", "L"],
            "ts": [
                "2025-04-01 01:30+02:00",
                "2025-04-03 00:00+02:00",
                "2025-04-01 03:00+02:00",
                "2025-04-04 00:00+02:00",
            ],
        }
    )
    log = fk.EventLog(
        events, deal="deal", stage="stage", time="ts", stages=["A"], won="W", lost="L"
    )
    k = M.kpis_by_period(log, freq="QE")
    assert k["period"].tolist() == ["2025Q1", "2025Q2"]
    assert k["deals"].tolist() == [1, 1] and k["won"].tolist() == [1, 0]
    assert k["period_end"].iloc[0] == pd.Timestamp("2025-04-01", tz="UTC")
    naive = events.assign(ts=pd.to_datetime(events["ts"], utc=True).dt.tz_localize(None))
    log = fk.EventLog(
        naive, deal="deal", stage="stage", time="ts", stages=["A"], won="W", lost="L"
    )
    k = M.kpis_by_period(log, freq="QE")
    assert k["deals"].tolist() == [1, 1] and k["period_start"].dt.tz is None


@pytest.mark.parametrize("freq", ["2QE", "QS-JAN", "h", "quarterly", "W-XYZ", ""])
def test_trend_bad_freq(sample_log, freq):
    with pytest.raises(fk.EventLogError, match="`freq`"):
        M.trend(sample_log, freq=freq)


def test_trend_bad_parameters(sample_log):
    with pytest.raises(TypeError, match="`freq`"):
        M.trend(sample_log, freq=3)  # type: ignore[arg-type]
    with pytest.raises(fk.EventLogError, match="`metric`"):
        M.trend(sample_log, metric="velocity")  # type: ignore[arg-type]
    with pytest.raises(fk.EventLogError, match="not a carried attribute"):
        M.trend(sample_log, by="colour")
    with pytest.raises(fk.EventLogError, match="output column"):
        M.kpis_by_period(sample_log, freq="QE", by="period")


@pytest.mark.parametrize("name", ["difference", "rest_conversion", "conversion_closed"])
def test_compare_refuses_a_segment_named_like_an_output_column(name):
    """A segment column named like one of compare's own columns would be overwritten."""
    events = fk.datasets.load_sample()
    events[name] = events["team"]
    kw = {**fk.datasets.SAMPLE_KWARGS, "attrs": ["team", name]}
    log = fk.EventLog(events, **kw)
    with pytest.raises(fk.EventLogError, match="output column"):
        log.compare(by=name)
    assert log.compare(by="team")["team"].nunique() == 3


def silent_log(stale_after=None) -> fk.EventLog:
    """Ten deals created a day apart that never move past A and never close."""
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    events = pd.DataFrame(
        [(f"d{i}", "A", t0 + pd.Timedelta(days=i)) for i in range(10)],
        columns=["deal", "stage", "ts"],
    )
    return fk.EventLog(
        events, deal="deal", stage="stage", time="ts", stages=["A", "B"], won="Won",
        lost="Lost", as_of=t0 + pd.Timedelta(days=60), stale_after=stale_after,
    )  # fmt: skip


def test_trend_all_nan_warns_why_and_what_to_do():
    log = silent_log()
    with pytest.warns(fk.FunnelkitWarning, match="every conversion is NaN") as rec:
        t = log.trend(metric="conversion", freq="ME")
    assert t["conversion"].isna().all() and t["reached"].sum() == 10
    msg = str(rec[0].message)
    assert "None of the 10 deal-stage pairs has advanced or been lost yet" in msg
    assert "stale_after='60D'" in msg
    assert rec[0].filename == __file__  # points at the caller's line
    with pytest.warns(fk.FunnelkitWarning, match="None of the 10 deals has been won or lost"):
        w = log.trend(metric="win_rate", freq="ME")
    assert w["win_rate"].isna().all()
    # with stale_after the silent deals settle as stale: a conversion and win rate of 0
    log = silent_log(stale_after="10D")
    t = log.trend(metric="conversion", freq="ME")
    assert (t.loc[t["stage"] == "A", "conversion"] == 0).all()
    assert (log.trend(metric="win_rate", freq="ME")["win_rate"] == 0).all()


def test_trend_with_values_does_not_warn(sample_log):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", fk.FunnelkitWarning)
        for metric in ("conversion", "win_rate"):
            M.trend(sample_log, metric=metric)


def test_trend_win_rate_equals_the_funnels_win_rate_from_creation(sample_log):
    """Per cohort: the Aalen–Johansen win rate from the first stage of the cohort's own
    funnel (every deal of the sample starts in a stage, so that clock starts at
    creation); the outcome counts of every deal; the closed ratio is the cohort's
    ``kpis`` win rate."""
    w = M.trend(sample_log, metric="win_rate")
    d = sample_log.deals()
    assert d["furthest_stage"].notna().all()
    quarter = quarter_of(d["first_event"])
    for _, r in w.iterrows():
        cohort = d[quarter == r["period"]]
        oc = cohort["outcome"].value_counts().reindex(["won", "lost", "stale", "open"])
        assert (r["deals"], r["won"], r["lost"], r["stale"], r["open"]) == (
            len(cohort),
            *oc.fillna(0).astype(int),
        )
        f = sample_log.filter(deals=cohort["deal"]).funnel().iloc[0]
        for col in ("", "_low", "_high"):
            assert r[f"win_rate{col}"] == pytest.approx(f[f"win_rate_from{col}"], abs=1e-12)
    k = M.kpis_by_period(sample_log, freq="QE")
    pd.testing.assert_series_equal(w["win_rate_closed"], k["win_rate"], check_names=False)
    assert "counted" not in w.columns
    assert not w["mature"].all() and w["mature"].iloc[0]


def test_trend_win_rate_by_hand():
    """12 won, 4 lost and 4 open of 20 deals created the same day, each closed within
    20 days, the open ones 100 days old: a win rate of 0.6 with 0.2 unresolved, against
    a closed ratio of 12 / 16."""
    w = one_stage_log({"x": (12, 4, 4)}).trend(metric="win_rate", freq="QE").iloc[0]
    assert (w["won"], w["lost"], w["stale"], w["open"]) == (12, 4, 0, 4)
    assert w["win_rate"] == pytest.approx(0.6, rel=1e-12)
    assert w["unresolved"] == pytest.approx(0.2, rel=1e-12)
    assert w["win_rate_low"] < 0.6 and w["win_rate_high"] >= 0.8
    assert w["win_rate_closed"] == 0.75


def test_trend_cycle_time(sample_events, sample_log):
    c = M.trend(sample_log, metric="cycle_time")
    d = sample_log.deals()
    # created_by: as_of − stale_after − KM p90 of the time to any resolution (stale out)
    keep = d["outcome"] != "stale"
    dur = d["cycle_time"].fillna(sample_log.as_of - d["first_event"])[keep]
    km = km_summary(dur.astype("int64").tolist(), (d["outcome"] == "open")[keep].tolist())
    created_by = sample_log.as_of - sample_log.stale_after - km["p90"]
    assert (c["created_by"] == created_by).all()
    assert (M.trend(sample_log, metric="win_rate")["created_by"] == created_by).all()
    quarter = quarter_of(d["first_event"])
    for _, cr in c.iterrows():
        cohort = d[quarter == cr["period"]]
        assert cr["deals"] == len(cohort)
        assert cr["mature"] == (cr["period_end"] - pd.Timedelta(1, "ns") <= created_by)
        if cr["mature"]:  # every deal counts: the cohort's own cycle time
            sub = sub_log(sample_events, cohort["deal"], sample_log.as_of)
            anyrow = sub.cycle_time().set_index("outcome").loc["any"]
            assert (cr["counted"], cr["censored"]) == (anyrow["deals"], anyrow["censored"])
            for col in ("mean", "median", "p75", "p90"):
                assert cr[col] == anyrow[col]


def test_trend_dwell_counts_visits_that_began_by_the_cutoff(sample_log):
    t = M.trend(sample_log, metric="dwell")
    v = sample_log.visits()
    d = sample_log.deals().set_index("deal")
    cutoff = maturity_cutoffs(sample_log)
    v["quarter"] = quarter_of(d.loc[v["deal"], "first_event"]).to_numpy()
    v = v[v["dwell"].notna()]
    for _, r in t.iterrows():
        cell = v[(v["quarter"] == r["period"]) & (v["stage"] == r["stage"])]
        counted = cell[cell["entered"] <= cutoff[r["stage"]]]
        assert (r["visits"], r["counted"]) == (len(cell), len(counted))
        assert r["censored"] == counted["censored"].sum()
        if r["stage"] in ("Demo", "Negotiation"):  # the slow reference, on a few cells
            km = km_summary(
                counted["dwell"].astype("int64").tolist(), counted["censored"].tolist()
            )
            for col in ("median", "p75", "p90"):
                assert r[col] == km[col] or (pd.isna(r[col]) and pd.isna(km[col]))
            assert pd.isna(km["mean"]) or abs(r["mean"] - km["mean"]) <= pd.Timedelta(1, "ns")


def test_trend_shows_a_planted_change():
    """Demo advances with 0.8 instead of 0.65 for visits after CHANGE_DATE: every cohort
    created after it converts visibly better than every cohort created well before."""
    log = fk.EventLog(fk.datasets.synthetic(N_DEALS, seed=7, change=CHANGE), **KW)
    t = M.trend(log, freq="QE")
    resolved = t["advanced"] + t["dropped"]
    demo = t[(t["stage"] == "Demo") & (resolved >= 30)].set_index("period")
    before = demo.loc[["2024Q1", "2024Q2"]]
    after = demo[demo["period_start"] >= pd.Timestamp(CHANGE_DATE, tz="UTC")]
    assert len(after) >= 3
    assert before["conversion_high"].max() < after["conversion"].min()
    # the youngest cohort's interval is widened by its unresolved mass (open deals)
    settled = after[after["unresolved"] <= 0.05]
    assert len(settled) >= 2
    assert settled["conversion_low"].min() > before["conversion"].max()


def test_trend_recent_cohorts_are_not_biased_on_a_null_log():
    """Nothing changes over time (and no stage is skipped, so every stage's conversion is
    the planted `advance`): in every cohort, the young ones included, the intervals cover
    the truth, and the estimate of the youngest cohort is unbiased — where the closed
    ratio is not (an advance counts at once, a silent deal turns stale only later). The
    youngest cohort's win rate interval covers the true win rate thanks to its
    unresolved mass."""
    parts, wins = [], []
    for seed in range(8):
        events, truth = fk.datasets.synthetic(
            N_DEALS, seed=900 + seed, p_skip=0, return_truth=True
        )
        log = fk.EventLog(events, **KW)
        t = M.trend(log, freq="QE")
        parts.append(t.assign(truth=t["stage"].map(truth.advance)))
        w = M.trend(log, freq="QE", metric="win_rate")
        wins.append(w.assign(truth=np.prod(list(truth.advance.values()))))
    t = pd.concat(parts)
    t = t[t["conversion"].notna()]
    t["cover"] = (t["conversion_low"] <= t["truth"]) & (t["truth"] <= t["conversion_high"])
    t["error"] = t["conversion"] - t["truth"]
    t["error_closed"] = t["conversion_closed"] - t["truth"]
    per = t.groupby("period")[["cover", "error", "error_closed", "unresolved"]].mean()
    print("per cohort, over 8 logs and 6 stages:\n", per.round(3))
    assert (per["cover"] >= 0.9).all()
    young = per.iloc[-1]
    assert abs(young["error"]) <= 0.02 and young["error_closed"] >= 0.03
    assert young["unresolved"] > 0.1
    w = pd.concat(wins)
    w = w[w["period"] == w["period"].max()]
    covered = (w["win_rate_low"] <= w["truth"]) & (w["truth"] <= w["win_rate_high"])
    assert covered.all() and (w["unresolved"] > 0.2).all()
    assert (w["win_rate_closed"] < w["truth"]).mean() >= 0.75  # the plain ratio: too low


# --------------------------------------------------------------------------- KPIs
def test_kpis_by_period_equal_the_cohorts_own_kpis(sample_events, sample_log):
    k = M.kpis_by_period(sample_log, freq="QE")
    d = sample_log.deals()
    quarter = quarter_of(d["first_event"])
    assert k["period"].tolist() == sorted(quarter.unique())
    cols = ["deals", "won", "lost", "stale", "open", "win_rate", "avg_won_amount"]
    cols += ["median_won_cycle_time", "pipeline_velocity"]
    for _, r in k.iterrows():
        sub = sub_log(sample_events, d.loc[quarter == r["period"], "deal"], sample_log.as_of)
        want = sub.kpis().iloc[0]
        for col in cols:
            assert r[col] == want[col] or (pd.isna(r[col]) and pd.isna(want[col])), col
    assert k["deals"].sum() == sample_log.n_deals
    w = M.trend(sample_log, metric="win_rate")
    pd.testing.assert_series_equal(k["mature"], w["mature"])
    pd.testing.assert_series_equal(k["created_by"], w["created_by"])


def test_kpis_by_period_with_segments_and_empty_periods(sample_events):
    deals = sample_events.groupby("deal_id")["ts"].min()
    may = deals.index[(deals >= "2024-05-01") & (deals < "2024-06-01")]
    events = sample_events[~sample_events["deal_id"].isin(may)]
    log = fk.EventLog(events, **KW)
    k = M.kpis_by_period(log, freq="ME", by="team")
    gap = k[k["period"] == "2024-05"]
    assert len(gap) == 3 and (gap["deals"] == 0).all() and gap["win_rate"].isna().all()
    assert gap["median_won_cycle_time"].isna().all()
    assert k["deals"].dtype == np.int64
    per_team = k.groupby("team")["deals"].sum()
    whole = log.kpis(by="team").set_index("team")["deals"]
    pd.testing.assert_series_equal(per_team, whole.loc[per_team.index], check_names=False)
    cell = k[(k["team"] == "Team B") & (k["period"] == "2024-08")].iloc[0]
    d = log.deals()
    month = d["first_event"].dt.tz_localize(None).dt.to_period("M").astype(str)
    sel = (d["team"] == "Team B") & (month == "2024-08")
    want = sub_log(events, d.loc[sel, "deal"], log.as_of).kpis().iloc[0]
    assert cell["deals"] == want["deals"] and cell["win_rate"] == want["win_rate"]
    assert cell["avg_won_amount"] == pytest.approx(want["avg_won_amount"], rel=1e-12)


# --------------------------------------------------------------------------- movement
HAND = [  # deal, amount, events (stage, time); window 2025-03-01 .. 2025-03-31
    ("open_adv", 100, [("A", "2025-02-10"), ("B", "2025-03-10")]),
    ("regress", 200, [("A", "2025-02-01"), ("C", "2025-02-20"), ("B", "2025-03-15")]),
    ("new_open", 400, [("A", "2025-03-05")]),
    ("won_in", 800, [("A", "2025-02-15"), ("W", "2025-03-20")]),
    ("lost_at_end", 1600, [("A", "2025-02-15"), ("L", "2025-03-31")]),
    ("went_stale", 3200, [("A", "2025-02-20")]),
    ("revived", 6400, [("A", "2025-01-01"), ("B", "2025-03-10")]),
    ("won_before", 12800, [("A", "2025-01-10"), ("W", "2025-02-01")]),
    ("new_won", 25600, [("A", "2025-03-02"), ("W", "2025-03-25")]),
    ("later", 51200, [("A", "2025-04-10")]),
    # a re-logged stage is activity: open at start (silent 14 days, not 40), stale at end
    ("relog_alive", 102400, [("A", "2025-01-20"), ("A", "2025-02-15")]),
    # the lost event was reopened: open throughout, and it advanced in the window
    (
        "reopened",
        204800,
        [("A", "2025-01-20"), ("L", "2025-02-01"), ("A", "2025-02-10"), ("B", "2025-03-20")],
    ),
    # first event exactly at start: open at start; silent exactly 30 days at end: not stale
    ("at_start", 409600, [("A", "2025-03-01")]),
    ("stale_both", 819200, [("A", "2024-12-01")]),
]
HAND_KW = dict(
    deal="deal", stage="stage", time="ts", stages=["A", "B", "C"], won="W", lost="L",
    amount="amount", as_of="2025-04-30", stale_after="30D",
)  # fmt: skip
HAND_EXPECTED = {
    "open_at_start": [
        "open_adv", "regress", "won_in", "lost_at_end", "went_stale", "relog_alive", "reopened",
        "at_start",
    ],
    "created": ["new_open", "revived", "new_won"],
    "advanced": ["open_adv", "reopened"],
    "regressed": ["regress"],
    "won": ["won_in", "new_won"],
    "lost": ["lost_at_end"],
    "stale": ["went_stale", "relog_alive"],
    "open_at_end": ["open_adv", "regress", "new_open", "revived", "reopened", "at_start"],
}  # fmt: skip


def hand_events() -> pd.DataFrame:
    rows = [(d, s, t, a) for d, a, evs in HAND for s, t in evs]
    return pd.DataFrame(rows, columns=["deal", "stage", "ts", "amount"])


def test_movement_hand_worked_example():
    log = fk.EventLog(hand_events(), **HAND_KW)
    m = M.movement(log, "2025-03-01", "2025-03-31")
    assert m["category"].tolist() == list(M.CATEGORIES)
    amount = {d: a for d, a, _ in HAND}
    for cat, deals in HAND_EXPECTED.items():
        row = m.set_index("category").loc[cat]
        assert row["deals"] == len(deals), cat
        assert row["amount"] == sum(amount[d] for d in deals), cat  # powers of two: the set
    assert m["deals"].dtype == np.int64 and m["amount"].dtype == np.float64


def test_movement_without_amount_or_stale_after():
    events = hand_events()
    kw = {k: v for k, v in HAND_KW.items() if k not in ("amount", "stale_after")}
    m = M.movement(fk.EventLog(events, **kw), "2025-03-01", "2025-03-31").set_index("category")
    assert m["amount"].isna().all()
    assert m.loc["stale", "deals"] == 0
    # without stale_after the silent deals stay open: stale_both and revived were open
    assert m.loc["open_at_start", "deals"] == len(HAND_EXPECTED["open_at_start"]) + 2
    d = m["deals"]
    assert d["open_at_start"] + d["created"] - d["won"] - d["lost"] == d["open_at_end"]


def test_movement_at_as_of_matches_the_log(sample_log):
    m = M.movement(sample_log, "2025-01-01", sample_log.as_of).set_index("category")["deals"]
    q = sample_log.quality
    assert m["open_at_end"] == q.open
    d = sample_log.deals()
    start = pd.Timestamp("2025-01-01", tz="UTC")
    ended = d["first_event"] + d["cycle_time"]
    won_in = ((d["outcome"] == "won") & (ended > start)).sum()
    assert m["won"] == won_in


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        ("2025-03-31", "2025-03-01", "before `end`"),
        ("2025-03-01", "2025-03-01", "before `end`"),
        ("2025-03-01", "2025-05-01", "after the log's as_of"),
        ("soon", "2025-03-01", "`start`"),
        ("2025-03-01", "2025-03-31 00:00+02:00", "time zone"),
    ],
)
def test_movement_bad_windows(start, end, match):
    log = fk.EventLog(hand_events(), **HAND_KW)
    with pytest.raises(fk.EventLogError, match=match):
        M.movement(log, start, end)


def reference_states(events: pd.DataFrame, t: pd.Timestamp, stale_after: pd.Timedelta):
    """Deal by deal, with loops (tests/reference.py cleans the paths): state at t, furthest
    and current stage rank."""
    stages = ["A", "B", "C", "D"]
    paths, _ = deal_paths(events, stages=stages, won=["W"], lost=["L1", "L2"], amount="amount")
    out = {}
    for deal, dp in paths.items():
        amount = next((e.amount for e in dp.events if not np.isnan(e.amount)), np.nan)
        if min(e.time for e in dp.events) > t:
            out[deal] = ("none", -1, -1, amount)
            continue
        last = dp.path[-1]
        if last.terminal and last.time <= t:
            out[deal] = ("won" if last.stage == "W" else "lost", -1, -1, amount)
            continue
        latest = max(e.time for e in dp.events if e.time <= t)
        if t - latest > stale_after:
            out[deal] = ("stale", -1, -1, amount)
            continue
        ranks = [stages.index(e.stage) for e in dp.path if e.time <= t and not e.terminal]
        out[deal] = ("open", max(ranks, default=-1), ranks[-1] if ranks else -1, amount)
    return out


def reference_movement(events, start, end, stale_after) -> pd.DataFrame:
    s0 = reference_states(events, start, stale_after)
    s1 = reference_states(events, end, stale_after)
    rows = {c: [0, 0.0] for c in M.CATEGORIES}
    for deal, (a, f0, c0, amount) in s0.items():
        b, f1, c1, _ = s1[deal]
        cats = []
        if a == "open":
            cats.append("open_at_start")
        if (a == "none" and b != "none") or (a == "stale" and b in ("open", "won", "lost")):
            cats.append("created")
        if a == b == "open" and f1 > f0:
            cats.append("advanced")
        if a == b == "open" and c1 < c0:
            cats.append("regressed")
        for out in ("won", "lost", "stale"):
            if b == out and a != out:
                cats.append(out)
        if b == "open":
            cats.append("open_at_end")
        for cat in cats:
            rows[cat][0] += 1
            rows[cat][1] += 0.0 if np.isnan(amount) else amount
    return pd.DataFrame(
        [(c, n, a) for c, (n, a) in rows.items()], columns=["category", "deals", "amount"]
    )


@settings(max_examples=40)
@given(
    events=event_logs(max_deals=35),
    hours=st.lists(st.integers(0, SPAN_HOURS), min_size=2, max_size=2, unique=True),
)
def test_movement_reconciles_and_equals_the_loop_reference(events, hours):
    """On generated logs with every edge case (ties, repeats keeping deals alive, reopens,
    stale deals that revive): the identity holds and every category equals a deal-by-deal
    reference."""
    log = fk.EventLog(events, **LOG_KW, amount="amount", stale_after="30D")
    lo, hi = sorted(hours)
    start, end = START + pd.Timedelta(hours=lo), START + pd.Timedelta(hours=hi)
    if log.as_of.tzinfo is not None:
        start, end = start.tz_localize("UTC"), end.tz_localize("UTC")
    end = min(end, log.as_of)
    if not start < end:
        return
    m = M.movement(log, start, end)
    d = m.set_index("category")["deals"]
    assert (
        d["open_at_start"] + d["created"] - d["won"] - d["lost"] - d["stale"] == d["open_at_end"]
    )
    ev = events.copy()
    ev["ts"] = pd.to_datetime(ev["ts"])
    want = reference_movement(ev, start, end, pd.Timedelta("30D"))
    pd.testing.assert_frame_equal(m[["category", "deals"]], want[["category", "deals"]])
    np.testing.assert_allclose(m["amount"], want["amount"])


def test_movement_reconciles_on_bpic_2012(bpic_events):
    """Month windows on the real log (A_ COMPLETE events, stale after 30 days): the
    identity holds, consecutive windows chain (open at the end of one = open at the start
    of the next), and the last window ends at as_of with the log's open deals."""
    a = bpic_events[
        (bpic_events["lifecycle"] == "COMPLETE") & bpic_events["activity"].str.startswith("A_")
    ]
    bpic_log = fk.EventLog(
        a.reset_index(drop=True), deal="case_id", stage="activity", time="ts",
        won=["A_APPROVED", "A_REGISTERED", "A_ACTIVATED"], lost=["A_DECLINED", "A_CANCELLED"],
        amount="amount_req", stale_after="30D",
    )  # fmt: skip
    edges = [
        pd.Timestamp(x, tz="UTC")
        for x in ("2011-10-01", "2011-11-01", "2011-12-01", "2012-01-01", "2012-02-01")
    ]
    edges.append(bpic_log.as_of)
    previous = None
    for start, end in zip(edges[:-1], edges[1:], strict=True):
        m = M.movement(bpic_log, start, end).set_index("category")
        d, a = m["deals"], m["amount"]
        assert (
            d["open_at_start"] + d["created"] - d["won"] - d["lost"] - d["stale"]
            == d["open_at_end"]
        )
        lhs = a["open_at_start"] + a["created"] - a["won"] - a["lost"] - a["stale"]
        assert lhs == pytest.approx(a["open_at_end"], rel=1e-12)
        assert d["won"] > 0 and d["lost"] > 0 and d["created"] > 0
        if previous is not None:
            assert d["open_at_start"] == previous
        previous = d["open_at_end"]
    assert previous == bpic_log.quality.open


def test_trend_dwell_median_interval_is_the_km_interval_of_the_counted_visits(sample_log):
    """trend(metric="dwell") gives each cohort's median its Brookmeyer-Crowley interval:
    the one dwell() computes, on that cohort's counted visits of the stage (rebuilt here
    from the public visits table)."""
    from funnelkit import _stats

    t = sample_log.trend(freq="YE", metric="dwell")
    v = sample_log.visits()
    first = sample_log.deals().set_index("deal")["first_event"]
    v = v.assign(created=v["deal"].map(first)).dropna(subset=["dwell"])
    checked = 0
    for _, row in t.loc[t["counted"] >= 20].iterrows():
        sel = v.loc[
            (v["stage"] == row["stage"])
            & (v["created"] >= row["period_start"])
            & (v["created"] < row["period_end"])
            & (v["entered"] <= row["reached_by"])
        ]
        assert len(sel) == row["counted"]
        km = _stats.kaplan_meier(
            np.zeros(len(sel), dtype=np.int64),
            sel["dwell"].to_numpy().astype("timedelta64[ns]").astype(np.int64),
            sel["censored"].to_numpy(),
            1,
        )
        for side in ("low", "high"):
            want = km[f"q50_{side}"][0]
            got = row[f"median_{side}"]
            if np.isnan(want):
                assert pd.isna(got)
            else:
                assert got == pd.Timedelta(int(want), "ns")
        checked += 1
    assert checked >= 6
