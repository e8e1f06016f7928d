"""The record-layer interface both backends implement, as typing Protocols.

`dtls._crecord` (C, csrc/) and `dtls._pyrecord` (pure Python on `cryptography`) are
drop-in replacements for each other; `dtls.record` picks one.  Everything below is the
contract the cross-check tests enforce byte for byte.

Wire format (RFC 6347 4.1, RFC 4347 4.1): header = type(1) version(2) epoch(2) seq(6)
length(2), then the fragment:

* NULL: the plaintext.
* AES-GCM (RFC 5288 3, RFC 6347 4.1.2.1): explicit_nonce(8) || ciphertext || tag(16);
  nonce = fixed_iv(4) || explicit_nonce.  We send explicit_nonce = epoch||seq; on open the
  explicit nonce is taken from the record, whatever the peer chose.
* AES-CCM (RFC 6655; RFC 7251 for the ECDHE_ECDSA suites): as AES-GCM, explicit_nonce(8)
  || ciphertext || tag, nonce = fixed_iv(4) || explicit_nonce (the CCM nonce N of NIST
  SP 800-38C, so L = 3); the tag is 16 bytes for AES_128/256_CCM and 8 bytes for
  AES_128/256_CCM_8.  A fragment shorter than 8 + tag bytes is MALFORMED.
* ChaCha20-Poly1305 (RFC 7905 2): ciphertext || tag(16); nonce = fixed_iv(12) XOR
  (0^4 || epoch(2) || seq(6)).
* AEAD additional data (RFC 5246 6.2.3.3 with the DTLS 64-bit seq): epoch(2) seq(6) type(1)
  version(2) plaintext_length(2).
* CBC MAC-then-encrypt (RFC 5246 6.2.3.2, explicit IV): IV(16) || CBC(key, IV, plaintext ||
  MAC || padding), MAC = HMAC(mac_key, epoch seq type version plaintext_length plaintext),
  padding = (n+1) bytes of value n; we seal with the minimal n, and open accepts any n <= 255
  that fits.  The padding and MAC check runs in constant time (Lucky Thirteen).
* CBC encrypt-then-MAC (RFC 7366 3): IV(16) || CBC(key, IV, plaintext || padding) || MAC,
  MAC = HMAC(mac_key, epoch seq type version len(IV||ciphertext) IV ciphertext).
* CBC IVs are unpredictable without a per-record RNG call (NIST SP 800-38A appendix C):
  IV = AES-ECB(iv_key, epoch(2) || seq(6) || 0^8), with `iv_key` drawn once per state.

Open order: header/length (MALFORMED) -> epoch (BAD_EPOCH) -> version (BAD_VERSION) ->
replay window (REPLAY, TOO_OLD) -> fragment length the suite cannot produce (MALFORMED) ->
authentication (BAD_MAC) -> plaintext > 2^14 (RECORD_OVERFLOW) -> window accepts the seq.
The window and all other state change only when the result is OK (RFC 6347 4.1.2.6:
the window moves only for authenticated records; CVE-2016-2181).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .protection import BulkCipher, MacAlgorithm, Protection
from .recordbase import OpenResult, OpenStatus, RecordBatch, RecordHeader

Buffer = bytes | bytearray | memoryview


class ReplayWindowAPI(Protocol):
    """Anti-replay sliding window (RFC 6347 4.1.2.6, RFC 4303 3.4.3).

    `ReplayWindow(size=64)`: size 0 disables replay detection; otherwise 1..MAX_WINDOW.
    A seq is TOO_OLD when highest - seq >= size, REPLAY when already accepted, else OK.
    `check` never changes state; `accept` records a seq (idempotent; a too-old seq is
    ignored) and is called only after the record authenticated.
    """

    @property
    def size(self) -> int: ...
    @property
    def highest(self) -> int | None: ...
    def check(self, seq: int) -> OpenStatus: ...
    def accept(self, seq: int) -> None: ...


class CipherStateAPI(Protocol):
    """Protection for one (epoch, direction), created once with its keys.

    `CipherState(protection, *, epoch, version=DTLS1_2, key=b"", fixed_iv=b"",
    mac_key=b"", window=DEFAULT_WINDOW, iv_key=None)`.  Key lengths must match
    `protection` (ValueError otherwise); `iv_key` is for CBC only (random if None).
    """

    protection: Protection
    epoch: int
    version: int

    @property
    def window_size(self) -> int: ...
    @property
    def highest_seq(self) -> int | None: ...
    @property
    def next_seq(self) -> int: ...
    @next_seq.setter
    def next_seq(self, value: int) -> None: ...

    def seal(self, content_type: int, payload: Buffer) -> bytes:
        """One record with seq = next_seq, then next_seq += 1.

        ValueError if content_type is not a byte or the payload exceeds 2^14;
        SequenceExhausted once next_seq passed 2^48 - 1.
        """
        ...

    def seal_batch(self, content_type: int, payloads: Sequence[Buffer]) -> RecordBatch:
        """As `seal` on each payload in order, in one call; all-or-nothing on errors."""
        ...

    def open(self, record: Buffer) -> OpenResult:
        """Open exactly one record (header included); never raises on its contents."""
        ...

    def open_batch(self, data: Buffer, lengths: Sequence[int] | None = None) -> list[OpenResult]:
        """Open every record of one datagram, or of datagrams back to back with `lengths`.

        Records are opened in order, as `open` would.  Unparseable bytes at the end of a
        datagram give one MALFORMED result and the rest of that datagram is skipped.
        ValueError if `lengths` do not add up to len(data).
        """
        ...


class RecordBackend(Protocol):
    """Module-level names each backend provides."""

    BACKEND: str

    def split_records(self, datagram: Buffer) -> tuple[list[RecordHeader], int]:
        """Records in a datagram, and how many trailing bytes could not be parsed."""
        ...

    # Raw primitives, the code paths records use, exposed for known-answer tests.
    def aead_encrypt(self, cipher: BulkCipher, key: Buffer, nonce: Buffer, aad: Buffer,
                     plaintext: Buffer) -> bytes: ...
    def aead_decrypt(self, cipher: BulkCipher, key: Buffer, nonce: Buffer, aad: Buffer,
                     ciphertext: Buffer) -> bytes | None: ...
    def cbc_encrypt(self, key: Buffer, iv: Buffer, data: Buffer) -> bytes: ...
    def cbc_decrypt(self, key: Buffer, iv: Buffer, data: Buffer) -> bytes: ...
    def hmac(self, mac: MacAlgorithm, key: Buffer, data: Buffer) -> bytes: ...
