"""The `funnelkit` command: validate, and report end to end (every output exists, parses
and equals the library's tables). The entry points run in processes of their own
(`python -m funnelkit`, the console script, Ctrl-C, a killed writer, the full sample
report); the other tests call the command's `main` in this process (`run_cli`)."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import funnelkit as fk
from conftest import GOLDEN, run_cli
from funnelkit.report import _days_columns

CONSOLE = Path(sys.executable).parent / "funnelkit"


def run_process(*args: str) -> subprocess.CompletedProcess:
    """``python -m funnelkit ...`` in a new process."""
    return subprocess.run(
        [sys.executable, "-m", "funnelkit", *args], capture_output=True, text=True, timeout=120
    )


run = run_cli  # the command in this process; the entry-point tests use run_process


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
    r = run_process("--version")
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


@pytest.mark.slow
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
    r = run_process(*SAMPLE_REPORT, "-o", str(out))  # end to end, in a process of its own
    assert r.returncode == 0, r.stderr
    return r, out


@pytest.mark.slow
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
        table = _days_columns(table)  # the files hold durations as float days
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


@pytest.mark.slow
def test_report_bpic2012(tmp_path, bpic_events):
    ev = bpic_events
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


@pytest.mark.slow
def test_report_csv_option_and_config_key(tmp_path):
    cfg = tmp_path / "funnel.toml"
    cfg.write_text('csv = "all"\ncharts = "none"\n' + GOLDEN_TOML)
    out = tmp_path / "a"
    r = run("report", str(GOLDEN / "events.csv"), "--config", str(cfg), "-o", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "tables" / "deals.csv").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["charts"] == [] and not list((out / "charts").iterdir())
    assert "charts: not drawn (charts=False; --charts none)" in summary["notes"]
    assert "<img" not in (out / "report.html").read_text(encoding="utf-8")
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
    cfg.write_text('charts = "some"\n' + GOLDEN_TOML)
    r = run("report", str(GOLDEN / "events.csv"), "--config", str(cfg), "-o", str(out), "--quiet")
    assert r.returncode == 2 and "`charts` must be 'all' or 'none'" in r.stderr
    r = run("report", str(GOLDEN / "events.csv"), "--charts", "few", "-o", str(out), "--quiet")
    assert r.returncode == 2 and "--charts" in r.stderr


@pytest.mark.slow
def test_report_without_charts_has_the_same_tables(tmp_path, sample_report):
    """--charts none leaves out the drawing only: every table and summary number is the
    full report's."""
    out = tmp_path / "tables_only"
    r = run(*SAMPLE_REPORT, "--charts", "none", "--quiet", "-o", str(out))
    assert r.returncode == 0, r.stderr
    full = sample_report[1]
    assert sorted(p.name for p in (out / "tables").iterdir()) == sorted(
        p.name for p in (full / "tables").iterdir()
    )
    for path in (full / "tables").glob("*.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / "tables" / path.name),
                                      pd.read_parquet(path))  # fmt: skip
    a = json.loads((full / "summary.json").read_text())
    b = json.loads((out / "summary.json").read_text())
    assert a["charts"] and b["charts"] == []
    drop = ("charts", "files", "notes", "limits")
    assert {k: v for k, v in a.items() if k not in drop} == {
        k: v for k, v in b.items() if k not in drop
    }
    # the limits of the charts (rows and segments drawn) go with them
    assert {k: v for k, v in a["limits"].items() if not k.endswith("_chart")} == b["limits"]


@pytest.mark.slow
def test_report_from_config_file_command_line_overrides(tmp_path):
    cfg = tmp_path / "funnel.toml"
    cfg.write_text(GOLDEN_TOML)
    out = tmp_path / "a"
    # the tables are the subject here: no charts (--charts none)
    r = run("report", str(GOLDEN / "events.csv"), "--config", str(cfg), "--charts", "none",
            "-o", str(out), "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["stale"] == 1
    r = run("report", str(GOLDEN / "events.csv"), "--config", str(cfg), "--stale-after", "3650D",
            "--charts", "none", "-o", str(out), "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["stale"] == 0
    ks = pd.read_parquet(out / "tables" / "key_stages.parquet")
    assert ks.loc[ks["signal"] == "leverage", "ci_low"].isna().all()  # [key_stages] n_boot = 0


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_report_usage_errors(tmp_path):
    r = run("report", "--sample")
    assert r.returncode == 2 and "-o/--output" in r.stderr
    busy = _not_a_report(tmp_path)
    r = run("report", "--sample", "-o", busy, "--quiet")
    assert r.returncode == 2 and "not an earlier funnelkit report" in r.stderr
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.slow
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
        "--charts",
        "none",  # the tables are the subject
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


# ---------------------------------------------------------------------------- wide exports
WIDE = Path(__file__).parent / "data" / "crm_wide.csv"
WIDE_ARGS = [
    "--deal",
    "opportunity_id",
    "--milestone",
    "Engaging=engage_date",
    "--status",
    "deal_stage",
    "--closed-at",
    "close_date",
    "--stages",
    "Prospecting,Engaging",
    "--won",
    "Won",
    "--lost",
    "Lost",
]
WIDE_KW = dict(
    deal="opportunity_id",
    stage_dates={"Engaging": "engage_date"},
    status="deal_stage",
    closed_at="close_date",
    stages=["Prospecting", "Engaging"],
    won="Won",
    lost="Lost",
)


def test_wide_export_per_phase_equals_the_library(tmp_path):
    """A wide export takes [phases.NAME] tables (not post-sale stages) like a long log."""
    from funnelkit.cli import main

    cfg = tmp_path / "funnel.toml"
    cfg.write_text('[phases.sales]\nProspecting = "early"\nEngaging = "early"\n')
    out = tmp_path / "wide"
    rc = main(["report", str(WIDE), *WIDE_ARGS, "--date-format", "%d-%m-%y", "--errors",
               "drop", "--config", str(cfg), "--phases", "sales", "--charts", "none",
               "--quiet", "-o", str(out)])  # fmt: skip
    assert rc == 0
    log = fk.EventLog.from_milestones(
        pd.read_csv(WIDE), **WIDE_KW, date_format="%d-%m-%y", errors="drop",
        phases={"sales": {"Prospecting": "early", "Engaging": "early"}},
    )  # fmt: skip
    want = log.by_phase("sales").funnel()
    assert want["stage"].astype(str).tolist() == ["early"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "tables" / "funnel.parquet"), want)
    # one phase holds both stages: a deal's Prospecting and Engaging events are one visit
    assert want["reached"].iloc[0] == log.n_deals
    r = run("validate", str(WIDE), *WIDE_ARGS, "--post-sale", "Delivery")
    assert r.returncode == 2 and "a wide export (--milestone) does not support" in r.stderr


@pytest.mark.slow
def test_validate_wide_export_accounts_for_every_deal():
    r = run("validate", str(WIDE), *WIDE_ARGS, "--date-format", "%d-%m-%y", "--errors", "drop",
            "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rows_in"] == 600 and out["deals"] == 556 and out["rows_dropped"] == 44
    assert out["deals"] + out["rows_dropped"] == len(pd.read_csv(WIDE))
    cols = out["by_column"]
    assert cols["engage_date, close_date"] == {"no_dates": 40}
    assert cols["close_date"] == {"unparseable_time": 2, "missing_time": 2}
    assert out["won"] == 292 and out["lost"] == 169
    text = run("validate", str(WIDE), *WIDE_ARGS, "--date-format", "%d-%m-%y", "--errors", "drop")
    assert "600 in = 556 in the log + 44 left out" in text.stdout
    assert "log.rejects" not in text.stdout and "tables/rejects.csv" in text.stdout


@pytest.mark.slow
def test_wide_export_errors_say_where_the_rejects_go(tmp_path):
    """The CLI said the report 'lists them in tables/rejects.csv', which holds counts per
    reason (examples are in reject_examples.csv); and a single problem that already says
    --errors drop got '(or pass --errors drop to keep the good rows)' after it."""
    p = tmp_path / "opps.csv"
    p.write_text(
        "opportunity_id,deal_stage,engage_date,close_date\n"
        "o1,Won,02-01-25,28-02-25\no2,Engaging,05-01-25,\no3,Prospecting,,\n"
    )
    r = run("validate", str(p), *WIDE_ARGS, "--date-format", "%d-%m-%y")
    assert r.returncode == 2
    assert "1 of 3 deals (rows of INPUT)" in r.stderr and "no date for any stage" in r.stderr
    assert r.stderr.count("--errors drop") == 1, r.stderr
    assert "lists them" not in r.stderr
    assert "counts them in tables/rejects.csv, with examples in tables/reject_examples.csv" in (
        r.stderr
    )
    ok = run("validate", str(p), *WIDE_ARGS, "--date-format", "%d-%m-%y", "--errors", "drop")
    assert ok.returncode == 0 and "3 in = 2 in the log + 1 left out" in ok.stdout
    assert "lists them" not in ok.stdout and "tables/reject_examples.csv" in ok.stdout


@pytest.mark.slow
def test_report_wide_export_equals_the_library(tmp_path):
    out = tmp_path / "wide"
    r = run("report", str(WIDE), *WIDE_ARGS, "--date-format", "%d-%m-%y", "--errors", "drop",
            "--created-at", "created_on", "--amount", "close_value", "--charts", "none",
            "--quiet", "-o", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    log = fk.EventLog.from_milestones(
        pd.read_csv(WIDE), **WIDE_KW, created_at="created_on", amount="close_value",
        date_format="%d-%m-%y", errors="drop",
    )  # fmt: skip
    tables = out / "tables"
    pd.testing.assert_frame_equal(pd.read_parquet(tables / "funnel.parquet"), log.funnel())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_in"] == 600 and summary["deals"] == 596
    rejects = pd.read_parquet(tables / "rejects.parquet")
    assert rejects.set_index("reason")["rows"].to_dict() == {
        "missing_time": 2,
        "unparseable_time": 3,
    }
    deals = set(pd.read_parquet(tables / "deals.parquet")["deal"])
    examples = pd.read_parquet(tables / "reject_examples.parquet")
    left_out = set(examples["opportunity_id"]) - deals
    assert len(deals) + len(left_out) == 600


@pytest.mark.slow
def test_wide_export_from_config_file(tmp_path):
    base = """
deal = "opportunity_id"
status = "deal_stage"
closed_at = "close_date"
date_format = "%d-%m-%y"
errors = "drop"
stages = ["Prospecting", "Engaging"]
won = "Won"
lost = "Lost"
"""
    for table in ('[milestones]\nEngaging = "engage_date"\n',
                  'milestone = {Engaging = "engage_date"}\n',
                  'milestones = ["Engaging=engage_date"]\n'):  # fmt: skip
        cfg = _config(tmp_path, table + base if table.startswith("mile") else base + table)
        r = run("validate", str(WIDE), "--config", cfg, "--json")
        assert r.returncode == 0, (table, r.stderr)
        out = json.loads(r.stdout)
        assert (out["rows_in"], out["deals"], out["won"]) == (600, 556, 292), table


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([str(WIDE), *WIDE_ARGS, "--milestone", "Engaging"], "--milestone 'Engaging': use STAGE="),
        ([str(WIDE), "--deal", "opportunity_id", "--status", "deal_stage"], "add --milestone"),
        ([str(WIDE), *WIDE_ARGS, "--stage", "deal_stage"], "--stage name the columns of a long"),
        (["--sample", "--milestone", "Won=close_date"], "--sample is a long log"),
        ([str(WIDE), *WIDE_ARGS[2:]], "missing --deal"),
        ([str(WIDE), *WIDE_ARGS, "--milestone", "Won=nope"], "`nope`"),
    ],
)
def test_wide_usage_errors_exit_2(args, words):
    r = run("validate", *args)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_errors_are_told_in_command_line_words_with_counts_per_reason(tmp_path):
    p = tmp_path / "both.csv"
    p.write_text("deal,stage,ts\na,A,\nb,A,01-02-23\nc,A,\nd,B,13-02-23\n")
    r = run("validate", str(p), *COLS)
    assert r.returncode == 2
    err = r.stderr
    assert (
        "column `ts`: 2 rows missing time" in err and "column `ts`: 2 rows unparseable time" in err
    )
    assert "--errors drop" in err and "--date-format '%d-%m-%y'" in err
    assert "errors='" not in err and "failure_cases" not in err and "failure cases" not in err
    assert "Traceback" not in err
    r = run("validate", str(p), *COLS, "--errors", "drop")
    assert r.returncode == 2
    assert "(missing_time: 2, unparseable_time: 2)" in r.stderr
    assert "--errors raise" in r.stderr and "failure cases" not in r.stderr
    r = run("validate", str(p), *COLS, "--errors", "drop", "--date-format", "%d-%m-%y")
    assert r.returncode == 0 and "by reason: missing_time 2" in r.stdout
    # a wide export: the user's column, counted in deals
    r = run("validate", str(WIDE), *WIDE_ARGS)
    assert r.returncode == 2
    n = int(pd.read_csv(WIDE)["engage_date"].notna().sum())
    assert "600 of 600 deals (rows of INPUT)" in r.stderr
    assert f"column `engage_date`: {n} deals with an unparseable date" in r.stderr
    assert "--created-at COLUMN" in r.stderr and "`ts`" not in r.stderr


@pytest.mark.parametrize("command", [[], ["validate"], ["report"]])
def test_help_pages_have_examples_and_exit_codes(command):
    r = run(*command, "--help")
    assert r.returncode == 0, r.stderr
    page = r.stdout
    assert "examples:" in page and "exit codes:" in page
    assert "0  ok" in page and "1  analysis failure" in page and "2  bad input or usage" in page
    assert "wide" in page
    if command:
        assert "--milestone STAGE=COLUMN" in page and "--date-format FORMAT" in page
        assert "(required with INPUT)" in page
    if command == ["report"]:
        assert " -o OUTPUT" in page.split("\n\n")[0]  # required: no brackets in the usage
        assert "[-o OUTPUT]" not in page and "(required)" in page


# ------------------------------------------------------------ hostile use (issue 25)
def _interrupt_report(out: Path, when: str, *extra: str) -> tuple[int, str]:
    """Run `funnelkit report --sample`, send SIGINT once stderr shows `when` (and, for
    "writing…", once the hidden folder exists), return the exit code and stderr."""
    import signal
    import time

    # a shell starts background jobs (`pytest &`, nohup) with SIGINT ignored, and the child
    # would inherit that: Ctrl-C as a terminal sends it needs the default disposition
    proc = subprocess.Popen(
        [sys.executable, "-m", "funnelkit", "report", "--sample", "--by", "team", "-o", str(out)]
        + list(extra),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = []
    try:
        for line in proc.stderr:  # progress lines, one per step
            lines.append(line)
            if when in line:
                break
        deadline = time.monotonic() + 20
        while when == "writing…" and time.monotonic() < deadline:
            if any(p.name.startswith(f".{out.name}.tmp-") for p in out.parent.iterdir()):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the report finished before the interrupt"
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, "".join(lines) + rest


@pytest.mark.slow
def test_ctrl_c_while_writing_keeps_the_earlier_report(tmp_path):
    # before: a KeyboardInterrupt traceback and exit 1
    out = tmp_path / "report"
    from funnelkit.report import build_report

    build_report(
        fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS),
        charts=False,
        key_kwargs={"n_boot": 0},
    ).save(out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, err = _interrupt_report(out, "writing…")
    assert code == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines()[-1] == (
        f"funnelkit: interrupted; nothing written (the earlier report in {out} is unchanged)"
    )
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no hidden folder left


@pytest.mark.slow
def test_ctrl_c_while_computing_writes_nothing(tmp_path):
    import signal

    out = tmp_path / "report"
    code, err = _interrupt_report(out, "key stages…")
    # 130, or death by SIGINT (a shell shows 130 for both): when the interrupt lands while a
    # C extension (scipy) is being imported, CPython 3.11 ends the process by SIGINT after
    # main() caught the KeyboardInterrupt and returned 130; seen 1 run in ~15
    assert code in (130, -signal.SIGINT), err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "funnelkit: interrupted; nothing written"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('n_boot = "many"', "`key_stages.n_boot` must be an integer"),
        ("n_boot = 2.5", "`key_stages.n_boot` must be an integer"),
        ("n_boot = true", "`key_stages.n_boot` must be an integer"),
        ("n_boot = -1", "`n_boot` must be an int in the range [0, 100,000]"),
        ('seed = "x"', "`key_stages.seed` must be an integer"),
        ('alpha = "x"', "`key_stages.alpha` must be a number"),
        ("alpha = 2", "`alpha` must be a number in the range (0, 1)"),
        ("uplift = 0", "`uplift` must be a number in the range (0, 1]"),
        ("min_deals = 0", "`min_deals` must be a positive integer"),
        ("signals = 3", "`key_stages.signals` must be a signal name"),
        ('signals = ["bogus"]', "unknown signal(s) ['bogus']"),
        ("benchmark = 0.3", "`key_stages.benchmark` must be a table"),
        ('benchmark = {Demo = "x"}', "the loss rate of 'Demo'"),
        ("min_effect = 3", "`key_stages.min_effect` must be a table"),
        ("min_effect = {bogus = 1}", "unknown signal 'bogus'"),
    ],
)
def test_bad_key_stages_values_exit_2_with_one_line(tmp_path, toml, words):
    # before: n_boot = "many" (and other wrong types) exited 1 ("analysis failed")
    out = tmp_path / "out"
    config = _config(tmp_path, f"[key_stages]\n{toml}\n")
    r = run("report", "--sample", "--config", config, "-o", str(out), "--quiet")
    assert r.returncode == 2, r.stderr
    assert words in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_parameter_type_errors_are_usage_errors_others_analysis_errors(monkeypatch, capsys):
    from funnelkit import cli

    def bad_parameter(args):
        raise fk.InvalidParameterError("Parameter `n_boot` must be an int; got str.")

    def bug(args):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr(cli, "_cmd_validate", bad_parameter)
    assert cli.main(["validate", "--sample"]) == 2
    assert capsys.readouterr().err == (
        "funnelkit: error: Parameter `n_boot` must be an int; got str.\n"
    )
    monkeypatch.setattr(cli, "_cmd_validate", bug)
    assert cli.main(["validate", "--sample"]) == 1
    assert "analysis failed: TypeError" in capsys.readouterr().err


@pytest.mark.slow
def test_report_on_terminal_events_only_exits_0(tmp_path):
    # before: "analysis failed: ValueError: need at least one array to stack", exit 1
    path = tmp_path / "events.csv"
    path.write_text("d,s,t\na,won,2025-01-01\nb,lost,2025-01-02\nc,won,2025-01-03\n")
    out = tmp_path / "out"
    cols = ["--deal", "d", "--stage", "s", "--time", "t", "--won", "won", "--lost", "lost"]
    r = run("report", str(path), *cols, "-o", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["won"] == 2 and summary["notes"][0].startswith("no stage visits")
    assert "No stage visits" in (out / "report.html").read_text()


@pytest.mark.slow
def test_report_by_segment_on_terminal_events_only_exits_0(tmp_path):
    # before: "analysis failed: IndexError: single positional indexer is out-of-bounds"
    # from the segments chart of an empty funnel_by table, exit 1
    path = tmp_path / "events.csv"
    path.write_text("d,s,t,team\na,won,2025-01-01,x\nb,lost,2025-01-02,y\n")
    out = tmp_path / "out"
    cols = ["--deal", "d", "--stage", "s", "--time", "t", "--attrs", "team", "--by", "team"]
    r = run("report", str(path), *cols, "-o", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    notes = json.loads((out / "summary.json").read_text())["notes"]
    assert "chart `segments` not drawn: The funnel table is empty: no stage to draw." in notes


@pytest.mark.slow
def test_latin1_csv_exits_2_and_reads_with_encoding(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes("d,s,t\nx,Lead,2025-01-01\nx,Démo,2025-01-03\n".encode("latin-1"))
    cols = ["--deal", "d", "--stage", "s", "--time", "t"]
    r = run("validate", str(path), *cols)
    assert r.returncode == 2 and "is not UTF-8 text (column `s`)" in r.stderr
    assert "--encoding" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run("validate", str(path), *cols, "--encoding", "latin-1")
    assert r.returncode == 0, r.stderr
    assert "Lead → Démo" in r.stdout
    r = run("validate", str(path), *cols, "--encoding", "klingon")
    assert r.returncode == 2 and "unknown text encoding 'klingon'" in r.stderr


@pytest.mark.slow
def test_next_report_removes_the_folder_of_a_killed_writer(tmp_path):
    # before: each kill while writing left a hidden .<out>.tmp-XXXX folder behind for good
    import signal
    import time

    out = tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-m", "funnelkit", "report", "--sample", "-o", str(out)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stderr:
            if "writing…" in line:
                break
        deadline = time.monotonic() + 20
        while not [p for p in tmp_path.iterdir() if p.name.startswith(".report.tmp-")]:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # no cleanup possible
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".report.tmp-")
    r = run("report", "--sample", "--charts", "none", "-o", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["report"]
