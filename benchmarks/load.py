"""Time and peak memory of the report at load: many deals, many stages, many segments.

Usage::

    python benchmarks/load.py deals 1000000 2000000 [--seg K] [-- --csv all|small|none]
    python benchmarks/load.py stages 60 100 200
    python benchmarks/load.py segments 50000 [--deals 100000]

Every measured job runs in a fresh process; its wall time and peak RSS (``ru_maxrss``
from ``os.wait4``) are printed as one Markdown table row, ready for ``RESULTS.md``.

* ``deals N`` — ``funnelkit report`` (the CLI, charts included) on
  ``benchmarks/data/events_N.parquet`` (made by ``generate.py`` when missing); with
  ``--seg K`` the deals carry an attribute ``seg`` of ``K`` values and the report runs
  ``--by seg`` (issue 16's 1M-deal report).
* ``stages K`` — a synthetic log of 5,000 deals walking ``K`` stages (advance 0.98, so
  most deals pass most stages): ``log.key_stages()`` with the defaults (200 bootstrap
  draws), then the full ``funnelkit report``.
* ``segments K`` — a synthetic log (``--deals``, default 100,000) whose deals carry an
  attribute ``seg`` with ``K`` values drawn uniformly: ``log.compare(by="seg")``,
  ``fk.plot.segments(log.funnel(by="seg"))`` and the full ``funnelkit report --by seg``.

``--src DIR`` measures another copy of the sources (e.g. ``git archive`` of an older
commit). Extra arguments after ``--`` go to every ``funnelkit report`` call (e.g. ``-- --csv all``).
Logs are written to ``benchmarks/data/`` (gitignored) and reused; reports to a temporary
folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
PY = sys.executable
SRC = HERE.parent / "src"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{SRC}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep)
    env["MPLBACKEND"] = "Agg"
    return env


def measure(cmd: list[str]) -> tuple[float, float, int]:
    """Run ``cmd`` in a fresh process: (wall seconds, peak RSS in MiB, exit code)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(err[-2000:], file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, code


def row(what: str, cmd: list[str]) -> None:
    wall, rss, code = measure(cmd)
    print(f"| {what} | {wall:.1f} | {rss:,.0f} | {code} |", flush=True)


def _report_cmd(path: Path, out: Path, extra: list[str], *more: str) -> list[str]:
    return [PY, "-m", "funnelkit", "report", str(path), "-o", str(out), "--quiet", *more, *extra]


def _child(code: str) -> list[str]:
    return [PY, "-c", code]


# ------------------------------------------------------------------------------ scenarios
def _with_segments(path: Path, k: int) -> Path:
    """``path`` with a deal attribute ``seg`` of ``k`` values (``S00``, ``S01``, …; a
    deal's value from a hash of its id, so every event of the deal carries the same)."""
    out = path.with_name(f"{path.stem}_seg{k}.parquet")
    if not out.exists():
        import numpy as np
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        ids = table.column("deal_id").to_numpy()
        code = pd.util.hash_array(np.asarray(ids, dtype=object)) % np.uint64(k)
        labels = np.array([f"S{i:02d}" for i in range(k)], dtype=object)
        table = table.append_column("seg", pa.array(labels[code.astype(np.int64)]))
        pq.write_table(table, out)
    return out


def deals(sizes: list[int], extra: list[str], seg: int = 0) -> None:
    for n in sizes:
        path = DATA / f"events_{n}.parquet"
        if not path.exists():
            subprocess.run([PY, str(HERE / "generate.py"), str(n)], check=True)
        by: tuple[str, ...] = ()
        if seg:
            path = _with_segments(path, seg)
            by = ("--attrs", "seg", "--by", "seg")
        with tempfile.TemporaryDirectory() as tmp:
            cmd = _report_cmd(
                path,
                Path(tmp) / "r",
                extra,
                *("--deal", "deal_id", "--stage", "stage", "--time", "ts"),
                *("--won", "Won", "--lost", "Lost,Disqualified", "--amount", "amount"),
                *by,
            )
            what = f"report, {n:,} deals" + (f", --by seg ({seg} values)" if seg else "")
            row(f"{what} {' '.join(extra)}".strip(), cmd)
            out = Path(tmp) / "r"
            if out.exists():
                size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
                print(f"|  written: {size / 2**20:,.0f} MiB | | | |", flush=True)


def _stage_log(k: int) -> Path:
    path = DATA / f"stages_{k}.parquet"
    if not path.exists():
        DATA.mkdir(exist_ok=True)
        code = (
            "import funnelkit as fk\n"
            f"df = fk.datasets.synthetic(5000, stages=[f'S{{i:03d}}' for i in range({k})],"
            " seed=1, advance=0.98, start='2020-01-01', end='2020-03-01',"
            " as_of='2030-01-01')\n"
            f"df.to_parquet({str(path)!r}, index=False)\n"
        )
        subprocess.run(_child(code), env=_env(), check=True)
    return path


def stages(counts: list[int], extra: list[str]) -> None:
    for k in counts:
        path = _stage_log(k)
        kw = (
            f"stages=[f'S{{i:03d}}' for i in range({k})], won='Won', lost=['Lost', 'Disqualified']"
        )
        code = (
            "import pandas as pd, funnelkit as fk\n"
            f"log = fk.EventLog(pd.read_parquet({str(path)!r}), deal='deal_id', stage='stage',"
            f" time='ts', {kw})\n"
            "ks = log.key_stages()\n"
        )
        row(f"key_stages(), {k} stages, 5,000 deals", _child(code))
        stage_list = ",".join(f"S{i:03d}" for i in range(k))
        with tempfile.TemporaryDirectory() as tmp:
            cmd = _report_cmd(
                path,
                Path(tmp) / "r",
                extra,
                *("--deal", "deal_id", "--stage", "stage", "--time", "ts", "--stages", stage_list),
                *("--won", "Won", "--lost", "Lost,Disqualified"),
            )
            row(f"report, {k} stages, 5,000 deals", cmd)


def _segment_log(k: int, n: int) -> Path:
    path = DATA / f"segments_{k}_{n}.parquet"
    if not path.exists():
        DATA.mkdir(exist_ok=True)
        code = (
            "import numpy as np, funnelkit as fk\n"
            f"df = fk.datasets.synthetic({n}, seed=2)\n"
            "rng = np.random.default_rng(3)\n"
            f"seg = rng.integers(0, {k}, size={n})\n"
            "codes = df['deal_id'].astype('category').cat.codes.to_numpy()\n"
            "df['seg'] = np.char.add('seg', seg[codes].astype(str))\n"
            f"df.to_parquet({str(path)!r}, index=False)\n"
        )
        subprocess.run(_child(code), env=_env(), check=True)
    return path


def segments(counts: list[int], n: int, extra: list[str]) -> None:
    for k in counts:
        path = _segment_log(k, n)
        load = (
            "import pandas as pd, funnelkit as fk\n"
            f"log = fk.EventLog(pd.read_parquet({str(path)!r}), deal='deal_id', stage='stage',"
            " time='ts', won='Won', lost=['Lost', 'Disqualified'], attrs=['seg'])\n"
        )
        row(
            f"compare(by='seg'), {k:,} segments, {n:,} deals",
            _child(load + "log.compare(by='seg')\n"),
        )
        plot = "import matplotlib.pyplot as plt\nfig = fk.plot.segments(log.funnel(by='seg')).figure\nfig.savefig('/dev/null', format='png')\n"
        row(f"plot.segments + PNG, {k:,} segments, {n:,} deals", _child(load + plot))
        with tempfile.TemporaryDirectory() as tmp:
            cmd = _report_cmd(
                path,
                Path(tmp) / "r",
                extra,
                *("--deal", "deal_id", "--stage", "stage", "--time", "ts", "--attrs", "seg"),
                *("--won", "Won", "--lost", "Lost,Disqualified", "--by", "seg"),
            )
            row(f"report --by seg, {k:,} segments, {n:,} deals", cmd)


def main(argv: list[str] | None = None) -> None:
    global SRC
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["deals", "stages", "segments"])
    parser.add_argument("sizes", nargs="+", type=int)
    parser.add_argument("--deals", type=int, default=100_000, help="deals (segments scenario)")
    parser.add_argument("--src", type=Path, default=SRC, help="funnelkit sources to measure")
    parser.add_argument(
        "--seg",
        type=int,
        default=0,
        help="deals scenario: a deal attribute of this many values, --by it",
    )
    args = parser.parse_args(argv)
    SRC = args.src.resolve()
    print("| job | wall s | peak RSS MiB | exit |\n|---|---|---|---|", flush=True)
    if args.scenario == "deals":
        deals(args.sizes, extra, args.seg)
    elif args.scenario == "stages":
        stages(args.sizes, extra)
    else:
        segments(args.sizes, args.deals, extra)


if __name__ == "__main__":
    main()
