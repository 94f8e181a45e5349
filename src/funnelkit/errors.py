"""Exceptions raised by funnelkit."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pandas as pd

__all__ = ["EmptyLogError", "EventLogError", "FunnelkitWarning", "InvalidParameterError"]


class EventLogError(ValueError):
    """Bad input for an event log.

    The message names the column or parameter, what was expected, what was found and how
    to fix it. The offending input rows travel with the error as ``failure_cases`` (a
    DataFrame with a ``row`` column giving the position in the input and a ``reason``
    column), so an ETL job can log or quarantine them.

    Examples
    --------
    >>> import pandas as pd
    >>> import funnelkit as fk
    >>> bad = pd.DataFrame({"deal": ["a"], "stage": ["A"], "ts": ["not a date"]})
    >>> try:
    ...     fk.EventLog(bad, deal="deal", stage="stage", time="ts")
    ... except fk.EventLogError as err:
    ...     print(err.failure_cases["reason"].tolist())
    ['unparseable_time']
    """

    def __init__(self, message: str, failure_cases: pd.DataFrame | None = None) -> None:
        super().__init__(message)
        if failure_cases is None:
            failure_cases = pd.DataFrame({"row": pd.Series([], dtype="int64"), "reason": []})
        self.failure_cases = failure_cases


class EmptyLogError(EventLogError):
    """The input has no rows at all (not: every row was rejected).

    A scheduled job can tell a day without new events from bad input by this class.

    Examples
    --------
    >>> import pandas as pd
    >>> import funnelkit as fk
    >>> empty = pd.DataFrame({"deal": [], "stage": [], "ts": []})
    >>> try:
    ...     fk.EventLog(empty, deal="deal", stage="stage", time="ts")
    ... except fk.EmptyLogError as err:
    ...     print(err)
    The event log is empty: no rows to analyse.
    """


class InvalidParameterError(EventLogError, TypeError):
    """A parameter value that the function does not accept.

    The message names the function, the parameter, the value given and what is allowed.
    Raised before any work is done where the value alone is wrong (``alpha=2``), and by the
    function's own checks where only the data can tell (a stage the log does not have).
    It is a :class:`ValueError` and a :class:`TypeError`, and — so that an ETL job's
    ``except fk.EventLogError`` keeps catching every bad input, as it did before the
    parameter checks were unified — an :class:`EventLogError` with no ``failure_cases``
    rows. Catch ``InvalidParameterError`` to tell a wrong argument from bad data.

    Examples
    --------
    >>> import funnelkit as fk
    >>> log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    >>> try:
    ...     log.key_stages(alpha=2)
    ... except fk.InvalidParameterError as err:
    ...     print(err)
    EventLog.key_stages: `alpha` must be a number in the range (0, 1); got 2 (int).
    """


class FunnelkitWarning(UserWarning):
    """A result that is computed but probably not what the caller meant.

    Raised (with :func:`warnings.warn`) when an analysis runs on input that makes its answer
    empty or misleading — e.g. a cohort trend whose every value is NaN, or a revenue funnel
    whose lost deals weigh nothing. The message says why and what to do. funnelkit never
    changes the warnings filters; silence one with :func:`warnings.filterwarnings` and this
    class.

    Examples
    --------
    >>> import warnings
    >>> import funnelkit as fk
    >>> issubclass(fk.FunnelkitWarning, UserWarning)
    True
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", fk.FunnelkitWarning)
    ...     warnings.warn("example", fk.FunnelkitWarning)
    """


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str) -> None:
    """Issue a :class:`FunnelkitWarning` attributed to the first caller outside funnelkit
    (so the warning names the user's line, whatever the depth of the call inside the
    package). The warnings filters are left as they are."""
    level, frame = 2, sys._getframe(1)  # level 2: the caller of warn()
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, FunnelkitWarning, stacklevel=level)


#: more bootstrap draws than this add nothing to a 95% interval and take hours
MAX_BOOT = 100_000


def int_param(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``, or a clear error naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidParameterError(
            f"Parameter `{name}` must be an int; got {type(value).__name__}."
        )
    if value < low:
        raise InvalidParameterError(f"Parameter `{name}` must be >= {low}; got {value}.")
    if high is not None and value > high:
        raise InvalidParameterError(
            f"Parameter `{name}` must be <= {high:,}; got {value:,} (more draws than that do "
            "not change a 95% interval and would take hours)."
            if name == "n_boot"
            else f"Parameter `{name}` must be <= {high:,}; got {value:,}."
        )
    return int(value)
