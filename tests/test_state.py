"""Saved state and incremental updates (issue 24, item 2): ``log.save`` / ``fk.load`` give
back the same log, and ``log.update(new)`` equals a full build on the union of the rows,
table for table; the scheduled job (``--state``) end to end on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import funnelkit as fk
from funnelkit import state

KW = fk.datasets.SAMPLE_KWARGS
SYN_KW = dict(
    stages=["Lead", "Qualified", "Demo", "Proposal", "Negotiation"],
    won="Won",
    lost=["Lost", "Disqualified"],
    amount="amount",
    attrs=["region", "owner", "team"],
    stale_after="60D",
)


def assert_same_log(got: fk.EventLog, ref: fk.EventLog) -> None:
    """Every table equal, exactly (values, dtypes, order)."""
    assert got.stages == ref.stages and got.as_of == ref.as_of
    for name in ("visits", "deals", "transitions", "funnel", "dwell", "kpis"):
        pd.testing.assert_frame_equal(getattr(got, name)(), getattr(ref, name)(), obj=name)
    if ref.attrs:
        by = ref.attrs[0]
        pd.testing.assert_frame_equal(got.funnel(by=by), ref.funnel(by=by), obj="funnel(by)")
    pd.testing.assert_frame_equal(got.rejects, ref.rejects, obj="rejects")
    assert got.quality.to_dict() == ref.quality.to_dict()


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return fk.datasets.load_sample()


def synthetic(seed: int) -> pd.DataFrame:
    return fk.datasets.synthetic(
        300, seed=seed, stages=SYN_KW["stages"], p_tie=0.1, p_reopen=0.1, p_relog=0.3
    )


# =========================================================================== save / load
def test_save_and_load_give_the_same_log(sample, tmp_path):
    log = fk.EventLog(sample, **KW)
    folder = log.save(tmp_path / "state")
    assert sorted(p.name for p in folder.iterdir()) == [
        "attr_0.parquet",  # the categories of each carried column
        "attr_1.parquet",
        "attr_2.parquet",
        "deals.parquet",
        "events.parquet",
        "manifest.json",
        "paths.parquet",
        "rejected.parquet",
        "rejects.parquet",
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == state.FORMAT_VERSION == 2
    assert manifest["funnelkit_version"] == fk.__version__
    assert manifest["settings"]["stages"] == KW["stages"]
    assert manifest["rows"] == len(sample) and manifest["deals"] == log.n_deals
    assert_same_log(fk.load(folder), log)
    assert_same_log(fk.load(str(folder)), log)
    _assert_same_arrays(fk.load(folder), log)
    # the rejects file holds log.rejects, for inspection
    stored = pd.read_parquet(folder / "rejects.parquet")
    assert stored["row"].tolist() == log.rejects["row"].tolist()


def test_a_state_is_read_back_without_a_build_and_older_states_still_load(
    sample, tmp_path, monkeypatch
):
    """Format 2 holds the built log: loading reads it (no validation, no sort). A state
    of format 1 (the rows only) is built again, and updates the same."""
    log = fk.EventLog(sample, **KW)
    folder = log.save(tmp_path / "state")
    manifest = json.loads((folder / "manifest.json").read_text())
    old = tmp_path / "v1"
    old.mkdir()
    for name in ("events.parquet", "rejects.parquet"):
        (old / name).write_bytes((folder / name).read_bytes())
    v1 = dict(manifest, format_version=1)
    v1.pop("parts")
    (old / "manifest.json").write_text(json.dumps(v1))

    def no_build(*args, **kwargs):
        raise AssertionError("a format-2 state was built again")

    with monkeypatch.context() as m:
        m.setattr(fk.EventLog, "_build", no_build)
        back = fk.load(folder)
    assert_same_log(back, log)
    assert_same_log(fk.load(old), log)
    new = sample.iloc[:50].assign(ts=sample["ts"].max() + pd.Timedelta("1D"))
    want = fk.EventLog(pd.concat([sample, new], ignore_index=True), **KW)
    assert_same_log(state.update_saved(folder, new), want)
    assert_same_log(state.update_saved(old, new), want)


@pytest.mark.parametrize("arrow", [False, True])
def test_a_daily_save_writes_only_the_new_rows(sample, tmp_path, arrow):
    """Saving an updated state back to its folder keeps the stored event files (linked,
    not rewritten) and adds one file of the new rows; any other folder gets every row."""
    data = pa.Table.from_pandas(sample, preserve_index=False) if arrow else sample
    old = data.slice(0, 2000) if arrow else data.iloc[:2000]
    folder = fk.EventLog(old, **KW).save(tmp_path / "s")
    first = (folder / "events.parquet").stat()
    for lo, hi in ((2000, 2500), (2500, len(sample))):
        today = data.slice(lo, hi - lo) if arrow else data.iloc[lo:hi]
        fk.load(folder).update(today).save(folder)
    files = json.loads((folder / "manifest.json").read_text())["events"]
    assert [(f["file"], f["start"], f["end"]) for f in files] == [
        ("events.parquet", 0, 2000),
        ("events_1.parquet", 2000, 2500),
        ("events_2.parquet", 2500, len(sample)),
    ]
    assert (folder / "events.parquet").stat().st_ino == first.st_ino  # kept, not rewritten
    full = fk.EventLog(data, **KW)
    assert_same_log(fk.load(folder), full)
    loaded = fk.load(folder)
    assert isinstance(loaded._source, pa.Table) == arrow
    # elsewhere: one file of every row; and a folder replaced since is written whole
    again = loaded.save(tmp_path / "copy")
    assert json.loads((again / "manifest.json").read_text())["events"][0]["end"] == len(sample)
    assert_same_log(fk.load(again), full)
    fk.EventLog(data, **KW).save(folder)  # another log saved over the state
    loaded.save(folder)
    assert len(json.loads((folder / "manifest.json").read_text())["events"]) == 1
    assert_same_log(fk.load(folder), full)


def test_every_keyword_survives(tmp_path):
    """Inferred order, stage_map, times and durations as objects, a calendar with
    holidays, visit attrs, a given as_of and dropped bad rows: all rebuilt identically."""
    ev = synthetic(1)
    ev["stage"] = ev["stage"].replace({"Demo": "Demo call"})
    ev["handler"] = ev["owner"]
    ev.loc[[3, 10], "ts"] = pd.NaT  # bad rows, dropped
    cal = fk.BusinessCalendar(weekmask="Mon Tue Wed Thu", holidays=["2025-01-01"])
    log = fk.EventLog(
        ev,
        stage_map={"Demo call": "Demo"},
        won="Won",
        lost=["Lost", "Disqualified"],
        amount="amount",
        attrs=["region"],
        visit_attrs=["handler"],
        as_of=pd.Timestamp("2025-07-01", tz="UTC"),
        stale_after=pd.Timedelta(days=45),
        calendar=cal,
        errors="drop",
    )
    assert log.quality.stage_order_inferred
    again = fk.load(log.save(tmp_path / "s"))
    assert_same_log(again, log)
    assert again.calendar == cal and again.stale_after == pd.Timedelta(days=45)
    pd.testing.assert_frame_equal(again.visits(), log.visits())
    assert "handler" in again.visits().columns


def test_an_arrow_log_is_loaded_as_arrow(sample, tmp_path):
    table = pa.Table.from_pandas(sample, preserve_index=False)
    log = fk.EventLog(table, **KW)
    again = fk.load(log.save(tmp_path / "s"))
    assert isinstance(again._source, pa.Table)
    assert_same_log(again, log)


def test_a_filtered_log_says_so_again(sample, tmp_path):
    log = fk.EventLog(sample, **KW).filter(where="region == 'North'")
    again = fk.load(log.save(tmp_path / "s"))
    assert_same_log(again, log)
    assert again.quality.filtered == log.quality.filtered != {}
    with pytest.raises(fk.InvalidParameterError, match="update the unfiltered log"):
        log.update(sample.iloc[:5])


def test_save_replaces_a_state_and_refuses_other_folders(sample, tmp_path):
    log = fk.EventLog(sample, **KW)
    small = fk.EventLog(sample.iloc[:500], **KW)
    log.save(tmp_path / "s")
    small.save(tmp_path / "s")  # replaced whole
    assert fk.load(tmp_path / "s").n_deals == small.n_deals
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporary folders left
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(fk.InvalidParameterError, match="no funnelkit state"):
        log.save(tmp_path / "other")
    (tmp_path / "file").write_text("x")
    with pytest.raises(fk.InvalidParameterError, match="is a file"):
        log.save(tmp_path / "file")


def test_load_errors_name_the_problem(sample, tmp_path):
    with pytest.raises(fk.InvalidParameterError, match="does not exist"):
        fk.load(tmp_path / "nothing")
    folder = fk.EventLog(sample, **KW).save(tmp_path / "s")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = state.FORMAT_VERSION + 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    newer = rf"format version {state.FORMAT_VERSION + 1}.*reads format versions up"
    with pytest.raises(fk.EventLogError, match=newer):
        fk.load(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(fk.EventLogError, match="is not a funnelkit manifest"):
        fk.load(folder)
    with pytest.raises(fk.InvalidParameterError, match=r"fk.load: `path` must be"):
        fk.load(3)


def test_what_a_state_cannot_hold_is_refused(sample, tmp_path):
    with pytest.raises(fk.InvalidParameterError, match=r"`stages` holds <object"):
        state._encode([object()], "stages")
    wide = pd.DataFrame({"id": ["a", "b"], "d1": ["2025-01-01", "2025-01-02"]})
    milestones = fk.EventLog.from_milestones(wide, deal="id", stage_dates={"S": "d1"})
    with pytest.raises(fk.InvalidParameterError, match="wide export"):
        milestones.save(tmp_path / "w")
    hist = fk.EventLog(sample, **KW).with_history(
        fk.datasets.load_sample_history(), **fk.datasets.SAMPLE_HISTORY_KWARGS
    )
    with pytest.raises(fk.InvalidParameterError, match="field history"):
        hist.save(tmp_path / "h")
    with pytest.raises(fk.InvalidParameterError, match="field history"):
        hist.update(sample.iloc[:3])
    mixed = sample.astype({"region": object})
    mixed.loc[0, "region"] = 7  # a number among text: Parquet cannot hold the column
    with pytest.raises(fk.EventLogError, match="Column `region`.*astype\\(str\\)"):
        fk.EventLog(mixed, **KW).save(tmp_path / "m")


# =========================================================================== update
def _split(events: pd.DataFrame, rng: np.random.Generator, how: str):
    """Old and new rows: a random subset, or by time (the scheduled job's case)."""
    if how == "random":
        new = rng.random(len(events)) < rng.uniform(0.01, 0.5)
    else:
        cut = events["ts"].quantile(rng.uniform(0.5, 0.99))
        new = (events["ts"] > cut).to_numpy()
    return events[~new], events[new]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("how", ["random", "time"])
def test_update_equals_the_full_build_on_synthetic_logs(seed, how):
    events = synthetic(seed)
    rng = np.random.default_rng(seed)
    old, new = _split(events, rng, how)
    kw = dict(SYN_KW, errors="drop")
    got = fk.EventLog(old, **kw).update(new)
    assert_same_log(got, fk.EventLog(pd.concat([old, new], ignore_index=True), **kw))


def _messy(seed: int, ids: str) -> pd.DataFrame:
    """A synthetic log with what makes deals differ row by row: attributes and amounts
    that change along a deal, simultaneous lost and disqualified events (unresolved ties),
    values seen only late (new categories), bad rows (unknown stages, missing times and
    ids); ids as text or integers."""
    rng = np.random.default_rng(seed)
    ev = synthetic(seed)
    n = len(ev)
    change = rng.random(n) < 0.15
    ev.loc[change, "region"] = rng.choice(["north", "south", "west"], change.sum())
    late = (ev["ts"] > ev["ts"].quantile(0.8)).to_numpy() & (rng.random(n) < 0.3)
    ev.loc[late, "owner"] = rng.choice(["new1", "new2"], late.sum())
    amt = rng.random(n)
    ev.loc[amt < 0.05, "amount"] = np.nan
    ev.loc[amt > 0.9, "amount"] = rng.uniform(1e3, 1e5, int((amt > 0.9).sum()))
    lost = ev[ev["stage"] == "Lost"].sample(frac=0.3, random_state=seed)
    ev = pd.concat([ev, lost.assign(stage="Disqualified")]).sort_values("ts", kind="stable")
    ev = ev.reset_index(drop=True)
    bad = rng.choice(len(ev), 6, replace=False)
    ev.loc[bad[:2], "stage"] = "Nowhere"
    ev.loc[bad[2:4], "ts"] = pd.NaT
    ev["deal_id"] = ev["deal_id"].astype(object)
    ev.loc[bad[4:], "deal_id"] = None
    ev["channel"] = rng.choice(["web", "call", "event"], len(ev))
    if ids == "int":
        ev["deal_id"] = pd.factorize(ev["deal_id"])[0] * 7 + 3
        ev.loc[bad[4:], "deal_id"] = -1  # (an integer column has no null: one more deal)
        ev["deal_id"] = ev["deal_id"].astype(np.int64)
    else:
        ev["deal_id"] = ev["deal_id"].astype("string")
    return ev


def _assert_same_arrays(got: fk.EventLog, ref: fk.EventLog) -> None:
    """The log's own arrays equal the full build's: values, dtypes, attribute categories."""
    bookkeeping = {"_cache", "_stored"}  # caches; the state a log was read from
    assert set(vars(got)) - bookkeeping == set(vars(ref)) - bookkeeping
    for name, want in vars(ref).items():
        have = getattr(got, name)
        if isinstance(want, np.ndarray):
            assert have.dtype == want.dtype, name
            np.testing.assert_array_equal(have, want, err_msg=name)
    for a, ser in ref._attrs.items():
        pd.testing.assert_series_equal(got._attrs[a], ser)
    for a, (codes, uniques) in ref._visit_attrs.items():
        np.testing.assert_array_equal(got._visit_attrs[a][0], codes)
        pd.testing.assert_index_equal(got._visit_attrs[a][1], uniques)
    pd.testing.assert_index_equal(got._deal_labels, ref._deal_labels)


@pytest.fixture
def spliced(monkeypatch) -> list[bool]:
    """Whether each update spliced the touched deals in (True) or built the union."""
    from funnelkit import _update

    calls: list[bool] = []
    real = _update.spliced
    monkeypatch.setattr(_update, "MAX_REBUILT", 1.0)  # splice whatever the share

    def spy(*args):
        out = real(*args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(state, "spliced", spy)
    return calls


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ids", ["text", "int"])
@pytest.mark.parametrize("how", ["random", "time"])
def test_update_rebuilds_only_the_touched_deals(seed, ids, how, monkeypatch, spliced):
    """The update splices the deals the new rows touch into the old log (no build of the
    union) and equals the full build, arrays included, on logs with changing attributes,
    unresolved ties, late categories and bad rows; pandas and Arrow."""
    from funnelkit import _update

    built: list[int] = []
    real = _update._build

    def spy(source, settings):
        built.append(source.num_rows if isinstance(source, pa.Table) else len(source))
        return real(source, settings)

    monkeypatch.setattr(_update, "_build", spy)
    ev = _messy(seed, ids)
    rng = np.random.default_rng(seed)
    old, new = _split(ev, rng, how)
    kw = dict(SYN_KW, visit_attrs=["channel"], errors="drop")
    full = fk.EventLog(pd.concat([old, new], ignore_index=True), **kw)
    assert full.quality.unresolved_ties > 0 and full.quality.attr_changes["region"] > 0
    for a, b in ((old, new), (pa.Table.from_pandas(old, preserve_index=False), new)):
        built.clear()
        got = fk.EventLog(a, **kw).update(b)
        assert built and max(built) < len(ev)  # only the touched deals' rows were built
        assert spliced.pop() is True
        ref = fk.EventLog(state._union(a, b), **kw)  # Arrow ids stay Arrow text
        assert_same_log(got, ref)
        _assert_same_arrays(got, ref)
    # at a given as_of, later than every row: the stale deals move
    later = full.as_of + pd.Timedelta("45D")
    got = fk.EventLog(old, **kw).update(new, as_of=later)
    ref = fk.EventLog(pd.concat([old, new], ignore_index=True), **dict(kw, as_of=later))
    assert_same_log(got, ref)
    assert spliced[-1] is True
    assert got.quality.stale > full.quality.stale


def test_updates_that_need_the_whole_log_build_it(sample, spliced):
    """Rules over the whole log — an inferred stage order, an earlier as_of that rejected
    rows — make the update build the union; the result is the full build's all the same."""
    calls = spliced
    old, new = sample.iloc[:3000], sample.iloc[3000:]
    inferred = dict(KW, stages=None)
    got = fk.EventLog(old, **inferred).update(new)
    assert calls == [False]
    assert_same_log(got, fk.EventLog(sample, **inferred))
    early = dict(KW, as_of="2025-02-01", errors="drop")
    base = fk.EventLog(old, **early)
    assert base.quality.by_reason.get("after_as_of")
    got = base.update(new)
    assert calls == [False, False]
    assert_same_log(got, fk.EventLog(sample, **dict(early, as_of=None)))


def test_an_update_that_rebuilds_most_rows_builds_the_union(sample, monkeypatch):
    """Past MAX_REBUILT of the union's rows to rebuild, the splice would be slower than a
    full build, so the update builds the union; below it, it splices. Same log either way."""
    from funnelkit import _update

    calls: list[bool] = []
    real = _update.spliced

    def spy(*args):
        out = real(*args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(state, "spliced", spy)
    ev = sample.sort_values(KW["time"], kind="stable", ignore_index=True)
    for n_new, splices in ((20, True), (len(ev) // 2, False)):
        old, new = ev.iloc[:-n_new], ev.iloc[-n_new:]
        touched = ev[KW["deal"]].isin(new[KW["deal"]]).mean()
        assert bool(touched <= _update.MAX_REBUILT) is splices
        got = fk.EventLog(old, **KW).update(new)
        assert calls.pop() is splices
        assert_same_log(got, fk.EventLog(ev, **KW))


@pytest.mark.parametrize("seed", range(3))
def test_update_equals_the_full_build_on_the_sample_through_a_saved_state(sample, seed, tmp_path):
    rng = np.random.default_rng(100 + seed)
    old, new = _split(sample, rng, "random" if seed else "time")
    full = fk.EventLog(pd.concat([old, new], ignore_index=True), **KW)
    folder = fk.EventLog(old, **KW).save(tmp_path / "s")
    assert_same_log(fk.load(folder).update(new), full)
    assert_same_log(state.update_saved(folder, new), full)  # what the CLI calls
    # in several steps, saved in between: still the full build
    parts = np.array_split(np.arange(len(new)), 3)
    for part in parts:
        fk.load(folder).update(new.iloc[part]).save(folder)
    assert_same_log(fk.load(folder), full)


def test_update_with_arrow_tables_and_with_a_log_of_the_new_rows(sample):
    table = pa.Table.from_pandas(sample, preserve_index=False)
    old, new = table.slice(0, 2000), table.slice(2000)
    full = fk.EventLog(table, **KW)
    assert_same_log(fk.EventLog(old, **KW).update(new), full)
    assert_same_log(fk.EventLog(old, **KW).update(fk.EventLog(new, **KW)), full)
    # microseconds and nanoseconds, large and plain strings: promoted as one table
    new_us = new.cast(
        pa.schema(
            [
                pa.field(f.name, pa.timestamp("us", tz="UTC"))
                if f.name == "ts"
                else pa.field(f.name, pa.large_string())
                if pa.types.is_string(f.type)
                else f
                for f in new.schema
            ]
        )
    )
    got = fk.EventLog(old, **KW).update(new_us)
    pd.testing.assert_frame_equal(got.funnel(), full.funnel())
    pd.testing.assert_frame_equal(got.transitions(), full.transitions())


def test_duplicates_across_old_and_new_are_duplicates_within_one_log(sample):
    """An overlapping extract: rows already stored come again. They collapse as repeats
    (or terminal runs), as duplicates within one log do, and change no metric."""
    base = fk.EventLog(sample, **KW)
    again = sample.iloc[-300:]
    got = base.update(again)
    assert_same_log(got, fk.EventLog(pd.concat([sample, again], ignore_index=True), **KW))
    assert got.quality.rows_in == len(sample) + 300
    new_rejects = got.rejects[got.rejects["row"] >= len(sample)]
    assert len(new_rejects) == 300
    assert set(new_rejects["reason"]) <= {"repeat", "terminal_run", "reopened_terminal"}
    for name in ("funnel", "transitions", "dwell", "kpis"):
        pd.testing.assert_frame_equal(getattr(got, name)(), getattr(base, name)())


def test_rejects_of_new_rows_are_counted_with_their_row_in_the_union(sample):
    old, new = sample.iloc[:3000], sample.iloc[3000:].copy()
    new.loc[new.index[:2], "stage"] = "Nowhere"
    new.loc[new.index[5], "ts"] = pd.NaT
    kw = dict(KW, errors="drop")
    got = fk.EventLog(old, **kw).update(new)
    rej = got.rejects
    unknown = rej[rej["reason"] == "unknown_stage"]
    assert unknown["row"].tolist() == [3000, 3001]
    assert rej.loc[rej["reason"] == "missing_time", "row"].tolist() == [3005]
    assert got.quality.by_reason["unknown_stage"] == 2
    assert_same_log(got, fk.EventLog(pd.concat([old, new], ignore_index=True), **kw))
    with pytest.raises(fk.EventLogError, match="unknown_stage|Nowhere"):
        fk.EventLog(old, **KW).update(new)  # errors="raise": the new bad rows raise


def test_as_of_of_an_update(sample):
    old, new = sample.iloc[:2500], sample.iloc[2500:]
    base = fk.EventLog(old, **dict(KW, as_of="2025-03-01", errors="drop"))
    # default: the latest time of the union, as a log built without as_of
    got = base.update(new)
    full = fk.EventLog(pd.concat([old, new]), **dict(KW, errors="drop"))
    assert got.as_of == full.as_of == sample["ts"].max()
    assert_same_log(got, full)
    fixed = base.update(new, as_of="2025-06-01")
    ref = fk.EventLog(pd.concat([old, new]), **dict(KW, as_of="2025-06-01", errors="drop"))
    assert_same_log(fixed, ref)
    assert fixed.quality.by_reason["after_as_of"] > 0


def test_update_errors(sample):
    log = fk.EventLog(sample.iloc[:100], **KW)
    with pytest.raises(fk.EventLogError, match="amount"):
        log.update(sample.drop(columns="amount"))
    with pytest.raises(fk.InvalidParameterError, match="`new_events` must be"):
        log.update([1, 2])
    other = fk.EventLog(sample.iloc[100:], **dict(KW, stale_after="30D"))
    with pytest.raises(fk.InvalidParameterError, match="stale_after"):
        log.update(other)
    with pytest.raises(fk.InvalidParameterError, match="as_of"):
        log.update(sample, as_of=[1])
    # the log updated is unchanged
    assert log.n_deals == fk.EventLog(sample.iloc[:100], **KW).n_deals


# =========================================================================== the job
COLS = ["--deal", "deal_id", "--stage", "stage", "--time", "ts", "--won", "Won"]
COLS += ["--lost", "Lost,Disqualified", "--stale-after", "60D"]
COLS += ["--stages", ",".join(KW["stages"])]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "funnelkit", *args], capture_output=True, text=True, env=env
    )


def _drop_events() -> pd.DataFrame:
    """A 30-point drop at Demo for deals entering it from 2025-05-05 (as in test_sql)."""
    change = {"date": "2025-05-05", "stage": "Demo", "advance": 0.35}
    return fk.datasets.synthetic(
        8000, seed=400, start="2024-01-01", end="2025-06-30", change=change
    )


def _scheduled_job(db: str, table: str, tmp_path, ts: str = "ts") -> None:
    """Yesterday's run builds the state; today's run reads only today's events, updates the
    state, writes the report and the alerts and exits 3 on the drop."""
    st, rep, mon = (str(tmp_path / n) for n in ("state", "report", "alerts"))
    yesterday = f"SELECT * FROM {table} WHERE {ts} < '2025-06-01'"
    today = f"SELECT * FROM {table} WHERE {ts} >= '2025-06-01' AND {ts} < '2025-06-02'"
    first = _run("monitor", "--sql", yesterday, "--db", db, *COLS, "--state", st, "-o", mon)
    assert first.returncode in (0, 3), first.stderr
    assert "saved the state" in first.stderr
    # today: the report updates the state with today's events and saves it back
    # the test checks the flow: few bootstrap draws, and no charts (the charts a report
    # writes are checked by test_cli.py's `report` tests)
    cfg = tmp_path / "funnel.toml"
    cfg.write_text('charts = "none"\n[key_stages]\nn_boot = 20\n')
    report = ["report", "--sql", today, "--db", db, *COLS, "--state", st, "-o", rep]
    out = _run(*report, "--csv", "none", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "report" / "report.html").is_file()
    # the alerts of the updated state (no input: the state as it is)
    alert = _run("monitor", "--state", st, "--weeks", "4", "-o", mon)
    assert alert.returncode == 3, alert.stderr
    doc = json.loads((tmp_path / "alerts" / "alerts.json").read_text())
    assert ("conversion", "Demo") in {(a["rule"], a["stage"]) for a in doc["alerts"]}
    # the state equals the full build on everything up to today
    everything = f"SELECT * FROM {table} WHERE {ts} < '2025-06-02'"
    kw = dict(KW, amount=None, attrs=())
    full = fk.read_sql(everything, db, **kw)
    got = fk.load(st)
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert got.n_deals == full.n_deals > 0 and got.as_of == full.as_of
    assert summary["deals"] == full.n_deals and summary["as_of"] == full.as_of.isoformat()
    for name in ("funnel", "transitions", "dwell", "kpis"):
        pd.testing.assert_frame_equal(getattr(got, name)(), getattr(full, name)())
    assert got.deals()["deal"].astype(str).tolist() == full.deals()["deal"].astype(str).tolist()


@pytest.mark.slow
def test_scheduled_job_on_sqlite(tmp_path):
    path = tmp_path / "crm.db"
    ev = _drop_events()
    with sqlite3.connect(path) as db:  # ISO text times, as SQLite stores them
        ev.assign(ts=ev["ts"].dt.strftime("%Y-%m-%d %H:%M:%S")).to_sql("events", db, index=False)
    _scheduled_job(f"sqlite:///{path}", "events", tmp_path)


@pytest.mark.slow
def test_state_usage_errors(sample, tmp_path):
    out = _run("monitor", "--state", str(tmp_path / "none"), "-o", str(tmp_path / "m"))
    assert out.returncode == 2 and "no saved state there" in out.stderr
    fk.EventLog(sample, **dict(KW, amount=None, attrs=())).save(tmp_path / "s")
    sample.to_csv(tmp_path / "today.csv", index=False)
    other = [*COLS[:-4], "--stale-after", "90D", *COLS[-2:]]  # 90D, saved with 60D
    st = ["--state", str(tmp_path / "s"), "-o", str(tmp_path / "m")]
    out = _run("monitor", str(tmp_path / "today.csv"), *other, *st)
    assert out.returncode == 2 and "stale_after" in out.stderr, out.stderr
    same = _run("monitor", str(tmp_path / "today.csv"), *COLS, *st)
    assert same.returncode in (0, 3), same.stderr
    # without an input, log options given must be the state's (they are not applied)
    out = _run("monitor", *other, *st)
    assert out.returncode == 2 and "--stale-after '90D' differs from the state's" in out.stderr
    assert _run("monitor", *COLS, *st).returncode in (0, 3)


@pytest.mark.slow
def test_a_day_without_new_events_keeps_the_state(sample, tmp_path):
    """An extract with no rows (a quiet day) is not bad input for a job with a state: the
    state stays as it was and the outputs are written from it; without a state it is."""
    fk.EventLog(sample, **dict(KW, amount=None, attrs=())).save(tmp_path / "s")
    before = (tmp_path / "s" / "manifest.json").read_text()
    sample.iloc[:0].to_csv(tmp_path / "quiet.csv", index=False)
    st = ["--state", str(tmp_path / "s"), "-o", str(tmp_path / "m")]
    out = _run("monitor", str(tmp_path / "quiet.csv"), *COLS, *st)
    assert out.returncode in (0, 3), out.stderr
    assert "no new events in the input" in out.stderr
    assert (tmp_path / "m" / "alerts.json").is_file()
    assert (tmp_path / "s" / "manifest.json").read_text() == before
    got = fk.load(tmp_path / "s")
    want = fk.EventLog(sample, **dict(KW, amount=None, attrs=()))
    pd.testing.assert_frame_equal(got.funnel(), want.funnel())
    # no state yet: an empty input is still an error (exit 2), and no state is made
    none = ["--state", str(tmp_path / "new"), "-o", str(tmp_path / "m2")]
    out = _run("monitor", str(tmp_path / "quiet.csv"), *COLS, *none)
    assert out.returncode == 2 and "empty" in out.stderr
    assert not (tmp_path / "new").exists()
    # the library tells the two apart by class
    with pytest.raises(fk.EmptyLogError):
        fk.EventLog(sample.iloc[:0], **dict(KW, amount=None, attrs=()))


@pytest.mark.slow
def test_scheduled_job_on_postgres_exits_3_on_a_real_drop(postgres, tmp_path):
    """Issue 24's done-when: a scheduled job reads events from PostgreSQL, updates
    yesterday's state with today's events, writes the report and alerts, exits 3."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(postgres.replace("postgresql://", "postgresql+psycopg://"))
    name = f"job_{uuid.uuid4().hex[:8]}"
    _drop_events().to_sql(name, engine, index=False)  # timestamptz
    try:
        _scheduled_job(postgres, name, tmp_path)
    finally:
        with engine.begin() as c:
            c.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{name}"'))
        engine.dispose()


def test_new_rows_read_with_other_types_are_cast_to_the_stored_ones(sample):
    """A day's CSV whose deal ids all look like numbers is read as integers; they join the
    stored text ids. Types that cannot be cast are an error naming the column."""
    codes = pd.factorize(sample["deal_id"])[0]
    ev = sample.assign(deal_id=pd.Series(codes + 1000).astype(str).to_numpy())
    table = pa.Table.from_pandas(ev, preserve_index=False)
    old, new = table.slice(0, 3000), table.slice(3000)
    as_int = new.set_column(0, "deal_id", pc.cast(new.column("deal_id"), pa.int64()))
    got = fk.EventLog(old, **KW).update(as_int)
    assert_same_log(got, fk.EventLog(table, **KW))
    as_text = new.set_column(2, "ts", pa.array(["not a time"] * new.num_rows))
    with pytest.raises(fk.EventLogError, match=r"`ts` \(timestamp.*vs string"):
        fk.EventLog(old, **KW).update(as_text)


def test_a_log_with_activities_is_refused_not_saved_without_them(tmp_path):
    log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    la = log.with_activities(
        fk.datasets.load_sample_activities(), **fk.datasets.SAMPLE_ACTIVITIES_KWARGS
    )
    with pytest.raises(fk.InvalidParameterError, match="carries activities"):
        la.save(tmp_path / "state")
    assert not (tmp_path / "state").exists()


def test_phases_and_post_sale_survive_save_and_load(tmp_path):
    ev = fk.datasets.load_sample()
    decision = {
        "Lead": "need",
        "Qualified": "need",
        "Discovery": "search",
        "Demo": "evaluation",
        "Proposal": "evaluation",
        "Negotiation": "decision",
    }
    log = fk.EventLog(ev, **fk.datasets.SAMPLE_KWARGS, phases={"decision": decision})
    back = fk.load(log.save(tmp_path / "state"))
    assert back.phases == log.phases
    pd.testing.assert_frame_equal(
        back.by_phase("decision").funnel(), log.by_phase("decision").funnel()
    )
