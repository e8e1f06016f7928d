"""`DtlsConfiguration`: everything a `Connection` needs to know before it starts.

One configuration may be shared by many connections (a server's cookie signer must be:
that is what makes the HelloVerifyRequest exchange stateless).  Secrets (the private key,
the cookie secret) are excluded from the repr.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from cryptography import x509

from . import suites as dtls_suites
from .cookie import CookieSigner
from .extensions import NamedGroup
from .recordbase import DTLS1_0, DTLS1_2
from .session import Session, SessionCache
from .signatures import KeyKind, PrivateKey, check_private_key, key_kind
from .suites import Authentication, CipherSuite, suite_info
from .tickets import TicketKeys
from .verify import CaVerifier, CertificateVerifier, PinnedFingerprintVerifier

_USABLE_SUITES_CACHE: dict[tuple[object, ...], tuple[int, ...]] = {}
"""DtlsConfiguration.usable_cipher_suites's memo: its inputs -> the positions in
`cipher_suites` of the usable suites (the answer is a pure function of the inputs)."""
_USABLE_SUITES_CACHE_SIZE = 256

_CS = CipherSuite
SUPPORTED_CIPHER_SUITES: tuple[CipherSuite, ...] = (
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    _CS.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
    # ECDHE_RSA (RFC 8422 2.2, RFC 5289, RFC 7905).
    _CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    _CS.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    _CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    _CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
    _CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384,
    _CS.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
    _CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
    # PSK (RFC 4279, RFC 5487, RFC 7905) and ECDHE_PSK (RFC 5489, RFC 7905).
    _CS.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
    _CS.TLS_PSK_WITH_AES_128_GCM_SHA256,
    _CS.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
    _CS.TLS_PSK_WITH_AES_256_GCM_SHA384,
    _CS.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256,
    _CS.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA,
    _CS.TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA,
    _CS.TLS_PSK_WITH_AES_128_CBC_SHA256,
    _CS.TLS_PSK_WITH_AES_128_CBC_SHA,
    _CS.TLS_PSK_WITH_AES_256_CBC_SHA,
    # AES-CCM (RFC 6655 PSK, RFC 7251 ECDHE_ECDSA) for constrained peers; the CCM_8 ones
    # (RFC 7925's mandatory IoT suites) only when a configuration lists them.
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_CCM,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8,
    _CS.TLS_PSK_WITH_AES_128_CCM,
    _CS.TLS_PSK_WITH_AES_256_CCM,
    _CS.TLS_PSK_WITH_AES_128_CCM_8,
    _CS.TLS_PSK_WITH_AES_256_CCM_8,
)
SUPPORTED_VERSIONS: tuple[int, ...] = (DTLS1_2, DTLS1_0)
"""Wire versions we implement, newest first (DTLS counts down: 1.2 = 0xFEFD, 1.0 = 0xFEFF)."""
MAX_SESSION_LIFETIME = 24 * 3600.0
"""RFC 5246 F.1.4: an upper limit of 24 hours is suggested for session ID lifetimes."""

"""What this handshake can negotiate so far: ECDHE_ECDSA, ECDHE_RSA, PSK and ECDHE_PSK."""

DEFAULT_CIPHER_SUITES: tuple[CipherSuite, ...] = tuple(
    s for s in dtls_suites.DEFAULT_CIPHER_SUITES
    if s in SUPPORTED_CIPHER_SUITES and suite_info(s).is_aead)
"""AEAD only by default (RFC 7525 4.2); the CBC suites (MAC-then-encrypt unless RFC 7366
is negotiated) must be asked for.  Each side only ever uses the ones it has credentials
for: certificate suites need a certificate (server) or trust settings (client), PSK
suites a PSK."""

SUPPORTED_GROUPS: tuple[NamedGroup, ...] = (
    NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1)

# validate() runs once per Connection (a server makes one per handshake): build these once.
_SUPPORTED_SUITE_SET = frozenset(SUPPORTED_CIPHER_SUITES)
_SUPPORTED_GROUP_SET = frozenset(SUPPORTED_GROUPS)
_SUPPORTED_VERSION_SET = frozenset(SUPPORTED_VERSIONS)


class ClientAuth(Enum):
    """Whether a server asks for a client certificate (RFC 5246 7.4.4)."""

    NONE = "none"
    REQUEST = "request"
    """Send CertificateRequest; an empty Certificate answer is accepted."""
    REQUIRE = "require"
    """Send CertificateRequest; no certificate is handshake_failure (RFC 5246 7.4.6)."""


@dataclass
class DtlsConfiguration:
    """Settings for one side of a DTLS 1.2 association.

    Peer authentication: set `pinned_sha256` (WebRTC-style fingerprints) or
    `ca_certificates` (path validation; a client also checks `server_name`), or an
    explicit `verifier`.  A client always authenticates the server; a server
    authenticates clients when `client_auth` asks for certificates.  With no trust
    settings and `verify_peer` left True the Connection refuses to start: an
    unauthenticated handshake must be asked for.
    """

    is_client: bool = True
    certificate_chain: list[x509.Certificate] = field(default_factory=list)
    """Our certificates, leaf first (a server's are required; a client's are sent when
    the server asks, RFC 5246 7.4.6)."""
    private_key: PrivateKey | None = field(default=None, repr=False)
    """EC (P-256/P-384) or Ed25519 for ECDHE_ECDSA suites, RSA for ECDHE_RSA (RFC 8422 2);
    a client's signs CertificateVerify (ECDSA, RSA or, in DTLS 1.2, Ed25519 over the
    handshake messages, RFC 8422 5.8)."""
    server_name: str | None = None
    """Client: the name sent in server_name (RFC 6066 3) and checked against the certificate."""

    cipher_suites: tuple[CipherSuite, ...] = DEFAULT_CIPHER_SUITES
    groups: tuple[NamedGroup, ...] = SUPPORTED_GROUPS
    require_extended_master_secret: bool = True
    """RFC 7627 5.2/5.3: abort when the peer does not negotiate the extended master secret."""
    encrypt_then_mac: bool = True
    """Offer/accept RFC 7366 encrypt-then-MAC for CBC suites."""
    mac_then_encrypt: bool = False
    """Allow a CBC suite WITHOUT encrypt-then-MAC (the original MAC-then-encrypt, whose
    padding check is the Lucky Thirteen target; ours is constant-time, but a peer that
    cannot do RFC 7366 is better served by an AEAD suite).  Off: a CBC suite is only
    negotiated together with encrypt_then_mac; needed for DTLS 1.0 peers without RFC 7366."""

    verify_peer: bool = True
    pinned_sha256: tuple[bytes, ...] = ()
    ca_certificates: tuple[x509.Certificate, ...] = ()
    check_hostname: bool = True
    verifier: CertificateVerifier | None = None
    client_auth: ClientAuth = ClientAuth.NONE
    psk: bytes | None = field(default=None, repr=False)
    """Client: the pre-shared key (RFC 4279 2); enables the PSK suites."""
    psk_identity: bytes = b""
    """Client: the identity sent in ClientKeyExchange (RFC 4279 5.1: UTF-8, up to 128 bytes)."""
    psk_lookup: Callable[[bytes], bytes | None] | None = field(default=None, repr=False)
    """Server: identity -> PSK, or None for an unknown identity (unknown_psk_identity,
    RFC 4279 2); enables the PSK suites."""
    psk_identity_hint: bytes = b""
    """Server: sent in ServerKeyExchange when not empty (RFC 4279 2)."""
    alpn_protocols: tuple[bytes, ...] = ()
    """RFC 7301: client, the offer in preference order; server, what it accepts, preferred
    first.  Empty: no ALPN."""

    cookie_exchange: bool = True
    """Server: answer ClientHellos without a valid cookie with a HelloVerifyRequest."""
    cookie_signer: CookieSigner = field(default_factory=CookieSigner, repr=False)

    max_datagram_size: int = 1200
    """Bytes per datagram we build: fits IPv6's 1280-byte minimum MTU with room for headers."""
    initial_retransmit_timeout: float = 1.0
    """RFC 6347 4.2.4.1: 1 second initial timer."""
    max_retransmit_timeout: float = 60.0
    """RFC 6347 4.2.4.1: doubling stops at 60 seconds."""
    handshake_timeout: float = 120.0
    """Give up on a handshake that has not completed after this many seconds."""
    max_buffered_records: int = 16
    """Next-epoch records held until their keys exist (RFC 6347 4.1)."""
    forgery_limit: int | None = None
    """Records failing authentication tolerated under one key before the connection is
    closed with bad_record_mac; None takes the cipher's integrity limit
    (dtls.protection.INTEGRITY_LIMITS, RFC 9147 4.5.3: 2^36 for AES-GCM and ChaCha20,
    2^23 for AES-CCM, 2^7 for AES-CCM_8; none for CBC-HMAC)."""
    max_pending_events: int = 1024
    versions: tuple[int, ...] = (DTLS1_2,)
    """Wire versions we accept.  DTLS 1.0 (RFC 4347, 0xFEFF: TLS 1.1 PRF, CBC suites only,
    SHA-1 signatures) must be asked for: `versions=(DTLS1_2, DTLS1_0)`.  A client offers
    the newest and only accepts an older one the server picks if it is listed here."""

    session: Session | None = None
    """Client: a session from an earlier `Connection.session` to resume (RFC 5246 7.4.1.2,
    RFC 5077).  Offered only if it fits this configuration; otherwise ignored."""
    session_tickets: bool = True
    """RFC 5077: client, offer the session_ticket extension; server, issue tickets to
    clients that offer it and accept them for resumption."""
    session_cache_size: int = 1024
    """Server: sessions kept for resumption by session ID (LRU); 0 disables the cache."""
    session_lifetime: float = 7200.0
    """Server: seconds a session stays resumable, by ID or by ticket (at most 24 h)."""
    session_cache: SessionCache = field(default_factory=SessionCache, repr=False)
    """Server: shared by every connection made from this configuration."""
    ticket_keys: TicketKeys = field(default_factory=TicketKeys, repr=False)
    """Server: the rotating ticket encryption keys, shared like `session_cache`."""

    keylog: Callable[[str], None] | None = field(default=None, repr=False)
    """Called with one NSS key log line per handshake ("CLIENT_RANDOM <hex> <hex>"): append
    it to an SSLKEYLOGFILE so Wireshark can decrypt captures.  Leave None in production."""

    def usable_cipher_suites(self) -> tuple[CipherSuite, ...]:
        """`cipher_suites` narrowed to what our credentials allow, in order.

        Called several times per handshake (validate, build_verifier, every hello built or
        answered), and a server lists many suites: the answer is memoised in
        `_USABLE_SUITES_CACHE`, keyed on every input it depends on (never on the object,
        because a configuration is a mutable dataclass that may change between calls).
        """
        if self.is_client:
            has_psk = self.psk is not None
            # Certificate suites need a way to check the server's certificate.
            credential: object = not self.verify_peer or bool(
                self.verifier or self.pinned_sha256 or self.ca_certificates)
        else:
            has_psk = self.psk_lookup is not None
            # A server's certificate suites follow its key: ECDSA suites for EC and Ed25519
            # keys (RFC 8422 2, 5.1.3), RSA suites for RSA keys.
            credential = None
            if self.certificate_chain and self.private_key is not None:
                credential = (Authentication.RSA if key_kind(self.private_key) is KeyKind.RSA
                              else Authentication.ECDSA)
        suites = tuple(self.cipher_suites)
        try:
            key = (self.is_client, has_psk, credential, DTLS1_2 in self.versions, suites)
            picked = _USABLE_SUITES_CACHE.get(key)
        except TypeError:  # unhashable odd input: compute, do not cache
            return self._usable_cipher_suites(suites, has_psk, credential)
        if picked is None:
            usable = self._usable_cipher_suites(suites, has_psk, credential)
            if len(_USABLE_SUITES_CACHE) >= _USABLE_SUITES_CACHE_SIZE:
                _USABLE_SUITES_CACHE.clear()  # bounded: configurations are few in practice
            # Positions, not the suites: 0xC02B and CipherSuite(0xC02B) make equal keys, and
            # each configuration gets back its own objects.
            _USABLE_SUITES_CACHE[key] = tuple(
                i for i, s in enumerate(suites) if s in usable)
            return usable
        return tuple([suites[i] for i in picked])

    def _usable_cipher_suites(self, suites: tuple[CipherSuite, ...], has_psk: bool,
                              credential: object) -> tuple[CipherSuite, ...]:
        """The uncached computation; `credential` is a client's "can check a certificate"
        flag or a server's wanted Authentication (None: no certificate suites)."""
        if self.is_client:
            usable = tuple(s for s in suites
                           if (has_psk if suite_info(s).uses_psk else credential))
        else:
            usable = tuple(s for s in suites
                           if (has_psk if suite_info(s).uses_psk
                               else suite_info(s).authentication is credential))
        if DTLS1_2 not in self.versions:
            # DTLS 1.0 only: the suites it can carry (RFC 4347 4.1: no AEAD, no SHA-256 PRF).
            return tuple(s for s in usable if suite_info(s).supports_version(DTLS1_0))
        return usable

    def build_verifier(self) -> CertificateVerifier | None:
        """The verifier these settings describe; None means "do not verify"."""
        if not self.is_client and self.client_auth is ClientAuth.NONE:
            return None
        if self.is_client and not any(suite_info(s).needs_certificate
                                      for s in self.usable_cipher_suites()):
            return None  # a PSK-only client never sees a certificate
        if self.verifier is not None:
            return self.verifier
        if self.pinned_sha256:
            return PinnedFingerprintVerifier(self.pinned_sha256)
        if self.ca_certificates:
            if self.is_client and self.check_hostname and not self.server_name:
                raise ValueError("ca_certificates with check_hostname needs server_name")
            return CaVerifier(self.ca_certificates, check_hostname=self.check_hostname,
                              peer="server" if self.is_client else "client")
        if self.verify_peer:
            raise ValueError("peer authentication needs pinned_sha256, ca_certificates or a "
                             "verifier (or verify_peer=False to skip it)")
        return None

    def validate(self) -> None:
        """Raise ValueError for settings that cannot work (caller bugs, not peer errors)."""
        if self.private_key is not None:
            check_private_key(self.private_key)
        unknown = set(self.cipher_suites) - _SUPPORTED_SUITE_SET
        if unknown or not self.cipher_suites:
            raise ValueError(f"cipher_suites must be a non-empty subset of "
                             f"{[s.name for s in SUPPORTED_CIPHER_SUITES]}")
        if not self.groups or set(self.groups) - _SUPPORTED_GROUP_SET:
            raise ValueError(f"groups must be a non-empty subset of {list(SUPPORTED_GROUPS)}")
        if not self.versions or set(self.versions) - _SUPPORTED_VERSION_SET:
            raise ValueError("versions must be a non-empty subset of (DTLS1_2, DTLS1_0)")
        if self.session_cache_size < 0:
            raise ValueError("session_cache_size must be >= 0")
        if not 0 < self.session_lifetime <= MAX_SESSION_LIFETIME:
            raise ValueError("session_lifetime must be in (0, 86400] seconds (RFC 5246 F.1.4)")
        if not self.usable_cipher_suites():
            if DTLS1_2 not in self.versions:
                raise ValueError("no usable cipher suite for DTLS 1.0: it needs CBC suites "
                                 "(e.g. TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA)")
            if self.is_client:
                raise ValueError("no usable cipher suite: certificate suites need "
                                 "pinned_sha256, ca_certificates or a verifier (or "
                                 "verify_peer=False), PSK suites need psk")
            raise ValueError("no usable cipher suite: a server needs certificate_chain and "
                             "private_key, or psk_lookup for PSK suites")
        if bool(self.certificate_chain) != (self.private_key is not None):
            raise ValueError("certificate_chain and private_key go together")
        if len(self.psk_identity) > 0xFFFF or len(self.psk_identity_hint) > 0xFFFF:
            raise ValueError("PSK identity and hint are at most 65535 bytes (RFC 4279 2)")
        if self.psk is not None and not 1 <= len(self.psk) <= 0xFFFF:
            raise ValueError("a PSK is 1..65535 bytes (RFC 4279 2)")
        if any(not 1 <= len(p) <= 255 for p in self.alpn_protocols):
            raise ValueError("each ALPN protocol name must be 1..255 bytes (RFC 7301 3.1)")
        if self.forgery_limit is not None and self.forgery_limit < 1:
            raise ValueError("forgery_limit must be >= 1 (or None for the cipher's limit)")
        if self.max_datagram_size < 256:
            raise ValueError("max_datagram_size below 256 bytes cannot carry a ClientHello")
        if not 0 < self.initial_retransmit_timeout <= self.max_retransmit_timeout:
            raise ValueError("need 0 < initial_retransmit_timeout <= max_retransmit_timeout")
