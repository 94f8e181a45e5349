"""Key stages: statistical flags with effect sizes, intervals and q-values (DESIGN §4).

Five signals, each a function of the log's integer arrays (no Python loop over deals or
events; loops run over stages, segments and bootstrap draws only):

* ``leverage`` — exact what-if on the absorbing Markov chain (:mod:`funnelkit.markov`) with
  a deal-level bootstrap interval;
* ``dropoff`` — the stage's loss rate against a baseline (benchmark, previous period, or
  the other segments);
* ``stall`` — long dwell in the stage predicts losing;
* ``heterogeneity`` — conversion differs across segments;
* ``change`` — conversion differs for deals created before and after a date.

Tests are corrected with Benjamini–Hochberg within each signal family.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from . import _stats
from . import _validate as V
from ._columns import NAT
from ._periods import (
    MIN_EXPECTED,
    bh,
    maturity_cutoffs,
    newcombe,
    period_split,
    segment_counts,
    stage_counts,
    two_proportions,
)
from ._segments import normalize_by, path_segments
from .dwell import km_table
from .errors import MAX_BOOT, EventLogError, int_param
from .markov import (
    batch_size,
    bootstrap_counts,
    chain_from_log,
    deal_counts,
    exit_probabilities,
    leverage_batch,
)

if TYPE_CHECKING:
    from .log import EventLog

__all__ = ["DEFAULT_MIN_EFFECT", "SIGNALS", "key_stages"]

#: the signals, in output order
SIGNALS = ("leverage", "dropoff", "stall", "heterogeneity", "change")
#: tested signal families (Benjamini–Hochberg runs within each)
FAMILIES = ("dropoff", "stall", "heterogeneity", "change")
#: materiality thresholds (see ``key_stages``: units differ per signal)
DEFAULT_MIN_EFFECT: dict[str, float] = {
    "leverage": 0.05,
    "dropoff": 0.05,
    "stall": 0.10,
    "heterogeneity": 0.10,
    "change": 0.05,
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
NO_BASELINE = "no baseline: pass benchmark=, period= or by="
_DAY_NS = 86_400 * 10**9
_HOUR_NS = 3_600 * 10**9
_N_MONTE_CARLO = 20_000
_STALL_QUANTILES = np.round(np.arange(0.05, 0.951, 0.05), 2)
_MISSING = "(missing)"


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


def _date(log: EventLog, ns: int) -> str:
    return str(log._timestamp(np.array([ns], dtype=np.int64))[0].date())


def _days1(ns: float) -> str:
    return "n/a" if not np.isfinite(ns) else f"{ns / _DAY_NS:.1f} days"


# --------------------------------------------------------------------------- statistics
def _chi2_stat(adv: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Pearson chi-square of 2 × k tables (advanced/dropped × segments); ``adv`` may be
    stacked ``(..., k)``."""
    tot = n.sum()
    a_tot = adv.sum(axis=-1, keepdims=True)
    e_a = n * a_tot / tot
    e_d = n * (tot - a_tot) / tot
    return (((adv - e_a) ** 2) / e_a + ((n - adv - (e_d)) ** 2) / e_d).sum(axis=-1)


def _heterogeneity_test(adv: np.ndarray, n: np.ndarray, rng) -> tuple[float, str]:
    """p-value of "conversion is the same in every segment" for a 2 × k table."""
    a_tot, tot = adv.sum(), n.sum()
    if a_tot == 0 or a_tot == tot:
        return 1.0, "none"
    expected = np.concatenate([n * a_tot / tot, n * (tot - a_tot) / tot])
    if expected.min() >= MIN_EXPECTED:
        table = np.stack([adv, n - adv])
        res = stats.chi2_contingency(table, correction=False)
        return float(res.pvalue), "chi-square"
    if n.size == 2:
        table = np.stack([adv, n - adv]).astype(np.int64)
        return float(stats.fisher_exact(table).pvalue), "fisher"
    # Monte-Carlo: tables with the observed margins (multivariate hypergeometric)
    sims = rng.multivariate_hypergeometric(n.astype(np.int64), int(a_tot), size=_N_MONTE_CARLO)
    obs = _chi2_stat(adv.astype(np.float64), n.astype(np.float64))
    sim = _chi2_stat(sims.astype(np.float64), n.astype(np.float64))
    p = (1 + np.count_nonzero(sim >= obs * (1 - 1e-12))) / (_N_MONTE_CARLO + 1)
    return float(p), "monte-carlo chi-square"


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
def _leverage(log: EventLog, opt: _Options) -> list[dict[str, Any]]:
    chain = chain_from_log(log)
    loss, forward = chain.loss_mask, chain.forward
    probs = chain.probabilities
    base_arr, after = leverage_batch(
        probs, chain.start, chain.won, loss=loss, forward=forward, uplift=opt.uplift
    )
    base = float(base_arr)
    exits, start = deal_counts(log)
    S, n_states = log._n_stages, len(chain.states)
    # deals with at least one completed exit from the stage
    coo = exits.tocoo()
    deal_stage = np.unique(coo.row.astype(np.int64) * S + coo.col // n_states)
    per_stage = np.bincount(deal_stage % S, minlength=S)
    boot = np.full((opt.n_boot, S), np.nan)
    rng = np.random.default_rng(np.random.SeedSequence(opt.seed).spawn(2)[0])
    block = batch_size(S, n_states)
    for i in range(0, opt.n_boot, block):  # loop over blocks of bootstrap draws
        # the draws of one block at a time (the same draws, in the same order, as all at
        # once): memory O(block × stages²) whatever the number of draws
        size = min(block, opt.n_boot - i)
        counts, starts = bootstrap_counts(
            exits, start, n_boot=size, rng=rng, progress=_offset(opt.progress, i, opt.n_boot)
        )
        starts /= starts.sum(axis=1, keepdims=True)
        b_base, b_after = leverage_batch(
            exit_probabilities(counts),
            starts,
            chain.won,
            loss=loss,
            forward=forward,
            uplift=opt.uplift,
        )
        boot[i : i + size] = b_after - b_base[:, None]
    return leverage_rows(log.stages, probs, loss, base, after, boot, per_stage, opt)


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
def _dropoff(log: EventLog, opt: _Options) -> list[dict[str, Any]]:
    S = log._n_stages
    m = opt.min_effect["dropoff"]
    rows = []
    if opt.benchmark is not None:
        c = stage_counts(log, np.zeros(log.n_deals, dtype=np.int64), 1)
        for s, name in enumerate(log.stages):
            x, n = int(c["dropped"][0, s]), int(c["advanced"][0, s] + c["dropped"][0, s])
            rate = x / n if n else np.nan
            kw: dict[str, Any] = dict(value=rate, n_deals=n)
            if name not in opt.benchmark:
                rows.append(
                    _row(name, "dropoff", "loss_rate", reason="no benchmark for this stage", **kw)
                )
                continue
            p0 = opt.benchmark[name]
            if n < opt.min_deals:
                reason = _too_few(name, n, "resolved deals", opt.min_deals)
                rows.append(_row(name, "dropoff", "loss_rate", baseline=p0, reason=reason, **kw))
                continue
            p = float(stats.binomtest(x, n, p0, alternative="greater").pvalue)
            lo, hi = _stats.wilson(x, n, z=opt.z)
            eff = rate - p0
            reason = (
                f"{name} loses {_pct(rate)} of resolved deals ({x} of {n}) vs the "
                f"{_pct(p0)} benchmark ({_pval(p)})"
            )
            rows.append(
                _row(
                    name,
                    "dropoff",
                    "loss_rate",
                    effect=eff,
                    ci_low=float(lo) - p0,
                    ci_high=float(hi) - p0,
                    p_value=p,
                    baseline=p0,
                    reason=reason,
                    test="binomial",
                    alternative="greater",
                    _material=eff >= m,
                    **kw,
                )
            )
        return rows
    if opt.period_ns is not None:
        cut = maturity_cutoffs(log)
        group = (log._first_ns >= opt.period_ns).astype(np.int64)  # 1 = since the date
        c = stage_counts(log, group, 2, cut)
        when = opt.period_label
        comparisons: list[tuple[int, int, str | None, str, str]] = [
            (1, 0, None, f"deals created since {when}", f"deals created before {when}")
        ]
    elif opt.by:
        c1, tot, labels, _ = segment_counts(log, opt.by)
        n_seg = len(labels)
        # group 2k = segment k, 2k + 1 = every other deal
        c = {k: np.stack([c1[k], tot[k] - c1[k]], axis=1).reshape(2 * n_seg, S) for k in c1}
        names = _segment_names(labels)
        comparisons = [
            (2 * k, 2 * k + 1, names[k], f"{names[k]} deals", "other deals") for k in range(n_seg)
        ]
    else:
        c = stage_counts(log, np.zeros(log.n_deals, dtype=np.int64), 1)
        for s, name in enumerate(log.stages):
            x, n = int(c["dropped"][0, s]), int(c["advanced"][0, s] + c["dropped"][0, s])
            rows.append(
                _row(
                    name,
                    "dropoff",
                    "loss_rate",
                    value=x / n if n else np.nan,
                    n_deals=n,
                    reason=NO_BASELINE,
                )
            )
        return rows
    for s, name in enumerate(log.stages):
        for g1, g0, seg_name, who, other in comparisons:  # loop over segments
            x1, x0 = int(c["dropped"][g1, s]), int(c["dropped"][g0, s])
            n1 = int(c["advanced"][g1, s] + x1)
            n0 = int(c["advanced"][g0, s] + x0)

            def describe(r1, r0, p, eff, x1, n1, x0, n0, name=name, s=s, who=who, other=other):
                text = (
                    f"{name} loses {_pct(r1)} of {who} ({x1} of {n1}) vs {_pct(r0)} of "
                    f"{other} ({x0} of {n0}; {_pval(p)})"
                )
                if opt.period_ns is not None:
                    text += f"; deals that reached {name} by {_date(log, cut[s])}"
                return text

            rows.append(
                _two_proportion_row(
                    name,
                    ("dropoff", "loss_rate"),
                    (x1, n1, x0, n0),
                    opt,
                    alternative="greater",
                    smaller="resolved deals in the smaller group",
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
def _stall(log: EventLog, opt: _Options) -> list[dict[str, Any]]:
    v = log._visits()
    oc = log._outcome[v.deal]
    resolved = oc != V.OPEN
    keep = (v.visit == 1) & (v.dwell != NAT) & ~v.censored & resolved
    stage, dwell, won = v.stage[keep], v.dwell[keep], oc[keep] == V.WON
    order = np.lexsort((dwell, stage))  # one sort: by stage, then dwell
    stage, dwell, won = stage[order], dwell[order], won[order]
    start, end = _stats.group_bounds(stage, log._n_stages)
    zero = np.zeros(log.n_deals, dtype=np.int64)
    c = stage_counts(log, zero, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        baseline_wr = c["won"][0] / c["resolved"][0]
    m = opt.min_effect["stall"]
    rows = []
    for s, name in enumerate(log.stages):  # loop over stages
        d = dwell[start[s] : end[s]]
        w = won[start[s] : end[s]]
        n, n_won = d.size, int(w.sum())
        n_lost = n - n_won
        if min(n_won, n_lost) < opt.min_deals:
            reason = _too_few(
                name,
                min(n_won, n_lost),
                f"{'won' if n_won < n_lost else 'lost'} deals with a completed first visit",
                opt.min_deals,
            )
            rows.append(_row(name, "stall", "win_rate", n_deals=n, reason=reason))
            continue
        dd = d.astype(np.float64) / _DAY_NS
        p = float(stats.mannwhitneyu(dd[w], dd[~w], alternative="less").pvalue)
        # threshold candidates: dwell quantiles rounded up to whole days (or hours)
        unit = _DAY_NS if np.median(d) >= 2 * _DAY_NS else _HOUR_NS
        cand = np.unique(np.ceil(np.quantile(d, _STALL_QUANTILES) / unit) * unit).astype(np.int64)
        cum_won = np.concatenate([[0], np.cumsum(w)])
        n_below = np.searchsorted(d, cand, side="right")
        n_above = n - n_below
        won_above = n_won - cum_won[n_below]
        ok = (n_above >= opt.min_deals) & (n_below >= opt.min_deals)
        with np.errstate(invalid="ignore", divide="ignore"):
            wr_above = won_above / n_above
        half = 0.5 * baseline_wr[s]
        hit = np.flatnonzero(ok & (wr_above < half))
        found = hit.size > 0
        if found:
            i = int(hit[0])
        else:
            med = int(np.ceil(np.median(d) / unit) * unit)
            i = int(np.argmin(np.abs(cand - med) + np.where(ok, 0, np.iinfo(np.int64).max // 2)))
            if not ok[i]:
                reason = f"{name}: not tested, too few deals on one side of every dwell threshold"
                rows.append(_row(name, "stall", "win_rate", n_deals=n, reason=reason))
                continue
        t = int(cand[i])
        na, nb = int(n_above[i]), int(n_below[i])
        xa, xb = int(won_above[i]), int(n_won - won_above[i])
        ra, rb = xa / na, xb / nb
        lo, hi = newcombe(xa, na, xb, nb, opt.z)
        median = "" if found else " (about the median)"
        tail = (
            ""
            if found
            else f"; no dwell threshold halves the stage's {_pct(baseline_wr[s])} win rate"
        )
        reason = (
            f"Deals that stay more than {_days(t)} in {name}{median} win {_pct(ra)} vs "
            f"{_pct(rb)} ({xa} of {na} vs {xb} of {nb}; {_pval(p)}){tail}"
        )
        rows.append(
            _row(
                name,
                "stall",
                "win_rate",
                effect=ra - rb,
                ci_low=lo,
                ci_high=hi,
                p_value=p,
                reason=reason,
                value=ra,
                baseline=rb,
                n_deals=n,
                test="mann-whitney",
                alternative="less",
                dwell_threshold=t,
                _material=ra - rb <= -m,
            )
        )
    return rows


# --------------------------------------------------------------------------- heterogeneity
def _heterogeneity(log: EventLog, opt: _Options) -> list[dict[str, Any]]:
    c, _, labels, _ = segment_counts(log, opt.by)
    n_seg = len(labels)
    names = _segment_names(labels)
    rng = np.random.default_rng(np.random.SeedSequence(opt.seed).spawn(2)[1])
    dim = " × ".join(opt.by)
    m = opt.min_effect["heterogeneity"]
    rows = []
    for s, name in enumerate(log.stages):  # loop over stages
        adv = c["advanced"][:, s].astype(np.int64)
        n = adv + c["dropped"][:, s].astype(np.int64)
        ok = np.flatnonzero(n >= opt.min_deals)
        if ok.size < 2:
            reason = (
                f"{name}: not tested, {ok.size} {dim} value(s) with at least "
                f"{opt.min_deals} resolved deals (need 2)"
            )
            rows.append(
                _row(name, "heterogeneity", "conversion", n_deals=int(n[ok].sum()), reason=reason)
            )
            continue
        a, nn = adv[ok], n[ok]
        p, test = _heterogeneity_test(a, nn, rng)
        conv = a / nn
        lo_i, hi_i = int(np.argmin(conv)), int(np.argmax(conv))
        spread = float(conv[hi_i] - conv[lo_i])
        ci = newcombe(a[hi_i], nn[hi_i], a[lo_i], nn[lo_i], opt.z)
        worst, best = names[ok[lo_i]], names[ok[hi_i]]
        left_out = n_seg - ok.size
        note = f"; {left_out} smaller {dim} value(s) not tested" if left_out else ""
        reason = (
            f"{name} conversion ranges from {_pct(conv[lo_i])} ({worst}, {a[lo_i]} of "
            f"{nn[lo_i]}) to {_pct(conv[hi_i])} ({best}, {a[hi_i]} of {nn[hi_i]}) across "
            f"{ok.size} {dim} values ({test} {_pval(p)}){note}"
        )
        rows.append(
            _row(
                name,
                "heterogeneity",
                "conversion",
                effect=spread,
                ci_low=ci[0],
                ci_high=ci[1],
                p_value=p,
                reason=reason,
                segment=worst,
                value=float(conv[lo_i]),
                baseline=float(conv[hi_i]),
                n_deals=int(nn.sum()),
                test=test,
                alternative="two-sided",
                _material=spread >= m,
            )
        )
    return rows


# --------------------------------------------------------------------------- change
def _change(log: EventLog, opt: _Options) -> list[dict[str, Any]]:
    if opt.period_ns is None:  # the signal needs a period (checked in key_stages)
        return []
    S = log._n_stages
    group = (log._first_ns >= opt.period_ns).astype(np.int64)  # 1 = created since the date
    cut = maturity_cutoffs(log)
    c = stage_counts(log, group, 2, cut)
    v = log._visits()
    keep = (v.visit == 1) & (v.dwell != NAT) & (v.entered <= cut[v.stage])
    km = km_table(group[v.deal[keep]] * S + v.stage[keep], v.dwell[keep], v.censored[keep], 2 * S)
    med = km["q50"].reshape(2, S)
    m = opt.min_effect["change"]
    when = opt.period_label
    rows = []
    for s, name in enumerate(log.stages):  # loop over stages
        x0, x1 = int(c["advanced"][0, s]), int(c["advanced"][1, s])
        n0 = x0 + int(c["dropped"][0, s])
        n1 = x1 + int(c["dropped"][1, s])

        def describe(r1, r0, p, eff, x1, n1, x0, n0, name=name, s=s):
            verb = "rose" if eff > 0 else "fell" if eff < 0 else "stayed"
            return (
                f"{name} conversion {verb} from {_pct(r0)} (created before {when}, {x0} of "
                f"{n0}) to {_pct(r1)} (since, {x1} of {n1}; {_pval(p)}); median first-visit "
                f"dwell {_days1(med[0, s])} → {_days1(med[1, s])}; deals that reached {name} "
                f"by {_date(log, cut[s])}"
            )

        rows.append(
            _two_proportion_row(
                name,
                ("change", "conversion"),
                (x1, n1, x0, n0),
                opt,
                alternative="two-sided",
                smaller="resolved deals in the smaller period",
                describe=describe,
                material=lambda eff: abs(eff) >= m,
            )
        )
    return rows


def _two_proportion_row(
    stage: str,
    signal_metric: tuple[str, str],
    counts: tuple[int, int, int, int],
    opt: _Options,
    *,
    alternative: str,
    smaller: str,
    describe: Callable[..., str],
    material: Callable[[float], bool],
    segment: str | None = None,
) -> dict[str, Any]:
    """A row comparing the proportion x1/n1 with x0/n0 (``counts``): the pooled test of
    :func:`two_proportions` (``alternative``), Newcombe's interval of the difference and
    ``describe(r1, r0, p, effect, x1, n1, x0, n0)`` as the reason; not tested when the smaller group has
    fewer than ``min_deals`` (``smaller`` names the groups in that reason)."""
    signal, metric = signal_metric
    x1, n1, x0, n0 = counts
    r1 = x1 / n1 if n1 else np.nan
    r0 = x0 / n0 if n0 else np.nan
    kw = dict(segment=segment, value=r1, baseline=r0, n_deals=n1 + n0)
    if min(n1, n0) < opt.min_deals:
        reason = _too_few(stage, min(n1, n0), smaller, opt.min_deals)
        return _row(stage, signal, metric, reason=reason, **kw)
    p, test = two_proportions(x1, n1, x0, n0, alternative)
    lo, hi = newcombe(x1, n1, x0, n0, opt.z)
    eff = r1 - r0
    return _row(
        stage,
        signal,
        metric,
        effect=eff,
        ci_low=lo,
        ci_high=hi,
        p_value=p,
        reason=describe(r1, r0, p, eff, x1, n1, x0, n0),
        test=test,
        alternative=alternative,
        _material=material(eff),
        **kw,
    )


_SIGNAL_FUNCS = {
    "leverage": _leverage,
    "dropoff": _dropoff,
    "stall": _stall,
    "heterogeneity": _heterogeneity,
    "change": _change,
}


# --------------------------------------------------------------------------- validation
def _check_signals(signals: Any, by: list[str], period: Any) -> list[str]:
    if signals is None:
        chosen = ["leverage", "dropoff", "stall"]
        if by:
            chosen.append("heterogeneity")
        if period is not None:
            chosen.append("change")
        return [s for s in SIGNALS if s in chosen]
    names = [signals] if isinstance(signals, str) else list(signals)
    unknown = [s for s in names if s not in SIGNALS]
    if unknown or not names:
        raise EventLogError(
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
    return [s for s in SIGNALS if s in names]


def _check_benchmark(log: EventLog, benchmark: Any) -> dict[str, float] | None:
    if benchmark is None:
        return None
    if isinstance(benchmark, pd.DataFrame):
        missing = [c for c in ("stage", "loss_rate") if c not in benchmark.columns]
        if missing:
            raise EventLogError(
                f"Parameter `benchmark`: the DataFrame needs columns 'stage' and "
                f"'loss_rate'; missing {missing}, found {list(benchmark.columns)}."
            )
        if benchmark["stage"].duplicated().any():
            dup = benchmark.loc[benchmark["stage"].duplicated(), "stage"].tolist()
            raise EventLogError(f"Parameter `benchmark` lists stages {dup} more than once.")
        items = list(zip(benchmark["stage"], benchmark["loss_rate"], strict=True))
    elif isinstance(benchmark, Mapping):
        items = list(benchmark.items())
    else:
        raise TypeError(
            "Parameter `benchmark` must be a dict {stage: expected loss rate} or a DataFrame "
            f"with columns 'stage' and 'loss_rate'; got {type(benchmark).__name__}."
        )
    unknown = [s for s, _ in items if s not in log.stages]
    if unknown:
        raise EventLogError(
            f"Parameter `benchmark` names stages {unknown} that are not in the log; stages: "
            f"{log.stages}."
        )
    out = {}
    for s, r in items:
        try:
            rate = float(r)
        except (TypeError, ValueError):
            rate = np.nan
        if not (0 <= rate <= 1):
            raise EventLogError(
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
        raise TypeError(
            "Parameter `min_effect` must be a dict {signal: threshold} such as "
            f"{{'stall': 0.15}}; got {type(min_effect).__name__}."
        )
    for k, val in min_effect.items():
        if k not in SIGNALS:
            raise EventLogError(
                f"Parameter `min_effect`: unknown signal {k!r}; choose from {list(SIGNALS)}."
            )
        try:
            x = float(val)
        except (TypeError, ValueError):
            x = np.nan
        if not (x >= 0 and np.isfinite(x)):
            raise EventLogError(
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
    raise TypeError(
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
        raise EventLogError(f"Parameter `{name}` must be in {bounds}; got {value!r}.")
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
        period_ns, period_label = period_split(log, period)
    opt = _Options(
        by=by_cols,
        period_ns=period_ns,
        period_label=period_label,
        benchmark=_check_benchmark(log, benchmark),
        alpha=alpha,
        z=float(stats.norm.ppf(1 - alpha / 2)),
        uplift=uplift,
        n_boot=n_boot,
        seed=seed,
        min_deals=min_deals,
        min_effect=_check_min_effect(min_effect),
        progress=_check_progress(progress),
    )
    rows: list[dict[str, Any]] = []
    for sig in chosen:
        rows.extend(_SIGNAL_FUNCS[sig](log, opt))
    out = pd.DataFrame(rows, columns=[*COLUMNS, "_material"])
    for fam in FAMILIES:
        sel = (out["signal"] == fam).to_numpy()
        if sel.any():
            out.loc[sel, "q_value"] = bh(out.loc[sel, "p_value"].to_numpy(dtype=np.float64))
    material = out["_material"].to_numpy(dtype=bool)
    tested = out["signal"].isin(FAMILIES).to_numpy()
    q = out["q_value"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out["is_key"] = np.where(tested, material & (q <= alpha), material)
    return typed_table(out)
