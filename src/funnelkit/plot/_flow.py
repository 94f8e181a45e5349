"""Stage-flow (Sankey-like) diagram of the transition table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .._params import CHECKED_INSIDE, TITLE, validate_params
from . import _style as S

if TYPE_CHECKING:
    from matplotlib.axes import Axes

TRANSITION_COLUMNS = ["from_stage", "to_stage", "transitions"]
KINDS = ("forward", "backward", "won", "lost", "stale")
KIND_COLOR = {
    "forward": S.FORWARD,
    "backward": S.BACKWARD,
    "won": S.WON,
    "lost": S.LOST,
    "stale": S.STALE,
}
_NODE_W = 0.09  # node width, in stage spacings


def classify(
    table: pd.DataFrame, stages: Sequence[Any], won: Sequence[Any], lost: Sequence[Any]
) -> pd.Series:
    """Kind of every row of a transition table: forward, backward, won, lost or stale."""
    pos = {s: i for i, s in enumerate(stages)}
    won_set, lost_set = set(won), set(lost)

    def kind(f: Any, t: Any) -> str:
        if t in pos:
            return "forward" if pos[t] > pos[f] else "backward"
        if t == "stale":
            return "stale"
        if t in won_set:
            return "won"
        if t in lost_set:
            return "lost"
        return "lost"

    return pd.Series(
        [kind(f, t) for f, t in zip(table["from_stage"], table["to_stage"], strict=True)],
        index=table.index,
        dtype=object,
    )


def flow_parts(
    data: Any,
    won: str | Sequence[str] | None = None,
    lost: str | Sequence[str] | None = None,
) -> tuple[pd.DataFrame, list[Any], list[Any], dict[Any, float]]:
    """The transition table with a ``kind`` column, the stages, the terminal states in
    drawing order, and the size of each stage node."""
    table, log = S.table_or_log(
        data,
        required=TRANSITION_COLUMNS,
        compute=lambda lg: lg.transitions(),
        what="a transition table (log.transitions())",
    )
    table = table.loc[table["transitions"] > 0].copy()
    table["from_stage"] = table["from_stage"].astype(object)
    table["to_stage"] = table["to_stage"].astype(object)
    if log is not None:
        stages: list[Any] = list(log.stages)
        won_l: list[Any] = list(log.won)
        lost_l: list[Any] = list(log.lost)
        counts = log.visits()["stage"].value_counts()
        size = {s: float(counts.get(s, 0)) for s in stages}
    else:
        stages = S.ordered_unique(table["from_stage"])
        others = [t for t in S.ordered_unique(table["to_stage"]) if t not in set(stages)]
        if "kind" in table.columns and won is None and lost is None:
            # log.transitions() says which exits are wins and losses
            kinds = dict(zip(table["to_stage"], table["kind"], strict=True))
        else:
            kinds = S.outcomes(others, won, lost)[1]
        won_l = [t for t in others if kinds.get(t) == "won"]
        lost_l = [t for t in others if kinds.get(t) == "lost"]
        size = {}
    table["kind"] = classify(table, stages, won_l, lost_l)
    terminals = [t for t in won_l if t in set(table["to_stage"])]
    terminals += [t for t in lost_l if t in set(table["to_stage"]) and t not in terminals]
    terminals += [
        t
        for t in S.ordered_unique(table["to_stage"])
        if t not in set(stages) and t not in terminals and t != "stale"
    ]
    if "stale" in set(table["to_stage"]):
        terminals.append("stale")
    out_ = table.groupby("from_stage", sort=False)["transitions"].sum()
    in_ = table.groupby("to_stage", sort=False)["transitions"].sum()
    for s in stages:
        size[s] = max(size.get(s, 0.0), float(out_.get(s, 0)), float(in_.get(s, 0)))
    return table, stages, terminals, size


def _band(x0: float, y0: tuple[float, float], x1: float, y1: tuple[float, float]):
    """A band between two vertical slots (top, bottom), as an S-shaped filled path."""
    from matplotlib.path import Path

    c = (x1 - x0) / 2
    (a0, b0), (a1, b1) = y0, y1
    verts = [
        (x0, a0),
        (x0 + c, a0),
        (x1 - c, a1),
        (x1, a1),
        (x1, b1),
        (x1 - c, b1),
        (x0 + c, b0),
        (x0, b0),
        (x0, a0),
    ]
    codes = [Path.MOVETO] + [Path.CURVE4] * 3 + [Path.LINETO] + [Path.CURVE4] * 3
    codes += [Path.CLOSEPOLY]
    return Path(verts, codes)


@S.chart
@validate_params(
    {
        "data": [CHECKED_INSIDE],
        "ax": ["axes", None],
        "title": TITLE,
        "kwargs": [CHECKED_INSIDE],
        "won": ["str_list", None],
        "lost": ["str_list", None],
    }
)
def flow(
    data: Any,
    *,
    ax: Axes | None = None,
    won: str | Sequence[str] | None = None,
    lost: str | Sequence[str] | None = None,
    title: str | None = "Stage flow",
    **kwargs: Any,
) -> Axes:
    """Stage-flow diagram: where deals go from each stage, including backward moves.

    Stages are nodes left → right in funnel order (node height ∝ visits); the outcomes
    (won names, lost names, ``stale``) are terminal nodes on the right. Every row of the
    transition table is one band of width ∝ ``transitions``: forward moves (including
    skips) and exits to won / lost / stale as coloured bands, backward moves as purple
    arcs above the nodes (line width ∝ transitions, on the same scale as the bands,
    approximately), labelled with their count.

    Parameters
    ----------
    data : EventLog or pandas.DataFrame
        An event log, or a transition table from ``log.transitions()`` (columns
        ``from_stage``, ``to_stage``, ``transitions``). From a table, stages are the
        from-stages in order of appearance and every other to-state is an outcome. A
        table has no open visits, so a node then counts the moves into or out of the
        stage, whichever is larger (the subtitle says so); pass the log to count visits.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure sized for the number of stages.
    won, lost : str or list of str, optional
        With a table: which outcomes are won and lost (default: ``"won"`` is won, and
        every other outcome except ``"stale"`` is lost). Ignored for an EventLog.
    title : str, default "Stage flow"
    **kwargs
        Passed to the band patches (:class:`matplotlib.patches.PathPatch`), e.g.
        ``alpha``.

    Returns
    -------
    matplotlib.axes.Axes
        Bands carry the gid ``"flow-<kind>"`` with kind forward, backward, won, lost or
        stale; stage nodes ``"flow-node"``, outcome nodes ``"flow-outcome"``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> ax = fk.plot.flow(log)
    >>> sum(p.get_gid() == "flow-backward" for p in ax.patches)
    7
    >>> ax.get_title()
    'Stage flow'
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, Patch, PathPatch, Rectangle
    from matplotlib.path import Path

    _, kwargs = S.split_kwargs("flow", data, kwargs, None)
    table, stages, terminals, size = flow_parts(data, won, lost)
    if not stages:
        raise ValueError("The transition table is empty: no move to draw.")
    n = len(stages)
    pos = {s: i for i, s in enumerate(stages)}
    x_term = n - 1 + 1.1
    total = max(size.values()) if size else 1.0
    gap = 0.03 * total

    # ---- outcome nodes: won at the top; losses below the tallest later node
    in_term = table.groupby("to_stage", sort=False)["transitions"].sum()
    kind_of = dict(zip(table["to_stage"], table["kind"], strict=True))
    term_top: dict[Any, float] = {}
    y = 0.0
    below = max((size[s] for s in stages[1:]), default=size[stages[0]]) + 2 * gap
    for t in terminals:
        if kind_of.get(t) != "won" and y > -below:
            y = -below
        term_top[t] = y
        y -= float(in_term.get(t, 0)) + gap
    bottom = min(y, -size[stages[0]])

    width = min(2.6 + 1.55 * max(n, 3), 15.0)
    ax = S.new_axes(ax, (width, 6.2))
    # stage labels: wrap to the room one stage spacing leaves, smaller type when crowded
    spacing_in = S.axes_inches(ax)[0] / (n + 0.4)
    label_size = S.TICK_SIZE if spacing_in >= 1.2 else S.SMALL_SIZE
    wrap_at = max(8, int(spacing_in * 72 / (0.6 * label_size)))
    band_kw: dict[str, Any] = {"alpha": 0.5, "linewidth": 0}
    band_kw.update(kwargs)

    # ---- slots: right side of each stage (forward by target, then outcomes in order),
    # left side of each stage (forward arrivals by source, nearest first), outcome slots
    # (later stages on top)
    order_t = {t: k for k, t in enumerate(terminals)}
    fwd = table.loc[table["kind"] != "backward"].copy()

    def right_key(r: Any) -> float:
        t = r.to_stage
        return pos[t] if t in pos else n + order_t[t]

    right_next = {s: 0.0 for s in stages}
    left_next = {s: 0.0 for s in stages}
    term_next = dict(term_top)
    rows = sorted(fwd.itertuples(index=False), key=lambda r: (pos[r.from_stage], right_key(r)))
    starts = {}
    for r in rows:
        starts[(r.from_stage, r.to_stage)] = right_next[r.from_stage]
        right_next[r.from_stage] -= r.transitions
    arrivals = sorted(
        (r for r in rows if r.to_stage in pos),
        key=lambda r: (pos[r.to_stage], -pos[r.from_stage]),
    )
    ends = {}
    for r in arrivals:
        ends[(r.from_stage, r.to_stage)] = left_next[r.to_stage]
        left_next[r.to_stage] -= r.transitions
    for r in sorted(
        (r for r in rows if r.to_stage not in pos),
        key=lambda r: (order_t[r.to_stage], -pos[r.from_stage]),
    ):
        ends[(r.from_stage, r.to_stage)] = term_next[r.to_stage]
        term_next[r.to_stage] -= r.transitions

    mids: list[tuple[float, float, float]] = []
    for r in rows:
        i = pos[r.from_stage]
        x0 = i + _NODE_W
        x1 = pos[r.to_stage] if r.to_stage in pos else x_term
        a0 = starts[(r.from_stage, r.to_stage)]
        a1 = ends[(r.from_stage, r.to_stage)]
        w = float(r.transitions)
        path = _band(x0, (a0, a0 - w), x1, (a1, a1 - w))
        ax.add_patch(
            PathPatch(path, facecolor=KIND_COLOR[r.kind], gid=f"flow-{r.kind}", **band_kw)
        )
        if r.kind == "forward" and pos[r.to_stage] == i + 1:
            mids.append(((x0 + x1) / 2, (a0 + a1) / 2 - w / 2, w))

    # ---- nodes
    for s in stages:
        i = pos[s]
        ax.add_patch(
            Rectangle((i, -size[s]), _NODE_W, size[s], color=S.NODE, zorder=3, gid="flow-node")
        )
    for t in terminals:
        h = float(in_term.get(t, 0))
        kind = kind_of.get(t, "lost")
        ax.add_patch(
            Rectangle(
                (x_term, term_top[t] - h),
                _NODE_W,
                h,
                color=KIND_COLOR[kind],
                zorder=3,
                gid="flow-outcome",
            )
        )
        ax.annotate(
            f"{S.wrap(t, 22)}  {S.count(h)}",
            xy=(x_term + _NODE_W, term_top[t] - h / 2),
            xytext=(5, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=S.ANNOT_SIZE,
            color=S.TEXT,
            annotation_clip=False,
        )

    # ---- limits, then backward arcs (their width in points needs the scale)
    back = table.loc[table["kind"] == "backward"]
    max_span = max(
        [pos[f] - pos[t] for f, t in zip(back["from_stage"], back["to_stage"], strict=True)] or [1]
    )
    arc_base = 0.16 * (-bottom)
    top = arc_base * 1.25 if len(back) else gap
    ax.set_xlim(-0.25, x_term + _NODE_W + 0.05)
    ax.set_ylim(bottom - gap, top)
    height_pt = S.axes_inches(ax)[1] * 72 * 0.85  # the layout engine shrinks it a little
    pt_per_unit = height_pt / (top - bottom + gap)
    for r in back.itertuples(index=False):
        i, j = pos[r.from_stage], pos[r.to_stage]
        h = arc_base * (0.45 + 0.55 * (i - j) / max_span)
        xa, xb = i + _NODE_W * 0.5, j + _NODE_W * 0.5
        path = Path(
            [(xa, 0), (xa, h * 4 / 3), (xb, h * 4 / 3), (xb, 0)],
            [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4],
        )
        lw = max(float(r.transitions) * pt_per_unit, 0.8)
        ax.add_patch(
            FancyArrowPatch(
                path=path,
                arrowstyle="-|>",
                mutation_scale=8 + min(lw, 12),
                linewidth=lw,
                color=S.BACKWARD,
                alpha=0.75,
                gid="flow-backward",
                zorder=2,
            )
        )
        ax.annotate(
            S.count(r.transitions),
            xy=((xa + xb) / 2, h),
            xytext=(0, lw / 2 + 1),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=S.SMALL_SIZE,
            color=S.BACKWARD,
            bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none"},
            zorder=5,
        )
    for xm, ym, w in mids:
        if w * pt_per_unit >= 9:
            ax.text(xm, ym, S.count(w), ha="center", va="center", fontsize=S.SMALL_SIZE, zorder=4)

    # ---- axes: stage names on top, no y axis
    ax.xaxis.tick_top()
    ax.set_xticks(
        [i + _NODE_W / 2 for i in range(n)],
        [f"{S.wrap(s, wrap_at, max_lines=4)}\n{S.count(size[s])}" for s in stages],
    )
    ax.tick_params(axis="x", length=0, labelsize=label_size, colors=S.TEXT)
    ax.set_yticks([])
    for sp in ax.spines.values():
        sp.set_visible(False)
    present = set(table["kind"])
    handles = [
        Patch(color=KIND_COLOR["forward"], alpha=0.6, label="forward (incl. skips)"),
        Line2D([], [], color=S.BACKWARD, linewidth=2.5, label="backward"),
        Patch(color=S.WON, alpha=0.6, label="won"),
        Patch(color=S.LOST, alpha=0.6, label="lost"),
        Patch(color=S.STALE, alpha=0.6, label="stale (went silent)"),
    ]
    handles = [h for h, k in zip(handles, KINDS, strict=True) if k in present]
    ax.legend(handles=handles, loc="lower left", frameon=False, fontsize=S.ANNOT_SIZE)
    S.titles(
        ax,
        title,
        "Band width ∝ transitions  ·  numbers under stage names: "
        + (
            "visits\n"
            if S.is_log(data)
            else "moves in or out, the larger (a transition table has no open visits)\n"
        )
        + (
            "Backward moves arc above the stages  ·  outcomes on the right"
            if len(back)
            else "No backward moves  ·  outcomes on the right"
        ),
    )
    return ax
