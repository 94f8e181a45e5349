"""The benchmarked jobs. Each takes the Parquet path and returns its tables.

The baselines (DuckDB, Polars, pandas, pm4py) compute the *raw* directly-follows
view of the log — every pair of consecutive events of a deal, repeats included:

* edge table: ``from``, ``to``, ``count``, ``mean_s``, ``median_s``, ``p90_s`` of the
  time (seconds) from an event to the next event of the same deal;
* stage table: per stage, ``reached`` (distinct deals with an event there),
  ``went_on`` (distinct deals with an event there that has a next event) and
  ``ended`` (deals whose last event is there).

Quantiles are linearly interpolated everywhere (DuckDB ``quantile_cont``, Polars
``"linear"``, pandas default), so the three agree to rounding.

``funnelkit_job`` runs funnelkit's whole validated pipeline instead (read → EventLog →
transitions, funnel, dwell). Its cleaned transitions (repeats collapsed, …) legitimately
differ from the raw directly-follows counts, so it is never cross-checked against them.

Libraries are imported inside the jobs; ``prepare(method)`` imports them up front so a
benchmark can time imports apart from the work.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

STAGES = ["Lead", "Qualified", "Discovery", "Demo", "Proposal", "Negotiation", "Contract"]
WON = "Won"
LOST = ["Lost", "Disqualified"]

EDGE_COLUMNS = ["from", "to", "count", "mean_s", "median_s", "p90_s"]
STAGE_COLUMNS = ["stage", "reached", "went_on", "ended"]

REPO_SRC = Path(__file__).resolve().parent.parent / "src"


def _import_funnelkit():
    """Import funnelkit, falling back to this checkout's ``src/`` if it is not installed."""
    try:
        return importlib.import_module("funnelkit")
    except ImportError:
        sys.path.insert(0, str(REPO_SRC))
        return importlib.import_module("funnelkit")


LIBRARIES = {
    "duckdb": ["duckdb"],
    "polars": ["polars"],
    "pandas": ["pandas", "pyarrow"],
    "pm4py": ["pandas", "pyarrow", "pm4py"],
    "funnelkit": [],
}


def prepare(method: str) -> dict[str, str]:
    """Import what ``method`` needs; return {library: version}."""
    versions = {}
    for name in LIBRARIES[method]:
        mod = importlib.import_module(name)
        versions[name] = getattr(mod, "__version__", "?")
    if method == "funnelkit":
        fk = _import_funnelkit()
        versions["funnelkit"] = getattr(fk, "__version__", "?")
        versions["funnelkit_source"] = _source_digest(Path(fk.__file__).parent)
    return versions


def _source_digest(package_dir: Path) -> str:
    """Short hash of the package's .py files: which state of the code was measured."""
    import hashlib

    h = hashlib.sha1()
    for f in sorted(package_dir.rglob("*.py")):
        h.update(f.relative_to(package_dir).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:10]


# --------------------------------------------------------------------------- DuckDB

_STAGE_ENUM = ", ".join(f"'{s}'" for s in [*STAGES, WON, *LOST])

# The stage column is cast to an ENUM of the known stages (they are given to funnelkit
# too); that is ~10-15 % faster than grouping VARCHARs. Materialising the windowed
# events once in a temp table beats a CTE per query and a GROUPING SETS query.
DUCKDB_EVENTS = f"""
CREATE OR REPLACE TEMP TABLE ev AS
SELECT deal_id, stage,
       LEAD(stage) OVER w AS next_stage,
       (epoch_us(LEAD(ts) OVER w) - epoch_us(ts)) / 1e6 AS dt
FROM (SELECT deal_id, stage::ENUM({_STAGE_ENUM}) AS stage, ts FROM read_parquet(?))
WINDOW w AS (PARTITION BY deal_id ORDER BY ts)
"""

DUCKDB_EDGES = """
SELECT stage::VARCHAR AS "from", next_stage::VARCHAR AS "to", count(*) AS count,
       avg(dt) AS mean_s, quantile_cont(dt, 0.5) AS median_s, quantile_cont(dt, 0.9) AS p90_s
FROM ev WHERE next_stage IS NOT NULL
GROUP BY ALL ORDER BY 1, 2
"""

DUCKDB_STAGES = """
SELECT stage::VARCHAR AS stage,
       count(DISTINCT deal_id) AS reached,
       count(DISTINCT deal_id) FILTER (WHERE next_stage IS NOT NULL) AS went_on,
       count(*) FILTER (WHERE next_stage IS NULL) AS ended
FROM ev GROUP BY ALL ORDER BY 1
"""


def duckdb_job(path):
    """DuckDB: LEAD() window over (deal_id ORDER BY ts), then two aggregations in SQL."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(DUCKDB_EVENTS, [str(path)])
        edges = con.sql(DUCKDB_EDGES).df()
        stages = con.sql(DUCKDB_STAGES).df()
    finally:
        con.close()
    return {"edges": edges, "stages": stages}


# --------------------------------------------------------------------------- Polars


def polars_job(path):
    """Polars: sort by (deal_id, ts), shift by one, keep pairs within a deal, group.

    After the sort, a global ``shift(-1)`` masked where the deal changes is the same as
    ``shift(-1).over("deal_id")`` and about twice as fast; ``rle_id`` gives integer deal
    codes so the distinct counts need not hash strings.
    """
    import polars as pl

    same = pl.col("deal").shift(-1) == pl.col("deal")
    df = (
        pl.scan_parquet(path)
        .select("deal_id", "stage", "ts")
        .sort("deal_id", "ts")
        .with_columns(deal=pl.col("deal_id").rle_id())
        .select(
            "deal",
            "stage",
            next_stage=pl.when(same).then(pl.col("stage").shift(-1)),
            dt=pl.when(same).then(
                (pl.col("ts").shift(-1) - pl.col("ts")).dt.total_microseconds() / 1e6
            ),
        )
        .collect()
    )
    has_next = pl.col("next_stage").is_not_null()
    edges = (
        df.lazy()
        .filter(has_next)
        .group_by(pl.col("stage").alias("from"), pl.col("next_stage").alias("to"))
        .agg(
            count=pl.len(),
            mean_s=pl.col("dt").mean(),
            median_s=pl.col("dt").median(),
            p90_s=pl.col("dt").quantile(0.9, "linear"),
        )
        .sort("from", "to")
    )
    stages = (
        df.lazy()
        .group_by("stage")
        .agg(
            reached=pl.col("deal").n_unique(),
            went_on=pl.col("deal").filter(has_next).n_unique(),
            ended=(~has_next).sum(),
        )
        .sort("stage")
    )
    edges, stages = pl.collect_all([edges, stages])
    return {"edges": edges, "stages": stages}


# --------------------------------------------------------------------------- pandas


def pandas_job(path):
    """Plain pandas: sort_values + groupby().shift(-1), then groupby aggregations."""
    import pandas as pd

    df = pd.read_parquet(path, columns=["deal_id", "stage", "ts"])
    df = df.sort_values(["deal_id", "ts"], ignore_index=True)
    nxt = df.groupby("deal_id", sort=False)[["stage", "ts"]].shift(-1)
    df["next_stage"] = nxt["stage"]
    df["dt"] = (nxt["ts"] - df["ts"]).dt.total_seconds()

    pairs = df[df["next_stage"].notna()]
    g = pairs.groupby(["stage", "next_stage"])["dt"]
    edges = pd.DataFrame(
        {
            "count": g.size(),
            "mean_s": g.mean(),
            "median_s": g.median(),
            "p90_s": g.quantile(0.9),
        }
    )
    edges.index.names = ["from", "to"]
    edges = edges.reset_index()

    stages = pd.DataFrame(
        {
            "reached": df.groupby("stage")["deal_id"].nunique(),
            "went_on": pairs.groupby("stage")["deal_id"].nunique(),
            "ended": df[df["next_stage"].isna()].groupby("stage").size(),
        }
    )
    stages = stages.fillna(0).astype("int64").rename_axis("stage").reset_index()
    return {"edges": edges, "stages": stages}


# --------------------------------------------------------------------------- pm4py


def pm4py_job(path):
    """pm4py: discover_dfg (counts) + discover_performance_dfg (mean/median times).

    pm4py has no p90 aggregation and no reached/went-on counts; it gives start and end
    activities (end activities = ``ended``).
    """
    import pandas as pd
    import pm4py

    df = pd.read_parquet(path, columns=["deal_id", "stage", "ts"])
    # The documented preparation step: sorts by (case, time) and adds pm4py's columns.
    # Without it pm4py's end activities are taken in file order (wrong on shuffled rows).
    df = pm4py.format_dataframe(df, case_id="deal_id", activity_key="stage", timestamp_key="ts")
    dfg, start, end = pm4py.discover_dfg(df)
    perf, _, _ = pm4py.discover_performance_dfg(df)
    return {"dfg": dfg, "performance_dfg": perf, "start": start, "end": end}


# --------------------------------------------------------------------------- funnelkit


def funnelkit_job(path):
    """funnelkit's full validated pipeline from the file."""
    fk = _import_funnelkit()
    log = fk.read_events(
        path, deal="deal_id", stage="stage", time="ts", stages=STAGES, won=WON, lost=LOST
    )
    return {"transitions": log.transitions(), "funnel": log.funnel(), "dwell": log.dwell()}


JOBS = {
    "duckdb": duckdb_job,
    "polars": polars_job,
    "pandas": pandas_job,
    "pm4py": pm4py_job,
    "funnelkit": funnelkit_job,
}


# --------------------------------------------------------------------------- cross-check


def normalise(method: str, result) -> dict:
    """Common pandas form of a baseline's result: {"edges": df, "stages": df or None}."""
    import pandas as pd

    if method == "pm4py":
        rows = [
            {
                "from": a,
                "to": b,
                "count": int(n),
                "mean_s": float(result["performance_dfg"][(a, b)]["mean"]),
                "median_s": float(result["performance_dfg"][(a, b)]["median"]),
            }
            for (a, b), n in result["dfg"].items()
        ]
        edges = pd.DataFrame(rows)
        stages = pd.DataFrame(
            {"stage": list(result["end"]), "ended": [int(v) for v in result["end"].values()]}
        )
    elif method == "funnelkit":
        raise ValueError("funnelkit's cleaned transitions are not comparable to raw edges")
    else:
        edges, stages = result["edges"], result["stages"]
        if hasattr(edges, "to_pandas"):
            edges, stages = edges.to_pandas(), stages.to_pandas()
        edges = pd.DataFrame(edges)[EDGE_COLUMNS]
        stages = pd.DataFrame(stages)[STAGE_COLUMNS]
    out = {}
    for name, frame in (("edges", edges), ("stages", stages)):
        key = ["from", "to"] if name == "edges" else ["stage"]
        frame = frame.copy()
        for k in key:
            frame[k] = frame[k].astype(str)
        for c in frame.columns:
            if c in ("count", "reached", "went_on", "ended"):
                frame[c] = frame[c].astype("int64")
            elif c not in key:
                frame[c] = frame[c].astype("float64")
        out[name] = frame.sort_values(key, ignore_index=True)
    return out


def compare(reference: str, ref: dict, method: str, other: dict, rtol: float = 1e-6) -> list[str]:
    """Differences between two normalised results (only the columns both have)."""
    import numpy as np

    problems = []
    for name in ("edges", "stages"):
        a, b = ref[name], other[name]
        key = ["from", "to"] if name == "edges" else ["stage"]
        if a[key].to_numpy().tolist() != b[key].to_numpy().tolist():
            ka = set(map(tuple, a[key].to_numpy().tolist()))
            kb = set(map(tuple, b[key].to_numpy().tolist()))
            problems.append(
                f"{name}: keys differ ({reference} only {sorted(ka - kb)[:5]}, "
                f"{method} only {sorted(kb - ka)[:5]})"
            )
            continue
        for c in a.columns.intersection(b.columns).difference(key):
            x, y = a[c].to_numpy(), b[c].to_numpy()
            if x.dtype.kind == "i":
                bad = x != y
            else:
                bad = ~np.isclose(x, y, rtol=rtol, atol=1e-6)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                problems.append(
                    f"{name}.{c}: {int(bad.sum())} rows differ, e.g. "
                    f"{a.loc[i, key].tolist()}: {reference}={x[i]!r} {method}={y[i]!r}"
                )
    return problems
