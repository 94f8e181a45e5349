"""What a reader acts on: KPIs per period, the deals to act on, the executive summary.

Plain numbers for :mod:`funnelkit.report` (tables and ``summary.json``); the page words them
(:mod:`funnelkit._report_html`, in the report's language).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._report_html import number

if TYPE_CHECKING:
    from .log import EventLog

#: going cold by default: no event for this many days (without ``stale_after``)
COLD_DAYS = 30.0
#: the KPIs of a period (``kpis_by_period`` columns after the period's own)
PERIOD_KPIS = (
    "created",
    "won",
    "lost",
    "stale",
    "win_rate",
    "won_amount",
    "avg_won_amount",
    "median_won_cycle_time_days",
)

_DAY_NS = 86_400 * 10**9


def _ns(s: pd.Series) -> np.ndarray:
    """Times as UTC nanoseconds (int64; NaT as the minimum int64)."""
    t = pd.to_datetime(s)
    if getattr(t.dt, "tz", None) is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return t.astype("datetime64[ns]").to_numpy().view(np.int64)


def _resolved_ns(deals: pd.DataFrame, stale_after: Any) -> np.ndarray:
    """When each deal was resolved, UTC ns: won / lost at its first terminal event (first
    event + cycle time), stale when it went silent for ``stale_after`` (last event +
    stale_after); NaT (min int64) for open deals."""
    nat = np.iinfo(np.int64).min
    first = _ns(deals["first_event"])
    cyc = pd.to_timedelta(deals["cycle_time"]).astype("timedelta64[ns]").to_numpy().view(np.int64)
    out = np.full(len(deals), nat, dtype=np.int64)
    closed = deals["outcome"].isin(["won", "lost"]).to_numpy() & (cyc != nat)
    out[closed] = first[closed] + cyc[closed]
    if stale_after is not None:
        stale = (deals["outcome"] == "stale").to_numpy()
        out[stale] = _ns(deals["last_event"])[stale] + int(pd.Timedelta(stale_after).value)
    return out


def window_kpis(
    deals: pd.DataFrame, resolved_ns: np.ndarray, start_ns: int, end_ns: int
) -> dict[str, Any]:
    """The KPIs of the window [start, end): deals created in it, deals resolved in it by
    outcome, their win rate (won ÷ resolved, as the whole log's), the amount won, the
    average won amount and the median won cycle time (days) of the deals won in it."""
    first = _ns(deals["first_event"])
    created = int(((first >= start_ns) & (first < end_ns)).sum())
    inside = (resolved_ns >= start_ns) & (resolved_ns < end_ns)
    outcome = deals["outcome"].to_numpy()
    won_mask = inside & (outcome == "won")
    won, lost = int(won_mask.sum()), int((inside & (outcome == "lost")).sum())
    stale = int((inside & (outcome == "stale")).sum())
    resolved = won + lost + stale
    amount = deals["amount"].to_numpy(dtype=float) if "amount" in deals else None
    won_amount = float(np.nansum(amount[won_mask])) if amount is not None else np.nan
    cyc = pd.to_timedelta(deals["cycle_time"]).dt.total_seconds().to_numpy() / 86_400
    return {
        "created": created,
        "won": won,
        "lost": lost,
        "stale": stale,
        "win_rate": won / resolved if resolved else np.nan,
        "won_amount": won_amount
        if won and amount is not None
        else (0.0 if amount is not None else np.nan),
        "avg_won_amount": float(np.nanmean(amount[won_mask]))
        if won and amount is not None
        else np.nan,
        "median_won_cycle_time_days": float(np.nanmedian(cyc[won_mask])) if won else np.nan,
    }


def kpis_by_period(log: EventLog, deals: pd.DataFrame, freq: str) -> pd.DataFrame:
    """The KPIs per calendar period (UTC) from the first deal's creation to ``as_of``.

    Returns one row per period: ``period`` (label, e.g. ``2025Q2``), ``period_start``,
    ``period_end`` (exclusive), ``complete`` (the period ended by ``as_of``), then
    :data:`PERIOD_KPIS`. A deal counts as created in the period of its first event, and as
    won / lost / stale in the period it was resolved: its first won/lost event, or, for a
    stale deal, its last event + ``stale_after`` (the moment it went silent too long).
    """
    from .monitoring import _period_freq

    pfreq = _period_freq(freq)
    as_of = pd.Timestamp(log.as_of)
    tz = as_of.tz
    naive_as_of = as_of.tz_convert("UTC").tz_localize(None) if tz is not None else as_of
    if deals.empty:
        first = naive_as_of
    else:
        first = pd.Timestamp(int(_ns(deals["first_event"]).min()))
    periods = pd.period_range(start=first, end=naive_as_of, freq=pfreq)
    resolved = _resolved_ns(deals, log.stale_after)
    rows = []
    as_of_ns = naive_as_of.value
    for p in periods:
        s, e = p.start_time.as_unit("ns").value, (p + 1).start_time.as_unit("ns").value
        rows.append(
            {
                "period": str(p),
                "period_start": pd.Timestamp(s),
                "period_end": pd.Timestamp(e),
                "complete": bool(e <= as_of_ns),
                **window_kpis(deals, resolved, s, min(e, as_of_ns + 1)),
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        out = pd.DataFrame(
            columns=["period", "period_start", "period_end", "complete", *PERIOD_KPIS]
        )
    for c in ("period_start", "period_end"):
        out[c] = pd.to_datetime(out[c])
        if tz is not None:
            out[c] = out[c].dt.tz_localize("UTC")
    out["period"] = out["period"].astype(object)
    for c in ("created", "won", "lost", "stale"):
        out[c] = out[c].astype(np.int64)
    out["complete"] = out["complete"].astype(bool)
    return out.reset_index(drop=True)


def compare_windows(
    log: EventLog, deals: pd.DataFrame, by_period: pd.DataFrame, period: Any
) -> dict[str, Any] | None:
    """The current and the previous window, for the KPI cards: with ``period``, since that
    date against the same length before it; else the last complete period against the one
    before. None when there is no previous window."""
    resolved = _resolved_ns(deals, log.stale_after)
    as_of = pd.Timestamp(log.as_of)
    as_of = as_of.tz_convert("UTC").tz_localize(None) if as_of.tz is not None else as_of
    if period is not None:
        p = pd.Timestamp(period)
        p = p.tz_convert("UTC").tz_localize(None) if p.tz is not None else p
        if not p < as_of:
            return None
        length = as_of.value + 1 - p.value
        cur = (p.value, as_of.value + 1)
        prev = (p.value - length, p.value)
        return {
            "kind": "since",
            "current": {"start": p, "end": as_of, **window_kpis(deals, resolved, *cur)},
            "previous": {
                "start": pd.Timestamp(prev[0]),
                "end": pd.Timestamp(prev[1]),
                **window_kpis(deals, resolved, *prev),
            },
        }
    done = by_period.loc[by_period["complete"]]
    if len(done) < 2:
        return None
    cur_row, prev_row = done.iloc[-1], done.iloc[-2]
    return {
        "kind": "period",
        "current": {
            "label": cur_row["period"],
            "start": cur_row["period_start"],
            "end": cur_row["period_end"],
            **{k: cur_row[k] for k in PERIOD_KPIS},
        },
        "previous": {
            "label": prev_row["period"],
            "start": prev_row["period_start"],
            "end": prev_row["period_end"],
            **{k: prev_row[k] for k in PERIOD_KPIS},
        },
    }


def act_on(
    log: EventLog,
    deals: pd.DataFrame,
    dwell: pd.DataFrame,
    key_stages: Sequence[str],
    *,
    cold_after: Any = None,
    by: Sequence[str] = (),
) -> pd.DataFrame:
    """The open deals to act on, largest amount first.

    A deal is listed when it is open and at least one holds: ``stalled`` — in its stage for
    longer than the stage's p90 dwell (Kaplan–Meier, ``log.dwell()``); ``key_stage`` — it sits
    at a key stage; ``going_cold`` — no event for ``cold_after`` (default: half of
    ``stale_after``, else :data:`COLD_DAYS` days), or, when activities are attached
    (:meth:`EventLog.with_activities`), no touch nor stage change for longer than the
    stage's p90 gap between touches (``deals()``'s ``going_cold``). ``large`` marks amounts
    in the top 10% of open deals.

    Columns: ``deal``, ``owner`` and the ``by`` attributes (when the log carries them),
    ``stage``, ``entered``, ``days_in_stage``, ``stage_p90_days``,
    ``days_since_last_event``, ``days_since_touch`` and ``stage_gap_p90_days`` (with
    activities), ``amount`` (when the log has amounts), ``stalled``,
    ``key_stage``, ``going_cold``, ``large``, ``reasons`` (the flags that hold, joined by
    ``;``).
    """
    as_of = pd.Timestamp(log.as_of)
    if cold_after is None:
        cold = (
            pd.Timedelta(log.stale_after) / 2
            if log.stale_after is not None
            else pd.Timedelta(days=COLD_DAYS)
        )
    else:
        cold = pd.Timedelta(cold_after)
    v = log.visits(columns=["deal", "stage", "entered", "censored"])
    if hasattr(v, "compute"):  # a distributed log: only the open visits come back
        v = v[v["censored"]].compute()
    v = v.loc[v["censored"].to_numpy(dtype=bool)]
    d = deals.loc[deals["outcome"] == "open"]
    attrs = [c for c in dict.fromkeys(["owner", *by]) if c in d.columns]
    touched = "since_touch" in d.columns  # activities attached: going cold by touches
    cols = ["deal", "last_event", *attrs] + (["amount"] if "amount" in d.columns else [])
    if touched:
        cols += ["since_touch", "stage_gap_p90", "going_cold"]
    m = v[["deal", "stage", "entered"]].merge(d[cols], on="deal", how="inner")
    m["stage"] = m["stage"].astype(object)
    day = pd.Timedelta(days=1)
    in_stage = (as_of - m["entered"]) / day
    silent = (as_of - m["last_event"]) / day
    p90 = (
        dwell.set_index(dwell["stage"].astype(object))["p90"] / day
        if len(dwell)
        else pd.Series(dtype=float)
    )
    stage_p90 = m["stage"].map(p90).astype(float)
    out = pd.DataFrame(
        {
            "deal": m["deal"],
            **{c: m[c] for c in attrs},
            "stage": m["stage"],
            "entered": m["entered"],
            "days_in_stage": in_stage.astype(float),
            "stage_p90_days": stage_p90,
            "days_since_last_event": silent.astype(float),
        }
    )
    if touched:
        out["days_since_touch"] = (m["since_touch"] / day).astype(float)
        out["stage_gap_p90_days"] = (m["stage_gap_p90"] / day).astype(float)
    if "amount" in m.columns:
        out["amount"] = m["amount"].astype(float)
    out["stalled"] = (in_stage > stage_p90).fillna(False).astype(bool)
    out["key_stage"] = m["stage"].isin(list(key_stages)).astype(bool)
    if touched:
        out["going_cold"] = m["going_cold"].fillna(False).astype(bool).to_numpy()
    else:
        out["going_cold"] = (silent > cold / day).astype(bool)
    if "amount" in out.columns and d["amount"].notna().any():
        cut = float(np.nanquantile(d["amount"].to_numpy(dtype=float), 0.9))
        out["large"] = (out["amount"] >= cut).fillna(False).astype(bool)
    else:
        out["large"] = False
    flags = ["stalled", "key_stage", "going_cold"]
    out = out.loc[out[flags].any(axis=1)]
    out["reasons"] = [
        ";".join(f for f, on in zip([*flags, "large"], row, strict=True) if on)
        for row in out[[*flags, "large"]].itertuples(index=False, name=None)
    ]
    sort = ["amount", "days_in_stage"] if "amount" in out.columns else ["days_in_stage"]
    out = out.sort_values(sort, ascending=False, kind="stable", na_position="last")
    return out.reset_index(drop=True)


def headline(
    tables: Mapping[str, pd.DataFrame],
    summary: Mapping[str, Any],
    windows: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """The executive summary as data: one dict per sentence, ``kind`` and ``section`` (the
    page section its numbers come from) and the numbers; the page words them."""
    out: list[dict[str, Any]] = []
    f = tables["funnel"]
    if len(f) and f["dropped"].sum() > 0:
        i = int(f["dropped"].to_numpy().argmax())
        r = f.iloc[i]
        out.append(
            {
                "kind": "lost_most",
                "section": "funnel",
                "stage": str(r["stage"]),
                "dropped": int(r["dropped"]),
                "reached": int(r["reached"]),
                "conversion": number(r["conversion"]),
                "dropped_total": int(f["dropped"].sum()),
            }
        )
    if windows is not None:
        c, p = windows["current"], windows["previous"]
        out.append(
            {
                "kind": "change",
                "section": "kpis",
                "window": windows["kind"],
                "label": None if windows["kind"] != "period" else str(c["label"]),
                "previous_label": None if windows["kind"] != "period" else str(p["label"]),
                "start": pd.Timestamp(c["start"]).isoformat(),
                "win_rate": number(c["win_rate"]),
                "previous_win_rate": number(p["win_rate"]),
                "won": int(c["won"]),
                "previous_won": int(p["won"]),
                "won_amount": number(c["won_amount"]),
            }
        )
    ks = tables["key_stages"]
    lev = ks.loc[(ks["signal"] == "leverage") & ks["is_key"].astype(bool)] if len(ks) else ks
    if len(lev):
        r = lev.loc[lev["effect"].astype(float).idxmax()]
        per = None
        if windows is not None:
            per = int(windows["current"]["created"])
        gain = float(r["effect"])
        avg = summary.get("avg_won_amount")
        n = per if per else 1000
        out.append(
            {
                "kind": "act",
                "section": "key-stages",
                "stage": str(r["stage"]),
                "baseline": number(r["baseline"]),
                "lifted": number(float(r["baseline"]) + gain),
                "gain": number(gain),
                "deals": n,
                "per_window": per is not None,
                "extra_wins": number(gain * n),
                "extra_amount": None if avg is None else number(gain * n * float(avg)),
            }
        )
    a = tables.get("act_on")
    if a is not None and len(a):
        amount = number(a["amount"].sum()) if "amount" in a.columns else None
        out.append(
            {
                "kind": "act_on",
                "section": "act-on",
                "deals": int(len(a)),
                "amount": amount,
                "stalled": int(a["stalled"].sum()),
                "going_cold": int(a["going_cold"].sum()),
                "key_stage": int(a["key_stage"].sum()),
            }
        )
    reasons = summary.get("rows_by_reason", {})
    not_used = sum(int(n) for r, n in reasons.items() if r not in ("repeat", "terminal_run"))
    n_warn = len(summary.get("warnings", []))
    if n_warn or not_used:
        out.append(
            {
                "kind": "quality",
                "section": "quality",
                "rows_not_used": not_used,
                "rows_in": int(summary["rows_in"]),
                "warnings": n_warn,
            }
        )
    return out
