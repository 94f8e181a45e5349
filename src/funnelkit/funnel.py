"""The funnel / stage table of DESIGN §3."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from . import _stats
from . import _validate as V
from ._columns import to_duration
from ._memory import hot_path
from ._segments import expand, is_visit_level, normalize_by, path_segments, segments
from .errors import EventLogError, warn

if TYPE_CHECKING:
    from .log import EventLog

N_OUT = 4  # outcome codes: open, won, lost, stale


def deal_weights(log: EventLog, weight: str | None) -> np.ndarray | None:
    if weight is None:
        return None
    amount_col = log._settings["amount"]
    if weight not in ("amount", amount_col) or log._amount is None:
        raise EventLogError(
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
) -> pd.DataFrame:
    if skips not in ("implied", "strict"):
        raise EventLogError(f"`skips` must be 'implied' or 'strict'; got {skips!r}.")
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
    st = stage_status(log, skips)
    sub = competing_subjects(log, st)
    aj = subject_estimates(
        seg[sub.deal] * S + sub.stage, sub, n_seg * S, None if w is None else w[sub.deal]
    )
    return assemble(log.stages, by_cols, labels, sums, w is not None, skips, aj)


def assemble(
    stages: list[str],
    by_cols,
    labels,
    sums: dict[str, np.ndarray],
    weighted: bool,
    skips: str,
    aj: dict[str, np.ndarray],
) -> pd.DataFrame:
    """The stage table from per (segment, stage) sums — reached, advanced, dropped, open,
    won and resolved among the reached, the sums of squared weights adv2 and drop2 — and
    the competing-risks estimates ``aj`` of :func:`competing_estimates`."""
    from ._competing import interval

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
    events = aj["events"].reshape(shape)
    conversion = np.where(events > 0, aj["cif"].reshape(shape), np.nan)
    unresolved = np.where(events > 0, aj["unresolved"].reshape(shape), np.nan)
    low, high = interval(conversion, aj["var"].reshape(shape), aj["n_eff"].reshape(shape))
    high = np.minimum(high + np.nan_to_num(unresolved), 1.0)
    win_rate_from = np.where(aj["win_events"].reshape(shape) > 0, aj["win"].reshape(shape), np.nan)
    _warn_unidentified(stages, labels, by_cols, reached, events)
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
    out["win_rate_from_closed"] = win_closed.reshape(-1)
    out["skips"] = skips
    out["weight"] = "amount" if weighted else "deals"
    return out


def _warn_unidentified(stages, labels, by_cols, reached, events) -> None:
    """Say which stages have a NaN conversion because none of their deals is resolved."""
    bad = (reached > 0) & ~(events > 0)
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
        "None of the deals that reached them has advanced, been lost or gone stale yet, so "
        "the data cannot tell the conversion (conversion_raw and the counts are still "
        "given). Wait for outcomes, or pass stale_after so silent deals count as lost."
    )


def windows(log: EventLog, within) -> np.ndarray:
    """Window per stage in ns (int64 max = no window) from ``within``."""
    big = np.iinfo(np.int64).max
    out = np.full(log._n_stages, big, dtype=np.int64)
    if within is None:
        return out
    items = within.items() if isinstance(within, dict) else [(s, within) for s in log.stages]
    for stage, value in items:
        if stage not in log.stages:
            raise EventLogError(
                f"`within` names stage {stage!r}, which is not a stage of this log ({log.stages})."
            )
        param = f"within[{stage!r}]" if isinstance(within, dict) else "within"
        out[log.stages.index(stage)] = to_duration(value, param).value
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
    S, D = log._n_stages, log.n_deals
    st = stage_status(log, skips, within, calendar)
    reached, advanced, dropped, is_open = st.reached, st.advanced, st.dropped, st.open
    outcome = log._outcome.astype(np.int64)
    won = outcome == V.WON
    seg, labels = stage_segments(log, by_cols, st.entry_i)
    n_seg = len(labels)
    w = deal_weights(log, weight)
    wmat = np.ones((D, S)) if w is None else np.repeat(w[:, None], S, axis=1)
    key = seg * S + np.arange(S)[None, :]
    size = n_seg * S

    def total(mask, power=1):
        return np.bincount(key[mask], weights=wmat[mask] ** power, minlength=size).reshape(
            n_seg, S
        )

    reached_n = total(reached)
    adv, drop, opn = total(advanced), total(dropped), total(is_open)
    adv2, drop2 = total(advanced, 2), total(dropped, 2)
    won_r = total(reached & won[:, None])
    resolved_r = total(reached & (outcome != V.OPEN)[:, None])
    sub = competing_subjects(log, st, within, calendar)
    aj = subject_estimates(
        seg[sub.deal, sub.stage] * S + sub.stage,
        sub,
        size,
        None if w is None else w[sub.deal],
    )
    sums = dict(
        reached=reached_n,
        advanced=adv,
        dropped=drop,
        open=opn,
        adv2=adv2,
        drop2=drop2,
        won=won_r,
        resolved=resolved_r,
    )
    return assemble(log.stages, by_cols, labels, sums, w is not None, skips, aj)


# ---- conversion as competing risks (DESIGN §3)
ADVANCE, LOST_CAUSE, STALE_CAUSE = 1, 2, 3  # causes; 0 = still open (censored)


@dataclass
class Subjects:
    """One subject per (deal, stage reached): the clock starts at the deal's first entry
    into the stage (for a reach implied by a later stage or a win, the moment it went
    past, so it advances at time 0). ``t_adv``/``c_adv``: time and cause of leaving for
    conversion — advance (first entry of a later stage in funnel order, or the win; a
    backward move does not undo it), lost (the loss), stale (last event + stale_after, when
    the stale rule fires) or censored at ``as_of``; ``t_win``/``c_win`` the same for
    winning (cause 1 = won) against lost/stale. Times in ns, never negative."""

    deal: np.ndarray
    stage: np.ndarray
    t_adv: np.ndarray
    c_adv: np.ndarray
    t_win: np.ndarray
    c_win: np.ndarray


def competing_subjects(log: EventLog, st: StageStatus, within=None, calendar=None) -> Subjects:
    """The subjects of the conversion and win-rate estimates (see :class:`Subjects`).

    With a conversion window ``within``, an advance counts only within the window and a
    subject that has neither advanced nor been lost by then is censored at the window,
    so the estimate is the cumulative incidence of advancing by the window."""
    assert st.entry_t is not None and st.progress is not None
    d, s = np.nonzero(st.reached)
    entry = st.entry_t[d, s]
    outcome = log._outcome[d].astype(np.int64)
    term = log._term_ns[d]
    as_of = log._as_of_ns
    stale_at = log._last_ns[d] + log.stale_after.value if log.stale_after is not None else term
    end = np.select(
        [outcome == V.WON, outcome == V.LOST, outcome == V.STALE], [term, term, stale_at], as_of
    )
    t_end = np.maximum(end - entry, 0)
    c_out = np.select(
        [outcome == V.WON, outcome == V.LOST, outcome == V.STALE],
        [ADVANCE, LOST_CAUSE, STALE_CAUSE],
        0,
    )
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
    return Subjects(d, s, t_adv, c_adv, t_end, c_out)


def competing_estimates(adv: tuple, win: tuple, n_groups: int) -> dict[str, np.ndarray]:
    """Aalen–Johansen conversion and win rate per group from ``(group, time, cause,
    weights, weights2)`` of each (weights None = 1 per row)."""
    from ._competing import aalen_johansen

    a = aalen_johansen(adv[0], adv[1], adv[2], n_groups, 3, adv[3], weights2=adv[4], report=1)
    b = aalen_johansen(win[0], win[1], win[2], n_groups, 3, win[3], weights2=win[4], report=1)
    return {
        "cif": a.cif[:, 0],
        "var": a.var[:, 0],
        "n_eff": a.n_eff,
        "events": a.events,
        "unresolved": a.unresolved,
        "win": b.cif[:, 0],
        "win_events": b.events,
    }


def subject_estimates(
    group: np.ndarray, sub: Subjects, n_groups: int, w: np.ndarray | None
) -> dict[str, np.ndarray]:
    """:func:`competing_estimates` for in-memory subjects."""
    return competing_estimates(
        (group, sub.t_adv, sub.c_adv, w, None), (group, sub.t_win, sub.c_win, w, None), n_groups
    )


def incidence(log: EventLog, stage=None, *, by=None) -> pd.DataFrame:
    """The table behind :meth:`EventLog.incidence` (see there)."""
    from ._competing import aalen_johansen, interval

    S = log._n_stages
    stages = list(log.stages)
    if stage is None:
        wanted = np.ones(S, dtype=bool)
    else:
        names = [stage] if isinstance(stage, str) else list(stage)
        unknown = [s for s in names if s not in stages]
        if unknown:
            raise ValueError(
                f"`stage`={stage!r}: {unknown!r} is not a stage of this log; the stages are "
                f"{stages}."
            )
        wanted = np.isin(np.arange(S), [stages.index(s) for s in names])
    by_cols = normalize_by(by)
    st = stage_status(log, "implied")
    sub = competing_subjects(log, st)
    seg_m, labels = stage_segments(log, by_cols, st.entry_i)
    keep = wanted[sub.stage]
    d, s = sub.deal[keep], sub.stage[keep]
    group = seg_m[d, s] * S + s
    G = len(labels) * S
    t_adv, c_adv, t_win, c_win = sub.t_adv[keep], sub.c_adv[keep], sub.t_win[keep], sub.c_win[keep]
    a = aalen_johansen(group, t_adv, c_adv, G, 3, curves=True)
    b = aalen_johansen(group, t_win, c_win, G, 3, curves=True)
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
    subj = np.sort(group * R + np.searchsorted(uniq_t, t_adv)) if keys.size else keys
    group_end = np.searchsorted(subj, (g_u + 1) * R, side="left")
    at_risk = group_end - np.searchsorted(subj, keys, side="left")
    n_eff = a.n_eff[g_u]
    out = expand(labels, g_u // S, by_cols)
    out["stage"] = np.array(stages, dtype=object)[g_u % S].astype(str)
    out["time"] = pd.to_timedelta(np.asarray(t_u, dtype=np.int64).view("timedelta64[ns]"))
    out["at_risk"] = at_risk.astype(np.int64)
    for k, name in enumerate(("advanced", "lost", "stale")):
        low, high = interval(F_a[:, k], V_a[:, k], n_eff)
        out[name] = F_a[:, k]
        out[f"{name}_low"] = low
        out[f"{name}_high"] = high
    out["open"] = S_a
    low, high = interval(F_b, V_b, n_eff)
    out["won"] = F_b
    out["won_low"] = low
    out["won_high"] = high
    return out.reset_index(drop=True)
