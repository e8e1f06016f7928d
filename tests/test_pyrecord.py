"""Tests of the pure-Python record layer (dtls._pyrecord) on its own.

The wire format is checked independently: records are rebuilt here by hand from
`cryptography` and `hmac` following the layout documented in dtls/recordapi.py, and
compared byte for byte with what CipherState.seal produces.  Cross-checks against the
C backend live in tests/test_record_crosscheck.py.
"""

from __future__ import annotations

import hashlib
import hmac as std_hmac
import random
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from dtls import _pyrecord as pr
from dtls.protection import BulkCipher, MacAlgorithm, Protection
from dtls.recordbase import (
    DTLS1_0,
    DTLS1_2,
    MAX_FRAGMENT,
    MAX_SEQ,
    MAX_WINDOW,
    Buffer,
    ContentType,
    OpenStatus,
    RecordBatch,
    RecordHeader,
    SequenceExhausted,
)

APP = int(ContentType.APPLICATION_DATA)
HASHES = {MacAlgorithm.SHA1: hashlib.sha1, MacAlgorithm.SHA256: hashlib.sha256,
          MacAlgorithm.SHA384: hashlib.sha384}

PROTECTIONS = [
    Protection(BulkCipher.NULL),
    Protection(BulkCipher.AES_128_GCM),
    Protection(BulkCipher.AES_256_GCM),
    Protection(BulkCipher.CHACHA20_POLY1305),
    Protection(BulkCipher.AES_128_CCM),
    Protection(BulkCipher.AES_128_CCM_8),
    Protection(BulkCipher.AES_256_CCM),
    Protection(BulkCipher.AES_256_CCM_8),
] + [
    Protection(cipher, mac, etm)
    for cipher in (BulkCipher.AES_128_CBC, BulkCipher.AES_256_CBC)
    for mac in (MacAlgorithm.SHA1, MacAlgorithm.SHA256, MacAlgorithm.SHA384)
    for etm in (False, True)
]
PROTECTED = [p for p in PROTECTIONS if p.cipher is not BulkCipher.NULL]
SIZES = [0, 1, 15, 16, 17, 1200, 16384]


def pid(p: Protection) -> str:
    if p.is_cbc:
        return f"{p.cipher.name}-{p.mac.name}-{'EtM' if p.encrypt_then_mac else 'MtE'}"
    return p.cipher.name


def keys(p: Protection) -> dict[str, Any]:
    """Deterministic, distinct key material of the right lengths."""
    out: dict[str, Any] = {
        "key": bytes((i * 7 + 1) & 0xFF for i in range(p.key_length)),
        "fixed_iv": bytes((i * 11 + 3) & 0xFF for i in range(p.fixed_iv_length)),
        "mac_key": bytes((i * 13 + 5) & 0xFF for i in range(p.mac_length)),
    }
    if p.is_cbc:
        out["iv_key"] = bytes((i * 17 + 9) & 0xFF for i in range(p.key_length))
    return out


def pair(p: Protection, epoch: int = 1, **kw: Any) -> tuple[pr.CipherState, pr.CipherState]:
    k = keys(p)
    return pr.CipherState(p, epoch=epoch, **k, **kw), pr.CipherState(p, epoch=epoch, **k, **kw)


# -- hand-built records (independent of the module under test) ------------------------------


def be(n: int, width: int) -> bytes:
    return n.to_bytes(width, "big")


def header(ct: int, version: int, epoch: int, seq: int, length: int) -> bytes:
    return bytes([ct]) + be(version, 2) + be(epoch, 2) + be(seq, 6) + be(length, 2)


def add_data(epoch: int, seq: int, ct: int, version: int, length: int) -> bytes:
    return be(epoch, 2) + be(seq, 6) + bytes([ct]) + be(version, 2) + be(length, 2)


def aes_ecb(key: bytes, block: bytes) -> bytes:
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()


def aes_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return e.update(data) + e.finalize()


def hand_gcm(key: bytes, salt: bytes, ct: int, version: int, epoch: int, seq: int,
             payload: bytes, explicit: bytes | None = None) -> bytes:
    if explicit is None:
        explicit = be(epoch, 2) + be(seq, 6)
    frag = explicit + AESGCM(key).encrypt(salt + explicit, payload,
                                          add_data(epoch, seq, ct, version, len(payload)))
    return header(ct, version, epoch, seq, len(frag)) + frag


CCM_TAG = {BulkCipher.AES_128_CCM: 16, BulkCipher.AES_256_CCM: 16,
           BulkCipher.AES_128_CCM_8: 8, BulkCipher.AES_256_CCM_8: 8}  # RFC 6655


def hand_ccm(key: bytes, salt: bytes, tag_len: int, ct: int, version: int, epoch: int, seq: int,
             payload: bytes, explicit: bytes | None = None) -> bytes:
    """As hand_gcm, with AES-CCM (RFC 6655: the same nonce, AAD and layout, its own tag)."""
    if explicit is None:
        explicit = be(epoch, 2) + be(seq, 6)
    frag = explicit + AESCCM(key, tag_length=tag_len).encrypt(
        salt + explicit, payload, add_data(epoch, seq, ct, version, len(payload)))
    return header(ct, version, epoch, seq, len(frag)) + frag


def ccm_from_aes(key: bytes, nonce: bytes, aad: bytes, payload: bytes, tag_len: int) -> bytes:
    """AES-CCM built from the AES block function alone (NIST SP 800-38C 6.1, A.2; RFC 3610 2):
    an oracle that shares no code with `cryptography`'s AESCCM."""
    q = 15 - len(nonce)  # L: bytes of the message-length field (3 for TLS's 12-byte nonces)
    flags = (0x40 if aad else 0) | ((tag_len - 2) // 2) << 3 | (q - 1)
    blocks = bytes([flags]) + nonce + be(len(payload), q)
    if aad:  # 0 < len(aad) < 2^16 - 2^8: a 2-byte length prefix
        blocks += be(len(aad), 2) + aad + bytes(-(len(aad) + 2) % 16)
    blocks += payload + bytes(-len(payload) % 16)
    mac = bytes(16)
    for i in range(0, len(blocks), 16):  # CBC-MAC
        mac = aes_ecb(key, bytes(a ^ b for a, b in zip(mac, blocks[i:i + 16])))
    stream = b"".join(aes_ecb(key, bytes([q - 1]) + nonce + be(i, q))
                      for i in range(len(payload) // 16 + 2))  # counter blocks A_0, A_1, ...
    ciphertext = bytes(a ^ b for a, b in zip(payload, stream[16:]))
    return ciphertext + bytes(a ^ b for a, b in zip(mac[:tag_len], stream[:16]))


def hand_chacha(key: bytes, iv: bytes, ct: int, version: int, epoch: int, seq: int,
                payload: bytes) -> bytes:
    nonce = bytes(a ^ b for a, b in zip(iv, bytes(4) + be(epoch, 2) + be(seq, 6)))
    frag = ChaCha20Poly1305(key).encrypt(nonce, payload, add_data(epoch, seq, ct, version, len(payload)))
    return header(ct, version, epoch, seq, len(frag)) + frag


def hand_cbc_iv(iv_key: bytes, epoch: int, seq: int) -> bytes:
    return aes_ecb(iv_key, be(epoch, 2) + be(seq, 6) + bytes(8))


def hand_mte(p: Protection, k: dict[str, bytes], ct: int, version: int, epoch: int, seq: int,
             payload: bytes, pad: int | None = None) -> bytes:
    iv = hand_cbc_iv(k["iv_key"], epoch, seq)
    mac = std_hmac.new(k["mac_key"], add_data(epoch, seq, ct, version, len(payload)) + payload,
                       HASHES[p.mac]).digest()
    if pad is None:
        pad = 15 - (len(payload) + len(mac)) % 16
    frag = iv + aes_cbc(k["key"], iv, payload + mac + bytes([pad]) * (pad + 1))
    return header(ct, version, epoch, seq, len(frag)) + frag


def hand_etm(p: Protection, k: dict[str, bytes], ct: int, version: int, epoch: int, seq: int,
             payload: bytes, pad: int | None = None) -> bytes:
    iv = hand_cbc_iv(k["iv_key"], epoch, seq)
    if pad is None:
        pad = 15 - len(payload) % 16
    body = iv + aes_cbc(k["key"], iv, payload + bytes([pad]) * (pad + 1))
    mac = std_hmac.new(k["mac_key"], add_data(epoch, seq, ct, version, len(body)) + body,
                       HASHES[p.mac]).digest()
    frag = body + mac
    return header(ct, version, epoch, seq, len(frag)) + frag


def hand_record(p: Protection, k: dict[str, bytes], epoch: int, seq: int, payload: bytes,
                ct: int = APP, version: int = DTLS1_2) -> bytes:
    if p.cipher is BulkCipher.NULL:
        return header(ct, version, epoch, seq, len(payload)) + payload
    if p.cipher is BulkCipher.CHACHA20_POLY1305:
        return hand_chacha(k["key"], k["fixed_iv"], ct, version, epoch, seq, payload)
    if p.cipher in CCM_TAG:
        return hand_ccm(k["key"], k["fixed_iv"], CCM_TAG[p.cipher], ct, version, epoch, seq, payload)
    if p.is_aead:
        return hand_gcm(k["key"], k["fixed_iv"], ct, version, epoch, seq, payload)
    if p.encrypt_then_mac:
        return hand_etm(p, k, ct, version, epoch, seq, payload)
    return hand_mte(p, k, ct, version, epoch, seq, payload)


def raw(epoch: int, seq: int, fragment: bytes, version: int = DTLS1_2, ct: int = APP) -> bytes:
    return header(ct, version, epoch, seq, len(fragment)) + fragment


# -- round trips and wire format -------------------------------------------------------------


@pytest.mark.parametrize("p", PROTECTIONS, ids=pid)
def test_round_trip_every_size(p: Protection) -> None:
    tx, rx = pair(p, epoch=3)
    for i, size in enumerate(SIZES):
        payload = bytes((j * 31 + size) & 0xFF for j in range(size))
        record = tx.seal(APP, payload)
        assert len(record) == p.record_length(size)
        res = rx.open(record)
        assert res.status is OpenStatus.OK, (size, res.status)
        assert (res.content_type, res.epoch, res.seq) == (APP, 3, i)
        assert type(res.payload) is bytes and res.payload == payload
    assert tx.next_seq == len(SIZES) and rx.highest_seq == len(SIZES) - 1


@pytest.mark.parametrize("p", PROTECTIONS, ids=pid)
def test_seal_matches_hand_built_record(p: Protection) -> None:
    """Independent wire-format check for every suite (GCM, ChaCha20, CCM, CBC MtE/EtM, NULL)."""
    k = keys(p)
    tx = pr.CipherState(p, epoch=0x0102, version=DTLS1_2, **k)
    seq = 0x0000_A1B2_C3D4
    tx.next_seq = seq
    for size in (0, 1, 17, 100):
        payload = bytes(range(size))
        assert tx.seal(APP, payload) == hand_record(p, k, 0x0102, seq, payload)
        seq += 1


@pytest.mark.parametrize("p", PROTECTIONS, ids=pid)
def test_seal_batch_and_open_batch_round_trip(p: Protection) -> None:
    tx, rx = pair(p)
    payloads: list[Buffer] = [b"", b"a" * 17, bytearray(b"b" * 300), memoryview(b"c" * 1200)]
    batch = tx.seal_batch(APP, payloads)
    assert isinstance(batch, RecordBatch) and len(batch) == 4
    assert batch.lengths == [p.record_length(len(x)) for x in payloads]
    # Same bytes as sealing one by one.
    tx2, _ = pair(p)
    assert bytes(batch.buffer) == b"".join(tx2.seal(APP, x) for x in payloads)
    results = rx.open_batch(batch.buffer)
    assert [r.status for r in results] == [OpenStatus.OK] * 4
    assert [bytes(r.payload) for r in results] == [bytes(x) for x in payloads]
    assert [r.seq for r in results] == [0, 1, 2, 3]


@pytest.mark.parametrize("p", PROTECTED, ids=pid)
def test_every_bit_flip_is_rejected(p: Protection) -> None:
    tx, rx = pair(p)
    record = tx.seal(APP, bytes(range(17)))
    buf = bytearray(record)
    for i in range(len(buf)):
        for bit in range(8):
            buf[i] ^= 1 << bit
            assert rx.open(buf).status is not OpenStatus.OK, (i, bit)
            buf[i] ^= 1 << bit
    assert rx.highest_seq is None  # no failure moved the window
    assert rx.open(record).ok


def test_open_accepts_any_buffer_and_returns_bytes() -> None:
    p = Protection(BulkCipher.AES_128_GCM)
    tx, rx = pair(p)
    for wrap in (bytes, bytearray, memoryview):
        res = rx.open(wrap(tx.seal(APP, b"hello")))
        assert res.ok and type(res.payload) is bytes and res.payload == b"hello"


def test_random_iv_key_is_not_needed_by_receiver() -> None:
    p = Protection(BulkCipher.AES_128_CBC, MacAlgorithm.SHA256)
    k = keys(p)
    del k["iv_key"]
    a = pr.CipherState(p, epoch=1, **k)
    b = pr.CipherState(p, epoch=1, **k)
    ra, rb = a.seal(APP, b"x"), b.seal(APP, b"x")
    assert ra[:13] == rb[:13] and ra[13:29] != rb[13:29]  # IVs differ (random iv_keys)
    assert b.open(ra).ok and a.open(rb).ok


def test_ccm_8_record_built_from_the_aes_block_function() -> None:
    """One AES-128-CCM_8 record, every byte accounted for, CCM done here from AES-ECB.

    RFC 6655 / RFC 6347 4.1: header(13) || explicit_nonce = epoch||seq (8) ||
    CCM_8(key, salt || explicit_nonce, aad = epoch seq type version length, payload), whose
    8-byte tag makes the fragment 8 + len(payload) + 8 bytes.
    """
    p = Protection(BulkCipher.AES_128_CCM_8)
    key = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    salt = bytes.fromhex("a0a1a2a3")
    epoch, seq, payload = 0x0102, 0x0000_A1B2_C3D4, b"CoAP GET /sensors/temperature (more than 2 blocks)"
    tx = pr.CipherState(p, epoch=epoch, key=key, fixed_iv=salt)
    tx.next_seq = seq
    record = tx.seal(APP, payload)
    explicit = bytes.fromhex("0102" "0000a1b2c3d4")
    aad = explicit + bytes([APP]) + bytes.fromhex("fefd") + be(len(payload), 2)
    body = ccm_from_aes(key, salt + explicit, aad, payload, 8)
    assert len(body) == len(payload) + 8
    assert record == bytes([APP]) + bytes.fromhex("fefd" "0102" "0000a1b2c3d4") \
        + be(8 + len(payload) + 8, 2) + explicit + body
    assert len(record) == p.record_length(len(payload)) == 13 + 8 + len(payload) + 8
    # The oracle itself agrees with cryptography's AESCCM, for both tag lengths.
    for tag_len in (8, 16):
        for n in (0, 1, 16, 33):
            assert ccm_from_aes(key, salt + explicit, aad, payload[:n], tag_len) == \
                AESCCM(key, tag_length=tag_len).encrypt(salt + explicit, payload[:n], aad)
    # Opened, and refused once the (short) tag is off by one bit.
    rx = pr.CipherState(p, epoch=epoch, key=key, fixed_iv=salt)
    bad = bytearray(record)
    bad[-1] ^= 0x80
    assert rx.open(bad).status is OpenStatus.BAD_MAC
    res = rx.open(record)
    assert res.ok and res.payload == payload and res.seq == seq


@pytest.mark.parametrize("cipher", [BulkCipher.AES_128_CCM, BulkCipher.AES_256_CCM_8],
                         ids=lambda c: c.name)
def test_ccm_explicit_nonce_is_taken_from_the_record(cipher: BulkCipher) -> None:
    p = Protection(cipher)
    k = keys(p)
    _, rx = pair(p, epoch=2)
    record = hand_ccm(k["key"], k["fixed_iv"], CCM_TAG[cipher], APP, DTLS1_2, 2, 7, b"peer nonce",
                      explicit=b"\xee" * 8)
    res = rx.open(record)
    assert res.ok and res.payload == b"peer nonce" and res.seq == 7


def test_gcm_explicit_nonce_is_taken_from_the_record() -> None:
    p = Protection(BulkCipher.AES_256_GCM)
    k = keys(p)
    _, rx = pair(p, epoch=2)
    record = hand_gcm(k["key"], k["fixed_iv"], APP, DTLS1_2, 2, 7, b"peer nonce", explicit=b"\xee" * 8)
    res = rx.open(record)
    assert res.ok and res.payload == b"peer nonce" and res.seq == 7


@pytest.mark.parametrize("etm", [False, True], ids=["MtE", "EtM"])
def test_cbc_accepts_non_minimal_padding(etm: bool) -> None:
    p = Protection(BulkCipher.AES_128_CBC, MacAlgorithm.SHA1, etm)
    k = keys(p)
    _, rx = pair(p)
    build = hand_etm if etm else hand_mte
    for seq, (payload, pad) in enumerate([(b"abc", 255 - 16 * 0), (b"x" * 40, 255), (b"", 27)]):
        # Pick a pad that keeps the encrypted part block aligned.
        mac = 0 if etm else p.mac_length
        while (len(payload) + mac + pad + 1) % 16:
            pad -= 1
        res = rx.open(build(p, k, APP, DTLS1_2, 1, seq, payload, pad=pad))
        assert res.ok and res.payload == payload, (payload, pad)


@pytest.mark.parametrize("etm", [False, True], ids=["MtE", "EtM"])
def test_cbc_bad_padding_is_bad_mac(etm: bool) -> None:
    p = Protection(BulkCipher.AES_128_CBC, MacAlgorithm.SHA256, etm)
    k = keys(p)
    _, rx = pair(p)
    iv = hand_cbc_iv(k["iv_key"], 1, 0)
    payload = b"p" * 10
    if etm:
        body = iv + aes_cbc(k["key"], iv, payload + b"\x05\x05\x05\x04\x05\x05")  # one wrong byte
        mac = std_hmac.new(k["mac_key"], add_data(1, 0, APP, DTLS1_2, len(body)) + body,
                           hashlib.sha256).digest()
        record = raw(1, 0, body + mac)  # the MAC is good, the padding is not
    else:
        mac = std_hmac.new(k["mac_key"], add_data(1, 0, APP, DTLS1_2, 10) + payload, hashlib.sha256).digest()
        inner = payload + mac + b"\x05\x05\x05\x04\x05\x05"
        record = raw(1, 0, iv + aes_cbc(k["key"], iv, inner))
    assert rx.open(record).status is OpenStatus.BAD_MAC
    # A padding length longer than the record is bad too (for EtM behind a good MAC).
    body = iv + aes_cbc(k["key"], iv, bytes([0xFF]) * 64)
    if etm:
        body += std_hmac.new(k["mac_key"], add_data(1, 1, APP, DTLS1_2, len(body)) + body,
                             hashlib.sha256).digest()
    assert rx.open(raw(1, 1, body)).status is OpenStatus.BAD_MAC
    assert rx.highest_seq is None


# -- statuses ---------------------------------------------------------------------------------


def test_malformed_headers() -> None:
    p = Protection(BulkCipher.AES_128_GCM)
    tx, rx = pair(p, epoch=1)
    record = tx.seal(APP, b"data")
    assert rx.open(b"").status is OpenStatus.MALFORMED
    short = rx.open(record[:12])
    assert short.status is OpenStatus.MALFORMED and (short.content_type, short.epoch, short.seq) == (0, 0, 0)
    for bad in (record[:-1], record + b"\x00", record[:13]):
        res = rx.open(bad)
        assert res.status is OpenStatus.MALFORMED and res.payload == b""
        assert (res.content_type, res.epoch, res.seq) == (APP, 1, 0)
    too_long = raw(1, 0, bytes(MAX_FRAGMENT + 1))
    assert rx.open(too_long).status is OpenStatus.MALFORMED
    assert rx.open(record).ok


@pytest.mark.parametrize(
    ("p", "bad", "good"),
    [
        (Protection(BulkCipher.AES_128_GCM), [0, 23], [24, 25]),
        (Protection(BulkCipher.CHACHA20_POLY1305), [0, 15], [16, 17]),
        (Protection(BulkCipher.AES_256_CCM), [0, 23], [24, 25]),
        # CCM_8: explicit nonce (8) + 8-byte tag.
        (Protection(BulkCipher.AES_128_CCM_8), [0, 8, 15], [16, 17]),
        # MtE SHA1: body (frag - 16) a positive multiple of 16 and >= roundup(21, 16) = 32.
        (Protection(BulkCipher.AES_128_CBC, MacAlgorithm.SHA1), [16, 32, 47, 49], [48, 64]),
        # MtE SHA384: body >= roundup(49, 16) = 64.
        (Protection(BulkCipher.AES_256_CBC, MacAlgorithm.SHA384), [64, 79], [80, 96]),
        # EtM SHA256: frag >= 16 + 16 + 32 and (frag - 48) % 16 == 0.
        (Protection(BulkCipher.AES_128_CBC, MacAlgorithm.SHA256, True), [48, 63, 65], [64, 80]),
    ],
    ids=["GCM", "ChaCha", "CCM", "CCM_8", "MtE-SHA1", "MtE-SHA384", "EtM-SHA256"],
)
def test_fragment_lengths_the_suite_cannot_produce(p: Protection, bad: list[int], good: list[int]) -> None:
    _, rx = pair(p)
    rng = random.Random(1)
    for n in bad:
        assert rx.open(raw(1, n, rng.randbytes(n))).status is OpenStatus.MALFORMED, n
    for n in good:  # plausible length, garbage contents
        assert rx.open(raw(1, n, rng.randbytes(n))).status is OpenStatus.BAD_MAC, n
    assert rx.highest_seq is None


def test_null_accepts_any_fragment_length() -> None:
    rx = pr.CipherState(Protection(BulkCipher.NULL), epoch=0)
    for n in (0, 1, 16384):
        res = rx.open(raw(0, n, bytes(n)))
        assert res.ok and len(res.payload) == n


def test_record_overflow() -> None:
    null = pr.CipherState(Protection(BulkCipher.NULL), epoch=0)
    res = null.open(raw(0, 5, bytes(16385)))
    assert res.status is OpenStatus.RECORD_OVERFLOW and res.payload == b"" and res.seq == 5
    assert null.highest_seq is None
    assert null.open(raw(0, 5, bytes(16384))).ok
    # Authenticated but oversized plaintext, for every protected suite.
    for p in PROTECTED:
        k = keys(p)
        _, rx = pair(p)
        res = rx.open(hand_record(p, k, 1, 9, bytes(16385)))
        assert res.status is OpenStatus.RECORD_OVERFLOW, pid(p)
        assert rx.highest_seq is None
        assert rx.open(hand_record(p, k, 1, 9, bytes(16384))).ok, pid(p)


def test_bad_epoch_returns_raw_record() -> None:
    p = Protection(BulkCipher.AES_128_GCM)
    tx, _ = pair(p, epoch=2)
    _, rx = pair(p, epoch=1)
    record = tx.seal(APP, b"next epoch")
    res = rx.open(bytearray(record))
    assert res.status is OpenStatus.BAD_EPOCH
    assert type(res.payload) is bytes and res.payload == record
    assert (res.content_type, res.epoch, res.seq) == (APP, 2, 0)
    # Epoch is checked before version.
    assert rx.open(raw(3, 0, bytes(30), version=0x0303)).status is OpenStatus.BAD_EPOCH
    assert rx.highest_seq is None


def test_version_checks() -> None:
    p = Protection(BulkCipher.AES_128_GCM)
    k = keys(p)
    _, rx = pair(p, epoch=1)
    res = rx.open(hand_gcm(k["key"], k["fixed_iv"], APP, DTLS1_0, 1, 0, b"x"))
    assert res.status is OpenStatus.BAD_VERSION and res.payload == b""
    # Epoch 0: any DTLS version (0xFExx); anything else must match.
    rx0 = pr.CipherState(Protection(BulkCipher.NULL), epoch=0, version=DTLS1_2)
    for seq, version in enumerate((DTLS1_2, DTLS1_0, 0xFE00)):
        assert rx0.open(raw(0, seq, b"hello", version=version)).ok, hex(version)
    for version in (0x0303, 0xFF00, 0x0000, 0xFDFD):
        assert rx0.open(raw(0, 10, b"hello", version=version)).status is OpenStatus.BAD_VERSION
    # An epoch-0 AEAD state authenticates the version the record carries.
    rx0g = pr.CipherState(p, epoch=0, **k)
    assert rx0g.open(hand_gcm(k["key"], k["fixed_iv"], APP, DTLS1_0, 0, 0, b"v")).ok
    # A DTLS 1.0 state (epoch > 0) takes only 1.0.
    rx10 = pr.CipherState(p, epoch=1, version=DTLS1_0, **k)
    assert rx10.open(hand_gcm(k["key"], k["fixed_iv"], APP, DTLS1_0, 1, 0, b"v")).ok
    assert rx10.open(hand_gcm(k["key"], k["fixed_iv"], APP, DTLS1_2, 1, 1, b"v")).status \
        is OpenStatus.BAD_VERSION


def test_replay_and_too_old() -> None:
    p = Protection(BulkCipher.CHACHA20_POLY1305)
    tx, rx = pair(p, window=64)
    first = tx.seal(APP, b"0")
    assert rx.open(first).ok
    res = rx.open(first)
    assert res.status is OpenStatus.REPLAY and res.seq == 0 and res.payload == b""
    tx.next_seq = 64
    assert rx.open(tx.seal(APP, b"64")).ok  # highest 64: seq 0 is now 64 behind
    assert rx.open(first).status is OpenStatus.TOO_OLD
    tx.next_seq = 1
    assert rx.open(tx.seal(APP, b"1")).ok  # 63 behind: still in the window
    # Replay check comes before the fragment length check and authentication.
    assert rx.open(raw(1, 1, b"")).status is OpenStatus.REPLAY
    assert rx.open(raw(1, 0, b"")).status is OpenStatus.TOO_OLD
    assert rx.open(raw(1, 2, b"")).status is OpenStatus.MALFORMED


def test_failed_records_do_not_move_the_window() -> None:
    p = Protection(BulkCipher.AES_128_CBC, MacAlgorithm.SHA256)
    tx, rx = pair(p)
    tx.next_seq = 5
    good = tx.seal(APP, b"five")
    forged = bytearray(tx.seal(APP, b"six"))
    forged[-1] ^= 1
    forged[3:11] = be(1, 2) + be(10_000, 6)  # far ahead, would slide the window
    assert rx.open(forged).status is OpenStatus.BAD_MAC
    assert rx.highest_seq is None
    assert rx.open(good).ok and rx.highest_seq == 5


def test_window_disabled() -> None:
    p = Protection(BulkCipher.AES_128_GCM)
    tx, rx = pair(p, window=0)
    record = tx.seal(APP, b"again")
    assert rx.window_size == 0
    assert [rx.open(record).status for _ in range(3)] == [OpenStatus.OK] * 3
    assert rx.highest_seq == 0


# -- sealing limits ---------------------------------------------------------------------------


def test_seal_argument_errors() -> None:
    tx, _ = pair(Protection(BulkCipher.AES_128_GCM))
    for ct in (-1, 256):
        with pytest.raises(ValueError):
            tx.seal(ct, b"")
    with pytest.raises(ValueError):
        tx.seal(APP, bytes(16385))
    with pytest.raises(TypeError):
        tx.seal(APP, "text")  # type: ignore[arg-type]
    assert tx.next_seq == 0
    assert len(tx.seal(255, bytes(16384))) == 13 + 8 + 16384 + 16


def test_sequence_exhaustion() -> None:
    p = Protection(BulkCipher.AES_128_GCM)
    tx, rx = pair(p)
    tx.next_seq = MAX_SEQ
    last = tx.seal(APP, b"last")
    assert last[5:11] == be(MAX_SEQ, 6) and tx.next_seq == MAX_SEQ + 1
    res = rx.open(last)
    assert res.ok and res.seq == MAX_SEQ
    with pytest.raises(SequenceExhausted):
        tx.seal(APP, b"")
    with pytest.raises(SequenceExhausted):
        tx.seal_batch(APP, [b""])
    assert tx.seal_batch(APP, []).lengths == []  # nothing to number, nothing to refuse
    for bad in (-1, MAX_SEQ + 2):
        with pytest.raises(ValueError):
            tx.next_seq = bad
    assert tx.next_seq == MAX_SEQ + 1


def test_seal_batch_is_all_or_nothing() -> None:
    tx, _ = pair(Protection(BulkCipher.AES_128_CBC, MacAlgorithm.SHA1, True))
    tx.next_seq = MAX_SEQ - 1  # two left
    with pytest.raises(SequenceExhausted):
        tx.seal_batch(APP, [b"a", b"b", b"c"])
    assert tx.next_seq == MAX_SEQ - 1
    with pytest.raises(ValueError):
        tx.seal_batch(APP, [b"a", bytes(16385)])
    with pytest.raises(ValueError):
        tx.seal_batch(300, [b"a"])
    assert tx.next_seq == MAX_SEQ - 1
    assert len(tx.seal_batch(APP, [b"a", b"b"])) == 2 and tx.next_seq == MAX_SEQ + 1


# -- constructor ------------------------------------------------------------------------------


def test_constructor_validation() -> None:
    gcm = Protection(BulkCipher.AES_128_GCM)
    cbc = Protection(BulkCipher.AES_256_CBC, MacAlgorithm.SHA384)
    kg, kc = keys(gcm), keys(cbc)
    pr.CipherState(gcm, epoch=0, **kg)
    pr.CipherState(gcm, epoch=0xFFFF, version=0, **kg)
    bad_calls: list[dict[str, Any]] = [
        dict(kg, key=bytes(15)),
        dict(kg, key=bytes(32)),
        dict(kg, fixed_iv=bytes(12)),
        dict(kg, mac_key=bytes(20)),
        dict(kg, iv_key=bytes(16)),  # iv_key is CBC only
        dict(kg, window=MAX_WINDOW + 1),
        dict(kg, window=-1),
        dict(kg, epoch=0x10000),
        dict(kg, epoch=-1),
        dict(kg, version=0x10000),
    ]
    for kw in bad_calls:
        kw.setdefault("epoch", 1)
        with pytest.raises(ValueError):
            pr.CipherState(gcm, **kw)
    for kw in (dict(kc, iv_key=bytes(16)), dict(kc, mac_key=bytes(32)), dict(kc, fixed_iv=bytes(4))):
        with pytest.raises(ValueError):
            pr.CipherState(cbc, epoch=1, **kw)
    with pytest.raises(ValueError):
        pr.CipherState(Protection(BulkCipher.NULL), epoch=0, key=b"k")
    with pytest.raises(TypeError):
        pr.CipherState(gcm, 1, **kg)  # type: ignore[call-arg]
    s = pr.CipherState(cbc, epoch=4, window=MAX_WINDOW, **kc)
    assert (s.protection, s.epoch, s.version, s.window_size, s.highest_seq, s.next_seq) == \
        (cbc, 4, DTLS1_2, MAX_WINDOW, None, 0)
    assert not hasattr(s, "__dict__")


def test_repr_shows_no_secrets() -> None:
    p = Protection(BulkCipher.AES_256_CBC, MacAlgorithm.SHA256)
    k: dict[str, Any] = {"key": b"\xaa" * 32, "mac_key": b"\xbb" * 32, "iv_key": b"\xcc" * 32}
    s = pr.CipherState(p, epoch=7, **k)
    s.next_seq = 42
    text = repr(s)
    assert "epoch=7" in text and "next_seq=42" in text and "AES_256_CBC" in text
    for secret in k.values():
        assert secret.hex() not in text and repr(secret)[2:14] not in text


# -- replay window ----------------------------------------------------------------------------


def test_replay_window_basics() -> None:
    w = pr.ReplayWindow()
    assert w.size == 64 and w.highest is None and w.check(0) is OpenStatus.OK
    w.accept(100)
    assert w.highest == 100
    assert w.check(100) is OpenStatus.REPLAY
    assert w.check(36) is OpenStatus.TOO_OLD and w.check(0) is OpenStatus.TOO_OLD
    assert w.check(37) is OpenStatus.OK and w.check(101) is OpenStatus.OK
    w.accept(38)
    w.accept(38)  # idempotent
    w.accept(10)  # too old: ignored
    assert w.check(38) is OpenStatus.REPLAY and w.check(10) is OpenStatus.TOO_OLD
    w.accept(MAX_SEQ)  # huge jump must not build a huge bitmap
    assert w.highest == MAX_SEQ and w.check(100) is OpenStatus.TOO_OLD
    assert w.check(MAX_SEQ - 1) is OpenStatus.OK and w.check(MAX_SEQ) is OpenStatus.REPLAY
    for bad in (-1, MAX_SEQ + 1):
        with pytest.raises(ValueError):
            w.check(bad)
        with pytest.raises(ValueError):
            w.accept(bad)
    for bad in (-1, MAX_WINDOW + 1):
        with pytest.raises(ValueError):
            pr.ReplayWindow(bad)
    assert pr.ReplayWindow(MAX_WINDOW).size == MAX_WINDOW


def test_replay_window_size_zero_and_one() -> None:
    w0 = pr.ReplayWindow(0)
    w0.accept(5)
    w0.accept(3)
    assert w0.highest == 5 and w0.check(5) is OpenStatus.OK and w0.check(0) is OpenStatus.OK
    w1 = pr.ReplayWindow(1)
    w1.accept(5)
    assert w1.check(5) is OpenStatus.REPLAY and w1.check(4) is OpenStatus.TOO_OLD
    assert w1.check(6) is OpenStatus.OK


@pytest.mark.parametrize("size", [1, 2, 32, 64, 65, 200])
def test_replay_window_against_model(size: int) -> None:
    rng = random.Random(size)
    w = pr.ReplayWindow(size)
    accepted: set[int] = set()
    highest: int | None = None

    def model(seq: int) -> OpenStatus:
        if highest is None or seq > highest:
            return OpenStatus.OK
        if highest - seq >= size:
            return OpenStatus.TOO_OLD
        return OpenStatus.REPLAY if seq in accepted else OpenStatus.OK

    for _ in range(3000):
        base = highest or 0
        seq = max(0, base + rng.randint(-size - 5, 8 if rng.random() < 0.9 else 3 * size))
        assert w.check(seq) is model(seq), (seq, highest)
        if rng.random() < 0.6:
            if model(seq) is not OpenStatus.TOO_OLD:
                accepted.add(seq)
            highest = seq if highest is None else max(highest, seq)
            w.accept(seq)
            assert w.highest == highest


# -- split_records and open_batch -------------------------------------------------------------


def test_split_records_edge_cases() -> None:
    assert pr.split_records(b"") == ([], 0)
    assert pr.split_records(bytes(12)) == ([], 12)
    empty = header(22, DTLS1_2, 0, 1, 0)
    assert pr.split_records(empty) == ([RecordHeader(22, DTLS1_2, 0, 1, 0, 0)], 0)
    recs, rest = pr.split_records(empty)
    assert rest == 0 and [(r.content_type, r.version, r.epoch, r.seq, r.offset, r.length) for r in recs] == \
        [(22, DTLS1_2, 0, 1, 0, 0)]
    a = raw(1, 0x0102_0304_0506, b"abc")
    b = raw(2, 7, b"defgh", version=DTLS1_0, ct=21)
    recs, rest = pr.split_records(bytearray(a + b + b"\x17\xfe"))
    assert rest == 2 and len(recs) == 2
    assert (recs[0].seq, recs[0].offset, recs[0].length, recs[0].end) == (0x0102_0304_0506, 0, 3, 16)
    assert (recs[1].content_type, recs[1].version, recs[1].epoch, recs[1].offset, recs[1].end) == \
        (21, DTLS1_0, 2, 16, 34)
    # Length running past the end stops the walk.
    recs, rest = pr.split_records(memoryview(a + a[:-1]))
    assert len(recs) == 1 and rest == len(a) - 1
    runaway = header(23, DTLS1_2, 1, 0, 100)
    recs, rest = pr.split_records(a + runaway + a)
    assert len(recs) == 1 and rest == len(runaway) + len(a)
    # Length above MAX_FRAGMENT stops the walk even when the bytes are there.
    big = header(23, DTLS1_2, 1, 0, MAX_FRAGMENT + 1) + bytes(MAX_FRAGMENT + 1)
    assert pr.split_records(a + big) == (pr.split_records(a)[0], len(big))
    ok_big = raw(1, 0, bytes(MAX_FRAGMENT))
    assert pr.split_records(ok_big)[1] == 0


def test_open_batch_several_records_and_truncated_tail() -> None:
    p = Protection(BulkCipher.AES_128_GCM)
    tx, rx = pair(p, epoch=1)
    r0, r1, r2, r3 = (tx.seal(APP, bytes([i]) * (i + 1)) for i in range(4))
    results = rx.open_batch(r0 + r1 + r2 + r3[:20])
    assert [r.status for r in results] == [OpenStatus.OK] * 3 + [OpenStatus.MALFORMED]
    assert [bytes(r.payload) for r in results[:3]] == [b"\x00", b"\x01\x01", b"\x02\x02\x02"]
    assert (results[3].content_type, results[3].epoch, results[3].seq, bytes(results[3].payload)) == \
        (APP, 1, 3, b"")
    # Tail shorter than a header: MALFORMED with zero fields; duplicates in a batch are replays.
    results = rx.open_batch(r3 + r3 + b"\x17" * 5)
    assert [r.status for r in results] == [OpenStatus.OK, OpenStatus.REPLAY, OpenStatus.MALFORMED]
    assert (results[2].content_type, results[2].epoch, results[2].seq) == (0, 0, 0)


def test_open_batch_with_lengths() -> None:
    p = Protection(BulkCipher.AES_128_CBC, MacAlgorithm.SHA256)
    tx, rx = pair(p, epoch=1)
    other, _ = pair(p, epoch=2)
    r = [tx.seal(APP, b"m%d" % i) for i in range(4)]
    foreign = other.seal(APP, b"epoch 2")
    d1, d2, d3 = r[0] + r[1], b"", r[2] + foreign + r[3] + b"junk"
    results = rx.open_batch(d1 + d2 + d3, [len(d1), len(d2), len(d3)])
    assert [x.status for x in results] == [OpenStatus.OK, OpenStatus.OK, OpenStatus.OK,
                                           OpenStatus.BAD_EPOCH, OpenStatus.OK, OpenStatus.MALFORMED]
    assert bytes(results[3].payload) == foreign
    assert [bytes(x.payload) for x in results if x.ok] == [b"m0", b"m1", b"m2", b"m3"]
    assert rx.open_batch(b"") == [] and rx.open_batch(b"", []) == [] and rx.open_batch(b"", [0, 0]) == []
    with pytest.raises(ValueError):
        rx.open_batch(d1, [len(d1) - 1])
    with pytest.raises(ValueError):
        rx.open_batch(d1, [len(d1) + 1, -1])
    with pytest.raises(ValueError):
        rx.open_batch(d1, [])


# -- raw primitives ---------------------------------------------------------------------------


def test_aead_primitives_known_answers() -> None:
    # NIST GCM spec test case 2: K = 0^128, IV = 0^96, P = 0^128.
    out = pr.aead_encrypt(BulkCipher.AES_128_GCM, bytes(16), bytes(12), b"", bytes(16))
    assert out.hex() == "0388dace60b6a392f328c2b971b2fe78" "ab6e47d42cec13bdf53a67b21257bddf"
    assert pr.aead_decrypt(BulkCipher.AES_128_GCM, bytes(16), bytes(12), b"", out) == bytes(16)
    # RFC 8439 2.8.2.
    key = bytes(range(0x80, 0xA0))
    nonce = bytes.fromhex("070000004041424344454647")
    aad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    text = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
            b"the future, sunscreen would be it.")
    out = pr.aead_encrypt(BulkCipher.CHACHA20_POLY1305, key, nonce, aad, text)
    assert out[:16].hex() == "d31a8d34648e60db7b86afbc53ef7ec2"
    assert out[-16:].hex() == "1ae10b594f09e26a7e902ecbd0600691"
    assert pr.aead_decrypt(BulkCipher.CHACHA20_POLY1305, key, nonce, aad, out) == text
    bad = bytearray(out)
    bad[0] ^= 1
    assert pr.aead_decrypt(BulkCipher.CHACHA20_POLY1305, key, nonce, aad, bad) is None
    assert pr.aead_decrypt(BulkCipher.AES_256_GCM, bytes(32), bytes(12), b"", bytes(16)) is None
    for short in (b"", out[:15]):  # cannot even hold the tag: a caller bug, as in the C backend
        with pytest.raises(ValueError):
            pr.aead_decrypt(BulkCipher.CHACHA20_POLY1305, key, nonce, aad, short)


def test_ccm_primitives() -> None:
    # 12-byte nonces only (RFC 6655): checked against the AES-ECB oracle above.
    key, nonce, aad = bytes(range(16)), bytes(range(12)), b"hdr"
    for cipher, tag_len in CCM_TAG.items():
        k = bytes(range(16 if "128" in cipher.name else 32))
        out = pr.aead_encrypt(cipher, k, nonce, aad, b"some data")
        assert out == ccm_from_aes(k, nonce, aad, b"some data", tag_len)
        assert pr.aead_decrypt(cipher, k, nonce, aad, out) == b"some data"
        assert pr.aead_decrypt(cipher, k, nonce, b"other", out) is None
        assert pr.aead_decrypt(cipher, k, nonce, aad, bytes(tag_len)) is None  # empty, bad tag
        with pytest.raises(ValueError):
            pr.aead_decrypt(cipher, k, nonce, aad, bytes(tag_len - 1))
        with pytest.raises(ValueError):
            pr.aead_encrypt(cipher, k, bytes(13), aad, b"")  # valid CCM, but not TLS's nonce
    assert pr.aead_encrypt(BulkCipher.AES_128_CCM_8, key, nonce, b"", b"") == \
        ccm_from_aes(key, nonce, b"", b"", 8)


def test_aead_primitive_errors() -> None:
    for cipher in (BulkCipher.NULL, BulkCipher.AES_128_CBC):
        with pytest.raises(ValueError):
            pr.aead_encrypt(cipher, bytes(16), bytes(12), b"", b"")
    with pytest.raises(ValueError):
        pr.aead_encrypt(BulkCipher.AES_128_GCM, bytes(32), bytes(12), b"", b"")
    with pytest.raises(ValueError):
        pr.aead_decrypt(BulkCipher.CHACHA20_POLY1305, bytes(16), bytes(12), b"", bytes(16))
    for n in (8, 11, 13, 16):
        with pytest.raises(ValueError):
            pr.aead_encrypt(BulkCipher.AES_256_GCM, bytes(32), bytes(n), b"", b"")
        with pytest.raises(ValueError):
            pr.aead_decrypt(BulkCipher.AES_128_GCM, bytes(16), bytes(n), b"", bytes(16))


def test_cbc_primitives() -> None:
    # NIST SP 800-38A F.2.1 / F.2.2 (first block).
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    iv = bytes(range(16))
    pt = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    ct = pr.cbc_encrypt(key, iv, pt)
    assert ct.hex() == "7649abac8119b246cee98e9b12e9197d"
    assert pr.cbc_decrypt(key, iv, ct) == pt
    assert pr.cbc_encrypt(key, iv, b"") == b""
    data = bytes(range(64))
    assert pr.cbc_decrypt(bytes(32), iv, pr.cbc_encrypt(bytes(32), iv, data)) == data
    for args in ((key, iv, bytes(15)), (key, iv, bytes(17)), (bytes(24), iv, bytes(16)),
                 (key, bytes(8), bytes(16))):
        with pytest.raises(ValueError):
            pr.cbc_encrypt(*args)
        with pytest.raises(ValueError):
            pr.cbc_decrypt(*args)


def test_hmac_primitive() -> None:
    # RFC 2202 / RFC 4231 test case 1.
    key, data = b"\x0b" * 20, b"Hi There"
    assert pr.hmac(MacAlgorithm.SHA1, key, data).hex() == "b617318655057264e28bc0b6fb378c8ef146be00"
    assert pr.hmac(MacAlgorithm.SHA256, key, data).hex() == \
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    assert pr.hmac(MacAlgorithm.SHA384, key, data).hex() == (
        "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec6"
        "82aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6")
    with pytest.raises(ValueError):
        pr.hmac(MacAlgorithm.NONE, key, data)


def test_backend_name() -> None:
    assert pr.BACKEND == "python"
