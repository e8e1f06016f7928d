"""Ed25519 client certificates: CertificateVerify over the handshake messages.

RFC 8422 5.8 with RFC 8032 pure EdDSA: an Ed25519 (scheme ed25519 = 0x0807)
CertificateVerify signs the concatenated handshake messages, not a transcript digest, so
the transcript keeps them (bounded) while a CertificateVerify may still come and drops
them afterwards.  In memory against our own stack, then against GnuTLS in both roles
(OpenSSL 3.0 refuses Ed25519 in DTLS; see tests/peers.py).
"""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from certs import PKI
from dtls_testing import SERVER_ADDR, Events, Link, drive_udp, make_certificate
from peers import GnuTLSClient, GnuTLSServer

import dtls.connection as connection_module
from dtls.alerts import AlertDescription, AlertError
from dtls.config import ClientAuth, DtlsConfiguration
from dtls.connection import Connection
from dtls.events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from dtls.extensions import SignatureScheme
from dtls.fragments import parse_fragments
from dtls.keys import MAX_KEPT_TRANSCRIPT, HandshakeTranscript
from dtls.messages import CertificateRequest, ClientCertificateType, HandshakeType
from dtls.negotiation import can_answer, can_answer_legacy
from dtls.record import split_records
from dtls.recordbase import DTLS1_0, ContentType
from dtls.signatures import TRANSCRIPT_SCHEMES
from dtls.suites import CipherSuite

if TYPE_CHECKING:
    from interop_fixtures import PeerPool

pytest_plugins = ["interop_fixtures"]  # fixtures: pki, interop_peers
INTEROP_CASE_TIMEOUT = 25  # seconds, per test (read by the interop_peers fixture)

GCM = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"


# -- in memory ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_ca() -> tuple[Any, Any]:
    return make_certificate("Client CA", ca=True)


@pytest.fixture(scope="module")
def ed25519_client(client_ca: tuple[Any, Any]) -> tuple[Any, Any]:
    return make_certificate("client.example", issuer=client_ca, client=True,
                            key_type="ed25519")


def _pair(server_key_type: str, client_identity: tuple[Any, Any], ca: Any, *,
          client: dict[str, Any] | None = None, server: dict[str, Any] | None = None) -> Link:
    server_cert, server_key = make_certificate("localhost", key_type=server_key_type)
    cert, key = client_identity
    client_config = DtlsConfiguration(server_name="localhost", ca_certificates=(),
                                      verify_peer=False, certificate_chain=[cert],
                                      private_key=key)
    server_config = DtlsConfiguration(is_client=False, certificate_chain=[server_cert],
                                      private_key=server_key, client_auth=ClientAuth.REQUIRE,
                                      ca_certificates=(ca,))
    return Link(Connection(replace(client_config, **(client or {})), peer_address=SERVER_ADDR),
                Connection(replace(server_config, **(server or {}))))


def _run(link: Link) -> None:
    link.client.connection.connect(link.now)

    def finished() -> bool:
        return all(e.of_type(HandshakeCompleted) or e.of_type(ConnectionTerminated)
                   for e in (link.client, link.server))

    link.run(finished, max_time=30.0)


def _certificate_verify_filter(found: list[int], *, tamper: bool = False
                               ) -> Callable[[Any, bytes], bytes]:
    """A Link filter noting the CertificateVerify scheme (and flipping a signature bit)."""

    def watch(destination: Any, datagram: bytes) -> bytes:
        data = bytearray(datagram)
        for h in split_records(datagram)[0]:
            if h.epoch != 0 or h.content_type != ContentType.HANDSHAKE:
                continue
            start = h.offset + 13
            for f in parse_fragments(datagram[start:h.end]):
                if f.msg_type != HandshakeType.certificate_verify or f.fragment_offset != 0:
                    continue
                body = bytes(f.body)
                found.append(int.from_bytes(body[:2], "big"))
                if tamper:
                    # the last byte of this fragment is inside the signature
                    position = datagram.index(body, start) + len(body) - 1
                    data[position] ^= 0x01
        return bytes(data)

    return watch


@pytest.mark.parametrize("server_key_type", ["p256", "ed25519", "rsa"])
def test_ed25519_client_certificate_required(server_key_type: str, client_ca: Any,
                                             ed25519_client: Any) -> None:
    link = _pair(server_key_type, ed25519_client, client_ca[0])
    schemes: list[int] = []
    link.filter = _certificate_verify_filter(schemes)
    _run(link)
    done = link.server.of_type(HandshakeCompleted)
    assert done and link.client.of_type(HandshakeCompleted), (link.client.events,
                                                              link.server.events)
    assert done[0].peer_certificate == ed25519_client[0]
    assert schemes and set(schemes) == {SignatureScheme.ed25519}
    # the kept messages are gone once the handshake is over
    assert not link.client.connection._transcript.keeps_messages
    assert not link.server.connection._transcript.keeps_messages
    link.client.connection.send(b"eddsa client\n")
    link.run(lambda: bool(link.server.of_type(ApplicationData)))
    assert link.server.of_type(ApplicationData)[0].data == b"eddsa client\n"


def test_tampered_ed25519_certificate_verify_is_decrypt_error(client_ca: Any,
                                                              ed25519_client: Any) -> None:
    link = _pair("p256", ed25519_client, client_ca[0])
    schemes: list[int] = []
    link.filter = _certificate_verify_filter(schemes, tamper=True)
    _run(link)
    assert schemes, "no CertificateVerify seen"
    end = link.server.of_type(ConnectionTerminated)[0]
    assert end.alert == AlertDescription.decrypt_error
    assert "Ed25519 CertificateVerify" in end.reason and "does not verify" in end.reason
    assert "bytes of handshake messages" in end.reason
    client_end = link.client.of_type(ConnectionTerminated)[0]
    assert client_end.by_peer and client_end.alert == AlertDescription.decrypt_error


def test_ed25519_certificate_verify_by_the_wrong_key_fails(client_ca: Any,
                                                           ed25519_client: Any) -> None:
    _, other_key = make_certificate("impostor", key_type="ed25519")
    link = _pair("p256", ed25519_client, client_ca[0], client={"private_key": other_key})
    _run(link)
    end = link.server.of_type(ConnectionTerminated)[0]
    assert end.alert == AlertDescription.decrypt_error and "Ed25519" in end.reason


def _spy_on_certificate_verify(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the server still kept the messages when each CertificateVerify arrived."""
    seen: list[bool] = []
    original = Connection._server_certificate_verify

    @functools.wraps(original)
    def spy(self: Connection, *args: Any) -> None:
        seen.append(self._transcript.keeps_messages)
        original(self, *args)
        seen.append(self._transcript.keeps_messages)

    key = (connection_module.HandshakeState.WAIT_CLIENT_CERTIFICATE_VERIFY,
           HandshakeType.certificate_verify)
    assert connection_module._TRANSITIONS[key] is original
    monkeypatch.setitem(connection_module._TRANSITIONS, key, spy)
    return seen


def test_messages_are_kept_only_while_needed(monkeypatch: pytest.MonkeyPatch, client_ca: Any,
                                             ed25519_client: Any) -> None:
    seen = _spy_on_certificate_verify(monkeypatch)
    _run(_pair("p256", ed25519_client, client_ca[0]))
    assert seen == [True, False]  # kept for the Ed25519 CertificateVerify, then dropped

    # An ECDSA client certificate: the server stops keeping them at the Certificate.
    seen.clear()
    ecdsa = make_certificate("client.example", issuer=client_ca, client=True)
    link = _pair("p256", ecdsa, client_ca[0])
    _run(link)
    assert link.server.of_type(HandshakeCompleted)
    assert seen == [False, False]

    # No client authentication: nothing is kept at all (the client keeps nothing either
    # once ServerHelloDone shows no CertificateRequest).
    link = _pair("p256", ed25519_client, client_ca[0], server={"client_auth": ClientAuth.NONE})
    link.client.connection.connect(link.now)
    link.run(lambda: link.server.connection._transcript is not None
             and link.server.connection._state.value == "wait_client_key_exchange")
    assert not link.server.connection._transcript.keeps_messages
    link.run(lambda: bool(link.client.of_type(HandshakeCompleted)), max_time=30.0)
    assert link.client.of_type(HandshakeCompleted)
    assert not link.client.connection._transcript.keeps_messages


def test_kept_messages_are_bounded(monkeypatch: pytest.MonkeyPatch, client_ca: Any,
                                   ed25519_client: Any) -> None:
    small = functools.partial(HandshakeTranscript, limit=600)
    monkeypatch.setattr(connection_module, "HandshakeTranscript", small)
    link = _pair("p256", ed25519_client, client_ca[0])
    _run(link)
    end = link.server.of_type(ConnectionTerminated)[0]
    assert end.alert == AlertDescription.internal_error and "600 bytes" in end.reason


def test_transcript_keeps_exactly_the_hashed_bytes() -> None:
    import hashlib

    from dtls.keys import PrfAlgorithm

    transcript = HandshakeTranscript(keep_messages=True, limit=10)
    transcript.update(b"abc")
    transcript.update(memoryview(b"defg"))
    assert transcript.keeps_messages and transcript.messages() == b"abcdefg"
    assert transcript.digest(PrfAlgorithm.SHA256) == hashlib.sha256(b"abcdefg").digest()
    with pytest.raises(AlertError) as info:
        transcript.update(b"0123")
    assert info.value.description == AlertDescription.internal_error
    assert not transcript.keeps_messages
    plain = HandshakeTranscript()
    assert not plain.keeps_messages
    with pytest.raises(ValueError):
        plain.messages()
    kept = HandshakeTranscript(keep_messages=True)
    kept.update(b"x")
    kept.drop_messages()
    kept.drop_messages()
    assert not kept.keeps_messages and "keeping" not in repr(kept)
    assert MAX_KEPT_TRANSCRIPT == 256 * 1024


def test_ed25519_is_offered_for_certificate_verify() -> None:
    from dtls.negotiation import certificate_request

    cert, key = make_certificate("localhost")
    request = certificate_request(DtlsConfiguration(
        is_client=False, certificate_chain=[cert], private_key=key,
        client_auth=ClientAuth.REQUIRE, pinned_sha256=(bytes(32),)))
    assert request.supported_signature_algorithms is not None
    assert SignatureScheme.ed25519 in request.supported_signature_algorithms
    assert SignatureScheme.ed25519 in TRANSCRIPT_SCHEMES
    # RFC 8422 5.5: ecdsa_sign asks for ECDSA and EdDSA certificates alike.
    assert ClientCertificateType.ecdsa_sign in request.certificate_types
    # and the ClientHello's signature_algorithms offers it too
    client = Connection(DtlsConfiguration(verify_peer=False))
    hello = client._build_client_hello()
    from dtls.extensions import SignatureAlgorithms, find_extension
    sigalgs = find_extension(hello.extensions, SignatureAlgorithms)
    assert sigalgs is not None and SignatureScheme.ed25519 in sigalgs.schemes


def test_client_answers_only_requests_it_can_sign_for(ed25519_client: Any) -> None:
    cert, key = ed25519_client
    config = DtlsConfiguration(verify_peer=False, certificate_chain=[cert], private_key=key)
    ecdsa, rsa = ClientCertificateType.ecdsa_sign, ClientCertificateType.rsa_sign
    answer = can_answer(config, CertificateRequest([ecdsa], list(TRANSCRIPT_SCHEMES), []))
    assert answer is not None and answer.code is SignatureScheme.ed25519
    assert can_answer(config, CertificateRequest([rsa], list(TRANSCRIPT_SCHEMES), [])) is None
    assert can_answer(config, CertificateRequest(
        [ecdsa], [SignatureScheme.ecdsa_secp256r1_sha256], [])) is None
    # DTLS 1.0's ecdsa_sign is ECDSA over SHA-1 only: no Ed25519 answer there.
    assert not can_answer_legacy(config, CertificateRequest([ecdsa], None, []))


def test_ed25519_client_certificate_in_dtls10_is_not_sent(client_ca: Any,
                                                          ed25519_client: Any) -> None:
    # DTLS 1.0 has no Ed25519 CertificateVerify: the client answers with no certificate.
    link = _pair("p256", ed25519_client, client_ca[0],
                 client={"versions": (DTLS1_0,),
                         "cipher_suites": (CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,)},
                 server={"versions": (DTLS1_0,), "client_auth": ClientAuth.REQUEST,
                         "cipher_suites": (CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,)})
    _run(link)
    done = link.server.of_type(HandshakeCompleted)
    assert done and done[0].peer_certificate is None, link.server.events


# -- GnuTLS ---------------------------------------------------------------------------------


def _drive(conn: Connection, sock: socket.socket, until: Callable[[], bool], events: Events,
           peer: Any, what: str) -> None:
    try:
        drive_udp(conn, sock, until=until, on_event=events, timeout=10)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}: {events.items!r}\n"
                             f"{peer.diagnostics(2000)}") from None


def test_our_ed25519_client_against_gnutls_serv(interop_peers: PeerPool, pki: PKI) -> None:
    """gnutls-serv --require-client-cert accepts our Ed25519 CertificateVerify."""
    server = interop_peers.start(GnuTLSServer(suite=GCM, cert=pki.server_ecdsa,
                                              ca=pki.ca.cert_path, client_auth="require"))
    assert server.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect(("127.0.0.1", server.port))
        conn = Connection(DtlsConfiguration(
            ca_certificates=(pki.ca.cert,), server_name="localhost",
            certificate_chain=[pki.client_ed25519.cert], private_key=pki.client_ed25519.key),
            peer_address=("127.0.0.1", server.port))
        events = Events()
        conn.connect(time.monotonic())
        _drive(conn, sock, events.done(), events, server, "the handshake")
        assert events.of_type(HandshakeCompleted), (events.items, server.diagnostics(2000))
        assert conn._certificate_request is not None  # it did ask for our certificate
        assert SignatureScheme.ed25519 in (
            conn._certificate_request.supported_signature_algorithms or ())
        conn.send(b"ed25519 client\n")
        _drive(conn, sock, events.has(ApplicationData), events, server, "the echo")
        assert events.of_type(ApplicationData)[0].data == b"ed25519 client\n"
        server.expect_line("ed25519 client", timeout=5)
        conn.close()
        drive_udp(conn, sock, until=lambda: True, on_event=events, timeout=2)
    finally:
        sock.close()


def test_gnutls_cli_with_ed25519_client_certificate_against_our_server(
        interop_peers: PeerPool, pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    """gnutls-cli signs CertificateVerify with Ed25519; our server verifies it."""
    seen = _spy_on_certificate_verify(monkeypatch)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        conn = Connection(DtlsConfiguration(
            is_client=False, certificate_chain=[pki.server_ecdsa.cert],
            private_key=pki.server_ecdsa.key, client_auth=ClientAuth.REQUIRE,
            ca_certificates=(pki.ca.cert,)))
        client = interop_peers.start(GnuTLSClient(suite=GCM, port=port, ca=pki.ca.cert_path,
                                                  cert=pki.client_ed25519))
        events = Events()
        _drive(conn, sock, events.done(), events, client, "the handshake")
        done = events.of_type(HandshakeCompleted)
        assert done, (events.items, client.diagnostics(2000))
        assert done[0].peer_certificate == pki.client_ed25519.cert
        assert seen == [True, False]  # an Ed25519 CertificateVerify over the kept messages
        _drive(conn, sock, lambda: any(h.complete for h in client.handshakes), events, client,
               "gnutls-cli to report its handshake")
        client.send_line("from gnutls")
        _drive(conn, sock, events.has(ApplicationData), events, client, "the client's line")
        assert events.of_type(ApplicationData)[0].data == b"from gnutls\n"
        conn.send(b"from python\n")
        _drive(conn, sock, lambda: b"from python" in client.received, events, client,
               "gnutls-cli to receive our line")
    finally:
        sock.close()
