"""Turn input columns into the integer arrays the kernel works on.

Everything here is vectorised: deal ids become order-preserving integer keys (without
hashing when the ids allow it), stages become small integer codes, times become int64
nanoseconds (UTC for aware logs). Bad values are reported as boolean masks so the caller
can reject the rows with a reason.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, KeysView, Mapping, Sequence
from collections.abc import Set as AbcSet
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._memory import pooled
from .errors import EventLogError, InvalidParameterError

NAT = np.iinfo(np.int64).min
# an offset after a time of day: "...T09:00Z", "... 09:00:00+01:00", "...T0900-0500"
_TZ_SUFFIX = r"[T ]\d{1,2}(?::?\d{2}){0,2}(?:[.,]\d+)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"


def column(data: pd.DataFrame | pa.Table, name: str) -> pd.Series | pa.ChunkedArray:
    """Return one column of a DataFrame or a pyarrow Table."""
    if isinstance(data, pa.Table):
        return data.column(name)
    return data[name]


def as_list(value: Any, param: str, *, ordered: bool) -> list:
    """The items of a list-like parameter (a single string is one item).

    A set's iteration order changes from run to run (``PYTHONHASHSEED``), so an
    unordered collection is refused where the order means something (``ordered``:
    ``stages`` is the funnel order) and read in sorted order elsewhere (``won``,
    ``lost``, ``attrs``, ``by``: only the order of output columns or categories
    depends on it). A dict (or its keys view) keeps its insertion order.
    """
    if isinstance(value, str):
        return [value]
    if isinstance(value, AbcSet) and not isinstance(value, KeysView):
        if ordered:
            raise InvalidParameterError(
                f"Parameter `{param}` must be an ordered sequence such as a list or tuple "
                f"(its order is the funnel order); got a {type(value).__name__}, whose "
                f"order changes from run to run. Pass e.g. `{param}=[...]` in funnel order."
            )
        return sorted(value, key=lambda v: (type(v).__name__, str(v)))
    try:
        return list(value)
    except TypeError:
        raise InvalidParameterError(
            f"Parameter `{param}` must be a name or a list of names; got {type(value).__name__}."
        ) from None


def mapped_columns(kwargs: dict) -> dict[str, str]:
    """Role of each mapped column (``{"deal": "deal_id", ..., "attr:owner": "owner"}``),
    from EventLog keywords with their defaults."""
    roles = {
        "deal": kwargs.get("deal", "deal_id"),
        "stage": kwargs.get("stage", "stage"),
        "time": kwargs.get("time", "ts"),
    }
    if kwargs.get("amount") is not None:
        roles["amount"] = kwargs["amount"]
    for a in as_list(kwargs.get("attrs", ()), "attrs", ordered=False):
        roles[f"attr:{a}"] = a
    for a in as_list(kwargs.get("visit_attrs", ()), "visit_attrs", ordered=False):
        roles.setdefault(f"attr:{a}", a)
    return roles


def check_columns(roles: dict[str, str], available: list[str], where: str = "the events") -> None:
    """Raise a clear error naming every mapped column missing from ``available``."""
    from .errors import EventLogError

    missing = [
        f"`{c}` ({'attrs' if role.startswith('attr:') else role})"
        for role, c in roles.items()
        if c not in available
    ]
    if missing:
        raise EventLogError(
            f"Column(s) {', '.join(missing)} not found in {where}. Available columns: "
            f"{available}. Map your columns with deal=..., stage=..., time=..., amount=..., "
            "attrs=[...]."
        )


def check_unique_columns(roles: dict[str, str], available: list, where: str = "") -> None:
    """Raise a clear error when a column the log reads appears more than once (pandas
    would hand back a DataFrame where one column is expected; a CSV reader would pick
    one silently). ``where`` names a file (default: the events in memory)."""
    from .errors import EventLogError

    used = set(roles.values())
    counts: dict = {}
    for c in available:
        if c in used:
            counts[c] = counts.get(c, 0) + 1
    dup = [c for c, k in counts.items() if k > 1]
    if dup:
        shown = ", ".join(f"`{c}` ({counts[c]} times)" for c in dup)
        if where:
            raise EventLogError(
                f"Column(s) {shown} appear more than once in the header of {where}; the "
                "log cannot tell which one to read. Rename the duplicates in the file."
            )
        raise EventLogError(
            f"Column(s) {shown} appear more than once in the events; the log cannot tell "
            "which one to read. Rename or drop the duplicates first, e.g. "
            "events.loc[:, ~events.columns.duplicated()]."
        )


def n_rows(data: pd.DataFrame | pa.Table) -> int:
    return data.num_rows if isinstance(data, pa.Table) else len(data)


def column_names(data: pd.DataFrame | pa.Table) -> list[str]:
    return list(data.column_names) if isinstance(data, pa.Table) else list(data.columns)


def take_chunked(col: pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """``col.take(rows)`` chunk by chunk: Arrow's take of a chunked column joins every
    chunk first, a copy of the whole column for a few rows."""
    rows = np.asarray(rows, dtype=np.int64)
    if col.num_chunks <= 1:
        one = col.chunk(0) if col.num_chunks else pa.array([], type=col.type)
        return one.take(pa.array(rows, type=pa.int64()))
    bounds = np.cumsum([0] + [len(c) for c in col.chunks])
    which = np.searchsorted(bounds, rows, side="right") - 1
    order = np.argsort(which, kind="stable")
    cuts = np.searchsorted(which[order], np.arange(col.num_chunks + 1))
    pieces = [
        col.chunk(k).take(pa.array(rows[order[a:b]] - bounds[k], type=pa.int64()))
        for k, (a, b) in enumerate(zip(cuts[:-1], cuts[1:], strict=True))
        if b > a
    ]
    taken = pa.concat_arrays(pieces) if pieces else pa.array([], type=col.type)
    back = np.empty(rows.size, dtype=np.int64)
    back[order] = np.arange(rows.size)
    return taken.take(pa.array(back, type=pa.int64()))


def take_table(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``table.take(rows)``, column by column with :func:`take_chunked`."""
    cols = [take_chunked(c, rows) for c in table.columns]
    return pa.Table.from_arrays(cols, schema=table.schema)


def take_rows(data: pd.DataFrame | pa.Table, rows: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """The input rows at positions ``rows`` (only ``columns``), as a DataFrame."""
    if isinstance(data, pa.Table):
        out = take_table(data.select(columns), rows).to_pandas()
    else:
        out = data[columns].iloc[rows].reset_index(drop=True)
    return out


def isna(col: pd.Series | pa.ChunkedArray) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        return np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return np.asarray(col.isna().to_numpy(), dtype=bool)


# --------------------------------------------------------------------------- deal ids
@dataclass
class IdKeys:
    """Order-preserving integer keys of deal ids.

    ``keys`` are >= 0 (garbage where ``null``), ``bits`` bounds their size and
    ``labels(rows)`` returns the original ids at the given input rows.
    """

    keys: np.ndarray
    bits: int
    null: np.ndarray
    source: pd.Series | pa.ChunkedArray

    def labels(self, rows: np.ndarray) -> pd.Index:
        if isinstance(self.source, pa.ChunkedArray):
            taken = self.source.take(pa.array(rows, type=pa.int64()))
            values = taken.to_pandas()
            return pd.Index(values, name=None)
        taken = self.source.array.take(rows)
        # keep the column's dtype: an object column stays object (pandas 3 would infer
        # str, which cannot hold every Python string, e.g. lone surrogates)
        return pd.Index(taken, dtype=self.source.dtype, name=None)


def _as_arrow(col: pd.Series | pa.ChunkedArray) -> list[pa.Array] | None:
    """The chunks of a string-like column as arrow string arrays (not combined: that
    would copy every id once more), else None."""
    if isinstance(col, pa.ChunkedArray):
        chunks = list(col.chunks)
    else:
        if not (pd.api.types.is_string_dtype(col.dtype) or col.dtype == object):
            return None
        try:
            arr = pa.array(col, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):
            return None  # e.g. mixed types, lone surrogates: pandas factorises them
        chunks = list(arr.chunks) if isinstance(arr, pa.ChunkedArray) else [arr]
    out = []
    for arr in chunks:
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            return None
        out.append(arr)
    return out


_BLOCK = 1 << 16  # rows per block in the passes below: a block stays in cache
_MAX_ID_BYTES = 32  # ids of varying length: the padded copy costs n x width bytes
_MAX_FIXED_ID_BYTES = 128  # ids of one length: a view of the arrow buffer, no copy


@dataclass
class _IdBytes:
    """The ids of one arrow string chunk: data bytes, offsets relative to them, lengths."""

    raw: np.ndarray  # uint8
    starts: np.ndarray  # int64, n + 1 (empty when ``fixed``)
    fixed: int | None  # the common length, when all ids have one
    n: int

    def matrix(self, width: int) -> np.ndarray:
        """All ids as an (n, width) byte matrix, right-padded with 0: a view of the arrow
        buffer when they are all ``width`` bytes long, else built block by block (a gather
        per byte position, each id's missing bytes read from one 0 byte)."""
        f = self.fixed
        if f == width:
            return self.raw[: self.n * f].reshape(self.n, f)
        out = np.zeros((self.n, width), dtype=np.uint8)
        if f is not None:
            out[:, :f] = self.raw[: self.n * f].reshape(self.n, f)
            return out
        for a in range(0, self.n, _BLOCK):
            b = min(a + _BLOCK, self.n)
            s0, s1 = int(self.starts[a]), int(self.starts[b])
            local = np.zeros(s1 - s0 + 1, dtype=np.uint8)
            local[:-1] = self.raw[s0:s1]
            first = self.starts[a:b] - s0
            lens = np.diff(self.starts[a : b + 1])
            for j in range(width):  # a loop over byte positions (<= 32), not over rows
                out[a:b, j] = local[np.where(lens > j, first + j, s1 - s0)]
        return out


def _id_bytes(arr: pa.Array) -> _IdBytes | None:
    """The byte view of one arrow string chunk, or None for ids these keys cannot take
    (longer than 32 bytes, 128 when all have one length, or holding NUL bytes, which would
    collide with the padding)."""
    n = len(arr)
    offsets_buf, data_buf = arr.buffers()[1], arr.buffers()[2]
    off_type = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(
        offsets_buf, dtype=off_type, count=n + 1, offset=arr.offset * np.dtype(off_type).itemsize
    )
    first, total = int(offsets[0]), int(offsets[-1] - offsets[0])
    raw = (
        np.frombuffer(data_buf, dtype=np.uint8, count=total, offset=first)
        if total
        else np.zeros(0, dtype=np.uint8)
    )
    lo_len, hi_len = 2**62, 0
    for a in range(0, n, _BLOCK):  # lengths block by block (no n-sized temporary)
        step = np.diff(offsets[a : a + _BLOCK + 1])
        lo_len, hi_len = min(lo_len, int(step.min())), max(hi_len, int(step.max()))
    fixed = hi_len if lo_len == hi_len else None
    limit = _MAX_ID_BYTES if fixed is None else _MAX_FIXED_ID_BYTES
    if hi_len > limit or (total and _column_range(raw.reshape(-1, 1))[0][0] == 0):
        return None
    starts = (offsets - first).astype(np.int64) if fixed is None else np.zeros(0, np.int64)
    return _IdBytes(raw, starts, fixed, n)


def _column_range(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest byte of each column of an (n, w) byte matrix.

    A reduction over the rows of a narrow matrix is slow in numpy (0.15 s for 6.5M x 8);
    folding k rows into one wide row first makes it ~40 times faster."""
    n, w = mat.shape
    k = 64
    m = (n // k) * k
    lo = np.full(w, 255, dtype=np.int64)
    hi = np.zeros(w, dtype=np.int64)
    if m:
        wide = mat[:m].reshape(m // k, k * w)
        lo = np.minimum(lo, wide.min(axis=0).reshape(k, w).min(axis=0))
        hi = np.maximum(hi, wide.max(axis=0).reshape(k, w).max(axis=0))
    if m < n:
        lo = np.minimum(lo, mat[m:].min(axis=0))
        hi = np.maximum(hi, mat[m:].max(axis=0))
    return lo, hi


def _byte_keys(chunks: list[pa.Array]) -> tuple[np.ndarray, int] | None:
    """Order-preserving integer keys of string ids, without hashing.

    The ids, right-padded with 0 bytes to the longest one, are an (n, w) byte matrix
    (for ids of one length, a view of the arrow buffer; else a copy of n × w bytes). Byte positions that never vary
    are dropped; the others are the digits of a mixed-radix number whose radix is the
    range of bytes at that position, plus one slot below it for "ended" where shorter
    ids end. The map is injective and preserves lexicographic (code point) order, so a
    shorter id sorts before its extensions, as Python sorts strings. Works chunk by chunk
    and block by block.

    When that number needs more than 40 bits (random UUIDs: 185), the keys are the ids'
    dense ranks in sorted order instead: the varying bytes, 8 to a big-endian word, are
    ranked by a sort of a key of their leading digits (:func:`_word_ranks`), the same
    result as hashing the ids and sorting the distinct ones. Returns None for ids longer
    than 32 bytes (128 when all have one length), with NUL bytes, or with more than
    8 × :data:`_MAX_WORDS` varying bytes: then the caller hashes.
    """
    chunks = [c for c in chunks if len(c)]
    if not chunks or any(c.null_count for c in chunks):
        return None
    views = []
    for c in chunks:
        v = _id_bytes(c)
        if v is None:
            return None
        views.append(v)
    width = max(v.fixed if v.fixed is not None else int(np.diff(v.starts).max()) for v in views)
    if width == 0 or (width > _MAX_ID_BYTES and any(v.fixed != width for v in views)):
        return None  # (padding to ``width`` would copy too much)
    # per position: smallest and largest real byte, and whether some id has ended there
    mats = [v.matrix(width) for v in views]
    lo = np.full(width, 255, dtype=np.int64)
    hi = np.zeros(width, dtype=np.int64)
    ended = np.zeros(width, dtype=bool)
    for v, mat in zip(views, mats, strict=True):
        r_lo, r_hi = _column_range(mat)
        hi = np.maximum(hi, r_hi)
        if v.fixed == width:
            lo = np.minimum(lo, r_lo)
        else:  # the padding 0 wraps to 255 and drops out of the minimum
            ended |= r_lo == 0
            for a in range(0, v.n, _BLOCK):
                low = _column_range(mat[a : a + _BLOCK] - np.uint8(1))[0] + 1
                lo = np.minimum(lo, low)
    lo = np.minimum(lo, hi)  # positions only ever ended: a single "ended" digit
    radix = hi - lo + 1 + ended
    varying = np.flatnonzero(radix > 1)
    total_bits = float(np.sum(np.log2(radix[varying]))) if varying.size else 0.0
    if total_bits <= 40:
        keys = _digits(views, mats, varying, radix, lo, ended)
        bits = int(np.prod(radix[varying].astype(float)) - 1).bit_length() if varying.size else 1
        return keys, max(1, bits)
    if varying.size > 8 * _MAX_WORDS:
        return None
    # the varying bytes, 8 to a word, as big-endian unsigned numbers: comparing words in
    # turn compares the ids byte by byte (the padding 0 sorts first, like an ended id)
    words = [_byte_word(mats, varying[a : a + 8]) for a in range(0, varying.size, 8)]
    n = words[0].size
    row_bits = max(1, (n - 1).bit_length())
    prefix = _prefix_digits(views, mats, varying, radix, lo, ended, 1 << (63 - row_bits))
    return _word_ranks(words, prefix, row_bits)


_MAX_WORDS = 4  # 8-byte words per id (4 x n uint64 while ranking)


def _byte_word(mats: list[np.ndarray], cols: np.ndarray) -> np.ndarray:
    """The bytes at ``cols`` (<= 8) of every id as one big-endian uint64 each (missing
    low bytes 0), block by block."""
    n = sum(m.shape[0] for m in mats)
    out = pooled(n, np.uint64)
    buf = np.zeros((_BLOCK, 8), dtype=np.uint8)
    at = 0
    for mat in mats:
        for a in range(0, mat.shape[0], _BLOCK):
            part = mat[a : a + _BLOCK]
            k = part.shape[0]
            buf[:k, : cols.size] = part[:, cols]
            out[at : at + k] = buf[:k].view(">u8")[:, 0]
            at += k
    return out


def _digits(
    views: list[_IdBytes],
    mats: list[np.ndarray],
    positions: np.ndarray,
    radix: np.ndarray,
    lo: np.ndarray,
    ended: np.ndarray,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The mixed-radix number of the digits at ``positions`` of every id (see
    :func:`_byte_keys`), block by block, into ``out`` (zeros) when given; below 2**63
    by the caller's choice of positions."""
    offset = 0  # sum of (lo_j - ended_j) * place_j: the smallest digit of each position is 0
    for j in positions:
        offset = offset * int(radix[j]) + int(lo[j]) - int(ended[j])
    keys = np.zeros(sum(v.n for v in views), dtype=np.int64) if out is None else out
    at = 0
    for v, mat in zip(views, mats, strict=True):
        for a in range(0, v.n, _BLOCK):  # digits accumulate in place, in cache
            part = mat[a : a + _BLOCK]
            block = keys[at + a : at + a + part.shape[0]]
            for j in positions:  # a loop over byte positions (<= 63), not over rows
                np.multiply(block, int(radix[j]), out=block)
                np.add(block, part[:, j], out=block, casting="unsafe")
                if ended[j]:  # an ended id's 0 byte becomes the slot below lo
                    gone = part[:, j] == 0
                    block[gone] += int(lo[j]) - 1
            if offset:
                np.subtract(block, offset, out=block)
        at += v.n
    return keys


def _prefix_digits(
    views: list[_IdBytes],
    mats: list[np.ndarray],
    varying: np.ndarray,
    radix: np.ndarray,
    lo: np.ndarray,
    ended: np.ndarray,
    budget: int,
) -> np.ndarray:
    """A monotone key below ``budget`` of every id's leading varying bytes: the
    :func:`_digits` of as many positions as fit, then the next digit scaled down to the
    room left. Ids in order have keys in order; different ids may share a key."""
    whole: list[int] = []
    room = budget
    for j in varying:
        if int(radix[j]) > room:
            break
        whole.append(int(j))
        room //= int(radix[j])
    keys = pooled(sum(v.n for v in views), np.int64)
    keys[:] = 0
    _digits(views, mats, np.array(whole, dtype=np.int64), radix, lo, ended, out=keys)
    if len(whole) == varying.size or room < 2:
        return keys
    j, r = int(varying[len(whole)]), int(radix[varying[len(whole)]])
    at = 0
    for mat in mats:  # a coarser last digit: d * room // r, still monotone
        for a in range(0, mat.shape[0], _BLOCK):
            col = mat[a : a + _BLOCK, j]
            d = col.astype(np.int64)
            d -= int(lo[j]) - int(ended[j])
            if ended[j]:  # an ended id's 0 byte: the slot below lo
                d[col == 0] = 0
            d *= room
            d //= r
            out = keys[at : at + col.size]
            out *= room
            out += d
            at += col.size
    return keys


def _word_ranks(
    words: list[np.ndarray], prefix: np.ndarray, row_bits: int
) -> tuple[np.ndarray, int]:
    """Dense ranks (0, 1, ...) of rows in the lexicographic order of their ``words`` (one
    array per word, most significant first), and the bits they need.

    ``prefix`` is a monotone key of the words below ``2**(63 - row_bits)``: one sort of
    the prefix packed with the row number (a plain sort, 5x faster than an argsort) puts
    the rows in order up to rows of equal prefix; where those differ in a word (ids that
    share their leading characters: a few hundred among 1M random UUIDs), the runs of
    equal prefix are sorted by every word, so the ranks are exact whatever the ids."""
    n = prefix.size
    packed = np.left_shift(prefix, row_bits, out=prefix)
    for a in range(0, n, _BLOCK):  # the row numbers block by block (no n-sized arange)
        packed[a : a + _BLOCK] |= np.arange(a, min(a + _BLOCK, n), dtype=np.int64)
    packed.sort()
    order = np.bitwise_and(packed, (1 << row_bits) - 1, out=pooled(n, np.int64))
    packed >>= row_bits
    same = np.equal(packed[1:], packed[:-1], out=pooled(max(n - 1, 0), np.bool_))
    clash = pooled(same.size, np.bool_)
    clash[:] = False
    ws = packed.view(np.uint64)
    for w in words:  # (the packed keys' memory holds each word in order, in turn)
        np.take(w, order, out=ws, mode="wrap")
        clash |= same & (ws[1:] != ws[:-1])
    del packed, prefix, ws
    if clash.any():  # sort the runs of equal prefixes that hold a clash by every word
        starts = np.flatnonzero(np.concatenate([[True], ~same]))  # runs along ``order``
        r = np.unique(np.searchsorted(starts, np.flatnonzero(clash) + 1, side="right") - 1)
        first, size = starts[r], np.append(starts, n)[r + 1] - starts[r]
        # the positions of those runs: first[i], first[i] + 1, ... for each run i
        at = np.repeat(first - np.cumsum(size) + size, size) + np.arange(int(size.sum()))
        sub = order[at]
        order[at] = sub[np.lexsort([w[sub] for w in reversed(words)])]
        p = at[at > 0]  # rows of those runs and the row before each: equal in every word?
        eq = np.ones(p.size, dtype=bool)
        here, before = order[p], order[p - 1]
        for w in words:
            eq &= w[here] == w[before]
        same[p - 1] = eq
    new = pooled(n, np.int64)
    if n:
        new[0] = 0
        np.logical_not(same, out=new[1:], casting="unsafe")
    np.cumsum(new, out=new)
    ranks = np.empty_like(new)
    ranks[order] = new
    n_distinct = int(new[-1]) + 1 if n else 1
    return ranks, max(1, (n_distinct - 1).bit_length())


def _integer_ids(col: pd.Series | pa.ChunkedArray) -> np.ndarray | None:
    """int64 values of an integer id column (0 where null), else None."""
    if isinstance(col, pa.ChunkedArray):
        if not pa.types.is_integer(col.type) or col.type == pa.uint64():
            return None
        filled = pc.fill_null(col, 0) if col.null_count else col
        return np.asarray(filled.to_numpy(), dtype=np.int64)
    if pd.api.types.is_integer_dtype(col.dtype) and col.dtype != np.uint64:
        return col.to_numpy(dtype=np.int64, na_value=0)
    return None


def _hashed_keys(chunks: list[pa.Array]) -> tuple[np.ndarray, int]:
    """Dense ranks of string ids in sorted (code point) order, by arrow's hash
    dictionary encoding plus a sort of the distinct ids (0 where null)."""
    enc = pc.dictionary_encode(pa.chunked_array(chunks).combine_chunks())
    order = pc.sort_indices(enc.dictionary).to_numpy()
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    idx = pc.fill_null(enc.indices, 0) if enc.indices.null_count else enc.indices
    codes = rank[idx.to_numpy()] if order.size else np.zeros(len(idx), dtype=np.int64)
    return codes, max(1, order.size.bit_length())


def id_keys(col: pd.Series | pa.ChunkedArray) -> IdKeys:
    """Integer keys for a deal-id column (see :class:`IdKeys`): the integers themselves,
    byte-wise keys or ranks of string ids (:func:`_byte_keys`), else sorted hash codes."""
    if isinstance(col, pa.ChunkedArray) and pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)  # order by the values, not the dictionary
    null = isna(col)
    if len(null) == 0:
        return IdKeys(np.zeros(0, dtype=np.int64), 1, null, col)
    values = _integer_ids(col)
    if values is not None:
        good = values[~null] if null.any() else values
        lo = int(good.min()) if good.size else 0
        hi = int(good.max()) if good.size else 0
        if hi - lo < 2**40:
            keys = np.where(null, 0, values - lo) if null.any() else values - lo
            return IdKeys(keys, max(1, (hi - lo).bit_length()), null, col)
    chunks = _as_arrow(col)
    if chunks is not None:
        if not null.any():
            fixed = _byte_keys(chunks)
            if fixed is not None:
                return IdKeys(fixed[0], fixed[1], null, col)
        codes, bits = _hashed_keys(chunks)
        return IdKeys(codes, bits, null, col)
    # other types (numbers as floats, mixed objects): pandas' sorted factorisation
    if isinstance(col, pa.ChunkedArray):
        col = col.to_pandas()
    codes, uniques = pd.factorize(col, sort=True, use_na_sentinel=True)
    codes = codes.astype(np.int64)
    codes[codes < 0] = 0
    return IdKeys(codes, max(1, (len(uniques)).bit_length()), null, col)


def unhashable(col: pd.Series | pa.ChunkedArray) -> np.ndarray | None:
    """Mask of values no id or name can be — unhashable ones (lists, dicts, arrays) — or
    None when there are none (the common case: only object columns that infer_dtype
    calls mixed are looked at value by value)."""
    if isinstance(col, pa.ChunkedArray):
        if not pa.types.is_nested(col.type):
            return None
        col = col.to_pandas()  # lists, structs, maps: every value is bad
    if not pd.api.types.is_object_dtype(col.dtype):
        return None
    kind = pd.api.types.infer_dtype(col, skipna=True)
    if not (kind.startswith("mixed") or kind == "unknown-array"):
        return None
    bad = np.zeros(len(col), dtype=bool)
    for i, v in enumerate(col.to_numpy(dtype=object)):  # mixed columns only
        try:
            hash(v)
        except TypeError:
            bad[i] = True
    return bad if bad.any() else None


def not_unicode(col: pd.Series | pa.ChunkedArray) -> np.ndarray | None:
    """Mask of text values with a lone surrogate (``"a\\ud800"``, a broken decoding), or
    None when there are none. Only object columns can hold them (Arrow text cannot), and
    one encode of all their strings at once rules them out in the common case."""
    if isinstance(col, pa.ChunkedArray) or not pd.api.types.is_object_dtype(col.dtype):
        return None
    values = col.to_numpy(dtype=object)
    text = [v for v in values if isinstance(v, str)]
    try:
        "".join(text).encode("utf-8")
    except UnicodeEncodeError:
        return np.array([isinstance(v, str) and not is_unicode(v) for v in values])
    return None


def blank(col: pd.Series | pa.ChunkedArray, bad: np.ndarray) -> pd.Series:
    """The column as an object Series with the ``bad`` values set to None."""
    if isinstance(col, pa.ChunkedArray):
        col = col.to_pandas()
    return col.astype(object).where(~bad, None)


def is_unicode(value: str) -> bool:
    """False for text that cannot be encoded (a lone surrogate such as ``"\\ud800"``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --------------------------------------------------------------------------- stages
def stage_codes(
    col: pd.Series | pa.ChunkedArray, stage_map: dict | None
) -> tuple[np.ndarray, list[str]]:
    """Small integer codes (-1 for null) and the stage names they stand for.

    ``stage_map`` is applied to the distinct values, so it costs nothing per row. Names
    are returned as ``str``.
    """
    if isinstance(col, pa.ChunkedArray):
        enc = col.dictionary_encode().combine_chunks()
        codes = enc.indices.to_numpy(zero_copy_only=False)
        if enc.indices.null_count:
            codes = np.where(np.asarray(enc.indices.is_null()), -1, codes).astype(np.int64)
        uniques = enc.dictionary.to_pylist()
    elif isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy().astype(np.int64)
        uniques = list(col.cat.categories)
    else:
        codes, uniq = pd.factorize(col, use_na_sentinel=True)
        codes = codes.astype(np.int64)
        uniques = list(uniq)
    names = [str(u) for u in uniques]
    if stage_map:
        mapping = {str(k): str(v) for k, v in stage_map.items()}
        names = [mapping.get(u, u) for u in names]
    # merge names that became equal (through stage_map or str())
    final: list[str] = []
    index: dict[str, int] = {}
    # small codes: the gathers of a 10M-row stage column cost a quarter of int64's
    lookup = np.empty(len(names) + 1, dtype=np.int16 if len(names) < 2**15 else np.int64)
    for i, name in enumerate(names):  # loop over distinct stage names only
        if name not in index:
            index[name] = len(final)
            final.append(name)
        lookup[i] = index[name]
    lookup[-1] = -1
    codes = lookup[codes]  # code -1 indexes lookup[-1] = -1
    return codes, final


# --------------------------------------------------------------------------- times
@dataclass
class Times:
    """int64 nanoseconds (UTC when ``aware``) and masks of bad values."""

    ns: np.ndarray
    aware: bool
    null: np.ndarray
    unparseable: np.ndarray
    mixed_tz: np.ndarray


def _datetime_ns(values: pd.Series) -> tuple[np.ndarray, bool, np.ndarray]:
    """int64 ns (UTC) of a datetime64 Series of any unit, whether it was time-zone aware,
    and a mask of the values outside the ns range (years 1677–2262), which become NaT
    (a plain cast to ns would wrap them around silently)."""
    tz = getattr(values.dtype, "tz", None)
    if tz is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    arr = values.to_numpy()
    raw = arr.view(np.int64)
    factor = _NS_PER.get(np.datetime_data(arr.dtype)[0], 0) if arr.dtype.kind == "M" else 0
    if factor == 0:  # an unusual unit: let numpy convert (and check) it
        raw = arr.astype("datetime64[ns]").view(np.int64)
        factor = 1
    if factor == 1:
        return raw.copy(), tz is not None, np.zeros(raw.size, dtype=bool)
    limit = np.iinfo(np.int64).max // factor
    nat = raw == NAT
    bad = ~nat & ((raw > limit) | (raw < -limit))
    ns = np.where(nat | bad, 0, raw) * factor
    ns[nat | bad] = NAT
    return ns, tz is not None, bad


_NS_PER = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def _arrow_timestamps_ns(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """int64 ns of an arrow timestamp column, read from the chunks' buffers into one
    array (no cast, no combined copy), and a mask of the values outside the ns range
    (years 1677–2262), which are set to NaT. Null slots are not looked at here."""
    factor = _NS_PER[col.type.unit]
    limit = np.iinfo(np.int64).max // factor
    ns = np.empty(len(col), dtype=np.int64)
    out_of_range = np.zeros(len(col), dtype=bool)
    a = 0
    for chunk in col.chunks:
        m = len(chunk)
        if m == 0:
            continue
        vals = np.frombuffer(chunk.buffers()[1], dtype=np.int64, count=m, offset=chunk.offset * 8)
        out = ns[a : a + m]
        if factor > 1 and (int(vals.max()) > limit or int(vals.min()) < -limit):
            bad = (vals > limit) | (vals < -limit)
            out_of_range[a : a + m] = bad
            np.multiply(np.where(bad, 0, vals), factor, out=out)
            out[bad] = NAT
        else:
            np.multiply(vals, factor, out=out)
        a += m
    return ns, out_of_range


#: words pandas would read as the wall clock: in a log they are data errors
_DATE_WORDS = ("now", "today", "yesterday", "tomorrow")
_NUMBER_KINDS = ("integer", "floating", "mixed-integer-float", "boolean", "decimal", "complex")


def check_time_dtype(col: pd.Series | pa.ChunkedArray, name: str) -> None:
    """Refuse a time column that holds only numbers (or durations): funnelkit does not
    guess an epoch or a unit, and pandas would read them as nanoseconds since 1970."""
    if isinstance(col, pa.ChunkedArray):
        t = col.type
        numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
        numeric = numeric or pa.types.is_decimal(t) or pa.types.is_duration(t)
        kind = str(t)
    else:
        kind = str(col.dtype)
        if col.dtype == object:  # (a leading string: not numbers only, no pass needed)
            lead = col.iloc[0] if len(col) else None
            numeric = not isinstance(lead, str) and (
                pd.api.types.infer_dtype(col, skipna=True) in _NUMBER_KINDS
            )
        else:
            numeric = pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(
                col.dtype
            )
            numeric = numeric or pd.api.types.is_timedelta64_dtype(col.dtype)
    if numeric:
        raise EventLogError(
            f"Column `{name}` (time) holds numbers ({kind}), not timestamps; funnelkit does "
            "not guess their epoch or unit. Convert the column first, e.g. "
            f"events[{name!r}] = pd.to_datetime(events[{name!r}], unit='s') for seconds "
            "since 1970-01-01 (unit='ms' for milliseconds)."
        )


def parse_times(col: pd.Series | pa.ChunkedArray, date_format: str | None = None) -> Times:
    """Parse a time column: datetimes of any unit, dates (midnight), or ISO 8601 strings
    of any precision (strings in ``date_format``, a strftime format such as ``"%d-%m-%y"``,
    when given).

    Aware values become UTC. In a string column that mixes values with and without an
    offset, the rows of the less common kind are flagged ``mixed_tz`` (naive ones on a tie).
    Words pandas reads as the wall clock ("now", "today", ...) and, in an object column,
    values that are neither strings nor datetimes/dates (a stray number) are unparseable.
    Blank strings are missing values, like nulls.
    """
    if isinstance(col, pa.ChunkedArray) and (
        pa.types.is_date32(col.type) or pa.types.is_date64(col.type)
    ):
        col = col.cast(pa.timestamp("s" if pa.types.is_date32(col.type) else "ms"))
    if isinstance(col, pa.ChunkedArray):
        if pa.types.is_timestamp(col.type):
            aware = col.type.tz is not None
            ns, out_of_range = _arrow_timestamps_ns(col)
            null = isna(col) if col.null_count else np.zeros(len(ns), dtype=bool)
            if col.null_count:
                ns[null] = NAT
                out_of_range &= ~null
            none = np.zeros(len(ns), dtype=bool)
            return Times(ns, aware, null, out_of_range, none)
        col = col.to_pandas()
    null = isna(col)
    n = len(col)
    none = np.zeros(n, dtype=bool)
    if isinstance(col.dtype, pd.ArrowDtype) and (
        pa.types.is_timestamp(col.dtype.pyarrow_dtype)
        or pa.types.is_date32(col.dtype.pyarrow_dtype)
        or pa.types.is_date64(col.dtype.pyarrow_dtype)
    ):
        return parse_times(pa.chunked_array([pa.array(col)]))
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        ns, aware, out_of_range = _datetime_ns(col)
        return Times(np.where(null, NAT, ns), aware, null, out_of_range & ~null, none)
    # strings, or an object column of datetime-like values
    as_str = col.astype("string")
    stripped = as_str.str.strip()
    blank = (stripped == "").fillna(False).to_numpy(dtype=bool)
    if blank.any():  # an empty CSV cell read as text is a missing time, not a bad one
        null = null | blank
    has_tz = stripped.str.contains(_TZ_SUFFIX, regex=True).fillna(False).to_numpy(dtype=bool)
    skip = stripped.str.lower().isin(_DATE_WORDS).to_numpy(dtype=bool)  # never the clock
    is_obj_dt: np.ndarray | bool = False
    if col.dtype == object:
        kinds = pd.api.types.infer_dtype(col, skipna=True)
        if kinds in ("datetime", "datetime64", "date"):
            is_obj_dt = True
        elif kinds != "string" and kinds != "empty":  # mixed: look at each value
            is_obj_dt = np.array(
                [isinstance(v, (datetime.date, np.datetime64)) for v in col], dtype=bool
            )
            is_str = np.array([isinstance(v, str) for v in col], dtype=bool)
            skip = skip | (~null & ~is_obj_dt & ~is_str)  # a stray number is no time
        if np.any(is_obj_dt):
            obj_tz = np.array(
                [getattr(v, "tzinfo", None) is not None for v in col], dtype=bool
            )  # object columns of datetimes: pandas gives no vectorised tz test
            has_tz = np.where(is_obj_dt, obj_tz, has_tz)
    ns = np.full(n, NAT, dtype=np.int64)
    parsed_ok = np.zeros(n, dtype=bool)
    obj_kinds = (True, False) if np.ndim(is_obj_dt) else (bool(is_obj_dt),)
    for obj_kind, tz_kind in [(o, t) for o in obj_kinds for t in (True, False)]:
        # parse the aware and the naive values apart (datetime objects apart from strings)
        sel = ~null & ~skip & (has_tz == tz_kind)
        if np.ndim(is_obj_dt):
            sel &= is_obj_dt == obj_kind
        if not sel.any():
            continue
        source = col[sel] if obj_kind else stripped[sel]
        if obj_kind:
            parsed = pd.to_datetime(source, errors="coerce", utc=tz_kind)
        else:
            fmt = "ISO8601" if date_format is None else date_format
            parsed = pd.to_datetime(source, format=fmt, errors="coerce", utc=tz_kind)
        vals, _, _ = _datetime_ns(parsed)  # out of the ns range: NaT, so unparseable
        ns[sel] = vals
        parsed_ok[sel] = vals != NAT
    unparseable = ~null & ~parsed_ok
    n_aware = int((parsed_ok & has_tz).sum())
    n_naive = int((parsed_ok & ~has_tz).sum())
    aware = n_aware > n_naive
    mixed = parsed_ok & (has_tz != aware) if (n_aware and n_naive) else none
    ns[mixed] = NAT
    return Times(ns, aware, null, unparseable, mixed)


#: the widest distance (ns, about 146 years) of an accepted time from the log's median
#: time: then any two accepted times are less than 2**63 ns apart, so every duration
#: (dwell, cycle time, as_of - last event) fits in int64
MAX_FROM_MEDIAN = 2**62


def out_of_range(ns: np.ndarray) -> tuple[np.ndarray | None, tuple[int, int] | None]:
    """Mask of the parsed times (not NaT) more than :data:`MAX_FROM_MEDIAN` from their
    median — typos such as 1725 for 2025 — or None when there are none, and the span
    (earliest, latest) of the parsed times (None when there are none). One min/max pass;
    the median only when the span is too wide. No time is out of range when the span of
    all of them is narrower than :data:`MAX_FROM_MEDIAN` (the median lies inside it):
    what an incremental update checks."""
    has = ns != NAT
    if not has.any():
        return None, None
    good = ns if has.all() else ns[has]
    lo, hi = int(good.min()), int(good.max())
    if hi - lo < MAX_FROM_MEDIAN:
        return None, (lo, hi)
    median = int(np.partition(good, good.size // 2)[good.size // 2])
    upper = min(median + MAX_FROM_MEDIAN, int(np.iinfo(np.int64).max))
    lower = max(median - MAX_FROM_MEDIAN, NAT + 1)
    bad = has & ((ns > upper) | (ns < lower))
    return (bad if bad.any() else None), (lo, hi)


def _on_the_clock(text: str) -> bool:
    """True for text pandas reads relative to the wall clock: ``"now"``, ``"today"``, a
    time of day without a date (``"12:00"``, today at noon)."""
    import datetime as dt

    from dateutil import parser

    if text.strip().lower() in _DATE_WORDS:
        return True
    try:  # a string without a year takes it from the default (pandas: today's date)
        one = parser.parse(text, default=dt.datetime(2000, 1, 1))
        other = parser.parse(text, default=dt.datetime(2001, 2, 2))
    except (ValueError, OverflowError):
        return False  # pandas decides (and raises what it cannot read)
    return one.year != other.year


def to_timestamp(value: object, aware: bool, name: str) -> int:
    """A scalar time (``as_of``) as int64 ns on the log's clock (naive read as UTC)."""

    if isinstance(value, str) and _on_the_clock(value):
        raise InvalidParameterError(
            f"Parameter `{name}`={value!r} holds no date with a year (pandas would fill "
            "in today's date, or the year 1); pass a date, e.g. '2025-06-30' or "
            "'2025-06-30 12:00'."
        )
    try:
        ts = pd.Timestamp(value)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise InvalidParameterError(
            f"Parameter `{name}`: could not parse {value!r} as a timestamp; "
            "pass an ISO 8601 string or a datetime."
        ) from exc
    if ts is pd.NaT:
        raise InvalidParameterError(f"Parameter `{name}` is NaT; pass a real timestamp or None.")
    if aware:
        ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
        ts = ts.tz_localize(None)
    elif ts.tz is not None:
        raise InvalidParameterError(
            f"Parameter `{name}`={value!r} has a time zone but the log's timestamps are "
            "naive; pass a naive timestamp or make the log's times time-zone aware."
        )
    try:
        return int(ts.as_unit("ns").value)
    except (OverflowError, pd.errors.OutOfBoundsDatetime):
        raise InvalidParameterError(
            f"Parameter `{name}`={value!r} is outside the years 1677 to 2262 that "
            "nanosecond timestamps hold; pass a time near the events or leave it None."
        ) from None


_UNITLESS = r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$"


def to_duration(value: object, name: str) -> pd.Timedelta:
    """A duration parameter (``stale_after``, ``within``, ``horizon``) as a positive
    Timedelta — the one place durations are read.

    A duration needs a unit: a bare number (``90``) or a string of digits (``"90"``)
    would be read by pandas as nanoseconds, so both are refused. On a business calendar
    the duration is counted in business time, as the calendar's dwell is.
    """
    import re

    example = "e.g. '90D', '12h' or pd.Timedelta(days=90)"
    unitless = isinstance(value, (bool, int, float, np.integer, np.floating)) or (
        isinstance(value, str) and re.match(_UNITLESS, value) is not None
    )
    if isinstance(value, np.timedelta64):  # an np.integer too: its unit decides
        unitless = np.datetime_data(value.dtype)[0] == "generic"
    if isinstance(value, str) and re.match(r"\s*P[^T]*M", value):
        # ISO 8601 "P3M" is three months; pandas reads it as three minutes
        raise InvalidParameterError(
            f"Parameter `{name}`={value!r} holds months, which have no fixed length (and "
            f"pandas would read 'P3M' as minutes); pass days, {example}."
        )
    if unitless:
        raise _UnitlessDuration(
            f"Parameter `{name}`={value!r} has no unit (pandas would read it as "
            f"nanoseconds); pass a duration with a unit, {example}."
        )
    try:
        td = pd.Timedelta(value)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise InvalidParameterError(
            f"Parameter `{name}`={value!r} is not a duration; pass {example}."
        ) from exc
    if td is pd.NaT:
        raise InvalidParameterError(
            f"Parameter `{name}`={value!r} is not a duration; pass {example}."
        )
    if td <= pd.Timedelta(0):
        raise InvalidParameterError(f"Parameter `{name}` must be positive; got {value!r}.")
    return td


class _UnitlessDuration(InvalidParameterError):
    """A number where a duration with a unit is needed: a wrong value and a wrong type."""


# --------------------------------------------------------------------------- attributes
def factorize(col: pd.Series | pa.ChunkedArray, name: str) -> tuple[np.ndarray, pd.Index]:
    """Codes (-1 for null) and uniques of the attribute column ``name``.

    The uniques are a plain Index of the values, never a CategoricalIndex: for a
    categorical column (pandas ``category``, arrow dictionary) ``pd.factorize`` returns
    a Categorical whose *values* are the uniques, and a caller passing it as
    ``categories=`` to ``Categorical.from_codes`` would get its sorted categories instead,
    which swaps labels between deals.

    Values no attribute can hold — lists, dicts, arrays (no segment can be made of
    them), text with a lone surrogate (no table or page can be written with it) — are an
    error naming the column and a row."""
    from .errors import EventLogError

    if isinstance(col, pa.ChunkedArray) and (
        pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
    ):
        return _factorize_arrow_text(col, name)
    if isinstance(col, pa.ChunkedArray):
        col = col.to_pandas()  # lists and structs become object values
    bad = unhashable(col)
    if bad is not None:
        i = int(np.flatnonzero(bad)[0])
        raise EventLogError(
            f"Column `{name}` (attrs) holds {int(bad.sum()):,} values that are lists, dicts "
            f"or arrays, e.g. row {i}: {_one_value(col.iloc[i])}; an attribute must be one "
            "value per row (text, a number, a date). Turn them into text or pick one item."
        )
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    if isinstance(uniques, (pd.Categorical, pd.CategoricalIndex)):
        uniques = uniques.categories.take(np.asarray(uniques.codes))
    _check_unicode(name, [u for u in uniques if isinstance(u, str)])  # distinct values
    return codes.astype(np.int64), pd.Index(uniques)


def _check_unicode(name: str, texts: list[str]) -> None:
    """The error for an attribute column whose distinct ``texts`` hold broken text."""
    from .errors import EventLogError

    broken = [u for u in texts if not is_unicode(u)]
    if broken:
        raise EventLogError(
            f"Column `{name}` (attrs) holds text that is not valid Unicode (a lone surrogate, "
            f"from a broken decoding), e.g. {_one_value(broken[0])}; re-read the file with "
            "the right encoding, or clean the column, e.g. "
            "col.str.encode('utf-8', 'replace').str.decode('utf-8')."
        )


def _factorize_arrow_text(col: pa.ChunkedArray, name: str) -> tuple[np.ndarray, pd.Index]:
    """:func:`factorize` of an arrow text column without a pandas copy of its values:
    arrow's dictionary encoding gives the same codes (first appearance order, nulls -1)
    in int32, half the int64 codes' memory at 6.5M rows."""
    enc = pc.dictionary_encode(col).combine_chunks() if col.num_chunks else None
    if enc is None or len(enc) == 0:
        return np.zeros(0, dtype=np.int32), pd.Index([], dtype=object)
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32)
    _check_unicode(name, enc.dictionary.to_pylist())
    return codes, pd.Index(enc.dictionary.to_pandas())


def _one_value(value: Any) -> str:
    """A value for a message: its repr (surrogates escaped), cut to 60 characters."""
    text = ascii(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TEMPORAL_KINDS = ("datetime64", "datetime", "date", "timedelta64", "timedelta", "time", "period")


def amounts(col: pd.Series | pa.ChunkedArray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """An amount column as float64 (NaN for null) and a mask of its invalid values.

    Amounts are finite real numbers >= 0 (numbers, or strings of numbers). A column of
    another kind — booleans, complex numbers, dates, durations — is refused as a whole;
    single values that are text, complex, negative, infinite (or beyond float64) are
    invalid rows (NaN in the values), which the caller rejects with a reason.
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.to_pandas()
    if isinstance(col.dtype, pd.CategoricalDtype):  # the values, not the category codes
        col = pd.Series(col.cat.categories.take(col.cat.codes), dtype=object).where(
            col.cat.codes.to_numpy() >= 0, None
        )
    dtype = col.dtype
    is_object = pd.api.types.is_object_dtype(dtype)
    kind = pd.api.types.infer_dtype(col, skipna=True) if is_object else ""
    arrow = dtype.pyarrow_dtype if isinstance(dtype, pd.ArrowDtype) else None
    refused = (
        pd.api.types.is_bool_dtype(dtype)
        or pd.api.types.is_complex_dtype(dtype)
        or pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or (arrow is not None and pa.types.is_temporal(arrow))
        or kind in (*_TEMPORAL_KINDS, "boolean", "complex")
    )
    if refused:
        raise EventLogError(
            f"Column `{name}` (amount) holds {kind or dtype} values, not amounts; amounts "
            "must be real numbers >= 0 (a deal's value). Convert the column to numbers "
            "first, or leave amount=None."
        )
    null = np.asarray(col.isna().to_numpy(), dtype=bool)
    if pd.api.types.is_numeric_dtype(dtype) or kind in ("integer", "floating", "decimal"):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.zeros(values.size, dtype=bool)
    elif kind in ("string", "empty") or (not is_object and pd.api.types.is_string_dtype(dtype)):
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values) & ~null
    else:  # mixed objects: look at each value (no bool, complex, dates, containers)
        values = np.full(len(col), np.nan)
        objs = col.to_numpy(dtype=object)
        real = (int, float, np.integer, np.floating, Decimal)
        for i, v in enumerate(objs):
            if isinstance(v, real) and not isinstance(v, (bool, np.bool_)):
                values[i] = float(v)
        text = np.array([isinstance(v, str) for v in objs], dtype=bool)
        if text.any():
            values[text] = pd.to_numeric(pd.Series(objs[text]), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        bad = np.isnan(values) & ~null
    with np.errstate(invalid="ignore"):
        bad |= ~np.isfinite(values) & ~np.isnan(values)
        bad |= values < 0
    if bad.any():
        values = np.where(bad, np.nan, values)
    return values, bad


def deal_codes(
    col: pd.Series, labels: pd.Index, mark: Callable[[np.ndarray, str], None]
) -> np.ndarray:
    """Codes of a side table's deal column (activities, field history) among the log's
    deals ``labels``, -1 where there is none; ``mark(mask, reason)`` records the rows
    with an unhashable id (``invalid_deal``), none (``missing_deal``) or one the log does
    not have (``unknown_deal``)."""
    bad = unhashable(col)
    if bad is not None:
        mark(bad, "invalid_deal")
        col = blank(col, bad)
    null = np.asarray(col.isna().to_numpy(), dtype=bool)
    mark(null, "missing_deal")
    codes = np.full(len(col), -1, dtype=np.int64)
    if (~null).any():
        codes[~null] = labels.get_indexer(pd.Index(col[~null]))
    mark(codes < 0, "unknown_deal")
    return codes


def count_frame(counts: Sequence[tuple[str, int]], **by: Mapping[str, int]) -> pd.DataFrame:
    """A side table's quality counts as one row each, ``metric`` and ``value``: the
    ``counts`` in order, then each mapping of ``by`` with its name as prefix
    (``rejected={"bad_time": 2}`` → ``rejected_bad_time``)."""
    rows = list(counts)
    for prefix, mapping in by.items():
        rows += [(f"{prefix}_{k}", v) for k, v in mapping.items()]
    return pd.DataFrame(
        {"metric": [r[0] for r in rows], "value": np.array([r[1] for r in rows], np.int64)}
    )


def side_table_times(
    table: pd.DataFrame,
    time: str,
    date_format: str | None,
    mark: Callable[[np.ndarray, str], None],
    *,
    aware: bool,
    as_of_ns: int,
    what: str,
    var: str,
) -> Times:
    """A side table's time column (activities, field history), parsed as the log's are:
    the bad rows marked (``missing_time``, ``unparseable_time``, ``mixed_timezone``,
    ``after_as_of``) and an error when its times are not of the log's kind (naive or
    aware). ``what`` names the column's role ("activity time"), ``var`` the user's table
    in the fix the message shows ("acts")."""
    check_time_dtype(table[time], time)
    t = parse_times(table[time], date_format)
    mark(t.null, "missing_time")
    mark(t.unparseable, "unparseable_time")
    mark(t.mixed_tz, "mixed_timezone")
    parsed = ~(t.null | t.unparseable | t.mixed_tz)
    if parsed.any() and t.aware != aware:
        have, want = ("aware", "naive") if t.aware else ("naive", "aware")
        raise EventLogError(
            f"Column `{time}` ({what}) holds time-zone-{have} times but the event "
            f"log's are {want}; make them the same kind, e.g. "
            + (
                f"{var}[col] = {var}[col].dt.tz_convert(None)."
                if t.aware
                else f"{var}[col] = pd.to_datetime({var}[col]).dt.tz_localize('UTC')."
            )
        )
    mark(parsed & (t.ns > as_of_ns), "after_as_of")
    return t


def side_table_error(
    table: pd.DataFrame,
    reason: np.ndarray,
    roles: dict[str, str],
    columns: list[str],
    *,
    reasons: tuple[str, ...],
    reason_column: dict[str, str],
    hints: dict[str, str],
    what: str,
    rejects: str,
) -> EventLogError:
    """The error for a side table's bad rows (``reason``: 0 good, else 1 + the index in
    ``reasons``): per reason the count, the user's column (``roles[reason_column[r]]``),
    three examples and the hint; the bad rows as ``failure_cases``. ``what`` names the
    table ("the activities"), ``rejects`` where dropped rows go."""
    bad = np.flatnonzero(reason)
    cases = take_rows(table, bad, columns)
    cases.insert(0, "row", bad.astype(np.int64))
    cases["reason"] = pd.Series([reasons[r - 1] for r in reason[bad]], dtype=object).astype(str)
    parts = []
    for i, nm in enumerate(reasons):
        sel = reason[bad] == i + 1
        k = int(sel.sum())
        if not k:
            continue
        col = roles[reason_column[nm]]
        ex = cases[sel].head(3)
        shown = ", ".join(
            f"row {r}: {ex.loc[j, col]!r}" for j, r in zip(ex.index, ex["row"], strict=True)
        )
        parts.append(f"  {nm} ({k:,} rows, column `{col}`), e.g. {shown} — {hints[nm]}")
    return EventLogError(
        f"{what[0].upper()}{what[1:]} {'have' if what.endswith('s') else 'has'} "
        f"{bad.size:,} bad rows of {len(table):,}:\n"
        + "\n".join(parts)
        + f"\nFix them, or pass errors='drop' to leave them out (listed in {rejects}).",
        cases,
    )
