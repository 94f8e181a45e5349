"""Wide CRM exports (one row per deal, one date column per stage) → an event log.

Every value of the caller's table that could be an event — a stage date, the date of a
won/lost status, a creation date — becomes a *cell*: (row of the table, column, stage,
time). The cells that pass the checks here (dates parsed, status understood) form the long
event log the usual rules apply to; everything that is not an event of the cleaned log
goes to ``log.rejects`` in the caller's terms: the row of their table, the deal id, the
column and the value as given. ``log.quality`` then counts rows (deals) of their table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import _columns as C
from ._inputs import _HINTS, _names, check_date_format
from .errors import EventLogError, InvalidParameterError
from .quality import REASONS

if TYPE_CHECKING:
    from .log import EventLog

_CODES = list(REASONS)


def _code(name: str) -> int:
    return 1 + _CODES.index(name)


@dataclasses.dataclass
class _Cells:
    """Candidate events, one per (row, column): parallel arrays."""

    row: list[np.ndarray] = dataclasses.field(default_factory=list)
    col: list[np.ndarray] = dataclasses.field(default_factory=list)
    stage: list[np.ndarray] = dataclasses.field(default_factory=list)
    ns: list[np.ndarray] = dataclasses.field(default_factory=list)
    reason: list[np.ndarray] = dataclasses.field(default_factory=list)
    whole: list[np.ndarray] = dataclasses.field(default_factory=list)

    def add(self, rows, col: int, stage, ns, reason, whole: bool = False) -> None:
        """``whole``: when this cell is bad, the deal is left out whole (its status
        cannot be honoured: keeping the rest would misstate where the deal is)."""
        n = rows.size
        self.row.append(rows.astype(np.int64))
        self.col.append(np.full(n, col, dtype=np.int64))
        stage_arr = np.empty(n, dtype=object)
        stage_arr[:] = stage if np.ndim(stage) == 0 or stage is None else list(stage)
        self.stage.append(stage_arr)
        self.ns.append(np.broadcast_to(np.asarray(ns, dtype=np.int64), (n,)).copy())
        self.reason.append(np.broadcast_to(np.asarray(reason, dtype=np.int8), (n,)).copy())
        self.whole.append(np.full(n, whole, dtype=bool))

    def arrays(self) -> tuple[np.ndarray, ...]:
        if not self.row:
            e = np.zeros(0, dtype=np.int64)
            return (
                e,
                e,
                np.zeros(0, dtype=object),
                e,
                np.zeros(0, dtype=np.int8),
                np.zeros(0, dtype=bool),
            )
        row = np.concatenate(self.row)
        col = np.concatenate(self.col)
        order = np.lexsort((col, row))  # the caller's row order, then column order
        return (
            row[order],
            col[order],
            np.concatenate(self.stage)[order],
            np.concatenate(self.ns)[order],
            np.concatenate(self.reason)[order],
            np.concatenate(self.whole)[order],
        )


def _blank(values: pd.Series) -> np.ndarray:
    """Null or blank text."""
    out = values.isna().to_numpy(dtype=bool, copy=True)
    if pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
        blank = (values.astype("string").str.strip() == "").fillna(False)
        out |= blank.to_numpy(dtype=bool)
    return out


def _internal_name(base: str, taken: set[str]) -> str:
    name = base
    while name in taken:
        name = f"_{name}"
    return name


def from_milestones(
    cls: type[EventLog],
    deals: pd.DataFrame,
    *,
    deal: str,
    stage_dates: Mapping[str, str],
    status: str | None,
    closed_at: str | None,
    created_at: str | None,
    date_format: str | Mapping[str, str] | None,
    stage_map: Mapping[Any, str] | None,
    stages: Sequence[str] | None,
    won: str | Sequence[str] | None,
    lost: str | Sequence[str] | None,
    amount: str | None,
    attrs: Sequence[str] | str,
    as_of: Any,
    stale_after: Any,
    calendar: Any,
    errors: str,
    phases: Mapping[str, Mapping[str, str]] | None = None,
) -> EventLog:
    """The implementation of :meth:`EventLog.from_milestones` (see there)."""
    if isinstance(deals, pd.DataFrame):
        pass
    elif hasattr(deals, "to_pandas") and hasattr(deals, "column_names"):  # a pyarrow Table
        deals = deals.to_pandas()
    else:
        raise InvalidParameterError(
            f"`deals` must be a pandas DataFrame (one row per deal); got {type(deals).__name__}."
        )
    if errors not in ("raise", "drop"):
        raise InvalidParameterError(
            f"Parameter `errors` must be 'raise' or 'drop'; got {errors!r}."
        )
    formats = dict(date_format) if isinstance(date_format, Mapping) else {}
    for f in formats.values() if formats else [date_format]:
        check_date_format(f)
    if not isinstance(stage_dates, Mapping) or not stage_dates:
        raise InvalidParameterError(
            "Parameter `stage_dates` must be a non-empty mapping of stage name → column "
            f"holding the date the deal entered it; got {stage_dates!r}."
        )
    for key, value in [
        ("deal", deal),
        ("status", status),
        ("closed_at", closed_at),
        ("created_at", created_at),
        ("amount", amount),
    ]:
        if value is not None and not isinstance(value, str):
            raise InvalidParameterError(f"Parameter `{key}` must be a column name; got {value!r}.")
    if closed_at is not None and status is None:
        raise InvalidParameterError(
            f"Parameter `closed_at`={closed_at!r} needs `status`: the column whose won/lost "
            "value says what the close date means."
        )
    attrs = [attrs] if isinstance(attrs, str) else list(attrs)
    mapping = {str(k): str(v) for k, v in (stage_map or {}).items()}

    def mapped(name: Any) -> str:
        return mapping.get(str(name), str(name))

    won_names, lost_names = _names(won, "won"), _names(lost, "lost")
    terminal = set(won_names) | set(lost_names)
    if stages is None:
        declared = list(dict.fromkeys(mapped(k) for k in stage_dates if mapped(k) not in terminal))
    else:
        declared = _names(stages, "stages")
    first_stage = declared[0] if declared else None
    if created_at is not None and first_stage is None:
        raise InvalidParameterError(
            "Parameter `created_at` is the entry of the first stage, but there is none: "
            "pass `stages` (the non-terminal stages in funnel order)."
        )

    # ---- the caller's columns, by role
    roles: dict[str, str] = {deal: "deal"}
    for st, dcol in stage_dates.items():
        roles.setdefault(dcol, f"stage_dates[{st!r}]")
    for role, rcol in (
        ("status", status),
        ("closed_at", closed_at),
        ("created_at", created_at),
        ("amount", amount),
    ):
        if rcol is not None:
            roles.setdefault(rcol, role)
    for a in attrs:
        roles.setdefault(a, "attrs")
    missing = [f"`{c}` ({r})" for c, r in roles.items() if c not in deals.columns]
    if missing:
        raise EventLogError(
            f"Column(s) {', '.join(missing)} not found in `deals`. Available columns: "
            f"{list(deals.columns)}."
        )
    n = len(deals)
    if n == 0:
        raise EventLogError("The table `deals` is empty: no deals to analyse.")

    # ---- parse each date column once; one time-zone decision over all of them
    date_cols = list(
        dict.fromkeys([*stage_dates.values(), *[c for c in (closed_at, created_at) if c]])
    )
    unknown = [c for c in formats if c not in date_cols]
    if unknown:
        raise InvalidParameterError(
            f"Parameter `date_format` names columns {unknown} that hold no dates here; its "
            f"keys must be among {date_cols}."
        )

    def fmt_of(c: str) -> str | None:
        return formats.get(c) if formats else date_format  # type: ignore[return-value]

    times = {c: C.parse_times(deals[c].reset_index(drop=True), fmt_of(c)) for c in date_cols}
    good_of = {c: ~t.null & ~t.unparseable & ~t.mixed_tz for c, t in times.items()}
    n_aware = sum(int(good_of[c].sum()) for c, t in times.items() if t.aware)
    n_naive = sum(int(good_of[c].sum()) for c, t in times.items() if not t.aware)
    aware = n_aware > n_naive
    listed = [*date_cols, deal, *([status] if status else [])]
    col_index = {c: i for i, c in enumerate(dict.fromkeys(listed))}
    column_names = list(col_index)

    def time_reason(c: str) -> np.ndarray:
        t = times[c]
        reason = np.zeros(n, dtype=np.int8)
        reason[t.unparseable] = _code("unparseable_time")
        wrong_kind = good_of[c] if t.aware != aware else np.zeros(n, dtype=bool)
        reason[(t.mixed_tz | wrong_kind) & (reason == 0)] = _code("mixed_timezone")
        return reason

    reasons = {c: time_reason(c) for c in date_cols}
    cells = _Cells()
    ids = deals[deal].reset_index(drop=True)
    no_id = _blank(ids)
    ok_row = ~no_id
    has_date = {c: ~times[c].null for c in date_cols}

    # stage dates
    for st, dcol in stage_dates.items():
        rows = np.flatnonzero(has_date[dcol] & ok_row)
        cells.add(rows, col_index[dcol], st, times[dcol].ns[rows], reasons[dcol][rows])
    first_cols = [dcol for st, dcol in stage_dates.items() if mapped(st) == first_stage]
    first_dated = np.zeros(n, dtype=bool)
    for dcol in first_cols:
        first_dated |= has_date[dcol]
    # creation date: the entry of the first stage when the deal has no date of its own there
    if created_at is not None:
        rows = np.flatnonzero(has_date[created_at] & ~first_dated & ok_row)
        cells.add(
            rows,
            col_index[created_at],
            first_stage,
            times[created_at].ns[rows],
            reasons[created_at][rows],
        )
        first_dated |= has_date[created_at]
    # status: the outcome (dated by closed_at), or the current stage (which needs a date)
    status_kind = np.zeros(n, dtype=np.int8)  # 0 none, 1 stage, 2 terminal, 3 unknown
    if status is not None:
        sv = deals[status].reset_index(drop=True)
        empty = _blank(sv)
        codes, uniques = pd.factorize(sv.where(~empty), use_na_sentinel=True)
        names = [mapped(u) for u in uniques]
        kind_of = np.array(
            [2 if nm in terminal else 1 if nm in declared else 3 for nm in names] + [0],
            dtype=np.int8,
        )
        status_kind = kind_of[codes]
        status_name = np.array([*names, ""], dtype=object)[codes]  # after stage_map
        s_col = col_index[status]
        bad = np.flatnonzero(empty & ok_row)
        cells.add(bad, s_col, None, C.NAT, _code("missing_stage"), whole=True)
        bad = np.flatnonzero((status_kind == 3) & ok_row)
        cells.add(bad, s_col, sv.to_numpy()[bad], C.NAT, _code("unknown_stage"), whole=True)
        term = (status_kind == 2) & ok_row
        if closed_at is not None:
            c = closed_at
            rows = np.flatnonzero(term & has_date[c])
            cells.add(
                rows, col_index[c], sv.to_numpy()[rows], times[c].ns[rows], reasons[c][rows], True
            )
            rows = np.flatnonzero(term & ~has_date[c])
            cells.add(rows, col_index[c], sv.to_numpy()[rows], C.NAT, _code("missing_time"), True)
        else:  # the outcome's date must come from a stage_dates column of that name
            dated = np.zeros(n, dtype=bool)
            for st, dcol in stage_dates.items():
                dated |= has_date[dcol] & (status_name == mapped(st))
            rows = np.flatnonzero(term & ~dated)
            cells.add(rows, s_col, sv.to_numpy()[rows], C.NAT, _code("missing_time"), True)
        # a deal in a stage with a date column needs a date there
        for st in dict.fromkeys(mapped(k) for k in stage_dates):
            cols = [dcol for k, dcol in stage_dates.items() if mapped(k) == st]
            if st in terminal or not cols:
                continue
            in_st = (status_kind == 1) & ok_row & (status_name == st)
            dated = first_dated.copy() if st == first_stage else np.zeros(n, dtype=bool)
            for dcol in cols:
                dated |= has_date[dcol]
            rows = np.flatnonzero(in_st & ~dated)
            cells.add(rows, col_index[cols[0]], st, C.NAT, _code("missing_time"), True)
    # deals without an id
    rows = np.flatnonzero(no_id)
    cells.add(rows, col_index[deal], None, C.NAT, _code("missing_deal"))
    # deals with no date at all: nothing places them in time
    any_cell = np.zeros(n, dtype=bool)
    for arr in cells.row:
        any_cell[arr] = True
    rows = np.flatnonzero(~any_cell)
    no_dates_col = len(column_names)
    column_names.append(", ".join(date_cols))
    cells.add(rows, no_dates_col, None, C.NAT, _code("no_dates"))

    row, col, stage, ns, reason, whole = cells.arrays()
    left_out = np.zeros(n, dtype=bool)
    left_out[row[whole & (reason > 0)]] = True
    excluded = (reason == 0) & left_out[row]  # good values of deals left out whole
    good = (reason == 0) & ~excluded

    # ---- the long event log of the good cells
    taken = {deal, *(a for a in attrs), *([amount] if amount else [])}
    stage_name = _internal_name("stage", taken)
    time_name = _internal_name("time", taken | {stage_name})
    g_rows = row[good]
    carried = list(dict.fromkeys([deal, *([amount] if amount else []), *attrs]))
    long = deals[carried].iloc[g_rows].reset_index(drop=True)
    long[stage_name] = pd.Series(stage[good], dtype=object).astype(str)
    stamp = pd.DatetimeIndex(ns[good].view("datetime64[ns]"))
    long[time_name] = stamp.tz_localize("UTC") if aware else stamp
    settings = dict(
        deal=deal,
        stage=stage_name,
        time=time_name,
        stage_map=stage_map,
        stages=declared,
        won=won,
        lost=lost,
        amount=amount,
        attrs=attrs,
        as_of=as_of,
        stale_after=stale_after,
        calendar=calendar,
        phases=phases,
    )
    wide = _Wide(deals, deal, column_names, roles, status, closed_at, fmt_of, n)
    log = None
    if good.any():
        try:
            log = cls(long, errors="drop", **settings)
        except EventLogError as err:  # every event rejected (e.g. all after as_of)
            cases = err.failure_cases
            if "reason" not in cases or "row" not in cases or cases.empty:
                raise
            lr = cases["row"].to_numpy(dtype=np.int64)
            sub = np.flatnonzero(good)[lr]
            reason[sub] = np.array([_code(r) for r in cases["reason"]], dtype=np.int8)
            raise wide.error(row, col, stage, ns, reason, aware) from None
    else:
        raise wide.error(row, col, stage, ns, reason, aware)
    # the log's own rejects (after as_of, conflicts, collapsed, reopened): back to cells
    l_rows, l_reasons = log._reject_rows
    sub = np.flatnonzero(good)[l_rows]
    reason = reason.copy()
    reason[sub] = l_reasons
    dropped = np.isin(reason, [_code(r) for r, how in REASONS.items() if how == "dropped"])
    if errors == "raise" and dropped.any():
        raise wide.error(row, col, stage, ns, np.where(dropped, reason, 0), aware)
    used_rows = np.zeros(n, dtype=bool)
    used_rows[row[~dropped & ~excluded]] = True
    rej = reason > 0
    log._rejects_frame = wide.rejects(
        row[rej], col[rej], stage[rej], ns[rej], reason[rej], aware, stage_name, time_name
    )
    by_reason: dict[str, int] = {}
    by_column: dict[str, dict[str, int]] = {}
    for r, c in zip(reason[rej], col[rej], strict=True):
        nm = _CODES[r - 1]
        by_reason[nm] = by_reason.get(nm, 0) + 1
        counts = by_column.setdefault(column_names[c], {})
        counts[nm] = counts.get(nm, 0) + 1
    by_reason = {k: by_reason[k] for k in REASONS if k in by_reason}
    log.quality = dataclasses.replace(
        log.quality,
        rows_in=n,
        rows_used=int(used_rows.sum()),
        rows_dropped=int(n - used_rows.sum()),
        rows_removed=0,
        rows_collapsed=0,
        by_reason=by_reason,
        source="deals",
        by_column=by_column,
    )
    return log


class _Wide:
    """The caller's table and roles, for rejects and errors in their terms."""

    def __init__(self, deals, deal, column_names, roles, status, closed_at, fmt_of, n):
        self.deals = deals
        self.deal = deal
        self.column_names = column_names
        self.roles = roles
        self.status = status
        self.closed_at = closed_at
        self.fmt_of = fmt_of
        self.n = n

    def _value(self, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        out = np.empty(row.size, dtype=object)
        out[:] = None
        for c in np.unique(col):
            name = self.column_names[c]
            if name not in self.deals.columns:  # the "no date at all" pseudo-column
                continue
            sel = col == c
            vals = self.deals[name].iloc[row[sel]].to_numpy(dtype=object)
            out[sel] = [None if v is None or (np.ndim(v) == 0 and pd.isna(v)) else v for v in vals]
        return out

    def rejects(self, row, col, stage, ns, reason, aware, stage_name="stage", time_name="time"):
        """``row`` (in the caller's table), the deal id, ``column``, ``value`` as given,
        ``stage`` and ``time`` (parsed; NaT when it could not be) of the cell, ``reason``."""
        ids = self.deals[self.deal].iloc[row].reset_index(drop=True)
        stamp = pd.DatetimeIndex(ns.view("datetime64[ns]"))
        out = pd.DataFrame({"row": row.astype(np.int64)})
        out[self.deal] = ids
        out["column"] = pd.Series([self.column_names[c] for c in col], dtype=object)
        out["value"] = pd.Series(self._value(row, col), dtype=object)
        out[stage_name] = pd.Series(stage, dtype=object)
        out[time_name] = stamp.tz_localize("UTC") if aware else stamp
        labels = np.array(_CODES, dtype=object)[reason.astype(np.int64) - 1] if row.size else []
        out["reason"] = pd.Series(labels, dtype=object).astype(str)
        return out

    def _words(self, reason: str, column: str, k: int) -> tuple[str, str]:
        """What the entries say (``k`` deals), and how to fix them."""
        role = self.roles.get(column, "")
        deals = f"{k:,} deal{'' if k == 1 else 's'}"
        if reason == "no_dates":
            return (
                f"{deals} with no date for any stage",
                "nothing places them in time; pass created_at='<creation date column>' "
                "(deals still in the first stage entered it then), or errors='drop' to leave "
                "them out (listed in log.rejects)",
            )
        if reason == "missing_time" and role == "closed_at":
            return (
                f"{deals} won or lost by `{self.status}` with no date",
                "a closed deal needs the date of its outcome",
            )
        if reason == "missing_time" and role == "status":
            return (
                f"{deals} won or lost with no date for it",
                "pass closed_at='<close date column>' or date the outcome in `stage_dates`",
            )
        if reason == "missing_time":
            return (
                f"{deals} in this stage by `{self.status}` with no date",
                "a deal in a stage needs the date it entered it",
            )
        if reason == "unparseable_time":
            fmt = self.fmt_of(column)
            hint = (
                f"dates must match date_format={fmt!r}"
                if fmt is not None
                else "dates must be datetimes or ISO 8601 strings such as '2025-01-07'; for "
                "other formats, e.g. day-first '31-01-25', pass date_format='%d-%m-%y'"
            )
            return f"{deals} with an unparseable date", hint
        if reason == "unknown_stage" and role == "status":
            return (
                f"{deals} with a status that is no stage or outcome",
                "add it to `stages` (funnel order), `won` or `lost`, or map it with stage_map",
            )
        if reason == "missing_stage" and role == "status":
            return f"{deals} with no status", "every deal needs its current stage or outcome"
        return f"{deals}: {reason.replace('_', ' ')}", _HINTS.get(reason, "")

    def error(self, row, col, stage, ns, reason, aware) -> EventLogError:
        """One error for all invalid values, per reason and column, counted in deals."""
        bad = reason > 0
        cases = self.rejects(row[bad], col[bad], stage[bad], ns[bad], reason[bad], aware)
        parts = []
        for nm in REASONS:
            sel_r = cases["reason"] == nm
            if not sel_r.any():
                continue
            for column in dict.fromkeys(cases.loc[sel_r, "column"]):
                sel = (sel_r & (cases["column"] == column)).to_numpy()
                ex = cases[sel].head(3)
                what, hint = self._words(nm, column, int(np.unique(cases.loc[sel, "row"]).size))
                shown = f"{self.deal} {ex[self.deal].tolist()}"
                if nm == "unknown_stage":
                    shown = f"values {sorted({str(v) for v in cases.loc[sel, 'value']})[:10]}"
                elif nm != "no_dates":
                    shown += f" ({column}={ex['value'].tolist()})"
                where = (
                    "columns " + ", ".join(f"`{c}`" for c in column.split(", "))
                    if nm == "no_dates"
                    else f"column `{column}`"
                )
                parts.append(f"{where}: {what} — e.g. {shown}; {hint}")
        n_deals = int(np.unique(row[bad]).size)
        return EventLogError(
            f"{n_deals:,} of {self.n:,} deals (rows of `deals`) have invalid values:\n  - "
            + "\n  - ".join(parts)
            + "\nFix the input, or pass errors='drop' to build the log from the good values "
            "(the rejected ones are kept in log.rejects). The values travel as "
            "err.failure_cases.",
            cases,
        )
