"""The many-peer server (dtls.server): demultiplexing, limits, RFC 6347 4.2.8, statistics.

Most tests drive the sans-IO `DtlsServer` with fake addresses and a fake clock (`Net`);
one runs 200 clients over real loopback UDP against one `DtlsUdpServer` socket.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pytest
from dtls_testing import make_certificate
from frontend_testing import (
    FAILURE_CASES,
    FailureCase,
    blocking_handshake_error,
    check_client_error,
)

from dtls.config import DtlsConfiguration
from dtls.connection import Connection, HandshakeState
from dtls.errors import error_for_termination
from dtls.events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from dtls.server import DtlsServer, DtlsUdpServer, ServerEvent, ServerLimits
from dtls.verify import fingerprint_sha256

if TYPE_CHECKING:
    from certs import PKI

pytest_plugins = ["interop_fixtures"]  # fixture: pki (tests/certs.py)

CERT, KEY = make_certificate()
FINGERPRINT = fingerprint_sha256(CERT)
SERVER = ("192.0.2.100", 4433)


def server_config(**kw: Any) -> DtlsConfiguration:
    return DtlsConfiguration(is_client=False, certificate_chain=[CERT], private_key=KEY, **kw)


def client_config(**kw: Any) -> DtlsConfiguration:
    return DtlsConfiguration(pinned_sha256=(FINGERPRINT,), **kw)


class Net:
    """A DtlsServer and sans-IO clients at fake addresses, on a fake clock, no loss
    unless `drop(datagram, source, destination)` says so."""

    def __init__(self, limits: ServerLimits | None = None, **config: Any) -> None:
        self.server = DtlsServer(server_config(**config), limits)
        self.clients: dict[Any, Connection] = {}
        self.client_events: dict[Any, list[Any]] = {}
        self.events: list[ServerEvent] = []
        self.now = 0.0
        self.drop: Callable[[bytes, Any, Any], bool] | None = None

    def add_client(self, addr: Any, **kw: Any) -> Connection:
        conn = Connection(client_config(**kw))
        self.clients[addr] = conn
        self.client_events[addr] = []
        conn.connect(self.now)
        return conn

    def _drain_server_events(self) -> None:
        while (event := self.server.next_event()) is not None:
            self.events.append(event)

    def step(self, only: Iterable[Any] | None = None) -> bool:
        """Deliver everything queued once (clients in `only`); False if nothing moved."""
        moved = False
        allowed = set(self.clients) if only is None else set(only)
        for addr in list(allowed):
            for datagram, _ in self.clients[addr].datagrams_to_send(self.now):
                moved = True
                if self.drop is None or not self.drop(datagram, addr, SERVER):
                    self.server.receive_datagram(datagram, addr, self.now)
        for datagram, addr in self.server.datagrams_to_send(self.now):
            moved = True
            if addr in allowed and (self.drop is None or not self.drop(datagram, SERVER, addr)):
                self.clients[addr].receive_datagram(datagram, SERVER, self.now)
        for addr in allowed:
            while (event := self.clients[addr].next_event()) is not None:
                self.client_events[addr].append(event)
        self._drain_server_events()
        return moved

    def run(self, until: Callable[[], bool], only: Iterable[Any] | None = None,
            max_steps: int = 500) -> None:
        only = list(only) if only is not None else None
        for _ in range(max_steps):
            if until():
                return
            if not self.step(only):
                self.advance_to_next_timer(only)
        raise AssertionError("network did not settle")

    def advance_to_next_timer(self, only: Iterable[Any] | None = None) -> None:
        addrs = list(self.clients) if only is None else list(only)
        timers = [t for a in addrs if (t := self.clients[a].get_timer()) is not None]
        if (t := self.server.get_timer()) is not None:
            timers.append(t)
        if not timers:
            raise AssertionError("nothing left to happen")
        self.advance(max(self.now, min(timers)) - self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for conn in self.clients.values():
            t = conn.get_timer()
            if t is not None and t <= self.now:
                conn.handle_timer(self.now)
        t = self.server.get_timer()
        if t is not None and t <= self.now:
            self.server.handle_timer(self.now)
        self._drain_server_events()

    def established(self, addr: Any) -> bool:
        return self.clients[addr].state is HandshakeState.ESTABLISHED

    def server_events(self, kind: type, addr: Any = None) -> list[Any]:
        return [e for e in self.events if isinstance(e.event, kind)
                and (addr is None or e.address == addr)]


def cookieless_client_hello() -> bytes:
    conn = Connection(client_config())
    conn.connect(0.0)
    [(datagram, _)] = conn.datagrams_to_send(0.0)
    return datagram


# -- demultiplexing and statistics ---------------------------------------------------------


def test_many_peers_demultiplexed_by_address_with_stats() -> None:
    net = Net()
    addrs = [(f"198.51.100.{i}", 5000 + i) for i in range(1, 6)]
    for addr in addrs:
        net.add_client(addr)
    net.run(lambda: all(net.established(a) for a in addrs))
    assert len(net.server) == 5 and net.server.half_open == 0
    for i, addr in enumerate(addrs):
        net.clients[addr].send(b"ping %d" % i)
    net.run(lambda: len(net.server_events(ApplicationData)) == 5)
    for event in net.server_events(ApplicationData):
        assert event.event.data == b"ping %d" % addrs.index(event.address)
        event.session.send(event.event.data.upper())
        assert event.session is net.server.session(event.address)
    net.step()
    for i, addr in enumerate(addrs):
        [echo] = [e for e in net.client_events[addr] if isinstance(e, ApplicationData)]
        assert echo.data == b"PING %d" % i
    stats = net.server.stats
    assert stats["handshakes_completed"] == 5 and stats["handshakes_started"] == 5
    assert stats["hello_verify_requests"] == 5
    assert stats["records_in"] > 0 and stats["records_out"] > 0
    session = net.server.session(addrs[0])
    assert session is not None and session.established
    s = session.stats
    assert s["records_in"] >= 4 and s["records_out"] >= 4 and s["datagrams_in"] >= 2
    completed = net.server_events(HandshakeCompleted, addrs[0])
    assert completed and completed[0].session.handshake is completed[0].event


def test_retransmissions_are_counted() -> None:
    net = Net()
    addr = ("198.51.100.7", 6000)
    net.add_client(addr)
    dropped: list[bytes] = []

    def drop_first_server_flight(datagram: bytes, src: Any, dst: Any) -> bool:
        # Drop the server's first flight after the cookie (ServerHello...) once.
        if src == SERVER and net.server.session(addr) is not None and not dropped:
            dropped.append(datagram)
            return True
        return False

    net.drop = drop_first_server_flight
    net.run(lambda: net.established(addr))
    assert dropped
    assert net.server.stats["retransmissions"] >= 1
    session = net.server.session(addr)
    assert session is not None and session.stats["retransmissions"] >= 1


def test_garbage_and_unknown_records_are_dropped_and_counted() -> None:
    net = Net()
    net.server.receive_datagram(b"\x00" * 5, ("203.0.113.1", 1), 0.0)
    # An application_data record at epoch 1 from an address with no session.
    record = bytes([23, 0xFE, 0xFD, 0, 1]) + bytes(6) + b"\x00\x04" + b"abcd"
    net.server.receive_datagram(record, ("203.0.113.1", 2), 0.0)
    drops = net.server.stats["drops"]
    assert drops["malformed_datagram"] == 1 and drops["no_session"] == 1
    assert len(net.server) == 0 and net.server.datagrams_to_send() == []


# -- no state before the cookie ------------------------------------------------------------


def test_cookieless_flood_from_10000_spoofed_ports_allocates_nothing() -> None:
    server = DtlsServer(server_config())
    hello = cookieless_client_hello()

    def flood(first: int, count: int) -> None:
        for n in range(first, first + count):
            addr = (f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 1024 + n % 60000)
            server.receive_datagram(hello, addr, 1.0)
            if n % 100 == 0:
                assert len(server.datagrams_to_send()) <= 100
        server.datagrams_to_send()

    flood(0, 500)  # warm up caches before measuring
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        flood(500, 9500)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert growth < 64 * 1024, f"flood grew memory by {growth} bytes"
    assert len(server) == 0 and server.half_open == 0 and server.sessions == {}
    assert not server._buckets and not server._heap  # no per-source state either
    stats = server.stats
    assert stats["hello_verify_requests"] == 10_000
    assert stats["handshakes_started"] == 0
    assert server.get_timer() is None


def test_spoofed_cookie_does_not_create_a_session() -> None:
    """A cookie made for one address is worthless from another (RFC 6347 4.2.1)."""
    net = Net()
    real, spoofed = ("198.51.100.20", 7000), ("198.51.100.21", 7000)
    conn = net.add_client(real)
    net.step([real])  # ClientHello -> HVR -> ClientHello with cookie queued
    [(with_cookie, _)] = conn.datagrams_to_send(net.now)
    net.server.receive_datagram(with_cookie, spoofed, net.now)
    assert len(net.server) == 0
    assert net.server.stats["hello_verify_requests"] == 2


# -- limits --------------------------------------------------------------------------------


def _cookie_hellos(net: Net, addrs: list[Any]) -> None:
    """Each client does the cookie exchange; their cookie ClientHellos stay queued."""
    for addr in addrs:
        net.add_client(addr)
        for datagram, _ in net.clients[addr].datagrams_to_send(net.now):
            net.server.receive_datagram(datagram, addr, net.now)
    for datagram, addr in net.server.datagrams_to_send(net.now):
        net.clients[addr].receive_datagram(datagram, SERVER, net.now)


def test_half_open_cap_and_handshake_deadline() -> None:
    limits = ServerLimits(max_half_open=2, handshake_deadline=5.0)
    net = Net(limits)
    addrs = [(f"198.51.100.{30 + i}", 7100) for i in range(5)]
    _cookie_hellos(net, addrs)
    for addr in addrs:  # the cookie ClientHellos; the server's answers are lost
        for datagram, _ in net.clients[addr].datagrams_to_send(net.now):
            net.server.receive_datagram(datagram, addr, net.now)
    net.server.datagrams_to_send()
    assert len(net.server) == 2 and net.server.half_open == 2
    assert net.server.stats["drops"]["half_open_limit"] == 3
    # The half-open handshakes never complete: the deadline removes them.
    net.advance(5.0)
    assert len(net.server) == 0 and net.server.half_open == 0
    stats = net.server.stats
    assert stats["drops"]["handshake_deadline"] == 2
    assert len(net.server_events(ConnectionTerminated)) == 2
    # Room again: a new client gets through.
    late = ("198.51.100.99", 7100)
    net.add_client(late)
    net.run(lambda: net.established(late), only=[late])


def test_max_sessions() -> None:
    net = Net(ServerLimits(max_sessions=3))
    addrs = [(f"198.51.100.{40 + i}", 7200) for i in range(5)]
    for addr in addrs:
        net.add_client(addr)
    for _ in range(10):
        net.step()
    assert len(net.server) == 3
    assert sum(net.established(a) for a in addrs) == 3
    assert net.server.stats["drops"]["session_limit"] >= 2


def test_per_source_handshake_rate() -> None:
    net = Net(ServerLimits(handshake_rate=1.0, handshake_burst=2))
    same_ip = [("198.51.100.50", 8000 + i) for i in range(5)]
    other = ("198.51.100.51", 8000)
    _cookie_hellos(net, same_ip + [other])
    for addr in same_ip + [other]:
        for datagram, _ in net.clients[addr].datagrams_to_send(net.now):
            net.server.receive_datagram(datagram, addr, net.now)
    assert len(net.server) == 3  # two from the busy address (the burst), one from the other
    assert net.server.stats["drops"]["rate_limited"] == 3
    assert net.server.session(other) is not None
    # One second later one more token: a retransmitted ClientHello is admitted.
    net.server.datagrams_to_send()
    net.now += 1.0
    refused = [a for a in same_ip if net.server.session(a) is None]
    for addr in refused:
        net.clients[addr].handle_timer(net.now + 1.0)  # the client's retransmission
        for datagram, _ in net.clients[addr].datagrams_to_send(net.now):
            net.server.receive_datagram(datagram, addr, net.now)
    assert len(net.server) == 4
    assert net.server.stats["drops"]["rate_limited"] == 5


def test_idle_sessions_are_reaped_active_ones_kept() -> None:
    net = Net(ServerLimits(idle_timeout=30.0))
    idle, busy = ("198.51.100.60", 9000), ("198.51.100.61", 9000)
    net.add_client(idle)
    net.add_client(busy)
    net.run(lambda: net.established(idle) and net.established(busy))
    for _ in range(4):
        net.advance(10.0)
        net.clients[busy].send(b"keepalive")
        net.step()
    assert net.server.session(idle) is None
    assert net.server.session(busy) is not None
    assert net.server.stats["sessions_reaped"] == 1
    [ended] = net.server_events(ConnectionTerminated, idle)
    assert "idle" in ended.event.reason
    # The reaped peer was told (close_notify).
    assert any(isinstance(e, ConnectionTerminated) and e.by_peer
               for e in net.client_events[idle])
    net.advance(31.0)
    assert len(net.server) == 0 and net.server.get_timer() is None
    assert net.server.stats["sessions_reaped"] == 2


def test_no_cookie_mode_still_applies_limits() -> None:
    net = Net(ServerLimits(max_half_open=1), cookie_exchange=False)
    a, b = ("198.51.100.70", 1), ("198.51.100.71", 1)
    net.add_client(a)
    net.add_client(b)
    net.step()
    assert len(net.server) == 1 and net.server.stats["hello_verify_requests"] == 0
    net.run(lambda: net.established(a) and net.established(b))


# -- RFC 6347 4.2.8 --------------------------------------------------------------------------


def test_new_client_hello_from_known_address_keeps_old_until_new_completes() -> None:
    net = Net()
    addr = ("198.51.100.80", 10000)
    old_client = net.add_client(addr)
    net.run(lambda: net.established(addr))
    old_session = net.server.session(addr)
    assert old_session is not None

    # The peer restarts (same address, new client): a new handshake begins.
    new_client = Connection(client_config())
    new_client.connect(net.now)
    net.clients[addr] = new_client
    net.client_events[addr] = []
    net.step([addr])  # ClientHello -> HVR; cookie ClientHello queued
    net.step([addr])  # cookie ClientHello -> server flight (new association exists)
    assert len(net.server) == 2 and net.server.half_open == 1
    assert net.server.session(addr) is old_session  # the old one is untouched

    # Meanwhile the old association still carries data both ways.
    old_client.send(b"still here")
    for datagram, _ in old_client.datagrams_to_send(net.now):
        net.server.receive_datagram(datagram, addr, net.now)
    net._drain_server_events()
    [data] = net.server_events(ApplicationData, addr)
    assert data.session is old_session and data.event.data == b"still here"
    old_session.send(b"reply")
    for datagram, _ in net.server.datagrams_to_send(net.now):
        old_client.receive_datagram(datagram, SERVER, net.now)
    assert isinstance(old_client.next_event(), ApplicationData)

    # The new handshake completes: the old association is dropped, the new one serves.
    net.run(lambda: net.established(addr), only=[addr])
    net.step([addr])
    new_session = net.server.session(addr)
    assert new_session is not None and new_session is not old_session
    assert new_session.established and len(net.server) == 1
    [replaced] = [e for e in net.server_events(ConnectionTerminated, addr)
                  if e.session is old_session]
    assert "4.2.8" in replaced.event.reason
    assert net.server.stats["sessions_replaced"] == 1
    new_client.send(b"new")
    net.step([addr])
    assert net.server_events(ApplicationData, addr)[-1].session is new_session


def test_duplicate_of_the_original_client_hello_is_ignored() -> None:
    net = Net()
    addr = ("198.51.100.81", 10001)
    conn = net.add_client(addr)
    captured: list[bytes] = []

    def capture(datagram: bytes, src: Any, dst: Any) -> bool:
        if src == addr and net.server.stats["hello_verify_requests"] == 1 and not captured:
            captured.append(datagram)  # the ClientHello with the cookie
        return False

    net.drop = capture
    net.run(lambda: net.established(addr))
    assert captured
    net.server.receive_datagram(captured[0], addr, net.now)  # a late duplicate
    assert len(net.server) == 1
    assert net.server.stats["drops"]["duplicate_client_hello"] == 1
    assert conn.state is HandshakeState.ESTABLISHED


# -- 200 clients over real loopback UDP ----------------------------------------------------


def test_200_concurrent_clients_over_loopback() -> None:
    clients_wanted = 200
    limits = ServerLimits(max_half_open=clients_wanted, handshake_rate=1000.0,
                          handshake_burst=clients_wanted)
    udp_server = DtlsUdpServer(("127.0.0.1", 0), server_config(), limits=limits,
                               handler=lambda session, data: b"echo:" + data)
    thread = threading.Thread(target=udp_server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    address = udp_server.server_address
    selector = selectors.DefaultSelector()
    sockets: list[socket.socket] = []
    conns: dict[int, Connection] = {}
    echoed: dict[int, bytes] = {}
    failures: list[str] = []
    try:
        for i in range(clients_wanted):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.connect(address)
            sockets.append(sock)
            conn = Connection(client_config(initial_retransmit_timeout=0.5))
            conn.connect(time.monotonic())
            conns[i] = conn
            selector.register(sock, selectors.EVENT_READ, i)

        def pump(i: int) -> None:
            conn, sock = conns[i], sockets[i]
            for datagram, _ in conn.datagrams_to_send(time.monotonic()):
                try:
                    sock.send(datagram)
                except (BlockingIOError, ConnectionRefusedError):
                    pass  # lost: the retransmission timer covers it
            while (event := conn.next_event()) is not None:
                if isinstance(event, HandshakeCompleted):
                    conn.send(b"hello %d" % i)
                    pump(i)
                elif isinstance(event, ApplicationData):
                    echoed[i] = event.data
                elif isinstance(event, ConnectionTerminated):
                    failures.append(f"client {i}: {event.reason}")

        for i in conns:
            pump(i)
        deadline = time.monotonic() + 90
        while len(echoed) + len(failures) < clients_wanted:
            assert time.monotonic() < deadline, f"only {len(echoed)} echoes"
            for key, _ in selector.select(0.05):
                i = key.data
                for _ in range(16):
                    try:
                        data = sockets[i].recv(65536)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    conns[i].receive_datagram(data, address, time.monotonic())
                pump(i)
            now = time.monotonic()
            for i, conn in conns.items():
                t = conn.get_timer()
                if t is not None and t <= now and i not in echoed:
                    conn.handle_timer(now)
                    pump(i)
        assert not failures
        assert all(echoed[i] == b"echo:hello %d" % i for i in range(clients_wanted))
        stats = udp_server.core.stats
        assert stats["handshakes_completed"] == clients_wanted
        assert stats["sessions"] == clients_wanted
    finally:
        udp_server.shutdown()
        thread.join(timeout=10)
        assert not thread.is_alive()
        udp_server.close()
        selector.close()
        for sock in sockets:
            sock.close()
    # Shutdown said goodbye to everyone.
    assert udp_server.core.stats["sessions"] == 0


def test_udp_server_shutdown_is_prompt_and_echo_works() -> None:
    from dtls_testing import Events, drive_udp

    def handler(session: Any, data: bytes) -> bytes:
        if data == b"boom":
            raise RuntimeError("a buggy handler")  # logged and counted, server keeps going
        return data

    with DtlsUdpServer(("127.0.0.1", 0), server_config(), handler=handler) as udp_server:
        thread = threading.Thread(target=udp_server.serve_forever, daemon=True)
        thread.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(udp_server.server_address)
        try:
            conn = Connection(client_config())
            conn.connect(time.monotonic())
            events = Events()
            drive_udp(conn, sock, until=events.done(), on_event=events, timeout=10)
            assert events.of_type(HandshakeCompleted)
            conn.send(b"boom")
            conn.send(b"ping")
            drive_udp(conn, sock, until=events.has(ApplicationData), on_event=events,
                      timeout=10)
            assert [e.data for e in events.of_type(ApplicationData)] == [b"ping"]
            assert udp_server.core.stats["handler_errors"] == 1
        finally:
            started = time.monotonic()
            udp_server.shutdown()
            thread.join(timeout=5)
            sock.close()
        assert not thread.is_alive() and time.monotonic() - started < 2


def test_limits_validate() -> None:
    with pytest.raises(ValueError):
        DtlsServer(server_config(), ServerLimits(max_sessions=0))
    with pytest.raises(ValueError):
        DtlsServer(client_config())


def test_session_resumption_across_server_sessions() -> None:
    """The server configuration's session cache/ticket keys are shared by every session,
    so a client can resume from another address (RFC 5246 7.3)."""
    if not hasattr(Connection, "session"):
        pytest.skip("the core has no session resumption yet")
    net = Net()
    first, second = ("198.51.100.90", 11000), ("198.51.100.91", 11001)
    net.add_client(first)
    net.run(lambda: net.established(first))
    saved = net.clients[first].session
    assert saved is not None
    conn = Connection(client_config())
    conn.connect(net.now, session=saved)
    net.clients[second] = conn
    net.client_events[second] = []
    # Abbreviated handshake: the client finishes first, the server on its Finished.
    net.run(lambda: bool(net.server_events(HandshakeCompleted, second)))
    [done] = net.server_events(HandshakeCompleted, second)
    assert getattr(done.event, "resumed", False)
    assert len(net.server) == 2 and net.server.half_open == 0


@pytest.mark.parametrize("case", FAILURE_CASES, ids=lambda case: case.name)
def test_udp_server_reports_rejected_handshakes(case: FailureCase, pki: PKI) -> None:
    """The blocking DtlsUdpServer reports the same failures as dtls.aio.serve (they share
    the DtlsServer core): the handler never runs, on_event sees the ConnectionTerminated
    of a never-established session, and stats count it by alert."""
    handled: list[bytes] = []
    events: list[ServerEvent] = []

    def handler(session: Any, data: bytes) -> bytes:
        handled.append(data)
        return data

    with DtlsUdpServer(("127.0.0.1", 0), case.server(pki), handler=handler,
                       on_event=events.append) as udp_server:
        thread = threading.Thread(target=udp_server.serve_forever, daemon=True)
        thread.start()
        try:
            error = blocking_handshake_error(udp_server.server_address, case.client(pki))
            check_client_error(case, error)
            deadline = time.monotonic() + 5
            while not events and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            udp_server.shutdown()
            thread.join(timeout=5)
        assert not thread.is_alive()
        [item] = events
        assert isinstance(item.event, ConnectionTerminated) and not item.session.established
        server_error = error_for_termination(item.event, established=False)
        assert type(server_error) is case.server_error
        assert item.event.alert is case.alert
        stats = udp_server.core.stats
        assert stats["handshakes_failed"] == 1 and stats["handshakes_completed"] == 0
        assert stats["handshake_failure_reasons"] == {case.server_reason: 1}
        assert stats["sessions"] == 0 and handled == []


def test_send_many_queues_one_datagram_per_payload_in_order() -> None:
    net = Net()
    addr = ("198.51.100.7", 5007)
    net.add_client(addr)
    net.run(lambda: net.established(addr))
    session = net.server.session(addr)
    assert session is not None
    payloads = [b"batch %d" % i for i in range(10)]
    net.server.send_many(addr, payloads)
    out = [d for d in net.server.datagrams_to_send(net.now) if d[1] == addr]
    assert len(out) == 10
    for datagram, _ in out:
        net.clients[addr].receive_datagram(datagram, SERVER, net.now)
    got = [e.data for e in iter(net.clients[addr].next_event, None)
           if isinstance(e, ApplicationData)]
    assert got == payloads
    session.send_many([b"x", b"y"])
    assert len(net.server.datagrams_to_send(net.now)) == 2
    with pytest.raises(KeyError):
        net.server.send_many(("198.51.100.99", 1), [b"z"])


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "per-datagram"])
def test_udp_server_batches_both_ways(batched: bool) -> None:
    """DtlsUdpServer with recvmmsg receive and seal_sendto send_many (C record layer) or
    per-datagram calls: same payloads, same order, same per-session counters."""
    import dtls
    if batched and dtls.record_backend != "c":
        pytest.skip("the batched server socket path needs the C record layer")
    got: list[bytes] = []
    sessions: list[Any] = []

    def on_event(item: ServerEvent) -> None:
        if isinstance(item.event, ApplicationData):
            got.append(item.event.data)
        elif isinstance(item.event, HandshakeCompleted):
            sessions.append(item.session)

    with DtlsUdpServer(("127.0.0.1", 0), server_config(), on_event=on_event) as udp_server:
        udp_server._batched = batched
        thread = threading.Thread(target=udp_server.serve_forever,
                                  kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            with dtls.connect(udp_server.server_address, client_config(), timeout=5) as client:
                client.do_handshake()
                payloads = [b"up %d" % i for i in range(100)]
                client.send_many(payloads)
                deadline = time.monotonic() + 10
                while len(got) < 100 and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert got == payloads
                [session] = sessions
                down = [b"down %d" % i + bytes(1000) for i in range(60)]
                udp_server.send_many(client.getsockname(), down)
                back: list[bytes] = []
                while len(back) < 60:
                    back += [bytes(p) for p in client.recv_many()]
                assert back == down
                assert session.records_out >= 60 and session.datagrams_out >= 60
                assert session.bytes_out >= sum(len(p) for p in down) + 60 * 29
                assert session.records_in >= 100
                with pytest.raises(KeyError):
                    udp_server.send_many(("127.0.0.1", 1), [b"nobody"])
        finally:
            udp_server.shutdown()
            thread.join(timeout=5)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_100000_spoofed_cookieless_hellos_keep_memory_flat_and_never_amplify() -> None:
    """Issue 6 DoS limits: before a valid cookie nothing is stored per peer (RSS stays flat
    over 100,000 spoofed sources, no session, no rate bucket, no timer), and every answer
    to an unverified address is no larger than what it sent (RFC 6347 4.2.1: the
    HelloVerifyRequest must be small; it is never retransmitted)."""
    server = DtlsServer(server_config())
    hello = cookieless_client_hello()
    sent = received = 0
    samples = []
    for n in range(100_000):
        addr = (f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 1024 + n % 60000)
        server.receive_datagram(hello, addr, 1.0 + n * 1e-5)
        received += len(hello)
        for datagram, to in server.datagrams_to_send():
            assert to == addr and len(datagram) <= len(hello)
            sent += len(datagram)
        if n % 10_000 == 9_999:
            samples.append(_rss_bytes())
    assert sent <= received
    growth = max(samples[1:]) - samples[0]  # after the first 10,000 (caches warm)
    assert growth < 2 * 1024 * 1024, f"RSS grew by {growth} bytes: {samples}"
    assert len(server) == 0 and server.half_open == 0 and server.sessions == {}
    assert not server._buckets and not server._heap
    assert server.stats["hello_verify_requests"] == 100_000
    assert server.stats["handshakes_started"] == 0 and server.get_timer() is None


def test_smallest_client_hello_still_gets_no_more_bytes_back() -> None:
    """Amplification with the smallest ClientHello we can build (one suite, no
    extensions): the HelloVerifyRequest is still no larger."""
    from dtls.fragments import HandshakeMessage
    from dtls.messages import ClientHello as Hello
    from dtls.messages import encode_handshake
    from dtls.protection import NULL_PROTECTION
    from dtls.record import CipherState
    body = Hello(client_version=0xFEFD, random=bytes(32), session_id=b"", cookie=b"",
                 cipher_suites=[0xC02B], compression_methods=[0], extensions=[])
    msg_type, encoded = encode_handshake(body)
    record = CipherState(NULL_PROTECTION, epoch=0).seal(
        22, HandshakeMessage(msg_type, 0, encoded).serialize())
    server = DtlsServer(server_config())
    server.receive_datagram(record, ("203.0.113.1", 4000), 1.0)
    [(hvr, _)] = server.datagrams_to_send()
    assert len(hvr) <= len(record), (len(hvr), len(record))


# -- the front end hands its decoded ClientHello to the listener --------------------------

def test_listener_reuses_the_front_ends_decoded_hello_and_cookie_check(monkeypatch) -> None:
    """Each ClientHello is decoded once and its cookie HMAC computed once on the
    DtlsServer path (the listener takes both from _admit), and the handshake is the same."""
    from dtls import connection as connection_module
    from dtls import server as server_module
    from dtls.cookie import CookieSigner

    decodes: list[int] = []
    macs: list[int] = []
    real_decode = connection_module.decode_handshake
    real_mac = CookieSigner._mac

    def counting_decode(msg_type: int, *args: Any, **kw: Any) -> Any:
        decodes.append(msg_type)
        return real_decode(msg_type, *args, **kw)

    def counting_mac(secret: bytes, addr: Any, hello: Any) -> bytes:
        macs.append(1)
        return real_mac(secret, addr, hello)

    monkeypatch.setattr(connection_module, "decode_handshake", counting_decode)
    monkeypatch.setattr(server_module, "decode_handshake", counting_decode)
    monkeypatch.setattr(CookieSigner, "_mac", staticmethod(counting_mac))
    net = Net()
    addr = ("198.51.100.7", 5000)
    net.add_client(addr)
    net.run(lambda: net.established(addr))
    assert len(net.server_events(HandshakeCompleted, addr)) == 1
    # Two hellos (cookieless, then with the cookie): one decode each, by the front end.
    # (The client's connection module decodes server messages: those are not hellos.)
    assert decodes.count(1) == 2
    # One HMAC to make the cookie (HelloVerifyRequest), one to check it.
    assert len(macs) == 2
    assert net.server._checked_hello is None  # used once, then forgotten


def test_checked_hello_for_other_bytes_is_ignored() -> None:
    """A listener given a decoded hello that is not the datagram's decodes its own."""
    from dtls.messages import decode_handshake

    server = Connection(server_config())
    datagram = cookieless_client_hello()
    other = cookieless_client_hello()  # another random: other bytes
    body = other[13 + 12:]
    hello = decode_handshake(1, body)
    server._receive_checked_client_hello(datagram, ("192.0.2.9", 1), 0.0, (body, hello, True))
    # Its own hello has no cookie: answered with a HelloVerifyRequest, not bound.
    assert server.peer_address is None
    assert server.stats["hello_verify_request"] == 1
    assert server._checked_hello is None
