"""funnelkit: sales-stage analytics from event logs of deals."""

from . import datasets, plot
from ._memory import tuned_allocator
from ._version import __version__
from .businessdays import BusinessCalendar
from .errors import EmptyLogError, EventLogError, FunnelkitWarning, InvalidParameterError
from .io import read_events
from .log import EventLog
from .quality import QualityReport

__all__ = [
    "backtest",
    "backtest_periods",
    "BusinessCalendar",
    "EventLog",
    "EmptyLogError",
    "EventLogError",
    "FunnelkitWarning",
    "InvalidParameterError",
    "QualityReport",
    "__version__",
    "datasets",
    "plot",
    "read_events",
    "read_sql",
    "load",
    "tune_recency",
    "tuned_allocator",
]


def __getattr__(name: str):
    # fk.backtest and fk.tune_recency live in funnelkit.forecast, which imports scipy:
    # load it on first use
    if name in ("backtest", "tune_recency"):
        from . import forecast

        return getattr(forecast, name)
    if name == "backtest_periods":
        from ._period_forecast import backtest_periods

        return backtest_periods
    if name == "load":  # funnelkit.state: reads Parquet
        from .state import load

        return load
    if name == "read_sql":  # funnelkit.sql: database drivers load on first use
        from .sql import read_sql

        return read_sql
    raise AttributeError(f"module 'funnelkit' has no attribute {name!r}")
