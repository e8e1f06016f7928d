"""A many-peer DTLS server on one UDP socket: a sans-IO demultiplexer and a blocking runner.

`DtlsServer` is sans-IO like `Connection` (it never touches a socket or a clock):

    receive_datagram(data, addr, now)   every datagram the socket received
    handle_timer(now)                   when `get_timer()` says so
    send(addr, data) / close(addr)      application data / orderly shutdown of one peer

and the caller drains `datagrams_to_send(now)` ((datagram, address) pairs) and
`next_event()` (`ServerEvent`: the core event tagged with the peer address and session).

How it keeps its promises:

* Demultiplexing is by peer address.  Datagrams from an address without a session go to
  ONE shared listener `Connection`, which answers ClientHellos without a valid cookie with
  a HelloVerifyRequest and keeps nothing (RFC 6347 4.2.1).  Only a ClientHello whose
  cookie checks out (or any ClientHello with `cookie_exchange` off) may create a session,
  and only if the limits allow it: `ServerLimits` (max sessions, max half-open
  handshakes, a per-source-address handshake rate, a handshake deadline, an idle timeout).
  The limits are checked *before* the listener binds, so a refused ClientHello costs no
  key exchange or signature.
* RFC 6347 4.2.8: a ClientHello at epoch 0 (with a valid cookie) from an address that has
  an association starts a new association alongside the old one; the old one keeps
  carrying application data until the new handshake completes, and is then dropped.
* Timers: one heap of deadlines (retransmission timers, handshake deadlines, idle checks)
  with lazy invalidation, so `handle_timer` touches only sessions whose deadline passed.
* Statistics: `DtlsServer.stats` (server-wide, including failed handshakes by alert in
  ``stats["handshake_failure_reasons"]``, see `failure_reason`) and `Session.stats` (per session).
  A failed handshake is also a `ServerEvent` whose session is not established and whose
  event is the `ConnectionTerminated` (`dtls.errors.error_for_termination` names it).

`DtlsUdpServer` runs a `DtlsServer` on one blocking UDP socket with a selector loop;
`serve(address, configuration, handler)` is the one-call form.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .alerts import AlertDescription, AlertError
from .config import DtlsConfiguration
from .connection import Connection, ConnectionStateError
from .events import ApplicationData, ConnectionTerminated, Event, HandshakeCompleted
from .fragments import parse_fragments
from .messages import ClientHello, HandshakeType, decode_handshake
from .record import split_records
from .recordbase import MAX_PLAINTEXT, ContentType, RecordHeader

try:  # batched socket I/O exists only with the C record layer
    from . import _cudpio
    from ._crecord import CipherState as _CCipherState
except ImportError:  # pragma: no cover - exercised by the no-compiler CI install
    _cudpio = None  # type: ignore[assignment]
    _CCipherState = None  # type: ignore[assignment,misc]

_BATCH = 32  # datagrams per recvmmsg
_APPLICATION_DATA = int(ContentType.APPLICATION_DATA)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "DtlsServer", "DtlsUdpServer", "ServerEvent", "ServerLimits", "Session",
    "failure_reason", "serve",
]

logger = logging.getLogger("dtls.server")

Address = Any
Handler = Callable[["Session", bytes], "bytes | None"]


@dataclass
class ServerLimits:
    """Resource limits of a `DtlsServer`; the defaults are safe for a small public server."""

    max_sessions: int = 1024
    """Associations held at once (established and half-open, RFC 4.2.8 successors included)."""
    max_half_open: int = 128
    """Handshakes in progress at once (sessions exist only after a valid cookie)."""
    handshake_rate: float = 10.0
    """New handshakes per second allowed per source IP address (token bucket refill)."""
    handshake_burst: int = 20
    """Token bucket size: handshakes one source IP may start back to back."""
    max_rate_sources: int = 4096
    """Source addresses whose rate is tracked (least recently seen forgotten first).  Only
    sources that returned a valid cookie are tracked, so spoofed floods cannot fill it."""
    handshake_deadline: float = 30.0
    """Seconds a handshake may take from the cookie-checked ClientHello to completion."""
    idle_timeout: float = 300.0
    """Seconds without traffic from the peer after which a session is closed and reaped."""
    max_queued_datagrams: int = 4096
    """Outgoing datagrams held until `datagrams_to_send` (more are dropped, counted)."""
    max_pending_events: int = 8192
    """Events held until `next_event` (more are dropped, counted)."""

    def validate(self) -> None:
        if self.max_sessions < 1 or self.max_half_open < 1:
            raise ValueError("max_sessions and max_half_open must be at least 1")
        if self.handshake_rate <= 0 or self.handshake_burst < 1:
            raise ValueError("handshake_rate must be > 0 and handshake_burst >= 1")
        if self.handshake_deadline <= 0 or self.idle_timeout <= 0:
            raise ValueError("handshake_deadline and idle_timeout must be positive")
        if self.max_rate_sources < 1 or self.max_queued_datagrams < 1 \
                or self.max_pending_events < 1:
            raise ValueError("queue and table bounds must be at least 1")


class Session:
    """One association with one peer address, as the server sees it."""

    __slots__ = (
        "_baseline", "_conn_timer", "_server", "address", "bytes_in", "bytes_out",
        "client_random", "connection", "created_at", "datagrams_in", "datagrams_out",
        "established_at", "handshake", "id", "last_activity", "records_in", "records_out",
    )

    def __init__(self, server: DtlsServer, session_id: int, connection: Connection,
                 address: Address, client_random: bytes, now: float,
                 baseline: Counter[str]) -> None:
        self._server = server
        self.id = session_id
        self.connection = connection
        self.address = address
        self.client_random = client_random
        self.created_at = now
        self.last_activity = now
        self.established_at: float | None = None
        self.handshake: HandshakeCompleted | None = None
        """The HandshakeCompleted event (version, suite, peer identity) once established."""
        self.records_in = self.records_out = 0
        self.datagrams_in = self.datagrams_out = 0
        self.bytes_in = self.bytes_out = 0
        self._baseline = baseline  # the listener's counters at the time it bound
        self._conn_timer: float | None = None

    def __repr__(self) -> str:
        return (f"<Session {self.id} {self.address!r} "
                f"{'established' if self.established else 'handshaking'}>")

    @property
    def established(self) -> bool:
        return self.established_at is not None

    @property
    def drops(self) -> Counter[str]:
        """The connection's silent drops and other counters (RFC 6347 4.1.2.7), by reason."""
        counts = self.connection.stats - self._baseline
        return counts

    @property
    def retransmissions(self) -> int:
        s = self.drops
        return s["retransmit_timeout"] + s["retransmit_on_peer_resend"]

    @property
    def stats(self) -> dict[str, Any]:
        return {
            "records_in": self.records_in, "records_out": self.records_out,
            "datagrams_in": self.datagrams_in, "datagrams_out": self.datagrams_out,
            "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
            "retransmissions": self.retransmissions, "connection": dict(self.drops),
        }

    def send(self, data: bytes) -> None:
        """Queue application data to this peer (see `DtlsServer.send`)."""
        self._server.send_to_session(self, data)

    def send_many(self, payloads: Sequence[bytes | bytearray | memoryview]) -> None:
        """Queue each payload as one record in its own datagram (one batch seal)."""
        self._server.send_many_to_session(self, payloads)

    def close(self) -> None:
        self._server.close_session(self)


@dataclass(frozen=True)
class ServerEvent:
    """A connection event (dtls.events) from one peer."""

    address: Address
    session: Session
    event: Event


_STAT_KEYS = (
    "datagrams_in", "datagrams_out", "records_in", "records_out", "bytes_in", "bytes_out",
    "hello_verify_requests", "handshakes_started", "handshakes_completed",
    "handshakes_failed", "sessions_reaped", "sessions_replaced", "sessions_removed",
)

# Heap entry kinds.
_CONN_TIMER, _DEADLINE, _IDLE = 0, 1, 2
_LISTENER = object()  # routing target: the stateless listener


def failure_reason(event: ConnectionTerminated) -> str:
    """The key a failed handshake is counted under in `stats["handshake_failure_reasons"]`:
    ``received_<alert>`` (the peer rejected us, e.g. ``received_bad_certificate`` when a
    client did not accept our certificate), ``sent_<alert>`` (we rejected the peer, e.g.
    ``sent_unknown_psk_identity``) or ``no_alert`` (deadline, timeout, local close)."""
    alert = event.alert
    if alert is None:
        return "no_alert"
    name = alert.name if isinstance(alert, AlertDescription) else f"alert_{int(alert)}"
    return f"{'received' if event.by_peer else 'sent'}_{name}"


def _source_key(addr: Address) -> Any:
    """What the rate limit counts by: the IP address (ports are free to pick)."""
    return addr[0] if isinstance(addr, tuple) and addr else addr


class DtlsServer:
    """Sans-IO many-peer DTLS server: demultiplexes datagrams to per-address Connections."""

    def __init__(self, configuration: DtlsConfiguration,
                 limits: ServerLimits | None = None) -> None:
        if configuration.is_client:
            raise ValueError("DtlsServer needs a server configuration (is_client=False)")
        configuration.validate()
        self.configuration = configuration
        self.limits = limits if limits is not None else ServerLimits()
        self.limits.validate()
        self._listener = Connection(configuration)
        # (ClientHello body, decoded hello, cookie valid) from _admit, for _to_listener.
        self._checked_hello: tuple[bytes, ClientHello, bool] | None = None
        self._retired_listener_stats: Counter[str] = Counter()
        self._sessions: dict[Address, Session] = {}   # the current association per address
        self._successors: dict[Address, Session] = {}  # RFC 6347 4.2.8 new association
        self._by_id: dict[int, Session] = {}
        self._half_open: set[int] = set()
        self._ids = itertools.count(1)
        self._heap: list[tuple[float, int, int, int]] = []  # (when, order, session id, kind)
        self._order = itertools.count()
        self._buckets: OrderedDict[Any, tuple[float, float]] = OrderedDict()
        self._out: deque[tuple[bytes, Address]] = deque()
        self._events: deque[ServerEvent] = deque()
        self.counters: Counter[str] = Counter()
        """Server-wide counts: datagrams/records in and out, handshakes, drops_<reason>."""

    # -- inspection ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def sessions(self) -> dict[Address, Session]:
        """The current association of each peer address (a copy)."""
        return dict(self._sessions)

    def session(self, addr: Address) -> Session | None:
        return self._sessions.get(addr)

    def is_current(self, session: Session) -> bool:
        """Whether `session` still exists (not closed, reaped or replaced)."""
        return self._by_id.get(session.id) is session

    @property
    def half_open(self) -> int:
        return len(self._half_open)

    @property
    def stats(self) -> dict[str, Any]:
        """Server-wide statistics: counters, drops by reason, and the listener's counts."""
        c = self.counters
        drops = {k[len("drop_"):]: v for k, v in c.items() if k.startswith("drop_")}
        failures = {k[len("fail_"):]: v for k, v in c.items() if k.startswith("fail_")}
        listener = self._retired_listener_stats + self._listener.stats
        return {
            "sessions": len(self._by_id), "half_open": len(self._half_open),
            **{k: 0 for k in _STAT_KEYS},
            **{k: v for k, v in c.items() if not k.startswith(("drop_", "fail_"))},
            "drops": drops, "handshake_failure_reasons": failures, "listener": dict(listener),
            "retransmissions": sum(s.retransmissions for s in self._by_id.values())
            + c["retransmissions_of_removed"],
        }

    # -- inputs --------------------------------------------------------------------------

    def receive_datagram(self, data: bytes | bytearray | memoryview, addr: Address,
                         now: float) -> None:
        """Process one datagram from `addr`."""
        data = bytes(data)
        counters = self.counters
        counters["datagrams_in"] += 1
        counters["bytes_in"] += len(data)
        n = len(data)
        if n > 13 and data[0] == ContentType.APPLICATION_DATA \
                and int.from_bytes(data[11:13], "big") + 13 == n \
                and addr not in self._successors:
            # The common case, routed without splitting: one application_data record from
            # an established session (anything else takes the general path below).
            session = self._sessions.get(addr)
            if session is not None and session.established:
                counters["records_in"] += 1
                session.datagrams_in += 1
                session.records_in += 1
                session.bytes_in += n
                session.connection.receive_datagram(data, addr, now)
                self._after(session, now, active=True)
                return
        headers, trailing = split_records(data)
        if not headers:
            self._drop("malformed_datagram")
            return
        self.counters["records_in"] += len(headers)
        if trailing:
            self.counters["malformed_trailing_bytes"] += 1
        group: list[RecordHeader] = []
        group_target: Any = None
        for header in headers:
            target = self._route(header, data, addr, now)
            if target is None:
                continue
            if group and target is not group_target:
                self._deliver(group_target, group, data, addr, now)
                group = []
            group_target = target
            group.append(header)
            if target is _LISTENER:
                # The listener may bind on this record: route the next ones afresh.
                self._deliver(target, group, data, addr, now)
                group = []
        if group:
            self._deliver(group_target, group, data, addr, now)

    def handle_timer(self, now: float) -> None:
        """Run every deadline that has passed (call when `get_timer()` says so)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, session_id, kind = heapq.heappop(heap)
            session = self._by_id.get(session_id)
            if session is None:
                continue
            if kind == _CONN_TIMER:
                if session._conn_timer != when:
                    continue  # superseded
                session._conn_timer = None
                session.connection.handle_timer(now)
                self._after(session, now, active=False)
            elif kind == _DEADLINE:
                if not session.established:
                    self._drop("handshake_deadline")
                    event = ConnectionTerminated(
                        None, f"handshake did not complete within "
                        f"{self.limits.handshake_deadline:g} s", by_peer=False)
                    self._handshake_failed(event)
                    self._remove(session, now, event)
            elif kind == _IDLE:
                idle_until = session.last_activity + self.limits.idle_timeout
                if now >= idle_until:
                    self.counters["sessions_reaped"] += 1
                    self._close_and_remove(session, now, f"nothing heard from the peer "
                                           f"for {self.limits.idle_timeout:g} s "
                                           f"(idle timeout): reaped")
                else:
                    self._push(idle_until, session, _IDLE)
        self._compact()

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called, or None."""
        heap = self._heap
        while heap and not self._valid(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def send(self, addr: Address, data: bytes) -> None:
        """Queue application data to the established session of `addr`.

        KeyError if the address has no session; ConnectionStateError if it is not
        established yet."""
        session = self._sessions.get(addr)
        if session is None:
            raise KeyError(f"no DTLS session with {addr!r}")
        self.send_to_session(session, data)

    def send_to_session(self, session: Session, data: bytes) -> None:
        if not self.is_current(session):
            raise ConnectionStateError(f"session {session.id} with {session.address!r} is gone")
        session.connection.send(data)
        self._after(session, None, active=False)

    def send_many(self, addr: Address, payloads: Sequence[bytes | bytearray | memoryview]
                  ) -> None:
        """`send` for a batch: each payload one record in its own datagram, sealed in one
        record-layer call."""
        session = self._sessions.get(addr)
        if session is None:
            raise KeyError(f"no DTLS session with {addr!r}")
        self.send_many_to_session(session, payloads)

    def send_many_to_session(self, session: Session,
                             payloads: Sequence[bytes | bytearray | memoryview]) -> None:
        if not self.is_current(session):
            raise ConnectionStateError(f"session {session.id} with {session.address!r} is gone")
        session.connection.send_many(payloads)
        self._after(session, None, active=False)

    def close(self, addr: Address) -> None:
        """Close the session(s) of `addr` with close_notify."""
        for table in (self._successors, self._sessions):
            session = table.get(addr)
            if session is not None:
                self.close_session(session)

    def close_session(self, session: Session) -> None:
        if self.is_current(session):
            self._close_and_remove(session, None, "closed locally")

    def close_all(self) -> None:
        """Send close_notify to every peer and forget every session."""
        for session in list(self._by_id.values()):
            self._close_and_remove(session, None, "server shutting down")

    # -- outputs -------------------------------------------------------------------------

    def datagrams_to_send(self, now: float | None = None) -> list[tuple[bytes, Address]]:
        out = list(self._out)
        self._out.clear()
        return out

    def next_event(self) -> ServerEvent | None:
        return self._events.popleft() if self._events else None

    # -- routing -------------------------------------------------------------------------

    def _route(self, header: RecordHeader, data: bytes, addr: Address, now: float) -> Any:
        """Where one record goes: a Session, the listener, or None (dropped, counted)."""
        current = self._sessions.get(addr)
        successor = self._successors.get(addr)
        peeked = self._peek_client_hello(header, data)
        if peeked is not None:
            body, hello = peeked
            # ClientHello at epoch 0: a retransmission for a handshake in progress, a
            # stale duplicate, or the start of a new association (RFC 6347 4.2.8).
            for session in (successor, current):
                if session is not None and session.client_random == hello.random:
                    if session.established:
                        self._drop("duplicate_client_hello")
                        return None
                    return session
            return self._admit(body, hello, addr, now)
        if current is None:
            if header.epoch == 0 and header.content_type == ContentType.HANDSHAKE:
                return _LISTENER  # a malformed/fragmented hello: the listener counts it
            self._drop("no_session")
            return None
        # Two associations may share the address: the successor's handshake records (its
        # epoch 0, and handshake/CCS records of its epoch 1) go to it; application data
        # and alerts at epoch >= 1 are the old association's until it is replaced.
        if successor is not None and (header.epoch == 0 or header.content_type in (
                ContentType.HANDSHAKE, ContentType.CHANGE_CIPHER_SPEC)):
            return successor
        return current

    @staticmethod
    def _peek_client_hello(header: RecordHeader,
                           data: bytes) -> tuple[bytes, ClientHello] | None:
        """The ClientHello in an unfragmented epoch-0 handshake record, with its body (the
        bytes decoded), else None."""
        if header.content_type != ContentType.HANDSHAKE or header.epoch != 0:
            return None
        start = header.offset + 13
        if header.length < 12 or data[start] != HandshakeType.client_hello:
            return None
        try:
            fragments = parse_fragments(data[start:header.end])
        except AlertError:
            return None
        for fragment in fragments:
            if fragment.msg_type == HandshakeType.client_hello \
                    and fragment.fragment_offset == 0 \
                    and fragment.fragment_length == fragment.length:
                body = bytes(fragment.body)
                try:
                    hello = decode_handshake(HandshakeType.client_hello, body)
                except AlertError:
                    return None
                return (body, hello) if isinstance(hello, ClientHello) else None
        return None

    def _admit(self, body: bytes, hello: ClientHello, addr: Address, now: float) -> Any:
        """Listener for a ClientHello that is not a retransmission; None when refused.

        When it is the listener's, the decoded hello and the cookie verdict are kept in
        `_checked_hello` for `_to_listener` to hand over: the listener then neither decodes
        the hello again nor recomputes the cookie's HMAC."""
        config = self.configuration
        if config.cookie_exchange and not config.cookie_signer.check(addr, hello, now):
            self._checked_hello = (body, hello, False)
            return _LISTENER  # answered with a HelloVerifyRequest, nothing stored
        # This hello would create a session: apply the limits first (cheap checks first,
        # the rate bucket last so that refused hellos do not consume tokens).
        limits = self.limits
        if len(self._by_id) >= limits.max_sessions:
            self._drop("session_limit")
            return None
        if len(self._half_open) >= limits.max_half_open:
            self._drop("half_open_limit")
            return None
        if not self._take_token(_source_key(addr), now):
            self._drop("rate_limited")
            return None
        self._checked_hello = (body, hello, True)
        return _LISTENER

    def _take_token(self, source: Any, now: float) -> bool:
        limits = self.limits
        buckets = self._buckets
        tokens, stamp = buckets.pop(source, (float(limits.handshake_burst), now))
        tokens = min(float(limits.handshake_burst),
                     tokens + max(0.0, now - stamp) * limits.handshake_rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        buckets[source] = (tokens, now)  # most recently seen last
        while len(buckets) > limits.max_rate_sources:
            buckets.popitem(last=False)
        return allowed

    def _deliver(self, target: Any, group: list[RecordHeader], data: bytes, addr: Address,
                 now: float) -> None:
        if len(group) == 1 and group[0].offset == 0 and group[0].end == len(data):
            chunk = data
        else:
            chunk = b"".join(data[h.offset:h.end] for h in group)
        if target is _LISTENER:
            self._to_listener(chunk, addr, now)
            return
        session: Session = target
        session.datagrams_in += 1
        session.records_in += len(group)
        session.bytes_in += len(chunk)
        session.connection.receive_datagram(chunk, addr, now)
        self._after(session, now, active=True)

    def _to_listener(self, chunk: bytes, addr: Address, now: float) -> None:
        listener = self._listener
        # _route delivers a record it sent here at once, so a hello _admit checked belongs
        # to this very datagram (same address and time); take it, so it is used only once.
        checked, self._checked_hello = self._checked_hello, None
        if checked is not None:
            listener._receive_checked_client_hello(chunk, addr, now, checked)
        else:
            listener.receive_datagram(chunk, addr, now)
        if listener.peer_address is None:
            for datagram, to in listener.datagrams_to_send(now):
                self.counters["hello_verify_requests"] += 1
                self._queue(datagram, to, None)
            while listener.next_event() is not None:  # a listener reports nothing, but bound
                pass
            return
        # Bound: the cookie checked out and the limits allowed it.  The listener becomes
        # this peer's connection, and a fresh listener takes its place.
        baseline = Counter(listener.stats)
        self._retired_listener_stats += baseline
        self._listener = Connection(self.configuration)
        hello_random = listener.client_random
        session = Session(self, next(self._ids), listener, addr, hello_random, now, baseline)
        self._by_id[session.id] = session
        self._half_open.add(session.id)
        self.counters["handshakes_started"] += 1
        if addr in self._sessions:
            previous = self._successors.pop(addr, None)
            if previous is not None:
                self._drop("superseded_handshake")
                self._remove(previous, now, ConnectionTerminated(
                    None, "superseded by a newer ClientHello from the same address",
                    by_peer=False))
            self._successors[addr] = session
        else:
            self._sessions[addr] = session
        self._push(now + self.limits.handshake_deadline, session, _DEADLINE)
        self._push(now + self.limits.idle_timeout, session, _IDLE)
        logger.debug("new session %d with %r", session.id, addr)
        self._after(session, now, active=True)

    # -- bookkeeping ---------------------------------------------------------------------

    def _after(self, session: Session, now: float | None, *, active: bool) -> None:
        """Collect a session's output and events and reschedule its timer."""
        conn = session.connection
        sent = False
        for datagram, to in conn.datagrams_to_send(now if now is not None else 0.0):
            sent = True
            self._queue(datagram, to if to is not None else session.address, session)
        produced = False
        removed = False
        while (event := conn.next_event()) is not None:
            produced = True
            if isinstance(event, HandshakeCompleted):
                self._completed(session, event, now)
            elif isinstance(event, ConnectionTerminated):
                if not session.established:
                    self._handshake_failed(event)
                self._remove(session, now, event)
                removed = True
                continue
            self._emit(ServerEvent(session.address, session, event))
        if removed:
            return
        if active and now is not None and (produced or sent):
            # Only traffic the connection acted on counts as activity: garbage and
            # forged records from the peer's address do not keep a session alive.
            session.last_activity = now
        timer = conn.get_timer()
        if timer is not None and timer != session._conn_timer:
            session._conn_timer = timer
            self._push(timer, session, _CONN_TIMER)
        elif timer is None:
            session._conn_timer = None

    def _completed(self, session: Session, event: HandshakeCompleted,
                   now: float | None) -> None:
        session.established_at = now if now is not None else session.created_at
        session.handshake = event
        self._half_open.discard(session.id)
        self.counters["handshakes_completed"] += 1
        addr = session.address
        if self._successors.get(addr) is session:
            # RFC 6347 4.2.8: the new association is complete; drop the old one.
            del self._successors[addr]
            old = self._sessions.get(addr)
            self._sessions[addr] = session
            if old is not None and old is not session:
                self.counters["sessions_replaced"] += 1
                self._remove(old, now, ConnectionTerminated(
                    None, "replaced by a new association from the same address "
                    "(RFC 6347 4.2.8)", by_peer=False))

    def _close_and_remove(self, session: Session, now: float | None, reason: str) -> None:
        conn = session.connection
        conn.close()
        for datagram, to in conn.datagrams_to_send(now if now is not None else 0.0):
            self._queue(datagram, to if to is not None else session.address, session)
        while conn.next_event() is not None:
            pass
        event = ConnectionTerminated(None, reason, by_peer=False)
        if not session.established:
            self._handshake_failed(event)
        self._remove(session, now, event)

    def _remove(self, session: Session, now: float | None, event: Event | None) -> None:
        if self._by_id.pop(session.id, None) is None:
            return
        self._half_open.discard(session.id)
        self.counters["retransmissions_of_removed"] += session.retransmissions
        addr = session.address
        if self._successors.get(addr) is session:
            del self._successors[addr]
        if self._sessions.get(addr) is session:
            del self._sessions[addr]
            successor = self._successors.pop(addr, None)
            if successor is not None:
                self._sessions[addr] = successor  # the old association is gone anyway
        self.counters["sessions_removed"] += 1
        if event is not None:
            self._emit(ServerEvent(addr, session, event))

    def _handshake_failed(self, event: ConnectionTerminated) -> None:
        self.counters["handshakes_failed"] += 1
        self.counters[f"fail_{failure_reason(event)}"] += 1
        logger.info("handshake failed: %s", event.reason or failure_reason(event))

    def _emit(self, event: ServerEvent) -> None:
        if len(self._events) >= self.limits.max_pending_events:
            self._drop("events_queue_full")
            return
        self._events.append(event)

    def _queue(self, datagram: bytes, addr: Address, session: Session | None) -> None:
        if len(self._out) >= self.limits.max_queued_datagrams:
            self._drop("send_queue_full")
            return
        self._out.append((datagram, addr))
        n = len(datagram)
        if n > 13 and int.from_bytes(datagram[11:13], "big") + 13 == n:
            records = 1  # one record fills it (all application data): no split needed
        else:
            records = len(split_records(datagram)[0])
        self.count_sent(session, 1, records, n)

    def count_sent(self, session: Session | None, datagrams: int, records: int,
                   nbytes: int) -> None:
        """Account for datagrams sent on the server's behalf, by `_queue` or by a
        front-end that sealed and sent a session's records itself (DtlsUdpServer's
        batched send_many)."""
        counters = self.counters
        counters["datagrams_out"] += datagrams
        counters["records_out"] += records
        counters["bytes_out"] += nbytes
        if session is not None:
            session.datagrams_out += datagrams
            session.records_out += records
            session.bytes_out += nbytes

    def _drop(self, reason: str) -> None:
        self.counters[f"drop_{reason}"] += 1

    def _push(self, when: float, session: Session, kind: int) -> None:
        heapq.heappush(self._heap, (when, next(self._order), session.id, kind))

    def _valid(self, entry: tuple[float, int, int, int]) -> bool:
        when, _, session_id, kind = entry
        session = self._by_id.get(session_id)
        if session is None:
            return False
        if kind == _CONN_TIMER:
            return session._conn_timer == when
        if kind == _DEADLINE:
            return not session.established
        return True

    def _compact(self) -> None:
        # Superseded entries are skipped lazily; rebuild when they dominate the heap.
        if len(self._heap) > 64 + 4 * len(self._by_id):
            self._heap = [e for e in self._heap if self._valid(e)]
            heapq.heapify(self._heap)


# -- blocking runner on one UDP socket -------------------------------------------------


class DtlsUdpServer:
    """A `DtlsServer` on one UDP socket, run by `serve_forever()` (stop with `shutdown()`).

    `handler(session, data)` is called for each application datagram; what it returns
    (bytes) is sent back to that peer.  `on_event(server_event)` sees every event.
    Both run on the serving thread; `send()` and `shutdown()` may be called from any.
    """

    RECV_BATCH = 64

    def __init__(self, address: tuple[str, int], configuration: DtlsConfiguration, *,
                 handler: Handler | None = None,
                 on_event: Callable[[ServerEvent], None] | None = None,
                 limits: ServerLimits | None = None, receive_buffer: int = 1 << 22) -> None:
        self.core = DtlsServer(configuration, limits)
        self.handler = handler
        self.on_event = on_event
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        except OSError:
            pass  # the kernel caps it; the default still works, with more retransmissions
        self.socket.bind(address)
        self.socket.setblocking(False)
        # recvmmsg batches (and send_many via GSO/sendmmsg) with the C record layer.
        self._batched = _cudpio is not None and family in (socket.AF_INET, socket.AF_INET6)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._running = threading.Event()

    @property
    def server_address(self) -> tuple[Any, ...]:
        return tuple(self.socket.getsockname())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.close()

    def send(self, addr: Address, data: bytes) -> None:
        """Send application data to an established peer (thread-safe)."""
        with self._lock:
            self.core.send(addr, data)
        self._wake()

    def send_many(self, addr: Address, payloads: Sequence[bytes | bytearray | memoryview]
                  ) -> None:
        """Send a batch of application data records to an established peer (thread-safe).

        With the C record layer the batch is sealed and sent in one C call (UDP GSO or
        sendmmsg to that address) instead of queued; what the socket cannot take now is
        queued as usual.  KeyError / ConnectionStateError as DtlsServer.send_many."""
        with self._lock:
            core = self.core
            session = core.session(addr)
            states = session.connection.application_states() \
                if session is not None and core.is_current(session) else None
            if states is None or not self._batched or type(states[1]) is not _CCipherState:
                core.send_many(addr, payloads)
            else:
                for data in payloads:
                    if len(data) > MAX_PLAINTEXT:
                        raise ValueError(f"application data of {len(data)} bytes exceeds "
                                         "one record (2^14)")
                assert session is not None
                write = states[1]
                try:
                    sent = _cudpio.seal_sendto(write, self.socket, addr, _APPLICATION_DATA,
                                               payloads)
                except OSError as exc:
                    core.counters["drop_send_error"] += len(payloads)
                    logger.debug("sendto %r failed: %s", addr, exc)
                    return
                record_length = write.protection.record_length
                core.count_sent(session, sent, sent,
                                sum(record_length(len(p)) for p in payloads[:sent]))
                if sent < len(payloads):
                    core.send_many(addr, payloads[sent:])  # the loop flushes these
                    self._wake()
                return
        self._wake()

    def shutdown(self) -> None:
        """Ask `serve_forever` to stop; it closes every session (close_notify) and returns."""
        self._stop.set()
        self._wake()

    def close(self) -> None:
        self.socket.close()
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.socket, selectors.EVENT_READ, "udp")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._running.set()
        try:
            while not self._stop.is_set():
                with self._lock:
                    timer = self.core.get_timer()
                now = time.monotonic()
                timeout = poll_interval if timer is None else max(0.0, min(poll_interval,
                                                                          timer - now))
                for key, _ in sel.select(timeout):
                    if key.data == "wake":
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except BlockingIOError:
                            pass
                    else:
                        self._read_socket()
                with self._lock:
                    now = time.monotonic()
                    timer = self.core.get_timer()
                    if timer is not None and timer <= now:
                        self.core.handle_timer(now)
                    self._dispatch()
                    self._flush()
            with self._lock:
                self.core.close_all()
                self._dispatch()
                self._flush()
        finally:
            self._running.clear()
            sel.close()

    def _read_socket(self) -> None:
        if self._batched:
            self._read_batches()
            return
        for _ in range(self.RECV_BATCH):
            try:
                data, addr = self.socket.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable surfaced as ECONNREFUSED
                continue
            with self._lock:
                self.core.receive_datagram(data, addr, time.monotonic())
                self._dispatch()
                self._flush()

    def _read_batches(self) -> None:
        """recvmmsg (with GRO where on) up to RECV_BATCH datagrams: one syscall per 32."""
        for _ in range(max(1, self.RECV_BATCH // _BATCH)):
            try:
                batch = _cudpio.recv_from(self.socket, _BATCH)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable surfaced as ECONNREFUSED
                continue
            n = len(batch)
            if not n:
                return
            with self._lock:
                now = time.monotonic()
                receive = self.core.receive_datagram
                for datagram, addr in batch:
                    receive(datagram, addr, now)  # copies: the batch is scratch
                self._dispatch()
                self._flush()
            if n < _BATCH:
                return

    def _dispatch(self) -> None:
        core = self.core
        while (item := core.next_event()) is not None:
            try:
                if self.on_event is not None:
                    self.on_event(item)
                reply = None
                if isinstance(item.event, ApplicationData) and self.handler is not None:
                    reply = self.handler(item.session, item.event.data)
            except Exception:
                # One peer's bad request must not stop the server for everyone.
                core.counters["handler_errors"] += 1
                logger.exception("handler failed for %r", item.address)
                continue
            if reply is not None and core.is_current(item.session):
                try:
                    core.send_to_session(item.session, reply)
                except (ConnectionStateError, ValueError) as exc:
                    logger.info("cannot reply to %r: %s", item.address, exc)

    def _flush(self) -> None:
        for datagram, addr in self.core.datagrams_to_send(time.monotonic()):
            try:
                self.socket.sendto(datagram, addr)
            except (BlockingIOError, InterruptedError):
                self.core.counters["drop_socket_buffer_full"] += 1
            except OSError as exc:
                self.core.counters["drop_send_error"] += 1
                logger.debug("sendto %r failed: %s", addr, exc)


def serve(address: tuple[str, int], configuration: DtlsConfiguration, handler: Handler, *,
          limits: ServerLimits | None = None,
          on_event: Callable[[ServerEvent], None] | None = None) -> None:
    """Serve `handler` on `address` until KeyboardInterrupt (blocking)."""
    with DtlsUdpServer(address, configuration, handler=handler, on_event=on_event,
                       limits=limits) as server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
