"""Synthetic activities (calls, emails, meetings, survey responses) drawn visit by visit
inside :func:`funnelkit.datasets.synthetic`, and the bundled sample's activities.

The touches come from a random stream of their own, so an event log is the same with or
without ``activities=True``. A planted feedback effect does not change the events either:
the survey answer of a visit at the effect's stage is drawn *after* the visit's move is
decided, from the conditional distribution that makes low-score visits advance exactly
``effect`` less (in probability) than the stage's other visits (see :func:`_low_given_move`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from ._common import string_dtype as _string_dtype

__all__ = ["SAMPLE_ACTIVITIES_KWARGS", "load_sample_activities"]

_DAY = 86_400  # seconds
#: touches per day in a visit (Poisson), per kind
RATES = {"call": 0.25, "email": 0.4, "meeting": 0.08}
#: share of visits with a survey response, and the share of low answers (score <= 6)
P_SURVEY = 0.9
P_LOW = 0.4
LOW_MAX = 6
#: scores of a low answer (uniform) and of the other answers (these weights)
_LOW_SCORES = np.arange(0, LOW_MAX + 1)
_HIGH_SCORES = np.array([7, 8, 9, 10])
_HIGH_WEIGHTS = np.array([0.35, 0.3, 0.2, 0.15])
#: share of deals with a call before their first event, and of closed deals with an email
#: after their terminal event
P_BEFORE = 0.03
P_AFTER = 0.1
_SURVEY_WITHIN = 2 * _DAY  # a survey answer comes within two days of entering the visit

SAMPLE_ACTIVITIES_KWARGS: dict[str, Any] = {
    "deal": "deal_id",
    "time": "ts",
    "kind": "kind",
    "value": "score",
}
"""Keywords of :meth:`funnelkit.EventLog.with_activities` for the sample's activities
(see :func:`load_sample_activities`)."""

_COLUMNS = ["deal_id", "ts", "kind", "score"]


@dataclass(frozen=True)
class Feedback:
    """A planted feedback effect: visits of ``stage`` (a code) with a low survey answer
    advance ``effect`` more (negative: less) than the stage's other visits."""

    stage: int
    effect: float


def check_feedback(value: Any, stages: Sequence[str]) -> tuple[Feedback, ...]:
    """``feedback_effect`` of :func:`synthetic` as :class:`Feedback` items."""
    if value is None:
        return ()
    items = [value] if isinstance(value, Mapping) else value
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise TypeError(
            f"`feedback_effect` must be a mapping or a sequence of mappings; got {value!r}."
        )
    out = []
    for item in items:
        if not isinstance(item, Mapping) or set(item) != {"stage", "effect"}:
            raise ValueError(
                "`feedback_effect` needs exactly the keys ['stage', 'effect']; got "
                f"{item!r}. Example: {{'stage': 'Proposal', 'effect': -0.15}}."
            )
        if item["stage"] not in stages:
            raise ValueError(
                f"`feedback_effect['stage']` must be one of {list(stages)}; got {item['stage']!r}."
            )
        eff = item["effect"]
        if isinstance(eff, bool) or not isinstance(eff, (int, float)) or not -1 < eff < 1:
            raise ValueError(
                f"`feedback_effect['effect']` must be a number between -1 and 1 (a "
                f"difference of advance probabilities); got {eff!r}."
            )
        out.append(Feedback(list(stages).index(item["stage"]), float(eff)))
    return tuple(out)


def _low_given_move(a: np.ndarray, forward: np.ndarray, effect: float) -> np.ndarray:
    """P(low answer | the visit's move) so that P(low) = π and P(advance | low) − P(advance |
    not low) = ``effect`` (π = P_SURVEY·P_LOW, ``a`` the visit's advance probability):
    P(advance | low) = a + (1 − π)·effect, P(advance | other) = a − π·effect (exact while
    both stay in [0, 1]; clipped otherwise). Visits with another answer and visits
    without one then advance alike (their split does not depend on the move), so low
    answers advance ``effect`` more than either."""
    pi = P_SURVEY * P_LOW
    p_low_adv = np.clip(a + (1 - pi) * effect, 0.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        given_fwd = pi * p_low_adv / a
        given_not = pi * (1 - p_low_adv) / (1 - a)
    out = np.where(forward, given_fwd, given_not)
    return np.clip(np.where(np.isfinite(out), out, pi), 0.0, 1.0)


def visit_touches(
    rng: np.random.Generator,
    deal: np.ndarray,
    stage: np.ndarray,
    t: np.ndarray,
    leave: np.ndarray,
    a: np.ndarray,
    forward: np.ndarray,
    resolve: np.ndarray,
    feedback: tuple[Feedback, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Touches of the visits ``(deal, stage, t, leave)``: (deal, time s, kind code, score).

    Kind codes index ``[*RATES, "survey"]``. Calls, emails and meetings: Poisson counts
    at the kind's daily rate over the visit, at uniform times inside it. A survey answer
    with probability :data:`P_SURVEY`, within two days of entering (or half the visit,
    if shorter); low (0–6) with probability :data:`P_LOW`, else 7–10; at a feedback
    stage the category of a resolving visit depends on its move (:func:`_low_given_move`).
    """
    m = deal.size
    dur = leave - t
    parts = []
    for k, rate in enumerate(RATES.values()):
        n = rng.poisson(rate * dur / _DAY)
        rep = np.repeat(np.arange(m), n)
        when = t[rep] + np.floor(rng.random(rep.size) * dur[rep]).astype(np.int64)
        parts.append((deal[rep], when, np.full(rep.size, k), np.full(rep.size, np.nan)))
    u = rng.random((4, m))
    # the answer's category (low / other answer / none) given the move: low with
    # P(low | move); the rest split between an answer and none independently of the move
    pi = P_SURVEY * P_LOW
    p_low = np.full(m, pi)
    for fb in feedback:
        hit = resolve & (stage == fb.stage)
        p_low[hit] = _low_given_move(a[hit], forward[hit], fb.effect)
    low = u[1] < p_low
    survey = low | (u[0] < P_SURVEY * (1 - P_LOW) / (1 - pi))
    score = np.where(
        low,
        _LOW_SCORES[np.minimum((u[2] * _LOW_SCORES.size).astype(np.int64), LOW_MAX)],
        _HIGH_SCORES[np.searchsorted(np.cumsum(_HIGH_WEIGHTS), u[3] * _HIGH_WEIGHTS.sum())],
    ).astype(np.float64)
    lag = np.minimum(np.floor(rng.random(m) * _SURVEY_WITHIN), dur // 2).astype(np.int64)
    s = np.flatnonzero(survey)
    parts.append((deal[s], t[s] + lag[s], np.full(s.size, len(RATES)), score[s]))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))  # type: ignore[return-value]


def edge_touches(
    rng: np.random.Generator, created: np.ndarray, closed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Touches outside the deals' paths: a call 1–10 days before a deal's first event
    (:data:`P_BEFORE` of deals) and an email 1–10 days after a closed deal's terminal
    event (:data:`P_AFTER`; ``closed`` is its time, -1 when not closed)."""
    n = created.size
    u = rng.random((4, n))
    before = np.flatnonzero(u[0] < P_BEFORE)
    after = np.flatnonzero((closed >= 0) & (u[1] < P_AFTER))
    t_b = created[before] - (_DAY + np.floor(u[2][before] * 9 * _DAY)).astype(np.int64)
    t_a = closed[after] + (_DAY + np.floor(u[3][after] * 9 * _DAY)).astype(np.int64)
    return (
        np.concatenate([before, after]),
        np.concatenate([t_b, t_a]),
        np.concatenate([np.zeros(before.size, np.int64), np.ones(after.size, np.int64)]),
        np.full(before.size + after.size, np.nan),
    )


def frame(
    rng: np.random.Generator,
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    deal_ids: pd.Index,
    as_of_s: int,
    timestamps: Any,
    strings: Any,
) -> pd.DataFrame:
    """The activities table (touches up to ``as_of``), rows shuffled."""
    deal, when, kind, score = (np.concatenate([p[i] for p in parts]) for i in range(4))
    keep = when <= as_of_s
    deal, when, kind, score = deal[keep], when[keep], kind[keep], score[keep]
    order = rng.permutation(deal.size)
    kinds = strings([*RATES, "survey"])
    return pd.DataFrame(
        {
            "deal_id": deal_ids.take(deal[order]),
            "ts": timestamps(when[order]),
            "kind": kinds.take(kind[order].astype(np.int64)),
            "score": score[order],
        }
    )


def load_sample_activities() -> pd.DataFrame:
    """Load the activities of the bundled sample (:func:`load_sample`).

    Simulated with the sample's events by :func:`funnelkit.datasets.synthetic` with
    ``activities=True`` and a planted feedback effect: at **Proposal**, visits whose
    survey answer is low (score 0–6) advance 15 points less than the stage's other
    visits (``feedback_effect={"stage": "Proposal", "effect": -0.15}``; see
    ``scripts/make_sample.py``). Calls, emails and meetings happen at steady daily rates
    during every visit, unrelated to the outcome.

    Returns
    -------
    pandas.DataFrame
        One row per touch, in no particular order:

        * ``deal_id`` : the deal, as in :func:`load_sample`
        * ``ts`` : ``datetime64[ns, UTC]``, when the touch happened
        * ``kind`` : ``"call"``, ``"email"``, ``"meeting"`` or ``"survey"``
        * ``score`` : float, the survey answer (0–10); missing for other kinds

    Examples
    --------
    >>> import funnelkit as fk
    >>> acts = fk.datasets.load_sample_activities()
    >>> acts.columns.tolist()
    ['deal_id', 'ts', 'kind', 'score']
    >>> sorted(acts["kind"].unique())
    ['call', 'email', 'meeting', 'survey']
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> log = log.with_activities(acts, **fk.datasets.SAMPLE_ACTIVITIES_KWARGS)
    >>> len(log.activities) == len(acts)
    True
    """

    source = resources.files(__package__).joinpath("sample_activities.csv")
    with source.open("rb") as f:
        out = pd.read_csv(
            f,
            encoding="utf-8",
            dtype={"deal_id": str, "ts": str, "kind": str, "score": "float64"},
            keep_default_na=False,
            na_values={"score": [""]},
        )
    out["ts"] = pd.to_datetime(out["ts"], utc=True, format="ISO8601").astype("datetime64[ns, UTC]")
    out[["deal_id", "kind"]] = out[["deal_id", "kind"]].astype(_string_dtype())
    return out[_COLUMNS]
