"""Cost of ``log.update(new)`` against a full rebuild (issue 24, item 2).

The 1M-deal log of ``benchmarks/generate.py`` is split by time: the latest 1% (or 10%) of
its events are "today's", the rest the stored history. Timed (best of ``--repeat`` runs,
wall clock):

* ``full build``: ``fk.EventLog(all rows)`` from the rows in memory (Arrow);
* ``full from file``: reading the Parquet file of all rows, then the build (what a job
  without a state does each run);
* ``update``: ``old_log.update(new)`` in memory;
* ``load``: ``fk.load(folder)`` of the state of the history (it holds the built log: no
  build);
* ``daily job``: what ``funnelkit report/monitor --state`` does each day — read the state,
  update it with the new events, save it back to its folder (the stored event files are
  kept, the new rows written as one more file, the built log rewritten); on a fresh copy
  of the state each time, in a fresh process, taking turns with ``full from file`` in a
  fresh process (a job without a state);
* ``save``: ``log.save`` of the history to a new folder (every row written).

Each update is checked equal to the full build (funnel and transitions).

    python benchmarks/generate.py 1000000     # once: benchmarks/data/events_1000000.parquet
    python benchmarks/update.py [--deals 1000000] [--repeat 3] [--append]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import funnelkit as fk
from funnelkit._update import MAX_REBUILT

HERE = Path(__file__).resolve().parent
KW = dict(
    deal="deal_id",
    stage="stage",
    time="ts",
    stages=["Lead", "Qualified", "Discovery", "Demo", "Proposal", "Negotiation", "Contract"],
    won="Won",
    lost=["Lost", "Disqualified"],
    amount="amount",
    stale_after="90D",
)


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        out = None  # the previous result is freed before the next run
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


JOB = """
import sys, time
import pyarrow.parquet as pq
from funnelkit import state
day, today = sys.argv[1], sys.argv[2]
t = time.perf_counter()
log = state.update_saved(day, pq.read_table(today))
log.save(day)
print(time.perf_counter() - t)
"""
FROM_FILE = """
import sys, time
import pyarrow.parquet as pq
import funnelkit as fk
from update import KW
t = time.perf_counter()
fk.EventLog(pq.read_table(sys.argv[1]), **KW)
print(time.perf_counter() - t)
"""


def _fresh(code: str, *args: Path) -> float:
    """Seconds the script ``code`` reports, run in a new Python process."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return float(out.stdout.strip().splitlines()[-1])


def split(table: pa.Table, share: float) -> tuple[pa.Table, pa.Table]:
    """History and the latest ``share`` of the events (by time), each in input order."""
    ts = table.column("ts")
    cut = pc.quantile(pc.cast(ts, pa.int64()), q=1 - share)[0].as_py()
    new = pc.greater(pc.cast(ts, pa.int64()), cut)
    return table.filter(pc.invert(new)), table.filter(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--deals", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--shares", type=float, nargs="+", default=[0.01, 0.03, 0.10])
    ap.add_argument("--append", action="store_true", help="append to benchmarks/RESULTS.md")
    args = ap.parse_args()
    path = HERE / "data" / f"events_{args.deals}.parquet"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run python benchmarks/generate.py {args.deals}")
    table = pq.read_table(path)
    n = table.num_rows
    t_full_file, _ = best(lambda: fk.EventLog(pq.read_table(path), **KW), args.repeat)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="fk-update-"))
    try:
        for share in args.shares:
            old, new = split(table, share)
            union = pa.concat_tables([old, new])
            t_full, full = best(lambda u=union: fk.EventLog(u, **KW), args.repeat)
            old_log = fk.EventLog(old, **KW)
            t_upd, got = best(lambda o=old_log, w=new: o.update(w), args.repeat)
            for name in ("funnel", "transitions"):
                pd.testing.assert_frame_equal(getattr(got, name)(), getattr(full, name)())
            folder = tmp / f"state_{share}"
            t_save, _ = best(lambda f=folder, o=old_log: o.save(f), args.repeat)
            t_load, _ = best(lambda f=folder: fk.load(f), args.repeat)
            # the daily job and a job without a state, each in a fresh process (as cron
            # runs them), taking turns
            today = tmp / f"new_{share}.parquet"
            pq.write_table(new, today)
            job_times, file_times = [], []
            for i in range(args.repeat):
                day = tmp / f"day_{share}_{i}"
                shutil.copytree(folder, day)
                job_times.append(_fresh(JOB, day, today))
                file_times.append(_fresh(FROM_FILE, path))
            t_job, t_file_fresh = min(job_times), min(file_times)
            pd.testing.assert_frame_equal(fk.load(day).funnel(), full.funnel())
            touched = int(pc.count_distinct(new.column("deal_id")).as_py())
            hit = pc.is_in(old.column("deal_id"), value_set=pc.unique(new.column("deal_id")))
            rebuilt = (pc.sum(hit).as_py() + new.num_rows) / n
            rows.append(
                {
                    "new events": f"{share:.0%} ({new.num_rows:,})",
                    "deals touched": f"{touched:,}",
                    "rows rebuilt": f"{rebuilt:.0%}",
                    "update path": "splice" if rebuilt <= MAX_REBUILT else "full build",
                    "full build s": round(t_full, 2),
                    "full from file s": round(t_full_file, 2),
                    "update s": round(t_upd, 2),
                    "load s": round(t_load, 2),
                    "save s": round(t_save, 2),
                    "daily job s (fresh process)": round(t_job, 2),
                    "full from file s (fresh process)": round(t_file_fresh, 2),
                    "update / full": round(t_upd / t_full, 2),
                    "job / full from file (fresh)": round(t_job / t_file_fresh, 2),
                }
            )
            del old_log, got, full
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res = pd.DataFrame(rows)
    head = "| " + " | ".join(res.columns) + " |"
    sep = "|" + "---|" * len(res.columns)
    body = ["| " + " | ".join(str(v) for v in r) + " |" for r in res.itertuples(index=False)]
    md = "\n".join([head, sep, *body])
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}"
    text = (
        f"\n## Incremental updates: log.update vs a full rebuild (issue 24 item 2)\n\n"
        f"{time.strftime('%a %b %d %H:%M:%S UTC %Y', time.gmtime())}; {machine}; numpy "
        f"{np.__version__}, pandas {pd.__version__}, pyarrow {pa.__version__}; "
        f"`python benchmarks/update.py --deals {args.deals} --repeat {args.repeat}"
        f" --shares {' '.join(map(str, args.shares))}` on "
        f"`events_{args.deals}.parquet` ({args.deals:,} deals, {n:,} events); the new events "
        f"are the latest by time; seconds, best of {args.repeat}.\n\n{md}\n"
    )
    print(text)
    if args.append:
        with open(HERE / "RESULTS.md", "a", encoding="utf-8") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
