"""The absorbing Markov chain: hand-worked chains, brute force, and the log's counts."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

import funnelkit as fk
from funnelkit.markov import (
    AbsorbingChain,
    bootstrap_counts,
    chain_from_log,
    deal_counts,
    leverage_batch,
    reduce_loss,
    win_probability_batch,
)

# A 3-stage chain with a backward move, by hand (counts = 10 × probabilities):
#   A: → B 0.6, → L 0.4
#   B: → C 0.5, → A 0.1, → L 0.4
#   C: → W 0.7, → B 0.1, → L 0.2
STATES = ["A", "B", "C", "W", "L"]
COUNTS = np.array(
    [
        [0, 6, 0, 0, 4],
        [1, 0, 5, 0, 4],
        [0, 1, 0, 7, 2],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ],
    dtype=float,
)


def three_stage(start=None) -> AbsorbingChain:
    return AbsorbingChain.from_counts(
        COUNTS, stages=["A", "B", "C"], won="W", lost="L", start=start
    )


def hand_win() -> dict[str, Fraction]:
    """h_A = 0.6 h_B; h_B = 0.5 h_C + 0.1 h_A; h_C = 0.7 + 0.1 h_B, solved with fractions:
    h_B = 0.35 + 0.05 h_B + 0.06 h_B  →  h_B = 0.35 / 0.89."""
    h_b = Fraction(35, 100) / Fraction(89, 100)
    return {"A": Fraction(6, 10) * h_b, "B": h_b, "C": Fraction(7, 10) + Fraction(1, 10) * h_b}


def brute_win(p_full: np.ndarray, start: np.ndarray, won: np.ndarray) -> float:
    """Win probability by repeated multiplication of the full matrix until absorption."""
    dist = start.astype(float).copy()
    for _ in range(100_000):
        nxt = dist @ p_full
        if np.abs(nxt - dist).max() < 1e-15:
            break
        dist = nxt
    return float(dist[won].sum())


def full_matrix(probs: np.ndarray) -> np.ndarray:
    t, n = probs.shape
    p = np.zeros((n, n))
    p[:t] = probs
    p[np.arange(t, n), np.arange(t, n)] = 1.0
    return p


def perturb_by_hand(probs, stage, uplift, loss_cols, forward_cols) -> np.ndarray:
    """The DESIGN rule written out plainly, one cell at a time."""
    p = probs.copy()
    removed = sum(uplift * p[stage, j] for j in loss_cols)
    fsum = sum(p[stage, j] for j in forward_cols)
    for j in loss_cols:
        p[stage, j] *= 1 - uplift
    shares = {j: p[stage, j] / fsum for j in forward_cols}
    for j in forward_cols:
        p[stage, j] += removed * shares[j]
    return p


# --------------------------------------------------------------------------- hand-worked
def test_absorption_probabilities_equal_hand_computation():
    chain = three_stage()
    b = chain.absorption()
    for s, h in hand_win().items():
        assert b.loc[s, "W"] == pytest.approx(float(h), abs=1e-14)
        assert b.loc[s, "L"] == pytest.approx(1 - float(h), abs=1e-14)
    assert chain.win_probability() == pytest.approx(float(hand_win()["A"]), abs=1e-14)


def test_fundamental_matrix_is_the_sum_of_matrix_powers():
    chain = three_stage()
    q = chain.probabilities[:, :3]
    series = sum(np.linalg.matrix_power(q, k) for k in range(400))
    np.testing.assert_allclose(chain.fundamental().to_numpy(), series, atol=1e-12)
    # expected visits from A: row A of N; B = N R
    np.testing.assert_allclose(chain.expected_visits().to_numpy(), series[0], atol=1e-12)
    r = chain.probabilities[:, 3:]
    np.testing.assert_allclose(chain.absorption().to_numpy(), series @ r, atol=1e-12)


def test_start_distribution_and_terminal_only_deals():
    # 8 deals start in A, 1 in C, 1 is a bare won event
    chain = three_stage(start=[8, 0, 1, 1, 0])
    h = hand_win()
    expected = 0.8 * float(h["A"]) + 0.1 * float(h["C"]) + 0.1
    assert chain.win_probability() == pytest.approx(expected, abs=1e-14)
    assert chain.outcome_probabilities().sum() == pytest.approx(1.0, abs=1e-14)


def test_leverage_equals_hand_rule_and_brute_force_on_three_stages():
    chain = three_stage()
    lev = chain.leverage(0.1).set_index("stage")
    base = brute_win(full_matrix(chain.probabilities), chain.start, chain.won)
    assert lev["win_probability"].iloc[0] == pytest.approx(base, abs=1e-12)
    # stage B: loss 0.4 → 0.36; the 0.04 goes to C (A is backward, not forward)
    pb = chain.probabilities.copy()
    pb[1] = [0.1, 0, 0.54, 0, 0.36]
    after_b = brute_win(full_matrix(pb), chain.start, chain.won)
    assert lev.loc["B", "win_probability_after"] == pytest.approx(after_b, abs=1e-12)
    # closed form for B: h_B' = (0.54 × 0.7) / (1 − 0.06 − 0.054)
    h_b = (0.54 * 0.7) / (1 - 0.06 - 0.054)
    assert lev.loc["B", "win_probability_after"] == pytest.approx(0.6 * h_b, abs=1e-14)
    assert lev.loc["B", "leverage"] == pytest.approx(after_b - base, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_leverage_equals_brute_force_on_random_chains(seed):
    rng = np.random.default_rng(seed)
    t, won, lost = 5, ["W1", "W2"], ["L1", "L2", "stale"]
    n = t + len(won) + len(lost)
    counts = np.zeros((n, n))
    counts[:t] = rng.integers(0, 20, size=(t, n)) * (rng.random((t, n)) < 0.7)
    counts[np.arange(t), np.arange(t)] = 0  # repeats collapse: no self-loops
    counts[:t, t] += 1  # every stage can win
    start = np.concatenate([rng.integers(0, 5, t), [1, 0, 1, 0, 0]]).astype(float)
    start[0] += 1
    chain = AbsorbingChain.from_counts(
        counts, stages=[f"S{i}" for i in range(t)], won=won, lost=lost, start=start
    )
    uplift = float(rng.uniform(0.05, 0.5))
    lev = chain.leverage(uplift)
    p = chain.probabilities
    base = brute_win(full_matrix(p), chain.start, chain.won)
    loss_cols = [j for j in range(n) if chain.lost[j]]
    for s in range(t):
        forward_cols = [j for j in range(n) if (s < j < t) or chain.won[j]]
        ps = perturb_by_hand(p, s, uplift, loss_cols, forward_cols)
        np.testing.assert_allclose(ps.sum(axis=1), p.sum(axis=1), atol=1e-12)
        after = brute_win(full_matrix(ps), chain.start, chain.won)
        assert lev["win_probability_after"].iloc[s] == pytest.approx(after, abs=1e-10)
        assert lev["leverage"].iloc[s] == pytest.approx(after - base, abs=1e-10)


def test_reduce_loss_rules():
    chain = three_stage()
    p = chain.probabilities
    out = reduce_loss(p, 2, 0.5, loss=chain.loss_mask, forward=chain.forward)
    # C: loss 0.2 → 0.1, W 0.7 → 0.8 (the only forward move), backward B unchanged
    np.testing.assert_allclose(out[2], [0, 0.1, 0, 0.8, 0.1], atol=1e-15)
    np.testing.assert_array_equal(out[:2], p[:2])
    assert chain.reduce_loss("C", 0.5).win_probability() > chain.win_probability()
    # uplift 1: no loss left at that stage
    assert reduce_loss(p, 0, 1.0, loss=chain.loss_mask, forward=chain.forward)[0, 4] == 0


def test_stage_without_forward_move_has_undefined_leverage():
    counts = COUNTS.copy()
    counts[1] = [3, 0, 0, 0, 4]  # B only goes back to A or is lost
    chain = AbsorbingChain.from_counts(counts, stages=["A", "B", "C"], won="W", lost="L")
    lev = chain.leverage(0.1).set_index("stage")
    assert np.isnan(lev.loc["B", "leverage"])
    assert np.isfinite(lev.loc["A", "leverage"])


def test_singular_chain_gives_nan_not_an_error():
    # A and B only move between each other: no way out, I − Q is singular
    counts = np.zeros((4, 4))
    counts[0, 1] = counts[1, 0] = 3
    chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="W", lost="L")
    assert np.isnan(chain.win_probability())
    base, after = leverage_batch(
        np.stack([chain.probabilities, three_stage().probabilities[:2, [0, 1, 3, 4]]]),
        chain.start,
        chain.won,
        loss=chain.loss_mask,
        forward=chain.forward,
        uplift=0.1,
    )
    assert np.isnan(base[0]) and np.isfinite(base[1])


def test_batched_win_probability_equals_one_at_a_time(rng):
    chain = three_stage()
    stack = rng.dirichlet(np.ones(5), size=(4, 3))
    starts = rng.dirichlet(np.ones(5), size=4)
    got = win_probability_batch(stack, starts, chain.won)
    for k in range(4):
        want = brute_win(full_matrix(stack[k]), starts[k], chain.won)
        assert got[k] == pytest.approx(want, abs=1e-10)


def test_from_counts_accepts_a_dataframe_and_checks_input():
    df = pd.DataFrame(COUNTS, index=STATES, columns=STATES).loc[::-1, ::-1]
    chain = AbsorbingChain.from_counts(df, stages=["A", "B", "C"], won="W", lost="L")
    assert chain.win_probability() == pytest.approx(float(hand_win()["A"]), abs=1e-14)
    with pytest.raises(fk.EventLogError, match="square"):
        AbsorbingChain.from_counts(COUNTS[:4], stages=["A", "B", "C"], won="W", lost="L")
    with pytest.raises(fk.EventLogError, match="no row/column"):
        AbsorbingChain.from_counts(df.drop(index="B"), stages=["A", "B", "C"], won="W")
    with pytest.raises(fk.EventLogError, match="non-negative"):
        AbsorbingChain.from_counts(-COUNTS, stages=["A", "B", "C"], won="W", lost="L")
    with pytest.raises(fk.EventLogError, match="start"):
        three_stage(start=[1, 2])
    with pytest.raises(fk.EventLogError, match="Unknown stage"):
        three_stage().reduce_loss("Z", 0.1)
    with pytest.raises(fk.EventLogError, match="uplift"):
        three_stage().leverage(1.5)


# --------------------------------------------------------------------------- from a log
@pytest.fixture(scope="module")
def sample_log():
    return fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)


def test_chain_from_log_matches_transition_matrix(sample_log, golden_log):
    for log in (sample_log, golden_log):
        chain = chain_from_log(log)
        counts = log.transition_matrix(kind="counts")
        np.testing.assert_array_equal(chain.counts, counts.to_numpy()[: len(log.stages)])
        pd.testing.assert_frame_equal(
            chain.matrix(), log.transition_matrix(), check_names=False, check_exact=False
        )
        assert chain.outcome_probabilities().sum() == pytest.approx(1.0, abs=1e-12)


def test_start_distribution_is_where_deals_enter(golden_log):
    chain = chain_from_log(golden_log)
    v = golden_log.visits()
    d = golden_log.deals()
    first_visit = v.sort_values("entered", kind="stable").groupby("deal").head(1)
    entered_first = first_visit.set_index("deal")["entered"]
    # a deal starts in its first visit's stage unless its path is only a terminal event
    only_terminal = d.loc[d["furthest_stage"].isna(), "outcome_stage"].astype(str)
    expected = pd.Series(0.0, index=list(chain.states))
    for stage, n in first_visit["stage"].astype(str).value_counts().items():
        expected[stage] += n
    for stage, n in only_terminal.value_counts().items():
        expected[stage] += n
    assert len(entered_first) + len(only_terminal) == golden_log.n_deals
    np.testing.assert_allclose(chain.start, (expected / expected.sum()).to_numpy())


def test_deal_counts_add_up_to_the_chain(sample_log):
    exits, start = deal_counts(sample_log)
    chain = chain_from_log(sample_log)
    n_states = len(chain.states)
    ones = np.ones(sample_log.n_deals)
    np.testing.assert_array_equal((exits.T @ ones).reshape(-1, n_states), chain.counts)
    assert (start.T @ ones).sum() == sample_log.n_deals


def test_bootstrap_counts_equal_the_log_of_the_drawn_deals(sample_log):
    """Each bootstrap draw's counts are exactly those of a log built from the drawn deals
    (each drawn deal copied under a new id): the vectorised bootstrap is a real deal-level
    resample."""
    events = fk.datasets.load_sample()
    exits, start = deal_counts(sample_log)
    counts, starts = bootstrap_counts(exits, start, n_boot=2, rng=np.random.default_rng(7))
    rng = np.random.default_rng(7)  # replay the same draws
    labels = np.asarray(sample_log.deals()["deal"])
    for b in range(2):
        idx = rng.integers(0, sample_log.n_deals, size=sample_log.n_deals)
        drawn = pd.DataFrame({"deal_id": labels[idx], "copy": np.arange(idx.size)})
        boot_events = events.merge(drawn, on="deal_id")
        boot_events["deal_id"] = boot_events["deal_id"] + "#" + boot_events["copy"].astype(str)
        kw = dict(fk.datasets.SAMPLE_KWARGS, as_of=sample_log.as_of)
        boot_chain = chain_from_log(fk.EventLog(boot_events, **kw))
        np.testing.assert_array_equal(counts[b], boot_chain.counts)
        np.testing.assert_allclose(starts[b] / starts[b].sum(), boot_chain.start)


def test_bootstrap_progress_is_reported(sample_log):
    exits, start = deal_counts(sample_log)
    calls = []
    bootstrap_counts(
        exits,
        start,
        n_boot=40,
        rng=np.random.default_rng(0),
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls[-1] == (40, 40)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert 10 <= len(calls) <= 40


# --------------------------------------------------------------------------- leverage at scale
def explicit_leverage(probs, start, won, *, loss, forward, uplift):
    """The leverage by building every perturbed chain (the former implementation)."""
    t = probs.shape[-2]
    base = win_probability_batch(probs, start, won)
    pert = np.stack(
        [reduce_loss(probs, s, uplift, loss=loss, forward=forward) for s in range(t)], axis=-3
    )
    after = win_probability_batch(pert, np.asarray(start)[..., None, :], won)
    no_forward = (probs * forward).sum(axis=-1) <= 0
    return base, np.where(no_forward, np.nan, after)


def random_chains(rng, n_chains: int, t: int, n_abs: int = 3) -> np.ndarray:
    """Chains with forward, backward and terminal moves, some rows without a forward move."""
    p = rng.dirichlet(np.full(t + n_abs, 0.3), size=(n_chains, t))
    p[..., np.arange(t), np.arange(t)] = 0.0  # no self-loops (repeats collapse)
    p[:, t - 1, : t - 1] *= rng.random((n_chains, 1)) < 0.5  # last stage: sometimes only ends
    p[:, 1, 2:t] = 0.0
    p[:, 1, t] = 0.0  # stage 1: no forward move at all (leverage undefined)
    return p / p.sum(axis=-1, keepdims=True)


def test_leverage_equals_explicit_perturbation_and_does_not_depend_on_blocks(rng, monkeypatch):
    t, n_abs = 9, 3
    probs = random_chains(rng, 40, t, n_abs)
    starts = rng.dirichlet(np.ones(t + n_abs), size=40)
    chain = AbsorbingChain.from_counts(
        np.vstack([probs[0], np.zeros((n_abs, t + n_abs))]),
        stages=[f"S{i}" for i in range(t)],
        won="W",
        lost=["L", "stale"],
    )
    kw = dict(loss=chain.loss_mask, forward=chain.forward, uplift=0.25)
    want_base, want_after = explicit_leverage(probs, starts, chain.won, **kw)
    got_base, got_after = leverage_batch(probs, starts, chain.won, **kw)
    np.testing.assert_allclose(got_base, want_base, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got_after, want_after, rtol=0, atol=1e-12)
    assert np.isnan(got_after[:, 1]).all() and np.isfinite(got_after[:, 0]).all()
    # blocks of 1 chain (a tiny byte budget) give the same numbers
    monkeypatch.setattr(fk.markov, "BATCH_BYTES", 1)
    one_base, one_after = leverage_batch(probs, starts, chain.won, **kw)
    np.testing.assert_array_equal(one_base, got_base)
    np.testing.assert_allclose(one_after, got_after, rtol=0, atol=1e-15)


def test_leverage_of_a_cut_that_closes_a_loop_is_nan():
    # A → B 0.5, A → L 0.5; B → A only. Cutting A's losses entirely leaves A ⇄ B forever.
    counts = np.zeros((4, 4))
    counts[0, 1] = counts[0, 3] = 5
    counts[1, 0] = 5
    chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="W", lost="L")
    base, after = leverage_batch(
        chain.probabilities,
        chain.start,
        chain.won,
        loss=chain.loss_mask,
        forward=chain.forward,
        uplift=1.0,
    )
    assert float(base) == 0.0
    assert np.isnan(after[0]) and np.isnan(after[1])  # B has no forward move either


def test_leverage_of_200_stages_stays_small(rng):
    # the former implementation held n_boot × t × t × n floats (25 GB at 200 × 200 stages)
    import tracemalloc

    t, n_abs, n_boot = 200, 4, 20
    probs = np.zeros((n_boot, t, t + n_abs))
    idx = np.arange(t - 1)
    probs[:, idx, idx + 1] = 0.9
    probs[:, t - 1, t] = 0.9
    probs[:, :, t + 1] = 0.1
    chain = AbsorbingChain.from_counts(
        np.vstack([probs[0], np.zeros((n_abs, t + n_abs))]),
        stages=[f"S{i}" for i in range(t)],
        won="W",
        lost=["L", "D", "stale"],
    )
    tracemalloc.start()
    base, after = leverage_batch(
        probs,
        chain.start,
        chain.won,
        loss=chain.loss_mask,
        forward=chain.forward,
        uplift=0.1,
    )
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100 * 2**20
    # a straight chain: cutting any stage's loss by 10% lifts the win by the factor 0.91/0.9
    np.testing.assert_allclose(base, 0.9**200, rtol=1e-9)
    np.testing.assert_allclose(after, 0.9**199 * 0.91, rtol=1e-9)


def test_leverage_batch_without_stages():
    # a log of won/lost events only: before, ValueError "need at least one array to stack"
    from funnelkit.markov import leverage_batch

    won = np.array([True, False])  # states: won, lost (no transient stage)
    mask = np.zeros((0, 2), dtype=bool)
    kw = dict(loss=mask, forward=mask, uplift=0.1)
    base, after = leverage_batch(np.zeros((0, 2)), np.array([0.75, 0.25]), won, **kw)
    assert float(base) == 0.75 and after.shape == (0,)
    starts = np.array([[0.5, 0.5], [1.0, 0.0]])
    base, after = leverage_batch(np.zeros((2, 0, 2)), starts, won, **kw)
    assert base.tolist() == [0.5, 1.0] and after.shape == (2, 0)
