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
5. **Hard nulls** (``--hard``; issue 18 item 6): the any-flag rate of every family
   (dropoff, stall, heterogeneity, change, dwell) on null logs that are young and heavily
   censored (also with 8x dwell and no ``stale_after``), split over 40 owners, split very
   unequally, or tiny; and the power to find a 10-point conversion gap, a 2x dwell and a
   10-point change, with the conversion flags a dwell plant raises. Runs on ``--jobs``
   processes; finished logs go to ``--cache`` (JSON lines), so an interrupted run resumes.

Examples::

    python benchmarks/keystages_calibration.py                  # full run, prints
    python benchmarks/keystages_calibration.py --append         # and appends to RESULTS.md
    python benchmarks/keystages_calibration.py --quick          # a smoke run
    python benchmarks/keystages_calibration.py --aj --append    # the Aalen–Johansen study
    python benchmarks/keystages_calibration.py --hard --append  # the hard-null study
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing as mp
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


# --------------------------------------------------------------------------- hard nulls
# Issue 18 item 6: the key-stage families on logs where nothing is planted but the data are
# hard — young and heavily censored, many small segments, very unequal segments, tiny — and
# the power to find a 10-point conversion gap, a 2x dwell and a 10-point change.

HARD_FAMILIES = ("dropoff", "stall", "heterogeneity", "change", "dwell")
HARD_OWNERS_40 = tuple(f"Owner {i:02d}" for i in range(40))
#: deals created 2025-01-01 to 2025-03-15, observed at the end: about 60% still open
YOUNG = {"start": "2025-01-01", "end": "2025-03-15"}
YOUNG_PERIOD = "2025-02-07"  # about half of the deals created on each side
MATURE_PERIOD = "2024-10-01"  # the default window 2024-01-01 to 2025-06-30, halved
#: the generator's median dwell per stage (days), times 8
DWELL_X8 = tuple(
    8 * d for d in fk.datasets.synthetic(0, return_truth=True)[1].dwell_median.values()
)
#: owner shares of the unequal set-up: one owner with 60% of the deals, twelve small ones
UNEQUAL_SHARES = (0.60, 0.10, 0.07, 0.05, 0.04, 0.03, 0.03, 0.02, 0.02, 0.015, 0.01, 0.01, 0.005)
#: null set-ups: deals, generator keywords, EventLog keywords over SAMPLE_KWARGS, the
#: segment column for by=, the period date, owner shares to relabel deals with (or None)
HARD_SETUPS: dict[str, dict] = {
    "young": {"n": 3000, "gen": YOUNG, "log": {}, "by": "team", "period": YOUNG_PERIOD},
    "young, dwell x8, no stale_after": {
        "n": 3000,
        "gen": YOUNG | {"dwell_median": DWELL_X8},
        "log": {"stale_after": None},
        "by": "team",
        "period": YOUNG_PERIOD,
    },
    "40 owners": {
        "n": 3000,
        "gen": {"owners": HARD_OWNERS_40},
        "log": {},
        "by": "owner",
        "period": MATURE_PERIOD,
    },
    "unequal owners": {
        "n": 3000,
        "gen": {},
        "log": {},
        "by": "owner",
        "period": MATURE_PERIOD,
        "shares": UNEQUAL_SHARES,
    },
    "tiny": {"n": 300, "gen": {}, "log": {}, "by": "team", "period": MATURE_PERIOD},
}
#: (family, comparison): dropoff, heterogeneity and dwell by segment; change and dwell after
#: vs before the period date; stall on its own (run in the by= call)
HARD_CELLS = (
    ("dropoff", "by"),
    ("stall", "-"),
    ("heterogeneity", "by"),
    ("dwell", "by"),
    ("change", "period"),
    ("dwell", "period"),
)
GAP = {"column": "team", "value": "Team C", "stage": "Demo", "advance": 0.55}  # default 0.65
SLOW = {"column": "team", "value": "Team C", "stage": "Proposal", "factor": 2.0}
DROP = {"date": MATURE_PERIOD, "stage": "Demo", "advance": 0.55}
CONV = ("dropoff", "heterogeneity")
#: planted effects: generator keywords, the key_stages call that should find them, and what
#: to count per log — (label, signals, stage, segment, elsewhere): a flag of `signals` at
#: `stage` (for `segment`), or, with elsewhere=True, anywhere but there
PLANTS: dict[str, dict] = {
    "conversion gap": {
        "gen": {"segment_effect": GAP},
        "by": "team",
        "measures": (
            ("found: dropoff (Team C, Demo)", ("dropoff",), "Demo", "Team C", False),
            ("found: heterogeneity (Demo)", ("heterogeneity",), "Demo", None, False),
            ("dropoff/heterogeneity flags elsewhere", CONV, "Demo", None, True),
            ("dwell flags at Demo", ("dwell",), "Demo", None, False),
        ),
    },
    "2x dwell": {
        "gen": {"dwell_effect": SLOW},
        "by": "team",
        "measures": (
            ("found: dwell (Team C, Proposal)", ("dwell",), "Proposal", "Team C", False),
            ("dwell flags elsewhere", ("dwell",), "Proposal", "Team C", True),
            ("dropoff/heterogeneity flags at Proposal", CONV, "Proposal", None, False),
            ("dropoff/heterogeneity flags at any stage", CONV, None, None, True),
            ("stall flags at Proposal", ("stall",), "Proposal", None, False),
        ),
    },
    "change": {
        "gen": {"change": DROP},
        "period": MATURE_PERIOD,
        "measures": (
            ("found: change (Demo)", ("change",), "Demo", None, False),
            ("change flags elsewhere", ("change",), "Demo", None, True),
            ("dwell flags at Demo", ("dwell",), "Demo", None, False),
        ),
    },
}
HARD_NULL_SEED = 80_000
HARD_POWER_SEED = 90_000


def relabel_owners(events: pd.DataFrame, shares: tuple[float, ...], seed: int) -> pd.DataFrame:
    """Give each deal a new owner drawn with `shares`, independently of everything else
    (its own random stream), so the null of no owner difference still holds."""
    rng = np.random.default_rng([seed, 18])
    codes, _ = pd.factorize(events["deal_id"], sort=True)
    owner = rng.choice(len(shares), size=int(codes.max()) + 1, p=np.asarray(shares))
    names = np.array([f"Owner {i:02d}" for i in range(len(shares))], dtype=object)
    return events.assign(owner=pd.array(names[owner[codes]], dtype=events["owner"].dtype))


def _signals(wanted: list[str], available: tuple[str, ...]) -> list[str]:
    return [s for s in wanted if s in available]


def hard_null_task(setup: str, seed: int, available: tuple[str, ...]) -> dict:
    """One null log: per cell, any flag, tested rows (p-values) and p-values below alpha."""
    spec = HARD_SETUPS[setup]
    s = HARD_NULL_SEED + seed
    events = fk.datasets.synthetic(spec["n"], seed=s, **spec["gen"])
    if spec.get("shares"):
        events = relabel_owners(events, spec["shares"], s)
    log = fk.EventLog(events, **(KW | spec["log"]))
    calls = {
        "by": key_stages(
            log,
            by=spec["by"],
            signals=_signals(["dropoff", "stall", "heterogeneity", "dwell"], available),
            n_boot=0,
            seed=seed,
        ),
        "period": key_stages(
            log,
            period=spec["period"],
            signals=_signals(["change", "dwell"], available),
            n_boot=0,
            seed=seed,
        ),
    }
    out = {}
    for family, comparison in HARD_CELLS:
        ks = calls["by" if comparison == "-" else comparison]
        rows = ks[ks["signal"] == family]
        if family not in available:
            continue
        p = rows["p_value"].dropna()
        out[f"{family}|{comparison}"] = [
            bool(rows["is_key"].any()),
            int(p.size),
            int((p < ALPHA).sum()),
        ]
    return out


def _flagged(key: pd.DataFrame, signals, stage, segment, elsewhere: bool) -> bool:
    """Any flag of `signals` at `stage` (for `segment`), or anywhere but there."""
    here = key["stage"] == stage  # stage None: nowhere, so elsewhere=True is anywhere
    if segment is not None:
        here &= key["segment"] == segment
    return bool((key["signal"].isin(signals) & (~here if elsewhere else here)).any())


def hard_power_task(plant: str, n_deals: int, seed: int, available: tuple[str, ...]) -> dict:
    """One log with a planted effect: was it found, and what else was flagged."""
    spec = PLANTS[plant]
    events = fk.datasets.synthetic(n_deals, seed=HARD_POWER_SEED + seed, **spec["gen"])
    log = fk.EventLog(events, **KW)
    if "by" in spec:
        compare = {"by": spec["by"]}
        wanted = ["dropoff", "stall", "heterogeneity", "dwell"]
    else:
        compare = {"period": spec["period"]}
        wanted = ["change", "dwell"]
    ks = key_stages(log, signals=_signals(wanted, available), n_boot=0, seed=seed, **compare)
    key = ks[ks["is_key"]]
    return {
        label: _flagged(key, signals, stage, segment, elsewhere)
        for label, signals, stage, segment, elsewhere in spec["measures"]
        if set(signals) <= set(available)
    }


def _run_task(task: tuple) -> tuple[tuple, dict, float]:
    kind, name, n, seed, available = task
    t = time.perf_counter()
    try:
        if kind == "null":
            res = hard_null_task(name, seed, available)
        else:
            res = hard_power_task(name, n, seed, available)
    except Exception as exc:  # a hard log that breaks key_stages is a finding: keep going
        res = {"error": f"{type(exc).__name__}: {exc}"}
    return task[:4], res, time.perf_counter() - t


def code_version() -> str:
    """Hash of funnelkit's sources and the study's set-ups: cached results are reused only
    when neither changed."""
    h = hashlib.sha1()
    root = Path(fk.__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    h.update(repr((HARD_SETUPS, HARD_CELLS, PLANTS, HARD_NULL_SEED, HARD_POWER_SEED)).encode())
    return h.hexdigest()[:12]


def run_hard(args) -> None:
    from funnelkit.keystages import SIGNALS

    available = tuple(s for s in HARD_FAMILIES if s in SIGNALS)
    missing = [s for s in HARD_FAMILIES if s not in SIGNALS]
    if missing and not args.quick:
        raise SystemExit(
            f"key_stages has no signal {missing} in this tree (signals: {list(SIGNALS)}); the "
            "hard-null study needs every family. Only --quick skips missing ones."
        )
    if missing:
        print(f"smoke run: skipping the signals this tree lacks: {missing}", flush=True)
    t0 = time.perf_counter()
    version = code_version()
    tasks = [
        ("null", s, HARD_SETUPS[s]["n"], seed, available)
        for s in args.hard_setups
        for seed in range(args.hard_seeds)
    ]
    for n, seeds in zip(args.hard_power_sizes, args.hard_power_seeds, strict=True):
        tasks += [("power", p, n, seed, available) for p in PLANTS for seed in range(seeds)]
    done: dict[tuple, tuple[dict, float]] = {}
    cache = None if args.quick else Path(args.cache)
    if cache is not None and cache.exists() and not args.fresh:
        for line in cache.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if rec["version"] == version:
                done[tuple(rec["task"])] = (rec["result"], rec["seconds"])
    todo = [t for t in tasks if t[:4] not in done]
    print(
        f"{len(tasks)} tasks, {len(tasks) - len(todo)} cached (code {version}), "
        f"{len(todo)} to run on {args.jobs} processes",
        flush=True,
    )
    # time one seed of each kind first, then estimate the whole
    firsts = {}
    for t in todo:
        firsts.setdefault((t[0], t[1], t[2]), t)
    first = list(firsts.values())
    sink = None
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        sink = open(cache, "a", encoding="utf-8")

    def record(task, res, seconds):
        done[task] = (res, seconds)
        if sink is not None:
            rec = {"version": version, "task": list(task), "result": res, "seconds": seconds}
            sink.write(json.dumps(rec) + "\n")
            sink.flush()

    for t in first:
        task, res, seconds = _run_task(t)
        record(task, res, seconds)
        print(
            f"  one seed of {task[0]} {task[1]!r} at {task[2]:,} deals: {seconds:.2f} s",
            flush=True,
        )
    rest = [t for t in todo if t[:4] not in done]
    per = {k: done[t[:4]][1] for k, t in firsts.items()}
    estimate = sum(per[(t[0], t[1], t[2])] for t in rest) / args.jobs
    print(f"estimate for the other {len(rest)} tasks: {estimate / 60:.1f} min", flush=True)
    t_rest = time.perf_counter()
    ctx = mp.get_context("spawn")  # the parent ran tasks (and maybe threads) already
    with ctx.Pool(args.jobs) as pool:
        for i, (task, res, seconds) in enumerate(
            pool.imap_unordered(_run_task, rest, chunksize=4), 1
        ):
            record(task, res, seconds)
            if i % 200 == 0 or i == len(rest):
                el = time.perf_counter() - t_rest
                print(
                    f"  {i}/{len(rest)} in {el / 60:.1f} min, ~{el / i * (len(rest) - i) / 60:.1f} min left",
                    flush=True,
                )
    if sink is not None:
        sink.close()
    results = {t[:4]: done[t[:4]] for t in tasks}
    elapsed = time.perf_counter() - t0
    text = hard_report(args, results, available, elapsed, len(tasks) - len(todo), version)
    print(text)
    if args.append:
        with open(RESULTS, "a", encoding="utf-8") as f:  # append only: others write here too
            f.write(text)
        print(f"appended to {RESULTS}")


def _pass(share: float, seeds: int) -> str:
    return "PASS" if share <= bound(seeds) else "FAIL"


def hard_report(args, results: dict, available, elapsed: float, cached: int, version: str) -> str:
    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    task_s = sum(s for _, s in results.values())
    cmd = "python benchmarks/keystages_calibration.py --hard " + " ".join(
        [f"--hard-seeds {args.hard_seeds}", "--hard-power-sizes"]
        + [str(n) for n in args.hard_power_sizes]
        + ["--hard-power-seeds"]
        + [str(s) for s in args.hard_power_seeds]
        + [f"--jobs {args.jobs}"]
        + (["--quick"] if args.quick else [])
    )
    lines = [
        "",
        "## Key stages on hard nulls, and the dwell signal's power (issue 18 item 6)",
        "",
        f"`{cmd}` — {now}; {machine()}; {elapsed:.0f} s wall clock "
        f"({task_s:.0f} s of work in {args.jobs} processes"
        + (f", {cached} of the tasks from the cache of an interrupted run" if cached else "")
        + f"; code {version}). Synthetic logs from `fk.datasets.synthetic` with "
        f"`SAMPLE_KWARGS` (stale after 60 days unless said), `n_boot=0`, alpha = {ALPHA}, "
        "default `min_deals` and `min_effect`. Null seeds "
        f"{HARD_NULL_SEED:,}–{HARD_NULL_SEED + args.hard_seeds - 1:,} per set-up; power seeds "
        f"from {HARD_POWER_SEED:,}. Families: " + ", ".join(f"`{f}`" for f in available) + ".",
        "",
        "Set-ups (nothing planted): *young* = 3,000 deals created 2025-01-01 to 2025-03-15, "
        f"as_of = end (about 60% open), period {YOUNG_PERIOD}; *young, dwell x8, no stale_after* "
        "= the same with every median dwell times 8 and `stale_after=None` (about 90% open); "
        "*40 owners* = 3,000 deals over 2024-01-01 to 2025-06-30 with 40 owners (30–80 "
        f"deals each), by owner, period {MATURE_PERIOD}; *unequal owners* = 3,000 deals whose "
        "owner is redrawn per deal, independently of everything else, with shares "
        + "/".join(f"{100 * s:g}" for s in UNEQUAL_SHARES)
        + f" % (1,800 deals down to 15), by owner; *tiny* = 300 deals, by team, period "
        f"{MATURE_PERIOD}. Dropoff, heterogeneity and dwell are run with `by=` (segment vs "
        "rest), change and dwell with `period=` (created after vs before), stall in the "
        "`by=` call (it ignores `by`).",
        "",
        "**Any flag in the family** (`is_key` anywhere in the call's rows of that family). "
        "Under the complete null Benjamini–Hochberg bounds this share by alpha; SE = "
        "simulation SE of the share; bound = alpha + 2 × the simulation SE at alpha "
        f"= {bound(args.hard_seeds):.3f}. Tested rows: rows with a p-value, per log (mean); "
        "p < alpha: share of those p-values below alpha (a calibrated test gives about "
        "alpha, a conservative one less).",
        "",
        "| set-up | family | compared | seeds | any flag | SE | bound | result | tested rows per log | p < alpha | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setup in args.hard_setups:
        runs = [
            results[("null", setup, HARD_SETUPS[setup]["n"], s)] for s in range(args.hard_seeds)
        ]
        errors = [r["error"] for r, _ in runs if "error" in r]
        ok = [r for r, _ in runs if "error" not in r]
        for family, comparison in HARD_CELLS:
            cell = f"{family}|{comparison}"
            if family not in available:
                continue
            m = len(ok)
            flags = sum(r[cell][0] for r in ok)
            tested = sum(r[cell][1] for r in ok)
            below = sum(r[cell][2] for r in ok)
            share = flags / m if m else float("nan")
            lines.append(
                f"| {setup} | {family} | {comparison} | {m} | {share:.3f} | {se(share, max(m, 1)):.3f} "
                f"| {bound(args.hard_seeds):.3f} | {_pass(share, args.hard_seeds)} | "
                f"{tested / max(m, 1):.1f} | "
                + (f"{below / tested:.3f}" if tested else "n/a")
                + f" | {len(errors)} |"
            )
        for e in sorted(set(errors)):
            lines.append(f"| {setup} | error | | {errors.count(e)} | {e} | | | | | | |")
    lines += [
        "",
        "**Planted effects** (share of logs; mature window 2024-01-01 to 2025-06-30): "
        "*conversion gap* = Team C advances from Demo with 0.55 instead of 0.65 (`by='team'`); "
        "*2x dwell* = Team C's Proposal visits last twice as long, advance unchanged "
        "(`by='team'`); *change* = Demo visits entering after "
        f"{MATURE_PERIOD} advance with 0.55 instead of 0.65 (`period='{MATURE_PERIOD}'`). "
        "*found* = the planted stage (and segment) flagged in the planted family: the power; "
        "the other rows are flags that should stay rare.",
        "",
        "| plant | deals | seeds | measure | share | SE | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, seeds in zip(args.hard_power_sizes, args.hard_power_seeds, strict=True):
        for plant in PLANTS:
            runs = [results[("power", plant, n, s)][0] for s in range(seeds)]
            ok = [r for r in runs if "error" not in r]
            n_err = len(runs) - len(ok)
            for measure in ok[0] if ok else []:
                share = sum(r[measure] for r in ok) / len(ok)
                lines.append(
                    f"| {plant} | {n:,} | {len(ok)} | {measure} | {share:.2f} | "
                    f"{se(share, len(ok)):.3f} | {n_err} |"
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
    ap.add_argument("--aj", action="store_true", help="the Aalen–Johansen signal study only")
    ap.add_argument("--label", default="Aalen–Johansen", help="estimator name in the title")
    ap.add_argument("--aj-deals", type=int, default=3000)
    ap.add_argument("--aj-seeds", type=int, default=300)
    ap.add_argument("--truth-deals", type=int, default=200_000)
    ap.add_argument("--setups", nargs="+", default=list(SETUPS))
    ap.add_argument("--hard", action="store_true", help="the hard-null study only")
    ap.add_argument("--hard-seeds", type=int, default=200, help="null logs per set-up")
    ap.add_argument(
        "--hard-setups", nargs="+", default=list(HARD_SETUPS), choices=list(HARD_SETUPS)
    )
    ap.add_argument("--hard-power-sizes", type=int, nargs="+", default=[2000, 10000])
    ap.add_argument("--hard-power-seeds", type=int, nargs="+", default=[100, 100])
    ap.add_argument("--jobs", type=int, default=2, help="processes (--hard)")
    ap.add_argument("--cache", default=str(HERE / "out" / "keystages_hard.jsonl"))
    ap.add_argument("--fresh", action="store_true", help="ignore the --hard cache")
    args = ap.parse_args()
    if args.hard:
        if args.quick:
            args.hard_seeds, args.hard_power_sizes, args.hard_power_seeds = 6, [2000], [4]
        run_hard(args)
        return
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
