"""Hand-worked checks of funnel segments, weights, transition matrix, cycle time and KPIs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from conftest import GOLDEN_KW


def sample_log() -> fk.EventLog:
    return fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)


def test_funnel_by_segment_equals_sub_logs():
    log = sample_log()
    events = fk.datasets.load_sample()
    by = log.funnel(by=["region", "team"])
    deals = log.deals()
    assert len(by) == len(log.stages) * deals.groupby(["region", "team"], observed=True).ngroups
    for (region, team), block in by.groupby(["region", "team"], observed=True):
        ids = deals.loc[(deals["region"] == region) & (deals["team"] == team), "deal"]
        sub = fk.EventLog(
            events[events["deal_id"].isin(ids)],
            **{**fk.datasets.SAMPLE_KWARGS, "as_of": log.as_of},
        )
        pd.testing.assert_frame_equal(
            block.drop(columns=["region", "team"]).reset_index(drop=True), sub.funnel()
        )


def test_by_unknown_attribute():
    with pytest.raises(fk.EventLogError, match=r"`by`=\['colour'\] is not a carried attribute"):
        sample_log().funnel(by="colour")


def test_missing_segment_value_is_its_own_block(golden_events):
    ev = golden_events.assign(
        owner=np.where(golden_events["deal"].isin(["d1", "d2"]), None, "ann")
    )
    log = fk.EventLog(ev, attrs=["owner"], **GOLDEN_KW)
    f = log.funnel(by="owner")
    assert f["owner"].isna().sum() == 4  # one block of 4 stages for the deals without owner
    assert f.groupby(f["owner"].isna())["reached"].first().sum() == 8


def test_weighted_funnel_hand_worked():
    # two deals through A: one won (amount 300), one lost at A (amount 100)
    ev = pd.DataFrame(
        {
            "deal": ["x", "x", "y", "y"],
            "stage": ["A", "W", "A", "L"],
            "ts": ["2025-01-01", "2025-01-05", "2025-01-01", "2025-01-02"],
            "amt": [300.0, 300.0, 100.0, None],
        }
    )
    log = fk.EventLog(ev, deal="deal", stage="stage", time="ts", won="W", lost="L", amount="amt")
    f = log.funnel(weight="amount").iloc[0]
    assert (f["reached"], f["advanced"], f["dropped"]) == (400.0, 300.0, 100.0)
    assert f["conversion"] == pytest.approx(0.75)
    n_eff = 400.0**2 / (300.0**2 + 100.0**2)  # Kish: 1.6
    z = 1.959963984540054
    centre = (0.75 + z * z / (2 * n_eff)) / (1 + z * z / n_eff)
    half = z * np.sqrt(0.75 * 0.25 / n_eff + z * z / (4 * n_eff**2)) / (1 + z * z / n_eff)
    assert f["conversion_closed_low"] == pytest.approx(centre - half)
    assert f["conversion_closed_high"] == pytest.approx(centre + half)
    # Aalen–Johansen: y is lost at day 1 (S = 300/400), x advances at day 4 (F = 0.75).
    # Variance with the weights rescaled to n_eff (y 0.4, x 1.2): only the first term at
    # day 1 is non-zero, F² d / (Y (Y − d)) = 0.75² · 0.4 / (1.6 · 1.2)
    assert f["conversion_closed"] == pytest.approx(0.75)
    var = 0.75**2 * 0.4 / (1.6 * 1.2)
    se = np.sqrt(var) / (0.75 * abs(np.log(0.75)))
    theta = np.log(-np.log(0.75))
    assert f["conversion_low"] == pytest.approx(np.exp(-np.exp(theta + z * se)))
    assert f["conversion_high"] == pytest.approx(np.exp(-np.exp(theta - z * se)))
    assert f["unresolved"] == 0.0
    with pytest.raises(fk.EventLogError, match="only the mapped amount column"):
        fk.EventLog(ev, deal="deal", stage="stage", time="ts", won="W", lost="L").funnel(
            weight="amount"
        )


def zeroed_lost_sample() -> pd.DataFrame:
    """The sample as a CRM exports it when it zeroes the value of lost deals."""
    ev = fk.datasets.load_sample()
    last = ev.sort_values("ts", kind="stable").groupby("deal_id")["stage"].last()
    lost = last.index[last.isin(["Lost", "Disqualified"])]
    return ev.assign(amount=ev["amount"].where(~ev["deal_id"].isin(lost), 0.0))


def test_weighted_funnel_warns_when_lost_deals_weigh_nothing():
    kw = {k: v for k, v in fk.datasets.SAMPLE_KWARGS.items() if k != "stale_after"}
    log = fk.EventLog(zeroed_lost_sample(), **kw)
    with pytest.warns(fk.FunnelkitWarning, match="zeroed the value of lost deals") as rec:
        f = log.funnel(weight="amount")
    assert (f["conversion_closed"] > 0.98).all()  # what the warning is about
    msg = str(rec[0].message)
    assert "382 of 387 lost deals have an amount (column 'amount') of 0 or none" in msg
    assert "60 of 60 won deals have a positive amount" in msg and "weight=None" in msg
    assert rec[0].filename == __file__
    with pytest.warns(fk.FunnelkitWarning, match="382 of 387"):
        log.funnel(weight="amount", by="team")  # the per-segment path warns too
    with warnings.catch_warnings():
        warnings.simplefilter("error", fk.FunnelkitWarning)
        log.funnel()  # unweighted: nothing to warn about
        sample_log().funnel(weight="amount")  # real amounts on lost deals


def test_transition_matrix(golden_log):
    p = golden_log.transition_matrix()
    assert list(p.index) == ["A", "B", "C", "D", "W", "L1", "L2", "stale"]
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p.loc["A", "B"] == pytest.approx(6 / 7)
    assert p.loc["W", "W"] == 1.0 and p.loc["stale", "stale"] == 1.0
    c = golden_log.transition_matrix("counts")
    assert c.loc["B", "C"] == 4 and c.to_numpy().sum() == 20
    with pytest.raises(ValueError, match="`kind`"):
        golden_log.transition_matrix("odds")  # type: ignore[arg-type]


def test_cycle_time_golden(golden_log):
    ct = golden_log.cycle_time().set_index("outcome")
    # won: d1 24, d3 30, d7 35 days; lost: d2 14, d6 4, d8 4.625 days
    assert ct.loc["won", "deals"] == 3 and ct.loc["won", "median"] == pd.Timedelta(days=30)
    assert ct.loc["won", "mean"] == pd.Timedelta(days=89 / 3)
    assert ct.loc["lost", "median"] == pd.Timedelta(days=4.625)
    assert ct.loc["lost", "p90"] == pd.Timedelta(days=4.625 + 0.8 * (14 - 4.625))
    # any: six resolved deals plus d4 open (censored at 57 days); stale d5 left out
    assert ct.loc["any", "deals"] == 7 and ct.loc["any", "censored"] == 1
    # sorted 4, 4.625, 14, 24, 30, 35, 57+: S = 6/7, 5/7, 4/7, 3/7 → median 24 days
    assert ct.loc["any", "median"] == pd.Timedelta(days=24)


def test_kpis_golden_and_with_amounts(golden_log, golden_events):
    k = golden_log.kpis().iloc[0]
    assert (k["deals"], k["won"], k["lost"], k["stale"], k["open"]) == (8, 3, 3, 1, 1)
    assert k["win_rate"] == pytest.approx(3 / 7)
    assert k["median_won_cycle_time"] == pd.Timedelta(days=30)
    assert np.isnan(k["avg_won_amount"]) and np.isnan(k["pipeline_velocity"])
    amounts = {"d1": 100.0, "d3": 200.0, "d7": 600.0}
    log = fk.EventLog(
        golden_events.assign(amount=golden_events["deal"].map(amounts)),
        amount="amount",
        **GOLDEN_KW,
    )
    k = log.kpis().iloc[0]
    assert k["avg_won_amount"] == pytest.approx(300.0)
    assert k["pipeline_velocity"] == pytest.approx(1 * (3 / 7) * 300.0 / 30)


def test_kpis_by_segment_add_up():
    log = sample_log()
    k = log.kpis(by="region")
    total = log.kpis().iloc[0]
    for col in ("deals", "won", "lost", "stale", "open"):
        assert k[col].sum() == total[col]
