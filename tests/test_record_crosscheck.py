"""C record layer vs the pure-Python twin: byte-identical records, identical verdicts.

The twin is the oracle: on random keys, payloads (0..16384 bytes), epochs and sequence
numbers both backends must seal the same bytes, open each other's records, and return the
same OpenResult for every single-bit flip, for garbage and for mixed datagrams.  States
are driven in lockstep, so any divergence in replay-window state shows up as well.
"""

from __future__ import annotations

import os
import random
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtls import _pyrecord
from dtls.protection import BulkCipher, MacAlgorithm, Protection
from dtls.recordbase import DTLS1_0, DTLS1_2, MAX_SEQ, OpenStatus

ALL_PROTECTIONS = [Protection(BulkCipher.NULL)] + [
    Protection(c) for c in (BulkCipher.AES_128_GCM, BulkCipher.AES_256_GCM,
                            BulkCipher.CHACHA20_POLY1305,
                            BulkCipher.AES_128_CCM, BulkCipher.AES_128_CCM_8,
                            BulkCipher.AES_256_CCM, BulkCipher.AES_256_CCM_8)
] + [
    Protection(c, m, etm)
    for c in (BulkCipher.AES_128_CBC, BulkCipher.AES_256_CBC)
    for m in (MacAlgorithm.SHA1, MacAlgorithm.SHA256, MacAlgorithm.SHA384)
    for etm in (False, True)
]
IDS = [f"{p.cipher.name}-{p.mac.name}{'-etm' if p.encrypt_then_mac else ''}"
       for p in ALL_PROTECTIONS]


def keys_for(prot: Protection, rnd: random.Random) -> dict[str, bytes | None]:
    def rb(n: int) -> bytes:
        return bytes(rnd.getrandbits(8) for _ in range(n))
    return {
        "key": rb(prot.key_length),
        "fixed_iv": rb(prot.fixed_iv_length),
        "mac_key": rb(prot.mac_length),
        "iv_key": rb(prot.key_length) if prot.is_cbc else None,
    }


def pair(c: ModuleType, prot: Protection, keys: dict[str, bytes | None], *, epoch: int = 1,
         version: int = DTLS1_2, window: int = 64) -> tuple[Any, Any]:
    """(C state, Python state) with the same keys."""
    args = dict(epoch=epoch, version=version, window=window, **keys)
    return c.CipherState(prot, **args), _pyrecord.CipherState(prot, **args)


def same(a: object, b: object) -> None:
    """Two OpenResults agree field by field (payload compared as bytes)."""
    ra, rb = a, b
    assert (ra.status, ra.content_type, ra.epoch, ra.seq) == (  # type: ignore[attr-defined]
        rb.status, rb.content_type, rb.epoch, rb.seq)  # type: ignore[attr-defined]
    assert bytes(ra.payload) == bytes(rb.payload)  # type: ignore[attr-defined]


payload_sizes = st.one_of(st.integers(0, 64), st.integers(0, 16384),
                          st.sampled_from([15, 16, 17, 1200, 16383, 16384]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prot=st.sampled_from(ALL_PROTECTIONS), seed=st.integers(0, 2**32 - 1),
       size=payload_sizes, epoch=st.integers(0, 0xFFFF), seq=st.integers(0, MAX_SEQ),
       content_type=st.integers(0, 255), version=st.sampled_from([DTLS1_0, DTLS1_2]))
def test_seal_identical_and_cross_open(c_mod: ModuleType, prot: Protection, seed: int, size: int, epoch: int,
                                       seq: int, content_type: int, version: int) -> None:
    rnd = random.Random(seed)
    keys = keys_for(prot, rnd)
    payload = rnd.randbytes(size)
    sc, sp = pair(c_mod, prot, keys, epoch=epoch, version=version)
    sc.next_seq = sp.next_seq = seq
    rc, rp = sc.seal(content_type, payload), sp.seal(content_type, payload)
    assert rc == rp
    assert len(rc) == prot.record_length(size)
    assert sc.next_seq == sp.next_seq == seq + 1
    oc, op = pair(c_mod, prot, keys, epoch=epoch, version=version)
    a, b = oc.open(rp), op.open(rc)
    same(a, b)
    assert a.status == OpenStatus.OK and bytes(a.payload) == payload
    assert (a.content_type, a.epoch, a.seq) == (content_type, epoch, seq)
    same(oc.open(rp), op.open(rc))  # and both call it a replay
    assert oc.highest_seq == op.highest_seq == seq


@pytest.mark.parametrize("prot", ALL_PROTECTIONS, ids=IDS)
def test_every_bit_flip_same_verdict(c_mod: ModuleType, prot: Protection) -> None:
    """Flip each bit of sealed records; lockstep states must agree on every result."""
    rnd = random.Random(1)
    keys = keys_for(prot, rnd)
    sc, _ = pair(c_mod, prot, keys)
    oc, op = pair(c_mod, prot, keys)
    for size in (0, 1, 31, 100):
        sc.next_seq = rnd.randrange(1 << 20)
        record = sc.seal(23, rnd.randbytes(size))
        accepted = 0
        for bit in range(len(record) * 8):
            bad = bytearray(record)
            bad[bit // 8] ^= 1 << (bit % 8)
            a, b = oc.open(bytes(bad)), op.open(bad)
            same(a, b)
            if a.status == OpenStatus.OK:
                accepted += 1
        # Every header field is authenticated (AAD / MAC input), so with protection no
        # flipped record may be accepted; NULL protection accepts flips of type/seq/body.
        if prot.cipher != BulkCipher.NULL:
            assert accepted == 0
        same(oc.open(record), op.open(record))  # the original still opens, on both


@pytest.mark.parametrize("prot", ALL_PROTECTIONS, ids=IDS)
def test_bit_flips_large_record(c_mod: ModuleType, prot: Protection) -> None:
    """A sample of flips over a 1200-byte record (all of them is 9.8k opens per backend)."""
    rnd = random.Random(2)
    keys = keys_for(prot, rnd)
    sc, _ = pair(c_mod, prot, keys)
    oc, op = pair(c_mod, prot, keys)
    record = sc.seal(23, rnd.randbytes(1200))
    for bit in rnd.sample(range(len(record) * 8), 400):
        bad = bytearray(record)
        bad[bit // 8] ^= 1 << (bit % 8)
        same(oc.open(bytes(bad)), op.open(bytes(bad)))


@settings(max_examples=300, deadline=None)
@given(prot=st.sampled_from(ALL_PROTECTIONS), data=st.binary(max_size=300),
       epoch=st.integers(0, 3))
def test_garbage_same_verdict(c_mod: ModuleType, prot: Protection, data: bytes, epoch: int) -> None:
    keys = keys_for(prot, random.Random(3))
    oc, op = pair(c_mod, prot, keys, epoch=epoch)
    same(oc.open(data), op.open(data))
    rc, rp = oc.open_batch(data), op.open_batch(data)
    assert len(rc) == len(rp)
    for a, b in zip(rc, rp):
        same(a, b)
    assert c_mod.split_records(data) == _pyrecord.split_records(data)


@st.composite
def datagrams(draw: st.DrawFn) -> tuple[Protection, int, list[tuple[str, int, int]]]:
    prot = draw(st.sampled_from(ALL_PROTECTIONS))
    seed = draw(st.integers(0, 2**32 - 1))
    # Each item: what to put in the datagram: a fresh record, a replayed one, a record of
    # another epoch, a corrupted one, or a truncated tail.
    items = draw(st.lists(st.tuples(
        st.sampled_from(["fresh", "replay", "other_epoch", "corrupt", "truncate", "dgram"]),
        st.integers(0, 1500), st.integers(0, 10**6)), max_size=12))
    return prot, seed, items


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=datagrams())
def test_open_batch_matches_twin_and_single_opens(c_mod: ModuleType, 
        case: tuple[Protection, int, list[tuple[str, int, int]]]) -> None:
    prot, seed, items = case
    rnd = random.Random(seed)
    keys = keys_for(prot, rnd)
    sender, _ = pair(c_mod, prot, keys, epoch=1)
    other, _ = pair(c_mod, prot, keys, epoch=2)
    data = bytearray()
    lengths: list[int] = []
    current = 0
    sent: list[bytes] = []
    for kind, size, jump in items:
        if kind == "dgram":  # close the current datagram
            lengths.append(current)
            current = 0
            continue
        if kind == "truncate":
            rec = sender.seal(23, rnd.randbytes(size))[: rnd.randrange(1, 14 + size)]
        elif kind == "replay" and sent:
            rec = rnd.choice(sent)
        elif kind == "other_epoch":
            rec = other.seal(22, rnd.randbytes(size))
        else:
            sender.next_seq = min(sender.next_seq + jump % 200, MAX_SEQ)
            rec = sender.seal(23, rnd.randbytes(size))
            sent.append(rec)
            if kind == "corrupt":
                b = bytearray(rec)
                b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
                rec = bytes(b)
        data += rec
        current += len(rec)
    lengths.append(current)
    oc, op = pair(c_mod, prot, keys, epoch=1)
    rc = oc.open_batch(bytes(data), lengths)
    rp = op.open_batch(data, lengths)
    assert len(rc) == len(rp)
    for a, b in zip(rc, rp):
        same(a, b)
    # The batch equals opening the split records one at a time.
    oc2, _ = pair(c_mod, prot, keys, epoch=1)
    singles = []
    pos = 0
    for n in lengths:
        dgram = bytes(data[pos:pos + n])
        pos += n
        headers, rest = _pyrecord.split_records(dgram)
        singles += [oc2.open(dgram[h.offset:h.end]) for h in headers]
        if rest:
            singles.append(None)  # the MALFORMED tail result
    assert len(singles) == len(rc)
    for a, b in zip(rc, singles):
        if b is None:
            assert a.status == OpenStatus.MALFORMED
        else:
            same(a, b)


@pytest.mark.parametrize("prot", ALL_PROTECTIONS, ids=IDS)
def test_seal_batch_identical(c_mod: ModuleType, prot: Protection) -> None:
    rnd = random.Random(4)
    keys = keys_for(prot, rnd)
    sc, sp = pair(c_mod, prot, keys)
    payloads = [rnd.randbytes(rnd.choice([0, 1, 100, 1200, 16384])) for _ in range(40)]
    bc = sc.seal_batch(23, payloads)
    bp = sp.seal_batch(23, [memoryview(p) for p in payloads])
    assert bytes(bc.buffer) == bytes(bp.buffer) and bc.lengths == bp.lengths
    # and equal to one seal per payload
    s1, _ = pair(c_mod, prot, keys)
    assert b"".join(s1.seal(23, p) for p in payloads) == bytes(bc.buffer)
    oc, _ = pair(c_mod, prot, keys)
    results = oc.open_batch(bc.buffer, bc.lengths)
    assert [bytes(r.payload) for r in results] == payloads


def test_sequence_exhaustion_both(c_mod: ModuleType) -> None:
    prot = Protection(BulkCipher.AES_128_GCM)
    keys = keys_for(prot, random.Random(5))
    for state in pair(c_mod, prot, keys):
        state.next_seq = MAX_SEQ  # type: ignore[attr-defined]
        state.seal(23, b"last")  # type: ignore[attr-defined]
        with pytest.raises(Exception) as exc:
            state.seal(23, b"one too many")  # type: ignore[attr-defined]
        assert type(exc.value).__name__ == "SequenceExhausted"


def test_random_iv_key_differs_per_state(backend: ModuleType) -> None:
    """Without an explicit iv_key each CBC state draws its own: IVs are not shared."""
    prot = Protection(BulkCipher.AES_128_CBC, MacAlgorithm.SHA1)
    key, mac_key = os.urandom(16), os.urandom(20)
    a = backend.CipherState(prot, epoch=1, key=key, mac_key=mac_key)
    b = backend.CipherState(prot, epoch=1, key=key, mac_key=mac_key)
    ra, rb = a.seal(23, b"x"), b.seal(23, b"x")
    assert ra[13:29] != rb[13:29]
    # Both decrypt under the same keys: the IV is carried in the record.
    r = backend.CipherState(prot, epoch=1, key=key, mac_key=mac_key)
    assert r.open(ra).ok
    assert r.open(rb).status == OpenStatus.REPLAY  # same seq 0


@settings(max_examples=400, deadline=None)
@given(prot=st.sampled_from(ALL_PROTECTIONS), frag=st.binary(max_size=400),
       seq=st.integers(0, MAX_SEQ), content_type=st.integers(0, 255))
def test_well_framed_garbage_same_verdict(c_mod: ModuleType, prot: Protection, frag: bytes,
                                          seq: int, content_type: int) -> None:
    """Correct header, random fragment: reaches decryption and the padding/MAC checks."""
    keys = keys_for(prot, random.Random(6))
    oc, op = pair(c_mod, prot, keys, epoch=1)
    record = (bytes([content_type]) + DTLS1_2.to_bytes(2, "big") + (1).to_bytes(2, "big")
              + seq.to_bytes(6, "big") + len(frag).to_bytes(2, "big") + frag)
    a, b = oc.open(record), op.open(record)
    same(a, b)
    if prot.cipher != BulkCipher.NULL:
        assert a.status in (OpenStatus.MALFORMED, OpenStatus.BAD_MAC)


def test_mte_forged_padding_lengths(c_mod: ModuleType) -> None:
    """MtE records whose padding is valid but MAC wrong, for every padding length.

    Built by hand with the raw CBC primitive so padding lengths other than the minimal
    one the sealer uses (up to 255) are exercised on both backends.
    """
    rnd = random.Random(7)
    for mac in (MacAlgorithm.SHA1, MacAlgorithm.SHA256, MacAlgorithm.SHA384):
        prot = Protection(BulkCipher.AES_128_CBC, mac)
        keys = keys_for(prot, rnd)
        maclen = prot.mac_length
        for pad in range(0, 256, 7):
            for good_mac in (True, False):
                data = rnd.randbytes(rnd.randrange(0, 40))
                body_len = len(data) + maclen + pad + 1
                if body_len % 16:
                    continue
                seq = rnd.randrange(1 << 30)
                hdr_mac = ((1).to_bytes(2, "big") + seq.to_bytes(6, "big") + bytes([23])
                           + DTLS1_2.to_bytes(2, "big") + len(data).to_bytes(2, "big"))
                tag = _pyrecord.hmac(mac, keys["mac_key"], hdr_mac + data)  # type: ignore[arg-type]
                if not good_mac:
                    tag = bytes([tag[0] ^ 1]) + tag[1:]
                iv = rnd.randbytes(16)
                ct = _pyrecord.cbc_encrypt(keys["key"], iv,  # type: ignore[arg-type]
                                           data + tag + bytes([pad]) * (pad + 1))
                frag = iv + ct
                record = (bytes([23]) + DTLS1_2.to_bytes(2, "big") + (1).to_bytes(2, "big")
                          + seq.to_bytes(6, "big") + len(frag).to_bytes(2, "big") + frag)
                oc, op = pair(c_mod, prot, keys)
                a, b = oc.open(record), op.open(record)
                same(a, b)
                assert a.status == (OpenStatus.OK if good_mac else OpenStatus.BAD_MAC)
                if good_mac:
                    assert bytes(a.payload) == data
