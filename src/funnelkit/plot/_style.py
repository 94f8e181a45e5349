"""Shared look of the charts: palette, fonts, number formats, wrapping, input handling.

Nothing here touches matplotlib's global state: styles are passed to each artist
explicitly, and matplotlib itself is imported only when a chart is drawn
(:func:`pyplot`), so ``import funnelkit.plot`` stays cheap for jobs that never plot.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from .. import _facade
from .._stats import km_survival
from ..errors import InvalidParameterError, warn

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..log import EventLog

# ---------------------------------------------------------------------------- palette
#: Okabe & Ito (2008), "Color Universal Design": distinguishable under the common forms
#: of colour-vision deficiency. Yellow is last: it is hard to read on white.
OKABE_ITO = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "bluish_green": "#009E73",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "sky_blue": "#56B4E9",
    "black": "#000000",
    "yellow": "#F0E442",
}
#: colours of categorical series (segments, stages), in order; yellow left out (it does not
#: read on white), line styles change after the seventh series
#: followed by five of Paul Tol's "muted" scheme (Tol 2021, "Colour schemes"), so that 12
#: series get distinct colours; markers and line styles keep them apart beyond colour.
#: Black is left out too: it vanishes on a dark theme. Beyond 12 series, charts pool the
#: smallest as "other" (:data:`OTHER`).
SERIES = [c for k, c in OKABE_ITO.items() if k not in ("yellow", "black")] + [
    "#882255",  # wine
    "#999933",  # olive
    "#44AA99",  # teal
    "#AA4499",  # purple
    "#DDCC77",  # sand
    "#332288",  # indigo
]
#: the most series a chart gives their own colour
MAX_SERIES = len(SERIES)
#: markers and line styles that, cycled with the colours, keep >8 series apart
MARKERS = ["o", "s", "D", "^", "v", "P", "X", "h", "<", ">", "p", "*"]
LINESTYLES = ["-", "--", ":", "-."]

BAR = OKABE_ITO["blue"]  # plain bars / points
HIGHLIGHT = OKABE_ITO["vermillion"]  # key stages, flagged rows
FORWARD = OKABE_ITO["sky_blue"]  # forward moves in the flow diagram
BACKWARD = OKABE_ITO["reddish_purple"]  # backward moves
WON = OKABE_ITO["bluish_green"]
LOST = OKABE_ITO["vermillion"]
STALE = "#8C8C8C"
CENSORED = OKABE_ITO["orange"]  # visits still open at as_of
#: text drawn on a coloured mark (a bar, a cell) that is light: fixed, whatever the theme
INK = "#222222"
#: the colour of series beyond the palette, pooled as "other", and of muted marks
OTHER = "#8C8C8C"

# ---------------------------------------------------------------------------- fonts (pt)
TITLE_SIZE = 13.5
SUBTITLE_SIZE = 9.5
LABEL_SIZE = 11
TICK_SIZE = 10
ANNOT_SIZE = 9.5
SMALL_SIZE = 8.5

#: an estimate with at least this much unresolved probability mass (``funnel()``'s
#: ``unresolved``; 0.05%, which rounds to 0.1%) is *not settled yet*: the funnel chart gives
#: its interval instead of a point, the segment and trend charts draw it hollow, and the
#: report's funnel table shows the unresolved share
UNRESOLVED_MIN = 0.0005

#: wrap stage names on tick labels after this many characters
WRAP = 18
SUBTITLE_GID = "funnelkit-subtitle"


def pyplot():
    """matplotlib.pyplot, imported on first use (never at ``import funnelkit``)."""
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------------------- theme
@dataclass(frozen=True)
class Theme:
    """Colours of the active matplotlib style, read when a chart is drawn.

    Charts never fix a text or background colour: under ``plt.style.use(
    "dark_background")`` (or any style, or a ``plt.style.context``) titles, labels, ticks
    and the neutral marks follow its ``rcParams``. The muted, neutral and grid shades are
    the text colour mixed into the background, so they keep their contrast order on light
    and dark themes alike.
    """

    text: str  #: titles, annotations (``text.color``)
    label: str  #: axis labels (``axes.labelcolor``)
    tick: str  #: tick labels (``xtick.labelcolor``, else ``xtick.color``)
    face: str  #: the background charts draw on (``axes.facecolor``)
    muted: str  #: subtitles, secondary text (contrast >= 4.5:1 on ``face``)
    neutral: str  #: reference lines, unflagged marks, spines
    node: str  #: stage nodes of the flow diagram
    grid: str  #: grid lines
    band: str  #: zebra stripes behind rows
    dark: bool  #: whether ``face`` is dark

    @property
    def paper(self) -> str:
        """The background colour, for marker edges and hollow fills ("white" on paper)."""
        return self.face


def _hex(c: Any) -> str:
    from matplotlib.colors import to_hex

    return to_hex(c)


def mix(a: Any, b: Any, t: float) -> str:
    """Colour ``a`` moved a share ``t`` of the way towards ``b`` (in RGB)."""
    from matplotlib.colors import to_rgb

    ra, rb = np.array(to_rgb(a)), np.array(to_rgb(b))
    return _hex(ra * (1 - t) + rb * t)


def luminance(c: Any) -> float:
    """Relative luminance (WCAG 2): 0 black … 1 white."""
    from matplotlib.colors import to_rgb

    rgb = np.array(to_rgb(c))
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(lin @ np.array([0.2126, 0.7152, 0.0722]))


def contrast(a: Any, b: Any) -> float:
    """WCAG contrast ratio of two colours (1 … 21; text wants >= 4.5, large text >= 3)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def theme() -> Theme:
    """The :class:`Theme` of the style active now (see :class:`Theme`)."""
    import matplotlib as mpl

    rc = mpl.rcParams
    face = rc["axes.facecolor"]
    if str(face).lower() == "none":
        face = rc["figure.facecolor"]
    face = _hex(face)
    text = _hex(rc["text.color"])
    label = rc["axes.labelcolor"]
    label = text if label == "inherit" else _hex(label)
    tick = rc["xtick.labelcolor"]
    tick = rc["xtick.color"] if tick == "inherit" else tick
    muted = mix(text, face, 0.3)
    if contrast(muted, face) < 4.5:
        muted = mix(text, face, 0.15)
    return Theme(
        text=text,
        label=label,
        tick=_hex(tick),
        face=face,
        muted=muted,
        neutral=mix(text, face, 0.55),
        node=mix(text, face, 0.2),
        grid=mix(text, face, 0.88),
        band=mix(text, face, 0.96),
        dark=luminance(face) < 0.2,
    )


_THEMED = {"TEXT": "text", "MUTED": "muted", "NEUTRAL": "neutral", "NODE": "node", "GRID": "grid"}


def __getattr__(name: str) -> str:
    # S.TEXT, S.MUTED, ... are the active style's colours, read at the moment a chart
    # uses them (PEP 562); see Theme.
    if name in _THEMED:
        return str(getattr(theme(), _THEMED[name]))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def series_style(i: int) -> dict[str, Any]:
    """Colour, marker and line style of the i-th categorical series."""
    return {
        "color": SERIES[i % len(SERIES)],
        "marker": MARKERS[i % len(MARKERS)],
        "linestyle": LINESTYLES[(i // len(SERIES)) % len(LINESTYLES)],
    }


# ---------------------------------------------------------------------------- scripts
#: installed fonts tried, in order, for Chinese, Japanese and Korean text: matplotlib's
#: default font (DejaVu Sans) has no CJK glyphs, so 需求分析 would render as empty boxes
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans CJK TC",
    "Noto Sans CJK KR",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "Source Han Sans",
    "Microsoft YaHei",
    "PingFang SC",
    "Hiragino Sans GB",
    "Heiti SC",
    "SimHei",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "Arial Unicode MS",
)
_CJK = re.compile(
    "[\u2e80-\u2fdf\u3000-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]"
)
CJK_HINT = (
    "install a CJK font — Debian/Ubuntu: `apt install fonts-noto-cjk`; Fedora: "
    "`dnf install google-noto-sans-cjk-fonts`; conda: `conda install -c conda-forge "
    "font-ttf-noto-cjk`; macOS and Windows ship PingFang SC and Microsoft YaHei — then "
    "restart Python (matplotlib lists fonts once per cache; delete its font cache in "
    "matplotlib.get_cachedir() if the font is still not found)"
)


def needs_cjk(text: Any) -> bool:
    """Whether ``text`` has Chinese, Japanese or Korean characters."""
    return bool(_CJK.search(str(text)))


@functools.cache
def cjk_font() -> str | None:
    """The first installed font of :data:`CJK_FONTS`, or None (looked up once)."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((f for f in CJK_FONTS if f in installed), None)


def _chart_axes(out: Any) -> list[Axes]:
    from matplotlib.figure import Figure, SubFigure

    fig = out if isinstance(out, Figure | SubFigure) else out.figure
    return list(fig.axes)


def fit_scripts(out: Any) -> None:
    """Give every text of a drawn chart that has CJK characters a font that has them.

    The text's own family stays first and an installed CJK font (:data:`CJK_FONTS`) is
    its fallback, so Latin letters and digits keep the chart's font (matplotlib >= 3.6
    falls back glyph by glyph). Only texts with such characters change, and tick labels
    through the Axes' tick parameters (ticks made later inherit them). No CJK font
    installed: one :class:`~funnelkit.FunnelkitWarning` naming what to install.
    """
    from matplotlib.text import Text

    axes = _chart_axes(out)
    fig = axes[0].figure if axes else out
    texts = [t for t in fig.findobj(Text) if needs_cjk(t.get_text())]
    tick_axes = []
    for ax in axes:
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            labels = axis.get_majorticklabels() + axis.get_minorticklabels()
            if any(needs_cjk(t.get_text()) for t in labels):
                tick_axes.append((ax, name, labels))
    if not texts and not tick_axes:
        return
    font = cjk_font()
    if font is None:
        example = next(
            (t.get_text() for t in texts),
            next(
                (t.get_text() for _, _, ls in tick_axes for t in ls if needs_cjk(t.get_text())), ""
            ),
        )
        warn(
            f"The chart has Chinese, Japanese or Korean text (e.g. {example!r}) but no "
            f"installed font has those characters, so they would show as empty boxes: "
            f"{CJK_HINT}."
        )
        return

    def with_fallback(family: Sequence[str]) -> list[str]:
        return list(family) + [font] if font not in family else list(family)

    for t in texts:
        t.set_fontfamily(with_fallback(t.get_fontfamily()))
    for ax, name, labels in tick_axes:
        family = with_fallback(labels[0].get_fontfamily())
        ax.tick_params(axis=name, which="both", labelfontfamily=family)  # type: ignore[arg-type]


F = TypeVar("F", bound=Callable[..., Any])


def chart(func: F) -> F:
    """Decorate a chart: after it has drawn, fit fonts to the scripts of its text
    (:func:`fit_scripts`)."""

    @functools.wraps(func)
    def drawn(*args: Any, **kwargs: Any) -> Any:
        out = func(*args, **kwargs)
        fit_scripts(out)
        return out

    return drawn  # type: ignore[return-value]


# ---------------------------------------------------------------------------- axes
def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax``, or the Axes of a new figure of ``figsize`` inches with constrained layout.

    A new figure rather than ``plt.gca()``: each chart sizes itself to its data (number of
    stages, of periods), and drawing over whatever axes happen to be current would mix
    charts. The layout engine belongs to the new figure only (no global state).
    """
    if ax is not None:
        return ax
    plt = pyplot()
    _, new = plt.subplots(figsize=figsize, layout="constrained")
    return new


def axes_inches(ax: Axes) -> tuple[float, float]:
    """Current width and height of ``ax`` in inches (before any layout engine runs)."""
    dpi = ax.figure.dpi
    return ax.bbox.width / dpi, ax.bbox.height / dpi


def style_axes(ax: Axes, *, grid: str | None = "x") -> None:
    """Light, slide-friendly axes: no top/right spines, soft grid behind the data."""
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    th = theme()
    for side in ("left", "bottom"):
        ax.spines[side].set_color(th.neutral)
    ax.tick_params(labelsize=TICK_SIZE, colors=th.tick, which="both")
    ax.tick_params(color=th.neutral, which="both")
    ax.set_axisbelow(True)
    if grid in ("x", "y", "both"):
        ax.grid(True, axis=grid, color=th.grid, linewidth=0.8)  # type: ignore[arg-type]


#: each subtitle's text before :func:`fit_width` wrapped it, by Axes (for subtitle_of)
_UNWRAPPED: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def titles(
    ax: Axes, title: str | None, subtitle: str | None = None, extra_pad: float = 0.0
) -> None:
    """A bold title and a smaller grey subtitle under it, both above the axes.

    The subtitle hangs from the title (it moves with it, e.g. above top tick labels); the
    title's ``pad`` leaves it room (plus ``extra_pad`` points, e.g. for a legend row
    between the subtitle and the axes).
    """
    width = axes_inches(ax)[0]
    if ax.figure.get_layout_engine() is not None:
        width *= 0.9  # the layout will narrow the Axes to make room for its labels
    # slack: a line a chart wrapped itself may be a little wider than this estimate; keep
    # it (centred, it overhangs into the gap between Axes) rather than orphan a word
    sub = fit_width(subtitle or "", width, SUBTITLE_SIZE, slack=1.12)
    n_lines = sub.count("\n") + 1 if sub else 0
    pad = 6 + n_lines * SUBTITLE_SIZE * 1.3 + extra_pad
    th = theme()
    ax.set_title(title or "", fontsize=TITLE_SIZE, fontweight="bold", color=th.text, pad=pad)
    if sub:
        _UNWRAPPED[ax] = subtitle or ""
        ax.annotate(
            sub,
            xy=(0.5, 0.0),
            xycoords=ax.title,
            xytext=(0, -2),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=SUBTITLE_SIZE,
            color=th.muted,
            gid=SUBTITLE_GID,
        )


def fit_width(text: str, width_in: float, size: float, slack: float = 1.0, sep: str = " ") -> str:
    """``text`` wrapped at ``sep`` to lines no wider than ``width_in`` inches at font
    ``size`` (widths measured in the active font, :func:`text_width_pt`), so a subtitle
    never runs over a neighbouring chart in a grid. Lines that fit (within ``slack``
    times the width), and existing line breaks, stay as they are."""
    limit = width_in * 72
    out: list[str] = []
    for line in text.split("\n"):
        if text_width_pt(line, size) <= slack * limit:
            out.append(line)
            continue
        cur = ""
        for word in line.split(sep):
            trial = f"{cur}{sep}{word}" if cur else word
            if cur and text_width_pt(trial, size) > limit:
                out.append(cur)
                cur = word
            else:
                cur = trial
        out.append(cur)
    return "\n".join(out)


def text_width_pt(text: str, size: float, weight: str = "normal") -> float:
    """Width in points of the widest line of ``text`` at ``size`` points, in the active
    font (with the CJK fallback the chart will get), measured without a renderer."""
    import matplotlib as mpl
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    lines = str(text).replace("\\$", "$").split("\n")
    family = list(mpl.rcParams["font.family"])
    if any(needs_cjk(line) for line in lines):
        font = cjk_font()
        if font is None:  # no glyphs to measure: a CJK character is about 1 em wide
            return max(size * sum(1.0 if needs_cjk(c) else 0.6 for c in ln) for ln in lines)
        family = [*family, font]
    prop = FontProperties(family=family, size=size, weight=weight)
    return max(
        (text_to_path.get_text_width_height_descent(ln, prop, ismath=False)[0] for ln in lines),
        default=0.0,
    )


def subtitle_of(ax: Axes) -> str:
    """The subtitle drawn by :func:`titles` ('' when none)."""
    for t in ax.texts:
        if t.get_gid() == SUBTITLE_GID:
            return _UNWRAPPED.get(ax, t.get_text())
    return ""


def label(ax: Axes, *, x: str | None = None, y: str | None = None) -> None:
    color = theme().label
    if x is not None:
        ax.set_xlabel(x, fontsize=LABEL_SIZE, color=color)
    if y is not None:
        ax.set_ylabel(y, fontsize=LABEL_SIZE, color=color)


def percent_axis(ax: Axes, axis: str = "x", decimals: int | None = 0) -> None:
    from matplotlib.ticker import PercentFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(PercentFormatter(1.0, decimals=decimals))


def days_axis(ax: Axes, axis: str, lo: float, hi: float, zero_at: float | None = None) -> None:
    """A log days axis with ticks at readable durations (1 min, 1 h, 1 d, 1 wk, ...).

    ``zero_at``: where zero durations were drawn (they have no place on a log axis); that
    position gets the tick label "0".
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    (ax.set_xlim if axis == "x" else ax.set_ylim)(lo, hi)
    nice = NICE_DURATIONS if math.log10(hi / lo) <= 4 else SPARSE_DURATIONS
    ticks = [t for t in nice if lo <= t <= hi]
    if zero_at is not None:
        ticks = [zero_at] + [t for t in ticks if t > 4 * zero_at]
    if len(ticks) >= 2:
        labels = {t: duration(t, short=True) for t in ticks}
        if zero_at is not None:
            labels[zero_at] = "0"
        target.set_major_locator(FixedLocator(ticks))
        target.set_major_formatter(FuncFormatter(lambda v, _pos: labels.get(v, "")))
        target.set_minor_formatter(NullFormatter())


#: readable tick positions of a log days axis, in days
NICE_DURATIONS = [
    1 / 86_400,
    10 / 86_400,
    1 / 1440,
    10 / 1440,
    1 / 24,
    6 / 24,
    1.0,
    7.0,
    30.0,
    90.0,
    365.0,
    3 * 365.0,
]
#: the same for axes that span many decades
SPARSE_DURATIONS = [1 / 86_400, 1 / 1440, 1 / 24, 1.0, 7.0, 30.0, 365.0]


# ---------------------------------------------------------------------------- text
def esc(text: Any) -> str:
    """A data string as literal text: ``$`` would start matplotlib's math mode (stage
    names, segments and reasons are untrusted CRM input)."""
    return str(text).replace("$", r"\$")


def wrap(name: Any, width: int = WRAP, max_lines: int = 3) -> str:
    """Wrap a (stage) name onto lines of about ``width`` characters.

    Breaks at spaces, and after ``_ / -`` so CRM codes such as ``A_PARTLYSUBMITTED`` wrap
    too; a token much longer than the width is cut. More than ``max_lines`` lines end in
    "…". The result is escaped for matplotlib (:func:`esc`).
    """
    text = str(name)
    if len(text) <= width:
        return esc(text)
    tokens = [t for t in re.split(r"(?<=[\s_/\-])", text) if t]
    pieces: list[str] = []
    for t in tokens:
        while len(t) > width + width // 2:  # cut only really long tokens
            pieces.append(t[:width])
            t = t[width:]
        pieces.append(t)
    lines: list[str] = []
    cur = ""
    for p in pieces:
        short = len(cur.strip()) < 5  # never leave a stub such as "A_" alone on a line
        if cur and not short and len(cur.rstrip()) + len(p.rstrip()) > width:
            lines.append(cur.rstrip())
            cur = p.lstrip()
        else:
            cur += p
    if cur.strip():
        lines.append(cur.rstrip())
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(width - 1, 1)].rstrip() + "…"
    return esc("\n".join(lines))


def pct(x: float, decimals: int = 1) -> str:
    """``0.8957`` → ``"89.6%"``; tiny non-zero shares → ``"<0.1%"``; NaN → ``"–"``."""
    if x is None or not np.isfinite(x):
        return "–"
    if 0 < abs(x) < 0.5 * 10 ** -(decimals + 2):
        return f"<{10**-decimals:.{decimals}f}%"
    return f"{100 * x:.{decimals}f}%"


def pct_range(low: float, high: float, decimals: int = 1) -> str:
    """``(0.307, 0.869)`` → ``"30.7–86.9%"``; NaN ends → ``"–"``."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "–"
    return f"{100 * low:.{decimals}f}–{100 * high:.{decimals}f}%"


def unsettled(unresolved: Any) -> np.ndarray:
    """Which estimates are not settled yet: ``unresolved`` >= :data:`UNRESOLVED_MIN`
    (missing → settled: nothing says otherwise)."""
    u = pd.to_numeric(pd.Series(unresolved), errors="coerce").to_numpy(dtype=float)
    return np.nan_to_num(u, nan=0.0) >= UNRESOLVED_MIN


def count(x: float) -> str:
    """Whole counts with thousands separators; amounts (non-integers) compact: 26.0M."""
    if x is None or not np.isfinite(x):
        return "–"
    if float(x).is_integer() and abs(x) < 1e7:
        return f"{int(x):,}"
    return compact(x)


def compact(x: float) -> str:
    a = abs(x)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{x / div:.1f}{suffix}"
    return f"{x:,.0f}"


def duration(days_: float, short: bool = False) -> str:
    """A duration in days as text: ``"43 s"``, ``"12 min"``, ``"7.1 h"``, ``"8.6 d"``."""
    if days_ is None or not np.isfinite(days_):
        return "–"
    s = days_ * 86_400
    if short:
        table = {1: "1 s", 10: "10 s", 60: "1 min", 600: "10 min", 3600: "1 h", 21600: "6 h"}
        if round(s) in table and days_ < 1:
            return table[round(s)]
        named = {7.0: "1 wk", 30.0: "30 d", 90.0: "90 d", 365.0: "1 yr", 1095.0: "3 yr"}
        if days_ in named:
            return named[days_]
        return f"{days_:g} d"
    if s < 10:
        return f"{s:.1g} s" if s < 1 else f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if days_ < 1:
        return f"{s / 3600:.1f} h"
    if days_ < 10:
        return f"{days_:.1f} d"
    return f"{days_:.0f} d"


def text_on(color: Any) -> str:
    """White or dark text, whichever reads better on ``color``."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    lum = 0.2126 * r**2.2 + 0.7152 * g**2.2 + 0.0722 * b**2.2
    return "white" if lum < 0.35 else INK


# ---------------------------------------------------------------------------- data
def to_days(td: Any) -> np.ndarray:
    """Timedeltas (Series, array, scalar) → float days; NaT → NaN. Numbers pass through."""
    s = pd.Series(td) if not isinstance(td, pd.Series) else td
    if pd.api.types.is_timedelta64_dtype(s.dtype):
        return s.dt.total_seconds().to_numpy(dtype=float) / 86_400
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)


def is_log(data: Any) -> bool:
    return _facade.is_log(data)


def table_or_log(
    data: Any,
    *,
    required: Sequence[str],
    compute: Callable[[EventLog], pd.DataFrame],
    what: str,
) -> tuple[pd.DataFrame, EventLog | None]:
    """The table a chart draws: computed from an EventLog, or a DataFrame checked for
    ``required`` columns. Returns ``(table, log or None)``."""
    if is_log(data):
        return compute(data), data
    if isinstance(data, pd.DataFrame):
        missing = [c for c in required if c not in data.columns]
        if missing:
            raise ValueError(
                f"The table passed as `data` lacks the column(s) {missing} of {what}; "
                f"found columns {list(data.columns)}. Pass an fk.EventLog, or {what} "
                "with its documented columns."
            )
        return data, None
    raise InvalidParameterError(
        f"`data` must be an fk.EventLog or a pandas DataFrame ({what}); got {type(data).__name__}."
    )


#: EventLog methods whose keywords a chart may forward (the analyses charts draw)
_ANALYSES = ("funnel", "dwell", "key_stages", "trend", "compare", "transition_matrix")
#: keywords that are matplotlib properties too: never an error, matplotlib's unless the
#: chart's computation takes them
_SHARED = frozenset({"alpha"})


def _keywords(method: str) -> set[str]:
    params = inspect.signature(getattr(_facade.log_class(), method)).parameters.values()
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {p.name for p in params if p.kind in kinds and p.name != "self"}


def split_kwargs(
    chart: str,
    data: Any,
    kwargs: dict[str, Any],
    compute: str | None,
    *,
    taken: Iterable[str] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a chart's ``**kwargs`` into the keywords of the analysis it computes from an
    EventLog — the keyword parameters of ``EventLog.<compute>`` not in ``taken`` (those the
    chart sets itself) — and the rest, for matplotlib.

    Every chart that computes from a log thus accepts that computation's keywords directly
    (``fk.plot.key_stages(log, by="team", n_boot=500)``). Clear errors instead of a
    matplotlib ``AttributeError``: an analysis keyword with a precomputed table (nothing to
    compute), or one the chart's computation does not take.
    """
    own = _keywords(compute) - set(taken) if compute is not None else set()
    known: set[str] = set().union(*(_keywords(m) for m in _ANALYSES)) - _SHARED
    log = is_log(data)
    comp = {k: v for k, v in kwargs.items() if log and k in own}
    rest = {k: v for k, v in kwargs.items() if k not in comp}
    wrong = sorted(k for k in rest if k in known | (own - _SHARED))
    if wrong:
        if compute is None:
            why = f"fk.plot.{chart} takes none"
        elif log:
            accepted = sorted(own - _SHARED)
            why = f"log.{compute}() does not take them (it takes {accepted})"
        else:
            why = f"they go to log.{compute}() and need an fk.EventLog, not a table"
        raise TypeError(f"fk.plot.{chart}: keyword(s) {wrong} are analysis keywords; {why}.")
    return comp, rest


def deprecated_kwargs(chart: str, name: str, value: dict[str, Any] | None) -> dict[str, Any]:
    """The keywords of a deprecated ``name=`` dict (e.g. ``key_kwargs``), with a
    DeprecationWarning saying to pass them directly."""
    if value is None:
        return {}
    warnings.warn(
        f"fk.plot.{chart}({name}=...) is deprecated: pass those keywords directly, e.g. "
        f"fk.plot.{chart}(log, by='team').",
        DeprecationWarning,
        stacklevel=3,
    )
    return dict(value)


def ordered_unique(values: Iterable[Any]) -> list[Any]:
    """Distinct values in order of first appearance (the funnel order of a table); of a
    categorical column, the categories that occur, in their order (the library's tables
    hold stages as categories in stage order, whatever order the rows come in: a
    distributed log's visits come partition by partition)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        present = set(values.dropna().unique())
        return [c for c in values.cat.categories if c in present]
    return list(dict.fromkeys(values))


def names(x: str | Sequence[str] | None) -> list[str]:
    if x is None:
        return []
    return [x] if isinstance(x, str) else list(x)


def outcomes(
    others: Sequence[Any], won: str | Sequence[str] | None, lost: str | Sequence[str] | None
) -> tuple[list[Any], dict[Any, str]]:
    """Outcome states of a table (the to-states that are not stages) in drawing order —
    won, lost, others, ``"stale"`` — and the kind of each.

    Without an EventLog nothing says which outcome is a win: ``won`` names the wins (or
    ``lost`` the losses, and the rest but ``"stale"`` are wins); by default ``"won"`` (any
    case) is won and every other outcome but ``"stale"`` lost.
    """
    if won is not None:
        won_l = names(won)
    elif lost is not None:
        won_l = [t for t in others if t not in names(lost) and t != "stale"]
    else:
        won_l = [t for t in others if str(t).lower() == "won"]
    kinds: dict[Any, str] = {}
    for t in others:
        if t == "stale":
            kinds[t] = "stale"
        elif t in won_l:
            kinds[t] = "won"
        else:
            kinds[t] = "lost"
    rank = {"won": 0, "lost": 1, "stale": 2}
    order = sorted(others, key=lambda t: rank[kinds[t]])  # stable: keeps table order
    return order, kinds


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise InvalidParameterError(f"`{name}` must be one of {list(choices)}; got {value!r}.")


def stage_names(stages: Sequence[Any], wanted: Iterable[Any], param: str) -> list[Any]:
    """``wanted`` checked against ``stages``; a clear error names the unknown ones."""
    wanted = list(wanted)
    unknown = [s for s in wanted if s not in set(stages)]
    if unknown:
        raise ValueError(
            f"`{param}` names stage(s) {unknown} that are not in the data; stages: {list(stages)}."
        )
    return wanted


def auto_log(values: np.ndarray) -> bool:
    """Whether durations spread widely enough to want a log axis: p95 / p25 > 20 or
    max / median > 10 (a linear axis would squash most visits against zero)."""
    v = values[np.isfinite(values) & (values > 0)]
    if v.size < 2:
        return False
    p25, p50, p95 = np.quantile(v, [0.25, 0.5, 0.95])
    return bool(p95 > 20 * p25 or v.max() > 10 * p50)


def log_floor(values: np.ndarray) -> float:
    """Where zero durations sit on a log axis: a decade below the smallest positive one."""
    v = values[np.isfinite(values) & (values > 0)]
    if v.size == 0:
        return 1 / 86_400
    return float(10 ** math.floor(math.log10(v.min()) - 0.5))


def km_curve(time: np.ndarray, censored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier step function of one sample.

    Returns ``(t, s)``: the distinct event times and S just after each (the curve is 1
    before ``t[0]``). Events come before censorings at equal times (DESIGN §3).
    """
    t, s, _, _ = km_steps(time, censored)
    return t, s


def km_steps(
    time: np.ndarray, censored: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`km_curve` with, at each of its event times, the number at risk and of
    events: ``(t, s, at_risk, events)``. Two sorts (the times, the event times), no
    argsort: at a million visits a stage's curve is mostly its sorts."""
    time = np.asarray(time, dtype=float)
    event = ~np.asarray(censored, dtype=bool)
    ok = np.isfinite(time)
    time, event = time[ok], event[ok]
    if time.size == 0:
        return np.empty(0), np.empty(0), np.empty(0), np.empty(0)
    ts = np.sort(time)
    first = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
    uniq = ts[first]
    rows = np.diff(np.r_[first, ts.size])  # visits at each distinct time
    te = np.sort(time[event])
    d = (np.searchsorted(te, uniq, side="right") - np.searchsorted(te, uniq, side="left")).astype(
        np.float64
    )
    at_risk, s = km_survival(d, rows - d)  # the library's one Kaplan–Meier
    has = d > 0
    return uniq[has], s[has], at_risk[has], d[has]


def step_at(t_event: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Value of the KM step function (1 before the first event) at times ``t``."""
    idx = np.searchsorted(t_event, t, side="right")
    return np.concatenate(([1.0], s))[idx]
