"""Pure-Python DTLS record layer: the reference twin of the C backend (`dtls._crecord`).

This module implements `dtls.recordapi` (read that first: it fixes the wire format and
the order of checks in `open`) with `cryptography` and the standard library only.  It is
the oracle the C backend is cross-checked against and the fallback where no compiler
exists, so it is written for clarity first: every record is built from the same raw
primitives (`aead_encrypt`, `cbc_encrypt`, `hmac`, ...) that the known-answer tests
exercise, or from the very objects those primitives wrap.

Secret-dependent timing: AEAD tags are checked inside OpenSSL, HMACs are compared with
`hmac.compare_digest`, and the CBC MAC-then-encrypt padding check is written without
early exits.  That is a best effort only: CPython gives no timing guarantees, and in
particular the HMAC over a padding-dependent length still takes a padding-dependent
number of compression calls (Lucky Thirteen, RFC 7366 1).  True constant time is only
promised by the C backend.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import operator
import struct
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from .protection import (
    AEAD_TAG_LEN,
    BLOCK_LEN,
    GCM_EXPLICIT_NONCE_LEN,
    HEADER_LEN,
    BulkCipher,
    MacAlgorithm,
    Protection,
    aead_tag_length,
)
from .recordbase import (
    DEFAULT_WINDOW,
    DTLS1_2,
    MAX_FRAGMENT,
    MAX_PLAINTEXT,
    MAX_SEQ,
    MAX_WINDOW,
    Buffer,
    OpenResult,
    OpenStatus,
    RecordBatch,
    RecordHeader,
    SequenceExhausted,
    validate_state_args,
)

__all__ = [
    "BACKEND",
    "CipherState",
    "ReplayWindow",
    "aead_decrypt",
    "aead_encrypt",
    "cbc_decrypt",
    "cbc_encrypt",
    "hmac",
    "split_records",
]

BACKEND = "python"


SEQ_SPACE = MAX_SEQ + 1
"""2^48: the value `next_seq` takes once the last sequence number has been used."""

# RFC 6347 4.1: type(1) version(2) epoch(2) sequence_number(6) length(2); the 48-bit
# sequence number is split as 16 + 32 bits because struct has no 6-byte integer.
_HEADER = struct.Struct(">BHHHIH")
# MAC / AEAD additional data prefix (RFC 5246 6.2.3.1, 6.2.3.3 with the DTLS 64-bit
# seq_num = epoch || sequence_number, RFC 6347 4.1.2.1): epoch seq type version length.
_MAC_HEADER = struct.Struct(">HHIBHH")
_EPOCH_SEQ = struct.Struct(">HHI")

_AEAD_NONCE_LEN = 12
_AEAD_KEY_LEN = {
    BulkCipher.AES_128_GCM: 16,
    BulkCipher.AES_256_GCM: 32,
    BulkCipher.CHACHA20_POLY1305: 32,
    BulkCipher.AES_128_CCM: 16,
    BulkCipher.AES_128_CCM_8: 16,
    BulkCipher.AES_256_CCM: 32,
    BulkCipher.AES_256_CCM_8: 32,
}
_CCM = (BulkCipher.AES_128_CCM, BulkCipher.AES_128_CCM_8, BulkCipher.AES_256_CCM,
        BulkCipher.AES_256_CCM_8)
_CBC_KEY_LENS = (16, 32)  # AES-128 and AES-256 (RFC 5246 appendix C); no AES-192 suites
_HASH: dict[MacAlgorithm, Callable[..., hashlib._Hash]] = {
    MacAlgorithm.SHA1: hashlib.sha1,
    MacAlgorithm.SHA256: hashlib.sha256,
    MacAlgorithm.SHA384: hashlib.sha384,
}
_EMPTY = b""


def _view(buf: Buffer) -> memoryview:
    """A flat byte view of any buffer, so lengths are byte counts and slices copy nothing."""
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _byte_length(buf: Buffer) -> int:
    return memoryview(buf).nbytes


def _pack_header(content_type: int, version: int, epoch: int, seq: int, length: int) -> bytes:
    return _HEADER.pack(content_type, version, epoch, seq >> 32, seq & 0xFFFFFFFF, length)


def _mac_header(epoch: int, seq: int, content_type: int, version: int, length: int) -> bytes:
    """epoch(2) seq(6) type(1) version(2) length(2): the MAC prefix and the AEAD AAD."""
    return _MAC_HEADER.pack(epoch, seq >> 32, seq & 0xFFFFFFFF, content_type, version, length)


def _epoch_seq(epoch: int, seq: int) -> bytes:
    return _EPOCH_SEQ.pack(epoch, seq >> 32, seq & 0xFFFFFFFF)


def _check_range(name: str, value: int, low: int, high: int) -> int:
    value = operator.index(value)  # TypeError for floats, strings, ...
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high}, got {value}")
    return value


# ---------------------------------------------------------------------------------------
# Raw primitives (the exact code paths the records use, exposed for known-answer tests)
# ---------------------------------------------------------------------------------------

AeadObject = AESGCM | ChaCha20Poly1305 | AESCCM


def _aead_object(cipher: BulkCipher | int, key: Buffer) -> AeadObject:
    """The long-lived `cryptography` AEAD context for `cipher` (validated key length)."""
    cipher = BulkCipher(cipher)
    if cipher not in _AEAD_KEY_LEN:
        raise ValueError(f"{cipher.name} is not an AEAD cipher")
    key = bytes(key)
    if len(key) != _AEAD_KEY_LEN[cipher]:
        raise ValueError(f"{cipher.name} needs a {_AEAD_KEY_LEN[cipher]}-byte key, got {len(key)}")
    if cipher is BulkCipher.CHACHA20_POLY1305:
        return ChaCha20Poly1305(key)
    if cipher in _CCM:
        # RFC 6655: AEAD_AES_*_CCM has a 16-byte tag, AEAD_AES_*_CCM_8 an 8-byte one.
        return AESCCM(key, tag_length=aead_tag_length(cipher))
    return AESGCM(key)


def _aead_seal(aead: AeadObject, nonce: Buffer, aad: Buffer, plaintext: Buffer) -> bytes:
    return aead.encrypt(nonce, plaintext, aad)


def _aead_open(aead: AeadObject, nonce: Buffer, aad: Buffer, ciphertext: Buffer) -> bytes | None:
    try:
        return aead.decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        return None


def _check_nonce(nonce: Buffer) -> None:
    # Every AEAD suite uses 96-bit nonces (RFC 5288 3, RFC 7905 2, RFC 6655); AESGCM and
    # AESCCM (7..13 bytes) would accept others, so a wrong length is a caller bug caught here.
    if _byte_length(nonce) != _AEAD_NONCE_LEN:
        raise ValueError(f"AEAD nonce must be {_AEAD_NONCE_LEN} bytes, got {_byte_length(nonce)}")


def aead_encrypt(cipher: BulkCipher, key: Buffer, nonce: Buffer, aad: Buffer,
                 plaintext: Buffer) -> bytes:
    """ciphertext || tag with a 12-byte nonce: AES-128/256-GCM, ChaCha20-Poly1305, AES-128/256-CCM
    (16-byte tags) or AES-128/256-CCM_8 (8-byte tags)."""
    aead = _aead_object(cipher, key)
    _check_nonce(nonce)
    return _aead_seal(aead, nonce, aad, plaintext)


def aead_decrypt(cipher: BulkCipher, key: Buffer, nonce: Buffer, aad: Buffer,
                 ciphertext: Buffer) -> bytes | None:
    """The plaintext of ciphertext || tag, or None if authentication fails.

    Input shorter than the tag (16 bytes, 8 for CCM_8) is a ValueError, not None, as in the
    C backend: it is a caller's framing bug (the record layer refuses such fragments as
    MALFORMED first).
    """
    aead = _aead_object(cipher, key)
    _check_nonce(nonce)
    tag_len = aead_tag_length(cipher)
    if _byte_length(ciphertext) < tag_len:
        raise ValueError(f"AEAD ciphertext must hold the {tag_len}-byte tag")
    return _aead_open(aead, nonce, aad, ciphertext)


def _check_cbc(key: Buffer, iv: Buffer, data: Buffer) -> None:
    if _byte_length(key) not in _CBC_KEY_LENS:
        raise ValueError(f"AES-CBC key must be 16 or 32 bytes, got {_byte_length(key)}")
    if _byte_length(iv) != BLOCK_LEN:
        raise ValueError(f"AES-CBC IV must be {BLOCK_LEN} bytes, got {_byte_length(iv)}")
    if _byte_length(data) % BLOCK_LEN:
        raise ValueError("AES-CBC data must be a multiple of 16 bytes (the record layer pads)")


def cbc_encrypt(key: Buffer, iv: Buffer, data: Buffer) -> bytes:
    """AES-CBC without padding: TLS padding is added by the record layer (RFC 5246 6.2.3.2)."""
    _check_cbc(key, iv, data)
    encryptor = Cipher(algorithms.AES(bytes(key)), modes.CBC(bytes(iv))).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def cbc_decrypt(key: Buffer, iv: Buffer, data: Buffer) -> bytes:
    """AES-CBC decryption without padding removal (the record layer checks TLS padding)."""
    _check_cbc(key, iv, data)
    decryptor = Cipher(algorithms.AES(bytes(key)), modes.CBC(bytes(iv))).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _hmac_object(mac: MacAlgorithm | int, key: Buffer) -> _hmac.HMAC:
    mac = MacAlgorithm(mac)
    if mac not in _HASH:
        raise ValueError(f"{mac.name} is not an HMAC algorithm")
    return _hmac.new(bytes(key), digestmod=_HASH[mac])


def hmac(mac: MacAlgorithm, key: Buffer, data: Buffer) -> bytes:
    """HMAC-SHA1/256/384 (RFC 2104).  Any key length, as HMAC allows; records use mac_length."""
    h = _hmac_object(mac, key)
    h.update(data)
    return h.digest()


# ---------------------------------------------------------------------------------------
# Replay window
# ---------------------------------------------------------------------------------------


class ReplayWindow:
    """Anti-replay sliding window (RFC 6347 4.1.2.6, RFC 4303 3.4.3).

    Bit i of `_bitmap` says whether `highest - i` has been accepted, so the window is a
    plain int shifted left as `highest` advances; it never holds more than `size` bits.
    Size 0 disables detection (every seq checks OK) but `highest` is still tracked, so
    `CipherState.highest_seq` means the same thing whatever the window size.
    """

    __slots__ = ("_bitmap", "_highest", "_mask", "_size")

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        self._size = _check_range("replay window size", size, 0, MAX_WINDOW)
        self._mask = (1 << self._size) - 1
        self._highest: int | None = None
        self._bitmap = 0

    @property
    def size(self) -> int:
        return self._size

    @property
    def highest(self) -> int | None:
        """Highest accepted seq, None before the first `accept`."""
        return self._highest

    def check(self, seq: int) -> OpenStatus:
        """OK, REPLAY or TOO_OLD for `seq`; never changes state (call before decrypting)."""
        seq = _check_range("sequence number", seq, 0, MAX_SEQ)
        highest = self._highest
        if self._size == 0 or highest is None or seq > highest:
            return OpenStatus.OK
        offset = highest - seq
        if offset >= self._size:
            return OpenStatus.TOO_OLD
        if (self._bitmap >> offset) & 1:
            return OpenStatus.REPLAY
        return OpenStatus.OK

    def accept(self, seq: int) -> None:
        """Record an authenticated seq (idempotent; a seq below the window is ignored)."""
        seq = _check_range("sequence number", seq, 0, MAX_SEQ)
        highest = self._highest
        if highest is None:
            self._highest = seq
            self._bitmap = 1 & self._mask
        elif seq > highest:
            shift = seq - highest
            # Guard the shift: a jump of up to 2^48 must not build a 2^48-bit integer.
            self._bitmap = 0 if shift >= self._size else (self._bitmap << shift) & self._mask
            self._bitmap |= 1 & self._mask
            self._highest = seq
        else:
            offset = highest - seq
            if offset < self._size:
                self._bitmap |= 1 << offset

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self._size}, highest={self._highest})"


# ---------------------------------------------------------------------------------------
# Record splitting
# ---------------------------------------------------------------------------------------


def split_records(datagram: Buffer) -> tuple[list[RecordHeader], int]:
    """Records in a datagram (RFC 6347 4.1.1: several may share one), and the unparsed tail.

    Stops at the first record whose header is truncated, whose length runs past the end of
    the datagram or exceeds MAX_FRAGMENT (RFC 5246 6.2.3); the second element is the number
    of bytes from there to the end.  Headers carry offsets, so no payload is copied.
    """
    view = _view(datagram)
    total = len(view)
    records: list[RecordHeader] = []
    pos = 0
    while total - pos >= HEADER_LEN:
        content_type, version, epoch, seq_hi, seq_lo, length = _HEADER.unpack_from(view, pos)
        if length > MAX_FRAGMENT or pos + HEADER_LEN + length > total:
            break
        records.append(RecordHeader(content_type, version, epoch, (seq_hi << 32) | seq_lo, pos, length))
        pos += HEADER_LEN + length
    return records, total - pos


def _parse_header(view: memoryview) -> tuple[int, int, int, int, int] | None:
    """(type, version, epoch, seq, length) of a record, or None if under 13 bytes."""
    if len(view) < HEADER_LEN:
        return None
    content_type, version, epoch, seq_hi, seq_lo, length = _HEADER.unpack_from(view, 0)
    return content_type, version, epoch, (seq_hi << 32) | seq_lo, length


# ---------------------------------------------------------------------------------------
# Constant-time-ish helpers (arithmetic instead of branches; see the module docstring)
# ---------------------------------------------------------------------------------------

_CT_SHIFT = 63  # all operands below are far smaller than 2^62


def _ct_le(a: int, b: int) -> int:
    """1 if a <= b else 0, for small non-negative ints, without a branch."""
    return 1 + ((b - a) >> _CT_SHIFT)


def _ct_is_zero(x: int) -> int:
    """1 if x == 0 else 0, for small non-negative ints, without a branch."""
    return -((x - 1) >> _CT_SHIFT)


# ---------------------------------------------------------------------------------------
# Cipher state
# ---------------------------------------------------------------------------------------


def _fail(status: OpenStatus, content_type: int = 0, epoch: int = 0, seq: int = 0) -> OpenResult:
    return OpenResult(status, content_type, epoch, seq, _EMPTY)


class CipherState:
    """Protection for one (epoch, direction), created once with its keys.

    `CipherState(protection, *, epoch, version=DTLS1_2, key=b"", fixed_iv=b"",
    mac_key=b"", window=DEFAULT_WINDOW, iv_key=None)`.  Keys must have exactly the
    lengths `protection` asks for (RFC 5246 6.3); a state that silently truncated or
    padded a key would interoperate with nobody.  The AEAD context is created once here,
    as the C backend keeps its EVP context per state; only nonces change per record.

    One state serves one direction: `seal` uses `next_seq`, `open` uses the replay window.
    """

    __slots__ = (
        "_aead",
        "_cipher",
        "_fixed_iv",
        "_hmac_proto",
        "_iv_ecb",
        "_key",
        "_mac_len",
        "_next_seq",
        "_tag_len",
        "_window",
        "epoch",
        "protection",
        "version",
    )

    def __init__(
        self,
        protection: Protection,
        *,
        epoch: int,
        version: int = DTLS1_2,
        key: Buffer = b"",
        fixed_iv: Buffer = b"",
        mac_key: Buffer = b"",
        window: int = DEFAULT_WINDOW,
        iv_key: Buffer | None = None,
    ) -> None:
        if not isinstance(protection, Protection):
            raise TypeError(f"protection must be a Protection, not {type(protection).__name__}")
        # Ints only (TypeError for floats); flat bytes, so lengths are byte counts.
        epoch, version, window = operator.index(epoch), operator.index(version), operator.index(window)
        key, fixed_iv, mac_key = bytes(key), bytes(fixed_iv), bytes(mac_key)
        # The checks both backends share, so both refuse the same arguments with the same
        # messages; it also draws the random CBC iv_key (once per state, never per record).
        iv_key_bytes = validate_state_args(
            protection, epoch, version, key, fixed_iv, mac_key, window,
            None if iv_key is None else bytes(iv_key),
        )
        self.protection = protection
        self.epoch = epoch
        self.version = version
        self._next_seq = 0
        self._window = ReplayWindow(window)
        self._cipher = protection.cipher
        self._key = key
        self._fixed_iv = fixed_iv
        self._mac_len = protection.mac_length
        self._tag_len = protection.tag_length
        self._aead: AeadObject | None = _aead_object(self._cipher, key) if protection.is_aead else None
        self._hmac_proto: _hmac.HMAC | None = (
            _hmac_object(protection.mac, mac_key) if protection.mac_length else None
        )
        # NIST SP 800-38A appendix C: IV = E(iv_key, unique nonce) is unpredictable to
        # anyone without iv_key, and costs no RNG call per record.
        self._iv_ecb: Cipher[modes.ECB] | None = (
            Cipher(algorithms.AES(iv_key_bytes), modes.ECB()) if protection.is_cbc else None
        )

    # -- properties -------------------------------------------------------------------

    @property
    def window_size(self) -> int:
        return self._window.size

    @property
    def highest_seq(self) -> int | None:
        """Highest seq `open` has accepted, None before the first."""
        return self._window.highest

    @property
    def next_seq(self) -> int:
        """Seq of the next sealed record; 2^48 means the epoch is exhausted (RFC 6347 4.1)."""
        return self._next_seq

    @next_seq.setter
    def next_seq(self, value: int) -> None:
        self._next_seq = _check_range("next_seq", value, 0, SEQ_SPACE)

    def __repr__(self) -> str:
        # Never show keys: reprs end up in logs and tracebacks.
        return (
            f"CipherState({self.protection!r}, epoch={self.epoch}, "
            f"version=0x{self.version:04X}, next_seq={self._next_seq})"
        )

    # -- seal -------------------------------------------------------------------------

    @staticmethod
    def _check_payload(payload: Buffer) -> memoryview:
        view = _view(payload)
        if len(view) > MAX_PLAINTEXT:
            raise ValueError(f"payload of {len(view)} bytes exceeds 2^14 (RFC 6347 4.1)")
        return view

    def _cbc_iv(self, seq: int) -> bytes:
        assert self._iv_ecb is not None
        encryptor = self._iv_ecb.encryptor()
        return encryptor.update(_epoch_seq(self.epoch, seq) + bytes(8)) + encryptor.finalize()

    def _seal_one(self, content_type: int, payload: memoryview, seq: int) -> bytes:
        """One record at `seq`; arguments are already validated."""
        epoch, version, cipher = self.epoch, self.version, self._cipher
        plen = len(payload)
        if cipher is BulkCipher.NULL:
            fragment: bytes = bytes(payload)
        elif self._aead is not None:
            aad = _mac_header(epoch, seq, content_type, version, plen)
            explicit = _epoch_seq(epoch, seq)
            if cipher is BulkCipher.CHACHA20_POLY1305:
                # RFC 7905 2: nonce = fixed_iv XOR (0^4 || epoch || seq); nothing explicit.
                nonce = (int.from_bytes(self._fixed_iv, "big") ^ int.from_bytes(explicit, "big"))
                fragment = _aead_seal(self._aead, nonce.to_bytes(_AEAD_NONCE_LEN, "big"), aad, payload)
            else:
                # RFC 5288 3 / RFC 6655 (GCM, CCM): nonce = salt || explicit_nonce; we send
                # epoch || seq, which is unique per key (RFC 6347 4.1.2.1): a safe nonce.
                fragment = explicit + _aead_seal(self._aead, self._fixed_iv + explicit, aad, payload)
        else:
            assert self._hmac_proto is not None
            iv = self._cbc_iv(seq)
            mac_len = self._mac_len
            if self.protection.encrypt_then_mac:
                # RFC 7366 3: MAC over the IV and ciphertext, length = len(IV || ciphertext).
                pad = BLOCK_LEN - 1 - plen % BLOCK_LEN
                ciphertext = iv + cbc_encrypt(self._key, iv, bytes(payload) + bytes([pad]) * (pad + 1))
                h = self._hmac_proto.copy()
                h.update(_mac_header(epoch, seq, content_type, version, len(ciphertext)))
                h.update(ciphertext)
                fragment = ciphertext + h.digest()
            else:
                # RFC 5246 6.2.3.2: MAC over the plaintext, then pad with the minimal n.
                h = self._hmac_proto.copy()
                h.update(_mac_header(epoch, seq, content_type, version, plen))
                h.update(payload)
                pad = BLOCK_LEN - 1 - (plen + mac_len) % BLOCK_LEN
                inner = bytes(payload) + h.digest() + bytes([pad]) * (pad + 1)
                fragment = iv + cbc_encrypt(self._key, iv, inner)
        return _pack_header(content_type, version, epoch, seq, len(fragment)) + fragment

    def seal(self, content_type: int, payload: Buffer) -> bytes:
        """One record with seq = next_seq, then next_seq += 1.

        ValueError if content_type is not a byte or the payload exceeds 2^14;
        SequenceExhausted once next_seq passed 2^48 - 1 (RFC 6347 4.1: never wrap).
        """
        content_type = _check_range("content_type", content_type, 0, 0xFF)
        view = self._check_payload(payload)
        seq = self._next_seq
        if seq > MAX_SEQ:
            raise SequenceExhausted(f"epoch {self.epoch} has used all 2^48 sequence numbers")
        record = self._seal_one(content_type, view, seq)
        self._next_seq = seq + 1
        return record

    def seal_batch(self, content_type: int, payloads: Sequence[Buffer]) -> RecordBatch:
        """As `seal` on each payload in order, in one call; all-or-nothing on errors.

        Everything that can fail (content type, every payload size, enough sequence
        numbers left for all of them) is checked before the first record is sealed, so
        a failure leaves next_seq untouched and no half batch goes on the wire.
        """
        content_type = _check_range("content_type", content_type, 0, 0xFF)
        views = [self._check_payload(p) for p in payloads]
        start = self._next_seq
        if start + len(views) > SEQ_SPACE:
            raise SequenceExhausted(
                f"epoch {self.epoch} has {SEQ_SPACE - start} sequence numbers left, "
                f"{len(views)} records asked for"
            )
        records = [self._seal_one(content_type, view, start + i) for i, view in enumerate(views)]
        self._next_seq = start + len(records)
        return RecordBatch(b"".join(records), [len(r) for r in records])

    # -- open -------------------------------------------------------------------------

    def _fragment_ok(self, n: int) -> bool:
        """Could this suite's `seal` (with any legal padding) produce an n-byte fragment?"""
        cipher = self._cipher
        if cipher is BulkCipher.NULL:
            return True
        if cipher is BulkCipher.CHACHA20_POLY1305:
            return n >= AEAD_TAG_LEN
        if self._aead is not None:  # GCM, CCM
            return n >= GCM_EXPLICIT_NONCE_LEN + self._tag_len
        mac_len = self._mac_len
        if self.protection.encrypt_then_mac:
            # IV + at least one block (padding is never empty) + MAC.
            return n >= BLOCK_LEN + BLOCK_LEN + mac_len and (n - BLOCK_LEN - mac_len) % BLOCK_LEN == 0
        body = n - BLOCK_LEN
        # MAC plus at least one padding byte, rounded up to whole blocks.
        min_body = -(-(mac_len + 1) // BLOCK_LEN) * BLOCK_LEN
        return body > 0 and body % BLOCK_LEN == 0 and body >= min_body

    def _open_mte(self, content_type: int, version: int, seq: int, fragment: memoryview) -> bytes | None:
        """MAC-then-encrypt CBC open (RFC 5246 6.2.3.2), Lucky Thirteen aware (best effort).

        The MAC is always computed, over the plaintext as if the padding length were 0 when
        the padding is bad, and the padding is checked over a fixed span without early
        exit, so bad padding and a bad MAC take (roughly) the same path and both give
        BAD_MAC.  CPython cannot promise constant time; the C backend does.
        """
        assert self._hmac_proto is not None
        mac_len = self._mac_len
        inner = cbc_decrypt(self._key, fragment[:BLOCK_LEN], fragment[BLOCK_LEN:])
        size = len(inner)
        pad = inner[-1]
        # The padding (pad + 1 bytes) and the MAC must fit: size >= pad + 1 + mac_len.
        good = _ct_le(pad + 1 + mac_len, size)
        # Check the last min(256, size) bytes: every byte within the padding must equal pad.
        diff = 0
        for i in range(min(256, size)):
            diff |= _ct_le(i, pad) * (inner[size - 1 - i] ^ pad)
        good &= _ct_is_zero(diff)
        plen = size - mac_len - 1 - pad * good
        h = self._hmac_proto.copy()
        h.update(_mac_header(self.epoch, seq, content_type, version, plen))
        h.update(memoryview(inner)[:plen])
        mac_ok = _hmac.compare_digest(h.digest(), inner[plen : plen + mac_len])
        if good & mac_ok:
            return inner[:plen]
        return None

    def _open_etm(self, content_type: int, version: int, seq: int, fragment: memoryview) -> bytes | None:
        """Encrypt-then-MAC CBC open (RFC 7366 3): verify the MAC before decrypting anything."""
        assert self._hmac_proto is not None
        split = len(fragment) - self._mac_len
        ciphertext = fragment[:split]
        h = self._hmac_proto.copy()
        h.update(_mac_header(self.epoch, seq, content_type, version, split))
        h.update(ciphertext)
        if not _hmac.compare_digest(h.digest(), fragment[split:]):
            return None
        inner = cbc_decrypt(self._key, ciphertext[:BLOCK_LEN], ciphertext[BLOCK_LEN:])
        pad = inner[-1]
        # The MAC already authenticated these bytes, so timing here reveals nothing secret;
        # bad padding from the authentic sender is still a record we cannot use.
        if pad + 1 > len(inner) or inner[-pad - 1 :] != bytes([pad]) * (pad + 1):
            return None
        return inner[: len(inner) - pad - 1]

    def _unprotect(self, content_type: int, version: int, seq: int, fragment: memoryview) -> bytes | None:
        """Authenticate and decrypt a fragment of acceptable length; None means BAD_MAC."""
        cipher = self._cipher
        if cipher is BulkCipher.NULL:
            return bytes(fragment)
        if self._aead is not None:
            if cipher is BulkCipher.CHACHA20_POLY1305:
                plen = len(fragment) - AEAD_TAG_LEN
                nonce_int = int.from_bytes(self._fixed_iv, "big") ^ int.from_bytes(
                    _epoch_seq(self.epoch, seq), "big"
                )
                nonce = nonce_int.to_bytes(_AEAD_NONCE_LEN, "big")
                body = fragment
            else:  # GCM, CCM
                plen = len(fragment) - GCM_EXPLICIT_NONCE_LEN - self._tag_len
                # The explicit nonce is whatever the peer sent (RFC 5288 3), not epoch||seq.
                nonce = self._fixed_iv + bytes(fragment[:GCM_EXPLICIT_NONCE_LEN])
                body = fragment[GCM_EXPLICIT_NONCE_LEN:]
            aad = _mac_header(self.epoch, seq, content_type, version, plen)
            return _aead_open(self._aead, nonce, aad, body)
        if self.protection.encrypt_then_mac:
            return self._open_etm(content_type, version, seq, fragment)
        return self._open_mte(content_type, version, seq, fragment)

    def open(self, record: Buffer) -> OpenResult:
        """Open exactly one record (header included); never raises on its contents.

        Checks run in the order of `dtls.recordapi`; only an OK result changes state (the
        replay window moves only for authenticated records, RFC 6347 4.1.2.6).
        """
        view = _view(record)
        header = _parse_header(view)
        if header is None:
            return _fail(OpenStatus.MALFORMED)
        content_type, version, epoch, seq, length = header
        if length != len(view) - HEADER_LEN or length > MAX_FRAGMENT:
            return _fail(OpenStatus.MALFORMED, content_type, epoch, seq)
        if epoch != self.epoch:
            # Not ours: hand the raw record back so the caller can route it (e.g. a
            # Finished racing ahead of our epoch change, RFC 6347 4.1).
            return OpenResult(OpenStatus.BAD_EPOCH, content_type, epoch, seq, bytes(view))
        # At epoch 0 the version is not negotiated yet: any DTLS version (0xFExx) will do
        # (RFC 6347 4.1: ClientHello may carry a different version than the state's).
        if version != self.version and not (self.epoch == 0 and version >> 8 == 0xFE):
            return _fail(OpenStatus.BAD_VERSION, content_type, epoch, seq)
        replay = self._window.check(seq)
        if replay is not OpenStatus.OK:
            return _fail(replay, content_type, epoch, seq)
        fragment = view[HEADER_LEN:]
        if not self._fragment_ok(length):
            return _fail(OpenStatus.MALFORMED, content_type, epoch, seq)
        # The record's own version is what the peer authenticated (RFC 5246 6.2.3.1).
        plaintext = self._unprotect(content_type, version, seq, fragment)
        if plaintext is None:
            return _fail(OpenStatus.BAD_MAC, content_type, epoch, seq)
        if len(plaintext) > MAX_PLAINTEXT:
            return _fail(OpenStatus.RECORD_OVERFLOW, content_type, epoch, seq)
        self._window.accept(seq)
        return OpenResult(OpenStatus.OK, content_type, epoch, seq, plaintext)

    def open_batch(self, data: Buffer, lengths: Sequence[int] | None = None) -> list[OpenResult]:
        """Open every record of one datagram, or of datagrams back to back with `lengths`.

        Records are opened in order, exactly as `open` would (so a record repeated within
        the batch is a REPLAY).  Unparseable bytes at the end of a datagram give one
        MALFORMED result; an empty datagram gives no result at all.
        """
        view = _view(data)
        if lengths is None:
            spans = [len(view)]
        else:
            spans = [operator.index(n) for n in lengths]
            if any(n < 0 for n in spans):
                raise ValueError("datagram lengths must not be negative")
            if sum(spans) != len(view):
                raise ValueError(f"datagram lengths add up to {sum(spans)}, data has {len(view)} bytes")
        results: list[OpenResult] = []
        start = 0
        for span in spans:
            datagram = view[start : start + span]
            start += span
            headers, rest = split_records(datagram)
            for h in headers:
                results.append(self.open(datagram[h.offset : h.end]))
            if rest:
                header = _parse_header(datagram[span - rest :])
                if header is None:
                    results.append(_fail(OpenStatus.MALFORMED))
                else:
                    content_type, _version, epoch, seq, _length = header
                    results.append(_fail(OpenStatus.MALFORMED, content_type, epoch, seq))
        return results
