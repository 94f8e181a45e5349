"""Small vectorised statistics shared by the metrics: grouped sorts, quantiles, KM, Wilson."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

#: z for two-sided 95% intervals, Φ⁻¹(0.975)
Z95 = NormalDist().inv_cdf(0.975)
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
    unit = 1
    if gb + vb + 1 > 63:  # a coarser exact unit (e.g. whole seconds) may make it fit
        from ._validate import fitting_unit

        unit = fitting_unit(value, gb + vb + 1 - 63)
        if unit > 1:
            value = value // unit
            vb = _bits(value.max())
    if gb + vb + 1 <= 63:
        key = (group.astype(np.int64) << (vb + 1)) | (value.astype(np.int64) << 1) | fl
        key.sort()
        val = (key >> 1) & ((1 << vb) - 1)
        if unit > 1:
            val *= unit
        return key >> (vb + 1), val, key & 1
    order = np.lexsort((fl, value, group))
    return group[order], value[order], fl[order]


def group_bounds(sorted_group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """start, end positions of each group code 0..n_groups-1 in a sorted code array."""
    codes = np.arange(n_groups)
    return (
        np.searchsorted(sorted_group, codes, side="left"),
        np.searchsorted(sorted_group, codes, side="right"),
    )


def grouped_quantile(
    values: np.ndarray, start: np.ndarray, end: np.ndarray, q: float
) -> np.ndarray:
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

    One packed sort by (group, time, censored) — events before censorings at the same
    time — then, per sorted element *i* of a group of size *n* with rank *r*, the factor
    ``1 - event_i / (n - r)``. Their running product is the survival function: for ``d``
    tied events among ``n`` at risk the factors telescope to ``(n - d) / n``, and a
    censoring multiplies by 1, so no pass to find tie blocks is needed. The cumulative
    product runs per group (one ``np.cumprod`` per slice: a product across groups would
    underflow); everything per element is vectorised.

    A quantile ``q`` is the smallest time with S(t) <= 1 - q + 1e-9 (NaN when S never
    falls that low); ``mean`` is the restricted mean survival time up to the group's
    largest observed time, event or censored.

    Returns a dict of arrays of length ``n_groups``: ``n``, ``censored``, ``mean`` and one
    entry per quantile named ``q{round(100 q)}`` (times in the input's unit, float).
    """
    g, t, c = sort_by_group(group, time, censored)
    start, end = group_bounds(g, n_groups)
    out: dict[str, np.ndarray] = {"n": end - start}
    out["censored"] = np.bincount(g[c == 1], minlength=n_groups)[:n_groups]
    qs = {f"q{round(100 * q)}": np.full(n_groups, np.nan) for q in quantiles}
    mean = np.full(n_groups, np.nan)
    if g.size:
        at_risk = (end[g] - np.arange(g.size)).astype(np.float64)
        factor = 1.0 - (1 - c) / at_risk
        tf = t.astype(np.float64)
        dt = np.empty_like(tf)
        dt[:-1] = tf[1:] - tf[:-1]
        for k in np.flatnonzero(end > start):  # loop over groups (stages × segments) only
            a, b = start[k], end[k]
            surv = np.cumprod(factor[a:b])
            tk = tf[a:b]
            # S is non-increasing: binary search for the first crossing
            neg = -surv
            for q in quantiles:
                i = np.searchsorted(neg, -(1.0 - q + KM_TOL), side="left")
                if i < b - a:
                    qs[f"q{round(100 * q)}"][k] = tk[i]
            mean[k] = tk[0] + float(np.dot(surv[:-1], dt[a : b - 1]))
    out.update(qs)
    out["mean"] = mean
    return out
