"""Dwell time per stage from the Kaplan–Meier estimator (DESIGN §3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from . import _stats
from ._columns import NAT
from ._memory import hot_path
from ._segments import expand, is_visit_level, normalize_by, path_segments, segments
from .errors import InvalidParameterError
from .transitions import to_timedelta

if TYPE_CHECKING:
    from .log import EventLog


def km_table(group, dur_ns, censored, n_groups) -> dict[str, np.ndarray]:
    """Kaplan–Meier summary per group with durations in ns."""
    return _stats.kaplan_meier(group, dur_ns, censored.astype(np.int64), n_groups)


@hot_path
def dwell(
    log: EventLog,
    *,
    by=None,
    visits: Literal["all", "first", "repeat"] = "all",
    calendar=None,
) -> pd.DataFrame:
    if visits not in ("all", "first", "repeat"):
        raise InvalidParameterError(
            f"`visits` must be 'all', 'first' or 'repeat'; got {visits!r}."
        )
    by_cols = normalize_by(by)
    S = log._n_stages
    v = log._visits(calendar)
    if is_visit_level(log, by_cols):
        pseg, labels = path_segments(log, by_cols)
        seg_of_visit = pseg[v.path_index]
    else:
        seg, labels = segments(log, by_cols)
        seg_of_visit = seg[v.deal]
    n_seg = len(labels)
    keep = v.dwell != NAT
    if visits == "first":
        keep &= v.visit == 1
    elif visits == "repeat":
        keep &= v.visit > 1
    group = seg_of_visit[keep].astype(np.int64, copy=False)
    group *= S
    group += v.stage[keep]
    km = km_table(group, v.dwell[keep], v.censored[keep], n_seg * S)
    out = expand(labels, np.repeat(np.arange(n_seg), S), by_cols)
    out["stage"] = np.tile(np.array(log.stages, dtype=object), n_seg).astype(str)
    out["visits"] = km["n"].astype(np.int64)
    out["censored"] = km["censored"].astype(np.int64)
    out["mean"] = to_timedelta(km["mean"]).to_numpy()
    out["median"] = to_timedelta(km["q50"]).to_numpy()
    out["p75"] = to_timedelta(km["q75"]).to_numpy()
    out["p90"] = to_timedelta(km["q90"]).to_numpy()
    for col, key in _stats.CI_COLUMNS:
        out[col] = to_timedelta(km[key]).to_numpy()
    return out
