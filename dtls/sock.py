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

`dtls.accept(address, config)` is the server side for one peer (the WebRTC/relay shape:
one UDP socket per peer): it answers cookie-less ClientHellos statelessly and connects the
socket to the first client that proves its address.

Once established, with the C record layer, application data bypasses the sans-IO
connection's per-datagram path: `send` seals and sends in one C call, `recv` refills its
inbox with up to 32 datagrams per recvmmsg, and the batch calls `send_many(payloads)` /
`recv_many()` move a whole batch per call (UDP GSO where the kernel has it).  Records that
are not application data (alerts, handshake retransmissions) still reach the connection.
"""

from __future__ import annotations

import math
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cryptography import x509

from .config import DtlsConfiguration
from .connection import Connection, HandshakeState
from .errors import ConnectionClosed, DtlsError, HandshakeTimeout, error_for_termination
from .events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from .recordbase import MAX_PLAINTEXT, ContentType
from .suites import CipherSuite

try:  # the batched socket path exists only with the C record layer
    from . import _cudpio
    from ._crecord import CipherState as _CCipherState
except ImportError:  # pragma: no cover - exercised by the no-compiler CI install
    _cudpio = None  # type: ignore[assignment]
    _CCipherState = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["MAX_INBOX", "DtlsSocket", "PayloadList", "accept", "connect"]

MAX_INBOX = 1024
"""Received payloads held until `recv` takes them; beyond that they are dropped, as a full
UDP receive buffer would (counted in `stats["inbox_full"]`)."""

_RECV_SIZE = 65536
_BATCH = 32  # datagrams per receive call on the fast path
_APPLICATION_DATA = int(ContentType.APPLICATION_DATA)
_UDP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
_GRO_DEFAULT = os.environ.get("DTLS_UDP_GRO", "1") != "0"  # DTLS_UDP_GRO=0: never enable it


class PayloadList:
    """Payloads held in Python (the inbox, or the pure-Python path), with the interface of
    `dtls._cudpio.PayloadView`: len(), iteration and payload(i)."""

    __slots__ = ("_items",)

    def __init__(self, items: list[bytes]) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._items)

    def payload(self, i: int) -> bytes:
        return self._items[i]

    def __repr__(self) -> str:
        return f"PayloadList({len(self._items)} payloads)"


class DtlsSocket:
    """One DTLS client association over one connected UDP socket.

    Thread safety: `send` may be called from another thread while one thread waits in
    `recv`; two threads must not call `recv` concurrently.

    With select(): datagrams are taken off the socket only inside `recv`/`recv_many`/
    `do_handshake` (never by `send`), but `fileno()` readable means a datagram arrived, not
    necessarily application data (it may be a handshake retransmission), and one receive
    may decrypt several payloads: use a zero or short timeout and check `pending()`, as
    with `ssl.SSLSocket`.  A peer's close_notify or alert is likewise noticed by `recv`.
    """

    def __init__(self, sock: socket.socket, connection: Connection, *,
                 timeout: float | None = None) -> None:
        self._sock = sock
        self.connection = connection
        self._timeout = timeout
        self._lock = threading.RLock()  # guards the Connection, which is not thread-safe
        self._inbox: deque[bytes] = deque()
        self._handshake: HandshakeCompleted | None = None
        self._terminated: ConnectionTerminated | None = None
        self._closed = False
        # A server socket is unconnected until its client proves its address.
        self._connected = connection.is_client or connection.peer_address is not None
        # (read, write, sender, receiver) once established: the C cipher states of the
        # batched socket path, the write state's bound one-record sender
        # (_cudpio.one_sender) and the read state's bound receiver of _BATCH datagrams
        # (_cudpio.payload_receiver).
        self._fast: tuple[Any, Any, Callable[[Any], int], Callable[[], Any]] | None = None
        self._poll_in: Any = None
        self._poll_out: Any = None
        self._gro = _GRO_DEFAULT

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

    @classmethod
    def wrap_server(cls, sock: socket.socket, config: DtlsConfiguration, *,
                    timeout: float | None = None) -> DtlsSocket:
        """Run a DTLS server for ONE client over a bound UDP socket.

        Until a ClientHello carries a valid cookie the connection is a stateless listener
        answering every address with a HelloVerifyRequest (RFC 6347 4.2.1); the socket is
        then connected to that client, so datagrams from others are no longer received.
        (For many peers on one socket, use `dtls.server`.)"""
        if sock.type != socket.SOCK_DGRAM:
            raise ValueError("DTLS runs over a datagram (SOCK_DGRAM) socket")
        if config.is_client:
            raise ValueError("wrap_server needs a server configuration (is_client=False)")
        return cls(sock, Connection(config), timeout=timeout)

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
        fast = self._fast
        n = len(data)
        if fast is not None and n <= MAX_PLAINTEXT:
            # The established C path, kept short: one C call seals and sends (fast[2], the
            # socket's own sender: fd and output buffer bound, used under the lock).  _fast
            # is cleared (under the lock) when the connection ends or the socket closes.
            # acquire/try/release: half the cost of `with` on this per-record path.
            lock = self._lock
            lock.acquire()
            try:
                if self._fast is fast:
                    try:
                        if fast[2](data):
                            return n
                    except ConnectionRefusedError:
                        self.connection.stats["send_failed"] += 1  # see _fast_send
                        return n
                    self._fast_send(fast[1], (data,))  # send buffer full: wait for room
                    return n
            finally:
                lock.release()
        if n > MAX_PLAINTEXT:
            raise ValueError(f"{len(data)} bytes do not fit one DTLS record "
                             f"(at most {MAX_PLAINTEXT})")
        if self._fast is None:
            self.do_handshake()
        with self._lock:
            if self._terminated is not None or self._closed:
                raise self._error()
            fast = self._fast
            if fast is None:
                self.connection.send(bytes(data))
                self._flush()
            else:
                try:
                    sent = fast[2](data)
                except ConnectionRefusedError:
                    self.connection.stats["send_failed"] += 1  # see _fast_send
                    return len(data)
                if not sent:  # the send buffer is full: wait for room, as send() does
                    self._fast_send(fast[1], (data,))
        return len(data)

    sendall = send

    def send_many(self, payloads: Sequence[bytes | bytearray | memoryview]) -> int:
        """Send each payload as one record in its own datagram, as few syscalls as the
        kernel allows (UDP GSO, else sendmmsg, once established with the C record layer).

        Returns len(payloads) once all are handed to the kernel, waiting for send-buffer
        space as a blocking send would (bounded by the socket timeout)."""
        if payloads and max(map(len, payloads)) > MAX_PLAINTEXT:
            size = next(n for n in map(len, payloads) if n > MAX_PLAINTEXT)
            raise ValueError(f"{size} bytes do not fit one DTLS record "
                             f"(at most {MAX_PLAINTEXT})")
        if self._fast is None:
            self.do_handshake()
        with self._lock:
            if self._terminated is not None or self._closed:
                raise self._error()
            fast = self._fast
            if fast is not None:
                if len(payloads) == 1:  # the lean one-record sender: a third cheaper
                    try:
                        if not fast[2](payloads[0]):
                            self._fast_send(fast[1], payloads)  # buffer full: wait for room
                    except ConnectionRefusedError:
                        self.connection.stats["send_failed"] += 1  # see _fast_send
                else:
                    self._fast_send(fast[1], payloads)
            else:
                self.connection.send_many(payloads)
                self._flush()
        return len(payloads)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """The next application payload (truncated to `bufsize`, as UDP truncates)."""
        if flags:
            raise ValueError("flags are not supported on a DTLS socket")
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        inbox = self._inbox
        if not inbox:
            self._fill()
        return inbox.popleft()[:bufsize]

    def _fill(self) -> None:
        """Wait (per the socket timeout) until the inbox holds a payload, or raise."""
        if self._fast is None:
            self.do_handshake()
        if self._fast is not None:
            self._fast_fill(None)
        else:
            self._run(lambda: bool(self._inbox))
        if not self._inbox:
            with self._lock:
                if not self._inbox:
                    raise self._error()

    def recv_many(self, max_datagrams: int = _BATCH) -> Any:
        """Every application payload available now, waiting (per the socket timeout) for
        at least one.

        Returns an object with len(), iteration and payload(i) giving bytes-like
        payloads in arrival order: on the batched C path a `dtls._cudpio.PayloadView`
        of memoryviews into per-thread scratch, VALID ONLY UNTIL THE NEXT recv/recv_many
        ON THIS THREAD (copy what you keep); otherwise a `PayloadList` of bytes.  Up to
        `max_datagrams` datagrams are read per call (UDP GRO may coalesce more payloads
        into them)."""
        if not 1 <= max_datagrams <= 1024:
            raise ValueError("max_datagrams must be 1..1024")
        if not self._inbox:
            if self._fast is None:
                self.do_handshake()
            if self._fast is not None:
                view = self._fast_fill(max_datagrams)
                if view is not None:
                    return view
            else:
                self._run(lambda: bool(self._inbox))
        with self._lock:
            if self._inbox:
                items = list(self._inbox)
                self._inbox.clear()
                return PayloadList(items)
        raise self._error()

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """`recv` into a writable buffer; returns the number of bytes stored."""
        # Straight from the inbox (no recv call in between).  A bytearray's memoryview is
        # bytes, 1-D already (the cast costs a third of the copy); anything else is cast.
        view = memoryview(buffer) if type(buffer) is bytearray else memoryview(buffer).cast("B")
        if flags:
            raise ValueError("flags are not supported on a DTLS socket")
        size = len(view)
        if nbytes:
            if nbytes < 0:
                raise ValueError("negative buffersize in recv_into")
            size = min(nbytes, size)
        inbox = self._inbox
        if not inbox:
            self._fill()
        data = inbox.popleft()
        n = len(data)
        if n > size:  # truncated, as UDP truncates
            n = size
            data = data[:n]
        view[:n] = data
        return n

    def forward_to(self, other: DtlsSocket, max_datagrams: int = _BATCH) -> int:
        """Relay: receive what has arrived (waiting, per this socket's timeout, for at least
        one payload) and send each application payload on to `other` as its own record.

        On the C path this is ONE C call per batch: recvmmsg here, open with this
        association's keys, seal with `other`'s, GSO/sendmmsg there; no plaintext becomes
        a Python object.  Records that are not application data (alerts, handshake
        retransmissions) still reach this connection.  Returns how many payloads were
        forwarded."""
        if not 1 <= max_datagrams <= 1024:
            raise ValueError("max_datagrams must be 1..1024")
        if self._fast is None:
            self.do_handshake()
        if other._fast is None:
            other.do_handshake()
        if self._inbox or self._fast is None or other._fast is None:
            view = self.recv_many(max_datagrams)  # payloads already held, or no C path
            other.send_many([bytes(p) for p in view])
            return len(view)
        deadline: float | None = None
        waited = False
        while True:
            fast, out = self._fast, other._fast
            if fast is None or out is None:
                raise (self._error() if fast is None else other._error())
            with other._lock:
                if other._fast is not out:
                    raise other._error()
                try:
                    r = _cudpio.relay(fast[0], self._sock, out[1], other._sock,
                                      max_datagrams=max_datagrams)
                except ConnectionRefusedError:
                    self.connection.stats["icmp_refused"] += 1
                    r = None
                if r is not None and r.sent < len(r):
                    # The other socket's buffer is full: these are sealed already (their
                    # sequence numbers are spent), so send them as they are.
                    other._send_sealed([bytes(r.record(i)) for i in range(r.sent, len(r))])
            if r is not None and (r.others or r.refused or len(r)):
                # Alerts, handshake records and other epochs come back raw: as received.
                self._note_received(len(r), r.refused, raws=r.others)
                if len(r):
                    return len(r)
                if self._terminated is not None:
                    raise self._error()
                continue
            if self._terminated is not None:
                raise self._error()
            deadline, waited = self._idle(deadline, waited)

    def _send_sealed(self, records: list[bytes]) -> None:
        """Send records sealed elsewhere (a relay batch), waiting for buffer space."""
        deadline = self._deadline()
        for record in records:
            while True:
                try:
                    self._sock.send(record)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() >= deadline:
                        self.connection.stats["send_failed"] += 1
                        break
                    self._wait(self._poll_out, deadline, None)
                except ConnectionRefusedError:
                    self.connection.stats["send_failed"] += 1
                    break

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
                self._fast = None
                if self.connection.state not in (HandshakeState.CLIENT_START,
                                                 HandshakeState.SERVER_WAIT_CLIENT_HELLO,
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
        for datagram, addr in self.connection.datagrams_to_send(time.monotonic()):
            try:
                if self._connected:
                    self._sock.send(datagram)
                else:
                    self._sock.sendto(datagram, addr)
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
                self._enable_fast_path()
            elif isinstance(event, ConnectionTerminated):
                self._terminated = event
                self._fast = None

    def _enable_fast_path(self) -> None:
        """Switch application data to the batched C socket path, where it exists."""
        states = self.connection.application_states()
        if (_cudpio is None or states is None or not self._connected
                or self._sock.family not in _UDP_FAMILIES
                or type(states[0]) is not _CCipherState or type(states[1]) is not _CCipherState):
            return
        fd = self._sock.fileno()
        self._poll_in, self._poll_out = select.poll(), select.poll()
        self._poll_in.register(fd, select.POLLIN)
        self._poll_out.register(fd, select.POLLOUT)
        self._sock.setblocking(False)  # waits happen in poll, with timers and deadlines
        self._fast = (states[0], states[1], _cudpio.one_sender(states[1], self._sock),
                      _cudpio.payload_receiver(states[0], self._sock, _BATCH))

    def _enable_gro(self) -> None:
        """UDP GRO, on the first receive of the fast path (not at handshake time: the first
        GRO socket in a process flips a kernel switch, ~45 us, which a client that only
        sends should not pay).  A GSO sender's runs then arrive as one buffer per run: one
        recvmmsg slot holds up to 64 records (the C side splits them), at 64 KiB of
        scratch per slot."""
        self._gro = False  # once
        fast = self._fast
        if fast is None or not _cudpio.udp_caps(self._sock) & _cudpio.UdpCaps.GRO:
            return
        try:
            _cudpio.set_gro(self._sock, True)
        except OSError:
            return
        # The receive geometry (slot size) depends on GRO: bind the receiver again.
        self._fast = (*fast[:3], _cudpio.payload_receiver(fast[0], self._sock, _BATCH))

    def _deadline(self) -> float | None:
        return None if self._timeout is None else time.monotonic() + self._timeout

    def _wait(self, poller: Any, deadline: float | None, timer: float | None) -> bool:
        """Poll until the socket is ready, the timer is due or the deadline passes;
        True if the socket is ready."""
        wakeups = [t for t in (deadline, timer) if t is not None]
        if wakeups:
            remaining = min(wakeups) - time.monotonic()
            # Round up (a poll that returns early would spin), but a passed deadline
            # (timeout 0) polls without waiting.
            ms = math.ceil(remaining * 1000) if remaining > 0 else 0
            return bool(poller.poll(ms))
        return bool(poller.poll())

    def _fast_send(self, state: Any, payloads: Sequence[Any]) -> None:
        """seal_send until all are out (caller holds the lock)."""
        try:
            k = _cudpio.seal_send(state, self._sock, _APPLICATION_DATA, payloads)
        except ConnectionRefusedError:
            # ICMP port unreachable from an earlier datagram: this batch is lost, as it
            # would be on UDP (the kernel reported the error instead of sending).
            self.connection.stats["send_failed"] += 1
            return
        n = len(payloads)
        if k < n:  # the send buffer is full: wait for room (the deadline starts now)
            self._fast_send_rest(state, payloads, k, n)

    def _fast_send_rest(self, state: Any, payloads: Sequence[Any], sent: int, n: int) -> None:
        """The rest of _fast_send once a seal_send sent only `sent` of `n`: retry at once
        after progress, else wait for room (bounded by the socket timeout)."""
        deadline = self._deadline()
        k = sent
        while True:
            if k == 0:
                if deadline is not None and time.monotonic() >= deadline:
                    if self._timeout == 0:
                        raise BlockingIOError("the socket's send buffer is full")
                    raise TimeoutError("timed out")
                self._wait(self._poll_out, deadline, None)
            try:
                k = _cudpio.seal_send(state, self._sock, _APPLICATION_DATA, payloads[sent:])
            except ConnectionRefusedError:
                self.connection.stats["send_failed"] += 1
                return
            sent += k
            if sent >= n:
                return

    def _fast_fill(self, max_datagrams: int | None) -> Any:
        """Receive on the batched path until a payload arrives (or the connection ends, or
        the socket timeout passes).  With max_datagrams None, payloads go to the inbox
        (copied) and None is returned; otherwise the PayloadView, when it holds any."""
        if self._gro:
            self._enable_gro()
        fast = self._fast
        if fast is None:
            return None
        batch = max_datagrams or _BATCH
        if batch == _BATCH:
            receive = fast[3]  # the bound receiver: geometry worked out once
        else:
            read, sock = fast[0], self._sock

            def receive() -> Any:
                return _cudpio.recv_payloads(read, sock, batch)
        deadline: float | None = None
        waited = False
        while self._fast is not None:
            try:
                view = receive()
            except ConnectionRefusedError:
                self.connection.stats["icmp_refused"] += 1
                view = None
            if view is not None and (view._n or view.others or view.refused):
                self._note_received(view._n, view.refused, results=view.others)
                k = view._n
                if k:
                    inbox = self._inbox
                    if max_datagrams is not None and not inbox:
                        return view
                    room = MAX_INBOX - len(inbox)
                    if k > room:
                        self.connection.stats["inbox_full"] += k - max(room, 0)
                    inbox.extend(view._copies(room))
                if self._inbox or self._terminated is not None:
                    return None
                continue
            if self._terminated is not None:
                return None
            deadline, waited = self._idle(deadline, waited)
        return None

    def _note_received(self, count: int, refused: Any, *, results: Any = (),
                       raws: Any = ()) -> None:
        """What a fast-path receive saw besides `count` accepted application payloads:
        refusal counts, opened non-application records (`results`) and raw records
        (`raws`) go to the connection, and accepted data ends a held final flight."""
        connection = self.connection
        if not (results or raws or refused or connection.holding_final_flight):
            return
        with self._lock:
            now = time.monotonic()
            addr = connection.peer_address
            connection.receive_opened(results, addr, now, application_data=count,
                                      refused=refused)
            for raw in raws:
                connection.receive_datagram(raw, addr, now)
            self._flush()
            self._drain_events()

    def _idle(self, deadline: float | None, waited: bool) -> tuple[float | None, bool]:
        """Nothing was pending: serve a due timer, else wait for the socket until the
        timer or the socket timeout, which counts from the first idle pass (timeout 0
        raises BlockingIOError there: the receive was the non-blocking attempt).
        Returns the (deadline, waited) to pass next time; raises TimeoutError."""
        # The timer is read without the lock (a read; the lock is taken only to act).
        timer = self.connection.get_timer()
        now = time.monotonic()
        if timer is not None and now >= timer:
            with self._lock:
                timer = self.connection.get_timer()
                if timer is not None and now >= timer:
                    self.connection.handle_timer(now)
                    self._flush()
                    self._drain_events()
            return deadline, waited
        if not waited:
            if self._timeout == 0:
                raise BlockingIOError("no DTLS data available")
            if self._timeout is not None:
                deadline = now + self._timeout
        elif deadline is not None and now >= deadline:
            raise TimeoutError("timed out")
        self._wait(self._poll_in, deadline, timer)
        return deadline, True

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
                if not self._connected and self.connection.peer_address is not None:
                    # The client proved its address (valid cookie): from now on this
                    # socket carries only its datagrams.
                    self._sock.connect(self.connection.peer_address)
                    self._connected = True


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
        return _wrapped(DtlsSocket.wrap_client, sock, config, timeout, do_handshake_on_connect)
    raise error if error is not None else OSError(f"getaddrinfo returned nothing for {host}")


def accept(address: tuple[str, int] | socket.socket, config: DtlsConfiguration, *,
           timeout: float | None = None,
           do_handshake_on_connect: bool = False) -> DtlsSocket:
    """A DTLS server socket for one client: bind `address` (host, port) (or take a bound
    UDP socket) and serve the first client that completes the cookie exchange.

    The handshake runs on the first send/recv or `do_handshake()` (now, with
    `do_handshake_on_connect`); `timeout` is the socket timeout for those calls."""
    if config.is_client:
        raise ValueError("dtls.accept needs a server configuration (is_client=False)")
    if isinstance(address, socket.socket):
        sock = address
    else:
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except BaseException:
            sock.close()
            raise
    return _wrapped(DtlsSocket.wrap_server, sock, config, timeout, do_handshake_on_connect)


def _wrapped(wrap: Callable[..., DtlsSocket], sock: socket.socket, config: DtlsConfiguration,
             timeout: float | None, do_handshake: bool) -> DtlsSocket:
    """`wrap(sock, config, timeout=...)` (closing `sock` if that fails), then the handshake
    if asked (closing the DtlsSocket if that fails): connect's and accept's common ending."""
    try:
        dtls_sock = wrap(sock, config, timeout=timeout)
    except BaseException:
        sock.close()
        raise
    if do_handshake:
        try:
            dtls_sock.do_handshake()
        except BaseException:
            dtls_sock.close()
            raise
    return dtls_sock
