#!/usr/bin/env python3
"""Handshake benchmark: DTLS 1.2 handshake latency, CPU per handshake, server handshakes/s.

    python bench/handshakes.py            # full run (a few minutes)
    python bench/handshakes.py --quick    # smoke run (< 60 s)
    python bench/handshakes.py --json out.json

What is measured, all in one run:

1. Latency over loopback UDP with real sockets, client and server in TWO PROCESSES (the
   server is a child process: `python bench/handshakes.py --serve SPEC.json`; the client is
   this process).  Wall time from creating the client socket to the end of the client's
   handshake, median and p90, for

   * ``ecdhe_ecdsa``: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, P-256 ECDHE, an ECDSA P-256
     leaf signed by a CA (the server sends leaf + CA), the client validating the chain and
     the hostname (``localhost``), HelloVerifyRequest cookie on;
   * ``psk``: TLS_PSK_WITH_AES_128_GCM_SHA256, cookie on;
   * ``ecdhe_psk``: TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 (we implement no AES-GCM
     ECDHE_PSK suite), P-256, cookie on;
   * ``resume_id`` / ``resume_ticket``: abbreviated handshakes resuming an ecdhe_ecdsa
     session by session ID (client tickets off) or by RFC 5077 ticket, cookie on.

   The same ecdhe_ecdsa handshake is run against pyOpenSSL (DTLS_METHOD, memory BIOs driven
   over a UDP socket, DTLSv1_listen + HMAC cookie callbacks, X509_VERIFY_PARAM hostname
   check) and python-mbedtls (its DTLS socket API, HelloVerifyRequest cookies), each with
   its own server child process, in alternating rounds.
2. CPU per handshake in one process, no sockets: a client and a server Connection (and the
   pyOpenSSL / mbedtls equivalents over memory buffers) exchanging datagrams in memory;
   every call into each side is timed, so client and server CPU are split.  The server
   figure gives the single-core ceiling "server handshakes/s = 1 / server CPU".
3. Server handshakes/s under load: one server process (`dtls.server.DtlsUdpServer`, one
   UDP socket) and one client process driving K concurrent sans-IO client Connections,
   each on its own UDP socket (a fresh socket and Connection after every handshake).  The
   server's CPU time is read from /proc, so the table also says whether the server or the
   client (which shares the machine's cores) was the bottleneck.

Targets (from the issue): full-handshake latency <= pyOpenSSL's in the same run, and >= 5x
python-mbedtls handshakes/s.  Both are reported as PASS/SHORT with the numbers.

`run(quick)` returns a JSON-able dict and `to_markdown(result)` renders it (bench/run.py
uses both).  Certificates are made in-module with `cryptography`; nothing under tests/ is
imported.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as _dt
import functools
import gc
import hashlib
import hmac
import io
import ipaddress
import json
import math
import os
import platform
import pstats
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import dtls
from dtls.config import DtlsConfiguration
from dtls.connection import Connection
from dtls.events import ConnectionTerminated, HandshakeCompleted
from dtls.extensions import NamedGroup
from dtls.suites import CipherSuite

__all__ = ["Pki", "make_ca", "make_leaf", "make_pki", "ours_memory_handshake", "run",
           "start_server", "to_markdown"]

HOST = "127.0.0.1"
SERVER_NAME = "localhost"
PSK_IDENTITY = b"bench-client"
PSK_KEY = bytes(range(32))
HANDSHAKE_TIMEOUT = 5.0
"""Seconds any one measured handshake may take before the run counts it as failed."""
CHILD_LIFETIME = 600.0
"""A server child exits on its own after this long, whatever happens to its parent."""

CPU_CLOCK = time.thread_time
"""The clock of the in-memory CPU measurements: this thread's CPU seconds (ns resolution on
Linux), so other processes on a loaded machine do not inflate them."""

SUITE_ECDSA = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
SUITE_PSK = CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256
SUITE_ECDHE_PSK = CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256

SCENARIOS: dict[str, str] = {
    "ecdhe_ecdsa": "ECDHE-ECDSA-AES128-GCM, P-256, CA chain + hostname verified, cookie",
    "psk": "PSK-AES128-GCM-SHA256, cookie",
    "ecdhe_psk": "ECDHE-PSK-CHACHA20-POLY1305, P-256, cookie",
    "resume_id": "resumption by session ID (ECDHE-ECDSA session), cookie",
    "resume_ticket": "resumption by RFC 5077 ticket (ECDHE-ECDSA session), cookie",
}


# --------------------------------------------------------------------------------------
# Certificates (made with `cryptography`, no files needed except for the peers)


@dataclass(frozen=True)
class Pki:
    """A CA and one server leaf issued by it (leaf for `SERVER_NAME` and 127.0.0.1)."""

    ca_cert: x509.Certificate
    ca_key: Any
    leaf_cert: x509.Certificate
    leaf_key: Any

    @property
    def leaf_der(self) -> bytes:
        return self.leaf_cert.public_bytes(serialization.Encoding.DER)

    @property
    def ca_der(self) -> bytes:
        return self.ca_cert.public_bytes(serialization.Encoding.DER)

    def write(self, directory: Path) -> dict[str, str]:
        """Write ca.pem, leaf.pem, chain.pem (leaf + CA) and leaf.key; return their paths."""
        pem = serialization.Encoding.PEM
        files = {
            "ca": self.ca_cert.public_bytes(pem),
            "leaf": self.leaf_cert.public_bytes(pem),
            "chain": self.leaf_cert.public_bytes(pem) + self.ca_cert.public_bytes(pem),
            "key": self.leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()),
        }
        paths = {}
        for name, data in files.items():
            path = directory / f"{name}.{'key' if name == 'key' else 'pem'}"
            path.write_bytes(data)
            paths[name] = str(path)
        return paths


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def make_ca(key: Any | None = None, common_name: str = "Bench CA") -> tuple[Any, Any]:
    """A self-signed CA (ECDSA P-256 unless `key` is given): (certificate, key)."""
    key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    now = _now()
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256()))
    return cert, key


def _build_leaf(ca_cert: x509.Certificate, ca_key: Any, key: Any, *, minimal: bool,
                extra_names: int, filler: str) -> x509.Certificate:
    # The filler lengthens the CN (path validation and the hostname check use the SAN).
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME + filler)]
    sans: list[x509.GeneralName] = [x509.DNSName(SERVER_NAME)]
    if not minimal:
        sans.append(x509.IPAddress(ipaddress.ip_address(HOST)))
    sans += [x509.DNSName(f"alt{i:03d}.bench.example") for i in range(extra_names)]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    now = _now()
    builder = (
        x509.CertificateBuilder().subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False))
    if not minimal:
        is_rsa = isinstance(key, rsa.RSAPrivateKey)
        builder = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=is_rsa,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False))
    return builder.sign(ca_key, hashes.SHA256())


def make_leaf(ca_cert: x509.Certificate, ca_key: Any, key: Any, *,
              target_der_size: int | None = None, minimal: bool = False) -> x509.Certificate:
    """A server leaf for `SERVER_NAME` signed by the CA.

    With `target_der_size`, pad it (extra SAN names, then a longer CN) to
    exactly that many DER bytes when possible; the closest size found otherwise (ECDSA
    signatures vary by a byte or two, so a few signings are tried).  `minimal` leaves out
    everything but SAN and AKI (what path validation requires), for small targets.
    """
    def der_len(c: x509.Certificate) -> int:
        return len(c.public_bytes(serialization.Encoding.DER))

    cert = _build_leaf(ca_cert, ca_key, key, minimal=minimal, extra_names=0, filler="")
    if target_der_size is None:
        return cert
    # Bulk padding: extra SAN names of ~24 bytes each; then up to 50 characters more CN
    # for the last bytes, adjusted one step at a time.
    extra_names = max(0, (target_der_size - der_len(cert) - 40) // 24)
    filler_len = 0
    best = cert
    ecdsa_ca = isinstance(ca_key, ec.EllipticCurvePrivateKey)
    for attempt in range(60):
        cert = _build_leaf(ca_cert, ca_key, key, minimal=minimal, extra_names=extra_names,
                           filler="x" * filler_len)
        diff = target_der_size - der_len(cert)
        if abs(diff) < abs(target_der_size - der_len(best)):
            best = cert
        if diff == 0:
            return cert
        if diff < 0 and filler_len == 0:
            if extra_names == 0:
                break  # too large even unpadded
            extra_names -= 1
            continue
        if diff > 0 and filler_len >= 50:
            extra_names += 1
            filler_len = 0
            continue
        # Move the CN length by the difference; when close with an ECDSA CA, every other attempt
        # just re-signs (ECDSA signatures vary in DER length by a byte or two).
        step = 0 if ecdsa_ca and abs(diff) <= 2 and attempt % 2 else diff
        filler_len = min(50, max(0, filler_len + step))
    return best


def make_pki(leaf_key: str = "ecdsa") -> Pki:
    """ECDSA P-256 CA and an ECDSA P-256 (or RSA-2048) leaf with the usual extensions."""
    ca_cert, ca_key = make_ca()
    key = (ec.generate_private_key(ec.SECP256R1()) if leaf_key == "ecdsa"
           else rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return Pki(ca_cert, ca_key, make_leaf(ca_cert, ca_key, key), key)


# --------------------------------------------------------------------------------------
# Our configurations and the in-memory handshake


def server_configuration(pki: Pki, *, chain: bool = True, cookie: bool = True,
                         cipher_suites: Sequence[CipherSuite] | None = None,
                         max_datagram_size: int | None = None) -> DtlsConfiguration:
    """A server with the leaf (+ CA when `chain`), PSK lookup, tickets and session cache."""
    kw: dict[str, Any] = {}
    if cipher_suites is not None:
        kw["cipher_suites"] = tuple(cipher_suites)
    else:
        kw["cipher_suites"] = tuple(dict.fromkeys(
            (SUITE_ECDSA, SUITE_PSK, SUITE_ECDHE_PSK) + DtlsConfiguration().cipher_suites))
    if max_datagram_size is not None:
        kw["max_datagram_size"] = max_datagram_size
    return DtlsConfiguration(
        is_client=False,
        certificate_chain=[pki.leaf_cert, pki.ca_cert] if chain else [pki.leaf_cert],
        private_key=pki.leaf_key, psk_lookup={PSK_IDENTITY: PSK_KEY}.get,
        cookie_exchange=cookie, **kw)


def client_configuration(pki: Pki, scenario: str) -> DtlsConfiguration:
    """The client side of one of `SCENARIOS` (resumption scenarios: the full handshake
    that makes the session; set `session=` to resume)."""
    p256 = (NamedGroup.secp256r1,)
    if scenario == "psk":
        return DtlsConfiguration(psk=PSK_KEY, psk_identity=PSK_IDENTITY,
                                 cipher_suites=(SUITE_PSK,), groups=p256)
    if scenario == "ecdhe_psk":
        return DtlsConfiguration(psk=PSK_KEY, psk_identity=PSK_IDENTITY,
                                 cipher_suites=(SUITE_ECDHE_PSK,), groups=p256)
    return DtlsConfiguration(ca_certificates=(pki.ca_cert,), server_name=SERVER_NAME,
                             cipher_suites=(SUITE_ECDSA,), groups=p256,
                             session_tickets=scenario != "resume_id")


_CLIENT_ADDR = ("192.0.2.1", 40000)
_SERVER_ADDR = ("192.0.2.2", 4433)


def _failed(side: str, event: ConnectionTerminated) -> None:
    raise RuntimeError(f"{side} failed: {event.reason}")


@dataclass
class MemoryHandshake:
    """One in-memory handshake: CPU seconds per side and every datagram, in order."""

    client_cpu: float
    server_cpu: float
    completed: HandshakeCompleted
    session: Any
    datagrams: list[tuple[str, bytes]]
    """("c2s" | "s2c", datagram) in the order they were sent."""


def ours_memory_handshake(client_config: DtlsConfiguration, server: Connection | None = None,
                          server_config: DtlsConfiguration | None = None, *,
                          session: Any = None) -> MemoryHandshake:
    """Run one handshake between a client Connection and a server listener Connection over
    an in-memory lossless link; time every call into each side with `CPU_CLOCK` (this
    thread's CPU time: time stolen by other processes on a shared machine is not counted)."""
    perf = CPU_CLOCK
    now = 0.0
    log: list[tuple[str, bytes]] = []
    t0 = perf()
    if server is None:
        assert server_config is not None
        server = Connection(server_config)  # the listener that will bind to this client
    server_cpu = perf() - t0
    t0 = perf()
    client = Connection(client_config, peer_address=_SERVER_ADDR)
    client.connect(now, session=session)
    to_server = [d for d, _ in client.datagrams_to_send(now)]
    client_cpu = perf() - t0
    completed_c: HandshakeCompleted | None = None
    completed_s = False
    for _ in range(16):
        log += [("c2s", d) for d in to_server]
        t0 = perf()
        for d in to_server:
            server.receive_datagram(d, _CLIENT_ADDR, now)
        to_client = [d for d, _ in server.datagrams_to_send(now)]
        while (ev := server.next_event()) is not None:
            if isinstance(ev, HandshakeCompleted):
                completed_s = True
            elif isinstance(ev, ConnectionTerminated):
                _failed("server", ev)
        server_cpu += perf() - t0
        log += [("s2c", d) for d in to_client]
        t0 = perf()
        for d in to_client:
            client.receive_datagram(d, _SERVER_ADDR, now)
        to_server = [d for d, _ in client.datagrams_to_send(now)]
        while (ev := client.next_event()) is not None:
            if isinstance(ev, HandshakeCompleted):
                completed_c = ev
            elif isinstance(ev, ConnectionTerminated):
                _failed("client", ev)
        client_cpu += perf() - t0
        if completed_c is not None and completed_s and not to_server:
            return MemoryHandshake(client_cpu, server_cpu, completed_c, client.session, log)
        if not to_server and not to_client:
            break
    raise RuntimeError("in-memory handshake did not complete")


def dtlsserver_memory_handshake(server: Any, client_config: DtlsConfiguration,
                                address: tuple[str, int]) -> tuple[float, float]:
    """One handshake through a sans-IO `dtls.server.DtlsServer` (the many-peer front end:
    routing, limits, per-session bookkeeping) from a fresh client at `address`:
    (client s, server s).  The client's close_notify is then fed to the server, untimed,
    so finished sessions do not accumulate."""
    perf = CPU_CLOCK
    now = 0.0
    t0 = perf()
    client = Connection(client_config, peer_address=_SERVER_ADDR)
    client.connect(now)
    to_server = [d for d, _ in client.datagrams_to_send(now)]
    client_cpu, server_cpu = perf() - t0, 0.0
    done = False
    for _ in range(16):
        t0 = perf()
        for d in to_server:
            server.receive_datagram(d, address, now)
        to_client = [d for d, _ in server.datagrams_to_send(now)]
        while server.next_event() is not None:
            pass
        server_cpu += perf() - t0
        t0 = perf()
        for d in to_client:
            client.receive_datagram(d, _SERVER_ADDR, now)
        to_server = [d for d, _ in client.datagrams_to_send(now)]
        while (ev := client.next_event()) is not None:
            if isinstance(ev, HandshakeCompleted):
                done = True
            elif isinstance(ev, ConnectionTerminated):
                _failed("client", ev)
        client_cpu += perf() - t0
        if done and not to_server:
            client.close()
            for d, _ in client.datagrams_to_send(now):
                server.receive_datagram(d, address, now)
            server.datagrams_to_send(now)
            while server.next_event() is not None:
                pass
            return client_cpu, server_cpu
    raise RuntimeError("DtlsServer in-memory handshake did not complete")


def bench_server_limits() -> Any:
    """ServerLimits that never refuse the benchmark's load (every client is 127.0.0.1)."""
    from dtls.server import ServerLimits
    return ServerLimits(max_sessions=1 << 20, max_half_open=1 << 16, handshake_rate=1e9,
                        handshake_burst=1 << 30, handshake_deadline=30.0, idle_timeout=30.0,
                        max_queued_datagrams=1 << 16, max_pending_events=1 << 16)


# --------------------------------------------------------------------------------------
# pyOpenSSL and python-mbedtls (optional)


def _pyopenssl() -> Any:
    """OpenSSL.SSL, or None when pyOpenSSL is not installed."""
    try:
        from OpenSSL import SSL
    except ImportError:
        return None
    return SSL


def _mbedtls() -> Any:
    """mbedtls.tls, or None when python-mbedtls is not installed."""
    try:
        from mbedtls import tls
    except ImportError:
        return None
    return tls


def peer_versions() -> dict[str, str | None]:
    """Versions of the comparison stacks (None: not installed)."""
    out: dict[str, str | None] = {"pyopenssl": None, "mbedtls": None}
    SSL = _pyopenssl()
    if SSL is not None:
        import OpenSSL
        out["pyopenssl"] = (f"pyOpenSSL {OpenSSL.__version__}, "
                            f"{SSL.SSLeay_version(SSL.SSLEAY_VERSION).decode()}")
    if _mbedtls() is not None:
        import mbedtls
        from mbedtls import version as mversion
        out["mbedtls"] = f"python-mbedtls {mbedtls.__version__}, {mversion.version}"
    return out


_DTLS1_2_VERSION = 0xFEFD
_OPENSSL_CIPHER = b"ECDHE-ECDSA-AES128-GCM-SHA256"
_MBEDTLS_CIPHER = "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"
_MTU = 1200  # our default max_datagram_size: every stack builds datagrams of this size


def pyopenssl_server_context(paths: dict[str, str], cookie_secret: bytes) -> Any:
    """DTLS 1.2 server context: ECDHE-ECDSA-AES128-GCM, P-256, HMAC(address) cookies.

    The cookie callbacks read the peer address from the Connection's app data (memory
    BIOs carry no address), so the cookie exchange is stateless as with DTLSv1_listen on a
    datagram BIO.  Tickets off (we measure full handshakes)."""
    SSL = _pyopenssl()
    from OpenSSL._util import lib

    def cookie(conn: Any) -> bytes:
        return hmac.new(cookie_secret, repr(conn.get_app_data()).encode(),
                        hashlib.sha256).digest()[:16]

    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_min_proto_version(_DTLS1_2_VERSION)
    ctx.set_max_proto_version(_DTLS1_2_VERSION)
    ctx.use_certificate_chain_file(paths["chain"])
    ctx.use_privatekey_file(paths["key"])
    ctx.set_cipher_list(_OPENSSL_CIPHER)
    lib.SSL_CTX_set1_curves_list(ctx._context, b"P-256")
    ctx.set_options(SSL.OP_NO_QUERY_MTU | SSL.OP_NO_TICKET)
    ctx.set_cookie_generate_callback(cookie)
    ctx.set_cookie_verify_callback(lambda conn, c: hmac.compare_digest(cookie(conn), c))
    return ctx


def pyopenssl_client_context(paths: dict[str, str]) -> Any:
    """DTLS 1.2 client context verifying the chain against the CA (hostname per connection)."""
    SSL = _pyopenssl()
    from OpenSSL._util import lib
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_min_proto_version(_DTLS1_2_VERSION)
    ctx.set_max_proto_version(_DTLS1_2_VERSION)
    ctx.load_verify_locations(paths["ca"])
    ctx.set_verify(SSL.VERIFY_PEER, lambda conn, cert, errno, depth, ok: bool(ok))
    ctx.set_cipher_list(_OPENSSL_CIPHER)
    lib.SSL_CTX_set1_curves_list(ctx._context, b"P-256")
    ctx.set_options(SSL.OP_NO_QUERY_MTU | SSL.OP_NO_TICKET)
    return ctx


def pyopenssl_client_connection(ctx: Any) -> Any:
    """A client Connection on memory BIOs with SNI and hostname verification."""
    SSL = _pyopenssl()
    from OpenSSL._util import lib
    conn = SSL.Connection(ctx, None)
    conn.set_connect_state()
    conn.set_tlsext_host_name(SERVER_NAME.encode())
    param = lib.SSL_get0_param(conn._ssl)
    if lib.X509_VERIFY_PARAM_set1_host(param, SERVER_NAME.encode(), len(SERVER_NAME)) != 1:
        raise RuntimeError("X509_VERIFY_PARAM_set1_host failed")
    conn.set_ciphertext_mtu(_MTU)
    return conn


def split_datagrams(data: bytes, mtu: int = _MTU) -> list[bytes]:
    """Pack the DTLS records in `data` (a memory BIO's output) into datagrams of at most
    `mtu` bytes, as a datagram BIO would send them."""
    out: list[bytes] = []
    current = b""
    pos = 0
    while pos + 13 <= len(data):
        end = pos + 13 + int.from_bytes(data[pos + 11:pos + 13], "big")
        record = data[pos:end]
        pos = end
        if current and len(current) + len(record) > mtu:
            out.append(current)
            current = b""
        current += record
    if current:
        out.append(current)
    return out


def _bio_drain(conn: Any) -> bytes:
    SSL = _pyopenssl()
    chunks = []
    while True:
        try:
            chunks.append(conn.bio_read(65536))
        except SSL.WantReadError:
            return b"".join(chunks)


def pyopenssl_memory_handshake(cctx: Any, sctx: Any) -> tuple[float, float]:
    """One in-memory pyOpenSSL handshake with a stateless cookie exchange (a fresh server
    Connection per ClientHello until DTLSv1_listen accepts one): (client s, server s)."""
    SSL = _pyopenssl()
    perf = CPU_CLOCK
    t0 = perf()
    client = pyopenssl_client_connection(cctx)
    client_done = _openssl_step(client)
    to_server = _bio_drain(client)
    client_cpu = perf() - t0
    server_cpu = 0.0
    server = None
    server_done = False
    listens = 0
    for _ in range(16):
        t0 = perf()
        if server is None:
            listens += 1
            candidate = SSL.Connection(sctx, None)
            candidate.set_app_data(_CLIENT_ADDR)
            candidate.set_ciphertext_mtu(_MTU)
            candidate.bio_write(to_server)
            try:
                candidate.DTLSv1_listen()
                server = candidate
            except SSL.WantReadError:
                pass
            source = candidate
        else:
            server.bio_write(to_server)
            source = server
        if server is not None:
            server_done = _openssl_step(server)
        to_client = _bio_drain(source)
        server_cpu += perf() - t0
        t0 = perf()
        if to_client:
            client.bio_write(to_client)
        client_done = _openssl_step(client)
        to_server = _bio_drain(client)
        client_cpu += perf() - t0
        if client_done and server_done and not to_server:
            if listens < 2:
                raise RuntimeError("pyOpenSSL server skipped the cookie exchange")
            return client_cpu, server_cpu
    raise RuntimeError("pyOpenSSL in-memory handshake did not complete")


def _openssl_step(conn: Any) -> bool:
    SSL = _pyopenssl()
    try:
        conn.do_handshake()
        return True
    except SSL.WantReadError:
        return False


def mbedtls_configurations(paths: dict[str, str]) -> tuple[Any, Any]:
    """(client, server) python-mbedtls DTLSConfiguration: DTLS 1.2,
    ECDHE-ECDSA-AES128-GCM, P-256 leaf + CA chain, client validating it."""
    tls = _mbedtls()
    from mbedtls import pk
    from mbedtls import x509 as mx509
    version = tls.DTLSVersion.DTLSv1_2
    common = {"ciphers": (_MBEDTLS_CIPHER,), "lowest_supported_version": version,
              "highest_supported_version": version}
    chain = tuple(mx509.CRT.from_file(p) for p in (paths["leaf"], paths["ca"]))
    server = tls.DTLSConfiguration(
        certificate_chain=(chain, pk.ECC.from_file(paths["key"])),
        validate_certificates=False, **common)
    client = tls.DTLSConfiguration(trust_store=tls.TrustStore.from_pem_file(paths["ca"]),
                                   validate_certificates=True, **common)
    return client, server


def _mbedtls_advance(buf: Any, inbox: bytes) -> tuple[bytes, bool]:
    """Feed `inbox`, run the handshake as far as it goes: (output, HelloVerifyRequest sent)."""
    tls = _mbedtls()
    over = tls.HandshakeStep.HANDSHAKE_OVER
    if inbox:
        buf.receive_from_network(inbox)
    out = []
    hvr = False
    while buf._handshake_state is not over:
        try:
            buf.do_handshake()
        except tls.WantReadError:
            break
        except tls.WantWriteError:
            pass
        except tls.HelloVerifyRequest:
            hvr = True
            break
        finally:
            data = buf.peek_outgoing(65536)
            if data:
                buf.consume_outgoing(len(data))
                out.append(data)
    return b"".join(out), hvr


def mbedtls_memory_handshake(cctx: Any, sctx: Any) -> tuple[float, float]:
    """One in-memory python-mbedtls handshake with its HelloVerifyRequest exchange (a new
    server buffer after the HelloVerifyRequest, as its accept() does): (client s, server s)."""
    tls = _mbedtls()
    over = tls.HandshakeStep.HANDSHAKE_OVER
    perf = CPU_CLOCK
    t0 = perf()
    client = cctx.wrap_buffers(SERVER_NAME)
    to_server, _ = _mbedtls_advance(client, b"")
    client_cpu = perf() - t0
    t0 = perf()
    server = sctx.wrap_buffers()
    server.setcookieparam(_CLIENT_ADDR[0].encode())
    server_cpu = perf() - t0
    cookie_exchanges = 0
    for _ in range(16):
        t0 = perf()
        to_client, hvr = _mbedtls_advance(server, to_server)
        cookie_exchanges += hvr
        if hvr:
            server = sctx.wrap_buffers()
            server.setcookieparam(_CLIENT_ADDR[0].encode())
        server_cpu += perf() - t0
        t0 = perf()
        to_server, _ = _mbedtls_advance(client, to_client)
        client_cpu += perf() - t0
        if (client._handshake_state is over and server._handshake_state is over
                and not to_server):
            if not cookie_exchanges:
                raise RuntimeError("mbedtls server skipped the HelloVerifyRequest")
            return client_cpu, server_cpu
    raise RuntimeError("mbedtls in-memory handshake did not complete")


# --------------------------------------------------------------------------------------
# Server child processes


def _child_watchdog(stop: threading.Event) -> None:
    """Set `stop` when stdin closes (the parent is done or gone) or after CHILD_LIFETIME."""
    def wait_stdin() -> None:
        with contextlib.suppress(Exception):
            sys.stdin.buffer.read()
        stop.set()
    threading.Thread(target=wait_stdin, daemon=True).start()
    threading.Timer(CHILD_LIFETIME, stop.set).start()


def _load_pem_key(path: str) -> Any:
    return serialization.load_pem_private_key(Path(path).read_bytes(), None)


def _serve_ours(spec: dict[str, Any], stop: threading.Event) -> None:
    from dtls.server import DtlsUdpServer
    chain = x509.load_pem_x509_certificates(Path(spec["chain"]).read_bytes())
    if not spec.get("send_chain", True):
        chain = chain[:1]
    kw: dict[str, Any] = {}
    if spec.get("cipher_suites"):
        kw["cipher_suites"] = tuple(CipherSuite[s] for s in spec["cipher_suites"])
    else:
        kw["cipher_suites"] = tuple(dict.fromkeys(
            (SUITE_ECDSA, SUITE_PSK, SUITE_ECDHE_PSK) + DtlsConfiguration().cipher_suites))
    if spec.get("max_datagram_size"):
        kw["max_datagram_size"] = int(spec["max_datagram_size"])
    config = DtlsConfiguration(
        is_client=False, certificate_chain=chain, private_key=_load_pem_key(spec["key"]),
        psk_lookup={PSK_IDENTITY: PSK_KEY}.get, cookie_exchange=spec.get("cookie", True),
        **kw)
    server = DtlsUdpServer((HOST, int(spec.get("port", 0))), config,
                           limits=bench_server_limits())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              daemon=True)
    thread.start()
    print(f"READY {server.server_address[1]}", flush=True)
    stop.wait()
    server.shutdown()
    thread.join(5)
    server.close()
    print("STATS " + json.dumps({k: v for k, v in server.core.stats.items()
                                 if isinstance(v, int)}), flush=True)


def _serve_pyopenssl(spec: dict[str, Any], stop: threading.Event) -> None:
    """A one-socket pyOpenSSL DTLS server: memory BIOs per peer address; unknown addresses
    get a fresh Connection whose DTLSv1_listen answers HelloVerifyRequest statelessly."""
    SSL = _pyopenssl()
    ctx = pyopenssl_server_context(spec, os.urandom(32))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, int(spec.get("port", 0))))
    sock.settimeout(0.2)
    peers: dict[Any, tuple[Any, float]] = {}
    counts = {"hello_verify_requests": 0, "handshakes_completed": 0, "errors": 0}
    print(f"READY {sock.getsockname()[1]}", flush=True)
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(65536)
        except TimeoutError:
            continue
        entry = peers.get(addr)
        if entry is None:
            conn = SSL.Connection(ctx, None)
            conn.set_app_data(addr)
            conn.set_ciphertext_mtu(_MTU)
            conn.bio_write(data)
            try:
                conn.DTLSv1_listen()
                peers[addr] = (conn, time.monotonic())
                with contextlib.suppress(SSL.WantReadError):
                    conn.do_handshake()
            except SSL.WantReadError:
                counts["hello_verify_requests"] += 1
            except SSL.Error:
                counts["errors"] += 1
                continue
        else:
            conn = entry[0]
            conn.bio_write(data)
            try:
                conn.do_handshake()
                if entry[1] >= 0:
                    counts["handshakes_completed"] += 1
                    peers[addr] = (conn, -1.0)  # established (negative: not counted again)
                conn.recv(65536)  # close_notify ends it (ZeroReturnError)
            except SSL.WantReadError:
                pass
            except SSL.ZeroReturnError:
                peers.pop(addr, None)
            except SSL.Error:
                counts["errors"] += 1
                peers.pop(addr, None)
        for datagram in split_datagrams(_bio_drain(conn)):
            with contextlib.suppress(OSError):
                sock.sendto(datagram, addr)
        if len(peers) > 4096:  # clients that vanished without close_notify
            for a in list(peers)[:1024]:
                del peers[a]
    sock.close()
    print("STATS " + json.dumps(counts), flush=True)


def _serve_mbedtls(spec: dict[str, Any], stop: threading.Event) -> None:
    """python-mbedtls' own DTLS server loop (accept, HelloVerifyRequest, accept again), as
    its example programs and tests/peers.py do: one handshake at a time."""
    tls = _mbedtls()
    _, conf = mbedtls_configurations(spec)
    listener = tls.ServerContext(conf).wrap_socket(socket.socket(socket.AF_INET,
                                                                 socket.SOCK_DGRAM))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, int(spec.get("port", 0))))
    print(f"READY {listener.getsockname()[1]}", flush=True)
    failed = 0
    while not stop.is_set():
        listener.settimeout(0.2)
        try:
            conn, client = listener.accept()
        except (TimeoutError, OSError):
            continue
        try:
            conn.settimeout(HANDSHAKE_TIMEOUT)
            conn.setcookieparam(client[0].encode("ascii"))
            try:
                conn.do_handshake()
            except tls.HelloVerifyRequest:
                listener.settimeout(HANDSHAKE_TIMEOUT)
                first, (conn, client) = conn, conn.accept()
                first.close()
                conn.settimeout(HANDSHAKE_TIMEOUT)
                conn.setcookieparam(client[0].encode("ascii"))
                conn.do_handshake()
        except Exception:  # noqa: BLE001  (a failed handshake: serve the next one)
            failed += 1
        finally:
            with contextlib.suppress(Exception):
                conn.close()
    listener.close()
    print("STATS " + json.dumps({"handshakes_failed": failed}), flush=True)


def _child_main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    stop = threading.Event()
    _child_watchdog(stop)
    {"ours": _serve_ours, "pyopenssl": _serve_pyopenssl,
     "mbedtls": _serve_mbedtls}[spec["kind"]](spec, stop)
    os._exit(0)  # the watchdog timer thread must not keep us alive


@dataclass
class ServerChild:
    """A server child process; `close()` ends it (stdin EOF, then terminate/kill)."""

    kind: str
    process: subprocess.Popen[str]
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    def cpu_seconds(self) -> float | None:
        """CPU seconds the child has run so far (Linux /proc), or None.

        The sum over its threads of /proc/PID/task/TID/schedstat's run time (nanoseconds),
        else user + system from /proc/PID/stat (10 ms ticks)."""
        try:
            total = 0
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[0])
            return total / 1e9
        except (OSError, ValueError, IndexError):
            pass
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def close(self) -> str:
        """Stop the child; return what it printed after READY."""
        out = ""
        if self.process.stdin is not None:
            with contextlib.suppress(Exception):
                self.process.stdin.close()
            self.process.stdin = None  # communicate() must not touch it again
        try:
            out, _ = self.process.communicate(timeout=8)
        except subprocess.TimeoutExpired:
            self.process.kill()
            with contextlib.suppress(Exception):
                out, _ = self.process.communicate(timeout=5)
        return out or ""


def start_server(kind: str, spec: dict[str, Any], directory: Path) -> ServerChild:
    """Start `python bench/handshakes.py --serve SPEC` (kind: ours | pyopenssl | mbedtls)
    and wait for its READY line (at most 20 s)."""
    spec_path = directory / f"server-{kind}-{len(list(directory.iterdir()))}.json"
    spec_path.write_text(json.dumps({**spec, "kind": kind}))
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", str(spec_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        cwd=str(ROOT))
    stdout = proc.stdout
    assert stdout is not None
    ready: list[str] = []
    reader = threading.Thread(target=lambda: ready.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(20)
    line = ready[0] if ready else ""
    if not line.startswith("READY "):
        proc.kill()
        proc.wait(5)
        raise RuntimeError(f"{kind} server child did not start (got {line!r})")
    return ServerChild(kind, proc, int(line.split()[1]))


# --------------------------------------------------------------------------------------
# Socket clients (this process): one timed handshake each


def ours_socket_handshake(address: tuple[str, int], config: DtlsConfiguration) -> tuple[
        float, Any, HandshakeCompleted]:
    """dtls.connect + do_handshake: (seconds, session, HandshakeCompleted)."""
    t0 = time.perf_counter()
    sock = dtls.connect(address, config, timeout=HANDSHAKE_TIMEOUT)
    try:
        sock.do_handshake()
        elapsed = time.perf_counter() - t0
        handshake = sock.handshake
        assert handshake is not None
        return elapsed, sock.connection.session, handshake
    finally:
        sock.close()


def pyopenssl_socket_handshake(address: tuple[str, int], ctx: Any) -> float:
    """A pyOpenSSL client (memory BIOs over a connected UDP socket, DTLS timers served)."""
    SSL = _pyopenssl()
    t0 = time.perf_counter()
    deadline = t0 + HANDSHAKE_TIMEOUT
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect(address)
        conn = pyopenssl_client_connection(ctx)
        while True:
            done = _openssl_step(conn)
            for datagram in split_datagrams(_bio_drain(conn)):
                sock.send(datagram)
            if done:
                elapsed = time.perf_counter() - t0
                break
            now = time.perf_counter()
            if now >= deadline:
                raise TimeoutError("pyOpenSSL handshake timed out")
            timer = conn.DTLSv1_get_timeout()
            sock.settimeout(max(0.001, min(deadline - now, timer if timer else 1.0)))
            try:
                conn.bio_write(sock.recv(65536))
            except TimeoutError:
                conn.DTLSv1_handle_timeout()
        with contextlib.suppress(SSL.Error):
            conn.shutdown()
        for datagram in split_datagrams(_bio_drain(conn)):
            with contextlib.suppress(OSError):
                sock.send(datagram)
        return elapsed
    finally:
        sock.close()


def mbedtls_socket_handshake(address: tuple[str, int], ctx: Any) -> float:
    """A python-mbedtls client on its own DTLS socket wrapper."""
    t0 = time.perf_counter()
    sock = ctx.wrap_socket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
                           server_hostname=SERVER_NAME)
    try:
        sock.settimeout(HANDSHAKE_TIMEOUT)
        sock.connect(address)
        sock.do_handshake()
        return time.perf_counter() - t0
    finally:
        with contextlib.suppress(Exception):
            sock.close()


# --------------------------------------------------------------------------------------
# Load: many concurrent sans-IO clients against one server


def load_test(address: tuple[str, int], config: DtlsConfiguration, *, concurrency: int,
              duration: float, server: ServerChild) -> dict[str, Any]:
    """K concurrent handshakes for `duration` s from this process against the server
    child; each finished client sends close_notify and is replaced by a new one."""
    sel = selectors.DefaultSelector()
    clients: dict[int, tuple[socket.socket, Connection, float]] = {}
    latencies: list[float] = []
    failures = 0

    def start() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(address)
        conn = Connection(config, peer_address=address)
        now = time.monotonic()
        conn.connect(now)
        clients[sock.fileno()] = (sock, conn, now)
        sel.register(sock, selectors.EVENT_READ)
        flush(sock, conn)

    def flush(sock: socket.socket, conn: Connection) -> None:
        for datagram, _ in conn.datagrams_to_send(time.monotonic()):
            with contextlib.suppress(OSError):
                sock.send(datagram)

    def finish(fd: int, ok: bool) -> None:
        nonlocal failures
        sock, conn, started = clients.pop(fd)
        if ok:
            latencies.append(time.monotonic() - started)
            conn.close()
            flush(sock, conn)
        else:
            failures += 1
        sel.unregister(sock)
        sock.close()

    def settle(fd: int) -> None:
        sock, conn, started = clients[fd]
        flush(sock, conn)
        while (ev := conn.next_event()) is not None:
            if isinstance(ev, HandshakeCompleted):
                finish(fd, True)
                return
            if isinstance(ev, ConnectionTerminated):
                finish(fd, False)
                return
        if time.monotonic() - started > HANDSHAKE_TIMEOUT:
            finish(fd, False)

    try:
        for _ in range(concurrency):
            start()
        cpu0 = server.cpu_seconds()
        self0 = _self_cpu()
        t0 = time.monotonic()
        end = t0 + duration
        next_scan = t0
        while True:
            now = time.monotonic()
            if now >= end:
                break
            for key, _ in sel.select(timeout=min(0.005, end - now)):
                if key.fd not in clients:
                    continue
                sock, conn, _ = clients[key.fd]
                for _ in range(16):
                    try:
                        data = sock.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    conn.receive_datagram(data, address, time.monotonic())
                settle(key.fd)
            now = time.monotonic()
            if now >= next_scan:  # retransmission timers and per-handshake timeouts
                next_scan = now + 0.005
                for fd in list(clients):
                    _, conn, _ = clients[fd]
                    timer = conn.get_timer()
                    if timer is not None and timer <= now:
                        conn.handle_timer(now)
                    settle(fd)
            while len(clients) < concurrency:
                start()
        elapsed = time.monotonic() - t0
        cpu1 = server.cpu_seconds()
        client_cpu = _self_cpu() - self0
    finally:
        for fd in list(clients):
            sock = clients.pop(fd)[0]
            with contextlib.suppress(Exception):
                sel.unregister(sock)
            sock.close()
        sel.close()
    server_cpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
    n = len(latencies)
    return {
        "concurrency": concurrency, "seconds": round(elapsed, 3), "completed": n,
        "failed": failures, "handshakes_per_s": round(n / elapsed, 1),
        "median_latency_ms": round(statistics.median(latencies) * 1e3, 2) if n else None,
        "server_cpu_s": round(server_cpu, 3) if server_cpu is not None else None,
        "server_cpu_share": round(server_cpu / elapsed, 3) if server_cpu else None,
        "client_cpu_share": round(client_cpu / elapsed, 3),
        "server_cpu_ms_per_handshake": round(server_cpu / n * 1e3, 3)
        if server_cpu and n else None,
        "per_server_core_handshakes_per_s": round(n / server_cpu, 1)
        if server_cpu and n else None,
    }


# --------------------------------------------------------------------------------------
# The run


def _stats_ms(samples: Sequence[float]) -> dict[str, Any]:
    """median, p90, min (ms) and n of a list of seconds."""
    if not samples:
        return {"n": 0, "median_ms": None, "p90_ms": None, "min_ms": None}
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"n": len(ordered), "median_ms": round(statistics.median(ordered) * 1e3, 3),
            "p90_ms": round(p90 * 1e3, 3), "min_ms": round(ordered[0] * 1e3, 3)}


def _self_cpu() -> float:
    """This process's user + system CPU seconds (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(fn: Callable[[], float], errors: list[str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        try:
            out.append(fn())
        except Exception as exc:  # noqa: BLE001  (counted, reported)
            if len(errors) < 5:
                errors.append(f"{type(exc).__name__}: {exc}")
    return out


def _profile_ours(pki: Pki, n: int) -> dict[str, Any]:
    """cProfile of `n` warm in-memory ecdhe_ecdsa handshakes (both sides): the top rows by
    own time, and how much of the profiled time is `cryptography`'s native code."""
    cconf = client_configuration(pki, "ecdhe_ecdsa")
    sconf = server_configuration(pki)
    for _ in range(5):
        ours_memory_handshake(cconf, server_config=sconf)
    prof = cProfile.Profile()  # its default clock: a CPU-time one costs a syscall per event
    gc.collect()
    gc.disable()  # a collection would be charged to whichever function triggered it
    try:
        prof.enable()
        for _ in range(n):
            ours_memory_handshake(cconf, server_config=sconf)
        prof.disable()
    finally:
        gc.enable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    total = native = 0.0
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _) in table.items():
        if filename == "~" and "thread_time" in func:
            continue  # the harness's own CPU clock, not the handshake
        total += tottime
        if filename == "~" and ("cryptography" in func or "ec.generate" in func
                                or "_rust" in func or "hashlib" in func or "openssl" in func):
            native += tottime
        name = func if filename == "~" else f"{Path(filename).name}:{line}({func})"
        rows.append({"function": name, "calls_per_hs": round(ncalls / n, 1),
                     "own_us_per_hs": round(tottime / n * 1e6, 1),
                     "cum_us_per_hs": round(cumtime / n * 1e6, 1)})
    rows.sort(key=lambda r: -r["own_us_per_hs"])
    return {"handshakes": n, "profiled_us_per_hs": round(total / n * 1e6, 1),
            "native_crypto_us_per_hs": round(native / n * 1e6, 1), "top": rows[:15]}


def run(quick: bool = False) -> dict[str, Any]:
    """Run every measurement; return a JSON-able dict (see the module docstring)."""
    n_latency = 20 if quick else 200      # handshakes per scenario per stack
    rounds = 2 if quick else 5            # alternating rounds (n_latency split over them)
    n_memory = 30 if quick else 300       # in-memory handshakes per stack / scenario
    load_seconds = 3.0 if quick else 10.0
    concurrency = (8, 32) if quick else (8, 32, 128)
    started = time.time()
    pki = make_pki("ecdsa")
    versions = peer_versions()
    result: dict[str, Any] = {
        "quick": quick, "record_backend": dtls.record_backend,
        "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "loadavg": os.getloadavg()[0] if hasattr(os, "getloadavg")
        else None, "peers": versions, "leaf_der_bytes": len(pki.leaf_der),
        "ca_der_bytes": len(pki.ca_der), "errors": {},
    }
    tmp = Path(tempfile.mkdtemp(prefix="dtls-bench-hs-"))
    children: list[ServerChild] = []
    try:
        paths = pki.write(tmp)
        spec = dict(paths)

        # -- (2) CPU per handshake, in memory ------------------------------------------
        memory: dict[str, dict[str, Any]] = {}
        sconf = server_configuration(pki)
        for scenario in SCENARIOS:
            cconf = client_configuration(pki, scenario)
            session = None
            if scenario.startswith("resume"):
                session = ours_memory_handshake(cconf, server_config=sconf).session
            samples_c, samples_s, resumed = [], [], 0
            ours_memory_handshake(cconf, server_config=sconf, session=session)  # warm-up
            for _ in range(n_memory):
                hs = ours_memory_handshake(cconf, server_config=sconf, session=session)
                samples_c.append(hs.client_cpu)
                samples_s.append(hs.server_cpu)
                resumed += hs.completed.resumed
                if hs.session is not None and scenario == "resume_ticket":
                    session = hs.session
            memory[f"ours/{scenario}"] = {
                "client": _stats_ms(samples_c), "server": _stats_ms(samples_s),
                "resumed": resumed, "datagrams": len(hs.datagrams)}
        from dtls.server import DtlsServer
        front = DtlsServer(sconf, bench_server_limits())
        cconf = client_configuration(pki, "ecdhe_ecdsa")
        pairs = [dtlsserver_memory_handshake(front, cconf, ("192.0.2.1", 1024 + i))
                 for i in range(n_memory + 1)][1:]
        memory["ours-DtlsServer/ecdhe_ecdsa"] = {"client": _stats_ms([p[0] for p in pairs]),
                                                 "server": _stats_ms([p[1] for p in pairs])}
        stack_errors: dict[str, str] = {}

        def peer_memory(name: str, setup: Callable[[], tuple[Any, Any, Callable[
                [Any, Any], tuple[float, float]]]], count: int) -> None:
            """In-memory handshakes of a comparison stack; a failure is recorded, not fatal."""
            try:
                cctx, sctx, handshake = setup()
                handshake(cctx, sctx)  # warm-up
                pairs = [handshake(cctx, sctx) for _ in range(count)]
            except Exception as exc:  # noqa: BLE001  (reported in the markdown)
                stack_errors[f"{name} in memory"] = f"{type(exc).__name__}: {exc}"
                return
            memory[f"{name}/ecdhe_ecdsa"] = {"client": _stats_ms([p[0] for p in pairs]),
                                             "server": _stats_ms([p[1] for p in pairs])}

        if versions["pyopenssl"]:
            peer_memory("pyopenssl", lambda: (
                pyopenssl_client_context(paths),
                pyopenssl_server_context(paths, os.urandom(32)),
                pyopenssl_memory_handshake), n_memory)
        if versions["mbedtls"]:
            def mbedtls_setup() -> tuple[Any, Any, Callable[[Any, Any], tuple[float, float]]]:
                mc, ms = mbedtls_configurations(paths)
                tls = _mbedtls()
                return tls.ClientContext(mc), tls.ServerContext(ms), mbedtls_memory_handshake
            peer_memory("mbedtls", mbedtls_setup, max(10, n_memory // 3))
        result["memory"] = memory

        # -- (1) latency over loopback UDP, two processes --------------------------------
        ours_server = start_server("ours", spec, tmp)
        children.append(ours_server)
        peers: dict[str, tuple[ServerChild, Callable[[], float]]] = {}
        for name in ("pyopenssl", "mbedtls"):
            if not versions[name]:
                continue
            try:
                child = start_server(name, spec, tmp)
            except RuntimeError as exc:
                stack_errors[f"{name} server"] = str(exc)
                continue
            children.append(child)
            if name == "pyopenssl":
                fn: Callable[[], float] = functools.partial(
                    pyopenssl_socket_handshake, child.address, pyopenssl_client_context(paths))
            else:
                fn = functools.partial(mbedtls_socket_handshake, child.address,
                                       _mbedtls().ClientContext(mbedtls_configurations(paths)[0]))
            peers[name] = (child, fn)

        sessions: dict[str, Any] = {}
        resumed_counts: dict[str, int] = {}

        def ours_once(scenario: str) -> float:
            cconf = client_configuration(pki, scenario)
            if scenario.startswith("resume"):
                if scenario not in sessions:
                    sessions[scenario] = ours_socket_handshake(ours_server.address, cconf)[1]
                cconf = replace(cconf, session=sessions[scenario])
            elapsed, session, handshake = ours_socket_handshake(ours_server.address, cconf)
            if handshake.resumed:
                resumed_counts[scenario] = resumed_counts.get(scenario, 0) + 1
            if scenario.startswith("resume") and session is not None:
                sessions[scenario] = session
            return elapsed

        latency: dict[str, list[float]] = {}
        errors: dict[str, list[str]] = {}
        per_round = max(1, n_latency // rounds)
        for scenario in SCENARIOS:  # warm-up (imports, caches) for every contender
            _timed(functools.partial(ours_once, scenario), errors.setdefault("warmup", []), 2)
        for (_child, fn) in peers.values():
            _timed(fn, errors.setdefault("warmup", []), 2)
        resumed_counts.clear()
        cpu: dict[str, list[float]] = {}  # key -> [client s, server s] over the samples

        def sample(key: str, fn: Callable[[], float], child: ServerChild) -> None:
            """`per_round` timed handshakes, with both processes' CPU time around them."""
            c0, s0 = _self_cpu(), child.cpu_seconds()
            latency.setdefault(key, []).extend(_timed(fn, errors.setdefault(key, []),
                                                      per_round))
            c1, s1 = _self_cpu(), child.cpu_seconds()
            acc = cpu.setdefault(key, [0.0, 0.0])
            acc[0] += c1 - c0
            acc[1] += (s1 - s0) if s0 is not None and s1 is not None else float("nan")

        for _ in range(rounds):
            for scenario in SCENARIOS:
                sample(f"ours/{scenario}", functools.partial(ours_once, scenario),
                       ours_server)
            for name, (child, fn) in peers.items():
                sample(f"{name}/ecdhe_ecdsa", fn, child)
        result["latency"] = {}
        for key, samples in latency.items():
            stats = _stats_ms(samples)
            n = max(1, len(samples))
            client_s, server_s = cpu.get(key, [float("nan")] * 2)
            stats["client_cpu_ms"] = round(client_s / n * 1e3, 3)
            stats["server_cpu_ms"] = (None if math.isnan(server_s)  # no /proc
                                      else round(server_s / n * 1e3, 3))
            result["latency"][key] = stats
        result["resumed"] = resumed_counts
        result["errors"] = {k: v for k, v in errors.items() if v}
        result["errors"].update({k: [v] for k, v in stack_errors.items()})

        # -- (3) handshakes/s with many concurrent clients -------------------------------
        loads = []
        cconf = client_configuration(pki, "ecdhe_ecdsa")
        for k in concurrency:
            loads.append(load_test(ours_server.address, cconf, concurrency=k,
                                   duration=load_seconds, server=ours_server))
        result["load"] = loads
        result["load_scenario"] = "ecdhe_ecdsa"

        # -- profile (where our handshake's time goes) -----------------------------------
        result["profile"] = _profile_ours(pki, 50 if quick else 200)
    finally:
        for child in children:
            try:
                out = child.close()
            except Exception as exc:  # noqa: BLE001  (keep cleaning up the others)
                out = ""
                result["errors"].setdefault("cleanup", []).append(repr(exc))
            for line in out.splitlines():
                if line.startswith("STATS "):
                    with contextlib.suppress(ValueError):
                        result[f"server_stats_{child.kind}"] = json.loads(line[6:])
        shutil.rmtree(tmp, ignore_errors=True)
    result["targets"] = _targets(result)
    result["seconds"] = round(time.time() - started, 1)
    return result


def _targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's two targets, evaluated on this run's figures."""
    out: dict[str, Any] = {}
    lat = result.get("latency", {})
    ours = (lat.get("ours/ecdhe_ecdsa") or {}).get("median_ms")
    theirs = (lat.get("pyopenssl/ecdhe_ecdsa") or {}).get("median_ms")
    if ours and theirs:
        out["latency_vs_pyopenssl"] = {
            "ours_ms": ours, "pyopenssl_ms": theirs, "ratio": round(ours / theirs, 2),
            "verdict": "PASS" if ours <= theirs else "SHORT"}
    mem = result.get("memory", {})
    mb_s = ((mem.get("mbedtls/ecdhe_ecdsa") or {}).get("server") or {}).get("median_ms")
    for key, label in (("ours-DtlsServer/ecdhe_ecdsa", "server_rate_vs_mbedtls"),
                       ("ours/ecdhe_ecdsa", "core_rate_vs_mbedtls")):
        ours_s = ((mem.get(key) or {}).get("server") or {}).get("median_ms")
        if ours_s and mb_s:
            ratio = mb_s / ours_s
            out[label] = {
                "ours_per_s": round(1e3 / ours_s, 1), "mbedtls_per_s": round(1e3 / mb_s, 1),
                "ratio": round(ratio, 2), "verdict": "PASS" if ratio >= 5 else "SHORT"}
    return out


# --------------------------------------------------------------------------------------
# Markdown


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(result: dict[str, Any]) -> str:
    """The handshake section of the benchmark report."""
    peers = result.get("peers", {})
    lines = [
        "## Handshakes",
        "",
        f"Setup: DTLS 1.2 over loopback UDP, client (this process) and server (a child "
        f"process) in two processes on a {result.get('cpus')}-CPU {result.get('machine')} "
        f"machine (load average {_fmt(result.get('loadavg'))} at start), Python "
        f"{result.get('python')}, record backend `{result.get('record_backend')}`; "
        f"HelloVerifyRequest cookies on everywhere; ECDSA P-256 leaf "
        f"({result.get('leaf_der_bytes')} B DER) + CA ({result.get('ca_der_bytes')} B) sent, "
        f"client validating the chain and hostname; ECDHE on P-256; datagrams of at most "
        f"{_MTU} bytes; comparison stacks: {peers.get('pyopenssl') or 'pyOpenSSL not installed'}"
        f"; {peers.get('mbedtls') or 'python-mbedtls not installed'}."
        + (" **Quick run** (few samples)." if result.get("quick") else ""),
        "",
    ]
    targets = result.get("targets", {})
    if targets:
        lines += ["| target | ours | theirs | ratio | verdict |", "|---|---|---|---|---|"]
        t = targets.get("latency_vs_pyopenssl")
        if t:
            lines.append(f"| full-handshake latency <= pyOpenSSL (median) | {t['ours_ms']} ms "
                         f"| {t['pyopenssl_ms']} ms | {t['ratio']}x | **{t['verdict']}** |")
        for key, what in (("server_rate_vs_mbedtls", "DtlsServer front end"),
                          ("core_rate_vs_mbedtls", "bare sans-IO Connection")):
            t = targets.get(key)
            if t:
                lines.append(f"| server handshakes/s >= 5x python-mbedtls (1 core, from "
                             f"in-memory server CPU; ours: {what}) | {t['ours_per_s']}/s | "
                             f"{t['mbedtls_per_s']}/s | {t['ratio']}x | **{t['verdict']}** |")
        lines.append("")
    lat = result.get("latency", {})
    mem = result.get("memory", {})
    breakdown = []
    for stack, mem_key in (("ours", "ours/ecdhe_ecdsa"), ("ours", "ours-DtlsServer/ecdhe_ecdsa"),
                           ("pyopenssl", "pyopenssl/ecdhe_ecdsa"),
                           ("mbedtls", "mbedtls/ecdhe_ecdsa")):
        wall = (lat.get(f"{stack}/ecdhe_ecdsa") or {}).get("median_ms")
        m = mem.get(mem_key)
        if wall and m:
            cpu = m["client"]["median_ms"] + m["server"]["median_ms"]
            breakdown.append(f"| {mem_key.split('/')[0]} | {wall:.2f} | {cpu:.2f} | "
                             f"{wall - cpu:.2f} |")
    if breakdown:
        lines += [("Full-handshake latency against handshake CPU (ecdhe_ecdsa): the "
                   "in-memory client + server CPU is the part the stacks' handshake code "
                   "costs; the rest is sockets, process wake-ups (3 round trips) and each "
                   "stack's socket loop (ours: `dtls.connect` and `DtlsUdpServer` with its "
                   "`DtlsServer` front end)."), "",
                  ("| stack | latency median ms | in-memory CPU ms (client + server) | "
                  "rest ms |"), "|---|---|---|---|", *breakdown, ""]
    if lat:
        lines += ["### Latency, loopback UDP, two processes", "",
                  ("Wall time from creating the client socket to the client's handshake "
                  "completing (the client then sends close_notify, untimed); contenders "
                  "alternate in rounds.  CPU columns: each process's user + system time "
                  "over the samples (getrusage; the server child's from /proc schedstat) "
                  "divided by the handshakes, so they include the socket loops and "
                  "the close_notify."), "",
                  ("| stack | handshake | n | median ms | p90 ms | min ms | client CPU ms/hs "
                   "| server CPU ms/hs |"),
                  "|---|---|---|---|---|---|---|---|"]
        resumed = result.get("resumed", {})
        for key, s in lat.items():
            stack, scenario = key.split("/", 1)
            desc = SCENARIOS.get(scenario, scenario)
            if scenario.startswith("resume"):
                desc += f" ({resumed.get(scenario, 0)}/{s['n']} resumed)"
            lines.append(f"| {stack} | {desc} | {s['n']} | {_fmt(s['median_ms'])} | "
                         f"{_fmt(s['p90_ms'])} | {_fmt(s['min_ms'])} | "
                         f"{_fmt(s.get('client_cpu_ms'))} | {_fmt(s.get('server_cpu_ms'))} |")
        lines.append("")
    if mem:
        lines += ["### CPU per handshake, one process, in-memory datagrams", "",
                  ("Every call into each side timed in thread CPU time (median over the "
                  "handshakes); the server's figure includes the stateless cookie exchange.  "
                  "\"server hs/s\" = 1 / server median: one core's ceiling."), "",
                  ("| stack | handshake | client ms | server ms | total ms | server hs/s "
                  "(1 core) | datagrams |"), "|---|---|---|---|---|---|---|"]
        for key, m in mem.items():
            stack, scenario = key.split("/", 1)
            c, s = m["client"]["median_ms"], m["server"]["median_ms"]
            lines.append(f"| {stack} | {scenario} | {_fmt(c, 3)} | {_fmt(s, 3)} | "
                         f"{_fmt(c + s, 3)} | {_fmt(1e3 / s, 0)} | "
                         f"{m.get('datagrams', '-')} |")
        lines.append("")
    loads = result.get("load", [])
    if loads:
        lines += ["### Server handshakes/s, many concurrent clients", "",
                  (f"One `DtlsUdpServer` child process (one UDP socket) against one client "
                  f"process driving K concurrent sans-IO client Connections, each on its own "
                  f"UDP socket, for {loads[0]['seconds']:.0f} s; "
                  f"{SCENARIOS[result.get('load_scenario', 'ecdhe_ecdsa')]}.  CPU share "
                  f"= CPU seconds / wall seconds of each process (1.0 = one core busy); a "
                  f"server share well below 1.0 means the client process or other load on "
                  f"the machine was the bottleneck; \"per server core\" = completed / server "
                  f"CPU seconds."), "",
                  ("| K | completed | failed | handshakes/s | median latency ms | server CPU "
                   "share | client CPU share | server CPU ms/hs | per server core hs/s |"),
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in loads:
            lines.append(f"| {r['concurrency']} | {r['completed']} | {r['failed']} | "
                         f"{_fmt(r['handshakes_per_s'], 1)} | {_fmt(r['median_latency_ms'])} | "
                         f"{_fmt(r['server_cpu_share'])} | {_fmt(r.get('client_cpu_share'))} | "
                         f"{_fmt(r['server_cpu_ms_per_handshake'], 3)} | "
                         f"{_fmt(r['per_server_core_handshakes_per_s'], 0)} |")
        lines.append("")
    prof = result.get("profile") or {}
    if prof:
        lines += ["### Where our full handshake's CPU goes (cProfile, both sides, in memory)",
                  "", (f"{prof['handshakes']} warm ecdhe_ecdsa handshakes under cProfile (GC off): "
                  f"{prof['profiled_us_per_hs']:.0f} us per handshake profiled (wall clock; the "
                  f"profiler's own cost inflates Python-heavy code 2-3x), of which "
                  f"{prof['native_crypto_us_per_hs']:.0f} us in `cryptography`'s native "
                  f"code (ECDHE, ECDSA, X.509 path validation, hashes); the rest is Python.  "
                  f"Top rows by own time:"), "",
                  "| function | calls/hs | own us/hs | cumulative us/hs |", "|---|---|---|---|"]
        for r in prof["top"]:
            lines.append(f"| `{r['function']}` | {r['calls_per_hs']} | {r['own_us_per_hs']} | "
                         f"{r['cum_us_per_hs']} |")
        lines.append("")
    errs = result.get("errors", {})
    if errs:
        lines += ["Errors (first few per contender): " + "; ".join(
            f"{k}: {', '.join(v)}" for k, v in errs.items()), ""]
    lines.append(f"_Run took {result.get('seconds')} s._")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples (< 60 s)")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    parser.add_argument("--serve", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return _child_main(args.serve)
    result = run(args.quick)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
