"""Run one benchmark job in this (fresh) process; write the measurements as JSON.

Used by ``run.py``; not meant to be called by hand, but it can be::

    python benchmarks/worker.py duckdb benchmarks/data/events_100000.parquet out.json

Times the imports, a first ("cold") call and, unless ``--no-warm``, a second ("warm")
call of the same job in the same process. Peak RSS is this process's ``ru_maxrss``.
With ``--dump DIR`` the cold call's result, normalised for the cross-check, is pickled
to ``DIR/{method}.pkl`` after all timings.
"""

from __future__ import annotations

import argparse
import gc
import json
import pickle
import resource
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baselines


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("method", choices=sorted(baselines.JOBS))
    parser.add_argument("path")
    parser.add_argument("out")
    parser.add_argument("--no-warm", action="store_true")
    parser.add_argument("--dump", type=Path)
    args = parser.parse_args(argv)

    record: dict = {"method": args.method, "path": args.path}
    stage = "import"
    try:
        t = time.perf_counter()
        record["versions"] = baselines.prepare(args.method)
        record["import_s"] = time.perf_counter() - t
        record["rss_after_import_mib"] = _rss_mib()
        job = baselines.JOBS[args.method]

        stage = "cold call"
        t = time.perf_counter()
        result = job(args.path)
        record["cold_s"] = time.perf_counter() - t
        record["peak_rss_cold_mib"] = _rss_mib()

        if not args.no_warm:
            kept = result if args.dump else None
            del result
            gc.collect()
            stage = "warm call"
            t = time.perf_counter()
            result = job(args.path)
            record["warm_s"] = time.perf_counter() - t
            if kept is not None:
                result = kept
        record["peak_rss_mib"] = _rss_mib()

        if args.dump:
            stage = "dump"
            args.dump.mkdir(parents=True, exist_ok=True)
            with open(args.dump / f"{args.method}.pkl", "wb") as f:
                pickle.dump(baselines.normalise(args.method, result), f)
        record["ok"] = True
    except Exception as exc:
        record["ok"] = False
        record["failed_in"] = stage
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
        record["peak_rss_mib"] = _rss_mib()
    Path(args.out).write_text(json.dumps(record))
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
