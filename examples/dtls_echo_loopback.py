"""Loopback demo: a real DTLS 1.2 handshake and an echo over UDP, with its throughput.

A server thread (`dtls.accept`) and a client (`dtls.connect`) share nothing but UDP on
127.0.0.1.  The server has a fresh self-signed ECDSA P-256 certificate; the client pins
its SHA-256 fingerprint (the WebRTC model).  The handshake includes the stateless cookie
exchange.  The client then sends payloads in windows and checks every echo, first with
the one-record calls (send/recv), then with the batch calls (send_many/recv_many); a
plain-UDP echo with the same loop runs first for scale.

    python examples/dtls_echo_loopback.py [--seconds 2] [--size 1200] [--suite NAME]
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import threading
import time
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import dtls
from dtls.config import DtlsConfiguration
from dtls.errors import DtlsError
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


def dtls_echo_server(server: dtls.DtlsSocket, batch: bool) -> None:
    """Echo every payload back until the client closes: per record, or per batch."""
    try:
        while True:
            if batch:
                server.send_many([bytes(p) for p in server.recv_many()])
            else:
                server.send(server.recv(65536))
    except (DtlsError, TimeoutError):
        pass  # close_notify from the client (or it went away)
    finally:
        server.close()


def plain_echo_server(sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.05)
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(65536)
        except TimeoutError:
            continue
        sock.sendto(data, addr)


def echo_rate(seconds: float, payload: bytes, send_window: Callable[[], None],
              receive: Callable[[], int]) -> float:
    """Echoes/s: send a window, wait for all of it to come back, repeat."""
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        send_window()
        received = 0
        while received < WINDOW:
            received += receive()
        done += WINDOW
    return done / (time.perf_counter() - start)


def run_plain(seconds: float, payload: bytes) -> float:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect(server.getsockname())
    client.settimeout(5)
    stop = threading.Event()
    thread = threading.Thread(target=plain_echo_server, args=(server, stop), daemon=True)
    thread.start()

    def send_window() -> None:
        for _ in range(WINDOW):
            client.send(payload)

    def receive() -> int:
        assert client.recv(65536) == payload
        return 1

    try:
        return echo_rate(seconds, payload, send_window, receive)
    finally:
        stop.set()
        thread.join()
        client.close()
        server.close()


def client_calls(client: dtls.DtlsSocket, payload: bytes,
                 batch: bool) -> tuple[Callable[[], None], Callable[[], int]]:
    """(send a window, receive some and say how many) with the one-record or batch API."""
    if batch:
        window = [payload] * WINDOW

        def receive_batch() -> int:
            view = client.recv_many()
            assert all(p == payload for p in view)
            return len(view)

        def send_batch() -> None:
            client.send_many(window)

        return send_batch, receive_batch

    def send_window() -> None:
        for _ in range(WINDOW):
            client.send(payload)

    def receive_one() -> int:
        assert client.recv(65536) == payload
        return 1

    return send_window, receive_one


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

    cert, key = self_signed()
    server_config = DtlsConfiguration(is_client=False, certificate_chain=[cert],
                                      private_key=key, cipher_suites=(suite,))
    client_config = DtlsConfiguration(cipher_suites=(suite,),
                                      pinned_sha256=(cert.fingerprint(hashes.SHA256()),))
    plain = run_plain(args.seconds, payload)
    rates = {}
    for batch in (False, True):
        server = dtls.accept(("127.0.0.1", 0), server_config, timeout=10)
        thread = threading.Thread(target=dtls_echo_server, args=(server, batch), daemon=True)
        thread.start()
        t0 = time.perf_counter()
        client = dtls.connect(server.getsockname(), client_config, timeout=10,
                              do_handshake_on_connect=True)
        handshake_ms = (time.perf_counter() - t0) * 1000
        if not batch:
            c = client.handshake
            assert c is not None
            version = {dtls.DTLS1_2: "DTLS 1.2", dtls.DTLS1_0: "DTLS 1.0"}.get(c.version,
                                                                           hex(c.version))
            group = c.named_group.name if c.named_group is not None else "-"
            peer = c.peer_certificate.subject.rfc4514_string() if c.peer_certificate else "-"
            print(f"handshake: {version}, {c.cipher_suite.name}, {group}, "
                  f"extended_master_secret={c.extended_master_secret}, server {peer} (pinned)")
            print(f"handshake time (cookie exchange included): {handshake_ms:.1f} ms\n")
        rates[batch] = echo_rate(args.seconds, payload, *client_calls(client, payload, batch))
        client.close()
        thread.join(5)
    single, many = rates[False], rates[True]
    print(f"echo of {args.size}-byte datagrams over 127.0.0.1, {WINDOW} in flight, "
          "client and server threads in one process:")
    print(f"  plain UDP (send/recv)          {plain:10,.0f} echoes/s")
    print(f"  DTLS send/recv                 {single:10,.0f} echoes/s  "
          f"({single / plain:.2f}x plain UDP)")
    print(f"  DTLS send_many/recv_many       {many:10,.0f} echoes/s  "
          f"({many / plain:.2f}x plain UDP)")

if __name__ == "__main__":
    main()
