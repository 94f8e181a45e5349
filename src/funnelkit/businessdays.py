"""Business calendars: durations that count only working days (numpy's busday functions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import EventLogError, InvalidParameterError

__all__ = ["BusinessCalendar"]

_DAY_NS = 86_400 * 10**9
NAT = np.iinfo(np.int64).min


@dataclass(frozen=True)
class BusinessCalendar:
    """Measure durations in business days instead of calendar days.

    A duration from *t1* to *t2* counts the business-day time between them: whole
    business days in between count 1 day each, weekends and holidays count 0, and the
    parts of the first and last day count by their time of day when those days are
    business days. So a deal that enters a stage on Friday 12:00 and leaves on Monday
    12:00 dwells 1 business day. Results are still timedeltas — one business day is
    shown as ``1 days`` — and never exceed the calendar duration. Days are taken in the
    log's clock (UTC for time-zone-aware logs).

    Parameters
    ----------
    weekmask : str or sequence of 7 flags, default "Mon Tue Wed Thu Fri"
        Working weekdays, as for :func:`numpy.busday_count`: day names, a text of seven
        0/1 digits from Monday (``"1111100"``), or seven flags (kept as that text, so
        the calendar is hashable and compares by value).
    holidays : iterable of date-like, default ()
        Non-working dates.

    Examples
    --------
    >>> import pandas as pd
    >>> import funnelkit as fk
    >>> cal = fk.BusinessCalendar(holidays=["2025-12-25"])
    >>> cal.between(pd.Timestamp("2025-12-24 12:00"), pd.Timestamp("2025-12-29 12:00"))
    Timedelta('2 days 00:00:00')
    """

    weekmask: str = "Mon Tue Wed Thu Fri"
    holidays: tuple[Any, ...] = field(default=())

    def __post_init__(self) -> None:
        from ._columns import _on_the_clock

        days = [self.holidays] if isinstance(self.holidays, str) else list(self.holidays)
        for day in days:  # what pandas would read as today, the year 1 or 1970
            if isinstance(day, (bool, int, float, np.number)) or (
                isinstance(day, str) and _on_the_clock(day)
            ):
                raise EventLogError(
                    f"BusinessCalendar: holiday {day!r} is not a date (pandas would read "
                    "it as today, the year 1 or 1970-01-01); give dates such as "
                    "'2025-12-25'."
                )
        mask = self.weekmask
        if not isinstance(mask, str):  # numpy's 7 flags, Monday first: kept as "1111100"
            try:
                flags = [bool(x) for x in mask]
            except TypeError:
                flags = []
            if len(flags) != 7:
                raise EventLogError(
                    f"BusinessCalendar(weekmask={mask!r}): give the working days as text, "
                    "e.g. 'Mon Tue Wed Thu Fri' or '1111100', or as 7 flags from Monday."
                )
            mask = "".join("1" if f else "0" for f in flags)
            object.__setattr__(self, "weekmask", mask)
        try:
            hol = tuple(pd.to_datetime(days).strftime("%Y-%m-%d"))
            cal = np.busdaycalendar(weekmask=mask, holidays=list(hol))
        except (ValueError, TypeError) as exc:
            raise EventLogError(
                f"BusinessCalendar(weekmask={self.weekmask!r}, holidays=...): {exc}. Use a "
                "weekmask like 'Mon Tue Wed Thu Fri' and holidays as dates."
            ) from exc
        object.__setattr__(self, "holidays", hol)
        object.__setattr__(self, "_cal", cal)

    def __reduce__(self) -> tuple[Any, tuple[str, tuple[Any, ...]]]:
        # numpy's busdaycalendar does not pickle: rebuild it from the fields (a calendar
        # travels to the workers of a distributed log)
        return (type(self), (self.weekmask, self.holidays))

    def duration_ns(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Business time in ns between int64 ns ``start`` and ``end`` (NAT propagates).

        Examples
        --------
        >>> import pandas as pd
        >>> import funnelkit as fk
        >>> cal = fk.BusinessCalendar()
        >>> def ns(*ts):
        ...     return pd.to_datetime(list(ts)).as_unit("ns").asi8
        >>> start = ns("2025-01-03 12:00", "2025-01-06 09:00")  # Friday, Monday
        >>> end = ns("2025-01-06 12:00", "2025-01-06 17:00")  # Monday, Monday
        >>> (cal.duration_ns(start, end) // 3_600_000_000_000).tolist()  # hours
        [24, 8]
        """
        start = np.asarray(start, dtype=np.int64)
        end = np.asarray(end, dtype=np.int64)
        bad = (start == NAT) | (end == NAT)
        s = np.where(bad, 0, start)
        e = np.where(bad, 0, end)
        d1 = (s // _DAY_NS).astype("datetime64[D]")
        d2 = (e // _DAY_NS).astype("datetime64[D]")
        cal = self._cal  # type: ignore[attr-defined]
        whole = np.busday_count(d1, d2, busdaycal=cal).astype(np.int64) * _DAY_NS
        f1 = np.where(np.is_busday(d1, busdaycal=cal), s % _DAY_NS, 0)
        f2 = np.where(np.is_busday(d2, busdaycal=cal), e % _DAY_NS, 0)
        out = whole - f1 + f2
        return np.where(bad, NAT, out)

    def between(self, start: Any, end: Any) -> pd.Timedelta:
        """Business time between two timestamps.

        Examples
        --------
        >>> import funnelkit as fk
        >>> cal = fk.BusinessCalendar()
        >>> cal.between("2025-01-03 12:00", "2025-01-06 12:00")  # Friday noon to Monday noon
        Timedelta('1 days 00:00:00')
        """
        a = pd.Timestamp(start).as_unit("ns")
        b = pd.Timestamp(end).as_unit("ns")
        if a.tz is not None:
            a = a.tz_convert("UTC").tz_localize(None)
        if b.tz is not None:
            b = b.tz_convert("UTC").tz_localize(None)
        ns = self.duration_ns(np.array([a.value]), np.array([b.value]))[0]
        return pd.Timedelta(int(ns), unit="ns")


def as_calendar(value: Any) -> BusinessCalendar | None:
    """``None``, a BusinessCalendar, or ``"business"`` (Mon–Fri, no holidays)."""
    if value is None or isinstance(value, BusinessCalendar):
        return value
    if value == "business":
        return BusinessCalendar()
    raise InvalidParameterError(
        f"`calendar`={value!r}: pass fk.BusinessCalendar(weekmask=..., holidays=[...]), "
        "'business' (Mon-Fri) or None (calendar days)."
    )
