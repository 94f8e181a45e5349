"""Shared fixtures: seeded rng, paths to shared data, Agg backend, figure cleanup."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

matplotlib.use("Agg")

# CI: derandomized, no deadline (shared machines have noisy timings)
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
GOLDEN = SHARED / "examples" / "golden"
BPIC = SHARED / "data" / "bpic2012.parquet"

GOLDEN_KW = dict(
    deal="deal",
    stage="stage",
    time="ts",
    stages=["A", "B", "C", "D"],
    won="W",
    lost=["L1", "L2"],
    as_of="2025-03-01",
    stale_after="30D",
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20251126)


@pytest.fixture
def golden_events() -> pd.DataFrame:
    return pd.read_csv(GOLDEN / "events.csv")


@pytest.fixture
def golden_log(golden_events):
    import funnelkit as fk

    return fk.EventLog(golden_events, **GOLDEN_KW)


@pytest.fixture
def bpic_events() -> pd.DataFrame:
    if not BPIC.exists():
        pytest.skip(f"real data not present at {BPIC} (CI always has it)")
    return pd.read_parquet(BPIC)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def days(td: pd.Series) -> np.ndarray:
    """Timedelta column → float days (NaN for NaT)."""
    return pd.to_timedelta(td).dt.total_seconds().to_numpy(dtype=float) / 86_400
