"""The funnel / stage table of DESIGN §3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from . import _stats
from . import _validate as V
from ._segments import expand, normalize_by, segments
from .errors import EventLogError

if TYPE_CHECKING:
    from .log import EventLog

N_OUT = 4  # outcome codes: open, won, lost, stale


def deal_weights(log: EventLog, weight: str | None) -> np.ndarray | None:
    if weight is None:
        return None
    amount_col = log._settings["amount"]
    if weight not in ("amount", amount_col) or log._amount is None:
        raise EventLogError(
            f"`weight`={weight!r}: only the mapped amount column can weight the funnel "
            f"(amount={amount_col!r}). Pass amount=... when building the EventLog and "
            "weight='amount'."
        )
    return np.nan_to_num(log._amount, nan=0.0)


def funnel(
    log: EventLog,
    *,
    skips: Literal["implied", "strict"] = "implied",
    weight: str | None = None,
    by=None,
) -> pd.DataFrame:
    if skips not in ("implied", "strict"):
        raise EventLogError(f"`skips` must be 'implied' or 'strict'; got {skips!r}.")
    by_cols = normalize_by(by)
    seg, labels = segments(log, by_cols)
    n_seg = len(labels)
    S = log._n_stages
    v = log._visits()
    w = deal_weights(log, weight)
    outcome = log._outcome.astype(np.int64)
    furthest = v.furthest
    blocks = {}
    for power in (1, 2):
        ww = None if w is None else w**power
        # F[seg, s, o]: deals whose furthest stage is s, by outcome
        has = furthest >= 0
        F = np.bincount(
            (seg[has] * S + furthest[has]) * N_OUT + outcome[has],
            weights=None if ww is None else ww[has],
            minlength=n_seg * S * N_OUT,
        ).reshape(n_seg, S, N_OUT)
        if skips == "implied":
            E = np.flip(np.cumsum(np.flip(F, axis=1), axis=1), axis=1)  # furthest >= s
            won_w = (outcome == V.WON).astype(float) if ww is None else (outcome == V.WON) * ww
            won_all = np.bincount(seg, weights=won_w, minlength=n_seg)
            E[:, :, V.WON] = won_all[:, None]
        else:
            first = v.visit == 1
            d = v.deal[first]
            E = np.bincount(
                (seg[d] * S + v.stage[first]) * N_OUT + outcome[d],
                weights=None if ww is None else ww[d],
                minlength=n_seg * S * N_OUT,
            ).reshape(n_seg, S, N_OUT)
        blocks[power] = (E, F)
    E, F = blocks[1]
    E2, F2 = blocks[2]
    reached = E.sum(axis=2)
    dropped = F[:, :, V.LOST] + F[:, :, V.STALE]
    open_ = F[:, :, V.OPEN]
    advanced = reached - dropped - open_
    adv2 = E2.sum(axis=2) - F2[:, :, V.LOST] - F2[:, :, V.STALE] - F2[:, :, V.OPEN]
    drop2 = F2[:, :, V.LOST] + F2[:, :, V.STALE]
    resolved = advanced + dropped
    with np.errstate(invalid="ignore", divide="ignore"):
        conversion = advanced / resolved
        n_eff = resolved**2 / (adv2 + drop2)
        conversion_raw = advanced / reached
        won_r = E[:, :, V.WON]
        win_rate_from = won_r / (won_r + E[:, :, V.LOST] + E[:, :, V.STALE])
    if w is None:
        n_eff = resolved.astype(float)
    low, high = _stats.wilson(advanced, n_eff, p=conversion)
    cumulative = np.ones_like(conversion, dtype=float)
    if S > 1:
        cumulative[:, 1:] = np.cumprod(conversion[:, :-1], axis=1)
    seg_idx = np.repeat(np.arange(n_seg), S)
    out = expand(labels, seg_idx, by_cols)
    dtype = np.float64 if w is not None else np.int64
    out["stage"] = np.tile(np.array(log.stages, dtype=object), n_seg).astype(str)
    out["reached"] = reached.reshape(-1).astype(dtype)
    out["advanced"] = advanced.reshape(-1).astype(dtype)
    out["dropped"] = dropped.reshape(-1).astype(dtype)
    out["open"] = open_.reshape(-1).astype(dtype)
    out["conversion"] = conversion.reshape(-1)
    out["conversion_low"] = low.reshape(-1)
    out["conversion_high"] = high.reshape(-1)
    out["conversion_raw"] = conversion_raw.reshape(-1)
    out["cumulative"] = cumulative.reshape(-1)
    out["win_rate_from"] = win_rate_from.reshape(-1)
    out["skips"] = skips
    out["weight"] = "deals" if w is None else "amount"
    return out
