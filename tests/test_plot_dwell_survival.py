"""Dwell, survival and incidence charts: the honest marks and layout of issue 20, tested
on the artists (bands, at-risk counts, small multiples, theme colours, room inside the
Axes)."""

from __future__ import annotations

import warnings
from itertools import combinations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from scipy.stats import norm

import funnelkit as fk
import funnelkit.plot as fp
from conftest import days
from funnelkit.plot import _style as S
from funnelkit.plot._dwell import MAX_OVERLAY, km_band

Z = norm.ppf(0.975)


@pytest.fixture(scope="module")
def log():
    return fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)


@pytest.fixture(scope="module")
def log24():
    stages = [f"S{i:02d} {'long stage name ' * (i % 3)}".strip() for i in range(24)]
    ev = fk.datasets.synthetic(3000, seed=5, stages=stages, won="Won", lost=["Lost"])
    return fk.EventLog(ev, stages=stages, won="Won", lost=["Lost"], stale_after="60D")


def _visits(log, stage):
    v = log.visits()
    v = v.loc[v["dwell"].notna() & (v["stage"] == stage)]
    return days(v["dwell"]), v["censored"].to_numpy(bool)


def _greenwood(d, c, times):
    """An independent pointwise 95% log(−log) band: loop over the distinct event times."""
    out = []
    for t in times:
        s, var = 1.0, 0.0
        for u in np.unique(d[~c]):
            if u > t:
                break
            n = int((d >= u).sum())
            e = int(((d == u) & ~c).sum())
            s *= 1 - e / n
            var += e / (n * (n - e)) if n > e else np.inf
        se = np.sqrt(var) / abs(np.log(s))
        out.append((s, s ** np.exp(Z * se), s ** np.exp(-Z * se)))
    return np.array(out)


def _inside(box, outer, tol=1.0):
    return (
        box.x0 >= outer.x0 - tol
        and box.x1 <= outer.x1 + tol
        and box.y0 >= outer.y0 - tol
        and box.y1 <= outer.y1 + tol
    )


def _same(a, b):
    return np.allclose(to_rgba(a)[:3], to_rgba(b)[:3])


# ---------------------------------------------------------------------------- bands
def test_km_band_matches_an_independent_greenwood_computation(log):
    d, c = _visits(log, "Demo")
    t, s, low, high = km_band(d, c)
    times = np.quantile(t, [0.1, 0.3, 0.5, 0.7, 0.9])
    want = _greenwood(d, c, times)
    i = np.searchsorted(t, times, side="right") - 1
    np.testing.assert_allclose(np.column_stack([s[i], low[i], high[i]]), want, rtol=1e-10)
    assert np.all(low <= s) and np.all(s[s > 0] <= high[s > 0])


def test_the_band_crosses_the_median_line_at_the_tables_median_interval(log):
    # the band's crossings of 50% are the Brookmeyer–Crowley interval of log.dwell()
    table = log.dwell().set_index("stage")
    for stage in log.stages:
        d, c = _visits(log, stage)
        t, _, low, high = km_band(d, c)
        lo = t[np.argmax(low <= 0.5 + 1e-9)] if (low <= 0.5 + 1e-9).any() else np.nan
        hi = t[np.argmax(high <= 0.5 + 1e-9)] if (high <= 0.5 + 1e-9).any() else np.nan
        want = days(table.loc[[stage], ["median_low", "median_high"]].iloc[0])
        np.testing.assert_allclose([lo, hi], want, rtol=1e-9)


def test_survival_draws_each_band_around_its_curve(log):
    ax = fp.survival(log, logscale=False)
    curves = [ln for ln in ax.lines if ln.get_gid() == "km-curve"]
    bands = [c for c in ax.collections if c.get_gid() == "km-band"]
    assert len(bands) == len(curves) == len(log.stages)
    checked = 0
    for line, band, stage in zip(curves, bands, log.stages, strict=True):
        assert _same(band.get_facecolor()[0], line.get_color())
        d, c = _visits(log, stage)
        t = np.unique(d[~c])
        mids = (t[:-1] + np.diff(t) / 2)[:: max(len(t) // 12, 1)]  # inside flat steps
        s, lo, hi = _greenwood(d, c, mids).T
        path = band.get_paths()[0]
        for x, si, a, b in zip(mids, s, lo, hi, strict=True):
            if not 0 < si < 1 or b - a < 2e-3:
                continue
            eps = 1e-3 * (b - a)
            assert path.contains_point((x, si))  # the band brackets the curve
            assert path.contains_point((x, a + eps)) and path.contains_point((x, b - eps))
            assert not path.contains_point((x, a - 5 * eps - 1e-4))
            assert not path.contains_point((x, b + 5 * eps + 1e-4))
            checked += 1
    assert checked >= 5 * len(log.stages)


# ---------------------------------------------------------------------------- at risk
def test_at_risk_counts_are_the_visits_still_in_stage_at_the_ticks(log):
    ax = fp.survival(log, stage=["Lead", "Demo"], logscale=False)
    texts = [t for t in ax.texts if t.get_gid() == "km-at-risk"]
    ticks = [x for x in ax.get_xticks() if ax.get_xlim()[0] <= x <= ax.get_xlim()[1]]
    assert len(texts) == 2 * len({t.xy[0] for t in texts}) >= 2 * 3
    rows = {}
    for t in texts:  # the row is the vertical offset: first curve on top
        rows.setdefault(t.xyann[1], []).append(t)
    assert len(rows) == 2
    for stage, key in zip(["Lead", "Demo"], sorted(rows, reverse=True), strict=True):
        d, _ = _visits(log, stage)
        for t in rows[key]:
            x = t.xy[0]
            assert x in ticks
            assert int(t.get_text().replace(",", "")) == int((d >= x).sum())
    # the rows sit inside the Axes, under the curves (below y = 0)
    fig = ax.figure
    fig.canvas.draw()
    frame = ax.get_window_extent()
    zero = ax.transData.transform((0, 0))[1]
    for t in texts:
        box = t.get_window_extent()
        assert _inside(box, frame) and box.y1 <= zero
    assert ax.get_ylim()[0] < -0.05 and list(ax.get_yticks()) == [0, 0.25, 0.5, 0.75, 1]


def test_one_curve_has_one_at_risk_row_in_the_text_colour(log):
    with plt.style.context("dark_background"):
        ax = fp.survival(log, stage="Proposal")
        th = S.theme()
    texts = [t for t in ax.texts if t.get_gid() == "km-at-risk"]
    assert texts and all(_same(t.get_color(), th.text) for t in texts)
    assert texts[0].get_text() == str(len(_visits(log, "Proposal")[0]))  # the "0" tick


def test_the_survival_legend_sits_inside_the_axes(log):
    ax = fp.survival(log)
    ax.figure.canvas.draw()
    assert _inside(ax.get_legend().get_window_extent(), ax.get_window_extent())


# ---------------------------------------------------------------------------- scale
@pytest.mark.slow
def test_many_curves_become_small_multiples_that_do_not_overlap(log24):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fk.FunnelkitWarning)
        ax = fp.survival(log24)
    panels = [a for a in ax.child_axes if a.get_gid() == "km-panel"]
    assert len(log24.stages) == 24 > MAX_OVERLAY and len(panels) == 24
    assert not ax.axison
    names = [ln.get_label() for p in panels for ln in p.lines if ln.get_gid() == "km-curve"]
    assert names == list(log24.stages)
    for p in panels:  # each panel: a band and at most one curve, on the shared days axis
        assert sum(c.get_gid() == "km-band" for c in p.collections) == 1
        assert p.get_xlim() == panels[0].get_xlim() and p.get_xscale() == panels[0].get_xscale()
    fig = ax.figure
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    frame = ax.get_window_extent()
    boxes = [p.get_tightbbox(r) for p in panels]  # panel, ticks and title
    for box in boxes:
        assert _inside(box, frame, tol=2.0)
    for a, b in combinations(boxes, 2):
        w = min(a.x1, b.x1) - max(a.x0, b.x0)
        h = min(a.y1, b.y1) - max(a.y0, b.y0)
        assert w <= 0 or h <= 0, "two panels overlap"
    fig_w, fig_h = fig.get_size_inches()
    assert fig_w <= 12 and fig_h <= 14


def test_eight_curves_still_share_one_plot(log24):
    ax = fp.survival(log24, stage=list(log24.stages[:MAX_OVERLAY]))
    assert not ax.child_axes and ax.axison
    assert sum(ln.get_gid() == "km-curve" for ln in ax.lines) == MAX_OVERLAY


# ---------------------------------------------------------------------------- dwell
def test_dwell_marks_follow_the_theme():
    lg = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    with plt.style.context("dark_background"):
        th = S.theme()
        ax = fp.dwell(lg)
    (med,) = [c for c in ax.collections if c.get_gid() == "dwell-median"]
    (p90,) = [c for c in ax.collections if c.get_gid() == "dwell-p90"]
    assert _same(med.get_facecolor()[0], th.text) and _same(med.get_edgecolor()[0], th.face)
    assert _same(p90.get_edgecolor()[0], th.text)
    cis = [p for p in ax.patches if p.get_gid() == "dwell-median-ci"]
    assert cis and all(_same(p.get_facecolor(), th.text) for p in cis)
    handles = ax.get_legend().legend_handles
    median_handle = handles[[t.get_text() for t in ax.get_legend().get_texts()].index("median")]
    assert _same(median_handle.get_color(), th.text)
    assert S.contrast(th.text, th.face) >= 7


def test_dwell_keeps_legend_and_numbers_inside_the_axes(log):
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    ax = fp.dwell(log, ax=axes[0][0])
    fig.canvas.draw()
    frame = ax.get_window_extent()
    assert _inside(ax.get_legend().get_window_extent(), frame)
    notes = [t for t in ax.texts if t.get_gid() == "dwell-note"]
    assert len(notes) == len(log.stages)
    data_end = ax.transData.transform((ax.spines["bottom"].get_bounds()[1], 0))[0]
    rows = ax.transData.transform(np.column_stack([np.ones(6), ax.get_yticks()]))[:, 1]
    legend_bottom = ax.get_legend().get_window_extent().y0
    for note, y in zip(notes, rows, strict=True):
        box = note.get_window_extent()
        assert _inside(box, frame)
        assert box.x0 >= data_end  # a column right of the data, not over it
        assert box.y0 <= y <= box.y1 and box.y1 <= legend_bottom
        assert note.get_text().startswith("median ")
    dots = [c for c in ax.collections if c.get_gid() == "dwell-completed"]
    assert max(c.get_offsets()[:, 0].max() for c in dots) <= ax.spines["bottom"].get_bounds()[1]


# ---------------------------------------------------------------------------- incidence
def test_incidence_legend_is_a_strip_inside_the_axes_above_the_bands(log):
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    ax = fp.incidence(log, "Demo", ax=axes[0][0])
    fig.canvas.draw()
    leg = ax.get_legend().get_window_extent()
    assert _inside(leg, ax.get_window_extent())
    assert leg.y0 >= ax.transData.transform((0, 1.0))[1] - 1  # above 100%
    assert ax.get_yticks()[-1] == 1.0 and ax.get_ylim()[1] > 1.0
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:3] == ["advanced", "lost", "not resolved (open or silent)"]


def test_incidence_of_a_24_stage_log_draws_the_first_stage(log24):
    ax = fp.incidence(log24)
    assert ax.get_title() == f"Deals entering {S.wrap(log24.stages[0], 28, max_lines=2)}"
    (adv,) = [c for c in ax.collections if c.get_gid() == "incidence-advanced"]
    top = adv.get_paths()[0].vertices[:, 1].max()
    want = log24.incidence(log24.stages[0])["advanced"].iloc[-1]
    assert top == pytest.approx(want, abs=1e-3)  # thinned within 0.1 point


def test_a_visits_table_in_any_row_order_draws_the_stages_in_stage_order(log):
    """The stages of a visits table are categories in stage order; the rows may come in
    any order (a distributed log's come partition by partition): the charts follow the
    categories, not the order of first appearance."""
    shuffled = log.visits().sample(frac=1.0, random_state=3)
    assert list(dict.fromkeys(shuffled["stage"])) != log.stages  # appearance order differs
    ax = fp.dwell(shuffled)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == log.stages
    ax = fp.survival(shuffled)
    legend = [t.get_text().split("  (")[0] for t in ax.get_legend().get_texts()]
    assert legend == log.stages
    assert S.ordered_unique(shuffled["stage"].astype(object)) != log.stages  # plain values


def test_dots_show_open_visits_in_proportion_at_scale():
    """A stage of 10,000 visits, 1% open: about max_points dots, 1% of them open — but at
    least MIN_OPEN_DRAWN, so the open ones stay visible; a small stage draws every visit."""
    from funnelkit.plot._dwell import MIN_OPEN_DRAWN

    rng = np.random.default_rng(0)
    big = pd.DataFrame(
        {
            "stage": "Big",
            "dwell": pd.to_timedelta(rng.exponential(5.0, 10_000), unit="D"),
            "censored": np.arange(10_000) < 100,
        }
    )
    small = pd.DataFrame(
        {
            "stage": "Small",
            "dwell": pd.to_timedelta(rng.exponential(5.0, 400), unit="D"),
            "censored": np.arange(400) < 40,
        }
    )
    visits = pd.concat([big, small], ignore_index=True)
    visits["stage"] = pd.Categorical(visits["stage"], categories=["Big", "Small"])
    ax = fp.dwell(visits, max_points=1500)
    y = {t.get_text(): t.get_position()[1] for t in ax.get_yticklabels()}

    def dots(gid: str, stage: str) -> int:
        pts = np.concatenate([c.get_offsets() for c in ax.collections if c.get_gid() == gid])
        return int((np.abs(pts[:, 1] - y[stage]) < 0.4).sum())

    assert dots("dwell-completed", "Big") == round(1500 / 10_000 * 9_900)
    assert dots("dwell-censored", "Big") == MIN_OPEN_DRAWN  # 15 in proportion, 25 shown
    assert dots("dwell-completed", "Small") == 360 and dots("dwell-censored", "Small") == 40
