"""Saved state of an event log and incremental updates: :func:`save`, :func:`load`,
:func:`update` (``log.save``, ``fk.load``, ``log.update``).

A state is a folder holding

* ``events.parquet`` (and ``events_1.parquet``, ``events_2.parquet``, ...) — every input row
  of the log (the mapped columns, as given, in input order, bad rows included). A save of
  an updated log back to the folder it was read from keeps the stored files (hard links
  into the new folder) and writes only the rows after them;
* the built log (format 2): ``paths.parquet`` (every deal's path, deal after deal: stage
  code and time of each event), ``deals.parquet`` (per deal: its count of path events,
  first and last time, outcome, its stage and time, reopened, the row of its id, amount,
  codes of the carried columns), ``rejected.parquet``
  (rejected rows and reason codes) and one ``attr_N.parquet`` / ``visit_attr_N.parquet``
  with the categories of each carried column;
* ``rejects.parquet`` — :attr:`EventLog.rejects`, for people and tools that inspect the
  state (loading does not read it);
* ``manifest.json`` — the format version, the funnelkit version that wrote it, every
  keyword of :class:`EventLog` the log was built with (stage order, won/lost names,
  ``stale_after``, ``as_of``, carried columns, calendar, ...), the event files, and the
  scalars of the built log (stage order, ``as_of``, quality counts).

Loading reads the built log back without validating or sorting (a state of format 1, rows
only, is built again), so a loaded log equals the saved one in every table. An update
builds only the deals the new rows touch and splices them into the log
(:mod:`funnelkit._update`); its result equals the full build on the union.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import _columns as C
from ._params import validate_params
from ._update import Parts, parts_of, spliced
from ._version import __version__
from .businessdays import BusinessCalendar
from .errors import EventLogError, InvalidParameterError

if TYPE_CHECKING:
    from .log import EventLog

__all__ = ["FORMAT_VERSION", "load", "save", "update"]

#: the state format this funnelkit writes and reads (a newer one is refused). Version 1
#: holds the input rows only (loading builds the log again); version 2 adds the built log
#: (paths, deals, rejected rows, categories), so loading reads it back without a build.
FORMAT_VERSION = 2
_FORMAT = "funnelkit-state"
MANIFEST, EVENTS, REJECTS = "manifest.json", "events.parquet", "rejects.parquet"
PATHS, DEALS, REJECTED = "paths.parquet", "deals.parquet", "rejected.parquet"
_DEAL_ARRAYS = ("first_ns", "last_ns", "outcome", "outcome_stage", "term_ns", "reopened")


# ---------------------------------------------------------------------------- settings
def _encode(value: Any, key: str) -> Any:
    """A keyword's value as JSON (tagged objects for times, durations, calendars)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value):
        return float(value)
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date, np.datetime64)):
        return {"__timestamp__": pd.Timestamp(value).isoformat()}
    if isinstance(value, (pd.Timedelta, dt.timedelta, np.timedelta64)):
        return {"__timedelta_ns__": int(pd.Timedelta(value).value)}
    if isinstance(value, BusinessCalendar):
        return {"__calendar__": {"weekmask": value.weekmask, "holidays": list(value.holidays)}}
    if isinstance(value, (list, tuple)):
        return [_encode(v, key) for v in value]
    if isinstance(value, Mapping):
        return {"__mapping__": [[_encode(k, key), _encode(v, key)] for k, v in value.items()]}
    raise InvalidParameterError(
        f"log.save: the keyword `{key}` holds {value!r} (type {type(value).__name__}), which "
        "cannot be written to the state's manifest (JSON): give it as text, a number, a "
        "date, a duration, a list or a mapping of those when building the log."
    )


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if "__timestamp__" in value:
            return pd.Timestamp(value["__timestamp__"])
        if "__timedelta_ns__" in value:
            return pd.Timedelta(int(value["__timedelta_ns__"]), unit="ns")
        if "__calendar__" in value:
            cal = value["__calendar__"]
            return BusinessCalendar(weekmask=cal["weekmask"], holidays=tuple(cal["holidays"]))
        if "__mapping__" in value:
            return {_decode(k): _decode(v) for k, v in value["__mapping__"]}
    return value


def _encoded_settings(log: EventLog) -> dict[str, Any]:
    return {k: _encode(v, k) for k, v in log._settings.items()}


def _check_savable(log: EventLog, action: str) -> None:
    from .log import EventLog

    if not isinstance(log, EventLog):
        raise InvalidParameterError(
            f"{action}: needs an in-memory funnelkit.EventLog; got {type(log).__name__} "
            "(a DaskEventLog: call .compute() first)."
        )
    if log.quality.source == "deals":
        raise InvalidParameterError(
            f"{action}: this log was built from a wide export (EventLog.from_milestones); "
            "its rejects and quality count rows of the deals table, which a state does not "
            "hold. Keep the export and build the log from it again."
        )
    if log._history is not None:
        raise InvalidParameterError(
            f"{action}: this log carries a field history (with_history), which a state does "
            "not hold; call it on the log without the history and attach the history "
            "afterwards with with_history(...)."
        )
    if getattr(log, "_activities", None) is not None:
        raise InvalidParameterError(
            f"{action}: this log carries activities (with_activities), which a state does "
            "not hold; call it on the log without them and attach them afterwards with "
            "with_activities(...)."
        )


# ---------------------------------------------------------------------------- save / load
def _source_table(log: EventLog, start: int = 0) -> pa.Table:
    """The log's input rows from row ``start`` on, as an Arrow table."""
    source = log._source
    if isinstance(source, pa.Table):
        return source.slice(start) if start else source
    try:
        return pa.Table.from_pandas(source.iloc[start:], preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        bad = next(
            (c for c in source.columns if source[c].dtype == object and str(c) in str(exc)),
            None,
        )
        where = f"Column `{bad}`" if bad is not None else "A column"
        raise EventLogError(
            f"log.save: {where} of the events cannot be written to Parquet ({exc}); it "
            "probably mixes types (numbers and text). Convert it, e.g. "
            "events[col] = events[col].astype(str), and build the log again."
        ) from None


def save(log: EventLog, path: str | os.PathLike[str]) -> Path:
    """Write ``log`` to the folder ``path`` (see :meth:`EventLog.save`)."""
    _check_savable(log, "log.save")
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise InvalidParameterError(
            f"log.save: `{target}` is a file; a state is a folder. Pass a folder path."
        )
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST).is_file():
        raise InvalidParameterError(
            f"log.save: the folder `{target}` holds files but no {MANIFEST}, so it is no "
            "funnelkit state; pass a new or empty folder (a state is replaced whole)."
        )
    settings = _encoded_settings(log)
    source = log._source
    n_rows = C.n_rows(source)
    # the input rows already in this folder (the log was read from it or saved to it, and
    # has the same rows first): kept, and only the rows after them written
    kept = _stored_prefix(log, target)
    start = kept[-1]["end"] if kept else 0
    table = _source_table(log, start)
    if kept and not _same_schema(target / kept[0]["file"], table):
        kept, start, table = [], 0, _source_table(log)
    # the built log, unless it holds what the parts do not (post-sale events)
    parts = parts_of(log) if log._post_sale_events is None else None
    manifest: dict[str, Any] = {
        "format": _FORMAT,
        "format_version": FORMAT_VERSION,
        "funnelkit_version": __version__,
        "settings": settings,
        "source": "arrow" if isinstance(source, pa.Table) else "pandas",
        "dtypes": (
            None
            if isinstance(source, pa.Table)
            else {str(c): str(t) for c, t in source.dtypes.items()}
        ),
        "rows": n_rows,
        "events": None,  # the event files, filled in below
        "deals": int(log.n_deals),
        "as_of": str(log.as_of),
        "filtered": log.quality.filtered,
        "parts": None if parts is None else _parts_manifest(parts),
    }
    # written beside the target, then swapped in: a reader never sees half a state
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir(parents=True)
    try:
        for f in kept:
            _keep(target / f["file"], tmp / f["file"])
        files = list(kept)
        if table.num_rows or not files:
            name = EVENTS if not files else f"events_{len(files)}.parquet"
            pq.write_table(table, tmp / name)
            size = (tmp / name).stat().st_size
            files.append({"file": name, "start": start, "end": n_rows, "bytes": size})
        manifest["events"] = files
        rejects = log.rejects
        try:
            pq.write_table(pa.Table.from_pandas(rejects, preserve_index=False), tmp / REJECTS)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            # rejected values of mixed types (why they were rejected): kept as text
            pq.write_table(
                pa.Table.from_pandas(rejects.astype(str), preserve_index=False), tmp / REJECTS
            )
        if parts is not None:
            manifest["parts"]["dtypes"] = _write_parts(parts, tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
            target.rename(old)
        tmp.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log._stored = (str(target.resolve()), files)
    return target


def _stored_prefix(log: EventLog, target: Path) -> list[dict[str, Any]]:
    """The event files of the state at ``target`` that hold the log's first rows, as
    its manifest lists them (name, first and end row, size); [] when the log was not
    read from or saved to that folder, or the folder changed since."""
    stored = log._stored
    if stored is None or stored[0] != str(target.resolve()):
        return []
    try:
        manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    files = stored[1]
    if manifest.get("events") != files or any(
        not (target / f["file"]).is_file() or (target / f["file"]).stat().st_size != f["bytes"]
        for f in files
    ):
        return []
    if not files or files[-1]["end"] > C.n_rows(log._source):
        return []
    return [dict(f) for f in files]


def _same_schema(path: Path, table: pa.Table) -> bool:
    try:
        stored = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid):
        return False
    return stored.remove_metadata().equals(table.schema.remove_metadata())


def _keep(src: Path, dst: Path) -> None:
    """A stored event file into the new state: a hard link (no copy), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _parts_manifest(parts: Parts) -> dict[str, Any]:
    """The parts' scalars, and the types of their categories (restored on reading)."""
    return {
        "stages": parts.stages,
        "inferred": parts.inferred,
        "aware": parts.aware,
        "as_of_ns": parts.as_of_ns,
        "time_span": None if parts.time_span is None else list(parts.time_span),
        "quality": parts.quality,
        "amount": parts.amount is not None,
        "attrs": [[a, str(u.dtype)] for a, (_, u) in parts.attrs.items()],
        "visit_attrs": [[a, str(u.dtype)] for a, (_, u) in parts.visit_attrs.items()],
    }


def _categories_table(uniques: pd.Index) -> pa.Table:
    return pa.table({"value": pa.array(uniques.to_numpy(), from_pandas=True)})


def _small(codes: np.ndarray) -> np.ndarray:
    """Small codes in the smallest integer type that holds them (read back in their own)."""
    if codes.size == 0 or codes.dtype.kind not in "iu":
        return codes
    lo, hi = int(codes.min()), int(codes.max())
    for t in (np.int8, np.int16, np.int32):
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
            return codes.astype(t)
    return codes


def _write_parts(parts: Parts, folder: Path) -> dict[str, str]:
    """Write the built log; returns each array's type (for reading it back in it). The
    paths hold no deal column: each deal's count of events gives it back."""
    n_events = np.bincount(parts.path_deal, minlength=parts.first_ns.size)
    paths = {"stage": parts.path_stage, "time": parts.path_time}
    deals = {k: getattr(parts, k) for k in _DEAL_ARRAYS}
    deals |= {"label_row": parts.label_rows, "n_events": n_events}
    if parts.amount is not None:
        deals["amount"] = parts.amount
    for i, (codes, uniques) in enumerate(parts.attrs.values()):
        deals[f"attr_{i}"] = codes
        pq.write_table(_categories_table(uniques), folder / f"attr_{i}.parquet")
    for i, (codes, uniques) in enumerate(parts.visit_attrs.values()):
        paths[f"visit_attr_{i}"] = codes
        pq.write_table(_categories_table(uniques), folder / f"visit_attr_{i}.parquet")
    rejected = {"row": parts.reject_rows, "reason": parts.reject_reason}
    dtypes: dict[str, str] = {}
    for name, group in ((PATHS, paths), (DEALS, deals), (REJECTED, rejected)):
        dtypes |= {f"{name}:{k}": str(v.dtype) for k, v in group.items()}
        table = pa.table({k: _small(v) for k, v in group.items()})
        # plain numbers, lz4: the fastest to write and read of Parquet's options here
        # (codes are already small; times and rows are nearly all distinct)
        pq.write_table(table, folder / name, use_dictionary=False, compression="lz4")
    dtypes["path_deal"] = str(parts.path_deal.dtype)
    return dtypes


def _read_parts(folder: Path, spec: dict[str, Any]) -> Parts:
    dtypes = spec["dtypes"]

    def arrays(name: str) -> dict[str, np.ndarray]:
        table = pq.read_table(folder / name)  # no copy where the type is the log's
        return {
            c: table.column(c).to_numpy().astype(dtypes[f"{name}:{c}"], copy=False)
            for c in table.column_names
        }

    def categories(name: str, dtype: str) -> pd.Index:
        values = pq.read_table(folder / name).column("value").to_pandas()
        index = pd.Index(values).rename(None)
        if str(index.dtype) != dtype:
            try:
                index = index.astype(dtype)
            except (TypeError, ValueError):
                pass
        return index

    paths, deals, rejected = arrays(PATHS), arrays(DEALS), arrays(REJECTED)
    attrs = {
        a: (deals[f"attr_{i}"], categories(f"attr_{i}.parquet", dtype))
        for i, (a, dtype) in enumerate(spec["attrs"])
    }
    visit_attrs = {
        a: (paths[f"visit_attr_{i}"], categories(f"visit_attr_{i}.parquet", dtype))
        for i, (a, dtype) in enumerate(spec["visit_attrs"])
    }
    span = spec["time_span"]
    return Parts(
        stages=list(spec["stages"]),
        inferred=bool(spec["inferred"]),
        aware=bool(spec["aware"]),
        as_of_ns=int(spec["as_of_ns"]),
        time_span=None if span is None else (int(span[0]), int(span[1])),
        path_deal=np.repeat(
            np.arange(deals["n_events"].size, dtype=dtypes["path_deal"]), deals["n_events"]
        ),
        path_stage=paths["stage"],
        path_time=paths["time"],
        **{k: deals[k] for k in _DEAL_ARRAYS},
        label_rows=deals["label_row"],
        amount=deals["amount"] if spec["amount"] else None,
        attrs=attrs,
        visit_attrs=visit_attrs,
        reject_rows=rejected["row"],
        reject_reason=rejected["reason"],
        quality=dict(spec["quality"]),
    )


def _read(path: str | os.PathLike[str]) -> tuple[pd.DataFrame | pa.Table, dict[str, Any]]:
    """The stored input rows and the manifest of the state at ``path``."""
    p = Path(path)
    if not (p / MANIFEST).is_file():
        what = "does not exist" if not p.exists() else f"holds no {MANIFEST}"
        raise InvalidParameterError(
            f"fk.load: `{p}` {what}; pass the folder written by log.save(path)."
        )
    try:
        manifest = json.loads((p / MANIFEST).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventLogError(
            f"fk.load: `{p / MANIFEST}` is not a funnelkit manifest: {exc}"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise EventLogError(f"fk.load: `{p / MANIFEST}` is not a funnelkit state manifest.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise EventLogError(
            f"fk.load: the state `{p}` has format version {version!r}, written by funnelkit "
            f"{manifest.get('funnelkit_version')}; this funnelkit ({__version__}) reads format "
            f"versions up to {FORMAT_VERSION}. Upgrade funnelkit, or build the log again "
            "from the CRM export."
        )
    files = manifest.get("events") or [{"file": EVENTS}]  # format 1: one file
    tables = [pq.read_table(p / f["file"]) for f in files]
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    if manifest.get("source") != "pandas":
        return table, manifest
    frame = table.to_pandas()
    for col, dtype in (manifest.get("dtypes") or {}).items():
        if col in frame and str(frame[col].dtype) != dtype:
            try:  # e.g. object text read back as pandas 3's str: the dtype as saved
                frame[col] = frame[col].astype(dtype)
            except (TypeError, ValueError):
                pass
    return frame, manifest


def _build(source: pd.DataFrame | pa.Table, settings: dict[str, Any]) -> EventLog:
    from .log import EventLog

    return EventLog(source, **settings)


def _restore(source: pd.DataFrame | pa.Table, manifest: dict[str, Any], folder: Path) -> EventLog:
    """The saved log: read back from its parts (format 2), else built from its rows."""
    from .log import EventLog

    settings = {k: _decode(v) for k, v in manifest["settings"].items()}
    spec = manifest.get("parts") if manifest.get("format_version", 1) >= 2 else None
    if spec is None:
        log = _build(source, settings)
    else:
        log = EventLog._from_parts(source, _read_parts(folder, spec), **settings)
    if manifest.get("events"):  # its rows are in this folder: a save there appends
        log._stored = (str(folder.resolve()), manifest["events"])
    return log


@validate_params({"path": [str, os.PathLike]}, name="fk.load")
def load(path: str | os.PathLike[str]) -> EventLog:
    """Read an event log saved with :meth:`EventLog.save`.

    The log is built again from the stored input rows with the stored keywords, so it
    equals the saved log in every table (visits, deals, transitions, funnel, dwell, KPIs,
    quality, rejects). States written by any funnelkit with the same or an older state
    format version are read; a newer format is refused with the version to install.

    Parameters
    ----------
    path : str or path-like
        The folder written by :meth:`EventLog.save`.

    Returns
    -------
    EventLog

    Examples
    --------
    >>> import tempfile
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = log.save(f"{tmp}/state")
    ...     again = fk.load(f"{tmp}/state")
    >>> again.funnel().equals(log.funnel())
    True
    """
    import dataclasses

    source, manifest = _read(path)
    log = _restore(source, manifest, Path(path))
    if manifest.get("filtered"):  # a log made by filter(): said so again
        log.quality = dataclasses.replace(log.quality, filtered=manifest["filtered"])
    return log


# ---------------------------------------------------------------------------- update
def _new_rows(log: EventLog, new_events: Any) -> pd.DataFrame | pa.Table:
    """The mapped columns of ``new_events`` (a frame, an Arrow table or an EventLog)."""
    from .log import EventLog

    if isinstance(new_events, EventLog):
        theirs = _encoded_settings(new_events)
        ours = _encoded_settings(log)
        differ = [
            k
            for k in sorted(set(ours) | set(theirs))
            if k != "as_of" and ours.get(k) != theirs.get(k)
        ]
        if differ:
            k = differ[0]
            raise InvalidParameterError(
                f"log.update: the new events' log was built with {k}={new_events._settings.get(k)!r}"
                f", the log being updated with {k}={log._settings.get(k)!r} (keywords that "
                f"differ: {differ}). Build both with the same keywords, or build the state "
                "again from the whole export."
            )
        return new_events._source
    if not isinstance(new_events, (pd.DataFrame, pa.Table)):
        raise InvalidParameterError(
            "log.update: `new_events` must be a pandas DataFrame, a pyarrow Table or an "
            f"EventLog; got {type(new_events).__name__}. Read files with fk.read_events."
        )
    mapped = C.mapped_columns(log._settings)
    C.check_columns(mapped, C.column_names(new_events), "the new events")
    C.check_unique_columns(mapped, C.column_names(new_events), " of the new events")
    cols = log._columns
    if isinstance(new_events, pa.Table):
        return new_events.select(cols)
    return new_events[cols]


_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)


def _union(old: pd.DataFrame | pa.Table, new: pd.DataFrame | pa.Table) -> pd.DataFrame | pa.Table:
    """Old rows, then new rows. New columns of another type are cast to the stored type
    where they can be (a day's CSV of text against stored timestamps, ids read as
    numbers); Arrow when either side is Arrow, else pandas."""
    if isinstance(old, pa.Table) or isinstance(new, pa.Table):
        try:
            a = (
                old
                if isinstance(old, pa.Table)
                else pa.Table.from_pandas(old, preserve_index=False)
            )
            b = (
                new
                if isinstance(new, pa.Table)
                else pa.Table.from_pandas(new, preserve_index=False)
            )
        except _ARROW_ERRORS:  # mixed values in a column: pandas holds them
            pass
        else:
            return _union_arrow(a, b.select(a.column_names))
    old_df = old.to_pandas() if isinstance(old, pa.Table) else old
    new_df = new.to_pandas() if isinstance(new, pa.Table) else new
    new_df = new_df[list(old_df.columns)]
    if len(new_df) == 0:
        return old_df
    for col in old_df.columns:
        if new_df[col].dtype != old_df[col].dtype:
            try:
                new_df = new_df.assign(**{col: new_df[col].astype(old_df[col].dtype)})
            except (TypeError, ValueError):  # kept as given: the log validates each value
                pass
    return pd.concat([old_df, new_df], ignore_index=True)


def _union_arrow(old: pa.Table, new: pa.Table) -> pa.Table:
    try:
        return pa.concat_tables([old, new], promote_options="permissive")
    except _ARROW_ERRORS:
        pass
    try:
        return pa.concat_tables([old, new.cast(old.schema)])
    except _ARROW_ERRORS as exc:
        differ = [
            f"`{c}` ({old.schema.field(c).type} vs {new.schema.field(c).type})"
            for c in old.column_names
            if old.schema.field(c).type != new.schema.field(c).type
        ]
        raise EventLogError(
            f"log.update: the new events' columns do not match the stored ones: "
            f"{', '.join(differ) or exc}. Read them with the same types (e.g. the time "
            "column as timestamps in both), or build the state again from all the rows."
        ) from None


def _check_updatable(log: EventLog) -> None:
    _check_savable(log, "log.update")
    if log.quality.filtered:
        raise InvalidParameterError(
            "log.update: this log was made by filter(...); update the unfiltered log and "
            "filter the result (new deals may match the filter)."
        )


def no_rows(log: EventLog) -> pd.DataFrame | pa.Table:
    """None of the log's input rows, with its columns: the new events of a day without any."""
    src = log._source
    return src.slice(0, 0) if isinstance(src, pa.Table) else src.iloc[:0]


def update(log: EventLog, new_events: Any, as_of: Any = None) -> EventLog:
    """The log of ``log``'s input rows followed by ``new_events`` (see
    :meth:`EventLog.update`)."""
    _check_updatable(log)
    new = _new_rows(log, new_events)
    settings = dict(log._settings)
    settings["as_of"] = as_of
    union = _union(log._source, new)
    fast = spliced(log, union, C.n_rows(log._source), as_of)
    out = fast if fast is not None else _build(union, settings)
    if log._stored is not None:  # the stored rows come first in the union
        out._stored = log._stored
    return out


def update_saved(path: str | os.PathLike[str], new_events: Any, as_of: Any = None) -> EventLog:
    """``fk.load(path).update(new_events, as_of)``; the result is not saved (call
    ``save`` on it). A state of format 1 (rows only) is built once, on the union, instead
    of twice."""
    source, manifest = _read(path)
    if manifest.get("filtered"):
        raise InvalidParameterError(
            f"log.update: the state `{path}` holds a log made by filter(...); update the "
            "unfiltered log and filter the result."
        )
    if manifest.get("parts") is not None:  # the saved log, read back: then the update
        return update(_restore(source, manifest, Path(path)), new_events, as_of)
    settings = {k: _decode(v) for k, v in manifest["settings"].items()}
    probe = _Settings(settings, source)
    new = _new_rows(probe, new_events)  # type: ignore[arg-type]
    settings["as_of"] = as_of
    return _build(_union(source, new), settings)


class _Settings:
    """What :func:`_new_rows` reads of a log, for a state not built yet."""

    def __init__(self, settings: dict[str, Any], source: pd.DataFrame | pa.Table) -> None:
        self._settings = settings
        self._columns = C.column_names(source)
