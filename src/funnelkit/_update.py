"""Incremental update of an event log (``log.update``; issue 24, item 2).

The log of the union of a log's rows and new rows equals, deal by deal, the log of each
deal's own rows: validation, the sort, the path rules, the carried values and the rejects of
a row depend only on the rows of its deal — apart from a few rules over the whole log:

* the stage order, when it is inferred (not declared);
* ``as_of`` (the latest event when not given), which decides the stale deals;
* times out of range, judged against the median of every time;
* text times, whose rows of the less common kind (with and without an offset) are flagged;
* post-sale events, which wait for their deal's win.

:func:`spliced` rebuilds only the deals the new rows touch — their stored rows and the new
rows, through the same builder — and puts them in the old log's place: the deals, paths and
carried columns of the other deals are copied, not validated or sorted again; the stale rule
is applied to every deal at the new ``as_of``. When a rule over the whole log could change
(an inferred order, post-sale stages, text times, a time span near the range limit,
rows rejected after an earlier ``as_of``, a new ``as_of`` before a stored row, columns of
other types), it returns None and
the caller builds the union in full: the result is the same, only slower. It also returns
None when the rows to rebuild are more than :data:`MAX_REBUILT` of the union's rows: at
1M deals the splice took 0.4x a full build's time with 4–7% of the rows rebuilt and about
1x with 16% (``benchmarks/RESULTS.md``, "Incremental updates ... the crossover"), past
which the full build is as fast a way to the same log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import _columns as C
from . import _validate as V
from ._facade import log_class
from ._inputs import _REASON_CODES
from ._memory import hot_path
from .errors import EventLogError, InvalidParameterError
from .quality import QualityReport

if TYPE_CHECKING:
    from .log import EventLog

__all__ = ["MAX_REBUILT", "Parts", "install", "parts_of", "spliced"]

#: The share of the union's rows (the touched deals' stored rows and the new rows) above
#: which the update builds the union instead of splicing.
MAX_REBUILT = 0.15


def _typed_times(col: pd.Series | pa.ChunkedArray) -> bool:
    """True for a column of datetimes or dates (no text to parse)."""
    if isinstance(col, pa.ChunkedArray):
        t = col.type
        return pa.types.is_timestamp(t) or pa.types.is_date32(t) or pa.types.is_date64(t)
    if isinstance(col.dtype, pd.ArrowDtype):
        t = col.dtype.pyarrow_dtype
        return pa.types.is_timestamp(t) or pa.types.is_date32(t) or pa.types.is_date64(t)
    return bool(pd.api.types.is_datetime64_any_dtype(col.dtype))


def _ids(col: pd.Series | pa.ChunkedArray) -> pa.ChunkedArray | None:
    """The deal-id column as Arrow text or integers (what the membership test compares),
    None for other types (floats, mixed objects: the caller builds in full)."""
    if isinstance(col, pd.Series):
        try:
            col = pa.chunked_array([pa.array(col, from_pandas=True)])
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
            return None
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t):
        return col
    return None


def _same_columns(old: pd.DataFrame | pa.Table, union: pd.DataFrame | pa.Table) -> bool:
    """The union kept the stored columns' types (no promotion changed the old values)."""
    if isinstance(old, pa.Table) and isinstance(union, pa.Table):
        return old.schema.equals(union.schema)
    if isinstance(old, pd.DataFrame) and isinstance(union, pd.DataFrame):
        return list(old.columns) == list(union.columns) and all(
            old[c].dtype == union[c].dtype for c in old.columns
        )
    return False


def _rows(source: pd.DataFrame | pa.Table, rows: np.ndarray) -> pd.DataFrame | pa.Table:
    if isinstance(source, pa.Table):
        return C.take_table(source, rows)
    return source.iloc[rows].reset_index(drop=True)


def _tail(source: pd.DataFrame | pa.Table, start: int) -> pd.DataFrame | pa.Table:
    if isinstance(source, pa.Table):
        return source.slice(start)
    return source.iloc[start:]


def _build(source: pd.DataFrame | pa.Table, settings: dict[str, Any]) -> EventLog | None:
    """The log of ``source``; None when it raises (the full build says why)."""
    try:
        return log_class()(source, **settings)
    except (EventLogError, InvalidParameterError):
        return None


def _categories(old: pd.Index, new_col: pd.Series | pa.ChunkedArray, name: str) -> pd.Index:
    """The uniques a factorisation of (old rows, new rows) gives: the old rows' uniques in
    their order, then the new rows' values not among them, in order of first appearance."""
    _, fresh = C.factorize(new_col, name)
    if len(old) == 0:
        return fresh
    if len(fresh) == 0:
        return old
    extra = fresh[old.get_indexer(fresh) < 0]
    return old.append(extra) if len(extra) else old


def _recode(codes: np.ndarray, uniques: pd.Index, union: pd.Index) -> np.ndarray:
    """``codes`` into ``uniques`` as codes into ``union`` (-1 stays -1)."""
    codes = np.asarray(codes, dtype=np.int64)
    if len(uniques) == 0:
        return codes
    where = np.append(union.get_indexer(uniques), -1).astype(np.int64)
    return where[codes]


def _search(ids: pa.ChunkedArray, rows: np.ndarray, queries: pa.Array) -> np.ndarray:
    """``np.searchsorted(ids[rows], queries)`` for ``ids[rows]`` sorted (the deals' ids in
    the log's order), by a binary search of all queries at once on Arrow's comparisons (the
    build's order of ids: code points for text, values for integers). Ids after the last
    one (new deals of a CRM that numbers them in order) need no search."""
    n = rows.size
    out = np.full(len(queries), n, dtype=np.int64)
    if n == 0 or len(queries) == 0:
        return out
    last = C.take_chunked(ids, rows[n - 1 :])[0]
    todo = np.flatnonzero(~pc.greater(queries, last).to_numpy(zero_copy_only=False))
    q = queries.take(pa.array(todo, type=pa.int64()))
    lo = np.zeros(todo.size, dtype=np.int64)
    hi = np.full(todo.size, n, dtype=np.int64)
    while True:
        open_ = np.flatnonzero(lo < hi)
        if open_.size == 0:
            break
        mid = (lo[open_] + hi[open_]) // 2
        below = pc.less(
            C.take_chunked(ids, rows[mid]), q.take(pa.array(open_, type=pa.int64()))
        ).to_numpy(zero_copy_only=False)
        lo[open_[below]] = mid[below] + 1
        hi[open_[~below]] = mid[~below]
    out[todo] = lo
    return out


class _Merge:
    """Where the kept old deals and the rebuilt deals go in the merged log, which orders
    deals by id as every build does; both groups are already in that order. ``pos_b`` is
    each rebuilt deal's place among the kept ones (how many kept deals sort before it)."""

    def __init__(
        self, kept: np.ndarray, pos_b: np.ndarray, old_deal: np.ndarray, b_deal: np.ndarray
    ):
        self.kept = kept  # a mask of the old deals
        self.ev_kept = kept[old_deal]  # ... and of their path events
        old_len = np.bincount(old_deal, minlength=kept.size)
        n_b = pos_b.size
        b_len = np.bincount(b_deal, minlength=n_b)
        self.n = int(np.count_nonzero(kept)) + n_b
        self.is_b = np.zeros(self.n, dtype=bool)
        self.is_b[pos_b + np.arange(n_b)] = True
        self.is_k = ~self.is_b
        self.lengths = self.deals(old_len, b_len)
        self.n_events = int(self.lengths.sum())
        self.ev_b = np.repeat(self.is_b, self.lengths)
        self.ev_k = ~self.ev_b

    def deals(self, old: np.ndarray, new: np.ndarray) -> np.ndarray:
        out = np.empty(self.n, dtype=np.result_type(old, new))
        out[self.is_k] = old[self.kept]
        out[self.is_b] = new
        return out

    def events(self, old: np.ndarray, new: np.ndarray) -> np.ndarray:
        """Per path event: the kept old deals' events of ``old``, and the rebuilt ones."""
        out = np.empty(self.n_events, dtype=np.result_type(old, new))
        out[self.ev_k] = old[self.ev_kept]
        out[self.ev_b] = new
        return out


@hot_path
def spliced(
    log: EventLog, union: pd.DataFrame | pa.Table, n_old: int, as_of: Any
) -> EventLog | None:
    """``EventLog(union, **settings, as_of=as_of)`` for ``log``, the log of ``union``'s
    first ``n_old`` rows, from the rows of the deals the other rows touch; None when a
    rule over the whole log could change (see the module's notes)."""
    s = log._settings
    span = getattr(log, "_time_span", ())
    if (
        s["stages"] is None
        or log._order_hint is not None
        or log.post_sale_stages
        or log._post_sale_events is not None
        or "after_as_of" in log.quality.by_reason
        or "time_out_of_range" in log.quality.by_reason
        or span == ()
        or not _same_columns(log._source, union)
        or not _typed_times(C.column(union, s["time"]))
    ):
        return None
    ids = _ids(C.column(union, s["deal"]))
    if ids is None:
        return None
    n_all = C.n_rows(union)
    if n_all == n_old:
        return None  # nothing new: the caller's full build is as cheap as any
    as_of_ns = None
    if as_of is not None:
        try:
            as_of_ns = C.to_timestamp(as_of, log._aware, "as_of")
        except (EventLogError, InvalidParameterError):
            return None  # the full build raises the error
        if span and span[1] > as_of_ns:
            # stored rows after the new as_of (any row with a time, rejected or not: a
            # row that made its deal's outcome conflict would be after_as_of instead)
            return None

    # ---- the rows of the deals the new rows touch: their stored rows, then the new rows
    touched = pc.unique(ids.slice(n_old).drop_null())
    in_old = pc.is_in(ids.slice(0, n_old), value_set=touched)
    in_old = pc.fill_null(in_old, False).to_numpy(zero_copy_only=False)
    old_rows = np.flatnonzero(in_old)
    s_rows = np.concatenate([old_rows, np.arange(n_old, n_all)])
    if s_rows.size > MAX_REBUILT * n_all:
        return None  # the full build is faster
    settings = dict(s, as_of=as_of)
    b = _build(_rows(union, s_rows), settings)
    if b is None or b._time_span is None or log._aware != b._aware:
        return None
    lo = min(span[0], b._time_span[0]) if span else b._time_span[0]
    hi = max(span[1], b._time_span[1]) if span else b._time_span[1]
    if hi - lo >= C.MAX_FROM_MEDIAN or b._post_sale_events is not None:
        return None
    # what the touched deals counted in the old log (quality counts kept per log only)
    q_old = log.quality
    before_ties, before_changes = 0, dict.fromkeys(q_old.attr_changes, 0)
    if old_rows.size and (q_old.unresolved_ties or any(q_old.attr_changes.values())):
        a = _build(_rows(union, old_rows), dict(s))
        if a is None:
            return None
        before_ties, before_changes = a.quality.unresolved_ties, a.quality.attr_changes

    # ---- deals: the old ones not touched, and the rebuilt ones, by id. The old deals
    # touched are those whose first row is among the stored rows of touched ids; a rebuilt
    # deal is one of them (found by its id) or a new deal (placed by a binary search)
    old_first = np.asarray(log._label_source[1], dtype=np.int64)
    removed = np.flatnonzero(in_old[old_first])
    kept_mask = np.ones(log._n_deals, dtype=bool)
    kept_mask[removed] = False
    b_ids = C.take_chunked(ids, s_rows[b._label_source[1]])
    if removed.size:
        found = pc.index_in(b_ids, value_set=C.take_chunked(ids, old_first[removed]))
        at = pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        at = np.full(len(b_ids), -1, dtype=np.int64)
    pos_b = np.empty(len(b_ids), dtype=np.int64)
    known = at >= 0  # an old deal: its old code less the removed deals before it
    pos_b[known] = removed[at[known]] - at[known]
    fresh = np.flatnonzero(~known)
    if fresh.size:
        g = _search(ids, old_first, b_ids.take(pa.array(fresh, type=pa.int64())))
        pos_b[fresh] = g - np.searchsorted(removed, g)
    m = _Merge(kept_mask, pos_b, log._path_deal, b._path_deal)

    # ---- the deals' arrays, in the merged order
    first_ns = m.deals(log._first_ns, b._first_ns)
    last_ns = m.deals(log._last_ns, b._last_ns)
    if as_of_ns is None:
        as_of_ns = int(last_ns.max())
    if as_of_ns - int(first_ns.min()) >= 2 * C.MAX_FROM_MEDIAN:
        return None  # the full build refuses such an as_of
    outcome = m.deals(log._outcome, b._outcome)
    outcome[outcome == V.STALE] = V.OPEN  # the stale rule, again at the new as_of
    if log.stale_after is not None:
        outcome[(outcome == V.OPEN) & (as_of_ns - last_ns > log.stale_after.value)] = V.STALE
    amount = None
    if log._amount is not None and b._amount is not None:
        amount = m.deals(log._amount, b._amount)

    # ---- carried columns: categories of the union, codes of each deal's own rows
    new_part = _tail(union, n_old)
    attrs = {}
    for name, old_ser in log._attrs.items():
        old_cat, b_cat = old_ser.array, b._attrs[name].array
        cats = _categories(old_cat.categories, C.column(new_part, name), name)
        old_codes = np.asarray(old_cat.codes, dtype=np.int64)
        attrs[name] = (m.deals(old_codes, _recode(b_cat.codes, b_cat.categories, cats)), cats)
    visit_attrs = {}
    for name, (old_codes, old_uniques) in log._visit_attrs.items():
        cats = _categories(old_uniques, C.column(new_part, name), name)
        b_codes, b_uniques = b._visit_attrs[name]
        visit_attrs[name] = (m.events(old_codes, _recode(b_codes, b_uniques, cats)), cats)

    # ---- rejects: the untouched rows' verdicts, and those of the rebuilt rows
    o_rows, o_reason = log._reject_rows
    keep = ~in_old[o_rows] if o_rows.size else np.zeros(0, dtype=bool)
    b_rows, b_reason = b._reject_rows
    rows = np.concatenate([o_rows[keep], s_rows[b_rows]])
    reason = np.concatenate([o_reason[keep], b_reason])
    order = np.argsort(rows, kind="stable")

    # ---- quality: counted again from the merged arrays, except what only a build sees
    q_old, q_b = log.quality, b.quality
    reopened = m.deals(log._reopened, b._reopened)
    quality = _counts(reason, outcome, reopened, amount, m.n_events, n_all) | {
        "attr_changes": {
            k: v - before_changes[k] + q_b.attr_changes[k] for k, v in q_old.attr_changes.items()
        },
        "unresolved_ties": q_old.unresolved_ties - before_ties + q_b.unresolved_ties,
    }
    parts = Parts(
        stages=list(log.stages),
        inferred=False,
        aware=log._aware,
        as_of_ns=as_of_ns,
        time_span=(lo, hi),
        path_deal=np.repeat(np.arange(m.n, dtype=log._path_deal.dtype), m.lengths),
        path_stage=m.events(log._path_stage, b._path_stage),
        path_time=m.events(log._path_time, b._path_time),
        first_ns=first_ns,
        last_ns=last_ns,
        outcome=outcome,
        outcome_stage=m.deals(log._outcome_stage, b._outcome_stage),
        term_ns=m.deals(log._term_ns, b._term_ns),
        reopened=reopened,
        label_rows=m.deals(log._label_source[1], s_rows[b._label_source[1]]),
        amount=amount,
        attrs=attrs,
        visit_attrs=visit_attrs,
        reject_rows=rows[order],
        reject_reason=reason[order],
        quality=quality,
    )
    cls: Any = log_class()
    return cls._from_parts(union, parts, **settings)


def _counts(
    reason: np.ndarray,
    outcome: np.ndarray,
    reopened: np.ndarray,
    amount: np.ndarray | None,
    rows_used: int,
    rows_in: int,
) -> dict[str, Any]:
    """The counts of :class:`~funnelkit.quality.QualityReport` that the rejects' reasons
    and the deals' arrays give."""
    counts = np.bincount(reason, minlength=len(_REASON_CODES) + 1)
    by_reason = {nm: int(counts[i + 1]) for i, nm in enumerate(_REASON_CODES) if counts[i + 1]}
    removed = by_reason.get("reopened_terminal", 0)
    collapsed = by_reason.get("repeat", 0) + by_reason.get("terminal_run", 0)
    oc = np.bincount(outcome, minlength=4)
    return {
        "rows_in": rows_in,
        "rows_used": rows_used,
        "rows_dropped": int(reason.size) - removed - collapsed - by_reason.get("post_sale", 0),
        "rows_removed": removed,
        "rows_collapsed": collapsed,
        "by_reason": by_reason,
        "deals": int(outcome.size),
        "won": int(oc[V.WON]),
        "lost": int(oc[V.LOST]),
        "stale": int(oc[V.STALE]),
        "open": int(oc[V.OPEN]),
        "reopened": int(reopened.sum()),
        "deals_without_amount": int(np.isnan(amount).sum()) if amount is not None else 0,
    }


# ---------------------------------------------------------------------------- parts
@dataclass
class Parts:
    """What a build leaves on a log (``EventLog._build``), for a log that is spliced by an
    update or read back from a saved state instead of built: the stage order, ``as_of``,
    every deal's path (deal code, catalogue code and time per event, in deal order), the
    per-deal arrays, the carried columns as codes and categories, the rejected rows with
    their reasons, and the quality counts."""

    stages: list[str]
    inferred: bool
    aware: bool
    as_of_ns: int
    time_span: tuple[int, int] | None
    path_deal: np.ndarray
    path_stage: np.ndarray
    path_time: np.ndarray
    first_ns: np.ndarray
    last_ns: np.ndarray
    outcome: np.ndarray
    outcome_stage: np.ndarray
    term_ns: np.ndarray
    reopened: np.ndarray
    label_rows: np.ndarray  # per deal: an input row holding its id
    amount: np.ndarray | None
    attrs: dict[str, tuple[np.ndarray, pd.Index]]  # per deal: codes, categories
    visit_attrs: dict[str, tuple[np.ndarray, pd.Index]]  # per path event
    reject_rows: np.ndarray
    reject_reason: np.ndarray
    quality: dict[str, Any]  # QualityReport's counts (not stages, order, as_of)


def parts_of(log: EventLog) -> Parts:
    """The parts of a built log (what a saved state holds)."""
    q = log.quality
    counts = {
        k: getattr(q, k)
        for k in (
            "rows_in", "rows_used", "rows_dropped", "rows_removed", "rows_collapsed",
            "by_reason", "deals", "won", "lost", "stale", "open", "reopened",
            "deals_without_amount", "attr_changes", "unresolved_ties",
        )
    }  # fmt: skip
    return Parts(
        stages=list(log.stages),
        inferred=log._stage_order_inferred,
        aware=log._aware,
        as_of_ns=int(log._as_of_ns),
        time_span=getattr(log, "_time_span", None),
        path_deal=log._path_deal,
        path_stage=log._path_stage,
        path_time=log._path_time,
        first_ns=log._first_ns,
        last_ns=log._last_ns,
        outcome=log._outcome,
        outcome_stage=log._outcome_stage,
        term_ns=log._term_ns,
        reopened=log._reopened,
        label_rows=np.asarray(log._label_source[1]),
        amount=log._amount,
        attrs={
            a: (np.asarray(ser.array.codes, dtype=np.int64), ser.array.categories)
            for a, ser in log._attrs.items()
        },
        visit_attrs=dict(log._visit_attrs),
        reject_rows=log._reject_rows[0],
        reject_reason=log._reject_rows[1],
        quality=counts,
    )


def install(log: EventLog, events: pd.DataFrame | pa.Table, parts: Parts) -> None:
    """Put ``parts`` on ``log`` (being constructed from ``events``), as a build would."""
    log._aware = parts.aware
    log._time_span = parts.time_span
    log._as_of_ns = parts.as_of_ns
    log.as_of = log._timestamp(np.array([parts.as_of_ns]))[0]
    log._set_catalogue(parts.stages, parts.inferred)
    log._n_deals = int(parts.first_ns.size)
    log._path_deal, log._path_stage = parts.path_deal, parts.path_stage
    log._path_time = parts.path_time
    log._first_ns, log._last_ns = parts.first_ns, parts.last_ns
    log._outcome, log._outcome_stage = parts.outcome, parts.outcome_stage
    log._term_ns, log._reopened = parts.term_ns, parts.reopened
    deal_col = C.column(events, log._settings["deal"])
    if isinstance(deal_col, pa.ChunkedArray) and pa.types.is_dictionary(deal_col.type):
        deal_col = deal_col.cast(deal_col.type.value_type)
    no_keys = np.zeros(0, dtype=np.int64)
    keys = C.IdKeys(no_keys, 1, np.zeros(0, dtype=bool), deal_col)
    log._label_source = (keys, parts.label_rows)
    log._post_sale_events = None
    log._amount = parts.amount
    log._attrs = {a: attr_series(c, u, a) for a, (c, u) in parts.attrs.items()}
    log._visit_attrs = dict(parts.visit_attrs)
    log._rejects_frame = None
    log._source = log._keep_source(events)
    log._reject_rows = (parts.reject_rows, parts.reject_reason)
    log.quality = QualityReport(
        **parts.quality,
        stages=list(log.stages),
        stage_order_inferred=parts.inferred,
        as_of=log.as_of,
    )
    log._cache = {}


def attr_series(codes: np.ndarray, uniques: pd.Index, name: str) -> pd.Series:
    """A carried column: per deal, a categorical of ``uniques`` (-1: no value)."""
    cats = uniques if len(uniques) else pd.Index([], dtype=object)
    return pd.Series(pd.Categorical.from_codes(codes, categories=cats), name=name)
