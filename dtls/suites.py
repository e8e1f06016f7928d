"""The cipher suites this implementation supports and what each one means.

One row per suite: IANA code point, key exchange, authentication, the record `Protection`
it maps to, the DTLS 1.2 PRF hash and the oldest DTLS version it may be used with.  The
handshake negotiates a `CipherSuite`; everything it then needs (PRF, key block layout,
record protection) is looked up here rather than parsed out of the name at run time.

Code points are from the IANA TLS Cipher Suites registry, as assigned by RFC 8422 6 and
RFC 5289 3 (ECDHE with AES-CBC/GCM), RFC 7905 2 (ChaCha20-Poly1305), RFC 4279 3 and
RFC 5487 4 (PSK), RFC 5489 3 (ECDHE_PSK), RFC 6655 (PSK with AES-CCM), RFC 7251
(ECDHE_ECDSA with AES-CCM), RFC 5746 3.3 and RFC 7507 6 (the two SCSVs).

Versions: AEAD suites (RFC 5288 4, RFC 7905 3, RFC 6655) and the HMAC-SHA256/384 suites
(RFC 5289 3.1, RFC 5487) are used in DTLS 1.2 only.  RFC 5487 3.2 / RFC 5489 would allow
the PSK and ECDHE_PSK CBC_SHA256 suites with TLS 1.0's PRF too (OpenSSL does); we keep
every SHA-256/384 suite to DTLS 1.2 so that DTLS 1.0 is exactly the CBC-SHA1 profile.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType

from .keys import VERIFY_DATA_LENGTH, PrfAlgorithm
from .protection import BulkCipher, MacAlgorithm, Protection
from .recordbase import DTLS1_0, DTLS1_2


class CipherSuite(IntEnum):
    """IANA cipher suite code points (two bytes on the wire, RFC 5246 A.5)."""

    # ECDHE with AES-GCM (RFC 5289 3.2)
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 = 0xC02B
    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 = 0xC02C
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 = 0xC02F
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 = 0xC030
    # ChaCha20-Poly1305 (RFC 7905 2)
    TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCA8
    TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCA9
    TLS_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAB
    TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAC
    # ECDHE with AES-CBC and HMAC-SHA1 (RFC 8422 6)
    TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA = 0xC009
    TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA = 0xC00A
    TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA = 0xC013
    TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA = 0xC014
    # ECDHE with AES-CBC and HMAC-SHA256/384 (RFC 5289 3.1)
    TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 = 0xC023
    TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384 = 0xC024
    TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256 = 0xC027
    TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384 = 0xC028
    # PSK (RFC 4279 3, RFC 5487 4)
    TLS_PSK_WITH_AES_128_CBC_SHA = 0x008C
    TLS_PSK_WITH_AES_256_CBC_SHA = 0x008D
    TLS_PSK_WITH_AES_128_GCM_SHA256 = 0x00A8
    TLS_PSK_WITH_AES_256_GCM_SHA384 = 0x00A9
    TLS_PSK_WITH_AES_128_CBC_SHA256 = 0x00AE
    # ECDHE_PSK (RFC 5489 3)
    TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA = 0xC035
    TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA = 0xC036
    TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256 = 0xC037
    # PSK with AES-CCM (RFC 6655); _128_CCM_8 is RFC 7925's mandatory PSK suite
    TLS_PSK_WITH_AES_128_CCM = 0xC0A4
    TLS_PSK_WITH_AES_256_CCM = 0xC0A5
    TLS_PSK_WITH_AES_128_CCM_8 = 0xC0A8
    TLS_PSK_WITH_AES_256_CCM_8 = 0xC0A9
    # ECDHE_ECDSA with AES-CCM (RFC 7251); _128_CCM_8 is RFC 7925's mandatory one for
    # raw public keys and certificates
    TLS_ECDHE_ECDSA_WITH_AES_128_CCM = 0xC0AC
    TLS_ECDHE_ECDSA_WITH_AES_256_CCM = 0xC0AD
    TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 = 0xC0AE
    TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8 = 0xC0AF
    # Signalling cipher suite values: never negotiated, only offered.
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF  # RFC 5746 3.3
    TLS_FALLBACK_SCSV = 0x5600  # RFC 7507 6


SIGNALLING_SUITES: frozenset[CipherSuite] = frozenset(
    {CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV, CipherSuite.TLS_FALLBACK_SCSV}
)
"""SCSVs (RFC 5746 3.3, RFC 7507): a server must never select one."""


class KeyExchange(Enum):
    """How the premaster secret is agreed."""

    ECDHE = "ECDHE"  # RFC 8422 2
    PSK = "PSK"  # RFC 4279 2
    ECDHE_PSK = "ECDHE_PSK"  # RFC 5489 2


class Authentication(Enum):
    """What authenticates the server (and the key exchange)."""

    ECDSA = "ECDSA"  # certificate with an EC key; ServerKeyExchange signed (RFC 8422 2)
    RSA = "RSA"  # certificate with an RSA key; ServerKeyExchange signed (RFC 8422 2)
    PSK = "PSK"  # knowledge of the pre-shared key (RFC 4279, RFC 5489)


@dataclass(frozen=True)
class CipherSuiteInfo:
    """What one negotiated suite implies for the key schedule and the record layer."""

    suite: CipherSuite
    key_exchange: KeyExchange
    authentication: Authentication
    cipher: BulkCipher
    mac: MacAlgorithm
    """The record MAC for CBC suites; NONE for AEAD ones."""
    prf: PrfAlgorithm
    """The DTLS 1.2 PRF (RFC 5246 5); DTLS 1.0 always uses MD5+SHA-1, see `prf_for`."""
    min_version: int
    """DTLS1_0 (0xFEFF) or DTLS1_2 (0xFEFD): the oldest version this suite may be used with."""
    verify_data_length: int = VERIFY_DATA_LENGTH

    @property
    def code(self) -> int:
        return int(self.suite)

    @property
    def name(self) -> str:
        """The IANA name, e.g. TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256."""
        return self.suite.name

    @property
    def is_aead(self) -> bool:
        return self.mac is MacAlgorithm.NONE

    @property
    def needs_certificate(self) -> bool:
        """True when the server authenticates with a certificate (ECDSA or RSA)."""
        return self.authentication is not Authentication.PSK

    @property
    def uses_psk(self) -> bool:
        return self.key_exchange in (KeyExchange.PSK, KeyExchange.ECDHE_PSK)

    @property
    def uses_ecdhe(self) -> bool:
        return self.key_exchange in (KeyExchange.ECDHE, KeyExchange.ECDHE_PSK)

    def supports_version(self, version: int) -> bool:
        """Whether this suite may be negotiated in `version` (a DTLS wire version)."""
        if version == DTLS1_2:
            return True
        if version == DTLS1_0:
            return self.min_version == DTLS1_0
        return False

    def prf_for(self, version: int) -> PrfAlgorithm:
        """The PRF a connection at `version` uses: the suite's in DTLS 1.2, else MD5+SHA-1.

        RFC 4347 4.1 makes DTLS 1.0 inherit TLS 1.1's PRF (RFC 4346 5) for every suite;
        RFC 5246 5 gives DTLS 1.2 P_SHA256 unless the suite names another hash.
        """
        if not self.supports_version(version):
            raise ValueError(f"{self.name} cannot be used with version 0x{version:04x}")
        return self.prf if version == DTLS1_2 else PrfAlgorithm.MD5_SHA1

    def protection(self, encrypt_then_mac: bool = False) -> Protection:
        """The record Protection; `encrypt_then_mac` (RFC 7366) applies to CBC suites only.

        RFC 7366 3: encrypt-then-MAC means nothing for AEAD suites, and a server that
        picks one does not echo the extension, so it is ignored here rather than refused.
        """
        return Protection(self.cipher, self.mac, encrypt_then_mac and not self.is_aead)


def _row(
    suite: CipherSuite,
    kx: KeyExchange,
    auth: Authentication,
    cipher: BulkCipher,
    mac: MacAlgorithm,
    prf: PrfAlgorithm,
) -> CipherSuiteInfo:
    # The only DTLS 1.0 suites are CBC with HMAC-SHA1 (RFC 4347 4.1 uses TLS 1.1's suites).
    dtls10 = cipher in (BulkCipher.AES_128_CBC, BulkCipher.AES_256_CBC) and mac is MacAlgorithm.SHA1
    return CipherSuiteInfo(suite, kx, auth, cipher, mac, prf, DTLS1_0 if dtls10 else DTLS1_2)


_CS = CipherSuite
_E, _P, _EP = KeyExchange.ECDHE, KeyExchange.PSK, KeyExchange.ECDHE_PSK
_ECDSA, _RSA, _PSKA = Authentication.ECDSA, Authentication.RSA, Authentication.PSK
_G128, _G256 = BulkCipher.AES_128_GCM, BulkCipher.AES_256_GCM
_CHACHA = BulkCipher.CHACHA20_POLY1305
_M128, _M256 = BulkCipher.AES_128_CCM, BulkCipher.AES_256_CCM
_M128_8, _M256_8 = BulkCipher.AES_128_CCM_8, BulkCipher.AES_256_CCM_8
_C128, _C256 = BulkCipher.AES_128_CBC, BulkCipher.AES_256_CBC
_NOMAC, _SHA1, _SHA256, _SHA384 = (
    MacAlgorithm.NONE, MacAlgorithm.SHA1, MacAlgorithm.SHA256, MacAlgorithm.SHA384)
_PRF256, _PRF384 = PrfAlgorithm.SHA256, PrfAlgorithm.SHA384

_ROWS = (
    _row(_CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, _E, _ECDSA, _G128, _NOMAC, _PRF256),
    _row(_CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, _E, _ECDSA, _G256, _NOMAC, _PRF384),
    _row(_CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, _E, _RSA, _G128, _NOMAC, _PRF256),
    _row(_CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, _E, _RSA, _G256, _NOMAC, _PRF384),
    _row(_CS.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, _E, _RSA, _CHACHA, _NOMAC, _PRF256),
    _row(_CS.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, _E, _ECDSA, _CHACHA, _NOMAC, _PRF256),
    _row(_CS.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256, _P, _PSKA, _CHACHA, _NOMAC, _PRF256),
    _row(_CS.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256, _EP, _PSKA, _CHACHA, _NOMAC, _PRF256),
    # Suites defined before TLS 1.2 (..._SHA) use the default SHA-256 PRF (RFC 5246 5).
    _row(_CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, _E, _ECDSA, _C128, _SHA1, _PRF256),
    _row(_CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, _E, _ECDSA, _C256, _SHA1, _PRF256),
    _row(_CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, _E, _RSA, _C128, _SHA1, _PRF256),
    _row(_CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, _E, _RSA, _C256, _SHA1, _PRF256),
    _row(_CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, _E, _ECDSA, _C128, _SHA256, _PRF256),
    _row(_CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384, _E, _ECDSA, _C256, _SHA384, _PRF384),
    _row(_CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, _E, _RSA, _C128, _SHA256, _PRF256),
    _row(_CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384, _E, _RSA, _C256, _SHA384, _PRF384),
    _row(_CS.TLS_PSK_WITH_AES_128_CBC_SHA, _P, _PSKA, _C128, _SHA1, _PRF256),
    _row(_CS.TLS_PSK_WITH_AES_256_CBC_SHA, _P, _PSKA, _C256, _SHA1, _PRF256),
    _row(_CS.TLS_PSK_WITH_AES_128_GCM_SHA256, _P, _PSKA, _G128, _NOMAC, _PRF256),
    _row(_CS.TLS_PSK_WITH_AES_256_GCM_SHA384, _P, _PSKA, _G256, _NOMAC, _PRF384),
    _row(_CS.TLS_PSK_WITH_AES_128_CBC_SHA256, _P, _PSKA, _C128, _SHA256, _PRF256),
    _row(_CS.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA, _EP, _PSKA, _C128, _SHA1, _PRF256),
    _row(_CS.TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA, _EP, _PSKA, _C256, _SHA1, _PRF256),
    _row(_CS.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256, _EP, _PSKA, _C128, _SHA256, _PRF256),
    # AES-CCM: the TLS 1.2 default SHA-256 PRF for all of them (RFC 6655, RFC 7251).
    _row(_CS.TLS_PSK_WITH_AES_128_CCM, _P, _PSKA, _M128, _NOMAC, _PRF256),
    _row(_CS.TLS_PSK_WITH_AES_256_CCM, _P, _PSKA, _M256, _NOMAC, _PRF256),
    _row(_CS.TLS_PSK_WITH_AES_128_CCM_8, _P, _PSKA, _M128_8, _NOMAC, _PRF256),
    _row(_CS.TLS_PSK_WITH_AES_256_CCM_8, _P, _PSKA, _M256_8, _NOMAC, _PRF256),
    _row(_CS.TLS_ECDHE_ECDSA_WITH_AES_128_CCM, _E, _ECDSA, _M128, _NOMAC, _PRF256),
    _row(_CS.TLS_ECDHE_ECDSA_WITH_AES_256_CCM, _E, _ECDSA, _M256, _NOMAC, _PRF256),
    _row(_CS.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, _E, _ECDSA, _M128_8, _NOMAC, _PRF256),
    _row(_CS.TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8, _E, _ECDSA, _M256_8, _NOMAC, _PRF256),
)

SUITES: Mapping[CipherSuite, CipherSuiteInfo] = MappingProxyType({r.suite: r for r in _ROWS})
"""Every negotiable suite (SCSVs excluded), keyed by code point."""

DEFAULT_CIPHER_SUITES: tuple[CipherSuite, ...] = (
    # Forward-secret AEAD first; AES-128-GCM leads (hardware AES everywhere it matters),
    # ChaCha20 right after it for peers without AES instructions, AES-256 after that.
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    _CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    _CS.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    _CS.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    _CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    # AES-CCM after GCM/ChaCha20: two AES calls per block, the CBC-MAC half serial; it is
    # there for constrained peers (RFC 7251).  CCM_8 is not in this list: see CCM_8_SUITES.
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_CCM,
    # PSK AEAD: the ECDHE_PSK one keeps forward secrecy, plain PSK does not.
    _CS.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
    _CS.TLS_PSK_WITH_AES_128_GCM_SHA256,
    _CS.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
    _CS.TLS_PSK_WITH_AES_256_GCM_SHA384,
    _CS.TLS_PSK_WITH_AES_128_CCM,
    _CS.TLS_PSK_WITH_AES_256_CCM,
    # CBC last (MAC-then-encrypt padding oracles; RFC 7525 4.2 prefers AEAD), SHA-2 MACs
    # before SHA-1; the SHA-1 ones are all DTLS 1.0 has.
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
    _CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
    _CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
    _CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
    _CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
    _CS.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256,
    _CS.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA,
    _CS.TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA,
    _CS.TLS_PSK_WITH_AES_128_CBC_SHA256,
    _CS.TLS_PSK_WITH_AES_128_CBC_SHA,
    _CS.TLS_PSK_WITH_AES_256_CBC_SHA,
)
"""Our preference order over every supported suite except CCM_8_SUITES; `filter_suites`
narrows it to what a configuration can serve (certificate type, PSK present, version)."""

CCM_8_SUITES: tuple[CipherSuite, ...] = (
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
    _CS.TLS_PSK_WITH_AES_128_CCM_8,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8,
    _CS.TLS_PSK_WITH_AES_256_CCM_8,
)
"""Supported and negotiable, but only when a configuration lists them: not in the defaults.

Their 8-byte tag gives 2^-64 per forgery attempt, and DTLS lets an attacker keep trying
for free: records that fail authentication are silently dropped, the association lives
on (RFC 6347 4.1.2.7), and this stack sets no limit on failed records (DTLS 1.3, RFC 9147,
allows CCM_8 only with additional safeguards against forgery).  Deployments that need them
(RFC 7925 makes the two 128-bit ones mandatory for its IoT profiles, and some constrained
stacks speak nothing else) list them explicitly: `filter_suites(CCM_8_SUITES[:2] + ...)`.
"""


def suite_info(code: int) -> CipherSuiteInfo:
    """The table row for a negotiable suite; ValueError for SCSVs and unknown codes.

    Use `SUITES.get(code)` to test membership; a peer that selects something we did not
    offer is the handshake's illegal_parameter to raise (RFC 5246 7.4.1.3).
    """
    try:
        return SUITES[CipherSuite(code)]
    except (KeyError, ValueError):
        raise ValueError(f"0x{code:04x} is not a negotiable cipher suite here") from None


def protection_for(suite: int, encrypt_then_mac: bool) -> Protection:
    """Record Protection for a negotiated suite; EtM (RFC 7366) only changes CBC suites."""
    return suite_info(suite).protection(encrypt_then_mac)


def filter_suites(
    suites: Iterable[int],
    *,
    version: int,
    key_exchanges: Collection[KeyExchange] | None = None,
    authentications: Collection[Authentication] | None = None,
) -> tuple[CipherSuite, ...]:
    """The known, negotiable suites of `suites`, in the given order, usable at `version`.

    Unknown codes and SCSVs are dropped (RFC 5246 7.4.1.2: ignore suites you do not
    recognise), as are duplicates.  `key_exchanges` / `authentications` restrict the
    result to what the local configuration can actually do (None: no restriction).
    """
    out: list[CipherSuite] = []
    seen: set[CipherSuite] = set()
    for code in suites:
        info = SUITES.get(code)  # type: ignore[call-overload]
        if info is None or info.suite in seen or not info.supports_version(version):
            continue
        if key_exchanges is not None and info.key_exchange not in key_exchanges:
            continue
        if authentications is not None and info.authentication not in authentications:
            continue
        seen.add(info.suite)
        out.append(info.suite)
    return tuple(out)
