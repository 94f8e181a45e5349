"""Field history: how deal fields (close date, amount, forecast category) changed over time.

A CRM keeps, next to the stage events, a long table of field changes — one row per change:
deal, field name, new value, changed at (Salesforce's ``OpportunityFieldHistory``, HubSpot's
property history). :func:`attach` validates such a table against an event log and
:class:`FieldHistory` holds it, one sorted track per field; the analyses read the fields
**as known at a time** — only changes at or before that time count:

* :func:`snapshot` — the open pipeline as it stood at a moment;
* :func:`slippage` — close-date pushes and pulls and amount changes per deal, or summed per
  stage or per segment, with a chronic-slipper flag;
* :func:`movement` — the pipeline waterfall of :func:`funnelkit.monitoring.movement` with
  the categories ``pulled_in``, ``pushed_out``, ``increased`` and ``decreased``, optionally
  following the pipeline whose close date lies in a window (this quarter's pipeline).

Before a deal's first change of a field, its amount is the event log's amount (the value
the log carries), its close date and forecast category are unknown (NaT / missing).
Open, won, lost and stale at a time are the log's own states
(:func:`funnelkit.monitoring.movement_masks`), never re-derived here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import _columns as C
from . import _stats
from ._columns import NAT, to_timestamp
from .errors import EventLogError, InvalidParameterError
from .monitoring import _OPEN, _STALE, _activity, _states, movement_masks

if TYPE_CHECKING:
    from .log import EventLog

__all__ = [
    "FIELDS",
    "HISTORY_REASONS",
    "MOVEMENT_CATEGORIES",
    "FieldHistory",
    "HistoryQuality",
    "attach",
    "movement",
    "slippage",
    "snapshot",
]

#: the deal fields a history can carry (names in the caller's table mapped by ``fields``)
FIELDS = ("close_date", "amount", "forecast_category")
#: why a history row is not used, in the order the checks run
HISTORY_REASONS = (
    "invalid_deal",
    "missing_deal",
    "unknown_deal",
    "missing_field",
    "unknown_field",
    "missing_time",
    "unparseable_time",
    "mixed_timezone",
    "after_as_of",
    "invalid_value",
)
_REASON_COLUMN = {
    "invalid_deal": "deal",
    "missing_deal": "deal",
    "unknown_deal": "deal",
    "missing_field": "field",
    "unknown_field": "field",
    "missing_time": "time",
    "unparseable_time": "time",
    "mixed_timezone": "time",
    "after_as_of": "time",
    "invalid_value": "value",
}
_HINTS = {
    "invalid_deal": "a deal id must be a single value (text or a number), not a list or dict",
    "missing_deal": "every change needs a deal id",
    "unknown_deal": "these deal ids are not deals of the event log; ids must match the log's "
    "exactly, with the same type ('42' is not 42); drop changes of other deals, or build "
    "the log from all deals",
    "missing_field": "every change needs a field name",
    "unknown_field": "these field names are not mapped by `fields`; map them, e.g. "
    "fields={'close_date': 'CloseDate', 'amount': 'Amount'}, or keep only the rows of "
    "the mapped fields (or pass errors='drop' to count them as rejects)",
    "missing_time": "every change needs the time it was made",
    "unparseable_time": "times must be datetimes or ISO 8601 strings such as "
    "'2025-01-07 09:00:00'; for other formats pass date_format",
    "mixed_timezone": "times mix naive and time-zone-aware values; make them all one kind",
    "after_as_of": "changes after the log's as_of are not known at as_of; build the log "
    "with a later as_of",
    "invalid_value": "close dates must be dates (ISO 8601 such as '2025-06-30', or "
    "close_date_format), amounts finite numbers >= 0; an empty value (a cleared field) is fine",
}
#: rows of :func:`movement` with a field history, in order
MOVEMENT_CATEGORIES = (
    "open_at_start",
    "created",
    "pulled_in",
    "increased",
    "advanced",
    "regressed",
    "won",
    "lost",
    "stale",
    "pushed_out",
    "decreased",
    "open_at_end",
)
_DAY = 86_400 * 10**9


# --------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class _Track:
    """One field's changes, sorted by deal code, time and input order: ``value`` is int64
    ns (close date, NAT when cleared), float64 (amount, NaN when cleared) or int64 codes
    (forecast category, -1 when cleared)."""

    deal: np.ndarray
    time: np.ndarray
    value: np.ndarray


@dataclass(frozen=True)
class HistoryQuality:
    """What happened to every row of a field history.

    ``rows_in == rows_used + rows_rejected``; ``by_reason`` counts the rejected rows per
    reason of :data:`HISTORY_REASONS`, ``changes`` the used rows per field, ``deals`` the
    deals of the log with at least one used change.
    """

    rows_in: int
    rows_used: int
    rows_rejected: int
    by_reason: dict[str, int] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)
    deals: int = 0

    def to_frame(self) -> pd.DataFrame:
        """One row per count: ``metric`` and ``value``.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> log = log.with_history(fk.datasets.load_sample_history(),
        ...                        **fk.datasets.SAMPLE_HISTORY_KWARGS)
        >>> q = log.history.quality.to_frame().set_index("metric")["value"]
        >>> int(q["rows_in"]) == int(q["rows_used"] + q["rows_rejected"])
        True
        """
        counts = [
            (k, getattr(self, k)) for k in ("rows_in", "rows_used", "rows_rejected", "deals")
        ]
        return C.count_frame(counts, rejected=self.by_reason, changes=self.changes)


@dataclass(frozen=True, eq=False)
class FieldHistory:
    """A validated field history, attached to an event log by
    :meth:`funnelkit.EventLog.with_history` (read it as ``log.history``).

    Attributes
    ----------
    quality : HistoryQuality
        Rows in, used and rejected (per reason), changes per field.
    rejects : pandas.DataFrame
        Every history row not used: ``row`` (position in the input), the mapped columns as
        given, and ``reason`` (one of :data:`HISTORY_REASONS`).
    changes : pandas.DataFrame
        The used changes, sorted by deal, field and time: ``deal``, ``field`` (one of
        :data:`FIELDS`), ``changed_at``, and the parsed new value in the field's column —
        ``close_date`` (datetime64, a date; NaT when cleared), ``amount`` (float; NaN when
        cleared), ``forecast_category`` (text; missing when cleared); the other two are
        missing.
    settings : dict
        The keywords given to ``with_history``.
    """

    close_date: _Track
    amount: _Track
    forecast_category: _Track
    categories: pd.Index
    quality: HistoryQuality
    rejects: pd.DataFrame
    changes: pd.DataFrame
    settings: dict[str, Any]
    source: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    def __repr__(self) -> str:
        q = self.quality
        per = ", ".join(f"{k}: {v:,}" for k, v in q.changes.items())
        return (
            f"<FieldHistory: {q.rows_used:,} changes of {q.deals:,} deals ({per}); "
            f"{q.rows_rejected:,} rows rejected>"
        )


# --------------------------------------------------------------------------- building
def _field_names(fields: Mapping[str, Any] | None) -> dict[str, str]:
    """The caller's field name -> funnelkit field."""
    if fields is None:
        return {f: f for f in FIELDS}
    if not isinstance(fields, Mapping):
        raise InvalidParameterError(
            "Parameter `fields` must map funnelkit's fields "
            f"{list(FIELDS)} to the names in the history's field column; got "
            f"{type(fields).__name__}."
        )
    unknown = [k for k in fields if k not in FIELDS]
    if unknown:
        raise InvalidParameterError(
            f"Parameter `fields` has keys {unknown}; the keys are funnelkit's fields "
            f"{list(FIELDS)} and the values the names your history uses, e.g. "
            "{'close_date': 'CloseDate', 'amount': 'Amount'}."
        )
    out: dict[str, str] = {}
    for key, names in fields.items():
        for nm in [names] if isinstance(names, str) else list(names):
            if not isinstance(nm, str):
                raise InvalidParameterError(
                    f"Parameter `fields`[{key!r}] must be a field name or a list of names; "
                    f"got {nm!r}."
                )
            if nm in out and out[nm] != key:
                raise InvalidParameterError(
                    f"Parameter `fields` maps the name {nm!r} to both {out[nm]!r} and {key!r}."
                )
            out[nm] = key
    return out


def _close_dates(values: pd.Series, date_format: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Close dates as int64 ns of the date (UTC date for aware values; NAT when empty) and
    a mask of the values that are no date."""
    t = C.parse_times(values.reset_index(drop=True), date_format)
    ns = t.ns.copy()
    bad = t.unparseable | t.mixed_tz
    ok = ns != NAT
    ns[ok] = (ns[ok] // _DAY) * _DAY  # a close date is a calendar date
    ns[bad] = NAT
    return ns, bad


def _amount_values(values: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Amounts as float64 (NaN when empty) and a mask of the values that are no amount."""
    vals = values.reset_index(drop=True)
    if vals.dtype == object:  # a value column of mixed kinds: text, numbers, dates
        is_num = np.array(
            [
                isinstance(v, (int, float, np.number, str)) and not isinstance(v, bool)
                for v in vals
            ],
            dtype=bool,
        )
        null = np.asarray(vals.isna().to_numpy(), dtype=bool)
        keep = is_num | null
        out = np.full(len(vals), np.nan)
        bad = ~keep
        if keep.any():
            sub = vals[keep].astype(object).where(~null[keep], None)
            if not all(isinstance(v, str) or v is None for v in sub):
                sub = sub.map(lambda v: None if v is None else str(v))
            a, b = C.amounts(sub.astype("string"), name)
            out[keep] = a
            bad[keep] = b
        return out, bad
    try:
        return C.amounts(vals, name)
    except EventLogError:  # a column of dates or booleans: no value is an amount
        return np.full(len(vals), np.nan), ~np.asarray(vals.isna().to_numpy(), dtype=bool)


def attach(
    log: EventLog,
    history: pd.DataFrame,
    *,
    deal: str,
    field: str,
    value: str,
    time: str,
    fields: Mapping[str, Any] | None,
    errors: str,
    date_format: str | None,
    close_date_format: str | None = None,
) -> FieldHistory:
    """Validate ``history`` against ``log`` (see :meth:`funnelkit.EventLog.with_history`)."""
    if not isinstance(history, pd.DataFrame):
        raise InvalidParameterError(
            f"`history` must be a pandas DataFrame (one row per field change); got "
            f"{type(history).__name__}."
        )
    if errors not in ("raise", "drop"):
        raise InvalidParameterError(
            f"Parameter `errors` must be 'raise' or 'drop'; got {errors!r}."
        )
    roles = {"deal": deal, "field": field, "value": value, "time": time}
    C.check_columns(roles, [str(c) for c in history.columns], where="the history")
    C.check_unique_columns(roles, list(history.columns), where=" of the history")
    names = _field_names(fields)
    columns = list(dict.fromkeys(roles.values()))
    n = len(history)
    reason = np.zeros(n, dtype=np.int8)

    def mark(mask: np.ndarray, nm: str) -> None:
        reason[(reason == 0) & mask] = 1 + HISTORY_REASONS.index(nm)

    # deals
    codes = C.deal_codes(history[deal], log._deal_labels, mark)
    # fields
    fcol = history[field]
    bad_f = C.unhashable(fcol)
    if bad_f is not None:
        fcol = C.blank(fcol, bad_f)
    null_f = np.asarray(fcol.isna().to_numpy(), dtype=bool)
    mark(null_f, "missing_field")
    fcode = np.full(n, -1, dtype=np.int64)
    if (~null_f).any():  # look up each distinct name once
        codes_f, uniq_f = pd.factorize(fcol[~null_f])
        lookup = np.array([FIELDS.index(names[v]) if v in names else -1 for v in uniq_f] + [-1])
        fcode[~null_f] = lookup[codes_f]
    mark(fcode < 0, "unknown_field")
    # times
    t = C.side_table_times(
        history, time, date_format, mark, aware=log._aware, as_of_ns=log._as_of_ns,
        what="history time", var="history",
    )  # fmt: skip
    # values, per field
    vcol = history[value]
    num = np.full(n, np.nan)
    ns_val = np.full(n, NAT, dtype=np.int64)
    cat_codes = np.full(n, -1, dtype=np.int64)
    categories = pd.Index([], dtype=object)
    for k, fname in enumerate(FIELDS):
        sel = np.flatnonzero(fcode == k)
        if not sel.size:
            continue
        sub = vcol.iloc[sel]
        if fname == "close_date":
            vals, bad = _close_dates(sub, close_date_format)
            ns_val[sel] = vals
        elif fname == "amount":
            a, bad = _amount_values(sub, value)
            num[sel] = a
        else:
            bad_c = C.unhashable(sub)
            bad = np.zeros(sel.size, dtype=bool) if bad_c is None else bad_c
            sub_ok = sub.where(~bad, None) if bad.any() else sub
            cc, uniq = pd.factorize(sub_ok, use_na_sentinel=True)
            # categories as text; values that read the same (1 and "1") become one
            text, back = np.unique(
                np.array([str(v) for v in uniq], dtype=object), return_inverse=True
            )
            cat_codes[sel] = np.where(cc >= 0, back[np.maximum(cc, 0)], -1)
            categories = pd.Index(text, dtype=object)
        mark_rows = np.zeros(n, dtype=bool)
        mark_rows[sel] = bad
        mark(mark_rows, "invalid_value")
    if errors == "raise" and reason.any():
        raise _bad_rows_error(history, reason, roles, columns)

    good = reason == 0
    tracks = {}
    for k, fname in enumerate(FIELDS):
        rows = np.flatnonzero(good & (fcode == k))
        o = np.lexsort((rows, t.ns[rows], codes[rows]))
        rows = rows[o]
        vals = (ns_val if fname == "close_date" else num if fname == "amount" else cat_codes)[rows]
        tracks[fname] = _Track(codes[rows], t.ns[rows], vals)
    bad_rows = np.flatnonzero(reason)
    rejects = C.take_rows(history, bad_rows, columns)
    rejects.insert(0, "row", bad_rows.astype(np.int64))
    rejects["reason"] = pd.Series(
        [HISTORY_REASONS[r - 1] for r in reason[bad_rows]], dtype=object
    ).astype(str)
    counts = np.bincount(reason, minlength=len(HISTORY_REASONS) + 1)
    quality = HistoryQuality(
        rows_in=n,
        rows_used=int(good.sum()),
        rows_rejected=int((~good).sum()),
        by_reason={
            nm: int(counts[i + 1]) for i, nm in enumerate(HISTORY_REASONS) if counts[i + 1]
        },
        changes={f: int(tracks[f].deal.size) for f in FIELDS},
        deals=int(np.unique(codes[good]).size),
    )
    changes = _changes_frame(log, tracks, categories)
    settings = dict(
        deal=deal, field=field, value=value, time=time, fields=fields, errors=errors,
        date_format=date_format, close_date_format=close_date_format,
    )  # fmt: skip
    return FieldHistory(
        tracks["close_date"],
        tracks["amount"],
        tracks["forecast_category"],
        categories,
        quality,
        rejects,
        changes,
        settings,
        history[columns].copy(),
    )


def reattach(fh: FieldHistory, log: EventLog) -> FieldHistory:
    """``fh`` validated again for ``log`` — a part of the log it was attached to
    (:meth:`funnelkit.EventLog.filter`): the rows of the deals ``log`` keeps."""
    src = fh.source
    deal_col = fh.settings["deal"]
    keep = src[deal_col].isin(pd.Index(log._deal_labels)).to_numpy(dtype=bool)
    return attach(log, src.loc[keep].reset_index(drop=True), **fh.settings)


def _changes_frame(log: EventLog, tracks: dict[str, _Track], categories: pd.Index) -> pd.DataFrame:
    parts = []
    for fname in FIELDS:
        tr = tracks[fname]
        k = tr.deal.size
        close = tr.value if fname == "close_date" else np.full(k, NAT, dtype=np.int64)
        amt = tr.value if fname == "amount" else np.full(k, np.nan)
        cat = tr.value if fname == "forecast_category" else np.full(k, -1, dtype=np.int64)
        parts.append(
            pd.DataFrame(
                {
                    "deal_code": tr.deal,
                    "field": fname,
                    "changed_at": log._timestamp(tr.time),
                    "close_date": pd.DatetimeIndex(close.astype("datetime64[ns]")),
                    "amount": amt,
                    "forecast_category": _category_values(cat, categories),
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    out = out.sort_values(["deal_code", "field", "changed_at"], kind="stable")
    out.insert(0, "deal", log._deal_labels[out["deal_code"].to_numpy()])
    out = out.drop(columns="deal_code").reset_index(drop=True)
    out["field"] = out["field"].astype(pd.CategoricalDtype(list(FIELDS)))
    return out


def _category_values(codes: np.ndarray, categories: pd.Index) -> pd.Series:
    cats = pd.Index(categories, dtype=object).unique()
    return pd.Series(pd.Categorical.from_codes(codes, categories=cats)).astype(object)


def _bad_rows_error(
    history: pd.DataFrame, reason: np.ndarray, roles: dict[str, str], columns: list[str]
) -> EventLogError:
    return C.side_table_error(
        history,
        reason,
        roles,
        columns,
        reasons=HISTORY_REASONS,
        reason_column=_REASON_COLUMN,
        hints=_HINTS,
        what="the field history",
        rejects="log.history.rejects",
    )


# --------------------------------------------------------------------------- as known at t
def _index_at(tr_deal: np.ndarray, tr_time: np.ndarray, qdeal: np.ndarray, qtime: np.ndarray):
    """For each query (deal, time): the index of that deal's latest row with time <= the
    query's time in arrays sorted by deal and time (later input rows win ties), or -1."""
    m, q = tr_deal.size, qdeal.size
    if q == 0:
        return np.zeros(0, dtype=np.int64)
    if m == 0:
        return np.full(q, -1, dtype=np.int64)
    all_deal = np.concatenate([tr_deal, qdeal])
    all_time = np.concatenate([tr_time, qtime])
    kind = np.concatenate([np.zeros(m, np.int8), np.ones(q, np.int8)])  # rows first on ties
    seq = np.concatenate([np.arange(m), np.zeros(q, np.int64)])
    order = np.lexsort((seq, kind, all_time, all_deal))
    is_row = kind[order] == 0
    latest = np.cumsum(is_row) - 1  # global index of the latest row up to each position
    pos = np.empty(q, dtype=np.int64)
    pos[order[~is_row] - m] = latest[~is_row]
    ok = pos >= 0
    ok[ok] = tr_deal[pos[ok]] == qdeal[ok]
    return np.where(ok, pos, -1)


def _known(log: EventLog, fname: str, qdeal: np.ndarray, qtime: np.ndarray) -> np.ndarray:
    """The field ``fname`` of deals ``qdeal`` as known at ``qtime`` (per query)."""
    hist = log._history
    tr: _Track | None = getattr(hist, fname) if hist is not None else None
    if fname == "amount":
        base = (
            log._amount[qdeal].astype(np.float64)
            if log._amount is not None
            else np.full(qdeal.size, np.nan)
        )
    elif fname == "close_date":
        base = np.full(qdeal.size, NAT, dtype=np.int64)
    else:
        base = np.full(qdeal.size, -1, dtype=np.int64)
    if tr is None or tr.deal.size == 0:
        return base
    i = _index_at(tr.deal, tr.time, qdeal, qtime)
    return np.where(i >= 0, tr.value[np.maximum(i, 0)], base)


def _at(log: EventLog, fname: str, t: int) -> np.ndarray:
    n = log.n_deals
    return _known(log, fname, np.arange(n), np.full(n, t, dtype=np.int64))


def _day(value: Any, name: str) -> int:
    """A date parameter as int64 ns of its (UTC) calendar date."""
    ns = to_timestamp(value, True, name)  # aware values to UTC, naive kept
    return (ns // _DAY) * _DAY


# --------------------------------------------------------------------------- snapshot
def snapshot_time(at: Any, aware: bool, as_of_ns: int, as_of: Any) -> int:
    """``at`` of :meth:`~funnelkit.EventLog.snapshot` in ns on the log's clock, checked
    (not after ``as_of``; both engines)."""
    at_ns = to_timestamp(at, aware, "at")
    if at_ns > as_of_ns:
        raise InvalidParameterError(
            f"Parameter `at`={at!r} is after the log's as_of ({as_of}); nothing is known "
            "after as_of. Pass an earlier `at`."
        )
    return at_ns


def snapshot(log: EventLog, at: Any) -> pd.DataFrame:
    """Implementation of :meth:`funnelkit.EventLog.snapshot` (documented there).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> from funnelkit.history import snapshot
    >>> len(snapshot(log, log.as_of)) == log.quality.open
    True
    """
    at_ns = snapshot_time(at, log._aware, log._as_of_ns, log.as_of)
    state, furthest, current = _states(log, at_ns)
    idx = np.flatnonzero(state == _OPEN)
    t = np.full(idx.size, at_ns, dtype=np.int64)
    stages = pd.Index(log.stages, dtype=object)
    cats = log._history.categories if log._history is not None else pd.Index([], dtype=object)
    out = pd.DataFrame(
        {
            "deal": log._deal_labels[idx],
            "stage": pd.Categorical.from_codes(current[idx], categories=stages, ordered=True),
            "furthest_stage": pd.Categorical.from_codes(
                furthest[idx], categories=stages, ordered=True
            ),
            "first_event": log._timestamp(log._first_ns[idx]),
            "amount": _known(log, "amount", idx, t),
            "close_date": pd.DatetimeIndex(
                _known(log, "close_date", idx, t).astype("datetime64[ns]")
            ),
            "forecast_category": _category_values(
                _known(log, "forecast_category", idx, t), cats
            ).to_numpy(),
        }
    )
    for a, ser in log._attrs.items():
        out[a] = ser.to_numpy()[idx]
    return out


# --------------------------------------------------------------------------- slippage
def _close_steps(log: EventLog) -> pd.DataFrame:
    """Every close-date change with a known previous value: ``deal`` (code), ``time``,
    ``old``, ``new`` (ns), ``days`` (new − old, in days), ``quarters`` (quarter ends
    crossed, signed) and ``row`` (index in the track)."""
    hist = log._history
    if hist is None:
        return pd.DataFrame(
            {k: np.zeros(0, np.int64) for k in ("deal", "time", "old", "new", "row")}
            | {"days": np.zeros(0), "quarters": np.zeros(0, np.int64)}
        )
    tr = hist.close_date
    df = pd.DataFrame({"deal": tr.deal, "time": tr.time, "new": tr.value})
    known = df["new"].where(df["new"] != NAT)
    df["old"] = known.groupby(df["deal"]).shift(1)
    df["old"] = df["old"].groupby(df["deal"]).ffill()
    df["row"] = np.arange(len(df))
    df = df[(df["new"] != NAT) & df["old"].notna()].copy()
    df["old"] = df["old"].astype(np.int64)
    df["days"] = (df["new"] - df["old"]) / _DAY
    q_new = _quarter(df["new"].to_numpy())
    q_old = _quarter(df["old"].to_numpy())
    df["quarters"] = q_new - q_old
    return df.reset_index(drop=True)


def _quarter(ns: np.ndarray) -> np.ndarray:
    idx = pd.DatetimeIndex(ns.astype("datetime64[ns]"))
    return np.asarray(idx.year * 4 + (idx.month - 1) // 3, dtype=np.int64)


def slippage_deals(log: EventLog, chronic_pushes: int) -> pd.DataFrame:
    """The per-deal table of :func:`slippage`."""
    n = log.n_deals
    steps = _close_steps(log)
    push = (steps["days"] > 0).to_numpy()
    pull = (steps["days"] < 0).to_numpy()
    d = steps["deal"].to_numpy()
    days = steps["days"].to_numpy()
    pushes = np.bincount(d[push], minlength=n)
    pulls = np.bincount(d[pull], minlength=n)
    days_pushed = np.bincount(d[push], weights=days[push], minlength=n)
    days_pulled = np.bincount(d[pull], weights=-days[pull], minlength=n)
    quarters = np.bincount(d[push], weights=steps["quarters"].to_numpy()[push], minlength=n)
    first_close = np.full(n, NAT, dtype=np.int64)
    hist = log._history
    if hist is not None:
        tr = hist.close_date
        has = tr.value != NAT
        dd, vv = tr.deal[has][::-1], tr.value[has][::-1]
        first_close[dd] = vv  # reversed: the earliest known value is written last
    last_close = _at(log, "close_date", log._as_of_ns)
    base = log._amount if log._amount is not None else np.full(n, np.nan)
    amount_first = base.astype(np.float64).copy()
    if hist is not None:
        tr = hist.amount
        has = ~np.isnan(tr.value)
        dd, vv = tr.deal[has][::-1], tr.value[has][::-1]
        fill = np.full(n, np.nan)
        fill[dd] = vv
        amount_first = np.where(np.isnan(amount_first), fill, amount_first)
    amount_last = _at(log, "amount", log._as_of_ns)
    out = pd.DataFrame(
        {
            "deal": log._deal_labels,
            "outcome": log.deals()["outcome"].to_numpy(),
            "pushes": pushes.astype(np.int64),
            "days_pushed": days_pushed,
            "pulls": pulls.astype(np.int64),
            "days_pulled": days_pulled,
            "quarters_slipped": np.rint(quarters).astype(np.int64),
            "first_close_date": pd.DatetimeIndex(first_close.astype("datetime64[ns]")),
            "last_close_date": pd.DatetimeIndex(last_close.astype("datetime64[ns]")),
            "amount_first": amount_first,
            "amount_last": amount_last,
            "amount_change": amount_last - amount_first,
            "chronic": pushes >= chronic_pushes,
        }
    )
    for a, ser in log._attrs.items():
        out[a] = ser.to_numpy()
    return out


def slippage(
    log: EventLog, *, by: str | Sequence[str] | None = None, chronic_pushes: int = 3
) -> pd.DataFrame:
    """Implementation of :meth:`funnelkit.EventLog.slippage` (documented there).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> log = log.with_history(fk.datasets.load_sample_history(),
    ...                        **fk.datasets.SAMPLE_HISTORY_KWARGS)
    >>> from funnelkit.history import slippage
    >>> slippage(log).equals(log.slippage())
    True
    """
    if log._history is None:
        raise EventLogError(
            "slippage() needs a field history with close dates: attach one with "
            "log.with_history(history, deal=..., field=..., value=..., time=...)."
        )
    per_deal = slippage_deals(log, chronic_pushes)
    if by is None:
        return per_deal
    by_cols = [by] if isinstance(by, str) else list(by)
    if by_cols == ["stage"]:
        return _slippage_by_stage(log, per_deal)
    if "stage" in by_cols:
        raise InvalidParameterError(
            "Parameter `by`: 'stage' cannot be combined with other columns; pass "
            "by='stage' or carried attributes."
        )
    missing = [b for b in by_cols if b not in log._attrs]
    if missing:
        raise InvalidParameterError(
            f"Parameter `by`={by!r}: {missing} are not carried attributes of the log "
            f"(attrs: {list(log._attrs)}); pass 'stage' or one of the attrs."
        )
    g = per_deal.assign(
        _pushed=per_deal["pushes"] > 0,
        _chronic=per_deal["chronic"],
        _change=per_deal["amount_change"].fillna(0.0),
    ).groupby(by_cols, observed=True, sort=True, dropna=False)
    out = pd.DataFrame(
        {
            "deals": g.size().astype(np.int64),
            "deals_pushed": g["_pushed"].sum().astype(np.int64),
            "pushes": g["pushes"].sum().astype(np.int64),
            "days_pushed": g["days_pushed"].sum().astype(np.float64),
            "pulls": g["pulls"].sum().astype(np.int64),
            "days_pulled": g["days_pulled"].sum().astype(np.float64),
            "chronic": g["_chronic"].sum().astype(np.int64),
            "amount_change": g["_change"].sum().astype(np.float64),
        }
    ).reset_index()
    return _with_share(out)


def _with_share(out: pd.DataFrame) -> pd.DataFrame:
    k = out["deals_pushed"].to_numpy(dtype=np.float64)
    nn = out["deals"].to_numpy(dtype=np.float64)
    low, high = _stats.wilson(k, nn)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = k / nn
    pos = out.columns.get_loc("deals_pushed") + 1
    out.insert(pos, "share_pushed", share)
    out.insert(pos + 1, "share_pushed_low", low)
    out.insert(pos + 2, "share_pushed_high", high)
    return out


def _slippage_by_stage(log: EventLog, per_deal: pd.DataFrame) -> pd.DataFrame:
    """Close-date changes summed by the stage the deal was in when the change was made."""
    steps = _close_steps(log)
    n_cat = len(log._catalogue)
    p_deal, p_stage, p_time = log._path_deal, log._path_stage, log._path_time
    d = steps["deal"].to_numpy()
    j = _index_at(p_deal, p_time, d, steps["time"].to_numpy())
    p_starts = np.searchsorted(p_deal, np.arange(log.n_deals), side="left")
    j = np.where(j >= 0, j, p_starts[d])  # before the first event: the first stage
    stage = p_stage[j] if j.size else np.zeros(0, dtype=np.int64)
    days = steps["days"].to_numpy()
    push, pull = days > 0, days < 0
    # deals that entered each stage (terminal names: deals with that outcome event)
    pair = np.unique(p_deal.astype(np.int64) * n_cat + p_stage)
    deals = np.bincount(pair % n_cat, minlength=n_cat)
    pushed_pair = np.unique(d[push].astype(np.int64) * n_cat + stage[push])
    deals_pushed = np.bincount(pushed_pair % n_cat, minlength=n_cat)
    chronic_codes = np.flatnonzero(per_deal["chronic"].to_numpy())
    is_chronic = np.isin(pushed_pair // n_cat, chronic_codes)
    chronic = np.bincount(pushed_pair[is_chronic] % n_cat, minlength=n_cat)
    out = pd.DataFrame(
        {
            "stage": pd.Categorical(log._catalogue, categories=log._catalogue, ordered=True),
            "deals": deals.astype(np.int64),
            "deals_pushed": deals_pushed.astype(np.int64),
            "pushes": np.bincount(stage[push], minlength=n_cat).astype(np.int64),
            "days_pushed": np.bincount(stage[push], weights=days[push], minlength=n_cat),
            "pulls": np.bincount(stage[pull], minlength=n_cat).astype(np.int64),
            "days_pulled": np.bincount(stage[pull], weights=-days[pull], minlength=n_cat),
            "chronic": chronic.astype(np.int64),
        }
    )
    return _with_share(out)


# --------------------------------------------------------------------------- movement
def movement(
    log: EventLog, start: Any, end: Any, *, closing: tuple[Any, Any] | None = None
) -> pd.DataFrame:
    """Implementation of :meth:`funnelkit.EventLog.movement` with a field history
    (documented there).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> log = log.with_history(fk.datasets.load_sample_history(),
    ...                        **fk.datasets.SAMPLE_HISTORY_KWARGS)
    >>> from funnelkit.history import movement
    >>> m = movement(log, "2025-03-31", log.as_of, closing=("2025-04-01", "2025-06-30"))
    >>> m.equals(log.movement("2025-03-31", log.as_of, closing=("2025-04-01", "2025-06-30")))
    True
    """
    flows = movement_flows(log, start, end, closing=closing)
    cats = list(MOVEMENT_CATEGORIES)
    return pd.DataFrame(
        {
            "category": cats,
            "deals": np.array([int(flows[c][0].sum()) for c in cats], dtype=np.int64),
            "amount": np.array([float(flows[c][1].sum()) for c in cats], dtype=np.float64),
        }
    )


def movement_flows(
    log: EventLog, start: Any, end: Any, *, closing: tuple[Any, Any] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per category of :data:`MOVEMENT_CATEGORIES`: the deal mask and each deal's amount
    in it (0 outside) — the per-deal waterfall, which reconciles deal by deal."""
    if closing is not None and log._history is None:
        raise EventLogError(
            "movement(closing=...) follows the pipeline by close date, but the log has no "
            "close-date history; attach one with log.with_history(...) (field "
            "'close_date'), or leave closing=None."
        )
    start_ns, end_ns, s0, s1, masks = movement_masks(log, start, end)
    n = log.n_deals
    ids = np.arange(n)
    if closing is None:

        def window(q: np.ndarray, t: np.ndarray) -> np.ndarray:
            return np.ones(q.size, dtype=bool)

        first = last = 0
    else:
        if not isinstance(closing, (tuple, list)) or len(closing) != 2:
            raise InvalidParameterError(
                f"Parameter `closing` must be a pair (first, last) of dates; got {closing!r}."
            )
        first, last = _day(closing[0], "closing"), _day(closing[1], "closing")
        if first > last:
            raise InvalidParameterError(
                f"Parameter `closing`={closing!r}: the first date is after the last one."
            )

        def window(q: np.ndarray, t: np.ndarray) -> np.ndarray:
            c = _known(log, "close_date", q, t)
            return (c != NAT) & (c >= first) & (c <= last)

    def amount(q: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.nan_to_num(_known(log, "amount", q, t), nan=0.0)

    full = np.full(n, 0, dtype=np.int64)
    # the moments a deal entered (created or revived) and left (won, lost, went stale)
    a_deal, a_time, a_starts = _activity(log)
    n_le_start = np.bincount(a_deal[a_time <= start_ns], minlength=n)
    nxt = np.minimum(a_starts + n_le_start, a_time.size - 1)
    after_start = np.where(a_deal[nxt] == ids, a_time[nxt], NAT)
    entry = np.where(s0 == _STALE, after_start, log._first_ns)
    n_le_end = np.bincount(a_deal[a_time <= end_ns], minlength=n)
    last_act = np.where(n_le_end > 0, a_time[np.maximum(a_starts + n_le_end - 1, 0)], NAT)
    stale_ns = full if log.stale_after is None else last_act + log.stale_after.value
    exit_ = np.where(masks["stale"], stale_ns, log._term_ns)
    created = masks["created"]
    left = masks["won"] | masks["lost"] | masks["stale"]

    w0 = window(ids, np.full(n, start_ns, dtype=np.int64))
    w1 = window(ids, np.full(n, end_ns, dtype=np.int64))
    w_in = np.zeros(n, dtype=bool)
    w_in[created] = window(ids[created], entry[created])
    w_out = np.zeros(n, dtype=bool)
    w_out[left] = window(ids[left], exit_[left])
    in0 = masks["open_at_start"] & w0
    in1 = masks["open_at_end"] & w1
    flow = {
        "created": created & w_in,
        "won": masks["won"] & w_out,
        "lost": masks["lost"] & w_out,
        "stale": masks["stale"] & w_out,
    }
    r = in1.astype(np.int64) - in0 - flow["created"] + flow["won"] + flow["lost"] + flow["stale"]
    pulled, pushed = r > 0, r < 0
    # the move: the latest close-date change that crossed the window's edge, at or
    # before the moment the deal was last seen in the window's terms
    tb = np.where(left, exit_, end_ns)
    move = np.full(n, NAT, dtype=np.int64)
    moved = np.flatnonzero(pulled | pushed)
    if moved.size:
        tr = log._history.close_date  # type: ignore[union-attr]
        inw = (tr.value != NAT) & (tr.value >= first) & (tr.value <= last)
        prev = np.concatenate([[False], inw[:-1]])
        new_deal = np.concatenate([[True], tr.deal[1:] != tr.deal[:-1]])
        prev[new_deal] = False
        cross = inw != prev
        ci = _index_at(tr.deal[cross], tr.time[cross], moved, tb[moved])
        move[moved] = tr.time[cross][ci]  # a crossing exists: window(ta) != window(tb)
    a_start = np.where(in0, amount(ids, np.full(n, start_ns, dtype=np.int64)), 0.0)
    a_end = np.where(in1, amount(ids, np.full(n, end_ns, dtype=np.int64)), 0.0)
    a_in = np.zeros(n)
    a_in[flow["created"]] = amount(ids[flow["created"]], entry[flow["created"]])
    out_mask = flow["won"] | flow["lost"] | flow["stale"]
    a_out = np.zeros(n)
    a_out[out_mask] = amount(ids[out_mask], exit_[out_mask])
    a_move = np.zeros(n)
    a_move[moved] = amount(moved, move[moved])
    residual = a_end - a_start - a_in + a_out - np.where(pulled, a_move, 0.0)
    residual = residual + np.where(pushed, a_move, 0.0)
    both = in0 & in1
    res: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "open_at_start": (in0, a_start),
        "created": (flow["created"], a_in),
        "pulled_in": (pulled, np.where(pulled, a_move, 0.0)),
        "increased": (residual > 0, np.maximum(residual, 0.0)),
        "advanced": (masks["advanced"] & both, np.where(masks["advanced"] & both, a_end, 0.0)),
        "regressed": (
            masks["regressed"] & both,
            np.where(masks["regressed"] & both, a_end, 0.0),
        ),
        "won": (flow["won"], np.where(flow["won"], a_out, 0.0)),
        "lost": (flow["lost"], np.where(flow["lost"], a_out, 0.0)),
        "stale": (flow["stale"], np.where(flow["stale"], a_out, 0.0)),
        "pushed_out": (pushed, np.where(pushed, a_move, 0.0)),
        "decreased": (residual < 0, np.maximum(-residual, 0.0)),
        "open_at_end": (in1, a_end),
    }
    if log._amount is None and (log._history is None or log._history.amount.deal.size == 0):
        res = {k: (m, np.full(n, np.nan)) for k, (m, _) in res.items()}
    return res
