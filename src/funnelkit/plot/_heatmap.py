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
    coloured by kind. Each non-zero cell is annotated with its share; rows sum to 100%
    (still-open visits are censored and make no exit).

    Parameters
    ----------
    data : EventLog or pandas.DataFrame
        An event log, ``log.transition_matrix()`` or ``log.transitions()``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure sized for the matrix.
    decimals : int, default 1
        Decimals of the percentages in the cells.
    colorbar : bool, default True
        Draw a colour bar (it takes room from ``ax``'s figure).
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
        gid ``"heatmap-cell"``.

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
    _, kwargs = S.split_kwargs("heatmap", data, kwargs, None)
    m, stages, kinds = share_matrix(data, won, lost)
    if m.empty:
        raise ValueError("The transition matrix is empty: no stage to draw.")
    values = m.to_numpy(dtype=float)
    n_rows, n_cols = values.shape
    # at least as wide as the subtitle (one stage and two outcomes made it 5.1 inches, and
    # constrained layout then collapsed the axes in SVG and PDF)
    width = min(max(2.8 + 0.78 * n_cols, 6.0), 15.0)
    ax = S.new_axes(ax, (width, min(1.9 + 0.5 * n_rows, 10.0)))
    fig = ax.figure
    im_kw: dict[str, Any] = {"cmap": "Blues", "vmin": 0.0, "vmax": 1.0, "aspect": "auto"}
    im_kw.update(kwargs)
    im = ax.imshow(values, interpolation="nearest", **im_kw)
    cell_in = S.axes_inches(ax)[0] / n_cols
    size = S.ANNOT_SIZE if cell_in >= 0.62 else S.SMALL_SIZE
    for i in range(n_rows):
        for j in range(n_cols):
            v = values[i, j]
            if not v > 0:
                continue
            ax.text(
                j,
                i,
                S.pct(v, decimals),
                ha="center",
                va="center",
                fontsize=size,
                color=S.text_on(im.cmap(im.norm(v))),
                gid="heatmap-cell",
            )
    n_stage_cols = sum(c in set(stages) for c in m.columns)
    if 0 < n_stage_cols < n_cols:
        ax.axvline(n_stage_cols - 0.5, color=S.MUTED, linewidth=1.5)
    # column labels: wrapped to the cell width, or slanted when a word does not fit
    room = max(6, int(cell_in * 72 / (0.62 * S.TICK_SIZE)))
    xlabels = [S.wrap(c, room) for c in m.columns]
    if max(len(line) for lab in xlabels for line in lab.split("\n")) > room:
        ax.set_xticks(range(n_cols), [S.wrap(c, 22, max_lines=2) for c in m.columns])
        for t in ax.get_xticklabels():
            t.set_rotation(45)
            t.set_horizontalalignment("right")
            t.set_rotation_mode("anchor")
    else:
        ax.set_xticks(range(n_cols), xlabels)
    ax.set_yticks(range(n_rows), [S.wrap(r) for r in m.index])
    for sp in ax.spines.values():
        sp.set_visible(False)
    ax.tick_params(length=0, labelsize=S.TICK_SIZE, colors=S.TEXT)
    color = {"won": S.WON, "lost": S.LOST, "stale": S.STALE}
    for tick, c in zip(ax.get_xticklabels(), m.columns, strict=True):
        if c in kinds:
            tick.set_color(color[kinds[c]])
            tick.set_fontweight("bold")
    ax.set_xticks(np.arange(n_cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n_rows + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    S.label(ax, x="to (next stage or outcome)", y="from stage")
    if colorbar:
        from matplotlib.ticker import PercentFormatter

        cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, format=PercentFormatter(1.0))
        cb.outline.set_visible(False)  # type: ignore[operator]
        cb.ax.tick_params(labelsize=S.SMALL_SIZE, colors=S.TEXT)
    S.titles(
        ax,
        title,
        "Share of completed exits from each stage (rows sum to 100%; open visits excluded)",
    )
    return ax
