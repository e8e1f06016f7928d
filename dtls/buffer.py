"""A bounds-checked byte reader/writer for handshake message bodies.

Every TLS/DTLS wire struct is fixed-size integers plus length-prefixed vectors
(RFC 5246 4.3: `opaque x<floor..ceiling>`, prefix as wide as the ceiling needs).  Parsing
goes through this one class so that no decoder ever trusts a length field: a read past
the end, a prefix that runs past its enclosing block, or a prefix outside the vector's
RFC bounds all raise `DecodeError` (RFC 5246 7.2.2: "some field was out of the specified
range or the length of the message was incorrect"), with a message naming the field.

A `Buffer` is used either to read (construct it with the bytes) or to write (construct
it empty, push, then take `data`); the two are not meant to be mixed.

This sits on the handshake path, not the per-record path, so it favours clarity over
speed, but it still avoids per-call allocation beyond the returned values.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from .alerts import DecodeError, InternalError

__all__ = ["Buffer", "decode", "encode"]

T = TypeVar("T")

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")

_INT_SIZES = {1: 8, 2: 16, 3: 24, 4: 32}


class Buffer:
    """Cursor over a handshake body (reading) or a growing bytearray (writing).

    Reads are bounded by the innermost open `pull_block`, so a field can never read
    into its neighbour even if the code inside the block is wrong.
    """

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview = b"") -> None:
        self._data = bytearray(data)
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

    def _pull_length(self, length_size: int, what: str) -> int:
        if length_size not in _INT_SIZES:
            raise InternalError(f"{what}: unsupported length prefix size {length_size}")
        pos = self._take(length_size, f"{what} length")
        return int.from_bytes(self._data[pos:pos + length_size], "big")

    @contextmanager
    def pull_block(self, length_size: int, what: str, min_length: int = 0,
                   max_length: int | None = None) -> Iterator[int]:
        """Read a `length_size`-byte prefix and confine reads to that many bytes.

        Yields the block length.  `min_length`/`max_length` are the vector's RFC bounds
        in bytes (RFC 5246 4.3), checked before any of the contents is looked at.  On
        leaving, the block must have been consumed exactly.
        """
        length = self._pull_length(length_size, what)
        if length < min_length or (max_length is not None and length > max_length):
            ceiling = (1 << (8 * length_size)) - 1 if max_length is None else max_length
            raise DecodeError(f"{what}: length {length} outside {min_length}..{ceiling}")
        end = self._pos + length
        if end > self._end:
            raise DecodeError(
                f"{what}: length {length} runs past the end ({self._end - self._pos} left)")
        outer = self._end
        self._end = end
        yield length
        # Not in a finally: on an exception inside the block the buffer is abandoned.
        if self._pos != end:
            raise DecodeError(f"{what}: {end - self._pos} trailing bytes in block")
        self._end = outer

    def pull_vector(self, length_size: int, what: str, min_length: int = 0,
                    max_length: int | None = None) -> bytes:
        """An `opaque what<min_length..max_length>` (RFC 5246 4.3)."""
        with self.pull_block(length_size, what, min_length, max_length) as length:
            return self.pull_bytes(length, what)

    def pull_list(self, length_size: int, pull_item: Callable[[Buffer], T], what: str,
                  min_length: int = 0, max_length: int | None = None) -> list[T]:
        """A vector of structs: `pull_item` repeatedly until the block is consumed.

        An item that straddles the block end fails inside `pull_item`, because reads are
        confined to the block.
        """
        items: list[T] = []
        with self.pull_block(length_size, what, min_length, max_length):
            while self._pos < self._end:
                start = self._pos
                items.append(pull_item(self))
                if self._pos == start:  # a zero-width item would loop forever
                    raise InternalError(f"{what}: item parser consumed nothing")
        return items

    def pull_uint8_list(self, length_size: int, what: str, min_length: int = 0,
                        max_length: int | None = None) -> list[int]:
        """A vector of uint8 codes (e.g. `CompressionMethod compression_methods<1..2^8-1>`)."""
        return list(self.pull_vector(length_size, what, min_length, max_length))

    def pull_uint16_list(self, length_size: int, what: str, min_length: int = 0,
                         max_length: int | None = None) -> list[int]:
        """A vector of uint16 codes (cipher suites, groups, signature schemes)."""
        with self.pull_block(length_size, what, min_length, max_length) as length:
            if length % 2:
                raise DecodeError(f"{what}: odd length {length} for a list of uint16")
            pos = self._take(length, what)
            return [v for (v,) in struct.iter_unpack("!H", self._data[pos:pos + length])]

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
        self._data.append(value)

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

    @contextmanager
    def push_block(self, length_size: int, what: str, min_length: int = 0,
                   max_length: int | None = None) -> Iterator[None]:
        """Reserve a length prefix, let the caller push the contents, then fill it in."""
        if length_size not in _INT_SIZES:
            raise InternalError(f"{what}: unsupported length prefix size {length_size}")
        start = len(self._data)
        self._data += bytes(length_size)
        yield
        length = len(self._data) - start - length_size
        ceiling = (1 << _INT_SIZES[length_size]) - 1 if max_length is None else max_length
        if not min_length <= length <= ceiling:
            raise InternalError(f"{what}: length {length} outside {min_length}..{ceiling}")
        self._data[start:start + length_size] = length.to_bytes(length_size, "big")

    def push_vector(self, length_size: int, value: bytes | bytearray | memoryview, what: str,
                    min_length: int = 0, max_length: int | None = None) -> None:
        with self.push_block(length_size, what, min_length, max_length):
            self._data += value

    def push_list(self, length_size: int, push_item: Callable[[Buffer, T], None],
                  items: Iterable[T], what: str, min_length: int = 0,
                  max_length: int | None = None) -> None:
        with self.push_block(length_size, what, min_length, max_length):
            for item in items:
                push_item(self, item)


    def push_uint8_list(self, length_size: int, values: Iterable[int], what: str,
                        min_length: int = 0, max_length: int | None = None) -> None:
        with self.push_block(length_size, what, min_length, max_length):
            for value in values:
                self.push_uint8(value, what)

    def push_uint16_list(self, length_size: int, values: Iterable[int], what: str,
                         min_length: int = 0, max_length: int | None = None) -> None:
        with self.push_block(length_size, what, min_length, max_length):
            for value in values:
                self.push_uint16(value, what)


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
