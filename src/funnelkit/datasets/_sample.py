"""The bundled sample event log (``sample.csv``, written by ``scripts/make_sample.py``)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pandas as pd

from ._common import string_dtype as _string_dtype

__all__ = ["SAMPLE_KWARGS", "load_sample"]

SAMPLE_KWARGS: dict[str, Any] = {
    "deal": "deal_id",
    "stage": "stage",
    "time": "ts",
    "stages": ["Lead", "Qualified", "Discovery", "Demo", "Proposal", "Negotiation"],
    "won": "Won",
    "lost": ["Lost", "Disqualified"],
    "amount": "amount",
    "attrs": ["region", "owner", "team"],
    "stale_after": "60D",
}
"""Keywords of :class:`funnelkit.EventLog` for the bundled sample (see :func:`load_sample`)."""

_COLUMNS = ["deal_id", "stage", "ts", "amount", "region", "owner", "team"]


def load_sample() -> pd.DataFrame:
    """Load the bundled sample event log of 600 deals.

    The sample was simulated by :func:`funnelkit.datasets.synthetic` (see
    ``scripts/make_sample.py``) with the default stages, deals created between 2024-01-01
    and 2025-06-30, observed at 2025-06-30, and two planted effects: **Team C** advances
    from **Demo** with probability 0.35 instead of 0.65, and a **Proposal** visit that lasts
    more than **30 days** advances with probability 0.15 instead of 0.6. It holds every edge
    case of the generator: skipped stages, backward moves, re-logged stages, tied
    timestamps, reopened deals, both lost names ("Lost" and "Disqualified"), deals that fell
    silent (pass ``stale_after`` to :class:`funnelkit.EventLog` to count them as stale) and
    deals still open at the end.

    Returns
    -------
    pandas.DataFrame
        One row per event, in no particular order:

        * ``deal_id`` : deal id, ``"D000001"`` to ``"D000600"``
        * ``stage`` : one of :data:`SAMPLE_KWARGS` ``["stages"]``, ``"Won"``, ``"Lost"`` or
          ``"Disqualified"``
        * ``ts`` : ``datetime64[ns, UTC]``, when the deal entered the stage
        * ``amount`` : float, the deal's amount (the same on every event of the deal)
        * ``region``, ``owner``, ``team`` : the deal's segments

        String columns have pandas' default string dtype, as :func:`pandas.read_csv` gives.

    Examples
    --------
    >>> from funnelkit.datasets import load_sample, SAMPLE_KWARGS
    >>> events = load_sample()
    >>> events.columns.tolist()
    ['deal_id', 'stage', 'ts', 'amount', 'region', 'owner', 'team']
    >>> events["deal_id"].nunique()
    600
    >>> str(events["ts"].dtype)
    'datetime64[ns, UTC]'

    Wrap it in an event log:

    >>> import funnelkit as fk
    >>> log = fk.EventLog(events, **SAMPLE_KWARGS)  # doctest: +SKIP
    """
    source = resources.files(__package__).joinpath("sample.csv")
    with source.open("rb") as f:
        # Everything as text first, so a region named "NA" or an owner named "1" stays a
        # name and amounts go through a correctly rounded parser (they round-trip exactly).
        events = pd.read_csv(
            f,
            encoding="utf-8",
            dtype=dict.fromkeys(_COLUMNS, str),
            keep_default_na=False,
            na_values=[""],
        )
    events["ts"] = pd.to_datetime(events["ts"], utc=True, format="ISO8601").astype(
        "datetime64[ns, UTC]"
    )
    events["amount"] = events["amount"].astype("float64")
    strings = ["deal_id", "stage", "region", "owner", "team"]
    events[strings] = events[strings].astype(_string_dtype())
    return events[_COLUMNS]


# ---- the builders of the bundled side tables (the tests check the files are current)
def build_sample_activities() -> str:
    """The CSV text of ``sample_activities.csv``: the activities of the sample's recipe
    (``scripts/make_sample.py``) with a planted feedback effect at Proposal, up to the
    sample's latest event (its default ``as_of``)."""
    import importlib.util
    from pathlib import Path

    from ._synthetic import synthetic

    script = Path(__file__).resolve().parents[3] / "scripts" / "make_sample.py"
    spec = importlib.util.spec_from_file_location("make_sample", script)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    events, acts = synthetic(
        **mod.RECIPE, activities=True, feedback_effect={"stage": "Proposal", "effect": -0.15}
    )
    sample = load_sample()
    assert len(events) == len(sample)
    acts = acts[acts["ts"] <= sample["ts"].max()]
    acts = acts.assign(ts=acts["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return acts.to_csv(index=False, lineterminator="\n")


def build_sample_history() -> str:
    """The CSV text of ``sample_history.csv``: :func:`field_history` of the sample."""
    from ._history import SAMPLE_SEED, field_history

    h = field_history(load_sample(), seed=SAMPLE_SEED)
    h = h.assign(changed_at=h["changed_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return h.to_csv(index=False, lineterminator="\n")
