"""Rolling-origin backtests of the forecast (issue 19): BPIC 2012 and synthetic logs.

Prints (and with ``--append`` adds to ``benchmarks/RESULTS.md``) one table per log: each
cut's open deals, predicted and actual wins, the interval and whether it covered, and
the Brier score of the forecast, the horizon-aware naive and the win-rate naive; then the
pooled scores; the half-lives :func:`funnelkit.tune_recency` compares on BPIC; and the
coverage of the 95% interval of total wins over many synthetic logs and cuts (a mature
log, and young logs where most of the history is still open).

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
        "Brier | Brier naive | Brier win-rate naive | naive ratio | win-rate naive ratio | "
        "model sd | unresolved | enough history |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in bt.cuts.itertuples():
        wr = r.win_rate_wins / r.observed_wins if r.observed_wins else np.nan
        rows.append(
            f"| {r.cut.date()} | {r.deals:,} | {_num(r.expected_wins, 1)} "
            f"({_num(r.wins_low, 1)}–{_num(r.wins_high, 1)}) | {r.observed_wins:,} | "
            f"{_num(r.ratio)} | {'yes' if r.covered else 'no'} | {r.brier:.4f} | "
            f"{r.brier_naive:.4f} | {r.brier_naive_win_rate:.4f} | {_num(r.naive_ratio)} | "
            f"{_num(wr)} | {_num(r.wins_sd_model, 1)} | {_num(r.wins_unresolved, 1)} | "
            f"{'yes' if r.enough_history else 'no'} |"
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


def coverage_study(label: str, n_deals: int, seeds: int, **synth) -> str:
    """Coverage of the 95% interval of total wins over ``seeds`` logs x 8 rolling cuts."""
    t0 = time.perf_counter()
    parts = []
    for seed in range(seeds):  # loop over simulated logs
        ev = fk.datasets.synthetic(n_deals, seed=1000 + seed, **synth)
        log = fk.EventLog(ev, **fk.datasets.SAMPLE_KWARGS)
        parts.append(fk.backtest(log, horizon="30D", n_cuts=8, n_boot=30, seed=seed).cuts)
    c = pd.concat(parts, ignore_index=True)
    n = len(c)
    rate = float(c["covered"].mean())
    se = np.sqrt(rate * (1 - rate) / n)
    half = (c["wins_high"] - c["wins_low"]) / (2 * 1.959964)
    z = (c["observed_wins"] - c["expected_wins"]) / half
    plain = c["wins_unresolved"] < 0.01
    return (
        f"| {label} | {seeds} × 8 = {n} | {rate:.1%} ± {se:.1%} | "
        f"{c.loc[plain, 'covered'].mean():.1%} ({int(plain.sum())}) | "
        f"{c.loc[~plain, 'covered'].mean():.1%} ({int((~plain).sum())}) | "
        f"{z.mean():+.2f} | {z.std():.2f} | {c['ratio'].median():.2f} | "
        f"{(~c['enough_history']).mean():.0%} | {time.perf_counter() - t0:.0f} s |\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--append", action="store_true")
    args = ap.parse_args()
    out = [
        "## Forecast intervals with the model's own uncertainty, young histories, recency "
        "(issue 19 items 1–3)\n",
        f"`python benchmarks/forecast_backtest.py` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.processor() or platform.machine()}, nproc={os.cpu_count()}; Python "
        f"{platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f'funnelkit {fk.__version__}. `fk.backtest` (default `exits="by_dwell"`). *naive*: '
        "per stage, the share of deals open there one horizon before the cut that were won "
        "by the cut; *win-rate naive*: the stage's `win_rate_from` at the cut (ignores the "
        "horizon; the only naive before). The 95% interval: the open deals' chance plus "
        "the model's deal-level bootstrap variance (`n_boot=100`, *model sd*), widened by "
        "the wins the history cannot tell yet (*unresolved*: curves that end before the "
        "deals' horizons, extrapolated for the point forecast).\n",
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
    tune = fk.tune_recency(bpic, "30D")
    rows = "".join(
        f"| {'none' if pd.isna(r.half_life) else f'{r.half_life.days} days'} | {r.brier:.4f} | "
        f"{r.brier_skill:+.3f} | {_num(r.ratio_min)}–{_num(r.ratio_median)}–"
        f"{_num(r.ratio_max)} | {'**yes**' if r.best else ''} |\n"
        for r in tune.itertuples()
    )
    out.append(
        f'\n**BPIC 2012, `fk.tune_recency(log, "30D")`** (12 rolling cuts; '
        f"{time.perf_counter() - t0:.1f} s)\n\n| half-life | Brier | skill vs naive | "
        "ratio min–median–max | chosen |\n|---|---|---|---|---|\n" + rows
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
    out.append(
        "\n**Coverage of the 95% interval of total wins, synthetic logs** (`SAMPLE_KWARGS`, "
        "30-day horizon, 8 default rolling cuts per log, `n_boot=30`; *z*: (observed − "
        "expected) / (interval half-width / 1.96), ideally mean 0 and sd 1)\n\n"
        "| logs | cuts | covered | when nothing unresolved (cuts) | with unresolved wins "
        "(cuts) | z mean | z sd | median ratio | cuts short of history | time |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
        + coverage_study("mature: 3,000 deals over 18 months", 3000, 60)
        + coverage_study(
            "young: 3,000 deals over 4 months", 3000, 60, start="2025-01-01", end="2025-04-30"
        )
    )
    text = "".join(out)
    print(text)
    if args.append:
        with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
