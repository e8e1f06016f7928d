"""Interop with OpenSSL over real UDP on 127.0.0.1: our client vs `openssl s_server`, our
server vs `openssl s_client`, DTLS 1.2, ECDHE-ECDSA-AES128-GCM-SHA256, data both ways.

Every wait is bounded (driver timeouts, process timeouts) and the openssl process is
killed in a finally block, so a misbehaving peer fails the test instead of hanging it.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from dtls_testing import (
    Events,
    LossyUdpProxy,
    PeerProcess,
    drive_udp,
    free_udp_port,
    make_certificate,
    write_pki,
)

from dtls.alerts import AlertDescription
from dtls.config import ClientAuth, DtlsConfiguration
from dtls.connection import Connection
from dtls.events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from dtls.extensions import NamedGroup
from dtls.suites import CipherSuite
from dtls.verify import fingerprint_sha256

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl binary not found on PATH")

CIPHER = "ECDHE-ECDSA-AES128-GCM-SHA256"
GROUPS = {NamedGroup.x25519: "X25519", NamedGroup.secp256r1: "P-256"}
# OpenSSL (correctly, RFC 8422 5.1.1 / RFC 4492 5.3) also requires the ECDSA certificate's
# curve, P-256, among the client's supported groups, so the side choosing the ECDHE group is
# restricted to `group`, while the other side always offers both.


class OpenSSLProcess(PeerProcess):
    def __init__(self, args: list[str]) -> None:
        assert OPENSSL is not None
        super().__init__([OPENSSL, *args])


@pytest.fixture
def pki(tmp_path: Path):
    """A CA, a P-256 leaf for "localhost" it issued, and both written as PEM."""
    return write_pki(tmp_path)


@pytest.mark.parametrize("group", list(GROUPS))
@pytest.mark.parametrize("verification", ["pinned", "ca"])
def test_our_client_against_openssl_s_server(pki, group: NamedGroup, verification: str) -> None:
    port = free_udp_port()
    server = OpenSSLProcess([
        "s_server", "-dtls1_2", "-cipher", CIPHER, "-groups", GROUPS[group],
        "-cert", pki["cert_pem"], "-key", pki["key_pem"], "-accept", f"127.0.0.1:{port}",
        "-naccept", "1"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.wait_for("ACCEPT")
        sock.connect(("127.0.0.1", port))
        trust = ({"pinned_sha256": (fingerprint_sha256(pki["cert"]),)} if verification == "pinned"
                 else {"ca_certificates": (pki["ca_cert"],)})
        client = Connection(DtlsConfiguration(server_name="localhost", **trust),
                            peer_address=("127.0.0.1", port))
        events = Events()
        client.connect(time.monotonic())
        drive_udp(client, sock, until=events.done(), on_event=events, timeout=10)
        done = events.of_type(HandshakeCompleted)
        assert done, (events.items, client.stats, server.output)
        completed = done[0]
        assert completed.cipher_suite is CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        assert completed.named_group is group and completed.extended_master_secret
        assert completed.peer_certificate == pki["cert"]

        client.send(b"hello from python\n")
        server.write(b"hello from openssl\n")
        drive_udp(client, sock, until=lambda: bool(events.of_type(ApplicationData))
                  and "hello from python" in server.output, on_event=events, timeout=10)
        assert b"".join(e.data for e in events.of_type(ApplicationData)) == \
            b"hello from openssl\n"

        client.close()
        drive_udp(client, sock, until=lambda: True, on_event=events, timeout=2)
        server.wait_exit(10)  # -naccept 1: exits once our close_notify arrives
        assert "CONNECTION CLOSED" in server.output or "DONE" in server.output
    finally:
        sock.close()
        server.stop()


@pytest.mark.parametrize("group", list(GROUPS))
def test_openssl_s_client_against_our_server(pki, group: NamedGroup) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    client = OpenSSLProcess([
        "s_client", "-dtls1_2", "-cipher", CIPHER, "-groups", "X25519:P-256",
        "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
        "-CAfile", pki["ca_pem"], "-verify_return_error", "-verify_hostname", "localhost"])
    try:
        server = Connection(DtlsConfiguration(is_client=False, certificate_chain=[pki["cert"]],
                                              private_key=pki["key"], groups=(group,)))
        events = Events()
        drive_udp(server, sock, until=events.done(), on_event=events, timeout=10)
        done = events.of_type(HandshakeCompleted)
        assert done, (events.items, server.stats, client.output)
        assert done[0].named_group is group
        assert server.stats["hello_verify_request"] == 1  # OpenSSL went through the cookie
        drive_udp(server, sock, until=client.saw("Verify return code: 0 (ok)"),
                  on_event=events, timeout=10)
        assert "Extended master secret: yes" in client.output
        assert f"Cipher is {CIPHER}" in client.output

        client.write(b"hello from openssl\n")
        drive_udp(server, sock, until=events.has(ApplicationData), on_event=events, timeout=10)
        server.send(b"hello from python\n")
        drive_udp(server, sock, until=client.saw("hello from python"), on_event=events,
                  timeout=10)
        assert b"".join(e.data for e in events.of_type(ApplicationData)) == \
            b"hello from openssl\n"

        client.close_stdin()  # s_client sends close_notify on EOF
        drive_udp(server, sock, until=events.has(ConnectionTerminated), on_event=events,
                  timeout=10)
        (end,) = events.of_type(ConnectionTerminated)
        assert end.alert == AlertDescription.close_notify and end.by_peer
        client.wait_exit(10)
    finally:
        sock.close()
        client.stop()


def test_openssl_rejects_our_server_with_an_untrusted_certificate(pki, tmp_path: Path) -> None:
    """OpenSSL's fatal alert reaches our server as a typed termination."""
    other_ca, _ = make_certificate("Some Other CA", ca=True)
    other = tmp_path / "other.pem"
    other.write_bytes(other_ca.public_bytes(serialization.Encoding.PEM))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    client = OpenSSLProcess(["s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}",
                             "-CAfile", str(other), "-verify_return_error"])
    try:
        server = Connection(DtlsConfiguration(is_client=False, certificate_chain=[pki["cert"]],
                                              private_key=pki["key"]))
        events = Events()
        drive_udp(server, sock, until=events.has(ConnectionTerminated), on_event=events,
                  timeout=10)
        (end,) = events.of_type(ConnectionTerminated)
        assert end.by_peer and end.alert == AlertDescription.unknown_ca
    finally:
        sock.close()
        client.stop()


def test_our_client_rejects_openssl_with_a_wrong_pin(pki) -> None:
    port = free_udp_port()
    server = OpenSSLProcess(["s_server", "-dtls1_2", "-cert", pki["cert_pem"],
                             "-key", pki["key_pem"], "-accept", f"127.0.0.1:{port}",
                             "-naccept", "1"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.wait_for("ACCEPT")
        sock.connect(("127.0.0.1", port))
        client = Connection(DtlsConfiguration(pinned_sha256=(b"\x11" * 32,)),
                            peer_address=("127.0.0.1", port))
        events = Events()
        client.connect(time.monotonic())
        drive_udp(client, sock, until=events.done(), on_event=events, timeout=10)
        (end,) = events.of_type(ConnectionTerminated)
        assert end.alert == AlertDescription.bad_certificate and not end.by_peer
        server.wait_for("alert bad certificate")
    finally:
        sock.close()
        server.stop()


def test_our_client_answers_a_certificate_request_with_no_certificate(pki) -> None:
    """`s_server -verify 1` asks for a client certificate but does not require one."""
    port = free_udp_port()
    server = OpenSSLProcess(["s_server", "-dtls1_2", "-cert", pki["cert_pem"],
                             "-key", pki["key_pem"], "-accept", f"127.0.0.1:{port}",
                             "-naccept", "1", "-verify", "1"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.wait_for("ACCEPT")
        sock.connect(("127.0.0.1", port))
        client = Connection(DtlsConfiguration(ca_certificates=(pki["ca_cert"],),
                                              server_name="localhost"),
                            peer_address=("127.0.0.1", port))
        events = Events()
        client.connect(time.monotonic())
        drive_udp(client, sock, until=events.done(), on_event=events, timeout=10)
        assert events.of_type(HandshakeCompleted), (events.items, server.output)
        assert client._certificate_request is not None  # the CertificateRequest path
        client.send(b"anonymous client\n")
        drive_udp(client, sock, until=server.saw("anonymous client"), on_event=events,
                  timeout=10)
        client.close()
        drive_udp(client, sock, until=lambda: True, on_event=events, timeout=2)
    finally:
        sock.close()
        server.stop()


def test_fragmented_flights_both_ways(pki) -> None:
    """Small datagrams: OpenSSL reassembles our fragments and we reassemble its."""
    port = free_udp_port()
    server = OpenSSLProcess(["s_server", "-dtls1_2", "-cert", pki["cert_pem"],
                             "-key", pki["key_pem"], "-accept", f"127.0.0.1:{port}",
                             "-naccept", "1", "-mtu", "300"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sizes: list[int] = []
    try:
        server.wait_for("ACCEPT")
        sock.connect(("127.0.0.1", port))
        client = Connection(DtlsConfiguration(ca_certificates=(pki["ca_cert"],),
                                              server_name="localhost", max_datagram_size=300),
                            peer_address=("127.0.0.1", port))
        real_receive = client.receive_datagram

        def measure(data, addr, now):  # type: ignore[no-untyped-def]
            sizes.append(len(data))
            real_receive(data, addr, now)

        client.receive_datagram = measure  # type: ignore[method-assign]
        events = Events()
        client.connect(time.monotonic())
        drive_udp(client, sock, until=events.done(), on_event=events, timeout=10)
        assert events.of_type(HandshakeCompleted), (events.items, client.stats, server.output)
        assert len(sizes) >= 3 and max(sizes) <= 300  # OpenSSL fragmented its flight
        assert client._reassembler.counts  # fragments went through the reassembler
        client.close()
        drive_udp(client, sock, until=lambda: True, on_event=events, timeout=2)
    finally:
        sock.close()
        server.stop()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    client_process = OpenSSLProcess(["s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}",
                                     "-CAfile", pki["ca_pem"], "-verify_return_error"])
    try:
        our_server = Connection(DtlsConfiguration(
            is_client=False, certificate_chain=[pki["cert"]], private_key=pki["key"],
            max_datagram_size=300))
        sent: list[int] = []
        real_datagrams = our_server.datagrams_to_send

        def measured(now):  # type: ignore[no-untyped-def]
            datagrams = real_datagrams(now)
            sent.extend(len(d) for d, _ in datagrams)
            return datagrams

        our_server.datagrams_to_send = measured  # type: ignore[method-assign]
        events = Events()
        drive_udp(our_server, sock, until=events.done(), on_event=events, timeout=10)
        assert events.of_type(HandshakeCompleted), (events.items, client_process.output)
        assert max(sent) <= 300 and len(sent) >= 4  # flight 4 went out in fragments
        drive_udp(our_server, sock, until=client_process.saw("Verify return code: 0 (ok)"),
                  on_event=events, timeout=10)
    finally:
        sock.close()
        client_process.stop()


OPENSSL_SUITE_NAMES = {
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: "ECDHE-ECDSA-AES128-SHA256",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384: "ECDHE-ECDSA-AES256-SHA384",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CCM: "ECDHE-ECDSA-AES128-CCM",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8: "ECDHE-ECDSA-AES128-CCM8",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8: "ECDHE-ECDSA-AES256-CCM8",
}


SUITE_CASES = [pytest.param(suite, etm, id=f"{suite.name}{'-etm' if etm else ''}")
               for suite in OPENSSL_SUITE_NAMES
               for etm in ((False, True) if "CBC" in suite.name else (False,))]


@pytest.mark.parametrize("suite, etm", SUITE_CASES)
def test_every_supported_suite_both_roles(pki, suite: CipherSuite, etm: bool) -> None:
    """Each ECDHE_ECDSA suite, our client then our server, with data both ways; the CBC
    suites with encrypt-then-MAC (RFC 7366) and without (MAC-then-encrypt)."""
    name = OPENSSL_SUITE_NAMES[suite]
    port = free_udp_port()
    server = OpenSSLProcess(["s_server", "-dtls1_2", "-cipher", name, "-groups", "P-384",
                             "-cert", pki["cert_pem"], "-key", pki["key_pem"],
                             "-accept", f"127.0.0.1:{port}", "-naccept", "1"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.wait_for("ACCEPT")
        sock.connect(("127.0.0.1", port))
        client = Connection(DtlsConfiguration(ca_certificates=(pki["ca_cert"],),
                                              server_name="localhost", cipher_suites=(suite,),
                                              encrypt_then_mac=etm, mac_then_encrypt=not etm),
                            peer_address=("127.0.0.1", port))
        events = Events()
        client.connect(time.monotonic())
        drive_udp(client, sock, until=events.done(), on_event=events, timeout=10)
        done = events.of_type(HandshakeCompleted)
        assert done and done[0].cipher_suite is suite, (events.items, server.output)
        assert done[0].named_group is NamedGroup.secp384r1
        assert done[0].encrypt_then_mac is etm
        client.send(b"client says hi\n")
        server.write(b"server says hi\n")
        drive_udp(client, sock, until=lambda: bool(events.of_type(ApplicationData))
                  and "client says hi" in server.output, on_event=events, timeout=10)
        client.close()
        drive_udp(client, sock, until=lambda: True, on_event=events, timeout=2)
    finally:
        sock.close()
        server.stop()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    client_process = OpenSSLProcess(["s_client", "-dtls1_2", "-cipher", name,
                                     "-connect", f"127.0.0.1:{port}", "-CAfile", pki["ca_pem"],
                                     "-verify_return_error"])
    try:
        our_server = Connection(DtlsConfiguration(
            is_client=False, certificate_chain=[pki["cert"]], private_key=pki["key"],
            cipher_suites=(suite,), encrypt_then_mac=etm, mac_then_encrypt=not etm))
        events = Events()
        drive_udp(our_server, sock, until=events.done(), on_event=events, timeout=10)
        done = events.of_type(HandshakeCompleted)
        assert done and done[0].cipher_suite is suite, (events.items, client_process.output)
        assert done[0].encrypt_then_mac is etm
        client_process.write(b"client says hi\n")
        drive_udp(our_server, sock, until=events.has(ApplicationData), on_event=events,
                  timeout=10)
        our_server.send(b"server says hi\n")
        drive_udp(our_server, sock, until=client_process.saw("server says hi"),
                  on_event=events, timeout=10)
    finally:
        sock.close()
        client_process.stop()


@pytest.mark.parametrize("drops", [
    pytest.param({"drop_down": {1}}, id="server-flight-4-lost"),
    pytest.param({"drop_up": {2}}, id="client-flight-5-lost"),
    pytest.param({"drop_down": {2}}, id="server-flight-6-lost"),
    pytest.param({"drop_up": {0}, "drop_down": {0}}, id="hello-and-hvr-lost"),
])
def test_our_client_recovers_lost_flights_with_openssl(pki, drops: dict) -> None:
    """Each flight lost once, through a proxy: both sides' retransmission must repair it."""
    port = free_udp_port()
    server = OpenSSLProcess(["s_server", "-dtls1_2", "-cert", pki["cert_pem"],
                             "-key", pki["key_pem"], "-accept", f"127.0.0.1:{port}",
                             "-naccept", "1"])
    proxy = None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.wait_for("ACCEPT")
        proxy = LossyUdpProxy(("127.0.0.1", port), **drops)
        sock.connect(proxy.address)
        client = Connection(DtlsConfiguration(ca_certificates=(pki["ca_cert"],),
                                              server_name="localhost"),
                            peer_address=proxy.address)
        events = Events()
        client.connect(time.monotonic())
        drive_udp(client, sock, until=events.done(), on_event=events, timeout=15)
        assert events.of_type(HandshakeCompleted), (events.items, client.stats, proxy.dropped)
        assert proxy.dropped, "the scheduled loss never happened"
        client.send(b"made it\n")
        drive_udp(client, sock, until=server.saw("made it"), on_event=events, timeout=10)
        client.close()
        drive_udp(client, sock, until=lambda: True, on_event=events, timeout=2)
    finally:
        sock.close()
        if proxy is not None:
            proxy.close()
        server.stop()


@pytest.mark.parametrize("drops", [
    pytest.param({"drop_down": {1}}, id="our-flight-4-lost"),
    pytest.param({"drop_up": {2}}, id="openssl-flight-5-lost"),
    pytest.param({"drop_down": {2}}, id="our-final-flight-lost"),
])
def test_our_server_recovers_lost_flights_with_openssl(pki, drops: dict) -> None:
    """As above with the roles swapped; losing our final flight makes OpenSSL resend its
    flight 5, which our server must answer by resending flight 6 (RFC 6347 4.2.4)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    proxy = LossyUdpProxy(sock.getsockname(), **drops)
    client = OpenSSLProcess(["s_client", "-dtls1_2", "-connect", f"{proxy.address[0]}:{proxy.address[1]}",
                             "-CAfile", pki["ca_pem"], "-verify_return_error"])
    try:
        server = Connection(DtlsConfiguration(is_client=False, certificate_chain=[pki["cert"]],
                                              private_key=pki["key"]))
        events = Events()
        drive_udp(server, sock, until=events.done(), on_event=events, timeout=15)
        assert events.of_type(HandshakeCompleted), (events.items, server.stats, proxy.dropped)
        # Keep serving while OpenSSL finishes: it may still need our final flight resent.
        drive_udp(server, sock, until=client.saw("Verify return code: 0 (ok)"),
                  on_event=events, timeout=15)
        assert proxy.dropped, "the scheduled loss never happened"
        client.write(b"made it\n")
        drive_udp(server, sock, until=events.has(ApplicationData), on_event=events, timeout=10)
        if "drop_down" in drops and 2 in drops["drop_down"]:
            assert server.stats["retransmit_on_peer_resend"] >= 1
    finally:
        sock.close()
        proxy.close()
        client.stop()


def test_key_log_and_exporter_match_openssl(pki, tmp_path: Path) -> None:
    """OpenSSL's SSLKEYLOGFILE line and RFC 5705 exporter output equal ours."""
    keylog = tmp_path / "keylog.txt"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    client = OpenSSLProcess(["s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}",
                             "-CAfile", pki["ca_pem"], "-verify_return_error",
                             "-keylogfile", str(keylog),
                             "-keymatexport", "EXTRACTOR-dtls_srtp", "-keymatexportlen", "60"])
    lines: list[str] = []
    try:
        server = Connection(DtlsConfiguration(is_client=False, certificate_chain=[pki["cert"]],
                                              private_key=pki["key"], keylog=lines.append))
        events = Events()
        drive_udp(server, sock, until=events.done(), on_event=events, timeout=10)
        assert events.of_type(HandshakeCompleted), (events.items, client.output)
        drive_udp(server, sock, until=client.saw("Keying material:"), on_event=events,
                  timeout=10)
        client.wait_for("Verify return code")
        exported = server.export_keying_material("EXTRACTOR-dtls_srtp", 60)
        assert f"Keying material: {exported.hex().upper()}" in client.output
        theirs = [line for line in keylog.read_text().splitlines()
                  if line.startswith("CLIENT_RANDOM")]
        assert theirs == lines
    finally:
        sock.close()
        client.stop()


@pytest.fixture
def client_pki(pki, tmp_path: Path):
    """A client certificate (EKU clientAuth) issued by the interop CA, as PEM too."""
    cert, key = make_certificate("client.example", issuer=(pki["ca_cert"], pki["ca_key"]),
                                 client=True)
    cert_pem, key_pem = tmp_path / "client-cert.pem", tmp_path / "client-key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return {"cert": cert, "key": key, "cert_pem": str(cert_pem), "key_pem": str(key_pem)}


def test_our_client_certificate_accepted_by_openssl(pki, client_pki) -> None:
    """`s_server -Verify 1` requires a client certificate and checks it against the CA."""
    port = free_udp_port()
    server = OpenSSLProcess(["s_server", "-dtls1_2", "-cert", pki["cert_pem"],
                             "-key", pki["key_pem"], "-accept", f"127.0.0.1:{port}",
                             "-naccept", "1", "-Verify", "1", "-CAfile", pki["ca_pem"],
                             "-verify_return_error"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.wait_for("ACCEPT")
        sock.connect(("127.0.0.1", port))
        client = Connection(DtlsConfiguration(
            ca_certificates=(pki["ca_cert"],), server_name="localhost",
            certificate_chain=[client_pki["cert"]], private_key=client_pki["key"]),
            peer_address=("127.0.0.1", port))
        events = Events()
        client.connect(time.monotonic())
        drive_udp(client, sock, until=events.done(), on_event=events, timeout=10)
        assert events.of_type(HandshakeCompleted), (events.items, server.output)
        client.send(b"authenticated client\n")
        drive_udp(client, sock, until=server.saw("authenticated client"), on_event=events,
                  timeout=10)
        assert "client.example" in server.output  # s_server prints the client's subject
        client.close()
        drive_udp(client, sock, until=lambda: True, on_event=events, timeout=2)
    finally:
        sock.close()
        server.stop()


@pytest.mark.parametrize("present", [True, False], ids=["with-cert", "without-cert"])
def test_our_server_requires_openssl_client_certificate(pki, client_pki, present: bool) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    args = ["s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}", "-CAfile", pki["ca_pem"],
            "-verify_return_error"]
    if present:
        args += ["-cert", client_pki["cert_pem"], "-key", client_pki["key_pem"]]
    client = OpenSSLProcess(args)
    try:
        server = Connection(DtlsConfiguration(
            is_client=False, certificate_chain=[pki["cert"]], private_key=pki["key"],
            client_auth=ClientAuth.REQUIRE, ca_certificates=(pki["ca_cert"],)))
        events = Events()
        drive_udp(server, sock, until=events.done(), on_event=events, timeout=10)
        if present:
            done = events.of_type(HandshakeCompleted)
            assert done and done[0].peer_certificate == client_pki["cert"], \
                (events.items, client.output)
            drive_udp(server, sock, until=client.saw("Verify return code: 0 (ok)"),
                      on_event=events, timeout=10)
        else:
            (end,) = events.of_type(ConnectionTerminated)
            assert end.alert == AlertDescription.handshake_failure and not end.by_peer
            client.wait_exit(10)
            assert "handshake failure" in client.output
    finally:
        sock.close()
        client.stop()


def test_alpn_with_openssl_both_roles(pki) -> None:
    port = free_udp_port()
    server = OpenSSLProcess(["s_server", "-dtls1_2", "-cert", pki["cert_pem"],
                             "-key", pki["key_pem"], "-accept", f"127.0.0.1:{port}",
                             "-naccept", "1", "-alpn", "webrtc,coap"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.wait_for("ACCEPT")
        sock.connect(("127.0.0.1", port))
        client = Connection(DtlsConfiguration(
            ca_certificates=(pki["ca_cert"],), server_name="localhost",
            alpn_protocols=(b"coap", b"webrtc")), peer_address=("127.0.0.1", port))
        events = Events()
        client.connect(time.monotonic())
        drive_udp(client, sock, until=events.done(), on_event=events, timeout=10)
        done = events.of_type(HandshakeCompleted)
        # OpenSSL's s_server picks by its own order among what we offered.
        assert done and done[0].alpn_protocol == b"webrtc", (events.items, server.output)
        client.close()
        drive_udp(client, sock, until=lambda: True, on_event=events, timeout=2)
    finally:
        sock.close()
        server.stop()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    client_process = OpenSSLProcess(["s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}",
                                     "-CAfile", pki["ca_pem"], "-alpn", "coap,webrtc"])
    try:
        our_server = Connection(DtlsConfiguration(
            is_client=False, certificate_chain=[pki["cert"]], private_key=pki["key"],
            alpn_protocols=(b"webrtc", b"coap")))
        events = Events()
        drive_udp(our_server, sock, until=events.done(), on_event=events, timeout=10)
        done = events.of_type(HandshakeCompleted)
        assert done and done[0].alpn_protocol == b"webrtc", (events.items, client_process.output)
        drive_udp(our_server, sock, until=client_process.saw("ALPN protocol: webrtc"),
                  on_event=events, timeout=10)
    finally:
        sock.close()
        client_process.stop()


PSK_SUITES = {
    CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256: "PSK-AES128-GCM-SHA256",
    CipherSuite.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256: "PSK-CHACHA20-POLY1305",
    CipherSuite.TLS_PSK_WITH_AES_128_CBC_SHA: "PSK-AES128-CBC-SHA",
    CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-PSK-CHACHA20-POLY1305",
    CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256: "ECDHE-PSK-AES128-CBC-SHA256",
    # AES-CCM for constrained peers: CCM_8 is RFC 7925's mandatory PSK suite.
    CipherSuite.TLS_PSK_WITH_AES_128_CCM_8: "PSK-AES128-CCM8",
    CipherSuite.TLS_PSK_WITH_AES_256_CCM: "PSK-AES256-CCM",
}
PSK_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")


@pytest.mark.parametrize("suite", list(PSK_SUITES), ids=lambda s: s.name)
def test_psk_suites_both_roles(suite: CipherSuite) -> None:
    name = PSK_SUITES[suite]
    port = free_udp_port()
    server = OpenSSLProcess(["s_server", "-dtls1_2", "-nocert", "-cipher", name,
                             "-psk", PSK_KEY.hex(), "-psk_hint", "interop-hint",
                             "-accept", f"127.0.0.1:{port}", "-naccept", "1"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.wait_for("ACCEPT")
        sock.connect(("127.0.0.1", port))
        client = Connection(DtlsConfiguration(psk=PSK_KEY, psk_identity=b"Client_identity",
                                              cipher_suites=(suite,)),
                            peer_address=("127.0.0.1", port))
        events = Events()
        client.connect(time.monotonic())
        drive_udp(client, sock, until=events.done(), on_event=events, timeout=10)
        done = events.of_type(HandshakeCompleted)
        assert done and done[0].cipher_suite is suite, (events.items, server.output)
        client.send(b"psk client\n")
        server.write(b"psk server\n")
        drive_udp(client, sock, until=lambda: bool(events.of_type(ApplicationData))
                  and "psk client" in server.output, on_event=events, timeout=10)
        client.close()
        drive_udp(client, sock, until=lambda: True, on_event=events, timeout=2)
    finally:
        sock.close()
        server.stop()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    client_process = OpenSSLProcess(["s_client", "-dtls1_2", "-cipher", name,
                                     "-psk", PSK_KEY.hex(), "-psk_identity", "interop-id",
                                     "-connect", f"127.0.0.1:{port}"])
    try:
        our_server = Connection(DtlsConfiguration(
            is_client=False, cipher_suites=(suite,), psk_identity_hint=b"hint",
            psk_lookup={b"interop-id": PSK_KEY}.get))
        events = Events()
        drive_udp(our_server, sock, until=events.done(), on_event=events, timeout=10)
        done = events.of_type(HandshakeCompleted)
        assert done and done[0].psk_identity == b"interop-id", (events.items,
                                                                client_process.output)
        client_process.write(b"psk client\n")
        drive_udp(our_server, sock, until=events.has(ApplicationData), on_event=events,
                  timeout=10)
        our_server.send(b"psk server\n")
        drive_udp(our_server, sock, until=client_process.saw("psk server"), on_event=events,
                  timeout=10)
    finally:
        sock.close()
        client_process.stop()


# Ed25519 is tested against GnuTLS: OpenSSL 3.0 completes no DTLS 1.2 handshake with an
# Ed25519 certificate, not even s_client against its own s_server.
KEY_TYPE_CASES = [
    pytest.param("rsa", CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, id="rsa-aes128gcm"),
    pytest.param("rsa", CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
                 id="rsa-chacha20"),
    pytest.param("rsa", CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384, id="rsa-aes256cbc"),
    pytest.param("p384", CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, id="p384"),
]


@pytest.mark.parametrize("key_type, suite", KEY_TYPE_CASES)
def test_certificate_key_types_both_roles(tmp_path: Path, key_type: str,
                                          suite: CipherSuite) -> None:
    """RSA (PSS as negotiated with OpenSSL) and P-384 server certificates."""
    pki = write_pki(tmp_path, key_type)
    port = free_udp_port()
    server = OpenSSLProcess(["s_server", "-dtls1_2", "-cert", pki["cert_pem"],
                             "-key", pki["key_pem"], "-accept", f"127.0.0.1:{port}",
                             "-naccept", "1"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.wait_for("ACCEPT")
        sock.connect(("127.0.0.1", port))
        client = Connection(DtlsConfiguration(ca_certificates=(pki["ca_cert"],),
                                              server_name="localhost", cipher_suites=(suite,)),
                            peer_address=("127.0.0.1", port))
        events = Events()
        client.connect(time.monotonic())
        drive_udp(client, sock, until=events.done(), on_event=events, timeout=10)
        done = events.of_type(HandshakeCompleted)
        assert done and done[0].cipher_suite is suite, (events.items, server.output)
        client.send(b"typed key\n")
        drive_udp(client, sock, until=server.saw("typed key"), on_event=events, timeout=10)
        client.close()
        drive_udp(client, sock, until=lambda: True, on_event=events, timeout=2)
    finally:
        sock.close()
        server.stop()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    client_process = OpenSSLProcess(["s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}",
                                     "-CAfile", pki["ca_pem"], "-verify_return_error"])
    try:
        our_server = Connection(DtlsConfiguration(
            is_client=False, certificate_chain=[pki["cert"]], private_key=pki["key"],
            cipher_suites=(suite,)))
        events = Events()
        drive_udp(our_server, sock, until=events.done(), on_event=events, timeout=10)
        done = events.of_type(HandshakeCompleted)
        assert done and done[0].cipher_suite is suite, (events.items, client_process.output)
        drive_udp(our_server, sock, until=client_process.saw("Verify return code: 0 (ok)"),
                  on_event=events, timeout=10)
    finally:
        sock.close()
        client_process.stop()


def test_our_rsa_client_certificate_accepted_by_openssl(pki, tmp_path: Path) -> None:
    cert, key = make_certificate("rsa-client", issuer=(pki["ca_cert"], pki["ca_key"]),
                                 client=True, key_type="rsa")
    port = free_udp_port()
    server = OpenSSLProcess(["s_server", "-dtls1_2", "-cert", pki["cert_pem"],
                             "-key", pki["key_pem"], "-accept", f"127.0.0.1:{port}",
                             "-naccept", "1", "-Verify", "1", "-CAfile", pki["ca_pem"],
                             "-verify_return_error"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.wait_for("ACCEPT")
        sock.connect(("127.0.0.1", port))
        client = Connection(DtlsConfiguration(
            ca_certificates=(pki["ca_cert"],), server_name="localhost",
            certificate_chain=[cert], private_key=key), peer_address=("127.0.0.1", port))
        events = Events()
        client.connect(time.monotonic())
        drive_udp(client, sock, until=events.done(), on_event=events, timeout=10)
        assert events.of_type(HandshakeCompleted), (events.items, server.output)
        client.send(b"rsa client\n")
        drive_udp(client, sock, until=server.saw("rsa client"), on_event=events, timeout=10)
    finally:
        sock.close()
        server.stop()


# ----------------------------------------------------------------------------- required cells
# Issue #3's list, against openssl in both roles (tests/interop_fixtures.py REQUIRED_CASES):
# all cells of this peer run concurrently once (run_cells), then each is reported by its own
# test so `python tests/interop_matrix.py` shows them in the REQUIRED table.

# Registered before its first import: its asserts get pytest's rewriting, and loading it as a
# plugin later (test_peers_selfcheck.py) does not warn that it was imported unrewritten.
pytest.register_assert_rewrite("interop_fixtures")
from interop_fixtures import check_cell, required_cell_params


@pytest.fixture(scope="module")
def required_cells():  # type: ignore[no-untyped-def]
    from certs import cached_pki
    from interop_fixtures import run_cells
    return run_cells(cached_pki(), "openssl")


@pytest.mark.parametrize("role, case", required_cell_params("openssl"))
def test_required_cell(required_cells, role: str, case: str) -> None:  # type: ignore[no-untyped-def]
    check_cell(required_cells, role, case)
