"""asyncio front-ends: a client over the sans-IO `Connection`, and a many-peer server over
the sans-IO `dtls.server.DtlsServer`.

Both sit on `loop.create_datagram_endpoint`; timers are `loop.call_at` handles re-armed
after every input (no polling), and `loop.time()` is the sans-IO clock.  ::

    client = await dtls.aio.connect("127.0.0.1", 4433, config)   # handshake done
    client.send(b"ping")
    print(await client.recv())
    await client.close()                                        # or: async with client

    async def handler(peer):                    # one task per established peer
        async for data in peer:                 # until the peer closes
            peer.send(data)

    server = await dtls.aio.serve(handler, "127.0.0.1", 4433, server_config)
    ...
    server.close(); await server.wait_closed()  # or: async with server

The server is a thin adapter: every datagram goes to `dtls.server.DtlsServer` (the same
core the blocking `dtls.server.DtlsUdpServer` runs), which owns demultiplexing, the
stateless cookie exchange (RFC 6347 4.2.1), the `ServerLimits` (max sessions, half-open
handshakes, per-source handshake rate, handshake deadline, idle timeout), RFC 6347 4.2.8
replacement and the statistics.  The adapter only moves datagrams, arms one timer from
`get_timer()`, and routes `ServerEvent`s to per-peer handler tasks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cryptography import x509

from .config import DtlsConfiguration
from .connection import Connection, ConnectionStateError, HandshakeState
from .errors import ConnectionClosed, DtlsError, error_for_termination
from .events import ApplicationData, ConnectionTerminated, Event, HandshakeCompleted
from .recordbase import MAX_PLAINTEXT
from .server import DtlsServer, ServerEvent, ServerLimits, Session
from .suites import CipherSuite

_APPLICATION_DATA = 23

try:  # batched sends exist only with the C record layer
    from . import _cudpio
    from ._crecord import CipherState as _CCipherState
except ImportError:  # pragma: no cover - exercised by the no-compiler CI install
    _cudpio = None  # type: ignore[assignment]
    _CCipherState = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["AsyncDtlsServer", "DtlsClient", "DtlsPeer", "ServerLimits", "connect", "serve"]

logger = logging.getLogger("dtls.aio")

Address = Any
HandshakeFailedCallback = Callable[[Address, DtlsError], None]

MAX_INBOX = 1024
"""Received payloads held per association until `recv` takes them; more are dropped, as
a full UDP receive buffer would (counted as ``inbox_full`` in the association's stats)."""


class _Association:
    """The application side of one association: an inbox, the negotiated parameters and
    the ending.  `DtlsClient` drives its own `Connection`; `DtlsPeer` is fed by the
    server core."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._loop = asyncio.get_running_loop()
        self._inbox: deque[bytes] = deque()
        self._inbox_full = 0
        self._readable = asyncio.Event()  # set when the inbox or the state changed
        self._handshake: HandshakeCompleted | None = None
        self._terminated: ConnectionTerminated | None = None

    # -- application API -----------------------------------------------------------------

    async def recv(self) -> bytes:
        """The next application payload; raises a `dtls.errors` exception once the
        association has ended (ConnectionClosed for an orderly close)."""
        while not self._inbox:
            if self._terminated is not None:
                raise self._error()
            self._readable.clear()
            await self._readable.wait()
        return self._inbox.popleft()

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Send `data` as one record in one datagram (never blocks)."""
        payload = bytes(data)
        if len(payload) > MAX_PLAINTEXT:
            raise ValueError(f"{len(payload)} bytes do not fit one DTLS record "
                             f"(at most {MAX_PLAINTEXT})")
        if self._terminated is not None:
            raise self._error()
        if self._handshake is None:
            raise ConnectionClosed("the handshake has not completed")  # not reachable via API
        self._transmit(payload)

    async def recv_many(self) -> list[bytes]:
        """Every payload received so far (at least one, waiting for it), in order."""
        while not self._inbox:
            if self._terminated is not None:
                raise self._error()
            self._readable.clear()
            await self._readable.wait()
        items = list(self._inbox)
        self._inbox.clear()
        return items

    def send_many(self, payloads: Sequence[bytes | bytearray | memoryview]) -> None:
        """Send each payload as one record in its own datagram, sealed in one record-layer
        call (never blocks)."""
        for data in payloads:
            if len(data) > MAX_PLAINTEXT:
                raise ValueError(f"{len(data)} bytes do not fit one DTLS record "
                                 f"(at most {MAX_PLAINTEXT})")
        if self._terminated is not None:
            raise self._error()
        if self._handshake is None:
            raise ConnectionClosed("the handshake has not completed")
        self._transmit_many(payloads)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        """Payloads until an orderly close; other endings raise."""
        while True:
            try:
                yield await self.recv()
            except ConnectionClosed:
                return

    @property
    def closed(self) -> bool:
        return self._terminated is not None

    @property
    def peer_address(self) -> Address:
        return self.connection.peer_address

    @property
    def handshake(self) -> HandshakeCompleted | None:
        """The negotiated parameters (the HandshakeCompleted event), None before."""
        return self._handshake

    @property
    def cipher_suite(self) -> CipherSuite | None:
        return self._handshake.cipher_suite if self._handshake else None

    @property
    def version(self) -> int | None:
        return self._handshake.version if self._handshake else None

    @property
    def peer_certificate(self) -> x509.Certificate | None:
        return self._handshake.peer_certificate if self._handshake else None

    def export_keying_material(self, label: bytes | str, length: int,
                               context: bytes | None = None) -> bytes:
        """RFC 5705 keying material (e.g. DTLS-SRTP, RFC 5764 4.2)."""
        return self.connection.export_keying_material(label, length, context)

    # -- plumbing ------------------------------------------------------------------------

    def _transmit(self, payload: bytes) -> None:
        raise NotImplementedError

    def _transmit_many(self, payloads: Sequence[bytes | bytearray | memoryview]) -> None:
        raise NotImplementedError

    def _error(self) -> DtlsError:
        assert self._terminated is not None
        return error_for_termination(self._terminated, established=self._handshake is not None)

    def _deliver(self, event: Event) -> None:
        """One core event for this association."""
        if isinstance(event, ApplicationData):
            if len(self._inbox) >= MAX_INBOX:
                self._inbox_full += 1
                return
            self._inbox.append(event.data)
        elif isinstance(event, HandshakeCompleted):
            self._handshake = event
        elif isinstance(event, ConnectionTerminated) and self._terminated is None:
            self._terminated = event
        self._readable.set()


# -- client ------------------------------------------------------------------------------


class _ClientProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.client: DtlsClient | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.raw: socket.socket | None = None  # a dup of the transport's socket, see below

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if self.client is not None:
            self.client._datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable while the server starts): a lost datagram.
        if self.client is not None:
            self.client.connection.stats["icmp_error"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.raw is not None:
            self.raw.close()
            self.raw = None
        if not self.lost.done():
            self.lost.set_result(None)
        if self.client is not None:
            self.client._abort(f"transport lost: {exc}" if exc else "transport closed")


class DtlsClient(_Association):
    """A DTLS client association on its own connected UDP transport."""

    def __init__(self, connection: Connection, transport: asyncio.DatagramTransport,
                 protocol: _ClientProtocol) -> None:
        super().__init__(connection)
        self._transport = transport
        self._protocol = protocol
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._handshake_done: asyncio.Future[None] = self._loop.create_future()

    @property
    def stats(self) -> Any:
        """The connection's counters (drops by reason, retransmissions, inbox_full...)."""
        stats = self.connection.stats
        stats["inbox_full"] = self._inbox_full
        return stats

    async def do_handshake(self) -> None:
        """Start the handshake if needed and wait for it (raises on failure)."""
        if self.connection.state is HandshakeState.CLIENT_START:
            self.connection.connect(self._loop.time())
            self._service()
        await asyncio.shield(self._handshake_done)

    async def close(self) -> None:
        """close_notify, then close the transport and wait until it is gone."""
        if self.connection.state not in (HandshakeState.CLIENT_START, HandshakeState.CLOSED):
            self.connection.close()
        self._service()
        self._cancel_timer()
        if self._terminated is None:  # CLIENT_START: no event from the core
            self._abort("closed locally")
        self._transport.close()
        await self._protocol.lost

    def getsockname(self) -> Any:
        return self._transport.get_extra_info("sockname")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # -- driving the connection ----------------------------------------------------------

    def _transmit(self, payload: bytes) -> None:
        self.connection.send(payload)
        self._service()

    def _transmit_many(self, payloads: Sequence[bytes | bytearray | memoryview]) -> None:
        sent = self._seal_send(payloads)
        if sent < len(payloads):
            self.connection.send_many(payloads[sent:] if sent else payloads)
        self._service()

    def _seal_send(self, payloads: Sequence[bytes | bytearray | memoryview]) -> int:
        """With the C record layer and nothing buffered in the transport: seal the batch
        and send it in one C call (GSO/sendmmsg) on the transport's socket; returns how
        many went out (the rest take the transport's path, in order after these)."""
        states = self.connection.application_states()
        transport = self._transport
        if _cudpio is None or states is None or type(states[1]) is not _CCipherState \
                or transport.is_closing() \
                or getattr(transport, "get_write_buffer_size", lambda: 1)():
            return 0
        raw = self._protocol.raw
        if raw is None:
            tsock = transport.get_extra_info("socket")
            if tsock is None or tsock.family not in (socket.AF_INET, socket.AF_INET6):
                return 0
            # The transport's TransportSocket cannot be weak-referenced (our per-socket
            # capability cache needs that): a dup of the fd shares its file description
            # (non-blocking, connected) and is closed when the transport goes.
            raw = self._protocol.raw = socket.socket(fileno=os.dup(tsock.fileno()))
        try:
            return _cudpio.seal_send(states[1], raw, _APPLICATION_DATA, payloads)
        except ConnectionRefusedError:  # ICMP from an earlier datagram: this batch is lost
            self.connection.stats["send_failed"] += 1
            return len(payloads)

    def _datagram_received(self, data: bytes, addr: Address) -> None:
        self.connection.receive_datagram(data, addr, self._loop.time())
        self._service()

    def _on_timer(self) -> None:
        when = self._timer_when
        self._timer = self._timer_when = None
        # call_at may fire up to the clock resolution early: never tell the connection
        # a time before the one it asked for, or it would re-arm the same instant.
        now = self._loop.time()
        self.connection.handle_timer(max(now, when) if when is not None else now)
        self._service()

    def _service(self) -> None:
        """After every input: send what is queued, deliver events, re-arm the timer."""
        transport = self._transport
        for datagram, _addr in self.connection.datagrams_to_send(self._loop.time()):
            if not transport.is_closing():
                transport.sendto(datagram)
        while (event := self.connection.next_event()) is not None:
            self._deliver(event)
        self._settle()
        when = self.connection.get_timer()
        if when != self._timer_when:
            self._cancel_timer()
            if when is not None:
                self._timer_when = when
                self._timer = self._loop.call_at(when, self._on_timer)

    def _settle(self) -> None:
        """Resolve the handshake future once the outcome is known."""
        if self._handshake_done.done():
            return
        if self._handshake is not None:
            self._handshake_done.set_result(None)
        elif self._terminated is not None:
            self._handshake_done.set_exception(self._error())
            self._handshake_done.exception()  # retrieved: no "never retrieved" log

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_when = None

    def _abort(self, reason: str) -> None:
        """The transport is gone: end without sending anything."""
        self._cancel_timer()
        self._deliver(ConnectionTerminated(None, reason, by_peer=False))
        self._settle()


async def connect(host: str, port: int, config: DtlsConfiguration, *,
                  local_addr: tuple[str, int] | None = None) -> DtlsClient:
    """Connect to a DTLS server and complete the handshake.

    Bounded by the configuration's `handshake_timeout` (HandshakeTimeout); wrap it in
    `asyncio.wait_for` for a shorter bound (the transport is closed on cancellation).
    A rejected handshake raises the `dtls.errors` exception for it:
    CertificateVerificationFailed (we rejected the server's certificate; `.reason` says
    why: fingerprint, expired, unknown CA...), AlertReceived (the server rejected us,
    e.g. unknown_psk_identity).
    """
    if not config.is_client:
        raise ValueError("dtls.aio.connect needs a client configuration (is_client=True)")
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _ClientProtocol, remote_addr=(host, port), local_addr=local_addr)
    try:
        peer = transport.get_extra_info("peername")
        client = DtlsClient(Connection(config, peer_address=peer), transport, protocol)
        protocol.client = client
        await client.do_handshake()
    except BaseException:
        transport.close()
        await asyncio.shield(protocol.lost)
        raise
    return client


# -- server ------------------------------------------------------------------------------


class DtlsPeer(_Association):
    """One established client of an `AsyncDtlsServer`, as its handler sees it."""

    def __init__(self, server: AsyncDtlsServer, session: Session,
                 handshake: HandshakeCompleted) -> None:
        super().__init__(session.connection)
        self._server = server
        self.session = session
        """The core's `dtls.server.Session` (per-session statistics)."""
        self._handshake = handshake

    @property
    def peer_address(self) -> Address:
        return self.session.address

    @property
    def stats(self) -> dict[str, Any]:
        """The session's statistics (records/datagrams/bytes in and out, retransmissions,
        the connection's counters) and ``inbox_full``."""
        return {**self.session.stats, "inbox_full": self._inbox_full}

    async def close(self) -> None:
        """Send close_notify and forget this peer (the server socket stays open)."""
        self._server._close_peer(self)

    def _transmit(self, payload: bytes) -> None:
        self._server._send(self, payload)

    def _transmit_many(self, payloads: Sequence[bytes | bytearray | memoryview]) -> None:
        self._server._send_many(self, payloads)

    def __repr__(self) -> str:
        return f"<DtlsPeer {self.session.address} {'closed' if self.closed else 'open'}>"


class _ServerProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: AsyncDtlsServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.server._datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.server._icmp_errors += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connection_lost(exc)


class AsyncDtlsServer:
    """`dtls.server.DtlsServer` on one asyncio UDP transport; see `serve`.

    `core` is the sans-IO server (its `limits`, `sessions`, `stats`); `peers` are the
    established peers with a running handler.
    """

    def __init__(self, handler: Callable[[DtlsPeer], Awaitable[None]],
                 config: DtlsConfiguration, limits: ServerLimits | None = None, *,
                 on_handshake_failed: HandshakeFailedCallback | None = None) -> None:
        if config.is_client:
            raise ValueError("dtls.aio.serve needs a server configuration (is_client=False)")
        self.core = DtlsServer(config, limits)
        self._handler = handler
        self._on_handshake_failed = on_handshake_failed
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.DatagramTransport | None = None
        self._peers: dict[int, DtlsPeer] = {}  # by session id
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._closing = False
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._icmp_errors = 0
        self._handler_errors = 0

    # -- public API ----------------------------------------------------------------------

    @property
    def limits(self) -> ServerLimits:
        return self.core.limits

    @property
    def address(self) -> Any:
        """The bound (host, port)."""
        assert self._transport is not None
        return self._transport.get_extra_info("sockname")

    @property
    def peers(self) -> list[DtlsPeer]:
        return list(self._peers.values())

    @property
    def stats(self) -> dict[str, Any]:
        """The core's statistics (`dtls.server.DtlsServer.stats`: sessions, half_open,
        handshakes_completed/failed, ``handshake_failure_reasons`` (failed handshakes by
        alert, see `dtls.server.failure_reason`), ``drops`` by reason,
        records/datagrams/bytes, retransmissions...), plus ``icmp_error`` and
        ``handler_errors``, and the short names ``handshakes`` (completed),
        ``handshake_failures`` (= handshakes_failed), ``session_limit_drops``, ``new_associations``
        (RFC 6347 4.2.8 replacements) and ``idle_closed`` (reaped)."""
        stats = self.core.stats
        stats.update(
            handshakes=stats["handshakes_completed"],
            handshake_failures=stats["handshakes_failed"],
            session_limit_drops=stats["drops"].get("session_limit", 0),
            new_associations=stats["sessions_replaced"],
            idle_closed=stats["sessions_reaped"],
            icmp_error=self._icmp_errors, handler_errors=self._handler_errors)
        return stats

    def is_serving(self) -> bool:
        return not self._closing

    def close(self) -> None:
        """Stop serving: cancel handler tasks, send close_notify to every peer, close the
        socket.  `wait_closed()` waits for the tasks and the transport."""
        if self._closing:
            return
        self._closing = True
        for task in self._tasks:
            task.cancel()
        self.core.close_all()
        self._pump()
        self._cancel_timer()
        if self._transport is not None:
            self._transport.close()
        else:
            self._connection_lost(None)

    async def wait_closed(self) -> None:
        """Wait until every handler task has finished and the transport is closed."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.shield(self._lost)

    async def serve_forever(self) -> None:
        """Serve until cancelled, then close."""
        try:
            await asyncio.shield(self._lost)
        finally:
            self.close()
            await self.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
        await self.wait_closed()

    # -- inputs to the core --------------------------------------------------------------

    def _datagram_received(self, data: bytes, addr: Address) -> None:
        if self._closing:
            return
        self.core.receive_datagram(data, addr, self._loop.time())
        self._pump()

    def _on_timer(self) -> None:
        when = self._timer_when
        self._timer = self._timer_when = None
        if self._closing:
            return
        now = self._loop.time()  # call_at may fire a little early: never before `when`
        self.core.handle_timer(max(now, when) if when is not None else now)
        self._pump()

    def _send(self, peer: DtlsPeer, payload: bytes) -> None:
        try:
            self.core.send_to_session(peer.session, payload)
        except ConnectionStateError:
            peer._deliver(ConnectionTerminated(None, "the session is gone", by_peer=False))
            raise peer._error() from None
        self._pump()

    def _send_many(self, peer: DtlsPeer, payloads: Sequence[bytes | bytearray | memoryview]
                   ) -> None:
        try:
            self.core.send_many_to_session(peer.session, payloads)
        except ConnectionStateError:
            peer._deliver(ConnectionTerminated(None, "the session is gone", by_peer=False))
            raise peer._error() from None
        self._pump()

    def _close_peer(self, peer: DtlsPeer) -> None:
        self.core.close_session(peer.session)
        self._pump()
        self._peers.pop(peer.session.id, None)
        peer._deliver(ConnectionTerminated(None, "closed locally", by_peer=False))

    # -- outputs of the core -------------------------------------------------------------

    def _pump(self) -> None:
        """After every input: route events, send what is queued, re-arm the timer."""
        core = self.core
        while (item := core.next_event()) is not None:
            self._route(item)
        transport = self._transport
        for datagram, addr in core.datagrams_to_send(self._loop.time()):
            if transport is not None and not transport.is_closing():
                transport.sendto(datagram, addr)
        when = None if self._closing else core.get_timer()
        if when != self._timer_when:
            self._cancel_timer()
            if when is not None:
                self._timer_when = when
                self._timer = self._loop.call_at(when, self._on_timer)

    def _route(self, item: ServerEvent) -> None:
        session, event = item.session, item.event
        peer = self._peers.get(session.id)
        if isinstance(event, HandshakeCompleted):
            peer = DtlsPeer(self, session, event)
            if self._closing:
                return
            self._peers[session.id] = peer
            task = self._loop.create_task(self._run_handler(peer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if peer is None:
            if isinstance(event, ConnectionTerminated) and not session.established:
                self._handshake_failed(item.address, event)
            return
        if isinstance(event, ConnectionTerminated):
            del self._peers[session.id]
        peer._deliver(event)

    def _handshake_failed(self, address: Address, event: ConnectionTerminated) -> None:
        error = error_for_termination(event, established=False)
        logger.info("handshake with %s failed: %s", address, error)
        if self._on_handshake_failed is not None:
            try:
                self._on_handshake_failed(address, error)
            except Exception:
                self._handler_errors += 1
                logger.exception("on_handshake_failed callback failed")

    async def _run_handler(self, peer: DtlsPeer) -> None:
        try:
            await self._handler(peer)
        except asyncio.CancelledError:
            pass  # server shutdown
        except DtlsError as exc:
            logger.info("handler for %s ended: %s", peer.peer_address, exc)
        except Exception:
            self._handler_errors += 1
            logger.exception("handler for %s failed", peer.peer_address)
        finally:
            # The handler is done with its peer: end the association (close_notify).
            if not peer.closed and not self._closing:
                self._close_peer(peer)
            self._peers.pop(peer.session.id, None)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_when = None

    def _connection_lost(self, exc: Exception | None) -> None:
        if not self._closing:
            logger.warning("server transport lost: %s", exc)
            self.close()
        self._cancel_timer()
        for peer in list(self._peers.values()):
            peer._deliver(ConnectionTerminated(None, "server transport closed", by_peer=False))
        self._peers.clear()
        if not self._lost.done():
            self._lost.set_result(None)


_UNSET: Any = object()


async def serve(handler: Callable[[DtlsPeer], Awaitable[None]], host: str | None, port: int,
                config: DtlsConfiguration, *,
                limits: ServerLimits | None = None,
                max_sessions: int | None = None,
                idle_timeout: float | None = _UNSET,
                on_handshake_failed: HandshakeFailedCallback | None = None,
                **endpoint_kw: Any) -> AsyncDtlsServer:
    """Serve DTLS on one UDP socket, calling `await handler(peer)` as a task for every
    peer whose handshake completed (like `asyncio.start_server`).

    `limits` (`dtls.server.ServerLimits`, safe defaults) bounds sessions, half-open
    handshakes, the per-source handshake rate, the handshake deadline and idle time;
    `max_sessions` and `idle_timeout` are shortcuts that override those two fields
    (`idle_timeout=None`: no idle timeout).  An idle peer gets close_notify and its
    handler's `recv` raises ConnectionClosed.  When the handler returns, the peer gets
    close_notify.

    A handshake that fails (the client rejected our certificate, an unknown PSK
    identity, the deadline...) never reaches `handler`; it is counted in
    ``server.stats["handshakes_failed"]`` and, by alert, in
    ``server.stats["handshake_failure_reasons"]`` (e.g. ``{"received_bad_certificate": 1}``),
    and `on_handshake_failed(address, error)` is called with the `dtls.errors` exception
    the server side saw (AlertReceived, AlertSent, HandshakeTimeout...).
    `endpoint_kw` goes to `loop.create_datagram_endpoint` (reuse_port...).
    """
    limits = dataclasses.replace(limits) if limits is not None else ServerLimits()
    if max_sessions is not None:
        limits.max_sessions = max_sessions
    if idle_timeout is not _UNSET:
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive (or None)")
        limits.idle_timeout = math.inf if idle_timeout is None else idle_timeout
    loop = asyncio.get_running_loop()
    server = AsyncDtlsServer(handler, config, limits, on_handshake_failed=on_handshake_failed)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _ServerProtocol(server), local_addr=(host or "0.0.0.0", port), **endpoint_kw)
    server._transport = transport
    return server
