"""Activities: what the team did and what the customer said inside each visit.

A CRM keeps, next to the stage events, a table of touches — calls, emails, meetings, demos,
survey answers — one row per touch: deal, time, kind, and an optional value (a feedback
score such as CSAT or NPS, a duration). :func:`attach` validates such a table against an
event log (the same checks and rejects as the events) and places every touch in the visit
it happened in: the deal's latest visit entered at or before the touch. A touch before the
deal's first event, or after the terminal event of a won or lost deal, belongs to no visit;
it is kept and counted (``placement``), never dropped silently.

:func:`activity` summarises the touches per stage and kind (advanced vs dropped visits,
time to first touch, the value's distribution, the association with advancing);
:func:`going_cold` adds to the deals table how long an open deal has gone untouched,
against its stage's usual gap. The statistics of the association live in
:mod:`funnelkit.drivers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import _columns as C
from . import _validate as V
from ._columns import NAT
from .errors import EventLogError, InvalidParameterError

if TYPE_CHECKING:
    from .log import EventLog

__all__ = [
    "ACTIVITY_REASONS",
    "PLACEMENTS",
    "Activities",
    "ActivityQuality",
    "activity",
    "attach",
    "going_cold",
]

#: why an activity row is not used, in the order the checks run
ACTIVITY_REASONS = (
    "invalid_deal",
    "missing_deal",
    "unknown_deal",
    "invalid_kind",
    "missing_kind",
    "missing_time",
    "unparseable_time",
    "mixed_timezone",
    "after_as_of",
    "invalid_value",
)
#: where a used touch lies: in a visit, before the deal's first event, after its close
PLACEMENTS = ("visit", "before_first", "after_last")
_REASON_COLUMN = {
    "invalid_deal": "deal",
    "missing_deal": "deal",
    "unknown_deal": "deal",
    "invalid_kind": "kind",
    "missing_kind": "kind",
    "missing_time": "time",
    "unparseable_time": "time",
    "mixed_timezone": "time",
    "after_as_of": "time",
    "invalid_value": "value",
}
_HINTS = {
    "invalid_deal": "a deal id must be a single value (text or a number), not a list or dict",
    "missing_deal": "every touch needs a deal id",
    "unknown_deal": "these deal ids are not deals of the event log; ids must match the log's "
    "exactly, with the same type ('42' is not 42); drop touches of other deals, or build "
    "the log from all deals",
    "invalid_kind": "a kind must be a single value such as 'call' or 'survey', not a list",
    "missing_kind": "every touch needs a kind (call, email, meeting, survey, ...)",
    "missing_time": "every touch needs the time it happened",
    "unparseable_time": "times must be datetimes or ISO 8601 strings such as "
    "'2025-01-07 09:00:00'; for other formats pass date_format",
    "mixed_timezone": "times mix naive and time-zone-aware values; make them all one kind",
    "after_as_of": "touches after the log's as_of are not known at as_of; build the log "
    "with a later as_of",
    "invalid_value": "values must be finite numbers (a score, a duration in minutes) or empty",
}


# --------------------------------------------------------------------------- the model
#: the plain counts of :class:`ActivityQuality`, in the order of its table
_COUNTS = (
    "rows_in",
    "rows_used",
    "rows_rejected",
    "placed",
    "before_first",
    "after_last",
    "deals",
)


@dataclass(frozen=True)
class ActivityQuality:
    """What happened to every row of an activities table.

    ``rows_in == rows_used + rows_rejected``; ``rows_used == placed + before_first +
    after_last``; ``by_reason`` counts the rejected rows per reason of
    :data:`ACTIVITY_REASONS`, ``by_kind`` the used rows per kind, ``deals`` the deals with
    at least one used touch.
    """

    rows_in: int
    rows_used: int
    rows_rejected: int
    placed: int
    before_first: int
    after_last: int
    by_reason: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    deals: int = 0

    def to_frame(self) -> pd.DataFrame:
        """One row per count: ``metric`` and ``value``.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> log = log.with_activities(fk.datasets.load_sample_activities(),
        ...                           **fk.datasets.SAMPLE_ACTIVITIES_KWARGS)
        >>> q = log.activities.quality.to_frame().set_index("metric")["value"]
        >>> int(q["rows_used"]) == int(q["placed"] + q["before_first"] + q["after_last"])
        True
        """
        counts = [(k, getattr(self, k)) for k in _COUNTS]
        return C.count_frame(counts, rejected=self.by_reason, kind=self.by_kind)


@dataclass(frozen=True, eq=False)
class Activities:
    """Validated activities, attached to an event log by
    :meth:`funnelkit.EventLog.with_activities` (read them as ``log.activities``).

    Arrays (used rows, sorted by deal code, time and input order): ``deal`` codes,
    ``time`` (int64 ns on the log's clock), ``kind`` codes into ``kinds``, ``value``
    (float, NaN when empty), ``visit`` (index into the log's visit arrays, -1 when the
    touch is in no visit), ``placement`` (code into :data:`PLACEMENTS`).

    Attributes
    ----------
    table : pandas.DataFrame
        The used touches, sorted by deal and time: ``deal``, ``time``, ``kind``,
        ``value`` (float; NaN when empty or without a value column), ``stage`` (of the
        visit it lies in; null when in none), ``visit`` (that visit's number, 1 for the
        first visit of the stage; 0 when in none), ``placement`` (one of
        :data:`PLACEMENTS`).
    quality : ActivityQuality
        Rows in, used (placed / before the first event / after the last), rejected per
        reason.
    rejects : pandas.DataFrame
        Every row not used: ``row`` (position in the input), the mapped columns as given,
        ``reason`` (one of :data:`ACTIVITY_REASONS`).
    kinds : pandas.Index
        The kinds, sorted as text.
    value_name : str or None
        The value column's name (activity features are named after it, e.g.
        ``"survey score"``).
    settings : dict
        The keywords given to ``with_activities``.
    """

    deal: np.ndarray
    time: np.ndarray
    kind: np.ndarray
    value: np.ndarray
    visit: np.ndarray
    placement: np.ndarray
    kinds: pd.Index
    value_name: str | None
    quality: ActivityQuality
    rejects: pd.DataFrame
    table: pd.DataFrame
    settings: dict[str, Any]
    source: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    def __len__(self) -> int:
        return int(self.deal.size)

    def __repr__(self) -> str:
        q = self.quality
        per = ", ".join(f"{k}: {v:,}" for k, v in q.by_kind.items())
        return (
            f"<Activities: {q.rows_used:,} touches of {q.deals:,} deals ({per}); "
            f"{q.placed:,} in visits, {q.before_first:,} before the first event, "
            f"{q.after_last:,} after the last; {q.rows_rejected:,} rows rejected>"
        )


# --------------------------------------------------------------------------- building
def _values(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values as float64 (NaN when empty) and a mask of the values that are no number."""
    vals = col.reset_index(drop=True)
    null = np.asarray(vals.isna().to_numpy(), dtype=bool)
    if pd.api.types.is_bool_dtype(vals.dtype) or not (
        pd.api.types.is_numeric_dtype(vals.dtype) or vals.dtype == object or _is_text(vals)
    ):
        return np.full(len(vals), np.nan), ~null
    num = pd.to_numeric(vals.astype(object).where(~null, None), errors="coerce")
    out = np.array(num, dtype=np.float64)
    bad = ~null & ~np.isfinite(out)
    if vals.dtype == object:  # booleans and complex numbers are no values
        bad |= np.array([isinstance(v, (bool, np.bool_, complex)) for v in vals], dtype=bool)
    out[bad | null] = np.nan
    return out, bad


def _is_text(col: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(col.dtype)


def attach(
    log: EventLog,
    acts: pd.DataFrame,
    *,
    deal: str,
    time: str,
    kind: str,
    value: str | None,
    errors: str,
    date_format: str | None,
) -> Activities:
    """Validate ``acts`` against ``log`` and place every touch (see
    :meth:`funnelkit.EventLog.with_activities`)."""
    if not isinstance(acts, pd.DataFrame):
        raise InvalidParameterError(
            f"`acts` must be a pandas DataFrame (one row per touch); got {type(acts).__name__}."
        )
    roles = {"deal": deal, "time": time, "kind": kind}
    if value is not None:
        roles["value"] = value
    C.check_columns(roles, [str(c) for c in acts.columns], where="the activities")
    C.check_unique_columns(roles, list(acts.columns), where=" of the activities")
    columns = list(dict.fromkeys(roles.values()))
    n = len(acts)
    reason = np.zeros(n, dtype=np.int8)

    def mark(mask: np.ndarray, nm: str) -> None:
        reason[(reason == 0) & mask] = 1 + ACTIVITY_REASONS.index(nm)

    # deals
    codes = C.deal_codes(acts[deal], log._deal_labels, mark)
    # kinds, as text (1 and "1" are one kind)
    kcol = acts[kind]
    bad_k = C.unhashable(kcol)
    if bad_k is not None:
        mark(bad_k, "invalid_kind")
        kcol = C.blank(kcol, bad_k)
    null_k = np.asarray(kcol.isna().to_numpy(), dtype=bool)
    mark(null_k, "missing_kind")
    kcode = np.full(n, -1, dtype=np.int64)
    if (~null_k).any():
        cc, uniq = pd.factorize(kcol[~null_k])
        text, back = np.unique(np.array([str(v) for v in uniq], dtype=object), return_inverse=True)
        kcode[~null_k] = back[cc]
        kinds = pd.Index([str(t) for t in text], dtype=object)
    else:
        kinds = pd.Index([], dtype=object)
    # times
    t = C.side_table_times(
        acts, time, date_format, mark, aware=log._aware, as_of_ns=log._as_of_ns,
        what="activity time", var="acts",
    )  # fmt: skip
    # values
    if value is not None:
        vals, bad_v = _values(acts[value])
        mark(bad_v, "invalid_value")
    else:
        vals = np.full(n, np.nan)
    if errors == "raise" and reason.any():
        raise _bad_rows_error(acts, reason, roles, columns)

    good = np.flatnonzero(reason == 0)
    o = np.lexsort((good, t.ns[good], codes[good]))
    rows = good[o]
    d, tm, k, val = codes[rows], t.ns[rows], kcode[rows], vals[rows]
    vis, place = _place(log, d, tm)
    bad_rows = np.flatnonzero(reason)
    rejects = C.take_rows(acts, bad_rows, columns)
    rejects.insert(0, "row", bad_rows.astype(np.int64))
    rejects["reason"] = pd.Series(
        [ACTIVITY_REASONS[r - 1] for r in reason[bad_rows]], dtype=object
    ).astype(str)
    counts = np.bincount(reason, minlength=len(ACTIVITY_REASONS) + 1)
    per_place = np.bincount(place, minlength=len(PLACEMENTS))
    per_kind = np.bincount(k, minlength=len(kinds))
    quality = ActivityQuality(
        rows_in=n,
        rows_used=int(rows.size),
        rows_rejected=int(bad_rows.size),
        placed=int(per_place[0]),
        before_first=int(per_place[1]),
        after_last=int(per_place[2]),
        by_reason={
            nm: int(counts[i + 1]) for i, nm in enumerate(ACTIVITY_REASONS) if counts[i + 1]
        },
        by_kind={str(kinds[i]): int(c) for i, c in enumerate(per_kind)},
        deals=int(np.unique(d).size),
    )
    v = log._visits()
    in_visit = vis >= 0
    stage_codes = np.where(in_visit, v.stage[np.maximum(vis, 0)], -1) if v.deal.size else vis
    table = pd.DataFrame(
        {
            "deal": log._deal_labels.take(d),
            "time": log._timestamp(tm),
            "kind": pd.Categorical.from_codes(k, categories=kinds),
            "value": val,
            "stage": pd.Categorical.from_codes(stage_codes, categories=log.stages),
            "visit": np.where(
                in_visit, v.visit[np.maximum(vis, 0)] if v.deal.size else 0, 0
            ).astype(np.int64),
            "placement": pd.Categorical.from_codes(place, categories=list(PLACEMENTS)),
        }
    )
    settings = dict(
        deal=deal, time=time, kind=kind, value=value, errors=errors, date_format=date_format
    )
    return Activities(
        d, tm, k, val, vis, place, kinds, value, quality, rejects, table, settings,
        acts[columns].copy(),
    )  # fmt: skip


def reattach(acts: Activities, log: EventLog) -> Activities:
    """``acts`` validated again for ``log`` — a part of the log they were attached to
    (:meth:`funnelkit.EventLog.filter`): the rows of the deals ``log`` keeps."""
    src = acts.source
    keep = src[acts.settings["deal"]].isin(pd.Index(log._deal_labels)).to_numpy(dtype=bool)
    return attach(log, src.loc[keep].reset_index(drop=True), **acts.settings)


def _place(log: EventLog, deal: np.ndarray, time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For touches (sorted by deal and time): the visit each lies in (-1: none) and its
    placement code. A touch lies in the deal's latest visit entered at or before it
    (later visits win ties), unless the deal is won or lost and the touch comes after
    its terminal event (``after_last``); one before the deal's first event (or of a deal
    with no visit at or before it) is ``before_first``."""
    from .history import _index_at

    v = log._visits()
    order = np.lexsort((np.arange(v.deal.size), v.entered, v.deal))
    i = _index_at(v.deal[order], v.entered[order], deal, time)
    vis = np.where(i >= 0, order[np.maximum(i, 0)], -1) if order.size else np.full(deal.size, -1)
    term = log._term_ns[deal]
    closed = (term != NAT) & ((log._outcome[deal] == V.WON) | (log._outcome[deal] == V.LOST))
    after = closed & (time > term)
    before = ~after & ((vis < 0) | (time < log._first_ns[deal]))
    place = np.where(after, 2, np.where(before, 1, 0)).astype(np.int8)
    return np.where(place == 0, vis, -1), place


def _bad_rows_error(
    acts: pd.DataFrame, reason: np.ndarray, roles: dict[str, str], columns: list[str]
) -> EventLogError:
    return C.side_table_error(
        acts,
        reason,
        roles,
        columns,
        reasons=ACTIVITY_REASONS,
        reason_column=_REASON_COLUMN,
        hints=_HINTS,
        what="the activities",
        rejects="log.activities.rejects",
    )


# --------------------------------------------------------------------------- summaries
def _advanced_dropped(log: EventLog) -> tuple[np.ndarray, np.ndarray]:
    """Per visit: advanced (next move later in funnel order, or won) and dropped (lost or
    stale)."""
    v = log._visits()
    nxt = v.next
    S = log._n_stages
    kind = np.append(log._kind, V.LOST_KIND)  # the stale pseudo-stage last
    k = np.where(nxt >= 0, kind[np.maximum(nxt, 0)], -1)
    forward = (k == V.STAGE) & (nxt > v.stage) & (nxt < S)
    advanced = forward | (k == V.WON_KIND)
    dropped = (k == V.LOST_KIND) | (nxt == v.stale_code)
    return advanced, dropped


def activity(
    log: EventLog, by: Sequence[str], landmark_ns: int, alpha: float, min_visits: int
) -> pd.DataFrame:
    """The table behind :meth:`funnelkit.EventLog.activity` (see there)."""
    from . import drivers as DR

    acts = log._activities
    assert acts is not None
    v = log._visits()
    S, K = log._n_stages, len(acts.kinds)
    adv, drop = _advanced_dropped(log)
    placed = acts.visit >= 0
    vi, kk = acts.visit[placed], acts.kind[placed]
    nv = v.deal.size
    # per visit and kind: touches, first touch time, value sum and count
    flat = vi * K + kk
    touches = np.bincount(flat, minlength=nv * K).reshape(nv, K) if K else np.zeros((nv, 0))
    first_flat = np.full(nv * K, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_flat, flat, acts.time[placed])
    first = first_flat.reshape(nv, K)
    segs = [None] if not by else _segment_codes(log, by)
    per_kind = []  # the values of each kind in visits: value, stage, deal
    for k in range(K):
        sel = placed & (acts.kind == k) & np.isfinite(acts.value)
        per_kind.append((acts.value[sel], v.stage[acts.visit[sel]], v.deal[acts.visit[sel]]))
    rows = []
    for seg in segs:
        sel_deal = np.ones(log.n_deals, dtype=bool) if seg is None else seg[1]
        in_seg = sel_deal[v.deal]
        for s in range(S):
            at = in_seg & (v.stage == s)
            n_vis = int(at.sum())
            for k in range(K):
                tv = touches[at, k]
                a_, d_ = adv[at], drop[at]
                hit = tv > 0
                ft = (first[at, k] - v.entered[at])[hit]
                vals, vstage, vdeal = per_kind[k]
                vv = vals[(vstage == s) & sel_deal[vdeal]]
                row = {
                    "stage": log.stages[s],
                    "kind": str(acts.kinds[k]),
                    "visits": n_vis,
                    "touches": int(tv.sum()),
                    "touched_share": float(hit.mean()) if n_vis else np.nan,
                    "per_visit_advanced": float(tv[a_].mean()) if a_.any() else np.nan,
                    "per_visit_dropped": float(tv[d_].mean()) if d_.any() else np.nan,
                    "first_touch_median": pd.Timedelta(int(np.median(ft)), "ns")
                    if ft.size
                    else pd.NaT,
                    "values": int(vv.size),
                    "value_mean": float(vv.mean()) if vv.size else np.nan,
                    "value_median": float(np.median(vv)) if vv.size else np.nan,
                    "value_p25": float(np.quantile(vv, 0.25)) if vv.size else np.nan,
                    "value_p75": float(np.quantile(vv, 0.75)) if vv.size else np.nan,
                }
                if seg is not None:
                    row = {**dict(zip(by, seg[0], strict=True)), **row}
                rows.append(row)
    out = pd.DataFrame(rows)
    # association with advancing, per stage, kind (and segment): the drivers' tests
    assoc = []
    for seg in segs:
        keep = None if seg is None else seg[1]
        tab = DR.scan(
            log,
            attrs=[],
            landmark_ns=landmark_ns,
            alpha=alpha,
            deals=keep,
            min_visits=min_visits,
        )
        tab = tab[tab["source"] == "activity"]
        if seg is not None:
            for b, val in zip(by, seg[0], strict=True):
                tab = tab.assign(**{b: val})
        assoc.append(tab)
    a = pd.concat(assoc, ignore_index=True) if assoc else pd.DataFrame()
    cols = ["feature", "group", "effect", "ci_low", "ci_high", "p_value"]
    if out.empty:
        return _empty_activity(by)
    feat_count = {str(k): DR.count_name(str(k)) for k in acts.kinds}
    feat_value = {str(k): DR.value_name(str(k), acts.value_name) for k in acts.kinds}
    keys = list(by) + ["stage"]
    for nm, feats in (("count", feat_count), ("value", feat_value)):
        part = a[a["feature"].isin(list(feats.values()))][keys + cols].copy()
        inv = {f: k for k, f in feats.items()}
        part["kind"] = part["feature"].map(inv)
        part = part.drop(columns="feature").rename(
            columns={c: f"{nm}_{c}" for c in cols if c != "feature"}
        )
        out = out.merge(part, on=keys + ["kind"], how="left")
    q = np.concatenate(
        [out["count_p_value"].to_numpy(float), out["value_p_value"].to_numpy(float)]
    )
    qq = DR.bh(q)  # BH within the table
    out["count_q_value"] = qq[: len(out)]
    out["value_q_value"] = qq[len(out) :]
    return out


def _empty_activity(by: Sequence[str]) -> pd.DataFrame:
    cols = list(by) + ["stage", "kind", "visits", "touches"]
    return pd.DataFrame({c: [] for c in cols})


def _segment_codes(log: EventLog, by: Sequence[str]) -> list[tuple[tuple[Any, ...], np.ndarray]]:
    """(values, deal mask) per segment of the deal attributes ``by`` (seen combinations)."""
    for b in by:
        if b not in log._attrs:
            raise InvalidParameterError(
                f"Parameter `by`: {b!r} is not a carried attribute of the log; choose from "
                f"{log.attrs}."
            )
    frame = pd.DataFrame({b: log._attrs[b].to_numpy() for b in by})
    out = []
    for vals, idx in frame.groupby(list(by), observed=True, sort=True).indices.items():
        mask = np.zeros(log.n_deals, dtype=bool)
        mask[idx] = True
        out.append((vals if isinstance(vals, tuple) else (vals,), mask))
    return out


def going_cold(log: EventLog) -> pd.DataFrame:
    """Going-cold columns per deal (in deal-code order) for :meth:`EventLog.deals`:

    ``last_touch``, ``since_touch`` (``as_of`` − last touch, open deals only),
    ``since_stage_change`` (``as_of`` − entry of the current visit, open deals),
    ``stage_gap_median`` / ``stage_gap_p90`` (the current stage's gaps between
    consecutive touches — the visit's entry counts as the first — over all visits of
    the stage), ``going_cold`` (open, and quiet — no touch nor stage change — longer
    than the stage's p90 gap)."""
    acts = log._activities
    assert acts is not None
    v = log._visits()
    n = log.n_deals
    as_of = log._as_of_ns
    last = np.full(n, NAT, dtype=np.int64)
    np.maximum.at(last, acts.deal, acts.time)  # NAT is int64 min: max of nothing is NAT
    # gaps: per visit, entry then its touches in time order
    placed = np.flatnonzero(acts.visit >= 0)
    pv = acts.visit[placed]
    pts_v = np.concatenate([np.arange(v.deal.size), pv])
    pts_t = np.concatenate([v.entered, acts.time[placed]])
    o = np.lexsort((pts_t, pts_v))
    pv_s, pt_s = pts_v[o], pts_t[o]
    same = pv_s[1:] == pv_s[:-1]
    gaps = (pt_s[1:] - pt_s[:-1])[same]
    gstage = v.stage[pv_s[1:][same]]
    S = log._n_stages
    med = np.full(S, NAT, dtype=np.int64)
    p90 = np.full(S, NAT, dtype=np.int64)
    for s in range(S):  # loop over stages
        g = gaps[gstage == s]
        if g.size:
            med[s] = int(np.quantile(g, 0.5))
            p90[s] = int(np.quantile(g, 0.9))
    # the current visit of open deals: each deal's last visit in path order
    is_open = log._outcome == V.OPEN
    cur = np.full(n, -1, dtype=np.int64)
    if v.deal.size:
        np.maximum.at(cur, v.deal, np.arange(v.deal.size))  # path order: the last visit
    has = is_open & (cur >= 0)
    cstage = np.where(has, v.stage[np.maximum(cur, 0)], -1)
    entered = np.where(has, v.entered[np.maximum(cur, 0)], NAT)
    since_touch = np.where(has & (last != NAT), as_of - last, NAT)
    since_change = np.where(has, as_of - entered, NAT)
    quiet = np.where(has, as_of - np.maximum(entered, last), NAT)
    g_med = np.where(has, med[np.maximum(cstage, 0)], NAT)
    g_p90 = np.where(has, p90[np.maximum(cstage, 0)], NAT)
    cold = has & (g_p90 != NAT) & (quiet > g_p90)

    def td(x: np.ndarray) -> pd.Series:
        return pd.Series(pd.to_timedelta(x.view("timedelta64[ns]")))

    return pd.DataFrame(
        {
            "last_touch": log._timestamp(last),
            "since_touch": td(since_touch),
            "since_stage_change": td(since_change),
            "stage_gap_median": td(g_med),
            "stage_gap_p90": td(g_p90),
            "going_cold": cold,
        }
    )
