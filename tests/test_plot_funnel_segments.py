"""The funnel and segment charts of issue 20: what they now draw, read off the artists.

Funnel: the won bar, "% of first · % of previous", optional interval whiskers, only the
flagged key stages highlighted (and how many were tested), colours of the theme, and a
text column and legend that stay inside the Axes. Segments: at most 12 colours, grey
"other" and grey small segments, themed stripes and fills, a legend inside the Axes that
no data point runs under.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

import funnelkit as fk
import funnelkit.plot as fp
from conftest import same_color
from funnelkit.plot import _style as S


@pytest.fixture(scope="module")
def log():
    return fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)


def gid_texts(ax, gid):
    return [t for t in ax.texts if t.get_gid() == gid]


def gid_patches(ax, gid):
    return [p for p in ax.patches if p.get_gid() == gid]


def _pcts(text: str) -> list[float]:
    return [float(x) / 100 for x in re.findall(r"([\d.]+)%", text)]


def _inside(box, area, tol=1.0) -> bool:
    return (
        box.x0 >= area.x0 - tol
        and box.x1 <= area.x1 + tol
        and box.y0 >= area.y0 - tol
        and box.y1 <= area.y1 + tol
    )


# ---------------------------------------------------------------------------- funnel
def test_the_won_bar_is_the_deals_won(log):
    f = log.funnel()
    won = int((log.deals()["outcome"] == "won").sum())
    assert won == 60 == f["advanced"].iloc[-1]  # implied skips: every win passed the last
    ax = fp.funnel(log)
    (bar,) = ax.containers[1]
    assert bar.get_width() == won and bar.get_x() == -won / 2  # centred like the others
    assert same_color(bar.get_facecolor(), S.WON)
    assert bar.get_y() < min(b.get_y() for b in ax.containers[0])  # at the bottom
    assert [t.get_text() for t in ax.get_yticklabels()] == log.stages
    assert [t.get_text() for t in ax.get_yticklabels(minor=True)] == ["Won"]
    assert ax.get_yticks(minor=True).tolist() == [bar.get_y() + bar.get_height() / 2]
    assert [t.get_text() for t in gid_texts(ax, "funnel-won-count")] == ["60"]
    # revenue: the amount won; from a table: the last stage's advanced
    ax = fp.funnel(log, weight="amount")
    amount = log.deals().query("outcome == 'won'")["amount"].sum()
    assert ax.containers[1][0].get_width() == pytest.approx(amount)
    ax = fp.funnel(f)
    assert ax.containers[1][0].get_width() == f["advanced"].iloc[-1]


def test_shares_of_first_and_of_previous_are_the_funnels(log):
    f = log.funnel()
    r = f["reached"].to_numpy(dtype=float)
    ax = fp.funnel(log)
    shares = [t.get_text() for t in gid_texts(ax, "funnel-share")]
    assert len(shares) == len(f)
    assert shares[0] == "100.0% of first"
    for i in range(1, len(f)):
        of_first, of_prev = _pcts(shares[i])
        assert of_first == pytest.approx(r[i] / r[0], abs=5e-4)
        assert of_prev == pytest.approx(r[i] / r[i - 1], abs=5e-4)
        assert "of first" in shares[i] and "of previous" in shares[i]
    assert shares[3] == "55.3% of first  ·  75.3% of previous"  # Demo: 332 / 600, 332 / 441
    (won,) = gid_texts(ax, "funnel-won-share")
    assert won.get_text() == "10.0% of first  ·  73.2% of previous"  # 60 / 600, 60 / 82
    # each share sits in its stage's row, above that stage's conversion text
    conv = gid_texts(ax, "funnel-conversion")
    for bar, s, c in zip(ax.containers[0], gid_texts(ax, "funnel-share"), conv, strict=True):
        assert s.get_position()[1] == c.get_position()[1] == pytest.approx(bar.get_y() + 0.36)
        assert (s.get_va(), c.get_va()) == ("bottom", "top")


def test_interval_whiskers_are_the_tables_and_optional(log):
    f = log.funnel()
    ax = fp.funnel(log, intervals=True)
    (track, *_) = gid_patches(ax, "funnel-gauge")
    x0, w = track.get_x(), track.get_width()
    ci = [ln for ln in ax.lines if ln.get_gid() == "funnel-ci"]
    assert len(ci) == len(f)
    np.testing.assert_allclose([ln.get_xdata()[0] for ln in ci], x0 + w * f["conversion_low"])
    np.testing.assert_allclose([ln.get_xdata()[1] for ln in ci], x0 + w * f["conversion_high"])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["advanced", "95% interval"]
    ax = fp.funnel(log, intervals=False)
    assert not [ln for ln in ax.lines if ln.get_gid() == "funnel-ci"]
    assert not gid_patches(ax, "funnel-gauge") and ax.get_legend() is None
    assert gid_texts(ax, "funnel-conversion")[3].get_text().startswith("59.3% advance")
    with pytest.raises(ValueError, match="intervals"):
        fp.funnel(log, intervals="yes")  # type: ignore[arg-type]


def test_only_flagged_key_stages_are_highlighted_and_the_tested_are_counted(log):
    key = pd.DataFrame(
        {
            "stage": ["Demo", "Proposal", "Negotiation", "Lead", "Proposal"],
            "signal": ["leverage", "leverage", "leverage", "dropoff", "dropoff"],
            "effect": [0.031, 0.004, -0.01, np.nan, 0.12],
            "p_value": [np.nan, np.nan, np.nan, np.nan, 0.001],
            "is_key": [True, False, False, False, True],
        }
    )
    ax = fp.funnel(log, key=key)
    flagged = [
        s
        for s, b in zip(log.stages, ax.containers[0], strict=True)
        if same_color(b.get_facecolor(), S.HIGHLIGHT)
    ]
    assert flagged == ["Demo", "Proposal"]
    sub = S.subtitle_of(ax).replace("\n", " ")
    assert "2 of 3 stages tested are key" in sub  # Lead's row ran no test
    assert ax.get_legend().get_texts()[0].get_text() == "key stage"
    ax = fp.funnel(log, key=key.assign(is_key=False))  # none flagged: none highlighted
    assert not any(same_color(b.get_facecolor(), S.HIGHLIGHT) for b in ax.containers[0])
    assert "0 of 3 stages tested are key" in S.subtitle_of(ax).replace("\n", " ")
    ax = fp.funnel(log, key=["Demo"])  # names: highlighted, nothing said about tests
    assert "tested" not in S.subtitle_of(ax)


@pytest.mark.parametrize("style", ["default", "dark_background"])
def test_funnel_track_and_unresolved_fill_follow_the_theme(log, style):
    f = log.funnel().assign(unresolved=[0.0, 0.0, 0.0, 0.2, 0.0, 0.0])
    with plt.style.context(style):
        th = S.theme()
        ax = fp.funnel(f)
        tracks = gid_patches(ax, "funnel-gauge")
        assert all(same_color(p.get_facecolor(), S.mix(th.text, th.face, 0.85)) for p in tracks)
        assert S.luminance(tracks[0].get_facecolor()) < 0.2 if th.dark else 0.6
        (unres,) = gid_patches(ax, "funnel-unresolved")
        assert same_color(unres.get_facecolor(), th.paper)
        texts = gid_texts(ax, "funnel-conversion") + gid_texts(ax, "funnel-share")
        assert all(S.contrast(t.get_color(), th.face) >= 4.5 for t in texts)


@pytest.mark.parametrize("layout", [None, "constrained"])
@pytest.mark.parametrize("n_axes", [(2, 2), (3, 3)])
def test_funnel_text_column_and_legend_stay_inside_the_axes(log, layout, n_axes):
    fig, axes = plt.subplots(*n_axes, figsize=(12, 9), layout=layout)
    ax = fp.funnel(log, ax=axes[0][0], key=["Demo"])
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    area = ax.get_window_extent(r)
    texts = [t for t in ax.texts if str(t.get_gid()).startswith("funnel-")]
    assert len(texts) == 3 * 6 + 2
    assert all(_inside(t.get_window_extent(r), area) for t in texts)
    assert _inside(ax.get_legend().get_window_extent(r), area)
    # the legend has a row of its own: under every bar
    lowest = min(p.get_window_extent(r).y0 for c in ax.containers for p in c)
    assert ax.get_legend().get_window_extent(r).y1 <= lowest + 1
    # no text of the column runs into another, nor into a gauge
    boxes = [t.get_window_extent(r) for t in texts if t.get_gid() != "funnel-count"]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.shrunk(0.98, 0.9).overlaps(b.shrunk(0.98, 0.9))
    gauge_x1 = max(p.get_window_extent(r).x1 for p in gid_patches(ax, "funnel-gauge"))
    column = [t for t in texts if t.get_gid() in ("funnel-share", "funnel-conversion")]
    assert gauge_x1 < min(t.get_window_extent(r).x0 for t in column)


# ---------------------------------------------------------------------------- segments
TEAMS_13 = [f"Team {c}" for c in "ABCDEFGHIJKLM"]


@pytest.fixture(scope="module")
def log13():
    """13 teams: twelve of about 240 deals and Team M of about 120."""
    ev = fk.datasets.synthetic(3000, seed=2)
    code = ev["deal_id"].astype("category").cat.codes.to_numpy() % 25
    ev["team"] = np.array(TEAMS_13)[np.minimum(code // 2, 12)]
    return fk.EventLog(
        ev, deal="deal_id", stage="stage", time="ts", won="Won",
        lost=["Lost", "Disqualified"], attrs=["team"], stale_after="60D",
    )  # fmt: skip


def test_thirteen_segments_get_twelve_colours_and_one_grey_other(log13):
    f = log13.funnel(by="team")
    size = f.groupby("team")["reached"].max().sort_values(ascending=False, kind="stable")
    assert size.min() >= 30 and size.iloc[11] > size.iloc[12]
    smallest = size.index[-1]
    ax = fp.segments(log13, by="team", top=None)
    conts = ax.containers
    assert len(conts) == 13
    colours = [to_rgba(c.lines[0].get_color()) for c in conts]
    assert [c.get_label() for c in conts[:12]] == sorted(size.index[:12])
    assert len({c for c in colours[:12]}) == 12
    assert all(any(same_color(c, s) for s in S.SERIES) for c in colours[:12])
    assert conts[12].get_label() == smallest and same_color(colours[12], S.OTHER)
    assert same_color(conts[12].lines[2][0].get_color()[0], S.OTHER)  # its whiskers too
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "other: 1 segment" in labels
    assert "grey: 1 segment beyond the 12 largest" in S.subtitle_of(ax).replace("\n", " ")
    # by default only the 12 that get a colour are drawn, and the subtitle says so
    ax = fp.segments(log13, by="team")
    assert [c.get_label() for c in ax.containers] == sorted(size.index[:12])
    assert "the 12 largest of 13 segments" in S.subtitle_of(ax).replace("\n", " ")


@pytest.fixture(scope="module")
def log_missing():
    """The sample, with one deal's team left empty: a 1-deal "(missing)" segment."""
    ev = fk.datasets.load_sample()
    one = ev["deal_id"].iloc[0]
    ev.loc[ev["deal_id"] == one, "team"] = None
    return fk.EventLog(ev, **fk.datasets.SAMPLE_KWARGS)


def test_a_one_deal_segment_is_grey_not_the_key_stage_colour(log_missing):
    f = log_missing.funnel(by="team")
    missing = f.loc[f["team"].isna()]
    assert missing["reached"].max() == 1
    ax = fp.segments(log_missing, by="team")
    conts = {c.get_label(): c for c in ax.containers}
    cont = conts["(missing)"]
    assert list(conts)[-1] == "(missing)"  # after the coloured ones
    for artist in (cont.lines[0], cont.lines[2][0]):
        colour = artist.get_color() if hasattr(artist, "get_marker") else artist.get_color()[0]
        assert same_color(colour, S.OTHER) and not same_color(colour, S.HIGHLIGHT)
    # the three teams keep the first three palette colours
    for i, team in enumerate(["Team A", "Team B", "Team C"]):
        assert same_color(conts[team].lines[0].get_color(), S.SERIES[i])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "< 30 deals: (missing)" in labels
    assert not any(t.startswith("(missing)") for t in labels)  # no entry in a colour
    assert "1 segment with fewer than 30 deals" in S.subtitle_of(ax).replace("\n", " ")
    # min_deals=0: nothing muted
    ax = fp.segments(log_missing, by="team", min_deals=0)
    cont = {c.get_label(): c for c in ax.containers}["(missing)"]
    assert not same_color(cont.lines[0].get_color(), S.OTHER)


def test_small_segments_are_judged_by_deals_even_in_a_revenue_funnel(log):
    f = log.funnel(by="team")
    assert f.groupby("team")["reached"].max().min() >= 30
    ax = fp.segments(log, by="team", weight="amount", min_deals=250)  # counts, not amounts
    grey = [c.get_label() for c in ax.containers if same_color(c.lines[0].get_color(), S.OTHER)]
    want = f.groupby("team")["reached"].max()
    assert grey == sorted(want[want < 250].index)
    # a weighted table has no deal counts: nothing is muted
    ax = fp.segments(log.funnel(by="team", weight="amount"), min_deals=10**9)
    assert not any(same_color(c.lines[0].get_color(), S.OTHER) for c in ax.containers)


@pytest.mark.parametrize("style", ["default", "dark_background"])
def test_segment_stripes_fills_and_marks_follow_the_theme(log, style):
    with plt.style.context(style):
        th = S.theme()
        f = log.funnel(by="team").assign(unresolved=0.0)
        f.loc[1, "unresolved"] = 0.2
        ax = fp.segments(f)
        stripes = [p for p in ax.patches if p.get_zorder() == 0]
        assert len(stripes) == 3  # every other of the 6 stages
        assert all(same_color(p.get_facecolor(), th.band) for p in stripes)
        (hollow,) = [ln for ln in ax.lines if ln.get_gid() == "segments-unresolved"]
        assert same_color(hollow.get_markerfacecolor(), th.paper)
        assert all(same_color(c.lines[0].get_markeredgecolor(), th.paper) for c in ax.containers)
        leg = ax.get_legend()
        assert S.contrast(leg.get_title().get_color(), th.face) >= 4.5


@pytest.mark.parametrize("layout", [None, "constrained"])
def test_segment_legend_is_inside_the_axes_and_clear_of_the_data(log, layout):
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), layout=layout)
    ax = fp.segments(log, by="owner", ax=axes[0][0])  # 12 owners (the legend "Cara Los" cut)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    area = ax.get_window_extent(r)
    leg = ax.get_legend()
    box = leg.get_window_extent(r)
    assert _inside(box, area)
    assert all(_inside(t.get_window_extent(r), area) for t in leg.get_texts())
    assert len(leg.get_texts()) == 12 + 2  # owners, all deals, hollow
    # 100% (and a marker's room beyond it) is left of the legend
    right = ax.transData.transform((1.015, 0))[0]
    assert right < box.x0
    stripes = [p for p in ax.patches if p.get_zorder() == 0]
    assert all(p.get_window_extent(r).x1 <= box.x0 + 1 for p in stripes)


def test_the_won_bar_is_named_as_the_log_names_its_win():
    stages = ["线索", "需求分析"]
    ev = fk.datasets.synthetic(300, seed=1, stages=stages, won="赢单", lost=["输单"])
    zh = fk.EventLog(ev, stages=stages, won="赢单", lost=["输单"])
    ax = fp.funnel(zh)
    assert [t.get_text() for t in ax.get_yticklabels(minor=True)] == ["赢单"]
    assert [t.get_text() for t in ax.get_yticklabels()] == stages
