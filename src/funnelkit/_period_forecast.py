"""Forecasts per calendar period: expected wins and won amount per month (quarter, week…)
from the open deals *and* from pipeline not created yet, with simulated intervals,
quota coverage and the probability of reaching quota; and their rolling backtest.

The model
---------
Periods are calendar periods in UTC (:class:`pandas.Period`): the current one (holding
``as_of``, partial) and ``periods − 1`` after it. A period's wins are

* **won to date** — deals won in the current period up to ``as_of`` (known, no
  uncertainty; 0 for later periods);
* **open deals** — each open deal's probability of being won by each period end comes
  from the semi-Markov forecast (:func:`funnelkit.forecast.forecast`) over the whole
  span, read at every period end (rounded to its grid's step, under a day: the chain is
  time-homogeneous, so one fit serves every end); the differences are its probabilities
  of being won in each period;
* **stale deals that come back** — a deal declared stale (silent for ``stale_after``) is
  not lost for the model: where the stage's dwell curve reaches past ``stale_after``,
  some such deals move on. Its chance of being won by each period end is the forecast's
  first leg read at its time in the stage (see :func:`_stale_cum`);
* **new deals** — deals created after ``as_of``. Creations per day are a Poisson process
  whose rate is fitted to the log's history (the deals' first events):

  - ``"seasonal"`` when the history covers at least two full years (730 days): a level
    (deals created in the last 365 days over their seasonal exposure) times a
    month-of-year factor (each calendar month's creation rate over the whole history,
    relative to the overall rate; pooled over segments, the level is per segment);
  - ``"recent"`` otherwise: the rate over the last :data:`RECENT_DAYS` days (or the whole
    history when shorter), no seasonality.

  The level may wander: the mean squared change of the (deseasonalised) log rate
  between consecutive 91-day windows of the history (a quarter of the history when it is
  shorter than a year, at least 14 days), less its Poisson part, gives a drift variance
  per day on as many degrees of freedom as window changes. Each simulation draws its own
  drift variance from a scaled inverse χ² posterior that pools this measurement with a
  weak prior (a standard deviation of 0.25 in the log rate per 91 days, on one degree of
  freedom; a draw is capped at a standard deviation of 1 per 91 days) — a young history
  cannot say the rate stands still — and a period's rate is
  drawn around the level with the variance that drift builds up from the middle of the
  level's window to the period: a walk of the log rate with no trend (the drift is
  measured on log-rate changes about zero), whose median is the level. The expected new
  deals and wins are those of the level (the rate stays where it was fitted); the walk
  widens their interval as much upwards as downwards on the log scale.

  A new deal enters the state its kind of deal enters (the shares of first states among
  the deals created in the fitting window), and is won by a period end with the chain's
  value of entering that state then (``Forecast.entry_win``, averaged over arrival times
  within the period). A new win's amount is drawn from the amounts of the segment's won
  deals.

Intervals come from a Monte Carlo simulation (``n_sims`` draws) of everything that is
random given the fitted model — every open deal's outcome period (a categorical draw
from its probabilities), creations per period (Poisson with the rate's own estimation
uncertainty — a Gamma posterior of the level and of each month's factor — its drift, and the
overdispersion seen in weekly creation counts: negative binomial with variance
``φ·mean``, ``φ`` the Pearson dispersion of weekly counts, at least 1), the new deals'
entry mix (Dirichlet), their outcome periods (multinomial) and won amounts (resampled
amounts plus the uncertainty of their mean), and — with ``n_boot`` — the estimation
error of the chain itself: each simulation takes one deal-bootstrap refit of the chain
(:func:`funnelkit.forecast.forecast`), whose wins per period for the open deals (less
the refits' mean) shift that simulation's open-deal wins, and whose value of entering a
state gives that simulation's new deals their chance of being won — one refit moves the
open and the new deals' wins together, in every period.
``benchmarks/RESULTS.md`` measures the coverage this gives.
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from . import _validate as V
from ._params import CHECKED_INSIDE, SEED, Interval, Options, validate_params
from ._periods import period_alias
from ._segments import expand, segments
from .errors import EventLogError, InvalidParameterError

if TYPE_CHECKING:
    from .forecast import Forecast
    from .log import EventLog

__all__ = ["PeriodBacktest", "backtest_periods", "period_forecast", "period_freq"]

_DAY_NS = 86_400 * 10**9
#: history (days) that makes the arrival model seasonal
SEASONAL_DAYS = 730
#: window (days) of the non-seasonal arrival rate
RECENT_DAYS = 91
#: the window of the seasonal model's level (days)
LEVEL_DAYS = 365
#: prior of the arrival rate's drift: a standard deviation of the log rate per 91 days,
#: on this many degrees of freedom (see :func:`_drift_draws`)
PRIOR_DRIFT_SD = 0.25
PRIOR_DRIFT_DOF = 1
#: largest drift a simulation draws: a standard deviation of the log rate per 91 days (a
#: factor e per quarter at one standard deviation) — the posterior's tail on one or a few
#: degrees of freedom would otherwise let a rate wander by factors of millions
MAX_DRIFT_SD = 1.0
#: longest total span of the periods forecast (days)
MAX_SPAN_DAYS = 740
#: the bands the fan chart draws: (coverage, column suffix)
BANDS = ((0.95, ""), (0.80, "80"), (0.50, "50"))
#: period-end aliases accepted by ``by_period`` (pandas offset alias → period alias)
#: open deals in one segment beyond which their sum is simulated from its normal
#: approximation (exact mean and covariance) instead of deal by deal
GAUSSIAN_DEALS = 20_000
#: deal × simulation elements per block of the open-deal simulation
_BLOCK = 8_000_000


# =========================================================================== periods
def period_freq(by_period: Any) -> str:
    """The pandas period alias of a period-end offset alias (``"ME"`` → ``"M"``).

    Examples
    --------
    >>> from funnelkit._period_forecast import period_freq
    >>> period_freq("ME"), period_freq("QE"), period_freq("QE-JAN"), period_freq("W")
    ('M', 'Q', 'Q-JAN', 'W')
    """
    return period_alias(by_period, name="by_period", bases=("W", "ME", "M", "QE", "Q", "YE", "Y"))


def _ns(t: Any) -> int:
    return int(pd.Timestamp(t).as_unit("ns").value)


def _period_table(as_of_ns: int, pfreq: str, k: int, before: int = 0) -> pd.DataFrame:
    """Periods ``-before .. k-1`` around the one holding ``as_of`` (UTC): ``period``,
    ``start_ns``, ``end_ns`` (exclusive)."""
    p0 = pd.Period(pd.Timestamp(as_of_ns), freq=pfreq)
    ps = [p0 + j for j in range(-before, k)]
    return pd.DataFrame(
        {
            "period": [str(p) for p in ps],
            "start_ns": [_ns(p.start_time) for p in ps],
            "end_ns": [_ns((p + 1).start_time) for p in ps],
        }
    )


# =========================================================================== arrivals
@dataclass(frozen=True)
class _Arrivals:
    """The fitted arrival model (per segment ``g``)."""

    model: str  # "seasonal" or "recent"
    level: np.ndarray  # (G,) deals per day (deseasonalised)
    level_count: np.ndarray  # (G,) deals counted for the level
    level_exposure: np.ndarray  # (G,) seasonal exposure (days) of the level window
    window_month_days: np.ndarray  # (12,) days of the level window per calendar month
    month_count: np.ndarray  # (12,) deals created per calendar month (all segments)
    month_days: np.ndarray  # (12,) exposure days per calendar month
    factor: np.ndarray  # (12,) month-of-year factor (ones without seasonality)
    phi: float  # overdispersion of weekly counts (>= 1)
    drift: float  # variance per day of the log level's drift (0: none seen or measurable)
    drift_dof: int  # changes between windows it was measured on (0: none)
    window_days: float
    mix: np.ndarray  # (G, M) first-state counts in the window


def _month_of(ns: np.ndarray) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(np.asarray(ns, dtype="datetime64[ns]")).month) - 1


def _day_bins(start_ns: int, end_ns: int) -> np.ndarray:
    """Starts of whole-day bins counted back from ``end_ns`` that fit after ``start_ns``."""
    n = int((end_ns - start_ns) // _DAY_NS)
    return end_ns - np.arange(n, 0, -1, dtype=np.int64) * _DAY_NS


def fit_arrivals(log: EventLog, seg: np.ndarray, G: int, first_state: np.ndarray) -> _Arrivals:
    """Creation rate per segment from the deals' first events (see the module doc)."""
    as_of = log._as_of_ns
    created = log._first_ns
    start = int(created.min())
    span_days = (as_of - start) / _DAY_NS
    seasonal = span_days >= SEASONAL_DAYS
    days = _day_bins(start, as_of)
    if days.size == 0:
        raise EventLogError(
            "The log spans less than a day: a per-period forecast needs history to fit how "
            "many deals are created per day. Use a longer log."
        )
    day_month = _month_of(days + _DAY_NS // 2)
    in_range = created >= days[0]
    if seasonal:
        month_count = np.bincount(_month_of(created[in_range]), minlength=12).astype(float)
        month_days = np.bincount(day_month, minlength=12).astype(float)
        overall = month_count.sum() / month_days.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.where(month_days > 0, month_count / month_days / overall, 1.0)
        window = min(LEVEL_DAYS, days.size)
    else:
        month_count = np.zeros(12)
        month_days = np.zeros(12)
        factor = np.ones(12)
        window = min(RECENT_DAYS, days.size)
    w_days = days[-window:]
    w_start = int(w_days[0])
    window_month_days = np.bincount(day_month[-window:], minlength=12).astype(float)
    exposure = float(window_month_days @ factor)
    in_w = created >= w_start
    count = np.bincount(seg[in_w], minlength=G).astype(float)
    level = count / exposure
    # overdispersion: Pearson χ² of weekly counts in the window against the fitted rate
    n_weeks = window // 7
    if n_weeks >= 3:
        w_edges = as_of - np.arange(n_weeks, -1, -1, dtype=np.int64) * 7 * _DAY_NS
        wk = np.searchsorted(w_edges, created, side="right") - 1
        ok = (wk >= 0) & (wk < n_weeks)
        obs = np.bincount(seg[ok] * n_weeks + wk[ok], minlength=G * n_weeks).reshape(G, n_weeks)
        f_week = factor[day_month[-n_weeks * 7 :]].reshape(n_weeks, 7).sum(axis=1)
        exp = level[:, None] * f_week[None, :]
        use = exp > 0
        chi2 = float((((obs - exp) ** 2)[use] / exp[use]).sum())
        dof = int(use.sum()) - int((use.any(axis=1)).sum())
        phi = max(1.0, chi2 / dof) if dof > 0 else 1.0
    else:
        phi = 1.0
    drift, drift_dof = _drift(created, as_of, days, day_month, factor)
    M = len(log._catalogue)
    mix = np.zeros((G, M))
    np.add.at(mix, (seg[in_w], first_state[in_w]), 1.0)
    return _Arrivals(
        model="seasonal" if seasonal else "recent",
        level=level,
        level_count=count,
        level_exposure=np.full(G, exposure),
        window_month_days=window_month_days,
        month_count=month_count,
        month_days=month_days,
        factor=factor,
        phi=phi,
        window_days=float(window),
        drift=drift,
        drift_dof=drift_dof,
        mix=mix,
    )


def _drift(
    created: np.ndarray, as_of: int, days: np.ndarray, day_month: np.ndarray, factor: np.ndarray
) -> tuple[float, int]:
    """How fast the (deseasonalised) creation rate wanders: the mean squared change of the
    log rate between consecutive windows of the history, less its Poisson part
    (``1/N₁ + 1/N₂``), per day, and the number of changes it rests on. Windows are
    :data:`RECENT_DAYS` days long when the history holds four of them, else a quarter of
    the history (at least 14 days: a random walk's variance per day does not depend on the
    window); (0, 0) with fewer than three windows."""
    step = RECENT_DAYS if days.size >= 4 * RECENT_DAYS else max(14, days.size // 4)
    n_w = days.size // step
    if n_w < 3:
        return 0.0, 0
    edges = as_of - np.arange(n_w, -1, -1, dtype=np.int64) * step * _DAY_NS
    w = np.searchsorted(edges, created, side="right") - 1
    n = np.bincount(w[(w >= 0) & (w < n_w)], minlength=n_w).astype(float)
    x = factor[day_month[-n_w * step :]].reshape(n_w, step).sum(axis=1)
    both = (n[:-1] > 0) & (n[1:] > 0)
    if both.sum() < 2:
        return 0.0, 0
    with np.errstate(divide="ignore"):
        r = np.log(n / x)
    d = np.diff(r)[both]
    noise = 1 / n[:-1][both] + 1 / n[1:][both]
    return max(float(np.mean(d**2) - np.mean(noise)), 0.0) / step, int(both.sum())


def _drift_draws(rng: np.random.Generator, arr: _Arrivals, n_sims: int) -> np.ndarray:
    """Drift variances per simulation from their posterior: scaled inverse χ² with
    ``ν₀ + k`` degrees of freedom and scale ``(ν₀ d₀ + k d̂) / (ν₀ + k)`` — the measured
    drift ``d̂`` on ``k`` changes, pooled with a weak prior (:data:`PRIOR_DRIFT_SD` per
    quarter on :data:`PRIOR_DRIFT_DOF` degree of freedom), at most
    :data:`MAX_DRIFT_SD` per quarter. A history too short to measure how the rate wanders
    gets the prior's wide spread instead of none."""
    nu = PRIOR_DRIFT_DOF + arr.drift_dof
    d0 = PRIOR_DRIFT_SD**2 / RECENT_DAYS
    ss = PRIOR_DRIFT_DOF * d0 + arr.drift_dof * arr.drift
    return np.minimum(ss / rng.chisquare(nu, size=n_sims), MAX_DRIFT_SD**2 / RECENT_DAYS)


def first_states(log: EventLog) -> np.ndarray:
    """Per deal, the catalogue code of the first state of its cleaned path."""
    deal = log._path_deal
    _, idx = np.unique(deal, return_index=True)
    out = np.zeros(log.n_deals, dtype=np.int64)
    out[deal[idx]] = log._path_stage[idx]
    return out


# =========================================================================== stale deals
def _stale_cum(
    log: EventLog, seg: np.ndarray, G: int, h_ns: int, ends: np.ndarray, exits: str,
    fit: Any,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Deals stale at ``as_of`` that come back and are won: per such deal, the
    probability of being won by each period end, and its deal code.

    The forecast's model (:func:`funnelkit.forecast._fit`, the same weights) read at the
    deal's time in its stage ``a`` (beyond ``stale_after``): it leaves to state *k* in
    ``(a, a + u]`` with probability ``(1 − π)(F_k(a + u) − F_k(a)) / (π + (1 − π) S(a))``
    — positive wherever the stage's dwell curve reaches past ``stale_after`` — and is then
    won by a period end with the chain's value of entering *k* then (shifted: the chain
    is time-homogeneous). ``fit``: that model, fitted by the forecast
    (:func:`funnelkit.forecast._forecast`'s ``fit_out``)."""
    from .forecast import _calendar_visits, _incidence

    S, M = log._n_stages, len(log._catalogue)
    v = _calendar_visits(log)
    idx = np.flatnonzero(v.next == M)  # stale visits
    idx = idx[log._outcome[v.deal[idx]] == V.STALE]
    K = ends.size
    if idx.size == 0:
        return np.zeros((0, K)), np.zeros(0, dtype=np.int64)
    competing = exits == "by_dwell"
    pi, q, steps, entry_win = fit.pi, fit.q, fit.steps, fit.w_full
    n = entry_win.shape[1] - 1
    step = h_ns / n
    r = np.rint((ends - log._as_of_ns) / step).astype(np.int64)  # period ends in steps
    deal = v.deal[idx]
    age = (log._as_of_ns - v.entered[idx]).astype(np.float64)
    group = seg[deal] * S + v.stage[idx]
    offsets = np.arange(n + 1) * step
    cum = np.zeros((idx.size, K))
    chunk = max(1, _BLOCK // 2 // ((n + 1) * M))
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(G * S + 1), side="left")
    blocks = [
        (grp, a)
        for grp in range(G * S)
        for a in range(int(bounds[grp]), int(bounds[grp + 1]), chunk)
    ]
    for k, a in blocks:  # loop over (segment, stage) groups, in blocks of deals
        g, s_ = divmod(k, S)
        rows = order[a : min(a + chunk, int(bounds[k + 1]))]
        inc = _incidence(steps[k], q[g, s_], age[rows, None] + offsets, competing)
        denom = pi[g, s_] + (1 - pi[g, s_]) * (1.0 - inc[:, 0, :].sum(axis=-1))
        ok = denom > 0
        d_inc = np.diff(inc, axis=1) * ((1 - pi[g, s_]) / np.where(ok, denom, 1.0))[:, None, None]
        d_inc[~ok] = 0.0
        for j in range(K):  # loop over period ends
            rj = min(int(r[j]), n)
            if rj > 0:  # leaving in step i, the deal has rj - i steps left: W[n - rj + i]
                t = np.arange(1, rj + 1) + n - rj
                cum[rows, j] = np.einsum("kim,im->k", d_inc[:, :rj], entry_win[g, t])
    return np.clip(np.maximum.accumulate(cum, axis=1), 0.0, 1.0), deal


# =========================================================================== forecast
def _cells(as_of_ns: int, table: pd.DataFrame) -> pd.DataFrame:
    """Stretches of the future with one period and one calendar month: ``start_ns``,
    ``end_ns``, ``period`` (index into ``table``), ``month`` (0–11)."""
    end = int(table["end_ns"].iloc[-1])
    first_month = pd.Period(pd.Timestamp(as_of_ns), freq="M")
    months = []
    p = first_month + 1
    while _ns(p.start_time) < end:
        months.append(_ns(p.start_time))
        p += 1
    cuts = np.unique(np.array([as_of_ns, *table["end_ns"].tolist(), *months], dtype=np.int64))
    cuts = cuts[(cuts >= as_of_ns) & (cuts <= end)]
    starts, ends = cuts[:-1], cuts[1:]
    period = np.searchsorted(table["end_ns"].to_numpy(), starts, side="right")
    return pd.DataFrame(
        {"start_ns": starts, "end_ns": ends, "period": period, "month": _month_of(starts)}
    )


def _entry_weights(
    n: int, h_ns: int, as_of_ns: int, cells: pd.DataFrame, ends: np.ndarray
) -> np.ndarray:
    """``W[c, j, t]``: the share of a cell's creation times (``c``, uniform in it) at
    which a state entered then has the step ``t`` of an ``n``-step grid over ``h_ns``
    left to the end of period ``j`` (0 for periods ending before the cell). The
    cumulative win of :func:`_entry_cum` is ``W`` applied to the chain's values."""
    step = h_ns / n
    C, K = len(cells), ends.size
    out = np.zeros((C, K, n + 1))
    periods = cells["period"].to_numpy()
    for c, (a, b) in enumerate(zip(cells["start_ns"], cells["end_ns"], strict=True)):
        pts = max(2, math.ceil(2 * (b - a) / _DAY_NS))
        x = a + (np.arange(pts) + 0.5) * (b - a) / pts - as_of_ns  # ns after as_of
        j = np.arange(int(periods[c]), K)  # the periods ending after the cell starts
        r = (ends[j, None] - as_of_ns) - x  # remaining time to each period end
        t = np.clip(np.ceil(n - r / step - 1e-9), 0, n).astype(np.int64)
        np.add.at(out[c], (np.repeat(j, pts), t.ravel()), 1.0 / pts)
    return out


def _entry_cum(entry_win: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``A[g, c, j, m]``: probability that a deal created in cell ``c`` (uniformly in it)
    entering state ``m`` is won by the end of period ``j`` (0 for periods ending before
    the cell), from the chain's values ``entry_win[g, t, m]`` and the cells' step
    weights (:func:`_entry_weights`)."""
    return np.einsum("cjt,gtm->gcjm", weights, entry_win)


def _won_in_periods(
    log: EventLog, seg: np.ndarray, G: int, table: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Deals won per (segment, period) and their amount, by the time of the won event."""
    won = np.flatnonzero(log._outcome == V.WON)
    t = log._term_ns[won]
    K = len(table)
    j = np.searchsorted(table["start_ns"].to_numpy(), t, side="right") - 1
    ok = (j >= 0) & (t < table["end_ns"].to_numpy()[np.clip(j, 0, K - 1)])
    key = seg[won[ok]] * K + j[ok]
    count = np.bincount(key, minlength=G * K).reshape(G, K)
    amt = log._amount[won[ok]] if log._amount is not None else np.zeros(ok.sum())
    amount = np.bincount(key, weights=np.nan_to_num(amt), minlength=G * K).reshape(G, K)
    return count, amount


def _quantiles(x: np.ndarray, discrete: bool) -> dict[str, np.ndarray]:
    """Band edges of simulated totals ``(..., sims)``: ``low``/``high`` (95%) and the
    80% and 50% bands; for counts the inverted-CDF quantiles (each tail holds at most
    its share)."""
    out = {}
    for cover, suffix in BANDS:
        lo, hi = (1 - cover) / 2, 1 - (1 - cover) / 2
        if discrete:  # the smallest value with F(x) >= q
            q = np.quantile(x, [lo, hi], axis=-1, method="inverted_cdf")
        else:
            q = np.quantile(x, [lo, hi], axis=-1)
        out[f"low{suffix}"], out[f"high{suffix}"] = q[0], q[1]
    return out


def _nb(rng: np.random.Generator, mean: np.ndarray, phi: float) -> np.ndarray:
    """Counts with mean ``mean`` and variance ``phi · mean`` (Poisson when ``phi`` = 1)."""
    if phi <= 1.0 + 1e-9:
        return rng.poisson(mean)
    lam = rng.gamma(mean / (phi - 1.0), phi - 1.0)
    return rng.poisson(lam)


def period_forecast(
    log: EventLog,
    by_period: str,
    periods: int,
    *,
    by_cols: list[str],
    exits: str,
    quota: Any,
    quota_of: str,
    n_sims: int,
    seed: int | None,
    n_boot: int = 0,
    half_life: Any = None,
    window: Any = None,
) -> Forecast:
    """Implementation of ``EventLog.forecast(by_period=...)`` (documented there)."""
    from .forecast import _auto_half_life, _forecast

    pfreq = period_freq(by_period)
    as_of = log._as_of_ns
    table = _period_table(as_of, pfreq, periods)
    ends = table["end_ns"].to_numpy()
    K = len(table)
    if (ends[-1] - as_of) / _DAY_NS > MAX_SPAN_DAYS:
        raise InvalidParameterError(
            f"Parameter `periods`={periods} of {by_period!r} reaches "
            f"{(ends[-1] - as_of) / _DAY_NS:.0f} days ahead; a per-period forecast goes at "
            f"most {MAX_SPAN_DAYS} days ahead. Pass fewer periods or a shorter period."
        )
    seg, labels = segments(log, by_cols)
    G = len(labels)
    quota_arr = _quota_table(quota, table, labels, by_cols, pfreq)
    # ---- open deals: P(won by each period end), and the model's own uncertainty of
    # their wins by each end (deal bootstrap, n_boot draws)
    h_ns = int(ends[-1] - as_of)
    if isinstance(half_life, str) and half_life == "auto":
        half_life = _auto_half_life(log, h_ns, exits)
    # one fit (and one set of refits) over the whole span, read at every period end;
    # the deals stale at as_of read the same fit
    fitted: dict[str, Any] = {}
    fc = _forecast(
        log,
        h_ns,
        by_cols,
        exits,
        n_boot=n_boot,
        seed=seed,
        half_life=half_life,
        window=window,
        keep_entry_boot=True,
        ends_ns=ends,
        fit_out=fitted,
    )
    assert fc.p_win_by_end is not None
    cum = fc.p_win_by_end
    cum = np.maximum.accumulate(np.clip(cum, 0.0, 1.0), axis=1)
    p_open = np.diff(np.column_stack([np.zeros(len(cum)), cum]), axis=1)  # (D, K)
    v = log._visits()
    d_code = v.deal[np.flatnonzero(v.censored)]
    g_open = seg[d_code]
    amt_open = fc.deals["amount"].to_numpy(dtype=np.float64)
    amt0 = np.nan_to_num(amt_open)
    # ---- deals stale at as_of that come back
    assert fc.entry_win is not None
    stale_cum, stale_deal = _stale_cum(log, seg, G, h_ns, ends, exits, fitted["fit"])
    p_stale = np.diff(np.column_stack([np.zeros(len(stale_cum)), stale_cum]), axis=1)
    g_stale = seg[stale_deal]
    amt_stale = np.nan_to_num(
        log._amount[stale_deal] if log._amount is not None else np.zeros(stale_deal.size)
    )
    # ---- new deals
    first = first_states(log)
    arr = fit_arrivals(log, seg, G, first)
    cells = _cells(as_of, table)
    assert fc.entry_win is not None
    weights = _entry_weights(fc.entry_win.shape[1] - 1, h_ns, as_of, cells, ends)
    A = _entry_cum(fc.entry_win, weights)  # (G, C, K, M)
    A_boot = None
    if n_boot > 1:  # each refit's value of entering a state, for the new deals
        assert fc.entry_win_boot is not None
        A_boot = np.stack([_entry_cum(w, weights) for w in fc.entry_win_boot])
    days_c = ((cells["end_ns"] - cells["start_ns"]) / _DAY_NS).to_numpy()
    month_c = cells["month"].to_numpy()
    per_c = cells["period"].to_numpy()
    mix = arr.mix.copy()
    no_mix = mix.sum(axis=1) == 0
    if no_mix.any():  # a segment with no deal created in the window takes the pooled mix
        pooled = mix.sum(axis=0)
        if pooled.sum() == 0:
            pooled = np.bincount(first, minlength=mix.shape[1]).astype(float)
        mix[no_mix] = pooled
    mix_p = mix / mix.sum(axis=1, keepdims=True)
    mu_c = arr.level[:, None] * arr.factor[month_c][None, :] * days_c[None, :]  # (G, C)
    win_cum = np.einsum("gckm,gm->gck", A, mix_p)
    win_c = np.diff(np.concatenate([np.zeros((G, len(cells), 1)), win_cum], axis=2), axis=2)
    # ---- amounts of new wins
    won_deal = (log._outcome == V.WON) & (
        np.isfinite(log._amount) if log._amount is not None else False
    )
    pools = []
    for g in range(G):  # loop over segments
        pool = log._amount[won_deal & (seg == g)] if log._amount is not None else np.zeros(0)
        if pool.size == 0 and log._amount is not None:
            pool = log._amount[won_deal]
        pools.append(np.asarray(pool, dtype=np.float64))
    mean_amt = np.array([p.mean() if p.size else np.nan for p in pools])
    # ---- point estimates
    open_wins = np.zeros((G, K))
    open_amt = np.zeros((G, K))
    np.add.at(open_wins, g_open, p_open)
    np.add.at(open_amt, g_open, p_open * amt0[:, None])
    stale_wins = np.zeros((G, K))
    stale_amt = np.zeros((G, K))
    np.add.at(stale_wins, g_stale, p_stale)
    np.add.at(stale_amt, g_stale, p_stale * amt_stale[:, None])
    new_deals = np.zeros((G, K))
    np.add.at(new_deals.T, per_c, mu_c.T)
    new_wins = np.einsum("gc,gck->gk", mu_c, win_c)
    new_amt = new_wins * mean_amt[:, None]
    won_now, won_now_amt = _won_in_periods(log, seg, G, table)
    # ---- simulation
    rng = np.random.default_rng(seed)
    # the refit each simulation takes (with n_boot): one draw of the chain moves the open
    # deals' wins and the new deals' chance of being won together
    b_idx = rng.integers(0, n_boot, size=n_sims) if n_boot > 1 else None
    sims_w, sims_a = _simulate(
        rng,
        n_sims,
        np.vstack([p_open, p_stale]),
        np.concatenate([g_open, g_stale]),
        np.concatenate([amt0, amt_stale]),
        G,
        K,
        arr,
        A,
        month_c,
        days_c,
        per_c,
        pools,
        as_of,
        ((cells["start_ns"] + cells["end_ns"]) / 2).to_numpy(),
        A_boot if b_idx is not None else None,
        b_idx,
    )
    if b_idx is not None:  # the model's own uncertainty of the open deals' wins: the
        # simulation's refit's wins per period, less the refits' mean
        assert fc.wins_boot_by_end is not None
        boot_cum = fc.wins_boot_by_end  # (B, G, K)
        boot_inc = np.diff(boot_cum, axis=-1, prepend=0.0)
        dev = np.moveaxis((boot_inc - boot_inc.mean(axis=0))[b_idx], 0, -1)  # (G, K, sims)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_win = np.where(open_wins > 0, open_amt / open_wins, 0.0)
        sims_w = np.clip(np.rint(sims_w + dev), 0.0, None)
        sims_a = np.clip(sims_a + dev * per_win[..., None], 0.0, None)
    tot_w = won_now[..., None] + sims_w
    tot_a = won_now_amt[..., None] + sims_a
    qw = _quantiles(tot_w, discrete=True)
    qa = _quantiles(tot_a, discrete=False)
    has_amount = log._amount is not None
    out = expand(labels, np.repeat(np.arange(G), K), by_cols)
    out["period"] = np.tile(table["period"].to_numpy(), G)
    out["period_start"] = np.tile(log._timestamp(table["start_ns"].to_numpy()), G)
    out["period_end"] = np.tile(log._timestamp(table["end_ns"].to_numpy()), G)
    out["days_ahead"] = np.tile((ends - np.maximum(table["start_ns"], as_of)) / _DAY_NS, G)
    out["open_deals"] = np.repeat(np.bincount(g_open, minlength=G), K).astype(np.int64)
    out["won_to_date"] = won_now.reshape(-1).astype(np.int64)
    out["expected_open_wins"] = open_wins.reshape(-1)
    out["stale_deals"] = np.repeat(np.bincount(g_stale, minlength=G), K).astype(np.int64)
    out["expected_stale_wins"] = stale_wins.reshape(-1)
    out["expected_new_deals"] = new_deals.reshape(-1)
    out["expected_new_wins"] = new_wins.reshape(-1)
    out["expected_wins"] = (
        out["won_to_date"]
        + out["expected_open_wins"]
        + out["expected_stale_wins"]
        + out["expected_new_wins"]
    )
    for key, val in qw.items():
        out[f"wins_{key}"] = val.reshape(-1).astype(np.float64)
    nan = np.full(G * K, np.nan)
    out["won_amount_to_date"] = won_now_amt.reshape(-1) if has_amount else nan
    out["expected_open_amount"] = open_amt.reshape(-1) if has_amount else nan
    out["expected_stale_amount"] = stale_amt.reshape(-1) if has_amount else nan
    out["expected_new_amount"] = new_amt.reshape(-1) if has_amount else nan
    out["expected_amount"] = (
        out["won_amount_to_date"]
        + out["expected_open_amount"]
        + out["expected_stale_amount"]
        + out["expected_new_amount"]
    )
    for key, val in qa.items():
        out[f"amount_{key}"] = val.reshape(-1) if has_amount else nan
    out["arrival_model"] = arr.model
    out["arrivals_per_day"] = np.repeat(arr.level, K) * np.tile(_period_factor(arr, cells, K), G)
    if quota_arr is not None:
        unit_total = tot_a if quota_of == "amount" else tot_w
        done = won_now_amt if quota_of == "amount" else won_now
        pipe = amt0 if quota_of == "amount" else np.ones_like(amt0)
        pipeline = np.bincount(g_open, weights=pipe, minlength=G)
        q = quota_arr  # (G, K)
        # what is won so far counts against the current period's quota (when it has one)
        won_cur = np.where(np.isnan(q[:, :1]), 0.0, done[:, :1])
        remaining = np.clip(np.nancumsum(q, axis=1) - won_cur, 0, None)
        remaining = np.where(np.isnan(q), np.nan, remaining)
        with np.errstate(divide="ignore", invalid="ignore"):
            coverage = np.where(remaining > 0, pipeline[:, None] / remaining, np.inf)
        coverage = np.where(np.isnan(q), np.nan, coverage)
        p_quota = np.where(np.isnan(q), np.nan, (unit_total >= q[..., None]).mean(axis=-1))
        out["quota"] = q.reshape(-1)
        out["quota_remaining"] = remaining.reshape(-1)
        out["pipeline"] = np.repeat(pipeline, K)
        out["coverage"] = coverage.reshape(-1)
        out["p_quota"] = p_quota.reshape(-1)
    history = _history(log, seg, G, labels, by_cols, pfreq, periods)
    return dataclasses.replace(fc, periods=out, period_history=history)


def _period_factor(arr: _Arrivals, cells: pd.DataFrame, K: int) -> np.ndarray:
    """Mean seasonal factor over each period's future part."""
    days = ((cells["end_ns"] - cells["start_ns"]) / _DAY_NS).to_numpy()
    f = arr.factor[cells["month"].to_numpy()]
    per = cells["period"].to_numpy()
    return np.bincount(per, weights=f * days, minlength=K) / np.bincount(
        per, weights=days, minlength=K
    )


def _gaussian_sum(
    rng: np.random.Generator, p: np.ndarray, a: np.ndarray, n_sims: int
) -> tuple[np.ndarray, np.ndarray]:
    """Wins per period (rounded) and won amount of many independent deals, ``(K, sims)``
    each, from the multivariate normal with their exact mean and covariance: a deal is
    won in period *j* with probability ``p[:, j]`` (at most one period) and then brings
    its amount ``a``."""
    K = p.shape[1]
    mean = np.concatenate([p.sum(axis=0), (a[:, None] * p).sum(axis=0)])
    cov = np.zeros((2 * K, 2 * K))
    for w1, i1 in ((np.ones_like(a), 0), (a, K)):  # the four blocks
        for w2, i2 in ((np.ones_like(a), 0), (a, K)):
            w = w1 * w2
            block = np.diag((w[:, None] * p).sum(axis=0)) - (w[:, None] * p).T @ p
            cov[i1 : i1 + K, i2 : i2 + K] = block
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    draws = (
        mean + (rng.standard_normal((n_sims, 2 * K)) * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    )
    wins = np.clip(np.rint(draws[:, :K]), 0, None)
    return wins.T, np.clip(draws[:, K:], 0, None).T


def _simulate(
    rng: np.random.Generator,
    n_sims: int,
    p_open: np.ndarray,
    g_open: np.ndarray,
    amt0: np.ndarray,
    G: int,
    K: int,
    arr: _Arrivals,
    A: np.ndarray,
    month_c: np.ndarray,
    days_c: np.ndarray,
    per_c: np.ndarray,
    pools: list[np.ndarray],
    as_of_ns: int,
    cell_mid_ns: np.ndarray,
    A_boot: np.ndarray | None = None,
    b_idx: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulated wins and won amount still to come per (segment, period, simulation);
    with ``A_boot`` (the refits' ``A``) simulation *s* takes refit ``b_idx[s]``."""
    wins = np.zeros((G, K, n_sims))
    amount = np.zeros((G, K, n_sims))
    # ---- open deals: each deal's outcome period (K = not won within the periods); a
    # segment with more than GAUSSIAN_DEALS of them gets the normal approximation of the
    # sum (its exact mean and covariance), which costs nothing per deal and simulation
    sizes = np.bincount(g_open, minlength=G)
    big = sizes > GAUSSIAN_DEALS
    for g_big in np.flatnonzero(big):  # loop over large segments
        rows = g_open == g_big
        w_g, a_g = _gaussian_sum(rng, p_open[rows], amt0[rows], n_sims)
        wins[g_big] += w_g
        amount[g_big] += a_g
    exact = ~big[g_open]
    D = int(exact.sum())
    if D:
        p_ex, g_ex, a_ex = p_open[exact], g_open[exact], amt0[exact]
        cum = np.cumsum(p_ex, axis=1)
        chunk = max(1, _BLOCK // (n_sims * K))
        sims = np.arange(n_sims)
        for a in range(0, D, chunk):  # loop over blocks of deals
            b = min(a + chunk, D)
            u = rng.random((b - a, n_sims))
            j = (u[:, :, None] >= cum[a:b, None, :]).sum(axis=2)  # (deals, sims)
            key = ((g_ex[a:b, None] * (K + 1) + j) * n_sims + sims[None, :]).reshape(-1)
            cnt = np.bincount(key, minlength=G * (K + 1) * n_sims)
            amt = np.bincount(
                key,
                weights=np.repeat(a_ex[a:b], n_sims),
                minlength=G * (K + 1) * n_sims,
            )
            wins += cnt.reshape(G, K + 1, n_sims)[:, :K]
            amount += amt.reshape(G, K + 1, n_sims)[:, :K]
    # ---- new deals: rate (level × month factor) with its estimation uncertainty
    phi = arr.phi
    # days from the middle of the level's window to each cell's middle: the level drifts
    centre = as_of_ns - arr.window_days * _DAY_NS / 2
    lag = np.clip((cell_mid_ns - centre) / _DAY_NS, 0.0, None)
    drift_s = _drift_draws(rng, arr, n_sims)  # (sims,)
    if arr.model == "seasonal":
        r_m = rng.gamma((arr.month_count + 0.5) / phi, phi, size=(n_sims, 12)) / np.where(
            arr.month_days > 0, arr.month_days, 1.0
        )
        mean_r = (r_m * arr.month_days).sum(axis=1, keepdims=True) / arr.month_days.sum()
        f_s = np.where(arr.month_days > 0, r_m / mean_r, 1.0)  # (sims, 12)
    else:
        f_s = np.ones((n_sims, 12))
    expo = f_s @ arr.window_month_days  # (sims,)
    C = days_c.size
    for g in range(G):  # loop over segments
        level = rng.gamma((arr.level_count[g] + 0.5) / phi, phi, size=n_sims) / expo
        z = rng.standard_normal(n_sims)
        mix = arr.mix[g] if arr.mix[g].sum() > 0 else arr.mix.sum(axis=0)
        seen = mix > 0
        mix_s = np.zeros((n_sims, mix.size))
        if seen.any():
            mix_s[:, seen] = rng.dirichlet(mix[seen], size=n_sims)
        pool = pools[g]
        if pool.size:
            d_mean = rng.normal(0.0, pool.std() / math.sqrt(pool.size), size=n_sims)
        for c in range(C):  # loop over cells (period × month)
            sd = np.sqrt(drift_s * lag[c])
            walk = np.exp(z * sd)  # a symmetric walk of the log rate: median 1
            mu = level * walk * f_s[:, month_c[c]] * days_c[c]
            n_new = _nb(rng, mu, phi)
            if A_boot is not None and b_idx is not None:
                cum = np.einsum("sm,skm->sk", mix_s, A_boot[b_idx, g, c])
            else:  # (sims, K) won by period end
                cum = np.einsum("sm,km->sk", mix_s, A[g, c])
            p = np.diff(np.concatenate([np.zeros((n_sims, 1)), cum], axis=1), axis=1)
            p = np.clip(p, 0.0, None)
            rest = np.clip(1.0 - p.sum(axis=1, keepdims=True), 0.0, None)
            probs = np.concatenate([p, rest], axis=1)
            probs = probs / probs.sum(axis=1, keepdims=True)
            k_won = rng.multinomial(n_new, probs)[:, :K]  # (sims, K)
            wins[g] += k_won.T
            if pool.size:
                tot = int(k_won.sum())
                draws = pool[rng.integers(0, pool.size, size=tot)]
                cell = np.repeat(np.arange(n_sims * K), k_won.reshape(-1))
                s_amt: np.ndarray = np.bincount(cell, weights=draws, minlength=n_sims * K)
                s_amt = s_amt.reshape(n_sims, K)
                s_amt = s_amt + k_won * d_mean[:, None]
                amount[g] += s_amt.T
    return wins, amount


# =========================================================================== quota
def _quota_table(
    quota: Any, table: pd.DataFrame, labels: pd.DataFrame, by_cols: list[str], pfreq: str
) -> np.ndarray | None:
    """``quota`` as an array ``(segments, periods)`` (NaN: no quota for that cell)."""
    G, K = len(labels), len(table)
    if quota is None:
        return None
    if isinstance(quota, Real) and not isinstance(quota, bool):
        x = float(quota)
        if not (math.isfinite(x) and x >= 0):
            raise InvalidParameterError(
                f"Parameter `quota`={quota!r} must be a finite number >= 0 (per period)."
            )
        return np.full((G, K), x)
    if isinstance(quota, Mapping):
        quota = pd.DataFrame({"period": list(quota), "quota": list(quota.values())})
    if not isinstance(quota, pd.DataFrame):
        raise InvalidParameterError(
            "Parameter `quota` must be a number (the quota of every period), a mapping "
            "{period: quota} or a DataFrame with columns 'period', 'quota' (and the `by` "
            f"columns); got {type(quota).__name__}."
        )
    need = ["period", "quota", *by_cols]
    missing = [c for c in need if c not in quota.columns]
    if missing:
        raise InvalidParameterError(
            f"The `quota` table lacks the column(s) {missing}; it needs {need} (found "
            f"{list(quota.columns)}). 'period' names a period as in the result "
            f"(e.g. {table['period'].iloc[0]!r}) or any time within it."
        )
    q = pd.to_numeric(quota["quota"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(q) | (q < 0)
    if bad.any():
        raise InvalidParameterError(
            f"The `quota` table has {int(bad.sum())} row(s) whose quota is not a number >= 0, "
            f"e.g. {quota.loc[bad].head(3).to_dict('records')}."
        )
    labels_p = table["period"].tolist()
    per = []
    for value in quota["period"].tolist():  # loop over the quota rows
        try:
            per.append(labels_p.index(str(pd.Period(value, freq=pfreq))))
        except (ValueError, TypeError):
            per.append(-1)
    per_a = np.array(per)
    if by_cols:
        key = pd.MultiIndex.from_frame(labels[by_cols].astype(object))
        rows = pd.MultiIndex.from_frame(quota[by_cols].astype(object))
        g = key.get_indexer(rows)
    else:
        g = np.zeros(len(quota), dtype=np.int64)
    unknown = (per_a < 0) | (g < 0)
    if unknown.any():
        raise InvalidParameterError(
            f"{int(unknown.sum())} row(s) of the `quota` table name no forecast period"
            f"{' or segment' if by_cols else ''}, e.g. "
            f"{quota.loc[unknown].head(3).to_dict('records')}; the periods are {labels_p}."
        )
    dup = pd.Series(g * K + per_a).duplicated()
    if dup.any():
        raise InvalidParameterError(
            f"The `quota` table has {int(dup.sum())} duplicate row(s) for one period"
            f"{' and segment' if by_cols else ''}, e.g. "
            f"{quota.loc[dup.to_numpy()].head(3).to_dict('records')}."
        )
    out = np.full((G, K), np.nan)
    out[g, per_a] = q
    return out


# =========================================================================== history
def _history(
    log: EventLog,
    seg: np.ndarray,
    G: int,
    labels: pd.DataFrame,
    by_cols: list[str],
    pfreq: str,
    k: int,
) -> pd.DataFrame:
    """Wins per period for the ``k`` periods before the current one and the current one
    up to ``as_of`` (those after the log's first event)."""
    table = _period_table(log._as_of_ns, pfreq, 1, before=k)
    first = int(log._first_ns.min())
    table = table.loc[table["end_ns"] > first].reset_index(drop=True)
    K = len(table)
    count, amount = _won_in_periods(log, seg, G, table)
    out = expand(labels, np.repeat(np.arange(G), K), by_cols)
    out["period"] = np.tile(table["period"].to_numpy(), G)
    out["period_start"] = np.tile(log._timestamp(table["start_ns"].to_numpy()), G)
    out["period_end"] = np.tile(log._timestamp(table["end_ns"].to_numpy()), G)
    out["complete"] = np.tile(table["end_ns"].to_numpy() <= log._as_of_ns, G)
    out["complete"] = out["complete"] & np.tile(table["start_ns"].to_numpy() >= first, G)
    out["wins"] = count.reshape(-1).astype(np.int64)
    out["won_amount"] = amount.reshape(-1) if log._amount is not None else np.nan
    return out


# =========================================================================== backtest
@dataclass(frozen=True, eq=False)
class PeriodBacktest:
    """Per-period forecasts from past dates set against what happened
    (see :func:`backtest_periods`).

    Attributes
    ----------
    periods : pandas.DataFrame
        One row per cut and period forecast.
    scores : pandas.DataFrame
        Interval coverage and ratios per period ahead, pooled over the cuts.
    by_period : str
    forecast : Forecast
        The forecast made at the last cut.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> bt = fk.backtest_periods(log, "ME", 2, n_cuts=3, n_sims=500)
    >>> bt.by_period, len(bt.periods), bt.scores["ahead"].tolist()
    ('ME', 6, [0, 1])
    """

    periods: pd.DataFrame
    scores: pd.DataFrame
    by_period: str
    forecast: Forecast

    def __repr__(self) -> str:
        s = self.scores
        n = self.periods["cut"].nunique()
        cov = ", ".join(
            f"{int(r.ahead)}: {int(r.covered)}/{int(r.forecasts)}" for r in s.itertuples()
        )
        return (
            f"<PeriodBacktest by {self.by_period!r}: {n} cuts; 95% interval of wins covered "
            f"(by periods ahead) {cov}>"
        )

    def _repr_html_(self) -> str:
        head = html.escape(f"Per-period backtest by {self.by_period!r}")
        return (
            f"<div><b>{head}</b>{self.scores.to_html(index=False)}"
            f"{self.periods.to_html(index=False)}</div>"
        )


@validate_params(
    {
        "log": [CHECKED_INSIDE],
        "by_period": [str],
        "periods": [Interval(Integral, 1, 36)],
        "cut": ["timestamp", list, tuple, pd.Index, np.ndarray, None],
        "n_cuts": [Interval(Integral, 1, 500)],
        "every": ["duration", None],
        "exits": [Options(str, ("shares", "by_dwell"))],
        "n_sims": [Interval(Integral, 100, 100_000)],
        "n_boot": [Interval(Integral, 0, 10_000)],
        "seed": SEED,
    },
    name="fk.backtest_periods",
)
def backtest_periods(
    log: EventLog,
    by_period: str = "ME",
    periods: int = 3,
    *,
    cut: Any = None,
    n_cuts: int = 8,
    every: Any = None,
    exits: Literal["shares", "by_dwell"] = "by_dwell",
    n_sims: int = 2000,
    n_boot: int = 0,
    seed: int | None = 0,
) -> PeriodBacktest:
    """Per-period forecasts made from past dates, compared with what happened.

    At each cut the log is rebuilt as it was then (:func:`funnelkit.forecast.cut_log`),
    the per-period forecast is made from it (:meth:`EventLog.forecast` with
    ``by_period``), and each period's wins and won amount are compared with the deals
    actually won in it — counted in the log as it was at the last period's end, so deals
    created after the cut count too, as the forecast promised. Cuts are rolling by default:
    the last one the latest whose ``periods`` periods all end by ``log.as_of``, then
    evenly back to two spans of the periods after the first event (or ``every`` apart).

    Parameters
    ----------
    log : EventLog
    by_period : str, default "ME"
        Period-end alias (``"W"``, ``"ME"``, ``"QE"``, ``"YE"``, anchored variants).
    periods : int, default 3
        Periods per forecast, the partial current one first.
    cut : str, datetime or list of them, optional
        The cut date(s); default: ``n_cuts`` rolling cuts.
    n_cuts : int, default 8
    every : str or timedelta, optional
        Spacing of rolling cuts, counted back from the last.
    exits : {"by_dwell", "shares"}, default "by_dwell"
    n_sims : int, default 2000
        Simulations per forecast (its intervals).
    n_boot : int, default 0
        Bootstrap draws for the chain's own uncertainty in each forecast (see
        :meth:`EventLog.forecast`; its default there is 100). 0 here, because every
        draw refits the model once per period and cut.
    seed : int or None, default 0

    Returns
    -------
    PeriodBacktest
        ``periods``: one row per cut and period:

        * ``cut`` : the date forecast from
        * ``period``, ``period_start``, ``period_end`` : the period (end exclusive)
        * ``ahead`` : 0 for the period holding the cut, 1 for the next, …
        * ``won_to_date`` : deals won in the period before the cut (known then)
        * ``expected_wins`` : the forecast's wins in the period (``won_to_date``
          included)
        * ``wins_low``, ``wins_high`` : its 95% interval; ``wins_low80``,
          ``wins_high80``, ``wins_low50``, ``wins_high50`` the 80% and 50% intervals
        * ``observed_wins`` : deals actually won in the period
        * ``covered``, ``covered80``, ``covered50`` : the 95%, 80%, 50% intervals hold
          ``observed_wins``
        * ``ratio`` : ``expected_wins / observed_wins`` (NaN when none)
        * ``expected_amount``, ``amount_low``, ``amount_high``, ``observed_amount``,
          ``amount_covered``, ``amount_ratio`` : the same for the won amount (NaN
          without amounts)
        * ``arrival_model`` : ``"seasonal"`` or ``"recent"`` (see the module doc)

        ``scores``: one row per ``ahead``:

        * ``ahead``, ``forecasts`` (cuts scored)
        * ``covered``, ``covered80``, ``covered50`` : forecasts whose interval held the
          observed wins
        * ``coverage``, ``coverage80``, ``coverage50`` : the same as shares
        * ``amount_coverage`` : share whose 95% amount interval held the observed amount
        * ``expected_wins``, ``observed_wins`` : summed over the cuts
        * ``ratio_min``, ``ratio_median``, ``ratio_max`` : of the per-cut ratios

    Raises
    ------
    EventLogError
        A log too short for rolling cuts, or a cut whose periods end after ``log.as_of``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> bt = fk.backtest_periods(log, "ME", 2, n_cuts=3, n_sims=500)
    >>> list(bt.scores.columns[:4])
    ['ahead', 'forecasts', 'covered', 'covered80']
    >>> bool((bt.periods["wins_low"] <= bt.periods["expected_wins"]).all())
    True
    """
    from . import _columns as C
    from .forecast import _Cuts, rolling_cuts

    pfreq = period_freq(by_period)
    cuts = _Cuts(log)
    as_of = log._as_of_ns

    def last_end(t_ns: int) -> int:
        return int(_period_table(t_ns, pfreq, periods)["end_ns"].iloc[-1])

    if cut is None:
        p_last = pd.Period(pd.Timestamp(as_of), freq=pfreq) - periods  # ends by as_of
        # the latest midnight (UTC) whose periods all end by as_of
        latest = min(as_of, _ns((p_last + 1).start_time) - 1)
        latest -= latest % _DAY_NS
        while last_end(latest) > as_of:
            latest -= _DAY_NS
        span = last_end(latest) - latest
        times = rolling_cuts(log, span, n_cuts, every)
        times = times - (times[-1] - latest)
        first = int(log._first_ns.min())
        times = times[times > first]
    else:
        dates = [cut] if not isinstance(cut, list | tuple | pd.Index | np.ndarray) else list(cut)
        if not dates:
            raise InvalidParameterError("Parameter `cut` is an empty list: name a date.")
        times = np.array([C.to_timestamp(c, log._aware, "cut") for c in dates], dtype=np.int64)
    rows = []
    fc = None
    for i, t_ns in enumerate(sorted(set(times.tolist()))):  # loop over cuts
        end = last_end(t_ns)
        if end > as_of:
            raise EventLogError(
                f"The periods forecast from the cut {log._timestamp(np.array([t_ns]))[0]} end "
                f"at {log._timestamp(np.array([end]))[0]}, after the log's as_of "
                f"({log.as_of}): what happened is not known yet. Pick an earlier `cut`."
            )
        past = cuts(t_ns)
        sub_seed = None if seed is None else seed + i
        fc = period_forecast(
            past,
            by_period,
            periods,
            by_cols=[],
            exits=exits,
            quota=None,
            quota_of="amount",
            n_sims=n_sims,
            seed=sub_seed,
            n_boot=n_boot,
        )
        assert fc.periods is not None
        p = fc.periods
        after = cuts(end)
        table = _period_table(t_ns, pfreq, periods)
        count, amount = _won_in_periods(after, np.zeros(after.n_deals, np.int64), 1, table)
        obs = count[0].astype(np.int64)
        obs_a = amount[0] if log._amount is not None else np.full(periods, np.nan)
        row = p[["period", "period_start", "period_end"]].copy()
        row.insert(0, "cut", past.as_of)
        row["ahead"] = np.arange(periods, dtype=np.int64)
        row["won_to_date"] = p["won_to_date"].to_numpy()
        for c in ("expected_wins", "wins_low", "wins_high", "wins_low80", "wins_high80"):
            row[c] = p[c].to_numpy()
        row["wins_low50"] = p["wins_low50"].to_numpy()
        row["wins_high50"] = p["wins_high50"].to_numpy()
        row["observed_wins"] = obs
        for suffix in ("", "80", "50"):
            row[f"covered{suffix}"] = (p[f"wins_low{suffix}"].to_numpy() <= obs) & (
                obs <= p[f"wins_high{suffix}"].to_numpy()
            )
        with np.errstate(invalid="ignore", divide="ignore"):
            row["ratio"] = np.where(obs > 0, p["expected_wins"].to_numpy() / obs, np.nan)
            row["expected_amount"] = p["expected_amount"].to_numpy()
            row["amount_low"] = p["amount_low"].to_numpy()
            row["amount_high"] = p["amount_high"].to_numpy()
            row["observed_amount"] = obs_a
            row["amount_covered"] = (p["amount_low"].to_numpy() <= obs_a) & (
                obs_a <= p["amount_high"].to_numpy()
            )
            row["amount_ratio"] = np.where(
                obs_a > 0, p["expected_amount"].to_numpy() / obs_a, np.nan
            )
        row["arrival_model"] = p["arrival_model"].to_numpy()
        rows.append(row)
    if fc is None:
        raise EventLogError(
            "The log is too short for any cut: a per-period backtest needs history before "
            "the cut and the periods' outcome after it. Pass fewer or shorter periods."
        )
    table = pd.concat(rows, ignore_index=True)
    return PeriodBacktest(
        periods=table, scores=_period_scores(table), by_period=by_period, forecast=fc
    )


def _period_scores(t: pd.DataFrame) -> pd.DataFrame:
    out = []
    for ahead, d in t.groupby("ahead", sort=True):  # loop over periods ahead
        ratio = d["ratio"].to_numpy(dtype=float)
        ok = np.isfinite(ratio)
        n = len(d)
        out.append(
            {
                "ahead": int(ahead),
                "forecasts": n,
                "covered": int(d["covered"].sum()),
                "covered80": int(d["covered80"].sum()),
                "covered50": int(d["covered50"].sum()),
                "coverage": float(d["covered"].mean()),
                "coverage80": float(d["covered80"].mean()),
                "coverage50": float(d["covered50"].mean()),
                "amount_coverage": float(d["amount_covered"].mean())
                if d["observed_amount"].notna().any()
                else np.nan,
                "expected_wins": float(d["expected_wins"].sum()),
                "observed_wins": int(d["observed_wins"].sum()),
                "ratio_min": float(ratio[ok].min()) if ok.any() else np.nan,
                "ratio_median": float(np.median(ratio[ok])) if ok.any() else np.nan,
                "ratio_max": float(ratio[ok].max()) if ok.any() else np.nan,
            }
        )
    return pd.DataFrame(out)


def forecast_by_period(
    log: EventLog,
    by_period: str,
    periods: int,
    *,
    by: str | Sequence[str] | None,
    as_of: Any,
    exits: Literal["shares", "by_dwell"],
    n_boot: int,
    seed: int | None,
    half_life: Any,
    window: Any,
    quota: Any,
    quota_of: Literal["amount", "wins"],
    n_sims: int,
) -> Forecast:
    """Implementation of ``EventLog.forecast(by_period=...)`` with the checks it shares
    with the forecast over one horizon (:func:`funnelkit.forecast.forecast_args`)."""
    from .forecast import forecast_args

    log, by_cols, n_boot = forecast_args(log, by, as_of, exits, n_boot, half_life, window)
    return period_forecast(
        log, by_period, periods, by_cols=by_cols, exits=exits, quota=quota,
        quota_of=quota_of, n_sims=n_sims, seed=seed, n_boot=n_boot,
        half_life=half_life, window=window,
    )  # fmt: skip


def check_period_args(
    horizon: Any, by_period: Any, periods: Any, quota: Any, quota_of: Any, n_sims: Any
) -> None:
    """Arguments that belong to ``by_period`` are an error without it; ``horizon`` is
    one with it (the periods set the horizon)."""
    if by_period is not None and horizon is not None:
        raise InvalidParameterError(
            f"Pass either `horizon` ({horizon!r}) or `by_period` ({by_period!r}), not both: "
            "a per-period forecast runs to the end of its last period."
        )
    if by_period is None:
        given = [
            name
            for name, value, default in (
                ("periods", periods, 3),
                ("quota", quota, None),
                ("quota_of", quota_of, "amount"),
                ("n_sims", n_sims, 2000),
            )
            if value is not default and value != default
        ]
        if given:
            raise InvalidParameterError(
                f"Parameter(s) {given} belong to a per-period forecast: pass `by_period` "
                "('ME', 'QE', ...) as well."
            )
