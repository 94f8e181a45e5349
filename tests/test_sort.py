"""The event sort (``_validate.sort_events``) in each of its modes against ``np.lexsort``.

The modes are picked by how many bits the deal, time, tie and row fields need, so the
cases below choose sizes that force each one: row-packed exact, row-packed with a coarse
clock (and its fix-up of runs within one tick), the fall-back to ``argsort`` when such
runs are common or the fields leave no room, and the lexsort of very wide deal keys.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from funnelkit import _validate as V


def _reference(rows, deal_key, time_ns, codes, tie_of_code):
    n = deal_key.size
    tie = tie_of_code[codes]
    order = np.lexsort((np.arange(n), tie, time_ns, deal_key))
    dk, ts, tc, cs = deal_key[order], time_ns[order], tie[order], codes[order]
    new = np.ones(n, dtype=bool)
    new[1:] = dk[1:] != dk[:-1]
    deal = np.cumsum(new) - 1
    tied = (~new[1:]) & (ts[1:] == ts[:-1]) & (tc[1:] == tc[:-1]) & (cs[1:] != cs[:-1])
    unresolved = np.unique(deal[1:][tied]).size
    srows = order if rows is None else rows[order]
    return srows, deal, np.flatnonzero(new), ts, unresolved, cs


def _case(seed, n, n_deals, span, step, deal_spread=1, deal_offset=0):
    rng = np.random.default_rng(seed)
    d = rng.integers(0, n_deals, n).astype(np.int64)
    deal_key = d * deal_spread
    time_ns = rng.integers(0, span, n).astype(np.int64) * step + 1_700_000_000 * 10**9
    time_ns += (d * 7919 % n_deals) * deal_offset
    codes = rng.integers(0, 6, n).astype(np.int16)
    tie_of_code = np.array([0, 1, 2, 2, 8, 8], dtype=np.int64)  # codes 2/3 and 4/5 tie
    bits = max(1, int(deal_key.max()).bit_length())
    return deal_key, bits, time_ns, codes, tie_of_code


CASES = {
    # day clock over a year: everything fits with the row number
    "exact": dict(n=5_000, n_deals=500, span=365, step=86_400 * 10**9),
    # ns clock over years: coarse ticks, few runs within one tick
    "coarse": dict(n=5_000, n_deals=2_000, span=2**56 // 1_000, step=997),
    # the same with events microseconds apart: a few runs within one tick are fixed up
    "coarse_runs": dict(n=5_000, n_deals=50, span=3_000, step=2 * 10**4, deal_offset=2**50),
    # deals years apart, each deal's events within microseconds: runs everywhere → argsort
    "dense": dict(n=5_000, n_deals=50, span=3_000, step=101, deal_offset=2**50),
    # few rows, ns clock: the time fits beside deal and row, the tie rank does not
    "tie_does_not_fit": dict(n=40, n_deals=5, span=2**54 // 997, step=997),
    # deal keys so wide that the row does not fit → argsort with packed keys
    "wide_deals": dict(n=3_000, n_deals=300, span=10_000, step=10**9, deal_spread=2**36),
    # deal keys wider than 40 bits → lexsort
    "lexsort": dict(n=3_000, n_deals=300, span=10_000, step=10**9, deal_spread=2**45),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("subset", [False, True])
def test_sort_events_matches_lexsort(name, subset, monkeypatch):
    fallback = []
    real = V._argsort_events
    monkeypatch.setattr(
        V,
        "_argsort_events",
        lambda *a: fallback.append(1) or real(*a),  # type: ignore[func-returns-value]
    )
    deal_key, bits, time_ns, codes, tie_of_code = _case(7, **CASES[name])
    rows = None
    if subset:  # the caller passes the good rows' positions and their values
        rows = np.flatnonzero(np.arange(deal_key.size) % 7 != 3)
        deal_key, time_ns, codes = deal_key[rows], time_ns[rows], codes[rows]
    got = V.sort_events(rows, deal_key, bits, time_ns, codes, tie_of_code)
    srows, deal, starts, ts, unresolved, cs = _reference(
        rows, deal_key, time_ns, codes, tie_of_code
    )
    np.testing.assert_array_equal(got.rows, srows)
    np.testing.assert_array_equal(got.deal, deal)
    np.testing.assert_array_equal(got.starts, starts)
    np.testing.assert_array_equal(got.time, ts)
    np.testing.assert_array_equal(got.code, cs)
    assert got.unresolved_ties == unresolved
    if name in ("exact", "dense", "coarse_runs"):
        assert unresolved > 0  # the cases do exercise the tie count
    assert bool(fallback) == (name in ("dense", "wide_deals", "lexsort"))


def test_sort_events_single_row_and_empty():
    one = V.sort_events(
        None, np.array([5]), 3, np.array([10]), np.array([0], np.int16), np.array([0])
    )
    assert one.rows.tolist() == [0] and one.deal.tolist() == [0] and one.time.tolist() == [10]
    empty = V.sort_events(
        None,
        np.zeros(0, np.int64),
        1,
        np.zeros(0, np.int64),
        np.zeros(0, np.int16),
        np.array([0]),
    )
    assert empty.rows.size == 0 and empty.code.size == 0


def test_argsort_fallback_when_time_fits_but_tie_rank_does_not():
    # deal 7 bits + time 55 bits <= 63 < + tie 4 bits: the coarse shift would be negative
    deal_key, bits, time_ns, codes, tie_of_code = _case(
        3, n=400, n_deals=100, span=2**55 // 997, step=997, deal_spread=1
    )
    got = V._argsort_events(None, deal_key, 7, time_ns, codes, tie_of_code)
    srows, deal, starts, ts, unresolved, cs = _reference(
        None, deal_key, time_ns, codes, tie_of_code
    )
    np.testing.assert_array_equal(got.rows, srows)
    np.testing.assert_array_equal(got.time, ts)
    assert got.unresolved_ties == unresolved


@pytest.mark.parametrize("fn", ["sort_events", "_argsort_events"])
def test_times_more_than_292_years_apart_sort_exactly(fn):
    ns = (
        pd.to_datetime(
            [
                "2100-01-01",
                "1700-01-02",
                "1700-01-01",
                "2100-01-01 00:00:00.000000001",
                "1990-05-05",
            ],
            format="ISO8601",
        )
        .as_unit("ns")
        .asi8
    )
    deal_key = np.array([0, 0, 1, 1, 0], dtype=np.int64)
    codes = np.array([0, 1, 0, 1, 2], dtype=np.int16)
    tie = np.array([0, 1, 2], dtype=np.int64)
    got = getattr(V, fn)(None, deal_key, 1, ns, codes, tie)
    assert got.rows.tolist() == [1, 4, 0, 2, 3]
    assert got.time.tolist() == ns[[1, 4, 0, 2, 3]].tolist()


@pytest.mark.parametrize("p_valid", [0.0, 0.05, 0.7, 1.0])
def test_first_notnull_and_changed_deals_match_a_direct_computation(p_valid):
    """The per-deal helpers the build uses on sorted rows, against a loop over deals."""
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 6, 400)
    deal = np.repeat(np.arange(sizes.size), sizes)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    valid = rng.random(deal.size) < p_valid
    first = V.first_notnull(valid, starts, deal.size)
    expected = []
    for d in range(sizes.size):  # loop over deals
        pos = np.flatnonzero(valid[deal == d])
        expected.append(starts[d] + pos[0] if pos.size else -1)
    np.testing.assert_array_equal(first, expected)
    # deals with more than one distinct non-null value, floats (NaN) and codes (-1)
    codes = np.where(valid, rng.integers(0, 3, deal.size), -1).astype(np.int32)
    amounts = np.where(valid, rng.integers(0, 3, deal.size) * 1.5, np.nan)
    for values, null in ((codes, codes < 0), (amounts, np.isnan(amounts))):
        changed = sum(np.unique(values[(deal == d) & ~null]).size > 1 for d in range(sizes.size))
        assert V.changed_deals(values, starts) == changed
    assert V.first_notnull(valid[:0], starts[:0], 0).size == 0
