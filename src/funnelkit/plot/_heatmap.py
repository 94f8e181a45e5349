"""Transition matrix as an annotated heatmap of exit shares."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._params import CHECKED_INSIDE, TITLE, Interval, validate_params
from ..errors import InvalidParameterError
from . import _style as S
from ._flow import (
    fit_lines,
    room_pt,
    squeeze_lines,
    text_height,
    text_width,
    wrap_subtitle,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def share_matrix(
    data: Any,
    won: str | Sequence[str] | None = None,
    lost: str | Sequence[str] | None = None,
) -> tuple[pd.DataFrame, list[Any], dict[Any, str]]:
    """Exit shares, rows = from-stages only; the stage columns; the kind of other columns.

    ``data``: an EventLog, ``log.transition_matrix()`` (square, probabilities) or
    ``log.transitions()`` (long, with ``share``).
    """
    kinds: dict[Any, str] = {}
    if S.is_log(data):
        m = data.transition_matrix()
        stages = list(data.stages)
        kinds.update({t: "won" for t in data.won})
        kinds.update({t: "lost" for t in data.lost})
        kinds["stale"] = "stale"
        m = m.loc[stages]
    elif isinstance(data, pd.DataFrame) and {"from_stage", "to_stage"} <= set(data.columns):
        if "share" not in data.columns:
            raise ValueError(
                "The transition table passed as `data` has no 'share' column; pass "
                "log.transitions() or log.transition_matrix()."
            )
        stages = S.ordered_unique(data["from_stage"].astype(object))
        others = [
            t for t in S.ordered_unique(data["to_stage"].astype(object)) if t not in set(stages)
        ]
        ordered, kinds = S.outcomes(others, won, lost)
        cols = stages + ordered
        m = (
            data.assign(
                from_stage=data["from_stage"].astype(object),
                to_stage=data["to_stage"].astype(object),
            )
            .pivot_table(index="from_stage", columns="to_stage", values="share", aggfunc="sum")
            .reindex(index=stages, columns=cols)
            .fillna(0.0)
        )
    elif isinstance(data, pd.DataFrame):
        m = data.astype(float)
        square = list(m.index) == list(m.columns)
        if not square:
            raise InvalidParameterError(
                "`data` must be an EventLog, log.transitions() (columns from_stage, "
                "to_stage, share) or log.transition_matrix() (a square matrix); got a "
                f"table with columns {list(data.columns)}."
            )
        absorbing = [r for r in m.index if m.loc[r, r] == 1.0 and m.loc[r].sum() == 1.0]
        stages = [r for r in m.index if r not in set(absorbing)]
        m = m.loc[stages]
        kinds = S.outcomes(absorbing, won, lost)[1]
    else:
        raise InvalidParameterError(
            "`data` must be an fk.EventLog or a pandas DataFrame (log.transitions() or "
            f"log.transition_matrix()); got {type(data).__name__}."
        )
    # outcomes that never happen (e.g. no stale deals) get no column
    m = m.loc[:, [c for c in m.columns if c in set(stages) or m[c].sum() > 0]]
    return m, stages, kinds


_SIZES = (S.TICK_SIZE, S.SMALL_SIZE, 7.5)  # label sizes tried, largest first
_CELL_SIZES = (S.ANNOT_SIZE, S.SMALL_SIZE, 7.5, 7.0)  # the same for the cell values
_BAR_W = 9.0  # colour bar width, points
_ROW_LABEL_W = 110.0  # the widest row labels, points


def _column_labels(
    columns: Sequence[Any], bold: Sequence[bool], col_pt: float, max_height: float
) -> tuple[list[str], float, int, int]:
    """Column labels fitted to the cell width: horizontal in up to three lines if every
    name fits, else turned upright (each line one text height wide) and wrapped to
    ``max_height`` points; thinned to every k-th column only in a tiny Axes.

    Returns the labels, their font size, rotation and the step k."""
    weights = ["bold" if b else "normal" for b in bold]
    for size in _SIZES:
        fitted = [
            fit_lines(c, col_pt - 4, size, 3, w) for c, w in zip(columns, weights, strict=True)
        ]
        if all(f is not None for f in fitted):
            return [str(f) for f in fitted], size, 0, 1
    for size in _SIZES:
        n_lines = int((col_pt - 2) // text_height(1, size))
        if n_lines < 1:
            continue
        fitted = [
            fit_lines(c, max_height, size, n_lines, w)
            for c, w in zip(columns, weights, strict=True)
        ]
        if all(f is not None for f in fitted):
            return [str(f) for f in fitted], size, 90, 1
    size = _SIZES[-1]
    n_lines = max(int((col_pt - 2) // text_height(1, size)), 1)
    step = max(int(np.ceil(text_height(1, size) / max(col_pt - 2, 1.0))), 1)
    return [squeeze_lines(c, max_height, size, n_lines) for c in columns], size, 90, step


def _row_labels(rows: Sequence[Any], row_pt: float, width: float) -> tuple[list[str], float, int]:
    """Row labels fitted to the row height and ``width`` points: the largest size at which
    every name fits, in as many lines as the row holds, without cutting a word; else
    squeezed at the smallest size, every k-th row when a line is taller than a row."""
    for size in _SIZES:
        n_lines = int(row_pt // text_height(1, size))
        if n_lines < 1:
            continue
        fitted = [fit_lines(r, width, size, n_lines) for r in rows]
        if all(f is not None for f in fitted):
            return [str(f) for f in fitted], size, 1
    size = _SIZES[-1]
    line = text_height(1, size)
    step = max(int(np.ceil(line / max(row_pt, 1.0))), 1)
    n_lines = max(int(step * row_pt // line), 1)
    return [squeeze_lines(r, width, size, n_lines) for r in rows], size, step


@S.chart
@validate_params(
    {
        "data": [CHECKED_INSIDE],
        "ax": ["axes", None],
        "title": TITLE,
        "kwargs": [CHECKED_INSIDE],
        "decimals": [Interval(Integral, 0, None)],
        "colorbar": ["boolean"],
        "won": ["str_list", None],
        "lost": ["str_list", None],
    }
)
def heatmap(
    data: Any,
    *,
    ax: Axes | None = None,
    decimals: int = 1,
    colorbar: bool = True,
    won: str | Sequence[str] | None = None,
    lost: str | Sequence[str] | None = None,
    title: str | None = "Where deals go next",
    **kwargs: Any,
) -> Axes:
    """Transition matrix heatmap: share of each stage's exits going to each next state.

    Rows are the stages deals leave (absorbing outcome rows are left out), columns every
    next state: stages, then the outcomes (won, lost, ``stale``), whose labels are
    coloured by kind. Each non-zero cell is annotated with its share where the value fits
    the cell (the subtitle counts any left blank); rows sum to 100% (still-open visits are
    censored and make no exit).

    Everything is drawn inside ``ax``: the column labels along its top (upright when the
    names are wider than a cell), the colour bar in its right-hand edge; row labels are
    its y tick labels. Labels get the largest type at which they fit, wrapped between
    words; with many stages in a small Axes only every k-th row or column is labelled.

    Parameters
    ----------
    data : EventLog or pandas.DataFrame
        An event log, ``log.transition_matrix()`` or ``log.transitions()``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure sized for the matrix (at most 12 × 14
        inches).
    decimals : int, default 1
        Decimals of the percentages in the cells.
    colorbar : bool, default True
        Draw a colour bar, inside ``ax`` on its right (an inset Axes, ``ax.child_axes``).
    won, lost : str or list of str, optional
        With a table: which outcomes are won and lost, for the column colours and order
        (default: ``"won"`` is won, every other outcome except ``"stale"`` lost).
    title : str, default "Where deals go next"
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.imshow` (e.g. ``cmap``).

    Returns
    -------
    matplotlib.axes.Axes
        The image is ``ax.images[0]`` (its array holds the shares); cell texts carry the
        gid ``"heatmap-cell"``, column labels ``"heatmap-column"``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> ax = fk.plot.heatmap(log)
    >>> ax.images[0].get_array().shape  # 6 stages; to 6 stages, Won, 2 lost names, stale
    (6, 10)
    >>> ax.get_title()
    'Where deals go next'
    """
    from matplotlib.ticker import NullLocator, PercentFormatter
    from matplotlib.transforms import ScaledTranslation, blended_transform_factory

    _, kwargs = S.split_kwargs("heatmap", data, kwargs, None)
    m, stages, kinds = share_matrix(data, won, lost)
    if m.empty:
        raise ValueError("The transition matrix is empty: no stage to draw.")
    values = m.to_numpy(dtype=float)
    n_rows, n_cols = values.shape
    columns = list(m.columns)
    th = S.theme()
    # a new figure: cells about half an inch wide, a third of an inch tall, room for the
    # column labels; at least as wide as the subtitle (one stage and two outcomes made it
    # 5.1 inches, and constrained layout then collapsed the axes in SVG and PDF)
    longest = max(len(str(c)) for c in columns)
    header_in = 0.35 if longest <= 8 else min(0.25 + 0.06 * min(longest, 24), 1.5)
    width = min(max(2.2 + 0.55 * n_cols + 0.7 * colorbar, 6.0), 12.0)
    figsize = (width, min(max(1.9 + 0.36 * n_rows + header_in, 3.6), 14.0))
    own = figsize if ax is None else None
    ax = S.new_axes(ax, figsize)
    fig = ax.figure
    is_outcome = [c in kinds and c not in set(stages) for c in columns]
    weights = ["bold" if b else "normal" for b in is_outcome]
    cb_size = S.SMALL_SIZE
    # room: in a figure of its own, at first as if row labels took _ROW_LABEL_W points,
    # then what the fitted ones take (the layout gives the rest to the matrix)
    left = _ROW_LABEL_W
    for _ in range(2 if own else 1):
        w_pt, h_pt = room_pt(ax, own, left=left + 22)
        # ---- horizontal room: the colour bar and its tick labels in the right-hand edge
        # gap, bar, tick (2 pt) and its pad (3.5 pt), the widest tick label, a margin
        bar_room = 6 + _BAR_W + 5.5 + text_width("100%", cb_size) + 2 if colorbar else 0.0
        bar_room = min(bar_room, 0.3 * w_pt)
        col_pt = (w_pt - bar_room) / n_cols
        # ---- vertical room: column labels on top, then the rows
        col_labels, col_size, rotation, col_step = _column_labels(
            columns, is_outcome, col_pt, min(0.3 * h_pt, 120.0)
        )
        if rotation:
            header_pt = max(
                text_width(lab, col_size, w) for lab, w in zip(col_labels, weights, strict=True)
            )
        else:
            header_pt = text_height(max(lab.count("\n") + 1 for lab in col_labels), col_size)
        header_pt += 4
        row_pt = (h_pt - header_pt) / n_rows
        row_labels, row_size, row_step = _row_labels(
            list(m.index), row_pt, min(_ROW_LABEL_W, 0.35 * w_pt)
        )
        left = max(text_width(r, row_size) for r in row_labels[::row_step])
    x_hi = -0.5 + n_cols / (1 - bar_room / w_pt)
    header_rows = header_pt / row_pt  # in rows

    im_kw: dict[str, Any] = {"cmap": "Blues", "vmin": 0.0, "vmax": 1.0, "aspect": "auto"}
    im_kw.update(kwargs)
    im = ax.imshow(values, interpolation="nearest", **im_kw)
    ax.set_xlim(-0.5, x_hi)
    ax.set_ylim(n_rows - 0.5, -0.5 - header_rows)

    # ---- cell values: the largest size at which they fit; else those that fit
    texts = {
        (i, j): S.pct(values[i, j], decimals)
        for i in range(n_rows)
        for j in range(n_cols)
        if values[i, j] > 0
    }

    def fits(text: str, size: float) -> bool:
        return text_width(text, size) <= col_pt - 2 and text_height(1, size) * 0.95 <= row_pt

    cell_size = next(
        (s for s in _CELL_SIZES if all(fits(t, s) for t in texts.values())), _CELL_SIZES[-1]
    )
    blank = 0
    for (i, j), text in texts.items():
        if not fits(text, cell_size):
            blank += 1
            continue
        ax.text(
            j,
            i,
            text,
            ha="center",
            va="center",
            fontsize=cell_size,
            color=S.text_on(im.cmap(im.norm(values[i, j]))),
            gid="heatmap-cell",
        )

    # ---- stage | outcome separator, cell borders in the paper colour
    n_stage_cols = sum(c in set(stages) for c in columns)
    if 0 < n_stage_cols < n_cols:
        ax.vlines(n_stage_cols - 0.5, -0.5, n_rows - 0.5, color=th.muted, linewidth=1.5)
    ax.set_xticks([])
    ax.set_xticks(np.arange(n_cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n_rows + 1) - 0.5, minor=True)
    ax.grid(which="minor", color=th.paper, linewidth=1)
    ax.tick_params(which="minor", length=0, labelbottom=False, labelleft=False)

    # ---- labels: rows as y tick labels, columns along the top inside the axes
    ax.set_yticks(range(0, n_rows, row_step), row_labels[::row_step])
    for sp in ax.spines.values():
        sp.set_visible(False)
    ax.tick_params(axis="y", length=0, labelsize=row_size, colors=th.text)
    color = {"won": S.WON, "lost": S.LOST, "stale": S.STALE}
    for j in range(0, n_cols, col_step):
        c = columns[j]
        ax.annotate(
            col_labels[j],
            xy=(j, -0.5),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            rotation=rotation,
            fontsize=col_size,
            fontweight=weights[j],
            color=color[kinds[c]] if is_outcome[j] else th.text,
            gid="heatmap-column",
        )
    S.label(ax, y="from stage")

    if colorbar:
        # an inset in the axes' right-hand edge, placed in points from that edge, so its
        # tick labels stay inside the axes however the layout resizes them
        from_right = fig.dpi_scale_trans + ScaledTranslation(1, 0, ax.transAxes)  # type: ignore[arg-type]
        where = blended_transform_factory(from_right, ax.transAxes)
        body = n_rows / (n_rows + header_rows)
        pad = 6 / h_pt
        cax = ax.inset_axes(
            ((-bar_room + 6) / 72, pad, _BAR_W / 72, max(body - 2 * pad, 0.05)),
            transform=where,
        )
        cb = fig.colorbar(im, cax=cax, format=PercentFormatter(1.0))
        cb.outline.set_visible(False)  # type: ignore[operator]
        cb.ax.tick_params(labelsize=cb_size, colors=th.text, length=2)
        cb.ax.yaxis.set_minor_locator(NullLocator())
        cb.ax.set_gid("heatmap-colorbar")

    notes = [
        "Rows: the stage left  ·  columns: where deals went next (a stage or an outcome)",
        "Share of completed exits from each stage (rows sum to 100%; open visits excluded)",
    ]
    if blank:
        notes.append(f"{blank} cells too small for their value are left blank")
    if row_step > 1 or col_step > 1:
        notes.append("Labels thinned: the Axes is too small to name every row and column")
    S.titles(ax, title, wrap_subtitle(notes, max(w_pt, 240.0)))
    return ax
