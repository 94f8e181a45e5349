"""Small vectorised statistics shared by the metrics: grouped sorts, quantiles, KM, Wilson."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from .errors import InvalidParameterError

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


def group_sort(
    group: np.ndarray, value: np.ndarray, n_groups: int, flag: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Sort int64 ``value`` (>= 0) within the int ``group`` codes 0..n_groups-1 (and an
    optional 0/1 ``flag`` that breaks ties, 0 first).

    Returns ``(value, flag, start, end)``: the values (and flags, None when not given)
    sorted by (group, value, flag) and the slice of each group. The group bounds come
    from a ``bincount`` before the sort, so the sorted groups are never materialised; when
    (group, value, flag) pack into one int64 this is a single ``np.sort`` (no argsort, no
    gathers), otherwise a lexsort.
    """
    counts = np.bincount(group, minlength=n_groups)[:n_groups] if group.size else None
    end = np.cumsum(counts) if counts is not None else np.zeros(n_groups, dtype=np.int64)
    start = end - (counts if counts is not None else 0)
    n = value.size
    if n == 0:
        return value.astype(np.int64), None if flag is None else flag.astype(np.int64), start, end
    fb = 0 if flag is None else 1
    gb = _bits(n_groups - 1)
    vb = _bits(value.max())
    unit = 1
    buf = None
    if gb + vb + fb > 63:  # a coarser exact unit (e.g. whole seconds) may make it fit
        from ._validate import fitting_unit

        unit = fitting_unit(value, gb + vb + fb - 63)
        if unit > 1:
            buf = np.floor_divide(value, unit)
            vb = _bits(buf.max())
    if gb + vb + fb <= 63:
        key = np.left_shift(group, vb + fb, dtype=np.int64)
        if buf is None:
            buf = np.left_shift(value, fb, dtype=np.int64)
        elif fb:
            np.left_shift(buf, fb, out=buf)
        key |= buf
        if flag is not None:
            key |= flag
        key.sort()
        fl = np.bitwise_and(key, 1) if flag is not None else None
        val = np.right_shift(key, fb, out=buf)
        val &= (1 << vb) - 1
        if unit > 1:
            val *= unit
        return val, fl, start, end
    order = np.lexsort((value, group) if flag is None else (flag, value, group))
    fl = None if flag is None else flag[order].astype(np.int64)
    return value[order].astype(np.int64), fl, start, end


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
    vi = values[i].astype(np.float64)  # gather first: no float copy of all values
    out = vi + frac * (values[j].astype(np.float64) - vi)
    return np.where(ok, out, np.nan)


def grouped_mean(values: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Mean of each [start, end) slice of ``values`` (NaN for empty slices), summed in
    float64 slice by slice (pairwise, no float copy of the whole array)."""
    out = np.full(start.shape, np.nan)
    for k in np.flatnonzero(end > start):  # a loop over groups, not elements
        out[k] = values[start[k] : end[k]].sum(dtype=np.float64) / (end[k] - start[k])
    return out


#: interval columns of the dwell and cycle-time tables and their keys in the stats dicts
CI_COLUMNS = (
    ("mean_low", "mean_low"),
    ("mean_high", "mean_high"),
    ("median_low", "q50_low"),
    ("median_high", "q50_high"),
    ("p75_low", "q75_low"),
    ("p75_high", "q75_high"),
    ("p90_low", "q90_low"),
    ("p90_high", "q90_high"),
)


def plain_intervals(
    values: np.ndarray, counts: np.ndarray, quantiles: tuple[float, ...] = (0.5, 0.75, 0.9)
) -> dict[str, float]:
    """95% intervals of complete (uncensored) times of one group, given as sorted
    ``values`` with their ``counts`` (one per value, or sketch runs).

    * Quantile q: the distribution-free order-statistic interval [x_(l), x_(u)] with
      l = F⁻¹(0.025) and u = F⁻¹(0.975) + 1 of Binomial(n, q) (coverage >= 95% for any
      continuous distribution); NaN when n is too small for such ranks (n < 6 for the
      median).
    * Mean: Student's t interval ``mean ± t(0.975, n − 1) s / √n`` (NaN for n < 2).

    Returns a dict of floats keyed ``mean_low``, ``mean_high`` and ``q{round(100 q)}_low``
    / ``_high``.
    """
    from scipy import stats

    cnt = counts.astype(np.float64)
    n = int(cnt.sum())
    out: dict[str, float] = {}
    cum = np.cumsum(counts)
    for q in quantiles:
        lo = int(stats.binom.ppf(0.025, n, q)) if n else 0
        hi = int(stats.binom.ppf(0.975, n, q)) + 1 if n else 0
        key = f"q{round(100 * q)}"
        ok = 1 <= lo and hi <= n
        # the r-th smallest (1-based) is the value of the run holding rank r
        out[f"{key}_low"] = float(values[np.searchsorted(cum, lo)]) if ok else np.nan
        out[f"{key}_high"] = float(values[np.searchsorted(cum, hi)]) if ok else np.nan
    if n >= 2:
        v = values.astype(np.float64)
        mean = float(np.dot(cnt, v)) / n
        sd = float(np.sqrt(np.dot(cnt, (v - mean) ** 2) / (n - 1)))
        half = float(stats.t.ppf(0.975, n - 1)) * sd / np.sqrt(n)
        out["mean_low"], out["mean_high"] = mean - half, mean + half
    else:
        out["mean_low"] = out["mean_high"] = np.nan
    return out


def km_intervals(
    time: np.ndarray,
    events: np.ndarray,
    at_risk: np.ndarray,
    surv: np.ndarray,
    quantiles: tuple[float, ...] = (0.5, 0.75, 0.9),
    z: float = Z95,
) -> dict[str, float]:
    """Restricted mean and 95% intervals of one group's Kaplan–Meier curve.

    The inputs are the curve's entries in time order (times non-decreasing, events before
    censorings at a time): ``events`` and ``at_risk`` of each entry and ``surv``, the
    estimate S after it. Entries may split a block of tied times (one per deal, as in
    :func:`kaplan_meier`, or one per sketch run): Greenwood's terms
    ``d / (n (n − d))`` telescope over a split block, so the sum is the same.

    * Quantile q (Brookmeyer–Crowley): the times t at which the test of S(t) = 1 − q is
      not rejected, with the log(−log) transformed statistic — i.e. where 1 − q lies in the
      pointwise interval ``S^exp(±z σ / |log S|)``, σ² = Σ d / (n (n − d)) (Greenwood).
      ``q_low`` is the smallest time whose lower band is <= 1 − q (+1e−9), ``q_high`` the
      smallest whose upper band is; NaN when the band never falls that low (at S = 0 the
      band is undefined: lower 0, upper unknown — one event alone gives [t, NaN]). This is R
      survival's ``quantile.survfit`` with ``conf.type="log-log"`` (and lifelines'
      ``qth_survival_time`` of its exponential-Greenwood band) without R's midpoint rule
      on exactly flat stretches, matching the point quantile's rule (DESIGN §3).
    * Restricted mean up to the largest observed time: variance
      Σ A_i² d_i / (n_i (n_i − d_i)), A_i the area under S after t_i; a normal interval
      ``mean ± z se`` with the lower end clipped at 0.

    Returns a dict of floats: ``mean``, ``mean_low``, ``mean_high`` and per quantile
    ``q{round(100 q)}_low`` / ``_high``.
    """
    e = np.asarray(events, dtype=np.float64)
    n = np.asarray(at_risk, dtype=np.float64)
    denom = n - e
    denom *= n
    gw = np.zeros(time.size)
    np.divide(e, denom, out=gw, where=(denom > 0) & (e > 0))
    del denom
    # area under S after each entry, up to the largest time
    area = np.zeros(time.size)
    if time.size > 1:
        step = np.diff(time).astype(np.float64)
        step *= surv[:-1]
        area[:-1] = np.cumsum(step[::-1])[::-1]
    mean = float(time[0]) + float(area[0]) if time.size else np.nan
    area *= area
    se = float(np.sqrt(np.dot(area, gw)))
    out = {"mean": mean, "mean_low": max(mean - z * se, 0.0), "mean_high": mean + z * se}
    last = np.ones(time.size, dtype=bool)  # the last entry of each distinct time
    np.not_equal(time[1:], time[:-1], out=last[:-1])
    np.cumsum(gw, out=gw)
    ts, s, v = time[last], surv[last], gw[last]
    inside = (s > 0) & (s < 1)
    # on the log(−log) scale g = log(−log S) with se = √V / |log S|: the band
    # S^exp(±z se) is <= level exactly when g ± z se >= log(−log level) — two logs and a
    # root per time instead of powers. Outside (0, 1): S = 1 (before any event) never
    # hits; at S = 0 the log(−log) band is undefined (R gives NA): the lower band is 0,
    # the upper one unknown, so a quantile's upper end is never read from there.
    # (in place where it can: at a million deals each temporary is tens of MB of fresh
    # memory, which costs more than the arithmetic)
    with np.errstate(invalid="ignore", divide="ignore"):
        neg_log = np.where(inside, s, 0.5)
        np.log(neg_log, out=neg_log)
        np.negative(neg_log, out=neg_log)
        g = np.log(neg_log)
        np.sqrt(v, out=v)
        v *= z
        v /= neg_log  # the half-width z se on the log(−log) scale
        del neg_log
    upper = np.subtract(g, v)
    lower = np.add(g, v, out=g)
    outside = ~inside
    if outside.any():
        lower[outside] = np.where(s[outside] <= 0, np.inf, -np.inf)
        upper[outside] = -np.inf
    for q in quantiles:
        c = np.log(-np.log(1.0 - q + KM_TOL))
        for name, band in (("low", lower), ("high", upper)):
            hit = band >= c
            i = int(np.argmax(hit))
            out[f"q{round(100 * q)}_{name}"] = float(ts[i]) if hit[i] else np.nan
    return out


def km_survival(
    events: np.ndarray, censored: np.ndarray, binned: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The Kaplan–Meier curve of one group: the number at risk and S after each entry.

    The entries are in time order, events before censorings at a time, each with its
    count of ``events`` and ``censorings`` (one deal each — 1 and 0, or 0 and 1 — or one
    run of a sketch). The number at risk at an entry is the total less everything before
    it; the running product of ``1 − d / n`` is S: for tied events split over entries the
    factors telescope to ``(n − d) / n``, and a censoring multiplies by 1. In a bin
    (``binned``) the order of events and censorings is unknown: its censorings count as at
    risk for half of its events (the actuarial rule). This is the one Kaplan–Meier of the
    library: :func:`kaplan_meier` (deals), :func:`kaplan_meier_runs` (the Dask engine's
    merged runs), the charts' step function (:func:`funnelkit.plot._style.km_curve`) and
    the what-if's binned curves (several at once: entries along the last axis).
    """
    d = np.asarray(events, dtype=np.float64)
    total = np.add(d, censored, dtype=np.float64)
    # everything at or after the entry (along the last axis: many curves at once)
    at_risk = np.flip(np.cumsum(np.flip(total, -1), axis=-1), -1)
    if binned is not None:
        at_risk -= np.where(binned, 0.5 * np.asarray(censored, dtype=np.float64), 0.0)
    surv = np.zeros(d.shape)
    np.divide(d, at_risk, out=surv, where=at_risk > 0)
    np.subtract(1.0, surv, out=surv)
    np.cumprod(surv, axis=-1, out=surv)
    return at_risk, surv


def kaplan_meier_runs(
    group: np.ndarray,
    time: np.ndarray,
    events: np.ndarray,
    censored: np.ndarray,
    n_groups: int,
    quantiles: tuple[float, ...] = (0.5, 0.75, 0.9),
    z: float = Z95,
    binned: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Kaplan–Meier estimates per group from entries sorted by (group, time), events before
    censorings at a time, each with its count of ``events`` and ``censored`` (and, with
    ``binned``, whether it is a bin of unknown order; see :func:`km_survival`).

    A quantile ``q`` is the smallest time with S(t) <= 1 - q + 1e-9 (NaN when S never
    falls that low); ``mean`` is the restricted mean survival time up to the group's
    largest observed time, event or censored. Intervals (95%; another level with its
    normal quantile ``z``) come from :func:`km_intervals`: Brookmeyer–Crowley with the
    log(−log) statistic for the quantiles, Greenwood's formula for the restricted mean.

    Returns a dict of arrays of length ``n_groups``: ``n``, ``censored``, ``mean``,
    ``mean_low``, ``mean_high`` and per quantile ``q{round(100 q)}``,
    ``q{round(100 q)}_low`` and ``q{round(100 q)}_high`` (times in the input's unit, float;
    NaN when undefined).
    """
    start, end = group_bounds(group, n_groups)
    return _km_groups(time, events, censored, start, end, quantiles, z, binned)


def _km_groups(
    time: np.ndarray,
    events: np.ndarray,
    censored: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    quantiles: tuple[float, ...],
    z: float,
    binned: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """:func:`kaplan_meier_runs` on the slices ``[start, end)`` of each group."""
    n_groups = start.size
    n = np.zeros(n_groups, dtype=np.int64)
    cens = np.zeros(n_groups, dtype=np.int64)
    qs = {f"q{round(100 * q)}": np.full(n_groups, np.nan) for q in quantiles}
    names = ["mean_low", "mean_high"]
    names += [f"q{round(100 * q)}_{side}" for q in quantiles for side in ("low", "high")]
    ci = {name: np.full(n_groups, np.nan) for name in names}
    mean = np.full(n_groups, np.nan)
    for k in np.flatnonzero(end > start):  # loop over groups (stages × segments) only
        a, b = int(start[k]), int(end[k])
        dk, ck, tk = events[a:b], censored[a:b], time[a:b]
        cens[k] = int(ck.sum())
        n[k] = int(dk.sum()) + cens[k]
        if n[k] == 0:
            continue
        at_risk, surv = km_survival(dk, ck, None if binned is None else binned[a:b])
        for q in quantiles:  # S is non-increasing: the times with S above the level lead
            i = int(np.count_nonzero(surv > 1.0 - q + KM_TOL))
            if i < b - a:
                qs[f"q{round(100 * q)}"][k] = float(tk[i])
        res = km_intervals(tk, dk, at_risk, surv, quantiles, z)
        mean[k] = res["mean"]
        for name in names:
            ci[name][k] = res[name]
    out: dict[str, np.ndarray] = {"n": n, "censored": cens}
    out.update(qs)
    out["mean"] = mean
    out.update(ci)
    return out


def kaplan_meier(
    group: np.ndarray,
    time: np.ndarray,
    censored: np.ndarray,
    n_groups: int,
    quantiles: tuple[float, ...] = (0.5, 0.75, 0.9),
    z: float = Z95,
) -> dict[str, np.ndarray]:
    """Kaplan–Meier estimates for every group at once, one entry per deal.

    One packed sort by (group, time, censored) — events before censorings at the same
    time — then :func:`kaplan_meier_runs` with one event or one censoring per entry: no
    pass to find tie blocks is needed (the factors telescope, see :func:`km_survival`).
    Returns its dict (``n``, ``censored``, ``mean``, ``mean_low``, ``mean_high``, and per
    quantile ``q{round(100 q)}`` with ``_low`` / ``_high``).
    """
    t, c, start, end = group_sort(group, time, n_groups, censored)
    assert c is not None
    return _km_groups(t, np.subtract(1, c), c, start, end, quantiles, z)


def fisher_exact_2x2(a, b, c, d, alternative: str = "two-sided") -> np.ndarray:
    """p-values of Fisher's exact test of many 2×2 tables ``[[a, b], [c, d]]`` at once.

    The p-values of :func:`scipy.stats.fisher_exact` (two-sided: the tables at most as
    likely as the observed one, with its relative tolerance of 1e-14 for ties), computed
    for every table together. The hypergeometric probabilities over each table's support
    come from the ratio of consecutive terms, in logs, normalised over the support: the
    work is proportional to the support's width, not to the table's total as for
    :data:`scipy.stats.hypergeom` (whose pmf took most of 160 s for 300,000 tables of
    100,000 deals). ``alternative`` is ``"two-sided"``, ``"greater"`` (odds ratio > 1)
    or ``"less"``. A table with an empty row or column gets 1.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise InvalidParameterError(
            f"`alternative` must be 'two-sided', 'greater' or 'less'; got {alternative!r}."
        )
    a, b, c, d = np.broadcast_arrays(*(np.asarray(v, dtype=np.int64) for v in (a, b, c, d)))
    shape = a.shape
    a, b, c, d = (v.reshape(-1) for v in (a, b, c, d))
    n1, n2, n = a + b, c + d, a + c  # row totals; column total: x ~ Hypergeom(M, n1, n)
    lo = np.maximum(0, n - n2)
    hi = np.minimum(n, n1)
    p = np.ones(a.size)
    empty = (n1 == 0) | (n2 == 0) | (n == 0) | (b + d == 0)
    todo = np.flatnonzero(~empty & (hi > lo))
    by_width = np.argsort((hi - lo)[todo], kind="stable")
    order = todo[by_width]
    width = (hi - lo + 1)[order]  # ascending
    start = 0
    while start < order.size:  # blocks of tables of similar support width
        rows = max(1, _FISHER_CELLS // int(width[start]))
        w = int(width[min(start + rows, order.size) - 1])  # the block's widest
        rows = max(1, min(rows, _FISHER_CELLS // w))  # at most _FISHER_CELLS cells
        block = order[start : start + rows]
        w = int(width[start + block.size - 1])
        p[block] = _fisher_block(
            a[block], n1[block], n2[block], n[block], lo[block], hi[block], w, alternative
        )
        start += block.size
    return np.minimum(p, 1.0).reshape(shape)


#: cells of the (tables × support) work arrays of one block of :func:`fisher_exact_2x2`
_FISHER_CELLS = 1 << 21


def _fisher_block(a, n1, n2, n, lo, hi, w, alternative):
    """Fisher p-values of tables with supports ``lo..hi`` (at most ``w`` values)."""
    x = lo[:, None] + np.arange(w)[None, :]  # (tables, w)
    inside = x <= hi[:, None]
    # log pmf(x + 1) / pmf(x) = log (n1 − x)(n − x) / ((x + 1)(n2 − n + x + 1))
    num = (n1[:, None] - x) * (n[:, None] - x)
    den = (x + 1) * (n2[:, None] - n[:, None] + x + 1)
    ok = inside & (x < hi[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(
            ok,
            np.log(np.where(ok, num, 1).astype(np.float64))
            - np.log(np.where(ok, den, 1).astype(np.float64)),
            0.0,
        )
    logw = np.zeros(x.shape)
    logw[:, 1:] = np.cumsum(step[:, :-1], axis=1)
    logw = np.where(inside, logw, -np.inf)
    top = logw.max(axis=1, keepdims=True)
    weight = np.exp(logw - top)
    total = weight.sum(axis=1)
    k = (a - lo)[:, None]
    col = np.arange(w)[None, :]
    if alternative == "greater":
        sel = col >= k
    elif alternative == "less":
        sel = col <= k
    else:
        at = np.take_along_axis(logw, k, axis=1)
        # scipy's tie rule pmf(x) <= pmf(a) (1 + 1e-14), with room for the rounding of the
        # running sums of log ratios (a few ulps per step between x and a)
        tol = np.log1p(1e-14) + 4e-16 * np.abs(col - k)
        sel = inside & (logw <= at + tol)
    return np.where(sel, weight, 0.0).sum(axis=1) / total


def one_vs_rest(
    time: np.ndarray,
    event: np.ndarray,
    group: np.ndarray,
    groups: np.ndarray,
    z: float = Z95,
    count: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Each group in ``groups`` against all other subjects: the log-rank test and both
    sides' Kaplan–Meier medians with Brookmeyer–Crowley intervals.

    ``time`` (any numeric unit), ``event`` (bool: the subject left; False: censored at
    ``time``) and ``group`` (int) per subject — or per row of ``count`` (int) identical
    subjects, which gives the same result as the subjects one by one; a subject is at risk at every event time up
    to and including its own. One sort for all comparisons, then one pass of cumulative
    counts per group (a loop over groups only). For group *g* at each distinct event time
    with ``d`` events among ``n`` at risk, ``d_g`` and ``n_g`` of them in *g*:
    ``O − E = Σ (d_g − d n_g / n)`` and the hypergeometric variance
    ``V = Σ d (n_g / n)(1 − n_g / n)(n − d) / (n − 1)``; ``Z = (O − E) / √V`` is standard
    normal under equal hazards (two-sided p-value ``2 Φ(−|Z|)``). The curves of *g* and
    of the rest come from the same counts (``d_g`` of ``n_g``; ``d − d_g`` of
    ``n − n_g``); their medians are those of :func:`kaplan_meier`, the intervals those of
    :func:`km_intervals` at the normal quantile ``z``.

    Returns a dict of arrays of the length of ``groups``: ``n``, ``rest_n`` (subjects),
    ``observed``, ``expected``, ``variance`` (of the group's events; variance 0 when
    nothing can be compared), ``median``, ``median_low``, ``median_high`` and
    ``rest_median``, ``rest_median_low``, ``rest_median_high`` (NaN when undefined).

    Examples
    --------
    >>> t = np.array([1, 2, 3, 4, 5, 6.0])
    >>> r = one_vs_rest(t, np.ones(6, bool), np.array([0, 0, 0, 1, 1, 1]), np.array([0]))
    >>> float(r["observed"][0]), round(float(r["expected"][0]), 3), float(r["median"][0])
    (3.0, 1.15, 2.0)
    >>> float(r["rest_median"][0])
    5.0
    """
    order = np.argsort(time, kind="stable")
    t = np.asarray(time)[order]
    ev = np.asarray(event, dtype=bool)[order]
    g = np.asarray(group)[order]
    w = np.ones(t.size, dtype=np.int64) if count is None else np.asarray(count, np.int64)[order]
    cw = np.concatenate([[0], np.cumsum(w)])  # subjects before each row
    n_all = int(cw[-1])
    starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]]) if t.size else np.zeros(0, np.int64)
    at_risk = (n_all - cw[starts]).astype(np.float64)
    d = np.add.reduceat((ev * w).astype(np.float64), starts) if t.size else np.zeros(0)
    has = d > 0
    starts, at_risk, d = starts[has], at_risk[has], d[has]
    times = t[starts].astype(np.float64)
    block_end = np.searchsorted(t, t[starts], side="right")  # end of each tied block
    with np.errstate(invalid="ignore", divide="ignore"):
        tie = np.where(at_risk > 1, (at_risk - d) / (at_risk - 1), 0.0)
    names = ["n", "rest_n", "observed", "expected", "variance"]
    names += [f"{side}median{end}" for side in ("", "rest_") for end in ("", "_low", "_high")]
    out = {k: np.full(len(groups), np.nan) for k in names}
    for i, k in enumerate(groups):  # loop over groups only
        mk = g == k
        ck = np.concatenate([[0], np.cumsum(mk * w)])
        n_k = (ck[-1] - ck[starts]).astype(np.float64)
        ek = np.concatenate([[0], np.cumsum((mk & ev) * w)])
        d_k = (ek[block_end] - ek[starts]).astype(np.float64)
        share = n_k / at_risk
        out["n"][i], out["rest_n"][i] = ck[-1], n_all - ck[-1]
        out["observed"][i] = d_k.sum()
        out["expected"][i] = float(np.dot(d, share))
        out["variance"][i] = float(np.sum(d * share * (1 - share) * tie))
        for side, dd, nn in (("", d_k, n_k), ("rest_", d - d_k, at_risk - n_k)):
            m, lo, hi = _km_median(times, dd, nn, z)
            out[f"{side}median"][i] = m
            out[f"{side}median_low"][i] = lo
            out[f"{side}median_high"][i] = hi
    return out


def _km_median(
    times: np.ndarray, events: np.ndarray, at_risk: np.ndarray, z: float
) -> tuple[float, float, float]:
    """Median and Brookmeyer–Crowley interval of a curve given at its event times."""
    sel = events > 0
    if not sel.any():
        return np.nan, np.nan, np.nan
    tj, dj, nj = times[sel], events[sel], at_risk[sel]
    surv = np.cumprod(1.0 - dj / nj)
    i = int(np.count_nonzero(surv > 0.5 + KM_TOL))
    med = float(tj[i]) if i < tj.size else np.nan
    res = km_intervals(tj, dj, nj, surv, (0.5,), z)
    return med, res["q50_low"], res["q50_high"]
