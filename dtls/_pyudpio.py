"""Pure-Python twin of dtls._cudpio: seal a batch and send it, receive a batch and open it.

The project rule is that every C function has a Python twin with the same interface: it is
the fallback where the C layer was not built, and the oracle tests/test_pyudpio.py holds the
C code to.  So this module mirrors dtls._cudpio name for name (UdpCaps, SendMode, udp_caps,
set_gro, best_send_mode, seal_send, RecvBatch, recv_open, PayloadView, recv_payloads; for
servers and relays seal_sendto, DatagramBatch, recv_from, Reprotected, reprotect, relay;
the one-record paths seal_send_one and recv_open_one) and reproduces its observable
behaviour: the same datagrams on the wire, the same results in the same order, the same
datagram/dropped counts, the same partial-send accounting, the same source addresses (raw
sockaddr bytes and tuples), the same re-protected records, refusal counts and hand-backs.
tests/test_pyudpio.py and tests/test_pyudpio_server.py hold it to that.

It works with either CipherState (dtls._pyrecord's or dtls._crecord's): it only calls the
record-layer interface (seal, seal_batch, open, open_batch, next_seq), which both backends
implement.
That is also why it cannot share classes with dtls._cudpio: importing that module needs the
C extension, which is exactly what is missing when this twin is in use.

What pure Python cannot do, it does not claim (udp_caps is honest about it):

* Sending (seal_send, seal_sendto, relay) is PLAIN only, one send/sendto per record.  The
  standard library has no sendmmsg, and a UDP_SEGMENT (GSO) path would be a second,
  untested way to put the same bytes on the wire; asking for MMSG or GSO is a ValueError,
  as C gives on a socket that lacks them.
* Receiving has no recvmmsg, so a batch is emulated with the same semantics as C's MMSG
  mode (recvmmsg with MSG_WAITFORONE): the first datagram blocks as the socket does, the
  rest are taken with MSG_DONTWAIT up to max_datagrams.  mode=None and mode=MMSG both mean
  that; mode=PLAIN is exactly one datagram, as in C.
* UDP GRO works: recvmsg delivers the UDP_GRO control message, and coalesced buffers are
  split into their datagrams exactly as csrc/udpio.c does.

The per-thread result objects (PayloadView, DatagramBatch, Reprotected) are reused as in C:
valid until the next call of their kind on the same thread.  The twin builds Python
objects per datagram and per record internally (that is what C avoids); only the interface
and the results are the same.

Blocking follows the fd, as in C: a Python socket with a timeout is non-blocking at the fd
level, so these calls never wait on it (CPython's own send/recv would wait for the timeout;
the twin checks readiness first, writes to the fd directly, or sends through a duplicate fd
with timeout 0 to avoid that).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import sys
import threading
import weakref
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import IntEnum, IntFlag
from typing import Any, Protocol

from ._sockaddr import (  # the same conversions as C
    _ADDR_CACHE_MAX,
    _AF_INET,
    _AF_INET6,
    _FAMILY,
    _addr_tuple,
    _pack_sockaddr,
    _raws,
    _sockaddr,
)
from .recordbase import (
    MAX_FRAGMENT,
    MAX_PLAINTEXT,
    MAX_SEQ,
    OpenResult,
    OpenStatus,
    RecordBatch,
    SequenceExhausted,
)

Buffer = bytes | bytearray | memoryview

__all__ = ["DatagramBatch", "PayloadView", "RecvBatch", "Reprotected", "SendMode", "UdpCaps",
           "best_send_mode", "recv_from", "recv_open", "recv_open_one", "recv_payloads",
           "relay", "reprotect", "seal_send", "seal_send_one", "seal_sendto", "set_gro",
           "udp_caps"]

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
    _check_send_state(state, "seal_send")
    _send_mode(sock, mode)
    return _seal_and_send(state, sock, content_type, payloads, None)


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


def _recv_one(sock: socket.socket, slot: int,
              first: bool) -> tuple[bytes, int, Any] | None:
    """One datagram (truncated to slot), its GRO segment size and its source address (as
    recvmsg gives it); None if none is pending.

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
            data, ancdata, _flags, addr = sock.recvmsg(slot, _ANC_SPACE, flags)
            return data, _gro_size(ancdata), addr
        data, addr = sock.recvfrom(slot, flags)
        return data, 0, addr
    except (BlockingIOError, TimeoutError):
        return None


def _geometry(sock: socket.socket, max_datagrams: int, mode: SendMode | None,
              datagram_size: int | None) -> tuple[int, int, UdpCaps]:
    """Check receive arguments as C does: (datagrams per call, slot bytes, caps)."""
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
    return max_datagrams, slot, caps


def _raise_pending(sock: socket.socket) -> None:
    """An error a batch left in the socket (as the kernel keeps sk_err) goes to the next
    receive of any kind."""
    pending = _pending.pop(sock, None)
    if pending is not None:
        raise pending


def _receive(sock: socket.socket, slot: int,
             nslots: int) -> list[tuple[bytes, int, Any]]:
    """One emulated recvmmsg (MSG_WAITFORONE) of up to nslots datagrams."""
    _raise_pending(sock)
    received: list[tuple[bytes, int, Any]] = []
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
    return received


def _segments(data: bytes, seg: int) -> Iterator[memoryview]:
    """The datagrams of one received buffer: GRO segments, or the buffer itself (an empty
    datagram is one datagram of length 0), as csrc/udpio.c splits them."""
    view = memoryview(data)
    length = len(view)
    step = seg or (length or 1)
    off = 0
    while True:
        dl = min(length - off, step)
        yield view[off : off + dl]
        off += dl
        if off >= length:
            break


def _recv(state: _OpenState, sock: socket.socket, max_datagrams: int,
          mode: SendMode | None, datagram_size: int | None,
          who: str) -> tuple[list[OpenResult], int, int]:
    """Receive and open one batch: (results, datagrams, dropped), as dtls_recv_open."""
    if not callable(getattr(state, "open_batch", None)):
        raise TypeError(f"{who} needs a CipherState (dtls._pyrecord or dtls._crecord)")
    max_datagrams, slot, _caps_now = _geometry(sock, max_datagrams, mode, datagram_size)
    # C sizes its result array so; a datagram that may not fit is dropped, not opened.
    res_cap = slot * max_datagrams // _HEADER_LEN + 2 * max_datagrams
    received = _receive(sock, slot, min(max_datagrams, _MMSG_CHUNK))

    results: list[OpenResult] = []
    datagrams = dropped = 0
    for data, seg, _addr in received:
        for dgram in _segments(data, seg):
            datagrams += 1
            if res_cap - len(results) < len(dgram) // _HEADER_LEN + 1:
                dropped += 1
            else:
                results.extend(state.open_batch(dgram))
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


# ---- addresses: dtls/_sockaddr.py (the same conversions as C's wrapper) -------------

_AF_UNIX = int(getattr(socket, "AF_UNIX", 1))


def _raw_of(family: int, addr: Any) -> bytes:
    """The raw sockaddr the kernel gave for an address recvmsg returned parsed: what C's
    recv_from stores (b"" where the kernel gave no address, e.g. an unbound AF_UNIX peer)."""
    if addr is None:
        return b""
    try:
        if family in (_AF_INET, _AF_INET6):
            return _sockaddr_of(family, addr)
        if family == _AF_UNIX:
            if isinstance(addr, str):  # a path: the kernel's length counts its NUL
                return _FAMILY.pack(_AF_UNIX) + (os.fsencode(addr) + b"\0" if addr else b"")
            return _FAMILY.pack(_AF_UNIX) + bytes(addr)  # abstract: exactly its bytes
    except (OSError, TypeError, ValueError, OverflowError):
        pass
    return b""


def _sockaddr_of(family: int, addr: Any) -> bytes:
    key = (family, addr)
    try:
        return _raws[key]
    except KeyError:
        raw = _pack_sockaddr(family, addr)
        if len(_raws) >= _ADDR_CACHE_MAX:
            _raws.clear()
        _raws[key] = raw
        return raw


def _sendto_address(family: int, raw: bytes) -> Any:
    """The address socket.sendto needs for a raw sockaddr; OSError(EAFNOSUPPORT) for one
    the socket's family cannot take (the kernel refuses it so, at send time)."""
    fam = _FAMILY.unpack_from(raw)[0]
    if fam == _AF_INET and family == _AF_INET and len(raw) >= 8:
        return (socket.inet_ntop(socket.AF_INET, raw[4:8]), int.from_bytes(raw[2:4], "big"))
    if fam == _AF_INET6 and family == _AF_INET6 and len(raw) >= 24:
        scope = int.from_bytes(raw[24:28], sys.byteorder) if len(raw) >= 28 else 0
        return (socket.inet_ntop(socket.AF_INET6, raw[8:24]), int.from_bytes(raw[2:4], "big"),
                int.from_bytes(raw[4:8], "big"), scope)
    if fam == _AF_UNIX and family == _AF_UNIX and len(raw) > 2:
        path = raw[2:]
        return path if path[0] == 0 else path.partition(b"\0")[0]
    raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))


# ---- sending to an address -------------------------------------------------------------------


@contextmanager
def _sending(sock: socket.socket, raw: bytes | None) -> Iterator[Callable[[memoryview], Any]]:
    """A send function for one batch with C's semantics: one send(2)/sendto(2) per record
    that blocks only if the fd does.  raw None: the connected peer; else that sockaddr."""
    if raw is None:
        yield _sender(sock)
        return
    try:
        dest = _sendto_address(int(sock.family), raw)
    except OSError as exc:
        err = exc

        def refuse(_record: memoryview) -> int:
            raise OSError(err.errno, err.strerror)
        yield refuse
        return
    timeout = sock.gettimeout()
    if timeout is None or timeout == 0:
        yield lambda record: sock.sendto(record, dest)
        return
    if os.name == "posix":
        # A timeout socket's fd is non-blocking, but socket.sendto would wait for the
        # timeout; a duplicate with timeout 0 shares the open file and sends at once.
        dup = socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
        try:
            dup.settimeout(0)
            yield lambda record: dup.sendto(record, dest)
        finally:
            dup.close()
        return

    def send_ready(record: memoryview) -> int:  # Windows: check readiness first
        if not _readable(sock, writing=True):
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        return sock.sendto(record, dest)
    yield send_ready


def _check_send_state(state: Any, who: str) -> None:
    if not callable(getattr(state, "seal_batch", None)) or not hasattr(state, "next_seq"):
        raise TypeError(f"{who} needs a CipherState (dtls._pyrecord or dtls._crecord)")


def _send_mode(sock: socket.socket, mode: SendMode | None) -> None:
    _fd(sock)
    udp_caps(sock)  # OSError for a socket that is not a datagram socket, as in C
    if mode is not None and SendMode(mode) is not SendMode.PLAIN:
        raise ValueError(f"send mode {SendMode(mode).name} is not supported on this socket "
                         "by the pure-Python UDP layer (PLAIN only)")


def seal_sendto(state: _SendState, sock: socket.socket, addr: tuple[Any, ...] | bytes,
                content_type: int, payloads: Sequence[Buffer],
                mode: SendMode | None = None) -> int:
    """seal_send for an UNCONNECTED socket: every record goes to `addr`.

    addr as dtls._cudpio.seal_sendto takes it: an address tuple for the socket's family
    (hostnames resolved; the conversion cached) or the raw sockaddr bytes
    DatagramBatch.raw_address gives.  Same return value and partial-send rule as
    seal_send; PLAIN only (one sendto per record).
    """
    raw = _sockaddr(sock, addr)  # first, as in C (the argument is converted before the call)
    _check_send_state(state, "seal_sendto")
    _send_mode(sock, mode)
    return _seal_and_send(state, sock, content_type, payloads, raw)


def _seal_and_send(state: _SendState, sock: socket.socket, content_type: int,
                   payloads: Sequence[Buffer], raw: bytes | None) -> int:
    n = len(payloads)
    if n == 0:
        return 0
    first = state.next_seq
    batch = state.seal_batch(content_type, payloads)  # all-or-nothing, checks everything
    sent = 0
    error: OSError | None = None
    try:
        with _sending(sock, raw) as send:
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


# ---- recv_from: raw datagrams with their sources ---------------------------------------------


class DatagramBatch:
    """The datagrams of one recv_from call, raw (nothing opened), as dtls._cudpio's.

    len(batch) datagrams, in arrival order (a GRO-coalesced buffer counts as its segments,
    each with the buffer's source).  batch.datagram(i) -> memoryview of datagram i;
    batch.address(i) -> its source (('127.0.0.1', 5000) or ('::1', 5000, flowinfo,
    scope_id); raw bytes for other families); batch.raw_address(i) -> the raw sockaddr
    bytes (a dict key; seal_sendto takes it).  Iteration yields (memoryview, address)
    pairs.  batch.dropped counts datagrams received but not stored (never, in practice).

    VALID UNTIL THE NEXT recv_from CALL ON THE SAME THREAD: as in C, the one batch object
    per thread is overwritten by the next call.  Copy what you keep.  (The twin does not
    reuse buffers, so memoryviews taken earlier keep their old data; C's point at newer
    data.  Code that honours the rule cannot tell the difference.)
    """

    __slots__ = ("_datas", "_raws", "dropped")

    def __init__(self) -> None:
        self._datas: list[memoryview] = []
        self._raws: list[bytes] = []
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._datas)

    def _index(self, i: int) -> int:
        n = len(self._datas)
        if 0 <= i < n:
            return i
        if -n <= i < 0:
            return i + n
        raise IndexError("datagram index out of range")

    def datagram(self, i: int) -> memoryview:
        return self._datas[self._index(i)]

    def raw_address(self, i: int) -> bytes:
        return self._raws[self._index(i)]

    def address(self, i: int) -> Any:
        return _addr_tuple(self._raws[self._index(i)])

    def __iter__(self) -> Iterator[tuple[memoryview, Any]]:
        for d, raw in zip(self._datas, self._raws):
            yield d, _addr_tuple(raw)

    def __repr__(self) -> str:
        return f"DatagramBatch({len(self._datas)} datagrams, dropped={self.dropped})"


_GRO_MAX_SEGMENTS = 64  # the kernel's UDP_GRO_CNT_MAX: segments per coalesced buffer


def _span_cap(max_datagrams: int, caps: UdpCaps) -> int:
    """C's datagram slots per call (its scratch never holds fewer than 256)."""
    return max(256, max_datagrams * (_GRO_MAX_SEGMENTS if caps & UdpCaps.GRO_ON else 1))


def _from_batch() -> DatagramBatch:
    try:
        return _local.from_  # type: ignore[no-any-return]
    except AttributeError:
        _local.from_ = b = DatagramBatch()
        return b


def recv_from(sock: socket.socket, max_datagrams: int = 32, mode: SendMode | None = None,
              datagram_size: int | None = None) -> DatagramBatch:
    """Receive up to max_datagrams datagrams with their source addresses, unopened, on any
    datagram socket (meant for an unconnected server socket with many peers).

    Blocking, modes, datagram_size and GRO splitting are as in recv_open (batches are
    emulated: one recvmsg per datagram); a datagram longer than the slot is cut to it.
    Returns the thread's DatagramBatch (empty when nothing was pending on a non-blocking
    socket), valid until the next recv_from on this thread.
    """
    max_datagrams, slot, caps = _geometry(sock, max_datagrams, mode, datagram_size)
    cap = _span_cap(max_datagrams, caps)
    received = _receive(sock, slot, min(max_datagrams, _MMSG_CHUNK))
    family = int(sock.family)
    datas: list[memoryview] = []
    raws: list[bytes] = []
    dropped = 0
    for data, seg, addr in received:
        raw = _raw_of(family, addr)
        for dgram in _segments(data, seg):
            if len(datas) == cap:
                dropped += 1
            else:
                datas.append(dgram)
                raws.append(raw)
    b = _from_batch()
    b._datas = datas
    b._raws = raws
    b.dropped = dropped
    return b


# ---- the lean one-record paths (connected sockets) -------------------------------------------

_ONE_CAP = 65535  # C's receive buffer: any datagram whole


def seal_send_one(state: _SendState, sock: socket.socket, content_type: int,
                  data: Buffer) -> int:
    """Seal `data` as one record and send it with one send() on a connected socket.

    Returns 1 when sent, 0 when the socket would block (EAGAIN/ENOBUFS; next_seq is put
    back, so retrying gives the same record).  Raises ValueError for a payload over 2^14
    bytes or a content_type outside 0..255, OSError for other send errors (next_seq put
    back), TypeError for something that is not a CipherState.  As dtls._cudpio's.
    """
    if not callable(getattr(state, "seal", None)) or not hasattr(state, "next_seq"):
        raise TypeError("seal_send_one needs a CipherState (dtls._pyrecord or dtls._crecord)")
    if type(content_type) is int and not 0 <= content_type <= 255:
        raise ValueError("content_type must be 0..255")
    if len(data) > MAX_PLAINTEXT:
        raise ValueError(f"payload longer than {MAX_PLAINTEXT} bytes")
    seq = state.next_seq
    record = state.seal(content_type, data)  # type: ignore[attr-defined]
    sent = False
    try:
        _sender(sock)(record)
        sent = True
    except OSError as exc:
        if exc.errno in _WOULD_BLOCK or isinstance(exc, TimeoutError):
            return 0
        raise
    finally:
        if not sent:  # never on the wire: the seq is free again
            state.next_seq = seq
    return 1


def recv_open_one(state: _OpenState,
                  sock: socket.socket) -> OpenResult | list[OpenResult] | None:
    """Receive one datagram (one recv()) on a connected socket and open it.

    Returns None when nothing is pending on a non-blocking socket; the OpenResult of the
    datagram's record when it holds exactly one (or is shorter than a record header);
    and, for any other datagram (several records, trailing bytes, a cut record, an empty
    datagram), the list state.open_batch(datagram) returns.  As dtls._cudpio's; do not
    use it with GRO enabled on the socket (use recv_open).
    """
    if not callable(getattr(state, "open", None)) or not callable(
            getattr(state, "open_batch", None)):
        raise TypeError("recv_open_one needs a CipherState (dtls._pyrecord or dtls._crecord)")
    _fd(sock)
    _raise_pending(sock)
    got = _recv_one(sock, _ONE_CAP, True)
    if got is None:
        return None
    data = got[0]
    n = len(data)
    if n == 0 or (n >= _HEADER_LEN and (data[11] << 8 | data[12]) != n - _HEADER_LEN):
        return state.open_batch(data)
    return state.open(data)  # type: ignore[attr-defined,no-any-return]


# ---- relays: reprotect and relay -------------------------------------------------------------


class Reprotected:
    """The records of one reprotect (or relay) call, sealed with the out state; interface
    and meaning as dtls._cudpio.Reprotected.

    len(r) records; r.record(i) -> memoryview of record i; iteration gives them in order;
    r.records -> memoryview of all of them back to back and r.lengths -> memoryview
    (format 'I') of their lengths.  r.refused maps each refusing OpenStatus to how many
    application-data records it refused (empty dict when none; MALFORMED also counts
    datagrams whose framing broke; BAD_EPOCH records are counted and also listed in
    others).  r.others lists, as bytes copies, the records the caller must handle itself,
    unopened: records of other content types and application data of another epoch.
    relay sets r.datagrams, r.dropped, r.sent (records sent: the first r.sent) and r.error
    (the errno that stopped sending, 0 if none); reprotect sets datagrams to the datagrams
    given and sent to 0.

    VALID UNTIL THE NEXT reprotect OR relay CALL ON THE SAME THREAD (one object per
    thread, as in C).
    """

    __slots__ = ("_lens", "_n", "_offs", "_out", "datagrams", "dropped", "error", "others",
                 "refused", "sent")

    def __init__(self) -> None:
        self._out = memoryview(b"")
        self._lens = memoryview(array("I"))
        self._offs: list[int] | None = None
        self._n = self.datagrams = self.dropped = self.sent = self.error = 0
        self.refused: dict[OpenStatus, int] = _NO_REFUSALS
        self.others: list[bytes] = []

    def __len__(self) -> int:
        return self._n

    @property
    def lengths(self) -> memoryview:
        return self._lens[0 : self._n]

    @property
    def records(self) -> memoryview:
        return self._out[0 : sum(self._lens[0 : self._n])]

    def _offsets(self) -> list[int]:
        if self._offs is None:
            offs, o = [], 0
            for n in self._lens[0 : self._n]:
                offs.append(o)
                o += n
            self._offs = offs
        return self._offs

    def record(self, i: int) -> memoryview:
        if not 0 <= i < self._n:
            if -self._n <= i < 0:
                i += self._n
            else:
                raise IndexError("record index out of range")
        o = self._offsets()[i]
        return self._out[o : o + self._lens[i]]

    def __iter__(self) -> Iterator[memoryview]:
        out, o = self._out, 0
        for n in self._lens[0 : self._n]:
            yield out[o : o + n]
            o += n

    def __repr__(self) -> str:
        refused = {k.name: v for k, v in self.refused.items()}
        return (f"Reprotected({self._n} records, datagrams={self.datagrams}, sent={self.sent}, "
                f"refused={refused}, others={len(self.others)})")


def _reprotected() -> Reprotected:
    try:
        return _local.relay  # type: ignore[no-any-return]
    except AttributeError:
        _local.relay = r = Reprotected()
        return r


def _frame(view: memoryview, off: int, end: int) -> int:
    """The length of the whole record at view[off:end], or 0 if none frames (csrc frame())."""
    left = end - off
    if left < _HEADER_LEN:
        return 0
    flen = view[off + 11] << 8 | view[off + 12]
    if flen > left - _HEADER_LEN or flen > MAX_FRAGMENT:
        return 0
    return _HEADER_LEN + flen


def _check_relay_states(in_state: Any, out_state: Any, who: str) -> None:
    for s in (in_state, out_state):
        if not callable(getattr(s, "open", None)) or not callable(getattr(s, "seal", None)) \
                or not hasattr(s, "next_seq"):
            raise TypeError(f"{who} needs CipherStates (dtls._pyrecord or dtls._crecord)")


def _check_type(content_type: Any) -> None:
    if not 0 <= content_type <= 255:
        raise ValueError("content_type must be 0..255")


def _reprotect(in_state: Any, out_state: Any, content_type: int, view: memoryview,
               spans: Sequence[tuple[int, int]]) -> Reprotected:
    """dtls_reprotect: frame, check the out seqs (all or nothing), open, seal."""
    napp = 0
    for pos, dlen in spans:  # pass 1 changes nothing
        off, end = pos, pos + dlen
        while (rl := _frame(view, off, end)) != 0:
            if view[off] == content_type:
                napp += 1
            off += rl
    nxt = out_state.next_seq
    if napp and (nxt > MAX_SEQ or MAX_SEQ - nxt < napp - 1):
        raise SequenceExhausted("sequence numbers of this epoch are exhausted; rekey")
    records: list[bytes] = []
    counts: dict[OpenStatus, int] = {}
    others: list[bytes] = []
    for pos, dlen in spans:
        off, end = pos, pos + dlen
        while off < end:
            rl = _frame(view, off, end)
            if rl == 0:  # nothing after a bad length can be framed, as open_batch
                counts[OpenStatus.MALFORMED] = counts.get(OpenStatus.MALFORMED, 0) + 1
                break
            rec = view[off : off + rl]
            off += rl
            if rec[0] != content_type:  # other content types go to the caller unopened
                others.append(rec.tobytes())
                continue
            r = in_state.open(rec)
            st = r.status
            if st == _OK:
                records.append(out_state.seal(content_type, r.payload))
                continue
            counts[st] = counts.get(st, 0) + 1
            if st == _BAD_EPOCH:
                others.append(rec.tobytes())
    v = _reprotected()
    v._out = memoryview(b"".join(records))
    v._lens = memoryview(array("I", [len(r) for r in records]))
    v._n = len(records)
    v._offs = None
    v.refused = {st: counts[st] for st in sorted(counts)} if counts else _NO_REFUSALS
    v.others = others
    return v


def reprotect(in_state: Any, out_state: Any, data: Buffer,
              lengths: Sequence[int] | None = None,
              content_type: int = _APPLICATION_DATA) -> Reprotected:
    """Open the records of `data` with in_state and seal their payloads with out_state, as
    dtls._cudpio.reprotect does (byte-identical records, the same refusal counts and
    others).  data holds one datagram, or several back to back with their lengths in
    `lengths`.  Returns the thread's Reprotected view, valid until the next reprotect or
    relay call on this thread.  Raises SequenceExhausted, with nothing changed, if
    out_state lacks the sequence numbers for every application-data record framed.
    """
    _check_relay_states(in_state, out_state, "reprotect")
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    total = len(view)
    if lengths is None:
        spans = [(0, total)]
    else:
        lens = list(lengths)
        if any(n < 0 for n in lens) or sum(lens) != total:
            raise ValueError("datagram lengths must be >= 0 and add up to len(data)")
        spans, o = [], 0
        for n in lens:
            spans.append((o, n))
            o += n
    _check_type(content_type)
    v = _reprotect(in_state, out_state, content_type, view, spans)
    v.datagrams = len(spans)
    v.dropped = v.sent = v.error = 0
    return v


def relay(in_state: Any, in_sock: socket.socket, out_state: Any, out_sock: socket.socket,
          addr: tuple[Any, ...] | bytes | None = None, max_datagrams: int = 32,
          recv_mode: SendMode | None = None, send_mode: SendMode | None = None,
          datagram_size: int | None = None,
          content_type: int = _APPLICATION_DATA) -> Reprotected:
    """One relay step, as dtls._cudpio.relay: receive a batch on in_sock (as recv_from),
    reprotect it (as reprotect) and send every record on out_sock, one per datagram
    (PLAIN only), to addr or, if addr is None, on the connected out_sock.

    Returns the thread's Reprotected view: len() records sealed, .sent of them sent (the
    first ones), .error the errno that stopped sending (0 if all went), plus .datagrams,
    .dropped, .refused and .others.  out_state.next_seq is NOT rewound for unsent records
    (they stay valid in the view).  An empty view with datagrams == 0 means nothing was
    pending on a non-blocking in_sock.
    """
    _check_relay_states(in_state, out_state, "relay")
    max_datagrams, slot, caps = _geometry(in_sock, max_datagrams, recv_mode, datagram_size)
    _send_mode(out_sock, send_mode)
    raw = None if addr is None else _sockaddr(out_sock, addr)
    _check_type(content_type)
    cap = _span_cap(max_datagrams, caps)
    received = _receive(in_sock, slot, min(max_datagrams, _MMSG_CHUNK))
    parts: list[memoryview] = []
    dropped = 0
    for data, seg, _addr in received:
        for dgram in _segments(data, seg):
            if len(parts) == cap:
                dropped += 1
            else:
                parts.append(dgram)
    spans, o = [], 0
    for p in parts:
        spans.append((o, len(p)))
        o += len(p)
    v = _reprotect(in_state, out_state, content_type, memoryview(b"".join(parts)), spans)
    v.datagrams = len(parts)
    v.dropped = dropped
    sent = err = 0
    with _sending(out_sock, raw) as send:
        for rec in v:
            try:
                send(rec)
            except OSError as exc:
                err = exc.errno or errno.EIO
                break
            sent += 1
    v.sent = sent
    v.error = err
    return v
