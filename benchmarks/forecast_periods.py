"""Backtests of the per-period forecast (issue 19, item 4): interval coverage on
synthetic logs with seasonal arrivals, and BPIC 2012.

Seasonal arrivals: ``fk.datasets.synthetic`` creates deals uniformly in time; deals are
independent, so dropping whole deals with a probability that depends on their creation
month (:data:`KEEP`) gives a log whose creations follow a known seasonal pattern.

    python benchmarks/forecast_periods.py [--seeds 10] [--append]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from forecast_backtest import BPIC, bpic_log  # one BPIC loader for the benchmarks

import funnelkit as fk

HERE = Path(__file__).resolve().parent
#: probability of keeping a deal created in month 1..12 (a peak in autumn, a trough in summer)
KEEP = np.array([0.7, 0.6, 0.8, 0.7, 0.5, 0.35, 0.25, 0.4, 0.8, 1.0, 0.95, 0.6])


def seasonal_events(n_deals: int, seed: int, start: str, end: str) -> pd.DataFrame:
    """A synthetic log thinned by creation month (whole deals dropped)."""
    ev = fk.datasets.synthetic(n_deals, seed=seed, start=start, end=end)
    created = ev.groupby("deal_id")["ts"].min()
    rng = np.random.default_rng(10_000 + seed)
    keep = rng.random(len(created)) < KEEP[created.dt.month.to_numpy() - 1]
    kept = set(created.index[keep])
    return ev[ev["deal_id"].isin(kept)].reset_index(drop=True)


def seasonal_log(n_deals: int, seed: int, start: str = "2022-01-01", end: str = "2025-06-30"):
    return fk.EventLog(seasonal_events(n_deals, seed, start, end), **fk.datasets.SAMPLE_KWARGS)


def summary(t: pd.DataFrame) -> pd.DataFrame:
    """Coverage per periods ahead (and arrival model) with binomial standard errors."""
    rows = []
    for (model, ahead), d in t.groupby(["arrival_model", "ahead"]):
        n = len(d)
        cov = d["covered"].mean()
        rows.append(
            {
                "arrival model": model,
                "ahead": int(ahead),
                "forecasts": n,
                "95% covered": f"{cov:.1%} ± {np.sqrt(0.95 * 0.05 / n):.1%}",
                "80% covered": f"{d['covered80'].mean():.1%}",
                "50% covered": f"{d['covered50'].mean():.1%}",
                "amount 95% covered": f"{d['amount_covered'].mean():.1%}",
                "Σ expected / Σ observed wins": f"{d['expected_wins'].sum() / d['observed_wins'].sum():.3f}",
            }
        )
    return pd.DataFrame(rows)


def md(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        out.append("| " + " | ".join(str(x) for x in r) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--n-deals", type=int, default=12_000)
    ap.add_argument("--cuts", type=int, default=8)
    ap.add_argument("--append", action="store_true")
    ap.add_argument("--n-boot", type=int, default=0)
    ap.add_argument("--freqs", default="ME,QE")
    ap.add_argument("--no-bpic", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    parts = {}
    ks = {"ME": 3, "QE": 2}
    for freq in args.freqs.split(",") if args.seeds else ():
        k = ks[freq]
        tabs = []
        for seed in range(args.seeds):  # loop over seeds
            log = seasonal_log(args.n_deals, seed)
            bt = fk.backtest_periods(log, freq, k, n_cuts=args.cuts, seed=seed, n_boot=args.n_boot)
            tabs.append(bt.periods.assign(seed=seed))
            print(freq, seed, f"{time.time() - t0:.0f}s", bt, flush=True)
        parts[freq] = pd.concat(tabs, ignore_index=True)
    syn_time = time.time() - t0
    text = [
        "\n## Forecast per period: interval coverage (issue 19, item 4)\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, pandas {pd.__version__}; "
        f"{pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} UTC. "
        "`python benchmarks/forecast_periods.py"
        f" --seeds {args.seeds} --n-deals {args.n_deals} --cuts {args.cuts}"
        f" --n-boot {args.n_boot} --freqs {args.freqs}`.\n",
        f"Synthetic logs with seasonal arrivals: `fk.datasets.synthetic({args.n_deals}, "
        "start='2022-01-01', end='2025-06-30')` thinned by creation month (keep "
        f"probabilities {KEEP.tolist()} for January … December), {args.seeds} seeds, "
        f"{args.cuts} rolling cuts each (`fk.backtest_periods`, `n_boot={args.n_boot}`), "
        "2,000 simulations per "
        "forecast. A cut with two years of history uses the seasonal arrival model, an "
        f"earlier one the recent 91-day rate. Runtime {syn_time:.0f} s.\n",
    ]
    for freq, t in parts.items():
        text.append(f"\n`by_period={freq!r}`:\n\n{md(summary(t))}\n")
    if not args.no_bpic and BPIC.exists():
        log = bpic_log()
        # the cuts: every 14 days from 2011-11-01 (Tuesdays)
        cuts = list(pd.date_range("2011-11-01", periods=8, freq="14D", tz="UTC"))
        for freq, k in (("W", 4), ("ME", 2)):
            t1 = time.time()
            pf = {"W": "W", "ME": "M"}[freq]
            ok = [  # the cuts whose k periods have ended by the log's as_of
                c
                for c in cuts
                if (pd.Period(c.tz_localize(None), pf) + k).start_time.tz_localize("UTC")
                <= log.as_of
            ]
            bt = fk.backtest_periods(log, freq, k, cut=ok, n_boot=100)
            p = bt.periods
            show = p[
                ["cut", "period", "ahead", "won_to_date", "expected_wins", "wins_low",
                 "wins_high", "observed_wins", "covered", "ratio"]
            ].copy()  # fmt: skip
            show["cut"] = show["cut"].dt.strftime("%Y-%m-%d")
            show["expected_wins"] = show["expected_wins"].round(1)
            show["ratio"] = show["ratio"].round(2)
            text.append(
                f"\nBPIC 2012 (A_ funnel), `fk.backtest_periods(log, {freq!r}, {k}, cut=..., "
                "n_boot=100)` (the chain's bootstrap in the intervals, as in "
                "`log.forecast`'s default) "
                f"at {len(ok)} of the issue's eight cuts (every 14 days from 2011-11-01; "
                "those whose periods ended by the log's end), "
                f"{time.time() - t1:.0f} s.\n\n{md(summary(p))}\n\n{md(show)}\n"
            )
    out = "".join(text)
    print(out)
    if args.append:
        with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write(out)


if __name__ == "__main__":
    main()
