"""What-if scenarios, pipeline forecasts and their backtest, on the absorbing chain.

* :func:`what_if` — change a stage's conversion or dwell and read the effect on win rate,
  wins, won amount and cycle time, exactly on the absorbing Markov chain
  (:mod:`funnelkit.markov`), with deal-level bootstrap intervals;
* :func:`forecast` — for every open deal, the probability of being won, lost or still open
  a horizon from now, and the expected wins and amount of the pipeline;
* :func:`backtest` — forecast from a past date and compare with what happened;
* :func:`cut_log` — the log as it was at a past date, rebuilt from its input rows.

The forecast model
------------------
A semi-Markov model of the funnel. A deal entering stage *s* either goes **silent** with
probability ``π_s`` — the stale share of the stage's completed exits; it logs nothing
more and is declared stale ``stale_after`` after its last event, as the log would — or
leaves after a dwell drawn from the stage's Kaplan–Meier curve ``S_s`` (over the
non-stale visits, open visits censored) to the next state drawn from the stage's
non-stale exit shares ``q_s`` (the rows of the chain), independently of the dwell
(``exits="shares"``). With ``exits="by_dwell"`` (the default) the next state depends on
the dwell: the sub-distribution of each exit is its Aalen–Johansen cumulative incidence,
whose total is the same Kaplan–Meier curve. Where the exit mix does not depend on the
time spent the two agree up to noise; where it does (BPIC 2012), ``"shares"`` over-predicts
wins by 22% and ``"by_dwell"`` is within 6% (``benchmarks/RESULTS.md``).

A deal that has already spent ``a`` in its stage without an event is conditioned on
that: it is silent with probability ``π / (π + (1 − π) S(a))`` and otherwise leaves in
``(a, a + u]`` with probability ``(S(a) − S(a + u)) / S(a)``, so for the deal
``P(leave in (a, a + u]) = (1 − π)(S(a) − S(a + u)) / (π + (1 − π) S(a))`` (without
stale losses, ``π = 0``: ``(S(a) − S(a + u)) / S(a)``), going to state *k* with
probability ``q_sk``. With ``"by_dwell"`` the probability of leaving to *k* in that
window is ``(1 − π)(F_k(a + u) − F_k(a)) / (π + (1 − π) S(a))``, ``F_k`` the exit's
cumulative incidence.

Later moves inside the horizon follow a discretised semi-Markov recursion on a grid of
``n = ceil(horizon / 1 day)`` equal steps: the first exit of an open deal falls in the
step that contains it; a later dwell is rounded to the nearest step (0 allowed: quick
hops of seconds chain within a step), so the discretisation error is at most about a
step and does not grow with the number of hops. The recursion runs backwards over steps
once per segment (``W_s(t)`` = probability of being won by the horizon after entering
*s* at step *t*) and is shared by every deal: the per-deal work is one vectorised
evaluation of the curves at the deal's age.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import sparse

from . import _columns as C
from . import _validate as V
from ._columns import NAT
from ._competing import aalen_johansen
from ._kernel import NO_NEXT
from ._params import CHECKED_INSIDE, Interval, Options, validate_params
from ._segments import expand, normalize_by, segments
from ._stats import Z95, km_survival, wilson
from .dwell import km_table
from .errors import MAX_BOOT, EventLogError, InvalidParameterError, int_param, warn
from .markov import (
    _inverse,
    _solve,
    bootstrap_counts,
    chain_from_log,
    deal_counts,
    exit_probabilities,
)

if TYPE_CHECKING:
    from ._kernel import Visits
    from .log import EventLog

__all__ = [
    "WHAT_IF_METRICS",
    "Backtest",
    "Forecast",
    "backtest",
    "conversion_bounds",
    "cut_log",
    "forecast",
    "shift_conversion",
    "tune_recency",
    "what_if",
]

_DAY_NS = 86_400 * 10**9
#: rows of :func:`what_if`, in order, with their units
WHAT_IF_METRICS = {
    "win_rate": "share",
    "wins": "deals",
    "won_amount": "amount",
    "cycle_time": "days",
    "won_cycle_time": "days",
}
_CHANGE_KEYS = ("conversion", "dwell")
#: dwell bins per stage for the bootstrap of mean dwell (ties share a bin)
_KM_BINS = 256
#: elements per block of the per-deal forecast (bounds memory on large pipelines)
_BLOCK = 4_000_000


# =========================================================================== what-if
def conversion_bounds(
    probs: np.ndarray, stage: int, *, loss: np.ndarray, forward: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest absolute change of ``stage``'s forward share that
    :func:`shift_conversion` can make, for stacked chains.

    Up to the whole loss share can move forward (if there is a forward exit to take it)
    and up to the whole forward share can move to the losses (if there is a loss exit).

    Examples
    --------
    >>> from funnelkit.markov import AbsorbingChain
    >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]  # A, B, Won, Lost
    >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
    >>> from funnelkit.forecast import conversion_bounds
    >>> low, high = conversion_bounds(chain.probabilities, 1, loss=chain.loss_mask,
    ...                               forward=chain.forward)
    >>> round(float(low), 3), round(float(high), 3)  # stage B: 0.6 forward, 0.4 lost
    (-0.6, 0.4)
    """
    row = np.asarray(probs, dtype=np.float64)[..., stage, :]
    lo_sum = row[..., loss[stage]].sum(axis=-1)
    fw_sum = row[..., forward[stage]].sum(axis=-1)
    low = np.where(lo_sum > 0, -fw_sum, 0.0)
    high = np.where(fw_sum > 0, lo_sum, 0.0)
    return low, high


def shift_conversion(
    probs: np.ndarray,
    stage: int,
    delta: float | np.ndarray,
    *,
    loss: np.ndarray,
    forward: np.ndarray,
) -> np.ndarray:
    """Change stage ``stage``'s forward share of exits by ``delta`` (absolute).

    A positive ``delta`` takes probability from the loss exits (lost names and stale) in
    proportion to their shares and gives it to the forward exits (later stages, won) in
    proportion to theirs; a negative one moves it the other way. Backward moves are
    unchanged, so the row still sums to 1. Equivalently: loss exits are scaled by
    ``1 − delta / loss_share`` and forward exits by ``1 + delta / forward_share``. For a
    positive ``delta`` this is :func:`funnelkit.markov.reduce_loss` with
    ``uplift = delta / loss_share``.

    Parameters
    ----------
    probs : ndarray, shape (..., t, n)
        Exit probabilities, stacked over any leading dimensions.
    stage : int
        Row to change.
    delta : float or ndarray of shape (...)
        Absolute change of the forward share, within :func:`conversion_bounds` (not
        checked here).
    loss, forward : ndarray of bool, shape (t, n)
        Loss and forward destinations per row (:attr:`AbsorbingChain.loss_mask`,
        :attr:`AbsorbingChain.forward`).

    Returns
    -------
    ndarray
        A changed copy of ``probs``.

    Examples
    --------
    >>> from funnelkit.markov import AbsorbingChain
    >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]  # A, B, Won, Lost
    >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
    >>> from funnelkit.forecast import shift_conversion
    >>> p = shift_conversion(chain.probabilities, 1, -0.1, loss=chain.loss_mask,
    ...                      forward=chain.forward)
    >>> p[1].round(3).tolist()  # stage B: 10 points move from Won to Lost
    [0.0, 0.0, 0.5, 0.5]
    """
    out = np.array(probs, dtype=np.float64, copy=True)
    row = out[..., stage, :]
    lo, fw = loss[stage], forward[stage]
    lo_sum = row[..., lo].sum(axis=-1)
    fw_sum = row[..., fw].sum(axis=-1)
    d = np.asarray(delta, dtype=np.float64)
    lo_f = np.where(lo_sum > 0, 1.0 - d / np.where(lo_sum > 0, lo_sum, 1.0), 1.0)
    fw_f = np.where(fw_sum > 0, 1.0 + d / np.where(fw_sum > 0, fw_sum, 1.0), 1.0)
    row[..., lo] = row[..., lo] * lo_f[..., None]
    row[..., fw] = row[..., fw] * fw_f[..., None]
    out[..., stage, :] = row
    return out


def _chain_metrics(
    probs: np.ndarray, start: np.ndarray, won: np.ndarray, means: np.ndarray
) -> np.ndarray:
    """Win probability, expected time to absorption and expected time to win given a win,
    for stacked chains: ``(..., 3)``.

    With ``N = (I − Q)⁻¹``, ``h = N R w`` and ``m`` the mean dwell per stage:
    ``E[T] = start · N m`` and ``E[T | win] = start · N (h ⊙ m) / P(win)`` — the expected
    visits of stage *j* that are followed by a win are ``N_ij h_j`` (a visit's dwell does
    not depend on where the deal goes next).
    """
    probs = np.asarray(probs, dtype=np.float64)
    t = probs.shape[-2]
    q = probs[..., :, :t]
    wv = won[t:].astype(np.float64)
    eye = np.eye(t)
    a = eye - q
    h = _solve(a, (probs[..., :, t:] @ wv)[..., None])[..., 0]
    means = np.broadcast_to(means, h.shape)
    x = _solve(a, np.stack([means, h * means], axis=-1))
    st = np.broadcast_to(np.asarray(start, dtype=np.float64), (*h.shape[:-1], probs.shape[-1]))
    p_win = np.einsum("...i,...i->...", st[..., :t], h) + st[..., t:] @ wv
    t_any = np.einsum("...i,...i->...", st[..., :t], x[..., 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        t_won = np.einsum("...i,...i->...", st[..., :t], x[..., 1]) / p_win
    return np.stack([p_win, t_any, t_won], axis=-1)


def _check_changes(stages: list[str], changes: Any) -> list[tuple[int, float, float]]:
    """``[(stage index, conversion delta, dwell factor), ...]`` from the ``changes``
    mapping; bounds of ``conversion`` are checked against each chain later."""
    if not isinstance(changes, Mapping) or not changes:
        raise InvalidParameterError(
            "Parameter `changes` must be a non-empty mapping {stage: {'conversion': delta, "
            "'dwell': factor}}, e.g. {'Demo': {'conversion': 0.05}}; got "
            f"{type(changes).__name__}."
        )
    plan = []
    for stage, change in changes.items():
        if stage not in stages:
            raise InvalidParameterError(
                f"Parameter `changes` names stage {stage!r}, which is not a stage of the log; "
                f"stages: {stages}."
            )
        if not isinstance(change, Mapping) or not change:
            raise TypeError(
                f"`changes[{stage!r}]` must be a non-empty mapping with keys {_CHANGE_KEYS}, "
                f"e.g. {{'conversion': 0.05}} or {{'dwell': 0.8}}; got {change!r}."
            )
        unknown = [k for k in change if k not in _CHANGE_KEYS]
        if unknown:
            raise EventLogError(
                f"`changes[{stage!r}]` has unknown key(s) {unknown}; use 'conversion' (absolute "
                "change of the stage's forward share) and/or 'dwell' (factor on its dwell)."
            )
        vals = {}
        for k in _CHANGE_KEYS:
            if k not in change:
                continue
            x = change[k]
            if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
                raise TypeError(f"`changes[{stage!r}][{k!r}]` must be a number; got {x!r}.")
            if not math.isfinite(float(x)):
                raise EventLogError(f"`changes[{stage!r}][{k!r}]` must be finite; got {x!r}.")
            vals[k] = float(x)
        if vals.get("dwell", 1.0) < 0:
            raise EventLogError(
                f"`changes[{stage!r}]['dwell']` is a factor on the stage's dwell time and must "
                f"be >= 0 (0.8 = 20% faster); got {vals['dwell']!r}."
            )
        plan.append((stages.index(stage), vals.get("conversion", 0.0), vals.get("dwell", 1.0)))
    return plan


def _apply(
    plan: list[tuple[int, float, float]],
    probs: np.ndarray,
    means: np.ndarray,
    loss: np.ndarray,
    forward: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The scenario's chain and mean dwells; a conversion change is clipped to what each
    (bootstrap) chain allows."""
    p = probs
    m = np.array(means, dtype=np.float64, copy=True)
    for s, delta, factor in plan:  # loop over changed stages
        if delta != 0.0:
            low, high = conversion_bounds(p, s, loss=loss, forward=forward)
            p = shift_conversion(p, s, np.clip(delta, low, high), loss=loss, forward=forward)
        if factor != 1.0:
            m[..., s] = m[..., s] * factor
    return p, m


def _dwell_bins(v: Visits, n_stages: int, n_deals: int) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Per-deal counts of (stage, dwell bin, censored) and the bins' times in days.

    Each stage's visits with a dwell are cut into at most ``_KM_BINS`` bins of about equal
    size (equal dwells share a bin); a bin's time is the mean dwell of its visits. A
    bootstrap draw's Kaplan–Meier mean is computed from its weighted counts of these bins.
    """
    keep = np.flatnonzero(v.dwell != NAT)
    stage = v.stage[keep].astype(np.int64)
    dw = v.dwell[keep].astype(np.float64) / _DAY_NS
    order = np.lexsort((dw, stage))
    st_s, dw_s = stage[order], dw[order]
    start = np.searchsorted(st_s, np.arange(n_stages), side="left")
    end = np.searchsorted(st_s, np.arange(n_stages), side="right")
    n_s = (end - start)[st_s]
    # rank of the first visit with the same (stage, dwell): ties share a bin
    new = np.ones(st_s.size, dtype=bool)
    new[1:] = (st_s[1:] != st_s[:-1]) | (dw_s[1:] != dw_s[:-1])
    first = np.maximum.accumulate(np.where(new, np.arange(st_s.size), 0))
    b_sorted = ((first - start[st_s]) * _KM_BINS) // np.maximum(n_s, 1)
    bins = np.empty_like(b_sorted)
    bins[order] = b_sorted
    key = stage * _KM_BINS + bins
    n_keys = n_stages * _KM_BINS
    cnt = np.bincount(key, minlength=n_keys)
    tot = np.bincount(key, weights=dw, minlength=n_keys)
    times = bin_times(cnt, tot, n_stages)
    col = key * 2 + v.censored[keep].astype(np.int64)
    mat = sparse.csr_matrix((np.ones(keep.size), (v.deal[keep], col)), shape=(n_deals, n_keys * 2))
    mat.sum_duplicates()
    return mat, times


def bin_times(cnt: np.ndarray, tot: np.ndarray, n_stages: int) -> np.ndarray:
    """The dwell bins' times ``(S, bins)``: the mean dwell (days) of each bin's visits from
    their count and total; an empty bin takes the previous bin's time (dt = 0 across it)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        times = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan).reshape(n_stages, -1)
    idx = np.where(np.isfinite(times), np.arange(times.shape[1]), 0)
    idx = np.maximum.accumulate(idx, axis=1)
    return np.nan_to_num(np.take_along_axis(times, idx, axis=1), nan=0.0)


def _binned_km_mean(events: np.ndarray, censored: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Kaplan–Meier restricted mean from weighted counts per bin ``(..., S, B)``, as in
    :func:`funnelkit._stats.kaplan_meier` (events before censorings within a bin); NaN for
    a stage without visits."""
    tot = events + censored
    surv = km_survival(events, censored)[1]  # the library's one Kaplan–Meier
    nonempty = tot > 0
    b = times.shape[-1]
    first = np.argmax(nonempty, axis=-1)
    last = b - 1 - np.argmax(np.flip(nonempty, -1), axis=-1)
    tt = np.broadcast_to(times, tot.shape)
    t0 = np.take_along_axis(tt, first[..., None], axis=-1)[..., 0]
    k = np.arange(b - 1)
    use = (k >= first[..., None]) & (k < last[..., None])
    mean = t0 + (surv[..., :-1] * np.diff(tt, axis=-1) * use).sum(axis=-1)
    return np.where(nonempty.any(axis=-1), mean, np.nan)


def what_if_args(
    stages: list[str], changes: Any, n_boot: Any, seed: Any
) -> tuple[int, int | None, list[tuple[int, float, float]]]:
    """The checks of ``what_if``'s arguments (both engines): ``n_boot``, ``seed`` and the
    plan of :func:`_check_changes`."""
    n_boot = int_param("n_boot", n_boot, 0, MAX_BOOT)
    if seed is not None:
        seed = int_param("seed", seed, 0)
    return n_boot, seed, _check_changes(stages, changes)


def won_amounts(log: EventLog) -> np.ndarray:
    """Per deal ``(amount if won with an amount else 0, 1 if so else 0)``: summed over a
    segment (or a bootstrap draw), the won amount's total and count (both engines)."""
    amount = log._amount
    if amount is None:
        return np.zeros((log.n_deals, 2))
    won = (log._outcome == V.WON) & np.isfinite(amount)
    return np.column_stack([np.where(won, amount, 0.0), won.astype(np.float64)])


def what_if(
    log: EventLog,
    changes: Mapping[str, Mapping[str, float]],
    *,
    by: str | Sequence[str] | None = None,
    n_boot: int = 200,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Implementation of :meth:`funnelkit.EventLog.what_if` (documented there).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> from funnelkit.forecast import what_if
    >>> changes = {"Demo": {"conversion": 0.05}}
    >>> w = what_if(log, changes, n_boot=0)
    >>> w.equals(log.what_if(changes, n_boot=0))
    True
    >>> bool(w.set_index("metric").loc["win_rate", "change"] > 0)
    True
    """
    by_cols = normalize_by(by)
    seg, labels = segments(log, by_cols)
    n_boot, seed, plan = what_if_args(list(log.stages), changes, n_boot, seed)
    chain = chain_from_log(log)
    S, n_states = log._n_stages, len(chain.states)
    exits, start = deal_counts(log)
    v = log._visits()
    n_seg = len(labels)
    keep = v.dwell != NAT
    km = km_table(
        seg[v.deal[keep]] * S + v.stage[keep], v.dwell[keep], v.censored[keep], n_seg * S
    )
    means_all = (km["mean"] / _DAY_NS).reshape(n_seg, S)
    amount = log._amount
    amt_cols = won_amounts(log)
    extra = None
    if n_boot:
        dwell_x, bin_times = _dwell_bins(v, S, log.n_deals)
        extra = sparse.hstack([dwell_x, sparse.csr_matrix(amt_cols)]).tocsr()
    children = np.random.SeedSequence(seed).spawn(n_seg)
    blocks = []
    for g in range(n_seg):  # loop over segments
        rows = np.flatnonzero(seg == g)
        n = rows.size
        counts = np.asarray(exits[rows].sum(axis=0)).reshape(S, n_states)
        st = np.asarray(start[rows].sum(axis=0)).reshape(-1)
        a_sum, a_n = amt_cols[rows].sum(axis=0)
        boot = None
        if n_boot and extra is not None:
            cb, sb = bootstrap_counts(
                exits[rows], start[rows], n_boot=n_boot, rng=np.random.default_rng(children[g])
            )
            xb, _ = bootstrap_counts(
                extra[rows],
                sparse.csr_matrix(np.ones((n, 1))),
                n_boot=n_boot,
                rng=np.random.default_rng(children[g]),  # the same draws
            )
            xb = xb[..., 0]
            dk = xb[:, : S * _KM_BINS * 2].reshape(n_boot, S, _KM_BINS, 2)
            boot = WhatIfDraws(cb, sb, dk, bin_times, xb[:, -2], xb[:, -1])
        blocks.append(
            what_if_block(
                plan, chain, counts, st, means_all[g], (a_sum, a_n), n, boot,
                amount is not None, list(log.stages), labels, g, by_cols,
            )
        )  # fmt: skip
    out = pd.concat(blocks, ignore_index=True)
    return out.astype({c: np.float64 for c in ("baseline", "scenario", "change")})


class WhatIfDraws(NamedTuple):
    """A segment's bootstrap draws for :func:`what_if_block` (either engine's
    resampling): exit counts ``(draws, S, states)``, starting counts ``(draws, states)``,
    the dwell bins' event and censored counts ``(draws, S, bins, 2)`` with the bins' times
    in days ``(S, bins)``, and the won amount's sum and count per draw."""

    counts: np.ndarray
    starts: np.ndarray
    dwell_bins: np.ndarray
    bin_times: np.ndarray
    amount_sum: np.ndarray
    amount_n: np.ndarray


def what_if_block(
    plan: list[tuple[int, float, float]],
    chain: Any,
    counts: np.ndarray,
    starts: np.ndarray,
    means: np.ndarray,
    amount: tuple[float, float],
    n: int,
    boot: WhatIfDraws | None,
    has_amount: bool,
    stages: list[str],
    labels: pd.DataFrame,
    g: int,
    by_cols: list[str],
) -> pd.DataFrame:
    """The rows of :meth:`EventLog.what_if` for segment ``g`` from its sufficient
    statistics — one builder for both engines: the chain's exit and starting counts, the
    mean dwell per stage (days), the won amount's sum and count, its ``n`` deals and the
    bootstrap draws (None: no interval)."""
    loss, forward, won = chain.loss_mask, chain.forward, chain.won
    probs = exit_probabilities(counts)
    st = starts / starts.sum()
    means = np.nan_to_num(means, nan=0.0)
    a_sum, a_n = amount
    avg = a_sum / a_n if (has_amount and a_n > 0) else np.nan
    _check_bounds(plan, probs, loss, forward, stages, labels, g, by_cols)
    p_s, m_s = _apply(plan, probs, means, loss, forward)
    base = _metrics(probs, st, won, means, avg, n)
    scen = _metrics(p_s, st, won, m_s, avg, n)
    low = high = np.full(base.shape, np.nan)
    if boot is not None:
        dk = boot.dwell_bins
        mb = np.nan_to_num(_binned_km_mean(dk[..., 0], dk[..., 1], boot.bin_times), nan=0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            avg_b = (
                boot.amount_sum / boot.amount_n
                if has_amount
                else np.full(len(boot.counts), np.nan)
            )
        pb = exit_probabilities(boot.counts)
        sb = boot.starts / boot.starts.sum(axis=1, keepdims=True)
        pb_s, mb_s = _apply(plan, pb, mb, loss, forward)
        diff = _metrics(pb_s, sb, won, mb_s, avg_b, n) - _metrics(pb, sb, won, mb, avg_b, n)
        low, high = np.full(base.shape, np.nan), np.full(base.shape, np.nan)
        some = np.isfinite(diff).any(axis=0)  # won_amount is NaN without amounts
        if some.any():  # the 95% percentile interval
            low[some], high[some] = np.nanpercentile(diff[:, some], [2.5, 97.5], axis=0)
    block = expand(labels, np.full(len(WHAT_IF_METRICS), g), by_cols)
    block["metric"] = list(WHAT_IF_METRICS)
    block["unit"] = list(WHAT_IF_METRICS.values())
    block["baseline"] = base
    block["scenario"] = scen
    block["change"] = scen - base
    block["change_low"] = low
    block["change_high"] = high
    block["deals"] = n
    return block


def _metrics(
    probs: np.ndarray,
    start: np.ndarray,
    won: np.ndarray,
    means: np.ndarray,
    avg_amount: float | np.ndarray,
    n: int,
) -> np.ndarray:
    """The :data:`WHAT_IF_METRICS` of stacked chains, ``(..., 5)``."""
    cm = _chain_metrics(probs, start, won, means)
    wins = n * cm[..., 0]
    return np.stack([cm[..., 0], wins, avg_amount * wins, cm[..., 1], cm[..., 2]], axis=-1)


def _check_bounds(plan, probs, loss, forward, stages, labels, g, by_cols) -> None:
    for s, delta, _ in plan:
        low, high = conversion_bounds(probs, s, loss=loss, forward=forward)
        if not (float(low) - 1e-12 <= delta <= float(high) + 1e-12):
            where = ""
            if by_cols:
                where = " in segment " + ", ".join(f"{b}={labels.iloc[g][b]!r}" for b in by_cols)
            fw = float(probs[s][forward[s]].sum())
            lo = float(probs[s][loss[s]].sum())
            raise EventLogError(
                f"`changes[{stages[s]!r}]['conversion']`={delta:+g} is out of bounds{where}: "
                f"the stage's forward share is {fw:.4f} and its loss share {lo:.4f}, so the "
                f"change must lie in [{float(low):+.4f}, {float(high):+.4f}]."
            )


# =========================================================================== cut
def cut_log(log: EventLog, cut: Any) -> EventLog:
    """The log as it was at ``cut``: its input rows up to ``cut``, validated again.

    The input rows the log keeps (its mapped columns) with a timestamp at or before
    ``cut`` make a new :class:`EventLog` with the same keywords, ``as_of=cut`` and the
    stage order fixed to this log's. Every rule is applied again at ``cut``: a deal lost
    before ``cut`` and reopened after it is lost, a deal silent for ``stale_after`` before
    ``cut`` is stale, open visits are censored at ``cut``.

    Parameters
    ----------
    log : EventLog
    cut : str or datetime
        A time at or before ``log.as_of`` (naive on an aware log: UTC). At ``log.as_of``
        the log itself is returned.

    Returns
    -------
    EventLog

    Examples
    --------
    >>> import funnelkit as fk
    >>> from funnelkit.forecast import cut_log
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> past = cut_log(log, "2025-01-01")
    >>> str(past.as_of.date()), past.n_deals < log.n_deals
    ('2025-01-01', True)
    """
    cut_ns = C.to_timestamp(cut, log._aware, "cut")
    if cut_ns > log._as_of_ns:
        raise InvalidParameterError(
            f"Parameter `cut`={cut!r} is after the log's as_of ({log.as_of}); a cut must lie "
            "within the log."
        )
    if cut_ns == log._as_of_ns:
        return log
    if cut_ns < int(log._first_ns.min()):
        raise InvalidParameterError(
            f"Parameter `cut`={cut!r} is before the log's first event "
            f"({log._timestamp(np.array([log._first_ns.min()]))[0]}): nothing to cut."
        )
    settings = dict(log._settings)
    settings["as_of"] = log._timestamp(np.array([cut_ns]))[0]
    settings["stages"] = list(log.stages)
    source = log._source
    times = C.parse_times(C.column(source, settings["time"]), settings.get("date_format"))
    valid = ~(times.null | times.unparseable | times.mixed_tz)
    keep = ~(valid & (times.ns > cut_ns))
    if isinstance(source, pa.Table):
        subset = source.filter(pa.array(keep))
    else:
        subset = source.loc[keep]
    return type(log)(subset, **settings)  # the log's own class: no import of the facade


# =========================================================================== forecast
@dataclass(frozen=True, eq=False)
class Forecast:
    """A pipeline forecast: per-deal probabilities and totals (see :func:`forecast`).

    Attributes
    ----------
    deals : pandas.DataFrame
        One row per open deal (columns in :func:`forecast`).
    totals : pandas.DataFrame
        Expected wins and amount, one row (per segment).
    as_of : pandas.Timestamp
        The time forecast from.
    horizon : pandas.Timedelta
        How far ahead.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> fc = log.forecast("90D")
    >>> fc.as_of == log.as_of, fc.horizon
    (True, Timedelta('90 days 00:00:00'))
    >>> len(fc.deals), int(fc.totals["deals"].iloc[0])  # the open deals
    (59, 59)
    >>> round(float(fc.totals["expected_wins"].iloc[0]), 1)
    9.9
    """

    deals: pd.DataFrame
    totals: pd.DataFrame
    as_of: pd.Timestamp
    horizon: pd.Timedelta
    #: the fitted chain's value of entering each state: ``entry_win[g, t, m]`` is the
    #: probability that a deal of segment ``g`` entering state ``m`` at step ``t`` of the
    #: horizon is won by its end (``n + 1`` steps of ``horizon / n``, ``n`` = the horizon
    #: in whole days rounded up; entering at step ``t`` means mid-step); the
    #: same for lost in ``entry_lost``. For pipeline not created yet (per-period forecasts).
    entry_win: np.ndarray | None = field(default=None, repr=False)
    entry_lost: np.ndarray | None = field(default=None, repr=False)
    #: per-period forecast (``by_period=``; columns in :meth:`EventLog.forecast`) and the
    #: wins per period before it (:mod:`funnelkit._period_forecast`); None without
    periods: pd.DataFrame | None = field(default=None, repr=False)
    period_history: pd.DataFrame | None = field(default=None, repr=False)
    #: the deal bootstrap's refits (``n_boot`` of them; None without): expected wins of
    #: the open deals per refit and segment ``(n_boot, G)``, and each refit's
    #: ``entry_win`` ``(n_boot, G, n + 1, M)``. The per-period forecast draws each
    #: simulation's chain from them.
    wins_boot: np.ndarray | None = field(default=None, repr=False)
    entry_win_boot: np.ndarray | None = field(default=None, repr=False)
    #: read at several ends of the one fit (the per-period forecast's period ends): each
    #: open deal's probability of being won by each end ``(n_deals, K)`` and the
    #: refits' expected wins per segment by each end ``(n_boot, G, K)``; None without
    p_win_by_end: np.ndarray | None = field(default=None, repr=False)
    wins_boot_by_end: np.ndarray | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        t = self.totals
        return (
            f"<Forecast from {self.as_of} over {self.horizon}: {int(t['deals'].sum()):,} open "
            f"deals, {float(t['expected_wins'].sum()):,.1f} expected wins>"
        )

    def _repr_html_(self) -> str:
        head = html.escape(f"Forecast from {self.as_of}, horizon {self.horizon}")
        return f"<div><b>{head}</b>{self.totals.to_html(index=False)}</div>"


def _horizon(horizon: Any) -> int:
    return int(C.to_duration(horizon, "horizon").value)


def _calendar_visits(log: EventLog) -> Visits:
    """Visits with dwell in calendar time (the horizon is calendar time)."""
    if getattr(log, "calendar", None) is None:
        return log._visits()
    from ._kernel import compute_visits

    return compute_visits(log)


class _Step(NamedTuple):
    """One group's Aalen–Johansen curves: ``cif`` of shape ``(len(times), n_dest)`` just
    after each event time (0 before the first; ``1 − cif.sum(1)`` is the Kaplan–Meier
    survival), known up to the longest follow-up ``tau``; beyond it the exits go on at the
    hazard ``lam`` of the last quarter of follow-up, split by that quarter's mix ``frac``.
    ``cif`` holds only the destinations ``cols`` the group's visits went to (an
    incidence curve that ends at 0 is 0 throughout: a stage's visits reach a few of the
    states), ``frac`` every destination; ``table`` is ``cif`` after a row of zeros
    (``cif`` is a view of it): the value at any time is one row of it, without a copy
    per lookup (:func:`_at` gives every destination)."""

    times: np.ndarray
    cif: np.ndarray
    tau: float
    lam: float
    frac: np.ndarray
    table: np.ndarray
    cols: np.ndarray


#: rows of visits per Aalen–Johansen call of the forecast's curves: its temporaries are
#: about 280 bytes a row (curves of every destination, ten per-block arrays), so a 1M-deal
#: log's 6.5M visits in one call needed 1.8 GB at once
STEP_ROWS = 1_000_000


def _step_functions(
    group: np.ndarray,
    time: np.ndarray,
    dest: np.ndarray,
    n_groups: int,
    n_dest: int,
    weight: np.ndarray | None = None,
) -> list[_Step]:
    """Aalen–Johansen cumulative incidence per group (weighted: bootstrap or recency
    weights) — the library's estimator (:func:`funnelkit._competing.aalen_johansen`, its
    curves without the variances). ``dest`` is the destination of a completed visit, −1
    for a censored one; visits of weight 0 are left out. The groups are estimated in
    runs of consecutive groups of at most :data:`STEP_ROWS` visits (a group's curves do
    not depend on the other groups)."""
    if weight is None:
        weight = np.ones(time.size)
    pos = np.flatnonzero(weight > 0)
    group, time, dest, weight = group[pos], time[pos], dest[pos], weight[pos]
    size = np.bincount(group, minlength=n_groups)
    out: list[_Step] = []
    lo = 0
    while lo < n_groups:  # loop over runs of groups
        hi, rows = lo + 1, int(size[lo])
        while hi < n_groups and rows + int(size[hi]) <= STEP_ROWS:
            rows += int(size[hi])
            hi += 1
        part = (group, time, dest, weight)
        if hi - lo < n_groups:
            sel = np.flatnonzero((group >= lo) & (group < hi))
            part = (group[sel], time[sel], dest[sel], weight[sel])
        out.extend(_run_steps(*part, lo, hi, n_dest))
        lo = hi
    return out


def _run_steps(
    group: np.ndarray,
    time: np.ndarray,
    dest: np.ndarray,
    weight: np.ndarray,
    lo: int,
    hi: int,
    n_dest: int,
) -> list[_Step]:
    """:func:`_step_functions` of the groups ``lo`` … ``hi − 1`` (the rows given are
    theirs)."""
    aj = aalen_johansen(
        group - lo, time, dest + 1, hi - lo, n_dest,
        weights=weight, curves=True, variance=False,
    )  # fmt: skip
    assert aj.c_group is not None and aj.c_time is not None and aj.t_max is not None
    assert aj.c_events is not None and aj.c_cif is not None and aj.c_surv is not None
    bounds = np.searchsorted(aj.c_group, np.arange(hi - lo + 1), side="left")
    none = np.zeros(n_dest)
    out = []
    for k in range(hi - lo):  # loop over (segment, stage) groups
        a, b = bounds[k], bounds[k + 1]
        has = aj.c_events[a:b] > 0  # the event times (a censoring alone changes nothing)
        tau = float(aj.t_max[k]) if b > a else 0.0
        if not has.any():
            table = np.zeros((1, 0))
            out.append(_Step(np.zeros(0), table[1:], tau, 0.0, none, table, np.zeros(0, int)))
            continue
        times = aj.c_time[a:b][has].astype(np.float64)
        full = aj.c_cif[a:b][has]
        cols = np.flatnonzero(full[-1] > 0)  # non-decreasing curves: the others are 0
        table = np.empty((times.size + 1, cols.size))
        table[0] = 0.0
        table[1:] = full[:, cols]
        del full
        cif = table[1:]
        surv = aj.c_surv[a:b][has]
        # the tail beyond tau: the hazard and exit mix of the last quarter of follow-up
        lam, frac = 0.0, none
        lo_t = 0.75 * tau
        i_lo = int(np.searchsorted(times, lo_t, side="right"))
        s_lo = surv[i_lo - 1] if i_lo else 1.0
        c_lo = cif[i_lo - 1] if i_lo else np.zeros(cols.size)
        s_tau = surv[-1]
        if s_tau > 0 and s_lo > s_tau and tau > lo_t:
            lam = float(-np.log(s_tau / s_lo) / (tau - lo_t))
            frac = np.zeros(n_dest)
            frac[cols] = (cif[-1] - c_lo) / (s_lo - s_tau)
        out.append(_Step(times, cif, tau, lam, frac, table, cols))
    return out


def _at(step: _Step, x: np.ndarray, tail: bool = True) -> np.ndarray:
    """Cumulative incidence at times ``x`` (any shape) → ``x.shape + (n_dest,)``; beyond
    the longest follow-up extrapolated with the step's tail (``tail``) or flat."""
    x = np.asarray(x)
    c = np.zeros((*x.shape, step.frac.size))
    c[..., step.cols] = step.table[np.searchsorted(step.times, x, side="right")]
    if tail and step.lam > 0:
        s_tau = 1.0 - step.cif[-1].sum()
        extra = np.clip(np.asarray(x, dtype=np.float64) - step.tau, 0.0, None)
        c = c + (s_tau * -np.expm1(-step.lam * extra))[..., None] * step.frac
    return c


def _incidence(
    step: _Step, q: np.ndarray, x: np.ndarray, competing: bool, tail: bool = True
) -> np.ndarray:
    """Sub-distribution of leaving to each state by time ``x``: the Kaplan–Meier share
    that has left, split by the exit shares ``q`` (or, with ``competing``, the
    Aalen–Johansen incidence itself)."""
    c = _at(step, x, tail)
    if competing:
        return c
    return c.sum(axis=-1, keepdims=True) * q


@dataclass(frozen=True)
class _Fit:
    """The fitted semi-Markov chain of one forecast (per segment)."""

    pi: np.ndarray  # (G, S) stale share
    q: np.ndarray  # (G, S, M) non-stale exit shares
    steps: list[_Step]  # per (segment, stage)
    w_full: np.ndarray  # (G, n + 1, M) value of entering a state at a step: won by the end
    l_full: np.ndarray  # the same, lost
    resolved: np.ndarray  # (G, S) weighted completed visits the stage's model rests on


def _fit(
    log: EventLog,
    v: Visits,
    seg: np.ndarray,
    G: int,
    h_ns: int,
    competing: bool,
    weight: np.ndarray,
) -> _Fit:
    """Fit the chain on visits weighted by ``weight`` (one per visit: a deal's bootstrap
    weight times the visit's recency weight) and run the backward recursion."""
    S = log._n_stages
    M = len(log._catalogue)  # non-stale states: stages, won names, lost names
    won = log._kind == V.WON_KIND
    lost = log._kind == V.LOST_KIND
    ex = v.next != NO_NEXT
    key = (seg[v.deal[ex]] * S + v.stage[ex]) * (M + 1) + v.next[ex]
    counts = np.bincount(key, weights=weight[ex], minlength=G * S * (M + 1)).reshape(G, S, M + 1)
    probs = exit_probabilities(counts)
    pi = probs[..., M]
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where((1 - pi)[..., None] > 0, probs[..., :M] / (1 - pi)[..., None], 0.0)
    keep = v.dwell != NAT
    dest = np.where(v.censored[keep], -1, v.next[keep])
    steps = _step_functions(
        seg[v.deal[keep]] * S + v.stage[keep], v.dwell[keep], dest, G * S, M, weight[keep]
    )
    # ---- grid and per-leg sub-distributions: phi[g, s, m, d], dwell rounded to d steps
    n = max(1, math.ceil(h_ns / _DAY_NS))
    step_ns = h_ns / n
    edges = (np.arange(-1, n + 1) + 0.5) * step_ns  # (d ± ½) steps
    edges[0] = -1.0
    phi = np.zeros((G, S, M, n + 1))
    for g in range(G):  # loop over segments and stages
        for s in range(S):
            inc = _incidence(steps[g * S + s], q[g, s], edges, competing)  # (n + 2, M)
            phi[g, s] = np.diff(inc, axis=0).T * (1 - pi[g, s])
    stale_ns = log.stale_after.value if log.stale_after is not None else None
    t_idx = np.arange(n + 1)
    if stale_ns is None:
        stale_leg = np.zeros(n + 1)
    else:  # a deal entering at step t (mid-step) is declared stale by the horizon
        stale_leg = ((n - t_idx + 0.5) * step_ns > stale_ns).astype(np.float64)
    # ---- backward recursion over steps: value of entering state m at step t; won and
    # lost side by side (last axis), the legs of d ≥ 1 steps as one matrix product per step
    wl = np.zeros((G, n + 1, M, 2))
    wl[:, :, won, 0] = 1.0
    wl[:, :, lost, 1] = 1.0
    outcome = np.stack([won, lost], axis=-1).astype(np.float64)  # (M, 2)
    same_step = np.einsum("gsm,mk->gsk", phi[..., 0], outcome)  # leaving to an outcome at once
    legs = np.ascontiguousarray(phi.transpose(0, 1, 3, 2))  # (G, S, n + 1, M)
    inv = _inverse(np.eye(S) - phi[:, :, :S, 0])  # same-step moves between stages
    for t in range(n, -1, -1):  # loop over horizon steps
        d_max = n - t
        rhs = same_step.copy()
        if d_max:
            rhs += legs[:, :, 1 : d_max + 1].reshape(G, S, d_max * M) @ wl[:, t + 1 :].reshape(
                G, d_max * M, 2
            )
        rhs[..., 1] += pi * stale_leg[t]
        wl[:, t, :S] = inv @ rhs
    w_full = np.ascontiguousarray(wl[..., 0])
    l_full = np.ascontiguousarray(wl[..., 1])
    return _Fit(pi, q, steps, w_full, l_full, counts.sum(axis=-1))


def _first_leg(
    fit: _Fit,
    log: EventLog,
    v: Visits,
    vis: np.ndarray,
    g_of: np.ndarray,
    h_ns: int,
    competing: bool,
    bounds_too: bool = False,
    end_steps: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """``p_win``, ``p_lost`` of the open visits ``vis``, conditioned on their time in the
    stage; with ``bounds_too`` also the lowest and highest ``p_win`` the data allow: the
    curves held flat beyond their longest follow-up, and that unresolved mass all won.
    With ``end_steps`` (earlier ends of the horizon, in steps of the fit's grid) last
    also ``p_win`` by each of them, ``(len(vis), len(end_steps))``: the chain is
    time-homogeneous, so leaving at step ``i`` with ``r − i`` steps left to an end ``r``
    is worth ``w_full[n − r + i]`` — one fit serves every end."""
    S = log._n_stages
    M = fit.q.shape[-1]
    n = fit.w_full.shape[1] - 1
    step_ns = h_ns / n
    deal = v.deal[vis]
    stage = v.stage[vis]
    age = v.dwell[vis].astype(np.float64)
    stale_ns = log.stale_after.value if log.stale_after is not None else None
    if stale_ns is None:
        stale_first = np.zeros(vis.size)
    else:
        stale_first = (log._as_of_ns + h_ns - log._last_ns[deal] > stale_ns).astype(float)
    n_out = 4 if bounds_too else 2
    out = [np.zeros(vis.size) for _ in range(n_out)]
    ends = [] if end_steps is None else [min(int(r), n) for r in end_steps]
    by_end = np.zeros((vis.size, len(ends)))
    offsets = np.arange(n + 1) * step_ns
    group = g_of * S + stage
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(fit.steps) + 1), side="left")
    chunk = max(1, _BLOCK // ((n + 1) * M))
    pi, q = fit.pi, fit.q
    for k in range(len(fit.steps)):  # loop over (segment, stage) groups, in blocks of deals
        g, s = divmod(k, S)
        step = fit.steps[k]
        for a in range(bounds[k], bounds[k + 1], chunk):
            idx = order[a : min(a + chunk, bounds[k + 1])]
            x = age[idx, None] + offsets
            for tail in (True, False) if bounds_too else (True,):  # extrapolated, flat
                inc = _incidence(step, q[g, s], x, competing, tail)
                surv_a = 1.0 - inc[:, 0, :].sum(axis=-1)
                denom = pi[g, s] + (1 - pi[g, s]) * surv_a
                d_inc = np.diff(inc, axis=1) * (1 - pi[g, s])  # (k, n, M)
                win_ = np.einsum("kjm,jm->k", d_inc, fit.w_full[g, 1:])
                lost_ = np.einsum("kjm,jm->k", d_inc, fit.l_full[g, 1:])
                lost_ += pi[g, s] * stale_first[idx]
                ok = denom > 0
                safe = np.where(ok, denom, 1.0)
                w_ = np.where(ok, win_ / safe, 0.0)
                l_ = np.where(ok, lost_ / safe, 0.0)
                if tail:
                    out[0][idx], out[1][idx] = w_, l_
                    for j, r in enumerate(ends):  # loop over the earlier ends
                        if r > 0:
                            t = np.arange(n - r + 1, n + 1)
                            w_r = np.einsum("kjm,jm->k", d_inc[:, :r], fit.w_full[g, t])
                            by_end[idx, j] = np.where(ok, w_r / safe, 0.0)
                    continue
                # the flat curves: the mass unresolved at tau within the horizon may all win
                s_tau = 1.0 - step.cif[-1].sum() if step.cif.shape[0] else 1.0
                reach = age[idx] + h_ns > step.tau
                u = np.where(ok & reach, (1 - pi[g, s]) * s_tau / safe, 0.0)
                out[2][idx] = w_
                out[3][idx] = np.minimum(w_ + u, 1.0 - l_)
    p_win = np.clip(out[0], 0.0, 1.0)
    p_lost = np.clip(out[1], 0.0, 1.0 - p_win)
    res: tuple[np.ndarray, ...] = (p_win, p_lost)
    if bounds_too:
        low = np.minimum(np.clip(out[2], 0.0, 1.0), p_win)
        high = np.maximum(np.clip(out[3], 0.0, 1.0), p_win)
        res = (*res, low, high)
    if end_steps is not None:
        res = (*res, np.clip(by_end, 0.0, 1.0))
    return res


#: a stage's model needs this many completed visits (weighted) to be trusted
_MIN_RESOLVED = 20
#: the forecast says "too little history" when the wins it cannot tell exceed this share
_MAX_UNRESOLVED = 0.25


def _recency(log: EventLog, v: Visits, half_life: Any, window: Any) -> np.ndarray:
    """One weight per visit: 1, or halved every ``half_life`` before ``as_of`` (by the
    visit's entry), or 0 for visits entered more than ``window`` before ``as_of``."""
    age = (log._as_of_ns - v.entered).astype(np.float64)
    if half_life is not None:
        return np.exp2(-np.clip(age, 0.0, None) / C.to_duration(half_life, "half_life").value)
    if window is not None:
        return (age <= C.to_duration(window, "window").value).astype(np.float64)
    return np.ones(v.deal.size)


def _forecast(
    log: EventLog,
    h_ns: int,
    by_cols: list[str],
    exits: str,
    *,
    n_boot: int = 0,
    seed: int | None = None,
    half_life: Any = None,
    window: Any = None,
    keep_entry_boot: bool = False,
    ends_ns: np.ndarray | None = None,
    fit_out: dict[str, Any] | None = None,
) -> Forecast:
    """The forecast over ``h_ns``; with ``ends_ns`` (times ≤ ``as_of + h_ns``) also read
    at each of those ends from the same fits (``Forecast.p_win_by_end``,
    ``wins_boot_by_end``), each end rounded to the grid's step (under a day).
    ``fit_out``: a dict that receives the model's fit (key ``"fit"``), for a caller that
    reads the same model again."""
    competing = exits == "by_dwell"
    seg, labels = segments(log, by_cols)
    G = len(labels)
    v = _calendar_visits(log)
    recency = _recency(log, v, half_life, window)
    fit = _fit(log, v, seg, G, h_ns, competing, recency)
    if fit_out is not None:
        fit_out["fit"] = fit
    vis = np.flatnonzero(v.censored)
    deal = v.deal[vis]
    stage = v.stage[vis]
    g_of = seg[deal]
    r_ends = None
    if ends_ns is not None:  # the ends in steps of the fit's grid
        n_steps = fit.w_full.shape[1] - 1
        r_ends = np.rint((ends_ns - log._as_of_ns) / (h_ns / n_steps)).astype(np.int64)
    first = _first_leg(fit, log, v, vis, g_of, h_ns, competing, True, r_ends)
    p_win, p_lost, p_min, p_max = first[:4]
    by_end = first[4] if r_ends is not None else None
    amount = log._amount[deal] if log._amount is not None else np.full(vis.size, np.nan)
    a0 = np.where(np.isfinite(amount), amount, 0.0)
    boot_w = boot_a = boot_entry = boot_end = None
    if n_boot:  # the model's own uncertainty: refit on deals drawn with replacement
        rng = np.random.default_rng(seed)
        boot_w, boot_a = np.empty((n_boot, G)), np.empty((n_boot, G))
        if r_ends is not None:
            boot_end = np.empty((n_boot, G, r_ends.size))
        if keep_entry_boot:
            boot_entry = np.empty((n_boot, *fit.w_full.shape))
        n = log.n_deals
        for b in range(n_boot):  # loop over bootstrap draws
            wd = rng.multinomial(n, np.full(n, 1.0 / n)).astype(np.float64)
            fb = _fit(log, v, seg, G, h_ns, competing, recency * wd[v.deal])
            if boot_entry is not None:
                boot_entry[b] = fb.w_full
            fb_first = _first_leg(fb, log, v, vis, g_of, h_ns, competing, False, r_ends)
            pw = fb_first[0]
            boot_w[b] = np.bincount(g_of, weights=pw, minlength=G)
            if boot_end is not None:
                for j in range(boot_end.shape[-1]):  # loop over the ends
                    boot_end[b, :, j] = np.bincount(g_of, weights=fb_first[2][:, j], minlength=G)
            boot_a[b] = np.bincount(g_of, weights=pw * a0, minlength=G)
    thin = fit.resolved[g_of, stage] < _MIN_RESOLVED
    deals = expand(labels, g_of, by_cols)
    deals["deal"] = log._deal_labels.take(deal)
    deals["stage"] = pd.Categorical.from_codes(stage, categories=log.stages)
    deals["entered"] = log._timestamp(v.entered[vis])
    deals["days_in_stage"] = v.dwell[vis] / _DAY_NS
    deals["amount"] = amount
    deals["p_win"] = p_win
    deals["p_lost"] = p_lost
    deals["p_open"] = 1.0 - p_win - p_lost
    deals["p_win_min"] = p_min
    deals["p_win_max"] = p_max
    deals["thin_history"] = thin
    deals["expected_amount"] = p_win * amount
    totals = _totals(deals, g_of, G, labels, by_cols, boot_w, boot_a)
    return Forecast(
        deals=deals,
        totals=totals,
        as_of=log.as_of,
        horizon=pd.Timedelta(h_ns, unit="ns"),
        entry_win=fit.w_full,
        entry_lost=fit.l_full,
        wins_boot=boot_w,
        entry_win_boot=boot_entry,
        p_win_by_end=by_end,
        wins_boot_by_end=boot_end,
    )


def _history_note(unresolved: float, expected: float, thin: int, n: int) -> str:
    """Why a forecast rests on too little history ('' when it does not)."""
    parts = []
    if expected > 0 and unresolved > _MAX_UNRESOLVED * expected:
        parts.append(
            f"{unresolved:,.1f} of the wins are beyond the longest time the history has "
            "followed deals in their stage (the interval includes them)"
        )
    if n and thin > 0.1 * n:
        parts.append(
            f"{thin:,} of {n:,} open deals sit in stages with fewer than {_MIN_RESOLVED} "
            "completed visits in the history"
        )
    return "; ".join(parts)


def _totals(
    deals: pd.DataFrame,
    g_of: np.ndarray,
    G: int,
    labels: pd.DataFrame,
    by_cols: list[str],
    boot_w: np.ndarray | None = None,
    boot_a: np.ndarray | None = None,
) -> pd.DataFrame:
    p = deals["p_win"].to_numpy()
    lo_p, hi_p = deals["p_win_min"].to_numpy(), deals["p_win_max"].to_numpy()
    a = deals["amount"].to_numpy(dtype=np.float64)
    has = np.isfinite(a)
    a0 = np.where(has, a, 0.0)
    var = p * (1 - p)

    def tot(x: np.ndarray) -> np.ndarray:
        return np.bincount(g_of, weights=x, minlength=G)

    n = np.bincount(g_of, minlength=G)
    wins, var_w = tot(p), tot(var)
    amt, var_a = tot(a0 * p), tot(a0 * a0 * var)
    model_w = np.var(boot_w, axis=0, ddof=1) if boot_w is not None and len(boot_w) > 1 else 0.0
    model_a = np.var(boot_a, axis=0, ddof=1) if boot_a is not None and len(boot_a) > 1 else 0.0
    sd_w, sd_a = np.sqrt(var_w + model_w), np.sqrt(var_a + model_a)
    w_lo, w_hi = tot(lo_p), tot(hi_p)
    thin = np.bincount(g_of, weights=deals["thin_history"].to_numpy(dtype=np.float64), minlength=G)
    out = expand(labels, np.arange(G), by_cols)
    out["deals"] = n.astype(np.int64)
    out["expected_wins"] = wins
    out["wins_low"] = np.clip(w_lo - Z95 * sd_w, 0.0, None)
    out["wins_high"] = np.minimum(w_hi + Z95 * sd_w, n)
    out["wins_sd_model"] = np.sqrt(model_w) * np.ones(G)
    out["wins_unresolved"] = w_hi - w_lo
    out["expected_lost"] = tot(deals["p_lost"].to_numpy())
    out["expected_open"] = tot(deals["p_open"].to_numpy())
    n_amt = np.bincount(g_of[has], minlength=G)
    none = n_amt == 0
    out["deals_with_amount"] = n_amt.astype(np.int64)
    out["expected_amount"] = np.where(none, np.nan, amt)
    out["amount_low"] = np.where(none, np.nan, np.clip(tot(a0 * lo_p) - Z95 * sd_a, 0.0, None))
    out["amount_high"] = np.where(none, np.nan, tot(a0 * hi_p) + Z95 * sd_a)
    notes = [
        _history_note(float(u), float(e), int(t), int(k))
        for u, e, t, k in zip(w_hi - w_lo, wins, thin, n, strict=True)
    ]
    out["enough_history"] = np.array([not x for x in notes], dtype=bool)
    out["history_note"] = pd.array(notes, dtype="string")
    return out


def forecast_args(
    log: EventLog,
    by: str | Sequence[str] | None,
    as_of: Any,
    exits: Any,
    n_boot: Any,
    half_life: Any,
    window: Any,
) -> tuple[EventLog, list[str], int]:
    """The checks both forecasts share (over one horizon, and per period in
    :mod:`funnelkit._period_forecast`): the log cut at ``as_of``, the ``by`` columns and
    ``n_boot``."""
    by_cols = normalize_by(by)
    _check_exits(exits)
    n_boot = int_param("n_boot", n_boot, 0, MAX_BOOT)
    if half_life is not None and window is not None:
        raise InvalidParameterError(
            f"Parameters `half_life`={half_life!r} and `window`={window!r} both weight "
            "recent history: pass one of them."
        )
    if as_of is not None:
        log = cut_log(log, as_of)
    return log, by_cols, n_boot


def forecast(
    log: EventLog,
    horizon: Any = None,
    *,
    by: str | Sequence[str] | None = None,
    as_of: Any = None,
    exits: Literal["shares", "by_dwell"] = "by_dwell",
    n_boot: int = 100,
    seed: int | None = 0,
    half_life: Any = None,
    window: Any = None,
) -> Forecast:
    """Implementation of :meth:`funnelkit.EventLog.forecast` over one horizon (documented
    there; the per-period forecast, ``by_period=``, is
    :func:`funnelkit._period_forecast.forecast_by_period`).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> from funnelkit.forecast import forecast
    >>> forecast(log, "90D").totals.equals(log.forecast("90D").totals)
    True
    """
    log, by_cols, n_boot = forecast_args(log, by, as_of, exits, n_boot, half_life, window)
    h_ns = _horizon("90D" if horizon is None else horizon)
    if isinstance(half_life, str) and half_life == "auto":
        half_life = _auto_half_life(log, h_ns, exits)
    fc = _forecast(
        log, h_ns, by_cols, exits, n_boot=n_boot, seed=seed, half_life=half_life, window=window
    )
    short = fc.totals.loc[~fc.totals["enough_history"].to_numpy(dtype=bool)]
    for note in short["history_note"].astype(str):  # one warning per segment short of history
        warn(f"Too little history for a {fc.horizon.days}-day forecast from {fc.as_of}: {note}.")
    return fc


# =========================================================================== backtest
#: the forecast and its two naive references, in the order of every backtest table
MODELS = ("forecast", "naive", "naive_win_rate")


@dataclass(frozen=True, eq=False)
class Backtest:
    """Forecasts from past dates set against what happened (see :func:`backtest`).

    Attributes
    ----------
    cuts : pandas.DataFrame
        One row per cut: the forecast's totals against the outcome (columns in
        :func:`backtest`).
    scores : pandas.DataFrame
        One row per model, pooled over the cuts: Brier score, skill against the
        horizon-aware naive, predicted/actual ratios and interval coverage across cuts.
    deals : pandas.DataFrame
        Every cut's open deals with each model's probability and the outcome.
    calibration : pandas.DataFrame
        Reliability table per model and bin of predicted ``p_win``, pooled over the cuts.
    cut : pandas.Timestamp
        The last cut.
    horizon : pandas.Timedelta
    forecast : Forecast
        The forecast made at the last cut.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> bt = fk.backtest(log, "2025-03-01", "60D")
    >>> str(bt.cut.date()), bt.horizon
    ('2025-03-01', Timedelta('60 days 00:00:00'))
    >>> len(bt.deals), int(bt.deals["won"].sum())
    (59, 10)
    >>> bt.forecast.as_of == bt.cut
    True
    """

    cut: pd.Timestamp
    horizon: pd.Timedelta
    deals: pd.DataFrame
    calibration: pd.DataFrame
    scores: pd.DataFrame
    forecast: Forecast
    cuts: pd.DataFrame

    def __repr__(self) -> str:
        s = self.scores.set_index("model")
        f = s.loc["forecast"]
        n = len(self.cuts)
        return (
            f"<Backtest over {self.horizon}: {n} cut{'s' if n != 1 else ''} "
            f"({self.cuts['cut'].iloc[0].date()} … {self.cut.date()}), "
            f"{len(self.deals):,} open deal-cuts; Brier {f['brier']:.4f} (naive "
            f"{s.loc['naive', 'brier']:.4f}); predicted/actual wins "
            f"{f['ratio_min']:.2f}–{f['ratio_max']:.2f}; interval covered at "
            f"{int(f['covered'])} of {n}>"
        )

    def _repr_html_(self) -> str:
        head = html.escape(f"Backtest over {self.horizon}, {len(self.cuts)} cuts")
        return (
            f"<div><b>{head}</b>{self.scores.to_html(index=False)}"
            f"{self.cuts.to_html(index=False)}</div>"
        )


def _calibration(pred: dict[str, np.ndarray], won: np.ndarray, bins: int) -> pd.DataFrame:
    edges = np.linspace(0.0, 1.0, bins + 1)
    y = won.astype(np.float64)
    parts = []
    for model, p in pred.items():  # loop over the models
        b = np.clip(np.floor(p * bins).astype(np.int64), 0, bins - 1)
        n = np.bincount(b, minlength=bins)
        sp = np.bincount(b, weights=p, minlength=bins)
        sy = np.bincount(b, weights=y, minlength=bins)
        nz = np.flatnonzero(n)
        lo, hi = wilson(sy[nz], n[nz])
        parts.append(
            pd.DataFrame(
                {
                    "model": model,
                    "bin": nz.astype(np.int64),
                    "bin_low": edges[nz],
                    "bin_high": edges[nz + 1],
                    "deals": n[nz].astype(np.int64),
                    "mean_predicted": sp[nz] / n[nz],
                    "observed": sy[nz] / n[nz],
                    "observed_low": lo,
                    "observed_high": hi,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


class _Cuts:
    """The log cut at given times, each cut made once (rolling cuts share their ends)."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._done: dict[int, EventLog] = {}

    def __call__(self, ns: int) -> EventLog:
        if ns not in self._done:
            self._done[ns] = cut_log(self.log, self.log._timestamp(np.array([ns]))[0])
        return self._done[ns]


def _open_stage(log: EventLog) -> pd.DataFrame:
    """Deals open at ``log.as_of`` (not closed, not stale: the deals a forecast is made
    for) and the stage each is in."""
    v = log._visits()
    vis = np.flatnonzero(v.censored)
    return pd.DataFrame(
        {
            "deal": log._deal_labels.take(v.deal[vis]),
            "stage": np.asarray(log.stages, dtype=object)[v.stage[vis]],
        }
    )


def _horizon_naive(cuts: _Cuts, cut_ns: int, h_ns: int) -> tuple[dict[str, float], float]:
    """Per stage, the share of the deals open there ``h`` before the cut that were won by
    the cut (and that share over all stages): the naive forecast that knows the horizon.
    Empty and NaN when the log does not reach back ``h`` before the cut."""
    if cut_ns - h_ns < int(cuts.log._first_ns.min()):
        return {}, np.nan
    early = _open_stage(cuts(cut_ns - h_ns))
    if early.empty:
        return {}, np.nan
    then = cuts(cut_ns).deals()
    outcome = pd.Series(then["outcome"].astype(str).to_numpy(), index=then["deal"])
    won = outcome.reindex(early["deal"]).to_numpy() == "won"
    rate = pd.Series(won, dtype=float).groupby(early["stage"].to_numpy()).mean()
    return {str(k): float(x) for k, x in rate.items()}, float(won.mean())


def _one_cut(
    cuts: _Cuts, cut_ns: int, h_ns: int, exits: str, opts: Mapping[str, Any]
) -> tuple[pd.DataFrame, Forecast]:
    """The forecast at one cut, each model's probability and the outcome per open deal."""
    past = cuts(cut_ns)
    fc = _forecast(past, h_ns, [], exits, **opts)
    d = fc.deals.copy()
    stage = d["stage"].astype(str)
    # the historic win rate from the stage, ignoring the horizon (the old naive); a stage
    # without an estimate yet takes the overall rate below, so no warning about it
    from .funnel import funnel

    f = funnel(past, warn=False)
    q = past.quality
    resolved = q.won + q.lost + q.stale
    overall = q.won / resolved if resolved else np.nan
    rate = dict(zip(f["stage"].astype(str), f["win_rate_from"].to_numpy(dtype=float), strict=True))
    naive = stage.map(rate).to_numpy(dtype=np.float64)
    d["p_win_win_rate"] = np.where(np.isfinite(naive), naive, overall)
    by_stage, pooled = _horizon_naive(cuts, cut_ns, h_ns)
    h_naive = stage.map(by_stage).to_numpy(dtype=np.float64)
    d["p_win_naive"] = np.where(np.isfinite(h_naive), h_naive, pooled)
    later = cuts(cut_ns + h_ns).deals()
    pos = pd.Index(later["deal"]).get_indexer(d["deal"])
    d["outcome"] = pd.Categorical(
        np.asarray(later["outcome"].astype(str))[pos], categories=list(V.OUTCOMES)
    )
    d["won"] = d["outcome"].to_numpy() == "won"
    return d, fc


def _cut_row(d: pd.DataFrame, fc: Forecast, first_ns: int) -> dict[str, Any]:
    won = d["won"].to_numpy()
    amount = d["amount"].to_numpy(dtype=np.float64)
    t = fc.totals.iloc[0]
    observed = int(won.sum())
    expected = float(t["expected_wins"])
    obs_amount = float(np.nansum(np.where(won, amount, np.nan))) if won.any() else 0.0
    brier = {
        m: float(np.mean((d[col].to_numpy() - won) ** 2))
        for m, col in zip(MODELS, ("p_win", "p_win_naive", "p_win_win_rate"), strict=True)
    }
    naive_wins = float(d["p_win_naive"].sum())
    return {
        "cut": fc.as_of,
        "history_days": (fc.as_of.value - first_ns) / _DAY_NS,
        "deals": len(d),
        "expected_wins": expected,
        "wins_low": float(t["wins_low"]),
        "wins_high": float(t["wins_high"]),
        "observed_wins": observed,
        "ratio": expected / observed if observed else np.nan,
        "covered": bool(t["wins_low"] <= observed <= t["wins_high"]),
        "expected_amount": float(t["expected_amount"]),
        "observed_amount": obs_amount,
        "amount_ratio": float(t["expected_amount"]) / obs_amount if obs_amount else np.nan,
        "brier": brier["forecast"],
        "brier_naive": brier["naive"],
        "brier_skill": 1.0 - brier["forecast"] / brier["naive"] if brier["naive"] else np.nan,
        "naive_wins": naive_wins,
        "naive_ratio": naive_wins / observed if observed else np.nan,
        "brier_naive_win_rate": brier["naive_win_rate"],
        "win_rate_wins": float(d["p_win_win_rate"].sum()),
        "wins_sd_model": float(t["wins_sd_model"]),
        "wins_unresolved": float(t["wins_unresolved"]),
        "enough_history": bool(t["enough_history"]),
        "history_note": str(t["history_note"]),
    }


def _scores(d: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    won = d["won"].to_numpy()
    cols = dict(zip(MODELS, ("p_win", "p_win_naive", "p_win_win_rate"), strict=True))
    per_cut = {
        "forecast": (table["expected_wins"], table["brier"]),
        "naive": (table["naive_wins"], table["brier_naive"]),
        "naive_win_rate": (table["win_rate_wins"], table["brier_naive_win_rate"]),
    }
    observed = table["observed_wins"].to_numpy(dtype=float)
    rows = []
    brier_naive = float(np.mean((d[cols["naive"]].to_numpy() - won) ** 2))
    for m in MODELS:  # loop over the three models
        p = d[cols[m]].to_numpy()
        brier = float(np.mean((p - won) ** 2))
        wins, cut_brier = per_cut[m]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(observed > 0, wins.to_numpy() / observed, np.nan)
        ok = np.isfinite(ratio)
        rows.append(
            {
                "model": m,
                "cuts": len(table),
                "deals": len(d),
                "brier": brier,
                "brier_skill": 1.0 - brier / brier_naive if brier_naive else np.nan,
                "expected_wins": float(np.nansum(p)),
                "observed_wins": int(won.sum()),
                "ratio_min": float(ratio[ok].min()) if ok.any() else np.nan,
                "ratio_median": float(np.median(ratio[ok])) if ok.any() else np.nan,
                "ratio_max": float(ratio[ok].max()) if ok.any() else np.nan,
                "covered": int(table["covered"].sum()) if m == "forecast" else np.nan,
                "beats_naive": int((cut_brier < table["brier_naive"]).sum()),
            }
        )
    return pd.DataFrame(rows)


def rolling_cuts(log: EventLog, h_ns: int, n_cuts: int, every: Any = None) -> np.ndarray:
    """Rolling-origin cut times (ns): the last at ``as_of − horizon`` (the latest whose
    outcome is known), then back by ``every`` — by default evenly spaced over the
    stretch from two horizons after the first event to the last cut, ``n_cuts`` of them
    (fewer, at least a day apart, when the stretch is short)."""
    first = int(log._first_ns.min())
    last = log._as_of_ns - h_ns
    earliest = first + 2 * h_ns
    if last < earliest:
        raise EventLogError(
            f"The log spans {(log._as_of_ns - first) / _DAY_NS:.0f} days: a rolling "
            f"backtest over {h_ns / _DAY_NS:g}-day horizons needs at least three horizons "
            "(two of history before the first cut, one of outcome after the last). Pass "
            "a shorter `horizon`, or one `cut`."
        )
    if every is not None:
        step = C.to_duration(every, "every").value
        if step <= 0:
            raise InvalidParameterError(f"Parameter `every`={every!r} must be positive.")
        times = np.arange(last, earliest - 1, -step)[:n_cuts][::-1]
    else:  # whole days apart, so every cut keeps the time of day of as_of
        days = int((last - earliest) // _DAY_NS)
        step_days = days // (n_cuts - 1) if n_cuts > 1 and days else 0
        k = min(n_cuts, days // step_days + 1) if step_days else 1
        times = last - np.arange(k)[::-1] * step_days * _DAY_NS
    return np.asarray(times, dtype=np.int64)


@validate_params(
    {
        "log": [CHECKED_INSIDE],
        "cut": ["timestamp", list, tuple, pd.Index, np.ndarray, None],
        "horizon": ["duration"],
        "n_cuts": [Interval(Integral, 1, 500)],
        "every": ["duration", None],
        "exits": [Options(str, ("shares", "by_dwell"))],
        "bins": [Interval(Integral, 1, None)],
        "n_boot": [Interval(Integral, 0, MAX_BOOT)],
        "seed": [Interval(Integral, 0, None), None],
        "half_life": ["duration", None],
        "window": ["duration", None],
    },
    name="fk.backtest",
)
def backtest(
    log: EventLog,
    cut: Any = None,
    horizon: Any = "30D",
    *,
    n_cuts: int = 12,
    every: Any = None,
    exits: Literal["shares", "by_dwell"] = "by_dwell",
    bins: int = 10,
    n_boot: int = 100,
    seed: int | None = 0,
    half_life: Any = None,
    window: Any = None,
) -> Backtest:
    """Forecast from past dates and compare with what happened ``horizon`` later.

    **Rolling origin** by default: the log is cut at ``n_cuts`` dates across its history
    (:func:`rolling_cuts`: the last one ``horizon`` before ``log.as_of``, the first two
    horizons after the first event), and at each one the forecast is made from what was
    known then (:func:`cut_log`: the input rows up to the cut, validated again as of the
    cut) and scored against the deals' outcomes ``horizon`` later (won, lost, stale or
    still open then, by the same rules). One cut flatters or condemns a model by chance;
    the spread across cuts is what to trust.

    Two naive references score the forecast:

    * ``naive`` (the reference of ``brier_skill``) knows the horizon: per stage, the share
      of the deals open there one horizon *before* the cut that were won *by* the cut
      (all stages pooled where a stage had none; NaN when the log does not reach back
      that far);
    * ``naive_win_rate`` is the historic win rate from the deal's stage
      (``win_rate_from`` of :meth:`EventLog.funnel` at the cut), which ignores the
      horizon: it over-predicts short horizons (kept for comparison; before version 0.2
      it was the only naive).

    Parameters
    ----------
    log : EventLog
    cut : str, datetime or list of them, optional
        The past date(s) to forecast from; each ``cut + horizon`` must not be after
        ``log.as_of``. Default: rolling cuts (``n_cuts``, ``every``).
    horizon : str or timedelta, default "30D"
    n_cuts : int, default=12
        How many rolling cuts (without ``cut``).
    every : str or timedelta, optional
        The spacing of rolling cuts, counted back from the last; default: ``n_cuts``
        evenly spaced cuts.
    exits : {"shares", "by_dwell"}, default "by_dwell"
        The forecast's exit model (see :func:`forecast`).
    bins : int, default=10
        Equal-width bins of predicted win probability for the calibration table.
    n_boot, seed, half_life, window
        The forecast's (see :meth:`EventLog.forecast`): bootstrap draws for the model's own
        uncertainty in the intervals (0: the open deals' chance only) and its seed, and
        the weighting of recent history (:func:`tune_recency` compares half-lives).

    Returns
    -------
    Backtest
        ``cuts``: one row per cut:

        * ``cut`` : the date forecast from
        * ``history_days`` : days of log before it (from the first event)
        * ``deals`` : deals open at the cut (stale deals are not forecast)
        * ``expected_wins``, ``wins_low``, ``wins_high`` : the forecast's wins within the
          horizon and its 95% interval (the open deals' chance, the model's bootstrap
          uncertainty and the wins the history cannot tell yet; see
          :meth:`EventLog.forecast`)
        * ``observed_wins`` : of those deals, won by ``cut + horizon``
        * ``ratio`` : ``expected_wins / observed_wins`` (NaN when none were won)
        * ``covered`` : the interval holds ``observed_wins``
        * ``expected_amount``, ``observed_amount``, ``amount_ratio`` : the same for the
          won amount (sum of the amounts of the deals won)
        * ``brier``, ``brier_naive``, ``brier_skill`` : mean (p_win − won)² of the
          forecast and the horizon-aware naive, and 1 − brier / brier_naive
        * ``naive_wins``, ``naive_ratio`` : the horizon-aware naive's expected wins and
          its ratio to the observed
        * ``brier_naive_win_rate``, ``win_rate_wins`` : the same for the win-rate naive
        * ``wins_sd_model`` : the bootstrap standard deviation of ``expected_wins``
        * ``wins_unresolved`` : wins the history at the cut cannot tell yet (the stages'
          curves end before the deals' horizons)
        * ``enough_history``, ``history_note`` : whether the history at the cut sufficed
          to forecast (see :meth:`EventLog.forecast`), and why not

        ``scores``: one row per model (``"forecast"``, ``"naive"``,
        ``"naive_win_rate"``), pooled over the cuts:

        * ``model``, ``cuts`` (number of cuts), ``deals`` (deal-cuts scored)
        * ``brier`` : mean (p_win − won)² over every deal-cut
        * ``brier_skill`` : 1 − brier / brier of ``naive`` (0 for ``naive``)
        * ``expected_wins``, ``observed_wins`` : summed over the cuts
        * ``ratio_min``, ``ratio_median``, ``ratio_max`` : of the per-cut predicted /
          actual wins
        * ``covered`` : cuts whose interval held the actual wins (forecast only)
        * ``beats_naive`` : cuts where the model's Brier is below the naive's

        ``deals``: the forecast's deals table (see :func:`forecast`) of every cut, plus

        * ``p_win_naive``, ``p_win_win_rate`` : the two naive models' probabilities
        * ``outcome`` : ``"won"``, ``"lost"``, ``"stale"`` or ``"open"`` at
          ``cut + horizon``
        * ``won`` : outcome is won
        * ``cut`` : the cut the row belongs to

        ``calibration``: one row per model and non-empty bin, pooled over the cuts:

        * ``model`` : as in ``scores``
        * ``bin``, ``bin_low``, ``bin_high`` : bin number and its range of predicted
          ``p_win`` (the last bin includes 1)
        * ``deals`` : deal-cuts in the bin
        * ``mean_predicted`` : their mean predicted ``p_win``
        * ``observed`` : the share of them won by ``cut + horizon``
        * ``observed_low``, ``observed_high`` : Wilson 95% interval of ``observed``

    Raises
    ------
    EventLogError
        A cut outside the log or ``cut + horizon`` after ``log.as_of``, a log too short
        for rolling cuts, or no deal open at a cut.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> bt = fk.backtest(log, horizon="30D", n_cuts=6)  # rolling origin
    >>> len(bt.cuts), bt.scores["model"].tolist()
    (6, ['forecast', 'naive', 'naive_win_rate'])
    >>> list(bt.cuts.columns[:7])
    ['cut', 'history_days', 'deals', 'expected_wins', 'wins_low', 'wins_high', 'observed_wins']
    >>> one = fk.backtest(log, "2025-03-01", "60D")  # one cut
    >>> str(one.cut.date()), len(one.cuts)
    ('2025-03-01', 1)
    """
    h_ns = _horizon(horizon)
    bins = int_param("bins", bins, 1)
    _check_exits(exits)
    opts = {"n_boot": n_boot, "seed": seed, "half_life": half_life, "window": window}
    cuts = _Cuts(log)
    if cut is None:
        times = rolling_cuts(log, h_ns, n_cuts, every)
    else:
        dates = [cut] if not isinstance(cut, list | tuple | pd.Index | np.ndarray) else list(cut)
        if not dates:
            raise InvalidParameterError("Parameter `cut` is an empty list: name a date.")
        times = np.array([cuts(C.to_timestamp(c, log._aware, "cut"))._as_of_ns for c in dates])
    return _backtest(cuts, times, h_ns, exits, bins, opts)


def _backtest(
    cuts: _Cuts, times: np.ndarray, h_ns: int, exits: str, bins: int, opts: Mapping[str, Any]
) -> Backtest:
    log = cuts.log
    first_ns = int(log._first_ns.min())
    parts, rows = [], []
    fc = None
    for t_ns in sorted(set(times.tolist())):  # loop over cuts
        end_ns = t_ns + h_ns
        if end_ns > log._as_of_ns:
            raise EventLogError(
                f"`cut` + `horizon` ({log._timestamp(np.array([end_ns]))[0]}) is after the "
                f"log's as_of ({log.as_of}): what happened by then is not known yet. Pick "
                "an earlier `cut` or a shorter `horizon`."
            )
        d, fc = _one_cut(cuts, t_ns, h_ns, exits, opts)
        if d.empty:
            raise EventLogError(
                f"No deal is open at the cut {fc.as_of}: nothing to forecast. Pick another `cut`."
            )
        rows.append(_cut_row(d, fc, first_ns))
        parts.append(d.assign(cut=fc.as_of))
    assert fc is not None
    deals = pd.concat(parts, ignore_index=True)
    table = pd.DataFrame(rows)
    won = deals["won"].to_numpy()
    pred = {
        m: deals[col].to_numpy()
        for m, col in zip(MODELS, ("p_win", "p_win_naive", "p_win_win_rate"), strict=True)
    }
    return Backtest(
        cut=fc.as_of,
        horizon=fc.horizon,
        deals=deals,
        calibration=_calibration(pred, won, bins),
        scores=_scores(deals, table),
        forecast=fc,
        cuts=table,
    )


@validate_params(
    {
        "log": [CHECKED_INSIDE],
        "horizon": ["duration"],
        "half_lives": [list, tuple, None],
        "n_cuts": [Interval(Integral, 1, 500)],
        "every": ["duration", None],
        "exits": [Options(str, ("shares", "by_dwell"))],
    },
    name="fk.tune_recency",
)
def tune_recency(
    log: EventLog,
    horizon: Any = "30D",
    half_lives: Sequence[Any] | None = None,
    *,
    n_cuts: int = 12,
    every: Any = None,
    exits: Literal["shares", "by_dwell"] = "by_dwell",
) -> pd.DataFrame:
    """Choose how much to weight recent history: a rolling backtest per half-life.

    The same rolling cuts as :func:`backtest` are forecast with each half-life (and with
    none: all history weighs the same) and scored by the pooled Brier score of the
    forecast; the lowest wins (``best``). A process that changes (new rules, a new
    product, a reorganised team) forecasts better from recent history; a stable one
    from all of it, where a short half-life only adds noise. :meth:`EventLog.forecast`
    with ``half_life="auto"`` uses this choice.

    Parameters
    ----------
    log : EventLog
    horizon : str or timedelta, default "30D"
    half_lives : list of str or timedelta, optional
        Candidates; ``None`` in the list stands for no weighting. Default: no weighting
        and 1, 2, 4 and 8 horizons.
    n_cuts, every
        The rolling cuts (see :func:`backtest`).
    exits : {"by_dwell", "shares"}, default "by_dwell"

    Returns
    -------
    pandas.DataFrame
        One row per candidate, in the order given:

        * ``half_life`` : the half-life (NaT: no weighting)
        * ``cuts`` : cuts scored
        * ``deals`` : deal-cuts scored
        * ``brier`` : pooled Brier score of the forecast
        * ``brier_skill`` : 1 − brier / the horizon-aware naive's Brier
        * ``ratio_min``, ``ratio_median``, ``ratio_max`` : per-cut predicted / actual wins
        * ``best`` : the lowest ``brier`` (the first of equals)

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> t = fk.tune_recency(log, "30D", [None, "90D"], n_cuts=4)
    >>> t["half_life"].tolist()
    [NaT, Timedelta('90 days 00:00:00')]
    >>> int(t["best"].sum())
    1
    """
    h_ns = _horizon(horizon)
    _check_exits(exits)
    if half_lives is None:
        half_lives = [None, *(pd.Timedelta(k * h_ns, unit="ns") for k in (1, 2, 4, 8))]
    if not len(half_lives):
        raise InvalidParameterError("Parameter `half_lives` is empty: name at least one.")
    spans = [None if h is None else C.to_duration(h, "half_lives") for h in half_lives]
    cuts = _Cuts(log)
    times = rolling_cuts(log, h_ns, n_cuts, every)
    rows = []
    for h in spans:  # loop over candidate half-lives
        bt = _backtest(cuts, times, h_ns, exits, 10, {"n_boot": 0, "half_life": h})
        f = bt.scores.set_index("model").loc["forecast"]
        rows.append(
            {
                "half_life": pd.NaT if h is None else pd.Timedelta(h),
                "cuts": int(f["cuts"]),
                "deals": int(f["deals"]),
                "brier": float(f["brier"]),
                "brier_skill": float(f["brier_skill"]),
                "ratio_min": float(f["ratio_min"]),
                "ratio_median": float(f["ratio_median"]),
                "ratio_max": float(f["ratio_max"]),
            }
        )
    out = pd.DataFrame(rows)
    out["half_life"] = pd.to_timedelta(out["half_life"])
    best = np.zeros(len(out), dtype=bool)
    best[int(np.argmin(out["brier"].to_numpy()))] = True
    out["best"] = best
    return out


def _auto_half_life(log: EventLog, h_ns: int, exits: str) -> pd.Timedelta | None:
    """The half-life :func:`tune_recency` picks for this horizon (None: no weighting, also
    when the log is too short for a rolling backtest)."""
    try:
        mode: Literal["shares", "by_dwell"] = "shares" if exits == "shares" else "by_dwell"
        t = tune_recency(log, pd.Timedelta(h_ns, unit="ns"), exits=mode)
    except EventLogError:
        return None
    h = t.loc[t["best"], "half_life"].iloc[0]
    return None if pd.isna(h) else pd.Timedelta(h)


def _check_exits(exits: Any) -> None:
    if exits not in ("shares", "by_dwell"):
        raise InvalidParameterError(
            f"Parameter `exits` must be 'shares' or 'by_dwell'; got {exits!r}."
        )
