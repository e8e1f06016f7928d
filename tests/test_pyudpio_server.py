"""The pure-Python twins of the server, relay and one-record paths (dtls._pyudpio: recv_from,
seal_sendto, reprotect, relay, seal_send_one, recv_open_one) against dtls._cudpio.

The same traffic goes through C and through the twin (with either record layer), and what
comes out must be equal: the datagrams and source addresses recv_from gives (IPv4, IPv6,
AF_UNIX, several senders), the bytes seal_sendto puts on the wire, reprotect's records
byte for byte with its refusal counts and hand-backs on forged, replayed, wrong-epoch,
other-type and multi-record input, relay end to end, the one-record paths including
would-block and multi-record datagrams, and the partial-send accounting where the kernel
pushes back (AF_UNIX).  Also the regression test for dtls_udp_caps, which used to probe
recvmmsg on the caller's socket and so swallow a pending socket error.
"""

from __future__ import annotations

import errno
import random
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dtls import _pyrecord, _pyudpio
from dtls._pyudpio import SendMode, UdpCaps
from dtls.protection import BulkCipher, MacAlgorithm, Protection
from dtls.recordbase import DTLS1_0, MAX_SEQ, OpenStatus

_crecord: ModuleType | None
_cudpio: ModuleType | None
try:
    from dtls import _crecord, _cudpio
    C_MISSING = ""
except ImportError as exc:  # a pure-Python install: only the twin halves run
    _crecord = _cudpio = None
    C_MISSING = f"C record layer not built: {exc}"

needs_c = pytest.mark.skipif(_cudpio is None, reason=C_MISSING or "n/a")

GCM = Protection(BulkCipher.AES_128_GCM)
CBC = Protection(BulkCipher.AES_128_CBC, MacAlgorithm.SHA256, True)
CHACHA = Protection(BulkCipher.CHACHA20_POLY1305)

NAMES = ["twin-py"] + (["twin-c", "c"] if _cudpio is not None else [])


def impl(name: str) -> tuple[ModuleType, ModuleType]:
    if name == "twin-py":
        return _pyudpio, _pyrecord
    assert _cudpio is not None and _crecord is not None
    return (_pyudpio if name == "twin-c" else _cudpio), _crecord


def state(rec: ModuleType, prot: Protection = GCM, k: int = 1, epoch: int = 1,
          seq: int = 0) -> Any:
    """A CipherState of backend `rec`; the same (prot, k, epoch) is the same key material."""
    rnd = random.Random(k)
    s = rec.CipherState(prot, epoch=epoch, window=64, key=rnd.randbytes(prot.key_length),
                        fixed_iv=rnd.randbytes(prot.fixed_iv_length),
                        mac_key=rnd.randbytes(prot.mac_length),
                        iv_key=rnd.randbytes(prot.key_length) if prot.is_cbc else None)
    s.next_seq = seq
    return s


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


@contextmanager
def unix_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """AF_UNIX datagrams queue synchronously: batch boundaries are deterministic, and a
    reader that does not read makes the sender block."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        b.setblocking(False)
        yield a, b


def row(r: Any) -> tuple[Any, ...]:
    return (r.status, r.content_type, r.epoch, r.seq, bytes(r.payload))


def outcome(fn: Callable[[], Any], after: Callable[[], Any] = lambda: None) -> str:
    try:
        r = fn()
    except Exception as e:  # noqa: BLE001 - the type and errno are what is compared
        return f"{type(e).__name__}:{getattr(e, 'errno', None)}:{after()}"
    return f"= {r!r}:{after()}"


def traffic(rec: ModuleType = _pyrecord) -> list[bytes]:
    """Datagrams (epoch 1, GCM, k=1) covering every verdict reprotect and the one-record
    paths can give: good, multi-record, forged, replayed, other epoch, other content type,
    cut, trailing junk, empty, too short, old version, too old, overflowing."""
    s = state(rec)

    def seal(payload: bytes, ctype: int = 23, seq: int | None = None) -> bytes:
        if seq is not None:
            s.next_seq = seq
        return bytes(s.seal(ctype, payload))

    good = seal(b"record 0")
    multi = seal(b"one") + seal(b"\x02\x28", ctype=21) + seal(b"three" * 50)
    forged = bytearray(seal(b"forged"))
    forged[-1] ^= 1
    other_epoch = bytes(state(rec, epoch=2).seal(23, b"epoch 2"))
    cut = seal(b"cut short " * 20)[:-5]
    trailing = seal(b"then junk") + b"\x00\x01"
    old_version = bytearray(seal(b"dtls 1.0"))
    old_version[1:3] = struct.pack(">H", DTLS1_0)
    ahead = seal(b"seq 300", seq=300)
    too_old = seal(b"seq 100", seq=100)
    twice = seal(b"twice", seq=302)
    hs = seal(b"\x01" + bytes(11), ctype=22)
    mixed = seal(b"app a") + seal(b"\x14", ctype=20) + state(rec, epoch=2).seal(23, b"e2 in") \
        + seal(b"app b")
    huge_len = b"\x17\xfe\xfd\x00\x01" + bytes(6) + b"\xff\xff" + b"x"
    return [good, multi, bytes(forged), good, other_epoch, cut, trailing, b"", b"\x17\xfe\xfd",
            bytes(old_version), ahead, too_old, twice + twice, hs, mixed, huge_len,
            random.Random(5).randbytes(300), _overflowing(seq=400), seal(b"last " * 200, seq=401)]


def _overflowing(seq: int) -> bytes:
    """An authentic GCM record with 2^14 + 1 plaintext bytes: RECORD_OVERFLOW."""
    rnd = random.Random(1)
    key, iv = rnd.randbytes(16), rnd.randbytes(4)
    plain = bytes(16385)
    explicit = struct.pack(">HHI", 1, seq >> 32, seq & 0xFFFFFFFF)
    aad = explicit + struct.pack(">BHH", 23, 0xFEFD, len(plain))
    frag = explicit + _pyrecord.aead_encrypt(GCM.cipher, key, iv + explicit, aad, plain)
    return struct.pack(">BH", 23, 0xFEFD) + explicit + struct.pack(">H", len(frag)) + frag


# ---- recv_from -------------------------------------------------------------------------------


def _recv_from_all(mod: ModuleType, rx: socket.socket, count: int,
                   **kw: Any) -> list[tuple[bytes, Any, bytes]]:
    got: list[tuple[bytes, Any, bytes]] = []
    while len(got) < count and select.select([rx], [], [], 2.0)[0]:
        b = mod.recv_from(rx, **kw)
        assert b.dropped == 0
        assert [bytes(d) for d, _ in b] == [bytes(b.datagram(i)) for i in range(len(b))]
        got += [(bytes(b.datagram(i)), b.address(i), b.raw_address(i)) for i in range(len(b))]
    return got


@pytest.mark.parametrize("fam", FAMILIES)
@pytest.mark.parametrize("kw", [{}, {"max_datagrams": 3}, {"mode": SendMode.PLAIN},
                                {"datagram_size": 100}], ids=["default", "max3", "plain",
                                                             "slot100"])
def test_recv_from_matches_c(sockets: list[socket.socket], fam: tuple[int, str],
                             kw: dict[str, Any]) -> None:
    """Several senders, the same datagrams for each implementation: equal bytes (cut to the
    slot alike), equal address tuples (those socket.recvfrom gives) and equal raw
    sockaddrs, in arrival order."""
    family, host = fam
    peers = [udp(family, host, blocking=True) for _ in range(5)]
    sockets.extend(peers)
    sizes = [0, 1, 13, 99, 100, 101, 1500, 0, 7, 300]
    seen: dict[str, Any] = {}
    for name in ["truth", *NAMES]:
        rx = udp(family, host)
        sockets.append(rx)
        sent = []
        for i, n in enumerate(sizes):
            for j, p in enumerate(peers):
                d = bytes([i * 16 + j]) * n
                p.sendto(d, rx.getsockname())
                sent.append((d, p.getsockname()))
        if name == "truth":
            assert select.select([rx], [], [], 2.0)[0]
            time.sleep(0.02)
            slot = kw.get("datagram_size", 65535)
            seen[name] = [rx.recvfrom(slot)[:2] for _ in sent]
            assert sorted(a for _, a in seen[name]) == sorted(a for _, a in sent)
            continue
        got = _recv_from_all(impl(name)[0], rx, len(sent), **kw)
        seen[name] = got
        assert [(d, a) for d, a, _ in got] == seen["truth"], name
    if "c" in seen:
        assert seen["twin-py"] == seen["c"]
        assert seen["twin-c"] == seen["c"]


@needs_c
def test_recv_from_unix_addresses_match_c(tmp_path: Path) -> None:
    """AF_UNIX: a bound sender's raw address is sockaddr_un with the path and its NUL (the
    kernel's length), an unbound one gives no address at all; both as C stores them."""
    assert _cudpio is not None
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    unbound = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with rx, bound, unbound:
        rx.bind(str(tmp_path / "rx"))
        bound.bind(str(tmp_path / "tx"))
        rx.setblocking(False)
        seen = {}
        for name in ("twin-py", "c"):
            for s, d in [(bound, b"a"), (unbound, b"b"), (bound, b"")]:
                s.sendto(d, str(tmp_path / "rx"))
            seen[name] = _recv_from_all(impl(name)[0], rx, 3)
        assert seen["twin-py"] == seen["c"]
        raw = seen["c"][0][2]
        assert raw == struct.pack("=H", socket.AF_UNIX) + str(tmp_path / "tx").encode() + b"\0"
        assert seen["c"][1][1:] == (b"", b"")


def test_datagram_batch_semantics() -> None:
    with unix_pair() as (tx, rx):
        for d in (b"one", b"two", b"three"):
            tx.send(d)
        b1 = _pyudpio.recv_from(rx, max_datagrams=2)
        assert len(b1) == 2 and bytes(b1.datagram(-1)) == b"two" and b1.dropped == 0
        for bad in (2, -3):
            with pytest.raises(IndexError):
                b1.datagram(bad)
        b2 = _pyudpio.recv_from(rx)
        assert b2 is b1 and len(b2) == 1 and bytes(b2.datagram(0)) == b"three"
        empty = _pyudpio.recv_from(rx)
        assert len(empty) == 0 and list(empty) == [] and "DatagramBatch(0" in repr(empty)
        for bad_kw in ({"max_datagrams": 0}, {"max_datagrams": 1025}, {"mode": SendMode.GSO},
                       {"datagram_size": 65536}):
            with pytest.raises(ValueError):
                _pyudpio.recv_from(rx, **bad_kw)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, pytest.raises(OSError):
        _pyudpio.recv_from(tcp)


@pytest.mark.parametrize("fam", FAMILIES)
def test_server_loop_on_the_twin(sockets: list[socket.socket], fam: tuple[int, str]) -> None:
    """The intended server loop (recv_from, demultiplex by raw address, open per session,
    reply with seal_sendto to the raw address) on the twin alone, with cached tuples."""
    family, host = fam
    srv = udp(family, host)
    peers = [udp(family, host, blocking=True) for _ in range(4)]
    sockets += [srv, *peers]
    c_tx = [state(_pyrecord, k=i + 1) for i in range(4)]
    for rnd in range(2):
        for i, p in enumerate(peers):
            p.sendto(c_tx[i].seal(23, b"%d #%d" % (i, rnd)), srv.getsockname())
    index = {p.getsockname(): i for i, p in enumerate(peers)}
    s_rx = [state(_pyrecord, k=i + 1) for i in range(4)]
    s_tx = [state(_pyrecord, k=50 + i) for i in range(4)]
    handled = 0
    tuples: dict[bytes, Any] = {}
    while handled < 8 and select.select([srv], [], [], 2.0)[0]:
        batch = _pyudpio.recv_from(srv)
        for i in range(len(batch)):
            raw, addr = batch.raw_address(i), batch.address(i)
            assert tuples.setdefault(raw, addr) is addr  # one cached tuple per raw address
            k = index[addr]
            [res] = s_rx[k].open_batch(batch.datagram(i))
            assert _pyudpio.seal_sendto(s_tx[k], srv, raw, 23, [b"ack " + res.payload]) == 1
            handled += 1
    assert handled == 8 and len(tuples) == 4
    for i, p in enumerate(peers):
        opener = state(_pyrecord, k=50 + i)
        assert [bytes(opener.open(p.recv(200)).payload) for _ in range(2)] == [
            b"ack %d #%d" % (i, r) for r in range(2)]


# ---- seal_sendto -----------------------------------------------------------------------------


@pytest.mark.parametrize("fam", FAMILIES)
def test_seal_sendto_wire_matches_c(sockets: list[socket.socket], fam: tuple[int, str]) -> None:
    """Tuple and raw addresses, several peers: the same record bytes on the wire (the
    reference seal_batch's), from the sending socket's address, for every implementation."""
    family, host = fam
    srv = udp(family, host, blocking=True)
    peers = [udp(family, host) for _ in range(3)]
    sockets += [srv, *peers]
    sizes = [0, 1, 15, 16, 17, 1200, 16384, 300]
    for k, p in enumerate(peers):
        payloads = [bytes([k * 10 + i]) * n for i, n in enumerate(sizes)]
        expected = [bytes(r) for r in state(_pyrecord, k=k + 1, seq=1 << 40)
                    .seal_batch(23, payloads)]
        for name in NAMES:
            mod, rec = impl(name)
            seal = state(rec, k=k + 1, seq=1 << 40)
            addr: Any = p.getsockname() if k % 2 else _pyudpio._sockaddr(srv, p.getsockname())
            if k == 2:
                addr = p.getsockname()[:2]  # host and port only (IPv6: flow, scope 0)
            assert mod.seal_sendto(seal, srv, addr, 23, payloads) == len(payloads), name
            assert seal.next_seq == (1 << 40) + len(payloads)
            wire: list[bytes] = []
            while len(wire) < len(payloads) and select.select([p], [], [], 2.0)[0]:
                data, src = p.recvfrom(65535)
                assert src == srv.getsockname()
                wire.append(data)
            assert wire == expected, name


def _sendto_errors(mod: ModuleType, rec: ModuleType) -> list[str]:
    out = []
    srv = udp(socket.AF_INET, "127.0.0.1", blocking=True)
    with srv:
        seal = state(rec, seq=3)

        def nseq() -> int:
            return int(seal.next_seq)

        port = srv.getsockname()[1]
        for addr in [("127.0.0.1", 70000), ("127.0.0.1",), ["127.0.0.1", port], b"\x02",
                     bytes(129), ("127.0.0.1", "x"), struct.pack("=H", socket.AF_INET6)
                     + bytes(26), 5]:
            out.append(outcome(partial(mod.seal_sendto, seal, srv, addr, 23, [b"x"]), nseq))
        out.append(outcome(lambda: mod.seal_sendto(object(), srv, ("127.0.0.1", port), 23,
                                                   [b"x"])))
        out.append(outcome(lambda: mod.seal_sendto(seal, srv, ("127.0.0.1", port), 23, []),
                           nseq))
        out.append(outcome(lambda: mod.seal_sendto(seal, srv, ("127.0.0.1", port), 23,
                                                   [bytes(16385)]), nseq))
        out.append(outcome(lambda: mod.seal_sendto(seal, srv, ("127.0.0.1", port), 23, [b"x"],
                                                   SendMode.PLAIN), nseq))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            out.append(outcome(lambda: mod.seal_sendto(seal, tcp, ("127.0.0.1", port), 23,
                                                       [b"x"]), nseq))
    return out


@needs_c
def test_seal_sendto_errors_match_c() -> None:
    """Bad addresses, states and sockets: what C raises (type, errno) and next_seq after."""
    assert _cudpio is not None and _crecord is not None
    want = _sendto_errors(_cudpio, _crecord)
    assert want[0].startswith("OverflowError") and want[-2] == "= 1:4"
    assert _sendto_errors(_pyudpio, _crecord) == want
    assert _sendto_errors(_pyudpio, _pyrecord) == want


def _unix_addr(path: str) -> bytes:
    return struct.pack("=H", socket.AF_UNIX) + path.encode() + b"\0"


@pytest.mark.parametrize("timeout", [0.0, 5.0], ids=["nonblocking", "timeout"])
def test_seal_sendto_partial_sends_match_c(tmp_path: Path, timeout: float) -> None:
    """An unconnected AF_UNIX sender with the smallest send buffer, to a reader that does
    not read: each implementation sends the same number first (the kernel's limit), the
    seqs stay gapless, retries complete the same wire, and a timeout socket never waits."""
    payloads = [i.to_bytes(4, "big") * 300 for i in range(120)]
    expected = [bytes(r) for r in state(_pyrecord, seq=99).seal_batch(23, payloads)]
    firsts = {}
    for name in NAMES:
        mod, rec = impl(name)
        path = str(tmp_path / f"rx-{name}-{timeout}")
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with rx, tx:
            rx.bind(path)
            rx.setblocking(False)
            tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
            tx.settimeout(timeout)
            seal = state(rec, seq=99)
            sent, got, counts = 0, [], []
            addr = _unix_addr(path)
            t = time.monotonic()
            while sent < len(payloads):
                k = mod.seal_sendto(seal, tx, addr, 23, payloads[sent:])
                counts.append(k)
                sent += k
                assert seal.next_seq == 99 + sent
                if sent < len(payloads):  # full: nothing more goes until the reader reads
                    assert mod.seal_sendto(seal, tx, addr, 23, payloads[sent:]) == 0
                    assert seal.next_seq == 99 + sent
                while True:
                    try:
                        got.append(rx.recv(65535))
                    except BlockingIOError:
                        break
                assert len(counts) < 1000
            assert time.monotonic() - t < 2.0, name
            assert got == expected, name
            assert 0 < counts[0] < len(payloads), name
            firsts[name] = counts[0]
    assert len(set(firsts.values())) == 1, firsts


# ---- reprotect -------------------------------------------------------------------------------


def _reprotect_run(name: str, pin: Protection, pout: Protection,
                   groups: list[list[bytes]], content_type: int = 23) -> list[Any]:
    """Each group through reprotect (several datagrams with lengths; a single one
    without), everything the view says, and the states afterwards."""
    mod, rec = impl(name)
    a_in, b_out = state(rec, pin, k=1), state(rec, pout, k=2, seq=77)
    out: list[Any] = []
    for g in groups:
        data = b"".join(g)
        if len(g) == 1:
            v = mod.reprotect(a_in, b_out, data, content_type=content_type)
        else:
            v = mod.reprotect(a_in, b_out, memoryview(data), [len(d) for d in g],
                              content_type=content_type)
        recs = [bytes(r) for r in v]
        assert recs == [bytes(v.record(i)) for i in range(len(v))]
        assert recs[-1:] == [bytes(v.record(-1))] if recs else True
        assert bytes(v.records) == b"".join(recs) and list(v.lengths) == [len(r) for r in recs]
        assert v.lengths.format == "I"
        out.append((recs, dict(v.refused), list(v.others), v.datagrams, v.dropped, v.sent,
                    v.error, a_in.highest_seq, b_out.next_seq))
    return out


@pytest.mark.parametrize(("pin", "pout"), [(GCM, GCM), (GCM, CBC), (CBC, CHACHA)],
                         ids=["gcm-gcm", "gcm-cbc", "cbc-chacha"])
def test_reprotect_matches_c(pin: Protection, pout: Protection) -> None:
    """Every verdict: records byte-identical to C's (and to sealing the accepted payloads
    directly), equal refusal counts and hand-backs, equal windows and seqs afterwards."""
    dg = traffic() if pin == GCM else [bytes(state(_pyrecord, pin).seal(23, b"%d" % i))
                                       for i in range(5)]
    if pin != GCM:  # the same verdict kinds, under pin's keys
        s = state(_pyrecord, pin, seq=5)
        forged = bytearray(s.seal(23, b"forged"))
        forged[-1] ^= 1
        dg += [dg[0] + dg[1], bytes(forged), bytes(state(_pyrecord, pin, epoch=2).seal(23, b"e")),
               bytes(s.seal(21, b"\x01\x00")) + bytes(s.seal(23, b"after alert")), b"", b"\x17"]
    groups = [dg[:4], dg[4:9], [dg[9]], dg[10:], dg, [b"".join(dg)]]
    runs = {name: _reprotect_run(name, pin, pout, groups) for name in NAMES}
    ref = runs["twin-py"]
    assert any(r[1] for r in ref) and any(r[2] for r in ref)  # refusals, hand-backs happen
    if pin == GCM:
        refused: set[OpenStatus] = set()
        for r in ref:
            refused |= set(r[1])
        assert refused == set(OpenStatus) - {OpenStatus.OK}, refused
    for name, got in runs.items():
        assert got == ref, name
    # Accepted payloads, sealed directly, are the records.
    b_ref, a_ref = state(_pyrecord, pout, k=2, seq=77), state(_pyrecord, pin, k=1)
    accepted = [r.payload for r in a_ref.open_batch(b"".join(groups[0]), [len(d) for d in
                                                                         groups[0]])
                if r.status == OpenStatus.OK and r.content_type == 23]
    assert ref[0][0] == [bytes(b_ref.seal(23, p)) for p in accepted]


def test_reprotect_other_content_type_matches_c() -> None:
    """content_type=22: handshake records are re-protected, application data handed back."""
    dg = traffic()
    runs = {name: _reprotect_run(name, GCM, GCM, [dg], content_type=22) for name in NAMES}
    assert len(runs["twin-py"][0][0]) == 1 and len(runs["twin-py"][0][2]) > 5
    for name, got in runs.items():
        assert got == runs["twin-py"], name


def _reprotect_errors(mod: ModuleType, rec: ModuleType) -> list[str]:
    a_seal, a_in = state(rec, k=1), state(rec, k=1)
    b_out = state(rec, CBC, k=2, seq=MAX_SEQ - 1)  # room for two records, not three
    recs = [bytes(a_seal.seal(23, b"x")) for _ in range(3)]
    alert = bytes(a_seal.seal(21, b"\x01\x00"))
    forged = bytearray(a_seal.seal(23, b"f"))
    forged[-1] ^= 1

    def seqs() -> tuple[int, int]:
        return a_in.highest_seq, b_out.next_seq

    out = [outcome(lambda: len(mod.reprotect(a_in, b_out, b"".join(recs))), seqs),
           outcome(lambda: len(mod.reprotect(a_in, b_out, b"".join(recs[:1]) + alert + alert)),
                   seqs),
           # the check counts framed records, even ones that will be refused (as C)
           outcome(lambda: len(mod.reprotect(a_in, b_out, recs[1] + bytes(forged))), seqs),
           outcome(lambda: len(mod.reprotect(a_in, b_out, recs[1])), seqs),
           outcome(lambda: len(mod.reprotect(a_in, b_out, b"")), seqs),
           # exhausted, but no application data: nothing to seal, the alert handed back
           outcome(lambda: mod.reprotect(a_in, b_out, alert).others == [alert], seqs),
           outcome(lambda: mod.reprotect(a_in, b_out, b"abc", [1, 1])),
           outcome(lambda: mod.reprotect(a_in, b_out, b"abc", [4, -1])),
           outcome(lambda: mod.reprotect(a_in, b_out, b"abc", content_type=300)),
           outcome(lambda: mod.reprotect(object(), b_out, b"")),
           outcome(lambda: mod.reprotect(a_in, object(), b""))]
    return out


@needs_c
def test_reprotect_errors_match_c() -> None:
    """SequenceExhausted with nothing changed, at the same point as C; argument errors."""
    assert _cudpio is not None and _crecord is not None
    want = _reprotect_errors(_cudpio, _crecord)
    assert want[:4] == [f"SequenceExhausted:None:(None, {MAX_SEQ - 1})",
                        f"= 1:(0, {MAX_SEQ})", f"SequenceExhausted:None:(0, {MAX_SEQ})",
                        f"= 1:(1, {MAX_SEQ + 1})"]
    assert want[5] == f"= True:(1, {MAX_SEQ + 1})"
    assert _reprotect_errors(_pyudpio, _crecord) == want
    assert _reprotect_errors(_pyudpio, _pyrecord) == want


def test_reprotected_view_semantics() -> None:
    a_seal, a_in, b_out = state(_pyrecord), state(_pyrecord), state(_pyrecord, k=2)
    v1 = _pyudpio.reprotect(a_in, b_out, a_seal.seal(23, b"a") + a_seal.seal(23, b"b"))
    assert len(v1) == 2 and v1.refused == {} and v1.others == [] and v1.datagrams == 1
    for bad in (2, -3):
        with pytest.raises(IndexError):
            v1.record(bad)
    v2 = _pyudpio.reprotect(a_in, b_out, b"")
    assert v2 is v1 and len(v2) == 0 and list(v2) == [] and bytes(v2.records) == b""
    assert "Reprotected(0 records" in repr(v2)
    assert "valid until the next reprotect" in (_pyudpio.Reprotected.__doc__ or "").lower()


# ---- relay -----------------------------------------------------------------------------------


def _relay_run(name: str, connected_out: bool) -> dict[str, Any]:
    """The traffic from A over an AF_UNIX pair into the relay (deterministic batches), out
    over UDP to B: each call's view, and what B received."""
    mod, rec = impl(name)
    a_in, b_out = state(rec, k=1), state(rec, k=2)
    calls: list[Any] = []
    dg = traffic()
    with unix_pair() as (a, relay_in):
        relay_out = udp(socket.AF_INET, "127.0.0.1", blocking=True)
        b = udp(socket.AF_INET, "127.0.0.1")
        with relay_out, b:
            addr = None if connected_out else b.getsockname()
            if connected_out:
                relay_out.connect(b.getsockname())
            empty = mod.relay(a_in, relay_in, b_out, relay_out, addr)
            calls.append((len(empty), empty.datagrams))
            for i in range(0, len(dg), 5):
                for d in dg[i : i + 5]:
                    a.send(d)
                while select.select([relay_in], [], [], 0)[0]:
                    v = mod.relay(a_in, relay_in, b_out, relay_out, addr, max_datagrams=3)
                    calls.append((len(v), v.datagrams, v.dropped, v.sent, v.error,
                                  dict(v.refused), list(v.others), [bytes(r) for r in v]))
            wire: list[bytes] = []
            while select.select([b], [], [], 0.2)[0]:
                wire.append(b.recv(65535))
    return {"calls": calls, "wire": wire, "seqs": (a_in.highest_seq, b_out.next_seq)}


@pytest.mark.parametrize("connected_out", [False, True], ids=["sendto", "connected"])
def test_relay_matches_c(connected_out: bool) -> None:
    runs = {name: _relay_run(name, connected_out) for name in NAMES}
    ref = runs["twin-py"]
    assert ref["calls"][0] == (0, 0)
    assert ref["wire"] == [r for c in ref["calls"][1:] for r in c[7]]
    assert len(ref["wire"]) > 8
    opener = state(_pyrecord, k=2)
    assert all(opener.open(w).status == OpenStatus.OK for w in ref["wire"])
    for name, got in runs.items():
        assert got == ref, name


def test_relay_partial_sends_match_c(tmp_path: Path) -> None:
    """A full AF_UNIX out socket: the same records sealed, the same first ones sent, the
    same errno, seqs not rewound, the unsent records valid for a later send."""
    payloads = [i.to_bytes(2, "big") * 500 for i in range(60)]
    seen = {}
    for name in NAMES:
        mod, rec = impl(name)
        a_seal, a_in, b_out = state(rec, k=1), state(rec, k=1), state(rec, k=2)
        path = str(tmp_path / f"b-{name}")
        with unix_pair() as (a, relay_in):
            b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            relay_out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            with b, relay_out:
                b.bind(path)
                b.setblocking(False)
                relay_out.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
                relay_out.setblocking(False)
                calls, got = [], []
                for i in range(0, len(payloads), 8):  # the AF_UNIX queue holds 10
                    for p in payloads[i : i + 8]:
                        a.send(a_seal.seal(23, p))
                    while select.select([relay_in], [], [], 0)[0]:
                        v = mod.relay(a_in, relay_in, b_out, relay_out, _unix_addr(path),
                                      max_datagrams=8)
                        calls.append((len(v), v.sent, v.error, b_out.next_seq))
                        unsent = [bytes(v.record(j)) for j in range(v.sent, len(v))]
                        while True:
                            try:
                                got.append(b.recv(2000))
                            except BlockingIOError:
                                break
                        for r in unsent:
                            relay_out.sendto(r, path)
                            got.append(b.recv(2000))
                seen[name] = (calls, got)
    calls, got = seen["twin-py"]
    assert any(c[1] < c[0] and c[2] in (errno.EAGAIN, errno.ENOBUFS) for c in calls)
    opener = state(_pyrecord, k=2)
    assert [bytes(opener.open(g).payload) for g in got] == payloads
    for name, s in seen.items():
        assert s == seen["twin-py"], name


def _relay_errors(mod: ModuleType, rec: ModuleType) -> list[str]:
    a_in, b_out = state(rec), state(rec, k=2)
    with unix_pair() as (_a, rin), unix_pair() as (rout, _b), \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        return [
            outcome(lambda: mod.relay(object(), rin, b_out, rout)),
            outcome(lambda: mod.relay(a_in, rin, b_out, rout, max_datagrams=0)),
            outcome(lambda: mod.relay(a_in, rin, b_out, rout, recv_mode=SendMode.GSO)),
            outcome(lambda: mod.relay(a_in, rin, b_out, rout, datagram_size=70000)),
            outcome(lambda: mod.relay(a_in, tcp, b_out, rout)),
            outcome(lambda: mod.relay(a_in, rin, b_out, tcp)),
            outcome(lambda: mod.relay(a_in, rin, b_out, rout, b"\x01")),
            outcome(lambda: mod.relay(a_in, rin, b_out, rout, content_type=256)),
            outcome(lambda: len(mod.relay(a_in, rin, b_out, rout))),
        ]


def test_relay_argument_errors_match_c() -> None:
    outs = {name: _relay_errors(*impl(name)) for name in NAMES}
    for name, o in outs.items():
        assert o == outs["twin-py"], name
    assert outs["twin-py"][-1] == "= 0:None"
    assert outs["twin-py"][4] == f"OSError:{errno.EPROTOTYPE}:None"


# ---- the one-record paths --------------------------------------------------------------------


def _one_rows(r: Any) -> Any:
    if r is None:
        return None
    if isinstance(r, list):
        return [row(x) for x in r]
    return row(r)


def _one_run(name: str) -> dict[str, Any]:
    mod, rec = impl(name)
    out: dict[str, Any] = {}
    with unix_pair() as (x, y):
        seal, opener = state(rec), state(rec)
        out["empty"] = mod.recv_open_one(opener, y)
        payloads = [b"", b"a", bytes(16384), bytearray(b"ba"), memoryview(b"mv")]
        out["sent"] = [mod.seal_send_one(seal, x, 23, p) for p in payloads]
        out["wire"] = [y.recv(65535) for _ in payloads]
        for w in out["wire"]:
            x.send(w)
        out["opened"] = [_one_rows(mod.recv_open_one(opener, y)) for _ in payloads]
        t_open = state(rec)
        out["traffic"] = []
        for d in traffic(rec):
            x.send(d)
            out["traffic"].append(_one_rows(mod.recv_open_one(t_open, y)))
        out["after"] = _one_rows(mod.recv_open_one(opener, y))
        # would-block: fill the (tiny) send buffer, then drain
        x.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        x.setblocking(False)
        full = state(rec, k=3)
        sent = 0
        while mod.seal_send_one(full, x, 23, b"z" * 1000):
            sent += 1
            assert sent < 10_000
        out["full"] = (sent, full.next_seq, mod.seal_send_one(full, x, 23, b"z"),
                       full.next_seq)
        drained = []
        r3 = state(rec, k=3)
        while (r := mod.recv_open_one(r3, y)) is not None:
            drained.append(_one_rows(r))
        out["drained"] = drained
        y.settimeout(5.0)  # a timeout socket never waits (non-blocking fd)
        t = time.monotonic()
        out["timeout"] = mod.recv_open_one(opener, y)
        assert time.monotonic() - t < 0.5
    return out


def test_one_record_paths_match_c() -> None:
    runs = {name: _one_run(name) for name in NAMES}
    ref = runs["twin-py"]
    assert ref["empty"] is None and ref["timeout"] is None and ref["after"] is None
    assert ref["sent"] == [1] * 5
    assert ref["wire"] == [bytes(r) for r in state(_pyrecord).seal_batch(
        23, [b"", b"a", bytes(16384), b"ba", b"mv"])]
    kinds = {type(t) for t in ref["traffic"]}
    assert kinds == {tuple, list}  # single results and multi-record lists both occur
    statuses = {t[0] for t in ref["traffic"] if isinstance(t, tuple)}
    assert {OpenStatus.OK, OpenStatus.BAD_MAC, OpenStatus.BAD_EPOCH, OpenStatus.MALFORMED,
            OpenStatus.REPLAY, OpenStatus.BAD_VERSION, OpenStatus.RECORD_OVERFLOW} <= statuses
    assert [] in ref["traffic"]  # the empty datagram
    sent, seq, blocked, seq2 = ref["full"]
    assert sent > 0 and seq == sent and blocked == 0 and seq2 == sent
    assert [d[3] for d in ref["drained"]] == list(range(sent))
    for name, got in runs.items():
        assert got == ref, name


def _one_errors(mod: ModuleType, rec: ModuleType) -> list[str]:
    seal = state(rec)

    def nseq() -> int:
        return int(seal.next_seq)

    out = []
    with unix_pair() as (x, y):
        out.append(outcome(lambda: mod.seal_send_one(seal, x, 23, bytes(16385)), nseq))
        out.append(outcome(lambda: mod.seal_send_one(seal, x, 256, b"x"), nseq))
        out.append(outcome(lambda: mod.seal_send_one(seal, x, -1, b"x"), nseq))
        out.append(outcome(lambda: mod.seal_send_one(object(), x, 23, b"x")))
        out.append(outcome(lambda: mod.recv_open_one(object(), y)))
        exhausted = state(rec, seq=MAX_SEQ + 1)
        out.append(outcome(lambda: mod.seal_send_one(exhausted, x, 23, b"x"),
                           lambda: exhausted.next_seq))
    unconnected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with unconnected:
        out.append(outcome(lambda: mod.seal_send_one(seal, unconnected, 23, b"x"), nseq))
    out.append(outcome(lambda: mod.seal_send_one(seal, unconnected, 23, b"x"), nseq))
    out.append(outcome(lambda: mod.recv_open_one(state(rec), unconnected)))
    return out


@needs_c
def test_one_record_errors_match_c() -> None:
    assert _cudpio is not None and _crecord is not None
    want = _one_errors(_cudpio, _crecord)
    assert want[-3] == f"OSError:{errno.EDESTADDRREQ}:0"
    assert want[-2] == f"OSError:{errno.EBADF}:0"
    assert _one_errors(_pyudpio, _crecord) == want
    assert _one_errors(_pyudpio, _pyrecord) == want


# ---- a pending socket error: udp_caps must not swallow it (regression) -----------------------


@contextmanager
def _refused_rx() -> Iterator[socket.socket]:
    """A connected UDP socket whose peer has closed, with ECONNREFUSED pending (the ICMP
    port unreachable for a datagram it sent), and one datagram the peer sent before."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx:
        rx.bind(("127.0.0.1", 0))
        with tx:
            tx.connect(rx.getsockname())
            rx.connect(tx.getsockname())
            tx.send(b"before")
        rx.send(b"to a closed port")
        time.sleep(0.05)
        rx.setblocking(False)
        yield rx


def _fresh_caps(mod: ModuleType) -> UdpCaps:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return UdpCaps(int(mod.udp_caps(s)))


@needs_c
def test_udp_caps_keeps_pending_socket_error() -> None:
    """dtls_udp_caps used to probe recvmmsg on the socket itself: that took the pending
    ECONNREFUSED (the caller's next receive never saw it) and, failing, cached the socket
    as having no RECVMMSG for its life.  Probing a scratch socket consumes nothing."""
    assert _cudpio is not None
    from dtls._record import lib
    for probe in ("lib", "cudpio"):
        with _refused_rx() as rx:
            if probe == "lib":
                raw = [lib.dtls_udp_caps(rx.fileno()) for _ in range(3)]
                assert len(set(raw)) == 1 and raw[0] >= 0
                caps = UdpCaps(raw[0])
            else:
                caps = UdpCaps(int(_cudpio.udp_caps(rx)))
            assert caps == _fresh_caps(_cudpio), probe
            assert caps & UdpCaps.RECVMMSG and caps & UdpCaps.SENDMMSG, probe
            with pytest.raises(ConnectionRefusedError):
                _cudpio.recv_from(rx)
            assert [bytes(d) for d, _ in _cudpio.recv_from(rx)] == [b"before"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("call", ["recv_open", "recv_from", "recv_open_one", "relay"])
def test_pending_error_reaches_every_receive(name: str, call: str) -> None:
    """After udp_caps on a socket with an error pending, each receive path raises it once,
    then gets the data, in C and the twin alike."""
    mod, rec = impl(name)
    with _refused_rx() as rx, unix_pair() as (out, _sink):
        mod.udp_caps(rx)
        st = state(rec)
        fn: Callable[[], Any] = {
            "recv_open": lambda: mod.recv_open(st, rx).datagrams,
            "recv_from": lambda: len(mod.recv_from(rx)),
            "recv_open_one": lambda: _one_rows(mod.recv_open_one(st, rx)),
            "relay": lambda: mod.relay(st, rx, state(rec, k=2), out).datagrams,
        }[call]
        with pytest.raises(ConnectionRefusedError):
            fn()
        got = fn()
        assert got in (1, [(OpenStatus.MALFORMED, 0, 0, 0, b"")],
                       (OpenStatus.MALFORMED, 0, 0, 0, b"")), got
        assert fn() in (0, None)


def test_twin_interface_is_complete() -> None:
    names = set(_pyudpio.__all__)
    assert {"DatagramBatch", "Reprotected", "recv_from", "seal_sendto", "reprotect", "relay",
            "seal_send_one", "recv_open_one"} <= names
    assert all(hasattr(_pyudpio, n) for n in names)
    if _cudpio is not None:
        assert set(_cudpio.__all__) == names
        for n in names:
            c_obj, t_obj = getattr(_cudpio, n), getattr(_pyudpio, n)
            if callable(c_obj) and not isinstance(c_obj, type):
                import inspect
                assert list(inspect.signature(c_obj).parameters) == list(
                    inspect.signature(t_obj).parameters), n
            if isinstance(c_obj, type) and not issubclass(c_obj, int):
                public = {a for a in dir(c_obj) if not a.startswith("_")}
                assert public <= {a for a in dir(t_obj) if not a.startswith("_")}, n


_NO_SPARE_FD = r"""
import errno, os, resource, socket, sys, time
from dtls._record import lib
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", 0))
tx.connect(rx.getsockname())
rx.connect(tx.getsockname())
tx.close()
rx.send(b"to a closed port")
time.sleep(0.05)
rx.setblocking(False)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    fresh = lib.dtls_udp_caps(s.fileno())
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
hog = []
try:
    while True:
        hog.append(os.dup(0))
except OSError as e:
    assert e.errno == errno.EMFILE, e
caps = lib.dtls_udp_caps(rx.fileno())  # no scratch socket can be made now
for fd in hog:
    os.close(fd)
mmsg = lib.DTLS_UDP_CAP_SENDMMSG | lib.DTLS_UDP_CAP_RECVMMSG
assert caps >= 0 and caps & mmsg == fresh & mmsg, (caps, fresh)
try:
    rx.recv(100)
except ConnectionRefusedError:
    print("kept")
"""


@needs_c
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_udp_caps_without_a_spare_fd_keeps_pending_socket_error() -> None:
    """When no scratch socket can be made (EMFILE), dtls_udp_caps probes the socket itself
    with MSG_ERRQUEUE, under which recvmmsg does not take the pending error either."""
    r = subprocess.run([sys.executable, "-c", _NO_SPARE_FD], check=False, capture_output=True,
                       text=True, timeout=30, cwd=str(Path(__file__).resolve().parents[1]))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "kept"
