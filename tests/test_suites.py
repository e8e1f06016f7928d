"""Cipher-suite table tests.

Oracles: the code points as printed in the defining RFCs (typed in below: RFC 8422 6,
RFC 5289 3, RFC 7905 2, RFC 4279 3, RFC 5487 4, RFC 5489 3, RFC 6655, RFC 7251,
RFC 5746 3.3, RFC 7507 6);
OpenSSL's own table (`openssl ciphers -V -stdname`), where available; and the IANA name of
each suite, parsed here independently of the table to predict its algorithms.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from dtls import suites
from dtls.keys import PrfAlgorithm
from dtls.protection import BulkCipher, MacAlgorithm, Protection
from dtls.recordbase import DTLS1_0, DTLS1_2
from dtls.suites import (
    DEFAULT_CIPHER_SUITES,
    SIGNALLING_SUITES,
    SUITES,
    Authentication,
    CipherSuite,
    KeyExchange,
)

RFC_CODES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": 0xC02B,
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": 0xC02C,
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": 0xC02F,
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": 0xC030,
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCA9,
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCA8,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": 0xC009,
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": 0xC013,
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": 0xC00A,
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": 0xC014,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": 0xC023,
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": 0xC027,
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384": 0xC024,
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384": 0xC028,
    "TLS_PSK_WITH_AES_128_GCM_SHA256": 0x00A8,
    "TLS_PSK_WITH_AES_256_GCM_SHA384": 0x00A9,
    "TLS_PSK_WITH_AES_128_CBC_SHA256": 0x00AE,
    "TLS_PSK_WITH_AES_128_CBC_SHA": 0x008C,
    "TLS_PSK_WITH_AES_256_CBC_SHA": 0x008D,
    "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256": 0xC037,
    "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA": 0xC035,
    "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA": 0xC036,
    "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256": 0xCCAC,
    "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256": 0xCCAB,
    "TLS_PSK_WITH_AES_128_CCM": 0xC0A4,
    "TLS_PSK_WITH_AES_256_CCM": 0xC0A5,
    "TLS_PSK_WITH_AES_128_CCM_8": 0xC0A8,
    "TLS_PSK_WITH_AES_256_CCM_8": 0xC0A9,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM": 0xC0AC,
    "TLS_ECDHE_ECDSA_WITH_AES_256_CCM": 0xC0AD,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8": 0xC0AE,
    "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8": 0xC0AF,
}
CCM_8_NAMES = {n for n in RFC_CODES if n.endswith("_CCM_8")}
RFC_SCSV = {"TLS_EMPTY_RENEGOTIATION_INFO_SCSV": 0x00FF, "TLS_FALLBACK_SCSV": 0x5600}


def test_code_points_match_the_rfcs() -> None:
    assert {s.name: int(s) for s in CipherSuite} == RFC_CODES | RFC_SCSV
    assert {i.name: i.code for i in SUITES.values()} == RFC_CODES
    assert SIGNALLING_SUITES == {CipherSuite(c) for c in RFC_SCSV.values()}


def test_codes_are_unique() -> None:
    # An IntEnum silently turns a duplicated value into an alias; __members__ keeps aliases.
    assert len(CipherSuite.__members__) == len(list(CipherSuite)) == len({int(s) for s in CipherSuite})


def _openssl_table() -> dict[str, int]:
    if shutil.which("openssl") is None:
        return {}
    try:
        out = subprocess.run(["openssl", "ciphers", "-V", "-stdname", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
                             capture_output=True, text=True, check=True, timeout=10).stdout
    except (subprocess.SubprocessError, OSError):
        return {}
    table = {}
    for m in re.finditer(r"0x([0-9A-F]{2}),0x([0-9A-F]{2}) - (TLS_\w+)", out):
        table[m.group(3)] = int(m.group(1) + m.group(2), 16)
    return table


def test_code_points_match_openssl() -> None:
    table = _openssl_table()
    if not table:
        pytest.skip("openssl ciphers -V -stdname unavailable")
    missing = [n for n in RFC_CODES if n not in table]
    if len(missing) == len(RFC_CODES):
        pytest.skip("this openssl lists none of our suites")
    for info in SUITES.values():
        if info.name in table:
            assert table[info.name] == info.code, info.name
    assert len(missing) <= 2, f"openssl lacks {missing}"  # e.g. builds without PSK


def _expected_from_name(name: str) -> tuple[KeyExchange, Authentication, BulkCipher, MacAlgorithm,
                                              PrfAlgorithm]:
    """What the IANA name says, decoded without the table (RFC 5246 A.5 naming).

    The AES-CCM names carry no hash (RFC 6655, RFC 7251): they use the SHA-256 PRF.
    """
    m = re.fullmatch(r"TLS_(ECDHE_PSK|ECDHE_ECDSA|ECDHE_RSA|PSK)_WITH_(\w+?)(?:_(SHA|SHA256|SHA384))?",
                     name)
    assert m, name
    kx_auth, bulk, tail = m.groups()
    kx = {"ECDHE_PSK": KeyExchange.ECDHE_PSK, "PSK": KeyExchange.PSK}.get(kx_auth, KeyExchange.ECDHE)
    auth = {"ECDHE_ECDSA": Authentication.ECDSA, "ECDHE_RSA": Authentication.RSA}.get(
        kx_auth, Authentication.PSK)
    cipher = {"AES_128_GCM": BulkCipher.AES_128_GCM, "AES_256_GCM": BulkCipher.AES_256_GCM,
              "CHACHA20_POLY1305": BulkCipher.CHACHA20_POLY1305,
              "AES_128_CBC": BulkCipher.AES_128_CBC, "AES_256_CBC": BulkCipher.AES_256_CBC,
              "AES_128_CCM": BulkCipher.AES_128_CCM, "AES_256_CCM": BulkCipher.AES_256_CCM,
              "AES_128_CCM_8": BulkCipher.AES_128_CCM_8,
              "AES_256_CCM_8": BulkCipher.AES_256_CCM_8}[bulk]
    aead = "GCM" in bulk or "POLY1305" in bulk or "CCM" in bulk
    assert (tail is None) == ("CCM" in bulk), name
    mac = MacAlgorithm.NONE if aead else {"SHA": MacAlgorithm.SHA1, "SHA256": MacAlgorithm.SHA256,
                                           "SHA384": MacAlgorithm.SHA384}[tail]
    # RFC 5246 5: SHA-256 PRF unless the suite names SHA-384 (pre-1.2 "_SHA" suites included).
    prf = PrfAlgorithm.SHA384 if tail == "SHA384" else PrfAlgorithm.SHA256
    return kx, auth, cipher, mac, prf


@pytest.mark.parametrize("info", list(SUITES.values()), ids=lambda i: i.name)
def test_row_agrees_with_its_name(info: suites.CipherSuiteInfo) -> None:
    assert (info.key_exchange, info.authentication, info.cipher, info.mac, info.prf) == \
        _expected_from_name(info.name)
    assert info.verify_data_length == 12
    assert info.suite is SUITES[info.suite].suite and suites.suite_info(info.code) is info
    assert info.uses_psk == (info.authentication is Authentication.PSK) == (not info.needs_certificate)
    assert info.uses_ecdhe == info.name.startswith("TLS_ECDHE_")
    assert info.is_aead == (info.mac is MacAlgorithm.NONE)


@pytest.mark.parametrize("info", list(SUITES.values()), ids=lambda i: i.name)
def test_every_protection_is_valid(info: suites.CipherSuiteInfo) -> None:
    for etm in (False, True):
        prot = suites.protection_for(info.suite, etm)
        assert prot == info.protection(etm) and isinstance(prot, Protection)
        assert prot.cipher is info.cipher and prot.mac is info.mac
        # RFC 7366: encrypt-then-MAC only changes CBC records; AEAD ignores it.
        assert prot.encrypt_then_mac == (etm and prot.is_cbc)
        assert prot.is_aead == info.is_aead and prot.is_cbc == (not info.is_aead)
        assert prot.record_length(100) > 100 + 13
        if prot.is_cbc:
            assert prot.mac_length > 0 and prot.fixed_iv_length == 0
        else:
            assert prot.mac_length == 0 and prot.fixed_iv_length in (4, 12)
            assert prot.tag_length == (8 if info.name.endswith("_CCM_8") else 16)


def test_versions() -> None:
    dtls10 = {i.suite for i in SUITES.values() if i.supports_version(DTLS1_0)}
    # DTLS 1.0 (RFC 4347): CBC with HMAC-SHA1 only; every other suite is DTLS 1.2 only.
    assert dtls10 == {s for s in SUITES if s.name.endswith("_CBC_SHA")}
    assert len(dtls10) == 8
    for info in SUITES.values():
        assert info.supports_version(DTLS1_2)
        assert info.prf_for(DTLS1_2) is info.prf
        assert not info.supports_version(0xFEFE) and not info.supports_version(0x0303)
        if info.suite in dtls10:
            assert info.min_version == DTLS1_0 and info.cipher in (
                BulkCipher.AES_128_CBC, BulkCipher.AES_256_CBC) and info.mac is MacAlgorithm.SHA1
            assert info.prf_for(DTLS1_0) is PrfAlgorithm.MD5_SHA1  # RFC 4346 5 via RFC 4347
        else:
            assert info.min_version == DTLS1_2
            with pytest.raises(ValueError):
                info.prf_for(DTLS1_0)


def test_scsvs_and_unknown_codes_are_not_negotiable() -> None:
    for code in (*RFC_SCSV.values(), 0x0000, 0x002F, 0x1301, 0xFFFF):
        assert SUITES.get(code) is None  # type: ignore[call-overload]
        with pytest.raises(ValueError):
            suites.suite_info(code)
        with pytest.raises(ValueError):
            suites.protection_for(code, False)


def test_default_order() -> None:
    order = DEFAULT_CIPHER_SUITES
    # Every suite except the 8-byte-tag CCM_8 ones, which must be asked for (suites.py).
    assert {s.name for s in suites.CCM_8_SUITES} == CCM_8_NAMES
    assert sorted(order) == sorted(set(SUITES) - set(suites.CCM_8_SUITES))
    assert len(set(order)) == len(order)
    assert not SIGNALLING_SUITES & set(order)
    infos = [SUITES[s] for s in order]
    n_aead = sum(i.is_aead for i in infos)
    assert all(i.is_aead for i in infos[:n_aead]), "every AEAD suite precedes every CBC suite"
    assert infos[0].suite is CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    n_ecdhe_aead = sum(i.is_aead and i.key_exchange is KeyExchange.ECDHE for i in infos)
    assert all(i.key_exchange is KeyExchange.ECDHE for i in infos[:n_ecdhe_aead])
    assert CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 in order[:4]
    assert CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 in order[:4]
    # Within each (key exchange, authentication) family: AES-CCM after GCM and ChaCha20,
    # SHA-2 CBC before SHA-1 CBC.
    for fam in {(i.key_exchange, i.authentication) for i in infos}:
        aead = ["CCM" in i.name for i in infos if i.is_aead and (i.key_exchange, i.authentication) == fam]
        assert aead == sorted(aead), fam
        cbc = [i for i in infos if not i.is_aead and (i.key_exchange, i.authentication) == fam]
        sha1 = [k for k, i in enumerate(cbc) if i.mac is MacAlgorithm.SHA1]
        assert sha1 == list(range(len(cbc) - len(sha1), len(cbc))), fam


def test_filter_suites() -> None:
    offered = [0x5600, 0x1301, *DEFAULT_CIPHER_SUITES, 0x00FF, int(DEFAULT_CIPHER_SUITES[0])]
    everything = suites.filter_suites(offered, version=DTLS1_2)
    assert everything == DEFAULT_CIPHER_SUITES  # unknown, SCSV and duplicate dropped, order kept
    assert all(isinstance(s, CipherSuite) for s in everything)
    dtls10 = suites.filter_suites(offered, version=DTLS1_0)
    assert dtls10 and all(SUITES[s].name.endswith("_CBC_SHA") for s in dtls10)
    ecdsa = suites.filter_suites(offered, version=DTLS1_2, authentications={Authentication.ECDSA})
    assert ecdsa and all("ECDSA" in s.name for s in ecdsa)
    psk = suites.filter_suites(offered, version=DTLS1_2, key_exchanges={KeyExchange.PSK})
    assert psk and all(s.name.startswith("TLS_PSK_") for s in psk)
    assert suites.filter_suites(offered, version=0xFEFE) == ()
    assert suites.filter_suites([], version=DTLS1_2) == ()


def test_ccm_8_suites_are_selectable() -> None:
    """Not offered by default, but negotiable in DTLS 1.2 when a configuration lists them."""
    wanted = [0xC0A8, 0xC0AE, *DEFAULT_CIPHER_SUITES]
    assert not set(suites.CCM_8_SUITES) & set(DEFAULT_CIPHER_SUITES)
    assert suites.filter_suites(wanted, version=DTLS1_2)[:2] == (
        CipherSuite.TLS_PSK_WITH_AES_128_CCM_8, CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8)
    assert suites.filter_suites(wanted, version=DTLS1_2, key_exchanges={KeyExchange.PSK})[0] \
        is CipherSuite.TLS_PSK_WITH_AES_128_CCM_8
    assert suites.filter_suites(wanted, version=DTLS1_2, authentications={Authentication.ECDSA})[0] \
        is CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8
    assert suites.filter_suites(suites.CCM_8_SUITES, version=DTLS1_0) == ()
    for code in (0xC0A8, 0xC0A9, 0xC0AE, 0xC0AF):
        prot = suites.protection_for(code, True)  # EtM ignored: AEAD
        assert prot.is_aead and prot.tag_length == 8 and prot.fixed_iv_length == 4
        assert prot.record_length(100) == 13 + 8 + 100 + 8
        assert suites.suite_info(code).prf_for(DTLS1_2) is PrfAlgorithm.SHA256
