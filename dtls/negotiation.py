"""Hello negotiation as pure functions: what a ClientHello offers, what a server picks,
and whether a ServerHello's choice is acceptable.

Kept apart from dtls.connection so the rules (each with its RFC) can be read and tested
without a state machine around them.  Every refusal is an `AlertError` naming the alert
the RFC asks for.
"""

from __future__ import annotations

import ipaddress
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
from .recordbase import DTLS1_2
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
    """Server side, certificate suites: how our ServerKeyExchange is signed."""


def ecdh_params_bytes(params: ServerECDHParams) -> bytes:
    """The ServerECDHParams encoding the ServerKeyExchange signature covers (RFC 8422 5.4)."""
    buf = Buffer()
    push_server_ecdh_params(buf, params)
    return buf.data


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


# -- client side ------------------------------------------------------------------------


def build_client_hello(config: DtlsConfiguration, client_random: bytes) -> ClientHello:
    """Our ClientHello: everything configured, in a conventional extension order."""
    extensions: list[Extension] = []
    if config.server_name and not _is_ip_literal(config.server_name):
        extensions.append(ServerName(config.server_name))  # RFC 6066 3: no IP literals
    extensions += [
        SupportedGroups([int(g) for g in config.groups]),
        ECPointFormats([ECPointFormat.uncompressed]),
        SignatureAlgorithms(list(SCHEMES)),
        ExtendedMasterSecret(),
        RenegotiationInfo(b""),  # RFC 5746 3.4: signals secure renegotiation support
    ]
    if config.encrypt_then_mac and any(not suite_info(s).is_aead
                                       for s in config.usable_cipher_suites()):
        extensions.append(EncryptThenMac())  # RFC 7366 2
    if config.alpn_protocols:
        extensions.append(ALPN(list(config.alpn_protocols)))  # RFC 7301 3.1
    return ClientHello(DTLS1_2, client_random, b"", b"",
                       [int(s) for s in config.usable_cipher_suites()], [0], extensions)


def check_server_hello(config: DtlsConfiguration, offer: ClientHello,
                       answer: ServerHello) -> Negotiated:
    """Accept the server's choices only if they are among what we offered."""
    if answer.server_version != DTLS1_2:
        raise ProtocolVersionError(f"server chose version {answer.server_version:#06x}, "
                                   "only DTLS 1.2 is enabled")
    if answer.cipher_suite not in config.usable_cipher_suites():
        raise IllegalParameter(f"server chose cipher suite {answer.cipher_suite:#06x}, "
                               "which we did not offer")
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
    return Negotiated(suite, ems, etm, alpn_protocol)


_CERTIFICATE_TYPES = {KeyKind.ECDSA: ClientCertificateType.ecdsa_sign,
                      KeyKind.RSA: ClientCertificateType.rsa_sign}


def can_answer(config: DtlsConfiguration, request: CertificateRequest) -> Scheme | None:
    """How our certificate can answer a CertificateRequest (RFC 5246 7.4.4): its type
    requested and a scheme offered that signs a transcript digest; None means answer with
    an empty list and let the server decide (7.4.6)."""
    key = config.private_key
    if not config.certificate_chain or key is None:
        return None
    if _CERTIFICATE_TYPES.get(key_kind(key)) not in request.certificate_types:
        return None
    return choose_scheme(key, request.supported_signature_algorithms, for_transcript=True)


# -- server side ------------------------------------------------------------------------


def negotiate(config: DtlsConfiguration, hello: ClientHello) -> Negotiated:
    """The server's choices for a ClientHello, by our preference; alerts when none fits."""
    # DTLS versions count down: 1.0 = 0xFEFF, 1.2 = 0xFEFD (RFC 6347 4.1).
    if hello.client_version > DTLS1_2:
        raise ProtocolVersionError(f"client offers only {hello.client_version:#06x}; "
                                   "DTLS 1.2 is required")
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
    curve = curve_group(config.private_key) if config.private_key is not None else None

    def obstacle(suite: CipherSuiteInfo) -> str | None:
        """Why we cannot use this suite with this client, or None if we can."""
        if suite.uses_ecdhe and group is None:
            return "no ECDHE group in common"
        if suite.needs_certificate:
            if curve is not None and curve not in offered_groups:
                # RFC 8422 5.3: the certificate's key must be on a curve the client supports.
                return f"client does not support {curve.name}, our certificate's curve"
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
    return Negotiated(suite, ems, etm, alpn_protocol,
                      NamedGroup(group) if suite.uses_ecdhe and group is not None else None,
                      tuple(extensions), scheme if suite.needs_certificate else None)


def select_alpn(ours: tuple[bytes, ...], offer: ALPN | None) -> bytes | None:
    """Our most preferred protocol the client offered (RFC 7301 3.2)."""
    if offer is None or not ours:
        return None  # no ALPN on one side: the extension is simply not answered
    chosen = next((p for p in ours if p in offer.protocols), None)
    if chosen is None:
        raise AlertError(f"no application protocol in common: client offered "
                         f"{offer.protocols!r}", AlertDescription.no_application_protocol)
    return chosen


def certificate_request(config: DtlsConfiguration) -> CertificateRequest:
    """Our CertificateRequest (RFC 5246 7.4.4): ECDSA or RSA, our schemes, our roots by name
    so a client holding several certificates can choose."""
    authorities = [root.subject.public_bytes() for root in config.ca_certificates]
    return CertificateRequest(
        [ClientCertificateType.ecdsa_sign, ClientCertificateType.rsa_sign],
        list(TRANSCRIPT_SCHEMES), authorities)
