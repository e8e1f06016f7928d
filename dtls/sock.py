"""A blocking, UDP-like DTLS client socket over the sans-IO `Connection`.

DTLS keeps UDP's semantics (RFC 6347 1): one `send` is one record in one datagram, one
`recv` returns one record's payload, and nothing is retransmitted except the handshake.
So a UDP client becomes a DTLS client by swapping its socket::

    with dtls.connect(("127.0.0.1", 4433), config, timeout=5) as sock:
        sock.send(b"ping")
        print(sock.recv(2048))

The handshake runs on `do_handshake()` or on the first `send`/`recv`; its retransmission
timers (RFC 6347 4.2.4) are served while those calls wait.  Errors are `dtls.errors`
exceptions; timeouts follow `socket` (`settimeout`, `TimeoutError`).
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cryptography import x509

from .config import DtlsConfiguration
from .connection import Connection, HandshakeState
from .errors import ConnectionClosed, DtlsError, HandshakeTimeout, error_for_termination
from .events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from .recordbase import MAX_PLAINTEXT
from .suites import CipherSuite

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["MAX_INBOX", "DtlsSocket", "connect"]

MAX_INBOX = 1024
"""Received payloads held until `recv` takes them; beyond that they are dropped, as a full
UDP receive buffer would (counted in `stats["inbox_full"]`)."""

_RECV_SIZE = 65536


class DtlsSocket:
    """One DTLS client association over one connected UDP socket.

    Thread safety: `send` may be called from another thread while one thread waits in
    `recv`; two threads must not call `recv` concurrently.

    With select(): datagrams are taken off the socket only inside `recv`/`do_handshake`
    (never by `send`), but `fileno()` readable means a datagram arrived, not necessarily
    application data (it may be a handshake retransmission), and one datagram may carry
    several records: use a zero or short timeout and check `pending()`, as with
    `ssl.SSLSocket`.  A peer's close_notify or alert is likewise noticed by `recv`.
    """

    def __init__(self, sock: socket.socket, connection: Connection, *,
                 timeout: float | None = None) -> None:
        if not connection.is_client:
            raise ValueError("DtlsSocket wraps a client connection (is_client=True)")
        self._sock = sock
        self.connection = connection
        self._timeout = timeout
        self._lock = threading.RLock()  # guards the Connection, which is not thread-safe
        self._inbox: deque[bytes] = deque()
        self._handshake: HandshakeCompleted | None = None
        self._terminated: ConnectionTerminated | None = None
        self._closed = False

    @classmethod
    def wrap_client(cls, sock: socket.socket, config: DtlsConfiguration, *,
                    peer_address: Any = None, timeout: float | None = None) -> DtlsSocket:
        """Run a DTLS client over an existing UDP socket, connected to its peer (or to
        `peer_address`, which connects it).  The DtlsSocket owns it from now on."""
        if sock.type != socket.SOCK_DGRAM:
            raise ValueError("DTLS runs over a datagram (SOCK_DGRAM) socket")
        if not config.is_client:
            raise ValueError("wrap_client needs a client configuration (is_client=True)")
        if peer_address is not None:
            sock.connect(peer_address)
        peer = sock.getpeername()  # OSError when not connected: we need one peer
        return cls(sock, Connection(config, peer_address=peer), timeout=timeout)

    # -- socket-like API -----------------------------------------------------------------

    def do_handshake(self) -> None:
        """Run the handshake to completion (or raise); a no-op once established."""
        self._check_open()
        if self._handshake is not None:
            return
        with self._lock:
            if self.connection.state is HandshakeState.CLIENT_START:
                self.connection.connect(time.monotonic())
        try:
            self._run(lambda: self._handshake is not None)
        except TimeoutError as exc:
            if isinstance(exc, HandshakeTimeout):
                raise
            # Our socket timeout, not the configuration's handshake_timeout: the handshake
            # stays in progress and a later call continues it (as ssl.SSLSocket does).
            raise HandshakeTimeout(f"no DTLS handshake within {self._timeout:g} s") from None
        if self._handshake is None:
            raise self._error()

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Send `data` as one record in one datagram; returns len(data)."""
        payload = bytes(data)
        if len(payload) > MAX_PLAINTEXT:
            raise ValueError(f"{len(payload)} bytes do not fit one DTLS record "
                             f"(at most {MAX_PLAINTEXT})")
        self.do_handshake()
        with self._lock:
            if self._terminated is not None:
                raise self._error()
            self.connection.send(payload)
            self._flush()
        return len(payload)

    sendall = send

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """The next application payload (truncated to `bufsize`, as UDP truncates)."""
        if flags:
            raise ValueError("flags are not supported on a DTLS socket")
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        self.do_handshake()
        self._run(lambda: bool(self._inbox))
        with self._lock:
            if self._inbox:
                return self._inbox.popleft()[:bufsize]
        raise self._error()

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """`recv` into a writable buffer; returns the number of bytes stored."""
        view = memoryview(buffer).cast("B")
        size = nbytes or len(view)
        data = self.recv(min(size, len(view)), flags)
        view[:len(data)] = data
        return len(data)

    def settimeout(self, timeout: float | None) -> None:
        """Seconds that do_handshake/recv may block; None blocks, 0 never blocks
        (BlockingIOError when nothing is there)."""
        if timeout is not None and timeout < 0:
            raise ValueError("Timeout value out of range")
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def pending(self) -> int:
        """Application payloads already received and decrypted, waiting for `recv`."""
        return len(self._inbox)

    def fileno(self) -> int:
        return self._sock.fileno()

    def getpeername(self) -> Any:
        return self._sock.getpeername()

    def getsockname(self) -> Any:
        return self._sock.getsockname()

    def close(self) -> None:
        """Send close_notify (RFC 5246 7.2.1) if the association is up, close the socket."""
        if self._closed:
            return
        self._closed = True
        try:
            with self._lock:
                if self.connection.state not in (HandshakeState.CLIENT_START,
                                                 HandshakeState.CLOSED):
                    self.connection.close()
                    self._flush()
                    self._drain_events()
        finally:
            self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.connection.state.value
        try:
            peer = f" peer={self._sock.getpeername()}"
        except OSError:
            peer = ""
        return f"<DtlsSocket {state}{peer}>"

    # -- what the handshake negotiated ---------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def handshake(self) -> HandshakeCompleted | None:
        """The negotiated parameters (version, cipher suite, group, peer certificate,
        ALPN, PSK identity...), or None before the handshake completed."""
        return self._handshake

    @property
    def version(self) -> int | None:
        return self._handshake.version if self._handshake else None

    @property
    def cipher_suite(self) -> CipherSuite | None:
        return self._handshake.cipher_suite if self._handshake else None

    @property
    def peer_certificate(self) -> x509.Certificate | None:
        return self._handshake.peer_certificate if self._handshake else None

    @property
    def alpn_protocol(self) -> bytes | None:
        return self._handshake.alpn_protocol if self._handshake else None

    @property
    def stats(self) -> Any:
        """The connection's counters (dropped records by reason, retransmissions...)."""
        return self.connection.stats

    def export_keying_material(self, label: bytes | str, length: int,
                               context: bytes | None = None) -> bytes:
        """RFC 5705 keying material (e.g. DTLS-SRTP, RFC 5764 4.2); after the handshake."""
        with self._lock:
            return self.connection.export_keying_material(label, length, context)

    # -- the driver loop -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionClosed("the DTLS socket is closed")

    def _error(self) -> DtlsError:
        if self._closed:
            return ConnectionClosed("the DTLS socket is closed")
        assert self._terminated is not None
        return error_for_termination(self._terminated, established=self._handshake is not None)

    def _flush(self) -> None:
        for datagram, _addr in self.connection.datagrams_to_send(time.monotonic()):
            try:
                self._sock.send(datagram)
            except (ConnectionRefusedError, BlockingIOError):
                # ICMP port unreachable from an earlier datagram, or a full send buffer:
                # a lost datagram either way, which DTLS is built to survive.
                self.connection.stats["send_failed"] += 1

    def _drain_events(self) -> None:
        while (event := self.connection.next_event()) is not None:
            if isinstance(event, ApplicationData):
                if len(self._inbox) >= MAX_INBOX:
                    self.connection.stats["inbox_full"] += 1
                else:
                    self._inbox.append(event.data)
            elif isinstance(event, HandshakeCompleted):
                self._handshake = event
            elif isinstance(event, ConnectionTerminated):
                self._terminated = event

    def _run(self, until: Callable[[], bool]) -> None:
        """Feed the connection datagrams and timer expiries until `until()` holds or the
        connection ends; raise TimeoutError (BlockingIOError for timeout 0) at the
        socket timeout."""
        self._check_open()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        tried = False
        while True:
            with self._lock:
                self._flush()
                self._drain_events()
                if until() or self._terminated is not None:
                    return
                timer = self.connection.get_timer()
            now = time.monotonic()
            if timer is not None and now >= timer:
                with self._lock:
                    self.connection.handle_timer(now)
                continue
            if deadline is not None and now >= deadline and tried:
                if self._timeout == 0:
                    raise BlockingIOError("no DTLS data available")
                raise TimeoutError("timed out")
            wakeups = [t for t in (timer, deadline) if t is not None]
            wait = max(0.0, min(wakeups) - now) if wakeups else None
            tried = True
            self._sock.settimeout(wait)
            try:
                data, addr = self._sock.recvfrom(_RECV_SIZE)
            except (TimeoutError, BlockingIOError):
                continue
            except ConnectionRefusedError:
                # ICMP port unreachable: no server (yet).  Keep retransmitting; the
                # handshake deadline decides when to give up.
                self.connection.stats["icmp_refused"] += 1
                continue
            with self._lock:
                self.connection.receive_datagram(data, addr, time.monotonic())


def connect(address: tuple[str, int], config: DtlsConfiguration, *,
            timeout: float | None = None, source_address: tuple[str, int] | None = None,
            do_handshake_on_connect: bool = False) -> DtlsSocket:
    """A DTLS client socket for `address` (host, port), like `socket.create_connection`.

    The handshake runs on the first send/recv or `do_handshake()` (now, with
    `do_handshake_on_connect`); `timeout` is the socket timeout for those calls.  The
    configuration's `handshake_timeout` bounds the handshake in any case.
    """
    if not config.is_client:
        raise ValueError("dtls.connect needs a client configuration (is_client=True)")
    host, port = address
    error: OSError | None = None
    for family, type_, proto, _name, sockaddr in socket.getaddrinfo(
            host, port, 0, socket.SOCK_DGRAM):
        sock = socket.socket(family, type_, proto)
        try:
            if source_address is not None:
                sock.bind(source_address)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        try:
            dtls_sock = DtlsSocket.wrap_client(sock, config, timeout=timeout)
        except BaseException:
            sock.close()
            raise
        if do_handshake_on_connect:
            try:
                dtls_sock.do_handshake()
            except BaseException:
                dtls_sock.close()
                raise
        return dtls_sock
    raise error if error is not None else OSError(f"getaddrinfo returned nothing for {host}")
