"""Interop with mbed TLS (PyPI python-mbedtls) over real UDP on 127.0.0.1, both roles.

The mbed TLS side runs in a thread on its own socket with a deadline on every call, so
a stuck handshake fails the test instead of hanging it.  Skipped when python-mbedtls is
not installed (`pip install python-mbedtls`).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from dtls_testing import Events, drive_udp, write_pki

from dtls.config import DtlsConfiguration
from dtls.connection import Connection
from dtls.events import ApplicationData, HandshakeCompleted
from dtls.suites import CipherSuite

tls = pytest.importorskip("mbedtls.tls", reason="python-mbedtls not installed")
mx = pytest.importorskip("mbedtls.x509")
mpk = pytest.importorskip("mbedtls.pk")

# mbed TLS always negotiates encrypt-then-MAC for CBC suites (python-mbedtls cannot turn it
# off) and ours offers it by default, so the CBC cases here run with EtM ("-etm" in the id);
# without EtM, see test_required_cell (our side turns it off).
SUITES = {
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256:
        "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256",
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: "TLS-ECDHE-ECDSA-WITH-AES-128-CBC-SHA256",
    CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256: "TLS-PSK-WITH-AES-128-GCM-SHA256",
    CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256:
        "TLS-ECDHE-PSK-WITH-CHACHA20-POLY1305-SHA256",
}
PSK_ID, PSK_KEY = "interop-id", bytes.fromhex("00112233445566778899aabbccddeeff")
TIMEOUT = 10.0


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    return write_pki(tmp_path)


def _block(call: Callable[..., Any], *args: Any, deadline: float) -> Any:
    """python-mbedtls sockets are non-blocking in the handshake: retry until done."""
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(f"mbed TLS {call.__name__} timed out")
        try:
            return call(*args)
        except (tls.WantReadError, tls.WantWriteError):
            time.sleep(0.001)


def _run(target: Callable[[dict[str, Any]], None]) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def guarded() -> None:
        try:
            target(result)
        except Exception as exc:  # noqa: BLE001 - reported through `result`, asserted by the test
            result["error"] = repr(exc)

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    return thread, result


def _mbed_configuration(pki: dict[str, Any], suite: CipherSuite, *, server: bool) -> Any:
    der = serialization.Encoding.DER
    common = {"ciphers": (SUITES[suite],),
              "highest_supported_version": tls.DTLSVersion.DTLSv1_2}
    if "PSK" in suite.name:
        if server:
            return tls.DTLSConfiguration(pre_shared_key_store={PSK_ID: PSK_KEY}, **common)
        return tls.DTLSConfiguration(pre_shared_key=(PSK_ID, PSK_KEY), **common)
    if server:
        key = mpk.ECC.from_DER(pki["key"].private_bytes(
            der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return tls.DTLSConfiguration(
            certificate_chain=((mx.CRT.from_DER(pki["cert"].public_bytes(der)),), key),
            validate_certificates=False, **common)
    return tls.DTLSConfiguration(
        trust_store=tls.TrustStore([mx.CRT.from_DER(pki["ca_cert"].public_bytes(der))]),
        **common)


@pytest.mark.parametrize("suite", list(SUITES), ids=lambda s: s.name + "-etm" * ("CBC" in s.name))
def test_our_client_against_mbedtls_server(pki, suite: CipherSuite) -> None:
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # mbed's accept() rebinds
    listener = tls.ServerContext(_mbed_configuration(pki, suite, server=True)).wrap_socket(raw)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve(result: dict[str, Any]) -> None:
        deadline = time.monotonic() + TIMEOUT
        conn, addr = listener.accept()
        conn.setcookieparam(addr[0].encode())
        with suppress(tls.HelloVerifyRequest):  # first hello: mbed sends its HVR
            _block(conn.do_handshake, deadline=deadline)
        conn, addr = conn.accept()
        conn.setcookieparam(addr[0].encode())
        _block(conn.do_handshake, deadline=deadline)
        result["cipher"] = conn.cipher()
        data = _block(conn.recv, 4096, deadline=deadline)
        _block(conn.send, b"echo:" + data, deadline=deadline)
        result["data"] = data

    thread, result = _run(serve)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect(("127.0.0.1", port))
        credentials = ({"psk": PSK_KEY, "psk_identity": PSK_ID.encode()} if "PSK" in suite.name
                       else {"ca_certificates": (pki["ca_cert"],), "server_name": "localhost"})
        client = Connection(DtlsConfiguration(cipher_suites=(suite,), **credentials),
                            peer_address=("127.0.0.1", port))
        events = Events()
        client.connect(time.monotonic())
        drive_udp(client, sock, until=lambda: bool(events.done()() or "error" in result),
                  on_event=events, timeout=TIMEOUT)
        done = events.of_type(HandshakeCompleted)
        assert done and done[0].cipher_suite is suite, (events.items, client.stats, result)
        assert done[0].encrypt_then_mac is ("CBC" in suite.name)
        client.send(b"hello mbed")
        drive_udp(client, sock, until=events.has(ApplicationData), on_event=events,
                  timeout=TIMEOUT)
        assert events.of_type(ApplicationData)[0].data == b"echo:hello mbed"
        thread.join(TIMEOUT)
        assert result.get("data") == b"hello mbed", result
    finally:
        sock.close()
        listener.close()


@pytest.mark.parametrize("suite", list(SUITES), ids=lambda s: s.name + "-etm" * ("CBC" in s.name))
def test_mbedtls_client_against_our_server(pki, suite: CipherSuite) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    mbed_configuration = _mbed_configuration(pki, suite, server=False)

    def connect(result: dict[str, Any]) -> None:
        deadline = time.monotonic() + TIMEOUT
        client = tls.ClientContext(mbed_configuration).wrap_socket(
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM), server_hostname="localhost")
        try:
            client.connect(("127.0.0.1", port))
            _block(client.do_handshake, deadline=deadline)
            result["cipher"] = client.cipher()
            _block(client.send, b"hello from mbed", deadline=deadline)
            result["data"] = _block(client.recv, 4096, deadline=deadline)
        finally:
            client.close()

    thread, result = _run(connect)
    try:
        server = Connection(DtlsConfiguration(
            is_client=False, cipher_suites=(suite,), certificate_chain=[pki["cert"]],
            private_key=pki["key"], psk_lookup={PSK_ID.encode(): PSK_KEY}.get))
        events = Events()
        drive_udp(server, sock, until=lambda: bool(events.has(ApplicationData)()
                                                   or "error" in result),
                  on_event=events, timeout=TIMEOUT)
        done = events.of_type(HandshakeCompleted)
        assert done and done[0].cipher_suite is suite, (events.items, server.stats, result)
        assert server.stats["hello_verify_request"] == 1
        assert done[0].encrypt_then_mac is ("CBC" in suite.name)
        assert events.of_type(ApplicationData)[0].data == b"hello from mbed"
        server.send(b"hello from python")
        drive_udp(server, sock, until=lambda: "data" in result or "error" in result,
                  on_event=events, timeout=TIMEOUT)
        thread.join(TIMEOUT)
        assert result.get("data") == b"hello from python", result
    finally:
        sock.close()


# ----------------------------------------------------------------------------- required cells
# Issue #3's list, against mbedtls in both roles (tests/interop_fixtures.py REQUIRED_CASES):
# all cells of this peer run concurrently once (run_cells), then each is reported by its own
# test so `python tests/interop_matrix.py` shows them in the REQUIRED table.

# Registered before its first import: its asserts get pytest's rewriting, and loading it as a
# plugin later (test_peers_selfcheck.py) does not warn that it was imported unrewritten.
pytest.register_assert_rewrite("interop_fixtures")
from interop_fixtures import check_cell, required_cell_params


@pytest.fixture(scope="module")
def required_cells():  # type: ignore[no-untyped-def]
    from certs import cached_pki
    from interop_fixtures import run_cells
    return run_cells(cached_pki(), "mbedtls")


@pytest.mark.parametrize("role, case", required_cell_params("mbedtls"))
def test_required_cell(required_cells, role: str, case: str) -> None:  # type: ignore[no-untyped-def]
    check_cell(required_cells, role, case)


def test_mbedtls_cannot_turn_encrypt_then_mac_off() -> None:
    """Why 'without EtM' is tested against mbed TLS by turning it off on OUR side: the
    python-mbedtls configuration has no encrypt-then-MAC setting, and (peer against peer,
    without our stack) an mbed TLS server negotiates EtM with an OpenSSL client that
    offers it, an mbed TLS client offers it to an OpenSSL server that accepts it."""
    import dataclasses
    import inspect

    from peers import (
        MbedTLSClient,
        MbedTLSServer,
        OpenSSLClient,
        OpenSSLServer,
        unavailable_reason,
    )

    fields = ({f.name for f in dataclasses.fields(tls.DTLSConfiguration)}
              if dataclasses.is_dataclass(tls.DTLSConfiguration)
              else set(inspect.signature(tls.DTLSConfiguration).parameters))
    assert fields and not [f for f in fields if "etm" in f.lower() or "encrypt" in f.lower()
                           or "mac" in f.lower()], fields
    assert unavailable_reason("mbedtls", [], "1.2", etm=False) is not None
    if unavailable_reason("openssl", [], "1.2"):
        pytest.skip(unavailable_reason("openssl", [], "1.2"))
    from certs import cached_pki
    pki = cached_pki()
    cbc = "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
    with MbedTLSServer(suite=cbc, cert=pki.server_ecdsa, timeout=8) as server:
        client = OpenSSLClient(suite=cbc, port=server.port, ca=pki.ca.cert_path, timeout=8)
        with client:
            assert client.wait_handshake().iana == cbc
            client.exchange("etm?")
        assert client.handshakes[0].etm is True, client.trace_text[-2000:]  # from -trace
    # ... and the mbed TLS client offers it: s_server -no_etm is the only way to avoid it.
    with OpenSSLServer(suite=cbc, cert=pki.server_ecdsa, timeout=8, trace=True) as server, \
            MbedTLSClient(suite=cbc, port=server.port, ca=pki.ca.cert_path,
                          timeout=8) as client:
        client.wait_handshake()
        client.exchange("etm?")
    assert "encrypt_then_mac" in server.trace_text, server.trace_text[-2000:]
