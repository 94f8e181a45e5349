"""The full report of an event log: every table and chart, computed once, saved many ways.

:func:`build_report` computes every table of the log (quality, rejects, funnel, flow,
dwell, cycle time, KPIs, key stages and, where the library offers them, comparisons and
trends) and draws every chart of :mod:`funnelkit.plot`; the :class:`Report` it returns
renders in Jupyter and :meth:`Report.save` writes, atomically:

* ``report.html`` — one self-contained page (charts embedded as PNG, no script, no
  external file or network access), every string from the data HTML-escaped;
* ``tables/<name>.parquet`` — every table — and ``tables/<name>.csv`` for the tables
  ``csv=`` asks for (default ``"small"``: all but the per-deal ``deals`` table, whose CSV is
  the slowest and largest file of a big report); columns as the library returns them except
  durations: a duration column ``x`` (timedelta in the library) is written as ``x_days``, a
  float number of days (``dwell_mean_days``, ``cycle_time_days``...), which every tool
  reads; in CSV, a time column whose values are all midnight is written as dates
  (``2024-01-01``), other times in ISO 8601 with their UTC offset; CSV text cells that a
  spreadsheet would run as a formula are neutralised;
* ``charts/<name>.png`` and ``charts/<name>.svg``;
* ``summary.json`` — the headline numbers and the key stages, for alerting, the executive
  summary's numbers (``headline``), the KPI cards' two windows (``windows``) and the first
  deals to act on (``act_on``).

The page is written in the report's language (``lang``: English or Simplified Chinese, the
strings from :mod:`funnelkit._i18n`): first an executive summary made from the numbers, KPI
cards with their change against the previous period, and the deals to act on; then each
analysis with its chart first and its tests and methods folded. It prints on A4 and Letter
and reflows on a phone.

A report caps what it draws (the segment chart: the :data:`SEGMENTS_DRAWN` largest
segments; the key-stage chart: :data:`KEY_ROWS_DRAWN` rows; page tables: their first
rows) and says so on the page and in ``summary.json`` (``limits``); the tables and files
always hold everything.

Data is untrusted input (DESIGN §6): stage names, deal ids, segment values and reasons
are escaped wherever they reach HTML, and never evaluated anywhere.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import io
import json
import os
import re
import secrets
import shutil
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import _report_html as H
from . import _report_insights as I
from ._facade import is_log
from ._i18n import LANGS, load
from ._params import PROGRESS, Options, validate_params
from ._report_html import NO_VISITS, missing, number
from ._segments import normalize_by
from ._version import __version__
from .errors import InvalidParameterError
from .quality import REASONS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .forecast import Forecast
    from .log import EventLog
    from .quality import QualityReport

__all__ = [
    "CHART_NAMES",
    "CSV_CHOICES",
    "PER_DEAL_TABLES",
    "TABLE_NAMES",
    "Report",
    "build_report",
    "neutralise_csv",
]

#: every table a report may hold, in file and page order (``funnel_by``, ``compare_by``:
#: with ``by``; ``compare_period``: with ``period``; ``compare_*`` and ``trend``: when the
#: installed funnelkit has ``EventLog.compare`` / ``EventLog.trend``; ``movement`` and
#: ``slippage_by_stage``: when the log has a field history, ``EventLog.with_history``)
TABLE_NAMES = (
    "kpis",
    "kpis_by_period",
    "act_on",
    "funnel",
    "funnel_strict",
    "key_stages",
    "transitions",
    "dwell",
    "cycle_time",
    "funnel_by",
    "compare_by",
    "compare_period",
    "trend",
    "movement",
    "slippage_by_stage",
    "forecast_periods",
    "deals",
    "quality",
    "rejects",
    "reject_examples",
)
#: every chart a report may hold, in page order
CHART_NAMES = (
    "funnel",
    "incidence",
    "key_stages",
    "flow",
    "heatmap",
    "dwell",
    "survival",
    "segments",
    "trend",
    "waterfall",
    "slippage",
    "forecast",
)
#: the tables with one row per deal: Parquet only under ``csv="small"``
PER_DEAL_TABLES = ("deals",)
#: ``Report.save(csv=...)``: CSV of every table but the per-deal ones, of all, of none
CSV_CHOICES = ("small", "all", "none")
#: segments the report's segment chart draws (the largest; ``plot.segments(top=)``)
SEGMENTS_DRAWN = 12  # the palette's distinct colours (fk.plot.segments' default top)
#: rows the report's key-stage chart draws (``plot.key_stages(max_rows=)``)
KEY_ROWS_DRAWN = 60
#: stages the report's incidence chart draws, one panel each (see :func:`headline_stages`)
INCIDENCE_DRAWN = 3
#: PNG resolution (dots per inch) of the charts, in the files and in the page
DPI = 110
#: deals to act on listed in ``summary.json`` (all are in ``tables/act_on.*``)
ACT_ON_JSON = 100
#: example rows per reject reason in ``reject_examples``
EXAMPLES_PER_REASON = 3
#: first characters that make a spreadsheet read a cell as a formula (OWASP: ``=``, ``+``,
#: ``-``, ``@``, and tab / carriage return, which some spreadsheets strip first)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_REASON_TEXT = {
    "invalid_deal": "deal id not a single value (list, dict, ...)",
    "missing_deal": "no deal id",
    "invalid_stage": "stage not valid text",
    "missing_stage": "no stage",
    "missing_time": "no timestamp",
    "unparseable_time": "timestamp not a date",
    "mixed_timezone": "naive timestamp in a time-zone-aware log",
    "unknown_stage": "stage not among the declared stages or outcomes",
    "time_out_of_range": "timestamp over 146 years from the log's median time",
    "after_as_of": "event after the observation time",
    "invalid_amount": "amount not a finite number >= 0",
    "conflicting_outcome": "deal ends in both a won and a lost stage",
    "no_dates": "deal with no date for any stage (wide export)",
    "reopened_terminal": "won/lost event followed by more stages (deal reopened)",
    "repeat": "stage logged again in a row (one visit)",
    "terminal_run": "further won/lost events of the same outcome",
    "post_sale": "after-sale event of a won deal (post-sale stage), kept out of the funnel",
    "post_sale_not_won": "post-sale stage while the deal was not won",
}

Progress = Callable[[str], None]


# ============================================================================ building
def build_report(
    log: EventLog,
    *,
    by: str | Sequence[str] | None = None,
    freq: str | None = None,
    period: Any = None,
    key_kwargs: Mapping[str, Any] | None = None,
    within: Any = None,
    charts: bool = True,
    progress: bool | Progress | None = None,
    lang: str = "en",
    currency: str | None = None,
    cold_after: Any = None,
) -> Report:
    """Compute every table and chart of an event log once, into a :class:`Report`.

    Parameters
    ----------
    log : EventLog
        The event log.
    by : str or list of str, optional
        Carried attribute(s) (team, owner, region...) to compare segments by: the
        segment funnel (``funnel_by``) and its chart, the ``heterogeneity`` and
        segment-vs-rest ``dropoff`` and ``dwell`` key-stage signals, and ``compare_by``
        when the library has ``EventLog.compare``.
    freq : str, optional
        Cohort period of the ``trend`` table and chart (pandas offset alias: ``"ME"``,
        ``"QE"``, ``"YE"``...), when the library has ``EventLog.trend``. Default ``"QE"``.
    period : str or datetime, optional
        A date splitting deals by creation into before and since: the ``change`` and
        ``dwell`` key-stage signals, and ``compare_period`` when the library has
        ``EventLog.compare``.
    key_kwargs : dict, optional
        More keywords of :meth:`EventLog.key_stages` (``alpha``, ``n_boot``,
        ``benchmark``, ``min_deals``...); they override ``by`` and ``period`` there.
    within : str or dict, optional
        Conversion window of the funnel tables (:meth:`EventLog.funnel`'s ``within``).
    charts : bool, default=True
        Draw the charts (matplotlib). ``False`` keeps a tables-only report and never
        imports matplotlib.
    progress : bool or callable, optional
        Report the long steps: ``True`` prints them to stderr; a callable is called with
        each step's name (``"tables…"``, ``"key stages…"``, ``"charts…"``).
    lang : {"en", "zh"}, default="en"
        Language of the page and the charts' texts (English, Simplified Chinese); the
        tables and ``summary.json`` are the same in every language.
    currency : str, optional
        The amounts' currency on the page: a symbol (``"$"``, ``"€"``, ``"¥"``) written
        before the number or a code (``"EUR"``) written after it. Default: none shown.
    cold_after : str or timedelta, optional
        "Going cold" in the deals to act on: an open deal with no event for this long.
        Default: half of the log's ``stale_after``, else 30 days.

    Returns
    -------
    Report
        Holds ``tables`` (name → DataFrame, see :data:`TABLE_NAMES`), ``charts`` (name →
        matplotlib Figure, see :data:`CHART_NAMES`), ``summary`` (the headline numbers)
        and ``notes`` (what was left out and why).

    Raises
    ------
    EventLogError
        An unknown ``by`` attribute or an unusable ``period`` (from the analyses).

    Examples
    --------
    >>> import funnelkit as fk
    >>> from funnelkit.report import build_report
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> report = build_report(log, by="team", charts=False)
    >>> report.tables["funnel"].equals(log.funnel())
    True
    >>> report.summary["deals"], report.summary["won"]
    (600, 60)
    >>> [k["stage"] for k in report.summary["key_stages"]][:2]
    ['Demo', 'Proposal']
    """
    if lang not in LANGS:
        raise InvalidParameterError(f"`lang` must be one of {list(LANGS)}; got {lang!r}.")
    if currency is not None and (not isinstance(currency, str) or not 0 < len(currency) <= 8):
        raise InvalidParameterError(
            f"`currency` must be a short text such as '$' or 'EUR'; got {currency!r}."
        )
    say = _progress(progress)
    by_cols = normalize_by(by)
    freq = "QE" if freq is None else freq
    notes: list[str] = []
    tables: dict[str, pd.DataFrame] = {}

    say("tables…")
    win: dict[str, Any] = {} if within is None else {"within": within}
    tables["kpis"] = log.kpis()
    tables["funnel"] = log.funnel(**win)
    tables["funnel_strict"] = log.funnel(skips="strict", **win)
    # the forecast per month and the tables that need neither the key stages nor the
    # notes read only the log: on a second thread they run beside the key stages (numpy's
    # sorts and array passes release the GIL; at 1M deals each side takes 10-15 s). The
    # tables keep their order, the forecast's notes their place. One core, or a
    # distributed log (the forecast is not distributed): in turn, as before.
    fc_notes: list[str] = []
    later = side_job = None
    beside = _Beside()
    if is_log(log) and _usable_cores() > 1:
        # what both threads read lazily — the log's labels and visits, the analyses'
        # modules — filled and imported before they start (an import interrupted by
        # Ctrl-C on one thread can leave its module locked for the other)
        log._visits()
        log._deal_labels  # noqa: B018
        for module in _BESIDE_MODULES:
            importlib.import_module(module)
        later = beside.submit(_month_forecast, log, fc_notes)
        side_job = beside.submit(_side_tables, log, by_cols, period, freq, lambda _: None)
        beside.start()
    try:
        say("key stages…")
        kw: dict[str, Any] = {"by": by_cols or None, "period": period, **dict(key_kwargs or {})}
        tables["key_stages"] = log.key_stages(**kw)
        # the incidence chart's curves now, thinned, while few tables are held: a curve has a
        # row per deal that reached its stage (at 1M deals, computing one added ~550 MiB)
        curves = _headline_curves(log, tables["funnel"], tables["key_stages"]) if charts else {}
        if side_job is None:
            side = _side_tables(log, by_cols, period, freq, say)
        else:
            for step in _side_steps(log, by_cols, period):
                say(step)
        # the key stages estimated the segments' conversions: this reads them back
        funnel_by = log.funnel(by=by_cols, **win) if by_cols else None
        if side_job is not None:
            side = side_job.result()
        for name in ("transitions", "dwell", "cycle_time"):
            tables[name] = side[name]
        if funnel_by is not None:
            tables["funnel_by"] = funnel_by
        for name in ("compare_by", "compare_period", "trend"):
            if name in side:
                tables[name] = side[name]
        if getattr(log, "_history", None) is not None:  # a field history: this quarter
            say("pipeline movement…")
            tables.update(_history_tables(log, notes))
        tables["deals"] = side["deals"]
        tables["kpis_by_period"] = I.kpis_by_period(log, tables["deals"], freq)
        key_names = [
            str(x)
            for x in tables["key_stages"]
            .loc[tables["key_stages"]["is_key"].astype(bool), "stage"]
            .unique()
        ]
        tables["act_on"] = I.act_on(
            log, tables["deals"], tables["dwell"], key_names, cold_after=cold_after, by=by_cols
        )
        windows = I.compare_windows(log, tables["deals"], tables["kpis_by_period"], period)
        tables["quality"] = log.quality.to_frame()
        tables["rejects"] = _rejects_summary(log.quality)
        tables["reject_examples"] = _reject_examples(_local(log.rejects))

        if not tables["dwell"]["visits"].sum():  # only won/lost events: say so on the page
            notes.append(NO_VISITS)
        say("forecast…")
        fc = _month_forecast(log, fc_notes) if later is None else later.result()
    except BaseException:
        # an error (or Ctrl-C) here comes back at once: the work not started is dropped,
        # the running job (which cannot be stopped) finishes on its daemon thread without
        # holding the caller, nor the interpreter's exit
        beside.cancel()
        raise
    notes.extend(fc_notes)
    if fc is not None and fc.periods is not None:
        tables["forecast_periods"] = fc.periods
    figures: dict[str, Figure] = {}
    if charts:
        say("charts…")
        figures = _draw_charts(log, tables, notes, curves, fc)
        if lang != "en":
            L = load(lang)
            ks = tables["key_stages"]
            reasons = {str(r.reason): H.reason(L, r, currency) for r in ks.itertuples()}
            for fig in figures.values():
                H.translate_figure(fig, lang, reasons)
            if len(H.chart_fonts()) < 2:
                notes.append(
                    "charts: no CJK font found (install Noto Sans CJK, e.g. Debian's "
                    "fonts-noto-cjk); Chinese glyphs in the charts cannot be drawn"
                )
    else:
        notes.append("charts: not drawn (charts=False; --charts none)")
    settings = {
        "by": by_cols or None,
        "freq": freq if "trend" in tables else None,
        "period": None if period is None else str(period),
        "lang": lang,
        "currency": currency,
    }
    min_deals = kw.get("min_deals", _default(log.key_stages, "min_deals"))
    limits = _limits(tables, by_cols, figures, min_deals, notes)
    summary = _summary(log, tables, settings)
    summary["windows"] = _jsonable_windows(windows)
    summary["headline"] = I.headline(tables, summary, windows)
    summary["act_on"] = _records(tables["act_on"].head(ACT_ON_JSON))
    return Report(
        tables=tables,
        charts=figures,
        summary={**summary, "limits": limits},
        notes=notes,
        quality=log.quality,
    )


def _local(frame: Any) -> pd.DataFrame:
    """A pandas frame: a distributed log's lazy frame (its ``deals()``, ``rejects``,
    ``visits()``) computed."""
    return frame.compute() if hasattr(frame, "compute") else frame


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: times in ISO 8601, missing values None."""
    out = []
    for row in df.to_dict(orient="records"):
        out.append({str(k): _plain(v) for k, v in row.items()})
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return None if missing(v) else pd.Timestamp(v).isoformat()
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return number(v)
    return None if missing(v) else str(v)


def _jsonable_windows(w: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The KPI cards' two windows for ``summary.json``."""
    if w is None:
        return None
    return {
        "kind": w["kind"],
        **{part: {k: _plain(v) for k, v in w[part].items()} for part in ("current", "previous")},
    }


def _history_tables(log: EventLog, notes: list[str]) -> dict[str, pd.DataFrame]:
    """With a field history: the waterfall of the pipeline closing in the calendar quarter
    of ``as_of`` (UTC), from the quarter's start to ``as_of`` (the previous quarter when
    ``as_of`` is its first instant), and close-date slippage per stage."""
    as_of = pd.Timestamp(log.as_of)
    naive = as_of.tz_convert("UTC").tz_localize(None) if as_of.tz is not None else as_of
    q = naive.to_period("Q")
    if not q.start_time < naive:
        q = q - 1
    first, last = q.start_time, q.end_time.normalize()
    start = first.tz_localize("UTC") if as_of.tz is not None else first
    notes.append(
        f"pipeline movement: deals closing in {q} ({first:%Y-%m-%d} … {last:%Y-%m-%d}), from "
        f"{first:%Y-%m-%d} to as_of; close dates and amounts as known at each moment"
    )
    return {
        "movement": log.movement(start, log.as_of, closing=(first, last)),
        "slippage_by_stage": log.slippage(by="stage"),
    }


def _default(func: Callable[..., Any], name: str) -> Any:
    return inspect.signature(func).parameters[name].default


def _limits(
    tables: dict[str, pd.DataFrame],
    by_cols: list[str],
    figures: Mapping[str, Any],
    min_deals: Any,
    notes: list[str],
) -> dict[str, Any]:
    """The caps the report applied (for ``summary.json``), each also said in ``notes``."""
    limits: dict[str, Any] = {"page_table_rows": H.TABLE_ROWS}
    shown = {n: 500 if n == "trend" else H.TABLE_ROWS for n in tables if n not in ("deals",)}
    long = [n for n, cap in shown.items() if len(tables[n]) > cap]
    if long:
        notes.append(
            f"page tables show their first {H.TABLE_ROWS:,} rows ({', '.join(long)} have "
            "more); every row is in the table files"
        )
    if "funnel_by" in tables:
        n_seg = len(tables["funnel_by"][by_cols].drop_duplicates())
        ks = tables["key_stages"]
        seg_rows = ks.loc[(ks["signal"] == "dropoff") & ks["segment"].notna()]
        tested = int(seg_rows.loc[seg_rows["test"] != "none", "segment"].nunique())
        limits["segment_tests"] = {"segments": n_seg, "tested": tested, "min_deals": min_deals}
        if tested < n_seg:
            notes.append(
                f"key stages: {tested:,} of {n_seg:,} segments had at least "
                f"min_deals={min_deals} resolved deals in both groups at some stage and were "
                "tested against the other deals; the others are listed as not tested"
            )
        if "segments" in figures:
            drawn = min(n_seg, SEGMENTS_DRAWN)
            limits["segments_chart"] = {"segments": n_seg, "drawn": drawn}
            if drawn < n_seg:
                notes.append(
                    f"segment chart: the {drawn} largest of {n_seg:,} segments are drawn; "
                    "every segment is in the funnel_by and compare_by tables"
                )
    if "incidence" in figures:
        heads = headline_stages(tables["funnel"], tables["key_stages"])
        limits["incidence_chart"] = {"stages": heads}
    if "key_stages" in figures:
        from .plot._keystages import ROWS_DRAWN

        rows = len(tables["key_stages"])
        # what the chart drew of the rows it could draw (rows of a signal that was not
        # tested become one note on the chart); it leaves out rows that do not fit
        drawn, drawable = min(rows, KEY_ROWS_DRAWN), rows
        for ax in figures["key_stages"].axes:
            if ax in ROWS_DRAWN:
                drawn, drawable = ROWS_DRAWN[ax]
        limits["key_stages_chart"] = {"rows": rows, "drawn": drawn}
        if drawn < drawable:
            notes.append(
                f"key-stage chart: {drawn} of {drawable:,} rows are drawn (flagged rows "
                "first, then rows not about one segment); every row is in the key_stages "
                "table"
            )
    return limits


def _progress(progress: bool | Progress | None) -> Progress:
    if callable(progress):
        return progress
    if progress:
        return lambda step: print(f"funnelkit: {step}", file=sys.stderr, flush=True)
    return lambda step: None


def _rejects_summary(q: QualityReport) -> pd.DataFrame:
    """Rows not used, per reason (reasons in the order of ``funnelkit.quality.REASONS``)."""
    reasons = [r for r in REASONS if q.by_reason.get(r)]
    return pd.DataFrame(
        {
            "reason": pd.Series(reasons, dtype=object),
            "treatment": pd.Series([REASONS[r] for r in reasons], dtype=object),
            "rows": pd.Series([q.by_reason[r] for r in reasons], dtype=np.int64),
            "description": pd.Series([_REASON_TEXT.get(r, "") for r in reasons], dtype=object),
        }
    )


def _reject_examples(rejects: pd.DataFrame) -> pd.DataFrame:
    """The first few rejected rows per reason; input columns as text (they may mix types),
    a lone surrogate (a row rejected for it) escaped as ``\\ud800`` so the table can be
    written."""
    # the first rows of each reason by input row (a distributed log's come in partition
    # order)
    rejects = rejects.sort_values("row", kind="stable")
    ex = rejects.groupby("reason", sort=False).head(EXAMPLES_PER_REASON)
    order = {r: i for i, r in enumerate(REASONS)}
    ex = ex.assign(_o=ex["reason"].map(order)).sort_values(["_o", "row"], kind="stable")
    ex = ex.drop(columns="_o").reset_index(drop=True)
    for col in ex.columns:
        if col not in ("row", "reason"):
            ex[col] = pd.Series(
                [None if missing(v) else _writable(str(v)) for v in ex[col]],
                dtype=object,
                index=ex.index,
            )
    ex["reason"] = ex["reason"].astype(object)
    return ex


def _writable(text: str) -> str:
    """``text`` with lone surrogates escaped (``"\\ud800"``): UTF-8 cannot hold them."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _draw_charts(
    log: EventLog,
    tables: dict[str, pd.DataFrame],
    notes: list[str],
    curves: dict[str, pd.DataFrame],
    fc: Forecast | None = None,
) -> dict[str, Figure]:
    import matplotlib.pyplot as plt

    from . import plot

    # no deal ids: 40% of it (a distributed log's visits come to the client for the two
    # charts of their distribution: 10 bytes each)
    visits = _local(log.visits(columns=["stage", "dwell", "censored"]))
    won, lost = list(log.won), list(log.lost)
    ks = tables["key_stages"]
    draw: dict[str, Callable[[], Any]] = {
        "funnel": lambda: plot.funnel(tables["funnel"], key=ks),
        "key_stages": lambda: plot.key_stages(ks, max_rows=KEY_ROWS_DRAWN),
        # from the log: its nodes count visits (open ones too), as fk.plot.flow(log) does;
        # a distributed log's from its transition table (nodes sized by the moves)
        "flow": (
            (lambda: plot.flow(log))
            if is_log(log)
            else (lambda: plot.flow(tables["transitions"], won=won, lost=lost))
        ),
        "heatmap": lambda: plot.heatmap(tables["transitions"], won=won, lost=lost),
        "dwell": lambda: plot.dwell(visits),
        "survival": lambda: plot.survival(visits),
    }
    if curves:
        draw["incidence"] = lambda: _incidence_panels(curves, tables["funnel"])
    elif not tables["funnel"].empty:
        notes.append("chart `incidence` not drawn: no stage has a conversion yet")
    if "funnel_by" in tables:
        draw["segments"] = lambda: plot.segments(tables["funnel_by"], top=SEGMENTS_DRAWN)
    if "trend" in tables:
        t = tables["trend"]
        if "period_end" in t.columns:  # monitoring labels periods ("2025Q1"); the chart
            # names periods by their last day (end excluded → the day before)
            t = t.assign(period=(t["period_end"] - pd.Timedelta(1, "ns")).dt.normalize())
        draw["trend"] = lambda: plot.trend(t)
    if "movement" in tables:
        draw["waterfall"] = lambda: plot.waterfall(tables["movement"])
        draw["slippage"] = lambda: plot.slippage(tables["slippage_by_stage"], "stage")
    if fc is not None:
        draw["forecast"] = lambda: plot.forecast(fc)
    figures: dict[str, Figure] = {}
    for name in sorted(draw, key=CHART_NAMES.index):  # page order
        fn = draw[name]
        before = set(plt.get_fignums())
        try:
            drawn = fn()
        except ValueError as exc:  # nothing to draw (e.g. a stage-less log): say so
            notes.append(f"chart `{name}` not drawn: {exc}")
            for num in set(plt.get_fignums()) - before:
                plt.close(num)
            continue
        fig = drawn if hasattr(drawn, "savefig") else drawn.figure
        plt.close(fig)  # held by the report, not by pyplot (no duplicate display in Jupyter)
        figures[name] = fig
    return figures


#: the modules the report's two threads import: imported before the second one starts
_BESIDE_MODULES = (
    "scipy.sparse",
    "scipy.stats",
    "funnelkit.forecast",
    "funnelkit._period_forecast",
    "funnelkit.keystages",
    "funnelkit.monitoring",
    "funnelkit.transitions",
    "funnelkit.dwell",
)


class _Beside:
    """Jobs run in order on one daemon thread, each with its
    :class:`concurrent.futures.Future`. A daemon thread, not an executor's: after an
    error or a Ctrl-C on the main thread the caller gets it at once, and the interpreter
    does not wait at exit for a job that cannot be stopped."""

    def __init__(self) -> None:
        self._jobs: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        self._jobs.append((fut, fn, args))
        return fut

    def start(self) -> None:
        threading.Thread(target=self._run, name="funnelkit-report", daemon=True).start()

    def cancel(self) -> None:
        for fut, _, _ in self._jobs:
            fut.cancel()  # the running one is not cancelled: it finishes, unread

    def _run(self) -> None:
        for fut, fn, args in self._jobs:
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # handed to the caller by result()
                fut.set_exception(exc)


def _side_steps(log: EventLog, by_cols: list[str], period: Any) -> list[str]:
    """The progress steps of :func:`_side_tables`, in order."""
    steps = ["flow and dwell…"]
    if getattr(log, "compare", None) is not None and (by_cols or period is not None):
        steps.append("comparisons…")
    if getattr(log, "trend", None) is not None:
        steps.append("trend…")
    return steps


def _side_tables(
    log: EventLog, by_cols: list[str], period: Any, freq: str, say: Callable[[str], None]
) -> dict[str, pd.DataFrame]:
    """The report's tables that need neither the key stages nor the page's notes —
    transitions, dwell, cycle time, the comparisons, the trend and the per-deal table —
    saying each step (:func:`_side_steps`) as it starts."""
    steps = _side_steps(log, by_cols, period)
    say("flow and dwell…")
    out = {"transitions": log.transitions(), "dwell": log.dwell(), "cycle_time": log.cycle_time()}
    if "comparisons…" in steps:
        say("comparisons…")
        if by_cols:
            out["compare_by"] = log.compare(by=by_cols)
        if period is not None:
            out["compare_period"] = log.compare(period=period)
    if "trend…" in steps:
        say("trend…")
        out["trend"] = log.trend(freq=freq)
    out["deals"] = _local(log.deals())
    return out


def _usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, e.g. a
    container limited to one core), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _month_forecast(log: EventLog, notes: list[str]) -> Forecast | None:
    """Wins per month for this month and the next two (``EventLog.forecast`` with
    ``by_period="ME"``), or None with a note saying why not."""
    from .errors import EventLogError

    if log.quality.open == 0:
        notes.append("forecast per month: not computed (no open deal)")
        return None
    try:
        return log.forecast(by_period="ME", periods=3, n_sims=1000, n_boot=0)
    except (EventLogError, InvalidParameterError) as exc:
        notes.append(f"forecast per month: not computed ({exc})")
        return None
    except NotImplementedError:  # a distributed log
        notes.append(
            "forecast per month: not computed (the forecast is not distributed: "
            "log.compute().forecast(...) on a log that fits in memory)"
        )
        return None


def headline_stages(funnel: pd.DataFrame, key_stages: pd.DataFrame) -> list[str]:
    """The stages the report's incidence chart draws, in funnel order: the key stages
    (flagged rows of the key-stage table), else the stage with the lowest conversion; at
    most :data:`INCIDENCE_DRAWN`.

    Parameters
    ----------
    funnel : pandas.DataFrame
        ``log.funnel()``.
    key_stages : pandas.DataFrame
        ``log.key_stages()``.

    Returns
    -------
    list of str
        Empty when the funnel has no stage with a conversion.

    Examples
    --------
    >>> import funnelkit as fk
    >>> from funnelkit.report import headline_stages
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> headline_stages(log.funnel(), log.key_stages(n_boot=50))
    ['Demo', 'Proposal']
    """
    stages = [str(s) for s in funnel["stage"]]
    flagged = {str(s) for s in key_stages.loc[key_stages["is_key"].astype(bool), "stage"]}
    heads = [s for s in stages if s in flagged]
    if not heads:
        conv = funnel["conversion"].astype(float)
        if conv.notna().any():
            heads = [stages[int(np.nanargmin(conv.to_numpy()))]]
    return heads[:INCIDENCE_DRAWN]


def _headline_curves(
    log: EventLog, funnel: pd.DataFrame, key_stages: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """The incidence curves of the :func:`headline_stages`, thinned as
    :func:`funnelkit.plot.incidence` draws them; computed one stage at a time (a curve has
    a row per deal that reached the stage)."""
    from .plot._incidence import curve_rows

    return {s: curve_rows(log.incidence(s)) for s in headline_stages(funnel, key_stages)}


def _incidence_panels(curves: Mapping[str, pd.DataFrame], funnel: pd.DataFrame) -> Figure:
    """The incidence chart of the ``curves`` (stage → ``log.incidence(stage)``), one panel
    each, the legend on the first; at the right edge of each, the funnel's conversion with
    its 95% interval (gid ``"incidence-funnel-ci"``), which also spans the unresolved
    share."""
    import matplotlib.pyplot as plt

    from . import plot
    from .plot import _style as S

    row = funnel.set_index("stage")
    stages = list(curves)
    fig, axes = plt.subplots(
        len(stages), 1, figsize=(8.0, 0.3 + 3.5 * len(stages)), layout="constrained", squeeze=False
    )
    for i, (stage, ax) in enumerate(zip(stages, axes[:, 0], strict=True)):
        plot.incidence(curves[stage], stage, ax=ax)
        conv, low, high = (float(row.loc[stage, c]) for c in _CONV)
        if np.isfinite(conv) and np.isfinite(low) and np.isfinite(high):
            ax.errorbar(
                [ax.get_xlim()[1]],
                [conv],
                yerr=[[max(conv - low, 0.0)], [max(high - conv, 0.0)]],
                fmt="D",
                ms=5,
                color=S.TEXT,
                elinewidth=2.2,
                capsize=5,
                capthick=2.2,
                clip_on=False,
                zorder=5,
                gid="incidence-funnel-ci",
                label="funnel: conversion, 95% interval",
            )
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
        if i == 0:
            ax.legend(
                loc="center left",
                bbox_to_anchor=(1.03, 0.5),
                frameon=False,
                fontsize=S.TICK_SIZE,
            )
    return fig


_CONV = ("conversion", "conversion_low", "conversion_high")


#: the columns of a funnel row in ``summary.json`` (``summary["funnel"]``)
SUMMARY_FUNNEL = (
    "reached",
    "advanced",
    "dropped",
    "open",
    "conversion",
    "conversion_low",
    "conversion_high",
    "unresolved",
    "conversion_closed",
    "conversion_closed_low",
    "conversion_closed_high",
    "win_rate_from",
)


_COUNTS = ("reached", "advanced", "dropped", "open")


def _funnel_rows(funnel: pd.DataFrame) -> list[dict[str, Any]]:
    """One dict per funnel stage for ``summary.json``, with ``settled`` (unresolved below
    :data:`funnelkit.plot._style.UNRESOLVED_MIN`)."""
    from .plot._style import unsettled

    cols = [c for c in SUMMARY_FUNNEL if c in funnel.columns]
    open_ = unsettled(funnel["unresolved"]) if "unresolved" in funnel.columns else None
    rows = []
    for i, r in enumerate(funnel[["stage", *cols]].itertuples(index=False)):
        row: dict[str, Any] = {"stage": str(r[0])}
        for c, v in zip(cols, r[1:], strict=True):
            x = number(v)
            row[c] = int(x) if x is not None and c in _COUNTS and x.is_integer() else x
        if open_ is not None:  # no conversion (nothing resolved): nothing is settled
            row["settled"] = None if row.get("conversion") is None else not bool(open_[i])
        rows.append(row)
    return rows


def _summary(
    log: EventLog, tables: dict[str, pd.DataFrame], settings: dict[str, Any]
) -> dict[str, Any]:
    q = log.quality
    k = tables["kpis"].iloc[0]
    ks = tables["key_stages"]
    key = ks.loc[ks["is_key"].astype(bool)]
    key_rows = []
    for r in key.itertuples(index=False):
        row = {
            "stage": str(r.stage),
            "signal": str(r.signal),
            "effect": number(r.effect),
            "q_value": number(r.q_value),
            "reason": str(r.reason),
        }
        seg = getattr(r, "segment", None)
        if not missing(seg):
            row["segment"] = str(seg)
        key_rows.append(row)
    return {
        "funnelkit_version": __version__,
        "as_of": pd.Timestamp(log.as_of).isoformat(),
        "deals": int(k["deals"]),
        "won": int(k["won"]),
        "lost": int(k["lost"]),
        "stale": int(k["stale"]),
        "open": int(k["open"]),
        "win_rate": number(k["win_rate"]),
        "avg_won_amount": number(k["avg_won_amount"]),
        "median_won_cycle_time_days": (
            None
            if missing(k["median_won_cycle_time"])
            else pd.Timedelta(k["median_won_cycle_time"]).total_seconds() / 86_400
        ),
        "pipeline_velocity": number(k["pipeline_velocity"]),
        "rows_in": q.rows_in,
        "rows_used": q.rows_used,
        "rows_rejected": q.rows_rejected,
        "rows_by_reason": dict(q.by_reason),
        "stages": [str(s) for s in log.stages],
        "stage_order_inferred": q.stage_order_inferred,
        "settings": settings,
        "funnel": _funnel_rows(tables["funnel"]),
        "key_stages": key_rows,
        "warnings": list(q.warnings),
    }


# ============================================================================ the report
class Report:
    """Every table and chart of an event log, computed once by :func:`build_report`.

    Renders in Jupyter (a compact view: headline numbers, key stages, the funnel) and
    writes the full report with :meth:`save`; neither recomputes anything.

    Attributes
    ----------
    tables : dict of str to pandas.DataFrame
        The tables, by name (see :data:`TABLE_NAMES`): the library's own results
        (``kpis``, ``funnel``, ``funnel_strict``, ``key_stages``, ``transitions``,
        ``dwell``, ``cycle_time``, ``funnel_by``, ``compare_by``, ``compare_period``,
        ``trend``, ``deals``, ``quality`` = ``log.quality.to_frame()``), plus
        ``kpis_by_period`` — per calendar period (``freq``, UTC): ``period``,
        ``period_start``, ``period_end``, ``complete``, ``created``, ``won``, ``lost``,
        ``stale`` (deals resolved in the period; a stale deal at its last event +
        ``stale_after``), ``win_rate``, ``won_amount``, ``avg_won_amount``,
        ``median_won_cycle_time_days`` —, ``act_on`` — the open deals to act on, largest
        amount first: ``deal``, ``owner`` and the ``by`` attributes when carried,
        ``stage``, ``entered``, ``days_in_stage``, ``stage_p90_days``,
        ``days_since_last_event``, ``amount``, the flags ``stalled`` (longer in the stage
        than its p90 dwell), ``key_stage``, ``going_cold`` (no event for ``cold_after``),
        ``large`` (top 10% of open amounts) and ``reasons`` (the flags, ``;``-joined) —,
        ``rejects`` — rows not used per reason: ``reason``, ``treatment`` (dropped,
        removed or collapsed), ``rows``, ``description`` — and ``reject_examples`` — the
        first few rows of ``log.rejects`` per reason, input columns as text.
    charts : dict of str to matplotlib.figure.Figure
        The charts, by name (see :data:`CHART_NAMES`); empty with ``charts=False``.
    summary : dict
        The headline numbers, as written to ``summary.json``: ``deals``, ``won``,
        ``lost``, ``stale``, ``open``, ``win_rate``, ``avg_won_amount``,
        ``median_won_cycle_time_days``, ``pipeline_velocity``, ``as_of``, ``rows_in``,
        ``rows_used``, ``rows_rejected``, ``rows_by_reason``, ``stages``, ``settings``,
        ``warnings``, ``funnel`` (one dict per stage of ``log.funnel()``: ``stage``,
        ``reached``, ``advanced``, ``dropped``, ``open``, ``conversion`` with
        ``conversion_low`` / ``conversion_high``, ``unresolved`` — the share not resolved
        yet —, ``conversion_closed`` with ``conversion_closed_low`` /
        ``conversion_closed_high`` — the old ratio advanced / (advanced + dropped) —,
        ``win_rate_from``, and ``settled``: ``unresolved`` below 0.05% — where it is
        ``false``, read the interval, not ``conversion``; ``null`` with no conversion),
        ``key_stages`` (the flagged rows: ``stage``, ``signal``, ``effect``,
        ``q_value``, ``reason``, and ``segment`` when there is one) and ``limits`` (what
        the report capped: ``page_table_rows``, ``segment_tests``, ``segments_chart``,
        ``key_stages_chart``, ``incidence_chart`` — its ``stages``), ``headline`` (the
        executive summary as data: one dict per sentence with its ``kind`` —
        ``lost_most``, ``change``, ``act``, ``act_on``, ``quality`` —, the page
        ``section`` its numbers link to, and the numbers), ``windows`` (the KPI cards'
        ``current`` and ``previous`` windows with their KPIs, or ``None``) and ``act_on``
        (the first :data:`ACT_ON_JSON` rows of the ``act_on`` table). Missing numbers
        are ``None``.
    notes : list of str
        What the report left out and why (e.g. a chart with nothing to draw; first of
        all ``funnelkit._report_html.NO_VISITS`` when the log holds only won/lost events,
        which the page then shows in its headline).

    Examples
    --------
    >>> import funnelkit as fk
    >>> from funnelkit.report import build_report
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> report = build_report(log, charts=False)
    >>> report.summary["deals"], report.summary["won"]
    (600, 60)
    >>> report.tables["kpis"].equals(log.kpis()), report.charts
    (True, {})
    >>> report.notes
    ['charts: not drawn (charts=False; --charts none)']
    """

    def __init__(
        self,
        *,
        tables: dict[str, pd.DataFrame],
        charts: dict[str, Figure],
        summary: dict[str, Any],
        notes: list[str],
        quality: QualityReport,
    ) -> None:
        self.tables = tables
        self.charts = charts
        self.summary = summary
        self.notes = notes
        self._quality = quality
        self._lang = str((summary.get("settings") or {}).get("lang") or "en")
        self._rendered: dict[tuple[str, str], bytes] = {}

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<funnelkit Report: {s['deals']:,} deals as of {s['as_of']}; "
            f"{len(self.tables)} tables, {len(self.charts)} charts, "
            f"{len(s['key_stages'])} key-stage flags>"
        )

    # ------------------------------------------------------------------ rendering
    @validate_params({"name": [str], "fmt": [Options(str, ("png", "svg"))]})
    def chart_bytes(self, name: str, fmt: str = "png") -> bytes:
        """One chart as PNG or SVG bytes (rendered once, then cached).

        Parameters
        ----------
        name : str
            A key of :attr:`charts`.
        fmt : {"png", "svg"}, default "png"

        Returns
        -------
        bytes

        Examples
        --------
        A tables-only report, with one chart added by hand (cheaper than all of them):

        >>> import matplotlib.pyplot as plt
        >>> import funnelkit as fk
        >>> from funnelkit.report import build_report
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> report = build_report(log, charts=False)
        >>> fig = fk.plot.funnel(report.tables["funnel"]).figure
        >>> plt.close(fig)  # held by the report, not by pyplot
        >>> report.charts["funnel"] = fig
        >>> report.chart_bytes("funnel")[:4]
        b'\x89PNG'
        >>> report.chart_bytes("funnel", "svg").startswith(b"<?xml")
        True
        """
        if fmt not in ("png", "svg"):
            raise InvalidParameterError(f"`fmt` must be 'png' or 'svg'; got {fmt!r}.")
        if (name, fmt) not in self._rendered:
            buf = io.BytesIO()
            meta = {"Software": None} if fmt == "png" else {"Date": None}
            fig = self.charts[name]
            engine = fig.get_layout_engine()
            # a layout engine makes savefig lay the figure out in a pass of its own before
            # drawing; the second format keeps the layout of the first (positions are
            # fractions of the figure) instead of computing it again
            again = engine is not None and any(n == name for n, _ in self._rendered)
            if again:
                fig.set_layout_engine("none")
            try:
                fig.savefig(buf, format=fmt, dpi=DPI, facecolor="white", metadata=meta)
            finally:
                if again:
                    fig.set_layout_engine(engine)
            self._rendered[(name, fmt)] = buf.getvalue()
        return self._rendered[(name, fmt)]

    def to_html(self) -> str:
        """The full report as one self-contained HTML page.

        No script, no external stylesheet, font or image (charts are embedded as PNG
        data), and a Content-Security-Policy that forbids loading anything else; every
        string from the data is escaped.

        Returns
        -------
        str

        Examples
        --------
        >>> import funnelkit as fk
        >>> from funnelkit.report import build_report
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> report = build_report(log, charts=False)
        >>> page = report.to_html()
        >>> page.startswith("<!DOCTYPE html>"), "<script" in page
        (True, False)
        """
        return H.page(self.summary, self.tables, self._quality, self.notes, self._img)

    def _repr_html_(self) -> str:
        return H.compact(self.summary, self.tables, self._img("funnel"))

    def _img(self, name: str) -> str:
        """The chart as an ``<img>`` with PNG data ('' when it was not drawn)."""
        if name not in self.charts:
            return ""
        data = base64.b64encode(self.chart_bytes(name, "png")).decode("ascii")
        w, h = (float(v) for v in self.charts[name].get_size_inches())
        return (
            f"<img class='chart' src='data:image/png;base64,{data}' width='{round(w * DPI)}' "
            f"height='{round(h * DPI)}' alt='{H.esc(H.chart_alt(name, self._lang))}'>"
        )

    # ------------------------------------------------------------------ writing
    @validate_params(
        {
            "outdir": [str, os.PathLike],
            "overwrite": ["boolean"],
            "progress": PROGRESS,
            "csv": [Options(str, CSV_CHOICES)],
        }
    )
    def save(
        self,
        outdir: str | os.PathLike,
        *,
        overwrite: bool = True,
        progress: bool | Progress | None = None,
        csv: str = "small",
    ) -> Path:
        """Write the report into the folder ``outdir``, atomically.

        Everything is written into a new hidden folder beside ``outdir``, which then
        replaces it: a failure leaves no half-written report (and an earlier report in
        ``outdir`` as it was). A process killed while writing cannot remove that folder;
        the next successful save to the same ``outdir`` does (see Notes).

        Parameters
        ----------
        outdir : str or path-like
            The report folder; created with its parents. Written:
            ``report.html``, ``summary.json``, ``tables/<name>.parquet`` per table,
            ``tables/<name>.csv`` per table ``csv`` asks for, ``charts/<name>.png`` and
            ``charts/<name>.svg`` per chart.
        overwrite : bool, default=True
            Replace an earlier report (a folder holding ``report.html`` and
            ``summary.json``) or an empty folder. Any other existing path is never
            replaced.
        progress : bool or callable, optional
            As in :func:`build_report` (step ``"writing…"``).
        csv : {"small", "all", "none"}, default "small"
            Which tables are also written as CSV (every table is written as Parquet):
            ``"small"`` all but the per-deal tables (:data:`PER_DEAL_TABLES`: ``deals``,
            one row per deal — on two million deals its CSV took 40 s and 261 MB),
            ``"all"`` every table, ``"none"`` none. The page links the files written, and
            ``summary.json`` lists them (``files``).

        Returns
        -------
        pathlib.Path
            ``outdir``.

        Raises
        ------
        FileExistsError
            ``outdir`` exists and is not an empty folder or an earlier report, or
            ``overwrite=False``.

        Notes
        -----
        CSV files neutralise text cells (and headers) that begin with ``=``, ``+``, ``-``,
        ``@``, tab or carriage return with a leading ``'``, so a spreadsheet shows them as
        text instead of running them as formulas (numbers are left alone); Parquet files
        hold the values unchanged. In both, a duration column ``x`` is written as ``x_days``
        (float days; the tables in :attr:`tables` keep timedeltas), and CSV writes a time
        column of midnights as dates, other times in ISO 8601 with their offset. JSON
        numbers that are missing (NaN) are ``null``.

        The hidden folders are named ``.<outdir name>.tmp-<host>-<pid>-<random>`` (and
        ``.old-`` for an earlier report set aside while it is replaced), ``<host>`` being
        a hash of the machine's name. After writing, the folders of this pattern for the
        same ``outdir`` whose writer is gone (same machine, and no running process has
        that pid) are removed; folders of a running process or of another machine are
        left alone. Folders named without host and pid (by funnelkit before this rule)
        are removed when untouched for a day (``STALE_LEGACY_SECONDS``). On Windows, where
        no pid can be probed safely, that age rule applies to every such folder.

        Examples
        --------
        >>> import json, tempfile
        >>> from pathlib import Path
        >>> import funnelkit as fk
        >>> from funnelkit.report import build_report
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> out = build_report(log, charts=False).save(Path(tempfile.mkdtemp()) / "report")
        >>> json.loads((out / "summary.json").read_text())["deals"]
        600
        >>> (out / "tables" / "funnel.csv").exists(), (out / "report.html").exists()
        (True, True)
        """
        if csv not in CSV_CHOICES:
            raise InvalidParameterError(f"`csv` must be one of {list(CSV_CHOICES)}; got {csv!r}.")
        out = Path(outdir)
        _check_replaceable(out, overwrite)
        _progress(progress)("writing…")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp: Path | None = None
        try:  # from the hidden folder's creation on: Ctrl-C at any point removes it
            tmp = _new_sibling(out, "tmp")
            files = _write_tables(self, tmp, csv)
            _write_charts(self, tmp)
            _write_summary(self, tmp, files, csv)
            page = H.page(
                self.summary, self.tables, self._quality, self.notes, self._img, files=files
            )
            (tmp / "report.html").write_text(page, encoding="utf-8")
            _replace(tmp, out)
        except BaseException:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        _remove_stale_siblings(out)
        return out


# ============================================================================ writing
def neutralise_csv(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` safe to open in a spreadsheet: formula-like text made literal.

    Text cells (and column names) that begin with ``=``, ``+``, ``-``, ``@``, tab or
    carriage return get a leading ``'``, which spreadsheets read as "this is text".
    Numbers, dates and durations are left alone (a negative number is not a formula).

    Parameters
    ----------
    df : pandas.DataFrame

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> import pandas as pd
    >>> from funnelkit.report import neutralise_csv
    >>> df = pd.DataFrame({"stage": ["=1+1", "Demo", "-2"], "effect": [-0.5, 0.1, 0.2]})
    >>> neutralise_csv(df)["stage"].tolist(), neutralise_csv(df)["effect"].tolist()
    (["'=1+1", 'Demo', "'-2"], [-0.5, 0.1, 0.2])
    """
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or _is_text(s):
            out[col] = pd.Series(
                [_safe_cell(v) for v in s.astype(object)], index=out.index, dtype=object
            )
    out.columns = [_safe_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out


def _is_text(s: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(s.dtype) and not pd.api.types.is_object_dtype(s.dtype)


def _safe_cell(v: Any) -> Any:
    if isinstance(v, str) and v.startswith(FORMULA_START):
        return "'" + v
    return v


def _write_tables(report: Report, root: Path, csv: str) -> dict[str, list[str]]:
    """Every table as Parquet, and as CSV when ``csv`` asks for it; name → formats."""
    d = root / "tables"
    d.mkdir()
    files: dict[str, list[str]] = {}
    for name, df in report.tables.items():
        df = _days_columns(df)
        df.to_parquet(d / f"{name}.parquet", index=False)
        files[name] = ["parquet"]
        if csv == "all" or (csv == "small" and name not in PER_DEAL_TABLES):
            neutralise_csv(_dates_as_text(df)).to_csv(d / f"{name}.csv", index=False)
            files[name].append("csv")
    return files


def _days_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Each timedelta column ``x`` replaced, in place, by ``x_days``: float days (NaT → NaN).
    A number of days reads the same in every tool; ``63 days 19:11:21`` does not."""
    cols = [c for c in df.columns if pd.api.types.is_timedelta64_dtype(df[c].dtype)]
    if not cols:
        return df
    out = df.copy()
    for c in cols:
        out[c] = out[c].dt.total_seconds() / 86_400
    return out.rename(columns={c: f"{c}_days" for c in cols})


def _dates_as_text(df: pd.DataFrame) -> pd.DataFrame:
    """Time columns as CSV text: ``2024-01-01`` when every value is midnight, else ISO 8601
    with seconds and the UTC offset (``2025-02-14T23:27:32+00:00``)."""
    cols = [c for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c].dtype)]
    if not cols:
        return df
    out = df.copy()
    for c in cols:
        t = out[c]
        midnight = bool((t.dropna() == t.dropna().dt.normalize()).all())
        whole = bool((t.dropna() == t.dropna().dt.floor("s")).all())
        fmt = "%Y-%m-%d" if midnight else "%Y-%m-%dT%H:%M:%S" + ("" if whole else ".%f")
        text = t.dt.strftime(fmt)
        if not midnight and t.dt.tz is not None:
            text = text + t.dt.strftime("%z").str.replace(r"(\d\d)$", r":\1", regex=True)
        out[c] = pd.Series(text.astype(object), index=t.index).where(t.notna(), None)
    return out


def _write_charts(report: Report, root: Path) -> None:
    d = root / "charts"
    d.mkdir()
    for name in report.charts:
        for fmt in ("png", "svg"):
            (d / f"{name}.{fmt}").write_bytes(report.chart_bytes(name, fmt))


def _write_summary(report: Report, root: Path, files: dict[str, list[str]], csv: str) -> None:
    summary = {
        **report.summary,
        "tables": list(report.tables),
        "charts": list(report.charts),
        "files": {
            "tables": {n: [f"tables/{n}.{fmt}" for fmt in fmts] for n, fmts in files.items()},
            "charts": [f"charts/{n}.{fmt}" for n in report.charts for fmt in ("png", "svg")],
        },
        "csv": csv,
        "notes": list(report.notes),
    }
    text = json.dumps(_jsonable(summary), indent=2, ensure_ascii=False, allow_nan=False)
    (root / "summary.json").write_text(text + "\n", encoding="utf-8")


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return number(x)
    return x


def _check_replaceable(out: Path, overwrite: bool) -> None:
    if not out.exists() and not out.is_symlink():
        return
    if not overwrite:
        raise FileExistsError(f"Output `{out}` exists; pass overwrite=True or another folder.")
    is_report = (
        out.is_dir() and (out / "report.html").is_file() and (out / "summary.json").is_file()
    )
    if out.is_symlink() or not out.is_dir() or not (is_report or not any(out.iterdir())):
        raise FileExistsError(
            f"Output `{out}` exists and is not an earlier funnelkit report or an empty "
            "folder; choose another output folder."
        )


#: seconds after which a hidden folder of an older funnelkit (no pid in its name) is stale
STALE_LEGACY_SECONDS = 24 * 3600
#: this machine, in the names of the hidden folders (8 hex digits)
_HOST = f"{zlib.crc32(socket.gethostname().encode('utf-8', 'replace')):08x}"


def _new_sibling(out: Path, kind: str) -> Path:
    """A new, hidden, uniquely named folder beside ``out`` (created with the umask),
    named after this machine and process (see :meth:`Report.save`)."""
    while True:
        p = out.parent / f".{out.name}.{kind}-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
        except BaseException:  # interrupted (Ctrl-C) right after creating it
            shutil.rmtree(p, ignore_errors=True)
            raise


def _replace(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out``; an earlier ``out`` is set aside until that succeeded."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old: Path | None = None
    try:
        old = _new_sibling(out, "old")
        old.rmdir()
        os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:  # an error or Ctrl-C at any step: the earlier report goes back
        if old is not None and old.exists():
            if tmp.exists() and out.exists():  # nothing moved yet
                shutil.rmtree(old, ignore_errors=True)
            else:
                if out.exists():  # the new report went in: back to its hidden folder
                    os.replace(out, tmp)
                os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _pid_running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (POSIX: signal 0 only probes)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it runs, as another user
        return True
    return True


def _remove_stale_siblings(out: Path) -> list[Path]:
    """Remove the hidden folders that writers of ``out`` left behind when they were killed
    (the rule is in :meth:`Report.save`'s Notes); returns the folders removed."""
    pattern = re.compile(
        rf"\.{re.escape(out.name)}\.(?:tmp|old)-"
        r"(?:(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-)?[0-9a-f]{8}"
    )
    removed: list[Path] = []
    try:
        siblings = list(out.parent.iterdir())
    except OSError:
        return removed
    for p in siblings:
        m = pattern.fullmatch(p.name)
        if m is None or p.is_symlink() or not p.is_dir():
            continue
        if m["pid"] is not None and os.name != "nt":
            if m["host"] != _HOST or _pid_running(int(m["pid"])):
                continue
        else:  # no pid to probe: stale when untouched for long
            try:
                age = time.time() - p.stat().st_mtime
            except OSError:
                continue
            if age < STALE_LEGACY_SECONDS:
                continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed
