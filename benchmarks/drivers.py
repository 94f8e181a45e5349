"""Calibration and power of ``EventLog.drivers`` on synthetic logs with activities.

The test suite runs 20 seeds of each study (tests/test_drivers.py); this script runs the
full ones and can append a section to ``benchmarks/RESULTS.md``:

1. **Calibration under the null.** ``synthetic(n, activities=True)`` with nothing planted:
   no attribute and no activity changes advancing. Per log and stage, whether
   ``drivers()`` flags anything (``is_key``). Benjamini–Hochberg within a stage controls
   the false discovery rate, which under the complete null is the chance of any flag, so
   the share of flagged stages should be at most ``alpha`` = 5% (allowing for simulation
   error). Also the share of single tests with p < 0.05 (the tests themselves), by kind
   of feature and by test (z / Fisher).
2. **Power.** The same logs with ``feedback_effect={"stage": "Proposal", "effect": -0.15}``
   (visits at Proposal with a low survey answer advance 15 points less than the others):
   the share of logs where the ``survey score`` row at Proposal is key with a negative
   effect, and the false flags among the other rows.

Examples::

    python benchmarks/drivers.py                    # 200 + 200 logs of 3,000 deals
    python benchmarks/drivers.py --seeds 20         # a smoke run
    python benchmarks/drivers.py --append           # and append to RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

import funnelkit as fk

HERE = Path(__file__).resolve().parent
EFFECT = {"stage": "Proposal", "effect": -0.15}


def one(args: tuple[int, int, bool]) -> pd.DataFrame:
    """drivers() of one synthetic log (seed, deals, planted?)."""
    seed, n, planted = args
    events, acts = fk.datasets.synthetic(
        n, seed=seed, activities=True, feedback_effect=EFFECT if planted else None
    )
    log = fk.EventLog(events, **fk.datasets.SAMPLE_KWARGS, as_of="2025-06-30")
    log = log.with_activities(acts, **fk.datasets.SAMPLE_ACTIVITIES_KWARGS)
    d = log.drivers()
    d["seed"] = seed
    d["planted"] = planted
    d["stage"] = d["stage"].astype(str)
    return d


def run(seeds: int, n: int, jobs: int, start: int) -> tuple[pd.DataFrame, float]:
    work = [(s, n, p) for p in (False, True) for s in range(start, start + seeds)]
    t0 = time.perf_counter()
    if jobs > 1:
        with mp.get_context("spawn").Pool(jobs) as pool:
            parts = pool.map(one, work, chunksize=4)
    else:
        parts = [one(w) for w in work]
    return pd.concat(parts, ignore_index=True), time.perf_counter() - t0


def se(p: float, n: int) -> float:
    return float(np.sqrt(p * (1 - p) / n)) if n else float("nan")


def summarize(res: pd.DataFrame) -> str:
    lines = []
    null = res[~res["planted"]]
    per_stage = null.groupby(["seed", "stage"])["is_key"].any()
    k, m = int(per_stage.sum()), int(per_stage.size)
    rate = k / m
    lines.append(
        f"Null: {null['seed'].nunique()} logs, {m} (log, stage) pairs; stages with any "
        f"flag: {k} = {rate:.1%} ± {se(rate, m):.1%} (nominal 5%)."
    )
    per_log = null.groupby("seed")["is_key"].any()
    lines.append(f"Null logs with any flag (6 stages): {per_log.mean():.1%}.")
    tested = null[np.isfinite(null["p_value"])]
    lines.append("")
    lines.append("| tests | rows | p < 0.05 | ± se |")
    lines.append("|---|---|---|---|")
    for name, g in [("all", tested)] + [
        (f"{c} = {v}", g2) for c in ("source", "test") for v, g2 in tested.groupby(c)
    ]:
        r = float((g["p_value"] < 0.05).mean())
        lines.append(f"| {name} | {len(g):,} | {r:.2%} | {se(r, len(g)):.2%} |")
    plant = res[res["planted"]]
    hit = plant[(plant["stage"] == "Proposal") & (plant["feature"] == "survey score")]
    found = hit["is_key"] & (hit["effect"] < 0)
    n_p = plant["seed"].nunique()
    power = float(found.sum()) / n_p
    lines.append("")
    lines.append(
        f"Power: `survey score` at Proposal key with a negative effect in {int(found.sum())} "
        f"of {n_p} logs = {power:.1%} ± {se(power, n_p):.1%} (target ≥ 80%); mean effect "
        f"{hit['effect'].mean() * 100:+.1f} points (planted −15), interval covered −15 in "
        f"{((hit['ci_low'] <= -0.15) & (hit['ci_high'] >= -0.15)).mean():.1%} of logs."
    )
    other = plant[~((plant["stage"] == "Proposal") & (plant["feature"] == "survey score"))]
    per_stage_p = other.groupby(["seed", "stage"])["is_key"].any()
    lines.append(
        f"Other rows of the planted logs: stages with a flag {per_stage_p.mean():.1%} "
        f"(Proposal without its survey row: "
        f"{per_stage_p.xs('Proposal', level='stage').mean():.1%})."
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--deals", type=int, default=3000)
    ap.add_argument("--start", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    ap.add_argument("--append", action="store_true")
    a = ap.parse_args()
    res, secs = run(a.seeds, a.deals, a.jobs, a.start)
    text = summarize(res)
    print(text)
    if a.append:
        head = (
            f"\n\n## Drivers: calibration and power (issue 23)\n\n"
            f"`python benchmarks/drivers.py --seeds {a.seeds} --deals {a.deals} --append` — "
            f"{dt.date.today().isoformat()}, funnelkit {fk.__version__}, "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores "
            f"(shared), Python {platform.python_version()}, pandas {pd.__version__}; "
            f"{secs:.0f} s on {a.jobs} processes. Seeds {a.start}–{a.start + a.seeds - 1}, "
            "synthetic(activities=True), as_of 2025-06-30, drivers() with its defaults "
            "(landmark 3 days, alpha 0.05, min_visits 20).\n\n"
        )
        with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write(head + text + "\n")


if __name__ == "__main__":
    main()
