"""`python -m dtls` (dtls.cli) as a user runs it: subprocesses on loopback, bounded timeouts.

Our server with our client (certificate and PSK), and interop through the CLI with
`openssl s_client -dtls1_2` / `openssl s_server -dtls1_2` (skipped without openssl).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dtls_testing import PeerProcess

from dtls.cli import main, parse_ciphers, parse_fingerprint, parse_psk

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
PSK_ARG = "client1:" + "0123456789abcdef" * 2
TIMEOUT = 30


def dtls_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dtls", *args]


def run_client(*args: str, stdin: bytes = b"hello\n") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(dtls_cmd("client", *args), input=stdin, capture_output=True,
                          env=ENV, check=False, timeout=TIMEOUT)


class CliServer:
    """`python -m dtls server --port 0 ...` as a child process."""

    def __init__(self, *args: str) -> None:
        self.process = PeerProcess(dtls_cmd("server", "--port", "0", *args))
        try:
            self.process.wait_for("Listening on", timeout=TIMEOUT)
        except AssertionError:
            self.process.stop()
            raise
        match = re.search(r"Listening on 127\.0\.0\.1:(\d+)", self.process.output)
        assert match, self.process.output
        self.port = int(match.group(1))
        self.address = f"127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return self.process.output

    def stop(self) -> int:
        proc = self.process.process
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # served as a clean shutdown
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.process.stop()
        return proc.returncode


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("cli-pki")
    cert, key = directory / "cert.pem", directory / "key.pem"
    result = subprocess.run(dtls_cmd("selfsigned", "--cert", str(cert), "--key", str(key)),
                            capture_output=True, env=ENV, timeout=TIMEOUT, check=True)
    match = re.search(r"SHA-256 fingerprint: ([0-9A-F:]{95})", result.stdout.decode())
    assert match, result.stdout
    return {"cert": str(cert), "key": str(key), "fingerprint": match.group(1)}


@pytest.fixture
def cert_server(pki: dict[str, str]) -> Iterator[CliServer]:
    server = CliServer("--cert", pki["cert"], "--key", pki["key"])
    try:
        yield server
    finally:
        assert server.stop() == 0, server.output


# -- selfsigned and argument parsing -------------------------------------------------------


def test_selfsigned_writes_a_p256_certificate_and_private_key(pki: dict[str, str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from dtls.verify import fingerprint_sha256

    cert = x509.load_pem_x509_certificate(Path(pki["cert"]).read_bytes())
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert parse_fingerprint(pki["fingerprint"]) == fingerprint_sha256(cert)
    assert os.stat(pki["key"]).st_mode & 0o077 == 0  # the key is not world-readable


def test_argument_parsers() -> None:
    assert parse_psk("id:00ff") == (b"id", b"\x00\xff")
    assert parse_ciphers("TLS_PSK_WITH_AES_128_GCM_SHA256,"
                         "ecdhe_ecdsa_with_aes_128_gcm_sha256")[1].name \
        == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    with pytest.raises(Exception, match="unknown cipher suite"):
        parse_ciphers("RC4")
    with pytest.raises(Exception, match="32 bytes"):
        parse_fingerprint("AB:CD")


def test_client_refuses_to_run_without_a_way_to_authenticate(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["client", "127.0.0.1:9"]) == 2
    assert "--fingerprint" in capsys.readouterr().err


# -- our server with our client ------------------------------------------------------------


def test_cli_server_and_client_echo_lines(cert_server: CliServer, pki: dict[str, str]) -> None:
    result = run_client(cert_server.address, "--fingerprint", pki["fingerprint"],
                        stdin=b"hello\nsecond line\n")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert result.stdout.decode().splitlines() == ["hello", "second line"]
    assert "Protocol: DTLSv1.2" in err and "Cipher: TLS_ECDHE_ECDSA_WITH_" in err
    assert "Peer certificate: CN=localhost" in err
    assert pki["fingerprint"] in err
    deadline = time.monotonic() + 5
    while "closed by peer" not in cert_server.output and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "handshake complete: Protocol: DTLSv1.2" in cert_server.output
    assert "closed by peer: peer sent close_notify" in cert_server.output


def test_cli_client_verifies_with_ca_and_rejects_a_wrong_fingerprint(
        cert_server: CliServer, pki: dict[str, str]) -> None:
    ok = run_client(cert_server.address, "--ca", pki["cert"], "--servername", "localhost")
    assert ok.returncode == 0 and ok.stdout == b"hello\n", ok.stderr
    wrong = "00:" * 31 + "00"
    bad = run_client(cert_server.address, "--fingerprint", wrong)
    assert bad.returncode == 1 and bad.stdout == b""
    assert "handshake" in bad.stderr.decode() and "failed" in bad.stderr.decode()


def test_cli_psk_server_and_client_with_ciphers_and_mtu() -> None:
    server = CliServer("--psk", PSK_ARG, "--ciphers", "TLS_PSK_WITH_AES_128_GCM_SHA256",
                       "--no-cookie", "--mtu", "600", "--verbose")
    try:
        result = run_client(server.address, "--psk", PSK_ARG, "--mtu", "600",
                            "--ciphers", "TLS_PSK_WITH_AES_128_GCM_SHA256", stdin=b"psk!\n")
        err = result.stderr.decode()
        assert result.returncode == 0, err
        assert result.stdout == b"psk!\n"
        assert "Cipher: TLS_PSK_WITH_AES_128_GCM_SHA256" in err and "PSK identity: client1" in err
        assert "cookie exchange OFF" in server.output
    finally:
        assert server.stop() == 0, server.output


def test_cli_client_reports_an_unreachable_server() -> None:
    from dtls_testing import free_udp_port

    result = run_client(f"127.0.0.1:{free_udp_port()}", "--insecure", "--timeout", "1.5")
    assert result.returncode == 1
    assert "failed" in result.stderr.decode()


# -- interop through the CLI ---------------------------------------------------------------

SUITE = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"


def _openssl_reason() -> str | None:
    try:
        from peers import get_suite, unavailable_reason
    except ImportError as exc:  # pragma: no cover
        return f"tests/peers.py not importable: {exc}"
    return unavailable_reason("openssl", [get_suite(SUITE)], "1.2", key_type="p256")


def test_openssl_s_client_against_cli_server(cert_server: CliServer,
                                             pki: dict[str, str]) -> None:
    reason = _openssl_reason()
    if reason:
        pytest.skip(f"openssl unavailable: {reason}")
    from peers import OpenSSLClient

    client = OpenSSLClient(suite=SUITE, port=cert_server.port, ca=pki["cert"],
                           server_name="localhost", trace=False)
    with client:  # __enter__ starts it
        info = client.wait_handshake()
        # openssl prints "Verification: OK" after the summary; under load it can come late.
        client.wait_for(lambda: info.verified is not None, "openssl's verification line", 10)
        assert info.version == "1.2" and info.iana == SUITE and info.verified
        client.exchange("hello from openssl")
        client.exchange("and again")
    assert "handshake complete: Protocol: DTLSv1.2" in cert_server.output


def test_cli_client_against_openssl_s_server(pki: dict[str, str]) -> None:
    reason = _openssl_reason()
    if reason:
        pytest.skip(f"openssl unavailable: {reason}")
    from peers import OpenSSLServer

    server = OpenSSLServer(suite=SUITE, cert=(pki["cert"], pki["key"]), echo=True)
    with server:  # __enter__ starts it
        result = run_client(f"127.0.0.1:{server.port}", "--ca", pki["cert"],
                            "--servername", "localhost", stdin=b"hello openssl\n")
        err = result.stderr.decode()
        assert result.returncode == 0, err + server.diagnostics()
        assert result.stdout == b"hello openssl\n", err + server.diagnostics()
        assert f"Cipher: {SUITE}" in err and "Protocol: DTLSv1.2" in err
        assert b"hello openssl" in server.received


def test_cli_client_psk_against_openssl_s_server() -> None:
    psk_suite = "TLS_PSK_WITH_AES_128_GCM_SHA256"
    from peers import OpenSSLServer, get_suite, unavailable_reason

    reason = unavailable_reason("openssl", [get_suite(psk_suite)], "1.2")
    if reason:
        pytest.skip(f"openssl unavailable: {reason}")
    identity, key = parse_psk(PSK_ARG)
    server = OpenSSLServer(suite=psk_suite, psk=(identity.decode(), key), echo=True)
    with server:  # __enter__ starts it
        result = run_client(f"127.0.0.1:{server.port}", "--psk", PSK_ARG,
                            "--ciphers", psk_suite, stdin=b"psk line\n")
        err = result.stderr.decode()
        assert result.returncode == 0, err + server.diagnostics()
        assert result.stdout == b"psk line\n" and f"Cipher: {psk_suite}" in err


def test_cli_dtls10_when_the_core_supports_it(pki: dict[str, str]) -> None:
    from dtls.cli import _HAS_VERSIONS

    if not _HAS_VERSIONS:
        pytest.skip("DtlsConfiguration has no versions setting: the CLI accepts 1.2 only")
    cbc = "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
    server = CliServer("--cert", pki["cert"], "--key", pki["key"], "--version", "1.2,1.0",
                       "--ciphers", f"{cbc}:TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
    try:
        result = run_client(server.address, "--fingerprint", pki["fingerprint"],
                            "--version", "1.0", "--ciphers", cbc, stdin=b"old\n")
        err = result.stderr.decode()
        assert result.returncode == 0, err
        assert result.stdout == b"old\n" and "Protocol: DTLSv1\n" in err
    finally:
        assert server.stop() == 0, server.output


def test_cli_proxy_between_cli_client_and_server_under_faults(cert_server: CliServer,
                                                              pki: dict[str, str]) -> None:
    """`python -m dtls proxy` with 20% drop/duplicate/reorder both ways: the CLI client
    still handshakes and echoes through it, and the proxy reports what it did."""
    proxy = PeerProcess(dtls_cmd("proxy", "--upstream", cert_server.address, "--drop", "0.2",
                                 "--duplicate", "0.2", "--reorder", "0.2", "--seed", "1",
                                 "--seconds", "20"))
    try:
        proxy.wait_for("fault proxy on", timeout=TIMEOUT)
        match = re.search(r"fault proxy on 127\.0\.0\.1:(\d+)", proxy.output)
        assert match, proxy.output
        result = run_client(f"127.0.0.1:{match.group(1)}", "--fingerprint",
                            pki["fingerprint"], "--servername", "localhost",
                            "--linger", "3", "--timeout", "25",
                            stdin=b"".join(b"line %d through the proxy\n" % i for i in range(10)))
        assert result.returncode == 0, result.stderr.decode()
        # UDP semantics: each line is one datagram, some are lost; what comes back is intact.
        echoed = result.stdout.splitlines()
        assert echoed and all(re.fullmatch(rb"line \d through the proxy", e) for e in echoed)
        proxy.process.send_signal(signal.SIGINT)
        proxy.wait_exit(10)
        assert re.search(r"up: .*received=\d+", proxy.output), proxy.output
    finally:
        proxy.stop()


def test_cli_proxy_rejects_bad_probabilities() -> None:
    result = subprocess.run(dtls_cmd("proxy", "--upstream", "127.0.0.1:1", "--drop", "1.5"),
                            capture_output=True, env=ENV, timeout=TIMEOUT, check=False)
    assert result.returncode == 2 and b"drop must be a probability" in result.stderr
