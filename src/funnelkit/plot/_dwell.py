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


# ---------------------------------------------------------------------------- room
# Helpers that keep a chart inside the Axes it is given (issue 20, item 1): legends,
# text columns and count rows go into strips of the Axes that the data limits leave
# free. Shared with ``_incidence``; candidates for ``_style``.
def _slack(ax: Axes) -> float:
    """How much a strip measured now may grow relative to the Axes: a layout engine
    (``layout="constrained"``, and the figures the charts make themselves) shrinks the
    Axes when the figure is drawn, after the chart has measured it."""
    return 1.1 if ax.figure.get_layout_engine() is not None else 1.03


def _pt(ax: Axes) -> float:
    """Pixels per point of ``ax``'s figure."""
    return float(ax.figure.dpi) / 72.0


def legend_strip(
    ax: Axes,
    handles: Sequence[Any],
    labels: Sequence[str],
    *,
    fontsize: float = S.SMALL_SIZE,
    max_ncol: int = 5,
    **kwargs: Any,
) -> tuple[Any, float]:
    """A frameless legend across the top of ``ax``, inside it, in as many columns as fit
    its width; and the share of the Axes' height it takes (room for a layout engine
    included, at most 0.45), which the caller keeps free of data (:func:`room_at_top`)."""

    def draw(ncol: int) -> Any:
        return ax.legend(
            handles,
            labels,
            loc="upper center",
            ncol=ncol,
            frameon=False,
            fontsize=fontsize,
            borderaxespad=0.2,
            handletextpad=0.4,
            columnspacing=0.9,
            **kwargs,
        )

    n = max(len(handles), 1)
    ncol = min(max_ncol, n)
    leg = draw(ncol)
    while ncol > 1 and leg.get_window_extent().width > 0.98 * ax.bbox.width:
        ncol -= 1
        leg = draw(ncol)
    balanced = -(-n // -(-n // ncol))  # as few rows, as evenly filled
    if balanced != ncol:
        leg = draw(balanced)
    assert leg is not None
    share = (leg.get_window_extent().height + 3 * _pt(ax)) / ax.bbox.height * _slack(ax)
    return leg, min(share, 0.45)


def room_at_top(lo: float, hi: float, share: float) -> float:
    """The upper limit of a linear axis from ``lo`` that leaves its top ``share`` free
    above ``hi``."""
    return lo + (hi - lo) / (1.0 - share)


def _ticks_within(axis: Any, lo: float, hi: float) -> None:
    """Keep only the major ticks (and so grid lines) within ``lo`` … ``hi``, and no minor
    ticks: the rest of the axis holds text, not data."""
    from matplotlib.ticker import FixedLocator, NullLocator

    locs = [t for t in axis.get_majorticklocs() if lo - 1e-9 * abs(lo) <= t <= hi * (1 + 1e-9)]
    axis.set_major_locator(FixedLocator(locs))
    axis.set_minor_locator(NullLocator())


def _extend_x(ax: Axes, lo: float, hi: float, share: float, log: bool) -> None:
    """x limits with the data in ``lo`` … ``hi`` and the right ``share`` of the Axes free."""
    if log:
        ax.set_xlim(lo, lo * (hi / lo) ** (1.0 / (1.0 - share)))
    else:
        ax.set_xlim(lo, room_at_top(lo, hi, share))
    _ticks_within(ax.xaxis, lo, hi)
    ax.spines["bottom"].set_bounds(lo, hi)


def _dwell_note(
    med: float, lo: float, hi: float, p90: float, n: int, n_open: int, lines: int
) -> str:
    """The text beside a stage's row: median and p90; the median's 95% CI; the visits
    — the first ``lines`` of them that fit (the CI is drawn as a band either way)."""
    parts = [f"median {S.duration(med)} · p90 {S.duration(p90)}"]
    if lines >= 3:
        parts.append(_ci_text(lo, hi))
    if lines >= 2:
        parts.append(
            f"{n:,} visit{'' if n == 1 else 's'}" + (f", {n_open:,} open" if n_open else "")
        )
    return "\n".join(parts)


#: the tallest figure a chart makes for itself (inches)
MAX_HEIGHT = 14.0
#: the largest share of the Axes' width the text column of ``dwell`` takes
MAX_COLUMN = 0.42


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
    numbers of ``log.dwell()``, which account for censoring — are marked, the median
    with its 95% interval (a translucent band: ``median_low`` to ``median_high``; open to
    the right end of the days axis when the upper end is undefined). Stale visits have
    no dwell and are left out.

    Everything is drawn inside ``ax``, so the chart composes in a grid of subplots: the
    legend is a strip across the top of the Axes and the numbers (median and p90, the
    median's 95% CI, visits and open visits) a column on its right, beside each row —
    as many of those three lines as the row height allows. Marks follow the active
    style (median, p90 and CI in its text colour).

    Parameters
    ----------
    data : EventLog or pandas.DataFrame
        An event log, or a visits table from ``log.visits()`` (columns ``stage``,
        ``dwell``, ``censored``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure sized for the number of stages (at most
        14 in tall).
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
        ``"dwell-median-ci"``, spanning ``median_low`` to ``median_high`` (to the end of
        the days axis — the bounds of its bottom spine — when that is undefined). The
        numbers beside the rows are texts with gid ``"dwell-note"``.

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
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import blended_transform_factory

    _, kwargs = S.split_kwargs("dwell", data, kwargs, None)
    v, stages = _visits(data)
    n = len(stages)
    if n == 0:
        raise ValueError("The visits table is empty: no stage to draw.")
    th = S.theme()
    ink = th.text  # median, p90 and CI: the theme's text colour, never a fixed black
    days_all = v["days"].to_numpy()
    use_log, floor = _scale(days_all, logscale)
    ax = S.new_axes(ax, (10.5, min(MAX_HEIGHT, 1.9 + 0.55 * max(n, 3))))
    rng = np.random.default_rng(seed)
    y_of = {s: float(n - 1 - i) for i, s in enumerate(stages)}
    sc_kw: dict[str, Any] = {"s": 9, "color": S.BAR, "linewidths": 0}
    sc_kw.update(kwargs)
    med, p90 = np.full(n, np.nan), np.full(n, np.nan)
    med_lo, med_hi = np.full(n, np.nan), np.full(n, np.nan)
    counts = np.zeros((n, 2), dtype=np.int64)  # visits, still open
    groups = dict(list(v.groupby("stage", sort=False)))
    for i, s in enumerate(stages):
        g = groups.get(s)
        y0 = y_of[s]
        if g is None or g.empty:
            continue
        d = g["days"].to_numpy()
        c = g["censored"].to_numpy()
        t, surv = S.km_curve(d, c)
        med[i], p90[i] = km_quantile(t, surv, 0.5), km_quantile(t, surv, 0.9)
        med_lo[i], med_hi[i] = km_median_ci(g)
        counts[i] = len(d), int(c.sum())
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
    ys = np.array([y_of[s] for s in stages])
    for k in range(n):
        if np.isfinite(med[k]) and np.isfinite(p90[k]):
            ax.plot([max(med[k], floor), max(p90[k], floor)], [ys[k], ys[k]], color=ink, lw=1.6)
    ok = np.isfinite(med)
    ax.scatter(
        np.maximum(med[ok], floor),
        ys[ok],
        marker="D",
        s=55,
        color=ink,
        edgecolors=th.paper,
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
        color=ink,
        linewidths=2.4,
        zorder=5,
        gid="dwell-p90",
    )
    # the legend: a strip across the top of the Axes, kept free of rows
    handles = [
        Line2D([], [], ls="", marker="o", ms=5, color=S.BAR, alpha=0.6),
        Line2D(
            [], [], ls="", marker="o", ms=6, markerfacecolor="none", markeredgecolor=S.CENSORED
        ),
        Line2D([], [], ls="", marker="D", ms=7, color=ink, markeredgecolor=th.paper),
        Line2D([], [], ls="", marker="s", ms=9, color=ink, alpha=0.25),
        Line2D([], [], ls="", marker="|", ms=13, mew=2.4, color=ink),
    ]
    names = [
        "completed visit",
        "open visit (censored)",
        "median",
        "95% CI",
        "p90",
    ]
    _, top_share = legend_strip(ax, handles, names)
    ax.set_ylim(-0.6, room_at_top(-0.6, n - 0.4, top_share))
    # the numbers: a column on the right, as many lines per row as its height allows
    row_pt = ax.bbox.height / _pt(ax) * (1 - top_share) / n / _slack(ax)
    lines = next((k for k in (3, 2, 1) if k * S.SMALL_SIZE * 1.3 <= 0.95 * row_pt), 0)
    trans = blended_transform_factory(ax.transAxes, ax.transData)
    notes = []
    for k in range(n):
        if counts[k, 0] == 0:
            text = "no visits"
        elif lines:
            text = _dwell_note(
                med[k], med_lo[k], med_hi[k], p90[k], int(counts[k, 0]), int(counts[k, 1]), lines
            )
        else:
            continue
        notes.append(
            ax.text(
                1.0,
                ys[k],
                text,
                transform=trans,
                ha="left",
                va="center",
                fontsize=S.SMALL_SIZE,
                color=th.text,
                linespacing=1.15,
                gid="dwell-note",
            )
        )
    width = max((note.get_window_extent().width for note in notes), default=0.0)
    col = min((width + 10 * _pt(ax)) / ax.bbox.width * _slack(ax), MAX_COLUMN) if notes else 0.0
    for note in notes:
        note.set_x(1.0 - col + 4 * _pt(ax) / ax.bbox.width)
    # the days axis: data on the left, the column on the right
    hi = float(np.nanmax(days_all)) if days_all.size else 1.0
    if use_log:
        zero = floor if (days_all <= 0).any() else None
        lo_x, hi_x = floor / 1.6, hi * 1.6
        S.days_axis(ax, "x", lo_x, hi_x, zero_at=zero)
        xlab = "Time in stage (log scale; d = days)"
    else:
        lo_x, hi_x = 0.0, hi * 1.03
        ax.set_xlim(lo_x, hi_x)
        xlab = "Time in stage (days)"
    _extend_x(ax, lo_x, hi_x, col, use_log)
    for k in range(n):  # the median's 95% interval, behind the markers
        if np.isfinite(med_lo[k]):
            x0 = max(med_lo[k], floor)
            x1 = max(med_hi[k], floor) if np.isfinite(med_hi[k]) else hi_x
            band = Rectangle(
                (x0, ys[k] - 0.2), x1 - x0, 0.4, color=ink, alpha=0.25, lw=0, zorder=4
            )
            band.set_gid("dwell-median-ci")
            ax.add_patch(band)
    ax.set_yticks(ys, [S.wrap(s) for s in stages])
    S.style_axes(ax, grid="x")
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)
    S.label(ax, x=xlab)
    S.titles(
        ax,
        title,
        "One dot per visit; median (with its 95% CI, Brookmeyer–Crowley) and p90 from the\n"
        "Kaplan–Meier estimator, which counts open visits as censored",
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
