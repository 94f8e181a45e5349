"""Forecast per period (issue 19, item 4): hand-worked open-deal and arrival values, the
simulation against an exact Poisson-binomial, quota coverage, errors, the backtest's
observed counts against a direct count, and interval calibration on seasonal logs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit._period_forecast import (
    RECENT_DAYS,
    backtest_periods,
    first_states,
    fit_arrivals,
    period_freq,
)

#: probability of keeping a deal created in month 1..12 (as in benchmarks/forecast_periods.py)
KEEP = np.array([0.7, 0.6, 0.8, 0.7, 0.5, 0.35, 0.25, 0.4, 0.8, 1.0, 0.95, 0.6])


def seasonal_events(n_deals: int, seed: int, start: str, end: str) -> pd.DataFrame:
    """A synthetic log with seasonal creations: whole deals dropped by creation month
    (deals are independent, so the rest is still a log of the same process)."""
    ev = fk.datasets.synthetic(n_deals, seed=seed, start=start, end=end)
    created = ev.groupby("deal_id")["ts"].min()
    rng = np.random.default_rng(10_000 + seed)
    keep = rng.random(len(created)) < KEEP[created.dt.month.to_numpy() - 1]
    return ev[ev["deal_id"].isin(set(created.index[keep]))].reset_index(drop=True)


AS_OF = pd.Timestamp("2025-03-10", tz="UTC")
DAY = pd.Timedelta(days=1)


# =========================================================================== a known chain
def _known_chain() -> tuple[pd.DataFrame, dict[str, float]]:
    """Every deal enters A and is won exactly 30 days later. History: a deal created every
    two days from 2024-10-01 to 2025-02-01 (all won by 2025-03-03); open deals that
    entered A 29.5, 20.5, 10.5, 5.5 and 0.5 days before as_of (won 0.5 … 29.5 days after
    it)."""
    rows = []
    t = pd.Timestamp("2024-10-01", tz="UTC")
    i = 0
    while t <= pd.Timestamp("2025-02-01", tz="UTC"):
        rows += [(f"h{i:03d}", "A", t, 100.0), (f"h{i:03d}", "Won", t + 30 * DAY, 100.0)]
        t += 2 * DAY
        i += 1
    ages = {"o1": 29.5, "o2": 20.5, "o3": 10.5, "o4": 5.5, "o5": 0.5}
    for deal, age in ages.items():
        rows.append((deal, "A", AS_OF - age * DAY, 1000.0))
    ev = pd.DataFrame(rows, columns=["deal", "stage", "ts", "amount"])
    return ev, ages


@pytest.fixture(scope="module")
def chain_log():
    ev, _ = _known_chain()
    return fk.EventLog(
        ev, deal="deal", stage="stage", time="ts", stages=["A"], won="Won", lost="Lost",
        amount="amount", as_of=AS_OF,
    )  # fmt: skip


def test_open_deals_are_won_in_the_period_their_dwell_ends(chain_log):
    fc = chain_log.forecast(by_period="ME", periods=3, seed=1)
    p = fc.periods.set_index("period")
    assert list(p.index) == ["2025-03", "2025-04", "2025-05"]
    # March has 22 days left: o1, o2, o3 are won in it (0.5, 9.5, 19.5 days), o4 and o5
    # in April (24.5, 29.5 days), none in May
    assert p["expected_open_wins"].tolist() == pytest.approx([3.0, 2.0, 0.0], abs=1e-9)
    assert p["expected_open_amount"].tolist() == pytest.approx([3000.0, 2000.0, 0.0])
    # won in March before as_of: the deal created on 2025-01-31 (won 2025-03-02)
    ev, _ = _known_chain()
    won = ev[(ev["stage"] == "Won") & (ev["ts"] >= "2025-03-01") & (ev["ts"] <= AS_OF)]
    assert p.loc["2025-03", "won_to_date"] == len(won) == 1
    assert p.loc["2025-03", "won_amount_to_date"] == pytest.approx(100.0)
    assert p.loc["2025-04", "won_to_date"] == 0
    # open-deal wins are certain, so each period's total is at least them
    assert p["wins_low"].tolist()[0] >= 4.0
    assert (p["days_ahead"].to_numpy() == [22.0, 30.0, 31.0]).all()
    assert (p["open_deals"] == 5).all()


def test_stale_deals_come_back_as_the_dwell_curve_says():
    # with stale_after=20D, o1 and o2 (silent 29.5 and 20.5 days) are stale at as_of. The
    # stale share of A's exits is pi = 2 / 64 (62 won, 2 stale) and every completed visit
    # lasted 30 days (S = 1 before): a stale deal leaves at day 30 of its visit with
    # probability (1 - pi) / (pi + (1 - pi) * 1) = 62 / 64, and is won then (in March)
    ev, _ = _known_chain()
    log = fk.EventLog(
        ev, deal="deal", stage="stage", time="ts", stages=["A"], won="Won", lost="Lost",
        amount="amount", as_of=AS_OF, stale_after="20D",
    )  # fmt: skip
    assert log.quality.stale == 2
    p = log.forecast(by_period="ME", periods=3, seed=1).periods
    assert p["stale_deals"].tolist() == [2, 2, 2]
    assert p["expected_stale_wins"].to_numpy() == pytest.approx([2 * 62 / 64, 0, 0], abs=1e-9)
    assert p["expected_stale_amount"].iloc[0] == pytest.approx(2000 * 62 / 64)
    # o3 (19.5 days to go) is won in March, o4 and o5 in April, each unless it went
    # silent (probability pi, as for every deal entering A)
    q = 62 / 64
    assert p["expected_open_wins"].to_numpy() == pytest.approx([q, 2 * q, 0.0], abs=1e-9)
    assert p["expected_wins"].to_numpy() == pytest.approx(
        p[["won_to_date", "expected_open_wins", "expected_stale_wins", "expected_new_wins"]]
        .sum(axis=1)
        .to_numpy()
    )


def test_arrival_rate_is_the_direct_count_over_the_window(chain_log):
    fc = chain_log.forecast(by_period="ME", periods=3, seed=1)
    p = fc.periods.set_index("period")
    ev, _ = _known_chain()
    created = ev.groupby("deal")["ts"].min()
    start = AS_OF - RECENT_DAYS * DAY
    rate = int((created >= start).sum()) / RECENT_DAYS
    assert (p["arrival_model"] == "recent").all()
    assert p["arrivals_per_day"].to_numpy() == pytest.approx(rate)
    assert p["expected_new_deals"].to_numpy() == pytest.approx(rate * p["days_ahead"].to_numpy())
    # a deal created x days after as_of is won at x + 30: none in March, those created
    # in March (22 days) in April, those created from March 31 to May 1 in May (31 days)
    assert p["expected_new_wins"].to_numpy() == pytest.approx(
        [0.0, 22 * rate, 31 * rate], abs=1.01 * rate
    )
    # new wins carry the won deals' mean amount (100)
    assert p["expected_new_amount"].to_numpy() == pytest.approx(
        100.0 * p["expected_new_wins"].to_numpy()
    )


def test_seasonal_factor_is_the_direct_month_count():
    ev = seasonal_events(3000, 4, "2022-01-01", "2024-12-31")
    log = fk.EventLog(ev, **fk.datasets.SAMPLE_KWARGS)
    seg = np.zeros(log.n_deals, dtype=np.int64)
    arr = fit_arrivals(log, seg, 1, first_states(log))
    assert arr.model == "seasonal"
    created = ev.groupby("deal_id")["ts"].min()
    start = log.as_of - ((log.as_of - created.min()) // DAY) * DAY  # whole days back
    created = created[created >= start]
    days = pd.date_range(start, log.as_of - DAY, freq="D") + DAY / 2
    n_m = created.dt.month.value_counts().reindex(range(1, 13), fill_value=0).to_numpy()
    d_m = pd.Series(days.month).value_counts().reindex(range(1, 13)).to_numpy()
    factor = (n_m / d_m) / (n_m.sum() / d_m.sum())
    np.testing.assert_allclose(arr.factor, factor, rtol=1e-12)
    # the level: deals created in the last 365 days over their seasonal exposure
    last = created[created >= log.as_of - 365 * DAY]
    d_last = pd.Series(days[-365:].month).value_counts().reindex(range(1, 13), fill_value=0)
    assert arr.level[0] == pytest.approx(len(last) / float(d_last.to_numpy() @ factor))
    fc = log.forecast(by_period="QE", periods=2, n_sims=200)
    assert (fc.periods["arrival_model"] == "seasonal").all()


# =========================================================================== simulation
def _poisson_binomial(p: np.ndarray) -> np.ndarray:
    """Exact distribution of a sum of independent Bernoullis: a slow, obvious loop."""
    dist = [1.0]
    for q in p:  # loop over deals
        new = [0.0] * (len(dist) + 1)
        for k, x in enumerate(dist):
            new[k] += x * (1 - q)
            new[k + 1] += x * q
        dist = new
    return np.array(dist)


@pytest.mark.slow
def test_simulated_interval_is_the_exact_poisson_binomial():
    # no deal created in the last 91 days: the periods' wins come from the open deals
    ev = fk.datasets.synthetic(1500, seed=7, end="2024-06-30", as_of="2024-10-20")
    kw = {k: v for k, v in fk.datasets.SAMPLE_KWARGS.items() if k != "stale_after"}
    log = fk.EventLog(ev, **kw)  # no stale deals: every deal not closed is open
    fc = log.forecast(by_period="ME", periods=3, n_sims=20_000, seed=3)
    p = fc.periods
    assert p["expected_new_deals"].sum() == 0
    assert (p["stale_deals"] == 0).all()
    # the open deals' probabilities, from independent forecasts to each period end as the
    # per-period forecast reads it: on the grid of the whole span (n whole days rounded up,
    # steps of span / n), each end rounded to a step
    span = p["period_end"].iloc[-1] - log.as_of
    step = span / math.ceil(span / pd.Timedelta(days=1))
    ends = [round((e - log.as_of) / step) * step for e in p["period_end"]]
    assert (
        max(abs(h - (e - log.as_of)) for h, e in zip(ends, p["period_end"], strict=True))
        <= step / 2
    )
    cum = [log.forecast(h).deals["p_win"].to_numpy() for h in ends]
    cum = np.maximum.accumulate(np.column_stack(cum), axis=1)
    per = np.diff(np.column_stack([np.zeros(len(cum)), cum]), axis=1)
    np.testing.assert_allclose(p["expected_open_wins"], per.sum(axis=0), atol=1e-7)
    for j in range(3):  # loop over periods
        dist = _poisson_binomial(per[:, j])
        cdf = np.cumsum(dist)
        base = p["won_to_date"].iloc[j]
        lo = base + int(np.searchsorted(cdf, 0.025))
        hi = base + int(np.searchsorted(cdf, 0.975))
        assert abs(p["wins_low"].iloc[j] - lo) <= 1, (j, p["wins_low"].iloc[j], lo)
        assert abs(p["wins_high"].iloc[j] - hi) <= 1, (j, p["wins_high"].iloc[j], hi)
    # nested bands
    for kind in ("wins", "amount"):
        lo95, lo80, lo50 = (p[f"{kind}_low{s}"] for s in ("", "80", "50"))
        hi50, hi80, hi95 = (p[f"{kind}_high{s}"] for s in ("50", "80", ""))
        assert ((lo95 <= lo80) & (lo80 <= lo50) & (lo50 <= hi50)).all()
        assert ((hi50 <= hi80) & (hi80 <= hi95)).all()


# =========================================================================== quota
@pytest.fixture(scope="module")
def sample_log():
    return fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)


def test_quota_coverage_and_probability(sample_log):
    fc = sample_log.forecast(by_period="ME", periods=3, quota=150_000)
    p = fc.periods
    pipeline = float(fc.deals["amount"].sum())
    np.testing.assert_allclose(p["pipeline"], pipeline)
    done = p["won_amount_to_date"].iloc[0]
    remaining = np.maximum(150_000 * np.arange(1, 4) - done, 0)
    np.testing.assert_allclose(p["quota_remaining"], remaining)
    np.testing.assert_allclose(p["coverage"], pipeline / remaining)
    # p_quota agrees with the simulated bands
    for r in p.itertuples():
        if r.amount_high < 150_000:
            assert r.p_quota <= 0.025
        if r.amount_low >= 150_000:
            assert r.p_quota >= 0.975
        if r.amount_low50 <= 150_000 <= r.amount_high50:
            assert 0.2 <= r.p_quota <= 0.8
    zero = sample_log.forecast(by_period="ME", periods=2, quota=0, quota_of="wins")
    assert (zero.periods["p_quota"] == 1.0).all()
    assert np.isinf(zero.periods["coverage"]).all()


def test_quota_table_per_period_and_segment(sample_log):
    teams = sorted(fk.datasets.load_sample()["team"].unique())
    table = pd.DataFrame(
        {"team": [teams[0], teams[1]], "period": ["2025-07", "2025-08-15"], "quota": [5.0, 7.0]}
    )
    fc = sample_log.forecast(by="team", by_period="ME", periods=3, quota=table, quota_of="wins")
    p = fc.periods.set_index(["team", "period"])
    assert p.loc[(teams[0], "2025-07"), "quota"] == 5.0
    assert p.loc[(teams[1], "2025-08"), "quota"] == 7.0
    assert p["quota"].notna().sum() == 2
    assert p["p_quota"].notna().sum() == 2
    # a segment's pipeline counts its open deals
    n_open = fc.deals.groupby("team", observed=True).size()
    assert p.loc[(teams[0], "2025-06"), "pipeline"] == n_open[teams[0]]
    assert set(fc.periods["team"]) == set(teams)


# =========================================================================== errors
@pytest.mark.slow
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"by_period": "MS"}, "not a supported period"),
        ({"by_period": "2M"}, "not a supported period"),
        ({"by_period": "ME", "periods": 0}, "`periods` must be"),
        ({"by_period": "ME", "periods": 2.5}, "`periods` must be"),
        ({"by_period": "ME", "quota": -5}, "finite number >= 0"),
        ({"by_period": "ME", "quota": "lots"}, "`quota` must be"),
        ({"by_period": "ME", "quota_of": "deals"}, "`quota_of` must be"),
        ({"by_period": "ME", "n_sims": 10}, "`n_sims` must be"),
        ({"by_period": "ME", "horizon": "30D"}, "not both"),
        ({"periods": 4}, "pass `by_period`"),
        ({"quota": 10.0}, "pass `by_period`"),
        ({"by_period": "W", "periods": 36}, None),
        ({"by_period": "QE", "periods": 12}, "at most 740 days"),
        ({"by_period": "ME", "quota": pd.DataFrame({"period": ["2031-01"], "quota": [1]})},
         "name no forecast period"),
        ({"by_period": "ME", "quota": pd.DataFrame({"month": ["2025-06"], "quota": [1]})},
         "lacks the column"),
        ({"by_period": "ME", "quota": pd.DataFrame({"period": ["2025-06"] * 2, "quota": [1, 2]})},
         "duplicate"),
        ({"by_period": "ME", "quota": pd.DataFrame({"period": ["2025-06"], "quota": [-1]})},
         "not a number >= 0"),
    ],
)  # fmt: skip
def test_bad_parameters_say_what_is_allowed(sample_log, kwargs, match):
    if match is None:  # the largest allowed call works
        assert len(sample_log.forecast(n_sims=100, **kwargs).periods) == kwargs["periods"]
        return
    with pytest.raises(fk.InvalidParameterError, match=match):
        sample_log.forecast(**kwargs)


def test_period_aliases():
    assert [period_freq(a) for a in ("W", "W-FRI", "ME", "QE", "QE-JAN", "YE-MAR")] == [
        "W",
        "W-FRI",
        "M",
        "Q",
        "Q-JAN",
        "Y-MAR",
    ]


def test_without_by_period_the_forecast_is_unchanged(sample_log):
    fc = sample_log.forecast("90D")
    assert fc.periods is None and fc.period_history is None
    assert fc.totals.equals(sample_log.forecast(horizon="90D").totals)


def test_history_counts_wins_per_past_period(sample_log):
    fc = sample_log.forecast(by_period="ME", periods=3)
    h = fc.period_history
    d = sample_log.deals()
    won = d[d["outcome"] == "won"]
    at = won["first_event"] + won["cycle_time"]
    for r in h.itertuples():
        inside = (at >= r.period_start) & (at < r.period_end)
        assert r.wins == int(inside.sum())
        assert r.won_amount == pytest.approx(float(won.loc[inside, "amount"].sum()))
    assert h["period"].iloc[-1] == fc.periods["period"].iloc[0]
    assert not h["complete"].iloc[-1]


# =========================================================================== backtest
def test_backtest_observed_is_a_direct_count(sample_log):
    bt = backtest_periods(sample_log, "ME", 2, n_cuts=3, n_sims=300)
    d = sample_log.deals()
    won = d[d["outcome"] == "won"]
    at = won["first_event"] + won["cycle_time"]
    assert len(bt.periods) == 6
    for r in bt.periods.itertuples():
        inside = (at >= r.period_start) & (at < r.period_end)
        assert r.observed_wins == int(inside.sum())
        assert r.period_end <= sample_log.as_of
        assert r.covered == (r.wins_low <= r.observed_wins <= r.wins_high)
    s = bt.scores
    assert s["forecasts"].tolist() == [3, 3]
    assert s["covered"].sum() == bt.periods["covered"].sum()


def test_backtest_rejects_a_cut_without_outcome(sample_log):
    with pytest.raises(fk.EventLogError, match="not known yet"):
        backtest_periods(sample_log, "ME", 3, cut="2025-05-01", n_sims=200)


# =========================================================================== calibration
@pytest.mark.slow
def test_intervals_cover_on_seasonal_synthetic_logs():
    """20 seeds × 2 cuts × 3 months: the 95% and 50% intervals hold the observed wins at
    their rates within 3 binomial standard errors (seasonal arrivals, two years of
    history before each cut so the seasonal model is used)."""
    parts = []
    for seed in range(20):  # loop over seeds
        ev = seasonal_events(4000, seed, "2022-01-01", "2025-06-30")
        log = fk.EventLog(ev, **fk.datasets.SAMPLE_KWARGS)
        cuts = ["2024-06-12", "2024-11-20"]
        parts.append(backtest_periods(log, "ME", 3, cut=cuts, n_sims=1000, seed=seed).periods)
    t = pd.concat(parts, ignore_index=True)
    assert (t["arrival_model"] == "seasonal").all()
    n = len(t)
    for col, rate in (("covered", 0.95), ("covered50", 0.50)):
        se = np.sqrt(rate * (1 - rate) / n)
        assert abs(t[col].mean() - rate) <= 3 * se + 0.01, (col, t[col].mean(), n)
    ratio = t["expected_wins"].sum() / t["observed_wins"].sum()
    assert 0.9 <= ratio <= 1.1


# =========================================================================== fan chart
def test_fan_chart_draws_the_table(sample_log):
    fc = sample_log.forecast(by_period="ME", periods=3, quota=4, quota_of="wins", n_sims=500)
    ax = fk.plot.forecast(fc)
    p, h = fc.periods, fc.period_history
    past = h[h["complete"]]
    arts = {a.get_gid(): a for a in [*ax.lines, *ax.collections]}
    actual = arts["forecast-actual"]
    assert actual.get_ydata().tolist() == past["wins"].tolist()
    expected = arts["forecast-expected"]
    # the fan starts at the last complete period's actual, then one point per period
    assert expected.get_ydata()[0] == past["wins"].iloc[-1]
    np.testing.assert_allclose(expected.get_ydata()[1:], p["expected_wins"])
    for cover, suffix in ((95, ""), (80, "80"), (50, "50")):
        verts = arts[f"forecast-band-{cover}"].get_paths()[0].vertices
        ys = set(np.round(verts[:, 1], 9))
        assert set(np.round(p[f"wins_low{suffix}"], 9)) <= ys
        assert set(np.round(p[f"wins_high{suffix}"], 9)) <= ys
    quota = arts["forecast-quota"].get_ydata()
    assert set(quota[np.isfinite(quota)]) == {4.0}
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == past["period"].tolist() + p["period"].tolist()
    assert "P(reach quota)" in _subtitle(ax)


def _subtitle(ax) -> str:
    from funnelkit.plot import _style as S

    return S.subtitle_of(ax)


@pytest.mark.slow
def test_fan_chart_of_amount_and_a_segment(sample_log):
    fc = sample_log.forecast(by="team", by_period="QE", periods=2, n_sims=300)
    team = fc.periods["team"].iloc[0]
    ax = fk.plot.forecast(fc, value="amount", segment=team)
    rows = fc.periods[fc.periods["team"] == team]
    line = next(a for a in ax.lines if a.get_gid() == "forecast-expected")
    np.testing.assert_allclose(line.get_ydata()[-2:], rows["expected_amount"])
    assert str(team) in _subtitle(ax)
    with pytest.raises(fk.InvalidParameterError, match="name one with `segment`"):
        fk.plot.forecast(fc)
    with pytest.raises(fk.InvalidParameterError, match="not a segment"):
        fk.plot.forecast(fc, segment="Nope")
    with pytest.raises(fk.InvalidParameterError, match="no per-period table"):
        fk.plot.forecast(sample_log.forecast("30D"))


def test_drift_is_the_excess_change_between_windows():
    # four 91-day windows ending at as_of with 100, 150, 80 and 120 deals created
    counts = [100, 150, 80, 120]
    start = AS_OF - 4 * RECENT_DAYS * DAY
    rows = [("first", "A", start)]
    for w, n in enumerate(counts):
        lo = start + w * RECENT_DAYS * DAY
        for i in range(n):  # spread inside the window, away from its edges
            rows.append((f"w{w}-{i}", "A", lo + (0.5 + i * (RECENT_DAYS - 1) / n) * DAY))
    ev = pd.DataFrame(rows, columns=["deal", "stage", "ts"])
    log = fk.EventLog(ev, deal="deal", stage="stage", time="ts", stages=["A"], as_of=AS_OF)
    arr = fit_arrivals(log, np.zeros(log.n_deals, dtype=np.int64), 1, first_states(log))
    n = np.array(counts, dtype=float)
    n[0] += 1  # the first deal, at the first window's start
    d = np.diff(np.log(n))
    expected = max(np.mean(d**2) - np.mean(1 / n[:-1] + 1 / n[1:]), 0) / RECENT_DAYS
    assert arr.drift == pytest.approx(expected)
    assert arr.drift_dof == 3
    assert arr.level[0] == pytest.approx(counts[-1] / RECENT_DAYS)
    assert arr.model == "recent"


@pytest.mark.slow
def test_many_open_deals_use_the_normal_sum(sample_log, monkeypatch):
    """Past GAUSSIAN_DEALS open deals in a segment, their sum is drawn from its normal
    approximation: the same intervals as deal by deal, up to rounding and noise."""
    from funnelkit import _period_forecast as P

    exact = sample_log.forecast(by_period="ME", periods=3, n_sims=20_000).periods
    monkeypatch.setattr(P, "GAUSSIAN_DEALS", 10)
    normal = sample_log.forecast(by_period="ME", periods=3, n_sims=20_000).periods
    np.testing.assert_allclose(normal["expected_wins"], exact["expected_wins"])
    for col in ("wins_low", "wins_high", "wins_low80", "wins_high80", "wins_low50", "wins_high50"):
        assert (np.abs(normal[col] - exact[col]) <= 1).all(), col
    for col in ("amount_low80", "amount_high80", "amount_low50", "amount_high50"):
        np.testing.assert_allclose(normal[col], exact[col], rtol=0.1, atol=5_000)


# =========================================================================== report
@pytest.mark.slow
def test_the_report_has_a_forecast_section(sample_log):
    from funnelkit.report import build_report

    rep = build_report(sample_log)
    expected = sample_log.forecast(by_period="ME", periods=3, n_sims=1000, n_boot=0).periods
    pd.testing.assert_frame_equal(rep.tables["forecast_periods"], expected)
    assert "forecast" in rep.charts
    page = rep.to_html()
    assert "id='forecast'" in page or 'id="forecast"' in page
    assert "Forecast per month" in page


def test_a_report_without_open_deals_says_why_there_is_no_forecast():
    from funnelkit.report import build_report

    ev = pd.DataFrame(
        {
            "deal": ["a", "a", "b", "b"],
            "stage": ["A", "Won", "A", "Lost"],
            "ts": pd.to_datetime(["2025-01-01", "2025-01-05", "2025-01-02", "2025-01-09"]),
        }
    )
    log = fk.EventLog(ev, deal="deal", stage="stage", time="ts", won="Won", lost="Lost")
    rep = build_report(log, charts=False)
    assert "forecast_periods" not in rep.tables
    assert "forecast per month: not computed (no open deal)" in rep.notes


def test_weekly_quota_by_mapping_of_dates(sample_log):
    fc = sample_log.forecast(by_period="W", periods=3, quota={"2025-07-02": 2}, quota_of="wins")
    p = fc.periods
    assert p["period"].tolist()[1] == "2025-06-30/2025-07-06"
    assert p["quota"].isna().tolist() == [True, False, True]
    assert p["quota"].iloc[1] == 2.0
    # the current week has no quota, so what it won so far does not count against week 2
    assert p["quota_remaining"].iloc[1] == 2.0
