"""The data-quality report that travels with every event log."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["QualityReport", "REASONS"]

#: Why an input row is not an event of the cleaned log, by kind of treatment.
REASONS: dict[str, str] = {
    # dropped: bad rows (only under errors="drop"; under "raise" they raise)
    "invalid_deal": "dropped",
    "missing_deal": "dropped",
    "invalid_stage": "dropped",
    "missing_stage": "dropped",
    "missing_time": "dropped",
    "unparseable_time": "dropped",
    "mixed_timezone": "dropped",
    "time_out_of_range": "dropped",
    "unknown_stage": "dropped",
    "after_as_of": "dropped",
    "invalid_amount": "dropped",
    "conflicting_outcome": "dropped",
    # an event at a post-sale stage (``post_sale=``) while the deal was not won
    "post_sale_not_won": "dropped",
    # wide exports (EventLog.from_milestones): a deal with no date at all
    "no_dates": "dropped",
    # removed by the path rules
    "reopened_terminal": "removed",
    # collapsed into an earlier event of the same visit or outcome
    "repeat": "collapsed",
    "terminal_run": "collapsed",
    # set aside: an event at a post-sale stage after the deal was won (log.post_sale())
    "post_sale": "post_sale",
}


@dataclass(frozen=True)
class QualityReport:
    """What happened to every input row and every deal.

    Rows: ``rows_in == rows_used + rows_dropped + rows_removed + rows_collapsed +
    rows_post_sale``.
    Deals: ``deals == won + lost + stale + open``.

    For a log built from a wide export (:meth:`EventLog.from_milestones`, ``source ==
    "deals"``) the rows are the rows of the caller's table, one per deal: ``rows_used``
    rows whose deal is in the log, ``rows_dropped`` rows left out (each listed in
    ``log.rejects`` with its reason, e.g. ``no_dates``); ``by_reason`` and ``by_column``
    count the entries of ``log.rejects`` — a rejected row, or one rejected value (a cell) of
    a row whose deal is still in the log.

    Attributes
    ----------
    rows_in, rows_used, rows_dropped, rows_removed, rows_collapsed : int
        Input rows; events of the cleaned log; bad rows dropped (``errors="drop"``);
        reopened terminal events removed from the path; rows collapsed into an earlier
        event (repeats, terminal runs).
    by_reason : dict[str, int]
        Rows per reason (see :data:`REASONS`), only reasons that occurred.
    deals, won, lost, stale, open, reopened : int
        Deal counts by outcome; ``reopened`` deals had a terminal event followed by more
        stage events.
    deals_without_amount : int
        Deals with no non-null amount (they weigh 0 in revenue funnels); 0 when no
        ``amount`` column was mapped.
    attr_changes : dict[str, int]
        Per carried column (amount and attrs), deals whose non-null value changes within
        the deal (the first non-null value in event order is used).
    unresolved_ties : int
        Deals with events at the same timestamp whose order only the input order decides.
    stages, stage_order_inferred : list[str], bool
        The funnel order used and whether it was inferred from the data.
    as_of : pandas.Timestamp
        The observation time used.
    rows_post_sale, post_sale_deals : int
        Rows at a ``post_sale`` stage after the deal was won, set aside from the funnel
        (``log.post_sale()``; listed in ``log.rejects`` with reason ``post_sale``), and
        the deals they belong to; 0 without ``post_sale``.
    source : {"events", "deals"}
        What a row of the input is: an event (long logs), or a deal of a wide export.
    by_column : dict[str, dict[str, int]]
        Wide exports only: per column of the caller's table, entries of ``log.rejects``
        per reason (e.g. ``{"close_date": {"unparseable_time": 3}}``).

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> q = log.quality
    >>> q.rows_in, q.rows_used, q.rows_removed, q.rows_collapsed
    (3183, 2704, 61, 418)
    >>> q.deals == q.won + q.lost + q.stale + q.open
    True
    >>> q.by_reason
    {'reopened_terminal': 61, 'repeat': 418}
    """

    rows_in: int
    rows_used: int
    rows_dropped: int
    rows_removed: int
    rows_collapsed: int
    by_reason: dict[str, int]
    deals: int
    won: int
    lost: int
    stale: int
    open: int
    reopened: int
    deals_without_amount: int
    attr_changes: dict[str, int]
    unresolved_ties: int
    stages: list[str]
    stage_order_inferred: bool
    as_of: pd.Timestamp
    filtered: dict[str, int] = field(default_factory=dict)
    source: str = "events"
    by_column: dict[str, dict[str, int]] = field(default_factory=dict)
    rows_post_sale: int = 0
    post_sale_deals: int = 0

    @property
    def rows_rejected(self) -> int:
        """Rows not used: dropped + removed + collapsed + post-sale.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> log.quality.rows_rejected
        479
        >>> log.quality.rows_rejected == len(log.rejects)
        True
        """
        return self.rows_dropped + self.rows_removed + self.rows_collapsed + self.rows_post_sale

    @property
    def warnings(self) -> list[str]:
        """Plain-language warnings worth a look (empty when the log is clean).

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> log.quality.warnings
        ['58 deals reopened after a terminal event']
        """
        out = []
        if self.source == "deals":
            cells = sum(self.by_reason.values()) - self.rows_dropped
            if self.rows_dropped:
                out.append(f"{self.rows_dropped:,} deals left out (see log.rejects)")
            if cells > 0:
                values = "value" if cells == 1 else "values"
                out.append(f"{cells:,} {values} of deals in the log rejected (see log.rejects)")
        elif self.rows_dropped:
            out.append(f"{self.rows_dropped:,} bad rows dropped (see log.rejects)")
        if self.reopened:
            out.append(f"{self.reopened:,} deals reopened after a terminal event")
        if self.unresolved_ties:
            out.append(
                f"{self.unresolved_ties:,} deals have simultaneous events ordered only by "
                "input order"
            )
        for col, n in self.attr_changes.items():
            if n:
                out.append(f"{n:,} deals change `{col}` within the deal (first value used)")
        if self.deals_without_amount:
            out.append(f"{self.deals_without_amount:,} deals have no amount (weight 0)")
        if self.stage_order_inferred:
            out.append("stage order inferred from the data: " + " → ".join(self.stages))
        return out

    def to_frame(self) -> pd.DataFrame:
        """The report as a tidy table.

        Returns
        -------
        pandas.DataFrame
            One row per item:

            * ``section`` : ``"rows"``, ``"reason"``, ``"deals"``, ``"attributes"``,
              ``"filtered"`` or (wide exports) ``"column"``
            * ``item`` : what is counted (e.g. ``"rows_in"``, ``"repeat"``, ``"won"``;
              ``"close_date: unparseable_time"`` in the ``"column"`` section)
            * ``count`` : the count

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> t = log.quality.to_frame()
        >>> list(t.columns)
        ['section', 'item', 'count']
        >>> t.set_index("item").loc[["rows_in", "won", "lost"], "count"].tolist()
        [3183, 60, 387]
        """
        rows: list[tuple[str, str, int]] = [
            ("rows", "rows_in", self.rows_in),
            ("rows", "rows_used", self.rows_used),
            ("rows", "rows_dropped", self.rows_dropped),
            ("rows", "rows_removed", self.rows_removed),
            ("rows", "rows_collapsed", self.rows_collapsed),
        ]
        if self.rows_post_sale:
            rows.append(("rows", "rows_post_sale", self.rows_post_sale))
        rows += [("reason", k, v) for k, v in self.by_reason.items()]
        rows += [
            ("deals", k, getattr(self, k))
            for k in ("deals", "won", "lost", "stale", "open", "reopened", "unresolved_ties")
        ]
        rows.append(("deals", "deals_without_amount", self.deals_without_amount))
        if self.rows_post_sale:
            rows.append(("deals", "post_sale_deals", self.post_sale_deals))
        rows += [("attributes", k, v) for k, v in self.attr_changes.items()]
        rows += [("filtered", k, v) for k, v in self.filtered.items()]
        rows += [
            ("column", f"{col}: {reason}", n)
            for col, counts in self.by_column.items()
            for reason, n in counts.items()
        ]
        return pd.DataFrame(rows, columns=["section", "item", "count"])

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values, one key per attribute.

        Counts of different kinds live in separate keys (``by_reason``, ``by_column``,
        ``attr_changes``, ``filtered``), so no name can overwrite another: the deals a
        filter left out are ``filtered["deals"]``, never ``deals``.

        Returns
        -------
        dict
            ``rows_in``, ``rows_used``, ``rows_dropped``, ``rows_removed``,
            ``rows_collapsed``, ``by_reason`` (dict), ``by_column`` (dict of the user's
            column → reason → rows; empty unless the log came from a wide export),
            ``deals``, ``won``, ``lost``,
            ``stale``, ``open``, ``reopened``, ``unresolved_ties``,
            ``deals_without_amount``, ``attr_changes`` (dict), ``filtered`` (dict, empty
            unless the log came from :meth:`EventLog.filter`), ``stages`` (list),
            ``stage_order_inferred`` (bool), ``as_of`` (ISO 8601 string),
            ``rows_post_sale``, ``post_sale_deals``.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> won = log.filter(where="outcome == 'won'").quality.to_dict()
        >>> won["deals"], won["won"], won["filtered"]["deals"]
        (60, 60, 540)
        """
        return {
            "rows_in": int(self.rows_in),
            "rows_used": int(self.rows_used),
            "rows_dropped": int(self.rows_dropped),
            "rows_removed": int(self.rows_removed),
            "rows_collapsed": int(self.rows_collapsed),
            "by_reason": {k: int(v) for k, v in self.by_reason.items()},
            "by_column": {
                str(col): {k: int(v) for k, v in counts.items()}
                for col, counts in self.by_column.items()
            },
            **{
                k: int(getattr(self, k))
                for k in ("deals", "won", "lost", "stale", "open", "reopened")
            },
            "unresolved_ties": int(self.unresolved_ties),
            "deals_without_amount": int(self.deals_without_amount),
            "attr_changes": {str(k): int(v) for k, v in self.attr_changes.items()},
            "filtered": {k: int(v) for k, v in self.filtered.items()},
            "stages": [str(st) for st in self.stages],
            "stage_order_inferred": bool(self.stage_order_inferred),
            "as_of": pd.Timestamp(self.as_of).isoformat(),
            "rows_post_sale": int(self.rows_post_sale),
            "post_sale_deals": int(self.post_sale_deals),
        }

    def __str__(self) -> str:
        if self.source == "deals":
            lines = [
                f"rows (deals): {self.rows_in:,} in = {self.rows_used:,} in the log + "
                f"{self.rows_dropped:,} left out",
            ]
            for col, counts in self.by_column.items():
                lines.append(
                    f"  rejected in `{col}`: " + ", ".join(f"{k} {v:,}" for k, v in counts.items())
                )
        else:
            lines = [
                f"rows: {self.rows_in:,} in = {self.rows_used:,} used + {self.rows_dropped:,} "
                f"dropped + {self.rows_removed:,} removed + {self.rows_collapsed:,} collapsed"
                + (f" + {self.rows_post_sale:,} post-sale" if self.rows_post_sale else ""),
            ]
        if self.by_reason and self.source != "deals":
            lines.append(
                "  by reason: " + ", ".join(f"{k} {v:,}" for k, v in self.by_reason.items())
            )
        lines.append(
            f"deals: {self.deals:,} = {self.won:,} won + {self.lost:,} lost + "
            f"{self.stale:,} stale + {self.open:,} open; {self.reopened:,} reopened"
        )
        lines.append(
            ("stages (inferred): " if self.stage_order_inferred else "stages: ")
            + " → ".join(self.stages)
        )
        if self.rows_post_sale:
            lines.append(
                f"post-sale: {self.rows_post_sale:,} events of {self.post_sale_deals:,} won "
                "deals set aside (log.post_sale())"
            )
        lines.append(f"as of: {self.as_of}")
        lines += [f"warning: {w}" for w in self.warnings if not w.startswith("stage order")]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
        body = html.escape(str(self)).replace("\n", "<br>")
        return f"<div><b>funnelkit quality report</b><br>{body}<ul>{items}</ul></div>"
