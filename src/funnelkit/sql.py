"""Event logs from databases: :func:`read_sql` (PostgreSQL, SQLite, DuckDB and any
SQLAlchemy database), read into Arrow.

The fastest path that needs no row-by-row Python is taken for each connection:

* an **ADBC** connection (``adbc_driver_postgresql``, ``adbc_driver_sqlite``...), or a URL
  ``postgresql://`` / ``sqlite:///`` when the ADBC driver is installed: the database sends
  Arrow record batches;
* a **DuckDB** connection or a ``duckdb:///`` URL: DuckDB's own Arrow batches;
* any other **SQLAlchemy** URL, engine or connection, or Python's own ``sqlite3`` (a
  ``sqlite:///`` URL without the ADBC driver): pandas reads the result in chunks into
  Arrow-backed columns.

The query is the user's own SQL, sent as given (with ``params`` bound by the driver, never
formatted into the text); a table name is checked to be a plain (optionally
schema-qualified) identifier and quoted, and only the mapped columns are selected.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from . import _columns as C
from .errors import EventLogError, InvalidParameterError
from .log import EventLog

__all__ = ["read_sql"]

#: rows per chunk on the SQLAlchemy path
_CHUNK = 100_000
#: a table name: identifiers (letters, digits, _, $; or "quoted") joined by dots
_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_TABLE = re.compile(rf"{_IDENT}(?:\.{_IDENT}){{0,2}}")
#: what the optional ``[sql]`` extra installs, for error messages
_EXTRA = 'pip install "funnelkit[sql]"'


def read_sql(
    sql: str,
    con: Any,
    *,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> EventLog:
    """Read an event log from a database table or query.

    Parameters
    ----------
    sql : str
        A table name (``"events"``, ``"crm.deal_events"``, ``'"Deal Events"'``): its mapped
        columns are read; or a query (``"SELECT ... FROM ... WHERE ..."``), run as given.
    con : str or connection
        A database URL (``"postgresql://user:pw@host/db"``, ``"sqlite:///path.db"``,
        ``"duckdb:///path.duckdb"``, or any SQLAlchemy URL such as
        ``"mysql+pymysql://..."``), a SQLAlchemy engine or connection, an ADBC connection,
        a DuckDB connection or a ``sqlite3`` connection. The drivers funnelkit is tested
        with come with ``pip install "funnelkit[sql]"``; SQLite works without them. A connection given is used and left open; one made from
        a URL is closed.
    params : sequence or mapping, optional
        Query parameters, bound by the driver in its own style (``$1`` for PostgreSQL via
        ADBC, ``?`` for SQLite and DuckDB, ``:name`` with SQLAlchemy) — never pasted into
        the text.
    **kwargs
        The keywords of :class:`EventLog` (``deal``, ``stage``, ``time``, ``stages``,
        ``won``, ``lost``, ``amount``, ``attrs``, ``as_of``, ``stale_after``, ``errors``,
        ``date_format``...). Times may be timestamp columns or ISO 8601 text (parsed as in
        a CSV file, e.g. SQLite's ``'2025-01-31 09:00:00'``).

    Returns
    -------
    EventLog

    Raises
    ------
    EventLogError
        A mapped column the result lacks (the message lists the columns it has), a table
        name that is not an identifier, a driver missing for the URL, or the database's
        own error (its message, with the query).

    Examples
    --------
    >>> import os, sqlite3, tempfile
    >>> import funnelkit as fk
    >>> path = os.path.join(tempfile.mkdtemp(), "crm.db")
    >>> with sqlite3.connect(path) as db:
    ...     _ = fk.datasets.load_sample().to_sql("events", db, index=False)
    >>> log = fk.read_sql("events", f"sqlite:///{path}", **fk.datasets.SAMPLE_KWARGS)
    >>> log.n_deals
    600
    >>> q = "SELECT * FROM events WHERE team = ?"
    >>> fk.read_sql(q, f"sqlite:///{path}", params=["Team A"], **fk.datasets.SAMPLE_KWARGS).n_deals
    188
    """
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidParameterError(
            f"Parameter `sql` must be a table name or a query (a non-empty string); got {sql!r}."
        )
    roles = C.mapped_columns(kwargs)
    query = _query(sql.strip(), list(dict.fromkeys(roles.values())))
    table = _fetch(query, con, params)
    if table.num_rows == 0:
        raise EventLogError(
            f"The query returned no rows, so there are no events to read.\nQuery: {_short(query)}"
            + (f"\nParameters: {params!r}" if params is not None else "")
        )
    missing = [f"`{c}` ({role})" for role, c in roles.items() if c not in table.column_names]
    if missing:
        raise EventLogError(
            f"The query's result has no column {', '.join(missing)}; it has "
            f"{', '.join(f'`{c}`' for c in table.column_names) or 'no columns'}. Name the "
            "columns as the result spells them (e.g. `deal=`, `time=`), or alias them in "
            "the query (SELECT opportunity_id AS deal_id ...)."
        )
    keep = [c for c in dict.fromkeys(roles.values()) if c in table.column_names]
    return EventLog(table.select(keep), **kwargs)


def _query(sql: str, columns: list[str]) -> str:
    """A query as given; a table name becomes ``SELECT <mapped columns> FROM <table>``."""
    if re.match(r"(?is)^\s*(select|with|values|table|from)\b", sql):
        return sql
    if not _TABLE.fullmatch(sql):
        raise EventLogError(
            f"Parameter `sql`={sql!r} is neither a query (SELECT/WITH ...) nor a table name "
            '(letters, digits and _, optionally schema-qualified or "quoted"). Write the '
            "query, or quote the table name."
        )
    cols = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    return f"SELECT {cols} FROM {sql}"


def _fetch(query: str, con: Any, params: Any) -> pa.Table:
    """Run ``query`` on ``con`` and return the result as an Arrow table."""
    if isinstance(con, str):
        return _from_url(query, con, params)
    module = type(con).__module__
    if module.startswith("adbc_driver_manager"):
        return _adbc(query, con, params)
    if module.lstrip("_").startswith("duckdb"):
        return _duckdb(query, con, params)
    if module.startswith("sqlalchemy"):
        return _sqlalchemy(query, con, params)
    if module == "sqlite3":  # Python's own SQLite module
        return _chunks(query, con, params)
    raise InvalidParameterError(
        f"Parameter `con` must be a database URL, a SQLAlchemy engine or connection, an "
        f"ADBC connection or a DuckDB connection; got {type(con).__name__}."
    )


def _from_url(query: str, url: str, params: Any) -> pa.Table:
    scheme = url.split(":", 1)[0].lower()
    if scheme.startswith("duckdb"):
        duckdb = _need("duckdb", url)
        path = url.split(":///", 1)[1] if ":///" in url else ":memory:"
        db = duckdb.connect(path or ":memory:")
        try:
            return _duckdb(query, db, params)
        finally:
            db.close()
    if scheme == "sqlite" and ":///" in url:  # a missing file is an error, not a new database
        path = url.split(":///", 1)[1]
        if path and path != ":memory:" and not os.path.exists(path):
            raise EventLogError(f"The SQLite database `{path}` does not exist.")
    if scheme in ("postgresql", "postgres", "sqlite"):  # no driver named: ADBC if installed
        name = "adbc_driver_sqlite" if scheme == "sqlite" else "adbc_driver_postgresql"
        try:
            driver = __import__(f"{name}.dbapi", fromlist=["connect"])
        except ImportError:
            driver = None
        if driver is not None:
            target = url.split(":///", 1)[1] if scheme == "sqlite" else url
            try:
                db = driver.connect(target)
            except Exception as exc:
                raise EventLogError(
                    f"Cannot connect to the database `{_safe(url)}`: {_first_line(exc)}"
                ) from exc
            with db:
                return _adbc(query, db, params)
        if scheme == "sqlite" and ":///" in url:  # Python's own SQLite, no extra needed
            import sqlite3

            path = url.split(":///", 1)[1]
            with contextlib.closing(sqlite3.connect(path or ":memory:")) as lite:
                return _chunks(query, lite, params)
    sqlalchemy = _need("sqlalchemy", url)
    try:
        engine = sqlalchemy.create_engine(url)
    except Exception as exc:  # the URL names a dialect or driver that is not installed
        raise EventLogError(
            f"Cannot open the database `{_safe(url)}`: {exc}. Install its driver (for the "
            f"drivers funnelkit is tested with: {_EXTRA})."
        ) from exc
    try:
        return _sqlalchemy(query, engine, params)
    finally:
        engine.dispose()


def _adbc(query: str, db: Any, params: Any) -> pa.Table:
    cur = db.cursor()
    try:
        cur.execute(query, params)
        return cur.fetch_record_batch().read_all()
    except Exception as exc:
        raise _db_error(exc, query) from exc
    finally:
        cur.close()


def _duckdb(query: str, db: Any, params: Any) -> pa.Table:
    try:
        rel = db.sql(query, params=params)  # a relation streams Arrow batches
        if rel is None:  # not a statement that returns rows
            return pa.table({})
        if hasattr(rel, "to_arrow_reader"):  # DuckDB 1.4 and later
            return rel.to_arrow_reader(_CHUNK).read_all()
        return rel.fetch_record_batch(_CHUNK).read_all()
    except Exception as exc:
        raise _db_error(exc, query) from exc


def _sqlalchemy(query: str, con: Any, params: Any) -> pa.Table:
    import sqlalchemy

    engine = con if isinstance(con, sqlalchemy.engine.Engine) else None
    try:
        if engine is not None and engine.dialect.name == "duckdb":
            with engine.connect() as c:  # DuckDB's own Arrow batches
                return _duckdb(query, c.connection.driver_connection, params)
        if engine is None and con.dialect.name == "duckdb":
            return _duckdb(query, con.connection.driver_connection, params)
        return _chunks(sqlalchemy.text(query), con, params)
    except EventLogError:
        raise
    except Exception as exc:
        raise _db_error(exc, query) from exc


def _chunks(query: Any, con: Any, params: Any) -> pa.Table:
    """pandas' chunked reader into Arrow-backed columns, then one Arrow table."""
    try:
        chunks = pd.read_sql(query, con, params=params, chunksize=_CHUNK, dtype_backend="pyarrow")
        parts = [pa.Table.from_pandas(df, preserve_index=False) for df in chunks]
    except Exception as exc:
        raise _db_error(exc, str(query)) from exc
    if not parts:
        return pa.table({})
    return pa.concat_tables(parts, promote_options="permissive")


def _need(module: str, url: str) -> Any:
    try:
        return __import__(module)
    except ImportError as exc:
        raise EventLogError(
            f"Reading `{_safe(url)}` needs the `{module}` package: {_EXTRA}."
        ) from exc


def _safe(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _db_error(exc: Exception, query: str) -> EventLogError:
    return EventLogError(
        f"The database refused the query: {_first_line(exc)}\nQuery: {_short(query)}"
    )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _short(query: str) -> str:
    return query if len(query) <= 200 else query[:197] + "..."
