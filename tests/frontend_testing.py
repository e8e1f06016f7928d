"""Helpers for the front-end tests (test_sock.py, test_aio.py, test_server.py):
configurations, an asyncio DTLS server running on its own event loop in a background
thread (so blocking clients can be tested against it), and `FAILURE_CASES`, the rejected
handshakes every front-end must report the same way on both sides."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from certs import PKI, Leaf
from dtls_testing import make_certificate

import dtls
import dtls.aio
from dtls.alerts import AlertDescription
from dtls.config import DtlsConfiguration
from dtls.errors import AlertReceived, AlertSent, CertificateVerificationFailed, DtlsError
from dtls.verify import fingerprint_sha256

TIMEOUT = 10.0
"""Bound on every wait in these tests."""


@lru_cache(maxsize=1)
def _credentials() -> tuple[Any, Any]:
    return make_certificate("localhost")


def server_config(**kw: Any) -> DtlsConfiguration:
    cert, key = _credentials()
    return DtlsConfiguration(is_client=False, certificate_chain=[cert], private_key=key, **kw)


def client_config(**kw: Any) -> DtlsConfiguration:
    cert, _ = _credentials()
    kw.setdefault("pinned_sha256", (fingerprint_sha256(cert),))
    return DtlsConfiguration(server_name="localhost", **kw)


def fast(config: DtlsConfiguration, handshake_timeout: float = 1.0) -> DtlsConfiguration:
    """Short retransmission and handshake timers, for tests that expect a timeout."""
    return dataclasses.replace(config, initial_retransmit_timeout=0.1,
                               max_retransmit_timeout=0.4,
                               handshake_timeout=handshake_timeout)


async def echo(peer: dtls.aio.DtlsPeer) -> None:
    async for data in peer:
        peer.send(data)


class ServerThread:
    """A `dtls.aio.serve` server on an event loop in a daemon thread."""

    def __init__(self, handler: Callable[[dtls.aio.DtlsPeer], Awaitable[None]],
                 config: DtlsConfiguration | None = None, **kw: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_debug(True)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.server: dtls.aio.AsyncDtlsServer = self.call(
            dtls.aio.serve(handler, "127.0.0.1", 0, config or server_config(), **kw))
        self.address: tuple[str, int] = self.server.address
        self.leftover_tasks: set[asyncio.Task[Any]] = set()

    def call(self, coro: Awaitable[Any], timeout: float = TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        if self.loop.is_closed():
            return

        async def shutdown() -> None:
            self.server.close()
            await self.server.wait_closed()
            self.leftover_tasks = asyncio.all_tasks() - {asyncio.current_task()}

        try:
            self.call(shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(TIMEOUT)
            self.loop.close()


@contextmanager
def server_thread(handler: Callable[[dtls.aio.DtlsPeer], Awaitable[None]] = echo,
                  config: DtlsConfiguration | None = None, **kw: Any) -> Iterator[ServerThread]:
    server = ServerThread(handler, config, **kw)
    try:
        yield server
    finally:
        server.close()
    assert not server.leftover_tasks, server.leftover_tasks


# -- rejected handshakes ------------------------------------------------------------------


def leaf_server_config(leaf: Leaf, **kw: Any) -> DtlsConfiguration:
    """A server presenting one of the test PKI's leaves (tests/certs.py)."""
    return DtlsConfiguration(is_client=False, certificate_chain=[leaf.cert],
                             private_key=leaf.key, **kw)


def ca_client_config(pki: PKI, **kw: Any) -> DtlsConfiguration:
    """A client verifying the server's chain against the test PKI's root CA."""
    return DtlsConfiguration(server_name="localhost", ca_certificates=(pki.ca.cert,), **kw)


PSK_TABLE = {b"known client": b"k" * 16}


@dataclasses.dataclass(frozen=True)
class FailureCase:
    """A handshake that must fail, and what each side must report."""

    name: str
    server: Callable[[PKI], DtlsConfiguration]
    client: Callable[[PKI], DtlsConfiguration]
    alert: AlertDescription
    """The alert that ends the handshake (both sides report it as `.description`)."""
    client_error: type[DtlsError]
    client_words: tuple[str, ...]
    """Lower-case words the client's error message must contain (what to fix)."""
    server_error: type[DtlsError]
    server_reason: str
    """The key of `stats["handshake_failure_reasons"]` (dtls.server.failure_reason)."""


FAILURE_CASES = (
    FailureCase("wrong_pinned_fingerprint", lambda pki: server_config(),
                lambda pki: client_config(pinned_sha256=(b"\x01" * 32,)),
                AlertDescription.bad_certificate, CertificateVerificationFailed,
                ("fingerprint", "pinned"), AlertReceived, "received_bad_certificate"),
    FailureCase("expired_certificate", lambda pki: leaf_server_config(pki.expired),
                ca_client_config, AlertDescription.certificate_expired,
                CertificateVerificationFailed, ("expired",),
                AlertReceived, "received_certificate_expired"),
    FailureCase("unknown_ca", lambda pki: leaf_server_config(pki.foreign),
                ca_client_config, AlertDescription.unknown_ca,
                CertificateVerificationFailed, ("unknown_ca", "trusted root"),
                AlertReceived, "received_unknown_ca"),
    FailureCase("unknown_psk_identity", lambda pki: server_config(psk_lookup=PSK_TABLE.get),
                lambda pki: client_config(pinned_sha256=(), psk=b"k" * 16,
                                          psk_identity=b"stranger"),
                AlertDescription.unknown_psk_identity, AlertReceived, ("psk identity",),
                AlertSent, "sent_unknown_psk_identity"),
    FailureCase("wrong_psk_key", lambda pki: server_config(psk_lookup=PSK_TABLE.get),
                lambda pki: client_config(pinned_sha256=(), psk=b"w" * 16,
                                          psk_identity=b"known client"),
                AlertDescription.bad_record_mac, AlertReceived, ("pre-shared key",),
                AlertSent, "sent_bad_record_mac"),
)


def check_client_error(case: FailureCase, error: BaseException | None) -> None:
    assert type(error) is case.client_error, (case.name, repr(error))
    assert isinstance(error, (AlertReceived, AlertSent))
    assert error.description is case.alert, (case.name, error.description)
    for word in case.client_words:
        assert word in str(error).lower(), (case.name, word, str(error))


def blocking_handshake_error(address: tuple[str, int],
                             config: DtlsConfiguration) -> BaseException | None:
    """The exception the blocking client (dtls.connect) raises for a handshake."""
    try:
        with dtls.connect(address, config, timeout=5) as sock:
            sock.do_handshake()
    except DtlsError as exc:
        return exc
    return None
