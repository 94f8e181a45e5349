"""The key-stage table as a chart: effect and interval per (stage, signal), with reasons."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._params import CHECKED_INSIDE, TITLE, Interval, validate_params
from ..errors import InvalidParameterError
from . import _style as S

if TYPE_CHECKING:
    from matplotlib.axes import Axes

KEY_COLUMNS = ["stage", "signal", "effect", "ci_low", "ci_high", "is_key", "reason"]
#: rows drawn by default (see ``max_rows``)
MAX_ROWS = 60


def _key_table(data: Any, kwargs: dict[str, Any]) -> pd.DataFrame:
    if S.is_log(data):
        if not hasattr(data, "key_stages"):
            raise TypeError(
                "This EventLog has no key_stages() method yet; pass the key-stage table "
                "(columns stage, signal, effect, ci_low, ci_high, is_key, reason) instead."
            )
        return data.key_stages(**kwargs)
    if kwargs:
        raise TypeError(
            f"Keyword(s) {sorted(kwargs)} go to log.key_stages() and need an EventLog."
        )
    table, _ = S.table_or_log(
        data, required=KEY_COLUMNS, compute=lambda lg: lg, what="a key-stage table"
    )
    return table


@S.chart
@validate_params(
    {
        "data": [CHECKED_INSIDE],
        "ax": ["axes", None],
        "title": TITLE,
        "kwargs": [CHECKED_INSIDE],
        "signal": ["str_list", None],
        "percent": ["boolean", None],
        "key_kwargs": [Mapping, None],
        "max_rows": [Interval(Integral, 1, None), None],
    }
)
def key_stages(
    data: Any,
    *,
    ax: Axes | None = None,
    signal: str | Sequence[str] | None = None,
    percent: bool | None = None,
    title: str | None = "Key stages",
    key_kwargs: dict[str, Any] | None = None,
    max_rows: int | None = MAX_ROWS,
    **kwargs: Any,
) -> Axes:
    """Key-stage chart: each (stage, signal) effect with its interval and reason.

    One row per row of the key-stage table, grouped by signal (a bold header per
    signal), stages in the table's order: the effect as a dot, its confidence interval
    as a whisker (``dwell``'s ratio of medians drawn as ratio − 1, the relative change,
    so that 0 is "no effect" on every row), key (flagged) rows in colour and the others
    grey, and the one-line
    reason on the right (with the Benjamini–Hochberg q-value when the signal is a
    test). Rows without an estimate (e.g. drop-off without a baseline) show only the
    reason.

    Parameters
    ----------
    data : pandas.DataFrame or EventLog
        A key-stage table (columns ``stage``, ``signal``, ``effect``, ``ci_low``,
        ``ci_high``, ``is_key``, ``reason``; ``q_value`` optional), or an event log
        whose ``key_stages()`` computes it.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure sized for the number of rows.
    signal : str or list of str, optional
        Only these signals. The effects of all signals share one axis: select one when
        their units differ.
    percent : bool, optional
        Format effects as percentages. Default: when every effect and bound lies in
        [-1, 1].
    title : str, default "Key stages"
    key_kwargs : dict, optional
        Deprecated: pass the keywords of ``log.key_stages()`` directly.
    max_rows : int or None, default 60
        Draw at most this many rows of the table: the flagged rows first, then the rows
        that are not about one segment, then the others (by q-value), each kept in the
        table's order. The subtitle says how many rows were left out. ``None`` draws
        every row (a key-stage table by 50,000 segments has 300,000 of them).
    **kwargs
        With an EventLog, the keywords of :meth:`EventLog.key_stages` (``by``,
        ``signals``, ``n_boot``, ``seed``, ``alpha`` — the significance level —, ...);
        the rest go to :meth:`matplotlib.axes.Axes.scatter` for the effect dots.

    Returns
    -------
    matplotlib.axes.Axes
        Effect dots carry the gid ``"key-effect"`` (flagged ones ``"key-effect-flagged"``),
        whiskers ``"key-ci"``, reasons ``"key-reason"``; rows in drawing order.

    Examples
    --------
    >>> import pandas as pd
    >>> import funnelkit as fk
    >>> table = pd.DataFrame({
    ...     "stage": ["Demo", "Proposal"], "signal": ["leverage", "leverage"],
    ...     "effect": [0.031, 0.004], "ci_low": [0.018, -0.002], "ci_high": [0.044, 0.01],
    ...     "p_value": [float("nan")] * 2, "q_value": [float("nan")] * 2,
    ...     "is_key": [True, False],
    ...     "reason": ["10% fewer losses at Demo add 3.1 points of win rate", "small effect"],
    ... })
    >>> ax = fk.plot.key_stages(table)
    >>> ax.get_title()
    'Key stages'
    """
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    comp, kwargs = S.split_kwargs("key_stages", data, kwargs, "key_stages")
    comp = {**S.deprecated_kwargs("key_stages", "key_kwargs", key_kwargs), **comp}
    table = _key_table(data, comp)
    if signal is not None:
        wanted = [signal] if isinstance(signal, str) else list(signal)
        have = S.ordered_unique(table["signal"])
        missing = [s for s in wanted if s not in set(have)]
        if missing:
            raise ValueError(f"`signal` {missing} is not in the table; signals: {have}.")
        table = table.loc[table["signal"].isin(wanted)]
    if table.empty:
        raise ValueError("The key-stage table is empty: nothing to draw.")
    n_all = len(table)
    table = _first_rows(table, max_rows)
    signals = S.ordered_unique(table["signal"])
    rows: list[tuple[str, Any]] = []  # ("header", signal) or ("row", row)
    for sig in signals:
        rows.append(("header", sig))
        for r in table.loc[table["signal"] == sig].itertuples(index=False):
            rows.append(("row", r))
    n = len(rows)
    ax = S.new_axes(ax, (12.0, 1.9 + 0.42 * n))
    y = np.arange(n)[::-1].astype(float)
    trans = blended_transform_factory(ax.transAxes, ax.transData)
    # dwell effects are ratios of medians: drawn as the relative change (ratio − 1, e.g.
    # +34% = a third longer) so that 0 means "no effect" for every signal
    table = table.copy()
    is_dwell = (table["signal"] == "dwell").to_numpy()
    if is_dwell.any():
        for col in ("effect", "ci_low", "ci_high"):
            table[col] = np.where(
                is_dwell, table[col].to_numpy(dtype=float) - 1, table[col].to_numpy(dtype=float)
            )
    vals = table[["effect", "ci_low", "ci_high"]].to_numpy(dtype=float)
    finite = vals[np.isfinite(vals)]
    if percent is None:
        percent = bool(finite.size and np.all(np.abs(finite) <= 1))
    labels, colors_ = [], []
    pts: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for yi, (kind, r) in zip(y, rows, strict=True):
        if kind == "header":
            labels.append(S.esc(str(r).replace("_", " ").upper()))
            colors_.append(S.MUTED)
            continue
        seg = getattr(r, "segment", None)
        name = (
            f"{r.stage} · {seg}"
            if seg is not None and pd.notna(seg) and r.signal in ("dropoff", "dwell")
            else r.stage
        )
        labels.append(S.esc(S.wrap(str(name), 22)))
        flagged = bool(r.is_key) if pd.notna(r.is_key) else False
        colors_.append(S.HIGHLIGHT if flagged else S.TEXT)
        color = S.HIGHLIGHT if flagged else S.NEUTRAL
        lo, hi, eff = float(r.ci_low), float(r.ci_high), float(r.effect)
        if np.isfinite(lo) and np.isfinite(hi):
            ax.plot([lo, hi], [yi, yi], color=color, linewidth=2.4, gid="key-ci", zorder=2)
        if np.isfinite(eff):
            pts[flagged].append((eff, yi))
        q = getattr(r, "q_value", np.nan)
        q_txt = f"q = {float(q):.2g}  ·  " if pd.notna(q) and np.isfinite(float(q)) else ""
        reason = textwrap.fill(q_txt + str(r.reason), 62, max_lines=2, placeholder=" …")
        reason = S.esc(reason)
        ax.text(
            1.02,
            yi,
            reason,
            transform=trans,
            ha="left",
            va="center",
            fontsize=S.SMALL_SIZE,
            color=S.TEXT if flagged else S.MUTED,
            fontweight="bold" if flagged else "normal",
            gid="key-reason",
            linespacing=1.2,
        )
    for flagged, p in pts.items():
        if not p:
            continue
        xs, ys = zip(*p, strict=True)
        sc_kw: dict[str, Any] = {"s": 64, "zorder": 3, "edgecolors": "white", "linewidths": 1}
        sc_kw["color"] = S.HIGHLIGHT if flagged else S.NEUTRAL
        sc_kw.update(kwargs)
        ax.scatter(xs, ys, gid="key-effect-flagged" if flagged else "key-effect", **sc_kw)
    ax.axvline(0, color=S.MUTED, linewidth=1, linestyle="--", zorder=1)
    ax.set_yticks(y, labels)
    for tick, (kind, _), c in zip(ax.get_yticklabels(), rows, colors_, strict=True):
        tick.set_color(c)
        if kind == "header":
            tick.set_fontweight("bold")
            tick.set_fontsize(S.SMALL_SIZE + 0.5)
    ax.set_ylim(-0.7, n - 0.3)
    if finite.size:
        lo_, hi_ = float(min(finite.min(), 0)), float(max(finite.max(), 0))
        pad = 0.08 * (hi_ - lo_ or 1.0)
        ax.set_xlim(lo_ - pad, hi_ + pad)
    S.style_axes(ax, grid="x")
    # after style_axes, which resets tick colours
    for tick, c in zip(ax.get_yticklabels(), colors_, strict=True):
        tick.set_color(c)
    ax.tick_params(axis="y", length=0)
    ax.spines["left"].set_visible(False)
    if percent:
        S.percent_axis(ax, "x", decimals=None)
    unit = " (percentage points)" if percent else ""
    if is_dwell.any():
        unit = " (percentage points; dwell: % longer)" if percent else " (dwell: ratio − 1)"
    S.label(ax, x="Effect, with 95% interval" + unit)
    ax.legend(
        handles=[
            Line2D([], [], marker="o", ls="-", color=S.HIGHLIGHT, label="key stage (flagged)"),
            Line2D([], [], marker="o", ls="-", color=S.NEUTRAL, label="not flagged"),
        ],
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=2,
        frameon=False,
        fontsize=S.SMALL_SIZE,
        borderaxespad=0.2,
    )
    sub = (
        "Each stage's effect per signal; q-values corrected (Benjamini–Hochberg) within "
        "each signal"
    )
    if len(table) < n_all:
        sub += (
            f"\n{len(table):,} of {n_all:,} rows drawn (flagged first, then rows not about "
            f"one segment; max_rows={max_rows}); every row is in the key-stage table"
        )
    S.titles(ax, title, sub, extra_pad=18)
    return ax


def _first_rows(table: pd.DataFrame, max_rows: int | None) -> pd.DataFrame:
    """At most ``max_rows`` rows: flagged, then without a segment, then by q-value; in
    the table's order."""
    if max_rows is not None and (
        isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1
    ):
        raise InvalidParameterError(
            f"`max_rows` must be a positive integer or None; got {max_rows!r}."
        )
    if max_rows is None or len(table) <= max_rows:
        return table
    flagged = table["is_key"].fillna(False).to_numpy(dtype=bool)
    seg = table["segment"] if "segment" in table.columns else pd.Series(None, index=table.index)
    q = table["q_value"] if "q_value" in table.columns else pd.Series(np.nan, index=table.index)
    order = np.lexsort(
        (
            np.arange(len(table)),
            q.to_numpy(dtype=np.float64, na_value=np.inf),
            seg.notna().to_numpy(),
            ~flagged,
        )
    )
    return table.iloc[np.sort(order[:max_rows])]
