"""A bounds-checked byte reader/writer for handshake message bodies.

Every TLS/DTLS wire struct is fixed-size integers plus length-prefixed vectors
(RFC 5246 4.3: `opaque x<floor..ceiling>`, prefix as wide as the ceiling needs).  Parsing
goes through this one class so that no decoder ever trusts a length field: a read past
the end, a prefix that runs past its enclosing block, or a prefix outside the vector's
RFC bounds all raise `DecodeError` (RFC 5246 7.2.2: "some field was out of the specified
range or the length of the message was incorrect"), with a message naming the field.

A `Buffer` is used either to read (construct it with the bytes) or to write (construct
it empty, push, then take `data`); the two are not meant to be mixed.

This sits on the handshake path, where a full handshake makes a few hundred block and
vector calls, so the helpers are written to be cheap as well as checked: the vector and
list helpers compute their length prefix directly, and nested blocks are explicit
`begin_…_block`/`end_…_block` pairs (a `with` form, `pull_block`/`push_block`, is kept
for code where readability matters more than the microsecond a generator-based context
manager would cost).  Every bound is still checked before any content is looked at.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TypeVar

from .alerts import DecodeError, InternalError

__all__ = ["Buffer", "decode", "encode"]

T = TypeVar("T")

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")

_INT_SIZES = {1: 8, 2: 16, 3: 24, 4: 32}
_CEILINGS = {size: (1 << bits) - 1 for size, bits in _INT_SIZES.items()}
"""Largest length each prefix width can express: the default vector ceiling."""


class Buffer:
    """Cursor over a handshake body (reading) or a growing bytearray (writing).

    Reads are bounded by the innermost open block, so a field can never read into its
    neighbour even if the code inside the block is wrong.
    """

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview = b"") -> None:
        # A reader keeps immutable bytes (one copy, so the caller may reuse its buffer,
        # and slices come out as bytes without a second copy); a writer grows a bytearray.
        self._data: bytes | bytearray = bytes(data) if len(data) else bytearray()
        self._pos = 0
        self._end = len(self._data)

    # -- state -------------------------------------------------------------------------

    @property
    def data(self) -> bytes:
        """Everything in the buffer (for a writer: what has been pushed)."""
        return bytes(self._data)

    def tell(self) -> int:
        """Read position, from the start of the buffer."""
        return self._pos

    def remaining(self) -> int:
        """Bytes left to read in the innermost open block (or the whole buffer)."""
        return self._end - self._pos

    def eof(self) -> bool:
        """True when the innermost open block (or the buffer) has been fully read."""
        return self._pos >= self._end

    def require_eof(self, what: str) -> None:
        """Fail if bytes are left: trailing garbage after a struct is a decode_error.

        RFC 5246 7.4.1.2 lets only the hello messages carry optional trailing data
        (extensions), and they parse it explicitly; anything else left over means the
        handshake header's length disagrees with the body (RFC 5246 7.2.2).
        """
        if self._pos != self._end:
            raise DecodeError(f"{what}: {self._end - self._pos} trailing bytes")

    # -- reading -----------------------------------------------------------------------

    def _take(self, n: int, what: str) -> int:
        """Advance over n bytes and return where they start, or fail naming `what`."""
        pos = self._pos
        if n > self._end - pos:
            raise DecodeError(
                f"{what}: truncated (need {n} bytes, {self._end - pos} left)")
        self._pos = pos + n
        return pos

    def pull_bytes(self, n: int, what: str = "bytes") -> bytes:
        pos = self._take(n, what)
        return bytes(self._data[pos:pos + n])

    def pull_uint8(self, what: str = "uint8") -> int:
        return self._data[self._take(1, what)]

    def pull_uint16(self, what: str = "uint16") -> int:
        return int(_U16.unpack_from(self._data, self._take(2, what))[0])

    def pull_uint24(self, what: str = "uint24") -> int:
        pos = self._take(3, what)
        return int.from_bytes(self._data[pos:pos + 3], "big")

    def pull_uint32(self, what: str = "uint32") -> int:
        return int(_U32.unpack_from(self._data, self._take(4, what))[0])

    def pull_uint48(self, what: str = "uint48") -> int:
        pos = self._take(6, what)
        return int.from_bytes(self._data[pos:pos + 6], "big")

    def pull_uint64(self, what: str = "uint64") -> int:
        return int(_U64.unpack_from(self._data, self._take(8, what))[0])

    def _pull_checked_length(self, length_size: int, what: str, min_length: int,
                             max_length: int | None) -> int:
        """Read a vector's length prefix and check it against its RFC bounds and against
        the bytes left in the innermost block, before anything after it is looked at."""
        if length_size not in _INT_SIZES:
            raise InternalError(f"{what}: unsupported length prefix size {length_size}")
        pos = self._pos
        if length_size > self._end - pos:
            raise DecodeError(f"{what} length: truncated (need {length_size} bytes, "
                              f"{self._end - pos} left)")
        pos += length_size
        self._pos = pos
        length = (self._data[pos - 1] if length_size == 1
                  else int.from_bytes(self._data[pos - length_size:pos], "big"))
        if length < min_length or (max_length is not None and length > max_length):
            ceiling = _CEILINGS[length_size] if max_length is None else max_length
            raise DecodeError(f"{what}: length {length} outside {min_length}..{ceiling}")
        if length > self._end - pos:
            raise DecodeError(
                f"{what}: length {length} runs past the end ({self._end - pos} left)")
        return length

    def begin_pull_block(self, length_size: int, what: str, min_length: int = 0,
                         max_length: int | None = None) -> int:
        """Read a `length_size`-byte prefix and confine reads to that many bytes.

        `min_length`/`max_length` are the vector's RFC bounds in bytes (RFC 5246 4.3),
        checked before any of the contents is looked at; the block length is then
        `remaining()`.  Returns the enclosing limit, which the matching `end_pull_block`
        restores.
        """
        length = self._pull_checked_length(length_size, what, min_length, max_length)
        outer = self._end
        self._end = self._pos + length
        return outer

    def end_pull_block(self, outer: int, what: str) -> None:
        """Close the innermost block, which must have been consumed exactly."""
        if self._pos != self._end:
            raise DecodeError(f"{what}: {self._end - self._pos} trailing bytes in block")
        self._end = outer

    def pull_block(self, length_size: int, what: str, min_length: int = 0,
                   max_length: int | None = None) -> _PullBlock:
        """`with buf.pull_block(...) as length:` around `begin_pull_block`/`end_pull_block`.

        On an exception inside the block the block is not closed: the buffer is abandoned.
        """
        outer = self.begin_pull_block(length_size, what, min_length, max_length)
        return _PullBlock(self, outer, what)

    def pull_vector(self, length_size: int, what: str, min_length: int = 0,
                    max_length: int | None = None) -> bytes:
        """An `opaque what<min_length..max_length>` (RFC 5246 4.3)."""
        length = self._pull_checked_length(length_size, what, min_length, max_length)
        pos = self._pos
        self._pos = pos + length
        return bytes(self._data[pos:pos + length])

    def pull_list(self, length_size: int, pull_item: Callable[[Buffer], T], what: str,
                  min_length: int = 0, max_length: int | None = None) -> list[T]:
        """A vector of structs: `pull_item` repeatedly until the block is consumed.

        An item that straddles the block end fails inside `pull_item`, because reads are
        confined to the block.
        """
        items: list[T] = []
        outer = self.begin_pull_block(length_size, what, min_length, max_length)
        while self._pos < self._end:
            start = self._pos
            items.append(pull_item(self))
            if self._pos == start:  # a zero-width item would loop forever
                raise InternalError(f"{what}: item parser consumed nothing")
        self.end_pull_block(outer, what)
        return items

    def pull_uint8_list(self, length_size: int, what: str, min_length: int = 0,
                        max_length: int | None = None) -> list[int]:
        """A vector of uint8 codes (e.g. `CompressionMethod compression_methods<1..2^8-1>`)."""
        return list(self.pull_vector(length_size, what, min_length, max_length))

    def pull_uint16_list(self, length_size: int, what: str, min_length: int = 0,
                         max_length: int | None = None) -> list[int]:
        """A vector of uint16 codes (cipher suites, groups, signature schemes)."""
        length = self._pull_checked_length(length_size, what, min_length, max_length)
        if length % 2:
            raise DecodeError(f"{what}: odd length {length} for a list of uint16")
        pos = self._pos
        self._pos = pos + length
        return list(struct.unpack_from(f"!{length // 2}H", self._data, pos))

    # -- writing -----------------------------------------------------------------------
    # Encoding errors are our bugs, never the peer's: they raise InternalError so the
    # connection sends internal_error (RFC 5246 7.2.2) instead of a malformed message.

    def push_bytes(self, value: bytes | bytearray | memoryview) -> None:
        self._data += value

    def _push_int(self, value: int, size: int, what: str) -> None:
        try:
            self._data += value.to_bytes(size, "big")
        except OverflowError:
            raise InternalError(f"{what}: {value} does not fit in {size} bytes") from None

    def push_uint8(self, value: int, what: str = "uint8") -> None:
        if not 0 <= value <= 0xFF:
            raise InternalError(f"{what}: {value} does not fit in 1 byte")
        self._data.append(value)  # type: ignore[union-attr]  # a writer holds a bytearray

    def push_uint16(self, value: int, what: str = "uint16") -> None:
        self._push_int(value, 2, what)

    def push_uint24(self, value: int, what: str = "uint24") -> None:
        self._push_int(value, 3, what)

    def push_uint32(self, value: int, what: str = "uint32") -> None:
        self._push_int(value, 4, what)

    def push_uint48(self, value: int, what: str = "uint48") -> None:
        self._push_int(value, 6, what)

    def push_uint64(self, value: int, what: str = "uint64") -> None:
        self._push_int(value, 8, what)

    @staticmethod
    def _prefix(length: int, length_size: int, what: str, min_length: int,
                max_length: int | None) -> bytes:
        """The length prefix for a vector of `length` bytes, or InternalError if the
        length breaks the vector's bounds (or the width is not one we write)."""
        if length_size not in _INT_SIZES:
            raise InternalError(f"{what}: unsupported length prefix size {length_size}")
        ceiling = _CEILINGS[length_size] if max_length is None else max_length
        if not min_length <= length <= ceiling:
            raise InternalError(f"{what}: length {length} outside {min_length}..{ceiling}")
        return length.to_bytes(length_size, "big")

    def begin_push_block(self, length_size: int, what: str) -> int:
        """Reserve a `length_size`-byte prefix; returns where it starts, for
        `end_push_block`, which fills it in once the contents have been pushed."""
        if length_size not in _INT_SIZES:
            raise InternalError(f"{what}: unsupported length prefix size {length_size}")
        start = len(self._data)
        self._data += bytes(length_size)
        return start

    def end_push_block(self, start: int, length_size: int, what: str, min_length: int = 0,
                       max_length: int | None = None) -> None:
        """Fill in the prefix reserved at `start`, checking the contents' bounds."""
        data = self._data
        end = start + length_size
        data[start:end] = self._prefix(  # type: ignore[index]  # a writer's bytearray
            len(data) - end, length_size, what, min_length, max_length)

    def push_block(self, length_size: int, what: str, min_length: int = 0,
                   max_length: int | None = None) -> _PushBlock:
        """`with buf.push_block(...):` around `begin_push_block`/`end_push_block`."""
        start = self.begin_push_block(length_size, what)
        return _PushBlock(self, start, length_size, what, min_length, max_length)

    def push_vector(self, length_size: int, value: bytes | bytearray | memoryview, what: str,
                    min_length: int = 0, max_length: int | None = None) -> None:
        self._data += self._prefix(len(value), length_size, what, min_length, max_length)
        self._data += value

    def push_list(self, length_size: int, push_item: Callable[[Buffer, T], None],
                  items: Iterable[T], what: str, min_length: int = 0,
                  max_length: int | None = None) -> None:
        start = self.begin_push_block(length_size, what)
        for item in items:
            push_item(self, item)
        self.end_push_block(start, length_size, what, min_length, max_length)

    def push_uint8_list(self, length_size: int, values: Iterable[int], what: str,
                        min_length: int = 0, max_length: int | None = None) -> None:
        values = values if isinstance(values, (list, tuple)) else list(values)
        try:
            packed = bytes(values)
        except (TypeError, ValueError):
            # Some value is not a uint8: push one at a time for the per-value error.
            start = self.begin_push_block(length_size, what)
            for value in values:
                self.push_uint8(value, what)
            self.end_push_block(start, length_size, what, min_length, max_length)
            return
        self.push_vector(length_size, packed, what, min_length, max_length)

    def push_uint16_list(self, length_size: int, values: Iterable[int], what: str,
                         min_length: int = 0, max_length: int | None = None) -> None:
        values = values if isinstance(values, (list, tuple)) else list(values)
        try:
            packed = struct.pack(f"!{len(values)}H", *values)
        except struct.error:
            # Some value is not a uint16: push one at a time for the per-value error.
            start = self.begin_push_block(length_size, what)
            for value in values:
                self.push_uint16(value, what)
            self.end_push_block(start, length_size, what, min_length, max_length)
            return
        self.push_vector(length_size, packed, what, min_length, max_length)


class _PullBlock:
    """The `with` form of a pull block; `as` gives the block length."""

    __slots__ = ("_buf", "_outer", "_what")

    def __init__(self, buf: Buffer, outer: int, what: str) -> None:
        self._buf = buf
        self._outer = outer
        self._what = what

    def __enter__(self) -> int:
        return self._buf.remaining()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:  # on an exception the buffer is abandoned
            self._buf.end_pull_block(self._outer, self._what)


class _PushBlock:
    """The `with` form of a push block: the prefix is filled in on a normal exit."""

    __slots__ = ("_buf", "_length_size", "_max_length", "_min_length", "_start", "_what")

    def __init__(self, buf: Buffer, start: int, length_size: int, what: str,
                 min_length: int, max_length: int | None) -> None:
        self._buf = buf
        self._start = start
        self._length_size = length_size
        self._what = what
        self._min_length = min_length
        self._max_length = max_length

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self._buf.end_push_block(self._start, self._length_size, self._what,
                                     self._min_length, self._max_length)


def decode(pull: Callable[[Buffer], T], data: bytes | bytearray | memoryview,
           what: str = "message") -> T:
    """Parse a whole body with `pull` and reject trailing bytes.

    Use `functools.partial` (or a lambda) for pull functions that take extra arguments.
    """
    buf = Buffer(data)
    value = pull(buf)
    buf.require_eof(what)
    return value


def encode(push: Callable[[Buffer, T], None], value: T) -> bytes:
    """Serialize one value with `push` into fresh bytes."""
    buf = Buffer()
    push(buf, value)
    return buf.data
