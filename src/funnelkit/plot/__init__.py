"""Review-ready charts of funnelkit's tables (DESIGN §5).

Every chart takes an :class:`funnelkit.EventLog` (and computes what it needs) or the
matching precomputed table, draws on ``ax`` — default: a new figure sized for the data,
with constrained layout — and returns the Axes. No chart shows, saves, calls
``tight_layout`` or changes matplotlib's global state (rcParams), and matplotlib is
imported only when a chart is drawn: ``import funnelkit.plot`` does not import it.

* :func:`funnel` — deals reaching each stage, conversion and drop-off
* :func:`flow` — stage-flow (Sankey-like) diagram of the transition table
* :func:`heatmap` — transition matrix of exit shares
* :func:`dwell` — dwell per stage, censored visits, Kaplan–Meier median and p90
* :func:`survival` — Kaplan–Meier "still in stage" curves, per stage or per segment
* :func:`key_stages` — effects with intervals and reasons from the key-stage table
* :func:`segments` — conversion per stage per segment with its intervals (stages not
  settled yet drawn hollow)
* :func:`trend` — conversion, win rate or cycle time per cohort with intervals
* :func:`calibration` — reliability diagram of a forecast backtest
* :func:`incidence` — cumulative incidence of advancing, lost, stale and still open
* :func:`waterfall` — the pipeline waterfall of ``movement`` (with a field history: pulled
  in, pushed out, amount changes), which reconciles
* :func:`slippage` — share of deals whose close date was pushed, per stage or segment
* :func:`forecast` — fan chart of a per-period forecast (wins or amount, 50/80/95% bands)
"""

from ._calibration import calibration
from ._dwell import dwell, survival
from ._flow import flow
from ._forecast import forecast
from ._funnel import funnel
from ._heatmap import heatmap
from ._incidence import incidence
from ._keystages import key_stages
from ._segments import segments
from ._trend import trend
from ._waterfall import slippage, waterfall

__all__ = [
    "calibration",
    "dwell",
    "flow",
    "forecast",
    "funnel",
    "heatmap",
    "incidence",
    "key_stages",
    "segments",
    "slippage",
    "survival",
    "trend",
    "waterfall",
]
