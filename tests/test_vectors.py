"""Known-answer tests of the raw record-layer primitives, run on both backends.

Every record either backend seals or opens goes through `aead_encrypt`/`aead_decrypt`,
`cbc_encrypt`/`cbc_decrypt` or `hmac` (see dtls/recordapi.py), so these are checked here
against published vectors rather than against each other:

* NIST CAVS AES-GCM (gcmEncryptExtIV*.rsp, gcmDecrypt*.rsp), AES-CCM (CCM/*.rsp) and the
  ChaCha20-Poly1305 files (RFC 7539 2.8.2 / A.5 and the BoringSSL / OpenSSL sets), all from
  the `cryptography-vectors` package (installed by the project's `test` extra).
* Project Wycheproof (AES-GCM, AES-CCM, ChaCha20-Poly1305, AES-CBC-PKCS5,
  HMAC-SHA1/256/384), from WYCHEPROOF (see conftest.py) when that directory exists.

Only the parameters the record layer uses are taken: AES-128/256 (no AES-192 suites),
96-bit AEAD nonces and 128-bit tags (RFC 5288 3, RFC 7905 2, RFC 6655), or 64-bit tags for
CCM_8 (RFC 6655).  Vectors for other nonce sizes are not dropped silently: our primitives
must refuse them with ValueError.  Of the NIST CCM files only VNT (the nonce-length sweep)
has 96-bit nonces, and only with 128-bit tags; the 64-bit-tag (CCM_8) and the decryption-
must-fail (DVPT "Result = Fail") cases with 96-bit nonces come from Wycheproof, and the
DVPT files (7- and 13-byte nonces only) go to the refusal test.

Each vector is its own test, named by file and count / tcId, so a failure says which.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest

from dtls.protection import BulkCipher, MacAlgorithm

from conftest import WYCHEPROOF  # tests/ is on sys.path (rootdir conftest, no package)

try:
    import cryptography_vectors
except ImportError:  # pragma: no cover - depends on the environment
    cryptography_vectors = None  # type: ignore[assignment]

NO_VECTORS_PACKAGE = ("cryptography-vectors is not installed: "
                      "pip install cryptography-vectors (or the project's `test` extra)")

NONCE_LEN = 12
TAG_LEN = 16
GCM_BY_KEY_LEN = {16: BulkCipher.AES_128_GCM, 32: BulkCipher.AES_256_GCM}
CCM_BY_KEY_AND_TAG_LEN = {  # RFC 6655: CCM has 16-byte tags, CCM_8 8-byte ones
    (16, 16): BulkCipher.AES_128_CCM, (16, 8): BulkCipher.AES_128_CCM_8,
    (32, 16): BulkCipher.AES_256_CCM, (32, 8): BulkCipher.AES_256_CCM_8,
}


def _skipped(reason: str, nargs: int = 1, source: str = "") -> list[Any]:
    """A single always-skipped parameter, so a missing source shows up as a skip."""
    return [pytest.param(*[None] * nargs, id=f"{source}-unavailable" if source else "unavailable",
                         marks=pytest.mark.skip(reason=reason))]


def _unhex(value: str) -> bytes:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':  # BoringSSL's quoted ASCII
        return value[1:-1].encode("ascii")
    return bytes.fromhex(value)


# ---------------------------------------------------------------------------------------
# NIST CAVS AES-GCM (.rsp)
# ---------------------------------------------------------------------------------------

NIST_GCM_FILES = ("gcmEncryptExtIV128.rsp", "gcmEncryptExtIV256.rsp",
                  "gcmDecrypt128.rsp", "gcmDecrypt256.rsp")


def parse_rsp(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Entries of a CAVS .rsp file.

    `[Name = value]` lines set section parameters that apply to the entries after them;
    `Count = n` starts an entry; `Name = hex` are its fields; a bare `FAIL` marks a
    decrypt entry whose tag must be rejected.  Yields {"section": {...}, "Count": n,
    "Key": ..., ..., "FAIL": bool} with byte values.
    """
    section: dict[str, int] = {}
    entry: dict[str, Any] | None = None
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if entry is not None:
                yield entry
                entry = None
            name, _, value = line[1:-1].partition("=")
            section[name.strip()] = int(value)
            continue
        if line == "FAIL":
            assert entry is not None, "FAIL outside an entry"
            entry["FAIL"] = True
            continue
        name, sep, value = line.partition("=")
        assert sep, f"unparsable .rsp line: {line!r}"
        name = name.strip()
        if name == "Count":
            if entry is not None:
                yield entry
            entry = {"section": dict(section), "Count": int(value), "FAIL": False}
        else:
            assert entry is not None, f"field {name} outside an entry"
            entry[name] = _unhex(value)
    if entry is not None:
        yield entry


def _nist_gcm_params() -> list[Any]:
    if cryptography_vectors is None:
        return _skipped(NO_VECTORS_PACKAGE)
    params = []
    for filename in NIST_GCM_FILES:
        with cryptography_vectors.open_vector_file(
                os.path.join("ciphers", "AES", "GCM", filename), "r") as f:
            for e in parse_rsp(f):
                sec = e["section"]
                if sec["IVlen"] != 96 or sec["Taglen"] != 128:
                    continue
                assert len(e["IV"]) == NONCE_LEN and len(e["Tag"]) == TAG_LEN
                assert len(e["Key"]) * 8 == sec["Keylen"]
                vid = (f"{filename[:-4]}-pt{sec['PTlen']}-aad{sec['AADlen']}"
                       f"-count{e['Count']}")
                params.append(pytest.param(e, id=vid))
    assert params, "no 96-bit-IV / 128-bit-tag GCM vectors found"
    return params


@pytest.mark.parametrize("vector", _nist_gcm_params())
def test_nist_aes_gcm(backend: ModuleType, vector: dict[str, Any]) -> None:
    cipher = GCM_BY_KEY_LEN[len(vector["Key"])]
    key, iv, aad, ct, tag = (vector[k] for k in ("Key", "IV", "AAD", "CT", "Tag"))
    if vector["FAIL"]:  # decrypt files: the tag does not authenticate
        assert backend.aead_decrypt(cipher, key, iv, aad, ct + tag) is None
        return
    pt = vector["PT"]
    assert backend.aead_encrypt(cipher, key, iv, aad, pt) == ct + tag
    assert backend.aead_decrypt(cipher, key, iv, aad, ct + tag) == pt


# ---------------------------------------------------------------------------------------
# NIST CAVS AES-CCM (.rsp)
# ---------------------------------------------------------------------------------------

NIST_CCM_FILES = tuple(f"{kind}{bits}.rsp" for kind in ("DVPT", "VADT", "VNT", "VPT", "VTT")
                       for bits in (128, 256))  # no AES-192 suites


def parse_ccm_rsp(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Entries of a CAVS CCM .rsp file, whose layout differs from the GCM files.

    `Name = n` lines before the first section and `[A = n, B = m]` section headers set the
    integer parameters (Alen, Plen, Nlen, Tlen); `Key` and `Nonce` may be given once for a
    section (before its first `Count`) or per entry; `Result = Pass/Fail` marks decrypt
    entries (DVPT).  Lengths are in bytes and empty strings are written `00`, so Adata and
    Payload are cut to Alen / Plen.  Yields {"Alen": .., "Nlen": .., "Key": .., "Nonce": ..,
    "Adata": .., "Payload": .., "CT": ct||tag, "Count": n, "FAIL": bool}.
    """
    params: dict[str, int] = {}
    section: dict[str, bytes] = {}
    entry: dict[str, Any] | None = None

    def done(e: dict[str, Any]) -> dict[str, Any]:
        e["Adata"] = e.get("Adata", b"")[: e["Alen"]]
        e["Payload"] = e.get("Payload", b"")[: e["Plen"]]
        assert len(e["Nonce"]) == e["Nlen"] and len(e["CT"]) == e["Plen"] + e["Tlen"], e
        return e

    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if entry is not None:
                yield done(entry)
                entry = None
            section = {}
            for item in line[1:-1].split(","):
                name, _, value = item.partition("=")
                params[name.strip()] = int(value)
            continue
        name, sep, value = line.partition("=")
        assert sep, f"unparsable .rsp line: {line!r}"
        name, value = name.strip(), value.strip()
        if name in ("Alen", "Plen", "Nlen", "Tlen"):  # file-wide, before any section
            params[name] = int(value)
        elif name == "Count":
            if entry is not None:
                yield done(entry)
            entry = {**params, **section, "Count": int(value), "FAIL": False}
        elif name == "Result":
            assert entry is not None and value.split()[0] in ("Pass", "Fail"), line
            entry["FAIL"] = value.startswith("Fail")
        elif entry is None:
            section[name] = _unhex(value)
        else:
            entry[name] = _unhex(value)
    if entry is not None:
        yield done(entry)


def _nist_ccm_vectors() -> dict[str, list[dict[str, Any]]]:
    """file name -> its entries with a key and tag length some CCM suite uses."""
    out = {}
    for filename in NIST_CCM_FILES:
        with cryptography_vectors.open_vector_file(
                os.path.join("ciphers", "AES", "CCM", filename), "r") as f:
            out[filename] = [e for e in parse_ccm_rsp(f)
                             if (len(e["Key"]), e["Tlen"]) in CCM_BY_KEY_AND_TAG_LEN]
    return out


def _nist_ccm_params() -> list[Any]:
    if cryptography_vectors is None:
        return _skipped(NO_VECTORS_PACKAGE)
    params = []
    for filename, entries in _nist_ccm_vectors().items():
        for e in entries:
            if e["Nlen"] == NONCE_LEN:
                vid = (f"{filename[:-4]}-a{e['Alen']}-p{e['Plen']}-t{e['Tlen']}"
                       f"-count{e['Count']}")
                params.append(pytest.param(e, id=vid))
    assert params, "no 96-bit-nonce CCM vectors found"
    return params


def _nist_ccm_other_nonce_params() -> list[Any]:
    if cryptography_vectors is None:
        return _skipped(NO_VECTORS_PACKAGE)
    params = []
    for filename, entries in _nist_ccm_vectors().items():
        other = [e for e in entries if e["Nlen"] != NONCE_LEN]
        fails = sum(e["FAIL"] for e in other)
        params.append(pytest.param(other, id=f"{filename[:-4]}-{len(other)}vectors-{fails}fail"))
    return params


@pytest.mark.parametrize("vector", _nist_ccm_params())
def test_nist_aes_ccm(backend: ModuleType, vector: dict[str, Any]) -> None:
    cipher = CCM_BY_KEY_AND_TAG_LEN[len(vector["Key"]), vector["Tlen"]]
    key, nonce, aad, ct = (vector[k] for k in ("Key", "Nonce", "Adata", "CT"))
    if vector["FAIL"]:
        assert backend.aead_decrypt(cipher, key, nonce, aad, ct) is None
        return
    pt = vector["Payload"]
    assert backend.aead_encrypt(cipher, key, nonce, aad, pt) == ct
    assert backend.aead_decrypt(cipher, key, nonce, aad, ct) == pt
    forged = ct[:-1] + bytes([ct[-1] ^ 1])  # NIST has no 96-bit Fail entries: make one
    assert backend.aead_decrypt(cipher, key, nonce, aad, forged) is None


@pytest.mark.parametrize("vectors", _nist_ccm_other_nonce_params())
def test_nist_aes_ccm_other_nonce_sizes(backend: ModuleType,
                                        vectors: list[dict[str, Any]]) -> None:
    """CCM is defined for 7..13-byte nonces; TLS uses 12 (RFC 6655), so the rest are refused,
    the DVPT Fail entries among them: none of them reaches decryption."""
    for e in vectors:
        cipher = CCM_BY_KEY_AND_TAG_LEN[len(e["Key"]), e["Tlen"]]
        with pytest.raises(ValueError):
            backend.aead_encrypt(cipher, e["Key"], e["Nonce"], e["Adata"], e["Payload"])
        with pytest.raises(ValueError):
            backend.aead_decrypt(cipher, e["Key"], e["Nonce"], e["Adata"], e["CT"])


def test_nist_ccm_files_parsed() -> None:
    """The parser sees every entry of the files (counts as in their headers' sections)."""
    if cryptography_vectors is None:
        pytest.skip(NO_VECTORS_PACKAGE)
    with cryptography_vectors.open_vector_file(
            os.path.join("ciphers", "AES", "CCM", "DVPT128.rsp"), "r") as f:
        dvpt = list(parse_ccm_rsp(f))
    assert len(dvpt) == 240 and 0 < sum(e["FAIL"] for e in dvpt) < 240
    assert {e["Tlen"] for e in dvpt} == {4, 16} and {e["Nlen"] for e in dvpt} == {7, 13}
    twelve = [p.values[0] for p in _nist_ccm_params()]
    assert len(twelve) == 20 and {len(e["Key"]) for e in twelve} == {16, 32}


# ---------------------------------------------------------------------------------------
# ChaCha20-Poly1305 from cryptography-vectors (RFC 7539, BoringSSL, OpenSSL)
# ---------------------------------------------------------------------------------------

# Field names of the different files, mapped onto one spelling.
_CHACHA_FIELDS = {
    "KEY": "key", "NONCE": "nonce", "IV": "nonce", "IN": "pt", "PLAINTEXT": "pt",
    "AD": "aad", "AAD": "aad", "CT": "ct", "CIPHERTEXT": "ct", "TAG": "tag",
}


def parse_chacha_txt(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Entries of the ChaCha20Poly1305/*.txt files: `COUNT = n` then `Field = value`.

    Values are hex or "quoted ASCII"; `Result = ...` (OpenSSL's CIPHERFINAL_ERROR) marks
    an entry that must not authenticate.  Unknown fields fail loudly so a new file
    format is noticed rather than half-parsed.
    """
    entry: dict[str, Any] | None = None
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"unparsable line: {line!r}"
        name = name.strip().upper()
        if name == "COUNT":
            if entry is not None:
                yield entry
            entry = {"count": int(value), "invalid": False}
        elif name == "RESULT":
            assert entry is not None
            entry["invalid"] = True
        else:
            assert entry is not None, f"field {name} outside an entry"
            assert name in _CHACHA_FIELDS, f"unknown field {name!r}"
            entry[_CHACHA_FIELDS[name]] = _unhex(value)
    if entry is not None:
        yield entry


def _chacha_params() -> list[Any]:
    if cryptography_vectors is None:
        return _skipped(NO_VECTORS_PACKAGE)
    directory = Path(cryptography_vectors.__file__).parent / "ciphers" / "ChaCha20Poly1305"
    params = []
    for path in sorted(directory.glob("*.txt")):
        with path.open() as f:
            for e in parse_chacha_txt(f):
                if len(e["nonce"]) != NONCE_LEN or len(e["tag"]) != TAG_LEN:
                    continue  # not a parameter set the record layer uses
                assert len(e["key"]) == 32
                params.append(pytest.param(e, id=f"{path.stem}-count{e['count']}"))
    assert params, f"no ChaCha20-Poly1305 vectors with 12-byte nonces in {directory}"
    return params


@pytest.mark.parametrize("vector", _chacha_params())
def test_chacha20_poly1305(backend: ModuleType, vector: dict[str, Any]) -> None:
    cipher = BulkCipher.CHACHA20_POLY1305
    key, nonce, aad, ct, tag = (vector[k] for k in ("key", "nonce", "aad", "ct", "tag"))
    if vector["invalid"]:
        assert backend.aead_decrypt(cipher, key, nonce, aad, ct + tag) is None
        return
    pt = vector["pt"]
    assert backend.aead_encrypt(cipher, key, nonce, aad, pt) == ct + tag
    assert backend.aead_decrypt(cipher, key, nonce, aad, ct + tag) == pt


def test_rfc7539_vectors_present() -> None:
    """RFC 7539 2.8.2 and A.5 are among the ChaCha20-Poly1305 vectors run above."""
    if cryptography_vectors is None:
        pytest.skip(NO_VECTORS_PACKAGE)
    rfc_keys = {
        # 2.8.2 (boringssl.txt count 1) and A.5 (openssl.txt count 1)
        bytes(range(0x80, 0xA0)),
        bytes.fromhex("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0"),
    }
    found = {p.values[0]["key"] for p in _chacha_params()} & rfc_keys
    assert found == rfc_keys


# ---------------------------------------------------------------------------------------
# Wycheproof
# ---------------------------------------------------------------------------------------


def _wycheproof(filename: str,
                select: Callable[[dict[str, Any], dict[str, Any]], bool]) -> list[Any]:
    """pytest params (group, test) for the tests of `filename` that `select` keeps."""
    path = WYCHEPROOF / filename
    if not path.is_file():
        return _skipped(f"Wycheproof vectors not found: {path} is missing", 2, path.stem)
    data = json.loads(path.read_text())
    params = []
    for group in data["testGroups"]:
        for test in group["tests"]:
            if select(group, test):
                params.append(pytest.param(group, test, id=f"{path.stem}-tc{test['tcId']}"))
    assert params, f"no usable vectors in {path}"
    return params


def _wycheproof_aead(filename: str, cipher_for: Callable[[dict[str, Any]], BulkCipher | None],
                     nonce_ok: bool) -> list[Any]:
    """`cipher_for(group)`: the cipher for its key and tag sizes, None if no suite has them."""
    def select(group: dict[str, Any], test: dict[str, Any]) -> bool:
        if cipher_for(group) is None:
            return False
        return (group["ivSize"] == 96) == nonce_ok
    params = _wycheproof(filename, select)
    if params[0].id.endswith("-unavailable"):
        return params
    return [pytest.param(cipher_for(p.values[0]), p.values[1], id=p.id) for p in params]


def _gcm_cipher(group: dict[str, Any]) -> BulkCipher | None:
    if group["tagSize"] != 128:
        return None
    return GCM_BY_KEY_LEN.get(group["keySize"] // 8)  # None for AES-192: no such suite


def _ccm_cipher(group: dict[str, Any]) -> BulkCipher | None:
    # 128-bit tags (CCM) or 64-bit ones (CCM_8); AES-192 and other tag sizes: no such suite.
    return CCM_BY_KEY_AND_TAG_LEN.get((group["keySize"] // 8, group["tagSize"] // 8))


def _chacha_cipher(group: dict[str, Any]) -> BulkCipher | None:
    ok = group["keySize"] == 256 and group["tagSize"] == 128
    return BulkCipher.CHACHA20_POLY1305 if ok else None


WYCHEPROOF_AEAD = (_wycheproof_aead("aes_gcm_test.json", _gcm_cipher, True)
                   + _wycheproof_aead("aes_ccm_test.json", _ccm_cipher, True)
                   + _wycheproof_aead("chacha20_poly1305_test.json", _chacha_cipher, True))
WYCHEPROOF_AEAD_OTHER_NONCES = (
    _wycheproof_aead("aes_gcm_test.json", _gcm_cipher, False)
    + _wycheproof_aead("aes_ccm_test.json", _ccm_cipher, False)
    + _wycheproof_aead("chacha20_poly1305_test.json", _chacha_cipher, False))


@pytest.mark.parametrize("cipher, test", WYCHEPROOF_AEAD)
def test_wycheproof_aead(backend: ModuleType, cipher: BulkCipher, test: dict[str, Any]) -> None:
    """96-bit nonces, 128-bit tags (64-bit for CCM_8).

    valid: encryption gives ct || tag and it decrypts to msg.  invalid (here: modified
    tags; the invalid nonce sizes are in the test below): decryption returns None.
    acceptable (none in the current files; Wycheproof uses it for legal but discouraged
    parameters): the vector is still a correct encryption, so encryption must match, and
    decryption may either return msg or refuse (None), never another plaintext.
    """
    key, iv, aad, msg, ct, tag = (bytes.fromhex(test[k])
                                  for k in ("key", "iv", "aad", "msg", "ct", "tag"))
    result = test["result"]
    if result == "invalid":
        assert backend.aead_decrypt(cipher, key, iv, aad, ct + tag) is None
        return
    assert backend.aead_encrypt(cipher, key, iv, aad, msg) == ct + tag
    opened = backend.aead_decrypt(cipher, key, iv, aad, ct + tag)
    if result == "valid":
        assert opened == msg
    else:
        assert result == "acceptable", result
        assert opened in (msg, None), test["flags"]


@pytest.mark.parametrize("cipher, test", WYCHEPROOF_AEAD_OTHER_NONCES)
def test_wycheproof_aead_other_nonce_sizes(backend: ModuleType, cipher: BulkCipher,
                                           test: dict[str, Any]) -> None:
    """Vectors with nonces other than 96 bits (valid for GCM or CCM or not) must be refused.

    These include the Wycheproof "invalid" vectors that are invalid only because of their
    nonce size (ZeroLengthIv, InvalidNonceSize): our API takes 12-byte nonces only.
    """
    key, iv, aad, msg, ct, tag = (bytes.fromhex(test[k])
                                  for k in ("key", "iv", "aad", "msg", "ct", "tag"))
    assert len(iv) != NONCE_LEN
    with pytest.raises(ValueError):
        backend.aead_encrypt(cipher, key, iv, aad, msg)
    with pytest.raises(ValueError):
        backend.aead_decrypt(cipher, key, iv, aad, ct + tag)


def _pkcs5_pad(msg: bytes) -> bytes:
    n = 16 - len(msg) % 16
    return msg + bytes([n]) * n


def _pkcs5_unpad(padded: bytes) -> bytes | None:
    """msg, or None if `padded` does not end in valid PKCS#5 padding."""
    if not padded or len(padded) % 16:
        return None
    n = padded[-1]
    if not 1 <= n <= 16 or padded[-n:] != bytes([n]) * n:
        return None
    return padded[:-n]


WYCHEPROOF_CBC = _wycheproof(
    "aes_cbc_pkcs5_test.json",
    lambda g, t: g["keySize"] in (128, 256) and g["ivSize"] == 128)  # no AES-192 suites


@pytest.mark.parametrize("group, test", WYCHEPROOF_CBC)
def test_wycheproof_aes_cbc(backend: ModuleType, group: dict[str, Any],
                            test: dict[str, Any]) -> None:
    """Our CBC primitive does no padding (the record layer adds TLS padding itself).

    valid: cbc_encrypt(msg || PKCS#5 padding) == ct, and ct decrypts back to that.
    invalid (bad or missing padding): decryption followed by a PKCS#5 check fails, and
    the raw decryption is genuine (it re-encrypts to ct).  There are no "acceptable"
    vectors in this file; they would be checked like valid ones.
    """
    key, iv, msg, ct = (bytes.fromhex(test[k]) for k in ("key", "iv", "msg", "ct"))
    if test["result"] == "invalid":
        raw = backend.cbc_decrypt(key, iv, ct)
        assert _pkcs5_unpad(raw) is None
        assert backend.cbc_encrypt(key, iv, raw) == ct
        return
    padded = _pkcs5_pad(msg)
    assert backend.cbc_encrypt(key, iv, padded) == ct
    assert backend.cbc_decrypt(key, iv, ct) == padded


HMAC_FILES = {
    "hmac_sha1_test.json": MacAlgorithm.SHA1,
    "hmac_sha256_test.json": MacAlgorithm.SHA256,
    "hmac_sha384_test.json": MacAlgorithm.SHA384,
}
HMAC_LEN = {MacAlgorithm.SHA1: 20, MacAlgorithm.SHA256: 32, MacAlgorithm.SHA384: 48}


def _hmac_params() -> list[Any]:
    params = []
    for filename, mac in HMAC_FILES.items():
        for p in _wycheproof(filename, lambda g, t: True):
            if p.id.endswith("-unavailable"):
                params.append(pytest.param(mac, None, None, id=p.id, marks=p.marks))
            else:
                params.append(pytest.param(mac, *p.values, id=p.id))
    return params


@pytest.mark.parametrize("mac, group, test", _hmac_params())
def test_wycheproof_hmac(backend: ModuleType, mac: MacAlgorithm, group: dict[str, Any],
                         test: dict[str, Any]) -> None:
    """tagSize is in bits; the MAC is compared truncated to it.  invalid: must not match."""
    key, msg, tag = (bytes.fromhex(test[k]) for k in ("key", "msg", "tag"))
    full = backend.hmac(mac, key, msg)
    assert len(full) == HMAC_LEN[mac]
    truncated = full[:group["tagSize"] // 8]
    if test["result"] == "invalid":
        assert truncated != tag
    else:
        assert test["result"] == "valid", test["result"]
        assert truncated == tag


# ---------------------------------------------------------------------------------------
# Argument errors
# ---------------------------------------------------------------------------------------

AEAD_KEY_LEN = {BulkCipher.AES_128_GCM: 16, BulkCipher.AES_256_GCM: 32,
                BulkCipher.CHACHA20_POLY1305: 32,
                BulkCipher.AES_128_CCM: 16, BulkCipher.AES_128_CCM_8: 16,
                BulkCipher.AES_256_CCM: 32, BulkCipher.AES_256_CCM_8: 32}


def _bad_key_cases() -> list[Any]:
    cases = []
    for cipher, good in AEAD_KEY_LEN.items():
        for n in sorted({0, 1, good - 1, good + 1, 24, 16 if good == 32 else 32, 64}):
            cases.append(pytest.param(cipher, n, id=f"{cipher.name}-key{n}"))
    return cases


@pytest.mark.parametrize("cipher, key_len", _bad_key_cases())
def test_aead_wrong_key_length(backend: ModuleType, cipher: BulkCipher, key_len: int) -> None:
    key, nonce = bytes(key_len), bytes(NONCE_LEN)
    with pytest.raises(ValueError):
        backend.aead_encrypt(cipher, key, nonce, b"", b"data")
    with pytest.raises(ValueError):
        backend.aead_decrypt(cipher, key, nonce, b"", bytes(32))


@pytest.mark.parametrize("cipher", list(AEAD_KEY_LEN), ids=lambda c: c.name)
@pytest.mark.parametrize("nonce_len", [0, 1, 8, 11, 13, 16, 24])
def test_aead_wrong_nonce_length(backend: ModuleType, cipher: BulkCipher,
                                 nonce_len: int) -> None:
    key, nonce = bytes(AEAD_KEY_LEN[cipher]), bytes(nonce_len)
    with pytest.raises(ValueError):
        backend.aead_encrypt(cipher, key, nonce, b"", b"data")
    with pytest.raises(ValueError):
        backend.aead_decrypt(cipher, key, nonce, b"", bytes(32))


@pytest.mark.parametrize("cipher", [BulkCipher.AES_128_CCM, BulkCipher.AES_256_CCM_8],
                         ids=lambda c: c.name)
def test_aead_decrypt_needs_the_whole_tag(backend: ModuleType, cipher: BulkCipher) -> None:
    """Shorter than the tag (16 bytes, 8 for CCM_8): a caller bug; exactly a tag: a forgery."""
    key, nonce = bytes(AEAD_KEY_LEN[cipher]), bytes(NONCE_LEN)
    tag_len = 8 if cipher.name.endswith("_8") else 16
    for n in (0, tag_len - 1):
        with pytest.raises(ValueError):
            backend.aead_decrypt(cipher, key, nonce, b"", bytes(n))
    assert backend.aead_decrypt(cipher, key, nonce, b"", bytes(tag_len)) is None
    sealed = backend.aead_encrypt(cipher, key, nonce, b"aad", b"")
    assert len(sealed) == tag_len and backend.aead_decrypt(cipher, key, nonce, b"aad", sealed) == b""


@pytest.mark.parametrize("cipher, key_len", [
    (BulkCipher.NULL, 0), (BulkCipher.NULL, 16),
    (BulkCipher.AES_128_CBC, 16), (BulkCipher.AES_256_CBC, 32),
], ids=lambda v: v.name if isinstance(v, BulkCipher) else f"key{v}")
def test_aead_non_aead_cipher(backend: ModuleType, cipher: BulkCipher, key_len: int) -> None:
    key, nonce = bytes(key_len), bytes(NONCE_LEN)
    with pytest.raises(ValueError):
        backend.aead_encrypt(cipher, key, nonce, b"", b"data")
    with pytest.raises(ValueError):
        backend.aead_decrypt(cipher, key, nonce, b"", bytes(32))


@pytest.mark.parametrize("key_len, iv_len, data_len", [
    (0, 16, 16), (15, 16, 16), (24, 16, 16), (33, 16, 16),  # key: AES-128/256 only
    (16, 0, 16), (16, 15, 16), (32, 17, 16), (16, 12, 16),  # IV: one block
    (16, 16, 1), (32, 16, 15), (16, 16, 17),                # data: whole blocks
], ids=lambda v: str(v))
def test_cbc_bad_arguments(backend: ModuleType, key_len: int, iv_len: int,
                           data_len: int) -> None:
    key, iv, data = bytes(key_len), bytes(iv_len), bytes(data_len)
    with pytest.raises(ValueError):
        backend.cbc_encrypt(key, iv, data)
    with pytest.raises(ValueError):
        backend.cbc_decrypt(key, iv, data)


def test_hmac_needs_a_hash(backend: ModuleType) -> None:
    with pytest.raises(ValueError):
        backend.hmac(MacAlgorithm.NONE, bytes(20), b"data")
