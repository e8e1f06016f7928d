"""Helpers for the front-end tests (test_sock.py, test_aio.py): configurations and an
asyncio DTLS server running on its own event loop in a background thread, so blocking
clients can be tested against it."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from dtls_testing import make_certificate

import dtls.aio
from dtls.config import DtlsConfiguration
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
        self.server: dtls.aio.DtlsServer = self.call(
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
