"""A synthetic field history (close date, amount, forecast category) for an event log,
shaped like a CRM's field-history export, and the bundled sample's history."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidParameterError
from ._common import DEFAULT_LOST, DEFAULT_WON
from ._common import string_dtype as _string_dtype

__all__ = ["SAMPLE_HISTORY_KWARGS", "field_history", "load_sample_history"]

#: field names in the generated history (Salesforce's API names)
FIELD_NAMES = {
    "close_date": "CloseDate",
    "amount": "Amount",
    "forecast_category": "ForecastCategoryName",
}
SAMPLE_HISTORY_KWARGS: dict[str, Any] = {
    "deal": "deal_id",
    "field": "field",
    "value": "new_value",
    "time": "changed_at",
    "fields": dict(FIELD_NAMES),
}
"""Keywords of :meth:`funnelkit.EventLog.with_history` for the bundled sample's history
(see :func:`load_sample_history`)."""

_COLUMNS = ["deal_id", "field", "new_value", "changed_at"]
_DAY = 86_400 * 10**9
SAMPLE_SEED = 22


def field_history(
    events: pd.DataFrame,
    *,
    seed: int | Sequence[int] | None = 0,
    deal: str = "deal_id",
    stage: str = "stage",
    time: str = "ts",
    amount: str | None = "amount",
    won: str | Sequence[str] = DEFAULT_WON,
    lost: str | Sequence[str] = DEFAULT_LOST,
    p_push: float = 0.3,
    p_pull: float = 0.06,
    p_amount: float = 0.15,
) -> pd.DataFrame:
    """Simulate the field history of an event log's deals, as a CRM exports it.

    Per deal, in time order of its events:

    * at its first event the close date is set 30 to 119 days ahead (whole days, uniform)
      and the forecast category to ``"Pipeline"``;
    * at each later non-terminal event, independently: the close date is pushed later by 7
      to 59 days with probability ``p_push``, else pulled earlier by 7 to 29 days with
      probability ``p_pull``; the amount is multiplied by a lognormal factor (log-scale
      sigma 0.3, rounded to cents) with probability ``p_amount``; each change is logged 0
      to 179 minutes after the event (never after the latest event);
    * the forecast category follows the stage: ``"Pipeline"`` in the first third of the
      stages (by first appearance in the deals' paths), ``"Best Case"`` in the middle,
      ``"Commit"`` in the last third, ``"Closed"`` at a won event and ``"Omitted"`` at a
      lost one — one row whenever it changes;
    * at a won or lost event the close date is set to the event's date.

    Parameters
    ----------
    events : pandas.DataFrame
        An event log, e.g. from :func:`synthetic` or :func:`load_sample`.
    seed : int, sequence of int or None, default=0
        Seed of its own :func:`numpy.random.default_rng` (the events are not touched).
    deal, stage, time, amount : str
        The event log's columns (``amount=None``: no amount changes).
    won, lost : str or sequence of str
        Terminal stage names.
    p_push, p_pull, p_amount : float, default=0.3, 0.06, 0.15
        Probabilities per event, as above.

    Returns
    -------
    pandas.DataFrame
        One row per field change, sorted by ``changed_at`` then deal:

        * ``deal_id`` : the deal (the events' ``deal`` column, named ``deal_id``)
        * ``field`` : ``"CloseDate"``, ``"Amount"`` or ``"ForecastCategoryName"``
        * ``new_value`` : text, as exported — a date ``"2025-06-30"``, an amount
          ``"12345.67"`` or a category
        * ``changed_at`` : when the change was made (the events' time dtype)

    Examples
    --------
    >>> import funnelkit as fk
    >>> events = fk.datasets.synthetic(50, seed=1)
    >>> h = fk.datasets.field_history(events, seed=1)
    >>> sorted(h["field"].unique())
    ['Amount', 'CloseDate', 'ForecastCategoryName']
    >>> log = fk.EventLog(events, stages=list(fk.datasets.SAMPLE_KWARGS["stages"]),
    ...                   won="Won", lost=["Lost", "Disqualified"], amount="amount")
    >>> log.with_history(h, **fk.datasets.SAMPLE_HISTORY_KWARGS).history.quality.rows_rejected
    0
    """
    for nm, p in (("p_push", p_push), ("p_pull", p_pull), ("p_amount", p_amount)):
        if not (isinstance(p, (int, float)) and 0 <= p <= 1):
            raise InvalidParameterError(
                f"field_history: `{nm}` must be a probability in [0, 1]; got {p!r}."
            )
    if p_push + p_pull > 1:
        raise InvalidParameterError(
            f"field_history: `p_push` + `p_pull` must be at most 1; got {p_push + p_pull}."
        )
    rng = np.random.default_rng(seed)
    won_set = {won} if isinstance(won, str) else set(won)
    lost_set = {lost} if isinstance(lost, str) else set(lost)
    ev = events[[c for c in dict.fromkeys([deal, stage, time, amount]) if c is not None]]
    ev = ev.reset_index(drop=True)
    ts = pd.DatetimeIndex(ev[time])
    aware = ts.tz is not None
    ns = np.asarray((ts.tz_convert("UTC").tz_localize(None) if aware else ts).asi8)
    codes, uniq = pd.factorize(ev[deal])
    order = np.lexsort((np.arange(len(ev)), ns, codes))
    d, t = codes[order], ns[order]
    st = ev[stage].astype(object).to_numpy()[order]
    n = d.size
    first = np.concatenate([[True], d[1:] != d[:-1]])
    is_won = np.array([s in won_set for s in st], dtype=bool)
    is_lost = np.array([s in lost_set for s in st], dtype=bool)
    term = is_won | is_lost
    latest = int(t.max())

    # forecast category from the stage's position (first appearance order in paths)
    stage_names = [s for s in pd.unique(st[~term])]
    pos = {s: i for i, s in enumerate(stage_names)}
    k = max(len(stage_names), 1)
    cat = np.array(
        [
            "Closed"
            if w
            else "Omitted"
            if lo
            else ("Pipeline", "Best Case", "Commit")[min(3 * pos[s] // k, 2)]
            for s, w, lo in zip(st, is_won, is_lost, strict=True)
        ],
        dtype=object,
    )
    # draws, one array per kind, in a fixed order (the stream never depends on the data's
    # content beyond its size)
    horizon = rng.integers(30, 120, size=n)
    u = rng.random(n)
    push_days = rng.integers(7, 60, size=n)
    pull_days = rng.integers(7, 30, size=n)
    u_amt = rng.random(n)
    factor = np.exp(rng.normal(0.0, 0.3, size=n))
    lag = rng.integers(0, 180, size=n) * 60 * 10**9
    change_t = np.minimum(t + lag, np.maximum(t, latest))

    later = ~first & ~term
    push = later & (u < p_push)
    pull = later & (u >= p_push) & (u < p_push + p_pull)
    delta = np.where(first, horizon, np.where(push, push_days, np.where(pull, -pull_days, 0)))
    day_of = (t // _DAY) * _DAY
    start_of = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    close = day_of[start_of] + _DAY * _grouped_cumsum(delta, first)
    rows: list[pd.DataFrame] = []

    def add(mask: np.ndarray, name: str, values: np.ndarray, when: np.ndarray) -> None:
        rows.append(
            pd.DataFrame(
                {"code": d[mask], "field": name, "new_value": values[mask], "t": when[mask]}
            )
        )

    close_text = pd.DatetimeIndex(close.astype("datetime64[ns]")).strftime("%Y-%m-%d")
    term_text = pd.DatetimeIndex(day_of.astype("datetime64[ns]")).strftime("%Y-%m-%d")
    add(first | push | pull, FIELD_NAMES["close_date"], np.asarray(close_text), change_t)
    add(term, FIELD_NAMES["close_date"], np.asarray(term_text), t)
    if amount is not None:
        base = pd.to_numeric(ev[amount], errors="coerce").to_numpy(dtype=np.float64)[order]
        change = later & (u_amt < p_amount) & ~np.isnan(base)
        f = np.where(change, factor, 1.0)
        value = np.round(base * _grouped_cumprod(f, first), 2)
        add(change, FIELD_NAMES["amount"], np.array([f"{v:.2f}" for v in value]), change_t)
    prev = np.concatenate([[None], cat[:-1]])
    cat_change = first | (cat != prev)
    add(cat_change, FIELD_NAMES["forecast_category"], cat, np.where(first, t, t))
    out = pd.concat(rows, ignore_index=True)
    out = out.sort_values(["t", "code", "field"], kind="stable").reset_index(drop=True)
    when = pd.DatetimeIndex(out["t"].to_numpy().astype("datetime64[ns]"))
    if aware:
        when = when.tz_localize("UTC")
    return pd.DataFrame(
        {
            "deal_id": pd.Series(uniq).to_numpy()[out["code"].to_numpy()],
            "field": out["field"].astype(_string_dtype()),
            "new_value": out["new_value"].astype(_string_dtype()),
            "changed_at": when,
        }
    )


def _grouped_cumsum(x: np.ndarray, first: np.ndarray) -> np.ndarray:
    c = np.cumsum(x)
    start = np.maximum.accumulate(np.where(first, np.arange(x.size), 0))
    return c - c[start] + x[start]


def _grouped_cumprod(x: np.ndarray, first: np.ndarray) -> np.ndarray:
    return np.exp(_grouped_cumsum(np.log(x), first))


def load_sample_history() -> pd.DataFrame:
    """Load the field history of the bundled sample (:func:`load_sample`).

    It was simulated by :func:`field_history` on the sample's events with seed 22 and the
    default probabilities (written by ``build_sample_history``), and carries Salesforce's
    field names, so it needs the mapping in :data:`SAMPLE_HISTORY_KWARGS`.

    Returns
    -------
    pandas.DataFrame
        One row per field change (see :func:`field_history`): ``deal_id``, ``field``,
        ``new_value`` (text), ``changed_at`` (``datetime64[ns, UTC]``).

    Examples
    --------
    >>> import funnelkit as fk
    >>> h = fk.datasets.load_sample_history()
    >>> h.columns.tolist()
    ['deal_id', 'field', 'new_value', 'changed_at']
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> log = log.with_history(h, **fk.datasets.SAMPLE_HISTORY_KWARGS)
    >>> log.history.quality.rows_used == len(h)
    True
    """
    source = resources.files(__package__).joinpath("sample_history.csv")
    with source.open("rb") as f:
        out = pd.read_csv(
            f, encoding="utf-8", dtype=dict.fromkeys(_COLUMNS, str), keep_default_na=False
        )
    out["changed_at"] = pd.to_datetime(out["changed_at"], utc=True, format="ISO8601").astype(
        "datetime64[ns, UTC]"
    )
    strings = ["deal_id", "field", "new_value"]
    out[strings] = out[strings].astype(_string_dtype())
    return out[_COLUMNS]
