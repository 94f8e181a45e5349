"""Synthetic event logs of deals with a known ground truth.

The generator walks every deal through the stages at once, one stage *visit* per step of a
loop (a loop over steps, never over deals). A visit lasts a random dwell; then the deal

* moves back to the stage it came from (``p_back``), stays there for a while and returns;
* or resolves the stage: forward with probability ``advance`` (jumping one stage with
  ``p_skip``; from the last stage forward means won), otherwise it is lost — either by an
  explicit lost event or, with ``p_stale``, by falling silent (stale).

Decorations that leave the ground truth unchanged are inserted into a visit: a re-logged
stage (``p_relog``), a zero dwell so the next event shares the timestamp (``p_tie``), and a
lost event followed by a reopen into the same stage (``p_reopen``). Events after ``as_of``
are cut, which is the only way a deal stays open. A planted dwell effect scales the dwell of
a visit as it is drawn, so it changes times only, never the decisions.

Because the decision to leave a stage forward does not depend on what happened at earlier
stages (unless a planted effect says so), ``advance[s]`` is exactly the conversion of stage
*s* among resolved deals that *entered* it (``skips="strict"``; stale counts as a loss).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidParameterError
from . import _activities as _A
from ._common import DEFAULT_LOST, DEFAULT_WON
from ._common import string_dtype as _string_dtype

__all__ = ["SyntheticTruth", "synthetic"]

DEFAULT_STAGES = ("Lead", "Qualified", "Discovery", "Demo", "Proposal", "Negotiation")
DEFAULT_REGIONS = ("North", "South", "East", "West")
DEFAULT_TEAMS = ("Team A", "Team B", "Team C")
DEFAULT_OWNERS = tuple(f"Owner {i:02d}" for i in range(1, 13))

# Defaults for the default stages; a custom stage list gets the scalar fallbacks.
_DEFAULT_ADVANCE = (0.9, 0.8, 0.75, 0.65, 0.6, 0.7)
_DEFAULT_DWELL_MEDIAN = (3.0, 6.0, 9.0, 10.0, 18.0, 12.0)  # days
_FALLBACK_ADVANCE = 0.7
_FALLBACK_DWELL_MEDIAN = 10.0

_DAY = 86_400  # seconds
_MIN_DWELL = 3_600  # a visit that is not a tie lasts at least an hour
_OUTCOMES = ("open", "won", "lost", "stale")
_OPEN, _WON, _LOST, _STALE = 0, 1, 2, 3
_SEGMENT_COLUMNS = ("region", "owner", "team")


@dataclass(frozen=True, eq=False)
class SyntheticTruth:
    """Ground truth of a synthetic event log: the parameters used and what each deal did.

    Per-stage parameters are dictionaries keyed by stage name, in funnel order.

    Attributes
    ----------
    stages : tuple of str
        Non-terminal stages in funnel order.
    won : str
        Name of the won stage.
    lost : tuple of str
        Names of the lost stages.
    advance : dict of str to float
        Base probability that a deal resolving a stage moves forward. It equals the stage's
        conversion among resolved deals that entered it (``skips="strict"``, stale counted
        as a loss) when no planted effect touches the stage.
    loss : dict of str to float
        ``1 - advance``: probability of a loss (explicit or stale) when resolving the stage.
    p_stale : dict of str to float
        Share of the losses at the stage that fall silent instead of logging a lost event.
    lost_weights : dict of str to dict of str to float
        Per stage, the share of explicit losses logged under each lost name.
    p_skip, p_back, p_relog, p_tie, p_reopen : dict of str to float
        Per-stage probabilities of the edge cases (see :func:`synthetic`).
    dwell_dist : str
        ``"lognormal"`` or ``"gamma"``.
    dwell_median : dict of str to float
        Median dwell per stage, in days.
    dwell_shape : float
        Log-scale sigma (lognormal) or shape *k* (gamma) of the dwell distribution.
    segment_effect, stall, change, dwell_effect, feedback_effect : tuple of dict
        The planted effects, normalised (dates as UTC timestamps, numbers as floats); empty
        when none.
    start, end, as_of : pandas.Timestamp
        Creation window and observation time (UTC).
    n_deals : int
        Number of deals.
    seed : int or None
        Seed of the random generator.
    deals : pandas.DataFrame
        One row per deal, by construction and as of ``as_of``:

        * ``deal_id`` : deal id
        * ``outcome`` : ``"won"``, ``"lost"``, ``"stale"`` (fell silent before ``as_of``)
          or ``"open"``
        * ``outcome_stage`` : the won or lost stage name for won and lost deals, else missing
        * ``last_stage`` : the stage where the deal won, was lost, fell silent, or sits at
          ``as_of``
        * ``furthest_stage`` : the furthest stage (funnel order) the deal entered
        * ``reopened`` : True when the log holds a lost event followed by a reopen
        * ``created`` : time of the deal's first event
        * ``last_event`` : time of the deal's latest event
        * ``n_events`` : number of rows of the deal in the log
        * ``amount``, ``region``, ``owner``, ``team`` : the deal's attributes

    Examples
    --------
    >>> import funnelkit as fk
    >>> events, truth = fk.datasets.synthetic(300, seed=1, return_truth=True)
    >>> truth.advance["Demo"], truth.loss["Demo"]
    (0.65, 0.35)
    >>> len(truth.deals) == truth.n_deals == 300
    True
    >>> log = fk.EventLog(events, deal="deal_id", stage="stage", time="ts",
    ...     stages=list(truth.stages), won=truth.won, lost=list(truth.lost), as_of=truth.as_of)
    >>> log.quality.won == int((truth.deals["outcome"] == "won").sum())
    True
    """

    stages: tuple[str, ...]
    won: str
    lost: tuple[str, ...]
    advance: dict[str, float]
    loss: dict[str, float]
    p_stale: dict[str, float]
    lost_weights: dict[str, dict[str, float]]
    p_skip: dict[str, float]
    p_back: dict[str, float]
    p_relog: dict[str, float]
    p_tie: dict[str, float]
    p_reopen: dict[str, float]
    dwell_dist: str
    dwell_median: dict[str, float]
    dwell_shape: float
    segment_effect: tuple[dict[str, Any], ...]
    stall: tuple[dict[str, Any], ...]
    change: tuple[dict[str, Any], ...]
    dwell_effect: tuple[dict[str, Any], ...]
    start: pd.Timestamp
    end: pd.Timestamp
    as_of: pd.Timestamp
    n_deals: int
    seed: int | None
    deals: pd.DataFrame
    feedback_effect: tuple[dict[str, Any], ...] = ()


def synthetic(
    n_deals: int = 2000,
    *,
    seed: int | None = 0,
    stages: Sequence[str] | None = None,
    won: str = DEFAULT_WON,
    lost: str | Sequence[str] = DEFAULT_LOST,
    start: Any = "2024-01-01",
    end: Any = "2025-06-30",
    as_of: Any = None,
    advance: Any = None,
    loss: Any = None,
    p_stale: Any = 0.2,
    lost_weights: Any = None,
    p_skip: Any = 0.05,
    p_back: Any = 0.05,
    p_relog: Any = 0.15,
    p_tie: Any = 0.03,
    p_reopen: Any = 0.03,
    dwell_median: Any = None,
    dwell_shape: float | None = None,
    dwell_dist: str = "lognormal",
    regions: Sequence[str] = DEFAULT_REGIONS,
    owners: Sequence[str] = DEFAULT_OWNERS,
    teams: Sequence[str] = DEFAULT_TEAMS,
    segment_effect: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    stall: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    change: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    dwell_effect: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    amount_median: float = 25_000.0,
    amount_sigma: float = 1.0,
    return_truth: bool = False,
    history: bool = False,
    activities: bool = False,
    feedback_effect: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> Any:
    """Simulate an event log of deals moving through sales stages, with known ground truth.

    Each deal is created at a uniformly random time between `start` and `end` in the first
    stage and moves through the stages until it is won, lost, falls silent, or is cut off at
    `as_of`. Every resolution of a stage is forward with probability `advance` and a loss
    otherwise, so `advance` is the true conversion of each stage among resolved deals that
    entered it (stale deals counted as losses). The log carries the edge cases a real CRM
    export has — skipped stages, backward moves, re-logged stages, tied timestamps, reopened
    deals, stale and open deals, several lost names — and can hold planted segment
    differences, a stall, a change over time and longer (or shorter) dwell.

    Per-stage parameters accept a scalar (every stage), a sequence in stage order, or a
    mapping ``{stage: value}`` (stages not named keep their default).

    Parameters
    ----------
    n_deals : int, default=2000
        Number of deals. Every deal has at least one event.
    seed : int or None, default=0
        Seed for :func:`numpy.random.default_rng`. The same seed gives the same log.
    stages : sequence of str, default=None
        Non-terminal stages in funnel order. ``None`` means ``("Lead", "Qualified",
        "Discovery", "Demo", "Proposal", "Negotiation")``.
    won : str, default="Won"
        Name of the won (terminal) stage.
    lost : str or sequence of str, default=("Lost", "Disqualified")
        Name(s) of the lost (terminal) stages.
    start, end : str or pandas.Timestamp, default="2024-01-01", "2025-06-30"
        Deals are created uniformly between `start` and `end`. Naive times are UTC.
    as_of : str or pandas.Timestamp, default=None
        Observation time; events after it are not in the log. ``None`` means `end`. Must
        not be before `end`, so that every deal exists at `as_of`.
    advance : float, sequence or mapping, default=None
        Probability that a deal resolving the stage moves forward. ``None`` means
        ``(0.9, 0.8, 0.75, 0.65, 0.6, 0.7)`` for the default stages and 0.7 otherwise, or
        ``1 - loss`` when `loss` is given.
    loss : float, sequence or mapping, default=None
        Probability that a deal resolving the stage is lost (explicitly or by falling
        silent). ``None`` means ``1 - advance``. If both are given they must add up to 1 at
        every stage: a deal is still open only because it is cut off at `as_of`.
    p_stale : float, sequence or mapping, default=0.2
        Share of the losses at the stage where the deal simply stops logging events (no
        lost event) instead. Such a deal is ``"stale"`` in the truth once its dwell has
        run out before `as_of`, and open before that.
    lost_weights : array-like, default=None
        How explicit losses split over the `lost` names: shape ``(n_lost,)`` for every stage
        or ``(n_stages, n_lost)`` per stage; rows are normalised. ``None`` gives the first
        name a share rising from 0.4 at the first stage to 0.95 at the last and splits the
        rest evenly (by default, "Disqualified" is frequent early and rare late).
    p_skip : float, sequence or mapping, default=0.05
        Probability that a forward move jumps over one stage (``s`` to ``s + 2``). Not
        used at the last two stages (a deal is not won by skipping the last stage).
    p_back : float, sequence or mapping, default=0.05
        Probability that leaving the stage is a backward move to the stage the deal came
        from. The deal dwells there (a second visit) and returns, then resolves the stage
        as usual, so backward moves do not change the conversions. Not used at the first
        stage.
    p_relog : float, sequence or mapping, default=0.15
        Probability that a visit logs its stage a second time (a repeat row) during the
        visit; with a tie, at the same timestamp.
    p_tie : float, sequence or mapping, default=0.03
        Probability that a visit has zero dwell, so the next event (forward or terminal,
        never a backward move) has exactly the same timestamp.
    p_reopen : float, sequence or mapping, default=0.03
        Probability that a visit holds a lost event followed by a reopen into the same
        stage, after which the deal carries on; the visit, and the truth, are unchanged.
    dwell_median : float, sequence or mapping, default=None
        Median dwell per stage in days. ``None`` means ``(3, 6, 9, 10, 18, 12)`` for the
        default stages and 10 otherwise. A visit that is not a tie lasts at least an hour.
    dwell_shape : float, default=None
        Sigma of log-dwell (lognormal, default 0.9) or shape *k* (gamma, default 2).
    dwell_dist : {"lognormal", "gamma"}, default="lognormal"
        Distribution of the dwell of a visit.
    regions, owners, teams : sequence of str
        Segment values. Region and owner are drawn uniformly per deal; owner *i* belongs to
        ``teams[i % len(teams)]``. Defaults: four regions, twelve owners, three teams.
    segment_effect : mapping or sequence of mappings, default=None
        Planted segment difference(s), e.g. ``{"column": "team", "value": "Team C",
        "stage": "Demo", "advance": 0.35}``: that segment's advance probability at that
        stage.
    stall : mapping or sequence of mappings, default=None
        Planted stall(s), e.g. ``{"stage": "Proposal", "after_days": 30, "advance": 0.15}``:
        a visit of the stage that lasts more than `after_days` days advances with the
        lower probability.
    change : mapping or sequence of mappings, default=None
        Planted change(s) over time, e.g. ``{"date": "2025-01-01", "stage": "Demo",
        "advance": 0.7}``: visits entering the stage after the date advance with the new
        probability.
    dwell_effect : mapping or sequence of mappings, default=None
        Planted dwell difference(s): the dwell of a matching visit is multiplied by
        ``factor`` (> 0), either for a segment, e.g. ``{"column": "team", "value": "Team C",
        "stage": "Proposal", "factor": 2.0}``, or for visits entering the stage after a
        date, e.g. ``{"date": "2025-01-01", "stage": "Demo", "factor": 2.0}``. Only times
        change: the advance probabilities are untouched (but a stall at the same stage
        sees the longer dwell).
    amount_median, amount_sigma : float, default=25000.0, 1.0
        Per-deal amount: lognormal with this median and log-scale sigma, in cents
        precision. The amount is on every event of the deal.
    return_truth : bool, default=False
        Also return the :class:`SyntheticTruth`.
    history : bool, default=False
        Also return a field history of the deals (close date, amount, forecast category),
        simulated by :func:`field_history` with its own random stream (seeded from
        ``seed``), so the events are the same with or without it. Read it with
        ``log.with_history(history, **fk.datasets.SAMPLE_HISTORY_KWARGS)``.
    activities : bool, default=False
        Also return the deals' activities (last): per visit, calls, emails and meetings
        at steady daily rates (0.25, 0.4, 0.08) at uniform times inside the visit, and a
        survey answer (``score`` 0–10) with probability 0.9 within two days of entering,
        low (0–6) with probability 0.4; plus a call before the first event of 3% of deals
        and an email after the terminal event of 10% of closed deals. Drawn from a random
        stream of their own (seeded from ``seed``): the events are the same with or
        without them. Read them with
        ``log.with_activities(acts, **fk.datasets.SAMPLE_ACTIVITIES_KWARGS)``.
    feedback_effect : mapping or sequence of mappings, default=None
        Planted feedback effect(s), e.g. ``{"stage": "Proposal", "effect": -0.15}``:
        visits of the stage with a low survey answer advance ``effect`` more (negative:
        less) than the stage's other visits — with another answer or none — while the
        stage's overall advance probability, and so the events, stay the same (the answer
        is drawn given the visit's move). Needs ``activities=True``.

    Returns
    -------
    events : pandas.DataFrame
        The event log, rows shuffled, with a fresh ``RangeIndex``:

        * ``deal_id`` : ``"D000001"``, ... (zero-padded to at least six digits)
        * ``stage`` : stage name, won name or lost name
        * ``ts`` : ``datetime64[ns, UTC]``, whole seconds, never after `as_of`
        * ``amount`` : float, constant within a deal
        * ``region``, ``owner``, ``team`` : strings, constant within a deal

        String columns have pandas' default string dtype.
    truth : SyntheticTruth
        Only with ``return_truth=True``.
    history : pandas.DataFrame
        Only with ``history=True``: see :func:`field_history`.
    activities : pandas.DataFrame
        Only with ``activities=True`` (last), rows shuffled: ``deal_id``, ``ts``
        (``datetime64[ns, UTC]``, never after `as_of`), ``kind`` (``"call"``,
        ``"email"``, ``"meeting"``, ``"survey"``), ``score`` (float, the survey answer;
        NaN for other kinds).

    Notes
    -----
    Planted effects on the advance apply in the order segment effect, change, stall: a later
    one overrides an earlier one for the same visit. Dwell effects multiply: a visit matched
    by two of them gets both factors. A dwell effect scales the visit's continuous draw,
    before the rounding to whole seconds, the one-hour minimum and the zero dwell of ties. With planted effects, or with ``skips="implied"``
    (deals that skip a stage count as passing it), a stage's conversion is a mixture and no
    longer equals ``truth.advance``; the planted values are in ``truth``.

    Examples
    --------
    >>> from funnelkit.datasets import synthetic
    >>> events = synthetic(500, seed=1)
    >>> events.columns.tolist()
    ['deal_id', 'stage', 'ts', 'amount', 'region', 'owner', 'team']
    >>> events["deal_id"].nunique()
    500
    >>> str(events["ts"].dtype)
    'datetime64[ns, UTC]'

    Plant a bottleneck and keep the ground truth:

    >>> events, truth = synthetic(
    ...     500, seed=1, stall={"stage": "Proposal", "after_days": 30, "advance": 0.15},
    ...     return_truth=True,
    ... )
    >>> truth.advance["Proposal"], truth.stall[0]["advance"]
    (0.6, 0.15)
    >>> sorted(truth.deals["outcome"].unique())
    ['lost', 'open', 'stale', 'won']

    Double Team C's dwell at Proposal; its median first visit there lasts about twice as
    long as the other teams':

    >>> import funnelkit as fk
    >>> events = synthetic(3000, seed=1, dwell_effect={
    ...     "column": "team", "value": "Team C", "stage": "Proposal", "factor": 2.0})
    >>> d = fk.EventLog(events, **fk.datasets.SAMPLE_KWARGS).dwell(by="team", visits="first")
    >>> median = d[d["stage"] == "Proposal"].set_index("team")["median"].dt.days
    >>> bool(1.6 < median["Team C"] / median.drop("Team C").mean() < 2.5)
    True
    """
    n_deals = _check_count(n_deals)
    stages = _check_stages(stages)
    won, lost = _check_terminals(won, lost, stages)
    n_stages, n_lost = len(stages), len(lost)
    is_default = stages == DEFAULT_STAGES

    start_ts, end_ts = _utc("start", start), _utc("end", end)
    as_of_ts = end_ts if as_of is None else _utc("as_of", as_of)
    if end_ts <= start_ts:
        raise InvalidParameterError(
            f"`end` must be after `start`; got start={start_ts}, end={end_ts}."
        )
    if as_of_ts < end_ts:
        raise InvalidParameterError(
            f"`as_of` must not be before `end` (every deal must exist at `as_of`); got "
            f"as_of={as_of_ts}, end={end_ts}. Move `end` back or `as_of` forward."
        )

    adv, loss_arr = _advance_and_loss(advance, loss, stages, is_default)
    p = {
        name: _probabilities(name, value, stages, default)
        for name, value, default in [
            ("p_stale", p_stale, 0.2),
            ("p_skip", p_skip, 0.05),
            ("p_back", p_back, 0.05),
            ("p_relog", p_relog, 0.15),
            ("p_tie", p_tie, 0.03),
            ("p_reopen", p_reopen, 0.03),
        ]
    }
    weights = _lost_weights(lost_weights, n_stages, n_lost)
    median = _per_stage(
        "dwell_median",
        dwell_median,
        stages,
        _DEFAULT_DWELL_MEDIAN if is_default else _FALLBACK_DWELL_MEDIAN,
    )
    if not np.all(np.isfinite(median) & (median > 0)):
        raise InvalidParameterError(
            f"`dwell_median` must be positive days; got {median.tolist()}."
        )
    dwell_dist, dwell_shape = _check_dwell(dwell_dist, dwell_shape)

    segments = {
        "region": _check_values("regions", regions),
        "owner": _check_values("owners", owners),
        "team": _check_values("teams", teams),
    }
    seg_effects = _effects(
        "segment_effect",
        segment_effect,
        [("column", "value", "stage", "advance")],
        stages,
        _segment_check(segments),
    )
    stalls = _effects(
        "stall", stall, [("stage", "after_days", "advance")], stages, _check_after_days
    )
    changes = _effects("change", change, [("date", "stage", "advance")], stages)
    dwell_effects = _effects(
        "dwell_effect",
        dwell_effect,
        [("column", "value", "stage", "factor"), ("date", "stage", "factor")],
        stages,
        _segment_check(segments),
    )
    feedback = _A.check_feedback(feedback_effect, stages)
    if feedback and not activities:
        raise InvalidParameterError(
            "`feedback_effect` plants an effect of survey answers, which need activities=True."
        )
    amount_median = _check_positive("amount_median", amount_median)
    amount_sigma = _check_positive("amount_sigma", amount_sigma, allow_zero=True)

    rng = np.random.default_rng(seed)
    # the activities' own stream: the events do not depend on `activities`
    act_rng = np.random.default_rng(None if seed is None else [23, seed])
    acts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    closed_at = np.full(n_deals, -1, dtype=np.int64)
    start_s, end_s, as_of_s = (_seconds(x) for x in (start_ts, end_ts, as_of_ts))

    # Per deal: creation time, amount, segments.
    created = start_s + rng.integers(0, end_s - start_s + 1, size=n_deals)
    amount = np.round(amount_median * np.exp(amount_sigma * rng.standard_normal(n_deals)), 2)
    region = rng.integers(len(segments["region"]), size=n_deals)
    owner = rng.integers(len(segments["owner"]), size=n_deals)
    team = (np.arange(len(segments["owner"])) % len(segments["team"]))[owner]
    codes = {"region": region, "owner": owner, "team": team}

    # Stage codes: 0..n_stages-1 the stages, n_stages won, n_stages+1+j the lost name j.
    won_code = n_stages
    last = n_stages - 1
    cum_weights = np.cumsum(weights, axis=1)
    cum_weights[:, -1] = 1.0
    dwell_scale = _dwell_scale(dwell_dist, dwell_shape, median)

    outcome = np.full(n_deals, _OPEN, dtype=np.int8)
    outcome_code = np.full(n_deals, -1, dtype=np.int64)
    last_stage = np.zeros(n_deals, dtype=np.int64)
    reopened = np.zeros(n_deals, dtype=bool)
    empty = np.zeros(0, dtype=np.int64)
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [(empty, empty, empty)]

    def emit(deal: np.ndarray, stage: np.ndarray, ts: np.ndarray) -> None:
        keep = ts <= as_of_s
        rows.append((deal[keep], stage[keep], ts[keep]))

    def lost_name(stage: np.ndarray, u: np.ndarray) -> np.ndarray:
        j = (u[:, None] >= cum_weights[stage]).sum(axis=1)
        return n_stages + 1 + np.minimum(j, n_lost - 1)

    # Active visits. `ret >= 0` marks a detour visit (after a backward move) that returns
    # to stage `ret`; `pred` is the stage the deal came from into its current forward stage.
    deal = np.arange(n_deals)
    stage = np.zeros(n_deals, dtype=np.int64)
    t = created
    pred = np.full(n_deals, -1, dtype=np.int64)
    ret = np.full(n_deals, -1, dtype=np.int64)

    while deal.size:
        m = deal.size
        emit(deal, stage, t)  # entry into the visit; t <= as_of by construction
        u = rng.random((12, m))
        factor = _dwell_factor(stage, deal, t, dwell_effects, codes, stages)
        dwell = _draw_dwell(rng, dwell_dist, dwell_shape, dwell_scale[stage] * factor)
        detour = ret >= 0
        back = ~detour & (pred >= 0) & (u[0] < p["p_back"][stage])
        tie = ~back & (u[1] < p["p_tie"][stage])
        dwell[tie] = 0
        leave = t + dwell

        relog = u[2] < p["p_relog"][stage]
        relog_t = t + np.floor(dwell * (0.05 + 0.9 * u[3])).astype(np.int64)
        emit(deal[relog], stage[relog], relog_t[relog])

        reopen = (dwell >= _MIN_DWELL) & (u[4] < p["p_reopen"][stage])
        lost_t = t + np.floor(dwell * (0.1 + 0.4 * u[5])).astype(np.int64)
        back_t = lost_t + np.floor((leave - lost_t) * (0.2 + 0.6 * u[6])).astype(np.int64)
        reopen_name = lost_name(stage, u[7])
        emit(deal[reopen], reopen_name[reopen], lost_t[reopen])
        emit(deal[reopen], stage[reopen], back_t[reopen])
        # The log shows a reopen once any event of the stage follows the lost event.
        seen = (back_t <= as_of_s) | (relog & (relog_t > lost_t) & (relog_t <= as_of_s))
        reopened[deal[reopen & (lost_t <= as_of_s) & seen]] = True

        a = _effective_advance(
            adv, stage, deal, t, dwell, seg_effects, stalls, changes, codes, stages
        )
        resolve = ~detour & ~back
        forward = resolve & (u[8] < a)
        lose = resolve & ~forward
        stale = lose & (u[9] < p["p_stale"][stage])
        explicit = lose & ~stale
        loss_name = lost_name(stage, u[10])
        if activities:
            acts.append(
                _A.visit_touches(act_rng, deal, stage, t, leave, a, forward, resolve, feedback)
            )

        # Cut off at as_of: open, unless a reopen's lost event is the last thing logged.
        cut = leave > as_of_s
        pending = cut & reopen & (lost_t <= as_of_s) & ~seen
        outcome[deal[cut]] = _OPEN
        outcome[deal[pending]] = _LOST
        outcome_code[deal[pending]] = reopen_name[pending]

        wins = ~cut & forward & (stage == last)
        emit(deal[wins], np.full(int(wins.sum()), won_code), leave[wins])
        outcome[deal[wins]] = _WON
        outcome_code[deal[wins]] = won_code
        losses = ~cut & explicit
        emit(deal[losses], loss_name[losses], leave[losses])
        outcome[deal[losses]] = _LOST
        outcome_code[deal[losses]] = loss_name[losses]
        outcome[deal[~cut & stale]] = _STALE
        closed_at[deal[wins]] = leave[wins]
        closed_at[deal[losses]] = leave[losses]
        last_stage[deal] = stage

        skip = (stage + 2 <= last) & (u[11] < p["p_skip"][stage])
        step = np.where(skip, 2, 1)
        go_on = ~cut & (back | detour | (forward & (stage < last)))
        new_stage = np.where(back, pred, np.where(detour, ret, stage + step))
        new_pred = np.where(back | detour, pred, stage)
        new_ret = np.where(back, stage, -1)
        deal, stage, t = deal[go_on], new_stage[go_on], leave[go_on]
        pred, ret = new_pred[go_on], new_ret[go_on]

    row_deal = np.concatenate([r[0] for r in rows])
    row_stage = np.concatenate([r[1] for r in rows])
    row_ts = np.concatenate([r[2] for r in rows])
    order = rng.permutation(row_deal.size)
    row_deal, row_stage, row_ts = row_deal[order], row_stage[order], row_ts[order]

    names = _strings([*stages, won, *lost])
    deal_ids = _deal_ids(n_deals)
    seg_names = {k: _strings(v) for k, v in segments.items()}
    events = pd.DataFrame(
        {
            "deal_id": deal_ids.take(row_deal),
            "stage": names.take(row_stage),
            "ts": _timestamps(row_ts),
            "amount": amount[row_deal],
            **{k: seg_names[k].take(codes[k][row_deal]) for k in _SEGMENT_COLUMNS},
        }
    )
    fields = None
    if history:  # a stream of its own: the events do not depend on `history`
        from ._history import field_history

        fields = field_history(
            events, seed=None if seed is None else [22, seed], won=won, lost=lost
        )
    extra: tuple[pd.DataFrame, ...] = () if fields is None else (fields,)
    if activities:
        acts.append(_A.edge_touches(act_rng, created, closed_at))
        extra += (_A.frame(act_rng, acts, deal_ids, as_of_s, _timestamps, _strings),)
    if not return_truth:
        return (events, *extra) if extra else events

    on_stage = row_stage < n_stages
    furthest = np.full(n_deals, -1, dtype=np.int64)
    np.maximum.at(furthest, row_deal[on_stage], row_stage[on_stage])
    last_event = np.full(n_deals, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last_event, row_deal, row_ts)
    outcome_names = _strings([*stages, won, *lost, None])  # code -1 -> missing
    deals = pd.DataFrame(
        {
            "deal_id": deal_ids,
            "outcome": _strings(_OUTCOMES).take(outcome),
            "outcome_stage": outcome_names.take(outcome_code),
            "last_stage": names.take(last_stage),
            "furthest_stage": names.take(furthest),
            "reopened": reopened,
            "created": _timestamps(created),
            "last_event": _timestamps(last_event),
            "n_events": np.bincount(row_deal, minlength=n_deals),
            "amount": amount,
            **{k: seg_names[k].take(codes[k]) for k in _SEGMENT_COLUMNS},
        }
    )

    def by_stage(values: np.ndarray) -> dict[str, float]:
        return {s: float(v) for s, v in zip(stages, values, strict=True)}

    truth = SyntheticTruth(
        stages=stages,
        won=won,
        lost=lost,
        advance=by_stage(adv),
        loss=by_stage(loss_arr),
        p_stale=by_stage(p["p_stale"]),
        lost_weights={
            s: {name: float(w) for name, w in zip(lost, row, strict=True)}
            for s, row in zip(stages, weights, strict=True)
        },
        p_skip=by_stage(p["p_skip"]),
        p_back=by_stage(p["p_back"]),
        p_relog=by_stage(p["p_relog"]),
        p_tie=by_stage(p["p_tie"]),
        p_reopen=by_stage(p["p_reopen"]),
        dwell_dist=dwell_dist,
        dwell_median=by_stage(median),
        dwell_shape=dwell_shape,
        segment_effect=tuple(_public(e) for e in seg_effects),
        stall=tuple(_public(e) for e in stalls),
        change=tuple(_public(e) for e in changes),
        dwell_effect=tuple(_public(e) for e in dwell_effects),
        feedback_effect=tuple({"stage": stages[f.stage], "effect": f.effect} for f in feedback),
        start=start_ts,
        end=end_ts,
        as_of=as_of_ts,
        n_deals=n_deals,
        seed=seed,
        deals=deals,
    )
    return (events, truth, *extra)


# --------------------------------------------------------------------------- simulation


def _effective_advance(
    adv: np.ndarray,
    stage: np.ndarray,
    deal: np.ndarray,
    t: np.ndarray,
    dwell: np.ndarray,
    seg_effects: Sequence[Mapping[str, Any]],
    stalls: Sequence[Mapping[str, Any]],
    changes: Sequence[Mapping[str, Any]],
    codes: Mapping[str, np.ndarray],
    stages: Sequence[str],
) -> np.ndarray:
    """Advance probability of each visit after the planted effects (segment, change, stall)."""
    a = adv[stage]
    for e in seg_effects:
        hit = (stage == stages.index(e["stage"])) & (codes[e["column"]][deal] == e["_code"])
        a = np.where(hit, e["advance"], a)
    for e in changes:
        hit = (stage == stages.index(e["stage"])) & (t > _seconds(e["date"]))
        a = np.where(hit, e["advance"], a)
    for e in stalls:
        hit = (stage == stages.index(e["stage"])) & (dwell > e["after_days"] * _DAY)
        a = np.where(hit, e["advance"], a)
    return a


def _dwell_factor(
    stage: np.ndarray,
    deal: np.ndarray,
    t: np.ndarray,
    dwell_effects: Sequence[Mapping[str, Any]],
    codes: Mapping[str, np.ndarray],
    stages: Sequence[str],
) -> np.ndarray:
    """Factor on the dwell of each visit after the planted dwell effects (they multiply)."""
    factor = np.ones(stage.size)
    for e in dwell_effects:
        hit = stage == stages.index(e["stage"])
        if "date" in e:
            hit &= t > _seconds(e["date"])
        else:
            hit &= codes[e["column"]][deal] == e["_code"]
        factor[hit] *= e["factor"]
    return factor


def _public(effect: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in effect.items() if not k.startswith("_")}


def _dwell_scale(dist: str, shape: float, median: np.ndarray) -> np.ndarray:
    """Per-stage scale giving the requested median: lognormal median, gamma theta."""
    if dist == "lognormal":
        return median
    from scipy.special import gammaincinv  # only the gamma option needs scipy

    return median / gammaincinv(shape, 0.5)


def _draw_dwell(
    rng: np.random.Generator, dist: str, shape: float, scale: np.ndarray
) -> np.ndarray:
    """Dwell of each visit in whole seconds, at least `_MIN_DWELL`."""
    if dist == "lognormal":
        days = scale * np.exp(shape * rng.standard_normal(scale.size))
    else:
        days = rng.gamma(shape, scale)
    return np.maximum(np.rint(days * _DAY).astype(np.int64), _MIN_DWELL)


def _seconds(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000_000)


def _timestamps(seconds: np.ndarray) -> pd.DatetimeIndex:
    ns = np.asarray(seconds, dtype=np.int64) * 1_000_000_000
    return pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC")


def _deal_ids(n: int) -> pd.Index:
    """``"D000001"``, ... as a string Index, built from digits without a Python loop."""
    width = max(6, len(str(n)))
    digits = (np.arange(1, n + 1)[:, None] // 10 ** np.arange(width - 1, -1, -1)) % 10
    chars = np.empty((n, width + 1), dtype=np.uint8)
    chars[:, 0] = ord("D")
    chars[:, 1:] = digits + ord("0")
    return _strings(chars.view(f"S{width + 1}").ravel().astype(f"U{width + 1}"))


def _strings(values: Any) -> pd.Index:
    """An Index of strings in pandas' default string dtype."""
    return pd.Index(np.asarray(values, dtype=object), dtype=_string_dtype())


# --------------------------------------------------------------------------- validation


def _check_count(n_deals: Any) -> int:
    if isinstance(n_deals, bool) or not isinstance(n_deals, (int, np.integer)):
        raise InvalidParameterError(f"`n_deals` must be an int; got {type(n_deals).__name__}.")
    if n_deals < 0:
        raise InvalidParameterError(f"`n_deals` must be >= 0; got {n_deals}.")
    return int(n_deals)


def _check_values(name: str, values: Any) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"`{name}` must be a sequence of strings; got {values!r}.")
    out = tuple(values)
    if not out or not all(isinstance(v, str) for v in out) or len(set(out)) != len(out):
        raise ValueError(f"`{name}` must be distinct, non-empty strings; got {list(out)}.")
    return out


def _check_stages(stages: Sequence[str] | None) -> tuple[str, ...]:
    return DEFAULT_STAGES if stages is None else _check_values("stages", stages)


def _check_terminals(
    won: str, lost: str | Sequence[str], stages: tuple[str, ...]
) -> tuple[str, tuple[str, ...]]:
    if not isinstance(won, str):
        raise InvalidParameterError(f"`won` must be a string; got {won!r}.")
    lost_names = _check_values("lost", (lost,) if isinstance(lost, str) else lost)
    clash = {won, *lost_names} & set(stages)
    if won in lost_names or clash:
        raise ValueError(
            f"`won`, `lost` and `stages` must not share names; got won={won!r}, "
            f"lost={list(lost_names)}, stages={list(stages)}."
        )
    return won, lost_names


def _utc(name: str, value: Any) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a timestamp; could not parse {value!r}.") from exc
    if ts is pd.NaT:
        raise ValueError(f"`{name}` must be a timestamp; got {value!r}.")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.as_unit("ns")


def _per_stage(name: str, value: Any, stages: tuple[str, ...], default: Any) -> np.ndarray:
    """A per-stage float array from a scalar, a sequence in stage order, or a mapping."""
    n = len(stages)
    if value is None:
        value = default
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in stages]
        if unknown:
            raise ValueError(
                f"`{name}` names unknown stages {unknown}; the stages are {list(stages)}."
            )
        out = _per_stage(name, default, stages, default)
        for key, v in value.items():
            out[stages.index(key)] = _float(name, v)
        return out
    if np.ndim(value) == 0:
        return np.full(n, _float(name, value))
    try:
        out = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must hold numbers; got {value!r}.") from exc
    if out.shape != (n,):
        raise ValueError(
            f"`{name}` must have one value per stage ({n}: {list(stages)}); got shape "
            f"{out.shape}. Pass a scalar, a sequence in stage order, or a mapping."
        )
    return out.copy()


def _float(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must hold numbers; got {value!r}.") from exc


def _probabilities(name: str, value: Any, stages: tuple[str, ...], default: Any) -> np.ndarray:
    out = _per_stage(name, value, stages, default)
    _check_unit(name, out, stages)
    return out


def _check_unit(name: str, values: np.ndarray, stages: tuple[str, ...]) -> None:
    bad = ~(np.isfinite(values) & (values >= 0) & (values <= 1))
    if bad.any():
        found = {s: v for s, v, b in zip(stages, values.tolist(), bad, strict=True) if b}
        raise ValueError(f"`{name}` must be probabilities in [0, 1]; got {found}.")


def _advance_and_loss(
    advance: Any, loss: Any, stages: tuple[str, ...], is_default: bool
) -> tuple[np.ndarray, np.ndarray]:
    default = _DEFAULT_ADVANCE if is_default else _FALLBACK_ADVANCE
    if advance is None and loss is not None:
        loss_arr = _probabilities("loss", loss, stages, 1 - np.asarray(default))
        return 1 - loss_arr, loss_arr
    adv = _probabilities("advance", advance, stages, default)
    if loss is None:
        return adv, 1 - adv
    loss_arr = _probabilities("loss", loss, stages, 1 - adv)
    off = np.abs(adv + loss_arr - 1) > 1e-9
    if off.any():
        found = {s: (a, b) for s, a, b, o in zip(stages, adv, loss_arr, off, strict=True) if o}
        raise ValueError(
            "`advance` + `loss` must be 1 at every stage (a deal stays open only by being "
            f"cut off at `as_of`; use `p_stale` for silent losses); got (advance, loss) = "
            f"{found}. Pass only one of them."
        )
    return adv, loss_arr


def _lost_weights(weights: Any, n_stages: int, n_lost: int) -> np.ndarray:
    if weights is None:
        first = np.linspace(0.4, 0.95, n_stages) if n_lost > 1 else np.ones(n_stages)
        rest = np.repeat(((1 - first) / max(n_lost - 1, 1))[:, None], n_lost - 1, axis=1)
        return np.column_stack([first, rest])
    try:
        w = np.asarray(weights, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"`lost_weights` must hold numbers; got {weights!r}.") from exc
    if w.shape == (n_lost,):
        w = np.broadcast_to(w, (n_stages, n_lost))
    if w.shape != (n_stages, n_lost):
        raise InvalidParameterError(
            f"`lost_weights` must have shape ({n_lost},) or ({n_stages}, {n_lost}) "
            f"(stages x lost names); got shape {w.shape}."
        )
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and np.all(w.sum(axis=1) > 0)):
        raise InvalidParameterError(
            f"`lost_weights` must be non-negative with a positive sum per stage; got {w}."
        )
    return w / w.sum(axis=1, keepdims=True)


def _check_dwell(dist: str, shape: float | None) -> tuple[str, float]:
    defaults = {"lognormal": 0.9, "gamma": 2.0}
    if dist not in defaults:
        raise InvalidParameterError(f"`dwell_dist` must be 'lognormal' or 'gamma'; got {dist!r}.")
    value = defaults[dist] if shape is None else _check_positive("dwell_shape", shape)
    return dist, value


def _check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    x = _float(name, value)
    if not np.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise ValueError(f"`{name}` must be a positive number; got {value!r}.")
    return x


def _check_after_days(name: str, effect: dict[str, Any]) -> None:
    effect["after_days"] = _check_positive(f"{name}['after_days']", effect["after_days"])


def _effects(
    name: str,
    value: Any,
    keys: Sequence[tuple[str, ...]],
    stages: tuple[str, ...],
    check: Any = None,
) -> tuple[dict[str, Any], ...]:
    """Normalise one effect mapping or a sequence of them.

    Each effect has exactly one of the key sets `keys`. The stage is checked, ``advance``
    must be a probability, ``factor`` a positive number, ``date`` a timestamp; `check`
    does the rest.
    """
    if value is None:
        return ()
    items = [value] if isinstance(value, Mapping) else value
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise TypeError(f"`{name}` must be a mapping or a sequence of mappings; got {value!r}.")
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            raise TypeError(f"`{name}` must be a mapping or a sequence of mappings; got {item!r}.")
        match = [k for k in keys if set(item) == set(k)]
        if not match:
            wanted = " or ".join(str(list(k)) for k in keys)
            raise ValueError(
                f"`{name}` needs exactly the keys {wanted}; got {sorted(item)}. "
                f"Example: {_EXAMPLES[name]}."
            )
        effect = {k: item[k] for k in match[0]}
        if effect["stage"] not in stages:
            raise ValueError(
                f"`{name}['stage']` must be one of {list(stages)}; got {effect['stage']!r}."
            )
        if "advance" in effect:
            effect["advance"] = _float(f"{name}['advance']", effect["advance"])
            _check_unit(f"{name}['advance']", np.array([effect["advance"]]), (effect["stage"],))
        if "factor" in effect:
            effect["factor"] = _check_positive(f"{name}['factor']", effect["factor"])
        if "date" in effect:
            effect["date"] = _utc(f"{name}['date']", effect["date"])
        if check is not None:
            check(name, effect)
        out.append(effect)
    return tuple(out)


def _segment_check(segments: Mapping[str, tuple[str, ...]]) -> Any:
    """A check of an effect's ``column`` and ``value``, storing the value's code as ``_code``."""

    def check(name: str, effect: dict[str, Any]) -> None:
        if "column" not in effect:
            return
        column = effect["column"]
        if column not in segments:
            raise ValueError(
                f"`{name}['column']` must be one of {list(segments)}; got {column!r}."
            )
        if effect["value"] not in segments[column]:
            raise ValueError(
                f"`{name}['value']` must be one of the {column} values "
                f"{list(segments[column])}; got {effect['value']!r}."
            )
        effect["_code"] = segments[column].index(effect["value"])

    return check


_EXAMPLES = {
    "segment_effect": '{"column": "team", "value": "Team C", "stage": "Demo", "advance": 0.35}',
    "stall": '{"stage": "Proposal", "after_days": 30, "advance": 0.15}',
    "change": '{"date": "2025-01-01", "stage": "Demo", "advance": 0.7}',
    "dwell_effect": '{"column": "team", "value": "Team C", "stage": "Proposal", "factor": 2.0}'
    ' or {"date": "2025-01-01", "stage": "Demo", "factor": 2.0}',
}
