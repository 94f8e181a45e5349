"""Encoding of input columns: deal-id keys without hashing, stage codes, time parsing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from funnelkit import _columns as C


@pytest.mark.parametrize("kind", ["fixed", "fixed_arrow", "variable", "int", "object"])
def test_id_keys_are_injective_and_order_preserving(rng, kind):
    n = 2000
    num = rng.integers(0, 10**6, n)
    if kind == "int":
        col = pd.Series(num * 13 - 5)
        ref = col.to_numpy()
    else:
        ids = [f"D{v:07d}" if kind != "variable" else f"x{v}" for v in num]
        ref = np.array(ids, dtype=object)
        col = pd.Series(ids, dtype="object" if kind == "object" else None)
        if kind == "fixed_arrow":
            col = pa.chunked_array([pa.array(ids[:700]), pa.array(ids[700:])])
    keys = C.id_keys(col)
    assert keys.keys.min() >= 0 and int(keys.keys.max()).bit_length() <= keys.bits
    # same id <=> same key, and key order = id order
    order = np.argsort(keys.keys, kind="stable")
    sorted_ref = ref[order]
    assert all(a <= b for a, b in zip(sorted_ref[:-1], sorted_ref[1:], strict=True))
    _, inv_ref = np.unique(ref, return_inverse=True)
    _, inv_key = np.unique(keys.keys, return_inverse=True)
    np.testing.assert_array_equal(inv_ref, inv_key)


def test_fixed_width_uses_mixed_radix_without_hashing():
    arr = pa.array(["D0000001", "D0999999", "D0500000", "D0000001"])
    keys, bits = C._byte_keys([arr])
    assert keys.tolist() == [1, 999999, 500000, 1]  # digits minus their per-position minimum
    assert bits <= 24
    # ids of different lengths: an "ended" digit below every byte, so prefixes sort first
    # (digits per position: ended, a, b)
    assert C._byte_keys([pa.array(["b", "a", "ab", "", "aa"])])[0].tolist() == [6, 3, 5, 0, 4]
    assert C._byte_keys([pa.array(["ab"]), pa.array(["abc", "a"])])[0].tolist() == [2, 3, 0]
    # too long, NUL bytes, or too many bits: None (the caller hashes)
    assert C._byte_keys([pa.array(["x" * 33, "x"])]) is None  # padding would copy too much
    assert C._byte_keys([pa.array(["x" * 129])]) is None
    long_fixed = [f"account-{i:04d}-{'z' * 40}" for i in (7, 3, 9)]  # one length: a view
    assert C._byte_keys([pa.array(long_fixed)])[0].tolist() == [4, 0, 6]
    assert C._byte_keys([pa.array(["a\x00", "a"])]) is None
    assert C._byte_keys([pa.array(["x" * 40 + str(i) * 40 for i in range(10)])]) is None  # bytes


@pytest.mark.parametrize("seed", range(4))
def test_ids_past_40_bits_get_exact_ranks_without_hashing(seed, monkeypatch):
    """UUIDs and other long ids: dense ranks in string order, equal to hashing the ids and
    sorting the distinct ones, also when many ids share their leading characters (the
    prefix the sort uses clashes, and those runs are sorted by every byte)."""
    import uuid

    hashed = []
    monkeypatch.setattr(C, "_hashed_keys", lambda chunks: hashed.append(1))
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 2**62, 3000)
    if seed % 2:  # ids of varying length: hex numbers of 1-16 digits, prefixes included
        ids = [
            f"{int(x) >> int(k):x}" for x, k in zip(big, rng.integers(0, 60, 3000), strict=True)
        ]
        shared = "abcdef01-"
    else:
        ids = [str(uuid.UUID(int=int(x), version=4)) for x in big]
        shared = "abcdef01-2345-4"  # alike in their first 15 characters, then random
    ids += [shared + f"{int(x):021x}"[: 36 - len(shared)] for x in rng.integers(0, 2**62, 500)]
    ids += ids[:1000] + ids[-200:]  # repeated ids: several rows per deal
    ids = [ids[i] for i in rng.permutation(len(ids))]
    whole = pa.array(ids[:1500])
    chunks = [whole.slice(11), pa.array(ids[:11]), pa.array(ids[1500:])]
    flat = np.array(ids[11:1500] + ids[:11] + ids[1500:])
    got = C.id_keys(pa.chunked_array(chunks))
    _, ref = np.unique(flat, return_inverse=True)
    np.testing.assert_array_equal(got.keys, ref)
    assert got.bits == max(1, int(ref.max()).bit_length())
    assert not hashed


@pytest.mark.parametrize("seed", range(6))
def test_variable_width_keys_order_like_python_strings(seed):
    rng = np.random.default_rng(seed)
    alphabet = list("0123456789abcxyzé-") if seed % 2 else list("0123456789")
    n = 20_000 if seed < 4 else 200
    lengths = rng.integers(0 if seed == 5 else 1, 9, n)
    ids = np.array(["".join(rng.choice(alphabet, k)) for k in lengths], dtype=object)
    whole = pa.array(ids[: n // 2].tolist())
    chunks = [
        whole.slice(7, n // 2 - 7),
        pa.array(ids[:7].tolist()),
        pa.array(ids[n // 2 :].tolist()),
    ]
    order = np.concatenate([ids[7 : n // 2], ids[:7], ids[n // 2 :]])
    got = C._byte_keys(chunks)
    if got is None:  # allowed only when the key really needs more than 40 bits
        assert seed % 2
        return
    keys, bits = got
    _, rank = np.unique(order.astype(str), return_inverse=True)
    _, key_rank = np.unique(keys, return_inverse=True)
    np.testing.assert_array_equal(key_rank, rank)
    assert keys.min() >= 0 and int(keys.max()).bit_length() <= bits


def test_fixed_width_keys_over_chunks_order_like_the_strings():
    rng = np.random.default_rng(3)
    ids = np.array(
        [
            f"K{x:05d}-{y}"
            for x, y in zip(
                rng.integers(0, 99_999, 70_000), rng.choice(list("abcxyz"), 70_000), strict=True
            )
        ]
    )
    # uneven chunks, one of them a slice (non-zero offset), many rows per block
    whole = pa.array(ids[:50_000])
    chunks = [whole.slice(10_007, 39_993), pa.array(ids[:10_007]), pa.array(ids[50_000:])]
    keys, bits = C._byte_keys(chunks)
    order = np.concatenate([ids[10_007:50_000], ids[:10_007], ids[50_000:]])
    _, rank = np.unique(order, return_inverse=True)
    _, key_rank = np.unique(keys, return_inverse=True)
    np.testing.assert_array_equal(key_rank, rank)  # injective and order-preserving
    assert keys.min() >= 0 and int(keys.max()).bit_length() <= bits
    col = pa.chunked_array(chunks)
    np.testing.assert_array_equal(C.id_keys(col).keys, keys)


def test_id_nulls_flagged():
    keys = C.id_keys(pd.Series(["a1", None, "a2"]))
    assert keys.null.tolist() == [False, True, False]


def test_stage_codes_with_map_merge_names():
    codes, names = C.stage_codes(
        pd.Series(["Disc", "Discovery", None, "Demo"]), {"Disc": "Discovery"}
    )
    assert names == ["Discovery", "Demo"]
    assert codes.tolist() == [0, 0, -1, 1]


def test_parse_times_flags():
    t = C.parse_times(
        pd.Series(
            ["2025-01-01T10:00Z", "2025-01-02 11:00+01:00", "nope", None, "2025-01-03 09:00"]
        )
    )
    assert t.aware
    assert t.unparseable.tolist() == [False, False, True, False, False]
    assert t.null.tolist() == [False, False, False, True, False]
    assert t.mixed_tz.tolist() == [False, False, False, False, True]
    assert t.ns[1] == pd.Timestamp("2025-01-02 10:00").value


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "Europe/Berlin"])
def test_arrow_timestamps_of_any_unit_with_nulls_and_sliced_chunks(unit, tz):
    values = [0, 1_700_000_000, None, 1_600_000_123, -86_400]
    typ = pa.timestamp(unit, tz=tz)
    whole = pa.array(
        [None if v is None else v * C._NS_PER["s"] // C._NS_PER[unit] for v in values], type=typ
    )
    col = pa.chunked_array(
        [whole.slice(1, 3), pa.array([], type=typ), whole.slice(0, 1), whole.slice(4)]
    )
    t = C.parse_times(col)
    expected = pd.Series(col.to_pandas())
    if tz:
        expected = expected.dt.tz_convert("UTC").dt.tz_localize(None)
    exp = expected.to_numpy(dtype="datetime64[ns]").view(np.int64)
    np.testing.assert_array_equal(t.ns, np.where(expected.isna(), C.NAT, exp))
    assert t.null.tolist() == [False, True, False, False, False]
    assert t.aware == (tz is not None)


def test_arrow_timestamps_beyond_the_ns_range_are_unparseable():
    year_33658 = 10**12
    col = pa.chunked_array(
        [pa.array([0, year_33658, None], type=pa.timestamp("s")), pa.array([5], pa.timestamp("s"))]
    )
    t = C.parse_times(col)
    assert t.unparseable.tolist() == [False, True, False, False]
    assert t.null.tolist() == [False, False, True, False]
    assert t.ns.tolist() == [0, C.NAT, C.NAT, 5 * 10**9]


def test_arrow_integer_ids_are_used_as_they_are():
    col = pa.chunked_array([pa.array([5, None, 7], pa.int32()), pa.array([5, 1000], pa.int32())])
    k = C.id_keys(col)
    assert k.null.tolist() == [False, True, False, False, False]
    assert k.keys[~k.null].tolist() == [0, 2, 0, 995]
    big = pa.chunked_array([pa.array([2**63 + 5, 3], pa.uint64())])  # beyond int64: hashed
    assert C.id_keys(big).keys.tolist() == [1, 0]


@pytest.mark.parametrize("as_series", [False, True])
def test_long_string_ids_get_sorted_hash_codes(as_series):
    rng = np.random.default_rng(5)
    ids = [f"{x:032x}-{'é' * int(x % 3)}" for x in rng.integers(0, 2**62, 3000)]
    ids[7] = None
    ids[100:200] = ids[:100]  # repeats
    col = (
        pd.Series(ids)
        if as_series
        else pa.chunked_array([pa.array(ids[:1000]), pa.array(ids[1000:])])
    )
    k = C.id_keys(col)
    codes, _ = pd.factorize(pd.Series(ids), sort=True)
    np.testing.assert_array_equal(k.keys[codes >= 0], codes[codes >= 0])
    assert k.null.tolist() == [i in (7, 107) for i in range(3000)]
    assert int(k.keys.max()).bit_length() <= k.bits


def test_odd_id_columns():
    import funnelkit as fk

    kw = dict(deal="deal", stage="stage", time="ts", stages=["A"], won="W", lost="L")
    schema = pa.schema([("deal", pa.string()), ("stage", pa.string()), ("ts", pa.timestamp("us"))])
    with pytest.raises(fk.EventLogError, match="empty"):  # an arrow table without chunks
        fk.EventLog(pa.Table.from_batches([], schema), **kw)
    # dictionary-encoded integers: deals in value order, not dictionary order
    t = pa.table(
        {
            "deal": pa.array([5, 3, 7, 9, 5]).dictionary_encode(),
            "stage": ["A", "A", "A", "A", "W"],
            "ts": pa.array([1, 2, 3, 4, 5], pa.timestamp("s")),
        }
    )
    assert fk.EventLog(t, **kw).deals()["deal"].tolist() == [3, 5, 7, 9]
    # strings arrow cannot encode (a lone surrogate): a bad row (invalid_deal), as a stage
    # name with one is (no table or page could be written with it), never a crash
    df = pd.DataFrame(
        {
            "deal": pd.Series(["\ud800", "a", "a"], dtype=object),
            "stage": ["A", "A", "W"],
            "ts": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03"]),
        }
    )
    dropped = fk.EventLog(df, **kw, errors="drop")
    assert dropped.deals()["deal"].tolist() == ["a"]
    assert dropped.rejects["reason"].tolist() == ["invalid_deal"]


@pytest.mark.parametrize("as_strings", [False, True])
def test_pandas_times_beyond_the_ns_range_are_unparseable(as_strings):
    import funnelkit as fk

    ts = np.array(["2025-01-01", "2999-01-01", "1600-05-01", "2025-01-02"], dtype="datetime64[s]")
    col = pd.Series(ts.astype(str) if as_strings else ts)
    t = C.parse_times(col)
    assert t.unparseable.tolist() == [False, True, True, False]
    assert (
        t.ns[[0, 3]].tolist()
        == pd.to_datetime(["2025-01-01", "2025-01-02"]).as_unit("ns").asi8.tolist()
    )
    df = pd.DataFrame({"deal": ["a", "a", "b", "b"], "stage": ["A", "W", "A", "A"], "ts": col})
    log = fk.EventLog(
        df, deal="deal", stage="stage", time="ts", stages=["A"], won="W", lost="L", errors="drop"
    )
    assert log.quality.by_reason == {"unparseable_time": 2}
