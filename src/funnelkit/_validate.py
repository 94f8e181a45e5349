"""The rules of DESIGN §1: bad rows, the sort, reopened deals, repeats, terminal runs.

Input: the encoded columns of :mod:`funnelkit._columns`. Output: a :class:`Cleaned` log
(the sorted, cleaned path as integer arrays plus per-deal arrays) and the row accounting.
No Python loop over deals or events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._columns import NAT

# outcome codes per deal
OPEN, WON, LOST, STALE = 0, 1, 2, 3
OUTCOMES = np.array(["open", "won", "lost", "stale"], dtype=object)
# stage kinds
STAGE, WON_KIND, LOST_KIND = 0, 1, 2


@dataclass
class Sorted:
    """Good rows in path order (deal, then time, then the tie rules)."""

    rows: np.ndarray  # input positions
    deal: np.ndarray  # dense deal code
    starts: np.ndarray  # first position of each deal
    time: np.ndarray  # int64 ns, sorted
    unresolved_ties: int


_UNITS = (86_400 * 10**9, 10**9, 10**6, 10**3)


def time_unit(values: np.ndarray) -> int:
    """The coarsest of day/second/ms/µs that divides every value (else 1 ns).

    A cheap look at the first values rules most units out before a full pass."""
    head = values[:4096]
    for unit in _UNITS:
        if not np.any(head % unit) and not np.any(values % unit):
            return unit
    return 1


def sort_events(
    rows: np.ndarray,
    deal_key: np.ndarray,
    deal_bits: int,
    time_ns: np.ndarray,
    is_terminal: np.ndarray,
    rank: np.ndarray,
    stage: np.ndarray,
) -> Sorted:
    """Sort good rows by deal, time, terminal-last, declared rank, then input order.

    The keys are packed into one int64 (deal | time | terminal | rank) and sorted with a
    single ``argsort``; the sorted deal and time are read back from the packed keys
    instead of gathered. When the clock is too fine to pack exactly, a coarsened time is
    packed and the rare runs of equal packed keys are ordered exactly afterwards. Runs of
    equal keys always end up in input order (``argsort`` is not stable), and they are
    also where unresolved ties live.
    """
    n = rows.size
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Sorted(empty, empty, empty, empty, 0)
    tmin = int(time_ns.min())
    t = time_ns - tmin
    unit = time_unit(t)
    if unit > 1:
        t //= unit
    t_bits = max(1, int(t.max()).bit_length())
    r_bits = max(1, int(rank.max()).bit_length()) if rank.size else 1
    k_bits = 1 + r_bits
    tie = (is_terminal.astype(np.int64) << r_bits) | rank
    if deal_bits + t_bits + k_bits <= 63:
        mode, shift = "exact", 0
        key = (deal_key << (t_bits + k_bits)) | (t << k_bits) | tie
    elif deal_bits <= 40:
        mode, shift = "coarse", t_bits - (63 - deal_bits)
        key = (deal_key << (63 - deal_bits)) | (t >> shift)
    else:
        mode = "lexsort"
    if mode == "lexsort":
        order = np.lexsort((np.arange(n), tie, t, deal_key))
        dk = deal_key[order]
        ts = t[order]
        to = tie[order]
        same = (dk[1:] == dk[:-1]) & (ts[1:] == ts[:-1]) & (to[1:] == to[:-1])
    else:
        order = np.argsort(key)
        ks = key[order]
        same = ks[1:] == ks[:-1]
    unresolved = 0
    if same.any():
        in_run = np.zeros(n, dtype=bool)
        in_run[1:] |= same
        in_run[:-1] |= same
        pos = np.flatnonzero(in_run)
        run_id = np.cumsum(np.concatenate(([True], ~same)))[pos]
        sub = order[pos]
        if mode == "coarse":
            order[pos] = sub[np.lexsort((sub, tie[sub], t[sub], run_id))]
        elif mode == "exact":
            order[pos] = sub[np.lexsort((sub, run_id))]
        sub = order[pos]
        # unresolved ties: same run, same time and tie rank, a different stage name
        tied = (run_id[1:] == run_id[:-1]) & (t[sub][1:] == t[sub][:-1])
        tied &= (tie[sub][1:] == tie[sub][:-1]) & (stage[sub][1:] != stage[sub][:-1])
        if tied.any():
            unresolved = int(np.unique(deal_key[sub][1:][tied]).size)
    if mode == "exact":
        dk = ks >> (t_bits + k_bits)
        ts = ((ks >> k_bits) & ((1 << t_bits) - 1)) * unit + tmin
    elif mode == "coarse":
        dk = ks >> (63 - deal_bits)
        ts = t[order] * unit + tmin
    else:
        ts = ts * unit + tmin
    srows = rows[order]
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(dk[1:], dk[:-1], out=new[1:])
    deal = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    return Sorted(srows, deal, starts, ts, unresolved)


@dataclass
class PathRules:
    """Result of the path rules on sorted rows (all arrays in sorted order)."""

    kept: np.ndarray  # bool: event of the cleaned path
    reopened_terminal: np.ndarray  # bool
    repeat: np.ndarray  # bool
    terminal_run: np.ndarray  # bool
    conflict_deal: np.ndarray  # bool per deal: final terminal run holds won and lost
    reopened_deal: np.ndarray  # bool per deal


def path_rules(
    kind: np.ndarray, stage: np.ndarray, deal: np.ndarray, starts: np.ndarray
) -> PathRules:
    """Drop reopened terminals, collapse repeats, collapse the terminal run (in that order)."""
    n = kind.size
    n_deals = starts.size
    pos = np.arange(n)
    term = kind != STAGE
    if n == 0:
        z = np.zeros(0, dtype=bool)
        return PathRules(z, z, z, z, z, z)
    last_stage = np.maximum.reduceat(np.where(term, -1, pos), starts)
    reopened_terminal = term & (pos < last_stage[deal])
    reopened_deal = np.bincount(deal[reopened_terminal], minlength=n_deals) > 0
    idx = np.flatnonzero(~reopened_terminal)
    d1, s1, k1 = deal[idx], stage[idx], kind[idx]
    same_deal_prev = np.zeros(idx.size, dtype=bool)
    same_deal_prev[1:] = d1[1:] == d1[:-1]
    repeat1 = same_deal_prev.copy()
    repeat1[1:] &= (s1[1:] == s1[:-1]) & (k1[1:] == STAGE)
    run1 = same_deal_prev.copy()
    run1[1:] &= (k1[1:] != STAGE) & (k1[:-1] != STAGE)
    repeat = np.zeros(n, dtype=bool)
    repeat[idx[repeat1]] = True
    terminal_run = np.zeros(n, dtype=bool)
    terminal_run[idx[run1]] = True
    kept = ~(reopened_terminal | repeat | terminal_run)
    won_deal = np.bincount(d1[k1 == WON_KIND], minlength=n_deals) > 0
    lost_deal = np.bincount(d1[k1 == LOST_KIND], minlength=n_deals) > 0
    return PathRules(
        kept, reopened_terminal, repeat, terminal_run, won_deal & lost_deal, reopened_deal
    )


def first_notnull(valid_sorted: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Per deal, the sorted position of the first valid value (-1 when none)."""
    big = np.iinfo(np.int64).max
    cand = np.where(valid_sorted, np.arange(n), big)
    first = np.minimum.reduceat(cand, starts) if n else np.zeros(0, dtype=np.int64)
    return np.where(first == big, -1, first)


def time_or_nat(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.where(mask, values, NAT)
