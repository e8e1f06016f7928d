"""DTLS 1.0 (RFC 4347) over the in-memory link: negotiated only when enabled, TLS 1.1
PRF and MD5+SHA-1 Finished, CBC suites, SHA-1-era signatures (RFC 4346 7.4.3,
RFC 4492 5.4), client certificates, resumption; and no downgrade when not enabled."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from dtls_testing import SERVER_ADDR, Link, make_certificate

from dtls.alerts import AlertDescription, DecryptError
from dtls.config import ClientAuth, DtlsConfiguration
from dtls.connection import Connection
from dtls.events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from dtls.extensions import SignatureAlgorithms, find_extension
from dtls.negotiation import build_client_hello
from dtls.recordbase import DTLS1_0, DTLS1_2
from dtls.signatures import legacy_digest, sign_legacy, verify_legacy
from dtls.suites import CipherSuite
from dtls.verify import fingerprint_sha256

BOTH = (DTLS1_2, DTLS1_0)
ECDSA_CBC = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
RSA_CBC = CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA


@pytest.fixture(scope="module", params=["p256", "rsa"])
def identity(request: pytest.FixtureRequest) -> Any:
    return (*make_certificate("localhost", key_type=request.param), request.param)


def pair(identity: Any, client: dict[str, Any] | None = None,
         server: dict[str, Any] | None = None, **link: Any) -> Link:
    cert, key, kind = identity
    suite = RSA_CBC if kind == "rsa" else ECDSA_CBC
    c = DtlsConfiguration(server_name="localhost", pinned_sha256=(fingerprint_sha256(cert),),
                          versions=BOTH, cipher_suites=(suite,), mac_then_encrypt=True)
    s = DtlsConfiguration(is_client=False, certificate_chain=[cert], private_key=key,
                          versions=(DTLS1_0,), cipher_suites=(suite,), mac_then_encrypt=True)
    return Link(Connection(replace(c, **(client or {})), peer_address=SERVER_ADDR),
                Connection(replace(s, **(server or {}))), **link)


def complete(link: Link, now: float = 0.0, **connect: Any) -> tuple[Any, Any]:
    link.now = now
    link.client.connection.connect(now, **connect)
    link.run(lambda: bool(link.client.of_type(HandshakeCompleted)
                          and link.server.of_type(HandshakeCompleted)), max_time=now + 60)
    assert link.client.of_type(HandshakeCompleted), (link.client.events, link.server.events)
    return link.client.of_type(HandshakeCompleted)[0], link.server.of_type(HandshakeCompleted)[0]


@pytest.mark.parametrize("etm", [True, False])
def test_dtls10_handshake_and_data(identity: Any, etm: bool) -> None:
    link = pair(identity, client={"encrypt_then_mac": etm})
    client, server = complete(link)
    assert client.version == server.version == DTLS1_0
    assert client.encrypt_then_mac is etm and client.extended_master_secret
    link.client.connection.send(b"ping")
    link.server.connection.send(b"pong")
    link.run(lambda: bool(link.server.of_type(ApplicationData)
                          and link.client.of_type(ApplicationData)))
    assert link.server.of_type(ApplicationData)[0].data == b"ping"
    assert link.client.of_type(ApplicationData)[0].data == b"pong"
    # Same PRF on both sides (RFC 4346 5): exported keys agree.
    assert link.client.connection.export_keying_material("EXPERIMENTAL t", 32) == \
        link.server.connection.export_keying_material("EXPERIMENTAL t", 32)


def test_dtls10_with_loss(identity: Any) -> None:
    client, _ = complete(pair(identity, loss=0.25, seed=11))
    assert client.version == DTLS1_0


@pytest.mark.parametrize("client_key_type", ["p256", "rsa"])
def test_dtls10_client_certificate(identity: Any, client_key_type: str) -> None:
    # CertificateVerify without an algorithm: RSA over MD5 || SHA-1, ECDSA over SHA-1.
    client_cert, client_key = make_certificate("client", client=True, key_type=client_key_type)
    link = pair(identity,
                client={"certificate_chain": [client_cert], "private_key": client_key},
                server={"client_auth": ClientAuth.REQUIRE,
                        "pinned_sha256": (fingerprint_sha256(client_cert),)})
    _, server = complete(link)
    assert server.version == DTLS1_0 and server.peer_certificate == client_cert


def test_dtls10_resumption(identity: Any) -> None:
    first = pair(identity)
    complete(first)
    session = first.client.connection.session
    assert session is not None and session.version == DTLS1_0
    config = first.server.connection.configuration
    second = Link(Connection(first.client.connection.configuration, peer_address=SERVER_ADDR),
                  Connection(config))
    client, server = complete(second, now=5.0, session=session)
    assert client.resumed and server.resumed and client.version == DTLS1_0


def test_both_enabled_prefers_dtls12(identity: Any) -> None:
    client, _ = complete(pair(identity, server={"versions": BOTH}))
    assert client.version == DTLS1_2


def test_dtls12_only_client_refuses_dtls10_server(identity: Any) -> None:
    link = pair(identity, client={"versions": (DTLS1_2,)})
    link.client.connection.connect(0.0)
    link.run(lambda: bool(link.client.of_type(ConnectionTerminated)), max_time=30)
    (end,) = link.client.of_type(ConnectionTerminated)
    assert end.alert == AlertDescription.protocol_version and not end.by_peer


def test_dtls12_only_server_refuses_dtls10_client(identity: Any) -> None:
    link = pair(identity, client={"versions": (DTLS1_0,)}, server={"versions": (DTLS1_2,)})
    link.client.connection.connect(0.0)
    link.run(lambda: bool(link.server.of_type(ConnectionTerminated)), max_time=30)
    (end,) = link.server.of_type(ConnectionTerminated)
    assert end.alert == AlertDescription.protocol_version


def test_dtls10_only_client_hello(identity: Any) -> None:
    cert = identity[0]
    config = DtlsConfiguration(
        pinned_sha256=(fingerprint_sha256(cert),), versions=(DTLS1_0,),
        cipher_suites=(ECDSA_CBC, CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                       CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256))
    hello = build_client_hello(config, bytes(32))
    assert hello.client_version == DTLS1_0
    assert hello.cipher_suites == [ECDSA_CBC]  # no AEAD, no SHA-256 PRF suites in 1.0
    assert find_extension(hello.extensions, SignatureAlgorithms) is None  # RFC 5246 7.4.1.4.1


def test_config_rejects_dtls10_without_cbc_suites() -> None:
    with pytest.raises(ValueError, match="DTLS 1.0"):
        DtlsConfiguration(pinned_sha256=(bytes(32),), versions=(DTLS1_0,)).validate()
    with pytest.raises(ValueError, match="versions"):
        DtlsConfiguration(pinned_sha256=(bytes(32),), versions=(0xFEFE,)).validate()


def test_legacy_signatures_round_trip(identity: Any) -> None:
    cert, key, _ = identity
    digest = legacy_digest(b"signed params")
    signature = sign_legacy(key, digest)
    verify_legacy(cert.public_key(), signature, digest)
    with pytest.raises(DecryptError):
        verify_legacy(cert.public_key(), signature, legacy_digest(b"other"))
