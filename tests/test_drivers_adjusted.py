"""drivers(adjust=True): the adjusted Cox model of issue 23 item 4 against a direct
lifelines fit built from log.visits(), the planted feedback effect, the default output
unchanged, and the error without lifelines."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.drivers import ADJ_COLUMNS, ADJ_Q, COLUMNS


def _sample():
    return fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:lifelines")  # its pandas 4 notices
def test_adjusted_columns_equal_a_direct_lifelines_fit():
    """At Demo, region and team together: the subjects (first entry into Demo), their time
    to first being past Demo and whether they advanced are rebuilt from visits() and
    deals(), each attribute one-hot against its most common value, and lifelines fits."""
    lifelines = pytest.importorskip("lifelines")
    log = _sample()
    stages = list(log.stages)
    v = log.visits()
    v = v[v["visit"] == 1].assign(stage=lambda x: x["stage"].astype(str))
    v["k"] = v["stage"].map(stages.index)
    dl = log.deals().set_index("deal")
    s = stages.index("Demo")
    entry = v[v["k"] == s].set_index("deal")["entered"]
    later = v[v["k"] > s].groupby("deal")["entered"].min()
    won_t = dl.loc[dl["outcome"] == "won", "last_event"]
    past = pd.concat([later, won_t]).groupby(level=0).min().reindex(entry.index)
    end = dl["last_event"].where(dl["outcome"].isin(["won", "lost"]), log.as_of)
    end = end.reindex(entry.index)
    adv = past.notna()
    t = np.where(adv, past - entry, end - entry)
    df = pd.DataFrame(
        {"_t": pd.to_timedelta(t).total_seconds() / 86400, "_e": adv.to_numpy().astype(int)}
    )
    terms = {}
    for a in ["region", "team"]:
        x = dl.loc[entry.index, a].astype(str).to_numpy()
        ref = pd.Series(x).value_counts().index[0]
        for lev in sorted(set(x) - {ref}):
            df[f"{a}={lev}"] = (x == lev).astype(float)
            terms[(a, lev)] = f"{a}={lev}"
        terms[(a, ref)] = None
    sm = lifelines.CoxPHFitter().fit(df, duration_col="_t", event_col="_e").summary

    d = log.drivers("Demo", attrs=["region", "team"], adjust=True)
    assert list(d.columns) == [*COLUMNS, *ADJ_COLUMNS, ADJ_Q]
    assert len(d) == len(terms)
    for r in d.itertuples(index=False):
        name = terms[(r.feature, r.group)]
        if name is None:
            assert np.isnan(r.adj_hazard_ratio) and r.adj_note.startswith("reference level")
            continue
        want = sm.loc[name]
        got = [r.adj_hazard_ratio, r.adj_ci_low, r.adj_ci_high, r.adj_p_value]
        np.testing.assert_allclose(
            got,
            [
                want["exp(coef)"],
                want["exp(coef) lower 95%"],
                want["exp(coef) upper 95%"],
                want["p"],
            ],
            rtol=1e-6,
        )
        assert r.adj_note == ""


def test_landmark_model_for_activity_features():
    """With activities, the stage's model is a landmark model: deals still in the stage at
    the landmark, clock from the landmark. In the two-team log of test_drivers every deal
    resolves on day 5: with a 3-day landmark all 20 are in; the call indicator goes with
    advancing and team x's hazard ratio is estimated next to it."""
    pytest.importorskip("lifelines")
    from test_drivers import _two_teams

    d = _two_teams(with_calls=True).drivers("A", min_visits=5, adjust=True)
    r = d.set_index("feature")
    assert r.loc["calls per visit", "adj_hazard_ratio"] > 1
    assert np.isfinite(r.loc["team", "adj_hazard_ratio"])


def test_default_output_is_unchanged_and_adjusted_only_adds_columns():
    pytest.importorskip("lifelines")
    log = _sample().with_activities(
        fk.datasets.load_sample_activities(), **fk.datasets.SAMPLE_ACTIVITIES_KWARGS
    )
    plain = log.drivers("Demo")
    assert list(plain.columns) == COLUMNS
    adj = log.drivers("Demo", adjust=True)
    pd.testing.assert_frame_equal(adj[COLUMNS], plain)
    # the nested owner (within team) loses the levels the team fixes, and says so
    notes = set(adj["adj_note"])
    assert "determined by the features before it (collinear)" in notes
    tc = adj[(adj["feature"] == "team") & (adj["group"] == "Team C")].iloc[0]
    assert tc["adj_hazard_ratio"] < 1 and tc["adj_p_value"] < 0.05
    # q-values: NaN exactly where the p-value is, never below it; with one family per
    # feature (Benjamini-Bogomolov), a family of k values and m families at most
    # min(1, k p m / R) or the family's BH value
    p, q = adj["adj_p_value"].to_numpy(float), adj[ADJ_Q].to_numpy(float)
    assert (np.isnan(p) == np.isnan(q)).all()
    assert (q[~np.isnan(p)] >= p[~np.isnan(p)] - 1e-12).all()
    tested = adj[~np.isnan(p)]
    k = tested.groupby("feature")["adj_p_value"].transform("size").to_numpy()
    m = tested["feature"].nunique()
    assert (
        tested[ADJ_Q].to_numpy() <= np.minimum(1.0, k * tested["adj_p_value"] * m) + 1e-12
    ).all()


def test_planted_low_feedback_at_proposal_has_hazard_ratio_below_one():
    pytest.importorskip("lifelines")
    events, acts = fk.datasets.synthetic(
        3000, seed=0, activities=True, feedback_effect={"stage": "Proposal", "effect": -0.15}
    )
    log = fk.EventLog(events, **fk.datasets.SAMPLE_KWARGS, as_of="2025-06-30")
    log = log.with_activities(acts, **fk.datasets.SAMPLE_ACTIVITIES_KWARGS)
    d = log.drivers("Proposal", adjust=True)
    r = d[d["feature"] == "survey score"].iloc[0]
    assert r["adj_hazard_ratio"] < 1
    assert r["adj_p_value"] < 0.05
    assert r["adj_ci_high"] < 1


def test_adjust_without_lifelines_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "lifelines", None)  # import lifelines -> ImportError
    with pytest.raises(ImportError, match=r'pip install "funnelkit\[models\]"'):
        _sample().drivers("Demo", adjust=True)
    assert list(_sample().drivers("Demo").columns) == COLUMNS  # the default needs nothing
