"""Interop with OpenSSL (and GnuTLS): session resumption (by session ID and by RFC 5077
ticket) in both roles, and DTLS 1.0 (RFC 4347) in both roles against OpenSSL.

* Our client vs ``openssl s_server``: s_server serves connections one after another on
  one port, so the second connection (a new socket) offers the session of the first.
* ``openssl s_client`` vs our server: ``-sess_out`` saves the first session, a second
  s_client offers it with ``-sess_in``; both our server's HandshakeCompleted and
  s_client's trace say whether it was resumed.
* DTLS 1.0: OpenSSL 3.0 needs ``@SECLEVEL=0`` (tests/peers.py adds it for "1.0").

Every case skips with the reason when openssl (or a feature) is missing.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from dtls_testing import Events, drive_udp
from peers import HOST, GnuTLSClient, GnuTLSServer, OpenSSLClient, OpenSSLServer

from dtls.alerts import AlertDescription
from dtls.config import DtlsConfiguration
from dtls.connection import Connection
from dtls.events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from dtls.recordbase import DTLS1_0, DTLS1_2
from dtls.session import Session
from dtls.suites import CipherSuite

pytest_plugins = ["interop_fixtures"]
if TYPE_CHECKING:
    from certs import PKI
    from interop_fixtures import PeerPool

INTEROP_CASE_TIMEOUT = 30
GCM = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"


def client_round(port: int, config: DtlsConfiguration, session: Session | None = None,
                 line: bytes = b"ping") -> tuple[HandshakeCompleted, Connection]:
    """One connection of our client to an echoing server: handshake, one line each way
    and back, close_notify."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect((HOST, port))
        connection = Connection(config, peer_address=(HOST, port))
        events = Events()
        connection.connect(time.monotonic(), session=session)
        drive_udp(connection, sock, until=events.done(), on_event=events, timeout=10)
        done = events.of_type(HandshakeCompleted)
        assert done, (events.items, connection.stats)
        connection.send(line + b"\n")
        drive_udp(connection, sock, until=events.has(ApplicationData), on_event=events,
                  timeout=10)
        assert b"".join(e.data for e in events.of_type(ApplicationData)) == line + b"\n"
        connection.close()
        drive_udp(connection, sock, until=lambda: True, on_event=events, timeout=2)
        return done[0], connection
    finally:
        sock.close()


class OurServer:
    """Our server on one UDP socket, one Connection per client, sharing a configuration
    (and so the session cache and ticket keys)."""

    def __init__(self, config: DtlsConfiguration) -> None:
        self.config = config
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port: int = self.sock.getsockname()[1]

    def serve(self, client: OpenSSLClient) -> HandshakeCompleted:
        """Handshake with `client`, a line each way, then its close_notify."""
        connection = Connection(self.config)
        events = Events()
        drive_udp(connection, self.sock, until=events.done(), on_event=events, timeout=10)
        done = events.of_type(HandshakeCompleted)
        assert done, (events.items, connection.stats, client.diagnostics())
        client.send_line("ping")
        drive_udp(connection, self.sock, until=events.has(ApplicationData), on_event=events,
                  timeout=10)
        assert events.of_type(ApplicationData)[0].data == b"ping\n"
        connection.send(b"pong\n")
        drive_udp(connection, self.sock, until=lambda: b"pong" in client.received,
                  on_event=events, timeout=10)
        client.stop()  # stdin EOF: s_client sends close_notify and exits
        drive_udp(connection, self.sock, until=lambda: True, on_event=events, timeout=1)
        completed: HandshakeCompleted = done[0]
        return completed

    def close(self) -> None:
        self.sock.close()


def our_client_config(pki: PKI, **kw: Any) -> DtlsConfiguration:
    return DtlsConfiguration(server_name="localhost", ca_certificates=(pki.ca.cert,), **kw)


def our_server_config(pki: PKI, leaf: Any = None, **kw: Any) -> DtlsConfiguration:
    leaf = leaf or pki.server_ecdsa
    return DtlsConfiguration(is_client=False, certificate_chain=[leaf.cert],
                             private_key=leaf.key, **kw)


# -- resumption ---------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["session_id", "ticket"])
def test_our_client_resumes_against_openssl_s_server(pki: PKI, interop_peers: PeerPool,
                                                     by: str) -> None:
    server = interop_peers.start(OpenSSLServer(suite=GCM, cert=pki.server_ecdsa,
                                               no_ticket=by == "session_id"))
    assert server.port is not None
    config = our_client_config(pki, session_tickets=by == "ticket")
    first, connection = client_round(server.port, config)
    session = connection.session
    assert not first.resumed and session is not None and session.resumable
    assert bool(session.ticket) == (by == "ticket")
    second, again = client_round(server.port, config, session, b"again")
    assert second.resumed, again.stats
    assert second.extended_master_secret  # RFC 7627 5.3: kept in the abbreviated handshake
    assert second.cipher_suite is CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    assert second.peer_certificate == pki.server_ecdsa.cert


@pytest.mark.parametrize("by", ["session_id", "ticket"])
def test_openssl_s_client_resumes_against_our_server(pki: PKI, interop_peers: PeerPool,
                                                     tmp_path: Path, by: str) -> None:
    ours = OurServer(our_server_config(pki, session_tickets=by == "ticket"))
    saved = tmp_path / "session.pem"
    try:
        first = interop_peers.start(OpenSSLClient(
            port=ours.port, suite=GCM, ca=pki.ca.cert_path, sess_out=saved,
            no_ticket=by == "session_id"))
        assert not ours.serve(first).resumed
        assert first.handshakes and first.handshakes[0].resumed is False
        assert saved.exists()
        second = interop_peers.start(OpenSSLClient(
            port=ours.port, suite=GCM, ca=pki.ca.cert_path, sess_in=saved,
            no_ticket=by == "session_id"))
        done = ours.serve(second)
        assert done.resumed and done.extended_master_secret
        assert second.handshakes and second.handshakes[0].resumed is True, \
            second.diagnostics()
        if by == "session_id":
            assert len(ours.config.session_cache) == 1
    finally:
        ours.close()


def serve_many(config: DtlsConfiguration, sock: socket.socket, *, count: int,
               on_ready: Any, until: Any, timeout: float = 10.0) -> list[HandshakeCompleted]:
    """Our echoing server for clients that reconnect from new ports (gnutls-cli
    --resume): one Connection per address, a fresh listener for unknown ones.  Once
    `count` handshakes completed it calls `on_ready()`, then runs until `until()`."""
    listener = Connection(config)
    connections: dict[Any, Connection] = {}
    completed: list[HandshakeCompleted] = []
    ready = False
    deadline = time.monotonic() + timeout
    while not (ready and until()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(completed)} of {count} handshakes")
        if not ready and len(completed) >= count:
            ready = True
            on_ready()
        now = time.monotonic()
        for conn in [listener, *connections.values()]:
            timer = conn.get_timer()
            if timer is not None and now >= timer:
                conn.handle_timer(now)
            for datagram, addr in conn.datagrams_to_send(now):
                sock.sendto(datagram, addr)
            while (event := conn.next_event()) is not None:
                if isinstance(event, HandshakeCompleted):
                    completed.append(event)
                elif isinstance(event, ApplicationData):
                    conn.send(event.data)  # echo
        sock.settimeout(0.02)
        try:
            data, addr = sock.recvfrom(65536)
        except TimeoutError:
            continue
        conn = connections.get(addr, listener)
        conn.receive_datagram(data, addr, time.monotonic())
        if conn is listener and listener.peer_address is not None:
            connections[addr] = listener  # bound after a valid cookie (RFC 6347 4.2.1)
            listener = Connection(config)
    return completed


@pytest.mark.parametrize("by", ["session_id", "ticket"])
def test_gnutls_cli_resumes_against_our_server(pki: PKI, interop_peers: PeerPool,
                                               by: str) -> None:
    config = our_server_config(pki, session_tickets=by == "ticket")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((HOST, 0))
        client = interop_peers.start(GnuTLSClient(
            port=sock.getsockname()[1], suite=GCM, ca=pki.ca.cert_path, resume=True,
            no_ticket=by == "session_id"))
        # Then a line through the resumed association, and back (we echo).
        done = serve_many(config, sock, count=2, on_ready=lambda: client.send_line("ping"),
                          until=lambda: b"ping" in client.received)
        assert [d.resumed for d in done] == [False, True]
        assert client.wait_handshake(2).resumed is True
    finally:
        sock.close()


@pytest.mark.parametrize("by", ["session_id", "ticket"])
def test_our_client_resumes_against_gnutls_serv(pki: PKI, interop_peers: PeerPool,
                                                by: str) -> None:
    server = interop_peers.start(GnuTLSServer(suite=GCM, cert=pki.server_ecdsa,
                                              no_ticket=by == "session_id"))
    assert server.port is not None
    config = our_client_config(pki, session_tickets=by == "ticket")
    _, connection = client_round(server.port, config)
    session = connection.session
    assert session is not None and bool(session.ticket) == (by == "ticket")
    second, _ = client_round(server.port, config, session, b"again")
    assert second.resumed and second.extended_master_secret


# -- DTLS 1.0 -----------------------------------------------------------------------------

DTLS10_CASES = [("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "server_ecdsa"),
                ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "server_rsa")]


@pytest.mark.parametrize(("suite", "leaf"), DTLS10_CASES)
def test_our_client_dtls10_against_openssl_s_server(pki: PKI, interop_peers: PeerPool,
                                                    suite: str, leaf: str) -> None:
    server = interop_peers.start(OpenSSLServer(suite=suite, version="1.0",
                                               cert=getattr(pki, leaf)))
    assert server.port is not None
    config = our_client_config(pki, versions=(DTLS1_2, DTLS1_0),
                               cipher_suites=(CipherSuite[suite],))
    done, _ = client_round(server.port, config)
    assert done.version == DTLS1_0 and done.cipher_suite is CipherSuite[suite]
    assert server.wait_handshake().version == "1.0"


@pytest.mark.parametrize(("suite", "leaf"), DTLS10_CASES)
def test_openssl_s_client_dtls10_against_our_server(pki: PKI, interop_peers: PeerPool,
                                                    suite: str, leaf: str) -> None:
    ours = OurServer(our_server_config(pki, getattr(pki, leaf), versions=(DTLS1_2, DTLS1_0),
                                       cipher_suites=(CipherSuite[suite],)))
    try:
        client = interop_peers.start(OpenSSLClient(port=ours.port, suite=suite, version="1.0",
                                                   ca=pki.ca.cert_path))
        done = ours.serve(client)
        assert done.version == DTLS1_0 and done.cipher_suite is CipherSuite[suite]
        assert client.handshakes and client.handshakes[0].version == "1.0"
    finally:
        ours.close()


def test_our_client_resumes_dtls10_against_openssl_s_server(pki: PKI,
                                                           interop_peers: PeerPool) -> None:
    suite = "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
    server = interop_peers.start(OpenSSLServer(suite=suite, version="1.0",
                                               cert=pki.server_ecdsa))
    assert server.port is not None
    config = our_client_config(pki, versions=(DTLS1_2, DTLS1_0),
                               cipher_suites=(CipherSuite[suite],))
    _, connection = client_round(server.port, config)
    assert connection.session is not None and connection.session.version == DTLS1_0
    second, _ = client_round(server.port, config, connection.session, b"again")
    assert second.resumed and second.version == DTLS1_0


def test_our_default_client_refuses_dtls10_server(pki: PKI, interop_peers: PeerPool) -> None:
    suite = "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
    server = interop_peers.start(OpenSSLServer(suite=suite, version="1.0",
                                               cert=pki.server_ecdsa))
    assert server.port is not None
    config = our_client_config(pki, cipher_suites=(CipherSuite[suite],))  # 1.2 only
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect((HOST, server.port))
        connection = Connection(config, peer_address=(HOST, server.port))
        events = Events()
        connection.connect(time.monotonic())
        drive_udp(connection, sock, until=events.done(), on_event=events, timeout=10)
        assert not events.of_type(HandshakeCompleted)
        (end,) = events.of_type(ConnectionTerminated)
        # A DTLS 1.2-only client never accepts 1.0 (no silent downgrade).
        assert end.alert == AlertDescription.protocol_version and not end.by_peer
    finally:
        sock.close()
