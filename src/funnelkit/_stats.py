"""Small vectorised statistics shared by the metrics: grouped sorts, quantiles, KM, Wilson."""

from __future__ import annotations

import numpy as np
from scipy import stats

#: z for two-sided 95% intervals, Φ⁻¹(0.975)
Z95 = float(stats.norm.ppf(0.975))
#: tolerance of the Kaplan–Meier quantile rule S(t) <= 1 - q + TOL (DESIGN §3)
KM_TOL = 1e-9


def wilson(successes, n_eff, p=None, z: float = Z95):
    """Wilson score interval.

    ``p`` defaults to ``successes / n_eff``; pass it explicitly for weighted proportions
    (with ``n_eff`` Kish's effective sample size). NaN where ``n_eff == 0``.
    """
    n = np.asarray(n_eff, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if p is None:
            p = np.asarray(successes, dtype=float) / n
        p = np.asarray(p, dtype=float)
        z2 = z * z
        denom = 1 + z2 / n
        centre = (p + z2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
        low = np.clip(centre - half, 0.0, 1.0)
        high = np.clip(centre + half, 0.0, 1.0)
    bad = ~(n > 0)
    low = np.where(bad, np.nan, low)
    high = np.where(bad, np.nan, high)
    return low, high


def _bits(x: int) -> int:
    return max(1, int(x).bit_length())


def sort_by_group(group: np.ndarray, value: np.ndarray, flag: np.ndarray | None = None):
    """Sort int64 ``value`` (>= 0) within small int ``group`` codes (and an optional 0/1
    ``flag`` that breaks ties, 0 first).

    Returns ``(group, value, flag)`` sorted. When everything packs into one int64 this is a
    single ``np.sort`` (no argsort, no gathers); otherwise a lexsort.
    """
    n = value.size
    fl = np.zeros(n, dtype=np.int64) if flag is None else flag.astype(np.int64)
    if n == 0:
        return group.astype(np.int64), value.astype(np.int64), fl
    gb = _bits(group.max())
    vb = _bits(value.max())
    if gb + vb + 1 <= 63:
        key = (group.astype(np.int64) << (vb + 1)) | (value.astype(np.int64) << 1) | fl
        key.sort()
        return key >> (vb + 1), (key >> 1) & ((1 << vb) - 1), key & 1
    order = np.lexsort((fl, value, group))
    return group[order], value[order], fl[order]


def group_bounds(sorted_group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """start, end positions of each group code 0..n_groups-1 in a sorted code array."""
    codes = np.arange(n_groups)
    return (
        np.searchsorted(sorted_group, codes, side="left"),
        np.searchsorted(sorted_group, codes, side="right"),
    )


def grouped_quantile(values: np.ndarray, start: np.ndarray, end: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolation quantile (numpy's default) of sorted ``values`` in each
    [start, end) slice; NaN for empty slices."""
    n = end - start
    ok = n > 0
    h = np.where(ok, (n - 1) * q, 0.0)
    lo = np.floor(h).astype(np.int64)
    frac = h - lo
    i = np.where(ok, start + lo, 0)
    j = np.where(ok, np.minimum(start + lo + 1, end - 1), 0)
    if values.size == 0:
        return np.full(n.shape, np.nan)
    v = values.astype(np.float64)
    out = v[i] + frac * (v[j] - v[i])
    return np.where(ok, out, np.nan)


def grouped_mean(values: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    csum = np.concatenate(([0.0], np.cumsum(values, dtype=np.float64)))
    n = end - start
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (csum[end] - csum[start]) / n, np.nan)


def kaplan_meier(
    group: np.ndarray,
    time: np.ndarray,
    censored: np.ndarray,
    n_groups: int,
    quantiles: tuple[float, ...] = (0.5, 0.75, 0.9),
) -> dict[str, np.ndarray]:
    """Kaplan–Meier estimates for every group at once.

    One sort by (group, time, censored), then segmented cumulative products in log space.
    Events come before censorings at the same time. A quantile ``q`` is the smallest time
    with S(t) <= 1 - q + 1e-9 (NaN when S never falls that low); ``mean`` is the restricted
    mean survival time up to the group's largest observed time, event or censored.

    Returns a dict of arrays of length ``n_groups``: ``n``, ``censored``, ``mean`` and one
    entry per quantile named ``q{int(100 q)}`` (times in the input's unit, float).
    """
    out: dict[str, np.ndarray] = {}
    g, t, c = sort_by_group(group, time, censored)
    start, end = group_bounds(g, n_groups)
    out["n"] = end - start
    out["censored"] = np.bincount(g[c == 1], minlength=n_groups)[:n_groups] if g.size else np.zeros(n_groups, dtype=np.int64)
    n = g.size
    if n == 0:
        for q in quantiles:
            out[f"q{round(100 * q)}"] = np.full(n_groups, np.nan)
        out["mean"] = np.full(n_groups, np.nan)
        return out
    # blocks of equal (group, time)
    new = np.empty(n, dtype=bool)
    new[0] = True
    new[1:] = (g[1:] != g[:-1]) | (t[1:] != t[:-1])
    bstart = np.flatnonzero(new)
    bg = g[bstart]
    bt = t[bstart].astype(np.float64)
    events = np.add.reduceat(1 - c, bstart)
    at_risk = end[bg] - bstart
    factor = 1.0 - events / at_risk
    zero = factor <= 0.0
    logf = np.where(zero, 0.0, np.log(np.where(zero, 1.0, factor)))
    # segmented cumulative sums (groups are contiguous blocks)
    gnew = np.empty(bstart.size, dtype=bool)
    gnew[0] = True
    gnew[1:] = bg[1:] != bg[:-1]
    gfirst = np.flatnonzero(gnew)
    gid = np.cumsum(gnew) - 1
    cl = np.cumsum(logf)
    cz = np.cumsum(zero)
    base_l = (cl - logf)[gfirst][gid]
    base_z = (cz - zero)[gfirst][gid]
    surv = np.where(cz - base_z > 0, 0.0, np.exp(cl - base_l))
    last = np.append(gfirst[1:], bstart.size) - 1  # last block of each present group
    present = bg[gfirst]
    big = np.iinfo(np.int64).max
    bidx = np.arange(bstart.size)
    for q in quantiles:
        thr = 1.0 - q + KM_TOL
        cand = np.where(surv <= thr, bidx, big)
        first = np.minimum.reduceat(cand, gfirst)
        val = np.full(n_groups, np.nan)
        hit = first != big
        val[present[hit]] = bt[first[hit]]
        out[f"q{round(100 * q)}"] = val
    # restricted mean: t_first + sum_b S_b (t_{b+1} - t_b) within the group
    nxt_t = np.append(bt[1:], 0.0)
    seg = surv * (nxt_t - bt)
    seg[last] = 0.0
    area = np.add.reduceat(seg, gfirst) + bt[gfirst]
    mean = np.full(n_groups, np.nan)
    mean[present] = area
    out["mean"] = mean
    return out
