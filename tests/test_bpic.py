"""The real BPIC 2012 log (shared/data): README counts, an independent pandas computation
of the directly-follows table, and malformed copies that must fail clearly or lose nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk

WON = ["A_APPROVED", "A_REGISTERED", "A_ACTIVATED"]
LOST = ["A_DECLINED", "A_CANCELLED"]
STAGES = ["A_SUBMITTED", "A_PARTLYSUBMITTED", "A_PREACCEPTED", "A_ACCEPTED", "A_FINALIZED"]
KW = dict(deal="case_id", stage="activity", time="ts", won=WON, lost=LOST)


@pytest.fixture
def a_events(bpic_events) -> pd.DataFrame:
    a = bpic_events[
        (bpic_events["lifecycle"] == "COMPLETE") & bpic_events["activity"].str.startswith("A_")
    ]
    return a.reset_index(drop=True)


def test_quality_matches_data_readme(a_events):
    log = fk.EventLog(a_events, amount="amount_req", attrs=["resource"], **KW)
    q = log.quality
    assert q.rows_in == 60_849 and q.rows_dropped == 0
    assert q.rows_in == q.rows_used + q.rows_removed + q.rows_collapsed
    assert q.deals == 13_087
    assert q.won == 2_246
    assert q.lost == 7_635 + 2_807
    assert 380 <= q.open <= 420  # "about 400 applications were still open"
    assert log.stages == STAGES  # inferred from median positions
    assert q.stage_order_inferred
    f = log.funnel(skips="strict").set_index("stage")["reached"]
    assert f.to_dict() == {
        "A_SUBMITTED": 13_087,
        "A_PARTLYSUBMITTED": 13_087,
        "A_PREACCEPTED": 7_367,
        "A_ACCEPTED": 5_113,
        "A_FINALIZED": 5_015,
    }
    d = log.deals()
    assert d.loc[d["outcome"] == "lost", "outcome_stage"].astype(str).value_counts().to_dict() == {
        "A_DECLINED": 7_635,
        "A_CANCELLED": 2_807,
    }
    assert d["amount"].notna().all()


def test_directly_follows_equals_plain_pandas(a_events):
    """DESIGN §1 rules applied with plain pandas, then sort + shift, as an analyst would."""
    log = fk.EventLog(a_events, **KW)
    df = a_events[["case_id", "activity", "ts"]].copy()
    df["term"] = df["activity"].isin(WON + LOST)
    df["pos"] = np.arange(len(df))
    df = df.sort_values(["case_id", "ts", "term", "pos"]).reset_index(drop=True)
    same_case_prev = df["case_id"].eq(df["case_id"].shift())
    # reopened terminals: a terminal followed later by a stage event of the same case
    later_stage = (~df["term"])[::-1].groupby(df["case_id"][::-1]).cummax()[::-1]
    later_stage = later_stage.groupby(df["case_id"]).shift(-1, fill_value=False).astype(bool)
    df = df[~(df["term"] & later_stage)].reset_index(drop=True)
    same_case_prev = df["case_id"].eq(df["case_id"].shift())
    repeat = same_case_prev & ~df["term"] & df["activity"].eq(df["activity"].shift())
    run = same_case_prev & df["term"] & df["term"].shift(fill_value=False)
    df = df[~(repeat | run)].reset_index(drop=True)
    df["next"] = df.groupby("case_id")["activity"].shift(-1)
    df["dt"] = df.groupby("case_id")["ts"].shift(-1) - df["ts"]
    moves = df[~df["term"] & df["next"].notna()]
    ref = moves.groupby(["activity", "next"]).agg(transitions=("dt", "size"), mean=("dt", "mean"))
    got = log.transitions().set_index(["from_stage", "to_stage"])
    assert sorted(got.index) == sorted(ref.index)
    got = got.loc[ref.index]
    assert got["transitions"].tolist() == ref["transitions"].tolist()
    diff = (got["dwell_mean"] - ref["mean"]).abs().max()
    assert diff <= pd.Timedelta(microseconds=1)


# ---------------------------------------------------------------- malformed real logs
def corrupt(
    a_events: pd.DataFrame, kind: str, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    df = a_events[["case_id", "activity", "ts", "amount_req"]].copy()
    rows = np.sort(rng.choice(len(df), 7, replace=False))
    if kind == "missing_deal":
        df["case_id"] = df["case_id"].astype(object)
        df.loc[rows, "case_id"] = None
    elif kind == "missing_stage":
        df["activity"] = df["activity"].astype(object)
        df.loc[rows, "activity"] = None
    elif kind in ("missing_time", "unparseable_time", "mixed_timezone"):
        ts = df["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").astype(object)
        ts.loc[rows] = {
            "missing_time": None,
            "unparseable_time": "31/02/2012 25:00",
            "mixed_timezone": "2012-01-05 10:00:00",
        }[kind]
        df["ts"] = ts
    elif kind == "unknown_stage":
        df.loc[rows, "activity"] = "A_TYPO"
    return df, rows


@pytest.mark.parametrize(
    "kind",
    [
        "missing_deal",
        "missing_stage",
        "missing_time",
        "unparseable_time",
        "mixed_timezone",
        "unknown_stage",
    ],
)
def test_malformed_copies(a_events, kind):
    rng = np.random.default_rng(7)
    df, rows = corrupt(a_events, kind, rng)
    kw = {**KW, "stages": STAGES}
    with pytest.raises(fk.EventLogError) as info:
        fk.EventLog(df, **kw)
    msg = str(info.value)
    assert "7 rows" in msg and kind.replace("_", " ") in msg
    assert info.value.failure_cases["row"].tolist() == rows.tolist()
    log = fk.EventLog(df, errors="drop", **kw)
    dropped = log.rejects[log.rejects["reason"] == kind]
    assert dropped["row"].tolist() == rows.tolist()
    q = log.quality
    assert q.rows_in == len(df) == q.rows_used + q.rows_dropped + q.rows_removed + q.rows_collapsed
    assert q.rows_dropped == 7


def test_malformed_events_after_as_of(a_events):
    as_of = "2012-03-01"
    n_after = int((a_events["ts"] > pd.Timestamp(as_of, tz="UTC")).sum())
    with pytest.raises(fk.EventLogError, match=f"{n_after:,} rows after as of"):
        fk.EventLog(a_events, as_of=as_of, **KW)
    log = fk.EventLog(a_events, as_of=as_of, errors="drop", **KW)
    assert log.quality.by_reason["after_as_of"] == n_after


def test_malformed_conflicting_outcome(a_events):
    won = a_events[a_events["activity"] == "A_APPROVED"].head(3).copy()
    won["activity"] = "A_DECLINED"  # same timestamp as the approval: a mixed terminal run
    df = pd.concat([a_events, won], ignore_index=True)
    with pytest.raises(fk.EventLogError, match="conflicting outcome"):
        fk.EventLog(df, **KW)
    log = fk.EventLog(df, errors="drop", **KW)
    assert log.quality.deals == 13_087 - 3
    assert set(log.rejects.loc[log.rejects["reason"] == "conflicting_outcome", "case_id"]) == set(
        won["case_id"]
    )
