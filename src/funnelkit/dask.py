"""Scale-out on dask: the analyses of an event log too large for one machine (DESIGN §7).

:class:`DaskEventLog` takes a ``dask.dataframe.DataFrame`` and the keywords of
:class:`funnelkit.EventLog`. It shuffles the rows by deal, so that every deal lives in one
partition, runs the in-memory kernel on each partition (with the global ``as_of`` and stage
order) and combines the partitions' mergeable summaries (:mod:`funnelkit._summary`) into
the same tables the in-memory log returns: counts exactly equal, durations exact or within
0.5% (see :class:`DaskEventLog`).

This is the only module of funnelkit that imports dask; ``import funnelkit`` never does.
Install the extra with ``pip install "funnelkit[dask]"``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from . import _columns as C
from . import _phases as P
from . import _scope
from . import _summary as SM
from ._clock import ClockSpec
from ._expr import where_mask
from ._inputs import _names, bad_rows_error
from ._params import CHECKED_INSIDE, Interval, validate_params
from ._periods import one_sided_period
from .errors import EmptyLogError, EventLogError, InvalidParameterError
from .funnel import stale_ns
from .log import EventLog
from .quality import REASONS, QualityReport

if TYPE_CHECKING:
    import dask.dataframe as dd

    from .businessdays import BusinessCalendar
    from .report import Report

__all__ = ["DaskEventLog", "read_events"]

_FAN_IN = 8  # summaries merged per task of the reduction tree
#: the clock's products of ``funnel()`` (see ``DaskEventLog._clock``)
_FUNNEL_PRODUCTS = ("funnel",)
_NOT_DISTRIBUTED = (
    "{what} is not computed distributed: it needs every deal's visits on one machine. "
    "Collect the log into memory with log.compute() (an in-memory funnelkit.EventLog) "
    "for it, or run it on a filtered part of the data."
)
#: in-memory methods that need something a Dask log does not hold: where to get it
_IN_MEMORY_ONLY = {
    **dict.fromkeys(
        ("history", "slippage"),
        "EventLog.{name} reads a field history (close dates, amounts, forecast categories), "
        "which is in memory only: log.with_history(history, ...) returns the in-memory log "
        "with it; call .{name}(...) on that.",
    ),
    **dict.fromkeys(
        ("activities", "activity"),
        "EventLog.{name} reads an activity log, which is in memory only: "
        "log.with_activities(activities, ...) returns the in-memory log with it; call "
        ".{name}(...) on that.",
    ),
    **dict.fromkeys(
        ("save", "update"),
        "EventLog.{name} works on a saved state of an in-memory log: log.compute() returns "
        "one; call .{name}(...) on that (fk.load(path) reads a saved state back).",
    ),
    "from_milestones": "EventLog.from_milestones reads a wide export (one row per deal) in "
    "memory: call fk.EventLog.from_milestones(...) on the pandas table.",
}


def _as_in_memory(method: str, **own: list[Any]) -> Callable[[Callable[..., Any]], Any]:
    """Validate a DaskEventLog method with the constraints the in-memory
    ``EventLog.<method>`` declares for the same parameters (plus ``own``): one rule per
    parameter, the same error for the same mistake on either engine."""
    import inspect

    declared: dict[str, list[Any]] = getattr(EventLog, method).__funnelkit_params__

    def decorate(func: Callable[..., Any]) -> Any:
        params = [p for p in inspect.signature(func).parameters if p != "self"]
        constraints = {p: own[p] if p in own else declared[p] for p in params}
        name = "DaskEventLog" if method == "__init__" else f"DaskEventLog.{func.__name__}"
        return validate_params(constraints, name=name)(func)

    return decorate


def _dask():
    """dask and dask.dataframe, imported on first use (so that importing this module, e.g.
    to collect its doctests, works without dask)."""
    try:
        import dask
        import dask.dataframe as dd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "funnelkit's distributed log needs dask: pip install 'funnelkit[dask]' "
            "(or 'dask[dataframe,distributed]')."
        ) from exc
    return dask, dd


def _clock_key(by: Sequence[str], products: Sequence[str], spec: Any) -> tuple:
    """The clock cache's key of a question: the attributes, the products and the
    :class:`funnelkit._clock.ClockSpec` without its coder (which ``by`` decides)."""
    return (tuple(by), tuple(products), dataclasses.replace(spec, coder=None))


#: the clock's cache key of ``funnel()`` with its defaults
_DEFAULT_FUNNEL = _clock_key((), _FUNNEL_PRODUCTS, ClockSpec())


def _stage_tasks(pieces: Sequence[Any], lay: SM.Layout, spec: Any, products: Any) -> list:
    """The delayed :func:`funnelkit._clock.clock_stage` tasks of every stage (per stage,
    one per :func:`~funnelkit._clock.tasks` entry), each over that stage's piece of every
    partition (``pieces``: per partition, its pieces by stage)."""
    from . import _clock as CK

    dask, _ = _dask()
    return [
        [
            dask.delayed(CK.clock_stage, pure=True)([pc[s] for pc in pieces], lay, spec, t)
            for t in CK.tasks(products)
        ]
        for s in range(len(lay.stages))
    ]


def _add_row_keys(pdf: pd.DataFrame, partition_info: dict | None = None) -> pd.DataFrame:
    number = 0 if partition_info is None else int(partition_info["number"])
    return pdf.assign(**{SM.ROW: SM.row_keys(len(pdf), number)})


def _validate_keywords(meta: pd.DataFrame, settings: dict[str, Any]) -> None:
    """The keyword and column checks of the in-memory log, with its exact messages: build
    it on the (empty) meta frame, where it stops only for lack of events."""
    try:
        EventLog(meta, **settings)
    except EmptyLogError:
        pass
    except EventLogError as err:
        if not str(err).startswith("No usable events"):
            raise


class DaskEventLog:
    """A validated event log held in a dask DataFrame, analysed on a dask cluster.

    The same keywords and validation rules as :class:`funnelkit.EventLog`, and the same
    analyses with the same columns: :meth:`transitions`, :meth:`transition_matrix`,
    :meth:`funnel`, :meth:`dwell`, :meth:`cycle_time`, :meth:`kpis`, :meth:`compare`,
    :meth:`trend`, :meth:`movement`, :attr:`quality` and :meth:`key_stages`
    (``signals="leverage"``) return pandas DataFrames; :meth:`visits`,
    :meth:`deals` and :attr:`rejects` return dask DataFrames; :meth:`filter` and
    :meth:`by_phase` return a new distributed log.

    How: (1) a pass over the deal, stage and time columns finds the time-zone decision and the
    default ``as_of`` (the latest valid timestamp); (2) the rows are shuffled by deal and
    each partition, its rows back in input order, runs the in-memory kernel with the global
    ``as_of`` and returns a mergeable summary; (3) the summaries are merged in a tree and
    the tables computed from the result. The stage order, when not given, is inferred from
    the merged first-visit positions exactly as in memory (median, then mean position);
    partitions summarise by stage name, so no extra pass is needed. Only when, under
    ``errors="drop"``, the latest valid event belongs to a deal whose outcome conflicts
    (and is therefore dropped) does step (2) run a second time with the corrected ``as_of``.
    Nothing is kept in cluster memory between calls unless :meth:`persist` is called: the
    lazy :meth:`visits`, :meth:`deals` and :attr:`rejects` re-run the shuffle.

    Precision: every count equals the in-memory count exactly, and so do the means of
    complete durations (transition dwell, won/lost cycle time; up to float rounding).
    Quantiles and Kaplan–Meier estimates come from a duration sketch per group
    (segment × stage...): exact (value, events, censored) counts while the group has at
    most ``exact_durations`` distinct durations (then they equal the in-memory ones up to
    float rounding), else log-spaced bins of ratio 1.01 whose centre is within 0.5% of
    every duration in the bin. Quantiles of complete durations are then within 0.5% of
    the in-memory value; Kaplan–Meier quantiles and means also lose the order of events
    and censorings inside a bin (ties are taken events first), which moves them by less
    than 1% in the tests (stated tolerance: 1%). ``key_stages`` leverage: effects, values
    and ``n_deals`` are exact; the bootstrap draws deal multiplicities from the same
    multinomial distribution as the in-memory resampling of deals, so the interval agrees
    up to Monte-Carlo error, not draw for draw.

    Parameters
    ----------
    events : dask.dataframe.DataFrame
        The event log, one row per event, in any partitioning and row order.
    deal, stage, time, stage_map, stages, won, lost, amount, attrs, as_of, stale_after, errors
        As for :class:`funnelkit.EventLog`.
    npartitions : int, optional
        Partitions after the shuffle by deal (default: as many as ``events`` has). Each
        must fit, with the in-memory kernel's working memory (about 5–10× the rows' size),
        in one worker.
    exact_durations : int, default=1024
        Distinct durations a sketch group keeps exactly before switching to bins.
    **options
        Other keywords of :class:`funnelkit.EventLog` (e.g. ``calendar``), passed to every
        partition's in-memory log.

    Attributes
    ----------
    stages, won, lost, as_of, stale_after, quality
        As for :class:`funnelkit.EventLog`.

    Examples
    --------
    >>> import dask.dataframe as dd  # doctest: +SKIP
    >>> from distributed import Client  # doctest: +SKIP
    >>> import funnelkit as fk
    >>> from funnelkit.dask import DaskEventLog
    >>> client = Client("tcp://scheduler:8786")  # doctest: +SKIP
    >>> events = dd.read_parquet("s3://crm/events/")  # doctest: +SKIP
    >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)  # doctest: +SKIP
    >>> log.funnel()  # doctest: +SKIP
    """

    @_as_in_memory(
        "__init__",
        events=[CHECKED_INSIDE],  # a dask DataFrame; dask is imported only when used
        won=["str_list", None],
        lost=["str_list", None],
        npartitions=[Interval(Integral, 1, None), None],
        exact_durations=[Interval(Integral, 0, None)],
        options=[CHECKED_INSIDE],
    )
    def __init__(
        self,
        events: dd.DataFrame,
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
        as_of: Any = None,
        stale_after: Any = None,
        errors: Literal["raise", "drop"] = "raise",
        npartitions: int | None = None,
        exact_durations: int = 1024,
        **options: Any,
    ) -> None:
        dask, dd = _dask()
        if not isinstance(events, dd.DataFrame):
            raise InvalidParameterError(
                "`events` must be a dask DataFrame; got "
                f"{type(events).__name__}. Use funnelkit.EventLog for pandas DataFrames and "
                "pyarrow Tables."
            )
        if options.get("visit_attrs"):
            raise NotImplementedError(
                "`visit_attrs` are not supported by the distributed log yet; carry the "
                "columns per deal with attrs=[...] or use an in-memory funnelkit.EventLog."
            )
        attrs = C.as_list(attrs, "attrs", ordered=False)
        # stage names read once: an iterator would be empty on a second read
        self.won = _names(won, "won")
        self.lost = _names(lost, "lost")
        settings: dict[str, Any] = dict(
            deal=deal,
            stage=stage,
            time=time,
            stage_map=dict(stage_map) if stage_map else None,
            stages=_names(stages, "stages") if stages is not None else None,
            won=self.won,
            lost=self.lost,
            amount=amount,
            attrs=list(attrs),
            stale_after=stale_after,
            errors=errors,
            **options,
        )
        _validate_keywords(events._meta, settings)
        # phases are checked once the stage order is known; partitions need none of them
        phases = settings.pop("phases", None)
        self.post_sale_stages: list[str] = P.check_post_sale(
            settings.get("post_sale"), settings["stages"], self.won, self.lost
        )
        self._settings = settings
        self._as_of_arg = as_of
        self._events = events
        self.stale_after = (
            None if stale_after is None else C.to_duration(stale_after, "stale_after")
        )
        columns = tuple(dict.fromkeys(C.mapped_columns(settings).values()))
        self._columns = columns
        meta = events._meta[list(columns)].assign(**{SM.ROW: np.zeros(0, dtype=np.int64)})
        source = events[list(columns)].map_partitions(_add_row_keys, meta=meta)
        self._source = source  # input order: the rows ``filter`` keeps come from here
        self._shuffled = source.shuffle(on=deal, npartitions=npartitions)

        # (1) time zones and the default as_of: one pass over the deal, stage and time columns
        tcol = events._meta[time]
        stats = None
        if as_of is None or not pd.api.types.is_datetime64_any_dtype(tcol.dtype):
            parts = events[list(dict.fromkeys([deal, stage, time]))].to_delayed()
            stats = SM.merge_time_stats(
                dask.compute(*[dask.delayed(SM.time_stats)(p, settings) for p in parts])
            )
        if stats is None or pd.api.types.is_datetime64_any_dtype(tcol.dtype):
            aware = getattr(tcol.dtype, "tz", None) is not None
            mixed = False
        else:
            aware = stats["aware"] > stats["naive"]
            mixed = bool(stats["aware"] and stats["naive"])
        if as_of is not None:
            as_of_ns: int | None = C.to_timestamp(as_of, aware, "as_of")
        else:
            assert stats is not None
            as_of_ns = stats["max_aware"] if aware else stats["max_naive"]
        cfg = SM.Config(
            settings=settings,
            columns=columns,
            as_of_ns=as_of_ns,
            aware=aware,
            mixed=mixed,
            exact_limit=exact_durations,
        )

        # (2) per-partition summaries of whole deals, merged in a tree; with a declared
        # stage order the same pass computes the funnel's conversion clock too (its
        # default question: the whole log, implied skips, unweighted)
        early_lay = None
        if stages is not None and as_of_ns is not None:
            early_lay = SM.Layout(
                stages=list(settings["stages"]),
                won=self.won,
                lost=self.lost,
                inferred=False,
                aware=aware,
                as_of_ns=int(as_of_ns),
                amount=amount,
                attrs=list(attrs),
                stale_after_ns=stale_ns(self.stale_after),
            )
        summary, early = self._summarize(cfg, early_lay)
        if summary.failure is not None:
            self._raise_failures(summary)
        if (
            as_of is None
            and summary.max_time_ns is not None
            and summary.max_time_ns != as_of_ns
            and errors == "drop"
        ):
            # the latest valid event belongs to a deal dropped for a conflicting outcome:
            # run again without those deals, as of the latest event that is left
            cfg = SM.Config(
                settings=settings,
                columns=columns,
                as_of_ns=summary.max_time_ns,
                aware=aware,
                mixed=mixed,
                removed=np.unique(summary.conflict_rows),
                exact_limit=exact_durations,
            )
            summary, early = self._summarize(cfg)
        self._cfg = cfg
        self._summary = summary
        if summary.n_deals == 0:
            self._raise_no_events(summary)

        # (3) the global layout
        assert cfg.as_of_ns is not None
        if stages is not None:
            order, inferred = list(settings["stages"]), False
        else:
            order, inferred = SM.infer_order(summary.tables["positions"]), True
        self.stages = order
        self._layout = SM.Layout(
            stages=order,
            won=self.won,
            lost=self.lost,
            inferred=inferred,
            aware=aware,
            as_of_ns=int(cfg.as_of_ns),
            amount=amount,
            attrs=list(attrs),
            stale_after_ns=stale_ns(self.stale_after),
        )
        #: the clock's answers per question (see _clock); the build's own when it has one
        self._clock_cache: dict[tuple, dict[str, Any]] = {}
        if early is not None and early_lay == self._layout:
            self._clock_cache[_DEFAULT_FUNNEL] = early
        self.as_of = self._layout.timestamp(cfg.as_of_ns)
        self.quality: QualityReport = SM.quality_report(summary, self._layout)
        self._npartitions = npartitions
        self._exact_durations = exact_durations
        #: named mappings of stages to phases (see :meth:`by_phase`)
        self.phases: dict[str, dict[str, str]] = P.check_phases(
            phases, self.stages, self.post_sale_stages, self.won, self.lost
        )

    def _per_partition(self, part: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
        """``part(pdf, cfg, layout, *args)`` on every partition of whole deals, computed:
        one result per partition, in partition order."""
        dask, _ = _dask()
        return dask.compute(
            *[
                dask.delayed(part)(p, self._cfg, self._layout, *args)
                for p in self._shuffled.to_delayed()
            ]
        )

    # ------------------------------------------------------------------ construction
    def _summarize(
        self, cfg: SM.Config, lay: SM.Layout | None = None
    ) -> tuple[SM.Summary, dict[str, Any] | None]:
        """The merged summary; with ``lay`` (a declared stage order) also the funnel
        clock's default estimates from the same partition logs (else None)."""
        from . import _clock as CK

        dask, _ = _dask()
        parts = self._shuffled.to_delayed()
        S = 0 if lay is None else len(lay.stages)
        spec = CK.ClockSpec()
        if lay is not None and S:
            both = [
                dask.delayed(SM.summarize_with_clock, nout=1 + S, pure=True)(p, cfg, lay, spec)
                for p in parts
            ]
            level = [b[0] for b in both]
            pieces = [[b[1 + s] for s in range(S)] for b in both]
            per_stage = _stage_tasks(pieces, lay, spec, _FUNNEL_PRODUCTS)
        else:
            level = [dask.delayed(SM.summarize)(p, cfg) for p in parts]
            per_stage = []
        while len(level) > 1:
            level = [
                dask.delayed(SM.merge)(level[i : i + _FAN_IN])
                for i in range(0, len(level), _FAN_IN)
            ]
        summary, done = dask.compute(level[0], per_stage)
        if lay is None or not S or summary.failure is not None:
            return summary, None
        return summary, CK.gather(done, lay, spec, _FUNNEL_PRODUCTS)

    def _raise_failures(self, summary: SM.Summary) -> None:
        """One error for the bad rows of every partition, as the in-memory log raises."""
        assert summary.failure is not None
        s = self._settings
        cases = summary.failure
        rowlevel = cases["reason"] != "conflicting_outcome"
        if rowlevel.any():  # in memory the row rules raise before the path rules run
            cases = cases[rowlevel]
        rows = SM.row_positions(cases[SM.ROW].to_numpy(), summary.source_rows)
        cases = cases.drop(columns=SM.ROW).assign(row=rows).sort_values("row", kind="stable")
        cases = cases[["row", *self._columns, "reason"]].reset_index(drop=True)
        sel = cases["reason"] == "unknown_stage"
        mapping = {str(a): str(b) for a, b in (s["stage_map"] or {}).items()}
        names = sorted({mapping.get(str(x), str(x)) for x in cases.loc[sel, s["stage"]]})
        raise bad_rows_error(cases, s, summary.counts["rows_in"], names)

    def _raise_no_events(self, summary: SM.Summary) -> None:
        if summary.counts["rows_in"] == 0:
            raise EmptyLogError("The event log is empty: no rows to analyse.")
        counts = ", ".join(
            f"{r}: {summary.by_reason[r]:,}" for r in REASONS if summary.by_reason.get(r)
        )
        raise EventLogError(
            f"No usable events: all {summary.counts['rows_in']:,} input rows were rejected "
            f"({counts}). See the error's failure cases or log with errors='raise' for "
            "details.",
            self.rejects.compute(),
        )

    # ------------------------------------------------------------------ lazy frames
    def persist(self) -> DaskEventLog:
        """Keep the rows, shuffled by deal, in cluster memory, so that :meth:`visits`,
        :meth:`deals` and :attr:`rejects` do not shuffle again. Returns ``self``.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> log.persist() is log
        True
        >>> log.n_deals
        600
        """
        self._shuffled = self._shuffled.persist()
        return self

    def _deal_dtype(self) -> Any:
        return self._events._meta[self._settings["deal"]].dtype

    def _time_dtype(self) -> Any:
        return "datetime64[ns, UTC]" if self._layout.aware else "datetime64[ns]"

    @_as_in_memory("visits")
    def visits(self, *, columns: Sequence[str] | None = None) -> dd.DataFrame:
        """One row per visit (as :meth:`funnelkit.EventLog.visits`), as a dask DataFrame;
        ``columns``: only these, in this order.

        Partitions hold whole deals, each in path order; the partitions are not in deal
        order (sort after computing when the order matters).

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> v = log.visits()
        >>> v.npartitions
        2
        >>> list(v.columns)
        ['deal', 'stage', 'visit', 'entered', 'next_stage', 'dwell', 'censored']
        >>> len(v.compute())
        2257
        """
        lay = self._layout
        meta = pd.DataFrame(
            {
                "deal": pd.Series([], dtype=self._deal_dtype()),
                "stage": pd.Categorical([], categories=lay.stages),
                "visit": pd.Series([], dtype=np.int64),
                "entered": pd.Series([], dtype=self._time_dtype()),
                "next_stage": pd.Categorical([], categories=[*lay.catalogue, "stale"]),
                "dwell": pd.Series([], dtype="timedelta64[ns]"),
                "censored": pd.Series([], dtype=bool),
            }
        )
        frame = self._shuffled.map_partitions(SM.visits_frame, self._cfg, lay, meta, meta=meta)
        if columns is None:
            return frame
        columns = [columns] if isinstance(columns, str) else list(columns)
        unknown = [c for c in columns if c not in meta.columns]
        if unknown:
            raise InvalidParameterError(
                f"Parameter `columns`: {unknown} are not columns of visits(); "
                f"choose from {list(meta.columns)}."
            )
        return frame[columns]

    def deals(self) -> dd.DataFrame:
        """One row per deal (as :meth:`funnelkit.EventLog.deals`), as a dask DataFrame.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> d = log.deals().compute()
        >>> len(d), int((d["outcome"] == "won").sum())
        (600, 60)
        """
        lay = self._layout
        cols: dict[str, Any] = {
            "deal": pd.Series([], dtype=self._deal_dtype()),
            "outcome": pd.Categorical([], categories=["open", "won", "lost", "stale"]),
            "outcome_stage": pd.Categorical([], categories=[*lay.catalogue, "stale"]),
            "furthest_stage": pd.Categorical([], categories=lay.stages, ordered=True),
            "first_event": pd.Series([], dtype=self._time_dtype()),
            "last_event": pd.Series([], dtype=self._time_dtype()),
            "cycle_time": pd.Series([], dtype="timedelta64[ns]"),
        }
        if lay.amount is not None:
            cols["amount"] = pd.Series([], dtype=np.float64)
        for a in lay.attrs:
            cols[a] = pd.Series([], dtype=object)
        cols["reopened"] = pd.Series([], dtype=bool)
        meta = pd.DataFrame(cols)
        return self._shuffled.map_partitions(SM.deals_frame, self._cfg, lay, meta, meta=meta)

    @property
    def rejects(self) -> dd.DataFrame:
        """Input rows that are not events of the cleaned log, with a ``reason`` (as
        :attr:`funnelkit.EventLog.rejects`), as a dask DataFrame; ``row`` is the position in
        the whole input. Partitions are each sorted by ``row``, not across partitions.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> r = log.rejects.compute()
        >>> len(r) == log.quality.rows_rejected
        True
        >>> r["reason"].value_counts().to_dict()
        {'repeat': 418, 'reopened_terminal': 61}
        """
        meta = self._events._meta[list(self._columns)].iloc[:0].copy()
        meta.insert(0, "row", pd.Series([], dtype=np.int64))
        meta["reason"] = pd.Series([], dtype=str)
        return self._shuffled.map_partitions(
            SM.rejects_frame, self._cfg, self._summary.source_rows, meta, meta=meta
        )

    def compute(self) -> EventLog:
        """The in-memory :class:`funnelkit.EventLog` of the same rows and keywords (for the
        analyses that are not distributed). Needs the whole log in local memory.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> mem = log.compute()
        >>> type(mem).__name__, mem.n_deals
        ('EventLog', 600)
        >>> from pandas.testing import assert_frame_equal
        >>> assert_frame_equal(mem.funnel(), log.funnel(), rtol=1e-12)  # equal up to rounding
        """
        frame = self._events[list(self._columns)].compute()
        return EventLog(
            frame.reset_index(drop=True),
            **self._settings,
            as_of=self._as_of_arg,
            phases=self.phases or None,
        )

    @_as_in_memory("filter", where=[str, None])
    def filter(
        self,
        *,
        where: str | None = None,
        created: tuple[Any, Any] | None = None,
        deals: Iterable[Any] | None = None,
        stages: Sequence[str] | None = None,
    ) -> DaskEventLog:
        """A new distributed log of some deals or stages, with the same settings, as
        :meth:`funnelkit.EventLog.filter`: the chosen deals' rows validated again with
        this log's keywords, ``as_of`` and stage order fixed to this log's;
        ``quality.filtered`` says what was filtered out.

        Each partition of whole deals evaluates the conditions on its own deals table
        (:meth:`deals`), so the result equals the in-memory filter of the same rows.
        ``where`` is an expression of funnelkit's grammar (see
        :meth:`funnelkit.EventLog.filter`), checked against the deals table's columns
        before anything runs; a callable or a boolean mask, which the in-memory filter
        also takes, cannot be aligned with deals spread over partitions — filter the dask
        DataFrame of :meth:`deals` and pass ``deals=`` its ids, or use :meth:`compute`.

        Parameters
        ----------
        where : str, optional
            Which deals to keep: an expression over the deals table
            (``"region == 'North' and amount >= 1000"``).
        created : (start, end), optional
            Keep deals whose first event is in ``[start, end)``; either end may be None.
        deals : iterable, optional
            Keep these deal ids.
        stages : sequence of str, optional
            Keep only these stages (terminal events are always kept).

        Returns
        -------
        DaskEventLog

        Raises
        ------
        EventLogError
            An expression outside the grammar or naming an unknown column; no deal kept.
        InvalidParameterError
            ``stages`` that are not stages of this log; a ``where`` that is not a string.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> north = log.filter(where="region == 'North'")
        >>> mem = log.compute().filter(where="region == 'North'")
        >>> north.n_deals == mem.n_deals
        True
        >>> from pandas.testing import assert_frame_equal
        >>> assert_frame_equal(north.funnel(), mem.funnel(), rtol=1e-12)  # equal up to rounding
        >>> north.quality.filtered == mem.quality.filtered
        True
        """
        lay = self._layout
        if where is not None:  # unknown columns and bad literals raise here, not in a task
            where_mask(where, self.deals()._meta, "the deals table")
        start = end = None
        if created is not None:
            if len(created) != 2:
                raise InvalidParameterError(
                    "DaskEventLog.filter: `created` must be a (start, end) pair; got "
                    f"{len(created)} items."
                )
            start, end = (
                None if v is None else lay.timestamp(C.to_timestamp(v, lay.aware, "created"))
                for v in created
            )
        settings = dict(self._settings)
        settings["stages"] = list(self.stages)
        phases = self.phases or None
        allowed = None
        if stages is not None:
            others = [*self.won, *self.lost, *self.post_sale_stages]
            allowed, settings["stages"], phases = _scope.stage_scope(
                stages, self.stages, others, phases
            )
        spec = SM.FilterSpec(
            where=where,
            start=start,
            end=end,
            deals=None if deals is None else list(deals),
            allowed=allowed,
        )
        out = self._filtered(spec, settings, phases)
        if out is None:
            raise _scope.no_deals_kept()
        return out

    def _filtered(
        self, spec: SM.FilterSpec, settings: dict[str, Any], phases: Any
    ) -> DaskEventLog | None:
        """The log of the rows ``spec`` keeps (None when it keeps no deal), with
        ``quality.filtered``: (1) each partition of whole deals judges its deals; (2) the
        input partitions, in input order, keep the rows of the kept deals, so the new
        log numbers and orders its rows as the in-memory filter does."""
        dask, _ = _dask()
        judged = self._per_partition(SM.filter_keep, spec)
        ids = np.concatenate([j[0] for j in judged])
        if ids.size == 0:
            return None
        removed = np.concatenate([j[1] for j in judged])
        kept = self._source.map_partitions(
            SM.keep_rows,
            self._cfg,
            dask.delayed(ids),
            dask.delayed(removed),
            spec,
            meta=self._source._meta,
        )
        out = DaskEventLog(
            kept,
            **settings,
            as_of=self.as_of,
            npartitions=self._npartitions,
            exact_durations=self._exact_durations,
            phases=phases,
        )
        out.quality = dataclasses.replace(
            out.quality,
            filtered={
                "deals": int(self.n_deals - out.n_deals),
                "rows": int(self.quality.rows_in - out.quality.rows_in),
            },
        )
        return out

    @_as_in_memory("by_phase")
    def by_phase(self, name: str) -> DaskEventLog:
        """The log read per phase, distributed: a :class:`DaskEventLog` of the same rows
        whose stages are the phases of ``phases[name]`` (as
        :meth:`funnelkit.EventLog.by_phase`: the stage names mapped to their phases, this
        log's ``as_of``). One extra pass reads the distinct stage names.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> decision = {"Lead": "need", "Qualified": "need", "Discovery": "search",
        ...             "Demo": "evaluation", "Proposal": "evaluation",
        ...             "Negotiation": "decision"}
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS,
        ...                    phases={"decision": decision})
        >>> by = log.by_phase("decision")
        >>> by.stages
        ['need', 'search', 'evaluation', 'decision']
        >>> from pandas.testing import assert_frame_equal
        >>> assert_frame_equal(by.funnel(), log.compute().by_phase("decision").funnel(), rtol=1e-12)
        """
        if name not in self.phases:
            known = list(self.phases)
            raise InvalidParameterError(
                f"DaskEventLog.by_phase: `name`={name!r} is not a phase mapping of this log; "
                + (
                    f"declared: {known}{P.close_match(name, known)}."
                    if known
                    else "declare them with DaskEventLog(..., phases={name: {stage: phase}})."
                )
            )
        stage = self._settings["stage"]
        raw = self._events[stage].dropna().unique().compute()
        settings = P.phase_settings(
            self._settings,
            self.phases[name],
            self.stages,
            self.post_sale_stages,
            [str(v) for v in raw],
        )
        settings.pop("phases")
        return DaskEventLog(
            self._events,
            **settings,
            as_of=self.as_of,
            npartitions=self._npartitions,
            exact_durations=self._exact_durations,
        )

    def post_sale(self) -> pd.DataFrame:
        """:meth:`funnelkit.EventLog.post_sale` of the in-memory log (:meth:`compute`):
        the events at ``post_sale`` stages after a win. Needs the whole log in local
        memory.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS, post_sale="Delivery")
        >>> len(log.post_sale()), log.quality.rows_post_sale
        (0, 0)
        """
        return self.compute().post_sale()

    # ------------------------------------------------------------------ properties
    @property
    def n_deals(self) -> int:
        """Number of deals.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> log.n_deals
        600
        """
        return self.quality.deals

    @property
    def n_events(self) -> int:
        """Number of events in the cleaned log.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> log.n_events
        2704
        """
        return self.quality.rows_used

    @property
    def attrs(self) -> list[str]:
        """Carried per-deal columns.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> log.attrs
        ['region', 'owner', 'team']
        """
        return list(self._layout.attrs)

    @property
    def summary(self) -> SM.Summary:
        """The merged partial summary every table is computed from.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> log.summary.n_deals
        600
        >>> log.summary.counts["rows_in"]
        3183
        """
        return self._summary

    # ------------------------------------------------------------------ analyses
    def transitions(self) -> pd.DataFrame:
        """Directly-follows table; see :meth:`funnelkit.EventLog.transitions`.

        ``dwell_median`` and ``dwell_p90`` come from the duration sketch (exact, or within
        0.5% when binned); the other columns are exact.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> t = log.transitions()
        >>> t.head(2)[["from_stage", "to_stage", "transitions", "kind"]]
          from_stage   to_stage  transitions     kind
        0       Lead  Qualified          534  forward
        1       Lead  Discovery           27  forward
        >>> mem = log.compute().transitions()
        >>> t["transitions"].equals(mem["transitions"])  # counts are exact
        True
        """
        return SM.transitions_table(self._summary, self._layout)

    @_as_in_memory("transition_matrix")
    def transition_matrix(
        self, kind: Literal["counts", "probabilities"] = "probabilities"
    ) -> pd.DataFrame:
        """The transition table as a square matrix; see
        :meth:`funnelkit.EventLog.transition_matrix`.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> m = log.transition_matrix(kind="counts")
        >>> int(m.loc["Demo", "Proposal"]), int(m.loc["Demo", "Lost"])
        (176, 79)
        """
        return SM.transition_matrix_table(self._summary, self._layout, kind)

    @_as_in_memory("funnel")
    def funnel(
        self,
        *,
        skips: Literal["implied", "strict"] = "implied",
        weight: str | None = None,
        by: str | Sequence[str] | None = None,
        within: Any = None,
        calendar: BusinessCalendar | str | None = None,
    ) -> pd.DataFrame:
        """The stage table; see :meth:`funnelkit.EventLog.funnel`. Exact: the counts
        from the merged summary, the conversion and win rate from one pass of the clock
        sharded by stage (:mod:`funnelkit._clock`; each stage's Aalen–Johansen estimate
        computed where its subjects are gathered), cached per question. With a
        conversion window (``within``, counted on ``calendar``) the counts depend on
        each deal's timing at each stage: that same pass computes them from the deals'
        window status where the deals live.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> f = log.funnel()
        >>> f[["stage", "reached", "advanced"]].head(3)
               stage  reached  advanced
        0       Lead      600       532
        1  Qualified      532       441
        2  Discovery      441       332
        """
        return SM.funnel_table(
            self._summary,
            self._layout,
            skips=skips,
            weight=weight,
            by=by,
            within=within,
            calendar=calendar,
            clock=self._clock,
        )

    @_as_in_memory("incidence")
    def incidence(
        self,
        stage: str | Sequence[str] | None = None,
        *,
        by: str | Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """The curves behind the funnel's conversion; see
        :meth:`funnelkit.EventLog.incidence`. Exact: the partitions send their subjects
        split by stage, each stage's curves built where its subjects are gathered.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> c = log.incidence("Demo")
        >>> mem = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
        >>> bool(abs(c["advanced"].iloc[-1] - mem.incidence("Demo")["advanced"].iloc[-1]) < 1e-12)
        True
        """
        return SM.incidence_table(
            self._summary, self._layout, stage=stage, by=by, clock=self._clock
        )

    def _clock(
        self,
        by: list[str],
        products: tuple[str, ...],
        *,
        skips: str = "implied",
        weighted: bool = False,
        win: bool = True,
        period_ns: int | None = None,
        rest_without: int | None = None,
        within: tuple[int, ...] | None = None,
        calendar: Any = None,
    ) -> dict[str, Any]:
        """The funnel's competing-risks estimates per (segment of ``by``) × stage, computed
        where the subjects live (:mod:`funnelkit._clock`): one pass over the partitions,
        one task per stage and clock gathers that stage's subjects, only the estimates
        come back (``rest_without``, ``within``, ``calendar``: see
        :class:`funnelkit._clock.ClockSpec`). Cached per question."""
        from . import _clock as CK

        spec = CK.ClockSpec(None, period_ns, skips, weighted, win, rest_without, within, calendar)
        key = _clock_key(by, products, spec)
        cache = self._clock_cache
        if key in cache:
            return cache[key]
        if by:
            spec = dataclasses.replace(spec, coder=SM.segment_coder(self._summary, by))
        lay = self._layout
        S = len(lay.stages)
        dask, _ = _dask()
        pieces = [
            dask.delayed(SM.clock_part, nout=S, pure=True)(p, self._cfg, lay, spec)
            for p in (self._shuffled.to_delayed() if S else [])
        ]
        done = dask.compute(*_stage_tasks(pieces, lay, spec, products))
        cache[key] = out = CK.gather(done, lay, spec, products)
        return out

    @_as_in_memory("dwell")
    def dwell(
        self,
        *,
        by: str | Sequence[str] | None = None,
        visits: Literal["all", "first", "repeat"] = "all",
    ) -> pd.DataFrame:
        """Kaplan–Meier dwell per stage; see :meth:`funnelkit.EventLog.dwell`.

        ``visits`` and ``censored`` are exact; the estimates and their 95% intervals
        come from the duration sketch with the in-memory formulas
        (:func:`funnelkit._stats.km_intervals`): exact, or within 1% when binned.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> d = log.dwell()
        >>> list(d.columns)[:7]
        ['stage', 'visits', 'censored', 'mean', 'median', 'p75', 'p90']
        >>> d["visits"].equals(log.compute().dwell()["visits"])
        True
        """
        return SM.dwell_table(self._summary, self._layout, by=by, visits=visits)

    @_as_in_memory("cycle_time")
    def cycle_time(self, *, by: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Cycle time per outcome; see :meth:`funnelkit.EventLog.cycle_time`. Counts and
        won/lost means exact; quantiles, the intervals (columns as in-memory) and the ``any``
        row from the duration sketch (exact, or within 1% when binned; won/lost within
        the bin error, 0.5%).

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> c = log.cycle_time()
        >>> c[["outcome", "deals"]]
          outcome  deals
        0     won     60
        1    lost    387
        2     any    506
        """
        return SM.cycle_table(self._summary, self._layout, by=by)

    @_as_in_memory("kpis")
    def kpis(self, *, by: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Headline KPIs; see :meth:`funnelkit.EventLog.kpis`. The median won cycle time
        (and so the pipeline velocity) comes from the duration sketch.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> k = log.kpis()
        >>> k[["deals", "won", "lost", "stale", "open"]].iloc[0].tolist()
        [600, 60, 387, 94, 59]
        """
        return SM.kpis_table(self._summary, self._layout, by=by)

    @_as_in_memory("compare")
    def compare(
        self,
        *,
        by: str | Sequence[str] | None = None,
        period: Any = None,
        alpha: float = 0.05,
    ) -> pd.DataFrame:
        """Segments against the rest, or deals created after a date against those
        before: :meth:`funnelkit.EventLog.compare`, the same columns and tests.

        With ``by`` the counts come from the merged summary and the conversions from one
        pass of the clock sharded by stage (:mod:`funnelkit._clock`): counts and each
        segment's conversion equal the in-memory ones exactly, and so does the rest's
        conversion — each rest's own Aalen–Johansen estimate from the other segments'
        subjects, also where the in-memory log approximates it for its size (many
        segments of a large log). With ``period`` one pass counts each side's funnel and
        one pass of the clock, grouped by side, gives the conversions.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> c = log.compare(by="team")
        >>> from pandas.testing import assert_frame_equal
        >>> assert_frame_equal(c, log.compute().compare(by="team"), rtol=1e-12)  # up to rounding
        >>> c.loc[c["differs"], ["team", "stage", "conversion", "rest_conversion"]].round(3)
              team stage  conversion  rest_conversion
        3   Team A  Demo       0.732            0.528
        15  Team C  Demo       0.355            0.703
        """
        from . import monitoring as M

        alpha = M.check_compare_args(by, period, alpha)
        if period is None:
            return SM.compare_table(
                self._summary, self._layout, by=by, alpha=alpha, clock=self._clock
            )
        period_ns, parts = self._split(period)
        return SM.compare_period_table(list(parts), self._layout, alpha, self._clock, period_ns)

    def _split(self, period: Any) -> tuple[int, tuple[dict, ...]]:
        """``period`` on the log's clock and the partitions' :func:`SM.split_part` of it
        (one pass); raises when no deal was created on one side of it."""
        period_ns = C.to_timestamp(period, self._layout.aware, "period")
        parts = self._per_partition(SM.split_part, period_ns)
        n_after = int(sum(p["deals"][1] for p in parts))
        if n_after in (0, self.n_deals):
            dask, _ = _dask()
            first = self.deals()["first_event"]
            lo, hi = dask.compute(first.min(), first.max())
            raise one_sided_period(period, n_after, lo, hi)
        return period_ns, parts

    @_as_in_memory("trend")
    def trend(
        self,
        *,
        freq: str = "QE",
        by: str | Sequence[str] | None = None,
        metric: Literal["conversion", "win_rate", "cycle_time", "dwell"] = "conversion",
    ) -> pd.DataFrame:
        """Cohorts by creation period: :meth:`funnelkit.EventLog.trend`, the same rows
        and columns, from two passes over the partitions — one for the maturity cutoffs
        (the Kaplan–Meier 90th percentile of first-visit dwell per stage, or of the time
        to resolution), one for each cohort's sufficient statistics (funnel counts and the
        competing-risks clock's (time, cause) counts; outcome counts; dwell or
        time-to-resolution sketches), merged and handed to the in-memory builders.

        Counts and conversions equal the in-memory ones exactly; the dwell and cycle-time
        estimates and the cutoffs too while every group has at most ``exact_durations``
        distinct durations, else from the binned sketch (within 1%, as :meth:`dwell`).

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> t = log.trend(freq="YE", metric="win_rate")
        >>> t.equals(log.compute().trend(freq="YE", metric="win_rate"))
        True
        >>> t["deals"].tolist()
        [391, 209]
        """
        from . import monitoring as M

        M.check_metric(metric)
        by_cols = M._check_by(by)
        SM._by_columns(by_cols, self._layout)
        pfreq = M._period_freq(freq)
        lay = self._layout
        by_stage = metric in ("conversion", "dwell")
        cuts = self._per_partition(SM.trend_cutoff_part, by_stage)
        cut = SM.trend_cutoffs(list(cuts), lay, by_stage, self._exact_durations)
        rows = self._per_partition(SM.trend_part, by_cols, pfreq, metric, cut)
        out = SM.trend_table(
            list(rows), self._summary, lay, by_cols, pfreq, metric, cut, self._exact_durations
        )
        if metric in ("conversion", "win_rate"):
            M._warn_if_empty(self, out, metric)
        return out

    @_as_in_memory("snapshot")
    def snapshot(self, at: Any) -> pd.DataFrame:
        """The open pipeline as it stood at ``at``: :meth:`funnelkit.EventLog.snapshot`'s
        rows and columns, in the order of the in-memory :meth:`~funnelkit.EventLog.deals`
        (sorted by deal id). Each partition of whole deals takes its deals open at ``at``
        and the rows are gathered (the open pipeline is small next to the log). A Dask log
        has no field history, so ``amount`` is the event log's and ``close_date`` and
        ``forecast_category`` are unknown; attribute columns are objects (as
        :meth:`deals`).

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> s = log.snapshot("2025-03-31")
        >>> mem = log.compute().snapshot("2025-03-31")
        >>> len(s), s["deal"].tolist() == mem["deal"].tolist()
        (63, True)
        >>> s["stage"].value_counts().sort_index().tolist()
        [6, 12, 18, 14, 9, 4]
        """
        from .history import snapshot_time

        lay = self._layout
        snapshot_time(at, lay.aware, lay.as_of_ns, self.as_of)  # checked here, not in a task
        parts = self._per_partition(SM.snapshot_part, at)
        frames = [f for f in parts if f is not None]
        out = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
        return out.sort_values("deal", kind="stable", ignore_index=True)

    @_as_in_memory("alerts")
    def alerts(
        self,
        *,
        weeks: int = 1,
        baseline: int = 26,
        alpha: float = 0.01,
        thresholds: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Check the last complete weeks against the weeks before, and against thresholds:
        :meth:`funnelkit.EventLog.alerts`, the same rows and columns. One pass over the
        partitions of whole deals gathers the visits open or resolved in the weeks the
        rules read (the baselines and the weeks watched, about ``baseline + weeks + 1``
        weeks: a small part of a long log) and each partition's input rows per week; the
        in-memory builder (:func:`funnelkit.alerts.alerts_table`) makes the table. Every
        count, percentile and p-value equals the in-memory one.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> a = log.alerts(weeks=2)
        >>> a.equals(log.compute().alerts(weeks=2))
        True
        >>> sorted(a["rule"].unique())
        ['bad_rows', 'conversion', 'dwell_p90', 'stalled']
        """
        from . import alerts as A

        lay = self._layout
        limits = A._check_thresholds(thresholds, list(self.stages))
        since = A.first_needed_week(lay.as_of_ns, weeks, baseline)
        parts = self._per_partition(SM.alerts_part, since)
        first = min(p[2] for p in parts if p[2] is not None)
        monitored = A.monitored_weeks(lay.as_of_ns, first, int(weeks), int(baseline), lay.aware)
        return A.alerts_table(
            A.Exits.concat([p[0] for p in parts]),
            A.BadRows.merge([p[1] for p in parts]),
            monitored,
            list(self.stages),
            int(baseline),
            float(alpha),
            limits,
            lay.aware,
        )

    @_as_in_memory("what_if")
    def what_if(
        self,
        changes: Mapping[str, Mapping[str, float]],
        *,
        by: str | Sequence[str] | None = None,
        n_boot: int = 200,
        seed: int | None = 0,
    ) -> pd.DataFrame:
        """Expected effect of changing stages' conversion or dwell:
        :meth:`funnelkit.EventLog.what_if`, the same rows and columns, from one pass
        over the partitions of whole deals (the interval's draws are made in the same
        pass) and the in-memory builder (:func:`funnelkit.forecast.what_if_block`).

        The chain's counts, the won amounts and so ``win_rate``, ``wins`` and
        ``won_amount`` equal the in-memory ones; the mean dwells come from the dwell
        sketch (exact, or within 1% when binned, as :meth:`dwell`), and so the cycle
        times. The interval resamples whole deals by the Poisson bootstrap: each deal's
        weight in a draw is Poisson(1), a function of its id, the draw and ``seed`` (the
        same however the deals are partitioned), where the in-memory log draws
        multinomial counts; the dwell bins' edges come from the sketch. The interval ends
        agree with the in-memory ones up to Monte-Carlo error.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> changes = {"Demo": {"conversion": 0.05}}
        >>> w = log.what_if(changes, n_boot=0).set_index("metric")
        >>> mem = log.compute().what_if(changes, n_boot=0).set_index("metric")
        >>> bool(abs(w.loc["win_rate", "change"] - mem.loc["win_rate", "change"]) < 1e-12)
        True
        """
        from .forecast import _KM_BINS, what_if_args

        lay = self._layout
        by_cols = SM._by_columns(by, lay)
        n_boot, seed, plan = what_if_args(list(self.stages), changes, n_boot, seed)
        if seed is None:  # the deals' weights need a number: a fresh one
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> 1)
        edges = SM.what_if_edges(self._summary, lay, _KM_BINS)
        parts = [
            p
            for p in self._per_partition(SM.what_if_part, by_cols, n_boot, seed, edges)
            if p is not None
        ]
        return SM.what_if_table(parts, self._summary, lay, plan, by_cols, n_boot, _KM_BINS)

    @_as_in_memory("movement", closing=[CHECKED_INSIDE])
    def movement(self, start: Any, end: Any, *, closing: None = None) -> pd.DataFrame:
        """How the open pipeline moved between ``start`` and ``end``: the eight rows of
        :meth:`funnelkit.EventLog.movement` (deals and amounts of ``open_at_start``,
        ``created``, ``advanced``, ``regressed``, ``won``, ``lost``, ``stale``,
        ``open_at_end``). Each partition of whole deals classifies its deals and the
        counts and amounts are summed: counts equal the in-memory ones exactly, amounts up
        to float rounding. ``closing`` needs a field history, which is in memory only
        (:meth:`with_history`).

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> m = log.movement("2025-03-31", log.as_of)
        >>> m["deals"].equals(log.compute().movement("2025-03-31", log.as_of)["deals"])
        True
        >>> d = m.set_index("category")["deals"]
        >>> int(d["open_at_start"] + d["created"] - d["won"] - d["lost"] - d["stale"])
        59
        """
        from .monitoring import CATEGORIES, movement_window

        if closing is not None:
            raise InvalidParameterError(
                "DaskEventLog.movement: `closing` follows the pipeline by close date, which "
                "needs a field history, and field histories are in memory only: "
                "log.with_history(history, ...) returns the in-memory log; call "
                ".movement(start, end, closing=...) on it."
            )
        lay = self._layout
        movement_window(start, end, lay.aware, lay.as_of_ns, self.as_of)  # checked here
        parts = self._per_partition(SM.movement_part, start, end)
        deals = np.zeros(len(CATEGORIES), dtype=np.int64)
        amount = np.zeros(len(CATEGORIES), dtype=np.float64)
        for part in parts:  # loop over partitions: their tables add up
            if len(part):
                deals += part["deals"].to_numpy(dtype=np.int64)
                amount += part["amount"].to_numpy(dtype=np.float64)
        return pd.DataFrame(
            {
                "category": list(CATEGORIES),
                "deals": deals,
                "amount": amount if lay.amount is not None else np.full(len(CATEGORIES), np.nan),
            }
        )

    @_as_in_memory("key_stages")
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
        """Key stages: :meth:`funnelkit.EventLog.key_stages`, the same rows and columns,
        every signal and option.

        The signals read the same statistics as in memory, merged from the partitions
        (one builder makes the table, :func:`funnelkit.keystages.signal_table`):
        ``dropoff``, ``heterogeneity`` and ``change`` the Aalen–Johansen conversions from
        one pass of the clock sharded by stage — each segment's rest its own exact
        estimate, the period's two sides the clock's groups; ``stall`` the ended first visits counted per
        stage and hour of dwell in one pass (the median's hour fixes the threshold, so it
        and the test are exact); ``dwell`` the first visits counted per stage, duration,
        outcome and group in one pass (the log-rank test and the medians from those counts
        are exact; the client holds one row per distinct duration, few with whole-day or
        whole-hour times); ``leverage`` the transition counts and starting states.
        Everything equals the in-memory table, the leverage bootstrap interval included:
        both engines draw multinomial counts of the same distinct deal patterns, in the
        same order, from the same seed.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> ks = log.key_stages(n_boot=0)
        >>> from pandas.testing import assert_frame_equal
        >>> assert_frame_equal(ks, log.compute().key_stages(n_boot=0), rtol=1e-12)  # up to rounding
        >>> sorted(ks["signal"].unique())
        ['dropoff', 'leverage', 'stall']
        """
        from . import keystages as K
        from ._periods import period_label

        lay = self._layout
        by_cols = SM._by_columns(by, lay)
        split: dict[str, Any] = {}

        def split_period(p: Any) -> tuple[int, str]:
            split["period_ns"], _ = self._split(p)
            return split["period_ns"], period_label(p)

        chosen, opt = K.options(
            list(self.stages), by_cols, signals=signals, period=period, split=split_period,
            benchmark=benchmark, alpha=alpha, uplift=uplift, n_boot=n_boot, seed=seed,
            min_deals=min_deals, min_effect=min_effect, progress=progress,
        )  # fmt: skip
        src = SM.SummarySource(
            lambda: self._summary,
            lay,
            opt,
            self._per_partition,
            self._clock,
            split.get("period_ns"),
        )
        return K.signal_table(src, chosen, opt)

    @_as_in_memory("drivers")
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
        """Which attributes go with advancing, stage by stage:
        :meth:`funnelkit.EventLog.drivers`, the same rows and columns.

        A distributed log carries attributes per deal (``attrs=``), so its features are
        those attributes: each value against the deals with another value, at each stage
        (a log with activities is in memory: ``log.with_activities(...)``, which returns
        one). Each group's conversion is the Aalen–Johansen estimate of the funnel's
        clock sharded by stage — the value's deals, and the deals with another value
        (those without a value left out, as in memory) — computed where the stage's
        deals are gathered; the tests, intervals and q-values are the in-memory ones
        (:func:`funnelkit.drivers.table`), so the table equals the in-memory one to
        rounding. ``landmark`` applies to activity features only. ``adjust=True`` adds
        each stage's multivariable Cox model, which needs every deal of the stage in one
        process: the deals' subjects (stage, time and cause of the conversion clock, and
        their segment: about 13 bytes per deal and stage) come to the client, and the
        whole table is the in-memory scan of them.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> d = log.drivers("Demo")
        >>> top = d.iloc[0]
        >>> top["feature"], top["group"], bool(top["is_key"])
        ('team', 'Team C', True)
        >>> from pandas.testing import assert_frame_equal
        >>> assert_frame_equal(d, log.compute().drivers("Demo"), rtol=1e-12)  # up to rounding
        """
        from . import drivers as D
        from ._ajtests import conversion_rates
        from ._stats import Z95
        from .funnel import wanted_stages

        C.to_duration(landmark, "landmark")
        names = (
            list(self.attrs)
            if attrs is None
            else ([attrs] if isinstance(attrs, str) else list(attrs))
        )
        unknown = [a for a in names if a not in self.attrs]
        if unknown:
            raise InvalidParameterError(
                f"Parameter `attrs`: {unknown} are not attributes of the log; carried: "
                f"{list(self.attrs)}, per visit: []."
            )
        S = len(self.stages)
        wanted = np.ones(S, dtype=bool) if stage is None else wanted_stages(self.stages, stage)
        if adjust:
            return self._drivers_adjusted(names, wanted, alpha, min_visits)
        meta: list[tuple[int, str, str, str]] = []
        picks: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]] = []
        n: list[float] = []
        for a in names:  # loop over attributes: one sharded clock each
            coder = SM.segment_coder(self._summary, [a])
            missing = 0 if coder.uniq.size and coder.uniq[0] == 0 else None
            got = self._clock(
                [a], ("conversion", "rest", "subjects"), skips="strict", win=False,
                rest_without=missing,
            )  # fmt: skip
            labels = coder.labels()[a].tolist()
            subjects = got["subjects"].reshape(-1, S)
            for s in np.flatnonzero(wanted):
                present = [j for j in range(len(coder)) if j != missing and subjects[j, s] > 0]
                total = sum(subjects[j, s] for j in present)
                for j in D.one_vs_rest_levels(present):
                    meta.append((int(s), a, str(labels[j]), "attribute"))
                    picks.append((got["rest"], got["conversion"], j * S + int(s)))
                    n += [total - subjects[j, s], subjects[j, s]]
        if not meta:
            return D.table(self.stages, [], None, np.zeros(0), alpha, min_visits)
        keys = picks[0][0].keys()
        aj = {
            k: np.array([x for rest, conv, g in picks for x in (rest[k][g], conv[k][g])])
            for k in keys
        }
        counts = np.array(n)
        return D.table(
            self.stages, meta, conversion_rates(aj, counts, Z95), counts, alpha, min_visits
        )

    @_as_in_memory("report")
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
        """Every table and chart of the log: :meth:`funnelkit.EventLog.report`, from the
        distributed analyses (:func:`funnelkit.report.build_report` on this log).

        The tables are this log's: the funnel, dwell, transitions, KPIs, key stages,
        comparisons, trend and incidence curves computed where the deals live. What comes
        to the client: the per-deal table (``tables["deals"]``, one row per deal, which the
        report writes), the rejected rows, the open visits (the deals to act on) and, with
        ``charts``, each visit's stage, time in it and whether it is open (10 bytes a
        visit, for the dwell and survival charts). Not on a distributed log: the
        forecast per month (the page says so; ``log.compute().report()`` has it).

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> report = log.report(by="team", charts=False, key_kwargs={"n_boot": 0})
        >>> report.tables["funnel"].equals(log.funnel())
        True
        >>> report.summary["deals"], report.summary["won"]
        (600, 60)
        """
        from .report import build_report

        return build_report(
            self,  # type: ignore[arg-type]
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

    def _drivers_adjusted(
        self, names: list[str], wanted: np.ndarray, alpha: float, min_visits: int
    ) -> pd.DataFrame:
        """``drivers(adjust=True)``: each stage's Cox model needs every deal of the stage
        in one process, so the deals' subjects (stage, time and cause of the conversion
        clock, and the segment of ``names``: about 13 bytes per deal and stage) come to
        the client, and the in-memory scan runs on them."""
        from . import drivers as D

        D._import_lifelines()
        S = len(self.stages)
        tests = D._Tests()
        ss = t_adv = c_adv = np.zeros(0, dtype=np.int64)
        if names:
            coder = SM.segment_coder(self._summary, names)
            rows = self._clock(names, ("rows",), skips="strict", win=False)["rows"]
            g = rows["g"].astype(np.int64)
            keep = wanted[g % S]
            seg, ss = g[keep] // S, g[keep] % S
            t_adv, c_adv = rows["t_adv"][keep], rows["c_adv"][keep]
            by_stage = [np.flatnonzero(ss == s) for s in range(S)]
            labels = coder.labels()
            for a in names:  # loop over attributes: each value of a segment, in order
                cats = coder.cats[a]
                level = cats.get_indexer(labels[a].astype(object).to_numpy())
                D.feature_tests(tests, by_stage, a, "attribute", level[seg], cats)
        return D.finish(
            self.stages, self._layout.stale_after_ns, tests, ss, t_adv, c_adv, alpha,
            min_visits, adjust=True,
        )  # fmt: skip

    @_as_in_memory("with_history", history=[CHECKED_INSIDE])
    def with_history(
        self,
        history: Any,
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
        """The in-memory log (:meth:`compute`) with a field history attached
        (:meth:`funnelkit.EventLog.with_history`): snapshots, slippage and the waterfall
        need every deal's events and changes on one machine. A dask ``history`` is
        collected too. Needs the whole log in local memory.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> h = log.with_history(fk.datasets.load_sample_history(),
        ...                      **fk.datasets.SAMPLE_HISTORY_KWARGS)
        >>> type(h).__name__, len(h.slippage()) == log.n_deals
        ('EventLog', True)
        """
        if hasattr(history, "compute") and not isinstance(history, pd.DataFrame):
            history = history.compute()
        return self.compute().with_history(
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

    @_as_in_memory("with_activities", acts=[CHECKED_INSIDE])
    def with_activities(
        self,
        acts: Any,
        *,
        deal: str,
        time: str,
        kind: str,
        value: str | None = None,
        errors: Literal["raise", "drop"] = "raise",
        date_format: str | None = None,
    ) -> EventLog:
        """The in-memory log (:meth:`compute`) with activities attached
        (:meth:`funnelkit.EventLog.with_activities`): placing touches in visits, the
        activity table, the drivers and the going-cold columns need every deal's visits
        and touches on one machine. A dask ``acts`` is collected too. Needs the whole log
        in local memory.

        Examples
        --------
        >>> import dask.dataframe as dd
        >>> import funnelkit as fk
        >>> from funnelkit.dask import DaskEventLog
        >>> events = dd.from_pandas(fk.datasets.load_sample(), npartitions=2)
        >>> log = DaskEventLog(events, **fk.datasets.SAMPLE_KWARGS)
        >>> a = log.with_activities(fk.datasets.load_sample_activities(),
        ...                         **fk.datasets.SAMPLE_ACTIVITIES_KWARGS)
        >>> type(a).__name__, "going_cold" in a.deals().columns
        ('EventLog', True)
        """
        if hasattr(acts, "compute") and not isinstance(acts, pd.DataFrame):
            acts = acts.compute()
        return self.compute().with_activities(
            acts,
            deal=deal,
            time=time,
            kind=kind,
            value=value,
            errors=errors,
            date_format=date_format,
        )

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and hasattr(EventLog, name):
            if name in _IN_MEMORY_ONLY:
                raise NotImplementedError(_IN_MEMORY_ONLY[name].format(name=name))
            raise NotImplementedError(_NOT_DISTRIBUTED.format(what=f"EventLog.{name}"))
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        q = self.quality
        return (
            f"<DaskEventLog: {q.deals:,} deals, {q.rows_used:,} events, "
            f"{len(self.stages)} stages ({' → '.join(self.stages[:8])}"
            f"{' …' if len(self.stages) > 8 else ''}); won {q.won:,}, lost {q.lost:,}, "
            f"stale {q.stale:,}, open {q.open:,}; as of {self.as_of}; "
            f"{self._shuffled.npartitions} partitions>"
        )


@validate_params(
    {
        "path": [str, os.PathLike],
        "npartitions": [Interval(Integral, 1, None), None],
        "encoding": [str],
        "na_values": [CHECKED_INSIDE],
        "kwargs": [CHECKED_INSIDE],
    },
    name="funnelkit.dask.read_events",
)
def read_events(
    path: str | os.PathLike[str],
    *,
    npartitions: int | None = None,
    encoding: str = "utf-8",
    na_values: Iterable[str] | None = None,
    **kwargs: Any,
) -> DaskEventLog:
    """Read an event log with dask: a Parquet file or folder (or glob), or CSV file(s).

    Only the mapped columns are read; CSV columns are read as text except the amount
    (parsed as ISO 8601 like any other input), as :func:`funnelkit.read_events` does.

    Parameters
    ----------
    path : str or path-like
        Local or remote (``s3://...``) path understood by dask: ``*.parquet``, a folder
        of Parquet files, or ``*.csv`` (globs allowed).
    npartitions : int, optional
        Partitions after the shuffle by deal; see :class:`DaskEventLog`.
    encoding : str, default "utf-8"
        Text encoding of CSV files.
    na_values : iterable of str, optional
        CSV cells read as missing values (default :data:`funnelkit.io.NA_VALUES`); empty
        and whitespace-only cells are always missing, as in :func:`funnelkit.read_events`.
    **kwargs
        The keywords of :class:`DaskEventLog`.

    Returns
    -------
    DaskEventLog

    Examples
    --------
    >>> import os, tempfile
    >>> import funnelkit as fk
    >>> from funnelkit.dask import read_events
    >>> path = os.path.join(tempfile.mkdtemp(), "events.parquet")
    >>> fk.datasets.load_sample().to_parquet(path)
    >>> log = read_events(path, npartitions=2, **fk.datasets.SAMPLE_KWARGS)
    >>> type(log).__name__, log.n_deals, log.n_events
    ('DaskEventLog', 600, 2704)
    """
    _, dd = _dask()
    text = str(path)
    p = Path(text)
    if "://" not in text and not any(ch in text for ch in "*?[") and not p.exists():
        raise FileNotFoundError(f"Input `{path}` does not exist.")
    roles = C.mapped_columns(kwargs)
    cols = list(dict.fromkeys(roles.values()))
    name = p.name.lower()
    if p.is_dir() or name.endswith((".parquet", ".pq", ".parq")):
        if "://" not in text and p.is_dir():
            # dask reads a folder with its first file's schema: files that disagree on a
            # mapped column (aware beside naive times, int beside text ids) are an error,
            # as with the in-memory reader, not silently cast or relabelled
            from .io import check_parquet_folder

            check_parquet_folder(p, roles, f"`{path}`")
        events = dd.read_parquet(text)
        C.check_columns(roles, list(events.columns), f"`{path}`")
        events = events[cols]
    elif ".csv" in name or name.endswith(".txt"):
        amount = kwargs.get("amount")
        from .io import NA_VALUES

        nas = list(dict.fromkeys(("", *(NA_VALUES if na_values is None else na_values))))
        str_cols = [c for c in cols if c != amount]
        if p.is_file():  # one local file: its header checked as the in-memory reader does
            from .io import csv_header

            header = csv_header(p, encoding, f"`{path}`")
            C.check_columns(roles, header, f"`{path}`")
            C.check_unique_columns(roles, header, f"`{path}`")
        try:  # bytes of another encoding: in the sample dask reads now, or further down
            events = dd.read_csv(
                text,
                usecols=cols,
                dtype=dict.fromkeys(str_cols, "string"),
                encoding=encoding,
                na_values=nas,
                keep_default_na=False,
            )
            events = events.map_partitions(_blank_as_missing, str_cols)
            return DaskEventLog(events, npartitions=npartitions, **kwargs)
        except UnicodeError as exc:
            from .io import _csv_error

            raise _csv_error(exc, None, f"`{path}`", encoding) from exc
    else:
        raise EventLogError(
            f"Input `{path}`: unknown file type; expected .csv, .parquet or a folder of "
            "Parquet files."
        )
    return DaskEventLog(events, npartitions=npartitions, **kwargs)


def _blank_as_missing(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Whitespace-only text cells of a CSV partition as missing (as the pandas reader)."""
    out = df.copy()
    for c in cols:
        blank = out[c].str.isspace().fillna(False).to_numpy(dtype=bool)
        if blank.any():
            out[c] = out[c].mask(blank)
    return out
