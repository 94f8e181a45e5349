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
3. **The Aalen–Johansen signals** (``--aj``; issue 17 item 5): ``dropoff``,
   ``heterogeneity`` and ``change`` compare the Aalen–Johansen conversion of ``funnel()``.
   Their false-positive rate under the null in four set-ups — a mature pipeline, a young
   one (deals created over 2.5 months), 40 owners (many small segments), and 40 owners on
   the young pipeline — for each baseline of ``dropoff`` (segment vs the rest, previous
   period, a benchmark equal to the true loss rate); and the power to find a planted
   effect. Run it on the code before the change too (``PYTHONPATH`` of an older tree,
   ``--label ratio``) to compare with the ratio of counts.
4. **Leverage interval coverage.** The deal-level bootstrap interval against the
   probability limit of the estimator (the chain of a 1,000,000-deal log from the same
   generator).

Examples::

    python benchmarks/keystages_calibration.py                  # full run, prints
    python benchmarks/keystages_calibration.py --append         # and appends to RESULTS.md
    python benchmarks/keystages_calibration.py --quick          # a smoke run
    python benchmarks/keystages_calibration.py --aj --append    # the Aalen–Johansen study
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


# --------------------------------------------------------------------------- AJ study
OWNERS_40 = tuple(f"Owner {i:02d}" for i in range(1, 41))
#: null set-ups: generator keywords and the period date splitting deals in about half
SETUPS = {
    "mature": ({}, "2025-01-01"),
    "young": ({"start": "2025-04-15", "end": "2025-06-30"}, "2025-05-23"),
    "40 owners": ({"owners": OWNERS_40}, "2025-01-01"),
    "40 owners, young": (
        {"owners": OWNERS_40, "start": "2025-04-15", "end": "2025-06-30"},
        "2025-05-23",
    ),
}
#: (column label, key_stages keywords, signal): one tested family per cell
CELLS = (
    ("dropoff by team", {"by": "team"}, "dropoff"),
    ("dropoff by owner", {"by": "owner"}, "dropoff"),
    ("dropoff vs period", {"period": True}, "dropoff"),
    ("dropoff vs benchmark", {"benchmark": True}, "dropoff"),
    ("heterogeneity by team", {"by": "team"}, "heterogeneity"),
    ("heterogeneity by owner", {"by": "owner"}, "heterogeneity"),
    ("change", {"period": True}, "change"),
)


def true_loss(n_deals: int) -> dict[str, float]:
    """The loss rate 1 − conversion per stage of one large mature log (the estimand's
    limit under the generator's defaults; its own error is negligible at that size)."""
    log = fk.EventLog(fk.datasets.synthetic(n_deals, seed=1), **KW)
    f = log.funnel().set_index("stage")
    return {s: float(1 - f.loc[s, "conversion"]) for s in log.stages}


def aj_null(n_deals: int, seeds: int, setup: str, bench: dict[str, float]) -> dict:
    """Any-flag rate and share of p-values below alpha per cell, under the null."""
    gen, period = SETUPS[setup]
    flagged = {c[0]: 0 for c in CELLS}
    below = {c[0]: 0 for c in CELLS}
    tested = {c[0]: 0 for c in CELLS}
    for seed in range(seeds):
        log = fk.EventLog(fk.datasets.synthetic(n_deals, seed=50_000 + seed, **gen), **KW)
        runs: dict[tuple, pd.DataFrame] = {}
        for label, kw, signal in CELLS:
            args = dict(kw)
            if args.pop("period", False):
                args["period"] = period
            if args.pop("benchmark", False):
                args["benchmark"] = bench
            key = tuple(sorted((k, str(v)) for k, v in args.items()))
            if key not in runs:
                sig = [
                    s
                    for s in ("dropoff", "heterogeneity", "change")
                    if s != "heterogeneity" or "by" in args
                ]
                sig = [s for s in sig if s != "change" or "period" in args]
                runs[key] = key_stages(log, signals=sig, seed=seed, n_boot=0, **args)
            ks = runs[key]
            rows = ks[ks["signal"] == signal]
            p = rows["p_value"].dropna()
            flagged[label] += bool(rows["is_key"].any())
            below[label] += int((p < ALPHA).sum())
            tested[label] += int(p.size)
    return {"flagged": flagged, "below": below, "tested": tested, "seeds": seeds}


PLANT_TEAM = {"segment_effect": SEGMENT}
PLANT_CHANGE = {"change": CHANGE}


def aj_power(n_deals: int, seeds: int, young: bool = False) -> dict:
    """Share of logs where the planted stage is flagged: Team C at Demo (dropoff by team,
    heterogeneity by team) and the change at Demo."""
    gen, period = SETUPS["young" if young else "mature"]
    change = dict(CHANGE, date=period)
    hit = {"dropoff (Team C, Demo)": 0, "heterogeneity (Demo)": 0, "change (Demo)": 0}
    for seed in range(seeds):
        ev = fk.datasets.synthetic(n_deals, seed=60_000 + seed, segment_effect=SEGMENT, **gen)
        ks = key_stages(
            fk.EventLog(ev, **KW), by="team", signals=["dropoff", "heterogeneity"], seed=seed
        )
        key = ks[ks["is_key"] & (ks["stage"] == "Demo")]
        hit["dropoff (Team C, Demo)"] += bool(
            ((key["signal"] == "dropoff") & (key["segment"] == "Team C")).any()
        )
        hit["heterogeneity (Demo)"] += bool((key["signal"] == "heterogeneity").any())
        ev = fk.datasets.synthetic(n_deals, seed=70_000 + seed, change=change, **gen)
        ks = key_stages(fk.EventLog(ev, **KW), period=period, signals="change", seed=seed)
        hit["change (Demo)"] += bool((ks["is_key"] & (ks["stage"] == "Demo")).any())
    return {"hit": hit, "seeds": seeds}


def aj_report(args, null: dict, pw: dict, elapsed: float) -> str:
    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    labels = [c[0] for c in CELLS]
    lines = [
        "",
        f"## Key stages on the Aalen–Johansen conversion: calibration and power ({args.label})",
        "",
        f"`python benchmarks/keystages_calibration.py --aj --label {args.label}` — {now}; "
        f"{machine()}; {elapsed:.0f} s wall clock. Synthetic logs of {args.aj_deals:,} deals "
        f"(`fk.datasets.synthetic`, `SAMPLE_KWARGS`: stale after 60 days), null seeds "
        f"50,000–{50_000 + args.aj_seeds - 1}, power seeds 60,000+/70,000+; alpha = {ALPHA}, "
        "default `min_deals` and `min_effect`. Set-ups: *mature* = deals created 2024-01-01 "
        "to 2025-06-30, period 2025-01-01; *young* = created 2025-04-15 to 2025-06-30 "
        "(as_of = end), period 2025-05-23; *40 owners* = 40 owners (about 75 deals each) "
        "instead of 12. The benchmark is the true loss rate (1 − conversion of one "
        f"{args.truth_deals:,}-deal mature log).",
        "",
        "**Any flag in the family** (`is_key` anywhere; BH under the complete null: should be "
        f"≤ alpha; bound = alpha + 2 simulation SE = {bound(args.aj_seeds):.3f}):",
        "",
        "| set-up | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for setup, c in null.items():
        cells = [f"{c['flagged'][k] / c['seeds']:.3f}" for k in labels]
        lines.append(f"| {setup} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "**Share of single p-values below alpha** (all tested rows; a calibrated test gives "
        "≤ alpha; conservative tests less):",
        "",
        "| set-up | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for setup, c in null.items():
        cells = []
        for k in labels:
            n = c["tested"][k]
            cells.append(f"{c['below'][k] / n:.3f} (n={n})" if n else "n/a")
        lines.append(f"| {setup} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "**Power** (share of logs flagging the planted stage; Team C advances from Demo with "
        "0.35 instead of 0.65; separately, Demo visits entering after the period date advance "
        "with 0.45 instead of 0.65):",
        "",
        "| set-up | deals | seeds | " + " | ".join(next(iter(pw.values()))["hit"]) + " |",
        "|---|---|---|" + "---|" * 3,
    ]
    for (setup, n), p in pw.items():
        rates = [f"{v / p['seeds']:.2f}" for v in p["hit"].values()]
        lines.append(f"| {setup} | {n:,} | {p['seeds']} | " + " | ".join(rates) + " |")
    lines.append("")
    return "\n".join(lines)


def run_aj(args) -> None:
    t0 = time.perf_counter()
    bench = true_loss(args.truth_deals)
    print("true loss:", {k: round(v, 4) for k, v in bench.items()}, flush=True)
    null = {}
    for setup in args.setups:
        t = time.perf_counter()
        null[setup] = aj_null(args.aj_deals, args.aj_seeds, setup, bench)
        print(f"null {setup}: {time.perf_counter() - t:.0f} s", flush=True)
    pw = {}
    for n in args.power_sizes:
        pw[("mature", n)] = aj_power(n, args.power_seeds)
        print(f"power mature {n}", flush=True)
    pw[("young", args.aj_deals)] = aj_power(args.aj_deals, args.power_seeds, young=True)
    text = aj_report(args, null, pw, time.perf_counter() - t0)
    print(text)
    if args.append:
        with open(RESULTS, "a", encoding="utf-8") as f:  # append only: others write here too
            f.write(text)
        print(f"appended to {RESULTS}")


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
    ap.add_argument("--aj", action="store_true", help="the Aalen–Johansen signal study only")
    ap.add_argument("--label", default="Aalen–Johansen", help="estimator name in the title")
    ap.add_argument("--aj-deals", type=int, default=3000)
    ap.add_argument("--aj-seeds", type=int, default=300)
    ap.add_argument("--truth-deals", type=int, default=200_000)
    ap.add_argument("--setups", nargs="+", default=list(SETUPS))
    args = ap.parse_args()
    if args.aj:
        if args.quick:
            args.aj_seeds, args.power_sizes, args.power_seeds = 5, [2000], 5
            args.truth_deals, args.aj_deals = 20_000, 2000
        run_aj(args)
        return
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
