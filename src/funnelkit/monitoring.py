"""Monitoring: segment and before/after comparisons, cohort trends, the pipeline waterfall
and KPIs per period — the "monitor it with KPIs" step of the sales node method.

* :func:`compare` — conversion per stage of each segment against the rest, or of deals
  created after a date against those created before, with tests and q-values;
* :func:`trend` — conversion, win rate, cycle time or dwell per creation cohort;
* :func:`movement` — the pipeline waterfall between two dates, which reconciles;
* :func:`kpis_by_period` — the headline KPIs per creation cohort.

Everything works on the log's integer arrays: no Python loop over deals or events (loops
run over stages, segments and compared rows only). Recent deals are handled with the
maturity rule of :mod:`funnelkit._periods`, shared with :mod:`funnelkit.keystages`.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    newcombe_many,
    period_split,
    resolution_cutoff,
    segment_counts,
    stage_counts,
    two_proportions_many,
)
from ._segments import expand, normalize_by, segments
from .dwell import km_table
from .errors import EventLogError, warn
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
    "conversion won lost stale win_rate visits censored reached_by created_by mature"
).split()
_GROUP_KEY = "\x00group"  # the cohort × segment attribute handed to kpis()
# offset aliases → period aliases (anchors such as "W-MON", "QE-NOV" carry over)
_PERIOD_BASE = {
    "D": "D",
    "W": "W",
    "M": "M",
    "ME": "M",
    "MS": "M",
    "Q": "Q",
    "QE": "Q",
    "QS": "Q",
    "Y": "Y",
    "YE": "Y",
    "YS": "Y",
    "A": "Y",
}
_ANCHORED = {"W", "Q", "QE", "Y", "YE", "A"}
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
        raise EventLogError(f"Parameter `alpha` must be in (0, 1); got {alpha!r}.")
    return x


def _check_by(by: Any) -> list[str]:
    by_cols = normalize_by(by)
    clash = [b for b in by_cols if b in _RESERVED]
    if clash:
        raise EventLogError(
            f"`by`={clash} has the name of an output column; rename that column of the events "
            f"before building the EventLog (output columns: {_RESERVED})."
        )
    return by_cols


# --------------------------------------------------------------------------- periods
def _period_freq(freq: Any) -> str:
    """A pandas offset alias ("QE", "ME", "W", also "Q", "M") as a period alias."""
    if not isinstance(freq, str):
        raise TypeError(f"Parameter `freq` must be a string such as 'QE'; got {freq!r}.")
    base, dash, anchor = freq.partition("-")
    ok = base in _PERIOD_BASE and (not dash or (base in _ANCHORED and anchor.isalpha()))
    pfreq = _PERIOD_BASE.get(base, "") + (f"-{anchor}" if dash else "")
    if ok:
        try:
            pd.Period("2025-01-01", freq=pfreq)
        except (ValueError, TypeError):
            ok = False
    if not ok:
        raise EventLogError(
            f"Parameter `freq`={freq!r} is not a supported period: pass a pandas offset "
            "alias — 'D', 'W' (or 'W-MON', ...), 'ME' or 'M', 'QE' or 'Q' (or 'QE-NOV', ...), "
            "'YE' or 'Y'."
        )
    return pfreq


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
    if (by is None) == (period is None):
        got = "neither" if by is None else "both"
        raise EventLogError(
            "Pass exactly one of `by` (a carried attribute such as 'team') or `period` (a "
            f"date such as '2025-01-01'); got {got}."
        )
    alpha = _check_alpha(alpha)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    S = log._n_stages
    cut: np.ndarray | None = None
    if period is None:
        by_cols = _check_by(by)
        c, tot, labels, deals = segment_counts(log, by_cols)
        n_g = len(labels)
        rest = {k: tot[k] - c[k] for k in ("advanced", "dropped")}
        head = expand(labels, np.repeat(np.arange(n_g), S), by_cols)
    else:
        period_ns, _ = period_split(log, period)
        group = (log._first_ns >= period_ns).astype(np.int64)  # 1 = after
        cut = maturity_cutoffs(log)
        c = stage_counts(log, group, 2, cut)
        rest = {k: c[k][::-1] for k in ("advanced", "dropped")}
        n_g = 2
        head = pd.DataFrame({"period": np.repeat(np.array(["before", "after"]), S)})
        deals = np.bincount(group, minlength=2)
    x, n = c["advanced"].reshape(-1), (c["advanced"] + c["dropped"]).reshape(-1)
    xr, nr = rest["advanced"].reshape(-1), (rest["advanced"] + rest["dropped"]).reshape(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        conv = x / n
        conv_rest = xr / nr
    low, high = _stats.wilson(x, n.astype(np.float64), z=z)
    p = np.full(x.size, np.nan)
    d_low = np.full(x.size, np.nan)
    d_high = np.full(x.size, np.nan)
    test = np.full(x.size, "none", dtype=object)
    i = np.flatnonzero((n > 0) & (nr > 0))  # every testable (group, stage) row at once
    p[i], test[i] = two_proportions_many(x[i], n[i], xr[i], nr[i], "two-sided")
    d_low[i], d_high[i] = newcombe_many(x[i], n[i], xr[i], nr[i], z)
    q = bh(p)
    out = head
    out["stage"] = np.tile(np.array(log.stages, dtype=object), n_g).astype(str)
    out["deals"] = np.repeat(deals, S).astype(np.int64)
    for k in ("reached", "advanced", "dropped", "open"):
        out[k] = c[k].reshape(-1).astype(np.int64)
    out["conversion"] = conv
    out["conversion_low"] = low
    out["conversion_high"] = high
    out["rest_advanced"] = xr.astype(np.int64)
    out["rest_dropped"] = rest["dropped"].reshape(-1).astype(np.int64)
    out["rest_conversion"] = conv_rest
    out["difference"] = conv - conv_rest
    out["difference_low"] = d_low
    out["difference_high"] = d_high
    out["p_value"] = p
    out["q_value"] = q
    with np.errstate(invalid="ignore"):
        out["differs"] = q <= alpha
    out["test"] = test.astype(str)
    if cut is not None:
        out["reached_by"] = log._timestamp(np.tile(cut, n_g))
    return out


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
    if metric not in METRICS:
        raise EventLogError(f"Parameter `metric` must be one of {list(METRICS)}; got {metric!r}.")
    by_cols = _check_by(by)
    group, G, head, end_ns = _groups(log, by_cols, freq)
    if metric in ("conversion", "dwell"):
        out = _trend_by_stage(log, metric, group, G, head, end_ns)
    else:
        out = _trend_by_deal(log, metric, group, G, head, end_ns)
    if metric in ("conversion", "win_rate"):
        _warn_if_empty(log, out, metric)
    return out


def _warn_if_empty(log: EventLog, out: pd.DataFrame, metric: str) -> None:
    """Warn when every value of a rate trend is NaN although deals exist: the maturity
    cutoffs left no resolved deal to count, which a table of NaN does not explain."""
    if out.empty or out[metric].notna().any():
        return
    total = int(out["reached" if metric == "conversion" else "deals"].sum())
    if total == 0:
        return
    counted = int(out["counted"].sum())
    unit = "deal-stage pairs" if metric == "conversion" else "deals"
    cutoff = "reached_by" if metric == "conversion" else "created_by"
    if log.stale_after is None:
        why = (
            "Without `stale_after`, a deal that fell silent stays open for ever, so the "
            "cutoff (as_of minus the longest time to an outcome) falls near the start of "
            "the log. Set stale_after= when building the EventLog (e.g. stale_after='60D') "
            "so silent deals count as lost"
        )
    else:
        why = (
            f"The log is young next to stale_after={log.stale_after} plus the slow deals' "
            "time to an outcome. Use a longer log or a shorter stale_after"
        )
    other = (
        "metric='win_rate' or log.funnel() (which censors open deals instead)"
        if metric == "conversion"
        else "log.funnel() or log.kpis() (which count every deal)"
    )
    warn(
        f"log.trend(metric={metric!r}): every {metric} is NaN. Of {total:,} {unit}, "
        f"{counted:,} are early enough to count (before `{cutoff}`, when their outcome is "
        "almost always known) and none of those is resolved yet. "
        f"{why}, or use {other}."
    )


def _trend_by_stage(
    log: EventLog, metric: str, group: np.ndarray, G: int, head: pd.DataFrame, end_ns
) -> pd.DataFrame:
    S = log._n_stages
    cut = maturity_cutoffs(log)
    out = head.iloc[np.repeat(np.arange(G), S)].reset_index(drop=True)
    out["stage"] = np.tile(np.array(log.stages, dtype=object), G).astype(str)
    if metric == "conversion":
        every = stage_counts(log, group, G)
        c = stage_counts(log, group, G, cut)
        x = c["advanced"].reshape(-1)
        n = x + c["dropped"].reshape(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            conv = x / n
        low, high = _stats.wilson(x, n.astype(np.float64))
        out["reached"] = every["reached"].reshape(-1).astype(np.int64)
        out["counted"] = c["reached"].reshape(-1).astype(np.int64)
        for k in ("advanced", "dropped", "open"):
            out[k] = c[k].reshape(-1).astype(np.int64)
        out["conversion"] = conv
        out["conversion_low"] = low
        out["conversion_high"] = high
    else:
        v = log._visits()
        has = v.dwell != NAT
        g = group[v.deal] * S + v.stage
        counted = has & (v.entered <= cut[v.stage])
        km = km_table(g[counted], v.dwell[counted], v.censored[counted], G * S)
        out["visits"] = np.bincount(g[has], minlength=G * S).astype(np.int64)
        out["counted"] = km["n"].astype(np.int64)
        out["censored"] = km["censored"].astype(np.int64)
        out["mean"] = to_timedelta(km["mean"]).to_numpy()
        out["median"] = to_timedelta(km["q50"]).to_numpy()
        out["p75"] = to_timedelta(km["q75"]).to_numpy()
        out["p90"] = to_timedelta(km["q90"]).to_numpy()
    out["reached_by"] = log._timestamp(np.tile(cut, G))
    out["mature"] = np.repeat(end_ns, S) - 1 <= np.tile(cut, G)
    return out


def _trend_by_deal(
    log: EventLog, metric: str, group: np.ndarray, G: int, head: pd.DataFrame, end_ns
) -> pd.DataFrame:
    cut = resolution_cutoff(log)
    oc = log._outcome.astype(np.int64)
    ok = log._first_ns <= cut
    out = head.copy()
    out["deals"] = np.bincount(group, minlength=G).astype(np.int64)
    if metric == "win_rate":
        counts = np.bincount(group[ok] * 4 + oc[ok], minlength=G * 4).reshape(G, 4)
        won, lost, stale, open_ = (counts[:, k] for k in (V.WON, V.LOST, V.STALE, V.OPEN))
        n = won + lost + stale
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = won / n
        low, high = _stats.wilson(won, n.astype(np.float64))
        out["counted"] = counts.sum(axis=1).astype(np.int64)
        out["won"] = won.astype(np.int64)
        out["lost"] = lost.astype(np.int64)
        out["stale"] = stale.astype(np.int64)
        out["open"] = open_.astype(np.int64)
        out["win_rate"] = rate
        out["win_rate_low"] = low
        out["win_rate_high"] = high
    else:
        sel = ok & (oc != V.STALE)
        done = log._term_ns != NAT
        dur = np.where(done, log._term_ns - log._first_ns, log._as_of_ns - log._first_ns)
        km = km_table(group[sel], dur[sel], (oc == V.OPEN)[sel], G)
        out["counted"] = km["n"].astype(np.int64)
        out["censored"] = km["censored"].astype(np.int64)
        out["mean"] = to_timedelta(km["mean"]).to_numpy()
        out["median"] = to_timedelta(km["q50"]).to_numpy()
        out["p75"] = to_timedelta(km["q75"]).to_numpy()
        out["p90"] = to_timedelta(km["q90"]).to_numpy()
    out["created_by"] = log._timestamp(np.full(G, cut, dtype=np.int64))
    out["mature"] = end_ns - 1 <= cut
    if metric != "win_rate":  # new columns after the existing ones
        out["median_low"] = to_timedelta(km["q50_low"]).to_numpy()
        out["median_high"] = to_timedelta(km["q50_high"]).to_numpy()
    return out


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
    start_ns = to_timestamp(start, log._aware, "start")
    end_ns = to_timestamp(end, log._aware, "end")
    if not start_ns < end_ns:
        raise EventLogError(
            f"Parameters `start`={start!r} and `end`={end!r}: `start` must be before `end`."
        )
    if end_ns > log._as_of_ns:
        raise EventLogError(
            f"Parameter `end`={end!r} is after the log's as_of ({log.as_of}); nothing is "
            "known after as_of. Pass an earlier `end` or build the log with a later as_of."
        )
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
