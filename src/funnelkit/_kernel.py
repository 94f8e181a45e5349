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

    def to_frame(self, log: EventLog) -> pd.DataFrame:
        cats = log._catalogue + ["stale"]
        return pd.DataFrame(
            {
                "deal": log._deal_labels.take(self.deal),
                "stage": pd.Categorical.from_codes(self.stage, categories=log.stages),
                "visit": self.visit,
                "entered": log._timestamp(self.entered),
                "next_stage": pd.Categorical.from_codes(self.next, categories=cats),
                "dwell": pd.to_timedelta(self.dwell.view("timedelta64[ns]")),
                "censored": self.censored,
                **{
                    name: pd.Categorical.from_codes(codes[self.path_index], categories=uniques)
                    for name, (codes, uniques) in log._visit_attrs.items()
                },
            }
        )


def _visit_numbers(deal: np.ndarray, stage: np.ndarray, n_stages: int) -> np.ndarray:
    """1 for a deal's first visit of a stage, 2 for the next, ... (path order kept)."""
    n = deal.size
    visit = np.ones(n, dtype=np.int64)
    if n == 0:
        return visit
    new = np.empty(n, dtype=bool)
    new[0] = True
    new[1:] = deal[1:] != deal[:-1]
    starts = np.flatnonzero(new)
    if n_stages <= 62:
        # a deal revisits a stage iff the sum of its stage bits differs from their OR
        bit = np.left_shift(np.int64(1), stage.astype(np.int64))
        has_repeat = np.add.reduceat(bit, starts) != np.bitwise_or.reduceat(bit, starts)
        rows = np.flatnonzero(has_repeat[np.cumsum(new) - 1])
    else:
        rows = np.arange(n)
    if rows.size:
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
    """Visits of the log's cleaned path; dwell in business time when ``calendar`` is given."""
    p_deal = log._path_deal
    p_stage = log._path_stage
    p_time = log._path_time
    n = p_deal.size
    n_stages = log._n_stages
    stale_code = len(log._catalogue)
    is_visit = log._kind[p_stage] == V.STAGE if n else np.zeros(0, dtype=bool)
    # next event in the same deal
    same_next = np.zeros(n, dtype=bool)
    if n:
        same_next[:-1] = p_deal[1:] == p_deal[:-1]
    nxt_stage = np.full(n, NO_NEXT, dtype=np.int64)
    nxt_time = np.full(n, NAT, dtype=np.int64)
    nxt_stage[:-1] = np.where(same_next[:-1], p_stage[1:], NO_NEXT)
    nxt_time[:-1] = np.where(same_next[:-1], p_time[1:], NAT)

    idx = np.flatnonzero(is_visit)
    deal = p_deal[idx]
    stage = p_stage[idx]
    entered = p_time[idx]
    nxt = nxt_stage[idx]
    has_next = same_next[idx]
    oc = log._outcome[deal]
    stale_last = ~has_next & (oc == V.STALE)
    open_last = ~has_next & ~stale_last
    nxt = np.where(stale_last, stale_code, nxt)
    left = np.where(has_next, nxt_time[idx], log._as_of_ns)
    dwell = left - entered if calendar is None else calendar.duration_ns(entered, left)
    dwell = np.where(stale_last, NAT, dwell)
    censored = open_last
    visit = _visit_numbers(deal, stage, n_stages)
    furthest = np.full(log._n_deals, -1, dtype=np.int64)
    if idx.size:
        new = np.empty(deal.size, dtype=bool)
        new[0] = True
        new[1:] = deal[1:] != deal[:-1]
        st = np.flatnonzero(new)
        furthest[deal[st]] = np.maximum.reduceat(stage, st)
    return Visits(deal, stage, visit, entered, nxt, dwell, censored, furthest, stale_code, idx)
