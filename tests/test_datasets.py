"""Tests of funnelkit.datasets: the synthetic generator against its ground truth.

Every check recomputes what it needs from the event log with plain pandas, following the
path rules of DESIGN §1 — never with the funnelkit core, so that the generator can be
trusted when it is used to test the core.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funnelkit.datasets import SAMPLE_KWARGS, SyntheticTruth, load_sample, synthetic

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["deal_id", "stage", "ts", "amount", "region", "owner", "team"]
STAGES = ["Lead", "Qualified", "Discovery", "Demo", "Proposal", "Negotiation"]
TEAM_C = {"column": "team", "value": "Team C", "stage": "Demo", "advance": 0.35}
STALL = {"stage": "Proposal", "after_days": 30, "advance": 0.15}
TEAM_C_DWELL = {"column": "team", "value": "Team C", "stage": "Proposal", "factor": 2.0}
DAY = pd.Timedelta(days=1)


# --------------------------------------------------------------------------- helpers


def ordered(events: pd.DataFrame, truth: SyntheticTruth) -> pd.DataFrame:
    """Events sorted per deal as DESIGN §1 orders them, with a `rank` column.

    Ties: terminal last, then declared stage order, then input order. `rank` is the funnel
    position of a stage, one past the last stage for the won stage and -1 for lost stages.
    """
    rank = {s: i for i, s in enumerate(truth.stages)}
    rank[truth.won] = len(truth.stages)
    rank.update({name: -1 for name in truth.lost})
    out = events.assign(
        rank=events["stage"].map(rank).astype(int),
        terminal=events["stage"].isin([truth.won, *truth.lost]),
        row=np.arange(len(events)),
    )
    out = out.sort_values(["deal_id", "ts", "terminal", "rank", "row"], kind="stable")
    return out.reset_index(drop=True)


def pairs(path: pd.DataFrame) -> pd.DataFrame:
    """Consecutive events of each deal: columns of the earlier event and `*_next`."""
    nxt = path.groupby("deal_id").shift(-1)
    both = path.join(nxt.add_suffix("_next"))
    return both[both["stage_next"].notna()]


def per_deal(path: pd.DataFrame, truth: SyntheticTruth) -> pd.DataFrame:
    """Per deal, from the log alone: furthest rank, observed outcome, reopened, events."""
    on_stage = path[~path["terminal"]]
    last = path.groupby("deal_id").tail(1).set_index("deal_id")["stage"]
    observed = np.where(last == truth.won, "won", np.where(last.isin(truth.lost), "lost", "open"))
    p = pairs(path)
    reopened = p[p["terminal"] & ~p["terminal_next"].astype(bool)].groupby("deal_id").size()
    deals = pd.DataFrame(
        {
            "furthest": on_stage.groupby("deal_id")["rank"].max(),
            "observed": pd.Series(observed, index=last.index),
            "last_event": path.groupby("deal_id")["ts"].max(),
            "n_events": path.groupby("deal_id").size(),
        }
    )
    deals["reopened"] = reopened.reindex(deals.index, fill_value=0) > 0
    return deals


def conversion(
    path: pd.DataFrame, truth: SyntheticTruth, stage: str, deals: pd.Index | None = None
) -> tuple[float, int]:
    """Strict conversion of `stage`: (advanced / resolved, resolved) over deals that entered it.

    Resolved means advanced (furthest stage after it, or won) or dropped there: lost
    explicitly, or stale — the only fact taken from the truth, since a deal that fell silent
    looks the same as an open one in the log.
    """
    d = per_deal(path, truth).join(truth.deals.set_index("deal_id")["outcome"])
    entered = path.loc[path["stage"] == stage, "deal_id"].unique()
    d = d.loc[d.index.isin(entered)]
    if deals is not None:
        d = d.loc[d.index.isin(deals)]
    r = truth.stages.index(stage)
    advanced = (d["furthest"] > r) | (d["observed"] == "won")
    dropped = (d["furthest"] == r) & ((d["observed"] == "lost") | (d["outcome"] == "stale"))
    n = int(advanced.sum() + dropped.sum())
    return advanced.sum() / n, n


def within(estimate: float, p: float, n: int, k: float = 3.0) -> bool:
    return abs(estimate - p) <= k * np.sqrt(p * (1 - p) / n)


def exit_dwell(path: pd.DataFrame, truth: SyntheticTruth, stage: str) -> pd.DataFrame:
    """Per deal that left `stage` forward or by an explicit loss: time there, and advanced.

    Time from the first entry into the stage to the first later event of a later stage,
    won, or the final lost event.
    """
    r = truth.stages.index(stage)
    first = path[path["stage"] == stage].groupby("deal_id")["ts"].min().rename("entered")
    p = path.join(first, on="deal_id", how="inner")
    after = p[p["ts"] >= p["entered"]]
    forward = after[after["rank"] > r].groupby("deal_id")["ts"].min()
    tail = path.groupby("deal_id").tail(1).set_index("deal_id")
    lost = tail.loc[tail["stage"].isin(truth.lost), "ts"]
    furthest = path[~path["terminal"]].groupby("deal_id")["rank"].max()
    lost = lost[lost.index.isin(first.index) & (furthest.reindex(lost.index) == r)]
    left = pd.concat(
        [
            forward.rename("left").to_frame().assign(advanced=True),
            lost.rename("left").to_frame().assign(advanced=False),
        ]
    )
    left = left.join(first)
    return left.assign(dwell=left["left"] - left["entered"])


@pytest.fixture(scope="module")
def default_log() -> tuple[pd.DataFrame, SyntheticTruth]:
    return synthetic(2000, seed=0, return_truth=True)


@pytest.fixture(scope="module")
def big_log() -> tuple[pd.DataFrame, SyntheticTruth]:
    return synthetic(5000, seed=11, return_truth=True)


# --------------------------------------------------------------------------- shape


def test_columns_dtypes_and_ids(default_log):
    events, truth = default_log
    assert events.columns.tolist() == COLUMNS
    assert str(events["ts"].dtype) == "datetime64[ns, UTC]"
    assert events["amount"].dtype == np.float64
    string = pd.Series(["x"]).dtype  # pandas' default: str on 3.x, object on 2.x
    for col in ["deal_id", "stage", "region", "owner", "team"]:
        assert events[col].dtype == string, col
    assert isinstance(events.index, pd.RangeIndex)
    assert events["deal_id"].str.fullmatch(r"D\d{6}").all()
    assert events["deal_id"].nunique() == 2000
    ids = sorted(events["deal_id"].unique())
    assert (ids[0], ids[-1]) == ("D000001", "D002000")
    assert (events["ts"] <= truth.as_of).all()
    assert (events["ts"] == events["ts"].dt.floor("s")).all()
    # deal attributes are constant within a deal; rows are shuffled
    assert (events.groupby("deal_id")[["amount", "region", "owner", "team"]].nunique() == 1).all(
        axis=None
    )
    assert not events["deal_id"].is_monotonic_increasing
    assert not events["ts"].is_monotonic_increasing


def test_deal_id_width_grows_past_a_million():
    from funnelkit.datasets._synthetic import _deal_ids

    assert _deal_ids(3).tolist() == ["D000001", "D000002", "D000003"]
    assert _deal_ids(1_000_000)[[0, -1]].tolist() == ["D0000001", "D1000000"]


def test_empty():
    events = synthetic(0)
    assert events.shape == (0, 7)
    assert events.dtypes.equals(synthetic(3).dtypes)


def test_deterministic_for_a_seed():
    a, ta = synthetic(300, seed=5, return_truth=True)
    b, tb = synthetic(300, seed=5, return_truth=True)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(ta.deals, tb.deals)
    c = synthetic(300, seed=6)
    assert not a.equals(c)


def test_truth_is_frozen_and_complete(default_log):
    _, truth = default_log
    assert isinstance(truth, SyntheticTruth)
    with pytest.raises(dataclasses.FrozenInstanceError):
        truth.seed = 1  # type: ignore[misc]
    assert truth.stages == tuple(STAGES)
    assert truth.won == "Won" and truth.lost == ("Lost", "Disqualified")
    assert truth.as_of == pd.Timestamp("2025-06-30", tz="UTC")
    assert all(abs(truth.advance[s] + truth.loss[s] - 1) < 1e-12 for s in STAGES)
    assert truth.segment_effect == truth.stall == truth.change == truth.dwell_effect == ()
    assert truth.deals["deal_id"].tolist() == [f"D{i:06d}" for i in range(1, 2001)]
    assert set(truth.deals["outcome"]) == {"won", "lost", "stale", "open"}


# --------------------------------------------------------------------------- truth


def test_log_agrees_with_truth_deal_by_deal(default_log):
    events, truth = default_log
    path = ordered(events, truth)
    d = per_deal(path, truth)
    t = truth.deals.set_index("deal_id")
    # won and lost are visible in the log; stale and open deals end on a stage event
    expected = t["outcome"].replace({"stale": "open"})
    pd.testing.assert_series_equal(d["observed"], expected, check_names=False, check_dtype=False)
    lost_name = path.groupby("deal_id").tail(1).set_index("deal_id")["stage"]
    resolved = t["outcome"].isin(["won", "lost"])
    assert (lost_name[resolved] == t.loc[resolved, "outcome_stage"]).all()
    assert t.loc[~resolved, "outcome_stage"].isna().all()
    assert (d["furthest"].map(dict(enumerate(STAGES))) == t["furthest_stage"]).all()
    assert (d["reopened"] == t["reopened"]).all()
    assert (d["last_event"] == t["last_event"]).all()
    assert (d["n_events"] == t["n_events"]).all()
    first = path.groupby("deal_id").head(1).set_index("deal_id")
    assert (first["stage"] == "Lead").all() and (first["ts"] == t["created"]).all()
    assert t["created"].between(truth.start, truth.end).all()


def test_every_edge_case_appears(default_log):
    check_edge_cases(*default_log)


def check_edge_cases(events: pd.DataFrame, truth: SyntheticTruth) -> None:
    path = ordered(events, truth)
    p = pairs(path)
    stage_pairs = p[~p["terminal"] & ~p["terminal_next"].astype(bool)]
    step = stage_pairs["rank_next"] - stage_pairs["rank"]
    counts = {
        "skips": (step == 2).sum(),
        "backward moves": (step < 0).sum(),
        "repeats": (step == 0).sum(),
        "ties": (p["ts"] == p["ts_next"]).sum(),
        "tied stage changes": ((p["ts"] == p["ts_next"]) & (p["stage"] != p["stage_next"])).sum(),
        "reopened deals": per_deal(path, truth)["reopened"].sum(),
    }
    outcomes = truth.deals["outcome"].value_counts()
    for kind in ["won", "lost", "stale", "open"]:
        counts[f"{kind} deals"] = outcomes.get(kind, 0)
    for name in ["Won", "Lost", "Disqualified"]:
        counts[f"{name} events"] = (events["stage"] == name).sum()
    # stale deals really are silent long before as_of; open ones are mostly recent
    silence = truth.as_of - truth.deals.groupby("outcome")["last_event"].median()
    assert silence["stale"] > 60 * DAY > silence["open"]
    missing = [kind for kind, n in counts.items() if n == 0]
    assert not missing, counts


def test_conversion_matches_truth_within_3_se(big_log):
    events, truth = big_log
    path = ordered(events, truth)
    for stage in STAGES:
        estimate, n = conversion(path, truth, stage)
        assert n > 300, stage
        assert within(estimate, truth.advance[stage], n), (stage, estimate, n)


def test_losses_split_into_stale_and_the_lost_names(big_log):
    events, truth = big_log
    t = truth.deals
    dropped = t[t["outcome"].isin(["lost", "stale"])]
    stale_share = (dropped["outcome"] == "stale").mean()
    assert within(stale_share, 0.2, len(dropped))
    lost = t[t["outcome"] == "lost"]
    disq = (lost["outcome_stage"] == "Disqualified").groupby(lost["last_stage"]).mean()
    for stage in ["Lead", "Demo"]:
        p = truth.lost_weights[stage]["Disqualified"]
        assert within(disq[stage], p, int((lost["last_stage"] == stage).sum()), k=4)
    assert disq["Lead"] > disq["Demo"] > disq["Negotiation"]


@pytest.mark.parametrize("dist", ["lognormal", "gamma"])
def test_lead_dwell_median(dist):
    events, truth = synthetic(4000, seed=3, dwell_dist=dist, return_truth=True)
    path = ordered(events, truth)
    old = truth.deals.loc[truth.deals["created"] < pd.Timestamp("2025-01-01", tz="UTC")]
    path = path[path["deal_id"].isin(old["deal_id"])]
    # a lost event followed by more events is a reopen, not the end of the visit
    p = pairs(path)
    reopen_rows = p.index[p["terminal"] & ~p["terminal_next"].astype(bool)]
    path = path.drop(reopen_rows)
    entered = path.groupby("deal_id")["ts"].min()
    left = path[path["stage"] != "Lead"].groupby("deal_id")["ts"].min()
    dwell = ((left - entered.reindex(left.index)) / DAY).to_numpy()
    # median of the mixture: ties (dwell 0) with p_tie = 0.03, then the dwell distribution
    from scipy import stats

    q = (0.5 - 0.03) / 0.97
    if dist == "lognormal":
        expected = 3.0 * np.exp(0.9 * stats.norm.ppf(q))
    else:
        expected = stats.gamma(2.0, scale=3.0 / stats.gamma(2.0).median()).ppf(q)
    assert abs(np.median(dwell) / expected - 1) < 0.08


# --------------------------------------------------------------------------- planted effects


def test_segment_effect_is_visible():
    events, truth = synthetic(5000, seed=12, segment_effect=TEAM_C, return_truth=True)
    assert truth.segment_effect == (TEAM_C,)
    path = ordered(events, truth)
    team = truth.deals.set_index("deal_id")["team"]
    c, n_c = conversion(path, truth, "Demo", team.index[team == "Team C"])
    rest, n_rest = conversion(path, truth, "Demo", team.index[team != "Team C"])
    assert within(c, 0.35, n_c) and within(rest, truth.advance["Demo"], n_rest), (c, rest)
    # the other stages of Team C are untouched
    q, n_q = conversion(path, truth, "Qualified", team.index[team == "Team C"])
    assert within(q, truth.advance["Qualified"], n_q)


def test_stall_is_visible():
    null_events, null_truth = synthetic(5000, seed=13, return_truth=True)
    events, truth = synthetic(5000, seed=13, stall=STALL, return_truth=True)
    assert truth.stall == (STALL | {"after_days": 30.0},)

    def win_share(events: pd.DataFrame, truth: SyntheticTruth) -> tuple[float, float]:
        left = exit_dwell(ordered(events, truth), truth, "Proposal")
        long = left["dwell"] > 30 * DAY
        return left.loc[long, "advanced"].mean(), left.loc[~long, "advanced"].mean()

    long, short = win_share(events, truth)
    assert long < 0.3 and short > 0.55, (long, short)
    null_long, null_short = win_share(null_events, null_truth)
    assert abs(null_long - null_short) < 0.1, (null_long, null_short)


def test_change_is_visible():
    change = {"date": "2025-01-01", "stage": "Demo", "advance": 0.9}
    events, truth = synthetic(6000, seed=14, change=change, return_truth=True)
    assert truth.change[0]["date"] == pd.Timestamp("2025-01-01", tz="UTC")
    path = ordered(events, truth)
    entered = path[path["stage"] == "Demo"].groupby("deal_id")["ts"].min()
    after = entered > truth.change[0]["date"]
    before_rate, n_before = conversion(path, truth, "Demo", entered.index[~after])
    after_rate, n_after = conversion(path, truth, "Demo", entered.index[after])
    assert within(before_rate, truth.advance["Demo"], n_before), before_rate
    assert within(after_rate, 0.9, n_after), after_rate


@pytest.mark.slow
def test_dwell_effect_doubles_one_teams_dwell_and_nothing_else():
    # Observed long after `end`, so that no visit is cut off and the completed visits
    # give the whole dwell distribution.
    kwargs = {"seed": 15, "as_of": "2075-01-01", "return_truth": True}
    null_events, null_truth = synthetic(6000, **kwargs)
    events, truth = synthetic(6000, dwell_effect=TEAM_C_DWELL, **kwargs)
    assert truth.dwell_effect == (TEAM_C_DWELL | {"factor": 2.0},)
    assert "_code" not in truth.dwell_effect[0]
    path = ordered(events, truth)
    team = truth.deals.set_index("deal_id")["team"]

    def median_days(stage: str, in_c: bool) -> float:
        left = exit_dwell(path, truth, stage)
        keep = (team.reindex(left.index) == "Team C") == in_c
        return left.loc[keep, "dwell"].median() / DAY

    proposal = truth.dwell_median["Proposal"]
    assert abs(median_days("Proposal", True) / (2 * proposal) - 1) < 0.12
    assert abs(median_days("Proposal", False) / proposal - 1) < 0.08
    ratio = median_days("Proposal", True) / median_days("Proposal", False)
    assert 1.8 < ratio < 2.2, ratio
    assert abs(median_days("Demo", True) / median_days("Demo", False) - 1) < 0.12
    # The decisions are those of the log without the effect: same rows, same random draws
    # (no visit is cut off at `as_of`); only times at or after Team C's Proposal visits move.
    same = events.columns.drop("ts")
    pd.testing.assert_frame_equal(events[same], null_events[same])
    pd.testing.assert_frame_equal(
        truth.deals.drop(columns=["last_event"]), null_truth.deals.drop(columns=["last_event"])
    )
    moved = events["ts"] != null_events["ts"]
    assert (events.loc[moved, "team"] == "Team C").all() and moved.any()
    proposal_entry = null_events[null_events["stage"] == "Proposal"].groupby("deal_id")["ts"].min()
    moved_from = null_events.loc[moved, "ts"]
    assert (moved_from > proposal_entry.reindex(events.loc[moved, "deal_id"]).to_numpy()).all()
    c, n_c = conversion(path, truth, "Proposal", team.index[team == "Team C"])
    assert within(c, truth.advance["Proposal"], n_c), c


def test_dwell_effect_after_a_date():
    effect = {"date": "2025-01-01", "stage": "Demo", "factor": 0.5}
    events, truth = synthetic(
        6000, seed=16, as_of="2075-01-01", dwell_effect=effect, return_truth=True
    )
    assert truth.dwell_effect == ({**effect, "date": pd.Timestamp("2025-01-01", tz="UTC")},)
    left = exit_dwell(ordered(events, truth), truth, "Demo")
    after = left["entered"] > truth.dwell_effect[0]["date"]
    demo = truth.dwell_median["Demo"]
    assert abs(left.loc[after, "dwell"].median() / DAY / (0.5 * demo) - 1) < 0.12
    assert abs(left.loc[~after, "dwell"].median() / DAY / demo - 1) < 0.08


def test_dwell_effects_multiply():
    both = [TEAM_C_DWELL, {"date": "2020-01-01", "stage": "Proposal", "factor": 3}]
    events, truth = synthetic(
        3000, seed=17, as_of="2075-01-01", dwell_effect=both, return_truth=True
    )
    assert [e["factor"] for e in truth.dwell_effect] == [2.0, 3.0]
    left = exit_dwell(ordered(events, truth), truth, "Proposal")
    team = truth.deals.set_index("deal_id")["team"].reindex(left.index)
    ratio = (
        left.loc[team == "Team C", "dwell"].median() / left.loc[team != "Team C", "dwell"].median()
    )
    assert 1.7 < ratio < 2.3, ratio
    proposal = truth.dwell_median["Proposal"]
    assert abs(left.loc[team != "Team C", "dwell"].median() / DAY / (3 * proposal) - 1) < 0.12


def test_effects_accept_lists_and_apply_in_order():
    effects = [TEAM_C, TEAM_C | {"value": "Team A", "advance": 0.5}]
    _, truth = synthetic(50, seed=0, segment_effect=effects, return_truth=True)
    assert [e["value"] for e in truth.segment_effect] == ["Team C", "Team A"]
    # a stall overrides a change overrides a segment effect at the same stage
    everything = {"stage": "Demo", "advance": 0.0}
    events, truth = synthetic(
        3000,
        seed=1,
        segment_effect=TEAM_C | {"advance": 1.0},
        change=everything | {"date": "2023-01-01", "advance": 1.0},
        stall=everything | {"after_days": 1e-9},
        p_tie=0.0,
        p_skip=0.0,
        return_truth=True,
    )
    assert not events["stage"].isin(["Proposal", "Negotiation", "Won"]).any()


# --------------------------------------------------------------------------- parameters


def test_custom_stages_terminals_and_segments():
    events, truth = synthetic(
        400,
        seed=2,
        stages=["A", "B", "C"],
        won="W",
        lost="L",
        regions=["NA", "EU"],
        owners=["ann", "bob", "cy"],
        teams=["t1"],
        advance={"B": 0.5},
        return_truth=True,
    )
    assert set(events["stage"]) <= {"A", "B", "C", "W", "L"}
    assert truth.advance == {"A": 0.7, "B": 0.5, "C": 0.7}
    assert set(events["region"]) == {"NA", "EU"} and set(events["team"]) == {"t1"}
    assert truth.lost_weights["A"] == {"L": 1.0}


def test_loss_alone_sets_advance():
    _, truth = synthetic(10, loss=0.25, return_truth=True)
    assert truth.advance == dict.fromkeys(STAGES, 0.75)


def test_without_edge_cases_paths_are_clean():
    events, truth = synthetic(
        1000,
        seed=4,
        p_skip=0,
        p_back=0,
        p_relog=0,
        p_tie=0,
        p_reopen=0,
        p_stale=0,
        return_truth=True,
    )
    path = ordered(events, truth)
    step = pairs(path)
    step = step["rank_next"].where(~step["terminal_next"].astype(bool)) - step["rank"]
    assert set(step.dropna()) == {1}
    assert (path["ts"].groupby(path["deal_id"]).diff().dropna() > pd.Timedelta(0)).all()
    assert not truth.deals["reopened"].any()
    assert not (truth.deals["outcome"] == "stale").any()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"advance": 0.6, "loss": 0.3}, ValueError, r"`advance` \+ `loss` must be 1"),
        ({"p_back": 1.5}, ValueError, r"`p_back` must be probabilities"),
        ({"advance": [0.5, 0.5]}, ValueError, r"one value per stage \(6"),
        ({"dwell_median": {"Closing": 3}}, ValueError, r"unknown stages \['Closing'\]"),
        ({"as_of": "2025-01-01"}, ValueError, r"`as_of` must not be before `end`"),
        ({"start": "2026-01-01"}, ValueError, r"`end` must be after `start`"),
        ({"start": "not a date"}, ValueError, r"`start` must be a timestamp"),
        ({"won": "Lead"}, ValueError, r"must not share names"),
        ({"dwell_dist": "weibull"}, ValueError, r"`dwell_dist` must be"),
        ({"lost_weights": [1, 2, 3]}, ValueError, r"`lost_weights` must have shape"),
        ({"segment_effect": TEAM_C | {"column": "city"}}, ValueError, r"\['column'\]"),
        ({"segment_effect": TEAM_C | {"value": "Team Z"}}, ValueError, r"team values"),
        ({"stall": {"stage": "Proposal", "advance": 0.1}}, ValueError, r"needs exactly"),
        ({"stall": STALL | {"stage": "Pitch"}}, ValueError, r"\['stage'\]` must be one of"),
        ({"change": {"date": "soon", "stage": "Demo", "advance": 0.5}}, ValueError, "date"),
        ({"stall": "Proposal"}, TypeError, r"mapping or a sequence of mappings"),
        (
            {"dwell_effect": TEAM_C_DWELL | {"factor": 0}},
            ValueError,
            r"\['factor'\]` must be a positive",
        ),
        (
            {"dwell_effect": TEAM_C_DWELL | {"factor": "x"}},
            ValueError,
            r"\['factor'\]` must hold numbers",
        ),
        (
            {"dwell_effect": TEAM_C_DWELL | {"date": "2025-01-01"}},
            ValueError,
            r"needs exactly the keys .* or ",
        ),
        ({"dwell_effect": {"stage": "Demo", "factor": 2}}, ValueError, r"Example: \{"),
        (
            {"dwell_effect": {"stage": "Demo", "advance": 0.5, "date": "2025-01-01"}},
            ValueError,
            "needs exactly",
        ),
        ({"dwell_effect": TEAM_C_DWELL | {"value": "Team Z"}}, ValueError, r"team values"),
        (
            {"dwell_effect": TEAM_C_DWELL | {"stage": "Pitch"}},
            ValueError,
            r"\['stage'\]` must be one of",
        ),
        (
            {"dwell_effect": {"date": "soon", "stage": "Demo", "factor": 2}},
            ValueError,
            r"\['date'\]` must be a timestamp",
        ),
        ({"dwell_effect": [TEAM_C_DWELL, 2.0]}, TypeError, r"`dwell_effect` must be a mapping"),
        ({"regions": "North"}, TypeError, r"`regions` must be a sequence"),
    ],
)
def test_bad_parameters_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        synthetic(10, **kwargs)


def test_bad_n_deals():
    with pytest.raises(TypeError, match="`n_deals` must be an int"):
        synthetic(10.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`n_deals` must be >= 0"):
        synthetic(-1)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
    p=st.floats(0, 0.5),
    advance=st.floats(0, 1),
    as_of_days=st.integers(0, 400),
)
def test_invariants(n, seed, p, advance, as_of_days):
    as_of = pd.Timestamp("2025-06-30", tz="UTC") + as_of_days * DAY
    events, truth = synthetic(
        n,
        seed=seed,
        advance=advance,
        p_skip=p,
        p_back=p,
        p_relog=p,
        p_tie=p,
        p_reopen=p,
        p_stale=p,
        as_of=as_of,
        return_truth=True,
    )
    assert events["deal_id"].nunique() == n
    assert (events["ts"] <= as_of).all()
    path = ordered(events, truth)
    d = per_deal(path, truth)
    t = truth.deals.set_index("deal_id")
    assert (d["observed"] == t["outcome"].replace({"stale": "open"})).all()
    assert (d["reopened"] == t["reopened"]).all()
    assert (truth.deals["n_events"].sum()) == len(events)


# --------------------------------------------------------------------------- sample


def load_script():
    spec = importlib.util.spec_from_file_location("make_sample", ROOT / "scripts/make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_load_sample_columns_and_dtypes():
    events = load_sample()
    assert events.columns.tolist() == COLUMNS
    assert events.dtypes.equals(synthetic(5).dtypes)
    assert str(events["ts"].dtype) == "datetime64[ns, UTC]"
    assert events["deal_id"].nunique() == 600
    assert 3000 <= len(events) <= 4000
    assert set(events["stage"]) == {*SAMPLE_KWARGS["stages"], "Won", "Lost", "Disqualified"}
    assert set(SAMPLE_KWARGS["attrs"]) | {"deal_id", "stage", "ts", "amount"} == set(COLUMNS)
    assert SAMPLE_KWARGS["stages"] == STAGES


def test_load_sample_is_the_script_output():
    script = load_script()
    expected = script.build()
    pd.testing.assert_frame_equal(load_sample(), expected, check_exact=True)
    text = resources.files("funnelkit.datasets").joinpath("sample.csv").read_bytes()
    assert text.decode("utf-8") == script.to_csv_text(expected)
    assert script.RECIPE["segment_effect"] == TEAM_C and script.RECIPE["stall"] == STALL


def test_sample_has_every_edge_case_and_the_planted_effects():
    script = load_script()
    events, truth = synthetic(**script.RECIPE, return_truth=True)
    check_edge_cases(events, truth)
    path = ordered(events, truth)
    team = truth.deals.set_index("deal_id")["team"]
    c, _ = conversion(path, truth, "Demo", team.index[team == "Team C"])
    rest, _ = conversion(path, truth, "Demo", team.index[team != "Team C"])
    assert c < rest - 0.15, (c, rest)
    left = exit_dwell(path, truth, "Proposal")
    long = left["dwell"] > 30 * DAY
    assert left.loc[long, "advanced"].mean() < left.loc[~long, "advanced"].mean() - 0.2


def test_import_is_light():
    code = "import sys, funnelkit.datasets; print('matplotlib' in sys.modules)"
    env_path = str(ROOT / "src")
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": env_path, "PATH": ""},
    )
    assert out.stdout.strip() == "False"
