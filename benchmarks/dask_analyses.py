"""The analyses distributed in issue 16 — alerts, every key-stage signal, what-if, drivers — on a
Dask log of memory-limited workers, against the in-memory log on the same file.

Run by hand (minutes; a few GB of RAM)::

    python benchmarks/load.py deals 1000000 --seg 8   # writes the file below, if missing
    python benchmarks/dask_analyses.py benchmarks/data/events_1000000_seg8.parquet

Both engines read the same Parquet file (the ``seg`` column as a carried attribute).
Each call is timed once, wall clock; the Dask log runs on a fresh ``LocalCluster`` of
two worker processes (one thread each, ``--memory-limit`` each; ``--npartitions`` after
the shuffle by deal), built once and then
``persist()``-ed, so each analysis's time is its own passes. The in-memory calls run in a
subprocess (its peak RSS). Tables are compared: counts and labels exactly, floats as
their largest relative difference (what-if intervals are Monte-Carlo: see
``docs/scale-out.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dask_bench import KW  # noqa: E402  (the stage names of generate.py's logs)

KW = {**KW, "attrs": ["seg"]}
CHANGES = {"Demo": {"conversion": 0.05}, "Proposal": {"dwell": 0.8}}


def calls(log) -> dict:
    """Name → a call of the analysis (the same on both engines)."""
    return {
        "alerts": lambda: log.alerts(weeks=2),
        "key_stages": lambda: log.key_stages(n_boot=0),
        "key_stages_by_seg": lambda: log.key_stages(by="seg", n_boot=0),
        "key_stages_period": lambda: log.key_stages(period="2024-07-01", n_boot=0),
        "what_if_n_boot_0": lambda: log.what_if(CHANGES, n_boot=0),
        "what_if_by_seg_n_boot_200": lambda: log.what_if(CHANGES, by="seg", n_boot=200),
        "drivers": lambda: log.drivers(),
    }


#: the analyses to run (``--only``; default all)
ONLY: list[str] = []


def timed(log) -> tuple[dict[str, float], dict[str, pd.DataFrame]]:
    seconds, tables = {}, {}
    for name, call in calls(log).items():  # loop over the analyses
        if ONLY and name not in ONLY:
            continue
        t = time.perf_counter()
        tables[name] = call()
        seconds[name] = round(time.perf_counter() - t, 2)
    return seconds, tables


def in_memory(path: str, out: str) -> None:
    import funnelkit as fk

    t = time.perf_counter()
    log = fk.read_events(path, **KW)
    log.transitions()
    build = time.perf_counter() - t
    seconds, tables = timed(log)
    for name, table in tables.items():
        table.to_pickle(f"{out}/{name}.pkl")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"build_s": round(build, 2), "seconds": seconds, "peak_rss_mib": rss}))


def distributed(
    path: str, memory_limit: str, npartitions: int
) -> tuple[dict, dict[str, pd.DataFrame]]:
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from funnelkit.dask import DaskEventLog

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, memory_limit=memory_limit,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        t = time.perf_counter()
        events = dd.read_parquet(path, split_row_groups=True)
        log = DaskEventLog(events, npartitions=npartitions, **KW).persist()
        build = time.perf_counter() - t
        seconds, tables = timed(log)
        rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    client_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rec = {"build_s": round(build, 2), "seconds": seconds,
           "worker_peak_rss_mib": sorted(round(v) for v in rss.values()),
           "client_peak_rss_mib": round(client_rss)}  # fmt: skip
    return rec, tables


def deviation(a: pd.DataFrame, b: pd.DataFrame) -> float | str:
    """Largest relative difference of the float columns; 'rows differ' when counts or
    labels do."""
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return "rows differ"
    worst = 0.0
    for c in a.columns:
        x, y = a[c], b[c]
        if pd.api.types.is_timedelta64_dtype(x.dtype):
            x, y = x.dt.total_seconds(), y.dt.total_seconds()
        if pd.api.types.is_float_dtype(x.dtype):
            xv, yv = x.to_numpy(np.float64), y.to_numpy(np.float64)
            both = np.isfinite(xv) & np.isfinite(yv)
            if not (np.isnan(xv) == np.isnan(yv)).all():
                return f"NaN differ in {c}"
            if both.any():
                rel = np.abs(xv[both] - yv[both]) / np.maximum(np.abs(xv[both]), 1e-12)
                worst = max(worst, float(rel.max()))
        else:  # counts and labels: equal, missing where the other is missing
            na = x.isna().to_numpy()
            same_na = (na == y.isna().to_numpy()).all()
            if (
                not same_na
                or (x[~na].astype(str).to_numpy() != y[~na].astype(str).to_numpy()).any()
            ):
                return f"column {c} differs"
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--memory-limit", default="4GB")
    ap.add_argument("--npartitions", type=int, default=16, help="partitions after the shuffle")
    ap.add_argument("--only", nargs="+", default=[], help="run only these analyses")
    ap.add_argument("--in-memory-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    ONLY[:] = args.only
    if args.in_memory_out:
        in_memory(args.path, args.in_memory_out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, __file__, args.path, "--in-memory-out", tmp,
             *(["--only", *args.only] if args.only else [])],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        mem = json.loads(proc.stdout.strip().splitlines()[-1])
        mem_tables = {p.stem: pd.read_pickle(p) for p in Path(tmp).glob("*.pkl")}
    try:
        dist, dist_tables = distributed(args.path, args.memory_limit, args.npartitions)
    except Exception as exc:  # a failed run is a result too: say how it failed
        dist, dist_tables = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}, {}
    dev = {}
    for name, table in mem_tables.items() if dist_tables else ():
        d = deviation(table, dist_tables[name])
        if name.startswith("what_if") and "n_boot_200" in name and isinstance(d, float):
            d = {"point": deviation(table.drop(columns=["change_low", "change_high"]),
                                    dist_tables[name].drop(columns=["change_low", "change_high"])),
                 "interval": d}  # fmt: skip
        dev[name] = d
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "file": args.path, "memory_limit": args.memory_limit, "npartitions": args.npartitions,
        "in_memory": mem, "dask": dist, "deviation": dev,
        "load_avg_1min": os.getloadavg()[0],
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
