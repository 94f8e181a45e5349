"""Regenerate the bundled sample event log ``src/funnelkit/datasets/sample.csv``.

The sample is :func:`funnelkit.datasets.synthetic` with the fixed recipe below: 600 deals,
the default stages and edge cases, Team C weak at Demo and a stall at Proposal. Timestamps
are written as ISO 8601 UTC strings (``2024-03-05T14:07:31Z``). Run from anywhere::

    python scripts/make_sample.py            # rewrite the bundled file
    python scripts/make_sample.py --check    # exit 1 if the bundled file is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, cast

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "src" / "funnelkit" / "datasets" / "sample.csv"

SEED = 20250630
RECIPE: dict[str, Any] = {
    "n_deals": 600,
    "seed": SEED,
    "start": "2024-01-01",
    "end": "2025-06-30",
    "segment_effect": {"column": "team", "value": "Team C", "stage": "Demo", "advance": 0.35},
    "stall": {"stage": "Proposal", "after_days": 30, "advance": 0.15},
}


def build() -> pd.DataFrame:
    """The sample event log, exactly as :func:`funnelkit.datasets.load_sample` returns it."""
    from funnelkit.datasets import synthetic

    return cast(pd.DataFrame, synthetic(**RECIPE))


def to_csv_text(events: pd.DataFrame) -> str:
    """The CSV text of the bundled file: ISO 8601 UTC timestamps, ``\\n`` line ends."""
    out = events.assign(ts=events["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return out.to_csv(index=False, lineterminator="\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, do not write")
    args = parser.parse_args(argv)
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))  # use the working tree, installed or not

    events = build()
    text = to_csv_text(events)
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date; run python scripts/make_sample.py", file=sys.stderr)
            return 1
        print(f"{TARGET} is up to date")
        return 0
    TARGET.write_text(text, encoding="utf-8", newline="")
    outcome = events.groupby("deal_id")["stage"].agg(set)
    print(
        f"wrote {TARGET.relative_to(ROOT)}: {events['deal_id'].nunique()} deals, "
        f"{len(events)} rows, {outcome.map(lambda s: 'Won' in s).sum()} deals with a Won event"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
