"""Readers: event logs from CSV / Parquet files, and wide "date entered stage" exports."""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from . import _columns as C
from ._params import CHECKED_INSIDE, Options, validate_params
from .errors import EventLogError, InvalidParameterError
from .log import EventLog

if TYPE_CHECKING:
    from .dask import DaskEventLog

__all__ = ["NA_VALUES", "read_events", "from_milestones"]

#: CSV cells read as missing values by :func:`read_events` (pandas' default ``na_values``);
#: cells holding only whitespace are missing too.
NA_VALUES: tuple[str, ...] = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)


@validate_params(
    {
        "path": [str, os.PathLike],
        "engine": [Options(str, ("pandas", "dask"))],
        "encoding": [str],
        "na_values": [CHECKED_INSIDE],
        "kwargs": [CHECKED_INSIDE],
    },
    name="fk.read_events",
)
def read_events(
    path: str | os.PathLike,
    *,
    engine: Literal["pandas", "dask"] = "pandas",
    encoding: str = "utf-8",
    na_values: Iterable[str] = NA_VALUES,
    **kwargs: Any,
) -> EventLog | DaskEventLog:
    """Read an event log from a CSV file, a Parquet file or a folder of Parquet files.

    Only the mapped columns are read (with pyarrow); Parquet stage columns are read as
    dictionaries, CSV timestamps as text (then parsed as ISO 8601 like any other input, or
    with ``date_format``). Nothing in the file is executed.

    A wide export (one row per deal, one date column per stage) is read when ``stage_dates``
    is given: the keywords are then those of :meth:`EventLog.from_milestones`.

    In a CSV file, a cell that is empty, holds only whitespace, or is one of ``na_values``
    (by default pandas' list: ``NA``, ``N/A``, ``null``, ``NULL``, ``NaN``, ``None``...)
    is a missing value: a missing deal id, stage or time makes the row a bad row (an error,
    or a reject under ``errors="drop"``), never a deal or stage named ``""`` or ``"NA"``.
    The files of a Parquet folder must agree on the type of each mapped column (time-zone
    aware timestamps with different zones are fine: they become UTC).

    Parameters
    ----------
    path : str or path-like
        ``*.csv`` (optionally compressed, e.g. ``.csv.gz``), ``*.parquet``, or a directory
        of Parquet files.
    engine : {"pandas", "dask"}, default "pandas"
        ``"dask"`` reads with dask and returns a :class:`funnelkit.dask.DaskEventLog`
        (needs the ``dask`` extra; see the scale-out page).
    encoding : str, default "utf-8"
        Text encoding of a CSV file (``"latin-1"``, ``"cp1252"``, ``"utf-16"``...); Parquet
        text is always UTF-8.
    na_values : iterable of str, default :data:`NA_VALUES`
        CSV cells read as missing values, compared exactly (case matters). Pass a shorter
        list to keep such a text as a value, e.g. ``na_values=[""]`` when ``"NA"`` is a
        real deal id. Empty and whitespace-only cells are always missing.
    **kwargs
        The keywords of :class:`EventLog` (``deal``, ``stage``, ``time``, ``stages``,
        ``won``, ``lost``, ``amount``, ``attrs``, ``as_of``, ``stale_after``, ``errors``,
        ``date_format``...); with ``stage_dates``, those of
        :meth:`EventLog.from_milestones` (``status``, ``closed_at``, ``created_at``...).

    Returns
    -------
    EventLog
        (a :class:`funnelkit.dask.DaskEventLog` with ``engine="dask"``)

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    EventLogError
        When a mapped column is missing, the files of a Parquet folder disagree on a
        column's type or time zone (``failure_cases`` lists ``file``, ``column``, ``type``
        and ``reason`` per file), the CSV file is not in ``encoding`` or cannot be parsed,
        or for bad rows under ``errors="raise"``.

    Examples
    --------
    >>> import tempfile, os
    >>> import funnelkit as fk
    >>> path = os.path.join(tempfile.mkdtemp(), "events.parquet")
    >>> fk.datasets.load_sample().to_parquet(path)
    >>> log = fk.read_events(path, **fk.datasets.SAMPLE_KWARGS)
    >>> log.n_deals
    600

    A CSV file saved by a spreadsheet in Windows-1252, with a row whose deal id is ``NA``:

    >>> csv = os.path.join(tempfile.mkdtemp(), "events.csv")
    >>> fk.datasets.load_sample().to_csv(csv, index=False, encoding="cp1252")
    >>> with open(csv, "a", encoding="cp1252") as fh:
    ...     _ = fh.write("NA,Lead,2025-01-01,,North,Owner 01,Team A\\n")
    >>> log = fk.read_events(csv, encoding="cp1252", errors="drop", **fk.datasets.SAMPLE_KWARGS)
    >>> log.n_deals, log.quality.by_reason["missing_deal"]
    (600, 1)
    """
    encoding = _check_encoding(encoding)
    nas = _check_na_values(na_values)
    wide = "stage_dates" in kwargs
    if engine == "dask":
        if wide:
            raise EventLogError(
                "A wide export (`stage_dates`) is read in memory only; use engine='pandas'."
            )
        from .dask import read_events as read_with_dask

        return read_with_dask(path, encoding=encoding, na_values=nas, **kwargs)
    if engine != "pandas":
        raise InvalidParameterError(
            f"Parameter `engine` must be 'pandas' or 'dask'; got {engine!r}."
        )
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"Input `{path}` does not exist.")
    roles = _wide_columns(kwargs) if wide else C.mapped_columns(kwargs)
    name = p.name.lower()
    if p.is_dir() or name.endswith((".parquet", ".pq", ".parq")):
        table = _read_parquet(p, roles, kwargs.get("stage", "stage"), f"`{path}`")
    elif ".csv" in name or name.endswith(".txt"):
        table = _read_csv(p, roles, kwargs.get("amount"), encoding, nas, f"`{path}`")
    else:
        raise EventLogError(
            f"Input `{path}`: unknown file type; expected .csv, .parquet or a folder of "
            "Parquet files."
        )
    if wide:
        return EventLog.from_milestones(table.to_pandas(), **kwargs)
    return EventLog(table, **kwargs)


def _wide_columns(kwargs: dict[str, Any]) -> dict[str, str]:
    """Role of each column a wide export maps (``{"deal": ..., "Engaging": ...}``)."""
    stage_dates = kwargs["stage_dates"]
    if not isinstance(stage_dates, Mapping) or not stage_dates:
        raise InvalidParameterError(
            "Parameter `stage_dates` must be a non-empty mapping of stage name → date column; "
            f"got {stage_dates!r}."
        )
    roles = {"deal": kwargs.get("deal", "deal_id")}
    roles.update({f"stage_dates[{st!r}]": str(col) for st, col in stage_dates.items()})
    for key in ("status", "closed_at", "created_at", "amount"):
        if kwargs.get(key) is not None:
            roles[key] = kwargs[key]
    attrs = kwargs.get("attrs", ())
    for a in [attrs] if isinstance(attrs, str) else attrs:
        roles[f"attr:{a}"] = a
    return roles


def _check_encoding(encoding: Any) -> str:
    if not isinstance(encoding, str):
        raise InvalidParameterError(
            f"Parameter `encoding` must be a str; got {type(encoding).__name__}."
        )
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise InvalidParameterError(
            f"Parameter `encoding`: unknown text encoding {encoding!r}; use a Python codec "
            "name such as 'utf-8', 'latin-1', 'cp1252' or 'utf-16'."
        ) from None


def _check_na_values(na_values: Any) -> tuple[str, ...]:
    if isinstance(na_values, str) or not isinstance(na_values, Iterable):
        raise InvalidParameterError(
            f"Parameter `na_values` must be a list of strings; got {na_values!r}."
        )
    values = tuple(dict.fromkeys(na_values))
    bad = [v for v in values if not isinstance(v, str)]
    if bad:
        raise InvalidParameterError(
            f"Parameter `na_values` must hold strings only; got {bad[0]!r}."
        )
    return tuple(dict.fromkeys(("", *values)))


# ------------------------------------------------------------------------------ Parquet
def _read_parquet(p: Path, roles: dict[str, str], stage: str, where: str) -> pa.Table:
    try:
        dataset = ds.dataset(p, format="parquet")
        if not dataset.files:
            raise EventLogError(f"Input {where} is a folder without Parquet files.")
        C.check_columns(roles, dataset.schema.names, where)
        schema = _folder_schema(dataset, p, roles, where) if p.is_dir() else None
    except pa.ArrowException as exc:
        raise EventLogError(f"Input {where} could not be read as Parquet: {exc}") from exc
    cols = list(dict.fromkeys(roles.values()))
    try:
        # stages as dictionaries straight from the pages: no per-row string hashing
        return pq.read_table(p, columns=cols, schema=schema, read_dictionary=[stage])
    except pa.ArrowException as exc:
        raise EventLogError(f"Input {where} could not be read as Parquet: {exc}") from exc


def check_parquet_folder(p: Path, roles: dict[str, str], where: str) -> None:
    """Raise the reader's error when the Parquet files of folder ``p`` disagree on a
    mapped column (for readers, like the Dask engine's, that read the files themselves)."""
    try:
        dataset = ds.dataset(p, format="parquet")
        if not dataset.files:
            raise EventLogError(f"Input {where} is a folder without Parquet files.")
        C.check_columns(roles, dataset.schema.names, where)
        _folder_schema(dataset, p, roles, where)
    except pa.ArrowException as exc:
        raise EventLogError(f"Input {where} could not be read as Parquet: {exc}") from exc


def _type_kind(t: pa.DataType, role: str) -> str | None:
    """What a Parquet column type means for its role; files of one folder must agree."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_null(t):  # a column of nulls only: fits any type
        return None
    if pa.types.is_timestamp(t):
        return "time-zone-aware timestamp" if t.tz is not None else "naive timestamp"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if pa.types.is_integer(t):
        return "number" if role == "amount" else "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_date(t):
        return "date"
    return str(t)


def _file_list(files: list[str], n: int = 3) -> str:
    more = f" and {len(files) - n} more" if len(files) > n else ""
    return ", ".join(files[:n]) + more


def _common_type(types: list[pa.DataType]) -> pa.DataType:
    """One type the (compatible) types of a column in several files are read as."""
    if len(set(types)) == 1:
        return types[0]
    plain = [t.value_type if pa.types.is_dictionary(t) else t for t in types]
    first = plain[0]
    if pa.types.is_timestamp(first):  # the finest unit: no value is truncated
        unit = min((t.unit for t in plain), key=["ns", "us", "ms", "s"].index)
        return pa.timestamp(unit, "UTC" if first.tz is not None else None)
    if all(pa.types.is_integer(t) for t in plain):
        return pa.int64()
    if pa.types.is_integer(first) or pa.types.is_floating(first) or pa.types.is_decimal(first):
        return pa.float64()
    if pa.types.is_string(first) or pa.types.is_large_string(first):
        return pa.large_string()
    return first


def _folder_schema(
    dataset: ds.Dataset, root: Path, roles: dict[str, str], where: str
) -> pa.Schema:
    """The schema to read the mapped columns of a Parquet folder with; raises when the
    files disagree on a mapped column: missing in some files, a different kind of type,
    or time-zone-aware in some and naive in others (pyarrow would fill, cast or relabel
    such columns silently to the first file's schema)."""
    kinds: dict[str, dict[str, list[str]]] = {}  # column -> kind -> files
    types: dict[str, list[pa.DataType]] = {}
    n_files = 0
    for frag in dataset.get_fragments():  # loop over files: footers only
        n_files += 1
        schema = frag.physical_schema
        name = os.path.relpath(frag.path, root)
        for role, col in roles.items():
            i = schema.get_field_index(col)
            kind = "missing" if i < 0 else _type_kind(schema.field(i).type, role)
            if i >= 0 and kind is not None:
                types.setdefault(col, []).append(schema.field(i).type)
            if kind is not None:
                kinds.setdefault(col, {}).setdefault(kind, []).append(name)
    role_of = {col: ("attrs" if r.startswith("attr:") else r) for r, col in roles.items()}
    problems, cases = [], []
    for col, by_kind in kinds.items():
        if len(by_kind) < 2:
            continue
        if "missing" in by_kind:
            files = by_kind["missing"]
            reason = "missing_column"
            text = (
                f"column `{col}` ({role_of[col]}) is missing from {len(files)} of {n_files} "
                f"files ({_file_list(files)}); every file must hold the mapped columns"
            )
        elif set(by_kind) == {"time-zone-aware timestamp", "naive timestamp"}:
            reason = "mixed_timezone"
            text = (
                f"column `{col}` ({role_of[col]}) mixes time zones: time-zone-aware "
                f"timestamps in {_file_list(by_kind['time-zone-aware timestamp'])}, naive "
                f"ones in {_file_list(by_kind['naive timestamp'])}; write them all aware "
                "(e.g. tz_localize('UTC') the naive ones) or all naive"
            )
        else:
            reason = "mixed_types"
            found = "; ".join(f"{k} in {_file_list(f)}" for k, f in by_kind.items())
            text = (
                f"column `{col}` ({role_of[col]}) has different types: {found}; write every "
                "file with one type (e.g. ids as text), or read the files, cast the column "
                "and pass the table to fk.EventLog"
            )
        problems.append(text)
        for kind, files in by_kind.items():
            cases += [(f, col, kind, reason) for f in files]
    if problems:
        raise EventLogError(
            f"Input {where}: the Parquet files disagree:\n"
            + "\n".join(f"  - {t}" for t in problems),
            failure_cases=pd.DataFrame(cases, columns=["file", "column", "type", "reason"]),
        )
    cols = dict.fromkeys(roles.values())
    return pa.schema([(c, _common_type(types[c]) if c in types else pa.null()) for c in cols])


# ---------------------------------------------------------------------------------- CSV
def _read_csv(
    p: Path,
    roles: dict[str, str],
    amount: str | None,
    encoding: str,
    na_values: tuple[str, ...],
    where: str,
) -> pa.Table:
    read = pacsv.ReadOptions(encoding=encoding)
    header = _csv_header(p, read, where, encoding)
    C.check_columns(roles, header, where)
    C.check_unique_columns(roles, header, where)
    cols = list(dict.fromkeys(roles.values()))
    text = [c for c in cols if c != amount]
    convert = pacsv.ConvertOptions(
        include_columns=cols,
        column_types=dict.fromkeys(text, pa.string()),
        null_values=list(na_values),
        strings_can_be_null=True,
    )
    try:
        table = pacsv.read_csv(p, read_options=read, convert_options=convert)
    except (pa.ArrowException, UnicodeError) as exc:
        raise _csv_error(exc, header, where, encoding) from exc
    for c in text:  # whitespace-only cells are missing too
        col = table.column(c)
        blank = pc.utf8_is_space(col)
        if pc.any(blank).as_py():
            col = pc.if_else(blank, pa.scalar(None, col.type), col)
            table = table.set_column(table.schema.get_field_index(c), c, col)
    return table


def csv_header(p: Path, encoding: str, where: str) -> list[str]:
    """The column names of CSV file ``p`` (for readers that read the rows themselves);
    a clear error when the header cannot be read in ``encoding``."""
    return _csv_header(p, pacsv.ReadOptions(encoding=encoding), where, encoding)


def _csv_header(p: Path, read: pacsv.ReadOptions, where: str, encoding: str) -> list[str]:
    if encoding == "utf-8" and ".csv" == p.suffix.lower():
        with p.open("rb") as fh:
            if fh.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                raise EventLogError(
                    f"Input {where} is UTF-16 text, not UTF-8: pass encoding='utf-16' "
                    "(command line: --encoding utf-16) or save the file as UTF-8."
                )
    try:
        reader = pacsv.open_csv(p, read_options=read)
    except (pa.ArrowException, UnicodeError) as exc:
        raise _csv_error(exc, None, where, encoding) from exc
    return list(reader.schema.names)


def _csv_error(
    exc: BaseException, header: list[str] | None, where: str, encoding: str
) -> EventLogError:
    """A clear error for a CSV file pyarrow could not read, naming the column."""
    msg = str(exc)
    found = re.search(r"CSV column #(\d+)", msg)
    column = ""
    if found and header is not None and int(found.group(1)) < len(header):
        column = f" (column `{header[int(found.group(1))]}`)"
    if "invalid UTF8" in msg or isinstance(exc, UnicodeError):
        if encoding == "utf-8":
            return EventLogError(
                f"Input {where} is not UTF-8 text{column}: it holds bytes that are not "
                "valid UTF-8 (Latin-1 / Windows-1252 files, as Excel saves them, look like "
                "this). Pass encoding='latin-1' or 'cp1252' (command line: --encoding), or "
                "convert the file to UTF-8 (e.g. iconv -f cp1252 -t utf-8 in.csv > out.csv)."
            )
        return EventLogError(
            f"Input {where} is not {encoding} text{column}: {msg}. Pass the file's encoding "
            "as encoding=... (command line: --encoding)."
        )
    return EventLogError(f"Input {where} could not be read as CSV{column}: {msg}")


def from_milestones(
    deals: pd.DataFrame,
    *,
    deal: str = "deal_id",
    stage_dates: Mapping[str, str],
    status: str | None = None,
    closed_at: str | None = None,
    created_at: str | None = None,
    date_format: str | Mapping[str, str] | None = None,
    stage_map: Mapping[Any, str] | None = None,
    stages: Sequence[str] | None = None,
    won: str | Sequence[str] | None = "won",
    lost: str | Sequence[str] | None = "lost",
    amount: str | None = None,
    attrs: Sequence[str] | str = (),
    as_of: Any = None,
    stale_after: Any = None,
    calendar: Any = None,
    errors: Literal["raise", "drop"] = "raise",
    phases: Mapping[str, Mapping[str, str]] | None = None,
) -> EventLog:
    """Build an event log from a wide export: one row per deal, one date column per stage.

    The same as :meth:`EventLog.from_milestones`, which documents every parameter: each
    date becomes an event, ``status`` and ``closed_at`` give won/lost outcomes, and every
    deal is either in the log or in ``log.rejects`` with a reason.

    Parameters
    ----------
    deals : pandas.DataFrame
        One row per deal.
    deal, stage_dates, status, closed_at, created_at, date_format, stage_map, stages, won, \
lost, amount, attrs, as_of, stale_after, calendar, errors, phases
        See :meth:`EventLog.from_milestones`.

    Returns
    -------
    EventLog

    Examples
    --------
    >>> import pandas as pd
    >>> import funnelkit as fk
    >>> wide = pd.DataFrame({"id": ["a", "b"], "lead": ["2025-01-01", "2025-01-02"],
    ...                      "demo": ["2025-01-05", None], "won": ["2025-01-20", None]})
    >>> log = fk.io.from_milestones(wide, deal="id", won="Won", lost=None,
    ...     stage_dates={"Lead": "lead", "Demo": "demo", "Won": "won"})
    >>> log.stages, log.n_deals, log.n_events
    (['Lead', 'Demo'], 2, 4)
    """
    return EventLog.from_milestones(
        deals,
        deal=deal,
        stage_dates=stage_dates,
        status=status,
        closed_at=closed_at,
        created_at=created_at,
        date_format=date_format,
        stage_map=stage_map,
        stages=stages,
        won=won,
        lost=lost,
        amount=amount,
        attrs=attrs,
        as_of=as_of,
        stale_after=stale_after,
        calendar=calendar,
        errors=errors,
        phases=phases,
    )
