"""Fresh memory is the hidden cost of the hot path.

A kernel over millions of events makes dozens of temporaries of 25–100 MB. With glibc's
default settings every one of them is a fresh ``mmap`` that the kernel fills page by page
on first touch and takes back on ``free`` — and on the VMs this project is benchmarked on,
touching fresh memory costs 0.3–2 s per GiB. Measured on the 1M-deal benchmark, that was
~0.9 s of a 2.5 s pipeline when first found, more than the sort; with the kernels since
made leaner, 0.55 s (2.0 s without the switch below, 1.5 s with it; benchmarks/RESULTS.md).

:func:`hot_path` runs funnelkit's kernels with two process-wide switches flipped and
restores them afterwards (neither ever changes a result):

- numpy's transparent-huge-page advice is turned off (compacting memory for huge pages on
  first touch made each new 50 MB array cost ~0.1 s);
- on glibc, large blocks come from the heap instead of their own ``mmap`` and freed ones
  stay there, so the next temporary reuses pages that are already mapped. When the
  outermost kernel returns, the thresholds are set to the values glibc's own adaptive
  rule ends at in a numpy process once it has freed a large array (blocks up to 32 MiB
  from the heap, free heap above 64 MiB returned to the system).

Peak memory is unchanged (1.3 GiB at 1M deals either way). The price: free heap that sits below live arrays (those of an
:class:`~funnelkit.EventLog` still in use) stays with the process for reuse instead of
going back to the system — ~0.4 GiB while a 1M-deal log is alive; freed when it is.
(Calling ``malloc_trim`` after every kernel returned it at once but gave back half of the
gain, as the next kernel faulted the same pages in again.) Set the environment variable
``FUNNELKIT_MALLOC=0`` before importing funnelkit to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])


def _hugepage_setter() -> Callable[[bool], bool] | None:
    for mod in ("_core", "core"):
        multiarray = getattr(getattr(np, mod, None), "multiarray", None)
        fn = getattr(multiarray, "_set_madvise_hugepage", None)
        if fn is not None:
            return fn
    return None


_SET = _hugepage_setter()

# glibc's mallopt parameters and the state its adaptive mmap threshold converges to
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_SETTLED_MMAP, _SETTLED_TRIM = 32 << 20, 64 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX, 2x
_HOT_MMAP, _HOT_TRIM = 1 << 30, (1 << 31) - 1


def _glibc() -> Any | None:
    """The C library when it is glibc (mallopt/malloc_trim as documented), else None."""
    if not sys.platform.startswith("linux") or os.environ.get("FUNNELKIT_MALLOC") == "0":
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (not musl)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return None
    return libc


_LIBC = _glibc()
_lock = threading.Lock()
_depth = 0


def _enter() -> bool | None:
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1 and _LIBC is not None:
            _LIBC.mallopt(_M_MMAP_THRESHOLD, _HOT_MMAP)
            _LIBC.mallopt(_M_TRIM_THRESHOLD, _HOT_TRIM)
    return _SET(False) if _SET is not None else None


def _exit(previous: bool | None) -> None:
    global _depth
    if _SET is not None and previous is not None:
        _SET(previous)
    with _lock:
        _depth -= 1
        if _depth == 0 and _LIBC is not None:
            _LIBC.mallopt(_M_MMAP_THRESHOLD, _SETTLED_MMAP)
            _LIBC.mallopt(_M_TRIM_THRESHOLD, _SETTLED_TRIM)


def hot_path(func: F) -> F:
    """Run ``func`` with the memory switches of this module flipped (restored after)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous = _enter()
        try:
            return func(*args, **kwargs)
        finally:
            _exit(previous)

    return wrapper  # type: ignore[return-value]
