"""Key stages: statistical flags with effect sizes, intervals and q-values (DESIGN §4).

Six signals, each a function of statistics the engine provides — :class:`LogSource`
from an in-memory log's integer arrays, :class:`funnelkit._summary.SummarySource` from a
Dask log's partitions — turned into the table by one builder, :func:`signal_table` (no
Python loop over deals or events; loops run over stages, segments and bootstrap draws
only):

* ``leverage`` — exact what-if on the absorbing Markov chain (:mod:`funnelkit.markov`) with
  a deal-level bootstrap interval;
* ``dropoff`` — the stage's loss rate against a baseline (benchmark, previous period, or
  the other segments);
* ``stall`` — visits that last longer than the stage's median end in a loss more often;
* ``heterogeneity`` — conversion differs across segments;
* ``change`` — conversion differs for deals created before and after a date;
* ``dwell`` — time in the stage differs: a segment against the rest, or deals created
  after a date against those before (log-rank, Kaplan–Meier median ratio).

``dropoff``, ``heterogeneity`` and ``change`` compare the conversion of ``funnel()`` — the
Aalen–Johansen estimate, open deals censored — and its loss rate 1 − conversion, with the
tests of :mod:`funnelkit._ajtests` (effective counts; unresolved mass allocated
least-favourably). Tests are corrected with Benjamini–Hochberg within each signal family;
a test flags only when its interval also excludes "no effect" on the bad side.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from . import _stats
from . import _validate as V
from ._ajtests import (
    _FIELDS,
    Rate,
    conversion_rates,
    many_groups,
    mover,
    one_sample,
    rate_interval,
    two_groups,
)
from ._columns import NAT
from ._periods import bh, newcombe, period_split
from ._segments import is_visit_level, normalize_by, path_segments, segments
from .errors import MAX_BOOT, EventLogError, InvalidParameterError, int_param
from .funnel import (
    Subjects,
    competing_subjects,
    conversion_estimates,
    log_estimates,
    log_subjects,
    stage_segments,
    stage_status,
    stale_ns,
)
from .markov import (
    AbsorbingChain,
    ChainData,
    batch_size,
    deal_patterns,
    exit_probabilities,
    leverage_batch,
    pattern_bootstrap,
    pattern_chain,
)

if TYPE_CHECKING:
    from .log import EventLog

__all__ = ["DEFAULT_MIN_EFFECT", "SIGNALS", "key_stages"]

#: the signals, in output order
SIGNALS = ("leverage", "dropoff", "stall", "heterogeneity", "change", "dwell")
#: tested signal families (Benjamini–Hochberg runs within each)
FAMILIES = ("dropoff", "stall", "heterogeneity", "change", "dwell")
#: materiality thresholds (see ``key_stages``: units differ per signal)
DEFAULT_MIN_EFFECT: dict[str, float] = {
    "leverage": 0.05,
    "dropoff": 0.05,
    "stall": 0.10,
    "heterogeneity": 0.10,
    "change": 0.05,
    "dwell": 0.25,
}
COLUMNS = [
    "stage",
    "signal",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
    "is_key",
    "reason",
    "segment",
    "metric",
    "value",
    "baseline",
    "n_deals",
    "test",
    "alternative",
    "dwell_threshold",
]
NO_BASELINE = (
    "no baseline: pass benchmark= or by= (deals before and after a date are compared by "
    "the change signal)"
)
_DAY_NS = 86_400 * 10**9
_HOUR_NS = 3_600 * 10**9
_MISSING = "(missing)"
#: subject rows per Aalen–Johansen call of the segment-vs-rest drop-off
_REST_ROWS = 2_000_000
#: the stall table counts into at most this many (stage, hour) cells without sorting
_DENSE_CELLS = 1 << 23


# --------------------------------------------------------------------------- formatting
def _pct(p: float) -> str:
    return f"{100 * p:.0f}%"


def _pct1(p: float) -> str:
    return f"{100 * p:.1f}%"


def _pval(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"


def _days(ns: int) -> str:
    """A whole number of days or hours (stall thresholds are rounded to one of them)."""
    if ns % _DAY_NS == 0:
        d = ns // _DAY_NS
        return f"{d} day" if d == 1 else f"{d} days"
    h = ns / _HOUR_NS
    return f"{h:.0f} hour" if h == 1 else f"{h:.0f} hours"


def _days_short(ns: float) -> str:
    """A duration for the reasons: days with one decimal, hours below a day."""
    if ns < _DAY_NS:
        return f"{ns / _HOUR_NS:.1f} hours"
    return f"{ns / _DAY_NS:.1f} days"


def _points(d: float) -> str:
    """A difference of proportions in percentage points, signed."""
    v = round(100 * d)
    return "0 points" if v == 0 else f"{v:+d} point" + ("" if abs(v) == 1 else "s")


def _span(lo: float, hi: float) -> str:
    a, b = round(100 * lo), round(100 * hi)
    return f"{a:+d} to {b:+d}".replace("+0 ", "0 ").replace("-0 ", "0 ")


def _level(opt: _Options) -> str:
    return f"{100 * (1 - opt.alpha):g}%"


# --------------------------------------------------------------------------- estimates
def _subjects(log: EventLog, opt: _Options) -> tuple[Subjects, np.ndarray, pd.DataFrame]:
    """The conversion subjects of ``funnel()`` (one per deal and stage reached, implied
    skips), the segment of each (0 without ``by``; a visit attribute: the holder when the
    deal reached the stage) and the segment labels. Computed once per call."""
    if "subjects" not in opt.cache:
        if opt.by and is_visit_level(log, opt.by):
            st = stage_status(log, "implied")
            sub = competing_subjects(log, st)
            seg_m, labels = stage_segments(log, opt.by, st.entry_i)
            seg = seg_m[sub.deal, sub.stage].astype(np.int64)
        else:  # the lighter per-deal path of funnel() (the same subjects)
            sub = log_subjects(log, "implied")
            if opt.by:
                seg_d, labels = segments(log, opt.by)
                opt.cache["deal_segments"] = seg_d
                seg = seg_d[sub.deal].astype(np.int64)
            else:
                seg, labels = np.zeros(sub.deal.size, dtype=np.int64), pd.DataFrame(index=[0])
        opt.cache["subjects"] = (sub, seg, labels)
    return opt.cache["subjects"]


def _rates(
    log: EventLog, sub: Subjects, group: np.ndarray, n_groups: int, z: float, rows=None
) -> Rate:
    """The Aalen–Johansen conversion of ``funnel()`` per (group, stage) — index
    ``group × n_stages + stage`` — of the subjects ``rows`` (all by default) in their
    ``group``."""
    S = log._n_stages
    take = slice(None) if rows is None else rows
    g = group * S + sub.stage[take]
    aj = conversion_estimates(  # the conversion clock only: the win rate is not read
        (g, sub.t_adv[take], sub.c_adv[take], None, None),
        n_groups * S,
        stale_ns(log.stale_after),
    )
    return conversion_rates(aj, np.bincount(g, minlength=n_groups * S), z)


def _rest_rates(log: EventLog, sub: Subjects, seg: np.ndarray, n_seg: int, z: float) -> Rate:
    """Per (segment k, stage): the conversion of every subject outside segment k (the
    "other deals" of a segment-vs-rest comparison). Segments in blocks of at most
    ``_REST_ROWS`` subject rows."""
    per = max(1, _REST_ROWS // max(seg.size, 1))
    parts = []
    for k0 in range(0, n_seg, per):  # loop over blocks of segments
        ks = np.arange(k0, min(n_seg, k0 + per))
        idx = [np.flatnonzero(seg != k) for k in ks]  # loop over segments
        rows = np.concatenate(idx)
        group = np.repeat(np.arange(ks.size), [i.size for i in idx])
        parts.append(_rates(log, sub, group, ks.size, z, rows))
    return Rate(*(np.concatenate([getattr(r, f) for r in parts]) for f in _FIELDS))


class LogSource:
    """What the signals read, from an in-memory log: each statistic computed on first
    use, once per call. The Dask engine has the same attributes computed from its
    partitions (:class:`funnelkit._summary.SummarySource`); the signals read them only."""

    def __init__(self, log: EventLog, opt: _Options) -> None:
        self.log = log
        self.stages = list(log.stages)
        self._opt = opt

    @cached_property
    def whole(self) -> Rate:
        """The funnel's conversion per stage ``(S,)`` (``funnel()``'s own estimate)."""
        log = self.log
        aj = log_estimates(log, "implied", [], np.zeros(log.n_deals, dtype=np.int64), 1)
        sub, _, _ = _subjects(log, self._opt)
        return conversion_rates(aj, np.bincount(sub.stage, minlength=log._n_stages), self._opt.z)

    @cached_property
    def own(self) -> tuple[Rate, pd.DataFrame]:
        """The conversion per segment and stage ``(segments × S,)`` and the segments
        (with deal attributes, ``funnel(by=...)``'s own estimate)."""
        log, opt = self.log, self._opt
        sub, seg, labels = _subjects(log, opt)
        if opt.by and is_visit_level(log, opt.by):
            return _rates(log, sub, seg, len(labels), opt.z), labels
        seg_d = opt.cache["deal_segments"] if opt.by else np.zeros(log.n_deals, dtype=np.int64)
        aj = log_estimates(log, "implied", list(opt.by), seg_d, len(labels))
        S = log._n_stages
        deals = np.bincount(seg * S + sub.stage, minlength=len(labels) * S)
        return conversion_rates(aj, deals, opt.z), labels

    @cached_property
    def rest(self) -> Rate:
        """The conversion of every segment's other deals ``(segments × S,)``."""
        sub, seg, labels = _subjects(self.log, self._opt)
        return _rest_rates(self.log, sub, seg, len(labels), self._opt.z)

    @cached_property
    def since(self) -> Rate:
        """The conversion of the deals created before ``period`` and since ``(2 × S,)``."""
        assert self._opt.period_ns is not None
        group = (self.log._first_ns >= self._opt.period_ns).astype(np.int64)
        sub, _, _ = _subjects(self.log, self._opt)
        return _rates(self.log, sub, group[sub.deal], 2, self._opt.z)

    @cached_property
    def stall(self) -> StallTable:
        return StallTable.of_log(self.log)

    def leverage_rows(self, opt: _Options) -> list[dict[str, Any]]:
        log = self.log
        cd = pattern_chain(deal_patterns(log), log._catalogue, log._kind)
        return leverage_from_patterns(list(log.stages), cd, opt)

    @cached_property
    def first_visits(self) -> FirstVisits:
        return FirstVisits.of_log(self.log, self._opt)


@dataclass(frozen=True)
class StallTable:
    """The first visits that ended (advanced, or lost in the stage) per stage and
    **hour bucket** (``bucket`` = dwell in hours rounded up; 0 for no time): how many,
    how many advanced, their shortest and longest dwell (ns). Sorted by stage and bucket.
    Enough for the stall test exactly: the median's bucket fixes the threshold (a whole
    hour, or day from two days on), and the test counts visits up to it. Tables of
    parts of a log merge into the table of the log."""

    stage: np.ndarray
    bucket: np.ndarray
    n: np.ndarray
    advanced: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of_log(cls, log: EventLog) -> StallTable:
        S = log._n_stages
        v = log._visits()
        nxt = v.next
        # how each first visit ended: advanced (a later stage or won) or lost here; open,
        # stale (silent: when it died is unknown) and backward exits are not in the test
        terminal = (nxt >= S) & (nxt < len(log._catalogue))
        kind = log._kind[np.where(terminal, nxt, 0)]
        advanced = ((nxt < S) & (nxt > v.stage)) | (terminal & (kind == V.WON_KIND))
        lost = terminal & (kind == V.LOST_KIND)
        keep = (v.visit == 1) & (advanced | lost) & (v.dwell != NAT)
        dwell = v.dwell[keep].astype(np.int64)
        ones = np.ones(dwell.size, dtype=np.int64)
        return cls._grouped(
            v.stage[keep].astype(np.int64), -(-dwell // _HOUR_NS), ones,
            advanced[keep].astype(np.int64), dwell, dwell,
        )  # fmt: skip

    @classmethod
    def empty(cls) -> StallTable:
        return cls(*(np.zeros(0, dtype=np.int64) for _ in fields(cls)))

    @classmethod
    def merge(cls, parts: Sequence[StallTable]) -> StallTable:
        return cls._grouped(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls))
        )

    @classmethod
    def _grouped(cls, stage, bucket, n, advanced, low, high) -> StallTable:
        if stage.size and stage.min() >= 0 and bucket.min() >= 0:
            width = int(bucket.max()) + 1
            size = (int(stage.max()) + 1) * width
            if size <= max(4 * stage.size, 1 << 16) and size <= _DENSE_CELLS:
                return cls._dense(stage * width + bucket, width, size, n, advanced, low, high)
        order = np.lexsort((bucket, stage))
        stage, bucket = stage[order], bucket[order]
        new = np.ones(stage.size, dtype=bool)
        new[1:] = (stage[1:] != stage[:-1]) | (bucket[1:] != bucket[:-1])
        at = np.flatnonzero(new)
        if at.size == 0:
            return cls.empty()
        return cls(
            stage[at],
            bucket[at],
            np.add.reduceat(n[order], at),
            np.add.reduceat(advanced[order], at),
            np.minimum.reduceat(low[order], at),
            np.maximum.reduceat(high[order], at),
        )

    @classmethod
    def _dense(cls, key, width, size, n, advanced, low, high) -> StallTable:
        """:meth:`_grouped` by counting into one cell per (stage, bucket) — no sort
        (a lexsort of 5M first visits took 1.1 s of a 1M-deal log's key stages)."""
        big = np.iinfo(np.int64).max
        total = np.bincount(key, weights=n, minlength=size)
        cells = np.flatnonzero(np.bincount(key, minlength=size))
        adv = np.bincount(key, weights=advanced, minlength=size)
        lo = np.full(size, big, dtype=np.int64)
        np.minimum.at(lo, key, np.asarray(low, dtype=np.int64))
        hi = np.full(size, -big, dtype=np.int64)
        np.maximum.at(hi, key, np.asarray(high, dtype=np.int64))
        return cls(
            cells // width,
            cells % width,
            np.rint(total[cells]).astype(np.int64),
            np.rint(adv[cells]).astype(np.int64),
            lo[cells],
            hi[cells],
        )

    def threshold(self, rows: slice) -> int:
        """The stall threshold of one stage's rows: its ended first visits' median dwell,
        rounded up to a whole day (hour below two days; at least one), in integers."""
        n, bucket = self.n[rows], self.bucket[rows]
        total = int(n.sum())
        cum = np.cumsum(n)
        j1 = int(np.searchsorted(cum, (total - 1) // 2, side="right"))
        j2 = int(np.searchsorted(cum, total // 2, side="right"))
        if j1 == j2:  # the median lies in one bucket, and the rounding is the same in all of it
            h = int(bucket[j1])
            return max(h, 1) * _HOUR_NS if h <= 48 else -(-h // 24) * _DAY_NS
        twice = int(self.high[rows][j1]) + int(self.low[rows][j2])  # two middle values
        unit = _DAY_NS if twice >= 4 * _DAY_NS else _HOUR_NS
        return max(-(-twice // (2 * unit)), 1) * unit


def _est(p: float, unresolved: float) -> str:
    """A rate for the reasons, saying how much of it is not resolved yet."""
    if unresolved < 0.005:
        return _pct(p)
    return f"{_pct(p)} (est., {_pct(unresolved)} unresolved)"


def _not_estimable(stage: str, where: str) -> str:
    return f"{stage}: not tested, no deal {where} has advanced or been lost here yet"


def _effective(stage: str, n: float, what: str, min_deals: int) -> str:
    return (
        f"{stage}: not tested, only {n:.0f} resolved deals' worth of data for {what} "
        f"(effective number; min_deals={min_deals})"
    )


def _two_group_row(
    stage: str,
    signal_metric: tuple[str, str],
    a: Rate,
    b: Rate,
    opt: _Options,
    *,
    alternative: str,
    names: tuple[str, str],
    describe: Callable[[float, float], str],
    material: Callable[[float], bool],
    segment: str | None = None,
) -> dict[str, Any]:
    """A row comparing the rate of group ``a`` with that of group ``b`` (one group each,
    independent deals): :func:`two_groups` (``alternative``), the MOVER interval of the
    difference and ``describe(p, effect)`` as the reason; not tested when a group has
    fewer than ``min_deals`` effective deals (``names`` the two groups, for that
    reason)."""
    signal, metric = signal_metric
    r1, r0 = float(a.p[0]), float(b.p[0])
    kw = dict(segment=segment, value=r1, baseline=r0, n_deals=int(a.deals[0] + b.deals[0]))
    for r, who in ((a, names[0]), (b, names[1])):
        if not np.isfinite(r.p[0]):
            return _row(stage, signal, metric, reason=_not_estimable(stage, f"of {who}"), **kw)
    small = int(np.argmin([a.n[0], b.n[0]]))
    if min(a.n[0], b.n[0]) < opt.min_deals:
        n = min(a.n[0], b.n[0])
        return _row(
            stage, signal, metric, reason=_effective(stage, n, names[small], opt.min_deals), **kw
        )
    p, test = two_groups(a, b, alternative)
    lo, hi = mover(a, b)
    eff = r1 - r0
    return _row(
        stage,
        signal,
        metric,
        effect=eff,
        ci_low=float(lo[0]),
        ci_high=float(hi[0]),
        p_value=p,
        reason=describe(p, eff),
        test=test,
        alternative=alternative,
        _material=material(eff),
        **kw,
    )


# --------------------------------------------------------------------------- context
@dataclass
class _Options:
    by: list[str]
    period_ns: int | None
    period_label: str
    benchmark: dict[str, float] | None
    alpha: float
    z: float
    uplift: float
    n_boot: int
    seed: int | None
    min_deals: int
    min_effect: dict[str, float]
    progress: Callable[[int, int], None] | None
    cache: dict[str, Any] = field(default_factory=dict)


def _row(stage: str, signal: str, metric: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "stage": stage,
        "signal": signal,
        "effect": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p_value": np.nan,
        "q_value": np.nan,
        "is_key": False,
        "reason": "",
        "segment": None,
        "metric": metric,
        "value": np.nan,
        "baseline": np.nan,
        "n_deals": 0,
        "test": "none",
        "alternative": "",
        "dwell_threshold": NAT,
        "_material": False,
    }
    row.update(kw)
    return row


def _too_few(stage: str, n: int, what: str, min_deals: int) -> str:
    return f"{stage}: not tested, only {n} {what} (min_deals={min_deals})"


def typed_table(out: pd.DataFrame) -> pd.DataFrame:
    """The key-stage columns in order with their dtypes (shared with the Dask engine)."""
    out = out[COLUMNS]
    out = out.astype(
        {
            "effect": np.float64,
            "ci_low": np.float64,
            "ci_high": np.float64,
            "p_value": np.float64,
            "q_value": np.float64,
            "is_key": bool,
            "value": np.float64,
            "baseline": np.float64,
            "n_deals": np.int64,
        }
    )
    for col in ("stage", "signal", "reason", "metric", "test", "alternative"):
        out[col] = out[col].astype(str)
    out["dwell_threshold"] = pd.to_timedelta(
        out["dwell_threshold"].to_numpy(dtype=np.int64).view("timedelta64[ns]")
    )
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- leverage
def leverage_from_patterns(
    stages: list[str], cd: ChainData, opt: _Options
) -> list[dict[str, Any]]:
    """The leverage rows from the deals' patterns (:func:`funnelkit.markov.pattern_chain`
    of :func:`~funnelkit.markov.deal_patterns`: the in-memory log's, or the Dask
    partitions' merged). The chain's counts are the patterns' sums; the bootstrap draws
    pattern multiplicities (:func:`~funnelkit.markov.pattern_bootstrap`), the same
    draws in both engines."""
    S, n_states = cd.n_stages, len(cd.states)
    m = cd.deals.astype(np.float64)
    counts = np.asarray(cd.exits.T @ m).reshape(S, n_states)
    st = np.asarray(cd.start.T @ m).reshape(-1)
    if st.sum() <= 0:
        raise EventLogError("The log has no deals; a chain needs at least one.")
    won, lost = cd.kind == V.WON_KIND, cd.kind == V.LOST_KIND
    chain = AbsorbingChain(tuple(cd.states), S, counts, st / st.sum(), won, lost)
    loss, forward = chain.loss_mask, chain.forward
    probs = chain.probabilities
    base_arr, after = leverage_batch(
        probs, chain.start, chain.won, loss=loss, forward=forward, uplift=opt.uplift
    )
    base = float(base_arr)
    # deals with at least one completed exit from the stage
    coo = cd.exits.tocoo()
    has = np.zeros((cd.deals.size, max(S, 1)), dtype=bool)
    has[coo.row, coo.col // n_states] = True
    per_stage = (has.T.astype(np.float64) @ m).astype(np.int64)
    boot = np.full((opt.n_boot, S), np.nan)
    rng = np.random.default_rng(np.random.SeedSequence(opt.seed).spawn(2)[0])
    block = batch_size(S, n_states)
    for i in range(0, opt.n_boot, block):  # loop over blocks of bootstrap draws
        # the draws of one block at a time (the same draws, in the same order, as all at
        # once): memory O(block × stages²) whatever the number of draws
        size = min(block, opt.n_boot - i)
        progress = _offset(opt.progress, i, opt.n_boot)
        b_counts, b_starts = pattern_bootstrap(cd, size, rng, progress)
        b_starts /= b_starts.sum(axis=1, keepdims=True)
        b_base, b_after = leverage_batch(
            exit_probabilities(b_counts),
            b_starts,
            chain.won,
            loss=loss,
            forward=forward,
            uplift=opt.uplift,
        )
        boot[i : i + size] = b_after - b_base[:, None]
    return leverage_rows(stages, probs, loss, base, after, boot, per_stage, opt)


def _offset(
    progress: Callable[[int, int], None] | None, done: int, total: int
) -> Callable[[int, int], None] | None:
    """``progress`` for one block of draws: ``(draws so far, all draws)``."""
    if progress is None:
        return None
    return lambda k, _size: progress(done + k, total)


def leverage_rows(
    stages: list[str],
    probs: np.ndarray,
    loss: np.ndarray,
    base: float,
    after: np.ndarray,
    boot: np.ndarray,
    per_stage: np.ndarray,
    opt: _Options,
) -> list[dict[str, Any]]:
    """The leverage rows from the chain's results (shared with the Dask engine)."""
    lo_q, hi_q = 100 * opt.alpha / 2, 100 * (1 - opt.alpha / 2)
    level = f"{100 * (1 - opt.alpha):.0f}%"
    threshold = opt.min_effect["leverage"] * base
    rows = []
    for s, name in enumerate(stages):  # loop over stages
        eff = after[s] - base
        lo = hi = np.nan
        finite = boot[:, s][np.isfinite(boot[:, s])]
        if finite.size:
            lo, hi = np.percentile(finite, [lo_q, hi_q])
        loss_now = float(probs[s][loss[s]].sum())
        n_s = int(per_stage[s])
        if not np.isfinite(eff):
            reason = f"{name}: no forward exit to move lost deals to, leverage undefined"
        else:
            ci = (
                f"{level} CI {100 * lo:+.2f} to {100 * hi:+.2f}"
                if np.isfinite(lo)
                else "no bootstrap interval (n_boot=0)"
            )
            reason = (
                f"Cutting {name}'s losses by {100 * opt.uplift:g}% "
                f"({_pct1(loss_now)} → {_pct1(loss_now * (1 - opt.uplift))} of exits) lifts the "
                f"overall win probability from {_pct1(base)} to {_pct1(after[s])} "
                f"({100 * eff:+.2f} points, {ci})"
            )
        material = bool(n_s >= opt.min_deals and np.isfinite(lo) and lo >= threshold)
        rows.append(
            _row(
                name,
                "leverage",
                "win_probability",
                effect=float(eff),
                ci_low=float(lo),
                ci_high=float(hi),
                reason=reason,
                value=float(after[s]),
                baseline=base,
                n_deals=n_s,
                test="bootstrap" if opt.n_boot > 0 else "none",
                _material=material,
            )
        )
    return rows


# --------------------------------------------------------------------------- drop-off
def _dropoff(src: Any, opt: _Options) -> list[dict[str, Any]]:
    S = len(src.stages)
    m = opt.min_effect["dropoff"]
    rows = []
    if opt.benchmark is not None or not opt.by:
        loss = src.whole.complement()
        for s, name in enumerate(src.stages):  # loop over stages
            r = loss.take(s)
            rate, u = float(r.p[0]), float(r.unresolved[0])
            kw: dict[str, Any] = dict(value=rate, n_deals=int(r.deals[0]))
            if opt.benchmark is None:
                rows.append(_row(name, "dropoff", "loss_rate", reason=NO_BASELINE, **kw))
                continue
            if name not in opt.benchmark:
                rows.append(
                    _row(name, "dropoff", "loss_rate", reason="no benchmark for this stage", **kw)
                )
                continue
            p0 = opt.benchmark[name]
            if not np.isfinite(rate) or r.n[0] < opt.min_deals:
                reason = (
                    _not_estimable(name, "that reached it")
                    if not np.isfinite(rate)
                    else _effective(name, float(r.n[0]), "the stage", opt.min_deals)
                )
                rows.append(_row(name, "dropoff", "loss_rate", baseline=p0, reason=reason, **kw))
                continue
            p, _, test = one_sample(r, p0)
            eff = rate - p0
            reason = (
                f"{name} loses {_est(rate, u)} of the {int(r.deals[0])} deals that reached it "
                f"vs the {_pct(p0)} benchmark ({_pval(p)})"
            )
            rows.append(
                _row(
                    name,
                    "dropoff",
                    "loss_rate",
                    effect=eff,
                    ci_low=float(r.low[0]) - p0,
                    ci_high=float(r.high[0]) - p0,
                    p_value=p,
                    baseline=p0,
                    reason=reason,
                    test=test,
                    alternative="greater",
                    _material=eff >= m,
                    **kw,
                )
            )
        return rows
    own_rate, labels = src.own
    n_seg = len(labels)
    own = own_rate.complement()
    rest = src.rest.complement()
    names = _segment_names(labels)
    pairs = [
        (
            own.take(k * S + np.arange(S)),
            rest.take(k * S + np.arange(S)),
            names[k],
            f"{names[k]} deals",
            "other deals",
        )
        for k in range(n_seg)
    ]
    for s, name in enumerate(src.stages):  # loop over stages
        for a_all, b_all, seg_name, who, other in pairs:  # loop over segments
            a, b = a_all.take(s), b_all.take(s)

            def describe(p, eff, name=name, a=a, b=b, who=who, other=other):
                return (
                    f"{name} loses {_est(a.p[0], a.unresolved[0])} of the {int(a.deals[0])} "
                    f"{who} vs {_est(b.p[0], b.unresolved[0])} of the {int(b.deals[0])} "
                    f"{other} (difference {_points(eff)}; {_pval(p)})"
                )

            rows.append(
                _two_group_row(
                    name,
                    ("dropoff", "loss_rate"),
                    a,
                    b,
                    opt,
                    alternative="greater",
                    names=(who, other),
                    describe=describe,
                    material=lambda eff: eff >= m,
                    segment=seg_name,
                )
            )
    return rows


def _segment_names(labels: pd.DataFrame) -> list[str]:
    cols = [labels[c].astype(object).where(labels[c].notna(), _MISSING) for c in labels]
    return [" / ".join(str(v) for v in vals) for vals in zip(*cols, strict=True)]


# --------------------------------------------------------------------------- stall
def _stall(src: Any, opt: _Options) -> list[dict[str, Any]]:
    tab: StallTable = src.stall
    first, last = _stats.group_bounds(tab.stage, len(src.stages))
    m = opt.min_effect["stall"]
    rows = []
    for s, name in enumerate(src.stages):  # loop over stages
        here = slice(int(first[s]), int(last[s]))
        n = int(tab.n[here].sum())
        if n == 0:
            reason = f"{name}: not tested, no first visit has advanced or been lost here yet"
            rows.append(_row(name, "stall", "advanced_share", reason=reason))
            continue
        # the declared threshold: the median of the ended visits' dwell, rounded up to a
        # whole day (hour below two days) — a function of the times only, so under "how a
        # visit ends does not depend on how long it lasted" Fisher's test stays exact
        t = tab.threshold(here)
        upto = tab.bucket[here] * _HOUR_NS <= t  # t is whole hours: buckets fall on a side
        nb = int(tab.n[here][upto].sum())
        na = n - nb
        if min(na, nb) < opt.min_deals:
            side = "longer" if na < nb else "at most as long"
            reason = _too_few(
                name,
                min(na, nb),
                f"ended first visits {side} than {_days(t)} (the stage's median)",
                opt.min_deals,
            )
            rows.append(
                _row(name, "stall", "advanced_share", n_deals=n, reason=reason, dwell_threshold=t)
            )
            continue
        xb = int(tab.advanced[here][upto].sum())
        xa = int(tab.advanced[here].sum()) - xb
        ra, rb = xa / na, xb / nb
        p = float(
            np.asarray(
                _stats.fisher_exact_2x2(
                    np.array([xa]),
                    np.array([na - xa]),
                    np.array([xb]),
                    np.array([nb - xb]),
                    alternative="less",
                )
            ).reshape(-1)[0]
        )
        lo, hi = newcombe(xa, na, xb, nb, opt.z)
        reason = (
            f"First visits to {name} that lasted more than {_days(t)} (the stage's median) "
            f"advanced {_pct(ra)} of the time vs {_pct(rb)} for shorter ones ({xa} of {na} "
            f"vs {xb} of {nb}; difference {_points(ra - rb)}, {_level(opt)} interval "
            f"{_span(lo, hi)}; Fisher {_pval(p)})"
        )
        rows.append(
            _row(
                name,
                "stall",
                "advanced_share",
                effect=ra - rb,
                ci_low=lo,
                ci_high=hi,
                p_value=p,
                reason=reason,
                value=ra,
                baseline=rb,
                n_deals=n,
                test="fisher",
                alternative="less",
                dwell_threshold=t,
                _material=ra - rb <= -m,
            )
        )
    return rows


# --------------------------------------------------------------------------- heterogeneity
def _heterogeneity(src: Any, opt: _Options) -> list[dict[str, Any]]:
    S = len(src.stages)
    conv, labels = src.own
    n_seg = len(labels)
    names = _segment_names(labels)
    rng = np.random.default_rng(np.random.SeedSequence(opt.seed).spawn(2)[1])
    dim = " × ".join(opt.by)
    m = opt.min_effect["heterogeneity"]
    rows = []
    for s, name in enumerate(src.stages):  # loop over stages
        r_all = conv.take(np.arange(n_seg) * S + s)
        ok = np.flatnonzero(np.isfinite(r_all.p) & (r_all.n >= opt.min_deals))
        if ok.size < 2:
            reason = (
                f"{name}: not tested, {ok.size} {dim} value(s) with at least "
                f"{opt.min_deals} resolved deals' worth of data (need 2)"
            )
            rows.append(
                _row(
                    name,
                    "heterogeneity",
                    "conversion",
                    n_deals=int(r_all.deals[ok].sum()),
                    reason=reason,
                )
            )
            continue
        r = r_all.take(ok)
        p, test, _ = many_groups(r, rng)
        lo_i, hi_i = int(np.argmin(r.p)), int(np.argmax(r.p))
        worst, best = r.take(lo_i), r.take(hi_i)
        spread = float(best.p[0] - worst.p[0])
        # simultaneous intervals (Šidák) for every tested segment: with probability at
        # least 1 − alpha all hold at once, so the spread of the true conversions lies in
        # [max low − min high (at least 0), max high − min low] whichever segments are the
        # extremes — an interval of the spread, not of two segments picked after the fact
        z_k = float(stats.norm.ppf(1 - (1 - (1 - opt.alpha) ** (1 / ok.size)) / 2))
        low, high = rate_interval(r, z_k)
        ci_low = max(float(low.max() - high.min()), 0.0)
        ci_high = float(high.max() - low.min())
        w_name, b_name = names[ok[lo_i]], names[ok[hi_i]]
        left_out = n_seg - ok.size
        note = f"; {left_out} smaller {dim} value(s) not tested" if left_out else ""

        def one(x: Rate, label: str) -> str:
            u = float(x.unresolved[0])
            tail = "" if u < 0.005 else f"; est., {_pct(u)} unresolved"
            return f"{_pct(x.p[0])} ({label}, {int(x.deals[0])} deals{tail})"

        reason = (
            f"{name} conversion differs across {ok.size} {dim} values ({test} {_pval(p)}): "
            f"from {one(worst, w_name)} to {one(best, b_name)}, a spread of "
            f"{100 * spread:.0f} points ({_level(opt)} simultaneous interval "
            f"{100 * ci_low:.0f} to {100 * ci_high:.0f}){note}"
        )
        rows.append(
            _row(
                name,
                "heterogeneity",
                "conversion",
                effect=spread,
                ci_low=ci_low,
                ci_high=ci_high,
                p_value=p,
                reason=reason,
                segment=w_name,
                value=float(worst.p[0]),
                baseline=float(best.p[0]),
                n_deals=int(r.deals.sum()),
                test=test,
                alternative="two-sided",
                _material=spread >= m,
            )
        )
    return rows


# --------------------------------------------------------------------------- change
def _change(src: Any, opt: _Options) -> list[dict[str, Any]]:
    if opt.period_ns is None:  # the signal needs a period (checked in key_stages)
        return []
    S = len(src.stages)
    conv = src.since  # groups: created before the date, since
    m = opt.min_effect["change"]
    when = opt.period_label
    rows = []
    for s, name in enumerate(src.stages):  # loop over stages
        a, b = conv.take(S + s), conv.take(s)

        def describe(p, eff, name=name, s=s, a=a, b=b):
            verb = "rose" if eff > 0 else "fell" if eff < 0 else "stayed"
            return (
                f"{name} conversion {verb} from {_est(b.p[0], b.unresolved[0])} of the "
                f"{int(b.deals[0])} deals created before {when} to "
                f"{_est(a.p[0], a.unresolved[0])} of the {int(a.deals[0])} since "
                f"(difference {_points(eff)}; {_pval(p)})"
            )

        rows.append(
            _two_group_row(
                name,
                ("change", "conversion"),
                a,
                b,
                opt,
                alternative="two-sided",
                names=(f"the deals created since {when}", f"the deals created before {when}"),
                describe=describe,
                material=lambda eff: abs(eff) >= m,
            )
        )
    return rows


# --------------------------------------------------------------------------- dwell
@dataclass(frozen=True)
class FirstVisits:
    """The first visits the ``dwell`` signal compares, per row of ``count`` identical
    visits: stage, duration (a silent visit censored at ``as_of``), whether it ended, and
    the groups — segment (with ``by``; ``labels`` the segments) and created since
    ``period`` (with a period)."""

    stage: np.ndarray
    dur: np.ndarray
    event: np.ndarray
    count: np.ndarray
    seg: np.ndarray | None = None
    labels: pd.DataFrame | None = None
    since: np.ndarray | None = None

    @staticmethod
    def arrays(log: EventLog) -> tuple[np.ndarray, ...]:
        """Per first visit of ``log``: stage, duration, ended, and its row in the visits."""
        v = log._visits()
        # a silent (stale) visit is still in the stage as far as the log knows: censored
        # at as_of like an open one. Leaving it out (as dwell() does) would drop the old
        # groups' silent visits while the recent groups keep theirs as open ones — a bias
        # between periods and between segments of different ages.
        keep = np.flatnonzero(v.visit == 1)
        stale = v.dwell[keep] == NAT
        dur = np.where(stale, log._as_of_ns - v.entered[keep], v.dwell[keep])
        return v.stage[keep], dur, ~(v.censored[keep] | stale), keep

    @classmethod
    def of_log(cls, log: EventLog, opt: _Options) -> FirstVisits:
        stage, dur, event, keep = cls.arrays(log)
        v = log._visits()
        seg = labels = since = None
        if opt.by:
            if is_visit_level(log, opt.by):
                pseg, labels = path_segments(log, opt.by)
                seg = np.asarray(pseg[v.path_index[keep]], dtype=np.int64)
            else:
                seg_d, labels = segments(log, opt.by)
                seg = np.asarray(seg_d[v.deal[keep]], dtype=np.int64)
        if opt.period_ns is not None:
            since = (log._first_ns[v.deal[keep]] >= opt.period_ns).astype(np.int64)
        ones = np.ones(stage.size, dtype=np.int64)
        return cls(stage, dur, event, ones, seg, labels, since)


def _dwell(src: Any, opt: _Options) -> list[dict[str, Any]]:
    """Time in the stage: each segment against the other deals (with ``by``) and the deals
    created since ``period`` against those before — log-rank on first visits (open ones
    censored), the effect the ratio of Kaplan–Meier medians."""
    S = len(src.stages)
    fv: FirstVisits = src.first_visits
    stage, dur, event = fv.stage, fv.dur, fv.event
    comparisons: list[tuple[np.ndarray, list[int], Callable[[int], tuple[Any, str, str]]]] = []
    if fv.seg is not None:
        assert fv.labels is not None
        names = _segment_names(fv.labels)

        def by_segment(k: int) -> tuple[Any, str, str]:
            return names[k], f"{names[k]} deals", "other deals"

        comparisons.append((fv.seg, list(range(len(fv.labels))), by_segment))
    if fv.since is not None:
        when = opt.period_label
        comparisons.append(
            (
                fv.since,
                [1],
                lambda k: (None, f"deals created since {when}", f"deals created before {when}"),
            )
        )
    order = np.argsort(stage, kind="stable")
    start, end = _stats.group_bounds(stage[order], S)
    m = opt.min_effect["dwell"]
    rows = []
    for s, name in enumerate(src.stages):  # loop over stages
        idx = order[start[s] : end[s]]
        for group, ks, label in comparisons:  # one or two comparisons
            g = group[idx]
            present = [k for k in ks if np.any(g == k)]
            res = _stats.one_vs_rest(
                dur[idx], event[idx], g, np.array(present), z=opt.z, count=fv.count[idx]
            )
            for i, k in enumerate(present):  # loop over segments
                seg_name, who, other = label(k)
                rows.append(_dwell_row(name, res, i, seg_name, who, other, opt, m))
    return rows


def _dwell_row(
    stage: str,
    res: dict[str, np.ndarray],
    i: int,
    seg_name: str | None,
    who: str,
    other: str,
    opt: _Options,
    m: float,
) -> dict[str, Any]:
    """One log-rank comparison of :func:`_stats.one_vs_rest` as a key-stage row."""
    n_a, n_b = int(res["n"][i]), int(res["rest_n"][i])
    med_a, med_b = float(res["median"][i]), float(res["rest_median"][i])
    kw: dict[str, Any] = dict(
        segment=seg_name, value=med_a / _DAY_NS, baseline=med_b / _DAY_NS, n_deals=n_a + n_b
    )
    if min(n_a, n_b) < opt.min_deals:
        small = who if n_a < n_b else other
        reason = _too_few(stage, min(n_a, n_b), f"first visits of {small}", opt.min_deals)
        return _row(stage, "dwell", "median_dwell_days", reason=reason, **kw)
    var = float(res["variance"][i])
    if not var > 0:
        reason = f"{stage}: not tested, no visit of {who} or {other} has left the stage yet"
        return _row(stage, "dwell", "median_dwell_days", reason=reason, **kw)
    zstat = (float(res["observed"][i]) - float(res["expected"][i])) / np.sqrt(var)
    p = float(2 * stats.norm.sf(abs(zstat)))
    # the ratio of medians; its interval on the log scale, each median's standard error
    # read from its Brookmeyer–Crowley interval (half its log width over z)
    eff = lo = hi = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        if med_a > 0 and med_b > 0:
            eff = med_a / med_b
            se = [
                (np.log(res[f"{side}median_high"][i]) - np.log(res[f"{side}median_low"][i]))
                / (2 * opt.z)
                for side in ("", "rest_")
            ]
            half = opt.z * float(np.hypot(*se))
            if np.isfinite(half):
                lo, hi = eff * np.exp(-half), eff * np.exp(half)

    def med(x: float) -> str:
        return "not reached" if not np.isfinite(x) else _days_short(x)

    if np.isfinite(eff):
        ratio = f"{eff:.2f}×" + (
            f" ({_level(opt)} interval {lo:.2f}–{hi:.2f})" if np.isfinite(lo) else ""
        )
    else:
        ratio = "ratio not defined"
    reason = (
        f"First visits to {stage} last {med(med_a)} at the median for the {n_a} {who} vs "
        f"{med(med_b)} for the {n_b} {other}: {ratio}; log-rank {_pval(p)}"
    )
    return _row(
        stage,
        "dwell",
        "median_dwell_days",
        effect=eff,
        ci_low=lo,
        ci_high=hi,
        p_value=p,
        reason=reason,
        test="log-rank",
        alternative="two-sided",
        _material=bool(eff >= 1 + m),
        **kw,
    )


#: signal → its rows from a source (:class:`LogSource`, or the Dask engine's)
_SIGNAL_FUNCS: dict[str, Callable[[Any, _Options], list[dict[str, Any]]]] = {
    "leverage": lambda src, opt: src.leverage_rows(opt),
    "dropoff": _dropoff,
    "stall": _stall,
    "heterogeneity": _heterogeneity,
    "change": _change,
    "dwell": _dwell,
}


# --------------------------------------------------------------------------- validation
def _check_signals(signals: Any, by: list[str], period: Any) -> list[str]:
    if signals is None:
        chosen = ["leverage", "dropoff", "stall"]
        if by:
            chosen.append("heterogeneity")
        if period is not None:
            chosen.append("change")
        if by or period is not None:
            chosen.append("dwell")
        return [s for s in SIGNALS if s in chosen]
    names = [signals] if isinstance(signals, str) else list(signals)
    unknown = [s for s in names if s not in SIGNALS]
    if unknown or not names:
        raise InvalidParameterError(
            f"Parameter `signals`: unknown signal(s) {unknown}; choose from {list(SIGNALS)} "
            "or pass None for every signal the options allow."
        )
    if "heterogeneity" in names and not by:
        raise EventLogError(
            "Signal 'heterogeneity' compares segments: pass by='team' (or another carried "
            "attribute)."
        )
    if "change" in names and period is None:
        raise EventLogError(
            "Signal 'change' compares deals created before and after a date: pass "
            "period='2025-01-01' (for example)."
        )
    if "dwell" in names and not by and period is None:
        raise EventLogError(
            "Signal 'dwell' compares time in the stage between segments or periods: pass "
            "by='team' (or another carried attribute) and/or period='2025-01-01'."
        )
    return [s for s in SIGNALS if s in names]


def _check_benchmark(stages: list[str], benchmark: Any) -> dict[str, float] | None:
    if benchmark is None:
        return None
    if isinstance(benchmark, pd.DataFrame):
        missing = [c for c in ("stage", "loss_rate") if c not in benchmark.columns]
        if missing:
            raise InvalidParameterError(
                f"Parameter `benchmark`: the DataFrame needs columns 'stage' and "
                f"'loss_rate'; missing {missing}, found {list(benchmark.columns)}."
            )
        if benchmark["stage"].duplicated().any():
            dup = benchmark.loc[benchmark["stage"].duplicated(), "stage"].tolist()
            raise InvalidParameterError(
                f"Parameter `benchmark` lists stages {dup} more than once."
            )
        items = list(zip(benchmark["stage"], benchmark["loss_rate"], strict=True))
    elif isinstance(benchmark, Mapping):
        items = list(benchmark.items())
    else:
        raise InvalidParameterError(
            "Parameter `benchmark` must be a dict {stage: expected loss rate} or a DataFrame "
            f"with columns 'stage' and 'loss_rate'; got {type(benchmark).__name__}."
        )
    unknown = [s for s, _ in items if s not in stages]
    if unknown:
        raise InvalidParameterError(
            f"Parameter `benchmark` names stages {unknown} that are not in the log; stages: "
            f"{stages}."
        )
    out = {}
    for s, r in items:
        try:
            rate = float(r)
        except (TypeError, ValueError):
            rate = np.nan
        if not (0 <= rate <= 1):
            raise InvalidParameterError(
                f"Parameter `benchmark`: the loss rate of {s!r} must be a proportion in "
                f"[0, 1]; got {r!r}."
            )
        out[str(s)] = rate
    return out


def _check_min_effect(min_effect: Any) -> dict[str, float]:
    out = dict(DEFAULT_MIN_EFFECT)
    if min_effect is None:
        return out
    if not isinstance(min_effect, Mapping):
        raise InvalidParameterError(
            "Parameter `min_effect` must be a dict {signal: threshold} such as "
            f"{{'stall': 0.15}}; got {type(min_effect).__name__}."
        )
    for k, val in min_effect.items():
        if k not in SIGNALS:
            raise InvalidParameterError(
                f"Parameter `min_effect`: unknown signal {k!r}; choose from {list(SIGNALS)}."
            )
        try:
            x = float(val)
        except (TypeError, ValueError):
            x = np.nan
        if not (x >= 0 and np.isfinite(x)):
            raise InvalidParameterError(
                f"Parameter `min_effect[{k!r}]` must be a non-negative number; got {val!r}."
            )
        out[k] = x
    return out


def _check_progress(progress: Any) -> Callable[[int, int], None] | None:
    if progress is None or progress is False:
        return None
    if progress is True:

        def to_stderr(done: int, total: int) -> None:
            end = "\n" if done == total else ""
            print(f"\rkey_stages: bootstrap draw {done}/{total}", end=end, file=sys.stderr)
            sys.stderr.flush()

        return to_stderr
    if callable(progress):
        return progress
    raise InvalidParameterError(
        "Parameter `progress` must be None, True (print to stderr) or a callable "
        f"progress(done, total); got {type(progress).__name__}."
    )


def _unit_interval(name: str, value: Any, *, closed_high: bool) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = np.nan
    ok = 0 < x <= 1 if closed_high else 0 < x < 1
    if not ok:
        bounds = "(0, 1]" if closed_high else "(0, 1)"
        raise InvalidParameterError(f"Parameter `{name}` must be in {bounds}; got {value!r}.")
    return x


# --------------------------------------------------------------------------- entry point
def key_stages(
    log: EventLog,
    *,
    by: str | Sequence[str] | None = None,
    period: Any = None,
    benchmark: Mapping[str, float] | pd.DataFrame | None = None,
    signals: str | Iterable[str] | None = None,
    alpha: float = 0.05,
    uplift: float = 0.10,
    n_boot: int = 200,
    seed: int | None = 0,
    min_deals: int = 30,
    min_effect: Mapping[str, float] | None = None,
    progress: bool | Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Implementation of :meth:`funnelkit.EventLog.key_stages` (documented there).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> from funnelkit.keystages import key_stages
    >>> ks = key_stages(log, n_boot=0)
    >>> ks.equals(log.key_stages(n_boot=0))
    True
    >>> sorted(ks["signal"].unique())
    ['dropoff', 'leverage', 'stall']
    """
    by_cols = normalize_by(by)
    if by_cols:
        path_segments(log, by_cols)  # raises for an unknown attribute
    chosen, opt = options(
        list(log.stages), by_cols, signals=signals, period=period,
        split=lambda p: period_split(log, p), benchmark=benchmark, alpha=alpha,
        uplift=uplift, n_boot=n_boot, seed=seed, min_deals=min_deals,
        min_effect=min_effect, progress=progress,
    )  # fmt: skip
    return signal_table(LogSource(log, opt), chosen, opt)


def options(
    stages: list[str],
    by_cols: list[str],
    *,
    signals: Any,
    period: Any,
    split: Callable[[Any], tuple[int, str]],
    benchmark: Any,
    alpha: Any,
    uplift: Any,
    n_boot: Any,
    seed: Any,
    min_deals: Any,
    min_effect: Any,
    progress: Any,
) -> tuple[list[str], _Options]:
    """The checked options of ``key_stages`` and the signals chosen (both engines, in the
    same order of checks); ``split(period)`` is the engine's ``(period_ns, label)``."""
    alpha = _unit_interval("alpha", alpha, closed_high=False)
    uplift = _unit_interval("uplift", uplift, closed_high=True)
    n_boot = int_param("n_boot", n_boot, 0, MAX_BOOT)
    min_deals = int_param("min_deals", min_deals, 1)
    if seed is not None:
        seed = int_param("seed", seed, 0)
    chosen = _check_signals(signals, by_cols, period)
    period_ns = None
    period_label = ""
    if period is not None:
        period_ns, period_label = split(period)
    opt = _Options(
        by=by_cols,
        period_ns=period_ns,
        period_label=period_label,
        benchmark=_check_benchmark(stages, benchmark),
        alpha=alpha,
        z=float(stats.norm.ppf(1 - alpha / 2)),
        uplift=uplift,
        n_boot=n_boot,
        seed=seed,
        min_deals=min_deals,
        min_effect=_check_min_effect(min_effect),
        progress=_check_progress(progress),
    )
    return chosen, opt


def signal_table(src: Any, chosen: list[str], opt: _Options) -> pd.DataFrame:
    """The key-stage table of the ``chosen`` signals read from ``src`` (a
    :class:`LogSource` or the Dask engine's source): one builder for both engines —
    q-values within each family, then the flags."""
    rows: list[dict[str, Any]] = []
    for sig in chosen:
        rows.extend(_SIGNAL_FUNCS[sig](src, opt))
    out = pd.DataFrame(rows, columns=[*COLUMNS, "_material"])
    for fam in FAMILIES:
        sel = (out["signal"] == fam).to_numpy()
        if sel.any():
            out.loc[sel, "q_value"] = bh(out.loc[sel, "p_value"].to_numpy(dtype=np.float64))
    material = out["_material"].to_numpy(dtype=bool)
    sig = out["signal"].to_numpy(dtype=object)
    tested = np.isin(sig, FAMILIES)
    q = out["q_value"].to_numpy(dtype=np.float64)
    lo = out["ci_low"].to_numpy(dtype=np.float64)
    hi = out["ci_high"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        # the interval excludes "no effect" on the side the flag is about (NaN: never)
        clear = np.select(
            [sig == "stall", sig == "change", sig == "dwell"],
            [hi < 0, (lo > 0) | (hi < 0), lo > 1],
            default=lo > 0,
        )
        out["is_key"] = np.where(tested, material & (q <= opt.alpha) & clear, material)
    return typed_table(out)
