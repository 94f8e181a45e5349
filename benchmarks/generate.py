"""Generate a synthetic, shuffled sales-stage event log as Parquet.

Usage::

    python benchmarks/generate.py 100000 1000000 3000000

writes ``benchmarks/data/events_{n}.parquet`` for each number of deals ``n``.

Columns: ``deal_id`` (string, fixed width, ``"D0000001"``), ``stage`` (string),
``ts`` (``timestamp[us, UTC]``), ``amount`` (float64). About 6.5 events per deal.

Each deal starts at Lead (some at Qualified) and walks the seven open stages
Lead → Qualified → Discovery → Demo → Proposal → Negotiation → Contract: mostly one
step forward, sometimes a skip, a step back or a repeated stage, until it ends as Won,
Lost or Disqualified. Deals whose next event would fall after the end of the
observation window stay open. Within a deal timestamps are strictly increasing (no
ties), so "the next event of a deal" is unambiguous. Rows are shuffled.

Everything is vectorised over deals (one numpy pass per step of the walk); 1M deals
take a few seconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

OPEN_STAGES = ["Lead", "Qualified", "Discovery", "Demo", "Proposal", "Negotiation", "Contract"]
WON = "Won"
LOST = ["Lost", "Disqualified"]
ALL_STAGES = [*OPEN_STAGES, WON, *LOST]
N_OPEN = len(OPEN_STAGES)
S_WON, S_LOST, S_DISQ = N_OPEN, N_OPEN + 1, N_OPEN + 2

DATA_DIR = Path(__file__).resolve().parent / "data"

# Observation window: deals are created uniformly over two years; the data end is
# the end of that window, so late deals are still open.
T0 = np.datetime64("2023-01-01T00:00:00", "us").astype(np.int64)
T_END = np.datetime64("2025-01-01T00:00:00", "us").astype(np.int64)
US_PER_DAY = 86_400 * 1_000_000

# Median dwell (days) in each open stage before the next event; lognormal spread.
DWELL_MEDIAN_DAYS = np.array([2.0, 4.0, 6.0, 5.0, 8.0, 10.0, 7.0])
DWELL_SIGMA = 1.0
MIN_GAP_US = 60 * 1_000_000  # at least a minute between two events of a deal
MAX_STEPS = 60


def _move_probabilities() -> np.ndarray:
    """Rows: open stage; columns: forward, skip, back, repeat, won, lost, disqualified."""
    p = np.zeros((N_OPEN, 7))
    for s in range(N_OPEN):
        lost = 0.035 + 0.01 * s
        disq = 0.09 if s <= 1 else (0.02 if s <= 3 else 0.0)
        won = 0.0
        skip = 0.06 if s + 2 < N_OPEN else 0.0
        back = 0.09 if s >= 1 else 0.0
        repeat = 0.09
        if s == N_OPEN - 2:  # Negotiation: some deals close without a Contract stage
            won = 0.06
        if s == N_OPEN - 1:  # Contract: "forward" means Won
            lost += 0.10
        forward = 1.0 - (skip + back + repeat + won + lost + disq)
        p[s] = [forward, skip, back, repeat, won, lost, disq]
    return np.cumsum(p, axis=1)


def simulate(n_deals: int, seed: int = 20240601):
    """Return (deal index, stage code, ts in µs, amount) arrays, one entry per event."""
    rng = np.random.default_rng(seed)
    cum = _move_probabilities()

    start = rng.integers(T0, T_END, size=n_deals, dtype=np.int64)
    stage = np.where(rng.random(n_deals) < 0.15, 1, 0).astype(np.int8)
    base_amount = np.round(rng.lognormal(np.log(20_000.0), 0.8, size=n_deals), 2)

    deal_chunks = [np.arange(n_deals, dtype=np.int32)]
    stage_chunks = [stage.copy()]
    ts_chunks = [start.copy()]

    active = np.arange(n_deals, dtype=np.int32)  # deals whose last event is an open stage
    cur_stage = stage
    cur_ts = start
    for _ in range(MAX_STEPS):
        if active.size == 0:
            break
        s = cur_stage
        gap = rng.lognormal(0.0, DWELL_SIGMA, size=active.size) * DWELL_MEDIAN_DAYS[s]
        gap_us = np.maximum((gap * US_PER_DAY).astype(np.int64), MIN_GAP_US)
        nxt_ts = cur_ts + gap_us
        move = (rng.random(active.size)[:, None] >= cum[s]).sum(axis=1)
        nxt = np.empty(active.size, dtype=np.int8)
        nxt[:] = s  # repeat (3)
        nxt = np.where(move == 0, np.minimum(s + 1, S_WON), nxt)  # forward; Contract → Won
        nxt = np.where(move == 1, s + 2, nxt)
        nxt = np.where(move == 2, s - 1, nxt)
        nxt = np.where(move == 4, S_WON, nxt)
        nxt = np.where(move == 5, S_LOST, nxt)
        nxt = np.where(move >= 6, S_DISQ, nxt).astype(np.int8)

        observed = nxt_ts < T_END  # otherwise the deal is still open at the data end
        active, nxt, nxt_ts = active[observed], nxt[observed], nxt_ts[observed]
        deal_chunks.append(active)
        stage_chunks.append(nxt)
        ts_chunks.append(nxt_ts)

        still_open = nxt < N_OPEN
        active, cur_stage, cur_ts = active[still_open], nxt[still_open], nxt_ts[still_open]

    deal = np.concatenate(deal_chunks)
    stage_code = np.concatenate(stage_chunks)
    ts = np.concatenate(ts_chunks)
    # Amount: the deal's value, revised now and then (±10 %) as the deal progresses.
    revise = rng.random(deal.size) < 0.2
    factor = np.where(revise, rng.uniform(0.9, 1.1, size=deal.size), 1.0)
    amount = np.round(base_amount[deal] * factor, 2)
    return deal, stage_code, ts, amount


def deal_id_array(deal: np.ndarray, n_deals: int) -> pa.Array:
    """Fixed-width ids ``"D0000001"`` (1-based) built as one byte buffer, no Python strings."""
    width = max(7, len(str(n_deals)))
    numbers = np.arange(1, n_deals + 1, dtype=np.int64)
    chars = np.empty((n_deals, width + 1), dtype=np.uint8)
    chars[:, 0] = ord("D")
    for k in range(width):
        chars[:, width - k] = (numbers // 10**k) % 10 + ord("0")
    data = chars[deal].reshape(-1)
    offsets = np.arange(0, (deal.size + 1) * (width + 1), width + 1, dtype=np.int32)
    return pa.StringArray.from_buffers(deal.size, pa.py_buffer(offsets), pa.py_buffer(data))


def generate(n_deals: int, seed: int = 20240601, out_dir: Path = DATA_DIR) -> Path:
    t = time.perf_counter()
    deal, stage_code, ts, amount = simulate(n_deals, seed)
    perm = np.random.default_rng(seed + 1).permutation(deal.size)
    deal, stage_code, ts, amount = deal[perm], stage_code[perm], ts[perm], amount[perm]

    stage = pa.DictionaryArray.from_arrays(
        pa.array(stage_code, pa.int8()), pa.array(ALL_STAGES, pa.string())
    ).cast(pa.string())
    table = pa.table(
        {
            "deal_id": deal_id_array(deal, n_deals),
            "stage": stage,
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "amount": pa.array(amount, pa.float64()),
        }
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"events_{n_deals}.parquet"
    pq.write_table(table, path, row_group_size=1_000_000)
    elapsed = time.perf_counter() - t
    print(
        f"{path}: {n_deals:,} deals, {table.num_rows:,} events "
        f"({table.num_rows / n_deals:.2f}/deal), {path.stat().st_size / 2**20:.0f} MiB, "
        f"{elapsed:.1f} s"
    )
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("deals", nargs="+", type=int, help="number of deals, e.g. 1000000")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--out-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    for n in args.deals:
        generate(n, args.seed, args.out_dir)


if __name__ == "__main__":
    main()
