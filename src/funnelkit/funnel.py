"""The funnel / stage table of DESIGN §3."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from . import _stats
from . import _validate as V
from ._columns import to_duration
from ._memory import hot_path
from ._segments import expand, is_visit_level, normalize_by, path_segments, segments
from ._stats import Z95
from .errors import EventLogError, InvalidParameterError, warn

if TYPE_CHECKING:
    from .log import EventLog

N_OUT = 4  # outcome codes: open, won, lost, stale


def deal_weights(log: EventLog, weight: str | None) -> np.ndarray | None:
    if weight is None:
        return None
    amount_col = log._settings["amount"]
    if weight not in ("amount", amount_col) or log._amount is None:
        raise InvalidParameterError(
            f"`weight`={weight!r}: only the mapped amount column can weight the funnel "
            f"(amount={amount_col!r}). Pass amount=... when building the EventLog and "
            "weight='amount'."
        )
    w = np.nan_to_num(log._amount, nan=0.0)
    _warn_if_lost_weigh_nothing(log, w)
    return w


def _warn_if_lost_weigh_nothing(log: EventLog, w: np.ndarray) -> None:
    """Warn when (nearly) every explicitly lost deal weighs 0 while won deals (or, without
    any, open deals) mostly have amounts: CRMs often zero the value of a lost deal, and the
    revenue funnel then loses nothing."""
    outcome = log._outcome
    lost = outcome == V.LOST
    n_lost = int(lost.sum())
    zero_lost = int((w[lost] <= 0).sum())
    if n_lost < 3 or zero_lost < 0.9 * n_lost:
        return
    won = outcome == V.WON
    others = won if won.any() else outcome == V.OPEN
    paid = int((w[others] > 0).sum())
    if paid == 0 or paid < 0.5 * int(others.sum()):
        return
    kind = "won" if won.any() else "open"
    warn(
        f"weight='amount': {zero_lost:,} of {n_lost:,} lost deals have an amount (column "
        f"{log._settings['amount']!r}) of 0 or none, while {paid:,} of {int(others.sum()):,} "
        f"{kind} deals have a positive amount. The CRM probably zeroed the value of lost "
        "deals, so the revenue funnel counts no lost revenue and its conversions run near "
        "1.0. Map amount= to the deal's value before it was lost (e.g. the expected or "
        "original amount), or use weight=None."
    )


@hot_path
def funnel(
    log: EventLog,
    *,
    skips: Literal["implied", "strict"] = "implied",
    weight: str | None = None,
    by=None,
    within=None,
    calendar=None,
    warn: bool = True,
) -> pd.DataFrame:
    """Implementation of :meth:`funnelkit.EventLog.funnel`; ``warn=False`` for callers
    that handle stages without an estimate themselves (the backtest's naive model)."""
    if skips not in ("implied", "strict"):
        raise InvalidParameterError(f"`skips` must be 'implied' or 'strict'; got {skips!r}.")
    by_cols = normalize_by(by)
    if within is not None or is_visit_level(log, by_cols):
        return _funnel_by_stage(log, skips, weight, by_cols, within, calendar)
    seg, labels = segments(log, by_cols)
    n_seg = len(labels)
    S = log._n_stages
    v = log._visits()
    w = deal_weights(log, weight)
    outcome = log._outcome.astype(np.int64)
    furthest = v.furthest
    blocks = {}
    for power in (1, 2):
        ww = None if w is None else w**power
        # F[seg, s, o]: deals whose furthest stage is s, by outcome
        has = furthest >= 0
        F = np.bincount(
            (seg[has] * S + furthest[has]) * N_OUT + outcome[has],
            weights=None if ww is None else ww[has],
            minlength=n_seg * S * N_OUT,
        ).reshape(n_seg, S, N_OUT)
        if skips == "implied":
            E = np.flip(np.cumsum(np.flip(F, axis=1), axis=1), axis=1)  # furthest >= s
            won_w = (outcome == V.WON).astype(float) if ww is None else (outcome == V.WON) * ww
            won_all = np.bincount(seg, weights=won_w, minlength=n_seg)
            E[:, :, V.WON] = won_all[:, None]
        else:
            first = v.visit == 1
            d = v.deal[first]
            E = np.bincount(
                (seg[d] * S + v.stage[first]) * N_OUT + outcome[d],
                weights=None if ww is None else ww[d],
                minlength=n_seg * S * N_OUT,
            ).reshape(n_seg, S, N_OUT)
        blocks[power] = (E, F)
    E, F = blocks[1]
    E2, F2 = blocks[2]
    reached = E.sum(axis=2)
    dropped = F[:, :, V.LOST] + F[:, :, V.STALE]
    open_ = F[:, :, V.OPEN]
    advanced = reached - dropped - open_
    adv2 = E2.sum(axis=2) - F2[:, :, V.LOST] - F2[:, :, V.STALE] - F2[:, :, V.OPEN]
    drop2 = F2[:, :, V.LOST] + F2[:, :, V.STALE]
    won_r = E[:, :, V.WON]
    resolved_r = won_r + E[:, :, V.LOST] + E[:, :, V.STALE]
    sums = dict(
        reached=reached,
        advanced=advanced,
        dropped=dropped,
        open=open_,
        adv2=adv2,
        drop2=drop2,
        won=won_r,
        resolved=resolved_r,
    )
    if w is None:
        aj = log_estimates(log, skips, by_cols, seg, n_seg)
    else:
        sub = log_subjects(log, skips)
        aj = subject_estimates(log, seg[sub.deal] * S + sub.stage, sub, n_seg * S, w[sub.deal])
    return assemble(log.stages, by_cols, labels, sums, w is not None, skips, aj, warn=warn)


def assemble(
    stages: list[str],
    by_cols,
    labels,
    sums: dict[str, np.ndarray],
    weighted: bool,
    skips: str,
    aj: dict[str, np.ndarray],
    warn: bool = True,
) -> pd.DataFrame:
    """The stage table from per (segment, stage) sums — reached, advanced, dropped, open,
    won and resolved among the reached, the sums of squared weights adv2 and drop2 — and
    the competing-risks estimates ``aj`` of :func:`competing_estimates`."""
    S = len(stages)
    n_seg = len(labels)
    reached, advanced, dropped = sums["reached"], sums["advanced"], sums["dropped"]
    open_, adv2, drop2 = sums["open"], sums["adv2"], sums["drop2"]
    won_r, resolved_r = sums["won"], sums["resolved"]
    resolved = advanced + dropped
    with np.errstate(invalid="ignore", divide="ignore"):
        closed = advanced / resolved
        n_eff = resolved**2 / (adv2 + drop2) if weighted else resolved.astype(float)
        conversion_raw = advanced / reached
        win_closed = won_r / resolved_r
    c_low, c_high = _stats.wilson(advanced, n_eff, p=closed)
    # the Aalen–Johansen estimates; NaN where no subject has advanced or dropped yet
    shape = (n_seg, S)
    known = aj["known"].reshape(shape)
    conversion = np.where(known, aj["cif"].reshape(shape), np.nan)
    unresolved = np.where(known, aj["unresolved"].reshape(shape), np.nan)
    low, high = widened_interval(conversion, aj)
    low, high = low.reshape(shape), high.reshape(shape)
    win_events = aj["win_known"].reshape(shape)
    win_rate_from = np.where(win_events, aj["win"].reshape(shape), np.nan)
    w_low, w_high = widened_interval(win_rate_from, aj, prefix="win_")
    w_low, w_high = w_low.reshape(shape), w_high.reshape(shape)
    if warn:
        _warn_unidentified(stages, labels, by_cols, reached, known)
    cumulative = np.ones_like(conversion, dtype=float)
    cumulative_closed = np.ones_like(closed, dtype=float)
    if S > 1:
        cumulative[:, 1:] = np.cumprod(conversion[:, :-1], axis=1)
        cumulative_closed[:, 1:] = np.cumprod(closed[:, :-1], axis=1)
    seg_idx = np.repeat(np.arange(n_seg), S)
    out = expand(labels, seg_idx, by_cols)
    dtype = np.float64 if weighted else np.int64
    out["stage"] = np.tile(np.array(stages, dtype=object), n_seg).astype(str)
    out["reached"] = reached.reshape(-1).astype(dtype)
    out["advanced"] = advanced.reshape(-1).astype(dtype)
    out["dropped"] = dropped.reshape(-1).astype(dtype)
    out["open"] = open_.reshape(-1).astype(dtype)
    out["conversion"] = conversion.reshape(-1)
    out["conversion_low"] = low.reshape(-1)
    out["conversion_high"] = high.reshape(-1)
    out["unresolved"] = unresolved.reshape(-1)
    out["conversion_closed"] = closed.reshape(-1)
    out["conversion_closed_low"] = c_low.reshape(-1)
    out["conversion_closed_high"] = c_high.reshape(-1)
    out["conversion_raw"] = conversion_raw.reshape(-1)
    out["cumulative"] = cumulative.reshape(-1)
    out["cumulative_closed"] = cumulative_closed.reshape(-1)
    out["win_rate_from"] = win_rate_from.reshape(-1)
    out["win_rate_from_low"] = w_low.reshape(-1)
    out["win_rate_from_high"] = w_high.reshape(-1)
    out["win_rate_from_closed"] = win_closed.reshape(-1)
    out["skips"] = skips
    out["weight"] = "amount" if weighted else "deals"
    return out


def widened_interval(
    estimate: np.ndarray, aj: dict[str, np.ndarray], *, prefix: str = "", z: float = Z95
) -> tuple[np.ndarray, np.ndarray]:
    """The confidence interval of an Aalen–Johansen estimate (``estimate``, NaN where it
    is not identified) from :func:`competing_estimates` ``aj`` — :func:`._competing.interval`
    at the normal quantile ``z`` — widened by the mass the data cannot resolve yet: the
    lower end subtracts ``down``, the upper end adds ``up``, within [0, 1]. ``prefix``:
    ``""`` for the conversion, ``"win_"`` for the win rate. Flat arrays, one per group."""
    from ._competing import interval

    p = np.asarray(estimate, dtype=np.float64).reshape(-1)
    low, high = interval(p, aj[f"{prefix}var"], aj[f"{prefix}n_eff"], z=z)
    return (
        np.maximum(low - aj[f"{prefix}down"], 0.0),
        np.minimum(high + aj[f"{prefix}up"], 1.0),
    )


def _warn_unidentified(stages, labels, by_cols, reached, known) -> None:
    """Say which stages have a NaN conversion because none of their deals is resolved."""
    bad = (reached > 0) & ~known
    if not bad.any():
        return
    seg, st = np.nonzero(bad)
    where = [
        stages[j]
        + (f" ({', '.join(f'{b}={labels[b].iloc[i]!r}' for b in by_cols)})" if by_cols else "")
        for i, j in zip(seg[:5], st[:5], strict=True)
    ]
    more = f" and {bad.sum() - 5} more" if bad.sum() > 5 else ""
    warn(
        f"funnel: conversion is NaN for {int(bad.sum())} stage(s): {', '.join(where)}{more}. "
        "None of the deals that reached them has advanced or been lost yet, and silent deals "
        "count as stale (lost) only once no deal has advanced from the stage for "
        "stale_after, so the data cannot tell the conversion (conversion_raw and the counts "
        "are still given). Wait for outcomes, or pass stale_after so silent deals can count "
        "as lost."
    )


def windows(log: EventLog, within) -> np.ndarray:
    """Window per stage in ns (int64 max = no window) from ``within``."""
    return stage_windows(list(log.stages), within)


def stage_windows(stages: list[str], within) -> np.ndarray:
    """Window per stage of ``stages`` in ns (int64 max = no window) from ``within`` (a
    duration for every stage, or a dict stage → duration): what both engines read."""
    big = np.iinfo(np.int64).max
    out = np.full(len(stages), big, dtype=np.int64)
    if within is None:
        return out
    items = within.items() if isinstance(within, dict) else [(s, within) for s in stages]
    for stage, value in items:
        if stage not in stages:
            raise EventLogError(
                f"`within` names stage {stage!r}, which is not a stage of this log ({stages})."
            )
        param = f"within[{stage!r}]" if isinstance(within, dict) else "within"
        out[stages.index(stage)] = to_duration(value, param).value
    return out


@dataclass
class StageStatus:
    """Each deal's status at each stage, as (deals × stages) boolean matrices, and the
    path position of the event that reached the stage (-1 where not reached)."""

    reached: np.ndarray
    advanced: np.ndarray
    dropped: np.ndarray
    open: np.ndarray
    entry_i: np.ndarray
    entry_t: np.ndarray | None = None  # first entry (or implied reach) time, ns
    progress: np.ndarray | None = None  # first time past the stage (later entry or won)


def stage_status(log: EventLog, skips: str, within=None, calendar=None) -> StageStatus:
    """The (deal × stage) status behind :func:`_funnel_by_stage` (see there)."""
    from .businessdays import as_calendar

    cal = log.calendar if calendar is None else as_calendar(calendar)
    S, D = log._n_stages, log.n_deals
    big = np.iinfo(np.int64).max
    v = log._visits()
    win = windows(log, within)
    outcome = log._outcome.astype(np.int64)
    won = outcome == V.WON
    # time and path event of each deal's first entry into each stage
    first = v.visit == 1
    fe_t = np.full((D, S), big, dtype=np.int64)
    fe_i = np.full((D, S), -1, dtype=np.int64)
    fe_t[v.deal[first], v.stage[first]] = v.entered[first]
    fe_i[v.deal[first], v.stage[first]] = v.path_index[first]
    # the won event: reaches every stage under implied skips, progress for all
    term_t = np.where(won, log._term_ns, big)
    p_kind = log._kind[log._path_stage]
    pterm = np.flatnonzero(p_kind != V.STAGE)
    term_i = np.full(D, -1, dtype=np.int64)
    term_i[log._path_deal[pterm]] = pterm
    entry_t = fe_t.copy()
    entry_i = fe_i.copy()
    progress = np.full((D, S), big, dtype=np.int64)
    run_t, run_i = term_t.copy(), np.where(won, term_i, -1)
    for s in range(S - 1, -1, -1):  # loop over stages: suffix minima across later stages
        progress[:, s] = run_t
        earlier = fe_t[:, s] < run_t
        run_t = np.where(earlier, fe_t[:, s], run_t)
        run_i = np.where(earlier, fe_i[:, s], run_i)
        if skips == "implied":
            entry_t[:, s] = run_t
            entry_i[:, s] = run_i
    reached = entry_t < big
    # advanced within the window (progress before entry counts: already past the stage)
    has_progress = progress < big
    if cal is None:
        elapsed = np.where(has_progress & reached, progress - np.where(reached, entry_t, 0), big)
    else:
        e = np.where(reached, entry_t, 0)
        p_ = np.where(has_progress, progress, 0)
        elapsed = np.where(has_progress & reached, cal.duration_ns(e, p_), big)
        elapsed = np.where(has_progress & reached & (progress < e), progress - e, elapsed)
    advanced = reached & has_progress & (elapsed <= win[None, :])
    if cal is None:
        waited = np.where(reached, log._as_of_ns - np.where(reached, entry_t, 0), 0)
    else:
        waited = np.where(
            reached,
            cal.duration_ns(np.where(reached, entry_t, 0), np.full((D, S), log._as_of_ns)),
            0,
        )
    is_open = reached & ~advanced & (outcome == V.OPEN)[:, None] & (waited < win[None, :])
    dropped = reached & ~advanced & ~is_open
    return StageStatus(reached, advanced, dropped, is_open, entry_i, entry_t, progress)


def stage_segments(
    log: EventLog, by_cols: list[str], entry_i: np.ndarray
) -> tuple[np.ndarray, pd.DataFrame]:
    """Segment code per (deal, stage) and the labels: visit attributes take the value on
    the event that reached the stage (``entry_i``), deal attributes the deal's value."""
    S = log._n_stages
    if not by_cols:
        return np.zeros(entry_i.shape, dtype=np.int64), pd.DataFrame(index=[0])
    pseg, labels = path_segments(log, by_cols)
    if is_visit_level(log, by_cols):
        return np.where(entry_i >= 0, pseg[np.maximum(entry_i, 0)], 0), labels
    seg_deal, labels = segments(log, by_cols)
    return np.repeat(seg_deal[:, None], S, axis=1), labels


def _funnel_by_stage(log, skips, weight, by_cols, within, calendar) -> pd.DataFrame:
    """The funnel from a (deal × stage) status matrix.

    Needed when the answer depends on the stage as well as the deal: conversion windows
    (advanced only if a later stage or a win came within the window after reaching the
    stage; still open and inside the window = censored) and visit attributes (each
    stage's outcome is attributed to whoever held the deal when it reached the stage).
    Without a window and with deal attributes it equals the per-deal fast path (tested).
    """
    S = log._n_stages
    st = stage_status(log, skips, within, calendar)
    seg, labels = stage_segments(log, by_cols, st.entry_i)
    n_seg = len(labels)
    w = deal_weights(log, weight)
    flat = status_sums(st, log._outcome, seg * S + np.arange(S)[None, :], n_seg * S, w)
    sums = {k: v.reshape(n_seg, S) for k, v in flat.items()}
    sub = competing_subjects(log, st, within, calendar)
    aj = subject_estimates(
        log,
        seg[sub.deal, sub.stage] * S + sub.stage,
        sub,
        n_seg * S,
        None if w is None else w[sub.deal],
        within,
    )
    return assemble(log.stages, by_cols, labels, sums, w is not None, skips, aj)


#: the funnel's sums per group, in the order :func:`status_sums` returns them
SUM_KEYS = ("reached", "advanced", "dropped", "open", "adv2", "drop2", "won", "resolved")


def status_sums(
    st: StageStatus, outcome: np.ndarray, key: np.ndarray, size: int, w: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The funnel's sums (:data:`SUM_KEYS`, see :func:`assemble`) per group from the
    (deal × stage) status: ``key`` the group of each (deal, stage) cell (< ``size``),
    ``w`` the deals' weights (None: counts). Sums over deals, so an engine adds up the
    sums of its parts."""
    D, S = st.reached.shape
    outcome = np.asarray(outcome).astype(np.int64)
    wmat = np.ones((D, S)) if w is None else np.repeat(w[:, None], S, axis=1)

    def total(mask, power=1):
        return np.bincount(key[mask], weights=wmat[mask] ** power, minlength=size)

    reached = st.reached
    return {
        "reached": total(reached),
        "advanced": total(st.advanced),
        "dropped": total(st.dropped),
        "open": total(st.open),
        "adv2": total(st.advanced, 2),
        "drop2": total(st.dropped, 2),
        "won": total(reached & (outcome == V.WON)[:, None]),
        "resolved": total(reached & (outcome != V.OPEN)[:, None]),
    }


# ---- conversion as competing risks (DESIGN §3)
ADVANCE, LOST_CAUSE = 1, 2  # causes; 0 = not resolved at as_of (open or stale: censored)
N_CAUSES = 2
#: below this many deals at risk, what the estimate allocates counts as unresolved
MIN_AT_RISK = 10
#: from this many subjects on, the conversion and win-rate estimates run on two threads
PARALLEL_SUBJECTS = 200_000


@dataclass
class Subjects:
    """One subject per (deal, stage reached): the clock starts at the deal's first entry
    into the stage (for a reach implied by a later stage or a win, the moment it went
    past, so it advances at time 0). ``t_adv``/``c_adv``: time and cause of leaving for
    conversion — advance (first entry of a later stage in funnel order, or the win; a
    backward move does not undo it), lost (the loss) or censored at ``as_of`` (open, and
    stale: a silent deal may still move, see :func:`competing_estimates`);
    ``t_win``/``c_win`` the same for winning (cause 1 = won) against lost. Times in ns,
    never negative."""

    deal: np.ndarray
    stage: np.ndarray
    t_adv: np.ndarray
    c_adv: np.ndarray
    t_win: np.ndarray
    c_win: np.ndarray
    entry: np.ndarray | None = None  # when the clock starts (ns)


def log_subjects(log: EventLog, skips: str) -> Subjects:
    """:func:`competing_subjects` without a window, straight from the first visits: the
    same subjects (tested), without the status matrices :func:`stage_status` also builds
    for windows — one (stages × deals) matrix of first entries and its suffix minima."""
    S, D = log._n_stages, log.n_deals
    big = np.iinfo(np.int64).max
    v = log._visits()
    first = np.flatnonzero(v.visit == 1)
    # (stages × deals): each stage's row is contiguous, so the loop below streams
    fe = np.full((S, D), big, dtype=np.int64)
    fe[v.stage[first], v.deal[first]] = v.entered[first]
    del first
    won = log._outcome == V.WON
    progress = np.empty((S, D), dtype=np.int64)
    run = np.where(won, log._term_ns, big)
    for s in range(S - 1, -1, -1):  # loop over stages: first time past each stage
        progress[s] = run
        np.minimum(run, fe[s], out=run)
    entry = np.minimum(fe, progress, out=fe) if skips == "implied" else fe
    flat = np.flatnonzero(entry.reshape(-1) < big)  # stage-major; no estimate needs order
    e_flat, p_flat = entry.reshape(-1)[flat], progress.reshape(-1)[flat]
    del fe, entry, progress  # (the peak of the funnel is in _subjects: 0.1 GiB less at 1M)
    ss, dd = np.divmod(flat, D)
    del flat
    return _subjects(log, dd, ss, e_flat, p_flat)


def _subjects(log: EventLog, d, s, entry, progress) -> Subjects:
    """Subjects from each (deal, stage reached)'s entry and first time past the stage
    (int64 max: never), without a window. Per-deal values first, one gather each."""
    outcome = log._outcome
    closed = (outcome == V.WON) | (outcome == V.LOST)
    end_d = np.where(closed, log._term_ns, log._as_of_ns)
    c_out_d = np.where(outcome == V.WON, ADVANCE, np.where(outcome == V.LOST, LOST_CAUSE, 0))
    c_out_d = c_out_d.astype(np.int8)
    t_end = end_d[d]
    t_end -= entry
    np.maximum(t_end, 0, out=t_end)
    c_out = c_out_d[d]
    # ``progress`` is the caller's fresh gather: reused in place for the advance times
    # (each row-sized temporary costs fresh memory, the dominant cost here)
    not_adv = progress == np.iinfo(np.int64).max
    t_adv = np.subtract(progress, entry, out=progress)
    np.copyto(t_adv, t_end, where=not_adv)
    np.maximum(t_adv, 0, out=t_adv)
    other = np.where(c_out_d == ADVANCE, 0, c_out_d).astype(np.int8)  # won: no stage left
    c_adv = other[d]
    np.copyto(c_adv, np.int8(ADVANCE), where=~not_adv)
    return Subjects(d, s, t_adv, c_adv, t_end, c_out, entry)


def competing_subjects(
    log: EventLog, st: StageStatus, within=None, calendar=None, stages=None
) -> Subjects:
    """The subjects of the conversion and win-rate estimates (see :class:`Subjects`).

    With a conversion window ``within``, an advance counts only within the window and a
    subject that has neither advanced nor been lost by then is censored at the window,
    so the estimate is the cumulative incidence of advancing by the window. ``stages``: a
    boolean mask over the stages to build subjects for (default all)."""
    assert st.entry_t is not None and st.progress is not None
    reached = st.reached if stages is None else st.reached & stages[None, :]
    d, s = np.nonzero(reached)
    entry = st.entry_t[d, s]
    outcome = log._outcome[d].astype(np.int64)
    term = log._term_ns[d]
    as_of = log._as_of_ns
    closed = (outcome == V.WON) | (outcome == V.LOST)
    end = np.where(closed, term, as_of)  # open and stale deals: censored at as_of
    t_end = np.maximum(end - entry, 0)
    c_out = np.select([outcome == V.WON, outcome == V.LOST], [ADVANCE, LOST_CAUSE], 0)
    adv = st.advanced[d, s]
    t_adv = np.where(adv, np.maximum(st.progress[d, s] - entry, 0), t_end)
    c_adv = np.where(adv, ADVANCE, np.where(c_out == ADVANCE, 0, c_out))
    if within is not None:
        from .businessdays import as_calendar

        cal = log.calendar if calendar is None else as_calendar(calendar)
        win = windows(log, within)[s]
        span = t_end if cal is None else cal.duration_ns(entry, np.maximum(end, entry))
        late = ~adv & ((c_adv == 0) | (span > win))
        t_adv = np.where(late, np.minimum(t_adv, win), t_adv)
        c_adv = np.where(late, 0, c_adv)
    return Subjects(d, s, t_adv, c_adv, t_end, c_out, entry)


def competing_estimates(
    adv: tuple,
    win: tuple,
    n_groups: int,
    *,
    level_after: int | None = None,
    horizon: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Aalen–Johansen conversion and win rate per group from ``(group, time, cause,
    weights, weights2)`` of each (weights None = 1 per row).

    ``unresolved`` is the probability mass not resolved at the group's largest
    follow-up τ (the overall survival there: deals open, or silent, that long), except
    where the data say it is settled:

    * the stale rule (``level_after``, ``stale_after`` in ns): when no deal of the group
      has advanced during the last ``stale_after`` before τ although deals were still at
      risk, the curve has levelled off and the silent deals left are stale — lost, as
      DESIGN §2 defines them;
    * a conversion window (``horizon`` per group, ns): mass still unresolved at the
      window has not advanced within it.

    The mass the estimator hands out once fewer than ``MIN_AT_RISK`` deals remain at
    risk (from the first censoring after which that is so) rests on too few deals for the
    variance formula, so it is unresolved too: ``down`` is the part of it the estimate
    gave to advancing (the interval's lower end subtracts it), ``up`` the rest plus the
    unresolved tail (the upper end adds it); ``unresolved`` = ``down`` + ``up``.
    """

    def estimate(x):
        return clock_estimate(x, n_groups)

    if len(adv[0]) >= PARALLEL_SUBJECTS and (os.cpu_count() or 1) > 1:
        # two independent estimates, each mostly one sort and array passes that release
        # the GIL: on a second thread they take ~0.6 of the time (0.81 -> 0.47 s at 1M
        # deals on 2 cores); nothing process-wide changes
        with ThreadPoolExecutor(max_workers=1) as pool:
            later = pool.submit(estimate, win)
            a = estimate(adv)
            b = later.result()
    else:
        a, b = estimate(adv), estimate(win)
    return combine_estimates(a, b, n_groups, level_after=level_after, horizon=horizon)


def clock_estimate(rows: tuple, n_groups: int):
    """The Aalen–Johansen estimate of one clock (conversion or win) per group from
    ``(group, time, cause, weights, weights2)``: the half of
    :func:`competing_estimates` that reads the subjects (an engine can run the two
    clocks apart, see :mod:`funnelkit._clock`)."""
    from ._competing import aalen_johansen

    g, t, c, w, w2 = rows
    return aalen_johansen(g, t, c, n_groups, N_CAUSES, w, weights2=w2, report=1, thin=MIN_AT_RISK)


#: the conversion clock's estimates, what :func:`conversion_estimates` returns
ADV_KEYS = ("cif", "var", "n_eff", "events", "known", "unresolved", "down", "up")


def conversion_estimates(
    rows: tuple, n_groups: int, level_after: int | None
) -> dict[str, np.ndarray]:
    """The conversion estimates (:data:`ADV_KEYS`) per group from ``(group, time, cause,
    Σw, Σw²)`` rows of one clock — per subject (weights None) or aggregated counts (both
    engines): :func:`competing_estimates` without the win clock, for the callers that
    read the conversion only."""
    none = np.zeros(0, dtype=np.int64)  # no win-rate subjects: that estimate is not needed
    aj = competing_estimates(
        rows, (none, none, none, None, None), n_groups, level_after=level_after
    )
    return {k: aj[k] for k in ADV_KEYS}


def combine_estimates(
    a, b, n_groups: int, *, level_after: int | None = None, horizon: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """:func:`competing_estimates` from the two clocks' :func:`clock_estimate` results
    ``a`` (conversion) and ``b`` (win)."""

    def settled(aj) -> np.ndarray:
        done = np.zeros(n_groups, dtype=bool)
        if level_after is not None:
            done |= aj.t_max - aj.t_max1 >= level_after
        if horizon is not None:
            done |= aj.t_max >= horizon
        return done

    def shares(aj) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(unresolved, thin advanced, thin other): mass not resolved at τ unless settled,
        plus the mass resolved by fewer than MIN_AT_RISK deals at risk — the part that
        went to cause 1 and the part that went elsewhere."""
        tail = np.where(settled(aj), 0.0, aj.unresolved)
        thin_1 = np.clip(aj.cif[:, 0] - aj.thin_F1, 0.0, 1.0)
        thin_o = np.clip(aj.thin_S - aj.unresolved - thin_1, 0.0, 1.0)
        return tail + thin_1 + thin_o, thin_1, thin_o + tail

    ua, a_down, a_up = shares(a)
    ub, b_down, b_up = shares(b)
    return {
        "cif": a.cif[:, 0],
        "var": a.var[:, 0],
        "n_eff": a.n_eff,
        "events": a.events,
        # estimable: something resolved, or the silent rest settled as stale (lost)
        "known": (a.events > 0) | (settled(a) & (a.n > 0)),
        "unresolved": ua,
        "down": a_down,
        "up": a_up,
        "win": b.cif[:, 0],
        "win_var": b.var[:, 0],
        "win_n_eff": b.n_eff,
        "win_events": b.events,
        "win_known": (b.events > 0) | (settled(b) & (b.n > 0)),
        "win_unresolved": ub,
        "win_down": b_down,
        "win_up": b_up,
    }


def subject_estimates(
    log: EventLog,
    group: np.ndarray,
    sub: Subjects,
    n_groups: int,
    w: np.ndarray | None,
    within=None,
) -> dict[str, np.ndarray]:
    """:func:`competing_estimates` for in-memory subjects (``group`` = segment × S +
    stage)."""
    S = max(log._n_stages, 1)
    horizon = None
    if within is not None:
        horizon = windows(log, within)[np.arange(n_groups) % S].astype(np.float64)
    return competing_estimates(
        (group, sub.t_adv, sub.c_adv, w, None),
        (group, sub.t_win, sub.c_win, w, None),
        n_groups,
        level_after=stale_ns(log.stale_after),
        horizon=horizon,
    )


def log_estimates(
    log: EventLog, skips: str, by_cols: list[str], seg: np.ndarray, n_seg: int
) -> dict[str, np.ndarray]:
    """:func:`subject_estimates` of the log's subjects (:func:`log_subjects`, unweighted,
    no window) per segment × stage, ``seg`` the deals' segment codes of the deal
    attributes ``by_cols`` — :func:`funnelkit._segments.segments` of them, nothing
    else: the cache is keyed by ``(skips, by_cols)``. The log is immutable, so
    ``funnel()``, ``funnel(by=...)`` and the key stages' conversions of the same question
    share one estimate (at 1M deals each costs about a second)."""
    key = ("competing_estimates", skips, tuple(by_cols))
    if key not in log._cache:
        S = log._n_stages
        sub = log_subjects(log, skips)
        group = seg[sub.deal] * S + sub.stage
        log._cache[key] = subject_estimates(log, group, sub, n_seg * S, None)
    return log._cache[key]


def stale_ns(stale_after) -> int | None:
    """``stale_after`` (a Timedelta or None) in ns."""
    return None if stale_after is None else int(pd.Timedelta(stale_after).value)


def incidence(log: EventLog, stage=None, *, by=None) -> pd.DataFrame:
    """The table behind :meth:`EventLog.incidence` (see there)."""
    S = log._n_stages
    wanted = wanted_stages(list(log.stages), stage)
    by_cols = normalize_by(by)
    st = stage_status(log, "implied")
    sub = competing_subjects(log, st, stages=wanted)  # only the stages asked for
    seg_m, labels = stage_segments(log, by_cols, st.entry_i)
    group = seg_m[sub.deal, sub.stage] * S + sub.stage
    return incidence_table(
        list(log.stages),
        labels,
        by_cols,
        (group, sub.t_adv, sub.c_adv, None),
        (group, sub.t_win, sub.c_win, None),
    )


def wanted_stages(stages: list[str], stage) -> np.ndarray:
    """Mask of the stages asked for by ``stage`` (None: all; a name or a list)."""
    if stage is None:
        return np.ones(len(stages), dtype=bool)
    names = [stage] if isinstance(stage, str) else list(stage)
    unknown = [s for s in names if s not in stages]
    if unknown:
        raise InvalidParameterError(
            f"`stage`={stage!r}: {unknown!r} is not a stage of this log; the stages are {stages}."
        )
    return np.isin(np.arange(len(stages)), [stages.index(s) for s in names])


def incidence_table(
    stages: list[str],
    labels: pd.DataFrame,
    by_cols: list[str],
    adv: tuple,
    win: tuple,
    group_column: str | None = None,
) -> pd.DataFrame:
    """The incidence curves from ``(group, time, cause, count)`` rows of the conversion
    and the win clocks (group = segment × S + stage; count None = one subject per row, or
    the number of subjects a row stands for — the two engines feed the same builder).
    ``group_column`` names a column to add with each row's group (rows come ordered by
    group, then time)."""
    from ._competing import aalen_johansen, interval

    S = len(stages)
    G = len(labels) * S
    group, t_adv, c_adv, n_adv = adv
    w2 = None if n_adv is None else np.asarray(n_adv, dtype=np.float64)
    a = aalen_johansen(group, t_adv, c_adv, G, N_CAUSES, n_adv, weights2=w2, curves=True)
    wb = None if win[3] is None else np.asarray(win[3], dtype=np.float64)
    b = aalen_johansen(win[0], win[1], win[2], G, N_CAUSES, win[3], weights2=wb, curves=True)
    assert a.c_group is not None and b.c_group is not None and a.c_time is not None
    assert b.c_time is not None and a.c_cif is not None and b.c_cif is not None
    assert a.c_var is not None and b.c_var is not None and a.c_surv is not None
    # one row per (group, time) where either curve moves: dense time ranks make a key
    uniq_t, rank = np.unique(np.concatenate([a.c_time, b.c_time]), return_inverse=True)
    R = max(uniq_t.size, 1)
    ka = a.c_group * R + rank[: a.c_time.size]
    kb = b.c_group * R + rank[a.c_time.size :]
    keys = np.unique(np.concatenate([ka, kb]))
    g_u, t_u = keys // R, uniq_t[keys % R] if keys.size else np.zeros(0, dtype=np.int64)

    def at(k, gk, values, before):
        i = np.searchsorted(k, keys, side="right") - 1
        ok = (i >= 0) & (gk[np.maximum(i, 0)] == g_u) if k.size else np.zeros(keys.size, bool)
        v = values[np.maximum(i, 0)] if k.size else np.zeros((keys.size,) + values.shape[1:])
        fill = np.full_like(v, before, dtype=np.float64)
        return np.where(ok.reshape((-1,) + (1,) * (v.ndim - 1)), v, fill)

    F_a, V_a = at(ka, a.c_group, a.c_cif, 0.0), at(ka, a.c_group, a.c_var, 0.0)
    S_a = at(ka, a.c_group, a.c_surv, 1.0)
    F_b, V_b = at(kb, b.c_group, b.c_cif[:, 0], 0.0), at(kb, b.c_group, b.c_var[:, 0], 0.0)
    # at risk on the conversion clock: subjects of the group observed at or after the time
    rk = np.asarray(group, dtype=np.int64) * R + np.searchsorted(uniq_t, t_adv)
    order = np.argsort(rk, kind="stable")
    rk = rk[order]
    cnt = np.ones(rk.size) if n_adv is None else np.asarray(n_adv, dtype=np.float64)[order]
    before = np.r_[0.0, np.cumsum(cnt)]  # subjects with a smaller key
    group_end = before[np.searchsorted(rk, (g_u + 1) * R, side="left")]
    at_risk = np.rint(group_end - before[np.searchsorted(rk, keys, side="left")])
    n_eff = a.n_eff[g_u]
    out = expand(labels, g_u // S, by_cols)
    out["stage"] = np.array(stages, dtype=object)[g_u % S].astype(str)
    out["time"] = pd.to_timedelta(np.asarray(t_u, dtype=np.int64).view("timedelta64[ns]"))
    out["at_risk"] = at_risk.astype(np.int64)
    for k, name in enumerate(("advanced", "lost")):
        low, high = interval(F_a[:, k], V_a[:, k], n_eff)
        out[name] = F_a[:, k]
        out[f"{name}_low"] = low
        out[f"{name}_high"] = high
    out["unresolved"] = S_a
    low, high = interval(F_b, V_b, n_eff)
    out["won"] = F_b
    out["won_low"] = low
    out["won_high"] = high
    if group_column is not None:
        out[group_column] = g_u
    return out.reset_index(drop=True)
