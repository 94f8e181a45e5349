"""Drivers: which attributes and activities go with advancing, stage by stage.

For every stage, every feature splits the deals that entered the stage into two groups —
a segment against the rest (``owner = Owner 03``), visits with more touches of a kind in
their first days against fewer (``calls per visit``), visits with a low value of a kind
against the others (``survey score``) — and the conversion of each group is the
Aalen–Johansen cumulative incidence of advancing of :meth:`funnelkit.EventLog.funnel`
(open visits censored at ``as_of``; deals that entered the stage, ``skips="strict"``).
The effect is the difference of the two conversions, its interval the MOVER combination
of the groups' intervals (widened by the mass still unresolved), its p-value a
two-group test on the effective counts of :mod:`funnelkit._ajtests` (:func:`two_groups`:
the score z-test with the pooled rate, Fisher's exact test below 100 effective deals a
group, at the allocation of the unresolved mass closest to equality). q-values control the false discovery rate within each stage over
*features*, each feature a family of its values (:func:`selective_q`: Benjamini–Hochberg
over the features, Bonferroni within one — twelve owners are one question, "does the
owner matter here?", not twelve).

**Landmark.** A visit that lasts longer has more time for touches, and long visits advance
less often (or more), so "touches per visit" would go with the outcome even where touches
change nothing. Activity features are therefore measured in the first ``landmark`` of a
visit (default three days) and compared among the visits still in the stage at the
landmark, with the clock starting there: what happened before the landmark cannot be
explained by what happens after it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from . import _ajtests as AT
from ._stats import Z95

if TYPE_CHECKING:
    from .log import EventLog

__all__ = [
    "ADJ_COLUMNS",
    "COLUMNS",
    "feature_tests",
    "finish",
    "scan",
    "table",
    "one_vs_rest_levels",
]

#: columns of :meth:`funnelkit.EventLog.drivers`, in order
COLUMNS = [
    "stage",
    "feature",
    "group",
    "source",
    "visits_with",
    "visits_without",
    "conversion_with",
    "conversion_without",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
    "is_key",
    "test",
    "reason",
]

#: columns added by ``drivers(adjust=True)``, after :data:`COLUMNS`
ADJ_COLUMNS = ["adj_hazard_ratio", "adj_ci_low", "adj_ci_high", "adj_p_value", "adj_note"]
#: and after them the adjusted p-values' q-values (the scan's families, see selective_q)
ADJ_Q = "adj_q_value"

#: penalizer of the adjusted model's refit when the unpenalized fit does not converge
ADJ_PENALIZER = 0.01

#: rows of replicated subjects per Aalen–Johansen call of the scan (see ``_run``)
BATCH_ROWS = 5_000_000


def bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values of the finite entries (NaN elsewhere)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = stats.false_discovery_control(p[ok], method="bh")
    return q


def selective_q(stage: np.ndarray, feature: np.ndarray, p: np.ndarray, alpha: float) -> np.ndarray:
    """q-values of Benjamini & Bogomolov (2014), per stage: a feature with ``k`` tested
    values is one family with p-value ``min(1, k · min p)`` (Bonferroni); BH over the
    stage's families gives ``q_f``; with ``R`` of the ``m`` families at ``q_f ≤ alpha``,
    a row's q-value is ``max(q_f, min(1, k · p · m / max(R, 1)))`` — so a row is a
    discovery (q ≤ alpha) exactly when its family is selected by BH and its Bonferroni
    p-value within the family is at most ``alpha · R / m``. Under no effect at all, the
    chance of any discovery at a stage is at most ``alpha``."""
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    for s in np.unique(stage[ok]):
        sel = np.flatnonzero(ok & (stage == s))
        fams, inv = np.unique(feature[sel].astype(str), return_inverse=True)
        k = np.bincount(inv, minlength=fams.size)
        pmin = np.full(fams.size, np.inf)
        np.minimum.at(pmin, inv, p[sel])
        q_f = bh(np.minimum(1.0, k * pmin))
        m, R = fams.size, int((q_f <= alpha).sum())
        within = np.minimum(1.0, k[inv] * p[sel] * m / max(R, 1))
        q[sel] = np.maximum(q_f[inv], within)
    return q


def two_groups(a: AT.Rate, b: AT.Rate) -> tuple[float, str]:
    """Two-sided p-value of "``a`` and ``b`` advance alike": at the allocation of the
    unresolved mass closest to equality (:func:`funnelkit._ajtests.allocate_two`), the
    score z-test on the effective counts — the variance under the null from the pooled
    rate, ``p̄ (1 − p̄) (1/na + 1/nb)``, which holds its level better than the Wald
    variance of :func:`funnelkit._ajtests.two_groups` when the groups differ in size;
    below 100 effective deals a group, or at a rate of 0 or 1, Fisher's exact test on
    the rounded effective counts (that function's small-group branch)."""
    va, vb = AT.allocate_two(a, b, "two-sided")
    na, nb = float(a.n[0]), float(b.n[0])
    if va == vb:
        return 1.0, "z" if min(na, nb) >= AT.SMALL else "fisher"
    if min(na, nb) < AT.SMALL or va in (0.0, 1.0) or vb in (0.0, 1.0):
        return AT.two_groups(a, b, "two-sided")
    pbar = (na * va + nb * vb) / (na + nb)
    z = (va - vb) / np.sqrt(pbar * (1 - pbar) * (1 / na + 1 / nb))
    return float(2 * stats.norm.sf(abs(z))), "z"


def count_name(kind: str) -> str:
    """The feature of a kind's touch count: ``"call"`` → ``"calls per visit"``."""
    return f"{kind if kind.endswith('s') else kind + 's'} per visit"


def value_name(kind: str, value: str | None) -> str:
    """The feature of a kind's value: ``("survey", "score")`` → ``"survey score"``."""
    return f"{kind} {value or 'value'}"


def _days(ns: int) -> str:
    d = ns / 86_400e9
    return f"{d:g} day" + ("" if d == 1 else "s")


class _Tests:
    """The tests of one scan: per test its stage, labels, subjects and flags."""

    def __init__(self) -> None:
        self.meta: list[tuple[int, str, str, str]] = []
        self.idx: list[np.ndarray] = []
        self.flag: list[np.ndarray] = []
        self.shift: list[int] = []

    def add(self, s: int, feature: str, group: str, source: str, idx, flag, shift=0) -> None:
        self.meta.append((s, feature, group, source))
        self.idx.append(np.asarray(idx, dtype=np.int64))
        self.flag.append(np.asarray(flag, dtype=bool))
        self.shift.append(int(shift))


def one_vs_rest_levels(present: np.ndarray | list[int]) -> np.ndarray | list[int]:
    """The levels of a feature tested against the others at a stage, of the levels
    ``present`` there (in order): none below two, the first of two (one question), else
    each."""
    if len(present) < 2:
        return []
    return present[:1] if len(present) == 2 else present


def _levels(tests: _Tests, s: int, name: str, source: str, sub_idx, codes, labels) -> None:
    """One-vs-rest tests of a categorical feature at stage ``s`` (subjects ``sub_idx``,
    their level ``codes``, -1 missing: left out); see :func:`one_vs_rest_levels`."""
    ok = codes >= 0
    idx, cc = sub_idx[ok], codes[ok]
    for j in one_vs_rest_levels(np.unique(cc)):
        tests.add(s, name, str(labels[j]), source, idx, cc == j)


def scan(
    log: EventLog,
    *,
    attrs: Sequence[str] | None,
    landmark_ns: int,
    alpha: float,
    deals: np.ndarray | None = None,
    stages: np.ndarray | None = None,
    min_visits: int = 20,
    adjust: bool = False,
) -> pd.DataFrame:
    """The table of :meth:`funnelkit.EventLog.drivers` (see there). ``deals``: a mask of
    the deals to use (default all); ``stages``: a mask of the stages to test."""
    from .funnel import log_subjects, stale_ns

    if adjust:
        _import_lifelines()

    S = log._n_stages
    sub = log_subjects(log, "strict")
    keep = np.ones(sub.deal.size, dtype=bool)
    if deals is not None:
        keep &= deals[sub.deal]
    if stages is not None:
        keep &= stages[sub.stage]
    sd, ss = sub.deal[keep], sub.stage[keep]
    t_adv, c_adv = sub.t_adv[keep], sub.c_adv[keep]
    entry = np.asarray(sub.entry)[keep]
    tests = _Tests()
    names = list(log._attrs) + list(log._visit_attrs) if attrs is None else list(attrs)
    v = log._visits()
    first = np.flatnonzero(v.visit == 1)
    fkey = v.deal[first] * S + v.stage[first]
    forder = np.argsort(fkey, kind="stable")
    by_stage = [np.flatnonzero(ss == s) for s in range(S)]
    for a in names:
        if a in log._attrs:
            cat = log._attrs[a].array
            codes = np.asarray(cat.codes, dtype=np.int64)[sd]
            labels, source = cat.categories, "attribute"
        else:
            vc, labels = log._visit_attrs[a]
            pos = forder[np.searchsorted(fkey[forder], sd * S + ss)]
            codes = np.asarray(vc, dtype=np.int64)[v.path_index[first[pos]]]
            source = "visit attribute"
        feature_tests(tests, by_stage, a, source, codes, labels)
    acts = log._activities
    if acts is not None and len(acts.kinds):
        _activity_tests(log, tests, sd, ss, entry, t_adv, by_stage, landmark_ns)
    level_after = stale_ns(log.stale_after)
    return finish(log.stages, level_after, tests, ss, t_adv, c_adv, alpha, min_visits, adjust)


def feature_tests(
    tests: _Tests, by_stage: Sequence[np.ndarray], name: str, source: str, codes, labels
) -> None:
    """Add the one-vs-rest tests of a categorical feature at every stage (``by_stage``:
    the subjects of each stage; ``codes``: each subject's level, -1 missing)."""
    for s, i in enumerate(by_stage):  # loop over stages
        _levels(tests, s, name, source, i, codes[i], labels)


def finish(
    stages: Sequence[str],
    level_after: int | None,
    tests: _Tests,
    ss: np.ndarray,
    t_adv: np.ndarray,
    c_adv: np.ndarray,
    alpha: float,
    min_visits: int,
    adjust: bool,
) -> pd.DataFrame:
    """The drivers table of ``tests`` over subjects (their stage ``ss``, the conversion
    clock's time ``t_adv`` and cause ``c_adv``); with ``adjust`` each stage's Cox model's
    columns. ``level_after``: the stale rule in ns (the funnel's estimate)."""
    out = _run(stages, level_after, tests, t_adv, c_adv, alpha, min_visits)
    if adjust:
        out = _with_adjusted(stages, out, tests, ss, t_adv, c_adv)
        stage = np.array([list(stages).index(str(x)) for x in out["stage"]], dtype=np.int64)
        out[ADJ_Q] = selective_q(
            stage, out["feature"].to_numpy(), out["adj_p_value"].to_numpy(float), alpha
        )
    return out


def _activity_tests(log, tests, sd, ss, entry, t_adv, by_stage, L) -> None:
    """Touch counts and values in the first ``L`` ns of each subject's visit, among the
    subjects still in the stage at ``L``."""
    acts = log._activities
    v = log._visits()
    S, K = log._n_stages, len(acts.kinds)
    placed = np.flatnonzero(acts.visit >= 0)
    vis = acts.visit[placed]
    key_t = v.deal[vis] * S + v.stage[vis]
    skey = sd * S + ss
    order = np.argsort(skey, kind="stable")
    sorted_key = skey[order]
    pos = np.minimum(np.searchsorted(sorted_key, key_t), max(skey.size - 1, 0))
    subj = np.full(key_t.size, -1, dtype=np.int64)
    if skey.size:
        hit = sorted_key[pos] == key_t
        subj[hit] = order[pos[hit]]
    ok = subj >= 0
    dt = acts.time[placed] - np.where(ok, entry[np.maximum(subj, 0)], 0)
    ok &= (dt >= 0) & (dt < L)
    n = sd.size
    sj, kk = subj[ok], acts.kind[placed][ok]
    counts = np.bincount(sj * K + kk, minlength=n * K).reshape(n, K)
    vals = acts.value[placed][ok]
    has_v = np.isfinite(vals)
    vsum = np.bincount(sj[has_v] * K + kk[has_v], weights=vals[has_v], minlength=n * K)
    vcnt = np.bincount(sj[has_v] * K + kk[has_v], minlength=n * K)
    with np.errstate(invalid="ignore", divide="ignore"):
        vmean = (vsum / vcnt).reshape(n, K)
    at_landmark = t_adv > L
    window = f"in the first {_days(L)}"
    for s in range(log._n_stages):
        i = by_stage[s]
        i = i[at_landmark[i]]
        if not i.size:
            continue
        for k, kind in enumerate(acts.kinds):
            c = counts[i, k]
            med = float(np.median(c))
            if c.min() != c.max():
                if med == 0:
                    flag, grp = c > 0, f"any {window}"
                elif (c > med).any():
                    flag, grp = c > med, f"more than {med:g} {window}"
                else:  # the median is the most: at least it against fewer
                    flag, grp = c >= med, f"{med:g} or more {window}"
                tests.add(s, count_name(str(kind)), grp, "activity", i, flag, L)
            x = vmean[i, k]
            has = np.isfinite(x)
            if has.sum() >= 2:
                m = float(np.median(x[has]))
                low = x[has] < m
                if low.any() and not low.all():
                    tests.add(
                        s,
                        value_name(str(kind), acts.value_name),
                        f"below {m:g} (the stage's median) {window}",
                        "activity",
                        i[has],
                        low,
                        L,
                    )


def _run(stages, level_after, tests, t_adv, c_adv, alpha, min_visits):
    """The table of the scan's ``tests``: each test's two groups estimated by
    Aalen–Johansen over the subjects, then :func:`table`. A subject is in one group of
    every test of its stage and feature (a value of twelve is in eleven "others"), so the
    tests are estimated in batches of at most :data:`BATCH_ROWS` rows: each group's
    estimate depends on its own rows only, and memory stays bounded."""
    from .funnel import competing_estimates

    T = len(tests.meta)
    if T == 0:
        return table(stages, [], None, np.zeros(0), alpha, min_visits)
    sizes = np.array([i.size for i in tests.idx])
    none = np.zeros(0, dtype=np.int64)
    no_win = (none, none, none, None, None)  # the table reads the conversion clock only
    parts = []
    n = np.zeros(2 * T, dtype=np.int64)
    start = 0
    while start < T:  # loop over batches of tests
        stop = start + 1
        total = int(sizes[start])
        while stop < T and total + sizes[stop] <= BATCH_ROWS:
            total += int(sizes[stop])
            stop += 1
        idx = np.concatenate(tests.idx[start:stop])
        flag = np.concatenate(tests.flag[start:stop])
        tid = np.repeat(np.arange(stop - start), sizes[start:stop])
        shift = np.repeat(np.array(tests.shift[start:stop], dtype=np.int64), sizes[start:stop])
        group = 2 * tid + flag
        time = np.maximum(t_adv[idx] - shift, 0)
        x = (group, time, c_adv[idx], None, None)
        k = 2 * (stop - start)
        parts.append(competing_estimates(x, no_win, k, level_after=level_after))
        n[2 * start : 2 * stop] = np.bincount(group, minlength=k)
        start = stop
    aj = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return table(stages, tests.meta, AT.conversion_rates(aj, n, Z95), n, alpha, min_visits)


def table(
    stages: Sequence[str],
    meta: Sequence[tuple[int, str, str, str]],
    rate: AT.Rate | None,
    n: np.ndarray,
    alpha: float,
    min_visits: int,
) -> pd.DataFrame:
    """The drivers table (:data:`COLUMNS`) of tests ``meta`` — per test ``(stage index,
    feature, group, source)`` — from the conversions of their groups: ``rate`` and the
    deal counts ``n`` hold test ``j``'s others at ``2j`` and its group at ``2j + 1``. Both
    engines end here (the distributed one estimates the groups where the deals live)."""
    if not meta or rate is None:
        return pd.DataFrame({c: [] for c in COLUMNS}).astype(
            {"is_key": bool, "visits_with": np.int64, "visits_without": np.int64}
        )
    rows = []
    for j, (s, feature, grp, source) in enumerate(meta):
        a, b = rate.take(2 * j + 1), rate.take(2 * j)
        nw, nwo = int(n[2 * j + 1]), int(n[2 * j])
        pw, pwo = float(a.p[0]), float(b.p[0])
        eff = pw - pwo
        lo, hi, p, test = np.nan, np.nan, np.nan, ""
        if min(nw, nwo) >= min_visits and np.isfinite(eff):
            p, test = two_groups(a, b)
            lo_a, hi_a = AT.mover(a, b)
            lo, hi = float(lo_a[0]), float(hi_a[0])
        rows.append(
            {
                "stage": stages[s],
                "feature": feature,
                "group": grp,
                "source": source,
                "visits_with": nw,
                "visits_without": nwo,
                "conversion_with": pw,
                "conversion_without": pwo,
                "effect": eff,
                "ci_low": lo,
                "ci_high": hi,
                "p_value": p,
                "test": test,
                "_s": s,
            }
        )
    out = pd.DataFrame(rows)
    out["q_value"] = selective_q(
        out["_s"].to_numpy(), out["feature"].to_numpy(), out["p_value"].to_numpy(float), alpha
    )
    lo, hi = out["ci_low"].to_numpy(float), out["ci_high"].to_numpy(float)
    out["is_key"] = (out["q_value"].to_numpy(float) <= alpha) & ((lo > 0) | (hi < 0))
    out["reason"] = [_reason(r, min_visits) for r in out.itertuples(index=False)]
    out["_abs"] = -np.abs(out["effect"].to_numpy(float))
    out = out.sort_values(["_s", "is_key", "q_value", "_abs"], ascending=[True, False, True, True])
    out["stage"] = pd.Categorical(out["stage"], categories=list(stages), ordered=True)
    return out[COLUMNS].reset_index(drop=True)


def _pct(x: float) -> str:
    return f"{x:.0%}" if np.isfinite(x) else "unknown"


def _reason(r: Any, min_visits: int) -> str:
    who = f"{r.stage} deals with {r.feature} {r.group}"
    if r.source == "attribute" or r.source == "visit attribute":
        who = f"{r.stage} deals with {r.feature} = {r.group}"
    if not np.isfinite(r.p_value):
        return (
            f"{who}: too few to compare ({r.visits_with} vs {r.visits_without} deals; "
            f"{min_visits} a group needed) or no estimable conversion"
        )
    pts = f"{r.effect * 100:+.0f} points, 95% CI {r.ci_low * 100:+.0f} to {r.ci_high * 100:+.0f}"
    base = (
        f"{who} advance {_pct(r.conversion_with)} vs {_pct(r.conversion_without)} for the "
        f"others ({pts}; q = {r.q_value:.2g})"
    )
    return base if r.is_key else base + " — not a clear difference"


def _import_lifelines() -> Any:
    """lifelines' :class:`CoxPHFitter`, or an ImportError saying how to install it."""
    try:
        from lifelines import CoxPHFitter
    except ImportError as e:
        raise ImportError(
            "drivers(adjust=True) fits a Cox model with lifelines, which is not installed; "
            'install the optional extra: pip install "funnelkit[models]"'
        ) from e
    return CoxPHFitter


def _adjusted_design(tests: _Tests, s: int, ss, t_adv, c_adv):
    """The design of stage ``s``'s adjusted model from the scan's tests: the subjects
    (all that entered the stage; with activity features, those still in it at the
    landmark, the clock starting there), their time and event (advanced), one column per
    test that enters the model, and per test a note when it does not.

    Returns ``(time_ns, event, X, cols, notes)``: ``X`` (subjects × columns), ``cols``
    the test index of each column (-1: an auxiliary "has a value" column), ``notes`` a
    dict test → reason for the tests without a column. ``None`` when the stage has no
    tests."""
    from .funnel import ADVANCE

    mine = [j for j, m in enumerate(tests.meta) if m[0] == s]
    if not mine:
        return None
    shift = max(tests.shift[j] for j in mine)
    base = np.flatnonzero((ss == s) & (t_adv > shift)) if shift else np.flatnonzero(ss == s)
    n = base.size
    pos = np.full(ss.size, -1, dtype=np.int64)  # subject -> row of the model
    pos[base] = np.arange(n)
    keep = np.ones(n, dtype=bool)
    cols: list[int] = []
    X: list[np.ndarray] = []
    notes: dict[int, str] = {}

    def column(j) -> tuple[np.ndarray, np.ndarray]:
        """The test's flag over the base (0 where not a subject) and where it is one."""
        k = pos[tests.idx[j]]
        ok = k >= 0
        x, cover = np.zeros(n), np.zeros(n, dtype=bool)
        x[k[ok]] = tests.flag[j][ok]
        cover[k[ok]] = True
        return x, cover

    by_feature: dict[str, list[int]] = {}
    for j in mine:
        by_feature.setdefault(tests.meta[j][1], []).append(j)
    # coarser features first: of nested attributes (owner within team) the finer one
    # loses the levels the coarser one determines
    for js in sorted(by_feature.values(), key=len):
        source = tests.meta[js[0]][3]
        built = [column(j) for j in js]
        if source != "activity":
            keep &= built[0][1]  # a missing attribute value: out of the model
            if len(js) > 1:  # one-vs-rest levels: one-hot against the most common
                ref = int(np.argmax([x.sum() for x, _ in built]))
                notes[js[ref]] = "reference level (the most common value)"
                built = [b for r, b in enumerate(built) if r != ref]
                js = [j for r, j in enumerate(js) if r != ref]
        elif tests.meta[js[0]][1].endswith("per visit"):
            pass
        else:  # a value: low among those with a value, with a "has a value" column
            has = built[0][1].astype(np.float64)
            if not any(np.array_equal(has, x) for x in X):
                X.append(has)
                cols.append(-1)
        for j, (x, _) in zip(js, built, strict=True):
            X.append(x)
            cols.append(j)
    time = np.maximum(t_adv[base] - shift, 0)
    event = c_adv[base] == ADVANCE  # lost, open and stale visits: censored
    M = np.column_stack(X) if X else np.zeros((n, 0))
    return time[keep], event[keep], M[keep], cols, notes


def _fit_adjusted(time_ns, event, X, cols, notes):
    """Fit the Cox model; per test index its (hr, lo, hi, p, note)."""
    CoxPHFitter = _import_lifelines()
    res: dict[int, tuple[float, float, float, float, str]] = {}
    nan4 = (np.nan, np.nan, np.nan, np.nan)
    use: list[int] = []
    basis = np.ones((X.shape[0], 1))  # the baseline hazard absorbs a constant
    for c, j in enumerate(cols):
        x = X[:, c]
        if x.size == 0 or x.min() == x.max():
            if j >= 0:
                res[j] = (*nan4, "no variation among the model's deals")
            continue
        trial = np.column_stack([basis, x])
        if np.linalg.matrix_rank(trial) < trial.shape[1]:  # e.g. owner nested in team
            if j >= 0:
                res[j] = (*nan4, "determined by the features before it (collinear)")
            continue
        use.append(c)
        basis = trial
    for j, why in notes.items():
        res[j] = (*nan4, why)
    tests_in = [cols[c] for c in use if cols[c] >= 0]
    if not tests_in:
        return res
    if event.sum() == 0:
        for j in tests_in:
            res[j] = (*nan4, "no deal advanced among the model's deals")
        return res
    names = [f"x{c}" for c in use]
    df = pd.DataFrame(X[:, use], columns=names)
    df["_t"] = time_ns / 86_400e9
    df["_e"] = event.astype(np.int64)
    from lifelines.exceptions import ConvergenceError, ConvergenceWarning

    note, cph = "", None
    for pen in (0.0, ADJ_PENALIZER):
        try:
            with warnings.catch_warnings():  # restored on exit
                warnings.simplefilter("error", category=ConvergenceWarning)
                # lifelines' own pandas deprecations are not the user's to act on
                warnings.filterwarnings("ignore", category=DeprecationWarning, module="lifelines")
                cph = CoxPHFitter(penalizer=pen).fit(df, duration_col="_t", event_col="_e")
            note = "" if pen == 0 else f"penalized ({pen:g}) to converge"
            break
        except (ConvergenceError, ConvergenceWarning, np.linalg.LinAlgError):
            cph = None
    if cph is None:
        for j in tests_in:
            res[j] = (*nan4, "the model did not converge")
        return res
    sm = cph.summary
    for c in use:
        j = cols[c]
        if j < 0:
            continue
        r = sm.loc[f"x{c}"]
        res[j] = (
            float(r["exp(coef)"]),
            float(r["exp(coef) lower 95%"]),
            float(r["exp(coef) upper 95%"]),
            float(r["p"]),
            note,
        )
    return res


def _with_adjusted(stages, out, tests, ss, t_adv, c_adv) -> pd.DataFrame:
    """``out`` with the :data:`ADJ_COLUMNS` of each stage's Cox model."""
    res: dict[int, tuple[float, float, float, float, str]] = {}
    for s in range(len(stages)):
        d = _adjusted_design(tests, s, ss, t_adv, c_adv)
        if d is not None:
            res.update(_fit_adjusted(*d))
    none = (np.nan, np.nan, np.nan, np.nan, "")
    key = {(m[0], m[1], m[2]): res.get(j, none) for j, m in enumerate(tests.meta)}
    codes = [list(stages).index(str(x)) for x in out["stage"]]
    rows = zip(codes, out["feature"], out["group"], strict=True)
    vals = [key.get((c, f, g), none) for c, f, g in rows]
    out = out.copy()
    for k, c in enumerate(ADJ_COLUMNS):
        out[c] = pd.Series([v[k] for v in vals], index=out.index, dtype=None if k == 4 else float)
    return out
