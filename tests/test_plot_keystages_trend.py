"""Issue 20's items for the key-stage, trend and calibration charts, tested on the
artists: one panel per key-stage signal in its own unit, reasons that read, q-values
formatted; trend cohorts too small muted, immature periods marked, the cycle-time
interval drawn; calibration texts without raw timestamps."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
import funnelkit.plot as fp
from conftest import same_color
from funnelkit.plot import _style as S
from funnelkit.plot._keystages import fit_text, plain, q_text


@pytest.fixture(scope="module")
def sample():
    return fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)


def all_texts(fig) -> list[str]:
    fig.canvas.draw()
    return [t.get_text() for t in fig.findobj(plt.Text) if t.get_visible() and t.get_text()]


# ---------------------------------------------------------------------------- key stages
def panels(ax):
    return {p.get_gid().removeprefix("key-panel-"): p for p in ax.child_axes}


def reasons(panel):
    return [t for t in panel.texts if t.get_gid() == "key-reason"]


def test_each_signal_has_a_panel_with_its_own_scale(sample):
    """Flagged leverage (+0.8 points) and stall (−12 points) used to share one axis."""
    ks = sample.key_stages(signals=["leverage", "stall"], n_boot=50)
    ax = fp.key_stages(ks)
    p = panels(ax)
    assert list(p) == ["leverage", "stall"]
    for sig, panel in p.items():
        rows = ks.loc[ks["signal"] == sig]
        lo = np.nanmin(np.r_[rows["ci_low"], rows["effect"], 0.0])
        hi = np.nanmax(np.r_[rows["ci_high"], rows["effect"], 0.0])
        x0, x1 = panel.get_xlim()
        # the panel spans its own effects with a small margin, not the other signal's
        assert x0 <= lo and x1 >= hi
        assert (x1 - x0) <= 1.25 * (hi - lo)
    lev = p["leverage"].get_xlim()
    assert lev[1] - lev[0] < 0.05  # points of win probability, not the stall's ±30 points
    # the leverage dots spread over the panel: readable, not a pile at zero
    dots = np.concatenate([c.get_offsets()[:, 0] for c in p["leverage"].collections])
    assert np.ptp(dots) > 0.5 * (lev[1] - lev[0])
    # ticks in points of the family's unit
    labels = [t.get_text() for t in p["leverage"].get_xticklabels()]
    assert "+1.0" in labels or "+0.5" in labels
    heads = [t.get_text() for t in ax.texts if t.get_gid() == "key-panel-title"]
    assert heads[0].startswith("Leverage") and "points" in heads[0]
    assert heads[1].startswith("Stall")
    # the panels lie inside the box of the Axes they were given
    fig = ax.figure
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    box = ax.get_window_extent(r)
    for panel in p.values():
        tb = panel.get_tightbbox(r)
        assert tb.x0 >= box.x0 - 1 and tb.x1 <= box.x1 + 1
        assert tb.y0 >= box.y0 - 1 and tb.y1 <= box.y1 + 1


def test_dwell_panel_is_in_percent_longer(sample):
    ks = sample.key_stages(by="team", signals="dwell")
    ax = fp.key_stages(ks)
    (panel,) = ax.child_axes
    dots = np.concatenate([c.get_offsets()[:, 0] for c in panel.collections])
    np.testing.assert_allclose(np.sort(dots), np.sort(ks["effect"].dropna() - 1))
    labels = [t.get_text() for t in panel.get_xticklabels()]
    assert any(t.endswith("%") for t in labels if t != "0")


def test_q_values_are_formatted_never_in_e_notation():
    table = pd.DataFrame(
        {
            "stage": ["Demo", "Proposal", "Lead"],
            "signal": "stall",
            "effect": [-0.35, -0.1, 0.02],
            "ci_low": [-0.45, -0.2, -0.05],
            "ci_high": [-0.25, 0.0, 0.09],
            "p_value": [1e-162, 0.004, 0.5],
            "q_value": [2.4e-161, 0.0034, 0.56],
            "is_key": [True, False, False],
            "reason": ["long visits advance less", "a bit less", "no difference"],
        }
    )
    ax = fp.key_stages(table)
    got = [t.get_text() for t in reasons(ax.child_axes[0])]
    assert got[0].startswith("q < 0.001 · ")
    assert got[1].startswith("q = 0.0034 · ")
    assert got[2].startswith("q = 0.56 · ")
    assert not [t for t in all_texts(ax.figure) if re.search(r"\de-\d", t)]
    assert q_text(float("nan")) == "" and q_text(None) == ""


def test_no_developer_instructions_on_the_chart(sample):
    """Drop-off without a baseline was 6 rows of "no baseline: pass benchmark= ..."."""
    ax = fp.key_stages(sample, n_boot=0)
    texts = all_texts(ax.figure)
    assert not [t for t in texts if re.search(r"\w=", t)], [t for t in texts if "=" in t]
    assert "dropoff" not in panels(ax)  # nothing to draw: a note instead of empty rows
    (note,) = [t for t in ax.texts if t.get_gid() == "key-note"]
    assert note.get_text().startswith("Drop-off not tested (6 stages)")
    assert "no baseline" in note.get_text()
    assert plain("x (effective number; min_deals=30)") == "x (at least 30 needed)"
    assert "n_boot" not in plain("+0.14 points, no bootstrap interval (n_boot=0))")


def test_reasons_are_wrapped_never_cut_inside_a_number():
    reason = (
        "Cutting Demo's losses by 10% (40.2% → 36.2% of exits) lifts the overall win "
        "probability from 12.3% to 13.1% (+0.83 points, 95% CI +0.65 to +1.00)"
    )
    assert fit_text(reason, 200, 1) == reason  # fits: unchanged
    two = fit_text(reason, 60, 2).split("\n")
    assert len(two) == 2 and max(len(x) for x in two) <= 60
    assert " ".join(two) == (
        "Cutting Demo's losses by 10% (40.2% → 36.2% of exits) lifts the overall win "
        "probability from 12.3% to 13.1%"
    )  # the last details left out whole, not "(+0.83 …"
    short = fit_text(reason, 30, 1)
    assert short.endswith(" …") and not re.search(r"[\d%]\s…$", short)
    assert "p = 0.39" in fit_text("differs (chi-square p = 0.39): from 87% to 92%", 24, 3)
    for line in fit_text("differs across values, chi-square p = 0.3914 here", 34, 2).split("\n"):
        assert not line.endswith(("=", "p"))  # "p = 0.39" stays on one line


def test_reasons_fit_their_column_in_a_grid(sample):
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    ax = fp.key_stages(sample, ax=axes[0][0], by="team", n_boot=0)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    right = ax.get_window_extent(r).x1
    texts = [t for p in ax.child_axes for t in reasons(p)]
    assert texts
    for t in texts:
        assert t.get_window_extent(r).x1 <= right + 1, t.get_text()
        assert not t.get_text().rstrip().endswith(("(", ","))
    # flagged rows come first when the box is small; the subtitle says how many are drawn
    shown = sum(len(reasons(p)) for p in ax.child_axes)
    assert f"{shown} of 54 rows drawn" in S.subtitle_of(ax).replace("\n", " ")
    flagged = [t for p in ax.child_axes for t in reasons(p) if t.get_fontweight() == "bold"]
    assert len(flagged) >= 2  # of 3: the third would need a panel of its own


def test_its_own_figure_is_capped(sample):
    ax = fp.key_stages(sample, by="owner", n_boot=0)
    w, h = ax.figure.get_size_inches()
    assert w <= 12 and h <= 14


def test_key_stages_marks_follow_the_theme(sample):
    with plt.style.context("dark_background"):
        ax = fp.key_stages(sample, n_boot=0)
        paper = S.theme().paper
    for p in ax.child_axes:
        for c in p.collections:
            assert same_color(c.get_edgecolor()[0], paper)


# ---------------------------------------------------------------------------- trend
def _trend_table(n):
    periods = pd.to_datetime(["2024-12-31", "2025-03-31", "2025-06-30"])
    return pd.DataFrame(
        {
            "period": periods,
            "metric": "win_rate",
            "value": [0.2, 0.25, 1.0],
            "low": [0.15, 0.2, 0.2],
            "high": [0.25, 0.3, 1.0],
            "n": n,
            "mature": [True, True, False],
        }
    )


def test_a_one_deal_cohort_is_drawn_muted_without_its_whisker():
    ax = fp.trend(_trend_table([120, 95, 1]))
    (small,) = [ln for ln in ax.lines if ln.get_gid() == "trend-small"]
    np.testing.assert_allclose(small.get_xdata(), [2])
    np.testing.assert_allclose(small.get_ydata(), [1.0])
    assert same_color(small.get_color(), S.OTHER)
    cont = ax.containers[0]
    y = cont.lines[0].get_ydata()
    assert np.isnan(y[2]) and np.allclose(y[:2], [0.2, 0.25])  # out of the line
    whiskers = [seg for seg in cont.lines[2][0].get_segments() if len(seg)]
    assert len(whiskers) == 2 and all(
        seg[1][1] - seg[0][1] < 0.2 for seg in whiskers
    )  # no 20–100% whisker
    assert "fewer than 10 deals" in S.subtitle_of(ax)
    # enough deals: drawn as the others, and no note
    ax = fp.trend(_trend_table([120, 95, 40]))
    assert not [ln for ln in ax.lines if ln.get_gid() == "trend-small"]
    assert "fewer than" not in S.subtitle_of(ax)


def test_small_cohorts_are_muted_in_every_panel(sample):
    fig = fp.trend(sample)  # Negotiation's 2025 Q2 cohort has 4 deals
    neg = next(a for a in fig.axes if a.get_title() == "Negotiation")
    (small,) = [ln for ln in neg.lines if ln.get_gid() == "trend-small"]
    np.testing.assert_allclose(small.get_xdata(), [5])
    assert "fewer than 10 deals" in fig.get_supxlabel()
    w, h = fig.get_size_inches()
    assert w <= 12 and h <= 14


def test_too_recent_cohorts_are_shaded_and_explained(sample):
    ax = fp.trend(sample, metric="cycle_time")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[-1] == "2025 Q2"  # no deal old enough yet: kept, shaded, explained
    bands = [p for p in ax.patches if p.get_gid() == "trend-immature"]
    xs = sorted(round(p.get_x() + p.get_width() / 2) for p in bands)
    assert xs == [4, 5]
    sub = S.subtitle_of(ax).replace("\n", " ")
    assert "too recent" in sub and "30 Jan 2025" in sub and "no deal old enough" in sub
    # a table with the mature column is shaded too
    ax = fp.trend(_trend_table([120, 95, 40]))
    assert len([p for p in ax.patches if p.get_gid() == "trend-immature"]) == 1


def test_the_cycle_time_interval_it_promises_is_drawn(sample):
    from funnelkit.plot._trend import cohort_trend

    t = cohort_trend(sample, metric="cycle_time")
    ax = fp.trend(sample, metric="cycle_time")
    assert "95% interval of the median" in S.subtitle_of(ax).replace("\n", " ")
    segs = [seg for seg in ax.containers[0].lines[2][0].get_segments() if len(seg)]
    np.testing.assert_allclose([s[0][1] for s in segs], t["low"])
    np.testing.assert_allclose([s[1][1] for s in segs], t["high"])


def test_trend_legend_is_inside_and_hollow_points_follow_the_theme(sample):
    with plt.style.context("dark_background"):
        fig, axes = plt.subplots(2, 2, figsize=(12, 9))
        ax = fp.trend(sample, ax=axes[0][0], stage=["Demo", "Proposal"])
        paper = S.theme().paper
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    box = ax.get_window_extent(r)
    leg = ax.get_legend().get_window_extent(r)
    assert box.x0 <= leg.x0 and leg.x1 <= box.x1 + 1 and leg.y1 <= box.y1 + 1
    # the data stay left of the legend
    x_leg = ax.transData.inverted().transform((leg.x0, leg.y0))[0]
    assert x_leg > 5.2
    hollow = [ln for ln in ax.lines if ln.get_gid() == "trend-unresolved"]
    assert hollow and all(same_color(ln.get_markerfacecolor(), paper) for ln in hollow)
    assert not same_color(paper, "white")


def test_win_rate_says_what_it_estimates(sample):
    ax = fp.trend(sample, metric="win_rate")
    assert S.subtitle_of(ax).startswith("probability of winning per cohort")
    assert "Wilson" not in S.subtitle_of(ax)


# ---------------------------------------------------------------------------- calibration
def test_calibration_texts_have_no_raw_timestamps(sample):
    from funnelkit.forecast import backtest
    from funnelkit.plot._calibration import span, when

    bt = backtest(sample, sample.as_of - np.timedelta64(120, "D"), "60D")
    assert bt.cut != bt.cut.normalize()  # a cut at a time of day, as the rule tests use
    ax = fp.calibration(bt)
    sub = S.subtitle_of(ax).replace("\n", " ")
    assert "00:00:00" not in sub and "+00:00" not in sub and "days 00" not in sub
    cut = bt.cut
    assert sub.startswith(f"Deals open on {cut.day} {cut.strftime('%b %Y')}, ")
    assert "outcome 60 days later" in sub
    for t in all_texts(ax.figure):
        assert not re.search(r"\d{4}-\d\d-\d\d|\d\d:\d\d:\d\d", t), t
    assert when(pd.Timestamp("2025-03-01", tz="UTC")) == "1 Mar 2025"
    assert when(pd.Timestamp("2025-03-01 21:25:08", tz="UTC")) == "1 Mar 2025, 21:25 UTC"
    assert span(pd.Timedelta("60D")) == "60 days" and span(pd.Timedelta("1D")) == "1 day"
    assert span(pd.Timedelta("36h")) == "1.5 days" and span(pd.Timedelta("6h")) == "6 hours"


def test_calibration_marks_follow_the_theme_and_the_legend_is_inside(sample):
    from funnelkit.forecast import backtest

    bt = backtest(sample, "2025-03-01", "60D")
    with plt.style.context("dark_background"):
        fig, axes = plt.subplots(2, 2, figsize=(12, 9))
        ax = fp.calibration(bt, ax=axes[0][0])
        paper = S.theme().paper
    for model in ("forecast", "naive"):
        (line,) = [ln for ln in ax.lines if ln.get_gid() == f"calibration-{model}"]
        assert same_color(line.get_markeredgecolor(), paper)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    box = ax.get_window_extent(r)
    leg = ax.get_legend().get_window_extent(r)
    assert box.x0 <= leg.x0 and leg.x1 <= box.x1 and box.y0 <= leg.y0 and leg.y1 <= box.y1
    for t in ax.texts:
        if t.get_gid() == "calibration-count":  # counts stay inside the Axes too
            bb = t.get_window_extent(r)
            assert bb.x1 <= box.x1 + 1 and bb.y1 <= box.y1 + 1, t.get_text()
    # the subtitle is no wider than the Axes, so it stays over them
    (sub,) = [t for t in ax.texts if t.get_gid() == S.SUBTITLE_GID]
    sb = sub.get_window_extent(r)
    assert sb.x0 >= box.x0 - 2 and sb.x1 <= box.x1 + 2
