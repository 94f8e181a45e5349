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

from dataclasses import dataclass

import numpy as np

from ._stats import Z95, wilson


@dataclass
class AJ:
    """Aalen–Johansen estimates per group.

    ``cif`` (n_groups, K): cumulative incidence of causes 1..K at the group's largest
    follow-up; ``var`` its variance; ``unresolved`` the overall survival there (mass not
    yet resolved by any cause); ``n`` the (weighted) number of subjects, ``n_eff`` Kish's
    effective number, ``events`` the (weighted) number of subjects with a cause. Groups
    without subjects are NaN (``n`` 0). With ``curves``: one entry per block (distinct
    group and time, in group then time order) — ``c_group``, ``c_time``, ``c_at_risk``
    (weighted number at risk just before the time), ``c_cif`` (blocks, K), ``c_var``,
    ``c_surv`` (overall survival just after the time).
    """

    cif: np.ndarray
    var: np.ndarray
    unresolved: np.ndarray
    n: np.ndarray
    n_eff: np.ndarray
    events: np.ndarray
    c_group: np.ndarray | None = None
    c_time: np.ndarray | None = None
    c_at_risk: np.ndarray | None = None
    c_cif: np.ndarray | None = None
    c_var: np.ndarray | None = None
    c_surv: np.ndarray | None = None


def _within(x: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Running sum of ``x`` (blocks, ...) restarting at each group's first block
    (``first``: per block, the index of its group's first block)."""
    cs = np.cumsum(x, axis=0)
    return cs - (cs[first] - x[first])


def _snap(F: np.ndarray) -> np.ndarray:
    """Rounding: a sum of shares that is 1 may land at 1 ± 2e-16, and the order of the
    sums (per-subject or pre-aggregated weights) must not decide the interval's formula."""
    F = np.where(F > 1.0 - 1e-12, 1.0, F)
    return np.where(F < 1e-12, 0.0, F)


def _snap_var(v: np.ndarray) -> np.ndarray:
    return np.where(v < 1e-18, 0.0, v)


def _sorted(group, time, cause, w, scale, K):
    """Subjects in (group, time) order with their causes and rescaled weights. Integer
    times that fit pack group, time and cause into one int64 key: one plain sort (an
    argsort only when the weights must follow)."""
    t = np.asarray(time)
    if t.dtype.kind in "iu" and t.size and t.min() >= 0:
        tmax = int(t.max()) + 1
        cbits = max(1, int(K).bit_length())
        n_groups = int(group.max()) + 1
        if n_groups * tmax < (1 << (62 - cbits)):
            key = ((group * tmax + t.astype(np.int64)) << cbits) | cause
            if np.all(w == 1.0) and np.all(scale[group] == 1.0):
                key = np.sort(key)
                ws = np.ones(key.size)
            else:
                order = np.argsort(key)
                key = key[order]
                ws = w[order] * scale[group[order]]
            gt = key >> cbits
            return gt // tmax, gt % tmax, key & ((1 << cbits) - 1), ws
    order = np.lexsort((t, group))
    g = group[order]
    return g, t[order], cause[order], w[order] * scale[g]


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
) -> AJ:
    """Aalen–Johansen cumulative incidence of ``n_causes`` competing causes per group.

    ``group`` in ``0..n_groups-1``, ``time`` any sortable numbers (ties allowed: events
    and censorings at the same time count the censored as still at risk), ``cause`` in
    ``0..n_causes`` (0 = censored), ``weights`` non-negative (default 1); ``weights2`` the
    sums of squared weights when a row stands for several subjects (aggregated counts:
    ``weights`` = Σw, ``weights2`` = Σw²; default ``weights**2``). See the module
    docstring for the variance. ``report``: estimate only causes 1..report (the others
    still compete; their columns stay NaN) — the funnel needs the first cause only.
    """
    K = int(n_causes)
    group = np.asarray(group, dtype=np.int64)
    cause = np.asarray(cause, dtype=np.int64)
    time = np.asarray(time)
    w = np.ones(group.size) if weights is None else np.asarray(weights, dtype=np.float64)
    n = np.bincount(group, weights=w, minlength=n_groups).astype(np.float64)
    w2 = w * w if weights2 is None else np.asarray(weights2, dtype=np.float64)
    n2 = np.bincount(group, weights=w2, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = n * n / n2
        scale = np.where(n2 > 0, n / n2, 0.0)  # weights rescaled to sum to n_eff
    events = np.bincount(group[cause > 0], weights=w[cause > 0], minlength=n_groups)
    out = AJ(
        cif=np.full((n_groups, K), np.nan),
        var=np.full((n_groups, K), np.nan),
        unresolved=np.full(n_groups, np.nan),
        n=n,
        n_eff=np.where(n > 0, n_eff, 0.0),
        events=events,
    )
    if group.size == 0:
        if curves:
            out.c_group = np.zeros(0, dtype=np.int64)
            out.c_time = time[:0]
            out.c_at_risk = np.zeros(0)
            out.c_cif = np.zeros((0, K))
            out.c_var = np.zeros((0, K))
            out.c_surv = np.zeros(0)
        return out
    g, t, c, ws = _sorted(group, time, cause, w, scale, K)
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
        if curves:
            A = _within(a, first)
        F_all = np.empty((nb, K)) if curves else None
        V_all = np.empty((nb, K)) if curves else None
        for k in range(K if report is None or curves else min(report, K)):  # causes
            dkk = dk[:, k + 1]
            inc = lagS * dkk / Ys
            F = _within(inc, first)
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
                assert F_all is not None and V_all is not None
                F_all[:, k], V_all[:, k] = F, var
            Fe = F[last]
            diff = Fe[np.searchsorted(gstart, np.arange(nb), side="right") - 1] - F
            terms = diff * diff * a + sec - 2 * diff * cj
            var_end = np.bincount(first, weights=terms, minlength=nb)[gstart]
            out.cif[grp, k] = _snap(Fe)
            out.var[grp, k] = _snap_var(var_end)
    out.unresolved[grp] = S[last]
    if curves:
        assert F_all is not None and V_all is not None
        out.c_group = gb
        out.c_time = tb
        out.c_at_risk = Y / np.where(scale[gb] > 0, scale[gb], 1.0)
        out.c_cif = _snap(F_all)
        out.c_var = _snap_var(V_all)
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
