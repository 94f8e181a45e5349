"""The pipeline waterfall (:meth:`funnelkit.EventLog.movement`) and close-date slippage
by stage or segment (:meth:`funnelkit.EventLog.slippage`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._params import CHECKED_INSIDE, DATE, TITLE, Options, validate_params
from ..errors import InvalidParameterError
from . import _style as S

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["slippage", "waterfall"]

#: the bars, top to bottom: (category, label, kind) — kind "total", "in" or "out"
STEPS = (
    ("open_at_start", "Open at start", "total"),
    ("created", "Created", "in"),
    ("pulled_in", "Pulled in", "in"),
    ("increased", "Amount increased", "in"),
    ("won", "Won", "out"),
    ("lost", "Lost", "out"),
    ("stale", "Went stale", "out"),
    ("pushed_out", "Pushed out", "out"),
    ("decreased", "Amount decreased", "out"),
    ("open_at_end", "Open at end", "total"),
)
_AMOUNT_ONLY = ("increased", "decreased")


def _colors() -> dict[str, str]:
    return {
        "open_at_start": S.BAR,
        "created": S.FORWARD,
        "pulled_in": S.FORWARD,
        "increased": S.FORWARD,
        "won": S.WON,
        "lost": S.LOST,
        "stale": S.STALE,
        "pushed_out": S.BACKWARD,
        "decreased": S.BACKWARD,
        "open_at_end": S.BAR,
    }


@S.chart
@validate_params(
    {
        "data": [CHECKED_INSIDE],
        "start": DATE,
        "end": DATE,
        "closing": [tuple, list, None],
        "value": [Options(str, ("auto", "amount", "deals"))],
        "ax": ["axes", None],
        "title": TITLE,
        "kwargs": [CHECKED_INSIDE],
    }
)
def waterfall(
    data: Any,
    start: Any = None,
    end: Any = None,
    *,
    closing: tuple[Any, Any] | None = None,
    value: str = "auto",
    ax: Axes | None = None,
    title: str | None = None,
    **kwargs: Any,
) -> Axes:
    """The pipeline waterfall: open at start, what came in, what left, open at end.

    One horizontal bar per category of :meth:`funnelkit.EventLog.movement`, top to
    bottom: open at start (from zero), then each inflow (created, pulled in, amount
    increased) stacked on the running total and each outflow (won, lost, went stale,
    pushed out, amount decreased) taken off it, and open at end (from zero) — which the
    running total reaches exactly, because the table reconciles. Categories the table
    does not hold (no field history: no pulled in/pushed out/increased/decreased) are
    left out; ``advanced`` and ``regressed`` are moves within the pipeline, not drawn.
    Drawn from a log, the won and lost bars are named with the log's outcome names.

    Parameters
    ----------
    data : EventLog or pandas.DataFrame
        A log (the table is computed with ``movement(start, end, closing=closing)``) or
        the table of :meth:`funnelkit.EventLog.movement` (``category``, ``deals``,
        ``amount``).
    start, end : str or datetime, optional
        The window, for a log; default ``end`` = ``as_of`` and ``start`` 90 days before.
    closing : (first, last), optional
        For a log: follow the pipeline whose close date lies in this window.
    value : {"auto", "amount", "deals"}, default "auto"
        What the bars measure; ``"auto"``: the amount when the table has amounts, else
        deals. With ``"deals"`` the amount-change rows are left out (no deal enters or
        leaves through them).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure.
    title : str, optional
        Default: "Pipeline movement".
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.barh`.

    Returns
    -------
    matplotlib.axes.Axes
        Each bar carries the gid ``"waterfall-<category>"``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> log = log.with_history(fk.datasets.load_sample_history(),
    ...                        **fk.datasets.SAMPLE_HISTORY_KWARGS)
    >>> ax = fk.plot.waterfall(log, "2025-03-31", closing=("2025-04-01", "2025-06-30"))
    >>> [p.get_gid() for p in ax.patches][:3]
    ['waterfall-open_at_start', 'waterfall-created', 'waterfall-pulled_in']
    """
    window = ""

    def compute(log: Any) -> pd.DataFrame:
        nonlocal window
        stop = pd.Timestamp(log.as_of) if end is None else pd.Timestamp(end)
        begin = stop - pd.Timedelta(days=90) if start is None else pd.Timestamp(start)
        window = f"{begin:%Y-%m-%d} → {stop:%Y-%m-%d}"
        if closing is not None:
            window += (
                f", closing {pd.Timestamp(closing[0]):%Y-%m-%d} … "
                f"{pd.Timestamp(closing[1]):%Y-%m-%d}"
            )
        return log.movement(begin, stop, closing=closing)

    table, log = S.table_or_log(
        data,
        required=["category", "deals", "amount"],
        compute=compute,
        what="a movement table (EventLog.movement)",
    )
    rows = table.set_index("category")
    has_amount = bool(rows["amount"].notna().any())
    if value == "amount" and not has_amount:
        raise InvalidParameterError(
            "`value`='amount' but the movement table has no amounts (the log has no "
            "amount column); pass value='deals'."
        )
    col = "amount" if (value == "amount" or (value == "auto" and has_amount)) else "deals"
    steps = [
        s for s in STEPS if s[0] in rows.index and not (col == "deals" and s[0] in _AMOUNT_ONLY)
    ]
    if not steps:
        raise ValueError("The movement table holds none of the waterfall's categories.")
    vals = np.array([float(rows.loc[c, col]) for c, _, _ in steps])
    lefts = np.zeros(vals.size)
    level = 0.0
    for i, (_, _, kind) in enumerate(steps):
        if kind == "total":
            lefts[i] = 0.0
            level = vals[i]
        elif kind == "in":
            lefts[i] = level
            level += vals[i]
        else:
            level -= vals[i]
            lefts[i] = level
    ax = S.new_axes(ax, (7.2, 0.42 * len(steps) + 1.6))
    y = np.arange(len(steps))
    colors = _colors()
    bar_kw: dict[str, Any] = {"height": 0.62}
    bar_kw.update(kwargs)
    bars = ax.barh(y, vals, left=lefts, color=[colors[c] for c, _, _ in steps], **bar_kw)
    th = S.theme()
    top = float(np.max(lefts + vals)) if vals.size else 1.0
    top = top if top > 0 else 1.0
    for patch, (c, _, kind), v, left in zip(bars.patches, steps, vals, lefts, strict=True):
        patch.set_gid(f"waterfall-{c}")
        sign = "" if kind == "total" else ("+" if kind == "in" else "−")
        text = S.compact(v) if col == "amount" else S.count(v)
        ax.text(
            left + v + top * 0.015,
            patch.get_y() + patch.get_height() / 2,
            f"{sign}{text}",
            va="center",
            ha="left",
            fontsize=S.ANNOT_SIZE,
            color=th.text,
        )
    # the won and lost bars carry the log's own outcome names (赢单, Closed won)
    own = {}
    if log is not None and log.won:
        own["won"] = S.wrap(" / ".join(log.won), 22, max_lines=2)
    if log is not None and log.lost:
        own["lost"] = S.wrap(" / ".join(log.lost), 22, max_lines=2)
    ax.set_yticks(y, [own.get(c, label) for c, label, _ in steps])
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.22)
    S.style_axes(ax, grid="x")
    S.label(ax, x="Amount" if col == "amount" else "Deals")
    if col == "amount":
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: S.compact(x)))
    start_v = vals[0] if steps[0][0] == "open_at_start" else np.nan
    end_v = vals[-1] if steps[-1][0] == "open_at_end" else np.nan
    fmt = S.compact if col == "amount" else S.count
    sub = f"{fmt(start_v)} → {fmt(end_v)}" if np.isfinite(start_v + end_v) else ""
    if window:
        sub = f"{window}: {sub}" if sub else window
    S.titles(ax, title if title is not None else "Pipeline movement", sub or None)
    return ax


@S.chart
@validate_params(
    {
        "data": [CHECKED_INSIDE],
        "by": [str],
        "ax": ["axes", None],
        "title": TITLE,
        "kwargs": [CHECKED_INSIDE],
    }
)
def slippage(
    data: Any,
    by: str = "stage",
    *,
    ax: Axes | None = None,
    title: str | None = None,
    **kwargs: Any,
) -> Axes:
    """Share of deals whose close date was pushed, per stage or per segment.

    One horizontal bar per row of ``log.slippage(by=by)``: the share of the group's deals
    pushed at least once (with ``by="stage"``: while in that stage), its Wilson 95%
    interval as a line, and the counts and total days pushed beside it.

    Parameters
    ----------
    data : EventLog or pandas.DataFrame
        A log with a field history, or the table of
        :meth:`funnelkit.EventLog.slippage` with ``by`` (columns ``by``, ``deals``,
        ``deals_pushed``, ``share_pushed``, ``share_pushed_low``, ``share_pushed_high``,
        ``pushes``, ``days_pushed``).
    by : str, default "stage"
        ``"stage"`` or a carried attribute (owner, team...).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure.
    title : str, optional
        Default: "Close dates pushed, by <by>".
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.barh`.

    Returns
    -------
    matplotlib.axes.Axes
        The bars carry the gid ``"slippage-share"``, the intervals ``"slippage-ci"``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> log = log.with_history(fk.datasets.load_sample_history(),
    ...                        **fk.datasets.SAMPLE_HISTORY_KWARGS)
    >>> ax = fk.plot.slippage(log, "owner")
    >>> len(ax.patches)
    12
    """
    needed = [by, "deals", "deals_pushed", "share_pushed", "share_pushed_low"]
    table, _ = S.table_or_log(
        data,
        required=[*needed, "share_pushed_high", "pushes", "days_pushed"],
        compute=lambda log: log.slippage(by=by),
        what=f"a slippage table (EventLog.slippage(by={by!r}))",
    )
    table = table[table["deals"] > 0]
    if table.empty:
        raise ValueError("The slippage table has no group with deals: nothing to draw.")
    names = [S.wrap(v, 22, max_lines=2) for v in table[by].astype(str)]
    share = table["share_pushed"].to_numpy(dtype=float)
    low = table["share_pushed_low"].to_numpy(dtype=float)
    high = table["share_pushed_high"].to_numpy(dtype=float)
    n = len(table)
    ax = S.new_axes(ax, (7.2, 0.36 * n + 1.6))
    y = np.arange(n)
    bar_kw: dict[str, Any] = {"height": 0.6, "color": S.BAR}
    bar_kw.update(kwargs)
    bars = ax.barh(y, share, **bar_kw)
    for p in bars.patches:
        p.set_gid("slippage-share")
    th = S.theme()
    ax.hlines(y, low, high, color=th.text, linewidth=1.2, gid="slippage-ci")
    ends = np.nanmax(np.vstack([share, high]), axis=0)
    for yi, end_, r in zip(y, ends, table.itertuples(index=False), strict=True):
        ax.text(
            (0.0 if not np.isfinite(end_) else float(end_)) + 0.01,
            float(yi),
            f"{S.count(r.deals_pushed)}/{S.count(r.deals)}, {S.count(r.pushes)} pushes",
            va="center",
            ha="left",
            fontsize=S.SMALL_SIZE,
            color=th.text,
        )
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.45)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.spines["bottom"].set_bounds(0, 1)
    S.style_axes(ax, grid="x")
    S.percent_axis(ax, "x")
    S.label(ax, x="Share of deals with a pushed close date")
    total = int(table["pushes"].sum())
    days = float(table["days_pushed"].sum())
    S.titles(
        ax,
        title if title is not None else f"Close dates pushed, by {by}",
        f"{S.count(total)} pushes, {S.count(days)} days in all; lines: 95% intervals",
    )
    return ax
