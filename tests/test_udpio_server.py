"""Unconnected-socket batch I/O, relays and the one-record paths (csrc/udpio.c, dtls._cudpio).

recv_from gives every datagram with the source address socket.recvfrom would give, over
IPv4 and IPv6, in every receive mode, with GRO on and off; seal_sendto reaches each peer
with the records seal would have made, in every send mode, and keeps seqs gapless on
partial sends; reprotect/relay re-seal exactly the accepted payloads (byte-identical to
sealing them directly), count refusals and hand back what they must not open; the lean
seal_send_one / recv_open_one round-trip one record per call.
"""

from __future__ import annotations

import errno
import os
import re
import select
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dtls._record", reason="the C record layer is not built")

from dtls import _crecord, _cudpio
from dtls._cudpio import SendMode, UdpCaps
from dtls.protection import BulkCipher, MacAlgorithm, Protection
from dtls.recordbase import OpenStatus, SequenceExhausted

GCM = Protection(BulkCipher.AES_128_GCM)
CBC = Protection(BulkCipher.AES_128_CBC, MacAlgorithm.SHA256, True)
CHACHA = Protection(BulkCipher.CHACHA20_POLY1305)


def state(prot: Protection = GCM, k: int = 1, epoch: int = 1) -> _crecord.CipherState:
    """A CipherState whose twin (same k) opens what it seals."""
    key = bytes([k]) * prot.key_length
    return _crecord.CipherState(
        prot, epoch=epoch, key=key, fixed_iv=bytes([k]) * prot.fixed_iv_length,
        mac_key=bytes([k + 1]) * prot.mac_length,
        iv_key=bytes([k + 2]) * 16 if prot.cipher == BulkCipher.AES_128_CBC else None)


def _have_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


FAMILIES = [
    pytest.param((socket.AF_INET, "127.0.0.1"), id="ipv4"),
    pytest.param((socket.AF_INET6, "::1"), id="ipv6", marks=[] if _have_ipv6() else [
        pytest.mark.skip(reason="no IPv6 loopback on this machine")]),
]


def _caps() -> UdpCaps:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return _cudpio.udp_caps(s)


CAPS = _caps()
NEEDS = {SendMode.PLAIN: UdpCaps.NONE, SendMode.MMSG: UdpCaps.SENDMMSG, SendMode.GSO: UdpCaps.GSO}


def send_modes() -> list[Any]:
    return [pytest.param(m, id=m.name, marks=[] if CAPS & n == n else [
        pytest.mark.skip(reason=f"{n!r} not supported here")]) for m, n in NEEDS.items()]


def recv_modes() -> list[Any]:
    mm = [] if CAPS & UdpCaps.RECVMMSG else [pytest.mark.skip(reason="no recvmmsg")]
    gro = [] if CAPS & UdpCaps.GRO else [pytest.mark.skip(reason="no UDP_GRO")]
    return [pytest.param(SendMode.PLAIN, False, id="recv"),
            pytest.param(SendMode.MMSG, False, id="recvmmsg", marks=mm),
            pytest.param(SendMode.PLAIN, True, id="recv-gro", marks=gro),
            pytest.param(SendMode.MMSG, True, id="recvmmsg-gro", marks=mm + gro)]


def udp(family: int, host: str, *, blocking: bool = False) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((host, 0))
    s.setblocking(blocking)
    return s


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    made: list[socket.socket] = []
    yield made
    for s in made:
        s.close()


def drain_from(sock: socket.socket, count: int, timeout: float = 2.0,
               **kw: Any) -> list[tuple[bytes, Any]]:
    got: list[tuple[bytes, Any]] = []
    while len(got) < count and select.select([sock], [], [], timeout)[0]:
        batch = _cudpio.recv_from(sock, **kw)
        assert batch.dropped == 0
        got += [(bytes(d), a) for d, a in batch]
    return got


# ---- recv_from -------------------------------------------------------------------------------


@pytest.mark.parametrize("fam", FAMILIES)
@pytest.mark.parametrize(("mode", "gro"), recv_modes())
def test_recv_from_many_sources(sockets: list[socket.socket], fam: tuple[int, str],
                                mode: SendMode, gro: bool) -> None:
    family, host = fam
    rx = udp(family, host)
    sockets.append(rx)
    if gro:
        _cudpio.set_gro(rx)
    peers = [udp(family, host, blocking=True) for _ in range(12)]
    sockets.extend(peers)
    sent: list[tuple[bytes, Any]] = []
    for rnd in range(5):
        for i, p in enumerate(peers):
            d = b"%d/%d:" % (rnd, i) + bytes([i]) * (i * 37 % 300)
            p.sendto(d, rx.getsockname())
            sent.append((d, p.getsockname()))
    got = drain_from(rx, len(sent), mode=mode, max_datagrams=7)
    assert sorted(got) == sorted(sent)  # GRO may reorder across flows, never within one
    for p in peers:
        assert [d for d, a in got if a == p.getsockname()] == [
            d for d, a in sent if a == p.getsockname()]
    if family == socket.AF_INET6:
        assert all(len(a) == 4 for _, a in got)


@pytest.mark.parametrize("fam", FAMILIES)
def test_addresses_equal_socket_recvfrom(sockets: list[socket.socket],
                                         fam: tuple[int, str]) -> None:
    """The same traffic read with socket.recvfrom and with recv_from: equal tuples, and
    equal raw addresses are one cached tuple."""
    family, host = fam
    rx = udp(family, host)
    peers = [udp(family, host, blocking=True) for _ in range(3)]
    sockets += [rx, *peers]
    for p in peers * 2:
        p.sendto(b"x", rx.getsockname())
    assert select.select([rx], [], [], 2.0)[0]
    time.sleep(0.02)
    want = [rx.recvfrom(100)[1] for _ in range(6)]
    for p in peers * 2:
        p.sendto(b"x", rx.getsockname())
    got = [a for _, a in drain_from(rx, 6)]
    assert got == want
    assert all(type(a) is tuple for a in got)
    assert got[0] is got[3]  # cached by raw sockaddr


def test_recv_from_gro_segments_share_the_address(sockets: list[socket.socket]) -> None:
    if not CAPS & UdpCaps.GRO or not CAPS & UdpCaps.GSO:
        pytest.skip("needs UDP_GRO and UDP_SEGMENT")
    rx = udp(socket.AF_INET, "127.0.0.1")
    tx = udp(socket.AF_INET, "127.0.0.1", blocking=True)
    sockets += [rx, tx]
    _cudpio.set_gro(rx)
    seal = state()
    payloads = [bytes([i]) * 1000 for i in range(60)] + [b"short"]
    assert _cudpio.seal_sendto(seal, tx, rx.getsockname(), 23, payloads, SendMode.GSO) == 61
    coalesced = False
    got: list[tuple[bytes, Any]] = []
    while len(got) < 61 and select.select([rx], [], [], 2.0)[0]:
        batch = _cudpio.recv_from(rx, max_datagrams=1)
        coalesced |= len(batch) > 1
        got += [(bytes(d), a) for d, a in batch]
    assert coalesced
    opener = state()
    assert [bytes(opener.open(d).payload) for d, _ in got] == payloads
    assert {a for _, a in got} == {tx.getsockname()}


def test_recv_from_bounds(sockets: list[socket.socket]) -> None:
    rx = udp(socket.AF_INET, "127.0.0.1")
    tx = udp(socket.AF_INET, "127.0.0.1", blocking=True)
    sockets += [rx, tx]
    empty = _cudpio.recv_from(rx)
    assert len(empty) == 0 and list(empty) == []
    with pytest.raises(IndexError):
        empty.datagram(0)
    for bad in (0, 1025):
        with pytest.raises(ValueError):
            _cudpio.recv_from(rx, max_datagrams=bad)
    with pytest.raises(ValueError):
        _cudpio.recv_from(rx, mode=SendMode.GSO)
    with pytest.raises(ValueError):
        _cudpio.recv_from(rx, datagram_size=65536)
    sizes = [0, 1, 0, 500, 65507, 3]
    for n in sizes:
        tx.sendto(bytes([n % 251]) * n, rx.getsockname())
    time.sleep(0.05)
    b = _cudpio.recv_from(rx, max_datagrams=2)
    assert len(b) == 2 and [len(b.datagram(i)) for i in range(2)] == [0, 1]
    assert b.address(-1) == tx.getsockname() and bytes(b.datagram(-1)) == bytes([1])
    b = _cudpio.recv_from(rx, max_datagrams=2, datagram_size=100)  # cut to the slot
    assert [len(d) for d, _ in b] == [0, 100]
    b = _cudpio.recv_from(rx, max_datagrams=4, datagram_size=65535)
    assert [len(d) for d, _ in b] == [65507, 3]
    assert bytes(b.datagram(0)) == bytes([65507 % 251]) * 65507


def test_recv_from_c_bounds() -> None:
    """dtls_recv_from called directly: dg_cap is never overrun, extra datagrams are counted
    as dropped, bad arguments are refused before any receive."""
    from dtls._record import ffi, lib
    rx = udp(socket.AF_INET, "127.0.0.1")
    tx = udp(socket.AF_INET, "127.0.0.1", blocking=True)
    with rx, tx:
        for i in range(3):
            tx.sendto(b"d%d" % i, rx.getsockname())
        time.sleep(0.05)
        buf = ffi.new("uint8_t[]", 4 * 64)
        spans = ffi.new("uint32_t[]", 2 * 2 + 2)  # one guard span after the usable two
        addrs = ffi.new("uint8_t[]", lib.DTLS_ADDR_SIZE * 3)
        alens = ffi.new("uint32_t[]", 3)
        spans[4] = alens[2] = 4242
        dropped = ffi.new("uint32_t *")
        mode = int(SendMode.MMSG if CAPS & UdpCaps.RECVMMSG else SendMode.PLAIN)
        fd = rx.fileno()
        assert lib.dtls_recv_from(fd, 2, buf, 256, 64, 4, spans, addrs, alens, 2,
                                  dropped) == lib.DTLS_ERR_ARG  # GSO: no receive mode
        assert lib.dtls_recv_from(fd, mode, buf, 256, 257, 4, spans, addrs, alens, 2,
                                  dropped) == lib.DTLS_ERR_ARG  # slot > cap
        assert lib.dtls_recv_from(fd, mode, buf, 256, 64, 4, spans, ffi.NULL, alens, 2,
                                  dropped) == lib.DTLS_ERR_ARG
        assert lib.dtls_recv_from(fd, mode, buf, 256, 64, 4, spans, addrs, alens, 0,
                                  dropped) == lib.DTLS_ERR_SPACE
        total = 0
        while total < 3:
            n = lib.dtls_recv_from(fd, mode, buf, 256, 64, 4, spans, addrs, alens, 1, dropped)
            assert n in (0, 1)
            if n == 0:
                break
            total += 1 + dropped[0]
        assert total == 3 and spans[4] == 4242 and alens[2] == 4242
        assert alens[0] == 16  # sizeof(struct sockaddr_in)


@pytest.mark.parametrize("fam", FAMILIES)
def test_server_demux_open_and_reply(sockets: list[socket.socket], fam: tuple[int, str]) -> None:
    """The intended server loop: recv_from, demultiplex by raw address, open per session
    with that session's state, reply with seal_sendto to the raw address."""
    family, host = fam
    srv = udp(family, host)
    peers = [udp(family, host, blocking=True) for _ in range(8)]
    sockets += [srv, *peers]
    c_tx = {p.getsockname(): state(k=i + 1) for i, p in enumerate(peers)}
    s_rx = {p.getsockname(): state(k=i + 1) for i, p in enumerate(peers)}
    s_tx = {p.getsockname(): state(k=100 + i) for i, p in enumerate(peers)}
    for rnd in range(3):
        for p in peers:
            msg = b"%r #%d" % (p.getsockname(), rnd)
            p.sendto(c_tx[p.getsockname()].seal(23, msg), srv.getsockname())
    sessions: dict[bytes, Any] = {}
    handled = 0
    while handled < 3 * len(peers) and select.select([srv], [], [], 2.0)[0]:
        batch = _cudpio.recv_from(srv)
        for i in range(len(batch)):
            raw = batch.raw_address(i)
            peer = sessions.setdefault(raw, batch.address(i))
            [res] = s_rx[peer].open_batch(batch.datagram(i))
            assert res.status == OpenStatus.OK
            assert bytes(res.payload).startswith(repr(peer).encode())
            assert _cudpio.seal_sendto(s_tx[peer], srv, raw, 23, [b"ack " + res.payload]) == 1
            handled += 1
    assert handled == 3 * len(peers) and len(sessions) == len(peers)
    for i, p in enumerate(peers):
        opener = state(k=100 + i)
        acks = [bytes(opener.open(p.recv(200)).payload) for _ in range(3)]
        assert acks == [b"ack %r #%d" % (p.getsockname(), r) for r in range(3)]


# ---- seal_sendto -----------------------------------------------------------------------------


@pytest.mark.parametrize("fam", FAMILIES)
@pytest.mark.parametrize("mode", send_modes())
def test_seal_sendto_reaches_each_peer(sockets: list[socket.socket], fam: tuple[int, str],
                                       mode: SendMode) -> None:
    family, host = fam
    srv = udp(family, host, blocking=True)
    peers = [udp(family, host) for _ in range(4)]
    sockets += [srv, *peers]
    sizes = [1200] * 70 + [300, 0, 16384] + [(i * 97) % 1400 for i in range(20)]
    for k, p in enumerate(peers):
        payloads = [os.urandom(n) for n in sizes]
        seal, ref = state(k=k + 1), state(k=k + 1)
        addr: Any = p.getsockname() if k % 2 else _cudpio._sockaddr(srv, p.getsockname())
        assert _cudpio.seal_sendto(seal, srv, addr, 23, payloads, mode) == len(payloads)
        assert seal.next_seq == len(payloads)
        wire: list[bytes] = []
        while len(wire) < len(payloads) and select.select([p], [], [], 2.0)[0]:
            data, src = p.recvfrom(65535)
            assert src == srv.getsockname()
            wire.append(data)
        assert wire == [ref.seal(23, x) for x in payloads]


def test_sendto_address_forms(sockets: list[socket.socket]) -> None:
    srv = udp(socket.AF_INET, "127.0.0.1", blocking=True)
    p = udp(socket.AF_INET, "127.0.0.1")
    sockets += [srv, p]
    port = p.getsockname()[1]
    seal, opener = state(), state()
    for addr in [("127.0.0.1", port), ("localhost", port)]:
        assert _cudpio.seal_sendto(seal, srv, addr, 23, [b"hi"]) == 1
        assert select.select([p], [], [], 2.0)[0]
        assert bytes(opener.open(p.recv(100)).payload) == b"hi"
    bads: list[tuple[Any, type[Exception]]] = [(("127.0.0.1", 70000), OverflowError), (("127.0.0.1",), TypeError),
                     (["127.0.0.1", port], TypeError), (b"\x02", ValueError),
                     (bytes(129), ValueError)]
    for bad, err in bads:
        with pytest.raises(err):
            _cudpio.seal_sendto(seal, srv, bad, 23, [b"x"])
    assert seal.next_seq == 2
    if _have_ipv6():
        s6 = udp(socket.AF_INET6, "::1", blocking=True)
        p6 = udp(socket.AF_INET6, "::1")
        sockets += [s6, p6]
        for addr6 in [p6.getsockname(), p6.getsockname()[:2], ("::1", p6.getsockname()[1], 0)]:
            assert _cudpio.seal_sendto(seal, s6, addr6, 23, [b"v6"]) == 1
            assert select.select([p6], [], [], 2.0)[0]
            assert bytes(opener.open(p6.recv(100)).payload) == b"v6"


def _unix_addr(path: str) -> bytes:
    return struct.pack("=H", socket.AF_UNIX) + path.encode() + b"\0"


@pytest.mark.parametrize("mode", [SendMode.PLAIN, SendMode.MMSG], ids=["PLAIN", "MMSG"])
def test_seal_sendto_partial_sends(tmp_path: Path, mode: SendMode) -> None:
    """Loopback UDP never pushes back; an unconnected AF_UNIX datagram socket does, through
    the same C send paths (given a raw sockaddr_un)."""
    if mode == SendMode.MMSG and not CAPS & UdpCaps.SENDMMSG:
        pytest.skip("no sendmmsg")
    path = str(tmp_path / "rx")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with rx, tx:
        rx.bind(path)
        rx.setblocking(False)
        tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        tx.setblocking(False)
        seal, opener = state(), state()
        payloads = [i.to_bytes(4, "big") * 250 for i in range(1500)]
        sent = calls = partial = 0
        got: list[bytes] = []
        while sent < len(payloads):
            k = _cudpio.seal_sendto(seal, tx, _unix_addr(path), 23, payloads[sent:], mode)
            calls += 1
            partial += k < len(payloads) - sent
            sent += k
            assert seal.next_seq == sent
            while True:
                try:
                    got.append(bytes(opener.open(rx.recv(2000)).payload))
                except BlockingIOError:
                    break
            assert calls < 10_000
        assert partial > 0
        assert got == payloads


# ---- reprotect -------------------------------------------------------------------------------


@pytest.mark.parametrize(("pin", "pout"), [(GCM, GCM), (GCM, CBC), (CBC, CHACHA), (CHACHA, GCM)],
                         ids=["gcm-gcm", "gcm-cbc", "cbc-chacha", "chacha-gcm"])
def test_reprotect_equals_sealing_directly(pin: Protection, pout: Protection) -> None:
    a_seal, a_in = state(pin, 1), state(pin, 1)     # A's sender, the relay's view of A
    b_out, b_ref, b_peer = state(pout, 2), state(pout, 2), state(pout, 2)
    b_out.next_seq = b_ref.next_seq = 77
    payloads = [os.urandom(n) for n in [0, 1, 100, 1400, 16384, 15, 16, 17]]
    dgrams = [a_seal.seal(23, p) for p in payloads]
    data = b"".join(dgrams[:3]) + b"".join(dgrams[3:])  # two datagrams of several records
    lens = [sum(map(len, dgrams[:3])), sum(map(len, dgrams[3:]))]
    v = _cudpio.reprotect(a_in, b_out, memoryview(data), lens)
    assert len(v) == len(payloads) and v.refused == {} and v.others == [] and v.datagrams == 2
    expected = [b_ref.seal(23, p) for p in payloads]
    assert [bytes(r) for r in v] == expected
    assert [bytes(v.record(i)) for i in range(len(v))] == expected
    assert bytes(v.records) == b"".join(expected)
    assert list(v.lengths) == [len(e) for e in expected]
    assert [bytes(b_peer.open(bytes(r)).payload) for r in v] == payloads
    assert b_out.next_seq == 77 + len(payloads) and a_in.highest_seq == len(payloads) - 1


def test_reprotect_refuses_replays_and_forgeries() -> None:
    a_seal, a_in, b_out, b_peer = state(k=1), state(k=1), state(k=2), state(k=2)
    good = [a_seal.seal(23, b"m%d" % i) for i in range(6)]
    v = _cudpio.reprotect(a_in, b_out, good[0] + good[1])
    assert len(v) == 2 and v.refused == {}
    forged = bytearray(good[4])
    forged[-1] ^= 1
    other_key = state(k=9)
    other_key.next_seq = 5
    spoof = other_key.seal(23, b"spoof")  # seq 5 under a wrong key
    alert = a_seal.seal(21, b"\x01\x00")
    next_epoch = state(k=1, epoch=2).seal(23, b"e2")
    garbage = b"\x17\xfe\xfd\x00\x01" + bytes(6) + b"\xff\xff" + b"cut"
    parts = [good[0], good[1], bytes(forged), spoof, alert, next_epoch, good[2], good[2],
             garbage]
    window_before = a_in.highest_seq
    v = _cudpio.reprotect(a_in, b_out, b"".join(parts), [len(p) for p in parts])
    assert len(v) == 1  # only good[2], once
    assert v.refused == {OpenStatus.BAD_MAC: 2, OpenStatus.REPLAY: 3,
                         OpenStatus.BAD_EPOCH: 1, OpenStatus.MALFORMED: 1}
    assert v.others == [alert, next_epoch]  # unopened: the caller's to open
    assert a_in.highest_seq == 2 and window_before == 1
    # The forgeries moved no window: the genuine seq 4 and 5 records are still accepted.
    assert a_in.open(alert).status == OpenStatus.OK  # and the alert opens for the caller
    v = _cudpio.reprotect(a_in, b_out, good[4] + good[5] + good[3])
    assert len(v) == 3 and v.refused == {}
    assert [bytes(b_peer.open(bytes(r)).payload) for r in v] == [b"m4", b"m5", b"m3"]


def test_reprotect_bounds_and_all_or_nothing() -> None:
    from dtls._record import ffi, lib
    a_seal, a_in, b_out = state(k=1), state(k=1), state(CBC, 2)
    assert len(_cudpio.reprotect(a_in, b_out, b"")) == 0
    tiny = [a_seal.seal(23, b"") for _ in range(40)]  # the worst growth: empty payloads
    v = _cudpio.reprotect(a_in, b_out, b"".join(tiny))
    assert len(v) == 40 and b_out.next_seq == 40
    b_out.next_seq = (1 << 48) - 2  # room for 2 more records, not 3
    recs = [a_seal.seal(23, b"x") for _ in range(3)]
    highest = a_in.highest_seq
    with pytest.raises(SequenceExhausted):
        _cudpio.reprotect(a_in, b_out, b"".join(recs))
    assert a_in.highest_seq == highest and b_out.next_seq == (1 << 48) - 2  # nothing moved
    with pytest.raises(ValueError):
        _cudpio.reprotect(a_in, b_out, b"abc", [1, 1])
    with pytest.raises(ValueError):
        _cudpio.reprotect(a_in, b_out, b"abc", content_type=300)
    with pytest.raises(TypeError):
        _cudpio.reprotect(object(), b_out, b"")  # type: ignore[arg-type]
    # The C bounds directly: short out, lens or others, or a span outside the input.
    data = b"".join(recs)
    spans = ffi.new("uint32_t[]", [0, len(data)])
    out = ffi.new("uint8_t[]", 4096)
    lens, others = ffi.new("uint32_t[]", 8), ffi.new("uint32_t[]", 16)
    nothers, counts = ffi.new("uint32_t *"), ffi.new("uint32_t[]", lib.DTLS_STATUS_SLOTS)
    b2 = state(k=3)
    args = (a_in._st, b2._st, 23, data, len(data))
    need = 3 * int(lib.dtls_state_record_len(b2._st, 1 + 8 + 16))  # worst case per record
    assert lib.dtls_reprotect(*args, spans, 1, out, need - 1, lens, 8, others, 8, nothers,
                              counts) == lib.DTLS_ERR_SPACE
    assert lib.dtls_reprotect(*args, spans, 1, out, 4096, lens, 2, others, 8, nothers,
                              counts) == lib.DTLS_ERR_SPACE
    assert lib.dtls_reprotect(*args, spans, 1, out, 4096, lens, 8, others, 2, nothers,
                              counts) == lib.DTLS_ERR_SPACE
    bad = ffi.new("uint32_t[]", [1, len(data)])
    assert lib.dtls_reprotect(*args, bad, 1, out, 4096, lens, 8, others, 8, nothers,
                              counts) == lib.DTLS_ERR_ARG
    assert a_in.highest_seq == highest and b2.next_seq == 0
    assert lib.dtls_reprotect(*args, spans, 1, out, need, lens, 3, others, 3, nothers,
                              counts) == 3


# ---- relay -----------------------------------------------------------------------------------


@pytest.mark.parametrize("send_mode", send_modes())
@pytest.mark.parametrize(("recv_mode", "gro"), recv_modes())
def test_relay_one_call(sockets: list[socket.socket], send_mode: SendMode, recv_mode: SendMode,
                        gro: bool) -> None:
    a = udp(socket.AF_INET, "127.0.0.1", blocking=True)
    relay_in = udp(socket.AF_INET, "127.0.0.1")
    relay_out = udp(socket.AF_INET, "127.0.0.1", blocking=True)
    b = udp(socket.AF_INET, "127.0.0.1")
    sockets += [a, relay_in, relay_out, b]
    if gro:
        _cudpio.set_gro(relay_in)
    a.connect(relay_in.getsockname())
    a_seal, a_in = state(k=1), state(k=1)
    b_out, b_ref, b_peer = state(k=2), state(k=2), state(k=2)
    payloads = [os.urandom(n) for n in [1000] * 50 + [10, 0, 1400] + [1200] * 20]
    a_mode = SendMode.GSO if CAPS & UdpCaps.GSO else SendMode.PLAIN
    assert _cudpio.seal_send(a_seal, a, 23, payloads[:40], a_mode) == 40
    a.send(a_seal.seal(21, b"\x01\x00"))  # an alert in the middle comes back unopened
    assert _cudpio.seal_send(a_seal, a, 23, payloads[40:], a_mode) == len(payloads) - 40
    relayed, others = 0, []
    addr = b.getsockname()
    while relayed < len(payloads) and select.select([relay_in], [], [], 2.0)[0]:
        v = _cudpio.relay(a_in, relay_in, b_out, relay_out, addr, max_datagrams=8,
                          recv_mode=recv_mode, send_mode=send_mode)
        assert v.sent == len(v) and v.error == 0 and v.dropped == 0 and v.refused == {}
        relayed += len(v)
        others += v.others
    assert relayed == len(payloads)
    assert len(others) == 1 and a_in.open(others[0]).payload == b"\x01\x00"
    wire: list[bytes] = []
    while len(wire) < len(payloads) and select.select([b], [], [], 2.0)[0]:
        wire.append(b.recv(65535))
    assert wire == [b_ref.seal(23, p) for p in payloads]
    assert [bytes(b_peer.open(w).payload) for w in wire] == payloads


def test_relay_connected_out_and_garbage(sockets: list[socket.socket]) -> None:
    relay_in = udp(socket.AF_INET, "127.0.0.1")
    relay_out = udp(socket.AF_INET, "127.0.0.1", blocking=True)
    b = udp(socket.AF_INET, "127.0.0.1")
    a = udp(socket.AF_INET, "127.0.0.1", blocking=True)
    sockets += [relay_in, relay_out, b, a]
    relay_out.connect(b.getsockname())
    a_seal, a_in, b_out, b_peer = state(k=1), state(k=1), state(k=2), state(k=2)
    empty = _cudpio.relay(a_in, relay_in, b_out, relay_out)
    assert len(empty) == 0 and empty.datagrams == 0
    good = a_seal.seal(23, b"ok")
    for d in [b"", b"\x17\xfe", bytes(range(256)) + bytes(44), good, good]:
        a.sendto(d, relay_in.getsockname())
    time.sleep(0.05)
    v = _cudpio.relay(a_in, relay_in, b_out, relay_out, max_datagrams=16)
    assert v.datagrams == 5 and len(v) == v.sent == 1
    assert v.refused.get(OpenStatus.REPLAY) == 1 and v.refused[OpenStatus.MALFORMED] >= 1
    assert select.select([b], [], [], 2.0)[0]
    assert b_peer.open(b.recv(100)).payload == b"ok"


def test_relay_unsent_records_stay_valid(tmp_path: Path) -> None:
    """A full out socket: relay reports what it sent; the rest are valid records, and
    out_state's seqs are not reused."""
    path = str(tmp_path / "b")
    b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    relay_out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    relay_in = udp(socket.AF_INET, "127.0.0.1")
    a = udp(socket.AF_INET, "127.0.0.1", blocking=True)
    with b, relay_out, relay_in, a:
        b.bind(path)
        b.setblocking(False)
        relay_out.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        relay_out.setblocking(False)
        a_seal, a_in, b_out, b_peer = state(k=1), state(k=1), state(k=2), state(k=2)
        payloads = [i.to_bytes(2, "big") * 500 for i in range(200)]
        for p in payloads:
            a.sendto(a_seal.seal(23, p), relay_in.getsockname())
        time.sleep(0.05)
        got, partial = [], False
        while select.select([relay_in], [], [], 0.2)[0]:
            v = _cudpio.relay(a_in, relay_in, b_out, relay_out, _unix_addr(path),
                              max_datagrams=64, send_mode=SendMode.PLAIN)
            if v.sent < len(v):
                partial = True
                assert v.error in (errno.EAGAIN, errno.ENOBUFS)
                unsent = [bytes(v.record(i)) for i in range(v.sent, len(v))]
            else:
                unsent = []
            while True:
                try:
                    got.append(b_peer.open(b.recv(2000)))
                except BlockingIOError:
                    break
            for rec in unsent:  # retried once the queue drained
                relay_out.sendto(rec, path)
                got.append(b_peer.open(b.recv(2000)))
        assert partial
        assert [bytes(r.payload) for r in got] == payloads
        assert [r.seq for r in got] == list(range(len(payloads)))


# ---- the one-record paths --------------------------------------------------------------------


def test_one_record_round_trip() -> None:
    x, y = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with x, y:
        y.setblocking(False)
        seal, opener = state(), state()
        assert _cudpio.recv_open_one(opener, y) is None
        ps: list[bytes | bytearray | memoryview] = [b"", b"a", bytes(16384), bytearray(b"ba"),
                                                    memoryview(b"mv")]
        for p in ps:
            assert _cudpio.seal_send_one(seal, x, 23, p) == 1
            r = _cudpio.recv_open_one(opener, y)
            assert r is not None and not isinstance(r, list)
            assert (r.status, r.content_type, r.epoch, bytes(r.payload)) == (
                OpenStatus.OK, 23, 1, bytes(p))
        assert seal.next_seq == 5
        x.send(seal.seal(23, b"one") + seal.seal(22, b"two"))  # several records: a list
        several = _cudpio.recv_open_one(opener, y)
        assert isinstance(several, list)
        assert [(r.content_type, bytes(r.payload)) for r in several] == [(23, b"one"),
                                                                         (22, b"two")]
        x.send(b"")
        assert _cudpio.recv_open_one(opener, y) == []
        replay = seal.seal(23, b"r")
        forged = bytearray(seal.seal(23, b"f"))
        forged[-1] ^= 1
        e2 = state(epoch=2).seal(23, b"e2")
        for d in [replay, replay, bytes(forged), e2, b"\x17"]:
            x.send(d)
        sts = [_cudpio.recv_open_one(opener, y) for _ in range(5)]
        assert [r.status for r in sts] == [  # type: ignore[union-attr]
            OpenStatus.OK, OpenStatus.REPLAY, OpenStatus.BAD_MAC, OpenStatus.BAD_EPOCH,
            OpenStatus.MALFORMED]
        assert sts[3].payload == e2 and sts[1].payload == b""  # type: ignore[union-attr]


def test_one_record_errors_and_would_block() -> None:
    x, y = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with x, y:
        seal = state()
        with pytest.raises(ValueError):
            _cudpio.seal_send_one(seal, x, 23, bytes(16385))
        with pytest.raises(ValueError):
            _cudpio.seal_send_one(seal, x, 256, b"x")
        with pytest.raises(TypeError):
            from dtls import _pyrecord
            py: Any = _pyrecord.CipherState(GCM, epoch=1, key=bytes(16), fixed_iv=bytes(4))
            _cudpio.seal_send_one(py, x, 23, b"x")
        with pytest.raises(TypeError):
            _cudpio.recv_open_one(object(), y)  # type: ignore[arg-type]
        assert seal.next_seq == 0
        x.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        x.setblocking(False)
        sent = 0
        for _ in range(10_000):
            if not _cudpio.seal_send_one(seal, x, 23, b"z" * 1000):
                break
            sent += 1
        else:
            pytest.fail("the socket never filled up")
        assert seal.next_seq == sent  # the unsent record gave its seq back
        y.setblocking(False)
        opener = state()
        seqs = []
        while (r := _cudpio.recv_open_one(opener, y)) is not None:
            seqs.append(r.seq)  # type: ignore[union-attr]
        assert seqs == list(range(sent))
    unconnected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with unconnected, pytest.raises(OSError):
        _cudpio.seal_send_one(seal, unconnected, 23, b"x")
    with pytest.raises(OSError):
        _cudpio.seal_send_one(seal, unconnected, 23, b"x")  # closed: EBADF
    assert seal.next_seq == sent


# ---- the cdef restates udpio.h ---------------------------------------------------------------


def test_cdef_matches_udpio_header() -> None:
    from dtls._record import lib
    text = (Path(__file__).resolve().parents[1] / "csrc" / "udpio.h").read_text()
    defines = {k: int(v) for k, v in re.findall(r"^#define (DTLS_\w+) \(?(-?\d+)\)?", text,
                                                re.MULTILINE)}
    for name in ("DTLS_ADDR_SIZE", "DTLS_RECV_SEVERAL", "DTLS_RELAY_DATAGRAMS",
                 "DTLS_RELAY_DROPPED", "DTLS_RELAY_SEALED", "DTLS_RELAY_SENT",
                 "DTLS_RELAY_ERRNO", "DTLS_RELAY_INFO", "DTLS_STATUS_SLOTS", "DTLS_ERR_OS_BASE",
                 "DTLS_UDP_GSO", "DTLS_GSO_MAX_BYTES"):
        assert getattr(lib, name) == defines[name], name
    from dtls import _sockaddr  # the pure-Python address code sizes raw addresses alike
    assert _sockaddr._ADDR_SIZE == lib.DTLS_ADDR_SIZE


# ---- the bound one-record sender and batch receiver (DtlsSocket's established path) ----------


def test_one_sender_equals_seal_send_one() -> None:
    x, y = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with x, y:
        y.setblocking(False)
        seal, twin, opener = state(), state(), state()
        send = _cudpio.one_sender(seal, x)
        for p in [b"", b"a", bytes(16384), bytearray(b"ba"), memoryview(b"mv")]:
            assert send(p) == 1
            assert y.recv(20000) == twin.seal(23, bytes(p))  # byte-identical records
        assert seal.next_seq == 5
        with pytest.raises(ValueError):
            send(bytes(16385))
        assert seal.next_seq == 5
        x.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        x.setblocking(False)
        sent = 0
        for _ in range(10_000):
            if not send(b"z" * 1000):
                break
            sent += 1
        else:
            pytest.fail("the socket never filled up")
        assert seal.next_seq == 5 + sent  # the unsent record gave its seq back
        seqs = []
        while (r := _cudpio.recv_open_one(opener, y)) is not None:
            seqs.append(r.seq)  # type: ignore[union-attr]
        assert seqs == list(range(5, 5 + sent))
        with pytest.raises(ValueError):
            _cudpio.one_sender(seal, x, 256)
        with pytest.raises(TypeError):
            from dtls import _pyrecord
            py: Any = _pyrecord.CipherState(GCM, epoch=1, key=bytes(16), fixed_iv=bytes(4))
            _cudpio.one_sender(py, x)


def test_payload_receiver_equals_recv_payloads() -> None:
    a, b = udp(socket.AF_INET, "127.0.0.1"), udp(socket.AF_INET, "127.0.0.1")
    with a, b:
        a.connect(b.getsockname())
        b.connect(a.getsockname())
        seal, opener = state(), state()
        receive = _cudpio.payload_receiver(opener, b, 8)
        assert len(receive()) == 0 and receive().datagrams == 0  # nothing pending
        payloads = [bytes([i]) * (i * 37) for i in range(20)]
        for p in payloads:
            a.send(seal.seal(23, p))
        a.send(seal.seal(21, b"\x01\x00"))  # an alert: handed back in others
        got: list[bytes] = []
        others = []
        deadline = time.monotonic() + 2
        while (len(got) < len(payloads) or not others) and time.monotonic() < deadline:
            view = receive()
            assert view.datagrams <= 8
            copies = view._copies()
            assert copies == [bytes(p) for p in view]
            assert view._copies(2) == copies[:2]
            got.extend(copies)
            others.extend(view.others)
        assert got == payloads
        assert [(r.content_type, bytes(r.payload)) for r in others] == [(21, b"\x01\x00")]
    with pytest.raises(OSError):
        receive()  # the socket is closed
    with pytest.raises(TypeError):
        _cudpio.payload_receiver(object(), b)  # type: ignore[arg-type]
