"""Types shared by both record-layer backends (C in csrc/, Python in dtls/_pyrecord.py).

This module is the contract: `dtls._pyrecord` and `dtls._crecord` each provide
`ReplayWindow`, `CipherState`, `split_records` and the raw primitives with exactly the
behaviour documented here, and tests/test_record_crosscheck.py holds them to it.

Open never raises on attacker-controlled bytes: it returns an `OpenResult` whose
`status` says why a record was refused (RFC 6347 4.1.2.7: invalid records are silently
discarded, so the caller usually just counts the status).  Exceptions are raised only
for caller mistakes (bad keys, oversized plaintext to seal, exhausted sequence space).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .protection import Protection

Buffer = bytes | bytearray | memoryview

MAX_PLAINTEXT = 1 << 14
"""RFC 6347 4.1 / RFC 5246 6.2.1: a record carries at most 2^14 bytes of plaintext."""

MAX_FRAGMENT = MAX_PLAINTEXT + 2048
"""RFC 5246 6.2.3: protected fragments may be at most 2^14 + 2048 bytes."""

MAX_SEQ = (1 << 48) - 1
MAX_EPOCH = (1 << 16) - 1

DEFAULT_WINDOW = 64
"""RFC 4347 4.1.2.5: the window should be at least 32, 64 is preferred."""

MAX_WINDOW = 2048
"""Largest replay window a cipher state accepts (the C state reserves it inline)."""

DTLS1_0 = 0xFEFF
DTLS1_2 = 0xFEFD


class ContentType(IntEnum):
    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23


class OpenStatus(IntEnum):
    """Why `open` refused a record (0 means it was accepted).  Numbers are the C ABI."""

    OK = 0
    MALFORMED = 1  # truncated/oversized header or length, or a fragment length the suite cannot produce
    BAD_EPOCH = 2  # record belongs to another epoch: payload is the raw record, for routing
    BAD_VERSION = 3  # record version differs from the state's (any DTLS version at epoch 0)
    REPLAY = 4  # sequence number already accepted
    TOO_OLD = 5  # sequence number below the replay window
    BAD_MAC = 6  # authentication failed (AEAD tag, HMAC or CBC padding: indistinguishable)
    RECORD_OVERFLOW = 7  # authenticated, but plaintext longer than 2^14


class OpenResult(NamedTuple):
    """The outcome of opening one record.

    `payload` is the plaintext (bytes from `open`, a memoryview into the batch's buffer
    from `open_batch`); empty unless status is OK, except for BAD_EPOCH, where it is the
    whole raw record so the caller can pass it to the state of the right epoch.
    """

    status: OpenStatus
    content_type: int
    epoch: int
    seq: int
    payload: bytes | memoryview

    @property
    def ok(self) -> bool:
        return self.status == OpenStatus.OK


class RecordHeader(NamedTuple):
    """One record located in a datagram by `split_records` (no bytes copied).

    The record occupies datagram[offset : offset + 13 + length].
    """

    content_type: int
    version: int
    epoch: int
    seq: int
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + 13 + self.length


class RecordBatch:
    """Records sealed by one `seal_batch` call, back to back in one buffer.

    Kept contiguous (with their lengths) because that is what sendmmsg/GSO want; iterate
    to get each record as a memoryview, or `bytes(batch[i])` for a copy.
    """

    __slots__ = ("_offsets", "buffer", "lengths")

    def __init__(self, buffer: bytes | bytearray, lengths: Sequence[int]) -> None:
        self.buffer = buffer
        self.lengths = list(lengths)
        offsets = []
        pos = 0
        for n in self.lengths:
            offsets.append(pos)
            pos += n
        if pos != len(buffer):
            raise ValueError("record lengths do not add up to the buffer size")
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> memoryview:
        start = self._offsets[i]
        return memoryview(self.buffer)[start : start + self.lengths[i]]

    def __iter__(self) -> Iterator[memoryview]:
        view = memoryview(self.buffer)
        for start, n in zip(self._offsets, self.lengths):
            yield view[start : start + n]

    def __repr__(self) -> str:
        return f"RecordBatch({len(self.lengths)} records, {len(self.buffer)} bytes)"


class RecordLayerError(Exception):
    """A caller mistake or an exhausted resource in the record layer (never attacker input)."""


class SequenceExhausted(RecordLayerError):
    """The 48-bit sequence space of this epoch is used up (RFC 6347 4.1: must rekey, not wrap)."""


def check_seq(seq: int) -> None:
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"sequence number {seq} outside 0..2^48-1")


def check_window_size(size: int) -> None:
    if not 0 <= size <= MAX_WINDOW:
        raise ValueError(f"replay window size must be 0 (off) to {MAX_WINDOW}, not {size}")


def validate_state_args(protection: Protection, epoch: int, version: int, key: Buffer,
                        fixed_iv: Buffer, mac_key: Buffer, window: int,
                        iv_key: Buffer | None) -> bytes:
    """Check CipherState arguments for either backend; returns the CBC IV key (b"" if none).

    Wrong key lengths are caller bugs and raise ValueError naming what was expected.
    """
    if not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"epoch {epoch} outside 0..65535")
    if not 0 <= version <= 0xFFFF:
        raise ValueError(f"version {version:#x} is not a 16-bit value")
    check_window_size(window)
    for name, value, want in (("key", key, protection.key_length),
                              ("fixed_iv", fixed_iv, protection.fixed_iv_length),
                              ("mac_key", mac_key, protection.mac_length)):
        if len(value) != want:
            raise ValueError(f"{protection.cipher.name} needs a {want}-byte {name}, "
                             f"got {len(value)} bytes")
    if not protection.is_cbc:
        if iv_key is not None:
            raise ValueError("iv_key is only used by CBC protection")
        return b""
    if iv_key is None:
        return os.urandom(protection.key_length)  # once per state, never per record
    if len(iv_key) != protection.key_length:
        raise ValueError(f"iv_key must be {protection.key_length} bytes")
    return bytes(iv_key)
