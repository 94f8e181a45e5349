"""The funnel's competing-risks clock on a partitioned log, sharded by stage (DESIGN §7).

The conversion and the win rate are Aalen–Johansen estimates over one subject per deal
and stage reached (:func:`funnelkit.funnel.log_subjects`). Their times are durations in
nanoseconds, nearly all distinct, so the subjects do not shrink when they are counted:
merged over partitions they are as large as the log itself — far too large for one
worker (issue 16: a 1M-deal summary carried 1.7 GiB of them). So they never meet in one
place:

1. each partition of whole deals turns its deals into subjects and splits them by stage
   (:func:`subjects_by_stage`), each subject coded by its group (segment × stages + stage);
2. one task per stage gathers that stage's subjects from every partition and computes
   the estimates there (:func:`clock_stage`) — the largest task holds one stage's
   subjects, at most one per deal, as compact arrays;
3. only the estimates travel on: a few numbers per group, put together by
   :func:`gather`.

The estimates are the in-memory functions run on the same subjects (ties and sums in a
different order aside), so they equal the in-memory ones to rounding.

Plain numpy and pandas: nothing here knows about dask. ``funnelkit.dask`` drives it
(:meth:`funnelkit.dask.DaskEventLog._clock`); the partitions' side is
:func:`funnelkit._summary.clock_part`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._segments import seg_columns, segment_codes

if TYPE_CHECKING:
    from ._summary import Layout, SegmentCoder
    from .log import EventLog

#: rows of replicated subjects per Aalen–Johansen call for the segments' rests
REST_CHUNK = 5_000_000


@dataclass(frozen=True)
class ClockSpec:
    """Which subjects, grouped how.

    ``coder`` the segments (None: one group per stage); ``period_ns`` groups the deals
    by the side of a period instead (0 = created before, 1 = at or after); ``skips`` the
    funnel's skip rule; ``weighted`` weights each subject by its deal's amount; ``win``
    adds the win clock (the funnel and the incidence curves need it); ``rest_without``
    a segment whose deals are in no segment's rest (the deals without a value of a
    one-attribute coder: ``drivers`` compares a value with the other values);
    ``within`` a conversion window per stage in ns (int64 max: none; None: no window at
    all) and ``calendar`` the business calendar it is counted on (None: the log's) —
    with a window the subjects and the funnel's counts come from each deal's window
    status (:func:`funnelkit.funnel.stage_status`), and each stage's piece carries its
    counts (product ``counts``).
    """

    coder: SegmentCoder | None = None
    period_ns: int | None = None
    skips: str = "implied"
    weighted: bool = False
    win: bool = True
    rest_without: int | None = None
    within: tuple[int, ...] | None = None
    calendar: Any = None

    @property
    def n_segments(self) -> int:
        if self.period_ns is not None:
            return 2
        return 1 if self.coder is None else len(self.coder)


_FIELDS = ("g", "t_adv", "c_adv", "t_win", "c_win", "w")


def _empty() -> dict[str, np.ndarray]:
    z = np.zeros(0, dtype=np.int64)
    return {
        "g": z.astype(np.int32),
        "t_adv": z,
        "c_adv": z.astype(np.int8),
        "t_win": z,
        "c_win": z.astype(np.int8),
        "w": np.zeros(0),
    }


def subjects_by_stage(
    log: EventLog | None, lay: Layout, spec: ClockSpec
) -> tuple[dict[str, np.ndarray], ...]:
    """One partition's subjects of the clock (``log``: its deals in the global stage
    order; None without any), one piece per stage: group (int32: segment × stages +
    stage), the conversion clock's time and cause, the win clock's (when ``spec.win``),
    and the weight (when ``spec.weighted``)."""
    from .funnel import competing_subjects, log_subjects, stage_status

    S = len(lay.stages)
    if log is None or S == 0:
        return tuple(_empty() for _ in range(S))
    st = None
    if spec.within is None:
        sub = log_subjects(log, spec.skips)
    else:
        within = window_dict(lay.stages, spec.within)
        st = stage_status(log, spec.skips, within, spec.calendar)
        sub = competing_subjects(log, st, within, spec.calendar)
    if spec.period_ns is not None:
        grp = (log._first_ns >= spec.period_ns).astype(np.int64)
    elif spec.coder is not None and spec.coder.by:
        local, labels = segment_codes(log, list(spec.coder.by))
        n_local = int(local.max()) + 1 if local.size else 0
        own = pd.DataFrame(seg_columns(labels, np.arange(n_local)))
        grp = spec.coder.codes(own)[local] if n_local else local
    else:
        grp = np.zeros(log.n_deals, dtype=np.int64)
    stage = sub.stage.astype(np.int64)
    g = (grp[sub.deal] * S + stage).astype(np.int32)
    w = np.zeros(0)
    w_deal = None
    if spec.weighted and log._amount is not None:
        w_deal = np.nan_to_num(np.asarray(log._amount, dtype=np.float64), nan=0.0)
        w = w_deal[sub.deal]
    order = np.argsort(stage, kind="stable")
    bounds = np.searchsorted(stage[order], np.arange(S + 1))
    cols = {
        "g": g,
        "t_adv": sub.t_adv.astype(np.int64),
        "c_adv": sub.c_adv.astype(np.int8),
        "t_win": sub.t_win.astype(np.int64) if spec.win else np.zeros(0, dtype=np.int64),
        "c_win": sub.c_win.astype(np.int8) if spec.win else np.zeros(0, dtype=np.int8),
        "w": w,
    }
    counts = None
    if st is not None:  # the window's counts per segment × stage, this partition's deals
        from .funnel import SUM_KEYS, status_sums

        n_seg = spec.n_segments
        key = grp[:, None] * S + np.arange(S)[None, :]
        sums = status_sums(st, log._outcome, key, n_seg * S, w_deal)
        counts = np.stack([sums[k].reshape(n_seg, S) for k in SUM_KEYS])  # (keys, seg, S)
    pieces = []
    for s in range(S):  # loop over stages: one piece each
        idx = order[bounds[s] : bounds[s + 1]]
        piece = {k: (v[idx] if v.size else v) for k, v in cols.items()}
        if counts is not None:
            piece["counts"] = counts[:, :, s]
            piece["stage"] = np.array([s])
        pieces.append(piece)
    return tuple(pieces)


def window_dict(stages: Sequence[str], within: Sequence[int]) -> dict[str, pd.Timedelta]:
    """``within`` per stage in ns (:attr:`ClockSpec.within`) as the dict
    :func:`funnelkit.funnel.stage_windows` reads back (stages without a window left
    out)."""
    big = np.iinfo(np.int64).max
    pairs = zip(stages, within, strict=True)
    return {s: pd.Timedelta(int(ns), unit="ns") for s, ns in pairs if ns != big}


def _concat(
    pieces: Sequence[dict[str, np.ndarray]], fields: Sequence[str]
) -> dict[str, np.ndarray]:
    empty = _empty()
    if not pieces:
        return {k: empty[k] for k in fields}
    return {k: np.concatenate([p[k] for p in pieces]) for k in fields}


def tasks(products: Sequence[str]) -> list[tuple[str, ...]]:
    """The products of :func:`clock_stage` calls, per stage, that answer ``products``:
    the funnel's two clocks in two tasks (``aj_adv`` with the other products, ``aj_win``
    alone), so that a task holds one clock's subjects of one stage."""
    if "funnel" not in products:
        return [tuple(products)]
    rest = tuple(p for p in products if p != "funnel")
    return [("aj_adv", *rest), ("aj_win",)]


def clock_stage(
    pieces: Sequence[dict[str, np.ndarray]],
    lay: Layout,
    spec: ClockSpec,
    products: Sequence[str],
) -> dict[str, Any]:
    """The estimates of one stage from its subjects in every partition.

    Products (each over all ``segments × stages`` groups, of which only this stage's
    entries are filled, unless said otherwise):

    ``aj_adv``, ``aj_win``  the conversion and the win clock's Aalen–Johansen estimates
                    (:func:`funnelkit.funnel.clock_estimate`; :func:`gather` combines
                    them into ``funnel``, :func:`funnelkit.funnel.competing_estimates`;
                    :func:`tasks` asks for them in two tasks);
    ``conversion``  :func:`funnelkit.funnel.conversion_estimates` per group;
    ``whole``       the same with every segment as one (arrays over stages);
    ``rest``        the same for each segment's rest (all other segments' subjects, but
                    those of ``spec.rest_without``);
    ``subjects``    subjects per group (weighted when ``spec.weighted``), an array;
    ``incidence``   the incidence curves of :func:`funnelkit.funnel.incidence_table`
                    (a frame, with the group in column ``_g``);
    ``rows``        the subjects themselves: group, the conversion clock's time and cause
                    (``g``, ``t_adv``, ``c_adv``; :func:`gather` puts the stages' together)
                    — for a model that needs every deal of a stage in one process.
    """
    from .funnel import ADV_KEYS, clock_estimate, conversion_estimates, incidence_table
    from .monitoring import complement_rows

    wins = {"aj_win", "incidence"} & set(products)
    advs = set(products) - {"aj_win"}
    fields = ["g", *(["t_adv", "c_adv"] if advs else []), *(["t_win", "c_win"] if wins else [])]
    x = _concat(pieces, [*fields, *(["w"] if spec.weighted else [])])
    S = max(len(lay.stages), 1)
    G = spec.n_segments * len(lay.stages)
    g = x.pop("g").astype(np.int64)
    w = x.pop("w") if spec.weighted else None
    out: dict[str, Any] = {}
    if advs:
        adv = (g, x["t_adv"], x["c_adv"], w, None)
    if wins:
        win = (g, x["t_win"], x["c_win"], w, None)
    if "aj_adv" in products:
        out["aj_adv"] = clock_estimate(adv, G)
    if "aj_win" in products:
        out["aj_win"] = clock_estimate(win, G)
    if "conversion" in products:
        out["conversion"] = conversion_estimates(adv, G, lay.stale_after_ns)
    if "whole" in products:
        out["whole"] = conversion_estimates((g % S, *adv[1:]), S, lay.stale_after_ns)
    if "rest" in products:
        n_seg = spec.n_segments
        seg, stg, t, c, wr = g // S, g % S, x["t_adv"], x["c_adv"], w
        if spec.rest_without is not None:
            keep = seg != spec.rest_without
            seg, stg, t, c = seg[keep], stg[keep], t[keep], c[keep]
            wr = None if w is None else w[keep]
        parts = [
            conversion_estimates(
                (group, t[idx], c[idx], None if wr is None else wr[idx], None),
                k * S,
                lay.stale_after_ns,
            )
            for k, idx, group in complement_rows(seg, stg, n_seg, S, REST_CHUNK)
        ]
        out["rest"] = {k: np.concatenate([p[k] for p in parts]) for k in ADV_KEYS}
    if "subjects" in products:
        out["subjects"] = np.bincount(g, weights=w, minlength=G).astype(np.float64)
    if "rows" in products:
        out["rows"] = {"g": g, "t_adv": x["t_adv"], "c_adv": x["c_adv"]}
    if "counts" in products:
        out["counts"] = _stage_counts(pieces, spec.n_segments, S)
    if "incidence" in products:
        labels = spec.coder.labels() if spec.coder is not None else pd.DataFrame(index=[0])
        by = list(spec.coder.by) if spec.coder is not None else []
        curves = incidence_table(
            list(lay.stages),
            labels,
            by,
            (g, x["t_adv"], x["c_adv"], None),
            (g, x["t_win"], x["c_win"], None),
            group_column="_g",
        )
        out["incidence"] = curves
    return out


def _stage_counts(
    pieces: Sequence[dict[str, np.ndarray]], n_seg: int, S: int
) -> dict[str, np.ndarray]:
    """The window's funnel sums of one stage over every partition's piece, as arrays over
    all ``segments × stages`` groups (this stage's entries filled)."""
    from .funnel import SUM_KEYS

    out = np.zeros((len(SUM_KEYS), n_seg * S))
    mine = [p for p in pieces if "counts" in p]
    if mine:
        s = int(mine[0]["stage"][0])
        out[:, np.arange(n_seg) * S + s] = np.sum([p["counts"] for p in mine], axis=0)
    return dict(zip(SUM_KEYS, out, strict=True))


def gather(
    done: Sequence[Sequence[dict[str, Any]]],
    lay: Layout,
    spec: ClockSpec,
    products: Sequence[str],
) -> dict[str, Any]:
    """The answer to ``products`` from the :func:`clock_stage` results of the
    :func:`tasks` of every stage (``done``: per stage, its tasks' results): each group's
    entries from the tasks of its stage; the two clocks combined into ``funnel``. A log
    without stages gets the products of no subjects."""
    from ._competing import AJ
    from .funnel import combine_estimates

    S = len(lay.stages)
    if not done:
        done = [[clock_stage([], lay, spec, t) for t in tasks(products)]]
    results = [{k: v for r in stage for k, v in r.items()} for stage in done]
    out: dict[str, Any] = {}
    G = spec.n_segments * S
    stage_of = np.arange(G) % max(S, 1)
    for name, first in results[0].items():
        if name == "incidence":
            cat = pd.concat([r[name] for r in results[:S]] or [first], ignore_index=True)
            cat = cat.sort_values("_g", kind="stable").drop(columns="_g")
            out[name] = cat.reset_index(drop=True)
        elif name == "rows":
            out[name] = {k: np.concatenate([r[name][k] for r in results]) for k in first}
        elif name == "whole":
            out[name] = {k: np.array([results[s][name][k][s] for s in range(S)]) for k in first}
        elif isinstance(first, dict):
            out[name] = {k: _pick([r[name][k] for r in results], stage_of) for k in first}
        elif isinstance(first, AJ):
            picked = {
                f.name: _pick([getattr(r[name], f.name) for r in results], stage_of)
                for f in dataclasses.fields(first)
                if getattr(first, f.name) is not None
            }
            out[name] = dataclasses.replace(first, **picked)
        else:
            out[name] = _pick([r[name] for r in results], stage_of)
    if "aj_adv" in out and "aj_win" in out:
        a, b = out.pop("aj_adv"), out.pop("aj_win")
        horizon = None
        if spec.within is not None:
            horizon = np.asarray(spec.within, dtype=np.int64)[stage_of].astype(np.float64)
        out["funnel"] = combine_estimates(a, b, G, level_after=lay.stale_after_ns, horizon=horizon)
    return out


def _pick(arrays: list[np.ndarray], stage_of: np.ndarray) -> np.ndarray:
    """Per group the value from the array of its stage."""
    stacked = np.stack([np.asarray(a) for a in arrays])
    return stacked[stage_of, np.arange(stage_of.size)]
