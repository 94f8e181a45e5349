"""Group and period comparisons shared by :mod:`funnelkit.keystages` and
:mod:`funnelkit.monitoring`.

* the two-group proportion tests: pooled z-test / Fisher's exact test, Newcombe's interval
  for a difference, Benjamini–Hochberg q-values;
* the funnel counts per group and stage (``skips="implied"``), optionally restricted to
  deals whose outcome at the stage is (almost always) known;
* the maturity rule of period comparisons: how long before ``as_of`` a deal must have
  reached a stage (or been created) for its outcome to be visible. Without it a recent
  period looks better than it is — a deal that fell silent is stale only ``stale_after``
  after its last event, while an advance counts at once — and slow visits are still open.

No Python loop over deals or events; loops run over stages only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from . import _stats
from . import _validate as V
from ._columns import NAT, to_timestamp
from ._segments import is_visit_level, segments
from .dwell import km_table
from .errors import InvalidParameterError

if TYPE_CHECKING:
    from .log import EventLog

#: chi-square / z approximations need expected counts >= 5; below, exact tests
MIN_EXPECTED = 5.0
#: offset aliases → period aliases (anchors such as "W-MON", "QE-NOV" carry over)
PERIOD_BASE = {
    "D": "D",
    "W": "W",
    "M": "M",
    "ME": "M",
    "MS": "M",
    "Q": "Q",
    "QE": "Q",
    "QS": "Q",
    "Y": "Y",
    "YE": "Y",
    "YS": "Y",
    "A": "Y",
}
_ANCHORED = {"W", "Q", "QE", "Y", "YE", "A"}


def period_alias(value: Any, *, name: str = "freq", bases: tuple[str, ...] | None = None) -> str:
    """The pandas period alias of an offset alias (``"QE"`` → ``"Q"``; anchors such as
    ``"W-MON"`` or ``"QE-NOV"`` carry over), for the parameter ``name``; ``bases`` limits
    the aliases accepted (default: all of :data:`PERIOD_BASE`).

    Examples
    --------
    >>> from funnelkit._periods import period_alias
    >>> [period_alias(a) for a in ("W", "W-FRI", "ME", "QE", "QE-JAN", "YE-MAR", "D")]
    ['W', 'W-FRI', 'M', 'Q', 'Q-JAN', 'Y-MAR', 'D']
    """
    allowed = tuple(PERIOD_BASE) if bases is None else bases
    ok = isinstance(value, str)
    pfreq = ""
    if ok:
        base, dash, anchor = value.partition("-")
        ok = base in allowed and (not dash or (base in _ANCHORED and anchor.isalpha()))
        pfreq = PERIOD_BASE.get(base, "") + (f"-{anchor}" if dash else "")
        if ok:
            try:
                pd.Period("2025-01-01", freq=pfreq)
            except (ValueError, TypeError):
                ok = False
    if not ok:
        shown = ", ".join(repr(b) for b in allowed)
        raise InvalidParameterError(
            f"Parameter `{name}`={value!r} is not a supported period: pass a pandas offset "
            f"alias — one of {shown}; 'W', 'QE' and 'YE' also take an anchor ('W-MON', "
            "'QE-JAN' for a fiscal year ending in January, 'YE-MAR')."
        )
    return pfreq


# --------------------------------------------------------------------------- statistics
def newcombe(x1, n1, x2, n2, z: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 − p2 (method 10), from Wilson intervals."""
    low, high = newcombe_many(x1, n1, x2, n2, z)
    return float(low), float(high)


def newcombe_many(x1, n1, x2, n2, z: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`newcombe` of arrays of counts, element by element."""
    x1, n1, x2, n2 = (np.asarray(v, dtype=np.float64) for v in (x1, n1, x2, n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = x1 / n1, x2 / n2
    l1, u1 = _stats.wilson(x1, n1, z=z)
    l2, u2 = _stats.wilson(x2, n2, z=z)
    d = p1 - p2
    return (
        d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def two_proportions(x1, n1, x2, n2, alternative: str) -> tuple[float, str]:
    """p-value of H0: p1 == p2 — pooled z-test, Fisher's exact test for small counts.

    ``alternative`` is ``"greater"`` (p1 > p2) or ``"two-sided"``."""
    p, test = two_proportions_many([x1], [n1], [x2], [n2], alternative)
    return float(p[0]), str(test[0])


def two_proportions_many(x1, n1, x2, n2, alternative: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`two_proportions` of arrays of counts (every ``n`` > 0), all at once: the
    p-values and the test of each (``"z"`` or ``"fisher"``, when an expected count of the
    2×2 table is below :data:`MIN_EXPECTED`)."""
    x1, n1, x2, n2 = (np.asarray(v, dtype=np.int64).reshape(-1) for v in (x1, n1, x2, n2))
    total = (n1 + n2).astype(np.float64)
    yes, no = (x1 + x2).astype(np.float64), (n1 - x1 + n2 - x2).astype(np.float64)
    expected = np.minimum(n1, n2) * np.minimum(yes, no) / total  # the smallest cell's
    fisher = expected < MIN_EXPECTED
    p = np.full(x1.size, np.nan)
    f = np.flatnonzero(fisher)
    if f.size:
        p[f] = _stats.fisher_exact_2x2(
            x1[f], n1[f] - x1[f], x2[f], n2[f] - x2[f], alternative=alternative
        )
    z_rows = np.flatnonzero(~fisher)
    if z_rows.size:
        a1, m1, a2, m2 = (v[z_rows].astype(np.float64) for v in (x1, n1, x2, n2))
        pooled = (a1 + a2) / (m1 + m2)
        z = (a1 / m1 - a2 / m2) / np.sqrt(pooled * (1 - pooled) * (1 / m1 + 1 / m2))
        if alternative == "greater":
            p[z_rows] = stats.norm.sf(z)
        else:
            p[z_rows] = 2 * stats.norm.sf(np.abs(z))
    return p, np.where(fisher, "fisher", "z")


def bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values of the finite entries (NaN elsewhere)."""
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q


# --------------------------------------------------------------------------- counts
def segment_counts(
    log: EventLog, by: list[str]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], pd.DataFrame, np.ndarray]:
    """:func:`stage_counts` per segment of ``by`` (deal or visit attributes), the totals
    over all deals (shape ``(1, n_stages)``), the segment labels and the deals per segment.

    With a visit attribute a deal counts at a stage in the segment of the event that
    reached it (``skips="implied"``: for a skipped stage the event that went past it, a
    win reaches every stage), so one deal can count for different segments at different
    stages; its deals per segment are the deals that reached some stage in the segment.
    Then only ``reached``, ``advanced``, ``dropped`` and ``open`` are returned."""
    zero = np.zeros(log.n_deals, dtype=np.int64)
    if not is_visit_level(log, by):
        seg, labels = segments(log, by)
        c = stage_counts(log, seg, len(labels))
        return c, stage_counts(log, zero, 1), labels, np.bincount(seg, minlength=len(labels))
    from .funnel import stage_segments, stage_status

    st = stage_status(log, "implied")
    seg2, labels = stage_segments(log, by, st.entry_i)
    n_g, S = len(labels), log._n_stages
    key = seg2 * S + np.arange(S)[None, :]
    c, tot = {}, {}
    for name, mask in (
        ("reached", st.reached),
        ("advanced", st.advanced),
        ("dropped", st.dropped),
        ("open", st.open),
    ):
        c[name] = np.bincount(key[mask], minlength=n_g * S).reshape(n_g, S)
        tot[name] = mask.sum(axis=0)[None, :]
    deal_of = np.repeat(np.arange(log.n_deals), S).reshape(log.n_deals, S)
    pairs = np.unique(deal_of[st.reached] * n_g + seg2[st.reached])
    return c, tot, labels, np.bincount(pairs % n_g, minlength=n_g)


def stage_counts(
    log: EventLog, group: np.ndarray, n_groups: int, cutoff_ns: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Per (group, stage) counts of the unweighted ``skips="implied"`` funnel: ``reached``,
    ``advanced``, ``dropped``, ``open``, ``won`` and ``resolved`` (won + lost + stale among
    deals that reached the stage, for ``win_rate_from``) — the numbers of
    ``log.funnel(by=...)``. Arrays of shape ``(n_groups, n_stages)``.

    With ``cutoff_ns`` (one time per stage), a deal counts at a stage only if it reached
    the stage (entered it or a later one, or won) by then; its outcome is the one known at
    ``as_of``. Then only ``reached``, ``advanced``, ``dropped`` and ``open`` are returned
    (``reached == advanced + dropped + open``). See :func:`maturity_cutoffs`."""
    S = log._n_stages
    v = log._visits()
    outcome = log._outcome.astype(np.int64)
    has = v.furthest >= 0
    F = np.bincount(
        (group[has] * S + v.furthest[has]) * 4 + outcome[has], minlength=n_groups * S * 4
    ).reshape(n_groups, S, 4)
    E = np.flip(np.cumsum(np.flip(F, axis=1), axis=1), axis=1)
    won_all = np.bincount(group[outcome == V.WON], minlength=n_groups)
    E[:, :, V.WON] = won_all[:, None]
    dropped = F[:, :, V.LOST] + F[:, :, V.STALE]
    reached = E.sum(axis=2)
    advanced = reached - dropped - F[:, :, V.OPEN]
    resolved = E[:, :, V.WON] + E[:, :, V.LOST] + E[:, :, V.STALE]
    if cutoff_ns is None:
        return {
            "reached": reached,
            "advanced": advanced,
            "dropped": dropped,
            "open": F[:, :, V.OPEN],
            "won": E[:, :, V.WON],
            "resolved": resolved,
        }
    reach = reach_times(log)
    won = outcome == V.WON
    lost = (outcome == V.LOST) | (outcome == V.STALE)
    is_open = outcome == V.OPEN
    adv = np.zeros((n_groups, S), dtype=np.int64)
    drop = np.zeros((n_groups, S), dtype=np.int64)
    opn = np.zeros((n_groups, S), dtype=np.int64)
    for s in range(S):  # loop over stages
        ok = (reach[:, s] != NAT) & (reach[:, s] <= cutoff_ns[s])
        adv[:, s] = np.bincount(group[ok & (won | (v.furthest > s))], minlength=n_groups)
        drop[:, s] = np.bincount(group[ok & lost & (v.furthest == s)], minlength=n_groups)
        opn[:, s] = np.bincount(group[ok & is_open & (v.furthest == s)], minlength=n_groups)
    return {"reached": adv + drop + opn, "advanced": adv, "dropped": drop, "open": opn}


def maturity_cutoffs(log: EventLog) -> np.ndarray:
    """Per stage, the latest time a deal may reach the stage and count in a period
    comparison: ``as_of − stale_after − p90``, with ``p90`` the stage's Kaplan–Meier 90th
    percentile of first-visit dwell (the largest observed dwell when the estimate never
    falls that low).

    Recent deals are compared on outcomes that are not all visible yet: a deal that fell
    silent is stale only ``stale_after`` after its last event, while one that advanced is
    counted at once; and a slow visit is still open. Both make a recent period look
    different when nothing changed. Deals that reached the stage this long before ``as_of``
    have (nearly always) a known outcome there, whichever it is."""
    S = log._n_stages
    v = log._visits()
    keep = (v.visit == 1) & (v.dwell != NAT)
    km = km_table(v.stage[keep], v.dwell[keep], v.censored[keep], S)
    top = grouped_max(v.stage[keep], v.dwell[keep], S)
    return cutoffs(log._as_of_ns, _lag(log), km["q90"], top)


def resolution_cutoff(log: EventLog) -> int:
    """The deal-level counterpart of :func:`maturity_cutoffs`: the latest creation time of
    a deal whose outcome is (almost always) known at ``as_of`` — ``as_of − stale_after −
    p90``, with ``p90`` the Kaplan–Meier 90th percentile of the time from the first event
    to the first terminal event (open deals censored at ``as_of``; stale deals, whose end
    is unknown, left out). When the estimate never falls that low — more than a tenth of
    the deals never resolve, as when silent deals stay open without ``stale_after`` — the
    largest observed time to a resolution is used instead."""
    oc = log._outcome
    keep = oc != V.STALE
    dur, done = resolution_times(log)
    km = km_table(np.zeros(int(keep.sum()), dtype=np.int64), dur[keep], (oc == V.OPEN)[keep], 1)
    top = np.array([dur[done].max(initial=0)])
    return int(cutoffs(log._as_of_ns, _lag(log), km["q90"], top)[0])


def cutoffs(as_of_ns: int, lag_ns: int, q90: np.ndarray, top: np.ndarray) -> np.ndarray:
    """``as_of − stale_after − p90`` per group in exact int64 ns: ``p90`` the Kaplan–Meier
    90th percentile rounded up to a nanosecond, or the largest observed time where the
    estimate never falls that low (NaN) — the formula of :func:`maturity_cutoffs` and
    :func:`resolution_cutoff`, for both engines."""
    q90 = np.asarray(q90, dtype=np.float64)
    p90 = np.where(np.isfinite(q90), np.ceil(np.nan_to_num(q90)), top).astype(np.int64)
    return int(as_of_ns) - int(lag_ns) - p90


def resolution_times(log: EventLog) -> tuple[np.ndarray, np.ndarray]:
    """Per deal, the time from its first event to its first terminal event (to ``as_of``
    when it has none: open or stale) in ns, and whether it has one — the clock of
    :func:`resolution_cutoff` and of ``trend(metric="cycle_time")``."""
    done = log._term_ns != NAT
    return np.where(done, log._term_ns - log._first_ns, log._as_of_ns - log._first_ns), done


def _lag(log: EventLog) -> int:
    return 0 if log.stale_after is None else int(log.stale_after.value)


def grouped_max(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    out = np.zeros(n_groups)
    np.maximum.at(out, group, values.astype(np.float64))
    return out


def reach_times(log: EventLog) -> np.ndarray:
    """``(n_deals, n_stages)`` time each deal reached each stage under ``skips="implied"``
    — entered it or a later stage, or won — NAT when it never did."""
    S = log._n_stages
    deal, code, t = log._path_deal, log._path_stage, log._path_time
    kind = log._kind[code]
    rank = np.where(kind == V.STAGE, code, np.where(kind == V.WON_KIND, S, -1)).astype(np.int64)
    width = S + 2
    offset = deal.astype(np.int64) * width
    running = np.maximum.accumulate(offset + rank + 1) - offset - 1  # furthest rank so far
    first = np.ones(deal.size, dtype=bool)
    first[1:] = deal[1:] != deal[:-1]
    before = np.empty_like(running)
    before[1:] = running[:-1]
    before[first] = -1
    rec = running > before  # the events where the deal's furthest rank grows
    r_deal, r_before, r_after, r_time = deal[rec], before[rec], running[rec], t[rec]
    out = np.full((log.n_deals, S), NAT, dtype=np.int64)
    for s in range(S):  # loop over stages: the one record that reaches s, per deal
        m = (r_before < s) & (r_after >= s)
        out[r_deal[m], s] = r_time[m]
    return out


# --------------------------------------------------------------------------- the period date
def period_split(log: EventLog, period: Any) -> tuple[int, str]:
    """``period`` as ns on the log's clock and as a label for reasons; raises when no deal
    was created on one side of it (creation = the deal's first event)."""
    period_ns = to_timestamp(period, log._aware, "period")
    n_after = int((log._first_ns >= period_ns).sum())
    if n_after in (0, log.n_deals):
        first, last = log._timestamp(np.array([log._first_ns.min(), log._first_ns.max()]))
        raise one_sided_period(period, n_after, first, last)
    return period_ns, period_label(period)


def period_label(period: Any) -> str:
    """``period`` as the reasons name it: a date at midnight, else as given."""
    return str(pd.Timestamp(period).date()) if _is_midnight(period) else str(period)


def one_sided_period(period: Any, n_after: int, first: Any, last: Any) -> InvalidParameterError:
    """The error of a ``period`` with no deal created on one side of it (``n_after`` deals
    after it: none, or all), naming the range of creation times (both engines)."""
    return InvalidParameterError(
        f"Parameter `period`={period!r}: no deal was created "
        f"{'after' if n_after == 0 else 'before'} it (deals were created from {first} to "
        f"{last}); pick a date inside that range."
    )


def _is_midnight(period: Any) -> bool:
    ts = pd.Timestamp(period)
    return bool(ts == ts.normalize())
