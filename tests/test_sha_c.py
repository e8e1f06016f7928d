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

Every check runs on both compression implementations (csrc/sha.c picks one per key): the
portable C code, forced through dtls_hmac_init_impl(..., force_portable=1), and the SHA
extensions (SHA-NI) for SHA-1 and SHA-256, which dtls_hmac_init picks on CPUs that have them.
The SHA-NI variants are skipped, with the reason, on other CPUs and builds; SHA-384 is always
portable.  If /proc/cpuinfo lists sha_ni but the C code does not pick it, that is a failure.

The seeds are fixed, so a failure reproduces.  Skips when the C layer is not built, except
under DTLS_REQUIRE_C=1 (CI), where that is a failure.
"""

from __future__ import annotations

import hmac
import json
import os
import platform
import random
from pathlib import Path
from typing import Any

import pytest

_REBUILD = "run `python setup.py build_ext --inplace`"
try:
    from dtls import _record

    if not hasattr(_record.lib, "dtls_hmac_init_impl"):
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

# DTLS_SHA_* (csrc/sha.h; test_impl_constants checks they still match)
PORTABLE, SHA_NI = 0, 1
IMPL_NAMES = {PORTABLE: "portable", SHA_NI: "shani"}


def _c_picks_sha_ni() -> bool:
    """Whether dtls_hmac_init_impl (not forced) chooses SHA-NI here, for SHA-1 and SHA-256."""
    k = ffi.new("dtls_hmac_key *")
    picks = {lib.dtls_hmac_init_impl(k, alg, ffi.NULL, 0, 0) for alg in (1, 2)}
    assert picks <= {PORTABLE, SHA_NI} and len(picks) == 1, picks
    return picks == {SHA_NI}


def _cpuinfo_has_sha_ni() -> bool | None:
    """The kernel's view: True/False on x86 Linux, None if unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines()
                  if ln.startswith("flags")), None)
    if flags is None:
        return None
    return {"sha_ni", "ssse3", "sse4_1"} <= set(flags)


HAVE_SHA_NI = _c_picks_sha_ni()
_NO_SHA_NI = pytest.mark.skipif(
    not HAVE_SHA_NI, reason="SHA-NI path not testable: CPU lacks the SHA extensions "
                            "(or not an x86-64 GCC/clang build); the portable path is tested")

# (alg, impl) pairs: SHA-1 and SHA-256 on both implementations, SHA-384 portable only.
ALG_PARAMS = [
    pytest.param(a, i, id=f"{v[0]}-{IMPL_NAMES[i]}", marks=[_NO_SHA_NI] if i == SHA_NI else [])
    for a, v in ALGS.items() for i in ((PORTABLE, SHA_NI) if a != 3 else (PORTABLE,))
]
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


def mkkey(alg: int, key: bytes, impl: int) -> Any:
    """Key state using implementation impl (PORTABLE is forced, SHA_NI is what the
    unforced init must pick); fails if the key would end up on the other one."""
    k = ffi.new("dtls_hmac_key *")
    assert lib.dtls_hmac_init_impl(k, alg, cbuf(key), len(key), int(impl == PORTABLE)) == impl
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


# ---------- implementation choice ----------

def test_impl_constants() -> None:
    text = (Path(__file__).resolve().parents[1] / "csrc" / "sha.h").read_text()
    assert f"#define DTLS_SHA_PORTABLE {PORTABLE}" in text
    assert f"#define DTLS_SHA_NI       {SHA_NI}" in text


def test_impl_matches_cpu() -> None:
    """The C code must pick SHA-NI wherever the kernel reports sha_ni (on x86-64 builds),
    else a broken CPU check would silently turn the SHA-NI tests into skips."""
    cpu = _cpuinfo_has_sha_ni()
    if cpu is None or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("not x86-64 Linux: no /proc/cpuinfo flags to compare with")
    assert HAVE_SHA_NI == cpu


@pytest.mark.parametrize("alg", [1, 2, 3])
def test_impl_selection(alg: int) -> None:
    """Forced portable always gives portable; unforced gives SHA-NI for SHA-1/SHA-256 when
    available, portable for SHA-384; dtls_hmac_init returns 0 and matches the unforced key."""
    key, msg = b"k" * 40, bytes(range(200))
    k = ffi.new("dtls_hmac_key *")
    assert lib.dtls_hmac_init_impl(k, alg, cbuf(key), len(key), 1) == PORTABLE
    assert lib.dtls_hmac_init_impl(k, alg, cbuf(key), len(key), 7) == PORTABLE
    want = SHA_NI if HAVE_SHA_NI and alg != 3 else PORTABLE
    k2 = ffi.new("dtls_hmac_key *")
    assert lib.dtls_hmac_init_impl(k2, alg, cbuf(key), len(key), 0) == want
    k3 = ffi.new("dtls_hmac_key *")
    assert lib.dtls_hmac_init(k3, alg, cbuf(key), len(key)) == 0
    assert bytes(ffi.buffer(k3)) == bytes(ffi.buffer(k2))   # same states and impl
    assert c_hmac2(k, msg, b"") == c_hmac2(k2, msg, b"") == c_hmac2(k3, msg, b"")


# ---------- dtls_hmac_init / dtls_hmac2 ----------

def test_mac_max_len() -> None:
    assert lib.DTLS_MAC_MAX_LEN == 48 == max(ml for _, ml, _ in ALGS.values())


@pytest.mark.parametrize("alg", [0, 4, -1, 99])
def test_hmac_init_rejects_unknown_alg(alg: int) -> None:
    k = ffi.new("dtls_hmac_key *")
    assert lib.dtls_hmac_init(k, alg, ffi.NULL, 0) == -1
    for force in (0, 1):
        assert lib.dtls_hmac_init_impl(k, alg, ffi.NULL, 0, force) == -1


@pytest.mark.parametrize("alg,impl", ALG_PARAMS)
def test_hmac2(alg: int, impl: int) -> None:
    """Keys shorter than, equal to and longer than the block; messages 0..300 bytes split
    at a random point between the two parts (either part may be empty / NULL)."""
    hn, ml, bl = ALGS[alg]
    rng = random.Random(100 + alg)
    for kl in (0, 1, 20, 64, 65, 128, 129, 200):
        key = rng.randbytes(kl)
        k = mkkey(alg, key, impl)
        assert (k.alg, k.block_len, k.out_len) == (alg, bl, ml)
        for dl in range(301):
            data = rng.randbytes(dl)
            cut = rng.randint(0, dl)
            assert c_hmac2(k, data[:cut], data[cut:]) == hmac.new(key, data, hn).digest(), \
                (kl, dl, cut)


@pytest.mark.parametrize("alg,impl", ALG_PARAMS)
def test_hmac2_long(alg: int, impl: int) -> None:
    """Long messages (up to 320 blocks compressed in one call, the state carried across
    them), at every offset within a block and split between the two parts."""
    hn, _, bl = ALGS[alg]
    rng = random.Random(150 + alg)
    key = rng.randbytes(32)
    k = mkkey(alg, key, impl)
    data = rng.randbytes(20480 + 2 * bl)
    for dl in [16384, 16384 + 13, 20480 + 2 * bl] + [rng.randint(300, 20480) for _ in range(40)]:
        cut = rng.choice([0, 13, dl, rng.randint(0, dl)])
        assert c_hmac2(k, data[:cut], data[cut:dl]) == hmac.new(key, data[:dl], hn).digest(), \
            (dl, cut)


@pytest.mark.parametrize("alg,impl", ALG_PARAMS)
def test_hmac2_wycheproof(alg: int, impl: int) -> None:
    """Wycheproof HMAC vectors (truncated tags compare the prefix); invalid tags must differ."""
    fn = f"hmac_{ALGS[alg][0]}_test.json"
    path = WYCHEPROOF / fn
    if not path.is_file():
        pytest.skip(f"Wycheproof vectors not found: {path}")
    doc = json.loads(path.read_text())
    n = 0
    for g in doc["testGroups"]:
        tbytes = g["tagSize"] // 8
        for t in g["tests"]:
            key, msg, tag = (bytes.fromhex(t[x]) for x in ("key", "msg", "tag"))
            got = c_hmac2(mkkey(alg, key, impl), msg, b"")[:tbytes]
            if t["result"] == "invalid":
                assert got != tag, (fn, t["tcId"])
            else:
                assert got == tag, (fn, t["tcId"])
            n += 1
    assert n == doc["numberOfTests"] > 0


# ---------- dtls_hmac_ct ----------

@pytest.mark.parametrize("alg,impl", ALG_PARAMS)
def test_hmac_ct_random(alg: int, impl: int) -> None:
    hn, _, _ = ALGS[alg]
    rng = random.Random(200 + alg)
    key = rng.randbytes(32)
    k = mkkey(alg, key, impl)
    for _ in range(1500):
        hl = rng.choice([0, 1, 13, 13, 55, 64, 127, 128, 200])
        mx = rng.randint(0, 700)
        mn = rng.randint(0, mx)
        L = rng.randint(mn, mx)
        head, body = rng.randbytes(hl), rng.randbytes(mx)
        assert c_hmac_ct(k, head, body, L, mn, mx) == hmac.new(key, head + body[:L], hn).digest(), \
            (hl, mn, mx, L)


@pytest.mark.parametrize("alg,impl", ALG_PARAMS)
@pytest.mark.parametrize("hl,mn,mx", [(13, 0, 300), (13, 100, 400), (0, 0, 260)])
def test_hmac_ct_every_length(alg: int, impl: int, hl: int, mn: int, mx: int) -> None:
    hn, _, _ = ALGS[alg]
    rng = random.Random(300 + alg * 10 + mn)
    key = rng.randbytes(32)
    k = mkkey(alg, key, impl)
    head, body = rng.randbytes(hl), rng.randbytes(mx)
    for L in range(mn, mx + 1):
        assert c_hmac_ct(k, head, body, L, mn, mx) == hmac.new(key, head + body[:L], hn).digest(), L


@pytest.mark.parametrize("alg,impl", ALG_PARAMS)
def test_hmac_ct_long(alg: int, impl: int) -> None:
    """Record-sized bodies: most blocks are pure data for every allowed length (hashed in
    place, in one call), the last ~256 bytes are masked."""
    hn, _, _ = ALGS[alg]
    rng = random.Random(250 + alg)
    key = rng.randbytes(32)
    k = mkkey(alg, key, impl)
    for hl, mn, mx in ((13, 16384 - 256, 16384), (13, 4000, 4500), (0, 9000, 9100),
                       (130, 1000, 1300)):
        head, body = rng.randbytes(hl), rng.randbytes(mx)
        for L in {mn, mx, *rng.sample(range(mn, mx + 1), 12)}:
            assert c_hmac_ct(k, head, body, L, mn, mx) == \
                hmac.new(key, head + body[:L], hn).digest(), (hl, mn, mx, L)


@pytest.mark.parametrize("alg,impl", ALG_PARAMS)
def test_hmac_ct_out_of_range(alg: int, impl: int) -> None:
    """A body length outside [min, max] may give a wrong MAC but must stay in bounds
    (this test means most under ASan); min > max is clamped to max."""
    hn, _, _ = ALGS[alg]
    rng = random.Random(400 + alg)
    key = rng.randbytes(32)
    k = mkkey(alg, key, impl)
    for hl, mn, mx in ((13, 100, 300), (0, 0, 0), (13, 0, 64), (200, 250, 260)):
        head, body = rng.randbytes(hl), rng.randbytes(mx)
        for L in {0, mn - 1 if mn else 0, mx + 1, mx + 200, 2**32, 2**63, 2**64 - 1}:
            c_hmac_ct(k, head, body, L, mn, mx)
        # min > max: treated as min == max, so only L == max is in range
        assert c_hmac_ct(k, head, body, mx, mx + 50, mx) == hmac.new(key, head + body, hn).digest()
        c_hmac_ct(k, head, body, 0, mx + 50, mx)


# ---------- dtls_mte_verify ----------

@pytest.mark.parametrize("alg,impl", ALG_PARAMS)
def test_mte_bad_shape(alg: int, impl: int) -> None:
    """Public checks: length 0, not a multiple of 16, too short for MAC + 1, over 65535."""
    _, ml, _ = ALGS[alg]
    k = mkkey(alg, bytes(ml), impl)
    minlen = min_record_len(ml)
    for badlen in (0, 1, 15, 17, minlen - 16, minlen + 1, minlen + 15, 65536, 65536 + 16):
        assert verify(k, bytes(13), bytes(badlen))[0] == -1, badlen


@pytest.mark.parametrize("alg,impl", ALG_PARAMS)
@pytest.mark.parametrize("lengths", ["0-100", "big"])
def test_mte_valid_and_corrupted(alg: int, impl: int, lengths: str) -> None:
    """Every data length 0..100 with every padding length that fits (and four padding
    lengths for each BIG data length): the record verifies and the header's last two bytes
    are overwritten with the data length; every single-byte change of padding or MAC (the
    first MAC + 8 bytes for the middle padding lengths of BIG), a sample of data changes and
    every header change (bytes 0..10) make it fail."""
    hn, ml, _ = ALGS[alg]
    rng = random.Random(500 + alg * 10 + (lengths == "big"))
    key = rng.randbytes(ml)
    k = mkkey(alg, key, impl)
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


@pytest.mark.parametrize("alg,impl", ALG_PARAMS)
def test_mte_padding_longer_than_record(alg: int, impl: int) -> None:
    """The last min(v+1, len) bytes all equal v, but v + 1 + MAC does not fit in len."""
    _, ml, _ = ALGS[alg]
    rng = random.Random(600 + alg)
    k = mkkey(alg, rng.randbytes(ml), impl)
    hdr_in = rng.randbytes(11) + b"\xee\xee"
    for dl in range(101):
        data = rng.randbytes(dl)
        for total in sorted({min_record_len(ml), 16 * ((dl + ml + 1 + 15) // 16)}):
            for v in range(total - ml, 256):
                npad = min(v + 1, total)
                pt = data[: total - npad].ljust(total - npad, b"\0") + bytes([v]) * npad
                assert len(pt) == total
                assert verify(k, hdr_in, pt)[0] == -1, (dl, v, total)


@pytest.mark.parametrize("alg,impl", ALG_PARAMS)
def test_mte_bad_padding_with_good_mac_at_n0(alg: int, impl: int) -> None:
    """data || MAC || last with last != 0: read as n = 0 (what bad padding falls back to)
    the MAC is right, yet the record must fail; with last = 0 the same record is valid."""
    hn, ml, _ = ALGS[alg]
    rng = random.Random(700 + alg)
    key = rng.randbytes(ml)
    k = mkkey(alg, key, impl)
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
