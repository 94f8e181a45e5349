"""Scale-out benchmark: funnelkit.dask on a local cluster of memory-limited workers.

Run by hand (it takes minutes and several GB of RAM and disk)::

    # a folder of Parquet chunks: ~6.5 events per deal, rows shuffled within each chunk
    python benchmarks/dask_bench.py generate 5000000
    # the big run: 2 workers x 1.5 GB, far less than the log needs in memory
    python benchmarks/dask_bench.py run 5000000 --workers 2 --memory-limit 1.5GB
    # in-memory vs dask on a log both can hold
    python benchmarks/dask_bench.py compare 1000000
    # all three, report appended to benchmarks/RESULTS.md
    python benchmarks/dask_bench.py all --big 5000000 --small 1000000 --append

Data goes to ``benchmarks/data/dask_{n}/part-*.parquet`` (gitignored). The deals are
simulated with ``generate.py``'s walk, one chunk of deals at a time with its own seed and
an id offset (``"D00000001"``, ...), so memory stays bounded while writing.

What is measured, each run on a fresh ``distributed.LocalCluster`` (processes, 1 thread
per worker): wall time of building the :class:`~funnelkit.dask.DaskEventLog` (the
time-zone/``as_of`` pass, the shuffle by deal and the per-partition summaries) and of
``transitions()``, ``funnel()``, ``dwell()``, ``cycle_time()``, ``kpis()`` and
``key_stages(signals="leverage")`` on the merged summary; the peak RSS of every worker
process (``ru_maxrss``, read from the workers at the end: a restarted worker would show up
as a changed pid, which is reported) and of the client. The in-memory comparison runs
``fk.read_events`` + the same analyses in a fresh subprocess (its ``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import ALL_STAGES, LOST, OPEN_STAGES, WON, simulate  # noqa: E402

DATA_DIR = HERE / "data"
RESULTS = HERE / "RESULTS.md"
CHUNK_DEALS = 250_000
ROWS_PER_GROUP = 250_000
KW = dict(
    deal="deal_id",
    stage="stage",
    time="ts",
    amount="amount",
    stages=OPEN_STAGES,
    won=WON,
    lost=LOST,
    stale_after="90D",
)


def data_dir(n_deals: int) -> Path:
    return DATA_DIR / f"dask_{n_deals}"


def _ids(deal: np.ndarray, offset: int, width: int = 8) -> pa.Array:
    """Fixed-width ids ``"D00000001"`` (1-based, after ``offset``) as one byte buffer."""
    numbers = deal.astype(np.int64) + offset + 1
    chars = np.empty((deal.size, width + 1), dtype=np.uint8)
    chars[:, 0] = ord("D")
    for k in range(width):
        chars[:, width - k] = (numbers // 10**k) % 10 + ord("0")
    offsets = np.arange(0, (deal.size + 1) * (width + 1), width + 1, dtype=np.int32)
    return pa.StringArray.from_buffers(
        deal.size, pa.py_buffer(offsets), pa.py_buffer(chars.reshape(-1))
    )


def generate(n_deals: int, seed: int = 20240601) -> Path:
    """Write ``n_deals`` deals as Parquet chunks of ``CHUNK_DEALS`` deals each."""
    out = data_dir(n_deals)
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    rows = 0
    for k, start in enumerate(range(0, n_deals, CHUNK_DEALS)):
        n = min(CHUNK_DEALS, n_deals - start)
        deal, stage_code, ts, amount = simulate(n, seed + k)
        perm = np.random.default_rng(seed + 10_000 + k).permutation(deal.size)
        deal, stage_code, ts, amount = deal[perm], stage_code[perm], ts[perm], amount[perm]
        stage = pa.DictionaryArray.from_arrays(
            pa.array(stage_code, pa.int8()), pa.array(ALL_STAGES, pa.string())
        ).cast(pa.string())
        table = pa.table(
            {
                "deal_id": _ids(deal, start),
                "stage": stage,
                "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "amount": pa.array(amount, pa.float64()),
            }
        )
        pq.write_table(table, out / f"part-{k:04d}.parquet", row_group_size=ROWS_PER_GROUP)
        rows += table.num_rows
    size = sum(f.stat().st_size for f in out.glob("*.parquet"))
    print(
        f"{out}: {n_deals:,} deals, {rows:,} events in {len(list(out.glob('*.parquet')))} "
        f"files, {size / 2**20:.0f} MiB, {time.perf_counter() - t:.0f} s"
    )
    return out


def _ensure(n_deals: int) -> Path:
    path = data_dir(n_deals)
    if not path.exists() or not any(path.glob("*.parquet")):
        generate(n_deals)
    return path


def comparison_tables(log) -> dict:
    """The tables compared between the in-memory and the distributed log (not timed)."""
    return {
        "quality": log.quality.to_frame(),
        "transitions": log.transitions(),
        "funnel": log.funnel(),
        "funnel_strict": log.funnel(skips="strict"),
        "funnel_amount": log.funnel(weight="amount"),
        "dwell": log.dwell(),
        "dwell_first": log.dwell(visits="first"),
        "dwell_repeat": log.dwell(visits="repeat"),
        "cycle_time": log.cycle_time(),
        "kpis": log.kpis(),
        "leverage": log.key_stages(signals="leverage", n_boot=0),
    }


def accuracy(mem: dict, dist: dict) -> dict:
    """Exact equality of counts and labels; largest relative deviation of floats and of
    durations, per table."""
    import pandas as pd

    out: dict = {"exact_equal": True, "float_rel": {}, "duration_rel": {}}
    for name, a in mem.items():
        b = dist[name]
        worst = 0.0
        for col in a.columns:
            x, y = a[col], b[col]
            if pd.api.types.is_timedelta64_dtype(x.dtype):
                xi = x.to_numpy("m8[ns]").view(np.int64).astype(float)
                yi = y.to_numpy("m8[ns]").view(np.int64).astype(float)
                ok = (x.notna() & y.notna()).to_numpy() & (xi != 0)
                if ok.any():
                    worst = max(worst, float(np.max(np.abs(yi[ok] - xi[ok]) / np.abs(xi[ok]))))
            elif pd.api.types.is_float_dtype(x.dtype):
                xf, yf = x.to_numpy(float), y.to_numpy(float)
                ok = np.isfinite(xf) & (xf != 0)
                if ok.any():
                    rel = float(np.max(np.abs(yf[ok] - xf[ok]) / np.abs(xf[ok])))
                    out["float_rel"][name] = max(out["float_rel"].get(name, 0.0), rel)
            elif x.astype(object).tolist() != y.astype(object).tolist():
                out["exact_equal"] = False
        if worst:
            out["duration_rel"][name] = worst
    return out


def _worker_state() -> dict:
    import psutil  # a dependency of distributed

    return {
        "pid": os.getpid(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_mib": psutil.Process().memory_info().rss / 2**20,
    }


def run_dask(n_deals: int, workers: int, memory_limit: str, npartitions: int | None) -> dict:
    """Build the distributed log and run the analyses on a fresh local cluster."""
    import dask
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from funnelkit.dask import DaskEventLog

    path = _ensure(n_deals)
    rec: dict = {
        "n_deals": n_deals,
        "workers": workers,
        "memory_limit": memory_limit,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        pids = {w: s["pid"] for w, s in client.run(_worker_state).items()}
        events = dd.read_parquet(path, split_row_groups=True)
        rec["input_partitions"] = events.npartitions
        nparts = npartitions or events.npartitions
        rec["partitions"] = nparts
        t = time.perf_counter()
        log = DaskEventLog(events, npartitions=nparts, **KW)
        rec["build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        tables = {
            "transitions": log.transitions(),
            "funnel": log.funnel(),
            "dwell": log.dwell(),
            "cycle_time": log.cycle_time(),
            "kpis": log.kpis(),
            "leverage": log.key_stages(signals="leverage", n_boot=200),
        }
        rec["analyses_s"] = time.perf_counter() - t
        rec["events"] = log.quality.rows_used
        rec["rows_in"] = log.quality.rows_in
        rec["deals"] = log.quality.deals
        rec["summary_rows"] = {k: len(v) for k, v in log.summary.tables.items()}
        rec["binned_groups"] = {
            k: float(log.summary.tables[k]["binned"].mean())
            for k in ("transition_dwell", "dwell", "cycle")
            if len(log.summary.tables[k])
        }
        state = client.run(_worker_state)
        rec["worker_peak_rss_mib"] = sorted(s["peak_rss_mib"] for s in state.values())
        rec["worker_restarts"] = sum(
            1 for w, s in state.items() if w not in pids or pids[w] != s["pid"]
        ) + max(0, workers - len(state))
        rec["client_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rec["dask"] = dask.__version__
        rec["funnel_head"] = tables["funnel"][["stage", "reached", "conversion"]].to_dict("list")
        rec["dwell_median_days"] = (
            tables["dwell"]["median"].dt.total_seconds().div(86400).round(2).tolist()
        )
        rec["_tables"] = comparison_tables(log)
    rec["load_avg_1min"] = os.getloadavg()[0]
    return rec


_IN_MEMORY = textwrap.dedent(
    """
    import json, resource, sys, time
    import funnelkit as fk
    sys.path.insert(0, sys.argv[4])
    from dask_bench import comparison_tables
    kw = json.loads(sys.argv[2])
    t = time.perf_counter()
    log = fk.read_events(sys.argv[1], **kw)
    build = time.perf_counter() - t
    t = time.perf_counter()
    log.transitions(); f = log.funnel(); d = log.dwell(); log.cycle_time(); log.kpis()
    log.key_stages(signals="leverage", n_boot=200)
    analyses = time.perf_counter() - t
    for name, table in comparison_tables(log).items():
        table.to_pickle(f"{sys.argv[3]}/{name}.pkl")
    print(json.dumps({
        "build_s": build, "analyses_s": analyses,
        "events": log.quality.rows_used, "deals": log.quality.deals,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "funnel_head": f[["stage", "reached", "conversion"]].to_dict("list"),
        "dwell_median_days": d["median"].dt.total_seconds().div(86400).round(2).tolist(),
    }))
    """
)


def run_in_memory(n_deals: int) -> dict:
    import tempfile

    import pandas as pd

    path = _ensure(n_deals)
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", _IN_MEMORY, str(path), json.dumps(KW), tmp, str(HERE)],
            check=True,
            capture_output=True,
            text=True,
        )
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        # written by this script's own subprocess a moment ago
        rec["_tables"] = {f.stem: pd.read_pickle(f) for f in Path(tmp).glob("*.pkl")}
    rec["load_avg_1min"] = os.getloadavg()[0]
    return rec


def _load(rec: dict) -> str:
    load = rec.get("load_avg_1min")
    return "n/a" if load is None else f"{load:.1f}"


def _fmt_mib(values) -> str:
    return " / ".join(f"{v:,.0f}" for v in values)


def report(big: dict | None, small_mem: dict | None, small_dask: dict | None) -> str:
    import dask

    import funnelkit as fk

    now = next(
        (r["date"] for r in (big, small_dask) if r is not None and "date" in r),
        dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    lines = [
        "",
        "## Dask scale-out",
        "",
        f"`python benchmarks/dask_bench.py all --big {big['n_deals'] if big else '-'} "
        f"--small {small_dask['n_deals'] if small_dask else '-'}` — {now}; {platform.processor() or platform.machine()}, "
        f"nproc={os.cpu_count()}; Python {platform.python_version()}, dask {dask.__version__}, "
        f"funnelkit {fk.__version__}. Data: `generate.py`'s walk written as Parquet chunks of "
        f"{CHUNK_DEALS:,} deals (rows shuffled within a chunk, row groups of "
        f"{ROWS_PER_GROUP:,}); `DaskEventLog` on a fresh `LocalCluster` (processes, 1 thread "
        "per worker); analyses: transitions, funnel, dwell, cycle_time, kpis, "
        "key_stages(signals='leverage', n_boot=200). Peak memory is each process's ru_maxrss; "
        "load avg is the machine's 1-minute load average at the end of the run (other "
        "processes share the 2 cores, so timings are noisy).",
        "",
    ]
    if big is not None:
        lines += [
            "| deals | input rows | events | workers × limit | partitions | build | analyses | peak RSS per worker (MiB) | client peak (MiB) | worker restarts | load avg |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            f"| {big['deals']:,} | {big['rows_in']:,} | {big['events']:,} | "
            f"{big['workers']} × {big['memory_limit']} | "
            f"{big['input_partitions']} → {big['partitions']} | {big['build_s']:.0f} s | "
            f"{big['analyses_s']:.1f} s | {_fmt_mib(big['worker_peak_rss_mib'])} | "
            f"{big['client_peak_rss_mib']:,.0f} | {big['worker_restarts']} | "
            f"{_load(big)} |",
            "",
        ]
        if big.get("note"):
            lines += [big["note"], ""]
    if small_mem is not None and small_dask is not None:
        same = (
            small_mem["funnel_head"]["reached"] == small_dask["funnel_head"]["reached"]
            and np.allclose(
                small_mem["funnel_head"]["conversion"],
                small_dask["funnel_head"]["conversion"],
                rtol=1e-9,
                atol=0,
            )
            and small_mem["events"] == small_dask["events"]
        )
        lines += [
            "In memory vs dask on a log both can hold:",
            "",
            "| deals | events | path | build | analyses | total | peak RSS (MiB) | load avg |",
            "|---|---|---|---|---|---|---|---|",
            f"| {small_mem['deals']:,} | {small_mem['events']:,} | in memory (`fk.read_events`) | "
            f"{small_mem['build_s']:.1f} s | {small_mem['analyses_s']:.1f} s | "
            f"{small_mem['build_s'] + small_mem['analyses_s']:.1f} s | "
            f"{small_mem['peak_rss_mib']:,.0f} | {_load(small_mem)} |",
            f"| {small_dask['deals']:,} | {small_dask['events']:,} | dask, "
            f"{small_dask['workers']} × {small_dask['memory_limit']}, "
            f"{small_dask['partitions']} partitions | {small_dask['build_s']:.1f} s | "
            f"{small_dask['analyses_s']:.1f} s | "
            f"{small_dask['build_s'] + small_dask['analyses_s']:.1f} s | workers "
            f"{_fmt_mib(small_dask['worker_peak_rss_mib'])}, client "
            f"{small_dask['client_peak_rss_mib']:,.0f} | "
            f"{_load(small_dask)} |",
            "",
            f"Funnel counts identical and conversions equal to 1e-9: {same}; dwell medians (days) in memory "
            f"{small_mem['dwell_median_days']}, dask {small_dask['dwell_median_days']} (the "
            "dwell groups have more than 1024 distinct durations, so they are binned: "
            "within 0.5% per value, 1% stated).",
            "",
        ]
        acc = small_dask.get("accuracy")
        if acc:
            dev = ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc["duration_rel"].items())
            num = ", ".join(f"{k} {v:.1e}" for k, v in acc["float_rel"].items())
            lines += [
                "Accuracy on that log (quality report, transitions, funnel — implied, strict, "
                "weighted —, dwell — all, first, repeat visits —, cycle time, KPIs, leverage "
                f"with n_boot=0): counts and labels identical: {acc['exact_equal']}; largest "
                f"relative deviation of durations, per table: {dev}; of other numbers: {num} "
                "(the KPIs' pipeline velocity divides by the sketched median won cycle time).",
                "",
            ]
    if big is not None and small_mem is not None and small_dask is not None:
        scale = big["rows_in"] / small_dask["rows_in"]
        lines += [
            f"Reading: in memory, {small_mem['deals']:,} deals already peak at "
            f"{small_mem['peak_rss_mib'] / 1024:.2f} GiB — more than one worker's "
            f"{big['memory_limit']} limit — and the big log has {scale:.1f}× the rows; the "
            f"distributed build stays at {max(big['worker_peak_rss_mib']) / 1024:.2f} GiB per "
            "worker because each partition (whole deals) is summarised on its own and only "
            "the summaries are merged. On the same log the dask path takes "
            f"{(small_dask['build_s'] + small_dask['analyses_s']) / (small_mem['build_s'] + small_mem['analyses_s']):.1f}× "
            "the in-memory time on this 2-core machine: the shuffle by deal dominates "
            "(the per-partition kernel and summary take about 0.3 s per 230,000 rows); "
            "the analyses on the merged summary take seconds (the leverage bootstrap draws "
            "pattern counts instead of resampling deals).",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("deals", type=int)
    r = sub.add_parser("report", help="render (and --append) the records of a --json file")
    r.add_argument("json", type=Path)
    r.add_argument("--append", action="store_true")
    for name in ("run", "compare", "all"):
        p = sub.add_parser(name)
        if name == "all":
            p.add_argument("--big", type=int, default=5_000_000)
            p.add_argument("--small", type=int, default=1_000_000)
        else:
            p.add_argument("deals", type=int)
        p.add_argument("--workers", type=int, default=2)
        p.add_argument("--memory-limit", default="1.5GB")
        p.add_argument("--npartitions", type=int, default=None)
        p.add_argument("--append", action="store_true", help="append to RESULTS.md")
        p.add_argument("--json", type=Path, help="also write the raw records here")
    args = parser.parse_args(argv)
    if args.cmd == "generate":
        generate(args.deals)
        return
    if args.cmd == "report":
        rec = json.loads(args.json.read_text())
        text = report(rec["big"], rec["mem"], rec["dask"])
        print(text)
        if args.append:
            with open(RESULTS, "a") as f:
                f.write(text)
        return
    big = small_mem = small_dask = None
    if args.cmd in ("run", "all"):
        n = args.deals if args.cmd == "run" else args.big
        big = run_dask(n, args.workers, args.memory_limit, args.npartitions)
        big.pop("_tables")
        print(json.dumps(big, indent=1))
    if args.cmd in ("compare", "all"):
        n = args.deals if args.cmd == "compare" else args.small
        small_mem = run_in_memory(n)
        print(json.dumps({k: v for k, v in small_mem.items() if k != "_tables"}, indent=1))
        small_dask = run_dask(n, args.workers, args.memory_limit, args.npartitions)
        small_dask["accuracy"] = accuracy(small_mem.pop("_tables"), small_dask.pop("_tables"))
        print(json.dumps(small_dask, indent=1))
    text = report(big, small_mem, small_dask)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"big": big, "mem": small_mem, "dask": small_dask}))
    if args.append:
        with open(RESULTS, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
