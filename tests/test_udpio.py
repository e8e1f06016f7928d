"""Batched UDP I/O in C (csrc/udpio.c, dtls._cudpio): seal+send and recv+open over loopback.

Every send mode the machine supports is run (the others are skipped with the reason): the
records arrive and open to exactly the payloads, in order, with the same bytes on every
path; GRO-coalesced buffers split into their datagrams; partial sends on a full socket
keep the sequence numbers gapless; garbage datagrams come back as statuses, never crashes.
"""

from __future__ import annotations

import os
import random
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("dtls._record", reason="the C record layer is not built")

from dtls import _crecord, _cudpio
from dtls._cudpio import SendMode, UdpCaps
from dtls.protection import BulkCipher, MacAlgorithm, Protection
from dtls.recordbase import OpenResult, OpenStatus

GCM = Protection(BulkCipher.AES_128_GCM)
KEY, IV = bytes(range(16)), b"\x01\x02\x03\x04"


def gcm_pair() -> tuple[_crecord.CipherState, _crecord.CipherState]:
    return (_crecord.CipherState(GCM, epoch=1, key=KEY, fixed_iv=IV),
            _crecord.CipherState(GCM, epoch=1, key=KEY, fixed_iv=IV))


@pytest.fixture
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected sender and a connected, non-blocking receiver on 127.0.0.1."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    rx.bind(("127.0.0.1", 0))
    tx.connect(rx.getsockname())
    rx.connect(tx.getsockname())
    rx.setblocking(False)
    yield tx, rx
    tx.close()
    rx.close()


def _send_caps() -> UdpCaps:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return _cudpio.udp_caps(s)


_CAPS = _send_caps()
_NEEDS = {SendMode.PLAIN: UdpCaps.NONE, SendMode.MMSG: UdpCaps.SENDMMSG,
          SendMode.GSO: UdpCaps.GSO}


def modes() -> list[Any]:
    out: list[Any] = []
    for mode, need in _NEEDS.items():
        marks = [] if (_CAPS & need) == need else [
            pytest.mark.skip(reason=f"{need!r} not supported by this kernel/socket")]
        out.append(pytest.param(mode, id=mode.name, marks=marks))
    return out


def recv_all(state: _crecord.CipherState, sock: socket.socket, count: int,
             timeout: float = 3.0, **kw: Any) -> list[OpenResult]:
    """Receive until `count` records arrived or `timeout` passed without any."""
    got: list[OpenResult] = []
    while len(got) < count:
        if not select.select([sock], [], [], timeout)[0]:
            break
        got.extend(_cudpio.recv_open(state, sock, **kw))
    return got


SIZES = {
    "mixed": [random.Random(5).randrange(0, 1400) for _ in range(150)],
    "equal": [1200] * 150,  # three GSO runs: 54 + 54 + 42 under the 65000-byte cap
    "equal-short-last": [1000] * 70 + [300] + [1000] * 3 + [16384, 0],
}


@pytest.mark.parametrize("mode", modes())
@pytest.mark.parametrize("sizes", list(SIZES.values()), ids=list(SIZES))
def test_batch_arrives_in_order(udp_pair: tuple[socket.socket, socket.socket],
                                mode: SendMode, sizes: list[int]) -> None:
    tx, rx = udp_pair
    seal, open_ = gcm_pair()
    payloads = [os.urandom(n) for n in sizes]
    assert _cudpio.seal_send(seal, tx, 23, payloads, mode) == len(payloads)
    assert seal.next_seq == len(payloads)
    got = recv_all(open_, rx, len(payloads))
    assert [r.status for r in got] == [OpenStatus.OK] * len(payloads)
    assert [r.seq for r in got] == list(range(len(payloads)))
    assert [bytes(r.payload) for r in got] == payloads
    assert {(r.content_type, r.epoch) for r in got} == {(23, 1)}


@pytest.mark.parametrize("recv_mode", [SendMode.MMSG, SendMode.PLAIN], ids=["recvmmsg", "recv"])
def test_gro_receive_splits_coalesced_datagrams(
        udp_pair: tuple[socket.socket, socket.socket], recv_mode: SendMode) -> None:
    tx, rx = udp_pair
    if not _cudpio.udp_caps(rx) & UdpCaps.GRO:
        pytest.skip("UDP_GRO not supported by this kernel")
    if recv_mode == SendMode.MMSG and not _CAPS & UdpCaps.RECVMMSG:
        pytest.skip("recvmmsg not supported")
    _cudpio.set_gro(rx)
    assert _cudpio.udp_caps(rx) & UdpCaps.GRO_ON
    seal, open_ = gcm_pair()
    sizes = [1000] * 40 + [200] + [1000] * 40 + [700, 5] + [1200] * 100
    payloads = [os.urandom(n) for n in sizes]
    mode = SendMode.GSO if _CAPS & UdpCaps.GSO else SendMode.PLAIN
    assert _cudpio.seal_send(seal, tx, 23, payloads, mode) == len(payloads)
    got: list[OpenResult] = []
    coalesced = False
    while len(got) < len(payloads) and select.select([rx], [], [], 3.0)[0]:
        batch = _cudpio.recv_open(open_, rx, max_datagrams=2, mode=recv_mode)
        assert batch.dropped == 0
        coalesced |= batch.datagrams > (2 if recv_mode == SendMode.MMSG else 1)
        assert batch.datagrams == len(batch)  # one record per datagram here
        got.extend(batch)
    assert [bytes(r.payload) for r in got] == payloads
    assert [r.seq for r in got] == list(range(len(payloads)))
    if mode == SendMode.GSO:  # loopback hands GSO sends to a GRO socket whole
        assert coalesced, "no receive call returned more datagrams than slots"


def _states(prot: Protection) -> _crecord.CipherState:
    rnd = random.Random(7)
    key = bytes(rnd.randrange(256) for _ in range(prot.key_length))
    return _crecord.CipherState(
        prot, epoch=3, key=key, fixed_iv=bytes(prot.fixed_iv_length),
        mac_key=bytes(range(prot.mac_length)),
        iv_key=bytes(16) if prot.cipher in (BulkCipher.AES_128_CBC,) else None)


@pytest.mark.parametrize("prot", [
    GCM, Protection(BulkCipher.CHACHA20_POLY1305),
    Protection(BulkCipher.AES_128_CBC, MacAlgorithm.SHA256, True)], ids=lambda p: p.cipher.name)
def test_same_record_bytes_in_every_mode(udp_pair: tuple[socket.socket, socket.socket],
                                         prot: Protection) -> None:
    tx, rx = udp_pair
    payloads = [bytes([i]) * n for i, n in enumerate([1200] * 70 + [40, 1200, 9, 0, 500])]
    reference = _states(prot)
    reference.next_seq = 1000
    expected = [reference.seal(23, p) for p in payloads]
    tried = 0
    for mode, need in _NEEDS.items():
        if (_CAPS & need) != need:
            continue
        tried += 1
        state = _states(prot)
        state.next_seq = 1000
        assert _cudpio.seal_send(state, tx, 23, payloads, mode) == len(payloads)
        wire: list[bytes] = []
        while len(wire) < len(payloads) and select.select([rx], [], [], 3.0)[0]:
            wire.append(rx.recv(65535))
        assert wire == expected, mode.name
    assert tried >= 1


@pytest.mark.parametrize("mode", [SendMode.PLAIN, SendMode.MMSG], ids=["PLAIN", "MMSG"])
def test_partial_sends_keep_seq_accounting(mode: SendMode) -> None:
    """A full non-blocking socket reports how many went out; retrying the rest loses none.

    Loopback UDP never pushes back (the kernel frees the send buffer at once and drops at
    the receiver instead), so this uses an AF_UNIX datagram pair, which blocks when the
    peer's queue is full; the C send paths are the same.  GSO needs UDP: see below.
    """
    if mode == SendMode.MMSG and not _CAPS & UdpCaps.SENDMMSG:
        pytest.skip("sendmmsg not supported")
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the kernel's minimum
        a.setblocking(False)
        b.setblocking(False)
        seal, open_ = gcm_pair()
        payloads = [i.to_bytes(4, "big") * 300 for i in range(2000)]
        sent, calls, partial = 0, 0, 0
        got: list[OpenResult] = []
        while sent < len(payloads):
            k = _cudpio.seal_send(seal, a, 23, payloads[sent:], mode)
            calls += 1
            partial += k < len(payloads) - sent
            sent += k
            assert seal.next_seq == sent  # unsent records gave their seqs back
            got.extend(_cudpio.recv_open(open_, b, 64))
            assert calls < 10_000
        got.extend(recv_all(open_, b, len(payloads) - len(got), timeout=0.5))
        assert partial > 0, "the socket never filled up"
        assert [r.seq for r in got] == list(range(len(payloads)))
        assert [bytes(r.payload) for r in got] == payloads


def test_send_mode_the_socket_lacks_is_refused() -> None:
    """GSO partial sends cannot be provoked on loopback (see above), and AF_UNIX has no
    GSO: it would ignore UDP_SEGMENT and send a whole run as one datagram, so it is refused
    before anything is sealed."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        assert not _cudpio.udp_caps(a) & (UdpCaps.GSO | UdpCaps.GRO)
        seal, _ = gcm_pair()
        seal.next_seq = 5
        with pytest.raises(ValueError, match="GSO"):
            _cudpio.seal_send(seal, a, 23, [b"x" * 100] * 3, SendMode.GSO)
        assert seal.next_seq == 5


@pytest.mark.parametrize("mode", [SendMode.MMSG, SendMode.PLAIN], ids=["recvmmsg", "recv"])
def test_recv_with_nothing_pending_returns_at_once(
        udp_pair: tuple[socket.socket, socket.socket], mode: SendMode) -> None:
    _, rx = udp_pair
    _, open_ = gcm_pair()
    t = time.monotonic()
    batch = _cudpio.recv_open(open_, rx, 32, mode=mode)
    assert time.monotonic() - t < 0.1
    assert len(batch) == 0 and batch.datagrams == 0 and list(batch) == []


def test_garbage_among_valid_datagrams(udp_pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = udp_pair
    seal, open_ = gcm_pair()
    good = [seal.seal(23, b"record %d" % i) for i in range(4)]
    tampered = bytearray(seal.seal(23, b"tampered"))
    tampered[-1] ^= 1
    rnd = random.Random(3)
    sends = [good[0], b"", b"\x17\xfe\xfd", good[1], bytes(tampered),
             b"\x17\xfe\xfd\x00\x01" + bytes(6) + b"\xff\xff" + b"short",
             bytes(rnd.randrange(256) for _ in range(300)), good[2] + b"\x00\x01", good[3]]
    for d in sends:
        tx.send(d)
    got = recv_all(open_, rx, 10, timeout=0.5)
    statuses = [r.status for r in got]
    ok = [bytes(r.payload) for r in got if r.status == OpenStatus.OK]
    assert ok == [b"record 0", b"record 1", b"record 2", b"record 3"]
    assert OpenStatus.BAD_MAC in statuses
    assert statuses.count(OpenStatus.MALFORMED) >= 3  # 3-byte, bad length, trailing bytes
    assert all(r.payload == b"" for r in got if r.status != OpenStatus.OK)


def test_truncated_datagram_is_malformed(udp_pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = udp_pair
    seal, open_ = gcm_pair()
    tx.send(seal.seal(23, bytes(1000)))
    tx.send(seal.seal(23, b"fits"))
    got = recv_all(open_, rx, 2, timeout=0.5, datagram_size=200)
    assert [r.status for r in got] == [OpenStatus.MALFORMED, OpenStatus.OK]
    assert bytes(got[1].payload) == b"fits"


def test_caps_cached_per_socket_and_errors() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert _cudpio.udp_caps(s) is _cudpio.udp_caps(s)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t, pytest.raises(OSError):
        _cudpio.udp_caps(t)
    s.close()
    with pytest.raises(OSError):
        _cudpio.udp_caps(s)


def test_argument_errors(udp_pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = udp_pair
    seal, open_ = gcm_pair()
    with pytest.raises(ValueError):
        _cudpio.seal_send(seal, tx, 23, [bytes(16385)])
    assert seal.next_seq == 0
    with pytest.raises(ValueError):
        _cudpio.seal_send(seal, tx, 256, [b"x"])
    with pytest.raises(ValueError):
        _cudpio.recv_open(open_, rx, 0)
    with pytest.raises(ValueError):
        _cudpio.recv_open(open_, rx, 4, mode=SendMode.GSO)
    with pytest.raises(TypeError):
        from dtls import _pyrecord
        py_state: Any = _pyrecord.CipherState(GCM, epoch=1, key=KEY, fixed_iv=IV)
        _cudpio.seal_send(py_state, tx, 23, [b"x"])
    assert _cudpio.seal_send(seal, tx, 23, []) == 0
    unconnected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with unconnected, pytest.raises(OSError):
        _cudpio.seal_send(seal, unconnected, 23, [b"x"], SendMode.PLAIN)
    assert seal.next_seq == 0


def test_c_bounds_result_space_and_arguments(
        udp_pair: tuple[socket.socket, socket.socket]) -> None:
    """dtls_recv_open's own bounds, called directly: results that do not fit are counted as
    dropped datagrams, never written past res_cap; bad sizes are refused before any recv."""
    from dtls._record import ffi, lib
    tx, rx = udp_pair
    seal, open_ = gcm_pair()
    for i in range(3):
        tx.send(seal.seal(23, b"x" * 100) + seal.seal(23, b"y"))  # 2 records per datagram
    assert select.select([rx], [], [], 3.0)[0]
    time.sleep(0.05)
    cap, slot = 4 * 512, 512
    buf, out = ffi.new("uint8_t[]", cap), ffi.new("uint8_t[]", cap)
    res = ffi.new("dtls_open_result[]", 2 + 1)  # a guard slot after the usable two
    res[2].status = 12345
    nd, dropped = ffi.new("uint32_t *"), ffi.new("uint32_t *")
    fd, mode = rx.fileno(), int(SendMode.MMSG if _CAPS & UdpCaps.RECVMMSG else SendMode.PLAIN)
    st = open_._st
    assert lib.dtls_recv_open(st, fd, mode, buf, cap, slot + cap, 4, out, cap, res, 2, nd,
                              dropped) == lib.DTLS_ERR_ARG  # slot > cap
    assert lib.dtls_recv_open(st, fd, 2, buf, cap, slot, 4, out, cap, res, 2, nd,
                              dropped) == lib.DTLS_ERR_ARG  # GSO is no receive mode
    assert lib.dtls_recv_open(st, fd, mode, buf, cap, slot, 4, out, cap - 1, res, 2, nd,
                              dropped) == lib.DTLS_ERR_SPACE
    got = dropped_total = dgrams = 0
    while dgrams < 3:
        n = lib.dtls_recv_open(st, fd, mode, buf, cap, slot, 4, out, cap, res, 2, nd, dropped)
        assert n >= 0
        if nd[0] == 0:
            break
        got += n
        dgrams += nd[0]
        dropped_total += dropped[0]
    assert res[2].status == 12345
    assert dgrams == 3
    # res_cap 2 < 116 // 13 + 1 results a 116-byte datagram may need: each is dropped.
    assert (got, dropped_total) == (0, 3)


# ---- recv_payloads: the zero-object receive path ---------------------------------------------


def recv_view_all(state: _crecord.CipherState, sock: socket.socket, count: int,
                  timeout: float = 3.0, **kw: Any) -> tuple[list[bytes], list[Any]]:
    """recv_payloads until `count` payloads came: (payload copies, the views seen)."""
    got: list[bytes] = []
    views: list[Any] = []
    while len(got) < count:
        if not select.select([sock], [], [], timeout)[0]:
            break
        view = _cudpio.recv_payloads(state, sock, **kw)
        views.append(view)
        assert len(list(view)) == len(view)
        got.extend(bytes(p) for p in view)
    return got, views


def _recv_modes() -> list[Any]:
    out = [pytest.param(SendMode.PLAIN, False, id="recv")]
    need = [] if _CAPS & UdpCaps.RECVMMSG else [pytest.mark.skip(reason="no recvmmsg")]
    out.append(pytest.param(SendMode.MMSG, False, id="recvmmsg", marks=need))
    out.append(pytest.param(SendMode.MMSG, True, id="recvmmsg-gro", marks=need))
    out.append(pytest.param(SendMode.PLAIN, True, id="recv-gro"))
    return out


@pytest.mark.parametrize("send_mode", modes())
@pytest.mark.parametrize(("recv_mode", "gro"), _recv_modes())
def test_recv_payloads_equal_recv_open(udp_pair: tuple[socket.socket, socket.socket],
                                       send_mode: SendMode, recv_mode: SendMode,
                                       gro: bool) -> None:
    tx, rx = udp_pair
    if gro:
        if not _cudpio.udp_caps(rx) & UdpCaps.GRO:
            pytest.skip("UDP_GRO not supported by this kernel")
        _cudpio.set_gro(rx)
    sizes = SIZES["equal-short-last"] + SIZES["mixed"][:60]
    payloads = [os.urandom(n) for n in sizes]
    seal_a, open_a = gcm_pair()
    seal_b, open_b = gcm_pair()
    assert _cudpio.seal_send(seal_a, tx, 23, payloads, send_mode) == len(payloads)
    via_open = recv_all(open_a, rx, len(payloads), mode=recv_mode)
    assert [bytes(r.payload) for r in via_open] == payloads
    assert _cudpio.seal_send(seal_b, tx, 23, payloads, send_mode) == len(payloads)
    via_view, views = recv_view_all(open_b, rx, len(payloads), mode=recv_mode)
    assert via_view == [bytes(r.payload) for r in via_open]
    assert all(v.refused == {} and v.others == [] and v.dropped == 0 for v in views)


def test_recv_payloads_counts_refusals_and_keeps_others(
        udp_pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = udp_pair
    seal, open_ = gcm_pair()
    good = [seal.seal(23, b"record %d" % i) for i in range(3)]
    alert = seal.seal(21, b"\x01\x00")
    tampered = bytearray(seal.seal(23, b"tampered"))
    tampered[-1] ^= 1
    next_epoch = bytearray(seal.seal(23, b"epoch 2"))
    next_epoch[3:5] = b"\x00\x02"
    rnd = random.Random(4)
    sends = [good[0], b"", b"\x17\xfe\xfd", bytes(tampered), good[1], alert, good[1],
             bytes(next_epoch), bytes(rnd.randrange(256) for _ in range(300)),
             good[2] + b"\x00\x01"]
    for d in sends:
        tx.send(d)
    want = recv_all(gcm_pair()[1], rx, 20, timeout=0.5)  # the same stream through recv_open
    for d in sends:
        tx.send(d)
    payloads: list[bytes] = []
    refused: dict[OpenStatus, int] = {}
    others: list[OpenResult] = []
    while select.select([rx], [], [], 0.5)[0]:
        view = _cudpio.recv_payloads(open_, rx, max_datagrams=4)
        payloads += [bytes(view.payload(i)) for i in range(len(view))]
        for st, k in view.refused.items():
            refused[st] = refused.get(st, 0) + k
        others += view.others
        if len(view):
            assert bytes(view.payload(-1)) == payloads[-1]
        with pytest.raises(IndexError):
            view.payload(len(view))
    assert payloads == [b"record 0", b"record 1", b"record 2"]
    expect: dict[OpenStatus, int] = {}
    for r in want:
        if r.status != OpenStatus.OK:
            expect[r.status] = expect.get(r.status, 0) + 1
    assert refused == expect
    assert refused[OpenStatus.REPLAY] == 1 and refused[OpenStatus.BAD_MAC] == 1
    assert refused[OpenStatus.MALFORMED] >= 3
    assert [(r.status, r.content_type, bytes(r.payload)) for r in others] == [
        (OpenStatus.OK, 21, b"\x01\x00"), (OpenStatus.BAD_EPOCH, 23, bytes(next_epoch))]


def test_recv_payloads_view_is_reused_and_invalidated(
        udp_pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = udp_pair
    seal, open_ = gcm_pair()
    tx.send(seal.seal(23, b"first"))
    assert select.select([rx], [], [], 3.0)[0]
    v1 = _cudpio.recv_payloads(open_, rx)
    first = v1.payload(0)
    assert len(v1) == 1 and v1.datagrams == 1 and bytes(first) == b"first"
    tx.send(seal.seal(23, b"second"))
    assert select.select([rx], [], [], 3.0)[0]
    v2 = _cudpio.recv_payloads(open_, rx)
    assert v2 is v1  # one view per thread, overwritten by every call
    assert bytes(v2.payload(0)) == b"second"
    assert bytes(first) == b"secon"  # a stale view sees newer data (documented), never freed memory
    assert "valid until the next receive call" in (_cudpio.PayloadView.__doc__ or "").lower()
    empty = _cudpio.recv_payloads(open_, rx)  # nothing pending
    assert empty is v1 and len(empty) == 0 and list(empty) == [] and empty.datagrams == 0
    with pytest.raises(TypeError):
        _cudpio.recv_payloads(object(), rx)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        _cudpio.recv_payloads(open_, rx, max_datagrams=0)


def test_recv_payloads_garbage_is_safe(udp_pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = udp_pair
    _, open_ = gcm_pair()
    rnd = random.Random(9)
    sent = 0
    for _ in range(200):
        n = rnd.choice([0, 1, 3, 12, 13, 14, 40, 300, 1500])
        d = bytearray(rnd.randrange(256) for _ in range(n))
        if n >= 13 and rnd.random() < 0.5:
            d[0:3] = rnd.choice([b"\x17\xfe\xfd", b"\x15\xfe\xfd", b"\x16\xfe\xff"])
        tx.send(bytes(d))
        sent += 1
    datagrams = 0
    while select.select([rx], [], [], 0.5)[0]:
        view = _cudpio.recv_payloads(open_, rx, max_datagrams=7)
        datagrams += view.datagrams
        assert len(view) == 0 and all(r.status == OpenStatus.BAD_EPOCH for r in view.others)
    assert datagrams == sent
