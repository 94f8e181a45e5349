"""Shared fixtures: seeded rng, paths to test data, Agg backend, figure cleanup.

Everything the suite needs lives in the repository: the golden example is a copy in
``tests/data/golden`` (the hand-worked tables of the project's design notes). Only the larger
real logs come from a ``shared/data`` folder beside the repository; tests that use them skip
with the reason when it is absent (CI has it).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

matplotlib.use("Agg")

# derandomized and no deadline (shared machines have noisy timings) everywhere, so the
# README's `pytest` gives every contributor the result CI gives; HYPOTHESIS_PROFILE=dev
# draws new examples on each run (to hunt for bugs)
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "golden"
SHARED = ROOT.parent / "shared"
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


def require_real_data(path: Path) -> Path:
    """``path`` of a real log beside the repository, or skip the test saying why.

    ``.ci/run`` sets ``FUNNELKIT_REQUIRE_REAL_DATA=1`` where the data is present, so a
    missing file fails there instead of skipping quietly.
    """
    if not path.exists():
        reason = f"real data not present at {path} (a plain clone has no ../shared; CI has it)"
        if os.environ.get("FUNNELKIT_REQUIRE_REAL_DATA") == "1":
            pytest.fail(reason + " but FUNNELKIT_REQUIRE_REAL_DATA=1")
        pytest.skip(reason)
    return path


@pytest.fixture
def bpic_events() -> pd.DataFrame:
    return pd.read_parquet(require_real_data(BPIC))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def same_color(a, b) -> bool:
    """Whether two matplotlib colours are the same RGB (alpha aside)."""
    from matplotlib.colors import to_rgba

    return bool(np.allclose(to_rgba(a)[:3], to_rgba(b)[:3]))


def days(td: pd.Series) -> np.ndarray:
    """Timedelta column → float days (NaN for NaT)."""
    return pd.to_timedelta(td).dt.total_seconds().to_numpy(dtype=float) / 86_400
