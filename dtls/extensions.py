"""Hello extensions (RFC 5246 7.4.1.4) as typed dataclasses, plus the code-point enums.

The wire form of every extension is `uint16 extension_type; opaque extension_data<0..2^16-1>`.
Extensions this library understands decode into their own dataclass; anything else becomes
`UnknownExtension(extension_type, data)` so callers can ignore it (RFC 5246 7.4.1.4: a
server MUST ignore extensions it does not recognise) while re-encoding stays byte-exact.

A few extensions have a different body in ServerHello than in ClientHello (server_name
and session_ticket answers are empty), so the codec takes the hello's `HandshakeType`.
Checks here are structural (grammar, vector bounds, the one MUST about duplicates);
whether an extension may appear at all in a given hello, or whether the server's
answer matches what the client offered, is the state machine's business.

Code points are stored as plain ints, not enum members, because peers send values we
have no name for (GREASE, RFC 8701) and those must survive a round trip.  The enums
compare equal to the ints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, TypeVar

from .alerts import DecodeError, IllegalParameter, InternalError
from .buffer import Buffer

__all__ = [
    "ALPN", "ECPointFormat", "ECPointFormats", "EncryptThenMac", "ExtendedMasterSecret",
    "Extension", "ExtensionType", "HandshakeContext", "NameType", "NamedGroup",
    "RenegotiationInfo", "SRTPProtectionProfile", "ServerName", "SessionTicket",
    "SignatureAlgorithms", "SignatureScheme", "SupportedGroups", "UnknownExtension", "UseSrtp",
    "find_extension", "pull_extension", "pull_extensions", "push_extension", "push_extensions",
]


class ExtensionType(IntEnum):
    """IANA TLS ExtensionType Values (the ones relevant to DTLS 1.2/1.0)."""

    server_name = 0  # RFC 6066 3
    max_fragment_length = 1  # RFC 6066 4
    status_request = 5  # RFC 6066 8
    supported_groups = 10  # RFC 8422 5.1.1 (was elliptic_curves)
    ec_point_formats = 11  # RFC 8422 5.1.2
    signature_algorithms = 13  # RFC 5246 7.4.1.4.1
    use_srtp = 14  # RFC 5764 4.1.1
    heartbeat = 15  # RFC 6520
    application_layer_protocol_negotiation = 16  # RFC 7301 3.1
    signed_certificate_timestamp = 18  # RFC 6962
    padding = 21  # RFC 7685
    encrypt_then_mac = 22  # RFC 7366 2
    extended_master_secret = 23  # RFC 7627 5.1
    record_size_limit = 28  # RFC 8449
    session_ticket = 35  # RFC 5077 3.2 (was SessionTicket TLS)
    supported_versions = 43  # RFC 8446 4.2.1 (TLS 1.3 only)
    connection_id = 54  # RFC 9146
    renegotiation_info = 0xFF01  # RFC 5746 3.2


class NamedGroup(IntEnum):
    """RFC 8422 5.1.1 / RFC 7748 (IANA TLS Supported Groups)."""

    secp256r1 = 23
    secp384r1 = 24
    secp521r1 = 25
    x25519 = 29
    x448 = 30


class SignatureScheme(IntEnum):
    """RFC 8446 4.2.3 code points, which are RFC 5246 7.4.1.4.1 (hash, signature) pairs
    for the legacy ones, and also what DTLS 1.2 peers send for PSS and EdDSA
    (RFC 8422 5.1.3, RFC 8446 4.2.3)."""

    rsa_pkcs1_sha1 = 0x0201
    ecdsa_sha1 = 0x0203
    rsa_pkcs1_sha256 = 0x0401
    ecdsa_secp256r1_sha256 = 0x0403
    rsa_pkcs1_sha384 = 0x0501
    ecdsa_secp384r1_sha384 = 0x0503
    rsa_pkcs1_sha512 = 0x0601
    ecdsa_secp521r1_sha512 = 0x0603
    rsa_pss_rsae_sha256 = 0x0804
    rsa_pss_rsae_sha384 = 0x0805
    rsa_pss_rsae_sha512 = 0x0806
    ed25519 = 0x0807
    ed448 = 0x0808
    rsa_pss_pss_sha256 = 0x0809
    rsa_pss_pss_sha384 = 0x080A
    rsa_pss_pss_sha512 = 0x080B


class ECPointFormat(IntEnum):
    """RFC 8422 5.1.2 (only `uncompressed` may be negotiated; the others are deprecated)."""

    uncompressed = 0
    ansiX962_compressed_prime = 1
    ansiX962_compressed_char2 = 2


class NameType(IntEnum):
    """RFC 6066 3."""

    host_name = 0


class SRTPProtectionProfile(IntEnum):
    """RFC 5764 4.1.2 and RFC 7714 14.2."""

    SRTP_AES128_CM_HMAC_SHA1_80 = 0x0001
    SRTP_AES128_CM_HMAC_SHA1_32 = 0x0002
    SRTP_NULL_HMAC_SHA1_80 = 0x0005
    SRTP_NULL_HMAC_SHA1_32 = 0x0006
    SRTP_AEAD_AES_128_GCM = 0x0007
    SRTP_AEAD_AES_256_GCM = 0x0008


class HandshakeContext(IntEnum):
    """Which hello an extension block belongs to (values are the HandshakeType codes)."""

    client_hello = 1
    server_hello = 2


# -- the typed extensions -------------------------------------------------------------


@dataclass
class ServerName:
    """RFC 6066 3.  ClientHello: the one host_name; ServerHello: `None` (empty body).

    The wire form is a ServerNameList, but RFC 6066 3 allows at most one name per
    name_type and defines only host_name, so a list would only ever hold one entry.
    """

    host_name: str | None = None
    extension_type: ClassVar[int] = ExtensionType.server_name


@dataclass
class SupportedGroups:
    """RFC 8422 5.1.1: `NamedGroup named_group_list<2..2^16-1>`."""

    groups: list[int] = field(default_factory=list)
    extension_type: ClassVar[int] = ExtensionType.supported_groups


@dataclass
class ECPointFormats:
    """RFC 8422 5.1.2: `ECPointFormat ec_point_format_list<1..2^8-1>`."""

    formats: list[int] = field(default_factory=lambda: [ECPointFormat.uncompressed])
    extension_type: ClassVar[int] = ExtensionType.ec_point_formats


@dataclass
class SignatureAlgorithms:
    """RFC 5246 7.4.1.4.1: `SignatureAndHashAlgorithm supported_signature_algorithms<2..2^16-2>`."""

    schemes: list[int] = field(default_factory=list)
    extension_type: ClassVar[int] = ExtensionType.signature_algorithms


@dataclass
class ExtendedMasterSecret:
    """RFC 7627 5.1: the extension_data field is empty."""

    extension_type: ClassVar[int] = ExtensionType.extended_master_secret


@dataclass
class EncryptThenMac:
    """RFC 7366 2: the extension_data field is empty."""

    extension_type: ClassVar[int] = ExtensionType.encrypt_then_mac


@dataclass
class RenegotiationInfo:
    """RFC 5746 3.2: `opaque renegotiated_connection<0..255>` (empty on a first handshake)."""

    renegotiated_connection: bytes = b""
    extension_type: ClassVar[int] = ExtensionType.renegotiation_info


@dataclass
class SessionTicket:
    """RFC 5077 3.2: ClientHello carries the ticket (possibly empty: "I support tickets"),
    the ServerHello answer is always empty.  The body is the raw ticket, no length prefix."""

    ticket: bytes = b""
    extension_type: ClassVar[int] = ExtensionType.session_ticket


@dataclass
class ALPN:
    """RFC 7301 3.1: `ProtocolName protocol_name_list<2..2^16-1>`, each name `<1..2^8-1>`.

    The server's answer must hold exactly one name; that is checked by the state machine
    together with "was it offered" (RFC 7301 3.2), not here.
    """

    protocols: list[bytes] = field(default_factory=list)
    extension_type: ClassVar[int] = ExtensionType.application_layer_protocol_negotiation


@dataclass
class UseSrtp:
    """RFC 5764 4.1.1: `SRTPProtectionProfile SRTPProtectionProfiles<2..2^16-1>;
    opaque srtp_mki<0..255>`.  The server's answer carries one profile (state machine)."""

    profiles: list[int] = field(default_factory=list)
    mki: bytes = b""
    extension_type: ClassVar[int] = ExtensionType.use_srtp


@dataclass
class UnknownExtension:
    """Any extension without a typed model: kept verbatim so callers can ignore it."""

    extension_type: int
    data: bytes = b""


Extension = (
    ServerName | SupportedGroups | ECPointFormats | SignatureAlgorithms | ExtendedMasterSecret
    | EncryptThenMac | RenegotiationInfo | SessionTicket | ALPN | UseSrtp | UnknownExtension
)

E = TypeVar("E", bound=Extension)


def find_extension(extensions: list[Extension], kind: type[E]) -> E | None:
    """The extension of class `kind` in a decoded list, or None (at most one exists)."""
    for ext in extensions:
        if type(ext) is kind:
            return ext
    return None


# -- per-extension body codecs --------------------------------------------------------
# Each pull_ reads the whole extension_data (the enclosing block bounds it and checks it
# was consumed); `ctx` is the hello the block belongs to.


def _pull_server_name(buf: Buffer, ctx: HandshakeContext) -> ServerName:
    if ctx == HandshakeContext.server_hello:
        # RFC 6066 3: the server's "extension_data" field SHALL be empty.
        if not buf.eof():
            raise DecodeError("server_name: ServerHello extension_data must be empty")
        return ServerName(None)
    host_name: str | None = None
    outer = buf.begin_pull_block(2, "server_name.server_name_list", 1)
    while not buf.eof():
        name_type = buf.pull_uint8("server_name.name_type")
        if name_type != NameType.host_name:
            # RFC 6066 3 gives no length for other name types, so nothing after
            # this can be parsed (OpenSSL and NSS reject these too).
            raise DecodeError(f"server_name: unknown name_type {name_type}")
        raw = buf.pull_vector(2, "server_name.host_name", 1)
        if host_name is not None:
            # RFC 6066 3: "MUST NOT contain more than one name of the same name_type".
            raise IllegalParameter("server_name: more than one host_name")
        try:
            host_name = raw.decode("ascii")
        except UnicodeDecodeError:
            # RFC 6066 3: HostName is "a byte string using ASCII encoding".
            raise IllegalParameter("server_name: host_name is not ASCII") from None
    buf.end_pull_block(outer, "server_name.server_name_list")
    return ServerName(host_name)


def _push_server_name(buf: Buffer, ext: ServerName, ctx: HandshakeContext) -> None:
    if ctx == HandshakeContext.server_hello:
        if ext.host_name is not None:
            raise InternalError("server_name: the ServerHello answer carries no name")
        return  # the empty acknowledgement
    if ext.host_name is None:
        raise InternalError("server_name: a ClientHello needs a host_name")
    try:
        host_name = ext.host_name.encode("ascii")
    except UnicodeEncodeError:
        # RFC 6066 3: ASCII; internationalized names go in as A-labels (RFC 5890).
        raise InternalError(f"server_name: {ext.host_name!r} is not ASCII") from None
    start = buf.begin_push_block(2, "server_name.server_name_list")
    buf.push_uint8(NameType.host_name)
    buf.push_vector(2, host_name, "server_name.host_name", 1)
    buf.end_push_block(start, 2, "server_name.server_name_list", 1)


def _pull_supported_groups(buf: Buffer, ctx: HandshakeContext) -> SupportedGroups:
    return SupportedGroups(buf.pull_uint16_list(2, "supported_groups.named_group_list", 2))


def _push_supported_groups(buf: Buffer, ext: SupportedGroups, ctx: HandshakeContext) -> None:
    buf.push_uint16_list(2, ext.groups, "supported_groups.named_group_list", 2)


def _pull_ec_point_formats(buf: Buffer, ctx: HandshakeContext) -> ECPointFormats:
    return ECPointFormats(buf.pull_uint8_list(1, "ec_point_formats.ec_point_format_list", 1))


def _push_ec_point_formats(buf: Buffer, ext: ECPointFormats, ctx: HandshakeContext) -> None:
    buf.push_uint8_list(1, ext.formats, "ec_point_formats.ec_point_format_list", 1)


def _pull_signature_algorithms(buf: Buffer, ctx: HandshakeContext) -> SignatureAlgorithms:
    return SignatureAlgorithms(buf.pull_uint16_list(
        2, "signature_algorithms.supported_signature_algorithms", 2, 0xFFFE))


def _push_signature_algorithms(buf: Buffer, ext: SignatureAlgorithms,
                               ctx: HandshakeContext) -> None:
    buf.push_uint16_list(2, ext.schemes, "signature_algorithms.supported_signature_algorithms",
                         2, 0xFFFE)


def _pull_empty(cls: Callable[[], E], name: str) -> Callable[[Buffer, HandshakeContext], E]:
    def pull(buf: Buffer, ctx: HandshakeContext) -> E:
        if not buf.eof():
            raise DecodeError(f"{name}: extension_data must be empty")
        return cls()
    return pull


def _push_empty(buf: Buffer, ext: Extension, ctx: HandshakeContext) -> None:
    pass


def _pull_renegotiation_info(buf: Buffer, ctx: HandshakeContext) -> RenegotiationInfo:
    return RenegotiationInfo(buf.pull_vector(1, "renegotiation_info.renegotiated_connection"))


def _push_renegotiation_info(buf: Buffer, ext: RenegotiationInfo,
                             ctx: HandshakeContext) -> None:
    buf.push_vector(1, ext.renegotiated_connection, "renegotiation_info.renegotiated_connection")


def _pull_session_ticket(buf: Buffer, ctx: HandshakeContext) -> SessionTicket:
    ticket = buf.pull_bytes(buf.remaining(), "session_ticket")
    if ticket and ctx == HandshakeContext.server_hello:
        # RFC 5077 3.2: the server's SessionTicket extension "MUST be empty".
        raise DecodeError("session_ticket: ServerHello extension_data must be empty")
    return SessionTicket(ticket)


def _push_session_ticket(buf: Buffer, ext: SessionTicket, ctx: HandshakeContext) -> None:
    if ext.ticket and ctx == HandshakeContext.server_hello:
        raise InternalError("session_ticket: the ServerHello answer must be empty")
    buf.push_bytes(ext.ticket)


def _pull_protocol_name(buf: Buffer) -> bytes:
    return buf.pull_vector(1, "application_layer_protocol_negotiation.ProtocolName", 1)


def _push_protocol_name(buf: Buffer, name: bytes) -> None:
    buf.push_vector(1, name, "application_layer_protocol_negotiation.ProtocolName", 1)


def _pull_alpn(buf: Buffer, ctx: HandshakeContext) -> ALPN:
    return ALPN(buf.pull_list(2, _pull_protocol_name,
                              "application_layer_protocol_negotiation.protocol_name_list", 2))


def _push_alpn(buf: Buffer, ext: ALPN, ctx: HandshakeContext) -> None:
    buf.push_list(2, _push_protocol_name, ext.protocols,
                  "application_layer_protocol_negotiation.protocol_name_list", 2)


def _pull_use_srtp(buf: Buffer, ctx: HandshakeContext) -> UseSrtp:
    profiles = buf.pull_uint16_list(2, "use_srtp.SRTPProtectionProfiles", 2)
    return UseSrtp(profiles, buf.pull_vector(1, "use_srtp.srtp_mki"))


def _push_use_srtp(buf: Buffer, ext: UseSrtp, ctx: HandshakeContext) -> None:
    buf.push_uint16_list(2, ext.profiles, "use_srtp.SRTPProtectionProfiles", 2)
    buf.push_vector(1, ext.mki, "use_srtp.srtp_mki")


_Pull = Callable[[Buffer, HandshakeContext], Extension]

_PULL: dict[int, _Pull] = {
    ExtensionType.server_name: _pull_server_name,
    ExtensionType.supported_groups: _pull_supported_groups,
    ExtensionType.ec_point_formats: _pull_ec_point_formats,
    ExtensionType.signature_algorithms: _pull_signature_algorithms,
    ExtensionType.extended_master_secret: _pull_empty(
        ExtendedMasterSecret, "extended_master_secret"),
    ExtensionType.encrypt_then_mac: _pull_empty(EncryptThenMac, "encrypt_then_mac"),
    ExtensionType.renegotiation_info: _pull_renegotiation_info,
    ExtensionType.session_ticket: _pull_session_ticket,
    ExtensionType.application_layer_protocol_negotiation: _pull_alpn,
    ExtensionType.use_srtp: _pull_use_srtp,
}

# Keyed by class; each function accepts only its own class, hence Callable[..., None].
_PUSH: dict[type, Callable[..., None]] = {
    ServerName: _push_server_name,
    SupportedGroups: _push_supported_groups,
    ECPointFormats: _push_ec_point_formats,
    SignatureAlgorithms: _push_signature_algorithms,
    ExtendedMasterSecret: _push_empty,
    EncryptThenMac: _push_empty,
    RenegotiationInfo: _push_renegotiation_info,
    SessionTicket: _push_session_ticket,
    ALPN: _push_alpn,
    UseSrtp: _push_use_srtp,
}


# -- the extension block --------------------------------------------------------------


_DATA_WHAT: dict[int, str] = {t: f"{ExtensionType(t).name}.extension_data" for t in _PULL}
"""Field names for errors, made once: an enum lookup per extension is measurable."""


def pull_extension(buf: Buffer, ctx: HandshakeContext) -> Extension:
    """One `Extension` struct: type, then its body confined to its own length."""
    extension_type = buf.pull_uint16("Extension.extension_type")
    pull = _PULL.get(extension_type)
    what = "Extension.extension_data" if pull is None else _DATA_WHAT[extension_type]
    outer = buf.begin_pull_block(2, what)
    ext = (UnknownExtension(extension_type, buf.pull_bytes(buf.remaining(), "Extension"))
           if pull is None else pull(buf, ctx))
    buf.end_pull_block(outer, what)
    return ext


def push_extension(buf: Buffer, ext: Extension, ctx: HandshakeContext) -> None:
    buf.push_uint16(ext.extension_type, "Extension.extension_type")
    start = buf.begin_push_block(2, "Extension.extension_data")
    if isinstance(ext, UnknownExtension):
        buf.push_bytes(ext.data)
    else:
        _PUSH[type(ext)](buf, ext, ctx)
    buf.end_push_block(start, 2, "Extension.extension_data")


def pull_extensions(buf: Buffer, ctx: HandshakeContext) -> list[Extension]:
    """The optional `Extension extensions<0..2^16-1>` at the end of a hello.

    Absent (no bytes left, RFC 5246 7.4.1.2 "extensions_present") and present-but-empty
    both give `[]`.  A repeated extension type, known or not, raises IllegalParameter:
    RFC 5246 7.4.1.4 says "There MUST NOT be more than one extension of the same type",
    without naming an alert; the list parses, it is the contents that are inconsistent,
    which is RFC 5246 7.2.2's illegal_parameter (and what OpenSSL sends).
    """
    if buf.eof():
        return []
    extensions: list[Extension] = []
    seen: set[int] = set()
    outer = buf.begin_pull_block(2, "extensions")
    while not buf.eof():
        ext = pull_extension(buf, ctx)
        if ext.extension_type in seen:
            raise IllegalParameter(
                f"extensions: more than one extension of type {ext.extension_type}")
        seen.add(ext.extension_type)
        extensions.append(ext)
    buf.end_pull_block(outer, "extensions")
    return extensions


def push_extensions(buf: Buffer, extensions: list[Extension], ctx: HandshakeContext) -> None:
    """Write the extension block, or nothing at all when the list is empty.

    Omitting an empty block is what OpenSSL and GnuTLS do and keeps very old peers happy;
    it means a received empty block (`00 00`) re-encodes as absent, the only hello
    encoding that does not round-trip byte for byte.
    """
    if not extensions:
        return
    types = [ext.extension_type for ext in extensions]
    if len(set(types)) != len(types):
        raise InternalError(f"extensions: duplicate extension types in {types}")
    start = buf.begin_push_block(2, "extensions")
    for ext in extensions:
        push_extension(buf, ext, ctx)
    buf.end_push_block(start, 2, "extensions")
