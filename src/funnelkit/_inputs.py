"""The input's rules that every reader shares: stage names, the date format, and the error
for bad input rows (per reason the column, the count, examples and how to fix it).

Used by the in-memory builder (:class:`funnelkit.EventLog`), the wide-export reader
(:mod:`funnelkit._milestones`) and the Dask engine, so that all three say the same — and
so that none of them imports the facade for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from . import _columns as C
from .errors import EventLogError, InvalidParameterError
from .quality import REASONS

_REASON_CODES = list(REASONS)
_COLUMN_OF_REASON = {
    "invalid_deal": "deal",
    "missing_deal": "deal",
    "invalid_stage": "stage",
    "missing_stage": "stage",
    "missing_time": "time",
    "unparseable_time": "time",
    "mixed_timezone": "time",
    "time_out_of_range": "time",
    "unknown_stage": "stage",
    "after_as_of": "time",
    "invalid_amount": "amount",
    "conflicting_outcome": "stage",
    "post_sale_not_won": "stage",
}
_HINTS = {
    "invalid_deal": "a deal id must be a single value such as a string or an integer, not "
    "a list, dict or array, and text without lone surrogates such as '\\ud800' (a broken "
    "decoding; re-read the file with the right encoding)",
    "missing_deal": "every event needs a deal id",
    "invalid_stage": "a stage name must be valid text: not a list, dict or array, and no "
    "lone surrogates such as '\\ud800' (a broken decoding; re-read the file with the right "
    "encoding)",
    "missing_stage": "every event needs a stage",
    "missing_time": "every event needs a timestamp",
    "unparseable_time": "timestamps must be datetimes or ISO 8601 strings such as "
    "'2025-01-07' or '2025-01-07 09:00:00+01:00', between the years 1677 and 2262; for other "
    "formats, e.g. day-first '31-01-25', pass date_format='%d-%m-%y'",
    "mixed_timezone": "timestamps mix naive and time-zone-aware values; make them all aware "
    "(e.g. append '+00:00') or all naive",
    "time_out_of_range": "these timestamps are more than 146 years from the log's median "
    "time, almost surely a typo in the year (1725 for 2025); fix them (durations across "
    "them cannot be measured)",
    "unknown_stage": "these stages are not in `stages`, `won` or `lost`; add them, merge them "
    "with `stage_map`, or leave `stages=None` to infer the order",
    "after_as_of": "events after `as_of` cannot be used; move `as_of` later or leave it None",
    "invalid_amount": "amounts must be finite numbers >= 0 (not text, negative, infinite or "
    "complex); fix them, or leave the cell empty for an unknown amount",
    "conflicting_outcome": "the deal's final run of terminal events holds both a won and a lost "
    "stage; fix the outcome in the CRM or drop the deal",
    "post_sale_not_won": "these events are at a `post_sale` stage while the deal was not won "
    "(no won event before them, or the deal was reopened); log the won event, or remove the "
    "stage from `post_sale` to count it as a funnel stage",
}


def _names(value: str | Iterable[str] | None, param: str) -> list[str]:
    """Stage names of ``stages`` (an order: a set is refused), ``won`` or ``lost`` (a set
    is read in sorted order)."""
    if value is None:
        return []
    try:
        items = C.as_list(value, param, ordered=param == "stages")
    except TypeError:
        if param == "stages" and not isinstance(value, (str, bytes)):
            raise
        raise InvalidParameterError(
            f"Parameter `{param}` must be a stage name, a list of names or None; "
            f"got {type(value).__name__}."
        ) from None
    return [str(v) for v in items]


def _shown(values: pd.Series) -> list[Any]:
    """Example values for a message: missing ones read ``None`` whatever the dtype."""
    return [None if v is None or (np.ndim(v) == 0 and pd.isna(v)) else v for v in values]


def bad_rows_error(
    cases: pd.DataFrame, settings: Mapping[str, Any], rows_in: int, unknown_stages: list[str]
) -> EventLogError:
    """The error for bad input rows: per reason the column, the count, a few examples and
    how to fix it; ``cases`` (row, mapped columns, reason) travel as ``failure_cases``.
    Shared by the in-memory and the Dask engines so both say the same."""
    parts = []
    for nm in _REASON_CODES:
        sel = (cases["reason"] == nm).to_numpy()
        k = int(sel.sum())
        if not k:
            continue
        col = settings[_COLUMN_OF_REASON[nm]]
        ex = cases[sel].head(3)
        hint = _HINTS[nm]
        if nm == "unparseable_time" and settings.get("date_format") is not None:
            hint = f"timestamps must match date_format={settings['date_format']!r}"
        if nm == "unknown_stage":
            shown = f"stages {unknown_stages[:10]}"
        elif nm == "conflicting_outcome":
            shown = f"deals {_shown(ex[settings['deal']].drop_duplicates())}"
        else:
            shown = f"rows {ex['row'].tolist()} ({col}={_shown(ex[col])})"
        parts.append(f"column `{col}`: {k:,} rows {nm.replace('_', ' ')} — e.g. {shown}; {hint}")
    return EventLogError(
        f"{len(cases):,} of {rows_in:,} input rows are invalid:\n  - "
        + "\n  - ".join(parts)
        + "\nFix the input, or pass errors='drop' to build the log from the good rows "
        "(the dropped rows are kept in log.rejects). The rows travel as "
        "err.failure_cases.",
        cases,
    )


def check_date_format(date_format: Any) -> None:
    """Raise a clear error for a ``date_format`` that is not a strftime format string."""
    if date_format is None:
        return
    if not isinstance(date_format, str):
        raise InvalidParameterError(
            f"Parameter `date_format` must be a strftime format string such as '%d-%m-%y' or "
            f"None; got {type(date_format).__name__}."
        )
    if "%" not in date_format:
        raise InvalidParameterError(
            f"Parameter `date_format`={date_format!r} has no % directive; pass a strftime "
            "format such as '%d-%m-%y' (day-month-year) or '%m/%d/%Y'."
        )
