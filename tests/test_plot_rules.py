"""The rules every chart keeps, tested on its artists (issue 20).

1. **Grid**: drawn on one Axes of a user's 2 × 2 grid, nothing of the chart reaches into a
   neighbour's plotting area — in a plain figure and with ``layout="constrained"``.
2. **Theme**: under ``dark_background`` every text outside the plotting area has a contrast
   of at least 3:1 against the background (WCAG 2, large text).
3. **Scripts**: Chinese stage and segment names render with no missing glyph.
4. **Scale**: with 24 stages no two texts of a chart overlap.

``CHARTS`` draws each chart the way a user would, from a log; a chart is one entry.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.text import Text
from matplotlib.transforms import Bbox

import funnelkit as fk
import funnelkit.plot as fp
from funnelkit.forecast import backtest
from funnelkit.plot import _style as S

# ---------------------------------------------------------------------------- the charts
#: name -> draw(log, ax) ; every chart, called as a user calls it on a log
CHARTS: dict[str, Callable[[fk.EventLog, Axes | None], Any]] = {
    "funnel": lambda log, ax: fp.funnel(log, ax=ax),
    "flow": lambda log, ax: fp.flow(log, ax=ax),
    "heatmap": lambda log, ax: fp.heatmap(log, ax=ax),
    "dwell": lambda log, ax: fp.dwell(log, ax=ax),
    "survival": lambda log, ax: fp.survival(log, ax=ax),
    "key_stages": lambda log, ax: fp.key_stages(log, ax=ax, by="team", n_boot=0),
    "segments": lambda log, ax: fp.segments(log, by="team", ax=ax),
    "trend": lambda log, ax: fp.trend(log, ax=ax),
    "incidence": lambda log, ax: fp.incidence(log, ax=ax),
    "calibration": lambda log, ax: fp.calibration(
        backtest(log, log.as_of - np.timedelta64(120, "D"), "60D"), ax=ax
    ),
    "waterfall": lambda log, ax: fp.waterfall(log, ax=ax),
    "slippage": lambda log, ax: fp.slippage(_with_history(log), "stage", ax=ax),
    "forecast": lambda log, ax: _fan(log, ax),
}


def _with_history(log: fk.EventLog) -> fk.EventLog:
    """The log with a simulated field history of its own events (for the slippage chart)."""
    history = fk.datasets.field_history(log._source, won=log.won, lost=log.lost, seed=1)
    return log.with_history(history, **fk.datasets.SAMPLE_HISTORY_KWARGS)


def _fan(log: fk.EventLog, ax: Axes | None) -> Axes:
    """The fan chart of one team's monthly forecast with a quota (its name in the subtitle)."""
    fc = log.forecast(
        by="team", by_period="ME", periods=3, quota=5, quota_of="wins", n_sims=200, n_boot=0
    )
    return fp.forecast(fc, segment=fc.periods["team"].iloc[0], ax=ax)


#: the eight charts issue 20 names; incidence and calibration came later and keep the
#: same rules
NAMES = list(CHARTS)

CJK_STAGES = ["线索", "需求分析", "方案设计", "商务谈判", "合同谈判"]
CJK_TEAMS = ["华东团队", "华南团队", "华北团队"]
LONG_STAGES = [
    f"{code}_{word}"
    for code, word in zip(
        "ABCDEFGHIJKLMNOPQRSTUVWX",
        [
            "SUBMITTED",
            "PARTLYSUBMITTED",
            "PREACCEPTED",
            "ACCEPTED",
            "FINALIZED",
            "Completeren aanvraag",
            "Nabellen offertes",
            "Valideren aanvraag",
            "Afhandelen leads",
            "Beoordelen fraude",
            "Wijzigen contractgegevens",
            "SELECTED",
            "CREATED",
            "SENT",
            "SENT_BACK",
            "Qualification call",
            "Needs analysis and discovery workshop",
            "Solution design",
            "Technical validation",
            "Proposal sent",
            "Contract negotiation and legal review",
            "Procurement",
            "Verbal commit",
            "Signature pending",
        ],
        strict=True,
    )
]


def _log(stages=None, teams=None, n=1500, seed=3, won="Won", lost=("Lost", "Disqualified")):
    kw: dict[str, Any] = {"stages": stages} if stages else {}
    if teams:
        kw["teams"] = teams
    ev = fk.datasets.synthetic(n, seed=seed, won=won, lost=list(lost), **kw)
    return fk.EventLog(
        ev,
        stages=stages,
        won=won,
        lost=list(lost),
        amount="amount",
        attrs=["team", "region", "owner"],
        stale_after="60D",
    )


@pytest.fixture(scope="module")
def sample():
    return fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)


@pytest.fixture(scope="module")
def cjk_log():
    return _log(CJK_STAGES, CJK_TEAMS, won="赢单", lost=("输单", "无效线索"))


@pytest.fixture(scope="module")
def log24():
    return _log(LONG_STAGES, n=3000, seed=5)


def _draw(name: str, log, ax=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fk.FunnelkitWarning)
        return CHARTS[name](log, ax)


def _figure_of(out) -> Any:
    return out if not isinstance(out, Axes) else out.figure


# ---------------------------------------------------------------------------- geometry
def _texts(fig) -> list[Text]:
    """Every visible, non-empty text of a figure, tick labels included."""
    fig.canvas.draw()
    out = []
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text().strip() and t.get_alpha() != 0:
            out.append(t)
    return out


def _extent(t: Text, renderer) -> Bbox:
    return t.get_window_extent(renderer)


def _overlap(a: Bbox, b: Bbox) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


def _chart_extent(ax: Axes, renderer) -> list[Bbox]:
    """The boxes of everything the chart drew on (or around) ``ax``: its tight bbox, and
    that of any Axes it added to the figure next to it (colour bars, panels)."""
    return [ax.get_tightbbox(renderer)]


# ---------------------------------------------------------------------------- 1. grid
@pytest.mark.parametrize("layout", [None, "constrained"])
@pytest.mark.parametrize("name", NAMES)
def test_a_chart_in_a_grid_stays_out_of_its_neighbours(sample, name, layout):
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), layout=layout)
    mine = axes[0][0]
    before = set(fig.axes)
    _draw(name, sample, mine)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    neighbours = [axes[0][1], axes[1][0], axes[1][1]]
    added = [a for a in fig.axes if a not in before]  # colour bars, panels
    boxes = [mine.get_tightbbox(renderer)] + [a.get_tightbbox(renderer) for a in added]
    for nb in neighbours:
        area = nb.get_window_extent(renderer)
        spill = max(_overlap(b, area) for b in boxes) / (area.width * area.height)
        assert spill <= 0.005, (
            f"fk.plot.{name} covers {spill:.1%} of a neighbour's plotting area ({layout=})"
        )


# ---------------------------------------------------------------------------- 2. theme
def _outside(t: Text, renderer, fig) -> bool:
    """Whether a text sits outside every plotting area (titles, labels, ticks, legends
    and text columns beside the axes)."""
    box = t.get_window_extent(renderer)
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    for a in fig.axes:
        if a.get_window_extent(renderer).contains(cx, cy):
            return t in a.get_xticklabels() + a.get_yticklabels()
    return True


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_text_outside_the_plot_reads_on_a_dark_theme(sample, name):
    with plt.style.context("dark_background"):
        out = _draw(name, sample)
        fig = _figure_of(out)
        face = mpl.rcParams["figure.facecolor"]
        texts = _texts(fig)
        renderer = fig.canvas.get_renderer()
        bad = [
            (t.get_text()[:30], S.contrast(t.get_color(), face))
            for t in texts
            if _outside(t, renderer, fig)
            and S.contrast(t.get_color(), face) < 3.0
            and t.get_bbox_patch() is None  # text on its own box carries its background
        ]
    assert not bad, f"fk.plot.{name}: texts that vanish on a dark background: {bad[:5]}"


def test_the_theme_follows_the_active_style():
    light = S.theme()
    with plt.style.context("dark_background"):
        dark = S.theme()
        assert S.TEXT == dark.text  # module colours are read when used
    assert not light.dark and dark.dark
    for th in (light, dark):
        assert S.contrast(th.text, th.face) >= 7
        assert S.contrast(th.muted, th.face) >= 4.5
        assert S.contrast(th.grid, th.face) < S.contrast(th.neutral, th.face)


def test_the_palette_gives_twelve_series_distinct_colours():
    colours = [S.series_style(i)["color"] for i in range(S.MAX_SERIES)]
    assert len(set(colours)) == S.MAX_SERIES == 12
    assert S.OTHER not in colours


# ---------------------------------------------------------------------------- 3. scripts
@pytest.mark.slow
@pytest.mark.skipif(
    S.cjk_font() is None and not os.environ.get("CI"),
    reason="no CJK font installed (.ci/run installs Debian's fonts-noto-cjk)",
)
@pytest.mark.parametrize("name", NAMES)
def test_chinese_names_render_with_every_glyph(cjk_log, name):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _draw(name, cjk_log)
        fig = _figure_of(out)
        fig.savefig(io.BytesIO(), format="png")
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert not missing, f"fk.plot.{name}: {len(missing)} missing glyphs, e.g. {missing[0]}"
    if name != "calibration":  # the calibration chart shows no stage or segment names
        shown = " ".join(t.get_text() for t in _texts(fig))
        assert S.needs_cjk(shown)


def test_without_a_cjk_font_one_warning_says_what_to_install(cjk_log, monkeypatch):
    monkeypatch.setattr(S, "cjk_font", lambda: None)
    with pytest.warns(fk.FunnelkitWarning, match="fonts-noto-cjk") as caught:
        fp.funnel(cjk_log)
    assert sum("CJK" in str(w.message) or "Chinese" in str(w.message) for w in caught) == 1


def test_latin_text_keeps_the_chart_font(sample):
    ax = fp.funnel(sample)
    fam = mpl.rcParams["font.family"]
    assert all(list(t.get_fontfamily()) == list(fam) for t in _texts(ax.figure))


# ---------------------------------------------------------------------------- 4. scale
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_no_two_texts_overlap_with_24_stages(log24, name):
    out = _draw(name, log24)
    fig = _figure_of(out)
    texts = _texts(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text()[:25], _extent(t, renderer).padded(-1)) for t in texts]
    clashes = [
        (a, b)
        for i, (a, ba) in enumerate(boxes)
        for b, bb in boxes[i + 1 :]
        if _overlap(ba, bb) > 0
    ]
    assert not clashes, f"fk.plot.{name}: {len(clashes)} overlapping texts, e.g. {clashes[:3]}"
