"""Test helpers: certificates, an in-memory link with a fake clock, a UDP driver loop.

The in-memory `Link` wires two sans-IO connections together; with `loss`, `duplicate`
and `reorder` probabilities and a fixed seed it is a deterministic lossy network, so
protocol tests need neither sockets nor real time.
"""

from __future__ import annotations

import datetime
import random
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dtls.connection import Connection
from dtls.events import ConnectionTerminated, Event, HandshakeCompleted

CLIENT_ADDR = ("192.0.2.1", 40000)
SERVER_ADDR = ("192.0.2.2", 4433)


def make_certificate(common_name: str = "localhost", *,
                     issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
                     ca: bool = False, client: bool = False, key_type: str = "p256",
                     ) -> tuple[x509.Certificate, Any]:
    """A certificate: self-signed, or issued by `issuer`; a CA if `ca`; for TLS client
    authentication (EKU clientAuth) if `client`, else for a server.  `key_type` is
    p256 (default), p384, rsa (2048) or ed25519."""
    key: Any
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif key_type == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = ec.generate_private_key(ec.SECP384R1() if key_type == "p384" else ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
    )
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                   else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False)
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm), key


@dataclass
class Endpoint:
    connection: Connection
    address: Any
    events: list[Event] = field(default_factory=list)

    def drain_events(self) -> None:
        while (event := self.connection.next_event()) is not None:
            self.events.append(event)

    def of_type(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class Link:
    """Two connections, a fake clock, and a (possibly) lossy network between them."""

    def __init__(self, client: Connection, server: Connection, *, seed: int = 0,
                 loss: float = 0.0, duplicate: float = 0.0, reorder: float = 0.0,
                 latency: float = 0.01) -> None:
        self.client = Endpoint(client, CLIENT_ADDR)
        self.server = Endpoint(server, SERVER_ADDR)
        self.now = 0.0
        self.rng = random.Random(seed)
        self.loss, self.duplicate, self.reorder, self.latency = loss, duplicate, reorder, latency
        self.in_flight: list[tuple[float, int, Endpoint, bytes, Any]] = []
        self.delivered = 0
        self.dropped = 0
        self._order = 0
        self.filter: Callable[[Endpoint, bytes], bytes | None] | None = None
        """Optional tamper hook: (destination, datagram) -> datagram to deliver or None."""

    def _peer(self, endpoint: Endpoint) -> Endpoint:
        return self.server if endpoint is self.client else self.client

    def _collect(self, endpoint: Endpoint) -> None:
        for datagram, _addr in endpoint.connection.datagrams_to_send(self.now):
            if self.rng.random() < self.loss:
                self.dropped += 1
                continue
            copies = 2 if self.rng.random() < self.duplicate else 1
            for _ in range(copies):
                delay = self.latency
                if self.rng.random() < self.reorder:
                    delay += self.rng.uniform(0, 5 * self.latency)
                self._order += 1
                self.in_flight.append((self.now + delay, self._order, self._peer(endpoint),
                                       datagram, endpoint.address))

    def step(self) -> bool:
        """Advance to the next delivery or timer; False when nothing is left to happen."""
        for endpoint in (self.client, self.server):
            self._collect(endpoint)
            endpoint.drain_events()
        timers = [(t, e) for e in (self.client, self.server)
                  if (t := e.connection.get_timer()) is not None]
        next_delivery = min(self.in_flight)[0] if self.in_flight else None
        next_timer = min(timers, key=lambda x: x[0]) if timers else None
        if next_delivery is None and next_timer is None:
            return False
        if next_delivery is not None and (next_timer is None or next_delivery <= next_timer[0]):
            self.in_flight.sort()
            when, _, destination, datagram, source = self.in_flight.pop(0)
            self.now = max(self.now, when)
            if self.filter is not None:
                filtered = self.filter(destination, datagram)
                if filtered is None:
                    return True
                datagram = filtered
            self.delivered += 1
            destination.connection.receive_datagram(datagram, source, self.now)
        else:
            assert next_timer is not None
            self.now = max(self.now, next_timer[0])
            next_timer[1].connection.handle_timer(self.now)
        for endpoint in (self.client, self.server):
            self._collect(endpoint)
            endpoint.drain_events()
        return True

    def run(self, until: Callable[[], bool] | None = None, max_steps: int = 10_000,
            max_time: float = 600.0) -> None:
        """Step until `until()` holds (or nothing is left to do), within bounds."""
        for _ in range(max_steps):
            if until is not None and until():
                return
            if self.now > max_time or not self.step():
                return
        raise AssertionError("link did not settle within max_steps")


def drive_udp(connection: Connection, sock: socket.socket, *, until: Callable[[], bool],
              on_event: Callable[[Event], None], timeout: float = 10.0) -> None:
    """Run a sans-IO connection over a real UDP socket until `until()` (bounded in time).

    The socket must be connected (client) or the connection must know its peer address:
    datagrams go to the address the connection names, or the connected peer.
    """
    deadline = time.monotonic() + timeout
    while not until():
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError("UDP driver timed out")
        timer = connection.get_timer()
        if timer is not None and now >= timer:
            connection.handle_timer(now)
        for datagram, addr in connection.datagrams_to_send(now):
            if addr is None:
                sock.send(datagram)
            else:
                sock.sendto(datagram, addr)
        while (event := connection.next_event()) is not None:
            on_event(event)
        if until():
            break
        timer = connection.get_timer()
        wait = min(deadline, timer if timer is not None else deadline) - time.monotonic()
        sock.settimeout(max(0.001, min(wait, 0.2)))
        try:
            data, addr = sock.recvfrom(65536)
        except (TimeoutError, ConnectionRefusedError):
            # Refused: ICMP port unreachable on a connected socket, the peer is not up yet.
            continue
        connection.receive_datagram(data, addr, time.monotonic())
    for datagram, addr in connection.datagrams_to_send(time.monotonic()):
        if addr is None:
            sock.send(datagram)
        else:
            sock.sendto(datagram, addr)
    while (event := connection.next_event()) is not None:
        on_event(event)


class LossyUdpProxy:
    """A UDP relay on 127.0.0.1 that drops chosen datagrams, for interop fault tests.

    Clients talk to `address`; the proxy forwards to `upstream` and back.  `drop_up` and
    `drop_down` are the 0-based indices of client->server and server->client datagrams
    to drop, so a test picks exactly which flight is lost, deterministically.
    """

    def __init__(self, upstream: tuple[str, int], *, drop_up: Iterable[int] = (),
                 drop_down: Iterable[int] = ()) -> None:
        self.upstream = upstream
        self.drop_up, self.drop_down = set(drop_up), set(drop_down)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.connect(upstream)
        self.address = self.front.getsockname()
        self.client: Any = None
        self.up = self.down = 0
        self.dropped: list[tuple[str, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self.front, self.back], [], [], 0.05)
            for sock in readable:
                if sock is self.front:
                    data, self.client = self.front.recvfrom(65536)
                    index, self.up = self.up, self.up + 1
                    if index in self.drop_up:
                        self.dropped.append(("up", index, len(data)))
                    else:
                        self.back.send(data)
                else:
                    try:
                        data = self.back.recv(65536)
                    except ConnectionRefusedError:
                        continue
                    index, self.down = self.down, self.down + 1
                    if index in self.drop_down:
                        self.dropped.append(("down", index, len(data)))
                    elif self.client is not None:
                        self.front.sendto(data, self.client)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.front.close()
        self.back.close()


class PeerProcess:
    """A peer implementation's command-line tool as a child process, output collected by a
    thread so the test can wait for a line without blocking its own driver loop."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        self.lines: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in iter(self.process.stdout.readline, b""):
            self.lines.append(line)

    @property
    def output(self) -> str:
        return b"".join(self.lines).decode(errors="replace")

    def saw(self, text: str) -> Callable[[], bool]:
        return lambda: text in self.output

    def wait_for(self, text: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"peer never printed {text!r}:\n{self.output}")
            time.sleep(0.02)

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait for the process to exit and for its output to be read to the end, so that
        assertions on `output` see everything it printed."""
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        return code

    def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)
        self._reader.join(timeout=5)


def write_pki(directory: Path, key_type: str = "p256") -> dict[str, Any]:
    """A CA and a "localhost" leaf it issued (`key_type` as for make_certificate), as
    objects and as PEM files."""
    ca_cert, ca_key = make_certificate("Interop CA", ca=True)
    cert, key = make_certificate("localhost", issuer=(ca_cert, ca_key), key_type=key_type)
    files = {"ca": directory / "ca.pem", "cert": directory / "cert.pem",
             "key": directory / "key.pem"}
    files["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return {"ca_cert": ca_cert, "ca_key": ca_key, "cert": cert, "key": key,
            **{f"{k}_pem": str(v) for k, v in files.items()}}


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago (for a peer tool to bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Events:
    """Collects a connection's events for a test; `has`/`done` make `until` predicates."""

    def __init__(self) -> None:
        self.items: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.items.append(event)

    def of_type(self, kind: type) -> list[Any]:
        return [e for e in self.items if isinstance(e, kind)]

    def has(self, kind: type) -> Callable[[], bool]:
        return lambda: bool(self.of_type(kind))

    def done(self) -> Callable[[], bool]:
        return lambda: bool(self.of_type(HandshakeCompleted) or self.of_type(ConnectionTerminated))
