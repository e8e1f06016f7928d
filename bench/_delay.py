#!/usr/bin/env python3
"""A UDP delay shim: a relay that holds every datagram a fixed time in each direction.

    python bench/_delay.py --upstream 127.0.0.1:4433 --delay 0.150 [--listen 127.0.0.1:0]

Clients send to the relay's address; each client address gets its own upstream socket
(so the server sees one source port per client, and late datagrams of one client never
reach the next).  Every datagram, either way, is forwarded `delay` seconds after it
arrived, in arrival order, and counted (datagrams and UDP payload bytes per direction), so
the relay doubles as the packet counter of bench/paper.py.  It stands for the paper's
"delay element": with a one-way delay d the round-trip time is 2d.

`DelayRelay` runs in a daemon thread; use it as a context manager (or call `close()`).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import selectors
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DelayRelay", "DirectionCount"]


@dataclass
class DirectionCount:
    """Datagrams and UDP payload bytes forwarded in one direction."""

    datagrams: int = 0
    bytes: int = 0
    sizes: list[int] = field(default_factory=list)

    def add(self, size: int) -> None:
        self.datagrams += 1
        self.bytes += size
        self.sizes.append(size)


class DelayRelay:
    """Forward UDP between clients and `upstream`, `delay` seconds late each way."""

    def __init__(self, upstream: tuple[str, int], delay: float, *,
                 listen: tuple[str, int] = ("127.0.0.1", 0), max_clients: int = 4096) -> None:
        if delay < 0:
            raise ValueError("delay must be >= 0")
        self.upstream = upstream
        self.delay = delay
        self.max_clients = max_clients
        self._front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._front.bind(listen)
        self._front.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._front, selectors.EVENT_READ, None)
        self._back: dict[Any, socket.socket] = {}  # client address -> upstream socket
        self._queue: list[tuple[float, int, socket.socket, bytes, Any]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._stop = threading.Event()
        self.to_server = DirectionCount()
        self.to_client = DirectionCount()
        self._thread = threading.Thread(target=self._run, name="delay-relay", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """Where clients send (host, port)."""
        host, port = self._front.getsockname()[:2]
        return host, port

    def reset_counts(self) -> None:
        """Zero the per-direction counters (e.g. between handshakes)."""
        with self._lock:
            self.to_server = DirectionCount()
            self.to_client = DirectionCount()

    def counts(self) -> dict[str, dict[str, int]]:
        """{"to_server": {...}, "to_client": {...}} datagrams and bytes so far."""
        with self._lock:
            return {name: {"datagrams": c.datagrams, "bytes": c.bytes}
                    for name, c in (("to_server", self.to_server),
                                    ("to_client", self.to_client))}

    def close(self) -> None:
        """Stop the relay thread and close every socket (idempotent, bounded wait)."""
        if self._stop.is_set():
            return
        self._stop.set()
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass
        self._thread.join(5)
        for sock in list(self._back.values()) + [self._front, self._wake_r, self._wake_w]:
            try:
                sock.close()
            except OSError:
                pass
        self._sel.close()

    def __enter__(self) -> DelayRelay:  # noqa: PYI034  (a plain class, not subclassed)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the relay thread ----------------------------------------------------------------

    def _upstream_for(self, client: Any) -> socket.socket:
        sock = self._back.get(client)
        if sock is None:
            if len(self._back) >= self.max_clients:  # forget the oldest client
                oldest = next(iter(self._back))
                old = self._back.pop(oldest)
                self._sel.unregister(old)
                old.close()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.connect(self.upstream)
            self._back[client] = sock
            self._sel.register(sock, selectors.EVENT_READ, client)
        return sock

    def _schedule(self, sock: socket.socket, data: bytes, to: Any,
                  count: DirectionCount) -> None:
        with self._lock:
            count.add(len(data))
        heapq.heappush(self._queue, (time.monotonic() + self.delay, next(self._order), sock,
                                     data, to))

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            while self._queue and self._queue[0][0] <= now:
                _, _, sock, data, to = heapq.heappop(self._queue)
                try:
                    if to is None:
                        sock.send(data)
                    else:
                        sock.sendto(data, to)
                except OSError:
                    pass  # a closed client or server: the datagram is lost, as on a network
            timeout = max(0.0, self._queue[0][0] - time.monotonic()) if self._queue else 0.5
            for key, _ in self._sel.select(timeout):
                if key.data == "wake":
                    try:
                        self._wake_r.recv(64)
                    except OSError:
                        pass
                    continue
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                for _ in range(64):
                    try:
                        data, addr = src.recvfrom(65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:  # ICMP unreachable surfaced on a connected socket
                        break
                    if key.data is None:  # from a client, to the server
                        self._schedule(self._upstream_for(addr), data, None, self.to_server)
                    else:  # from the server, to client key.data
                        self._schedule(self._front, data, key.data, self.to_client)


@contextmanager
def delayed(upstream: tuple[str, int], delay: float) -> Iterator[DelayRelay]:
    """`with delayed(server_address, 0.150) as relay:` connect clients to relay.address."""
    relay = DelayRelay(upstream, delay)
    try:
        yield relay
    finally:
        relay.close()


def _parse_addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, type=_parse_addr, help="HOST:PORT")
    parser.add_argument("--listen", default="127.0.0.1:0", type=_parse_addr)
    parser.add_argument("--delay", type=float, default=0.150, help="seconds, each way")
    parser.add_argument("--seconds", type=float, default=None, help="exit after this long")
    args = parser.parse_args(argv)
    with DelayRelay(args.upstream, args.delay, listen=args.listen) as relay:
        print(f"relaying {relay.address[0]}:{relay.address[1]} -> "
              f"{args.upstream[0]}:{args.upstream[1]}, {args.delay * 1e3:g} ms each way",
              flush=True)
        try:
            deadline = None if args.seconds is None else time.monotonic() + args.seconds
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        print(relay.counts(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
