"""Alerts: hand-built weeks with known counts, thresholds, the CLI's exit code, and the
false-alert rate on stable synthetic logs (CI-sized; the full study is
benchmarks/alerts.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import funnelkit as fk
from funnelkit.alerts import ALERT_COLUMNS

MONDAY = pd.Timestamp("2025-01-06", tz="UTC")  # a Monday
KW = dict(deal="deal", stage="stage", time="ts", stages=["A", "B"], won="W", lost="L")


def weekly_log(advances: list[int], per_week: int = 10, stalled_b: int = 0) -> fk.EventLog:
    """Week k: ``per_week`` deals enter A on Monday 09:00 and leave it on Wednesday
    (``advances[k]`` to B, the rest lost); at B they are won on Thursday. ``stalled_b``
    deals enter B in week 0 and stay. as_of: the Monday after the last week."""
    rows = []
    for k, adv in enumerate(advances):
        mon = MONDAY + pd.Timedelta(weeks=k, hours=9)
        for i in range(per_week):
            d = f"w{k:02d}-{i:02d}"
            rows.append((d, "A", mon))
            if i < adv:
                rows.append((d, "B", mon + pd.Timedelta(days=2)))
                rows.append((d, "W", mon + pd.Timedelta(days=3)))
            else:
                rows.append((d, "L", mon + pd.Timedelta(days=2)))
    for i in range(stalled_b):
        rows.append((f"s{i}", "B", MONDAY + pd.Timedelta(hours=10)))
    ev = pd.DataFrame(rows, columns=["deal", "stage", "ts"])
    as_of = MONDAY + pd.Timedelta(weeks=len(advances))
    return fk.EventLog(ev, as_of=as_of, **KW)


def test_conversion_drop_by_hand():
    """30 weeks of 8 in 10 advancing, then a week of 2 in 10: the week's advances are
    beta-binomial under the 26 baseline weeks (the two weeks before the checked one are
    left out of the baseline); the one-week and two-week tests each at alpha / 2."""
    adv = [8] * 30 + [2]
    log = weekly_log(adv)
    a = log.alerts(baseline=26)
    assert set(a["week"]) == {MONDAY + pd.Timedelta(weeks=30)}
    conv = a[(a["rule"] == "conversion") & (a["stage"] == "A")].set_index("window")
    x0, n0 = 8 * 26, 10 * 26
    one = conv.loc["1W"]
    assert one["value"] == pytest.approx(0.2) and one["n"] == 10
    assert one["expected"] == pytest.approx((x0 + 0.5) / (n0 + 1))
    p = stats.betabinom.cdf(2, 10, x0 + 0.5, n0 - x0 + 0.5)
    assert one["p_value"] == pytest.approx(p) and p < 0.005
    assert one["alert"] and "A: conversion 20.0% over 10" in one["message"]
    two = conv.loc["2W"]  # weeks 29 and 30 pooled: 10 of 20
    assert two["value"] == pytest.approx(0.5) and two["n"] == 20
    assert two["p_value"] == pytest.approx(stats.betabinom.cdf(10, 20, x0 + 0.5, n0 - x0 + 0.5))
    # the limit: the largest share that fires
    k = one["limit"] * 10
    assert stats.betabinom.cdf(k, 10, x0 + 0.5, n0 - x0 + 0.5) < 0.005
    assert stats.betabinom.cdf(k + 1, 10, x0 + 0.5, n0 - x0 + 0.5) >= 0.005
    # B: every deal that reached it was won: nothing fires there
    assert not a[a["stage"] == "B"]["alert"].any()
    # a steady week does not fire
    steady = weekly_log([8] * 31).alerts()
    assert not steady["alert"].any()


def test_stalled_deals_by_hand():
    """B's completed dwell is exactly one day, so its p90 is one day: the deals that
    entered B in week 0 and stayed are stalled at every week's end; a jump fires."""
    base = weekly_log([8] * 30, stalled_b=0)
    assert not base.alerts()["alert"].any()
    log = weekly_log([8] * 30, stalled_b=3)
    st = log.alerts(weeks=3)
    st = st[(st["rule"] == "stalled") & (st["stage"] == "B")]
    assert (st["value"] == 3).all() and (st["expected"] == 3).all()
    assert not st["alert"].any()  # the same three every week: nothing new
    ev = log._source.copy()
    extra = pd.DataFrame(
        {
            "deal": [f"late{i}" for i in range(6)],
            "stage": "B",
            "ts": MONDAY + pd.Timedelta(weeks=27, hours=11),  # stalled by week 28's end
        }
    )
    log2 = fk.EventLog(pd.concat([ev, extra], ignore_index=True), as_of=log.as_of, **KW)
    s2 = log2.alerts()
    row = s2[(s2["rule"] == "stalled") & (s2["stage"] == "B")].iloc[0]
    assert row["value"] == 9 and row["alert"]
    assert "9 open deals past 1 days" in row["message"]


def test_bad_rows_rise_fires():
    log = weekly_log([8] * 31)
    ev = log._source.copy()
    last = MONDAY + pd.Timedelta(weeks=30)
    junk = pd.DataFrame(
        {
            "deal": [f"j{i}" for i in range(8)],
            "stage": "Nowhere",
            "ts": last + pd.Timedelta(hours=1),
        }
    )
    kw = {**KW, "errors": "drop"}
    bad = fk.EventLog(pd.concat([ev, junk], ignore_index=True), as_of=log.as_of, **kw)
    a = bad.alerts()
    row = a[(a["rule"] == "bad_rows") & (a["window"] == "1W")].iloc[0]
    week_rows = 10 * 2 + 8 * 1 + 8  # A + (B, W) or L per deal, plus the junk
    assert row["n"] == 8 * 3 + 2 * 2 + 8 == week_rows
    assert row["value"] == pytest.approx(8 / week_rows) and row["alert"]


def test_thresholds():
    log = weekly_log([8] * 31)
    a = log.alerts(thresholds={"conversion": {"A": 0.9}, "stalled": 5, "bad_rows_share": 0.5})
    t = a[a["rule"].str.startswith("threshold")]
    conv = t[t["rule"] == "threshold_conversion"].iloc[0]
    assert conv["stage"] == "A" and conv["value"] == pytest.approx(0.8) and conv["alert"]
    assert conv["message"] == "A: conversion 0.8 below the threshold 0.9"
    assert not t[t["rule"] != "threshold_conversion"]["alert"].any()
    with pytest.raises(fk.InvalidParameterError, match="unknown metric 'speed'"):
        log.alerts(thresholds={"speed": 1})
    with pytest.raises(fk.InvalidParameterError, match="not a stage of the log"):
        log.alerts(thresholds={"conversion": {"Z": 0.5}})
    with pytest.raises(fk.InvalidParameterError, match="must be a number"):
        log.alerts(thresholds={"stalled": "many"})


def test_too_short_a_log_says_so():
    with pytest.raises(fk.EventLogError, match="Pass a smaller `baseline`"):
        weekly_log([8] * 10).alerts()
    assert len(weekly_log([8] * 10).alerts(baseline=6))


def test_the_sample_example_and_a_naive_log():
    ev = fk.datasets.load_sample()
    ev["ts"] = ev["ts"].dt.tz_localize(None)
    log = fk.EventLog(ev, **fk.datasets.SAMPLE_KWARGS)
    a = log.alerts()
    assert a["week"].dt.tz is None and list(a.columns) == list(ALERT_COLUMNS)


@pytest.mark.slow
def test_false_alert_rate_on_stable_logs():
    """CI-sized: 8 stable logs x 12 weeks x 6 stages per rule; the rate of weeks in which
    a rule fires stays within 3 standard errors of alpha = 0.02 (measured at full size in
    benchmarks/RESULTS.md)."""
    alpha = 0.02
    fired = []
    for seed in range(8):
        ev = fk.datasets.synthetic(6000, seed=300 + seed, start="2024-01-01", end="2025-06-30")
        a = fk.EventLog(ev, **fk.datasets.SAMPLE_KWARGS).alerts(weeks=12, alpha=alpha)
        a["stage"] = a["stage"].fillna("")
        fired.append(a.groupby(["week", "rule", "stage"])["alert"].any())
    f = pd.concat(fired).groupby(level="rule").agg(["size", "mean"])
    for rule, r in f.iterrows():
        se = np.sqrt(alpha * (1 - alpha) / r["size"])
        assert r["mean"] <= alpha + 3 * se, (rule, r["mean"], r["size"])


def test_a_large_drop_is_caught():
    """A 30-point drop for deals entering Demo from a Monday: caught within four weeks."""
    from funnelkit.forecast import cut_log

    caught = 0
    for seed in range(5):
        change = {"date": "2025-05-05", "stage": "Demo", "advance": 0.35}
        ev = fk.datasets.synthetic(
            8000, seed=400 + seed, start="2024-01-01", end="2025-06-30", change=change
        )
        log = cut_log(fk.EventLog(ev, **fk.datasets.SAMPLE_KWARGS), "2025-06-02")
        a = log.alerts(weeks=4)
        caught += bool(a[(a["rule"] == "conversion") & (a["stage"] == "Demo")]["alert"].any())
    assert caught == 5


@pytest.mark.slow
def test_cli_monitor_exit_codes(tmp_path):
    cfg = tmp_path / "funnel.toml"
    cfg.write_text("[alerts]\nweeks = 2\n[alerts.thresholds]\nconversion = { Demo = 0.99 }\n")
    run = [sys.executable, "-m", "funnelkit", "monitor", "--sample", "-o", str(tmp_path / "o")]
    quiet = subprocess.run(run, capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
    doc = json.loads((tmp_path / "o" / "alerts.json").read_text())
    assert doc["fired"] == 0 and len(doc["weeks"]) == 1 and doc["checks"]
    loud = subprocess.run([*run, "--config", str(cfg)], capture_output=True, text=True)
    assert loud.returncode == 3, loud.stderr
    doc = json.loads((tmp_path / "o" / "alerts.json").read_text())
    assert len(doc["weeks"]) == 2 and doc["fired"] == len(doc["alerts"]) >= 1
    assert {r["rule"] for r in doc["alerts"]} == {"threshold_conversion"}
    assert "alert: Demo: conversion" in loud.stdout
    table = pd.read_csv(tmp_path / "o" / "alerts.csv")
    assert len(table) == len(doc["checks"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[alerts]\nsoon = 1\n")
    usage = subprocess.run([*run, "--config", str(bad)], capture_output=True, text=True)
    assert usage.returncode == 2 and "unknown: soon" in usage.stderr
