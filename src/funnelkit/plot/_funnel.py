"""The classic funnel chart: one centred bar per stage, widest at the top."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .._params import CHECKED_INSIDE, TITLE, Options, validate_params
from . import _style as S

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FUNNEL_COLUMNS = ["stage", "reached", "advanced", "dropped", "open", "conversion"]
_FUNNEL_ALL = FUNNEL_COLUMNS + [
    "conversion_low",
    "conversion_high",
    "unresolved",
    "conversion_closed",
    "conversion_closed_low",
    "conversion_closed_high",
    "conversion_raw",
    "cumulative",
    "cumulative_closed",
    "win_rate_from",
    "win_rate_from_low",
    "win_rate_from_high",
    "win_rate_from_closed",
    "skips",
    "weight",
]

#: where the bars end and the text column starts, in axes fraction
_BARS_END = 0.6
_TEXT_AT = 0.63
#: with conversion gauges: bars end, gauge from .. to, text column (axes fraction)
_GAUGE_BARS_END = 0.47
_GAUGE = (0.49, 0.635)
_GAUGE_TEXT_AT = 0.655
#: gauge height, in stage rows
_GAUGE_HEIGHT = 0.3
_TRACK = "#E4E4E4"


def key_stage_names(key: Any, stages: Sequence[Any]) -> list[Any]:
    """Stage names to highlight, from a list or a key-stages table (``stage``, ``is_key``)."""
    if key is None:
        return []
    if isinstance(key, pd.DataFrame):
        if not {"stage", "is_key"} <= set(key.columns):
            raise ValueError(
                "`key` as a table needs the columns 'stage' and 'is_key' of "
                f"log.key_stages(); found {list(key.columns)}."
            )
        flagged = key.loc[key["is_key"].fillna(False).astype(bool), "stage"]
        names = S.ordered_unique(flagged)
        return [s for s in names if s in set(stages)]
    if isinstance(key, str):
        key = [key]
    return S.stage_names(stages, key, "key")


def segment_columns(table: pd.DataFrame) -> list[str]:
    """The ``by`` columns of a funnel table: those before ``stage`` that are not metrics."""
    return [c for c in table.columns if c not in _FUNNEL_ALL]


@S.chart
@validate_params(
    {
        "data": [CHECKED_INSIDE],
        "ax": ["axes", None],
        "title": TITLE,
        "kwargs": [CHECKED_INSIDE],
        "key": ["str_list", pd.DataFrame, None],
        "skips": [Options(str, ("implied", "strict"))],
        "weight": [str, None],
    }
)
def funnel(
    data: Any,
    *,
    ax: Axes | None = None,
    key: Sequence[str] | pd.DataFrame | None = None,
    skips: Literal["implied", "strict"] = "implied",
    weight: str | None = None,
    title: str | None = None,
    **kwargs: Any,
) -> Axes:
    """Funnel chart: deals reaching each stage, with conversion and drop-off.

    One horizontal bar per stage in funnel order, first stage at the top, bars centred;
    the bar width is ``reached``. Each bar carries its count, and a text column on the
    right gives the conversion to the next stage (to won, for the last stage), the deals
    dropped there and the deals still open there.

    With the interval columns of ``log.funnel()``, a gauge per stage shows the conversion
    on a 0–100% track: green up to the estimate, the 95% interval as a black line over it
    and, where part of the probability is not resolved yet (``unresolved`` >= 0.05%,
    :data:`funnelkit.plot._style.UNRESOLVED_MIN`), that share hatched after the estimate.
    Such a stage is *not settled yet*: its estimate is only what has happened so far, so
    the text gives the interval instead of a point, e.g. "30.7–86.9% advance, 24.3%
    unresolved".

    Parameters
    ----------
    data : EventLog or pandas.DataFrame
        An event log, or a funnel table from ``log.funnel()`` (columns ``stage``,
        ``reached``, ``advanced``, ``dropped``, ``open``, ``conversion``; optional
        ``conversion_low``, ``conversion_high`` — the gauges — and ``unresolved``; one
        row per stage — for a segmented table use :func:`funnelkit.plot.segments`).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure sized for the number of stages.
    key : list of str or DataFrame, optional
        Stages to highlight: names, or a key-stages table (``stage``, ``is_key``) whose
        flagged stages are highlighted.
    skips : {"implied", "strict"}, default "implied"
        Skip rule when ``data`` is an EventLog (see ``EventLog.funnel``); a table says
        which rule it used in its ``skips`` column.
    weight : {"amount"}, optional
        With an EventLog: weight deals by amount (revenue funnel). With a table: say that
        its counts are amounts; default: inferred (non-whole ``reached`` values).
    title : str, optional
        Default "Sales funnel" ("Revenue funnel" when weighted).
    **kwargs
        With an EventLog, the keywords of :meth:`EventLog.funnel` (``within``,
        ``calendar``); the rest go to :meth:`matplotlib.axes.Axes.barh` (e.g. ``color``,
        ``height``).

    Returns
    -------
    matplotlib.axes.Axes
        The bars are ``ax.containers[0]`` in funnel order (first stage first). Texts
        carry the gids ``"funnel-count"`` and ``"funnel-conversion"`` (one per stage, in
        funnel order); the gauges' patches ``"funnel-gauge"`` (the tracks),
        ``"funnel-advance"`` (the estimates) and ``"funnel-unresolved"`` (one per stage
        not settled yet), their interval lines ``"funnel-ci"`` (one per stage with an
        interval).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> ax = fk.plot.funnel(log, key=["Demo"])
    >>> [int(bar.get_width()) for bar in ax.containers[0]][:2]  # deals reaching the stage
    [600, 532]
    >>> ax.get_title()
    'Sales funnel'
    """
    comp, kwargs = S.split_kwargs("funnel", data, kwargs, "funnel", taken=["skips", "weight"])
    table, _ = S.table_or_log(
        data,
        required=FUNNEL_COLUMNS,
        compute=lambda log: log.funnel(skips=skips, weight=weight, **comp),
        what="a funnel table (log.funnel())",
    )
    seg = segment_columns(table)
    if seg or table["stage"].duplicated().any():
        raise ValueError(
            f"The funnel table has several rows per stage (segment columns {seg}); draw it "
            "with fk.plot.segments, or pass one segment's rows."
        )
    if table.empty:
        raise ValueError("The funnel table is empty: no stage to draw.")
    stages = table["stage"].tolist()
    n = len(stages)
    reached = table["reached"].to_numpy(dtype=float)
    if weight is None and "weight" in table.columns:
        w = table["weight"].dropna()
        weighted = bool(len(w)) and str(w.iloc[0]) != "deals"  # log.funnel() says
    else:
        weighted = weight is not None or not np.all(np.mod(reached, 1) == 0)
    rule = str(table["skips"].iloc[0]) if "skips" in table.columns else None
    keys = set(key_stage_names(key, stages))

    conv = table["conversion"].to_numpy(dtype=float)
    gauges = {"conversion_low", "conversion_high"} <= set(table.columns)
    if gauges:
        low = table["conversion_low"].to_numpy(dtype=float)
        high = table["conversion_high"].to_numpy(dtype=float)
    unres = (
        table["unresolved"].to_numpy(dtype=float) if "unresolved" in table.columns else np.zeros(n)
    )
    open_ = S.unsettled(unres) & gauges  # not settled yet: an interval, not a point
    bars_end = _GAUGE_BARS_END if gauges else _BARS_END
    text_at = _GAUGE_TEXT_AT if gauges else _TEXT_AT

    ax = S.new_axes(ax, (10.5 if gauges else 10.0, 1.6 + 0.48 * max(n, 3)))
    y = np.arange(n)[::-1].astype(float)  # first stage at the top
    colors = [S.HIGHLIGHT if s in keys else S.BAR for s in stages]
    bar_kw: dict[str, Any] = {"height": 0.72, "color": colors, "edgecolor": "none"}
    bar_kw.update(kwargs)
    ax.barh(y, reached, left=-reached / 2, **bar_kw)
    top = float(np.nanmax(reached)) if np.nanmax(reached) > 0 else 1.0
    span = top / (bars_end - 0.02)
    ax.set_xlim(-top / 2 - 0.01 * span, -top / 2 - 0.01 * span + span)
    ax.set_ylim(-0.6, n - 0.4)

    # counts: inside wide bars, beside narrow ones
    fmt = S.compact if weighted else S.count
    for yi, r, c in zip(y, reached, colors, strict=True):
        txt = fmt(r)
        inside = r >= 0.16 * top
        ax.text(
            0 if inside else r / 2 + 0.01 * top,
            yi,
            txt,
            ha="center" if inside else "left",
            va="center",
            fontsize=S.ANNOT_SIZE + 0.5,
            fontweight="bold",
            color=S.text_on(c) if inside else S.TEXT,
            gid="funnel-count",
        )
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(ax.transAxes, ax.transData)
    if gauges:
        _draw_gauges(ax, trans, y, conv, low, high, unres, open_)
    # text column: conversion (its interval when not settled), dropped, open
    for i, (yi, row) in enumerate(zip(y, table.itertuples(index=False), strict=True)):
        goes = "advance" if i < n - 1 else "won"
        if open_[i]:
            head = f"{S.pct_range(low[i], high[i])} {goes}, {S.pct(unres[i])} unresolved"
        else:
            head = f"{S.pct(conv[i])} {goes}"
        counts = [f"{fmt(row.dropped)} dropped"]
        if row.open > 0:
            counts.append(f"{fmt(row.open)} open")
        text = f"{head}\n{'  ·  '.join(counts)}" if open_[i] else "  ·  ".join([head, *counts])
        ax.text(
            text_at,
            yi,
            text,
            transform=trans,
            ha="left",
            va="center",
            fontsize=S.ANNOT_SIZE,
            color=S.TEXT,
            linespacing=1.25,
            gid="funnel-conversion",
        )
    S.style_axes(ax, grid=None)
    ax.spines["bottom"].set_visible(False)
    ax.spines["left"].set_visible(False)
    ax.tick_params(axis="y", length=0)
    ax.set_xticks([])
    ax.set_yticks(y, [S.wrap(s) for s in stages])
    for tick, s in zip(ax.get_yticklabels(), stages, strict=True):
        if s in keys:
            tick.set_color(S.HIGHLIGHT)
            tick.set_fontweight("bold")

    what = "Amount (sum over deals)" if weighted else "Deals"
    rule_txt = {
        "implied": "skipped stages count as reached (skips implied)",
        "strict": "only stages actually entered count (skips strict)",
    }.get(rule or "", "")
    sub = f"{what} reaching each stage" + (f"; {rule_txt}" if rule_txt else "")
    if gauges:
        sub += (
            "\nconversion = probability of advancing; open deals count for the time they "
            "have been open"
        )
        if open_.any():
            sub += "\nhatched = not resolved yet: such a stage's conversion is its 95% interval"
    else:
        sub += "\nconversion as given in the table"
    if comp.get("within") is not None:
        sub += f"; advanced = within {comp['within']} of reaching the stage"
    S.titles(
        ax,
        title or ("Revenue funnel" if weighted else "Sales funnel"),
        sub,
        extra_pad=S.ANNOT_SIZE * 1.9 if gauges else 0.0,
    )
    from matplotlib.patches import Patch

    if keys:
        key_legend = ax.legend(
            handles=[Patch(color=S.HIGHLIGHT, label="key stage")],
            loc="lower left",
            frameon=False,
            fontsize=S.ANNOT_SIZE,
        )
    if gauges:
        from matplotlib.lines import Line2D

        handles = [
            Patch(color=S.WON, label="advanced"),
            Line2D([], [], color=S.TEXT, linewidth=1.4, label="95% interval"),
        ]
        if open_.any():
            handles.insert(1, Patch(**_UNRESOLVED_STYLE, label="unresolved"))
        gauge_legend = ax.legend(
            handles=handles,
            loc="lower left",
            bbox_to_anchor=(_GAUGE[0] - 0.01, 1.0),
            ncol=len(handles),
            frameon=False,
            fontsize=S.SMALL_SIZE,
            handlelength=1.4,
            columnspacing=1.0,
            borderaxespad=0.2,
        )
        gauge_legend.set_gid("funnel-gauge-legend")
        if keys:
            ax.add_artist(key_legend)  # a second legend replaces the first otherwise
    return ax


#: the hatched look of unresolved probability (the same as in fk.plot.incidence)
_UNRESOLVED_STYLE: dict[str, Any] = {
    "facecolor": "white",
    "edgecolor": S.CENSORED,
    "hatch": "////",
    "linewidth": 0.0,
}


def _draw_gauges(
    ax: Axes,
    trans: Any,
    y: np.ndarray,
    conv: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    unres: np.ndarray,
    open_: np.ndarray,
) -> None:
    """Per stage a 0–100% track: green to the estimate, the unresolved share hatched
    after it (stages not settled yet), the 95% interval as a line with end ticks."""
    from matplotlib.patches import Rectangle

    x0, x1 = _GAUGE
    w = x1 - x0
    h = _GAUGE_HEIGHT

    def rect(a: float, b: float, yi: float, gid: str, **style: Any) -> None:
        ax.add_patch(
            Rectangle((x0 + w * a, yi - h / 2), w * (b - a), h, transform=trans, gid=gid, **style)
        )

    for i, yi in enumerate(y):
        rect(0.0, 1.0, yi, "funnel-gauge", facecolor=_TRACK, edgecolor="none", zorder=2)
        if np.isfinite(conv[i]):
            rect(0.0, conv[i], yi, "funnel-advance", facecolor=S.WON, edgecolor="none", zorder=3)
            if open_[i]:
                end = min(conv[i] + unres[i], 1.0)
                rect(conv[i], end, yi, "funnel-unresolved", zorder=3, **_UNRESOLVED_STYLE)
        if np.isfinite(low[i]) and np.isfinite(high[i]):
            ax.plot(
                [x0 + w * low[i], x0 + w * high[i]],
                [yi, yi],
                transform=trans,
                color=S.TEXT,
                linewidth=1.4,
                marker="|",
                markersize=7,
                markeredgewidth=1.4,
                solid_capstyle="butt",
                zorder=4,
                gid="funnel-ci",
            )
