"""Stage phases and post-sale stages (``EventLog(phases=..., post_sale=...)``).

* ``phases``: named mappings from the funnel's stages to groups — the customer's decision
  process, the seller's process — checked against the log's stages here; a phase log
  (:meth:`funnelkit.EventLog.by_phase`) is the log rebuilt from the same input rows with the
  stage names mapped to their phases (:func:`phase_settings`), so consecutive events in one
  phase collapse into one visit like any repeated stage.
* ``post_sale``: stages a deal enters after it was won (delivery, after-sales). An event at
  such a stage does not reopen the deal: it is set aside before the path rules
  (:func:`split_post_sale`) and listed by :meth:`funnelkit.EventLog.post_sale`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _validate as V
from .errors import InvalidParameterError

__all__ = [
    "PostSaleSplit",
    "check_phases",
    "check_post_sale",
    "close_match",
    "phase_order",
    "phase_settings",
    "split_post_sale",
]

#: the pseudo-stage of stale losses: no phase may take its name
_STALE = "stale"


def close_match(name: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'Lead'?)`` for a near miss, else ``""``."""
    near = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def check_post_sale(
    post_sale: str | Sequence[str] | None,
    declared: Sequence[str] | None,
    won: Sequence[str],
    lost: Sequence[str],
) -> list[str]:
    """The post-sale stage names, refused when they are also funnel stages or outcomes."""
    if post_sale is None:
        return []
    names = [post_sale] if isinstance(post_sale, str) else list(post_sale)
    if not all(isinstance(nm, str) and nm for nm in names):
        raise InvalidParameterError(
            "Parameter `post_sale` must be a stage name or a list of stage names (non-empty "
            f"strings); got {post_sale!r}."
        )
    dup = sorted({nm for nm in names if names.count(nm) > 1})
    if dup:
        raise InvalidParameterError(f"Parameter `post_sale` lists {dup} more than once.")
    if not won:
        raise InvalidParameterError(
            "Parameter `post_sale` needs a `won` stage: post-sale events are the events after "
            "a deal was won. Name the won stage(s) with won=..."
        )
    for other, label in ((won, "`won`"), (lost, "`lost`"), (declared or [], "`stages`")):
        both = [nm for nm in names if nm in set(other)]
        if both:
            raise InvalidParameterError(
                f"Parameter `post_sale`: {both} are also in {label}. A post-sale stage is "
                "entered after the deal is won and is neither a funnel stage nor an outcome; "
                "list it in one place only."
            )
    return names


def check_phases(
    phases: Mapping[Any, Any] | None,
    stages: Sequence[str],
    post_sale: Sequence[str],
    won: Sequence[str],
    lost: Sequence[str],
) -> dict[str, dict[str, str]]:
    """The phase mappings, checked against the log's stages.

    Every funnel stage must be mapped (a stage may map to its own name); post-sale stages
    may be mapped to post-sale phases or left out (they keep their names). Outcomes are not
    mapped, and no phase may take an outcome's name or ``"stale"``.
    """
    if phases is None:
        return {}
    if not isinstance(phases, Mapping):
        raise InvalidParameterError(
            "Parameter `phases` must be a mapping of name → {stage: phase}, e.g. "
            '{"decision": {"Lead": "need recognition", ...}}; got '
            f"{type(phases).__name__}."
        )
    terminal = [*won, *lost]
    known = [*stages, *post_sale]
    out: dict[str, dict[str, str]] = {}
    for name, mapping in phases.items():
        where = f"phases[{name!r}]"
        if not isinstance(name, str) or not name:
            raise InvalidParameterError(
                f"Parameter `phases`: names must be non-empty strings; got {name!r}."
            )
        if not isinstance(mapping, Mapping) or not mapping:
            raise InvalidParameterError(
                f"Parameter `{where}` must be a non-empty mapping of stage → phase name; got "
                f"{mapping!r}."
            )
        bad_values = [v for v in mapping.values() if not isinstance(v, str) or not v]
        if bad_values:
            raise InvalidParameterError(
                f"Parameter `{where}`: phase names must be non-empty strings; got "
                f"{bad_values[:5]}."
            )
        keys = [str(k) for k in mapping]
        outcomes = [k for k in keys if k in terminal]
        if outcomes:
            raise InvalidParameterError(
                f"Parameter `{where}` maps the outcomes {outcomes}; outcomes (won/lost) are not "
                "phases: they stay as they are in every phase log. Remove them from the "
                "mapping."
            )
        unknown = [k for k in keys if k not in known]
        if unknown:
            hints = "; ".join(f"{k!r}{close_match(k, known)}" for k in unknown[:10])
            raise InvalidParameterError(
                f"Parameter `{where}`: {len(unknown)} name(s) are not stages of the log: "
                f"{hints}. The stages are {list(stages)}"
                + (f" and the post-sale stages {list(post_sale)}" if post_sale else "")
                + " (names after `stage_map`)."
            )
        m = {str(k): str(v) for k, v in mapping.items()}
        unmapped = [st for st in stages if st not in m]
        if unmapped:
            raise InvalidParameterError(
                f"Parameter `{where}` leaves {len(unmapped)} stage(s) unmapped: {unmapped}. "
                "Map every stage of the funnel to a phase (a stage may map to its own name "
                f'to stay a phase of its own, e.g. {{"{unmapped[0]}": "{unmapped[0]}"}}).'
            )
        funnel_phases = {m[st] for st in stages}
        ps_phases = {m.get(st, st) for st in post_sale}
        clash = sorted((funnel_phases | ps_phases) & {*terminal, _STALE})
        if clash:
            raise InvalidParameterError(
                f"Parameter `{where}`: phase names {clash} are outcome names (won/lost) or "
                "'stale'; a phase log could not tell the phase from the outcome. Rename the "
                "phases."
            )
        mixed = sorted(funnel_phases & ps_phases)
        if mixed:
            raise InvalidParameterError(
                f"Parameter `{where}`: phases {mixed} hold both funnel stages and post-sale "
                "stages (or a post-sale stage's own name); post-sale events come after the "
                "deal is won and cannot share a phase with the funnel. Name them apart."
            )
        out[name] = m
    return out


def phase_order(mapping: Mapping[str, str], stages: Sequence[str]) -> list[str]:
    """Funnel phases in the order of the first position of their stages."""
    return list(dict.fromkeys(mapping[st] for st in stages))


def phase_settings(
    settings: Mapping[str, Any],
    mapping: Mapping[str, str],
    stages: Sequence[str],
    post_sale: Sequence[str],
    raw_names: Sequence[str],
) -> dict[str, Any]:
    """The keywords of the phase log: the log's own, with ``stage_map`` composed with the
    phase mapping (raw name → stage → phase), ``stages`` the phase order, ``post_sale`` the
    post-sale phases, and no ``phases``.

    ``raw_names`` are the distinct names of the stage column before ``stage_map``: a name
    that is no stage of the log (dropped as ``unknown_stage`` under ``errors="drop"``) but
    equals a phase name is mapped to a name no phase has, so it stays an unknown stage."""
    stage_map = {str(k): str(v) for k, v in (settings.get("stage_map") or {}).items()}
    outcomes = {*settings["won"], *settings["lost"]}
    own = {*stages, *post_sale, *outcomes}
    phase_names = set(mapping.values())
    composed: dict[str, str] = {}
    for raw in dict.fromkeys([*raw_names, *stage_map, *stages, *post_sale]):
        st = stage_map.get(raw, raw)
        if st in mapping:
            new = mapping[st]
        elif st not in own and st in phase_names:
            new = f"{st} (not a stage of the log)"
        else:
            new = st
        if new != raw:
            composed[raw] = new
    out = dict(settings)
    out["stage_map"] = composed
    out["stages"] = phase_order(mapping, stages)
    out["post_sale"] = list(dict.fromkeys(mapping.get(st, st) for st in post_sale)) or None
    out["phases"] = None
    return out


@dataclass
class PostSaleSplit:
    """Post-sale events of the sorted rows: ``rows`` (input positions, path order) after a
    win, with the time of that win (``won_ns``, the first of its run of won events); and
    ``bad`` rows (input positions) of events at a post-sale stage while the deal was not
    won."""

    rows: np.ndarray
    won_ns: np.ndarray
    bad: np.ndarray


def split_post_sale(
    is_post_sale: np.ndarray, raw_kind: np.ndarray, srt: V.Sorted
) -> PostSaleSplit:
    """Tell post-sale events after a win from those while the deal was not won.

    An event at a post-sale stage is after a win when the latest other event of its deal
    at or before it (in path order: post-sale events sort after terminal events at the same
    time) is a won event. Vectorised: one running maximum over positions.
    """
    code = srt.code
    ps = is_post_sale[code]
    psi = np.flatnonzero(ps)
    empty = np.zeros(0, dtype=np.int64)
    if psi.size == 0:
        return PostSaleSplit(empty, empty, empty)
    n = code.size
    pos = np.arange(n)
    last_other = np.maximum.accumulate(np.where(ps, -1, pos))
    deal_start = srt.starts[srt.deal]
    prev = last_other[psi]
    ok = prev >= deal_start[psi]
    kind = raw_kind[code]
    ok[ok] = kind[prev[ok]] == V.WON_KIND
    # the win is the first of its run of won events (the run collapses into its first)
    other = np.flatnonzero(~ps)
    won_other = kind[other] == V.WON_KIND
    new_run = np.ones(other.size, dtype=bool)
    new_run[1:] = ~(won_other[1:] & won_other[:-1] & (srt.deal[other[1:]] == srt.deal[other[:-1]]))
    run_start = other[np.maximum.accumulate(np.where(new_run, np.arange(other.size), 0))]
    prev_ok = prev[ok]
    won_pos = run_start[np.searchsorted(other, prev_ok)]
    return PostSaleSplit(srt.rows[psi[ok]], srt.time[won_pos], srt.rows[psi[~ok]])


@dataclass
class PostSaleEvents:
    """The post-sale events of a log, in path order: input ``rows``, ``deal`` (dense code
    of the log), ``time`` and ``won_ns`` (int64 ns), stage ``code`` into ``names``."""

    rows: np.ndarray
    deal: np.ndarray
    time: np.ndarray
    won_ns: np.ndarray
    code: np.ndarray
    names: list[str]
