"""Tests and intervals on Aalen–Johansen estimates (the conversion of ``funnel()``).

A stage's conversion in :meth:`funnelkit.EventLog.funnel` is an Aalen–Johansen cumulative
incidence ``F`` with a variance ``V`` and a mass the data cannot resolve yet: the true
value may lie anywhere in ``[F − down, F + up]`` (see :func:`funnelkit.funnel.
competing_estimates`). The tests here compare such estimates with each other or with a
fixed rate, with the machinery of binomial proportions:

* **effective counts.** An estimate ``F`` with variance ``V`` carries as much information
  as ``n_eff = F (1 − F) / V`` binomial deals of which ``x_eff = F n_eff`` advanced
  (without censoring, exactly the deals and the advanced ones). Binomial tests and
  intervals then run on ``(x_eff, n_eff)``; below :data:`SMALL` effective deals in a
  group, or at a rate of 0 or 1, the exact (conditional) tests on the rounded counts
  (Fisher's test, the binomial test, a Monte-Carlo chi-square with fixed margins).
* **unresolved mass, least-favourably.** Each group's value may lie in ``[p − below,
  p + above]``; the test runs at the allocation inside those ranges that is closest to
  the null hypothesis, so that a difference the unresolved deals could still explain is
  never significant (p = 1 when equality is reachable, for a two-sided test). The
  intervals are the groups' own intervals widened by the mass (as in ``funnel()``), and
  a difference's interval combines them by MOVER (Newcombe's method with any per-group
  interval).

Groups are independent: no deal is in two of them. Loops run over groups (segments) only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from . import _stats
from ._competing import interval

#: below this many effective deals in a group the tests are exact on rounded counts
SMALL = 100.0
#: Monte-Carlo tables of the exact conditional chi-square test
N_MONTE_CARLO = 20_000


@dataclass
class Rate:
    """A rate estimated per group (1-D arrays over groups).

    ``p`` the estimate; ``var`` its variance; ``n`` effective deals (:func:`effective_n`);
    ``below``/``above``: unresolved mass, the true value may be as low as ``p − below``
    or as high as ``p + above``; ``low``/``high`` its interval (already widened by that
    mass); ``deals`` the deals the estimate is computed on."""

    p: np.ndarray
    var: np.ndarray
    n: np.ndarray
    below: np.ndarray
    above: np.ndarray
    low: np.ndarray
    high: np.ndarray
    deals: np.ndarray

    def complement(self) -> Rate:
        """The rate of the other outcome, ``1 − p`` (the loss rate of a conversion)."""
        return Rate(
            1.0 - self.p,
            self.var,
            self.n,
            self.above,
            self.below,
            1.0 - self.high,
            1.0 - self.low,
            self.deals,
        )

    def take(self, i) -> Rate:
        """The groups ``i`` (an index or an index array)."""
        return Rate(*(np.atleast_1d(getattr(self, f)[i]) for f in _FIELDS))

    @property
    def unresolved(self) -> np.ndarray:
        return self.below + self.above


_FIELDS = ("p", "var", "n", "below", "above", "low", "high", "deals")


def effective_n(p, var, fallback) -> np.ndarray:
    """Effective number of binomial deals of an estimate: ``p (1 − p) / var``; where the
    estimate is 0 or 1 or its variance 0 (nothing to divide), ``fallback`` (the resolved
    deals)."""
    p, var = np.asarray(p, dtype=np.float64), np.asarray(var, dtype=np.float64)
    inner = (p > 0) & (p < 1) & (var > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(inner, p * (1 - p) / np.where(inner, var, 1.0), fallback)
    return np.asarray(n, dtype=np.float64)


def conversion_rates(aj: dict[str, np.ndarray], deals: np.ndarray, z: float) -> Rate:
    """The conversion of :func:`funnelkit.funnel.competing_estimates` output ``aj`` as a
    :class:`Rate` (NaN where the estimate is unknown), with ``funnel()``'s interval at
    the normal quantile ``z``."""
    p = np.where(aj["known"], aj["cif"], np.nan)
    var = np.asarray(aj["var"], dtype=np.float64)
    low, high = interval(p, var, aj["n_eff"], z=z)
    down, up = np.asarray(aj["down"], np.float64), np.asarray(aj["up"], np.float64)
    return Rate(
        p=p,
        var=var,
        n=effective_n(p, var, np.asarray(aj["events"], dtype=np.float64)),
        below=down,
        above=up,
        low=np.maximum(low - down, 0.0),
        high=np.minimum(high + up, 1.0),
        deals=np.asarray(deals, dtype=np.float64),
    )


# --------------------------------------------------------------------------- intervals
def mover(a: Rate, b: Rate) -> tuple[np.ndarray, np.ndarray]:
    """Interval of ``a.p − b.p`` from the two groups' intervals (MOVER; with Wilson
    intervals it is Newcombe's hybrid score interval)."""
    d = a.p - b.p
    low = d - np.sqrt((a.p - a.low) ** 2 + (b.high - b.p) ** 2)
    high = d + np.sqrt((a.high - a.p) ** 2 + (b.p - b.low) ** 2)
    return low, high


# --------------------------------------------------------------------------- tests
def _rounded(v: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whole effective counts: ``n`` and ``v · n`` rounded (half to even). A count
    within 1e-9 of a half is that half: sums of the same estimate in another order
    (the two engines) differ in their last bits, and must not round apart."""
    nn = np.maximum(np.rint(np.round(n, 9)), 1).astype(np.int64)
    x = np.clip(np.rint(np.round(v * nn, 9)), 0, nn).astype(np.int64)
    return x, nn


def one_sample(r: Rate, p0: float) -> tuple[float, float, str]:
    """One-sided test that the rate of one group exceeds ``p0``: the exact binomial test
    on the effective counts at the lowest value the unresolved mass allows. Returns
    (p-value, the value tested, ``"binomial"``)."""
    v = float(np.clip(r.p[0] - r.below[0], 0.0, 1.0))
    x, n = _rounded(np.array([v]), r.n[:1])
    p = float(stats.binomtest(int(x[0]), int(n[0]), p0, alternative="greater").pvalue)
    return p, v, "binomial"


def allocate_two(a: Rate, b: Rate, alternative: str) -> tuple[float, float]:
    """The values of ``a`` and ``b`` closest to the null hypothesis (equal rates; for
    ``"greater"``, ``a`` not above ``b``) inside their unresolved ranges."""
    a_lo, a_hi = a.p[0] - a.below[0], a.p[0] + a.above[0]
    b_lo, b_hi = b.p[0] - b.below[0], b.p[0] + b.above[0]
    if alternative == "greater" or a.p[0] >= b.p[0]:
        va, vb = a_lo, b_hi
        if alternative != "greater" and va <= vb:  # equality reachable
            va = vb = float(np.clip(0.5 * (a.p[0] + b.p[0]), max(a_lo, b_lo), min(a_hi, b_hi)))
    else:
        va, vb = a_hi, b_lo
        if va >= vb:
            va = vb = float(np.clip(0.5 * (a.p[0] + b.p[0]), max(a_lo, b_lo), min(a_hi, b_hi)))
    return float(np.clip(va, 0.0, 1.0)), float(np.clip(vb, 0.0, 1.0))


def two_groups(a: Rate, b: Rate, alternative: str) -> tuple[float, str]:
    """p-value of "``a`` and ``b`` have the same rate" (``alternative``: ``"greater"`` —
    ``a`` above ``b`` — or ``"two-sided"``), at the allocation of :func:`allocate_two`:
    the Wald z-test on the effective counts (``(va − vb) / √(va(1−va)/na + vb(1−vb)/nb)``;
    without unresolved mass, the Wald test of the two Aalen–Johansen estimates); Fisher's
    exact test on the rounded counts when a group has fewer than :data:`SMALL` effective
    deals or a rate of 0 or 1. Returns (p-value, ``"z"`` or ``"fisher"``)."""
    va, vb = allocate_two(a, b, alternative)
    na, nb = float(a.n[0]), float(b.n[0])
    if va == vb:
        return 1.0, "z" if min(na, nb) >= SMALL else "fisher"
    if min(na, nb) < SMALL or va in (0.0, 1.0) or vb in (0.0, 1.0):
        xa, ma = _rounded(np.array([va]), np.array([na]))
        xb, mb = _rounded(np.array([vb]), np.array([nb]))
        p = _stats.fisher_exact_2x2(xa, ma - xa, xb, mb - xb, alternative=alternative)
        return float(np.asarray(p).reshape(-1)[0]), "fisher"
    z = (va - vb) / np.sqrt(va * (1 - va) / na + vb * (1 - vb) / nb)
    p = stats.norm.sf(z) if alternative == "greater" else 2 * stats.norm.sf(abs(z))
    return float(p), "z"


def allocate_many(r: Rate) -> np.ndarray:
    """The values closest to "every group has the same rate" inside the unresolved
    ranges: the minimiser of the weighted spread ``Σ n_i (v_i − v̄)²`` over the box, which
    is ``v_i = clip(m, lo_i, hi_i)`` with ``m`` the weighted mean of those values (a
    convex problem: ``m`` is the root of a monotone function)."""
    lo = np.clip(r.p - r.below, 0.0, 1.0)
    hi = np.clip(r.p + r.above, 0.0, 1.0)
    w = np.maximum(r.n, 1e-12)
    if lo.max() <= hi.min():  # equality reachable
        m = float(np.clip(np.average(r.p, weights=w), lo.max(), hi.min()))
        return np.full(r.p.shape, m)

    def gap(m: float) -> float:
        return float(np.average(np.clip(m, lo, hi), weights=w) - m)

    a, b = float(lo.min()), float(hi.max())
    m = a if gap(a) <= 0 else b if gap(b) >= 0 else optimize.brentq(gap, a, b, xtol=1e-12)
    return np.clip(m, lo, hi)


def many_groups(r: Rate, rng: np.random.Generator) -> tuple[float, str, np.ndarray]:
    """p-value of "every group has the same rate" at the allocation of
    :func:`allocate_many`: the Wald chi-square (Cochran's Q, ``Σ w_i (v_i − v̄_w)²`` with
    ``w_i = n_i / (v_i (1 − v_i))``, k − 1 degrees of freedom; for two groups the square
    of :func:`two_groups`' z); with a group under :data:`SMALL` effective deals or a rate
    of 0 or 1, the exact conditional test on the rounded counts (Fisher's for two groups,
    else a Monte-Carlo chi-square with the observed margins). Returns (p-value, test,
    the values tested)."""
    v = allocate_many(r)
    k = v.size
    if np.ptp(v) == 0:
        return 1.0, "chi-square" if r.n.min() >= SMALL else _exact_name(k), v
    if r.n.min() < SMALL or np.any((v <= 0) | (v >= 1)):
        x, n = _rounded(v, r.n)
        p, test = conditional_test(x, n, rng)
        return p, test, v
    w = r.n / (v * (1 - v))
    vbar = np.average(v, weights=w)
    q = float(np.sum(w * (v - vbar) ** 2))
    return float(stats.chi2.sf(q, k - 1)), "chi-square", v


def _exact_name(k: int) -> str:
    return "fisher" if k == 2 else "monte-carlo chi-square"


def _chi2_stat(adv: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Pearson chi-square of 2 × k tables (advanced/not × groups); ``adv`` may be
    stacked ``(..., k)``."""
    tot = n.sum()
    a_tot = adv.sum(axis=-1, keepdims=True)
    e_a = n * a_tot / tot
    e_d = n * (tot - a_tot) / tot
    return (((adv - e_a) ** 2) / e_a + ((n - adv - e_d) ** 2) / e_d).sum(axis=-1)


def conditional_test(x: np.ndarray, n: np.ndarray, rng: np.random.Generator) -> tuple[float, str]:
    """Exact conditional test of equal proportions in a 2 × k table of counts: Fisher's
    exact test for two groups, else the Pearson chi-square referred to
    :data:`N_MONTE_CARLO` tables with the observed margins (multivariate
    hypergeometric)."""
    a_tot, tot = int(x.sum()), int(n.sum())
    if a_tot in (0, tot):
        return 1.0, _exact_name(x.size)
    if x.size == 2:
        p = _stats.fisher_exact_2x2(
            x[:1], n[:1] - x[:1], x[1:], n[1:] - x[1:], alternative="two-sided"
        )
        return float(np.asarray(p).reshape(-1)[0]), "fisher"
    sims = rng.multivariate_hypergeometric(n.astype(np.int64), a_tot, size=N_MONTE_CARLO)
    obs = _chi2_stat(x.astype(np.float64), n.astype(np.float64))
    sim = _chi2_stat(sims.astype(np.float64), n.astype(np.float64))
    p = (1 + np.count_nonzero(sim >= obs * (1 - 1e-12))) / (N_MONTE_CARLO + 1)
    return float(p), "monte-carlo chi-square"


def rate_interval(r: Rate, z: float) -> tuple[np.ndarray, np.ndarray]:
    """The interval of each group's rate at the normal quantile ``z`` (another level than
    the one ``r`` was made with), widened by the unresolved mass as in
    :func:`conversion_rates`; the Wilson fallback at a rate of 0 or 1 uses the effective
    deals."""
    low, high = interval(r.p, r.var, r.n, z=z)
    return np.maximum(low - r.below, 0.0), np.minimum(high + r.above, 1.0)
