"""dtls.aio: the asyncio client and many-peer server, over real loopback UDP.

Each test runs its own event loop in debug mode (`run`), bounded by `TIMEOUT`, and checks
at the end that no task other than the test's own is left and that asyncio logged no
error (never-retrieved exceptions, destroyed pending tasks, unclosed transports).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from dtls_testing import PeerProcess, free_udp_port, write_pki
from frontend_testing import (
    FAILURE_CASES,
    TIMEOUT,
    FailureCase,
    blocking_handshake_error,
    check_client_error,
    client_config,
    echo,
    fast,
    server_config,
)

import dtls
import dtls.aio
from dtls.alerts import AlertDescription
from dtls.connection import Connection
from dtls.errors import (
    AlertReceived,
    CertificateVerificationFailed,
    ConnectionClosed,
    HandshakeTimeout,
)
from dtls.recordbase import DTLS1_2
from dtls.verify import fingerprint_sha256

if TYPE_CHECKING:
    from certs import PKI

pytest_plugins = ["interop_fixtures"]  # fixture: pki (tests/certs.py, expired/foreign leaves)

HOST = "127.0.0.1"


def run(coro: Coroutine[Any, Any, Any], caplog: pytest.LogCaptureFixture) -> Any:
    """Run `coro` on a fresh debug-mode loop; fail on leaked tasks or asyncio errors."""
    leftovers: set[asyncio.Task[Any]] = set()

    async def main() -> Any:
        result = await asyncio.wait_for(coro, TIMEOUT)
        await asyncio.sleep(0)  # let done-callbacks run
        leftovers.update(asyncio.all_tasks() - {asyncio.current_task()})
        return result

    with caplog.at_level(logging.WARNING, logger="asyncio"), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        result = asyncio.run(main(), debug=True)
        gc.collect()
    assert not leftovers, leftovers
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not unclosed, unclosed
    errors = [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    return result


def test_echo_and_negotiated_parameters(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with await dtls.aio.serve(echo, HOST, 0, server_config()) as server:
            async with await dtls.aio.connect(*server.address, client_config()) as client:
                assert client.version == DTLS1_2 and client.handshake is not None
                assert client.peer_certificate is not None
                for message in (b"one", b"two", b"x" * 4000):
                    client.send(message)
                    assert await client.recv() == message
                assert len(server.peers) == 1
                peer = server.peers[0]
                assert peer.peer_address == client.getsockname()
                assert peer.export_keying_material("EXTRACTOR-x", 32) == \
                    client.export_keying_material("EXTRACTOR-x", 32)
            assert client.closed
    run(main(), caplog)


def test_fifty_concurrent_clients_all_echo(caplog: pytest.LogCaptureFixture) -> None:
    async def one(address: tuple[str, int], n: int) -> bytes:
        async with await dtls.aio.connect(*address, client_config()) as client:
            replies = []
            for i in range(3):
                client.send(b"client %d message %d" % (n, i))
                replies.append(await client.recv())
            return b"|".join(replies)

    async def main() -> None:
        async with await dtls.aio.serve(echo, HOST, 0, server_config()) as server:
            results = await asyncio.gather(*(one(server.address, n) for n in range(50)))
            assert results == [b"|".join(b"client %d message %d" % (n, i) for i in range(3))
                               for n in range(50)]
            assert server.stats["handshakes"] == 50
    run(main(), caplog)


def test_shutdown_cancels_handlers_notifies_peers_and_leaves_no_tasks(
        caplog: pytest.LogCaptureFixture) -> None:
    cancelled: list[bool] = []

    async def handler(peer: dtls.aio.DtlsPeer) -> None:
        try:
            await echo(peer)
            await asyncio.sleep(3600)  # never returns by itself
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> None:
        before = asyncio.all_tasks()
        server = await dtls.aio.serve(handler, HOST, 0, server_config())
        clients = [await dtls.aio.connect(*server.address, client_config()) for _ in range(5)]
        for client in clients:
            client.send(b"hello")
            assert await client.recv() == b"hello"
        transport = server._transport
        assert transport is not None
        server.close()
        await server.wait_closed()
        assert transport.is_closing() and not server.is_serving()
        assert cancelled == [True] * 5 and server.peers == []
        for client in clients:
            with pytest.raises(ConnectionClosed) as info:
                await client.recv()
            assert info.value.by_peer
            await client.close()
        assert asyncio.all_tasks() == before
    run(main(), caplog)


def test_client_close_notify_reaches_the_handler(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        seen: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

        async def handler(peer: dtls.aio.DtlsPeer) -> None:
            try:
                while True:
                    peer.send(await peer.recv())
            except ConnectionClosed as exc:
                seen.set_result(exc)

        async with await dtls.aio.serve(handler, HOST, 0, server_config()) as server:
            client = await dtls.aio.connect(*server.address, client_config())
            client.send(b"x")
            assert await client.recv() == b"x"
            await client.close()
            exc = await asyncio.wait_for(seen, 5)
            assert isinstance(exc, ConnectionClosed) and exc.by_peer
            with pytest.raises(ConnectionClosed):
                client.send(b"after close")
    run(main(), caplog)


def test_handler_return_sends_close_notify(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(peer: dtls.aio.DtlsPeer) -> None:
        peer.send(b"greeting")

    async def main() -> None:
        async with await dtls.aio.serve(handler, HOST, 0, server_config()) as server, \
                await dtls.aio.connect(*server.address, client_config()) as client:
            assert await client.recv() == b"greeting"
            with pytest.raises(ConnectionClosed):
                await client.recv()
            assert [m async for m in client] == []
    run(main(), caplog)


def test_failing_handler_does_not_stop_the_server(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(peer: dtls.aio.DtlsPeer) -> None:
        if await peer.recv() == b"crash":
            raise RuntimeError("handler bug")
        await echo(peer)

    async def main() -> None:
        async with await dtls.aio.serve(handler, HOST, 0, server_config()) as server:
            async with await dtls.aio.connect(*server.address, client_config()) as bad:
                bad.send(b"crash")
                with pytest.raises(ConnectionClosed):
                    await bad.recv()
            async with await dtls.aio.connect(*server.address, client_config()) as good:
                good.send(b"first")
                good.send(b"second")
                assert await good.recv() == b"second"
    with caplog.at_level(logging.ERROR, logger="dtls.aio"):
        run(main(), caplog)
    assert any("handler bug" in (r.exc_text or "") or r.exc_info for r in caplog.records
               if r.name == "dtls.aio")


def test_handshake_timeout_without_server(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        start = time.monotonic()
        with pytest.raises(HandshakeTimeout):
            await dtls.aio.connect(HOST, free_udp_port(), fast(client_config(), 1.0))
        assert 0.9 <= time.monotonic() - start < 2.5
    run(main(), caplog)


def test_cancelled_connect_closes_its_transport(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind((HOST, 0))
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(
                    dtls.aio.connect(*silent.getsockname(), client_config()), 0.3)
    run(main(), caplog)  # ResourceWarning would be an error: the transport was closed


def test_wrong_fingerprint_fails_both_sides_and_handler_never_runs(
        caplog: pytest.LogCaptureFixture) -> None:
    calls: list[object] = []

    async def handler(peer: dtls.aio.DtlsPeer) -> None:
        calls.append(peer)

    async def main() -> None:
        async with await dtls.aio.serve(handler, HOST, 0, server_config()) as server:
            with pytest.raises(CertificateVerificationFailed) as info:
                await dtls.aio.connect(*server.address,
                                       client_config(pinned_sha256=(b"\x01" * 32,)))
            assert info.value.description is AlertDescription.bad_certificate
            for _ in range(100):
                if server.stats["handshake_failures"]:
                    break
                await asyncio.sleep(0.01)
            assert server.stats["handshake_failures"] == 1 and server.peers == []
        assert calls == []
    run(main(), caplog)


def test_wrong_psk_is_an_alert_on_the_client(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        config = server_config(psk_lookup={b"id": b"k" * 16}.get)
        async with await dtls.aio.serve(echo, HOST, 0, config) as server:
            with pytest.raises(AlertReceived) as info:
                await dtls.aio.connect(*server.address, client_config(
                    pinned_sha256=(), psk=b"k" * 16, psk_identity=b"someone else"))
            assert info.value.description is AlertDescription.unknown_psk_identity
            async with await dtls.aio.connect(*server.address, client_config(
                    pinned_sha256=(), psk=b"k" * 16, psk_identity=b"id")) as client:
                assert client.handshake is not None and client.handshake.psk_identity == b"id"
    run(main(), caplog)


def test_cookieless_client_hellos_allocate_no_sessions(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with await dtls.aio.serve(echo, HOST, 0, server_config()) as server:
            hello_maker = Connection(client_config())
            hello_maker.connect(0.0)
            [(client_hello, _)] = hello_maker.datagrams_to_send(0.0)
            sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(20)]
            try:
                for s in sockets:
                    s.setblocking(False)
                    s.sendto(client_hello, server.address)
                answered = 0
                loop = asyncio.get_running_loop()
                for s in sockets:
                    reply = await asyncio.wait_for(loop.sock_recv(s, 2048), 5)
                    answered += reply[13] == 3  # handshake type hello_verify_request
            finally:
                for s in sockets:
                    s.close()
            assert answered == 20
            assert server.peers == [] and server.stats["sessions"] == 0
            async with await dtls.aio.connect(*server.address, client_config()) as client:
                client.send(b"still serving")
                assert await client.recv() == b"still serving"
    run(main(), caplog)


def test_session_limit_drops_new_addresses(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with await dtls.aio.serve(echo, HOST, 0, server_config(), max_sessions=1) \
                as server:
            async with await dtls.aio.connect(*server.address, client_config()):
                with pytest.raises(HandshakeTimeout):
                    await dtls.aio.connect(*server.address, fast(client_config(), 0.5))
                assert server.stats["session_limit_drops"] > 0
            # the first session is gone (its close_notify was processed): room again
            await asyncio.sleep(0.05)
            async with await dtls.aio.connect(*server.address, client_config()) as client:
                client.send(b"ok")
                assert await client.recv() == b"ok"
    run(main(), caplog)


def test_serve_forever_is_cancellable(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server = await dtls.aio.serve(echo, HOST, 0, server_config())
        task = asyncio.create_task(server.serve_forever())
        async with await dtls.aio.connect(*server.address, client_config()) as client:
            client.send(b"x")
            assert await client.recv() == b"x"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(ConnectionClosed):
                await client.recv()
        assert not server.is_serving()
    run(main(), caplog)


def test_blocking_and_asyncio_clients_share_one_server(
        caplog: pytest.LogCaptureFixture) -> None:
    def blocking(address: tuple[str, int]) -> bytes:
        with dtls.connect(address, client_config(), timeout=5) as sock:
            sock.send(b"blocking")
            return sock.recv(100)

    async def main() -> None:
        async with await dtls.aio.serve(echo, HOST, 0, server_config()) as server, \
                await dtls.aio.connect(*server.address, client_config()) as client:
            reply = await asyncio.to_thread(blocking, server.address)
            client.send(b"async")
            assert (reply, await client.recv()) == (b"blocking", b"async")
    run(main(), caplog)


def test_configuration_roles_are_checked() -> None:
    async def main() -> None:
        with pytest.raises(ValueError):
            await dtls.aio.connect(HOST, 9, server_config())
        with pytest.raises(ValueError):
            await dtls.aio.serve(echo, HOST, 0, client_config())
    asyncio.run(main())


def test_examples_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/echo_server_asyncio.py against both example clients, as subprocesses."""
    pki = write_pki(tmp_path)
    examples = Path(__file__).resolve().parents[1] / "examples"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(examples.parent), os.environ.get("PYTHONPATH")) if p))
    port = str(free_udp_port())
    server = PeerProcess([sys.executable, str(examples / "echo_server_asyncio.py"),
                          pki["cert_pem"], pki["key_pem"], port])
    try:
        server.wait_for("fingerprint", timeout=TIMEOUT)
        fingerprint = server.output.split("fingerprint", 1)[1].split()[0]
        assert fingerprint == fingerprint_sha256(pki["cert"]).hex()
        for client in ("echo_client_blocking.py", "echo_client_asyncio.py"):
            done = subprocess.run(
                [sys.executable, str(examples / client), HOST, port, fingerprint, "a", "b"],
                check=False, capture_output=True, text=True, timeout=TIMEOUT)
            assert done.returncode == 0, done.stderr
            assert "reply: a\nreply: b\n" in done.stdout, done.stdout
        server.wait_for("handshake with", timeout=TIMEOUT)
    finally:
        server.stop()


def test_new_client_hello_from_a_known_address_replaces_the_association(
        caplog: pytest.LogCaptureFixture) -> None:
    """RFC 6347 4.2.8: a client that lost its state and reconnects from the same port."""
    async def main() -> None:
        ended: list[BaseException] = []

        async def handler(peer: dtls.aio.DtlsPeer) -> None:
            try:
                while True:
                    peer.send(await peer.recv())
            except ConnectionClosed as exc:
                ended.append(exc)

        async with await dtls.aio.serve(handler, HOST, 0, server_config()) as server:
            port = free_udp_port()
            first = await dtls.aio.connect(*server.address, client_config(),
                                           local_addr=(HOST, port))
            first.send(b"first")
            assert await first.recv() == b"first"
            first._transport.close()  # "crash": no close_notify
            await first._protocol.lost
            async with await dtls.aio.connect(*server.address, client_config(),
                                              local_addr=(HOST, port)) as second:
                second.send(b"second")
                assert await second.recv() == b"second"
                assert server.stats["new_associations"] == 1 and len(server.peers) == 1
                assert "new association" in str(ended[0])
    run(main(), caplog)


def test_concurrent_receivers_on_one_client(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with await dtls.aio.serve(echo, HOST, 0, server_config()) as server, \
                await dtls.aio.connect(*server.address, client_config()) as client:
            receivers = [asyncio.create_task(client.recv()) for _ in range(3)]
            cancelled = asyncio.create_task(client.recv())
            await asyncio.sleep(0.01)
            cancelled.cancel()  # one waiter giving up must not starve the others
            for message in (b"a", b"b", b"c"):
                client.send(message)
            assert sorted(await asyncio.gather(*receivers)) == [b"a", b"b", b"c"]
            with pytest.raises(asyncio.CancelledError):
                await cancelled
    run(main(), caplog)


def test_idle_peers_are_closed_and_forgotten(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

        async def handler(peer: dtls.aio.DtlsPeer) -> None:
            try:
                while True:
                    peer.send(await peer.recv())
            except ConnectionClosed as exc:
                ended.set_result(exc)

        async with await dtls.aio.serve(handler, HOST, 0, server_config(),
                                        idle_timeout=0.3) as server, \
                await dtls.aio.connect(*server.address, client_config()) as client:
            for _ in range(4):  # traffic keeps it alive past the idle timeout
                client.send(b"ping")
                assert await client.recv() == b"ping"
                await asyncio.sleep(0.1)
            start = time.monotonic()
            exc = await asyncio.wait_for(ended, 5)
            assert "idle timeout" in str(exc) and time.monotonic() - start < 1.0
            assert server.peers == [] and server.stats["idle_closed"] == 1
            with pytest.raises(ConnectionClosed) as info:
                await client.recv()  # the server's close_notify
            assert info.value.by_peer
    run(main(), caplog)


@pytest.mark.parametrize("client_kind", ["asyncio", "blocking"])
@pytest.mark.parametrize("case", FAILURE_CASES, ids=lambda case: case.name)
def test_rejected_handshake_is_reported_on_both_sides(
        case: FailureCase, client_kind: str, pki: PKI,
        caplog: pytest.LogCaptureFixture) -> None:
    """Wrong pinned fingerprint, expired certificate, unknown CA, wrong PSK: the client
    raises the specific dtls.errors exception with a message saying what to fix; the
    server never runs the handler, calls on_handshake_failed with its side's exception
    (same alert) and counts the failure by alert in its stats."""
    calls: list[object] = []
    failures: list[tuple[Any, BaseException]] = []

    async def handler(peer: dtls.aio.DtlsPeer) -> None:
        calls.append(peer)

    async def main() -> None:
        async with await dtls.aio.serve(
                handler, HOST, 0, case.server(pki),
                on_handshake_failed=lambda addr, exc: failures.append((addr, exc))) as server:
            config = case.client(pki)
            if client_kind == "asyncio":
                with pytest.raises(case.client_error) as info:
                    await dtls.aio.connect(*server.address, config)
                error: BaseException | None = info.value
            else:
                error = await asyncio.to_thread(blocking_handshake_error, server.address,
                                                config)
            check_client_error(case, error)
            for _ in range(200):
                if failures:
                    break
                await asyncio.sleep(0.01)
            [(address, server_error)] = failures
            assert address[0] == HOST
            assert type(server_error) is case.server_error
            assert server_error.description is case.alert  # type: ignore[attr-defined]
            stats = server.stats
            assert stats["handshakes_failed"] == 1 and stats["handshake_failures"] == 1
            assert stats["handshake_failure_reasons"] == {case.server_reason: 1}
            assert stats["handshakes_completed"] == 0 and stats["sessions"] == 0
            assert server.peers == []
        assert calls == []
    run(main(), caplog)


def test_send_many_and_recv_many_both_ways(caplog: pytest.LogCaptureFixture) -> None:
    async def batch_echo(peer: dtls.aio.DtlsPeer) -> None:
        got: list[bytes] = []
        while len(got) < 20:
            got += await peer.recv_many()
        peer.send_many([p.upper() for p in got])

    async def main() -> None:
        async with await dtls.aio.serve(batch_echo, HOST, 0, server_config()) as server, \
                await dtls.aio.connect(*server.address, client_config()) as client:
            payloads = [b"msg %d" % i for i in range(20)]
            client.send_many(payloads)
            # With the C record layer the batch went out in one C call on the socket.
            assert (client._protocol.raw is not None) is (dtls.record_backend == "c")
            back: list[bytes] = []
            while len(back) < 20:
                back += await client.recv_many()
            assert back == [p.upper() for p in payloads]
            with pytest.raises(ValueError):
                client.send_many([bytes(2**14 + 1)])
    run(main(), caplog)
