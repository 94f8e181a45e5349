"""Time in stage: dwell distributions and Kaplan–Meier "still in stage" curves."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._params import CHECKED_INSIDE, TITLE, Interval, validate_params
from ..errors import InvalidParameterError
from . import _style as S

if TYPE_CHECKING:
    from matplotlib.axes import Axes

VISIT_COLUMNS = ["stage", "dwell", "censored"]


def _visits(data: Any, extra: Sequence[str] = ()) -> tuple[pd.DataFrame, list[Any]]:
    """Visits with a dwell (stale visits dropped), ``days`` as floats; the stage order."""
    table, log = S.table_or_log(
        data,
        required=VISIT_COLUMNS + list(extra),
        compute=lambda lg: lg.visits(),
        what="a visits table (log.visits())",
    )
    stages = list(log.stages) if log is not None else S.ordered_unique(table["stage"])
    cols = ["stage", "dwell", "censored", *extra]
    if "deal" in table.columns and "deal" not in cols:
        cols.append("deal")
    v = table.loc[:, cols].copy()
    v["days"] = S.to_days(v["dwell"])
    v = v.loc[np.isfinite(v["days"].to_numpy())]
    v["censored"] = v["censored"].astype(bool)
    v["stage"] = v["stage"].astype(object)
    return v, stages


#: a Kaplan–Meier curve with more steps is drawn through fewer (see ``_thin_steps``)
MAX_STEPS = 4000
#: censoring ticks drawn per curve at most (evenly spaced among the censoring times)
MAX_TICKS = 500


def _thin_steps(x: np.ndarray, y: np.ndarray, levels: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """A decreasing step curve with at most ``levels`` + 2 steps, off by under 1/``levels``.

    Keeps the first point of each band of height 1/``levels`` (and the last point), so the
    drawn curve is never more than 0.05 percentage points from the estimate (by default)
    — invisible — while a curve over a million visits no longer costs a million vertices
    in every PNG and SVG. Curves with at most :data:`MAX_STEPS` points are left whole."""
    if x.size <= MAX_STEPS:
        return x, y
    band = np.floor(np.asarray(y) * levels)
    keep = np.ones(x.size, dtype=bool)
    keep[1:] = band[1:] != band[:-1]
    keep[-1] = True
    return x[keep], y[keep]


def km_quantile(t: np.ndarray, s: np.ndarray, q: float) -> float:
    """Smallest time with S(t) <= 1 - q (+1e-9, DESIGN §3); NaN when S stays above."""
    hit = np.flatnonzero(s <= 1.0 - q + 1e-9)
    return float(t[hit[0]]) if hit.size else float("nan")


def km_median_ci(g: pd.DataFrame) -> tuple[float, float]:
    """95% interval (days) of the Kaplan–Meier median of visits ``g`` — the numbers of
    ``log.dwell()``'s ``median_low`` / ``median_high`` (the same function,
    :func:`funnelkit._stats.kaplan_meier`, on the same nanoseconds)."""
    from .. import _stats

    dw = g["dwell"]
    if pd.api.types.is_timedelta64_dtype(dw.dtype):
        ns = pd.to_timedelta(dw).to_numpy().astype("timedelta64[ns]").astype(np.int64)
    else:
        ns = np.rint(g["days"].to_numpy() * 86_400e9).astype(np.int64)
    c = g["censored"].to_numpy().astype(np.int64)
    km = _stats.kaplan_meier(np.zeros(ns.size, dtype=np.int64), ns, c, 1, quantiles=(0.5,))
    return float(km["q50_low"][0]) / 86_400e9, float(km["q50_high"][0]) / 86_400e9


def _ci_text(low: float, high: float) -> str:
    hi = S.duration(high) if np.isfinite(high) else "undefined"
    return f"95% CI {S.duration(low)}–{hi}" if np.isfinite(low) else "95% CI undefined"


def _scale(days: np.ndarray, logscale: bool | None) -> tuple[bool, float]:
    use_log = S.auto_log(days) if logscale is None else bool(logscale)
    return use_log, S.log_floor(days) if use_log else 0.0


@S.chart
@validate_params(
    {
        "data": [CHECKED_INSIDE],
        "ax": ["axes", None],
        "title": TITLE,
        "kwargs": [CHECKED_INSIDE],
        "logscale": ["boolean", None],
        "max_points": [Interval(Integral, 1, None)],
        "seed": [Interval(Integral, 0, None)],
    }
)
def dwell(
    data: Any,
    *,
    ax: Axes | None = None,
    logscale: bool | None = None,
    max_points: int = 1500,
    seed: int = 0,
    title: str | None = "Time in stage",
    **kwargs: Any,
) -> Axes:
    """Dwell distribution per stage, with the Kaplan–Meier median and p90 marked.

    One row per stage (first at the top): every completed visit is a dot on a days axis,
    visits still in the stage at ``as_of`` (censored: their dwell is a lower bound) are
    hollow orange rings, and the Kaplan–Meier median (diamond) and p90 (bar) — the
    numbers of ``log.dwell()``, which account for censoring — are marked and written on
    the right, the median with its 95% interval (a grey band: ``median_low`` to
    ``median_high``; open to the right edge when the upper end is undefined). Stale
    visits have no dwell and are left out.

    Parameters
    ----------
    data : EventLog or pandas.DataFrame
        An event log, or a visits table from ``log.visits()`` (columns ``stage``,
        ``dwell``, ``censored``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure sized for the number of stages.
    logscale : bool, optional
        Log days axis. Default: when dwell spreads widely (p95 / p25 > 20 or max /
        median > 10); zero dwells then sit at the left edge.
    max_points : int, default 1500
        At most this many completed (and as many censored) visits per stage are drawn
        (a seeded random sample); the median and p90 always use every visit.
    seed : int, default 0
        Seed of that sample and of the vertical jitter.
    title : str, default "Time in stage"
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.scatter` for the completed visits.

    Returns
    -------
    matplotlib.axes.Axes
        Dots carry the gid ``"dwell-completed"`` / ``"dwell-censored"``, the markers
        ``"dwell-median"`` / ``"dwell-p90"`` (one point per stage, in funnel order); the
        median's interval is one rectangle per stage with a defined lower end, gid
        ``"dwell-median-ci"``, spanning ``median_low`` to ``median_high`` (to the axis'
        right edge when that is undefined).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> ax = fk.plot.dwell(log, logscale=True)
    >>> ax.get_xscale()
    'log'
    >>> ax.get_title()
    'Time in stage'
    """
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    _, kwargs = S.split_kwargs("dwell", data, kwargs, None)
    v, stages = _visits(data)
    n = len(stages)
    if n == 0:
        raise ValueError("The visits table is empty: no stage to draw.")
    days_all = v["days"].to_numpy()
    use_log, floor = _scale(days_all, logscale)
    ax = S.new_axes(ax, (10.5, 1.9 + 0.55 * max(n, 3)))
    rng = np.random.default_rng(seed)
    y_of = {s: float(n - 1 - i) for i, s in enumerate(stages)}
    trans = blended_transform_factory(ax.transAxes, ax.transData)
    sc_kw: dict[str, Any] = {"s": 9, "color": S.BAR, "linewidths": 0}
    sc_kw.update(kwargs)
    med, p90 = np.full(n, np.nan), np.full(n, np.nan)
    med_lo, med_hi = np.full(n, np.nan), np.full(n, np.nan)
    groups = dict(list(v.groupby("stage", sort=False)))
    for i, s in enumerate(stages):
        g = groups.get(s)
        y0 = y_of[s]
        if g is None or g.empty:
            ax.text(1.01, y0, "no visits", transform=trans, va="center", color=S.MUTED)
            continue
        d = g["days"].to_numpy()
        c = g["censored"].to_numpy()
        t, surv = S.km_curve(d, c)
        med[i], p90[i] = km_quantile(t, surv, 0.5), km_quantile(t, surv, 0.9)
        med_lo[i], med_hi[i] = km_median_ci(g)
        # completed and censored visits are sampled separately: the few open ones all show
        parts = []
        for sel in (np.flatnonzero(~c), np.flatnonzero(c)):
            if sel.size > max_points:
                sel = np.sort(rng.choice(sel, max_points, replace=False))
            parts.append(sel)
        idx = np.concatenate(parts)
        dd, cc = np.maximum(d[idx], floor), c[idx]
        jit = rng.uniform(-0.28, 0.28, idx.size)
        alpha = float(np.clip(12 / np.sqrt(max(idx.size, 1)), 0.12, 0.6))
        ax.scatter(dd[~cc], y0 + jit[~cc], alpha=alpha, gid="dwell-completed", **sc_kw)
        if cc.any():
            ax.scatter(
                dd[cc],
                y0 + jit[cc],
                s=22,
                facecolors="none",
                edgecolors=S.CENSORED,
                linewidths=1.1,
                gid="dwell-censored",
                zorder=3,
            )
        n_open = int(c.sum())
        note = f"median {S.duration(med[i])} ({_ci_text(med_lo[i], med_hi[i])})"
        note += f"  ·  p90 {S.duration(p90[i])}\n{len(d):,} visits"
        note += f", {n_open:,} still open" if n_open else ""
        ax.text(
            1.015,
            y0,
            note,
            transform=trans,
            ha="left",
            va="center",
            fontsize=S.SMALL_SIZE,
            color=S.TEXT,
            linespacing=1.3,
        )
    ys = np.array([y_of[s] for s in stages])
    for k in range(n):
        if np.isfinite(med[k]) and np.isfinite(p90[k]):
            ax.plot(
                [max(med[k], floor), max(p90[k], floor)], [ys[k], ys[k]], color="black", lw=1.6
            )
    ok = np.isfinite(med)
    ax.scatter(
        np.maximum(med[ok], floor),
        ys[ok],
        marker="D",
        s=55,
        color="black",
        edgecolors="white",
        linewidths=1,
        zorder=5,
        gid="dwell-median",
    )
    ok = np.isfinite(p90)
    ax.scatter(
        np.maximum(p90[ok], floor),
        ys[ok],
        marker="|",
        s=260,
        color="black",
        linewidths=2.4,
        zorder=5,
        gid="dwell-p90",
    )
    # axes
    hi = float(np.nanmax(days_all)) if days_all.size else 1.0
    if use_log:
        zero = floor if (days_all <= 0).any() else None
        S.days_axis(ax, "x", floor / 1.6, hi * 1.6, zero_at=zero)
        xlab = "Time in stage (log scale; d = days)"
    else:
        ax.set_xlim(0, hi * 1.03)
        xlab = "Time in stage (days)"
    ax.set_ylim(-0.6, n - 0.4)
    from matplotlib.patches import Rectangle

    right = ax.get_xlim()[1]
    for k in range(n):  # the median's 95% interval, behind the markers
        if np.isfinite(med_lo[k]):
            x0 = max(med_lo[k], floor)
            x1 = max(med_hi[k], floor) if np.isfinite(med_hi[k]) else right
            band = Rectangle(
                (x0, ys[k] - 0.2), x1 - x0, 0.4, color="black", alpha=0.25, lw=0, zorder=4
            )
            band.set_gid("dwell-median-ci")
            ax.add_patch(band)
    ax.set_yticks(ys, [S.wrap(s) for s in stages])
    S.style_axes(ax, grid="x")
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)
    S.label(ax, x=xlab)
    handles = [
        Line2D([], [], ls="", marker="o", ms=5, color=S.BAR, alpha=0.6, label="completed visit"),
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            ms=6,
            markerfacecolor="none",
            markeredgecolor=S.CENSORED,
            label="still in stage (censored)",
        ),
        Line2D([], [], ls="", marker="D", ms=7, color="black", label="median (Kaplan–Meier)"),
        Line2D([], [], ls="", marker="s", ms=9, color="black", alpha=0.25, label="95% CI"),
        Line2D([], [], ls="", marker="|", ms=13, mew=2.4, color="black", label="p90"),
    ]
    ax.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=5,
        frameon=False,
        fontsize=S.SMALL_SIZE,
        borderaxespad=0.2,
    )
    S.titles(
        ax,
        title,
        "One dot per visit; median (with its 95% CI, Brookmeyer–Crowley) and p90 from the\n"
        "Kaplan–Meier estimator, which counts open visits as censored",
        extra_pad=18,
    )
    return ax


@S.chart
@validate_params(
    {
        "data": [CHECKED_INSIDE],
        "ax": ["axes", None],
        "title": TITLE,
        "kwargs": [CHECKED_INSIDE],
        "stage": [CHECKED_INSIDE],
        "by": [str, None],
        "logscale": ["boolean", None],
    }
)
def survival(
    data: Any,
    *,
    stage: Any = None,
    by: str | None = None,
    ax: Axes | None = None,
    logscale: bool | None = None,
    title: str | None = None,
    **kwargs: Any,
) -> Axes:
    """Kaplan–Meier "still in stage" curves: per stage, or per segment for one stage.

    Each curve is the Kaplan–Meier estimate of the share of visits still in the stage
    after *t* days, visits still open at ``as_of`` censored (small vertical ticks; at most
    500 per curve, evenly spaced). A curve of more than 4,000 steps is drawn through
    fewer, never more than 0.05 percentage points from the estimate.
    Where a curve crosses the dotted 50% line is the median dwell of ``log.dwell()``; a
    bar in the curve's colour spans its 95% interval (``median_low`` to ``median_high``;
    to the axis' right edge when the upper end is undefined): on the line for one curve,
    stacked just below it in draw order for several.

    Parameters
    ----------
    data : EventLog or pandas.DataFrame
        An event log, or a visits table from ``log.visits()`` (columns ``stage``,
        ``dwell``, ``censored``; plus the ``by`` column when given).
    stage : str or list of str, optional
        Stage(s) to draw; default every stage.
    by : str, optional
        A carried attribute: one curve per segment for the one ``stage`` given (the deal's
        segment from ``log.deals()``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure.
    logscale : bool, optional
        Log days axis. Default: when dwell spreads widely (p95 / p25 > 20 or max /
        median > 10).
    title : str, optional
        Default "Still in stage" (with the stage name for one stage).
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.step` for every curve.

    Returns
    -------
    matplotlib.axes.Axes
        One line per curve with gid ``"km-curve"`` and the curve's name as label, in
        draw order; its points are (0, 1) followed by (t, S(t)) at each event time. The
        median intervals are lines with gid ``"km-median-ci"`` (x = low, high), one per
        curve with a defined lower end, in the same order.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> ax = fk.plot.survival(log, stage="Proposal", by="team")
    >>> [line.get_label() for line in ax.lines if line.get_gid() == "km-curve"]
    ['Team A', 'Team B', 'Team C']
    >>> ax.get_title()
    'Still in stage: Proposal'
    """
    _, kwargs = S.split_kwargs("survival", data, kwargs, None, taken=["by"])
    extra = [by] if (by is not None and not S.is_log(data)) else []
    v, stages = _visits(data, extra)
    if stage is None:
        chosen = stages
    else:
        chosen = S.stage_names(stages, [stage] if isinstance(stage, str) else stage, "stage")
    if by is not None:
        if len(chosen) != 1:
            raise InvalidParameterError(
                f"`by`={by!r} draws one curve per segment of one stage; pass stage=... "
                f"(one of {stages})."
            )
        if S.is_log(data):
            if by not in data.attrs:
                raise InvalidParameterError(
                    f"`by`={by!r} is not a carried attribute of this log; carried: "
                    f"{data.attrs}. Pass attrs=[...] when building the EventLog."
                )
            segment = data.deals().set_index("deal")[by]
            v[by] = segment.reindex(v["deal"].to_numpy()).to_numpy()
        v = v.loc[v["stage"] == chosen[0]]
        keys = sorted(S.ordered_unique(v[by].dropna()), key=str)
        curves = [(str(k), v.loc[v[by] == k]) for k in keys]
        if v[by].isna().any():
            curves.append(("(missing)", v.loc[v[by].isna()]))
    else:
        curves = [(str(s), v.loc[v["stage"] == s]) for s in chosen]
    use_log, floor = _scale(v["days"].to_numpy(), logscale)
    many = len(curves) > 6
    ax = S.new_axes(ax, (10.5, 5.6))
    hi = float(v["days"].max()) if len(v) else 1.0
    drawn = []
    cis: list[tuple[Any, float, float]] = []
    for k, (name, g) in enumerate(curves):
        style = S.series_style(k)
        t, surv = S.km_curve(g["days"].to_numpy(), g["censored"].to_numpy())
        x = np.concatenate(([floor], np.maximum(t, floor)))
        y = np.concatenate(([1.0], surv))
        last = float(g["days"].max()) if len(g) else 0.0
        if last > x[-1]:  # carry the last level on to the curve's largest observation
            x, y = np.append(x, max(last, floor)), np.append(y, y[-1])
        kw: dict[str, Any] = {"where": "post", "color": style["color"], "linewidth": 2.0}
        kw["linestyle"] = style["linestyle"]
        kw.update(kwargs)
        x, y = _thin_steps(x, y)
        (line,) = ax.step(x, y, label=name, **kw)
        line.set_gid("km-curve")
        drawn.append((line, f"{S.wrap(name, 24)}  ({len(g):,})"))
        if len(g):
            cis.append((line.get_color(), *km_median_ci(g)))
        cens = g.loc[g["censored"], "days"].to_numpy()
        if cens.size > MAX_TICKS:  # evenly spaced among the sorted censoring times
            cens = np.sort(cens)[np.linspace(0, cens.size - 1, MAX_TICKS).round().astype(int)]
        if cens.size:
            ax.plot(
                np.maximum(cens, floor),
                S.step_at(t, surv, cens),
                ls="",
                marker="|",
                ms=7,
                mew=1.2,
                color=line.get_color(),
                gid="km-censor",
            )
    ax.axhline(0.5, color=S.NEUTRAL, linestyle=":", linewidth=1.2, zorder=1)
    if use_log:
        zero = floor if (v["days"] <= 0).any() else None
        S.days_axis(ax, "x", floor / 1.3, hi * 1.3, zero_at=zero)
        xlab = "Time in stage (log scale; d = days)"
    else:
        ax.set_xlim(0, hi * 1.02)
        xlab = "Time in stage (days)"
    ax.set_ylim(-0.02, 1.03)
    right = ax.get_xlim()[1]
    for k, (color, lo, hi_ci) in enumerate(cis):  # the medians' 95% intervals
        if np.isfinite(lo):
            x1 = max(hi_ci, floor) if np.isfinite(hi_ci) else right
            y_ci = 0.5 - 0.018 * (k + 1) if len(cis) > 1 else 0.5
            ax.plot(
                [max(lo, floor), x1],
                [y_ci, y_ci],
                color=color,
                lw=4,
                alpha=0.45,
                solid_capstyle="butt",
                gid="km-median-ci",
                zorder=2,
            )
    S.percent_axis(ax, "y")
    S.style_axes(ax, grid="both")
    S.label(ax, x=xlab, y="Still in stage")
    ax.legend(
        [d[0] for d in drawn],
        [d[1] for d in drawn],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=S.SMALL_SIZE if many else S.ANNOT_SIZE,
        title=f"{S.esc(by)} (visits)" if by is not None else "stage (visits)",
        title_fontsize=S.ANNOT_SIZE,
    )
    if title is None:
        title = "Still in stage" + (f": {S.esc(chosen[0])}" if len(chosen) == 1 else "")
    S.titles(
        ax,
        title,
        "Kaplan–Meier estimate; ticks mark visits still open at the observation time\n"
        "(censored); a curve crosses the dotted line at its median dwell; bars at the line\n"
        "in the curve's colour: that median's 95% CI (Brookmeyer–Crowley)",
    )
    return ax
