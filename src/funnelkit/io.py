"""Readers: event logs from CSV / Parquet files, and wide "date entered stage" exports."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from . import _columns as C
from .errors import EventLogError
from .log import EventLog

if TYPE_CHECKING:
    from .dask import DaskEventLog

__all__ = ["read_events", "from_milestones"]


def read_events(
    path: str | os.PathLike, *, engine: Literal["pandas", "dask"] = "pandas", **kwargs: Any
) -> EventLog | DaskEventLog:
    """Read an event log from a CSV file, a Parquet file or a folder of Parquet files.

    Only the mapped columns are read (with pyarrow); Parquet stage columns are read as
    dictionaries, CSV timestamps as text (then parsed as ISO 8601 like any other input, or
    with ``date_format``). Nothing in the file is executed.

    A wide export (one row per deal, one date column per stage) is read when ``stage_dates``
    is given: the keywords are then those of :meth:`EventLog.from_milestones`.

    Parameters
    ----------
    path : str or path-like
        ``*.csv`` (optionally compressed, e.g. ``.csv.gz``), ``*.parquet``, or a directory
        of Parquet files.
    engine : {"pandas", "dask"}, default "pandas"
        ``"dask"`` reads with dask and returns a :class:`funnelkit.dask.DaskEventLog`
        (needs the ``dask`` extra; see the scale-out page).
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
        When a mapped column is missing, or for bad rows under ``errors="raise"``.

    Examples
    --------
    >>> import tempfile, os
    >>> import funnelkit as fk
    >>> path = os.path.join(tempfile.mkdtemp(), "events.parquet")
    >>> fk.datasets.load_sample().to_parquet(path)
    >>> log = fk.read_events(path, **fk.datasets.SAMPLE_KWARGS)
    >>> log.n_deals
    600
    """
    wide = "stage_dates" in kwargs
    if engine == "dask":
        if wide:
            raise EventLogError(
                "A wide export (`stage_dates`) is read in memory only; use engine='pandas'."
            )
        from .dask import read_events as read_with_dask

        return read_with_dask(path, **kwargs)
    if engine != "pandas":
        raise EventLogError(f"Parameter `engine` must be 'pandas' or 'dask'; got {engine!r}.")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"Input `{path}` does not exist.")
    roles = _wide_columns(kwargs) if wide else C.mapped_columns(kwargs)
    cols = list(dict.fromkeys(roles.values()))
    name = p.name.lower()
    if p.is_dir() or name.endswith((".parquet", ".pq", ".parq")):
        C.check_columns(roles, ds.dataset(p, format="parquet").schema.names, f"`{path}`")
        # stages as dictionaries straight from the pages: no per-row string hashing
        table = pq.read_table(p, columns=cols, read_dictionary=[kwargs.get("stage", "stage")])
    elif ".csv" in name or name.endswith(".txt"):
        C.check_columns(roles, _csv_header(p), f"`{path}`")
        text = {c: pa.string() for c in cols if c != kwargs.get("amount")}
        table = pacsv.read_csv(
            p,
            convert_options=pacsv.ConvertOptions(include_columns=cols, column_types=text),
        )
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
        raise EventLogError(
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


def _csv_header(p: Path) -> list[str]:
    reader = pacsv.open_csv(p)
    return list(reader.schema.names)


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
lost, amount, attrs, as_of, stale_after, calendar, errors
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
    )
