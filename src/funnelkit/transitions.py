"""Transition table (directly-follows between visits) and transition matrix (DESIGN §3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from . import _stats
from ._columns import NAT
from ._kernel import NO_NEXT
from ._memory import hot_path
from .errors import InvalidParameterError

if TYPE_CHECKING:
    from .log import EventLog


def to_timedelta(ns: np.ndarray) -> pd.Series:
    """float ns (NaN = undefined) → timedelta64[ns] values."""
    arr = np.asarray(ns, dtype=np.float64)
    out = np.where(np.isnan(arr), NAT, np.round(arr)).astype(np.int64)
    return pd.Series(out.view("timedelta64[ns]"))


@hot_path
def transitions(log: EventLog) -> pd.DataFrame:
    v = log._visits()
    n_cat = len(log._catalogue) + 1  # + stale
    n_pairs = log._n_stages * n_cat
    # pair code of every visit's exit; visits without one (open) are left out
    pair_all = np.multiply(v.stage, n_cat)
    pair_all += v.next
    exits = v.next != NO_NEXT
    pair = pair_all[exits]
    counts = np.bincount(pair, minlength=n_pairs)
    exits_from = np.bincount(v.stage[exits], minlength=log._n_stages)
    # distinct deals: a pair can repeat within a deal only from a re-visited stage
    revisit_deal = np.zeros(log.n_deals, dtype=bool)
    revisit_deal[v.deal[v.visit > 1]] = True
    if revisit_deal.any():
        rd = revisit_deal[v.deal]
        rd &= exits
        once = exits & ~rd
        deals = np.bincount(pair_all[once], minlength=n_pairs)
        u = v.deal[rd].astype(np.int64, copy=False)  # a fresh gather: packed in place
        u *= n_pairs
        u += pair_all[rd]
        u.sort()
        first = np.ones(u.size, dtype=bool)
        first[1:] = u[1:] != u[:-1]
        deals += np.bincount(u[first] % n_pairs, minlength=n_pairs)
    else:
        deals = counts.copy()
    # dwell statistics per pair (stale exits have none)
    has = v.dwell != NAT
    has &= exits
    val, _, start, end = _stats.group_sort(pair_all[has], v.dwell[has], n_pairs)
    mean = _stats.grouped_mean(val, start, end)
    median = _stats.grouped_quantile(val, start, end, 0.5)
    p90 = _stats.grouped_quantile(val, start, end, 0.9)
    present = np.flatnonzero(counts)
    names = np.array(log._catalogue + ["stale"], dtype=object)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = counts[present] / exits_from[present // n_cat]
    frm_c, to_c = present // n_cat, present % n_cat
    kinds = np.array(["forward", "backward", "won", "lost", "stale"], dtype=object)
    kind_code = np.where(
        to_c == n_cat - 1,
        4,
        np.where(
            to_c >= log._n_stages,
            np.where(log._kind[np.minimum(to_c, n_cat - 2)] == 1, 2, 3),
            np.where(to_c > frm_c, 0, 1),
        ),
    )
    out = pd.DataFrame(
        {
            "from_stage": names[present // n_cat].astype(str),
            "to_stage": names[present % n_cat].astype(str),
            "transitions": counts[present].astype(np.int64),
            "deals": deals[present].astype(np.int64),
            "share": share,
            "dwell_mean": to_timedelta(mean[present]).to_numpy(),
            "dwell_median": to_timedelta(median[present]).to_numpy(),
            "dwell_p90": to_timedelta(p90[present]).to_numpy(),
            "kind": kinds[kind_code].astype(str),
        }
    )
    return out


def transition_matrix(
    log: EventLog, kind: Literal["counts", "probabilities"] = "probabilities"
) -> pd.DataFrame:
    states = log._catalogue + ["stale"]
    n = len(states)
    mat = np.zeros((n, n), dtype=np.float64 if kind == "probabilities" else np.int64)
    t = transitions(log)
    idx = {s: i for i, s in enumerate(states)}
    r = t["from_stage"].map(idx).to_numpy(dtype=np.int64)
    c = t["to_stage"].map(idx).to_numpy(dtype=np.int64)
    if kind == "counts":
        mat[r, c] = t["transitions"].to_numpy()
    elif kind == "probabilities":
        mat[r, c] = t["share"].to_numpy()
        absorbing = np.arange(log._n_stages, n)
        mat[absorbing, absorbing] = 1.0
    else:
        raise InvalidParameterError(f"`kind` must be 'counts' or 'probabilities'; got {kind!r}.")
    return pd.DataFrame(
        mat, index=pd.Index(states, name="from_stage"), columns=pd.Index(states, name="to_stage")
    )
