"""How the kind of deal id changes funnelkit's pipeline time.

Usage::

    python benchmarks/id_kinds.py [--deals 1000000] [--runs 3]

From ``benchmarks/data/events_{deals}.parquet`` (made by ``generate.py``) this writes
copies whose deal ids differ only in form — ``D0000001`` (fixed width, the original),
``deal-1`` (varying length), ``1`` (int64) and a 36-character UUID-like string (too
long for byte-wise keys: hashed) — and times the benchmark's funnelkit job on each
(read → EventLog → transitions + funnel + dwell), each run in a fresh process, kinds
taking turns. Prints a Markdown table: median cold time and peak RSS per kind.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

JOB = """
import json, resource, sys, time
sys.path.insert(0, {here!r})
import baselines
baselines.prepare("funnelkit")
t = time.perf_counter()
baselines.funnelkit_job({path!r})
print(json.dumps({{"s": time.perf_counter() - t,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def _variants(n: int) -> dict[str, Path]:
    src = DATA / f"events_{n}.parquet"
    if not src.exists():
        sys.exit(f"{src} is missing: run `python benchmarks/generate.py {n}` first.")
    table = pq.read_table(src)
    ids = table["deal_id"]
    digits = pc.utf8_slice_codeunits(ids, 1)  # "0000001"
    number = pc.cast(digits, pa.int64())
    forms = {
        "fixed width (D0000001)": ids,
        "varying length (deal-1)": pc.binary_join_element_wise(
            "deal", pc.cast(number, pa.string()), "-"
        ),
        "int64 (1)": number,
        "36-char UUID-like (hashed)": pc.binary_join_element_wise(
            "3f2b6c1e-9a4d-4e8b-b7c2", pc.utf8_lpad(digits, 12, "0"), "-"
        ),
    }
    out = {}
    for i, (name, col) in enumerate(forms.items()):
        path = DATA / f"events_{n}_ids{i}.parquet"
        if not path.exists():
            pq.write_table(table.set_column(0, "deal_id", col), path)
        out[name] = path
    return out


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
