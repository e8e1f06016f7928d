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
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import weakref
from collections.abc import Iterator, Sequence
from enum import IntEnum, IntFlag

from ._crecord import _BAD_EPOCH, _RESULT, _STATUS, Buffer, CipherState, _new_result, _raise
from ._record import ffi, lib
from .recordbase import MAX_FRAGMENT, OpenResult, OpenStatus

__all__ = ["PayloadView", "RecvBatch", "SendMode", "UdpCaps", "best_send_mode", "recv_open",
           "recv_payloads", "seal_send", "set_gro", "udp_caps"]


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
_caps: weakref.WeakKeyDictionary[socket.socket, tuple[int, UdpCaps]] = (
    weakref.WeakKeyDictionary())
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
    r = lib.dtls_udp_caps(fd)
    if r < 0:
        raise _os_error(r)
    caps = UdpCaps(r)
    _caps[sock] = (fd, caps)
    return caps


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
    if type(state) is not CipherState:
        raise TypeError("seal_send needs the C record layer's CipherState")
    fd = _fd(sock)
    caps = udp_caps(sock)
    if mode is None:
        mode = best_send_mode(caps)
    elif caps & _SEND_NEEDS[mode] != _SEND_NEEDS[mode]:
        # Checked here, not left to the kernel: an AF_UNIX socket, say, would ignore the
        # UDP_SEGMENT cmsg and send one datagram holding the whole run.
        raise ValueError(f"send mode {mode.name} is not supported on this socket")
    n = len(payloads)
    if n == 0:
        return 0
    s = _scratch()
    s.len_arrays(n)
    lens = s.lens
    try:
        for i, p in enumerate(payloads):
            lens[i] = len(p)
    except OverflowError:
        raise ValueError("payloads must be at most 2^14 bytes") from None
    data = b"".join(payloads)
    cap = len(data) + n * lib.DTLS_MAX_OVERHEAD
    out = s.out_space(cap)
    while True:
        try:
            r = lib.dtls_seal_send(state._st, fd, content_type, data, lens, n, int(mode), out,
                                   cap, s.out_lens)
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
    if not 1 <= max_datagrams <= 1024:
        raise ValueError("max_datagrams must be 1..1024")
    fd = _fd(sock)
    caps = udp_caps(sock)
    if mode is None:
        mode = SendMode.MMSG if caps & UdpCaps.RECVMMSG else SendMode.PLAIN
    if mode == SendMode.GSO:
        raise ValueError("GSO is a sending mode; receive with MMSG or PLAIN")
    if mode == SendMode.MMSG and not caps & UdpCaps.RECVMMSG:
        raise ValueError("recvmmsg is not supported on this socket")
    if mode == SendMode.PLAIN:
        max_datagrams = 1
    slot = datagram_size or (_GRO_SLOT if caps & UdpCaps.GRO_ON else _RECORD_SLOT)
    if not 1 <= slot <= 65535:
        raise ValueError("datagram_size must be 1..65535")
    cap = slot * max_datagrams
    s = _scratch()
    buf = s.in_space(cap)
    out = s.out_space(cap)
    res_cap = cap // lib.DTLS_HEADER_LEN + 2 * max_datagrams
    res = s.results(res_cap)
    while True:
        n = lib.dtls_recv_open(state._st, fd, int(mode), buf, cap, slot, max_datagrams, out,
                               s.out_cap, res, res_cap, s.ndgrams, s.dropped)
        if n >= 0:
            return s, int(n)
        if n > _OS_BASE:
            _raise(n)
        if _OS_BASE - n != errno.EINTR:
            raise _os_error(n)


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
    v = _view_scratch()
    v.space(n)
    counts = v.counts
    ffi.memmove(counts, bytes(4 * lib.DTLS_STATUS_SLOTS), 4 * lib.DTLS_STATUS_SLOTS)
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
