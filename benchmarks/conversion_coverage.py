"""Coverage and bias of the funnel's conversion intervals on simulated logs (issue 17).

For every seed of every scenario the script simulates a log with
:func:`funnelkit.datasets.synthetic` (no skipped stages, nothing planted), builds the
:class:`funnelkit.EventLog` with the bundled sample's keywords (``stale_after="60D"``) and
the generator's ``as_of``, and compares each stage's estimate of ``log.funnel()`` with the
truth.

**The truth.** ``truth.advance[stage]`` is the probability that a visit resolving the stage
moves forward (to the next stage; from the last stage, to won). Every visit resolves sooner
or later (a backward move returns to the stage and resolves it then), the decision does not
depend on the dwell, the creation time or earlier stages (nothing is planted), and with
``p_skip=0`` every deal that reaches a stage enters it, so ``implied`` and ``strict`` reaches
agree. ``truth.advance[stage]`` is therefore exactly the funnel's estimand: the probability
that a deal entering the stage eventually advances (next stage in funnel order, or won),
stale counted as a loss.

**Scenarios.** A young log (deals created 2025-01-01..2025-03-15, about 60% still open at
``as_of``) and a mature one (2024-01-01..2025-06-30, 18 months), each with no silent losses
(``p_stale=0``: every loss logs a lost event) and with half the losses silent
(``p_stale=0.5``: the deal stops logging and turns stale 60 days after its last event). With
``--issue-scenarios`` two more run at the generator's default ``p_stale=0.2`` (the example of
issue 17).

**Columns.** The script works with either column set of ``funnel()``:

* before issue 17: ``conversion`` is the ratio of counts ``advanced / (advanced + dropped)``
  with a Wilson interval; the script reports it as ``conversion_closed``;
* after: ``conversion`` is the competing-risks (Aalen–Johansen) estimate and the ratio is
  ``conversion_closed``; an interval is *widened* when the table says probability mass is
  still unresolved at that stage (column ``unresolved`` > 0), in which case it spans that
  mass.

**Yardstick.** ``reference_aj`` is a textbook Aalen–Johansen estimate written in this
script from ``log.visits()`` and ``log.deals()`` (see :func:`reference_aj`), so the study
also shows what a plain competing-risks estimate achieves on the same logs.

**Output** per scenario, stage and estimator: coverage of the 95% interval with its
simulation standard error ``sqrt(c (1 - c) / n)``, mean error (bias) and its standard error
in points, mean interval width in points, the share of widened intervals and the coverage
among them and among the others, and the share of seeds with no estimate (NaN).

Examples::

    python benchmarks/conversion_coverage.py --seeds 20 --quick          # a smoke run
    python benchmarks/conversion_coverage.py --seeds 200 --workers 2     # the study
    python benchmarks/conversion_coverage.py --seeds 200 --append        # and RESULTS.md
    PYTHONPATH=/path/to/other/src python benchmarks/conversion_coverage.py ...
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import funnelkit as fk

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
Z = 1.959963984540054
MIN_AT_RISK = int(os.environ.get("FK_REFERENCE_MIN_AT_RISK", "1"))
BOOT = int(os.environ.get("FK_REFERENCE_BOOT", "0"))  # > 0: add a bootstrap yardstick
REFERENCE = os.environ.get("FK_REFERENCE_AJ", "1") == "1"  # see reference_aj
#: ``FK_WEIGHT=amount``: the revenue funnel, ``funnel(weight="amount")`` (the generator's
#: amounts do not depend on the outcome, so the truth is the same); no yardstick then
WEIGHT = os.environ.get("FK_WEIGHT") or None


@dataclass(frozen=True)
class Scenario:
    name: str
    start: str
    end: str
    p_stale: float


SCENARIOS = (
    Scenario("young, no silent losses", "2025-01-01", "2025-03-15", 0.0),
    Scenario("young, 50% silent losses", "2025-01-01", "2025-03-15", 0.5),
    Scenario("mature, no silent losses", "2024-01-01", "2025-06-30", 0.0),
    Scenario("mature, 50% silent losses", "2024-01-01", "2025-06-30", 0.5),
)
ISSUE_SCENARIOS = (
    Scenario("young, 20% silent losses (issue 17)", "2025-01-01", "2025-03-15", 0.2),
    Scenario("mature, 20% silent losses (issue 17)", "2024-01-01", "2025-06-30", 0.2),
)


def estimators(table: pd.DataFrame) -> dict[str, tuple[str, str, str]]:
    """Point/low/high columns of each conversion estimator ``funnel()`` returns."""
    if "conversion_closed" in table.columns:  # issue 17 landed
        return {
            "conversion": ("conversion", "conversion_low", "conversion_high"),
            "conversion_closed": (
                "conversion_closed",
                "conversion_closed_low",
                "conversion_closed_high",
            ),
        }
    return {"conversion_closed": ("conversion", "conversion_low", "conversion_high")}


def widened(table: pd.DataFrame, name: str) -> np.ndarray:
    """True where the estimator's interval spans probability mass not yet resolved."""
    if name == "conversion" and "unresolved" in table.columns:
        return np.asarray(table["unresolved"].fillna(0).to_numpy(float) > 1e-12)
    return np.zeros(len(table), dtype=bool)


def reference_aj(log: fk.EventLog) -> pd.DataFrame:
    """A plain Aalen–Johansen conversion per stage, written here from the public tables as
    a yardstick for the library's estimate (``skips="implied"`` with no skipped stage, no
    weights, no segments).

    Time in stage runs from the deal's first entry into the stage. Events: *advance* at the
    first entry into a later stage or the win; *drop* at the lost event, or for a stale
    deal at the moment the stale rule fires (last event + ``stale_after``); deals still open
    there are censored at ``as_of``. Variance of the cumulative incidence by the delta
    method (Aalen-type terms); interval ``F ± z·SE``. When the curves have not levelled off
    (mass ``unresolved = S(τ) > 0`` at the largest follow-up ``τ``) the interval runs from
    the lower end to the upper end plus that mass, and the point is ``F_adv + S(τ)·share``
    with ``share`` the advancing share of the resolved mass. ``FK_REFERENCE_MIN_AT_RISK=k``
    cuts the curves where fewer than ``k`` deals are at risk (default 1: no cut); the mass
    left there counts as unresolved. ``FK_REFERENCE_AJ=0`` leaves the yardstick out;
    ``FK_REFERENCE_BOOT=B`` adds ``reference_aj_boot``: the same point with the percentile
    interval of a Poisson (deal-level) bootstrap of ``B`` replicates, its upper end plus the
    unresolved mass.
    """
    v = log.visits()
    d = log.deals()
    stages = list(log.stages)
    S = len(stages)
    deals = pd.Index(d["deal"])
    first = v[v["visit"] == 1]
    ns = np.full((len(deals), S), np.nan)
    ent = first["entered"].astype("datetime64[ns, UTC]").astype("int64").to_numpy(float)
    ns[deals.get_indexer(first["deal"]), pd.Index(stages).get_indexer(first["stage"])] = ent
    as_of = float(log.as_of.value)
    first_ev = d["first_event"].astype("datetime64[ns, UTC]").astype("int64").to_numpy(float)
    last_ev = d["last_event"].astype("datetime64[ns, UTC]").astype("int64").to_numpy(float)
    cyc = d["cycle_time"].astype("timedelta64[ns]").astype("int64").to_numpy(float)
    term = np.where(d["cycle_time"].notna(), first_ev + cyc, np.nan)
    outcome = d["outcome"].astype(str).to_numpy()
    won_t = np.where(outcome == "won", term, np.inf)
    stale_t = last_ev + float(pd.Timedelta(log.stale_after).value)
    end_t = np.where(outcome == "lost", term, np.where(outcome == "stale", stale_t, np.nan))
    furthest = pd.Index(stages).get_indexer(d["furthest_stage"].astype(str))
    # progress past stage s: first entry into a later stage, or the win
    later = np.full(len(deals), np.inf)
    rows = []
    for s in range(S - 1, -1, -1):  # loop over stages
        progress = np.minimum(later, won_t)
        entered = ~np.isnan(ns[:, s])
        adv = entered & np.isfinite(progress)
        drop = entered & ~adv & (furthest == s) & ~np.isnan(end_t)
        t = np.where(adv, progress, np.where(drop, end_t, as_of)) - ns[:, s]
        kind = np.where(adv, 1, np.where(drop, 2, 0))[entered]
        boot = _aj_bootstrap(t[entered], kind, BOOT, seed=s) if BOOT else (np.nan, np.nan)
        rows.append((stages[s], *_aj_at_end(t[entered], kind), *boot))
        later = np.minimum(later, np.where(entered, ns[:, s], np.inf))
    cols = ["stage", "f_adv", "f_drop", "se", "unresolved", "boot_low", "boot_high"]
    out = pd.DataFrame(rows[::-1], columns=cols)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = out["f_adv"] / (out["f_adv"] + out["f_drop"])
    out["estimate"] = out["f_adv"] + out["unresolved"] * share
    out["low"] = np.clip(out["f_adv"] - Z * out["se"], 0, 1)
    out["high"] = np.clip(out["f_adv"] + out["unresolved"] + Z * out["se"], 0, 1)
    return out


def _aj_bootstrap(t: np.ndarray, kind: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile interval of the advance incidence at the largest time from a Poisson
    (deal-level) bootstrap of ``n_boot`` replicates."""
    from scipy import sparse

    if t.size == 0:
        return np.nan, np.nan
    times, inv = np.unique(t, return_inverse=True)
    T, m = times.size, t.size
    w = np.random.default_rng(seed).poisson(1.0, size=(n_boot, m)).astype(np.float64)

    def per_time(mask: np.ndarray) -> np.ndarray:
        M = sparse.csr_matrix((mask.astype(np.float64), (np.arange(m), inv)), shape=(m, T))
        return np.asarray((sparse.csr_matrix(w) @ M).todense())

    d1, d2, c = per_time(kind == 1), per_time(kind == 2), per_time(kind == 0)
    tot = d1 + d2 + c
    n = np.flip(np.cumsum(np.flip(tot, axis=1), axis=1), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.where(n > 0, (d1 + d2) / n, 0.0)
        surv = np.cumprod(1 - h, axis=1)
        s_prev = np.concatenate([np.ones((n_boot, 1)), surv[:, :-1]], axis=1)
        f1 = np.cumsum(s_prev * np.where(n > 0, d1 / n, 0.0), axis=1)[:, -1]
    lo, hi = np.quantile(f1, [0.025, 0.975])
    return float(lo), float(hi)


def _aj_at_end(t: np.ndarray, kind: np.ndarray) -> tuple[float, float, float, float]:
    """Cumulative incidences of kind 1 and 2 at the largest time, the delta-method SE of
    the first, and the survival left there (kind 0 = censored; events before censorings
    at a tied time)."""
    if t.size == 0:
        return (np.nan,) * 4
    times, inv = np.unique(t, return_inverse=True)
    d1 = np.bincount(inv, weights=kind == 1, minlength=times.size)
    d2 = np.bincount(inv, weights=kind == 2, minlength=times.size)
    c = np.bincount(inv, weights=kind == 0, minlength=times.size)
    n = t.size - np.concatenate([[0], np.cumsum(d1 + d2 + c)[:-1]])
    keep = n >= MIN_AT_RISK  # the curve's tail past a thin risk set counts as unresolved
    if not keep.any():
        return (np.nan,) * 4
    times, d1, d2, n = times[keep], d1[keep], d2[keep], n[keep]
    dd = d1 + d2
    surv = np.cumprod(1 - dd / n)
    s_prev = np.concatenate([[1.0], surv[:-1]])
    f1 = np.cumsum(s_prev * d1 / n)
    f2 = np.cumsum(s_prev * d2 / n)
    tail = f1[-1] - f1
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where(n > dd, dd / (n * (n - dd)), 0.0)
    var = np.sum(tail**2 * g + s_prev**2 * d1 * (n - d1) / n**3 - 2 * tail * s_prev * d1 / n**2)
    return float(f1[-1]), float(f2[-1]), float(np.sqrt(max(var, 0.0))), float(surv[-1])


def one_seed(args: tuple[Scenario, int, int]) -> pd.DataFrame:
    """One simulated log: per stage and estimator, truth, estimate, interval, flags."""
    scenario, n_deals, seed = args
    events, truth = fk.datasets.synthetic(
        n_deals,
        seed=seed,
        p_skip=0.0,
        p_stale=scenario.p_stale,
        start=scenario.start,
        end=scenario.end,
        return_truth=True,
    )
    log = fk.EventLog(events, **fk.datasets.SAMPLE_KWARGS, as_of=truth.as_of)
    table = log.funnel(weight=WEIGHT)
    stages = table["stage"].astype(str).to_numpy()
    true = np.array([truth.advance[s] for s in stages])
    frames = []
    for name, (est, low, high) in estimators(table).items():
        frames.append(
            pd.DataFrame(
                {
                    "scenario": scenario.name,
                    "seed": seed,
                    "stage": stages,
                    "estimator": name,
                    "truth": true,
                    "estimate": table[est].to_numpy(float),
                    "low": table[low].to_numpy(float),
                    "high": table[high].to_numpy(float),
                    "widened": widened(table, name),
                    "open_share": table["open"].to_numpy(float) / table["reached"].to_numpy(float),
                }
            )
        )
    if REFERENCE and WEIGHT is None:
        ref = reference_aj(log).set_index("stage").loc[stages]
        frames.append(
            pd.DataFrame(
                {
                    "scenario": scenario.name,
                    "seed": seed,
                    "stage": stages,
                    "estimator": "reference_aj",
                    "truth": true,
                    "estimate": ref["estimate"].to_numpy(float),
                    "low": ref["low"].to_numpy(float),
                    "high": ref["high"].to_numpy(float),
                    "widened": ref["unresolved"].to_numpy(float) > 1e-12,
                    "open_share": frames[0]["open_share"].to_numpy(),
                }
            )
        )
        if BOOT:
            boot = frames[-1].assign(
                estimator="reference_aj_boot",
                low=np.minimum(ref["boot_low"].to_numpy(float), ref["f_adv"].to_numpy(float)),
                high=np.clip(
                    np.maximum(ref["boot_high"].to_numpy(float), ref["f_adv"].to_numpy(float))
                    + ref["unresolved"].to_numpy(float),
                    0,
                    1,
                ),
            )
            frames.append(boot)
    return pd.concat(frames, ignore_index=True)


def simulate(
    scenarios: tuple[Scenario, ...], n_deals: int, seeds: int, workers: int, first_seed: int
) -> pd.DataFrame:
    jobs = [(s, n_deals, first_seed + k) for s in scenarios for k in range(seeds)]
    if workers > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(one_seed, jobs, chunksize=max(1, len(jobs) // (8 * workers)))
    else:
        parts = [one_seed(j) for j in jobs]
    return pd.concat(parts, ignore_index=True)


def summarise(raw: pd.DataFrame) -> pd.DataFrame:
    """Coverage (with its simulation SE), bias, width and widened share per cell."""
    raw = raw.assign(
        has=np.isfinite(raw["low"]) & np.isfinite(raw["high"]),
        covered=(raw["low"] <= raw["truth"]) & (raw["truth"] <= raw["high"]),
        error=100 * (raw["estimate"] - raw["truth"]),
        width=100 * (raw["high"] - raw["low"]),
    )
    rows = []
    keys = ["scenario", "estimator", "stage"]
    for key, g in raw.groupby(keys, sort=False):
        h = g[g["has"]]
        n = len(h)
        cov = h["covered"].mean() if n else np.nan
        err = g["error"].dropna()
        wid, nar = h[h["widened"]], h[~h["widened"]]
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "truth": g["truth"].iloc[0],
                "seeds": len(g),
                "coverage": cov,
                "coverage_se": np.sqrt(cov * (1 - cov) / n) if n else np.nan,
                "bias_pts": err.mean(),
                "bias_se_pts": err.std(ddof=1) / np.sqrt(len(err)) if len(err) > 1 else np.nan,
                "bias_other_pts": nar["error"].mean() if len(nar) else np.nan,
                "width_pts": h["width"].mean(),
                "widened": g["widened"].mean(),
                "coverage_widened": wid["covered"].mean() if len(wid) else np.nan,
                "coverage_other": nar["covered"].mean() if len(nar) else np.nan,
                "no_estimate": (~g["has"]).mean(),
                "open_share": g["open_share"].mean(),
            }
        )
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame) -> str:
    """One table per scenario: stages down, both estimators across."""

    def pct(x: float, nd: int = 1) -> str:
        return "–" if pd.isna(x) else f"{100 * x:.{nd}f}"

    def pts(x: float) -> str:
        return "–" if pd.isna(x) else f"{x:+.2f}"

    def num(x: float, nd: int) -> str:
        return "–" if pd.isna(x) else f"{x:.{nd}f}"

    out = []
    for scenario, s in summary.groupby("scenario", sort=False):
        out.append(f"**{scenario}** (mean share of deals open at their stage in brackets)\n")
        out.append(
            "| stage (open) | truth | estimator | coverage % ± SE | bias pts ± SE "
            "| bias not widened | width pts | widened % | cov. widened / other % "
            "| no estimate % |"
        )
        out.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for _, r in s.iterrows():
            out.append(
                f"| {r['stage']} ({pct(r['open_share'], 0)}%) | {r['truth']:.2f} "
                f"| {r['estimator']} "
                f"| {pct(r['coverage'])} ± {pct(r['coverage_se'])} "
                f"| {pts(r['bias_pts'])} ± {num(r['bias_se_pts'], 2)} "
                f"| {pts(r['bias_other_pts'])} "
                f"| {num(r['width_pts'], 1)} "
                f"| {pct(r['widened'], 0)} "
                f"| {pct(r['coverage_widened'])} / {pct(r['coverage_other'])} "
                f"| {pct(r['no_estimate'], 0)} |"
            )
        out.append("")
    return "\n".join(out)


def code_version() -> str:
    src = Path(fk.__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(src), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        branch = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "--abbrev-ref", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"funnelkit {fk.__version__} from {src}"
    return f"funnelkit {fk.__version__} from {src} (branch `{branch}`, commit {sha})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200, help="seeds per scenario")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=2000, help="deals per log")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--issue-scenarios", action="store_true", help="also p_stale=0.2")
    ap.add_argument("--only", default="", help="run the scenarios whose name has this text")
    ap.add_argument("--raw", type=Path, help="write the per-seed rows to this CSV")
    ap.add_argument("--from-raw", type=Path, help="summarise a --raw CSV instead of running")
    ap.add_argument("--append", action="store_true", help="append the report to RESULTS.md")
    ap.add_argument("--title", default="", help="text after the section heading")
    args = ap.parse_args(argv)

    scenarios = SCENARIOS + (ISSUE_SCENARIOS if args.issue_scenarios else ())
    scenarios = tuple(s for s in scenarios if args.only in s.name)
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    if args.from_raw:
        raw = pd.read_csv(args.from_raw)
        print(markdown(summarise(raw)))
        return
    raw = simulate(scenarios, args.n, args.seeds, args.workers, args.first_seed)
    elapsed = time.perf_counter() - t0
    if args.raw:
        raw.to_csv(args.raw, index=False)
    summary = summarise(raw)

    command = "python benchmarks/conversion_coverage.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    head = (
        f"## Conversion coverage and bias (issue 17){' — ' + args.title if args.title else ''}"
        f" — {started:%a %b %d %H:%M} UTC {started:%Y}\n\n"
        f"Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (shared); pandas {pd.__version__}, numpy {np.__version__}.  \n"
        f"Code: {code_version()}.  \n"
        f"Command: `{command}` — {args.seeds} seeds per scenario (seeds {args.first_seed}.."
        f"{args.first_seed + args.seeds - 1}), {args.n} deals per log, {args.workers} "
        f"worker(s), {elapsed:.0f} s.  \n"
        "Logs: `fk.datasets.synthetic(n, seed=seed, p_skip=0.0, p_stale=..., start=..., "
        "end=..., return_truth=True)`, read with `fk.datasets.SAMPLE_KWARGS` "
        '(`stale_after="60D"`) and `as_of=truth.as_of`; truth = `truth.advance[stage]`. '
        "Coverage of the 95% interval ± its simulation SE; bias = mean(estimate − truth) "
        "in points ± its SE (and among intervals not widened); width = mean(high − low) in points; widened = the interval "
        "spans unresolved mass (`unresolved` > 0)."
        + (f" Weighted: `funnel(weight={WEIGHT!r})` (FK_WEIGHT)." if WEIGHT else "")
        + "\n"
    )
    text = head + "\n" + markdown(summary)
    print(text)
    if args.append:
        with RESULTS.open("a", encoding="utf-8") as fh:
            fh.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
