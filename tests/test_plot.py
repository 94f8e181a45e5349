"""Charts: what is drawn equals the tables, no global state, readable layouts on real data."""

from __future__ import annotations

import os
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from scipy import stats

import funnelkit as fk
import funnelkit.plot as fp
from conftest import days
from funnelkit.plot import _style as S
from funnelkit.plot._flow import classify
from funnelkit.plot._trend import cohort_trend

STAGES_12 = [
    "Lead captured",
    "Marketing qualified lead",
    "Sales accepted lead",
    "First contact",
    "Needs analysis and discovery workshop",
    "Solution design",
    "Technical validation",
    "Proposal sent",
    "Contract negotiation and legal review",
    "Procurement",
    "Verbal commit",
    "Signature pending",
]
STAGES_3 = ["Qualify", "Propose", "Close"]


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def log():
    return fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)


@pytest.fixture(scope="module")
def bpic_log(bpic_path):
    ev = pd.read_parquet(bpic_path)
    a = ev[(ev["lifecycle"] == "COMPLETE") & ev["activity"].str.startswith("A_")]
    band = pd.cut(a["amount_req"], [-1, 5_000, 15_000, np.inf], labels=["<5k", "5-15k", ">15k"])
    a = a.assign(amount_band=band.astype(str))
    return fk.EventLog(
        a,
        deal="case_id",
        stage="activity",
        time="ts",
        won=["A_APPROVED", "A_REGISTERED", "A_ACTIVATED"],
        lost=["A_DECLINED", "A_CANCELLED"],
        amount="amount_req",
        attrs=["amount_band"],
    )


def _synthetic_log(stages, n, seed):
    ev = fk.datasets.synthetic(n, seed=seed, stages=stages)
    return fk.EventLog(
        ev,
        stages=stages,
        won="Won",
        lost=["Lost", "Disqualified"],
        amount="amount",
        attrs=["team", "region"],
        stale_after="60D",
    )


@pytest.fixture(scope="module")
def log12():
    return _synthetic_log(STAGES_12, 900, 3)


@pytest.fixture(scope="module")
def log3():
    return _synthetic_log(STAGES_3, 300, 5)


@pytest.fixture(scope="module")
def young():
    """2,000 deals created over 2.5 months: much of the funnel is not resolved yet
    (docs/concepts/censoring.md)."""
    ev = fk.datasets.synthetic(2000, seed=0, p_skip=0.0, start="2025-01-01", end="2025-03-15")
    return fk.EventLog(ev, **fk.datasets.SAMPLE_KWARGS)


@pytest.fixture(autouse=True)
def _rcparams_unchanged():
    """Every test: no chart may change matplotlib's global settings."""
    before = dict(plt.rcParams)
    yield
    assert dict(plt.rcParams) == before


def key_table() -> pd.DataFrame:
    """A hand-built key-stage table (log.key_stages() is another module's job)."""
    return pd.DataFrame(
        {
            "stage": ["Demo", "Proposal", "Negotiation", "Lead", "Proposal"],
            "signal": ["leverage", "leverage", "leverage", "dropoff", "dropoff"],
            "effect": [0.031, 0.004, -0.01, np.nan, 0.12],
            "ci_low": [0.018, -0.002, -0.03, np.nan, 0.05],
            "ci_high": [0.044, 0.010, 0.01, np.nan, 0.19],
            "p_value": [np.nan, np.nan, np.nan, np.nan, 0.001],
            "q_value": [np.nan, np.nan, np.nan, np.nan, 0.012],
            "is_key": [True, False, False, False, True],
            "reason": [
                "10% fewer losses at Demo add 3.1 points of win rate",
                "small effect",
                "no effect",
                "no baseline given: drop-off excess not computed",
                "Proposal loses 12 points more deals than last quarter",
            ],
        }
    )


def gid_texts(ax, gid):
    return [t for t in ax.texts if t.get_gid() == gid]


def gid_collections(ax, gid):
    return [c for c in ax.collections if c.get_gid() == gid]


def same_color(a, b) -> bool:
    return np.allclose(to_rgba(a)[:3], to_rgba(b)[:3])


# ---------------------------------------------------------------------------- import cost
def test_import_does_not_import_matplotlib():
    code = (
        "import sys, funnelkit, funnelkit.plot; "
        "assert 'matplotlib' not in sys.modules, sorted(m for m in sys.modules if 'matplot' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_api():
    assert fp.__all__ == [
        "calibration",
        "dwell",
        "flow",
        "forecast",
        "funnel",
        "heatmap",
        "incidence",
        "key_stages",
        "segments",
        "slippage",
        "survival",
        "trend",
        "waterfall",
    ]


# ---------------------------------------------------------------------------- funnel
def test_funnel_bars_equal_reached_and_centred(log):
    f = log.funnel()
    ax = fp.funnel(log)
    bars = list(ax.containers[0])
    assert [b.get_width() for b in bars] == f["reached"].astype(float).tolist()
    assert [b.get_x() for b in bars] == (-f["reached"] / 2).tolist()
    ys = [b.get_y() for b in bars]
    assert ys == sorted(ys, reverse=True)  # first stage at the top
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == f["stage"].tolist()


def test_funnel_labels_hold_counts_conversion_and_drop_off(log):
    f = log.funnel()
    ax = fp.funnel(log)
    counts = [t.get_text() for t in gid_texts(ax, "funnel-count")]
    assert counts == [f"{r:,}" for r in f["reached"]]
    conv = [t.get_text() for t in gid_texts(ax, "funnel-conversion")]
    for text, row in zip(conv, f.itertuples(), strict=True):
        assert f"{100 * row.conversion:.1f}%" in text
        assert f"{row.dropped:,} dropped" in text
        assert (f"{row.open:,} open" in text) == (row.open > 0)
    assert conv[-1].split("  ·  ")[0].endswith("won")
    assert "skips implied" in S.subtitle_of(ax)
    assert "skips strict" in S.subtitle_of(fp.funnel(log, skips="strict"))


def test_funnel_highlights_key_stages(log):
    ax = fp.funnel(log, key=["Demo", "Proposal"])
    for bar, stage in zip(ax.containers[0], log.stages, strict=True):
        want = S.HIGHLIGHT if stage in ("Demo", "Proposal") else S.BAR
        assert same_color(bar.get_facecolor(), want)
    ticks = {t.get_text(): t for t in ax.get_yticklabels()}
    assert same_color(ticks["Demo"].get_color(), S.HIGHLIGHT)
    assert same_color(ticks["Lead"].get_color(), S.TEXT)
    # a key-stage table works too: flagged rows only
    ax2 = fp.funnel(log, key=key_table())
    flagged = [
        s
        for s, b in zip(log.stages, ax2.containers[0], strict=True)
        if same_color(b.get_facecolor(), S.HIGHLIGHT)
    ]
    assert flagged == ["Demo", "Proposal"]


def test_funnel_from_table_and_weighted(log):
    f = log.funnel(weight="amount")
    ax = fp.funnel(f)
    widths = [b.get_width() for b in ax.containers[0]]
    assert widths == pytest.approx(f["reached"].tolist(), rel=1e-12)  # unit conversion
    assert ax.get_title() == "Revenue funnel"
    assert gid_texts(ax, "funnel-count")[0].get_text() == S.compact(f["reached"].iloc[0])
    assert S.subtitle_of(ax).startswith("Amount")


def _gauge_x(ax, share):
    """Axes-fraction x of a share on the funnel's gauges (their tracks span 0-100%)."""
    track = next(p for p in ax.patches if p.get_gid() == "funnel-gauge")
    return track.get_x() + track.get_width() * np.asarray(share)


def test_funnel_gives_the_interval_where_the_stage_is_not_settled(young):
    f = young.funnel()
    ax = fp.funnel(young)
    unsettled = (f["unresolved"] >= S.UNRESOLVED_MIN).to_numpy()
    assert unsettled.all()  # 2.5 months old: every stage has deals still open
    texts = [t.get_text() for t in gid_texts(ax, "funnel-conversion")]
    for text, row, last in zip(texts, f.itertuples(), [False] * 5 + [True], strict=True):
        goes = "won" if last else "advance"
        head, counts = text.split("\n")
        assert head == (
            f"{100 * row.conversion_low:.1f}–{100 * row.conversion_high:.1f}% {goes}, "
            f"{100 * row.unresolved:.1f}% unresolved"
        )
        assert counts == f"{row.dropped:,} dropped  ·  {row.open:,} open"
    # Proposal, by hand from the table (docs/concepts/censoring.md): 0.3073, 0.8690, 0.2427
    assert texts[4].split("\n")[0] == "30.7–86.9% advance, 24.3% unresolved"
    # the gauge: green to the estimate, the unresolved share hatched after it, the interval
    adv = [p for p in ax.patches if p.get_gid() == "funnel-advance"]
    unres = [p for p in ax.patches if p.get_gid() == "funnel-unresolved"]
    ci = [ln for ln in ax.lines if ln.get_gid() == "funnel-ci"]
    assert len(adv) == len(unres) == len(ci) == len(f)
    np.testing.assert_allclose(
        [p.get_x() + p.get_width() for p in adv], _gauge_x(ax, f["conversion"])
    )
    end = np.minimum(f["conversion"] + f["unresolved"], 1.0)
    np.testing.assert_allclose([p.get_x() for p in unres], _gauge_x(ax, f["conversion"]))
    np.testing.assert_allclose([p.get_x() + p.get_width() for p in unres], _gauge_x(ax, end))
    assert all(p.get_hatch() for p in unres)
    np.testing.assert_allclose([ln.get_xdata()[0] for ln in ci], _gauge_x(ax, f["conversion_low"]))
    np.testing.assert_allclose(
        [ln.get_xdata()[1] for ln in ci], _gauge_x(ax, f["conversion_high"])
    )
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["advanced", "unresolved", "95% interval"]
    assert "hatched = not resolved yet" in S.subtitle_of(ax)


def test_funnel_of_a_settled_log_gives_points_and_no_unresolved_share(log):
    f = log.funnel()
    assert (f["unresolved"] == 0).all()
    ax = fp.funnel(log)
    assert not [p for p in ax.patches if p.get_gid() == "funnel-unresolved"]
    assert len([ln for ln in ax.lines if ln.get_gid() == "funnel-ci"]) == len(f)
    texts = [t.get_text() for t in gid_texts(ax, "funnel-conversion")]
    assert texts[3] == "59.3% advance  ·  130 dropped  ·  10 open"  # Demo: 0.593419
    assert "unresolved" not in "".join(texts) and "hatched" not in S.subtitle_of(ax)
    # one stage below the threshold, one above: only that one gets the interval
    t = f.assign(unresolved=[0.0, S.UNRESOLVED_MIN / 2, 0.0, S.UNRESOLVED_MIN, 0.0, 0.0])
    texts = [x.get_text() for x in gid_texts(fp.funnel(t), "funnel-conversion")]
    assert [("unresolved" in x) for x in texts] == [False, False, False, True, False, False]
    # a table without the interval columns: no gauges, the points as before
    ax = fp.funnel(f[["stage", "reached", "advanced", "dropped", "open", "conversion"]])
    gauge_gids = {"funnel-gauge", "funnel-advance", "funnel-unresolved"}
    assert not [p for p in ax.patches if p.get_gid() in gauge_gids]
    assert gid_texts(ax, "funnel-conversion")[3].get_text().startswith("59.3% advance")


def test_funnel_input_errors(log):
    with pytest.raises(ValueError, match="several rows per stage"):
        fp.funnel(log.funnel(by="team"))
    with pytest.raises(ValueError, match=r"not in the data; stages: \['Lead'"):
        fp.funnel(log, key=["Nope"])
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['reached'"):
        fp.funnel(pd.DataFrame({"stage": ["a"]}))
    with pytest.raises(TypeError, match="EventLog or a pandas DataFrame"):
        fp.funnel([1, 2, 3])


def test_given_axes_are_used_and_no_figure_is_added(log):
    fig, ax = plt.subplots()
    assert fp.funnel(log, ax=ax) is ax
    assert fp.heatmap(log, ax=ax, colorbar=False) is ax
    assert plt.get_fignums() == [fig.number]
    new = fp.funnel(log)  # without ax: a figure of its own, not the current axes
    assert new is not ax and new.figure is not fig


# ---------------------------------------------------------------------------- flow
def _bands(ax, kind):
    return [p for p in ax.patches if p.get_gid() == f"flow-{kind}"]


@pytest.mark.parametrize("name", ["log", pytest.param("bpic_log", marks=pytest.mark.external)])
def test_flow_one_band_per_transition_by_kind(name, request):
    lg = request.getfixturevalue(name)
    t = lg.transitions()
    kinds = classify(t, lg.stages, lg.won, lg.lost)
    ax = fp.flow(lg, min_share=0)  # every flow (the default leaves out those under 1%)
    for kind in ("forward", "backward", "won", "lost", "stale"):
        assert len(_bands(ax, kind)) == int((kinds == kind).sum()), kind
    # band thickness == transitions (forward and exit bands, in drawing order)
    drawn = sorted(
        round(p.get_path().vertices[0, 1] - p.get_path().vertices[7, 1], 6)
        for k in ("forward", "won", "lost", "stale")
        for p in _bands(ax, k)
    )
    want = sorted(float(x) for x in t.loc[kinds != "backward", "transitions"])
    assert drawn == pytest.approx(want)
    legend = [x.get_text() for x in ax.get_legend().get_texts()]
    assert ("backward" in legend) == bool((kinds == "backward").any())


def test_flow_from_table_matches_log(log):
    t = log.transitions()
    a = fp.flow(log, min_share=0)
    b = fp.flow(t, won="Won", lost=["Lost", "Disqualified"], min_share=0)
    gids = lambda ax: sorted(str(p.get_gid()) for p in ax.patches)  # noqa: E731
    assert gids(a) == gids(b)
    assert len(_bands(b, "backward")) == 7
    # node numbers: visits from the log (open ones too); a table has only the moves
    visits = log.visits()["stage"].value_counts()
    stage_label = lambda ax: gid_texts(ax, "flow-stage")[0].get_text()  # noqa: E731
    assert stage_label(a) == f"Lead\n{visits['Lead']}" == "Lead\n629"
    assert "numbers under stage names: visits" in S.subtitle_of(a)
    assert stage_label(b) == "Lead\n623"
    assert "moves in or out, the larger" in S.subtitle_of(b)


def test_flow_outcome_nodes_sized_by_inflow(log):
    t = log.transitions()
    ax = fp.flow(log)
    nodes = [p for p in ax.patches if p.get_gid() == "flow-outcome"]
    inflow = t.groupby("to_stage", observed=True)["transitions"].sum()
    want = sorted(float(inflow[s]) for s in log.won + log.lost + ["stale"])
    assert sorted(n.get_height() for n in nodes) == want


# ---------------------------------------------------------------------------- heatmap
def _check_cells(ax, m):
    cells = gid_texts(ax, "heatmap-cell")
    assert len(cells) == int((m.to_numpy() > 0).sum())
    for t in cells:
        x, y = t.get_position()
        v = m.iloc[int(y), int(x)]
        text = t.get_text()
        if text.startswith("<"):
            assert 0 < v < 0.0005
        else:
            assert float(text.rstrip("%")) == pytest.approx(100 * v, abs=0.051)


def test_heatmap_annotations_equal_shares(log):
    m = log.transition_matrix().loc[log.stages]
    ax = fp.heatmap(log)
    np.testing.assert_allclose(ax.images[0].get_array(), m.to_numpy())
    assert [t.get_text() for t in ax.get_yticklabels()] == log.stages  # no absorbing rows
    _check_cells(ax, m)
    xt = {t.get_text(): t for t in gid_texts(ax, "heatmap-column")}  # inside the axes
    assert list(xt) == list(m.columns)
    assert same_color(xt["Won"].get_color(), S.WON)
    assert same_color(xt["Lost"].get_color(), S.LOST)
    assert same_color(xt["stale"].get_color(), S.STALE)


def test_heatmap_from_tables(log, bpic_log):
    m = log.transition_matrix().loc[log.stages]
    for data in (log.transitions(), log.transition_matrix()):
        ax = fp.heatmap(data)
        np.testing.assert_allclose(ax.images[0].get_array(), m.to_numpy())
        _check_cells(ax, m)
    # an outcome that never happens gets no column (BPIC has no stale deals)
    ax = fp.heatmap(bpic_log)
    assert "stale" not in [t.get_text() for t in gid_texts(ax, "heatmap-column")]
    mb = bpic_log.transition_matrix().loc[bpic_log.stages].drop(columns="stale")
    _check_cells(ax, mb)


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_heatmap_of_a_one_stage_log_keeps_its_layout(fmt):
    """A wide export with one dated stage (the issue's CRM export: report --milestone
    Engaging=...) gave a 5.1-inch heatmap narrower than its subtitle: saving it as SVG
    warned 'constrained_layout not applied because axes sizes collapsed to zero'."""
    import io
    import warnings

    wide = pd.DataFrame({
        "id": [f"o{i}" for i in range(6)],
        "status": ["Won", "Lost", "Engaging", "Won", "Lost", "Engaging"],
        "engaged": ["2025-01-02"] * 6,
        "closed": ["2025-02-01", "2025-02-03", None, "2025-02-05", "2025-02-07", None],
    })  # fmt: skip
    one = fk.EventLog.from_milestones(
        wide, deal="id", stage_dates={"Engaging": "engaged"}, status="status",
        closed_at="closed", won="Won", lost="Lost",
    )  # fmt: skip
    ax = fp.heatmap(one)
    assert ax.images[0].get_array().shape == (1, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ax.figure.savefig(io.BytesIO(), format=fmt)
    renderer = ax.figure.canvas.get_renderer()
    sub = next(t for t in ax.texts if t.get_gid() == S.SUBTITLE_GID)
    assert sub.get_window_extent(renderer).width <= ax.figure.bbox.width
    assert ax.get_position().width > 0.3


# ---------------------------------------------------------------------------- dwell
def test_dwell_marks_km_median_and_p90(log):
    d = log.dwell()
    ax = fp.dwell(log, logscale=True)
    (med,) = gid_collections(ax, "dwell-median")
    (p90,) = gid_collections(ax, "dwell-p90")
    np.testing.assert_allclose(med.get_offsets()[:, 0], days(d["median"]), rtol=1e-12)
    np.testing.assert_allclose(p90.get_offsets()[:, 0], days(d["p90"]), rtol=1e-12)
    assert med.get_offsets()[:, 1].tolist() == [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    assert ax.get_xscale() == "log"


def test_dwell_draws_the_tables_median_interval(log, golden_log):
    for lg in (log, golden_log):
        d = lg.dwell()
        ax = fp.dwell(lg, logscale=False)
        bands = [p for p in ax.patches if p.get_gid() == "dwell-median-ci"]
        has = d["median_low"].notna().to_numpy()
        assert len(bands) == int(has.sum())
        right = ax.spines["bottom"].get_bounds()[1]  # the days axis ends before the notes
        assert right < ax.get_xlim()[1]
        los, his = days(d.loc[has, "median_low"]), days(d.loc[has, "median_high"])
        for band, lo, hi in zip(bands, los, his, strict=True):
            assert band.get_x() == pytest.approx(lo, rel=1e-12, abs=1e-12)
            end = hi if np.isfinite(hi) else right  # open-ended: to the axis' end
            assert band.get_x() + band.get_width() == pytest.approx(end, rel=1e-12)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "95% CI" in labels and "95% CI" in S.subtitle_of(ax)
    # golden C: 3 days to undefined (d4 censored at 14 days)
    notes = [t.get_text() for t in ax.texts]
    assert any(
        n.startswith("median 10 d · p90 –\n95% CI 3.0 d–undefined\n5 visits, 1 open")
        for n in notes
    )


def test_survival_draws_the_median_intervals(log):
    d = log.dwell().set_index("stage")
    ax = fp.survival(log, logscale=False)
    cis = [ln for ln in ax.lines if ln.get_gid() == "km-median-ci"]
    assert len(cis) == len(log.stages)
    for line, stage in zip(cis, log.stages, strict=True):
        ci = d.loc[[stage], ["median_low", "median_high"]]
        want = [days(ci["median_low"])[0], days(ci["median_high"])[0]]
        np.testing.assert_allclose(line.get_xdata(), want, rtol=1e-12)
    assert "95% CI" in S.subtitle_of(ax)


def test_dwell_draws_every_visit_and_censored_ones_hollow(log):
    v = log.visits()
    v = v.loc[v["dwell"].notna()]
    ax = fp.dwell(log)
    done = sum(len(c.get_offsets()) for c in gid_collections(ax, "dwell-completed"))
    cens = gid_collections(ax, "dwell-censored")
    assert done == int((~v["censored"]).sum())
    assert sum(len(c.get_offsets()) for c in cens) == int(v["censored"].sum())
    for c in cens:
        assert c.get_facecolor().size == 0 or np.all(c.get_facecolor()[:, 3] == 0)
        assert same_color(c.get_edgecolor()[0], S.CENSORED)
    # many visits: a capped, seeded sample is drawn, the markers still use all
    ax2 = fp.dwell(log, max_points=50)
    assert all(len(c.get_offsets()) <= 50 for c in gid_collections(ax2, "dwell-completed"))


def test_dwell_auto_log_scale_on_bpic(bpic_log):
    ax = fp.dwell(bpic_log)
    assert ax.get_xscale() == "log"  # seconds to weeks


# ---------------------------------------------------------------------------- survival
def _step_value(line, t):
    x, y = line.get_xdata(), line.get_ydata()
    return y[np.searchsorted(x, t, side="right") - 1]


def _scipy_sf(d, c):
    return stats.ecdf(stats.CensoredData(uncensored=d[~c], right=d[c])).sf


def test_survival_curves_equal_kaplan_meier(log):
    v = log.visits()
    v = v.loc[v["dwell"].notna()]
    ax = fp.survival(log, logscale=False)  # on a log axis zero dwells sit at the floor
    curves = [ln for ln in ax.lines if ln.get_gid() == "km-curve"]
    assert [ln.get_label() for ln in curves] == log.stages
    ticks = [ln for ln in ax.lines if ln.get_gid() == "km-censor"]
    assert sum(len(t.get_xdata()) for t in ticks) == int(v["censored"].sum())
    for line, stage in zip(curves, log.stages, strict=True):
        g = v.loc[v["stage"] == stage]
        d, c = days(g["dwell"]), g["censored"].to_numpy()
        sf = _scipy_sf(d, c)
        grid = np.unique(np.concatenate([d, d + 1e-6]))
        np.testing.assert_allclose(_step_value(line, grid), sf.evaluate(grid), atol=1e-12)
        assert line.get_ydata()[0] == 1.0


def test_survival_of_many_visits_is_drawn_through_fewer_steps_and_ticks():
    from funnelkit.plot._dwell import MAX_TICKS

    rng = np.random.default_rng(2)
    n = 30_000
    visits = pd.DataFrame(
        {
            "stage": "Demo",
            "dwell": pd.to_timedelta(rng.exponential(10.0, n) * 86_400, unit="s"),
            "censored": rng.random(n) < 0.3,
        }
    )
    ax = fp.survival(visits)
    (line,) = [ln for ln in ax.lines if ln.get_gid() == "km-curve"]
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert x.size <= 2002
    t, surv = S.km_curve(np.asarray(S.to_days(visits["dwell"])), visits["censored"].to_numpy())
    # the drawn step function stays within 1/2000 of the estimate at every event time
    drawn = y[np.searchsorted(x, t, side="right") - 1]
    assert np.abs(drawn - surv).max() < 1 / 2000
    (ticks,) = [ln for ln in ax.lines if ln.get_gid() == "km-censor"]
    assert len(ticks.get_xdata()) == MAX_TICKS


def test_survival_per_segment_of_one_stage(log):
    v = log.visits().merge(log.deals()[["deal", "team"]], on="deal")
    v = v.loc[v["dwell"].notna() & (v["stage"] == "Proposal")]
    ax = fp.survival(log, stage="Proposal", by="team", logscale=False)
    curves = [ln for ln in ax.lines if ln.get_gid() == "km-curve"]
    assert [ln.get_label() for ln in curves] == ["Team A", "Team B", "Team C"]
    for line in curves:
        g = v.loc[v["team"] == line.get_label()]
        d, c = days(g["dwell"]), g["censored"].to_numpy()
        np.testing.assert_allclose(_step_value(line, d), _scipy_sf(d, c).evaluate(d))
    # the same from a visits table that carries the segment
    ax2 = fp.survival(v, stage="Proposal", by="team", logscale=False)
    a = [ln.get_ydata() for ln in ax2.lines if ln.get_gid() == "km-curve"]
    b = [ln.get_ydata() for ln in curves]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="one curve per segment of one stage"):
        fp.survival(log, by="team")
    with pytest.raises(ValueError, match="not a carried attribute"):
        fp.survival(log, stage="Demo", by="nope")


def test_km_curve_ties_events_before_censorings():
    # at t=5: two events and one censoring among 4 at risk → S(5) = 2/4; t=8 event: 0
    t, s = S.km_curve(np.array([5, 5, 5, 8.0]), np.array([True, False, False, False]))
    assert t.tolist() == [5.0, 8.0] and s.tolist() == [0.5, 0.0]


# ---------------------------------------------------------------------------- key stages
def key_panels(ax):
    """The key-stage chart's panels: {signal: inset Axes}."""
    return {p.get_gid().removeprefix("key-panel-"): p for p in ax.child_axes}


def key_collections(ax, gid):
    return [c for p in ax.child_axes for c in gid_collections(p, gid)]


def key_reasons(ax):
    return [
        t.get_text().replace("\n", " ") for p in ax.child_axes for t in gid_texts(p, "key-reason")
    ]


def test_key_stages_points_whiskers_and_reasons():
    table = key_table()
    ax = fp.key_stages(table)
    panels = key_panels(ax)
    assert list(panels) == ["leverage", "dropoff"]  # a panel per signal, in table order
    (flag,) = gid_collections(panels["leverage"], "key-effect-flagged")
    (rest,) = gid_collections(panels["leverage"], "key-effect")
    np.testing.assert_allclose(flag.get_offsets()[:, 0], [0.031])
    assert same_color(flag.get_facecolor()[0], S.HIGHLIGHT)
    np.testing.assert_allclose(rest.get_offsets()[:, 0], [0.004, -0.01])
    assert same_color(rest.get_facecolor()[0], S.NEUTRAL)
    (drop,) = gid_collections(panels["dropoff"], "key-effect-flagged")
    np.testing.assert_allclose(drop.get_offsets()[:, 0], [0.12])
    whiskers = [ln for p in panels.values() for ln in p.lines if ln.get_gid() == "key-ci"]
    finite = table.loc[table["ci_low"].notna()]
    assert [list(ln.get_xdata()) for ln in whiskers] == finite[
        ["ci_low", "ci_high"]
    ].values.tolist()
    reasons = key_reasons(ax)
    assert len(reasons) == len(table)  # the NaN row still says why
    for r, row in zip(reasons, table.itertuples(), strict=True):
        assert row.reason in r
    assert reasons[-1].startswith("q = 0.012")
    labels = [t.get_text() for p in panels.values() for t in p.get_yticklabels()]
    assert labels == ["Demo", "Proposal", "Negotiation", "Lead", "Proposal"]
    ticks = {t.get_text(): t for t in panels["leverage"].get_yticklabels()}
    assert same_color(ticks["Demo"].get_color(), S.HIGHLIGHT)
    # effects in points of the signal's unit: 0.02 → "+2"
    xt = [t.get_text() for t in panels["leverage"].get_xticklabels()]
    assert "0" in xt and any(t.startswith("+") and "%" not in t for t in xt)
    assert not ax.axison  # the given Axes is the box the panels fill


def test_key_stages_chart_caps_its_rows_and_says_so(log):
    ks = log.key_stages(by="owner", n_boot=20)  # 6 stages x 12 owners of drop-off rows
    assert len(ks) > 40
    ax = fp.key_stages(ks, max_rows=10)
    reasons = key_reasons(ax)
    assert len(reasons) == 10
    flagged = ks.loc[ks["is_key"]]
    no_segment = ks.loc[~ks["is_key"] & ks["segment"].isna()]
    no_segment = no_segment.sort_values("q_value", kind="stable", na_position="last")
    want = pd.concat([flagged, no_segment]).head(10)
    want = want.loc[
        sorted(
            want.index, key=lambda i: (list(ks["signal"].unique()).index(ks.loc[i, "signal"]), i)
        )
    ]
    assert len(flagged) + len(no_segment) >= 10
    for r, row in zip(reasons, want.itertuples(), strict=True):
        assert row.reason[:30] in r
    (sub,) = gid_texts(ax, S.SUBTITLE_GID)
    assert f"10 of {len(ks):,} rows drawn" in sub.get_text().replace("\n", " ")
    everything = fp.key_stages(ks, max_rows=None)
    assert ax.figure.get_size_inches()[1] <= 14
    shown = len(key_reasons(everything))
    if shown < len(ks):  # what does not fit 14 inches is left out, and said so
        text = gid_texts(everything, S.SUBTITLE_GID)[0].get_text().replace("\n", " ")
        assert f"{shown} of {len(ks):,} rows drawn" in text
    with pytest.raises(ValueError, match="`max_rows` must be a positive integer"):
        fp.key_stages(ks, max_rows=0)


def test_key_stages_signal_filter_and_errors(log):
    ax = fp.key_stages(key_table(), signal="dropoff")
    (panel,) = ax.child_axes
    assert [t.get_text() for t in panel.get_yticklabels()] == ["Lead", "Proposal"]
    with pytest.raises(ValueError, match="not in the table"):
        fp.key_stages(key_table(), signal="stall")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['reason'\]"):
        fp.key_stages(key_table().drop(columns="reason"))
    if not hasattr(log, "key_stages"):
        with pytest.raises(TypeError, match="no key_stages"):
            fp.key_stages(log)


# ---------------------------------------------------------------------------- segments
def test_segments_points_and_wilson_intervals(log):
    f = log.funnel(by="team")
    ax = fp.segments(log, by="team")
    assert [c.get_label() for c in ax.containers] == ["Team A", "Team B", "Team C"]
    for cont in ax.containers:
        rows = f.loc[f["team"] == cont.get_label()]
        np.testing.assert_allclose(cont.lines[0].get_xdata(), rows["conversion"])
        segs = cont.lines[2][0].get_segments()
        np.testing.assert_allclose([s[0][0] for s in segs], rows["conversion_low"])
        np.testing.assert_allclose([s[1][0] for s in segs], rows["conversion_high"])
    (overall,) = gid_collections(ax, "segments-overall")
    np.testing.assert_allclose(overall.get_offsets()[:, 0], log.funnel()["conversion"])
    # from the table: the same points
    ax2 = fp.segments(f)
    for a, b in zip(ax.containers, ax2.containers, strict=True):
        np.testing.assert_array_equal(a.lines[0].get_xdata(), b.lines[0].get_xdata())
    assert ax.get_title() == "Conversion by team"


def _hollow(ax, gid):
    return {ln.get_label(): ln for ln in ax.lines if ln.get_gid() == gid}


def test_segments_draws_unsettled_conversions_hollow(young):
    f = young.funnel(by="team")
    ax = fp.segments(young, by="team")
    hollow = _hollow(ax, "segments-unresolved")
    for cont in ax.containers:
        rows = f.loc[f["team"] == cont.get_label()]
        open_ = (rows["unresolved"] >= S.UNRESOLVED_MIN).to_numpy()
        assert open_.any()
        line = hollow[cont.get_label()]
        np.testing.assert_array_equal(line.get_xdata(), rows["conversion"].to_numpy()[open_])
        assert same_color(line.get_markerfacecolor(), S.theme().paper)  # white on paper
        shown = cont.lines[0].get_markevery()
        assert list(shown) == list(np.flatnonzero(~open_))  # filled: the settled ones only
    assert "not settled yet" in ax.get_legend().get_texts()[-1].get_text()


def test_segments_hollow_exactly_where_the_table_says_unresolved(log):
    f = log.funnel(by="team").reset_index(drop=True)
    assert (f["unresolved"] > 0).any()  # thin tails (fewer than 10 deals at risk)
    f = f.assign(unresolved=0.0)
    u = np.zeros(len(f))
    u[[1, 4, 9]] = [0.2, S.UNRESOLVED_MIN, 0.01]
    u[7] = S.UNRESOLVED_MIN / 2  # below the threshold: settled
    t = f.assign(unresolved=u)
    ax = fp.segments(t)
    hollow = _hollow(ax, "segments-unresolved")
    want = t.loc[u >= S.UNRESOLVED_MIN]
    got = sorted((k, float(x)) for k, ln in hollow.items() for x in ln.get_xdata())
    assert got == sorted(zip(want["team"], want["conversion"].astype(float), strict=True))
    # nothing unresolved, or another metric: all filled, no note
    for ax in (fp.segments(f), fp.segments(t, metric="conversion_closed")):
        assert not _hollow(ax, "segments-unresolved")
        assert "not settled" not in ax.get_legend().get_texts()[-1].get_text()
    ax = fp.segments(t, metric="conversion_closed")  # the closed ratio, with its interval
    for cont in ax.containers:
        rows = t.loc[t["team"] == cont.get_label()]
        segs = cont.lines[2][0].get_segments()
        np.testing.assert_allclose([s[0][0] for s in segs], rows["conversion_closed_low"])


def test_segments_other_metric_and_errors(log):
    f = log.funnel(by="region")
    ax = fp.segments(log, by="region", metric="win_rate_from")
    for cont in ax.containers:
        rows = f.loc[f["region"] == cont.get_label()]
        np.testing.assert_allclose(cont.lines[0].get_xdata(), rows["win_rate_from"])
        segs = cont.lines[2][0].get_segments()  # its interval, from the table
        np.testing.assert_allclose([s[0][0] for s in segs], rows["win_rate_from_low"])
        np.testing.assert_allclose([s[1][0] for s in segs], rows["win_rate_from_high"])
    for cont in fp.segments(log, by="region", metric="cumulative").containers:
        assert cont.has_xerr is False  # no interval in the table
    with pytest.raises(ValueError, match="`by` is required"):
        fp.segments(log)
    with pytest.raises(ValueError, match="no segment column"):
        fp.segments(log.funnel())
    with pytest.raises(ValueError, match="`metric` must be one of"):
        fp.segments(log, by="team", metric="nope")  # type: ignore[arg-type]


# ------------------------------------------------------- the computation's keywords
def test_key_stages_takes_the_computations_keywords(log):
    """fk.plot.key_stages(log, by="team") used to fail in matplotlib (PathCollection.set)."""
    want = log.key_stages(by="team", signals="heterogeneity", n_boot=20, seed=1)
    ax = fp.key_stages(log, by="team", signals="heterogeneity", n_boot=20, seed=1, s=30)
    dots = np.concatenate(
        [
            c.get_offsets()[:, 0]
            for p in ax.child_axes
            for c in p.collections
            if str(c.get_gid()).startswith("key-")
        ]
    )
    np.testing.assert_allclose(np.sort(dots), np.sort(want["effect"].dropna()))
    reasons = key_reasons(ax)
    assert len(reasons) == len(want) and "team" in reasons[0]
    with pytest.warns(DeprecationWarning, match="key_kwargs=...\\) is deprecated"):
        old = fp.key_stages(log, key_kwargs={"by": "team", "signals": "heterogeneity"})
    assert len(key_reasons(old)) == len(want)


def test_funnel_and_segments_take_the_funnels_keywords(log):
    f = log.funnel(within="7D")
    ax = fp.funnel(log, within="7D")
    conv = [t.get_text() for t in gid_texts(ax, "funnel-conversion")]
    for text, row in zip(conv, f.itertuples(), strict=True):
        assert f"{100 * row.conversion:.1f}%" in text and f"{row.dropped:,} dropped" in text
    assert "within 7D" in S.subtitle_of(ax)
    by = log.funnel(by="team", within="7D")
    ax = fp.segments(log, by="team", within="7D")
    for cont in ax.containers:
        rows = by.loc[by["team"] == cont.get_label()]
        np.testing.assert_allclose(cont.lines[0].get_xdata(), rows["conversion"])
    (overall,) = gid_collections(ax, "segments-overall")
    np.testing.assert_allclose(overall.get_offsets()[:, 0], f["conversion"])


def test_trend_takes_by(log):
    t = log.trend(metric="win_rate", by="team")
    ax = fp.trend(log, metric="win_rate", by="team")
    assert [c.get_label() for c in ax.containers] == ["Team A", "Team B", "Team C"]
    for cont in ax.containers:
        rows = t.loc[(t["team"] == cont.get_label()) & t["win_rate"].notna()]
        np.testing.assert_allclose(cont.lines[0].get_ydata(), rows["win_rate"])
    assert ax.get_title() == "Win rate by cohort, per team"
    ax = fp.trend(log, stage="Demo", by="team")
    assert [c.get_label() for c in ax.containers] == [f"Demo · Team {x}" for x in "ABC"]


@pytest.mark.parametrize(
    ("chart", "kwargs", "match"),
    [
        (fp.flow, {"by": "team"}, "fk.plot.flow takes none"),
        (fp.heatmap, {"skips": "strict"}, "fk.plot.heatmap takes none"),
        (fp.dwell, {"by": "team"}, "fk.plot.dwell takes none"),
        (fp.survival, {"n_boot": 10}, "fk.plot.survival takes none"),
        (fp.key_stages, {"skips": "strict"}, r"log.key_stages\(\) does not take them"),
        (fp.funnel, {"signals": "stall"}, r"log.funnel\(\) does not take them"),
    ],
)
def test_analysis_keywords_a_chart_does_not_compute_are_clear_errors(log, chart, kwargs, match):
    with pytest.raises(TypeError, match=match):
        chart(log, **kwargs)


def test_analysis_keywords_with_a_table_need_a_log(log):
    with pytest.raises(TypeError, match=r"go to log.funnel\(\) and need an fk.EventLog"):
        fp.funnel(log.funnel(), within="7D")
    with pytest.raises(TypeError, match=r"go to log.key_stages\(\) and need an fk.EventLog"):
        fp.key_stages(key_table(), by="team")
    ax = fp.key_stages(key_table(), alpha=0.5)  # with a table, alpha is matplotlib's
    assert key_collections(ax, "key-effect")[0].get_alpha() == 0.5


def test_segments_draws_the_largest_and_says_what_it_left_out(log):
    f = log.funnel(by="owner")  # 12 owners
    size = f.groupby("owner")["reached"].max()
    want = sorted(size.sort_values(ascending=False, kind="stable").index[:5])
    assert size.sort_values(ascending=False).iloc[4] > size.sort_values(ascending=False).iloc[5]
    ax = fp.segments(log, by="owner", top=5)
    assert [c.get_label() for c in ax.containers] == want
    for cont in ax.containers:  # the drawn segments keep their own numbers
        rows = f.loc[f["owner"] == cont.get_label()]
        np.testing.assert_allclose(cont.lines[0].get_xdata(), rows["conversion"])
    (sub,) = gid_texts(ax, S.SUBTITLE_GID)
    hidden = size.drop(want).sum() / size.sum()
    assert f"the 5 largest of 12 segments; the other 7 ({hidden:.0%} of deals)" in sub.get_text()
    assert "top=5" in sub.get_text()
    # under the cap: everything drawn, nothing said
    ax = fp.segments(f, top=12)
    assert len(ax.containers) == 12
    assert "largest" not in gid_texts(ax, S.SUBTITLE_GID)[0].get_text()
    with pytest.raises(ValueError, match="`top` must be a positive integer"):
        fp.segments(f, top=0)


def test_segments_default_cap_keeps_thousands_of_segments_fast():
    events = fk.datasets.synthetic(3000, seed=4)
    codes = events["deal_id"].astype("category").cat.codes.to_numpy()
    events["seg"] = np.char.add("s", (codes % 1500).astype(str))  # 1,500 segments of 2 deals
    lg = fk.EventLog(
        events, deal="deal_id", stage="stage", time="ts", won="Won",
        lost=["Lost", "Disqualified"], attrs=["seg"],
    )  # fmt: skip
    ax = fp.segments(lg.funnel(by="seg"))
    assert len(ax.containers) == S.MAX_SERIES  # as many as get a colour (issue 20)
    sub = gid_texts(ax, S.SUBTITLE_GID)[0].get_text().replace("\n", " ")
    assert "the 12 largest of 1,500 segments" in sub
    assert "12 segments with fewer than 30 deals" in sub  # 2 deals each: all grey


# ---------------------------------------------------------------------------- trend
def test_cohort_trend_is_the_monitoring_trend(log):
    t = cohort_trend(log)
    m = log.trend(freq="QE")
    m = m.loc[(m["advanced"] + m["dropped"]) > 0].reset_index(drop=True)
    np.testing.assert_allclose(t["value"], m["conversion"])
    np.testing.assert_allclose(t["low"], m["conversion_low"])
    assert t["n"].tolist() == (m["advanced"] + m["dropped"]).tolist()
    assert (t["low"] <= t["value"] + 1e-12).all() and (t["value"] <= t["high"] + 1e-12).all()
    w = cohort_trend(log, metric="win_rate")
    mw = log.trend(freq="QE", metric="win_rate")
    mw = mw.loc[(mw["won"] + mw["lost"] + mw["stale"]) > 0]
    np.testing.assert_allclose(w["value"], mw["win_rate"])
    c = cohort_trend(log, metric="cycle_time")
    mc = log.trend(freq="QE", metric="cycle_time")
    assert c["n"].sum() == mc["counted"].sum()
    # the median's 95% interval is the trend table's (it was NaN: no interval drawn)
    mc = mc.loc[mc["counted"] > 0].reset_index(drop=True)
    np.testing.assert_allclose(c["low"], days(mc["median_low"]), rtol=1e-12)
    np.testing.assert_allclose(c["high"], days(mc["median_high"]), rtol=1e-12)
    assert (c["low"] < c["value"]).all() and (c["value"] < c["high"]).all()


def test_trend_draws_the_cohort_values(log):
    t = cohort_trend(log)
    ax = fp.trend(log, stage=["Demo", "Proposal"])
    assert [c.get_label() for c in ax.containers] == ["Demo", "Proposal"]
    for cont in ax.containers:
        rows = t.loc[t["stage"] == cont.get_label()].sort_values("period")
        np.testing.assert_allclose(cont.lines[0].get_ydata(), rows["value"])
        segs = cont.lines[2][0].get_segments()
        np.testing.assert_allclose([s[0][1] for s in segs], rows["low"])
        np.testing.assert_allclose([s[1][1] for s in segs], rows["high"])
    labels = [x.get_text() for x in ax.get_xticklabels()]
    # every cohort with a resolved deal is drawn: young ones are censored, not left out
    assert labels == ["2024 Q1", "2024 Q2", "2024 Q3", "2024 Q4", "2025 Q1", "2025 Q2"]


def test_trend_tables_and_panels(log):
    periods = pd.to_datetime(["2025-03-31", "2025-06-30"], utc=True)
    wide = pd.DataFrame(
        {
            "period": periods.repeat(2),
            "stage": ["Demo", "Proposal"] * 2,
            "conversion": [0.5, 0.4, 0.6, 0.3],
            "conversion_low": [0.4, 0.3, 0.5, 0.2],
            "conversion_high": [0.6, 0.5, 0.7, 0.4],
        }
    )
    ax = fp.trend(wide)
    np.testing.assert_allclose(ax.containers[0].lines[0].get_ydata(), [0.5, 0.6])
    long = pd.DataFrame(
        {
            "period": list(periods) * 2,
            "metric": ["win_rate"] * 2 + ["cycle_time"] * 2,
            "value": [0.2, 0.25, pd.Timedelta("30D"), pd.Timedelta("40D")],
            "low": [0.1, 0.15, pd.Timedelta("20D"), pd.Timedelta("30D")],
            "high": [0.3, 0.35, pd.Timedelta("40D"), pd.Timedelta("50D")],
        }
    )
    long_ct = long.loc[long["metric"] == "cycle_time"].copy()
    for c in ("value", "low", "high"):
        long_ct[c] = pd.to_timedelta(long_ct[c])
    ax = fp.trend(long_ct)
    np.testing.assert_allclose(ax.containers[0].lines[0].get_ydata(), [30, 40])
    assert ax.get_title() == "Cycle time by cohort"
    ax = fp.trend(long.loc[long["metric"] == "win_rate"].astype({"value": float}))
    np.testing.assert_allclose(ax.containers[0].lines[0].get_ydata(), [0.2, 0.25])
    fig = fp.trend(log)  # six stages → one panel each
    assert isinstance(fig, plt.Figure)
    assert [a.get_title() for a in fig.axes if a.get_visible()] == log.stages
    ax = fp.trend(log, ax=plt.subplots()[1])  # given axes: all stages in them
    assert len(ax.containers) == len(log.stages)
    with pytest.raises(ValueError, match="not in the data"):
        fp.trend(log, stage="Nope")
    with pytest.raises(ValueError, match="needs a 'period' column"):
        fp.trend(wide.drop(columns="period"))


def test_trend_draws_unsettled_points_hollow_when_the_table_says_so(log):
    periods = pd.to_datetime(["2024-12-31", "2025-03-31", "2025-06-30"])
    t = pd.DataFrame(
        {
            "period": periods.repeat(2),
            "stage": ["Demo", "Proposal"] * 3,
            "conversion": [0.5, 0.4, 0.6, 0.3, 0.55, 0.35],
            "conversion_low": [0.4, 0.3, 0.5, 0.2, 0.3, 0.1],
            "conversion_high": [0.6, 0.5, 0.7, 0.4, 0.8, 0.7],
            "unresolved": [0.0, 0.0, 0.0, S.UNRESOLVED_MIN / 2, 0.12, 0.3],
        }
    )
    ax = fp.trend(t)
    hollow = [ln for ln in ax.lines if ln.get_gid() == "trend-unresolved"]
    assert len(hollow) == 2  # the last period of each stage
    for cont, ln, value in zip(ax.containers, hollow, [0.55, 0.35], strict=True):
        np.testing.assert_allclose(ln.get_ydata(), [value])
        np.testing.assert_allclose(ln.get_xdata(), [2 + cont.lines[0].get_xdata()[0]])
        assert list(cont.lines[0].get_markevery()) == [0, 1]
        assert same_color(ln.get_markerfacecolor(), S.theme().paper)
    assert "hollow: not settled yet" in S.subtitle_of(ax)
    assert S.subtitle_of(ax).startswith("probability of advancing per cohort")
    # panels too
    fig = fp.trend(t, panels=True)
    assert sum(ln.get_gid() == "trend-unresolved" for a in fig.axes for ln in a.lines) == 2
    # without the column (or nothing unresolved): filled points, the old note
    for table in (t.drop(columns="unresolved"), t.assign(unresolved=0.0)):
        ax = fp.trend(table)
        assert not [ln for ln in ax.lines if ln.get_gid() == "trend-unresolved"]
        assert "hollow" not in S.subtitle_of(ax)
    assert S.subtitle_of(fp.trend(t.drop(columns="unresolved"))).startswith("advanced /")


# ---------------------------------------------------------------------------- incidence
@pytest.fixture(scope="module")
def big_incidence():
    ev = fk.datasets.synthetic(50_000, seed=1)
    return fk.EventLog(ev, **fk.datasets.SAMPLE_KWARGS).incidence("Lead")


def _drawn_at(x, y, t):
    """The drawn post-step curve through (x, y) at times t."""
    return np.asarray(y)[np.searchsorted(np.asarray(x), t, side="right") - 1]


def test_incidence_of_many_deals_is_thinned_within_a_tenth_of_a_point(big_incidence):
    from funnelkit.plot._incidence import THIN_STEP

    c = big_incidence
    assert len(c) > 80_000  # one row per step: as many as deals that reached Lead, about
    ax = fp.incidence(c)
    t = np.concatenate([[0.0], days(c["time"])])
    for ln, col in zip(
        [ln for ln in ax.lines if ln.get_gid() == "incidence-ci"],
        ["advanced_low", "advanced_high"],
        strict=True,
    ):
        x, y = np.asarray(ln.get_xdata()), np.asarray(ln.get_ydata())
        assert x.size < 5_000
        full = np.concatenate([[0.0], c[col].to_numpy(float)])
        # exact where kept, and within THIN_STEP of the full step curve everywhere
        pos = np.searchsorted(t, x[1:], side="right") - 1  # (the first row is at 0 too)
        np.testing.assert_array_equal(y[1:], full[pos])
        assert x[-1] == t[-1]
        assert np.abs(_drawn_at(x, y, t[1:]) - full[1:]).max() < THIN_STEP
    for band in ("advanced", "lost", "unresolved"):
        (poly,) = gid_collections(ax, f"incidence-{band}")
        assert len(poly.get_paths()[0].vertices) < 4 * 5_000
    # the rows drawn, as the report holds them: thinning them again keeps them all
    from funnelkit.plot._incidence import curve_rows

    kept = curve_rows(c)
    assert len(kept) == x.size - 1 and curve_rows(kept).index.equals(kept.index)


def test_thin_steps_keeps_every_curve_within_the_step():
    from funnelkit.plot._incidence import thin_steps

    rng = np.random.default_rng(4)
    n = 20_000
    up = np.cumsum(rng.exponential(1.0, n)) / n / 1.2  # monotone, 0 .. ~0.83
    wiggle = 0.5 + 0.01 * np.sin(np.arange(n) / 300.0)  # not monotone
    v = np.column_stack([up, wiggle])
    keep = thin_steps(v, 0.001)
    assert keep[0] == 0 and keep[-1] == n - 1 and np.all(np.diff(keep) > 0)
    assert keep.size < 1_000 + 2 * 20 * 11  # ~830 bands of one curve, ~20 per swing of the other
    held = v[keep][np.searchsorted(keep, np.arange(n), side="right") - 1]
    assert np.abs(held - v).max() < 0.001
    assert list(thin_steps(np.array([[0.2], [np.nan], [np.nan], [0.2]]))) == [0, 1, 3]


# ---------------------------------------------------------------------------- no side effects
CHARTS = {
    "funnel": lambda lg: fp.funnel(lg, key=[lg.stages[1]]),
    "funnel_amount": lambda lg: fp.funnel(lg, weight="amount", skips="strict"),
    "flow": fp.flow,
    "heatmap": fp.heatmap,
    "dwell": fp.dwell,
    "survival": fp.survival,
    "survival_by": lambda lg: fp.survival(lg, stage=lg.stages[-1], by=lg.attrs[0]),
    "key_stages": lambda lg: fp.key_stages(_key_table_for(lg)),
    "segments": lambda lg: fp.segments(lg, by=lg.attrs[0]),
    "trend": fp.trend,
    "trend_win_rate": lambda lg: fp.trend(lg, metric="win_rate"),
    "trend_cycle_time": lambda lg: fp.trend(lg, metric="cycle_time"),
    "incidence": lambda lg: fp.incidence(lg, lg.stages[-1]),
}


def _key_table_for(lg) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = len(lg.stages)
    e = rng.normal(0.02, 0.02, n)
    return pd.DataFrame(
        {
            "stage": lg.stages,
            "signal": "leverage",
            "effect": e,
            "ci_low": e - 0.015,
            "ci_high": e + 0.015,
            "p_value": np.nan,
            "q_value": np.nan,
            "is_key": e - 0.015 > 0.01,
            "reason": [
                f"10% fewer losses at {s} add {100 * x:.1f} points"
                for s, x in zip(lg.stages, e, strict=True)
            ],
        }
    )


def test_no_show_savefig_or_tight_layout(log, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a chart must not show, save or re-layout")

    monkeypatch.setattr(plt, "show", boom)
    monkeypatch.setattr(plt.Figure, "savefig", boom)
    monkeypatch.setattr(plt.Figure, "tight_layout", boom)
    monkeypatch.setattr(plt, "tight_layout", boom)
    for name, chart in CHARTS.items():
        before = dict(plt.rcParams)
        chart(log)
        assert dict(plt.rcParams) == before, name
        plt.close("all")


# ---------------------------------------------------------------------------- layouts
def _boxes(fig, artists):
    renderer = fig.canvas.get_renderer()
    out = []
    for a in artists:
        if a.get_visible() and a.get_text().strip():
            out.append((a.get_text(), a.get_window_extent(renderer)))
    return out


def _shown_ticklabels(ax, which):
    """Tick labels inside the view limits (matplotlib keeps a few outside, not drawn)."""
    axis, (lo, hi) = (ax.xaxis, ax.get_xlim()) if which == "x" else (ax.yaxis, ax.get_ylim())
    lo, hi = min(lo, hi), max(lo, hi)
    k = 0 if which == "x" else 1
    return [t for t in axis.get_ticklabels() if lo <= t.get_position()[k] <= hi]


def check_layout(fig) -> None:
    """No text leaves the figure; tick labels and text columns do not overlap."""
    fig.canvas.draw()
    fb = fig.bbox
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        xt, yt = _shown_ticklabels(ax, "x"), _shown_ticklabels(ax, "y")
        texts = [*ax.texts, ax.title, ax.xaxis.label, ax.yaxis.label, *xt, *yt]
        leg = ax.get_legend()
        if leg is not None:
            texts += leg.get_texts()
        for text, bb in _boxes(fig, texts):
            assert bb.x0 >= fb.x0 - 1 and bb.x1 <= fb.x1 + 1, f"clipped: {text!r}"
            assert bb.y0 >= fb.y0 - 1 and bb.y1 <= fb.y1 + 1, f"clipped: {text!r}"
        groups = [xt, yt]
        for gid in ("funnel-count", "funnel-conversion", "heatmap-cell", "key-reason"):
            groups.append(gid_texts(ax, gid))
        for group in groups:
            if any(t.get_rotation() for t in group):
                continue  # slanted labels: their boxes overlap, the glyphs do not
            for (t1, b1), (t2, b2) in combinations(_boxes(fig, group), 2):
                assert not b1.shrunk(0.97, 0.9).overlaps(b2.shrunk(0.97, 0.9)), (t1, t2)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["log", "log3", "log12", pytest.param("bpic_log", marks=pytest.mark.external)]
)
def test_every_chart_renders_readably(name, request):
    """Every chart on the sample, a 3- and a 12-stage funnel and BPIC 2012.

    Set FUNNELKIT_PLOT_DIR to also write the PNGs for a look.
    """
    lg = request.getfixturevalue(name)
    out_dir = os.environ.get("FUNNELKIT_PLOT_DIR")
    for chart, fn in CHARTS.items():
        out = fn(lg)
        fig = out if isinstance(out, plt.Figure) else out.figure
        check_layout(fig)
        if out_dir:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            fig.savefig(Path(out_dir) / f"{chart}_{name}.png", dpi=110)
        plt.close(fig)


@pytest.mark.slow
def test_untrusted_names_are_drawn_literally():
    """Stage and segment names are CRM input: ``$`` must not switch on math mode."""
    stages = ["$1M+ deals", r"Budget $\frac{$ 50k", "<script>alert(1)</script>"]
    ev = fk.datasets.synthetic(150, seed=1, stages=stages, teams=["$A$", "B"])
    lg = fk.EventLog(
        ev,
        stages=stages,
        won="Won",
        lost=["Lost", "Disqualified"],
        attrs=["team"],
        amount="amount",
    )
    for fn in CHARTS.values():
        out = fn(lg)
        fig = out if isinstance(out, plt.Figure) else out.figure
        check_layout(fig)  # draws: a stray "$" would fail to parse or render as math
        plt.close(fig)
    ax = fp.funnel(lg)
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == [
        r"\$1M+ deals",
        r"Budget \$\frac{\$ 50k",
    ]
