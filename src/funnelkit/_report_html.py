"""The report as HTML: one self-contained page, and the compact Jupyter view.

Every string that can come from the data (stage names, deal ids, segment values, reasons,
column names) goes through :func:`esc`; the page loads nothing (no script, stylesheet,
font or image file: charts are PNG data URIs) and says so in its Content-Security-Policy.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._version import __version__

if TYPE_CHECKING:
    from .quality import QualityReport

#: what a chart shows, for its ``alt`` text
CHART_ALT = {
    "funnel": "Funnel chart: deals reaching each stage, conversion and drop-off",
    "incidence": "Share of deals entering a stage that advanced, were lost or are not "
    "resolved yet, over time in the stage",
    "key_stages": "Key-stage chart: effect of each stage and signal with its interval",
    "flow": "Stage-flow diagram of the transitions between stages",
    "heatmap": "Transition matrix: share of each stage's exits going to each next state",
    "dwell": "Time in stage: dwell distribution per stage",
    "survival": "Kaplan-Meier curves of the share of visits still in each stage",
    "segments": "Conversion per stage per segment with intervals",
    "trend": "Conversion per cohort over time",
    "waterfall": "Pipeline waterfall: open at the start, created, pulled in, amount changes, "
    "won, lost, stale, pushed out, open at the end",
    "slippage": "Share of deals whose close date was pushed, per stage",
    "forecast": "Fan chart: expected wins per month with 50, 80 and 95% intervals",
}
#: the note of a report on a log without stage visits (only won/lost events)
NO_VISITS = (
    "no stage visits: every deal has only won/lost events, so the funnel, key stages, flow "
    "and time in stage are empty; the headline counts outcomes only"
)

#: rows a page table shows (the files hold every row)
TABLE_ROWS = 200
#: forbid loading anything: images only from data URIs, styles only inline
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_FUNNEL_SHOWN = (
    "stage reached advanced dropped open conversion conversion_low conversion_high "
    "unresolved not_settled conversion_closed cumulative win_rate_from"
).split()
#: the page's words for the funnel's columns (the files keep the table's names)
_FUNNEL_HEADERS = {"not_settled": "not settled yet"}
_KEY_SHOWN = (
    "signal stage segment effect ci_low ci_high q_value test alternative is_key reason".split()
)
#: the page's words for a test's side (the files keep the ``alternative`` of the table)
_SIDED = {"greater": "one-sided", "less": "one-sided", "two-sided": "two-sided"}
_KEY_HEADERS = {"q_value": "q_value (BH, per signal)", "alternative": "sided"}
#: ``log.compare`` tests are two-sided: say so where its p- and q-values are shown
_COMPARE_HEADERS = {"p_value": "p_value (two-sided)", "q_value": "q_value (two-sided)"}
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

CSS = """
.fk-report{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
sans-serif;color:#222;line-height:1.45;font-size:15px}
.fk-report h1{font-size:26px;margin:0 0 2px}
.fk-report h2{font-size:20px;margin:34px 0 8px;padding-top:10px;border-top:1px solid #e3e3e3}
.fk-report section:first-of-type h2{border-top:none;margin-top:14px}
.fk-report h3{font-size:16px;margin:18px 0 6px}
.fk-report h3 small,.fk-report .muted{color:#5a5a5a;font-weight:normal}
.fk-report p{margin:6px 0}
.fk-report .cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.fk-report .card{border:1px solid #dcdcdc;border-radius:8px;padding:8px 14px;min-width:120px;
background:#fafafa}
.fk-report .card .v{font-size:22px;font-weight:600}
.fk-report .card .l{font-size:12px;color:#5a5a5a}
.fk-report ul.keys{list-style:none;padding:0;margin:8px 0}
.fk-report ul.keys li{border-left:4px solid #D55E00;background:#fdf3ec;padding:6px 10px;
margin:6px 0;border-radius:0 6px 6px 0}
.fk-report ul.keys li b{color:#a34700}
.fk-report ul.warn li{color:#6b4a00}
.fk-report img.chart{display:block;max-width:100%;height:auto;margin:10px 0}
.fk-report table{border-collapse:collapse;font-size:13px;margin:6px 0}
.fk-report th,.fk-report td{padding:3px 9px;border-bottom:1px solid #ececec;text-align:left;
vertical-align:top}
.fk-report th{background:#f3f3f3;font-weight:600;white-space:nowrap}
.fk-report td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.fk-report tr.key td{background:#fdf3ec}
.fk-report .scroll{overflow-x:auto}
.fk-report details{margin:8px 0}
.fk-report summary{cursor:pointer;color:#0072B2}
.fk-report nav{position:sticky;top:0;background:#fff;padding:8px 0;border-bottom:1px solid
#e3e3e3;z-index:1;font-size:14px}
.fk-report nav a{margin-right:14px;color:#0072B2;text-decoration:none}
.fk-report code{background:#f3f3f3;padding:0 3px;border-radius:3px}
"""
#: page-only rules (left out of the Jupyter view, where they would restyle the notebook)
PAGE_CSS = """
body{margin:0;background:#fff}
.fk-page{max-width:1240px;margin:0 auto;padding:18px 24px 60px}
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


def _pct(v: Any) -> str:
    return "" if missing(v) else f"{float(v) * 100:.1f}%"


def _points(v: Any) -> str:
    return "" if missing(v) else f"{float(v) * 100:+.2f} pts"


def _pvalue(v: Any) -> str:
    if missing(v):
        return ""
    return "< 0.0001" if float(v) < 1e-4 else f"{float(v):.4f}"


def _duration(v: Any) -> str:
    """A duration for readers, rounded: ``14.1 days``, ``3.2 h``, ``12 min``, ``40 s``."""
    if missing(v):
        return ""
    seconds = pd.Timedelta(v).total_seconds()
    if abs(seconds) >= 2 * 86_400:
        return f"{seconds / 86_400:,.1f} days"
    if abs(seconds) >= 3_600:
        return f"{seconds / 3_600:.1f} h"
    if abs(seconds) >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _date(v: Any) -> str:
    """A timestamp in a table: ``2024-01-01`` at midnight, else ``2025-02-14 23:27 UTC``."""
    t = pd.Timestamp(v)
    return t.strftime("%Y-%m-%d") if t == t.normalize() else when(t)


def _amount(v: Any) -> str:
    if missing(v):
        return ""
    f = float(v)
    if f.is_integer():
        return f"{int(f):,}"
    return f"{f:,.0f}" if abs(f) >= 100 else f"{f:,.2f}"


def _cell(col: str, v: Any) -> tuple[str, str]:
    """(text, css class) of one table cell; the caller escapes the text."""
    if col in ("p_value", "q_value"):
        return _pvalue(v), "num"
    if col == "alternative":
        return _SIDED.get(str(v), ""), ""
    if isinstance(v, (bool, np.bool_)):
        return ("yes" if v else ""), ""
    if missing(v):
        return "", ""
    if isinstance(v, (pd.Timedelta, np.timedelta64)):
        return _duration(v), "num"
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return _date(v), ""
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}", "num"
    if isinstance(v, (float, np.floating)):
        if col in _PCT_COLS:
            return _pct(v), "num"
        if col in _POINT_COLS:
            return _points(v), "num"
        return _amount(v), "num"
    return str(v), ""


# ============================================================================ blocks
def table(
    df: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    highlight: Iterable[bool] | None = None,
    max_rows: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> str:
    """An HTML table of ``df`` (every cell escaped), highlighted rows marked ``key``: its
    first ``max_rows`` rows (default :data:`TABLE_ROWS`); ``headers`` renames columns on the
    page (e.g. to say a test is two-sided)."""
    max_rows = TABLE_ROWS if max_rows is None else max_rows
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    flags = list(highlight) if highlight is not None else [False] * len(df)
    names = dict(headers or {})
    head = "".join(f"<th>{esc(names.get(c, c))}</th>" for c in cols)
    body = []
    for i, row in enumerate(df[cols].head(max_rows).itertuples(index=False, name=None)):
        cells = []
        for c, v in zip(cols, row, strict=True):
            text, cls = _cell(c, v)
            cells.append(f"<td class='{cls}'>{esc(text)}</td>" if cls else f"<td>{esc(text)}</td>")
        body.append(("<tr class='key'>" if flags[i] else "<tr>") + "".join(cells) + "</tr>")
    more = ""
    if len(df) > max_rows:
        more = (
            f"<p class='muted'>First {max_rows:,} of {len(df):,} rows; all are in the files.</p>"
        )
    return (
        f"<div class='scroll'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>{more}"
    )


def details(summary: str, content: str) -> str:
    return f"<details><summary>{esc(summary)}</summary>{content}</details>"


def kpi_cards(s: Mapping[str, Any]) -> str:
    """The headline numbers of a report summary as cards."""
    days = s["median_won_cycle_time_days"]
    cards = [
        ("deals", f"{s['deals']:,}"),
        ("win rate (won ÷ resolved deals)", _pct(s["win_rate"]) or "–"),
        (
            "won · lost · stale · open",
            f"{s['won']:,} · {s['lost']:,} · {s['stale']:,} · {s['open']:,}",
        ),
        ("average won amount", _amount(s["avg_won_amount"]) or "–"),
        ("median won cycle time", "–" if days is None else _duration(pd.Timedelta(days=days))),
        ("pipeline velocity (amount per day)", _amount(s["pipeline_velocity"]) or "–"),
    ]
    items = "".join(
        f"<div class='card'><div class='v'>{esc(v)}</div><div class='l'>{esc(k)}</div></div>"
        for k, v in cards
    )
    return f"<div class='cards'>{items}</div>"


def key_list(ks: pd.DataFrame, limit: int | None = None) -> str:
    """The flagged key-stage rows as a list of their reasons."""
    key = ks.loc[ks["is_key"].astype(bool)]
    if key.empty:
        return (
            "<p class='muted'>No stage is flagged as key: no effect is both statistically "
            "supported and large enough (see the key-stage table).</p>"
        )
    rows = key if limit is None else key.head(limit)
    items = "".join(
        f"<li><b>{esc(r.stage)}</b> · {esc(r.signal)}: {esc(r.reason)} "
        f"<span class='muted'>({esc(_test_words(r))})</span></li>"
        for r in rows.itertuples(index=False)
    )
    more = len(key) - len(rows)
    return f"<ul class='keys'>{items}</ul>" + (
        f"<p class='muted'>… and {more} more.</p>" if more else ""
    )


def _test_words(r: Any) -> str:
    """How a key-stage row was decided: ``one-sided z test, q = 0.0495``, or, for an
    estimate, ``bootstrap interval, no test``."""
    test = str(getattr(r, "test", "") or "")
    if test in ("bootstrap", "none", ""):
        return "estimate with a bootstrap interval, no test" if test == "bootstrap" else "no test"
    sided = _SIDED.get(str(getattr(r, "alternative", "")), "")
    q = _pvalue(r.q_value)
    q = q.replace("< ", "q < ") if q.startswith("<") else f"q = {q}"
    return f"{sided} {test} test, {q}".strip()


def win_note(summary: Mapping[str, Any], ks: pd.DataFrame) -> str:
    """Why the leverage reasons quote another win figure than the win-rate card."""
    lev = ks.loc[(ks["signal"] == "leverage") & ks["baseline"].notna()] if len(ks) else ks
    if lev.empty or missing(summary["win_rate"]):
        return ""
    chain = float(lev["baseline"].iloc[0])
    first = summary["stages"][0] if summary["stages"] else "the first stage"
    return (
        "<p class='muted'>Two win figures, two definitions. The <b>win rate</b> card "
        f"({_pct(summary['win_rate'])}) is won ÷ resolved deals (won + lost + stale); open "
        "deals are left out. The <b>overall win probability</b> in the leverage reasons "
        f"({_pct(chain)}) is the absorbing Markov chain's probability that a deal entering "
        f"{esc(first)} eventually wins, from the exit shares of completed stage visits (open "
        "visits are censored): it counts open deals by the stage they are in, so it differs "
        "from the ratio of closed deals.</p>"
    )


def compact(summary: Mapping[str, Any], tables: Mapping[str, pd.DataFrame], img: str) -> str:
    """The Jupyter view: headline numbers, key stages, the funnel chart (``img``)."""
    return (
        f"<style>{CSS}</style><div class='fk-report'>"
        f"<h3>funnelkit report <small>as of {esc(when(summary['as_of']))}</small></h3>"
        + kpi_cards(summary)
        + key_list(tables["key_stages"], limit=8)
        + img
        + f"<p class='muted'>{len(tables)} tables ({esc(', '.join(tables))}); "
        "<code>report.save(outdir)</code> writes the full page, the tables (Parquet; CSV "
        "but for the per-deal table), "
        "the charts (PNG, SVG) and summary.json.</p></div>"
    )


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
    ks = t["key_stages"]
    flagged = ks["is_key"].astype(bool)

    def chart(name: str, caption: str = "") -> str:
        tag = img(name)
        return tag + (f"<p class='muted'>{esc(caption)}</p>" if tag and caption else "")

    sections: list[tuple[str, str, list[str]]] = [
        (
            "summary",
            "Headline",
            [
                _no_visits(notes),
                kpi_cards(s),
                "<h3>Key stages</h3>",
                key_list(ks),
                win_note(s, ks),
            ],
        ),
        (
            "funnel",
            "Funnel",
            [
                chart(
                    "funnel",
                    "Conversion is the probability that a deal entering the stage advances "
                    "(competing risks: advanced against lost, deals still open counted for "
                    "the time they have been open). Key stages are highlighted.",
                ),
                *_funnel_table(t["funnel"], set(ks.loc[flagged, "stage"])),
                chart(
                    "incidence",
                    "Over time since entering the stage: the share of deals that advanced, "
                    "were lost, or are not resolved yet (hatched). The key stages are drawn, "
                    "or the stage with the lowest conversion when none is key. The green band "
                    "ends at the stage's conversion. The hatched band left at the right edge "
                    "is its unresolved share, unless the curve has levelled off (no deal "
                    "advanced during the last stale_after): then the funnel counts those "
                    "silent deals as stale, i.e. lost. The black bar at the right edge is the "
                    "funnel's 95% interval; it spans the unresolved share, including what the "
                    "estimate hands on once fewer than 10 deals remain at risk, so it can be "
                    "wider than the dashed curves.",
                ),
                details(
                    "Funnel counting only the stages deals entered (skips strict)",
                    table(t["funnel_strict"]),
                ),
            ],
        ),
        (
            "key-stages",
            "Key stages",
            [
                "<p>A stage is key when its effect on winning is both statistically supported "
                "(Benjamini–Hochberg q-value within each signal) and large enough to matter.</p>",
                chart("key_stages"),
                details(
                    f"Key-stage table: every signal and stage with its reason ({len(ks)} rows)",
                    table(ks, _KEY_SHOWN, highlight=flagged, headers=_KEY_HEADERS),
                ),
            ],
        ),
        (
            "flow",
            "Flow",
            [
                chart("flow", "Where deals go from each stage, backward moves included."),
                chart("heatmap"),
                details("Transition table", table(t["transitions"])),
            ],
        ),
        (
            "dwell",
            "Time in stage",
            [
                chart("dwell"),
                chart("survival"),
                table(t["dwell"]),
                "<h3>Cycle time</h3><p class='muted'>First event to the first won or lost event; "
                "row <i>any</i>: time to any resolution, open deals censored (Kaplan–Meier).</p>",
                table(t["cycle_time"]),
            ],
        ),
    ]
    if "funnel_by" in t or "compare_by" in t:
        body = [chart("segments")]
        if "compare_by" in t:
            body += [
                "<h3>Each segment against the rest</h3>",
                "<p class='muted'>Two-sided tests: a segment that converts better or worse "
                "than the rest. The key-stage <i>dropoff</i> signal tests the same estimates "
                "one-sided (only a segment that loses more is a signal), so its p- and "
                "q-values for a segment that loses more are about half of these.</p>",
                _compare(t["compare_by"]),
            ]
        if "funnel_by" in t:
            body.append(details("Funnel per segment", table(t["funnel_by"])))
        sections.append(("segments", "Segments", body))
    if "compare_period" in t:
        title = f"Before and since {s['settings']['period']}"
        sections.append(("period", title, [_compare(t["compare_period"])]))
    if "trend" in t:
        body = [chart("trend"), details("Trend table", table(t["trend"], max_rows=500))]
        sections.append(("trend", "Trend", body))
    if "movement" in t:  # only with a field history (EventLog.with_history)
        body = [
            chart(
                "waterfall",
                "This quarter's pipeline (deals whose close date, as known at each moment, "
                "falls in the quarter): in by creation, pull-in or amount increase; out by "
                "win, loss, going stale, push-out or amount decrease. It reconciles exactly.",
            ),
            table(t["movement"]),
            chart(
                "slippage",
                "Close-date pushes by the stage the deal was in when it was pushed; lines: "
                "95% intervals.",
            ),
            details("Slippage per stage", table(t["slippage_by_stage"])),
        ]
        sections.append(("movement", "Pipeline movement", body))
    if "forecast_periods" in t:
        body = [
            chart(
                "forecast",
                "Wins per month: won so far, then the open deals, deals declared stale that "
                "come back and deals not created yet (an arrival model fitted to the log), "
                "with simulated 50, 80 and 95% intervals. The model's own estimation error "
                "is not in them.",
            ),
            details("Forecast per month", table(t["forecast_periods"])),
        ]
        sections.append(("forecast", "Forecast", body))
    sections.append(("quality", "Data quality", _quality(t, quality)))

    nav = "".join(f"<a href='#{a}'>{esc(title)}</a>" for a, title, _ in sections)
    main = "".join(
        f"<section id='{a}'><h2>{esc(title)}</h2>{''.join(body)}</section>"
        for a, title, body in sections
    )
    note_list = "".join(f"<li>{esc(n)}</li>" for n in notes)
    inferred = " (order inferred)" if s["stage_order_inferred"] else ""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>funnelkit report · {esc(when(s['as_of']))}</title>"
        f"<style>{CSS}{PAGE_CSS}</style></head>"
        "<body><div class='fk-report fk-page'><h1>Sales funnel report</h1>"
        f"<p class='muted'>{s['deals']:,} deals · {s['rows_used']:,} events used of "
        f"{s['rows_in']:,} rows · as of {esc(when(s['as_of']))} · stages "
        f"{esc(' → '.join(s['stages']))}{inferred}</p>"
        f"<nav>{nav}</nav>{main}"
        + (f"<h3>Notes</h3><ul>{note_list}</ul>" if notes else "")
        + _files(files)
        + f"<p class='muted'>Made by funnelkit {esc(__version__)}. Every number is defined "
        "in the funnelkit design notes.</p></div></body></html>\n"
    )


def not_settled(funnel: pd.DataFrame) -> pd.Series:
    """Per stage "Not settled yet: 31–87%" (the conversion's 95% interval, in whole
    percent) where the stage's unresolved share is at least 0.05%, else ''."""
    from .plot._style import unsettled

    if "unresolved" not in funnel.columns or not {"conversion_low", "conversion_high"} <= set(
        funnel.columns
    ):
        return pd.Series("", index=funnel.index, dtype=object)
    open_ = unsettled(funnel["unresolved"])
    text = [
        f"Not settled yet: {lo * 100:.0f}–{hi * 100:.0f}%"
        if o and not (missing(lo) or missing(hi))
        else ""
        for o, lo, hi in zip(
            open_, funnel["conversion_low"], funnel["conversion_high"], strict=True
        )
    ]
    return pd.Series(text, index=funnel.index, dtype=object)


def _funnel_table(funnel: pd.DataFrame, key: set[Any]) -> list[str]:
    """The page's funnel table: the unresolved share and the "not settled yet" range only
    when some stage has 0.05% or more unresolved (else they would be columns of zeros)."""
    shown = list(_FUNNEL_SHOWN)
    notes = not_settled(funnel)
    closed = (
        "<code>conversion_closed</code> is the ratio advanced ÷ (advanced + dropped): it "
        "leaves the open deals out"
    )
    if (notes != "").any():
        funnel = funnel.assign(not_settled=notes)
        body = [
            "<p class='muted'>Some of the probability is not resolved yet "
            "(<code>unresolved</code>: deals still open, or silent for less than the stale "
            "rule allows, or a curve's tail that rests on fewer than 10 deals). At those "
            "stages <code>conversion</code> is only what has happened so far: the answer "
            f"lies in the range given. {closed}, and runs high on a young pipeline.</p>"
        ]
    else:
        shown = [c for c in shown if c not in ("unresolved", "not_settled")]
        body = [f"<p class='muted'>Every stage has settled. {closed}.</p>"]
    highlight = funnel["stage"].isin(key)
    return [*body, table(funnel, shown, highlight=highlight, headers=_FUNNEL_HEADERS)]


def _no_visits(notes: Sequence[str]) -> str:
    """A warning on a log without stage visits ('' otherwise)."""
    if NO_VISITS not in notes:
        return ""
    return (
        "<ul class='warn'><li>No stage visits: every deal in this log has only won/lost "
        "events, so there is no funnel, key stage, flow or time in stage to show. Check the "
        "stage column and the won/lost names.</li></ul>"
    )


def _files(files: Mapping[str, Sequence[str]] | None) -> str:
    """The table files written beside the page, as links ('' before saving)."""
    if not files:
        return ""
    label = {"parquet": "Parquet", "csv": "CSV"}
    items = "".join(
        f"<li>{esc(name)}: "
        + ", ".join(
            f"<a href='tables/{esc(name)}.{esc(fmt)}'>{esc(label.get(fmt, fmt))}</a>"
            for fmt in fmts
        )
        + "</li>"
        for name, fmts in files.items()
    )
    return f"<h3>Table files</h3><ul>{items}</ul>"


def _compare(df: pd.DataFrame) -> str:
    """A comparison table (``log.compare``): its groups, then the columns a reader needs."""
    groups = list(df.columns[: list(df.columns).index("stage")]) if "stage" in df else []
    hl = df["differs"].astype(bool) if "differs" in df.columns else None
    return table(df, [*groups, *_COMPARE_SHOWN], highlight=hl, headers=_COMPARE_HEADERS)


def _quality(t: Mapping[str, pd.DataFrame], q: QualityReport) -> list[str]:
    body = [
        f"<p>{q.rows_in:,} input rows: {q.rows_used:,} used, {q.rows_dropped:,} dropped as bad "
        f"rows, {q.rows_removed:,} removed (reopened deals), {q.rows_collapsed:,} collapsed "
        "into an earlier event. Every row not used is counted below by reason.</p>",
        f"<p>{q.deals:,} deals: {q.won:,} won, {q.lost:,} lost, {q.stale:,} stale (no activity "
        f"for too long), {q.open:,} open; {q.reopened:,} reopened.</p>",
    ]
    if q.warnings:
        body.append(
            "<ul class='warn'>" + "".join(f"<li>{esc(w)}</li>" for w in q.warnings) + "</ul>"
        )
    if len(t["rejects"]):
        body += [
            "<h3>Rows not used, by reason</h3>",
            table(t["rejects"]),
            "<h3>Examples</h3>",
            table(t["reject_examples"]),
        ]
    else:
        body.append("<p>Every input row was used.</p>")
    body.append(details("Quality report table", table(t["quality"])))
    return body
