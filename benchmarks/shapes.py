"""funnelkit against DuckDB on files shaped like the exports users have (issue 26).

Usage::

    python benchmarks/shapes.py write 1000000 3000000
    python benchmarks/shapes.py run 1000000 --runs 3 [--shapes crm by_time ...]
    python benchmarks/shapes.py profile 1000000 crm

``write`` makes, from ``benchmarks/data/events_{deals}.parquet`` (``generate.py``), one
Parquet file per shape in ``benchmarks/data/shapes_{deals}/``. Every shape holds the same
deals and events; they differ from the base shape ``crm`` in one respect each:

========== =====================================================================
shape      how it differs from ``crm``
========== =====================================================================
crm        rows in random order, 8-character string ids (``D0522969``), naive
           ``timestamp[ns]``, an ``amount`` and a ``seg`` (8 values) column
by_deal    rows sorted by deal, then time (an export ordered by its id)
by_time    rows sorted by time (an append-only event table)
int_id     deal ids as int64
var_id     deal ids of varying length (``deal-1`` … ``deal-999999``)
uuid       random version-4 UUID strings (36 characters)
aware      ``timestamp[ns, tz=Asia/Shanghai]``
bare       only the three columns deal, stage, time
========== =====================================================================

``run`` times, on each shape, funnelkit's whole pipeline (``read_events`` → validated
``EventLog`` → ``transitions()`` + ``funnel()`` + ``dwell()``; with ``amount=`` and
``attrs=["seg"]`` where the file has them) and DuckDB's partial job
(``baselines.duckdb_job``: a LEAD window, the edge table with mean/median/p90 and the
per-stage counts — no validation, no censoring). Each run is a fresh process: "cold" is
its first call (file read included, imports excluded), "warm" a second call in the same
process; peak = the process's VmHWM. Methods and shapes take turns; "other load" is the
CPU the rest of the machine used during the run (cores). Prints a Markdown table.

``phases`` times each step of funnelkit's job cold (as installed and opted in to the
allocator tuning) and counts the fresh memory each step touches.

``profile`` runs funnelkit's job once warm under cProfile and prints where the time goes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import cpu_busy_seconds, ensure_data  # noqa: E402

SHAPES = ["crm", "by_deal", "by_time", "int_id", "var_id", "uuid", "aware", "bare"]


def shape_dir(n_deals: int) -> Path:
    return HERE / "data" / f"shapes_{n_deals}"


# --------------------------------------------------------------------------- write


def _uuids(number: np.ndarray) -> pa.Array:
    """A seeded random version-4 UUID string per deal number."""
    distinct, inverse = np.unique(number, return_inverse=True)
    rng = np.random.default_rng(0)
    table = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(distinct.size)]
    return pa.array(table, pa.string()).take(pa.array(inverse))


def write(n_deals: int) -> None:
    base = pq.read_table(ensure_data(n_deals))
    number = pc.cast(pc.utf8_slice_codeunits(base["deal_id"], 1), pa.int64())
    num = number.to_numpy()
    ts = pc.cast(pc.local_timestamp(base["ts"]), pa.timestamp("ns"))  # UTC wall clock, naive
    seg = pa.array(np.char.add("S0", (num % 8).astype(str)), pa.string())
    crm = pa.table(
        {
            "deal_id": base["deal_id"],
            "stage": base["stage"],
            "ts": ts,
            "amount": base["amount"],
            "seg": seg,
        }
    )
    shapes = {
        "crm": crm,
        "by_deal": crm.sort_by([("deal_id", "ascending"), ("ts", "ascending")]),
        "by_time": crm.sort_by([("ts", "ascending")]),
        "int_id": crm.set_column(0, "deal_id", number),
        "var_id": crm.set_column(
            0, "deal_id", pc.binary_join_element_wise("deal-", pc.cast(number, pa.string()), "")
        ),
        "uuid": crm.set_column(0, "deal_id", _uuids(num)),
        "aware": crm.set_column(
            2, "ts", pc.cast(base["ts"], pa.timestamp("ns", tz="Asia/Shanghai"))
        ),
        "bare": crm.select(["deal_id", "stage", "ts"]),
    }
    out = shape_dir(n_deals)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in shapes.items():
        pq.write_table(table, out / f"{name}.parquet", row_group_size=1_000_000)
        print(f"{out / name}.parquet: {table.num_rows:,} rows, {table.schema.types}")


# --------------------------------------------------------------------------- jobs


def funnelkit_job(path: str) -> dict:
    """funnelkit's whole validated pipeline, carrying the columns the file has."""
    import baselines

    fk = baselines._import_funnelkit()
    names = pq.read_schema(path).names
    log = fk.read_events(
        path,
        deal="deal_id",
        stage="stage",
        time="ts",
        stages=baselines.STAGES,
        won=baselines.WON,
        lost=baselines.LOST,
        amount="amount" if "amount" in names else None,
        attrs=["seg"] if "seg" in names else [],
    )
    return {"transitions": log.transitions(), "funnel": log.funnel(), "dwell": log.dwell()}


def duckdb_job(path: str) -> dict:
    """``baselines.duckdb_job`` with the time difference read by ``epoch_ns``, which
    DuckDB defines for every timestamp type a shape has (``epoch_us`` has no
    ``TIMESTAMPTZ_NS`` form)."""
    import baselines

    query = baselines.DUCKDB_EVENTS.replace("epoch_us", "epoch_ns").replace("/ 1e6", "/ 1e9")
    assert query != baselines.DUCKDB_EVENTS
    events, baselines.DUCKDB_EVENTS = baselines.DUCKDB_EVENTS, query
    try:
        return baselines.duckdb_job(path)
    finally:
        baselines.DUCKDB_EVENTS = events


JOB = """
import json, sys, time, gc
sys.path.insert(0, {here!r})
import shapes, baselines
baselines.prepare({lib!r})
job = shapes.{method}_job
t = time.perf_counter(); r = job({path!r}); cold = time.perf_counter() - t
del r; gc.collect()
t = time.perf_counter(); r = job({path!r}); warm = time.perf_counter() - t
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0]
print(json.dumps({{"cold": cold, "warm": warm, "peak": int(hwm.split()[1]) / 1024}}))
"""


def run_once(method: str, path: Path) -> dict:
    """One fresh process running ``method`` ("funnelkit", "tuned": funnelkit with the
    opt-in allocator tuning ``FUNNELKIT_MALLOC=1``, or "duckdb") twice on ``path``."""
    job = "duckdb" if method == "duckdb" else "funnelkit"
    code = JOB.format(here=str(HERE), lib=job, method=job, path=str(path))
    env = {**os.environ, "FUNNELKIT_MALLOC": "1" if method == "tuned" else "0"}
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, t0 = cpu_busy_seconds(), time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env
    )
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if proc.returncode:
        raise RuntimeError(f"{method} on {path.name} failed:\n{proc.stderr[-2000:]}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    rec["other"] = max(0.0, (cpu_busy_seconds() - busy0 - child) / wall)
    return rec


METHODS = ("funnelkit", "tuned", "duckdb")


def run(n_deals: int, shapes: list[str], runs: int) -> str:
    recs: dict[tuple[str, str], list[dict]] = {}
    for _ in range(runs):
        for shape in shapes:
            for method in METHODS:
                path = shape_dir(n_deals) / f"{shape}.parquet"
                recs.setdefault((shape, method), []).append(run_once(method, path))
                print(shape, method, recs[(shape, method)][-1], file=sys.stderr)
    events = pq.ParquetFile(shape_dir(n_deals) / "crm.parquet").metadata.num_rows

    def med(shape: str, method: str, k: str) -> float:
        return statistics.median(r[k] for r in recs[(shape, method)])

    lines = [
        f"{n_deals:,} deals, {events:,} events; medians of {runs} runs. fk = funnelkit as "
        "installed; tuned = funnelkit with the opt-in allocator tuning "
        "(`FUNNELKIT_MALLOC=1`); ratio = funnelkit / DuckDB.",
        "",
        "| shape | fk cold s | tuned cold s | DuckDB cold s | cold ratio fk / tuned "
        "| fk warm s | tuned warm s | DuckDB warm s | warm ratio fk / tuned "
        "| ns/event cold fk / tuned | peak MiB fk / tuned / DuckDB | other load (max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for shape in shapes:
        c = {m: med(shape, m, "cold") for m in METHODS}
        w = {m: med(shape, m, "warm") for m in METHODS}
        pk = {m: med(shape, m, "peak") for m in METHODS}
        other = max(r["other"] for m in METHODS for r in recs[(shape, m)])
        fk, tu, dd = c["funnelkit"], c["tuned"], c["duckdb"]
        lines.append(
            f"| {shape} | {fk:.2f} | {tu:.2f} | {dd:.2f} | {fk / dd:.2f} / {tu / dd:.2f} "
            f"| {w['funnelkit']:.2f} | {w['tuned']:.2f} | {w['duckdb']:.2f} "
            f"| {w['funnelkit'] / w['duckdb']:.2f} / {w['tuned'] / w['duckdb']:.2f} "
            f"| {fk / events * 1e9:.0f} / {tu / events * 1e9:.0f} "
            f"| {pk['funnelkit']:,.0f} / {pk['tuned']:,.0f} / {pk['duckdb']:,.0f} "
            f"| {other:.2f} |"
        )
    return "\n".join(lines)


PROBE = """
import time, numpy as np
if {off}:
    np._core.multiarray._set_madvise_hugepage(False)
t = time.perf_counter(); a = np.ones(1 << 27); print(time.perf_counter() - t)
"""


def fresh_memory_probe(repeats: int = 3) -> str:
    """Seconds to touch 1 GiB of fresh memory in a new process, with numpy's default
    transparent-huge-page advice and without it: the cost that decides cold times on a
    VM (the host backs the guest's memory on first touch)."""
    out = []
    for off in (False, True):
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", PROBE.format(off=off)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(repeats)
        ]
        out.append(f"{min(runs):.2f}–{max(runs):.2f} s")
    return (
        f"Fresh memory (1 GiB first touched in a new process, {repeats} runs): "
        f"{out[0]} with numpy's default huge-page advice, {out[1]} without it."
    )


PHASES = """
import json, sys, time
sys.path.insert(0, {here!r})
import baselines, pyarrow.parquet as pq
fk = baselines._import_funnelkit()
names = pq.read_schema({path!r}).names
t = time.perf_counter(); tab = pq.read_table({path!r}); out = {{"read": time.perf_counter() - t}}
t = time.perf_counter()
log = fk.EventLog(tab, deal="deal_id", stage="stage", time="ts", stages=baselines.STAGES,
                  won=baselines.WON, lost=baselines.LOST,
                  amount="amount" if "amount" in names else None,
                  attrs=["seg"] if "seg" in names else [])
out["build"] = time.perf_counter() - t
for name in ("transitions", "funnel", "dwell"):
    t = time.perf_counter(); getattr(log, name)(); out[name] = time.perf_counter() - t
print(json.dumps(out))
"""


TOUCHED = """
import json, resource, sys, time
import numpy as np
np._core.multiarray._set_madvise_hugepage(False)  # 4 KiB pages: one fault per page
sys.path.insert(0, {here!r})
import baselines, pyarrow.parquet as pq
fk = baselines._import_funnelkit()
names = pq.read_schema({path!r}).names
tab = pq.read_table({path!r})
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
out = {{}}
f = faults()
log = fk.EventLog(tab, deal="deal_id", stage="stage", time="ts", stages=baselines.STAGES,
                  won=baselines.WON, lost=baselines.LOST,
                  amount="amount" if "amount" in names else None,
                  attrs=["seg"] if "seg" in names else [])
out["build"] = (faults() - f) * 4096 / 2**30
for name in ("transitions", "funnel", "dwell"):
    f = faults(); getattr(log, name)(); out[name] = (faults() - f) * 4096 / 2**30
print(json.dumps(out))
"""


def touched(n_deals: int, shape: str) -> str:
    """GiB of fresh memory each step touches (page faults with 4 KiB pages, glibc's
    default allocator settings): the cost that does not depend on the VM's mood."""
    path = str(shape_dir(n_deals) / f"{shape}.parquet")
    proc = subprocess.run(
        [sys.executable, "-c", TOUCHED.format(here=str(HERE), path=path)],
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    return f"Fresh memory touched per step, {shape} at {n_deals:,} deals (GiB): " + ", ".join(
        f"{k} {v:.2f}" for k, v in got.items()
    )


def phases(n_deals: int, shape: str, runs: int) -> str:
    """Cold seconds of each step of funnelkit's job (fresh process each run), as
    installed and with the opt-in allocator tuning, runs alternating."""
    path = str(shape_dir(n_deals) / f"{shape}.parquet")
    code = PHASES.format(here=str(HERE), path=path)
    got: dict[str, list[dict]] = {"0": [], "1": []}
    for _ in range(runs):
        for flag in got:
            env = {**os.environ, "FUNNELKIT_MALLOC": flag}
            proc = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
            )
            got[flag].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    steps = list(got["0"][0])
    lines = [
        f"Cold seconds per step, {shape} at {n_deals:,} deals (median of {runs}):",
        "",
        "| | " + " | ".join(steps) + " | total |",
        "|---|" + "---|" * (len(steps) + 1),
    ]
    for flag, label in (("0", "as installed"), ("1", "FUNNELKIT_MALLOC=1")):
        med = [statistics.median(r[k] for r in got[flag]) for k in steps]
        lines.append(
            f"| {label} | " + " | ".join(f"{x:.2f}" for x in med) + f" | {sum(med):.2f} |"
        )
    return "\n".join(lines)


def profile(n_deals: int, shape: str) -> None:
    import cProfile
    import pstats

    path = str(shape_dir(n_deals) / f"{shape}.parquet")
    funnelkit_job(path)  # warm
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    funnelkit_job(path)
    prof.disable()
    print(f"warm job {time.perf_counter() - t:.2f} s")
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("deals", nargs="+", type=int)
    r = sub.add_parser("run")
    r.add_argument("deals", nargs="+", type=int)
    r.add_argument("--runs", type=int, default=3)
    r.add_argument("--shapes", nargs="+", default=SHAPES, choices=SHAPES)
    p = sub.add_parser("profile")
    p.add_argument("deals", type=int)
    p.add_argument("shape", choices=SHAPES)
    ph = sub.add_parser("phases")
    ph.add_argument("deals", type=int)
    ph.add_argument("shape", choices=SHAPES)
    ph.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.cmd == "write":
        for n in args.deals:
            write(n)
    elif args.cmd == "run":
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%a %d %b %Y %H:%M UTC")
        print(f"Machine: {platform.machine()}, Python {platform.python_version()}; {stamp}")
        print(fresh_memory_probe())
        for n in args.deals:
            print(run(n, args.shapes, args.runs))
        print(fresh_memory_probe())
    elif args.cmd == "phases":
        print(fresh_memory_probe())
        print(phases(args.deals, args.shape, args.runs))
        print(touched(args.deals, args.shape))
    else:
        profile(args.deals, args.shape)


if __name__ == "__main__":
    main()
