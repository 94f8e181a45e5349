"""The hot path: the cleaned, sorted path of every deal → the visits table (DESIGN §2).

Works on integer codes only; deal labels and stage names are attached when a DataFrame
is asked for. No Python loop over deals or events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import _validate as V
from ._columns import NAT
from ._memory import hot_path

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .businessdays import BusinessCalendar
    from .log import EventLog

NO_NEXT = -1


@dataclass
class Visits:
    """Visit arrays in path order. ``next`` is a catalogue code, ``stale`` (= the length of
    the catalogue) or ``NO_NEXT``; ``dwell`` is int64 ns with NAT for stale exits."""

    deal: np.ndarray
    stage: np.ndarray
    visit: np.ndarray
    entered: np.ndarray
    next: np.ndarray
    dwell: np.ndarray
    censored: np.ndarray
    furthest: np.ndarray  # per deal: furthest stage rank entered, -1 if none
    stale_code: int
    path_index: np.ndarray  # position of each visit in the log's cleaned path

    def to_frame(self, log: EventLog, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The visits table of ``EventLog.visits``; only ``columns`` when given (in order)."""
        cats = log._catalogue + ["stale"]
        names = ["deal", "stage", "visit", "entered", "next_stage", "dwell", "censored"]
        names += list(log._visit_attrs)

        def column(name: str) -> object:
            if name == "deal":
                return log._deal_labels.take(self.deal)
            if name == "stage":
                return pd.Categorical.from_codes(self.stage, categories=log.stages)
            if name == "visit":
                return self.visit.astype(np.int64)
            if name == "entered":
                return log._timestamp(self.entered)
            if name == "next_stage":
                return pd.Categorical.from_codes(self.next, categories=cats)
            if name == "dwell":
                return pd.to_timedelta(self.dwell.view("timedelta64[ns]"))
            if name == "censored":
                return self.censored
            codes, uniques = log._visit_attrs[name]
            return pd.Categorical.from_codes(codes[self.path_index], categories=uniques)

        return pd.DataFrame({c: column(c) for c in (names if columns is None else columns)})


def _visit_numbers(deal: np.ndarray, stage: np.ndarray, new: np.ndarray) -> np.ndarray:
    """1 for a deal's first visit of a stage, 2 for the next, ... (path order kept).

    ``new`` marks each deal's first visit. Consecutive visits of a deal never repeat a
    stage (repeats are collapsed), so a deal whose stages only go up visits each stage
    once: only deals with a step down are ranked, by a stable sort of their visits.
    """
    n = deal.size
    visit = np.ones(n, dtype=np.int32)  # (a deal's visits of one stage: far below 2**31)
    if n == 0:
        return visit
    down = stage[1:] <= stage[:-1]
    down &= ~new[1:]
    if not down.any():
        return visit
    flagged = np.zeros(int(deal[-1]) + 1, dtype=bool)
    flagged[deal[1:][down]] = True
    rows = np.flatnonzero(flagged[deal])
    n_stages = int(stage.max()) + 1
    key = deal[rows].astype(np.int64) * n_stages + stage[rows]
    order = np.argsort(key, kind="stable")
    ks = key[order]
    first = np.empty(ks.size, dtype=bool)
    first[0] = True
    first[1:] = ks[1:] != ks[:-1]
    grp_start = np.flatnonzero(first)
    rank = np.arange(ks.size) - grp_start[np.cumsum(first) - 1] + 1
    visit[rows[order]] = rank
    return visit


@hot_path
def compute_visits(log: EventLog, calendar: BusinessCalendar | None = None) -> Visits:
    """Visits of the log's cleaned path; dwell in business time when ``calendar`` is given.

    Every funnel-stage event of the path is a visit; what follows it in the path (the
    next event of the same deal) is its exit. Works on gathers at the visits' positions
    and their successors, with few full-size temporaries.
    """
    p_deal = log._path_deal
    p_stage = log._path_stage
    p_time = log._path_time
    n = p_deal.size
    n_stages = log._n_stages
    stale_code = len(log._catalogue)
    # the catalogue lists the funnel stages first: a path event is a visit iff its code
    # is below the number of stages
    idx = np.flatnonzero(p_stage < n_stages)
    deal = p_deal[idx]
    stage = p_stage[idx]
    entered = p_time[idx]
    m = idx.size
    # the next path event; the path's very last event has none
    j = idx + 1
    at_end = m > 0 and int(idx[-1]) == n - 1
    if at_end:
        j[-1] = n - 1
    has_next = np.equal(p_deal[j], deal)
    if at_end:
        has_next[-1] = False
    nxt = p_stage[j]
    left = p_time[j]
    last = np.flatnonzero(~has_next)  # a deal's last visit with nothing after: open or stale
    stale = log._outcome[deal[last]] == V.STALE
    stale_last, open_last = last[stale], last[~stale]
    nxt[open_last] = NO_NEXT
    nxt[stale_last] = stale_code
    left[last] = log._as_of_ns
    if calendar is None:
        dwell = np.subtract(left, entered, out=left)
    else:
        dwell = calendar.duration_ns(entered, left)
    dwell[stale_last] = NAT
    censored = np.zeros(m, dtype=bool)
    censored[open_last] = True
    new = np.empty(m, dtype=bool)
    if m:
        new[0] = True
        np.not_equal(deal[1:], deal[:-1], out=new[1:])
    visit = _visit_numbers(deal, stage, new)
    furthest = np.full(log._n_deals, -1, dtype=np.int64)
    if m:
        st = np.flatnonzero(new)
        furthest[deal[st]] = np.maximum.reduceat(stage, st)
    if n < 2**31:  # positions in the path: int32 halves an array that lives with the log
        idx = idx.astype(np.int32)
    return Visits(deal, stage, visit, entered, nxt, dwell, censored, furthest, stale_code, idx)
