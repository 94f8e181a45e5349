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
    code: np.ndarray  # stage code of each sorted row


_UNITS = (86_400 * 10**9, 10**9, 10**6, 10**3)


def time_unit(values: np.ndarray) -> int:
    """The coarsest of day/second/ms/µs that divides every value (else 1 ns).

    A cheap look at the first values rules most units out before a full pass."""
    head = values[:4096]
    for unit in _UNITS:
        if not np.any(head % unit) and not np.any(values % unit):
            return unit
    return 1


def fitting_unit(values: np.ndarray, excess_bits: int) -> int:
    """The smallest of µs/ms/s/day that saves ``excess_bits`` bits and divides every value
    (else 1). Coarser units are multiples of finer ones, so one unit is tested."""
    for unit in reversed(_UNITS):  # finest first
        if unit.bit_length() - 1 >= excess_bits:
            head = values[:4096]
            if not np.any(head % unit) and not np.any(values % unit):
                return unit
            return 1
    return 1


def sort_events(
    rows: np.ndarray | None,
    deal_key: np.ndarray,
    deal_bits: int,
    time_ns: np.ndarray,
    codes: np.ndarray,
    tie_of_code: np.ndarray,
) -> Sorted:
    """Sort good rows by deal, time, terminal-last, declared rank, then input order.

    ``rows`` are the input positions of the given arrays (None: all rows, in order);
    ``tie_of_code`` gives each stage code its tie rank (terminal flag above the declared
    rank), so no per-row tie array is needed.

    The row number itself is packed into the key (deal | time | tie | row, one uint64),
    so a plain ``np.sort`` — several times faster than ``argsort`` — yields the order,
    and deal and time are read back from the sorted keys instead of gathered. Runs of
    equal (deal, time, tie) stay in input order because the row is the last field; they
    are where unresolved ties live. When the clock is too fine for the room left, the
    time is coarsened and the (rare) runs of one deal within one coarse tick are ordered
    exactly afterwards; when such runs are common, or the deal and row fields leave too
    little room, :func:`_argsort_events` is used instead.

    Fresh memory is expensive here (page faults cost about as much as the sort), so the
    large temporaries are few and reused in place.
    """
    n = deal_key.size
    r_bits = max(1, (n - 1).bit_length())
    room = 64 - deal_bits - r_bits
    if n == 0 or room < _MIN_TIME_BITS:
        return _argsort_events(rows, deal_key, deal_bits, time_ns, codes, tie_of_code)
    tmin, tmax = int(time_ns.min()), int(time_ns.max())
    if tmax - tmin > _INT64_MAX:  # times over ~292 years apart: no int64 offset
        return _argsort_events(rows, deal_key, deal_bits, time_ns, codes, tie_of_code)
    t = np.subtract(time_ns, tmin)  # our own buffer from here on
    t_bits = max(1, (tmax - tmin).bit_length())
    k_bits = max(1, int(tie_of_code.max()).bit_length()) if tie_of_code.size else 1
    unit = 1
    if t_bits + k_bits > room:
        unit = fitting_unit(t, t_bits + k_bits - room)
        if unit > 1:
            np.floor_divide(t, unit, out=t)
            t_bits = max(1, int(t.max()).bit_length())
    exact = t_bits + k_bits <= room
    u64 = np.uint64
    tu = t.view(u64)
    key = np.left_shift(deal_key.astype(np.int64, copy=False).view(u64), u64(64 - deal_bits))
    seq = np.arange(n, dtype=u64)
    if exact:
        np.left_shift(tu, u64(k_bits + r_bits), out=tu)
        key |= tu
        np.take(tie_of_code, codes, out=t, mode="wrap")
        np.left_shift(tu, u64(r_bits), out=tu)
        key |= tu
    else:
        shift = max(0, t_bits - room)  # 0: the time fits, the tie rank does not
        np.right_shift(tu, u64(shift), out=tu)
        np.left_shift(tu, u64(r_bits), out=tu)
        key |= tu
    key |= seq
    key.sort()
    order = np.bitwise_and(key, u64((1 << r_bits) - 1), out=seq).view(np.int64)
    if not exact:
        # runs of one deal within one coarse tick: order them exactly (time, tie, row)
        pre = np.right_shift(key, u64(r_bits), out=tu)
        same = pre[1:] == pre[:-1]
        m = int(np.count_nonzero(same))
        if m > n // 8:  # a clock far finer than the events are apart is rare
            return _argsort_events(rows, deal_key, deal_bits, time_ns, codes, tie_of_code)
        if m:
            pos, run_id = _runs(same)
            sub = order[pos]
            order[pos] = sub[np.lexsort((sub, tie_of_code[codes[sub]], time_ns[sub], run_id))]
        ts = np.take(time_ns, order, out=t, mode="wrap")
    else:
        ts = np.right_shift(key, u64(k_bits + r_bits), out=tu).view(np.int64)
        ts &= (1 << t_bits) - 1
        if unit > 1:
            ts *= unit
        ts += tmin
    code = codes[order]
    dk = np.right_shift(key, u64(64 - deal_bits), out=key)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(dk[1:], dk[:-1], out=new[1:])
    deal = dk.view(np.int64)
    deal[:] = new  # then a cumsum in place (from bool into int64 it would buffer a copy)
    np.cumsum(deal, out=deal)
    deal -= 1
    starts = np.flatnonzero(new)
    # unresolved ties: one deal, one time, one tie rank, different stage names
    unresolved = 0
    tied = ts[1:] == ts[:-1]
    tied &= ~new[1:]
    if tied.any():
        i = np.flatnonzero(tied)
        tie = tie_of_code[code[i]] == tie_of_code[code[i + 1]]
        tie &= code[i] != code[i + 1]
        if tie.any():
            unresolved = int(np.unique(deal[i[tie]]).size)
    srows = order if rows is None else rows[order]
    return Sorted(srows, deal, starts, ts, unresolved, code)


#: below this many bits for the time field the row-packed sort gives way to argsort
_MIN_TIME_BITS = 12


_INT64_MAX = int(np.iinfo(np.int64).max)


def _runs(same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions inside runs of equal neighbours (``same[i]``: i equals i + 1) and the
    run each belongs to (increasing)."""
    n = same.size + 1
    in_run = np.zeros(n, dtype=bool)
    in_run[1:] |= same
    in_run[:-1] |= same
    pos = np.flatnonzero(in_run)
    run_id = np.cumsum(np.concatenate(([True], ~same)))[pos]
    return pos, run_id


def _argsort_events(
    rows: np.ndarray | None,
    deal_key: np.ndarray,
    deal_bits: int,
    time_ns: np.ndarray,
    codes: np.ndarray,
    tie_of_code: np.ndarray,
) -> Sorted:
    """:func:`sort_events` for keys with too little room for the row number.

    The keys are packed into one int64 (deal | time | tie) and sorted with ``argsort``;
    the sorted deal and time are read back from the packed keys instead of gathered. When
    the clock is too fine to pack exactly, a coarsened time is packed and the rare runs of
    equal packed keys are ordered exactly afterwards. Runs of equal keys always end up in
    input order (``argsort`` is not stable), and they are also where unresolved ties live.
    """
    n = deal_key.size
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Sorted(empty, empty, empty, empty, 0, codes[:0])
    tmin, tmax = int(time_ns.min()), int(time_ns.max())
    wide = tmax - tmin > _INT64_MAX  # times more than 292 years apart: no offset fits
    # our own buffer from here on (not needed when wide: the lexsort reads time_ns)
    t = time_ns if wide else np.subtract(time_ns, tmin)
    t_bits = 63 if wide else max(1, (tmax - tmin).bit_length())
    k_bits = max(1, int(tie_of_code.max()).bit_length()) if tie_of_code.size else 1
    unit = 1
    excess = deal_bits + t_bits + k_bits - 63
    if excess > 0 and not wide:
        # a coarser clock unit may make the exact key fit: only the smallest unit that
        # saves enough bits is worth a (division) pass, and only if it divides all times
        unit = fitting_unit(t, excess)
        if unit > 1:
            np.floor_divide(t, unit, out=t)
            t_bits = max(1, int(t.max()).bit_length())
    if wide:
        mode = "lexsort"
    elif deal_bits + t_bits + k_bits <= 63:
        mode = "exact"
        key = np.left_shift(deal_key, t_bits + k_bits)
        np.left_shift(t, k_bits, out=t)
        key |= t
        np.take(tie_of_code, codes, out=t, mode="wrap")
        key |= t
    elif deal_bits <= 40:
        mode = "coarse"
        key = np.left_shift(deal_key, 63 - deal_bits)
        np.right_shift(t, max(0, t_bits - (63 - deal_bits)), out=t)
        key |= t
    else:
        mode = "lexsort"
    if mode == "lexsort":
        tie = tie_of_code[codes]
        order = np.lexsort((np.arange(n), tie, time_ns, deal_key))
        dk = deal_key[order]
        ts = time_ns[order]
        to = tie[order]
        same = (dk[1:] == dk[:-1]) & (ts[1:] == ts[:-1]) & (to[1:] == to[:-1])
    else:
        order = np.argsort(key)
        ks = np.take(key, order, out=t, mode="wrap")  # t's buffer is free again
        same = ks[1:] == ks[:-1]
    unresolved = 0
    if same.any():
        pos, run_id = _runs(same)
        sub = order[pos]
        if mode == "coarse":
            order[pos] = sub[np.lexsort((sub, tie_of_code[codes[sub]], time_ns[sub], run_id))]
        elif mode == "exact":
            order[pos] = sub[np.lexsort((sub, run_id))]
        sub = order[pos]
        # unresolved ties: same run, same time and tie rank, a different stage name
        tsub, csub = time_ns[sub], codes[sub]
        tied = (run_id[1:] == run_id[:-1]) & (tsub[1:] == tsub[:-1])
        tied &= tie_of_code[csub][1:] == tie_of_code[csub][:-1]
        tied &= csub[1:] != csub[:-1]
        if tied.any():
            unresolved = int(np.unique(deal_key[sub][1:][tied]).size)
    if mode == "exact":
        ts = np.right_shift(ks, k_bits, out=key)  # key's buffer is free again
        ts &= (1 << t_bits) - 1
        if unit > 1:
            ts *= unit
        ts += tmin
        dk = np.right_shift(ks, t_bits + k_bits, out=ks)
    elif mode == "coarse":
        dk = np.right_shift(ks, 63 - deal_bits, out=ks)
        ts = np.take(time_ns, order, out=key, mode="wrap")
    srows = order if rows is None else rows[order]
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(dk[1:], dk[:-1], out=new[1:])
    deal = np.cumsum(new, dtype=np.int64)
    deal -= 1
    starts = np.flatnonzero(new)
    return Sorted(srows, deal, starts, ts, unresolved, codes[order])


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
    term = kind != STAGE
    if n == 0:
        z = np.zeros(0, dtype=bool)
        return PathRules(z, z, z, z, z, z)
    # a terminal event is reopened when a stage event of its deal comes later: only
    # terminal events that are not their deal's last event can be
    ends = np.append(starts[1:], n) - 1
    cand = np.flatnonzero(term)
    last_of_deal = ends[deal[cand]]
    cand = cand[cand < last_of_deal]
    reopened_terminal = np.zeros(n, dtype=bool)
    if cand.size:
        pos = np.arange(n)
        last_stage = np.maximum.reduceat(np.where(term, -1, pos), starts)
        reopened_terminal[cand[cand < last_stage[deal[cand]]]] = True
    reopened_deal = np.bincount(deal[reopened_terminal], minlength=n_deals) > 0
    if reopened_deal.any():
        idx = np.flatnonzero(~reopened_terminal)
        d1, s1, k1 = deal[idx], stage[idx], kind[idx]
    else:  # nothing removed: no copies
        idx = None
        d1, s1, k1 = deal, stage, kind
    same_deal_prev = np.zeros(d1.size, dtype=bool)
    same_deal_prev[1:] = d1[1:] == d1[:-1]
    repeat1 = same_deal_prev.copy()
    repeat1[1:] &= (s1[1:] == s1[:-1]) & (k1[1:] == STAGE)
    run1 = same_deal_prev.copy()
    run1[1:] &= (k1[1:] != STAGE) & (k1[:-1] != STAGE)
    if idx is None:
        repeat, terminal_run = repeat1, run1
    else:
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
    """Per deal, the sorted position of the first valid value (-1 when none).

    No pass over all rows beyond reading ``valid_sorted``: when every value is valid the
    answer is ``starts``; otherwise the first valid position at or after each start is
    found by binary search among the valid positions (an export's missing values are
    few; a row-sized candidate array and a ``reduceat`` cost more in fresh memory)."""
    starts = np.asarray(starts, dtype=np.int64)
    if n == 0 or starts.size == 0:
        return np.zeros(starts.size, dtype=np.int64)
    if valid_sorted.all():
        return starts.copy()
    pos = np.flatnonzero(valid_sorted)
    if pos.size == 0:
        return np.full(starts.size, -1, dtype=np.int64)
    i = np.searchsorted(pos, starts)
    cand = pos[np.minimum(i, pos.size - 1)]
    ends = np.append(starts[1:], n)
    return np.where((i < pos.size) & (cand < ends), cand, -1)


def changed_deals(values: np.ndarray, starts: np.ndarray) -> int:
    """How many deals hold more than one distinct non-null value, for rows sorted by
    deal (``starts``: each deal's first row). ``values`` are floats (NaN: null) or
    integer codes (-1: null). A deal's values all equal its first non-null one exactly
    when its smallest and largest non-null values are equal, so one minimum and one
    maximum per deal answer it: no row-sized temporaries."""
    if starts.size == 0 or values.size == 0:
        return 0
    if values.dtype.kind == "f":
        hi = np.fmax.reduceat(values, starts)  # NaN only where a deal has no value
        lo = np.fmin.reduceat(values, starts)
        return int(np.count_nonzero(hi > lo))
    hi = np.maximum.reduceat(values, starts)  # -1 only where a deal has no value
    # read as unsigned, the null code -1 is the largest value: the minimum skips it
    unsigned = np.dtype(f"u{values.dtype.itemsize}")
    lo = np.minimum.reduceat(values.view(unsigned), starts).view(values.dtype)
    return int(np.count_nonzero((hi >= 0) & (hi != lo)))


def time_or_nat(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.where(mask, values, NAT)
