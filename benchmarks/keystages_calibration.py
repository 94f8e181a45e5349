"""Calibration and power of ``funnelkit.keystages.key_stages`` on synthetic logs.

The test suite runs small versions of these studies (tests/test_keystages.py); this script
runs the full ones and appends a section to ``benchmarks/RESULTS.md``:

1. **Calibration under the null.** Logs with nothing planted: the share of analyses with
   any flag in each tested family (dropoff, stall, heterogeneity, change). Benjamini–
   Hochberg controls the false discovery rate; under the complete null that is the chance
   of any flag, so it should stay at or below ``alpha`` (allowing for simulation error).
   Also the share of single p-values below ``alpha`` (uniformity of the tests themselves,
   before materiality).
2. **Power.** Logs with a planted weak team at Demo and a planted stall at Proposal (the
   bundled sample's effects) and, separately, a planted change at Demo: the share of logs
   where the planted stage is flagged, by log size; and the false discovery proportion
   among the other flags of the same families.
3. **Leverage interval coverage.** The deal-level bootstrap interval against the
   probability limit of the estimator (the chain of a 1,000,000-deal log from the same
   generator).

Examples::

    python benchmarks/keystages_calibration.py                  # full run, prints
    python benchmarks/keystages_calibration.py --append         # and appends to RESULTS.md
    python benchmarks/keystages_calibration.py --quick          # a smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy

import funnelkit as fk
from funnelkit.keystages import key_stages
from funnelkit.markov import chain_from_log

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
KW = fk.datasets.SAMPLE_KWARGS
FAMILIES = ["dropoff", "stall", "heterogeneity", "change"]
ALPHA = 0.05
SEGMENT = {"column": "team", "value": "Team C", "stage": "Demo", "advance": 0.35}
STALL = {"stage": "Proposal", "after_days": 30, "advance": 0.15}
CHANGE = {"date": "2025-01-01", "stage": "Demo", "advance": 0.45}


def se(p: float, n: int) -> float:
    return float(np.sqrt(max(p * (1 - p), 1e-12) / n))


def bound(n: int) -> float:
    return ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / n)


def calibration(n_deals: int, seeds: int, by_values=("team", "owner")) -> dict:
    """Null logs: any-flag rate per family, and the share of p-values below alpha."""
    flagged = {(by, f): 0 for by in by_values for f in FAMILIES}
    ps: dict[str, list[float]] = {f: [] for f in FAMILIES}
    for seed in range(seeds):
        log = fk.EventLog(fk.datasets.synthetic(n_deals, seed=10_000 + seed), **KW)
        for by in by_values:
            ks = key_stages(log, by=by, period="2025-01-01", signals=FAMILIES, seed=seed)
            for f in FAMILIES:
                sel = ks["signal"] == f
                flagged[(by, f)] += bool(ks.loc[sel, "is_key"].any())
                if by == by_values[0] or f in ("heterogeneity", "dropoff"):
                    ps[f].extend(ks.loc[sel, "p_value"].dropna())
    return {"flagged": flagged, "ps": ps, "seeds": seeds}


def power(n_deals: int, seeds: int) -> dict:
    """Planted team-at-Demo and stall-at-Proposal; planted change at Demo."""
    hit = {"heterogeneity": 0, "stall": 0, "change": 0}
    fdp = {"heterogeneity": 0.0, "stall": 0.0, "change": 0.0}  # summed over logs
    false_flags = {"heterogeneity": 0, "stall": 0, "change": 0}
    all_flags = {"heterogeneity": 0, "stall": 0, "change": 0}
    for seed in range(seeds):
        ev = fk.datasets.synthetic(
            n_deals, seed=20_000 + seed, segment_effect=SEGMENT, stall=STALL
        )
        ks = key_stages(
            fk.EventLog(ev, **KW), by="team", signals=["stall", "heterogeneity"], seed=seed
        )
        key = ks[ks["is_key"]]
        true_het = (key["signal"] == "heterogeneity") & (key["stage"] == "Demo")
        true_stall = (key["signal"] == "stall") & (key["stage"] == "Proposal")
        hit["heterogeneity"] += bool((true_het & (key["segment"] == "Team C")).any())
        hit["stall"] += bool(true_stall.any())
        for f, true in (("heterogeneity", true_het), ("stall", true_stall)):
            fam = key["signal"] == f
            all_flags[f] += int(fam.sum())
            false_flags[f] += int((fam & ~true).sum())
            fdp[f] += int((fam & ~true).sum()) / max(int(fam.sum()), 1)
        ev = fk.datasets.synthetic(n_deals, seed=30_000 + seed, change=CHANGE)
        ks = key_stages(fk.EventLog(ev, **KW), period="2025-01-01", signals="change", seed=seed)
        key = ks[ks["is_key"]]
        true_change = key["stage"] == "Demo"
        hit["change"] += bool(true_change.any())
        all_flags["change"] += len(key)
        false_flags["change"] += int((~true_change).sum())
        fdp["change"] += int((~true_change).sum()) / max(len(key), 1)
    return {"hit": hit, "false": false_flags, "all": all_flags, "fdp": fdp, "seeds": seeds}


def coverage(n_deals: int, seeds: int, n_boot: int, reference_deals: int) -> pd.DataFrame:
    ref_log = fk.EventLog(fk.datasets.synthetic(reference_deals, seed=1), **KW)
    truth = chain_from_log(ref_log).leverage(0.10).set_index("stage")["leverage"]
    del ref_log
    inside = pd.Series(0, index=truth.index)
    width = pd.Series(0.0, index=truth.index)
    for seed in range(seeds):
        log = fk.EventLog(fk.datasets.synthetic(n_deals, seed=40_000 + seed), **KW)
        ks = key_stages(log, signals="leverage", n_boot=n_boot, seed=seed).set_index("stage")
        inside += (ks["ci_low"] <= truth) & (truth <= ks["ci_high"])
        width += ks["ci_high"] - ks["ci_low"]
    return pd.DataFrame({"limit": truth, "coverage": inside / seeds, "mean_width": width / seeds})


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu}, nproc={nproc}; Python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, pandas {pd.__version__}, funnelkit {fk.__version__}"
    )


def report(args, cal, pw, cov, elapsed) -> str:
    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        "",
        "## Key-stage calibration and power",
        "",
        f"`python benchmarks/keystages_calibration.py` — {now}; {machine()}; "
        f"{elapsed:.0f} s wall clock. Synthetic logs from `fk.datasets.synthetic` with "
        f"`SAMPLE_KWARGS` (stale after 60 days); alpha = {ALPHA}, default `min_deals` and "
        "`min_effect`.",
        "",
        "**Calibration under the null** (nothing planted; `period='2025-01-01'`): share of "
        "analyses with any flag in the family. BH controls the FDR, which under the complete "
        "null is this share; bound = alpha + 2 simulation SE.",
        "",
        "| deals | seeds | by | dropoff | stall | heterogeneity | change | bound |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, c in cal.items():
        for by in args.by:
            cells = [f"{c['flagged'][(by, f)] / c['seeds']:.3f}" for f in FAMILIES]
            lines.append(
                f"| {n:,} | {c['seeds']} | {by} | "
                + " | ".join(cells)
                + f" | {bound(c['seeds']):.3f} |"
            )
    lines += [
        "",
        "Share of single p-values below alpha under the null (all stages; before "
        "materiality, which only removes flags):",
        "",
        "| deals | " + " | ".join(FAMILIES) + " |",
        "|---|" + "---|" * len(FAMILIES),
    ]
    for n, c in cal.items():
        cells = []
        for f in FAMILIES:
            p = np.asarray(c["ps"][f])
            share = float((p < ALPHA).mean()) if p.size else float("nan")
            cells.append(f"{share:.3f} (n={p.size}, SE {se(ALPHA, max(p.size, 1)):.3f})")
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "**Power**: share of logs where the planted stage is flagged (`is_key`), and the "
        "false discovery rate of the family: the mean over logs of (false flags / flags), "
        "0 for a log without flags — to compare with alpha × (null stages / stages) = "
        "0.042 (false flags / all flags in brackets). Planted: "
        "Team C advances from Demo with 0.35 instead of 0.65 (`by='team'`); a Proposal visit "
        "longer than 30 days advances with 0.15 instead of 0.6; separately, deals entering "
        "Demo after 2025-01-01 advance with 0.45 instead of 0.65 (`period='2025-01-01'`).",
        "",
        "| deals | seeds | heterogeneity (Demo, Team C) | stall (Proposal) | change (Demo) "
        "| FDR het. | FDR stall | FDR change |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, p in pw.items():
        s = p["seeds"]
        rates = [f"{p['hit'][f] / s:.2f}" for f in ("heterogeneity", "stall", "change")]
        fdr = [
            f"{p['fdp'][f] / s:.3f} ({p['false'][f]}/{p['all'][f]})"
            for f in ("heterogeneity", "stall", "change")
        ]
        lines.append(f"| {n:,} | {s} | " + " | ".join(rates + fdr) + " |")
    lines += [
        "",
        f"**Leverage interval coverage**: {args.coverage_seeds} logs of "
        f"{args.coverage_deals:,} deals, `n_boot={args.n_boot}`, 95% percentile intervals, "
        f"against the estimate from one {args.reference_deals:,}-deal log (the estimator's "
        "limit; its own error is negligible at that size).",
        "",
        "| stage | limit (points) | coverage | mean width (points) |",
        "|---|---|---|---|",
    ]
    for stage, r in cov.iterrows():
        lines.append(
            f"| {stage} | {100 * r['limit']:.3f} | {r['coverage']:.2f} | {100 * r['mean_width']:.3f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--null-sizes", type=int, nargs="+", default=[3000, 30000])
    ap.add_argument("--null-seeds", type=int, nargs="+", default=[200, 60])
    ap.add_argument("--by", nargs="+", default=["team", "owner"])
    ap.add_argument("--power-sizes", type=int, nargs="+", default=[1000, 2000, 3000, 5000])
    ap.add_argument("--power-seeds", type=int, default=100)
    ap.add_argument("--coverage-deals", type=int, default=3000)
    ap.add_argument("--coverage-seeds", type=int, default=100)
    ap.add_argument("--reference-deals", type=int, default=1_000_000)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="few seeds, small sizes")
    ap.add_argument("--append", action="store_true", help=f"append the section to {RESULTS}")
    args = ap.parse_args()
    if args.quick:
        args.null_sizes, args.null_seeds = [2000], [10]
        args.power_sizes, args.power_seeds = [2000], 5
        args.coverage_seeds, args.reference_deals, args.n_boot = 5, 100_000, 50
    t0 = time.perf_counter()
    cal = {}
    for n, seeds in zip(args.null_sizes, args.null_seeds, strict=True):
        t = time.perf_counter()
        cal[n] = calibration(n, seeds, tuple(args.by))
        print(f"null {n:,} deals × {seeds}: {time.perf_counter() - t:.0f} s", flush=True)
    pw = {}
    for n in args.power_sizes:
        t = time.perf_counter()
        pw[n] = power(n, args.power_seeds)
        print(
            f"power {n:,} deals × {args.power_seeds}: {time.perf_counter() - t:.0f} s", flush=True
        )
    t = time.perf_counter()
    cov = coverage(args.coverage_deals, args.coverage_seeds, args.n_boot, args.reference_deals)
    print(f"coverage: {time.perf_counter() - t:.0f} s", flush=True)
    text = report(args, cal, pw, cov, time.perf_counter() - t0)
    print(text)
    if args.append:
        with open(RESULTS, "a", encoding="utf-8") as f:  # append only: others write here too
            f.write(text)
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
