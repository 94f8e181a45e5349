"""Engine-neutral partial summaries of an event log, for scale-out (DESIGN §7).

A distributed engine splits the rows by deal (every row of a deal in one partition) and,
per partition, calls :func:`summarize`: the partition's pandas rows → the in-memory kernel
(:class:`funnelkit.EventLog` with the global ``as_of`` and the declared stages) → a
:class:`Summary` of small long-form tables. :func:`merge` combines summaries (associative
and commutative, so any tree of merges gives the same result), and the ``*_table``
functions turn the final summary into the tables of the in-memory analyses.

Plain pandas in, plain objects out: nothing here knows about dask. ``funnelkit.dask``
drives it on a dask cluster; an adapter for another engine (Spark's ``mapInPandas`` /
``applyInPandas``) calls the same three steps — see ``docs/scale-out.md``.

The summary tables (every column but the listed value columns is a key; merging is a
group-by sum over the keys):

``deals``         attrs…, entered (JSON list of stage names), outcome → deals, amount_sum,
                  amount_sq, amount_n
``transitions``   from_stage, to_stage, to_kind → transitions, deals, dwell_n, dwell_sum
``cycle_sums``    attrs…, outcome → deals, sum
``positions``     stage, position → deals (first visits, for the inferred stage order)
``patterns``      pattern (JSON: start state and exit counts) → deals (leverage bootstrap)
sketches          ``transition_dwell`` (from_stage, to_stage, to_kind), ``dwell`` (attrs…,
                  stage, first_visit), ``cycle`` (attrs…, outcome) → value, binned,
                  events, censored

Durations are kept exactly — (value, events, censored) per distinct value — while a group
has at most ``exact_limit`` distinct values; beyond that the group switches to log-spaced
bins of ratio :data:`BIN_RATIO`, each value represented by its bin's geometric centre, at
most :data:`BIN_ERROR` (0.5%) from the true value. Whether a group ends up binned depends
only on the union of its values, not on the order of merges.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import _columns as C
from . import _scope, _stats
from . import _validate as V
from ._columns import NAT
from ._expr import where_mask
from ._kernel import NO_NEXT
from ._segments import attr_column, expand, normalize_by
from ._segments import seg_columns as _seg_columns
from ._segments import segment_codes as _segment_codes
from .errors import EventLogError, InvalidParameterError
from .funnel import assemble
from .kpis import kpi_table
from .markov import ChainData, deal_patterns, pattern_chain
from .quality import REASONS, QualityReport

if TYPE_CHECKING:
    from collections.abc import Callable

    from .log import EventLog

    #: the funnel's competing-risks clock of a partitioned log, called as ``clock(by,
    #: products, *, skips, weighted, win, period_ns)``: estimates per (segment of ``by``)
    #: × stage, computed where the subjects live (:mod:`funnelkit._clock`;
    #: ``DaskEventLog._clock`` is one)
    Clock = Callable[..., dict[str, Any]]


__all__ = [
    "BIN_ERROR",
    "BIN_RATIO",
    "ROW",
    "Config",
    "Layout",
    "Summary",
    "from_frame",
    "merge",
    "summarize",
    "time_stats",
    "to_frame",
]

#: column holding each row's input-order key: (source partition << ROW_BITS) | position
ROW = "__funnelkit_row"
ROW_BITS = 40
#: log-spaced duration bins: [r**b, r**(b+1)) ns, represented by r**(b + 1/2)
BIN_RATIO = 1.01
#: largest relative error of a binned duration: sqrt(BIN_RATIO) - 1 < 0.5%
BIN_ERROR = math.sqrt(BIN_RATIO) - 1
_LOG_RATIO = math.log(BIN_RATIO)
_OUTCOME_NAMES = [str(o) for o in V.OUTCOMES]  # open, won, lost, stale
_KINDS = np.array(["stage", "won", "lost"], dtype=object)
_SKETCH_VALUES = ["value", "binned", "events", "censored"]


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Config:
    """What every partition needs to build its part of the log.

    ``settings`` are the :class:`funnelkit.EventLog` keywords except ``as_of``;
    ``as_of_ns`` is the global observation time on the log's clock (naive ns, UTC for
    aware logs); ``aware``/``mixed`` the global time-zone decision; ``removed`` row keys of
    deals with a conflicting outcome to leave out up front (see ``funnelkit.dask``);
    ``order`` the global stage order of a log whose order is inferred, once known: each
    partition's log then reads its stages in that order while breaking ties between
    simultaneous events as an inferred order does (by input order), as in memory.
    """

    settings: dict[str, Any]
    columns: tuple[str, ...]
    as_of_ns: int | None = None
    aware: bool = False
    mixed: bool = False
    removed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    exact_limit: int = 1024
    order: tuple[str, ...] | None = None

    @property
    def attrs(self) -> list[str]:
        return list(self.settings.get("attrs") or [])

    @property
    def errors(self) -> str:
        return str(self.settings.get("errors", "raise"))

    @property
    def infer_order(self) -> bool:
        """The partitions do not know the stage order (none declared, none given yet)."""
        return self.settings.get("stages") is None and self.order is None


def row_keys(n: int, partition: int) -> np.ndarray:
    """Input-order keys of the ``n`` rows of source partition ``partition``."""
    return (np.int64(partition) << ROW_BITS) + np.arange(n, dtype=np.int64)


def row_positions(keys: np.ndarray, source_rows: dict[int, int]) -> np.ndarray:
    """Global input positions of row keys, from the row count of every source partition."""
    keys = np.asarray(keys, dtype=np.int64)
    if not source_rows:
        return keys
    n_src = max(source_rows) + 1
    counts = np.zeros(n_src, dtype=np.int64)
    for number, k in source_rows.items():
        counts[number] = k
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    pid = keys >> ROW_BITS
    return offsets[pid] + (keys & ((np.int64(1) << ROW_BITS) - 1))


# --------------------------------------------------------------------------- first pass
def time_stats(pdf: pd.DataFrame, settings: dict[str, Any]) -> dict[str, Any]:
    """Per partition, before any shuffle: parsed times by kind (for the global time-zone
    decision) and the latest time of a row that passes the row-level rules, per kind (the
    default ``as_of`` under each decision). Merge with :func:`merge_time_stats`."""
    out: dict[str, Any] = {"aware": 0, "naive": 0, "max_aware": None, "max_naive": None}
    if len(pdf) == 0:
        return out
    t = C.parse_times(pdf[settings["time"]], settings.get("date_format"))
    parsed = ~t.null & ~t.unparseable
    row_aware = np.where(t.mixed_tz, not t.aware, t.aware) & parsed
    row_naive = parsed & ~row_aware
    ns = t.ns.copy()
    if t.mixed_tz.any():  # parse_times blanks the minority kind: parse those rows alone
        idx = np.flatnonzero(t.mixed_tz)
        ns[idx] = C.parse_times(pdf[settings["time"]].iloc[idx], settings.get("date_format")).ns
    good = ~C.isna(pdf[settings["deal"]])
    codes, names = C.stage_codes(pdf[settings["stage"]], settings.get("stage_map"))
    good &= codes >= 0
    if settings.get("stages") is not None:
        known = (
            set(settings["stages"])
            | set(_names(settings.get("won")))
            | set(_names(settings.get("lost")))
        )
        ok = np.array([nm in known for nm in names] + [False], dtype=bool)
        good &= ok[codes]
    out["aware"] = int(row_aware.sum())
    out["naive"] = int(row_naive.sum())
    for kind, mask in (("max_aware", row_aware), ("max_naive", row_naive)):
        sel = good & mask
        if sel.any():
            out[kind] = int(ns[sel].max())
    return out


def merge_time_stats(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"aware": 0, "naive": 0, "max_aware": None, "max_naive": None}
    for p in parts:
        out["aware"] += p["aware"]
        out["naive"] += p["naive"]
        for k in ("max_aware", "max_naive"):
            if p[k] is not None:
                out[k] = p[k] if out[k] is None else max(out[k], p[k])
    return out


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


# --------------------------------------------------------------------------- partition log
@dataclass
class Part:
    """A partition's in-memory log and the rows it did not see.

    ``keys`` are the row keys of the rows given to ``log`` (its ``row`` numbers index
    them); ``extra`` holds rows rejected before or instead of the log (the mapped
    columns, :data:`ROW` and ``reason``); ``failure`` the bad rows under
    ``errors="raise"``."""

    log: EventLog | None
    keys: np.ndarray
    extra: pd.DataFrame
    failure: pd.DataFrame | None
    all_keys: np.ndarray


def _reject_frame(
    events: pd.DataFrame, keys: np.ndarray, rows: np.ndarray, reason
) -> pd.DataFrame:
    out = events.iloc[rows].reset_index(drop=True)
    out[ROW] = keys[rows]
    out["reason"] = pd.Series(np.asarray(reason, dtype=object), dtype=object).astype(str)
    return out


def _cases_to_keys(cases: pd.DataFrame, keys: np.ndarray) -> pd.DataFrame:
    out = cases.drop(columns="row").reset_index(drop=True)
    out[ROW] = keys[cases["row"].to_numpy(dtype=np.int64)]
    return out


def build_partition(pdf: pd.DataFrame, cfg: Config) -> Part:
    """The in-memory :class:`~funnelkit.EventLog` of one partition of whole deals.

    Rows are put back in input order (by :data:`ROW`), so ties resolve as in memory. Rows
    of the time-zone kind that is the minority *globally* are rejected here
    (``mixed_timezone``), since the partition alone could decide the other way; so are the
    rows in ``cfg.removed`` (``conflicting_outcome``).
    """
    from .log import EventLog

    keys = pdf[ROW].to_numpy(dtype=np.int64)
    if keys.size > 1 and (np.diff(keys) < 0).any():
        order = np.argsort(keys, kind="stable")
        pdf, keys = pdf.iloc[order], keys[order]
    events = pdf[list(cfg.columns)].reset_index(drop=True)
    n = len(events)
    reason = np.full(n, "", dtype=object)
    s = cfg.settings
    if cfg.mixed and n:
        t = C.parse_times(events[s["time"]], s.get("date_format"))
        parsed = ~t.null & ~t.unparseable
        row_aware = np.where(t.mixed_tz, not t.aware, t.aware)
        minority = parsed & (row_aware != cfg.aware) & ~C.isna(events[s["deal"]])
        minority &= ~C.isna(events[s["stage"]])
        reason[minority] = "mixed_timezone"
    if cfg.removed.size and n:
        reason[(reason == "") & np.isin(keys, cfg.removed)] = "conflicting_outcome"
    gone = reason != ""
    extra = _reject_frame(events, keys, np.flatnonzero(gone), reason[gone])
    kept_rows = np.flatnonzero(~gone)
    kept_keys = keys[kept_rows]
    log = None
    failure = None
    if kept_rows.size:
        kept = events.iloc[kept_rows].reset_index(drop=True) if gone.any() else events
        as_of = None if cfg.as_of_ns is None else pd.Timestamp(cfg.as_of_ns)
        try:
            if cfg.order is not None and s.get("stages") is None:
                log = EventLog._with_order(kept, cfg.order, **s, as_of=as_of)
            else:
                log = EventLog(kept, **s, as_of=as_of)
        except EventLogError as err:
            cases = err.failure_cases
            if not len(cases) or "row" not in cases.columns:
                raise
            if cfg.errors == "drop" and not str(err).startswith("No usable events"):
                raise
            frame = _cases_to_keys(cases, kept_keys)
            if cfg.errors == "drop":
                extra = pd.concat([f for f in (extra, frame) if len(f)], ignore_index=True)
            else:
                failure = frame
    if cfg.errors == "raise" and len(extra):
        failure = extra if failure is None else pd.concat([extra, failure], ignore_index=True)
        extra = extra.iloc[:0]
    return Part(log, kept_keys, extra, failure, keys)


# --------------------------------------------------------------------------- sketches
def to_bins(values: np.ndarray) -> np.ndarray:
    """Bin index of durations in ns: -1 for 0, else floor(log(v) / log(BIN_RATIO))."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore"):
        b = np.floor(np.log(np.maximum(v, 1.0)) / _LOG_RATIO)
    return np.where(v <= 0, -1, b).astype(np.int64)


def bin_values(bins: np.ndarray) -> np.ndarray:
    """Representative duration (ns, float) of each bin: its geometric centre."""
    b = np.asarray(bins, dtype=np.float64)
    return np.where(b < 0, 0.0, np.exp((b + 0.5) * _LOG_RATIO))


def _aggregate(df: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    if df.empty:
        return df[keys + values].reset_index(drop=True)
    out = df.groupby(keys, dropna=False, sort=False, observed=True)[values].sum().reset_index()
    return out


def compress(df: pd.DataFrame, keys: list[str], exact_limit: int) -> pd.DataFrame:
    """Aggregate sketch rows, switching to bins every group that holds a binned row or
    more than ``exact_limit`` distinct exact values (order-independent)."""
    cols = keys + ["value", "binned"]
    df = _aggregate(df, cols, ["events", "censored"])
    if df.empty:
        return df
    grp = df.groupby(keys, dropna=False, sort=False, observed=True) if keys else None
    binned = df["binned"].to_numpy(dtype=bool)
    if grp is not None:
        any_binned = grp["binned"].transform("any").to_numpy(dtype=bool)
        n_exact = grp["binned"].transform(lambda b: int((~b.astype(bool)).sum())).to_numpy()
    else:
        any_binned = np.full(len(df), binned.any())
        n_exact = np.full(len(df), int((~binned).sum()))
    convert = ~binned & (any_binned | (n_exact > exact_limit))
    if convert.any():
        value = df["value"].to_numpy(dtype=np.int64).copy()
        value[convert] = to_bins(value[convert])
        df = df.assign(value=value, binned=binned | convert)
        df = _aggregate(df, cols, ["events", "censored"])
    return df


def _sketch(group: np.ndarray, values: np.ndarray, censored: np.ndarray, limit: int):
    """Sketch rows of one partition: (group, value, binned, events, censored) arrays."""
    g = group.astype(np.int64)
    v = values.astype(np.int64)
    c = censored.astype(bool)
    if g.size == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, np.zeros(0, dtype=bool), z, z
    order = np.lexsort((v, g))
    g, v, c = g[order], v[order], c[order]
    new = np.ones(g.size, dtype=bool)
    new[1:] = (g[1:] != g[:-1]) | (v[1:] != v[:-1])
    start = np.flatnonzero(new)
    run = np.cumsum(new) - 1
    ev = np.bincount(run, weights=~c, minlength=start.size).astype(np.int64)
    ce = np.bincount(run, weights=c, minlength=start.size).astype(np.int64)
    ug, uv = g[start], v[start]
    n_distinct = np.bincount(ug)
    binned = n_distinct[ug] > limit
    if binned.any():
        uv = np.where(binned, to_bins(uv), uv)
        key = pd.DataFrame({"g": ug, "v": uv, "b": binned, "e": ev, "c": ce})
        key = key.groupby(["g", "b", "v"], sort=True)[["e", "c"]].sum().reset_index()
        return (
            key["g"].to_numpy(np.int64),
            key["v"].to_numpy(np.int64),
            key["b"].to_numpy(bool),
            key["e"].to_numpy(np.int64),
            key["c"].to_numpy(np.int64),
        )
    return ug, uv, binned, ev, ce


# --------------------------------------------------------------------------- the summary
_TABLE_VALUES: dict[str, list[str]] = {
    "deals": ["deals", "amount_sum", "amount_sq", "amount_n"],
    "transitions": ["transitions", "deals", "dwell_n", "dwell_sum"],
    "cycle_sums": ["deals", "sum"],
    "positions": ["deals"],
    "patterns": ["deals"],
}
_SKETCHES = ("transition_dwell", "dwell", "cycle")


def _table_keys(name: str, attrs: Sequence[str]) -> list[str]:
    a = [attr_column(x) for x in attrs]
    return {
        "deals": [*a, "entered", "outcome"],
        "transitions": ["from_stage", "to_stage", "to_kind"],
        "cycle_sums": [*a, "outcome"],
        "positions": ["stage", "position"],
        "patterns": ["pattern"],
        "transition_dwell": ["from_stage", "to_stage", "to_kind"],
        "dwell": [*a, "stage", "first_visit"],
        "cycle": [*a, "outcome"],
    }[name]


def _values(name: str) -> list[str]:
    return _SKETCH_VALUES if name in _SKETCHES else _TABLE_VALUES[name]


def _empty_table(name: str, attrs: Sequence[str]) -> pd.DataFrame:
    cols: dict[str, Any] = {k: pd.Series([], dtype=object) for k in _table_keys(name, attrs)}
    for v in _values(name):
        dtype = (
            bool
            if v == "binned"
            else np.float64
            if v.startswith(("amount_s", "dwell_s", "sum"))
            else np.int64
        )
        cols[v] = pd.Series([], dtype=dtype)
    return pd.DataFrame(cols)


_COUNTS = (
    "rows_in",
    "rows_used",
    "rows_dropped",
    "rows_removed",
    "rows_collapsed",
    "reopened",
    "deals_without_amount",
    "unresolved_ties",
    "rows_post_sale",
    "post_sale_deals",
)


@dataclass
class Summary:
    """Mergeable partial summary of some partitions of whole deals.

    Attributes
    ----------
    attrs : list of str
        Carried attributes (their values key the segment tables).
    counts : dict
        Row and deal counts of the quality report (``rows_in``, ``rows_used``, ...).
    by_reason, attr_changes : dict
        As in :class:`~funnelkit.QualityReport`.
    source_rows : dict
        Rows per source partition (numbers the rows of ``rejects`` globally).
    max_time_ns : int or None
        Latest event time among rows that passed validation.
    conflict_rows : ndarray
        Row keys of deals with a conflicting outcome (``errors="drop"``).
    failure : DataFrame or None
        Bad rows under ``errors="raise"`` (mapped columns, :data:`ROW`, ``reason``).
    tables : dict of DataFrame
        The long-form tables listed in the module docstring.
    attr_first : dict of DataFrame
        Per attribute, ``value`` → ``first_row`` (row key of its first appearance): the
        order of segments, as in memory (first appearance in the input).
    exact_limit : int
        Distinct durations a sketch group keeps exactly.
    """

    attrs: list[str]
    exact_limit: int
    counts: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    attr_changes: dict[str, int] = field(default_factory=dict)
    source_rows: dict[int, int] = field(default_factory=dict)
    max_time_ns: int | None = None
    conflict_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    failure: pd.DataFrame | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    attr_first: dict[str, pd.DataFrame] = field(default_factory=dict)

    @classmethod
    def empty(cls, attrs: Sequence[str], exact_limit: int) -> Summary:
        names = [*_TABLE_VALUES, *_SKETCHES]
        return cls(
            attrs=list(attrs),
            exact_limit=exact_limit,
            counts=dict.fromkeys(_COUNTS, 0),
            tables={n: _empty_table(n, attrs) for n in names},
            attr_first={
                a: pd.DataFrame({"value": pd.Series([], dtype=object), "first_row": []})
                for a in attrs
            },
        )

    @property
    def n_deals(self) -> int:
        return int(self.tables["deals"]["deals"].sum())


def _add(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def merge(summaries: Iterable[Summary]) -> Summary:
    """Combine partial summaries (associative and commutative)."""
    items = list(summaries)
    if not items:
        raise ValueError("merge() needs at least one summary")
    if len(items) == 1:
        return items[0]
    first = items[0]
    out = Summary.empty(first.attrs, first.exact_limit)
    for s in items:
        out.counts = _add(out.counts, s.counts)
        out.by_reason = _add(out.by_reason, s.by_reason)
        out.attr_changes = _add(out.attr_changes, s.attr_changes)
        out.source_rows = _add(out.source_rows, s.source_rows)
        if s.max_time_ns is not None:
            m = out.max_time_ns
            out.max_time_ns = s.max_time_ns if m is None else max(m, s.max_time_ns)
    out.conflict_rows = np.concatenate([s.conflict_rows for s in items])
    failures = [s.failure for s in items if s.failure is not None]
    out.failure = pd.concat(failures, ignore_index=True) if failures else None
    for name in out.tables:
        keys = _table_keys(name, first.attrs)
        parts = [s.tables[name] for s in items if len(s.tables[name])]
        if not parts:
            continue
        df = pd.concat(parts, ignore_index=True)
        if name in _SKETCHES:
            out.tables[name] = compress(df, keys, first.exact_limit)
        else:
            out.tables[name] = _aggregate(df, keys, _TABLE_VALUES[name])
    for a in first.attrs:
        parts = [s.attr_first[a] for s in items if len(s.attr_first[a])]
        if parts:
            df = pd.concat(parts, ignore_index=True)
            out.attr_first[a] = (
                df.groupby("value", sort=False, dropna=True)["first_row"].min().reset_index()
            )
    return out


# --------------------------------------------------------------------------- transport
def _ipc(df: pd.DataFrame) -> bytes:
    import pyarrow as pa

    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(payload: bytes) -> pd.DataFrame:
    import pyarrow as pa

    return pa.ipc.open_stream(pa.py_buffer(payload)).read_all().to_pandas()


def to_frame(summary: Summary) -> pd.DataFrame:
    """A summary as a DataFrame of fixed schema ``summary`` (str), ``part`` (str),
    ``payload`` (bytes): what an engine whose partition function must return a DataFrame
    (Spark's ``applyInPandas``/``mapInPandas`` with schema ``"summary string, part string,
    payload binary"``) sends back. Tables travel as Arrow IPC streams, the rest as JSON;
    nothing is pickled. :func:`from_frame` reads any number of them back."""
    import uuid

    meta = {
        "attrs": summary.attrs,
        "exact_limit": summary.exact_limit,
        "counts": summary.counts,
        "by_reason": summary.by_reason,
        "attr_changes": summary.attr_changes,
        "source_rows": {str(k): v for k, v in summary.source_rows.items()},
        "max_time_ns": summary.max_time_ns,
        "conflict_rows": [int(x) for x in summary.conflict_rows],
    }
    parts = [("meta", json.dumps(meta).encode())]
    parts += [(f"table:{k}", _ipc(v)) for k, v in summary.tables.items()]
    parts += [(f"attr_first:{k}", _ipc(v)) for k, v in summary.attr_first.items()]
    if summary.failure is not None:
        parts.append(("failure", _ipc(summary.failure)))
    sid = uuid.uuid4().hex
    return pd.DataFrame(
        {
            "summary": [sid] * len(parts),
            "part": [p for p, _ in parts],
            "payload": [b for _, b in parts],
        }
    )


def from_frame(frame: pd.DataFrame) -> list[Summary]:
    """The summaries in rows made by :func:`to_frame` (rows of several summaries may be
    concatenated in any order); combine them with :func:`merge`."""
    out = []
    for _, rows in frame.groupby("summary", sort=False):  # loop over summaries
        parts = dict(zip(rows["part"], rows["payload"], strict=True))
        meta = json.loads(bytes(parts["meta"]).decode())
        s = Summary.empty(meta["attrs"], int(meta["exact_limit"]))
        s.counts = {k: int(v) for k, v in meta["counts"].items()}
        s.by_reason = {k: int(v) for k, v in meta["by_reason"].items()}
        s.attr_changes = {k: int(v) for k, v in meta["attr_changes"].items()}
        s.source_rows = {int(k): int(v) for k, v in meta["source_rows"].items()}
        s.max_time_ns = meta["max_time_ns"]
        s.conflict_rows = np.asarray(meta["conflict_rows"], dtype=np.int64)
        for key, payload in parts.items():
            kind, _, name = key.partition(":")
            if kind == "table":
                s.tables[name] = _from_ipc(bytes(payload))
            elif kind == "attr_first":
                s.attr_first[name] = _from_ipc(bytes(payload))
            elif kind == "failure":
                s.failure = _from_ipc(bytes(payload))
        out.append(s)
    return out


# --------------------------------------------------------------------------- one partition
def summarize(pdf: pd.DataFrame, cfg: Config) -> Summary:
    """The partial summary of one partition of whole deals.

    Parameters
    ----------
    pdf : pandas.DataFrame
        Every row of the partition's deals: the mapped columns and :data:`ROW`.
    cfg : Config
        The global settings (``as_of``, stage order, time-zone decision).
    """
    return _summarize_part(pdf, cfg, build_partition(pdf, cfg))


def summarize_with_clock(pdf: pd.DataFrame, cfg: Config, lay: Layout, spec) -> tuple:
    """:func:`summarize` and, from the same partition log, its subjects of the funnel's
    clock split by stage (:func:`funnelkit._clock.subjects_by_stage`): ``(summary,
    piece of stage 0, ...)``. For a log whose stage order is declared, so known before
    the summaries are merged (``lay`` then holds what the clock reads)."""
    from ._clock import subjects_by_stage

    part = build_partition(pdf, cfg)
    return (_summarize_part(pdf, cfg, part), *subjects_by_stage(part.log, lay, spec))


def _summarize_part(pdf: pd.DataFrame, cfg: Config, part: Part) -> Summary:
    out = Summary.empty(cfg.attrs, cfg.exact_limit)
    src = np.bincount(part.all_keys >> ROW_BITS) if part.all_keys.size else np.zeros(0, int)
    out.source_rows = {int(p): int(k) for p, k in enumerate(src) if k}
    out.counts["rows_in"] = int(part.all_keys.size)
    for a in cfg.attrs:
        col = pdf[a]
        frame = pd.DataFrame({"value": col.astype(object), "first_row": pdf[ROW].to_numpy()})
        frame = frame[col.notna().to_numpy()]
        out.attr_first[a] = (
            frame.groupby("value", sort=False)["first_row"].min().reset_index()
            if len(frame)
            else out.attr_first[a]
        )
    if part.failure is not None:
        out.failure = part.failure
    if len(part.extra):
        out.counts["rows_dropped"] += len(part.extra)
        out.by_reason = _add(out.by_reason, part.extra["reason"].value_counts().to_dict())
    log = part.log
    if log is None:
        return out
    q = log.quality
    out.counts["rows_used"] += q.rows_used
    out.counts["rows_dropped"] += q.rows_dropped
    out.counts["rows_removed"] += q.rows_removed
    out.counts["rows_collapsed"] += q.rows_collapsed
    out.counts["reopened"] += q.reopened
    out.counts["deals_without_amount"] += q.deals_without_amount
    out.counts["unresolved_ties"] += q.unresolved_ties
    out.counts["rows_post_sale"] += q.rows_post_sale
    out.counts["post_sale_deals"] += q.post_sale_deals
    out.by_reason = _add(out.by_reason, q.by_reason)
    out.attr_changes = _add(out.attr_changes, q.attr_changes)
    out.max_time_ns = int(log._last_ns.max())
    if log._post_sale_events is not None:  # post-sale events are valid events too
        out.max_time_ns = max(out.max_time_ns, int(log._post_sale_events.time.max()))
    if q.by_reason.get("conflicting_outcome"):
        rej = log.rejects
        rows = rej.loc[rej["reason"] == "conflicting_outcome", "row"].to_numpy(dtype=np.int64)
        out.conflict_rows = part.keys[rows]
    _fill_tables(out, log, cfg)
    return out


def _durations(log: EventLog, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    cal = getattr(log, "calendar", None)
    return end - start if cal is None else cal.duration_ns(start, end)


def _fill_tables(out: Summary, log: EventLog, cfg: Config) -> None:
    attrs = cfg.attrs
    v = log._visits()
    S = log._n_stages
    cat = list(log._catalogue)
    n_st = len(cat) + 1  # + stale
    names = np.array([*cat, "stale"], dtype=object)
    kinds = np.append(_KINDS[log._kind], "stale")
    D = log.n_deals
    seg, labels = _segment_codes(log, attrs)
    n_seg = int(seg.max()) + 1 if seg.size else 1
    oc = log._outcome.astype(np.int64)

    # ---- deals: entered stages (bit words), outcome, amounts
    n_words = max(1, -(-S // 62))
    words = np.zeros((D, n_words), dtype=np.int64)
    for word in range(n_words):  # loop over 62-stage words
        sel = (v.stage // 62) == word
        np.bitwise_or.at(words[:, word], v.deal[sel], np.left_shift(1, v.stage[sel] % 62))
    if n_words == 1:
        masks, mask_id = np.unique(words[:, 0], return_inverse=True)
        mask_rows = masks[:, None]
    else:
        mask_rows, mask_id = np.unique(words, axis=0, return_inverse=True)
    mask_id = mask_id.reshape(-1)
    entered = np.empty(len(mask_rows), dtype=object)
    for i, row in enumerate(mask_rows):  # loop over distinct sets of entered stages
        st = [cat[s] for s in range(S) if (int(row[s // 62]) >> (s % 62)) & 1]
        entered[i] = json.dumps(sorted(st))
    key = (seg * len(mask_rows) + mask_id) * 4 + oc
    uk, inv = np.unique(key, return_inverse=True)
    amt = log._amount
    w = np.zeros(D) if amt is None else np.nan_to_num(amt, nan=0.0)
    has_amt = np.zeros(D) if amt is None else (~np.isnan(amt)).astype(np.float64)
    k = uk.size
    useg = uk // 4 // len(mask_rows)
    out.tables["deals"] = pd.DataFrame(
        {
            **_seg_columns(labels, useg),
            "entered": entered[(uk // 4) % len(mask_rows)],
            "outcome": np.array(_OUTCOME_NAMES, dtype=object)[uk % 4],
            "deals": np.bincount(inv, minlength=k).astype(np.int64),
            "amount_sum": np.bincount(inv, weights=w, minlength=k),
            "amount_sq": np.bincount(inv, weights=w * w, minlength=k),
            "amount_n": np.bincount(inv, weights=has_amt, minlength=k).astype(np.int64),
        }
    )

    # ---- transitions and the dwell of the visits that made them
    ex = v.next != NO_NEXT
    n_pairs = max(S * n_st, 1)
    pair = v.stage[ex] * n_st + v.next[ex]
    counts = np.bincount(pair, minlength=n_pairs)
    dp = np.unique(v.deal[ex].astype(np.int64) * n_pairs + pair)
    deals = np.bincount(dp % n_pairs, minlength=n_pairs)
    dw = v.dwell[ex]
    has = dw != NAT
    dwell_n = np.bincount(pair[has], minlength=n_pairs)
    dwell_sum = np.bincount(pair[has], weights=dw[has].astype(np.float64), minlength=n_pairs)
    present = np.flatnonzero(counts)
    frm, to = present // n_st, present % n_st
    out.tables["transitions"] = pd.DataFrame(
        {
            "from_stage": names[frm],
            "to_stage": names[to],
            "to_kind": kinds[to],
            "transitions": counts[present].astype(np.int64),
            "deals": deals[present].astype(np.int64),
            "dwell_n": dwell_n[present].astype(np.int64),
            "dwell_sum": dwell_sum[present],
        }
    )
    g, val, b, e, c = _sketch(pair[has], dw[has], np.zeros(int(has.sum()), bool), cfg.exact_limit)
    out.tables["transition_dwell"] = pd.DataFrame(
        {
            "from_stage": names[g // n_st],
            "to_stage": names[g % n_st],
            "to_kind": kinds[g % n_st],
            "value": val,
            "binned": b,
            "events": e,
            "censored": c,
        }
    )

    # ---- dwell per (segment, stage, first visit or not)
    keep = v.dwell != NAT
    group = (seg[v.deal[keep]] * max(S, 1) + v.stage[keep]) * 2 + (v.visit[keep] == 1)
    g, val, b, e, c = _sketch(group, v.dwell[keep], v.censored[keep], cfg.exact_limit)
    gs = g // 2
    out.tables["dwell"] = pd.DataFrame(
        {
            **_seg_columns(labels, gs // max(S, 1)),
            "stage": names[gs % max(S, 1)] if S else np.zeros(0, dtype=object),
            "first_visit": (g % 2).astype(bool),
            "value": val,
            "binned": b,
            "events": e,
            "censored": c,
        }
    )

    # ---- cycle time: won / lost complete, open censored at as_of; stale left out
    first, term = log._first_ns, log._term_ns
    done = term != NAT
    ct = np.where(done, _durations(log, first, np.where(done, term, first)), 0)
    open_for = _durations(log, first, np.full(D, log._as_of_ns, dtype=np.int64))
    slot = np.select([oc == V.WON, oc == V.LOST, oc == V.OPEN], [0, 1, 2], -1)
    sel = slot >= 0
    dur = np.where(oc == V.OPEN, open_for, ct)
    g, val, b, e, c = _sketch(
        seg[sel] * 3 + slot[sel], dur[sel], (oc == V.OPEN)[sel], cfg.exact_limit
    )
    slot_names = np.array(["won", "lost", "open"], dtype=object)
    out.tables["cycle"] = pd.DataFrame(
        {
            **_seg_columns(labels, g // 3),
            "outcome": slot_names[g % 3],
            "value": val,
            "binned": b,
            "events": e,
            "censored": c,
        }
    )
    wl = (slot == 0) | (slot == 1)
    gk = seg[wl] * 2 + slot[wl]
    n_c = np.bincount(gk, minlength=2 * n_seg)
    s_c = np.bincount(gk, weights=ct[wl].astype(np.float64), minlength=2 * n_seg)
    pres = np.flatnonzero(n_c)
    out.tables["cycle_sums"] = pd.DataFrame(
        {
            **_seg_columns(labels, pres // 2),
            "outcome": slot_names[pres % 2],
            "deals": n_c[pres].astype(np.int64),
            "sum": s_c[pres],
        }
    )

    # ---- leverage: distinct (start state, exit counts) patterns of deals
    out.tables["patterns"] = deal_patterns(log)

    # ---- first-visit positions, for the inferred stage order
    if cfg.infer_order:
        out.tables["positions"] = _positions(log)


def _positions(log: EventLog) -> pd.DataFrame:
    p_deal, p_stage = log._path_deal, log._path_stage
    n = p_deal.size
    if n == 0:
        return _empty_table("positions", [])
    new = np.ones(n, dtype=bool)
    new[1:] = p_deal[1:] != p_deal[:-1]
    starts = np.flatnonzero(new)
    position = np.arange(n) - starts[np.cumsum(new) - 1]
    is_stage = log._kind[p_stage] == V.STAGE
    n_cat = len(log._catalogue)
    key = p_deal[is_stage].astype(np.int64) * n_cat + p_stage[is_stage]
    _, first = np.unique(key, return_index=True)
    st = p_stage[is_stage][first]
    pos = position[is_stage][first]
    hist = pd.DataFrame({"s": st, "p": pos}).value_counts().reset_index(name="deals")
    names = np.array(log._catalogue, dtype=object)
    return pd.DataFrame(
        {
            "stage": names[hist["s"].to_numpy()],
            "position": hist["p"].to_numpy(dtype=np.int64),
            "deals": hist["deals"].to_numpy(dtype=np.int64),
        }
    )


# --------------------------------------------------------------------------- final tables
@dataclass(frozen=True)
class Layout:
    """The global shape of the log the final tables are laid out in."""

    stages: list[str]
    won: list[str]
    lost: list[str]
    inferred: bool
    aware: bool
    as_of_ns: int
    amount: str | None
    attrs: list[str]
    #: the stale rule in ns (None: no rule); the funnel's estimate needs it
    stale_after_ns: int | None = None

    @property
    def catalogue(self) -> list[str]:
        return [*self.stages, *self.won, *self.lost]

    @property
    def kind(self) -> np.ndarray:
        return np.array(
            [V.STAGE] * len(self.stages)
            + [V.WON_KIND] * len(self.won)
            + [V.LOST_KIND] * len(self.lost),
            dtype=np.int8,
        )

    def codes(self, kinds: Sequence[Any], names: Sequence[Any]) -> np.ndarray:
        """Catalogue codes of (kind, name) states; ``"stale"`` is ``len(catalogue)``."""
        S, nw = len(self.stages), len(self.won)
        lookup: dict[tuple[str, str], int] = {("stale", "stale"): len(self.catalogue)}
        lookup.update({("stage", s): i for i, s in enumerate(self.stages)})
        lookup.update({("won", s): S + i for i, s in enumerate(self.won)})
        lookup.update({("lost", s): S + nw + i for i, s in enumerate(self.lost)})
        return np.array(
            [lookup[(str(k), str(n))] for k, n in zip(kinds, names, strict=True)],
            dtype=np.int64,
        )

    def timestamp(self, ns: int) -> pd.Timestamp:
        ts = pd.Timestamp(np.int64(ns).astype("datetime64[ns]"))
        return ts.tz_localize("UTC") if self.aware else ts

    def timestamps(self, ns: np.ndarray) -> pd.DatetimeIndex:
        """Times of ns on the log's clock (as ``EventLog._timestamp``)."""
        idx = pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).astype("datetime64[ns]"))
        return idx.tz_localize("UTC") if self.aware else idx


def infer_order(positions: pd.DataFrame) -> list[str]:
    """Stage order from first-visit positions: median, then mean, then name (as in
    memory: ``EventLog._infer_order``)."""
    rows = []
    for name, grp in positions.groupby("stage", sort=False):  # loop over stages
        g = grp.groupby("position")["deals"].sum().sort_index()
        pos = g.index.to_numpy(dtype=np.int64)
        cnt = g.to_numpy(dtype=np.int64)
        n = int(cnt.sum())
        cum = np.cumsum(cnt)

        def at(rank: int, pos=pos, cum=cum) -> int:
            return int(pos[np.searchsorted(cum, rank, side="right")])

        median = at(n // 2) if n % 2 else (at(n // 2 - 1) + at(n // 2)) / 2
        mean = float((pos * cnt).sum()) / n
        rows.append((float(median), mean, str(name)))
    rows.sort()
    return [r[2] for r in rows]


def quality_report(sm: Summary, lay: Layout) -> QualityReport:
    d = sm.tables["deals"]
    oc = d.groupby("outcome")["deals"].sum()
    c = sm.counts
    keys = ([lay.amount] if lay.amount is not None else []) + list(lay.attrs)
    return QualityReport(
        rows_in=int(c["rows_in"]),
        rows_used=int(c["rows_used"]),
        rows_dropped=int(c["rows_dropped"]),
        rows_removed=int(c["rows_removed"]),
        rows_collapsed=int(c["rows_collapsed"]),
        by_reason={r: int(sm.by_reason[r]) for r in REASONS if sm.by_reason.get(r)},
        deals=int(d["deals"].sum()),
        won=int(oc.get("won", 0)),
        lost=int(oc.get("lost", 0)),
        stale=int(oc.get("stale", 0)),
        open=int(oc.get("open", 0)),
        reopened=int(c["reopened"]),
        deals_without_amount=int(c["deals_without_amount"]),
        attr_changes={k: int(sm.attr_changes.get(k, 0)) for k in dict.fromkeys(keys)},
        unresolved_ties=int(c["unresolved_ties"]),
        stages=list(lay.stages),
        stage_order_inferred=lay.inferred,
        as_of=lay.timestamp(lay.as_of_ns),
        rows_post_sale=int(c.get("rows_post_sale", 0)),
        post_sale_deals=int(c.get("post_sale_deals", 0)),
    )


# ---- statistics from (value, events, censored) counts
def _sorted_sketch(df: pd.DataFrame, group: np.ndarray):
    """Sketch rows regrouped by ``group`` codes, sorted by (group, value): ``(group, value
    in ns as float, events, censored, binned)``. A group that mixes exact and binned rows
    is binned; an all-exact group stays exact (its values are all here)."""
    frame = pd.DataFrame(
        {
            "g": np.asarray(group, dtype=np.int64),
            "value": df["value"].to_numpy(dtype=np.int64),
            "binned": df["binned"].to_numpy(dtype=bool),
            "events": df["events"].to_numpy(dtype=np.int64),
            "censored": df["censored"].to_numpy(dtype=np.int64),
        }
    )
    frame = compress(frame, ["g"], np.iinfo(np.int64).max)
    val = frame["value"].to_numpy(dtype=np.int64)
    binned = frame["binned"].to_numpy(dtype=bool)
    t = np.where(binned, bin_values(np.where(binned, val, -1)), val.astype(np.float64))
    g = frame["g"].to_numpy(dtype=np.int64)
    order = np.lexsort((t, g))
    return (
        g[order],
        t[order],
        frame["events"].to_numpy(dtype=np.int64)[order],
        frame["censored"].to_numpy(dtype=np.int64)[order],
        binned[order],
    )


def plain_stats(g, t, d, n_groups: int, qs=(0.5, 0.75, 0.9)) -> dict[str, np.ndarray]:
    """Linear-interpolation quantiles (numpy's default) of complete durations given as
    sorted (value, count) runs per group."""
    start, end = _stats.group_bounds(g, n_groups)
    out = {f"q{round(100 * q)}": np.full(n_groups, np.nan) for q in qs}
    n = np.zeros(n_groups, dtype=np.int64)
    for k in np.flatnonzero(end > start):  # loop over groups
        cnt = d[start[k] : end[k]]
        cum = np.cumsum(cnt)
        tot = int(cum[-1])
        n[k] = tot
        if tot == 0:
            continue
        tk = t[start[k] : end[k]]
        for q in qs:
            h = (tot - 1) * q
            lo = math.floor(h)
            hi = min(lo + 1, tot - 1)
            a = tk[np.searchsorted(cum, lo, side="right")]
            b = tk[np.searchsorted(cum, hi, side="right")]
            out[f"q{round(100 * q)}"][k] = a + (h - lo) * (b - a)
        for key, x in _stats.plain_intervals(tk, cnt, qs).items():
            out.setdefault(key, np.full(n_groups, np.nan))[k] = x
    for key in [k for _, k in _stats.CI_COLUMNS if k[1:3] in {f"{round(100 * q)}" for q in qs}]:
        out.setdefault(key, np.full(n_groups, np.nan))
    out.setdefault("mean_low", np.full(n_groups, np.nan))
    out.setdefault("mean_high", np.full(n_groups, np.nan))
    out["n"] = n
    return out


# ---- segments
def _by_columns(by: str | Sequence[str] | None, lay: Layout) -> list[str]:
    cols = normalize_by(by)
    unknown = [b for b in cols if b not in lay.attrs]
    if unknown:
        raise InvalidParameterError(
            f"`by`={unknown} is not a carried attribute of this log; carried: "
            f"{list(lay.attrs)}. Pass attrs=[...] when building the EventLog."
        )
    return cols


@dataclass(frozen=True)
class SegmentCoder:
    """The global segments of ``by`` (attribute columns): each attribute's values in
    order of first appearance (``cats``) and the sorted mixed-radix keys of the segments
    that occur (``uniq``). Codes any frame with the ``attr:…`` columns — a summary table,
    or a partition's own segments (the sharded conversion clock, :mod:`._clock`)."""

    by: tuple[str, ...]
    cats: dict[str, pd.Index]
    uniq: np.ndarray

    def _keys(self, f: pd.DataFrame) -> np.ndarray:
        key = np.zeros(len(f), dtype=np.int64)
        for b in self.by:
            code = self.cats[b].get_indexer(f[attr_column(b)].astype(object).to_numpy())
            key = key * (len(self.cats[b]) + 1) + (code.astype(np.int64) + 1)
        return key

    def codes(self, f: pd.DataFrame) -> np.ndarray:
        """Segment codes of the rows of ``f`` (0 for every row without ``by``)."""
        if not self.by:
            return np.zeros(len(f), dtype=np.int64)
        return np.searchsorted(self.uniq, self._keys(f)).astype(np.int64)

    def labels(self) -> pd.DataFrame:
        """The label table: one row per segment, in the in-memory order."""
        if not self.by:
            return pd.DataFrame(index=[0])
        labels = {}
        rem = self.uniq.copy()
        for b in reversed(self.by):
            base = len(self.cats[b]) + 1
            labels[b] = pd.Categorical.from_codes(rem % base - 1, categories=self.cats[b])
            rem = rem // base
        return pd.DataFrame({b: np.asarray(labels[b]) for b in self.by})

    def __len__(self) -> int:
        return max(int(self.uniq.size), 1) if self.by else 1


def segment_coder(sm: Summary, by: Sequence[str]) -> SegmentCoder:
    """The :class:`SegmentCoder` of ``by`` over the summary's deals (every segment)."""
    cats = {}
    for b in by:
        first = sm.attr_first[b].sort_values("first_row", kind="stable")
        cats[b] = pd.Index(first["value"].tolist())
    coder = SegmentCoder(tuple(by), cats, np.zeros(0, dtype=np.int64))
    if not by:
        return coder
    return dataclass_replace(coder, uniq=np.unique(coder._keys(sm.tables["deals"])))


def _segments(sm: Summary, by: list[str], frames: list[pd.DataFrame]):
    """Segment codes of the rows of ``frames`` (the first is the deals table, which holds
    every segment) and the label table, in the in-memory order."""
    coder = segment_coder(sm, by)
    return [coder.codes(f) for f in frames], coder.labels()


# ---- the tables of the analyses
def _td(ns: np.ndarray) -> np.ndarray:
    from .transitions import to_timedelta

    return to_timedelta(ns).to_numpy()


def transitions_table(sm: Summary, lay: Layout) -> pd.DataFrame:
    """``EventLog.transitions()`` from a summary."""
    t = sm.tables["transitions"]
    S = len(lay.stages)
    n_cat = len(lay.catalogue) + 1
    names = np.array([*lay.catalogue, "stale"], dtype=object)
    frm = lay.codes(["stage"] * len(t), t["from_stage"])
    to = lay.codes(t["to_kind"], t["to_stage"])
    pair = frm * n_cat + to
    order = np.argsort(pair, kind="stable")
    pair, frm, to = pair[order], frm[order], to[order]
    counts = t["transitions"].to_numpy(dtype=np.int64)[order]
    deals = t["deals"].to_numpy(dtype=np.int64)[order]
    dwell_n = t["dwell_n"].to_numpy(dtype=np.int64)[order]
    dwell_sum = t["dwell_sum"].to_numpy(dtype=np.float64)[order]
    exits_from = np.bincount(frm, weights=counts, minlength=max(S, 1))
    td = sm.tables["transition_dwell"]
    tpair = lay.codes(["stage"] * len(td), td["from_stage"]) * n_cat + lay.codes(
        td["to_kind"], td["to_stage"]
    )
    g, tv, d, _, _ = _sorted_sketch(td, np.searchsorted(pair, tpair))
    st = plain_stats(g, tv, d, len(pair), qs=(0.5, 0.9))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = counts / exits_from[frm]
        mean = np.where(dwell_n > 0, dwell_sum / dwell_n, np.nan)
    kinds = np.array(["forward", "backward", "won", "lost", "stale"], dtype=object)
    kind_code = np.where(
        to == n_cat - 1,
        4,
        np.where(
            to >= S,
            np.where(lay.kind[np.minimum(to, n_cat - 2)] == V.WON_KIND, 2, 3),
            np.where(to > frm, 0, 1),
        ),
    )
    return pd.DataFrame(
        {
            "from_stage": names[frm].astype(str),
            "to_stage": names[to].astype(str),
            "transitions": counts,
            "deals": deals,
            "share": share,
            "dwell_mean": _td(mean),
            "dwell_median": _td(st["q50"]),
            "dwell_p90": _td(st["q90"]),
            "kind": kinds[kind_code].astype(str),
        }
    )


def _entered_sets(entered: pd.Series, lay: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Per row: furthest stage rank (-1 when none) and a (rows, S) membership matrix."""
    S = len(lay.stages)
    rank = {s: i for i, s in enumerate(lay.stages)}
    uniq, inv = np.unique(entered.astype(str).to_numpy(), return_inverse=True)
    member_u = np.zeros((uniq.size, S), dtype=bool)
    for i, text in enumerate(uniq):  # loop over distinct sets of entered stages
        for s in json.loads(text):
            member_u[i, rank[s]] = True
    member = member_u[inv.reshape(-1)]
    if S == 0:
        return np.full(member.shape[0], -1, dtype=np.int64), member
    furthest = np.where(member.any(axis=1), S - 1 - np.argmax(member[:, ::-1], axis=1), -1)
    return furthest.astype(np.int64), member


def funnel_table(
    sm: Summary,
    lay: Layout,
    *,
    skips: str = "implied",
    weight: str | None = None,
    by=None,
    within=None,
    calendar=None,
    clock: Clock,
) -> pd.DataFrame:
    """``EventLog.funnel()`` from a summary (the counts) and the sharded conversion
    clock (the estimates). With a conversion window ``within`` the counts depend on each
    deal's timing at each stage: the clock's pass over the partitions computes them too
    (its ``counts`` product, each stage's from that stage's piece of every partition)."""
    if skips not in ("implied", "strict"):
        raise InvalidParameterError(f"`skips` must be 'implied' or 'strict'; got {skips!r}.")
    if weight is not None and (weight not in ("amount", lay.amount) or lay.amount is None):
        raise InvalidParameterError(
            f"`weight`={weight!r}: only the mapped amount column can weight the funnel "
            f"(amount={lay.amount!r}). Pass amount=... when building the EventLog and "
            "weight='amount'."
        )
    by_cols = _by_columns(by, lay)
    if within is not None:
        from .businessdays import as_calendar
        from .funnel import stage_windows

        ns = tuple(int(x) for x in stage_windows(list(lay.stages), within))
        got = clock(
            by_cols,
            ("funnel", "counts"),
            skips=skips,
            weighted=weight is not None,
            within=ns,
            calendar=as_calendar(calendar),
        )
        labels = segment_coder(sm, by_cols).labels()
        sums = {k: v.reshape(len(labels), len(lay.stages)) for k, v in got["counts"].items()}
        if weight is None:  # counts are exact integers
            sums = {k: np.rint(v).astype(np.int64) for k, v in sums.items()}
        return assemble(
            list(lay.stages), by_cols, labels, sums, weight is not None, skips, got["funnel"]
        )
    sums, labels = _funnel_sums(sm, lay, by_cols, skips, weight)
    aj = clock(by_cols, ("funnel",), skips=skips, weighted=weight is not None)["funnel"]
    return assemble(list(lay.stages), by_cols, labels, sums, weight is not None, skips, aj)


def _funnel_sums(
    sm: Summary, lay: Layout, by_cols: list[str], skips: str, weight: str | None
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """The funnel's counts (or weighted sums) per segment × stage — ``reached``,
    ``dropped``, ``open``, ``advanced``, ``won``, ``resolved`` and the squared-weight sums
    ``adv2``, ``drop2`` — arrays ``(segments, stages)``, and the segment labels."""
    d = sm.tables["deals"]
    (seg,), labels = _segments(sm, by_cols, [d])
    n_seg = len(labels)
    S = len(lay.stages)
    outcome = pd.Index(_OUTCOME_NAMES).get_indexer(d["outcome"]).astype(np.int64)
    furthest, member = _entered_sets(d["entered"], lay)
    blocks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for power, col in ((1, "amount_sum"), (2, "amount_sq")):
        ww = d["deals"].to_numpy(dtype=np.float64) if weight is None else d[col].to_numpy()
        has = furthest >= 0
        F = np.bincount(
            (seg[has] * S + furthest[has]) * 4 + outcome[has],
            weights=ww[has],
            minlength=n_seg * S * 4,
        ).reshape(n_seg, S, 4)
        E: np.ndarray
        if skips == "implied":
            E = np.flip(np.cumsum(np.flip(F, axis=1), axis=1), axis=1)
            won = outcome == V.WON
            E[:, :, V.WON] = np.bincount(seg[won], weights=ww[won], minlength=n_seg)[:, None]
        else:
            E = np.zeros((n_seg, S, 4))
            for s in range(S):  # loop over stages
                m = member[:, s]
                E[:, s, :] = np.bincount(
                    seg[m] * 4 + outcome[m], weights=ww[m], minlength=n_seg * 4
                ).reshape(n_seg, 4)
        blocks[power] = (E, F)
    E, F = blocks[1]
    E2, F2 = blocks[2]
    if weight is None:  # counts are exact integers
        E, F = np.rint(E).astype(np.int64), np.rint(F).astype(np.int64)
    dropped = F[:, :, V.LOST] + F[:, :, V.STALE]
    sums = {
        "reached": E.sum(axis=2),
        "dropped": dropped,
        "open": F[:, :, V.OPEN],
        "advanced": E.sum(axis=2) - dropped - F[:, :, V.OPEN],
        "adv2": E2.sum(axis=2) - F2[:, :, V.LOST] - F2[:, :, V.STALE] - F2[:, :, V.OPEN],
        "drop2": F2[:, :, V.LOST] + F2[:, :, V.STALE],
        "won": E[:, :, V.WON],
        "resolved": E[:, :, V.WON] + E[:, :, V.LOST] + E[:, :, V.STALE],
    }
    return sums, labels


# --------------------------------------------------------------------------- compare


def _conversion_estimates(rows: tuple, n_groups: int, lay: Layout) -> dict[str, np.ndarray]:
    """:func:`funnelkit.funnel.conversion_estimates` of merged count rows, with this
    log's stale rule."""
    from .funnel import conversion_estimates

    return conversion_estimates(rows, n_groups, lay.stale_after_ns)


def compare_parts(sm: Summary, lay: Layout, by_cols: list[str]):
    """The counts of :meth:`EventLog.compare` per segment of ``by_cols`` (none: the
    whole log as one group), the segment labels and the deals per segment."""
    sums, labels = _funnel_sums(sm, lay, by_cols, "implied", None)
    c = {k: sums[k] for k in ("reached", "advanced", "dropped", "open")}
    d = sm.tables["deals"]
    (seg,), _ = _segments(sm, by_cols, [d])
    deals = np.bincount(seg, weights=d["deals"].to_numpy(np.float64), minlength=len(labels))
    return c, labels, np.rint(deals).astype(np.int64)


def compare_table(sm: Summary, lay: Layout, *, by, alpha: float, clock: Clock) -> pd.DataFrame:
    """``EventLog.compare(by=...)`` from a summary (the counts) and the sharded clock:
    each segment's conversion and each rest's own Aalen–Johansen estimate (exact, also
    where the in-memory log approximates the rests for its size)."""
    from .monitoring import _check_by
    from .monitoring import compare_table as build

    by_cols = _check_by(by)
    _by_columns(by_cols, lay)
    S = max(len(lay.stages), 1)
    c, labels, deals = compare_parts(sm, lay, by_cols)
    tot, _, _ = compare_parts(sm, lay, [])
    rest = {k: tot[k] - c[k] for k in ("advanced", "dropped")}
    est = clock(by_cols, ("conversion", "rest"), win=False)
    head = expand(labels, np.repeat(np.arange(len(labels)), S), by_cols)
    return build(head, list(lay.stages), c, rest, deals, est["conversion"], est["rest"], alpha)


def incidence_table(
    sm: Summary, lay: Layout, *, stage=None, by=None, clock: Clock
) -> pd.DataFrame:
    """``EventLog.incidence()`` from the sharded clock's curves."""
    from .funnel import wanted_stages

    wanted = wanted_stages(list(lay.stages), stage)
    by_cols = _by_columns(by, lay)
    curves = clock(by_cols, ("incidence",))["incidence"]
    keep = np.isin(curves["stage"].astype(str).to_numpy(), np.array(lay.stages)[wanted])
    return curves[keep].reset_index(drop=True)


def dwell_table(sm: Summary, lay: Layout, *, by=None, visits: str = "all") -> pd.DataFrame:
    """``EventLog.dwell()`` from a summary (Kaplan–Meier over censored visits)."""
    if visits not in ("all", "first", "repeat"):
        raise InvalidParameterError(
            f"`visits` must be 'all', 'first' or 'repeat'; got {visits!r}."
        )
    by_cols = _by_columns(by, lay)
    dw = sm.tables["dwell"]
    if visits != "all":
        dw = dw[dw["first_visit"].to_numpy(dtype=bool) == (visits == "first")]
    (_, seg), labels = _segments(sm, by_cols, [sm.tables["deals"], dw])
    n_seg = len(labels)
    S = len(lay.stages)
    stage = pd.Index(lay.stages).get_indexer(dw["stage"].astype(str)).astype(np.int64)
    g, t, d, c, b = _sorted_sketch(dw, seg * S + stage)
    km = _stats.kaplan_meier_runs(g, t, d, c, n_seg * S, binned=b)  # in a bin: actuarial
    out = expand(labels, np.repeat(np.arange(n_seg), S), by_cols)
    out["stage"] = np.tile(np.array(lay.stages, dtype=object), n_seg).astype(str)
    out["visits"] = km["n"].astype(np.int64)
    out["censored"] = km["censored"].astype(np.int64)
    out["mean"] = _td(km["mean"])
    out["median"] = _td(km["q50"])
    out["p75"] = _td(km["q75"])
    out["p90"] = _td(km["q90"])
    for col, key in _stats.CI_COLUMNS:
        out[col] = _td(km[key])
    return out


def _cycle_parts(sm: Summary, lay: Layout, by_cols: list[str]):
    cy = sm.tables["cycle"]
    cs = sm.tables["cycle_sums"]
    (_, seg_c, seg_s), labels = _segments(sm, by_cols, [sm.tables["deals"], cy, cs])
    return cy, cs, seg_c, seg_s, labels


def cycle_table(sm: Summary, lay: Layout, *, by=None) -> pd.DataFrame:
    """``EventLog.cycle_time()`` from a summary."""
    by_cols = _by_columns(by, lay)
    cy, cs, seg_c, seg_s, labels = _cycle_parts(sm, lay, by_cols)
    n_seg = len(labels)
    outcome = cy["outcome"].astype(str).to_numpy()
    rows = []
    for name in ("won", "lost"):
        sel = outcome == name
        g, t, d, _, _ = _sorted_sketch(cy[sel], seg_c[sel])
        st = plain_stats(g, t, d, n_seg)
        ss = (cs["outcome"].astype(str) == name).to_numpy()
        n = np.bincount(seg_s[ss], weights=cs["deals"][ss], minlength=n_seg)
        total = np.bincount(seg_s[ss], weights=cs["sum"][ss], minlength=n_seg)
        with np.errstate(invalid="ignore", divide="ignore"):
            st["mean"] = np.where(n > 0, total / n, np.nan)
        rows.append((name, st, np.zeros(n_seg, dtype=np.int64)))
    g, t, d, c, b = _sorted_sketch(cy, seg_c)
    km = _stats.kaplan_meier_runs(g, t, d, c, n_seg, binned=b)
    rows.append(("any", km, km["censored"]))
    parts = []
    for name, st, cens in rows:
        part = expand(labels, np.arange(n_seg), by_cols)
        part["outcome"] = name
        part["deals"] = np.asarray(st["n"]).astype(np.int64)
        part["censored"] = np.asarray(cens, dtype=np.int64)
        part["mean"] = _td(st["mean"])
        part["median"] = _td(st["q50"])
        part["p75"] = _td(st["q75"])
        part["p90"] = _td(st["q90"])
        for col, key in _stats.CI_COLUMNS:
            part[col] = _td(st[key])
        part["_seg"] = np.arange(n_seg)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["_seg"], kind="stable").drop(columns="_seg").reset_index(drop=True)


def kpis_table(sm: Summary, lay: Layout, *, by=None) -> pd.DataFrame:
    """``EventLog.kpis()`` from a summary."""
    by_cols = _by_columns(by, lay)
    d = sm.tables["deals"]
    cy = sm.tables["cycle"]
    (seg, seg_c), labels = _segments(sm, by_cols, [d, cy])
    n_seg = len(labels)
    outcome = pd.Index(_OUTCOME_NAMES).get_indexer(d["outcome"]).astype(np.int64)
    counts = np.bincount(seg * 4 + outcome, weights=d["deals"], minlength=n_seg * 4)
    counts = np.rint(counts).astype(np.int64).reshape(n_seg, 4)
    if lay.amount is not None:
        w = outcome == V.WON
        s = np.bincount(seg[w], weights=d["amount_sum"][w], minlength=n_seg)
        c = np.bincount(seg[w], weights=d["amount_n"][w], minlength=n_seg)
        with np.errstate(invalid="ignore", divide="ignore"):
            avg_won = s / c
    else:
        avg_won = np.full(n_seg, np.nan)
    sel = (cy["outcome"].astype(str) == "won").to_numpy()
    g, t, dd, _, _ = _sorted_sketch(cy[sel], seg_c[sel])
    med = plain_stats(g, t, dd, n_seg, qs=(0.5,))["q50"]
    return kpi_table(labels, by_cols, counts, avg_won, med)


# ---- the absorbing chain and leverage
def chain_data(sm: Summary, lay: Layout) -> ChainData:
    """The chain's deal patterns of a summary (:func:`funnelkit.markov.pattern_chain`)."""
    return pattern_chain(sm.tables["patterns"], lay.catalogue, lay.kind)


def transition_matrix_table(sm: Summary, lay: Layout, kind: str = "probabilities") -> pd.DataFrame:
    """``EventLog.transition_matrix()`` from a summary."""
    states = [*lay.catalogue, "stale"]
    n = len(states)
    if kind not in ("counts", "probabilities"):
        raise InvalidParameterError(f"`kind` must be 'counts' or 'probabilities'; got {kind!r}.")
    mat = np.zeros((n, n), dtype=np.float64 if kind == "probabilities" else np.int64)
    t = transitions_table(sm, lay)
    idx = {s: i for i, s in enumerate(states)}
    r = t["from_stage"].map(idx).to_numpy(dtype=np.int64)
    c = t["to_stage"].map(idx).to_numpy(dtype=np.int64)
    if kind == "counts":
        mat[r, c] = t["transitions"].to_numpy()
    else:
        mat[r, c] = t["share"].to_numpy()
        absorbing = np.arange(len(lay.stages), n)
        mat[absorbing, absorbing] = 1.0
    return pd.DataFrame(
        mat, index=pd.Index(states, name="from_stage"), columns=pd.Index(states, name="to_stage")
    )


class SummarySource:
    """What the key-stage signals read (:class:`funnelkit.keystages.LogSource`'s
    attributes), from a Dask log: the conversions from the sharded clock (each
    segment's rest its own exact estimate; the period's two sides grouped by the clock
    too), the stall table merged from one pass, and leverage from the deal patterns.
    ``summary()`` gives the summary; ``per_partition(fn, *args)`` runs ``fn`` on every
    partition; ``clock`` is the log's :class:`Clock`; ``period_ns`` the period (None
    without one)."""

    def __init__(
        self, summary, lay: Layout, opt, per_partition, clock: Clock, period_ns=None
    ) -> None:
        self._summary = summary
        self._lay = lay
        self._opt = opt
        self._per_partition = per_partition
        self._clock = clock
        self._period_ns = period_ns
        self.stages = list(lay.stages)

    def _rate(self, aj: dict[str, np.ndarray], subjects: np.ndarray):
        from ._ajtests import conversion_rates

        return conversion_rates(aj, np.rint(subjects), self._opt.z)

    @cached_property
    def _by_segment(self) -> dict[str, Any]:
        by = list(self._opt.by)
        products = ("conversion", "whole", "rest", "subjects") if by else ("whole", "subjects")
        return self._clock(by, products, win=False)

    @cached_property
    def whole(self):
        est = self._by_segment
        S = max(len(self.stages), 1)
        return self._rate(est["whole"], est["subjects"].reshape(-1, S).sum(axis=0))

    @cached_property
    def own(self):
        est = self._by_segment
        labels = segment_coder(self._summary(), list(self._opt.by)).labels()
        return self._rate(est["conversion"], est["subjects"]), labels

    @cached_property
    def rest(self):
        est = self._by_segment
        S = max(len(self.stages), 1)
        own = est["subjects"].reshape(-1, S)
        rest = own.sum(axis=0, keepdims=True) - own
        return self._rate(est["rest"], rest.reshape(-1))

    @cached_property
    def since(self):
        assert self._period_ns is not None
        est = self._clock([], ("conversion", "subjects"), win=False, period_ns=self._period_ns)
        return self._rate(est["conversion"], est["subjects"])

    @cached_property
    def stall(self):
        from .keystages import StallTable

        return StallTable.merge(list(self._per_partition(stall_part)))

    def leverage_rows(self, opt) -> list[dict[str, Any]]:
        from . import keystages as K

        lay = self._lay
        return K.leverage_from_patterns(list(lay.stages), chain_data(self._summary(), lay), opt)

    @cached_property
    def first_visits(self):
        """The first visits (:class:`funnelkit.keystages.FirstVisits`), counted per
        (stage, duration, ended, segment, side of the period) in one pass: exact, and
        one row per distinct duration at most."""
        from .keystages import FirstVisits

        by, period_ns = self._opt.by, self._opt.period_ns
        frames = [f for f in self._per_partition(dwell_part, by, period_ns) if f is not None]
        keys = [c for c in frames[0].columns if c != "count"]
        df = pd.concat(frames, ignore_index=True)
        df = df.groupby(keys, sort=False, dropna=False)["count"].sum().reset_index()
        seg = labels = since = None
        if by:
            (_, seg), labels = _segments(
                self._summary(), by, [self._summary().tables["deals"], df]
            )
        if period_ns is not None:
            since = df["since"].to_numpy(np.int64)
        return FirstVisits(
            df["stage"].to_numpy(np.int64),
            df["dur"].to_numpy(np.int64),
            df["event"].to_numpy(bool),
            df["count"].to_numpy(np.int64),
            None if seg is None else np.asarray(seg, dtype=np.int64),
            labels,
            since,
        )


def dwell_part(pdf: pd.DataFrame, cfg: Config, lay: Layout, by_cols: list[str], period_ns):
    """One partition's first visits for the ``dwell`` signal, counted per (stage,
    duration, ended, the ``by`` attributes' values, created since ``period_ns``); None
    without a usable event."""
    from .keystages import FirstVisits

    log = _global_log(pdf, cfg, lay)
    if log is None:
        return None
    stage, dur, event, keep = FirstVisits.arrays(log)
    deal = log._visits().deal[keep]
    cols: dict[str, Any] = {"stage": stage.astype(np.int64), "dur": dur, "event": event}
    if by_cols:
        seg, labels = _segment_codes(log, by_cols)
        cols.update(_seg_columns(labels, seg[deal]))
    if period_ns is not None:
        cols["since"] = (log._first_ns[deal] >= period_ns).astype(np.int64)
    frame = pd.DataFrame(cols).assign(count=np.int64(1))
    keys = list(cols)
    return frame.groupby(keys, sort=False, dropna=False)["count"].sum().reset_index()


def stall_part(pdf: pd.DataFrame, cfg: Config, lay: Layout):
    """One partition's :class:`funnelkit.keystages.StallTable` (its log in the global
    stage order)."""
    from .keystages import StallTable

    log = _global_log(pdf, cfg, lay)
    if log is None:
        return StallTable.empty()
    return StallTable.of_log(log)


# --------------------------------------------------------------------------- row-level frames
def _conform(frame: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return meta.iloc[:0].copy()
    return frame[list(meta.columns)]


def visits_frame(pdf: pd.DataFrame, cfg: Config, lay: Layout, meta: pd.DataFrame) -> pd.DataFrame:
    """``EventLog.visits()`` of one partition of whole deals, in the global stage order."""
    log = build_partition(pdf, cfg).log
    if log is None:
        return meta.iloc[:0].copy()
    out = log.visits()
    out["stage"] = pd.Categorical(out["stage"].astype(object), categories=lay.stages)
    out["next_stage"] = pd.Categorical(
        out["next_stage"].astype(object), categories=[*lay.catalogue, "stale"]
    )
    return _conform(out, meta)


def deals_frame(pdf: pd.DataFrame, cfg: Config, lay: Layout, meta: pd.DataFrame) -> pd.DataFrame:
    """``EventLog.deals()`` of one partition of whole deals, in the global stage order."""
    log = build_partition(pdf, cfg).log
    if log is None:
        return meta.iloc[:0].copy()
    return _conform(_deals_table(log, lay), meta)


def _deals_table(log: EventLog, lay: Layout) -> pd.DataFrame:
    """``log.deals()`` of a partition's log with the global stage categories."""
    out = log.deals()
    v = log._visits()
    rank = pd.Index(lay.stages).get_indexer(list(log.stages)).astype(np.int64)
    furthest = np.full(log.n_deals, -1, dtype=np.int64)
    np.maximum.at(furthest, v.deal, rank[v.stage])
    out["furthest_stage"] = pd.Categorical.from_codes(
        furthest, categories=lay.stages, ordered=True
    )
    out["outcome_stage"] = pd.Categorical(
        out["outcome_stage"].astype(object), categories=[*lay.catalogue, "stale"]
    )
    return _object_attrs(out, lay)


def _object_attrs(frame: pd.DataFrame, lay: Layout) -> pd.DataFrame:
    """``frame`` with its carried-attribute columns as objects: partitions may infer an
    attribute's dtype differently, and their frames must concatenate alike."""
    for a in lay.attrs:
        frame[a] = frame[a].astype(object)
    return frame


@dataclass(frozen=True)
class FilterSpec:
    """What :meth:`funnelkit.dask.DaskEventLog.filter` keeps, checked on the driver."""

    where: str | None
    start: pd.Timestamp | None  # first event at or after
    end: pd.Timestamp | None  # first event before
    deals: list[Any] | None
    allowed: frozenset[str] | None  # stage names kept (terminal and post-sale included)


def filter_keep(
    pdf: pd.DataFrame, cfg: Config, lay: Layout, spec: FilterSpec
) -> tuple[np.ndarray, np.ndarray]:
    """For ``DaskEventLog.filter``, one partition of whole deals: the ids of the deals it
    keeps (as :meth:`funnelkit.EventLog.filter` judges them, on the partition's deals
    table) and the row keys of the terminal events this log removed as reopened (they
    stay removed: without the stages that followed, they would look like the outcome)."""
    part = build_partition(pdf, cfg)
    log = part.log
    if log is None:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64)
    table = _deals_table(log, lay)
    where = None
    if spec.where is not None:  # parsed by funnelkit's own grammar, never run
        where = np.asarray(where_mask(spec.where, table, "the deals table"), dtype=bool)
    keep = _scope.deal_mask(table, where, spec.start, spec.end, spec.deals)
    reopened = part.keys[_scope.reopened_rows(log._reject_rows)]  # rows of the partition's log
    return table["deal"].to_numpy(dtype=object)[keep], reopened.astype(np.int64)


def keep_rows(
    pdf: pd.DataFrame, cfg: Config, ids: np.ndarray, removed: np.ndarray, spec: FilterSpec
) -> pd.DataFrame:
    """The rows of one *input* partition that ``DaskEventLog.filter`` keeps, in input
    order (so the filtered log numbers and orders its rows as the in-memory filter does):
    every row of a kept deal (rows rejected before included, to be judged again), less the
    ``removed`` row keys and, with ``spec.allowed``, the events of other stages."""
    s = cfg.settings
    row_keep = pdf[s["deal"]].isin(ids).to_numpy(dtype=bool, copy=True)
    if removed.size:
        row_keep &= ~np.isin(pdf[ROW].to_numpy(dtype=np.int64), removed)
    if spec.allowed is not None:
        row_keep &= _scope.stage_rows(C.column(pdf, s["stage"]), s["stage_map"], spec.allowed)
    return pdf.iloc[np.flatnonzero(row_keep)]


def movement_part(pdf: pd.DataFrame, cfg: Config, lay: Layout, start, end) -> pd.DataFrame:
    """``EventLog.movement(start, end)`` of one partition of whole deals, its log in the
    global stage order (advanced/regressed compare positions in it): the categories'
    deal counts and amounts, which add up over partitions."""
    from .monitoring import movement

    log = _global_log(pdf, cfg, lay)
    if log is None:
        return pd.DataFrame({"deals": np.zeros(0, dtype=np.int64)})
    return movement(log, start, end)


def rejects_frame(
    pdf: pd.DataFrame, cfg: Config, source_rows: dict[int, int], meta: pd.DataFrame
) -> pd.DataFrame:
    """``EventLog.rejects`` of one partition, ``row`` numbered over the whole input."""
    part = build_partition(pdf, cfg)
    frames = [part.extra] if len(part.extra) else []
    if part.log is not None and part.log.quality.rows_rejected:
        frames.append(_cases_to_keys(part.log.rejects, part.keys))
    if not frames:
        return meta.iloc[:0].copy()
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "row", row_positions(out[ROW].to_numpy(), source_rows))
    out = out.drop(columns=ROW).sort_values("row", kind="stable").reset_index(drop=True)
    out["reason"] = out["reason"].astype(str)
    return _conform(out, meta)


# --------------------------------------------------------------------------- trend
def global_order(cfg: Config, lay: Layout) -> Config:
    """``cfg`` whose partitions read their stages in the global order (see
    :class:`Config`)."""
    if cfg.settings.get("stages") is not None:
        return cfg
    return dataclass_replace(cfg, order=tuple(lay.stages))


def snapshot_part(pdf: pd.DataFrame, cfg: Config, lay: Layout, at: Any) -> pd.DataFrame | None:
    """``EventLog.snapshot(at)`` of one partition of whole deals, its log in the global
    stage order (the stage columns' categories); None for a partition without a usable
    event. Attribute columns as object (as :func:`deals_frame`)."""
    from .history import snapshot

    log = _global_log(pdf, cfg, lay)
    return None if log is None else _object_attrs(snapshot(log, at), lay)


def alerts_part(pdf: pd.DataFrame, cfg: Config, lay: Layout, since_week: int) -> tuple:
    """One partition's part of ``alerts``: its visits open or resolved from week
    ``since_week`` on (:class:`funnelkit.alerts.Exits`, of its log in the global stage
    order), its input rows per week (:class:`~funnelkit.alerts.BadRows`: every row of the
    partition, its time read with the global time-zone decision) and its first event time
    (None without a usable event)."""
    from .alerts import DROPPED_CODES, BadRows, Exits, _week

    part = build_partition(pdf, global_order(cfg, lay))
    log = part.log
    s = cfg.settings
    order = np.argsort(pdf[ROW].to_numpy(dtype=np.int64), kind="stable")
    col = pdf[s["time"]].iloc[order].reset_index(drop=True)
    t = C.parse_times(col, s.get("date_format"))
    readable = ~(t.null | t.unparseable)
    ns = t.ns
    if t.mixed_tz.any():  # rows of the globally less common kind have no week
        row_aware = np.where(t.mixed_tz, not t.aware, t.aware)
        ours = readable & (row_aware == cfg.aware) & t.mixed_tz
        if ours.any():  # the partition's majority is the global minority: read ours alone
            ns = ns.copy()
            ns[ours] = C.parse_times(col.iloc[np.flatnonzero(ours)], s.get("date_format")).ns
        readable &= row_aware == cfg.aware
    dropped_names = [r for r, kind in REASONS.items() if kind == "dropped"]
    gone = [part.extra[ROW].to_numpy()[part.extra["reason"].isin(dropped_names).to_numpy()]]
    if log is not None:
        rows, reasons = log._reject_rows
        gone.append(part.keys[rows[np.isin(reasons, DROPPED_CODES)]])
    dropped = np.isin(part.all_keys, np.concatenate(gone))
    bad = BadRows.of_rows(_week(np.where(readable, ns, 0)), readable, dropped)
    if log is None:
        return Exits.empty(), bad, None
    return Exits.of_log(log).since(since_week), bad, int(log._first_ns.min())


def _global_log(pdf: pd.DataFrame, cfg: Config, lay: Layout) -> EventLog | None:
    """A partition's log in the global stage order (None without a usable event)."""
    return build_partition(pdf, global_order(cfg, lay)).log


def _sketch_frame(g: np.ndarray, values, censored, limit: int, keys=None) -> pd.DataFrame:
    """The sketch of ``values`` per group ``g``, its rows keyed by ``keys(groups)`` (a dict
    of columns, computed once; default: the group as ``stage``)."""
    gg, val, b, e, c = _sketch(g, values, censored, limit)
    return pd.DataFrame(
        {
            **({"stage": gg} if keys is None else keys(gg)),
            "value": val,
            "binned": b,
            "events": e,
            "censored": c,
        }
    )


def trend_cutoff_part(pdf: pd.DataFrame, cfg: Config, lay: Layout, by_stage: bool):
    """One partition's part of the cutoffs of ``trend``: a sketch of the first-visit
    dwell per stage (``by_stage``) or of the time from creation to resolution (stale
    deals left out, open ones censored), and the largest complete duration per stage (or
    of the resolved deals) — as :func:`funnelkit._periods.maturity_cutoffs` and
    :func:`~funnelkit._periods.resolution_cutoff` read them in memory."""
    S = len(lay.stages)
    log = _global_log(pdf, cfg, lay)
    if log is None:
        none = np.zeros(0, dtype=np.int64)
        return _sketch_frame(none, none, none, 0), np.zeros(S if by_stage else 1)
    if by_stage:
        v = log._visits()
        keep = (v.visit == 1) & (v.dwell != NAT)
        top = np.zeros(S)
        np.maximum.at(top, v.stage[keep], v.dwell[keep].astype(np.float64))
        frame = _sketch_frame(v.stage[keep], v.dwell[keep], v.censored[keep], cfg.exact_limit)
        return frame, top
    from ._periods import resolution_times

    oc = log._outcome
    keep = oc != V.STALE
    dur, done = resolution_times(log)
    top = np.array([float(dur[done].max(initial=0))])
    frame = _sketch_frame(
        np.zeros(int(keep.sum()), dtype=np.int64),
        dur[keep],
        (oc == V.OPEN)[keep],
        cfg.exact_limit,
    )
    return frame, top


def trend_cutoffs(parts: list, lay: Layout, by_stage: bool, exact_limit: int):
    """The cutoffs of ``trend`` from the partitions' :func:`trend_cutoff_part`: per stage
    ``as_of − stale_after − p90`` of the first-visit dwell (``by_stage``), else the one
    creation cutoff of the time to resolution."""
    n = len(lay.stages) if by_stage else 1
    frames = [f for f, _ in parts if len(f)]
    top = np.max(np.vstack([t for _, t in parts] + [np.zeros(n)]), axis=0)
    q90 = np.full(n, np.nan)
    if frames:
        sk = compress(pd.concat(frames, ignore_index=True), ["stage"], exact_limit)
        g, t, d, c, b = _sorted_sketch(sk, sk["stage"].to_numpy(dtype=np.int64))
        q90 = _stats.kaplan_meier_runs(g, t, d, c, n, binned=b)["q90"]
    from ._periods import cutoffs

    lag = 0 if lay.stale_after_ns is None else int(lay.stale_after_ns)
    cut = cutoffs(int(lay.as_of_ns), lag, q90, top)
    return cut if by_stage else int(cut[0])


def trend_part(
    pdf: pd.DataFrame,
    cfg: Config,
    lay: Layout,
    by_cols: list[str],
    pfreq: str,
    metric: str,
    cut: Any,
) -> dict[str, pd.DataFrame]:
    """One partition's sufficient statistics of ``trend``, keyed by the deals' ``by``
    values and creation period (``ordinal`` of ``pfreq``): ``deals`` per group, and per
    metric the funnel counts and the conversion clock's (time, cause) counts, the
    outcomes and the win clock's counts, the visits and a sketch of the counted visits'
    dwell, or a sketch of the counted deals' time to resolution — all of which add up
    over partitions."""
    from ._periods import resolution_times, stage_counts
    from .funnel import log_subjects
    from .monitoring import _win_clock

    log = _global_log(pdf, cfg, lay)
    if log is None:
        return {}
    S = len(lay.stages)
    seg, labels = _segment_codes(log, by_cols)
    first = pd.DatetimeIndex(log._first_ns.astype("datetime64[ns]"))
    ordinal = np.asarray(first.to_period(pfreq).asi8, dtype=np.int64)
    o_uniq, o_code = np.unique(ordinal, return_inverse=True)
    P = o_uniq.size
    n_seg = len(next(iter(labels.values()))) if labels else 1
    group = seg * P + o_code.reshape(-1)
    G = n_seg * P

    def keys(g: np.ndarray) -> dict[str, np.ndarray]:
        return {**_seg_columns(labels, g // P), "ordinal": o_uniq[g % P]}

    def counted(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
        cols = [*(attr_column(b) for b in by_cols), "ordinal", *by]
        return frame.groupby(cols, sort=False, dropna=False).sum().reset_index()

    out: dict[str, pd.DataFrame] = {}
    gd = np.arange(G)
    n_deals = np.bincount(group, minlength=G)
    out["deals"] = pd.DataFrame({**keys(gd), "deals": n_deals})[n_deals > 0]
    oc = log._outcome.astype(np.int64)
    if metric == "conversion":
        c = stage_counts(log, group, G)
        gs = np.repeat(gd, S)
        frame = pd.DataFrame(
            {
                **keys(gs),
                "stage": np.tile(np.arange(S), G),
                **{k: c[k].reshape(-1) for k in ("reached", "advanced", "dropped", "open")},
            }
        )
        out["counts"] = frame[frame["reached"].to_numpy() > 0]
        sub = log_subjects(log, "implied")
        aj = pd.DataFrame(
            {
                **keys(group[sub.deal]),
                "stage": sub.stage.astype(np.int64),
                "time": sub.t_adv.astype(np.int64),
                "cause": sub.c_adv.astype(np.int64),
                "n": np.ones(sub.deal.size, dtype=np.int64),
            }
        )
        out["aj"] = counted(aj, ["stage", "time", "cause"])
    elif metric == "win_rate":
        counts = np.bincount(group * 4 + oc, minlength=G * 4).reshape(G, 4)
        out["outcomes"] = pd.DataFrame({**keys(gd), **{str(k): counts[:, k] for k in range(4)}})[
            n_deals > 0
        ]
        t, cause = _win_clock(log)
        aj = pd.DataFrame(
            {
                **keys(group),
                "time": t.astype(np.int64),
                "cause": cause.astype(np.int64),
                "n": np.ones(group.size, dtype=np.int64),
            }
        )
        out["aj"] = counted(aj, ["time", "cause"])
    elif metric == "dwell":
        v = log._visits()
        has = v.dwell != NAT
        g = group[v.deal] * S + v.stage
        n_vis = np.bincount(g[has], minlength=G * S)
        pres = np.flatnonzero(n_vis)
        out["visits"] = pd.DataFrame({**keys(pres // S), "stage": pres % S, "visits": n_vis[pres]})
        sel = has & (v.entered <= np.asarray(cut)[v.stage])
        out["sketch"] = _sketch_frame(
            g[sel],
            v.dwell[sel],
            v.censored[sel],
            cfg.exact_limit,
            lambda x: {"stage": x % S, **keys(x // S)},
        )
    else:  # cycle_time
        sel = (log._first_ns <= int(cut)) & (oc != V.STALE)
        dur, _ = resolution_times(log)
        out["sketch"] = _sketch_frame(
            group[sel],
            dur[sel],
            (oc == V.OPEN)[sel],
            cfg.exact_limit,
            keys,
        )
    return out


def trend_table(
    parts: list[dict[str, pd.DataFrame]],
    sm: Summary,
    lay: Layout,
    by_cols: list[str],
    pfreq: str,
    metric: str,
    cut: Any,
    exact_limit: int,
) -> pd.DataFrame:
    """``EventLog.trend()`` from the partitions' :func:`trend_part`: merged, put on the
    global segments and periods (every period from the first creation to the last), and
    handed to the builders the in-memory trend uses."""
    from . import monitoring as M

    frames: dict[str, list[pd.DataFrame]] = {}
    for part in parts:  # loop over partitions
        for key, frame in part.items():
            frames.setdefault(key, []).append(frame)
    cat: dict[str, pd.DataFrame] = {k: pd.concat(v, ignore_index=True) for k, v in frames.items()}
    deals = cat["deals"]
    o_min = int(deals["ordinal"].min())
    o_max = int(deals["ordinal"].max())
    periods = pd.period_range(
        start=pd.Period(ordinal=o_min, freq=pfreq), end=pd.Period(ordinal=o_max, freq=pfreq)
    )
    P = len(periods)
    start_ns = periods.start_time.as_unit("ns").asi8.astype(np.int64)
    end_ns = (periods + 1).start_time.as_unit("ns").asi8.astype(np.int64)
    table = pd.DataFrame(
        {
            "period": np.asarray(periods.astype(str), dtype=object).astype(str),
            "period_start": lay.timestamps(start_ns),
            "period_end": lay.timestamps(end_ns),
        }
    )
    names: list[str] = [
        k for k in ("deals", "counts", "aj", "outcomes", "visits", "sketch") if k in cat
    ]
    codes, labels = _segments(sm, by_cols, [sm.tables["deals"], *(cat[k] for k in names)])
    n_seg = len(labels)
    G, S = n_seg * P, len(lay.stages)
    group: dict[str, np.ndarray] = {
        k: codes[i + 1] * P + (cat[k]["ordinal"].to_numpy(dtype=np.int64) - o_min)
        for i, k in enumerate(names)
    }
    head = expand(labels, np.repeat(np.arange(n_seg), P), by_cols)
    tiled = table.iloc[np.tile(np.arange(P), n_seg)].reset_index(drop=True)
    head = pd.concat([head, tiled], axis=1)
    ends = np.tile(end_ns, n_seg)

    def total(key: str, col: str, n: int, extra: np.ndarray | None = None) -> np.ndarray:
        g = group[key] if extra is None else group[key] * S + extra
        return np.bincount(g, weights=cat[key][col].to_numpy(np.float64), minlength=n)

    def rows(key: str, extra: np.ndarray | None = None) -> tuple:
        f = cat.get(key)
        if f is None:
            z = np.zeros(0, dtype=np.int64)
            return z, z, z, np.zeros(0), np.zeros(0)
        g = group[key] if extra is None else group[key] * S + extra
        n = f["n"].to_numpy(dtype=np.float64)
        return (g, f["time"].to_numpy(np.int64), f["cause"].to_numpy(np.int64), n, n)

    def km(key: str, n: int, by_stage: bool) -> dict[str, np.ndarray]:
        f = cat.get(key)
        if f is None or f.empty:
            f = pd.DataFrame(
                {c: np.zeros(0, dtype=np.int64) for c in ("g", "value", "events", "censored")}
            ).assign(binned=np.zeros(0, dtype=bool))
            g = np.zeros(0, dtype=np.int64)
        else:
            keys = [
                *(attr_column(b) for b in by_cols),
                "ordinal",
                *(["stage"] if by_stage else []),
            ]
            f = compress(f, keys, exact_limit)
            (_, seg), _ = _segments(sm, by_cols, [sm.tables["deals"], f])
            g = seg * P + (f["ordinal"].to_numpy(dtype=np.int64) - o_min)
            if by_stage:
                g = g * S + f["stage"].to_numpy(dtype=np.int64)
        gg, t, d, c, b = _sorted_sketch(f, g)
        return _stats.kaplan_meier_runs(gg, t, d, c, n, binned=b)

    stats: dict[str, Any] = {}
    if metric == "conversion":
        st = cat["counts"]["stage"].to_numpy(dtype=np.int64) if "counts" in cat else None
        stats["counts"] = {
            k: (
                np.rint(total("counts", k, G * S, st)).astype(np.int64).reshape(G, S)
                if st is not None
                else np.zeros((G, S), dtype=np.int64)
            )
            for k in ("reached", "advanced", "dropped", "open")
        }
        aj_stage = cat["aj"]["stage"].to_numpy(dtype=np.int64) if "aj" in cat else None
        stats["aj"] = _conversion_estimates(rows("aj", aj_stage), G * S, lay)
    elif metric == "dwell":
        st = cat["visits"]["stage"].to_numpy(dtype=np.int64) if "visits" in cat else None
        stats["visits"] = (
            np.rint(total("visits", "visits", G * S, st)).astype(np.int64)
            if st is not None
            else np.zeros(G * S, dtype=np.int64)
        )
        stats["km"] = km("sketch", G * S, True)
    if metric in ("conversion", "dwell"):
        return M.stage_trend_table(
            head, list(lay.stages), metric, stats, np.asarray(cut), ends, lay.timestamps
        )
    stats["deals"] = np.rint(total("deals", "deals", G)).astype(np.int64)
    if metric == "win_rate":
        stats["outcomes"] = np.column_stack(
            [np.rint(total("outcomes", str(k), G)).astype(np.int64) for k in range(4)]
        )
        stats["aj"] = _conversion_estimates(rows("aj"), G, lay)
    else:
        stats["km"] = km("sketch", G, False)
    return M.deal_trend_table(head, metric, stats, int(cut), ends, lay.timestamps)


def clock_part(pdf: pd.DataFrame, cfg: Config, lay: Layout, spec) -> tuple[dict, ...]:
    """One partition's subjects of the funnel's clock, one piece per stage
    (:func:`funnelkit._clock.subjects_by_stage` of its log in the global stage order)."""
    from ._clock import subjects_by_stage

    return subjects_by_stage(_global_log(pdf, cfg, lay), lay, spec)


def run_clock(partitions: Sequence[pd.DataFrame], cfg: Config, lay: Layout, spec, products):
    """The sharded clock's three steps in this process, over ``partitions`` of whole
    deals (see :mod:`funnelkit._clock`): what an engine runs in parallel."""
    from ._clock import clock_stage, gather, tasks

    parts = [clock_part(p, cfg, lay, spec) for p in partitions]
    done = [
        [clock_stage([p[s] for p in parts], lay, spec, t) for t in tasks(products)]
        for s in range(len(lay.stages))
    ]
    return gather(done, lay, spec, products)


def split_part(pdf: pd.DataFrame, cfg: Config, lay: Layout, period_ns: int) -> dict:
    """One partition's part of ``compare(period=...)``: per side (0 = created before
    ``period_ns``, 1 = at or after; creation = the deal's first event) the deals and the
    funnel counts ``(2, stages)`` in the global stage order (the conversions come from
    the sharded clock, grouped by side)."""
    from ._periods import stage_counts

    log = _global_log(pdf, cfg, lay)
    S = len(lay.stages)
    if log is None:
        return {
            "deals": np.zeros(2, dtype=np.int64),
            "counts": {k: np.zeros((2, S), dtype=np.int64) for k in _COUNT_KEYS},
        }
    side = (log._first_ns >= period_ns).astype(np.int64)
    c = stage_counts(log, side, 2)
    return {
        "deals": np.bincount(side, minlength=2),
        "counts": {k: c[k] for k in _COUNT_KEYS},
    }


_COUNT_KEYS = ("reached", "advanced", "dropped", "open")


def compare_period_table(
    parts: list[dict], lay: Layout, alpha: float, clock: Clock, period_ns: int
) -> pd.DataFrame:
    """``EventLog.compare(period=...)`` from the partitions' :func:`split_part` (the
    counts) and the clock grouped by the period's sides (the conversions)."""
    from .monitoring import period_compare_table

    deals = np.sum([p["deals"] for p in parts], axis=0).astype(np.int64)
    c = {k: np.sum([p["counts"][k] for p in parts], axis=0) for k in _COUNT_KEYS}
    aj = clock([], ("conversion",), win=False, period_ns=period_ns)["conversion"]
    return period_compare_table(list(lay.stages), c, deals, aj, alpha)


# --------------------------------------------------------------------------- what_if
#: Poisson(1) cumulative probabilities: a uniform draw below ``_POISSON_CDF[k]`` is k
_POISSON_CDF = np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(24)], dtype=np.float64)


#: deals whose bootstrap weights are held at once (with 200 draws: about 30 MB)
_WEIGHT_ROWS = 20_000


def poisson_weights(keys: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """``(deals, n_boot)`` bootstrap weights, Poisson(1): each a function of the deal's
    key (a 64-bit hash of its id), the draw and ``seed`` only — the same in whichever
    partition the deal is (the Poisson bootstrap: resampling whole deals without knowing
    how many there are)."""
    with np.errstate(over="ignore"):
        x = (
            keys.astype(np.uint64)[:, None]
            + (np.arange(1, n_boot + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))[None, :]
        )
        x ^= np.uint64(seed) * np.uint64(0xD1B54A32D192ED03)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)  # splitmix64
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    u = (x >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.searchsorted(_POISSON_CDF, u, side="right").astype(np.float64)


def what_if_edges(sm: Summary, lay: Layout, bins: int) -> np.ndarray:
    """``(S, bins - 1)`` dwell edges (ns) per stage that cut its visits (open ones too)
    into ``bins`` bins of about equal size, from the merged dwell sketch."""
    S = len(lay.stages)
    d = sm.tables["dwell"]
    stage = pd.Index(lay.stages).get_indexer(d["stage"].astype(str))
    value = d["value"].to_numpy(np.int64)
    n = (d["events"] + d["censored"]).to_numpy(np.int64)
    edges = np.zeros((S, bins - 1), dtype=np.int64)
    for s in range(S):  # loop over stages
        m = stage == s
        if not m.any():
            continue
        o = np.argsort(value[m], kind="stable")
        v, cum = value[m][o], np.cumsum(n[m][o])
        rank = (np.arange(1, bins) * cum[-1]) // bins  # the visit that opens each bin
        edges[s] = v[np.minimum(np.searchsorted(cum, rank, side="right"), v.size - 1)]
    return edges


def what_if_part(
    pdf: pd.DataFrame, cfg: Config, lay: Layout, by_cols: list[str], n_boot: int, seed: int,
    edges: np.ndarray,
) -> dict[str, Any] | None:  # fmt: skip
    """One partition's sufficient statistics of ``what_if`` per local segment (its values
    in ``labels``): deals, the chain's exit and starting counts, the won amount's sum and
    count, the dwell bins' counts and totals (days; for their times), and with
    ``n_boot`` the same under each draw's Poisson weights (the dwell bins split by
    censoring); None without a usable event."""
    from scipy import sparse

    from .forecast import _DAY_NS, won_amounts
    from .markov import deal_counts

    log = _global_log(pdf, cfg, lay)
    if log is None:
        return None
    S, D = len(lay.stages), log.n_deals
    B = edges.shape[1] + 1
    seg, labels = _segment_codes(log, by_cols)
    n_loc = len(next(iter(labels.values()))) if labels else 1
    exits, start = deal_counts(log)
    amt = won_amounts(log)
    member = sparse.csr_matrix((np.ones(D), (seg, np.arange(D))), shape=(n_loc, D))
    v = log._visits()
    keep = np.flatnonzero(v.dwell != NAT)
    stage, dwell = v.stage[keep].astype(np.int64), v.dwell[keep]
    b = np.zeros(keep.size, dtype=np.int64)
    for s in range(S):  # loop over stages
        m = stage == s
        b[m] = np.searchsorted(edges[s], dwell[m], side="right")
    key = stage * B + b
    out: dict[str, Any] = {
        "labels": labels,
        "deals": np.bincount(seg, minlength=n_loc),
        "counts": (member @ exits).toarray(),
        "starts": (member @ start).toarray(),
        "amount": member @ amt,
        "bin_n": np.bincount(key, minlength=S * B),
        "bin_sum": np.bincount(key, weights=dwell / _DAY_NS, minlength=S * B),
    }
    if n_boot:
        ids = np.asarray(log._deal_labels.astype(str), dtype=object)
        keys = pd.util.hash_array(ids)
        col = key * 2 + v.censored[keep].astype(np.int64)
        bins = sparse.csr_matrix((np.ones(keep.size), (v.deal[keep], col)), shape=(D, S * B * 2))
        mats = {"b_counts": exits.tocsr(), "b_starts": start.tocsr(), "b_bins": bins,
                "b_amount": sparse.csr_matrix(amt)}  # fmt: skip
        draws = {k: np.zeros((n_loc, n_boot, m.shape[1])) for k, m in mats.items()}
        for g in range(n_loc):  # loop over the partition's segments
            rows = np.flatnonzero(seg == g)
            for i in range(0, rows.size, _WEIGHT_ROWS):  # blocks of deals: bounded memory
                r = rows[i : i + _WEIGHT_ROWS]
                w = poisson_weights(keys[r], n_boot, seed)
                for k, m in mats.items():
                    draws[k][g] += (m[r].T @ w).T
        draws["b_amount"] = draws["b_amount"].transpose(0, 2, 1)  # (segments, 2, draws)
        out.update(draws)
    return out


def what_if_table(
    parts: list[dict[str, Any]], sm: Summary, lay: Layout, plan, by_cols: list[str],
    n_boot: int, bins: int,
) -> pd.DataFrame:  # fmt: skip
    """``EventLog.what_if`` from the partitions' :func:`what_if_part`: their segments
    mapped to the global ones, summed, and handed to the in-memory builder
    (:func:`funnelkit.forecast.what_if_block`); the mean dwells from the dwell sketch."""
    from .forecast import _DAY_NS, WhatIfDraws, bin_times, what_if_block
    from .markov import AbsorbingChain

    S = len(lay.stages)
    n_states = len(lay.catalogue) + 1
    frames = [
        pd.DataFrame(
            {attr_column(a): v for a, v in p["labels"].items()}, index=range(len(p["deals"]))
        )
        for p in parts
    ]
    codes, labels = _segments(sm, by_cols, [sm.tables["deals"], *frames])
    n_seg = len(labels)

    def total(name: str, shape: tuple[int, ...]) -> np.ndarray:
        acc = np.zeros((n_seg, *shape))
        for p, c in zip(parts, codes[1:], strict=True):
            np.add.at(acc, c, np.asarray(p[name], dtype=np.float64).reshape(len(c), *shape))
        return acc

    deals = total("deals", ()).astype(np.int64)
    counts = total("counts", (S, n_states))
    starts = total("starts", (n_states,))
    amount = total("amount", (2,))
    kind = np.append(lay.kind, V.LOST_KIND)
    all_starts = starts.sum(axis=0)
    chain = AbsorbingChain(
        (*lay.catalogue, "stale"), S, counts.sum(axis=0), all_starts / all_starts.sum(),
        kind == V.WON_KIND, kind == V.LOST_KIND,
    )  # fmt: skip
    dw = dwell_table(sm, lay, by=by_cols or None, visits="all")
    means = (dw["mean"].to_numpy("timedelta64[ns]").astype(np.float64) / _DAY_NS).reshape(n_seg, S)
    times = bin_times(
        np.sum([p["bin_n"] for p in parts], axis=0),
        np.sum([p["bin_sum"] for p in parts], axis=0),
        S,
    )
    if n_boot:
        b_counts = total("b_counts", (n_boot, S, n_states))
        b_starts = total("b_starts", (n_boot, n_states))
        b_bins = total("b_bins", (n_boot, S, bins, 2))
        b_amount = total("b_amount", (2, n_boot))
    blocks = []
    for g in range(n_seg):  # loop over segments
        boot = None
        if n_boot:
            boot = WhatIfDraws(
                b_counts[g], b_starts[g], b_bins[g], times, b_amount[g, 0], b_amount[g, 1]
            )
        blocks.append(
            what_if_block(
                plan, chain, counts[g], starts[g], means[g], tuple(amount[g]), int(deals[g]),
                boot, lay.amount is not None, list(lay.stages), labels, g, by_cols,
            )
        )  # fmt: skip
    out = pd.concat(blocks, ignore_index=True)
    return out.astype({c: np.float64 for c in ("baseline", "scenario", "change")})
