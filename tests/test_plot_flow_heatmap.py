"""fk.plot.flow and fk.plot.heatmap in grids, themes and at scale (issue 20), on the artists."""

from __future__ import annotations

from itertools import combinations

import matplotlib.pyplot as plt
import numpy as np
import pytest

import funnelkit as fk
import funnelkit.plot as fp
from conftest import same_color
from funnelkit.plot import _style as S
from funnelkit.plot._flow import fit_lines, text_width
from test_plot_rules import LONG_STAGES, _log


@pytest.fixture(scope="module")
def log():
    return fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)


@pytest.fixture(scope="module")
def log24():
    return _log(LONG_STAGES, n=3000, seed=5)


def gid_texts(ax, gid):
    return [t for t in ax.texts if t.get_gid() == gid]


def boxes(fig, texts):
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    return [t.get_window_extent(r) for t in texts]


def inside(inner, outer, tol=1.0) -> bool:
    return (
        inner.x0 >= outer.x0 - tol
        and inner.x1 <= outer.x1 + tol
        and inner.y0 >= outer.y0 - tol
        and inner.y1 <= outer.y1 + tol
    )


# ---------------------------------------------------------------------------- flow
def test_flows_under_min_share_are_left_out_and_counted(log):
    t = log.transitions()
    busiest = float(log.visits()["stage"].value_counts().max())
    thin = t["transitions"] < 0.01 * busiest
    assert thin.any()
    ax = fp.flow(log)  # min_share=0.01
    bands = [p for p in ax.patches if str(p.get_gid()).startswith("flow-")]
    drawn = [p for p in bands if p.get_gid() not in ("flow-node", "flow-outcome")]
    assert len(drawn) == int((~thin).sum())
    sub = S.subtitle_of(ax)
    moves = int(t.loc[thin, "transitions"].sum())
    v = log.visits()
    pairs = set(zip(t.loc[thin, "from_stage"], t.loc[thin, "to_stage"], strict=True))
    keep = [(a, b) in pairs for a, b in zip(v["stage"], v["next_stage"], strict=True)]
    deals = v.loc[keep, "deal"].nunique()
    assert f"Not drawn: {int(thin.sum())} flows < 1% of the busiest stage" in sub
    assert f"{moves} moves, {deals} deals" in sub
    # everything drawn at min_share=0, and no note
    ax0 = fp.flow(log, min_share=0)
    n0 = sum(p.get_gid() not in ("flow-node", "flow-outcome") for p in ax0.patches)
    assert n0 == len(t)
    assert "Not drawn" not in S.subtitle_of(ax0)
    # a higher threshold leaves out more; outcome nodes still count every move into them
    ax5 = fp.flow(log, min_share=0.05)
    n5 = sum(p.get_gid() not in ("flow-node", "flow-outcome") for p in ax5.patches)
    assert n5 == int((t["transitions"] >= 0.05 * busiest).sum()) < len(drawn)
    heights = sorted(p.get_height() for p in ax5.patches if p.get_gid() == "flow-outcome")
    inflow = t.groupby("to_stage", observed=True)["transitions"].sum()
    assert heights == sorted(float(inflow[s]) for s in log.won + log.lost + ["stale"])


def test_flow_with_every_flow_left_out_still_draws_its_nodes(log):
    ax = fp.flow(log, min_share=0.99)
    assert all(p.get_gid() in ("flow-node", "flow-outcome") for p in ax.patches)
    assert len(gid_texts(ax, "flow-stage")) == len(log.stages)
    assert ax.get_legend() is None
    assert f"Not drawn: {len(log.transitions())} flows < 99%" in S.subtitle_of(ax)


def test_flow_min_share_is_checked(log):
    with pytest.raises(ValueError, match="min_share"):
        fp.flow(log, min_share=1.5)


def test_flow_draws_everything_inside_its_axes(log):
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    ax = fp.flow(log, ax=axes[0][0])
    box = ax.get_window_extent()
    subtitle = next(t for t in ax.texts if t.get_gid() == S.SUBTITLE_GID)
    texts = [t for t in ax.texts if t is not subtitle]
    for b in boxes(fig, texts + ax.get_legend().get_texts()):
        assert inside(b, box)
    # the subtitle sits above the stage names, not over them
    sub_box, *stage_boxes = boxes(fig, [subtitle, *gid_texts(ax, "flow-stage")])
    assert sub_box.y0 >= max(b.y1 for b in stage_boxes)
    assert not ax.get_xticklabels() or not any(t.get_text() for t in ax.get_xticklabels())


def test_flow_labels_at_24_stages_are_whole_words_and_never_touch(log24):
    ax = fp.flow(log24)
    stage_texts = gid_texts(ax, "flow-stage")
    assert len(stage_texts) == 24
    for t, name in zip(stage_texts, LONG_STAGES, strict=True):
        *lines, count = t.get_text().split("\n")
        # wrapped only between words: the lines joined give the name back
        joined = "".join(line if line.endswith("_") else line + " " for line in lines)
        assert joined.strip() == name
        assert count.replace(",", "").isdigit()
    assert "A_PARTLYSU" not in " ".join(t.get_text() for t in stage_texts)
    all_texts = [t for t in ax.texts if t.get_visible()]
    for a, b in combinations(boxes(ax.figure, all_texts), 2):
        assert not a.shrunk(0.98, 0.98).overlaps(b.shrunk(0.98, 0.98))


def test_flow_counts_only_where_they_fit(log24):
    ax = fp.flow(log24)
    fig = ax.figure
    fig.canvas.draw()
    counts = gid_texts(ax, "flow-count")
    assert counts  # the big early flows carry their count
    r = fig.canvas.get_renderer()
    for t in counts:
        x, _ = t.get_position()
        # inside the gap between two stages
        tb = t.get_window_extent(r)
        left = ax.transData.transform((np.floor(x) + 0.09, 0))[0]
        right = ax.transData.transform((np.floor(x) + 1, 0))[0]
        assert left <= tb.x0 and tb.x1 <= right
        # and inside its band (on the band's colour, so text_on picks the ink)
        assert t.get_color() in ("white", S.INK)
    assert len(counts) < 23  # the thin late flows have none


def test_flow_counts_follow_the_theme(log):
    with plt.style.context("dark_background"):
        ax = fp.flow(log, min_share=0)
        paper = S.theme().paper
        arc_counts = gid_texts(ax, "flow-backward-count")
        assert arc_counts
        for t in arc_counts:
            assert same_color(t.get_bbox_patch().get_facecolor(), paper)
            assert S.contrast(t.get_color(), paper) >= 4.5
        for t in gid_texts(ax, "flow-stage") + gid_texts(ax, "flow-outcome-label"):
            assert S.contrast(t.get_color(), paper) >= 7
    ax = fp.flow(log, min_share=0)
    for t in gid_texts(ax, "flow-backward-count"):
        assert same_color(t.get_bbox_patch().get_facecolor(), "white")
        assert S.contrast(t.get_color(), "white") >= 4.5


def test_backward_arcs_stay_thin_enough_to_read(log24):
    ax = fp.flow(log24, min_share=0)
    arcs = [p for p in ax.patches if p.get_gid() == "flow-backward"]
    assert arcs
    assert max(p.get_linewidth() for p in arcs) <= 10.0


def test_fit_lines_breaks_between_words_only():
    assert fit_lines("A_PARTLYSUBMITTED", 200, 10, 3) == "A_PARTLYSUBMITTED"
    wide = text_width("PARTLYSUBMITTED", 10)
    assert fit_lines("A_PARTLYSUBMITTED", wide + 1, 10, 3) == "A_\nPARTLYSUBMITTED"
    assert fit_lines("A_PARTLYSUBMITTED", wide - 1, 10, 3) is None  # would cut a word
    assert fit_lines("Contract negotiation and legal review", 80, 10, 3).count("\n") == 2
    assert fit_lines("需求分析", text_width("需求", 10) + 1, 10, 2) == "需求\n分析"


# ---------------------------------------------------------------------------- heatmap
def test_heatmap_colour_bar_lies_inside_the_axes(log):
    for layout in (None, "constrained"):
        fig, axes = plt.subplots(2, 2, figsize=(12, 9), layout=layout)
        before = list(fig.axes)
        ax = fp.heatmap(log, ax=axes[0][0])
        assert fig.axes == before  # no Axes added beside the chart
        (cax,) = ax.child_axes
        assert cax.get_gid() == "heatmap-colorbar"
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        assert inside(cax.get_tightbbox(r), ax.get_window_extent(r))
        # and the matrix does not run under it
        right = ax.transData.transform((ax.images[0].get_extent()[1], 0))[0]
        assert right <= cax.get_window_extent(r).x0


def test_heatmap_column_labels_inside_the_axes_and_coloured_by_kind(log):
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    ax = fp.heatmap(log, ax=axes[0][0])
    cols = gid_texts(ax, "heatmap-column")
    m = log.transition_matrix().loc[log.stages]
    assert [t.get_text() for t in cols] == list(m.columns)
    box = ax.get_window_extent()
    for t, b in zip(cols, boxes(fig, cols), strict=True):
        assert inside(b, box)
        assert t.xy[0] == list(m.columns).index(t.get_text())
    kind = {t.get_text(): t for t in cols}
    assert same_color(kind["Lost"].get_color(), S.LOST)
    assert kind["Lost"].get_fontweight() == "bold"
    assert same_color(kind["Lead"].get_color(), S.theme().text)


def test_heatmap_cell_borders_and_texts_follow_the_theme(log):
    with plt.style.context("dark_background"):
        ax = fp.heatmap(log)
        paper = S.theme().paper
        # cell borders: the minor grid, in the background's colour (not a fixed "white")
        lines = [t.gridline for a in (ax.xaxis, ax.yaxis) for t in a.get_minor_ticks()]
        assert lines and all(same_color(ln.get_color(), paper) for ln in lines)
        assert all(ln.get_visible() for ln in lines)
        im = ax.images[0]
        for t in gid_texts(ax, "heatmap-cell"):
            x, y = t.get_position()
            cell = im.cmap(im.norm(im.get_array()[int(y), int(x)]))
            assert t.get_color() == S.text_on(cell)


def test_heatmap_at_24_stages_labels_every_row_and_column_without_overlap(log24):
    ax = fp.heatmap(log24)
    w, h = ax.figure.get_size_inches()
    assert w <= 12 and h <= 14
    rows = [t for t in ax.get_yticklabels() if t.get_text()]
    cols = gid_texts(ax, "heatmap-column")
    assert len(rows) == 24 and len(cols) == ax.images[0].get_array().shape[1]
    assert min(t.get_fontsize() for t in rows + cols) >= 7.5
    for group in (rows, cols):
        for a, b in combinations(boxes(ax.figure, group), 2):
            assert not a.overlaps(b)
    # cell values: only where they fit, and the subtitle counts the blank ones
    fig = ax.figure
    r = fig.canvas.get_renderer()
    m = ax.images[0].get_array()
    cells = gid_texts(ax, "heatmap-cell")
    blank = int((np.asarray(m) > 0).sum()) - len(cells)
    assert min(t.get_fontsize() for t in cells) >= 7
    x0 = ax.transData.transform((0, 0))[0]
    x1 = ax.transData.transform((1, 0))[0]
    assert max(t.get_window_extent(r).width for t in cells) <= x1 - x0
    if blank:
        assert f"{blank} cells too small for their value are left blank" in S.subtitle_of(ax)


def test_heatmap_in_a_tiny_axes_thins_its_labels_and_says_so(log24):
    fig, ax = plt.subplots(figsize=(4, 3))
    fp.heatmap(log24, ax=ax)
    rows = [t for t in ax.get_yticklabels() if t.get_text()]
    assert 0 < len(rows) < 24
    assert "Labels thinned" in S.subtitle_of(ax)
    for a, b in combinations(boxes(fig, rows), 2):
        assert not a.overlaps(b)
