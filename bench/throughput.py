"""Throughput family: datagrams per second between two processes over loopback.

Two workloads, each at 100 and 1200 B of payload:

* one-way: the client blasts payloads for a fixed time, unpaced (nothing waits for the
  receiver, so a receiver that cannot keep up shows up as loss, not as a slower sender);
  the server counts what it is handed.  Rate = payloads delivered / the receiver's
  active time (first to last delivery).
* echo: the client keeps a window of WINDOW payloads in flight and sends a new one for
  every echo it gets back (an in-flight window not answered within LOSS_TIMEOUT is
  counted lost and resent); the server echoes each payload.  Rate = echoes / second at
  the client.

Contenders (sender and receiver are separate 'spawn' worker processes, pinned to
different CPUs when there are two; sockets have the same buffer sizes everywhere):

  py-udp        plain Python UDP, one sock.send / sock.recv_into per datagram: the baseline
  udp-gso       UDP batched in C through the same syscalls dtls uses (GSO sendmsg, GRO +
                recvmmsg): dtls._cudpio.seal_send / recv_payloads with the NULL protection
                state, i.e. unencrypted records (13-byte header) - an approximation of
                plain UDP batched in C, the practical limit of the socket path
  dtls-single   dtls.DtlsSocket.send / recv_into (AES-128-GCM)
  dtls-batch    dtls.DtlsSocket.send_many / recv_many (AES-128-GCM)
  mbedtls       python-mbedtls DTLS 1.2, one send / recv per record (AES-128-GCM)
  pyopenssl     pyOpenSSL DTLS 1.2 over memory BIOs, one write+bio_read+send /
                recv+bio_write+recv per record (AES-128-GCM)

All DTLS contenders negotiate ECDHE-ECDSA-AES128-GCM-SHA256 with the same self-signed
P-256 certificate; the handshake is outside the timed part.  Every receiver waits in
select() and then drains without blocking (a non-blocking socket, DtlsSocket timeout 0)
until the call says nothing is left (BlockingIOError / an empty batch), so the cost of
that last empty call is part of each contender's figure.

Every measurement runs for a fixed time (--quick: 3 rounds x 0.35 s, else 5 rounds x
2 s); rounds interleave the contenders (the order rotates each round) and each ratio to
py-udp is taken within the same round, then the median over rounds is reported.  Fresh
sockets and a fresh handshake for every measurement; the two worker processes live for
the whole run (and are killed and replaced after any failure or timeout).  CPU per
record is each worker's user+system time (getrusage) over its timed loop divided by the
records it sent / received; "CPU-bound/s" = 1e6 / the larger of the two, the rate the
CPU cost allows with a core per side, a cross-check that does not depend on how loaded
the machine was (the one-way sender's share of a core is printed as a noise gauge).

Targets (from the issue): dtls-batch >= 3x py-udp; dtls-batch >= 0.5x min(udp-gso,
AES-128-GCM seal limit), the seal limit being C seal_batch of 64 records in one process
(records per CPU second); dtls-single >= 0.75x py-udp.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_common as bc

FAMILY = "throughput"
MODES = ("oneway", "echo")
SIZES = (100, 1200)
CONTENDERS = ("py-udp", "udp-gso", "dtls-single", "dtls-batch", "mbedtls", "pyopenssl")
DESCRIPTIONS = {
    "py-udp": "plain Python UDP: sock.send / sock.recv_into per datagram",
    "udp-gso": "UDP batched in C (GSO send, GRO+recvmmsg receive) via dtls._cudpio with the "
               "NULL protection state (unencrypted 13-byte-header records): approximates "
               "plain UDP batched through the same syscalls",
    "dtls-single": "dtls DtlsSocket.send / recv_into, AES-128-GCM",
    "dtls-batch": "dtls DtlsSocket.send_many / recv_many, AES-128-GCM",
    "mbedtls": "python-mbedtls DTLS 1.2 send / recv per record, AES-128-GCM",
    "pyopenssl": "pyOpenSSL DTLS 1.2 (memory BIOs + UDP socket) per record, AES-128-GCM",
}
BATCHED = frozenset({"udp-gso", "dtls-batch"})

BATCH = 64            # payloads per send call for batched senders (and per blast step)
RECV_BATCH = 32       # datagrams per receive call for batched receivers
WINDOW = 256          # echo: payloads in flight
LOSS_TIMEOUT = 0.05   # echo: an unanswered window is declared lost after this
SOCK_BUF = 4 << 20    # SO_RCVBUF / SO_SNDBUF asked for on every socket
MAX_PACKETS = 50_000_000  # one-way sender safety cap per measurement
HANDSHAKE_TIMEOUT = 10.0
SUITE_OPENSSL = "ECDHE-ECDSA-AES128-GCM-SHA256"
SUITE_MBEDTLS = "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"
APPLICATION_DATA = 23
DTLS1_2_VERSION = 0xFEFD  # OpenSSL's DTLS1_2_VERSION (pyOpenSSL exports no constant for it)


# ======================================================================================
# Endpoints: one per contender and side, all with the same small interface
# ======================================================================================


def _udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCK_BUF)
    return sock


def _wait_writable(fd: Any, timeout: float = 0.1) -> None:
    select.select([], [fd], [], timeout)


class Endpoint:
    """An established association (or plain UDP pair) on one side.

    send_n(n): send n copies of the payload, each its own datagram; returns n (waits for
    send-buffer space rather than dropping).  drain_count(): take every payload available
    now without blocking; returns how many.  echo_drain(): the same, sending each payload
    straight back.  fileno(): for select().  Subclasses set `payload`.
    """

    payload: bytes

    def fileno(self) -> int:
        raise NotImplementedError

    def send_n(self, n: int) -> int:
        raise NotImplementedError

    def drain_count(self) -> int:
        raise NotImplementedError

    def echo_drain(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class PyUdpEndpoint(Endpoint):
    """Plain Python UDP on a connected non-blocking socket."""

    def __init__(self, sock: socket.socket, payload: bytes) -> None:
        self.sock = sock
        self.payload = payload
        self.buf = bytearray(65536)
        sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send_n(self, n: int) -> int:
        send, p = self.sock.send, self.payload
        i = 0
        while i < n:
            try:
                send(p)
                i += 1
            except BlockingIOError:
                _wait_writable(self.sock)
        return n

    def drain_count(self) -> int:
        recv_into, buf = self.sock.recv_into, self.buf
        n = 0
        try:
            while True:
                recv_into(buf)
                n += 1
        except BlockingIOError:
            pass
        return n

    def echo_drain(self) -> int:
        recv, send = self.sock.recv, self.sock.send
        n = 0
        try:
            while True:
                send(recv(2048))
                n += 1
        except BlockingIOError:
            pass
        return n

    def close(self) -> None:
        self.sock.close()


def _plain_server_connect(sock: socket.socket, timeout: float) -> None:
    """Wait for the client's hello datagram, connect to its sender, acknowledge."""
    sock.settimeout(timeout)
    _, addr = sock.recvfrom(2048)
    sock.connect(addr)
    sock.send(b"!")


def _plain_client_connect(sock: socket.socket, addr: Any, timeout: float) -> None:
    """Send hello datagrams until the server acknowledges."""
    sock.connect(addr)
    deadline = time.monotonic() + timeout
    sock.settimeout(0.05)
    while time.monotonic() < deadline:
        sock.send(b"?")
        try:
            if sock.recv(2048) == b"!":
                return
        except (TimeoutError, ConnectionRefusedError):
            continue
    raise TimeoutError("no answer from the plain UDP server")


class GsoEndpoint(Endpoint):
    """Unencrypted records batched in C: dtls._cudpio with NULL-protection CipherStates."""

    def __init__(self, sock: socket.socket, payload: bytes) -> None:
        from dtls import _crecord, _cudpio
        from dtls.protection import NULL_PROTECTION

        self.sock = sock
        self.payload = payload
        self.io = _cudpio
        self.tx = _crecord.CipherState(NULL_PROTECTION, epoch=1)
        self.rx = _crecord.CipherState(NULL_PROTECTION, epoch=1)
        caps = _cudpio.udp_caps(sock)
        if caps & _cudpio.UdpCaps.GRO:
            _cudpio.set_gro(sock)
        self.mode = _cudpio.best_send_mode(_cudpio.udp_caps(sock))
        sock.setblocking(False)
        self._lists: dict[int, list[bytes]] = {}

    def fileno(self) -> int:
        return self.sock.fileno()

    def _send(self, payloads: Sequence[Any]) -> None:
        seal_send, tx, sock, mode = self.io.seal_send, self.tx, self.sock, self.mode
        done = 0
        while done < len(payloads):
            k = seal_send(tx, sock, APPLICATION_DATA,
                          payloads if done == 0 else payloads[done:], mode)
            if k == 0:
                _wait_writable(sock)
            done += k

    def send_n(self, n: int) -> int:
        lst = self._lists.get(n)
        if lst is None:
            lst = self._lists[n] = [self.payload] * n
        self._send(lst)
        return n

    def drain_count(self) -> int:
        recv, rx, sock = self.io.recv_payloads, self.rx, self.sock
        n = 0
        while True:
            view = recv(rx, sock, RECV_BATCH)
            if not view.datagrams:
                return n
            n += len(view)

    def echo_drain(self) -> int:
        recv, rx, sock = self.io.recv_payloads, self.rx, self.sock
        n = 0
        while True:
            view = recv(rx, sock, RECV_BATCH)
            if not view.datagrams:
                return n
            k = len(view)
            if k:
                self._send(list(view))  # seal_send copies before the scratch is reused
                n += k

    def close(self) -> None:
        self.sock.close()


def _dtls_configs(cert_pem: str, key_pem: str) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from dtls.config import DtlsConfiguration
    from dtls.suites import CipherSuite

    cert = x509.load_pem_x509_certificate(Path(cert_pem).read_bytes())
    key: Any = serialization.load_pem_private_key(Path(key_pem).read_bytes(), password=None)
    suites = (CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,)
    server = DtlsConfiguration(is_client=False, certificate_chain=[cert], private_key=key,
                               cipher_suites=suites)
    client = DtlsConfiguration(is_client=True, verify_peer=False, cipher_suites=suites,
                               handshake_timeout=HANDSHAKE_TIMEOUT)
    return server, client


class DtlsSingleEndpoint(Endpoint):
    """dtls.DtlsSocket, one record per send / recv_into call (timeout 0 while draining)."""

    def __init__(self, ds: Any, payload: bytes) -> None:
        self.ds = ds
        self.payload = payload
        self.buf = bytearray(65536)
        ds.settimeout(0)

    def fileno(self) -> int:
        return int(self.ds.fileno())

    def send_n(self, n: int) -> int:
        send, p = self.ds.send, self.payload
        i = 0
        while i < n:
            try:
                send(p)
                i += 1
            except BlockingIOError:
                _wait_writable(self.ds)
        return n

    def drain_count(self) -> int:
        recv_into, buf = self.ds.recv_into, self.buf
        n = 0
        try:
            while True:
                recv_into(buf)
                n += 1
        except (BlockingIOError, TimeoutError):
            pass
        return n

    def echo_drain(self) -> int:
        recv, send = self.ds.recv, self.ds.send
        n = 0
        try:
            while True:
                send(recv(2048))
                n += 1
        except (BlockingIOError, TimeoutError):
            pass
        return n

    def close(self) -> None:
        self.ds.close()


class DtlsBatchEndpoint(DtlsSingleEndpoint):
    """dtls.DtlsSocket.send_many / recv_many."""

    def __init__(self, ds: Any, payload: bytes) -> None:
        super().__init__(ds, payload)
        self._lists: dict[int, list[bytes]] = {}

    def send_n(self, n: int) -> int:
        lst = self._lists.get(n)
        if lst is None:
            lst = self._lists[n] = [self.payload] * n
        return int(self.ds.send_many(lst))

    def drain_count(self) -> int:
        recv_many = self.ds.recv_many
        n = 0
        try:
            while True:
                k = len(recv_many(RECV_BATCH))
                if not k:
                    break
                n += k
        except (BlockingIOError, TimeoutError):
            pass
        return n

    def echo_drain(self) -> int:
        recv_many, send_many = self.ds.recv_many, self.ds.send_many
        n = 0
        try:
            while True:
                batch = recv_many(RECV_BATCH)
                k = len(batch)
                if not k:
                    break
                send_many(list(batch))  # the view is valid until the next receive
                n += k
        except (BlockingIOError, TimeoutError):
            pass
        return n


def _mbedtls_conf(cert_pem: str, key_pem: str, server: bool) -> Any:
    from mbedtls import pk, x509
    from mbedtls.tls import DTLSConfiguration, DTLSVersion

    kw: dict[str, Any] = {
        "ciphers": (SUITE_MBEDTLS,), "lowest_supported_version": DTLSVersion.DTLSv1_2,
        "highest_supported_version": DTLSVersion.DTLSv1_2, "validate_certificates": False,
        "handshake_timeout_min": 0.5, "handshake_timeout_max": 4.0}
    if server:
        kw["certificate_chain"] = ((x509.CRT.from_file(cert_pem),), pk.ECC.from_file(key_pem))
    return DTLSConfiguration(**kw)


class MbedEndpoint(Endpoint):
    """python-mbedtls TLSWrappedSocket, one record per send / recv."""

    def __init__(self, conn: Any, payload: bytes) -> None:
        from mbedtls.tls import WantReadError, WantWriteError

        self.conn = conn
        self.payload = payload
        self._want = (WantReadError, WantWriteError)
        conn.setblocking(False)

    def fileno(self) -> int:
        return int(self.conn.fileno())

    def send_n(self, n: int) -> int:
        send, p = self.conn.send, self.payload
        i = 0
        while i < n:
            try:
                send(p)
                i += 1
            except (BlockingIOError, *self._want):
                _wait_writable(self.conn)
        return n

    def drain_count(self) -> int:
        recv, want = self.conn.recv, self._want
        n = 0
        while True:
            try:
                if recv(2048):
                    n += 1
            except BlockingIOError:
                return n
            except want:
                continue  # a record that was not application data

    def echo_drain(self) -> int:
        recv, send, want = self.conn.recv, self.conn.send, self._want
        n = 0
        while True:
            try:
                data = recv(2048)
            except BlockingIOError:
                return n
            except want:
                continue
            if data:
                send(data)
                n += 1

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn._socket.close()  # no close_notify: the peer may already be gone


def _ossl_context(cert_pem: str, key_pem: str, server: bool) -> Any:
    from OpenSSL import SSL

    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_min_proto_version(DTLS1_2_VERSION)
    ctx.set_max_proto_version(DTLS1_2_VERSION)
    ctx.set_cipher_list(SUITE_OPENSSL.encode())
    ctx.set_options(SSL.OP_NO_QUERY_MTU)
    if server:
        ctx.use_certificate_file(cert_pem)
        ctx.use_privatekey_file(key_pem)
    else:
        ctx.set_verify(SSL.VERIFY_NONE, lambda *_: True)
    return ctx


class OsslEndpoint(Endpoint):
    """pyOpenSSL Connection over memory BIOs, the datagrams carried by a UDP socket."""

    def __init__(self, conn: Any, sock: socket.socket, payload: bytes) -> None:
        from OpenSSL import SSL

        self.conn = conn
        self.sock = sock
        self.payload = payload
        self._want = SSL.WantReadError
        sock.setblocking(False)

    @staticmethod
    def pump_out(conn: Any, sock: socket.socket, want: type[Exception]) -> None:
        """Send what the Connection wrote to its BIO (one datagram per bio_read)."""
        while True:
            try:
                data = conn.bio_read(65536)
            except want:
                return
            sock.send(data)

    @classmethod
    def handshake(cls, conn: Any, sock: socket.socket, timeout: float) -> None:
        from OpenSSL import SSL

        deadline = time.monotonic() + timeout
        while True:
            try:
                conn.do_handshake()
                cls.pump_out(conn, sock, SSL.WantReadError)
                return
            except SSL.WantReadError:
                cls.pump_out(conn, sock, SSL.WantReadError)
            if time.monotonic() > deadline:
                raise TimeoutError("pyOpenSSL DTLS handshake timed out")
            wait = conn.DTLSv1_get_timeout() or 0.1
            if select.select([sock], [], [], min(wait, 0.1))[0]:
                conn.bio_write(sock.recv(65536))
            else:
                conn.DTLSv1_handle_timeout()
                cls.pump_out(conn, sock, SSL.WantReadError)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send_n(self, n: int) -> int:
        write, bio_read, send, p = self.conn.write, self.conn.bio_read, self.sock.send, \
            self.payload
        i = 0
        while i < n:
            write(p)
            data = bio_read(65536)
            while True:
                try:
                    send(data)
                    break
                except BlockingIOError:
                    _wait_writable(self.sock)
            i += 1
        return n

    def drain_count(self) -> int:
        recv, bio_write, read, want = self.sock.recv, self.conn.bio_write, self.conn.recv, \
            self._want
        n = 0
        while True:
            try:
                bio_write(recv(65536))
            except BlockingIOError:
                return n
            try:
                read(2048)
                n += 1
            except want:
                pass

    def echo_drain(self) -> int:
        recv, bio_write, read, want = self.sock.recv, self.conn.bio_write, self.conn.recv, \
            self._want
        write, bio_read, send = self.conn.write, self.conn.bio_read, self.sock.send
        n = 0
        while True:
            try:
                bio_write(recv(65536))
            except BlockingIOError:
                return n
            try:
                data = read(2048)
            except want:
                continue
            write(data)
            send(bio_read(65536))
            n += 1

    def close(self) -> None:
        self.sock.close()


# -- per contender: establish the server and client sides ------------------------------


def server_endpoint(contender: str, sock: socket.socket, payload: bytes, cert: str,
                    key: str, timeout: float = HANDSHAKE_TIMEOUT) -> Endpoint:
    """Serve one client on the bound socket `sock` until the association is up."""
    if contender == "py-udp":
        _plain_server_connect(sock, timeout)
        return PyUdpEndpoint(sock, payload)
    if contender == "udp-gso":
        _plain_server_connect(sock, timeout)
        return GsoEndpoint(sock, payload)
    if contender in ("dtls-single", "dtls-batch"):
        import dtls

        server_conf, _ = _dtls_configs(cert, key)
        ds = dtls.accept(sock, server_conf, timeout=timeout)
        ds.do_handshake()
        cls = DtlsBatchEndpoint if contender == "dtls-batch" else DtlsSingleEndpoint
        return cls(ds, payload)
    if contender == "mbedtls":
        from mbedtls.tls import HelloVerifyRequest, ServerContext

        listener = ServerContext(_mbedtls_conf(cert, key, server=True)).wrap_socket(sock)
        listener.settimeout(timeout)
        conn, client = listener.accept()
        # accept() dups the (timeout, so O_NONBLOCK) fd into a socket object that thinks
        # it blocks: give it the timeout back before using it.
        conn.settimeout(timeout)
        conn.setcookieparam(client[0].encode("ascii"))
        try:
            conn.do_handshake()
        except HelloVerifyRequest:
            first, (conn, client) = conn, conn.accept()
            first._socket.close()
            conn.settimeout(timeout)
            conn.setcookieparam(client[0].encode("ascii"))
            conn.do_handshake()
        listener._socket.close()
        return MbedEndpoint(conn, payload)
    if contender == "pyopenssl":
        from OpenSSL import SSL

        oconn = SSL.Connection(_ossl_context(cert, key, server=True), None)
        oconn.set_accept_state()
        oconn.set_ciphertext_mtu(1500)
        sock.settimeout(timeout)
        hello, addr = sock.recvfrom(65536)
        sock.connect(addr)
        oconn.bio_write(hello)
        OsslEndpoint.handshake(oconn, sock, timeout)
        return OsslEndpoint(oconn, sock, payload)
    raise ValueError(f"unknown contender {contender!r}")


def client_endpoint(contender: str, addr: Any, payload: bytes, cert: str, key: str,
                    timeout: float = HANDSHAKE_TIMEOUT) -> Endpoint:
    """Connect to the server at `addr` and bring the association up."""
    sock = _udp_socket()
    sock.bind(("127.0.0.1", 0))
    try:
        if contender in ("py-udp", "udp-gso"):
            _plain_client_connect(sock, addr, timeout)
            return PyUdpEndpoint(sock, payload) if contender == "py-udp" else \
                GsoEndpoint(sock, payload)
        if contender in ("dtls-single", "dtls-batch"):
            from dtls import DtlsSocket

            _, client_conf = _dtls_configs(cert, key)
            ds = DtlsSocket.wrap_client(sock, client_conf, peer_address=addr,
                                        timeout=timeout)
            ds.do_handshake()
            cls = DtlsBatchEndpoint if contender == "dtls-batch" else DtlsSingleEndpoint
            return cls(ds, payload)
        if contender == "mbedtls":
            from mbedtls.tls import ClientContext

            conn = ClientContext(_mbedtls_conf(cert, key, server=False)).wrap_socket(
                sock, server_hostname=None)
            conn.settimeout(timeout)
            conn.connect(addr)
            conn.do_handshake()
            return MbedEndpoint(conn, payload)
        if contender == "pyopenssl":
            from OpenSSL import SSL

            oconn = SSL.Connection(_ossl_context(cert, key, server=False), None)
            oconn.set_connect_state()
            oconn.set_ciphertext_mtu(1500)
            sock.connect(addr)
            OsslEndpoint.handshake(oconn, sock, timeout)
            return OsslEndpoint(oconn, sock, payload)
    except BaseException:
        sock.close()
        raise
    raise ValueError(f"unknown contender {contender!r}")


# ======================================================================================
# Worker-side measurement functions (run in the spawned workers via bench._bench_common)
# ======================================================================================


def _wait(ep: Endpoint, ch: bc.Channel, timeout: float) -> bool:
    """Wait until the endpoint is readable (True) or the timeout/a control message
    (False)."""
    r = select.select([ep.fileno(), ch.fileno()], [], [], timeout)[0]
    return ep.fileno() in r


def serve(ch: bc.Channel, contender: str, mode: str, size: int, cert: str, key: str
          ) -> dict[str, Any]:
    """Server side of one measurement: report the bound address, establish, then count
    (one-way) or echo (echo) until the parent asks to stop and the socket is quiet."""
    sock = _udp_socket()
    if contender == "mbedtls":  # its DTLS accept() rebinds the listening address
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    ch.report(sock.getsockname())
    ep = server_endpoint(contender, sock, bytes(size), cert, key)
    try:
        work = ep.drain_count if mode == "oneway" else ep.echo_drain
        got = 0
        first = last = 0.0
        ended = ""
        cpu0 = bc.cpu_seconds()
        while True:
            t = time.perf_counter()
            try:
                n = work()
            except Exception as exc:  # noqa: BLE001  (peer closed: the measurement is over)
                ended = f"{type(exc).__name__}: {exc}"
                break
            if n:
                if not got:
                    first = t
                got += n
                last = time.perf_counter()
                continue
            if ch.stop_requested():
                # The client is done: one short wait for stragglers, then stop.
                if not _wait(ep, ch, 0.02):
                    break
                continue
            _wait(ep, ch, 0.1)
        cpu = bc.cpu_seconds() - cpu0
        return {"received": got, "active_s": max(last - first, 0.0), "cpu_s": cpu,
                "ended": ended}
    finally:
        ep.close()


def client(ch: bc.Channel, contender: str, mode: str, size: int, cert: str, key: str,
           addr: Any, seconds: float) -> dict[str, Any]:
    """Client side of one measurement: establish, then blast (one-way) or run the echo
    window for `seconds`; report the result, then close once the parent says stop."""
    ep = client_endpoint(contender, tuple(addr), bytes(size), cert, key)
    try:
        if mode == "oneway":
            result = _blast(ep, seconds)
        else:
            result = _echo(ep, ch, seconds)
        ch.report(result)
        ch.wait_stop(30.0)
        return result
    finally:
        ep.close()


def _blast(ep: Endpoint, seconds: float) -> dict[str, Any]:
    send_n, now = ep.send_n, time.perf_counter
    sent = 0
    cpu0 = bc.cpu_seconds()
    t0 = now()
    end = t0 + seconds
    while now() < end and sent < MAX_PACKETS:
        sent += send_n(BATCH)
    elapsed = now() - t0
    return {"sent": sent, "elapsed_s": elapsed, "cpu_s": bc.cpu_seconds() - cpu0}


def _echo(ep: Endpoint, ch: bc.Channel, seconds: float) -> dict[str, Any]:
    send_n, drain, now = ep.send_n, ep.drain_count, time.perf_counter
    got = lost = batches = 0
    cpu0 = bc.cpu_seconds()
    t0 = now()
    end = t0 + seconds
    sent = send_n(WINDOW)
    inflight = WINDOW
    while True:
        n = drain()
        if n:
            got += n
            batches += 1
            inflight = max(0, inflight - n)
            if now() >= end:
                break
            sent += send_n(n)
            inflight += n
            continue
        if now() >= end:
            break
        if not select.select([ep], [], [], LOSS_TIMEOUT)[0]:
            lost += inflight  # nothing came back for LOSS_TIMEOUT: that window is gone
            sent += send_n(WINDOW)
            inflight = WINDOW
    elapsed = now() - t0
    return {"sent": sent, "received": got, "lost": lost, "elapsed_s": elapsed,
            "cpu_s": bc.cpu_seconds() - cpu0, "echoes_per_wakeup": got / max(batches, 1)}


def seal_rate(ch: bc.Channel, size: int, seconds: float) -> float | None:
    """AES-128-GCM records sealed per CPU second by the C seal_batch (64 per call)."""
    try:
        from dtls import _crecord
    except ImportError:
        return None
    from dtls.protection import BulkCipher, Protection

    state = _crecord.CipherState(Protection(BulkCipher.AES_128_GCM), epoch=1, key=bytes(16),
                                 fixed_iv=bytes(4))
    payloads = [bytes(size)] * BATCH
    seal_batch = state.seal_batch
    seal_batch(APPLICATION_DATA, payloads)  # warm up
    n = 0
    cpu0 = bc.cpu_seconds()
    while (cpu := bc.cpu_seconds() - cpu0) < seconds:
        for _ in range(50):
            seal_batch(APPLICATION_DATA, payloads)
        n += 50 * BATCH
    return n / cpu


# ======================================================================================
# Parent side: availability, rounds, aggregation
# ======================================================================================


def availability() -> dict[str, str]:
    """contender -> why it is skipped (contenders that run are absent)."""
    why: dict[str, str] = {}
    try:
        from dtls import _cudpio  # noqa: F401
    except ImportError as exc:
        why["udp-gso"] = f"dtls C record layer not built ({exc})"
    try:
        import dtls
        from dtls.sock import DtlsSocket
    except ImportError as exc:
        why["dtls-single"] = why["dtls-batch"] = f"dtls not importable ({exc})"
    else:
        if not hasattr(dtls, "accept"):
            why["dtls-single"] = why["dtls-batch"] = "dtls.accept (server socket) is missing"
        elif not (hasattr(DtlsSocket, "send_many") and hasattr(DtlsSocket, "recv_many")):
            why["dtls-batch"] = "DtlsSocket.send_many / recv_many are missing"
    try:
        import mbedtls.tls as mtls
        if SUITE_MBEDTLS not in mtls.ciphers_available():
            why["mbedtls"] = f"python-mbedtls lacks {SUITE_MBEDTLS}"
    except ImportError as exc:
        why["mbedtls"] = f"python-mbedtls not installed ({exc}); pip install python-mbedtls"
    try:
        from OpenSSL import SSL
        if not hasattr(SSL, "DTLS_METHOD"):
            why["pyopenssl"] = "this pyOpenSSL has no DTLS_METHOD"
    except ImportError as exc:
        why["pyopenssl"] = f"pyOpenSSL not installed ({exc}); pip install pyopenssl"
    return why


def _write_cert(directory: Path) -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization

    from dtls.cli import make_self_signed

    cert, key = make_self_signed("localhost")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


class _Pair:
    """The server and client workers, recreated after any failure."""

    def __init__(self) -> None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.cpus = (cpus[-1], cpus[0]) if len(cpus) >= 2 else (None, None)
        self.server: bc.Worker | None = None
        self.client: bc.Worker | None = None

    def ensure(self) -> tuple[bc.Worker, bc.Worker]:
        if self.server is None or self.server.restart_needed():
            if self.server is not None:
                self.server.close()
            self.server = bc.Worker("server", self.cpus[0])
        if self.client is None or self.client.restart_needed():
            if self.client is not None:
                self.client.close()
            self.client = bc.Worker("client", self.cpus[1])
        return self.server, self.client

    def reset(self) -> None:
        for w in (self.server, self.client):
            if w is not None:
                w.close()
        self.server = self.client = None

    close = reset


def measure(pair: _Pair, contender: str, mode: str, size: int, seconds: float, cert: str,
            key: str) -> dict[str, Any]:
    """One timed run of one contender: the derived figures (or an 'error')."""
    server, client_w = pair.ensure()
    mod = __name__ if __name__ != "__main__" else "throughput"
    timeout = HANDSHAKE_TIMEOUT + 10
    try:
        server.start_call(mod, "serve", contender=contender, mode=mode, size=size, cert=cert,
                          key=key)
        addr = server.next_message(timeout)
        client_w.start_call(mod, "client", contender=contender, mode=mode, size=size,
                            cert=cert, key=key, addr=addr, seconds=seconds)
        tx = client_w.next_message(seconds + timeout)
        server.request_stop()
        rx = server.result(timeout)
        client_w.request_stop()
        client_w.result(timeout)
    except bc.WorkerError as exc:
        pair.reset()  # kill both: nothing half-finished survives into the next run
        return {"error": str(exc).strip().splitlines()[-1][:300]}
    if mode == "oneway":
        sent, got = tx["sent"], rx["received"]
        rate = got / rx["active_s"] if rx["active_s"] > 0 else None
        out = {"rate": rate, "sent": sent, "delivered": got,
               "loss": 1 - got / sent if sent else None,
               "sent_rate": sent / tx["elapsed_s"],
               "tx_cpu_us": 1e6 * tx["cpu_s"] / sent if sent else None,
               "rx_cpu_us": 1e6 * rx["cpu_s"] / got if got else None}
    else:
        got = tx["received"]
        out = {"rate": got / tx["elapsed_s"], "sent": tx["sent"], "delivered": got,
               "loss": tx["lost"] / tx["sent"] if tx["sent"] else None,
               "echoed": rx["received"], "echoes_per_wakeup": tx["echoes_per_wakeup"],
               # client: one send + one receive per echo; server: one receive + one send
               "tx_cpu_us": 1e6 * tx["cpu_s"] / got if got else None,
               "rx_cpu_us": 1e6 * rx["cpu_s"] / rx["received"] if rx["received"] else None}
    # Noise gauge: the share of a core the client got (it never waits in one-way mode).
    out["tx_busy"] = tx["cpu_s"] / tx["elapsed_s"] if tx["elapsed_s"] > 0 else None
    # What each side's CPU cost allows with a core to itself: robust on a loaded machine.
    worst = max(out["tx_cpu_us"] or 0.0, out["rx_cpu_us"] or 0.0)
    out["cpu_rate"] = 1e6 / worst if worst > 0 else None
    return out


def run(quick: bool, progress: Callable[[str], None] | None = None,
        contenders: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the throughput family; returns a JSON-able dict (see to_markdown)."""
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    rounds = 3 if quick else 5
    seconds = 0.35 if quick else 2.0
    seal_seconds = 0.1 if quick else 0.5
    skipped = availability()
    chosen = [c for c in (contenders or CONTENDERS) if c not in skipped]
    for c, why in skipped.items():
        say(f"throughput: skipping {c}: {why}")
    cells: dict[tuple[str, int, str], list[dict[str, Any]]] = {
        (m, s, c): [] for m in MODES for s in SIZES for c in chosen}
    seal: dict[int, list[float | None]] = {s: [] for s in SIZES}
    t_start = time.monotonic()
    pair = _Pair()
    with tempfile.TemporaryDirectory(prefix="dtls-bench-") as tmp:
        cert, key = _write_cert(Path(tmp))
        try:
            for r in range(rounds):
                say(f"throughput: round {r + 1}/{rounds} ({time.monotonic() - t_start:.0f} s)")
                for size in SIZES:
                    server, _ = pair.ensure()
                    try:
                        server.start_call(__name__ if __name__ != "__main__" else "throughput",
                                          "seal_rate", size=size, seconds=seal_seconds)
                        seal[size].append(server.result(30))
                    except bc.WorkerError as exc:
                        say(f"throughput: seal limit failed: {exc}")
                        pair.reset()
                        seal[size].append(None)
                for mode in MODES:
                    for size in SIZES:
                        k = r % len(chosen) if chosen else 0
                        for c in chosen[k:] + chosen[:k]:  # rotate the order each round
                            m = measure(pair, c, mode, size, seconds, cert, key)
                            if "error" in m:
                                say(f"throughput: {c} {mode} {size} B round {r + 1}: "
                                    f"{m['error']}")
                            cells[(mode, size, c)].append(m)
        finally:
            pair.close()
    return _aggregate(cells, seal, skipped, chosen, rounds, seconds, quick,
                      time.monotonic() - t_start)


def _aggregate(cells: dict[tuple[str, int, str], list[dict[str, Any]]],
               seal: dict[int, list[float | None]], skipped: dict[str, str],
               chosen: Sequence[str], rounds: int, seconds: float, quick: bool,
               wall: float) -> dict[str, Any]:
    def rates(mode: str, size: int, c: str, key: str = "rate") -> list[float | None]:
        return [m.get(key) for m in cells.get((mode, size, c), [])]

    rows = []
    for (mode, size, c), ms in cells.items():
        base = rates(mode, size, "py-udp")
        mine = rates(mode, size, c)
        row = {
            "mode": mode, "size": size, "contender": c,
            "rate": bc.summary(mine),
            "tx_cpu_us": bc.summary(m.get("tx_cpu_us") for m in ms)["median"],
            "rx_cpu_us": bc.summary(m.get("rx_cpu_us") for m in ms)["median"],
            "loss": bc.summary(m.get("loss") for m in ms)["median"],
            "ratio_vs_py_udp": bc.median_ratio(zip(mine, base)) if base else None,
            "cpu_rate": bc.summary(m.get("cpu_rate") for m in ms)["median"],
            "cpu_ratio_vs_py_udp": bc.median_ratio(zip(
                rates(mode, size, c, "cpu_rate"), rates(mode, size, "py-udp", "cpu_rate"))),
            "tx_busy": bc.summary(m.get("tx_busy") for m in ms)["median"],
            "errors": [m["error"] for m in ms if "error" in m],
            "rounds": ms,
        }
        rows.append(row)
    seal_summary = {str(s): bc.summary(v) for s, v in seal.items()}

    def target_values(mode: str, size: int, key: str) -> list[tuple[str, float, float | None]]:
        base = rates(mode, size, "py-udp", key)
        batch = rates(mode, size, "dtls-batch", key)
        single = rates(mode, size, "dtls-single", key)
        gso = rates(mode, size, "udp-gso", key) or [None] * len(batch)
        limit = [min(g, s) if g is not None and s is not None else None
                 for g, s in zip(gso, seal[size])]
        return [("dtls-batch / py-udp", 3.0, bc.median_ratio(zip(batch, base))),
                ("dtls-batch / min(udp-gso, GCM seal)", 0.5,
                 bc.median_ratio(zip(batch, limit))),
                ("dtls-single / py-udp", 0.75, bc.median_ratio(zip(single, base)))]

    targets = []
    for mode in MODES:
        for size in SIZES:
            for (name, goal, value), (_, _, by_cpu) in zip(
                    target_values(mode, size, "rate"), target_values(mode, size, "cpu_rate")):
                status = "n/a" if value is None else ("pass" if value >= goal else "short")
                targets.append({"target": name, "mode": mode, "size": size, "value": value,
                                "goal": goal, "status": status, "value_by_cpu": by_cpu})
    return {
        "family": FAMILY,
        "quick": quick,
        "rounds": rounds,
        "seconds_per_measurement": seconds,
        "wall_s": round(wall, 1),
        "batch": BATCH, "recv_batch": RECV_BATCH, "window": WINDOW,
        "loss_timeout_s": LOSS_TIMEOUT, "sock_buf": SOCK_BUF,
        "contenders": {c: DESCRIPTIONS[c] for c in chosen},
        "skipped": skipped,
        "seal_limit": seal_summary,
        "rows": rows,
        "targets": targets,
    }


# ======================================================================================
# Report
# ======================================================================================


def to_markdown(result: dict[str, Any]) -> str:
    """The family's section for RESULTS.md."""
    out = ["## Throughput: datagrams/s between two processes over loopback", ""]
    out.append(
        f"{result['rounds']} rounds x {result['seconds_per_measurement']:g} s per "
        f"measurement{' (--quick)' if result['quick'] else ''}, contenders interleaved "
        f"(order rotated each round); {result['wall_s']:g} s in all.  One-way: the client "
        f"sends unpaced (batches of {result['batch']} for batched senders) and the rate is "
        f"payloads delivered per second at the receiver; echo: a window of "
        f"{result['window']} payloads in flight, rate = echoes/s at the client.  "
        f"rate = median (min-max) over rounds; ratio = median of the per-round ratios to "
        f"py-udp; CPU = each side's user+sys time per record (one-way: sender / receiver; "
        f"echo: client per echo / server per echoed record); loss = median share not "
        f"delivered (echo: windows unanswered within {1000 * result['loss_timeout_s']:g} "
        f"ms).")
    out.append("")
    for c, d in result["contenders"].items():
        out.append(f"- `{c}`: {d}")
    for c, why in result["skipped"].items():
        out.append(f"- `{c}`: SKIPPED - {why}")
    out.append("")
    header = ["mode", "size", "contender", "rate/s", "range", "vs py-udp", "tx CPU us",
              "rx CPU us", "loss", "CPU-bound/s", "vs py-udp (CPU)"]
    rows = []
    for row in result["rows"]:
        rate = row["rate"]
        rng = "-" if rate["min"] is None else \
            f"{bc.fmt_rate(rate['min'])}-{bc.fmt_rate(rate['max'])}"
        err = f" ({len(row['errors'])} failed)" if row["errors"] else ""
        rows.append([row["mode"], str(row["size"]), row["contender"] + err,
                     bc.fmt_rate(rate["median"]), rng, bc.fmt_ratio(row["ratio_vs_py_udp"]),
                     bc.fmt_num(row["tx_cpu_us"]), bc.fmt_num(row["rx_cpu_us"]),
                     bc.fmt_pct(row["loss"]), bc.fmt_rate(row["cpu_rate"]),
                     bc.fmt_ratio(row["cpu_ratio_vs_py_udp"])])
    out.append(bc.markdown_table(header, rows, [False, True, False] + [True] * 8))
    busy = bc.summary(r["tx_busy"] for r in result["rows"] if r["mode"] == "oneway")
    out.append("")
    out.append(f"CPU-bound/s = 1e6 / max(tx, rx CPU us): the rate each side's CPU cost allows "
               f"with a core to itself (a load-independent cross-check of rate/s).  Noise "
               f"gauge: the one-way sender got a median {bc.fmt_num(busy['median'])} of a "
               f"core (range {bc.fmt_num(busy['min'])}-{bc.fmt_num(busy['max'])}; 1.00 = a "
               f"quiet machine).")
    out.append("")
    seal_txt = ", ".join(f"{s} B: {bc.fmt_rate(v['median'])}/s"
                         for s, v in result["seal_limit"].items())
    out.append(f"AES-128-GCM seal limit (C seal_batch of {result['batch']}, one process, "
               f"records per CPU second, median over rounds): {seal_txt}.")
    out.append("")
    trows = [[t["target"], t["mode"], str(t["size"]), bc.fmt_ratio(t["value"]),
              f">= {t['goal']:g}x", t["status"], bc.fmt_ratio(t.get("value_by_cpu"))]
             for t in result["targets"]]
    out.append(bc.markdown_table(["target", "mode", "size", "value", "goal", "status",
                                  "by CPU-bound rate"], trows,
                                 [False, False, True, True, True, False, True]))
    passed = sum(t["status"] == "pass" for t in result["targets"])
    short = [f"{t['target']} {t['mode']} {t['size']} B ({bc.fmt_ratio(t['value'])})"
             for t in result["targets"] if t["status"] == "short"]
    na = sum(t["status"] == "n/a" for t in result["targets"])
    out.append("")
    out.append(f"targets (by delivered rate): {passed}/{len(result['targets'])} pass"
               + (f"; short: {', '.join(short)}" if short else "")
               + (f"; {na} not measurable (contender missing)" if na else ""))
    return "\n".join(out)


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description="throughput family alone (see bench/run.py)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--contenders", help="comma-separated subset of " + ",".join(CONTENDERS))
    ns = ap.parse_args()
    res = run(ns.quick, contenders=ns.contenders.split(",") if ns.contenders else None)
    print(to_markdown(res))
    print(json.dumps(res["targets"], indent=1), file=sys.stderr)
