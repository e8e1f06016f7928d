"""Pure-Python twin of dtls._cudpio: seal a batch and send it, receive a batch and open it.

The project rule is that every C function has a Python twin with the same interface: it is
the fallback where the C layer was not built, and the oracle tests/test_pyudpio.py holds the
C code to.  So this module mirrors dtls._cudpio name for name (UdpCaps, SendMode, udp_caps,
set_gro, best_send_mode, seal_send, RecvBatch, recv_open, PayloadView, recv_payloads) and
reproduces its observable behaviour: the same datagrams on the wire, the same results in
the same order, the same datagram/dropped counts, the same partial-send accounting.

It works with either CipherState (dtls._pyrecord's or dtls._crecord's): it only calls the
record-layer interface (seal_batch, open_batch, next_seq), which both backends implement.
That is also why it cannot share classes with dtls._cudpio: importing that module needs the
C extension, which is exactly what is missing when this twin is in use.

What pure Python cannot do, it does not claim (udp_caps is honest about it):

* Sending is PLAIN only, one send per record.  The standard library has no sendmmsg, and a
  UDP_SEGMENT (GSO) path would be a second, untested way to put the same bytes on the
  wire; asking for MMSG or GSO is a ValueError, as C gives on a socket that lacks them.
* Receiving has no recvmmsg, so a batch is emulated with the same semantics as C's MMSG
  mode (recvmmsg with MSG_WAITFORONE): the first datagram blocks as the socket does, the
  rest are taken with MSG_DONTWAIT up to max_datagrams.  mode=None and mode=MMSG both mean
  that; mode=PLAIN is exactly one datagram, as in C.
* UDP GRO works: recvmsg delivers the UDP_GRO control message, and coalesced buffers are
  split into their datagrams exactly as csrc/udpio.c does.

Blocking follows the fd, as in C: a Python socket with a timeout is non-blocking at the fd
level, so these calls never wait on it (CPython's own send/recv would wait for the timeout;
the twin checks readiness first or writes to the fd directly to avoid that).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from enum import IntEnum, IntFlag
from typing import Any, Protocol

from .recordbase import MAX_FRAGMENT, OpenResult, OpenStatus, RecordBatch

Buffer = bytes | bytearray | memoryview

__all__ = ["PayloadView", "RecvBatch", "SendMode", "UdpCaps", "best_send_mode", "recv_open",
           "recv_payloads", "seal_send", "set_gro", "udp_caps"]

BACKEND = "python"


class UdpCaps(IntFlag):
    """What a UDP socket offers (csrc/udpio.h DTLS_UDP_CAP_*, same values as in C).

    The twin reports only what it uses: GRO and GRO_ON, never GSO, SENDMMSG or RECVMMSG,
    which the standard library cannot reach.
    """

    NONE = 0
    GSO = 1        # UDP_SEGMENT, Linux >= 4.18 (never reported: the twin sends PLAIN)
    GRO = 2        # UDP_GRO can be enabled, Linux >= 5.0
    SENDMMSG = 4   # never reported: no sendmmsg in Python
    RECVMMSG = 8   # never reported: no recvmmsg in Python (batches are emulated)
    GRO_ON = 16    # UDP_GRO is enabled on this socket


class SendMode(IntEnum):
    """csrc/udpio.h DTLS_UDP_*; the same ints as dtls._cudpio.SendMode, so either enum works."""

    PLAIN = 0  # one send (or recv) per datagram
    MMSG = 1   # sendmmsg / recvmmsg (receiving: emulated; sending: refused)
    GSO = 2    # sending only: UDP_SEGMENT runs of equal-size records (refused)


class _SendState(Protocol):
    next_seq: int

    def seal_batch(self, content_type: int, payloads: Sequence[Buffer]) -> RecordBatch: ...


class _OpenState(Protocol):
    def open_batch(self, data: Buffer,
                   lengths: Sequence[int] | None = None) -> list[OpenResult]: ...


_LINUX = sys.platform.startswith("linux")
_SOL_UDP = getattr(socket, "SOL_UDP", 17)
_UDP_GRO = getattr(socket, "UDP_GRO", 104)  # linux/udp.h; Python 3.11 does not export it
_IPPROTO_UDP = socket.IPPROTO_UDP
_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)  # 0: not on Windows
_HAVE_RECVMSG = hasattr(socket.socket, "recvmsg")  # not on Windows
_ANC_SPACE = socket.CMSG_SPACE(4) if _LINUX and _HAVE_RECVMSG else 0  # one int: gso_size
_WOULD_BLOCK = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS})
_HEADER_LEN = 13
_RECORD_SLOT = MAX_FRAGMENT + _HEADER_LEN  # the largest record a datagram can carry
_GRO_SLOT = 65535                          # a coalesced GRO buffer is up to this
_MMSG_CHUNK = 256  # csrc/udpio.c MMSG_CHUNK: C takes at most this many datagrams per call
_APPLICATION_DATA = 23
_OK = OpenStatus.OK
_BAD_EPOCH = OpenStatus.BAD_EPOCH
_NO_REFUSALS: dict[OpenStatus, int] = {}

# Per socket object: (fd, caps without GRO_ON, whether UDP_GRO can be read back).  GRO_ON
# itself is read on every call, so a set_gro from either module is seen at once.
_caps: weakref.WeakKeyDictionary[socket.socket, tuple[int, UdpCaps, bool]] = (
    weakref.WeakKeyDictionary())
# An error recvmsg reported after a batch had datagrams: recvmmsg keeps such an error for
# the next call (the kernel puts it back in sk_err), so the twin keeps it here.
_pending: weakref.WeakKeyDictionary[socket.socket, OSError] = weakref.WeakKeyDictionary()
_local = threading.local()


def _fd(sock: socket.socket) -> int:
    fd = sock.fileno()
    if fd < 0:
        raise OSError(errno.EBADF, "socket is closed")
    return fd


def _detect(sock: socket.socket) -> tuple[UdpCaps, bool]:
    """The static capabilities, probed as dtls_udp_caps probes them (Linux only)."""
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) != socket.SOCK_DGRAM:
        raise OSError(errno.EPROTOTYPE, os.strerror(errno.EPROTOTYPE))
    if not _LINUX:
        return UdpCaps.NONE, False
    try:
        proto = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
    except OSError:
        proto = 0
    if proto != _IPPROTO_UDP:  # e.g. AF_UNIX datagrams: no GRO
        return UdpCaps.NONE, False
    try:
        sock.getsockopt(_SOL_UDP, _UDP_GRO)  # Linux >= 5.14 reads it back
    except OSError:
        pass
    else:
        return UdpCaps.GRO, True
    # Older kernels may only set it: probe a scratch socket, never the caller's.
    try:
        with socket.socket(sock.family, socket.SOCK_DGRAM, _IPPROTO_UDP) as probe:
            probe.setsockopt(_SOL_UDP, _UDP_GRO, 1)
    except OSError:
        return UdpCaps.NONE, False
    return UdpCaps.GRO, False


def udp_caps(sock: socket.socket) -> UdpCaps:
    """What this twin can use on the socket: GRO / GRO_ON where the kernel has them.

    OSError for a closed socket or one that is not SOCK_DGRAM, as in C.  The probes run
    once per socket object and fd; GRO_ON is re-read every call (one getsockopt).
    """
    fd = _fd(sock)
    hit = _caps.get(sock)
    if hit is None or hit[0] != fd:
        static, readable = _detect(sock)
        _caps[sock] = (fd, static, readable)
    else:
        static, readable = hit[1], hit[2]
    if readable:
        try:
            if sock.getsockopt(_SOL_UDP, _UDP_GRO):
                return static | UdpCaps.GRO_ON
        except OSError:
            pass
    return static


def set_gro(sock: socket.socket, on: bool = True) -> None:
    """Enable (or disable) UDP GRO on a receiving socket; OSError where the kernel lacks it."""
    _fd(sock)
    if not _LINUX:
        raise OSError(errno.ENOPROTOOPT, os.strerror(errno.ENOPROTOOPT))
    sock.setsockopt(_SOL_UDP, _UDP_GRO, 1 if on else 0)


def best_send_mode(caps: UdpCaps) -> SendMode:
    """As in C; with the twin's own caps (never GSO or SENDMMSG) this is always PLAIN."""
    if caps & UdpCaps.GSO:
        return SendMode.GSO
    if caps & UdpCaps.SENDMMSG:
        return SendMode.MMSG
    return SendMode.PLAIN


def _readable(sock: socket.socket, writing: bool = False) -> bool:
    """Is the socket ready right now?  poll, not select: select fails for fds >= 1024."""
    if hasattr(select, "poll"):
        p = select.poll()
        p.register(sock, select.POLLOUT if writing else select.POLLIN)
        return bool(p.poll(0))
    r, w, _ = select.select([] if writing else [sock], [sock] if writing else [], [], 0)
    return bool(r or w)


def _sender(sock: socket.socket) -> Callable[[memoryview], Any]:
    """A send function with C's semantics: one send(2) that blocks only if the fd does.

    With no timeout (blocking fd) or timeout 0 (non-blocking fd) socket.send is exactly
    send(2).  With a timeout the fd is non-blocking, but socket.send would wait for the
    timeout; os.write on the fd is the same sendmsg path in the kernel without that wait.
    """
    timeout = sock.gettimeout()
    if timeout is None or timeout == 0:
        return sock.send
    if os.name == "posix":
        fd = sock.fileno()
        return lambda record: os.write(fd, record)

    def send_ready(record: memoryview) -> int:  # no os.write on Windows sockets
        if not _readable(sock, writing=True):
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        return sock.send(record)
    return send_ready


def seal_send(state: _SendState, sock: socket.socket, content_type: int,
              payloads: Sequence[Buffer], mode: SendMode | None = None) -> int:
    """Seal `payloads` as records (one per datagram) and send them on a connected socket.

    Returns how many went out.  Fewer than len(payloads) means the socket would block
    (EAGAIN/ENOBUFS) or failed after some were sent; state.next_seq then follows the last
    record sent, so retrying payloads[sent:] yields the records a full send would have
    (their ciphertexts never left the process, so no nonce is reused on the wire).
    Raises OSError if nothing could be sent for another reason; ValueError /
    SequenceExhausted from sealing leave next_seq unchanged and send nothing.

    mode None or PLAIN: one send per record (the only mode the twin has; MMSG and GSO are
    ValueError, as in C on a socket without them).
    """
    if not callable(getattr(state, "seal_batch", None)) or not hasattr(state, "next_seq"):
        raise TypeError("seal_send needs a CipherState (dtls._pyrecord or dtls._crecord)")
    _fd(sock)
    udp_caps(sock)  # OSError for a socket that is not a datagram socket, as in C
    if mode is not None and SendMode(mode) is not SendMode.PLAIN:
        raise ValueError(f"send mode {SendMode(mode).name} is not supported on this socket "
                         "by the pure-Python UDP layer (PLAIN only)")
    n = len(payloads)
    if n == 0:
        return 0
    first = state.next_seq
    batch = state.seal_batch(content_type, payloads)  # all-or-nothing, checks everything
    send = _sender(sock)
    sent = 0
    error: OSError | None = None
    try:
        for record in batch:
            try:
                send(record)
            except OSError as exc:  # EINTR never gets here (PEP 475 retries it)
                error = exc
                break
            sent += 1
    finally:  # also if a signal handler raised: unsent records' seqs go back, so the
        if sent < n:  # wire sees no gap and no seq is used twice
            state.next_seq = first + sent
    if sent == 0 and error is not None:
        if error.errno in _WOULD_BLOCK or isinstance(error, TimeoutError):
            return 0
        raise error
    return sent


class RecvBatch:
    """The records of one receive call: iterate for OpenResults, plus how many datagrams
    came and how many were dropped unopened for lack of result space (as in C)."""

    __slots__ = ("datagrams", "dropped", "results")

    def __init__(self, results: list[OpenResult], datagrams: int, dropped: int) -> None:
        self.results = results
        self.datagrams = datagrams
        self.dropped = dropped

    def __iter__(self) -> Iterator[OpenResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __repr__(self) -> str:
        return (f"RecvBatch({len(self.results)} records, datagrams={self.datagrams}, "
                f"dropped={self.dropped})")


def _gro_size(ancdata: list[tuple[int, int, bytes]]) -> int:
    """The UDP_GRO segment size of a received message, or 0 if it was not coalesced."""
    for level, kind, data in ancdata:
        if level == _SOL_UDP and kind == _UDP_GRO and len(data) >= 4:
            g = int.from_bytes(data[:4], sys.byteorder, signed=True)
            return max(0, g)
    return 0


def _recv_one(sock: socket.socket, slot: int, first: bool) -> tuple[bytes, int] | None:
    """One datagram (truncated to slot) and its GRO segment size; None if none is pending.

    The first may block as the fd does; later ones never block (MSG_DONTWAIT, as recvmmsg
    with MSG_WAITFORONE).  Where CPython would wait for a timeout, or MSG_DONTWAIT is
    missing, readiness is checked first with a zero-timeout poll.
    """
    timeout = sock.gettimeout()
    must_poll = (timeout is not None and timeout > 0) or (not first and not _DONTWAIT)
    if must_poll and not _readable(sock):
        return None
    flags = 0 if first else _DONTWAIT
    try:
        if _HAVE_RECVMSG:
            data, ancdata, _flags, _addr = sock.recvmsg(slot, _ANC_SPACE, flags)
            return data, _gro_size(ancdata)
        return sock.recv(slot, flags), 0
    except (BlockingIOError, TimeoutError):
        return None


def _recv(state: _OpenState, sock: socket.socket, max_datagrams: int,
          mode: SendMode | None, datagram_size: int | None,
          who: str) -> tuple[list[OpenResult], int, int]:
    """Receive and open one batch: (results, datagrams, dropped), as dtls_recv_open."""
    if not callable(getattr(state, "open_batch", None)):
        raise TypeError(f"{who} needs a CipherState (dtls._pyrecord or dtls._crecord)")
    if not 1 <= max_datagrams <= 1024:
        raise ValueError("max_datagrams must be 1..1024")
    _fd(sock)
    caps = udp_caps(sock)
    mode = SendMode.MMSG if mode is None else SendMode(mode)
    if mode is SendMode.GSO:
        raise ValueError("GSO is a sending mode; receive with MMSG or PLAIN")
    if mode is SendMode.PLAIN:
        max_datagrams = 1
    slot = datagram_size or (_GRO_SLOT if caps & UdpCaps.GRO_ON else _RECORD_SLOT)
    if not 1 <= slot <= 65535:
        raise ValueError("datagram_size must be 1..65535")
    # C sizes its result array so; a datagram that may not fit is dropped, not opened.
    res_cap = slot * max_datagrams // _HEADER_LEN + 2 * max_datagrams
    nslots = min(max_datagrams, _MMSG_CHUNK)

    pending = _pending.pop(sock, None)
    if pending is not None:
        raise pending
    received: list[tuple[bytes, int]] = []
    while len(received) < nslots:
        try:
            got = _recv_one(sock, slot, not received)
        except OSError as exc:
            if not received:
                raise
            _pending[sock] = OSError(exc.errno, exc.strerror)  # for the next call
            break
        if got is None:
            break
        received.append(got)

    results: list[OpenResult] = []
    datagrams = dropped = 0
    for data, seg in received:
        view = memoryview(data)
        length = len(view)
        step = seg or (length or 1)
        off = 0
        while True:  # an empty datagram is one datagram with no records
            dl = min(length - off, step)
            datagrams += 1
            if res_cap - len(results) < dl // _HEADER_LEN + 1:
                dropped += 1
            else:
                results.extend(state.open_batch(view[off : off + dl]))
            off += dl
            if off >= length:
                break
    return results, datagrams, dropped


def recv_open(state: _OpenState, sock: socket.socket, max_datagrams: int = 32,
              mode: SendMode | None = None, datagram_size: int | None = None) -> RecvBatch:
    """Receive up to max_datagrams datagrams and open every record in them.

    Blocks only as the socket does, and only for the first datagram; on a non-blocking
    socket with nothing pending it returns an empty batch.  datagram_size is the receive
    slot per datagram: by default a maximal record, or 65535 when GRO is on (a smaller
    slot truncates: its cut records come back MALFORMED).  mode PLAIN takes one datagram;
    None or MMSG take a batch (emulated: one recvmsg per datagram).
    """
    results, datagrams, dropped = _recv(state, sock, max_datagrams, mode, datagram_size,
                                        "recv_open")
    return RecvBatch(results, datagrams, dropped)


class PayloadView:
    """The accepted application-data payloads of one recv_payloads call.

    Interface and meaning as dtls._cudpio.PayloadView: len(view) is the number of accepted
    (status OK) records of content type 23; view.payload(i) (negative i allowed) and
    iteration give memoryviews of their plaintexts, in arrival order.  view.refused maps
    each refusing OpenStatus to how many records it refused (empty when none were;
    BAD_EPOCH records are counted there too); view.others lists as OpenResults the records
    a connection must still see: accepted records of other content types and BAD_EPOCH
    records (raw, for the next epoch).  view.datagrams and view.dropped are as in RecvBatch.

    VALID UNTIL THE NEXT RECEIVE CALL ON THE SAME THREAD: as in C, the one view object per
    thread is overwritten by the next recv_payloads there.  Copy what you keep.  (The twin
    does not reuse plaintext buffers, so memoryviews taken earlier keep their old data;
    C's point at newer data.  Code that honours the rule cannot tell the difference.)
    """

    __slots__ = ("_payloads", "datagrams", "dropped", "others", "refused")

    def __init__(self) -> None:
        self._payloads: list[memoryview] = []
        self.datagrams = self.dropped = 0
        self.others: list[OpenResult] = []
        self.refused: dict[OpenStatus, int] = _NO_REFUSALS

    def __len__(self) -> int:
        return len(self._payloads)

    def payload(self, i: int) -> memoryview:
        n = len(self._payloads)
        if not -n <= i < n:
            raise IndexError("payload index out of range")
        return self._payloads[i]

    def __iter__(self) -> Iterator[memoryview]:
        return iter(self._payloads)

    def __repr__(self) -> str:
        refused = {k.name: v for k, v in self.refused.items()}
        return (f"PayloadView({len(self._payloads)} payloads, datagrams={self.datagrams}, "
                f"dropped={self.dropped}, refused={refused}, others={len(self.others)})")


def _view() -> PayloadView:
    try:
        return _local.view  # type: ignore[no-any-return]
    except AttributeError:
        _local.view = v = PayloadView()
        return v


def recv_payloads(state: _OpenState, sock: socket.socket, max_datagrams: int = 32,
                  mode: SendMode | None = None,
                  datagram_size: int | None = None) -> PayloadView:
    """recv_open, sorted as dtls_compact_results sorts: returns the thread's PayloadView.

    Receives and opens exactly as recv_open does (same arguments, same blocking).  The
    twin builds an object per record anyway (that is what the C path avoids); it keeps the
    interface so callers need not know which one they have.  The view is valid until the
    next receive call on this thread; an empty view means nothing was pending.
    """
    results, datagrams, dropped = _recv(state, sock, max_datagrams, mode, datagram_size,
                                        "recv_payloads")
    payloads: list[memoryview] = []
    others: list[OpenResult] = []
    counts: dict[OpenStatus, int] = {}
    for r in results:
        st = r.status
        if st == _OK:
            if r.content_type == _APPLICATION_DATA:
                p = r.payload
                payloads.append(p if type(p) is memoryview else memoryview(p))
            else:
                others.append(r)
        else:
            counts[st] = counts.get(st, 0) + 1
            if st == _BAD_EPOCH:
                others.append(r)
    view = _view()
    view._payloads = payloads
    view.datagrams = datagrams
    view.dropped = dropped
    view.others = others
    # In status order, as C fills its counts array; the shared empty dict when none.
    view.refused = {st: counts[st] for st in sorted(counts)} if counts else _NO_REFUSALS
    return view
