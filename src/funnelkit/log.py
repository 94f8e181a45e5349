"""`EventLog`: the validated, encoded event log every analysis starts from."""

from __future__ import annotations

import dataclasses
import html
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from . import _columns as C
from . import _facade, _scope
from . import _phases as P
from . import _validate as V
from ._expr import where_mask
from ._inputs import (
    _REASON_CODES,
    _names,
    bad_rows_error,
    check_date_format,
)
from ._memory import hot_path
from ._params import BY, CHECKED_INSIDE, DATE, PROGRESS, SEED, Interval, Options, validate_params
from ._update import attr_series
from .businessdays import BusinessCalendar, as_calendar
from .errors import MAX_BOOT, EmptyLogError, EventLogError, InvalidParameterError
from .quality import QualityReport

if TYPE_CHECKING:
    from ._kernel import Visits
    from ._update import Parts
    from .activities import Activities
    from .forecast import Forecast
    from .history import FieldHistory
    from .report import Report

__all__ = ["EventLog"]

_PANDAS_MAJOR = int(pd.__version__.split(".")[0])


def _is_dask_frame(obj: Any) -> bool:
    """True for a dask DataFrame, without importing dask (loaded already if obj is one)."""
    dd = sys.modules.get("dask.dataframe")
    return dd is not None and isinstance(obj, dd.DataFrame)


# --------------------------------------------------------------------------- parameters
#: what the log's settings accept (the constructor and from_milestones)
_CALENDAR = [BusinessCalendar, Options(str, ("business",)), None]
_ERRORS = [Options(str, ("raise", "drop"))]
_SETTINGS: dict[str, list[Any]] = {
    "deal": [str],
    "stage_map": [Mapping, None],
    "stages": ["str_list", None],
    "won": ["str_list", None],
    "lost": ["str_list", None],
    "amount": [str, None],
    "attrs": ["str_list"],
    "as_of": DATE,
    "stale_after": ["duration", None],
    "calendar": _CALENDAR,
    "errors": _ERRORS,
}
_N_BOOT = [
    Interval(Integral, 0, MAX_BOOT, why="more draws do not change a 95% interval and take hours")
]
_ALPHA = [Interval(Real, 0, 1, closed="neither")]
_MIN_VISITS = [Interval(Integral, 1, None)]


@_facade.register
class EventLog:
    """A validated event log of deals moving through sales stages.

    One input row is "deal *d* entered stage *s* at time *t*". The log applies the rules of
    the funnelkit design once — bad rows, the sort with its tie rules, reopened deals,
    collapsed repeats and terminal runs, stale deals — and every analysis derives from it.

    Parameters
    ----------
    events : pandas.DataFrame or pyarrow.Table or dask.dataframe.DataFrame
        The event log, one row per event. A dask DataFrame gives a
        :class:`funnelkit.dask.DaskEventLog` (the analyses on a cluster; see the
        scale-out page).
    deal, stage, time : str, default "deal_id", "stage", "ts"
        Columns holding the deal id, the stage name and the timestamp. Timestamps may be
        datetimes (naive or aware, any unit, pandas or Arrow), dates (read as midnight) or
        ISO 8601 strings of any precision; aware values with different offsets become UTC;
        naive mixed with aware is an error. Words such as ``"now"`` or ``"today"``, and
        numbers among the times, are unparseable rows; a time column of numbers only is
        refused (convert it with ``pd.to_datetime(..., unit=...)``). A time more than 146
        years from the log's median time (a typo in the year) is a bad row.
    stage_map : mapping, optional
        Applied to stage names first, so several raw CRM names form one funnel step
        (``{"Discovery Call": "Discovery"}``).
    stages : sequence of str, optional
        The non-terminal stages in funnel order (a list or tuple: a set, whose order
        changes from run to run, is refused). Stages of the data missing from it (and
        from ``won``/``lost``) are errors. ``None`` infers the order from the median
        position of each stage's first visit in the deals' paths; ``log.quality`` says so.
    won, lost : str or sequence of str or None, default "won", "lost"
        Terminal stage names (a real log may have several ways to lose); a set is read
        in sorted order.
    amount : str, optional
        Column of deal amounts, carried per deal: finite real numbers >= 0 (or empty).
        Text, negative, infinite or complex values are bad rows (``invalid_amount``); a
        column of booleans, dates or durations is refused.
    attrs : sequence of str, default ()
        Columns carried per deal (owner, team, region, ...).
        A carried value is the one on the deal's **first event (in path order) with a
        non-null value**; ``log.quality.attr_changes`` counts deals whose value changes.
    date_format : str, optional
        A strftime format for timestamps given as text, e.g. ``"%d-%m-%y"`` for day-first
        dates such as ``"31-01-25"``; values that do not match are unparseable (bad rows).
        Default: ISO 8601 of any precision — day-first dates then fail loudly rather than
        being read month-first. Ignored for columns that already hold datetimes.
    visit_attrs : sequence of str, default ()
        Columns carried per *visit* (hand-offs): the value on the event that entered the
        stage appears in :meth:`visits`, and ``funnel(by=...)``/``dwell(by=...)`` then
        attribute each stage to whoever held the deal there.
    as_of : str or datetime, optional
        The observation time; default the latest timestamp among the rows that pass
        validation. A naive ``as_of`` on an aware log is read as UTC.
    stale_after : str or timedelta, optional
        An open deal whose latest event of any kind is strictly more than this before
        ``as_of`` is lost as ``"stale"``. A duration needs a unit (``"90D"``, ``"12h"``,
        ``pd.Timedelta(days=90)``): a bare number, which pandas would read as nanoseconds,
        is refused.
    calendar : BusinessCalendar or "business", optional
        Measure dwell, cycle time and conversion windows in business days
        (:class:`~funnelkit.BusinessCalendar`); calendar days by default.
    errors : {"raise", "drop"}, default "raise"
        Bad rows raise :class:`~funnelkit.EventLogError`, or are dropped and listed in
        :attr:`rejects`.
    phases : mapping of str to mapping, optional
        Named mappings of the stages (after ``stage_map``) to phases, e.g. the customer's
        decision process and the seller's process: ``{"decision": {"Lead": "need
        recognition", ...}, "sales": {...}}``. Every stage must be mapped (map a stage to
        its own name to keep it); outcomes are not mapped and no phase may be named like
        one (or ``"stale"``); post-sale stages may be mapped to post-sale phases.
        :meth:`by_phase` gives the log read per phase.
    post_sale : str or sequence of str, optional
        Stages entered after a win (delivery, after-sales). An event at such a stage after
        the deal was won does not reopen it: it is set aside (:meth:`post_sale`; counted in
        ``quality.rows_post_sale``). One while the deal is not won is a bad row
        (``post_sale_not_won``). Neither funnel stages nor outcomes.

    Attributes
    ----------
    stages : list of str
        Non-terminal stages in funnel order.
    won, lost : list of str
        Terminal stage names.
    as_of : pandas.Timestamp
        The observation time used.
    phases : dict of str to dict
        The phase mappings, checked (empty without ``phases``).
    post_sale_stages : list of str
        The post-sale stages (empty without ``post_sale``).
    quality : QualityReport
        What happened to every input row and every deal.
    rejects : pandas.DataFrame
        Every input row that is not an event of the cleaned log: ``row`` (position in the
        input), the mapped columns as given, and ``reason``.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> log.quality.rows_in == log.quality.rows_used + log.quality.rows_rejected
    True
    """

    #: what help() and inspect.signature show: __init__'s keywords, not __new__'s *args
    __signature__: ClassVar[inspect.Signature]
    #: the field history attached by :meth:`with_history` (None: stage events only)
    _history: FieldHistory | None = None
    #: the activities attached by :meth:`with_activities` (None: stage events only)
    _activities: Activities | None = None

    #: the stage order of a log whose order was inferred elsewhere (see _with_order)
    _order_hint: list[str] | None = None
    #: the built arrays of a log spliced or loaded instead of built (see _from_parts)
    _parts: Parts | None = None
    #: the saved state holding this log's first input rows: its folder and the event files
    #: its manifest lists (``funnelkit.state``; a save to that folder appends the rest)
    _stored: tuple[str, list[dict[str, Any]]] | None = None

    @classmethod
    def _from_parts(cls, events: Any, parts: Parts, **settings: Any) -> EventLog:
        """Internal: the log of ``events`` whose built arrays are ``parts`` — an
        incremental update, or a saved state read back (``funnelkit._update``). The
        keywords are checked as for any log; the rows are not validated or sorted."""
        self = super().__new__(cls)
        self._parts = parts
        self.__init__(events, **settings)  # type: ignore[misc]
        del self._parts  # the class's None again: the parts are on the log now
        return self

    @classmethod
    def _with_order(cls, events: Any, order: Sequence[str], **settings: Any) -> EventLog:
        """Internal: the log of ``events`` (``settings`` without ``stages``) read in
        ``order``, an order inferred elsewhere — from the whole log, for one partition of
        it (``funnelkit.dask``). Simultaneous events are ordered as under an inferred
        order (input order), not by ``order``'s ranks as a declared order would; every
        stage of ``events`` must be in ``order``."""
        self = super().__new__(cls)
        self._order_hint = list(order)
        self.__init__(events, **settings)  # type: ignore[misc]
        return self

    def __new__(cls, events: Any = None, *args: Any, **kwargs: Any) -> Any:
        # fk.EventLog(dask_dataframe, ...) → funnelkit.dask.DaskEventLog (imports dask)
        if cls is EventLog and _is_dask_frame(events):
            from .dask import DaskEventLog

            return DaskEventLog(events, *args, **kwargs)
        return super().__new__(cls)

    @validate_params(
        _SETTINGS
        | {
            "events": [CHECKED_INSIDE],
            "stage": [str],
            "time": [str],
            "visit_attrs": ["str_list"],
            "date_format": [str, None],
            "phases": [Mapping, None],
            "post_sale": ["str_list", None],
        },
        name="EventLog",
    )
    def __init__(
        self,
        events: pd.DataFrame | pa.Table,
        *,
        deal: str = "deal_id",
        stage: str = "stage",
        time: str = "ts",
        stage_map: Mapping[Any, str] | None = None,
        stages: Sequence[str] | None = None,
        won: str | Sequence[str] | None = "won",
        lost: str | Sequence[str] | None = "lost",
        amount: str | None = None,
        attrs: Sequence[str] | str = (),
        visit_attrs: Sequence[str] | str = (),
        as_of: Any = None,
        stale_after: Any = None,
        calendar: BusinessCalendar | str | None = None,
        errors: Literal["raise", "drop"] = "raise",
        date_format: str | None = None,
        phases: Mapping[str, Mapping[str, str]] | None = None,
        post_sale: str | Sequence[str] | None = None,
    ) -> None:
        if not isinstance(events, (pd.DataFrame, pa.Table)):
            raise InvalidParameterError(
                "`events` must be a pandas DataFrame, a pyarrow Table or a dask DataFrame; got "
                f"{type(events).__name__}. Use fk.read_events(path, ...) for files."
            )
        if errors not in ("raise", "drop"):
            raise InvalidParameterError(
                f"Parameter `errors` must be 'raise' or 'drop'; got {errors!r}."
            )
        check_date_format(date_format)
        attrs = C.as_list(attrs, "attrs", ordered=False)
        visit_attrs = C.as_list(visit_attrs, "visit_attrs", ordered=False)
        self.calendar = as_calendar(calendar)
        # stage names are read once: an iterator passed as `stages`, `won` or `lost` would be
        # empty the second time (and filter() rebuilds the log from these settings)
        declared = None if stages is None else _names(stages, "stages")
        self.won = _names(won, "won")
        self.lost = _names(lost, "lost")
        self._settings: dict[str, Any] = dict(
            deal=deal,
            stage=stage,
            time=time,
            stage_map=dict(stage_map) if stage_map else None,
            stages=declared,
            won=self.won,
            lost=self.lost,
            amount=amount,
            attrs=list(attrs),
            visit_attrs=list(visit_attrs),
            as_of=as_of,
            stale_after=stale_after,
            calendar=self.calendar,
            errors=errors,
            date_format=date_format,
        )
        overlap = set(self.won) & set(self.lost)
        if overlap:
            raise EventLogError(f"Stages {sorted(overlap)} are in both `won` and `lost`.")
        if declared is not None:
            dup = pd.Index(declared)[pd.Index(declared).duplicated()].tolist()
            if dup:
                raise InvalidParameterError(f"Parameter `stages` lists {dup} more than once.")
            term = set(declared) & (set(self.won) | set(self.lost))
            if term:
                raise InvalidParameterError(
                    f"Parameter `stages` holds terminal stages {sorted(term)}; list only "
                    "non-terminal stages there and name outcomes in `won`/`lost`."
                )
        self.stale_after = None
        if stale_after is not None:
            self.stale_after = C.to_duration(stale_after, "stale_after")
        #: stages entered after a win (delivery, after-sales): see :meth:`post_sale`
        self.post_sale_stages: list[str] = P.check_post_sale(
            post_sale, declared, self.won, self.lost
        )
        if phases is not None and not isinstance(phases, Mapping):
            P.check_phases(phases, [], [], [], [])  # raises the type error
        self._settings["post_sale"] = list(self.post_sale_stages) or None
        self._settings["phases"] = None if phases is None else dict(phases)

        mapped = C.mapped_columns(self._settings)
        C.check_columns(mapped, C.column_names(events))
        C.check_unique_columns(mapped, C.column_names(events))
        self._columns = list(dict.fromkeys(mapped.values()))
        if self._parts is not None:
            from ._update import install

            install(self, events, self._parts)
        else:
            self._build(events, declared, as_of, errors)
        #: named mappings of stages to phases, checked against the stages (see by_phase)
        self.phases: dict[str, dict[str, str]] = P.check_phases(
            phases, self.stages, self.post_sale_stages, self.won, self.lost
        )
        self._settings["phases"] = self.phases or None

    @classmethod
    @validate_params(
        _SETTINGS
        | {
            "deals": [CHECKED_INSIDE],
            "stage_dates": [Mapping],
            "status": [str, None],
            "closed_at": [str, None],
            "created_at": [str, None],
            "date_format": [str, Mapping, None],
            "phases": [Mapping, None],
        },
        name="EventLog.from_milestones",
    )
    def from_milestones(
        cls,
        deals: pd.DataFrame,
        *,
        deal: str = "deal_id",
        stage_dates: Mapping[str, str],
        status: str | None = None,
        closed_at: str | None = None,
        created_at: str | None = None,
        date_format: str | Mapping[str, str] | None = None,
        stage_map: Mapping[Any, str] | None = None,
        stages: Sequence[str] | None = None,
        won: str | Sequence[str] | None = "won",
        lost: str | Sequence[str] | None = "lost",
        amount: str | None = None,
        attrs: Sequence[str] | str = (),
        as_of: Any = None,
        stale_after: Any = None,
        calendar: BusinessCalendar | str | None = None,
        errors: Literal["raise", "drop"] = "raise",
        phases: Mapping[str, Mapping[str, str]] | None = None,
    ) -> EventLog:
        """Build an event log from the wide shape CRMs export: one row per deal.

        Each deal row holds dates ("date entered stage X", one column per stage in
        ``stage_dates``), optionally its current stage or outcome (``status``), the date of
        that outcome (``closed_at``) and its creation date (``created_at``). Each date
        becomes an event; every deal of ``deals`` is then either in the log or in
        :attr:`rejects` with a reason, and :attr:`quality` counts rows of ``deals``
        (``log.quality.source == "deals"``). Errors name your columns and count deals.

        Parameters
        ----------
        deals : pandas.DataFrame
            One row per deal (a pyarrow Table is converted).
        deal : str, default "deal_id"
            Column of deal ids.
        stage_dates : mapping of str to str
            Stage name → column holding the date the deal entered it, in funnel order.
            Empty cells are stages the deal never entered. Terminal stages can be dated
            here too (``{"Won": "won_date"}`` with ``won="Won"``).
        status : str, optional
            Column holding the deal's current stage or outcome (e.g. ``deal_stage`` with
            Prospecting, Engaging, Won, Lost; names pass through ``stage_map``). A won/lost
            value gives the deal a terminal event at ``closed_at``. A stage value says where
            the deal is: it needs a date there (its ``stage_dates`` column, or
            ``created_at`` for the first stage), else the value is rejected
            (``missing_time``). An empty status is ``missing_stage``; a value that is no
            stage or outcome is ``unknown_stage``.
        closed_at : str, optional
            Column of the date of the won/lost outcome named by ``status`` (needs
            ``status``). It is read only for deals whose status is won or lost, so the
            *expected* close date CRMs keep on open deals is not an event.
        created_at : str, optional
            Column of the creation date, used as the entry of the first stage (the first
            of ``stages``) when the deal has no date of its own for that stage: deals still
            in the first stage then have a place in time.
        date_format : str or mapping of str to str, optional
            strftime format of dates given as text, e.g. ``"%d-%m-%y"`` for ``31-01-25``,
            or one per column (``{"close_date": "%d-%m-%y"}``; columns not named: ISO 8601).
            Default: ISO 8601 (day-first dates then fail loudly rather than being read
            month-first). Values that do not match are ``unparseable_time``.
        stage_map : mapping, optional
            Applied to stage names (keys of ``stage_dates`` and ``status`` values) first.
        stages : sequence of str, optional
            Non-terminal stages in funnel order; default: the non-terminal keys of
            ``stage_dates`` in the given order. List stages with no date column here
            (e.g. ``"Prospecting"``) when ``status`` or ``created_at`` uses them.
        won, lost : str or sequence of str or None, default "won", "lost"
            Terminal stage names, as in :class:`EventLog`.
        amount : str, optional
            Column of deal amounts.
        attrs : sequence of str, default ()
            Columns carried per deal (owner, team, product, ...).
        as_of, stale_after, calendar
            As in :class:`EventLog`.
        errors : {"raise", "drop"}, default "raise"
            Invalid values — a date that does not parse, a won/lost status with no close
            date, a deal with no date for any stage — raise one
            :class:`~funnelkit.EventLogError` naming the columns and counting deals, or are
            left out and listed in :attr:`rejects`.
        phases : mapping of str to mapping, optional
            Named mappings of stages to phases, as in :class:`EventLog`
            (:meth:`by_phase` reads the log per phase). Post-sale stages are not taken
            from a wide export.

        Returns
        -------
        EventLog
            Its :attr:`rejects` lists, per rejected value or deal: ``row`` (position in
            ``deals``), the deal id column, ``column`` (your column; for ``no_dates`` the
            date columns consulted), ``value`` as given, ``stage`` and ``time`` of the
            event it would have been, and ``reason`` (one of
            ``funnelkit.quality.REASONS``, e.g. ``no_dates``, ``unparseable_time``).

        Raises
        ------
        EventLogError
            Missing columns; under ``errors="raise"``, invalid values (the rows travel as
            ``failure_cases``).

        See Also
        --------
        funnelkit.read_events : long logs (one row per stage change) from files.

        Examples
        --------
        A wide export: the current ``deal_stage``, the date the deal started engaging and,
        for closed deals, the close date, written day-first. Deal ``o4`` is still
        prospecting and has no date at all:

        >>> import pandas as pd
        >>> import funnelkit as fk
        >>> wide = pd.DataFrame({
        ...     "opportunity_id": ["o1", "o2", "o3", "o4"],
        ...     "deal_stage": ["Won", "Lost", "Engaging", "Prospecting"],
        ...     "engage_date": ["02-01-25", "03-01-25", "05-01-25", None],
        ...     "close_date": ["28-02-25", "15-01-25", None, None],
        ... })
        >>> log = fk.EventLog.from_milestones(
        ...     wide, deal="opportunity_id", stage_dates={"Engaging": "engage_date"},
        ...     status="deal_stage", closed_at="close_date", date_format="%d-%m-%y",
        ...     stages=["Prospecting", "Engaging"], won="Won", lost="Lost", errors="drop")
        >>> log.deals()[["deal", "outcome", "cycle_time"]]
          deal outcome cycle_time
        0   o1     won    57 days
        1   o2    lost    12 days
        2   o3    open        NaT
        >>> log.rejects[["row", "opportunity_id", "column", "reason"]]
           row opportunity_id                   column    reason
        0    3             o4  engage_date, close_date  no_dates
        >>> q = log.quality
        >>> q.rows_in == q.rows_used + q.rows_dropped
        True
        """
        from ._milestones import from_milestones

        return from_milestones(
            cls,
            deals,
            deal=deal,
            stage_dates=stage_dates,
            status=status,
            closed_at=closed_at,
            created_at=created_at,
            date_format=date_format,
            stage_map=stage_map,
            stages=stages,
            won=won,
            lost=lost,
            amount=amount,
            attrs=attrs,
            as_of=as_of,
            stale_after=stale_after,
            calendar=calendar,
            errors=errors,
            phases=phases,
        )

    # ------------------------------------------------------------------ construction
    @hot_path
    def _build(self, events, declared, as_of, errors) -> None:
        s = self._settings
        n = C.n_rows(events)
        if n == 0:  # before any check of values: an empty extract is not bad values
            raise EmptyLogError("The event log is empty: no rows to analyse.")
        # values no id or name can be (unhashable; names that are not Unicode): bad rows
        deal_col = C.column(events, s["deal"])
        bad_deal = C.unhashable(deal_col)
        broken = C.not_unicode(deal_col)
        if broken is not None:
            bad_deal = broken if bad_deal is None else bad_deal | broken
        if bad_deal is not None:
            deal_col = C.blank(deal_col, bad_deal)
        stage_col = C.column(events, s["stage"])
        bad_stage = C.unhashable(stage_col)
        if bad_stage is not None:
            stage_col = C.blank(stage_col, bad_stage)
        ids = C.id_keys(deal_col)
        raw_codes, raw_names = C.stage_codes(stage_col, s["stage_map"])
        not_text = [not C.is_unicode(nm) for nm in raw_names]  # distinct names only
        if any(not_text):
            wrong = np.array([*not_text, False])[raw_codes]  # code -1 (null): False
            bad_stage = wrong if bad_stage is None else bad_stage | wrong
        amount_vals = bad_amount = None
        if s["amount"] is not None:
            amount_vals, bad_amount = C.amounts(C.column(events, s["amount"]), s["amount"])
        C.check_time_dtype(C.column(events, s["time"]), s["time"])
        times = C.parse_times(C.column(events, s["time"]), s["date_format"])
        self._aware = times.aware

        won_set, lost_set = set(self.won), set(self.lost)
        raw_kind = np.array(
            [
                V.WON_KIND if nm in won_set else V.LOST_KIND if nm in lost_set else V.STAGE
                for nm in raw_names
            ],
            dtype=np.int8,
        )
        raw_rank = np.zeros(len(raw_names) + 1, dtype=np.int64)
        unknown_code = np.zeros(len(raw_names) + 1, dtype=bool)
        # post-sale stages (post_sale=): set aside after the sort, before the path rules
        ps_names = set(self.post_sale_stages)
        raw_ps = np.array([nm in ps_names for nm in raw_names] + [False], dtype=bool)
        ps_pending = bool(raw_ps.any())
        ps_rows = ps_won = np.zeros(0, dtype=np.int64)
        ps_reason = 1 + _REASON_CODES.index("post_sale")
        if declared is not None:
            pos = {nm: i for i, nm in enumerate(declared)}
            for i, nm in enumerate(raw_names):  # loop over distinct stage names only
                if raw_kind[i] == V.STAGE and not raw_ps[i]:
                    if nm in pos:
                        raw_rank[i] = pos[nm]
                    else:
                        unknown_code[i] = True

        reason = np.zeros(n, dtype=np.int8)  # 0 = good, else 1 + index in _REASON_CODES

        def mark(mask: np.ndarray, name: str) -> None:
            if mask.any():
                reason[(reason == 0) & mask] = 1 + _REASON_CODES.index(name)

        if bad_deal is not None:
            mark(bad_deal, "invalid_deal")
        mark(ids.null, "missing_deal")
        if bad_stage is not None:
            mark(bad_stage, "invalid_stage")
        mark(raw_codes < 0, "missing_stage")
        mark(times.null, "missing_time")
        mark(times.unparseable, "unparseable_time")
        mark(times.mixed_tz, "mixed_timezone")
        far, self._time_span = C.out_of_range(times.ns)
        if far is not None:
            mark(far, "time_out_of_range")
        mark(unknown_code[raw_codes], "unknown_stage")
        if bad_amount is not None:
            mark(bad_amount, "invalid_amount")
        if as_of is not None:
            as_of_ns = C.to_timestamp(as_of, times.aware, "as_of")
            mark(times.ns > as_of_ns, "after_as_of")
        if errors == "raise" and reason.any():
            self._raise_bad_rows(events, reason, raw_codes, raw_names)

        conflict_rows = np.zeros(0, dtype=np.int64)
        while True:
            n_bad = int(np.count_nonzero(reason))
            if n_bad == n:
                raise EventLogError(
                    f"No usable events: all {n:,} input rows were rejected "
                    f"({self._reason_counts(reason)}). See the error's failure cases or "
                    "log with errors='raise' for details.",
                    self._failure_cases(events, np.flatnonzero(reason), reason),
                )
            r_bits = max(1, int(raw_rank.max()).bit_length())
            # tie class: stages, then terminal events, then post-sale events
            tie_class = (raw_kind != V.STAGE).astype(np.int64) + 2 * raw_ps[:-1]
            tie_of_code = (tie_class << r_bits) | raw_rank[:-1]
            if n_bad == 0:  # the common case: no copies of the input columns
                srt = V.sort_events(None, ids.keys, ids.bits, times.ns, raw_codes, tie_of_code)
            else:
                good = np.flatnonzero(reason == 0)
                srt = V.sort_events(
                    good, ids.keys[good], ids.bits, times.ns[good], raw_codes[good], tie_of_code
                )
            st_code = srt.code
            if ps_pending:  # once: post-sale events leave the rows before the path rules
                ps_pending = False
                split = P.split_post_sale(raw_ps, raw_kind, srt)
                ps_rows, ps_won = split.rows, split.won_ns
                reason[ps_rows] = ps_reason
                if split.bad.size:
                    reason[split.bad] = 1 + _REASON_CODES.index("post_sale_not_won")
                    if errors == "raise":
                        bad_only = np.where(reason == ps_reason, 0, reason)
                        self._raise_bad_rows(events, bad_only, raw_codes, raw_names)
                if ps_rows.size or split.bad.size:
                    continue
            st_kind = raw_kind[st_code]
            rules = V.path_rules(st_kind, st_code, srt.deal, srt.starts)
            if not rules.conflict_deal.any():
                break
            bad_pos = rules.conflict_deal[srt.deal]
            conflict_rows = srt.rows[bad_pos]
            if errors == "raise":
                reason[conflict_rows] = 1 + _REASON_CODES.index("conflicting_outcome")
                bad_only = np.where(reason == ps_reason, 0, reason)
                self._raise_bad_rows(events, bad_only, raw_codes, raw_names)
            reason[conflict_rows] = 1 + _REASON_CODES.index("conflicting_outcome")

        n_sorted = srt.rows.size
        ts = srt.time
        ps_deal = np.zeros(0, dtype=np.int64)
        if ps_rows.size:  # the deal of each post-sale event (dense code of the log)
            deal_keys = ids.keys[srt.rows[srt.starts]]
            ps_deal = np.minimum(
                np.searchsorted(deal_keys, ids.keys[ps_rows]), srt.starts.size - 1
            )
            gone = deal_keys[ps_deal] != ids.keys[ps_rows]
            if gone.any():  # their deal left the log (conflicting outcome): so do they
                reason[ps_rows[gone]] = 1 + _REASON_CODES.index("conflicting_outcome")
                ps_rows, ps_won, ps_deal = ps_rows[~gone], ps_won[~gone], ps_deal[~gone]
        self.as_of = None
        as_of_ns = (
            C.to_timestamp(as_of, times.aware, "as_of") if as_of is not None else int(ts.max())
        )
        if as_of is None and ps_rows.size:  # post-sale events are rows used too
            as_of_ns = max(as_of_ns, int(times.ns[ps_rows].max()))
        if as_of_ns - int(ts.min()) >= 2 * C.MAX_FROM_MEDIAN:  # a given as_of, far out
            raise InvalidParameterError(
                f"Parameter `as_of`={as_of!r} is more than 292 years after the first event "
                f"({self._timestamp(ts[:1].copy())[0]}); durations up to it cannot be "
                "measured. Pass an as_of near the events or leave it None."
            )
        self._as_of_ns = as_of_ns
        self.as_of = self._timestamp(np.array([as_of_ns]))[0]

        # ---- stage catalogue: funnel stages in order, then won, then lost names
        kept = rules.kept
        kidx = np.flatnonzero(kept)
        p_raw = st_code[kidx]
        p_deal = srt.deal[kidx]
        p_time = ts[kidx]
        if declared is not None:
            order_names = list(declared)
            inferred = False
        elif self._order_hint is not None:  # inferred elsewhere (see _with_order)
            order_names = list(self._order_hint)
            inferred = True
        else:
            order_names = self._infer_order(p_raw, p_deal, raw_kind, raw_names)
            inferred = True
        self._set_catalogue(order_names, inferred)
        cat_index = {nm: i for i, nm in enumerate(self._catalogue)}
        raw_to_cat = np.array([cat_index.get(nm, -1) for nm in raw_names] + [-1], dtype=np.int64)
        p_stage = raw_to_cat[p_raw]

        # ---- per deal
        n_deals = srt.starts.size
        ends = np.append(srt.starts[1:], n_sorted)
        self._first_ns = ts[srt.starts]
        self._last_ns = ts[ends - 1]
        p_kind = self._kind[p_stage]
        pterm = p_kind != V.STAGE
        outcome = np.zeros(n_deals, dtype=np.int8)
        outcome_stage = np.full(n_deals, -1, dtype=np.int64)
        term_ns = np.full(n_deals, C.NAT, dtype=np.int64)
        td = p_deal[pterm]
        outcome[td] = np.where(p_kind[pterm] == V.WON_KIND, V.WON, V.LOST)
        outcome_stage[td] = p_stage[pterm]
        term_ns[td] = p_time[pterm]
        if self.stale_after is not None:
            stale = (outcome == V.OPEN) & (as_of_ns - self._last_ns > self.stale_after.value)
            outcome[stale] = V.STALE
        self._outcome = outcome
        self._outcome_stage = outcome_stage
        self._term_ns = term_ns
        self._reopened = rules.reopened_deal
        self._path_deal = p_deal
        self._path_stage = p_stage
        self._path_time = p_time
        # deal labels and rejects are materialised on first use: the analyses work on
        # integer codes, so an ETL job that never asks for them does not pay for them
        # (only the id column is kept for them: the sort keys, 8 bytes a row, are done)
        bare = dataclasses.replace(ids, keys=np.zeros(0, np.int64), null=np.zeros(0, bool))
        self._label_source: tuple[C.IdKeys | None, np.ndarray] = (bare, srt.rows[srt.starts])
        self._n_deals = n_deals
        self._post_sale_events: P.PostSaleEvents | None = None
        if ps_rows.size:
            self._post_sale_events = P.PostSaleEvents(
                rows=ps_rows,
                deal=ps_deal,
                time=times.ns[ps_rows],
                won_ns=ps_won,
                code=raw_codes[ps_rows],
                names=list(raw_names),
            )

        # ---- carried columns: the first non-null value in path order
        attr_changes: dict[str, int] = {}
        self._amount: np.ndarray | None = None
        deals_without_amount = 0
        if s["amount"] is not None:
            assert amount_vals is not None
            vals = amount_vals[srt.rows]
            valid = ~np.isnan(vals)
            first = V.first_notnull(valid, srt.starts, n_sorted)
            amt = np.where(first >= 0, vals[np.maximum(first, 0)], np.nan)
            with np.errstate(over="ignore"):
                too_big = not (np.isfinite(np.nansum(amt)) and np.isfinite(np.nansum(amt * amt)))
            if too_big:
                raise EventLogError(
                    f"Column `{s['amount']}` (amount): the deals' amounts are too large to add "
                    f"up in float64 (largest {np.nanmax(amt):.3g}; their total or the total "
                    "of their squares, used for weighted intervals, would be infinite). "
                    "Rescale the column, e.g. to thousands or millions."
                )
            self._amount = amt
            deals_without_amount = int((first < 0).sum())
            attr_changes[s["amount"]] = V.changed_deals(vals, srt.starts)
        self._attrs: dict[str, pd.Series] = {}
        for a in s["attrs"]:
            codes, uniques = C.factorize(C.column(events, a), a)
            cs = codes[srt.rows]
            first = V.first_notnull(cs >= 0, srt.starts, n_sorted)
            dcode = np.where(first >= 0, cs[np.maximum(first, 0)], -1)
            attr_changes[a] = V.changed_deals(cs, srt.starts)
            self._attrs[a] = attr_series(dcode, uniques, a)

        # ---- visit attributes: the value on the event that entered the stage
        self._visit_attrs: dict[str, tuple[np.ndarray, pd.Index]] = {}
        for a in s["visit_attrs"]:
            codes, uniques = C.factorize(C.column(events, a), a)
            self._visit_attrs[a] = (codes[srt.rows[kidx]].astype(np.int64), uniques)

        # ---- rejects and quality
        rej_rows = [np.flatnonzero(reason)]
        rej_reason = [reason[rej_rows[0]]]
        for mask, name in (
            (rules.reopened_terminal, "reopened_terminal"),
            (rules.repeat, "repeat"),
            (rules.terminal_run, "terminal_run"),
        ):
            r = srt.rows[mask]
            rej_rows.append(r)
            rej_reason.append(np.full(r.size, 1 + _REASON_CODES.index(name), dtype=np.int8))
        rows_all = np.concatenate(rej_rows)
        reason_all = np.concatenate(rej_reason)
        o = np.argsort(rows_all, kind="stable")
        self._rejects_frame: pd.DataFrame | None = None
        self._source = self._keep_source(events)
        self._reject_rows = (rows_all[o], reason_all[o])
        counts = np.bincount(reason_all, minlength=len(_REASON_CODES) + 1)
        by_reason = {nm: int(counts[i + 1]) for i, nm in enumerate(_REASON_CODES) if counts[i + 1]}
        oc = np.bincount(outcome, minlength=4)
        self.quality = QualityReport(
            rows_in=n,
            rows_used=int(kept.sum()),
            rows_dropped=int(((reason > 0) & (reason != ps_reason)).sum()),
            rows_removed=int(rules.reopened_terminal.sum()),
            rows_collapsed=int(rules.repeat.sum() + rules.terminal_run.sum()),
            by_reason=by_reason,
            deals=n_deals,
            won=int(oc[V.WON]),
            lost=int(oc[V.LOST]),
            stale=int(oc[V.STALE]),
            open=int(oc[V.OPEN]),
            reopened=int(rules.reopened_deal.sum()),
            deals_without_amount=deals_without_amount,
            attr_changes=attr_changes,
            unresolved_ties=srt.unresolved_ties,
            stages=list(self.stages),
            stage_order_inferred=inferred,
            as_of=self.as_of,
            rows_post_sale=int(ps_rows.size),
            post_sale_deals=int(np.unique(ps_deal).size),
        )
        self._cache: dict[Any, Any] = {}

    def _set_catalogue(self, order_names: list[str], inferred: bool) -> None:
        """The stage catalogue: funnel stages in order, then won, then lost names."""
        self.stages = order_names
        self._stage_order_inferred = inferred
        self._catalogue = order_names + self.won + self.lost
        self._n_stages = len(order_names)
        self._kind = np.array(
            [V.STAGE] * len(order_names)
            + [V.WON_KIND] * len(self.won)
            + [V.LOST_KIND] * len(self.lost),
            dtype=np.int8,
        )

    @staticmethod
    def _infer_order(p_raw, p_deal, raw_kind, raw_names) -> list[str]:
        """Funnel order from the median position of each stage's first visit in paths."""
        n = p_raw.size
        if n == 0:
            return []
        new = np.empty(n, dtype=bool)
        new[0] = True
        new[1:] = p_deal[1:] != p_deal[:-1]
        starts = np.flatnonzero(new)
        position = np.arange(n) - starts[np.cumsum(new) - 1]
        is_stage = raw_kind[p_raw] == V.STAGE
        df = pd.DataFrame(
            {"deal": p_deal[is_stage], "code": p_raw[is_stage], "pos": position[is_stage]}
        )
        first = df.drop_duplicates(["deal", "code"])
        agg = first.groupby("code")["pos"].agg(["median", "mean"])
        agg["name"] = [raw_names[c] for c in agg.index]
        agg = agg.sort_values(["median", "mean", "name"])
        return agg["name"].tolist()

    def _timestamp(self, ns: np.ndarray) -> pd.DatetimeIndex:
        idx = pd.DatetimeIndex(ns.astype("datetime64[ns]"))
        return idx.tz_localize("UTC") if self._aware else idx

    def _datetime_series(self, ns: np.ndarray, name: str) -> pd.Series:
        return pd.Series(self._timestamp(ns), name=name)

    @staticmethod
    def _reason_counts(reason: np.ndarray) -> str:
        counts = np.bincount(reason, minlength=len(_REASON_CODES) + 1)
        return ", ".join(
            f"{_REASON_CODES[i - 1]}: {counts[i]:,}" for i in range(1, counts.size) if counts[i]
        )

    def _failure_cases(
        self, events, rows: np.ndarray, reason: np.ndarray | None, reason_of_rows=None
    ) -> pd.DataFrame:
        codes = reason[rows] if reason is not None else reason_of_rows
        out = C.take_rows(events, rows, self._columns)
        out.insert(0, "row", rows.astype(np.int64))
        labels = (
            np.array(_REASON_CODES, dtype=object)[np.asarray(codes, dtype=np.int64) - 1]
            if rows.size
            else np.array([], dtype=object)
        )
        out["reason"] = (
            pd.Series(labels, dtype=object).astype(str) if rows.size else pd.Series([], dtype=str)
        )
        return out

    def _raise_bad_rows(self, events, reason, raw_codes, raw_names) -> None:
        bad = np.flatnonzero(reason)
        cases = self._failure_cases(events, bad, reason)
        unknown = reason == 1 + _REASON_CODES.index("unknown_stage")
        names = sorted({raw_names[c] for c in np.unique(raw_codes[unknown])})
        raise bad_rows_error(cases, self._settings, C.n_rows(events), names)

    # ------------------------------------------------------------------ public API
    @property
    def rejects(self) -> pd.DataFrame:
        """Input rows that are not events of the cleaned log, with a ``reason``.

        Returns
        -------
        pandas.DataFrame
            * ``row`` : position of the row in the input
            * the mapped input columns, as given
            * ``reason`` : one of ``funnelkit.quality.REASONS`` — dropped bad rows
              (``missing_deal``, ``unparseable_time``, ``unknown_stage``, ...), removed
              ``reopened_terminal`` events, or collapsed ``repeat``/``terminal_run`` rows

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> r = log.rejects
        >>> len(r) == log.quality.rows_rejected
        True
        >>> r["reason"].value_counts().to_dict()
        {'repeat': 418, 'reopened_terminal': 61}
        """
        if self._rejects_frame is None:
            rows, reasons = self._reject_rows
            self._rejects_frame = self._failure_cases(self._source, rows, None, reasons)
        return self._rejects_frame

    @property
    def _deal_labels(self) -> pd.Index:
        if "deal_labels" not in self._cache:
            ids, rows = self._label_source
            assert ids is not None  # labels are cached after the first call
            self._cache["deal_labels"] = ids.labels(rows)
            self._label_source = (None, rows)
        return self._cache["deal_labels"]

    def _keep_source(self, events: pd.DataFrame | pa.Table) -> pd.DataFrame | pa.Table:
        """The mapped input columns, kept for rejects and ``filter``: no data is copied
        for immutable Arrow tables and under pandas copy-on-write (pandas 3); pandas 2
        without copy-on-write copies the mapped columns, so later edits of the caller's
        frame cannot change them."""
        if isinstance(events, pa.Table):
            return events.select(self._columns)
        if _PANDAS_MAJOR >= 3 or pd.get_option("mode.copy_on_write") is True:
            return events[self._columns]
        return events[self._columns].copy()

    @property
    def n_deals(self) -> int:
        """Number of deals.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> log.n_deals
        600
        """
        return self._n_deals

    @property
    def n_events(self) -> int:
        """Number of events in the cleaned log.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> log.n_events
        2704
        >>> log.n_events == log.quality.rows_used
        True
        """
        return int(self._path_stage.size)

    @property
    def attrs(self) -> list[str]:
        """Carried per-deal columns.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> log.attrs
        ['region', 'owner', 'team']
        """
        return list(self._attrs)

    def _visits(self, calendar: BusinessCalendar | str | None = None) -> Visits:
        """Visit arrays (cached), dwell in the log's calendar or the one given."""
        cal = self.calendar if calendar is None else as_calendar(calendar)
        key = ("visits", cal)
        if key not in self._cache:
            from ._kernel import compute_visits

            self._cache[key] = compute_visits(self, cal)
        return self._cache[key]

    @validate_params({"columns": ["str_list", None]})
    def visits(self, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per visit of a stage by a deal, in path order (see Concepts: visits).

        Computed once and cached.

        Parameters
        ----------
        columns : list of str, optional
            Only these columns, in this order (e.g. ``["stage", "dwell", "censored"]``:
            on millions of visits the ``deal`` ids take most of the table's memory).
            Default: every column.

        Returns
        -------
        pandas.DataFrame
            * ``deal`` : deal id
            * ``stage`` : stage of this visit (categorical)
            * ``visit`` : 1 for the deal's first visit of the stage, 2 for a re-entry, ...
            * ``entered`` : time the deal entered the stage
            * ``next_stage`` : where it went next — a stage, a won/lost name, ``"stale"``,
              or null when still here at ``as_of``
            * ``dwell`` : next entry − entered, or ``as_of`` − entered when still here;
              NaT for the last visit of a stale deal (when it died is unknown)
            * ``censored`` : True when still in the stage at ``as_of`` (dwell is a lower
              bound)

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> list(log.visits().columns)
        ['deal', 'stage', 'visit', 'entered', 'next_stage', 'dwell', 'censored']
        >>> list(log.visits(columns=["stage", "dwell"]).columns)
        ['stage', 'dwell']
        """
        if columns is not None:
            have = ["deal", "stage", "visit", "entered", "next_stage", "dwell", "censored"]
            have += list(self._visit_attrs)
            columns = [columns] if isinstance(columns, str) else list(columns)
            unknown = [c for c in columns if c not in have]
            if unknown:
                raise InvalidParameterError(
                    f"Parameter `columns`: {unknown} are not columns of visits(); "
                    f"choose from {have}."
                )
        return self._visits().to_frame(self, columns)

    def deals(self) -> pd.DataFrame:
        """One row per deal, so every number can be traced and joined back to the CRM.

        Returns
        -------
        pandas.DataFrame
            * ``deal`` : deal id
            * ``outcome`` : ``"won"``, ``"lost"``, ``"stale"`` or ``"open"``
            * ``outcome_stage`` : the terminal stage name, ``"stale"``, or null if open
            * ``furthest_stage`` : furthest stage in funnel order the deal entered (null
              when it only has a terminal event)
            * ``first_event`` : the deal's first event (before any reopen)
            * ``last_event`` : the deal's latest event of any kind (post-sale events are
              not in the funnel: see :meth:`post_sale`)
            * ``cycle_time`` : first event to first terminal event (NaT when open or stale)
            * ``amount`` : when an amount column is mapped
            * one column per carried attribute
            * ``reopened`` : True when a terminal event was followed by more stage events
            * with activities (:meth:`with_activities`), the going-cold columns:
              ``last_touch`` (the deal's latest touch, NaT without), ``since_touch``
              (``as_of`` − last touch), ``since_stage_change`` (``as_of`` − entry into the
              current stage), ``stage_gap_median`` and ``stage_gap_p90`` (the current
              stage's gaps between consecutive touches of a visit — its entry counts as
              the first touch — over all visits of the stage), ``going_cold`` (quiet — no
              touch and no stage change — for longer than the stage's p90 gap); the
              Timedeltas are NaT and ``going_cold`` False for deals that are not open

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> d = log.deals()
        >>> int((d["outcome"] == "won").sum()) == log.quality.won
        True
        """
        vis = self._visits()
        cat = self._catalogue + ["stale"]
        oc_stage = np.where(self._outcome == V.STALE, len(self._catalogue), self._outcome_stage)
        out = pd.DataFrame(
            {
                "deal": self._deal_labels,
                "outcome": pd.Categorical.from_codes(
                    self._outcome.astype(np.int64), categories=list(V.OUTCOMES)
                ),
                "outcome_stage": pd.Categorical.from_codes(oc_stage, categories=cat),
                "furthest_stage": pd.Categorical.from_codes(
                    vis.furthest, categories=self.stages, ordered=True
                ),
                "first_event": self._timestamp(self._first_ns),
                "last_event": self._timestamp(self._last_ns),
                "cycle_time": pd.to_timedelta(self._cycle_ns().view("timedelta64[ns]")),
            }
        )
        if self._amount is not None:
            out["amount"] = self._amount
        for a, ser in self._attrs.items():
            out[a] = ser.to_numpy()
        out["reopened"] = self._reopened
        if self._activities is not None:
            from .activities import going_cold

            cold = going_cold(self)
            for c in cold.columns:
                out[c] = cold[c].to_numpy()
        return out

    # ------------------------------------------------------------------ scoping
    @validate_params(
        {
            "where": [str, "callable", CHECKED_INSIDE],
            "created": [tuple, list, None],
            "deals": [CHECKED_INSIDE],
            "stages": ["str_list", None],
        }
    )
    def filter(
        self,
        *,
        where: str | Callable[[pd.DataFrame], Any] | Any = None,
        created: tuple[Any, Any] | None = None,
        deals: Iterable[Any] | None = None,
        stages: Sequence[str] | None = None,
    ) -> EventLog:
        """A new validated log of some deals or stages, with the same settings.

        The input rows of the chosen deals are validated again with this log's keywords,
        ``as_of`` fixed to this log's (so "stale" means the same) and the stage order
        fixed to this log's. ``log.quality.filtered`` of the result says what was
        filtered out. A field history (:meth:`with_history`) goes along for the kept deals.

        Parameters
        ----------
        where : str, boolean mask or callable, optional
            Which deals to keep, over the deals table (:meth:`deals`: outcome, amount,
            attributes, first_event, ...): an expression (``"region == 'EMEA'"``), a
            boolean array aligned with :meth:`deals`, or a callable taking the deals table
            and returning such a mask.

            An expression is parsed by funnelkit's own small grammar, never executed (it
            may come from a config file): column names (bare identifiers in any script, or
            in backticks: `` `deal owner` ``), literals (quoted strings, numbers, ``True``,
            ``False``, ``None``), comparisons ``== != < <= > >=`` (chains such as
            ``1000 <= amount < 5000`` allowed), ``in`` / ``not in`` with a list
            ``[...]`` or ``(...)``, ``and`` / ``or`` / ``not`` (or ``&`` / ``|`` / ``~``
            with the same precedence), and parentheses. Nothing else: no attribute
            access, calls, subscripts, ``@`` variables or arithmetic. A string compared
            with a time column is read as an ISO 8601 time (``first_event >=
            '2025-01-01'``; naive is UTC on an aware log), with a duration column as a
            duration with a unit (``cycle_time > '30D'``). A comparison with a missing
            value is False; ``!=`` and ``not in`` are the negations of ``==`` and ``in``;
            ``x == None`` is True where ``x`` is missing. Anything outside the grammar, an
            unknown column or a literal of the wrong type raises :class:`EventLogError`
            naming the token and its position (and the available columns). To run code,
            pass a callable: it is the explicit way.
        created : (start, end), optional
            Keep deals whose first event is in ``[start, end)``; either end may be None.
        deals : iterable, optional
            Keep these deal ids.
        stages : sequence of str, optional
            Keep only these stages: events of other stages are removed before the path
            rules (terminal events are always kept), so a deal moving A → B → C seen
            through ``stages=["A", "C"]`` moves A → C.

        Returns
        -------
        EventLog

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> north = log.filter(where="region == 'North'")
        >>> north.n_deals == int((log.deals()["region"] == "North").sum())
        True
        >>> north.quality.filtered["deals"] == log.n_deals - north.n_deals
        True
        """
        table = self.deals()
        mask = None
        if where is not None:
            if isinstance(where, str):  # parsed by a grammar of our own, never run
                mask = where_mask(where, table, "the deals table")
            elif callable(where):
                mask = where(table)
            else:
                mask = where
            mask = np.asarray(mask)
            if mask.dtype != bool or mask.shape != (len(table),):
                raise InvalidParameterError(
                    f"`where` must give one boolean per deal ({len(table)}); got "
                    f"{mask.dtype} of shape {mask.shape}."
                )
        start, end = (None, None) if created is None else created
        keep = _scope.deal_mask(
            table,
            mask,
            None if start is None else self._as_log_time(start, "created"),
            None if end is None else self._as_log_time(end, "created"),
            deals,
        )
        kept_ids = table["deal"][keep]
        if kept_ids.empty:
            raise _scope.no_deals_kept()
        settings = dict(self._settings)
        settings["as_of"] = self.as_of
        settings["stages"] = list(self.stages)
        source = self._source
        deal_col, stage_col = settings["deal"], settings["stage"]
        ids = source.column(deal_col) if isinstance(source, pa.Table) else source[deal_col]
        if isinstance(source, pa.Table):
            ids = ids.to_pandas()
        row_keep = ids.isin(kept_ids).to_numpy(dtype=bool, copy=True)
        row_keep[_scope.reopened_rows(self._reject_rows)] = False
        if stages is not None:
            others = [*self.won, *self.lost, *self.post_sale_stages]
            allowed, settings["stages"], phases = _scope.stage_scope(
                stages, self.stages, others, self.phases
            )
            row_keep &= _scope.stage_rows(
                C.column(source, stage_col), settings["stage_map"], allowed
            )
            if phases:  # the phase mappings of the stages kept
                settings["phases"] = phases
        if isinstance(source, pa.Table):
            subset = source.filter(pa.array(row_keep))
        else:
            subset = source.loc[row_keep]
        out = EventLog(subset, **settings)
        filtered = {
            "deals": int(self.n_deals - out.n_deals),
            "rows": int(row_keep.size - row_keep.sum()),
        }
        out.quality = dataclasses.replace(out.quality, filtered=filtered)
        if self._history is not None:  # the kept deals' field history goes along
            from .history import reattach

            out._history = reattach(self._history, out)
        if self._activities is not None:  # and their activities
            from .activities import reattach as reattach_activities

            out._activities = reattach_activities(self._activities, out)
        return out

    def _cycle_ns(self) -> np.ndarray:
        """First event to first terminal event per deal (NAT when none), in the log's
        calendar."""
        done = self._term_ns != C.NAT
        end = np.where(done, self._term_ns, self._first_ns)
        dur = (
            end - self._first_ns
            if self.calendar is None
            else self.calendar.duration_ns(self._first_ns, end)
        )
        return np.where(done, dur, C.NAT)

    def _as_log_time(self, value: Any, name: str) -> pd.Timestamp:
        return self._timestamp(np.array([C.to_timestamp(value, self._aware, name)]))[0]

    # ------------------------------------------------------------------ metrics
    def transitions(self) -> pd.DataFrame:
        """Directly-follows table of visits: one row per (from, to) pair.

        Returns
        -------
        pandas.DataFrame
            One row per observed move, from-stages in funnel order, to-stages in the order
            stages, won names, lost names, ``"stale"``:

            * ``from_stage`` : stage left
            * ``to_stage`` : stage entered next, a won/lost name, or ``"stale"``
            * ``transitions`` : number of such moves
            * ``deals`` : distinct deals that made the move
            * ``share`` : transitions / all completed exits from ``from_stage`` (sums to 1
              per from-stage; still-open visits are censored and make no exit)
            * ``dwell_mean``, ``dwell_median``, ``dwell_p90`` : time spent in
              ``from_stage`` by the visits that ended in this move — plain sample
              statistics (every such visit is complete), quantiles by linear
              interpolation; NaT for stale exits (when the deal died is unknown)
            * ``kind`` : ``"forward"`` (to a later stage), ``"backward"`` (to an earlier
              one), ``"won"``, ``"lost"`` or ``"stale"``

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> t = log.transitions()
        >>> bool((t.groupby("from_stage")["share"].sum().round(12) == 1).all())
        True
        """
        from .transitions import transitions

        return transitions(self)

    @validate_params({"kind": [Options(str, ("counts", "probabilities"))]})
    def transition_matrix(
        self, kind: Literal["counts", "probabilities"] = "probabilities"
    ) -> pd.DataFrame:
        """The transition table as a square matrix over all states.

        Rows and columns are the stages (funnel order), the won names, the lost names and
        ``"stale"``. With ``kind="probabilities"`` rows of stages are exit shares of
        completed visits and the terminal states are absorbing (1 on the diagonal): the
        transition matrix of an absorbing Markov chain in which stale counts as a loss.
        A stage with no completed exit has an all-zero row.

        Parameters
        ----------
        kind : {"probabilities", "counts"}, default "probabilities"

        Returns
        -------
        pandas.DataFrame
            Square, index ``from_stage``, columns ``to_stage``.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> m = log.transition_matrix()
        >>> m.shape[0] == len(log.stages) + len(log.won) + len(log.lost) + 1
        True
        """
        from .transitions import transition_matrix

        return transition_matrix(self, kind)

    @validate_params(
        {
            "skips": [Options(str, ("implied", "strict"))],
            "weight": [str, None],
            "by": BY,
            "within": ["duration", Mapping, None],
            "calendar": _CALENDAR,
        }
    )
    def funnel(
        self,
        *,
        skips: Literal["implied", "strict"] = "implied",
        weight: str | None = None,
        by: str | Sequence[str] | None = None,
        within: Any = None,
        calendar: BusinessCalendar | str | None = None,
    ) -> pd.DataFrame:
        """The stage table: reach, conversion and drop-off per stage (see Concepts: funnel).

        Parameters
        ----------
        skips : {"implied", "strict"}, default "implied"
            ``"implied"``: a deal that entered a later stage also reached the earlier ones,
            and a won deal has reached every stage. ``"strict"``: only entering counts.
        weight : {"amount"}, optional
            Weight deals by their amount (revenue funnel). Deals without an amount weigh 0.
            A :class:`~funnelkit.FunnelkitWarning` says when 90% or more of the lost deals weigh 0
            while won deals have amounts (CRMs often zero the value of lost deals: the
            funnel would then lose nothing).
        by : str or list of str, optional
            Carried attributes; one block of rows per segment (a missing value is its own
            segment). A *visit* attribute (``visit_attrs``) attributes each stage's
            outcome to whoever held the deal when it reached the stage: the value on
            the event that entered it (for a stage skipped under ``implied``, the event
            that first went past it).
        within : str or timedelta or dict, optional
            Conversion window, for every stage (``"30D"``) or per stage
            (``{"Demo": "14D"}``): a deal counts as advanced from a stage only if it
            reached a later stage (or won) within the window after reaching it. A deal
            that reached the stage less than the window before ``as_of`` and has not
            advanced is censored (counted in ``open``, not in the denominator), never a
            failure; one whose window has elapsed without advancing is dropped. Each
            duration needs a unit: a bare number (``14``, ``"14"``) is refused.
        calendar : BusinessCalendar or "business", optional
            Measure windows in business days (default: the log's calendar).

        Returns
        -------
        pandas.DataFrame
            One row per stage (per segment), in funnel order:

            * ``by`` columns, when given
            * ``stage`` : stage name
            * ``reached`` : deals that reached the stage (see ``skips``)
            * ``advanced`` : of those, deals whose furthest stage lies after it, or that won
              (a backward move does not undo progress)
            * ``dropped`` : deals whose furthest stage is this one and that were lost
              (explicitly or stale)
            * ``open`` : deals whose furthest stage is this one and that are still open
            * ``conversion`` : the probability that a deal entering the stage eventually
              advances — the Aalen–Johansen cumulative incidence of "advance" (first entry
              of a later stage, or the win) against "lost" on time since the deal first
              entered the stage (a reach implied by a later stage or the win starts and
              advances at 0); deals not resolved at ``as_of`` — open, and stale (a silent
              deal may still move) — are censored there. See :meth:`incidence` for the
              curves. NaN, with a warning, when none of the deals that reached the stage
              has resolved. Where ``unresolved`` > 0 it is the incidence reached so far:
              a lower end, not a forecast — read the interval.
            * ``conversion_low``, ``conversion_high`` : 95% interval from the delta-method
              variance on the log(−log) scale (Wilson where the estimate is 0 or 1);
              weighted: the variance of Kish's effective sample size (Σw)²/Σw². It spans
              the ``unresolved`` mass: the upper end adds what could still advance, the
              lower end subtracts what the estimate handed to advancing on too few deals.
            * ``unresolved`` : probability mass the data do not settle yet: still open or
              silent at the stage's longest follow-up — unless the curve has levelled off
              (no deal advanced from the stage during the last ``stale_after`` of
              follow-up: then the silent rest is stale, i.e. lost, as DESIGN §2 says) or a
              window (``within``) has passed — plus the mass the estimator handed on once
              fewer than 10 deals remained at risk after a censoring
            * ``conversion_closed`` : advanced / (advanced + dropped), the closed-deal
              ratio (biased high on young pipelines); NaN when no deal is resolved
            * ``conversion_closed_low``, ``conversion_closed_high`` : its Wilson 95%
              interval (z = Φ⁻¹(0.975); weighted: Kish's effective sample size)
            * ``conversion_raw`` : advanced / reached
            * ``cumulative`` : product of the conversions of the stages before this one
              (1.0 for the first; NaN after a stage with no estimable conversion)
            * ``cumulative_closed`` : the same product of ``conversion_closed``
            * ``win_rate_from`` : probability of winning from the stage on — the same
              estimator for "won" against lost, same subjects and clock;
              ``win_rate_from_low``, ``win_rate_from_high`` its 95% interval, spanning
              its own unresolved mass as for ``conversion``
            * ``win_rate_from_closed`` : won / (won + lost + stale) among deals that
              reached it
            * ``skips`` : the skip rule used
            * ``weight`` : what the counts count, ``"deals"`` or ``"amount"``

            Counts are integers, or sums of amounts with ``weight``.
            Under ``"implied"``, ``reached == advanced + dropped + open``.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> f = log.funnel()
        >>> bool((f["reached"] == f["advanced"] + f["dropped"] + f["open"]).all())
        True
        """
        from .funnel import funnel

        return funnel(self, skips=skips, weight=weight, by=by, within=within, calendar=calendar)

    @validate_params({"stage": ["str_list", None], "by": BY})
    def incidence(
        self,
        stage: str | Sequence[str] | None = None,
        *,
        by: str | Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Cumulative incidence curves behind ``funnel()``'s conversion (Aalen–Johansen).

        For every deal that reached a stage (``skips="implied"``; a reach implied by a
        later stage or a win starts and advances at 0), on time since its first entry:
        the probability of having advanced or been lost, deals not resolved at ``as_of``
        (open, or silent) censored there; and, on the same clock, the probability of
        having been won (against lost). The last row of a stage holds ``funnel()``'s
        ``conversion`` and ``win_rate_from``. Its ``unresolved`` is the share still open
        or silent there; ``funnel()``'s ``unresolved`` differs in two ways: it is 0 when
        the curves have levelled off (no deal of the stage advanced during the last
        ``stale_after`` of follow-up: the silent rest is stale, i.e. lost), and it adds
        the mass the estimator handed out once fewer than 10 deals were left at risk
        after a censoring (too few for the variance formula) — the part of the curve
        near its end that ``funnel()``'s interval spans rather than trusts.

        Parameters
        ----------
        stage : str or list of str, optional
            Only these stages (default: all).
        by : str or list of str, optional
            Carried attributes; one curve per segment, as in ``funnel(by=...)``.

        Returns
        -------
        pandas.DataFrame
            One row per (segment, stage, time) at which a curve moves or a deal is censored,
            in segment, funnel and time order:

            * ``by`` columns, when given
            * ``stage`` : stage name
            * ``time`` : time since entering the stage (Timedelta)
            * ``at_risk`` : deals still in the stage (unresolved, observed) at that time
            * ``advanced`` : cumulative incidence of advancing (a later stage or the win)
              by that time; ``advanced_low``, ``advanced_high`` its 95% interval
              (log(−log) scale; Wilson where the estimate is 0 or 1)
            * ``lost``, ``lost_low``, ``lost_high`` : of being lost explicitly
            * ``unresolved`` : probability not resolved by then (1 − advanced − lost):
              still open, or silent
            * ``won``, ``won_low``, ``won_high`` : of having been won (won against lost,
              same clock)

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> c = log.incidence("Demo")
        >>> last = c.iloc[-1]
        >>> f = log.funnel().set_index("stage")
        >>> bool(abs(last["advanced"] - f.loc["Demo", "conversion"]) < 1e-12)
        True
        """
        from .funnel import incidence

        return incidence(self, stage, by=by)

    @validate_params(
        {"by": BY, "visits": [Options(str, ("all", "first", "repeat"))], "calendar": _CALENDAR}
    )
    def dwell(
        self,
        *,
        by: str | Sequence[str] | None = None,
        visits: Literal["all", "first", "repeat"] = "all",
        calendar: BusinessCalendar | str | None = None,
    ) -> pd.DataFrame:
        """Time spent per stage, from the Kaplan–Meier estimator over censored visits.

        Visits still open at ``as_of`` are censored (their dwell is a lower bound); using
        completed visits alone would bias dwell low. Stale visits have no dwell and are
        left out. A quantile q is the smallest time t with S(t) <= 1 − q (+1e−9 against
        floating-point error), NaT when the estimate never falls that low; the mean is
        the restricted mean up to the largest observed dwell, event or censored.

        Parameters
        ----------
        by : str or list of str, optional
            Carried attributes; one block of rows per segment. A visit attribute
            attributes each visit to whoever held the deal when it entered the stage.
        visits : {"all", "first", "repeat"}, default "all"
            Which visits: all, first visits only, or re-entries only.
        calendar : BusinessCalendar or "business", optional
            Measure dwell in business days (default: the log's calendar).

        Returns
        -------
        pandas.DataFrame
            One row per stage (per segment), in funnel order:

            * ``by`` columns, when given
            * ``stage`` : stage name
            * ``visits`` : visits with a dwell (stale visits excluded)
            * ``censored`` : of those, visits still open at ``as_of``
            * ``mean`` : restricted mean dwell (timedelta)
            * ``median``, ``p75``, ``p90`` : Kaplan–Meier quantiles (timedelta)
            * ``mean_low``, ``mean_high`` : 95% normal interval of the restricted mean
              (Greenwood-type variance Σ A_i² d_i / (n_i (n_i − d_i)), A_i the area
              under S after t_i; lower end clipped at 0)
            * ``median_low``, ``median_high``, ``p75_low``, ``p75_high``, ``p90_low``,
              ``p90_high`` : 95% Brookmeyer–Crowley intervals of the quantiles — the
              times at which the log(−log) test of S(t) = 1 − q is not rejected, as R
              survival's ``quantile.survfit(conf.type="log-log")`` (without its midpoint
              rule on exactly flat stretches). NaT when undefined: an upper end when the
              upper band never falls to 1 − q (heavy censoring, few visits)

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> list(log.dwell().columns)[:7]
        ['stage', 'visits', 'censored', 'mean', 'median', 'p75', 'p90']
        >>> d = log.dwell()
        >>> bool((d["median_low"] <= d["median"]).all() and (d["median"] <= d["median_high"]).all())
        True
        """
        from .dwell import dwell

        return dwell(self, by=by, visits=visits, calendar=calendar)

    @validate_params({"by": BY, "calendar": _CALENDAR})
    def cycle_time(
        self,
        *,
        by: str | Sequence[str] | None = None,
        calendar: BusinessCalendar | str | None = None,
    ) -> pd.DataFrame:
        """Time from a deal's first event (before any reopen) to its first terminal event.

        Rows ``won`` and ``lost`` use the complete times of deals with that outcome (plain
        statistics, quantiles by linear interpolation). Row ``any`` is the time to any
        resolution from the Kaplan–Meier estimator, open deals censored at ``as_of``.
        Stale deals have no cycle time (when they died is unknown) and are left out.

        Parameters
        ----------
        by : str or list of str, optional
            Carried attributes; one block of rows per segment.
        calendar : BusinessCalendar or "business", optional
            Measure cycle time in business days (default: the log's calendar).

        Returns
        -------
        pandas.DataFrame
            * ``by`` columns, when given
            * ``outcome`` : ``"won"``, ``"lost"`` or ``"any"``
            * ``deals`` : deals in the row (``any``: won + lost + open)
            * ``censored`` : open deals (``any`` only; 0 otherwise)
            * ``mean``, ``median``, ``p75``, ``p90`` : timedeltas (``any``: restricted
              mean and Kaplan–Meier quantiles)
            * ``mean_low``, ``mean_high``, ``median_low``, ``median_high``, ``p75_low``,
              ``p75_high``, ``p90_low``, ``p90_high`` : 95% intervals (timedelta, NaT
              when undefined). ``any``: as :meth:`dwell` (Brookmeyer–Crowley log(−log)
              for the quantiles, Greenwood for the restricted mean). ``won``/``lost``:
              Student's t interval of the mean (NaT below 2 deals) and the
              distribution-free order-statistic interval [x_(l), x_(u)] of each
              quantile, l and u the 2.5% and 97.5% points of Binomial(n, q) (u + 1),
              coverage >= 95%; NaT when there are too few deals (fewer than 6 for the
              median)

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> log.cycle_time()["outcome"].tolist()
        ['won', 'lost', 'any']
        """
        from .kpis import cycle_time

        return cycle_time(self, by=by, calendar=calendar)

    @validate_params({"by": BY, "freq": [str, None]})
    def kpis(
        self, *, by: str | Sequence[str] | None = None, freq: str | None = None
    ) -> pd.DataFrame:
        """Headline KPIs of the management loop, overall or per creation cohort.

        Parameters
        ----------
        by : str or list of str, optional
            Carried attributes; one block of rows per segment.
        freq : str, optional
            Per creation cohort (the deal's first event, UTC periods): a pandas offset
            alias such as ``"QE"`` or ``"ME"``. Adds ``period``, ``period_start``,
            ``period_end`` (start included, end excluded), ``created_by`` and ``mature``
            (the cohort's outcomes are almost always known) — see
            :meth:`trend` for win rates that count only mature deals.

        Returns
        -------
        pandas.DataFrame
            One row (per segment, per period with ``freq``):

            * ``by`` columns, when given
            * ``deals``, ``won``, ``lost``, ``stale``, ``open`` : deal counts
            * ``win_rate`` : won / (won + lost + stale)
            * ``avg_won_amount`` : mean amount of won deals with an amount (NaN without
              an amount column)
            * ``median_won_cycle_time`` : median first-event-to-win time of won deals
            * ``pipeline_velocity`` : open × win_rate × avg_won_amount ÷
              median_won_cycle_time in days — expected won amount per day

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> int(log.kpis()["deals"].iloc[0]) == log.n_deals
        True
        """
        if freq is not None:
            from .monitoring import kpis_by_period

            return kpis_by_period(self, freq=freq, by=by)
        from .kpis import kpis

        return kpis(self, by=by)

    @validate_params(
        {
            "by": BY,
            "period": DATE,
            "benchmark": [Mapping, pd.DataFrame, None],
            "signals": ["str_list", None],
            "alpha": _ALPHA,
            "uplift": [Interval(Real, 0, 1, closed="right")],
            "n_boot": _N_BOOT,
            "seed": SEED,
            "min_deals": [Interval(Integral, 1, None)],
            "min_effect": [Mapping, None],
            "progress": PROGRESS,
        }
    )
    def key_stages(
        self,
        *,
        by: str | Sequence[str] | None = None,
        period: Any = None,
        benchmark: Mapping[str, float] | pd.DataFrame | None = None,
        signals: str | Iterable[str] | None = None,
        alpha: float = 0.05,
        uplift: float = 0.10,
        n_boot: int = 200,
        seed: int | None = 0,
        min_deals: int = 30,
        min_effect: Mapping[str, float] | None = None,
        progress: bool | Callable[[int, int], None] | None = None,
    ) -> pd.DataFrame:
        """Flag the key stages: effect sizes, intervals, q-values and a reason per stage.

        A stage is *key* when it has a large, statistically supported effect on the outcome
        (see Concepts: key stages). Each signal gives one row per stage (``dropoff`` and
        ``dwell`` with ``by``: per stage and segment):

        ``leverage``
            How much the overall win probability changes if the stage's loss probability
            (the lost + stale share of its completed exits) falls by ``uplift`` (relative),
            the removed loss going to the stage's forward moves (later stages, won) in
            proportion to their shares; backward moves are unchanged. Computed exactly on the
            absorbing Markov chain of the transition matrix (:mod:`funnelkit.markov`:
            ``N = (I − Q)⁻¹``, ``B = N R``), starting where deals enter (the state of each
            deal's first event; a deal with only a terminal event is absorbed at once).
            Interval: percentile interval of a deal-level (cluster) bootstrap, ``n_boot``
            resamples of whole deals. An estimate, not a test: no p-value.
        ``dropoff``
            The stage's loss rate, 1 − ``conversion`` of :meth:`EventLog.funnel` (the
            Aalen–Johansen estimate, open deals censored), against a baseline: ``benchmark``
            (exact binomial test on the effective counts; interval: ``funnel()``'s, as a loss
            rate), else, with ``by``, each segment against all other deals (Wald z-test of
            the two estimates;
            Fisher's exact test on the rounded effective counts when a group has fewer than
            100 effective deals; MOVER interval from the two groups' ``funnel()`` intervals).
            One-sided: only an excess loss is a signal. Without a baseline it is not
            computed: one row per stage with the loss rate in ``value``, NaN statistics and
            the reason ``"no baseline: pass benchmark= or by= ..."``. Deals before and after
            ``period`` are compared by ``change`` only: one comparison, one family.
        ``stall``
            Whether visits that last long end in a loss more often. The stage's first visits
            that ended — advanced (a later stage or won) or lost in the stage — are split at
            a declared threshold: their median dwell rounded up to a whole day (an hour when
            it is under two days). The effect is the share that advanced among the visits
            longer than the threshold minus that among the others (Newcombe interval);
            one-sided Fisher's exact test. Visits are judged by how they ended in the stage,
            not by the deal's final outcome, so a young log (where the recent winners are the
            fast ones) does not fake a stall; open and silent (stale) visits and moves back
            are left out. The threshold depends on the dwell times only, so under "how a
            visit ends does not depend on how long it lasted" the test is exact.
        ``heterogeneity`` (needs ``by``)
            Conversion (as in ``funnel(by=...)``) differs across segments: per stage, the Wald
            chi-square test (Cochran's Q: inverse-variance weighted spread, k − 1 degrees of
            freedom) over the segments with at least ``min_deals`` effective deals; when a
            segment has fewer than 100 effective deals, the exact conditional test on the
            rounded effective counts — Fisher's (two segments) or a Monte-Carlo chi-square
            with the observed margins (20,000 tables). The effect is the spread, best minus
            worst conversion; its interval holds for the spread of the true conversions
            whichever segments are the extremes: from simultaneous (Šidák) intervals of the k
            tested segments, ``[max(0, max low − min high), max high − min low]``.
            ``segment`` names the worst.
        ``change`` (needs ``period``)
            Conversion differs between deals created before ``period`` and since (creation =
            the deal's first event; every deal counts, its open time censored): two-sided
            test as for ``dropoff``; effect = since − before.
        ``dwell`` (needs ``by`` or ``period``)
            Time in the stage differs: each segment against all other deals (with ``by``)
            and the deals created since ``period`` against those before (with ``period``).
            Log-rank test on the first visits of the stage, two-sided; open visits and
            silent (stale) ones are censored at ``as_of`` (a silent deal is still in the
            stage as far as the log knows, so a group with more silent losses also sits
            longer). The effect is the ratio of the two Kaplan–Meier median dwells, with an
            interval on the log scale whose standard errors come from each median's
            Brookmeyer–Crowley interval. Only a longer dwell (ratio above 1) is a key
            stage.

        ``dropoff``, ``heterogeneity`` and ``change`` compare the Aalen–Johansen estimates of
        ``funnel()``. An estimate ``F`` with variance ``V`` counts as ``n = F (1 − F) / V``
        effective deals (without censoring, the resolved deals). Where the data cannot
        resolve part of the mass yet (``funnel()``'s ``unresolved``), each group's value may
        lie anywhere in its range and the test runs at the values closest to "no
        difference" (p = 1 when no difference is possible; a one-sided p-value of about 0.5 or
        more); the reasons say "(est., 8% unresolved)".

        Parameters
        ----------
        by : str or list of str, optional
            Carried attributes (owner, team, region...) defining segments; several columns
            combine. Enables ``heterogeneity`` and, without ``benchmark`` or ``period``, the
            segment-vs-rest ``dropoff`` baseline. A missing value is its own segment. A visit
            attribute (``visit_attrs=``) attributes each stage to whoever held the deal when
            it reached the stage, with the counts of ``log.compare(by=...)``.
        period : str or datetime, optional
            A date splitting deals by creation: before it is the previous period. Enables
            ``change`` and, without ``benchmark``, the previous-period ``dropoff`` baseline.
            A naive date on a time-zone-aware log is read as UTC.
        benchmark : dict or pandas.DataFrame, optional
            Expected loss rate per stage: ``{stage: rate}`` or a DataFrame with columns
            ``stage`` and ``loss_rate``. Stages left out get a row saying so. Takes precedence
            over ``period`` and ``by`` as the ``dropoff`` baseline.
        signals : str or list of str, optional
            Signals to compute, from ``"leverage"``, ``"dropoff"``, ``"stall"``,
            ``"heterogeneity"``, ``"change"``, ``"dwell"``. Default: every signal the other
            options allow (``dropoff`` always, saying so when it has no baseline).
        alpha : float, default=0.05
            False discovery rate: a test flags when its Benjamini–Hochberg q-value is at most
            ``alpha``. Intervals are at level 1 − ``alpha``.
        uplift : float, default=0.10
            Relative cut of a stage's loss probability for ``leverage`` (0.10 = 10%).
        n_boot : int, default=200
            Bootstrap resamples for the ``leverage`` interval; 0 skips the bootstrap (NaN
            interval, never key).
        seed : int or None, default=0
            Seed of the bootstrap and of the Monte-Carlo tests; the same seed gives the same
            table.
        min_deals : int, default=30
            Minimum sample: every group a test compares needs this many resolved deals —
            the effective number ``F (1 − F) / V`` for ``dropoff``, ``heterogeneity`` and
            ``change`` (``stall``: ended visits on each side of the threshold;
            ``heterogeneity``: segments below it are left out; ``dwell``: first visits in
            each group; ``leverage``: deals that left the stage). Rows below it are not
            tested (NaN p-value, reason says so).
        min_effect : dict, optional
            Materiality thresholds by signal; defaults ``{"leverage": 0.05, "dropoff": 0.05,
            "stall": 0.10, "heterogeneity": 0.10, "change": 0.05, "dwell": 0.25}``. ``leverage`` is relative:
            the interval's lower end must reach that share of the current win probability
            (0.05: a 12% win rate must gain at least 0.6 points). The others are absolute
            differences of proportions: loss-rate excess (``dropoff``), advance-share
            shortfall of long visits (``stall``), spread of conversion (``heterogeneity``) and
            size of the change either way (``change``); ``dwell`` is relative: the median
            ratio must reach 1 + that (0.25: a quarter longer).
        progress : bool or callable, optional
            Feedback during the bootstrap: ``True`` prints to stderr; a callable is called as
            ``progress(done, total)`` about 20 times.

        Returns
        -------
        pandas.DataFrame
            One row per (signal, stage[, segment]), signals in the order above, stages in
            funnel order (no rows when the log has no stages: only won/lost events):

            * ``stage`` : stage name
            * ``signal`` : ``"leverage"``, ``"dropoff"``, ``"stall"``, ``"heterogeneity"``,
              ``"change"`` or ``"dwell"``
            * ``effect`` : ``leverage``: win probability after − now; ``dropoff``: loss rate −
              baseline; ``stall``: advanced share above − at or below the threshold;
              ``heterogeneity``: best − worst segment conversion; ``change``: conversion since
              − before ``period``; ``dwell``: median dwell of the group ÷ that of the rest
              (or since ÷ before)
            * ``ci_low``, ``ci_high`` : 1 − ``alpha`` interval of ``effect``
            * ``p_value`` : NaN for ``leverage`` and for rows not tested
            * ``q_value`` : Benjamini–Hochberg within the signal (dropoff, stall,
              heterogeneity, change and dwell are separate families, each over its stages and
              segments)
            * ``is_key`` : tests: ``q_value <= alpha``, the effect material (``min_effect``;
              in the bad direction for ``dropoff``, ``stall`` and ``dwell``), the interval
              clear of "no effect" on that side (0; 1 for ``dwell``) and the sample large
              enough;
              ``leverage``: ``ci_low`` at least ``min_effect["leverage"]`` × the current win
              probability, with at least ``min_deals`` deals leaving the stage
            * ``reason`` : one line for a sales leader, with the numbers
            * ``segment`` : ``dropoff`` and ``dwell`` with ``by``: the segment compared with
              the rest; ``heterogeneity``: the worst segment; else missing. Several ``by`` columns join
              as ``"Team C / North"``; a missing value reads ``"(missing)"``
            * ``metric`` : what ``value`` and ``baseline`` measure: ``"win_probability"``,
              ``"loss_rate"``, ``"advanced_share"``, ``"conversion"`` or
              ``"median_dwell_days"``
            * ``value`` : the stage's figure — win probability after the cut, loss rate,
              advanced share above the threshold, worst segment's conversion, conversion since
              ``period``, the group's median dwell in days
            * ``baseline`` : what it is compared with — win probability now, the baseline loss
              rate, advanced share at or below the threshold, best segment's conversion,
              conversion before ``period``, the rest's (or before's) median dwell in days
            * ``n_deals`` : deals the row is computed on (``dropoff``, ``heterogeneity``,
              ``change``: deals that reached the stage in the groups compared)
            * ``test`` : ``"bootstrap"``, ``"binomial"``, ``"z"``, ``"fisher"``,
              ``"chi-square"``, ``"monte-carlo chi-square"``, ``"log-rank"`` or ``"none"``
            * ``alternative`` : the side the test looks at — ``"greater"`` (``dropoff``: the
              loss rate exceeds the baseline), ``"less"`` (``stall``: long visits advance
              less), ``"two-sided"`` (``heterogeneity``, ``change``, ``dwell``); ``""``
              without a test.
              A one-sided p-value is about half the two-sided one of the same comparison
              (e.g. :meth:`EventLog.compare`, whose tests are two-sided)
            * ``dwell_threshold`` : ``stall``: the dwell threshold (timedelta); NaT elsewhere

            Returned numbers are not rounded; only the reason text rounds.

        Raises
        ------
        EventLogError
            An unknown ``by`` attribute, a ``period`` that is no date or leaves no deal on
            one side, ``benchmark`` stages not in the log or rates outside [0, 1], unknown
            ``signals`` (or ``heterogeneity`` without ``by``, ``change`` without ``period``),
            out-of-range ``alpha``, ``uplift``, ``n_boot``, ``min_deals`` or ``min_effect``.
        TypeError
            ``benchmark``, ``min_effect`` or ``progress`` of the wrong type, or a non-integer
            ``n_boot``, ``seed`` or ``min_deals``.

        Notes
        -----
        Censoring. ``dropoff``, ``heterogeneity`` and ``change`` use the Aalen–Johansen
        conversion of :meth:`EventLog.funnel`: open deals count until ``as_of`` (censored),
        so a young pipeline is not biased against, and the mass still unresolved only
        weakens a test (see above). Still-open visits make no exit in the chain. ``stall``
        compares how ended visits ended, which censoring at ``as_of`` does not bias under
        its null (whether a visit has ended by ``as_of`` does not depend on how it ends);
        silent stalled deals are not in it, so with a real stall it is conservative.
        ``dwell`` censors open and silent visits at ``as_of``.

        Period comparisons (``change``, ``dwell`` since ``period``) use every deal: the
        recent period's open deals are censored, and what they may still do is its
        unresolved mass. On simulated logs under the null — a pipeline only 2.5 months old,
        one with 60% of its deals open, slow stages and no ``stale_after``, 40 owners of
        about 75 deals — no family flags more often than ``alpha`` plus simulation error;
        the price is power on young pipelines (``benchmarks/RESULTS.md``).

        Every number a reason quotes comes with its test or interval in the row.

        Materiality and minimum samples keep large logs from flagging tiny differences and
        small ones from flagging noise; the p-values and q-values are reported regardless.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> ks = log.key_stages(by="team", n_boot=50)
        >>> key = ks[ks["is_key"]]
        >>> key[["stage", "signal"]].to_numpy().tolist()
        [['Demo', 'leverage'], ['Proposal', 'leverage'], ['Demo', 'dropoff'], ['Demo', 'heterogeneity'], ['Demo', 'dwell']]
        >>> print(key["reason"].iloc[3])
        Demo conversion differs across 3 team values (chi-square p < 0.0001): from 35% (Team C, 104 deals) to 73% (Team A, 107 deals; est., 2% unresolved), a spread of 38 points (95% simultaneous interval 13 to 58)
        """
        from .keystages import key_stages

        return key_stages(
            self,
            by=by,
            period=period,
            benchmark=benchmark,
            signals=signals,
            alpha=alpha,
            uplift=uplift,
            n_boot=n_boot,
            seed=seed,
            min_deals=min_deals,
            min_effect=min_effect,
            progress=progress,
        )

    # ------------------------------------------------------------------ monitoring
    @validate_params({"by": BY, "period": DATE, "alpha": _ALPHA})
    def compare(
        self,
        *,
        by: str | Sequence[str] | None = None,
        period: Any = None,
        alpha: float = 0.05,
    ) -> pd.DataFrame:
        """Compare conversion per stage across segments, or before and after a date.

        With ``by``, each segment (team, region, owner, ...) is compared with all other deals;
        with ``period``, deals created since the date are compared with those created before
        (creation = the deal's first event) — the before/after view of an initiative ("we
        changed how we run Demo in July: did it work?"). Exactly one of the two is required.

        Conversion is the funnel's (:meth:`EventLog.funnel`, ``skips="implied"``): the
        Aalen–Johansen probability of advancing from the stage, open and silent deals
        censored at ``as_of``, with the mass the data cannot resolve yet as ``unresolved``.
        Each group and its rest — every other deal, or the other period — get their own
        estimate. The test of each row is a two-sided Wald test of the difference (the
        deals are disjoint, so the estimates are independent) at the least favourable
        allocation of the unresolved mass; Fisher's exact test of the resolved deals where
        counts are small. q-values are Benjamini–Hochberg across every tested row of the
        table.

        Parameters
        ----------
        by : str or list of str, optional
            Carried attributes defining segments; several columns combine. A missing value is
            its own segment. Rows equal those of ``log.funnel(by=by)``. A visit attribute
            (``visit_attrs=``, e.g. the owner at each stage) compares whoever held the deal
            at each stage: a deal counts at a stage in the segment of the event that
            reached it (for a stage passed by an implied skip, the event that went past it;
            a win reaches every stage), so one deal can count for different segments at
            different stages; ``deals`` then counts the deals that reached some stage in
            the segment.
        period : str or datetime, optional
            A date splitting deals by creation: ``"before"`` it and ``"after"`` (at or after
            it). A naive date on a time-zone-aware log is read as UTC. Every deal counts:
            the recent deals' open visits are censored, and what they leave unknown is in
            ``unresolved`` (see Notes).
        alpha : float, default=0.05
            False discovery rate: ``differs`` when ``q_value <= alpha`` and the interval of
            the difference excludes 0. Intervals are at level 1 − ``alpha``.

        Returns
        -------
        pandas.DataFrame
            One row per group and stage, groups in order (segments as in
            ``log.funnel(by=...)``; ``"before"`` then ``"after"``), stages in funnel order:

            * ``by`` columns (with ``by``) or ``period`` (with ``period``: ``"before"`` or
              ``"after"``)
            * ``stage`` : stage name
            * ``deals`` : deals in the group (segment, or created before / after ``period``;
              for a visit attribute, deals that reached some stage in the segment)
            * ``reached`` : deals of the group that reached the stage (``skips="implied"``)
            * ``advanced``, ``dropped``, ``open`` : of those, deals that went past the stage
              or won, that were lost there (explicitly or stale), that are still open there;
              ``reached == advanced + dropped + open``
            * ``conversion`` : Aalen–Johansen probability of advancing, as in
              :meth:`EventLog.funnel` (the group's own funnel); NaN when no deal has
              advanced or been lost yet
            * ``conversion_low``, ``conversion_high`` : its interval at level 1 − ``alpha``,
              widened by the unresolved mass as in :meth:`EventLog.funnel`
            * ``unresolved`` : probability mass the data cannot resolve yet (deals open, or
              silent, for longer than any resolved one; or resting on fewer than 10 deals
              at risk)
            * ``conversion_closed`` : advanced / (advanced + dropped), the ratio of
              resolved deals (biased when open deals differ from resolved ones)
            * ``conversion_closed_low``, ``conversion_closed_high`` : its Wilson interval at
              level 1 − ``alpha``
            * ``rest_advanced``, ``rest_dropped`` : the counts of the rest — every other deal
              (``by``), or the other period
            * ``rest_conversion``, ``rest_unresolved`` : the rest's own Aalen–Johansen
              conversion and unresolved mass
            * ``difference`` : conversion − rest_conversion (the group minus the rest; on the
              ``"after"`` rows after − before)
            * ``difference_low``, ``difference_high`` : Wald interval of the difference at
              level 1 − ``alpha``, widened by the unresolved mass: the low end from
              (conversion − its lower share) − (rest_conversion + its upper share), the high
              end the other way round
            * ``p_value`` : two-sided test of equal conversion (see Notes); NaN when the group
              or the rest has no conversion
            * ``q_value`` : Benjamini–Hochberg across the tested rows of the table
            * ``differs`` : ``q_value <= alpha`` and the interval of the difference excludes
              0 (False when not tested)
            * ``test`` : ``"z"`` (Wald), ``"fisher"`` or ``"none"`` — two-sided (a segment
              that does better or worse than the rest)

            With two groups (``period``, or a ``by`` with two values) both rows of a stage
            carry the same test, once with each sign; the q-values are then the same as over
            the distinct tests.

        Raises
        ------
        EventLogError
            Neither or both of ``by`` and ``period``; an unknown ``by`` attribute; a
            ``period`` that is no date or leaves no deal on one side; ``alpha`` outside (0, 1).

        Notes
        -----
        The test: with ``F`` each side's conversion and ``V`` its variance, ``z = (F1 −
        F2) / sqrt(V1 + V2)``. Each side's variance is its Aalen–Johansen variance, but at
        least the binomial variance at the pooled conversion, as in the pooled z-test (an
        estimate of 0 or 1 has a variance of 0). Where mass is unresolved, each side may lie
        anywhere from ``conversion`` minus the share of the unresolved mass the estimate
        gave to advancing to ``conversion`` plus the rest of it; the p-value is that of
        the allocation that brings the difference closest to 0, and 1 when 0 is
        reachable. When an expected count of the 2×2 table of resolved deals is below 5,
        the normal approximation fails (two lost deals against a rest converting 91%:
        Wald p = 7e-6, exact p = 0.008), so the row uses Fisher's exact test of
        ``advanced`` and ``dropped`` against the rest's (p = 1 still when the unresolved
        mass allows no difference).

        The rest of a segment is estimated on its own subjects. When that would replicate
        more than 20 million (deal, stage) subjects (many segments of a large log), it is
        approximated from the whole log's estimate ``W`` and the segment's ``G`` as
        ``(n W − n_g G) / (n − n_g)`` (exact without censoring; within 0.01 of the exact
        estimate on the sample and on a synthetic log, ``tests/test_monitoring.py``).

        Segments share the time span, and periods now share the estimator: a recent period
        is no longer restricted to deals old enough for their outcome to be known (the
        ``reached_by`` cutoff of earlier versions). Its open deals are censored — an
        advance is not counted sooner than a loss — and what they leave open shows as
        ``unresolved``, which widens the interval and weakens the test. The
        ``change`` signal of :meth:`EventLog.key_stages` still compares closed ratios of
        matured deals.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> c = log.compare(by="team")
        >>> cols = ["stage", "conversion", "rest_conversion", "q_value"]
        >>> c.loc[c["differs"], ["team", *cols]].round(3)
              team stage  conversion  rest_conversion  q_value
        3   Team A  Demo       0.732            0.528    0.011
        15  Team C  Demo       0.355            0.703    0.000

        Before and after a date — every deal, the recent ones' open visits censored:

        >>> c = log.compare(period="2025-01-01")
        >>> cols = ["period", "reached", "conversion", "unresolved", "difference", "p_value"]
        >>> c.loc[c["stage"] == "Demo", cols].round(3)
           period  reached  conversion  unresolved  difference  p_value
        3  before      232       0.616       0.000       0.091    0.215
        9   after      100       0.525       0.015      -0.091    0.215
        """
        from .monitoring import compare

        return compare(self, by=by, period=period, alpha=alpha)

    @validate_params(
        {
            "freq": [str],
            "by": BY,
            "metric": [Options(str, ("conversion", "win_rate", "cycle_time", "dwell"))],
        }
    )
    def trend(
        self,
        *,
        freq: str = "QE",
        by: str | Sequence[str] | None = None,
        metric: Literal["conversion", "win_rate", "cycle_time", "dwell"] = "conversion",
    ) -> pd.DataFrame:
        """A metric per creation cohort: how conversion, win rate, cycle time or dwell moved.

        Deals form cohorts by the period of their **creation** — the deal's first event —
        with period boundaries in UTC. Every period from the first creation to the last is a
        row, empty ones included.

        Recent cohorts are young: many of their deals are open, and a deal that fell silent
        is stale only ``stale_after`` after its last event. Conversion and win rate are the
        funnel's Aalen–Johansen estimates on the cohort's deals, open and silent deals
        censored at ``as_of``: every deal counts, an advance is not counted sooner than a
        loss, and what a young cohort cannot tell yet shows as ``unresolved`` and widens
        its interval. Cycle time and dwell are Kaplan–Meier estimates over the deals (or
        visits) whose outcome is (almost always) known: created by ``created_by``, or
        reached the stage by ``reached_by`` (see Notes). ``mature`` marks the periods that
        ended before that cutoff.

        Parameters
        ----------
        freq : str, default="QE"
            The period: a pandas offset alias — ``"QE"`` (or ``"Q"``) quarters, ``"ME"`` (or
            ``"M"``) months, ``"W"`` weeks (ending Sunday; ``"W-MON"``, ... for other ends),
            ``"YE"`` (or ``"Y"``) years, ``"D"`` days; quarter and year ends may be anchored
            (``"QE-NOV"``).
        by : str or list of str, optional
            Carried attributes; one block of periods per segment.
        metric : {"conversion", "win_rate", "cycle_time", "dwell"}, default="conversion"
            ``"conversion"`` per stage, as in :meth:`EventLog.funnel`; ``"win_rate"`` per
            cohort, the probability of winning from creation (as ``win_rate_from`` of the
            funnel's first stage); ``"cycle_time"`` per cohort, Kaplan–Meier time to any
            resolution as in the ``"any"`` row of :meth:`EventLog.cycle_time`; ``"dwell"``
            per stage, Kaplan–Meier dwell as in :meth:`EventLog.dwell`.

        Returns
        -------
        pandas.DataFrame
            One row per period (per segment; per stage for ``conversion`` and ``dwell``, in
            funnel order). Every metric starts with:

            * ``by`` columns, when given
            * ``period`` : the period's label, e.g. ``"2025Q1"``, ``"2025-01"``,
              ``"2025-01-06/2025-01-12"``
            * ``period_start``, ``period_end`` : its UTC boundaries, start included, end
              excluded (time-zone aware on an aware log)

            ``metric="conversion"`` — each cohort's rows are ``log.funnel()`` of a log of
            the cohort's deals (same ``as_of``):

            * ``stage`` : stage name
            * ``reached`` : deals of the cohort that reached the stage (``skips="implied"``)
            * ``advanced``, ``dropped``, ``open`` : of those, deals that went past the stage
              or won, that were lost there (explicitly or stale), that are still open there
              (``reached == advanced + dropped + open``)
            * ``conversion`` : Aalen–Johansen probability of advancing, as in
              :meth:`EventLog.funnel`; NaN when no deal has advanced or been lost yet
            * ``conversion_low``, ``conversion_high`` : its 95% interval, widened by the
              unresolved mass
            * ``unresolved`` : probability mass the data cannot resolve yet (as in
              :meth:`EventLog.funnel`); large in young cohorts
            * ``conversion_closed`` : advanced / (advanced + dropped), the ratio of resolved
              deals — biased upwards in young cohorts, whose silent deals are not stale yet
            * ``conversion_closed_low``, ``conversion_closed_high`` : its Wilson 95% interval
            * ``reached_by`` : the time by which a deal must have reached the stage for its
              outcome there to be (almost always) known — it defines ``mature`` and
              filters no deal
            * ``mature`` : the period ended by ``reached_by``

            ``metric="win_rate"``:

            * ``deals`` : deals created in the period
            * ``won``, ``lost``, ``stale``, ``open`` : their outcomes at ``as_of``
            * ``win_rate`` : Aalen–Johansen probability of winning, on the time from
              creation to the win or the loss, open and stale deals censored at ``as_of``;
              NaN when no deal is won or lost yet
            * ``win_rate_low``, ``win_rate_high`` : its 95% interval, widened by the
              unresolved mass
            * ``unresolved`` : probability mass the data cannot resolve yet
            * ``win_rate_closed`` : won / (won + lost + stale), the cohort's
              :meth:`EventLog.kpis` win rate — biased downwards in young cohorts, whose
              slow deals (the winners) are still open
            * ``win_rate_closed_low``, ``win_rate_closed_high`` : its Wilson 95% interval
            * ``created_by`` : the latest creation time of a deal whose outcome is (almost
              always) known — it defines ``mature`` and filters no deal
            * ``mature`` : the period ended by ``created_by``

            ``metric="cycle_time"``:

            * ``deals`` : deals created in the period
            * ``counted`` : deals behind the estimate: created by ``created_by`` and won, lost
              or open (stale deals have no cycle time)
            * ``censored`` : of those, open deals (censored at ``as_of``)
            * ``mean`` : restricted mean time from the first event to the first terminal event
              (timedelta)
            * ``median``, ``p75``, ``p90`` : Kaplan–Meier quantiles (timedelta; NaT when the
              estimate never falls that low)
            * ``created_by``, ``mature`` : as for ``win_rate``; here only deals created by
              ``created_by`` count
            * ``median_low``, ``median_high`` : 95% Brookmeyer–Crowley interval of the
              median, as in :meth:`EventLog.dwell` (NaT when undefined)

            ``metric="dwell"``:

            * ``stage`` : stage name
            * ``visits`` : visits of the stage by the cohort's deals that have a dwell (stale
              visits excluded)
            * ``counted`` : of those, the visits that began by ``reached_by``
            * ``censored`` : of the counted visits, those still open at ``as_of``
            * ``mean``, ``median``, ``p75``, ``p90`` : Kaplan–Meier restricted mean and
              quantiles of the counted visits (timedelta)
            * ``reached_by``, ``mature`` : as for ``conversion``; here only visits that
              began by ``reached_by`` count
            * ``median_low``, ``median_high`` : 95% Brookmeyer–Crowley interval of the
              median, as in :meth:`EventLog.dwell` (NaT when undefined)

        Raises
        ------
        EventLogError
            An unknown ``metric``, ``freq`` or ``by`` attribute.
        TypeError
            A ``freq`` that is not a string.

        Warns
        -----
        FunnelkitWarning
            For ``conversion`` or ``win_rate``, when every value is NaN although deals
            exist: no deal has advanced, won or been lost yet (typically a young log
            without ``stale_after``). The message gives the counts and what to do.

        Notes
        -----
        The cutoffs are the maturity rule of :meth:`EventLog.key_stages` (``change``):
        ``reached_by = as_of − stale_after − p90``, with ``p90`` the stage's Kaplan–Meier 90th
        percentile of first-visit dwell (the largest observed dwell when the estimate never
        falls that low); ``created_by = as_of − stale_after − p90`` with ``p90`` the
        Kaplan–Meier 90th percentile of the time to any resolution, stale deals left out (the
        largest observed time to a resolution when the estimate never falls that low).
        Without ``stale_after`` the lag is the ``p90`` alone, and deals that fell silent stay
        open (censored) for ever, so late stages may never mature: pass ``stale_after``.
        Conversion and win rate no longer use the cutoffs to pick deals (earlier versions
        counted only deals that reached the stage by ``reached_by``, or were created by
        ``created_by``, in a ``counted`` column): censoring handles the young deals.

        Summed over the cohorts, ``reached`` equals ``log.funnel()["reached"]`` and ``deals``
        equals ``log.n_deals``. On 8 simulated logs without any change over time, the
        conversion intervals of every cohort, the youngest included, cover the true
        conversion in 94–100% of the stages, and the youngest cohort's estimate is off by
        −1 point on average where its closed ratio runs 4 points high
        (``tests/test_monitoring.py``).

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> t = log.trend(freq="QE")
        >>> demo = t[t["stage"] == "Demo"]
        >>> cols = ["period", "reached", "open", "conversion", "unresolved", "conversion_closed"]
        >>> demo[cols].round(2)
            period  reached  open  conversion  unresolved  conversion_closed
        3   2024Q1       55     0        0.58        0.00               0.58
        9   2024Q2       51     0        0.69        0.00               0.69
        15  2024Q3       61     0        0.51        0.00               0.51
        21  2024Q4       65     0        0.69        0.00               0.69
        27  2025Q1       56     0        0.50        0.00               0.50
        33  2025Q2       44    10        0.56        0.09               0.62

        The youngest cohort's win rate rests on few resolved deals: most of it is still
        unresolved, and its interval says so:

        >>> w = log.trend(freq="QE", metric="win_rate")
        >>> w[["period", "deals", "open", "win_rate", "win_rate_high", "unresolved"]].round(2)
           period  deals  open  win_rate  win_rate_high  unresolved
        0  2024Q1     86     0      0.14           0.22        0.00
        1  2024Q2     86     0      0.16           0.25        0.00
        2  2024Q3    111     0      0.05           0.11        0.00
        3  2024Q4    108     0      0.14           0.21        0.00
        4  2025Q1    111     3      0.08           0.14        0.00
        5  2025Q2     98    56      0.13           0.64        0.42
        """
        from .monitoring import trend

        return trend(self, freq=freq, by=by, metric=metric)

    @validate_params(
        {
            "weeks": [Interval(Integral, 1, 520)],
            "baseline": [Interval(Integral, 4, 520)],
            "alpha": _ALPHA,
            "thresholds": [Mapping, None],
        }
    )
    def alerts(
        self,
        *,
        weeks: int = 1,
        baseline: int = 26,
        alpha: float = 0.01,
        thresholds: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Check the last complete weeks against the weeks before, and against thresholds.

        For a scheduled job: each rule compares a week with what its ``baseline`` weeks
        predict, the baseline's own uncertainty included, so that under a stable process a
        rule fires in at most ``alpha`` of the weeks, per rule and stage (measured:
        ``benchmarks/RESULTS.md``). The rules (:mod:`funnelkit.alerts` has the tests):

        * ``conversion`` — of the stage's visits resolved in the week (advanced, lost, or
          declared stale when the stale rule fired), the share that advanced; fires on a
          drop;
        * ``dwell_p90`` — of the visits completed in the week, the share slower than the
          baseline's 90th percentile of dwell; fires when more are slow;
        * ``stalled`` — open deals at the week's end past that 90th percentile; fires on
          more than the baseline weeks predict;
        * ``bad_rows`` — input rows of the week dropped as bad rows; fires on a rise;
        * ``threshold_<metric>`` — a limit from ``thresholds``, no test.

        Share rules are checked on the week (``window="1W"``) and on the two weeks to it
        (``"2W"``), each at ``alpha / 2``: a small drop is caught a week later. Weeks run
        Monday to Sunday (UTC); the last complete one ends at or before ``as_of``.

        Parameters
        ----------
        weeks : int, default=1
            How many of the last complete weeks to check, each against its own baseline.
        baseline : int, default=26
            Weeks before the two-week window that make the baseline.
        alpha : float, default=0.01
            False-alert rate per rule, stage and week under a stable process. With 6
            stages and 4 rules, expect about 0.2 false alerts a week at the default.
        thresholds : mapping, optional
            Limits the team sets: ``{"conversion": {"Demo": 0.5}}`` (fires below),
            ``"dwell_p90_days"`` (the week's p90 of completed dwell, in days; above),
            ``"stalled"`` (above), ``"bad_rows_share"`` (one number; above). A number for a
            metric sets it for every stage. (In the CLI: an ``[alerts.thresholds]`` table.)

        Returns
        -------
        pandas.DataFrame
            One row per week, rule, stage and window:

            * ``week`` : the week's Monday
            * ``rule`` : ``"conversion"``, ``"dwell_p90"``, ``"stalled"``,
              ``"bad_rows"`` or ``"threshold_<metric>"``
            * ``stage`` : the stage (NA for ``bad_rows``)
            * ``window`` : ``"1W"`` (the week) or ``"2W"`` (the two weeks to it)
            * ``value`` : the week's share (conversion, slow share, bad-row share), count
              (stalled) or thresholded metric
            * ``expected`` : the baseline's (share, or mean weekly count; NaN for
              thresholds)
            * ``limit`` : the value at which the rule fires (share or count), or the
              threshold; NaN when no value could fire
            * ``n`` : visits resolved, visits completed, stalled deals or input rows
            * ``p_value`` : probability of a value this extreme under the baseline (NaN
              for thresholds)
            * ``alert`` : the rule fires
            * ``message`` : what fired, in words ('' when nothing did)

        Raises
        ------
        EventLogError
            When the log is shorter than ``baseline`` + 2 complete weeks.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> a = log.alerts(thresholds={"conversion": {"Demo": 0.9}})
        >>> sorted(a["rule"].unique())
        ['bad_rows', 'conversion', 'dwell_p90', 'stalled', 'threshold_conversion']
        >>> a.loc[a["alert"], "message"].tolist()
        ['Demo: conversion 0.5 below the threshold 0.9']
        """
        from .alerts import alerts

        return alerts(self, weeks=weeks, baseline=baseline, alpha=alpha, thresholds=thresholds)

    @validate_params(
        {"start": ["timestamp"], "end": ["timestamp"], "closing": [tuple, list, None]}
    )
    def movement(
        self, start: Any, end: Any, *, closing: tuple[Any, Any] | None = None
    ) -> pd.DataFrame:
        """The pipeline waterfall between two dates: what was open, what came in, what left.

        Definitions, for a time *t* (all comparisons on the log's clock, UTC):

        * a deal is **open** at *t* when its first event is at or before *t*, it has no
          terminal event at or before *t*, and it is not stale at *t*;
        * it is **stale** at *t* when it has no terminal event at or before *t* and its latest
          event of any kind at or before *t* (a re-logged stage counts) is more than
          ``stale_after`` before *t* — it becomes stale when the silence exceeds
          ``stale_after``, and a later event revives it. Without ``stale_after`` no deal is
          ever stale;
        * it is **won** / **lost** at *t* when its terminal event is at or before *t*. The
          terminal event is the one of the cleaned log: a terminal event that was reopened
          (followed by more stage events) does not count, so the deal was open meanwhile.

        The categories compare each deal's state at ``start`` and at ``end``, so the table
        reconciles exactly::

            open_at_start + created − won − lost − stale == open_at_end

        Parameters
        ----------
        start, end : str or datetime
            The window (``start``, ``end``]; ``start`` before ``end``, ``end`` not after
            ``as_of``. A naive time on a time-zone-aware log is read as UTC.
        closing : (first, last), optional
            Follow only the pipeline whose close date lies in this window of dates
            (e.g. this quarter); needs a field history with close dates.

        Returns
        -------
        pandas.DataFrame
            Eight rows, in this order:

            * ``category`` :

              - ``open_at_start`` : deals open at ``start``
              - ``created`` : deals that joined the open pipeline in the window: first event
                in (``start``, ``end``] — whatever their state at ``end`` — or stale at
                ``start`` and revived by a later event (open, won or lost at ``end``)
              - ``advanced`` : deals open at both ``start`` and ``end`` whose furthest stage
                (funnel order) at ``end`` lies after their furthest stage at ``start``
              - ``regressed`` : deals open at both dates whose current stage (the stage of
                their latest stage event) at ``end`` lies before the one at ``start``; a deal
                can both advance and regress. ``advanced`` and ``regressed`` are movements
                among open deals, not part of the identity
              - ``won`` : deals whose (first, and only kept) terminal event, a won stage,
                falls in (``start``, ``end``]
              - ``lost`` : the same for a lost stage
              - ``stale`` : deals stale at ``end`` that were not stale at ``start`` (open then,
                or created in the window): they went stale in the window
              - ``open_at_end`` : deals open at ``end``

            * ``deals`` : number of deals
            * ``amount`` : sum of the deals' amounts (deals without one add nothing); NaN when
              the log has no amount column

            With a field history (:meth:`with_history`) the table has twelve rows, in the
            order ``open_at_start, created, pulled_in, increased, advanced, regressed, won,
            lost, stale, pushed_out, decreased, open_at_end``; each deal's amount is the
            amount **as known at the moment** it is counted (the event log's amount before
            its first amount change), and:

            - ``open_at_start`` / ``open_at_end`` : deals in the followed pipeline at
              ``start`` / ``end``, at their amount then. The followed pipeline is every
              open deal; with ``closing=(first, last)``, the open deals whose close date as
              known at that time lies in [``first``, ``last``] (whole days, both included;
              an unknown close date is outside)
            - ``created`` : as above, when the deal's close date at the moment it joined
              (first event, or the event that revived it) was in the window; at its amount
              then
            - ``won`` / ``lost`` / ``stale`` : as above, when the close date at the moment
              it left (the terminal event; going stale: latest activity + ``stale_after``)
              was in the window; at its amount then
            - ``pulled_in`` / ``pushed_out`` : deals that entered / left the window's
              pipeline by a change of close date (either direction: a close date moved
              from next quarter into this one, or from this quarter out of it), at the
              amount at the time of the move (the last close-date change that crossed the
              window's edge); always 0 with ``closing=None``
            - ``increased`` / ``decreased`` : per deal, the amount change while it was in
              the followed pipeline in the window (from ``start`` or joining to ``end`` or
              leaving), summed over the deals whose amount rose / fell. Their ``deals`` are
              the deals whose amount changed: no deal enters or leaves through them
            - ``advanced`` / ``regressed`` : as above, among deals in the followed pipeline
              at both dates, at their amount at ``end``

            The table reconciles exactly, deal by deal, for amounts::

                open_at_start + created + pulled_in + increased
                − won − lost − stale − pushed_out − decreased == open_at_end

            and for deals the same without ``increased`` and ``decreased``.

        Raises
        ------
        EventLogError
            A ``start`` or ``end`` that is no time, ``start`` not before ``end``, or ``end``
            after ``as_of``; ``closing`` without a close-date history.

        Notes
        -----
        A deal that went stale and revived within the window, or was stale at both dates, is
        in no flow; one that went stale and was then won or lost in the window counts as won or
        lost. With ``end = as_of`` the states at ``end`` are the log's outcomes
        (``open_at_end == log.quality.open``).

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> m = log.movement("2025-03-31", log.as_of)
        >>> m
                category  deals      amount
        0  open_at_start     63  2236719.22
        1        created    102  4351005.70
        2       advanced      2    62321.82
        3      regressed      0        0.00
        4            won     12   372817.63
        5           lost     68  3259153.95
        6          stale     26   684136.33
        7    open_at_end     59  2271617.01
        >>> d = m.set_index("category")["deals"]
        >>> int(d["open_at_start"] + d["created"] - d["won"] - d["lost"] - d["stale"])
        59
        >>> log.quality.open
        59

        This quarter's pipeline with the sample's field history:

        >>> h = log.with_history(fk.datasets.load_sample_history(),
        ...                      **fk.datasets.SAMPLE_HISTORY_KWARGS)
        >>> q = h.movement("2025-03-31", log.as_of, closing=("2025-04-01", "2025-06-30"))
        >>> a = q.set_index("category")["amount"]
        >>> inflow = a["open_at_start"] + a["created"] + a["pulled_in"] + a["increased"]
        >>> outflow = a[["won", "lost", "stale", "pushed_out", "decreased"]].sum()
        >>> bool(abs(inflow - outflow - a["open_at_end"]) < 1e-6)
        True
        """
        if self._history is not None or closing is not None:
            from . import history

            return history.movement(self, start, end, closing=closing)
        from .monitoring import movement

        return movement(self, start, end)

    # ------------------------------------------------------------------ field history
    @validate_params(
        {
            "history": [pd.DataFrame],
            "deal": [str],
            "field": [str],
            "value": [str],
            "time": [str],
            "fields": [Mapping, None],
            "errors": _ERRORS,
            "date_format": [str, None],
            "close_date_format": [str, None],
        }
    )
    def with_history(
        self,
        history: pd.DataFrame,
        *,
        deal: str = "deal_id",
        field: str = "field",
        value: str = "new_value",
        time: str = "changed_at",
        fields: Mapping[str, str | Sequence[str]] | None = None,
        errors: Literal["raise", "drop"] = "raise",
        date_format: str | None = None,
        close_date_format: str | None = None,
    ) -> EventLog:
        """A copy of this log that also knows how deal fields changed over time.

        ``history`` is a long table like a CRM's field-history export: one row per change
        — deal, field name, new value, changed at. The fields funnelkit reads are
        ``close_date`` (a date; the time of day is dropped, aware values taken in UTC),
        ``amount`` (a number >= 0, or text of one) and ``forecast_category`` (text).
        An empty value means the field was cleared (unknown from then on). Changes of
        one deal and field at the same time apply in input order (the last row wins).
        Before a deal's first change, its amount is the event log's amount and its close
        date and forecast category are unknown. See the how-to "Field history" for the
        Salesforce and HubSpot export shapes.

        Parameters
        ----------
        history : pandas.DataFrame
            The field changes.
        deal, field, value, time : str, default "deal_id", "field", "new_value", "changed_at"
            Its columns: the deal id (as in the event log), the field name, the new value
            and when the change was made (same parsing as the event log's times; naive
            or aware like the log's).
        fields : mapping, optional
            funnelkit's field → the name (or list of names) in ``field``, e.g.
            ``{"close_date": "CloseDate", "amount": "Amount",
            "forecast_category": "ForecastCategoryName"}``. Default: the names
            ``close_date``, ``amount``, ``forecast_category``.
        errors : {"raise", "drop"}, default "raise"
            Bad rows raise :class:`~funnelkit.EventLogError` (column, count, examples and
            how to fix; the rows as ``failure_cases``), or are left out and listed in
            ``log.history.rejects``. Bad rows: a missing or unhashable deal id, a deal not
            in the log (``unknown_deal``), a missing or unmapped field name
            (``unknown_field``), a missing, unparseable or mixed-time-zone time, a change
            after ``as_of``, a value that is no date / no amount (``invalid_value``).
        date_format : str, optional
            A strftime format for the ``time`` column given as text; default ISO 8601.
        close_date_format : str, optional
            A strftime format for close dates given as text (``"%m/%d/%Y"``); default ISO
            8601 (``"2025-06-30"``).

        Returns
        -------
        EventLog
            The same log with :attr:`history` set (this log is not changed); every
            analysis is the same, and :meth:`snapshot`, :meth:`slippage` and
            :meth:`movement` read the history.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> h = log.with_history(fk.datasets.load_sample_history(),
        ...                      **fk.datasets.SAMPLE_HISTORY_KWARGS)
        >>> h.history.quality.changes
        {'close_date': 1879, 'amount': 330, 'forecast_category': 2088}
        >>> log.history is None
        True
        """

        from . import history as H

        fh = H.attach(
            self,
            history,
            deal=deal,
            field=field,
            value=value,
            time=time,
            fields=fields,
            errors=errors,
            date_format=date_format,
            close_date_format=close_date_format,
        )
        return self._with_side(_history=fh)

    def _with_side(self, **attached: Any) -> EventLog:
        """A shallow copy sharing the built arrays and a copy of the cache, with a side
        table (``_history``, ``_activities``) attached."""
        import copy

        out = copy.copy(self)
        out._cache = dict(self._cache)
        for name, value in attached.items():
            setattr(out, name, value)
        return out

    @property
    def history(self) -> FieldHistory | None:
        """The attached field history (:meth:`with_history`), or None.

        Its ``quality`` counts the rows used and rejected, ``rejects`` lists the rejected
        rows with a ``reason``, ``changes`` the parsed changes.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> log.history is None
        True
        """
        return self._history

    # ------------------------------------------------------------------ activities
    @validate_params(
        {
            "acts": [pd.DataFrame],
            "deal": [str],
            "time": [str],
            "kind": [str],
            "value": [str, None],
            "errors": _ERRORS,
            "date_format": [str, None],
        }
    )
    def with_activities(
        self,
        acts: pd.DataFrame,
        *,
        deal: str,
        time: str,
        kind: str,
        value: str | None = None,
        errors: Literal["raise", "drop"] = "raise",
        date_format: str | None = None,
    ) -> EventLog:
        """A copy of this log that also knows what happened inside each visit.

        ``acts`` holds one row per touch — a call, email, meeting, demo, survey answer… —
        with the deal, when it happened, its kind, and optionally a value (a feedback
        score such as CSAT or NPS, a duration). Each touch is placed in the visit it
        happened in: the deal's latest visit entered at or before it (of two visits
        entered at the same time, the later in the path). A touch before the deal's first
        event, or after the terminal event of a won or lost deal, lies in no visit; it is
        kept and counted (``placement`` ``"before_first"`` / ``"after_last"``).

        Parameters
        ----------
        acts : pandas.DataFrame
            The touches.
        deal, time, kind : str
            Its columns: the deal id (as in the event log), when the touch happened (same
            parsing as the event log's times; naive or aware like the log's) and its kind
            (any text; ``1`` and ``"1"`` are one kind).
        value : str, optional
            A column of numbers (a score, a duration); empty cells are fine. Default: none.
        errors : {"raise", "drop"}, default "raise"
            Bad rows raise :class:`~funnelkit.EventLogError` (column, count, examples and
            how to fix; the rows as ``failure_cases``), or are left out and listed in
            ``log.activities.rejects``. Bad rows: a missing or unhashable deal id, a deal
            not in the log (``unknown_deal``), a missing or unhashable kind, a missing,
            unparseable or mixed-time-zone time, a touch after ``as_of``, a value that is
            no finite number (``invalid_value``).
        date_format : str, optional
            A strftime format for the ``time`` column given as text; default ISO 8601.

        Returns
        -------
        EventLog
            The same log with :attr:`activities` set (this log is not changed): every
            analysis is the same; :meth:`activity` and :meth:`drivers` read the touches
            and :meth:`deals` gains the going-cold columns.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> a = log.with_activities(fk.datasets.load_sample_activities(),
        ...                         **fk.datasets.SAMPLE_ACTIVITIES_KWARGS)
        >>> q = a.activities.quality
        >>> q.rows_used == q.placed + q.before_first + q.after_last
        True
        >>> log.activities is None
        True
        """

        from . import activities as A

        check_date_format(date_format)
        got = A.attach(
            self,
            acts,
            deal=deal,
            time=time,
            kind=kind,
            value=value,
            errors=errors,
            date_format=date_format,
        )
        return self._with_side(_activities=got)

    @property
    def activities(self) -> Activities | None:
        """The attached activities (:meth:`with_activities`), or None.

        Its ``table`` lists the used touches with the visit each lies in, ``quality``
        counts the rows used (placed, before the first event, after the last) and
        rejected, ``rejects`` lists the rejected rows with a ``reason``.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> log = log.with_activities(fk.datasets.load_sample_activities(),
        ...                           **fk.datasets.SAMPLE_ACTIVITIES_KWARGS)
        >>> list(log.activities.table.columns)
        ['deal', 'time', 'kind', 'value', 'stage', 'visit', 'placement']
        """
        return self._activities

    def _needs_activities(self, method: str) -> None:
        if self._activities is None:
            raise EventLogError(
                f"{method}() needs activities: attach them first with "
                "log = log.with_activities(acts, deal=..., time=..., kind=..., value=...)."
            )

    @validate_params(
        {"by": BY, "landmark": ["duration"], "alpha": _ALPHA, "min_visits": _MIN_VISITS}
    )
    def activity(
        self,
        by: str | Sequence[str] | None = None,
        *,
        landmark: Any = "3D",
        alpha: float = 0.05,
        min_visits: int = 20,
    ) -> pd.DataFrame:
        """What the team did and what customers said at each stage, for visits that
        advanced vs dropped.

        Descriptive columns use every visit of the stage; a visit *advanced* when its next
        move is to a later stage or won, *dropped* when it is lost or stale (moves back and
        open visits are in neither). The association columns are the tests of
        :meth:`drivers` for the kind's features (``count_*``: more touches in the first
        ``landmark`` of a deal's first visit vs fewer; ``value_*``: a value below the
        stage's median vs the others), with Benjamini–Hochberg q-values within this table.

        Parameters
        ----------
        by : str or list of str, optional
            Carried attributes; one row per segment, stage and kind.
        landmark : str or Timedelta, default "3D"
            The window at the start of a visit in which the association features are
            measured (see :meth:`drivers`).
        alpha : float, default 0.05
            Not used for a flag here; kept equal to :meth:`drivers`' for the q-values'
            reading (q ≤ alpha is a discovery at that FDR).
        min_visits : int, default 20
            Fewest deals in each group for a test (fewer: NaN).

        Returns
        -------
        pandas.DataFrame
            One row per ([segment,] stage, kind), in funnel order:

            * ``by`` columns, when given
            * ``stage``, ``kind``
            * ``visits`` : visits of the stage
            * ``touches`` : touches of the kind in them
            * ``touched_share`` : share of the visits with at least one
            * ``per_visit_advanced``, ``per_visit_dropped`` : mean touches per visit among
              the visits that advanced / dropped
            * ``first_touch_median`` : median time from entering to the first touch of the
              kind, over the visits with one (Timedelta)
            * ``values``, ``value_mean``, ``value_median``, ``value_p25``, ``value_p75`` :
              the kind's values in the stage's visits (NaN without)
            * ``count_group``, ``count_effect``, ``count_ci_low``, ``count_ci_high``,
              ``count_p_value``, ``count_q_value`` : association of the touch count with
              advancing (effect: conversion of the group named minus the others')
            * ``value_group``, ``value_effect``, ``value_ci_low``, ``value_ci_high``,
              ``value_p_value``, ``value_q_value`` : the same for a low value

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> log = log.with_activities(fk.datasets.load_sample_activities(),
        ...                           **fk.datasets.SAMPLE_ACTIVITIES_KWARGS)
        >>> t = log.activity()
        >>> row = t[(t["stage"] == "Proposal") & (t["kind"] == "survey")].iloc[0]
        >>> int(row["visits"]), int(row["values"]), float(row["value_median"])
        (199, 189, 7.0)
        """
        from . import activities as A

        self._needs_activities("activity")
        by_cols = [] if by is None else ([by] if isinstance(by, str) else list(by))
        L = int(C.to_duration(landmark, "landmark").value)
        return A.activity(self, by_cols, L, alpha, min_visits)

    @validate_params(
        {
            "stage": ["str_list", None],
            "attrs": ["str_list", None],
            "landmark": ["duration"],
            "alpha": _ALPHA,
            "min_visits": _MIN_VISITS,
            "adjust": ["boolean"],
        }
    )
    def drivers(
        self,
        stage: str | Sequence[str] | None = None,
        *,
        attrs: str | Sequence[str] | None = None,
        landmark: Any = "3D",
        alpha: float = 0.05,
        min_visits: int = 20,
        adjust: bool = False,
    ) -> pd.DataFrame:
        """Which attributes and activities go with advancing, stage by stage — ranked, with
        intervals and false-discovery control.

        At each stage, every feature splits the deals that entered it (first entry,
        ``skips="strict"``) into two groups, and the effect is the difference of their
        conversions — each the Aalen–Johansen probability of advancing of
        :meth:`funnel` (open deals censored at ``as_of``, the mass still unresolved
        widening the interval):

        * each carried attribute and visit attribute: each value against the rest
          (``owner`` = ``Owner 03``; with two values, one test);
        * each activity kind's touch count in the first ``landmark`` of the visit: more
          than the stage's median (when the median is 0: any) against the others —
          ``calls per visit``;
        * each kind's value (its mean over the window's touches): below the stage's median
          against the others with a value — ``survey score``.

        Activity features are measured in the first ``landmark`` of the visit and compared
        among the deals still in the stage then, the clock starting at the landmark: a
        visit that lasts longer has more time for touches, so counts over the whole visit
        would go with the outcome even where touches change nothing.

        Test: on the effective counts of the two estimates, as ``key_stages``' drop-off
        signal, but with the score z-test (pooled rate under the null) rather than the
        Wald test; Fisher's exact test when a group has fewer than 100 effective deals;
        at the allocation of unresolved mass closest to no difference; two-sided. Interval: MOVER from the groups' intervals.
        q-values control the false discovery rate within each stage, each feature one
        family of its values (Benjamini & Bogomolov: Benjamini–Hochberg over the
        stage's features, each with the Bonferroni p-value of its best value, then
        Bonferroni within a selected feature at ``alpha · R / m``, ``R`` of ``m``
        features selected) — twelve owners are one question, not twelve. Association,
        not cause: a driver is where to look.

        With ``adjust=True``, each stage also gets one adjusted (multivariable) model: a
        cause-specific Cox proportional-hazards model of advancing (lifelines'
        ``CoxPHFitter``, the optional extra ``funnelkit[models]``) with all the stage's
        features together — each attribute one-hot against its most common value, each
        activity count and low-value indicator as above (a low value compared with the
        others with a value, through a "has a value" term). The deals are those of the
        scan; time is the time in the stage from entry — or, when the stage has activity
        features, from the landmark, among the deals still in the stage then (a landmark
        model for every feature of that stage); the event is advancing, and lost, open
        and stale visits are censored. Deals with a missing attribute value are left out
        of that stage's model. The fit is unpenalized; only when it does not converge it
        is refitted with an L2 penalizer of 0.01 and the row's ``adj_note`` says so.
        Adjusted statistics are NaN, with the reason in ``adj_note``, for the reference
        level, a feature with no variation among the model's deals, a column determined by
        the features entered before it (features with fewer values enter first, so of
        nested attributes — owner within team — the finer one loses the levels the
        coarser one fixes), a stage where no deal advanced, or a model that does not
        converge. Every feature enters the model, whatever ``min_visits``. The
        hazard ratio is a rate (advancing sooner), not a difference of conversions, and
        has no q-value: the scan's ``q_value`` and ``is_key`` are unchanged.

        Parameters
        ----------
        stage : str or list of str, optional
            Only these stages (default: all).
        attrs : str or list of str, optional
            The attributes to scan (carried or visit attributes); default all; ``[]`` for
            activity features only.
        landmark : str or Timedelta, default "3D"
            Window at the start of each visit for activity features.
        alpha : float, default 0.05
            FDR level: a row is key when its q-value is at most ``alpha`` and its interval
            excludes 0.
        min_visits : int, default 20
            Fewest deals in each group for a test; smaller groups get NaN statistics and
            say so in ``reason``.
        adjust : bool, default False
            Add the adjusted model's columns (needs lifelines: ``pip install
            "funnelkit[models]"``; an ImportError says so when it is missing).

        Returns
        -------
        pandas.DataFrame
            One row per (stage, feature, group), by stage in funnel order, key rows first,
            then by q-value and size of effect:

            * ``stage`` : stage name
            * ``feature`` : attribute name, or ``"<kind>s per visit"`` /
              ``"<kind> <value column>"`` (e.g. ``"calls per visit"``, ``"survey score"``)
            * ``group`` : the group compared with the others (an attribute value,
              ``"any in the first 3 days"``, ``"below 7 (the stage's median) ..."``)
            * ``source`` : ``"attribute"``, ``"visit attribute"`` or ``"activity"``
            * ``visits_with``, ``visits_without`` : deals in the group and in the others
            * ``conversion_with``, ``conversion_without`` : their conversions
            * ``effect`` : ``conversion_with`` − ``conversion_without``
            * ``ci_low``, ``ci_high`` : its 95% interval
            * ``p_value`` : two-sided test of no difference
            * ``q_value`` : q-value within the stage (features as families, see above)
            * ``is_key`` : q ≤ ``alpha`` and the interval excludes 0
            * ``test`` : ``"z"`` or ``"fisher"`` (empty when not tested)
            * ``reason`` : one line a sales leader can read

            With ``adjust=True``, after these (which are unchanged):

            * ``adj_hazard_ratio`` : the row's hazard ratio of advancing in the stage's
              Cox model (above 1: advances sooner, other features held fixed)
            * ``adj_ci_low``, ``adj_ci_high`` : its 95% interval
            * ``adj_p_value`` : Wald test of a hazard ratio of 1
            * ``adj_note`` : why the adjusted statistics are NaN, or that the fit was
              penalized; empty otherwise
            * ``adj_q_value`` : the adjusted p-values' q-values, in the scan's families
              (Benjamini–Bogomolov per stage, as ``q_value``); ``is_key`` stays the scan's

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> log = log.with_activities(fk.datasets.load_sample_activities(),
        ...                           **fk.datasets.SAMPLE_ACTIVITIES_KWARGS)
        >>> d = log.drivers("Demo")
        >>> top = d.iloc[0]
        >>> top["feature"], top["group"], bool(top["is_key"])
        ('team', 'Team C', True)
        """
        from .drivers import scan
        from .funnel import wanted_stages

        L = int(C.to_duration(landmark, "landmark").value)
        names = None if attrs is None else ([attrs] if isinstance(attrs, str) else list(attrs))
        if names is not None:
            unknown = [a for a in names if a not in self._attrs and a not in self._visit_attrs]
            if unknown:
                raise InvalidParameterError(
                    f"Parameter `attrs`: {unknown} are not attributes of the log; carried: "
                    f"{self.attrs}, per visit: {list(self._visit_attrs)}."
                )
        mask = None if stage is None else wanted_stages(self.stages, stage)
        return scan(
            self,
            attrs=names,
            landmark_ns=L,
            alpha=alpha,
            stages=mask,
            min_visits=min_visits,
            adjust=adjust,
        )

    @validate_params({"at": ["timestamp"]})
    def snapshot(self, at: Any) -> pd.DataFrame:
        """The open pipeline as it stood at a moment, with the fields as known then.

        A deal is open at ``at`` by the rules of :meth:`movement` (created, no terminal
        event, not stale, all at or before ``at``). Its fields are as known at ``at``:
        only history changes at or before ``at`` count. Works without a history too
        (amounts are the event log's, close dates and categories unknown).

        Parameters
        ----------
        at : str or datetime
            Not after ``as_of``; naive on a time-zone-aware log is read as UTC.

        Returns
        -------
        pandas.DataFrame
            One row per deal open at ``at``, in the order of :meth:`deals`:

            * ``deal`` : deal id
            * ``stage`` : its current stage at ``at`` (the stage of its latest stage
              event then; null if it had none yet)
            * ``furthest_stage`` : furthest stage in funnel order reached by ``at``
            * ``first_event`` : when the deal was created
            * ``amount`` : amount as known at ``at`` (NaN when unknown)
            * ``close_date`` : close date as known at ``at`` (NaT when unknown)
            * ``forecast_category`` : forecast category as known at ``at`` (missing when
              unknown)
            * one column per carried attribute

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> log = log.with_history(fk.datasets.load_sample_history(),
        ...                        **fk.datasets.SAMPLE_HISTORY_KWARGS)
        >>> s = log.snapshot("2025-03-31")
        >>> s.columns.tolist()[:7]
        ['deal', 'stage', 'furthest_stage', 'first_event', 'amount', 'close_date', 'forecast_category']
        >>> len(s)
        63
        """
        from .history import snapshot

        return snapshot(self, at)

    @validate_params({"by": ["columns", None], "chronic_pushes": [Interval(Integral, 1, None)]})
    def slippage(
        self, *, by: str | Sequence[str] | None = None, chronic_pushes: int = 3
    ) -> pd.DataFrame:
        """Close-date slippage and amount changes, per deal or summed per stage or segment.

        From the close-date history (:meth:`with_history`): a **push** is a change of the
        close date to a later date, a **pull** to an earlier one, each compared with the
        previous known close date (the first setting, and a clearing, are neither).
        Every change up to ``as_of`` counts, also one made when the deal closed.

        Parameters
        ----------
        by : str or list of str, optional
            ``None``: one row per deal. ``"stage"``: changes summed by the stage the deal
            was in when the change was made (its latest event at or before the change —
            a terminal name for changes made at or after closing; changes before the
            deal's first event count for its first stage). A carried attribute (or a
            list): per-deal values summed per segment (per owner, team...).
        chronic_pushes : int, default=3
            The chronic-slipper rule: a deal is a **chronic slipper** when its close date
            was pushed at least this many times.

        Returns
        -------
        pandas.DataFrame
            With ``by=None``, one row per deal, in the order of :meth:`deals`:

            * ``deal`` : deal id
            * ``outcome`` : ``won``, ``lost``, ``stale`` or ``open`` (as in :meth:`deals`)
            * ``pushes`` / ``pulls`` : close-date changes to a later / earlier date
            * ``days_pushed`` / ``days_pulled`` : total days moved later / earlier (>= 0)
            * ``quarters_slipped`` : quarter ends crossed by its pushes (calendar
              quarters of the close dates, summed over pushes)
            * ``first_close_date`` : earliest known close date (NaT when never set)
            * ``last_close_date`` : close date as known at ``as_of``
            * ``amount_first`` : the event log's amount, or, when it has none, the first
              amount of the history
            * ``amount_last`` : amount as known at ``as_of``
            * ``amount_change`` : ``amount_last − amount_first``
            * ``chronic`` : ``pushes >= chronic_pushes``
            * one column per carried attribute

            With ``by``, one row per group (``by="stage"``: every stage, then the won
            and lost names, in the log's order):

            * the ``by`` column(s)
            * ``deals`` : deals in the group (``by="stage"``: deals that entered it)
            * ``deals_pushed`` : of those, deals pushed at least once (``by="stage"``:
              while in that stage)
            * ``share_pushed`` : ``deals_pushed / deals``, with its Wilson 95% interval
              ``share_pushed_low`` / ``share_pushed_high``
            * ``pushes``, ``days_pushed``, ``pulls``, ``days_pulled`` : sums
            * ``chronic`` : chronic slippers among the group's deals (``by="stage"``:
              among its pushed deals)
            * ``amount_change`` : sum of the deals' amount changes (not with
              ``by="stage"``)

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> log = log.with_history(fk.datasets.load_sample_history(),
        ...                        **fk.datasets.SAMPLE_HISTORY_KWARGS)
        >>> s = log.slippage()
        >>> len(s) == log.n_deals
        True
        >>> by_owner = log.slippage(by="owner")
        >>> int(by_owner["pushes"].sum()) == int(s["pushes"].sum())
        True
        """
        from .history import slippage

        return slippage(self, by=by, chronic_pushes=chronic_pushes)

    # ------------------------------------------------------------------ prediction
    @validate_params({"changes": [Mapping], "by": BY, "n_boot": _N_BOOT, "seed": SEED})
    def what_if(
        self,
        changes: Mapping[str, Mapping[str, float]],
        *,
        by: str | Sequence[str] | None = None,
        n_boot: int = 200,
        seed: int | None = 0,
    ) -> pd.DataFrame:
        """Expected effect of changing stages' conversion or dwell, on the absorbing chain.

        The baseline is the absorbing Markov chain of the log's transition matrix
        (:func:`funnelkit.markov.chain_from_log`: exit shares of completed visits, stale a
        loss, deals starting where their first event is) with the Kaplan–Meier mean dwell of
        each stage (:meth:`EventLog.dwell`). The scenario changes that chain and those means,
        and every metric is computed exactly on both — no simulation.

        Parameters
        ----------
        changes : mapping
            ``{stage: {"conversion": delta, "dwell": factor}}`` (either key or both; several
            stages at once):

            ``conversion``
                Absolute change of the stage's **forward share** — the share of its completed
                exits that go to a later stage or to won (+0.05 = 5 points more). The mass is
                taken from the loss exits (lost names and stale) in proportion to their shares
                and given to the forward exits in proportion to theirs; a negative change
                moves it the other way; backward moves are unchanged
                (:func:`shift_conversion`). Bounds: from −(forward share) (if the stage has a
                loss exit) to +(loss share) (if it has a forward exit), checked for every
                segment; in a bootstrap draw the change is clipped to the draw's bounds.
            ``dwell``
                Factor on the stage's mean dwell time (0.8 = 20% faster), >= 0. It changes
                cycle times only: in this model the time spent in a stage does not change
                where the deal goes.
        by : str or list of str, optional
            Carried attributes: one chain per segment (its own exit shares, starts and dwell),
            the same changes applied to each.
        n_boot : int, default=200
            Deal-level (cluster) bootstrap resamples for the intervals
            (:func:`funnelkit.markov.bootstrap_counts`; the same draws resample the dwell
            curves and the won amounts). 0 skips them (NaN intervals).
        seed : int or None, default=0
            Seed of the bootstrap.

        Returns
        -------
        pandas.DataFrame
            One row per metric (per segment):

            * ``by`` columns, when given
            * ``metric`` : ``"win_rate"`` — probability that a deal entering the funnel is
              won, from the chain (every deal run to resolution; not won / resolved so far);
              ``"wins"`` — expected wins **of the deals in the log** (of the segment):
              ``deals × win_rate``; ``"won_amount"`` — average won amount (mean amount of the
              won deals with an amount; kept fixed) × ``wins``, NaN without an amount column;
              ``"cycle_time"`` — expected days from a deal's first event to its resolution
              (won, lost or stale), ``start · N m`` with ``N = (I − Q)⁻¹`` and ``m`` the mean
              dwell per stage (semi-Markov: a stale visit counts its stage's mean dwell);
              ``"won_cycle_time"`` — expected days to a win given a win, from the chain
              conditioned on winning: ``start · N (h ⊙ m) / P(win)``, ``h`` the win
              probability from each stage
            * ``unit`` : ``"share"``, ``"deals"``, ``"amount"`` or ``"days"`` (the log's
              calendar: business days with a business calendar)
            * ``baseline`` : the metric now
            * ``scenario`` : the metric with the changes
            * ``change`` : scenario − baseline
            * ``change_low``, ``change_high`` : 95% percentile interval of the change over the
              bootstrap draws (each draw computes baseline and scenario on the same resample)
            * ``deals`` : deals the chain is built on

        Raises
        ------
        EventLogError
            An unknown stage, key or ``by`` attribute, a negative ``dwell`` factor, a
            ``conversion`` change outside the stage's bounds, or ``n_boot < 0``.
        TypeError
            ``changes`` not a mapping of mappings of numbers, or a non-integer ``n_boot`` or
            ``seed``.

        Notes
        -----
        A stage without a forward exit cannot gain conversion and one without a loss exit
        cannot lose it (the bounds are then 0 on that side). Stages never visited count zero
        dwell. Mean dwells come from the Kaplan–Meier estimator (the restricted mean, as in
        :meth:`EventLog.dwell`); in the bootstrap the curves are rebuilt from at most 256 dwell
        bins per stage, which moves the interval ends by a negligible amount.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> w = log.what_if({"Demo": {"conversion": 0.05}, "Proposal": {"dwell": 0.8}}, n_boot=50)
        >>> w["metric"].tolist()
        ['win_rate', 'wins', 'won_amount', 'cycle_time', 'won_cycle_time']
        >>> bool((w.set_index("metric").loc["win_rate", "change"] > 0))
        True
        >>> ok = (w["change_low"] <= w["change"]) & (w["change"] <= w["change_high"])
        >>> bool(ok.all())
        True
        """
        from .forecast import what_if

        return what_if(self, changes, by=by, n_boot=n_boot, seed=seed)

    @validate_params(
        {
            "horizon": ["duration", None],
            "by": BY,
            "as_of": DATE,
            "exits": [Options(str, ("shares", "by_dwell"))],
            "n_boot": _N_BOOT,
            "seed": SEED,
            "half_life": ["duration", Options(str, ("auto",)), None],
            "window": ["duration", None],
            "by_period": [str, None],
            "periods": [Interval(Integral, 1, 36)],
            "quota": [Real, pd.DataFrame, Mapping, None],
            "quota_of": [Options(str, ("amount", "wins"))],
            "n_sims": [Interval(Integral, 100, 100_000)],
        }
    )
    def forecast(
        self,
        horizon: Any = None,
        *,
        by: str | Sequence[str] | None = None,
        as_of: Any = None,
        exits: Literal["shares", "by_dwell"] = "by_dwell",
        n_boot: int = 100,
        seed: int | None = 0,
        half_life: Any = None,
        window: Any = None,
        by_period: str | None = None,
        periods: int = 3,
        quota: Any = None,
        quota_of: Literal["amount", "wins"] = "amount",
        n_sims: int = 2000,
    ) -> Forecast:
        """Probability that each open deal is won, lost or still open ``horizon`` from now;
        with ``by_period``, expected wins and won amount per calendar period.

        Built from the stages' exits (by default each exit's cumulative incidence over the
        time spent in the stage; with ``exits="shares"`` the rows of the absorbing chain,
        :mod:`funnelkit.markov`) and Kaplan–Meier dwell curves, conditioned on the time each
        deal has already spent in its stage, with every later move inside the horizon (a
        semi-Markov recursion on a daily grid; the model is described in
        :mod:`funnelkit.forecast`). Dwell is calendar time, whatever the log's calendar.

        With ``by_period`` (``"ME"``, ``"QE"``…) the forecast is made per calendar period
        (UTC): the current, partial period and ``periods − 1`` after it, each with what is
        already won in it, the open deals' wins in it, the wins of deals declared stale
        that come back, and the wins of deals not created yet (an arrival model fitted to
        the log's creations, seasonal by month of year when the log spans two years), with
        simulated intervals; ``quota`` adds pipeline coverage and the probability of
        reaching quota. The model is described in :mod:`funnelkit._period_forecast`;
        :func:`funnelkit.backtest_periods` scores it on past dates.

        Parameters
        ----------
        horizon : str or timedelta, default "90D"
            How far ahead (calendar time), e.g. ``"30D"``. Not with ``by_period`` (the
            horizon is then the end of the last period).
        by : str or list of str, optional
            Carried attributes: each segment's deals are forecast with the segment's own exit
            shares and dwell curves, and get their own totals.
        as_of : str or datetime, optional
            Forecast from this earlier time, using only the events up to it
            (:func:`cut_log`); default ``log.as_of``.
        exits : {"by_dwell", "shares"}, default "by_dwell"
            Where a deal goes when it leaves a stage. ``"by_dwell"``: exit shares that
            depend on the time spent there, from the Aalen–Johansen estimator (cumulative
            incidence of each exit, open visits censored; its total is the same
            Kaplan–Meier curve), so a deal that has waited long gets the exit mix of late
            exits — in many processes mostly losses (BPIC 2012: applications that wait long
            are cancelled). ``"shares"``: the stage's exit shares whatever the time spent
            (the chain's rows with the Kaplan–Meier dwell curve); it over-predicted BPIC's
            wins by 22% (``"by_dwell"``: 6%) and is as good where the exit mix does not
            change with time (``benchmarks/RESULTS.md``).
        n_boot : int, default=100
            Deal-level bootstrap draws for the model's own uncertainty: the whole model
            (exit shares, dwell and incidence curves, stale shares) is refitted on the log's
            deals drawn with replacement and the open deals forecast again; the spread of
            the totals joins the open deals' own chance in the intervals. 0: the intervals
            hold only the open deals' chance. The cost grows linearly (about 20 ms a draw
            for a 13,000-deal log with a 30-day horizon).
        seed : int or None, default=0
            Seed of the bootstrap and of the per-period simulation (``None``: fresh
            randomness).
        half_life : str, timedelta or "auto", optional
            Weight recent history more: a visit's weight in the model halves every
            ``half_life`` before ``as_of`` (by when the visit began). For processes that
            change (BPIC 2012 changed within months). ``"auto"``: the value with the best
            Brier score in a rolling backtest of the log (:func:`funnelkit.tune_recency`,
            with this horizon). Default: all history weighs the same.
        window : str or timedelta, optional
            Instead of ``half_life``: only visits that began within ``window`` before
            ``as_of`` make the model.
        by_period : str, optional
            Forecast per calendar period: a pandas period-end alias — ``"W"`` (or
            ``"W-FRI"``…), ``"ME"``, ``"QE"`` (or ``"QE-JAN"``… for a fiscal year),
            ``"YE"``. Fills ``Forecast.periods`` and ``Forecast.period_history``.
        periods : int, default 3
            How many periods, the current (partial) one first; at most 740 days ahead.
        quota : float, mapping or DataFrame, optional
            The quota of each period: one number for every period (and segment), a
            mapping ``{period: quota}``, or a table with columns ``period`` (a period
            label such as ``"2025-07"`` or any date inside it), ``quota`` and the ``by``
            columns. Periods without a quota get NaN.
        quota_of : {"amount", "wins"}, default "amount"
            What the quota counts: won amount or deals won.
        n_sims : int, default 2000
            Simulations behind the per-period intervals.

        Returns
        -------
        Forecast
            With two tables (four with ``by_period``). ``deals``: one row per deal open at
            ``as_of``, in deal order (with ``by_period``: ``p_win`` etc. by the end of the
            last period):

            * ``by`` columns, when given
            * ``deal`` : deal id
            * ``stage`` : the stage it is in (categorical, funnel order)
            * ``entered`` : when it entered that stage (this visit)
            * ``days_in_stage`` : time spent there so far, in days
            * ``amount`` : the deal's amount (NaN without one)
            * ``p_win`` : probability of being won by ``as_of + horizon``
            * ``p_lost`` : probability of being lost by then: a lost event, or stale (silent
              and declared stale by then, ``stale_after`` after its last event)
            * ``p_open`` : 1 − ``p_win`` − ``p_lost``
            * ``p_win_min``, ``p_win_max`` : the lowest and highest ``p_win`` the history
              allows: beyond the longest time the history has followed deals in the stage
              the curves are unknown, and ``p_win`` extrapolates them (at the exit rate of
              the last quarter of that follow-up); ``p_win_min`` holds them flat there (no
              more exits), ``p_win_max`` lets every deal still unresolved there be won.
              Equal to ``p_win`` when the deal's horizon lies within the follow-up
            * ``thin_history`` : the stage's model rests on fewer than 20 completed visits
            * ``expected_amount`` : ``p_win × amount``

            ``totals``: one row (per segment):

            * ``by`` columns, when given
            * ``deals`` : open deals
            * ``expected_wins`` : sum of ``p_win``
            * ``wins_low``, ``wins_high`` : 95% interval of the number of wins: from
              Σ ``p_win_min`` − 1.96 sd to Σ ``p_win_max`` + 1.96 sd, clipped to [0, deals],
              where sd² = Σ p(1 − p) (the open deals' own chance) + the bootstrap variance
              of the expected wins (the model's own uncertainty; ``n_boot``)
            * ``wins_sd_model`` : that bootstrap standard deviation (0 with ``n_boot=0``)
            * ``wins_unresolved`` : Σ (``p_win_max`` − ``p_win_min``): wins the history
              cannot tell yet
            * ``expected_lost``, ``expected_open`` : sums of ``p_lost`` and ``p_open``
            * ``deals_with_amount`` : open deals with an amount
            * ``expected_amount`` : sum of ``expected_amount`` over them (NaN when none has an
              amount)
            * ``amount_low``, ``amount_high`` : 95% interval of the won amount, built the
              same way (variance Σ amount² p(1 − p) + bootstrap)
            * ``enough_history`` : False when the history is too short to forecast well:
              the unresolved wins exceed a quarter of ``expected_wins``, or more than a
              tenth of the open deals sit in stages with fewer than 20 completed visits
            * ``history_note`` : why not, in words ('' when there is enough); the forecast
              then warns

            ``periods`` (with ``by_period``): one row per (segment and) period, in order:

            * ``by`` columns, when given
            * ``period`` : the period's label (``"2025-07"``, ``"2025Q3"``, …)
            * ``period_start``, ``period_end`` : its bounds (end exclusive, UTC)
            * ``days_ahead`` : days of the period after ``as_of`` (the whole period after
              the first)
            * ``open_deals`` : deals open at ``as_of``; ``stale_deals`` : deals stale then
            * ``won_to_date`` : deals won in the period up to ``as_of`` (known; 0 after the
              current period)
            * ``expected_open_wins`` : expected wins of the open deals in the period (the
              differences of their ``p_win`` by each period end)
            * ``expected_stale_wins`` : expected wins of deals stale at ``as_of`` that come
              back (the stage's dwell curve reaches past ``stale_after``)
            * ``expected_new_deals`` : expected deals created in the period after ``as_of``
            * ``expected_new_wins`` : expected wins in the period of deals not created yet
            * ``expected_wins`` : ``won_to_date`` + the three expected wins
            * ``wins_low``, ``wins_high`` : 95% interval of the period's wins (simulated;
              each tail holds at most 2.5%); ``wins_low80``, ``wins_high80``,
              ``wins_low50``, ``wins_high50`` : the 80% and 50% intervals
            * ``won_amount_to_date``, ``expected_open_amount``, ``expected_stale_amount``,
              ``expected_new_amount``, ``expected_amount`` : the same for the won amount
              (a new deal's amount: the amounts of the segment's won deals), NaN without
              amounts
            * ``amount_low``, ``amount_high``, ``amount_low80``, ``amount_high80``,
              ``amount_low50``, ``amount_high50`` : its 95%, 80% and 50% intervals
            * ``arrival_model`` : ``"seasonal"`` (two years of history or more: a level
              times a month-of-year factor) or ``"recent"`` (the rate of the last 91 days)
            * ``arrivals_per_day`` : the fitted creation rate in the period's future part

            With ``quota``, in its unit (``quota_of``):

            * ``quota`` : the period's quota (NaN when none)
            * ``quota_remaining`` : the quotas from the current period through this one
              (periods without one count 0), less what is already won in the current
              period when it has a quota (at least 0)
            * ``pipeline`` : the open deals' amount (their number with
              ``quota_of="wins"``), not weighted by their chance
            * ``coverage`` : ``pipeline / quota_remaining`` (inf when nothing remains):
              in the first row the usual pipeline coverage of the current period, in later
              rows that of all quota up to that period, so one pipeline is never counted
              twice
            * ``p_quota`` : probability that the period's won total (``won_to_date``
              included) reaches its quota, from the simulation

            ``period_history``: deals won per period in the ``periods`` periods before the
            current one and in the current one up to ``as_of`` — ``by`` columns,
            ``period``, ``period_start``, ``period_end``, ``complete`` (the period ended
            and lies within the log), ``wins``, ``won_amount``.

            The per-period intervals include the outcome of every deal, the creations'
            Poisson noise, overdispersion, the arrival rate's estimation error and its
            drift over time (measured on the history, pooled with a weak prior), and
            with ``n_boot`` the chain's own estimation error for the open and the new
            deals' wins (each simulation takes one bootstrap refit).

        Raises
        ------
        EventLogError
            A non-positive or unparseable ``horizon``, an ``as_of`` outside the log, an
            unknown ``by`` attribute.
        TypeError
            A bare number as ``horizon``.
        InvalidParameterError
            An unknown ``by_period``; ``periods`` out of range or reaching more than 740
            days ahead; a negative ``quota`` or a quota table with unknown periods or
            segments, missing columns or duplicates; ``periods``, ``quota``, ``quota_of``
            or ``n_sims`` without ``by_period``; ``horizon`` with it.

        Notes
        -----
        Exit shares and dwell curves are estimated from all visits in the log (or the
        segment; weighted by ``half_life`` or ``window``), so a small segment gives noisy
        forecasts — the bootstrap interval says how noisy. On BPIC 2012, eight cuts
        every 14 days with 30-day horizons, the forecast was within 0.92–1.14 of the actual
        wins and its interval held them at every cut (``benchmarks/RESULTS.md``).

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> fc = log.forecast("90D")
        >>> len(fc.deals) == log.quality.open
        True
        >>> p = fc.deals[["p_win", "p_lost", "p_open"]].sum(axis=1)
        >>> bool(((p - 1).abs() < 1e-9).all())
        True
        >>> list(fc.totals.columns[:4])
        ['deals', 'expected_wins', 'wins_low', 'wins_high']

        Per month, with a quota of 150,000 a month:

        >>> m = log.forecast(by_period="ME", periods=3, quota=150_000)
        >>> m.periods["period"].tolist()
        ['2025-06', '2025-07', '2025-08']
        >>> row = m.periods.iloc[1]
        >>> bool(row["wins_low"] <= row["expected_wins"] <= row["wins_high"])
        True
        >>> 0 <= float(row["p_quota"]) <= 1
        True
        """
        from ._period_forecast import check_period_args, forecast_by_period
        from .forecast import forecast

        check_period_args(horizon, by_period, periods, quota, quota_of, n_sims)
        if by_period is None:
            return forecast(
                self, horizon, by=by, as_of=as_of, exits=exits, n_boot=n_boot, seed=seed,
                half_life=half_life, window=window,
            )  # fmt: skip
        # the horizon is the end of the last period
        return forecast_by_period(
            self, by_period, periods, by=by, as_of=as_of, exits=exits, n_boot=n_boot,
            seed=seed, half_life=half_life, window=window, quota=quota, quota_of=quota_of,
            n_sims=n_sims,
        )  # fmt: skip

    # ------------------------------------------------------------------ report
    @validate_params(
        {
            "by": BY,
            "freq": [str, None],
            "period": DATE,
            "key_kwargs": [Mapping, None],
            "within": ["duration", Mapping, None],
            "charts": ["boolean"],
            "progress": PROGRESS,
            "lang": [Options(str, ("en", "zh"))],
            "currency": [str, None],
            "cold_after": ["duration", None],
        }
    )
    def report(
        self,
        *,
        by: str | Sequence[str] | None = None,
        freq: str | None = None,
        period: Any = None,
        key_kwargs: Mapping[str, Any] | None = None,
        within: Any = None,
        charts: bool = True,
        progress: bool | Callable[[str], None] | None = None,
        lang: str = "en",
        currency: str | None = None,
        cold_after: Any = None,
    ) -> Report:
        """Every table and chart of the log, computed once: view in Jupyter, save to a folder.

        See :func:`funnelkit.report.build_report`. ``report.save(outdir)`` writes
        ``report.html`` (one self-contained page), ``tables/<name>.parquet`` (and ``.csv``
        but for the per-deal table; ``save(csv=...)``), ``charts/<name>.png`` and ``.svg``,
        and ``summary.json``, atomically.

        Parameters
        ----------
        by : str or list of str, optional
            Carried attribute(s) to compare segments by: the segment funnel and chart, the
            ``heterogeneity`` and segment ``dropoff`` key-stage signals, ``compare(by=)``.
        freq : str, optional
            Cohort period of the trend (``trend(freq=)``); default ``"QE"``.
        period : str or datetime, optional
            A date splitting deals into before and since: the ``change`` and
            previous-period ``dropoff`` key-stage signals, ``compare(period=)``.
        key_kwargs : dict, optional
            More keywords of :meth:`key_stages` (``n_boot``, ``alpha``, ``benchmark``...).
        within : str or dict, optional
            Conversion window of the funnel tables (see :meth:`funnel`).
        charts : bool, default=True
            Draw the charts; ``False`` makes a tables-only report without matplotlib.
        progress : bool or callable, optional
            ``True`` prints the long steps to stderr; a callable gets each step's name.
        lang : {"en", "zh"}, default="en"
            Language of the page and of the charts' texts (English, Simplified Chinese).
        currency : str, optional
            The amounts' currency on the page: a symbol (``"$"``) or a code (``"EUR"``).
        cold_after : str or timedelta, optional
            "Going cold" in the deals to act on: no event for this long (default: half
            of ``stale_after``, else 30 days).

        Returns
        -------
        funnelkit.report.Report
            ``tables`` (name → DataFrame), ``charts`` (name → matplotlib Figure),
            ``summary`` (headline numbers and key stages, as in ``summary.json``) and
            ``notes``; ``save(outdir)`` writes them.

        Examples
        --------
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> report = log.report(by="team", charts=False)
        >>> [(k["stage"], k["signal"]) for k in report.summary["key_stages"]]
        [('Demo', 'leverage'), ('Proposal', 'leverage'), ('Demo', 'dropoff'), ('Demo', 'heterogeneity'), ('Demo', 'dwell')]
        >>> import pathlib, tempfile
        >>> out = report.save(pathlib.Path(tempfile.mkdtemp()) / "report")
        >>> sorted(p.name for p in out.iterdir())
        ['charts', 'report.html', 'summary.json', 'tables']
        """
        from .report import build_report

        return build_report(
            self,
            by=by,
            freq=freq,
            period=period,
            key_kwargs=key_kwargs,
            within=within,
            charts=charts,
            progress=progress,
            lang=lang,
            currency=currency,
            cold_after=cold_after,
        )

    # ------------------------------------------------------------------ phases
    @validate_params({"name": [str]})
    def by_phase(self, name: str) -> EventLog:
        """The log read per phase: its stages are the phases of ``phases[name]``.

        The log is rebuilt from the same input rows with every stage name mapped to its
        phase (after ``stage_map``), so the phases are the stages of an ordinary
        :class:`EventLog` and every analysis — :meth:`funnel`, :meth:`dwell`, :meth:`kpis`,
        :meth:`trend`, :meth:`compare`, :meth:`key_stages`, :meth:`report` — reads per
        phase. Consecutive events in one phase collapse into one visit (as repeats of one
        stage do), entered at the first event of the run; a deal going back to an earlier
        phase re-enters it. Phases are ordered by the first position of their stages in
        the stage order; events at the same time in different phases are ordered by that
        phase order (which is the stage order when each phase is a run of consecutive
        stages). The other keywords (outcomes, ``as_of``, ``stale_after``, amounts,
        attributes, calendar, ``errors``) are this log's, so outcomes, stale deals and
        the bad rows are the same; post-sale stages become their phases (or keep their
        names when the mapping leaves them out).

        Parameters
        ----------
        name : str
            A key of the ``phases`` given to the log.

        Returns
        -------
        EventLog
            Its ``stages`` are the phases. ``quality`` accounts for the same input rows:
            the same rows dropped, removed and set aside as post-sale; ``rows_collapsed``
            adds the events merged into a phase visit (``rejects`` lists them with reason
            ``repeat``). ``phases`` is empty.

        Raises
        ------
        InvalidParameterError
            When ``name`` is not a declared phase mapping.

        See Also
        --------
        post_sale : the events after a win at ``post_sale`` stages.

        Examples
        --------
        >>> import funnelkit as fk
        >>> decision = {"Lead": "need recognition", "Qualified": "need recognition",
        ...             "Discovery": "information search", "Demo": "evaluation",
        ...             "Proposal": "evaluation", "Negotiation": "purchase decision"}
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS,
        ...                   phases={"decision": decision})
        >>> by = log.by_phase("decision")
        >>> by.stages
        ['need recognition', 'information search', 'evaluation', 'purchase decision']
        >>> by.funnel()[["stage", "reached", "advanced", "dropped", "open"]]
                        stage  reached  advanced  dropped  open
        0    need recognition      600       441      142    17
        1  information search      441       332       94    15
        2          evaluation      332        82      227    23
        3   purchase decision       82        60       18     4
        >>> by.quality.deals == log.quality.deals, by.quality.won == log.quality.won
        (True, True)
        """
        if name not in self.phases:
            known = list(self.phases)
            raise InvalidParameterError(
                f"EventLog.by_phase: `name`={name!r} is not a phase mapping of this log; "
                + (
                    f"declared: {known}{P.close_match(name, known)}."
                    if known
                    else "declare them with EventLog(..., phases={name: {stage: phase}})."
                )
            )
        mapping = self.phases[name]
        raw_names = C.stage_codes(C.column(self._source, self._settings["stage"]), None)[1]
        settings = P.phase_settings(
            self._settings, mapping, self.stages, self.post_sale_stages, raw_names
        )
        settings["as_of"] = self.as_of
        out = EventLog(self._source, **settings)
        if self._history is not None:  # the field history goes along
            from .history import reattach

            out._history = reattach(self._history, out)
        return out

    def post_sale(self) -> pd.DataFrame:
        """Events at ``post_sale`` stages after the deal was won, one row per event.

        Such an event (delivery, after-sales service) does not reopen the deal: it is set
        aside before the path rules, so the deal stays won, and counted in the quality
        report (``rows_post_sale``, ``post_sale_deals``; ``rejects`` lists the rows with
        reason ``post_sale``). "After the deal was won" means the deal's latest other event
        at or before it, in path order, is a won event (at the same time, post-sale events
        come after terminal ones). An event at a post-sale stage while the deal was not
        won — no win before it, or a reopened deal back in the funnel — is a bad row
        (``post_sale_not_won``): an error, or dropped to the rejects with
        ``errors="drop"``.

        Returns
        -------
        pandas.DataFrame
            One row per post-sale event, by deal and time:

            * ``deal`` : deal id
            * ``stage`` : the post-sale stage (categorical, in ``post_sale`` order)
            * ``time`` : when the deal entered it
            * ``won_at`` : the win it follows (the first of a run of won events)
            * ``days_after_won`` : ``time - won_at`` in days (float; business days with a
              business calendar)
            * ``amount`` : when an amount column is mapped
            * one column per carried attribute

            Empty (with these columns) when the log has no post-sale events.

        Examples
        --------
        >>> import pandas as pd
        >>> import funnelkit as fk
        >>> events = pd.DataFrame({
        ...     "deal_id": ["d1", "d1", "d1", "d1", "d2", "d2"],
        ...     "stage": ["Lead", "Won", "Delivery", "After-sales", "Lead", "Lost"],
        ...     "ts": pd.to_datetime(["2025-01-01", "2025-01-10", "2025-01-20", "2025-03-01",
        ...                           "2025-01-02", "2025-01-05"]),
        ... })
        >>> log = fk.EventLog(events, stages=["Lead"], won="Won", lost="Lost",
        ...                   post_sale=["Delivery", "After-sales"])
        >>> log.post_sale()[["deal", "stage", "days_after_won"]]
          deal        stage  days_after_won
        0   d1     Delivery            10.0
        1   d1  After-sales            50.0
        >>> log.quality.won, log.quality.reopened, log.quality.rows_post_sale
        (1, 0, 2)
        """
        ev = self._post_sale_events
        names = self.post_sale_stages
        if ev is None:
            rows = np.zeros(0, dtype=np.int64)
            deal, t_ns, won_ns, stage_codes = rows, rows, rows, rows
        else:
            deal, t_ns, won_ns = ev.deal, ev.time, ev.won_ns
            index = {nm: i for i, nm in enumerate(names)}
            stage_codes = np.array([index.get(nm, -1) for nm in ev.names], dtype=np.int64)[ev.code]
        day = 86_400 * 10**9
        dur = t_ns - won_ns if self.calendar is None else self.calendar.duration_ns(won_ns, t_ns)
        out = pd.DataFrame(
            {
                "deal": self._deal_labels[deal],
                "stage": pd.Categorical.from_codes(stage_codes, categories=names),
                "time": self._timestamp(t_ns),
                "won_at": self._timestamp(won_ns),
                "days_after_won": dur.astype(np.float64) / day,
            }
        )
        if self._amount is not None:
            out["amount"] = self._amount[deal]
        for a, ser in self._attrs.items():
            out[a] = ser.to_numpy()[deal]
        return out

    # ------------------------------------------------------------------ saved state
    @validate_params({"path": [str, os.PathLike]})
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the log to a folder, to be read back with :func:`funnelkit.load`.

        The folder holds the input rows, as given (``events.parquet``, then one
        ``events_N.parquet`` per later save of an updated log to the same folder: the
        stored files are kept, only the new rows are written), the built log
        (``paths.parquet``, ``deals.parquet``, ``rejected.parquet`` and the categories of
        each carried column, ``attr_N.parquet``), so that :func:`funnelkit.load` reads it
        back without validating or sorting again, ``rejects.parquet`` (:attr:`rejects`,
        for inspection) and ``manifest.json`` (the state format version, the funnelkit
        version, every keyword the log was built with, the event files). It is replaced
        whole (written beside, then swapped in). See the how-to *Scheduled jobs* for the
        daily update.

        Parameters
        ----------
        path : str or path-like
            The folder to write (created; an earlier state there is replaced).

        Returns
        -------
        pathlib.Path
            The folder written.

        Raises
        ------
        InvalidParameterError
            For a keyword that cannot be written as JSON, a log made by
            :meth:`from_milestones` or carrying a field history (:meth:`with_history`) or
            activities (:meth:`with_activities`).

        Examples
        --------
        >>> import tempfile
        >>> import funnelkit as fk
        >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     folder = log.save(f"{tmp}/state")
        ...     sorted(p.name for p in folder.iterdir())  # doctest: +NORMALIZE_WHITESPACE
        ['attr_0.parquet', 'attr_1.parquet', 'attr_2.parquet', 'deals.parquet',
         'events.parquet', 'manifest.json', 'paths.parquet', 'rejected.parquet',
         'rejects.parquet']
        """
        from .state import save

        return save(self, path)

    @validate_params({"new_events": [CHECKED_INSIDE], "as_of": DATE})
    def update(self, new_events: Any, *, as_of: Any = None) -> EventLog:
        """The log with ``new_events`` added: equal to a full build on all the rows.

        The result is the log of this log's input rows followed by the new rows, with this
        log's keywords: every table equals ``EventLog(pd.concat([old, new]), ...)``. A new
        row that repeats a stored one (an overlapping extract) is a ``repeat`` in
        :attr:`rejects`, as a duplicate within one log; a bad new row raises or is
        dropped as ``errors`` says.

        Only the deals the new rows touch are built again — their stored rows and the new
        ones — and put in place of their old versions; the other deals are copied as
        they are, and the stale rule is applied to every deal at the new ``as_of``. A
        deal's rows decide its path alone, so this equals the full build. Rules over the
        whole log make the update build the union instead (same result, the cost of a
        full build): a stage order that is inferred (pass ``stages=``), post-sale stages,
        times given as text, stored rows rejected as ``after_as_of`` or
        ``time_out_of_range``, an ``as_of`` earlier than a stored row, new columns of
        another type than the stored ones, or ids that are neither text nor integers; and
        so does an update whose rows to rebuild are more than 15% of all rows, where the
        full build is as fast. What it costs on 1M deals is in ``benchmarks/RESULTS.md``
        (*Incremental updates*).

        Parameters
        ----------
        new_events : pandas.DataFrame or pyarrow.Table or EventLog
            The new rows, with this log's mapped columns (other columns are ignored); or
            a log built from them with the same keywords.
        as_of : str or datetime, optional
            The observation time of the result; default the latest time among the rows
            used (as for a log built without ``as_of``, even if this one had one).

        Returns
        -------
        EventLog
            A new log; this one is unchanged.

        Examples
        --------
        >>> import pandas as pd
        >>> import funnelkit as fk
        >>> events = fk.datasets.load_sample()
        >>> kw = fk.datasets.SAMPLE_KWARGS
        >>> cut = events["ts"] < "2025-01-01"
        >>> old = fk.EventLog(events[cut], **kw)
        >>> log = old.update(events[~cut])
        >>> full = fk.EventLog(pd.concat([events[cut], events[~cut]]), **kw)
        >>> log.funnel().equals(full.funnel()), log.n_deals == full.n_deals
        (True, True)
        """
        from .state import update

        return update(self, new_events, as_of)

    # analyses are defined in their own modules and attached below
    def __repr__(self) -> str:
        q = self.quality
        return (
            f"<EventLog: {q.deals:,} deals, {self.n_events:,} events, {len(self.stages)} stages "
            f"({' → '.join(self.stages[:8])}{' …' if len(self.stages) > 8 else ''}); "
            f"won {q.won:,}, lost {q.lost:,}, stale {q.stale:,}, open {q.open:,}; "
            f"as of {self.as_of}>"
        )

    def _repr_html_(self) -> str:
        q = self.quality
        span = f"{self._timestamp(np.array([self._first_ns.min()]))[0]} – {self.as_of}"
        rows = [
            ("deals", f"{q.deals:,}"),
            (
                "events",
                f"{self.n_events:,} from {q.rows_in:,} rows of deals"
                if q.source == "deals"
                else f"{q.rows_used:,} used of {q.rows_in:,} rows",
            ),
            (
                "stages" + (" (inferred)" if q.stage_order_inferred else ""),
                " → ".join(self.stages),
            ),
            ("won / lost / stale / open", f"{q.won:,} / {q.lost:,} / {q.stale:,} / {q.open:,}"),
            ("time span", span),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
            f"{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        warn = "".join(f"<li>{html.escape(w)}</li>" for w in q.warnings)
        warn_html = f"<b>Data quality</b><ul>{warn}</ul>" if warn else ""
        return f"<div><b>funnelkit.EventLog</b><table>{body}</table>{warn_html}</div>"


_init = inspect.signature(EventLog.__init__)
EventLog.__signature__ = _init.replace(
    parameters=list(_init.parameters.values())[1:], return_annotation=inspect.Signature.empty
)
del _init
