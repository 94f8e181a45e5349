"""Time in stage: dwell distributions and Kaplan–Meier "still in stage" curves."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._params import CHECKED_INSIDE, TITLE, Interval, validate_params
from .._stats import Z95
from ..errors import InvalidParameterError
from . import _style as S

if TYPE_CHECKING:
    from matplotlib.axes import Axes

VISIT_COLUMNS = ["stage", "dwell", "censored"]
#: the fewest open visits a stage's dots show when it has them (see ``dwell``'s max_points)
MIN_OPEN_DRAWN = 25


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


def _thin_index(y: np.ndarray, levels: int = 2000) -> np.ndarray:
    """Points of a decreasing step curve to draw: at most ``levels`` + 2, off by under
    1/``levels``.

    Keeps the first point of each band of height 1/``levels`` (and the last point), so the
    drawn curve is never more than 0.05 percentage points from the estimate (by default)
    — invisible — while a curve over a million visits no longer costs a million vertices
    in every PNG and SVG. Curves with at most :data:`MAX_STEPS` points are kept whole."""
    if y.size <= MAX_STEPS:
        return np.arange(y.size)
    band = np.floor(np.asarray(y) * levels)
    keep = np.ones(y.size, dtype=bool)
    keep[1:] = band[1:] != band[:-1]
    keep[-1] = True
    return np.flatnonzero(keep)


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
        At most about this many visits per stage are drawn (a seeded random sample),
        completed and open ones in proportion to their numbers, but at least 25 open ones
        where a stage has them; the median and p90 always use every visit.
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
        # a sample of at most max_points visits, completed and open in proportion to
        # their numbers (1% open look like 1% open), but never fewer than MIN_OPEN_DRAWN
        # open ones where there are: they stay visible
        parts = []
        rate = min(1.0, max_points / max(d.size, 1))
        for k, sel in enumerate((np.flatnonzero(~c), np.flatnonzero(c))):
            m = round(rate * sel.size)
            if k == 1:
                m = max(m, min(sel.size, MIN_OPEN_DRAWN))
            if sel.size > m:
                sel = np.sort(rng.choice(sel, m, replace=False))
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


# ---------------------------------------------------------------------------- survival
#: up to this many curves share one plot; more are drawn as small multiples
MAX_OVERLAY = 8


def km_band(
    days: np.ndarray, censored: np.ndarray, z: float = Z95
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Kaplan–Meier curve of one sample with its pointwise 95% band.

    The curve is :func:`funnelkit.plot._style.km_curve` (events before censorings at a
    time); the band is Greenwood's variance on the log(−log) scale, ``S^exp(±z σ /
    |log S|)`` with σ² = Σ d / (n (n − d)) — lifelines' default ("exponential
    Greenwood") and R survival's ``conf.type="log-log"``, the band whose crossings of
    1 − q are the Brookmeyer–Crowley interval of quantile q that
    :func:`funnelkit._stats.km_intervals` reports (``median_low`` / ``median_high``).
    Where S = 0 the band is undefined: lower 0, upper NaN.

    Returns ``(t, s, low, high)`` at the distinct event times.
    """
    t, s, at_risk, d = S.km_steps(days, censored)
    if t.size == 0:
        return t, s, s.copy(), s.copy()
    left = at_risk - d
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.cumsum(np.where(left > 0, d / (at_risk * left), np.inf))
        inside = (s > 0) & (s < 1)
        log_s = np.log(np.where(inside, s, 0.5))
        half = z * np.sqrt(var) / np.abs(log_s)
        low = np.where(inside, s ** np.exp(half), 0.0)
        high = np.where(inside, s ** np.exp(-half), np.where(s >= 1, 1.0, np.nan))
    return t, s, low, high


def at_risk(days: np.ndarray, times: Sequence[float]) -> np.ndarray:
    """Visits still in the stage at each time: dwell ≥ t (those leaving at t included)."""
    srt = np.sort(np.asarray(days, dtype=float))
    return srt.size - np.searchsorted(srt, np.asarray(times, dtype=float), side="left")


def _curve(g: pd.DataFrame, floor: float) -> dict[str, Any]:
    """What one curve draws: steps and band from (0, 1), the censoring ticks, the
    median's interval. Zero dwells sit at ``floor`` (on a log axis)."""
    d, c = g["days"].to_numpy(), g["censored"].to_numpy()
    t, s, low, high = km_band(d, c)
    x = np.concatenate(([floor], np.maximum(t, floor)))
    y = np.concatenate(([1.0], s))
    lo, hi = np.concatenate(([1.0], low)), np.concatenate(([1.0], high))
    last = float(d.max()) if d.size else 0.0
    if last > x[-1]:  # carry the last level on to the curve's largest observation
        x, y = np.append(x, max(last, floor)), np.append(y, y[-1])
        lo, hi = np.append(lo, lo[-1]), np.append(hi, hi[-1])
    keep = _thin_index(y)
    cens = np.sort(d[c])
    if cens.size > MAX_TICKS:  # evenly spaced among the sorted censoring times
        cens = cens[np.linspace(0, cens.size - 1, MAX_TICKS).round().astype(int)]
    ci = km_median_ci(g) if len(g) else (np.nan, np.nan)
    return {
        "x": x[keep],
        "y": y[keep],
        "low": lo[keep],
        "high": hi[keep],
        "cens_x": np.maximum(cens, floor),
        "cens_y": S.step_at(t, s, cens),
        "ci": ci,
        "days": d,
        "n": len(g),
    }


def _draw_curve(
    ax: Axes, name: str, cv: dict[str, Any], color: str, linestyle: str, lw: float, **kw: Any
) -> Any:
    """Band, steps and censoring ticks of one curve on ``ax``; returns the line."""
    ax.fill_between(
        cv["x"],
        cv["low"],
        cv["high"],
        step="post",
        color=color,
        alpha=0.16,
        linewidth=0,
        gid="km-band",
        zorder=1.5,
    )
    line_kw: dict[str, Any] = {"where": "post", "color": color, "linewidth": lw}
    line_kw["linestyle"] = linestyle
    line_kw.update(kw)
    (line,) = ax.step(cv["x"], cv["y"], label=name, **line_kw)
    line.set_gid("km-curve")
    if cv["cens_x"].size:
        ax.plot(
            cv["cens_x"],
            cv["cens_y"],
            ls="",
            marker="|",
            ms=7 if lw >= 2 else 4,
            mew=1.2 if lw >= 2 else 0.8,
            color=line.get_color(),
            gid="km-censor",
        )
    return line


def _days_x(ax: Axes, days: np.ndarray, floor: float, use_log: bool) -> tuple[float, float, str]:
    """The days axis of a survival plot; returns its data range and label."""
    hi = float(days.max()) if days.size else 1.0
    if use_log:
        zero = floor if (days <= 0).any() else None
        lo_x, hi_x = floor / 1.3, hi * 1.3
        S.days_axis(ax, "x", lo_x, hi_x, zero_at=zero)
        return lo_x, hi_x, "Time in stage (log scale; d = days)"
    ax.set_xlim(0, hi * 1.02)
    return 0.0, hi * 1.02, "Time in stage (days)"


def _thin_ticks(ax: Axes, min_gap_pt: float) -> None:
    """Keep x ticks at least ``min_gap_pt`` apart, from the right (the long durations)."""
    from matplotlib.ticker import FixedLocator

    kept: list[float] = []
    last = np.inf
    for x in sorted(ax.xaxis.get_majorticklocs(), reverse=True):
        px = ax.transData.transform((x, 0))[0]
        if last - px >= min_gap_pt * _pt(ax):
            kept.append(float(x))
            last = px
    ax.xaxis.set_major_locator(FixedLocator(sorted(kept)))


def _risk_times(
    ax: Axes, lo: float, hi: float, floor: float, fontsize: float, widest: int
) -> list[tuple[float, float]]:
    """(position, time) of the at-risk counts: the x ticks within the data, thinned so
    the numbers (``widest`` characters) do not touch; the "0" tick of a log axis (where
    zero dwells sit) counts from time 0."""
    ticks = [x for x in ax.xaxis.get_majorticklocs() if lo <= x <= hi]
    gap = (widest * 0.62 * fontsize + 6) * _pt(ax)
    out: list[tuple[float, float]] = []
    last = -np.inf
    for x in ticks:
        px = ax.transData.transform((x, 0))[0]
        if px - last >= gap:
            out.append((x, 0.0 if x <= floor * (1 + 1e-9) else float(x)))
            last = px
    return out


def _at_risk_rows(
    ax: Axes,
    rows: Sequence[tuple[np.ndarray, str]],
    lo: float,
    hi: float,
    floor: float,
    fontsize: float,
    header: str | None,
) -> float:
    """Rows of at-risk counts under the curves, inside ``ax``'s bottom: one per curve
    (``(days, colour)``), at the x ticks; returns the share of the Axes' height they take.

    Numbers are texts with gid ``"km-at-risk"`` anchored at (tick, bottom of the Axes)
    and offset upwards by their row, so rows stay apart whatever the Axes' final size."""
    from matplotlib.transforms import blended_transform_factory

    counts = [at_risk(d, [0.0]) for d, _ in rows]
    widest = max((len(f"{int(c[0]):,}") for c in counts), default=1)
    times = _risk_times(ax, lo, hi, floor, fontsize, widest)
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    line = fontsize * 1.3
    n_rows = len(rows) + (header is not None)
    for k, (d, color) in enumerate(rows):
        at = at_risk(d, [t for _, t in times])
        y_off = 3 + (len(rows) - 1 - k) * line
        for (x, _), n in zip(times, at, strict=True):
            frac = ax.transAxes.inverted().transform(ax.transData.transform((x, 0)))[0]
            ax.annotate(
                S.count(float(n)) if n < 100_000 else S.compact(float(n)),
                xy=(x, 0),
                xycoords=trans,
                xytext=(0, y_off),
                textcoords="offset points",
                ha="left" if frac < 0.04 else "right" if frac > 0.96 else "center",
                va="bottom",
                fontsize=fontsize,
                color=color,
                gid="km-at-risk",
            )
    if header is not None:
        ax.annotate(
            header,
            xy=(0, 0),
            xycoords="axes fraction",
            xytext=(2, 3 + len(rows) * line),
            textcoords="offset points",
            ha="left",
            va="bottom",
            fontsize=fontsize,
            color=S.theme().muted,
            gid="km-at-risk-label",
        )
    return (n_rows * line + 6) * _pt(ax) / ax.bbox.height * _slack(ax)


def _room_below(ax: Axes, share: float) -> None:
    """y limits with the curves' 0 … 1 in the top of the Axes and its bottom ``share``
    free (for the at-risk rows); ticks and the left spine on 0 … 1 only."""
    top = 1.03
    bottom = top - (top + 0.02) / (1.0 - share)
    ax.set_ylim(bottom, top)
    ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
    ax.spines["left"].set_bounds(0.0, 1.0)


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
    """Kaplan–Meier "still in stage" curves with 95% bands and at-risk counts: per
    stage, or per segment for one stage.

    Each curve is the Kaplan–Meier estimate of the share of visits still in the stage
    after *t* days, visits still open at ``as_of`` censored (small vertical ticks; at most
    500 per curve, evenly spaced), in a shaded pointwise 95% band (Greenwood's variance
    on the log(−log) scale, as lifelines and R's ``survfit`` draw it; :func:`km_band`).
    Under the curves, inside the Axes, a row of numbers per curve gives the visits still
    in the stage (at risk) at the days axis' ticks. A curve of more than 4,000 steps is
    drawn through fewer, never more than 0.05 percentage points from the estimate (the
    band through the same points).
    Where a curve crosses the dotted 50% line is the median dwell of ``log.dwell()``; a
    bar in the curve's colour spans its 95% interval (``median_low`` to ``median_high``,
    where the band crosses the line; to the axis' end when the upper end is undefined):
    on the line for one curve, stacked just below it in draw order for several.

    Up to 8 curves share one plot, with a legend inside it. **More than 8 curves** (say
    the 18–24 activities of a real log) are drawn as small multiples instead of
    spaghetti: the Axes holds a grid of small panels (inset Axes inside its box), one
    per curve in draw order, on a shared days axis, each with its band, its median
    line and — where a panel is tall enough — its own at-risk row.

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
        Axes to draw on (everything stays inside it). Default: a new figure.
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
        draw order; its points are (0, 1) followed by (t, S(t)) at each event time. Its
        band is a ``fill_between`` with gid ``"km-band"`` (lower and upper band at the
        same points). The median intervals are lines with gid ``"km-median-ci"`` (x =
        low, high), one per curve with a defined lower end, in the same order. At-risk
        counts are texts with gid ``"km-at-risk"``, anchored at (tick, 0). With more
        than 8 curves these sit on the panels, ``ax.child_axes`` with gid
        ``"km-panel"``, one curve each, and ``ax`` itself shows no axis.

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
        groups = dict(list(v.groupby("stage", sort=False)))  # one pass, not one per stage
        curves = [(str(s), groups.get(s, v.iloc[:0])) for s in chosen]
    days = v["days"].to_numpy()
    use_log, floor = _scale(days, logscale)
    if title is None:
        title = "Still in stage" + (f": {S.esc(chosen[0])}" if len(chosen) == 1 else "")
    drawn = [(name, _curve(g, floor)) for name, g in curves]
    if len(drawn) > MAX_OVERLAY:
        return _small_multiples(ax, drawn, days, floor, use_log, title, by, kwargs)
    ax = S.new_axes(ax, (10.0, 6.2))
    handles = []
    cis: list[tuple[Any, float, float]] = []
    for k, (name, cv) in enumerate(drawn):
        style = S.series_style(k)
        line = _draw_curve(ax, name, cv, style["color"], style["linestyle"], 2.0, **kwargs)
        handles.append((line, f"{S.wrap(name, 24)}  ({cv['n']:,})"))
        if cv["n"]:
            cis.append((line.get_color(), *cv["ci"]))
    ax.axhline(0.5, color=S.NEUTRAL, linestyle=":", linewidth=1.2, zorder=1)
    lo_x, hi_x, xlab = _days_x(ax, days, floor, use_log)
    _ticks_within(ax.xaxis, lo_x, hi_x)
    for k, (color, lo, hi_ci) in enumerate(cis):  # the medians' 95% intervals
        if np.isfinite(lo):
            x1 = max(hi_ci, floor) if np.isfinite(hi_ci) else hi_x
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
    th = S.theme()
    rows = [
        (cv["days"], h[0].get_color() if len(drawn) > 1 else th.text)
        for (_, cv), h in zip(drawn, handles, strict=True)
    ]
    header = "at risk (visits still in stage)"
    share = _at_risk_rows(ax, rows, lo_x, hi_x, floor, S.SMALL_SIZE - 0.5, header)
    if share > 0.3 and len(rows) > 1:  # a small Axes: a denser table
        for t in [t for t in ax.texts if str(t.get_gid()).startswith("km-at-risk")]:
            t.remove()
        share = _at_risk_rows(ax, rows, lo_x, hi_x, floor, S.SMALL_SIZE - 2, header)
    share = min(share, 0.45)
    _room_below(ax, share)
    S.percent_axis(ax, "y")
    S.style_axes(ax, grid="both")
    S.label(ax, x=xlab, y="Still in stage")
    ax.legend(
        [h[0] for h in handles],
        [h[1] for h in handles],
        loc="best",  # among the nine places above the at-risk rows, where fewest curves run
        bbox_to_anchor=(0.0, share, 1.0, 1.0 - share),
        ncol=1 if len(handles) <= 4 else 2,
        frameon=True,
        facecolor=th.paper,
        edgecolor=th.grid,
        framealpha=0.9,
        fontsize=S.SMALL_SIZE,
        title=f"{S.esc(by)} (visits)" if by is not None else "stage (visits)",
        title_fontsize=S.SMALL_SIZE,
        labelcolor=th.text,
    )
    S.titles(
        ax,
        title,
        "Kaplan–Meier estimate in its pointwise 95% band (Greenwood, log-log); ticks: visits\n"
        "still open (censored); a curve crosses the dotted line at its median dwell, and the\n"
        "bar there in its colour is that median's 95% CI (Brookmeyer–Crowley)",
    )
    return ax


def _grid_shape(
    n: int, width: float, height: float, left: float, bottom: float, title_h: float, gap: float
) -> tuple[int, int, float, float]:
    """Columns and rows of ``n`` panels in a box of ``width`` × ``height`` points, and
    the panels' size: the shape whose panels are largest at about 1.6 : 1."""
    best = (1, n, 0.0, 0.0)
    score = -np.inf
    for ncols in range(1, n + 1):
        nrows = -(-n // ncols)
        pw = (width - left - (ncols - 1) * gap) / ncols
        ph = (height - bottom - nrows * title_h - (nrows - 1) * gap) / nrows
        s = min(pw / 1.6, ph)
        if pw > 0 and ph > 0 and s > score:
            best, score = (ncols, nrows, pw, ph), s
    return best


def _small_multiples(
    ax: Axes | None,
    drawn: list[tuple[str, dict[str, Any]]],
    days: np.ndarray,
    floor: float,
    use_log: bool,
    title: str,
    by: str | None,
    kwargs: dict[str, Any],
) -> Axes:
    """More than :data:`MAX_OVERLAY` curves: one small panel per curve, inside ``ax``."""
    n = len(drawn)
    ncols_guess = 6 if n > 20 else 5 if n > 12 else 4
    ax = S.new_axes(ax, (11.0, min(MAX_HEIGHT, 1.5 + 1.6 * -(-n // ncols_guess))))
    th = S.theme()
    ax.set_axis_off()
    ax.set_xticks([])  # no hidden tick labels left for layout checks to trip on
    ax.set_yticks([])
    k = _pt(ax) * _slack(ax)  # points -> pixels, with room for a layout engine
    W, H = ax.bbox.width, ax.bbox.height
    fs = S.SMALL_SIZE - 1.0
    left, bottom, gap = (fs * 3.2 + 14 + S.ANNOT_SIZE * 1.3) * k, (fs * 2.6 + 12) * k, 10 * k
    title_h = (2 * fs * 1.2 + 3) * k
    ncols, nrows, pw, ph = _grid_shape(n, W, H, left, bottom, title_h, gap)
    chars = max(int(pw / (fs * 0.5 * _pt(ax))), 3)
    with_risk = ph / _pt(ax) >= 60
    xlab = ""
    for i, (name, cv) in enumerate(drawn):
        r, c = divmod(i, ncols)
        x0 = left + c * (pw + gap)
        y0 = bottom + (nrows - 1 - r) * (ph + gap + title_h)
        p = ax.inset_axes((x0 / W, y0 / H, pw / W, ph / H))
        p.set_gid("km-panel")
        _draw_curve(p, name, cv, S.BAR, "-", 1.3, **kwargs)
        p.axhline(0.5, color=S.NEUTRAL, linestyle=":", linewidth=0.9, zorder=1)
        lo_x, hi_x, xlab = _days_x(p, days, floor, use_log)
        _ticks_within(p.xaxis, lo_x, hi_x)
        _thin_ticks(p, 4.5 * 0.62 * fs + 6)
        lo, hi_ci = cv["ci"]
        if np.isfinite(lo):
            x1 = max(hi_ci, floor) if np.isfinite(hi_ci) else hi_x
            p.plot(
                [max(lo, floor), x1],
                [0.5, 0.5],
                color=S.BAR,
                lw=3,
                alpha=0.45,
                solid_capstyle="butt",
                gid="km-median-ci",
                zorder=2,
            )
        share = 0.0
        if with_risk:
            share = _at_risk_rows(p, [(cv["days"], th.text)], lo_x, hi_x, floor, fs - 0.5, None)
        _room_below(p, min(share, 0.4))
        p.set_yticks([0.0, 0.5, 1.0])
        S.percent_axis(p, "y")
        S.style_axes(p, grid="both")
        p.tick_params(labelsize=fs)
        below_empty = i + ncols >= n
        p.tick_params(axis="x", labelbottom=below_empty)
        p.tick_params(axis="y", labelleft=c == 0)
        label = f"{name} ({cv['n']:,})"
        for width in range(chars, 2, -1):  # as wide as the panel, at most two lines
            head = p.set_title(
                S.wrap(label, width, max_lines=2), fontsize=fs, color=th.text, loc="left", pad=2
            )
            if head.get_window_extent().width * (2 if S.needs_cjk(name) else 1) <= pw:
                break
    ax.text(
        0.5,
        0.0,
        xlab,
        transform=ax.transAxes,
        ha="center",
        va="bottom",
        fontsize=S.ANNOT_SIZE,
        color=th.label,
    )
    ax.text(
        0.0,
        0.5,
        "Still in stage",
        transform=ax.transAxes,
        ha="left",
        va="center",
        rotation=90,
        fontsize=S.ANNOT_SIZE,
        color=th.label,
    )
    what = f"{S.esc(by)}" if by is not None else "stage"
    S.titles(
        ax,
        title,
        f"One panel per {what} (visits); Kaplan–Meier estimate in its pointwise 95% band\n"
        "(Greenwood, log-log); dotted line: 50%, where a bar marks the median's 95% CI"
        + ("; numbers: visits still in stage" if with_risk else ""),
    )
    return ax
