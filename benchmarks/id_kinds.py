"""How the kind of deal id changes funnelkit's pipeline time.

Usage::

    python benchmarks/id_kinds.py [--deals 1000000] [--runs 3]

From ``benchmarks/data/events_{deals}.parquet`` (made by ``generate.py``) this writes
copies whose deal ids differ only in form — ``D0000001`` (fixed width, the original),
``deal-1`` (varying length), ``1`` (int64), a 36-character id with a constant prefix
(``3f2b6c1e-9a4d-4e8b-b7c2-000000000001``: byte-wise keys) and random UUIDs (hashed) —
and times the benchmark's funnelkit job on each
(read → EventLog → transitions + funnel + dwell), each run in a fresh process, kinds
taking turns. Prints a Markdown table: median cold time and peak RSS per kind.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

JOB = """
import json, sys, time
sys.path.insert(0, {here!r})
import baselines
baselines.prepare("funnelkit")
t = time.perf_counter()
baselines.funnelkit_job({path!r})
s = time.perf_counter() - t
# VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak over
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0]
print(json.dumps({{"s": s, "rss": int(hwm.split()[1]) / 1024}}))
"""


def _random_uuids(number: pa.ChunkedArray) -> pa.Array:
    """A seeded random version-4 UUID string per deal number."""
    values = np.asarray(number.to_numpy())
    rng = np.random.default_rng(0)
    distinct = np.unique(values)
    table = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(distinct.size)]
    return pa.array(table).take(pa.array(np.searchsorted(distinct, values)))


NAMES = [
    "fixed width (D0000001)",
    "varying length (deal-1)",
    "int64 (1)",
    "36-char, constant prefix",
    "random UUID (hashed)",
]


def _variants(n: int) -> dict[str, Path]:
    """The log's copies, one per id kind (written once; the timed processes start from a
    parent that holds no table)."""
    out = {name: DATA / f"events_{n}_ids{i}.parquet" for i, name in enumerate(NAMES)}
    if all(p.exists() for p in out.values()):
        return out
    src = DATA / f"events_{n}.parquet"
    if not src.exists():
        sys.exit(f"{src} is missing: run `python benchmarks/generate.py {n}` first.")
    code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import id_kinds; id_kinds._write({n})"
    subprocess.run([sys.executable, "-c", code], check=True)
    return out


def _write(n: int) -> None:
    table = pq.read_table(DATA / f"events_{n}.parquet")
    ids = table["deal_id"]
    digits = pc.utf8_slice_codeunits(ids, 1)  # "0000001"
    number = pc.cast(digits, pa.int64())
    forms = [
        ids,
        pc.binary_join_element_wise("deal", pc.cast(number, pa.string()), "-"),
        number,
        pc.binary_join_element_wise("3f2b6c1e-9a4d-4e8b-b7c2", pc.utf8_lpad(digits, 12, "0"), "-"),
        _random_uuids(number),
    ]
    for i, col in enumerate(forms):
        path = DATA / f"events_{n}_ids{i}.parquet"
        if not path.exists():
            pq.write_table(table.set_column(0, "deal_id", col), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    paths = _variants(args.deals)
    times: dict[str, list[float]] = {k: [] for k in paths}
    rss: dict[str, list[float]] = {k: [] for k in paths}
    for run in range(args.runs):
        for name, path in paths.items():
            code = JOB.format(here=str(HERE), path=str(path))
            res = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
            rec = json.loads(res.stdout.strip().splitlines()[-1])
            times[name].append(rec["s"])
            rss[name].append(rec["rss"])
            print(f"[run {run + 1}/{args.runs}] {name}: {rec['s']:.3f} s", file=sys.stderr)
    print(f"| deal id ({args.deals:,} deals) | cold s (median of {args.runs}) | peak RSS MiB |")
    print("|---|---|---|")
    for name in paths:
        print(f"| {name} | {statistics.median(times[name]):.2f} | {max(rss[name]):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
