"""dtls.sock's batch API and one-peer server side: send_many / recv_many, dtls.accept,
and the batched C socket path against the sans-IO path, over real loopback UDP.

Both ends are DtlsSockets in two threads (client: dtls.connect, server: dtls.accept);
every wait is bounded by socket timeouts.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from frontend_testing import client_config, fast, server_config

import dtls
from dtls.errors import ConnectionClosed, DtlsError
from dtls.recordbase import MAX_PLAINTEXT
from dtls.sock import DtlsSocket, PayloadList

C_PATH = dtls.record_backend == "c"


@contextmanager
def pair(**server_kw: Any) -> Iterator[tuple[DtlsSocket, DtlsSocket]]:
    """A handshaken (client, server) pair of DtlsSockets over loopback."""
    server = dtls.accept(("127.0.0.1", 0), fast(server_config(**server_kw)), timeout=5)
    port = server.getsockname()[1]
    errors: list[BaseException] = []

    def handshake() -> None:
        try:
            server.do_handshake()
        except Exception as exc:  # noqa: BLE001  (reported by the main thread)
            errors.append(exc)

    thread = threading.Thread(target=handshake, daemon=True)
    thread.start()
    client = dtls.connect(("127.0.0.1", port), fast(client_config()), timeout=5)
    try:
        client.do_handshake()
        thread.join(10)
        assert not thread.is_alive() and not errors, errors
        yield client, server
    finally:
        client.close()
        server.close()


def received(sock: DtlsSocket, count: int) -> list[bytes]:
    """recv_many until `count` payloads arrived (copied: the views are scratch)."""
    out: list[bytes] = []
    while len(out) < count:
        out.extend(bytes(p) for p in sock.recv_many())
    return out


def test_accept_serves_one_client_and_connects_to_it() -> None:
    with pair() as (client, server):
        assert server.handshake is not None and client.handshake is not None
        assert server.getpeername() == client.getsockname()
        assert server.cipher_suite == client.cipher_suite
        client.send(b"ping")
        assert server.recv(100) == b"ping"
        server.send(b"pong")
        assert client.recv(100) == b"pong"


def test_fast_path_is_used_with_the_c_record_layer() -> None:
    with pair() as (client, server):
        assert (client._fast is not None) is C_PATH
        assert (server._fast is not None) is C_PATH


@pytest.mark.parametrize("size", [0, 1, 100, 1200, MAX_PLAINTEXT])
def test_send_many_recv_many_round_trip(size: int) -> None:
    # Few enough that the receiver's default socket buffer holds them all: it is not
    # reading while they are sent, and UDP drops what does not fit.
    count = min(50, 100_000 // max(size, 1))
    payloads = [bytes([i % 251]) * size for i in range(count)]
    with pair() as (client, server):
        assert client.send_many(payloads) == len(payloads)
        assert received(server, len(payloads)) == payloads
        back = payloads[:7]
        assert server.send_many(back) == len(back)
        assert received(client, len(back)) == back


def test_mixed_single_and_batch_calls_keep_order_and_sequence_numbers() -> None:
    with pair() as (client, server):
        sent = []
        for i in range(20):
            if i % 3 == 0:
                batch = [f"b{i}.{j}".encode() for j in range(5)]
                client.send_many(batch)
                sent += batch
            else:
                client.send(f"s{i}".encode())
                sent.append(f"s{i}".encode())
        got = [server.recv(100) for _ in range(3)]  # recv then recv_many: inbox first
        got += received(server, len(sent) - 3)
        assert got == sent
        assert server.stats["record_replay"] == 0 and server.stats["record_bad_mac"] == 0


def test_recv_many_view_iterates_and_indexes() -> None:
    with pair() as (client, server):
        client.send_many([b"a", b"bb", b"ccc"])
        got: list[bytes] = []
        while len(got) < 3:
            view = server.recv_many()
            assert len(view) >= 1
            assert [bytes(view.payload(i)) for i in range(len(view))] == [bytes(p) for p in view]
            got += [bytes(p) for p in view]
        assert got == [b"a", b"bb", b"ccc"]


def test_close_notify_is_noticed_on_the_fast_path() -> None:
    with pair() as (client, server):
        client.send_many([b"last", b"words"])
        client.close()
        assert received(server, 2) == [b"last", b"words"]
        with pytest.raises(ConnectionClosed):
            server.recv_many()
        with pytest.raises(DtlsError):
            server.send(b"after close")


def test_forged_and_replayed_records_are_dropped_and_counted() -> None:
    with pair() as (client, server):
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # Capture one genuine record by sending it to a socket of our own.
            raw.bind(("127.0.0.1", 0))
            client.send(b"genuine")
            assert server.recv(100) == b"genuine"
            state = client.connection.application_states()
            assert state is not None
            record = state[1].seal(23, b"captured")
            forged = bytearray(record)
            forged[-1] ^= 1
            # Replay and forgery arrive from the client's own address (spoofing is the
            # attacker's job; here the client socket sends them for it).
            client._sock.send(bytes(forged))
            client._sock.send(record)
            client._sock.send(record)  # a replay
            client.send(b"after")
            got = received(server, 2)
            assert got == [b"captured", b"after"]
            assert server.stats["record_bad_mac"] == 1
            assert server.stats["record_replay"] == 1
        finally:
            raw.close()


def test_send_many_rejects_oversized_payloads_before_sending_any() -> None:
    with pair() as (client, server):
        with pytest.raises(ValueError):
            client.send_many([b"ok", bytes(MAX_PLAINTEXT + 1)])
        client.send(b"next")
        assert server.recv(100) == b"next"  # nothing from the refused batch arrived


def test_recv_many_times_out_and_nonblocking_raises_blocking_io() -> None:
    with pair() as (client, server):
        server.settimeout(0.05)
        with pytest.raises(TimeoutError):
            server.recv_many()
        server.settimeout(0)
        with pytest.raises(BlockingIOError):
            server.recv_many()
        with pytest.raises(BlockingIOError):
            server.recv(10)
        client.send(b"x")
        server.settimeout(5)
        assert received(server, 1) == [b"x"]


def test_send_many_waits_for_a_full_send_buffer() -> None:
    with pair() as (client, server):
        client._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        payloads = [i.to_bytes(2, "big") * 500 for i in range(400)]  # all distinct
        done: list[int] = []
        reader: list[bytes] = []

        def read() -> None:
            while len(reader) < len(payloads):
                try:
                    reader.extend(bytes(p) for p in server.recv_many())
                except (TimeoutError, DtlsError):
                    return

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        done.append(client.send_many(payloads))
        thread.join(10)
        assert done == [len(payloads)]
        # Loopback may still drop under pressure (the receive buffer is the limit); what
        # arrives arrives in order, each intact.
        assert reader and all(p in payloads for p in reader)
        indices = [payloads.index(p) for p in reader]
        assert indices == sorted(indices)


def test_payload_list_interface() -> None:
    view = PayloadList([b"a", b"b"])
    assert len(view) == 2 and list(view) == [b"a", b"b"] and view.payload(1) == b"b"


def test_accept_rejects_a_client_configuration_and_wrap_server_checks_type() -> None:
    with pytest.raises(ValueError):
        dtls.accept(("127.0.0.1", 0), client_config())
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(ValueError):
            DtlsSocket.wrap_server(tcp, server_config())
    finally:
        tcp.close()


def test_accept_ignores_cookieless_hellos_from_others_until_a_client_proves_itself() -> None:
    server = dtls.accept(("127.0.0.1", 0), fast(server_config()), timeout=5)
    port = server.getsockname()[1]
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        junk.sendto(b"\x16\xfe\xfd" + bytes(10), ("127.0.0.1", port))  # not a ClientHello
        result: list[Any] = []
        thread = threading.Thread(target=lambda: result.append(server.do_handshake()),
                                  daemon=True)
        thread.start()
        with dtls.connect(("127.0.0.1", port), fast(client_config()), timeout=5) as client:
            client.do_handshake()
            thread.join(10)
            assert result == [None]
            client.send(b"hello")
            assert server.recv(100) == b"hello"
            assert server.getpeername() == client.getsockname()
    finally:
        junk.close()
        server.close()


@pytest.mark.skipif(not C_PATH, reason="the batched socket path needs the C record layer")
def test_fast_and_sans_io_paths_interoperate() -> None:
    """A fast-path sender and a receiver forced onto the sans-IO path agree."""
    with pair() as (client, server):
        server._fast = None  # the sans-IO path from here on
        server._sock.setblocking(True)
        payloads = [bytes([i]) * i for i in range(1, 60)]
        client.send_many(payloads)
        got = received(server, len(payloads))
        assert got == payloads
        assert server.stats["record_replay"] == 0


def test_forward_to_relays_payloads_between_two_associations() -> None:
    """A relay with two accepted sockets: A's records re-protected for B (in C on the
    C path), close_notify and forgeries still seen by the relay's connection."""
    with pair() as (client_a, relay_a), pair() as (client_b, relay_b):
        payloads = [b"frame %d " % i + bytes(200) for i in range(80)]
        client_a.send_many(payloads)
        forwarded = 0
        while forwarded < len(payloads):
            forwarded += relay_a.forward_to(relay_b)
        assert forwarded == len(payloads)
        assert received(client_b, len(payloads)) == payloads
        # A forged record is refused and counted, not forwarded.
        states = client_a.connection.application_states()
        assert states is not None
        forged = bytearray(states[1].seal(23, b"forged"))
        forged[-1] ^= 1
        client_a._sock.send(bytes(forged))
        client_a.send(b"genuine")
        assert relay_a.forward_to(relay_b) == 1  # the forgery alone never returns
        assert received(client_b, 1) == [b"genuine"]
        assert relay_a.stats["record_bad_mac"] == 1
        client_a.close()
        with pytest.raises(ConnectionClosed):
            relay_a.forward_to(relay_b)
