"""Handshakes and data under network faults (issue 6 "Faults"), with dtls.faults.

Most scenarios run two sans-IO connections over `SimulatedPath` (virtual clock, seeded):
many seeds per scenario, each run required to complete the handshake and then echo
data correctly (the application retries a lost echo, as a UDP application would) within
its deadline.  One scenario runs over real UDP through `UdpFaultProxy` against
`openssl s_server`.  bench/faults.py reports completion times and retransmissions for
the same scenarios.
"""

from __future__ import annotations

import shutil
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from dtls_testing import Events, PeerProcess, drive_udp, free_udp_port, make_certificate, write_pki

from dtls.config import DtlsConfiguration
from dtls.connection import Connection, HandshakeState
from dtls.events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from dtls.faults import MAX_HELD, FaultModel, Faults, SimulatedPath, UdpFaultProxy
from dtls.verify import fingerprint_sha256

SEEDS = range(40)
HANDSHAKE_DEADLINE = 120.0  # virtual seconds (the configuration's handshake_timeout)


@pytest.fixture(scope="module")
def big_identity() -> tuple[list[Any], Any]:
    """An RSA-2048 leaf issued by an RSA CA: a Certificate message of ~1.6 KiB."""
    ca = make_certificate("Fault CA", ca=True, key_type="rsa")
    leaf, key = make_certificate("localhost", issuer=ca, key_type="rsa")
    return [leaf, ca[0]], key


@pytest.fixture(scope="module")
def small_identity() -> tuple[list[Any], Any]:
    cert, key = make_certificate("localhost")
    return [cert], key


def configs(identity: tuple[list[Any], Any], **kw: Any) -> tuple[DtlsConfiguration,
                                                                DtlsConfiguration]:
    chain, key = identity
    client = DtlsConfiguration(server_name="localhost",
                               pinned_sha256=(fingerprint_sha256(chain[0]),), **kw)
    server = DtlsConfiguration(is_client=False, certificate_chain=chain, private_key=key, **kw)
    return client, server


def start(client_cfg: DtlsConfiguration, server_cfg: DtlsConfiguration, *, up: Faults,
          down: Faults, seed: int) -> SimulatedPath:
    path = SimulatedPath(Connection(client_cfg, peer_address=("192.0.2.2", 4433)),
                         Connection(server_cfg), up=up, down=down, seed=seed)
    path.client.connection.connect(path.now)
    return path


def completed(path: SimulatedPath) -> bool:
    return any(isinstance(e, HandshakeCompleted) for e in path.client.events) and \
        any(isinstance(e, HandshakeCompleted) for e in path.server.events)


def terminated(path: SimulatedPath) -> list[Any]:
    return [e for ep in (path.client, path.server) for e in ep.events
            if isinstance(e, ConnectionTerminated)]


def echo_until_done(path: SimulatedPath, messages: int = 5, retry: float = 0.5) -> None:
    """The client sends each message until its echo comes back intact (UDP semantics:
    the application retries); the server echoes every payload it receives."""
    client, server = path.client, path.server
    for i in range(messages):
        message = b"message %d " % i + bytes(range(128))  # fits the smallest MTU cap
        for _attempt in range(200):
            client.connection.send(message)
            path.advance(retry)
            for event in server.events:
                if isinstance(event, ApplicationData):
                    assert event.data.startswith(b"message "), "corrupted payload delivered"
                    server.connection.send(event.data)
            server.events = [e for e in server.events if not isinstance(e, ApplicationData)]
            path.advance(retry)
            echoes = [e.data for e in client.events if isinstance(e, ApplicationData)]
            client.events = [e for e in client.events if not isinstance(e, ApplicationData)]
            assert all(e.startswith(b"message ") for e in echoes), "corrupted echo delivered"
            if message in echoes:
                break
        else:
            raise AssertionError(f"message {i} never echoed")


def run_scenario(client_cfg: DtlsConfiguration, server_cfg: DtlsConfiguration, *,
                 up: Faults, down: Faults, seed: int, echo: bool = True) -> SimulatedPath:
    path = start(client_cfg, server_cfg, up=up, down=down, seed=seed)
    done = path.run(lambda: completed(path) or bool(terminated(path)),
                    max_time=HANDSHAKE_DEADLINE + 1)
    assert done and completed(path), (seed, terminated(path), path.now,
                                      path.client.connection.stats,
                                      path.server.connection.stats)
    assert path.now <= HANDSHAKE_DEADLINE
    if echo:
        echo_until_done(path)
    assert not terminated(path), terminated(path)
    return path


# -- the fault model itself ------------------------------------------------------------


def test_fault_model_is_reproducible_from_its_seed() -> None:
    faults = Faults(drop=0.2, duplicate=0.2, reorder=0.2, corrupt=0.1, pack=0.1)
    runs = []
    for _ in range(2):
        model = FaultModel(faults, seed=7)
        out = []
        for i in range(500):
            model.submit(b"d%03d" % i, i * 0.001)
            out += model.release(i * 0.001)
        out += model.release(10.0)
        runs.append(out)
    assert runs[0] == runs[1]
    assert FaultModel(faults, seed=8) is not None
    model = FaultModel(faults, seed=7)
    assert model.rng.random() == FaultModel(faults, seed=7).rng.random()


def test_fault_model_rates_mtu_cap_and_packing() -> None:
    model = FaultModel(Faults(drop=0.3), seed=1)
    delivered = 0
    for i in range(10_000):
        model.submit(b"x", 0.0)
        delivered += len(model.release(0.0))
    assert 2700 < model.stats["dropped"] < 3300
    assert delivered == 10_000 - model.stats["dropped"]

    held = FaultModel(Faults(delay=1.0), seed=1)  # nothing released: the bound holds
    for i in range(MAX_HELD + 10):
        held.submit(b"x", 0.0)
    assert len(held) == MAX_HELD and held.stats["dropped_queue_full"] == 10

    capped = FaultModel(Faults(mtu=100), seed=1)
    capped.submit(bytes(100), 0.0)
    capped.submit(bytes(101), 0.0)
    assert capped.release(0.0) == [bytes(100)] and capped.stats["dropped_mtu"] == 1

    packer = FaultModel(Faults(pack=1.0, pack_window=0.01, mtu=250), seed=1)
    for i in range(5):
        packer.submit(bytes([i]) * 100, 0.0)
    packer.submit(bytes(10), 0.5)
    out = packer.release(1.0)
    assert all(len(d) <= 250 for d in out)
    assert b"".join(out) == b"".join(bytes([i]) * 100 for i in range(5)) + bytes(10)
    assert len(out) < 6

    flipped = FaultModel(Faults(corrupt=1.0), seed=3)
    flipped.submit(bytes(64), 0.0)
    [d] = flipped.release(0.0)
    assert sum(b.bit_count() for b in d) == 1

    delayed = FaultModel(Faults(delay=0.15), seed=1)
    delayed.submit(b"a", 1.0)
    assert delayed.release(1.1) == [] and delayed.next_time() == pytest.approx(1.15)
    assert delayed.release(1.15) == [b"a"]


def test_faults_validate() -> None:
    for bad in (Faults(drop=1.5), Faults(delay=-1), Faults(mtu=0), Faults(pack=-0.1)):
        with pytest.raises(ValueError):
            bad.validate()


# -- scenarios ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_20_percent_drop_duplicate_reorder_both_directions(small_identity, seed: int) -> None:
    faults = Faults(drop=0.2, duplicate=0.2, reorder=0.2, reorder_delay=0.3, delay=0.01)
    run_scenario(*configs(small_identity), up=faults, down=faults, seed=seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_30_percent_drop(small_identity, seed: int) -> None:
    faults = Faults(drop=0.3, delay=0.01)
    run_scenario(*configs(small_identity), up=faults, down=faults, seed=seed)


@pytest.mark.parametrize("mtu", [576, 256])
@pytest.mark.parametrize("seed", range(10))
def test_mtu_cap_fragments_a_large_certificate_chain(big_identity, mtu: int, seed: int) -> None:
    chain_bytes = sum(len(c.public_bytes(Encoding.DER)) for c in big_identity[0])
    assert chain_bytes > 1024
    client_cfg, server_cfg = configs(big_identity, max_datagram_size=mtu)
    faults = Faults(mtu=mtu, drop=0.05, reorder=0.1, delay=0.01)
    path = run_scenario(client_cfg, server_cfg, up=faults, down=faults, seed=seed)
    for model in path.models.values():
        assert model.stats["dropped_mtu"] == 0  # we never built a datagram too large


@pytest.mark.parametrize("seed", range(10))
def test_path_mtu_black_hole_shrinks_handshake_datagrams(big_identity, seed: int) -> None:
    """Datagrams above 508 bytes vanish; configured for 1400, the stack must back off to
    smaller datagrams after unanswered retransmissions (RFC 6347 4.1.1.1)."""
    client_cfg, server_cfg = configs(big_identity, max_datagram_size=1400)
    faults = Faults(mtu=508, delay=0.01)
    path = run_scenario(client_cfg, server_cfg, up=faults, down=faults, seed=seed, echo=False)
    assert path.models["down"].stats["dropped_mtu"] > 0  # the black hole was hit
    assert path.server.connection.stats["datagram_size_reduced"] >= 1


@pytest.mark.parametrize("seed", range(5))
def test_every_datagram_duplicated(small_identity, seed: int) -> None:
    faults = Faults(duplicate=1.0, delay=0.01)
    path = run_scenario(*configs(small_identity), up=faults, down=faults, seed=seed)
    stats = path.server.connection.stats + path.client.connection.stats
    assert stats["record_replay"] > 0  # the duplicated application records were refused
    assert not terminated(path)


def test_corrupted_records_are_dropped_and_packed_datagrams_split(small_identity) -> None:
    """After the handshake, bit flips never reach the application (they fail
    authentication and are counted); coalesced datagrams are split into their records."""
    totals: dict[str, int] = {"corrupted": 0, "packed": 0, "bad_mac": 0}
    for seed in range(10):
        faults = Faults(pack=0.3, drop=0.05, delay=0.01)
        # Small datagrams: flights span several, which the path then coalesces.
        path = run_scenario(*configs(small_identity, max_datagram_size=256), up=faults,
                            down=faults, seed=seed, echo=False)
        for model in path.models.values():
            model.faults = replace(model.faults, corrupt=0.2)
        echo_until_done(path)
        for model in path.models.values():
            totals["corrupted"] += model.stats["corrupted"]
            totals["packed"] += model.stats["packed"]
        for endpoint in (path.client, path.server):
            totals["bad_mac"] += endpoint.connection.stats["record_bad_mac"]
    assert totals["corrupted"] > 0 and totals["packed"] > 0, totals
    assert totals["bad_mac"] > 0, totals


def test_corruption_during_the_handshake_completes_or_fails_cleanly(small_identity) -> None:
    """Epoch-0 handshake messages are not authenticated until Finished: a flipped bit in
    a Certificate is a wrong certificate, a fatal alert (as with any stack).  Either way
    the run ends, on both sides, well before the deadline: never a hang."""
    outcomes = {"completed": 0, "failed": 0}
    for seed in range(20):
        faults = Faults(corrupt=0.2, delay=0.01)
        client_cfg, server_cfg = configs(small_identity, handshake_timeout=30)
        path = start(client_cfg, server_cfg, up=faults, down=faults, seed=seed)
        assert path.run(lambda p=path: completed(p) or bool(terminated(p)), max_time=31)
        outcomes["completed" if completed(path) else "failed"] += 1
    assert outcomes["completed"] > 0, outcomes


RESUME_AT = 100.0  # virtual time of resumed handshakes: after the session was made


def _path(client_cfg: DtlsConfiguration, server_cfg: DtlsConfiguration, session: Any) -> SimulatedPath:
    path = SimulatedPath(Connection(client_cfg, peer_address=("192.0.2.2", 4433)),
                         Connection(server_cfg), up=Faults(delay=0.01), down=Faults(delay=0.01),
                         now=RESUME_AT if session is not None else 0.0)
    return path


def _handshake_datagrams(client_cfg: DtlsConfiguration, server_cfg: DtlsConfiguration,
                         session: Any = None) -> tuple[int, Any]:
    """How many datagrams a clean handshake sends (both directions), and its session."""
    path = _path(client_cfg, server_cfg, session)
    path.client.connection.connect(path.now, session=session)
    assert path.run(lambda: completed(path), max_time=path.now + 5)
    [done] = [e for e in path.client.events if isinstance(e, HandshakeCompleted)]
    assert done.resumed is (session is not None)
    return sum(path.sent[k] for k in ("up_datagrams", "down_datagrams")), \
        path.client.connection.session


@pytest.mark.parametrize("abbreviated", [False, True], ids=["full", "resumed"])
def test_each_handshake_datagram_dropped_once(small_identity, abbreviated: bool) -> None:
    """For every position in a full and an abbreviated handshake, drop exactly that one
    datagram: the handshake still completes (retransmission), resumed if it was."""
    client_cfg, server_cfg = configs(small_identity, initial_retransmit_timeout=0.5)
    count, session = _handshake_datagrams(client_cfg, server_cfg)
    if not abbreviated:
        session = None
    else:
        count, _ = _handshake_datagrams(client_cfg, server_cfg, session)
    assert count >= 5
    for position in range(count):
        path = _path(client_cfg, server_cfg, session)
        seen = [0]

        def drop_once(direction: str, datagram: bytes, position: int = position,
                      seen: list[int] = seen) -> bytes | None:
            index = seen[0]
            seen[0] += 1
            return None if index == position else datagram

        path.tap = drop_once
        path.client.connection.connect(path.now, session=session)
        assert path.run(lambda p=path: completed(p) or bool(terminated(p)),
                        max_time=path.now + 30), (position, path.now)
        assert completed(path), (position, terminated(path))
        [done] = [e for e in path.client.events if isinstance(e, HandshakeCompleted)]
        assert done.resumed is abbreviated, (position, count)
        assert seen[0] > count  # the drop cost a retransmission
        echo_until_done(path, messages=1)
        assert path.client.connection.state is HandshakeState.ESTABLISHED


# -- real UDP against openssl ------------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl binary not found on PATH")
@pytest.mark.parametrize("seed", [1, 2])
def test_our_client_through_the_fault_proxy_against_openssl_s_server(tmp_path: Path,
                                                                     seed: int) -> None:
    """20% drop + 20% duplicate + 20% reorder both ways, on real UDP, openssl serving."""
    pki = write_pki(tmp_path)
    port = free_udp_port()
    server = PeerProcess([str(shutil.which("openssl")), "s_server", "-dtls1_2",
                          "-cert", pki["cert_pem"], "-key", pki["key_pem"],
                          "-accept", f"127.0.0.1:{port}", "-naccept", "1"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    faults = Faults(drop=0.2, duplicate=0.2, reorder=0.2, reorder_delay=0.1, delay=0.002)
    try:
        server.wait_for("ACCEPT")
        with UdpFaultProxy(("127.0.0.1", port), up=faults, down=faults, seed=seed) as proxy:
            sock.connect(proxy.address)
            cfg = DtlsConfiguration(server_name="localhost", ca_certificates=(pki["ca_cert"],),
                                    initial_retransmit_timeout=0.3, handshake_timeout=60)
            client = Connection(cfg, peer_address=proxy.address)
            events = Events()
            client.connect(time.monotonic())
            drive_udp(client, sock, until=events.done(), on_event=events, timeout=60)
            assert events.of_type(HandshakeCompleted), (events.items, client.stats,
                                                        proxy.stats(), server.output)
            # Data both ways despite the faults: resend until openssl prints it.
            for _ in range(50):
                client.send(b"through the faults\n")
                try:
                    drive_udp(client, sock, until=lambda: "through the faults" in server.output,
                              on_event=events, timeout=0.3)
                    break
                except TimeoutError:
                    continue
            assert "through the faults" in server.output, server.output
            stats = proxy.stats()
            assert stats["up"]["dropped"] + stats["down"]["dropped"] > 0
    finally:
        sock.close()
        server.stop()
