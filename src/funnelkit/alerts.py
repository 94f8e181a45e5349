"""Alerts for scheduled monitoring: :func:`alerts` checks the last complete weeks of a log
against its own history, and against the thresholds a team sets.

Every statistical rule compares a week's count with what the **baseline** (the weeks
before) predicts, with the baseline's own uncertainty included, so that under a stable
process a rule fires in at most ``alpha`` of the weeks (per rule and stage; measured in
``benchmarks/alerts.py``):

``conversion`` (a drop)
    Of the stage's visits resolved in the week — advanced (a later stage or the win), lost,
    or declared stale (when the stale rule fires, ``stale_after`` after the deal's last
    event) — the share that advanced. Under the baseline's share ``p`` (a Jeffreys beta
    posterior from its advances and resolutions), the week's advances are beta-binomial;
    the rule fires when so few advances have a probability below ``alpha / 2``. The same
    test runs on the last two weeks pooled (at ``alpha / 2``), which catches a smaller drop
    a week later; together they keep ``alpha``. This weekly share of resolutions watches
    change; it is not the funnel's ``conversion`` (the Aalen–Johansen probability that a
    deal entering the stage eventually advances).
``dwell_p90`` (slower)
    Of the stage's visits completed in the week (advanced or lost; a stage passed over,
    with no time spent in it, is not a visit here), the share that took longer than the
    baseline's 90th percentile of dwell; tested the same way (expected about 10%, more is
    slower).
``stalled`` (more)
    Open deals at the week's end that have spent longer in their stage than the baseline's
    90th percentile of dwell. The count is compared with the baseline weeks' counts: it
    fires above the ``1 − alpha`` quantile of a negative binomial with the baseline's mean
    and variance (Poisson when not over-dispersed), widened for the baseline's size.
``bad_rows`` (more)
    Input rows of the week (by their time) dropped as bad rows (missing or unknown stage,
    bad amount, ...; rows whose time cannot be read have no week and are counted in the
    message), against the baseline's share, beta-binomial as above.

``threshold`` rules fire when a week's value crosses a limit the team set (see
``thresholds``), without a test.

Weeks run Monday to Sunday, UTC; a week is complete when it ends at or before
``log.as_of``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from . import _columns as C
from . import _validate as V
from .errors import EventLogError, InvalidParameterError
from .funnel import ADVANCE, LOST_CAUSE, log_subjects
from .quality import REASONS

if TYPE_CHECKING:
    from .log import EventLog

#: per window ("1W", "2W"): the week's successes and trials per stage, and the baseline's
_Counts = Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]

__all__ = ["ALERT_COLUMNS", "RULES", "THRESHOLDS", "alerts"]

#: the reason codes of :attr:`EventLog.rejects` (1 + position in ``REASONS``) of dropped rows
DROPPED_CODES = np.array(
    [1 + i for i, kind in enumerate(REASONS.values()) if kind == "dropped"], dtype=np.int8
)

#: the statistical rules, in the order of the table
RULES = ("conversion", "dwell_p90", "stalled", "bad_rows")
#: the metrics a threshold can be set on, and the direction that fires
THRESHOLDS = {
    "conversion": "below",
    "dwell_p90_days": "above",
    "stalled": "above",
    "bad_rows_share": "above",
}
#: the columns of :func:`alerts`, in order
ALERT_COLUMNS = (
    "week",
    "rule",
    "stage",
    "window",
    "value",
    "expected",
    "limit",
    "n",
    "p_value",
    "alert",
    "message",
)
_WEEK_NS = 7 * 86_400 * 10**9
_DAY_NS = 86_400 * 10**9
#: Monday 1970-01-05 00:00 UTC: weeks are counted from it
_MONDAY_NS = 4 * _DAY_NS


def _week(ns: np.ndarray) -> np.ndarray:
    """Week number (Monday-to-Sunday, UTC) of epoch-ns times."""
    return np.floor_divide(np.asarray(ns, dtype=np.int64) - _MONDAY_NS, _WEEK_NS)


def _week_start(w: int) -> pd.Timestamp:
    return pd.Timestamp(int(w) * _WEEK_NS + _MONDAY_NS, unit="ns", tz="UTC")


def alerts(
    log: EventLog,
    *,
    weeks: int = 1,
    baseline: int = 26,
    alpha: float = 0.01,
    thresholds: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Implementation of :meth:`funnelkit.EventLog.alerts` (documented there)."""
    limits = _check_thresholds(thresholds, list(log.stages))
    first_ns = int(log._first_ns.min())
    monitored = monitored_weeks(log._as_of_ns, first_ns, int(weeks), int(baseline), log._aware)
    return alerts_table(
        Exits.of_log(log), BadRows.of_log(log), monitored, list(log.stages), int(baseline),
        float(alpha), limits, log._aware,
    )  # fmt: skip


def last_week(as_of_ns: int) -> int:
    """The last complete week: the one that ends at or before ``as_of``."""
    return int(_week(np.array([as_of_ns]))[0]) - 1


def first_needed_week(as_of_ns: int, weeks: int, baseline: int) -> int:
    """The earliest week the alerts read: the first baseline week of the first week
    watched (visits resolved before it play no part)."""
    return last_week(as_of_ns) - int(weeks) - int(baseline)


def monitored_weeks(
    as_of_ns: int, first_ns: int, weeks: int, baseline: int, aware: bool
) -> np.ndarray:
    """The weeks watched, or the error that the log is too short for them."""
    last = last_week(as_of_ns)
    first_event = int(_week(np.array([first_ns]))[0])
    monitored = np.arange(last - weeks + 1, last + 1)
    if monitored[0] - 1 - baseline < first_event:
        have = last - first_event - 1
        start = pd.Timestamp(first_ns, unit="ns", tz="UTC" if aware else None)
        raise EventLogError(
            f"Alerts compare the last {weeks} complete week(s) with the {baseline} weeks "
            f"before them, but the log holds {max(have, 0)} complete week(s) before the last "
            f"two (it starts {start}). Pass a smaller `baseline`, or wait for more history."
        )
    return monitored


def alerts_table(
    ex: Exits,
    bad: BadRows,
    monitored: np.ndarray,
    stages: list[str],
    baseline: int,
    alpha: float,
    limits: dict[str, dict[str | None, float]],
    aware: bool,
) -> pd.DataFrame:
    """The alerts of the weeks ``monitored`` from the visits ``ex`` and the input rows per
    week ``bad`` — the one builder of both engines (:mod:`funnelkit.dask` gathers ``ex``
    and ``bad`` from its partitions)."""
    S = len(stages)
    rows: list[dict[str, Any]] = []
    for w in monitored.tolist():  # loop over the weeks watched
        base = (w - 1 - baseline, w - 2)  # the baseline ends before the two-week window
        q90 = _baseline_p90(ex, S, *base)
        rows += _conversion_rows(stages, ex, w, base, alpha)
        rows += _dwell_rows(stages, ex, w, base, alpha, q90)
        rows += _stalled_rows(stages, ex, w, base, alpha, q90)
        rows += _bad_row_rows(bad, w, base, alpha)
        rows += _threshold_rows(stages, ex, w, limits, q90, bad)
    out = pd.DataFrame(rows, columns=list(ALERT_COLUMNS))
    out["week"] = pd.to_datetime(out["week"], utc=True)
    if not aware:
        out["week"] = out["week"].dt.tz_localize(None)
    out["stage"] = out["stage"].astype("string")
    out["n"] = out["n"].astype("Int64")
    out["alert"] = out["alert"].astype(bool)
    return out


# =========================================================================== events
@dataclass(frozen=True)
class Exits:
    """Per visit (subject: a deal's stay in a stage): stage, entry, the time it was
    resolved and how (``cause``: 1 advanced, 2 lost, 3 stale, 0 open at as_of), dwell, the
    week of ``end``, and whether it is a completed visit with a duration."""

    stage: np.ndarray
    entry: np.ndarray
    cause: np.ndarray
    end: np.ndarray
    dwell: np.ndarray
    week: np.ndarray
    completed: np.ndarray

    @classmethod
    def of_log(cls, log: EventLog) -> Exits:
        sub = log_subjects(log, "implied")
        entry = sub.entry
        assert entry is not None
        cause = sub.c_adv.astype(np.int64)
        end = entry + sub.t_adv
        stale = log._outcome[sub.deal] == V.STALE
        if log.stale_after is not None:  # a silent deal drops when the stale rule fires
            fires = log._last_ns[sub.deal] + int(log.stale_after.value)
            drop = (cause == 0) & stale & (fires <= log._as_of_ns)
            cause = np.where(drop, 3, cause)
            end = np.where(drop, np.maximum(fires, entry), end)
        end = np.where(cause == 0, log._as_of_ns, end)
        dwell = end - entry
        # completed visits with a duration: a stage passed over (reached only because a
        # later one was) advances at once and is no dwell
        completed = ((cause == ADVANCE) & (dwell > 0)) | (cause == LOST_CAUSE)
        return cls(sub.stage, entry, cause, end, dwell, _week(end), completed)

    @classmethod
    def empty(cls) -> Exits:
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none, none, none, none, none, none.astype(bool))

    def since(self, week: int) -> Exits:
        """The visits still open or resolved in ``week`` or later: all the alerts from
        ``week`` on read (a visit resolved before is neither counted nor stalled then)."""
        keep = self.week >= week
        return Exits(*(getattr(self, f.name)[keep] for f in fields(self)))

    @classmethod
    def concat(cls, parts: list[Exits]) -> Exits:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))


def _in(week: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return (week >= lo) & (week <= hi)


def _baseline_p90(ex: Exits, S: int, lo: int, hi: int) -> np.ndarray:
    """Each stage's 90th percentile of dwell among visits completed (advanced or lost) in
    the baseline weeks; NaN without any."""
    done = ex.completed & _in(ex.week, lo, hi)
    out = np.full(S, np.nan)
    for s in range(S):  # loop over stages
        d = ex.dwell[done & (ex.stage == s)]
        if d.size:
            out[s] = float(np.quantile(d, 0.9, method="higher"))
    return out


@dataclass(frozen=True)
class BadRows:
    """Input rows per week (by their time): ``rows`` whose time can be read and of them
    ``dropped`` as bad rows, per distinct ``week`` (sorted); ``unplaced`` rows have no
    readable time."""

    week: np.ndarray
    rows: np.ndarray
    dropped: np.ndarray
    unplaced: int

    @classmethod
    def of_rows(cls, week: np.ndarray, readable: np.ndarray, dropped: np.ndarray) -> BadRows:
        """From per-row arrays: the row's week, whether its time can be read, whether it
        was dropped."""
        weeks, inverse = np.unique(week[readable], return_inverse=True)
        return cls(
            weeks,
            np.bincount(inverse, minlength=weeks.size),
            np.bincount(inverse, weights=dropped[readable], minlength=weeks.size).astype(np.int64),
            int((~readable).sum()),
        )

    @classmethod
    def of_log(cls, log: EventLog) -> BadRows:
        src = log._source
        times = C.parse_times(
            C.column(src, log._settings["time"]), log._settings.get("date_format")
        )
        readable = ~(times.null | times.unparseable | times.mixed_tz)
        rows, reasons = log._reject_rows
        dropped = np.zeros(readable.size, dtype=bool)
        dropped[rows[np.isin(reasons, DROPPED_CODES)]] = True
        return cls.of_rows(_week(np.where(readable, times.ns, 0)), readable, dropped)

    @classmethod
    def merge(cls, parts: list[BadRows]) -> BadRows:
        week = np.concatenate([p.week for p in parts])
        weeks, inverse = np.unique(week, return_inverse=True)

        def add(name: str) -> np.ndarray:
            values = np.concatenate([getattr(p, name) for p in parts])
            return np.bincount(inverse, weights=values, minlength=weeks.size).astype(np.int64)

        return cls(weeks, add("rows"), add("dropped"), sum(p.unplaced for p in parts))

    def window(self, lo: int, hi: int) -> tuple[int, int]:
        """Dropped rows and readable rows in weeks ``lo`` to ``hi``."""
        m = _in(self.week, lo, hi)
        return int(self.dropped[m].sum()), int(self.rows[m].sum())


# =========================================================================== tests
def _beta_binomial_low(x: int, n: int, x0: float, n0: float) -> float:
    """P(X ≤ x), X ~ beta-binomial(n) with the baseline's Jeffreys posterior."""
    return float(stats.betabinom.cdf(x, n, x0 + 0.5, n0 - x0 + 0.5))


def _row(week: int, rule: str, stage: str | None, window: str, **kw: Any) -> dict[str, Any]:
    return {"week": _week_start(week), "rule": rule, "stage": stage, "window": window, **kw}


def _share_rows(
    rule: str,
    w: int,
    alpha: float,
    counts: _Counts,
    low_is_bad: bool,
    names: list[str | None],
    message: Callable[[str | None, int, int, str, float, float], str],
) -> list[dict[str, Any]]:
    """Beta-binomial tests of a share, for the week and the two weeks to it.

    ``counts[window] = (x, n, x0, n0)``, one entry per name (a stage, or ``None`` for a
    log-wide share): the week's successes and trials and the baseline's. ``low_is_bad``:
    fire on too few successes (conversion), else too many. ``message(name, x, n, window,
    expected, p)`` words a firing row.
    """
    rows = []
    for window, (x, n, x0, n0) in counts.items():  # loop over the two windows
        for s, name in enumerate(names):  # loop over stages
            if n[s] == 0 or n0[s] == 0:
                continue
            xs, ns, b, bn = int(x[s]), int(n[s]), float(x0[s]), float(n0[s])
            if low_is_bad:
                p = _beta_binomial_low(xs, ns, b, bn)
            else:  # too many: few failures
                p = _beta_binomial_low(ns - xs, ns, bn - b, bn)
            expected = (b + 0.5) / (bn + 1.0)
            ok = p >= alpha / 2
            rows.append(
                _row(
                    w,
                    rule,
                    name,
                    window,
                    value=xs / ns,
                    expected=expected,
                    limit=_limit(ns, b, bn, alpha / 2, low_is_bad),
                    n=ns,
                    p_value=p,
                    alert=not ok,
                    message="" if ok else message(name, xs, ns, window, expected, p),
                )
            )
    return rows


def _stage_message(label: str) -> Callable[[str | None, int, int, str, float, float], str]:
    def message(name: str | None, x: int, n: int, window: str, expected: float, p: float) -> str:
        return (
            f"{name}: {label} {x / n:.1%} over {n:,} in {window.lower()}, "
            f"against {expected:.1%} before (p = {p:.2g})"
        )

    return message


def _limit(n: int, x0: float, n0: float, level: float, low_is_bad: bool) -> float:
    """The share of ``n`` at which the beta-binomial test starts to fire (at or below it
    for ``low_is_bad``, at or above it otherwise); NaN when no count would fire."""
    a, b = x0 + 0.5, n0 - x0 + 0.5
    if low_is_bad:
        k = float(stats.betabinom.ppf(level, n, a, b)) - 1  # the largest count that fires
    else:
        k = n - (float(stats.betabinom.ppf(level, n, b, a)) - 1)
    return k / n if 0 <= k <= n else np.nan


def _window_counts(
    ex_week: np.ndarray,
    stage: np.ndarray,
    good: np.ndarray,
    total: np.ndarray,
    w: int,
    base: tuple[int, int],
    S: int,
) -> _Counts:
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    b = _in(ex_week, *base) & total
    x0 = np.bincount(stage[b & good], minlength=S)
    n0 = np.bincount(stage[b], minlength=S)
    for window, lo in (("1W", w), ("2W", w - 1)):
        m = _in(ex_week, lo, w) & total
        out[window] = (
            np.bincount(stage[m & good], minlength=S),
            np.bincount(stage[m], minlength=S),
            x0,
            n0,
        )
    return out


def _conversion_rows(
    stages: list[str], ex: Exits, w: int, base: tuple[int, int], alpha: float
) -> list[dict[str, Any]]:
    resolved = ex.cause > 0
    counts = _window_counts(ex.week, ex.stage, ex.cause == ADVANCE, resolved, w, base, len(stages))
    return _share_rows(
        "conversion", w, alpha, counts, True, list(stages), _stage_message("conversion")
    )


def _dwell_rows(
    stages: list[str], ex: Exits, w: int, base: tuple[int, int], alpha: float, q90: np.ndarray
) -> list[dict[str, Any]]:
    done = ex.completed
    q = q90[ex.stage]
    slow = np.isfinite(q) & (ex.dwell > np.nan_to_num(q, nan=np.inf))
    counts = _window_counts(ex.week, ex.stage, slow, done, w, base, len(stages))
    return _share_rows(
        "dwell_p90",
        w,
        alpha,
        counts,
        False,
        list(stages),
        _stage_message("visits slower than p90"),
    )


def _stalled_counts(ex: Exits, weeks: np.ndarray, q90: np.ndarray, S: int) -> np.ndarray:
    """(len(weeks), S): visits open at each week's end (Sunday 24:00) that had spent
    longer than the stage's p90 there."""
    t = np.asarray((weeks + 1) * _WEEK_NS + _MONDAY_NS, dtype=np.int64)
    out = np.zeros((weeks.size, S), dtype=np.int64)
    for s in range(S):  # loop over stages
        if not np.isfinite(q90[s]):
            continue
        m = ex.stage == s
        start = ex.entry[m] + int(q90[s])  # stalled from here ...
        stop = np.where(ex.cause[m] == 0, np.iinfo(np.int64).max, ex.end[m])  # ... to here
        keep = start < stop
        a, b = np.sort(start[keep]), np.sort(stop[keep])
        out[:, s] = np.searchsorted(a, t, side="left") - np.searchsorted(b, t, side="left")
    return out


def _stalled_rows(
    stages: list[str], ex: Exits, w: int, base: tuple[int, int], alpha: float, q90: np.ndarray
) -> list[dict[str, Any]]:
    S = len(stages)
    weeks = np.arange(base[0], w + 1)
    counts = _stalled_counts(ex, weeks, q90, S)
    past = counts[: base[1] - base[0] + 1]
    now = counts[-1]
    rows = []
    for s, name in enumerate(stages):  # loop over stages
        if not np.isfinite(q90[s]):
            continue
        m = float(past[:, s].mean())
        v = float(past[:, s].var(ddof=1)) if past.shape[0] > 1 else m
        k = past.shape[0]
        var = max(v, m) * (1 + 1 / k)  # the baseline's own uncertainty
        x = int(now[s])
        if m <= 0:
            p = 0.0 if x > 0 else 1.0
            lim = 0.0
        elif var > m * 1.0001:  # over-dispersed: negative binomial with that mean, variance
            r = m * m / (var - m)
            prob = r / (r + m)
            p = float(stats.nbinom.sf(x - 1, r, prob))
            lim = float(stats.nbinom.isf(alpha, r, prob))
        else:
            p = float(stats.poisson.sf(x - 1, m))
            lim = float(stats.poisson.isf(alpha, m))
        ok = p >= alpha
        days = q90[s] / _DAY_NS
        rows.append(
            _row(
                w,
                "stalled",
                name,
                "1W",
                value=float(x),
                expected=m,
                limit=lim,
                n=int(x),
                p_value=p,
                alert=not ok,
                message=""
                if ok
                else f"{name}: {x:,} open deals past {days:.0f} days (the stage's p90) at "
                f"the week's end, against {m:.1f} a week before (p = {p:.2g})",
            )
        )
    return rows


def _bad_row_rows(
    bad: BadRows, w: int, base: tuple[int, int], alpha: float
) -> list[dict[str, Any]]:
    x0, n0 = bad.window(*base)
    counts = {}
    for window, lo in (("1W", w), ("2W", w - 1)):
        x, n = bad.window(lo, w)
        counts[window] = (np.array([x]), np.array([n]), np.array([x0]), np.array([n0]))

    def message(name: str | None, x: int, n: int, window: str, expected: float, p: float) -> str:
        text = (
            f"{x:,} of {n:,} input rows dropped as bad ({x / n:.1%}) in "
            f"{window.lower()}, against {expected:.1%} before (p = {p:.2g})"
        )
        if bad.unplaced:
            text += f"; {bad.unplaced:,} rows without a readable time are not in any week"
        return text

    return _share_rows("bad_rows", w, alpha, counts, False, [None], message)


# =========================================================================== thresholds
def _check_thresholds(thresholds: Any, stages: list[str]) -> dict[str, dict[str | None, float]]:
    """``{"conversion": {"Demo": 0.5}, "stalled": 20, ...}`` → per metric, per stage
    (``None``: every stage) limit."""
    if thresholds is None:
        return {}
    if not isinstance(thresholds, Mapping):
        raise InvalidParameterError(
            "Parameter `thresholds` must be a mapping such as {'conversion': {'Demo': 0.5}, "
            f"'stalled': 20}}; got {type(thresholds).__name__}."
        )
    out: dict[str, dict[str | None, float]] = {}
    for metric, value in thresholds.items():
        if metric not in THRESHOLDS:
            raise InvalidParameterError(
                f"`thresholds` has an unknown metric {metric!r}; known: {', '.join(THRESHOLDS)}."
            )
        per = value if isinstance(value, Mapping) else {None: value}
        if metric == "bad_rows_share" and any(k is not None for k in per):
            raise InvalidParameterError(
                "`thresholds['bad_rows_share']` is one number, not per stage."
            )
        clean: dict[str | None, float] = {}
        for stage, limit in per.items():
            if stage is not None and stage not in stages:
                raise InvalidParameterError(
                    f"`thresholds[{metric!r}]` names stage {stage!r}, which is not a stage of "
                    f"the log ({', '.join(stages)})."
                )
            if (
                isinstance(limit, bool)
                or not isinstance(limit, int | float)
                or not np.isfinite(limit)
            ):
                raise InvalidParameterError(
                    f"`thresholds[{metric!r}]` for {stage or 'every stage'} must be a number; "
                    f"got {limit!r}."
                )
            clean[stage] = float(limit)
        out[metric] = clean
    return out


def _threshold_rows(
    stages: list[str],
    ex: Exits,
    w: int,
    limits: dict[str, dict[str | None, float]],
    q90: np.ndarray,
    bad: BadRows,
) -> list[dict[str, Any]]:
    if not limits:
        return []
    S = len(stages)
    in_w = ex.week == w
    values: dict[str, np.ndarray] = {}
    ns: dict[str, np.ndarray] = {}
    res = in_w & (ex.cause > 0)
    n_res = np.bincount(ex.stage[res], minlength=S)
    adv = np.bincount(ex.stage[res & (ex.cause == ADVANCE)], minlength=S)
    with np.errstate(invalid="ignore", divide="ignore"):
        values["conversion"] = np.where(n_res > 0, adv / np.maximum(n_res, 1), np.nan)
    ns["conversion"] = n_res
    done = in_w & ex.completed
    p90 = np.full(S, np.nan)
    n_done = np.bincount(ex.stage[done], minlength=S)
    for s in range(S):  # loop over stages
        d = ex.dwell[done & (ex.stage == s)]
        if d.size:
            p90[s] = float(np.quantile(d, 0.9, method="higher")) / _DAY_NS
    values["dwell_p90_days"], ns["dwell_p90_days"] = p90, n_done
    stalled = _stalled_counts(ex, np.array([w]), q90, S)[0].astype(np.float64)
    values["stalled"], ns["stalled"] = stalled, stalled.astype(np.int64)
    rows = []
    for metric, per in limits.items():  # loop over the thresholds set
        if metric == "bad_rows_share":
            x, n = bad.window(w, w)
            if n:
                v, lim = x / n, per[None]
                fire = v > lim
                rows.append(
                    _row(
                        w,
                        "threshold_bad_rows_share",
                        None,
                        "1W",
                        value=v,
                        expected=np.nan,
                        limit=lim,
                        n=n,
                        p_value=np.nan,
                        alert=fire,
                        message=f"bad rows {v:.1%} above the threshold {lim:.1%}" if fire else "",
                    )
                )
            continue
        below = THRESHOLDS[metric] == "below"
        for s, name in enumerate(stages):  # loop over stages
            limit = per.get(name, per.get(None))
            v = values[metric][s]
            if limit is None or not np.isfinite(v):
                continue
            lim = limit
            fire = v < lim if below else v > lim
            word = "below" if below else "above"
            rows.append(
                _row(
                    w,
                    f"threshold_{metric}",
                    name,
                    "1W",
                    value=float(v),
                    expected=np.nan,
                    limit=lim,
                    n=int(ns[metric][s]),
                    p_value=np.nan,
                    alert=bool(fire),
                    message=f"{name}: {metric} {v:.3g} {word} the threshold {lim:.3g}"
                    if fire
                    else "",
                )
            )
    return rows
