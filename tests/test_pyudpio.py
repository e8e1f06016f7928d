"""The pure-Python UDP batch layer (dtls._pyudpio) against its C original (dtls._cudpio).

The twin must be a drop-in for the C module wherever the C layer is missing, so it is held
to C's observable behaviour over real loopback sockets: byte-identical datagrams from
seal_send (PLAIN mode, same keys and seqs), identical results, datagram and dropped counts
from recv_open/recv_payloads on the same traffic (forged, replayed, too old, wrong epoch,
wrong version, truncated, multi-record, empty and garbage datagrams, GRO-coalesced
buffers), the same partial-send accounting, and the same argument errors.  Every C half
is skipped with the reason when dtls._record is not built; the twin halves always run
(against dtls._pyrecord as the reference).  The twin is also run with the C CipherState.
"""

from __future__ import annotations

import errno
import random
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

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
PROTECTIONS = [
    GCM,
    Protection(BulkCipher.CHACHA20_POLY1305),
    Protection(BulkCipher.AES_128_CCM_8),
    Protection(BulkCipher.AES_256_CBC, MacAlgorithm.SHA1, False),
    Protection(BulkCipher.AES_128_CBC, MacAlgorithm.SHA256, True),
    Protection(BulkCipher.NULL),
]
PROT_IDS = [f"{p.cipher.name}-{p.mac.name}{'-etm' if p.encrypt_then_mac else ''}"
            for p in PROTECTIONS]
LINUX = sys.platform.startswith("linux")
UDP_SEGMENT = 103  # linux/udp.h


def keys_for(prot: Protection, seed: int = 1) -> dict[str, Any]:
    rnd = random.Random(seed)
    return {"key": rnd.randbytes(prot.key_length), "fixed_iv": rnd.randbytes(prot.fixed_iv_length),
            "mac_key": rnd.randbytes(prot.mac_length),
            "iv_key": rnd.randbytes(prot.key_length) if prot.is_cbc else None}


def state(mod: ModuleType, prot: Protection = GCM, *, seq: int = 0) -> Any:
    """A CipherState (epoch 1, window 64) of backend `mod` with the test keys for `prot`:
    the same key material for both backends, so their records must be the same bytes."""
    s = mod.CipherState(prot, epoch=1, window=64, **keys_for(prot))
    s.next_seq = seq
    return s


# The implementations under comparison: (UDP module, record backend).
IMPLS = [
    pytest.param("twin-py", id="twin+pyrecord"),
    pytest.param("twin-c", id="twin+crecord", marks=needs_c),
    pytest.param("c", id="c", marks=needs_c),
]


def impl(name: str) -> tuple[ModuleType, ModuleType]:
    if name == "twin-py":
        return _pyudpio, _pyrecord
    assert _cudpio is not None and _crecord is not None
    return (_pyudpio if name == "twin-c" else _cudpio), _crecord


def _big_rcvbuf(s: socket.socket) -> None:
    for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if opt is None:
            continue
        try:
            s.setsockopt(socket.SOL_SOCKET, opt, 8 << 20)
            return
        except OSError:
            continue


@contextmanager
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected sender and a connected, non-blocking receiver on 127.0.0.1."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        _big_rcvbuf(rx)
        rx.bind(("127.0.0.1", 0))
        tx.connect(rx.getsockname())
        rx.connect(tx.getsockname())
        rx.setblocking(False)
        yield tx, rx


@contextmanager
def unix_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """AF_UNIX datagrams: send queues synchronously, so batch boundaries are deterministic,
    and a reader that does not read makes the sender block (loopback UDP never does)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        b.setblocking(False)
        yield a, b


def wire(rx: socket.socket, count: int, timeout: float = 2.0) -> list[bytes]:
    """Raw datagrams until `count` came or `timeout` passed without one."""
    out: list[bytes] = []
    while len(out) < count and select.select([rx], [], [], timeout)[0]:
        out.append(rx.recv(65535))
    return out


def row(r: Any) -> tuple[Any, ...]:
    return (r.status, r.content_type, r.epoch, r.seq, bytes(r.payload))


def recv_rows(mod: ModuleType, st_: Any, rx: socket.socket, datagrams: int,
              **kw: Any) -> tuple[list[tuple[Any, ...]], int, int, list[tuple[int, int]]]:
    """recv_open until `datagrams` came: (rows, datagrams, dropped, per-call (dgrams, n))."""
    rows: list[tuple[Any, ...]] = []
    got = dropped = 0
    calls: list[tuple[int, int]] = []
    while got < datagrams and select.select([rx], [], [], 2.0)[0]:
        batch = mod.recv_open(st_, rx, **kw)
        rows += [row(r) for r in batch]
        got += batch.datagrams
        dropped += batch.dropped
        calls.append((batch.datagrams, len(batch)))
    return rows, got, dropped, calls


def recv_views(mod: ModuleType, st_: Any, rx: socket.socket, datagrams: int,
               **kw: Any) -> dict[str, Any]:
    """recv_payloads until `datagrams` came, everything the views said, summed."""
    out: dict[str, Any] = {"payloads": [], "refused": {}, "others": [], "datagrams": 0,
                           "dropped": 0, "calls": []}
    while out["datagrams"] < datagrams and select.select([rx], [], [], 2.0)[0]:
        v = mod.recv_payloads(st_, rx, **kw)
        assert [bytes(p) for p in v] == [bytes(v.payload(i)) for i in range(len(v))]
        out["payloads"] += [bytes(p) for p in v]
        for k, n in v.refused.items():
            out["refused"][k] = out["refused"].get(k, 0) + n
        out["others"] += [row(r) for r in v.others]
        out["datagrams"] += v.datagrams
        out["dropped"] += v.dropped
        out["calls"].append((v.datagrams, len(v), dict(v.refused), len(v.others)))
    return out


# ---- the interface itself -----------------------------------------------------------------


def test_caps_are_honest() -> None:
    """The twin's caps never claim syscalls the standard library cannot reach."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        caps = _pyudpio.udp_caps(s)
    assert not caps & (UdpCaps.GSO | UdpCaps.SENDMMSG | UdpCaps.RECVMMSG | UdpCaps.GRO_ON)
    assert _pyudpio.best_send_mode(caps) is SendMode.PLAIN
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        assert _pyudpio.udp_caps(a) == UdpCaps.NONE


@needs_c
def test_interface_mirrors_c() -> None:
    """Same public names and enum values as dtls._cudpio; GRO caps agree with C's."""
    assert _cudpio is not None
    assert set(_cudpio.__all__) <= set(_pyudpio.__all__)
    assert {m.name: int(m) for m in _cudpio.SendMode} == {m.name: int(m) for m in SendMode}
    assert {m.name: int(m) for m in _cudpio.UdpCaps} == {m.name: int(m) for m in UdpCaps}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert _pyudpio.udp_caps(s) == _cudpio.udp_caps(s) & (UdpCaps.GRO | UdpCaps.GRO_ON)


def _errors(mod: ModuleType, rec: ModuleType) -> list[str]:
    """Run every misuse once; the names of what each raised (or its return value)."""
    out: list[str] = []

    def attempt(fn: Callable[[], Any], after: Callable[[], Any] = lambda: None) -> None:
        try:
            r = fn()
        except Exception as e:  # noqa: BLE001 - the type is what is compared
            out.append(f"{type(e).__name__}:{getattr(e, 'errno', None)}:{after()}")
        else:
            out.append(f"= {r!r}:{after()}")

    with udp_pair() as (tx, rx):
        seal, open_ = state(rec, seq=5), state(rec)

        def nseq() -> int:
            return int(seal.next_seq)

        attempt(lambda: mod.seal_send(object(), tx, 23, [b"x"]))
        attempt(lambda: mod.seal_send(seal, tx, 23, [b"x", bytes(16385)]), nseq)
        attempt(lambda: mod.seal_send(seal, tx, 256, [b"x"]), nseq)
        attempt(lambda: mod.seal_send(seal, tx, 23, []), nseq)
        attempt(lambda: mod.recv_open(open_, rx, 0))
        attempt(lambda: mod.recv_open(open_, rx, 1025))
        attempt(lambda: mod.recv_open(open_, rx, 4, mode=SendMode.GSO))
        attempt(lambda: mod.recv_open(open_, rx, 4, datagram_size=65536))
        attempt(lambda: len(mod.recv_open(open_, rx, 4, datagram_size=0)))  # 0: the default
        attempt(lambda: mod.recv_payloads(object(), rx))
        attempt(lambda: len(mod.recv_payloads(open_, rx, 1)))
        exhausted = state(rec, seq=MAX_SEQ)
        attempt(lambda: mod.seal_send(exhausted, tx, 23, [b"a", b"b"]), lambda: exhausted.next_seq)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unconnected:
            attempt(lambda: mod.seal_send(seal, unconnected, 23, [b"x"], SendMode.PLAIN), nseq)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            attempt(lambda: mod.seal_send(seal, tcp, 23, [b"x"]), nseq)
            attempt(lambda: mod.recv_open(open_, tcp))
            attempt(lambda: mod.udp_caps(tcp))
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.close()
    attempt(lambda: mod.udp_caps(closed))
    attempt(lambda: mod.seal_send(seal, closed, 23, [b"x"]), nseq)
    attempt(lambda: mod.recv_open(open_, closed))
    return out


# What C does for each misuse in _errors (exception type, errno, next_seq afterwards).
EXPECTED_ERRORS = [
    "TypeError:None:None", "ValueError:None:5", "ValueError:None:5", "= 0:5",
    "ValueError:None:None", "ValueError:None:None", "ValueError:None:None",
    "ValueError:None:None", "= 0:None", "TypeError:None:None", "= 0:None",
    f"SequenceExhausted:None:{MAX_SEQ}", f"OSError:{errno.EDESTADDRREQ}:5",
    f"OSError:{errno.EPROTOTYPE}:5", f"OSError:{errno.EPROTOTYPE}:None",
    f"OSError:{errno.EPROTOTYPE}:None", f"OSError:{errno.EBADF}:None",
    f"OSError:{errno.EBADF}:5", f"OSError:{errno.EBADF}:None",
]


@pytest.mark.parametrize("name", IMPLS)
def test_argument_errors_match_c(name: str) -> None:
    """Every misuse raises what C raises (type, errno) and leaves next_seq as C does."""
    assert _errors(*impl(name)) == EXPECTED_ERRORS


def test_twin_refuses_batch_send_modes_it_lacks() -> None:
    with udp_pair() as (tx, _rx):
        seal = state(_pyrecord, seq=9)
        for mode in (SendMode.MMSG, SendMode.GSO):
            with pytest.raises(ValueError, match=mode.name):
                _pyudpio.seal_send(seal, tx, 23, [b"x"], mode)
        assert seal.next_seq == 9
        if _cudpio is not None:  # C's enum is accepted too (same ints)
            assert _pyudpio.seal_send(seal, tx, 23, [b"x"], _cudpio.SendMode.PLAIN) == 1


# ---- (1) the wire --------------------------------------------------------------------------


@pytest.mark.parametrize("name", IMPLS)
@pytest.mark.parametrize("prot", PROTECTIONS, ids=PROT_IDS)
def test_seal_send_wire_identical_to_c(prot: Protection, name: str) -> None:
    """PLAIN seal_send puts the reference records (dtls._pyrecord, same keys and seqs) on
    the wire byte for byte: the twin with either record layer, and C in PLAIN mode."""
    sizes = [0, 1, 15, 16, 17, 1200, 16384, 300, 0, 5000]
    payloads = [bytes([i]) * n for i, n in enumerate(sizes)]
    start = 1 << 40
    expected = [bytes(r) for r in state(_pyrecord, prot, seq=start).seal_batch(23, payloads)]
    mod, rec = impl(name)
    with udp_pair() as (tx, rx):
        seal = state(rec, prot, seq=start)
        kw = {"mode": SendMode.PLAIN} if mod is _cudpio else {}
        assert mod.seal_send(seal, tx, 23, payloads, **kw) == len(payloads)
        assert seal.next_seq == start + len(payloads)
        assert wire(rx, len(payloads)) == expected


# ---- (2) receiving: the same traffic, the same verdicts --------------------------------------


def traffic() -> list[bytes]:
    """Datagrams covering every verdict, sealed by the twin record layer (epoch 1, GCM)."""
    s = state(_pyrecord, seq=0)

    def rec(payload: bytes, ctype: int = 23, seq: int | None = None) -> bytes:
        if seq is not None:
            s.next_seq = seq
        return bytes(s.seal(ctype, payload))

    good0 = rec(b"record 0")
    multi = rec(b"one") + rec(b"\x02\x28", ctype=21) + rec(b"three" * 50)
    forged = bytearray(rec(b"forged"))
    forged[-1] ^= 1
    other_epoch = bytearray(rec(b"epoch 2"))
    other_epoch[3:5] = b"\x00\x02"
    cut = rec(b"cut short " * 20)[:-5]           # length field runs past the datagram
    trailing = rec(b"then junk") + b"\x00\x01"   # OK, then an unparseable tail
    old_version = bytearray(rec(b"dtls 1.0"))
    old_version[1:3] = struct.pack(">H", DTLS1_0)
    ahead = rec(b"seq 300", seq=300)
    too_old = rec(b"seq 100", seq=100)
    big = rec(bytes(1000), seq=301)             # truncated when datagram_size is small
    twice = rec(b"twice", seq=302)
    ccs = rec(b"\x01", ctype=20)
    overflow = _overflowing_record(seq=400)
    rnd = random.Random(11)
    return [good0, multi, bytes(forged), good0, bytes(other_epoch), cut, trailing, b"",
            b"\x17\xfe\xfd", bytes(old_version), ahead, too_old, big, twice + twice,
            rnd.randbytes(300), ccs, b"\x17\xfe\xfd\x00\x01" + bytes(6) + b"\xff\xff" + b"x",
            overflow, rec(b"last " * 200, seq=401)]


def _overflowing_record(seq: int) -> bytes:
    """An authentic GCM record with 2^14 + 1 bytes of plaintext (seal refuses to make one):
    the only way to reach RECORD_OVERFLOW."""
    k = keys_for(GCM)
    plain = bytes(16385)
    explicit = struct.pack(">HHI", 1, seq >> 32, seq & 0xFFFFFFFF)
    aad = explicit + struct.pack(">BHH", 23, 0xFEFD, len(plain))
    frag = explicit + _pyrecord.aead_encrypt(GCM.cipher, k["key"], k["fixed_iv"] + explicit,
                                             aad, plain)
    return struct.pack(">BH", 23, 0xFEFD) + explicit + struct.pack(">H", len(frag)) + frag


def _send(tx: socket.socket, datagrams: list[bytes]) -> None:
    for d in datagrams:
        tx.send(d)


@pytest.mark.parametrize("kw", [
    {}, {"max_datagrams": 1}, {"max_datagrams": 4}, {"mode": SendMode.PLAIN},
    {"datagram_size": 200}, {"max_datagrams": 3, "datagram_size": 700},
], ids=["default", "max1", "max4", "plain", "slot200", "max3-slot700"])
@pytest.mark.parametrize("name", IMPLS[1:])
def test_recv_open_and_payloads_match_c(kw: dict[str, Any], name: str) -> None:
    """Over UDP loopback: the results, in order, and the counts equal the twin's on
    dtls._pyrecord (summed over calls: batch boundaries on UDP depend on delivery)."""
    assert _recv_traffic(name, kw) == _recv_traffic("twin-py", kw)


@pytest.mark.parametrize("kw", [{}, {"datagram_size": 200}], ids=["default", "slot200"])
def test_recv_traffic_covers_every_verdict(kw: dict[str, Any]) -> None:
    """The reference side of the test above: the traffic reaches every OpenStatus, and
    recv_payloads sorts what recv_open returns as dtls_compact_results does."""
    datagrams = traffic()
    (rows, ndgrams, dropped), view = _recv_traffic("twin-py", kw)
    assert (ndgrams, dropped) == (len(datagrams), 0)
    statuses = [r[0] for r in rows]
    if not kw:
        assert set(OpenStatus) <= set(statuses)
    else:  # records longer than the 200-byte slot are cut short: MALFORMED
        full = [r[0] for r in _recv_traffic("twin-py", {})[0][0]]
        assert statuses.count(OpenStatus.MALFORMED) > full.count(OpenStatus.MALFORMED)
    ok_app = [r[4] for r in rows if r[0] == OpenStatus.OK and r[1] == 23]
    assert view["payloads"] == ok_app
    refused: dict[OpenStatus, int] = {}
    for r in rows:
        if r[0] != OpenStatus.OK:
            refused[r[0]] = refused.get(r[0], 0) + 1
    assert view["refused"] == refused
    assert [r[1] for r in view["others"]] == [21, 23, 20]  # alert, BAD_EPOCH, CCS
    assert view["others"] == [r for r in rows if r[0] == OpenStatus.BAD_EPOCH
                              or (r[0] == OpenStatus.OK and r[1] != 23)]


def _recv_traffic(name: str, kw: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The traffic through recv_open, then again through recv_payloads, on fresh states."""
    mod, rec = impl(name)
    datagrams = traffic()
    with udp_pair() as (tx, rx):
        _send(tx, datagrams)
        rows = recv_rows(mod, state(rec), rx, len(datagrams), **kw)[:3]
        _send(tx, datagrams)
        views = recv_views(mod, state(rec), rx, len(datagrams), **kw)
        views.pop("calls")
    return rows, views


@needs_c
@pytest.mark.parametrize("max_datagrams", [1, 2, 5, 32])
def test_batches_match_c_call_by_call(max_datagrams: int) -> None:
    """AF_UNIX queues synchronously, so every call's batch is deterministic: each twin call
    returns what the matching C call returns (datagrams, results, refusals, others)."""
    datagrams = traffic() * 2
    seen: dict[str, Any] = {}
    for name in ("twin-py", "twin-c", "c"):
        mod, rec = impl(name)
        with unix_pair() as (tx, rx):
            calls: list[Any] = []
            open_a, open_b = state(rec), state(rec)
            for i in range(0, len(datagrams), 6):  # the queue holds 10 (max_dgram_qlen)
                _send(tx, datagrams[i : i + 6])
                while select.select([rx], [], [], 0)[0]:
                    batch = mod.recv_open(open_a, rx, max_datagrams)
                    calls.append(("open", batch.datagrams, batch.dropped,
                                  [row(r) for r in batch]))
                _send(tx, datagrams[i : i + 6])
                while select.select([rx], [], [], 0)[0]:
                    v = mod.recv_payloads(open_b, rx, max_datagrams)
                    calls.append(("view", v.datagrams, v.dropped, [bytes(p) for p in v],
                                  dict(v.refused), [row(r) for r in v.others]))
            seen[name] = calls
            assert max(c[1] for c in calls) == min(max_datagrams, 6)
            assert sum(c[1] for c in calls) == 2 * len(datagrams)
    assert seen["twin-py"] == seen["twin-c"] == seen["c"]


def test_payload_view_semantics() -> None:
    """One view object per thread, overwritten by the next call; negative indices; the
    empty view when nothing is pending; valid-until-next-call documented."""
    with udp_pair() as (tx, rx):
        seal, open_ = state(_pyrecord), state(_pyrecord)
        tx.send(seal.seal(23, b"first") + seal.seal(23, b"second"))
        assert select.select([rx], [], [], 2.0)[0]
        v1 = _pyudpio.recv_payloads(open_, rx)
        assert len(v1) == 2 and v1.datagrams == 1 and v1.refused == {} and v1.others == []
        assert bytes(v1.payload(-1)) == b"second" and bytes(v1.payload(-2)) == b"first"
        assert all(isinstance(p, memoryview) for p in v1)
        for bad in (2, -3):
            with pytest.raises(IndexError):
                v1.payload(bad)
        empty = _pyudpio.recv_payloads(open_, rx)
        assert empty is v1 and len(empty) == 0 and list(empty) == [] and empty.datagrams == 0
        other: list[Any] = []
        t = threading.Thread(target=lambda: other.append(_pyudpio.recv_payloads(open_, rx)))
        t.start()
        t.join()
        assert other[0] is not v1  # per thread
        assert "valid until the next receive call" in (_pyudpio.PayloadView.__doc__ or "").lower()
        assert "PayloadView(0 payloads" in repr(empty)
        assert "RecvBatch(0 records" in repr(_pyudpio.recv_open(open_, rx))


# ---- blocking follows the fd --------------------------------------------------------------


def _names() -> list[str]:
    return ["twin-py"] + (["c"] if _cudpio is not None else [])


def test_only_the_first_datagram_blocks() -> None:
    """On a blocking socket the call waits for the first datagram, then drains what is
    queued without waiting for more (MSG_WAITFORONE semantics); PLAIN takes just one."""
    for name in _names():
        mod, rec = impl(name)
        with udp_pair() as (tx, rx):
            rx.setblocking(True)
            seal, open_ = state(rec), state(rec)
            watchdog = threading.Timer(3.0, tx.send, (b"unblock",))  # never hang
            sender = threading.Timer(0.15, tx.send, (seal.seal(23, b"late"),))
            watchdog.start()
            try:
                sender.start()
                t = time.monotonic()
                batch = mod.recv_open(open_, rx, 32)
                assert 0.1 < time.monotonic() - t < 2.0, name
                assert [bytes(r.payload) for r in batch] == [b"late"], name
                _send(tx, [seal.seal(23, b"%d" % i) for i in range(5)])
                time.sleep(0.05)
                t = time.monotonic()
                batch = mod.recv_open(open_, rx, 32)
                assert time.monotonic() - t < 0.5 and batch.datagrams == 5, name
                _send(tx, [seal.seal(23, b"%d" % i) for i in range(3)])
                time.sleep(0.05)
                assert mod.recv_open(open_, rx, 32, mode=SendMode.PLAIN).datagrams == 1, name
                assert mod.recv_open(open_, rx, 1).datagrams == 1, name
                assert mod.recv_open(open_, rx, 32).datagrams == 1, name
            finally:
                sender.cancel()
                watchdog.cancel()


def test_timeout_socket_behaves_non_blocking() -> None:
    """A socket with a timeout is non-blocking at the fd: neither C nor the twin waits on
    it (CPython's own recv/send would wait for the timeout)."""
    for name in _names():
        mod, rec = impl(name)
        with udp_pair() as (_tx, rx):
            rx.settimeout(5.0)
            t = time.monotonic()
            assert len(mod.recv_open(state(rec), rx)) == 0, name
            assert time.monotonic() - t < 0.5, name
        with unix_pair() as (a, _b):
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
            a.settimeout(5.0)
            seal = state(rec)
            payloads = [bytes(1200)] * 50
            t = time.monotonic()
            k = mod.seal_send(seal, a, 23, payloads)
            assert 0 < k < 50 and seal.next_seq == k, name
            assert mod.seal_send(seal, a, 23, payloads[k:]) == 0 and seal.next_seq == k, name
            assert time.monotonic() - t < 0.5, name


# ---- (3) property: random batches ----------------------------------------------------------

payload_size = st.one_of(st.integers(0, 64), st.integers(0, 16384),
                         st.sampled_from([0, 15, 16, 1200, 16383, 16384]))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sizes=st.one_of(st.lists(payload_size, max_size=8),
                      st.lists(payload_size, min_size=33, max_size=64)),
       seed=st.integers(0, 2**32 - 1), start=st.integers(0, MAX_SEQ - 64),
       prot=st.sampled_from(PROTECTIONS[:4]), max_datagrams=st.sampled_from([1, 7, 32, 64]))
@example(sizes=[16384] * 64, seed=1, start=MAX_SEQ - 64, prot=GCM, max_datagrams=64)
@example(sizes=[0] * 64, seed=2, start=0, prot=PROTECTIONS[3], max_datagrams=7)
def test_random_batches_round_trip_like_c(sizes: list[int], seed: int, start: int,
                                          prot: Protection, max_datagrams: int) -> None:
    rnd = random.Random(seed)
    payloads = [rnd.randbytes(n) for n in sizes]
    n = len(payloads)
    expected = [bytes(r) for r in state(_pyrecord, prot, seq=start).seal_batch(23, payloads)]
    wires: dict[str, list[bytes]] = {}
    got: dict[str, Any] = {}
    for name in _names():
        mod, rec = impl(name)
        with udp_pair() as (tx, rx):
            seal = state(rec, prot, seq=start)
            assert mod.seal_send(seal, tx, 23, payloads) == n
            assert seal.next_seq == start + n
            wires[name] = wire(rx, n)
            _send(tx, wires[name])  # the same datagrams again, now through the receive path
            got[name] = recv_views(mod, state(rec, prot), rx, n, max_datagrams=max_datagrams)
            got[name].pop("calls")
    assert wires["twin-py"] == expected
    assert got["twin-py"] == {"payloads": payloads, "refused": {}, "others": [],
                              "datagrams": n, "dropped": 0}
    if "c" in got:
        assert wires["c"] == expected
        assert got["c"] == got["twin-py"]


# ---- (4) partial sends -----------------------------------------------------------------------


@pytest.mark.parametrize("name", IMPLS)
@pytest.mark.parametrize("kind", ["unix", "udp"])
def test_partial_send_rewinds_next_seq(name: str, kind: str) -> None:
    """Non-blocking sender, tiny SO_SNDBUF, a receiver that does not read: the count says
    how many went out, next_seq follows the last one sent, and retrying the rest puts on
    the wire exactly what one complete send would have.  Loopback UDP frees the send
    buffer at once (it may never push back); AF_UNIX always does, so both are run and the
    accounting is checked either way."""
    mod, rec = impl(name)
    payloads = [i.to_bytes(4, "big") * 300 for i in range(300)]
    start = 7777
    expected = [bytes(r) for r in state(_pyrecord, seq=start).seal_batch(23, payloads)]
    pair = unix_pair() if kind == "unix" else udp_pair()
    with pair as (tx, rx):
        tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the kernel's minimum
        tx.setblocking(False)
        seal = state(rec, seq=start)
        counts: list[int] = []
        sent = 0
        got: list[bytes] = []
        while sent < len(payloads):
            k = mod.seal_send(seal, tx, 23, payloads[sent:])
            counts.append(k)
            sent += k
            assert seal.next_seq == start + sent  # unsent records gave their seqs back
            if k and sent < len(payloads) and kind == "unix":  # full: nothing more fits
                assert mod.seal_send(seal, tx, 23, payloads[sent:]) == 0
                assert seal.next_seq == start + sent
            while select.select([rx], [], [], 0 if kind == "unix" else 0.01)[0]:
                got.append(rx.recv(65535))
            assert len(counts) < 5000
        got += wire(rx, len(payloads) - len(got), timeout=0.5)
        assert got == expected
        if kind == "unix":
            assert 0 < counts[0] < len(payloads)
            # C and the twin see the same kernel limits for the same datagram sizes.
            assert counts[0] == _first_unix_count(), (name, counts[:3])
            with pytest.raises(OSError):  # larger than SO_SNDBUF: fails outright, seq kept
                mod.seal_send(seal, tx, 23, [bytes(16384)] * 2)
        assert seal.next_seq == start + len(payloads)


_FIRST: list[int] = []


def _first_unix_count() -> int:
    """How many 1216-byte records a fresh full-sized probe pair takes before EAGAIN."""
    if not _FIRST:
        with unix_pair() as (tx, _rx):
            tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
            tx.setblocking(False)
            record = state(_pyrecord).seal(23, bytes(1200))
            k = 0
            try:
                while k < 300:
                    tx.send(record)
                    k += 1
            except BlockingIOError:
                pass
            _FIRST.append(k)
    return _FIRST[0]


# ---- GRO: coalesced buffers split as C splits them ---------------------------------------


def _gso_supported() -> bool:
    if not LINUX:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.getsockopt(socket.SOL_UDP, UDP_SEGMENT)
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return bool(_pyudpio.udp_caps(s) & UdpCaps.GRO)


needs_gro = pytest.mark.skipif(not _gso_supported(), reason="UDP GSO/GRO not in this kernel")


def _gso_send(tx: socket.socket, data: bytes, seg: int) -> None:
    """One sendmsg with UDP_SEGMENT: the kernel cuts `data` into `seg`-byte datagrams."""
    tx.sendmsg([data], [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", seg))])


@needs_gro
@pytest.mark.parametrize("mode", [None, SendMode.PLAIN], ids=["batch", "plain"])
def test_gro_coalesced_buffers_split_like_c(mode: SendMode | None) -> None:
    seal = state(_pyrecord)
    sizes = [1000] * 40 + [200] + [1000] * 20 + [5]
    runs = [sizes[:41], sizes[41:]]  # each: equal records, then one shorter (GSO rules)
    records = [[seal.seal(23, bytes([i % 256]) * n) for i, n in enumerate(run)] for run in runs]
    seen: dict[str, Any] = {}
    for name in _names() + (["twin-c"] if _cudpio is not None else []):
        mod, rec = impl(name)
        with udp_pair() as (tx, rx):
            mod.set_gro(rx)
            assert mod.udp_caps(rx) & UdpCaps.GRO_ON, name
            for run in records:
                _gso_send(tx, b"".join(run), len(run[0]))
            seen[name] = recv_rows(mod, state(rec), rx, len(sizes), max_datagrams=2,
                                   mode=mode)
    rows, ndgrams, dropped, calls = seen["twin-py"]
    assert (ndgrams, dropped) == (len(sizes), 0)
    assert [r[0] for r in rows] == [OpenStatus.OK] * len(sizes)
    assert [len(r[4]) for r in rows] == sizes
    assert calls[0][0] > 2, "GRO did not coalesce: nothing split"
    for name in seen:  # per-call splits depend on when the second buffer lands: not compared
        assert seen[name][:3] == seen["twin-py"][:3], name


@needs_gro
@pytest.mark.parametrize("name", IMPLS)
def test_gro_result_space_drops_like_c(name: str) -> None:
    """64 one-byte segments in one coalesced buffer, a 64-byte slot: C's result array
    (64 // 13 + 2 = 6 entries) opens six and drops the rest, and so must the twin."""
    mod, rec = impl(name)
    with udp_pair() as (tx, rx):
        mod.set_gro(rx)
        _gso_send(tx, bytes(range(64)), 1)
        assert select.select([rx], [], [], 2.0)[0]
        batch = mod.recv_open(state(rec), rx, 1, mode=SendMode.PLAIN, datagram_size=64)
    assert (batch.datagrams, batch.dropped) == (64, 58)
    assert [row(r) for r in batch] == [(OpenStatus.MALFORMED, 0, 0, 0, b"")] * 6


def test_set_gro_off_and_errors() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b, pytest.raises(OSError):
        _pyudpio.set_gro(a)  # not UDP: the kernel refuses, as in C
    if not _gso_supported():
        pytest.skip("UDP GRO not in this kernel")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        _pyudpio.set_gro(s)
        assert _pyudpio.udp_caps(s) & UdpCaps.GRO_ON
        _pyudpio.set_gro(s, False)
        assert not _pyudpio.udp_caps(s) & UdpCaps.GRO_ON


def test_at_most_256_datagrams_per_call_like_c() -> None:
    """C takes at most MMSG_CHUNK (256) datagrams per call whatever max_datagrams says."""
    for name in _names():
        mod, rec = impl(name)
        with udp_pair() as (tx, rx):
            seal, open_ = state(rec), state(rec)
            _send(tx, [seal.seal(23, b"%d" % i) for i in range(300)])
            assert select.select([rx], [], [], 2.0)[0]
            time.sleep(0.05)
            first = mod.recv_open(open_, rx, 1024)
            rest = mod.recv_open(open_, rx, 1024)
            assert (first.datagrams, rest.datagrams) == (256, 44), name
            assert [r.seq for r in [*first, *rest]] == list(range(300)), name


def test_pending_socket_error_raised_first_like_c() -> None:
    """ICMP port unreachable on a connected socket: the kernel reports the error before the
    queued datagrams, so the first call raises it and the next one gets the data.  The
    caps are probed after the error arrived: probing must not consume it (C's recvmmsg
    probe on the socket itself used to; see tests/test_pyudpio_server.py)."""
    outcomes = {}
    for name in _names():
        mod, rec = impl(name)
        with udp_pair() as (tx, rx):
            _send(tx, [b"d0", b"d1", b"d2"])
            tx.close()
            rx.send(b"to a closed port")
            time.sleep(0.05)
            mod.udp_caps(rx)
            seen: list[Any] = []
            for _ in range(3):
                try:
                    seen.append(mod.recv_open(state(rec), rx, 32).datagrams)
                except OSError as e:
                    seen.append(type(e).__name__)
            outcomes[name] = seen
    assert outcomes["twin-py"] == ["ConnectionRefusedError", 3, 0]
    if "c" in outcomes:
        assert outcomes["c"] == outcomes["twin-py"]
