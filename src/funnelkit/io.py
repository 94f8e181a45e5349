"""Readers: event logs from CSV / Parquet files, and wide "date entered stage" exports."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
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
    dictionaries, CSV timestamps as text (then parsed as ISO 8601 like any other input).
    Nothing in the file is executed.

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
        ``won``, ``lost``, ``amount``, ``attrs``, ``as_of``, ``stale_after``, ``errors``...).

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
    if engine == "dask":
        from .dask import read_events as read_with_dask

        return read_with_dask(path, **kwargs)
    if engine != "pandas":
        raise EventLogError(f"Parameter `engine` must be 'pandas' or 'dask'; got {engine!r}.")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"Input `{path}` does not exist.")
    roles = C.mapped_columns(kwargs)
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
    return EventLog(table, **kwargs)


def _csv_header(p: Path) -> list[str]:
    reader = pacsv.open_csv(p)
    return list(reader.schema.names)


def from_milestones(
    deals: pd.DataFrame,
    *,
    deal: str = "deal_id",
    stage_dates: Mapping[str, str],
    amount: str | None = None,
    attrs: Sequence[str] = (),
    **kwargs: Any,
) -> EventLog:
    """Build an event log from the wide shape CRMs export: one row per deal, one
    "date entered stage X" column per stage.

    Each non-null date becomes one event ``(deal, stage, date)``; empty cells are stages
    the deal never entered. Terminal stages can be milestones too (``{"Won": "close_date"}``
    with ``won="Won"``).

    Parameters
    ----------
    deals : pandas.DataFrame
        One row per deal.
    deal : str, default "deal_id"
        Column of deal ids.
    stage_dates : mapping of str to str
        Stage name → column holding the date the deal entered it, in funnel order.
    amount, attrs
        Carried per deal, as in :class:`EventLog`.
    **kwargs
        Other keywords of :class:`EventLog` (``won``, ``lost``, ``stages``, ``as_of``,
        ``stale_after``, ``errors``...). ``stages`` defaults to the non-terminal keys of
        ``stage_dates`` in the given order.

    Returns
    -------
    EventLog

    Examples
    --------
    >>> import pandas as pd
    >>> import funnelkit as fk
    >>> wide = pd.DataFrame({"id": ["a", "b"], "lead": ["2025-01-01", "2025-01-02"],
    ...                      "demo": ["2025-01-05", None], "won": ["2025-01-20", None]})
    >>> log = fk.EventLog.from_milestones(wide, deal="id", won="Won", lost=None,
    ...     stage_dates={"Lead": "lead", "Demo": "demo", "Won": "won"})
    >>> log.stages
    ['Lead', 'Demo']
    """
    if not isinstance(deals, pd.DataFrame):
        raise TypeError(f"`deals` must be a pandas DataFrame; got {type(deals).__name__}.")
    if not stage_dates:
        raise EventLogError("Parameter `stage_dates` is empty; map each stage to its date column.")
    attrs = [attrs] if isinstance(attrs, str) else list(attrs)
    needed = [deal, *stage_dates.values(), *([amount] if amount else []), *attrs]
    missing = [c for c in dict.fromkeys(needed) if c not in deals.columns]
    if missing:
        raise EventLogError(
            f"Column(s) {missing} not found in `deals`. Available columns: {list(deals.columns)}."
        )
    carried = [c for c in dict.fromkeys([deal, *([amount] if amount else []), *attrs])]
    parts = []
    for stage_name, col in stage_dates.items():  # loop over stage columns only
        dates = deals[col]
        keep = dates.notna().to_numpy(dtype=bool, copy=True)
        if pd.api.types.is_string_dtype(dates.dtype) or dates.dtype == object:
            blank = (dates.astype("string").str.strip() == "").fillna(False)
            keep &= ~blank.to_numpy(dtype=bool)
        part = deals.loc[keep, carried].copy()
        part["stage"] = stage_name
        part["ts"] = dates[keep].to_numpy()
        part["_order"] = np.flatnonzero(keep)
        parts.append(part)
    long = pd.concat(parts, ignore_index=True)
    won = kwargs.get("won", "won")
    lost = kwargs.get("lost", "lost")
    terminal = set([won] if isinstance(won, str) else (won or [])) | set(
        [lost] if isinstance(lost, str) else (lost or [])
    )
    kwargs.setdefault("stages", [s for s in stage_dates if s not in terminal])
    long = long.drop(columns="_order")
    return EventLog(
        long, deal=deal, stage="stage", time="ts", amount=amount, attrs=attrs, **kwargs
    )
