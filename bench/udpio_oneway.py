"""Quick one-way loopback throughput of the batched C UDP path (not a test, not the bench suite).

Sender and receiver are two processes; each contender sends 1200-byte payloads for
--seconds.  DTLS contenders seal AES-128-GCM records with dtls._cudpio.seal_send (GSO, MMSG or
PLAIN send, batches of --batch) and the receiver opens them with recv_open (recvmmsg, GRO on;
an OpenResult per record) or, for the "+view" contenders, recv_payloads (a reused view of the
payloads, no Python object per record); "python-udp" is `sock.send` / `sock.recv_into` of
unencrypted datagrams.

    python bench/udpio_oneway.py [--seconds 2] [--batch 64] [--size 1200]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import select
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

KEY, IV = bytes(16), bytes(4)


def _state() -> Any:
    from dtls import _crecord
    from dtls.protection import BulkCipher, Protection
    return _crecord.CipherState(Protection(BulkCipher.AES_128_GCM), epoch=1, key=KEY,
                                fixed_iv=IV)


def receiver(kind: str, conn: Any) -> None:
    from dtls import _cudpio
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    sock.bind(("127.0.0.1", 0))
    if kind != "python-udp" and _cudpio.udp_caps(sock) & _cudpio.UdpCaps.GRO:
        _cudpio.set_gro(sock)
    sock.setblocking(False)
    conn.send(sock.getsockname())
    peer = conn.recv()
    sock.connect(peer)
    state = _state()
    buf = bytearray(65535)
    got = bad = 0
    first = last = 0.0
    cpu0 = time.process_time()
    while True:
        if not select.select([sock], [], [], 0.5)[0]:
            if got:
                break
            continue
        if not first:
            first = time.perf_counter()
        if kind == "python-udp":
            while True:
                try:
                    sock.recv_into(buf)
                except BlockingIOError:
                    break
                got += 1
        elif kind.endswith("+view"):
            while True:
                view = _cudpio.recv_payloads(state, sock, 64)
                if not view.datagrams:
                    break
                got += len(view)
                bad += view.datagrams - len(view)
        else:
            while True:
                batch = _cudpio.recv_open(state, sock, 64)
                if not len(batch):
                    break
                for r in batch:
                    if r.status == 0:
                        got += 1
                    else:
                        bad += 1
        last = time.perf_counter()
    conn.send((got, bad, last - first, time.process_time() - cpu0))


def run_pair(kind: str, seconds: float, batch: int, size: int) -> dict[str, float]:
    parent, child = mp.Pipe()
    proc = mp.Process(target=receiver, args=(kind, child))
    proc.start()
    addr = parent.recv()
    from dtls import _cudpio
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.connect(addr)
    parent.send(sock.getsockname())
    time.sleep(0.2)  # let the receiver connect
    payload = bytes(size)
    sent = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    end = t0 + seconds
    if kind == "python-udp":
        send = sock.send
        while time.perf_counter() < end:
            for _ in range(batch):
                send(payload)
            sent += batch
    else:
        mode = _cudpio.SendMode[kind.split("-")[1].split("+")[0].upper()]
        state = _state()
        payloads = [payload] * batch
        while time.perf_counter() < end:
            sent += _cudpio.seal_send(state, sock, 23, payloads, mode)
    elapsed = time.perf_counter() - t0
    send_cpu = time.process_time() - cpu0
    got, bad, rx_time, rx_cpu = parent.recv()
    proc.join()
    sock.close()
    return {"sent/s": sent / elapsed, "delivered/s": got / max(rx_time, 1e-9),
            "delivered": got, "sent": sent, "bad": bad,
            "tx us/rec": 1e6 * send_cpu / max(sent, 1), "rx us/rec": 1e6 * rx_cpu / max(got, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=1200)
    args = ap.parse_args()
    from dtls import _cudpio
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        caps = _cudpio.udp_caps(s)
    kinds = ["python-udp", "dtls-plain"]
    if caps & _cudpio.UdpCaps.SENDMMSG:
        kinds.append("dtls-mmsg")
    if caps & _cudpio.UdpCaps.GSO:
        kinds.append("dtls-gso")
    kinds.append(kinds[-1] + "+view")  # the best send mode, received through recv_payloads
    print(f"caps={caps!r} size={args.size} batch={args.batch} seconds={args.seconds}")
    print(f"{'contender':14} {'sent/s':>10} {'delivered/s':>12} {'ratio':>6} "
          f"{'tx us/rec':>9} {'rx us/rec':>9} {'lost':>6} {'bad':>4}")
    base = None
    for kind in kinds:
        r = run_pair(kind, args.seconds, args.batch, args.size)
        base = base or r["delivered/s"]
        print(f"{kind:14} {r['sent/s']:10.0f} {r['delivered/s']:12.0f} "
              f"{r['delivered/s'] / base:6.2f} {r['tx us/rec']:9.2f} {r['rx us/rec']:9.2f} "
              f"{1 - r['delivered'] / max(r['sent'], 1):6.1%} {int(r['bad']):4}")


if __name__ == "__main__":
    main()
