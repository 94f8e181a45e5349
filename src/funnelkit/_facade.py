"""The class of the log facade, registered by :mod:`funnelkit.log` where it is defined.

The charts take either an :class:`funnelkit.EventLog` or a table, and forward an
analysis's keywords when given a log. They recognise the log, and read its methods'
signatures, through this registry instead of importing the facade (which imports every
analysis): the layers below the facade never import it.
"""

from __future__ import annotations

from typing import Any

_LOG: list[type] = []


def register(cls: type) -> type:
    """Class decorator: ``cls`` is the log facade."""
    _LOG[:] = [cls]
    return cls


def log_class() -> type:
    """The log facade's class (registered when :mod:`funnelkit` is imported)."""
    if not _LOG:  # pragma: no cover - funnelkit/__init__ imports the facade first
        raise RuntimeError("funnelkit.log is not imported: import funnelkit first")
    return _LOG[0]


def is_log(data: Any) -> bool:
    """Whether ``data`` is an in-memory event log (no log exists before the facade is)."""
    return bool(_LOG) and isinstance(data, _LOG[0])
