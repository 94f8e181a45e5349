"""Fan chart of a per-period forecast: expected wins (or won amount) per calendar period
with nested 50/80/95% bands, the actual of the periods before, and the quota."""

from __future__ import annotations

from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._params import CHECKED_INSIDE, TITLE, Interval, Options, validate_params
from ..errors import InvalidParameterError
from . import _style as S
from ._calibration import when

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..forecast import Forecast

#: band coverage → (column suffix, opacity); drawn widest first
_BANDS = ((0.95, "", 0.18), (0.80, "80", 0.3), (0.50, "50", 0.45))
_FAN = S.OKABE_ITO["blue"]
_QUOTA = S.OKABE_ITO["vermillion"]
#: the unit words of ``value``
_WORDS = {"wins": ("wins", "Deals won"), "amount": ("won amount", "Won amount")}


def _forecast_of(data: Any, by_period: str, periods: int) -> Forecast:
    from ..forecast import Forecast

    if S.is_log(data):
        return data.forecast(by_period=by_period, periods=periods)  # type: ignore[no-any-return]
    if isinstance(data, Forecast):
        if data.periods is None or data.period_history is None:
            raise InvalidParameterError(
                "The Forecast passed as `data` has no per-period table: make it with "
                "log.forecast(by_period='ME', periods=...)."
            )
        return data
    raise InvalidParameterError(
        "`data` must be an fk.EventLog or a per-period Forecast "
        f"(log.forecast(by_period=...)); got {type(data).__name__}."
    )


def _rows(table: pd.DataFrame, by: list[str], segment: Any) -> tuple[pd.DataFrame, str]:
    """The rows of one segment and its description ('' without segments)."""
    if not by:
        if segment is not None:
            raise InvalidParameterError(
                "`segment` selects a segment of a forecast made with `by=`; this one has none."
            )
        return table, ""
    labels = table[by].drop_duplicates()
    if segment is None:
        if len(labels) == 1:
            segment = tuple(labels.iloc[0])
        else:
            raise InvalidParameterError(
                f"The forecast has {len(labels)} segments ({', '.join(by)}): name one with "
                f"`segment`=, e.g. segment={labels.iloc[0, 0]!r}; a fan's bands cannot be "
                "added up over segments."
            )
    key = segment if isinstance(segment, tuple) else (segment,)
    if len(key) != len(by):
        raise InvalidParameterError(
            f"`segment`={segment!r} must give one value per `by` column {by}."
        )
    mask = np.ones(len(table), dtype=bool)
    for col, val in zip(by, key, strict=True):
        mask &= (table[col] == val).to_numpy()
    if not mask.any():
        raise InvalidParameterError(
            f"`segment`={segment!r} is not a segment of the forecast; segments: "
            f"{[tuple(r) for r in labels.itertuples(index=False)]}."
        )
    desc = ", ".join(f"{c} = {v}" for c, v in zip(by, key, strict=True))
    return table.loc[mask].reset_index(drop=True), desc


@S.chart
@validate_params(
    {
        "data": [CHECKED_INSIDE],
        "value": [Options(str, ("wins", "amount"))],
        "by_period": [str],
        "periods": [Interval(Integral, 1, 36)],
        "segment": [CHECKED_INSIDE],
        "ax": ["axes", None],
        "title": TITLE,
        "kwargs": [CHECKED_INSIDE],
    }
)
def forecast(
    data: Any,
    *,
    value: str = "wins",
    by_period: str = "ME",
    periods: int = 3,
    segment: Any = None,
    ax: Axes | None = None,
    title: str | None = None,
    **kwargs: Any,
) -> Axes:
    """Fan chart of a per-period forecast.

    Per calendar period, the expected wins (or won amount) as a line with nested 50%,
    80% and 95% bands (darker = narrower), the actual of the periods before ``as_of`` as
    a line of points leading into the fan, and the quota as a short dashed line per period
    when the forecast has one. The fan starts at the last complete period's actual (known,
    no width). The current period's forecast includes what is already won in it.

    Parameters
    ----------
    data : Forecast or EventLog
        A forecast made with ``by_period`` (:meth:`funnelkit.EventLog.forecast`), or a
        log, forecast here with ``by_period`` and ``periods``.
    value : {"wins", "amount"}, default "wins"
        Deals won, or the won amount.
    by_period : str, default "ME"
        Only with a log: the periods (``"W"``, ``"ME"``, ``"QE"``, ``"YE"``).
    periods : int, default 3
        Only with a log: how many periods.
    segment : value or tuple, optional
        With a forecast made with ``by=``: the segment to draw (one value per ``by``
        column); required when there are several.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure sized for the periods.
    title : str, optional
        Default: "Forecast of wins per period" (or won amount).
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.plot` for the expected line.

    Returns
    -------
    matplotlib.axes.Axes
        Artists carry gids: ``"forecast-expected"`` (the expected line: one point per
        period forecast, after the apex), ``"forecast-band-95"``, ``"forecast-band-80"``,
        ``"forecast-band-50"`` (the bands), ``"forecast-actual"`` (actual per past
        period), ``"forecast-quota"`` (quota per period).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> fc = log.forecast(by_period="ME", periods=3, quota=5, quota_of="wins")
    >>> ax = fk.plot.forecast(fc)
    >>> line = next(ln for ln in ax.lines if ln.get_gid() == "forecast-expected")
    >>> bool((line.get_ydata()[1:] == fc.periods["expected_wins"]).all())
    True
    >>> sorted({a.get_gid() for a in ax.collections})
    ['forecast-band-50', 'forecast-band-80', 'forecast-band-95']
    """
    fc = _forecast_of(data, by_period, periods)
    assert fc.periods is not None and fc.period_history is not None
    fixed = {
        "period", "period_start", "period_end", "days_ahead", "open_deals", "stale_deals",
        "won_to_date", "arrival_model", "arrivals_per_day", "quota", "quota_remaining",
        "pipeline", "coverage", "p_quota",
    }  # fmt: skip
    by = [
        c
        for c in fc.periods.columns
        if c not in fixed and not c.startswith(("expected_", "wins_", "amount_", "won_amount"))
    ]
    table, desc = _rows(fc.periods, by, segment)
    hist, _ = _rows(fc.period_history, by, segment)
    if value == "amount" and not np.isfinite(table["expected_amount"]).all():
        raise InvalidParameterError(
            "`value`='amount' needs a log with amounts (EventLog(..., amount=...))."
        )
    exp_col = "expected_wins" if value == "wins" else "expected_amount"
    act_col = "wins" if value == "wins" else "won_amount"
    unit, ylabel = _WORDS[value]
    past = hist.loc[hist["complete"].to_numpy()]
    n_past, k = len(past), len(table)
    ax = S.new_axes(ax, (max(6.4, 0.55 * (n_past + k) + 3.4), 4.6))
    th = S.theme()
    xf = np.arange(k, dtype=float) + n_past
    # ---- actual before as_of, and the fan's apex at the last complete period
    if n_past:
        xp = np.arange(n_past, dtype=float)
        yp = past[act_col].to_numpy(dtype=float)
        ax.plot(
            xp, yp, color=th.text, marker="o", markersize=5, linewidth=1.4, zorder=4,
            gid="forecast-actual", label="actual",
        )  # fmt: skip
        x_fan = np.concatenate([[xp[-1]], xf])
        apex = yp[-1]
    else:
        x_fan, apex = xf, None

    box = x_fan.size == 1  # one period and no history: a box instead of a fan
    if box:
        x_fan = np.array([x_fan[0] - 0.3, x_fan[0] + 0.3])

    def with_apex(y: np.ndarray) -> np.ndarray:
        if box:
            return np.repeat(y, 2)
        return y if apex is None else np.concatenate([[apex], y])

    prefix = "wins" if value == "wins" else "amount"
    for cover, suffix, alpha in _BANDS:  # widest first, so narrower ones lie on top
        lo = with_apex(table[f"{prefix}_low{suffix}"].to_numpy(dtype=float))
        hi = with_apex(table[f"{prefix}_high{suffix}"].to_numpy(dtype=float))
        ax.fill_between(
            x_fan, lo, hi, color=_FAN, alpha=alpha, linewidth=0, zorder=2,
            gid=f"forecast-band-{int(cover * 100)}", label=f"{cover:.0%} interval",
        )  # fmt: skip
    line_kw: dict[str, Any] = {"color": _FAN, "linewidth": 2.0, "marker": "o", "markersize": 5}
    line_kw.update(kwargs)
    y_exp = table[exp_col].to_numpy(dtype=float)
    xe = xf if apex is None else np.concatenate([[x_fan[0]], xf])
    ye = y_exp if apex is None else np.concatenate([[apex], y_exp])
    ax.plot(xe, ye, zorder=5, gid="forecast-expected", label="expected", **line_kw)
    # ---- quota, as a short dashed line per period (in the unit it was given in)
    if "quota" in table.columns and table["quota"].notna().any():
        q = table["quota"].to_numpy(dtype=float)
        ok = np.isfinite(q)
        xs = np.column_stack([xf[ok] - 0.35, xf[ok] + 0.35, np.full(ok.sum(), np.nan)])
        ys = np.column_stack([q[ok], q[ok], np.full(ok.sum(), np.nan)])
        ax.plot(
            xs.reshape(-1), ys.reshape(-1), color=_QUOTA, linestyle="--", linewidth=1.6,
            zorder=6, gid="forecast-quota", label="quota",
        )  # fmt: skip
    labels = [str(p) for p in past["period"]] + [str(p) for p in table["period"]]
    ax.set_xticks(np.arange(n_past + k, dtype=float))
    ax.set_xticklabels(labels, rotation=0 if n_past + k <= 8 else 45, ha="center")
    if n_past + k > 8:
        for t in ax.get_xticklabels():
            t.set_horizontalalignment("right")
    ax.set_xlim(-0.6, n_past + k - 0.4)
    tops = [table[f"{prefix}_high"].to_numpy(dtype=float), y_exp]
    if n_past:
        tops.append(past[act_col].to_numpy(dtype=float))
    if "quota" in table.columns:
        tops.append(table["quota"].to_numpy(dtype=float))
    top = float(np.nanmax(np.concatenate(tops)))
    ax.set_ylim(0, top * 1.3 if top > 0 else 1.0)  # headroom for the legend
    if n_past:
        ax.axvline(n_past - 0.5, color=th.neutral, linewidth=1, linestyle=":", zorder=1)
    S.style_axes(ax, grid="y")
    if value == "amount":
        from matplotlib.ticker import FuncFormatter

        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: S.compact(v)))
    S.label(ax, x=None, y=ylabel)
    ax.legend(loc="upper left", frameon=False, fontsize=S.SMALL_SIZE, labelcolor=th.text, ncol=3)
    model = str(table["arrival_model"].iloc[0])
    model_text = "seasonal arrivals" if model == "seasonal" else "recent arrival rate"
    parts = [
        f"From {when(fc.as_of)}: open deals, returning stale deals and new ones ({model_text})",
    ]
    if desc:
        parts.insert(0, desc)
    if "p_quota" in table.columns and table["p_quota"].notna().any():
        pq = table["p_quota"].to_numpy(dtype=float)
        parts.append(
            "P(reach quota): "
            + ", ".join(
                f"{p} {S.pct(x, 0)}"
                for p, x in zip(table["period"], pq, strict=True)
                if np.isfinite(x)
            )
        )
    S.titles(
        ax,
        title if title is not None else f"Forecast of {unit} per period",
        "; ".join(parts),
        extra_pad=0.0,
    )
    return ax
