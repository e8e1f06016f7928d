#!/usr/bin/env python3
"""Scale benchmark (bench family 3): many established sessions on ONE server socket.

    python bench/scale.py            # 10,000 PSK sessions, 1,000 active, ECDSA at 1,000
    python bench/scale.py --quick    # 1,000 PSK sessions, 200 active, ECDSA at 200
    python bench/scale.py --json out.json

What is measured, and how:

* The server is a child process (``bench/scale.py --serve``) running `dtls.server.DtlsServer`
  sans-IO on one non-blocking UDP socket with its own select loop; it echoes every
  application record.  The parent process drives the clients: one sans-IO client
  `Connection` per session, each on its own connected UDP socket (the server demultiplexes
  by source address:port), with a bounded number of handshakes in flight.
* RSS per idle session = (server RSS with N established sessions, after gc.collect(), minus
  the server's RSS before the first handshake, after gc.collect()) / N, from
  /proc/self/statm.  Two figures: "fresh" right after the handshakes (the server still holds
  each final flight, RFC 6347 4.2.4, since no client has sent under the new epoch yet) and
  "after one echo" (each client sent one record and got it back, so the final flight is
  released).  RSS includes allocator slack left by the handshakes (pymalloc arenas, malloc
  heap), which is what a server operator pays.
* Handshakes: PSK (TLS_PSK_WITH_AES_128_GCM_SHA256) for the big population, because a PSK
  handshake costs no public-key operation; ECDHE_ECDSA P-256 with a certificate
  (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256) at a smaller N.  Server defaults otherwise
  (cookie exchange on, session tickets issued, session-ID cache of 1024 entries: those
  1024 cache entries are part of the measured RSS, amortised over N).
* tracemalloc: a separate, smaller run (tracing slows everything and adds its own memory)
  with the server tracing from before the first handshake; the top allocation sites of the
  idle population (snapshot difference, grouped by file:line) divided by N.  tracemalloc
  only sees Python allocations: OpenSSL's EVP contexts (the C record layer) appear only in
  RSS.
* Throughput: M of the established sessions each keep one 100-byte record in flight (send,
  wait for the echo, send again), round-robin over all M; the server reports application
  records received and echoed per second of wall time.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import hashlib
import json
import os
import platform
import resource
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from dtls.config import DtlsConfiguration
from dtls.connection import Connection
from dtls.events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from dtls.suites import CipherSuite

PSK = bytes(range(32))
PSK_SUITE = CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256
ECDSA_SUITE = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
PAGE = os.sysconf("SC_PAGE_SIZE")
TARGET_KIB = 16.0


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _malloc_in_use() -> int | None:
    """Bytes glibc malloc has handed out (mallinfo2 uordblks): OpenSSL's contexts, the C
    record states and Python objects over 512 bytes; pymalloc's small objects are not in it."""
    import ctypes

    class _MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2
        return int(libc.mallinfo2().uordblks)
    except (OSError, AttributeError):
        return None


def _raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for localhost (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "scale-cert.pem", directory / "scale-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


# -- server process ------------------------------------------------------------------------


def _server_config(suite: str, cert: str | None, key: str | None) -> DtlsConfiguration:
    if suite == "psk":
        return DtlsConfiguration(is_client=False, cipher_suites=(PSK_SUITE,),
                                 psk_lookup=lambda identity: PSK)
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    assert cert and key
    return DtlsConfiguration(
        is_client=False, cipher_suites=(ECDSA_SUITE,),
        certificate_chain=[x509.load_pem_x509_certificate(Path(cert).read_bytes())],
        private_key=load_pem_private_key(Path(key).read_bytes(), None))  # type: ignore[arg-type]


def serve(suite: str, sessions: int, cert: str | None, key: str | None,
          trace: bool) -> None:
    """The server child: one UDP socket, DtlsServer, echo; commands on stdin, JSON on stdout."""
    import tracemalloc

    from dtls.server import DtlsServer, ServerLimits

    limits = ServerLimits(max_sessions=sessions + 1024, max_half_open=4096,
                          handshake_rate=1e9, handshake_burst=10**9,
                          max_rate_sources=16, handshake_deadline=300.0,
                          idle_timeout=86400.0, max_queued_datagrams=1 << 20,
                          max_pending_events=1 << 20)
    core = DtlsServer(_server_config(suite, cert, key), limits)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 23)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 23)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, "udp")
    sel.register(0, selectors.EVENT_READ, "ctl")
    app_in = app_out = 0
    send_errors = 0
    baseline_snapshot = None
    pending = b""

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def established() -> int:
        return sum(1 for s in core._by_id.values() if s.established)

    gc.collect()
    reply({"port": sock.getsockname()[1], "rss": _rss()})
    recvfrom, receive, monotonic = sock.recvfrom, core.receive_datagram, time.monotonic
    while True:
        timer = core.get_timer()
        timeout = 0.5 if timer is None else max(0.0, min(0.5, timer - monotonic()))
        for key_, _ in sel.select(timeout):
            if key_.data == "udp":
                for _ in range(512):
                    try:
                        data, addr = recvfrom(65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        continue
                    receive(data, addr, monotonic())
                continue
            chunk = os.read(0, 65536)
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                cmd = line.decode().strip()
                if cmd == "mem":
                    gc.collect()
                    reply({"rss": _rss(), "malloc": _malloc_in_use(),
                           "sessions": len(core), "established": established(),
                           "app_in": app_in, "app_out": app_out, "send_errors": send_errors,
                           "stats": {k: v for k, v in core.stats.items()
                                     if isinstance(v, int)}})
                elif cmd == "counts":
                    reply({"app_in": app_in, "app_out": app_out, "t": monotonic(),
                           "cpu": time.process_time()})
                elif cmd == "trace_start":
                    gc.collect()
                    tracemalloc.start(1)
                    baseline_snapshot = tracemalloc.take_snapshot()
                    reply({"ok": True})
                elif cmd == "trace_snapshot":
                    gc.collect()
                    snap = tracemalloc.take_snapshot()
                    assert baseline_snapshot is not None
                    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
                    diff = snap.filter_traces(filters).compare_to(
                        baseline_snapshot.filter_traces(filters), "lineno")
                    total = sum(d.size_diff for d in diff)
                    top = [{"site": f"{_short(d.traceback[0].filename)}:{d.traceback[0].lineno}",
                            "bytes": d.size_diff, "count": d.count_diff,
                            "file": d.traceback[0].filename, "lineno": d.traceback[0].lineno}
                           for d in diff[:20]]
                    reply({"total": total, "top": top, "established": established()})
                elif cmd == "quit":
                    reply({"ok": True})
                    return
        now = monotonic()
        timer = core.get_timer()
        if timer is not None and timer <= now:
            core.handle_timer(now)
        while (item := core.next_event()) is not None:
            if isinstance(item.event, ApplicationData):
                app_in += 1
                if core.is_current(item.session):
                    core.send_to_session(item.session, item.event.data)
                    app_out += 1
        for datagram, addr in core.datagrams_to_send(now):
            try:
                sock.sendto(datagram, addr)
            except OSError:
                send_errors += 1
    del trace


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("dtls", "cryptography"):
        if anchor in parts:
            return "/".join(parts[len(parts) - 1 - parts[::-1].index(anchor):])
    return "/".join(parts[-2:])


def _source_line(filename: str, lineno: int) -> str:
    import linecache
    return linecache.getline(filename, lineno).strip()[:90]


class _Server:
    def __init__(self, suite: str, sessions: int, cert: Path | None, key: Path | None) -> None:
        argv = [sys.executable, str(Path(__file__).resolve()), "--serve", "--suite", suite,
                "--sessions", str(sessions)]
        if cert is not None and key is not None:
            argv += ["--cert", str(cert), "--key", str(key)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     cwd=str(_ROOT))
        hello = self._read()
        self.address = ("127.0.0.1", hello["port"])
        self.rss_start = hello["rss"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"server process exited ({self.proc.wait()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def ask(self, cmd: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd.encode() + b"\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            self.ask("quit")
        except (BrokenPipeError, RuntimeError, ValueError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- clients --------------------------------------------------------------------------------


class _Clients:
    """Sans-IO client Connections, one connected UDP socket each, driven by one selector."""

    def __init__(self, config: DtlsConfiguration, server: tuple[str, int]) -> None:
        self.config = config
        self.server = server
        self.sel = selectors.DefaultSelector()
        self.conns: list[Connection] = []
        self.socks: list[socket.socket] = []
        self.established: list[int] = []
        self.failed = 0
        self.echoes = 0
        self.waiting: set[int] = set()  # handshakes in flight

    def _start(self, now: float) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect(self.server)
        sock.setblocking(False)
        conn = Connection(self.config, peer_address=self.server)
        index = len(self.conns)
        self.conns.append(conn)
        self.socks.append(sock)
        self.sel.register(sock, selectors.EVENT_READ, index)
        conn.connect(now)
        self.waiting.add(index)
        self._flush(index)

    def _flush(self, index: int) -> None:
        sock = self.socks[index]
        for datagram, _ in self.conns[index].datagrams_to_send(0.0):
            try:
                sock.send(datagram)
            except OSError:
                pass

    def _events(self, index: int) -> None:
        conn = self.conns[index]
        while (event := conn.next_event()) is not None:
            if isinstance(event, HandshakeCompleted):
                self.waiting.discard(index)
                self.established.append(index)
            elif isinstance(event, ApplicationData):
                self.echoes += 1
                self.on_echo(index, event.data)
            elif isinstance(event, ConnectionTerminated) and index in self.waiting:
                self.waiting.discard(index)
                self.failed += 1

    def on_echo(self, index: int, data: bytes) -> None:
        pass

    def pump(self, timeout: float) -> None:
        now = time.monotonic()
        for key, _ in self.sel.select(timeout):
            index = key.data
            sock, conn = self.socks[index], self.conns[index]
            while True:
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                conn.receive_datagram(data, self.server, now)
            self._flush(index)
            self._events(index)
        now = time.monotonic()
        for index in list(self.waiting):
            conn = self.conns[index]
            timer = conn.get_timer()
            if timer is not None and timer <= now:
                conn.handle_timer(now)
                self._flush(index)
                self._events(index)

    def handshake(self, count: int, in_flight: int, deadline: float) -> float:
        """Start `count` handshakes, at most `in_flight` at once; returns the seconds taken."""
        start = time.monotonic()
        target = len(self.established) + count
        started = 0
        while len(self.established) < target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"handshakes too slow: {len(self.established)} of {target} "
                                   f"established, {self.failed} failed")
            now = time.monotonic()
            while started < count and len(self.waiting) < in_flight:
                self._start(now)
                started += 1
            if self.failed and started >= count and not self.waiting:
                raise RuntimeError(f"{self.failed} handshakes failed")
            self.pump(0.05)
        return time.monotonic() - start

    def send(self, index: int, data: bytes) -> None:
        self.conns[index].send(data)
        self._flush(index)

    def close(self) -> None:
        self.sel.close()
        for sock in self.socks:
            sock.close()


def _client_config(suite: str, cert: Path | None) -> DtlsConfiguration:
    if suite == "psk":
        return DtlsConfiguration(cipher_suites=(PSK_SUITE,), psk=PSK, psk_identity=b"scale")
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    assert cert is not None
    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(Encoding.DER)
    return DtlsConfiguration(cipher_suites=(ECDSA_SUITE,), server_name="localhost",
                             pinned_sha256=(hashlib.sha256(der).digest(),))


# -- scenarios -------------------------------------------------------------------------------


def _population(suite: str, n: int, cert: Path | None, key: Path | None, *,
                trace: bool = False, active: int = 0, seconds: float = 0.0,
                in_flight: int = 64) -> dict[str, Any]:
    server = _Server(suite, n, cert, key)
    clients = _Clients(_client_config(suite, cert), server.address)
    result: dict[str, Any] = {"suite": suite, "sessions": n}
    try:
        before = server.ask("mem")
        result["rss_before"] = before["rss"]
        if trace:
            server.ask("trace_start")
        result["handshake_seconds"] = clients.handshake(n, in_flight, time.monotonic() + 1800)
        result["handshakes_per_s"] = n / result["handshake_seconds"]
        time.sleep(0.5)
        clients.pump(0.1)
        fresh = server.ask("mem")
        assert fresh["established"] == n, fresh
        result["rss_fresh"] = fresh["rss"]
        result["per_session_fresh"] = (fresh["rss"] - before["rss"]) / n
        if fresh["malloc"] is not None and before["malloc"] is not None:
            result["malloc_per_session_fresh"] = (fresh["malloc"] - before["malloc"]) / n
        result["server_stats"] = fresh["stats"]
        if trace:
            snap = server.ask("trace_snapshot")
            result["trace_fresh"] = _trace_summary(snap, n)
        # One echo per session: the server's final flight is released.
        got: set[int] = set()
        clients.on_echo = lambda index, data: got.add(index)  # type: ignore[method-assign]
        for i, index in enumerate(clients.established):
            clients.send(index, b"x" * 32)
            if i % 256 == 255:
                clients.pump(0)
        deadline = time.monotonic() + 120
        while len(got) < n and time.monotonic() < deadline:
            clients.pump(0.05)
        result["echoed_once"] = len(got)
        after = server.ask("mem")
        result["rss_after_echo"] = after["rss"]
        result["per_session_after_echo"] = (after["rss"] - before["rss"]) / n
        if after["malloc"] is not None and before["malloc"] is not None:
            result["malloc_per_session_after_echo"] = (after["malloc"] - before["malloc"]) / n
        if trace:
            snap = server.ask("trace_snapshot")
            result["trace_after_echo"] = _trace_summary(snap, n)
        if active:
            result["throughput"] = _throughput(server, clients, active, seconds)
    finally:
        clients.close()
        server.close()
    return result


def _trace_summary(snap: dict[str, Any], n: int) -> dict[str, Any]:
    # Source lines are looked up here, not in the traced server (linecache would show up).
    return {"total_per_session": snap["total"] / n,
            "top": [dict(t, per_session=t["bytes"] / n,
                         line=_source_line(t.pop("file"), t["lineno"]))
                    for t in snap["top"]]}


def _throughput(server: _Server, clients: _Clients, active: int,
                seconds: float) -> dict[str, Any]:
    chosen = clients.established[:active]
    payload = b"p" * 100

    def on_echo(index: int, data: bytes) -> None:
        clients.send(index, payload)

    clients.on_echo = on_echo  # type: ignore[method-assign]
    start_echoes = clients.echoes
    for index in chosen:  # one record in flight per session, resent on each echo
        clients.send(index, payload)
    warm_until = time.monotonic() + 1.0
    while time.monotonic() < warm_until:
        clients.pump(0.01)
    t0 = server.ask("counts")
    e0 = clients.echoes
    wall0 = time.monotonic()
    end = wall0 + seconds
    while time.monotonic() < end:
        clients.pump(0.01)
    t1 = server.ask("counts")
    e1 = clients.echoes
    wall1 = time.monotonic()
    clients.on_echo = lambda index, data: None  # type: ignore[method-assign]
    span = t1["t"] - t0["t"]
    del start_echoes
    return {"active_sessions": len(chosen), "seconds": span, "payload": len(payload),
            "server_records_in_per_s": (t1["app_in"] - t0["app_in"]) / span,
            "server_records_echoed_per_s": (t1["app_out"] - t0["app_out"]) / span,
            "server_cpu_share": (t1["cpu"] - t0["cpu"]) / span,
            "server_records_in_per_cpu_s": (t1["app_in"] - t0["app_in"]) / max(
                t1["cpu"] - t0["cpu"], 1e-9),
            "client_echoes_per_s": (e1 - e0) / (wall1 - wall0)}


def run(quick: bool = False) -> dict[str, Any]:
    """The whole benchmark; returns a JSON-able dict (see `to_markdown`)."""
    import tempfile

    n_psk, n_active, n_ecdsa, n_trace = ((1000, 200, 200, 500) if quick
                                         else (10_000, 1000, 1000, 2000))
    seconds = 3.0 if quick else 10.0
    _raise_nofile(n_psk + 256)
    result: dict[str, Any] = {
        "bench": "scale", "quick": quick,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/scale.py" + (" --quick" if quick else ""),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cpus",
        "python": platform.python_implementation() + " " + platform.python_version(),
        "target_kib_per_session": TARGET_KIB,
    }
    try:
        from dtls.record import CipherState
        result["record_backend"] = CipherState.__module__
    except ImportError:
        pass
    result["psk"] = _population("psk", n_psk, None, None, active=n_active, seconds=seconds)
    result["psk_traced"] = _population("psk", n_trace, None, None, trace=True)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = _certificate(Path(tmp))
        result["ecdsa"] = _population("ecdsa", n_ecdsa, cert, key, in_flight=32)
    return result


def _kib(n: float) -> str:
    return f"{n / 1024:.1f}"


def to_markdown(result: dict[str, Any]) -> str:
    method = (
        "RSS per session = (server RSS with N established sessions - RSS before any "
        "handshake) / N, both after gc.collect(), from /proc/self/statm in the server "
        "process.  *fresh*: right after the handshakes (the final flight is still held "
        "for retransmission, RFC 6347 4.2.4); *after one echo*: each client sent one "
        "record and got it back; *malloc*: the part of it in glibc malloc (mallinfo2: "
        "OpenSSL contexts, C record states, Python objects > 512 B).  Target: <= "
        f"{result['target_kib_per_session']:g} KiB per idle session.")
    lines = [
        "## Scale: established sessions on one server socket", "",
        f"Command: `{result['command']}`  ", f"Date: {result['date']}  ",
        (f"Machine: {result['machine']}; {result['python']}; record layer "
         f"{result.get('record_backend', '?')}"), "", method, "",
        ("| handshake | N | handshakes/s | RSS before (MiB) | KiB/session fresh "
         "| KiB/session after one echo | of which malloc (KiB, after echo) |"),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in (("PSK", "psk"), ("ECDHE_ECDSA P-256 cert", "ecdsa"),
                       ("PSK (tracemalloc on)", "psk_traced")):
        r = result.get(key)
        if not r:
            continue
        malloc = r.get("malloc_per_session_after_echo", float("nan"))
        lines.append(f"| {label} | {r['sessions']} | {r['handshakes_per_s']:.0f} | "
                     f"{r['rss_before'] / 2**20:.1f} | {_kib(r['per_session_fresh'])} | "
                     f"{_kib(r['per_session_after_echo'])} | {_kib(malloc)} |")
    traced = result.get("psk_traced")
    for phase in ("trace_fresh", "trace_after_echo"):
        t = traced.get(phase) if traced else None
        if not traced or not t:
            continue
        when = "fresh" if phase == "trace_fresh" else "after one echo"
        lines += ["", (f"tracemalloc ({when}, PSK, N={traced['sessions']}): "
                       f"{t['total_per_session']:.0f} B/session of Python allocations; "
                       "top sites:"),
                  "", "| site | B/session | blocks/session | code |", "|---|---:|---:|---|"]
        for site in t["top"][:12]:
            code = site["line"].replace("|", "\\|")
            lines.append(f"| {site['site']} | {site['per_session']:.0f} | "
                         f"{site['count'] / traced['sessions']:.2f} | `{code}` |")
    tp = result.get("psk", {}).get("throughput")
    if tp:
        lines += ["", (f"Throughput across {tp['active_sessions']} active PSK sessions "
                       f"(one {tp['payload']}-byte record in flight per session, echoed; "
                       f"{tp['seconds']:.1f} s): server received "
                       f"{tp['server_records_in_per_s']:.0f} records/s and echoed "
                       f"{tp['server_records_echoed_per_s']:.0f} records/s; clients saw "
                       f"{tp['client_echoes_per_s']:.0f} echoes/s.  The server process got "
                       f"{tp['server_cpu_share']:.2f} of a core (clients and server share the "
                       f"machine): {tp['server_records_in_per_cpu_s']:.0f} records in (and as "
                       "many echoed) per server CPU second.")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="also write the result as JSON here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--suite", default="psk", help=argparse.SUPPRESS)
    parser.add_argument("--sessions", type=int, default=10_000, help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.suite, args.sessions, args.cert, args.key, args.trace)
        return
    result = run(args.quick)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
