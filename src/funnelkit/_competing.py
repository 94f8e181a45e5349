"""The Aalen–Johansen estimator of competing risks, for every group at once.

One sort by (group, time); every distinct (group, time) is a *block* with its weighted
count per cause (cause 0 = censored). The number at risk at a block is the group's total
from that block on (a reverse cumulative sum), the overall survival a running product of
``1 − d/Y`` (computed as a running sum of logs per group, with a running count of factors
that are exactly 0), and the cumulative incidence of cause *k* the running sum of
``S(t−) d_k / Y``. No Python loop over subjects or blocks.

Variance: the delta-method (Greenwood-type) estimator of Marubini & Valsecchi (1995), the
one SAS PROC LIFETEST and lifelines' ``AalenJohansenFitter`` use::

    Var F_k(t) = Σ_{t_j ≤ t} (F_k(t) − F_k(t_j))² d_j / (Y_j (Y_j − d_j))
               + Σ_{t_j ≤ t} S(t_j−)² d_kj (Y_j − d_kj) / Y_j³
               − 2 Σ_{t_j ≤ t} (F_k(t) − F_k(t_j)) S(t_j−) d_kj / Y_j²

expanded into running sums so that it is available at every block (a term with
``Y_j = d_j`` — everyone left at risk resolves — is 0: ``F_k`` cannot change after it).

Weights (``weight="amount"``): the estimates use the weighted counts; the variance uses
the weights rescaled per group so that they sum to Kish's effective sample size
``(Σw)² / Σw²`` — the estimate is unchanged by the rescaling, and its variance is that of
an unweighted sample of ``n_eff`` subjects with the same curves. Unweighted, the factor
is exactly 1.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ._stats import Z95, wilson


@dataclass
class AJ:
    """Aalen–Johansen estimates per group.

    ``cif`` (n_groups, K): cumulative incidence of causes 1..K at the group's largest
    follow-up; ``var`` its variance; ``unresolved`` the overall survival there (mass not
    yet resolved by any cause); ``n`` the (weighted) number of subjects, ``n_eff`` Kish's
    effective number, ``events`` the (weighted) number of subjects with a cause,
    ``t_max`` the group's largest time (any subject) and ``t_max1`` its largest time of
    cause 1 (0 without one), in the input's units; ``thin_S`` and ``thin_F1`` the
    overall survival and the incidence of cause 1 just before the first block that
    follows a censoring of the group and starts with fewer than ``thin`` subjects at risk
    (the end values when there is none) — from there on the mass of censored subjects is
    handed to fewer than ``thin`` others. Groups
    without subjects are NaN (``n`` 0). With ``curves``: one entry per block (distinct
    group and time, in group then time order) — ``c_group``, ``c_time``, ``c_at_risk``
    (weighted number at risk just before the time), ``c_events`` (weighted number of
    events of any cause at the time), ``c_cif`` (blocks, K), ``c_var``, ``c_surv``
    (overall survival just after the time). Without ``variance`` the variances are NaN.
    """

    cif: np.ndarray
    var: np.ndarray
    unresolved: np.ndarray
    n: np.ndarray
    n_eff: np.ndarray
    events: np.ndarray
    t_max: np.ndarray | None = None
    t_max1: np.ndarray | None = None
    thin_S: np.ndarray | None = None
    thin_F1: np.ndarray | None = None
    c_group: np.ndarray | None = None
    c_time: np.ndarray | None = None
    c_at_risk: np.ndarray | None = None
    c_events: np.ndarray | None = None
    c_cif: np.ndarray | None = None
    c_var: np.ndarray | None = None
    c_surv: np.ndarray | None = None


def _within(x: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Running sum of ``x`` (blocks, ...) restarting at each group's first block
    (``first``: per block, the index of its group's first block)."""
    cs = np.cumsum(x, axis=0)
    return cs - (cs[first] - x[first])


def _snap(F: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rounding: a sum of shares that is 1 may land at 1 ± 2e-16, and the order of the
    sums (per-subject or pre-aggregated weights) must not decide the interval's formula.
    ``out=F`` snaps in place (the curves: one value per block and cause, millions)."""
    F = np.array(F, dtype=np.float64, copy=True) if out is None else out
    F[F > 1.0 - 1e-12] = 1.0
    F[F < 1e-12] = 0.0
    return F


def _snap_var(v: np.ndarray) -> np.ndarray:
    return np.where(v < 1e-18, 0.0, v)


def _pack(group: np.ndarray, t: np.ndarray, code: np.ndarray, n_groups: int, n_codes: int):
    """One int64 sort key per row — group, time and code in bit fields, so that decoding
    is shifts and masks (no division) — and the field widths; None when the fields do not
    fit in 63 bits (or the times are not non-negative integers)."""
    if not (t.dtype.kind in "iu" and t.size and t.min() >= 0):
        return None
    cbits = max(1, int(n_codes).bit_length())
    tbits = max(1, int(t.max()).bit_length())
    gbits = max(1, int(max(n_groups - 1, 0)).bit_length())
    if gbits + tbits + cbits > 63:
        return None
    key = np.left_shift(np.asarray(group, dtype=np.int64), tbits + cbits)
    key |= np.left_shift(t.astype(np.int64, copy=False), cbits)
    key |= code
    return key, tbits, cbits


def _unpack(key: np.ndarray, tbits: int, cbits: int):
    """(group, time, code) of packed keys."""
    return (
        key >> (tbits + cbits),
        (key >> cbits) & ((1 << tbits) - 1),
        key & ((1 << cbits) - 1),
    )


def _sorted(group, time, cause, w, scale, K):
    """Subjects in (group, time) order with their causes and rescaled weights. Integer
    times that fit pack group, time and cause into one int64 key: one plain sort (an
    argsort only when the weights must follow)."""
    t = np.asarray(time)
    packed = _pack(group, t, cause, int(group.max()) + 1 if group.size else 1, K)
    if packed is not None:
        key, tbits, cbits = packed
        if np.all(w == 1.0) and np.all(scale[group] == 1.0):
            key = np.sort(key)
            ws = np.ones(key.size)
        else:
            order = np.argsort(key)
            key = key[order]
            ws = w[order] * scale[group[order]]
        g, ts, c = _unpack(key, tbits, cbits)
        return g, ts, c, ws
    order = np.lexsort((t, group))
    g = group[order]
    return g, t[order], cause[order], w[order] * scale[g]


def _gcd_scaled(t: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer times divided by their greatest common divisor (ns timestamps are often
    whole seconds or days) and that divisor: the order is the same and the packed sort
    key fits more often."""
    if t.size == 0 or t.dtype.kind not in "iu":
        return t, 1
    g = int(np.gcd.reduce(t[t > 0])) if np.any(t > 0) else 1
    return (t // g, g) if g > 1 else (t, 1)


def _group_max(g, ts, first_cause, n_groups):
    """Per group (``g`` sorted, ``ts`` sorted within each group): the largest time and
    the largest time of cause 1 (0 without one)."""
    t_max = np.zeros(n_groups, dtype=np.float64)
    t_max1 = np.zeros(n_groups, dtype=np.float64)
    if g.size:
        last = np.flatnonzero(np.r_[g[1:] != g[:-1], True])
        t_max[g[last]] = ts[last]
        g1, t1 = g[first_cause], ts[first_cause]
        if g1.size:
            last1 = np.flatnonzero(np.r_[g1[1:] != g1[:-1], True])
            t_max1[g1[last1]] = t1[last1]
    return t_max, t_max1


def compress(group, time, cause, w, w2, K, n_groups):
    """The subjects of a product-limit estimate reduced to one row per (block, cause),
    where a block is a run of times without a censoring in between (a censoring closes
    the block of the events at or before its time).

    Between two censorings nobody leaves the risk set unobserved, so the Aalen–Johansen
    estimate is the same whether the events inside a block are processed one time after
    another or together: with ``n`` at risk when a block starts and ``e_k`` events of
    cause *k* in it, ``Σ_t S(t−) d_k(t) / Y(t) = S(start) e_k / n`` (``S(t−) / Y(t)`` is
    constant there), and the survival after it is ``S(start) (n − Σe) / n``. The
    Greenwood-type variance then treats each block as one multinomial step (the life-table
    form of the same estimator). One sort of the subjects, then sums; the estimate needs
    ``O(censorings)`` blocks instead of one per distinct event time. Returns the
    (group, time, cause, Σw, Σw²) of the rows, times being block numbers, and per group
    the largest time and largest time of cause 1 (see :func:`_group_max`).
    """
    group = np.asarray(group, dtype=np.int64)
    cause = np.asarray(cause, dtype=np.int64)
    t, unit = np.asarray(time), 1
    code = np.where(cause == 0, K + 1, cause)  # at one time: events first, then censored
    unweighted = bool(np.all(w == 1.0)) and (w2 is w or bool(np.all(w2 == 1.0)))
    packed = _pack(group, t, code, n_groups, K + 1)
    if packed is None and t.dtype.kind in "iu" and t.size and t.min() >= 0:
        t, unit = _gcd_scaled(t)
        packed = _pack(group, t, code, n_groups, K + 1)
    if packed is not None:
        key, tbits, cbits = packed
        order = None if unweighted else np.argsort(key)
        key = np.sort(key) if order is None else key[order]
        g, ts, c = _unpack(key, tbits, cbits)
    else:
        order = np.lexsort((code, t, group))
        g, ts, c = group[order], t[order], code[order]
    t_max, t_max1 = _group_max(g, ts, c == 1, n_groups)
    cens = c == K + 1
    before = np.cumsum(cens) - cens  # censorings before the row, all groups
    block = before + g  # increasing; a group's tail block never meets the next group's
    nb = int(block[-1]) + 1
    c = np.where(cens, 0, c)
    cell = block * (K + 1) + c
    if unweighted:
        sw = np.bincount(cell, minlength=nb * (K + 1))
        sw2 = sw
    else:
        ws = w if order is None else w[order]
        ws2 = w2 if order is None else w2[order]
        sw = np.bincount(cell, weights=ws, minlength=nb * (K + 1))
        sw2 = np.bincount(cell, weights=ws2, minlength=nb * (K + 1))
    gb = np.zeros(nb, dtype=np.int64)
    gb[block] = g
    present = np.zeros(nb * (K + 1), dtype=bool)
    present[cell] = True
    keep = np.flatnonzero(present)
    b, k = keep // (K + 1), keep % (K + 1)
    rows = (gb[b], b, k, sw[keep].astype(np.float64), sw2[keep].astype(np.float64))
    return rows, (t_max * unit, t_max1 * unit)


def _compress_counts(group, time, cause, K, n_groups):
    """:func:`compress` of unweighted subjects without decoding every row: one sort of
    packed (group, time, code) keys, then the blocks from the positions of the
    censorings and of causes 2..K alone — events of cause 1 are the rest of a block. The
    same rows as :func:`compress` (tested), and per group the number of subjects and of
    events. None when the keys do not fit in 63 bits (the caller falls back)."""
    t = np.asarray(time)
    if t.dtype.kind not in "iu" or t.size == 0 or t.min() < 0:
        return None
    cbits = max(1, int(K + 1).bit_length())
    gbits = max(1, int(max(n_groups - 1, 0)).bit_length())
    unit = 1
    if gbits + max(1, int(t.max()).bit_length()) + cbits > 63:
        t, unit = _gcd_scaled(t)
    tbits = max(1, int(t.max()).bit_length())
    if gbits + tbits + cbits > 63:
        return None
    # row-sized temporaries are few (fresh memory is the main cost at millions of rows):
    # the causes stay in their small integer type, the code field is read back from the
    # sorted keys' low byte in place
    code = np.asarray(cause)
    if code.dtype.kind not in "iu" or K + 1 > np.iinfo(code.dtype).max:
        code = code.astype(np.int64)
    # at one time: events first, then censored (code K + 1)
    code = np.where(code == 0, K + 1, code)
    # (group << tbits | time) << cbits | code: the fields do not overlap, so no shifted
    # copy of the times is needed (one row-sized temporary less, on each of two threads)
    key = np.left_shift(np.asarray(group, dtype=np.int64), tbits)
    key |= t.astype(np.int64, copy=False)
    key <<= cbits
    key |= code
    del code
    key.sort()
    shift, cmask, tmask = tbits + cbits, (1 << cbits) - 1, (1 << tbits) - 1
    bounds = np.searchsorted(key, np.arange(n_groups + 1, dtype=np.int64) << shift)
    n = np.diff(bounds)
    if cbits <= 8 and sys.byteorder == "little":
        c = key.view(np.uint8)[::8] & np.uint8(cmask)
    else:  # pragma: no cover - many causes, or a big-endian machine
        c = key & cmask
    pos_c = np.flatnonzero(c == K + 1)  # the censorings, in (group, time) order
    pos_k = [np.flatnonzero(c == k) for k in range(2, K + 1)]
    # the largest time of cause 1 per group: its last cause-1 row in key order
    pos_1 = np.flatnonzero(c == 1) if K >= 1 else np.zeros(0, dtype=np.int64)
    t_max1 = np.full(n_groups, -1, dtype=np.int64)
    if pos_1.size:
        j = np.searchsorted(pos_1, bounds[1:]) - 1
        ok = j >= 0
        ok[ok] = pos_1[j[ok]] >= bounds[:-1][ok]
        t_max1[ok] = (key[pos_1[j[ok]]] >> cbits) & tmask
    del pos_1
    has = np.flatnonzero(n > 0)
    t_max = np.zeros(n_groups)
    t_max[has] = (key[bounds[has + 1] - 1] >> cbits) & tmask
    del c, key
    # blocks: each censoring closes one (the events since the group's start or its
    # previous censoring); each group ends with a tail block of the events after its
    # last censoring. Block numbers as in ``compress``: censorings before + group.
    g_c = np.searchsorted(bounds, pos_c, side="right") - 1
    first_c = np.r_[True, g_c[1:] != g_c[:-1]] if pos_c.size else np.zeros(0, dtype=bool)
    start_c = np.where(first_c, bounds[g_c], np.r_[0, pos_c[:-1] + 1][: pos_c.size])
    n_cens = np.bincount(g_c, minlength=n_groups)
    cum_c = np.cumsum(n_cens)
    last_c = np.full(n_groups, -1, dtype=np.int64)
    last_c[g_c] = pos_c  # the last censoring of each group (later ones overwrite)
    start_t = np.where(last_c >= 0, last_c + 1, bounds[:-1])[has]
    b_start = np.concatenate([start_c, start_t])
    b_end = np.concatenate([pos_c, bounds[has + 1]])
    b_group = np.concatenate([g_c, has])
    b_id = np.concatenate([np.arange(pos_c.size) + g_c, cum_c[has] + has])
    counts = np.empty((b_id.size, K + 1))
    counts[:, 0] = np.r_[np.ones(pos_c.size), np.zeros(has.size)]
    other = np.zeros(b_id.size)
    for k, pk in enumerate(pos_k, start=2):  # loop over causes 2..K
        counts[:, k] = np.searchsorted(pk, b_end) - np.searchsorted(pk, b_start)
        other += counts[:, k]
    counts[:, 1] = (b_end - b_start) - other
    bb, kk = np.nonzero(counts > 0)
    cnt = counts[bb, kk]
    rows = (b_group[bb], b_id[bb], kk, cnt, cnt)
    t_max1 = np.maximum(t_max1, 0).astype(np.float64) * unit
    events = n - n_cens
    return rows, (t_max * unit, t_max1), n.astype(np.float64), events.astype(np.float64)


def aalen_johansen(
    group: np.ndarray,
    time: np.ndarray,
    cause: np.ndarray,
    n_groups: int,
    n_causes: int,
    weights: np.ndarray | None = None,
    *,
    weights2: np.ndarray | None = None,
    curves: bool = False,
    report: int | None = None,
    thin: float = 0.0,
    variance: bool = True,
) -> AJ:
    """Aalen–Johansen cumulative incidence of ``n_causes`` competing causes per group.

    ``group`` in ``0..n_groups-1``, ``time`` any sortable numbers (ties allowed: events
    and censorings at the same time count the censored as still at risk), ``cause`` in
    ``0..n_causes`` (0 = censored), ``weights`` non-negative (default 1); ``weights2`` the
    sums of squared weights when a row stands for several subjects (aggregated counts:
    ``weights`` = Σw, ``weights2`` = Σw²; default ``weights**2``). See the module
    docstring for the variance. ``report``: estimate only causes 1..report (the others
    still compete; their columns stay NaN) — the funnel needs the first cause only.
    ``thin``: the risk-set size below which ``thin_S``/``thin_F1`` are taken.
    ``variance=False`` skips the variances (NaN), for callers that need the curves only
    (the forecast's chain, refitted per bootstrap draw).
    """
    K = int(n_causes)
    fast = None
    if weights is None and weights2 is None and not curves:
        fast = _compress_counts(group, time, cause, K, n_groups)
    if fast is not None:  # unweighted: per-group totals come with the blocks
        rows, t_maxes, n, events = fast
        n2 = n
    else:
        group = np.asarray(group, dtype=np.int64)
        cause = np.asarray(cause, dtype=np.int64)
        time = np.asarray(time)
        w = np.ones(group.size) if weights is None else np.asarray(weights, dtype=np.float64)
        n = np.bincount(group, weights=w, minlength=n_groups).astype(np.float64)
        w2 = w * w if weights2 is None else np.asarray(weights2, dtype=np.float64)
        n2 = np.bincount(group, weights=w2, minlength=n_groups)
        events = np.bincount(group[cause > 0], weights=w[cause > 0], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = n * n / n2
        scale = np.where(n2 > 0, n / n2, 0.0)  # weights rescaled to sum to n_eff
    out = AJ(
        cif=np.full((n_groups, K), np.nan),
        var=np.full((n_groups, K), np.nan),
        unresolved=np.full(n_groups, np.nan),
        n=n,
        n_eff=np.where(n > 0, n_eff, 0.0),
        events=events,
        t_max=np.zeros(n_groups),
        t_max1=np.zeros(n_groups),
        thin_S=np.full(n_groups, np.nan),
        thin_F1=np.full(n_groups, np.nan),
    )
    if fast is not None:
        group, time, cause, w, w2 = rows
        out.t_max, out.t_max1 = t_maxes
        g, t, c, ws = _sorted(group, time, cause, w, scale, K)
    elif group.size == 0:
        if curves:
            out.c_group = np.zeros(0, dtype=np.int64)
            out.c_time = time[:0]
            out.c_at_risk = np.zeros(0)
            out.c_events = np.zeros(0)
            out.c_cif = np.zeros((0, K))
            out.c_var = np.zeros((0, K))
            out.c_surv = np.zeros(0)
        return out
    elif not curves and np.any(cause == 0):
        # only the end values are wanted: the events between two censorings of a group
        # can share one time (see ``compress``), which leaves the estimate unchanged
        (group, time, cause, w, w2), (out.t_max, out.t_max1) = compress(
            group, time, cause, w, w2, K, n_groups
        )
        g, t, c, ws = _sorted(group, time, cause, w, scale, K)
    else:
        g, t, c, ws = _sorted(group, time, cause, w, scale, K)
        out.t_max, out.t_max1 = _group_max(g, t, c == 1, n_groups)
    new = np.empty(g.size, dtype=bool)
    new[0] = True
    np.not_equal(g[1:], g[:-1], out=new[1:])
    new[1:] |= t[1:] != t[:-1]
    block = np.cumsum(new) - 1
    nb = int(block[-1]) + 1
    gb = g[new]
    tb = t[new]
    dk = np.bincount(block * (K + 1) + c, weights=ws, minlength=nb * (K + 1)).reshape(nb, K + 1)
    m = dk.sum(axis=1)
    d = m - dk[:, 0]
    gstart = np.flatnonzero(np.r_[True, gb[1:] != gb[:-1]])
    gend = np.r_[gstart[1:], nb]
    first = np.repeat(gstart, gend - gstart)
    cs = np.cumsum(m)
    Y = np.repeat(cs[gend - 1], gend - gstart) - cs + m  # at risk just before the block
    last = gend - 1
    grp = gb[last]
    with np.errstate(invalid="ignore", divide="ignore"):
        Ys = np.where(Y > 0, Y, 1.0)
        h = d / Ys
        dead = h >= 1.0 - 1e-12
        logf = np.log1p(-np.where(dead, 0.0, h))
        S = np.exp(_within(logf, first))
        S[_within(dead.astype(np.float64), first) > 0] = 0.0
        lagS = np.empty(nb)
        lagS[0] = 1.0
        lagS[1:] = S[:-1]
        lagS[gstart] = 1.0
        a = np.where(Y - d > 1e-12 * np.maximum(Y, 1.0), d / (Ys * (Y - d)), 0.0)
        if curves and variance:
            A = _within(a, first)
        F_all = np.empty((nb, K)) if curves else None
        V_all = None
        if curves:  # without variances a read-only view of NaN: no memory, no time
            V_all = np.full((nb, K), np.nan) if variance else np.broadcast_to(np.nan, (nb, K))
        for k in range(K if report is None or curves else min(report, K)):  # causes
            dkk = dk[:, k + 1]
            inc = lagS * dkk / Ys
            F = _within(inc, first)
            Fe = F[last]
            out.cif[grp, k] = _snap(Fe)
            if F_all is not None:
                F_all[:, k] = F
            if variance:
                sec = lagS * lagS * dkk * (Y - dkk) / (Ys * Ys * Ys)
                cj = lagS * dkk / (Ys * Ys)
                if curves:
                    B1 = _within(F * a, first)
                    B2 = _within(F * F * a, first)
                    var = (
                        F * F * A
                        - 2 * F * B1
                        + B2
                        + _within(sec, first)
                        - 2 * (F * _within(cj, first) - _within(F * cj, first))
                    )
                    assert V_all is not None
                    V_all[:, k] = var
                diff = Fe[np.searchsorted(gstart, np.arange(nb), side="right") - 1] - F
                terms = diff * diff * a + sec - 2 * diff * cj
                var_end = np.bincount(first, weights=terms, minlength=nb)[gstart]
                out.var[grp, k] = _snap_var(var_end)
            if k == 0:  # the first block with fewer than `thin` at risk, per group
                # blocks after a censoring of the group (mass handed on) with few at risk
                # counted in whole blocks (exact in floats): a running sum of weights
                # over every group leaves rounding residue where a group starts
                cens = (dk[:, 0] > 0).astype(np.float64)
                cens_before = _within(cens, first) - cens > 0.5
                low_y = (Y < thin) & cens_before
                th = np.flatnonzero(low_y)
                th = th[np.r_[True, gb[th[1:]] != gb[th[:-1]]]] if th.size else th
                thin_S, thin_F1 = out.thin_S, out.thin_F1
                assert thin_S is not None and thin_F1 is not None
                thin_S[grp] = S[last]
                thin_F1[grp] = Fe
                thin_S[gb[th]] = lagS[th]
                thin_F1[gb[th]] = F[th] - inc[th]
    out.unresolved[grp] = S[last]
    if curves:
        assert F_all is not None and V_all is not None
        out.c_group = gb
        out.c_time = tb
        out.c_at_risk = Y / np.where(scale[gb] > 0, scale[gb], 1.0)
        out.c_events = d / np.where(scale[gb] > 0, scale[gb], 1.0)
        out.c_cif = _snap(F_all, out=F_all)
        out.c_var = V_all if not variance else _snap_var(V_all)
        out.c_surv = S
    return out


def interval(
    p: np.ndarray, var: np.ndarray, n_eff: np.ndarray, z: float = Z95
) -> tuple[np.ndarray, np.ndarray]:
    """Confidence interval of a cumulative incidence on the log(−log) scale (it stays
    inside [0, 1]); where the estimate is 0 or 1 or its variance 0 — no spread to
    transform — the Wilson interval with the effective number of subjects ``n_eff``."""
    p = np.asarray(p, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        inner = (p > 0) & (p < 1) & (var > 0)
        lp = np.log(np.where(inner, p, 0.5))
        se = np.sqrt(np.where(inner, var, 0.0)) / (np.where(inner, p, 0.5) * np.abs(lp))
        theta = np.log(-lp)
        low = np.exp(-np.exp(theta + z * se))
        high = np.exp(-np.exp(theta - z * se))
    w_low, w_high = wilson(np.zeros_like(p), n_eff, p=p, z=z)
    low = np.minimum(np.where(inner, low, w_low), p)
    high = np.maximum(np.where(inner, high, w_high), p)
    bad = np.isnan(p)
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)
