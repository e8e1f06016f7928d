"""dtls.buffer: bounds-checked reads, RFC vector bounds, exact-consumption of blocks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtls.alerts import AlertDescription, DecodeError, InternalError
from dtls.buffer import Buffer, decode, encode


def test_integers_round_trip_big_endian() -> None:
    buf = Buffer()
    buf.push_uint8(0x01)
    buf.push_uint16(0x0203)
    buf.push_uint24(0x040506)
    buf.push_uint32(0x0708090A)
    buf.push_uint48(0x0B0C0D0E0F10)
    buf.push_uint64(0x1112131415161718)
    assert buf.data == bytes(range(1, 0x19))
    r = Buffer(buf.data)
    assert r.pull_uint8() == 0x01
    assert r.pull_uint16() == 0x0203
    assert r.pull_uint24() == 0x040506
    assert r.pull_uint32() == 0x0708090A
    assert r.pull_uint48() == 0x0B0C0D0E0F10
    assert r.pull_uint64() == 0x1112131415161718
    assert r.eof()
    r.require_eof("test")


@pytest.mark.parametrize("name,size", [
    ("pull_uint8", 1), ("pull_uint16", 2), ("pull_uint24", 3), ("pull_uint32", 4),
    ("pull_uint48", 6), ("pull_uint64", 8),
])
def test_truncated_integer_names_field(name: str, size: int) -> None:
    r = Buffer(bytes(size - 1))
    with pytest.raises(DecodeError, match="Foo.bar: truncated") as info:
        getattr(r, name)("Foo.bar")
    assert info.value.description == AlertDescription.decode_error


def test_pull_bytes_past_end() -> None:
    r = Buffer(b"abc")
    with pytest.raises(DecodeError, match="need 4 bytes, 3 left"):
        r.pull_bytes(4, "x")
    assert r.pull_bytes(3) == b"abc"


def test_vector_bounds_are_checked_before_contents() -> None:
    # session_id<0..32> with a 33-byte length: rejected even though the bytes are there.
    with pytest.raises(DecodeError, match=r"session_id: length 33 outside 0\.\.32"):
        Buffer(b"\x21" + bytes(33)).pull_vector(1, "session_id", 0, 32)
    with pytest.raises(DecodeError, match=r"outside 1\.\.255"):
        Buffer(b"\x00").pull_vector(1, "compression_methods", 1, 255)


def test_block_length_past_end() -> None:
    with pytest.raises(DecodeError, match="runs past the end"):
        Buffer(b"\x00\x05abcd").pull_vector(2, "v")
    with pytest.raises(DecodeError, match="v length: truncated"):
        Buffer(b"\x00").pull_vector(2, "v")


def test_block_confines_inner_reads() -> None:
    # A 1-byte block followed by more data: a uint16 read inside must not see past it.
    r = Buffer(b"\x01\xaa\xbb\xcc")
    with pytest.raises(DecodeError, match="inner: truncated"), r.pull_block(1, "outer"):
        r.pull_uint16("inner")


def test_block_must_be_consumed() -> None:
    r = Buffer(b"\x02\xaa\xbb")
    with pytest.raises(DecodeError, match="outer: 1 trailing bytes in block"), \
            r.pull_block(1, "outer"):
        r.pull_uint8()


def test_nested_blocks_restore_outer_limit() -> None:
    r = Buffer(b"\x00\x04\x02\xaa\xbb\xcc\xdd")
    with r.pull_block(2, "outer") as n:
        assert n == 4
        assert r.pull_vector(1, "inner") == b"\xaa\xbb"
        assert r.remaining() == 1
        assert r.pull_uint8() == 0xCC
    assert r.remaining() == 1 and r.pull_uint8() == 0xDD


def test_uint16_list_rejects_odd_length() -> None:
    with pytest.raises(DecodeError, match="odd length 3"):
        Buffer(b"\x00\x03\x00\x01\x02").pull_uint16_list(2, "cipher_suites", 2)
    assert Buffer(b"\x00\x04\x00\x01\xc0\x2b").pull_uint16_list(2, "cs") == [1, 0xC02B]


def test_pull_list_items_straddling_block_end() -> None:
    def item(b: Buffer) -> bytes:
        return b.pull_vector(1, "item", 1)
    assert Buffer(b"\x00\x04\x01a\x01b").pull_list(2, item, "list") == [b"a", b"b"]
    with pytest.raises(DecodeError, match="item: length 2 runs past the end"):
        Buffer(b"\x00\x03\x01a\x02bc").pull_list(2, item, "list")


def test_require_eof_rejects_trailing_bytes() -> None:
    with pytest.raises(DecodeError, match="Thing: 2 trailing bytes"):
        decode(lambda b: b.pull_uint8(), b"\x01\x02\x03", "Thing")
    assert decode(lambda b: b.pull_uint8(), b"\x07") == 7


def test_push_block_fills_length_and_checks_bounds() -> None:
    buf = Buffer()
    with buf.push_block(3, "cert"):
        buf.push_bytes(b"xyz")
    assert buf.data == b"\x00\x00\x03xyz"
    assert encode(lambda b, v: b.push_vector(1, v, "c", 0, 255), b"ab") == b"\x02ab"
    with pytest.raises(InternalError, match="length 33 outside 0..32"):
        Buffer().push_vector(1, bytes(33), "session_id", 0, 32)
    with pytest.raises(InternalError, match="length 256 outside 0..255"):
        Buffer().push_vector(1, bytes(256), "cookie")
    with pytest.raises(InternalError, match="length 0 outside 1"):
        Buffer().push_uint16_list(2, [], "cipher_suites", 1)


@pytest.mark.parametrize("name,value", [
    ("push_uint8", 256), ("push_uint8", -1), ("push_uint16", 1 << 16),
    ("push_uint24", 1 << 24), ("push_uint32", 1 << 32), ("push_uint48", 1 << 48),
    ("push_uint64", 1 << 64),
])
def test_push_out_of_range_is_internal_error(name: str, value: int) -> None:
    with pytest.raises(InternalError):
        getattr(Buffer(), name)(value, "field")


def test_unsupported_length_size() -> None:
    with pytest.raises(InternalError):
        Buffer(b"\x00" * 8).pull_vector(5, "x")
    with pytest.raises(InternalError), Buffer().push_block(8, "x"):
        pass


@given(st.binary(max_size=64), st.sampled_from([1, 2, 3]),
       st.integers(0, 4), st.one_of(st.none(), st.integers(0, 40)))
def test_fuzz_vector_reads_raise_only_decode_error(data: bytes, size: int, lo: int,
                                                   hi: int | None) -> None:
    r = Buffer(data)
    try:
        value = r.pull_vector(size, "v", lo, hi)
    except DecodeError:
        return
    n = int.from_bytes(data[:size], "big")
    assert value == data[size:size + n]
    assert lo <= n and (hi is None or n <= hi)


@given(st.lists(st.binary(max_size=300), max_size=5), st.sampled_from([1, 2, 3]))
def test_fuzz_vector_round_trip(items: list[bytes], size: int) -> None:
    items = [i[: (1 << (8 * size)) - 1] for i in items]
    buf = Buffer()
    for item in items:
        buf.push_vector(size, item, "v")
    r = Buffer(buf.data)
    assert [r.pull_vector(size, "v") for _ in items] == items
    r.require_eof("v")


def test_pull_list_refuses_zero_width_items() -> None:
    with pytest.raises(InternalError, match="consumed nothing"):
        Buffer(b"\x01\x00").pull_list(1, lambda b: None, "list")
