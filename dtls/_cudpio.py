"""Batched UDP I/O in C (csrc/udpio.c): seal a batch and send it, receive a batch and open it.

One Python->C crossing per batch.  Sending uses UDP GSO where the kernel has it (runs of
equal-size records per sendmsg), else sendmmsg, else one send per record; receiving uses
recvmmsg and splits UDP GRO-coalesced buffers.  Capabilities are detected per socket at run
time and cached here per socket object (the C side keeps no state).

recv_payloads is the receive path with no Python object per record: it returns a reused
per-thread PayloadView over the scratch plaintexts, valid until the next receive call on the
same thread.

Like dtls._crecord (the only other module that touches `lib`): flat buffers and ints cross
the boundary, outputs land in per-thread scratch space (cffi releases the GIL during calls),
and a CipherState must not be used by two threads at once.  Only the C CipherState works
here; the pure-Python record layer has no socket fast path.

Blocking follows the fd: a Python socket with a timeout is non-blocking at the fd level, so
for it these calls behave as on a non-blocking socket (wait with select/poll before them).

Servers with many peers on one UNCONNECTED socket use recv_from (raw datagrams with their
source addresses, no Python object per datagram; demultiplex by address, then open per
session) and seal_sendto.  Relays use reprotect (open with one state, seal with another, the
plaintext never becomes a Python object) or relay (receive + reprotect + send in one C call).
seal_send_one / recv_open_one are the lean one-record-per-call paths.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import weakref
from array import array
from collections.abc import Callable, Iterator, Sequence
from enum import IntEnum, IntFlag
from typing import Any

from ._crecord import _BAD_EPOCH, _RESULT, _STATUS, Buffer, CipherState, _new_result, _raise
from ._record import ffi, lib
from ._sockaddr import (  # shared with the twin
    _ADDR_SIZE,
    _addr_tuple,
    _sockaddr,
)
from .recordbase import MAX_FRAGMENT, OpenResult, OpenStatus

__all__ = ["DatagramBatch", "PayloadView", "RecvBatch", "Reprotected", "SendMode", "UdpCaps",
           "best_send_mode", "recv_from", "recv_open", "recv_open_one", "recv_payloads",
           "relay", "reprotect", "seal_send", "seal_send_one", "seal_sendto", "set_gro",
           "udp_caps"]


class UdpCaps(IntFlag):
    """What a UDP socket's kernel offers (csrc/udpio.h DTLS_UDP_CAP_*)."""

    NONE = 0
    GSO = lib.DTLS_UDP_CAP_GSO            # UDP_SEGMENT, Linux >= 4.18
    GRO = lib.DTLS_UDP_CAP_GRO            # UDP_GRO can be enabled, Linux >= 5.0
    SENDMMSG = lib.DTLS_UDP_CAP_SENDMMSG
    RECVMMSG = lib.DTLS_UDP_CAP_RECVMMSG
    GRO_ON = lib.DTLS_UDP_CAP_GRO_ON      # UDP_GRO is enabled on this socket


class SendMode(IntEnum):
    PLAIN = lib.DTLS_UDP_PLAIN  # one send (or recv) per datagram
    MMSG = lib.DTLS_UDP_MMSG    # sendmmsg / recvmmsg
    GSO = lib.DTLS_UDP_GSO      # sending only: UDP_SEGMENT runs of equal-size records


_SEND_NEEDS = {SendMode.PLAIN: UdpCaps.NONE, SendMode.MMSG: UdpCaps.SENDMMSG,
               SendMode.GSO: UdpCaps.GSO}
_OS_BASE = lib.DTLS_ERR_OS_BASE
_WOULD_BLOCK = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS})
_RECORD_SLOT = MAX_FRAGMENT + lib.DTLS_HEADER_LEN  # the largest record a datagram can carry
_GRO_SLOT = 65535                                  # a coalesced GRO buffer is up to this
_CapsEntry = tuple[int, UdpCaps, SendMode, SendMode, int]
_caps: weakref.WeakKeyDictionary[socket.socket, _CapsEntry] = weakref.WeakKeyDictionary()
_local = threading.local()


class _Scratch:
    """Per-thread buffers, grown on demand and kept: no allocation per batch once warm."""

    __slots__ = (
        "dropped",
        "in_buf",
        "in_cap",
        "in_view",
        "lens",
        "lens_cap",
        "ndgrams",
        "out",
        "out_cap",
        "out_lens",
        "out_view",
        "res",
        "res_cap",
    )

    def __init__(self) -> None:
        self.out_cap = self.in_cap = self.lens_cap = self.res_cap = 0
        self.out = self.in_buf = self.lens = self.out_lens = self.res = ffi.NULL
        self.out_view = self.in_view = memoryview(b"")
        self.ndgrams = ffi.new("uint32_t *")
        self.dropped = ffi.new("uint32_t *")

    def out_space(self, cap: int):  # type: ignore[no-untyped-def]
        if cap > self.out_cap:
            self.out_cap = max(cap, 2 * self.out_cap, 1 << 16)
            self.out = ffi.new("uint8_t[]", self.out_cap)
            self.out_view = memoryview(ffi.buffer(self.out))
        return self.out

    def in_space(self, cap: int):  # type: ignore[no-untyped-def]
        if cap > self.in_cap:
            self.in_cap = max(cap, 2 * self.in_cap, 1 << 16)
            self.in_buf = ffi.new("uint8_t[]", self.in_cap)
            self.in_view = memoryview(ffi.buffer(self.in_buf))
        return self.in_buf

    def len_arrays(self, n: int) -> None:
        if n > self.lens_cap:
            self.lens_cap = max(n, 2 * self.lens_cap, 256)
            self.lens = ffi.new("uint32_t[]", self.lens_cap)
            self.out_lens = ffi.new("uint32_t[]", self.lens_cap)

    def results(self, cap: int):  # type: ignore[no-untyped-def]
        if cap > self.res_cap:
            self.res_cap = max(cap, 2 * self.res_cap, 256)
            self.res = ffi.new("dtls_open_result[]", self.res_cap)
        return self.res


def _scratch() -> _Scratch:
    try:
        return _local.scratch  # type: ignore[no-any-return]
    except AttributeError:
        _local.scratch = s = _Scratch()
        return s


def _fd(sock: socket.socket) -> int:
    fd = sock.fileno()
    if fd < 0:
        raise OSError(errno.EBADF, "socket is closed")
    return fd


def _os_error(code: int) -> OSError:
    e = _OS_BASE - code
    return OSError(e, os.strerror(e))


def udp_caps(sock: socket.socket) -> UdpCaps:
    """The socket's batched-I/O capabilities, detected once per socket object and fd."""
    fd = _fd(sock)
    hit = _caps.get(sock)
    if hit is not None and hit[0] == fd:
        return hit[1]
    return _detect(sock, fd)[1]


def _detect(sock: socket.socket, fd: int) -> _CapsEntry:
    """Detect and cache sock's caps with the defaults derived from them (plain values: the
    IntFlag arithmetic costs a microsecond, too much per batch)."""
    r = lib.dtls_udp_caps(fd)
    if r < 0:
        raise _os_error(r)
    caps = UdpCaps(r)
    recv_mode = SendMode.MMSG if r & lib.DTLS_UDP_CAP_RECVMMSG else SendMode.PLAIN
    slot = _GRO_SLOT if r & lib.DTLS_UDP_CAP_GRO_ON else _RECORD_SLOT
    entry = (fd, caps, best_send_mode(caps), recv_mode, slot)
    _caps[sock] = entry
    return entry


def _cached(sock: socket.socket) -> _CapsEntry:
    """sock's cache entry: (fd, caps, best send mode, default receive mode, default slot)."""
    fd = _fd(sock)
    hit = _caps.get(sock)
    if hit is not None and hit[0] == fd:
        return hit
    return _detect(sock, fd)


def set_gro(sock: socket.socket, on: bool = True) -> None:
    """Enable (or disable) UDP GRO on a receiving socket; OSError where the kernel lacks it."""
    r = lib.dtls_udp_set_gro(_fd(sock), 1 if on else 0)
    if r < 0:
        raise _os_error(r)
    _caps.pop(sock, None)  # GRO_ON changed


def best_send_mode(caps: UdpCaps) -> SendMode:
    if caps & UdpCaps.GSO:
        return SendMode.GSO
    if caps & UdpCaps.SENDMMSG:
        return SendMode.MMSG
    return SendMode.PLAIN


def seal_send(state: CipherState, sock: socket.socket, content_type: int,
              payloads: Sequence[Buffer], mode: SendMode | None = None) -> int:
    """Seal `payloads` as records (one per datagram) and send them on a connected socket.

    Returns how many went out.  Fewer than len(payloads) means the socket would block
    (EAGAIN/ENOBUFS) or failed after some were sent; state.next_seq then follows the last
    record sent, so retrying payloads[sent:] yields the records a full send would have.
    Raises OSError if nothing could be sent for another reason.
    """
    return _seal_send(state, sock, content_type, payloads, mode, None, "seal_send")


def seal_sendto(state: CipherState, sock: socket.socket, addr: tuple[Any, ...] | bytes,
                content_type: int, payloads: Sequence[Buffer],
                mode: SendMode | None = None) -> int:
    """seal_send for an UNCONNECTED socket: every record goes to `addr`.

    addr is an address as socket.sendto takes it for the socket's family ((host, port) for
    AF_INET; (host, port[, flowinfo[, scope_id]]) for AF_INET6; hostnames are resolved, and
    the conversion is cached), or the raw sockaddr bytes DatagramBatch.raw_address gives.
    Same modes (GSO works unconnected), return value and partial-send rule as seal_send.
    """
    return _seal_send(state, sock, content_type, payloads, mode, _sockaddr(sock, addr),
                      "seal_sendto")


def _seal_send(state: CipherState, sock: socket.socket, content_type: int,
               payloads: Sequence[Buffer], mode: SendMode | None, addr: bytes | None,
               who: str) -> int:
    if type(state) is not CipherState:
        raise TypeError(f"{who} needs the C record layer's CipherState")
    fd = _fd(sock)
    mode = _send_mode(sock, mode)
    n = len(payloads)
    if n == 0:
        return 0
    s = _scratch()
    try:
        lens = array("I", map(len, payloads))  # one C loop, not a cffi store per payload
    except OverflowError:
        raise ValueError("payloads must be at most 2^14 bytes") from None
    data = b"".join(payloads)
    cap = len(data) + n * lib.DTLS_MAX_OVERHEAD
    out = s.out_space(cap)
    if n > s.lens_cap:
        s.len_arrays(n)
    c_lens = ffi.from_buffer("uint32_t[]", lens)
    while True:
        try:
            if addr is None:
                r = lib.dtls_seal_send(state._st, fd, content_type, data, c_lens, n,
                                       mode, out, cap, s.out_lens)
            else:
                r = lib.dtls_seal_sendto(state._st, fd, content_type, data, c_lens, n,
                                         mode, out, cap, s.out_lens, addr, len(addr))
        except OverflowError:
            raise ValueError("content_type must be 0..255") from None
        if r >= 0:
            return int(r)
        if r > _OS_BASE:
            _raise(r)
        e = _OS_BASE - r
        if e in _WOULD_BLOCK:
            return 0
        if e != errno.EINTR:  # PEP 475: retry after a signal, as socket.send does
            raise _os_error(r)


def _send_mode(sock: socket.socket, mode: SendMode | None) -> SendMode:
    if mode is None:
        return _cached(sock)[2]
    caps = udp_caps(sock)
    if caps & _SEND_NEEDS[mode] != _SEND_NEEDS[mode]:
        # Checked here, not left to the kernel: an AF_UNIX socket, say, would ignore the
        # UDP_SEGMENT cmsg and send one datagram holding the whole run.
        raise ValueError(f"send mode {mode.name} is not supported on this socket")
    return mode


class RecvBatch:
    """The records of one receive call: iterate for OpenResults (payloads are views into
    one bytes object per batch), plus how many datagrams came and how many were dropped
    unopened for lack of result space."""

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


def _recv(state: CipherState, sock: socket.socket, max_datagrams: int,
          mode: SendMode | None, datagram_size: int | None, who: str) -> tuple[_Scratch, int]:
    """Receive and open one batch into the thread's scratch: (scratch, number of results)."""
    if type(state) is not CipherState:
        raise TypeError(f"{who} needs the C record layer's CipherState")
    fd, mode, slot, _ = _recv_geometry(sock, max_datagrams, mode, datagram_size)
    if mode == SendMode.PLAIN:
        max_datagrams = 1
    cap = slot * max_datagrams
    s = _scratch()
    buf = s.in_space(cap)
    out = s.out_space(cap)
    res_cap = cap // lib.DTLS_HEADER_LEN + 2 * max_datagrams
    res = s.results(res_cap)
    while True:
        n = lib.dtls_recv_open(state._st, fd, mode, buf, cap, slot, max_datagrams, out,
                               s.out_cap, res, res_cap, s.ndgrams, s.dropped)
        if n >= 0:
            return s, int(n)
        if n > _OS_BASE:
            _raise(n)
        if _OS_BASE - n != errno.EINTR:
            raise _os_error(n)


def _recv_geometry(sock: socket.socket, max_datagrams: int, mode: SendMode | None,
                   datagram_size: int | None) -> tuple[int, SendMode, int, UdpCaps]:
    """Check receive arguments: (fd, receive mode, slot bytes per datagram, caps)."""
    if not 1 <= max_datagrams <= 1024:
        raise ValueError("max_datagrams must be 1..1024")
    if mode is None and datagram_size is None:  # the common case, from the cache
        fd, caps, _, rmode, slot = _cached(sock)
        return fd, rmode, slot, caps
    fd = _fd(sock)
    caps = udp_caps(sock)
    if mode is None:
        mode = SendMode.MMSG if caps & UdpCaps.RECVMMSG else SendMode.PLAIN
    if mode == SendMode.GSO:
        raise ValueError("GSO is a sending mode; receive with MMSG or PLAIN")
    if mode == SendMode.MMSG and not caps & UdpCaps.RECVMMSG:
        raise ValueError("recvmmsg is not supported on this socket")
    slot = datagram_size or (_GRO_SLOT if caps & UdpCaps.GRO_ON else _RECORD_SLOT)
    if not 1 <= slot <= 65535:
        raise ValueError("datagram_size must be 1..65535")
    return fd, mode, slot, caps


def recv_open(state: CipherState, sock: socket.socket, max_datagrams: int = 32,
              mode: SendMode | None = None, datagram_size: int | None = None) -> RecvBatch:
    """Receive up to max_datagrams datagrams and open every record in them.

    Blocks only as the socket does, and only for the first datagram; on a non-blocking
    socket with nothing pending it returns an empty batch.  datagram_size is the receive
    slot per datagram: by default a maximal record, or 65535 when GRO is on (a smaller
    slot truncates: its cut records come back MALFORMED).
    """
    s, n = _recv(state, sock, max_datagrams, mode, datagram_size, "recv_open")
    return RecvBatch(_results(s, n, None), int(s.ndgrams[0]), int(s.dropped[0]))


def _results(s: _Scratch, n: int, only: Sequence[int] | None) -> list[OpenResult]:
    """OpenResults for the first n results in the scratch array (or just those in `only`).
    OK payloads are views into one bytes copy of the plaintexts they need."""
    rows = list(_RESULT.iter_unpack(ffi.buffer(s.res, n * _RESULT.size)))
    if only is not None:
        rows = [rows[i] for i in only]
    end = 0
    for row in rows:
        if row[0] == 0:
            end = max(end, row[4] + row[5])
    plain = memoryview(s.out_view[0:end].tobytes())  # one copy; scratch is reused
    raw = s.in_view
    results: list[OpenResult] = []
    append = results.append
    for st, epoch, ctype, seq, off, length in rows:
        if st == 0:
            payload: bytes | memoryview = plain[off : off + length]
        elif st == _BAD_EPOCH:
            payload = raw[off : off + length].tobytes()
        else:
            payload = b""
        append(_new_result(OpenResult, (_STATUS[st], ctype, epoch, seq, payload)))
    return results


_APPLICATION_DATA = 23
_NO_REFUSALS: dict[OpenStatus, int] = {}


class PayloadView:
    """The accepted application-data payloads of one recv_payloads call, with no Python
    object per record: the plaintexts stay in the thread's scratch buffer and a C-written
    array of (offset, length) spans locates them.

    len(view) is the number of accepted (status OK) records of content type 23;
    view.payload(i) and iteration give memoryviews of their plaintexts, in arrival order.
    view.refused maps each refusing OpenStatus to how many records it refused (an empty
    dict when none were; BAD_EPOCH records are counted there too); view.others lists as OpenResults (payloads copied) the records
    that are neither, which a connection must still see: accepted records of other content
    types (alerts, handshake) and BAD_EPOCH records (raw, for the next epoch).
    view.datagrams and view.dropped are as in RecvBatch.

    VALID UNTIL THE NEXT RECEIVE CALL ON THE SAME THREAD: the view object, its spans and
    the buffer its memoryviews point into are per-thread scratch, reused (and overwritten)
    by the next recv_payloads or recv_open there.  Copy what you keep (bytes(view.payload(i))).
    Stale memoryviews never point at freed memory, only at newer data.
    """

    __slots__ = ("_buf", "_n", "_spans", "datagrams", "dropped", "others", "refused")

    def __init__(self) -> None:
        self._buf = memoryview(b"")
        self._spans = memoryview(b"").cast("I")
        self._n = 0
        self.datagrams = self.dropped = 0
        self.others: list[OpenResult] = []
        self.refused: dict[OpenStatus, int] = _NO_REFUSALS

    def __len__(self) -> int:
        return self._n

    def payload(self, i: int) -> memoryview:
        if not 0 <= i < self._n:
            if -self._n <= i < 0:
                i += self._n
            else:
                raise IndexError("payload index out of range")
        sp = self._spans
        off = sp[2 * i]
        return self._buf[off : off + sp[2 * i + 1]]

    def __iter__(self) -> Iterator[memoryview]:
        buf, sp = self._buf, self._spans
        for j in range(0, 2 * self._n, 2):
            off = sp[j]
            yield buf[off : off + sp[j + 1]]

    def _copies(self, limit: int | None = None) -> list[bytes]:
        """bytes copies of the first `limit` payloads (all by default), in order: what
        outlives the view.  Cheaper than [bytes(p) for p in view]."""
        n = self._n if limit is None else max(0, min(limit, self._n))
        buf = self._buf
        it = iter(self._spans[0 : 2 * n].tolist())
        return [buf[off : off + size].tobytes() for off, size in zip(it, it)]

    def __repr__(self) -> str:
        refused = {k.name: v for k, v in self.refused.items()}
        return (f"PayloadView({self._n} payloads, datagrams={self.datagrams}, "
                f"dropped={self.dropped}, refused={refused}, others={len(self.others)})")


class _ViewScratch:
    __slots__ = ("cap", "counts", "nothers", "others", "spans", "spans_view", "view")

    def __init__(self) -> None:
        self.cap = 0
        self.spans = self.others = ffi.NULL
        self.spans_view = memoryview(b"").cast("I")
        self.counts = ffi.new("uint32_t[]", lib.DTLS_STATUS_SLOTS)
        self.nothers = ffi.new("uint32_t *")
        self.view = PayloadView()

    def space(self, n: int) -> None:
        if n > self.cap:
            self.cap = max(n, 2 * self.cap, 256)
            self.spans = ffi.new("uint32_t[]", 2 * self.cap)
            self.others = ffi.new("uint32_t[]", self.cap)
            self.spans_view = memoryview(ffi.buffer(self.spans)).cast("I")


def _view_scratch() -> _ViewScratch:
    try:
        return _local.views  # type: ignore[no-any-return]
    except AttributeError:
        _local.views = v = _ViewScratch()
        return v


_COUNTS_SIZE = 4 * lib.DTLS_STATUS_SLOTS
_ZERO_COUNTS = bytes(_COUNTS_SIZE)


def recv_payloads(state: CipherState, sock: socket.socket, max_datagrams: int = 32,
                  mode: SendMode | None = None,
                  datagram_size: int | None = None) -> PayloadView:
    """recv_open without a Python object per record: returns the thread's PayloadView.

    Receives and opens exactly as recv_open does (same arguments, same blocking); one C
    call then compacts the results, so the Python work per batch does not grow with the
    records in it.  The view is valid until the next receive call on this thread (see
    PayloadView); an empty view means nothing was pending on a non-blocking socket.
    """
    s, n = _recv(state, sock, max_datagrams, mode, datagram_size, "recv_payloads")
    return _payload_view(s, n)


def payload_receiver(state: CipherState, sock: socket.socket,
                     max_datagrams: int = 32) -> Callable[[], PayloadView]:
    """recv_payloads(state, sock, max_datagrams) with the default mode and slot, the
    arguments checked and the geometry worked out once, now: receive() -> the thread's
    PayloadView, exactly as recv_payloads gives it.  For a socket that receives many
    batches; make a new one after set_gro (the slot follows GRO)."""
    if type(state) is not CipherState:
        raise TypeError("payload_receiver needs the C record layer's CipherState")
    fd, mode, slot, _ = _recv_geometry(sock, max_datagrams, None, None)
    if mode == SendMode.PLAIN:
        max_datagrams = 1
    cap = slot * max_datagrams
    res_cap = cap // lib.DTLS_HEADER_LEN + 2 * max_datagrams
    st, recv_open = state._st, lib.dtls_recv_open

    def receive() -> PayloadView:
        if sock.fileno() != fd:
            raise OSError(errno.EBADF, "socket is closed")
        try:
            s = _local.scratch
        except AttributeError:
            s = _scratch()
        if s.in_cap < cap or s.out_cap < cap or s.res_cap < res_cap:
            s.in_space(cap)
            s.out_space(cap)
            s.results(res_cap)
        while True:
            n = recv_open(st, fd, mode, s.in_buf, cap, slot, max_datagrams, s.out, s.out_cap,
                          s.res, res_cap, s.ndgrams, s.dropped)
            if n >= 0:
                return _payload_view(s, n)
            if n > _OS_BASE:
                _raise(n)
            if _OS_BASE - n != errno.EINTR:
                raise _os_error(n)

    return receive


def _payload_view(s: _Scratch, n: int) -> PayloadView:
    """The thread's PayloadView over the n results of a receive in scratch s."""
    if n == 0:  # nothing pending (or only empty datagrams): no records to compact
        view = _view_scratch().view
        view._n = 0
        view.datagrams = int(s.ndgrams[0])
        view.dropped = int(s.dropped[0])
        view.refused = _NO_REFUSALS
        view.others = []
        return view
    v = _view_scratch()
    v.space(n)
    counts = v.counts
    ffi.memmove(counts, _ZERO_COUNTS, _COUNTS_SIZE)
    k = lib.dtls_compact_results(s.res, n, _APPLICATION_DATA, v.spans, counts, v.others,
                                 v.nothers)
    view = v.view
    view._buf = s.out_view
    view._spans = v.spans_view
    view._n = int(k)
    view.datagrams = int(s.ndgrams[0])
    view.dropped = int(s.dropped[0])
    if k == n:  # the common case: everything accepted application data
        view.refused = _NO_REFUSALS
        view.others = []
    else:
        view.refused = {_STATUS[st]: int(counts[st]) for st in range(1, len(_STATUS))
                        if counts[st]}
        m = int(v.nothers[0])
        view.others = _results(s, n, list(v.others[0:m])) if m else []
    return view


# ---- addresses: dtls/_sockaddr.py --------------------------------------------------------

# ---- recv_from: raw datagrams with their sources, for unconnected sockets --------------------


def _grow(ctype: str, n: int, have: int) -> tuple[Any, int]:
    n = max(n, 2 * have, 256)
    return ffi.new(ctype, n), n


class DatagramBatch:
    """The datagrams of one recv_from call, raw (nothing opened), with no Python object per
    datagram until asked: the bytes stay in the thread's scratch buffer and C-written arrays
    locate them and hold each source address.

    len(batch) datagrams, in arrival order (a GRO-coalesced buffer counts as its segments,
    each with the buffer's source).  batch.datagram(i) -> memoryview of datagram i;
    batch.address(i) -> its source as socket.recvfrom gives it (('127.0.0.1', 5000) or
    ('::1', 5000, flowinfo, scope_id)); batch.raw_address(i) -> the raw sockaddr bytes (a
    cheap dict key; seal_sendto takes it as the destination).  Iteration yields
    (memoryview, address) pairs.  batch.dropped counts datagrams received but not stored
    (never, with the default slot counts).

    VALID UNTIL THE NEXT recv_from CALL ON THE SAME THREAD: the batch object and the buffer
    its memoryviews point into are per-thread scratch, overwritten by the next call.  Copy
    what you keep (bytes(batch.datagram(i))).  Stale memoryviews never point at freed
    memory, only at newer data.
    """

    __slots__ = ("_addrs", "_alens", "_buf", "_n", "_spans", "dropped")

    def __init__(self) -> None:
        self._buf = self._addrs = memoryview(b"")
        self._spans = self._alens = memoryview(b"").cast("I")
        self._n = self.dropped = 0

    def __len__(self) -> int:
        return self._n

    def _index(self, i: int) -> int:
        if 0 <= i < self._n:
            return i
        if -self._n <= i < 0:
            return i + self._n
        raise IndexError("datagram index out of range")

    def datagram(self, i: int) -> memoryview:
        i = self._index(i)
        sp = self._spans
        off = sp[2 * i]
        return self._buf[off : off + sp[2 * i + 1]]

    def raw_address(self, i: int) -> bytes:
        i = self._index(i)
        o = i * _ADDR_SIZE
        return self._addrs[o : o + self._alens[i]].tobytes()

    def address(self, i: int) -> Any:
        return _addr_tuple(self.raw_address(i))

    def __iter__(self) -> Iterator[tuple[memoryview, Any]]:
        buf, sp, addrs, alens = self._buf, self._spans, self._addrs, self._alens
        for i in range(self._n):
            off = sp[2 * i]
            o = i * _ADDR_SIZE
            yield (buf[off : off + sp[2 * i + 1]],
                   _addr_tuple(addrs[o : o + alens[i]].tobytes()))

    def __repr__(self) -> str:
        return f"DatagramBatch({self._n} datagrams, dropped={self.dropped})"


class _FromScratch:
    __slots__ = ("addrs", "alens", "batch", "buf", "cap", "dg_cap", "dropped", "spans")

    def __init__(self) -> None:
        self.cap = self.dg_cap = 0
        self.buf = self.spans = self.addrs = self.alens = ffi.NULL
        self.dropped = ffi.new("uint32_t *")
        self.batch = DatagramBatch()

    def space(self, cap: int, dg_cap: int) -> None:
        b = self.batch
        if cap > self.cap:
            self.buf, self.cap = _grow("uint8_t[]", cap, self.cap)
            b._buf = memoryview(ffi.buffer(self.buf))
        if dg_cap > self.dg_cap:
            self.alens, self.dg_cap = _grow("uint32_t[]", dg_cap, self.dg_cap)
            self.spans = ffi.new("uint32_t[]", 2 * self.dg_cap)
            self.addrs = ffi.new("uint8_t[]", _ADDR_SIZE * self.dg_cap)
            b._spans = memoryview(ffi.buffer(self.spans)).cast("I")
            b._alens = memoryview(ffi.buffer(self.alens)).cast("I")
            b._addrs = memoryview(ffi.buffer(self.addrs))


def _from_scratch() -> _FromScratch:
    try:
        return _local.from_  # type: ignore[no-any-return]
    except AttributeError:
        _local.from_ = f = _FromScratch()
        return f


_GRO_MAX_SEGMENTS = 64  # the kernel's UDP_GRO_CNT_MAX: segments per coalesced buffer


def recv_from(sock: socket.socket, max_datagrams: int = 32, mode: SendMode | None = None,
              datagram_size: int | None = None) -> DatagramBatch:
    """Receive up to max_datagrams datagrams with their source addresses, unopened, on any
    UDP socket (meant for an unconnected server socket with many peers).

    Blocking, modes (MMSG: recvmmsg; PLAIN: one recvmsg), datagram_size and GRO splitting
    are as in recv_open; a datagram longer than the slot is cut to it.  Returns the
    thread's DatagramBatch (empty when nothing was pending on a non-blocking socket),
    valid until the next recv_from on this thread.
    """
    fd, mode, slot, caps = _recv_geometry(sock, max_datagrams, mode, datagram_size)
    if mode == SendMode.PLAIN:
        max_datagrams = 1
    cap = slot * max_datagrams
    dg_cap = max_datagrams * (_GRO_MAX_SEGMENTS if caps & UdpCaps.GRO_ON else 1)
    f = _from_scratch()
    f.space(cap, dg_cap)
    while True:
        n = lib.dtls_recv_from(fd, int(mode), f.buf, cap, slot, max_datagrams, f.spans,
                               f.addrs, f.alens, f.dg_cap, f.dropped)
        if n >= 0:
            break
        if n > _OS_BASE:
            _raise(n)
        if _OS_BASE - n != errno.EINTR:
            raise _os_error(n)
    b = f.batch
    b._n = int(n)
    b.dropped = int(f.dropped[0])
    return b


# ---- the lean one-record paths (connected sockets) -------------------------------------------

_ONE_CAP = 65535  # any datagram whole, and any record's plaintext
_send_one = lib.dtls_seal_send_one
_recv_one = lib.dtls_recv_open_one
_SEVERAL = lib.DTLS_RECV_SEVERAL
_REFUSED = lib.DTLS_OPEN_REFUSED
_OK = OpenStatus.OK
_EAGAIN = errno.EAGAIN
_EINTR = errno.EINTR


class _OneScratch:
    __slots__ = ("buf", "buf_view", "dlen", "out", "out_view", "res")

    def __init__(self) -> None:
        self.out = ffi.new("uint8_t[]", _ONE_CAP)
        self.out_view = ffi.buffer(self.out)
        self.buf = ffi.new("uint8_t[]", _ONE_CAP)
        self.buf_view = ffi.buffer(self.buf)
        self.res = ffi.new("dtls_open_result *")
        self.dlen = ffi.new("uint32_t *")


def _one_scratch() -> _OneScratch:
    try:
        return _local.one  # type: ignore[no-any-return]
    except AttributeError:
        _local.one = o = _OneScratch()
        return o


def seal_send_one(state: CipherState, sock: socket.socket, content_type: int,
                  data: Buffer) -> int:
    """Seal `data` as one record and send it with one send() on a connected socket.

    Returns 1 when sent, 0 when the socket would block (EAGAIN/ENOBUFS; next_seq is put
    back, so retrying gives the same record).  Raises ValueError for a payload over 2^14
    bytes or a content_type outside 0..255, OSError for other send errors, TypeError for
    a state that is not the C layer's.  One C call: seal into per-thread scratch and send.
    """
    try:
        o = _local.one
    except AttributeError:
        o = _one_scratch()
    try:
        r = _send_one(state._st, sock.fileno(), content_type,
                      data if type(data) is bytes else ffi.from_buffer(data), len(data), o.out,
                      _ONE_CAP)
    except (AttributeError, TypeError, OverflowError):
        _one_args(state, content_type)
        raise
    if r >= 0:
        return 1
    return _send_one_failed(state, sock, content_type, data, r)


def one_sender(state: CipherState, sock: socket.socket,
               content_type: int = _APPLICATION_DATA) -> Callable[[Buffer], int]:
    """seal_send_one bound to (state, sock, content_type): send(data) -> 1 sent, 0 would
    block, with seal_send_one's errors.  The lean per-record path of a connected socket
    that sends many records: the fd is taken now and the output buffer is the sender's own
    (no per-thread lookup), so calls must not overlap (the caller serializes them, as it
    must anyway for one CipherState) and sock must stay open while the sender is used."""
    if type(state) is not CipherState:
        raise TypeError("one_sender needs the C record layer's CipherState")
    if not isinstance(content_type, int):
        raise TypeError("content_type must be an int")
    if not 0 <= content_type <= 255:
        raise ValueError("content_type must be 0..255")
    content_type = int(content_type)
    st, fd = state._st, _fd(sock)
    out = ffi.new("uint8_t[]", _SENDER_CAP)
    send_one, from_buffer = _send_one, ffi.from_buffer

    def send(data: Buffer) -> int:
        r = send_one(st, fd, content_type, data if type(data) is bytes else from_buffer(data),
                     len(data), out, _SENDER_CAP)
        if r >= 0:
            return 1
        return _send_one_failed(state, sock, content_type, data, r)

    return send


_SENDER_CAP = MAX_FRAGMENT + lib.DTLS_MAX_OVERHEAD  # any record of a payload <= 2^14 bytes


def _one_args(state: Any, content_type: Any) -> None:
    if type(state) is not CipherState:
        raise TypeError("seal_send_one needs the C record layer's CipherState")
    if type(content_type) is int and not 0 <= content_type <= 255:
        raise ValueError("content_type must be 0..255")


def _send_one_failed(state: CipherState, sock: socket.socket, content_type: int, data: Buffer,
                     r: int) -> int:
    if r > _OS_BASE:
        _raise(r)
    e = _OS_BASE - r
    if e in _WOULD_BLOCK:
        return 0
    if e == _EINTR:
        return seal_send_one(state, sock, content_type, data)
    raise _os_error(r)


def recv_open_one(state: CipherState,
                  sock: socket.socket) -> OpenResult | list[OpenResult] | None:
    """Receive one datagram (one recv()) on a connected socket and open it.

    Returns None when nothing is pending on a non-blocking socket; the OpenResult of the
    datagram's record when it holds exactly one (the common case; the payload is a bytes
    copy, as CipherState.open gives); and, for any other datagram (several records,
    trailing bytes, a cut record, an empty datagram), the list state.open_batch(datagram)
    returns.  Do not use it with GRO enabled on the socket (use recv_open).
    """
    try:
        o = _local.one
    except AttributeError:
        o = _one_scratch()
    try:
        n = _recv_one(state._st, sock.fileno(), o.buf, _ONE_CAP, o.out, _ONE_CAP, o.res,
                      o.dlen)
    except AttributeError:
        _one_args(state, 0)
        raise
    if n >= 0:
        res = o.res
        return _new_result(OpenResult, (_OK, res.type, state.epoch, res.seq, o.out_view[0:n]))
    if _REFUSED - len(_STATUS) < n < _REFUSED:
        st = _REFUSED - n
        res = o.res
        payload = o.buf_view[0 : o.dlen[0]] if st == _BAD_EPOCH else b""
        return _new_result(OpenResult, (_STATUS[st], res.type, res.epoch, res.seq, payload))
    if n == _SEVERAL:
        return state.open_batch(o.buf_view[0 : o.dlen[0]])
    if n > _OS_BASE:
        _raise(n)
    e = _OS_BASE - n
    if e in _WOULD_BLOCK:
        return None
    if e == _EINTR:
        return recv_open_one(state, sock)
    raise _os_error(n)


# ---- relays: reprotect and relay -------------------------------------------------------------


class Reprotected:
    """The records of one reprotect (or relay) call, sealed with the out state, with no
    Python object per record: they lie back to back in the thread's scratch buffer.

    len(r) records; r.record(i) -> memoryview of record i; iteration gives them in order;
    r.records -> memoryview of all of them back to back and r.lengths -> memoryview
    (format 'I') of their lengths, as seal_batch's RecordBatch would hold them.
    r.refused maps each refusing OpenStatus to how many application-data records it
    refused (empty dict when none; MALFORMED also counts datagrams whose framing broke;
    BAD_EPOCH records are counted and also listed in others).  r.others lists, as bytes
    copies, the records the caller must handle itself, unopened: records of other content
    types (handshake, alerts: open them with in_state) and application data of another
    epoch.  relay sets r.datagrams, r.dropped (datagrams not handled for lack of slots),
    r.sent (records sent: the first r.sent of them) and r.error (the errno that stopped
    sending, 0 if none); reprotect sets datagrams to the datagrams given and sent to 0.

    VALID UNTIL THE NEXT reprotect OR relay CALL ON THE SAME THREAD (per-thread scratch).
    """

    __slots__ = ("_lens", "_n", "_offs", "_out", "datagrams", "dropped", "error", "others",
                 "refused", "sent")

    def __init__(self) -> None:
        self._out = memoryview(b"")
        self._lens = memoryview(b"").cast("I")
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


class _RelayScratch:
    __slots__ = ("buf", "cap", "counts", "counts_tail", "info", "lens", "lens_cap", "nothers",
                 "others", "out", "out_cap", "spans", "spans_cap", "view")

    def __init__(self) -> None:
        self.cap = self.out_cap = self.lens_cap = self.spans_cap = 0
        self.buf = self.out = self.lens = self.others = self.spans = ffi.NULL
        self.counts = ffi.new("uint32_t[]", lib.DTLS_STATUS_SLOTS)
        self.counts_tail = memoryview(ffi.buffer(self.counts))[4:]
        self.info = ffi.new("uint32_t[]", lib.DTLS_RELAY_INFO)
        self.nothers = ffi.new("uint32_t *")
        self.view = Reprotected()

    def space(self, in_len: int, out_cap: int, nrec: int) -> None:
        if out_cap > self.out_cap:
            self.out, self.out_cap = _grow("uint8_t[]", out_cap, self.out_cap)
            self.view._out = memoryview(ffi.buffer(self.out))
        if nrec > self.lens_cap:
            self.lens, self.lens_cap = _grow("uint32_t[]", nrec, self.lens_cap)
            self.others = ffi.new("uint32_t[]", 2 * self.lens_cap)
            self.view._lens = memoryview(ffi.buffer(self.lens)).cast("I")

    def in_space(self, cap: int, nspans: int) -> None:
        if cap > self.cap:
            self.buf, self.cap = _grow("uint8_t[]", cap, self.cap)
        if nspans > self.spans_cap:
            self.spans_cap = max(nspans, 2 * self.spans_cap, 256)
            self.spans = ffi.new("uint32_t[]", 2 * self.spans_cap)


def _relay_scratch() -> _RelayScratch:
    try:
        return _local.relay  # type: ignore[no-any-return]
    except AttributeError:
        _local.relay = r = _RelayScratch()
        return r


def _out_bound(in_len: int) -> tuple[int, int]:
    """(out_cap, record count) that no input of in_len bytes can exceed: a record of f
    fragment bytes (f + 13 on the wire) carries at most f plaintext bytes, which seal to at
    most f + DTLS_MAX_OVERHEAD bytes."""
    nrec = in_len // _HEADER + 1
    return in_len + nrec * _GROWTH, nrec


_HEADER = lib.DTLS_HEADER_LEN
_GROWTH = lib.DTLS_MAX_OVERHEAD - lib.DTLS_HEADER_LEN
_NO_COUNTS = bytes(4 * (lib.DTLS_STATUS_SLOTS - 1))


def _finish(r: _RelayScratch, k: int, raw: Any) -> Reprotected:
    v = r.view
    v._n = k
    v._offs = None
    m = r.nothers[0]
    if r.counts_tail == _NO_COUNTS and not m:  # the common case: nothing refused or left
        v.refused = _NO_REFUSALS
        v.others = []
        return v
    c = r.counts
    v.refused = {_STATUS[st]: int(c[st]) for st in range(1, len(_STATUS)) if c[st]}
    o = r.others
    v.others = [bytes(raw[o[2 * j] : o[2 * j] + o[2 * j + 1]]) for j in range(m)]
    return v


def reprotect(in_state: CipherState, out_state: CipherState, data: Buffer,
              lengths: Sequence[int] | None = None, content_type: int = _APPLICATION_DATA
              ) -> Reprotected:
    """Open the records of `data` with in_state and seal their payloads with out_state,
    in C: the plaintext never becomes a Python object.

    data holds one datagram, or several back to back with their lengths in `lengths` (as
    CipherState.open_batch takes them).  Records of content_type (application data) are
    opened exactly as in_state.open would (replay window, authentication; refused records
    move no window) and the accepted payloads sealed with out_state, byte-identical to
    out_state.seal of each.  Returns the thread's Reprotected view (see there: refusal
    counts, records of other types handed back unopened), valid until the next reprotect
    or relay call on this thread.  Raises SequenceExhausted, with nothing changed, if
    out_state lacks the sequence numbers.
    """
    if type(in_state) is not CipherState or type(out_state) is not CipherState:
        raise TypeError("reprotect needs the C record layer's CipherStates")
    total = len(data)
    r = _relay_scratch()
    if lengths is None:
        ndg = 1
        if r.spans_cap == 0:
            r.in_space(0, 1)
        sp = r.spans
        sp[0] = 0
        sp[1] = total
    else:
        lens = list(lengths)
        if any(n < 0 for n in lens) or sum(lens) != total:
            raise ValueError("datagram lengths must be >= 0 and add up to len(data)")
        ndg = len(lens)
        spans = array("I", [0]) * (2 * ndg)
        o = 0
        for j, n in enumerate(lens):
            spans[2 * j] = o
            spans[2 * j + 1] = n
            o += n
        r.in_space(0, ndg)
        ffi.memmove(r.spans, spans, 8 * ndg)
    nrec = total // _HEADER + 1  # _out_bound, inlined
    out_cap = total + nrec * _GROWTH
    if out_cap > r.out_cap or nrec > r.lens_cap:
        r.space(total, out_cap, nrec)
    raw = data if type(data) is bytes else ffi.from_buffer(data)
    try:
        k = lib.dtls_reprotect(in_state._st, out_state._st, content_type, raw, total,
                               r.spans, ndg, r.out, r.out_cap, r.lens,
                               r.lens_cap, r.others, r.lens_cap, r.nothers, r.counts)
    except OverflowError:
        raise ValueError("content_type must be 0..255") from None
    if k < 0:
        _raise(k)
    v = _finish(r, int(k), data)
    v.datagrams = ndg
    v.dropped = v.sent = v.error = 0
    return v


def relay(in_state: CipherState, in_sock: socket.socket, out_state: CipherState,
          out_sock: socket.socket, addr: tuple[Any, ...] | bytes | None = None,
          max_datagrams: int = 32, recv_mode: SendMode | None = None,
          send_mode: SendMode | None = None, datagram_size: int | None = None,
          content_type: int = _APPLICATION_DATA) -> Reprotected:
    """One relay step in ONE C call: receive a batch on in_sock (as recv_from: recvmmsg,
    GRO split), reprotect it (as reprotect) and send every record on out_sock, one per
    datagram, with GSO/sendmmsg/send (send_mode as seal_send picks it), to addr or, if
    addr is None, on the connected out_sock.

    Returns the thread's Reprotected view: len() records sealed, .sent of them sent (the
    first ones), .error the errno that stopped sending (EAGAIN, say; 0 if all went), plus
    .datagrams, .dropped, .refused and .others as documented there.  Unsent records stay
    valid (send them later with sock.send(view.record(i)) or drop them; out_state.next_seq
    is NOT rewound, so their seqs are never reused).  An empty view with datagrams == 0
    means nothing was pending on a non-blocking in_sock.
    """
    if type(in_state) is not CipherState or type(out_state) is not CipherState:
        raise TypeError("relay needs the C record layer's CipherStates")
    in_fd, rmode, slot, caps = _recv_geometry(in_sock, max_datagrams, recv_mode, datagram_size)
    if rmode == SendMode.PLAIN:
        max_datagrams = 1
    out_fd = _fd(out_sock)
    smode = _send_mode(out_sock, send_mode)
    raw_addr = ffi.NULL if addr is None else _sockaddr(out_sock, addr)
    cap = slot * max_datagrams
    nspans = max_datagrams * (_GRO_MAX_SEGMENTS if caps & UdpCaps.GRO_ON else 1)
    r = _relay_scratch()
    r.in_space(cap, nspans)
    out_cap, nrec = _out_bound(cap)
    r.space(cap, out_cap, nrec + nspans)
    while True:
        try:
            n = lib.dtls_relay(in_state._st, in_fd, int(rmode), r.buf, cap, slot, max_datagrams,
                               r.spans, r.spans_cap, out_state._st, out_fd, int(smode), raw_addr,
                               0 if addr is None else len(raw_addr), content_type, r.out,
                               r.out_cap, r.lens, r.lens_cap, r.others, r.lens_cap, r.nothers,
                               r.counts, r.info)
        except OverflowError:
            raise ValueError("content_type must be 0..255") from None
        if n >= 0:
            break
        if n > _OS_BASE:
            _raise(n)
        if _OS_BASE - n != errno.EINTR:
            raise _os_error(n)
    info = r.info
    v = _finish(r, int(info[lib.DTLS_RELAY_SEALED]), ffi.buffer(r.buf, cap))
    v.datagrams = int(info[lib.DTLS_RELAY_DATAGRAMS])
    v.dropped = int(info[lib.DTLS_RELAY_DROPPED])
    v.sent = int(info[lib.DTLS_RELAY_SENT])
    v.error = int(info[lib.DTLS_RELAY_ERRNO])
    return v
