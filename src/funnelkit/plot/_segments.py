"""Segment comparison: a stage metric per segment, with 95% intervals; unsettled points hollow."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._params import CHECKED_INSIDE, TITLE, Interval, Options, validate_params
from ..errors import InvalidParameterError
from . import _style as S
from ._funnel import FUNNEL_COLUMNS, fit_lines, segment_columns, text_width_pt, usable_inches

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: segments drawn by default (the largest; see ``top``): as many as get a colour
TOP = S.MAX_SERIES
#: segments with fewer deals are drawn muted (see ``min_deals``)
MIN_DEALS = 30

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
        "min_deals": [Interval(Integral, 0, None)],
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
    min_deals: int = MIN_DEALS,
    title: str | None = None,
    **kwargs: Any,
) -> Axes:
    """Segment comparison: a stage metric per segment, with 95% intervals.

    Stages on the vertical axis (first at the top), the metric on the horizontal axis;
    within each stage one dot per segment (colour and marker per segment) with its
    interval as a whisker (the metrics with ``<metric>_low`` / ``<metric>_high`` columns in
    the table: ``conversion``, ``conversion_closed``, ``win_rate_from``). With an EventLog,
    a bar marks all deals together.

    At most 12 segments get a colour of their own (:data:`funnelkit.plot._style.SERIES`,
    colour-blind safe): the largest. Segments drawn beyond those (``top`` > 12) are grey,
    as "other"; so are segments with fewer than ``min_deals`` deals, whose intervals are
    too wide to compare — the legend and the subtitle say which. The legend sits inside
    the Axes, in a strip at the right kept free of data: in a grid of charts nothing
    reaches into a neighbour.

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
        Axes to draw on. Default: a new figure sized for stages and segments (at most 14
        in tall).
    metric : {"conversion", "conversion_closed", "conversion_raw", "win_rate_from", \
"cumulative"}, default "conversion"
        Column of the funnel table to draw.
    skips, weight
        Passed to ``log.funnel`` with an EventLog.
    overall : bool, default True
        With an EventLog, mark the metric of all deals together.
    top : int or None, default 12
        Draw only the ``top`` largest segments (most deals reached at any stage; ties by
        name). The subtitle says how many segments were left out and their share of the
        deals. Beyond 12 the extra segments are drawn grey, as "other". ``None`` draws
        every segment (slow, and unreadable with thousands).
    min_deals : int, default 30
        Segments with fewer deals (reached at any stage) are drawn muted, grey, and get
        no colour of their own. Deals are counted even in a revenue funnel (with an
        EventLog; a weighted table has no deal counts, so nothing is muted). 0: none.
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
        segment: first the coloured segments sorted by name (missing values last; the
        first drawn on top in each stage), then the grey ones ("other", then those with
        too few deals). Its data line holds every stage's value (NaN where the segment
        lacks the stage) and shows the markers of the settled ones. The hollow markers of
        the unsettled ones are lines with the gid ``"segments-unresolved"``, one per
        segment that has any, labelled with the segment. The legend has the gid
        ``"segments-legend"``.

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
    table["_segment"] = _labels(table, seg_cols)
    size = table.groupby("_segment", sort=False)["reached"].max()
    deals = _deal_counts(table, log, seg_cols, by, skips, comp)
    few = set() if deals is None else {g for g, d in deals.items() if d < min_deals}
    # the largest segments with enough deals get a colour; the rest are grey
    by_size = sorted((g for g in size.index if g not in few), key=lambda g: (-size[g], g))
    coloured = set(by_size[: S.MAX_SERIES])
    others = set(by_size[S.MAX_SERIES :])
    segs = (
        _by_name(coloured) + _by_name(others) + _by_name(few & set(size.index))
    )  # drawing and legend order
    n, k = len(stages), len(segs)
    ax = S.new_axes(ax, (11.0, min(14.0, 1.8 + max(n, 3) * (0.38 + 0.09 * min(k, 8)))))
    width_in, height_in = usable_inches(ax)
    th = S.theme()
    y_of = {s: float(n - 1 - i) for i, s in enumerate(stages)}
    band = 0.7
    offs = np.linspace(-band / 2, band / 2, k + 2)[1:-1] if k > 1 else np.zeros(1)

    # ---- the legend's entries (drawn last, in a strip at the right kept free of data)
    handles: list[Any] = []
    texts: list[str] = []
    grey_kw = {"color": S.OTHER, "ms": 5.0, "elinewidth": 1.0, "fmt": "o"}
    any_open = False
    j_colour = 0
    for seg in segs:
        rows = table.loc[table["_segment"] == seg].set_index("stage").reindex(stages)
        x = rows[metric].to_numpy(dtype=float)
        j = segs.index(seg)
        yy = np.array([y_of[s] for s in stages]) - offs[j]  # first segment on top
        xerr = None
        if with_ci:
            lo = rows[f"{metric}_low"].to_numpy(dtype=float)
            hi = rows[f"{metric}_high"].to_numpy(dtype=float)
            # clip: a bound can miss the estimate by rounding (e.g. at 100%)
            xerr = np.clip(np.vstack([x - lo, hi - x]), 0.0, None)
        eb_kw: dict[str, Any] = {
            "ms": 6.5,
            "elinewidth": 1.6,
            "capsize": 0,
            "markeredgecolor": th.paper,
            "markeredgewidth": 0.6,
        }
        if seg in coloured:
            style = S.series_style(j_colour)
            j_colour += 1
            eb_kw.update(fmt=style["marker"], color=style["color"])
        else:
            eb_kw.update(grey_kw)
        eb_kw.update(kwargs)
        open_ = S.unsettled(rows["unresolved"]) if marks_open else np.zeros(n, dtype=bool)
        if open_.any():
            eb_kw["markevery"] = list(np.flatnonzero(~open_))
        cont = ax.errorbar(
            x, yy, xerr=xerr, label=str(seg), zorder=3 if seg in coloured else 2.5, **eb_kw
        )
        if open_.any():
            any_open = True
            ax.plot(
                x[open_],
                yy[open_],
                linestyle="none",
                marker=eb_kw["fmt"],
                ms=eb_kw["ms"],
                markerfacecolor=th.paper,
                markeredgecolor=eb_kw["color"],
                markeredgewidth=1.5,
                zorder=3.5,
                gid="segments-unresolved",
                label=str(seg),
            )
        if seg in coloured:
            handles.append(cont)
            texts.append(f"{S.wrap(seg, 22, 2)}  ({S.count(size[seg])})")
    from matplotlib.lines import Line2D

    def grey(label: str) -> None:
        handles.append(Line2D([], [], linestyle="-", marker="o", ms=5.0, color=S.OTHER))
        texts.append(label)

    drawn_others = [g for g in segs if g in others]
    drawn_few = [g for g in segs if g in few]
    if drawn_others:
        grey(f"other: {_segs(len(drawn_others))}")
    if drawn_few:
        names = ", ".join(S.wrap(g, 16, 1) for g in drawn_few[:2])
        more = f" +{len(drawn_few) - 2:,}" if len(drawn_few) > 2 else ""
        grey(f"< {min_deals:,} deals: {names}{more}")
    if overall and log is not None:
        tot = log.funnel(skips=skips, weight=weight, **comp).set_index("stage").reindex(stages)
        overall_pts = ax.scatter(
            tot[metric].to_numpy(dtype=float),
            [y_of[s] for s in stages],
            marker="|",
            s=900 * band,
            color=th.text,
            linewidths=1.6,
            zorder=4,
            gid="segments-overall",
            label="all deals",
        )
        handles.append(overall_pts)
        texts.append("all deals")
    if any_open:
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="o",
                ms=6.5,
                markerfacecolor=th.paper,
                markeredgecolor=S.MUTED,
                markeredgewidth=1.5,
            )
        )
        texts.append("hollow: not settled yet")
    seg_name = S.esc(" × ".join(map(str, seg_cols)))
    leg_title = f"{seg_name} (deals)"
    size_pt, ncol, leg_w = _legend_fit(texts, leg_title, width_in * 72, height_in * 72)

    # ---- the data keep clear of the legend's strip
    lo_x, hi_x = -0.015, 1.015  # room for markers at 0% and 100%
    data_frac = max(1.0 - (1.04 * leg_w + 6) / (width_in * 72), 0.35)
    ax.set_xlim(lo_x, lo_x + (hi_x - lo_x) / data_frac)
    ax.set_ylim(-0.5, n - 0.5)
    for i in range(n):
        if i % 2 == 0:
            ax.axhspan(
                n - 1 - i - 0.5, n - 1 - i + 0.5, xmax=data_frac, color=th.band, zorder=0, lw=0
            )
    ax.set_xticks(np.linspace(0.0, 1.0, 6))
    ax.set_yticks([y_of[s] for s in stages], [S.wrap(s) for s in stages])
    S.percent_axis(ax, "x")
    S.style_axes(ax, grid="x")
    ax.spines["bottom"].set_bounds(lo_x, hi_x)
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)
    name = METRICS[metric]
    S.label(ax, x=name + (" (95% interval)" if with_ci else ""))
    ax.xaxis.label.set_x((0.5 - lo_x) / (hi_x - lo_x) * data_frac)  # under the data
    leg = ax.legend(
        handles,
        texts,
        loc="upper right",
        ncol=ncol,
        frameon=False,
        fontsize=size_pt,
        title=leg_title,
        title_fontsize=size_pt,
        handlelength=_HANDLE,
        handletextpad=_TEXTPAD,
        columnspacing=_COLSPACE,
        borderaxespad=0.2,
        borderpad=0.2,
    )
    leg.set_gid("segments-legend")
    leg.get_title().set_color(th.text)
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
    greys = []
    if drawn_others:
        greys.append(f"{_segs(len(drawn_others))} beyond the {S.MAX_SERIES} largest")
    if drawn_few:
        greys.append(f"{_segs(len(drawn_few))} with fewer than {min_deals:,} deals")
    if greys:
        sub += "\ngrey: " + "; ".join(greys)
    S.titles(
        ax,
        title or f"{name} by {seg_name}",
        fit_lines(sub, S.SUBTITLE_SIZE, max(S.axes_inches(ax)[0] * 72, 150.0)),
    )
    return ax


def _segs(k: int) -> str:
    return f"{k:,} segment" if k == 1 else f"{k:,} segments"


#: legend geometry, in font sizes
_HANDLE, _TEXTPAD, _COLSPACE = 1.6, 0.5, 1.0


def _legend_fit(
    texts: list[str], title: str, width_pt: float, height_pt: float
) -> tuple[float, int, float]:
    """Type size, columns and width (pt) of a legend that fits ``height_pt`` and takes
    at most 45% of ``width_pt``: one column at the largest type that fits, else two."""
    best = (S.SMALL_SIZE, 1, 0.0)
    for ncol in (1, 2, 3):
        for size in (S.ANNOT_SIZE, S.SMALL_SIZE, 7.5, 7.0, 6.5):
            lines = [t.count("\n") + 1 for t in texts]
            per_col = -(-len(texts) // ncol)
            # rows of a column: the tallest column (matplotlib fills column by column)
            col_lines = max(sum(lines[c * per_col : (c + 1) * per_col]) for c in range(ncol))
            tall = (col_lines + 1.3) * size * 1.25 + per_col * 0.5 * size + 0.8 * size
            entry = (_HANDLE + _TEXTPAD) * size + max(text_width_pt(t, size) for t in texts)
            wide = max(ncol * entry + (ncol - 1) * _COLSPACE * size,
                       text_width_pt(title, size)) + 0.8 * size  # fmt: skip
            best = (size, ncol, wide)
            if tall <= height_pt and wide <= 0.45 * width_pt:
                return best
    return best


def _labels(table: Any, seg_cols: list[str]) -> Any:
    """One label per row: its segment values joined by " · ", missing ones "(missing)"."""
    labels = table[seg_cols].astype(object).where(table[seg_cols].notna(), "(missing)")
    return labels.astype(str).agg(" · ".join, axis=1)


def _by_name(labels: Any) -> list[str]:
    """Segment labels sorted by name, those with a missing value last."""
    return sorted(labels, key=lambda g: ("(missing)" in g, g))


def _deal_counts(
    table: Any, log: Any, seg_cols: list[str], by: Any, skips: str, comp: dict[str, Any]
) -> Any:
    """Deals per segment label (reached at any stage), or None where the table holds
    amounts and there is no log to count deals in."""
    weighted = "weight" in table.columns and str(table["weight"].dropna().iloc[0]) != "deals"
    if not weighted and "weight" not in table.columns:
        weighted = not np.all(np.mod(table["reached"].to_numpy(dtype=float), 1) == 0)
    if not weighted:
        return table.groupby("_segment", sort=False)["reached"].max()
    if log is None:
        return None
    counts = log.funnel(by=by, skips=skips, **comp)
    counts["_segment"] = _labels(counts, seg_cols)
    return counts.groupby("_segment", sort=False)["reached"].max()


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
