"""Small random event logs that hit every edge case of DESIGN §1, for property tests.

``random_log`` first writes one deal per scripted edge case (in a fixed order, so the
default 30 deals always contain all of them) and fills the rest with random walks over the
stages. Times sit on a whole-hour grid inside a 180-day window that crosses the spring DST
change, so ties are frequent and time-zone offsets vary; the first deal's last event is the
window's end, so the default ``as_of`` (the latest timestamp) is always that end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from hypothesis import strategies as st

START = pd.Timestamp("2025-01-06 00:00")  # in UTC
SPAN_HOURS = 180 * 24  # END = 2025-07-05, after the March DST changes
DAY = 24
#: how the generated logs map to an EventLog: stages A–D, won W, lost L1 and L2
LOG_KW = dict(
    deal="deal", stage="stage", time="ts", stages=["A", "B", "C", "D"], won="W", lost=["L1", "L2"]
)

Script = list[tuple[str, int]]  # (stage, gap in hours since the previous event)


class _Deal:
    """A deal being written: events as (stage, hour offset from START) in listed order."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.events: list[tuple[str, int]] = []
        self.t = 0

    def add(self, stage: str, gap: int | None = None, min_gap: int = 0) -> None:
        """Append an event ``gap`` hours after the previous one (random when None)."""
        if gap is None:
            gap = _random_gap(self.rng)
        self.t += max(gap, min_gap) if self.events else 0
        self.events.append((stage, self.t))

    def place(self, *, end_before: int | None = None) -> None:
        """Shift the deal in time: last event ``end_before`` hours before END, or random."""
        last = max(t for _, t in self.events)
        if end_before is None:
            latest_start = max(SPAN_HOURS - last, 0)
            shift = int(self.rng.integers(0, latest_start + 1))
        else:
            shift = SPAN_HOURS - end_before - last
        self.events = [(s, t + shift) for s, t in self.events]


def _random_gap(rng: np.random.Generator) -> int:
    """A gap in whole hours: often 0 (a tie), else some hours or whole days."""
    r = rng.random()
    if r < 0.12:
        return 0
    if r < 0.45:
        return int(rng.integers(1, 24))
    return int(rng.integers(1, 15)) * DAY


def _pick(rng: np.random.Generator, names: Sequence[str]) -> str:
    return str(names[int(rng.integers(0, len(names)))])


def _scripts(
    stages: Sequence[str], won: Sequence[str], lost: Sequence[str]
) -> list[tuple[str, Script, int | None]]:
    """The scripted edge cases: (name, events, hours before END of the last event or None)."""
    s = [stages[min(i, len(stages) - 1)] for i in range(3)]
    w0, w1 = won[0], won[-1]
    l0, l1 = lost[0], lost[-1]
    g = 36  # a fixed, non-zero gap
    return [
        ("anchor_open", [(s[0], 0), (s[1], 48)], 0),
        ("straight_won", [(x, g) for x in stages] + [(w0, g)], None),
        ("skip_lost", [(s[0], 0), (s[2], g), (l0, g)], None),
        ("backward_won", [(s[0], 0), (s[1], g), (s[2], g), (s[1], g), (s[2], g), (w0, g)], None),
        ("mid_entry_open", [(s[1], 0), (s[2], 5 * DAY)], 3 * DAY),
        ("stale", [(s[0], 0), (s[1], 2 * DAY)], 53 * DAY),
        # a stage and a terminal at the same time, the terminal listed first
        ("tie_stage_terminal", [(s[0], 0), (l1, 4 * DAY), (s[1], 0)], None),
        # two stages at the same time, the later stage listed first
        ("tie_stage_stage", [(s[1], 0), (s[0], 0), (s[2], g), (l0, g)], None),
        ("reopened_won", [(s[0], 0), (l0, g), (s[0], g), (s[1], g), (w0, g)], None),
        ("reopened_first_terminal", [(l0, 0), (s[0], g), (s[1], g), (l1, g)], None),
        ("reopened_open", [(s[0], 0), (w0, g), (s[1], g)], 2 * DAY),
        ("run_same_name", [(s[0], 0), (s[1], g), (w0, g), (w0, 1)], None),
        ("run_two_won", [(s[0], 0), (s[1], g), (w0, g), (w1, 0)], None),
        ("run_two_lost", [(s[0], 0), (l0, g), (l1, 2)], None),
        ("repeats_open", [(s[0], 0), (s[1], g), (s[1], 0), (s[1], g), (s[2], g)], 4 * DAY),
        ("only_won", [(w0, 0)], None),
        ("only_lost", [(l1, 0)], None),
        ("stale_boundary_not_stale", [(s[0], 0), (s[1], g)], 30 * DAY),
        ("stale_just_over", [(s[0], 0), (s[1], g)], 30 * DAY + 1),
        # the visit of s[1] began 60 days ago; a re-logged s[1] 10 days ago keeps it alive
        ("repeat_keeps_alive", [(s[0], 0), (s[1], g), (s[1], 50 * DAY)], 10 * DAY),
    ]


SCRIPT_NAMES = [name for name, _, _ in _scripts(("A", "B", "C"), ("W",), ("L",))]


def _random_walk(
    deal: _Deal, stages: Sequence[str], won: Sequence[str], lost: Sequence[str]
) -> None:
    """A random path: forward moves, skips, backward moves, repeats, reopens, an ending."""
    rng = deal.rng
    n = len(stages)
    idx = 0 if rng.random() < 0.7 else int(rng.integers(0, n))
    deal.add(stages[idx])
    for _ in range(int(rng.integers(0, 7))):
        r = rng.random()
        if r < 0.1:  # a terminal, then reopened: the next stage event is strictly later
            deal.add(_pick(rng, [*won, *lost]))
            deal.add(stages[idx], min_gap=1)
            continue
        if r < 0.55:
            idx = min(idx + 1, n - 1)
        elif r < 0.67:
            idx = min(idx + 2, n - 1)
        elif r < 0.82:
            idx = max(idx - 1, 0)
        deal.add(stages[idx])  # r >= 0.82: a repeat of the same stage
    r = rng.random()
    if r < 0.65:  # resolved: a terminal run of one outcome only
        names = won if r < 0.33 else lost
        deal.add(_pick(rng, names))
        while rng.random() < 0.25:
            deal.add(_pick(rng, names))
    deal.place()


def _amounts(rng: np.random.Generator, n_rows: int, mode: int) -> list[float]:
    """Per-row amounts: 0 constant, 1 all missing, 2 missing first then constant, 3 varying."""
    value = float(rng.integers(1, 50) * 500)
    if mode == 0:
        return [value] * n_rows
    if mode == 1:
        return [np.nan] * n_rows
    if mode == 2:
        return [np.nan] + [value] * (n_rows - 1)
    return [float(rng.integers(1, 50) * 500) for _ in range(n_rows)]


def random_log(
    rng: np.random.Generator,
    n_deals: int = 30,
    *,
    stages: Sequence[str] = ("A", "B", "C", "D"),
    won: Sequence[str] = ("W",),
    lost: Sequence[str] = ("L1", "L2"),
    tz: str | None = None,
) -> pd.DataFrame:
    """A shuffled event log with columns deal, stage, ts, amount.

    The first ``len(SCRIPT_NAMES)`` deals are the scripted edge cases (ties, repeats,
    backward moves, skips, mid-funnel entry, reopens, terminal runs, only-terminal deals,
    open and stale deals with ``stale_after="30D"``); the rest are random walks. No final
    terminal run mixes won and lost. ``ts`` is naive (UTC wall time) or, with ``tz``,
    tz-aware in that zone.
    """
    won, lost = list(won), list(lost)
    scripts = _scripts(stages, won, lost)
    deal_ids, stage_col, hours, amounts = [], [], [], []
    width = max(3, len(str(n_deals)))
    for i in range(n_deals):
        deal = _Deal(rng)
        if i < len(scripts):
            _, script, end_before = scripts[i]
            for stage, gap in script:
                deal.add(stage, gap)
            deal.place(end_before=end_before)
            mode = i % 4
        else:
            _random_walk(deal, stages, won, lost)
            mode = int(rng.choice(4, p=[0.55, 0.15, 0.15, 0.15]))
        deal_ids += [f"d{i:0{width}d}"] * len(deal.events)
        stage_col += [s for s, _ in deal.events]
        hours += [t for _, t in deal.events]
        amounts += _amounts(rng, len(deal.events), mode)

    ts = pd.Series(START + pd.to_timedelta(hours, unit="h"))
    if tz is not None:
        ts = ts.dt.tz_localize("UTC").dt.tz_convert(tz)
    frame = pd.DataFrame(
        {"deal": deal_ids, "stage": stage_col, "ts": ts, "amount": np.array(amounts, float)}
    )
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def event_logs(
    min_deals: int = 1,
    max_deals: int = 40,
    tz: Sequence[str | None] = (None, "UTC", "Europe/Amsterdam", "America/New_York"),
) -> st.SearchStrategy[pd.DataFrame]:
    """A hypothesis strategy: ``random_log`` with a drawn seed, deal count and time zone."""

    def build(seed: int, n_deals: int, zone: str | None) -> pd.DataFrame:
        return random_log(np.random.default_rng(seed), n_deals, tz=zone)

    return st.builds(
        build,
        st.integers(0, 2**32 - 1),
        st.integers(min_deals, max_deals),
        st.sampled_from(list(tz)),
    )
