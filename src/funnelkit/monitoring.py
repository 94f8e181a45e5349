"""Monitoring: segment and before/after comparisons, cohort trends, the pipeline waterfall
and KPIs per period — the "monitor it with KPIs" step of the sales node method.

* :func:`compare` — conversion per stage of each segment against the rest, or of deals
  created after a date against those created before, with Wald tests and q-values;
* :func:`trend` — conversion, win rate, cycle time or dwell per creation cohort;
* :func:`movement` — the pipeline waterfall between two dates, which reconciles;
* :func:`kpis_by_period` — the headline KPIs per creation cohort.

Conversion and win rate are the funnel's estimand everywhere: the Aalen–Johansen
cumulative incidence of :mod:`funnelkit.funnel`, open and silent deals censored at
``as_of``, with the mass the data cannot resolve yet (``unresolved``) widening intervals
and tests — so recent deals and young cohorts count without a maturity rule. Cycle time
and dwell per cohort keep the maturity rule of :mod:`funnelkit._periods` (shared with
:mod:`funnelkit.keystages`), which also marks the ``mature`` periods.

Everything works on the log's integer arrays: no Python loop over deals or events (loops
run over stages, blocks of segments and compared rows only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import pandas as pd

from . import _columns as C
from . import _stats
from . import _validate as V
from ._columns import NAT, to_timestamp
from ._periods import (
    bh,
    maturity_cutoffs,
    period_alias,
    period_split,
    resolution_cutoff,
    resolution_times,
    segment_counts,
    stage_counts,
    two_proportions_many,
)
from ._segments import expand, is_visit_level, normalize_by, segments
from ._stats import Z95
from .dwell import km_table
from .errors import EventLogError, InvalidParameterError, warn
from .funnel import (
    ADV_KEYS,
    ADVANCE,
    LOST_CAUSE,
    Subjects,
    competing_subjects,
    conversion_estimates,
    log_subjects,
    stage_segments,
    stage_status,
    stale_ns,
    subject_estimates,
    widened_interval,
)
from .kpis import kpis
from .transitions import to_timedelta

if TYPE_CHECKING:
    from .log import EventLog

__all__ = ["CATEGORIES", "METRICS", "compare", "kpis_by_period", "movement", "trend"]

#: metrics of :func:`trend`
METRICS = ("conversion", "win_rate", "cycle_time", "dwell")
#: rows of :func:`movement`, in order
CATEGORIES = (
    "open_at_start",
    "created",
    "advanced",
    "regressed",
    "won",
    "lost",
    "stale",
    "open_at_end",
)
# names of output columns a `by` attribute must not take
_RESERVED = (
    "period period_start period_end stage deals reached counted advanced dropped open "
    "conversion won lost stale win_rate visits censored reached_by created_by mature "
    "unresolved conversion_low conversion_high conversion_closed conversion_closed_low "
    "conversion_closed_high win_rate_low win_rate_high win_rate_closed win_rate_closed_low "
    "win_rate_closed_high rest_advanced rest_dropped rest_conversion rest_unresolved "
    "difference difference_low difference_high p_value q_value differs test mean median "
    "p75 p90 median_low median_high"
).split()
_GROUP_KEY = "\x00group"  # the cohort × segment attribute handed to kpis()
# deal states at a time t, for movement()
_NONE, _OPEN, _WON, _LOST, _STALE = 0, 1, 2, 3, 4

#: rejected rows that are still activity of a deal of the log
REMOVED_OR_COLLAPSED = ["repeat", "reopened_terminal", "terminal_run"]


# --------------------------------------------------------------------------- checks
def _check_alpha(alpha: Any) -> float:
    try:
        x = float(alpha)
    except (TypeError, ValueError):
        x = np.nan
    if not 0 < x < 1:
        raise InvalidParameterError(f"Parameter `alpha` must be in (0, 1); got {alpha!r}.")
    return x


def _check_by(by: Any) -> list[str]:
    by_cols = normalize_by(by)
    clash = [b for b in by_cols if b in _RESERVED]
    if clash:
        raise InvalidParameterError(
            f"`by`={clash} has the name of an output column; rename that column of the events "
            f"before building the EventLog (output columns: {_RESERVED})."
        )
    return by_cols


# --------------------------------------------------------------------------- periods
def _period_freq(freq: Any) -> str:
    """A pandas offset alias ("QE", "ME", "W", also "Q", "M") as a period alias."""
    return period_alias(freq, name="freq")


def _cohorts(log: EventLog, freq: Any) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Per deal, the code of its creation period (UTC boundaries); a table of every period
    from the first to the last creation (``period``, ``period_start``, ``period_end``);
    and the periods' exclusive ends in ns."""
    pfreq = _period_freq(freq)
    first = log._first_ns
    periods = pd.period_range(
        start=pd.Timestamp(int(first.min())), end=pd.Timestamp(int(first.max())), freq=pfreq
    )
    start_ns = _ns(periods.start_time)
    end_ns = _ns((periods + 1).start_time)
    code = np.searchsorted(start_ns, first, side="right") - 1
    table = pd.DataFrame(
        {
            "period": np.asarray(periods.astype(str), dtype=object).astype(str),
            "period_start": log._timestamp(start_ns),
            "period_end": log._timestamp(end_ns),
        }
    )
    return code.astype(np.int64), table, end_ns


def _ns(index: pd.DatetimeIndex) -> np.ndarray:
    return index.as_unit("ns").asi8.astype(np.int64)


def _groups(
    log: EventLog, by_cols: list[str], freq: Any
) -> tuple[np.ndarray, int, pd.DataFrame, np.ndarray]:
    """Deal → (segment, cohort) group code; the number of groups; the label table of the
    groups (by columns, then the period columns); each group's period end in ns."""
    seg, labels = segments(log, by_cols)
    code, periods, end_ns = _cohorts(log, freq)
    P = len(periods)
    n_seg = len(labels)
    head = expand(labels, np.repeat(np.arange(n_seg), P), by_cols)
    tiled = periods.iloc[np.tile(np.arange(P), n_seg)].reset_index(drop=True)
    head = pd.concat([head, tiled], axis=1)
    return seg * P + code, n_seg * P, head, np.tile(end_ns, n_seg)


# --------------------------------------------------------------------------- compare
#: the complements of ``compare(by=...)`` are estimated exactly — every subject once more
#: for each segment it is not in — up to this many replicated subjects in all, in calls
#: of at most ``_CHUNK_ROWS``; beyond, from the whole and the segment (see
#: :func:`_complement_mixture`)
_REST_ROWS = 20_000_000
_CHUNK_ROWS = 1_000_000


def check_compare_args(by: Any, period: Any, alpha: Any) -> float:
    """Exactly one of ``by`` and ``period`` (both engines); ``alpha`` as a float."""
    if (by is None) == (period is None):
        got = "neither" if by is None else "both"
        raise EventLogError(
            "Pass exactly one of `by` (a carried attribute such as 'team') or `period` (a "
            f"date such as '2025-01-01'); got {got}."
        )
    return _check_alpha(alpha)


def complement_rows(
    seg: np.ndarray, stage: np.ndarray, n_seg: int, n_stages: int, chunk: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """The rows of every segment's rest, in blocks of ``k`` segments: each row repeated
    once for each segment of the block it is not in, with its group ``segment × stages +
    stage`` within the block (at most about ``chunk`` rows per block). Yields ``(k,
    row indices, groups)`` — for both engines' ``compare(by=...)``."""
    n = seg.size
    per = max(1, chunk // max(n, 1))
    for a in range(0, n_seg, per):  # loop over blocks of segments
        k = min(per, n_seg - a)
        idx = np.repeat(np.arange(n), k)
        g = np.tile(np.arange(a, a + k), n)
        keep = g != seg[idx]
        idx, g = idx[keep], g[keep]
        yield k, idx, (g - a) * n_stages + stage[idx]


def compare(
    log: EventLog,
    *,
    by: str | Sequence[str] | None = None,
    period: Any = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Implementation of :meth:`funnelkit.EventLog.compare` (documented there).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> from funnelkit.monitoring import compare
    >>> compare(log, by="team").equals(log.compare(by="team"))
    True
    """
    alpha = check_compare_args(by, period, alpha)
    S = log._n_stages
    if period is not None:
        period_ns, _ = period_split(log, period)
        group = (log._first_ns >= period_ns).astype(np.int64)  # 1 = after
        sub = log_subjects(log, "implied")
        aj = subject_estimates(log, group[sub.deal] * S + sub.stage, sub, 2 * S, None)
        c = stage_counts(log, group, 2)
        return period_compare_table(
            list(log.stages), c, np.bincount(group, minlength=2), aj, alpha
        )
    by_cols = _check_by(by)
    c, tot, labels, deals = segment_counts(log, by_cols)
    n_g = len(labels)
    rest = {k: tot[k] - c[k] for k in ("advanced", "dropped")}
    head = expand(labels, np.repeat(np.arange(n_g), S), by_cols)
    sub, seg = _segment_subjects(log, by_cols)
    aj = subject_estimates(log, seg * S + sub.stage, sub, n_g * S, None)
    aj_rest = _complement_estimates(log, sub, seg, n_g)
    return compare_table(head, list(log.stages), c, rest, deals, aj, aj_rest, alpha)


def compare_table(
    head: pd.DataFrame,
    stages: list[str],
    c: dict[str, np.ndarray],
    rest: dict[str, np.ndarray],
    deals: np.ndarray,
    aj: dict[str, np.ndarray],
    aj_rest: dict[str, np.ndarray],
    alpha: float,
) -> pd.DataFrame:
    """The table of :meth:`funnelkit.EventLog.compare` from its sufficient statistics —
    one builder for both engines: ``head`` (the group columns, one row per group ×
    stage), the groups' ``reached``/``advanced``/``dropped``/``open`` counts and their
    rests' ``advanced``/``dropped`` (arrays ``(groups, stages)``), deals per group, and the
    conversion estimates (``ADV_KEYS``) of each group and of its rest."""
    z = NormalDist().inv_cdf(1 - alpha / 2)
    n_g, S = deals.size, len(stages)
    conv, low, high, unresolved = _conversion(aj, z)
    conv_rest, _, _, unresolved_rest = _conversion(aj_rest, z)
    p, d_low, d_high, reachable = _difference_test(aj, aj_rest, conv, conv_rest, z)
    x, n = c["advanced"].reshape(-1), (c["advanced"] + c["dropped"]).reshape(-1)
    xr, nr = rest["advanced"].reshape(-1), (rest["advanced"] + rest["dropped"]).reshape(-1)
    test = np.where(np.isfinite(p), "z", "none").astype(object)
    # small counts: the normal approximation fails, Fisher's exact test of the resolved
    # deals instead (unless the unresolved mass already allows no difference: p = 1)
    i = np.flatnonzero(np.isfinite(p) & ~reachable & (n > 0) & (nr > 0))
    p_small, kind = two_proportions_many(x[i], n[i], xr[i], nr[i], "two-sided")
    small = kind == "fisher"
    p[i[small]] = p_small[small]
    test[i[small]] = "fisher"
    with np.errstate(invalid="ignore", divide="ignore"):
        closed = x / n
    c_low, c_high = _stats.wilson(x, n.astype(np.float64), z=z)
    q = bh(p)
    out = head
    out["stage"] = np.tile(np.array(stages, dtype=object), n_g).astype(str)
    out["deals"] = np.repeat(deals, S).astype(np.int64)
    for k in ("reached", "advanced", "dropped", "open"):
        out[k] = c[k].reshape(-1).astype(np.int64)
    out["conversion"] = conv
    out["conversion_low"] = low
    out["conversion_high"] = high
    out["unresolved"] = unresolved
    out["conversion_closed"] = closed
    out["conversion_closed_low"] = c_low
    out["conversion_closed_high"] = c_high
    out["rest_advanced"] = rest["advanced"].reshape(-1).astype(np.int64)
    out["rest_dropped"] = rest["dropped"].reshape(-1).astype(np.int64)
    out["rest_conversion"] = conv_rest
    out["rest_unresolved"] = unresolved_rest
    out["difference"] = conv - conv_rest
    out["difference_low"] = d_low
    out["difference_high"] = d_high
    out["p_value"] = p
    out["q_value"] = q
    with np.errstate(invalid="ignore"):
        out["differs"] = (q <= alpha) & ((d_low > 0) | (d_high < 0))
    out["test"] = test.astype(str)
    return out


def _segment_subjects(log: EventLog, by_cols: list[str]) -> tuple[Subjects, np.ndarray]:
    """The subjects of the funnel's conversion (``skips="implied"``, one per deal and
    stage reached) and the segment of each — as :meth:`EventLog.funnel` forms them: a
    deal attribute's value, or a visit attribute's value on the event that reached the
    stage."""
    if is_visit_level(log, by_cols):
        st = stage_status(log, "implied")
        sub = competing_subjects(log, st)
        seg_m, _ = stage_segments(log, by_cols, st.entry_i)
        return sub, seg_m[sub.deal, sub.stage]
    seg, _ = segments(log, by_cols)
    sub = log_subjects(log, "implied")
    return sub, seg[sub.deal]


def _conversion_estimates(log: EventLog, group, t, cause, n_groups: int) -> dict[str, np.ndarray]:
    """The conversion estimates of :func:`competing_estimates` (``ADV_KEYS``) per group
    from ``(group, time, cause)`` of each subject."""
    return conversion_estimates((group, t, cause, None, None), n_groups, stale_ns(log.stale_after))


def period_compare_table(
    stages: list[str],
    c: dict[str, np.ndarray],
    deals: np.ndarray,
    aj: dict[str, np.ndarray],
    alpha: float,
) -> pd.DataFrame:
    """``compare(period=...)`` from the two sides' statistics (rows: before, after): the
    rest of each side is the other one (both engines)."""
    S = len(stages)
    rest = {k: c[k][::-1] for k in ("advanced", "dropped")}
    # the rest of each period is the other one: its rows in swapped order
    aj_rest = {k: aj[k].reshape(2, S)[::-1].reshape(-1) for k in ADV_KEYS}
    head = pd.DataFrame({"period": np.repeat(np.array(["before", "after"]), S)})
    return compare_table(head, stages, c, rest, deals, aj, aj_rest, alpha)


def check_metric(metric: Any) -> None:
    """``trend``'s ``metric`` (both engines)."""
    if metric not in METRICS:
        raise InvalidParameterError(
            f"Parameter `metric` must be one of {list(METRICS)}; got {metric!r}."
        )


def _complement_estimates(
    log: EventLog, sub: Subjects, seg: np.ndarray, n_seg: int
) -> dict[str, np.ndarray]:
    """Per (segment, stage), the conversion estimates of every subject *not* in the
    segment — each complement's own Aalen–Johansen estimate, from the subjects repeated
    once for each segment they are not in (in blocks of segments, so that no call holds
    more than ``_CHUNK_ROWS`` of them). When that would replicate more than ``_REST_ROWS``
    subjects in all (many segments of a large log), :func:`_complement_mixture`."""
    S = log._n_stages
    n = seg.size
    if n * max(n_seg - 1, 0) > _REST_ROWS:
        return _complement_mixture(log, sub, seg, n_seg)
    parts = [
        _conversion_estimates(log, group, sub.t_adv[idx], sub.c_adv[idx], k * S)
        for k, idx, group in complement_rows(seg, sub.stage, n_seg, S, _CHUNK_ROWS)
    ]
    return {key: np.concatenate([part[key] for part in parts]) for key in ADV_KEYS}


def _complement_mixture(
    log: EventLog, sub: Subjects, seg: np.ndarray, n_seg: int
) -> dict[str, np.ndarray]:
    """An approximation of :func:`_complement_estimates` from two estimates per stage:
    the whole log's ``W`` and the segment's ``G``. Without censoring a cumulative
    incidence is a share, so the whole is the subject-weighted mixture of the segment and
    its complement, and the complement's is ``(n W − n_g G) / (n − n_g)``; with
    censoring this holds approximately (exactly when the segment and the rest are
    censored alike). The same for the unresolved mass and its parts ``down`` and ``up``;
    the variance is the whole's scaled to the complement's size, ``V_W n / (n − n_g)``.
    Used only above ``_REST_ROWS`` replicated subjects; tested close to the exact
    estimate (``tests/test_monitoring.py``)."""
    S = log._n_stages
    whole = _conversion_estimates(log, sub.stage, sub.t_adv, sub.c_adv, S)
    part = _conversion_estimates(log, seg * S + sub.stage, sub.t_adv, sub.c_adv, n_seg * S)
    n_all = np.tile(whole["n_eff"], n_seg)
    n_part = part["n_eff"]
    n_rest = n_all - n_part
    out: dict[str, np.ndarray] = {"n_eff": n_rest.astype(np.float64)}
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in ("cif", "unresolved", "down", "up"):
            w, g = np.tile(whole[k], n_seg), np.nan_to_num(part[k])
            out[k] = np.clip((n_all * w - n_part * g) / n_rest, 0.0, 1.0)
        out["var"] = np.tile(whole["var"], n_seg) * n_all / n_rest
    events_all = np.tile(whole["events"], n_seg)
    out["events"] = events_all - part["events"]
    known_all = np.tile(whole["known"], n_seg)
    out["known"] = (n_rest > 0) & known_all & ((out["events"] > 0) | (events_all == 0))
    return out


def _conversion(aj: dict[str, np.ndarray], z: float) -> tuple[np.ndarray, ...]:
    """Conversion, its interval at ``z`` widened by the unresolved mass (as in
    :meth:`EventLog.funnel`) and the unresolved mass; NaN where not identified."""
    known = aj["known"]
    conv = np.where(known, aj["cif"], np.nan)
    low, high = widened_interval(conv, aj, z=z)
    return conv, low, high, np.where(known, aj["unresolved"], np.nan)


def _difference_test(
    aj: dict[str, np.ndarray],
    aj_rest: dict[str, np.ndarray],
    conv: np.ndarray,
    conv_rest: np.ndarray,
    z: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two-sided Wald test of equal conversion of a group and its rest (disjoint deals,
    so independent estimates), and the interval of the difference, both at the least
    favourable allocation of the unresolved mass.

    Each side's conversion may lie anywhere in ``[F − down, F + up]`` (the mass the data
    cannot resolve yet). The p-value is that of the allocation that brings the difference
    closest to 0 (1 when 0 is reachable), with ``z = d / sqrt(V1 + V2)``; the interval
    runs from ``(F1 − down1) − (F2 + up2) − z se`` to ``(F1 + up1) − (F2 − down2) + z se``.
    Each side's variance is its Aalen–Johansen variance, but at least the binomial
    variance ``F̄ (1 − F̄) / n`` at the pooled estimate ``F̄`` (subject-weighted), as the
    pooled z-test has it: an estimate of 0 or 1, or one resting on a single block of
    events, has a variance of 0 that would make any difference "significant". NaN where
    either side is not identified. Also returns where a difference of 0 is reachable."""
    n1, n2 = aj["n_eff"], aj_rest["n_eff"]
    ok = np.isfinite(conv) & np.isfinite(conv_rest) & (n1 > 0) & (n2 > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = (n1 * conv + n2 * conv_rest) / (n1 + n2)
        floor = pooled * (1 - pooled)
        se = np.sqrt(np.maximum(aj["var"], floor / n1) + np.maximum(aj_rest["var"], floor / n2))
    lo = (conv - aj["down"]) - (conv_rest + aj_rest["up"])
    hi = (conv + aj["up"]) - (conv_rest - aj_rest["down"])
    nearest = np.where(lo > 0, lo, np.where(hi < 0, hi, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(nearest == 0, 1.0, 2 * _norm_sf(np.abs(nearest) / se))
    nan = np.full(conv.shape, np.nan)
    return (
        np.where(ok, p, nan),
        np.where(ok, np.maximum(lo - z * se, -1.0), nan),
        np.where(ok, np.minimum(hi + z * se, 1.0), nan),
        ok & (nearest == 0),
    )


def _norm_sf(x: np.ndarray) -> np.ndarray:
    """The standard normal survival function (``inf`` → 0)."""
    from scipy.special import ndtr

    return ndtr(-np.asarray(x, dtype=np.float64))


# --------------------------------------------------------------------------- trend
def trend(
    log: EventLog,
    *,
    freq: str = "QE",
    by: str | Sequence[str] | None = None,
    metric: Literal["conversion", "win_rate", "cycle_time", "dwell"] = "conversion",
) -> pd.DataFrame:
    """Implementation of :meth:`funnelkit.EventLog.trend` (documented there).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> from funnelkit.monitoring import trend
    >>> t = trend(log, freq="YE", metric="win_rate")
    >>> t.equals(log.trend(freq="YE", metric="win_rate"))
    True
    >>> t["deals"].tolist()
    [391, 209]
    """
    check_metric(metric)
    by_cols = _check_by(by)
    group, G, head, end_ns = _groups(log, by_cols, freq)
    if metric in ("conversion", "dwell"):
        out = _trend_by_stage(log, metric, group, G, head, end_ns)
    else:
        out = _trend_by_deal(log, metric, group, G, head, end_ns)
    if metric in ("conversion", "win_rate"):
        _warn_if_empty(log, out, metric)
    return out


def _warn_if_empty(log: Any, out: pd.DataFrame, metric: str) -> None:
    """Warn when every value of a rate trend is NaN although deals exist: no deal of any
    cohort has advanced, won or been lost yet, which a table of NaN does not explain.
    ``log`` is either engine's log (only its ``stale_after`` is read)."""
    if out.empty or out[metric].notna().any():
        return
    total = int(out["reached" if metric == "conversion" else "deals"].sum())
    if total == 0:
        return
    unit = "deal-stage pairs" if metric == "conversion" else "deals"
    event = "advanced or been lost" if metric == "conversion" else "been won or lost"
    if log.stale_after is None:
        why = (
            "Without `stale_after`, a deal that fell silent stays open for ever and never "
            "counts as lost. Set stale_after= when building the EventLog (e.g. "
            "stale_after='60D') so silent deals count as lost"
        )
    else:
        why = "The log is young: wait for outcomes"
    warn(
        f"log.trend(metric={metric!r}): every {metric} is NaN. None of the {total:,} {unit} "
        f"has {event} yet, so the data cannot tell the {metric}. {why}."
    )


def _trend_by_stage(
    log: EventLog, metric: str, group: np.ndarray, G: int, head: pd.DataFrame, end_ns
) -> pd.DataFrame:
    S = log._n_stages
    cut = maturity_cutoffs(log)
    stats: dict[str, Any]
    if metric == "conversion":
        sub = log_subjects(log, "implied")
        stats = {
            "counts": stage_counts(log, group, G),
            "aj": subject_estimates(log, group[sub.deal] * S + sub.stage, sub, G * S, None),
        }
    else:
        v = log._visits()
        has = v.dwell != NAT
        g = group[v.deal] * S + v.stage
        counted = has & (v.entered <= cut[v.stage])
        stats = {
            "visits": np.bincount(g[has], minlength=G * S),
            "km": km_table(g[counted], v.dwell[counted], v.censored[counted], G * S),
        }
    return stage_trend_table(head, list(log.stages), metric, stats, cut, end_ns, log._timestamp)


def stage_trend_table(
    head: pd.DataFrame,
    stages: list[str],
    metric: str,
    stats: dict[str, Any],
    cut: np.ndarray,
    end_ns: np.ndarray,
    timestamp: Callable[[np.ndarray], Any],
) -> pd.DataFrame:
    """The table of ``trend(metric="conversion" | "dwell")`` from its sufficient
    statistics (one builder for both engines): ``head`` (one row per group), per group ×
    stage the funnel counts and conversion estimates (``counts``, ``aj``) or the visits
    with a dwell and the Kaplan–Meier summary of the counted ones (``visits``, ``km``),
    the stages' cutoffs, the groups' period ends and the log's ns → time converter."""
    G, S = len(head), len(stages)
    out = head.iloc[np.repeat(np.arange(G), S)].reset_index(drop=True)
    out["stage"] = np.tile(np.array(stages, dtype=object), G).astype(str)
    if metric == "conversion":
        c, aj = stats["counts"], stats["aj"]
        conv, low, high, unresolved = _conversion(aj, Z95)
        x = c["advanced"].reshape(-1)
        n = x + c["dropped"].reshape(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            closed = x / n
        c_low, c_high = _stats.wilson(x, n.astype(np.float64))
        for k in ("reached", "advanced", "dropped", "open"):
            out[k] = c[k].reshape(-1).astype(np.int64)
        out["conversion"] = conv
        out["conversion_low"] = low
        out["conversion_high"] = high
        out["unresolved"] = unresolved
        out["conversion_closed"] = closed
        out["conversion_closed_low"] = c_low
        out["conversion_closed_high"] = c_high
    else:
        km = stats["km"]
        out["visits"] = np.asarray(stats["visits"]).astype(np.int64)
        out["counted"] = km["n"].astype(np.int64)
        out["censored"] = km["censored"].astype(np.int64)
        out["mean"] = to_timedelta(km["mean"]).to_numpy()
        out["median"] = to_timedelta(km["q50"]).to_numpy()
        out["p75"] = to_timedelta(km["q75"]).to_numpy()
        out["p90"] = to_timedelta(km["q90"]).to_numpy()
    out["reached_by"] = timestamp(np.tile(cut, G))
    out["mature"] = np.repeat(end_ns, S) - 1 <= np.tile(cut, G)
    if metric == "dwell":  # new columns after the existing ones, as for cycle time
        out["median_low"] = to_timedelta(km["q50_low"]).to_numpy()
        out["median_high"] = to_timedelta(km["q50_high"]).to_numpy()
    return out


def _trend_by_deal(
    log: EventLog, metric: str, group: np.ndarray, G: int, head: pd.DataFrame, end_ns
) -> pd.DataFrame:
    cut = resolution_cutoff(log)
    oc = log._outcome.astype(np.int64)
    stats: dict[str, Any] = {"deals": np.bincount(group, minlength=G)}
    if metric == "win_rate":
        stats["outcomes"] = np.bincount(group * 4 + oc, minlength=G * 4).reshape(G, 4)
        stats["aj"] = _conversion_estimates(log, group, *_win_clock(log), G)
    else:
        sel = (log._first_ns <= cut) & (oc != V.STALE)
        dur, _ = resolution_times(log)
        stats["km"] = km_table(group[sel], dur[sel], (oc == V.OPEN)[sel], G)
    return deal_trend_table(head, metric, stats, cut, end_ns, log._timestamp)


def deal_trend_table(
    head: pd.DataFrame,
    metric: str,
    stats: dict[str, Any],
    cut: int,
    end_ns: np.ndarray,
    timestamp: Callable[[np.ndarray], Any],
) -> pd.DataFrame:
    """The table of ``trend(metric="win_rate" | "cycle_time")`` from its sufficient
    statistics (one builder for both engines): deals per group and either the outcome
    counts ``(groups, 4)`` and the win-clock estimates (``outcomes``, ``aj``) or the
    Kaplan–Meier summary of the time to resolution (``km``); the creation cutoff, the
    groups' period ends and the log's ns → time converter."""
    G = len(head)
    out = head.copy()
    out["deals"] = np.asarray(stats["deals"]).astype(np.int64)
    if metric == "win_rate":
        counts = stats["outcomes"]
        won, lost, stale, open_ = (counts[:, k] for k in (V.WON, V.LOST, V.STALE, V.OPEN))
        n = won + lost + stale
        with np.errstate(invalid="ignore", divide="ignore"):
            closed = won / n
        c_low, c_high = _stats.wilson(won, n.astype(np.float64))
        rate, low, high, unresolved = _conversion(stats["aj"], Z95)
        out["won"] = won.astype(np.int64)
        out["lost"] = lost.astype(np.int64)
        out["stale"] = stale.astype(np.int64)
        out["open"] = open_.astype(np.int64)
        out["win_rate"] = rate
        out["win_rate_low"] = low
        out["win_rate_high"] = high
        out["unresolved"] = unresolved
        out["win_rate_closed"] = closed
        out["win_rate_closed_low"] = c_low
        out["win_rate_closed_high"] = c_high
    else:
        km = stats["km"]
        out["counted"] = km["n"].astype(np.int64)
        out["censored"] = km["censored"].astype(np.int64)
        out["mean"] = to_timedelta(km["mean"]).to_numpy()
        out["median"] = to_timedelta(km["q50"]).to_numpy()
        out["p75"] = to_timedelta(km["q75"]).to_numpy()
        out["p90"] = to_timedelta(km["q90"]).to_numpy()
    out["created_by"] = timestamp(np.full(G, cut, dtype=np.int64))
    out["mature"] = end_ns - 1 <= cut
    if metric != "win_rate":  # new columns after the existing ones
        out["median_low"] = to_timedelta(km["q50_low"]).to_numpy()
        out["median_high"] = to_timedelta(km["q50_high"]).to_numpy()
    return out


def _win_clock(log: EventLog) -> tuple[np.ndarray, np.ndarray]:
    """Per deal, the time from creation (its first event) to its outcome and the cause:
    won (1) or lost (2) at the terminal event; open and stale deals censored (0) at
    ``as_of`` — a silent deal may still move, and the stale rule of
    :func:`competing_estimates` settles a cohort whose curve has levelled off."""
    oc = log._outcome
    closed = (oc == V.WON) | (oc == V.LOST)
    end = np.where(closed, log._term_ns, log._as_of_ns)
    cause = np.where(oc == V.WON, ADVANCE, np.where(oc == V.LOST, LOST_CAUSE, 0))
    return np.maximum(end - log._first_ns, 0), cause.astype(np.int8)


# --------------------------------------------------------------------------- KPIs
class _WithAttr:
    """The log seen with one more carried attribute (read-only view for ``kpis``)."""

    def __init__(self, log: EventLog, name: str, values: pd.Series) -> None:
        self._log = log
        self._attrs = {**log._attrs, name: values}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def kpis_by_period(
    log: EventLog, *, freq: str, by: str | Sequence[str] | None = None
) -> pd.DataFrame:
    """Implementation of :meth:`funnelkit.EventLog.kpis` (documented there).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> from funnelkit.monitoring import kpis_by_period
    >>> k = kpis_by_period(log, freq="YE")
    >>> k.equals(log.kpis(freq="YE"))
    True
    >>> k[["period", "deals", "won"]]
      period  deals  won
    0   2024    391   47
    1   2025    209   13
    """
    by_cols = _check_by(by)
    group, G, head, end_ns = _groups(log, by_cols, freq)
    attr = pd.Series(pd.Categorical.from_codes(group, categories=np.arange(G)))
    k = kpis(cast("EventLog", _WithAttr(log, _GROUP_KEY, attr)), by=_GROUP_KEY)
    rows = k.pop(_GROUP_KEY).to_numpy(dtype=np.int64)
    k = k.set_index(rows).reindex(np.arange(G))
    for col in ("deals", "won", "lost", "stale", "open"):
        k[col] = k[col].fillna(0).astype(np.int64)
    out = pd.concat([head, k.reset_index(drop=True)], axis=1)
    cut = resolution_cutoff(log)
    out["created_by"] = log._timestamp(np.full(G, cut, dtype=np.int64))
    out["mature"] = end_ns - 1 <= cut
    return out


# --------------------------------------------------------------------------- movement
def _activity(log: EventLog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every event of every deal — the cleaned path and the rows cleaning collapsed or
    removed (a re-logged stage is activity too) — sorted by deal and time: ``deal``,
    ``time`` and the start of each deal's slice."""
    if "activity" in log._cache:
        return log._cache["activity"]
    deal, time = log._path_deal, log._path_time
    q = log.quality
    extra_rows = q.rows_collapsed + q.rows_removed
    if q.source == "deals":  # a wide export counts its own rows: count the rejected events
        extra_rows = sum(q.by_reason.get(r, 0) for r in REMOVED_OR_COLLAPSED)
    if extra_rows:
        rej = log.rejects
        extra = rej[rej["reason"].isin(REMOVED_OR_COLLAPSED)]
        codes = log._deal_labels.get_indexer(extra[log._settings["deal"]])
        if (codes < 0).any():  # cannot happen: every such row belongs to a deal of the log
            raise RuntimeError("funnelkit: rejected rows of unknown deals")
        times = C.parse_times(extra[log._settings["time"]], log._settings.get("date_format")).ns
        deal = np.concatenate([deal, codes.astype(np.int64)])
        time = np.concatenate([time, times])
        order = np.lexsort((time, deal))
        deal, time = deal[order], time[order]
    starts = np.searchsorted(deal, np.arange(log.n_deals), side="left")
    log._cache["activity"] = (deal, time, starts)
    return deal, time, starts


def _last_at_or_before(
    deal: np.ndarray, time: np.ndarray, starts: np.ndarray, t: int, n_deals: int
) -> np.ndarray:
    """Per deal, the index of its latest element with time <= t in arrays sorted by deal
    and time; -1 when there is none."""
    count = np.bincount(deal[time <= t], minlength=n_deals)
    return np.where(count > 0, starts + count - 1, -1)


def _states(log: EventLog, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per deal at time t: state (none / open / won / lost / stale), furthest and current
    stage (-1 when not open)."""
    n = log.n_deals
    a_deal, a_time, a_starts = _activity(log)
    i = _last_at_or_before(a_deal, a_time, a_starts, t, n)
    last = np.where(i >= 0, a_time[np.maximum(i, 0)], NAT)
    created = log._first_ns <= t
    ended = (log._term_ns != NAT) & (log._term_ns <= t)
    stale = np.zeros(n, dtype=bool)
    if log.stale_after is not None:
        stale = created & ~ended & (t - last > log.stale_after.value)
    state = np.full(n, _NONE, dtype=np.int64)
    state[created] = _OPEN
    state[stale] = _STALE
    state[ended & (log._outcome == V.WON)] = _WON
    state[ended & (log._outcome == V.LOST)] = _LOST
    # furthest and current stage from the cleaned path (stage events only)
    p_deal, p_stage, p_time = log._path_deal, log._path_stage, log._path_time
    rank = np.where(log._kind[p_stage] == V.STAGE, p_stage, -1).astype(np.int64)
    offset = p_deal.astype(np.int64) * (log._n_stages + 1)
    furthest_so_far = np.maximum.accumulate(offset + rank + 1) - offset - 1
    p_starts = np.searchsorted(p_deal, np.arange(n), side="left")
    j = _last_at_or_before(p_deal, p_time, p_starts, t, n)
    is_open = (state == _OPEN) & (j >= 0)
    jj = np.maximum(j, 0)
    furthest = np.where(is_open, furthest_so_far[jj], -1)
    current = np.where(is_open, rank[jj], -1)
    return state, furthest, current


def movement(log: EventLog, start: Any, end: Any) -> pd.DataFrame:
    """Implementation of :meth:`funnelkit.EventLog.movement` (documented there).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> from funnelkit.monitoring import movement
    >>> m = movement(log, "2025-03-31", log.as_of)
    >>> m.equals(log.movement("2025-03-31", log.as_of))
    True
    >>> int(m.set_index("category").loc["open_at_end", "deals"]) == log.quality.open
    True
    """
    start_ns, end_ns, s0, s1, masks = movement_masks(log, start, end)
    deals = [int(masks[k].sum()) for k in CATEGORIES]
    if log._amount is None:
        amount = [np.nan] * len(CATEGORIES)
    else:
        amt = np.nan_to_num(log._amount, nan=0.0)
        amount = [float(amt[masks[k]].sum()) for k in CATEGORIES]
    return pd.DataFrame(
        {
            "category": list(CATEGORIES),
            "deals": np.array(deals, dtype=np.int64),
            "amount": np.array(amount, dtype=np.float64),
        }
    )


def movement_window(
    start: Any, end: Any, aware: bool, as_of_ns: int, as_of: Any
) -> tuple[int, int]:
    """The window ``(start, end]`` of :func:`movement` in ns on the log's clock, checked:
    ``start`` before ``end``, ``end`` not after ``as_of`` (both engines)."""
    start_ns = to_timestamp(start, aware, "start")
    end_ns = to_timestamp(end, aware, "end")
    if not start_ns < end_ns:
        raise EventLogError(
            f"Parameters `start`={start!r} and `end`={end!r}: `start` must be before `end`."
        )
    if end_ns > as_of_ns:
        raise InvalidParameterError(
            f"Parameter `end`={end!r} is after the log's as_of ({as_of}); nothing is "
            "known after as_of. Pass an earlier `end` or build the log with a later as_of."
        )
    return start_ns, end_ns


def movement_masks(
    log: EventLog, start: Any, end: Any
) -> tuple[int, int, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The window of :func:`movement` on the log's clock (checked), each deal's state at
    ``start`` and at ``end`` (``_NONE``/``_OPEN``/``_WON``/``_LOST``/``_STALE``) and the
    deal mask of each category of :data:`CATEGORIES` — shared with the field-history
    waterfall of :mod:`funnelkit.history`, so both apply the same state rules."""
    start_ns, end_ns = movement_window(start, end, log._aware, log._as_of_ns, log.as_of)
    s0, f0, c0 = _states(log, start_ns)
    s1, f1, c1 = _states(log, end_ns)
    both_open = (s0 == _OPEN) & (s1 == _OPEN)
    masks = {
        "open_at_start": s0 == _OPEN,
        "created": ((s0 == _NONE) & (s1 != _NONE))
        | ((s0 == _STALE) & np.isin(s1, [_OPEN, _WON, _LOST])),
        "advanced": both_open & (f1 > f0),
        "regressed": both_open & (c1 < c0),
        "won": (s1 == _WON) & (s0 != _WON),
        "lost": (s1 == _LOST) & (s0 != _LOST),
        "stale": (s1 == _STALE) & (s0 != _STALE),
        "open_at_end": s1 == _OPEN,
    }
    return start_ns, end_ns, s0, s1, masks
