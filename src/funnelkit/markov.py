"""The absorbing Markov chain of the transition matrix (DESIGN §3) and what-if perturbations.

Transient states are the funnel stages; absorbing states are the won names, the lost names
and ``"stale"`` (a loss). Row *s* of the chain is the exit shares of the completed visits of
stage *s* (still-open visits are censored and make no exit). With ``Q`` the transient block
and ``R`` the transient → absorbing block, the fundamental matrix ``N = (I − Q)⁻¹`` holds the
expected visits, ``B = N R`` the absorption probabilities, and the win probability of a
deal starting in state *i* is ``h = N R w`` (``w`` marks the won states).

Everything here is exact linear algebra, never simulation. The batched helpers
(:func:`win_probability_batch`, :func:`reduce_loss`, :func:`leverage_batch`) take stacks
of count matrices with any leading dimensions, so a bootstrap solves all its draws with a
few calls to :func:`numpy.linalg.solve`; :func:`deal_counts` builds the per-deal count
matrix such a (cluster) bootstrap multiplies by its weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from . import _validate as V
from ._kernel import NO_NEXT
from .errors import EventLogError, InvalidParameterError

if TYPE_CHECKING:
    from .log import EventLog

__all__ = [
    "BATCH_BYTES",
    "AbsorbingChain",
    "batch_size",
    "bootstrap_counts",
    "chain_from_log",
    "deal_counts",
    "exit_probabilities",
    "leverage_batch",
    "reduce_loss",
    "win_probability_batch",
]


# --------------------------------------------------------------------------- batched core
def exit_probabilities(counts: np.ndarray) -> np.ndarray:
    """Row-normalise exit counts ``(..., t, n)``; a row without exits stays all zero.

    Examples
    --------
    >>> from funnelkit.markov import exit_probabilities
    >>> exit_probabilities([[3, 1, 0], [0, 0, 0]]).tolist()
    [[0.75, 0.25, 0.0], [0.0, 0.0, 0.0]]
    """
    c = np.asarray(counts, dtype=np.float64)
    tot = c.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, c / np.where(tot > 0, tot, 1.0), 0.0)


def _stacked(fn: Any, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """``fn(a)`` or ``fn(a, b)`` of numpy.linalg over stacks; a singular system gives NaN
    instead of raising.

    ``I − Q`` is singular only when some stages form a closed loop without any exit to an
    outcome in the data (possible in a tiny bootstrap draw)."""
    try:
        return fn(a) if b is None else fn(a, b)
    except np.linalg.LinAlgError:
        pass
    shape = a.shape if b is None else b.shape
    a2 = a.reshape((-1, *a.shape[-2:]))
    b2 = None if b is None else b.reshape((-1, *b.shape[-2:]))
    out = np.full((a2.shape[0], *shape[-2:]), np.nan)
    for k in range(a2.shape[0]):  # only after a singular stack: loop over systems
        try:
            out[k] = fn(a2[k]) if b2 is None else fn(a2[k], b2[k])
        except np.linalg.LinAlgError:
            continue
    return out.reshape(shape)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``solve(a, b)`` over stacks; NaN for a singular system."""
    return _stacked(np.linalg.solve, a, b)


def _inverse(a: np.ndarray) -> np.ndarray:
    """``inv(a)`` over stacks, NaN for a singular matrix: for a system solved again and
    again with new right-hand sides."""
    return _stacked(np.linalg.inv, a)


def win_probability_batch(probs: np.ndarray, start: np.ndarray, won: np.ndarray) -> np.ndarray:
    """Overall win probability of stacked chains.

    Parameters
    ----------
    probs : ndarray, shape (..., t, n)
        Exit probabilities of the ``t`` transient states to all ``n`` states (transient
        first, then absorbing).
    start : ndarray, shape (..., n) or (n,)
        Starting distribution over all states (sums to 1).
    won : ndarray of bool, shape (n,)
        Won states (absorbing).

    Returns
    -------
    ndarray, shape (...)
        ``start_t · (I − Q)⁻¹ R w + start_a · w``; NaN for a singular chain.

    Examples
    --------
    >>> from funnelkit.markov import AbsorbingChain
    >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
    >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
    >>> import numpy as np
    >>> from funnelkit.markov import win_probability_batch
    >>> better = chain.reduce_loss("A", 0.5).probabilities
    >>> stack = np.stack([chain.probabilities, better])  # shape (2, t, n)
    >>> win_probability_batch(stack, chain.start, chain.won).round(3).tolist()
    [0.48, 0.54]
    """
    probs = np.asarray(probs, dtype=np.float64)
    t = probs.shape[-2]
    q = probs[..., :, :t]
    r_won = probs[..., :, t:] @ won[t:].astype(np.float64)
    eye = np.eye(t)
    h = _solve(eye - q, r_won[..., None])[..., 0]  # win probability from each stage
    start = np.asarray(start, dtype=np.float64)
    return np.einsum("...i,...i->...", start[..., :t], h) + start[..., t:] @ won[t:].astype(
        np.float64
    )


def reduce_loss(
    probs: np.ndarray,
    stage: int,
    uplift: float,
    *,
    loss: np.ndarray,
    forward: np.ndarray,
) -> np.ndarray:
    """Cut stage ``stage``'s loss probability by ``uplift`` (relative), moving it forward.

    Every loss destination of the row keeps ``1 − uplift`` of its probability; the removed
    mass goes to the row's ``forward`` destinations in proportion to their current shares.
    Backward moves are unchanged, so the row still sums to 1. A row with no forward
    probability cannot receive the mass: it is returned unchanged and the caller decides
    what that means (see :meth:`AbsorbingChain.leverage`).

    Parameters
    ----------
    probs : ndarray, shape (..., t, n)
        Exit probabilities (transient rows), stacked over any leading dimensions.
    stage : int
        Row to perturb.
    uplift : float
        Relative reduction of the loss probability, in [0, 1].
    loss, forward : ndarray of bool, shape (t, n)
        Per row, the loss destinations (lost names and stale) and the forward ones (later
        stages in funnel order and the won names).

    Returns
    -------
    ndarray
        A perturbed copy of ``probs``.

    Examples
    --------
    >>> from funnelkit.markov import AbsorbingChain
    >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
    >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
    >>> from funnelkit.markov import reduce_loss
    >>> p = reduce_loss(chain.probabilities, 1, 0.5, loss=chain.loss_mask,
    ...                 forward=chain.forward)
    >>> p[1].round(3).tolist()  # stage B: half of its 0.4 loss moves to Won
    [0.0, 0.0, 0.8, 0.2]
    """
    out = np.array(probs, dtype=np.float64, copy=True)
    row = out[..., stage, :]
    lo = loss[stage]
    fw = forward[stage]
    removed = uplift * row[..., lo].sum(axis=-1)
    fwd = row[..., fw]
    fsum = fwd.sum(axis=-1)
    ok = fsum > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        add = np.where(ok[..., None], fwd / np.where(ok, fsum, 1.0)[..., None], 0.0)
    row[..., lo] = np.where(ok[..., None], row[..., lo] * (1.0 - uplift), row[..., lo])
    row[..., fw] = fwd + add * np.where(ok, removed, 0.0)[..., None]
    out[..., stage, :] = row
    return out


def leverage_batch(
    probs: np.ndarray,
    start: np.ndarray,
    won: np.ndarray,
    *,
    loss: np.ndarray,
    forward: np.ndarray,
    uplift: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Win probability now and after cutting each stage's losses, for stacked chains.

    Returns ``(base, after)`` with shapes ``(...)`` and ``(..., t)``: ``after[..., s]`` is
    the win probability when only stage *s*'s loss is cut by ``uplift`` (as
    :func:`reduce_loss` does). Stages without a forward move (or without any exit) get
    NaN, as does a cut that leaves some stages in a loop with no way out.

    Cutting stage *s*'s losses changes row *s* of the chain only, so every "after" follows
    from the fundamental matrix ``N = (I − Q)⁻¹`` of the unperturbed chain by the
    Sherman–Morrison formula: no perturbed chain is built. Memory is O(t²) per chain, and
    the stack is solved in blocks of at most :data:`BATCH_BYTES` bytes of work arrays, so
    a bootstrap of 200 draws over 200 stages needs tens of MB, not tens of GB.

    Examples
    --------
    >>> from funnelkit.markov import AbsorbingChain
    >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
    >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
    >>> from funnelkit.markov import leverage_batch
    >>> base, after = leverage_batch(chain.probabilities, chain.start, chain.won,
    ...     loss=chain.loss_mask, forward=chain.forward, uplift=0.5)
    >>> round(float(base), 3), after.round(3).tolist()
    (0.48, [0.54, 0.64])
    """
    probs = np.asarray(probs, dtype=np.float64)
    lead, (t, n) = probs.shape[:-2], probs.shape[-2:]
    st = np.broadcast_to(np.asarray(start, dtype=np.float64), (*lead, n))
    w = np.asarray(won, dtype=bool)[t:].astype(np.float64)
    if t == 0:  # no stage (a log of won/lost events only): nothing to cut
        return st @ w, np.zeros((*lead, 0))
    p2 = probs.reshape(-1, t, n)
    st = st.reshape(-1, n)
    loss = np.asarray(loss, dtype=bool)
    forward = np.asarray(forward, dtype=bool)
    base = np.empty(p2.shape[0])
    after = np.empty((p2.shape[0], t))
    step = batch_size(t, n)
    for i in range(0, p2.shape[0], step):  # loop over blocks of chains
        j = i + step
        base[i:j], after[i:j] = _leverage_block(p2[i:j], st[i:j], w, loss, forward, uplift)
    return base.reshape(lead), after.reshape((*lead, t))


#: bytes of work arrays :func:`leverage_batch` may hold at once (its blocks of chains)
BATCH_BYTES = 64 * 2**20


def batch_size(t: int, n: int, budget: int | None = None) -> int:
    """Chains per block so that the work arrays of one block fit in ``budget`` bytes
    (default :data:`BATCH_BYTES`).

    One chain of ``t`` stages and ``n`` states needs about ``8 × (3 t² + 4 t n)`` bytes
    (``I − Q``, ``N``, the per-stage changes and their masks); at least one chain per
    block.

    Examples
    --------
    >>> from funnelkit.markov import batch_size
    >>> batch_size(7, 11)  # a usual funnel: a 200-draw bootstrap in one block
    18436
    >>> batch_size(200, 204)  # 200 stages: blocks of 29 draws
    29
    """
    per_chain = 8 * (3 * t * t + 4 * t * n)
    return max(1, int(BATCH_BYTES if budget is None else budget) // max(per_chain, 1))


def _leverage_block(
    p: np.ndarray,
    start: np.ndarray,
    w: np.ndarray,
    loss: np.ndarray,
    forward: np.ndarray,
    uplift: float,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`leverage_batch` of chains ``p`` (b, t, n) with starts (b, n); ``w`` marks the
    won states among the absorbing ones.

    With ``A = I − Q``, ``N = A⁻¹``, ``h = N r`` (win probability per stage) and the cut of
    stage *s* changing its row by ``δq`` (to stages) and ``δr`` (to won), the perturbed
    ``h'`` is ``h + c N e_s`` with ``c = (δq·h + δr) / (1 − δq·N e_s)`` (Sherman–Morrison),
    so the overall win probability moves by ``c × (start · N e_s)``."""
    b, t, _ = p.shape
    r = p[:, :, t:] @ w  # (b, t): probability of winning at the next step
    eye = np.eye(t)
    n_mat = _solve(eye - p[:, :, :t], np.broadcast_to(eye, (b, t, t)).copy())
    h = np.einsum("bij,bj->bi", n_mat, r)
    base = np.einsum("bi,bi->b", start[:, :t], h) + start[:, t:] @ w
    u = np.einsum("bi,bis->bs", start[:, :t], n_mat)  # start · N e_s
    # the change of each row s under its own cut (reduce_loss, as differences)
    lost_p = np.where(loss, p, 0.0)
    fwd = np.where(forward, p, 0.0)
    fsum = fwd.sum(axis=-1)
    ok = fsum > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        moved = uplift * lost_p.sum(axis=-1) / np.where(ok, fsum, 1.0)
    delta = np.where(ok[..., None], fwd * moved[..., None] - uplift * lost_p, 0.0)
    del lost_p, fwd
    num = np.einsum("bsj,bj->bs", delta[:, :, :t], h) + delta[:, :, t:] @ w
    den = 1.0 - np.einsum("bsj,bjs->bs", delta[:, :, :t], n_mat)
    with np.errstate(invalid="ignore", divide="ignore"):
        after = base[:, None] + num / den * u
    # den <= 0: the cut closes a loop with no way out (the perturbed I − Q is singular)
    after = np.where(ok & (den > _SINGULAR), after, np.nan)
    return base, after


#: below this, ``1 − δq·N e_s`` counts as zero (a singular perturbed chain)
_SINGULAR = 1e-12


# --------------------------------------------------------------------------- the chain
@dataclass(frozen=True, eq=False)
class AbsorbingChain:
    """An absorbing Markov chain over funnel stages and outcomes.

    Build one from a log with :func:`chain_from_log` or from counts with
    :meth:`from_counts`.

    Attributes
    ----------
    states : tuple of str
        All states: the transient stages in funnel order, then the absorbing ones.
    n_transient : int
        Number of transient states (stages).
    counts : ndarray, shape (n_transient, n_states)
        Exit counts (or any non-negative weights) of the transient states.
    start : ndarray, shape (n_states,)
        Starting distribution over all states (sums to 1). A deal that starts in an
        absorbing state (a log with only a terminal event) is absorbed at once.
    won : ndarray of bool, shape (n_states,)
        Won states.
    lost : ndarray of bool, shape (n_states,)
        Loss states (lost names and ``"stale"``).

    Examples
    --------
    Stage A goes on to B 8 times in 10, B is won 6 times in 10:

    >>> from funnelkit.markov import AbsorbingChain
    >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
    >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
    >>> chain.states
    ('A', 'B', 'Won', 'Lost')
    >>> round(chain.win_probability(), 3)  # 0.8 * 0.6
    0.48
    """

    states: tuple[str, ...]
    n_transient: int
    counts: np.ndarray
    start: np.ndarray
    won: np.ndarray
    lost: np.ndarray

    @classmethod
    def from_counts(
        cls,
        counts: np.ndarray | pd.DataFrame,
        *,
        stages: Sequence[str],
        won: str | Sequence[str],
        lost: str | Sequence[str] = (),
        start: np.ndarray | Sequence[float] | pd.Series | None = None,
    ) -> AbsorbingChain:
        """A chain from exit counts (or probabilities) between named states.

        Parameters
        ----------
        counts : ndarray or DataFrame, shape (n, n)
            Square matrix; rows and columns are the states ``stages + won + lost`` in that
            order (a DataFrame is reindexed by name; like
            :meth:`funnelkit.EventLog.transition_matrix`). Rows of absorbing states are
            ignored; transient rows are normalised.
        stages : sequence of str
            Transient states in funnel order.
        won, lost : str or sequence of str
            Absorbing states. Anything absorbing that is not won counts as a loss.
        start : array-like of shape (n,), optional
            Starting counts or distribution over all states; default: every deal starts
            in the first stage.

        Returns
        -------
        AbsorbingChain

        Examples
        --------
        >>> from funnelkit.markov import AbsorbingChain
        >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
        >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
        >>> chain.n_transient, chain.absorbing
        (2, ('Won', 'Lost'))
        >>> chain.start.tolist()
        [1.0, 0.0, 0.0, 0.0]
        """
        stages = list(stages)
        won_l = [won] if isinstance(won, str) else list(won)
        lost_l = [lost] if isinstance(lost, str) else list(lost)
        states = stages + won_l + lost_l
        if len(set(states)) != len(states):
            raise EventLogError(f"State names must be distinct; got {states}.")
        if isinstance(counts, pd.DataFrame):
            missing = [s for s in states if s not in counts.index or s not in counts.columns]
            if missing:
                raise EventLogError(
                    f"`counts` has no row/column for states {missing}; it has rows "
                    f"{list(counts.index)}."
                )
            counts = counts.loc[states, states].to_numpy(dtype=np.float64)
        c = np.asarray(counts, dtype=np.float64)
        n = len(states)
        if c.shape != (n, n):
            raise InvalidParameterError(
                f"`counts` must be square over the {n} states {states}; got shape {c.shape}."
            )
        if not np.all(np.isfinite(c)) or (c < 0).any():
            raise InvalidParameterError("`counts` must hold finite, non-negative numbers.")
        t = len(stages)
        if start is None:
            st = np.zeros(n)
            st[0] = 1.0
        else:
            st = np.asarray(start, dtype=np.float64).reshape(-1)
            if st.shape != (n,) or (st < 0).any() or st.sum() <= 0:
                raise InvalidParameterError(
                    f"`start` must be {n} non-negative numbers with a positive sum (one per "
                    f"state {states}); got {np.asarray(start).tolist()}."
                )
        won_m = np.zeros(n, dtype=bool)
        won_m[t : t + len(won_l)] = True
        lost_m = np.zeros(n, dtype=bool)
        lost_m[t + len(won_l) :] = True
        return cls(tuple(states), t, c[:t].copy(), st / st.sum(), won_m, lost_m)

    # ---- derived matrices
    @property
    def transient(self) -> tuple[str, ...]:
        """Transient states (stages).

        Examples
        --------
        >>> from funnelkit.markov import AbsorbingChain
        >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
        >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
        >>> chain.transient
        ('A', 'B')
        """
        return self.states[: self.n_transient]

    @property
    def absorbing(self) -> tuple[str, ...]:
        """Absorbing states (outcomes).

        Examples
        --------
        >>> from funnelkit.markov import AbsorbingChain
        >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
        >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
        >>> chain.absorbing
        ('Won', 'Lost')
        """
        return self.states[self.n_transient :]

    @property
    def probabilities(self) -> np.ndarray:
        """Exit probabilities of the transient rows, shape (t, n).

        Examples
        --------
        >>> from funnelkit.markov import AbsorbingChain
        >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
        >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
        >>> chain.probabilities.tolist()
        [[0.0, 0.8, 0.0, 0.2], [0.0, 0.0, 0.6, 0.4]]
        """
        return exit_probabilities(self.counts)

    def matrix(self) -> pd.DataFrame:
        """The full transition matrix (absorbing states have 1 on the diagonal).

        Examples
        --------
        >>> from funnelkit.markov import AbsorbingChain
        >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
        >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
        >>> chain.matrix().loc["B"].tolist()
        [0.0, 0.0, 0.6, 0.4]
        >>> float(chain.matrix().loc["Won", "Won"])
        1.0
        """
        n = len(self.states)
        p = np.zeros((n, n))
        p[: self.n_transient] = self.probabilities
        a = np.arange(self.n_transient, n)
        p[a, a] = 1.0
        idx = pd.Index(self.states)
        return pd.DataFrame(p, index=idx.rename("from_stage"), columns=idx.rename("to_stage"))

    @property
    def forward(self) -> np.ndarray:
        """Forward destinations per stage row: later stages and the won states, (t, n).

        Examples
        --------
        >>> from funnelkit.markov import AbsorbingChain
        >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
        >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
        >>> chain.forward.tolist()
        [[False, True, True, False], [False, False, True, False]]
        """
        t, n = self.n_transient, len(self.states)
        col = np.arange(n)
        later = (col[None, :] > np.arange(t)[:, None]) & (col[None, :] < t)
        return later | self.won[None, :]

    @property
    def loss_mask(self) -> np.ndarray:
        """Loss destinations per stage row (lost names and stale), shape (t, n).

        Examples
        --------
        >>> from funnelkit.markov import AbsorbingChain
        >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
        >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
        >>> chain.loss_mask.tolist()
        [[False, False, False, True], [False, False, False, True]]
        """
        return np.broadcast_to(self.lost, (self.n_transient, len(self.states))).copy()

    def fundamental(self) -> pd.DataFrame:
        """``N = (I − Q)⁻¹``: expected visits of stage *j* by a deal now in stage *i*.

        Examples
        --------
        >>> from funnelkit.markov import AbsorbingChain
        >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
        >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
        >>> chain.fundamental().round(3)
             A    B
        A  1.0  0.8
        B  0.0  1.0
        """
        t = self.n_transient
        q = self.probabilities[:, :t]
        n_mat = _solve(np.eye(t) - q, np.eye(t))
        return pd.DataFrame(n_mat, index=list(self.transient), columns=list(self.transient))

    def absorption(self) -> pd.DataFrame:
        """``B = N R``: probability that a deal now in stage *i* ends in outcome *k*.

        Examples
        --------
        >>> from funnelkit.markov import AbsorbingChain
        >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
        >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
        >>> chain.absorption().round(3)
            Won  Lost
        A  0.48  0.52
        B  0.60  0.40
        """
        t = self.n_transient
        p = self.probabilities
        b = _solve(np.eye(t) - p[:, :t], p[:, t:])
        return pd.DataFrame(b, index=list(self.transient), columns=list(self.absorbing))

    def expected_visits(self) -> pd.Series:
        """Expected visits of each stage per deal, from the starting distribution.

        Examples
        --------
        >>> from funnelkit.markov import AbsorbingChain
        >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
        >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
        >>> chain.expected_visits().round(3).to_dict()
        {'A': 1.0, 'B': 0.8}
        """
        n_mat = self.fundamental().to_numpy()
        return pd.Series(self.start[: self.n_transient] @ n_mat, index=list(self.transient))

    def outcome_probabilities(self) -> pd.Series:
        """Probability of ending in each absorbing state, from the starting distribution.

        Examples
        --------
        >>> from funnelkit.markov import AbsorbingChain
        >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
        >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
        >>> chain.outcome_probabilities().round(3).to_dict()
        {'Won': 0.48, 'Lost': 0.52}
        """
        t = self.n_transient
        b = self.absorption().to_numpy()
        return pd.Series(self.start[:t] @ b + self.start[t:], index=list(self.absorbing))

    def win_probability(self) -> float:
        """Overall probability of ending in a won state.

        Examples
        --------
        >>> from funnelkit.markov import AbsorbingChain
        >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
        >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
        >>> round(chain.win_probability(), 3)
        0.48
        """
        return float(win_probability_batch(self.probabilities, self.start, self.won))

    def reduce_loss(self, stage: str | int, uplift: float) -> AbsorbingChain:
        """A copy with ``stage``'s loss probability cut by ``uplift`` (see
        :func:`reduce_loss`); counts become probabilities.

        Examples
        --------
        >>> from funnelkit.markov import AbsorbingChain
        >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
        >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
        >>> better = chain.reduce_loss("B", 0.5)
        >>> better.probabilities[1].round(3).tolist()
        [0.0, 0.0, 0.8, 0.2]
        >>> round(better.win_probability(), 3)
        0.64
        """
        s = self._stage_index(stage)
        _check_uplift(uplift)
        p = reduce_loss(self.probabilities, s, uplift, loss=self.loss_mask, forward=self.forward)
        return AbsorbingChain(self.states, self.n_transient, p, self.start, self.won, self.lost)

    def leverage(self, uplift: float = 0.10) -> pd.DataFrame:
        """Change of the win probability when one stage's losses fall by ``uplift``.

        Returns
        -------
        pandas.DataFrame
            One row per stage: ``stage``, ``win_probability`` (now), ``win_probability_after``
            and ``leverage`` (after − now). NaN for a stage with no forward exit (the lost
            mass has nowhere to go) or no exit at all.

        Examples
        --------
        >>> from funnelkit.markov import AbsorbingChain
        >>> counts = [[0, 8, 0, 2], [0, 0, 6, 4], [0, 0, 0, 0], [0, 0, 0, 0]]
        >>> chain = AbsorbingChain.from_counts(counts, stages=["A", "B"], won="Won", lost="Lost")
        >>> chain.leverage(uplift=0.5).round(3)
          stage  win_probability  win_probability_after  leverage
        0     A             0.48                   0.54      0.06
        1     B             0.48                   0.64      0.16
        """
        _check_uplift(uplift)
        base, after = leverage_batch(
            self.probabilities,
            self.start,
            self.won,
            loss=self.loss_mask,
            forward=self.forward,
            uplift=uplift,
        )
        return pd.DataFrame(
            {
                "stage": list(self.transient),
                "win_probability": np.full(self.n_transient, float(base)),
                "win_probability_after": after,
                "leverage": after - base,
            }
        )

    def _stage_index(self, stage: str | int) -> int:
        if isinstance(stage, (int, np.integer)) and 0 <= stage < self.n_transient:
            return int(stage)
        if stage in self.transient:
            return self.transient.index(stage)  # type: ignore[arg-type]
        raise EventLogError(f"Unknown stage {stage!r}; stages: {list(self.transient)}.")


def _check_uplift(uplift: float) -> None:
    if not (isinstance(uplift, (int, float, np.floating)) and 0 <= float(uplift) <= 1):
        raise InvalidParameterError(
            f"Parameter `uplift` must be a relative reduction in [0, 1] (0.1 = 10%); got "
            f"{uplift!r}."
        )


# --------------------------------------------------------------------------- from a log
def _states(log: EventLog) -> list[str]:
    return list(log._catalogue) + ["stale"]


def deal_counts(log: EventLog) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Per-deal exit counts and starting states, for a deal-level (cluster) bootstrap.

    Returns
    -------
    exits : scipy.sparse.csr_matrix, shape (n_deals, n_stages * n_states)
        Entry ``[d, s * n_states + k]`` counts deal *d*'s completed visits of stage *s* that
        went to state *k* (states as in :func:`chain_from_log`).
    start : scipy.sparse.csr_matrix, shape (n_deals, n_states)
        One-hot state of each deal's first event.

    With bootstrap weights ``w`` (one per deal), ``exits.T @ w`` and ``start.T @ w`` are the
    counts of the resampled log.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> from funnelkit.markov import deal_counts
    >>> exits, start = deal_counts(log)
    >>> exits.shape, start.shape  # 6 stages; 10 states (+ Won, Lost, Disqualified, stale)
    ((600, 60), (600, 10))
    >>> int(start.sum()) == log.n_deals
    True
    """
    v = log._visits()
    n_states = len(log._catalogue) + 1
    n_deals = log.n_deals
    ex = v.next != NO_NEXT
    pair = v.stage[ex] * n_states + v.next[ex]
    exits = sparse.csr_matrix(
        (np.ones(pair.size), (v.deal[ex], pair)),
        shape=(n_deals, log._n_stages * n_states),
    )
    exits.sum_duplicates()
    p_deal = log._path_deal
    first = np.ones(p_deal.size, dtype=bool)
    first[1:] = p_deal[1:] != p_deal[:-1]
    start = sparse.csr_matrix(
        (np.ones(int(first.sum())), (p_deal[first], log._path_stage[first])),
        shape=(n_deals, n_states),
    )
    return exits, start


def bootstrap_counts(
    exits: sparse.spmatrix,
    start: sparse.spmatrix,
    *,
    n_boot: int,
    rng: np.random.Generator,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exit and start counts of ``n_boot`` deal-level bootstrap resamples.

    Each draw resamples whole deals with replacement (``n`` draws from ``n`` deals): its
    weights are the multiplicities ``w`` (multinomial), and its counts ``exits.T @ w`` and
    ``start.T @ w`` are exactly those of the log made of the drawn deals. One sparse
    product per draw; no loop over deals.

    Parameters
    ----------
    exits, start : scipy.sparse matrix
        From :func:`deal_counts`.
    n_boot : int
        Number of resamples.
    rng : numpy.random.Generator
        Source of the draws (``rng.integers(0, n, size=n)`` per draw, in order).
    progress : callable, optional
        Called as ``progress(done, n_boot)`` about 20 times.

    Returns
    -------
    counts : ndarray, shape (n_boot, n_stages, n_states)
    starts : ndarray, shape (n_boot, n_states)

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> import numpy as np
    >>> from funnelkit.markov import bootstrap_counts, deal_counts
    >>> exits, start = deal_counts(log)
    >>> counts, starts = bootstrap_counts(exits, start, n_boot=3,
    ...                                   rng=np.random.default_rng(0))
    >>> counts.shape, starts.shape
    ((3, 6, 10), (3, 10))
    >>> starts.sum(axis=1).tolist()  # every draw holds 600 deals
    [600.0, 600.0, 600.0]
    """
    n = exits.shape[0]
    n_states = start.shape[1]
    ex_t = sparse.csr_matrix(exits.T)
    st_t = sparse.csr_matrix(start.T)
    counts = np.empty((n_boot, exits.shape[1]))
    starts = np.empty((n_boot, n_states))
    step = max(1, n_boot // 20)
    for b in range(n_boot):  # loop over bootstrap draws only
        w = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
        counts[b] = ex_t @ w
        starts[b] = st_t @ w
        if progress is not None and ((b + 1) % step == 0 or b + 1 == n_boot):
            progress(b + 1, n_boot)
    return counts.reshape(n_boot, -1, n_states), starts


def chain_from_log(log: EventLog) -> AbsorbingChain:
    """The absorbing chain of a log's transition matrix (:meth:`EventLog.transition_matrix`).

    States: the stages in funnel order, the won names, the lost names and ``"stale"``
    (a loss). Transient rows are the exit counts of completed visits; the starting
    distribution is the state of each deal's first event (a deal whose path is only a
    terminal event starts, and ends, absorbed).

    Examples
    --------
    >>> import funnelkit as fk
    >>> from funnelkit.markov import chain_from_log
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> chain = chain_from_log(log)
    >>> chain.absorbing
    ('Won', 'Lost', 'Disqualified', 'stale')
    >>> bool(abs(chain.outcome_probabilities().sum() - 1) < 1e-12)
    True
    """
    exits, start = deal_counts(log)
    n_states = len(log._catalogue) + 1
    counts = np.asarray(exits.sum(axis=0)).reshape(log._n_stages, n_states)
    st = np.asarray(start.sum(axis=0)).reshape(-1)
    kind = np.append(log._kind, V.LOST_KIND)
    won = kind == V.WON_KIND
    lost = kind == V.LOST_KIND
    if st.sum() <= 0:
        raise EventLogError("The log has no deals; a chain needs at least one.")
    return AbsorbingChain(tuple(_states(log)), log._n_stages, counts, st / st.sum(), won, lost)


# ---- deals as distinct patterns: the leverage bootstrap of both engines
_KIND_NAMES = np.array(["stage", "won", "lost"], dtype=object)


@dataclass
class ChainData:
    """The chain of the transition counts and the deal patterns behind it.

    ``exits`` (patterns × stages·states) and ``start`` (patterns × states) hold each
    distinct pattern's exit counts and starting state; ``deals`` how many deals share it;
    ``states`` the chain's states (catalogue, then ``"stale"``), ``kind`` their kinds.
    Patterns are in the order
    of their text, whatever the engine or partitioning, so a draw from a seeded generator
    is the same everywhere. A deal-level bootstrap draws pattern multiplicities from
    Multinomial(n, deals / n): the same distribution as resampling n deals with
    replacement (:func:`pattern_bootstrap`)."""

    states: list[str]
    exits: sparse.csr_matrix
    start: sparse.csr_matrix
    deals: np.ndarray
    n_stages: int
    #: each state's kind (``_validate.STAGE``, ``WON_KIND``, ``LOST_KIND``; stale is lost)
    kind: np.ndarray


def deal_patterns(log: EventLog) -> pd.DataFrame:
    """The deals of ``log`` as distinct patterns — starting state and exit counts per
    (stage, next state) — counted: columns ``pattern`` (JSON text: ``{"start": [kind,
    name], "exits": [[from, kind, to, count], ...]}``, exits sorted) and ``deals``.
    Typically a few tens of thousands of patterns for millions of deals; a partition's
    table and the whole log's merge by summing ``deals`` per pattern."""
    v = log._visits()
    S = log._n_stages
    names = np.array([*log._catalogue, "stale"], dtype=object)
    kinds = np.append(_KIND_NAMES[log._kind], "stale")
    n_st = len(log._catalogue) + 1  # + stale
    ex = v.next != NO_NEXT
    n_pairs = max(S * n_st, 1)
    pair = v.stage[ex] * n_st + v.next[ex]
    D = log.n_deals
    p_deal = log._path_deal
    first = np.ones(p_deal.size, dtype=bool)
    first[1:] = p_deal[1:] != p_deal[:-1]
    start = np.zeros(D, dtype=np.int64)
    start[p_deal[first]] = log._path_stage[first]
    u, cnt = np.unique(v.deal[ex].astype(np.int64) * n_pairs + pair, return_counts=True)
    ud, up = u // n_pairs, u % n_pairs
    pid = start.copy()  # refined level by level: the k-th exit entry of each deal
    if u.size:
        new = np.ones(u.size, dtype=bool)
        new[1:] = ud[1:] != ud[:-1]
        starts = np.flatnonzero(new)
        level = np.arange(u.size) - starts[np.cumsum(new) - 1]
        code = up * (int(cnt.max()) + 1) + cnt
        base = n_pairs * (int(cnt.max()) + 1)
        for k in range(int(level.max()) + 1):  # loop over exit entries per deal (few)
            sel = level == k
            d = ud[sel]
            _, inv = np.unique(pid[d] * base + code[sel], return_inverse=True)
            pid[d] = inv.reshape(-1) + int(pid.max()) + 1
    _, rep, n = np.unique(pid, return_index=True, return_counts=True)
    lo = np.searchsorted(ud, rep, side="left")
    hi = np.searchsorted(ud, rep, side="right")
    text = np.empty(rep.size, dtype=object)
    for i in range(rep.size):  # loop over distinct patterns
        exits = sorted(
            [str(names[p // n_st]), str(kinds[p % n_st]), str(names[p % n_st]), int(c)]
            for p, c in zip(up[lo[i] : hi[i]], cnt[lo[i] : hi[i]], strict=True)
        )
        st = int(start[rep[i]])
        text[i] = json.dumps({"start": [str(kinds[st]), str(names[st])], "exits": exits})
    return pd.DataFrame({"pattern": text, "deals": n.astype(np.int64)})


def pattern_chain(patterns: pd.DataFrame, catalogue: Sequence[str], kind: np.ndarray) -> ChainData:
    """:class:`ChainData` of a pattern table (:func:`deal_patterns`, or several merged),
    its patterns in the order of their text. ``catalogue`` the stages, won and lost names
    in state order, ``kind`` their kinds (``_validate.STAGE``, ``WON_KIND``,
    ``LOST_KIND``)."""
    kind = np.asarray(kind)
    S = int(np.sum(kind == V.STAGE))
    n_states = len(catalogue) + 1
    code = {
        (str(_KIND_NAMES[k]), str(c)): i
        for i, (k, c) in enumerate(zip(kind, catalogue, strict=True))
    }
    code[("stale", "stale")] = len(catalogue)
    text = patterns["pattern"].astype(str).to_numpy()
    order = np.argsort(text, kind="stable")
    rows, cols, vals, scols = [], [], [], []
    for i, j in enumerate(order):  # loop over distinct patterns
        p = json.loads(text[j])
        scols.append(code[(p["start"][0], p["start"][1])])
        for frm, kd, to, count in p["exits"]:
            rows.append(i)
            cols.append(code[("stage", frm)] * n_states + code[(kd, to)])
            vals.append(count)
    n_pat = len(order)
    exits = sparse.csr_matrix(
        (np.asarray(vals, dtype=np.float64), (rows, cols)), shape=(n_pat, S * n_states)
    )
    start = sparse.csr_matrix((np.ones(n_pat), (np.arange(n_pat), scols)), shape=(n_pat, n_states))
    deals = patterns["deals"].to_numpy(dtype=np.int64)[order]
    states = [*map(str, catalogue), "stale"]
    return ChainData(states, exits, start, deals, S, np.append(kind, V.LOST_KIND))


def pattern_bootstrap(
    cd: ChainData,
    n_boot: int,
    rng: np.random.Generator,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exit and start counts of ``n_boot`` deal-level bootstrap resamples, as
    :func:`bootstrap_counts` but from the patterns: each draw takes the patterns'
    multiplicities from Multinomial(n, deals / n) (one draw per resample, in order).
    Returns ``counts`` (n_boot, stages, states) and ``starts`` (n_boot, states)."""
    n_states = len(cd.states)
    m = cd.deals.astype(np.float64)
    n = int(cd.deals.sum())
    p = m / m.sum() if n else m
    ex_t, st_t = cd.exits.T.tocsr(), cd.start.T.tocsr()
    counts = np.empty((n_boot, cd.n_stages * n_states))
    starts = np.empty((n_boot, n_states))
    step = max(1, n_boot // 20)
    for b in range(n_boot):  # loop over bootstrap draws only
        w = rng.multinomial(n, p).astype(np.float64)
        counts[b] = ex_t @ w
        starts[b] = st_t @ w
        if progress is not None and ((b + 1) % step == 0 or b + 1 == n_boot):
            progress(b + 1, n_boot)
    return counts.reshape(n_boot, cd.n_stages, n_states), starts
