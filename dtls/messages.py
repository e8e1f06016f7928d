"""DTLS 1.2/1.0 handshake message bodies, alerts and ChangeCipherSpec: dataclasses + codec.

Scope: the body that follows the 12-byte DTLS handshake header (RFC 6347 4.2.2); the
header, fragmentation and reassembly live in dtls/fragments.py.  Each struct has a
`pull_x(buf, ...) -> X` and `push_x(buf, x, ...)`; `decode_handshake`/`encode_handshake`
dispatch on the handshake type for the state machine.  Pull functions read exactly one
struct and leave the cursor after it; `decode()` (dtls/buffer.py) and `decode_handshake`
additionally reject trailing bytes.

Some bodies depend on negotiated state the codec cannot see, so the caller passes it:
- the DTLS version (DTLS 1.2 = TLS 1.2 signs with an explicit SignatureAndHashAlgorithm,
  RFC 5246 4.7/7.4.1.4.1; DTLS 1.0 = TLS 1.1 does not, RFC 4346 4.7) for
  ServerKeyExchange, CertificateRequest and CertificateVerify;
- the key exchange algorithm for ServerKeyExchange and ClientKeyExchange;
- the verify_data length for Finished (RFC 5246 7.4.9: 12 unless the suite says otherwise).

Decoding raises `DecodeError` when bytes do not match the grammar or a vector is out of
its RFC bounds, and `IllegalParameter` when they parse but break a MUST about values
(RFC 5246 7.2.2 definitions).  Encoding problems are our bugs and raise `InternalError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import ClassVar

from .alerts import IllegalParameter, InternalError, UnexpectedMessage
from .buffer import Buffer
from .extensions import Extension, HandshakeContext, pull_extensions, push_extensions
from .recordbase import DTLS1_0, DTLS1_2

__all__ = [
    "Alert", "Certificate", "CertificateRequest", "CertificateVerify", "ChangeCipherSpec",
    "ClientCertificateType", "ClientHello", "ClientKeyExchange", "ClientKeyExchangeECDHE",
    "ClientKeyExchangeECDHEPSK", "ClientKeyExchangePSK", "CompressionMethod", "ECCurveType",
    "Finished", "HandshakeMessage", "HandshakeType", "HelloRequest", "HelloVerifyRequest",
    "KeyExchangeAlgorithm", "NewSessionTicket", "ServerECDHParams", "ServerHello",
    "ServerHelloDone", "ServerKeyExchange", "ServerKeyExchangeECDHE",
    "ServerKeyExchangeECDHEPSK", "ServerKeyExchangePSK", "decode_handshake",
    "encode_handshake",
    "pull_alert", "pull_certificate", "pull_certificate_request", "pull_certificate_verify",
    "pull_change_cipher_spec", "pull_client_hello", "pull_client_key_exchange",
    "pull_finished", "pull_hello_request", "pull_hello_verify_request",
    "pull_new_session_ticket", "pull_server_ecdh_params", "pull_server_hello",
    "pull_server_hello_done", "pull_server_key_exchange",
    "push_alert", "push_certificate", "push_certificate_request", "push_certificate_verify",
    "push_change_cipher_spec", "push_client_hello", "push_client_key_exchange",
    "push_finished", "push_hello_request", "push_hello_verify_request",
    "push_new_session_ticket", "push_server_ecdh_params", "push_server_hello",
    "push_server_hello_done", "push_server_key_exchange",
]


class HandshakeType(IntEnum):
    """RFC 5246 7.4, RFC 6347 4.3.2 (hello_verify_request), RFC 5077 3 (new_session_ticket)."""

    hello_request = 0
    client_hello = 1
    server_hello = 2
    hello_verify_request = 3
    new_session_ticket = 4
    certificate = 11
    server_key_exchange = 12
    certificate_request = 13
    server_hello_done = 14
    certificate_verify = 15
    client_key_exchange = 16
    finished = 20
    certificate_status = 22  # RFC 6066 8 (not decoded here)


class CompressionMethod(IntEnum):
    """RFC 5246 7.4.1.1, RFC 3749.  Only null is ever negotiated (RFC 7457 2.6, CRIME)."""

    null = 0
    deflate = 1


class ECCurveType(IntEnum):
    """RFC 8422 5.4: explicit curves are deprecated; only named_curve is accepted."""

    explicit_prime = 1
    explicit_char2 = 2
    named_curve = 3


class ClientCertificateType(IntEnum):
    """RFC 5246 7.4.4, RFC 8422 5.5."""

    rsa_sign = 1
    dss_sign = 2
    rsa_fixed_dh = 3
    dss_fixed_dh = 4
    ecdsa_sign = 64
    rsa_fixed_ecdh = 65
    ecdsa_fixed_ecdh = 66


class KeyExchangeAlgorithm(Enum):
    """The key exchange of the negotiated suite: it alone decides the (Server|Client)
    KeyExchange shape (RFC 8422 5.4/5.7, RFC 4279 2, RFC 5489 2)."""

    ECDHE = "ec_diffie_hellman"  # ECDHE_ECDSA and ECDHE_RSA alike
    PSK = "psk"
    ECDHE_PSK = "ec_diffie_hellman_psk"


RANDOM_LENGTH = 32
"""RFC 5246 7.4.1.2: `opaque random_bytes[28]` after a uint32 gmt_unix_time; we keep it whole."""

DEFAULT_VERIFY_DATA_LENGTH = 12
"""RFC 5246 7.4.9: verify_data_length is 12 unless the cipher suite specifies otherwise."""


def _signature_has_algorithm(version: int) -> bool:
    """DTLS 1.2 digitally-signed carries SignatureAndHashAlgorithm; DTLS 1.0 does not."""
    if version == DTLS1_2:
        return True
    if version == DTLS1_0:
        return False
    raise InternalError(f"no message codec for version {version:#06x}")


# -- small shared pieces --------------------------------------------------------------


def _pull_random(buf: Buffer, what: str) -> bytes:
    return buf.pull_bytes(RANDOM_LENGTH, what)


def _push_random(buf: Buffer, random: bytes, what: str) -> None:
    if len(random) != RANDOM_LENGTH:
        raise InternalError(f"{what}: must be {RANDOM_LENGTH} bytes, not {len(random)}")
    buf.push_bytes(random)


def _pull_signature(buf: Buffer, version: int, what: str) -> tuple[int | None, bytes]:
    """A `digitally-signed` element (RFC 5246 4.7 / RFC 4346 4.7)."""
    algorithm = (buf.pull_uint16(f"{what}.algorithm")
                 if _signature_has_algorithm(version) else None)
    return algorithm, buf.pull_vector(2, f"{what}.signature")


def _push_signature(buf: Buffer, algorithm: int | None, signature: bytes, version: int,
                    what: str) -> None:
    if _signature_has_algorithm(version):
        if algorithm is None:
            raise InternalError(f"{what}: DTLS 1.2 needs a signature algorithm")
        buf.push_uint16(algorithm, f"{what}.algorithm")
    elif algorithm is not None:
        raise InternalError(f"{what}: DTLS 1.0 has no signature algorithm field")
    buf.push_vector(2, signature, f"{what}.signature")


# -- hello messages -------------------------------------------------------------------


@dataclass
class HelloRequest:
    """RFC 5246 7.4.1.1: empty.  We refuse renegotiation, but must parse it to say so."""

    msg_type: ClassVar[HandshakeType] = HandshakeType.hello_request


def pull_hello_request(buf: Buffer) -> HelloRequest:
    return HelloRequest()


def push_hello_request(buf: Buffer, msg: HelloRequest) -> None:
    pass


@dataclass
class ClientHello:
    """RFC 6347 4.2.1 (RFC 5246 7.4.1.2 plus the cookie).

    `random` is all 32 bytes (gmt_unix_time included).  `extensions` keeps wire order,
    which matters to anyone hashing or re-encoding the hello.
    """

    client_version: int
    random: bytes
    session_id: bytes = b""
    cookie: bytes = b""
    cipher_suites: list[int] = field(default_factory=list)
    compression_methods: list[int] = field(default_factory=lambda: [CompressionMethod.null])
    extensions: list[Extension] = field(default_factory=list)
    msg_type: ClassVar[HandshakeType] = HandshakeType.client_hello


def pull_client_hello(buf: Buffer) -> ClientHello:
    client_version = buf.pull_uint16("ClientHello.client_version")
    random = _pull_random(buf, "ClientHello.random")
    session_id = buf.pull_vector(1, "ClientHello.session_id", 0, 32)
    cookie = buf.pull_vector(1, "ClientHello.cookie", 0, 255)
    cipher_suites = buf.pull_uint16_list(2, "ClientHello.cipher_suites", 2, 0xFFFE)
    compression_methods = buf.pull_uint8_list(1, "ClientHello.compression_methods", 1, 255)
    if CompressionMethod.null not in compression_methods:
        # RFC 5246 7.4.1.2: "this vector MUST contain ... CompressionMethod.null".
        raise IllegalParameter("ClientHello.compression_methods: null is missing")
    extensions = pull_extensions(buf, HandshakeContext.client_hello)
    return ClientHello(client_version, random, session_id, cookie, cipher_suites,
                       compression_methods, extensions)


def push_client_hello(buf: Buffer, msg: ClientHello) -> None:
    buf.push_uint16(msg.client_version, "ClientHello.client_version")
    _push_random(buf, msg.random, "ClientHello.random")
    buf.push_vector(1, msg.session_id, "ClientHello.session_id", 0, 32)
    buf.push_vector(1, msg.cookie, "ClientHello.cookie", 0, 255)
    buf.push_uint16_list(2, msg.cipher_suites, "ClientHello.cipher_suites", 2, 0xFFFE)
    buf.push_uint8_list(1, msg.compression_methods, "ClientHello.compression_methods", 1, 255)
    push_extensions(buf, msg.extensions, HandshakeContext.client_hello)


@dataclass
class HelloVerifyRequest:
    """RFC 6347 4.2.1.  (A DTLS 1.2 server SHOULD put DTLS 1.0 in server_version.)"""

    server_version: int
    cookie: bytes = b""
    msg_type: ClassVar[HandshakeType] = HandshakeType.hello_verify_request


def pull_hello_verify_request(buf: Buffer) -> HelloVerifyRequest:
    server_version = buf.pull_uint16("HelloVerifyRequest.server_version")
    return HelloVerifyRequest(server_version,
                              buf.pull_vector(1, "HelloVerifyRequest.cookie", 0, 255))


def push_hello_verify_request(buf: Buffer, msg: HelloVerifyRequest) -> None:
    buf.push_uint16(msg.server_version, "HelloVerifyRequest.server_version")
    buf.push_vector(1, msg.cookie, "HelloVerifyRequest.cookie", 0, 255)


@dataclass
class ServerHello:
    """RFC 5246 7.4.1.3."""

    server_version: int
    random: bytes
    session_id: bytes = b""
    cipher_suite: int = 0
    compression_method: int = CompressionMethod.null
    extensions: list[Extension] = field(default_factory=list)
    msg_type: ClassVar[HandshakeType] = HandshakeType.server_hello


def pull_server_hello(buf: Buffer) -> ServerHello:
    server_version = buf.pull_uint16("ServerHello.server_version")
    random = _pull_random(buf, "ServerHello.random")
    session_id = buf.pull_vector(1, "ServerHello.session_id", 0, 32)
    cipher_suite = buf.pull_uint16("ServerHello.cipher_suite")
    compression_method = buf.pull_uint8("ServerHello.compression_method")
    extensions = pull_extensions(buf, HandshakeContext.server_hello)
    return ServerHello(server_version, random, session_id, cipher_suite, compression_method,
                       extensions)


def push_server_hello(buf: Buffer, msg: ServerHello) -> None:
    buf.push_uint16(msg.server_version, "ServerHello.server_version")
    _push_random(buf, msg.random, "ServerHello.random")
    buf.push_vector(1, msg.session_id, "ServerHello.session_id", 0, 32)
    buf.push_uint16(msg.cipher_suite, "ServerHello.cipher_suite")
    buf.push_uint8(msg.compression_method, "ServerHello.compression_method")
    push_extensions(buf, msg.extensions, HandshakeContext.server_hello)


# -- Certificate ----------------------------------------------------------------------


@dataclass
class Certificate:
    """RFC 5246 7.4.2: `ASN.1Cert certificate_list<0..2^24-1>`, each `<1..2^24-1>` DER,
    sender's certificate first.  An empty list is a client with no certificate."""

    certificates: list[bytes] = field(default_factory=list)
    msg_type: ClassVar[HandshakeType] = HandshakeType.certificate


def _pull_asn1_cert(buf: Buffer) -> bytes:
    return buf.pull_vector(3, "Certificate.ASN.1Cert", 1)


def _push_asn1_cert(buf: Buffer, cert: bytes) -> None:
    buf.push_vector(3, cert, "Certificate.ASN.1Cert", 1)


def pull_certificate(buf: Buffer) -> Certificate:
    return Certificate(buf.pull_list(3, _pull_asn1_cert, "Certificate.certificate_list"))


def push_certificate(buf: Buffer, msg: Certificate) -> None:
    buf.push_list(3, _push_asn1_cert, msg.certificates, "Certificate.certificate_list")


# -- ServerKeyExchange ----------------------------------------------------------------


@dataclass
class ServerECDHParams:
    """RFC 8422 5.4: ECParameters (named_curve only) + `ECPoint public` (`<1..2^8-1>`).

    Its encoding is what the server signs (after client_random + server_random), so the
    state machine calls `push_server_ecdh_params` to rebuild the signed bytes.
    """

    named_group: int
    public_key: bytes


def pull_server_ecdh_params(buf: Buffer) -> ServerECDHParams:
    curve_type = buf.pull_uint8("ServerECDHParams.curve_type")
    if curve_type != ECCurveType.named_curve:
        # RFC 8422 5.4: explicit curves are deprecated and MUST NOT be used; their
        # layout differs, so nothing after this byte is parseable.  OpenSSL also
        # answers illegal_parameter.
        raise IllegalParameter(f"ServerECDHParams.curve_type {curve_type} is not named_curve")
    named_group = buf.pull_uint16("ServerECDHParams.namedcurve")
    return ServerECDHParams(named_group, buf.pull_vector(1, "ServerECDHParams.public", 1))


def push_server_ecdh_params(buf: Buffer, params: ServerECDHParams) -> None:
    buf.push_uint8(ECCurveType.named_curve)
    buf.push_uint16(params.named_group, "ServerECDHParams.namedcurve")
    buf.push_vector(1, params.public_key, "ServerECDHParams.public", 1)


@dataclass
class ServerKeyExchangeECDHE:
    """RFC 8422 5.4 (ec_diffie_hellman): params then `digitally-signed` over
    client_random + server_random + params.  `signature_algorithm` is None in DTLS 1.0."""

    params: ServerECDHParams
    signature_algorithm: int | None
    signature: bytes
    msg_type: ClassVar[HandshakeType] = HandshakeType.server_key_exchange


@dataclass
class ServerKeyExchangePSK:
    """RFC 4279 2: `opaque psk_identity_hint<0..2^16-1>`."""

    psk_identity_hint: bytes = b""
    msg_type: ClassVar[HandshakeType] = HandshakeType.server_key_exchange


@dataclass
class ServerKeyExchangeECDHEPSK:
    """RFC 5489 2: psk_identity_hint then ServerECDHParams, unsigned (the PSK authenticates)."""

    psk_identity_hint: bytes
    params: ServerECDHParams
    msg_type: ClassVar[HandshakeType] = HandshakeType.server_key_exchange


ServerKeyExchange = ServerKeyExchangeECDHE | ServerKeyExchangePSK | ServerKeyExchangeECDHEPSK


def pull_server_key_exchange(buf: Buffer, key_exchange: KeyExchangeAlgorithm,
                             version: int = DTLS1_2) -> ServerKeyExchange:
    """ServerKeyExchange for the negotiated key exchange (its shape has no self-description)."""
    if key_exchange is KeyExchangeAlgorithm.ECDHE:
        params = pull_server_ecdh_params(buf)
        algorithm, signature = _pull_signature(buf, version, "ServerKeyExchange.signed_params")
        return ServerKeyExchangeECDHE(params, algorithm, signature)
    if key_exchange is KeyExchangeAlgorithm.PSK:
        return ServerKeyExchangePSK(buf.pull_vector(2, "ServerKeyExchange.psk_identity_hint"))
    if key_exchange is KeyExchangeAlgorithm.ECDHE_PSK:
        hint = buf.pull_vector(2, "ServerKeyExchange.psk_identity_hint")
        return ServerKeyExchangeECDHEPSK(hint, pull_server_ecdh_params(buf))
    raise InternalError(f"ServerKeyExchange: unknown key exchange {key_exchange!r}")


def push_server_key_exchange(buf: Buffer, msg: ServerKeyExchange,
                             version: int = DTLS1_2) -> None:
    if isinstance(msg, ServerKeyExchangeECDHE):
        push_server_ecdh_params(buf, msg.params)
        _push_signature(buf, msg.signature_algorithm, msg.signature, version,
                        "ServerKeyExchange.signed_params")
    elif isinstance(msg, ServerKeyExchangePSK):
        buf.push_vector(2, msg.psk_identity_hint, "ServerKeyExchange.psk_identity_hint")
    else:
        buf.push_vector(2, msg.psk_identity_hint, "ServerKeyExchange.psk_identity_hint")
        push_server_ecdh_params(buf, msg.params)


# -- CertificateRequest, ServerHelloDone ----------------------------------------------


@dataclass
class CertificateRequest:
    """RFC 5246 7.4.4 (DTLS 1.2) / RFC 4346 7.4.4 (DTLS 1.0, no signature algorithms).

    `certificate_authorities` holds DER DistinguishedNames, each `<1..2^16-1>`.
    """

    certificate_types: list[int] = field(default_factory=list)
    supported_signature_algorithms: list[int] | None = None
    certificate_authorities: list[bytes] = field(default_factory=list)
    msg_type: ClassVar[HandshakeType] = HandshakeType.certificate_request


def _pull_distinguished_name(buf: Buffer) -> bytes:
    return buf.pull_vector(2, "CertificateRequest.DistinguishedName", 1)


def _push_distinguished_name(buf: Buffer, name: bytes) -> None:
    buf.push_vector(2, name, "CertificateRequest.DistinguishedName", 1)


# RFC 5246 7.4.4 prints the bound as `<2^16-1>`, a typo for the `<2..2^16-2>` of
# 7.4.1.4.1 (a fixed-size vector of 65535 bytes cannot be meant); we use the latter.
_SIGALGS_MIN, _SIGALGS_MAX = 2, 0xFFFE


def pull_certificate_request(buf: Buffer, version: int = DTLS1_2) -> CertificateRequest:
    certificate_types = buf.pull_uint8_list(1, "CertificateRequest.certificate_types", 1)
    algorithms = None
    if _signature_has_algorithm(version):
        algorithms = buf.pull_uint16_list(
            2, "CertificateRequest.supported_signature_algorithms", _SIGALGS_MIN, _SIGALGS_MAX)
    authorities = buf.pull_list(2, _pull_distinguished_name,
                                "CertificateRequest.certificate_authorities")
    return CertificateRequest(certificate_types, algorithms, authorities)


def push_certificate_request(buf: Buffer, msg: CertificateRequest,
                             version: int = DTLS1_2) -> None:
    buf.push_uint8_list(1, msg.certificate_types, "CertificateRequest.certificate_types", 1)
    if _signature_has_algorithm(version):
        if msg.supported_signature_algorithms is None:
            raise InternalError("CertificateRequest: DTLS 1.2 needs signature algorithms")
        buf.push_uint16_list(2, msg.supported_signature_algorithms,
                             "CertificateRequest.supported_signature_algorithms",
                             _SIGALGS_MIN, _SIGALGS_MAX)
    elif msg.supported_signature_algorithms is not None:
        raise InternalError("CertificateRequest: DTLS 1.0 has no signature algorithms")
    buf.push_list(2, _push_distinguished_name, msg.certificate_authorities,
                  "CertificateRequest.certificate_authorities")


@dataclass
class ServerHelloDone:
    """RFC 5246 7.4.5: empty."""

    msg_type: ClassVar[HandshakeType] = HandshakeType.server_hello_done


def pull_server_hello_done(buf: Buffer) -> ServerHelloDone:
    return ServerHelloDone()


def push_server_hello_done(buf: Buffer, msg: ServerHelloDone) -> None:
    pass


# -- ClientKeyExchange ----------------------------------------------------------------


@dataclass
class ClientKeyExchangeECDHE:
    """RFC 8422 5.7: `ECPoint ecdh_Yc` (`<1..2^8-1>`; the implicit form is for fixed ECDH)."""

    public_key: bytes
    msg_type: ClassVar[HandshakeType] = HandshakeType.client_key_exchange


@dataclass
class ClientKeyExchangePSK:
    """RFC 4279 2: `opaque psk_identity<0..2^16-1>`."""

    psk_identity: bytes
    msg_type: ClassVar[HandshakeType] = HandshakeType.client_key_exchange


@dataclass
class ClientKeyExchangeECDHEPSK:
    """RFC 5489 2: psk_identity then the client's ECDH point."""

    psk_identity: bytes
    public_key: bytes
    msg_type: ClassVar[HandshakeType] = HandshakeType.client_key_exchange


ClientKeyExchange = ClientKeyExchangeECDHE | ClientKeyExchangePSK | ClientKeyExchangeECDHEPSK


def pull_client_key_exchange(buf: Buffer, key_exchange: KeyExchangeAlgorithm) -> ClientKeyExchange:
    if key_exchange is KeyExchangeAlgorithm.ECDHE:
        return ClientKeyExchangeECDHE(buf.pull_vector(1, "ClientKeyExchange.ecdh_Yc", 1))
    if key_exchange is KeyExchangeAlgorithm.PSK:
        return ClientKeyExchangePSK(buf.pull_vector(2, "ClientKeyExchange.psk_identity"))
    if key_exchange is KeyExchangeAlgorithm.ECDHE_PSK:
        identity = buf.pull_vector(2, "ClientKeyExchange.psk_identity")
        return ClientKeyExchangeECDHEPSK(identity,
                                         buf.pull_vector(1, "ClientKeyExchange.ecdh_Yc", 1))
    raise InternalError(f"ClientKeyExchange: unknown key exchange {key_exchange!r}")


def push_client_key_exchange(buf: Buffer, msg: ClientKeyExchange) -> None:
    if isinstance(msg, ClientKeyExchangeECDHE):
        buf.push_vector(1, msg.public_key, "ClientKeyExchange.ecdh_Yc", 1)
    elif isinstance(msg, ClientKeyExchangePSK):
        buf.push_vector(2, msg.psk_identity, "ClientKeyExchange.psk_identity")
    else:
        buf.push_vector(2, msg.psk_identity, "ClientKeyExchange.psk_identity")
        buf.push_vector(1, msg.public_key, "ClientKeyExchange.ecdh_Yc", 1)


# -- CertificateVerify, Finished, NewSessionTicket ------------------------------------


@dataclass
class CertificateVerify:
    """RFC 5246 7.4.8 / RFC 4346 7.4.8: a `digitally-signed` over the handshake messages."""

    signature_algorithm: int | None
    signature: bytes
    msg_type: ClassVar[HandshakeType] = HandshakeType.certificate_verify


def pull_certificate_verify(buf: Buffer, version: int = DTLS1_2) -> CertificateVerify:
    algorithm, signature = _pull_signature(buf, version, "CertificateVerify")
    return CertificateVerify(algorithm, signature)


def push_certificate_verify(buf: Buffer, msg: CertificateVerify, version: int = DTLS1_2) -> None:
    _push_signature(buf, msg.signature_algorithm, msg.signature, version, "CertificateVerify")


@dataclass
class Finished:
    """RFC 5246 7.4.9: `opaque verify_data[verify_data_length]`, no length prefix."""

    verify_data: bytes
    msg_type: ClassVar[HandshakeType] = HandshakeType.finished


def pull_finished(buf: Buffer,
                  verify_data_length: int = DEFAULT_VERIFY_DATA_LENGTH) -> Finished:
    return Finished(buf.pull_bytes(verify_data_length, "Finished.verify_data"))


def push_finished(buf: Buffer, msg: Finished) -> None:
    buf.push_bytes(msg.verify_data)


@dataclass
class NewSessionTicket:
    """RFC 5077 3.3: `uint32 ticket_lifetime_hint; opaque ticket<0..2^16-1>`."""

    ticket_lifetime_hint: int
    ticket: bytes
    msg_type: ClassVar[HandshakeType] = HandshakeType.new_session_ticket


def pull_new_session_ticket(buf: Buffer) -> NewSessionTicket:
    hint = buf.pull_uint32("NewSessionTicket.ticket_lifetime_hint")
    return NewSessionTicket(hint, buf.pull_vector(2, "NewSessionTicket.ticket"))


def push_new_session_ticket(buf: Buffer, msg: NewSessionTicket) -> None:
    buf.push_uint32(msg.ticket_lifetime_hint, "NewSessionTicket.ticket_lifetime_hint")
    buf.push_vector(2, msg.ticket, "NewSessionTicket.ticket")


# -- record-level messages: Alert, ChangeCipherSpec -----------------------------------


@dataclass
class Alert:
    """RFC 5246 7.2: `AlertLevel level; AlertDescription description` (one byte each).

    Kept as ints: an unknown description from a peer is still an alert to report.
    """

    level: int
    description: int


def pull_alert(buf: Buffer) -> Alert:
    level = buf.pull_uint8("Alert.level")
    return Alert(level, buf.pull_uint8("Alert.description"))


def push_alert(buf: Buffer, msg: Alert) -> None:
    buf.push_uint8(msg.level, "Alert.level")
    buf.push_uint8(msg.description, "Alert.description")


@dataclass
class ChangeCipherSpec:
    """RFC 5246 7.1: a single byte, `change_cipher_spec(1)`."""


def pull_change_cipher_spec(buf: Buffer) -> ChangeCipherSpec:
    value = buf.pull_uint8("ChangeCipherSpec.type")
    if value != 1:
        # The byte parsed; its value is out of range (RFC 5246 7.2.2 illegal_parameter,
        # as OpenSSL does).  A wrong length is a decode_error, caught by decode().
        raise IllegalParameter(f"ChangeCipherSpec.type is {value}, not 1")
    return ChangeCipherSpec()


def push_change_cipher_spec(buf: Buffer, msg: ChangeCipherSpec) -> None:
    buf.push_uint8(1)


# -- dispatch for the state machine ---------------------------------------------------


HandshakeMessage = (
    HelloRequest | ClientHello | ServerHello | HelloVerifyRequest | NewSessionTicket
    | Certificate | ServerKeyExchange | CertificateRequest | ServerHelloDone
    | CertificateVerify | ClientKeyExchange | Finished
)

_SIMPLE_PULL: dict[int, Callable[[Buffer], HandshakeMessage]] = {
    HandshakeType.hello_request: pull_hello_request,
    HandshakeType.client_hello: pull_client_hello,
    HandshakeType.server_hello: pull_server_hello,
    HandshakeType.hello_verify_request: pull_hello_verify_request,
    HandshakeType.new_session_ticket: pull_new_session_ticket,
    HandshakeType.certificate: pull_certificate,
    HandshakeType.server_hello_done: pull_server_hello_done,
}


def decode_handshake(msg_type: int, body: bytes | bytearray | memoryview, *,
                     version: int = DTLS1_2,
                     key_exchange: KeyExchangeAlgorithm | None = None,
                     verify_data_length: int = DEFAULT_VERIFY_DATA_LENGTH) -> HandshakeMessage:
    """Decode one reassembled handshake body of type `msg_type`, rejecting trailing bytes.

    `key_exchange` is required for server_key_exchange and client_key_exchange (a caller
    that has not negotiated a suite yet should not be decoding those).  A type we do not
    handle is unexpected_message (RFC 5246 7.4: unknown handshake types).
    """
    buf = Buffer(body)
    pull = _SIMPLE_PULL.get(msg_type)
    msg: HandshakeMessage
    if pull is not None:
        msg = pull(buf)
    elif msg_type in (HandshakeType.server_key_exchange, HandshakeType.client_key_exchange):
        if key_exchange is None:
            raise InternalError(f"decode_handshake: type {msg_type} needs key_exchange")
        if msg_type == HandshakeType.server_key_exchange:
            msg = pull_server_key_exchange(buf, key_exchange, version)
        else:
            msg = pull_client_key_exchange(buf, key_exchange)
    elif msg_type == HandshakeType.certificate_request:
        msg = pull_certificate_request(buf, version)
    elif msg_type == HandshakeType.certificate_verify:
        msg = pull_certificate_verify(buf, version)
    elif msg_type == HandshakeType.finished:
        msg = pull_finished(buf, verify_data_length)
    else:
        raise UnexpectedMessage(f"handshake message type {msg_type} is not handled")
    name = type(msg).__name__
    buf.require_eof(name)
    return msg


# Keyed by class; each function accepts only its own class, hence Callable[..., None].
_PUSH_BY_TYPE: dict[type, Callable[..., None]] = {
    HelloRequest: push_hello_request,
    ClientHello: push_client_hello,
    ServerHello: push_server_hello,
    HelloVerifyRequest: push_hello_verify_request,
    NewSessionTicket: push_new_session_ticket,
    Certificate: push_certificate,
    ServerHelloDone: push_server_hello_done,
    ClientKeyExchangeECDHE: push_client_key_exchange,
    ClientKeyExchangePSK: push_client_key_exchange,
    ClientKeyExchangeECDHEPSK: push_client_key_exchange,
    Finished: push_finished,
}
"""Encoders for the bodies that need nothing but the message, by exact class: one dict
lookup instead of a dozen isinstance checks for each message of every flight."""

_VERSIONED_PUSH_BY_TYPE: dict[type, Callable[..., None]] = {
    ServerKeyExchangeECDHE: push_server_key_exchange,
    ServerKeyExchangePSK: push_server_key_exchange,
    ServerKeyExchangeECDHEPSK: push_server_key_exchange,
    CertificateRequest: push_certificate_request,
    CertificateVerify: push_certificate_verify,
}
"""Encoders whose body depends on the DTLS version (the digitally-signed form)."""


def encode_handshake(msg: HandshakeMessage, *, version: int = DTLS1_2) -> tuple[int, bytes]:
    """Encode a handshake message body; returns (msg_type, body) for the fragmenter."""
    buf = Buffer()
    push = _PUSH_BY_TYPE.get(type(msg))
    if push is not None:
        push(buf, msg)
        return msg.msg_type, buf.data
    versioned = _VERSIONED_PUSH_BY_TYPE.get(type(msg))
    if versioned is not None:
        versioned(buf, msg, version)
        return msg.msg_type, buf.data
    _encode_subclass(buf, msg, version)
    return msg.msg_type, buf.data


def _encode_subclass(buf: Buffer, msg: HandshakeMessage, version: int) -> None:
    """`encode_handshake` for an instance of a subclass of a message class (the tables
    above match exact classes only)."""
    if isinstance(msg, HelloRequest):
        push_hello_request(buf, msg)
    elif isinstance(msg, ClientHello):
        push_client_hello(buf, msg)
    elif isinstance(msg, ServerHello):
        push_server_hello(buf, msg)
    elif isinstance(msg, HelloVerifyRequest):
        push_hello_verify_request(buf, msg)
    elif isinstance(msg, NewSessionTicket):
        push_new_session_ticket(buf, msg)
    elif isinstance(msg, Certificate):
        push_certificate(buf, msg)
    elif isinstance(msg, (ServerKeyExchangeECDHE, ServerKeyExchangePSK,
                          ServerKeyExchangeECDHEPSK)):
        push_server_key_exchange(buf, msg, version)
    elif isinstance(msg, CertificateRequest):
        push_certificate_request(buf, msg, version)
    elif isinstance(msg, ServerHelloDone):
        push_server_hello_done(buf, msg)
    elif isinstance(msg, CertificateVerify):
        push_certificate_verify(buf, msg, version)
    elif isinstance(msg, (ClientKeyExchangeECDHE, ClientKeyExchangePSK,
                          ClientKeyExchangeECDHEPSK)):
        push_client_key_exchange(buf, msg)
    elif isinstance(msg, Finished):
        push_finished(buf, msg)
    else:
        raise InternalError(f"encode_handshake: not a handshake message: {msg!r}")
