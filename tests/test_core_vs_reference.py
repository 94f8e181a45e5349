"""The vectorised core equals the slow loop-per-deal reference (tests/reference.py),
written independently from DESIGN's text, on many generated logs with every edge case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

import funnelkit as fk
from logs import event_logs, random_log
from reference import reference

STAGES = ["A", "B", "C", "D"]
KW = dict(deal="deal", stage="stage", time="ts", stages=STAGES, won=["W"], lost=["L1", "L2"])


def _norm(df: pd.DataFrame) -> pd.DataFrame:
    """Comparable values: strings as object with None, durations as int ns, times as UTC ns."""
    out = {}
    for col in df.columns:
        s = df[col]
        if col == "deal":  # ids compare as text (the reference keeps them as objects)
            out[col] = [str(v) for v in s]
        elif (
            isinstance(s.dtype, pd.CategoricalDtype)
            or pd.api.types.is_string_dtype(s.dtype)
            or s.dtype == object
        ):
            vals = s.astype(object)
            out[col] = [
                None if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v)
                for v in vals
            ]
        elif pd.api.types.is_timedelta64_dtype(s.dtype):
            out[col] = s.astype("int64").where(s.notna(), None).tolist()
        elif pd.api.types.is_datetime64_any_dtype(s.dtype):
            out[col] = s.astype("int64").where(s.notna(), None).tolist()
        else:
            out[col] = s.to_numpy()
    return pd.DataFrame(out)


def assert_same(got: pd.DataFrame, exp: pd.DataFrame, *, ns_tol: int = 1, what: str = "") -> None:
    got, exp = (
        _norm(got[list(exp.columns)].reset_index(drop=True)),
        _norm(exp.reset_index(drop=True)),
    )
    assert len(got) == len(exp), f"{what}: {len(got)} rows vs {len(exp)}"
    for col in exp.columns:
        g, e = got[col].tolist(), exp[col].tolist()
        if all(isinstance(v, (float, np.floating)) or v is None for v in e) and any(
            isinstance(v, (float, np.floating)) for v in e
        ):
            np.testing.assert_allclose(
                np.array(g, dtype=float),
                np.array(e, dtype=float),
                rtol=1e-9,
                atol=1e-12,
                equal_nan=True,
                err_msg=f"{what}.{col}",
            )
        elif all(isinstance(v, (int, np.integer)) or v is None for v in e) and col not in (
            "transitions",
            "deals",
            "visit",
        ):
            for a, b in zip(g, e, strict=True):
                assert (a is None and b is None) or (
                    a is not None
                    and b is not None
                    and abs(int(a) - int(b)) <= max(ns_tol, 1e-12 * abs(int(b)))
                ), f"{what}.{col}: {a} vs {b}"
        else:
            assert [None if v is None else (v.item() if hasattr(v, "item") else v) for v in g] == [
                None if v is None else (v.item() if hasattr(v, "item") else v) for v in e
            ], f"{what}.{col}"


def compare(events: pd.DataFrame, **extra) -> None:
    kw = {**KW, **extra}
    ref = reference(events, amount="amount", **kw)
    log = fk.EventLog(events, amount="amount", **kw)
    q = log.quality
    r = ref["rows"].iloc[0]
    assert (q.rows_in, q.rows_used, q.rows_removed, q.rows_collapsed) == (
        r["rows_in"],
        r["used"],
        r["removed"],
        r["collapsed"],
    )
    assert_same(log.visits(), ref["visits"], what="visits")
    deals = log.deals()
    assert_same(deals, ref["deals"], what="deals")
    order = {s: i for i, s in enumerate(log._catalogue + ["stale"])}
    t = log.transitions()
    rt = ref["transitions"].copy()
    rt["_k"] = rt["from_stage"].map(order) * 100 + rt["to_stage"].map(order)
    rt = rt.sort_values("_k").drop(columns="_k")
    assert_same(t, rt, what="transitions")
    assert_same(log.funnel(), ref["funnel_implied"], what="funnel_implied")
    assert_same(log.funnel(skips="strict"), ref["funnel_strict"], what="funnel_strict")
    assert_same(log.funnel(weight="amount"), ref["funnel_implied_amount"], what="funnel_amount")
    assert_same(log.dwell(), ref["dwell"], what="dwell")
    assert_same(log.cycle_time(), ref["cycle_time"], what="cycle_time")


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("tz", [None, "Europe/Amsterdam"])
def test_random_logs_equal_reference(seed, tz):
    events = random_log(np.random.default_rng(seed), 60, tz=tz)
    compare(events, stale_after="30D")


@pytest.mark.parametrize("seed", range(4))
def test_random_logs_without_stale_and_with_as_of(seed):
    events = random_log(np.random.default_rng(100 + seed), 40)
    compare(events)
    compare(
        events, as_of=pd.Timestamp(events["ts"].max()) + pd.Timedelta(days=3), stale_after="10D"
    )


@pytest.mark.slow
@settings(max_examples=40)
@given(event_logs())
def test_property_equal_reference(events):
    compare(events, stale_after="30D")


def test_reference_random_log_is_rich():
    """The generated logs hit the edge cases the comparison is meant to cover."""
    log = fk.EventLog(random_log(np.random.default_rng(0), 60), stale_after="30D", **KW)
    q = log.quality
    assert q.reopened > 0 and q.stale > 0 and q.open > 0 and q.rows_collapsed > 0
    assert (log.visits()["visit"] > 1).any()


@pytest.mark.parametrize("seed", range(4))
def test_fine_clock_and_wide_ids_equal_reference(seed):
    """Nanosecond times over years and ids spread over 2**39 cannot be packed exactly:
    the sort packs a coarsened clock and orders equal keys exactly afterwards."""
    rng = np.random.default_rng(500 + seed)
    events = random_log(rng, 60)
    ids = {
        d: int(v)
        for d, v in zip(
            sorted(events["deal"].unique()),
            rng.choice(2**39, events["deal"].nunique(), replace=False),
            strict=True,
        )
    }
    events["deal"] = events["deal"].map(ids)
    # keep simultaneous events simultaneous: one jitter per (deal, time)
    jitter = events.groupby(["deal", "ts"])["ts"].transform(
        lambda s: pd.Timedelta(int(rng.integers(1, 999)), "ns")
    )
    events["ts"] = (
        pd.to_datetime(events["ts"]) + jitter + pd.to_timedelta(events["deal"] % 7 * 365, unit="D")
    )
    log = fk.EventLog(events, **KW)
    assert log.n_deals == len(ids)
    compare(events, stale_after="30D")
