"""Segments for ``by=``: per-deal group codes from carried attributes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._columns import as_list
from .errors import InvalidParameterError

if TYPE_CHECKING:
    from .log import EventLog


def normalize_by(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return as_list(by, "by", ordered=False)  # a set of columns: sorted, not hash order


def segments(log: EventLog, by: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Dense per-deal segment codes and a table of segment labels (one column per attr).

    Deals with a missing value form their own segment (label NaN): no deal is lost.
    """
    if not by:
        return np.zeros(log.n_deals, dtype=np.int64), pd.DataFrame(index=[0])
    if is_visit_level(log, by):
        va = [b for b in by if b in log._visit_attrs]
        raise InvalidParameterError(
            f"`by`={va} names a visit attribute (who held the deal at each stage); this "
            "analysis needs a deal attribute: add the column to attrs=[...] as well."
        )
    unknown = [b for b in by if b not in log._attrs]
    if unknown:
        raise InvalidParameterError(
            f"`by`={unknown} is not a carried attribute of this log; carried: "
            f"{log.attrs}. Pass attrs=[...] when building the EventLog."
        )
    seg, codes = _mixed_radix(log, by)
    cats = {b: log._attrs[b].cat.categories for b in by}
    table = pd.DataFrame(
        {b: np.asarray(pd.Categorical.from_codes(codes[b], categories=cats[b])) for b in by}
    )
    return seg.reshape(-1).astype(np.int64), table


def expand(table: pd.DataFrame, seg_of_row: np.ndarray, by: list[str]) -> pd.DataFrame:
    """The label columns for rows that belong to segments ``seg_of_row``."""
    if not by:
        return pd.DataFrame(index=range(seg_of_row.size))
    return table.iloc[seg_of_row].reset_index(drop=True)


def is_visit_level(log: EventLog, by: list[str]) -> bool:
    """True when ``by`` names a visit attribute (attribution per stage)."""
    return any(b in log._visit_attrs for b in by)


def path_segments(log: EventLog, by: list[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Segment codes per event of the cleaned path and a table of segment labels.

    Visit attributes take the value on the event itself (whoever held the deal when it
    entered that stage); deal attributes the deal's carried value.
    """
    unknown = [b for b in by if b not in log._attrs and b not in log._visit_attrs]
    if unknown:
        raise InvalidParameterError(
            f"`by`={unknown} is not a carried attribute of this log; carried per deal: "
            f"{log.attrs}, per visit: {list(log._visit_attrs)}. Pass attrs=[...] or "
            "visit_attrs=[...] when building the EventLog."
        )
    n = log._path_deal.size
    key = np.zeros(n, dtype=np.int64)
    cats = []
    for b in by:
        if b in log._visit_attrs:
            codes, uniques = log._visit_attrs[b]
            codes = np.asarray(codes, dtype=np.int64)
        else:
            cat = log._attrs[b].cat
            codes = cat.codes.to_numpy().astype(np.int64)[log._path_deal]
            uniques = cat.categories
        cats.append((b, uniques))
        key = key * (len(uniques) + 1) + (codes + 1)
    uniq, seg = np.unique(key, return_inverse=True)
    rem = uniq.copy()
    labels = {}
    for b, uniques in reversed(cats):
        base = len(uniques) + 1
        code = rem % base - 1
        rem = rem // base
        labels[b] = np.asarray(pd.Categorical.from_codes(code, categories=uniques))
    return seg.reshape(-1).astype(np.int64), pd.DataFrame({b: labels[b] for b in by})


# ---- segments of a partition of a scale-out log, coded like its summary tables
def attr_column(name: str) -> str:
    """Column of a carried attribute in the summary tables."""
    return f"attr:{name}"


def _mixed_radix(log: EventLog, attrs: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per deal a dense code of its combination of ``attrs`` values, and per attribute
    each combination's category code (−1: missing). Combinations are ordered by their
    category codes (mixed radix, missing first)."""
    key = np.zeros(log.n_deals, dtype=np.int64)
    for a in attrs:
        cat = log._attrs[a].cat
        key = key * (len(cat.categories) + 1) + (cat.codes.to_numpy().astype(np.int64) + 1)
    uniq, seg = np.unique(key, return_inverse=True)
    codes: dict[str, np.ndarray] = {}
    rem = uniq.copy()
    for a in reversed(attrs):
        base = len(log._attrs[a].cat.categories) + 1
        codes[a] = rem % base - 1
        rem = rem // base
    return seg.reshape(-1).astype(np.int64), codes


def segment_codes(log: EventLog, attrs: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per deal a local segment code over all carried attributes, and each segment's
    attribute values (object arrays, None for missing)."""
    if not attrs:
        return np.zeros(log.n_deals, dtype=np.int64), {}
    seg, codes = _mixed_radix(log, attrs)
    labels: dict[str, np.ndarray] = {}
    for a in attrs:
        values = np.asarray(log._attrs[a].cat.categories.astype(object), dtype=object)
        code = codes[a]
        vals = np.full(code.size, None, dtype=object)
        ok = code >= 0
        vals[ok] = values[code[ok]]
        labels[a] = vals
    return seg, labels


def seg_columns(labels: dict[str, np.ndarray], seg: np.ndarray) -> dict[str, np.ndarray]:
    """The ``attr:…`` columns of the segments ``seg`` (see :func:`segment_codes`)."""
    return {attr_column(a): vals[seg] for a, vals in labels.items()}
