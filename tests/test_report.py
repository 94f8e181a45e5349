"""`funnelkit.report`: the Report object, its files, escaping, CSV safety, atomic writes,
and the page in a real headless browser."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit import _report_html as H
from funnelkit import _stats
from funnelkit import report as R

SCRIPT = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://x","click")'
CHROMIUM = Path("/usr/bin/chromium")


def sample_log(**kw) -> fk.EventLog:
    return fk.EventLog(fk.datasets.load_sample(), **{**fk.datasets.SAMPLE_KWARGS, **kw})


@pytest.fixture(scope="module")
def log() -> fk.EventLog:
    return sample_log()


@pytest.fixture(scope="module")
def evil(tmp_path_factory):
    """The sample with CRM strings that are markup, formulas and math-mode text."""
    ev = fk.datasets.load_sample()
    names = {"Demo": SCRIPT, "Proposal": FORMULA, "Lead": "$5 deals & up"}
    ev["stage"] = ev["stage"].replace(names)
    ev["team"] = ev["team"].replace({"Team C": "-2+3", "Team A": "@SUM(A1)"})
    ev["deal_id"] = ev["deal_id"].replace({"D000001": "+cmd|' /C calc'!A0"})
    kw = dict(fk.datasets.SAMPLE_KWARGS)
    kw["stages"] = [names.get(s, s) for s in kw["stages"]]
    lg = fk.EventLog(ev, **kw)
    rep = R.build_report(lg, by="team", key_kwargs={"n_boot": 50})
    out = rep.save(tmp_path_factory.mktemp("evil") / "report")
    return lg, rep, out


def test_forecast_beside_the_tables_changes_nothing(monkeypatch):
    """The forecast per month and the tables that need neither the key stages nor the
    notes run on a second thread where there are two cores: the tables, the forecast, the
    notes and the progress steps are those of computing everything in turn (one core), in
    the same order."""
    lg = sample_log()  # its own log: nothing cached by another test
    middle = lg.deals()["first_event"].sort_values().iloc[300]
    kw = dict(by="team", period=middle, charts=False, key_kwargs={"n_boot": 0})
    steps: dict[int, list[str]] = {2: [], 1: []}
    monkeypatch.setattr(R, "_usable_cores", lambda: 2)
    beside = R.build_report(lg, progress=steps[2].append, **kw)
    monkeypatch.setattr(R, "_usable_cores", lambda: 1)
    in_turn = R.build_report(sample_log(), progress=steps[1].append, **kw)
    assert steps[2] == steps[1] and "comparisons…" in steps[1]
    assert list(beside.tables) == list(in_turn.tables)
    assert {"forecast_periods", "compare_by", "compare_period", "trend"} <= set(beside.tables)
    for name, table in beside.tables.items():
        pd.testing.assert_frame_equal(table, in_turn.tables[name], obj=name)
    assert beside.notes == in_turn.notes


def test_an_error_beside_the_forecast_does_not_wait_for_it(monkeypatch):
    """A mistake found while the forecast runs on its thread comes back at once: the
    forecast (which cannot be stopped) is left to finish, the caller is not held."""
    import threading

    release, finished = threading.Event(), []

    def slow_forecast(log, notes):
        release.wait(60)
        finished.append(True)

    monkeypatch.setattr(R, "_usable_cores", lambda: 2)
    monkeypatch.setattr(R, "_month_forecast", slow_forecast)
    try:
        with pytest.raises(fk.InvalidParameterError, match="not a carried attribute"):
            R.build_report(sample_log(), by="nope", charts=False)
        assert not finished  # raised while the forecast was still running
    finally:
        release.set()


def test_a_stuck_job_beside_does_not_hold_the_interpreters_exit():
    """After an error on the main thread, the process exits even though the job on the
    second thread never ends (a daemon thread: an executor's worker would be joined at
    exit — a Ctrl-C during the key stages once hung `funnelkit report` that way)."""
    code = (
        "import threading, funnelkit as fk\n"
        "from funnelkit import report as R\n"
        "R._usable_cores = lambda: 2\n"
        "R._month_forecast = lambda log, notes: threading.Event().wait()\n"
        "log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)\n"
        "try:\n"
        "    R.build_report(log, by='nope', charts=False)\n"
        "except fk.InvalidParameterError:\n"
        "    print('raised')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "raised"


@pytest.mark.slow
def test_tables_are_the_librarys_and_saved_files_read_back(evil):
    lg, rep, out = evil
    expect = {
        "kpis": lg.kpis(),
        "funnel": lg.funnel(),
        "funnel_strict": lg.funnel(skips="strict"),
        "key_stages": lg.key_stages(by=["team"], n_boot=50),
        "transitions": lg.transitions(),
        "dwell": lg.dwell(),
        "cycle_time": lg.cycle_time(),
        "funnel_by": lg.funnel(by="team"),
        "deals": lg.deals(),
        "quality": lg.quality.to_frame(),
    }
    for name, table in expect.items():
        pd.testing.assert_frame_equal(rep.tables[name], table, obj=name)
        # in the files, durations are float days in `<column>_days` (see the next test)
        in_files = R._days_columns(table)
        parquet = pd.read_parquet(out / "tables" / f"{name}.parquet")
        pd.testing.assert_frame_equal(parquet, in_files, obj=name)
        if name == "deals":  # per-deal: Parquet only by default (csv="small")
            assert not (out / "tables" / "deals.csv").exists()
            continue
        csv = pd.read_csv(out / "tables" / f"{name}.csv")
        assert list(csv.columns) == list(in_files.columns) and len(csv) == len(table)
    assert sorted(p.stem for p in (out / "tables").glob("*.parquet")) == sorted(rep.tables)
    small = sorted(set(rep.tables) - set(R.PER_DEAL_TABLES))
    assert sorted(p.stem for p in (out / "tables").glob("*.csv")) == small
    assert set(rep.tables) <= set(R.TABLE_NAMES) and set(rep.charts) <= set(R.CHART_NAMES)
    rej = rep.tables["rejects"]
    assert dict(zip(rej["reason"], rej["rows"], strict=True)) == lg.quality.by_reason
    ex = rep.tables["reject_examples"]
    assert set(ex["reason"]) == set(lg.quality.by_reason)
    assert ex.groupby("reason").size().max() <= R.EXAMPLES_PER_REASON
    assert set(ex["row"]) <= set(lg.rejects["row"])


def test_files_hold_durations_as_days_and_dates_as_dates(tmp_path, log):
    """Files used to hold `63 days 19:11:21` and `2024-01-01 00:00:00+00:00`."""
    rep = R.build_report(log, charts=False, key_kwargs={"n_boot": 0})
    out = rep.save(tmp_path / "r")
    kpis = pd.read_csv(out / "tables" / "kpis.csv")
    want = log.kpis()["median_won_cycle_time"].iloc[0] / pd.Timedelta(days=1)
    assert kpis["median_won_cycle_time_days"].iloc[0] == pytest.approx(want)  # 63.7995...
    assert "median_won_cycle_time" not in kpis.columns
    tr = pd.read_parquet(out / "tables" / "transitions.parquet")
    assert {"dwell_mean_days", "dwell_median_days", "dwell_p90_days"} <= set(tr.columns)
    assert tr["dwell_mean_days"].dtype == np.float64 and tr["dwell_mean_days"].notna().any()
    np.testing.assert_allclose(
        tr["dwell_mean_days"], log.transitions()["dwell_mean"] / pd.Timedelta(days=1)
    )
    dwell = pd.read_csv(out / "tables" / "dwell.csv")
    assert list(dwell.columns) == [
        "stage",
        "visits",
        "censored",
        "mean_days",
        "median_days",
        "p75_days",
        "p90_days",
        *(f"{c}_days" for c, _ in _stats.CI_COLUMNS),  # the 95% intervals, after
    ]
    for f in (out / "tables").glob("*.csv"):
        text = f.read_text(encoding="utf-8")
        assert not re.search(r"\d days \d\d:\d\d", text), f.name  # no timedelta text
        assert "00:00:00+00:00" not in text, f.name
    trend = pd.read_csv(out / "tables" / "trend.csv", dtype=str)
    assert trend["period_start"].iloc[0] == "2024-01-01"  # midnight: a date
    assert trend["reached_by"].iloc[0] == "2025-04-21T00:11:36+00:00"  # a time: ISO 8601
    deals = pd.read_parquet(out / "tables" / "deals.parquet")  # times stay typed
    assert str(deals["first_event"].dtype).startswith("datetime64")
    assert deals["cycle_time_days"].dtype == np.float64


def test_page_shows_dates_and_rounded_durations(log):
    rep = R.build_report(log, charts=False, key_kwargs={"n_boot": 0})
    page = rep.to_html()
    assert not re.search(r"\d days \d\d:\d\d", page)
    assert "00:00:00+00:00" not in page  # (rejected input rows are shown as they came)
    assert "<td class='num'>14.1 days</td>" in page  # Discovery's mean dwell
    assert "<div class='v'>63.8 days</div>" in page  # median won cycle time card
    assert "<td>1 Jan 2024</td>" in page  # a trend period start (midnight)
    assert "<td>21 Apr 2025, 00:11 UTC</td>" in page  # a reached_by time
    assert "<td>Q1 2024</td>" in page  # a period label
    assert [H._duration(pd.Timedelta(x)) for x in ("14D2h", "3h12min", "12min", "40s")] == [
        "14.1 days",
        "3.2 h",
        "12 min",
        "40 s",
    ]


@pytest.mark.slow
def test_one_page_one_number_each(tmp_path):
    """The flow chart counted 623 Lead visits where log.visits() has 629; the win rate card
    sat beside another 'win probability'; one comparison had two q-values, unexplained."""
    lg = sample_log()
    rep = R.build_report(lg, by="team", key_kwargs={"n_boot": 50})
    visits = lg.visits()["stage"].value_counts()
    ticks = [t.get_text() for t in rep.charts["flow"].axes[0].texts if t.get_gid() == "flow-stage"]
    assert ticks[0] == f"Lead\n{visits['Lead']}" == "Lead\n629"
    page = rep.to_html().replace("<wbr>", "")  # headers may wrap after an underscore
    assert "win rate (won ÷ resolved deals)" in page
    assert "always means won ÷ resolved deals (won + lost + stale)" in page  # one definition
    assert "It is not the win rate (11.1%, won ÷ resolved deals)" in page
    assert "another figure, the <b>overall win probability</b> (12.3%)" in page
    assert "<th>q_value (two-sided)</th>" in page and "<th>sided</th>" in page
    assert "<td>one-sided z test, q &lt; 0.0001</td>" in page  # Demo's drop-off in Team C (table)
    ks = rep.tables["key_stages"]
    tested = ks.loc[ks["test"] != "none"]
    sides = tested.groupby("signal")["alternative"].agg(lambda a: set(a)).to_dict()
    assert sides == {
        "leverage": {""},
        "dropoff": {"greater"},
        "stall": {"less"},
        "heterogeneity": {"two-sided"},
        "dwell": {"two-sided"},
    }
    # key stages' drop-off tests the same Aalen-Johansen estimates as compare_by, one-
    # sided: its effect is compare_by's rest_conversion - conversion exactly, and twice
    # its p is compare_by's two-sided p up to the variance each takes (key stages: at the
    # value tested, Wald on effective counts; compare: the estimate's own variance)
    cmp = rep.tables["compare_by"].set_index(["team", "stage"])
    d = ks.loc[(ks["signal"] == "dropoff") & (ks["test"] == "z")]
    d = d.rename(columns={"segment": "team"}).set_index(["team", "stage"])
    both = d[["effect", "p_value"]].join(cmp.add_suffix("_cmp"), how="inner")
    assert len(both) >= 10
    np.testing.assert_allclose(
        both["effect"],
        both["rest_conversion_cmp"] - both["conversion_cmp"],
        rtol=1e-12,
        atol=1e-15,
    )
    up = both.loc[(both["effect"] > 0) & (both["test_cmp"] == "z")]
    assert len(up) >= 4
    from scipy.stats import norm  # on the z scale: tiny p-values agree in z, not in ratio

    np.testing.assert_allclose(norm.isf(up["p_value"]), norm.isf(up["p_value_cmp"] / 2), atol=0.15)


@pytest.mark.slow  # shares its siblings' fixture (several seconds to build)
def test_html_escapes_every_data_string(evil):
    _, rep, out = evil
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;http://x&quot;" in page and "$5 deals &amp; up" in page
    assert page.count("<img") == len(rep.charts) >= 7
    for svg in (out / "charts").glob("*.svg"):
        assert "<script" not in svg.read_text(encoding="utf-8").lower()
    assert "<script" not in rep._repr_html_().lower()


@pytest.mark.slow  # over 1 s: the main suite runs it, CI's pandas 2.2 leg does not
def test_csv_cells_cannot_become_formulas(evil, tmp_path):
    lg, rep, _ = evil
    out = rep.save(tmp_path / "all", csv="all")
    raw = pd.read_csv(out / "tables" / "funnel.csv", dtype=str)
    assert "'" + FORMULA in set(raw["stage"]) and SCRIPT in set(raw["stage"])
    by = pd.read_csv(out / "tables" / "funnel_by.csv", dtype=str)
    assert {"'-2+3", "'@SUM(A1)", "Team B"} == set(by["team"])
    deals = pd.read_csv(out / "tables" / "deals.csv", dtype=str)
    assert "'+cmd|' /C calc'!A0" in set(deals["deal"])
    # numbers are not text: negative effects stay numbers
    ks = pd.read_csv(out / "tables" / "key_stages.csv")
    assert ks["effect"].dtype == float and (ks["effect"] < 0).any()
    for f in (out / "tables").glob("*.csv"):
        cells = pd.read_csv(f, dtype=str, keep_default_na=False).to_numpy().ravel()
        text = [c for c in cells if c[:1] in ("=", "+", "@")]
        assert not text, (f.name, text[:3])
    # Parquet keeps the values as they are
    assert "+cmd|' /C calc'!A0" in set(pd.read_parquet(out / "tables" / "deals.parquet")["deal"])


@pytest.mark.parametrize("csv", ["small", "all", "none"])
def test_parquet_first_csv_as_asked_and_the_page_links_what_exists(log, tmp_path, csv):
    rep = R.build_report(log, charts=False, key_kwargs={"n_boot": 0})
    out = rep.save(tmp_path / csv, csv=csv)
    parquet = sorted(p.stem for p in (out / "tables").glob("*.parquet"))
    csvs = sorted(p.stem for p in (out / "tables").glob("*.csv"))
    assert parquet == sorted(rep.tables)
    want = {"all": sorted(rep.tables), "none": []}.get(csv, sorted(set(rep.tables) - {"deals"}))
    assert csvs == want
    s = json.loads((out / "summary.json").read_text())
    assert s["csv"] == csv
    written = sorted(str(p.relative_to(out)) for p in (out / "tables").iterdir())
    assert sorted(f for fs in s["files"]["tables"].values() for f in fs) == written
    page = (out / "report.html").read_text(encoding="utf-8")
    for f in written:
        assert f"href='{f}'" in page
    assert ("href='tables/deals.csv'" in page) == (csv == "all")
    with pytest.raises(ValueError, match="`csv` must be one of"):
        rep.save(tmp_path / "bad", csv="some")


@pytest.mark.slow
def test_the_report_caps_charts_and_says_so(tmp_path):
    events = fk.datasets.synthetic(2000, seed=6)
    codes = events["deal_id"].astype("category").cat.codes.to_numpy()
    events["seg"] = np.char.add("s", (codes % 300).astype(str))  # 300 segments
    events.loc[codes < 400, "seg"] = "big"  # one segment by far the largest
    lg = fk.EventLog(
        events, deal="deal_id", stage="stage", time="ts", won="Won",
        lost=["Lost", "Disqualified"], attrs=["seg"],
    )  # fmt: skip
    rep = R.build_report(lg, by="seg", key_kwargs={"n_boot": 20, "min_deals": 30})
    n_seg = lg.deals()["seg"].nunique()
    ks = rep.tables["key_stages"]
    lim = rep.summary["limits"]
    assert lim["segments_chart"] == {"segments": n_seg, "drawn": R.SEGMENTS_DRAWN}
    # the chart draws what fits its box (at most KEY_ROWS_DRAWN); the report says how many
    from funnelkit.plot._keystages import ROWS_DRAWN

    (chart_rows,) = [ROWS_DRAWN[a] for a in rep.charts["key_stages"].axes if a in ROWS_DRAWN]
    n_key = chart_rows[0]
    assert 0 < n_key <= R.KEY_ROWS_DRAWN and n_key < chart_rows[1] <= len(ks)
    assert lim["key_stages_chart"] == {"rows": len(ks), "drawn": n_key}
    assert lim["page_table_rows"] == 200
    assert lim["segment_tests"] == {"segments": n_seg, "tested": 1, "min_deals": 30}
    tested = ks.loc[(ks["signal"] == "dropoff") & (ks["test"] != "none"), "segment"]
    assert set(tested) == {"big"}
    # the tables keep every segment; the chart draws the largest, "big" among them
    assert rep.tables["funnel_by"]["seg"].nunique() == n_seg
    drawn = [c.get_label() for c in rep.charts["segments"].axes[0].containers]
    assert len(drawn) == R.SEGMENTS_DRAWN and "big" in drawn
    notes = " | ".join(rep.notes)
    assert f"the {R.SEGMENTS_DRAWN} largest of {n_seg:,} segments are drawn" in notes
    assert f"{n_key} of {chart_rows[1]:,} rows are drawn" in notes
    assert f"1 of {n_seg:,} segments had at least min_deals=30" in notes
    out = rep.save(tmp_path / "r")
    s = json.loads((out / "summary.json").read_text())
    assert s["limits"] == json.loads(json.dumps(lim)) and s["notes"] == rep.notes
    page = (out / "report.html").read_text(encoding="utf-8")
    for note in rep.notes:
        assert html.escape(note, quote=True) in page


def test_neutralise_csv_only_touches_text():
    df = pd.DataFrame(
        {
            "s": pd.Series(["=1", "-x", "ok", None], dtype=object),
            "c": pd.Categorical(["@a", "b", "@a", "b"]),
            "n": [-1.0, 2.0, np.nan, -3.5],
            "t": pd.to_timedelta([-1, 0, 1, 2], unit="D"),
            "=col": [1, 2, 3, 4],
        }
    )
    out = R.neutralise_csv(df)
    assert out["s"].tolist()[:3] == ["'=1", "'-x", "ok"] and out["s"].iloc[3] is None
    assert out["c"].tolist() == ["'@a", "b", "'@a", "b"]
    pd.testing.assert_series_equal(out["n"], df["n"])
    pd.testing.assert_series_equal(out["t"], df["t"])
    assert list(out.columns) == ["s", "c", "n", "t", "'=col"]


def test_summary_json_is_valid_with_missing_numbers(tmp_path):
    lg = sample_log(amount=None)  # no amount: average won amount and velocity are NaN
    rep = R.build_report(lg, charts=False, key_kwargs={"n_boot": 0})
    out = rep.save(tmp_path / "r")

    def no_nan(token):
        raise AssertionError(f"invalid JSON constant {token}")

    s = json.loads((out / "summary.json").read_text(), parse_constant=no_nan)
    assert s["avg_won_amount"] is None and s["pipeline_velocity"] is None
    q = lg.quality
    assert (s["deals"], s["won"], s["lost"], s["stale"], s["open"]) == (
        q.deals,
        q.won,
        q.lost,
        q.stale,
        q.open,
    )
    assert (s["rows_in"], s["rows_used"], s["rows_rejected"]) == (
        q.rows_in,
        q.rows_used,
        q.rows_rejected,
    )
    k = lg.kpis().iloc[0]
    assert s["win_rate"] == pytest.approx(k["win_rate"])
    assert s["median_won_cycle_time_days"] == pytest.approx(
        k["median_won_cycle_time"] / pd.Timedelta(days=1)
    )
    assert pd.Timestamp(s["as_of"]) == lg.as_of
    assert s["charts"] == [] and "report.html" in os.listdir(out)
    assert "<img" not in (out / "report.html").read_text()


def test_summary_key_stages_are_the_flagged_rows(log):
    rep = R.build_report(log, by="team", charts=False, key_kwargs={"n_boot": 50})
    ks = log.key_stages(by="team", n_boot=50)
    flagged = ks[ks["is_key"]]
    got = rep.summary["key_stages"]
    assert [(k["stage"], k["signal"]) for k in got] == list(
        zip(flagged["stage"], flagged["signal"], strict=True)
    )
    assert all(set(k) >= {"stage", "signal", "effect", "q_value", "reason"} for k in got)
    assert got[-1]["segment"] == "Team C" and got[0]["q_value"] is None  # leverage: no test
    page = rep.to_html()
    for reason in flagged["reason"]:  # every key-stage reason is on the page, escaped
        assert html.escape(reason) in page
    order = ["summary", "act-on", "kpis", "key-stages", "funnel"]
    assert [page.index(f"id='{a}'") for a in order] == sorted(
        page.index(f"id='{a}'") for a in order
    )
    assert page.index("id='key-stages'") < page.index("id='flow'") < page.index("id='quality'")


@pytest.mark.slow
def test_jupyter_view_does_not_recompute(log, monkeypatch):
    rep = R.build_report(log, key_kwargs={"n_boot": 20})

    def boom(*args, **kwargs):
        raise AssertionError("recomputed")

    for name in ("funnel", "key_stages", "transitions", "dwell", "kpis", "visits", "deals"):
        monkeypatch.setattr(fk.EventLog, name, boom)
    view = rep._repr_html_()
    assert view.count("<img") == 1 and "Cutting Proposal" in view
    assert "body{" not in view  # page-only styles stay out of the notebook
    assert repr(rep).startswith("<funnelkit Report: 600 deals")
    assert f"{len(rep.tables)} tables, {len(rep.charts)} charts" in repr(rep)
    assert rep.chart_bytes("funnel") is rep.chart_bytes("funnel")  # rendered once
    with pytest.raises(ValueError, match="fmt"):
        rep.chart_bytes("funnel", "jpg")


def test_progress_reports_steps(log):
    steps: list[str] = []
    R.build_report(log, charts=False, key_kwargs={"n_boot": 0}, progress=steps.append)
    assert steps[0] == "tables…" and "key stages…" in steps


@pytest.mark.slow
def test_comparisons_and_trend_when_the_library_has_them(log, tmp_path):
    """Stand-ins with the monitoring tables' shape, until EventLog.compare/trend land."""
    lg = sample_log()
    seg = lg.funnel(by="team")[["team", "stage", "reached", "conversion"]]
    compare_by = seg.assign(difference=0.01, q_value=0.5, differs=seg["stage"] == "Demo")
    before_after = lg.funnel()[["stage", "conversion"]].assign(period="after", differs=False)
    starts = pd.date_range("2024-01-01", periods=6, freq="QS", tz="UTC")
    trend = pd.DataFrame(
        {
            "period": np.repeat([f"{d.year}Q{d.quarter}" for d in starts], 2),
            "period_start": np.repeat(starts, 2),
            "period_end": np.repeat(starts + pd.offsets.QuarterBegin(startingMonth=1), 2),
            "stage": ["Demo", "Proposal"] * 6,
            "conversion": np.linspace(0.4, 0.6, 12),
            "conversion_low": np.linspace(0.3, 0.5, 12),
            "conversion_high": np.linspace(0.5, 0.7, 12),
        }
    )
    calls: list[tuple] = []
    lg.compare = lambda **kw: (  # type: ignore[attr-defined]
        calls.append(("compare", kw)) or (compare_by if kw.get("by") else before_after)
    )
    lg.trend = lambda **kw: calls.append(("trend", kw)) or trend  # type: ignore[attr-defined]
    rep = R.build_report(lg, by="team", period="2025-01-01", freq="QE", key_kwargs={"n_boot": 0})
    assert ("compare", {"by": ["team"]}) in calls and ("trend", {"freq": "QE"}) in calls
    assert ("compare", {"period": "2025-01-01"}) in calls
    assert {"compare_by", "compare_period", "trend"} <= set(rep.tables)
    assert {"segments", "trend"} <= set(rep.charts)
    ticks = [t.get_text() for t in rep.charts["trend"].axes[0].get_xticklabels()]
    assert ticks[:2] == ["2024 Q1", "2024 Q2"]
    page = rep.to_html()
    assert "id='trend'" in page and "id='period'" in page and "Each segment against" in page
    out = rep.save(tmp_path / "r")
    pd.testing.assert_frame_equal(pd.read_parquet(out / "tables" / "trend.parquet"), trend)
    assert json.loads((out / "summary.json").read_text())["settings"]["freq"] == "QE"


@pytest.mark.slow
def test_real_comparisons_and_trend(log):
    if not (hasattr(fk.EventLog, "compare") and hasattr(fk.EventLog, "trend")):
        pytest.skip("EventLog.compare / EventLog.trend not in this funnelkit yet")
    rep = R.build_report(log, by="team", period="2025-01-01", key_kwargs={"n_boot": 0})
    pd.testing.assert_frame_equal(rep.tables["compare_by"], log.compare(by=["team"]))
    pd.testing.assert_frame_equal(rep.tables["trend"], log.trend(freq="QE"))
    assert "trend" in rep.charts


def test_sections_follow_the_options(log):
    rep = R.build_report(log, charts=False, key_kwargs={"n_boot": 0})
    assert not {"compare_by", "compare_period", "funnel_by"} & set(rep.tables)
    assert ("trend" in rep.tables) == hasattr(log, "trend")
    page = rep.to_html()
    assert "id='segments'" not in page and "id='period'" not in page
    assert ("id='trend'" in page) == hasattr(log, "trend")


# ---------------------------------------------------------------------------- writing
@pytest.fixture(scope="module")
def small(log) -> R.Report:
    return R.build_report(log, charts=False, key_kwargs={"n_boot": 0})


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_failed_write_leaves_nothing_half_written(small, tmp_path, monkeypatch):
    out = tmp_path / "report"

    def fail(*args):
        raise OSError("No space left on device")

    monkeypatch.setattr(R, "_write_summary", fail)
    with pytest.raises(OSError, match="No space"):
        small.save(out)
    assert not out.exists() and _leftovers(tmp_path) == []

    monkeypatch.undo()
    small.save(out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setattr(R, "_write_summary", fail)
    with pytest.raises(OSError):
        small.save(out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and _leftovers(tmp_path) == []


@pytest.mark.parametrize("call", [1, 2])
@pytest.mark.parametrize("after", [False, True])
def test_ctrl_c_at_any_step_of_the_swap_keeps_the_earlier_report(
    small, tmp_path, monkeypatch, call, after
):
    """Ctrl-C before or right after either move of the swap (earlier report set aside,
    new one moved in): the earlier report is back and no hidden folder is left."""
    import os

    out = tmp_path / "report"
    small.save(out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real, calls = os.replace, []

    def interrupted(src, dst):
        calls.append(1)
        if len(calls) == call and not after:
            raise KeyboardInterrupt
        real(src, dst)
        if len(calls) == call:
            raise KeyboardInterrupt

    monkeypatch.setattr(R.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        small.save(out)
    monkeypatch.undo()
    after_files = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after_files == before and _leftovers(tmp_path) == []


def test_save_replaces_only_reports_and_empty_folders(small, tmp_path):
    out = small.save(tmp_path / "a" / "b")  # parents are created
    (out / "stray.txt").write_text("old")
    small.save(out)  # an earlier report is replaced whole
    assert not (out / "stray.txt").exists() and (out / "summary.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    small.save(empty)
    other = tmp_path / "home"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="not an earlier funnelkit report"):
        small.save(other)
    assert (other / "thesis.tex").read_text() == "precious"
    with pytest.raises(FileExistsError):
        small.save(tmp_path / "home" / "thesis.tex")
    with pytest.raises(FileExistsError, match="overwrite"):
        small.save(out, overwrite=False)
    assert _leftovers(tmp_path) == []


# ---------------------------------------------------------------------------- browser
@pytest.mark.slow
def test_page_in_a_headless_browser(evil, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (CI installs Debian's chromium)")
    lg, rep, out = evil
    shot = tmp_path / "shot.png"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        f"--screenshot={shot}",
        "--window-size=1280,4000",
        "--dump-dom",
        (out / "report.html").resolve().as_uri(),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no script errors, no blocked loads
    dom = r.stdout.replace("<wbr>", "")  # headers may wrap after an underscore
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and "<script" not in dom.lower()
    key = rep.tables["key_stages"]
    reason = key.loc[key["is_key"], "reason"].iloc[0]
    assert html.escape(reason, quote=False) in dom
    assert dom.count("<img") == len(rep.charts)
    # the funnel's new estimand is said in the page as rendered: settled here, the closed
    # ratio beside the estimate, and the incidence chart of the key stages below the table
    assert "Every stage has settled." in dom and "<th>conversion_closed</th>" in dom
    assert dom.index("<th>conversion_closed</th>") < dom.index('alt="Share of deals entering')
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


@pytest.mark.slow
def test_a_chart_that_cannot_be_drawn_is_a_note(log, monkeypatch):
    import matplotlib.pyplot as plt

    def nothing(*args, **kwargs):
        plt.figure()  # a half-made figure must not be left open
        raise ValueError("The transition table is empty: nothing to draw.")

    monkeypatch.setattr(fk.plot, "heatmap", nothing)
    mine = plt.figure()
    rep = R.build_report(log, key_kwargs={"n_boot": 0})
    assert "heatmap" not in rep.charts and "flow" in rep.charts
    assert rep.notes == [
        "chart `heatmap` not drawn: The transition table is empty: nothing to draw."
    ]
    assert "nothing to draw" in rep.to_html()
    assert plt.get_fignums() == [mine.number]  # the caller's figure is left alone


@pytest.mark.slow
def test_tables_only_report_never_imports_matplotlib():
    code = (
        "import sys, funnelkit as fk; from funnelkit.report import build_report; "
        "log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS); "
        "r = build_report(log, charts=False, key_kwargs={'n_boot': 0}); r.to_html(); "
        "print('matplotlib' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_log_of_terminal_events_only_says_there_are_no_stage_visits(tmp_path):
    # before: ValueError "need at least one array to stack" from key_stages
    events = pd.DataFrame({"d": list("abc"), "s": ["won", "lost", "won"], "t": ["2025-01-01"] * 3})
    log = fk.EventLog(events, deal="d", stage="s", time="t", won="won", lost="lost")
    report = R.build_report(log)
    assert report.summary["won"] == 2 and report.summary["lost"] == 1
    assert report.notes[0] == R.NO_VISITS
    assert report.tables["key_stages"].empty
    out = report.save(tmp_path / "report")
    page = (out / "report.html").read_text()
    assert "No stage visits: every deal in this log has only won/lost events" in page
    assert json.loads((out / "summary.json").read_text())["notes"][0] == R.NO_VISITS
    normal = R.build_report(sample_log(), charts=False, key_kwargs={"n_boot": 0})
    assert R.NO_VISITS not in normal.notes and "No stage visits" not in normal.to_html()


def test_save_removes_what_killed_writers_left_behind(small, tmp_path):
    # before: each kill while writing left a hidden .<out>.tmp-XXXX folder for good
    out = tmp_path / "report"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)  # a process that has exited: no writer any more
    host = R._HOST
    names = {
        "dead_tmp": f".report.tmp-{host}-{dead_pid}-0123abcd",
        "dead_old": f".report.old-{host}-{dead_pid}-89abcdef",
        "live": f".report.tmp-{host}-{os.getpid()}-00000000",  # this process writes it
        "other_host": f".report.tmp-00000000-{dead_pid}-11111111",
        "legacy_old": ".report.tmp-22222222",
        "legacy_new": ".report.tmp-33333333",
        "other_output": f".report2.tmp-{host}-{dead_pid}-44444444",
        "not_ours": f".report.tmp-{host}-{dead_pid}-notours!",
    }
    for name in names.values():
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.html").write_text("half")
    day_ago = time.time() - R.STALE_LEGACY_SECONDS - 60
    os.utime(tmp_path / names["legacy_old"], (day_ago, day_ago))
    small.save(out)
    left = {p.name for p in tmp_path.iterdir()}
    gone = {"dead_tmp", "dead_old", "legacy_old"}
    assert left == {"report"} | {n for k, n in names.items() if k not in gone}
    assert (out / "summary.json").exists()


# ---------------------------------------------------------------------------- not settled yet
@pytest.fixture(scope="module")
def young():
    """2,000 deals created over 2.5 months (docs/concepts/censoring.md): every stage
    still has deals open, so the conversions are not settled yet."""
    ev = fk.datasets.synthetic(2000, seed=0, p_skip=0.0, start="2025-01-01", end="2025-03-15")
    lg = fk.EventLog(ev, **fk.datasets.SAMPLE_KWARGS)
    return lg, R.build_report(lg, key_kwargs={"n_boot": 0})


def _funnel_table_html(page: str) -> str:
    """The page's main funnel table (the strict one follows in a <details>)."""
    start = re.search(r"id=['\"]funnel['\"]", page).start()  # a browser's DOM: "funnel"
    return page[start : page.index("</table>", start)].replace("<wbr>", "")


@pytest.mark.slow
def test_funnel_table_shows_unresolved_and_the_range_where_not_settled(young, tmp_path):
    lg, rep = young
    f = lg.funnel()
    assert (f["unresolved"] >= 0.0005).all()
    page = rep.to_html()
    funnel = _funnel_table_html(page)
    heads = re.findall(r"<th>([^<]*)</th>", funnel)
    assert heads == [
        "stage",
        "reached",
        "advanced",
        "dropped",
        "open",
        "conversion",
        "conversion_low",
        "conversion_high",
        "unresolved",
        "not settled yet",
        "conversion_closed",
        "cumulative",
        "win_rate_from",
    ]
    rows = re.findall(r"<tr(?: class='key')?>(.*?)</tr>", funnel)[1:]
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", r) for r in rows]
    for row, cell in zip(f.itertuples(), cells, strict=True):
        assert cell[8] == f"{100 * row.unresolved:.1f}%"
        assert cell[9] == (
            f"Not settled yet: {100 * row.conversion_low:.0f}–{100 * row.conversion_high:.0f}%"
        )
        assert cell[10] == f"{100 * row.conversion_closed:.1f}%"
    assert cells[4][9] == "Not settled yet: 31–87%"  # Proposal: 0.3073 – 0.8690
    assert cells[4][8] == "24.3%" and cells[4][10] == "67.4%"  # 0.2427; 93 / 138
    # summary.json: the same numbers, and which stages are settled
    out = rep.save(tmp_path / "r")
    s = json.loads((out / "summary.json").read_text())
    assert [r["stage"] for r in s["funnel"]] == f["stage"].tolist()
    for r, row in zip(s["funnel"], f.itertuples(), strict=True):
        assert (r["reached"], r["advanced"], r["dropped"], r["open"]) == (
            row.reached,
            row.advanced,
            row.dropped,
            row.open,
        )
        for c in ("conversion", "conversion_low", "conversion_high", "unresolved"):
            assert r[c] == pytest.approx(getattr(row, c), abs=1e-15)
        assert r["conversion_closed"] == pytest.approx(row.advanced / (row.advanced + row.dropped))
        assert r["settled"] is False
    assert s["funnel"] == rep.summary["funnel"]


def test_settled_funnel_table_has_no_unresolved_column(log):
    rep = R.build_report(log, charts=False, key_kwargs={"n_boot": 0})
    f = log.funnel()
    assert (f["unresolved"] == 0).all()
    funnel = _funnel_table_html(rep.to_html())
    assert "unresolved" not in funnel and "Not settled yet" not in funnel
    assert "<th>conversion_closed</th>" in funnel
    assert "Every stage has settled." in funnel
    assert [r["settled"] for r in rep.summary["funnel"]] == [True] * len(f)
    assert [r["conversion"] for r in rep.summary["funnel"]] == f["conversion"].tolist()
    # one stage just past the threshold: the column and that stage's range, no other
    t = f.assign(unresolved=[0.0, 0.0, 0.0004, 0.0005, 0.0, 0.0])
    notes = H.not_settled(t).tolist()
    low, high = f.loc[3, "conversion_low"], f.loc[3, "conversion_high"]
    assert notes == ["", "", "", f"Not settled yet: {100 * low:.0f}–{100 * high:.0f}%", "", ""]
    assert notes[3] == "Not settled yet: 54–64%"  # Demo: 0.5375 – 0.6449
    html_ = "".join(H._funnel_table(t, set()))
    assert "<th>unresolved</th>" in html_ and html_.count("Not settled") == 1


@pytest.mark.slow
def test_incidence_chart_of_the_headline_stages(young, log):
    # the key stages, in funnel order
    rep = R.build_report(log, key_kwargs={"n_boot": 50})
    ks = rep.tables["key_stages"]
    flagged = set(ks.loc[ks["is_key"], "stage"])
    heads = R.headline_stages(rep.tables["funnel"], ks)
    assert heads == [s for s in log.stages if s in flagged][: R.INCIDENCE_DRAWN]
    assert heads == ["Demo", "Proposal"]
    assert list(rep.charts) == [n for n in R.CHART_NAMES if n in rep.charts]  # page order
    fig = rep.charts["incidence"]
    assert [a.get_title() for a in fig.axes] == ["Deals entering Demo", "Deals entering Proposal"]
    assert [a.get_legend() is not None for a in fig.axes] == [True, False]  # one legend
    assert rep.summary["limits"]["incidence_chart"] == {"stages": heads}
    # each panel is the stage's incidence curve (log.incidence), its last step exact
    for ax, stage in zip(fig.axes, heads, strict=True):
        last = log.incidence(stage).iloc[-1]
        (hi,) = [ln for ln in ax.lines if ln.get_gid() == "incidence-ci"][1:]
        assert hi.get_ydata()[-1] == last["advanced_high"]
        # and, at the right edge, the funnel's conversion with its interval
        (fci,) = [c for c in ax.containers if c.lines[0].get_gid() == "incidence-funnel-ci"]
        row = rep.tables["funnel"].set_index("stage").loc[stage]
        assert fci.lines[0].get_ydata()[0] == row["conversion"]
        assert row["conversion"] == pytest.approx(last["advanced"], abs=1e-14)  # the curve's end
        (seg,) = fci.lines[2][0].get_segments()
        np.testing.assert_allclose(
            [seg[0][1], seg[1][1]], [row["conversion_low"], row["conversion_high"]], rtol=1e-12
        )
        assert seg[0][0] == ax.get_xlim()[1]
    assert "Share of deals entering a stage" in rep.to_html()
    # no key stage: the stage with the lowest conversion
    lg, young_rep = young
    f = lg.funnel()
    assert not young_rep.tables["key_stages"]["is_key"].any()
    assert young_rep.summary["limits"]["incidence_chart"] == {"stages": ["Proposal"]}
    assert f.loc[f["conversion"].idxmin(), "stage"] == "Proposal"  # 0.5864 < 0.5945
    none = ks.assign(is_key=False)
    assert R.headline_stages(f.assign(conversion=np.nan), none) == []


@pytest.mark.slow
def test_chinese_stage_names_reach_the_page_and_the_charts(tmp_path):
    """CRM exports in Chinese: the names are text on the page and in the charts' labels
    (whether the glyphs show depends on the fonts installed: DejaVu Sans has none)."""
    names = {
        "Lead": "线索",
        "Qualified": "合格",
        "Discovery": "需求分析",
        "Demo": "演示",
        "Proposal": "报价",
        "Negotiation": "谈判",
    }
    ev = fk.datasets.load_sample()
    ev["stage"] = ev["stage"].replace(names)
    kw = dict(fk.datasets.SAMPLE_KWARGS)
    kw["stages"] = [names[s] for s in kw["stages"]]
    lg = fk.EventLog(ev, **kw)
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Glyph", UserWarning)  # no CJK font installed
        rep = R.build_report(lg, key_kwargs={"n_boot": 0})
        out = rep.save(tmp_path / "r")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "线索 → 合格 → 需求分析 → 演示 → 报价 → 谈判" in page
    funnel_ax = rep.charts["funnel"].axes[0]
    assert [t.get_text() for t in funnel_ax.get_yticklabels()] == kw["stages"]
    inc = rep.charts["incidence"].axes[0].get_title()
    assert inc.startswith("Deals entering ") and inc[len("Deals entering ") :] in kw["stages"]
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [r["stage"] for r in s["funnel"]] == kw["stages"]


@pytest.mark.slow
def test_unsettled_funnel_in_a_headless_browser(young, tmp_path):
    """The young log's page as a browser renders it: the range where the answer lies."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (CI installs Debian's chromium)")
    _, rep = young
    out = rep.save(tmp_path / "r")
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        (out / "report.html").resolve().as_uri(),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    funnel = _funnel_table_html(r.stdout)
    assert "<td>Not settled yet: 31–87%</td>" in funnel  # Proposal
    assert funnel.count("Not settled yet:") == 6 and "<th>unresolved</th>" in funnel
    assert "the answer lies in the range given" in funnel
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_no_conversion_yet_means_no_incidence_chart_and_a_note():
    ev = pd.DataFrame({"d": ["a", "b"], "s": ["A", "A"], "t": ["2025-01-01", "2025-01-02"]})
    lg = fk.EventLog(ev, deal="d", stage="s", time="t", stages=["A", "B"], won="won", lost="lost")
    with pytest.warns(fk.errors.FunnelkitWarning, match="conversion is NaN"):
        rep = R.build_report(lg, key_kwargs={"n_boot": 0})
    assert "incidence" not in rep.charts and "funnel" in rep.charts
    assert "chart `incidence` not drawn: no stage has a conversion yet" in rep.notes
    assert rep.summary["funnel"][0]["conversion"] is None
    assert rep.summary["funnel"][0]["settled"] is None
