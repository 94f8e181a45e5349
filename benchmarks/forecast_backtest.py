"""Rolling-origin backtests of the forecast (issue 19): BPIC 2012 and synthetic logs.

Prints (and with ``--append`` adds to ``benchmarks/RESULTS.md``) one table per log: each
cut's open deals, predicted and actual wins, the interval and whether it covered, and
the Brier score of the forecast, the horizon-aware naive and the win-rate naive; then the
pooled scores.

    python benchmarks/forecast_backtest.py [--append]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

import funnelkit as fk

HERE = Path(__file__).resolve().parent
BPIC = HERE.parent.parent / "shared" / "data" / "bpic2012.parquet"


def bpic_log() -> fk.EventLog:
    ev = pd.read_parquet(BPIC)
    a = ev[(ev["lifecycle"] == "COMPLETE") & ev["activity"].str.startswith("A_")]
    return fk.EventLog(
        a.reset_index(drop=True),
        deal="case_id",
        stage="activity",
        time="ts",
        won=["A_APPROVED", "A_REGISTERED", "A_ACTIVATED"],
        lost=["A_DECLINED", "A_CANCELLED"],
        amount="amount_req",
    )


def synthetic_log(seed: int) -> fk.EventLog:
    ev = fk.datasets.synthetic(20_000, seed=seed)
    return fk.EventLog(ev, **fk.datasets.SAMPLE_KWARGS)


def _num(x: float, d: int = 2) -> str:
    return "–" if not np.isfinite(x) else f"{x:,.{d}f}"


def cut_table(bt) -> str:
    head = (
        "| cut | open deals | expected wins (95% interval) | observed | ratio | covered | "
        "Brier | Brier naive | Brier win-rate naive | naive ratio | win-rate naive ratio |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in bt.cuts.itertuples():
        wr = r.win_rate_wins / r.observed_wins if r.observed_wins else np.nan
        rows.append(
            f"| {r.cut.date()} | {r.deals:,} | {_num(r.expected_wins, 1)} "
            f"({_num(r.wins_low, 1)}–{_num(r.wins_high, 1)}) | {r.observed_wins:,} | "
            f"{_num(r.ratio)} | {'yes' if r.covered else 'no'} | {r.brier:.4f} | "
            f"{r.brier_naive:.4f} | {r.brier_naive_win_rate:.4f} | {_num(r.naive_ratio)} | "
            f"{_num(wr)} |"
        )
    return head + "\n".join(rows) + "\n"


def score_table(bt) -> str:
    head = (
        "| model | cuts | Brier (pooled) | skill vs naive | ratio min–median–max | "
        "covered | cuts beating naive |\n|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in bt.scores.itertuples():
        cov = "–" if not np.isfinite(r.covered) else f"{int(r.covered)} of {r.cuts}"
        rows.append(
            f"| {r.model} | {r.cuts} | {r.brier:.4f} | {r.brier_skill:+.3f} | "
            f"{_num(r.ratio_min)}–{_num(r.ratio_median)}–{_num(r.ratio_max)} | {cov} | "
            f"{r.beats_naive} of {r.cuts} |"
        )
    return head + "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--append", action="store_true")
    args = ap.parse_args()
    out = [
        "## Rolling-origin forecast backtests (issue 19 item 1)\n",
        f"`python benchmarks/forecast_backtest.py` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.processor() or platform.machine()}, nproc={os.cpu_count()}; Python "
        f"{platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f'funnelkit {fk.__version__}. `fk.backtest` (default `exits="by_dwell"`). *naive*: '
        "per stage, the share of deals open there one horizon before the cut that were won "
        "by the cut; *win-rate naive*: the stage's `win_rate_from` at the cut (ignores the "
        "horizon; the only naive before). The interval is the open deals' Bernoulli "
        "variance only (item 2 will add the model's own uncertainty).\n",
    ]
    bpic = bpic_log()
    cuts = list(pd.date_range("2011-11-01", periods=8, freq="14D", tz="UTC"))
    for exits in ("by_dwell", "shares"):
        t0 = time.perf_counter()
        bt = fk.backtest(bpic, cuts, "30D", exits=exits)
        took = time.perf_counter() - t0
        out.append(
            f"\n**BPIC 2012 (A_ events), 8 cuts every 14 days from 2011-11-01, 30 days, "
            f'`exits="{exits}"`** ({took:.1f} s)\n\n' + cut_table(bt) + "\n" + score_table(bt)
        )
    t0 = time.perf_counter()
    bt = fk.backtest(bpic, horizon="30D")
    out.append(
        f"\n**BPIC 2012, the default rolling cuts (12, evenly spaced), 30 days** "
        f"({time.perf_counter() - t0:.1f} s)\n\n" + score_table(bt)
    )
    for seed in (1, 2):
        t0 = time.perf_counter()
        bt = fk.backtest(synthetic_log(seed), horizon="30D")
        out.append(
            f"\n**synthetic 20,000 deals, seed {seed} (`SAMPLE_KWARGS`), default rolling "
            f"cuts, 30 days** ({time.perf_counter() - t0:.1f} s)\n\n" + score_table(bt)
        )
    text = "".join(out)
    print(text)
    if args.append:
        with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
