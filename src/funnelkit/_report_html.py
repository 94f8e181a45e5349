"""The report as HTML: one self-contained page, and the compact Jupyter view.

Every string that can come from the data (stage names, deal ids, segment values, reasons,
column names) goes through :func:`esc`; the page loads nothing (no script, stylesheet,
font or image file: charts are PNG data URIs) and says so in its Content-Security-Policy.
Every word of the page comes from the string catalogue of the report's language
(:mod:`funnelkit._i18n`).
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._i18n import Lang, load
from ._version import __version__

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .quality import QualityReport

#: the note of a report on a log without stage visits (only won/lost events)
NO_VISITS = (
    "no stage visits: every deal has only won/lost events, so the funnel, key stages, flow "
    "and time in stage are empty; the headline counts outcomes only"
)

#: rows a page table shows (the files hold every row)
TABLE_ROWS = 200
#: rows of the deals to act on shown on the page (the table files hold every row)
ACT_ON_ROWS = 15
#: the table files' formats as the page names them
_FORMATS = {"parquet": "Parquet", "csv": "CSV"}
#: forbid loading anything: images only from data URIs, styles only inline
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
#: fonts of translated chart texts: Latin from DejaVu Sans (as in English), CJK from Noto
CJK_FONTS = ["DejaVu Sans", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC"]

_FUNNEL_SHOWN = (
    "stage reached advanced dropped open conversion conversion_low conversion_high "
    "unresolved not_settled conversion_closed cumulative win_rate_from"
).split()
_KEY_SHOWN = (
    "signal stage segment effect ci_low ci_high q_value test alternative is_key how reason"
).split()
_COMPARE_SHOWN = (
    "stage deals reached conversion rest_conversion difference difference_low difference_high "
    "q_value differs"
).split()
_PCT_COLS = set(
    (
        "conversion conversion_low conversion_high conversion_raw cumulative win_rate_from "
        "share win_rate win_rate_low win_rate_high rest_conversion value baseline unresolved "
        "conversion_closed conversion_closed_low conversion_closed_high cumulative_closed "
        "win_rate_from_low win_rate_from_high win_rate_from_closed"
    ).split()
)
_POINT_COLS = set("effect ci_low ci_high difference difference_low difference_high".split())
_MONEY_COLS = set(
    (
        "amount avg_won_amount won_amount pipeline_velocity won_amount_to_date "
        "expected_amount amount_low amount_high"
    ).split()
)
_DAYS_COLS = {"days_in_stage", "days_since_last_event"}
_DWELL_SHOWN = "stage outcome visits deals censored median p75 p90 mean".split()
_FORECAST_SHOWN = (
    "period open_deals won_to_date expected_wins wins_low wins_high expected_amount "
    "amount_low amount_high"
).split()
#: columns whose text values are library words (translated), by catalogue group
_WORD_COLS = {
    "signal": "signal",
    "test": "test",
    "outcome": "outcome",
    "treatment": "treatment",
    "section": "qsection",
    "item": "qitem",
    "to_stage": "outcome",
    "next_stage": "outcome",
    "kind": "kind",
    "reason": "qitem",
    "skips": "skips",
    "weight": "weight",
}

CSS = """
.fk-report{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
"Noto Sans CJK SC","Noto Sans SC","PingFang SC","Microsoft YaHei",sans-serif;color:#222;
line-height:1.45;font-size:15px}
.fk-report h1{font-size:26px;margin:0 0 2px}
.fk-report h2{font-size:20px;margin:34px 0 8px;padding-top:10px;border-top:1px solid #e3e3e3}
.fk-report section:first-of-type h2{border-top:none;margin-top:14px}
.fk-report h3{font-size:16px;margin:18px 0 6px}
.fk-report h3 small,.fk-report .muted{color:#5a5a5a;font-weight:normal}
.fk-report p{margin:6px 0}
.fk-report .cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.fk-report .card{border:1px solid #dcdcdc;border-radius:8px;padding:8px 14px;min-width:120px;
background:#fafafa;flex:0 1 auto}
.fk-report .card .v{font-size:22px;font-weight:600}
.fk-report .card .l{font-size:12px;color:#5a5a5a}
.fk-report .card .d{font-size:12px;white-space:nowrap}
.fk-report .card svg{display:block;margin-top:3px}
.fk-report .up{color:#007a4d}.fk-report .down{color:#b34700}.fk-report .flat{color:#5a5a5a}
.fk-report ul.exec{padding-left:20px;margin:8px 0;font-size:16px}
.fk-report ul.exec li{margin:5px 0}
.fk-report ul.exec a,.fk-report a.n{color:#0057a0;font-weight:600;text-decoration:none;
border-bottom:1px dotted #0057a0}
.fk-report ul.keys{list-style:none;padding:0;margin:8px 0}
.fk-report ul.keys li{border-left:4px solid #D55E00;background:#fdf3ec;padding:6px 10px;
margin:6px 0;border-radius:0 6px 6px 0}
.fk-report ul.keys li b{color:#a34700}
.fk-report ul.warn li{color:#6b4a00}
.fk-report .fig{max-width:100%;overflow-x:auto}
.fk-report img.chart{display:block;max-width:100%;height:auto;margin:10px 0}
.fk-report table{border-collapse:collapse;font-size:13px;margin:6px 0}
.fk-report th,.fk-report td{padding:3px 9px;border-bottom:1px solid #ececec;text-align:left;
vertical-align:top}
.fk-report th{background:#f3f3f3;font-weight:600;white-space:nowrap}
.fk-report td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.fk-report tr.key td{background:#fdf3ec}
.fk-report .scroll{overflow-x:auto;max-width:100%}
.fk-report details{margin:8px 0}
.fk-report summary{cursor:pointer;color:#0072B2}
.fk-report nav{position:sticky;top:0;background:#fff;padding:8px 0;border-bottom:1px solid
#e3e3e3;z-index:1;font-size:14px;display:flex;flex-wrap:wrap;gap:4px 14px}
.fk-report nav a{color:#0072B2;text-decoration:none}
.fk-report code{background:#f3f3f3;padding:0 3px;border-radius:3px}
.fk-report .meta{overflow-wrap:anywhere}
.fk-report .print-only{display:none}
"""
#: page-only rules (left out of the Jupyter view, where they would restyle the notebook):
#: the phone layout (charts keep a readable width and scroll sideways in their box) and
#: the print layout (A4 and Letter: no scroll boxes, tables at page width, charts whole)
PAGE_CSS = """
body{margin:0;background:#fff}
.fk-page{max-width:1240px;margin:0 auto;padding:18px 24px 60px}
@media (max-width:640px){
.fk-page{padding:10px 12px 40px}
.fk-report{font-size:14px}
.fk-report h1{font-size:21px}
.fk-report h2{font-size:18px}
.fk-report nav{position:static;font-size:13px}
.fk-report .card{flex:1 1 140px;min-width:0;padding:6px 10px}
.fk-report .card .v{font-size:19px}
.fk-report ul.exec{font-size:15px;padding-left:18px}
.fk-report table{font-size:12px}
.fk-report td{white-space:nowrap}
.fk-report .card .d{white-space:normal}
.fk-report .fig img.chart{max-width:none;width:620px}
}
@media print{
@page{margin:12mm 11mm}
body{background:#fff}
.fk-page{max-width:none;padding:0}
.fk-report{font-size:10.5pt;line-height:1.35}
.fk-report h1{font-size:17pt}
.fk-report h2{font-size:13.5pt;margin:14px 0 4px;break-after:avoid}
.fk-report h3{font-size:11pt;break-after:avoid}
.fk-report nav{display:none}
.fk-report .scroll,.fk-report .fig{overflow:visible}
.fk-report table{width:100%;font-size:8pt;table-layout:auto}
.fk-report th{white-space:normal}
.fk-report th,.fk-report td{padding:1px 4px;overflow-wrap:break-word}
.fk-report tr,.fk-report .card,.fk-report ul.keys li{break-inside:avoid}
.fk-report .cards{gap:6px;margin:6px 0}
.fk-report .card{padding:3px 8px;min-width:0}
.fk-report .card .v{font-size:13pt}
.fk-report .card .l,.fk-report .card .d{font-size:7.5pt}
.fk-report ul.exec{font-size:11pt}
.fk-report .fig,.fk-report img.chart{break-inside:avoid}
.fk-report img.chart{max-width:100%;max-height:100mm;width:auto;margin:4px auto}
.fk-report details:not([open]){display:none}
.fk-report .print-only{display:block}
.fk-report a{color:inherit;border-bottom:none}
}
"""


# ============================================================================ values
def missing(v: Any) -> bool:
    """True for None, NaN, NaT and pandas.NA."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def number(v: Any) -> float | None:
    """A float, or None when missing or not finite (for JSON)."""
    if missing(v):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def when(v: Any) -> str:
    """A timestamp for readers: ``2025-06-29 23:37 UTC`` (``+01:00`` offsets kept)."""
    t = pd.Timestamp(v)
    text = t.strftime("%Y-%m-%d %H:%M")
    if t.tzinfo is None:
        return text
    return f"{text} UTC" if t.utcoffset() == pd.Timedelta(0) else f"{text} {t.strftime('%z')}"


def esc(v: Any) -> str:
    """Text for HTML content and quoted attributes."""
    return html.escape(str(v), quote=True)


def _pvalue(v: Any) -> str:
    if missing(v):
        return ""
    return "< 0.0001" if float(v) < 1e-4 else f"{float(v):.4f}"


def _duration(v: Any) -> str:
    """A duration for readers, rounded: ``14.1 days``, ``3.2 h``, ``12 min``, ``40 s``."""
    return load("en").duration(v)


def _plain_number(v: float) -> str:
    if v.is_integer():
        return f"{int(v):,}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"


class _Ctx:
    """What rendering needs besides the tables: the language and the currency."""

    def __init__(self, lang: str = "en", currency: str | None = None) -> None:
        self.L: Lang = load(lang)
        self.currency = currency

    def cell(self, col: str, v: Any) -> tuple[str, str]:
        """(text, css class) of one table cell; the caller escapes the text."""
        L = self.L
        if col in ("p_value", "q_value"):
            return _pvalue(v), "num"
        if col == "alternative":
            return (L.word("sided", v, "") if not missing(v) else ""), ""
        if isinstance(v, (bool, np.bool_)):
            return (L.t("word.yes") if v else ""), ""
        if missing(v):
            return "", ""
        if isinstance(v, (pd.Timedelta, np.timedelta64)):
            return L.duration(v), "num"
        if isinstance(v, (pd.Timestamp, np.datetime64)):
            return L.when(v), ""
        if isinstance(v, (int, np.integer)):
            return L.num(v), "num"
        if isinstance(v, (float, np.floating)):
            f = float(v)
            if col in _PCT_COLS:
                return L.pct(f), "num"
            if col in _POINT_COLS:
                return L.pts(f, 2), "num"
            if col in _MONEY_COLS:
                return L.money(f, self.currency), "num"
            if col.endswith("_days") or col in _DAYS_COLS:
                return L.days(f), "num"
            return _plain_number(f), "num"
        if col in _WORD_COLS:
            return L.word(_WORD_COLS[col], v, str(v)), ""
        if col == "period":
            return L.period(v, None, None), ""
        return str(v), ""

    def header(self, col: str) -> str:
        return self.L.word("col", col, col)


# ============================================================================ blocks
def table(
    df: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    highlight: Iterable[bool] | None = None,
    max_rows: int | None = None,
    headers: Mapping[str, str] | None = None,
    ctx: _Ctx | None = None,
) -> str:
    """An HTML table of ``df`` (every cell escaped), highlighted rows marked ``key``: its
    first ``max_rows`` rows (default :data:`TABLE_ROWS`); ``headers`` renames columns on the
    page (e.g. to say a test is two-sided)."""
    ctx = ctx or _Ctx()
    max_rows = TABLE_ROWS if max_rows is None else max_rows
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    flags = list(highlight) if highlight is not None else [False] * len(df)
    names = dict(headers or {})
    head = "".join(f"<th>{_breakable(names.get(c, ctx.header(c)))}</th>" for c in cols)
    body = []
    for i, row in enumerate(df[cols].head(max_rows).itertuples(index=False, name=None)):
        cells = []
        for c, v in zip(cols, row, strict=True):
            text, cls = ctx.cell(c, v)
            cells.append(f"<td class='{cls}'>{esc(text)}</td>" if cls else f"<td>{esc(text)}</td>")
        body.append(("<tr class='key'>" if flags[i] else "<tr>") + "".join(cells) + "</tr>")
    more = ""
    if len(df) > max_rows:
        more = (
            "<p class='muted'>"
            + esc(ctx.L.t("page.first_rows", n=ctx.L.num(max_rows), total=ctx.L.num(len(df))))
            + "</p>"
        )
    return (
        f"<div class='scroll'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>{more}"
    )


def _breakable(name: str) -> str:
    """A column name, escaped, that may wrap after its underscores (print, phone)."""
    return esc(name).replace("_", "_<wbr>")


def details(summary: str, content: str) -> str:
    return f"<details><summary>{esc(summary)}</summary>{content}</details>"


def _card(value: str, label: str, extra: str = "") -> str:
    return (
        f"<div class='card'><div class='v'>{esc(value)}</div><div class='l'>{esc(label)}</div>"
        f"{extra}</div>"
    )


def kpi_cards(s: Mapping[str, Any], ctx: _Ctx | None = None) -> str:
    """The headline numbers of the whole log as cards, each with its unit."""
    ctx = ctx or _Ctx()
    L, cur = ctx.L, ctx.currency
    days = s["median_won_cycle_time_days"]
    cards = [
        (L.num(s["deals"]), L.t("card.deals")),
        (L.pct(s["win_rate"]) or "–", L.t("card.win_rate")),
        (
            " · ".join(L.num(s[k]) for k in ("won", "lost", "stale", "open")),
            L.t("card.outcomes"),
        ),
        (L.money(s["avg_won_amount"], cur) or "–", L.t("card.avg_won")),
        ("–" if days is None else L.days(days), L.t("card.cycle")),
        (L.money(s["pipeline_velocity"], cur) or "–", L.t("card.velocity")),
    ]
    items = "".join(_card(v, k) for v, k in cards)
    return f"<div class='cards'>{items}</div>"


def sparkline_values(by_period: pd.DataFrame, col: str, n: int = 8) -> list[float]:
    """The last ``n`` complete periods' values of ``col`` (NaN kept as NaN)."""
    done = by_period.loc[by_period["complete"]] if len(by_period) else by_period
    return [float(x) if not missing(x) else float("nan") for x in done[col].tail(n)]


def sparkline(values: Sequence[float], width: int = 110, height: int = 26) -> str:
    """An inline SVG line of ``values`` (oldest first; NaN leaves a gap), '' for < 2."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    if ok.sum() < 2:
        return ""
    lo, hi = float(v[ok].min()), float(v[ok].max())
    span = hi - lo or 1.0
    n = len(v)
    xs = [2 + i * (width - 4) / max(n - 1, 1) for i in range(n)]
    ys = [height - 3 - (x - lo) / span * (height - 6) if np.isfinite(x) else None for x in v]
    runs: list[list[str]] = [[]]
    for x, y in zip(xs, ys, strict=True):
        if y is None:
            runs.append([])
        else:
            runs[-1].append(f"{x:.1f},{y:.1f}")
    lines = "".join(
        f"<polyline points='{' '.join(r)}' fill='none' stroke='#0072B2' stroke-width='1.6'/>"
        for r in runs
        if len(r) > 1
    )
    last = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None][-1]
    dot = f"<circle cx='{last[0]:.1f}' cy='{last[1]:.1f}' r='2.2' fill='#0072B2'/>"
    return (
        f"<svg width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        f"aria-hidden='true'>{lines}{dot}</svg>"
    )


#: the period cards: (KPI, how its change reads, whether higher is better)
_PERIOD_CARDS = (
    ("win_rate", "pts", True),
    ("won", "count", True),
    ("won_amount", "money", True),
    ("created", "count", True),
    ("median_won_cycle_time_days", "days", False),
)


def period_cards(
    windows: Mapping[str, Any] | None, by_period: pd.DataFrame | None, ctx: _Ctx
) -> str:
    """The KPI cards of the current window with their change against the previous one
    and a trend line over the last complete periods."""
    if not windows:
        return ""
    L, cur = ctx.L, ctx.currency
    c, p = windows["current"], windows["previous"]
    if windows["kind"] == "period":
        title = L.t(
            "card.period_title",
            period=L.period(c["label"], c["start"], c["end"]),
            previous=L.period(p["label"], p["start"], p["end"]),
        )
    else:
        title = L.t("card.since_title", date=L.date(c["start"]), previous=L.date(p["start"]))
    items = []
    for key, kind, higher in _PERIOD_CARDS:
        now, before = c.get(key), p.get(key)
        value = _fmt(L, kind, now, cur)
        if value == "" and kind != "count":
            continue
        delta, cls = _delta(L, kind, now, before, higher, cur)
        line = ""
        if by_period is not None and key in by_period.columns and windows["kind"] == "period":
            line = sparkline(sparkline_values(by_period, key))
        extra = f"<div class='d {cls}'>{esc(delta)}</div>{line}"
        items.append(_card(value or "–", L.t(f"card.p_{key}"), extra))
    return f"<h3>{esc(title)}</h3><div class='cards'>{''.join(items)}</div>"


def _fmt(L: Lang, kind: str, v: Any, cur: str | None) -> str:
    if missing(v):
        return ""
    if kind == "pts":
        return L.pct(v)
    if kind == "money":
        return L.money_short(v, cur)
    if kind == "days":
        return L.days(v)
    return L.num(v)


def _delta(
    L: Lang, kind: str, now: Any, before: Any, higher: bool, cur: str | None
) -> tuple[str, str]:
    """The change's words and css class (``up``: better, ``down``: worse)."""
    if missing(now) or missing(before):
        return L.t("card.no_previous"), "flat"
    d = float(now) - float(before)
    if kind == "pts":
        text = L.pts(d)
    elif kind == "days":
        text = ("+" if d > 0 else "−" if d < 0 else "±") + L.days(abs(d))
    else:
        rel = f" ({d / float(before) * 100:+.0f}%)" if float(before) else ""
        if kind == "money":
            body = L.money_short(abs(d), cur)
        else:
            body = L.num(abs(d))
        text = ("+" if d > 0 else "−" if d < 0 else "±") + body + rel.replace("-", "−")
    arrow = "▲" if d > 0 else "▼" if d < 0 else "="
    cls = "flat" if d == 0 else ("up" if (d > 0) == higher else "down")
    return f"{arrow} {L.t('card.vs_previous', change=text)}", cls


def key_list(ks: pd.DataFrame, limit: int | None = None, ctx: _Ctx | None = None) -> str:
    """The flagged key-stage rows as a list of their reasons."""
    ctx = ctx or _Ctx()
    L = ctx.L
    key = ks.loc[ks["is_key"].astype(bool)]
    if key.empty:
        return f"<p class='muted'>{esc(L.t('key.none'))}</p>"
    rows = key if limit is None else key.head(limit)
    items = "".join(
        f"<li><b>{esc(r.stage)}</b> · {esc(L.word('signal', r.signal))}: "
        f"{esc(reason(L, r, ctx.currency))}</li>"
        for r in rows.itertuples(index=False)
    )
    more = len(key) - len(rows)
    return f"<ul class='keys'>{items}</ul>" + (
        f"<p class='muted'>{esc(L.t('key.more', n=more))}</p>" if more else ""
    )


def reason(L: Lang, r: Any, currency: str | None = None) -> str:
    """A key-stage row's reason in plain words, in the language: the catalogue's sentence
    of the row's signal, from the row's numbers (the library's own sentence, with its
    test, stays in the key-stage table)."""
    sig, test = str(r.signal), str(getattr(r, "test", "") or "")
    seg = getattr(r, "segment", None)
    fields = {
        "stage": str(r.stage),
        "segment": "" if missing(seg) else str(seg),
        "effect": L.pts(r.effect),
        "baseline": L.pct(getattr(r, "baseline", None)),
        "lifted": L.pct(float(r.baseline) + float(r.effect))
        if not (missing(getattr(r, "baseline", None)) or missing(r.effect))
        else "",
        "ratio": "" if missing(r.effect) else f"{float(r.effect):.2f}",
        "low": L.pts(r.ci_low) if sig != "dwell" else _ratio(r.ci_low),
        "high": L.pts(r.ci_high) if sig != "dwell" else _ratio(r.ci_high),
        "days": L.days(getattr(r, "baseline", None)) if sig == "dwell" else "",
    }
    if test == "none" or missing(r.effect):
        return L.t("reason.not_tested", **fields)
    k = f"reason.{sig}" + (
        "_segment" if fields["segment"] and L.has(f"reason.{sig}_segment") else ""
    )
    if not L.has(k):
        return L.t("reason.generic", **fields)
    return L.t(k, **fields)


def _key_table(ks: pd.DataFrame, ctx: _Ctx) -> pd.DataFrame:
    """The key-stage table as the page shows it: how each row was decided (``how``), and
    the reasons in the page's language (the library's own sentences in English)."""
    out = ks.assign(how=[_test_words(ctx.L, r) for r in ks.itertuples()])
    if ctx.L.code != "en" and len(ks):
        out["reason"] = [reason(ctx.L, r, ctx.currency) for r in ks.itertuples()]
    return out


def _ratio(v: Any) -> str:
    return "" if missing(v) else f"{float(v):.2f}"


def _test_words(L: Lang, r: Any) -> str:
    """How a key-stage row was decided: ``one-sided z test, q = 0.0495``, or, for an
    estimate, ``bootstrap interval, no test``."""
    test = str(getattr(r, "test", "") or "")
    if test in ("bootstrap", "none", ""):
        return L.t("key.bootstrap") if test == "bootstrap" else L.t("key.no_test")
    sided = L.word("sided", str(getattr(r, "alternative", "")), "")
    q = _pvalue(r.q_value)
    q = q.replace("< ", "q < ") if q.startswith("<") else f"q = {q}"
    return L.t("key.test", sided=sided, test=L.word("test", test), q=q).strip()


def win_note(summary: Mapping[str, Any], ks: pd.DataFrame, ctx: _Ctx | None = None) -> str:
    """The page's one win-rate definition, and what the other win figure is."""
    ctx = ctx or _Ctx()
    L = ctx.L
    lev = ks.loc[(ks["signal"] == "leverage") & ks["baseline"].notna()] if len(ks) else ks
    if lev.empty or missing(summary["win_rate"]):
        return ""
    chain = float(lev["baseline"].iloc[0])
    first = summary["stages"][0] if summary["stages"] else L.t("word.first_stage")
    return (
        "<p class='muted'>"
        + L.t(
            "key.win_note",
            win_rate=L.pct(summary["win_rate"]),
            chain=L.pct(chain),
            first=esc(first),
        )
        + "</p>"
    )


def compact(summary: Mapping[str, Any], tables: Mapping[str, pd.DataFrame], img: str) -> str:
    """The Jupyter view: headline numbers, key stages, the funnel chart (``img``)."""
    ctx = _ctx(summary)
    L = ctx.L
    return (
        f"<style>{CSS}</style><div class='fk-report'>"
        f"<h3>{esc(L.t('page.compact_title'))} <small>"
        f"{esc(L.t('page.as_of', date=L.when(summary['as_of'])))}</small></h3>"
        + _exec_summary(summary, ctx)
        + kpi_cards(summary, ctx)
        + key_list(tables["key_stages"], limit=8, ctx=ctx)
        + img
        + "<p class='muted'>"
        + L.t("page.compact_files", n=len(tables), names=esc(", ".join(tables)))
        + "</p></div>"
    )


def _ctx(summary: Mapping[str, Any]) -> _Ctx:
    st = summary.get("settings", {}) or {}
    return _Ctx(st.get("lang") or "en", st.get("currency"))


# ============================================================================ summary
def _a(text: str, section: str) -> str:
    """A number in a sentence, linked to the section it comes from."""
    return f"<a class='n' href='#{esc(section)}'>{esc(text)}</a>"


def _exec_summary(summary: Mapping[str, Any], ctx: _Ctx) -> str:
    """The executive summary: one sentence per item of ``summary["headline"]``."""
    L, cur = ctx.L, ctx.currency
    items = []
    for h in summary.get("headline", []):
        sec, kind = h["section"], h["kind"]
        if kind == "lost_most":
            text = L.t(
                "exec.lost_most",
                stage=f"<b>{esc(h['stage'])}</b>",
                dropped=_a(L.num(h["dropped"]), sec),
                reached=_a(L.num(h["reached"]), sec),
                conversion=_a(L.pct(h["conversion"]), sec),
            )
        elif kind == "change":
            delta = (
                None
                if h["win_rate"] is None or h["previous_win_rate"] is None
                else h["win_rate"] - h["previous_win_rate"]
            )
            w = summary.get("windows") or {}
            c, p = w.get("current", {}), w.get("previous", {})
            if h["window"] == "period":
                when_ = L.period(h["label"], c.get("start"), c.get("end"))
                prev = L.period(h["previous_label"], p.get("start"), p.get("end"))
            else:
                when_ = L.t("exec.since", date=L.date(h["start"]))
                prev = L.t("exec.same_length_before")
            key = "exec.change" if h["win_rate"] is not None else "exec.change_no_rate"
            text = L.t(
                key,
                when=esc(when_),
                previous=esc(prev),
                win_rate=_a(L.pct(h["win_rate"]), sec),
                delta=_a(L.pts(delta) if delta is not None else "–", sec),
                won=_a(L.num(h["won"]), sec),
                previous_won=_a(L.num(h["previous_won"]), sec),
                amount=_a(L.money_short(h["won_amount"], cur) or "–", sec),
            )
        elif kind == "act":
            key = "exec.act_window" if h["per_window"] else "exec.act"
            text = L.t(
                key,
                stage=f"<b>{esc(h['stage'])}</b>",
                baseline=_a(L.pct(h["baseline"]), sec),
                lifted=_a(L.pct(h["lifted"]), sec),
                wins=_a(L.num(h["extra_wins"], 1), sec),
                deals=_a(L.num(h["deals"]), sec),
                amount=_a(L.money_short(h["extra_amount"], cur) or "–", sec),
            )
        elif kind == "act_on":
            key = "exec.act_on" if h["amount"] is not None else "exec.act_on_no_amount"
            text = L.t(
                key,
                deals=_a(L.num(h["deals"]), sec),
                amount=_a(L.money_short(h["amount"], cur), sec),
                stalled=_a(L.num(h["stalled"]), sec),
                cold=_a(L.num(h["going_cold"]), sec),
                key_stage=_a(L.num(h["key_stage"]), sec),
            )
        elif kind == "quality":
            key = "exec.quality" if h["rows_not_used"] else "exec.quality_warnings"
            text = L.t(
                key,
                rows=_a(L.num(h["rows_not_used"]), sec),
                rows_in=_a(L.num(h["rows_in"]), sec),
                warnings=_a(L.num(h["warnings"]), sec),
            )
        else:  # pragma: no cover - every kind is worded above
            continue
        items.append(f"<li>{text}</li>")
    if not items:
        return ""
    return f"<ul class='exec'>{''.join(items)}</ul>"


# ============================================================================ the page
def page(
    summary: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame],
    quality: QualityReport,
    notes: Sequence[str],
    img: Callable[[str], str],
    files: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The full report page; ``img(name)`` is a chart's ``<img>`` ('' when not drawn);
    ``files``: the formats written per table (links to ``tables/<name>.<format>``)."""
    s, t = summary, tables
    ctx = _ctx(s)
    L = ctx.L
    ks = t["key_stages"]
    flagged = ks["is_key"].astype(bool)

    def chart(name: str, caption_key: str = "") -> str:
        tag = img(name)
        if not tag:
            return ""
        out = f"<div class='fig'>{tag}</div>"
        if caption_key:
            out += details(
                L.t("page.how_to_read"), f"<p class='muted'>{esc(L.t(caption_key))}</p>"
            )
        return out

    def tbl(df: pd.DataFrame, cols: Sequence[str] | None = None, **kw: Any) -> str:
        return table(df, cols, ctx=ctx, **kw)

    key_headers = {
        "q_value": L.t("col.q_value_bh"),
        "alternative": L.t("col.sided"),
        "reason": L.word("col", "reason"),
    }
    cmp_headers = {"p_value": L.t("col.p_two_sided"), "q_value": L.t("col.q_two_sided")}
    sections: list[tuple[str, str, list[str]]] = [
        (
            "summary",
            L.t("sec.summary"),
            [
                _no_visits(notes, L),
                _exec_summary(s, ctx),
                period_cards(s.get("windows"), t.get("kpis_by_period"), ctx),
                f"<h3>{esc(L.t('card.all_title'))}</h3>",
                kpi_cards(s, ctx),
                f"<p class='muted'>{esc(L.t('card.win_rate_def'))}</p>",
            ],
        ),
    ]
    if "act_on" in t:
        sections.append(("act-on", L.t("sec.act_on"), _act_on(t["act_on"], s, ctx, files)))
    if "kpis_by_period" in t and len(t["kpis_by_period"]):
        kp = t["kpis_by_period"]
        kp = kp.assign(
            period=[
                L.period(a, b, c)
                for a, b, c in zip(kp["period"], kp["period_start"], kp["period_end"], strict=True)
            ]
        )
        cols = [
            "period",
            "complete",
            *[
                c
                for c in kp.columns
                if c not in ("period", "period_start", "period_end", "complete")
            ],
        ]
        sections.append(
            (
                "kpis",
                L.t("sec.kpis"),
                [f"<p class='muted'>{esc(L.t('page.kpis_intro'))}</p>", tbl(kp, cols)],
            )
        )
    sections += [
        (
            "key-stages",
            L.t("sec.key_stages"),
            [
                f"<p>{esc(L.t('key.intro'))}</p>",
                key_list(ks, ctx=ctx),
                win_note(s, ks, ctx),
                details(L.t("key.chart_fold"), chart("key_stages")),
                details(
                    L.t("key.table_fold", n=L.num(len(ks))),
                    tbl(
                        _key_table(ks, ctx),
                        _KEY_SHOWN,
                        highlight=flagged,
                        headers=key_headers,
                    ),
                ),
            ],
        ),
        (
            "funnel",
            L.t("sec.funnel"),
            [
                chart("funnel", "caption.funnel"),
                *_funnel_table(t["funnel"], set(ks.loc[flagged, "stage"]), ctx),
                details(L.t("page.incidence_fold"), chart("incidence", "caption.incidence")),
                details(L.t("page.strict_fold"), tbl(t["funnel_strict"])),
            ],
        ),
        (
            "flow",
            L.t("sec.flow"),
            [
                chart("flow", "caption.flow"),
                details(L.t("page.heatmap_fold"), chart("heatmap")),
                details(L.t("page.transitions_fold"), tbl(t["transitions"])),
            ],
        ),
        (
            "dwell",
            L.t("sec.dwell"),
            [
                chart("dwell"),
                details(L.t("page.survival_fold"), chart("survival")),
                details(L.t("page.dwell_fold"), tbl(t["dwell"], _DWELL_SHOWN)),
                f"<h3>{esc(L.t('page.cycle_title'))}</h3>"
                f"<p class='muted'>{esc(L.t('page.cycle_intro'))}</p>",
                tbl(t["cycle_time"], _DWELL_SHOWN),
            ],
        ),
    ]
    if "funnel_by" in t or "compare_by" in t:
        body = [chart("segments")]
        if "compare_by" in t:
            body.append(
                details(
                    L.t("page.rest_title"),
                    f"<p class='muted'>{esc(L.t('page.rest_intro'))}</p>"
                    + _compare(t["compare_by"], ctx, cmp_headers),
                )
            )
        if "funnel_by" in t:
            body.append(details(L.t("page.funnel_by_fold"), tbl(t["funnel_by"])))
        sections.append(("segments", L.t("sec.segments"), body))
    if "compare_period" in t:
        title = L.t("sec.period", date=L.date(s["settings"]["period"]))
        sections.append(("period", title, [_compare(t["compare_period"], ctx, cmp_headers)]))
    if "trend" in t:
        body = [chart("trend"), details(L.t("page.trend_fold"), tbl(t["trend"], max_rows=500))]
        sections.append(("trend", L.t("sec.trend"), body))
    if "movement" in t:  # only with a field history (EventLog.with_history)
        body = [
            chart("waterfall", "caption.waterfall"),
            tbl(t["movement"]),
            chart("slippage", "caption.slippage"),
            details(L.t("page.slippage_fold"), tbl(t["slippage_by_stage"])),
        ]
        sections.append(("movement", L.t("sec.movement"), body))
    if "forecast_periods" in t:
        body = [
            chart("forecast", "caption.forecast"),
            details(L.t("page.forecast_fold"), tbl(t["forecast_periods"], _FORECAST_SHOWN)),
        ]
        sections.append(("forecast", L.t("sec.forecast"), body))
    sections.append(("quality", L.t("sec.quality"), _quality(t, quality, ctx)))

    nav = "".join(f"<a href='#{a}'>{esc(title)}</a>" for a, title, _ in sections)
    main = "".join(
        f"<section id='{a}'><h2>{esc(title)}</h2>{''.join(body)}</section>"
        for a, title, body in sections
    )
    note_list = "".join(f"<li>{esc(note_text(L, n))}</li>" for n in notes)
    inferred = L.t("page.order_inferred") if s["stage_order_inferred"] else ""
    meta = L.t(
        "page.meta",
        deals=L.num(s["deals"]),
        used=L.num(s["rows_used"]),
        rows=L.num(s["rows_in"]),
        date=L.when(s["as_of"]),
        stages=" → ".join(s["stages"]),
        inferred=inferred,
    )
    return (
        f"<!DOCTYPE html>\n<html lang='{esc(L.html_lang)}'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(L.t('page.title'))} · {esc(L.when(s['as_of']))}</title>"
        f"<style>{CSS}{PAGE_CSS}</style></head>"
        f"<body><div class='fk-report fk-page'><h1>{esc(L.t('page.title'))}</h1>"
        f"<p class='muted meta'>{esc(meta)}</p>"
        f"<p class='muted print-only'>{esc(L.t('page.print_note'))}</p>"
        f"<nav>{nav}</nav>{main}"
        + (details(L.t("page.notes_fold"), f"<ul>{note_list}</ul>") if notes else "")
        + _files(files, L)
        + f"<p class='muted'>{esc(L.t('page.footer', version=__version__))}</p>"
        "</div></body></html>\n"
    )


def note_text(L: Lang, note: str) -> str:
    """A report note in the language: the catalogue's patterns (``[[note_pattern]]``)."""
    if L.code == "en":
        return note
    for rx, to in L.note_patterns:
        if rx.fullmatch(note):
            return rx.sub(to, note)
    return L.t("page.note_untranslated", note=note)


def _act_on(
    df: pd.DataFrame,
    s: Mapping[str, Any],
    ctx: _Ctx,
    files: Mapping[str, Sequence[str]] | None,
) -> list[str]:
    L = ctx.L
    if df.empty:
        return [f"<p>{esc(L.t('act.none'))}</p>"]
    why = [" · ".join(L.t(f"act.why_{f}") for f in str(r).split(";") if f) for r in df["reasons"]]
    shown = df.assign(why=why)
    cols = [
        c
        for c in (
            "deal",
            "owner",
            "stage",
            "days_in_stage",
            "stage_p90_days",
            "days_since_last_event",
            "days_since_touch",
            "amount",
            "why",
        )
        if c in shown.columns
    ]
    link = ""
    if files and "act_on" in files:
        link = " " + L.t(
            "act.files",
            links=", ".join(
                f"<a href='tables/act_on.{esc(f)}'>{esc(_FORMATS.get(f, f))}</a>"
                for f in files["act_on"]
            ),
        )
    return [
        f"<p>{esc(L.t('act.intro', n=L.num(len(df))))}{link}</p>",
        table(shown, cols, max_rows=ACT_ON_ROWS, ctx=ctx),
        f"<p class='muted'>{esc(L.t('act.rules_touch' if 'days_since_touch' in df else 'act.rules'))}</p>",
    ]


def not_settled(funnel: pd.DataFrame, L: Lang | None = None) -> pd.Series:
    """Per stage "Not settled yet: 31–87%" (the conversion's 95% interval, in whole
    percent) where the stage's unresolved share is at least 0.05%, else ''."""
    from .plot._style import unsettled

    L = L or load("en")
    if "unresolved" not in funnel.columns or not {"conversion_low", "conversion_high"} <= set(
        funnel.columns
    ):
        return pd.Series("", index=funnel.index, dtype=object)
    open_ = unsettled(funnel["unresolved"])
    text = [
        L.t("funnel.not_settled", low=f"{lo * 100:.0f}", high=f"{hi * 100:.0f}")
        if o and not (missing(lo) or missing(hi))
        else ""
        for o, lo, hi in zip(
            open_, funnel["conversion_low"], funnel["conversion_high"], strict=True
        )
    ]
    return pd.Series(text, index=funnel.index, dtype=object)


def _funnel_table(funnel: pd.DataFrame, key: set[Any], ctx: _Ctx | None = None) -> list[str]:
    """The page's funnel table: the unresolved share and the "not settled yet" range only
    when some stage has 0.05% or more unresolved (else they would be columns of zeros)."""
    ctx = ctx or _Ctx()
    L = ctx.L
    shown = list(_FUNNEL_SHOWN)
    notes = not_settled(funnel, L)
    if (notes != "").any():
        funnel = funnel.assign(not_settled=notes)
        body = [f"<p class='muted'>{L.t('funnel.unsettled_intro')}</p>"]
    else:
        shown = [c for c in shown if c not in ("unresolved", "not_settled")]
        body = [f"<p class='muted'>{L.t('funnel.settled_intro')}</p>"]
    highlight = funnel["stage"].isin(key)
    return [*body, table(funnel, shown, highlight=highlight, ctx=ctx)]


def _no_visits(notes: Sequence[str], L: Lang) -> str:
    """A warning on a log without stage visits ('' otherwise)."""
    if NO_VISITS not in notes:
        return ""
    return f"<ul class='warn'><li>{esc(L.t('page.no_visits'))}</li></ul>"


def _files(files: Mapping[str, Sequence[str]] | None, L: Lang) -> str:
    """The table files written beside the page, as links ('' before saving)."""
    if not files:
        return ""
    label = _FORMATS
    items = "".join(
        f"<li>{esc(name)}: "
        + ", ".join(
            f"<a href='tables/{esc(name)}.{esc(fmt)}'>{esc(label.get(fmt, fmt))}</a>"
            for fmt in fmts
        )
        + "</li>"
        for name, fmts in files.items()
    )
    return details(L.t("page.files_fold"), f"<ul>{items}</ul>")


def _compare(df: pd.DataFrame, ctx: _Ctx, headers: Mapping[str, str]) -> str:
    """A comparison table (``log.compare``): its groups, then the columns a reader needs."""
    groups = list(df.columns[: list(df.columns).index("stage")]) if "stage" in df else []
    hl = df["differs"].astype(bool) if "differs" in df.columns else None
    return table(df, [*groups, *_COMPARE_SHOWN], highlight=hl, headers=headers, ctx=ctx)


def quality_warnings(q: QualityReport, L: Lang) -> list[str]:
    """``q.warnings`` in the language (the same items, from the report's numbers)."""
    if L.code == "en":
        return list(q.warnings)
    out = []
    if q.source == "deals":
        cells = sum(q.by_reason.values()) - q.rows_dropped
        if q.rows_dropped:
            out.append(L.t("warn.deals_left_out", n=L.num(q.rows_dropped)))
        if cells > 0:
            out.append(L.t("warn.values_rejected", n=L.num(cells)))
    elif q.rows_dropped:
        out.append(L.t("warn.rows_dropped", n=L.num(q.rows_dropped)))
    if q.reopened:
        out.append(L.t("warn.reopened", n=L.num(q.reopened)))
    if q.unresolved_ties:
        out.append(L.t("warn.ties", n=L.num(q.unresolved_ties)))
    for col, n in q.attr_changes.items():
        if n:
            out.append(L.t("warn.attr_changes", n=L.num(n), col=col))
    if q.deals_without_amount:
        out.append(L.t("warn.no_amount", n=L.num(q.deals_without_amount)))
    if q.stage_order_inferred:
        out.append(L.t("warn.order_inferred", stages=" → ".join(q.stages)))
    return out


def _quality(t: Mapping[str, pd.DataFrame], q: QualityReport, ctx: _Ctx) -> list[str]:
    L = ctx.L
    n = L.num
    body = [
        f"<p>{esc(L.t('quality.rows', rows_in=n(q.rows_in), used=n(q.rows_used), dropped=n(q.rows_dropped), removed=n(q.rows_removed), collapsed=n(q.rows_collapsed)))}</p>",
        f"<p>{esc(L.t('quality.deals', deals=n(q.deals), won=n(q.won), lost=n(q.lost), stale=n(q.stale), open=n(q.open), reopened=n(q.reopened)))}</p>",
    ]
    if q.rows_post_sale:
        body.append(
            f"<p>{esc(L.t('quality.post_sale', rows=n(q.rows_post_sale), deals=n(q.post_sale_deals)))}</p>"
        )
    warnings = quality_warnings(q, L)
    if warnings:
        body.append(
            "<ul class='warn'>" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>"
        )
    rej = t["rejects"]
    if len(rej):
        shown = rej.assign(
            description=[
                L.word("reject", r, d)
                for r, d in zip(rej["reason"], rej["description"], strict=True)
            ]
        )
        body += [
            f"<h3>{esc(L.t('quality.rejects_title'))}</h3>",
            table(shown, ["reason", "treatment", "rows", "description"], ctx=ctx),
            details(L.t("quality.examples_fold"), table(t["reject_examples"], ctx=ctx)),
        ]
    else:
        body.append(f"<p>{esc(L.t('quality.all_used'))}</p>")
    body.append(details(L.t("quality.table_fold"), table(t["quality"], ctx=ctx)))
    return body


# ============================================================================ charts
def translate_figure(fig: Figure, lang: str, reasons: Mapping[str, str] | None = None) -> None:
    """Every text of ``fig`` in language ``lang`` (catalogue ``[chart]`` and
    ``[[chart_pattern]]``), in fonts that hold its script (:data:`CJK_FONTS`); key-stage
    reasons through ``reasons`` (English reason → translated reason). In place."""
    from matplotlib.text import Text

    L = load(lang)
    fonts = chart_fonts()
    rs = {" ".join(k.split()): v for k, v in (reasons or {}).items()}
    for t in fig.findobj(Text):
        old = t.get_text()
        if not old:
            continue
        new = _chart_reason(old, rs) if rs else None
        if new is None:
            new = L.chart_text(old)
        if new != old:
            t.set_text(new)
        t.set_fontfamily(fonts)
    for ax in fig.axes:  # tick labels are made again at each draw: translate them there
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(_translated(axis.get_major_formatter(), L))
            axis.set_minor_formatter(_translated(axis.get_minor_formatter(), L))
        ax.tick_params(axis="both", which="both", labelfontfamily=fonts)


def _translated(inner: Any, L: Lang) -> Any:
    """A tick formatter that writes what ``inner`` writes, in language ``L``."""
    from matplotlib.ticker import Formatter

    class Translated(Formatter):  # type: ignore[misc]
        def __call__(self, x: Any, pos: Any = None) -> str:
            return L.chart_text(str(inner(x, pos)))

        def format_ticks(self, values: Any) -> list[str]:
            return [L.chart_text(str(v)) for v in inner.format_ticks(values)]

        def get_offset(self) -> str:
            return str(inner.get_offset())

    return Translated()


def chart_fonts() -> list[str]:
    """The fonts of :data:`CJK_FONTS` that matplotlib has (DejaVu Sans always: it ships
    with matplotlib); without a CJK one, Chinese glyphs cannot be drawn."""
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    return [f for f in CJK_FONTS if f in have or f == "DejaVu Sans"]


_Q_PREFIX = re.compile(r"^(q [=<] [0-9.]+ · )?(.*)$", re.S)


def _chart_reason(text: str, reasons: Mapping[str, str]) -> str | None:
    """A key-stage chart's row text (``q = 0.56 · <reason, wrapped, shortened>``) with its
    reason translated: the row whose reason shares the longest start with it (at least 30
    characters); None when it is no reason."""
    m = _Q_PREFIX.match(text)
    if m is None:  # pragma: no cover - the pattern matches any text
        return None
    prefix, body = m[1] or "", " ".join(m[2].split())
    best, score = None, 0
    for en, other in reasons.items():
        n = len(os.path.commonprefix([en, body]))
        if n > score:
            best, score = other, n
    if best is None or score < min(30, len(body)) or len(body) < 20:
        return None
    return _wrap_cjk(prefix + best, 44)


def _wrap_cjk(text: str, width: int) -> str:
    """Wrap text of CJK characters (each about two Latin letters wide) into lines."""
    lines, line, w = [], "", 0.0
    for ch in text:
        cw = 1.0 if ord(ch) < 0x2E80 else 1.9
        if w + cw > width and line:
            lines.append(line)
            line, w = "", 0.0
        line += ch
        w += cw
    lines.append(line)
    return "\n".join(lines[:2]) + ("…" if len(lines) > 2 else "")


def chart_alt(name: str, lang: str = "en") -> str:
    """What a chart shows, for its ``alt`` text."""
    return load(lang).word("alt", name, name)
