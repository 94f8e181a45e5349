"""Segment comparison: a stage metric per segment, with 95% intervals; unsettled points hollow."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._params import CHECKED_INSIDE, TITLE, Interval, Options, validate_params
from ..errors import InvalidParameterError
from . import _style as S
from ._funnel import FUNNEL_COLUMNS, segment_columns

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: segments drawn by default (the largest; see ``top``)
TOP = 20

METRICS = {
    "conversion": "Conversion",
    "conversion_closed": "Advanced / (advanced + dropped)",
    "conversion_raw": "Advanced / reached",
    "win_rate_from": "Win rate from stage",
    "cumulative": "Cumulative conversion",
}


@S.chart
@validate_params(
    {
        "data": [CHECKED_INSIDE],
        "ax": ["axes", None],
        "title": TITLE,
        "kwargs": [CHECKED_INSIDE],
        "by": ["columns", None],
        "metric": [
            Options(
                str,
                (
                    "conversion",
                    "conversion_closed",
                    "conversion_raw",
                    "win_rate_from",
                    "cumulative",
                ),
            )
        ],
        "skips": [Options(str, ("implied", "strict"))],
        "weight": [str, None],
        "overall": ["boolean"],
        "top": [Interval(Integral, 1, None), None],
    }
)
def segments(
    data: Any,
    *,
    by: str | Sequence[str] | None = None,
    ax: Axes | None = None,
    metric: Literal[
        "conversion", "conversion_closed", "conversion_raw", "win_rate_from", "cumulative"
    ] = "conversion",
    skips: Literal["implied", "strict"] = "implied",
    weight: str | None = None,
    overall: bool = True,
    top: int | None = TOP,
    title: str | None = None,
    **kwargs: Any,
) -> Axes:
    """Segment comparison: a stage metric per segment, with 95% intervals.

    Stages on the vertical axis (first at the top), the metric on the horizontal axis;
    within each stage one dot per segment (colour and marker per segment) with its
    interval as a whisker (the metrics with ``<metric>_low`` / ``<metric>_high`` columns in
    the table: ``conversion``, ``conversion_closed``, ``win_rate_from``). With an EventLog,
    a black bar marks all deals together.

    A ``conversion`` not settled yet — its row's ``unresolved`` share
    is at least 0.05% (:data:`funnelkit.plot._style.UNRESOLVED_MIN`): deals still open,
    or silent, may yet advance — is drawn hollow: the point is only what has happened so
    far; read its interval, which spans the unresolved share. The legend says so.

    Parameters
    ----------
    data : EventLog or pandas.DataFrame
        An event log (with ``by``), or a segmented funnel table from
        ``log.funnel(by=...)``: its segment columns are the columns that are not funnel
        metrics.
    by : str or list of str, optional
        Carried attribute(s) to compare; required with an EventLog.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure sized for stages and segments.
    metric : {"conversion", "conversion_closed", "conversion_raw", "win_rate_from", \
"cumulative"}, default "conversion"
        Column of the funnel table to draw.
    skips, weight
        Passed to ``log.funnel`` with an EventLog.
    overall : bool, default True
        With an EventLog, mark the metric of all deals together.
    top : int or None, default 20
        Draw only the ``top`` largest segments (most deals reached at any stage; ties by
        name). The subtitle says how many segments were left out and their share of the
        deals. ``None`` draws every segment (slow, and unreadable with thousands).
    title : str, optional
        Default "<Metric> by <segment>".
    **kwargs
        With an EventLog, the keywords of :meth:`EventLog.funnel` (``within``,
        ``calendar``); the rest go to :meth:`matplotlib.axes.Axes.errorbar` for every
        segment.

    Returns
    -------
    matplotlib.axes.Axes
        One errorbar container per drawn segment in ``ax.containers``, labelled with the
        segment, in legend order (sorted by name, missing values last; the first drawn on
        top in each stage); its data line holds every stage's value (NaN where the
        segment lacks the stage) and shows the markers of the settled ones. The hollow
        markers of the unsettled ones are lines with the gid ``"segments-unresolved"``,
        one per segment that has any, labelled with the segment.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> ax = fk.plot.segments(log, by="team")
    >>> [c.get_label() for c in ax.containers]
    ['Team A', 'Team B', 'Team C']
    >>> ax.get_title()
    'Conversion by team'
    """
    S.check_choice("metric", metric, list(METRICS))
    if S.is_log(data) and by is None:
        raise ValueError(
            f"`by` is required with an EventLog: a carried attribute, one of {data.attrs}."
        )
    comp, kwargs = S.split_kwargs(
        "segments", data, kwargs, "funnel", taken=["by", "skips", "weight"]
    )
    table, log = S.table_or_log(
        data,
        required=FUNNEL_COLUMNS + ([metric] if metric not in FUNNEL_COLUMNS else []),
        compute=lambda lg: lg.funnel(by=by, skips=skips, weight=weight, **comp),
        what="a segmented funnel table (log.funnel(by=...))",
    )
    seg_cols = segment_columns(table)
    if not seg_cols:
        raise ValueError(
            "The funnel table has no segment column; pass log.funnel(by=...) or an "
            "EventLog with by=..."
        )
    if table.empty:  # e.g. a log of won/lost events only
        raise ValueError("The funnel table is empty: no stage to draw.")
    with_ci = {f"{metric}_low", f"{metric}_high"} <= set(table.columns)
    # the table's unresolved share is the conversion's (the ratios are what they are)
    marks_open = metric == "conversion" and "unresolved" in table.columns
    stages = list(log.stages) if log is not None else S.ordered_unique(table["stage"])
    table, n_total, hidden_share = _largest(table, seg_cols, top)
    table = table.copy()
    labels = table[seg_cols].astype(object).where(table[seg_cols].notna(), "(missing)")
    table["_segment"] = labels.astype(str).agg(" · ".join, axis=1)
    segs = sorted(S.ordered_unique(table["_segment"]), key=lambda g: ("(missing)" in g, g))
    n, k = len(stages), len(segs)
    ax = S.new_axes(ax, (11.0, 1.8 + max(n, 3) * (0.38 + 0.09 * min(k, 8))))
    y_of = {s: float(n - 1 - i) for i, s in enumerate(stages)}
    handles: list[Any] = []  # legend: segments with their deals at the first stage
    texts: list[str] = []
    any_open = False
    band = 0.7
    offs = np.linspace(-band / 2, band / 2, k + 2)[1:-1] if k > 1 else np.zeros(1)
    for i in range(n):
        if i % 2 == 0:
            ax.axhspan(n - 1 - i - 0.5, n - 1 - i + 0.5, color="#F5F5F5", zorder=0, lw=0)
    for j, seg in enumerate(segs):
        rows = table.loc[table["_segment"] == seg].set_index("stage").reindex(stages)
        x = rows[metric].to_numpy(dtype=float)
        yy = np.array([y_of[s] for s in stages]) - offs[j]  # first segment on top
        xerr = None
        if with_ci:
            lo = rows[f"{metric}_low"].to_numpy(dtype=float)
            hi = rows[f"{metric}_high"].to_numpy(dtype=float)
            # clip: a bound can miss the estimate by rounding (e.g. at 100%)
            xerr = np.clip(np.vstack([x - lo, hi - x]), 0.0, None)
        first = rows["reached"].iloc[0] if len(rows) else np.nan
        style = S.series_style(j)
        eb_kw: dict[str, Any] = {
            "fmt": style["marker"],
            "color": style["color"],
            "ms": 6.5,
            "elinewidth": 1.6,
            "capsize": 0,
            "markeredgecolor": "white",
            "markeredgewidth": 0.6,
        }
        eb_kw.update(kwargs)
        open_ = S.unsettled(rows["unresolved"]) if marks_open else np.zeros(n, dtype=bool)
        if open_.any():
            eb_kw["markevery"] = list(np.flatnonzero(~open_))
        cont = ax.errorbar(x, yy, xerr=xerr, label=str(seg), zorder=3, **eb_kw)
        if open_.any():
            any_open = True
            ax.plot(
                x[open_],
                yy[open_],
                linestyle="none",
                marker=eb_kw["fmt"],
                ms=eb_kw["ms"],
                markerfacecolor="white",
                markeredgecolor=eb_kw["color"],
                markeredgewidth=1.5,
                zorder=3.5,
                gid="segments-unresolved",
                label=str(seg),
            )
        handles.append(cont)
        texts.append(f"{S.wrap(seg, 24)}  ({S.count(first)})")
    if overall and log is not None:
        tot = log.funnel(skips=skips, weight=weight, **comp).set_index("stage").reindex(stages)
        overall_pts = ax.scatter(
            tot[metric].to_numpy(dtype=float),
            [y_of[s] for s in stages],
            marker="|",
            s=900 * band,
            color="black",
            linewidths=1.6,
            zorder=4,
            gid="segments-overall",
            label="all deals",
        )
        handles.append(overall_pts)
        texts.append("all deals")
    if any_open:
        from matplotlib.lines import Line2D

        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                ms=6.5,
                markerfacecolor="white",
                markeredgecolor=S.MUTED,
                markeredgewidth=1.5,
            )
        )
        texts.append("hollow: not settled yet\n(part unresolved:\nread the interval)")
    ax.set_yticks([y_of[s] for s in stages], [S.wrap(s) for s in stages])
    ax.set_ylim(-0.5, n - 0.5)
    ax.set_xlim(-0.015, 1.015)  # room for markers at 0% and 100%
    S.percent_axis(ax, "x")
    S.style_axes(ax, grid="x")
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)
    name = METRICS[metric]
    S.label(ax, x=name + (" (95% interval)" if with_ci else ""))
    seg_name = S.esc(" × ".join(map(str, seg_cols)))
    ax.legend(
        handles,
        texts,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=S.ANNOT_SIZE if k <= 8 else S.SMALL_SIZE,
        title=f"{seg_name} (deals)",
        title_fontsize=S.ANNOT_SIZE,
    )
    sub = {
        "conversion": "probability of advancing per stage; open deals count for the time they"
        " have been open",
        "conversion_closed": "advanced / (advanced + dropped) per stage; open deals are not "
        "counted",
        "conversion_raw": "advanced / reached per stage (open deals count as not advanced)",
        "win_rate_from": "probability of winning from the stage on; open deals count for the "
        "time they have been open",
        "cumulative": "product of the conversions of the earlier stages",
    }[metric]
    rule = table["skips"].iloc[0] if "skips" in table.columns else None
    if rule:
        sub += f"; skips {rule}"
    if comp.get("within") is not None:
        sub += f"; advanced within {comp['within']}"
    if k < n_total:
        sub += (
            f"\nthe {k:,} largest of {n_total:,} segments; the other {n_total - k:,} "
            f"({hidden_share:.0%} of deals) are not drawn (top={top})"
        )
    S.titles(ax, title or f"{name} by {seg_name}", sub)
    return ax


def _largest(table: Any, seg_cols: list[str], top: int | None) -> tuple[Any, int, float]:
    """The rows of the ``top`` largest segments (deals reached at any stage, ties by
    label), the number of segments, and the share of deals in the segments left out."""
    if top is not None and (
        isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1
    ):
        raise InvalidParameterError(f"`top` must be a positive integer or None; got {top!r}.")
    gid = table.groupby(seg_cols, dropna=False, sort=False, observed=True).ngroup().to_numpy()
    n_total = int(gid.max()) + 1 if gid.size else 0
    if top is None or n_total <= top:
        return table, n_total, 0.0
    size = np.zeros(n_total)
    np.maximum.at(size, gid, table["reached"].to_numpy(dtype=np.float64, na_value=0.0))
    first = np.unique(gid, return_index=True)[1]  # one row per segment, for its label
    head = table[seg_cols].iloc[first].astype(object)
    label = head.where(head.notna(), "(missing)").astype(str).agg(" · ".join, axis=1)
    order = np.lexsort((label.to_numpy(dtype=str), -size))  # most deals first, then name
    keep = np.zeros(n_total, dtype=bool)
    keep[order[:top]] = True
    total = size.sum()
    hidden = float(size[~keep].sum() / total) if total > 0 else 0.0
    return table.loc[keep[gid]], n_total, hidden
