"""Write ``crm_wide.csv``: a synthetic wide CRM export (one row per opportunity).

It mirrors the public "CRM sales opportunities" sample's shape: ``opportunity_id``,
``sales_agent``, ``product``, ``account``, ``deal_stage`` (Prospecting, Engaging, Won,
Lost), ``engage_date``, ``close_date`` (both ``dd-mm-yy``), ``close_value``; plus
``created_on`` (``dd-mm-yy``) for the ``created_at`` path. Deals still prospecting have no
engage or close date; a few values are broken on purpose (see ``BROKEN``). Seeded, so the
file is the same on every run: ``python tests/data/make_crm_wide.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

N = 600
SEED = 15
#: deliberately bad values: (row, column, value)
BROKEN = [
    (11, "close_date", "31-02-23"),  # no such day
    (57, "close_date", "TBD"),
    (123, "engage_date", "soon"),  # a won deal whose engage date is unreadable
    (301, "close_date", ""),  # a won/lost deal with no close date
    (302, "close_date", ""),
]


def make() -> pd.DataFrame:
    rng = np.random.default_rng(SEED)
    stage = rng.choice(
        ["Prospecting", "Engaging", "Won", "Lost"], size=N, p=[0.07, 0.18, 0.45, 0.30]
    )
    created = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 330, N), unit="D")
    engaged = created + pd.to_timedelta(rng.integers(0, 30, N), unit="D")
    closed = engaged + pd.to_timedelta(rng.integers(1, 120, N), unit="D")
    closed_deal = np.isin(stage, ["Won", "Lost"])
    value = np.where(stage == "Won", rng.integers(500, 30_000, N), 0).astype(float)
    fmt = "%d-%m-%y"
    df = pd.DataFrame(
        {
            "opportunity_id": [f"OPP{i:05d}" for i in range(N)],
            "sales_agent": rng.choice(["Anna Snelling", "Darcel Schlecht", "Vicki Laflamme"], N),
            "product": rng.choice(["GTX Basic", "GTX Pro", "MG Special"], N),
            "account": rng.choice(["Acme Corporation", "Betasoloin", "Cancity", ""], N),
            "deal_stage": stage,
            "created_on": created.strftime(fmt),
            "engage_date": np.where(stage != "Prospecting", engaged.strftime(fmt), ""),
            "close_date": np.where(closed_deal, closed.strftime(fmt), ""),
            "close_value": np.where(closed_deal, value, np.nan),
        }
    )
    for row, col, val in BROKEN:
        df.loc[row, col] = val
    return df


if __name__ == "__main__":
    make().to_csv(Path(__file__).with_name("crm_wide.csv"), index=False)
