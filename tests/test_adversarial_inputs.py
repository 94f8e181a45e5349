"""Hostile and careless in-memory input (issue 25): every case is right or a clear error.

Each test starts from the issue's reproducer ``e`` (two deals: ``a`` won, ``b`` lost) and
checks real values, so a silently wrong answer fails as surely as a crash.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import funnelkit as fk

K = dict(deal="d", stage="s", time="t", won="won", lost="lost")


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        dict(
            d=list("aaabb"),
            s=["Lead", "Demo", "won", "Lead", "lost"],
            t=["2025-01-01", "2025-01-05", "2025-01-10", "2025-01-02", "2025-01-03"],
        )
    )


@pytest.fixture
def e() -> pd.DataFrame:
    return _events()


# --------------------------------------------------------------------------- categoricals
def _teams(e: pd.DataFrame) -> pd.DataFrame:
    """Team Zed owns the won deal a, team Alpha the lost deal b; categories sort the
    other way round (and hold an unused one)."""
    x = e.assign(team=["Zed"] * 3 + ["Alpha"] * 2, amt=[30] * 3 + [10] * 2)
    return x.astype(
        {
            "team": pd.CategoricalDtype(["Alpha", "Unused", "Zed"]),
            "d": "category",
            "s": "category",
        }
    )


def _team_of(log) -> dict:
    d = log.deals()
    d = d.compute() if hasattr(d, "compute") else d
    return dict(zip(d["deal"].astype(str), d["team"].astype(str), strict=True))


def test_categorical_attr_keeps_each_deals_label(e):
    # the reproducer: the won deal a showed as Alpha
    x = e.assign(team=["Zed"] * 3 + ["Alpha"] * 2).astype({"team": "category"})
    log = fk.EventLog(x, **K, attrs=["team"])
    assert _team_of(log) == {"a": "Zed", "b": "Alpha"}


@pytest.mark.parametrize("source", ["pandas", "arrow", "parquet"])
def test_categorical_attr_every_source(e, source, tmp_path):
    x = _teams(e)
    if source == "pandas":
        log = fk.EventLog(x, **K, attrs=["team"], amount="amt")
    elif source == "arrow":  # dictionary arrays
        table = pa.Table.from_pandas(x, preserve_index=False)
        assert pa.types.is_dictionary(table.column("team").type)
        log = fk.EventLog(table, **K, attrs=["team"], amount="amt")
    else:
        x.to_parquet(tmp_path / "c.parquet")
        log = fk.read_events(tmp_path / "c.parquet", **K, attrs=["team"], amount="amt")
    assert _team_of(log) == {"a": "Zed", "b": "Alpha"}
    f = log.funnel(by="team").set_index(["team", "stage"])
    assert f.loc[("Zed", "Lead"), "advanced"] == 1
    assert f.loc[("Alpha", "Lead"), "dropped"] == 1
    w = log.funnel(by="team", weight="amount").set_index(["team", "stage"])
    assert w.loc[("Zed", "Lead"), "reached"] == 30.0
    assert w.loc[("Alpha", "Lead"), "reached"] == 10.0


def test_categorical_visit_attrs(e):
    log = fk.EventLog(_teams(e), **K, visit_attrs=["team"])
    v = log.visits()
    assert dict(zip(v["deal"].astype(str), v["team"].astype(str), strict=False)) == {
        "a": "Zed",
        "b": "Alpha",
    }
    f = log.funnel(by="team").set_index(["team", "stage"])
    assert f.loc[("Zed", "Demo"), "reached"] == 1
    assert f.loc[("Alpha", "Demo"), "reached"] == 0


def test_categorical_attr_segment_names(e):
    log = fk.EventLog(_teams(e), **K, attrs=["team"])
    f = log.funnel(by="team")
    assert set(f.loc[f["advanced"] > 0, "team"].astype(str)) == {"Zed"}


def test_categorical_attr_dask(e):
    dd = pytest.importorskip("dask.dataframe")
    log = fk.EventLog(dd.from_pandas(_teams(e), npartitions=2), **K, attrs=["team"], amount="amt")
    assert _team_of(log) == {"a": "Zed", "b": "Alpha"}
