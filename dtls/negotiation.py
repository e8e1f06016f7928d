"""Hello negotiation as pure functions: what a ClientHello offers, what a server picks,
and whether a ServerHello's choice is acceptable.

Kept apart from dtls.connection so the rules (each with its RFC) can be read and tested
without a state machine around them.  Every refusal is an `AlertError` naming the alert
the RFC asks for.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from dataclasses import dataclass

from .alerts import (
    AlertDescription,
    AlertError,
    HandshakeFailure,
    IllegalParameter,
    ProtocolVersionError,
    UnsupportedExtension,
)
from .buffer import Buffer
from .config import DtlsConfiguration
from .extensions import (
    ALPN,
    ECPointFormat,
    ECPointFormats,
    EncryptThenMac,
    ExtendedMasterSecret,
    Extension,
    NamedGroup,
    RenegotiationInfo,
    ServerName,
    SessionTicket,
    SignatureAlgorithms,
    SupportedGroups,
    find_extension,
)
from .messages import (
    CertificateRequest,
    ClientCertificateType,
    ClientHello,
    ServerECDHParams,
    ServerHello,
    push_server_ecdh_params,
)
from .recordbase import DTLS1_0, DTLS1_2
from .session import Session
from .signatures import (
    SCHEMES,
    TRANSCRIPT_SCHEMES,
    KeyKind,
    Scheme,
    choose_scheme,
    curve_group,
    key_kind,
)
from .suites import CipherSuite, CipherSuiteInfo, suite_info


@dataclass(frozen=True)
class Negotiated:
    """What the hellos settled (the ECDHE group of a client is learnt later, from the
    ServerKeyExchange, so `group` is None there)."""

    suite: CipherSuiteInfo
    extended_master_secret: bool
    encrypt_then_mac: bool
    alpn_protocol: bytes | None
    group: NamedGroup | None = None
    server_hello_extensions: tuple[Extension, ...] = ()
    """Server side: the extensions to answer with, in order."""
    signature_scheme: Scheme | None = None
    """Server side, certificate suites, DTLS 1.2: how our ServerKeyExchange is signed
    (DTLS 1.0 has one fixed way per key type, dtls.signatures.sign_legacy)."""
    version: int = DTLS1_2
    issue_ticket: bool = False
    """Server side: the client offered session_ticket and we will send NewSessionTicket."""


def ecdh_params_bytes(params: ServerECDHParams) -> bytes:
    """The ServerECDHParams encoding the ServerKeyExchange signature covers (RFC 8422 5.4)."""
    buf = Buffer()
    push_server_ecdh_params(buf, params)
    return buf.data


@functools.lru_cache(maxsize=64)
def _is_ip_literal(name: str) -> bool:
    """Whether `name` is an IP address, not a host name.  Cached (bounded): a client asks
    once per ClientHello about the same configured name, and a failed parse is an
    exception, which costs more than the rest of building the hello's extensions."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


# -- client side ------------------------------------------------------------------------


def client_version(config: DtlsConfiguration) -> int:
    """The version a client offers: the newest it accepts (RFC 5246 E.1)."""
    return DTLS1_2 if DTLS1_2 in config.versions else DTLS1_0


def can_offer(config: DtlsConfiguration, session: Session | None) -> bool:
    """Whether offering `session` for resumption makes sense with this configuration:
    RFC 7627 5.3 (only extended-master-secret sessions here), a version and suite we
    still accept, and the same server name (RFC 6066 3)."""
    return (session is not None and session.resumable
            and session.version in config.versions
            and session.cipher_suite in config.usable_cipher_suites()
            and suite_info(session.cipher_suite).supports_version(session.version)
            and session.server_name == config.server_name)


def build_client_hello(config: DtlsConfiguration, client_random: bytes,
                       session: Session | None = None) -> ClientHello:
    """Our ClientHello: everything configured, in a conventional extension order;
    `session` (checked with `can_offer`) is offered for resumption."""
    version = client_version(config)
    session_id = b""
    if session is not None:
        # RFC 5077 3.4: with a ticket, a session ID of our own lets us recognise the
        # server accepting it (it echoes the ID).
        session_id = session.session_id or os.urandom(32)
    extensions: list[Extension] = []
    if config.server_name and not _is_ip_literal(config.server_name):
        extensions.append(ServerName(config.server_name))  # RFC 6066 3: no IP literals
    extensions += [
        SupportedGroups([int(g) for g in config.groups]),
        ECPointFormats([ECPointFormat.uncompressed]),
    ]
    if version == DTLS1_2:
        # RFC 5246 7.4.1.4.1: not offered when only an earlier version is offered.
        extensions.append(SignatureAlgorithms(list(SCHEMES)))
    extensions += [
        ExtendedMasterSecret(),
        RenegotiationInfo(b""),  # RFC 5746 3.4: signals secure renegotiation support
    ]
    if config.session_tickets:
        # RFC 5077 3.2: empty means "I support tickets"; else the ticket to resume with.
        extensions.append(SessionTicket(session.ticket if session is not None else b""))
    if config.encrypt_then_mac and any(not suite_info(s).is_aead
                                       for s in config.usable_cipher_suites()):
        extensions.append(EncryptThenMac())  # RFC 7366 2
    if config.alpn_protocols:
        extensions.append(ALPN(list(config.alpn_protocols)))  # RFC 7301 3.1
    suites = [int(s) for s in config.usable_cipher_suites()]
    return ClientHello(version, client_random, session_id, b"", suites, [0], extensions)


def check_server_hello(config: DtlsConfiguration, offer: ClientHello,
                       answer: ServerHello) -> Negotiated:
    """Accept the server's choices only if they are among what we offered."""
    if answer.server_version not in config.versions \
            or answer.server_version < offer.client_version:
        # Only what we enabled: a DTLS 1.2 client never drops to 1.0 unless told to.
        raise ProtocolVersionError(f"server chose version {answer.server_version:#06x}, "
                                   "which we did not enable")
    if answer.cipher_suite not in offer.cipher_suites:
        raise IllegalParameter(f"server chose cipher suite {answer.cipher_suite:#06x}, "
                               "which we did not offer")
    if not suite_info(answer.cipher_suite).supports_version(answer.server_version):
        raise IllegalParameter(f"server chose {suite_info(answer.cipher_suite).name}, "
                               f"which version {answer.server_version:#06x} cannot use")
    if answer.compression_method != 0:
        raise IllegalParameter("server chose a compression method we did not offer")
    offered = {ext.extension_type for ext in offer.extensions}
    for ext in answer.extensions:
        if ext.extension_type not in offered:
            # RFC 5246 7.4.1.4: only extensions the client offered may come back.
            raise UnsupportedExtension(f"ServerHello has extension {ext.extension_type}, "
                                       "which we did not offer")
    reneg = find_extension(answer.extensions, RenegotiationInfo)
    if reneg is not None and reneg.renegotiated_connection:
        raise HandshakeFailure("renegotiation_info not empty in an initial handshake "
                               "(RFC 5746 3.4)")
    ems = find_extension(answer.extensions, ExtendedMasterSecret) is not None
    if not ems and config.require_extended_master_secret:
        raise HandshakeFailure("server did not negotiate extended_master_secret (RFC 7627 5.3)")
    alpn_protocol = None
    alpn = find_extension(answer.extensions, ALPN)
    if alpn is not None:
        # RFC 7301 3.1/3.2: exactly one protocol, and one we offered.
        if len(alpn.protocols) != 1 or alpn.protocols[0] not in config.alpn_protocols:
            raise IllegalParameter("ServerHello ALPN is not one protocol we offered")
        alpn_protocol = alpn.protocols[0]
    suite = suite_info(answer.cipher_suite)
    # RFC 7366 3: meaningful for CBC suites only; an answer with an AEAD suite changes
    # nothing (Protection ignores it), so it is tolerated rather than refused.
    etm = find_extension(answer.extensions, EncryptThenMac) is not None and not suite.is_aead
    if not suite.is_aead and not etm and not config.mac_then_encrypt:
        raise HandshakeFailure(f"server chose {suite.name} without encrypt_then_mac "
                               "(RFC 7366): MAC-then-encrypt needs mac_then_encrypt=True")
    return Negotiated(suite, ems, etm, alpn_protocol, version=answer.server_version)


_CERTIFICATE_TYPES = {KeyKind.ECDSA: ClientCertificateType.ecdsa_sign,
                      KeyKind.RSA: ClientCertificateType.rsa_sign,
                      # RFC 8422 5.5: ecdsa_sign also asks for EdDSA certificates.
                      KeyKind.ED25519: ClientCertificateType.ecdsa_sign}


def can_answer(config: DtlsConfiguration, request: CertificateRequest) -> Scheme | None:
    """How our certificate can answer a DTLS 1.2 CertificateRequest (RFC 5246 7.4.4): its
    type requested and a scheme offered that can sign the transcript (a digest, or for
    Ed25519 the messages themselves, RFC 8422 5.8); None means answer with an empty list and
    let the server decide (7.4.6)."""
    key = config.private_key
    if not config.certificate_chain or key is None:
        return None
    if _CERTIFICATE_TYPES.get(key_kind(key)) not in request.certificate_types:
        return None
    if request.supported_signature_algorithms is None:
        raise ValueError("a DTLS 1.0 CertificateRequest: use can_answer_legacy")
    return choose_scheme(key, request.supported_signature_algorithms, for_transcript=True)


def can_answer_legacy(config: DtlsConfiguration, request: CertificateRequest) -> bool:
    """DTLS 1.0 (RFC 4346 7.4.4): our certificate fits if its type was requested (the
    signature is then fixed by the key type, RFC 4346 7.4.8 / RFC 4492 5.8)."""
    key = config.private_key
    # DTLS 1.0 predates EdDSA in TLS: its ecdsa_sign means ECDSA over SHA-1 only.
    return bool(config.certificate_chain) and key is not None \
        and key_kind(key) is not KeyKind.ED25519 \
        and _CERTIFICATE_TYPES.get(key_kind(key)) in request.certificate_types


# -- server side ------------------------------------------------------------------------


def select_version(config: DtlsConfiguration, hello: ClientHello) -> int:
    """The newest version both sides accept (RFC 5246 E.1; DTLS counts down)."""
    for version in (DTLS1_2, DTLS1_0):
        if version in config.versions and hello.client_version <= version:
            return version
    raise ProtocolVersionError(f"client offers {hello.client_version:#06x}; we accept "
                               + ", ".join(f"{v:#06x}" for v in config.versions))


def resumable(config: DtlsConfiguration, hello: ClientHello, session: Session | None,
              version: int) -> bool:
    """Whether the server may resume `session` for this ClientHello (RFC 5246 7.4.1.2:
    same suite, offered again; RFC 7627 5.3: both the session and this hello use the
    extended master secret, else a full handshake; RFC 6066 3: same server name)."""
    if session is None or not session.extended_master_secret:
        return False
    if find_extension(hello.extensions, ExtendedMasterSecret) is None:
        return False
    server_name = find_extension(hello.extensions, ServerName)
    return (session.version == version
            and session.cipher_suite in hello.cipher_suites
            and session.cipher_suite in config.usable_cipher_suites()
            and session.server_name == (server_name.host_name if server_name else None))


def negotiate(config: DtlsConfiguration, hello: ClientHello, *,
              resume: Session | None = None) -> Negotiated:
    """The server's choices for a ClientHello, by our preference; alerts when none fits.

    With `resume` (checked with `resumable`), the session's suite and version are kept
    and everything else is negotiated afresh (RFC 5246 7.4.1.2)."""
    # DTLS versions count down: 1.0 = 0xFEFF, 1.2 = 0xFEFD (RFC 6347 4.1).
    version = resume.version if resume is not None else select_version(config, hello)
    groups_ext = find_extension(hello.extensions, SupportedGroups)
    # RFC 8422 4: a client that sends no supported_groups supports at least secp256r1.
    offered_groups = groups_ext.groups if groups_ext is not None else [NamedGroup.secp256r1]
    group = next((g for g in config.groups if g in offered_groups), None)
    formats = find_extension(hello.extensions, ECPointFormats)
    if formats is not None and ECPointFormat.uncompressed not in formats.formats:
        raise IllegalParameter("ec_point_formats lacks uncompressed (RFC 8422 5.1.2)")
    sigalgs = find_extension(hello.extensions, SignatureAlgorithms)
    # Absent means {sha1, ...} (RFC 5246 7.4.1.4.1), which we never sign with.
    scheme = (choose_scheme(config.private_key, sigalgs.schemes)
              if sigalgs is not None and config.private_key is not None else None)
    legacy_signer = config.private_key is not None \
        and key_kind(config.private_key) is not KeyKind.ED25519
    curve = curve_group(config.private_key) if config.private_key is not None else None

    client_etm = config.encrypt_then_mac \
        and find_extension(hello.extensions, EncryptThenMac) is not None

    def obstacle(suite: CipherSuiteInfo) -> str | None:
        """Why we cannot use this suite with this client, or None if we can."""
        if suite.uses_ecdhe and group is None:
            return "no ECDHE group in common"
        if not suite.is_aead and not client_etm and not config.mac_then_encrypt:
            return (f"{suite.name} without encrypt_then_mac (RFC 7366) needs "
                    "mac_then_encrypt=True")
        if not suite.supports_version(version):
            return f"{suite.name} cannot be used in DTLS 1.0"
        if suite.needs_certificate:
            if curve is not None and curve not in offered_groups:
                # RFC 8422 5.3: the certificate's key must be on a curve the client supports.
                return f"client does not support {curve.name}, our certificate's curve"
            if version == DTLS1_0:
                # RFC 4346 7.4.3 / RFC 4492 5.4: RSA MD5+SHA-1 or ECDSA SHA-1, no Ed25519.
                return None if legacy_signer else "Ed25519 cannot sign in DTLS 1.0"
            if scheme is None:
                return "client accepts none of the signature schemes our key can make"
        return None

    # Our preference first; a suite the client offered but cannot complete with us is
    # skipped, and if none is left the first such reason is the one reported.
    reasons: list[str] = []
    suite: CipherSuiteInfo | None = None
    for code in config.usable_cipher_suites():
        if code not in hello.cipher_suites:
            continue
        if resume is not None:
            # The session's suite, whatever our preference now (RFC 5246 7.4.1.3).
            if code == resume.cipher_suite:
                suite = suite_info(code)
                break
            continue
        reason = obstacle(suite_info(code))
        if reason is None:
            suite = suite_info(code)
            break
        reasons.append(reason)
    if suite is None:
        raise HandshakeFailure(reasons[0] if reasons else "no cipher suite in common")
    ems = find_extension(hello.extensions, ExtendedMasterSecret) is not None
    if not ems and config.require_extended_master_secret:
        raise HandshakeFailure("client did not offer extended_master_secret (RFC 7627 5.2)")
    reneg = find_extension(hello.extensions, RenegotiationInfo)
    if reneg is not None and reneg.renegotiated_connection:
        raise HandshakeFailure("renegotiation_info not empty in an initial handshake")
    secure_renegotiation = reneg is not None or \
        CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV in hello.cipher_suites
    # RFC 7366 3: answer encrypt_then_mac only when a CBC suite was chosen.
    etm = config.encrypt_then_mac and not suite.is_aead \
        and find_extension(hello.extensions, EncryptThenMac) is not None
    alpn_protocol = select_alpn(config.alpn_protocols, find_extension(hello.extensions, ALPN))

    extensions: list[Extension] = []
    if secure_renegotiation:
        extensions.append(RenegotiationInfo(b""))  # RFC 5746 3.6
    if ems:
        extensions.append(ExtendedMasterSecret())  # RFC 7627 5.2
    if formats is not None and suite.uses_ecdhe:
        extensions.append(ECPointFormats([ECPointFormat.uncompressed]))  # RFC 8422 5.2
    if etm:
        extensions.append(EncryptThenMac())
    if alpn_protocol is not None:
        extensions.append(ALPN([alpn_protocol]))
    issue_ticket = config.session_tickets and \
        find_extension(hello.extensions, SessionTicket) is not None
    if issue_ticket:
        extensions.append(SessionTicket())  # RFC 5077 3.2: we will send NewSessionTicket
    return Negotiated(suite, ems, etm, alpn_protocol,
                      NamedGroup(group) if suite.uses_ecdhe and group is not None else None,
                      tuple(extensions),
                      scheme if suite.needs_certificate and version == DTLS1_2 else None,
                      version=version, issue_ticket=issue_ticket)


def select_alpn(ours: tuple[bytes, ...], offer: ALPN | None) -> bytes | None:
    """Our most preferred protocol the client offered (RFC 7301 3.2)."""
    if offer is None or not ours:
        return None  # no ALPN on one side: the extension is simply not answered
    chosen = next((p for p in ours if p in offer.protocols), None)
    if chosen is None:
        raise AlertError(f"no application protocol in common: client offered "
                         f"{offer.protocols!r}", AlertDescription.no_application_protocol)
    return chosen


def certificate_request(config: DtlsConfiguration, version: int = DTLS1_2) -> CertificateRequest:
    """Our CertificateRequest (RFC 5246 7.4.4): ECDSA or RSA, our schemes (DTLS 1.2 only,
    RFC 4346 7.4.4 has none), our roots by name so a client holding several certificates
    can choose."""
    authorities = [root.subject.public_bytes() for root in config.ca_certificates]
    return CertificateRequest(
        [ClientCertificateType.ecdsa_sign, ClientCertificateType.rsa_sign],
        list(TRANSCRIPT_SCHEMES) if version == DTLS1_2 else None, authorities)
