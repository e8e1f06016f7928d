"""`python -m dtls`: an echo server, a line client and a test-certificate maker.

    python -m dtls selfsigned --cert cert.pem --key key.pem
    python -m dtls server --port 4433 --cert cert.pem --key key.pem
    python -m dtls client 127.0.0.1:4433 --fingerprint AB:CD:...   (lines from stdin)
    python -m dtls bench [--quick] ...   (source checkout: runs bench/run.py)
    python -m dtls proxy --listen 127.0.0.1:5000 --upstream 127.0.0.1:4433 --drop 0.2 ...

In the spirit of `openssl s_server` / `s_client`: both print the negotiated protocol
version, cipher suite and the peer's identity.  The client prints that summary and any
errors on stderr, and only the server's replies on stdout, so it can be piped.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import logging
import os
import selectors
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, TextIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .config import SUPPORTED_CIPHER_SUITES, ClientAuth, DtlsConfiguration
from .errors import ConnectionClosed, DtlsError
from .events import ConnectionTerminated, HandshakeCompleted
from .recordbase import DTLS1_0, DTLS1_2
from .server import DtlsUdpServer, ServerEvent, ServerLimits
from .suites import CipherSuite
from .verify import fingerprint_sha256

__all__ = ["main"]

_VERSIONS = {"1.2": DTLS1_2, "1.0": DTLS1_0}
_VERSION_NAMES = {DTLS1_2: "DTLSv1.2", DTLS1_0: "DTLSv1"}
_HAS_VERSIONS = "versions" in {f.name for f in fields(DtlsConfiguration)}


class CliError(Exception):
    """A usage problem: printed without a traceback, exit status 2."""


# -- helpers ---------------------------------------------------------------------------


def format_fingerprint(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def parse_fingerprint(text: str) -> bytes:
    cleaned = text.replace(":", "").replace(" ", "").strip()
    if cleaned.lower().startswith("sha256="):
        cleaned = cleaned[len("sha256="):]
    try:
        digest = bytes.fromhex(cleaned)
    except ValueError:
        raise CliError(f"--fingerprint {text!r} is not hex") from None
    if len(digest) != 32:
        raise CliError(f"--fingerprint must be a SHA-256 digest (32 bytes), got {len(digest)}")
    return digest


def parse_psk(text: str) -> tuple[bytes, bytes]:
    identity, sep, key_hex = text.rpartition(":")
    if not sep or not identity:
        raise CliError(f"--psk wants IDENTITY:HEX, not {text!r}")
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        raise CliError(f"--psk key {key_hex!r} is not hex") from None
    if not key:
        raise CliError("--psk key is empty")
    return identity.encode(), key


def parse_ciphers(text: str) -> tuple[CipherSuite, ...]:
    by_name = {s.name.upper(): s for s in SUPPORTED_CIPHER_SUITES}
    chosen: list[CipherSuite] = []
    for raw in text.replace(",", ":").split(":"):
        name = raw.strip().upper()
        if not name:
            continue
        suite = by_name.get(name) or by_name.get("TLS_" + name)
        if suite is None:
            raise CliError(f"unknown cipher suite {raw!r}; supported (IANA names): "
                           + ", ".join(s.name for s in SUPPORTED_CIPHER_SUITES))
        chosen.append(suite)
    if not chosen:
        raise CliError("--ciphers is empty")
    return tuple(chosen)


def parse_versions(text: str) -> tuple[int, ...]:
    wanted = [v.strip() for v in text.split(",") if v.strip()]
    if not wanted or any(v not in _VERSIONS for v in wanted):
        raise CliError(f"--version takes 1.2 or 1.0 (or 1.2,1.0), not {text!r}")
    versions = tuple(_VERSIONS[v] for v in wanted)
    if not _HAS_VERSIONS:
        if versions != (DTLS1_2,):
            raise CliError("this build supports DTLS 1.2 only")
        return versions
    return tuple(sorted(set(versions), reverse=False))  # DTLS counts down: 1.2 first


def load_certificates(path: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot load certificates from {path}: {exc}") from None
    return list(certs)


def load_private_key(path: str) -> Any:
    try:
        return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CliError(f"cannot load the private key from {path}: {exc}") from None


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        raise CliError(f"want HOST:PORT, not {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    try:
        return host, int(port)
    except ValueError:
        raise CliError(f"bad port in {text!r}") from None


def make_self_signed(common_name: str = "localhost", days: int = 30) -> tuple[x509.Certificate,
                                                                             Any]:
    """An ECDSA P-256 self-signed certificate for tests (SAN: the name; localhost also
    gets 127.0.0.1 and ::1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    sans: list[x509.GeneralName] = []
    try:
        sans.append(x509.IPAddress(ipaddress.ip_address(common_name)))
    except ValueError:
        sans.append(x509.DNSName(common_name))
    if common_name == "localhost":
        sans += [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def describe_handshake(event: HandshakeCompleted) -> list[str]:
    lines = [f"Protocol: {_VERSION_NAMES.get(event.version, hex(event.version))}",
             f"Cipher: {event.cipher_suite.name}"]
    if event.named_group is not None:
        lines.append(f"Group: {event.named_group.name}")
    lines.append(f"Extended master secret: {'yes' if event.extended_master_secret else 'no'}")
    if event.alpn_protocol:
        lines.append(f"ALPN: {event.alpn_protocol.decode(errors='replace')}")
    resumed = getattr(event, "resumed", None)
    if resumed is not None:
        lines.append(f"Resumed: {'yes' if resumed else 'no'}")
    if event.psk_identity is not None:
        lines.append(f"PSK identity: {event.psk_identity.decode(errors='replace')}")
    if event.peer_certificate is not None:
        lines.append(f"Peer certificate: {event.peer_certificate.subject.rfc4514_string()}")
        lines.append("Peer SHA-256 fingerprint: "
                     + format_fingerprint(fingerprint_sha256(event.peer_certificate)))
    elif event.psk_identity is None:
        lines.append("No peer certificate")
    return lines


def _common_config(args: argparse.Namespace, *, is_client: bool) -> dict[str, Any]:
    kw: dict[str, Any] = {"is_client": is_client}
    if args.ciphers:
        kw["cipher_suites"] = parse_ciphers(args.ciphers)
    if args.mtu:
        # The path MTU less the IP and UDP headers (IPv6's, to be safe for both).
        kw["max_datagram_size"] = args.mtu - 48
        if kw["max_datagram_size"] < 256:
            raise CliError("--mtu must be at least 304")
    if args.version:
        versions = parse_versions(args.version)
        if _HAS_VERSIONS:
            kw["versions"] = versions
    if args.mac_then_encrypt:
        kw["mac_then_encrypt"] = True
    if args.keylog:
        path = Path(args.keylog)

        def keylog(line: str) -> None:
            with path.open("a") as f:
                f.write(line + "\n")
        kw["keylog"] = keylog
    return kw


def _build(kw: dict[str, Any]) -> DtlsConfiguration:
    config = DtlsConfiguration(**kw)
    try:
        config.validate()
        config.build_verifier()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return config


# -- selfsigned ------------------------------------------------------------------------


def cmd_selfsigned(args: argparse.Namespace, out: TextIO) -> int:
    cert, key = make_self_signed(args.cn, args.days)
    Path(args.cert).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(args.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    print(f"wrote {args.cert} (ECDSA P-256, CN={args.cn}, {args.days} days) and {args.key}",
          file=out)
    print(f"SHA-256 fingerprint: {format_fingerprint(fingerprint_sha256(cert))}", file=out)
    return 0


# -- server ----------------------------------------------------------------------------


def server_config(args: argparse.Namespace, out: TextIO) -> DtlsConfiguration:
    kw = _common_config(args, is_client=False)
    psks = dict(parse_psk(p) for p in args.psk or ())
    if psks:
        kw["psk_lookup"] = psks.get
    if bool(args.cert) != bool(args.key):
        raise CliError("--cert and --key go together")
    if args.cert:
        kw["certificate_chain"] = load_certificates(args.cert)
        kw["private_key"] = load_private_key(args.key)
    elif not psks:
        cert, key = make_self_signed()
        kw["certificate_chain"], kw["private_key"] = [cert], key
        print("no --cert/--key: using a fresh self-signed ECDSA P-256 certificate, "
              f"SHA-256 fingerprint {format_fingerprint(fingerprint_sha256(cert))}", file=out)
    if args.ca:
        kw["ca_certificates"] = tuple(load_certificates(args.ca))
        kw["client_auth"] = ClientAuth.REQUIRE
    if args.no_cookie:
        kw["cookie_exchange"] = False
    return _build(kw)


def cmd_server(args: argparse.Namespace, out: TextIO) -> int:
    config = server_config(args, out)
    limits = ServerLimits(max_sessions=args.max_sessions, idle_timeout=args.idle_timeout)

    def on_event(item: ServerEvent) -> None:
        peer = _format_addr(item.address)
        event = item.event
        if isinstance(event, HandshakeCompleted):
            print(f"[{peer}] handshake complete: " + "; ".join(describe_handshake(event)),
                  file=out, flush=True)
        elif isinstance(event, ConnectionTerminated):
            who = "peer" if event.by_peer else "server"
            print(f"[{peer}] closed by {who}: {event.reason}", file=out, flush=True)
        elif args.verbose:
            data = getattr(event, "data", b"")
            print(f"[{peer}] {len(data)} bytes: {data[:80]!r}", file=out, flush=True)

    try:
        server = DtlsUdpServer((args.host, args.port), config, handler=lambda s, data: data,
                               on_event=on_event, limits=limits)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    with server:
        host, port = server.server_address[:2]
        names = ",".join(_VERSION_NAMES.get(v, hex(v))
                         for v in getattr(config, "versions", (DTLS1_2,)))
        print(f"Listening on {_format_addr((host, port))} ({names}, cookie exchange "
              f"{'on' if config.cookie_exchange else 'OFF'}, echo)", file=out, flush=True)
        previous = signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        if args.verbose:
            print(f"server statistics: {server.core.stats}", file=out, flush=True)
    return 0


def _format_addr(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = addr[0]
        return f"[{host}]:{addr[1]}" if ":" in str(host) else f"{host}:{addr[1]}"
    return str(addr)


# -- client ----------------------------------------------------------------------------


def client_config(args: argparse.Namespace, host: str) -> DtlsConfiguration:
    kw = _common_config(args, is_client=True)
    kw["handshake_timeout"] = args.timeout
    if args.psk:
        identity, key = parse_psk(args.psk)
        kw["psk"], kw["psk_identity"] = key, identity
    if bool(args.cert) != bool(args.key):
        raise CliError("--cert and --key go together")
    if args.cert:
        kw["certificate_chain"] = load_certificates(args.cert)
        kw["private_key"] = load_private_key(args.key)
    if args.fingerprint:
        kw["pinned_sha256"] = tuple(parse_fingerprint(f) for f in args.fingerprint)
    if args.ca:
        kw["ca_certificates"] = tuple(load_certificates(args.ca))
        kw["server_name"] = args.servername or host
    elif args.servername:
        kw["server_name"] = args.servername
    if args.insecure:
        kw["verify_peer"] = False
    if not (args.psk or args.fingerprint or args.ca or args.insecure):
        raise CliError("say how to authenticate the server: --ca FILE, --fingerprint "
                       "SHA256, --psk IDENTITY:HEX, or --insecure (no authentication)")
    return _build(kw)


def cmd_client(args: argparse.Namespace, out: TextIO) -> int:
    from .sock import connect  # imported here: the server and selfsigned do not need it

    host, port = parse_hostport(args.address)
    config = client_config(args, host)
    err = sys.stderr
    try:
        sock = connect((host, port), config, timeout=args.timeout)
    except OSError as exc:
        raise CliError(f"cannot reach {args.address}: {exc}") from None
    try:
        try:
            sock.do_handshake()
        except DtlsError as exc:
            print(f"handshake with {args.address} failed: {exc}", file=err, flush=True)
            return 1
        assert sock.handshake is not None
        print(f"Connected to {_format_addr((host, port))}", file=err)
        for line in describe_handshake(sock.handshake):
            print(line, file=err)
        err.flush()
        return _client_loop(sock, args, out)
    finally:
        sock.close()


def _client_loop(sock: Any, args: argparse.Namespace, out: TextIO) -> int:
    stdin_fd = sys.stdin.fileno()
    selector = selectors.DefaultSelector()
    selector.register(sock.fileno(), selectors.EVENT_READ, "dtls")
    selector.register(stdin_fd, selectors.EVENT_READ, "stdin")
    pending = b""
    eof_at: float | None = None
    last = time.monotonic()
    sock.settimeout(0)
    try:
        while True:
            if eof_at is not None and time.monotonic() - last >= args.linger:
                return 0
            wait = args.linger - (time.monotonic() - last) if eof_at is not None else None
            for key, _ in selector.select(max(0.0, wait) if wait is not None else None):
                if key.data == "stdin":
                    chunk = os.read(stdin_fd, 65536)
                    if not chunk:
                        selector.unregister(stdin_fd)
                        eof_at = last = time.monotonic()
                        if pending:
                            sock.send(pending)
                            pending = b""
                        continue
                    pending += chunk
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        sock.send(line + b"\n")  # as s_client sends it
                    last = time.monotonic()
                    continue
                while True:
                    try:
                        data = sock.recv(65536)
                    except (BlockingIOError, TimeoutError):
                        break
                    except ConnectionClosed as exc:
                        print(f"connection closed: {exc}", file=sys.stderr, flush=True)
                        return 0
                    except DtlsError as exc:
                        print(f"connection failed: {exc}", file=sys.stderr, flush=True)
                        return 1
                    out.write(data.decode(errors="replace"))
                    if not data.endswith(b"\n"):
                        out.write("\n")
                    out.flush()
                    last = time.monotonic()
    finally:
        selector.close()


# -- bench -----------------------------------------------------------------------------


def cmd_bench(argv: Sequence[str]) -> int:
    """Run bench/run.py of the source checkout this package lives in, passing `argv`."""
    import shlex
    import subprocess

    run_py = Path(__file__).resolve().parent.parent / "bench" / "run.py"
    if not run_py.is_file():
        print(f"dtls bench: {run_py} not found: the benchmarks ship with the source "
              "checkout, not the installed package (run it from a git clone, e.g. "
              "pip install -e .)", file=sys.stderr)
        return 2
    env = dict(os.environ, DTLS_BENCH_COMMAND=shlex.join(["python", "-m", "dtls", "bench",
                                                           *argv]))
    try:
        return subprocess.call([sys.executable, str(run_py), *argv], env=env)
    except KeyboardInterrupt:
        return 130


def cmd_proxy(args: argparse.Namespace, out: TextIO) -> int:
    """A seeded UDP fault-injection relay (dtls.faults.UdpFaultProxy) until Ctrl-C/--seconds;
    prints each direction's counters at the end."""
    from .faults import Faults, UdpFaultProxy

    try:
        faults = Faults(drop=args.drop, duplicate=args.duplicate, reorder=args.reorder,
                        reorder_delay=args.reorder_ms / 1000, delay=args.delay_ms / 1000,
                        mtu=args.mtu, corrupt=args.corrupt, pack=args.pack)
        faults.validate()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    upstream = parse_hostport(args.upstream)
    listen = parse_hostport(args.listen)
    up = faults if args.direction in ("both", "up") else Faults()
    down = faults if args.direction in ("both", "down") else Faults()
    with UdpFaultProxy(upstream, up=up, down=down, seed=args.seed, listen=listen) as proxy:
        host, port = proxy.address[:2]
        print(f"fault proxy on {host}:{port} -> {upstream[0]}:{upstream[1]} "
              f"({args.direction}: {faults}), seed {args.seed}", file=out, flush=True)
        try:
            if args.seconds is None:
                while True:
                    time.sleep(3600)
            time.sleep(args.seconds)
        except KeyboardInterrupt:
            pass
        for direction, counters in proxy.stats().items():
            shown = ", ".join(f"{k}={v}" for k, v in sorted(counters.items()))
            print(f"{direction}: {shown or 'nothing'}", file=out, flush=True)
    return 0


# -- argument parsing ------------------------------------------------------------------


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cert", help="PEM certificate chain, leaf first")
    p.add_argument("--key", help="PEM private key (EC, Ed25519 or RSA)")
    p.add_argument("--ca", help="PEM CA certificates to verify the peer against")
    p.add_argument("--ciphers", help="cipher suites, IANA names separated by ':' or ','")
    p.add_argument("--mtu", type=int, help="path MTU in bytes (datagrams are sized to fit)")
    p.add_argument("--version", default=None,
                   help="DTLS version(s): 1.2 (default)"
                   + (", 1.0, or 1.2,1.0" if _HAS_VERSIONS else "; this build has no 1.0"))
    p.add_argument("--mac-then-encrypt", action="store_true",
                   help="allow CBC suites without encrypt-then-MAC (RFC 7366), e.g. for "
                   "old DTLS 1.0 peers")
    p.add_argument("--keylog", help="append NSS key log lines here (for Wireshark)")
    p.add_argument("-v", "--verbose", action="store_true", help="log protocol details")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dtls", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("server", help="a DTLS echo server")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=4433, help="UDP port (0: any free one)")
    _add_common(s)
    s.add_argument("--psk", action="append", metavar="IDENTITY:HEX",
                   help="accept this PSK identity and key (repeatable)")
    s.add_argument("--no-cookie", action="store_true",
                   help="skip the HelloVerifyRequest exchange (exposes the server to "
                   "spoofed-address floods; for tests only)")
    s.add_argument("--max-sessions", type=int, default=ServerLimits.max_sessions)
    s.add_argument("--idle-timeout", type=float, default=ServerLimits.idle_timeout)

    c = sub.add_parser("client", help="send stdin lines to a DTLS server, print replies")
    c.add_argument("address", metavar="HOST:PORT")
    _add_common(c)
    c.add_argument("--psk", metavar="IDENTITY:HEX", help="use this PSK identity and key")
    c.add_argument("--fingerprint", action="append", metavar="SHA256",
                   help="accept the server certificate with this SHA-256 fingerprint")
    c.add_argument("--servername", help="name to send (SNI) and check (default: HOST)")
    c.add_argument("--insecure", action="store_true",
                   help="do not authenticate the server (testing only)")
    c.add_argument("--timeout", type=float, default=10.0, help="handshake timeout, seconds")
    c.add_argument("--linger", type=float, default=1.0,
                   help="after stdin ends, wait this long for replies before closing")

    sub.add_parser("bench", add_help=False,
                   help="run the benchmarks (bench/run.py of a source checkout; "
                   "`python -m dtls bench --help` for its options)")

    x = sub.add_parser("proxy", help="a seeded UDP fault-injection relay for testing")
    x.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="where clients send (default: a free port on 127.0.0.1)")
    x.add_argument("--upstream", required=True, metavar="HOST:PORT", help="the real server")
    x.add_argument("--drop", type=float, default=0.0, help="drop probability")
    x.add_argument("--duplicate", type=float, default=0.0, help="duplicate probability")
    x.add_argument("--reorder", type=float, default=0.0,
                   help="probability a datagram is held back (reordered)")
    x.add_argument("--reorder-ms", type=float, default=50.0,
                   help="a held-back datagram waits up to this many ms")
    x.add_argument("--delay-ms", type=float, default=0.0, help="fixed one-way delay, ms")
    x.add_argument("--mtu", type=int, default=None,
                   help="silently drop datagrams larger than this (UDP payload bytes)")
    x.add_argument("--corrupt", type=float, default=0.0,
                   help="probability of flipping one random bit")
    x.add_argument("--pack", type=float, default=0.0,
                   help="probability a datagram is coalesced with the next one(s)")
    x.add_argument("--direction", choices=("both", "up", "down"), default="both",
                   help="which way the faults apply (up: client to server)")
    x.add_argument("--seed", type=int, default=0, help="random seed: same seed, same faults")
    x.add_argument("--seconds", type=float, default=None, help="stop after this long")

    g = sub.add_parser("selfsigned", help="write a test ECDSA P-256 certificate and key")
    g.add_argument("--cert", default="cert.pem")
    g.add_argument("--key", default="key.pem")
    g.add_argument("--cn", default="localhost", help="common name (and subjectAltName)")
    g.add_argument("--days", type=int, default=30)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its options are bench/run.py's, not ours
        return cmd_bench(argv[1:])
    args = build_parser().parse_args(argv)
    if getattr(args, "verbose", False):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                            format="%(asctime)s %(name)s %(message)s")
    commands = {"server": cmd_server, "client": cmd_client, "selfsigned": cmd_selfsigned,
                "proxy": cmd_proxy}
    try:
        return commands[args.command](args, sys.stdout)
    except CliError as exc:
        print(f"dtls {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return 1


if __name__ == "__main__":
    sys.exit(main())
