"""Benchmark funnelkit's full pipeline against DuckDB, Polars, pandas and pm4py.

Every run is a fresh subprocess (``worker.py``): the first call there is "cold", a
second call in the same process is "warm". Methods take turns (A B C D A B C D …) on
the same file. Reported: median cold and warm seconds, the ratio to DuckDB, nanoseconds
per event and the subprocess's peak RSS.

Examples::

    python benchmarks/run.py --sizes 100000 1000000 --runs 5 --check
    python benchmarks/run.py --sizes 1000000 --methods funnelkit duckdb --runs 7
    python benchmarks/run.py --sizes 100000 1000000 3000000 --check --append

Missing data files are generated first (``generate.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
OUT_DIR = HERE / "out"
RESULTS = HERE / "RESULTS.md"

METHODS = ["funnelkit", "duckdb", "polars", "pandas", "pm4py"]
CHECKED = ["duckdb", "polars", "pandas", "pm4py"]  # raw directly-follows baselines
DESCRIPTION = {
    "funnelkit": "funnelkit: read_events → validated EventLog → transitions + funnel + dwell",
    "duckdb": "DuckDB SQL: LEAD() window → edge table + per-stage counts",
    "polars": "Polars: sort, shift over deal → edge table + per-stage counts",
    "pandas": "pandas: sort_values + groupby().shift → edge table + per-stage counts",
    "pm4py": "pm4py: format_dataframe + discover_dfg + discover_performance_dfg",
}


def data_path(n_deals: int) -> Path:
    return DATA_DIR / f"events_{n_deals}.parquet"


def ensure_data(n_deals: int) -> Path:
    path = data_path(n_deals)
    if not path.exists():
        subprocess.run([sys.executable, str(HERE / "generate.py"), str(n_deals)], check=True)
    return path


def cpu_busy_seconds() -> float:
    """Busy CPU-seconds of the whole machine so far (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(max_wait: float, threshold: float = 0.15, window: float = 1.0) -> float:
    """Wait (up to max_wait s) until other processes use < threshold cores; return the load."""
    waited, load = 0.0, 0.0
    while True:
        b0, t0 = cpu_busy_seconds(), time.perf_counter()
        time.sleep(window)
        load = (cpu_busy_seconds() - b0) / (time.perf_counter() - t0)
        waited += window
        if load < threshold or waited >= max_wait:
            return load


def run_once(method: str, path: Path, warm: bool, dump: Path | None, timeout: float) -> dict:
    """One fresh subprocess; returns the worker's record (or a crash record).

    Also records ``foreign_cores``: CPU used by *other* processes during the run (machine
    busy time minus this child's user+sys time, per wall second) — on a shared 2-core
    machine that is what makes a timing unreliable.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(HERE / "worker.py"), method, str(path), str(out)]
        if not warm:
            cmd.append("--no-warm")
        if dump is not None:
            cmd += ["--dump", str(dump)]
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy0, t0 = cpu_busy_seconds(), time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return {"method": method, "ok": False, "error": f"timeout after {timeout:.0f} s"}
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        child_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        foreign = max(0.0, (cpu_busy_seconds() - busy0 - child_cpu) / wall)
        if out.exists():
            rec = json.loads(out.read_text())
        else:
            tail = (stderr or "").strip().splitlines()[-3:]
            rec = {
                "method": method,
                "ok": False,
                "error": f"worker exited with {proc.returncode}: {' | '.join(tail)}",
            }
        rec["foreign_cores"] = foreign
        rec["child_cpu_s"] = child_cpu
        rec["wall_s"] = wall
        return rec


def is_pending(record: dict) -> bool:
    """funnelkit's API is not there yet (being written), as opposed to a real failure."""
    err = record.get("error", "")
    return record.get("method") == "funnelkit" and (
        record.get("failed_in") == "import" or "read_events" in err
    )


# --------------------------------------------------------------------------- machine


def machine_info() -> dict:
    info = {
        "date": subprocess.run(["date"], capture_output=True, text=True).stdout.strip(),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
        info["nproc"] = int(nproc)
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_gib"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    # settings that change timings: BLAS threads, funnelkit's allocator switch
    blas = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS_", "FUNNELKIT_"))}
    if blas:
        info["env"] = " ".join(f"{k}={v}" for k, v in sorted(blas.items()))
    return info


# --------------------------------------------------------------------------- report


def _median(values):
    return statistics.median(values) if values else None


def summarise(
    records: list[dict], n_deals: int, n_events: int, method: str, max_other_load: float
) -> dict:
    """Medians over the runs; runs disturbed by other processes are left out if at least
    three undisturbed ones remain (or all of them were undisturbed)."""
    ok = [r for r in records if r.get("ok")]
    failed = [r for r in records if not r.get("ok")]
    clean = [r for r in ok if r.get("foreign_cores", 0.0) <= max_other_load]
    used = clean if len(clean) >= min(3, len(ok)) else ok
    cold = [r["cold_s"] for r in used]
    warm = [r["warm_s"] for r in used if "warm_s" in r]
    rss = [r["peak_rss_mib"] for r in ok if "peak_rss_mib" in r]
    foreign = [r["foreign_cores"] for r in used if "foreign_cores" in r]
    row = {
        "deals": n_deals,
        "events": n_events,
        "method": method,
        "runs": len(used),
        "dropped": len(ok) - len(used),
        "cold_s": _median(cold),
        "cold_min": min(cold) if cold else None,
        "cold_max": max(cold) if cold else None,
        "warm_s": _median(warm),
        "import_s": _median([r["import_s"] for r in used]),
        "peak_rss_mib": max(rss) if rss else None,
        "foreign_cores_max": max(foreign) if foreign else None,
        "status": "ok",
    }
    if failed:
        err = failed[0].get("error", "?")
        if not ok:
            row["status"] = ("pending: " if is_pending(failed[0]) else "FAILED: ") + err
        else:
            row["status"] = f"{len(failed)} run(s) failed: {err}"
    if row["dropped"]:
        row["status"] += f" ({row['dropped']} disturbed run(s) left out)"
    return row


def _fmt(x, spec=".2f", none="–"):
    return none if x is None else format(x, spec)


def markdown_table(rows: list[dict]) -> str:
    ref = {(r["deals"], "cold"): r["cold_s"] for r in rows if r["method"] == "duckdb"}
    ref |= {(r["deals"], "warm"): r["warm_s"] for r in rows if r["method"] == "duckdb"}
    head = (
        "| deals | events | method | runs | cold s (median) | cold min–max | warm s (median) "
        "| cold / DuckDB | warm / DuckDB | ns/event cold | ns/event warm | peak RSS MiB "
        "| import s | other load | status |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        c_ref, w_ref = ref.get((r["deals"], "cold")), ref.get((r["deals"], "warm"))
        cold, warm, ev = r["cold_s"], r["warm_s"], r["events"]
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{r['deals'] / 1e6:g}M",
                    f"{ev / 1e6:.2f}M",
                    r["method"],
                    str(r["runs"]),
                    _fmt(cold, ".3f"),
                    f"{_fmt(r['cold_min'])}–{_fmt(r['cold_max'])}" if cold else "–",
                    _fmt(warm, ".3f"),
                    _fmt(cold / c_ref if cold and c_ref else None),
                    _fmt(warm / w_ref if warm and w_ref else None),
                    _fmt(cold * 1e9 / ev if cold else None, ".0f"),
                    _fmt(warm * 1e9 / ev if warm else None, ".0f"),
                    _fmt(r["peak_rss_mib"], ".0f"),
                    _fmt(r["import_s"]),
                    _fmt(r["foreign_cores_max"]),
                    r["status"].replace("|", "/"),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def linearity_table(rows: list[dict]) -> str:
    sizes = sorted({r["deals"] for r in rows})
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    by = {(r["method"], r["deals"]): r for r in rows}
    head = "| method | " + " | ".join(f"ns/event cold @ {n / 1e6:g}M" for n in sizes)
    if len(sizes) > 1:
        head += f" | {sizes[-1] / 1e6:g}M ÷ {sizes[-2] / 1e6:g}M"
    lines = [head + " |", "|" + "---|" * (head.count("|"))]
    for m in methods:
        vals = []
        for n in sizes:
            r = by.get((m, n))
            vals.append(r["cold_s"] * 1e9 / r["events"] if r and r["cold_s"] else None)
        cells = [_fmt(v, ".0f") for v in vals]
        if len(sizes) > 1:
            a, b = vals[-2], vals[-1]
            cells.append(_fmt(b / a if a and b else None))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pooled_rows(sessions: list[dict]) -> list[dict]:
    """Rows recomputed from the raw runs of all sessions, pooled by (deals, method), so a
    benchmark killed half-way can be completed by another session of the same sizes."""
    events: dict[int, int] = {}
    limit = max(sess.get("max_other_load", 0.25) for sess in sessions)
    runs: dict[tuple[int, str], list[dict]] = {}
    for sess in sessions:
        events |= {int(k): v for k, v in sess.get("events", {}).items()}
        events |= {r["deals"]: r["events"] for r in sess.get("rows", [])}
        for r in sess["runs"]:
            runs.setdefault((r["deals"], r["method"]), []).append(r)
    order = {m: i for i, m in enumerate(METHODS)}
    keys = sorted(runs, key=lambda k: (k[0], order[k[1]]))
    return [summarise(runs[k], k[0], events[k[0]], k[1], limit) for k in keys]


def report(sessions: list[dict]) -> str:
    """Markdown section for one or more saved sessions (see ``collect``); their runs are
    pooled per (deals, method)."""
    info = sessions[0]["machine"]
    rows = pooled_rows(sessions)
    versions: dict[str, str] = {}
    common = "Each run is a fresh process"
    notes: list[str] = []
    for k, sess in enumerate(sessions, 1):
        versions.update(sess["versions"])
        for n in sess["notes"]:
            if n.startswith("funnelkit's source changed"):
                continue
            if len(sessions) > 1 and not n.startswith(common):
                n = f"Session {k}: {n}"
            if n not in notes:
                notes.append(n)
    digests = sorted(
        {
            r["versions"]["funnelkit_source"]
            for sess in sessions
            for r in sess["runs"]
            if "funnelkit_source" in r.get("versions", {})
        }
    )
    if len(digests) > 1:
        notes.insert(
            0,
            f"funnelkit's source changed between runs (digests {', '.join(digests)}): "
            "its rows pool runs of different states of the code.",
        )
    machine = (
        f"{info.get('nproc')} cores ({info.get('cpu', '?')}), {info.get('mem_gib', '?')} GiB RAM, "
        f"Linux {info.get('kernel')}, Python {info.get('python')}"
    )
    dates = [s["machine"]["date"] for s in sessions]
    source = versions.pop("funnelkit_source", None)
    if source and "funnelkit" in versions:
        versions["funnelkit"] += f" (source digest {source})"
    libs = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    parts = [
        f"## Speed and memory: funnelkit vs DuckDB, Polars, pandas, pm4py — {dates[0]}"
        + (f" to {dates[-1]}" if len(dates) > 1 else ""),
        "",
        f"- Machine: {machine}",
        f"- Libraries: {libs}",
    ]
    for k, sess in enumerate(sessions, 1):
        label = f"Session {k} ({sess['machine']['date']})" if len(sessions) > 1 else "Command"
        parts.append(f"- {label}: `python benchmarks/run.py {shlex.join(sess['argv'])}`")
    if "env" in info:
        parts.append(f"- Environment: `{info['env']}`")
    parts += [f"- {n}" for n in notes]
    parts += ["", markdown_table(rows), "", "Nanoseconds per event (cold), for linearity:", ""]
    parts += [linearity_table(rows), ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------- check


def cross_check(dump_dir: Path, n_deals: int, methods: list[str]) -> list[str]:
    sys.path.insert(0, str(HERE))
    import baselines

    results = {}
    for m in [m for m in CHECKED if m in methods]:
        f = dump_dir / f"{m}.pkl"
        if f.exists():
            with open(f, "rb") as fh:
                results[m] = pickle.load(fh)
    if len(results) < 2:
        return [f"{n_deals}: fewer than two baseline results to compare"]
    ref_name = next(iter(results))
    problems = []
    for m, res in results.items():
        if m != ref_name:
            problems += [
                f"{n_deals} {m} vs {ref_name}: {p}"
                for p in baselines.compare(ref_name, results[ref_name], m, res)
            ]
    n_edges = len(results[ref_name]["edges"])
    total = int(results[ref_name]["edges"]["count"].sum())
    print(
        f"check {n_deals}: {', '.join(results)} agree on {n_edges} edges / {total:,} pairs"
        if not problems
        else "\n".join(problems)
    )
    return problems


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[100_000, 1_000_000])
    p.add_argument("--runs", type=int, default=5, help="runs per method (default 5)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    p.add_argument("--pm4py-runs", type=int, default=3, help="runs for pm4py (default 3)")
    p.add_argument(
        "--pm4py-max-deals",
        type=int,
        default=1_000_000,
        help="skip pm4py above this many deals (default 1000000; it takes ~90 s/call at 3M)",
    )
    p.add_argument(
        "--max-other-load",
        type=float,
        default=0.25,
        help="redo a run if other processes used more cores than this during it (default 0.25)",
    )
    p.add_argument("--retries", type=int, default=3, help="redos per disturbed run (default 3)")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=120,
        help="before each run, wait up to this many seconds for other processes to go "
        "below 0.15 busy cores (default 120; 0 = don't wait)",
    )
    p.add_argument("--no-warm", action="store_true", help="only the cold call per process")
    p.add_argument("--check", action="store_true", help="assert the baselines' tables agree")
    p.add_argument("--append", action="store_true", help=f"append the report to {RESULTS.name}")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per subprocess")
    p.add_argument(
        "--report",
        nargs="+",
        type=Path,
        metavar="RUN_JSON",
        help="don't run: build one report from saved sessions (benchmarks/out/run_*.json)",
    )
    args = p.parse_args(argv)

    if args.report:
        sessions = [json.loads(f.read_text()) for f in args.report]
        problems = [q for sess in sessions for q in sess.get("problems", [])]
    else:
        session = collect(args, argv)
        sessions, problems = [session], session["problems"]
    text = report(sessions)
    print()
    print(text)
    if args.append:
        header = "" if RESULTS.exists() else "# Benchmark results\n\n"
        with open(RESULTS, "a") as f:
            f.write(header + "\n" + text)
        print(f"appended to {RESULTS}")
    if problems:
        print("CROSS-CHECK FAILED", file=sys.stderr)
        return 1
    return 0


def collect(args, argv: list[str]) -> dict:
    """Run everything; the session (saved after every size to benchmarks/out/run_*.json)."""
    info = machine_info()
    print(
        f"{info['date']}: {info.get('nproc')} cores, {info.get('cpu')}, {info.get('mem_gib')} GiB"
    )
    OUT_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    save_to = OUT_DIR / f"run_{stamp}.json"
    session: dict = {
        "machine": info,
        "argv": argv,
        "versions": {},
        "rows": [],
        "runs": [],
        "notes": [],
        "problems": [],
        "max_other_load": args.max_other_load,
        "events": {},
    }
    notes, redone = session["notes"], {}
    for n in args.sizes:
        path = ensure_data(n)
        n_events = pq.ParquetFile(path).metadata.num_rows
        session["events"][str(n)] = n_events
        methods = [m for m in args.methods if not (m == "pm4py" and n > args.pm4py_max_deals)]
        if "pm4py" in args.methods and "pm4py" not in methods:
            notes.append(f"pm4py skipped at {n:,} deals (above --pm4py-max-deals; too slow).")
        runs = {m: (args.pm4py_runs if m == "pm4py" else args.runs) for m in methods}
        dump_dir = OUT_DIR / f"check_{n}"
        for stale in dump_dir.glob("*.pkl"):  # results of earlier sessions
            stale.unlink()
        records: dict[str, list[dict]] = {m: [] for m in methods}
        for i in range(max(runs.values())):
            for m in methods:
                if i >= runs[m]:
                    continue
                dump = dump_dir if args.check and i == 0 and m in CHECKED else None
                for attempt in range(args.retries + 1):
                    if args.quiet_wait > 0:
                        wait_until_quiet(args.quiet_wait)
                    rec = run_once(m, path, not args.no_warm, dump, args.timeout)
                    if rec["foreign_cores"] <= args.max_other_load or not rec.get("ok"):
                        break
                    if attempt < args.retries:
                        redone[(n, m)] = redone.get((n, m), 0) + 1
                        print(
                            f"[{n:,} deals, run {i + 1}] {m}: other processes used "
                            f"{rec['foreign_cores']:.2f} cores, redoing",
                            flush=True,
                        )
                records[m].append(rec)
                session["runs"].append({"deals": n, "run": i, **rec})
                session["versions"].update(rec.get("versions", {}))
                save_to.write_text(json.dumps(session, indent=1))  # survives a kill
                shown = (
                    f"cold {rec['cold_s']:.3f} s, warm {rec.get('warm_s', float('nan')):.3f} s, "
                    f"peak {rec['peak_rss_mib']:.0f} MiB"
                    if rec.get("ok")
                    else rec.get("error", "?")[:120]
                )
                print(
                    f"[{n:,} deals, run {i + 1}/{runs[m]}] {m:9s} {shown} "
                    f"(other load {rec['foreign_cores']:.2f} cores)",
                    flush=True,
                )
        for m in methods:
            session["rows"].append(summarise(records[m], n, n_events, m, args.max_other_load))
        if args.check:
            session["problems"] += cross_check(dump_dir, n, methods)
        save_to.write_text(json.dumps(session, indent=1))

    if redone:
        notes.append(
            "Runs redone because other processes were busy: "
            + ", ".join(f"{m} @ {n:,}: {k}" for (n, m), k in redone.items())
            + "."
        )
    if "pm4py" in args.methods and args.pm4py_runs != args.runs:
        notes.append(f"pm4py: {args.pm4py_runs} run(s) per size, the others {args.runs}.")
    notes.append(
        "Each run is a fresh process; cold = first call there (file read included, imports "
        "excluded — see 'import s'), warm = second call in the same process. Medians over runs; "
        "methods interleaved. Peak RSS = max ru_maxrss of the run's processes (both calls). "
        "'other load' = the most CPU (in cores) used by other processes during a counted run "
        "(machine busy time minus the run's own CPU time); runs above "
        f"{args.max_other_load} were redone up to {args.retries} times, and left out of the "
        "medians when at least 3 undisturbed runs remained."
    )
    if args.check:
        problems = session["problems"]
        notes.append(
            "Cross-check (--check): the raw directly-follows edge tables (count, mean, median, "
            "p90) and stage tables of "
            + ", ".join(m for m in CHECKED if m in args.methods)
            + (" agree." if not problems else f" DISAGREE: {problems}")
        )
    save_to.write_text(json.dumps(session, indent=1))
    print(f"saved {save_to}")
    return session


if __name__ == "__main__":
    sys.exit(main())
