"""Tests of csrc/sha.c (our own HMAC and the constant-time CBC MAC-then-encrypt check),
called directly through dtls._record.lib.

* dtls_hmac_init / dtls_hmac2 against Python's hmac module and Project Wycheproof.
* dtls_hmac_ct (secret body length) against hmac, randomly and exhaustively over windows.
* dtls_mte_verify: valid records for every padding length, every single-byte corruption of
  padding and MAC, data and header corruptions, padding longer than the record, and bad
  padding whose "as if n were 0" reading has a correct MAC (must still fail).

Every input goes to C in an exact-size buffer (and every output buffer is exactly the MAC
length), so a run under AddressSanitizer (CI preloads it) reports any over-read or
over-write.  Whether the code is constant-time is checked separately: tests/ct/.

The seeds are fixed, so a failure reproduces.  Skips when the C layer is not built, except
under DTLS_REQUIRE_C=1 (CI), where that is a failure.
"""

from __future__ import annotations

import hmac
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

_REBUILD = "run `python setup.py build_ext --inplace`"
try:
    from dtls import _record

    if not hasattr(_record.lib, "dtls_mte_verify"):
        raise ImportError("dtls._record was built before the sha.c declarations were added")
except ImportError as exc:
    if os.environ.get("DTLS_REQUIRE_C") == "1":
        raise ImportError(f"DTLS_REQUIRE_C=1 but dtls._record with the sha.c API is not "
                          f"available ({exc}); {_REBUILD}") from exc
    pytest.skip(f"C record layer dtls._record not available ({exc}); {_REBUILD}",
                allow_module_level=True)

ffi: Any = _record.ffi
lib: Any = _record.lib

# conftest.WYCHEPROOF, recomputed: `from conftest import ...` depends on how pytest set sys.path.
WYCHEPROOF = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "wycheproof"

# DTLS_MAC_* id -> (hashlib name, MAC length, block length)
ALGS = {1: ("sha1", 20, 64), 2: ("sha256", 32, 64), 3: ("sha384", 48, 128)}
ALG_PARAMS = [pytest.param(a, id=v[0]) for a, v in ALGS.items()]
# Data lengths beyond 0..100 for the MtE tests (up to the 2^14 maximum plaintext).
BIG = [101, 255, 256, 511, 1000, 1200, 4095, 4096, 8191, 16383, 16384]


# ---------- helpers ----------

def cbuf(b: bytes) -> Any:
    """Exact-size C copy of b (NULL if empty), so ASan catches any over-read."""
    if not b:
        return ffi.NULL
    p = ffi.new("uint8_t[]", len(b))
    ffi.memmove(p, b, len(b))
    return p


def mkkey(alg: int, key: bytes) -> Any:
    k = ffi.new("dtls_hmac_key *")
    assert lib.dtls_hmac_init(k, alg, cbuf(key), len(key)) == 0
    return k


def c_hmac2(k: Any, a: bytes, b: bytes) -> bytes:
    out = ffi.new("uint8_t[]", k.out_len)   # exact size: an over-write is visible too
    lib.dtls_hmac2(k, cbuf(a), len(a), cbuf(b), len(b), out)
    return bytes(out)


def c_hmac_ct(k: Any, head: bytes, body: bytes, body_len: int, mn: int, mx: int) -> bytes:
    """dtls_hmac_ct with body exactly max_body_len = len(body) long."""
    assert len(body) == mx
    out = ffi.new("uint8_t[]", k.out_len)
    lib.dtls_hmac_ct(k, cbuf(head), len(head), cbuf(body), body_len, mn, mx, out)
    return bytes(out)


def verify(k: Any, hdr: bytes, pt: bytes) -> tuple[int, bytes]:
    """dtls_mte_verify on exact-size copies; returns (result, header as left by the call)."""
    h = ffi.new("uint8_t[13]", list(hdr))
    r = lib.dtls_mte_verify(k, h, cbuf(pt), len(pt))
    return r, bytes(h)


def make_record(key: bytes, hn: str, hdr11: bytes, data: bytes, n: int) -> bytes:
    """data || HMAC(hdr11 || len(data) || data) || (n+1) bytes of n."""
    mac = hmac.new(key, hdr11 + len(data).to_bytes(2, "big") + data, hn).digest()
    return data + mac + bytes([n]) * (n + 1)


def flip(rng: random.Random, b: bytes, i: int) -> bytes:
    c = bytearray(b)
    c[i] ^= rng.randint(1, 255)
    return bytes(c)


def min_record_len(ml: int) -> int:
    """Smallest valid record: MAC + 1 padding byte, rounded up to the AES block."""
    return 16 * ((ml + 1 + 15) // 16)


# ---------- dtls_hmac_init / dtls_hmac2 ----------

def test_mac_max_len() -> None:
    assert lib.DTLS_MAC_MAX_LEN == 48 == max(ml for _, ml, _ in ALGS.values())


@pytest.mark.parametrize("alg", [0, 4, -1, 99])
def test_hmac_init_rejects_unknown_alg(alg: int) -> None:
    k = ffi.new("dtls_hmac_key *")
    assert lib.dtls_hmac_init(k, alg, ffi.NULL, 0) == -1


@pytest.mark.parametrize("alg", ALG_PARAMS)
def test_hmac2(alg: int) -> None:
    """Keys shorter than, equal to and longer than the block; messages 0..300 bytes split
    at a random point between the two parts (either part may be empty / NULL)."""
    hn, ml, bl = ALGS[alg]
    rng = random.Random(100 + alg)
    for kl in (0, 1, 20, 64, 65, 128, 129, 200):
        key = rng.randbytes(kl)
        k = mkkey(alg, key)
        assert (k.alg, k.block_len, k.out_len) == (alg, bl, ml)
        for dl in range(301):
            data = rng.randbytes(dl)
            cut = rng.randint(0, dl)
            assert c_hmac2(k, data[:cut], data[cut:]) == hmac.new(key, data, hn).digest(), \
                (kl, dl, cut)


@pytest.mark.parametrize("alg,fn", [
    pytest.param(1, "hmac_sha1_test.json", id="sha1"),
    pytest.param(2, "hmac_sha256_test.json", id="sha256"),
    pytest.param(3, "hmac_sha384_test.json", id="sha384"),
])
def test_hmac2_wycheproof(alg: int, fn: str) -> None:
    """Wycheproof HMAC vectors (truncated tags compare the prefix); invalid tags must differ."""
    path = WYCHEPROOF / fn
    if not path.is_file():
        pytest.skip(f"Wycheproof vectors not found: {path}")
    doc = json.loads(path.read_text())
    n = 0
    for g in doc["testGroups"]:
        tbytes = g["tagSize"] // 8
        for t in g["tests"]:
            key, msg, tag = (bytes.fromhex(t[x]) for x in ("key", "msg", "tag"))
            got = c_hmac2(mkkey(alg, key), msg, b"")[:tbytes]
            if t["result"] == "invalid":
                assert got != tag, (fn, t["tcId"])
            else:
                assert got == tag, (fn, t["tcId"])
            n += 1
    assert n == doc["numberOfTests"] > 0


# ---------- dtls_hmac_ct ----------

@pytest.mark.parametrize("alg", ALG_PARAMS)
def test_hmac_ct_random(alg: int) -> None:
    hn, _, _ = ALGS[alg]
    rng = random.Random(200 + alg)
    key = rng.randbytes(32)
    k = mkkey(alg, key)
    for _ in range(1500):
        hl = rng.choice([0, 1, 13, 13, 55, 64, 127, 128, 200])
        mx = rng.randint(0, 700)
        mn = rng.randint(0, mx)
        L = rng.randint(mn, mx)
        head, body = rng.randbytes(hl), rng.randbytes(mx)
        assert c_hmac_ct(k, head, body, L, mn, mx) == hmac.new(key, head + body[:L], hn).digest(), \
            (hl, mn, mx, L)


@pytest.mark.parametrize("alg", ALG_PARAMS)
@pytest.mark.parametrize("hl,mn,mx", [(13, 0, 300), (13, 100, 400), (0, 0, 260)])
def test_hmac_ct_every_length(alg: int, hl: int, mn: int, mx: int) -> None:
    hn, _, _ = ALGS[alg]
    rng = random.Random(300 + alg * 10 + mn)
    key = rng.randbytes(32)
    k = mkkey(alg, key)
    head, body = rng.randbytes(hl), rng.randbytes(mx)
    for L in range(mn, mx + 1):
        assert c_hmac_ct(k, head, body, L, mn, mx) == hmac.new(key, head + body[:L], hn).digest(), L


@pytest.mark.parametrize("alg", ALG_PARAMS)
def test_hmac_ct_out_of_range(alg: int) -> None:
    """A body length outside [min, max] may give a wrong MAC but must stay in bounds
    (this test means most under ASan); min > max is clamped to max."""
    hn, _, _ = ALGS[alg]
    rng = random.Random(400 + alg)
    key = rng.randbytes(32)
    k = mkkey(alg, key)
    for hl, mn, mx in ((13, 100, 300), (0, 0, 0), (13, 0, 64), (200, 250, 260)):
        head, body = rng.randbytes(hl), rng.randbytes(mx)
        for L in {0, mn - 1 if mn else 0, mx + 1, mx + 200, 2**32, 2**63, 2**64 - 1}:
            c_hmac_ct(k, head, body, L, mn, mx)
        # min > max: treated as min == max, so only L == max is in range
        assert c_hmac_ct(k, head, body, mx, mx + 50, mx) == hmac.new(key, head + body, hn).digest()
        c_hmac_ct(k, head, body, 0, mx + 50, mx)


# ---------- dtls_mte_verify ----------

@pytest.mark.parametrize("alg", ALG_PARAMS)
def test_mte_bad_shape(alg: int) -> None:
    """Public checks: length 0, not a multiple of 16, too short for MAC + 1, over 65535."""
    _, ml, _ = ALGS[alg]
    k = mkkey(alg, bytes(ml))
    minlen = min_record_len(ml)
    for badlen in (0, 1, 15, 17, minlen - 16, minlen + 1, minlen + 15, 65536, 65536 + 16):
        assert verify(k, bytes(13), bytes(badlen))[0] == -1, badlen


@pytest.mark.parametrize("alg", ALG_PARAMS)
@pytest.mark.parametrize("lengths", ["0-100", "big"])
def test_mte_valid_and_corrupted(alg: int, lengths: str) -> None:
    """Every data length 0..100 with every padding length that fits (and four padding
    lengths for each BIG data length): the record verifies and the header's last two bytes
    are overwritten with the data length; every single-byte change of padding or MAC (the
    first MAC + 8 bytes for the middle padding lengths of BIG), a sample of data changes and
    every header change (bytes 0..10) make it fail."""
    hn, ml, _ = ALGS[alg]
    rng = random.Random(500 + alg * 10 + (lengths == "big"))
    key = rng.randbytes(ml)
    k = mkkey(alg, key)
    hdr11 = rng.randbytes(11)
    hdr_in = hdr11 + b"\xee\xee"   # the last two bytes must be overwritten
    for dl in (range(101) if lengths == "0-100" else BIG):
        data = rng.randbytes(dl)
        ns = [n for n in range(256) if (dl + ml + n + 1) % 16 == 0]
        if dl > 100:
            ns = [ns[0], ns[1], ns[len(ns) // 2], ns[-1]]
        for n in ns:
            pt = make_record(key, hn, hdr11, data, n)
            r, hout = verify(k, hdr_in, pt)
            assert r == dl, (dl, n, r)
            assert hout == hdr11 + dl.to_bytes(2, "big"), (dl, n)
            full = dl <= 100 or n in (ns[0], ns[-1])
            for i in range(dl, len(pt)):
                if not full and i >= dl + ml + 8:
                    break
                assert verify(k, hdr_in, flip(rng, pt, i))[0] == -1, (dl, n, i)
            for i in rng.sample(range(dl), min(dl, 8 if full else 2)):
                assert verify(k, hdr_in, flip(rng, pt, i))[0] == -1, (dl, n, i)
            if full:
                for i in range(11):   # 11..12 are written by the function
                    assert verify(k, flip(rng, hdr_in, i), pt)[0] == -1, (dl, n, i)


@pytest.mark.parametrize("alg", ALG_PARAMS)
def test_mte_padding_longer_than_record(alg: int) -> None:
    """The last min(v+1, len) bytes all equal v, but v + 1 + MAC does not fit in len."""
    _, ml, _ = ALGS[alg]
    rng = random.Random(600 + alg)
    k = mkkey(alg, rng.randbytes(ml))
    hdr_in = rng.randbytes(11) + b"\xee\xee"
    for dl in range(101):
        data = rng.randbytes(dl)
        for total in sorted({min_record_len(ml), 16 * ((dl + ml + 1 + 15) // 16)}):
            for v in range(total - ml, 256):
                npad = min(v + 1, total)
                pt = data[: total - npad].ljust(total - npad, b"\0") + bytes([v]) * npad
                assert len(pt) == total
                assert verify(k, hdr_in, pt)[0] == -1, (dl, v, total)


@pytest.mark.parametrize("alg", ALG_PARAMS)
def test_mte_bad_padding_with_good_mac_at_n0(alg: int) -> None:
    """data || MAC || last with last != 0: read as n = 0 (what bad padding falls back to)
    the MAC is right, yet the record must fail; with last = 0 the same record is valid."""
    hn, ml, _ = ALGS[alg]
    rng = random.Random(700 + alg)
    key = rng.randbytes(ml)
    k = mkkey(alg, key)
    hdr11 = rng.randbytes(11)
    hdr_in = hdr11 + b"\xee\xee"
    for dl in list(range(101)) + BIG:
        body = rng.randbytes(dl)
        for last in rng.sample(range(1, 256), 6):
            # extend the data so that data || MAC || last is a multiple of 16
            d2 = body + rng.randbytes((16 - (dl + ml + 1) % 16) % 16)
            mac = hmac.new(key, hdr11 + len(d2).to_bytes(2, "big") + d2, hn).digest()
            pt = d2 + mac + bytes([last])
            assert len(pt) % 16 == 0
            # 'last' could only form good padding by chance, and then the MAC is wrong
            assert verify(k, hdr_in, pt)[0] == -1, (dl, last)
            assert verify(k, hdr_in, d2 + mac + b"\0")[0] == len(d2), (dl, last)
