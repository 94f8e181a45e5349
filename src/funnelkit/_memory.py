"""Fresh memory is the hidden cost of the hot path — an opt-in tuning of the allocator.

A kernel over millions of events makes dozens of temporaries of 25–100 MB. With glibc's
default settings every one of them is a fresh ``mmap`` that the kernel fills page by page
on first touch and takes back on ``free`` — and on the VMs this project is benchmarked on,
touching fresh memory costs 0.3–2 s per GiB. On the 1M-deal benchmark the pipeline took
2.0 s with the allocator left alone and 1.5 s with the switches below
(benchmarks/RESULTS.md).

Those switches are process-wide, and a library is a guest in its user's process: they are
**off unless the user opts in**, with :func:`tuned_allocator` (a ``with`` block) or the
environment variable ``FUNNELKIT_MALLOC=1``. When opted in, the outermost funnelkit kernel

- turns numpy's transparent-huge-page advice off while it runs (compacting memory for huge
  pages on first touch made each new 50 MB array cost ~0.1 s) and restores numpy's previous
  setting when it returns;
- on glibc, has large blocks come from the heap instead of their own ``mmap`` and keeps
  freed ones there, so the next temporary reuses pages that are already mapped. glibc
  offers no way to read its thresholds back, so they cannot be restored to what they were:
  when the kernel returns they are set to the values glibc's own adaptive rule settles at
  in a numpy process once it has freed a large array (blocks up to 32 MiB from the heap,
  free heap above 64 MiB returned to the system). Setting them also ends glibc's adaptive
  rule for the rest of the process — the reason this is opt-in.

Neither switch ever changes a result. The switches are counted under one lock, so
concurrent kernels in several threads flip them once and restore them once, when the last
one returns. Peak memory is unchanged (1.3 GiB at 1M deals either way); free heap below
live arrays stays with the process for reuse (~0.4 GiB while a 1M-deal log is alive).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
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
    """The C library when it is glibc (mallopt as documented), else None. Loading it
    changes nothing."""
    if not sys.platform.startswith("linux"):
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
_depth = 0  # kernels running with the switches flipped, in all threads
_numpy_before: bool | None = None  # numpy's huge-page setting before the outermost kernel
_opted_in = 0  # open tuned_allocator() blocks


def enabled() -> bool:
    """Whether the user opted in: inside :func:`tuned_allocator`, or ``FUNNELKIT_MALLOC=1``."""
    return _opted_in > 0 or os.environ.get("FUNNELKIT_MALLOC") == "1"


@contextlib.contextmanager
def tuned_allocator() -> Iterator[None]:
    """Opt in to funnelkit's allocator tuning for the kernels run inside the block.

    Off by default: the tuning changes process-wide settings (glibc's ``mallopt``
    thresholds and numpy's huge-page advice), which a library must not do unasked. On the
    project's benchmark machine it made the 1M-deal pipeline 2.0 s → 1.5 s; results are
    identical either way. numpy's setting is restored when the last kernel returns;
    glibc's thresholds cannot be read back, so they are left at the values glibc itself
    settles at (see the documentation page "Speed and memory"). The environment variable
    ``FUNNELKIT_MALLOC=1`` opts in for a whole process.

    Examples
    --------
    >>> import funnelkit as fk
    >>> with fk.tuned_allocator():
    ...     log = fk.EventLog(fk.datasets.load_sample(), **fk.datasets.SAMPLE_KWARGS)
    ...     table = log.transitions()
    >>> len(table) > 0
    True
    """
    global _opted_in
    with _lock:
        _opted_in += 1
    try:
        yield
    finally:
        with _lock:
            _opted_in -= 1


def _enter() -> bool:
    """Flip the switches if opted in (or already flipped by a running kernel)."""
    global _depth, _numpy_before
    with _lock:
        if _depth == 0 and not enabled():
            return False
        _depth += 1
        if _depth == 1:
            if _LIBC is not None:
                _LIBC.mallopt(_M_MMAP_THRESHOLD, _HOT_MMAP)
                _LIBC.mallopt(_M_TRIM_THRESHOLD, _HOT_TRIM)
            if _SET is not None:
                _numpy_before = _SET(False)
        return True


def _exit(entered: bool) -> None:
    global _depth, _numpy_before
    if not entered:
        return
    with _lock:
        _depth -= 1
        if _depth == 0:
            if _SET is not None and _numpy_before is not None:
                _SET(_numpy_before)
                _numpy_before = None
            if _LIBC is not None:
                _LIBC.mallopt(_M_MMAP_THRESHOLD, _SETTLED_MMAP)
                _LIBC.mallopt(_M_TRIM_THRESHOLD, _SETTLED_TRIM)


def hot_path(func: F) -> F:
    """Run ``func`` with the memory switches of this module flipped when opted in."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        entered = _enter()
        try:
            return func(*args, **kwargs)
        finally:
            _exit(entered)

    return wrapper  # type: ignore[return-value]


def pooled(n: int, dtype: Any) -> np.ndarray:
    """An uninitialised writable array of ``n`` items from Arrow's memory pool.

    Arrow's allocator keeps freed blocks for reuse, so a large temporary made here
    usually lands on pages already mapped, while numpy's own large blocks are fresh
    ``mmap`` s (each page touched afresh, with huge-page advice) — the cost that
    dominates the hot path on some VMs. Nothing process-wide changes: the pool is Arrow's
    default one, which Arrow itself uses for every table it reads. For temporaries a
    kernel fills completely (``out=``), not for arrays handed to the user.
    """
    import pyarrow as pa

    dt = np.dtype(dtype)
    buf = pa.allocate_buffer(max(1, n) * dt.itemsize)
    return np.frombuffer(buf, dtype=dt, count=n)
