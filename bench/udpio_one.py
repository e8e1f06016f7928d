"""Per-call cost of the lean one-record paths (dtls._cudpio.seal_send_one / recv_open_one)
against the plain socket calls they wrap, on loopback UDP.

    python bench/udpio_one.py [--size 100] [--n 20000] [--rounds 7]

Prints the median microseconds per call over the rounds.  Sends go to a receiver that is
never read (loopback drops what overflows; send cost is unaffected); receives read a
queue filled beforehand, so each call finds a datagram waiting.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dtls import _crecord, _cudpio
from dtls.protection import BulkCipher, Protection

GCM = Protection(BulkCipher.AES_128_GCM)


def state() -> _crecord.CipherState:
    return _crecord.CipherState(GCM, epoch=1, key=bytes(16), fixed_iv=bytes(4), window=2048)


def pair() -> tuple[socket.socket, socket.socket]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUFFORCE, 4 << 20)
    except (OSError, AttributeError):
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    rx.connect(tx.getsockname())
    rx.setblocking(False)
    return tx, rx


def per_call(fn: Callable[[int], None], n: int, rounds: int,
             setup: Callable[[int], None] | None = None, chunk: int = 0) -> float:
    """Median over rounds of us per call; with setup, n calls run in chunks of `chunk`,
    each after setup(chunk) (untimed)."""
    times = []
    for _ in range(rounds):
        spent, done = 0.0, 0
        while done < n:
            k = min(chunk or n, n - done)
            if setup:
                setup(k)
            t = time.perf_counter()
            fn(k)
            spent += time.perf_counter() - t
            done += k
        times.append(spent / n * 1e6)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    payload = os.urandom(a.size)
    tx, rx = pair()
    seal = state()
    send = tx.send
    one = _cudpio.seal_send_one
    record = seal.seal(23, payload)

    def plain_send(n: int) -> None:
        for _ in range(n):
            send(record)

    def seal_then_send(n: int) -> None:
        for _ in range(n):
            send(seal.seal(23, payload))

    def send_one(n: int) -> None:
        for _ in range(n):
            one(seal, tx, 23, payload)

    def send_batch1(n: int) -> None:
        for _ in range(n):
            _cudpio.seal_send(seal, tx, 23, [payload])

    rows = [("sock.send(record)", per_call(plain_send, a.n, a.rounds)),
            ("sock.send(state.seal(23, p))", per_call(seal_then_send, a.n, a.rounds)),
            ("seal_send_one(state, sock, 23, p)", per_call(send_one, a.n, a.rounds)),
            ("seal_send(state, sock, 23, [p])", per_call(send_batch1, a.n, a.rounds))]

    # Receives: fill rx's queue with n records, then time n receives.
    sender = state()
    opener = state()

    def fill(n: int) -> None:
        while True:  # empty first
            try:
                rx.recv(65535)
            except BlockingIOError:
                break
        sender.next_seq = opener.highest_seq + 1 if opener.highest_seq is not None else 0
        for _ in range(n):
            tx.send(sender.seal(23, payload))
        time.sleep(0.001)

    recv = rx.recv
    ropen = opener.open
    rone = _cudpio.recv_open_one

    def plain_recv(n: int) -> None:
        for _ in range(n):
            recv(65535)

    def recv_then_open(n: int) -> None:
        for _ in range(n):
            ropen(recv(65535))

    def recv_one(n: int) -> None:
        for _ in range(n):
            rone(opener, rx)

    c = 100  # datagrams queued per timed chunk: fits any default receive buffer
    rows += [("sock.recv(65535)", per_call(plain_recv, a.n, a.rounds, fill, c)),
             ("state.open(sock.recv(65535))", per_call(recv_then_open, a.n, a.rounds, fill, c)),
             ("recv_open_one(state, sock)", per_call(recv_one, a.n, a.rounds, fill, c))]
    print(f"payload {a.size} B, AES-128-GCM, loopback UDP, {a.n} calls x {a.rounds} rounds "
          f"(median us/call)")
    for name, us in rows:
        print(f"  {name:36s} {us:6.2f} us")


if __name__ == "__main__":
    main()
