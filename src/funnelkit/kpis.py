"""Cycle time per outcome and the headline KPIs (DESIGN §3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import _stats
from . import _validate as V
from ._columns import NAT
from ._segments import expand, normalize_by, segments
from .dwell import km_table
from .transitions import to_timedelta

if TYPE_CHECKING:
    from .log import EventLog

_DAY_NS = 86_400 * 10**9


def _plain_stats(group: np.ndarray, values: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
    val, _, start, end = _stats.group_sort(group, values, n_groups)
    out = {
        "n": end - start,
        "mean": _stats.grouped_mean(val, start, end),
        "q50": _stats.grouped_quantile(val, start, end, 0.5),
        "q75": _stats.grouped_quantile(val, start, end, 0.75),
        "q90": _stats.grouped_quantile(val, start, end, 0.9),
    }
    for _, key in _stats.CI_COLUMNS:
        out[key] = np.full(n_groups, np.nan)
    for k in np.flatnonzero(end > start):  # loop over groups
        tk = val[start[k] : end[k]]  # sorted: one run per value
        for key, x in _stats.plain_intervals(tk, np.ones(tk.size, dtype=np.int64)).items():
            out[key][k] = x
    return out


def durations(log: EventLog, start: np.ndarray, end: np.ndarray, calendar=None) -> np.ndarray:
    """end − start in ns, in business time when a calendar applies (the call's or the log's)."""
    from .businessdays import as_calendar

    cal = log.calendar if calendar is None else as_calendar(calendar)
    return end - start if cal is None else cal.duration_ns(start, end)


def cycle_time(log: EventLog, *, by=None, calendar=None) -> pd.DataFrame:
    by_cols = normalize_by(by)
    seg, labels = segments(log, by_cols)
    n_seg = len(labels)
    oc = log._outcome
    done = log._term_ns != NAT
    ct = np.where(
        done,
        durations(log, log._first_ns, np.where(done, log._term_ns, log._first_ns), calendar),
        0,
    )
    rows = []
    for name, code in (("won", V.WON), ("lost", V.LOST)):
        sel = oc == code
        st = _plain_stats(seg[sel], ct[sel], n_seg)
        rows.append((name, st, np.zeros(n_seg, dtype=np.int64)))
    # time to any resolution: won/lost are events, open deals censored at as_of
    sel = (oc == V.WON) | (oc == V.LOST) | (oc == V.OPEN)
    open_for = durations(log, log._first_ns, np.full(log.n_deals, log._as_of_ns), calendar)
    dur = np.where(oc == V.OPEN, open_for, ct)[sel]
    km = km_table(seg[sel], dur, (oc == V.OPEN)[sel], n_seg)
    rows.append(("any", km, km["censored"]))
    parts = []
    for name, st, cens in rows:
        part = expand(labels, np.arange(n_seg), by_cols)
        part["outcome"] = name
        part["deals"] = st["n"].astype(np.int64)
        part["censored"] = np.asarray(cens, dtype=np.int64)
        part["mean"] = to_timedelta(st["mean"]).to_numpy()
        part["median"] = to_timedelta(st["q50"]).to_numpy()
        part["p75"] = to_timedelta(st["q75"]).to_numpy()
        part["p90"] = to_timedelta(st["q90"]).to_numpy()
        for col, key in _stats.CI_COLUMNS:
            part[col] = to_timedelta(st[key]).to_numpy()
        part["_seg"] = np.arange(n_seg)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out = out.sort_values(["_seg"], kind="stable").drop(columns="_seg").reset_index(drop=True)
    return out


def kpis(log: EventLog, *, by=None) -> pd.DataFrame:
    by_cols = normalize_by(by)
    seg, labels = segments(log, by_cols)
    n_seg = len(labels)
    oc = log._outcome.astype(np.int64)
    counts = np.bincount(seg * 4 + oc, minlength=n_seg * 4).reshape(n_seg, 4)
    is_won = oc == V.WON
    if log._amount is not None:
        amt = log._amount
        ok = is_won & ~np.isnan(amt)
        s = np.bincount(seg[ok], weights=amt[ok], minlength=n_seg)
        c = np.bincount(seg[ok], minlength=n_seg)
        with np.errstate(invalid="ignore", divide="ignore"):
            avg_won = s / c
    else:
        avg_won = np.full(n_seg, np.nan)
    ct = durations(log, log._first_ns[is_won], log._term_ns[is_won])
    med = _plain_stats(seg[is_won], ct, n_seg)["q50"]
    return kpi_table(labels, by_cols, counts, avg_won, med)


def kpi_table(
    labels: pd.DataFrame,
    by_cols: list[str],
    counts: np.ndarray,
    avg_won: np.ndarray,
    median_won_ns: np.ndarray,
) -> pd.DataFrame:
    """The KPI table from per-segment outcome counts (``(n_seg, 4)``, columns by outcome
    code), average won amounts and median won cycle times in ns (shared with the Dask
    engine)."""
    won, lost, stale, open_ = (counts[:, k] for k in (V.WON, V.LOST, V.STALE, V.OPEN))
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = won / (won + lost + stale)
        velocity = open_ * win_rate * avg_won / (median_won_ns / _DAY_NS)
    out = expand(labels, np.arange(len(labels)), by_cols)
    out["deals"] = counts.sum(axis=1).astype(np.int64)
    out["won"] = won.astype(np.int64)
    out["lost"] = lost.astype(np.int64)
    out["stale"] = stale.astype(np.int64)
    out["open"] = open_.astype(np.int64)
    out["win_rate"] = win_rate
    out["avg_won_amount"] = avg_won
    out["median_won_cycle_time"] = to_timedelta(median_won_ns).to_numpy()
    out["pipeline_velocity"] = velocity
    return out
