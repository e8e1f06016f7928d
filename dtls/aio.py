"""asyncio front-ends for the sans-IO `Connection`: a client and a many-peer server.

Both sit on `loop.create_datagram_endpoint`; retransmission timers are `loop.call_at`
handles re-armed after every input (no polling), and `loop.time()` is the connection's
clock.  ::

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

The server keeps no per-client state before a valid cookie (RFC 6347 4.2.1): datagrams
from unknown addresses go to one stateless listener `Connection`; when it binds to an
address (its ClientHello carried a valid cookie) it becomes that peer's connection and a
fresh listener takes its place.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cryptography import x509

from .config import DtlsConfiguration
from .connection import Connection, HandshakeState
from .errors import ConnectionClosed, DtlsError, error_for_termination
from .events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from .recordbase import MAX_PLAINTEXT
from .suites import CipherSuite

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["DtlsClient", "DtlsPeer", "DtlsServer", "connect", "serve"]

logger = logging.getLogger("dtls.aio")

Address = Any

MAX_INBOX = 1024
"""Received payloads held per association until `recv` takes them; more are dropped, as
a full UDP receive buffer would (counted in `stats["inbox_full"]`)."""

DEFAULT_MAX_SESSIONS = 1024
DEFAULT_IDLE_TIMEOUT = 300.0


def _client_hello_random(datagram: bytes) -> bytes | None:
    """The random of an epoch-0 ClientHello opening `datagram`, else None.

    Record header (13 bytes, RFC 6347 4.1), handshake header (12, 4.2.2), client_version
    (2), then the 32-byte random (RFC 5246 7.4.1.2).  A client keeps its random across
    the cookie exchange (RFC 6347 4.2.1), so a different random means a new handshake.
    """
    if len(datagram) < 13 + 12 + 2 + 32 or datagram[0] != 22 or datagram[3:5] != b"\0\0":
        return None
    if datagram[13] != 1 or datagram[13 + 6:13 + 9] != b"\0\0\0":  # fragment_offset 0
        return None
    return datagram[13 + 14:13 + 14 + 32]


class _Association:
    """One `Connection` wired to a datagram transport, a timer and an inbox.

    The base of both `DtlsClient` and `DtlsPeer`: everything that does not depend on
    who owns the transport.
    """

    def __init__(self, connection: Connection, transport: asyncio.DatagramTransport,
                 address: Address) -> None:
        self.connection = connection
        self._transport = transport
        self._address = address  # None: a connected (client) transport
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._inbox: deque[bytes] = deque()
        self._readable = asyncio.Event()  # set when the inbox or the state changed
        self._handshake: HandshakeCompleted | None = None
        self._terminated: ConnectionTerminated | None = None
        self._handshake_done: asyncio.Future[None] = self._loop.create_future()
        self._on_terminated: Callable[[], None] | None = None

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
        self.connection.send(payload)
        self._service()

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

    @property
    def stats(self) -> Any:
        return self.connection.stats

    def export_keying_material(self, label: bytes | str, length: int,
                               context: bytes | None = None) -> bytes:
        """RFC 5705 keying material (e.g. DTLS-SRTP, RFC 5764 4.2)."""
        return self.connection.export_keying_material(label, length, context)

    # -- driving the connection ----------------------------------------------------------

    def _error(self) -> DtlsError:
        assert self._terminated is not None
        return error_for_termination(self._terminated, established=self._handshake is not None)

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
                transport.sendto(datagram, self._address)
        while (event := self.connection.next_event()) is not None:
            if isinstance(event, ApplicationData):
                if len(self._inbox) >= MAX_INBOX:
                    self.connection.stats["inbox_full"] += 1
                    continue
                self._inbox.append(event.data)
            elif isinstance(event, HandshakeCompleted):
                self._handshake = event
                if not self._handshake_done.done():
                    self._handshake_done.set_result(None)
                self._on_established()
            elif isinstance(event, ConnectionTerminated):
                self._terminated = event
                if not self._handshake_done.done():
                    self._handshake_done.set_exception(self._error())
                    self._handshake_done.exception()  # retrieved: no "never retrieved" log
                if self._on_terminated is not None:
                    self._on_terminated()
            self._wake()
        self._arm_timer()

    def _on_established(self) -> None:
        pass

    def _wake(self) -> None:
        self._readable.set()

    def _arm_timer(self) -> None:
        when = self.connection.get_timer()
        if when == self._timer_when:
            return
        self._cancel_timer()
        if when is not None:
            self._timer_when = when
            self._timer = self._loop.call_at(when, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_when = None

    def _abort(self, reason: str) -> None:
        """The transport is gone: end without sending anything."""
        self._cancel_timer()
        if self._terminated is None:
            event = ConnectionTerminated(None, reason, by_peer=False)
            self._terminated = event
            if not self._handshake_done.done():
                self._handshake_done.set_exception(self._error())
                self._handshake_done.exception()
        self._wake()

    def _close_notify(self) -> None:
        """Send close_notify (or nothing, before the handshake started) and stop timers."""
        if self.connection.state not in (HandshakeState.CLIENT_START, HandshakeState.CLOSED):
            self.connection.close()
        self._service()
        self._cancel_timer()
        if self._terminated is None:  # CLIENT_START: no event from the core
            self._abort("closed locally")


# -- client ------------------------------------------------------------------------------


class _ClientProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.client: DtlsClient | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if self.client is not None:
            self.client._datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable while the server starts): a lost datagram.
        if self.client is not None:
            self.client.connection.stats["icmp_error"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        if self.client is not None:
            self.client._abort(f"transport lost: {exc}" if exc else "transport closed")


class DtlsClient(_Association):
    """A DTLS client association on its own connected UDP transport."""

    def __init__(self, connection: Connection, transport: asyncio.DatagramTransport,
                 protocol: _ClientProtocol) -> None:
        super().__init__(connection, transport, None)
        self._protocol = protocol

    async def do_handshake(self) -> None:
        """Start the handshake if needed and wait for it (raises on failure)."""
        if self.connection.state is HandshakeState.CLIENT_START:
            self.connection.connect(self._loop.time())
            self._service()
        await asyncio.shield(self._handshake_done)

    async def close(self) -> None:
        """close_notify, then close the transport and wait until it is gone."""
        self._close_notify()
        self._transport.close()
        await self._protocol.lost

    def getsockname(self) -> Any:
        return self._transport.get_extra_info("sockname")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


async def connect(host: str, port: int, config: DtlsConfiguration, *,
                  local_addr: tuple[str, int] | None = None) -> DtlsClient:
    """Connect to a DTLS server and complete the handshake.

    Bounded by the configuration's `handshake_timeout` (HandshakeTimeout); wrap it in
    `asyncio.wait_for` for a shorter bound (the transport is closed on cancellation).
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
    """One client of a `DtlsServer`, as its handler sees it."""

    def __init__(self, server: DtlsServer, connection: Connection, address: Address) -> None:
        super().__init__(connection, server._transport_or_fail(), address)
        self._server = server
        self._client_hello_random: bytes | None = None
        self._last_heard = self._loop.time()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_closed = False
        self._arm_idle()

    async def close(self) -> None:
        """Send close_notify and forget this peer (the server socket stays open)."""
        self._close_notify()
        self._server._forget(self)

    def _on_established(self) -> None:
        self._server._start_handler(self)

    def _datagram_received(self, data: bytes, addr: Address) -> None:
        self._last_heard = self._loop.time()
        super()._datagram_received(data, addr)

    def _error(self) -> DtlsError:
        if self._idle_closed:
            return ConnectionClosed(f"nothing heard from the peer for "
                                    f"{self._server._idle_timeout:g} s (idle timeout)")
        return super()._error()

    # Idle timeout: one TimerHandle per peer, re-armed only when it fires (not per
    # datagram): at expiry it checks when the peer was last heard from.
    def _arm_idle(self) -> None:
        timeout = self._server._idle_timeout
        if timeout is not None and self._terminated is None:
            self._idle_timer = self._loop.call_at(self._last_heard + timeout, self._check_idle)

    def _check_idle(self) -> None:
        self._idle_timer = None
        timeout = self._server._idle_timeout
        if self._terminated is not None or timeout is None:
            return
        if self._loop.time() < self._last_heard + timeout:
            self._arm_idle()
            return
        self._server.stats["idle_closed"] += 1
        self._idle_closed = True
        self._close_notify()
        self._server._forget(self)

    def _stop_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def __repr__(self) -> str:
        return f"<DtlsPeer {self._address} {self.connection.state.value}>"


class _ServerProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DtlsServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.server._datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.server.stats["icmp_error"] += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connection_lost(exc)


class DtlsServer:
    """DTLS on one UDP socket, demultiplexed by peer address; see `serve`."""

    def __init__(self, handler: Callable[[DtlsPeer], Awaitable[None]],
                 config: DtlsConfiguration, *, max_sessions: int,
                 idle_timeout: float | None) -> None:
        if config.is_client:
            raise ValueError("dtls.aio.serve needs a server configuration (is_client=False)")
        config.validate()
        self._handler = handler
        self._config = config
        self._max_sessions = max_sessions
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive (or None)")
        self._idle_timeout = idle_timeout
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.DatagramTransport | None = None
        self._listener = Connection(config)
        self._peers: dict[Address, DtlsPeer] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self.stats: dict[str, int] = {"sessions": 0, "handshakes": 0, "handshake_failures": 0,
                                      "session_limit_drops": 0, "new_associations": 0,
                                      "idle_closed": 0, "icmp_error": 0}

    # -- public API ----------------------------------------------------------------------

    @property
    def address(self) -> Any:
        """The bound (host, port)."""
        assert self._transport is not None
        return self._transport.get_extra_info("sockname")

    @property
    def peers(self) -> list[DtlsPeer]:
        return list(self._peers.values())

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
        for peer in list(self._peers.values()):
            peer._stop_idle()
            peer._close_notify()
        self._peers.clear()
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

    # -- internals -----------------------------------------------------------------------

    def _transport_or_fail(self) -> asyncio.DatagramTransport:
        assert self._transport is not None
        return self._transport

    def _datagram_received(self, data: bytes, addr: Address) -> None:
        if self._closing:
            return
        peer = self._peers.get(addr)
        if peer is not None:
            random = _client_hello_random(data)
            if random is None or random == peer._client_hello_random:
                peer._datagram_received(data, addr)
                return
            # RFC 6347 4.2.8: a new ClientHello at epoch 0 from a known address (the
            # client lost its state, e.g. restarted on the same port).  It goes through
            # the stateless cookie exchange; the old association is dropped only once
            # the cookie proved the address (`_listen`).
        elif len(self._peers) >= self._max_sessions:
            self.stats["session_limit_drops"] += 1
            return
        self._listen(data, addr, replacing=peer)

    def _listen(self, data: bytes, addr: Address, *, replacing: DtlsPeer | None) -> None:
        listener = self._listener
        now = self._loop.time()
        listener.receive_datagram(data, addr, now)
        if listener.peer_address is None:
            # Still stateless: at most a HelloVerifyRequest to send, nothing kept.
            assert self._transport is not None
            for datagram, to in listener.datagrams_to_send(now):
                self._transport.sendto(datagram, to)
            while listener.next_event() is not None:
                pass
            if listener.state is HandshakeState.CLOSED:
                self._listener = Connection(self._config)
            return
        # The cookie checked out: this listener is now the peer's connection.
        self._listener = Connection(self._config)
        if replacing is not None:
            self.stats["new_associations"] += 1
            replacing._stop_idle()
            replacing._abort("the peer started a new association (RFC 6347 4.2.8)")
        peer = DtlsPeer(self, listener, listener.peer_address)
        peer._client_hello_random = _client_hello_random(data)
        peer._on_terminated = lambda: self._on_peer_terminated(peer)
        self._peers[listener.peer_address] = peer
        self.stats["sessions"] += 1
        peer._service()

    def _on_peer_terminated(self, peer: DtlsPeer) -> None:
        if peer._handshake is None:
            self.stats["handshake_failures"] += 1
            logger.info("handshake with %s failed: %s", peer.peer_address,
                        peer._terminated.reason if peer._terminated else "?")
        self._forget(peer)

    def _forget(self, peer: DtlsPeer) -> None:
        peer._stop_idle()
        if self._peers.get(peer.peer_address) is peer:
            del self._peers[peer.peer_address]

    def _start_handler(self, peer: DtlsPeer) -> None:
        self.stats["handshakes"] += 1
        if self._closing:
            return
        task = self._loop.create_task(self._run_handler(peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_handler(self, peer: DtlsPeer) -> None:
        try:
            await self._handler(peer)
        except asyncio.CancelledError:
            pass  # server shutdown
        except DtlsError as exc:
            logger.info("handler for %s ended: %s", peer.peer_address, exc)
        except Exception:
            logger.exception("handler for %s failed", peer.peer_address)
        finally:
            # The handler is done with its peer: end the association (close_notify).
            if not peer.closed and not self._closing:
                await peer.close()
            self._forget(peer)

    def _connection_lost(self, exc: Exception | None) -> None:
        if not self._closing:
            logger.warning("server transport lost: %s", exc)
            self.close()
        for peer in list(self._peers.values()):
            peer._stop_idle()
            peer._abort("server transport closed")
        self._peers.clear()
        if not self._lost.done():
            self._lost.set_result(None)


async def serve(handler: Callable[[DtlsPeer], Awaitable[None]], host: str | None, port: int,
                config: DtlsConfiguration, *,
                max_sessions: int = DEFAULT_MAX_SESSIONS,
                idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
                **endpoint_kw: Any) -> DtlsServer:
    """Serve DTLS on one UDP socket, calling `await handler(peer)` as a task for every
    peer whose handshake completed (like `asyncio.start_server`).

    Datagrams from addresses beyond `max_sessions` associations (half-open included) are
    dropped before the listener sees them.  A peer not heard from for `idle_timeout`
    seconds gets close_notify and its handler's `recv` raises ConnectionClosed (None: no
    idle timeout).  When the handler returns, the peer gets close_notify.
    `endpoint_kw` goes to `loop.create_datagram_endpoint` (reuse_port...).
    """
    loop = asyncio.get_running_loop()
    server = DtlsServer(handler, config, max_sessions=max_sessions, idle_timeout=idle_timeout)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _ServerProtocol(server), local_addr=(host or "0.0.0.0", port), **endpoint_kw)
    server._transport = transport
    return server
