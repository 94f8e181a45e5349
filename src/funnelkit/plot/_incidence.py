"""Cumulative incidence of advancing and being lost per stage (the curves behind the
funnel's Aalen–Johansen conversion), with the unresolved share visible."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._params import CHECKED_INSIDE, TITLE, validate_params
from ..errors import InvalidParameterError
from . import _style as S
from ._dwell import legend_strip, room_at_top

if TYPE_CHECKING:
    from matplotlib.axes import Axes

INCIDENCE_COLUMNS = ["stage", "time", "advanced", "lost", "unresolved"]
#: the drawn curves leave out steps smaller than this (0.1 percentage point; a tenth of a
#: pixel on the default figure): a stage of 200,000 deals has ~200,000 steps, drawn in
#: full a 100 MB SVG; thinned at most ~1/THIN_STEP points per curve
THIN_STEP = 0.001
#: the stacked bands, bottom to top: resolved outcomes, then what is not resolved yet
_BANDS = (
    ("advanced", "advanced", S.WON),
    ("lost", "lost", S.LOST),
    ("unresolved", "not resolved (open or silent)", S.CENSORED),
)


@S.chart
@validate_params(
    {
        "data": [CHECKED_INSIDE],
        "ax": ["axes", None],
        "title": TITLE,
        "kwargs": [CHECKED_INSIDE],
        "stage": [str, None],
    }
)
def incidence(
    data: Any,
    stage: str | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    **kwargs: Any,
) -> Axes:
    """Stacked cumulative incidence of one stage: advanced, lost and not yet resolved.

    At each time since entering the stage the three bands add up to 1: the share of
    deals that have advanced (a later stage or the win), been lost, and — on top,
    hatched — the share not resolved by then (still open, or silent: a silent deal may
    still move). The height of the green band at the right edge is ``funnel()``'s
    ``conversion``; the hatched band left there is its ``unresolved`` share, unless the
    curves have levelled off (no advance during the last ``stale_after``), in which case
    ``funnel()`` counts the silent rest as stale, i.e. lost. A dashed line marks the 95%
    interval of the advanced share.

    The curves are drawn through at most about 1,000 points each (:func:`thin_steps`):
    a row is kept where a drawn value has moved by 0.1 percentage point or more
    (:data:`THIN_STEP`) since the last kept row, plus the first and last rows, so the
    drawn steps stay within 0.1 point of the full ones and every kept row is exact.

    Parameters
    ----------
    data : EventLog or pandas.DataFrame
        A log, or the table of :meth:`funnelkit.EventLog.incidence` (columns ``stage``,
        ``time``, ``advanced``, ``lost``, ``unresolved``; optional
        ``advanced_low``, ``advanced_high``).
    stage : str, optional
        The stage to draw; default the first stage of the table.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. Default: a new figure.
    title : str, optional
        Default: "Deals entering <stage>".
    **kwargs
        Passed to :meth:`matplotlib.axes.Axes.fill_between` for every band.

    Returns
    -------
    matplotlib.axes.Axes
        The bands carry the gids ``"incidence-advanced"``, ``"incidence-lost"``,
        ``"incidence-unresolved"``; the interval lines
        ``"incidence-ci"``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> ax = fk.plot.incidence(log, "Demo")
    >>> sorted(c.get_gid() for c in ax.collections)[:2]
    ['incidence-advanced', 'incidence-lost']
    """
    table, _ = S.table_or_log(
        data,
        required=INCIDENCE_COLUMNS,
        # one stage is drawn: compute only it (the first stage by default)
        compute=lambda log: log.incidence(stage if stage is not None else log.stages[:1]),
        what="an incidence table (EventLog.incidence)",
    )
    stages = S.ordered_unique(table["stage"])
    if not stages:
        raise ValueError("The incidence table is empty: nothing to draw.")
    if stage is None:
        stage = stages[0]
    elif stage not in stages:
        raise InvalidParameterError(
            f"`stage`={stage!r} is not in the table; its stages are {stages}."
        )
    rows = table.loc[table["stage"] == stage]
    extra = [
        c
        for c in table.columns
        if c not in {*INCIDENCE_COLUMNS}
        and not str(c).startswith(("advanced_", "lost_", "won", "at_risk"))
    ]
    if extra and rows[extra].drop_duplicates().shape[0] > 1:
        raise ValueError(
            f"The table has several segments ({extra}); select one segment's rows first."
        )
    rows = curve_rows(rows)
    t = np.concatenate([[0.0], S.to_days(rows["time"])])
    ax = S.new_axes(ax, (7.2, 4.4))
    base = np.zeros(t.size)
    for col, name, color in _BANDS:
        v = np.concatenate(
            [[1.0 if col == "unresolved" else 0.0], rows[col].to_numpy(dtype=float)]
        )
        band_kw: dict[str, Any] = {
            "step": "post",
            "color": color,
            "alpha": 0.85,
            "linewidth": 0,
            **({"hatch": "//", "alpha": 0.35} if col == "unresolved" else {}),
        }
        band_kw.update(kwargs)
        ax.fill_between(t, base, base + v, gid=f"incidence-{col}", label=name, **band_kw)
        base = base + v
    if {"advanced_low", "advanced_high"} <= set(rows.columns):
        for col in ("advanced_low", "advanced_high"):
            v = np.concatenate([[0.0], rows[col].to_numpy(dtype=float)])
            ax.step(
                t,
                v,
                where="post",
                color=S.TEXT,
                linestyle="--",
                linewidth=0.9,
                gid="incidence-ci",
                label="95% interval (advanced)" if col.endswith("low") else None,
            )
    last = rows.iloc[-1]
    ax.set_xlim(0, max(float(t[-1]), 1e-9))
    # the legend: a strip across the top of the Axes, above the bands (which fill 0 … 1)
    handles, labels = ax.get_legend_handles_labels()
    _, share = legend_strip(ax, handles, labels, fontsize=S.SMALL_SIZE, max_ncol=4)
    ax.set_ylim(0, room_at_top(0.0, 1.0, share))
    ax.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.spines["left"].set_bounds(0.0, 1.0)
    S.style_axes(ax, grid="y")
    S.percent_axis(ax, "y")
    S.label(ax, x="Days since entering the stage", y="Share of deals")
    S.titles(
        ax,
        title if title is not None else f"Deals entering {S.wrap(stage, 28, max_lines=2)}",
        f"advanced {S.pct(float(last['advanced']))}, not resolved "
        f"{S.pct(float(last['unresolved']))} at the longest follow-up",
    )
    return ax


#: the columns the chart draws, which :func:`curve_rows` keeps within THIN_STEP
DRAWN = ("advanced", "lost", "unresolved", "advanced_low", "advanced_high")


def curve_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of one curve of an incidence table that the chart draws (:func:`thin_steps`
    over the drawn columns), so a caller can hold them instead of the whole table.

    Parameters
    ----------
    table : pandas.DataFrame
        One stage (and segment) of :meth:`funnelkit.EventLog.incidence`, in time order.

    Returns
    -------
    pandas.DataFrame
        Its kept rows, index and columns unchanged; thinning them again keeps them all.
    """
    drawn = [c for c in DRAWN if c in table.columns]
    return table.iloc[thin_steps(table[drawn].to_numpy(dtype=float))]


def thin_steps(values: np.ndarray, step: float = THIN_STEP) -> np.ndarray:
    """Rows of step curves to draw: the first, the last, and each row where a curve
    enters another ``step``-wide band of values.

    Between two kept rows every value of each curve lies in the band of the first of them,
    so the step curve drawn through the kept rows (each held until the next) differs from
    the full one by less than ``step`` everywhere, and is exact at the kept rows. A
    monotone curve enters at most ``1 / step`` bands.

    Parameters
    ----------
    values : numpy.ndarray
        Shape (rows, curves), in time order; NaN is a band of its own.
    step : float, default THIN_STEP

    Returns
    -------
    numpy.ndarray
        The kept row positions, ascending.

    Examples
    --------
    >>> import numpy as np
    >>> from funnelkit.plot._incidence import thin_steps
    >>> thin_steps(np.array([[0.0], [0.0004], [0.0012], [0.0013], [0.5], [0.5]]))
    array([0, 2, 4, 5])
    """
    v = np.asarray(values, dtype=float)
    if v.ndim == 1:
        v = v[:, None]
    n = v.shape[0]
    if n <= 2:
        return np.arange(n)
    band = np.floor(v / step)
    band = np.where(np.isnan(band), -np.inf, band)  # NaN: a band of its own
    moved = (band[1:] != band[:-1]).any(axis=1)
    keep = np.concatenate([[True], moved])
    keep[-1] = True
    return np.flatnonzero(keep)


__all__ = ["incidence"]
