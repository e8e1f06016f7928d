"""dtls.sock: the blocking, UDP-like client socket, over real loopback UDP.

The server side is dtls.aio's server on an event loop in a background thread (or
`openssl s_server`).  Every wait is bounded: socket timeouts, handshake timeouts, and
`ServerThread.call` timeouts.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from array import array

import pytest
from dtls_testing import free_udp_port
from frontend_testing import client_config, echo, fast, server_config, server_thread

import dtls
import dtls.aio
from dtls.alerts import AlertDescription
from dtls.errors import (
    CertificateVerificationFailed,
    ConnectionClosed,
    DtlsError,
    HandshakeTimeout,
)
from dtls.recordbase import DTLS1_2, MAX_PLAINTEXT
from dtls.sock import DtlsSocket


def test_echo_against_asyncio_server() -> None:
    with server_thread() as server, dtls.connect(server.address, client_config(),
                                                 timeout=5) as sock:
        assert sock.handshake is None
        for message in (b"one", b"two", b"x" * 1000, b""):
            assert sock.send(message) == len(message)
            assert sock.recv(4096) == message
        assert sock.version == DTLS1_2
        assert sock.handshake is not None and sock.cipher_suite is sock.handshake.cipher_suite
        assert sock.peer_certificate is not None
        assert sock.getpeername() == server.address
        assert sock.getsockname()[0] == "127.0.0.1"
        assert sock.fileno() >= 0


def test_both_sides_export_the_same_keying_material() -> None:
    peers: list[dtls.aio.DtlsPeer] = []

    async def handler(peer: dtls.aio.DtlsPeer) -> None:
        peers.append(peer)
        await echo(peer)

    with server_thread(handler) as server, dtls.connect(server.address, client_config(),
                                                        timeout=5) as sock:
        sock.send(b"hi")
        assert sock.recv(10) == b"hi"
        ours = sock.export_keying_material("EXTRACTOR-dtls_srtp", 60)
        theirs = server.call(_exporter(peers[0]))
        assert ours == theirs and len(ours) == 60


async def _exporter(peer: dtls.aio.DtlsPeer) -> bytes:
    return peer.export_keying_material("EXTRACTOR-dtls_srtp", 60)


def test_do_handshake_explicitly_and_on_connect() -> None:
    with server_thread() as server:
        with dtls.connect(server.address, client_config(), timeout=5) as sock:
            sock.do_handshake()
            assert sock.handshake is not None
            sock.do_handshake()  # a no-op once established
        with dtls.connect(server.address, client_config(), timeout=5,
                          do_handshake_on_connect=True) as sock:
            assert sock.handshake is not None


def test_recv_into_and_truncation() -> None:
    with server_thread() as server, dtls.connect(server.address, client_config(),
                                                 timeout=5) as sock:
        sock.send(b"abcdef")
        buffer = bytearray(16)
        assert sock.recv_into(buffer) == 6 and buffer[:6] == b"abcdef"
        sock.send(b"abcdef")
        assert sock.recv(3) == b"abc"  # as UDP: the rest of the datagram is discarded
        sock.send(b"ghi")
        assert sock.recv(100) == b"ghi"
        sock.send(b"abcdef")  # nbytes and the buffer's size both truncate
        assert sock.recv_into(buffer, 4) == 4 and buffer[:6] == b"abcdef"
        sock.send(b"uvwxyz")
        assert sock.recv_into(buffer, 100) == 6 and buffer[:6] == b"uvwxyz"
        small = bytearray(2)
        sock.send(b"klm")
        assert sock.recv_into(small) == 2 and small == b"kl"
        words = array("H", [0] * 4)  # any writable buffer: stored as bytes
        sock.send(b"\x01\x00\x02\x00\x03")
        assert sock.recv_into(words) == 5 and list(words[:2]) == [1, 2]
        mv = memoryview(bytearray(8))[2:]
        sock.send(b"nop")
        assert sock.recv_into(mv) == 3 and mv[:3] == b"nop"
        with pytest.raises(ValueError):
            sock.recv_into(buffer, -1)
        with pytest.raises(ValueError):
            sock.recv_into(buffer, 0, 1)


def test_send_over_one_record_raises_value_error() -> None:
    with server_thread() as server, dtls.connect(server.address, client_config(),
                                                 timeout=5) as sock:
        with pytest.raises(ValueError, match="one DTLS record"):
            sock.send(b"x" * (MAX_PLAINTEXT + 1))
        sock.send(b"x" * MAX_PLAINTEXT)
        assert sock.recv(MAX_PLAINTEXT) == b"x" * MAX_PLAINTEXT


def test_handshake_timeout_without_server() -> None:
    port = free_udp_port()  # nothing listens: ICMP refusals are ignored, flights resent
    config = fast(client_config(), handshake_timeout=1.0)
    sock = dtls.connect(("127.0.0.1", port), config)
    start = time.monotonic()
    with sock, pytest.raises(HandshakeTimeout, match="did not complete"):
        sock.do_handshake()
    assert 0.9 <= time.monotonic() - start < 2.5
    assert isinstance(HandshakeTimeout(), TimeoutError)


def test_socket_timeout_bounds_the_handshake() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # swallows the ClientHellos, never answers
        with dtls.connect(silent.getsockname(), client_config(), timeout=0.5) as sock:
            start = time.monotonic()
            with pytest.raises(HandshakeTimeout):
                sock.recv(100)
            assert time.monotonic() - start < 1.5


def test_wrong_fingerprint_fails_and_handler_never_runs() -> None:
    calls: list[object] = []

    async def handler(peer: dtls.aio.DtlsPeer) -> None:
        calls.append(peer)

    config = client_config(pinned_sha256=(b"\x00" * 32,))
    with server_thread(handler) as server:
        with dtls.connect(server.address, config, timeout=5) as sock, \
                pytest.raises(CertificateVerificationFailed) as info:
            sock.do_handshake()
        assert info.value.description is AlertDescription.bad_certificate
        assert "fingerprint" in str(info.value)
        deadline = time.monotonic() + 2
        while server.server.stats["handshake_failures"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.server.stats["handshake_failures"] == 1
        assert calls == [] and server.server.peers == []


def test_recv_timeout_raises_timeout_error_and_socket_stays_usable() -> None:
    with server_thread() as server, dtls.connect(server.address, client_config(),
                                                 timeout=5) as sock:
        sock.do_handshake()
        sock.settimeout(0.2)
        assert sock.gettimeout() == 0.2
        start = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            sock.recv(100)
        assert not isinstance(info.value, DtlsError)
        assert 0.15 < time.monotonic() - start < 1.0
        sock.settimeout(0)
        with pytest.raises(BlockingIOError):
            sock.recv(100)
        sock.settimeout(5)
        sock.send(b"still here")
        assert sock.recv(100) == b"still here"


def test_close_sends_close_notify_and_the_peer_sees_connection_closed() -> None:
    seen: list[BaseException] = []
    done = threading.Event()

    async def handler(peer: dtls.aio.DtlsPeer) -> None:
        try:
            while True:
                peer.send(await peer.recv())
        except ConnectionClosed as exc:
            seen.append(exc)
        finally:
            done.set()

    with server_thread(handler) as server:
        with dtls.connect(server.address, client_config(), timeout=5) as sock:
            sock.send(b"ping")
            assert sock.recv(10) == b"ping"
        assert sock.closed
        assert done.wait(5)
        assert isinstance(seen[0], ConnectionClosed) and seen[0].by_peer
        with pytest.raises(ConnectionClosed):
            sock.recv(10)


def test_peer_close_notify_ends_recv_with_connection_closed() -> None:
    async def handler(peer: dtls.aio.DtlsPeer) -> None:
        peer.send(await peer.recv())
        await peer.close()

    with server_thread(handler) as server, dtls.connect(server.address, client_config(),
                                                        timeout=5) as sock:
        sock.send(b"bye")
        assert sock.recv(10) == b"bye"
        with pytest.raises(ConnectionClosed) as info:
            sock.recv(10)
        assert info.value.by_peer
        with pytest.raises(ConnectionClosed):
            sock.send(b"too late")


def test_server_shutdown_reaches_blocking_client() -> None:
    with server_thread() as server:
        sock = dtls.connect(server.address, client_config(), timeout=5)
        with sock:
            sock.send(b"a")
            assert sock.recv(10) == b"a"
            server.close()  # cancels the handler, close_notify to every peer
            with pytest.raises(ConnectionClosed):
                sock.recv(10)


def test_wrap_client_and_select_on_fileno() -> None:
    with server_thread() as server:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with DtlsSocket.wrap_client(udp, client_config(), peer_address=server.address,
                                    timeout=5) as sock:
            sock.send(b"selected")
            readable, _, _ = select.select([sock], [], [], 5)
            assert readable == [sock]
            assert sock.recv(100) == b"selected"
            assert sock.pending() == 0
        assert udp.fileno() == -1  # closed with the DtlsSocket
        with pytest.raises(ValueError):
            DtlsSocket.wrap_client(socket.socket(socket.AF_INET, socket.SOCK_STREAM),
                                   client_config())


def test_send_from_another_thread_while_recv_waits() -> None:
    with server_thread() as server, dtls.connect(server.address, client_config(),
                                                 timeout=5) as sock:
        sock.do_handshake()
        sender = threading.Timer(0.1, sock.send, args=(b"from a thread",))
        sender.start()
        assert sock.recv(100) == b"from a thread"
        sender.join()


def test_connect_rejects_a_server_configuration() -> None:
    with pytest.raises(ValueError):
        dtls.connect(("127.0.0.1", 9), server_config())


def test_against_openssl_s_server() -> None:
    from certs import cached_pki
    from peers import OpenSSLServer, PeerUnavailable

    pki = cached_pki()
    peer = OpenSSLServer(suite="TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", cert=pki.server_ecdsa)
    try:
        peer.start()
    except PeerUnavailable as exc:
        pytest.skip(f"openssl: {exc.reason}")
    try:
        config = client_config(pinned_sha256=(), ca_certificates=(pki.ca.cert,))
        with dtls.connect(("127.0.0.1", peer.port), config, timeout=10) as sock:
            sock.send(b"hello openssl\n")
            assert sock.recv(100) == b"hello openssl\n"
            assert sock.handshake is not None
            assert sock.cipher_suite.name == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        info = peer.wait_handshake()
        assert info.version == "1.2"
    finally:
        peer.stop()


