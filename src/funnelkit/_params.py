"""One parameter validation for every public function (after scikit-learn's
``utils._param_validation``).

Each public function declares what each of its parameters accepts::

    @validate_params({"alpha": [Interval(Real, 0, 1, closed="neither")], "seed": [Integral, None]})
    def key_stages(log, *, alpha=0.05, seed=0): ...

and a call with a value outside every constraint raises :class:`InvalidParameterError`
naming the function, the parameter, the value and what is allowed, before any work is
done. Only the arguments the caller passed are checked (the defaults are known to be
good), so the check costs a few microseconds. Checks that need the data (a stage name
that must exist in the log, a column that must be carried) stay in the functions and
raise the same error through :func:`invalid`.

A constraint is one of:

* ``None`` — the value None;
* a type (``str``, ``Integral``, ``Real``, ``bool``, ``Mapping``…) — an instance of it
  (``Integral`` and ``Real`` exclude booleans; ``Real`` excludes NaN);
* ``"axes"`` (a matplotlib Axes), ``"boolean"``, ``"callable"``, ``"columns"`` (a column name or a list of them),
  ``"str_list"`` (a string or a list of strings), ``"timestamp"`` (a date string,
  datetime or Timestamp), ``"duration"`` (a positive duration with a unit: ``"30D"``
  or a Timedelta; a bare number is refused, pandas would read nanoseconds);
* :class:`Interval`, :class:`Options`;
* :data:`CHECKED_INSIDE` — the function checks the value itself (data-dependent).
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from numbers import Integral, Real
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pandas as pd

from .errors import InvalidParameterError

P = ParamSpec("P")
R = TypeVar("R")

__all__ = [
    "BY",
    "CHECKED_INSIDE",
    "DATE",
    "PROGRESS",
    "SEED",
    "TITLE",
    "Interval",
    "Options",
    "check_param",
    "invalid",
    "validate_params",
]

#: marks a parameter whose value the function checks itself against the data
CHECKED_INSIDE = "checked inside"


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def invalid(
    func: str, param: str, value: Any, allowed: str, hint: str = ""
) -> InvalidParameterError:
    """The error for `value` of `param` of `func`, which accepts `allowed`."""
    msg = f"{func}: `{param}` must be {allowed}; got {_show(value)}."
    return InvalidParameterError(msg + (f" {hint}" if hint else ""))


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


class Interval:
    """A number between `left` and `right` (None: unbounded).

    Parameters
    ----------
    kind : Integral or Real
        Integers only, or any real number (integers included; never a boolean or NaN).
    left, right : float or None
        The bounds.
    closed : {"both", "left", "right", "neither"}
        Which bounds belong to the interval.
    """

    def __init__(
        self,
        kind: type,
        left: float | None,
        right: float | None,
        *,
        closed: str = "both",
        why: str = "",
    ) -> None:
        if kind not in (Integral, Real):
            raise TypeError("Interval kind must be Integral or Real")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed={closed!r}")
        self.kind, self.left, self.right, self.closed = kind, left, right, closed
        self.why = why  # said after the range, e.g. why there is an upper bound

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool | np.bool_) or not isinstance(value, self.kind):
            return False
        x = float(value)  # type: ignore[arg-type]
        if math.isnan(x):
            return False
        lo_ok = self.left is None or (
            x >= self.left if self.closed in ("both", "left") else x > self.left
        )
        hi_ok = self.right is None or (
            x <= self.right if self.closed in ("both", "right") else x < self.right
        )
        return lo_ok and hi_ok

    def __str__(self) -> str:
        if self.kind is Integral and self.right is None and self.left in (0, 1):
            return "a positive integer" if self.left == 1 else "a non-negative integer"
        what = "an int" if self.kind is Integral else "a number"
        if self.left is not None and self.right is None:
            op = ">=" if self.closed in ("both", "left") else ">"
            return f"{what} {op} {_num(self.left)}"
        if self.right is not None and self.left is None:
            op = "<=" if self.closed in ("both", "right") else "<"
            return f"{what} {op} {_num(self.right)}"
        if self.left is None or self.right is None:
            return what
        lb = "[" if self.closed in ("both", "left") else "("
        rb = "]" if self.closed in ("both", "right") else ")"
        text = f"{what} in the range {lb}{_num(self.left)}, {_num(self.right)}{rb}"
        return f"{text} ({self.why})" if self.why else text

    def invalid_example(self) -> Any:
        """A value of the right type outside the interval (for the common test)."""
        if self.left is not None:
            return self.left - 1
        if self.right is not None:
            return self.right + 1
        return "not a number"


class Options:
    """One of a fixed set of values (compared with ``==``, strings case-sensitive)."""

    def __init__(self, kind: type, values: Iterable[Any]) -> None:
        self.kind = kind
        self.values = tuple(values)

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, self.kind) and value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def invalid_example(self) -> Any:
        return "not-an-option" if self.kind is str else -12345


# constraints shared by many functions
BY = ["columns", None]
SEED = [Interval(Integral, 0, None), None]
PROGRESS = ["boolean", "callable", None]
DATE = ["timestamp", None]
TITLE = [str, None]


def _is_str_list(value: Any) -> bool:
    if isinstance(value, str):
        return True
    if isinstance(value, Mapping | bytes) or not isinstance(value, Iterable):
        return False
    if isinstance(value, pd.DataFrame):
        return False
    if not isinstance(value, list | tuple | set | frozenset | pd.Index | pd.Series | np.ndarray):
        return True  # an iterator: reading it here would empty it; the function checks it
    return all(isinstance(v, str) for v in value)


# dates and durations: the type here; what a string or number means (a date with a year,
# a unit, no months, the log's time zone) the function checks, with messages of its own
def _is_timestamp(value: Any) -> bool:
    return isinstance(value, str | pd.Timestamp | dt.datetime | dt.date | np.datetime64)


def _is_duration(value: Any) -> bool:
    if isinstance(value, np.timedelta64):  # a unitless np.timedelta64 is a number
        return np.datetime_data(value.dtype)[0] != "generic"
    return isinstance(value, str | pd.Timedelta | dt.timedelta)


def _is_axes(value: Any) -> bool:
    axes = sys.modules.get("matplotlib.axes")  # an Axes exists only once matplotlib is in
    return axes is not None and isinstance(value, axes.Axes)


_NAMED: dict[str, tuple[Callable[[Any], bool], str, Any]] = {
    # name: (test, description, an invalid example)
    "axes": (_is_axes, "a matplotlib Axes", 3.5),
    "boolean": (lambda v: isinstance(v, bool | np.bool_), "True or False", "yes"),
    "callable": (callable, "a callable", 3.5),
    "columns": (_is_str_list, "a column name or a list of column names", 3.5),
    "str_list": (_is_str_list, "a string or a list of strings", 3.5),
    "timestamp": (_is_timestamp, "a date (a string such as '2025-01-31' or a Timestamp)", 3.5),
    "duration": (
        _is_duration,
        "a positive duration with a unit (e.g. '90D', '12h' or pd.Timedelta(days=90))",
        "90",
    ),
}

_TYPE_NAMES = {
    str: "a str",
    Integral: "an int",
    Real: "a number",
    bool: "True or False",
    Mapping: "a mapping (dict)",
    pd.DataFrame: "a DataFrame",
}


def _satisfied(constraint: Any, value: Any) -> bool:
    if constraint is None:
        return value is None
    if isinstance(constraint, str):
        return _NAMED[constraint][0](value)
    if isinstance(constraint, type):
        if constraint in (Integral, Real) and isinstance(value, bool | np.bool_):
            return False
        if constraint is Real and isinstance(value, Real) and math.isnan(float(value)):
            return False
        return isinstance(value, constraint)
    return bool(constraint.is_satisfied_by(value))


def describe(constraint: Any) -> str:
    """What a constraint accepts, in words."""
    if constraint is None:
        return "None"
    if isinstance(constraint, str):
        return _NAMED[constraint][1]
    if isinstance(constraint, type):
        return _TYPE_NAMES.get(constraint, f"a {constraint.__name__}")
    return str(constraint)


def invalid_example(constraints: list[Any]) -> Any:
    """A value none of `constraints` accepts (for the common test)."""
    for c in constraints:
        if isinstance(c, str):
            candidate = _NAMED[c][2]
        elif isinstance(c, Interval | Options):
            candidate = c.invalid_example()
        else:
            continue
        if not any(_satisfied(k, candidate) for k in constraints):
            return candidate
    for candidate in (object(), -12345, "not-an-option", 3.5):
        if not any(_satisfied(k, candidate) for k in constraints):
            return candidate
    raise ValueError(f"no invalid example for {constraints}")


def check_param(func: str, param: str, value: Any, constraints: list[Any]) -> None:
    """Raise :class:`InvalidParameterError` unless one of `constraints` accepts `value`."""
    if CHECKED_INSIDE in constraints or any(_satisfied(c, value) for c in constraints):
        return
    words = [describe(c) for c in constraints if c is not None]
    if not words:  # only None is allowed (an option this engine does not have)
        allowed = "None"
    else:
        allowed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
        if None in constraints:
            allowed += " or None"
    hint = ""
    if "duration" in constraints:
        from ._columns import to_duration

        try:
            to_duration(value, param)
        except (ValueError, TypeError) as exc:  # what exactly is wrong with it
            hint = str(exc)
    raise invalid(func, param, value, allowed, hint)


def validate_params(
    constraints: Mapping[str, list[Any]], *, name: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare what each parameter of a public function accepts, and check every call.

    Every parameter of the signature except ``self`` must be declared (the common test
    checks it): :data:`CHECKED_INSIDE` for one the function checks against the data.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        sig = inspect.signature(func)
        params = [p for p in sig.parameters if p not in ("self", "cls")]
        missing = [p for p in params if p not in constraints]
        extra = [p for p in constraints if p not in params]
        if missing or extra:  # a programming error in funnelkit, caught at import
            raise TypeError(f"{func.__qualname__}: undeclared {missing}, unknown {extra}")
        qual = name or func.__qualname__
        if "." not in qual and func.__module__.startswith("funnelkit.plot"):
            qual = f"fk.plot.{qual}"
        checks = {p: list(c) for p, c in constraints.items() if CHECKED_INSIDE not in c}

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError:
                return func(*args, **kwargs)  # Python's own message for a bad call
            for p, value in bound.arguments.items():
                c = checks.get(p)
                if c is not None:
                    check_param(qual, p, value, c)
            return func(*args, **kwargs)

        wrapper.__funnelkit_params__ = dict(constraints)  # type: ignore[attr-defined]
        wrapper.__funnelkit_name__ = qual  # type: ignore[attr-defined]
        return wrapper

    return decorate
