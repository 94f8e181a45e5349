"""The report as a sales VP reads it (issue 21): the executive summary and its numbers, KPI
cards with deltas, the deals to act on, the string catalogues (English, Chinese), and the
page printed (A4, Letter) and on a phone (390 px) in a real headless browser."""

from __future__ import annotations

import html
import json
import re
import shutil
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit import _i18n
from funnelkit import _report_html as H
from funnelkit import report as R
from funnelkit.errors import InvalidParameterError

CHROMIUM = Path("/usr/bin/chromium")
#: words that may stay Latin on the Chinese page: proper names of methods, file formats,
#: units and the library's name
LATIN_OK = {
    "funnelkit",
    "UTC",
    "CSV",
    "PARQUET",
    "Parquet",
    "PNG",
    "SVG",
    "JSON",
    "ETL",
    "Kaplan",
    "Meier",
    "Benjamini",
    "Hochberg",
    "Brookmeyer",
    "Crowley",
    "Greenwood",
    "Fisher",
    "log",
    "rank",
    "code",
    "outdir",
    "summary",
    "json",
    "save",
    "report",
    "charts",
    "False",
}


def sample_log(**kw) -> fk.EventLog:
    return fk.EventLog(fk.datasets.load_sample(), **{**fk.datasets.SAMPLE_KWARGS, **kw})


@pytest.fixture(scope="module")
def log() -> fk.EventLog:
    return sample_log()


@pytest.fixture(scope="module")
def en(log):
    return R.build_report(log, by="team", key_kwargs={"n_boot": 50}, currency="$", charts=False)


@pytest.fixture(scope="module")
def zh_saved(log, tmp_path_factory):
    rep = R.build_report(log, by="team", key_kwargs={"n_boot": 50}, currency="¥", lang="zh")
    return rep, rep.save(tmp_path_factory.mktemp("zh") / "report")


@pytest.fixture(scope="module")
def en_saved(log, tmp_path_factory):
    rep = R.build_report(log, by="team", key_kwargs={"n_boot": 50}, currency="$")
    return rep, rep.save(tmp_path_factory.mktemp("en") / "report")


# ---------------------------------------------------------------------------- catalogue
def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_every_language_has_every_key_with_the_same_fields():
    en = _i18n.load("en").strings
    for code in _i18n.LANGS:
        other = _i18n.load(code).strings
        keys = {k for k in en if not k.startswith("chart.")}
        assert keys <= set(other), (code, sorted(keys - set(other)))
        for k in keys:
            if isinstance(en[k], str) and not k.startswith("fmt."):
                assert _fields(en[k]) == _fields(other[k]), (code, k)


def test_numbers_and_dates_in_each_language():
    en, zh = _i18n.load("en"), _i18n.load("zh")
    t = pd.Timestamp("2025-04-01 09:05", tz="UTC")
    assert (en.pct(0.110906), zh.pct(0.110906)) == ("11.1%", "11.1%")
    assert (en.pts(0.0242), zh.pts(-0.0242)) == ("+2.4 pts", "−2.4 个百分点")
    assert en.money(35743.396, "$") == "$35,743" and en.money(35743.396, "EUR") == "35,743 EUR"
    assert en.money_short(651363.88, "$") == "$651k" and en.money_short(57258.2, "$") == "$57.3k"
    assert en.money_short(1.25e6) == "1.2M" and zh.money_short(651363.88, "¥") == "¥65.1万"
    assert (en.date(t), zh.date(t)) == ("1 Apr 2025", "2025年4月1日")
    assert (en.when(t), zh.when(t)) == ("1 Apr 2025, 09:05 UTC", "2025年4月1日 09:05 UTC")
    assert (en.period("2025Q2", None, None), zh.period("2025Q2", None, None)) == (
        "Q2 2025",
        "2025年第2季度",
    )
    assert (en.days(63.8), zh.days(63.8), en.days(1, 0)) == ("63.8 days", "63.8 天", "1 day")
    assert (
        en.duration(pd.Timedelta("14D2h")) == "14.1 days" and zh.duration("3h12min") == "3.2 小时"
    )


def test_bad_language_or_currency_is_a_parameter_error(log):
    with pytest.raises(InvalidParameterError, match="`lang` must be one of"):
        R.build_report(log, charts=False, lang="fr")
    with pytest.raises(InvalidParameterError, match="`currency`"):
        R.build_report(log, charts=False, currency="dollars and cents")
    with pytest.raises(InvalidParameterError, match="lang"):
        log.report(charts=False, lang="de")


# ---------------------------------------------------------------------------- numbers
def test_kpis_per_period_add_up_to_the_whole_log(log, en):
    kp = en.tables["kpis_by_period"]
    k = en.tables["kpis"].iloc[0]
    assert list(kp["period"]) == ["2024Q1", "2024Q2", "2024Q3", "2024Q4", "2025Q1", "2025Q2"]
    assert kp["complete"].tolist() == [True] * 5 + [False]
    for col in ("won", "lost", "stale"):
        assert int(kp[col].sum()) == int(k[col])
    assert int(kp["created"].sum()) == int(k["deals"]) == 600
    # deals won in 2025Q1, counted independently from the deals table
    d = log.deals()
    won_at = d["first_event"] + d["cycle_time"]
    q1 = (d["outcome"] == "won") & (won_at >= "2025-01-01") & (won_at < "2025-04-01")
    row = kp.set_index("period").loc["2025Q1"]
    assert row["won"] == q1.sum() == 14
    assert row["won_amount"] == pytest.approx(d.loc[q1, "amount"].sum())
    stale_at = d["last_event"] + pd.Timedelta("60D")
    s1 = (d["outcome"] == "stale") & (stale_at >= "2025-01-01") & (stale_at < "2025-04-01")
    lost_at = won_at
    l1 = (d["outcome"] == "lost") & (lost_at >= "2025-01-01") & (lost_at < "2025-04-01")
    assert row["win_rate"] == pytest.approx(14 / (14 + l1.sum() + s1.sum()))


def test_hand_worked_periods_and_deals_to_act_on():
    """Four deals, two quarters: counts, win rate and the act-on flags worked by hand."""
    ev = pd.DataFrame(
        {
            "d": ["a", "a", "b", "b", "c", "c", "e"],
            "s": ["A", "won", "A", "lost", "A", "B", "A"],
            "t": pd.to_datetime(
                [
                    "2025-01-05",
                    "2025-02-01",
                    "2025-01-10",
                    "2025-04-02",
                    "2025-02-01",
                    "2025-03-01",
                    "2025-06-20",
                ]
            ),
            "amt": [100.0, 100.0, 50.0, 50.0, 80.0, 80.0, 10.0],
        }
    )
    lg = fk.EventLog(
        ev, deal="d", stage="s", time="t", stages=["A", "B"], won="won", lost="lost",
        amount="amt", as_of="2025-06-30",
    )  # fmt: skip
    rep = R.build_report(lg, charts=False, key_kwargs={"n_boot": 0}, cold_after="30D")
    kp = rep.tables["kpis_by_period"].set_index("period")
    assert kp.loc["2025Q1", ["created", "won", "lost"]].tolist() == [3, 1, 0]
    assert kp.loc["2025Q2", ["created", "won", "lost"]].tolist() == [1, 0, 1]
    assert kp.loc["2025Q1", "win_rate"] == 1.0 and kp.loc["2025Q2", "win_rate"] == 0.0
    assert kp.loc["2025Q1", "won_amount"] == 100.0
    assert kp.loc["2025Q1", "median_won_cycle_time_days"] == 27.0
    a = rep.tables["act_on"].set_index("deal")
    # c: in B since 1 Mar (121 days), silent as long: going cold; e: in A for 10 days
    assert list(a.index) == ["c"]
    assert a.loc["c", "days_in_stage"] == 121.0 and a.loc["c", "going_cold"]
    assert a.loc["c", "stage"] == "B" and a.loc["c", "amount"] == 80.0
    assert rep.summary["act_on"][0]["deal"] == "c"


def test_deals_to_act_on_follow_their_rules(log, en):
    a = en.tables["act_on"]
    v = log.visits()
    v = v.loc[v["censored"]]
    d = log.deals().set_index("deal")
    assert set(a["deal"]) <= set(d.index[d["outcome"] == "open"])
    p90 = log.dwell().set_index("stage")["p90"]
    as_of = pd.Timestamp(log.as_of)
    key = set(log.key_stages(by="team", n_boot=50).query("is_key")["stage"])
    expect = []
    for r in v.itertuples():
        if d.loc[r.deal, "outcome"] != "open":
            continue
        stalled = as_of - r.entered > p90[r.stage]
        cold = as_of - d.loc[r.deal, "last_event"] > pd.Timedelta("30D")  # 60D stale / 2
        if stalled or cold or r.stage in key:
            expect.append(r.deal)
    assert sorted(a["deal"]) == sorted(expect)
    assert a["amount"].is_monotonic_decreasing
    row = a.set_index("deal").loc["D000591"]  # 53.4 days in Qualified, whose p90 is 23.0
    assert row["stalled"] and row["going_cold"] and not row["key_stage"]
    assert row["days_in_stage"] == pytest.approx(
        (as_of - v.set_index("deal").loc["D000591", "entered"]) / pd.Timedelta("1D")
    )
    assert row["reasons"] == "stalled;going_cold;large"


def test_with_activities_going_cold_is_the_deals_touch_rule(log):
    """With activities attached, "going cold" is deals()' rule (no touch nor stage change
    beyond the stage's p90 gap), and the list shows the days since the last touch."""
    acts = fk.datasets.load_sample_activities()
    la = log.with_activities(acts, **fk.datasets.SAMPLE_ACTIVITIES_KWARGS)
    rep = R.build_report(la, by="team", key_kwargs={"n_boot": 20}, charts=False)
    a = rep.tables["act_on"].set_index("deal")
    d = la.deals().set_index("deal")
    assert {"days_since_touch", "stage_gap_p90_days"} <= set(a.columns)
    cold = d.index[(d["outcome"] == "open") & d["going_cold"].fillna(False).astype(bool)]
    assert set(a.index[a["going_cold"]]) == set(cold) & set(a.index)
    assert set(cold) <= set(a.index)  # every cold open deal is listed
    day = pd.Timedelta("1D")
    np.testing.assert_allclose(
        a["days_since_touch"].to_numpy(dtype=float),
        (d.loc[a.index, "since_touch"] / day).to_numpy(dtype=float),
    )
    assert "days since last touch" in rep.to_html()


def test_summary_numbers_equal_the_tables(en):
    s, t = en.summary, en.tables
    h = {x["kind"]: x for x in s["headline"]}
    assert list(h) == ["lost_most", "change", "act", "act_on", "quality"]
    f = t["funnel"].set_index("stage")
    lost = h["lost_most"]
    assert lost["stage"] == f["dropped"].idxmax() == "Demo"
    assert (
        (lost["dropped"], lost["reached"])
        == (130, 332)
        == tuple(f.loc["Demo", ["dropped", "reached"]])
    )
    kp = t["kpis_by_period"].set_index("period")
    ch = h["change"]
    assert (ch["label"], ch["previous_label"]) == ("2025Q1", "2024Q4")
    assert ch["win_rate"] == kp.loc["2025Q1", "win_rate"] and ch["won"] == kp.loc["2025Q1", "won"]
    assert ch["previous_win_rate"] == kp.loc["2024Q4", "win_rate"]
    ks = t["key_stages"]
    lev = ks.loc[(ks["signal"] == "leverage") & ks["is_key"]].set_index("stage")
    act = h["act"]
    assert act["stage"] == lev["effect"].idxmax() == "Proposal"
    assert act["lifted"] == pytest.approx(
        lev.loc["Proposal", "baseline"] + lev.loc["Proposal", "effect"]
    )
    assert act["deals"] == kp.loc["2025Q1", "created"] == 111
    assert act["extra_amount"] == pytest.approx(act["extra_wins"] * s["avg_won_amount"])
    a = t["act_on"]
    assert h["act_on"]["deals"] == len(a) and h["act_on"]["amount"] == pytest.approx(
        a["amount"].sum()
    )
    assert h["act_on"]["stalled"] == a["stalled"].sum()
    assert h["quality"]["rows_not_used"] == 61  # the reopened deals' terminal events
    # on the page: each number as written, linked to its section
    page = en.to_html()
    L = _i18n.load("en")
    for text, sec in [
        ("130", "funnel"),
        ("332", "funnel"),
        (L.pct(ch["win_rate"]), "kpis"),
        (L.num(ch["won"]), "kpis"),
        (L.pct(act["lifted"]), "key-stages"),
        (L.num(len(a)), "act-on"),
        (L.money_short(a["amount"].sum(), "$"), "act-on"),
        ("61", "quality"),
    ]:
        assert f"<a class='n' href='#{sec}'>{html.escape(text)}</a>" in page, text
    assert "Deals are lost most at <b>Demo</b>" in page
    # the period cards: 2025Q1 against 2024Q4, with the changes and a trend line
    assert "Q1 2025 against Q4 2024" in page
    assert "▲ +2.4 pts vs previous" in page  # 12.0% - 9.5%
    assert page.count("<polyline") >= 5


def test_since_a_date_the_cards_compare_equal_lengths(log):
    rep = R.build_report(log, charts=False, period="2025-04-01", key_kwargs={"n_boot": 0})
    w = rep.summary["windows"]
    assert w["kind"] == "since"
    assert (
        w["current"]["start"] == "2025-04-01T00:00:00"
        and w["previous"]["end"] == "2025-04-01T00:00:00"
    )
    d = log.deals()
    created = (d["first_event"] >= pd.Timestamp("2025-04-01", tz="UTC")).sum()
    assert w["current"]["created"] == created
    assert "Since 1 Apr 2025, against the same length of time before" in rep.to_html()


@pytest.mark.slow
def test_summary_json_and_the_act_on_csv(en_saved):
    rep, out = en_saved
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [x["deal"] for x in s["act_on"]] == rep.tables["act_on"]["deal"].tolist()[:100]
    assert s["act_on"][0]["entered"].startswith("2025-") and s["settings"]["currency"] == "$"
    csv = pd.read_csv(out / "tables" / "act_on.csv")
    assert csv["deal"].tolist() == rep.tables["act_on"]["deal"].tolist()
    assert {"owner", "stage", "days_in_stage", "amount", "reasons"} <= set(csv.columns)
    assert (out / "tables" / "kpis_by_period.csv").exists()
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<a href='tables/act_on.csv'>CSV</a>" in page
    assert "design notes" not in page and "00:00:00+00:00" not in page


# ---------------------------------------------------------------------------- Chinese
def _latin_words(text: str, data: set[str]) -> set[str]:
    for d in sorted(data, key=len, reverse=True):
        text = text.replace(d, " ")
    words = set(re.findall(r"[A-Za-z][A-Za-z_]{2,}", text))
    return {w for w in words if w not in LATIN_OK and "_" not in w}


def _data_strings(log: fk.EventLog) -> set[str]:
    d = log.deals()
    out = {str(x) for x in log.stages} | set(log.won) | set(log.lost)
    out |= set(fk.datasets.load_sample().columns) | set(R.TABLE_NAMES) | {fk.__version__}
    out |= {"funnelkit"}
    for c in ("deal", "owner", "team", "region"):
        out |= {str(x) for x in d[c].unique()}
    return out


@pytest.mark.slow
def test_chinese_page_has_every_string_in_chinese(zh_saved, log):
    rep, out = zh_saved
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<html lang='zh-Hans'>" in page and "销售漏斗报告" in page
    body = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    body = re.sub(r"<img [^>]*>", " ", body)
    text = html.unescape(re.sub(r"<[^>]+>", " ", body))
    assert _latin_words(text, _data_strings(log)) == set()
    # the data-quality warning and the method notes are there, in Chinese
    assert "58 笔交易在结束后被重新打开" in page
    assert "关键阶段图：画出" in page  # the chart's cap, from report.notes
    assert "交易在<b>Demo</b>流失最多" in page and "¥" in page
    assert "2025年第1季度与2024年第4季度对比" in page


@pytest.mark.slow  # shares its siblings' fixture (several seconds to build)
def test_chinese_charts_have_every_label_in_chinese(zh_saved, log):
    from matplotlib.text import Text

    rep, _ = zh_saved
    data = _data_strings(log)
    left = {}
    for name, fig in rep.charts.items():
        texts = [t.get_text() for t in fig.findobj(Text) if t.get_text()]
        words = _latin_words("\n".join(texts), data)
        if words:
            left[name] = words
        words = [t for t in fig.findobj(Text) if re.search(r"[^\d\s.,%+−–-]", t.get_text())]
        fams = {tuple(t.get_fontfamily()) for t in words}
        assert all("Noto Sans CJK SC" in f or len(H.chart_fonts()) == 1 for f in fams)
    assert left == {}
    funnel = [t.get_text() for t in rep.charts["funnel"].findobj(Text)]
    assert "销售漏斗" in funnel and "推进 59.3%  ·  流失 130  ·  未结 10" in funnel


@pytest.mark.slow
def test_report_cli_in_chinese_with_a_currency(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "funnelkit", "report", "--sample", "--lang", "zh",
         "--currency", "EUR", "--quiet", "-o", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "销售漏斗报告" in page and "35,743 EUR" in page
    s = json.loads((tmp_path / "r" / "summary.json").read_text(encoding="utf-8"))
    assert s["settings"]["lang"] == "zh" and s["settings"]["currency"] == "EUR"


def test_lang_and_currency_from_the_config_file(tmp_path, capsys):
    from funnelkit.cli import main

    cfg = tmp_path / "funnel.toml"
    cfg.write_text('lang = "zh"\ncurrency = "¥"\n')
    base = ["report", "--sample", "--config", str(cfg), "--charts", "none", "--quiet"]
    assert main([*base, "-o", str(tmp_path / "zh")]) == 0
    s = json.loads((tmp_path / "zh" / "summary.json").read_text(encoding="utf-8"))
    assert s["settings"]["lang"] == "zh" and s["settings"]["currency"] == "¥"
    assert "销售漏斗报告" in (tmp_path / "zh" / "report.html").read_text(encoding="utf-8")
    # the command line overrides the file
    assert main([*base, "--lang", "en", "--currency", "EUR", "-o", str(tmp_path / "en")]) == 0
    s = json.loads((tmp_path / "en" / "summary.json").read_text(encoding="utf-8"))
    assert s["settings"]["lang"] == "en" and s["settings"]["currency"] == "EUR"
    cfg.write_text('lang = "fr"\n')
    assert main([*base, "-o", str(tmp_path / "fr")]) == 2
    assert "`lang` must be 'en' or 'zh'; got 'fr'" in capsys.readouterr().err


# ---------------------------------------------------------------------------- browser
def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def _pdf_pages(pdf: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_page_prints_on_a4_and_letter_and_fits_a_phone(lang, en_saved, zh_saved, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (CI installs Debian's chromium)")
    _, out = en_saved if lang == "en" else zh_saved
    page = (out / "report.html").read_text(encoding="utf-8")
    # the page as it is: no console message (no error, nothing blocked)
    r = _chromium(tmp_path, "--dump-dom", (out / "report.html").resolve().as_uri())
    assert [x for x in r.stderr.splitlines() if ":CONSOLE" in x] == []
    pages = {}
    for size in ("A4", "letter"):
        f = tmp_path / f"{size}.html"
        f.write_text(
            page.replace("</head>", f"<style>@page{{size:{size}}}</style></head>"), "utf-8"
        )
        pdf = tmp_path / f"{size}.pdf"
        _chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", f.as_uri())
        pages[size] = _pdf_pages(pdf)
    # the sample prints in about 6 pages (it was 9 before the print stylesheet)
    assert 4 <= pages["A4"] <= 7 and 4 <= pages["letter"] <= 7, pages
    # a phone, 390 px wide: nothing wider than the screen. Headless Chromium's window is
    # at least 500 px wide, so the page is shown in a 390 px frame of a page that measures
    # it (the report itself runs no script)
    (tmp_path / "phone.html").write_text(page, "utf-8")
    outer = tmp_path / "outer.html"
    outer.write_text(
        "<html><body style='margin:0'><iframe id='f' src='phone.html' width='390' "
        "height='2400' style='border:0'></iframe><script>document.getElementById('f')"
        ".onload=function(){var d=this.contentDocument.documentElement;document.body"
        ".setAttribute('data-width',String(d.scrollWidth)+'/'+String(d.clientWidth));}"
        "</script></body></html>",
        "utf-8",
    )
    shot = tmp_path / "phone.png"
    r = _chromium(
        tmp_path,
        "--allow-file-access-from-files",
        "--window-size=500,2400",
        f"--screenshot={shot}",
        "--dump-dom",
        outer.as_uri(),
    )
    assert re.search(r'data-width="(\d+)/(\d+)"', r.stdout).groups() == ("390", "390")
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 30_000


CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{H.CSP}">'


def test_page_has_print_and_phone_rules(en):
    page = en.to_html()
    assert "@media print{" in page and "@media (max-width:640px){" in page
    assert CSP_META in page
    assert np.isfinite(en.summary["windows"]["current"]["win_rate"])


def test_every_reject_reason_is_described_in_every_language():
    """The report's rejects table describes each reason (post_sale had no words)."""
    from funnelkit._i18n import tomllib  # tomli before Python 3.11
    from funnelkit.quality import REASONS
    from funnelkit.report import _REASON_TEXT

    assert set(REASONS) <= set(_REASON_TEXT)
    folder = Path(fk.__file__).parent / "_i18n"
    for path in folder.glob("*.toml"):
        if path.stem == "en":  # English comes from _REASON_TEXT
            continue
        with path.open("rb") as f:
            words = tomllib.load(f)["reject"]
        assert set(REASONS) <= set(words), path.name
