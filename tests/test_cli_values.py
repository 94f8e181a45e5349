"""The command line's values: TOML and option types for times and durations, and
``validate --json`` (the CLI's tests kept apart from test_cli.py's end-to-end runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import funnelkit as fk
from conftest import GOLDEN, run_cli

EVENTS = str(GOLDEN / "events.csv")
COLS = ["--deal", "deal", "--stage", "stage", "--time", "ts", "--stages", "A,B,C,D",
        "--won", "W", "--lost", "L1,L2"]  # fmt: skip


def run_process(*args: str) -> subprocess.CompletedProcess:
    """``python -m funnelkit ...`` in a new process."""
    return subprocess.run(
        [sys.executable, "-m", "funnelkit", *args], capture_output=True, text=True, timeout=120
    )


run = run_cli  # the command in this process; the entry-point tests use run_process


def validate_json(*args: str) -> dict:
    r = run("validate", *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def config(tmp_path: Path, text: str) -> str:
    p = tmp_path / "funnel.toml"
    p.write_text(text, encoding="utf-8")
    return str(p)


# ---------------------------------------------------------------- validate --json
def test_validate_json_filtered_counts_do_not_overwrite_the_deals():
    out = validate_json("--sample", "--where", "outcome=='won'")
    assert out["deals"] == 60 and out["won"] == 60  # was 540: the deals filtered out
    assert out["filtered"] == {"deals": 540, "rows": 2692}
    log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    assert out == json.loads(json.dumps(log.filter(where="outcome == 'won'").quality.to_dict()))
    assert out["deals"] == out["won"] + out["lost"] + out["stale"] + out["open"]


def test_validate_json_attribute_named_like_a_count(tmp_path):
    # a carried column named `open` or `deals` must not replace the outcome counts
    p = tmp_path / "ev.csv"
    p.write_text(
        "deal,stage,ts,open,deals\n"
        "a,A,2025-01-01,x,1\na,B,2025-01-02,y,2\nb,A,2025-01-01,x,1\nb,W,2025-01-03,x,1\n"
    )
    out = validate_json(str(p), *COLS, "--attrs", "open,deals")
    assert out["deals"] == 2 and out["open"] == 1 and out["won"] == 1
    assert out["attr_changes"] == {"open": 1, "deals": 1}
    assert out["by_reason"] == {} and out["filtered"] == {}


# ---------------------------------------------------------------- TOML value types
def exit2(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ("as_of = 12:00:00", ["`as_of` = 12:00:00 is a time of day without a date"]),
        ("as_of = 12:00:00.5", ["`as_of` = 12:00:00.500000 is a time of day"]),
        ('as_of = "12:00:00"', ["`as_of` = '12:00:00' holds no date"]),
        ('as_of = "now"', ["`as_of` = 'now' holds no date"]),
        ("as_of = 2025", ["`as_of` must be a date", "got 2025"]),
        ("as_of = 2025.5", ["`as_of` must be a date"]),
        ("period = 09:30:00", ["`period` = 09:30:00 is a time of day"]),
        ('created = [09:30:00, ""]', ["`created` = 09:30:00 is a time of day"]),
        ('created = "2025-01-01"', ["`created` must be [START, END]"]),
        ("holidays = [2025-12-25, 08:00:00]", ["`holidays` = 08:00:00 is a time of day"]),
        ('holidays = "2025-12-25,today"', ["`holidays` = 'today' holds no date"]),
        ("stale_after = 90", ["`stale_after` = 90 has no unit: give a unit, e.g. '90D'"]),
        ("stale_after = 1.5", ["`stale_after` = 1.5 has no unit: give a unit, e.g. '1.5D'"]),
        ('stale_after = "90"', ["`stale_after` = '90' has no unit: give a unit, e.g. '90D'"]),
        ("stale_after = 12:00:00", ["`stale_after` must be a duration with a unit"]),
        ("stale_after = true", ["`stale_after` must be a duration with a unit"]),
        ("within = 30", ["`within` = 30 has no unit: give a unit, e.g. '30D'"]),
        ("[within]\nDemo = 14", ["`within.Demo` = 14 has no unit: give a unit, e.g. '14D'"]),
        ('[within]\nDemo = "14"', ["`within.Demo` = '14' has no unit"]),
        ('calendar = "weekly"', ["`calendar` must be 'business'"]),
    ],
)
def test_toml_values_of_the_wrong_type_are_usage_errors(tmp_path, toml, words):
    out = tmp_path / "out"
    r = run("report", "--sample", "--config", config(tmp_path, toml + "\n"), "-o", str(out),
            "--quiet")  # fmt: skip
    exit2(r, "funnelkit: error: config file", *words)
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--as-of", "12:00:00"], ["`as_of` (--as-of) = '12:00:00' holds no date"]),
        (["--as-of", "today"], ["`as_of` (--as-of) = 'today' holds no date"]),
        (["--period", "noon"], ["`period` (--period) = 'noon' holds no date"]),
        (["--created", "12:00,"], ["`created` (--created) = '12:00' holds no date"]),
        (["--holidays", "2025-12-25,now"], ["`holidays` (--holidays) = 'now'"]),
        (["--stale-after", "90"], ["`stale_after` (--stale-after) = '90' has no unit", "'90D'"]),
        (["--within", "30"], ["`within` (--within) = '30' has no unit: give a unit, e.g. '30D'"]),
        (["--within", "Demo=14"], ["`within.Demo` (--within) = '14' has no unit"]),
    ],
)
def test_command_line_times_and_durations_need_a_date_or_unit(tmp_path, args, words):
    out = tmp_path / "out"
    exit2(run("report", "--sample", *args, "-o", str(out), "--quiet"), *words)
    assert not out.exists()


@pytest.mark.slow
def test_toml_dates_and_datetimes_are_read(tmp_path):
    # a local date, a local datetime and an offset datetime naming the same instant
    want = validate_json("--sample", "--as-of", "2025-06-30")
    assert want["as_of"] == "2025-06-30T00:00:00+00:00"
    for value in ("2025-06-30", "2025-06-30T00:00:00", "2025-06-30T02:00:00+02:00"):
        got = validate_json("--sample", "--config", config(tmp_path, f"as_of = {value}\n"))
        assert got == want, value
    # a local date before the last events: the library's clear error, exit 2
    r = run("validate", "--sample", "--config", config(tmp_path, "as_of = 2025-06-01\n"))
    exit2(r, "`as_of`")


@pytest.mark.slow
def test_toml_created_and_holidays_as_dates(tmp_path):
    text = 'created = [2025-01-01, ""]\nholidays = [2024-12-25]\ncalendar = "business"\n'
    got = validate_json("--sample", "--config", config(tmp_path, text))
    want = validate_json("--sample", "--created", "2025-01-01,", "--holidays", "2024-12-25",
                         "--calendar", "business")  # fmt: skip
    assert got == want and got["filtered"]["deals"] > 0


@pytest.mark.slow
def test_toml_offset_datetime_on_a_naive_log_is_a_clear_error(tmp_path):
    toml = "as_of = 2025-03-01T00:00:00+02:00\n"
    r = run("validate", EVENTS, *COLS, "--config", config(tmp_path, toml))
    exit2(r, "`as_of`", "time zone")
    ok = validate_json(EVENTS, *COLS, "--config", config(tmp_path, "as_of = 2025-03-01\n"))
    assert ok["as_of"] == "2025-03-01T00:00:00"


@pytest.mark.slow
def test_a_huge_n_boot_is_a_usage_error_not_a_memory_error(tmp_path):
    """[key_stages] n_boot = 99999999999999999 ran out of memory (exit 1)."""
    import subprocess
    import sys

    cfg = tmp_path / "f.toml"
    cfg.write_text("[key_stages]\nn_boot = 99999999999999999\n")
    r = subprocess.run(
        [sys.executable, "-m", "funnelkit", "report", "--sample", "--config", str(cfg),
         "-o", str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "n_boot" in r.stderr and "[0, 100,000]" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_n_boot_has_an_upper_bound_in_the_library():
    import pytest

    import funnelkit as fk

    log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    with pytest.raises(
        fk.EventLogError, match=r"`n_boot` must be an int in the range \[0, 100,000\]"
    ):
        log.key_stages(n_boot=10**9)
    with pytest.raises(
        fk.EventLogError, match=r"`n_boot` must be an int in the range \[0, 100,000\]"
    ):
        log.what_if({"Demo": {"conversion": 0.05}}, n_boot=10**9)
