"""A slow, loop-per-deal reference implementation of DESIGN.md §1–3.

It exists only to cross-check funnelkit's vectorised code: every rule is written out with
plain Python loops over deals and events, in the words of the design page, so that it can
be read against the text line by line. Nothing here imports funnelkit.

Durations are handled as integer nanoseconds internally and returned as pandas Timedeltas;
times are returned as ``datetime64[ns]`` (naive log) or ``datetime64[ns, UTC]`` (aware log).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from scipy import stats

Z = float(stats.norm.ppf(0.975))
"""Wilson interval z value, Φ⁻¹(0.975)."""

KM_TOLERANCE = 1e-9
"""A Kaplan–Meier quantile q is the smallest t with S(t) <= 1 - q + KM_TOLERANCE."""

QUANTILES = {"median": 0.5, "p75": 0.75, "p90": 0.9}

OUTCOMES_RESOLVED = ("won", "lost", "stale")

TIMEDELTA = "timedelta64[ns]"
SURVIVAL_DTYPES: dict[str, Any] = {
    "visits": "int64",
    "censored": "int64",
    "mean": TIMEDELTA,
    **{name: TIMEDELTA for name in QUANTILES},
}


@dataclass
class Event:
    """One input row of one deal."""

    pos: int  # input position (row number), the last tie-breaker
    stage: str
    time: pd.Timestamp
    amount: float  # NaN when missing
    terminal: bool


@dataclass
class DealPath:
    """One deal: its rows in sort order, its cleaned path and what cleaning did."""

    deal: Hashable
    events: list[Event]  # every row of the deal, in sort order
    path: list[Event] = field(default_factory=list)  # the cleaned path
    removed: list[Event] = field(default_factory=list)  # reopened terminal events
    collapsed: list[Event] = field(default_factory=list)  # repeats and terminal-run tails


@dataclass
class DealResult:
    """Per-deal results derived from a cleaned path."""

    deal: Hashable
    outcome: str  # won / lost / stale / open
    outcome_stage: str | None
    furthest_rank: int | None
    furthest_stage: str | None
    entered_stages: set[str]
    first_event: pd.Timestamp
    last_event: pd.Timestamp
    cycle_ns: int | None  # first event -> first terminal event, won/lost only
    amount: float
    reopened: bool


@dataclass
class Visit:
    """One row of the visits table."""

    deal: Hashable
    stage: str
    visit: int
    entered: pd.Timestamp
    next_stage: str | None
    dwell_ns: int | None
    censored: bool


# --------------------------------------------------------------------------------------
# input


def _names(value: str | Iterable[str] | None) -> list[str]:
    """A terminal-stage argument (name, list of names or None) as a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _parse_time(value: Any) -> pd.Timestamp:
    """One timestamp (string of any ISO 8601 precision or datetime); aware ones in UTC."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC")
    return ts.as_unit("ns")


def _parse_as_of(value: Any, aware: bool, latest: pd.Timestamp) -> pd.Timestamp:
    """The observation time: given, or the latest timestamp; naive on an aware log = UTC."""
    if value is None:
        return latest
    ts = pd.Timestamp(value).as_unit("ns")
    if aware:
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if ts.tzinfo is not None:
        raise ValueError("an aware as_of needs an aware log")
    return ts


def _ns(delta: pd.Timedelta) -> int:
    """A Timedelta as integer nanoseconds."""
    return int(delta.value)


def _td(ns: float | None) -> pd.Timedelta:
    """Nanoseconds (possibly fractional or None/NaN) as a Timedelta (NaT when undefined)."""
    if ns is None or (isinstance(ns, float) and math.isnan(ns)):
        return pd.NaT
    return pd.Timedelta(round(ns), unit="ns")


def deal_paths(
    events: pd.DataFrame,
    *,
    deal: str = "deal",
    stage: str = "stage",
    time: str = "ts",
    stages: Sequence[str],
    won: str | Iterable[str] | None,
    lost: str | Iterable[str] | None,
    amount: str | None = None,
) -> tuple[dict[Hashable, DealPath], bool]:
    """Sort each deal's rows and clean its path (DESIGN §1); also say if the log is aware."""
    terminal_names = set(_names(won)) | set(_names(lost))
    rank = {s: i for i, s in enumerate(stages)}

    raw_times = events[time].tolist()
    times = [_parse_time(v) for v in raw_times]
    aware_flags = {t.tzinfo is not None for t in times}
    if len(aware_flags) > 1:
        raise ValueError("naive and aware timestamps mixed")
    aware = aware_flags == {True}

    deal_ids = events[deal].tolist()
    stage_names = events[stage].tolist()
    amounts = events[amount].tolist() if amount is not None else [math.nan] * len(events)

    by_deal: dict[Hashable, list[Event]] = {}
    for pos in range(len(events)):
        value = amounts[pos]
        row = Event(
            pos=pos,
            stage=stage_names[pos],
            time=times[pos],
            amount=math.nan if pd.isna(value) else float(value),
            terminal=stage_names[pos] in terminal_names,
        )
        by_deal.setdefault(deal_ids[pos], []).append(row)

    def sort_key(e: Event) -> tuple[pd.Timestamp, bool, int, int]:
        # time, then terminal last, then declared stage order, then input order
        return (e.time, e.terminal, -1 if e.terminal else rank[e.stage], e.pos)

    result: dict[Hashable, DealPath] = {}
    for deal_id in sorted(by_deal):
        ordered = sorted(by_deal[deal_id], key=sort_key)
        dp = DealPath(deal=deal_id, events=ordered)

        # 1. drop reopened terminals: a terminal event followed by a later stage event
        kept: list[Event] = []
        for i, e in enumerate(ordered):
            later_stage = any(not later.terminal for later in ordered[i + 1 :])
            if e.terminal and later_stage:
                dp.removed.append(e)
            else:
                kept.append(e)

        # 2. collapse consecutive repeats of the same stage into the first of them
        path: list[Event] = []
        for e in kept:
            if path and path[-1].stage == e.stage:
                dp.collapsed.append(e)
            else:
                path.append(e)

        # 3. collapse the final run of terminal events into its first event
        while len(path) >= 2 and path[-1].terminal and path[-2].terminal:
            dp.collapsed.append(path.pop())

        dp.path = path
        result[deal_id] = dp
    return result, aware


# --------------------------------------------------------------------------------------
# visits and deals


def _deal_and_visits(
    dp: DealPath,
    *,
    won_names: set[str],
    rank: dict[str, int],
    stages: Sequence[str],
    as_of: pd.Timestamp,
    stale_after: pd.Timedelta | None,
) -> tuple[DealResult, list[Visit]]:
    """The deals-table row and the visits of one cleaned path (DESIGN §1–3)."""
    path = dp.path
    first_event = min(e.time for e in dp.events)
    last_event = max(e.time for e in dp.events)  # activity of any kind, collapsed rows too

    last = path[-1]
    cycle_ns: int | None = None
    if last.terminal:
        outcome = "won" if last.stage in won_names else "lost"
        outcome_stage: str | None = last.stage
        cycle_ns = _ns(last.time - first_event)  # last of path = first of the terminal run
    elif stale_after is not None and as_of - last_event > stale_after:
        outcome, outcome_stage = "stale", "stale"
    else:
        outcome, outcome_stage = "open", None

    furthest_rank: int | None = None
    entered: set[str] = set()
    for e in path:
        if not e.terminal:
            entered.add(e.stage)
            if furthest_rank is None or rank[e.stage] > furthest_rank:
                furthest_rank = rank[e.stage]

    amount = math.nan
    for e in dp.events:
        if not math.isnan(e.amount):
            amount = e.amount
            break

    deal_result = DealResult(
        deal=dp.deal,
        outcome=outcome,
        outcome_stage=outcome_stage,
        furthest_rank=furthest_rank,
        furthest_stage=None if furthest_rank is None else stages[furthest_rank],
        entered_stages=entered,
        first_event=first_event,
        last_event=last_event,
        cycle_ns=cycle_ns,
        amount=amount,
        reopened=bool(dp.removed),
    )

    visits: list[Visit] = []
    visit_number: dict[str, int] = {}
    for i, e in enumerate(path):
        if e.terminal:
            continue  # terminal stages have no visit
        visit_number[e.stage] = visit_number.get(e.stage, 0) + 1
        if i + 1 < len(path):
            nxt = path[i + 1]
            next_stage, dwell, censored = nxt.stage, _ns(nxt.time - e.time), False
        elif outcome == "stale":
            next_stage, dwell, censored = "stale", None, False
        else:
            next_stage, dwell, censored = None, _ns(as_of - e.time), True
        visits.append(
            Visit(dp.deal, e.stage, visit_number[e.stage], e.time, next_stage, dwell, censored)
        )
    return deal_result, visits


# --------------------------------------------------------------------------------------
# statistics, by hand


def _mean(values: list[int]) -> float:
    """Plain mean, NaN when empty."""
    return sum(values) / len(values) if values else math.nan


def _linear_quantile(values: list[int], q: float) -> float:
    """Sample quantile with linear interpolation (numpy's default), NaN when empty."""
    if not values:
        return math.nan
    xs = sorted(values)
    h = (len(xs) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def kaplan_meier(durations: list[int], censored: list[bool]) -> list[tuple[int, float]]:
    """Product-limit estimate: (t, S(t)) at each distinct event time, ascending.

    At a tied time, events come before censorings: a visit censored at t is still at risk
    at t.
    """
    curve: list[tuple[int, float]] = []
    survival = 1.0
    event_times = sorted({d for d, c in zip(durations, censored, strict=True) if not c})
    for t in event_times:
        at_risk = sum(1 for d in durations if d >= t)
        events = sum(1 for d, c in zip(durations, censored, strict=True) if d == t and not c)
        survival *= 1.0 - events / at_risk
        curve.append((t, survival))
    return curve


def _km_quantile(curve: list[tuple[int, float]], q: float) -> float:
    """Smallest t with S(t) <= 1 - q + tolerance; NaN when S never falls that low."""
    for t, s in curve:
        if s <= 1.0 - q + KM_TOLERANCE:
            return float(t)
    return math.nan


def _km_restricted_mean(curve: list[tuple[int, float]], horizon: int) -> float:
    """Area under S from 0 up to the horizon (the largest observed duration)."""
    area = 0.0
    previous_t = 0
    survival = 1.0
    for t, s in curve:
        if t > horizon:
            break
        area += survival * (t - previous_t)
        previous_t, survival = t, s
    area += survival * (horizon - previous_t)
    return area


def km_summary(durations: list[int], censored: list[bool]) -> dict[str, pd.Timedelta]:
    """Kaplan–Meier mean (restricted), median, p75 and p90 as Timedeltas."""
    if not durations:
        return {"mean": pd.NaT, **{name: pd.NaT for name in QUANTILES}}
    curve = kaplan_meier(durations, censored)
    out = {"mean": _td(_km_restricted_mean(curve, max(durations)))}
    for name, q in QUANTILES.items():
        out[name] = _td(_km_quantile(curve, q))
    return out


def _plain_summary(durations: list[int]) -> dict[str, pd.Timedelta]:
    """Mean and linear-interpolation quantiles of complete durations."""
    out = {"mean": _td(_mean(durations))}
    for name, q in QUANTILES.items():
        out[name] = _td(_linear_quantile(durations, q))
    return out


def wilson(p: float, n: float) -> tuple[float, float]:
    """Wilson score 95% interval for a proportion p out of n (n may be fractional)."""
    if math.isnan(p) or not n > 0:
        return math.nan, math.nan
    z2 = Z * Z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half = Z / denominator * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _ratio(a: float, b: float) -> float:
    """a / b, NaN when b is zero."""
    return a / b if b else math.nan


# --------------------------------------------------------------------------------------
# tables


def _frame(rows: list[dict[str, Any]], dtypes: dict[str, Any]) -> pd.DataFrame:
    """Rows (dicts) as a DataFrame with these columns, in this order, of these dtypes."""
    return pd.DataFrame(
        {col: pd.Series([row[col] for row in rows], dtype=dtype) for col, dtype in dtypes.items()}
    )


def _visits_frame(visits: list[Visit], time_dtype: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "deal": pd.Series([v.deal for v in visits], dtype=object),
            "stage": pd.Series([v.stage for v in visits], dtype=object),
            "visit": pd.Series([v.visit for v in visits], dtype="int64"),
            "entered": pd.Series([v.entered for v in visits], dtype=time_dtype),
            "next_stage": pd.Series([v.next_stage for v in visits], dtype=object),
            "dwell": pd.Series([_td(v.dwell_ns) for v in visits], dtype="timedelta64[ns]"),
            "censored": pd.Series([v.censored for v in visits], dtype=bool),
        }
    )


def _deals_frame(deals: list[DealResult], time_dtype: str, with_amount: bool) -> pd.DataFrame:
    columns: dict[str, pd.Series] = {
        "deal": pd.Series([d.deal for d in deals], dtype=object),
        "outcome": pd.Series([d.outcome for d in deals], dtype=object),
        "outcome_stage": pd.Series([d.outcome_stage for d in deals], dtype=object),
        "furthest_stage": pd.Series([d.furthest_stage for d in deals], dtype=object),
        "first_event": pd.Series([d.first_event for d in deals], dtype=time_dtype),
        "last_event": pd.Series([d.last_event for d in deals], dtype=time_dtype),
        "cycle_time": pd.Series([_td(d.cycle_ns) for d in deals], dtype="timedelta64[ns]"),
    }
    if with_amount:
        columns["amount"] = pd.Series([d.amount for d in deals], dtype="float64")
    columns["reopened"] = pd.Series([d.reopened for d in deals], dtype=bool)
    return pd.DataFrame(columns)


def _transitions_frame(visits: list[Visit], rank: dict[str, int]) -> pd.DataFrame:
    exits_from: dict[str, int] = {}
    moves: dict[tuple[str, str], list[Visit]] = {}
    for v in visits:
        if v.next_stage is None:
            continue  # still open: censored, no exit
        exits_from[v.stage] = exits_from.get(v.stage, 0) + 1
        moves.setdefault((v.stage, v.next_stage), []).append(v)

    rows = []
    for from_stage, to_stage in sorted(moves, key=lambda k: (rank[k[0]], str(k[1]))):
        group = moves[(from_stage, to_stage)]
        dwells = [v.dwell_ns for v in group if v.dwell_ns is not None]
        rows.append(
            {
                "from_stage": from_stage,
                "to_stage": to_stage,
                "transitions": len(group),
                "deals": len({v.deal for v in group}),
                "share": len(group) / exits_from[from_stage],
                "dwell_mean": _td(_mean(dwells)),
                "dwell_median": _td(_linear_quantile(dwells, 0.5)),
                "dwell_p90": _td(_linear_quantile(dwells, 0.9)),
            }
        )
    return _frame(
        rows,
        {
            "from_stage": object,
            "to_stage": object,
            "transitions": "int64",
            "deals": "int64",
            "share": "float64",
            "dwell_mean": TIMEDELTA,
            "dwell_median": TIMEDELTA,
            "dwell_p90": TIMEDELTA,
        },
    )


def _count(x: float, weighted: bool) -> float | int:
    """A funnel count: a sum of amounts when weighted, else an integer."""
    return x if weighted else int(x)


def _funnel_frame(
    deals: list[DealResult],
    stages: Sequence[str],
    *,
    strict: bool,
    weighted: bool,
) -> pd.DataFrame:
    """The funnel of DESIGN §3, by looping over stages and then over deals."""
    rows = []
    cumulative = 1.0
    for k, s in enumerate(stages):
        reached = advanced = dropped = still_open = won = resolved = 0.0
        resolved_weights: list[float] = []  # deals in advanced + dropped, for Kish's n
        for d in deals:
            w = (0.0 if math.isnan(d.amount) else d.amount) if weighted else 1.0
            f = d.furthest_rank
            if strict:
                has_reached = s in d.entered_stages
            else:
                has_reached = d.outcome == "won" or (f is not None and f >= k)
            if not has_reached:
                continue
            reached += w
            if d.outcome == "won" or (f is not None and f > k):
                advanced += w
                resolved_weights.append(w)
            elif f == k and d.outcome in ("lost", "stale"):
                dropped += w
                resolved_weights.append(w)
            elif f == k and d.outcome == "open":
                still_open += w
            else:  # pragma: no cover - the three cases above partition reached deals
                raise AssertionError(f"deal {d.deal!r} reached {s} but fits no case")
            if d.outcome in OUTCOMES_RESOLVED:
                resolved += w
                if d.outcome == "won":
                    won += w

        conversion = _ratio(advanced, advanced + dropped)
        if weighted:
            sum_sq = sum(w * w for w in resolved_weights)
            n = (sum(resolved_weights) ** 2 / sum_sq) if sum_sq > 0 else math.nan
        else:
            n = advanced + dropped
        low, high = wilson(conversion, n)
        rows.append(
            {
                "stage": s,
                "reached": _count(reached, weighted),
                "advanced": _count(advanced, weighted),
                "dropped": _count(dropped, weighted),
                "open": _count(still_open, weighted),
                # the closed-deal ratios; the Aalen–Johansen `conversion`,
                # `cumulative` and `win_rate_from` are checked in test_competing.py and
                # test_golden.py (hand-worked)
                "conversion_closed": conversion,
                "conversion_closed_low": low,
                "conversion_closed_high": high,
                "conversion_raw": _ratio(advanced, reached),
                "cumulative_closed": cumulative,
                "win_rate_from_closed": _ratio(won, resolved),
            }
        )
        cumulative = cumulative * conversion  # NaN from here on once a conversion is NaN
    count = "float64" if weighted else "int64"
    dtypes: dict[str, Any] = {"stage": object}
    dtypes |= {c: count for c in ("reached", "advanced", "dropped", "open")}
    for c in ("conversion_closed", "conversion_closed_low", "conversion_closed_high"):
        dtypes[c] = "float64"
    dtypes["conversion_raw"] = "float64"
    dtypes |= {"cumulative_closed": "float64", "win_rate_from_closed": "float64"}
    return _frame(rows, dtypes)


def _dwell_frame(visits: list[Visit], stages: Sequence[str]) -> pd.DataFrame:
    rows = []
    for s in stages:
        durations: list[int] = []
        censored: list[bool] = []
        for v in visits:
            if v.stage == s and v.dwell_ns is not None:  # stale visits have no dwell
                durations.append(v.dwell_ns)
                censored.append(v.censored)
        rows.append(
            {
                "stage": s,
                "visits": len(durations),
                "censored": sum(censored),
                **km_summary(durations, censored),
            }
        )
    return _frame(rows, {"stage": object, **SURVIVAL_DTYPES})


def _cycle_frame(deals: list[DealResult], as_of: pd.Timestamp) -> pd.DataFrame:
    rows = []
    for outcome in ("won", "lost"):
        times = [d.cycle_ns for d in deals if d.outcome == outcome and d.cycle_ns is not None]
        rows.append(
            {"outcome": outcome, "deals": len(times), "censored": 0, **_plain_summary(times)}
        )
    durations: list[int] = []
    censored: list[bool] = []
    for d in deals:
        if d.outcome in ("won", "lost") and d.cycle_ns is not None:
            durations.append(d.cycle_ns)
            censored.append(False)
        elif d.outcome == "open":
            durations.append(_ns(as_of - d.first_event))
            censored.append(True)
        # stale deals: no cycle time, excluded
    rows.append(
        {
            "outcome": "any",
            "deals": len(durations),
            "censored": sum(censored),
            **km_summary(durations, censored),
        }
    )
    survival = {k: v for k, v in SURVIVAL_DTYPES.items() if k != "visits"}
    return _frame(rows, {"outcome": object, "deals": "int64", **survival})


# --------------------------------------------------------------------------------------
# entry point


def reference(
    events: pd.DataFrame,
    *,
    deal: str = "deal",
    stage: str = "stage",
    time: str = "ts",
    stages: list[str],
    won: str | list[str] | None,
    lost: str | list[str] | None,
    as_of: Any = None,
    stale_after: str | pd.Timedelta | None = None,
    amount: str | None = None,
) -> dict[str, pd.DataFrame]:
    """All tables of DESIGN §1–3 for a valid event log, computed deal by deal."""
    rank = {s: i for i, s in enumerate(stages)}
    won_names = set(_names(won))
    paths, aware = deal_paths(
        events,
        deal=deal,
        stage=stage,
        time=time,
        stages=stages,
        won=won,
        lost=lost,
        amount=amount,
    )
    latest = max(e.time for dp in paths.values() for e in dp.events)
    as_of_ts = _parse_as_of(as_of, aware, latest)
    stale_td = pd.Timedelta(stale_after) if stale_after is not None else None
    time_dtype = "datetime64[ns, UTC]" if aware else "datetime64[ns]"

    deals: list[DealResult] = []
    visits: list[Visit] = []
    for dp in paths.values():  # already in deal order
        d, vs = _deal_and_visits(
            dp,
            won_names=won_names,
            rank=rank,
            stages=stages,
            as_of=as_of_ts,
            stale_after=stale_td,
        )
        deals.append(d)
        visits.extend(vs)

    out = {
        "visits": _visits_frame(visits, time_dtype),
        "deals": _deals_frame(deals, time_dtype, with_amount=amount is not None),
        "transitions": _transitions_frame(visits, rank),
        "funnel_implied": _funnel_frame(deals, stages, strict=False, weighted=False),
        "funnel_strict": _funnel_frame(deals, stages, strict=True, weighted=False),
        "dwell": _dwell_frame(visits, stages),
        "cycle_time": _cycle_frame(deals, as_of_ts),
        "rows": pd.DataFrame(
            {
                "rows_in": [len(events)],
                "used": [sum(len(dp.path) for dp in paths.values())],
                "removed": [sum(len(dp.removed) for dp in paths.values())],
                "collapsed": [sum(len(dp.collapsed) for dp in paths.values())],
            }
        ),
    }
    if amount is not None:
        out["funnel_implied_amount"] = _funnel_frame(deals, stages, strict=False, weighted=True)
    return out
