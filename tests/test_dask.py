"""The distributed log (funnelkit.dask) against the in-memory one, on a local cluster."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import dask.dataframe as dd  # noqa: E402

import funnelkit as fk  # noqa: E402
from funnelkit import _summary as SM  # noqa: E402
from funnelkit.dask import DaskEventLog, read_events  # noqa: E402
from funnelkit.errors import InvalidParameterError  # noqa: E402
from logs import LOG_KW, random_log  # noqa: E402

KW = dict(
    deal="deal",
    stage="stage",
    time="ts",
    won="W",
    lost=["L1", "L2"],
    stale_after="30D",
    amount="amount",
    attrs=["team", "tier"],
)
NAT = np.iinfo(np.int64).min


@pytest.fixture(scope="module")
def client():
    """Two workers in threads: the engine's results do not depend on where a task runs,
    and worker processes cost each test seconds of start-up and transfers on 2 cores.
    :func:`process_client` runs the broadest parity test on worker processes too."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture
def process_client(client):
    """Two worker processes (tasks, partitions and results pickled between processes, as
    on a real cluster), the default client while the test runs."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
        c.as_current(),
    ):
        yield c


def with_attrs(events: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Carried attributes per deal: a team (some deals without one, one deal that changes
    team) and a numeric tier with missing values."""
    deals = events["deal"].unique()
    team = dict(
        zip(
            deals,
            rng.choice(np.array(["x", "y", "z", None], dtype=object), deals.size),
            strict=True,
        )
    )
    tier = dict(zip(deals, rng.choice([1.0, 2.0, np.nan], deals.size), strict=True))
    out = events.assign(team=events["deal"].map(team), tier=events["deal"].map(tier))
    first = out.index[out["deal"] == deals[0]]
    out.loc[first[-1], "team"] = "changed"
    return out


def distributed_log(events: pd.DataFrame, npartitions: int = 4, **kw) -> DaskEventLog:
    """Rows spread over 3 input partitions in their (shuffled) order, 4 after the shuffle
    (not a multiple of 3: each partition's deals come from several input partitions; a
    few tests use 16 or 20; every task of a run costs the scheduler's overhead)."""
    return DaskEventLog(
        dd.from_pandas(events, npartitions=3, sort=False), npartitions=npartitions, **kw
    )


def assert_same(
    a: pd.DataFrame, b: pd.DataFrame, *, rel: float = 0.0, ns: int = 1_000, input_dtypes=()
) -> None:
    """Same columns, rows and dtypes; counts and labels equal; floats to 1e-9; durations
    within ``ns`` nanoseconds or ``rel`` of the in-memory value. Columns copied from the
    input (``input_dtypes``) may differ in dtype: dask reads strings as ``string``.
    Floats are compared to 1e-9 relative and 1e-12 absolute."""
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for c in a.columns:
        x, y = a[c], b[c]
        if pd.api.types.is_timedelta64_dtype(x.dtype):
            assert pd.api.types.is_timedelta64_dtype(y.dtype), c
            xi = x.to_numpy("m8[ns]").view(np.int64)
            yi = y.to_numpy("m8[ns]").view(np.int64)
            assert ((xi == NAT) == (yi == NAT)).all(), c
            ok = xi != NAT
            err = np.abs(xi[ok].astype(float) - yi[ok].astype(float))
            tol = np.maximum(ns, rel * np.abs(xi[ok].astype(float)))
            assert (err <= tol).all(), (c, np.max(err / np.maximum(np.abs(xi[ok]), 1)))
        elif pd.api.types.is_float_dtype(x.dtype):
            np.testing.assert_allclose(  # sums merged in another order: 1e-16 where 0
                y.to_numpy(float), x.to_numpy(float), rtol=1e-9, atol=1e-12, err_msg=c
            )
        else:
            xs = x.astype(object).where(x.notna(), None).tolist()
            ys = y.astype(object).where(y.notna(), None).tolist()
            assert xs == ys, c
        if c not in (*KW["attrs"], *input_dtypes):
            assert x.dtype == y.dtype, (c, x.dtype, y.dtype)


FUNNEL_GRID = [(s, w) for s in ("implied", "strict") for w in (None, "amount")]


def assert_same_log(mem: fk.EventLog, dist: DaskEventLog, *, rel: float = 0.0) -> None:
    assert dist.stages == mem.stages
    assert dist.as_of == mem.as_of
    assert dist.quality == mem.quality
    assert_same(mem.transitions(), dist.transitions(), rel=rel)
    assert_same(mem.transition_matrix("counts"), dist.transition_matrix("counts"))
    # each funnel question but the default costs the Dask log a pass (the conversion
    # clock): every (skips, weight) for one `by` and without, two for the pair
    funnels = {None: FUNNEL_GRID, "team": FUNNEL_GRID, ("team", "tier"): FUNNEL_GRID[::3]}
    for by, grid in funnels.items():
        by = list(by) if isinstance(by, tuple) else by
        for skips, weight in grid:
            assert_same(
                mem.funnel(skips=skips, weight=weight, by=by),
                dist.funnel(skips=skips, weight=weight, by=by),
            )
        for visits in ("all", "first", "repeat"):
            assert_same(mem.dwell(by=by, visits=visits), dist.dwell(by=by, visits=visits), rel=rel)
        assert_same(mem.cycle_time(by=by), dist.cycle_time(by=by), rel=rel)
        assert_same(mem.kpis(by=by), dist.kpis(by=by), rel=rel)
        if by != "team":
            assert_same(mem.incidence(by=by), dist.incidence(by=by))
    stage = mem.stages[len(mem.stages) // 2]
    assert_same(mem.incidence(stage), dist.incidence(stage))
    assert_same(
        mem.key_stages(signals="leverage", n_boot=0), dist.key_stages(signals="leverage", n_boot=0)
    )


# --------------------------------------------------------------------------- equality
def test_import_funnelkit_does_not_import_dask():
    code = (
        "import sys, funnelkit as fk\n"
        "log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)\n"
        "log.funnel()\n"
        "import funnelkit.dask\n"  # the module itself imports dask only when used
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("seed", "tz", "stages"),
    [
        (1, None, ["A", "B", "C", "D"]),
        (2, "Europe/Amsterdam", None),
        (3, "America/New_York", ["A", "B", "C", "D"]),
    ],
)
def test_random_logs_equal_in_memory(client, seed, tz, stages, request):
    if seed == 2:  # on worker processes: everything the engine ships pickles
        request.getfixturevalue("process_client")
        workers = distributed.get_client().scheduler_info()["workers"]
        assert len(workers) == 2 and all(w.startswith("tcp://") for w in workers)
    rng = np.random.default_rng(seed)
    events = with_attrs(random_log(rng, 160, tz=tz), rng)
    kw = dict(KW, stages=stages)
    mem = fk.EventLog(events, **kw)
    dist = distributed_log(events, **kw)
    assert_same_log(mem, dist)
    assert dist.quality.stage_order_inferred == (stages is None)
    # the lazy frames: the same rows, whatever the partitioning
    key = ["deal", "entered", "visit", "stage"]
    v_mem = mem.visits().sort_values(key, kind="stable").reset_index(drop=True)
    v_dist = dist.visits().compute().sort_values(key, kind="stable").reset_index(drop=True)
    assert_same(v_mem, v_dist, ns=0, input_dtypes=["deal"])
    d_mem = mem.deals().sort_values("deal").reset_index(drop=True)
    d_dist = dist.deals().compute().sort_values("deal").reset_index(drop=True)
    assert_same(d_mem, d_dist, ns=0, input_dtypes=["deal"])
    r_dist = dist.rejects.compute().sort_values("row").reset_index(drop=True)
    assert_same(mem.rejects, r_dist, input_dtypes=events.columns)


@pytest.mark.slow
def test_synthetic_exact_and_binned(client):
    events = fk.datasets.synthetic(20_000, seed=7)
    events = events.sample(frac=1.0, random_state=1).reset_index(drop=True)
    kw = dict(fk.datasets.SAMPLE_KWARGS)
    mem = fk.EventLog(events, **kw)
    # default: every (segment, stage) group has at most 1024 distinct durations → exact
    dist = distributed_log(events, **kw)
    assert_same(mem.dwell(by="team"), dist.dwell(by="team"))
    assert_same(mem.cycle_time(), dist.cycle_time())
    # the 95% intervals are among the compared columns, defined and bracketing the median
    d = dist.dwell()
    assert {"median_low", "median_high", "mean_low", "p90_high"} <= set(d.columns)
    assert (d["median_low"] < d["median"]).all() and (d["median"] < d["median_high"]).all()
    # transitions: some (from, to) pairs have more distinct durations → bins (≤ 0.5%)
    assert dist.summary.tables["transition_dwell"]["binned"].any()
    assert_same(mem.transitions(), dist.transitions(), rel=SM.BIN_ERROR)
    assert_same(mem.funnel(by="region"), dist.funnel(by="region"))
    # every group binned: complete durations within 0.5%; Kaplan–Meier within 1% for the
    # groups large enough to be binned by default (more than 1024 distinct durations)
    binned = distributed_log(events, exact_durations=0, **kw)
    assert binned.summary.tables["dwell"]["binned"].all()
    assert binned.quality == mem.quality
    assert_same(mem.transitions(), binned.transitions(), rel=SM.BIN_ERROR)
    won_lost = mem.cycle_time()["outcome"] != "any"
    assert_same(mem.cycle_time()[won_lost], binned.cycle_time()[won_lost], rel=SM.BIN_ERROR)
    for visits in ("all", "first"):
        a, b = mem.dwell(visits=visits), binned.dwell(visits=visits)
        large = a["visits"] > 1024
        assert large.sum() >= 3
        assert_same(a[large], b[large], rel=0.01)
    assert_same(mem.cycle_time(), binned.cycle_time(), rel=0.01)
    a, b = mem.kpis(by="team"), binned.kpis(by="team")
    sketched = ["median_won_cycle_time", "pipeline_velocity"]
    assert_same(a.drop(columns=sketched), b.drop(columns=sketched))
    assert_same(a[sketched[:1]], b[sketched[:1]], rel=SM.BIN_ERROR)
    np.testing.assert_allclose(b[sketched[1]], a[sketched[1]], rtol=0.006)


@pytest.mark.slow  # over 1 s: the main suite runs it, CI's pandas 2.2 leg does not
def test_leverage_bootstrap(client):
    events = fk.datasets.synthetic(5_000, seed=11)
    kw = dict(fk.datasets.SAMPLE_KWARGS)
    mem = fk.EventLog(events, **kw).key_stages(signals="leverage", n_boot=300, seed=4)
    dist_log = distributed_log(events, **kw)
    dist = dist_log.key_stages(signals="leverage", n_boot=300, seed=4)
    # both engines draw the same deal patterns in the same order: the interval too is
    # the in-memory one, and it does not depend on the partitioning
    assert_same(mem, dist)
    other = distributed_log(events, npartitions=3, **kw)
    assert_same(dist, other.key_stages(signals="leverage", n_boot=300, seed=4))
    with pytest.raises(NotImplementedError, match="compute"):
        dist_log.forecast()
    # what an in-memory-only method needs, and where to get it
    with pytest.raises(NotImplementedError, match=r"field history.*with_history"):
        dist_log.slippage()
    with pytest.raises(NotImplementedError, match=r"activity log.*with_activities"):
        dist_log.activities()
    with pytest.raises(NotImplementedError, match=r"log.compute\(\).*\.save"):
        dist_log.save("x")
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        dist_log.nonsense  # noqa: B018


@pytest.mark.slow
@pytest.mark.parametrize(
    ("seed", "stages"), [(4, ["A", "B", "C", "D"]), (5, None)], ids=["stages", "inferred"]
)
def test_filter_equals_the_in_memory_filter(client, seed, stages):
    """Every kind of condition, alone and together: the same deals, rows, quality
    (``filtered`` included) and tables as filtering in memory."""
    rng = np.random.default_rng(seed)
    events = with_attrs(random_log(rng, 160), rng)
    kw = dict(KW, stages=stages)
    mem = fk.EventLog(events, **kw)
    dist = distributed_log(events, **kw)
    firsts = mem.deals()["first_event"].sort_values()
    middle = firsts.iloc[len(firsts) // 2]
    some = mem.deals()["deal"].iloc[::3].tolist()
    cases = [
        dict(where="team == 'x' or amount > 50"),
        dict(where="outcome in ['won', 'open']", created=(None, middle)),
        dict(created=(middle, None), deals=some),
        dict(stages=[mem.stages[0], mem.stages[2]]),
        dict(where="tier != 2", stages=mem.stages[1:]),
    ]
    for i, case in enumerate(cases):
        m, d = mem.filter(**case), dist.filter(**case)
        assert m.quality.filtered["deals"] > 0, case
        assert d.quality == m.quality, case
        if i in (0, 3):  # a deal filter and a stage filter: the tables of what is kept
            # (every table of every option: test_random_logs_equal_in_memory)
            assert_same(m.transitions(), d.transitions())
            assert_same(
                m.funnel(skips="strict", weight="amount"),
                d.funnel(skips="strict", weight="amount"),
            )
            assert_same(m.incidence(by="team"), d.incidence(by="team"))
            assert_same(m.dwell(by="team"), d.dwell(by="team"))
            assert_same(m.kpis(by="tier"), d.kpis(by="tier"))
        else:
            assert_same(m.funnel(by="team"), d.funnel(by="team"))
            assert_same(m.dwell(), d.dwell())
        r_dist = d.rejects.compute().sort_values("row").reset_index(drop=True)
        assert_same(m.rejects, r_dist, input_dtypes=events.columns)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::funnelkit.FunnelkitWarning")
def test_compare_equals_in_memory(client):
    """Segments against their rests (every rest exact in both engines at this size) and
    before/after a date: the same table."""
    rng = np.random.default_rng(6)
    events = with_attrs(random_log(rng, 200), rng)
    mem = fk.EventLog(events, **KW)
    dist = distributed_log(events, **KW)
    for by in ("team", ["team", "tier"]):
        assert_same(mem.compare(by=by, alpha=0.1), dist.compare(by=by, alpha=0.1))
    firsts = mem.deals()["first_event"].sort_values()
    for q in (0.3, 0.7):
        period = firsts.iloc[int(q * len(firsts))]
        assert_same(mem.compare(period=period), dist.compare(period=period))
    with pytest.raises(fk.EventLogError, match="exactly one of"):
        dist.compare()
    with pytest.raises(fk.InvalidParameterError, match="no deal was created after"):
        dist.compare(period=firsts.iloc[-1] + pd.Timedelta("1D"))
    with pytest.raises(fk.InvalidParameterError, match="alpha"):
        dist.compare(by="team", alpha=2)
    with pytest.raises(fk.EventLogError, match="nope"):
        dist.compare(by="nope")


@pytest.mark.slow
@pytest.mark.parametrize("tz", [None, "Europe/Amsterdam"])
def test_movement_and_snapshot_equal_in_memory(client, tz):
    """The eight categories' deals and amounts, an inferred stage order (advanced and
    regressed compare positions in the global order), naive and aware logs; and the open
    pipeline at a date (``snapshot``): the same deals in the same order, stages and
    fields."""
    rng = np.random.default_rng(8)
    events = with_attrs(random_log(rng, 150, tz=tz), rng)
    mem = fk.EventLog(events, **KW)
    dist = distributed_log(events, **KW)
    firsts = mem.deals()["first_event"].sort_values()
    for a, b in ((0.2, 0.6), (0.5, 1.0)):
        start = firsts.iloc[int(a * (len(firsts) - 1))]
        end = firsts.iloc[int(b * (len(firsts) - 1))] if b < 1 else mem.as_of
        m, d = mem.movement(start, end), dist.movement(start, end)
        assert m["deals"].sum() > 0
        assert_same(m, d)
        snap = mem.snapshot(end)
        assert len(snap) > 0
        assert_same(snap, dist.snapshot(end), input_dtypes=["deal"])
    assert_same(mem.snapshot(firsts.iloc[0] - pd.Timedelta("1s")),
                dist.snapshot(firsts.iloc[0] - pd.Timedelta("1s")), input_dtypes=["deal"])  # fmt: skip
    with pytest.raises(fk.InvalidParameterError, match="after the log's as_of"):
        dist.snapshot(mem.as_of + pd.Timedelta("1D"))
    with pytest.raises(fk.EventLogError, match="must be before"):
        dist.movement(mem.as_of, firsts.iloc[0])
    with pytest.raises(fk.InvalidParameterError, match="after the log's as_of"):
        dist.movement(firsts.iloc[0], mem.as_of + pd.Timedelta("1D"))
    with pytest.raises(fk.InvalidParameterError, match="with_history"):
        dist.movement(firsts.iloc[0], mem.as_of, closing=("2025-04-01", "2025-06-30"))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::funnelkit.FunnelkitWarning")
@pytest.mark.parametrize("tz", [None, "America/New_York"])
def test_trend_equals_in_memory(client, tz):
    """Every metric, by cohort alone and by segments, monthly and quarterly: the same
    table (every duration sketch exact at this size, so durations and cutoffs too)."""
    rng = np.random.default_rng(9)
    events = with_attrs(random_log(rng, 200, tz=tz), rng)
    mem = fk.EventLog(events, **KW)
    dist = distributed_log(events, **KW)
    configs = (("ME", None), ("QE", "team")) if tz is None else (("ME", ["team", "tier"]),)
    for metric in ("conversion", "win_rate", "cycle_time", "dwell"):
        for freq, by in configs:
            m = mem.trend(freq=freq, by=by, metric=metric)
            d = dist.trend(freq=freq, by=by, metric=metric)
            assert len(m) > 1
            assert_same(m, d)
    with pytest.raises(fk.InvalidParameterError, match="metric"):
        dist.trend(metric="speed")
    with pytest.raises(fk.EventLogError, match="nope"):
        dist.trend(by="nope")


@pytest.mark.slow  # over 1 s: the main suite runs it, CI's pandas 2.2 leg does not
def test_filter_errors(client):
    events = fk.datasets.load_sample()
    dist = distributed_log(events, **fk.datasets.SAMPLE_KWARGS)
    with pytest.raises(fk.EventLogError, match="unknown column `regio`"):
        dist.filter(where="regio == 'North'")  # checked before anything runs
    with pytest.raises(fk.InvalidParameterError, match="where"):
        dist.filter(where=lambda d: d["amount"] > 0)
    with pytest.raises(fk.InvalidParameterError, match="not stages of this log"):
        dist.filter(stages=["Nope"])
    with pytest.raises(fk.EventLogError, match="keeps no deals"):
        dist.filter(deals=["no such deal"])
    mem = fk.EventLog(events, **fk.datasets.SAMPLE_KWARGS)
    one = mem.deals()["deal"].iloc[:1].tolist()
    d = dist.filter(deals=one, created=("2000-01-01", None))
    assert d.n_deals == 1
    assert d.quality.filtered == mem.filter(deals=one).quality.filtered


# --------------------------------------------------------------------------- validation
def bad_events() -> pd.DataFrame:
    events = random_log(np.random.default_rng(5), 60)
    events["ts"] = events["ts"].astype(str).astype(object)
    events.loc[3, "deal"] = None
    events.loc[5, "ts"] = "garbage"
    events.loc[7, "stage"] = "Z"
    events.loc[9, "ts"] = events.loc[9, "ts"] + "+02:00"
    # a deal with a conflicting outcome holds the latest events
    late = pd.DataFrame(
        {
            "deal": ["zz"] * 3,
            "stage": ["A", "W", "L1"],
            "ts": ["2025-07-01", "2025-07-09", "2025-07-09"],
            "amount": [1.0] * 3,
        }
    )
    return pd.concat([events, late], ignore_index=True)


BAD_KW = LOG_KW


def test_bad_rows_raise_one_error_for_all_partitions(client):
    events = bad_events()
    with pytest.raises(fk.EventLogError) as mem:
        fk.EventLog(events, **BAD_KW)
    with pytest.raises(fk.EventLogError) as dist:
        distributed_log(events, **BAD_KW)
    assert str(dist.value).replace("<NA>", "nan") == str(mem.value)
    assert_same(mem.value.failure_cases, dist.value.failure_cases, input_dtypes=events.columns)


@pytest.mark.slow
def test_bad_rows_dropped_and_as_of_after_conflicting_deal(client):
    events = bad_events()
    kw = dict(BAD_KW, errors="drop", stale_after="30D")
    mem = fk.EventLog(events, **kw)
    dist = distributed_log(events, **kw)
    # the latest valid row belongs to the deal dropped for its conflicting outcome
    assert mem.as_of == pd.Timestamp("2025-07-05")
    rejects = dist.rejects.compute().sort_values("row").reset_index(drop=True)
    assert_same(mem.rejects, rejects, input_dtypes=events.columns)
    assert dist.quality == mem.quality
    assert_same(mem.funnel(), dist.funnel())
    assert_same(mem.dwell(), dist.dwell())


@pytest.mark.slow  # over 1 s: the main suite runs it, CI's pandas 2.2 leg does not
def test_default_funnel_comes_with_the_build_when_the_stages_are_declared(client):
    """With a declared stage order the build's pass also runs the funnel's clock (its
    default question), so ``funnel()`` needs no pass of its own; with an inferred order,
    or when the second summary pass moves ``as_of``, it does."""
    from funnelkit.dask import _DEFAULT_FUNNEL

    events = with_attrs(random_log(np.random.default_rng(8), 120), np.random.default_rng(8))
    declared = distributed_log(events, **dict(KW, stages=["A", "B", "C", "D"]))
    assert set(declared._clock_cache) == {_DEFAULT_FUNNEL}
    mem = fk.EventLog(events, **dict(KW, stages=["A", "B", "C", "D"]))
    assert_same(mem.funnel(), declared.funnel())
    assert_same(mem.funnel(by="team"), declared.funnel(by="team"))  # a pass of its own
    assert len(declared._clock_cache) == 2
    inferred = distributed_log(events, **KW)
    assert not getattr(inferred, "_clock_cache", {})
    moved = distributed_log(bad_events(), **dict(BAD_KW, errors="drop", stale_after="30D"))
    assert not getattr(moved, "_clock_cache", {})  # as_of moved: the early answer is stale


@pytest.mark.slow
@pytest.mark.parametrize("tz", [None, "Asia/Shanghai"])
def test_alerts_equal_in_memory(client, tz):
    """Every rule and threshold from one pass over the partitions: the same rows, counts,
    percentiles and p-values as in memory (naive and aware logs, an inferred stage
    order), and the same error for a log too short for the baseline."""
    rng = np.random.default_rng(11)
    events = with_attrs(random_log(rng, 200, tz=tz), rng)
    mem = fk.EventLog(events, **KW)
    dist = distributed_log(events, **KW)
    limits = {"conversion": {"B": 0.9}, "stalled": 0, "dwell_p90_days": 1, "bad_rows_share": 0}
    for kwargs in (
        {"weeks": 3, "baseline": 8},
        {"weeks": 2, "baseline": 12, "alpha": 0.3, "thresholds": limits},
    ):
        m = mem.alerts(**kwargs)
        assert set(m["rule"]) >= {"conversion", "dwell_p90", "stalled", "bad_rows"}
        assert_same(m, dist.alerts(**kwargs))
    with pytest.raises(fk.EventLogError) as a:
        mem.alerts(baseline=200)
    with pytest.raises(fk.EventLogError) as b:
        dist.alerts(baseline=200)
    assert str(a.value) == str(b.value)
    with pytest.raises(fk.InvalidParameterError, match="DaskEventLog.alerts"):
        dist.alerts(weeks=0)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::funnelkit.FunnelkitWarning")
@pytest.mark.parametrize("tz", [None, "Europe/Berlin"])
def test_key_stages_equal_in_memory(client, tz):
    """Every signal, by segments (one and two attributes, missing values), by period,
    against a benchmark: the same table as in memory, values to the last bit (leverage
    without its bootstrap, whose draws differ)."""
    rng = np.random.default_rng(13)
    events = with_attrs(random_log(rng, 300, tz=tz), rng)
    mem = fk.EventLog(events, **KW)
    dist = distributed_log(events, **KW)
    period = mem.deals()["first_event"].median()
    for kwargs in (
        {},
        {"by": "team"},
        {"by": ["team", "tier"], "min_deals": 3},
        {"period": period, "min_deals": 5},
        {"by": "team", "period": period, "min_deals": 5, "alpha": 0.2},
        {"benchmark": {mem.stages[0]: 0.2, mem.stages[1]: 0.5}, "signals": "dropoff"},
    ):
        m = mem.key_stages(n_boot=0, **kwargs)
        assert (m["test"] != "none").any()  # something is tested
        assert_same(m, dist.key_stages(n_boot=0, **kwargs))
    with pytest.raises(fk.InvalidParameterError) as a:
        mem.key_stages(period="2001-01-01")
    with pytest.raises(fk.InvalidParameterError) as b:
        dist.key_stages(period="2001-01-01")
    assert str(a.value) == str(b.value)


@pytest.mark.slow
def test_drivers_equal_in_memory(client):
    """Every attribute value against the deals with another value, at every stage: the
    same rows as in memory — deals without a value (team None, tier NaN) in neither
    group, a two-valued attribute tested once — and the same errors."""
    rng = np.random.default_rng(11)
    events = with_attrs(random_log(rng, 300), rng)
    mem = fk.EventLog(events, **KW)
    dist = distributed_log(events, **KW)
    cases = [
        (dict(min_visits=5), 10),
        (dict(stage=["B", "C"], attrs="tier", alpha=0.2), 2),  # tier 1 vs 2, per stage
    ]
    for kw, tested in cases:
        got, want = dist.drivers(**kw), mem.drivers(**kw)
        assert_same(got, want)
        assert (got["test"] != "").sum() >= tested
    assert set(dist.drivers(min_visits=5)["feature"]) == {"team", "tier"}
    assert dist.drivers(attrs=[]).empty
    with pytest.raises(InvalidParameterError, match=r"\['nope'\] are not attributes"):
        dist.drivers(attrs="nope")


@pytest.mark.slow
@pytest.mark.parametrize("tz", [None, "Europe/Amsterdam"])
def test_funnel_within_equals_in_memory(client, tz):
    """A conversion window: each deal's counts and subjects from its window status where
    the deals live — the in-memory table for one window, windows per stage, segments,
    strict skips, amounts and business days; the same error for a stage not in the log."""
    rng = np.random.default_rng(17)
    events = with_attrs(random_log(rng, 240, tz=tz), rng)
    mem = fk.EventLog(events, **KW)
    dist = distributed_log(events, **KW)
    cases = [
        dict(within="20D"),
        dict(within={"B": "10D", "C": "40D"}, by="team"),
        dict(within="15D", skips="strict", weight="amount", by="tier"),
        dict(within="8D", calendar="business", by=["team", "tier"]),
    ]
    for kw in cases:
        want = mem.funnel(**kw)
        assert_same(dist.funnel(**kw), want)
        # the window changes the counts, not just the estimates
        if "weight" not in kw:
            plain = mem.funnel(**{k: v for k, v in kw.items() if k not in ("within", "calendar")})
            assert (want["advanced"] < plain["advanced"]).any()
    with pytest.raises(fk.EventLogError, match="`within` names stage 'Z'"):
        dist.funnel(within={"Z": "10D"})
    with pytest.raises(InvalidParameterError, match="calendar"):
        dist.funnel(within="10D", calendar="weekdays")


@pytest.mark.slow
def test_drivers_adjusted_equal_in_memory(client):
    """adjust=True: the deals' subjects come to the client and the in-memory scan and Cox
    models run on them — the same table, the adjusted columns included."""
    pytest.importorskip("lifelines")
    rng = np.random.default_rng(11)
    events = with_attrs(random_log(rng, 300), rng)
    mem = fk.EventLog(events, **KW)
    dist = distributed_log(events, **KW)
    for kw in (dict(min_visits=5), dict(stage="C", attrs=["tier"])):
        got, want = dist.drivers(adjust=True, **kw), mem.drivers(adjust=True, **kw)
        assert_same(got, want)
        assert got["adj_hazard_ratio"].notna().any()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::funnelkit.FunnelkitWarning")
def test_what_if_equal_in_memory(client):
    """Point estimates as in memory (every duration sketch exact at this size), by
    segments too; the Poisson-bootstrap interval the same however the deals are
    partitioned and, on a larger log, within Monte-Carlo error of the in-memory one."""
    rng = np.random.default_rng(14)
    events = with_attrs(random_log(rng, 300), rng)
    mem = fk.EventLog(events, **KW)
    dist = distributed_log(events, **KW)
    stage = mem.stages[1]
    changes = {stage: {"conversion": 0.05, "dwell": 0.8}, mem.stages[0]: {"dwell": 1.2}}
    assert_same(mem.what_if(changes, n_boot=0), dist.what_if(changes, n_boot=0))
    slower = {stage: {"dwell": 1.3}}  # a conversion change can be out of a small segment's bounds
    for by in ("team", ["team", "tier"]):
        a, b = mem.what_if(slower, by=by, n_boot=0), dist.what_if(slower, by=by, n_boot=0)
        assert_same(a, b)
    seven = dist.what_if(slower, by="team", n_boot=40, seed=3)
    three = distributed_log(events, npartitions=3, **KW).what_if(
        slower, by="team", n_boot=40, seed=3
    )
    pd.testing.assert_frame_equal(seven, three)
    with pytest.raises(fk.InvalidParameterError) as x:
        mem.what_if({"Nope": {"dwell": 2}})
    with pytest.raises(fk.InvalidParameterError) as y:
        dist.what_if({"Nope": {"dwell": 2}})
    assert str(x.value) == str(y.value)
    with pytest.raises(fk.InvalidParameterError, match="DaskEventLog.what_if"):
        dist.what_if(changes, n_boot=-1)

    events = fk.datasets.synthetic(5_000, seed=11)
    kw = dict(fk.datasets.SAMPLE_KWARGS)
    changes = {"Demo": {"conversion": 0.05}, "Proposal": {"dwell": 0.8}}
    a = fk.EventLog(events, **kw).what_if(changes, n_boot=300, seed=4)
    b = distributed_log(events, **kw).what_if(changes, n_boot=300, seed=4)
    point = ["metric", "unit", "baseline", "scenario", "change", "deals"]
    assert_same(a[point], b[point], rel=0.01)  # cycle times from the binned dwell sketch
    width = (a["change_high"] - a["change_low"]).to_numpy()
    for end in ("change_low", "change_high"):
        assert (np.abs(b[end] - a[end]).to_numpy() < 0.25 * width).all()


@pytest.mark.slow
def test_alerts_count_bad_rows_of_every_partition(client):
    """The ``bad_rows`` rule reads every input row's week: dropped rows of all kinds
    (unreadable times have no week, rows of the less common time zone neither, a deal
    with a conflicting outcome), also in partitions whose own majority of rows is of
    the globally less common time zone."""
    rng = np.random.default_rng(12)
    events = bad_events()
    events["ts"] = events["ts"].astype(str).astype(object)
    deals = events["deal"].dropna().unique()
    deals = deals[deals != "zz"]  # the deal with a conflicting outcome stays naive
    aware = events["deal"].isin(rng.choice(deals, len(deals) // 3, replace=False))
    events.loc[aware, "ts"] = events.loc[aware, "ts"] + "+00:00"
    kw = dict(BAD_KW, errors="drop", stale_after="30D")
    mem = fk.EventLog(events, **kw)
    assert {"mixed_timezone", "unparseable_time", "conflicting_outcome"} <= set(
        mem.quality.by_reason
    )
    dist = distributed_log(events, npartitions=20, **kw)
    from funnelkit import _columns as C

    parts = [dist._shuffled.get_partition(i).compute() for i in range(20)]
    flipped = [p for p in parts if len(p) and C.parse_times(p["ts"]).aware]
    assert flipped  # a partition decides the other way than the whole log
    limits = {"bad_rows_share": 0.01}
    m = mem.alerts(weeks=4, baseline=4, thresholds=limits)
    assert (m.loc[m["rule"] == "bad_rows", "n"] > 0).all()
    assert_same(m, dist.alerts(weeks=4, baseline=4, thresholds=limits))


@pytest.mark.parametrize("errors", ["raise", "drop"])
def test_time_zones_decided_globally(client, errors):
    events = random_log(np.random.default_rng(8), 40)
    ts = events["ts"].astype(str).astype(object)
    ts.iloc[:30] = ts.iloc[:30] + "+00:00"  # aware rows sit in the first partition only
    events["ts"] = ts
    kw = dict(BAD_KW, errors=errors)
    if errors == "raise":
        with pytest.raises(fk.EventLogError) as mem:
            fk.EventLog(events, **kw)
        with pytest.raises(fk.EventLogError, match="mixed timezone") as dist:
            distributed_log(events, **kw)
        assert_same(mem.value.failure_cases, dist.value.failure_cases, input_dtypes=events.columns)
        return
    mem = fk.EventLog(events, **kw)
    dist = distributed_log(events, **kw)
    assert mem.quality.by_reason["mixed_timezone"] == 30
    assert dist.quality == mem.quality
    rejects = dist.rejects.compute().sort_values("row").reset_index(drop=True)
    assert_same(mem.rejects, rejects, input_dtypes=events.columns)
    assert_same(mem.dwell(), dist.dwell())


def test_keyword_errors_and_empty_logs(client):
    events = dd.from_pandas(random_log(np.random.default_rng(1), 5), npartitions=2)
    with pytest.raises(fk.EventLogError, match="both `won` and `lost`"):
        DaskEventLog(events, **dict(BAD_KW, lost="W"))
    with pytest.raises(fk.EventLogError, match="not found"):
        DaskEventLog(events, **dict(BAD_KW, amount="nope"))
    with pytest.raises(TypeError, match="dask DataFrame"):
        DaskEventLog(random_log(np.random.default_rng(1), 5), **BAD_KW)
    with pytest.raises(fk.EventLogError, match="is empty"):
        DaskEventLog(events[events["deal"] == "none"], **BAD_KW)
    only_bad = random_log(np.random.default_rng(1), 5).assign(stage="Z")
    with pytest.raises(fk.EventLogError, match="No usable events") as err:
        DaskEventLog(dd.from_pandas(only_bad, npartitions=2), **dict(BAD_KW, errors="drop"))
    assert len(err.value.failure_cases) == len(only_bad)


# --------------------------------------------------------------------------- engine-neutral
@pytest.mark.slow
def test_summaries_merge_in_any_order():
    """Partial summaries of whole deals combine to the same tables however they are
    grouped (no cluster: the engine-neutral functions alone)."""
    events = with_attrs(random_log(np.random.default_rng(3), 120), np.random.default_rng(3))
    mem = fk.EventLog(events, **KW)
    rows = events.assign(**{SM.ROW: SM.row_keys(len(events), 0)})
    bucket = pd.util.hash_pandas_object(rows["deal"], index=False).to_numpy() % 5
    cfg = SM.Config(
        settings=dict(KW, stages=None, stage_map=None, errors="raise"),
        columns=("deal", "stage", "ts", "amount", "team", "tier"),
        as_of_ns=int(mem.as_of.value),
        exact_limit=3,  # small: some groups switch to bins while merging
    )
    parts = [SM.summarize(rows[bucket == k], cfg) for k in range(5)]
    one = SM.merge(parts)
    tree = SM.merge(
        [SM.merge([parts[4], parts[0]]), SM.merge([parts[2], SM.merge(parts[1:2])]), parts[3]]
    )
    lay = SM.Layout(
        stages=SM.infer_order(one.tables["positions"]),
        won=["W"],
        lost=["L1", "L2"],
        inferred=True,
        aware=False,
        as_of_ns=cfg.as_of_ns,
        amount="amount",
        attrs=["team", "tier"],
        stale_after_ns=int(pd.Timedelta(KW["stale_after"]).value),
    )
    assert lay.stages == mem.stages
    for table in (SM.transitions_table, SM.dwell_table, SM.cycle_table):
        pd.testing.assert_frame_equal(table(one, lay), table(tree, lay))
    assert SM.quality_report(one, lay) == mem.quality
    # through the engine-neutral transport (Arrow IPC, no pickle), in any row order
    sent = pd.concat([SM.to_frame(p) for p in parts], ignore_index=True)
    back = SM.merge(SM.from_frame(sent.sample(frac=1.0, random_state=2)))
    for table in (SM.transitions_table, SM.dwell_table, SM.kpis_table):
        pd.testing.assert_frame_equal(table(one, lay), table(back, lay))
    assert SM.quality_report(back, lay) == mem.quality
    # the funnel's estimates come from the clock sharded by stage (funnelkit._clock):
    # each partition's subjects split by stage, one task per stage, only the estimates
    # gathered — the same, whatever the partitions, as the in-memory funnel
    from funnelkit import _clock as CK

    def clock(partitions):
        def run(by, products, **kw):
            coder = SM.segment_coder(one, by) if by else None
            spec = CK.ClockSpec(coder, kw.get("period_ns"), kw.get("skips", "implied"),
                                kw.get("weighted", False), kw.get("win", True))  # fmt: skip
            return SM.run_clock(partitions, cfg, lay, spec, products)

        return run

    five = [rows[bucket == k] for k in range(5)]
    two = [rows[bucket <= 1], rows[bucket > 1]]
    for by in (None, "team"):
        for weight in (None, "amount"):
            via_five = SM.funnel_table(one, lay, by=by, weight=weight, clock=clock(five))
            assert_same(mem.funnel(by=by, weight=weight), via_five)
            via_two = SM.funnel_table(one, lay, by=by, weight=weight, clock=clock(two))
            pd.testing.assert_frame_equal(via_five, via_two, check_exact=False, rtol=1e-12)


def test_read_events_from_a_parquet_folder(client, tmp_path):
    events = fk.datasets.synthetic(1_500, seed=2)
    folder = tmp_path / "events"
    folder.mkdir()
    shuffled = events.sample(frac=1.0, random_state=0).reset_index(drop=True)
    for k, rows in enumerate(np.array_split(np.arange(len(shuffled)), 4)):
        shuffled.iloc[rows].to_parquet(folder / f"part-{k}.parquet")
    kw = dict(fk.datasets.SAMPLE_KWARGS)
    dist = read_events(folder, npartitions=5, **kw)
    mem = fk.read_events(folder, **kw)
    assert dist.quality == mem.quality
    assert_same(mem.funnel(), dist.funnel())
    assert_same(mem.dwell(), dist.dwell())
    back = dist.compute()
    assert isinstance(back, fk.EventLog)
    assert back.quality == mem.quality


@pytest.mark.slow
def test_more_partitions_than_deals_and_csv(client, tmp_path):
    """Empty partitions after the shuffle; CSV input (text columns) read with dask."""
    events = random_log(np.random.default_rng(9), 4)
    kw = dict(BAD_KW, stale_after="30D")
    mem = fk.EventLog(events, **kw)
    dist = distributed_log(events, npartitions=16, **kw).persist()
    assert dist.quality == mem.quality
    assert_same(mem.funnel(), dist.funnel())
    assert_same(mem.dwell(), dist.dwell())
    assert dist.visits().compute().shape == mem.visits().shape
    path = tmp_path / "events.csv"
    events.to_csv(path, index=False)
    assert read_events(path, **kw).quality == fk.read_events(path, **kw).quality


def test_csv_missing_cells_and_encoding_as_the_pandas_reader(client, tmp_path):
    """NA-like, empty and whitespace-only cells are missing; encoding= reaches dask."""
    path = tmp_path / "events.csv"
    text = (
        "deal,stage,ts\na,Lead,2025-01-01\na,Démo,2025-01-05\na,W,2025-01-10\n"
        ",Lead,2025-01-02\nNA,L1,2025-01-03\nb,  ,2025-01-02\nb,null,2025-01-03\n"
        "c,Lead,\nc,Lead,N/A\nd,Lead,2025-01-04\n"
    )
    path.write_bytes(text.encode("latin-1"))
    kw = dict(deal="deal", stage="stage", time="ts", won="W", lost="L1", errors="drop")
    mem = fk.read_events(path, encoding="latin-1", **kw)
    dist = fk.read_events(path, engine="dask", encoding="latin-1", **kw)
    assert dist.quality == mem.quality
    assert mem.quality.by_reason == {"missing_deal": 2, "missing_stage": 2, "missing_time": 2}
    assert mem.stages == ["Lead", "Démo"]


def test_leverage_of_a_log_of_terminal_events_only(client):
    """No stage: an empty key-stage table, as in memory (before: a numpy ValueError)."""
    events = pd.DataFrame(
        {"deal": list("abc"), "stage": ["W", "L1", "W"], "ts": ["2025-01-01"] * 3}
    )
    kw = dict(deal="deal", stage="stage", time="ts", won="W", lost="L1")
    dist = DaskEventLog(dd.from_pandas(events, npartitions=1), **kw)
    ks = dist.key_stages(signals="leverage", n_boot=5)
    mem = fk.EventLog(events, **kw).key_stages(signals="leverage", n_boot=5)
    assert ks.empty and list(ks.columns) == list(mem.columns) and mem.empty


@pytest.mark.slow
def test_report_of_a_distributed_log(client, tmp_path):
    """log.report() on a Dask log: the in-memory report's tables (all but the forecast,
    which the page says is not computed), equal to them; the charts drawn; saved."""
    rng = np.random.default_rng(21)
    events = with_attrs(random_log(rng, 200), rng)
    mem = fk.EventLog(events, **KW)
    dist = distributed_log(events, **KW)
    middle = mem.deals()["first_event"].sort_values().iloc[100]
    kw = dict(by="team", period=middle, within="25D", key_kwargs={"n_boot": 0})
    want = mem.report(charts=False, **kw)
    got = dist.report(**kw)
    assert set(want.tables) - set(got.tables) <= {"forecast_periods"}
    assert set(got.tables) <= set(want.tables)
    per_deal = {"deals": ["deal"], "act_on": ["deal", "stage"]}
    for name, table in got.tables.items():  # loop over the tables
        expect = want.tables[name]
        if name in per_deal:  # a distributed log's deals come in partition order
            table = table.sort_values(per_deal[name], kind="stable")
            expect = expect.sort_values(per_deal[name], kind="stable")
        assert_same(table, expect, input_dtypes=list(events.columns) + ["reasons"])
    assert any("forecast per month: not computed" in n for n in got.notes)
    assert {"funnel", "flow", "dwell", "survival", "key_stages", "segments"} <= set(got.charts)
    out = got.save(tmp_path / "report")
    assert (out / "report.html").is_file() and (out / "tables" / "deals.parquet").is_file()
    for key in ("deals", "won", "lost", "open", "win_rate", "key_stages"):
        assert got.summary[key] == want.summary[key], key


@pytest.mark.slow
def test_public_entry_points_dispatch_to_dask(client, tmp_path):
    import dask.dataframe as dd

    events = fk.datasets.load_sample()
    log = fk.EventLog(dd.from_pandas(events, npartitions=3), **fk.datasets.SAMPLE_KWARGS)
    assert isinstance(log, DaskEventLog)
    mem = fk.EventLog(events, **fk.datasets.SAMPLE_KWARGS)
    assert_same(mem.transitions(), log.transitions())
    path = tmp_path / "sample.parquet"
    events.to_parquet(path)
    via_reader = fk.read_events(path, engine="dask", **fk.datasets.SAMPLE_KWARGS)
    assert isinstance(via_reader, DaskEventLog)
    assert via_reader.quality == mem.quality
    with pytest.raises(fk.EventLogError, match="`engine`"):
        fk.read_events(path, engine="spark", **fk.datasets.SAMPLE_KWARGS)
