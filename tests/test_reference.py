"""Tests of the slow reference implementation and of the random-log generator.

The reference (tests/reference.py) must reproduce every hand-checked golden table, plus a few
hand-worked cases golden does not cover; the generator (tests/logs.py) must produce every
edge case of DESIGN §1.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from conftest import GOLDEN
from logs import SCRIPT_NAMES, event_logs, random_log
from reference import deal_paths, kaplan_meier
from reference import reference as _reference

#: the reference computes the closed-deal funnel columns under their funnel() names
#: (``conversion_closed`` ...); the golden CSVs and the tables below use the names those
#: columns had before the Aalen–Johansen ``conversion`` (tests/data/golden/README.md)
_CSV_NAMES = {
    "conversion_closed": "conversion",
    "conversion_closed_low": "conversion_low",
    "conversion_closed_high": "conversion_high",
    "cumulative_closed": "cumulative",
    "win_rate_from_closed": "win_rate_from",
}


def reference(*args, **kwargs) -> dict[str, pd.DataFrame]:
    out = _reference(*args, **kwargs)
    return {
        k: v.rename(columns=_CSV_NAMES) if k.startswith("funnel") else v for k, v in out.items()
    }


STAGES = ["A", "B", "C", "D"]
WON = ["W"]
LOST = ["L1", "L2"]
GOLDEN_CALL = {
    "stages": STAGES,
    "won": "W",
    "lost": ["L1", "L2"],
    "as_of": "2025-03-01",
    "stale_after": "30D",
}
ATOL = 1e-6
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------
# helpers


def _plain(values: pd.Series) -> list[object]:
    """Values with every kind of missing (None, NaN, NA) as None."""
    return [None if pd.isna(v) else v for v in values]


def assert_table(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Compare a table with an expected one written like the golden CSVs.

    ``*_days`` columns hold durations in days (compared to 1e-6); a missing expected value
    means NaN/NaT/None; datetime columns are compared as instants. Column order is not
    compared (the golden visits file puts ``censored`` before ``dwell_days``).
    """
    names = [c.removesuffix("_days") for c in expected.columns]
    assert sorted(actual.columns) == sorted(names)
    assert len(actual) == len(expected), (len(actual), len(expected))
    for col, name in zip(expected.columns, names, strict=True):
        got = actual[name].reset_index(drop=True)
        want = expected[col].reset_index(drop=True)
        if col.endswith("_days"):
            got_days = (got / pd.Timedelta(days=1)).astype(float).to_numpy()
            np.testing.assert_allclose(
                got_days, want.astype(float).to_numpy(), atol=ATOL, rtol=0, err_msg=col
            )
        elif pd.api.types.is_datetime64_any_dtype(got):
            assert _plain(got) == _plain(pd.to_datetime(want, format="ISO8601")), col
        elif pd.api.types.is_bool_dtype(want):
            assert got.tolist() == want.tolist(), col
        elif pd.api.types.is_numeric_dtype(want):
            np.testing.assert_allclose(
                got.astype(float).to_numpy(),
                want.astype(float).to_numpy(),
                atol=ATOL,
                rtol=0,
                err_msg=col,
            )
        else:
            assert _plain(got) == _plain(want), col


def _tables_equal(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame], keys: list[str]) -> None:
    for key in keys:
        pd.testing.assert_frame_equal(a[key], b[key], obj=key)


# --------------------------------------------------------------------------------------
# golden


@pytest.fixture(scope="module")
def golden_events() -> pd.DataFrame:
    return pd.read_csv(GOLDEN / "events.csv")


@pytest.fixture(scope="module")
def golden(golden_events: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return reference(golden_events, **GOLDEN_CALL)


GOLDEN_FILES = sorted(p.name for p in GOLDEN.glob("expected_*.csv"))


def test_golden_files_are_all_covered() -> None:
    tables = {"visits", "deals", "transitions", "funnel_implied", "funnel_strict", "dwell"}
    assert {f.removeprefix("expected_").removesuffix(".csv") for f in GOLDEN_FILES} <= tables
    assert len(GOLDEN_FILES) == 6


@pytest.mark.parametrize("filename", GOLDEN_FILES)
def test_golden_table(golden: dict[str, pd.DataFrame], filename: str) -> None:
    table = filename.removeprefix("expected_").removesuffix(".csv")
    expected = pd.read_csv(GOLDEN / filename)
    assert_table(golden[table], expected)


def test_golden_row_accounting(golden: dict[str, pd.DataFrame]) -> None:
    rows = golden["rows"].iloc[0].to_dict()
    assert rows == {"rows_in": 31, "used": 27, "removed": 1, "collapsed": 3}
    assert rows["used"] + rows["removed"] + rows["collapsed"] == rows["rows_in"]


def test_golden_deal_counts(golden: dict[str, pd.DataFrame]) -> None:
    deals = golden["deals"]
    assert Counter(deals["outcome"]) == {"won": 3, "lost": 3, "stale": 1, "open": 1}
    assert deals["reopened"].sum() == 1
    assert deals.loc[deals["reopened"], "deal"].tolist() == ["d7"]


def test_golden_numbers_to_check_by_hand(golden: dict[str, pd.DataFrame]) -> None:
    day = pd.Timedelta(days=1)
    tr = golden["transitions"].set_index(["from_stage", "to_stage"])
    ab = tr.loc[("A", "B")]
    assert ab["transitions"] == 6
    assert (ab["dwell_mean"], ab["dwell_median"], ab["dwell_p90"]) == (
        5.5 * day,
        4 * day,
        11.5 * day,
    )
    dwell = golden["dwell"].set_index("stage")
    assert dwell.loc["B", "median"] == 5 * day and dwell.loc["B", "visits"] == 7
    assert dwell.loc["C", "median"] == 10 * day
    assert abs(dwell.loc["C", "mean"] / day - 9.2) < ATOL
    assert pd.isna(dwell.loc["C", "p90"])
    implied = golden["funnel_implied"].set_index("stage")
    assert implied.loc["C", "reached"] == 5
    assert implied.loc["B", "conversion"] == 0.625
    assert abs(implied.loc["B", "conversion_low"] - 0.305742) < ATOL
    assert abs(implied.loc["B", "conversion_high"] - 0.863156) < ATOL
    strict = golden["funnel_strict"].set_index("stage")
    assert strict.loc["D", "reached"] == 1
    assert abs(strict.loc["D", "cumulative"] - 8 / 21) < 1e-12


def test_golden_cycle_time(golden: dict[str, pd.DataFrame]) -> None:
    """Worked by hand: won 24, 30, 35; lost 14, 4, 4.625; open d4 censored at 57 days."""
    expected = pd.DataFrame(
        {
            "outcome": ["won", "lost", "any"],
            "deals": [3, 3, 7],
            "censored": [0, 0, 1],
            "mean_days": [89 / 3, 22.625 / 3, 4 + 140.625 / 7],
            "median_days": [30.0, 4.625, 24.0],
            "p75_days": [32.5, 9.3125, 35.0],
            "p90_days": [34.0, 12.125, math.nan],
        }
    )
    assert_table(golden["cycle_time"], expected)


def test_golden_is_invariant_to_row_order(golden_events: pd.DataFrame) -> None:
    """Golden has no unresolved ties, so every table is independent of the row order."""
    base = reference(golden_events, **GOLDEN_CALL)
    for seed in range(5):
        order = np.random.default_rng(seed).permutation(len(golden_events))
        shuffled = golden_events.iloc[order].reset_index(drop=True)
        _tables_equal(base, reference(shuffled, **GOLDEN_CALL), list(base))


def test_golden_default_as_of_is_latest_row(golden_events: pd.DataFrame) -> None:
    call = {**GOLDEN_CALL, "as_of": None}
    visits = reference(golden_events, **call)["visits"]
    # latest row is d4's C on 2025-02-15, so d4 has been in C for 0 days
    d4 = visits[visits["deal"] == "d4"].iloc[-1]
    assert d4["censored"] and d4["dwell"] == pd.Timedelta(0)


# --------------------------------------------------------------------------------------
# hand-worked cases golden does not cover


def test_amount_weights() -> None:
    """Weighted funnel: counts are sums of amounts; Wilson with Kish's effective n."""
    events = pd.DataFrame(
        [
            ("x1", "A", "2025-01-01", None),
            ("x1", "B", "2025-01-03", 100.0),
            ("x1", "W", "2025-01-05", 300.0),  # amount changes: the first non-null counts
            ("x2", "A", "2025-01-01", 300.0),
            ("x2", "L1", "2025-01-04", 300.0),
            ("x3", "A", "2025-01-02", None),  # no amount at all: weight 0
            ("x3", "B", "2025-01-04", None),
            ("x4", "B", "2025-01-02", 50.0),  # enters mid-funnel
            ("x4", "L2", "2025-01-06", 50.0),
        ],
        columns=["deal", "stage", "ts", "amount"],
    )
    out = reference(events, stages=STAGES, won=WON, lost=LOST, as_of="2025-01-10", amount="amount")
    assert out["deals"]["amount"].tolist()[:2] == [100.0, 300.0]
    assert math.isnan(out["deals"]["amount"].iloc[2])
    assert out["deals"]["amount"].iloc[3] == 50.0
    # A: Σw = 450 over x1, x2, x3, x4 (weights 100, 300, 0, 50): n_eff = 450² / 102500
    # B: x1 and x4 resolved: n_eff = 150² / (100² + 50²) = 1.8;  C, D: x1 only, n_eff = 1
    expected = pd.DataFrame(
        {
            "stage": STAGES,
            "reached": [450.0, 150.0, 100.0, 100.0],
            "advanced": [150.0, 100.0, 100.0, 100.0],
            "dropped": [300.0, 50.0, 0.0, 0.0],
            "open": [0.0, 0.0, 0.0, 0.0],
            "conversion": [1 / 3, 2 / 3, 1.0, 1.0],
            "conversion_low": [0.044818, 0.147964, 0.206549, 0.206549],
            "conversion_high": [0.841974, 0.958392, 1.0, 1.0],
            "conversion_raw": [1 / 3, 2 / 3, 1.0, 1.0],
            "cumulative": [1.0, 1 / 3, 2 / 9, 2 / 9],
            "win_rate_from": [100 / 450, 100 / 150, 1.0, 1.0],
        }
    )
    assert_table(out["funnel_implied_amount"], expected)
    unweighted = out["funnel_implied"]
    assert unweighted["reached"].tolist() == [4, 3, 1, 1]
    assert unweighted["advanced"].tolist() == [3, 1, 1, 1]
    assert unweighted["dropped"].tolist() == [1, 1, 0, 0]
    assert unweighted["open"].tolist() == [0, 1, 0, 0]
    assert "funnel_implied_amount" not in reference(
        events, stages=STAGES, won=WON, lost=LOST, as_of="2025-01-10"
    )


DST_EVENTS = pd.DataFrame(
    [
        ("z1", "A", "2025-03-29 12:00+01:00"),
        ("z1", "B", "2025-03-30 12:00+02:00"),  # 23 hours later: the clocks went forward
        ("z1", "W", "2025-03-31T12:00:00+02:00"),
        ("z2", "A", "2025-03-29T00:00+01:00"),
        ("z2", "L1", "2025-03-30T01:00Z"),  # the same instant as B below, listed first
        ("z2", "B", "2025-03-30T03:00+02:00"),
        ("z3", "A", "2025-03-31T00:00+02:00"),
    ],
    columns=["deal", "stage", "ts"],
)


def test_time_zones_and_dst() -> None:
    """Offsets differ across DST; everything becomes UTC; a naive as_of is read as UTC."""
    call = {"stages": STAGES, "won": WON, "lost": LOST, "as_of": "2025-04-01 10:00"}
    out = reference(DST_EVENTS, **call)
    assert str(out["visits"]["entered"].dtype) == "datetime64[ns, UTC]"
    expected_visits = pd.DataFrame(
        {
            "deal": ["z1", "z1", "z2", "z2", "z3"],
            "stage": ["A", "B", "A", "B", "A"],
            "visit": [1, 1, 1, 1, 1],
            "entered": [
                "2025-03-29 11:00+00:00",
                "2025-03-30 10:00+00:00",
                "2025-03-28 23:00+00:00",
                "2025-03-30 01:00+00:00",
                "2025-03-30 22:00+00:00",
            ],
            "next_stage": ["B", "W", "B", "L1", None],
            "dwell_days": [23 / 24, 1.0, 26 / 24, 0.0, 1.5],
            "censored": [False, False, False, False, True],
        }
    )
    assert_table(out["visits"], expected_visits)
    deals = out["deals"]
    assert deals["outcome"].tolist() == ["won", "lost", "open"]
    assert (deals["cycle_time"].iloc[:2] / pd.Timedelta(hours=1)).tolist() == [47.0, 26.0]

    # the same instants as a tz-aware column in Amsterdam time give the same tables
    aware = DST_EVENTS.assign(
        ts=pd.Series([pd.Timestamp(t) for t in DST_EVENTS["ts"]]).map(
            lambda t: t.tz_convert("Europe/Amsterdam")
        )
    )
    _tables_equal(out, reference(aware, **call), list(out))

    # an aware as_of works too; z3's last event is 36 hours before as_of
    stale = reference(
        DST_EVENTS, **{**call, "as_of": "2025-04-01 12:00+02:00", "stale_after": "1D"}
    )
    assert stale["deals"]["outcome"].tolist() == ["won", "lost", "stale"]
    assert stale["visits"]["next_stage"].iloc[-1] == "stale"


def test_two_won_names_and_only_terminal_deals() -> None:
    """Two won names, terminal runs, unresolved terminal ties, only-terminal deals."""
    events = pd.DataFrame(
        [
            ("t1", "A", "2025-01-01"),
            ("t1", "W2", "2025-01-03"),
            ("t1", "W", "2025-01-03 05:00"),  # run W2, W: collapses into W2
            ("t2", "A", "2025-01-01"),
            ("t2", "B", "2025-01-02"),
            ("t2", "W2", "2025-01-04"),  # tie of two won names: input order, W2 first
            ("t2", "W", "2025-01-04"),
            ("t3", "W2", "2025-01-05"),  # only a won event: reached every stage (implied)
            ("t4", "L", "2025-01-06"),  # only a lost event: reached nothing
            ("t5", "W", "2025-01-01"),  # won, then reopened: W leaves the path
            ("t5", "A", "2025-01-02"),
            ("t5", "B", "2025-01-03"),
        ],
        columns=["deal", "stage", "ts"],
    )
    out = reference(events, stages=STAGES, won=["W", "W2"], lost="L", as_of="2025-01-10")
    assert out["rows"].iloc[0].to_dict() == {
        "rows_in": 12,
        "used": 9,
        "removed": 1,
        "collapsed": 2,
    }
    expected_deals = pd.DataFrame(
        {
            "deal": ["t1", "t2", "t3", "t4", "t5"],
            "outcome": ["won", "won", "won", "lost", "open"],
            "outcome_stage": ["W2", "W2", "W2", "L", None],
            "furthest_stage": ["A", "B", None, None, "B"],
            "first_event": ["2025-01-01", "2025-01-01", "2025-01-05", "2025-01-06", "2025-01-01"],
            "last_event": [
                "2025-01-03 05:00",
                "2025-01-04",
                "2025-01-05",
                "2025-01-06",
                "2025-01-03",
            ],
            "cycle_time_days": [2.0, 3.0, 0.0, 0.0, math.nan],
            "reopened": [False, False, False, False, True],
        }
    )
    assert_table(out["deals"], expected_deals)
    expected_transitions = pd.DataFrame(
        {
            "from_stage": ["A", "A", "B"],
            "to_stage": ["B", "W2", "W2"],
            "transitions": [2, 1, 1],
            "deals": [2, 1, 1],
            "share": [2 / 3, 1 / 3, 1.0],
            "dwell_mean_days": [1.0, 2.0, 2.0],
            "dwell_median_days": [1.0, 2.0, 2.0],
            "dwell_p90_days": [1.0, 2.0, 2.0],
        }
    )
    assert_table(out["transitions"], expected_transitions)
    nan = math.nan
    implied = pd.DataFrame(
        {
            "stage": STAGES,
            "reached": [4, 4, 3, 3],
            "advanced": [4, 3, 3, 3],
            "dropped": [0, 0, 0, 0],
            "open": [0, 1, 0, 0],
            "conversion": [1.0, 1.0, 1.0, 1.0],
            "conversion_low": [0.510109, 0.438503, 0.438503, 0.438503],
            "conversion_high": [1.0, 1.0, 1.0, 1.0],
            "conversion_raw": [1.0, 0.75, 1.0, 1.0],
            "cumulative": [1.0, 1.0, 1.0, 1.0],
            "win_rate_from": [1.0, 1.0, 1.0, 1.0],
        }
    )
    assert_table(out["funnel_implied"], implied)
    strict = pd.DataFrame(
        {
            "stage": STAGES,
            "reached": [3, 2, 0, 0],
            "advanced": [3, 1, 0, 0],
            "dropped": [0, 0, 0, 0],
            "open": [0, 1, 0, 0],
            "conversion": [1.0, 1.0, nan, nan],
            "conversion_low": [0.438503, 0.206549, nan, nan],
            "conversion_high": [1.0, 1.0, nan, nan],
            "conversion_raw": [1.0, 0.5, nan, nan],
            "cumulative": [1.0, 1.0, 1.0, nan],  # NaN after the first unresolved stage
            "win_rate_from": [1.0, 1.0, nan, nan],
        }
    )
    assert_table(out["funnel_strict"], strict)
    dwell = out["dwell"].set_index("stage")
    assert dwell.loc["B", "censored"] == 1 and dwell.loc["B", "visits"] == 2
    assert dwell.loc["C", "visits"] == 0 and pd.isna(dwell.loc["C", "median"])


def test_kaplan_meier_events_before_censorings() -> None:
    """A's dwells: 2 (event), 2 (censored), 4 (event), 6 (event) days."""
    events = pd.DataFrame(
        [
            ("e1", "A", "2025-01-01"),
            ("e1", "W", "2025-01-03"),
            ("e2", "A", "2025-01-08"),
            ("e3", "A", "2025-01-01"),
            ("e3", "L1", "2025-01-05"),
            ("e4", "A", "2025-01-01"),
            ("e4", "W", "2025-01-07"),
        ],
        columns=["deal", "stage", "ts"],
    )
    out = reference(events, stages=STAGES, won=WON, lost=LOST, as_of="2025-01-10")
    # at t=2 all four are at risk (the censored one too): S = 3/4, then 3/8, then 0
    dwell_a = pd.DataFrame(
        {
            "stage": ["A"],
            "visits": [4],
            "censored": [1],
            "mean_days": [2 + 2 * 0.75 + 2 * 0.375],
            "median_days": [4.0],
            "p75_days": [6.0],
            "p90_days": [6.0],
        }
    )
    assert_table(out["dwell"].iloc[:1], dwell_a)
    # cycle times have the same shape: events 2, 4, 6 and e2 censored at 2 days
    cycle = pd.DataFrame(
        {
            "outcome": ["won", "lost", "any"],
            "deals": [2, 1, 4],
            "censored": [0, 0, 1],
            "mean_days": [4.0, 4.0, 4.25],
            "median_days": [4.0, 4.0, 4.0],
            "p75_days": [5.0, 4.0, 6.0],
            "p90_days": [5.6, 4.0, 6.0],
        }
    )
    assert_table(out["cycle_time"], cycle)


def test_stale_threshold_is_strict_and_counts_collapsed_rows() -> None:
    events = pd.DataFrame(
        [
            ("s1", "A", "2025-01-01"),  # exactly 30 days before as_of: not stale
            ("s2", "A", "2024-12-31 23:00"),  # 30 days and an hour: stale
            ("s3", "A", "2024-11-01"),
            ("s3", "A", "2025-01-20"),  # a re-logged stage keeps it alive
        ],
        columns=["deal", "stage", "ts"],
    )
    out = reference(
        events, stages=STAGES, won=WON, lost=LOST, as_of="2025-01-31", stale_after="30D"
    )
    assert out["deals"]["outcome"].tolist() == ["open", "stale", "open"]
    visits = out["visits"]
    assert visits["dwell"].iloc[2] == pd.Timedelta(days=91)  # the visit began on 11-01
    assert out["rows"]["collapsed"].iloc[0] == 1


# --------------------------------------------------------------------------------------
# the generator produces every edge case


def _edge_counts(log: pd.DataFrame) -> Counter[str]:
    """Count each edge case of DESIGN §1 in a log (default stage names)."""
    terminal = set(WON) | set(LOST)
    rank = {s: i for i, s in enumerate(STAGES)}
    counts: Counter[str] = Counter()
    for _, group in log.groupby(["deal", "ts"]):
        names = group["stage"].tolist()
        if len(names) > 1:
            counts["tie"] += 1
        if any(n in terminal for n in names) and any(n not in terminal for n in names):
            counts["tie_stage_terminal"] += 1
        if len({n for n in names if n not in terminal}) >= 2:
            counts["tie_stage_stage"] += 1

    paths, _ = deal_paths(log, stages=STAGES, won=WON, lost=LOST)
    for dp in paths.values():
        counts["repeat"] += sum(not e.terminal for e in dp.collapsed)
        run: list[str] = []
        for e in reversed(dp.events):
            if not e.terminal:
                break
            run.append(e.stage)
        if len(run) > len(set(run)):
            counts["run_same_name"] += 1
        if len(set(run)) >= 2:
            counts["run_two_names"] += 1
        if len({n in WON for n in run}) > 1:
            counts["run_mixed"] += 1
        if all(e.terminal for e in dp.events):
            counts["only_terminal"] += 1
        if not dp.path[0].terminal and dp.path[0].stage != STAGES[0]:
            counts["mid_entry"] += 1

    out = reference(log, stages=STAGES, won=WON, lost=LOST, stale_after="30D", amount="amount")
    for _, v in out["visits"].iterrows():
        nxt = v["next_stage"]
        if nxt in rank and rank[nxt] < rank[v["stage"]]:
            counts["backward"] += 1
        if nxt in rank and rank[nxt] > rank[v["stage"]] + 1:
            counts["skip"] += 1
    deals = out["deals"]
    counts["reopened"] = int(deals["reopened"].sum())
    counts.update(deals["outcome"].tolist())
    counts["lost_names"] = deals.loc[deals["outcome"] == "lost", "outcome_stage"].nunique()
    counts["null_amount_rows"] = int(log["amount"].isna().sum())
    per_deal = log.dropna(subset=["amount"]).groupby("deal")["amount"].nunique()
    counts["amount_varies"] = int((per_deal > 1).sum())
    counts["deals_without_amount"] = int(deals["amount"].isna().sum())
    return counts


EDGE_CASES = [
    "tie",
    "tie_stage_terminal",
    "tie_stage_stage",
    "repeat",
    "backward",
    "skip",
    "mid_entry",
    "reopened",
    "run_same_name",
    "run_two_names",
    "only_terminal",
    "won",
    "lost",
    "open",
    "stale",
    "null_amount_rows",
    "amount_varies",
    "deals_without_amount",
]


@pytest.mark.parametrize("seed", range(6))
def test_random_log_hits_every_edge_case(seed: int) -> None:
    log = random_log(np.random.default_rng(seed))
    assert list(log.columns) == ["deal", "stage", "ts", "amount"]
    assert log["deal"].nunique() == 30
    counts = _edge_counts(log)
    missing = [case for case in EDGE_CASES if counts[case] < 1]
    assert not missing, dict(counts)
    assert counts["lost_names"] >= 2
    assert counts["run_mixed"] == 0
    # coarse grid and shuffled rows
    assert (log["ts"].dt.minute == 0).all() and (log["ts"].dt.second == 0).all()
    assert not log["deal"].is_monotonic_increasing


def test_random_walks_alone_vary() -> None:
    """Beyond the scripted deals, the random walks produce the path edge cases too."""
    log = random_log(np.random.default_rng(7), 300)
    scripted = {f"d{i:03d}" for i in range(len(SCRIPT_NAMES))}
    counts = _edge_counts(log[~log["deal"].isin(scripted)].reset_index(drop=True))
    for case in ["tie_stage_terminal", "tie_stage_stage", "repeat", "backward", "skip"]:
        assert counts[case] >= 3, (case, dict(counts))
    for case in ["mid_entry", "reopened", "run_same_name", "run_two_names", "open", "stale"]:
        assert counts[case] >= 3, (case, dict(counts))
    assert counts["run_mixed"] == 0


def test_scripted_deals_have_the_intended_outcomes() -> None:
    log = random_log(np.random.default_rng(3))
    deals = reference(log, stages=STAGES, won=WON, lost=LOST, stale_after="30D")["deals"]
    by_name = dict(zip(SCRIPT_NAMES, deals.iloc[: len(SCRIPT_NAMES)].itertuples(), strict=True))
    expected = {
        "anchor_open": "open",
        "straight_won": "won",
        "skip_lost": "lost",
        "backward_won": "won",
        "mid_entry_open": "open",
        "stale": "stale",
        "tie_stage_terminal": "lost",
        "tie_stage_stage": "lost",
        "reopened_won": "won",
        "reopened_first_terminal": "lost",
        "reopened_open": "open",
        "run_same_name": "won",
        "run_two_won": "won",
        "run_two_lost": "lost",
        "repeats_open": "open",
        "only_won": "won",
        "only_lost": "lost",
        "stale_boundary_not_stale": "open",
        "stale_just_over": "stale",
        "repeat_keeps_alive": "open",
    }
    assert {name: row.outcome for name, row in by_name.items()} == expected
    reopened = {name for name, row in by_name.items() if row.reopened}
    assert reopened == {"reopened_won", "reopened_first_terminal", "reopened_open"}
    assert by_name["tie_stage_stage"].furthest_stage == "C"
    assert by_name["only_won"].furthest_stage is None
    # the anchor's last event is the window's end, so it is the default as_of
    assert log["ts"].max() == deals["last_event"].iloc[0]


def test_random_log_time_zone_offsets_vary() -> None:
    log = random_log(np.random.default_rng(0), tz="Europe/Amsterdam")
    assert str(log["ts"].dt.tz) == "Europe/Amsterdam"
    offsets = {t.utcoffset() for t in log["ts"]}
    assert offsets == {pd.Timedelta(hours=1), pd.Timedelta(hours=2)}


def test_random_log_other_names() -> None:
    """Custom stage and terminal names, with two won names."""
    log = random_log(
        np.random.default_rng(1), 40, stages=("s1", "s2", "s3"), won=("ok", "ok2"), lost=("no",)
    )
    assert set(log["stage"]) == {"s1", "s2", "s3", "ok", "ok2", "no"}
    out = reference(log, stages=["s1", "s2", "s3"], won=["ok", "ok2"], lost="no")
    assert set(out["deals"]["outcome_stage"].dropna()) >= {"ok", "no"}


# --------------------------------------------------------------------------------------
# properties of the reference on random logs


def _call(log: pd.DataFrame, **kwargs: object) -> dict[str, pd.DataFrame]:
    return reference(
        log, stages=STAGES, won=WON, lost=LOST, stale_after="30D", amount="amount", **kwargs
    )


@pytest.mark.slow
@PROPERTY
@given(log=event_logs())
def test_accounting_identities(log: pd.DataFrame) -> None:
    out = _call(log)
    rows = out["rows"].iloc[0]
    assert rows["used"] + rows["removed"] + rows["collapsed"] == rows["rows_in"] == len(log)
    deals = out["deals"]
    resolved = int(deals["outcome"].isin(["won", "lost"]).sum())
    assert len(out["visits"]) == rows["used"] - resolved  # a path = visits + its terminal
    assert int(out["visits"]["censored"].sum()) == int((deals["outcome"] == "open").sum())
    assert out["transitions"]["transitions"].sum() == out["visits"]["next_stage"].notna().sum()
    for key in ["funnel_implied", "funnel_strict", "funnel_implied_amount"]:
        f = out[key]
        total = f["advanced"] + f["dropped"] + f["open"]
        np.testing.assert_allclose(f["reached"], total)
    implied, strict = out["funnel_implied"], out["funnel_strict"]
    assert (strict["reached"] <= implied["reached"]).all()
    assert implied["reached"].is_monotonic_decreasing
    any_row = out["cycle_time"].iloc[2]
    assert any_row["deals"] == int(deals["outcome"].isin(["won", "lost", "open"]).sum())


@pytest.mark.slow
@PROPERTY
@given(log=event_logs(), seed=st.integers(0, 2**32 - 1))
def test_invariant_to_row_order(log: pd.DataFrame, seed: int) -> None:
    """Only unresolved ties (terminals of one outcome, varying amounts) may depend on order."""
    shuffled = log.iloc[np.random.default_rng(seed).permutation(len(log))]
    a, b = _call(log), _call(shuffled.reset_index(drop=True))
    _tables_equal(a, b, ["funnel_implied", "funnel_strict", "dwell", "cycle_time", "rows"])
    cols = ["deal", "outcome", "furthest_stage", "first_event", "last_event", "cycle_time"]
    pd.testing.assert_frame_equal(a["deals"][cols], b["deals"][cols])
    visit_cols = ["deal", "stage", "visit", "entered", "dwell", "censored"]
    pd.testing.assert_frame_equal(a["visits"][visit_cols], b["visits"][visit_cols])


@pytest.mark.slow
@PROPERTY
@given(log=event_logs(tz=["Europe/Amsterdam", "America/New_York"]))
def test_aware_log_equals_utc_wall_time(log: pd.DataFrame) -> None:
    naive = log.assign(ts=log["ts"].dt.tz_convert("UTC").dt.tz_localize(None))
    a, b = _call(log), _call(naive)
    assert a.keys() == b.keys()
    for key in a:
        frame = a[key].copy()
        for col in frame.columns:
            if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
                frame[col] = frame[col].dt.tz_localize(None)
        pd.testing.assert_frame_equal(frame, b[key], obj=key)


@pytest.mark.slow
@PROPERTY
@given(log=event_logs(tz=[None, "Europe/Amsterdam"]))
def test_string_times_equal_datetimes(log: pd.DataFrame) -> None:
    """ISO 8601 strings of mixed precision (dates at midnight) parse to the same times."""

    def as_text(t: pd.Timestamp) -> str:
        if t.tzinfo is not None:
            return t.isoformat()
        return t.strftime("%Y-%m-%d") if t == t.normalize() else t.strftime("%Y-%m-%d %H:%M")

    text = log.assign(ts=[as_text(t) for t in log["ts"]])
    a, b = _call(log), _call(text)
    for key in a:
        pd.testing.assert_frame_equal(a[key], b[key], obj=key)


@pytest.mark.slow
@PROPERTY
@given(log=event_logs(min_deals=5))
def test_hand_written_kaplan_meier_equals_scipy(log: pd.DataFrame) -> None:
    visits = _call(log)["visits"]
    visits = visits[visits["dwell"].notna()]
    for _, group in visits.groupby("stage"):
        days = (group["dwell"] / pd.Timedelta(days=1)).to_numpy()
        censored = group["censored"].to_numpy()
        ns = [int(d.value) for d in group["dwell"]]
        curve = kaplan_meier(ns, censored.tolist())
        if censored.all():
            assert curve == []
            continue
        data = stats.CensoredData(uncensored=days[~censored], right=days[censored])
        sf = stats.ecdf(data).sf
        for t, s in curve:
            assert sf.evaluate(t / 86_400e9) == pytest.approx(s, abs=1e-12)
