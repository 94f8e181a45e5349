"""The `funnelkit` command through its real entry points (subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import funnelkit as fk
from conftest import GOLDEN


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "funnelkit", *args], capture_output=True, text=True, timeout=120
    )


GOLDEN_ARGS = [
    "--deal",
    "deal",
    "--stage",
    "stage",
    "--time",
    "ts",
    "--stages",
    "A,B,C,D",
    "--won",
    "W",
    "--lost",
    "L1,L2",
]


def test_version():
    r = run("--version")
    assert r.returncode == 0 and fk.__version__ in r.stdout


def test_validate_sample():
    r = run("validate", "--sample")
    assert r.returncode == 0, r.stderr
    q = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS).quality
    assert f"{q.rows_in:,} in" in r.stdout and f"{q.deals:,} = {q.won:,} won" in r.stdout


def test_validate_golden_csv_json():
    r = run(
        "validate",
        str(GOLDEN / "events.csv"),
        *GOLDEN_ARGS,
        "--as-of",
        "2025-03-01",
        "--stale-after",
        "30D",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rows_in"] == 31 and out["rows_used"] == 27 and out["stale"] == 1


def test_console_script_installed():
    exe = Path(sys.executable).parent / "funnelkit"
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    r = subprocess.run(
        [str(exe), "validate", "--sample"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["validate", "nope.csv", "--deal", "d", "--stage", "s", "--time", "t"], "does not exist"),
        (
            [
                "validate",
                str(GOLDEN / "events.csv"),
                "--deal",
                "deal_id",
                "--stage",
                "stage",
                "--time",
                "ts",
            ],
            "`deal_id`",
        ),
        (["validate", str(GOLDEN / "events.csv"), "--stage", "stage", "--time", "ts"], "--deal"),
        (["validate", "--sample", "--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "invalid choice"),
        (
            ["validate", str(GOLDEN / "events.csv"), *GOLDEN_ARGS, "--stages", "A,B"],
            "unknown stage",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(args, words):
    r = run(*args)
    assert r.returncode == 2
    assert words in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_unparseable_dates_exit_2(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("deal,stage,ts\na,A,2025-01-01\na,B,someday\n")
    r = run(
        "validate",
        str(p),
        "--deal",
        "deal",
        "--stage",
        "stage",
        "--time",
        "ts",
        "--won",
        "W",
        "--lost",
        "L",
    )
    assert r.returncode == 2
    assert "column `ts`" in r.stderr and "unparseable time" in r.stderr
    r = run(
        "validate",
        str(p),
        "--deal",
        "deal",
        "--stage",
        "stage",
        "--time",
        "ts",
        "--errors",
        "drop",
    )
    assert r.returncode == 0 and "unparseable_time 1" in r.stdout
