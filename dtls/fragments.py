"""DTLS handshake message framing: header, fragmentation, reassembly (RFC 6347 4.2.2-4.2.3).

Handshake messages in DTLS carry a 12-byte header instead of TLS's 4 bytes (RFC 6347 4.2.2):

    msg_type(1) length(3) message_seq(2) fragment_offset(3) fragment_length(3)

so that a message can be cut into fragments that each fit one datagram, and the receiver can
put them back together whatever the network did to them.  This module does exactly that and
nothing else: it never sees a record header, an epoch's keys or a socket.

* `HandshakeHeader`, `parse_fragments`: the wire format.  A record may carry several handshake
  fragments back to back (RFC 6347 4.2.3); bodies come back as zero-copy memoryviews.
* `fragment_message`, `FlightPacker`, `pack_flight`: the sending side.  Record wrapping is the
  caller's; the packer only sizes pieces to the room the caller says is left in a datagram.
* `HandshakeReassembler`: the receiving side, with hard caps on everything an unauthenticated
  peer can make it store (CVE-2014-0195 was a heap overflow in exactly this code in OpenSSL).

Invalid fragments are dropped and counted, never raised: RFC 6347 4.1.2.7 says invalid records
SHOULD be silently discarded to preserve the association, and epoch-0 fragments are
unauthenticated, so raising would let anyone who can spoof one datagram abort the handshake.
Only framing that cannot be parsed at all (`parse_fragments`) raises `DecodeError`; whether
that drops the record or ends the connection is the caller's policy.
"""

from __future__ import annotations

import enum
import struct
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from .alerts import DecodeError

Buffer = bytes | bytearray | memoryview

HANDSHAKE_HEADER_LENGTH = 12
"""RFC 6347 4.2.2: the DTLS handshake header is 12 bytes."""

MAX_UINT24 = (1 << 24) - 1
MAX_MESSAGE_SEQ = (1 << 16) - 1

MAX_RECORD_PLAINTEXT = 1 << 14
"""RFC 6347 4.1 / RFC 5246 6.2.1: a record carries at most 2^14 bytes of plaintext."""

DEFAULT_MAX_MESSAGE_LENGTH = 64 * 1024
DEFAULT_MAX_BUFFERED_BYTES = 128 * 1024
DEFAULT_MAX_MESSAGES_AHEAD = 6
DEFAULT_MAX_FRAGMENTS_PER_MESSAGE = 128

# type|length as one uint32, message_seq, then fragment_offset|fragment_length (48 bits) split
# 16 + 32: struct has no 24-bit format, and this keeps parsing to one unpack_from call.
_HEADER = struct.Struct("!IHHI")
_PACK_HEADER = _HEADER.pack


def _check_uint(name: str, value: int, maximum: int) -> None:
    if not 0 <= value <= maximum:
        raise ValueError(f"{name} {value} outside 0..{maximum}")


def _pack_header(msg_type: int, length: int, message_seq: int, fragment_offset: int,
                 fragment_length: int) -> bytes:
    """The 12 header bytes.  ValueError for out-of-range fields (a caller bug, not an alert).

    One function for every header we write (fragments, the transcript's unfragmented form,
    range checks): it runs for every message and piece of every flight, so the common case
    is one chained comparison and one pack, and the per-field checks only name the culprit.
    """
    if not (0 <= msg_type <= 0xFF and 0 <= message_seq <= MAX_MESSAGE_SEQ
            and 0 <= length <= MAX_UINT24 and 0 <= fragment_offset <= MAX_UINT24
            and 0 <= fragment_length <= MAX_UINT24):
        _check_uint("msg_type", msg_type, 0xFF)
        _check_uint("length", length, MAX_UINT24)
        _check_uint("message_seq", message_seq, MAX_MESSAGE_SEQ)
        _check_uint("fragment_offset", fragment_offset, MAX_UINT24)
        _check_uint("fragment_length", fragment_length, MAX_UINT24)
    return _PACK_HEADER(
        (msg_type << 24) | length,
        message_seq,
        fragment_offset >> 8,
        ((fragment_offset & 0xFF) << 24) | fragment_length,
    )


# --------------------------------------------------------------------------------------------
# Wire format
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandshakeHeader:
    """The DTLS handshake header (RFC 6347 4.2.2).

    `length` is the whole message's body length; `fragment_offset`/`fragment_length` place
    this fragment's bytes within it.  An unfragmented message has offset 0 and
    fragment_length == length, which is also the form the Finished hash covers (4.2.6).
    """

    msg_type: int
    length: int
    message_seq: int
    fragment_offset: int
    fragment_length: int

    @classmethod
    def parse(cls, data: Buffer, offset: int = 0) -> HandshakeHeader:
        """Parse the header at `data[offset:]`; DecodeError if fewer than 12 bytes remain."""
        if offset < 0 or len(data) - offset < HANDSHAKE_HEADER_LENGTH:
            raise DecodeError("handshake header truncated")
        type_length, message_seq, offset_hi, offset_lo_length = _HEADER.unpack_from(data, offset)
        return cls(
            type_length >> 24,
            type_length & MAX_UINT24,
            message_seq,
            (offset_hi << 8) | (offset_lo_length >> 24),
            offset_lo_length & MAX_UINT24,
        )

    def serialize(self) -> bytes:
        """The 12 header bytes.  ValueError for out-of-range fields (a caller bug, not an alert)."""
        return _pack_header(self.msg_type, self.length, self.message_seq,
                            self.fragment_offset, self.fragment_length)


@dataclass(frozen=True, slots=True)
class HandshakeFragment:
    """One handshake fragment: the header fields and `fragment_length` bytes of body.

    From `parse_fragments` the body is a memoryview into the record's payload, so nothing is
    copied per fragment; the reassembler copies what it keeps.  A caller that reuses its
    receive buffer must therefore feed fragments to the reassembler before the next read.
    Nothing here is validated against `length`: that is the reassembler's job, so that an
    inconsistent fragment is dropped (RFC 6347 4.1.2.7) rather than failing the whole record.
    """

    msg_type: int
    length: int
    message_seq: int
    fragment_offset: int
    body: Buffer

    @property
    def fragment_length(self) -> int:
        return len(self.body)

    @property
    def end(self) -> int:
        """fragment_offset + fragment_length: one past the last body byte this fragment covers."""
        return self.fragment_offset + len(self.body)

    @property
    def header(self) -> HandshakeHeader:
        return HandshakeHeader(
            self.msg_type, self.length, self.message_seq, self.fragment_offset, len(self.body)
        )

    def serialize(self) -> bytes:
        """Header + body, as the fragment appears on the wire."""
        return _pack_header(self.msg_type, self.length, self.message_seq,
                            self.fragment_offset, len(self.body)) + bytes(self.body)


def parse_fragments(payload: Buffer) -> list[HandshakeFragment]:
    """Split a handshake record's plaintext into its fragments (RFC 6347 4.2.3).

    A record may hold several handshake fragments back to back ("multiple handshake messages
    may be placed in the same DTLS record").  All-or-nothing: DecodeError for an empty payload
    (RFC 5246 6.2.1 forbids zero-length handshake records), a truncated header, or a
    fragment_length running past the record, and then no fragment of the record is returned,
    so a malformed record can never be half applied.
    """
    view = memoryview(payload).cast("B")
    total = len(view)
    if total == 0:
        raise DecodeError("empty handshake record")
    fragments: list[HandshakeFragment] = []
    pos = 0
    unpack_from = _HEADER.unpack_from
    while pos < total:
        if total - pos < HANDSHAKE_HEADER_LENGTH:
            raise DecodeError(f"handshake header truncated at byte {pos} of {total}")
        type_length, message_seq, offset_hi, offset_lo_length = unpack_from(view, pos)
        fragment_length = offset_lo_length & MAX_UINT24
        start = pos + HANDSHAKE_HEADER_LENGTH
        end = start + fragment_length
        if end > total:
            raise DecodeError(
                f"fragment_length {fragment_length} runs past the record ({total - start} left)"
            )
        fragments.append(HandshakeFragment(
            type_length >> 24,
            type_length & MAX_UINT24,
            message_seq,
            (offset_hi << 8) | (offset_lo_length >> 24),
            view[start:end],
        ))
        pos = end
    return fragments


@dataclass(frozen=True, slots=True)
class HandshakeMessage:
    """A whole handshake message: what the reassembler yields and what a flight is made of."""

    msg_type: int
    message_seq: int
    body: bytes

    @property
    def header(self) -> HandshakeHeader:
        """The unfragmented header: fragment_offset 0, fragment_length = length."""
        n = len(self.body)
        return HandshakeHeader(self.msg_type, n, self.message_seq, 0, n)

    @classmethod
    def parse(cls, data: Buffer) -> HandshakeMessage:
        """Inverse of `serialize`: exactly one unfragmented message, else DecodeError.

        For flights stored as bytes; fragments off the wire go through the reassembler.
        """
        header = HandshakeHeader.parse(data)
        if header.fragment_offset != 0 or header.fragment_length != header.length:
            raise DecodeError("handshake message is a fragment, not a whole message")
        if len(data) != HANDSHAKE_HEADER_LENGTH + header.length:
            raise DecodeError("handshake message length disagrees with its header")
        return cls(header.msg_type, header.message_seq, bytes(data[HANDSHAKE_HEADER_LENGTH:]))

    def serialize(self) -> bytes:
        """The canonical unfragmented header + body, for the handshake transcript.

        RFC 6347 4.2.6: the Finished MAC is computed "as if each handshake message had been
        sent as a single fragment", whatever fragmentation was actually used on the wire.
        """
        n = len(self.body)
        return _pack_header(self.msg_type, n, self.message_seq, 0, n) + self.body

    def fragment(self, max_fragment_payload: int) -> list[bytes]:
        """See `fragment_message`."""
        return fragment_message(self.msg_type, self.message_seq, self.body, max_fragment_payload)


# --------------------------------------------------------------------------------------------
# Sending: fragmentation and packing a flight into datagrams
# --------------------------------------------------------------------------------------------


def _fragment_bytes(
    msg_type: int, message_seq: int, body: memoryview, offset: int, count: int
) -> bytes:
    return _pack_header(msg_type, len(body), message_seq, offset, count) \
        + body[offset:offset + count]


def fragment_message(
    msg_type: int, message_seq: int, body: Buffer, max_fragment_payload: int
) -> list[bytes]:
    """Cut one message into header+fragment chunks of at most `max_fragment_payload` body bytes.

    RFC 6347 4.2.3: the ranges are contiguous, do not overlap and jointly cover the message.
    An empty body still yields one (header-only) fragment: ServerHelloDone has no body, and a
    message must be sent to exist.
    """
    if max_fragment_payload < 1:
        raise ValueError("max_fragment_payload must be at least 1")
    view = memoryview(body).cast("B")
    length = len(view)
    _check_uint("message length", length, MAX_UINT24)
    if length == 0:
        return [_pack_header(msg_type, 0, message_seq, 0, 0)]
    return [
        _fragment_bytes(msg_type, message_seq, view, offset,
                        min(max_fragment_payload, length - offset))
        for offset in range(0, length, max_fragment_payload)
    ]


H = TypeVar("H")
"""The caller's per-record hint (e.g. content type and epoch): opaque here, handed back."""

FlightItem = tuple[H, HandshakeMessage | bytes]
"""A flight entry: a handshake message (fragmentable) or raw bytes for a record of their own
(ChangeCipherSpec), with the hint the caller needs to wrap the piece in a record."""


class FlightPacker(Generic[H]):
    """Cuts a flight into pieces sized to whatever room is left in the datagram being built.

    RFC 6347 4.2.3 and 4.1.1: each fragment must fit a datagram, and several records may
    share one.  The record overhead depends on the epoch (and the caller's cipher), which
    this module does not know, so the protocol is: look at `next_hint`, compute how much
    record payload still fits, and `take(room)`; None means start the next datagram.

    Handshake messages are cut greedily (a fragment fills the room it is given, as OpenSSL
    does); raw-bytes items are never split.  Packing is a pure function of the flight and
    the sizes, so a retransmission with a smaller PMTU (RFC 6347 4.1.1.1: back off to smaller
    records) is just a new packer over the same flight; the receiver copes with the changed
    fragment boundaries because it must accept overlapping ranges (4.2.3).
    """

    __slots__ = ("_index", "_items", "_offset")

    def __init__(self, items: Iterable[FlightItem[H]]) -> None:
        self._items: list[FlightItem[H]] = list(items)
        for _, item in self._items:
            if not isinstance(item, (HandshakeMessage, bytes)):
                raise TypeError(f"flight item must be HandshakeMessage or bytes, not {item!r}")
            if isinstance(item, HandshakeMessage):
                n = len(item.body)  # range-check fields now, not mid-flight
                _pack_header(item.msg_type, n, item.message_seq, 0, n)
        self._index = 0
        self._offset = 0  # bytes of the current handshake message's body already taken

    @property
    def done(self) -> bool:
        return self._index >= len(self._items)

    @property
    def next_hint(self) -> H:
        """The hint of the item the next piece comes from.  IndexError when done."""
        return self._items[self._index][0]

    @property
    def next_is_handshake(self) -> bool:
        """Whether the next piece is a handshake fragment (may share a record with another)."""
        return isinstance(self._items[self._index][1], HandshakeMessage)

    def min_room(self) -> int:
        """The smallest `room` for which `take` returns a piece: the header plus one body byte
        (12 for an empty message), or the whole length of a raw item."""
        item = self._items[self._index][1]
        if isinstance(item, HandshakeMessage):
            return HANDSHAKE_HEADER_LENGTH + (1 if item.body else 0)
        return len(item)

    def take(self, room: int) -> bytes | None:
        """The next piece of at most `room` bytes, or None if none fits (nothing consumed)."""
        # `done` and `min_room` inlined: this runs for every piece of every flight.
        index = self._index
        if index >= len(self._items):
            return None
        item = self._items[index][1]
        if not isinstance(item, HandshakeMessage):
            if room < len(item):
                return None
            self._index = index + 1
            return item
        body = item.body
        length = len(body)
        if room < HANDSHAKE_HEADER_LENGTH + (1 if length else 0):
            return None
        offset = self._offset
        count = min(length - offset, room - HANDSHAKE_HEADER_LENGTH)
        piece = _pack_header(item.msg_type, length, item.message_seq, offset, count) \
            + body[offset:offset + count]
        offset += count
        if offset >= length:
            self._index = index + 1
            self._offset = 0
        else:
            self._offset = offset
        return piece

    def peek(self) -> tuple[H, bool] | None:
        """(next_hint, next_is_handshake) in one call, or None when done."""
        if self._index >= len(self._items):
            return None
        hint, item = self._items[self._index]
        return hint, isinstance(item, HandshakeMessage)


def pack_flight(
    items: Iterable[FlightItem[H]],
    datagram_size: int,
    record_overhead: Callable[[H], int],
    *,
    coalesce: bool = False,
    max_record_payload: int = MAX_RECORD_PLAINTEXT,
) -> list[list[tuple[H, bytes]]]:
    """Pack a flight into datagrams: for each datagram, the (hint, record payload) list to seal.

    `record_overhead(hint)` is an upper bound on the bytes a record of that hint adds to its
    payload (13 for DTLS 1.2 plaintext; plus explicit nonce and tag, or IV, MAC and worst-case
    padding, once protected).  Every datagram then stays within `datagram_size`.

    `coalesce` puts consecutive handshake fragments with equal hints into one record (RFC 6347
    4.2.3 allows several handshake messages per record, saving one record header each).  Off
    by default: OpenSSL and GnuTLS send one fragment per record, and deployed stacks have
    failed on the alternative (Bouncy Castle issue #85, Californium before PR #1363).

    ValueError if some item cannot fit even an empty datagram: the PMTU is too small for it.
    """
    if max_record_payload < 1:
        raise ValueError("max_record_payload must be at least 1")
    packer: FlightPacker[H] = FlightPacker(items)
    datagrams: list[list[tuple[H, bytes]]] = []
    while not packer.done:
        records: list[tuple[H, bytes]] = []
        last_is_handshake = False
        used = 0
        while (peeked := packer.peek()) is not None:
            hint, is_handshake = peeked
            if coalesce and records and is_handshake and last_is_handshake \
                    and records[-1][0] == hint:
                last_hint, last_payload = records[-1]
                room = min(datagram_size - used, max_record_payload - len(last_payload))
                piece = packer.take(room)
                if piece is not None:
                    records[-1] = (last_hint, last_payload + piece)
                    used += len(piece)
                    continue
                # Fall through: the record may be full while the datagram still has room.
            overhead = record_overhead(hint)
            room = min(datagram_size - used - overhead, max_record_payload)
            piece = packer.take(room)
            if piece is None:
                if not records:
                    raise ValueError(
                        f"datagram_size {datagram_size} cannot hold a record of "
                        f"{packer.min_room()} payload bytes plus {overhead} of overhead"
                    )
                break
            records.append((hint, piece))
            last_is_handshake = is_handshake
            used += overhead + len(piece)
        datagrams.append(records)
    return datagrams


# --------------------------------------------------------------------------------------------
# Receiving: reassembly
# --------------------------------------------------------------------------------------------


class FragmentStatus(enum.Enum):
    """What `HandshakeReassembler.add` did with a fragment it kept or recognised."""

    ACCEPTED = "accepted"
    """New bytes stored (the message may now be complete)."""
    DUPLICATE = "duplicate"
    """Every byte was already held, and agrees: nothing changed."""
    RETRANSMISSION = "retransmission"
    """message_seq below next_message_seq: the peer is resending a flight we already have,
    which (RFC 6347 4.2.4) means our reply was lost and our last flight should be resent.
    Reported per fragment: the caller should act at most once per datagram or timer period."""


class DropReason(enum.Enum):
    """Why a fragment was discarded.  Nothing it carried was stored."""

    OUT_OF_BOUNDS = "out_of_bounds"
    """fragment_offset + fragment_length > length (CVE-2014-0195)."""
    MESSAGE_TOO_LONG = "message_too_long"
    """Declared length above max_message_length: refused before allocating anything."""
    EMPTY_FRAGMENT = "empty_fragment"
    """Zero-length fragment of a non-empty message: carries nothing, so changes nothing."""
    TOO_FAR_AHEAD = "too_far_ahead"
    """message_seq > next_message_seq + max_messages_ahead."""
    INCONSISTENT_HEADER = "inconsistent_header"
    """msg_type or length differs from the first fragment seen for this message_seq."""
    OVERLAP_MISMATCH = "overlap_mismatch"
    """Bytes in an already-received range differ: earlier bytes are never rewritten."""
    TOO_MANY_FRAGMENTS = "too_many_fragments"
    """Would start one disjoint range more than max_fragments_per_message."""
    BUFFER_FULL = "buffer_full"
    """Would reserve more than max_buffered_bytes for a message after the next expected one."""
    EVICTED = "evicted"
    """Not a fragment's fate: a buffered later message discarded (counted once per message) to
    make room for the next expected one.  Never returned by `add`."""


AddResult = FragmentStatus | DropReason


class _PendingMessage:
    """One message_seq being reassembled (or complete and waiting for its turn).

    Received bytes are tracked as sorted, disjoint, non-touching [start, end) ranges in two
    parallel lists, merged on insert, so the state is O(islands), not O(fragments), and a
    fragment that touches or overlaps what is already held never grows it.
    """

    __slots__ = ("body", "buffer", "ends", "length", "msg_type", "starts")

    def __init__(self, msg_type: int, length: int) -> None:
        self.msg_type = msg_type
        self.length = length
        self.buffer: bytearray | None = None
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.body: bytes | None = None  # set once complete; buffer and ranges are then freed


class HandshakeReassembler:
    """Reassembles handshake messages from fragments in any order (RFC 6347 4.2.2, 4.2.3).

    Fragments may arrive out of order, duplicated, overlapping and with boundaries that change
    between retransmissions; messages come out whole, in message_seq order, starting at
    `next_message_seq` ("if not [the next], it queues it for future handling once all previous
    messages have been received", 4.2.2).

    Consistency policy: the first fragment seen for a message_seq fixes its msg_type and
    length, and the first bytes received for a range fix those bytes.  A later fragment that
    disagrees is dropped and counted, not raised (RFC 6347 4.1.2.7: invalid records SHOULD be
    silently discarded, preserving the association).  Epoch-0 fragments are unauthenticated,
    so an alert here would hand any packet spoofer a way to kill the handshake; genuine
    tampering is caught anyway by the Finished check.  A caller wanting strictness can treat
    any `DropReason` returned by `add` as fatal, so there is no switch for it.

    Caps (every one tested), each checked before anything is allocated or written:

    * max_message_length: declared length limit (a 16 MiB length costs nothing);
    * max_buffered_bytes: bytes reserved across all pending messages (a partial message
      reserves its whole declared length, since its buffer is allocated once).  The next
      expected message always fits: later messages are evicted for it, so filling the buffer
      with future junk cannot stall the handshake;
    * max_messages_ahead: message_seq beyond next_message_seq + this is dropped;
    * max_fragments_per_message: disjoint received ranges tracked per message.
    """

    def __init__(
        self,
        *,
        next_message_seq: int = 0,
        max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        max_messages_ahead: int = DEFAULT_MAX_MESSAGES_AHEAD,
        max_fragments_per_message: int = DEFAULT_MAX_FRAGMENTS_PER_MESSAGE,
    ) -> None:
        _check_uint("next_message_seq", next_message_seq, MAX_MESSAGE_SEQ)
        _check_uint("max_message_length", max_message_length, MAX_UINT24)
        if max_buffered_bytes < max_message_length:
            raise ValueError("max_buffered_bytes must be at least max_message_length, "
                             "or the largest allowed message could never be reassembled")
        if max_messages_ahead < 0:
            raise ValueError("max_messages_ahead must be >= 0")
        if max_fragments_per_message < 1:
            raise ValueError("max_fragments_per_message must be >= 1")
        self._next_seq = next_message_seq
        self.max_message_length = max_message_length
        self.max_buffered_bytes = max_buffered_bytes
        self.max_messages_ahead = max_messages_ahead
        self.max_fragments_per_message = max_fragments_per_message
        self._pending: dict[int, _PendingMessage] = {}
        self._buffered = 0
        self.counts: Counter[AddResult] = Counter()
        """How many fragments ended each way (and messages EVICTED), for stats and policy."""

    # -- introspection -------------------------------------------------------------------

    @property
    def next_message_seq(self) -> int:
        """The message_seq the next delivered message will have (RFC 6347 4.2.2)."""
        return self._next_seq

    @property
    def buffered_bytes(self) -> int:
        """Bytes reserved for pending messages (declared lengths), bounded by the cap."""
        return self._buffered

    @property
    def pending_message_seqs(self) -> list[int]:
        return sorted(self._pending)

    def received_ranges(self, message_seq: int) -> list[tuple[int, int]]:
        """The [start, end) body ranges held for a pending message (empty if none)."""
        pending = self._pending.get(message_seq)
        if pending is None:
            return []
        if pending.body is not None:
            return [(0, pending.length)] if pending.length else []
        return list(zip(pending.starts, pending.ends))

    # -- input ---------------------------------------------------------------------------

    def add_record(self, payload: Buffer) -> list[AddResult]:
        """Parse a handshake record's payload and add each fragment; one result per fragment.

        DecodeError (from `parse_fragments`) leaves the reassembler untouched.
        """
        return [self.add(fragment) for fragment in parse_fragments(payload)]

    def add(self, fragment: HandshakeFragment) -> AddResult:
        """Offer one fragment.  Returns what happened; never raises on peer-controlled input."""
        result = self._add(fragment)
        self.counts[result] += 1
        return result

    def _add(self, fragment: HandshakeFragment) -> AddResult:
        length = fragment.length
        start = fragment.fragment_offset
        count = len(fragment.body)
        end = start + count
        # Structural checks first: they depend on nothing we hold.
        if end > length:
            return DropReason.OUT_OF_BOUNDS
        if length > self.max_message_length:
            return DropReason.MESSAGE_TOO_LONG
        if count == 0 and length > 0:
            return DropReason.EMPTY_FRAGMENT
        seq = fragment.message_seq
        if seq < self._next_seq:
            return FragmentStatus.RETRANSMISSION
        if seq > self._next_seq + self.max_messages_ahead:
            return DropReason.TOO_FAR_AHEAD

        pending = self._pending.get(seq)
        if pending is None:
            if not self._reserve(seq, length):
                return DropReason.BUFFER_FULL
            pending = _PendingMessage(fragment.msg_type, length)
            self._pending[seq] = pending
            if count == length:  # the common case: an unfragmented message, one copy
                pending.body = bytes(fragment.body)
                return FragmentStatus.ACCEPTED
            buffer = pending.buffer = bytearray(length)
            buffer[start:end] = fragment.body
            pending.starts.append(start)
            pending.ends.append(end)
            return FragmentStatus.ACCEPTED

        if pending.msg_type != fragment.msg_type or pending.length != length:
            return DropReason.INCONSISTENT_HEADER
        if pending.body is not None:
            same = memoryview(pending.body)[start:end] == fragment.body
            return FragmentStatus.DUPLICATE if same else DropReason.OVERLAP_MISMATCH
        return self._merge(pending, start, end, fragment.body)

    def _reserve(self, seq: int, length: int) -> bool:
        """Account `length` bytes for a new pending message, evicting later messages if it is
        the next expected one (so junk buffered ahead can never block progress)."""
        if self._buffered + length > self.max_buffered_bytes:
            if seq != self._next_seq:
                return False
            for victim in sorted(self._pending, reverse=True):
                self._buffered -= self._pending.pop(victim).length
                self.counts[DropReason.EVICTED] += 1
                if self._buffered + length <= self.max_buffered_bytes:
                    break
        self._buffered += length
        return True

    def _merge(self, pending: _PendingMessage, start: int, end: int, body: Buffer) -> AddResult:
        starts, ends, buffer = pending.starts, pending.ends, pending.buffer
        assert buffer is not None
        # Ranges that overlap or touch [start, end): ends[k] >= start and starts[k] <= end.
        lo = bisect_left(ends, start)
        hi = bisect_right(starts, end)
        if lo == hi and len(starts) >= self.max_fragments_per_message:
            return DropReason.TOO_MANY_FRAGMENTS
        if lo < hi:
            with memoryview(buffer) as held, memoryview(body) as new:
                for k in range(lo, hi):
                    a, b = max(start, starts[k]), min(end, ends[k])
                    if a < b and held[a:b] != new[a - start:b - start]:
                        return DropReason.OVERLAP_MISMATCH
            if hi - lo == 1 and starts[lo] <= start and end <= ends[lo]:
                return FragmentStatus.DUPLICATE
            new_start, new_end = min(start, starts[lo]), max(end, ends[hi - 1])
        else:
            new_start, new_end = start, end
        # Overlapping bytes are equal, so writing the whole fragment rewrites nothing.
        buffer[start:end] = body
        starts[lo:hi] = [new_start]
        ends[lo:hi] = [new_end]
        if new_start == 0 and new_end == pending.length and len(starts) == 1:
            pending.body = bytes(buffer)
            pending.buffer = None
            pending.starts = []
            pending.ends = []
        return FragmentStatus.ACCEPTED

    # -- output --------------------------------------------------------------------------

    def next_message(self) -> HandshakeMessage | None:
        """Pop the message with message_seq == next_message_seq if it is complete."""
        pending = self._pending.get(self._next_seq)
        if pending is None or pending.body is None:
            return None
        del self._pending[self._next_seq]
        self._buffered -= pending.length
        message = HandshakeMessage(pending.msg_type, self._next_seq, pending.body)
        self._next_seq += 1
        return message

    def messages(self) -> Iterator[HandshakeMessage]:
        """Yield complete messages in message_seq order, each removed as it is yielded, so a
        handler that raises leaves the rest buffered and the state consistent."""
        while (message := self.next_message()) is not None:
            yield message
