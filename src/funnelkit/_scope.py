"""Which deals and which input rows a filter keeps — one implementation for
:meth:`funnelkit.EventLog.filter` and :meth:`funnelkit.dask.DaskEventLog.filter` (the Dask
engine applies it per partition of whole deals, then per input partition)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from . import _columns as C
from ._inputs import _REASON_CODES
from .errors import EventLogError, InvalidParameterError

_REOPENED = 1 + _REASON_CODES.index("reopened_terminal")


def deal_mask(
    table: pd.DataFrame,
    where: np.ndarray | None = None,
    start: Any = None,
    end: Any = None,
    deals: Iterable[Any] | None = None,
) -> np.ndarray:
    """One boolean per row of a deals table: the ``where`` mask, a first event in
    ``[start, end)`` (times on the log's clock; either end may be None) and a deal id
    among ``deals``, all at once."""
    keep = np.ones(len(table), dtype=bool)
    if where is not None:
        keep &= where
    first = table["first_event"]
    if start is not None:
        keep &= (first >= start).to_numpy(dtype=bool)
    if end is not None:
        keep &= (first < end).to_numpy(dtype=bool)
    if deals is not None:
        keep &= table["deal"].isin(list(deals)).to_numpy(dtype=bool)
    return keep


def reopened_rows(reject_rows: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The rows a log removed as terminal events followed by more stages (a reopened
    deal). A filter keeps them removed: without the stages that followed, such an event
    would look like the deal's outcome."""
    rows, reasons = reject_rows
    return rows[reasons == _REOPENED]


def stage_rows(stage: Any, stage_map: Any, allowed: frozenset[str]) -> np.ndarray:
    """One boolean per row of a stage column (after the log's ``stage_map``): its stage is
    among ``allowed``; a missing stage is kept (the log judges it again)."""
    codes, names = C.stage_codes(stage, stage_map)
    ok = np.array([nm in allowed for nm in names] + [True], dtype=bool)
    return ok[codes]


def stage_scope(
    stages: Iterable[str], log_stages: list[str], others: Iterable[str], phases: Any
) -> tuple[frozenset[str], list[str], Any]:
    """``filter(stages=...)`` checked: the stage names whose events are kept (``stages``
    and ``others``: the terminal and post-sale names), the stages of the filtered log in
    the log's order, and the phase mappings of the stages kept (None without phases)."""
    stages = list(stages)
    unknown = [st for st in stages if st not in log_stages]
    if unknown:
        raise InvalidParameterError(
            f"`stages`={unknown} are not stages of this log ({log_stages})."
        )
    allowed = frozenset(stages) | frozenset(others)
    if phases:
        phases = {k: {st: ph for st, ph in m.items() if st in allowed} for k, m in phases.items()}
    return allowed, [st for st in log_stages if st in set(stages)], phases or None


def no_deals_kept() -> EventLogError:
    """The error of a filter that keeps no deal."""
    return EventLogError(
        "filter(...) keeps no deals: every deal was excluded by `where`, `created` or `deals`."
    )
