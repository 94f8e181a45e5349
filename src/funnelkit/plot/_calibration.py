"""Reliability diagram of a forecast backtest: predicted win probability against the
share of deals actually won, for the forecast and the naive model."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._params import CHECKED_INSIDE, TITLE, validate_params
from ..errors import InvalidParameterError
from . import _style as S

if TYPE_CHECKING:
    from matplotlib.axes import Axes

CALIBRATION_COLUMNS = ["model", "deals", "mean_predicted", "observed"]
#: colour and marker per model; other model names cycle through the series styles
_MODEL_STYLE = {
    "forecast": {"color": S.OKABE_ITO["blue"], "marker": "o"},
    "naive": {"color": S.OKABE_ITO["orange"], "marker": "s"},
}


def when(ts: Any) -> str:
    """A moment for a reader: ``"1 Mar 2025"``, with the time of day when it is not
    midnight (``"1 Mar 2025, 21:25 UTC"``) — never a raw timestamp."""
    t = pd.Timestamp(ts)
    day = f"{t.day} {t.strftime('%b %Y')}"
    if t == t.normalize():
        return day
    zone = f" {t.tzname()}" if t.tzinfo is not None else ""
    return f"{day}, {t.strftime('%H:%M')}{zone}"


def span(td: Any) -> str:
    """A duration for a reader: ``"60 days"``, ``"1 day"``, ``"2.5 days"``, ``"6 hours"``,
    ``"45 minutes"`` — never a timedelta repr."""
    days = pd.Timedelta(td) / pd.Timedelta(days=1)
    if days >= 1:
        value, unit = days, "day"
    elif days * 24 >= 1:
        value, unit = days * 24, "hour"
    else:
        value, unit = days * 1440, "minute"
    text = f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"
    return f"{text} {unit}" + ("" if text == "1" else "s")


def _tables(data: Any) -> tuple[pd.DataFrame, pd.DataFrame | None, str | None]:
    """(calibration table, scores or None, subtitle or None) from a Backtest or a table."""
    from ..forecast import Backtest

    if isinstance(data, Backtest):
        cuts = data.cuts["cut"] if len(data.cuts) else pd.Series([data.cut])
        if len(cuts) > 1:
            sub = (
                f"Deals open at {len(cuts)} cuts, {cuts.iloc[0].day} "
                f"{cuts.iloc[0]:%b %Y} to {cuts.iloc[-1].day} {cuts.iloc[-1]:%b %Y}; "
                f"outcome {span(data.horizon)} later"
            )
        else:
            sub = f"Deals open on {when(data.cut)}; outcome {span(data.horizon)} later"
        return data.calibration, data.scores, sub
    if isinstance(data, pd.DataFrame):
        missing = [c for c in CALIBRATION_COLUMNS if c not in data.columns]
        if missing:
            raise ValueError(
                f"The table passed as `data` lacks the column(s) {missing} of a calibration "
                f"table; found columns {list(data.columns)}. Pass the result of "
                "funnelkit.forecast.backtest(...) or its .calibration table."
            )
        return data, None, None
    raise InvalidParameterError(
        "`data` must be a backtest result (funnelkit.forecast.backtest) or its calibration "
        f"table; got {type(data).__name__}."
    )


@S.chart
@validate_params(
    {
        "data": [CHECKED_INSIDE],
        "ax": ["axes", None],
        "title": TITLE,
        "kwargs": [CHECKED_INSIDE],
        "counts": ["boolean"],
    }
)
def calibration(
    data: Any,
    *,
    ax: Axes | None = None,
    title: str | None = "Forecast calibration",
    counts: bool = True,
    **kwargs: Any,
) -> Axes:
    """Reliability diagram: predicted win probability against the share actually won.

    One line per model (the forecast and the two naive models of :func:`fk.backtest
    <funnelkit.forecast.backtest>`), one point per bin of predicted probability at (mean
    predicted, observed share), with the Wilson 95% interval of the observed share as a
    whisker when the table has it, the number of deals in each bin of the first model
    (the forecast) next to its point, and the diagonal of perfect calibration. With a
    backtest result the legend (inside the Axes, upper left) gives each model's Brier
    score and the subtitle says when the deals were open and how long after their outcome
    was read, as a date and a number of days.

    Parameters
    ----------
    data : Backtest or pandas.DataFrame
        The result of :func:`funnelkit.forecast.backtest`, or its ``calibration`` table
        (columns ``model``, ``deals``, ``mean_predicted``, ``observed``; optional
        ``observed_low``, ``observed_high``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new square figure.
    title : str, default "Forecast calibration"
    counts : bool, default True
        Write the number of deals next to each point.
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.plot` for the models' lines.

    Returns
    -------
    matplotlib.axes.Axes
        Each model's line carries the gid ``"calibration-<model>"`` (points in table order),
        whiskers ``"calibration-ci"``, counts ``"calibration-count"`` and the diagonal
        ``"calibration-diagonal"``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> from funnelkit.forecast import backtest
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> ax = fk.plot.calibration(backtest(log, "2025-03-01", "60D"))
    >>> [ln.get_gid() for ln in ax.lines if ln.get_gid().startswith("calibration-f")]
    ['calibration-forecast']
    """
    table, scores, subtitle = _tables(data)
    if table.empty:
        raise ValueError("The calibration table is empty: nothing to draw.")
    ax = S.new_axes(ax, (6.4, 6.6))
    ax.plot(
        [0, 1],
        [0, 1],
        color=S.NEUTRAL,
        linestyle="--",
        linewidth=1,
        zorder=1,
        gid="calibration-diagonal",
        label="perfect calibration",
    )
    brier = {}
    if scores is not None:
        brier = dict(zip(scores["model"], scores["brier"], strict=True))
    has_ci = {"observed_low", "observed_high"} <= set(table.columns)
    models = S.ordered_unique(table["model"])
    for i, model in enumerate(models):  # loop over models (two)
        rows = table.loc[table["model"] == model]
        x = rows["mean_predicted"].to_numpy(dtype=float)
        y = rows["observed"].to_numpy(dtype=float)
        style = dict(_MODEL_STYLE.get(str(model), S.series_style(i)))
        style.pop("linestyle", None)
        label = str(model)
        if model in brier:
            label += f" (Brier {float(brier[model]):.3f})"
        line_kw: dict[str, Any] = {
            "linewidth": 1.8,
            "markersize": 7,
            "markeredgecolor": S.theme().paper,
            "zorder": 3,
            **style,
        }
        line_kw.update(kwargs)
        ax.plot(x, y, gid=f"calibration-{model}", label=S.esc(label), **line_kw)
        if has_ci:
            lo = rows["observed_low"].to_numpy(dtype=float)
            hi = rows["observed_high"].to_numpy(dtype=float)
            for xi, a, b in zip(x, lo, hi, strict=True):
                if np.isfinite(a) and np.isfinite(b):
                    ax.plot(
                        [xi, xi],
                        [a, b],
                        color=line_kw["color"],
                        alpha=0.45,
                        linewidth=1.2,
                        zorder=2,
                        gid="calibration-ci",
                    )
        if counts and i == 0:  # the first model's bins only: more would collide
            dy = 8
            for xi, yi, n in zip(x, y, rows["deals"].to_numpy(), strict=True):
                # inside the Axes: below a point at the top, left of one at the right edge
                right = xi > 0.93
                ax.annotate(
                    S.count(float(n)),
                    (xi, yi),
                    xytext=(-6 if right else 6, -abs(dy) if yi > 0.93 else dy),
                    textcoords="offset points",
                    ha="right" if right else "left",
                    va="center",
                    fontsize=S.SMALL_SIZE,
                    color=line_kw["color"],
                    gid="calibration-count",
                )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    S.style_axes(ax, grid="both")
    S.percent_axis(ax, "x")
    S.percent_axis(ax, "y")
    S.label(ax, x="Predicted win probability", y="Share of deals won")
    ax.legend(loc="upper left", frameon=False, fontsize=S.SMALL_SIZE, labelcolor=S.TEXT)
    lines = [subtitle or "Deals binned by predicted win probability"]
    if counts:
        lines.append(f"numbers: deals per bin of {S.esc(str(models[0]))}" if models else "")
    # the subtitle stays above the (square) Axes: a wider one reaches over a grid's neighbours
    width = max(int(min(S.axes_inches(ax)) * 72 / (0.55 * S.SUBTITLE_SIZE)), 20)
    S.titles(ax, title, "\n".join(textwrap.fill(line, width) for line in lines))
    return ax
