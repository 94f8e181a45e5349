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

#: gauge width (axes fraction) and its gaps to the bars and to the text column
_GAUGE_WIDTH = 0.15
_GAP = 0.025
#: gauge height, in stage rows
_GAUGE_HEIGHT = 0.3
#: the text column takes at most this share of the axes width (smaller type beyond)
_TEXT_MAX = 0.5
#: smallest type of the text column (pt)
_MIN_SIZE = 6.5
#: line spacing of the text column
_LINE = 1.15
#: a layout engine shrinks the Axes to fit labels: keep this share of it in reserve
_LAYOUT_SLACK = 0.88


def _track() -> str:
    """The light 0–100% track of a gauge: the text colour faded into the background."""
    th = S.theme()
    return S.mix(th.text, th.face, 0.85)


def _unresolved_style() -> dict[str, Any]:
    """The hatched look of unresolved probability, on the theme's paper."""
    return {
        "facecolor": S.theme().paper,
        "edgecolor": S.CENSORED,
        "hatch": "////",
        "linewidth": 0.0,
    }


text_width_pt = S.text_width_pt  # shared with the other charts


def usable_inches(ax: Axes) -> tuple[float, float]:
    """Width and height of ``ax`` in inches that a chart can count on: a layout engine
    (constrained) will shrink the Axes a little to fit its labels."""
    w, h = S.axes_inches(ax)
    if ax.figure.get_layout_engine() is not None:
        return w * _LAYOUT_SLACK, h * _LAYOUT_SLACK
    return w, h


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


def fit_lines(text: str, size: float, width_pt: float) -> str:
    """``text`` with each line wrapped at spaces to at most ``width_pt`` points at
    ``size`` (a subtitle that stays above its own Axes in a grid)."""
    return S.fit_width(text, width_pt / 72, size)


def key_stages_tested(key: Any) -> int | None:
    """How many stages a key-stages table tested (a row with an effect or a p-value);
    None for a list of names (nothing was tested)."""
    if not isinstance(key, pd.DataFrame):
        return None
    ran = pd.Series(False, index=key.index)
    for col in ("effect", "p_value"):
        if col in key.columns:
            ran |= pd.to_numeric(key[col], errors="coerce").notna()
    return int(key.loc[ran, "stage"].nunique())


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
        "intervals": ["boolean"],
    }
)
def funnel(
    data: Any,
    *,
    ax: Axes | None = None,
    key: Sequence[str] | pd.DataFrame | None = None,
    skips: Literal["implied", "strict"] = "implied",
    weight: str | None = None,
    intervals: bool = True,
    title: str | None = None,
    **kwargs: Any,
) -> Axes:
    """Funnel chart: deals reaching each stage, the deals won, conversion and drop-off.

    One horizontal bar per stage in funnel order, first stage at the top, bars centred;
    the bar width is ``reached``. Below the last stage a green bar gives the deals won.
    Each bar carries its count. A text column at the right, inside the Axes, gives per
    stage its share of the first stage and of the previous one ("55.3% of first · 75.3%
    of previous", from ``reached``) and, under it, the conversion to the next stage (to
    won, for the last stage), the deals dropped there and the deals still open there.

    With ``intervals`` and the interval columns of ``log.funnel()``, a gauge per stage
    shows the conversion on a 0–100% track: green up to the estimate, its 95% interval
    (``conversion_low`` to ``conversion_high``) as a whisker over it and, where part of
    the probability is not resolved yet (``unresolved`` >= 0.05%,
    :data:`funnelkit.plot._style.UNRESOLVED_MIN`), that share hatched after the estimate.
    Such a stage is *not settled yet*: its estimate is only what has happened so far, so
    the text gives the interval instead of a point, e.g. "30.7–86.9% advance, 24.3%
    unresolved".

    Everything is drawn inside the given Axes (the text column and the legend, in a row
    reserved under the bars): in a grid of charts nothing reaches into a neighbour.
    The type of the text column shrinks to fit small Axes.

    Parameters
    ----------
    data : EventLog or pandas.DataFrame
        An event log, or a funnel table from ``log.funnel()`` (columns ``stage``,
        ``reached``, ``advanced``, ``dropped``, ``open``, ``conversion``; optional
        ``conversion_low``, ``conversion_high`` — the gauges — and ``unresolved``; one
        row per stage — for a segmented table use :func:`funnelkit.plot.segments`).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure sized for the number of stages (at most
        14 in tall).
    key : list of str or DataFrame, optional
        Stages to highlight: names, or a key-stages table (``stage``, ``is_key``; from
        ``log.key_stages()``) whose flagged stages (``is_key``) are highlighted — only
        those; the subtitle says how many stages the table tested.
    skips : {"implied", "strict"}, default "implied"
        Skip rule when ``data`` is an EventLog (see ``EventLog.funnel``); a table says
        which rule it used in its ``skips`` column.
    weight : {"amount"}, optional
        With an EventLog: weight deals by amount (revenue funnel). With a table: say that
        its counts are amounts; default: inferred (non-whole ``reached`` values).
    intervals : bool, default True
        Draw the conversion gauges with their 95% interval whiskers (when the table has
        ``conversion_low`` and ``conversion_high``). False: the text column only.
    title : str, optional
        Default "Sales funnel" ("Revenue funnel" when weighted).
    **kwargs
        With an EventLog, the keywords of :meth:`EventLog.funnel` (``within``,
        ``calendar``); the rest go to :meth:`matplotlib.axes.Axes.barh` (e.g. ``color``,
        ``height``) for the stage bars.

    Returns
    -------
    matplotlib.axes.Axes
        The stage bars are ``ax.containers[0]`` in funnel order (first stage first), the
        won bar ``ax.containers[1]``: with an EventLog its width is the deals won (their
        amount when weighted); with a table, the last stage's ``advanced`` (under
        ``skips="implied"`` every won deal), labelled with the log's win name when it
        has one (else "Won") by a minor y tick (the major tick labels are the stages). Texts carry the gids ``"funnel-count"``,
        ``"funnel-share"`` (% of first · % of previous) and ``"funnel-conversion"`` (one
        per stage, in funnel order), ``"funnel-won-count"`` and ``"funnel-won-share"``;
        the gauges' patches ``"funnel-gauge"`` (the tracks), ``"funnel-advance"`` (the
        estimates) and ``"funnel-unresolved"`` (one per stage not settled yet), their
        interval whiskers ``"funnel-ci"`` (one per stage with an interval); the legend
        ``"funnel-legend"``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> ax = fk.plot.funnel(log, key=log.key_stages(n_boot=0))
    >>> [int(bar.get_width()) for bar in ax.containers[0]][:2]  # deals reaching the stage
    [600, 532]
    >>> int(ax.containers[1][0].get_width())  # deals won
    60
    >>> ax.get_title()
    'Sales funnel'
    """
    comp, kwargs = S.split_kwargs("funnel", data, kwargs, "funnel", taken=["skips", "weight"])
    table, log = S.table_or_log(
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
    tested = key_stages_tested(key)
    won = _won(table, log, weighted)

    conv = table["conversion"].to_numpy(dtype=float)
    gauges = intervals and {"conversion_low", "conversion_high"} <= set(table.columns)
    low = table["conversion_low"].to_numpy(dtype=float) if gauges else np.full(n, np.nan)
    high = table["conversion_high"].to_numpy(dtype=float) if gauges else np.full(n, np.nan)
    unres = (
        table["unresolved"].to_numpy(dtype=float) if "unresolved" in table.columns else np.zeros(n)
    )
    open_ = S.unsettled(unres) & gauges  # not settled yet: an interval, not a point
    fmt = S.compact if weighted else S.count

    # ---- the texts of the column: shares of first / previous, then leaving the stage
    first = reached[0]
    shares = [_shares(r, first, None if i == 0 else reached[i - 1]) for i, r in enumerate(reached)]
    won_share = _shares(won, first, reached[-1])
    heads, tails = [], []
    for i, row in enumerate(table.itertuples(index=False)):
        goes = "advance" if i < n - 1 else "won"
        if open_[i]:
            heads.append(f"{S.pct_range(low[i], high[i])} {goes}, {S.pct(unres[i])} unresolved")
        else:
            heads.append(f"{S.pct(conv[i])} {goes}")
        counts = [f"{fmt(row.dropped)} dropped"]
        if row.open > 0:
            counts.append(f"{fmt(row.open)} open")
        tails.append("  ·  ".join(counts))

    # ---- the legend: what the colours and the gauge marks mean
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    if keys:
        handles.append(Patch(color=S.HIGHLIGHT, label="key stage"))
    if gauges:
        handles.append(Patch(color=S.WON, label="advanced"))
        if open_.any():
            handles.append(Patch(**_unresolved_style(), label="unresolved"))
        handles.append(
            Line2D(
                [], [], color=S.TEXT, linewidth=1.4, marker="|", markersize=6, label="95% interval"
            )
        )

    n_rows = n + 1  # the stages and the won bar
    ax = S.new_axes(
        ax,
        (10.5 if gauges else 10.0, min(14.0, 2.2 + 0.55 * max(n_rows, 4) + 0.4 * bool(handles))),
    )
    width_in, height_in = usable_inches(ax)
    layout = _text_layout(shares, heads, tails, open_, width_in, height_in, n_rows + 1)
    size, split = layout["size"], layout["split"]
    conv_texts = [
        f"{h}\n{t}" if (open_[i] or split) else f"{h}  ·  {t}"
        for i, (h, t) in enumerate(zip(heads, tails, strict=True))
    ]
    text_at = 1.0 - layout["frac"] - 0.01
    if gauges:
        gauge = (text_at - _GAP - _GAUGE_WIDTH, text_at - _GAP)
        bars_end = gauge[0] - _GAP
    else:
        gauge = (text_at, text_at)
        bars_end = text_at - _GAP

    # the legend gets a row of its own under the won bar, as wide as the Axes allows
    leg_size = min(S.SMALL_SIZE, size)
    ncol, leg_pt = _legend_shape(handles, leg_size, width_in * 72)
    extra = leg_pt * (n_rows + 0.2) / max(height_in * 72 - leg_pt, 1.0) if handles else 0.0

    y = np.arange(n, 0, -1).astype(float)  # first stage at the top, won at y = 0
    colors = [S.HIGHLIGHT if s in keys else S.BAR for s in stages]
    bar_kw: dict[str, Any] = {"height": 0.72, "color": colors, "edgecolor": "none"}
    bar_kw.update(kwargs)
    ax.barh(y, reached, left=-reached / 2, **bar_kw)
    ax.barh(
        [0.0], [won], left=[-won / 2], height=bar_kw["height"], color=S.WON, lw=0, gid="funnel-won"
    )
    top = max(float(np.nanmax(reached)), won)
    top = top if top > 0 else 1.0
    span = top / max(bars_end - 0.02, 0.05)
    ax.set_xlim(-top / 2 - 0.01 * span, -top / 2 - 0.01 * span + span)
    ax.set_ylim(-0.6 - extra, n + 0.6)

    # counts: inside wide bars, beside narrow ones
    count_size = min(S.ANNOT_SIZE + 0.5, size + 0.5)
    for yi, r, c, gid in zip(
        [*y, 0.0],
        [*reached, won],
        [*colors, S.WON],
        ["funnel-count"] * n + ["funnel-won-count"],
        strict=True,
    ):
        inside = r >= 0.16 * top
        ax.text(
            0 if inside else r / 2 + 0.01 * top,
            yi,
            fmt(r),
            ha="center" if inside else "left",
            va="center",
            fontsize=count_size,
            fontweight="bold",
            color=S.text_on(c) if inside else S.TEXT,
            gid=gid,
        )
    from matplotlib.transforms import ScaledTranslation, blended_transform_factory

    trans = blended_transform_factory(ax.transAxes, ax.transData)
    if gauges:
        _draw_gauges(ax, trans, gauge, y, conv, low, high, unres, open_)
    # the share line just above the row's centre, the conversion just below it
    above = trans + ScaledTranslation(0, 1 / 72, ax.figure.dpi_scale_trans)
    below = trans + ScaledTranslation(0, -1 / 72, ax.figure.dpi_scale_trans)
    muted, text = S.MUTED, S.TEXT
    for yi, share, conv_text in zip(y, shares, conv_texts, strict=True):
        ax.text(text_at, yi, share, transform=above, ha="left", va="bottom", fontsize=size,
                color=muted, gid="funnel-share")  # fmt: skip
        ax.text(text_at, yi, conv_text, transform=below, ha="left", va="top", fontsize=size,
                color=text, linespacing=_LINE, gid="funnel-conversion")  # fmt: skip
    ax.text(text_at, 0.0, won_share, transform=trans, ha="left", va="center", fontsize=size,
            color=muted, gid="funnel-won-share")  # fmt: skip

    S.style_axes(ax, grid=None)
    ax.spines["bottom"].set_visible(False)
    ax.spines["left"].set_visible(False)
    ax.tick_params(axis="y", which="both", length=0)
    ax.set_xticks([])
    names = [S.wrap(s) for s in stages]
    name_lines = max(t.count("\n") + 1 for t in names)
    row_pt = height_in * 72 / (n_rows + 1)
    tick_size = min(S.TICK_SIZE, max(0.95 * row_pt / (name_lines * 1.2), _MIN_SIZE))
    ax.set_yticks(y, names, fontsize=tick_size)
    # the won bar's label: a minor tick, so that the major tick labels are the stages
    # named as the log names its one win (赢单, Closed won), else "Won"
    won_names = list(getattr(log, "won", None) or []) if log is not None else []
    won_label = S.wrap(won_names[0]) if len(won_names) == 1 else "Won"
    ax.set_yticks([0.0], [won_label], minor=True, fontsize=tick_size)
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
    elif "conversion_low" not in table.columns:
        sub += "\nconversion as given in the table"
    if comp.get("within") is not None:
        sub += f"; advanced = within {comp['within']} of reaching the stage"
    if tested is not None:
        k = len(keys)
        sub += (
            f"\nkey stages (log.key_stages()): {k} of {tested} stages tested "
            f"{'is' if k == 1 else 'are'} key" + (", highlighted" if k else "")
        )
    S.titles(
        ax,
        title or ("Revenue funnel" if weighted else "Sales funnel"),
        fit_lines(sub, S.SUBTITLE_SIZE, max(S.axes_inches(ax)[0] * 72, 150.0)),
    )
    if handles:
        leg = ax.legend(
            handles=handles,
            loc="lower left",
            bbox_to_anchor=(0.0, 0.0),
            ncol=ncol,
            frameon=False,
            fontsize=leg_size,
            handlelength=1.4,
            handletextpad=0.5,
            columnspacing=1.0,
            borderaxespad=0.2,
            borderpad=0.2,
        )
        leg.set_gid("funnel-legend")
    return ax


def _shares(r: float, first: float, previous: float | None) -> str:
    """'55.3% of first · 75.3% of previous' for a bar of ``r`` deals."""
    with np.errstate(invalid="ignore", divide="ignore"):
        of_first = r / first if first > 0 else np.nan
        if previous is None:
            return f"{S.pct(of_first)} of first"
        of_prev = r / previous if previous > 0 else np.nan
    return f"{S.pct(of_first)} of first  ·  {S.pct(of_prev)} of previous"


def _won(table: pd.DataFrame, log: Any, weighted: bool) -> float:
    """Deals won (their amount when weighted): from the log's outcomes, else the last
    stage's advanced (every won deal under skips="implied")."""
    if log is not None:
        d = log.deals()
        is_won = d["outcome"] == "won"
        if weighted:
            return float(pd.to_numeric(d.loc[is_won, "amount"], errors="coerce").fillna(0).sum())
        return float(is_won.sum())
    last = float(table["advanced"].iloc[-1])
    return last if np.isfinite(last) else 0.0


def _text_layout(
    shares: list[str],
    heads: list[str],
    tails: list[str],
    open_: np.ndarray,
    width_in: float,
    height_in: float,
    rows: float,
) -> dict[str, Any]:
    """Type size of the text column, whether each conversion text goes on two lines,
    and the column's width as a share of the Axes: the largest type (at most
    ANNOT_SIZE) with which the column fits in its rows and in half the Axes width."""
    row_pt = height_in * 72 / rows
    best: dict[str, Any] | None = None
    for split in (False, True):
        lines = 2 + (1 if (split or open_.any()) else 0)
        texts = shares + [
            f"{h}\n{t}" if (split or o) else f"{h}  ·  {t}"
            for h, t, o in zip(heads, tails, open_, strict=True)
        ]
        size = min(S.ANNOT_SIZE, 0.95 * row_pt / (lines * _LINE))
        wide = max(text_width_pt(t, size) for t in texts) / 72
        if wide > _TEXT_MAX * width_in:
            size *= _TEXT_MAX * width_in / wide
        size = max(size, _MIN_SIZE)
        # rendered type runs up to ~3% wider than its outline (hinting)
        frac = 1.04 * max(text_width_pt(t, size) for t in texts) / 72 / width_in
        if best is None or size > best["size"] + 0.25:
            best = {"size": size, "split": split, "frac": min(frac, 0.75)}
    assert best is not None
    return best


def _legend_shape(handles: list[Any], size: float, width_pt: float) -> tuple[int, float]:
    """Columns of a legend that fits ``width_pt`` and its height in points."""
    if not handles:
        return 1, 0.0
    entry = [(1.4 + 0.5 + 1.0) * size + text_width_pt(h.get_label(), size) for h in handles]
    ncol = len(handles)
    while ncol > 1 and sum(sorted(entry, reverse=True)[:ncol]) > 0.95 * width_pt:
        ncol -= 1
    rows = -(-len(handles) // ncol)
    return ncol, rows * size * 1.3 + 0.8 * size + 4


def _draw_gauges(
    ax: Axes,
    trans: Any,
    gauge: tuple[float, float],
    y: np.ndarray,
    conv: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    unres: np.ndarray,
    open_: np.ndarray,
) -> None:
    """Per stage a 0–100% track: green to the estimate, the unresolved share hatched
    after it (stages not settled yet), the 95% interval as a whisker with end ticks."""
    from matplotlib.patches import Rectangle

    x0, x1 = gauge
    w = x1 - x0
    h = _GAUGE_HEIGHT
    track = _track()
    unresolved = _unresolved_style()

    def rect(a: float, b: float, yi: float, gid: str, **style: Any) -> None:
        ax.add_patch(
            Rectangle((x0 + w * a, yi - h / 2), w * (b - a), h, transform=trans, gid=gid, **style)
        )

    for i, yi in enumerate(y):
        rect(0.0, 1.0, yi, "funnel-gauge", facecolor=track, edgecolor="none", zorder=2)
        if np.isfinite(conv[i]):
            rect(0.0, conv[i], yi, "funnel-advance", facecolor=S.WON, edgecolor="none", zorder=3)
            if open_[i]:
                end = min(conv[i] + unres[i], 1.0)
                rect(conv[i], end, yi, "funnel-unresolved", zorder=3, **unresolved)
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
