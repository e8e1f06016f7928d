"""The C record layer (csrc/record.c via cffi), behind the interface of dtls.recordapi.

This is the only module that touches `lib`.  Per call it passes flat buffers and ints:
bytes go to C as they are, other buffers through `ffi.from_buffer`; outputs land in a
per-thread scratch buffer (cffi releases the GIL during calls, so a shared one would race)
and are copied out once.  A CipherState itself must not be used by two threads at once.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Sequence

from ._record import ffi, lib  # ImportError here makes dtls.record fall back to Python
from .protection import HEADER_LEN, BulkCipher, MacAlgorithm, Protection
from .recordbase import (
    DEFAULT_WINDOW,
    DTLS1_2,
    MAX_FRAGMENT,
    MAX_SEQ,
    OpenResult,
    OpenStatus,
    RecordBatch,
    RecordHeader,
    RecordLayerError,
    SequenceExhausted,
    check_seq,
    check_window_size,
    validate_state_args,
)

Buffer = bytes | bytearray | memoryview

BACKEND = "c"

_SCRATCH = MAX_FRAGMENT + lib.DTLS_MAX_OVERHEAD
_STATUS = tuple(OpenStatus)
_OK = OpenStatus.OK
_BAD_EPOCH = OpenStatus.BAD_EPOCH
_local = threading.local()
_seal = lib.dtls_seal
_open = lib.dtls_open
_REFUSED = lib.DTLS_OPEN_REFUSED
_new_result = tuple.__new__  # OpenResult without NamedTuple's Python-level __new__
# dtls_open_result as laid out in csrc/record.h: status epoch type reserved seq offset length.
_RESULT = struct.Struct("=iHBxQII")
assert ffi.sizeof("dtls_open_result") == _RESULT.size and [
    ffi.offsetof("dtls_open_result", f) for f in ("epoch", "type", "seq", "offset", "length")
] == [4, 6, 8, 16, 20], "dtls_open_result layout changed: update _RESULT"
assert HEADER_LEN == lib.DTLS_HEADER_LEN, "csrc/build_record.py is out of step with record.h"


class _Scratch:
    """Per-thread output space: one record or one result, reused by every call.

    The batch result array grows on demand and is kept, so a batch does not pay for
    allocating and zeroing its worst-case result array each time.
    """

    __slots__ = ("batch_cap", "batch_res", "out", "parsed", "res", "view")

    def __init__(self) -> None:
        self.out = ffi.new("uint8_t[]", _SCRATCH)
        self.view = ffi.buffer(self.out)
        self.res = ffi.new("dtls_open_result *")
        self.parsed = ffi.new("size_t *")
        self.batch_cap = 0
        self.batch_res = ffi.NULL

    def results(self, cap: int):  # type: ignore[no-untyped-def]
        if cap > self.batch_cap:
            self.batch_cap = max(cap, 2 * self.batch_cap, 256)
            self.batch_res = ffi.new("dtls_open_result[]", self.batch_cap)
        return self.batch_res


def _scratch() -> _Scratch:
    try:
        return _local.scratch  # type: ignore[no-any-return]
    except AttributeError:
        _local.scratch = s = _Scratch()
        return s


def _cbuf(data: Buffer):  # type: ignore[no-untyped-def]
    """A C pointer to `data` without copying (bytes are passed as they are)."""
    return data if type(data) is bytes else ffi.from_buffer(data)


def _raise(code: int) -> None:
    if code == lib.DTLS_ERR_SEQ:
        raise SequenceExhausted("sequence numbers of this epoch are exhausted; rekey")
    if code == lib.DTLS_ERR_ARG:
        raise ValueError(f"payload longer than {lib.DTLS_MAX_PLAINTEXT} bytes")
    if code == lib.DTLS_ERR_SPACE:
        raise RecordLayerError("output buffer too small")
    raise RecordLayerError(f"OpenSSL failed inside the record layer (code {code})")


# ---- raw primitives (the same C paths records use) --------------------------------------


def aead_encrypt(cipher: BulkCipher, key: Buffer, nonce: Buffer, aad: Buffer,
                 plaintext: Buffer) -> bytes:
    out = ffi.new("uint8_t[]", len(plaintext) + 16)
    r = lib.dtls_aead_raw(int(cipher), 1, _cbuf(key), len(key), _cbuf(nonce), len(nonce),
                          _cbuf(aad), len(aad), _cbuf(plaintext), len(plaintext), out)
    if r == lib.DTLS_ERR_ARG:
        raise ValueError("bad AEAD cipher, key or nonce length")
    if r < 0:
        _raise(r)
    return bytes(ffi.buffer(out, r))


def aead_decrypt(cipher: BulkCipher, key: Buffer, nonce: Buffer, aad: Buffer,
                 ciphertext: Buffer) -> bytes | None:
    out = ffi.new("uint8_t[]", max(len(ciphertext), 1))
    r = lib.dtls_aead_raw(int(cipher), 0, _cbuf(key), len(key), _cbuf(nonce), len(nonce),
                          _cbuf(aad), len(aad), _cbuf(ciphertext), len(ciphertext), out)
    if r == lib.DTLS_ERR_AUTH:
        return None
    if r == lib.DTLS_ERR_ARG:
        raise ValueError("bad AEAD cipher, key, nonce or ciphertext length")
    if r < 0:
        _raise(r)
    return bytes(ffi.buffer(out, r))


def _cbc(enc: int, key: Buffer, iv: Buffer, data: Buffer) -> bytes:
    if len(iv) != 16:
        raise ValueError("CBC IV must be 16 bytes")
    out = ffi.new("uint8_t[]", max(len(data), 1))
    r = lib.dtls_cbc_raw(enc, _cbuf(key), len(key), _cbuf(iv), _cbuf(data), len(data), out)
    if r == lib.DTLS_ERR_ARG:
        raise ValueError("CBC key must be 16 or 32 bytes and data a multiple of 16")
    if r < 0:
        _raise(r)
    return bytes(ffi.buffer(out, r))


def cbc_encrypt(key: Buffer, iv: Buffer, data: Buffer) -> bytes:
    return _cbc(1, key, iv, data)


def cbc_decrypt(key: Buffer, iv: Buffer, data: Buffer) -> bytes:
    return _cbc(0, key, iv, data)


def hmac(mac: MacAlgorithm, key: Buffer, data: Buffer) -> bytes:
    out = ffi.new("uint8_t[]", 64)
    r = lib.dtls_hmac_raw(int(MacAlgorithm(mac)), _cbuf(key), len(key), _cbuf(data), len(data),
                          out)
    if r < 0:
        raise ValueError("HMAC needs SHA1, SHA256 or SHA384")
    return bytes(ffi.buffer(out, r))


# ---- replay window ------------------------------------------------------------------------


class ReplayWindow:
    """The C anti-replay window on its own (CipherState embeds the same struct)."""

    __slots__ = ("_w",)

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        check_window_size(size)
        self._w = ffi.new("dtls_window *")
        lib.dtls_window_init(self._w, size)

    @property
    def size(self) -> int:
        return int(self._w.size)

    @property
    def highest(self) -> int | None:
        return int(self._w.highest) if self._w.have else None

    def check(self, seq: int) -> OpenStatus:
        check_seq(seq)
        status: OpenStatus = _STATUS[lib.dtls_window_check(self._w, seq)]
        return status

    def accept(self, seq: int) -> None:
        check_seq(seq)
        lib.dtls_window_accept(self._w, seq)

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self.size}, highest={self.highest})"


# ---- records --------------------------------------------------------------------------------


def split_records(datagram: Buffer) -> tuple[list[RecordHeader], int]:
    n = len(datagram)
    hdrs = ffi.new("dtls_record_hdr[]", n // 13 + 1)
    s = _scratch()
    count = lib.dtls_split(_cbuf(datagram), n, hdrs, n // 13 + 1, s.parsed)
    out = [RecordHeader(h.type, h.version, h.epoch, h.seq, h.offset, h.length)
           for h in hdrs[0:count]]
    return out, n - s.parsed[0]


class CipherState:
    """Record protection for one (epoch, direction), backed by a C dtls_state."""

    __slots__ = ("_st", "epoch", "protection", "version")

    def __init__(self, protection: Protection, *, epoch: int, version: int = DTLS1_2,
                 key: Buffer = b"", fixed_iv: Buffer = b"", mac_key: Buffer = b"",
                 window: int = DEFAULT_WINDOW, iv_key: Buffer | None = None) -> None:
        iv_key = validate_state_args(protection, epoch, version, key, fixed_iv, mac_key,
                                     window, iv_key)
        st = lib.dtls_state_new(int(protection.cipher), int(protection.mac),
                                int(protection.encrypt_then_mac), epoch, version,
                                _cbuf(key), len(key), _cbuf(fixed_iv), len(fixed_iv),
                                _cbuf(mac_key), len(mac_key), _cbuf(iv_key), len(iv_key),
                                window)
        if st == ffi.NULL:
            raise RecordLayerError("could not create the C cipher state")
        self._st = ffi.gc(st, lib.dtls_state_free)
        self.protection = protection
        self.epoch = epoch
        self.version = version

    @property
    def window_size(self) -> int:
        return int(lib.dtls_state_window(self._st).size)

    @property
    def highest_seq(self) -> int | None:
        w = lib.dtls_state_window(self._st)
        return int(w.highest) if w.have else None

    @property
    def next_seq(self) -> int:
        return int(lib.dtls_state_next_seq(self._st))

    @next_seq.setter
    def next_seq(self, value: int) -> None:
        if not 0 <= value <= MAX_SEQ + 1:
            raise ValueError("next_seq must be in 0..2^48")
        lib.dtls_state_set_next_seq(self._st, value)

    def __repr__(self) -> str:
        return (f"CipherState({self.protection}, epoch={self.epoch}, "
                f"version={self.version:#06x}, next_seq={self.next_seq}, backend=c)")

    def seal(self, content_type: int, payload: Buffer) -> bytes:
        # The hot path: lookups are inlined rather than factored into helpers (~0.1 us).
        try:
            s = _local.scratch
        except AttributeError:
            s = _scratch()
        try:
            r = _seal(self._st, content_type,
                      payload if type(payload) is bytes else ffi.from_buffer(payload),
                      len(payload), s.out, _SCRATCH)
        except OverflowError:
            raise ValueError("content_type must be 0..255") from None
        if r < 0:
            _raise(r)
        record: bytes = s.view[0:r]
        return record

    def seal_batch(self, content_type: int, payloads: Sequence[Buffer]) -> RecordBatch:
        n = len(payloads)
        lens = [len(p) for p in payloads]
        data = b"".join(payloads)
        out = bytearray(len(data) + n * lib.DTLS_MAX_OVERHEAD)
        out_lens = ffi.new("uint32_t[]", n)
        try:
            r = lib.dtls_seal_batch(self._st, content_type, data, ffi.new("uint32_t[]", lens),
                                    n, ffi.from_buffer(out), len(out), out_lens)
        except OverflowError:
            raise ValueError("content_type must be 0..255 and payloads at most 2^14") from None
        if r < 0:
            _raise(r)
        del out[r:]
        return RecordBatch(out, ffi.unpack(out_lens, n))

    def open(self, record: Buffer) -> OpenResult:
        try:
            s = _local.scratch
        except AttributeError:
            s = _scratch()
        res = s.res
        n = _open(self._st, record if type(record) is bytes else ffi.from_buffer(record),
                  len(record), s.out, _SCRATCH, res)
        if n >= 0:  # accepted: n is the plaintext length, the epoch is ours
            return _new_result(OpenResult, (_OK, res.type, self.epoch, res.seq, s.view[0:n]))
        if n > _REFUSED:
            _raise(n)
        st = _REFUSED - n
        payload = bytes(record) if st == _BAD_EPOCH else b""
        return _new_result(OpenResult, (_STATUS[st], res.type, res.epoch, res.seq, payload))

    def open_batch(self, data: Buffer, lengths: Sequence[int] | None = None) -> list[OpenResult]:
        total = len(data)
        if lengths is None:
            lens = [total]
        else:
            lens = list(lengths)
            if any(n < 0 for n in lens) or sum(lens) != total:
                raise ValueError("datagram lengths must be >= 0 and add up to len(data)")
        cap = total // 13 + len(lens) + 1  # no datagram holds more records than this
        res = _scratch().results(cap)
        out = bytearray(max(total, 1))
        n = lib.dtls_open_batch(self._st, _cbuf(data), total, ffi.new("uint32_t[]", lens),
                                len(lens), ffi.from_buffer(out), total, res, cap)
        if n < 0:
            _raise(n)
        view = memoryview(out)
        results: list[OpenResult] = []
        append = results.append
        # One unpack over the C result array beats per-field cdata access by ~4x.
        for st, epoch, ctype, seq, off, length in _RESULT.iter_unpack(
                ffi.buffer(res, n * _RESULT.size)):
            if st == 0:
                payload: bytes | memoryview = view[off : off + length]
            elif st == _BAD_EPOCH:
                payload = bytes(data[off : off + length])
            else:
                payload = b""
            append(_new_result(OpenResult, (_STATUS[st], ctype, epoch, seq, payload)))
        return results


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
