"""The `funnelkit` command through its real entry points (subprocess): validate, and
report end to end (every output exists, parses and equals the library's tables)."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import funnelkit as fk
from conftest import BPIC, GOLDEN

CONSOLE = Path(sys.executable).parent / "funnelkit"


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


# ---------------------------------------------------------------------------- report
SAMPLE_REPORT = ["report", "--sample", "--by", "team", "--period", "2025-01-01"]


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "out"
    r = run(*SAMPLE_REPORT, "-o", str(out))
    assert r.returncode == 0, r.stderr
    return r, out


def test_report_writes_every_output(sample_report):
    r, out = sample_report
    assert r.stdout == ""
    for step in ("reading…", "key stages…", "charts…", "writing…"):
        assert f"funnelkit: {step}" in r.stderr
    log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    expect = {
        "kpis": log.kpis(),
        "funnel": log.funnel(),
        "funnel_strict": log.funnel(skips="strict"),
        "key_stages": log.key_stages(by=["team"], period="2025-01-01"),
        "transitions": log.transitions(),
        "dwell": log.dwell(),
        "cycle_time": log.cycle_time(),
        "funnel_by": log.funnel(by=["team"]),
        "deals": log.deals(),
        "quality": log.quality.to_frame(),
    }
    tables = out / "tables"
    for name, table in expect.items():
        pd.testing.assert_frame_equal(pd.read_parquet(tables / f"{name}.parquet"), table)
        if name == "deals":  # per-deal: Parquet only by default (--csv small)
            assert not (tables / "deals.csv").exists()
            continue
        csv = pd.read_csv(tables / f"{name}.csv")
        assert list(csv.columns) == list(table.columns) and len(csv) == len(table), name
    for name in ("rejects", "reject_examples"):
        assert len(pd.read_parquet(tables / f"{name}.parquet")) > 0
        assert len(pd.read_csv(tables / f"{name}.csv")) > 0
    summary = json.loads((out / "summary.json").read_text())
    charts = summary["charts"]
    assert {"funnel", "key_stages", "flow", "dwell", "segments"} <= set(charts)
    for name in charts:
        assert (out / "charts" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert "<svg" in (out / "charts" / f"{name}.svg").read_text()
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("<img") == len(charts) and "http://" not in page.replace(
        "http://www.w3.org", ""
    )
    ks = expect["key_stages"]
    key = ks[ks["is_key"]]
    assert [k["reason"] for k in summary["key_stages"]] == key["reason"].tolist()
    for reason in key["reason"]:
        assert html.escape(reason) in page
    assert summary["deals"] == 600 and summary["settings"]["by"] == ["team"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_report_bpic2012(tmp_path):
    if not BPIC.exists():
        pytest.skip(f"real data not present at {BPIC} (CI always has it)")
    ev = pd.read_parquet(BPIC)
    a = ev[(ev["lifecycle"] == "COMPLETE") & ev["activity"].str.startswith("A_")]
    path = tmp_path / "bpic_a.parquet"
    a.to_parquet(path)
    won, lost = "A_APPROVED,A_REGISTERED,A_ACTIVATED", "A_DECLINED,A_CANCELLED"
    args = ["--deal", "case_id", "--stage", "activity", "--time", "ts", "--won", won]
    out = tmp_path / "report"
    r = run("report", str(path), *args, "--lost", lost, "--amount", "amount_req", "--quiet",
            "-o", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout == ""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["deals"] == 13_087 and summary["won"] == 2_246
    assert summary["stage_order_inferred"] and summary["key_stages"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("<img") == len(summary["charts"]) >= 6
    assert "A_FINALIZED" in page and "terminal_run" in page
    for k in summary["key_stages"]:
        assert html.escape(k["reason"]) in page


GOLDEN_TOML = """
deal = "deal"
stage = "stage"
time = "ts"
stages = ["A", "B", "C", "D"]
won = "W"
lost = ["L1", "L2"]
as_of = 2025-03-01
stale-after = "30D"

[key_stages]
n_boot = 0
"""


def test_report_csv_option_and_config_key(tmp_path):
    cfg = tmp_path / "funnel.toml"
    cfg.write_text('csv = "all"\n' + GOLDEN_TOML)
    out = tmp_path / "a"
    r = run("report", str(GOLDEN / "events.csv"), "--config", str(cfg), "-o", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "tables" / "deals.csv").exists()
    r = run("report", str(GOLDEN / "events.csv"), "--config", str(cfg), "--csv", "none",
            "-o", str(out), "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert not list((out / "tables").glob("*.csv"))
    assert (out / "tables" / "deals.parquet").exists()
    assert json.loads((out / "summary.json").read_text())["csv"] == "none"
    r = run("report", str(GOLDEN / "events.csv"), "--config", str(cfg), "--csv", "some",
            "-o", str(out), "--quiet")  # fmt: skip
    assert r.returncode == 2 and "--csv" in r.stderr
    cfg.write_text('csv = "some"\n' + GOLDEN_TOML)
    r = run("report", str(GOLDEN / "events.csv"), "--config", str(cfg), "-o", str(out), "--quiet")
    assert r.returncode == 2 and "`csv` must be" in r.stderr


def test_report_from_config_file_command_line_overrides(tmp_path):
    cfg = tmp_path / "funnel.toml"
    cfg.write_text(GOLDEN_TOML)
    out = tmp_path / "a"
    r = run("report", str(GOLDEN / "events.csv"), "--config", str(cfg), "-o", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["stale"] == 1
    r = run("report", str(GOLDEN / "events.csv"), "--config", str(cfg), "--stale-after", "3650D",
            "-o", str(out), "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["stale"] == 0
    ks = pd.read_parquet(out / "tables" / "key_stages.parquet")
    assert ks.loc[ks["signal"] == "leverage", "ci_low"].isna().all()  # [key_stages] n_boot = 0


def test_console_script_report(tmp_path):
    if not CONSOLE.exists():
        pytest.skip("console script not installed in this environment")
    cfg = tmp_path / "funnel.toml"
    cfg.write_text(GOLDEN_TOML)
    out = tmp_path / "out"
    r = subprocess.run(
        [str(CONSOLE), "report", str(GOLDEN / "events.csv"), "--config", str(cfg), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert (out / "report.html").exists() and "funnelkit: writing…" in r.stderr


def _bad_dates(tmp_path: Path) -> str:
    p = tmp_path / "bad.csv"
    p.write_text("deal,stage,ts\na,A,2025-01-01\na,B,someday\n")
    return str(p)


def _config(tmp_path: Path, text: str) -> str:
    p = tmp_path / "funnel.toml"
    p.write_text(text)
    return str(p)


def _not_a_report(tmp_path: Path) -> str:
    (tmp_path / "notes.txt").write_text("keep me")
    return str(tmp_path)


EVENTS = str(GOLDEN / "events.csv")
COLS = ["--deal", "deal", "--stage", "stage", "--time", "ts"]


@pytest.mark.parametrize(
    ("make_args", "words"),
    [
        (lambda t: [EVENTS, "--deal", "deal_id", "--stage", "stage", "--time", "ts"], "`deal_id`"),
        (lambda t: [str(t / "nope.csv"), *COLS], "does not exist"),
        (lambda t: ["--sample", "--bogus"], "unrecognized arguments: --bogus"),
        (lambda t: [_bad_dates(t), *COLS, "--won", "W"], "unparseable time"),
        (lambda t: ["--sample", "--as-of", "someday"], "`as_of`"),
        (lambda t: ["--sample", "--period", "someday"], "`period`"),
        (lambda t: ["--sample", "--by", "colour"], "`colour`"),
        pytest.param(
            lambda t: ["--sample", "--freq", "fortnightly"],
            "`freq`",
            marks=pytest.mark.skipif(
                not hasattr(fk.EventLog, "trend"), reason="EventLog.trend not in this funnelkit"
            ),
        ),
        (lambda t: [EVENTS, "--config", _config(t, 'colour = "red"\n')], "unknown key `colour`"),
        (
            lambda t: [EVENTS, "--config", _config(t, "[key_stages]\nnboot = 1\n")],
            "unknown key `key_stages.nboot`",
        ),
        (lambda t: [EVENTS, "--config", _config(t, "deal = [\n")], "not valid TOML"),
        (lambda t: [EVENTS, "--config", str(t / "missing.toml")], "does not exist"),
        (lambda t: [EVENTS, *COLS, "--stages", "A,B"], "unknown stage"),
    ],
)
def test_report_bad_input_exits_2_with_one_line(tmp_path, make_args, words):
    out = tmp_path / "out"
    r = run("report", *make_args(tmp_path), "-o", str(out), "--quiet")
    assert r.returncode == 2, r.stderr
    assert words in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_report_usage_errors(tmp_path):
    r = run("report", "--sample")
    assert r.returncode == 2 and "-o/--output" in r.stderr
    busy = _not_a_report(tmp_path)
    r = run("report", "--sample", "-o", busy, "--quiet")
    assert r.returncode == 2 and "not an earlier funnelkit report" in r.stderr
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_report_scoping_options_equal_the_library(tmp_path):
    out = tmp_path / "scoped"
    r = run(
        "report",
        "--sample",
        "--where",
        "team == 'Team C'",
        "--created",
        "2024-04-01,",
        "--within",
        "Demo=30D",
        "--calendar",
        "business",
        "--holidays",
        "2024-12-25",
        "--quiet",
        "-o",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    got = pd.read_parquet(out / "tables" / "funnel.parquet")
    cal = fk.BusinessCalendar(holidays=["2024-12-25"])
    log = fk.EventLog(fk.datasets.load_sample(), **{**fk.datasets.SAMPLE_KWARGS, "calendar": cal})
    sub = log.filter(where="team == 'Team C'", created=("2024-04-01", None))
    pd.testing.assert_frame_equal(got, sub.funnel(within={"Demo": "30D"}))
    bad = run("report", "--sample", "--within", "Demo=", "-o", str(tmp_path / "x"))
    assert bad.returncode == 2 and "--within" in bad.stderr
