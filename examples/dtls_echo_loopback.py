"""Loopback demo: a real DTLS 1.2 handshake and an echo over UDP, with its throughput.

A server thread and a client share nothing but a UDP socket pair on 127.0.0.1.  The
server has a fresh self-signed ECDSA P-256 certificate; the client pins its SHA-256
fingerprint (the WebRTC model).  The handshake includes the stateless cookie exchange.
Then the client sends payloads in windows and checks every echo; a plain-UDP echo with
the same loop runs first for scale.

    python examples/dtls_echo_loopback.py [--seconds 2] [--size 1200] [--suite NAME]
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import dtls
from dtls.config import DtlsConfiguration
from dtls.connection import Connection
from dtls.events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from dtls.suites import CipherSuite

WINDOW = 32  # echoes in flight


def self_signed() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert, key


def pump(conn: Connection, sock: socket.socket, events: list[object], timeout: float) -> None:
    """One turn of a sans-IO driver: timers, outgoing datagrams, at most one receive."""
    now = time.monotonic()
    timer = conn.get_timer()
    if timer is not None and now >= timer:
        conn.handle_timer(now)
    for datagram, addr in conn.datagrams_to_send(now):
        sock.sendto(datagram, addr) if addr else sock.send(datagram)
    sock.settimeout(timeout)
    try:
        data, addr = sock.recvfrom(65536)
    except (TimeoutError, ConnectionRefusedError):
        data = b""
    if data:
        conn.receive_datagram(data, addr, time.monotonic())
    for datagram, addr in conn.datagrams_to_send(time.monotonic()):
        sock.sendto(datagram, addr) if addr else sock.send(datagram)
    while (event := conn.next_event()) is not None:
        events.append(event)


def dtls_server(sock: socket.socket, config: DtlsConfiguration, stop: threading.Event) -> None:
    conn = Connection(config)
    events: list[object] = []
    while not stop.is_set():
        pump(conn, sock, events, 0.05)
        for event in events:
            if isinstance(event, ApplicationData):
                conn.send(event.data)  # echo
            elif isinstance(event, ConnectionTerminated):
                return
        events.clear()


def plain_server(sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.05)
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(65536)
        except TimeoutError:
            continue
        sock.sendto(data, addr)


def udp_pair() -> tuple[socket.socket, socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect(server.getsockname())
    for s in (server, client):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    return client, server


def run_plain(seconds: float, payload: bytes) -> float:
    client, server = udp_pair()
    stop = threading.Event()
    thread = threading.Thread(target=plain_server, args=(server, stop), daemon=True)
    thread.start()
    client.settimeout(2.0)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(WINDOW):
            client.send(payload)
        for _ in range(WINDOW):
            assert client.recv(65536) == payload
        done += WINDOW
    rate = done / (time.perf_counter() - start)
    stop.set()
    thread.join()
    client.close()
    server.close()
    return rate


def run_dtls(seconds: float, payload: bytes,
             suite: CipherSuite) -> tuple[float, float, HandshakeCompleted]:
    cert, key = self_signed()
    server_config = DtlsConfiguration(is_client=False, certificate_chain=[cert],
                                      private_key=key, cipher_suites=(suite,))
    client_config = DtlsConfiguration(
        is_client=True, cipher_suites=(suite,),
        pinned_sha256=(cert.fingerprint(hashes.SHA256()),))
    client_sock, server_sock = udp_pair()
    stop = threading.Event()
    thread = threading.Thread(target=dtls_server, args=(server_sock, server_config, stop),
                              daemon=True)
    thread.start()

    conn = Connection(client_config)
    events: list[object] = []
    t0 = time.perf_counter()
    conn.connect(time.monotonic())
    completed = None
    while completed is None:
        pump(conn, client_sock, events, 0.05)
        for event in events:
            if isinstance(event, HandshakeCompleted):
                completed = event
            elif isinstance(event, ConnectionTerminated):
                raise SystemExit(f"handshake failed: {event}")
        events.clear()
        if time.perf_counter() - t0 > 10:
            raise SystemExit("handshake did not complete in 10 s")
    handshake_ms = (time.perf_counter() - t0) * 1000

    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(WINDOW):
            conn.send(payload)
        received = 0
        deadline = time.monotonic() + 5
        while received < WINDOW:
            pump(conn, client_sock, events, 0.5)
            for event in events:
                if isinstance(event, ApplicationData):
                    assert event.data == payload
                    received += 1
            events.clear()
            if time.monotonic() > deadline:
                raise SystemExit("echo stalled (datagrams lost on loopback?)")
        done += WINDOW
    rate = done / (time.perf_counter() - start)
    conn.close()
    pump(conn, client_sock, events, 0.01)
    stop.set()
    thread.join()
    client_sock.close()
    server_sock.close()
    return handshake_ms, rate, completed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="echo time per contender")
    ap.add_argument("--size", type=int, default=1200, help="payload bytes per datagram")
    ap.add_argument("--suite", default="TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
    args = ap.parse_args()
    payload = os.urandom(args.size)
    suite = CipherSuite[args.suite]
    print(f"dtls {dtls.__version__}, record layer backend: {dtls.record_backend}")
    handshake_ms, rate, completed = run_dtls(args.seconds, payload, suite)
    c = completed
    version = {dtls.DTLS1_2: "DTLS 1.2", dtls.DTLS1_0: "DTLS 1.0"}.get(c.version, hex(c.version))
    group = c.named_group.name if c.named_group is not None else "-"
    peer = c.peer_certificate.subject.rfc4514_string() if c.peer_certificate else "-"
    print(f"handshake: {version}, {c.cipher_suite.name}, {group}, "
          f"extended_master_secret={c.extended_master_secret}, server {peer} (pinned)")
    print(f"handshake time (cookie exchange included): {handshake_ms:.1f} ms\n")
    plain = run_plain(args.seconds, payload)
    print(f"echo of {args.size}-byte datagrams over 127.0.0.1, {WINDOW} in flight, "
          "client and server threads in one process:")
    print(f"  plain UDP   {plain:10,.0f} echoes/s")
    print(f"  DTLS 1.2    {rate:10,.0f} echoes/s  "
          f"({rate * args.size * 8 * 2 / 1e6:,.0f} Mbit/s both ways, {rate / plain:.2f}x plain UDP)")


if __name__ == "__main__":
    main()
