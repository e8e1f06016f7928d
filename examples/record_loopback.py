"""Loopback demo: DTLS 1.2 records (AES-128-GCM) over a real UDP socket pair, with throughput.

Seals each payload, sends it over 127.0.0.1, receives and opens it on the other socket,
and checks it arrived intact; then the same with batch calls; then plain UDP for scale.
(Until the handshake lands, both ends share fixed demo keys.)

    python examples/record_loopback.py [--seconds 2] [--size 1200]
"""

from __future__ import annotations

import argparse
import os
import socket
import time

import dtls
from dtls import BulkCipher, CipherState, ContentType, Protection

BATCH = 32


def udp_pair() -> tuple[socket.socket, socket.socket]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    return tx, rx


def run(kind: str, seconds: float, payload: bytes) -> float:
    """Records (or datagrams) per second delivered and verified, for one contender."""
    prot = Protection(BulkCipher.AES_128_GCM)
    keys = {"key": b"k" * 16, "fixed_iv": b"salt"}
    sender = CipherState(prot, epoch=1, **keys)
    receiver = CipherState(prot, epoch=1, **keys)
    tx, rx = udp_pair()
    buf = bytearray(65536)
    done = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        if kind == "plain":  # what the records ride on, without protection
            for _ in range(BATCH):
                tx.send(payload)
                n = rx.recv_into(buf)
                assert n == len(payload)
        elif kind == "single":
            for _ in range(BATCH):
                tx.send(sender.seal(ContentType.APPLICATION_DATA, payload))
                n = rx.recv_into(buf)
                result = receiver.open(memoryview(buf)[:n])
                assert result.ok and result.payload == payload
        else:  # seal a batch in one C call, send, receive, open the batch in one call
            batch = sender.seal_batch(ContentType.APPLICATION_DATA, [payload] * BATCH)
            for record in batch:
                tx.send(record)
            lengths = []
            view = memoryview(buf)
            pos = 0
            for _ in range(BATCH):
                n = rx.recv_into(view[pos:])
                lengths.append(n)
                pos += n
            results = receiver.open_batch(view[:pos], lengths)
            assert all(r.ok and r.payload == payload for r in results)
        done += BATCH
    elapsed = time.perf_counter() - start
    tx.close()
    rx.close()
    return done / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="per contender")
    ap.add_argument("--size", type=int, default=1200, help="payload bytes per record")
    args = ap.parse_args()
    payload = os.urandom(args.size)
    print(f"dtls {dtls.__version__}, record layer backend: {dtls.record_backend}")
    print(f"AES-128-GCM records of {args.size} B over UDP 127.0.0.1, "
          f"seal -> send -> recv -> open -> verify\n")
    plain = run("plain", args.seconds, payload)
    print(f"{'plain UDP (no protection)':34} {plain:12,.0f} datagrams/s")
    for kind, label in (("single", "dtls records, one call each"),
                        ("batch", f"dtls records, batches of {BATCH}")):
        rate = run(kind, args.seconds, payload)
        mbps = rate * args.size * 8 / 1e6
        print(f"{label:34} {rate:12,.0f} records/s  {mbps:8,.0f} Mbit/s  "
              f"{rate / plain:5.2f}x plain UDP")


if __name__ == "__main__":
    main()
