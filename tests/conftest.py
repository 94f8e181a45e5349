"""Shared fixtures: seeded rng, paths to test data, Agg backend, figure cleanup.

Everything the suite needs lives in the repository: the golden example is a copy in
``tests/data/golden`` (the hand-worked tables of the project's design notes). Only the larger
real logs come from a ``shared/data`` folder beside the repository; tests that use them skip
with the reason when it is absent (CI has it).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import warnings
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


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The ``funnelkit`` command run in this process (``funnelkit.cli.main``): its exit
    code, and what it prints — Python warnings included, written to stderr as a fresh
    interpreter writes them. A command-line test without the second or two of starting
    Python and importing the libraries; the tests of the entry points themselves (the
    console script, ``python -m funnelkit``, Ctrl-C, killed writers) start real processes.
    """
    from funnelkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        # Python's own filters, as `python -m funnelkit` has them (not pytest's)
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                         ResourceWarning):  # fmt: skip
            warnings.filterwarnings("ignore", category=category)
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: usage errors and --help/--version
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    shown = "".join(
        warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught
    )
    return subprocess.CompletedProcess(["funnelkit", *args], code, out.getvalue(),
                                       shown + err.getvalue())  # fmt: skip


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
        _skip_external(reason)
    return path


#: the test running now (set by the autouse fixture ``_current_test``)
_CURRENT: list[pytest.Item] = []


@pytest.fixture(autouse=True)
def _current_test(request):
    _CURRENT[:] = [request.node]
    yield
    _CURRENT.clear()


def _skip_external(reason: str) -> None:
    """Skip a test that needs something from outside the repository — or fail it when it
    is not marked ``external``: CI runs only the marked ones where the data and the
    server are, so an unmarked one would never run with them."""
    if _CURRENT and _CURRENT[0].get_closest_marker("external") is None:
        pytest.fail(
            f"{reason}; this test reaches outside the repository but is not marked "
            "`external`: use the bpic_path/bpic_events/shared_golden/postgres fixtures, or "
            "mark it (pytest.param(..., marks=pytest.mark.external))"
        )
    pytest.skip(reason)


@pytest.fixture(scope="session")
def bpic_path() -> Path:
    """The BPIC 2012 log of ``../shared/data`` (or the test skips, see
    :func:`require_real_data`)."""
    return require_real_data(BPIC)


@pytest.fixture
def bpic_events(bpic_path) -> pd.DataFrame:
    return pd.read_parquet(bpic_path)


@pytest.fixture(scope="session")
def shared_golden() -> Path:
    """The design notes' golden example beside the repository (``../shared/examples``)."""
    return require_real_data(SHARED / "examples" / "golden")


@pytest.fixture(scope="session")
def postgres() -> str:
    """The URL of the PostgreSQL server of ``FUNNELKIT_TEST_POSTGRES`` (``.ci/run`` starts
    one); without a reachable server the test skips, or fails under
    ``FUNNELKIT_REQUIRE_POSTGRES=1``."""
    from funnelkit.sql import _safe

    url = os.environ.get("FUNNELKIT_TEST_POSTGRES")
    required = os.environ.get("FUNNELKIT_REQUIRE_POSTGRES") == "1"
    reason = None
    if not url:
        reason = "no PostgreSQL server: set FUNNELKIT_TEST_POSTGRES (.ci/run starts one)"
    else:
        try:
            import psycopg

            with psycopg.connect(url, connect_timeout=5):
                pass
        except Exception as exc:  # the server is not there
            reason = f"PostgreSQL at {_safe(url)} unreachable: {exc}"
    if reason:
        if required:
            pytest.fail(reason + " but FUNNELKIT_REQUIRE_POSTGRES=1")
        _skip_external(reason)
    return url


#: the fixtures that reach outside the repository: a test using one (directly or through
#: another fixture) is marked ``external``
EXTERNAL_FIXTURES = frozenset({"bpic_path", "shared_golden", "postgres"})


def pytest_collection_modifyitems(config, items):
    """Mark the tests that use data or services from outside the repository (``-m
    external`` runs just them: CI runs them where ``../shared`` and PostgreSQL are, and
    the whole suite in a plain clone)."""
    for item in items:
        if EXTERNAL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.external)


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
