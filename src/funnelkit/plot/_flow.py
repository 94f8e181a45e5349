"""Stage-flow (Sankey-like) diagram of the transition table."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from numbers import Real
from typing import TYPE_CHECKING, Any

import pandas as pd

from .._params import CHECKED_INSIDE, TITLE, Interval, validate_params
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


# ---------------------------------------------------------------------------- text fitting
# Private helpers that fit texts to the room a chart has, measured in points before
# anything is drawn (the heatmap uses them too; they could move to _style).
_CJK_CHAR = re.compile(
    "[\u2e80-\u2fdf\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)
#: height of a line of text, in font sizes (matplotlib's line spacing is 1.2)
LINE = 1.2


@functools.lru_cache(maxsize=4096)
def text_width(text: str, size: float, weight: str = "normal") -> float:
    """Width in points of ``text`` (its widest line) in the chart font at ``size`` pt.

    Measured with the font's glyph advances (no renderer needed); CJK characters with the
    installed CJK font :func:`~._style.fit_scripts` will give them, or as 1 em each when
    there is none.
    """
    import matplotlib as mpl
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    family = list(mpl.rcParams["font.family"])
    width = 0.0
    for line in text.split("\n"):
        plain = line.replace(r"\$", "$")
        if not plain:
            continue
        cjk = S.needs_cjk(plain)
        font = S.cjk_font() if cjk else None
        if cjk and font is None:
            w = size * (len(_CJK_CHAR.findall(plain)) + 0.62 * len(_CJK_CHAR.sub("", plain)))
        else:
            prop = FontProperties(
                family=family + [font] if font else family, size=size, weight=weight
            )
            w = text_to_path.get_text_width_height_descent(plain, prop, ismath=False)[0]
        width = max(width, float(w))
    return width


def text_height(n_lines: int, size: float) -> float:
    """Height in points of ``n_lines`` lines of text at ``size`` pt."""
    return LINE * n_lines * size


def room_pt(
    ax: Axes, figsize: tuple[float, float] | None, *, left: float = 0.0, sub_lines: int = 4
) -> tuple[float, float]:
    """Width and height in points a chart can count on in ``ax``.

    A user's Axes: its size now. A figure the chart made itself (``figsize``, constrained
    layout): the layout will give the Axes the whole figure but the title, a subtitle of
    up to ``sub_lines`` lines and ``left`` points of tick labels — much more than its size
    before the layout runs, which would shrink every label for nothing.
    """
    if figsize is None:
        w, h = S.axes_inches(ax)
        return 72 * w, 72 * h
    titles = S.TITLE_SIZE * LINE + 8 + sub_lines * S.SUBTITLE_SIZE * 1.25
    return 72 * figsize[0] - left - 12, 72 * figsize[1] - titles - 12


def _tokens(text: str) -> list[str]:
    """Pieces a name may break between: after spaces and ``_ / -``, and between CJK
    characters (Chinese has no spaces)."""
    out: list[str] = []
    for piece in re.split(r"(?<=[\s_/\-])", text):
        if not piece:
            continue
        if _CJK_CHAR.search(piece):
            out.extend(t for t in re.split(f"({_CJK_CHAR.pattern})", piece) if t)
        else:
            out.append(piece)
    return out


def fit_lines(
    name: Any, width: float, size: float, max_lines: int, weight: str = "normal"
) -> str | None:
    """``name`` wrapped into at most ``max_lines`` lines no wider than ``width`` points,
    breaking only between words (:func:`_tokens`), escaped for matplotlib; None when it
    does not fit without cutting a word."""
    lines: list[str] = []
    cur = ""
    for tok in _tokens(str(name)):
        trial = cur + tok
        if cur and text_width(S.esc(trial.rstrip()), size, weight) > width:
            lines.append(cur.rstrip())
            cur = tok.lstrip()
        else:
            cur = trial
    if cur.strip():
        lines.append(cur.rstrip())
    text = S.esc("\n".join(lines))
    if len(lines) > max_lines or text_width(text, size, weight) > width:
        return None
    return text


def squeeze_lines(name: Any, width: float, size: float, max_lines: int) -> str:
    """``name`` forced into ``max_lines`` lines of ``width`` points: words cut where they
    must be, the rest ending in "…" (the last resort of a tiny Axes)."""
    lines: list[str] = []
    cur = ""
    for ch in str(name):
        if cur and text_width(S.esc(cur + ch), size) > width:
            lines.append(cur)
            cur = ch.lstrip()
        else:
            cur += ch
    if cur:
        lines.append(cur)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while len(last) > 1 and text_width(S.esc(last + "…"), size) > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + "…"
    return S.esc("\n".join(line.strip() for line in lines))


def wrap_subtitle(lines: Sequence[str], width: float, size: float = S.SUBTITLE_SIZE) -> str:
    """Subtitle lines, each broken at ``  ·  `` (else at spaces) where wider than
    ``width`` points."""

    def fill(items: list[str], sep: str) -> list[str]:
        return S.fit_width(sep.join(items), width / 72, size, sep=sep).split("\n")

    out: list[str] = []
    for line in lines:
        for chunk in fill(line.split("  ·  "), "  ·  "):
            out.extend(fill(chunk.split(" "), " ") if text_width(chunk, size) > width else [chunk])
    return "\n".join(out)


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


#: stage label layouts tried in turn: (rows of staggered labels, font size)
_LABEL_LAYOUTS = (
    (1, S.TICK_SIZE),
    (1, S.SMALL_SIZE),
    (2, S.SMALL_SIZE),
    (3, S.SMALL_SIZE),
    (3, 7.5),
    (4, 7.5),
)
_MIN_SIZE = 7.5  # the smallest type a flow label gets


def _stage_labels(
    stages: Sequence[Any], counts: Sequence[str], spacing: float
) -> tuple[list[str], int, float]:
    """Stage labels (name, then count) fitted to the room: the first layout of
    :data:`_LABEL_LAYOUTS` in which every name fits its slot (``rows`` stage spacings,
    staggered) in at most three lines without cutting a word; else names squeezed
    into the last one. Returns the labels, the rows and the font size."""
    for rows, size in _LABEL_LAYOUTS:
        slot = rows * spacing - 6
        fitted = [fit_lines(s, slot, size, 3) for s in stages]
        if all(f is not None for f in fitted) and all(text_width(c, size) <= slot for c in counts):
            return [f"{f}\n{c}" for f, c in zip(fitted, counts, strict=True)], rows, size
    rows, size = _LABEL_LAYOUTS[-1]
    slot = max(rows * spacing - 6, 10.0)
    return (
        [f"{squeeze_lines(s, slot, size, 3)}\n{c}" for s, c in zip(stages, counts, strict=True)],
        rows,
        size,
    )


def _readable_on_paper(color: str, min_ratio: float = 4.5) -> str:
    """``color`` moved towards the theme's text colour until it reads on the paper."""
    th = S.theme()
    out = color
    for t in (0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0):
        out = S.mix(color, th.text, t)
        if S.contrast(out, th.paper) >= min_ratio:
            break
    return out


def _free(box: tuple[float, float, float, float], taken: list[tuple[float, ...]]) -> bool:
    x0, y0, x1, y1 = box
    return all(x1 <= a0 or x0 >= a1 or y1 <= b0 or y0 >= b1 for a0, b0, a1, b1 in taken)


_LEGEND = (  # kind, long label, short label
    ("forward", "forward (incl. skips)", "forward"),
    ("backward", "backward", "backward"),
    ("won", "won", "won"),
    ("lost", "lost", "lost"),
    ("stale", "stale (went silent)", "stale"),
)


_HANDLE, _HANDLE_PAD, _COL_SPACING = 1.4, 0.6, 1.0  # legend spacing, in font sizes


def _legend(present: set[str], width: float, size: float) -> tuple[list[Any], int]:
    """Legend handles of the kinds drawn, and how many columns fit ``width`` points
    (short labels when the long ones would need a second row)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    kinds = [k for k in _LEGEND if k[0] in present]
    if not kinds:
        return [], 0

    def row_width(labels: list[str], ncols: int) -> float:
        # matplotlib fills the columns top down; a column is as wide as its widest entry
        entries = [(_HANDLE + _HANDLE_PAD) * size + text_width(t, size) for t in labels]
        per = -(-len(entries) // ncols)
        cols = [max(entries[k : k + per]) for k in range(0, len(entries), per)]
        return sum(cols) + (len(cols) - 1) * _COL_SPACING * size

    use = 1 if row_width([k[1] for k in kinds], len(kinds)) <= width - 8 else 2
    labels = [k[use] for k in kinds]
    handles = [
        Line2D([], [], color=S.BACKWARD, linewidth=2.5, label=lab)
        if kind == "backward"
        else Patch(color=KIND_COLOR[kind], alpha=0.6, label=lab)
        for (kind, *_), lab in zip(kinds, labels, strict=True)
    ]
    ncols = len(handles)
    while ncols > 1 and row_width(labels, ncols) > width - 8:
        ncols -= 1
    return handles, ncols


@S.chart
@validate_params(
    {
        "data": [CHECKED_INSIDE],
        "ax": ["axes", None],
        "title": TITLE,
        "kwargs": [CHECKED_INSIDE],
        "min_share": [Interval(Real, 0, 1, closed="left")],
        "won": ["str_list", None],
        "lost": ["str_list", None],
    }
)
def flow(
    data: Any,
    *,
    ax: Axes | None = None,
    min_share: float = 0.01,
    won: str | Sequence[str] | None = None,
    lost: str | Sequence[str] | None = None,
    title: str | None = "Stage flow",
    **kwargs: Any,
) -> Axes:
    """Stage-flow diagram: where deals go from each stage, including backward moves.

    Stages are nodes left → right in funnel order (node height ∝ visits); the outcomes
    (won names, lost names, ``stale``) are terminal nodes on the right (height ∝ all moves
    into them). Every flow — a row of the transition table — carrying at least
    ``min_share`` of the busiest stage's visits is drawn: forward moves (including skips)
    and exits to won / lost / stale as coloured bands of width ∝ ``transitions``,
    backward moves as purple arcs above the nodes (line width ∝ transitions, on the
    bands' scale unless that would make them too thick to read; the subtitle then says
    on which). The subtitle counts the thinner flows left out.

    Everything is drawn inside ``ax``: stage names (wrapped between words, in smaller
    type or staggered rows when stages are many; never cut mid-word unless the Axes is
    tiny) along its top, the outcome labels on the right, the legend along its bottom.
    Counts are written on the bands between neighbouring stages and on the arcs only
    where they fit without touching another label.

    Parameters
    ----------
    data : EventLog or pandas.DataFrame
        An event log, or a transition table from ``log.transitions()`` (columns
        ``from_stage``, ``to_stage``, ``transitions``). From a table, stages are the
        from-stages in order of appearance and every other to-state is an outcome. A
        table has no open visits, so a node then counts the moves into or out of the
        stage, whichever is larger (the subtitle says so); pass the log to count visits.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure sized for the number of stages (at most
        12 × 7.6 inches).
    min_share : float, default 0.01
        Flows with fewer moves than this share of the busiest stage's visits are not
        drawn (at 1% they would be hairlines); 0 draws every flow.
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
        stale; stage nodes ``"flow-node"``, outcome nodes ``"flow-outcome"``. Texts: stage
        labels ``"flow-stage"`` (name, then visits), outcome labels
        ``"flow-outcome-label"``, band counts ``"flow-count"``, arc counts
        ``"flow-backward-count"``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> ax = fk.plot.flow(log)
    >>> sum(p.get_gid() == "flow-backward" for p in ax.patches)  # 3 of 7 are under 1%
    4
    >>> ax = fk.plot.flow(log, min_share=0)
    >>> sum(p.get_gid() == "flow-backward" for p in ax.patches)
    7
    >>> ax.get_title()
    'Stage flow'
    """
    from matplotlib.patches import FancyArrowPatch, PathPatch, Rectangle
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
    th = S.theme()

    # ---- flows too thin to draw: left out, and counted for the subtitle
    thin = table["transitions"] < min_share * total
    left_out = table.loc[thin]
    n_deals_out: int | None = None
    if len(left_out) and S.is_log(data):
        v = data.visits()
        out_keys = left_out["from_stage"].astype(str) + "\x1f" + left_out["to_stage"].astype(str)
        keys = v["stage"].astype(str) + "\x1f" + v["next_stage"].astype(str)
        n_deals_out = int(v.loc[keys.isin(set(out_keys)), "deal"].nunique())
    in_term = table.groupby("to_stage", sort=False)["transitions"].sum()  # all moves
    kind_of = dict(zip(table["to_stage"], table["kind"], strict=True))
    table = table.loc[~thin]

    # ---- outcome nodes: won at the top; losses below the tallest later node
    term_top: dict[Any, float] = {}
    y = 0.0
    below = max((size[s] for s in stages[1:]), default=size[stages[0]]) + 2 * gap
    for t in terminals:
        if kind_of.get(t) != "won" and y > -below:
            y = -below
        term_top[t] = y
        y -= float(in_term.get(t, 0)) + gap
    bottom = min(y, -size[stages[0]]) - gap  # lowest data y of the nodes and bands

    width = min(2.6 + 1.4 * max(n, 3), 12.0)
    figsize = (width, 6.2 if n <= 10 else 7.6)
    own = figsize if ax is None else None
    ax = S.new_axes(ax, figsize)
    w_pt, h_pt = room_pt(ax, own)

    # ---- horizontal room: outcome labels inside the axes on the right, stage labels
    # fitted to one stage spacing (or a few, staggered)
    out_size = S.ANNOT_SIZE
    out_room = min(0.22 * w_pt, 130.0)
    out_labels = {}
    for t in terminals:
        name = fit_lines(t, out_room, out_size, 2) or squeeze_lines(t, out_room, out_size, 2)
        c = S.count(float(in_term.get(t, 0)))
        last = name.split("\n")[-1]
        joined = text_width(f"{last}  {c}", out_size) <= out_room
        out_labels[t] = f"{name}  {c}" if joined else f"{name}\n{c}"
    right_pt = max((text_width(s, out_size) for s in out_labels.values()), default=0) + 8
    counts = [S.count(size[s]) for s in stages]
    x_lo, x_hi = -0.25, x_term + _NODE_W
    for _ in range(3):  # the margins change the scale a little: settle in a few steps
        span = x_hi - x_lo
        ppx = w_pt / span  # points per stage spacing
        labels, rows, label_size = _stage_labels(stages, counts, ppx)
        half_first = text_width(labels[0], label_size) / 2 / ppx
        half_last = text_width(labels[-1], label_size) / 2 / ppx
        core_lo = min(-0.25, _NODE_W / 2 - half_first - 0.03)
        core_hi = max(x_term + _NODE_W, n - 1 + _NODE_W / 2 + half_last + 0.03)
        # the right margin holds the outcome labels: solve span = core + right_pt / ppx
        frac = min(right_pt / w_pt, 0.45)
        new_lo = core_lo
        new_hi = core_lo + (x_term + _NODE_W - core_lo) / (1 - frac)
        new_hi = max(new_hi, core_hi)
        if abs(new_lo - x_lo) < 1e-3 and abs(new_hi - x_hi) < 1e-3:
            break
        x_lo, x_hi = new_lo, new_hi
    ppx = w_pt / (x_hi - x_lo)

    # ---- vertical room (points): stage labels on top, then the arcs, the nodes and
    # bands, and the legend row(s) at the bottom
    n_lines = [lab.count("\n") + 1 for lab in labels]
    row_h = [
        text_height(max(n_lines[i] for i in range(r, n, rows)), label_size) + 2
        for r in range(min(rows, n))
    ]
    header_pt = sum(row_h) + 4
    back_all = table.loc[table["kind"] == "backward"]
    present = set(table["kind"])
    leg_size = S.ANNOT_SIZE if w_pt >= 300 else S.SMALL_SIZE
    handles, ncols = _legend(present, w_pt, leg_size)
    leg_rows = -(-len(handles) // max(ncols, 1))
    legend_pt = (leg_rows * 1.7 + 1.0) * leg_size if handles else 0.0
    count_size = S.SMALL_SIZE
    arc_label_pt = text_height(1, count_size) + 3
    arc_pt = min(max(0.2 * h_pt, 40.0), 110.0) if len(back_all) else 6.0
    body_pt = h_pt - header_pt - legend_pt - arc_pt
    if body_pt < 0.3 * h_pt:  # a short Axes: the arcs give up room first
        arc_pt = max(arc_pt - (0.3 * h_pt - body_pt), 24.0 if len(back_all) else 6.0)
        body_pt = max(h_pt - header_pt - legend_pt - arc_pt, 0.2 * h_pt)
    ppy = body_pt / -bottom  # points per move
    y_lo = bottom - legend_pt / ppy
    y_hi = (arc_pt + header_pt) / ppy
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)

    band_kw: dict[str, Any] = {"alpha": 0.5, "linewidth": 0}
    band_kw.update(kwargs)
    alpha = band_kw.get("alpha")
    alpha = 1.0 if alpha is None else float(alpha)

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
    rows_ = sorted(fwd.itertuples(index=False), key=lambda r: (pos[r.from_stage], right_key(r)))
    starts = {}
    for r in rows_:
        starts[(r.from_stage, r.to_stage)] = right_next[r.from_stage]
        right_next[r.from_stage] -= r.transitions
    arrivals = sorted(
        (r for r in rows_ if r.to_stage in pos),
        key=lambda r: (pos[r.to_stage], -pos[r.from_stage]),
    )
    ends = {}
    for r in arrivals:
        ends[(r.from_stage, r.to_stage)] = left_next[r.to_stage]
        left_next[r.to_stage] -= r.transitions
    for r in sorted(
        (r for r in rows_ if r.to_stage not in pos),
        key=lambda r: (order_t[r.to_stage], -pos[r.from_stage]),
    ):
        ends[(r.from_stage, r.to_stage)] = term_next[r.to_stage]
        term_next[r.to_stage] -= r.transitions

    mids: list[tuple[float, float, float]] = []
    for r in rows_:
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

    # ---- nodes and their labels
    for s in stages:
        ax.add_patch(
            Rectangle(
                (pos[s], -size[s]), _NODE_W, size[s], color=th.node, zorder=3, gid="flow-node"
            )
        )
    # stage labels along the top of the axes, staggered in `rows` rows
    for i, lab in enumerate(labels):
        r = i % rows
        ax.annotate(
            lab,
            xy=(i + _NODE_W / 2, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, -header_pt + 2 + sum(row_h[:r])),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=label_size,
            color=th.text,
            gid="flow-stage",
        )
    # outcome labels right of their nodes, moved apart where they would touch
    want = []
    for t in terminals:
        h = float(in_term.get(t, 0))
        ax.add_patch(
            Rectangle(
                (x_term, term_top[t] - h),
                _NODE_W,
                h,
                color=KIND_COLOR[kind_of.get(t, "lost")],
                zorder=3,
                gid="flow-outcome",
            )
        )
        tall = text_height(out_labels[t].count("\n") + 1, out_size)
        want.append([(term_top[t] - h / 2 - y_lo) * ppy, tall, t])
    for k in range(1, len(want)):  # top down: push each below the one above
        above = want[k - 1]
        limit = above[0] - (above[1] + want[k][1]) / 2 - 1
        want[k][0] = min(want[k][0], limit)
    floor = legend_pt
    for k in range(len(want) - 1, -1, -1):  # bottom up: keep them above the legend
        low = floor + want[k][1] / 2
        if want[k][0] < low:
            want[k][0] = low
        floor = want[k][0] + want[k][1] / 2 + 1
    for y_pt, _tall, t in want:
        h = float(in_term.get(t, 0))
        y_node = term_top[t] - h / 2
        dy = y_pt - (y_node - y_lo) * ppy
        ax.annotate(
            out_labels[t],
            xy=(x_term + _NODE_W, y_node),
            xytext=(5, dy),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=out_size,
            color=th.text,
            gid="flow-outcome-label",
            arrowprops=(
                {"arrowstyle": "-", "color": th.neutral, "linewidth": 0.6, "shrinkA": 0}
                if abs(dy) > 3
                else None
            ),
        )

    # ---- backward arcs: one scale for all, the bands' unless that is too thick
    taken: list[tuple[float, ...]] = []  # label boxes placed so far, in points
    scale_note = ""
    if len(back_all):
        max_moves = float(back_all["transitions"].max())
        lw_cap = max(min(0.3 * arc_pt, 0.3 * ppx, 10.0), 1.5)
        lw_scale = min(ppy, lw_cap / max_moves)
        if lw_scale < ppy * 0.99:
            scale_note = f" (arc width at 1/{ppy / lw_scale:.0f} of the bands' scale)"
        spans = [
            pos[f] - pos[t]
            for f, t in zip(back_all["from_stage"], back_all["to_stage"], strict=True)
        ]
        max_span = max(spans)
        lw_max = max_moves * lw_scale
        apex_pt = max(arc_pt - arc_label_pt - lw_max / 2 - 4, 6.0)
        arc_color = _readable_on_paper(S.BACKWARD)
        for r in back_all.sort_values("transitions", ascending=False).itertuples(index=False):
            i, j = pos[r.from_stage], pos[r.to_stage]
            h = apex_pt * (0.45 + 0.55 * (i - j) / max_span) / ppy
            xa, xb = i + _NODE_W * 0.5, j + _NODE_W * 0.5
            path = Path(
                [(xa, 0), (xa, h * 4 / 3), (xb, h * 4 / 3), (xb, 0)],
                [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4],
            )
            lw = max(float(r.transitions) * lw_scale, 0.8)
            ax.add_patch(
                FancyArrowPatch(
                    path=path,
                    arrowstyle="-|>",
                    mutation_scale=6 + min(lw, 8),
                    linewidth=lw,
                    color=S.BACKWARD,
                    alpha=0.75,
                    gid="flow-backward",
                    zorder=2,
                )
            )
            text = S.count(r.transitions)
            tw = text_width(text, count_size) + 3
            cx = ((xa + xb) / 2 - x_lo) * ppx
            by = (h - y_lo) * ppy + lw / 2 + 1
            box = (cx - tw / 2, by, cx + tw / 2, by + arc_label_pt - 1)
            if not _free(box, taken):
                continue
            taken.append(box)
            ax.annotate(
                text,
                xy=((xa + xb) / 2, h),
                xytext=(0, lw / 2 + 1 + 1.5),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=count_size,
                color=arc_color,
                bbox={"boxstyle": "round,pad=0.1", "facecolor": th.paper, "edgecolor": "none"},
                zorder=5,
                gid="flow-backward-count",
            )
    # counts on the bands between neighbouring stages, where they fit
    on_band = S.text_on(S.mix(KIND_COLOR["forward"], th.paper, 1 - alpha))
    for xm, ym, w in mids:
        text = S.count(w)
        fits_h = w * ppy >= text_height(1, count_size) + 2
        fits_w = text_width(text, count_size) <= (1 - _NODE_W) * ppx - 6
        if fits_h and fits_w:
            ax.text(
                xm,
                ym,
                text,
                ha="center",
                va="center",
                fontsize=count_size,
                color=on_band,
                zorder=4,
                gid="flow-count",
            )

    # ---- axes: no ticks, no spines; legend along the bottom
    ax.set_xticks([])
    ax.set_yticks([])
    for sp in ax.spines.values():
        sp.set_visible(False)
    if handles:
        leg = ax.legend(
            handles=handles,
            loc="lower left",
            bbox_to_anchor=(0, 0),
            ncols=ncols,
            frameon=False,
            fontsize=leg_size,
            borderaxespad=0.2,
            handlelength=_HANDLE,
            handletextpad=_HANDLE_PAD,
            columnspacing=_COL_SPACING,
        )
        for t in leg.get_texts():
            t.set_color(th.text)
    kind = (
        "visits"
        if S.is_log(data)
        else ("moves in or out, the larger (a transition table has no open visits)")
    )
    lines = [
        f"Band width ∝ transitions  ·  numbers under stage names: {kind}",
        (
            f"Backward moves arc above the stages{scale_note}  ·  outcomes on the right"
            if len(back_all)
            else "No backward moves drawn  ·  outcomes on the right"
        ),
    ]
    if len(left_out):
        deals = f", {n_deals_out:,} deals" if n_deals_out is not None else ""
        lines.append(
            f"Not drawn: {len(left_out)} flows < {100 * min_share:g}% of the busiest stage"
            f"  ·  {S.count(float(left_out['transitions'].sum()))} moves{deals}"
        )
    S.titles(ax, title, wrap_subtitle(lines, max(w_pt, 200.0)))
    return ax
