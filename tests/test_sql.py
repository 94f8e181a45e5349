"""fk.read_sql against real databases: SQLite and DuckDB files, and a PostgreSQL server.

``.ci/run`` installs and starts PostgreSQL (Debian's ``postgresql``) and sets
``FUNNELKIT_TEST_POSTGRES`` (a URL) and ``FUNNELKIT_REQUIRE_POSTGRES=1``; without a server
the PostgreSQL tests skip, unless required. No mock databases.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.sql import _safe

KW = fk.datasets.SAMPLE_KWARGS


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return fk.datasets.load_sample()


@pytest.fixture(scope="module")
def reference(events) -> fk.EventLog:
    return fk.EventLog(events, **KW)


def same_log(got: fk.EventLog, ref: fk.EventLog) -> None:
    """The same deals, outcomes and tables as the log built from the DataFrame."""
    assert got.n_deals == ref.n_deals and got.as_of == ref.as_of
    pd.testing.assert_frame_equal(got.funnel(), ref.funnel())
    pd.testing.assert_frame_equal(got.transitions(), ref.transitions())
    a, b = got.deals(), ref.deals()
    assert (a["deal"].astype(str).tolist()) == b["deal"].astype(str).tolist()
    np.testing.assert_array_equal(a["outcome"].astype(str), b["outcome"].astype(str))
    np.testing.assert_allclose(a["amount"], b["amount"])


def text_times(events: pd.DataFrame) -> pd.DataFrame:
    """Times as ISO text, as SQLite and many warehouse copies store them."""
    return events.assign(ts=events["ts"].dt.strftime("%Y-%m-%d %H:%M:%S%z"))


# =========================================================================== SQLite
@pytest.fixture(scope="module")
def sqlite_file(tmp_path_factory, events) -> str:
    path = str(tmp_path_factory.mktemp("db") / "crm.db")
    with sqlite3.connect(path) as db:
        text_times(events).to_sql("events", db, index=False)
        db.execute('CREATE TABLE "Deal Events" AS SELECT * FROM events')
    return path


def test_sqlite_by_url_table_and_query(sqlite_file, reference):
    url = f"sqlite:///{sqlite_file}"
    same_log(fk.read_sql("events", url, **KW), reference)
    same_log(fk.read_sql('"Deal Events"', url, **KW), reference)
    q = "SELECT deal_id, stage, ts, amount, region, owner, team FROM events ORDER BY ts DESC"
    same_log(fk.read_sql(q, url, **KW), reference)


@pytest.mark.parametrize("how", ["sqlite3", "sqlalchemy engine", "sqlalchemy connection"])
def test_sqlite_connections(sqlite_file, reference, how):
    if how == "sqlite3":
        con = sqlite3.connect(sqlite_file)
    else:
        sqlalchemy = pytest.importorskip("sqlalchemy")
        con = sqlalchemy.create_engine(f"sqlite:///{sqlite_file}")
        if how == "sqlalchemy connection":
            con = con.connect()
    same_log(fk.read_sql("events", con, **KW), reference)
    con.close() if how != "sqlalchemy engine" else con.dispose()


def test_sqlite_without_the_adbc_driver_uses_python_sqlite(sqlite_file, reference):
    """A base install (no [sql] extra) still reads SQLite: run in a process where the
    ADBC driver and SQLAlchemy cannot be imported."""
    code = (
        "import sys; sys.modules['adbc_driver_sqlite'] = None; sys.modules['sqlalchemy'] = None\n"
        "import funnelkit as fk\n"
        f"log = fk.read_sql('events', 'sqlite:///{sqlite_file}', **fk.datasets.SAMPLE_KWARGS)\n"
        "print(log.n_deals, log.quality.won)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(reference.n_deals), str(reference.quality.won)]


def test_parameters_are_bound_not_pasted(sqlite_file, events):
    url = f"sqlite:///{sqlite_file}"
    log = fk.read_sql("SELECT * FROM events WHERE team = ?", url, params=["Team A"], **KW)
    assert log.n_deals == events.loc[events["team"] == "Team A", "deal_id"].nunique()
    hostile = "Team A' OR '1'='1"
    with pytest.raises(fk.EventLogError, match="returned no rows.*\n.*\nParameters:"):
        fk.read_sql("SELECT * FROM events WHERE team = ?", url, params=[hostile], **KW)


def test_bad_rows_are_rejected_and_counted(tmp_path, events):
    ev = text_times(events)
    ev.loc[[3, 10, 11], "stage"] = None
    ev.loc[20, "ts"] = "not a time"
    path = str(tmp_path / "bad.db")
    with sqlite3.connect(path) as db:
        ev.to_sql("events", db, index=False)
    url = f"sqlite:///{path}"
    with pytest.raises(fk.EventLogError, match="3 rows missing stage"):
        fk.read_sql("events", url, **KW)
    log = fk.read_sql("events", url, errors="drop", **KW)
    assert log.quality.by_reason["missing_stage"] == 3
    assert log.quality.by_reason["unparseable_time"] == 1


def test_clear_errors(sqlite_file):
    url = f"sqlite:///{sqlite_file}"
    with pytest.raises(fk.EventLogError, match=r"no column `deal` \(deal\); it has `deal_id`"):
        fk.read_sql("SELECT * FROM events", url, **{**KW, "deal": "deal"})
    with pytest.raises(fk.EventLogError, match="neither a query.*nor a table name"):
        fk.read_sql("events; DROP TABLE events", url, **KW)
    with pytest.raises(fk.EventLogError, match="refused the query:.*no such table"):
        fk.read_sql("evnets", url, **KW)
    with pytest.raises(fk.EventLogError, match="does not exist"):
        fk.read_sql("events", "sqlite:////nowhere/crm.db", **KW)
    with pytest.raises(fk.EventLogError, match="Cannot connect to the database.*:\\*\\*\\*@"):
        fk.read_sql("events", "postgresql://ann:s3cret@127.0.0.1:1/crm", **KW)
    with pytest.raises(fk.InvalidParameterError, match="database URL"):
        fk.read_sql("events", 42, **KW)
    with pytest.raises(fk.InvalidParameterError, match="non-empty string"):
        fk.read_sql("  ", url, **KW)
    # the table is still there after the hostile name
    assert fk.read_sql("events", url, **KW).n_deals == 600


def test_a_password_never_appears_in_messages():
    assert _safe("postgresql://ann:s3cret@db.local/crm") == "postgresql://ann:***@db.local/crm"
    with pytest.raises(fk.EventLogError) as err:
        fk.read_sql("events", "nosuchdialect://ann:s3cret@db.local/crm", **KW)
    assert "s3cret" not in str(err.value) and "***" in str(err.value)


# =========================================================================== DuckDB
@pytest.fixture(scope="module")
def duckdb_file(tmp_path_factory, events) -> str:
    duckdb = pytest.importorskip("duckdb")
    path = str(tmp_path_factory.mktemp("duck") / "crm.duckdb")
    with duckdb.connect(path) as db:
        db.register("ev", events)
        db.execute("CREATE TABLE events AS SELECT * FROM ev")
        db.register("txt", text_times(events))
        db.execute("CREATE TABLE events_text AS SELECT * FROM txt")
    return path


@pytest.mark.parametrize("table", ["events", "events_text"])
def test_duckdb_file_by_url_and_connection(duckdb_file, reference, table):
    import duckdb

    same_log(fk.read_sql(table, f"duckdb:///{duckdb_file}", **KW), reference)
    with duckdb.connect(duckdb_file) as db:
        same_log(fk.read_sql(table, db, **KW), reference)
        one = fk.read_sql(f"SELECT * FROM {table} WHERE team = ?", db, params=["Team B"], **KW)
        assert set(one.deals()["team"].astype(str)) == {"Team B"}


def test_duckdb_through_sqlalchemy(duckdb_file, reference):
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("duckdb_engine")
    engine = sqlalchemy.create_engine(f"duckdb:///{duckdb_file}")
    try:
        same_log(fk.read_sql("events", engine, **KW), reference)
    finally:
        engine.dispose()


# =========================================================================== PostgreSQL
@pytest.fixture
def pg_tables(postgres, events):
    """Two fresh tables (timestamptz and ISO text times), dropped afterwards."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(postgres.replace("postgresql://", "postgresql+psycopg://"))
    tag = uuid.uuid4().hex[:8]
    names = {"native": f"events_{tag}", "text": f"events_text_{tag}"}
    events.to_sql(names["native"], engine, index=False)
    text_times(events).to_sql(names["text"], engine, index=False)
    yield engine, names
    with engine.begin() as c:
        for name in names.values():
            c.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{name}"'))
    engine.dispose()


@pytest.mark.parametrize("kind", ["native", "text"])
def test_postgres_by_url_engine_connection_and_adbc(postgres, pg_tables, reference, kind):
    engine, names = pg_tables
    table = names[kind]
    same_log(fk.read_sql(table, postgres, **KW), reference)  # ADBC: Arrow end to end
    same_log(fk.read_sql(table, engine, **KW), reference)  # SQLAlchemy + psycopg
    with engine.connect() as c:
        same_log(fk.read_sql(table, c, **KW), reference)
    import adbc_driver_postgresql.dbapi as adbc

    with adbc.connect(postgres) as db:
        same_log(fk.read_sql(table, db, **KW), reference)
        q = f"SELECT * FROM {table} WHERE team = $1"
        log = fk.read_sql(q, db, params=["Team C"], **KW)
        assert set(log.deals()["team"].astype(str)) == {"Team C"}


def test_postgres_errors_name_the_query(postgres, pg_tables):
    _, names = pg_tables
    with pytest.raises(fk.EventLogError, match=r"refused the query.*\nQuery: SELECT nope"):
        fk.read_sql("SELECT nope FROM " + names["native"], postgres, **KW)


def test_cli_reads_from_postgres(postgres, pg_tables, tmp_path, reference):
    _, names = pg_tables
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "funnelkit",
            "validate",
            "--sql",
            f"SELECT * FROM {names['text']}",
            "--db",
            postgres,
            "--deal",
            "deal_id",
            "--stage",
            "stage",
            "--time",
            "ts",
            "--won",
            "Won",
            "--lost",
            "Lost,Disqualified",
            "--stages",
            ",".join(reference.stages),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert f"deals: {reference.n_deals:,} = {reference.quality.won} won" in out.stdout


@pytest.mark.slow
def test_cli_sql_usage_errors(sqlite_file):
    base = [sys.executable, "-m", "funnelkit", "validate", "--deal", "d", "--stage", "s"]
    for extra, msg in (
        (["--sql", "events"], "--sql and --db go together"),
        (["--sql", "events", "--db", "sqlite:///x.db", "--sample"], "pass one input"),
    ):
        out = subprocess.run([*base, "--time", "t", *extra], capture_output=True, text=True)
        assert out.returncode == 2 and msg in out.stderr, out.stderr


@pytest.mark.slow
def test_monitor_job_on_postgres_exits_3_on_a_real_drop(postgres, tmp_path):
    """The scheduled job of issue 24: events in PostgreSQL, a 30-point drop at Demo for
    deals entering it from 2025-05-05, checked four weeks later: exit code 3."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    change = {"date": "2025-05-05", "stage": "Demo", "advance": 0.35}
    ev = fk.datasets.synthetic(8000, seed=400, start="2024-01-01", end="2025-06-30", change=change)
    engine = sqlalchemy.create_engine(postgres.replace("postgresql://", "postgresql+psycopg://"))
    name = f"drop_{uuid.uuid4().hex[:8]}"
    ev.to_sql(name, engine, index=False)
    try:
        base = [sys.executable, "-m", "funnelkit", "monitor", "--db", postgres]
        cols = ["--deal", "deal_id", "--stage", "stage", "--time", "ts", "--won", "Won"]
        cols += ["--lost", "Lost,Disqualified", "--stale-after", "60D", "--weeks", "4"]
        cols += ["--stages", ",".join(KW["stages"]), "-o", str(tmp_path / "m")]
        sql = f"SELECT * FROM {name} WHERE ts <= '2025-06-02'"
        out = subprocess.run([*base, "--sql", sql, *cols], capture_output=True, text=True)
        assert out.returncode == 3, out.stderr
        import json

        doc = json.loads((tmp_path / "m" / "alerts.json").read_text())
        fired = {(a["rule"], a["stage"]) for a in doc["alerts"]}
        assert ("conversion", "Demo") in fired
        # before the change, the same job is quiet on conversion at Demo
        sql = f"SELECT * FROM {name} WHERE ts <= '2025-05-05'"
        quiet = subprocess.run([*base, "--sql", sql, *cols], capture_output=True, text=True)
        assert quiet.returncode in (0, 3), quiet.stderr
        doc = json.loads((tmp_path / "m" / "alerts.json").read_text())
        assert ("conversion", "Demo") not in {(a["rule"], a["stage"]) for a in doc["alerts"]}
    finally:
        with engine.begin() as c:
            c.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{name}"'))
        engine.dispose()
