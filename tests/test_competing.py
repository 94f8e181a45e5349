"""The Aalen–Johansen estimator of funnelkit._competing against a plain-Python reference
(a loop over event times) and against the Kaplan–Meier estimator when there is one cause."""

from __future__ import annotations

import numpy as np
import pytest

from funnelkit import _competing, _stats


def reference_aj(time, cause, K, weights=None):
    """Aalen–Johansen by hand: loop over the distinct times; at each, the weighted number
    at risk (time >= t), events per cause, S(t-) and the increments; the variance by the
    Marubini–Valsecchi formula evaluated term by term at the last time. Weights enter the
    variance after rescaling to Kish's effective sample size."""
    time = list(time)
    cause = list(cause)
    w = [1.0] * len(time) if weights is None else list(weights)
    total = sum(w)
    total2 = sum(x * x for x in w)
    scale = total / total2
    w = [x * scale for x in w]
    times = sorted(set(time))
    S = 1.0
    F = [0.0] * K
    rows = []  # (Y, d, d_k list, lagS, F after)
    for tt in times:
        Y = sum(wi for ti, wi in zip(time, w, strict=True) if ti >= tt)
        dk = [
            sum(wi for ti, ci, wi in zip(time, cause, w, strict=True) if ti == tt and ci == k + 1)
            for k in range(K)
        ]
        d = sum(dk)
        lag = S
        for k in range(K):
            F[k] += lag * dk[k] / Y
        S = S * (1 - d / Y)
        rows.append((Y, d, dk, lag, list(F)))
    var = []
    for k in range(K):
        Ft = F[k]
        v = 0.0
        for Y, d, dk, lag, Fj in rows:
            if Y - d > 1e-12:
                v += (Ft - Fj[k]) ** 2 * d / (Y * (Y - d))
            v += lag**2 * dk[k] * (Y - dk[k]) / Y**3
            v -= 2 * (Ft - Fj[k]) * lag * dk[k] / Y**2
        var.append(max(v, 0.0))
    return F, var, S


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_reference_with_ties_and_weights(seed, weighted):
    rng = np.random.default_rng(seed)
    G, K = 3, 3
    n = 60
    group = rng.integers(0, G, n)
    time = rng.integers(0, 8, n)  # few distinct times: many ties across causes
    cause = rng.integers(0, K + 1, n)
    w = rng.uniform(0.1, 5.0, n) if weighted else None
    res = _competing.aalen_johansen(group, time, cause, G, K, w)
    for g in range(G):
        sel = group == g
        F, var, S = reference_aj(time[sel], cause[sel], K, None if w is None else w[sel])
        np.testing.assert_allclose(res.cif[g], F, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(res.var[g], var, rtol=1e-8, atol=1e-12)
        assert res.unresolved[g] == pytest.approx(S, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("weighted", [False, True])
def test_compressed_path_equals_the_full_one(seed, weighted):
    """End values computed from blocks between censorings (``compress``) equal the time-by-time curves' last values — estimates,
    variances, what is unresolved and the largest times. (``thin_S``/``thin_F1`` are
    taken at block starts, i.e. right after a censoring, so they need not agree.)"""
    rng = np.random.default_rng(100 + seed)
    G, K, n = 5, 2, 400
    group = rng.integers(0, G - 1, n)  # the last group stays empty
    time = np.where(rng.random(n) < 0.2, 0, rng.integers(0, 40, n)) * 1_000
    cause = rng.integers(0, K + 1, n)
    w = rng.uniform(0.1, 5.0, n) if weighted else None
    fast = _competing.aalen_johansen(group, time, cause, G, K, w, thin=10)
    full = _competing.aalen_johansen(group, time, cause, G, K, w, thin=10, curves=True)
    for field in ("cif", "var", "unresolved", "t_max", "t_max1"):
        np.testing.assert_allclose(
            getattr(fast, field), getattr(full, field), rtol=1e-9, atol=1e-13, err_msg=field
        )


@pytest.mark.parametrize("seed", range(8))
def test_unweighted_fast_path_equals_the_general_one(seed):
    """Unweighted subjects take ``_compress_counts`` (blocks found from the positions of
    censorings and losses in the sorted keys); weights of 1 take the general ``compress``:
    every field agrees, the thin-risk-set values included — with ties, time-0 events, a
    group without censorings, an empty group and ns-sized times."""
    rng = np.random.default_rng(200 + seed)
    G, K, n = 6, 2, 500
    group = rng.integers(0, G - 1, n)  # the last group stays empty
    time = np.where(rng.random(n) < 0.2, 0, rng.integers(0, 60, n)) * 86_400 * 10**9
    cause = rng.integers(0, K + 1, n)
    cause[group == 0] = rng.integers(1, K + 1, (group == 0).sum())  # no censoring
    fast = _competing.aalen_johansen(group, time, cause, G, K, report=1, thin=10)
    slow = _competing.aalen_johansen(group, time, cause, G, K, np.ones(n), report=1, thin=10)
    for field in ("cif", "var", "unresolved", "n", "n_eff", "events", "t_max", "t_max1"):
        np.testing.assert_allclose(
            getattr(fast, field), getattr(slow, field), rtol=1e-12, atol=1e-15, err_msg=field
        )
    for field in ("thin_S", "thin_F1"):
        np.testing.assert_allclose(
            getattr(fast, field), getattr(slow, field), rtol=1e-12, atol=1e-15, err_msg=field
        )


def test_curves_match_reference_at_every_time():
    rng = np.random.default_rng(7)
    time = rng.integers(0, 10, 40)
    cause = rng.integers(0, 3, 40)
    res = _competing.aalen_johansen(np.zeros(40, int), time, cause, 1, 2, curves=True)
    for i, tt in enumerate(res.c_time):
        sel = time <= tt
        # incidence at tt from the subjects that resolved by tt, the others censored at tt
        t2 = np.where(sel, time, tt + 1)
        c2 = np.where(sel, cause, 0)
        F, var, S = reference_aj(t2, c2, 2)
        np.testing.assert_allclose(res.c_cif[i], F, atol=1e-12)
        np.testing.assert_allclose(res.c_var[i], var, rtol=1e-8, atol=1e-12)
        assert res.c_surv[i] == pytest.approx(S, abs=1e-12)
        assert res.c_at_risk[i] == (time >= tt).sum()


def test_one_cause_is_one_minus_kaplan_meier():
    rng = np.random.default_rng(3)
    n = 200
    group = rng.integers(0, 2, n)
    time = (rng.exponential(10, n) * 10).astype(np.int64)
    cause = rng.integers(0, 2, n)  # 1 = event, 0 = censored
    res = _competing.aalen_johansen(group, time, cause, 2, 1, curves=True)
    for g in range(2):
        sel = group == g
        order = np.lexsort((cause[sel] == 0, time[sel]))
        tt, ev = time[sel][order], cause[sel][order]
        surv = np.cumprod(1.0 - ev / np.arange(tt.size, 0, -1))
        assert res.cif[g, 0] == pytest.approx(1.0 - surv[-1], abs=1e-12)
        assert res.unresolved[g] == pytest.approx(surv[-1], abs=1e-12)
        # Greenwood's variance of 1 - S(t): S^2 Σ d / (Y (Y - d))
        times = np.unique(tt)
        Y = np.array([(tt >= x).sum() for x in times], float)
        d = np.array([((tt == x) & (ev == 1)).sum() for x in times], float)
        ok = Y > d
        gw = surv[-1] ** 2 * np.sum(d[ok] / (Y[ok] * (Y[ok] - d[ok])))
        assert res.var[g, 0] == pytest.approx(gw, rel=1e-9, abs=1e-14)
    # the KM of _stats agrees on its median
    km = _stats.kaplan_meier(group, time, cause == 0, 2, quantiles=(0.5,))
    for g in range(2):
        sel = res.c_group == g
        below = res.c_time[sel][1.0 - res.c_cif[sel, 0] <= 0.5 + _stats.KM_TOL]
        assert km["q50"][g] == pytest.approx(below[0])


def test_empty_groups_and_no_subjects():
    res = _competing.aalen_johansen(np.array([1, 1]), np.array([2, 5]), np.array([1, 0]), 3, 2)
    assert np.isnan(res.cif[0]).all() and np.isnan(res.cif[2]).all()
    assert res.cif[1].tolist() == [0.5, 0.0]
    assert res.unresolved[1] == 0.5
    empty = _competing.aalen_johansen(np.zeros(0, int), np.zeros(0), np.zeros(0, int), 2, 1)
    assert np.isnan(empty.cif).all() and (empty.n == 0).all()


def test_interval_contains_estimate_and_stays_in_unit_range():
    p = np.array([0.0, 0.3, 0.999, 1.0, np.nan])
    var = np.array([0.0, 0.01, 1e-4, 0.0, np.nan])
    low, high = _competing.interval(p, var, np.array([10.0, 10, 10, 10, 10]))
    assert np.all((low[:4] <= p[:4]) & (p[:4] <= high[:4]))
    assert np.all((low[:4] >= 0) & (high[:4] <= 1))
    assert np.isnan(low[4]) and np.isnan(high[4])
    assert high[0] > 0 and low[3] < 1  # Wilson where there is no spread to transform


def test_incidence_table_ends_at_the_funnel_numbers():
    import funnelkit as fk

    log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    f = log.funnel().set_index("stage")
    c = log.incidence()
    assert c["stage"].unique().tolist() == log.stages
    last = c.groupby("stage", sort=False).tail(1).set_index("stage")
    np.testing.assert_allclose(last["advanced"], f["conversion"], atol=1e-12)
    # the funnel's unresolved share is the curve's, unless the curves levelled off
    settled = f["unresolved"] == 0
    np.testing.assert_allclose(
        last.loc[~settled, "unresolved"], f.loc[~settled, "unresolved"], atol=1e-12
    )
    np.testing.assert_allclose(last["won"], f["win_rate_from"], atol=1e-12)
    total = c["advanced"] + c["lost"] + c["unresolved"]
    np.testing.assert_allclose(total, 1.0, atol=1e-9)
    assert (c.groupby("stage")["advanced"].diff().dropna() >= -1e-12).all()
    first = c.groupby("stage", sort=False).head(1).set_index("stage")
    assert (first["at_risk"] == f["reached"]).all()  # everyone is at risk at the start
    by = log.incidence("Demo", by="team")
    fb = log.funnel(by="team")
    fb = fb[fb["stage"] == "Demo"].set_index("team")
    lb = by.groupby("team").tail(1).set_index("team")
    np.testing.assert_allclose(lb["advanced"], fb.loc[lb.index, "conversion"], atol=1e-12)
    with pytest.raises(ValueError, match="not a stage"):
        log.incidence("Nope")


def test_plot_incidence_bands():
    import funnelkit as fk

    log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    ax = fk.plot.incidence(log, "Demo")
    gids = {c.get_gid() for c in ax.collections}
    assert {"incidence-advanced", "incidence-lost", "incidence-unresolved"} <= gids
    # 0-100%, with a strip above it for the legend (drawn inside the Axes)
    assert ax.get_ylim()[0] == 0.0 and 1.0 < ax.get_ylim()[1] < 1.3
    assert max(ax.get_yticks()) == 1.0
    table = log.incidence("Demo")
    ax2 = fk.plot.incidence(table)
    assert "Demo" in ax2.get_title()
    with pytest.raises(ValueError, match="lacks the column"):
        fk.plot.incidence(table.drop(columns="unresolved"))
    import matplotlib.pyplot as plt

    plt.close("all")


def test_conversion_window_is_the_incidence_at_the_window():
    import pandas as pd

    import funnelkit as fk

    log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    f = log.funnel(within="14D").set_index("stage")
    c = log.incidence()
    at = c[c["time"] <= pd.Timedelta(days=14)].groupby("stage").tail(1).set_index("stage")
    np.testing.assert_allclose(at.loc[log.stages, "advanced"], f["conversion"], atol=1e-12)
    assert (f["conversion"] <= log.funnel().set_index("stage")["conversion"] + 1e-12).all()


@pytest.mark.parametrize("skips", ["implied", "strict"])
def test_lean_subjects_equal_the_status_matrix_ones(skips):
    """``log_subjects`` (first visits and suffix minima only) builds the same subjects as
    ``competing_subjects`` over ``stage_status`` (the path windows need)."""
    import funnelkit as fk
    from funnelkit.funnel import competing_subjects, log_subjects, stage_status

    logs = [fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)]
    for seed in range(2):  # backward moves, skips, stale, reopened deals
        events = fk.datasets.synthetic(1500, seed=seed, p_skip=0.2)
        logs.append(fk.EventLog(events, **fk.datasets.SAMPLE_KWARGS))
    for log in logs:
        a = log_subjects(log, skips)
        b = competing_subjects(log, stage_status(log, skips))
        # the same subjects, each path in its own order (no estimate depends on it)
        oa, ob = np.lexsort((a.stage, a.deal)), np.lexsort((b.stage, b.deal))
        for field in ("deal", "stage", "t_adv", "c_adv", "t_win", "c_win"):
            np.testing.assert_array_equal(
                getattr(a, field)[oa], getattr(b, field)[ob], err_msg=field
            )


def test_stale_deals_count_as_lost_once_the_curve_levels_off():
    """Three deals advance from A to B after 2 days and fall silent in B. With
    stale_after=30D: 20 days after entering B they are open and nothing is settled (NaN,
    warned); 100 days after, B's curve has been flat for more than 30 days with deals at
    risk, so the silent three are stale — lost: conversion 0, nothing unresolved, and the
    counts call them dropped (stale), as DESIGN §2 defines. A shorter stale_after (10D)
    settles them already at 20 days."""
    import pandas as pd

    import funnelkit as fk

    events = pd.DataFrame(
        {
            "deal": ["a", "a", "b", "b", "c", "c"],
            "stage": ["A", "B", "A", "B", "A", "B"],
            "ts": ["2025-01-01", "2025-01-03"] * 3,
        }
    )
    kw = dict(deal="deal", stage="stage", time="ts", stages=["A", "B"], won="W", lost="L")
    young = fk.EventLog(events, **kw, stale_after="30D", as_of="2025-01-23")
    with pytest.warns(fk.FunnelkitWarning, match="conversion is NaN for 1 stage"):
        f = young.funnel().set_index("stage")
    assert f.loc["B", "open"] == 3 and np.isnan(f.loc["B", "conversion"])
    assert f.loc["A", "conversion"] == 1.0
    for stale_after, as_of in (("30D", "2025-04-13"), ("10D", "2025-01-23")):
        g = fk.EventLog(events, **kw, stale_after=stale_after, as_of=as_of).funnel()
        g = g.set_index("stage")
        assert g.loc["B", "dropped"] == 3
        assert g.loc["B", "conversion"] == 0.0 and g.loc["B", "unresolved"] == 0.0


def test_two_threads_give_the_same_funnel(monkeypatch):
    """Large logs run the conversion and win-rate estimates on two threads; forcing that
    path on the sample gives the same table as the sequential one."""
    import pandas as pd

    import funnelkit as fk
    from funnelkit import funnel as F

    events = fk.datasets.load_sample()
    seq = fk.EventLog(events, **fk.datasets.SAMPLE_KWARGS).funnel(by="team")
    monkeypatch.setattr(F, "PARALLEL_SUBJECTS", 0)
    par = fk.EventLog(events, **fk.datasets.SAMPLE_KWARGS).funnel(by="team")
    pd.testing.assert_frame_equal(seq, par)


def test_incidence_of_some_stages_equals_those_rows_of_all():
    """Asking for stages builds subjects for those stages only; the curves are the same
    as in the table of every stage."""
    import pandas as pd

    import funnelkit as fk

    log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    every = log.incidence(by="team")
    some = log.incidence(["Demo", "Proposal"], by="team")
    want = every.loc[every["stage"].isin(["Demo", "Proposal"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(some, want, rtol=1e-12, atol=1e-14)


def test_each_groups_estimate_is_its_own_whatever_groups_come_with_it():
    """A group's estimate (its thin-tail shares too) does not depend on the other groups
    of the call. A running sum of weights over every group left rounding residue where a
    group starts, so a group with no censoring before its last block was once marked
    'too few at risk' from its start when enough weight came before it (the weighted
    funnel by segment of a 160-deal log; found by the Dask parity test)."""
    rng = np.random.default_rng(5)
    G, K = 40, 2
    n = rng.integers(3, 30, G)
    group = np.repeat(np.arange(G), n)
    time = rng.integers(1, 10_000, group.size) * 3_600_000_000_000
    cause = rng.choice([0, 1, 2], group.size, p=[0.2, 0.5, 0.3])
    w = rng.choice([0.0, 1500.0, 20500.0, 24000.0, 9500.5], group.size)
    both = _competing.aalen_johansen(group, time, cause, G, K, w, report=1, thin=10)
    for g in range(G):
        sel = group == g
        alone = _competing.aalen_johansen(
            group[sel], time[sel], cause[sel], G, K, w[sel], report=1, thin=10
        )
        for f in ("thin_S", "thin_F1", "unresolved"):
            np.testing.assert_allclose(getattr(both, f)[g], getattr(alone, f)[g], atol=1e-12)
        np.testing.assert_allclose(both.cif[g, 0], alone.cif[g, 0], rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(both.var[g, 0], alone.var[g, 0], rtol=1e-6, atol=1e-15)
