"""Key schedule tests: published known answers, then an independent implementation.

Oracles (nothing below is computed by dtls.keys itself):
- TLS 1.2 PRF: the P_SHA256 / P_SHA384 "test label" vectors posted to the IETF TLS list
  (https://www.ietf.org/mail-archive/web/tls/current/msg03416.html), as also carried by
  GnuTLS tests/tls12-prf.c, which adds further P_SHA256 vectors used here.
- TLS 1.0/1.1 PRF: the "secret"/"label"/"seed" vector from J. Davies, Implementing SSL/TLS,
  and the "PRF Testvector" (48 x 0xAB secret, 64 x 0xCD seed) one.
- master secret + key block: NIST CAVP SP 800-135 TLS KDF vectors (tls.zip; also carried
  by Bouncy Castle's TLSKDFTest) for TLS 1.0/1.1, TLS 1.2 SHA-256 and SHA-384.
- `openssl kdf ... TLS1-PRF` (OpenSSL's EVP_KDF, digest SHA256 / SHA384 / MD5-SHA1) on
  random inputs, for the PRF itself and for every construction built on it (master secret,
  EMS, key block, Finished, exporter), with the seeds assembled here from the RFC text.
- ECDHE: Wycheproof x25519_test.json; hand-built invalid NIST points.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from dtls import keys
from dtls.alerts import DecodeError, DecryptError, IllegalParameter
from dtls.keys import NamedGroup, PrfAlgorithm, SecretBytes
from dtls.protection import BulkCipher, MacAlgorithm, Protection
from dtls.recordbase import DTLS1_0, DTLS1_2, ContentType
from dtls.suites import SUITES, CipherSuiteInfo

h = bytes.fromhex
MD5_SHA1, SHA256, SHA384 = PrfAlgorithm.MD5_SHA1, PrfAlgorithm.SHA256, PrfAlgorithm.SHA384
ALL_PRFS = [MD5_SHA1, SHA256, SHA384]
WYCHEPROOF = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "wycheproof"

# --- openssl kdf oracle --------------------------------------------------------------------

_OPENSSL_DIGEST = {MD5_SHA1: "MD5-SHA1", SHA256: "SHA256", SHA384: "SHA384"}


def _run_openssl_prf(digest: str, secret: bytes, seed: bytes, length: int) -> bytes:
    out = subprocess.run(
        ["openssl", "kdf", "-keylen", str(length), "-binary",
         "-kdfopt", f"digest:{digest}", "-kdfopt", f"hexsecret:{secret.hex()}",
         "-kdfopt", f"hexseed:{seed.hex()}", "TLS1-PRF"],
        capture_output=True, check=True, timeout=10,
    )
    return out.stdout


@cache
def _openssl_missing(algorithm: PrfAlgorithm) -> str:
    """Why `openssl kdf TLS1-PRF` with this digest is unusable here, or "" if it works."""
    if shutil.which("openssl") is None:
        return "no openssl binary on PATH"
    try:
        got = _run_openssl_prf(_OPENSSL_DIGEST[algorithm], b"k", b"s", 8)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"openssl kdf TLS1-PRF with {_OPENSSL_DIGEST[algorithm]} unavailable: {exc}"
    return "" if len(got) == 8 else "openssl kdf printed unexpected output"


def openssl_prf(algorithm: PrfAlgorithm, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """PRF(secret, label, seed) computed by OpenSSL; skips the test if it cannot."""
    reason = _openssl_missing(algorithm)
    if reason:
        pytest.skip(reason)
    out = _run_openssl_prf(_OPENSSL_DIGEST[algorithm], secret, label + seed, length)
    assert len(out) == length
    return out


# --- PRF known answers ---------------------------------------------------------------------

IETF_SHA256 = (
    "9bbe436ba940f017b17652849a71db35", "a0ba9f936cda311827a6f796ffd5198c",
    ("e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e"
    "14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5"
    "a72e5a5110fff70187347b66"),
)
IETF_SHA384 = (
    "b80b733d6ceefcdc71566ea48e5567df", "cd665cf6a8447dd6ff8b27555edb7465",
    ("7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cde9ca0faa60be9fe34f82b123"
    "3c9146a0e534cb400fed2700884f9dc236f80edd8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd"
    "4abfdad05d9184259b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee691c8f3a2"
    "6854308d5eaa3be85e0990703d73e56f"),
)
GNUTLS_SHA256 = [
    ("0450b0ea9ecd3602ee0d76c5c3c86f4a", "207acc0254b867f5b925b45a33601d8b",
     "ae679e0e714f5975763768b166979e1d"),
    ("34204a9df0be6eb4e925a8027cf6c602", "98b2c40bcd664c83bb920c18201a6395",
     ("afa9312453c22fa83d2b511b372d73a402a2a62873239a51fade45082faf3fd2bb7ffb3e9bf36e28b3141aab"
     "a484005332a9f9e388a4d329f1587a4b317da07708ea1ba95a53f8786724bd83ce4b03af")),
    ("a3691aa1f6814b80592bf1cf2acf1697", "5523d41e320e694d0c1ff5734d830b933e46927071c92621",
     "6ad0984fa06f78fe161bd46d7c261de43340d728dddc3d0ff0dd7e0d"),
    ("210ec937069707e5465bc46bf779e104108b18fdb793be7b218dbf145c8641f3",
     "1e351a0baf35c79945924394b881cfe31dae8f1c1ed54d3b",
     "7653fa809cde3b553c4a17e2cdbcc918f36527f22219a7d7f95d97243ff2d5dee8265ef0af03"),
]


@pytest.mark.parametrize("algorithm, vector", [
    (SHA256, IETF_SHA256), (SHA384, IETF_SHA384), *((SHA256, v) for v in GNUTLS_SHA256)])
def test_prf_tls12_known_answers(algorithm: PrfAlgorithm, vector: tuple[str, str, str]) -> None:
    secret, seed, want = map(h, vector)
    assert keys.prf(algorithm, secret, b"test label", seed, len(want)) == want


def test_prf_tls10_known_answers() -> None:
    assert keys.prf(MD5_SHA1, b"secret", b"label", b"seed", 20) == h(
        "b5baf4722b91851a8816d22ebd8c1d8cc2e94d55")
    assert keys.prf(MD5_SHA1, b"\xab" * 48, b"PRF Testvector", b"\xcd" * 64, 32) == h(
        "d3d4d1e349b5d515044666d51de32bab258cb521b6b053463e354832fd976754")


# NIST CAVP SP 800-135 TLS KDF: (PRF, pre_master_secret, ClientHello.random,
# ServerHello.random, client_random, server_random, master_secret, key_block).  The two
# pairs of randoms differ on purpose: the master secret uses the first, the key block the
# second, so a swapped argument cannot pass.
NIST_TLS_KDF = [
    (MD5_SHA1,
     "bded7fa5c1699c010be23dd06ada3a48349f21e5f86263d512c0c5cc379f0e780ec55d9844b2f1db02a96453513568d0",
     "e5acaf549cd25c22d964c0d930fa4b5261d2507fad84c33715b7b9a864020693",
     "135e4d557fdf3aa6406d82975d5c606a9734c9334b42136e96990fbd5358cdb2",
     "d58a7b1cd4fedaa232159df652ce188f9d997e061b9bf48e83b62990440931f6",
     "67267e650eb32444119d222a368c191af3082888dc35afe8368e638c828874be",
     "2f6962dfbc744c4b2138bb6b3d33054c5ecc14f24851d9896395a44ab3964efc2090c5bf51a0891209f46c1e1e998f62",
     ("3088825988e77fce68d19f756e18e43eb7fe672433504feaf99b3c503d9091b164f166db301d70c9fc0870b4a9"
     "4563907bee1a61fb786cb717576890bcc51cb9ead97e01d0a2fea99c953377b195205ff07b369589178796edc9"
     "63fd80fdbe518a2fc1c35c18ae8d")),
    (SHA256,
     "f8938ecc9edebc5030c0c6a441e213cd24e6f770a50dda07876f8d55da062bcadb386b411fd4fe4313a604fce6c17fbc",
     "36c129d01a3200894b9179faac589d9835d58775f9b5ea3587cb8fd0364cae8c",
     "f6c9575ed7ddd73e1f7d16eca115415812a43c2b747daaaae043abfb50053fce",
     "62e1fd91f23f558a605f28478c58cf72637b89784d959df7e946d3f07bd1b616",
     "ae6c806f8ad4d80784549dff28a4b58fd837681a51d928c3e30ee5ff14f39868",
     "202c88c00f84a17a20027079604787461176455539e705be730890602c289a5001e34eeb3a043e5d52a65e66125188bf",
     ("d06139889fffac1e3a71865f504aa5d0d2a2e89506c6f2279b670c3e1b74f531016a2530c51a3a0f7e1d6590d0"
     "f0566b2f387f8d11fd4f731cdd572d2eae927f6f2f81410b25e6960be68985add6c38445ad9f8c64bf8068bf9a"
     "6679485d966f1ad6f68b43495b10a683755ea2b858d70ccac7ec8b053c6bd41ca299d4e51928")),
    (SHA384,
     "a5e2642633f5b8c81ad3fe0c2fe3a8e5ef806b06121dd10df4bb0fe857bfdcf522558e05d2682c9a80c741a3aab1716f",
     "abe4bf5527429ac8eb13574d2709e8012bd1a113c6d3b1d3aa2c3840518778ac",
     "cb6e0b3eb02976b6466dfa9651c2919414f1648fd3a7838d02153e5bd39535b6",
     "954b5fe1849c2ede177438261f099a2fcd884d001b9fe1de754364b1f6a6dd8e",
     "1b1c8568344a65c30828e7483c0e353e2c68641c9551efae6927d9cd627a107c",
     "b4d49bfa87747fe815457bc3da15073d6ac73389e703079a3503c09e14bd559a5b3c7c601c7365f6ea8c68d3d9596827",
     ("10fd89ef689c7ef033387b8a8f3e5e8e7c11f680f6bdd71fbac3246a73e98d45d03185dde686e6b2369e4503e9"
     "dc5a6d2cee3e2bf2fa3f41d3de57dff3e197c8a9d5f74cc2d277119d894f8584b07a0a5822f0bd68b3433ec6ad"
     "af5c9406c5f3ddbb71bbe17ce98f3d4d5893d3179ef369f57aad908e2bf710639100c3ce7e0c")),
]


@pytest.mark.parametrize("vector", NIST_TLS_KDF, ids=lambda v: v[0].name)
def test_nist_master_secret_and_key_block(vector: tuple[Any, ...]) -> None:
    algorithm = vector[0]
    pms, ch_random, sh_random, c_random, s_random, ms, block = (h(x) for x in vector[1:])
    assert keys.master_secret(algorithm, pms, ch_random, sh_random) == ms
    # Every suite's split, joined, must agree with the vector's key block where they overlap
    # (the vector has 104 or 128 bytes; the largest suite key block is 160).
    for info in SUITES.values():
        for etm in (False, True):
            prot = info.protection(etm)
            km = keys.derive_key_material(algorithm, ms, c_random, s_random, prot)
            joined = b"".join(
                (km.client_write_mac_key, km.server_write_mac_key, km.client_write_key,
                 km.server_write_key, km.client_write_iv, km.server_write_iv))
            assert len(joined) == keys.key_block_length(prot)
            n = min(len(joined), len(block))
            assert joined[:n] == block[:n]


# --- PRF against openssl -------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALL_PRFS, ids=lambda a: a.name)
def test_prf_matches_openssl_on_random_inputs(algorithm: PrfAlgorithm) -> None:
    rng = random.Random(f"prf-{algorithm.name}")
    # Odd secret lengths exercise the TLS 1.0 S1/S2 overlap (RFC 4346 5); lengths around
    # the hash sizes exercise the P_hash block boundary.
    for secret_len, length in [(1, 1), (47, 12), (48, 104), (49, 33), (7, 64), (128, 200),
                               (65, 48), (33, 31)]:
        secret = rng.randbytes(secret_len)
        label = rng.randbytes(rng.randrange(1, 20))
        seed = rng.randbytes(rng.randrange(0, 80))
        assert keys.prf(algorithm, secret, label, seed, length) == openssl_prf(
            algorithm, secret, label, seed, length), (secret_len, length)


def test_prf_is_a_stream_and_bounded() -> None:
    long = keys.prf(SHA256, b"k", b"l", b"s", 200)
    assert all(keys.prf(SHA256, b"k", b"l", b"s", n) == long[:n] for n in (0, 1, 31, 32, 33, 199))
    assert len(keys.prf(MD5_SHA1, b"", b"l", b"s", 20)) == 20  # empty secret is defined too
    with pytest.raises(ValueError):
        keys.prf(SHA256, b"k", b"l", b"s", keys.MAX_PRF_OUTPUT + 1)
    with pytest.raises(ValueError):
        keys.prf(SHA256, b"k", b"l", b"s", -1)


# --- master secret, EMS, key block ---------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALL_PRFS, ids=lambda a: a.name)
def test_master_and_extended_master_secret_match_openssl(algorithm: PrfAlgorithm) -> None:
    rng = random.Random(f"ms-{algorithm.name}")
    pms, cr, sr = rng.randbytes(48), rng.randbytes(32), rng.randbytes(32)
    ms = keys.master_secret(algorithm, pms, cr, sr)
    assert isinstance(ms, SecretBytes) and len(ms) == 48
    assert ms == openssl_prf(algorithm, pms, b"master secret", cr + sr, 48)

    transcript = rng.randbytes(700)
    session_hash = keys.handshake_hash(algorithm, transcript)
    ems = keys.extended_master_secret(algorithm, pms, session_hash)
    assert ems == openssl_prf(algorithm, pms, b"extended master secret", session_hash, 48)
    assert ems != ms
    with pytest.raises(ValueError):
        keys.extended_master_secret(algorithm, pms, session_hash[:-1])


def test_randoms_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        keys.master_secret(SHA256, b"p" * 48, b"c" * 31, b"s" * 32)
    with pytest.raises(ValueError):
        keys.derive_key_material(SHA256, b"m" * 48, b"c" * 32, b"s" * 33,
                                 Protection(BulkCipher.AES_128_GCM))


def test_handshake_hash_and_transcript() -> None:
    msgs = [b"\x01" * 100, b"\x02" * 7, b"", b"\x0b" * 3000]
    data = b"".join(msgs)
    assert keys.handshake_hash(MD5_SHA1, data) == hashlib.md5(data).digest() + hashlib.sha1(data).digest()
    assert keys.handshake_hash(SHA256, data) == hashlib.sha256(data).digest()
    assert keys.handshake_hash(SHA384, data) == hashlib.sha384(data).digest()
    t = keys.HandshakeTranscript()
    for m in msgs:
        t.update(m)
    for alg in ALL_PRFS:
        assert t.digest(alg) == keys.handshake_hash(alg, data)
        assert len(t.digest(alg)) == alg.hash_length
    t.update(b"more")  # digest() did not finalise the running hashes
    assert t.digest(SHA256) == hashlib.sha256(data + b"more").digest()


@pytest.mark.parametrize("only", ALL_PRFS, ids=lambda a: a.name)
def test_transcript_running_one_algorithm(only) -> None:
    """`only` runs just that algorithm's hash(es): the same digest, others refused."""
    from dtls.alerts import InternalError
    data = b"\x01" * 100 + b"\x0b" * 3000
    t = keys.HandshakeTranscript(only=only)
    t.update(data[:100])
    t.update(data[100:])
    assert t.digest(only) == keys.handshake_hash(only, data)
    for other in ALL_PRFS:
        if other is not only:
            with pytest.raises(InternalError):
                t.digest(other)
    t.release()
    with pytest.raises(InternalError):
        t.digest(only)
    with pytest.raises(AttributeError):
        t.update(b"late")  # nothing may hash after release, as with every hash running


# Expected split lengths per suite family, from RFC 5246 6.3 / RFC 5288 3 / RFC 7905 2 /
# RFC 6655 (CCM: as GCM), written out here rather than read from Protection.
_EXPECTED_LENGTHS = {  # (cipher, mac) -> (mac_key, key, fixed_iv)
    (BulkCipher.AES_128_GCM, MacAlgorithm.NONE): (0, 16, 4),
    (BulkCipher.AES_256_GCM, MacAlgorithm.NONE): (0, 32, 4),
    (BulkCipher.CHACHA20_POLY1305, MacAlgorithm.NONE): (0, 32, 12),
    (BulkCipher.AES_128_CCM, MacAlgorithm.NONE): (0, 16, 4),
    (BulkCipher.AES_128_CCM_8, MacAlgorithm.NONE): (0, 16, 4),
    (BulkCipher.AES_256_CCM, MacAlgorithm.NONE): (0, 32, 4),
    (BulkCipher.AES_256_CCM_8, MacAlgorithm.NONE): (0, 32, 4),
    (BulkCipher.AES_128_CBC, MacAlgorithm.SHA1): (20, 16, 0),
    (BulkCipher.AES_256_CBC, MacAlgorithm.SHA1): (20, 32, 0),
    (BulkCipher.AES_128_CBC, MacAlgorithm.SHA256): (32, 16, 0),
    (BulkCipher.AES_256_CBC, MacAlgorithm.SHA384): (48, 32, 0),
}


@pytest.mark.parametrize("info", list(SUITES.values()), ids=lambda i: i.name)
def test_key_block_split_for_every_suite(info: CipherSuiteInfo) -> None:
    rng = random.Random(info.name)
    ms, cr, sr = rng.randbytes(48), rng.randbytes(32), rng.randbytes(32)
    mac_len, key_len, iv_len = _EXPECTED_LENGTHS[(info.cipher, info.mac)]
    versions = [DTLS1_2] + ([DTLS1_0] if info.supports_version(DTLS1_0) else [])
    for version in versions:
        algorithm = info.prf_for(version)
        for etm in (False, True):
            prot = info.protection(etm)
            km = keys.derive_key_material(algorithm, ms, cr, sr, prot)
            assert km.protection == prot
            assert [len(km.client_write_mac_key), len(km.client_write_key), len(km.client_write_iv)] \
                == [mac_len, key_len, iv_len]
            assert [len(km.server_write_mac_key), len(km.server_write_key), len(km.server_write_iv)] \
                == [mac_len, key_len, iv_len]
            total = 2 * (mac_len + key_len + iv_len)
            assert keys.key_block_length(prot) == total
            block = openssl_prf(algorithm, ms, b"key expansion", sr + cr, total)
            assert b"".join((km.client_write_mac_key, km.server_write_mac_key, km.client_write_key,
                             km.server_write_key, km.client_write_iv, km.server_write_iv)) == block


@pytest.mark.parametrize("info", list(SUITES.values()), ids=lambda i: i.name)
def test_key_material_drives_both_record_backends(backend: ModuleType, info: CipherSuiteInfo) -> None:
    """The derived keys fit CipherState and the two directions are really distinct."""
    rng = random.Random("cs" + info.name)
    km = keys.derive_key_material(info.prf, rng.randbytes(48), rng.randbytes(32), rng.randbytes(32),
                                  info.protection(True))
    prot = km.protection
    c_seal = backend.CipherState(prot, epoch=1, **km.cipher_state_kwargs(True))
    s_open = backend.CipherState(prot, epoch=1, **km.cipher_state_kwargs(True))
    s_seal = backend.CipherState(prot, epoch=1, **km.cipher_state_kwargs(False))
    c_open = backend.CipherState(prot, epoch=1, **km.cipher_state_kwargs(False))
    rec = c_seal.seal(ContentType.APPLICATION_DATA, b"ping")
    res = s_open.open(rec)
    assert res.ok and bytes(res.payload) == b"ping"
    assert not c_open.open(rec).ok  # server-write keys must not open client records
    res = c_open.open(s_seal.seal(ContentType.APPLICATION_DATA, b"pong"))
    assert res.ok and bytes(res.payload) == b"pong"


# --- Finished, exporter --------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALL_PRFS, ids=lambda a: a.name)
def test_verify_data_matches_openssl(algorithm: PrfAlgorithm) -> None:
    rng = random.Random(f"fin-{algorithm.name}")
    ms, transcript = rng.randbytes(48), rng.randbytes(1500)
    hh = keys.handshake_hash(algorithm, transcript)
    for from_client, label in ((True, b"client finished"), (False, b"server finished")):
        vd = keys.verify_data(algorithm, ms, hh, from_client=from_client)
        assert len(vd) == 12
        assert vd == openssl_prf(algorithm, ms, label, hh, 12)
    assert keys.verify_data(algorithm, ms, hh, from_client=True) != keys.verify_data(
        algorithm, ms, hh, from_client=False)
    with pytest.raises(ValueError):
        keys.verify_data(algorithm, ms, hh + b"x", from_client=True)


def test_check_verify_data() -> None:
    keys.check_verify_data(b"\x01" * 12, b"\x01" * 12)
    with pytest.raises(DecryptError):
        keys.check_verify_data(b"\x01" * 12, b"\x01" * 11 + b"\x02")
    with pytest.raises(DecryptError):
        keys.check_verify_data(b"\x01" * 12, b"\x01" * 11)


@pytest.mark.parametrize("algorithm", ALL_PRFS, ids=lambda a: a.name)
def test_exporter_matches_openssl(algorithm: PrfAlgorithm) -> None:
    rng = random.Random(f"exp-{algorithm.name}")
    ms, cr, sr = rng.randbytes(48), rng.randbytes(32), rng.randbytes(32)
    # DTLS-SRTP (RFC 5764 4.2): no context; AES_CM_128_HMAC_SHA1_80 wants 2 * (16 + 14).
    got = keys.export_keying_material(algorithm, ms, cr, sr, keys.DTLS_SRTP_EXPORTER_LABEL, 60)
    assert got == openssl_prf(algorithm, ms, b"EXTRACTOR-dtls_srtp", cr + sr, 60)
    context = rng.randbytes(300)
    got_ctx = keys.export_keying_material(algorithm, ms, cr, sr, "EXPORTER-test", 100, context)
    assert got_ctx == openssl_prf(algorithm, ms, b"EXPORTER-test",
                                  cr + sr + b"\x01\x2c" + context, 100)
    # RFC 5705 4: no context and an empty context are different inputs.
    empty = keys.export_keying_material(algorithm, ms, cr, sr, "EXPORTER-test", 32, b"")
    none = keys.export_keying_material(algorithm, ms, cr, sr, "EXPORTER-test", 32)
    assert empty == openssl_prf(algorithm, ms, b"EXPORTER-test", cr + sr + b"\x00\x00", 32)
    assert none != empty


def test_exporter_rejects_reserved_labels_and_bad_sizes() -> None:
    ms, cr, sr = b"m" * 48, b"c" * 32, b"s" * 32
    for label in ("client finished", "server finished", "master secret", "key expansion",
                  "extended master secret", ""):
        with pytest.raises(ValueError):
            keys.export_keying_material(SHA256, ms, cr, sr, label, 16)
    with pytest.raises(ValueError):
        keys.export_keying_material(SHA256, ms, cr, sr, "EXPORTER-x", 16, b"\x00" * 65536)
    assert len(keys.export_keying_material(SHA256, ms, cr, sr, "EXPORTER-x", 16, b"\x00" * 65535)) == 16
    for length in (0, keys.MAX_PRF_OUTPUT + 1):
        with pytest.raises(ValueError):
            keys.export_keying_material(SHA256, ms, cr, sr, "EXPORTER-x", length)


# --- premaster secrets, key log, secrecy of reprs ------------------------------------------


def test_psk_premaster_secret_layout() -> None:
    # RFC 4279 2: uint16 N, N zero bytes, uint16 N, psk.
    assert keys.psk_premaster_secret(b"\xaa\xbb\xcc") == h("0003" "000000" "0003" "aabbcc")
    psk = bytes(range(64))
    pms = keys.psk_premaster_secret(psk)
    assert pms == b"\x00\x40" + bytes(64) + b"\x00\x40" + psk and isinstance(pms, SecretBytes)
    for bad in (b"", b"\x00" * 65536):
        with pytest.raises(ValueError):
            keys.psk_premaster_secret(bad)


def test_ecdhe_psk_premaster_secret_layout() -> None:
    # RFC 5489 2: uint16 len(Z), Z, uint16 len(psk), psk.
    z, psk = bytes(range(32)), b"key!"
    assert keys.ecdhe_psk_premaster_secret(z, psk) == b"\x00\x20" + z + b"\x00\x04" + psk
    with pytest.raises(ValueError):
        keys.ecdhe_psk_premaster_secret(b"", psk)
    with pytest.raises(ValueError):
        keys.ecdhe_psk_premaster_secret(z, b"")


def test_keylog_line() -> None:
    cr, ms = bytes(range(32)), bytes(range(100, 148))
    line = keys.keylog_line(cr, keys.SecretBytes(ms))
    assert line == f"CLIENT_RANDOM {cr.hex()} {ms.hex()}"
    assert len(line.split()[1]) == 64 and len(line.split()[2]) == 96 and "\n" not in line
    with pytest.raises(ValueError):
        keys.keylog_line(cr[:31], ms)
    with pytest.raises(ValueError):
        keys.keylog_line(cr, ms[:47])


def test_secrets_never_appear_in_reprs() -> None:
    rng = random.Random("repr")
    ms = keys.master_secret(SHA256, rng.randbytes(48), rng.randbytes(32), rng.randbytes(32))
    assert ms.hex() not in repr(ms) and ms.hex() not in str(ms) and ms.hex() not in f"{ms}"
    assert repr(ms) == "<secret: 48 bytes>"
    assert repr([ms]) == "[<secret: 48 bytes>]"  # containers use repr too
    km = keys.derive_key_material(SHA256, ms, rng.randbytes(32), rng.randbytes(32),
                                  Protection(BulkCipher.AES_256_CBC, MacAlgorithm.SHA384, True))
    text = repr(km) + str(km)
    for secret in (km.client_write_key, km.server_write_key, km.client_write_mac_key,
                   km.server_write_mac_key):
        assert len(secret) and secret.hex() not in text and bytes(secret).hex()[:16] not in text
        assert isinstance(secret, SecretBytes)
    assert "AES_256_CBC" in text
    kp = keys.EcdheKeyPair.generate(NamedGroup.x25519)
    assert kp.exchange(keys.EcdheKeyPair.generate(NamedGroup.x25519).public_bytes).hex() \
        not in repr(kp)
    private = kp._private_key.private_bytes(  # test peeks, to prove absence
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    assert private.hex() not in repr(kp) and kp.public_bytes.hex() in repr(kp)


# --- ECDHE ---------------------------------------------------------------------------------


@pytest.mark.parametrize("group, length", [(NamedGroup.x25519, 32), (NamedGroup.secp256r1, 65),
                                           (NamedGroup.secp384r1, 97)], ids=lambda g: str(g))
def test_ecdhe_round_trip(group: NamedGroup, length: int) -> None:
    a, b = keys.generate_key_pair(group), keys.generate_key_pair(group)
    assert len(a.public_bytes) == keys.public_point_length(group) == length
    if group is not NamedGroup.x25519:
        assert a.public_bytes[0] == 0x04
    shared = a.exchange(b.public_bytes)
    assert shared == b.exchange(a.public_bytes)
    assert isinstance(shared, SecretBytes)
    assert len(shared) == {32: 32, 65: 32, 97: 48}[length]  # x-coordinate only (RFC 8422 5.10)
    assert a.exchange(b.public_bytes) != a.exchange(keys.generate_key_pair(group).public_bytes)


def test_ecdhe_nist_matches_cryptography_directly() -> None:
    """Our encoding and x-coordinate secret equal cryptography's own ECDH with X9.62 points."""
    priv = ec.generate_private_key(ec.SECP256R1())
    peer = ec.generate_private_key(ec.SECP256R1())
    kp = keys.EcdheKeyPair(NamedGroup.secp256r1, priv)
    peer_point = peer.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert kp.exchange(peer_point) == priv.exchange(ec.ECDH(), peer.public_key())


def _flip_y(point: bytes) -> bytes:
    return point[:-1] + bytes([point[-1] ^ 1])


@pytest.mark.parametrize("group", [NamedGroup.secp256r1, NamedGroup.secp384r1], ids=str)
def test_ecdhe_rejects_bad_nist_points(group: NamedGroup) -> None:
    kp = keys.generate_key_pair(group)
    good = keys.generate_key_pair(group).public_bytes
    field = (len(good) - 1) // 2
    curve = {NamedGroup.secp256r1: ec.SECP256R1(), NamedGroup.secp384r1: ec.SECP384R1()}[group]
    compressed = ec.EllipticCurvePublicKey.from_encoded_point(curve, good).public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    p = {NamedGroup.secp256r1: 2**256 - 2**224 + 2**192 + 2**96 - 1,
         NamedGroup.secp384r1: 2**384 - 2**128 - 2**96 + 2**32 - 1}[group]
    illegal = [
        _flip_y(good),  # off the curve: the invalid-curve attack's input
        b"\x04" + bytes(2 * field),  # (0, 0) is not on either curve
        b"\x04" + p.to_bytes(field, "big") + good[1 + field:],  # x >= p
        b"\x04" + good[1:1 + field] + (p + int.from_bytes(good[1 + field:], "big")).to_bytes(
            field + 1, "big")[1:],  # y + p wrapped into the field: still invalid
        b"\x04" + b"\xff" * (2 * field),
        compressed,  # RFC 8422 5.1.2: uncompressed only
        b"\x00",  # point at infinity
        b"\x05" + good[1:],
    ]
    for bad in illegal:
        with pytest.raises(IllegalParameter):
            kp.exchange(bad)
    for bad in (b"", good[:-1], good + b"\x00", b"\x04",
                keys.generate_key_pair(NamedGroup.secp384r1 if field == 32 else NamedGroup.secp256r1)
                .public_bytes):
        with pytest.raises(DecodeError):
            kp.exchange(bad)


def test_ecdhe_rejects_bad_x25519_input() -> None:
    kp = keys.generate_key_pair(NamedGroup.x25519)
    for bad in (b"", b"\x09" * 31, b"\x09" * 33, keys.generate_key_pair(NamedGroup.secp256r1).public_bytes):
        with pytest.raises(DecodeError):
            kp.exchange(bad)
    for low_order in (bytes(32), b"\x01" + bytes(31)):  # u = 0, u = 1: all-zero output
        with pytest.raises(IllegalParameter):
            kp.exchange(low_order)


def test_ecdhe_group_checks() -> None:
    with pytest.raises(IllegalParameter):
        keys.generate_key_pair(30)  # x448: not supported here
    with pytest.raises(IllegalParameter):
        keys.decode_public_key(0xFFFF, b"\x04")
    with pytest.raises(TypeError):
        keys.EcdheKeyPair(NamedGroup.secp384r1, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(TypeError):
        keys.EcdheKeyPair(NamedGroup.x25519, ec.generate_private_key(ec.SECP256R1()))
    assert keys.DEFAULT_GROUPS[0] is NamedGroup.x25519
    assert sorted(int(g) for g in keys.SUPPORTED_GROUPS) == [23, 24, 29]  # RFC 8422 5.1.1
    with pytest.raises(IllegalParameter):
        keys.generate_key_pair(NamedGroup.secp521r1)  # on the wire enum, not computed here


def _wycheproof_x25519() -> list[dict[str, Any]]:
    path = WYCHEPROOF / "x25519_test.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [t for g in data["testGroups"] for t in g["tests"]]


_X25519_TESTS = _wycheproof_x25519()


@pytest.mark.skipif(not _X25519_TESTS, reason=f"Wycheproof vectors absent: {WYCHEPROOF}/x25519_test.json")
def test_wycheproof_x25519() -> None:
    """valid: must match; acceptable: match, except all-zero outputs, which RFC 7748 6.1 /
    RFC 8422 5.11 make us reject; invalid: must be rejected."""
    checked = rejected = 0
    for t in _X25519_TESTS:
        kp = keys.EcdheKeyPair(NamedGroup.x25519,
                               x25519.X25519PrivateKey.from_private_bytes(h(t["private"])))
        must_reject = t["result"] == "invalid" or "ZeroSharedSecret" in t["flags"]
        if must_reject:
            with pytest.raises((IllegalParameter, DecodeError)):
                kp.exchange(h(t["public"]))
            rejected += 1
        else:
            assert kp.exchange(h(t["public"])) == h(t["shared"]), t["tcId"]
            checked += 1
    assert checked > 400 and rejected > 20
