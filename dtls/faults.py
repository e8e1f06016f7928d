"""Seeded network faults for DTLS: a sans-IO fault model, an in-memory path with a virtual
clock, and a real UDP proxy (also `python -m dtls proxy`).

DTLS exists because datagrams get lost, duplicated, reordered, delayed, corrupted,
dropped for being too large, or (by middleboxes and our own packing) coalesced.  `Faults`
says how often each happens on one direction of a path; `FaultModel` applies it to a
stream of datagrams with its own seeded random generator, so a run is reproducible from
its seed.  Two drivers share the model:

* `SimulatedPath` joins two sans-IO `Connection`s with a virtual clock: thousands of
  faulty handshakes per second, deterministic, for tests and bench/faults.py.
* `UdpFaultProxy` relays real UDP between one client and an upstream server (for
  interop with openssl & co. under faults), in a background thread.

Order of faults for each datagram: drop, MTU cap (silent drop of what is larger),
corruption (one random bit flipped), duplication; then each copy gets the fixed delay plus,
with probability `reorder`, an extra uniform delay up to `reorder_delay` (so later
datagrams overtake it); finally, with probability `pack`, it waits to be coalesced with
the next datagram(s) into one (only while the result stays within the MTU cap).
"""

from __future__ import annotations

import heapq
import random
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .connection import Connection
from .events import Event

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["FaultModel", "Faults", "SimulatedPath", "UdpFaultProxy"]

MAX_HELD = 4096
"""Datagrams a model holds (delayed, reordered, waiting to be packed) at most; beyond that
new ones are dropped and counted (`stats["dropped_queue_full"]`)."""

_MAX_UDP = 65507


@dataclass(frozen=True)
class Faults:
    """What happens to datagrams on one direction of a path (probabilities per datagram)."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.05
    """Seconds: a reordered datagram is held an extra uniform(0, reorder_delay)."""
    delay: float = 0.0
    """Seconds added to every datagram (one-way latency)."""
    mtu: int | None = None
    """Datagrams larger than this many bytes (UDP payload) are dropped silently."""
    corrupt: float = 0.0
    pack: float = 0.0
    """Probability that a datagram is held to be coalesced with the next one(s)."""
    pack_window: float = 0.01
    """Seconds a packing datagram waits for company before it goes alone."""

    def validate(self) -> None:
        for name in ("drop", "duplicate", "reorder", "corrupt", "pack"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], not {p}")
        for name in ("reorder_delay", "delay", "pack_window"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds")
        if self.mtu is not None and not 1 <= self.mtu <= _MAX_UDP:
            raise ValueError(f"mtu must be 1..{_MAX_UDP} bytes")


class FaultModel:
    """Applies `Faults` to one direction's datagrams; sans-IO (times are passed in).

    `submit(datagram, now)` hands a datagram to the path; `release(now)` returns those
    whose time has come, in delivery order; `next_time()` says when the next one is due.
    """

    def __init__(self, faults: Faults, seed: int | str = 0) -> None:
        faults.validate()
        self.faults = faults
        self.rng = random.Random(seed)
        self.stats: Counter[str] = Counter()
        self._held: list[tuple[float, int, bytes]] = []  # heap of (release time, order, data)
        self._order = 0
        self._pack: tuple[float, bytes] | None = None  # (deadline, coalesced bytes so far)

    def submit(self, datagram: bytes, now: float) -> None:
        f, rng, stats = self.faults, self.rng, self.stats
        stats["received"] += 1
        if f.drop and rng.random() < f.drop:
            stats["dropped"] += 1
            return
        if f.mtu is not None and len(datagram) > f.mtu:
            stats["dropped_mtu"] += 1
            return
        if f.corrupt and datagram and rng.random() < f.corrupt:
            bit = rng.randrange(8 * len(datagram))
            mutable = bytearray(datagram)
            mutable[bit // 8] ^= 1 << (bit % 8)
            datagram = bytes(mutable)
            stats["corrupted"] += 1
        copies = 1
        if f.duplicate and rng.random() < f.duplicate:
            copies = 2
            stats["duplicated"] += 1
        for _ in range(copies):
            when = now + f.delay
            if f.reorder and rng.random() < f.reorder:
                when += rng.uniform(0.0, f.reorder_delay)
                stats["reordered"] += 1
            self._schedule(datagram, when)

    def _schedule(self, datagram: bytes, when: float) -> None:
        f = self.faults
        limit = min(f.mtu or _MAX_UDP, _MAX_UDP)
        if self._pack is not None:
            deadline, packed = self._pack
            if len(packed) + len(datagram) <= limit:
                self._pack = (deadline, packed + datagram)
                self.stats["packed"] += 1
                return
            self._flush_pack()
        if f.pack and self.rng.random() < f.pack:
            self._pack = (when + f.pack_window, datagram)
            return
        self._push(when, datagram)

    def _flush_pack(self) -> None:
        if self._pack is not None:
            deadline, packed = self._pack
            self._pack = None
            self._push(deadline, packed)

    def _push(self, when: float, datagram: bytes) -> None:
        if len(self._held) >= MAX_HELD:
            self.stats["dropped_queue_full"] += 1
            return
        self._order += 1
        heapq.heappush(self._held, (when, self._order, datagram))

    def next_time(self) -> float | None:
        times = [t for t in (self._held[0][0] if self._held else None,
                             self._pack[0] if self._pack else None) if t is not None]
        return min(times) if times else None

    def release(self, now: float) -> list[bytes]:
        if self._pack is not None and self._pack[0] <= now:
            self._flush_pack()
        out = []
        while self._held and self._held[0][0] <= now:
            out.append(heapq.heappop(self._held)[2])
        self.stats["delivered"] += len(out)
        return out

    def __len__(self) -> int:
        return len(self._held) + (self._pack is not None)


class _SimEndpoint:
    def __init__(self, connection: Connection, address: Any) -> None:
        self.connection = connection
        self.address = address
        self.events: list[Event] = []


class SimulatedPath:
    """Two sans-IO connections joined by a faulty path, on a virtual clock.

    `up` applies to client->server datagrams, `down` to server->client; each direction
    has its own generator seeded from `seed`.  `run(until)` advances to the next
    delivery or timer until `until()` holds, the virtual time passes `max_time`, or
    nothing is left to happen.  `tap(direction, datagram)` (optional) sees every
    datagram as sent, before faults: 'up' or 'down'; returning None drops it.
    """

    def __init__(self, client: Connection, server: Connection, *, up: Faults = Faults(),
                 down: Faults = Faults(), seed: int = 0,
                 client_address: Any = ("192.0.2.1", 50000),
                 server_address: Any = ("192.0.2.2", 4433), now: float = 0.0) -> None:
        self.client = _SimEndpoint(client, client_address)
        self.server = _SimEndpoint(server, server_address)
        self.models = {"up": FaultModel(up, f"{seed}/up"), "down": FaultModel(down, f"{seed}/down")}
        self.now = now  # virtual seconds: sessions and tickets carry times, so a later
        # path that resumes one must start later
        self.tap: Callable[[str, bytes], bytes | None] | None = None
        self.sent: Counter[str] = Counter()  # datagrams and bytes each side put on the path

    def _collect(self) -> None:
        for endpoint, direction in ((self.client, "up"), (self.server, "down")):
            for datagram, _addr in endpoint.connection.datagrams_to_send(self.now):
                if self.tap is not None:
                    tapped = self.tap(direction, datagram)
                    if tapped is None:
                        continue
                    datagram = tapped
                self.sent[f"{direction}_datagrams"] += 1
                self.sent[f"{direction}_bytes"] += len(datagram)
                self.models[direction].submit(datagram, self.now)
            while (event := endpoint.connection.next_event()) is not None:
                endpoint.events.append(event)

    def step(self) -> bool:
        """One delivery or timer; False when nothing is left to happen."""
        self._collect()
        times = []
        for name, model in self.models.items():
            if (t := model.next_time()) is not None:
                times.append((t, 0, name))
        for i, endpoint in enumerate((self.client, self.server)):
            if (t := endpoint.connection.get_timer()) is not None:
                times.append((t, 1, "client" if i == 0 else "server"))
        if not times:
            return False
        when, kind, name = min(times)
        self.now = max(self.now, when)
        if kind == 0:
            destination, source = ((self.server, self.client) if name == "up"
                                   else (self.client, self.server))
            for datagram in self.models[name].release(self.now):
                destination.connection.receive_datagram(datagram, source.address, self.now)
        else:
            endpoint = self.client if name == "client" else self.server
            endpoint.connection.handle_timer(self.now)
        self._collect()
        return True

    def run(self, until: Callable[[], bool] | None = None, *, max_time: float = 600.0,
            max_steps: int = 200_000) -> bool:
        """Step until `until()`; returns whether it holds."""
        for _ in range(max_steps):
            if until is not None and until():
                return True
            if self.now > max_time or not self.step():
                break
        return until() if until is not None else True

    def advance(self, seconds: float) -> None:
        """Run everything due within the next `seconds` of virtual time."""
        end = self.now + seconds
        for _ in range(200_000):
            self._collect()
            times = [t for t in (*(m.next_time() for m in self.models.values()),
                                 self.client.connection.get_timer(),
                                 self.server.connection.get_timer()) if t is not None]
            if not times or min(times) > end:
                break
            self.step()
        self.now = max(self.now, end)
        self._collect()


class UdpFaultProxy:
    """A UDP relay between one client and `upstream`, applying `up`/`down` faults.

    Clients send to `address`; the proxy remembers the last client address and relays
    replies to it.  Runs in a daemon thread from construction until `close()` (or the
    end of a `with` block).  `stats()` gives each direction's FaultModel counters.
    """

    def __init__(self, upstream: tuple[str, int], *, up: Faults = Faults(),
                 down: Faults = Faults(), seed: int = 0,
                 listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.upstream = upstream
        family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        self.front = socket.socket(family, socket.SOCK_DGRAM)
        self.back = socket.socket(socket.AF_INET6 if ":" in upstream[0] else socket.AF_INET,
                                  socket.SOCK_DGRAM)
        try:
            self.front.bind(listen)
            self.back.connect(upstream)
        except BaseException:
            self.front.close()
            self.back.close()
            raise
        self.address = self.front.getsockname()
        self.models = {"up": FaultModel(up, f"{seed}/up"), "down": FaultModel(down, f"{seed}/down")}
        self.client: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dtls-fault-proxy", daemon=True)
        self._thread.start()

    def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {name: dict(model.stats) for name, model in self.models.items()}

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                due = [t for t in (m.next_time() for m in self.models.values()) if t is not None]
            wait = 0.05 if not due else max(0.0, min(0.05, min(due) - time.monotonic()))
            readable, _, _ = select.select([self.front, self.back], [], [], wait)
            now = time.monotonic()
            for sock in readable:
                try:
                    if sock is self.front:
                        data, self.client = self.front.recvfrom(65536)
                        direction = "up"
                    else:
                        data = self.back.recv(65536)
                        direction = "down"
                except OSError:  # ICMP unreachable from the other side: a lost datagram
                    continue
                with self._lock:
                    self.models[direction].submit(data, now)
            now = time.monotonic()
            with self._lock:
                up, down = self.models["up"].release(now), self.models["down"].release(now)
            for data in up:
                try:
                    self.back.send(data)
                except OSError:
                    pass
            if self.client is not None:
                for data in down:
                    try:
                        self.front.sendto(data, self.client)
                    except OSError:
                        pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.front.close()
        self.back.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
