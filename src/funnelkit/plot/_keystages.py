"""The key-stage table as a chart: one panel per signal, each in its own unit, with the
effect and interval of each (stage, signal) and its reason in plain words."""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
#: (rows drawn, rows in the table) of each chart drawn, by Axes: the chart leaves out rows
#: that do not fit its box, so callers (the report) read what it drew here
ROWS_DRAWN: weakref.WeakKeyDictionary[Any, tuple[int, int]] = weakref.WeakKeyDictionary()
#: rows drawn by default (see ``max_rows``)
MAX_ROWS = 60
#: the largest figure the chart makes for itself (inches)
MAX_WIDTH, MAX_HEIGHT = 12.0, 14.0

#: signal -> (panel name, unit of its effect axis); proportions are drawn in points
FAMILIES = {
    "leverage": ("Leverage", "win probability gained, points"),
    "dropoff": ("Drop-off", "loss rate above the baseline, points"),
    "stall": ("Stall", "share advancing, long minus short visits, points"),
    "heterogeneity": ("Segment spread", "conversion, best minus worst segment, points"),
    "change": ("Change", "conversion, since minus before, points"),
    "dwell": ("Time in stage", "median against the other deals, % longer"),
}

# font sizes (pt) and vertical room (inches) of the panels
_LABEL_SIZE = S.TICK_SIZE - 1  # stage names
_REASON_SIZE = S.SMALL_SIZE
_LINE = 1.22  # line spacing, in font sizes
_HEAD = 0.30  # a panel's title
_FOOT = 0.27  # a panel's tick labels
_GAP = 0.14  # between panels
_TOP = 0.30  # the legend row
_NOTE_LINE = S.SMALL_SIZE * 1.3 / 72
_EM = 0.6  # width of a Latin character, in font sizes (CJK characters: two)


# ---------------------------------------------------------------------------- text
#: developer wording of log.key_stages() reasons -> what a reader of the chart needs
_PLAIN = [
    (re.compile(r"^no baseline: pass benchmark=.*$"), "not tested: no baseline to compare with"),
    (re.compile(r"\s*\(effective number; min_deals=(\d+)\)"), r" (at least \1 needed)"),
    (re.compile(r"\s*\(min_deals=(\d+)\)"), r" (at least \1 needed)"),
    (re.compile(r"no bootstrap interval \(n_boot=0\)"), "no interval computed"),
]


def plain(reason: Any) -> str:
    """A key-stage reason without parameter names (``min_deals=``, ``benchmark=``)."""
    text = str(reason) if pd.notna(reason) else ""
    for pattern, repl in _PLAIN:
        text = pattern.sub(repl, text)
    return text


def q_text(q: Any) -> str:
    """A q-value for a reader: ``q < 0.001``, ``q = 0.0034``, ``q = 0.56``; '' when none."""
    try:
        q = float(q)
    except (TypeError, ValueError):
        return ""
    if not np.isfinite(q):
        return ""
    # two significant digits; from 0.001 up, "g" never switches to "e" notation
    return "q < 0.001" if q < 0.001 else f"q = {q:.2g}"


def _units(text: str) -> int:
    """Width of ``text`` in Latin-character units (CJK characters count two)."""
    return sum(2 if S.needs_cjk(c) else 1 for c in text)


_GLUE = re.compile(r"(?<=[=<>≤≥]) (?=\S)|(?<=\w) (?=[=<>≤≥] )")


def _tokens(text: str) -> list[str]:
    """Words (with their trailing space); CJK runs split into characters."""
    out: list[str] = []
    text = _GLUE.sub("\u00a0", text)  # "p = 0.39" and "q < 0.001" stay on one line
    for word in re.findall(r"[^ \n]+ *", text):
        if S.needs_cjk(word):
            out.extend(re.findall(r".", word))
        else:
            out.append(word)
    return out


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    cur = ""
    for tok in _tokens(text):
        if cur and _units(cur.rstrip() + tok.rstrip()) > width:
            lines.append(cur.rstrip())
            cur = tok
        else:
            cur += tok
    if cur.strip():
        lines.append(cur.rstrip())
    return [line.replace("\u00a0", " ") for line in lines]


_PAREN = re.compile(r"\s*\([^()]*\)")
_NUMBERISH = re.compile(r"[\d%+−–-]")


def fit_text(text: str, width: int, max_lines: int) -> str:
    """``text`` on at most ``max_lines`` lines of about ``width`` characters, never cut
    inside a number or a parenthesis.

    What does not fit is left out whole, from the end: first the parentheses (the details),
    then the last clauses (after ``;`` or ``,``); only a first clause that alone is too long
    is cut at a word, never after a number, and ends in "…".
    """
    width = max(int(width), 8)

    def fits(t: str) -> bool:
        return len(_wrap(t, width)) <= max_lines

    if fits(text):
        return "\n".join(_wrap(text, width))
    while _PAREN.search(text):  # drop the details, the last first
        last = list(_PAREN.finditer(text))[-1]
        text = text[: last.start()] + text[last.end() :]
        if fits(text):
            return "\n".join(_wrap(text, width))
    clauses = re.split(r"(?<=[;,])\s+", text)
    for k in range(len(clauses) - 1, 0, -1):
        head = " ".join(clauses[:k]).rstrip(";,") + " …"
        if fits(head):
            return "\n".join(_wrap(head, width))
    tokens = _tokens(clauses[0])
    while tokens:
        tokens.pop()
        while tokens and (_NUMBERISH.search(tokens[-1]) or len(tokens[-1].strip()) < 3):
            tokens.pop()  # never end on a number ("+0.83 …") or a stub word
        head = "".join(tokens).rstrip(" ,;:(") + " …"
        if fits(head):
            return "\n".join(_wrap(head, width))
    return "…"


def _fit_clauses(clauses: list[str], width: int, max_lines: int) -> str:
    """The clauses joined by "; " and wrapped, the last ones left out while they do not fit
    ``max_lines`` lines (the first always stays)."""
    for k in range(len(clauses), 0, -1):
        lines = _wrap("; ".join(clauses[:k]), width)
        if len(lines) <= max_lines or k == 1:
            return "\n".join(lines)
    return ""


def _chars(inches: float, size: float) -> int:
    """Latin characters of ``size`` pt that fit in ``inches``."""
    return max(int(inches * 72 / (_EM * size)), 1)


def _inches(text: str, size: float) -> float:
    return max((_units(line) for line in text.split("\n")), default=0) * _EM * size / 72


# ---------------------------------------------------------------------------- table
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


def _priority(table: pd.DataFrame) -> np.ndarray:
    """Row positions in drawing priority: flagged, then not about one segment, then by
    q-value, then in the table's order."""
    flagged = table["is_key"].fillna(False).to_numpy(dtype=bool)
    seg = table["segment"] if "segment" in table.columns else pd.Series(None, index=table.index)
    q = table["q_value"] if "q_value" in table.columns else pd.Series(np.nan, index=table.index)
    return np.lexsort(
        (
            np.arange(len(table)),
            pd.to_numeric(q, errors="coerce").to_numpy(dtype=np.float64, na_value=np.inf),
            seg.notna().to_numpy(),
            ~flagged,
        )
    )


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
    return table.iloc[np.sort(_priority(table)[:max_rows])]


def _untested_families(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Signals with no estimate on any row and one reason for all (e.g. drop-off without a
    baseline) become a note instead of a panel of empty rows."""
    notes = []
    keep = np.ones(len(table), dtype=bool)
    for sig in S.ordered_unique(table["signal"]):
        sel = (table["signal"] == sig).to_numpy()
        rows = table.loc[sel]
        vals = rows[["effect", "ci_low", "ci_high"]].to_numpy(dtype=float)
        reasons = set(rows["reason"].map(plain))
        if np.isfinite(vals).any() or rows["is_key"].fillna(False).any() or len(reasons) != 1:
            continue
        keep &= ~sel
        name = FAMILIES.get(str(sig), (str(sig).replace("_", " ").capitalize(), ""))[0]
        (why,) = reasons
        why = re.sub(r"^not tested:\s*", "", why)
        notes.append(f"{name} not tested ({len(rows)} stages): {why}.")
    return table.loc[keep], notes


# ---------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class _Plan:
    """Which rows go in how many lines, in a box of ``width`` × ``height`` inches."""

    rows: np.ndarray  # positions in the table, in table order
    lines: int  # lines per row (stage name and reason)
    height: float  # inches the panels need


def _pitch(lines: int) -> float:
    """Inches per row of ``lines`` lines."""
    return lines * max(_LABEL_SIZE, _REASON_SIZE) * _LINE / 72 + 0.05


def _needed(signals: np.ndarray, lines: int, notes: int) -> float:
    n_panels = len(set(signals.tolist()))
    return (
        _TOP
        + n_panels * (_HEAD + _FOOT + _GAP)
        + signals.size * _pitch(lines)
        + (notes * _NOTE_LINE + 0.1 if notes else 0.0)
    )


def _plan(table: pd.DataFrame, order: np.ndarray, height: float, notes: int) -> _Plan:
    """The rows that fit ``height`` inches, taken in ``order`` of priority (a row that
    would open a panel there is no room for is skipped): two lines a row when that shows
    every row, or at least the flagged ones and 15, else one line when that shows clearly
    more rows."""
    sig = table["signal"].to_numpy(dtype=object)
    flagged = int(table["is_key"].fillna(False).to_numpy(dtype=bool).sum())

    def greedy(lines: int) -> list[int]:
        pitch, head = _pitch(lines), _HEAD + _FOOT + _GAP
        used = _needed(np.empty(0, dtype=object), lines, notes + 1)
        chosen: list[int] = []
        panels: set[Any] = set()
        for i in order:
            cost = pitch + (head if sig[i] not in panels else 0.0)
            if used + cost <= height or not chosen:
                chosen.append(int(i))
                panels.add(sig[i])
                used += cost
        return chosen

    rows, lines = greedy(2), 2
    if len(rows) < min(len(order), max(flagged, 15)):
        one = greedy(1)
        if len(one) > 1.3 * len(rows):
            rows, lines = one, 1
    ordered = np.sort(np.asarray(rows, dtype=np.int64))
    return _Plan(ordered, lines, _needed(sig[ordered], lines, notes))


# ---------------------------------------------------------------------------- chart
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
    """Key-stage chart: one panel per signal, each (stage, signal) effect with its interval
    and its reason.

    Each signal (``leverage``, ``dropoff``, ``stall``, ``heterogeneity``, ``change``,
    ``dwell``) gets a panel of its own with its own horizontal scale and unit: leverage in
    points of win probability, drop-off, stall, segment spread and change in points of a
    share, dwell as the median's relative change (ratio − 1: +34% = a third longer). So a
    flagged leverage of +0.8 points reads next to a stall of −35 points. In a panel, one row
    per stage (and segment): the effect as a dot, its confidence interval as a whisker,
    flagged (key) rows in colour and the others grey, and on the right the reason in plain
    words, wrapped (details in parentheses are left out whole when they do not fit, never
    cut mid-number), after its Benjamini–Hochberg q-value when the signal is a test
    (``q < 0.001``, ``q = 0.012``). A signal without any estimate and one reason for every
    stage (drop-off without a baseline) is a note under the panels instead.

    Everything is drawn inside ``ax``: the panels are inset Axes in its box, the stage names
    and reasons inside it too, so the chart composes in a grid of subplots. Rows that do not
    fit the box (or ``max_rows``) are left out, flagged rows last, and the subtitle says how
    many are drawn.

    Parameters
    ----------
    data : pandas.DataFrame or EventLog
        A key-stage table (columns ``stage``, ``signal``, ``effect``, ``ci_low``,
        ``ci_high``, ``is_key``, ``reason``; ``q_value`` and ``segment`` optional), or an
        event log whose ``key_stages()`` computes it.
    ax : matplotlib.axes.Axes, optional
        Axes whose box the panels fill (its own frame is switched off). Default: a new
        figure sized for the rows, at most 12 × 14 inches.
    signal : str or list of str, optional
        Only these signals (panels).
    percent : bool, optional
        Label the effects of the share signals (all but ``dwell``) in points (True) or as
        differences of proportions (False). Default: points when every such effect and
        bound lies in [-1, 1].
    title : str, default "Key stages"
    key_kwargs : dict, optional
        Deprecated: pass the keywords of ``log.key_stages()`` directly.
    max_rows : int or None, default 60
        Draw at most this many rows of the table (fewer when the box cannot hold them): the
        flagged rows first, then the rows that are not about one segment, then the others
        (by q-value), each kept in the table's order. ``None``: as many as fit.
    **kwargs
        With an EventLog, the keywords of :meth:`EventLog.key_stages` (``by``,
        ``signals``, ``n_boot``, ``seed``, ``alpha`` — the significance level —, ...);
        the rest go to :meth:`matplotlib.axes.Axes.scatter` for the effect dots.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax`` (or the new Axes). Its panels are in ``ax.child_axes``, one per signal in the
        table's order, with the gid ``"key-panel-<signal>"`` and the stage names as y tick
        labels. In each panel, effect dots carry the gid ``"key-effect"`` (flagged ones
        ``"key-effect-flagged"``; x = the table's effect, dwell's minus 1), whiskers
        ``"key-ci"``, reasons ``"key-reason"``; rows in drawing order. Notes under the
        panels carry ``"key-note"``.

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
    >>> [p.get_gid() for p in ax.child_axes]
    ['key-panel-leverage']
    """
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
    table, notes = _untested_families(table.reset_index(drop=True))
    n_rows = len(table)  # rows that could be drawn
    table = _first_rows(table.reset_index(drop=True), max_rows).reset_index(drop=True)
    # dwell effects are ratios of medians: drawn as the relative change (ratio − 1)
    table = table.copy()
    is_dwell = (table["signal"] == "dwell").to_numpy()
    for col in ("effect", "ci_low", "ci_high"):
        v = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
        table[col] = np.where(is_dwell, v - 1, v)
    shares = table.loc[~is_dwell, ["effect", "ci_low", "ci_high"]].to_numpy(dtype=float)
    shares = shares[np.isfinite(shares)]
    if percent is None:
        percent = bool(np.all(np.abs(shares) <= 1))

    if ax is None:
        need = _needed(table["signal"].to_numpy(dtype=object), 2, len(notes) + 1) + 0.02
        height = min(max(need + 1.2, 3.5), MAX_HEIGHT)
        ax = S.new_axes(None, (MAX_WIDTH, height))
        # the constrained layout gives the axes the figure but the titles and margins
        box_w, box_h = MAX_WIDTH - 0.3, height - 1.2
    else:
        box_w, box_h = S.axes_inches(ax)
        if ax.figure.get_layout_engine() is not None:
            box_h -= 0.6  # the layout makes room for the title and subtitle
        box_h *= 0.97
    plan = _plan(table, _priority(table), box_h, len(notes)) if len(table) else None
    drawn = table.iloc[plan.rows] if plan is not None else table.iloc[:0]
    lines = plan.lines if plan is not None else 1

    ax.set_axis_off()  # the box of the panels: no frame, no ticks of its own
    ax.set_xticks([])
    ax.set_yticks([])
    _draw_panels(ax, drawn, lines, box_w, box_h, percent, kwargs)
    ROWS_DRAWN[ax] = (len(drawn), n_rows)
    _legend(ax)
    if notes:
        ax.text(
            0.0,
            0.0,
            "\n".join(S.esc(S.wrap(n, _chars(box_w, S.SMALL_SIZE), max_lines=2)) for n in notes),
            transform=ax.transAxes,
            ha="left",
            va="bottom",
            fontsize=S.SMALL_SIZE,
            color=S.MUTED,
            gid="key-note",
        )
    clauses = ["Each signal in its own unit, with its confidence interval"]
    clauses.append("in colour: flagged as a key stage")
    if "q_value" in drawn.columns and drawn["q_value"].notna().any():
        clauses.append("q: Benjamini–Hochberg q-value within the signal")
    if len(drawn) < n_rows:
        clauses.insert(
            1, f"{len(drawn):,} of {n_rows:,} rows drawn, flagged first (all in the table)"
        )
    sub = _fit_clauses(clauses, _chars(max(box_w, 4.0), S.SUBTITLE_SIZE), 3)
    S.titles(ax, title, sub)
    return ax


def _name(r: Any) -> str:
    seg = getattr(r, "segment", None)
    if seg is not None and pd.notna(seg) and r.signal in ("dropoff", "dwell"):
        return f"{r.stage} · {seg}"
    return str(r.stage)


def _heading(sig: str, width: int) -> str:
    """``"Leverage · win probability gained (points)"``, or only the name and unit when
    that does not fit ``width`` characters."""
    name, unit = FAMILIES.get(sig, (sig.replace("_", " ").capitalize(), "effect"))
    unit_short = unit.split(", ")[-1]
    full = (
        f"{name} · {unit.rsplit(', ', 1)[0]} ({unit_short})"
        if ", " in unit
        else f"{name} · {unit}"
    )
    return S.esc(full if _units(full) <= width else f"{name} ({unit_short})")


def _tick_labels(ticks: np.ndarray, sig: str, percent: bool) -> list[str]:
    """Effects in the signal's unit: points (``+5``), % longer (``+30%``), or shares."""
    step = float(np.min(np.diff(ticks))) if ticks.size > 1 else 0.1
    digits = max(0, -math.floor(math.log10(100 * step) + 1e-9)) if step > 0 else 0
    out = []
    for v in ticks:
        if abs(v) < 1e-12:
            out.append("0")
        elif sig == "dwell":
            out.append(f"{100 * v:+.{digits}f}%")
        elif percent:
            out.append(f"{100 * v:+.{digits}f}")
        else:
            out.append(f"{v:+.{digits + 2}f}")
    return [t.replace("-", "−") for t in out]


def _draw_panels(
    ax: Axes,
    drawn: pd.DataFrame,
    lines: int,
    box_w: float,
    box_h: float,
    percent: bool,
    kwargs: dict[str, Any],
) -> None:
    """One inset Axes per signal, stacked in ``ax``'s box (``box_w`` × ``box_h`` inches):
    stage names on the left, effects in the middle, reasons on the right."""
    from matplotlib.ticker import FixedLocator, MaxNLocator
    from matplotlib.transforms import blended_transform_factory

    th = S.theme()
    label_max = 0.28 * box_w
    names = [
        S.wrap(_name(r), min(_chars(label_max - 0.1, _LABEL_SIZE), 30), max_lines=lines)
        for r in drawn.itertuples(index=False)
    ]
    label_w = min(max((_inches(n, _LABEL_SIZE) for n in names), default=0.5) + 0.15, label_max)
    reason_w = (0.46 if box_w >= 8 else 0.42) * box_w
    plot_w = box_w - label_w - reason_w - 0.2
    if plot_w < 0.25 * box_w:
        plot_w = 0.25 * box_w
        reason_w = box_w - label_w - plot_w - 0.2
    reason_chars = _chars(reason_w, _REASON_SIZE)
    pitch = _pitch(lines)
    top = box_h - _TOP
    signals = S.ordered_unique(drawn["signal"])
    name_of = dict(zip(drawn.index, names, strict=True))
    for sig in signals:
        rows = drawn.loc[drawn["signal"] == sig]
        k = len(rows)
        y_top = top - _HEAD
        y_bottom = y_top - k * pitch
        top = y_bottom - _FOOT - _GAP
        ax.text(
            0.0,
            (y_top + 0.07) / box_h,
            _heading(str(sig), _chars(box_w, S.ANNOT_SIZE)),
            transform=ax.transAxes,
            ha="left",
            va="bottom",
            fontsize=S.ANNOT_SIZE,
            fontweight="bold",
            color=th.text,
            gid="key-panel-title",
        )
        panel = ax.inset_axes(
            (label_w / box_w, y_bottom / box_h, plot_w / box_w, k * pitch / box_h)
        )
        panel.set_gid(f"key-panel-{sig}")
        y = np.arange(k)[::-1].astype(float)
        trans = blended_transform_factory(panel.transAxes, panel.transData)
        pts: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        colors = []
        for yi, (_, r) in zip(y, rows.iterrows(), strict=True):
            flagged = bool(r["is_key"]) if pd.notna(r["is_key"]) else False
            color = S.HIGHLIGHT if flagged else th.neutral
            colors.append(S.HIGHLIGHT if flagged else th.text)
            lo, hi, eff = float(r["ci_low"]), float(r["ci_high"]), float(r["effect"])
            if np.isfinite(lo) and np.isfinite(hi):
                panel.plot([lo, hi], [yi, yi], color=color, linewidth=2.4, gid="key-ci", zorder=2)
            if np.isfinite(eff):
                pts[flagged].append((eff, yi))
            q = q_text(r.get("q_value", np.nan))
            text = (q + " · " if q else "") + plain(r["reason"])
            reason = panel.text(
                1 + 0.12 / plot_w,
                yi,
                S.esc(fit_text(text, reason_chars, lines)),
                transform=trans,
                ha="left",
                va="center",
                fontsize=_REASON_SIZE,
                color=th.text if flagged else th.muted,
                fontweight="bold" if flagged else "normal",
                gid="key-reason",
                linespacing=1.15,
            )
            reason.set_clip_box(ax.bbox)  # a safety net: the wrap keeps it inside
            reason.set_clip_on(True)
        for flagged, p in pts.items():
            if not p:
                continue
            xs, ys = zip(*p, strict=True)
            sc_kw: dict[str, Any] = {
                "s": 56,
                "zorder": 3,
                "edgecolors": th.paper,
                "linewidths": 1,
                "color": S.HIGHLIGHT if flagged else th.neutral,
            }
            sc_kw.update(kwargs)
            panel.scatter(xs, ys, gid="key-effect-flagged" if flagged else "key-effect", **sc_kw)
        panel.axvline(0, color=th.muted, linewidth=1, linestyle="--", zorder=1)
        panel.set_yticks(y, [name_of[i] for i in rows.index])
        panel.set_ylim(-0.5, k - 0.5)
        vals = rows[["effect", "ci_low", "ci_high"]].to_numpy(dtype=float)
        vals = vals[np.isfinite(vals)]
        lo_ = float(min(vals.min(), 0)) if vals.size else -0.01
        hi_ = float(max(vals.max(), 0)) if vals.size else 0.01
        pad = 0.08 * (hi_ - lo_ or 0.02)
        panel.set_xlim(lo_ - pad, hi_ + pad)
        ticks = MaxNLocator(nbins=max(2, int(plot_w / 0.75)), steps=[1, 2, 2.5, 5, 10])
        locs = np.array(
            [t for t in ticks.tick_values(lo_ - pad, hi_ + pad) if lo_ - pad <= t <= hi_ + pad]
        )
        panel.xaxis.set_major_locator(FixedLocator(locs.tolist()))
        panel.set_xticks(locs, _tick_labels(locs, str(sig), percent))
        S.style_axes(panel, grid="x")
        panel.tick_params(axis="x", labelsize=S.SMALL_SIZE)
        panel.tick_params(axis="y", length=0, labelsize=_LABEL_SIZE)
        panel.spines["left"].set_visible(False)
        for tick, c in zip(panel.get_yticklabels(), colors, strict=True):
            tick.set_color(c)


def _legend(ax: Axes) -> None:
    from matplotlib.lines import Line2D

    th = S.theme()
    ax.legend(
        handles=[
            Line2D([], [], marker="o", ls="-", color=S.HIGHLIGHT, label="key stage (flagged)"),
            Line2D([], [], marker="o", ls="-", color=th.neutral, label="not flagged"),
        ],
        loc="upper right",
        bbox_to_anchor=(1.0, 1.0),
        ncol=2,
        frameon=False,
        fontsize=S.SMALL_SIZE,
        borderaxespad=0.0,
        handlelength=1.6,
        labelcolor=th.text,
    )
