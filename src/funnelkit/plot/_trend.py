"""Cohort / period trends of conversion, win rate or cycle time, with intervals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .. import _stats
from .._params import CHECKED_INSIDE, TITLE, validate_params
from ..errors import InvalidParameterError
from . import _style as S

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..log import EventLog

Metric = Literal["conversion", "win_rate", "cycle_time"]
_TITLES = {
    "conversion": "Conversion by cohort",
    "win_rate": "Win rate by cohort",
    "cycle_time": "Cycle time by cohort",
}


def cohort_trend(
    log: EventLog,
    *,
    metric: Metric = "conversion",
    freq: str = "QE",
    by: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """The trend chart's table from :meth:`EventLog.trend` (creation cohorts, UTC periods).

    Recent cohorts count only deals whose outcome is almost always known, so the latest
    periods do not look artificially good or bad (see :meth:`EventLog.trend`).

    Returns
    -------
    pandas.DataFrame
        ``period`` (the last day of the cohort's period), ``stage`` (conversion only),
        ``metric``, ``n`` (deals behind the value), ``value``, ``low``, ``high`` (cycle
        time: the median's 95% Brookmeyer–Crowley interval, ``median_low`` /
        ``median_high`` of :meth:`EventLog.trend`; NaN when undefined), ``mature``;
        ``unresolved`` (conversion and win rate, when :meth:`EventLog.trend` gives it: the
        share not resolved yet); with ``by``, also ``segment`` (the ``by`` values joined by " / ").
    """
    out = _cohorts(log, metric=metric, freq=freq, by=by)
    return out.loc[out["n"] > 0].reset_index(drop=True)


def _cohorts(
    log: EventLog, *, metric: Metric, freq: str, by: str | Sequence[str] | None = None
) -> pd.DataFrame:
    """:func:`cohort_trend`'s table with the cohorts that have no deal behind a value yet
    too (``n`` = 0: too recent for any outcome to be known), and ``known_by`` — the
    creation time by which outcomes are (almost always) known, where the metric has one."""
    S.check_choice("metric", metric, list(_TITLES))
    t = log.trend(freq=freq, metric=metric, by=by)
    period = (pd.to_datetime(t["period_end"]) - pd.Timedelta(days=1)).dt.tz_localize(None)
    if metric == "conversion":
        value, low, high = t["conversion"], t["conversion_low"], t["conversion_high"]
        n = t["advanced"] + t["dropped"]
        stage = t["stage"]
    elif metric == "win_rate":
        value, low, high = t["win_rate"], t["win_rate_low"], t["win_rate_high"]
        n = t["won"] + t["lost"] + t["stale"]
        stage = None
    else:
        value = S.to_days(t["median"])
        low, high = S.to_days(t["median_low"]), S.to_days(t["median_high"])
        n = t["counted"]
        stage = None
    out = pd.DataFrame(
        {
            "period": period.dt.normalize(),
            "stage": stage,
            "metric": metric,
            "n": np.asarray(n, dtype=np.int64),
            "value": np.asarray(value, dtype=float),
            "low": np.asarray(low, dtype=float),
            "high": np.asarray(high, dtype=float),
            "mature": t["mature"].to_numpy(),
        }
    )
    if metric in ("conversion", "win_rate") and "unresolved" in t.columns:
        out["unresolved"] = t["unresolved"].to_numpy(dtype=float)
    if by is not None:
        cols = S.names(by)
        out["segment"] = t[cols].astype(str).agg(" / ".join, axis=1).to_numpy()
    if "created_by" in t.columns:
        out["known_by"] = pd.to_datetime(t["created_by"]).to_numpy()
    return out


def _median_ci(t: np.ndarray) -> tuple[float, float, float]:
    """Median of sorted ``t`` with the 95% order-statistic interval (NaN when too few)."""
    n = t.size
    if n == 0:
        return np.nan, np.nan, np.nan
    half = _stats.Z95 * np.sqrt(n) / 2
    j, k = int(np.floor(n / 2 - half)), int(np.ceil(n / 2 + half))
    if j < 1 or k > n:  # too few deals for a 95% interval
        return float(np.median(t)), np.nan, np.nan
    return float(np.median(t)), float(t[j - 1]), float(t[k - 1])


def _standard(table: pd.DataFrame, metric: str | None) -> tuple[pd.DataFrame, str]:
    """Any accepted trend table → columns period, series, value, low, high (and
    unresolved, when the table has it); the metric."""
    if {"metric", "value"} <= set(table.columns):
        metrics = S.ordered_unique(table["metric"])
        chosen = metric if metric is not None else metrics[0]
        if chosen not in metrics:
            raise InvalidParameterError(
                f"`metric`={chosen!r} is not in the table; metrics: {metrics}."
            )
        t = table.loc[table["metric"] == chosen]
        out = pd.DataFrame({"period": t["period"], "value": t["value"]})
        out["low"] = t["low"] if "low" in t.columns else np.nan
        out["high"] = t["high"] if "high" in t.columns else np.nan
        out["series"] = t["stage"] if "stage" in t.columns else chosen
    elif "conversion" in table.columns:
        chosen = "conversion"
        out = pd.DataFrame(
            {
                "period": table["period"],
                "value": table["conversion"],
                "low": table.get("conversion_low", np.nan),
                "high": table.get("conversion_high", np.nan),
                "series": table["stage"] if "stage" in table.columns else "conversion",
            }
        )
    else:
        raise ValueError(
            "A trend table needs the columns period, stage, conversion, conversion_low, "
            "conversion_high, or period, metric, value, low, high; found "
            f"{list(table.columns)}."
        )
    for c in ("value", "low", "high"):
        if pd.api.types.is_timedelta64_dtype(out[c].dtype):
            out[c] = S.to_days(out[c])
    out["series"] = out["series"].astype(object).where(out["series"].notna(), chosen)
    if "unresolved" in table.columns:
        out["unresolved"] = pd.to_numeric(table.loc[out.index, "unresolved"], errors="coerce")
    for col in ("n", "mature", "known_by"):
        if col in table.columns:
            out[col] = table.loc[out.index, col]
    if "segment" in table.columns:
        out["segment"] = table.loc[out.index, "segment"]
    return out, chosen


def _period_labels(periods: list[pd.Timestamp], sep: str = " ") -> list[str]:
    """Readable period names: "2024 Q1", "Jan 2024", "2024", else the date."""
    ts = pd.DatetimeIndex(periods)
    if len(ts) and all(ts.is_quarter_end):
        return [f"{t.year}{sep}Q{t.quarter}" for t in ts]
    if len(ts) and all(ts.is_month_end):
        return [t.strftime(f"%b{sep}%Y") for t in ts]
    if len(ts) and all(ts.is_year_end):
        return [str(t.year) for t in ts]
    return [t.strftime("%Y-%m-%d") for t in ts]


def _small(g: pd.DataFrame) -> np.ndarray:
    """Which cohorts have too few deals to draw an interval that reads (``n`` <
    :data:`MIN_DEALS`; no ``n`` column: none)."""
    if "n" not in g.columns:
        return np.zeros(len(g), dtype=bool)
    n = pd.to_numeric(g["n"], errors="coerce").to_numpy(dtype=float)
    return np.nan_to_num(n, nan=np.inf) < MIN_DEALS


def _draw_series(ax: Axes, g: pd.DataFrame, x_of: dict, off: float, j: int, kw: dict) -> Any:
    """One series as an errorbar line; points not settled yet (``unresolved`` >=
    :data:`~funnelkit.plot._style.UNRESOLVED_MIN`) hollow, as a line of their own
    (gid ``"trend-unresolved"``) over the errorbar's, which shows only the others; cohorts
    of fewer than :data:`MIN_DEALS` deals (``n``) muted, without interval and out of the
    line (gid ``"trend-small"``)."""
    g = g.sort_values("period")
    x = np.array([x_of[p] for p in g["period"]], dtype=float) + off
    v = g["value"].to_numpy(dtype=float)
    lo = g["low"].to_numpy(dtype=float)
    hi = g["high"].to_numpy(dtype=float)
    small = _small(g) & np.isfinite(v)
    th = S.theme()
    if small.any():
        ax.plot(
            x[small],
            v[small],
            linestyle="none",
            marker="o",
            ms=4.5,
            color=S.OTHER,
            markerfacecolor=th.paper,
            markeredgewidth=1.2,
            zorder=2,
            gid="trend-small",
        )
        v = np.where(small, np.nan, v)
    yerr = np.clip(np.vstack([v - lo, hi - v]), 0.0, None)  # rounding at 0% / 100%
    yerr = np.where(np.isfinite(yerr), yerr, 0.0)
    style = S.series_style(j)
    eb_kw: dict[str, Any] = {
        "fmt": style["marker"],
        "linestyle": style["linestyle"],
        "color": style["color"],
        "ms": 6,
        "linewidth": 1.8,
        "elinewidth": 1.2,
        "capsize": 3,
    }
    eb_kw.update(kw)
    open_ = S.unsettled(g["unresolved"]) if "unresolved" in g.columns else np.zeros(v.size, bool)
    open_ &= np.isfinite(v)
    if open_.any():
        eb_kw["markevery"] = list(np.flatnonzero(~open_))
    cont = ax.errorbar(x, v, yerr=yerr, **eb_kw)
    if open_.any():
        ax.plot(
            x[open_],
            v[open_],
            linestyle="none",
            marker=eb_kw["fmt"],
            ms=eb_kw["ms"],
            markerfacecolor=th.paper,
            markeredgecolor=eb_kw["color"],
            markeredgewidth=1.5,
            zorder=3,
            gid="trend-unresolved",
        )
    return cont


#: cohorts with fewer deals behind their value are drawn muted, without their interval
#: (a 1-deal cohort's interval spans most of 0–100%: it says nothing and draws the eye)
MIN_DEALS = 10
#: the note of a trend with points not settled yet
_OPEN_NOTE = "hollow: not settled yet (part of the probability unresolved: read the interval)"


def _small_note() -> str:
    return f"grey: cohorts of fewer than {MIN_DEALS} deals, too few for an interval"


def _immature(g: pd.DataFrame, x_of: dict) -> list[int]:
    """Positions of the periods of ``g`` too recent for their outcomes to be known
    (``mature`` False), an empty one (no deal behind a value) included."""
    if "mature" not in g.columns:
        return []
    young = g.loc[~g["mature"].fillna(True).astype(bool), "period"]
    return sorted({x_of[p] for p in young})


def _shade(ax: Axes, xs: list[int]) -> None:
    """A band behind the periods too recent for their outcomes to be known."""
    th = S.theme()
    for x in xs:
        ax.axvspan(
            x - 0.5,
            x + 0.5,
            color=S.mix(th.text, th.face, 0.92),
            zorder=0,
            lw=0,
            gid="trend-immature",
        )


def _immature_note(std: pd.DataFrame, empty: bool) -> str:
    when = ""
    if "known_by" in std.columns and std["known_by"].notna().any():
        t = pd.Timestamp(std["known_by"].dropna().iloc[0])
        when = f" (deals created after {t.day} {t.strftime('%b %Y')})"
    note = f"shaded: cohorts too recent for all their outcomes to be known{when}"
    if empty:
        note += "; an empty one has no deal old enough yet"
    return note


def _label_inches(labels: list[str], size: float = S.TICK_SIZE) -> float:
    """About how wide the widest period name is, with some room around it (inches)."""
    chars = max((len(line) for lab in labels for line in lab.split("\n")), default=0)
    return chars * 0.6 * size / 72 + 0.1


def _period_axis(ax: Axes, labels: list[str], rotate: bool) -> None:
    ax.set_xticks(range(len(labels)), labels)
    if rotate:
        for t in ax.get_xticklabels():
            t.set_rotation(35)
            t.set_horizontalalignment("right")
            t.set_rotation_mode("anchor")
    ax.set_xlim(-0.6, len(labels) - 0.4)


def _value_axis(ax: Axes, is_days: bool, top: float | None = None) -> None:
    """0–100% for shares; days from 0 to ``top`` — ticks only inside the limits."""
    from matplotlib.ticker import MaxNLocator

    if is_days:
        hi = top if top is not None and np.isfinite(top) and top > 0 else 1.0
        ticks = MaxNLocator(nbins=5).tick_values(0, hi)
        ax.set_yticks([t for t in ticks if 0 <= t <= hi * 1.0001])
        ax.set_ylim(0, hi)
    else:
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylim(0, 1.02)
        S.percent_axis(ax, "y")


def _days_top(std: pd.DataFrame) -> float:
    vals = std[["value", "high"]].to_numpy(dtype=float)
    vals = vals[np.isfinite(vals)]
    return float(vals.max() * 1.08) if vals.size else 1.0


@S.chart
@validate_params(
    {
        "data": [CHECKED_INSIDE],
        "ax": ["axes", None],
        "title": TITLE,
        "kwargs": [CHECKED_INSIDE],
        "metric": [str, None],
        "stage": ["str_list", None],
        "freq": [str],
        "panels": ["boolean", None],
    }
)
def trend(
    data: Any,
    *,
    ax: Axes | None = None,
    metric: Metric | str | None = None,
    stage: str | Sequence[str] | None = None,
    freq: str = "QE",
    panels: bool | None = None,
    title: str | None = None,
    **kwargs: Any,
) -> Axes | Figure:
    """Trend over periods: conversion (per stage), win rate or cycle time per cohort.

    Each series (stage) is a line across periods, each point with its 95% interval as a
    whisker (cycle time: the median's Brookmeyer–Crowley interval); periods on the
    horizontal axis in order. Many series go into small multiples, one panel per stage
    with shared axes (a new figure of at most 12 × 14 inches). Cohorts with fewer than
    :data:`MIN_DEALS` deals behind their value (column ``n``) are drawn as small grey
    points without their interval, out of the line; cohorts too recent for their outcomes
    to be known (column ``mature`` False — with an EventLog, also those with no deal old
    enough yet) are shaded, and a note under the chart says so. The legend is drawn
    inside the Axes, in room kept free on the right.

    Parameters
    ----------
    data : EventLog or pandas.DataFrame
        An event log — cohorts by the period of each deal's first event, see
        :func:`funnelkit.plot._trend.cohort_trend` — or a trend table: columns
        ``period`` (timestamp), ``stage``, ``conversion``, ``conversion_low``,
        ``conversion_high``; or ``period``, ``metric``, ``value``, ``low``, ``high``
        (optionally ``stage``), as monitoring tables give.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (all series in it). Default: a new figure.
    metric : {"conversion", "win_rate", "cycle_time"}, optional
        With an EventLog: what to compute (default "conversion"). With a long table:
        which ``metric`` rows to draw (default the first).
    stage : str or list of str, optional
        Only these stages (series).
    freq : str, default "QE"
        Cohort period with an EventLog (pandas offset alias: "ME", "QE", "YE", "W").
    panels : bool, optional
        One panel per series in a new figure. Default: when ``ax`` is None and there
        are more than 4 series (more lines with whiskers do not read in one panel).
    title : str, optional
        Default "<Metric> by cohort".
    **kwargs
        With an EventLog, the keywords of :meth:`EventLog.trend` (``by``: one series per
        segment — per stage and segment for conversion); the rest go to
        :meth:`matplotlib.axes.Axes.errorbar` for every series.

    Returns
    -------
    matplotlib.axes.Axes or matplotlib.figure.Figure
        The Axes, with one errorbar container per series in ``ax.containers`` labelled
        with the series name (x positions 0, 1, ... are the periods in order; muted
        cohorts are NaN there and drawn by a line with the gid ``"trend-small"``; shaded
        periods are patches with the gid ``"trend-immature"``); or, in panels, the Figure,
        its first axes per series in order (titled with the series).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> ax = fk.plot.trend(log, stage=["Demo", "Proposal"])
    >>> [t.get_text() for t in ax.get_xticklabels()][:2]
    ['2024 Q1', '2024 Q2']
    >>> ax.get_title()
    'Conversion by cohort'
    >>> fig = fk.plot.trend(log)  # six stages: one panel each
    >>> [a.get_title() for a in fig.axes][:2]
    ['Lead', 'Qualified']
    """
    comp, kwargs = S.split_kwargs("trend", data, kwargs, "trend", taken=["freq", "metric"])
    if S.is_log(data):
        chosen = str(metric) if metric is not None else "conversion"
        table = _cohorts(data, metric=chosen, freq=freq, **comp)  # type: ignore[arg-type]
        # a cohort with no deal behind a value is kept, as a period too recent to show
        table.loc[table["n"] == 0, ["value", "low", "high"]] = np.nan
        order = list(data.stages)
        std, _ = _standard(table, chosen)
    elif isinstance(data, pd.DataFrame):
        if "period" not in data.columns:
            raise ValueError(f"A trend table needs a 'period' column; found {list(data.columns)}.")
        order = S.ordered_unique(data["stage"]) if "stage" in data.columns else []
        std, chosen = _standard(data, metric)
    else:
        raise InvalidParameterError(
            f"`data` must be an fk.EventLog or a pandas DataFrame; got {type(data).__name__}."
        )
    std["period"] = pd.to_datetime(std["period"])
    series = S.ordered_unique(std["series"])
    if order:
        series = [s for s in order if s in set(series)] + [s for s in series if s not in order]
    if stage is not None:
        wanted = [stage] if isinstance(stage, str) else list(stage)
        series = S.stage_names(series, wanted, "stage")
    std = std.loc[std["series"].isin(series)]
    if "segment" in std.columns:  # by=...: a series per segment (per stage and segment)
        segs = S.ordered_unique(std["segment"])
        if chosen == "conversion":
            std = std.assign(series=std["series"].astype(str) + " · " + std["segment"])
            series = [f"{s} · {g}" for s in series for g in segs]
        else:
            std = std.assign(series=std["segment"])
            series = segs
        series = [s for s in series if s in set(std["series"])]
    if "n" in std.columns:  # series with no deal behind any value: nothing to draw
        has = std.loc[std["n"] > 0, "series"]
        series = [s for s in series if s in set(has)]
        std = std.loc[std["series"].isin(series)]
    if std.empty or std["value"].notna().sum() == 0:
        raise ValueError("The trend table has no rows to draw.")
    periods = sorted(std["period"].unique())
    x_of = {p: i for i, p in enumerate(periods)}
    labels = _period_labels(periods)
    k = len(series)
    is_days = chosen == "cycle_time" or "time" in str(chosen)
    if is_days:
        ylab = "Days (median)" if chosen == "cycle_time" else f"{chosen} (days)"
    else:
        ylab = {"conversion": "Conversion", "win_rate": "Win rate"}.get(chosen, str(chosen))
    xlab = "Cohort (period of the deal's first event)"
    sub = {
        "conversion": "advanced / (advanced + dropped) per cohort; open deals are not counted;"
        " 95% Wilson intervals",
        "win_rate": "won / (won + lost + stale) per cohort; open deals are not counted;"
        " 95% Wilson intervals",
        "cycle_time": "Kaplan–Meier median time from first event to resolution, open deals"
        " censored;\n95% interval of the median (Brookmeyer–Crowley; no upper arm where it"
        " is undefined)",
    }.get(chosen, "with 95% intervals")
    notes = []
    if "unresolved" in std.columns:
        if chosen in ("conversion", "win_rate"):  # estimates with open deals censored
            sub = (
                f"probability of {'advancing' if chosen == 'conversion' else 'winning'} per "
                "cohort; open deals count for the time they have been open; 95% intervals"
            )
        if S.unsettled(std.loc[std["value"].notna(), "unresolved"]).any():
            notes.append(_OPEN_NOTE)
    if _small(std.loc[std["value"].notna()]).any():
        notes.append(_small_note())
    young = _immature(std, x_of)
    if young:
        empty = any(std.loc[std["period"] == periods[x], "value"].isna().all() for x in young)
        notes.append(_immature_note(std, empty))
    by_label = " / ".join(S.names(comp["by"])) if comp.get("by") is not None else None
    title = title or _TITLES.get(chosen, f"{chosen} by period") + (
        f", per {by_label}" if by_label else ""
    )
    legend_title = " · ".join(
        t for t in ("stage" if chosen == "conversion" else None, by_label) if t is not None
    )
    top = _days_top(std) if is_days else None
    if panels is None:
        panels = ax is None and k > 4
    if panels:
        labels = _period_labels(periods, sep="\n")
        return _panels(
            std, series, x_of, labels, is_days, top, ylab, xlab, title, sub, notes, kwargs
        )

    ax = S.new_axes(ax, (min(max(5.5 + 0.75 * len(periods), 8.5), 12.0), 5.4))
    spread = min(0.36, 0.08 * (k - 1))
    offs = np.linspace(-spread / 2, spread / 2, k) if k > 1 else np.zeros(1)
    handles = []
    for j, s in enumerate(series):
        cont = _draw_series(ax, std.loc[std["series"] == s], x_of, offs[j], j, kwargs)
        cont.set_label(str(s))
        handles.append(cont)
    _shade(ax, young)
    # period names on one line while they fit the data's width, else on two, else slanted
    width_in = S.axes_inches(ax)[0] * 0.7
    if len(periods) * _label_inches(labels) > width_in:
        labels = _period_labels(periods, sep="\n")
    _period_axis(ax, labels, len(periods) * _label_inches(labels) > width_in)
    S.style_axes(ax, grid="y")
    _value_axis(ax, is_days, top)
    S.label(ax, x=xlab, y=ylab)
    if k > 1 or chosen == "conversion":
        _legend_inside(ax, handles, [S.wrap(s, 24) for s in series], legend_title, len(periods))
    S.titles(ax, title, _fit_width("\n".join([sub, *notes]), S.axes_inches(ax)[0]))
    return ax


def _fit_width(text: str, width_in: float) -> str:
    """Each line of a subtitle wrapped to the Axes' width, so that it stays above them
    (a wider subtitle reaches over the neighbours of a grid)."""
    import textwrap

    chars = max(int(width_in * 72 / (0.55 * S.SUBTITLE_SIZE)), 20)
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def _legend_inside(
    ax: Axes, handles: list[Any], labels: list[str], title: str, n_periods: int
) -> None:
    """The legend in the upper right of the Axes, in room the x limits keep free of data
    (the periods are drawn left of it)."""
    width_in, _ = S.axes_inches(ax)
    chars = max([len(line) for lab in labels for line in lab.split("\n")] + [len(title)])
    legend_in = 0.55 + chars * 0.6 * S.SMALL_SIZE / 72
    share = min(legend_in / max(width_in, 1e-6), 0.45)
    lo, hi = -0.6, n_periods - 0.4
    ax.set_xlim(lo, hi + (hi - lo) * share / (1 - share))
    ax.legend(
        handles,
        labels,
        loc="upper right",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
        fontsize=S.SMALL_SIZE,
        title=title or None,
        title_fontsize=S.SMALL_SIZE,
        borderaxespad=0.2,
        labelcolor=S.theme().text,
    )


def _panels(
    std: pd.DataFrame,
    series: list[Any],
    x_of: dict,
    labels: list[str],
    is_days: bool,
    top: float | None,
    ylab: str,
    xlab: str,
    title: str,
    sub: str,
    notes: list[str],
    kwargs: dict[str, Any],
) -> Figure:
    """Small multiples: one panel per series, shared axes, in a new figure of at most
    12 × 14 inches."""
    k = len(series)
    ncols = 3 if k <= 9 else 4
    nrows = -(-k // ncols)
    plt = S.pyplot()
    width = min(3.0 * ncols, 12.0)
    height = min(1.6 + 2.3 * nrows + 0.17 * len(notes), 14.0)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(width, height),
        sharex=True,
        sharey=True,
        layout="constrained",
        squeeze=False,
    )
    th = S.theme()
    rotate = len(labels) * _label_inches(labels, S.SMALL_SIZE) > width / ncols - 0.5
    for j, s in enumerate(series):
        a = axes.flat[j]
        g = std.loc[std["series"] == s]
        cont = _draw_series(a, g, x_of, 0.0, 0, kwargs)
        cont.set_label(str(s))
        _shade(a, _immature(g, x_of))
        a.set_title(
            S.wrap(s, 28, max_lines=2),
            fontsize=S.ANNOT_SIZE,
            color=th.text,
            fontweight="bold",
        )
        S.style_axes(a, grid="y")
        _value_axis(a, is_days, top)
        _period_axis(a, labels, rotate)
        a.tick_params(axis="x", labelsize=S.SMALL_SIZE)
    for j in range(k, axes.size):
        axes.flat[j].set_visible(False)
        above = j - ncols  # the panel above an empty slot shows the period labels
        if 0 <= above < k:
            axes.flat[above].xaxis.set_tick_params(labelbottom=True)
    # labels only on the outer panels
    for a in axes[:, 0]:
        a.set_ylabel(ylab, fontsize=S.ANNOT_SIZE, color=th.label)
    fig.suptitle(title, fontsize=S.TITLE_SIZE, fontweight="bold", color=th.text)
    fig.supxlabel("\n".join([xlab, sub, *notes]), fontsize=S.SUBTITLE_SIZE, color=th.muted)
    return fig
