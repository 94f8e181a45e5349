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

``profile`` runs funnelkit's job once warm under cProfile and prints where the time goes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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
    lib = "funnelkit" if method == "funnelkit" else "duckdb"
    code = JOB.format(here=str(HERE), lib=lib, method=method, path=str(path))
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, t0 = cpu_busy_seconds(), time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    child = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if proc.returncode:
        raise RuntimeError(f"{method} on {path.name} failed:\n{proc.stderr[-2000:]}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    rec["other"] = max(0.0, (cpu_busy_seconds() - busy0 - child) / wall)
    return rec


def run(n_deals: int, shapes: list[str], runs: int) -> str:
    recs: dict[tuple[str, str], list[dict]] = {}
    for _ in range(runs):
        for shape in shapes:
            for method in ("funnelkit", "duckdb"):
                path = shape_dir(n_deals) / f"{shape}.parquet"
                recs.setdefault((shape, method), []).append(run_once(method, path))
                print(shape, method, recs[(shape, method)][-1], file=sys.stderr)
    events = pq.ParquetFile(shape_dir(n_deals) / "crm.parquet").metadata.num_rows
    lines = [
        f"{n_deals:,} deals, {events:,} events; medians of {runs} runs.",
        "",
        "| shape | funnelkit cold s | DuckDB cold s | cold ratio | funnelkit warm s "
        "| DuckDB warm s | warm ratio | ns/event cold (fk) | peak MiB fk / DuckDB "
        "| other load (max) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for shape in shapes:
        f, d = recs[(shape, "funnelkit")], recs[(shape, "duckdb")]

        def med(rs: list[dict], k: str) -> float:
            return statistics.median(r[k] for r in rs)

        fc, dc, fw, dw = med(f, "cold"), med(d, "cold"), med(f, "warm"), med(d, "warm")
        other = max(r["other"] for r in f + d)
        lines.append(
            f"| {shape} | {fc:.2f} | {dc:.2f} | {fc / dc:.2f} | {fw:.2f} | {dw:.2f} "
            f"| {fw / dw:.2f} | {fc / events * 1e9:.0f} | {med(f, 'peak'):,.0f} / "
            f"{med(d, 'peak'):,.0f} | {other:.2f} |"
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
    args = parser.parse_args(argv)
    if args.cmd == "write":
        for n in args.deals:
            write(n)
    elif args.cmd == "run":
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%a %d %b %Y %H:%M UTC")
        print(f"Machine: {platform.machine()}, Python {platform.python_version()}; {stamp}")
        for n in args.deals:
            print(run(n, args.shapes, args.runs))
    else:
        profile(args.deals, args.shape)


if __name__ == "__main__":
    main()
