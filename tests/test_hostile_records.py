"""Hostile record-layer input through Connection.receive_datagram (issue 6, "Hostile input").

Every case must end in a silent drop counted in `Connection.stats` (RFC 6347 4.1.2.7) or
the right alert; never an exception, a delivered ApplicationData, or a change of state:
where the RFC says drop, the handshake state, epochs, replay windows (highest_seq),
write sequence numbers, reassembly buffer, deferred records, timers and queued output
are asserted unchanged (`snapshot`).

Victims: an established pair (both roles), a server mid-handshake (bound to the client,
waiting for its ClientKeyExchange), a client mid-handshake (waiting for the ServerHello),
and the stateless listener.  The helpers at the top are shared with
test_hostile_handshake.py and test_state_machine_attacks.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from dtls_testing import CLIENT_ADDR, SERVER_ADDR, Link, make_certificate

from dtls.config import SUPPORTED_CIPHER_SUITES, DtlsConfiguration
from dtls.connection import Connection, HandshakeState
from dtls.events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from dtls.record import split_records
from dtls.recordbase import DTLS1_0, DTLS1_2, MAX_FRAGMENT, ContentType
from dtls.suites import CipherSuite
from dtls.verify import fingerprint_sha256

# -- shared helpers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity():
    return make_certificate("localhost")


def make_pair(identity, *, client: dict | None = None, server: dict | None = None,
              **link_args: Any) -> Link:
    """As tests/test_connection.py's make_pair (copied: test modules stay independent)."""
    cert, key = identity
    client_config = replace(DtlsConfiguration(server_name="localhost",
                                              pinned_sha256=(fingerprint_sha256(cert),)),
                            **(client or {}))
    server_config = replace(DtlsConfiguration(is_client=False, certificate_chain=[cert],
                                              private_key=key), **(server or {}))
    return Link(Connection(client_config, peer_address=SERVER_ADDR), Connection(server_config),
                **link_args)


def both_completed(link: Link) -> bool:
    return bool(link.client.of_type(HandshakeCompleted) and link.server.of_type(HandshakeCompleted))


def handshake(link: Link, max_time: float = 30.0) -> None:
    link.client.connection.connect(link.now)
    link.run(lambda: both_completed(link), max_time=max_time)
    assert both_completed(link), (link.client.connection.stats, link.server.connection.stats)
    link.run(lambda: False, max_time=link.now + 0.1)  # settle: nothing left in flight


def established(identity, **kwargs: Any) -> Link:
    link = make_pair(identity, **kwargs)
    handshake(link)
    # Application data both ways: the final flight is released and both windows moved.
    link.client.connection.send(b"warm-up")
    link.server.connection.send(b"warm-up")
    link.run(lambda: bool(link.client.of_type(ApplicationData)
                          and link.server.of_type(ApplicationData)))
    link.client.events.clear()
    link.server.events.clear()
    return link


def record(content_type: int, payload: bytes, *, seq: int = 100, epoch: int = 0,
           version: int = DTLS1_2, length: int | None = None) -> bytes:
    """A record header (with `length` overridable, to lie) and payload, no protection."""
    n = len(payload) if length is None else length
    return (bytes([content_type]) + version.to_bytes(2, "big") + epoch.to_bytes(2, "big")
            + seq.to_bytes(6, "big") + n.to_bytes(2, "big") + payload)


def snapshot(conn: Connection) -> dict[str, Any]:
    """Everything a dropped record must not change (stats excluded: drops are counted)."""
    reassembler = conn._reassembler
    return {
        "state": conn.state,
        "flight_state": conn._flight_state,
        "write_epoch": conn._write_epoch,
        "peer_epoch": conn._peer_epoch,
        "read_epochs": sorted(conn._read_states),
        # Epoch 0 has no replay window (window_size 0): its highest_seq means nothing.
        "read_highest": {e: s.highest_seq for e, s in conn._read_states.items()
                         if s.window_size},
        "write_next_seq": {e: s.next_seq for e, s in conn._write_states.items()},
        "next_message_seq": reassembler.next_message_seq,
        "pending": reassembler.pending_message_seqs,
        "buffered": reassembler.buffered_bytes,
        "deferred": len(conn._deferred),
        "events": len(conn._events),
        "datagrams": len(conn._datagrams),
        "timer": conn.get_timer(),
        "peer_address": conn.peer_address,
        "send_message_seq": conn._send_message_seq,
    }


def drops(conn: Connection) -> int:
    """Total silent drops and other counted events."""
    return sum(conn.stats.values())


def assert_dropped(conn: Connection, datagram: bytes, addr: Any, now: float, *,
                   counted: bool = True) -> None:
    """Feed one hostile datagram: no exception, no state change, counted in stats."""
    before, count_before = snapshot(conn), drops(conn)
    conn.receive_datagram(datagram, addr, now)
    assert snapshot(conn) == before, (datagram.hex(), conn.stats)
    if counted:
        assert drops(conn) > count_before, (datagram.hex(), conn.stats)


def app_data_events(endpoint: Any) -> list[bytes]:
    endpoint.drain_events()
    return [e.data for e in endpoint.of_type(ApplicationData)]


def sealed(sender: Connection, content_type: int, payload: bytes) -> bytes:
    """A genuine record from `sender` in its current write epoch (its seq moves on)."""
    return sender._write_states[sender._write_epoch].seal(content_type, payload)


def mid_handshake_server(identity, **kwargs: Any) -> tuple[Link, bytes]:
    """A server that accepted a cookie and sent flight 4; returns (link, that flight).
    The client has not seen flight 4 yet."""
    link = make_pair(identity, **kwargs)
    client, server = link.client.connection, link.server.connection
    client.connect(0.0)
    (hello, _), = client.datagrams_to_send(0.0)
    server.receive_datagram(hello, CLIENT_ADDR, 0.0)
    (hvr, _), = server.datagrams_to_send(0.0)
    client.receive_datagram(hvr, SERVER_ADDR, 0.0)
    (hello2, _), = client.datagrams_to_send(0.0)
    server.receive_datagram(hello2, CLIENT_ADDR, 0.0)
    assert server.state in (HandshakeState.WAIT_CLIENT_KEY_EXCHANGE,
                            HandshakeState.WAIT_CLIENT_CERTIFICATE)  # (client auth)
    flight4 = b"".join(d for d, _ in server.datagrams_to_send(0.0))
    return link, flight4


def mid_handshake_client(identity) -> Link:
    """A client that sent its ClientHello and waits for the HelloVerifyRequest/ServerHello."""
    link = make_pair(identity)
    link.client.connection.connect(0.0)
    link.client.connection.datagrams_to_send(0.0)
    assert link.client.connection.state is HandshakeState.WAIT_SERVER_HELLO
    return link


# -- the hostile records -----------------------------------------------------------------


def garbage_datagrams(genuine: bytes) -> list[tuple[str, bytes]]:
    """Malformed datagrams derived from one genuine record (`genuine`)."""
    out: list[tuple[str, bytes]] = []
    for n in range(1, 13):  # every truncated header length (0 is tested separately)
        out.append((f"truncated-header-{n}", genuine[:n]))
    n = len(genuine) - 13
    for lie in (n + 1, n + 100, 0x3FFF, MAX_FRAGMENT, 0xFFFF):
        out.append((f"length-{lie}-past-end", genuine[:11] + lie.to_bytes(2, "big")
                    + genuine[13:]))
    out.append(("length-above-max-fragment", genuine[:11]
                + (MAX_FRAGMENT + 1).to_bytes(2, "big") + bytes(MAX_FRAGMENT + 1)))
    out.append(("truncated-body", genuine[:-1]))
    return out


ESTABLISHED_VICTIM = ["client", "server"]


@pytest.fixture(scope="module")
def est(identity) -> Link:
    """One established pair for the read-only cases (each asserts nothing changed)."""
    return established(identity)


@pytest.mark.parametrize("victim", ESTABLISHED_VICTIM)
def test_truncated_overlong_and_cut_records_on_an_established_pair(est, victim) -> None:
    link = est
    receiver = getattr(link, victim)
    sender = link.server if victim == "client" else link.client
    addr = sender.address
    genuine = sealed(sender.connection, ContentType.APPLICATION_DATA, b"real data")
    for _name, datagram in garbage_datagrams(genuine):
        assert_dropped(receiver.connection, datagram, addr, link.now)
    # An empty datagram carries no record: nothing to count, nothing changes.
    assert_dropped(receiver.connection, b"", addr, link.now, counted=False)
    assert not app_data_events(receiver)
    # The genuine record (its seq was never used by the mangled copies) still goes in.
    receiver.connection.receive_datagram(genuine, addr, link.now)
    assert app_data_events(receiver) == [b"real data"]
    receiver.events.clear()


@pytest.mark.parametrize("victim", ESTABLISHED_VICTIM)
def test_zero_length_records_of_every_type_and_epoch(est, victim) -> None:
    link = est
    receiver = getattr(link, victim)
    addr = (link.server if victim == "client" else link.client).address
    conn = receiver.connection
    for epoch in (0, 1, 2, 7):
        for content_type in (20, 21, 22, 23, 24, 0, 255):
            datagram = record(content_type, b"", epoch=epoch, seq=5)
            if epoch == 2:
                # The next epoch is held (bounded) until its keys exist; see below.
                before = len(conn._deferred)
                conn.receive_datagram(datagram, addr, link.now)
                assert len(conn._deferred) <= conn.configuration.max_buffered_records
                assert len(conn._deferred) >= before
                continue
            assert_dropped(conn, datagram, addr, link.now)
    assert conn.state is HandshakeState.ESTABLISHED and not app_data_events(receiver)
    conn._deferred.clear()  # leave the shared pair as it was


@pytest.mark.parametrize("victim", ESTABLISHED_VICTIM)
def test_unknown_content_types_and_versions(est, victim) -> None:
    link = est
    receiver = getattr(link, victim)
    sender = link.server if victim == "client" else link.client
    conn = receiver.connection
    for content_type in (0, 1, 19, 24, 25, 99, 255):  # 24 = heartbeat (RFC 6520, never ours)
        # Unprotected, epoch 0 and epoch 1 (garbage MAC) ...
        assert_dropped(conn, record(content_type, b"x" * 40), sender.address, link.now)
        assert_dropped(conn, record(content_type, b"x" * 40, epoch=1, seq=1 << 40),
                       sender.address, link.now)
    for content_type in (0, 24, 99, 255):
        # ... and authenticated by the genuine peer: dropped and counted, not an alert.
        highest_before = conn._read_states[1].highest_seq
        conn.receive_datagram(sealed(sender.connection, content_type, b"y" * 5),
                              sender.address, link.now)
        assert conn._read_states[1].highest_seq > highest_before  # it did authenticate
        assert conn.state is HandshakeState.ESTABLISHED
    assert conn.stats["unknown_content_type"] >= 4
    genuine = sealed(sender.connection, ContentType.APPLICATION_DATA, b"v")
    for version in (0x0000, 0x0301, 0x0303, 0x0304, DTLS1_0, 0xFEFC, 0xFFFF, 0x0100):
        datagram = genuine[:1] + version.to_bytes(2, "big") + genuine[3:]
        assert_dropped(conn, datagram, sender.address, link.now)
        # Epoch 0 takes any DTLS version, nothing else.
        assert_dropped(conn, record(ContentType.APPLICATION_DATA, b"plain", version=version),
                       sender.address, link.now)
    conn.receive_datagram(genuine, sender.address, link.now)
    assert app_data_events(receiver) == [b"v"]
    receiver.events.clear()


def test_future_and_past_epochs(identity) -> None:
    link = established(identity, server={"max_buffered_records": 4})
    server, client = link.server.connection, link.client.connection
    genuine = sealed(client, ContentType.APPLICATION_DATA, b"epoch test")
    for epoch in (3, 100, 0xFFFE, 0xFFFF):  # far future: no keys, never buffered
        forged = genuine[:3] + epoch.to_bytes(2, "big") + genuine[5:]
        assert_dropped(server, forged, CLIENT_ADDR, link.now)
    assert server.stats["unknown_epoch"] >= 4
    # The next epoch (2) is held for a ChangeCipherSpec that never comes: bounded.
    for i in range(20):
        forged = genuine[:3] + (2).to_bytes(2, "big") + (i + 1000).to_bytes(6, "big") \
            + genuine[11:]
        server.receive_datagram(forged, CLIENT_ADDR, link.now)
    assert len(server._deferred) == 4 and server.stats["deferred"] == 4
    assert server.state is HandshakeState.ESTABLISHED
    # Past epoch: epoch-0 application data after the handshake is never delivered.
    assert_dropped(server, record(ContentType.APPLICATION_DATA, b"old epoch"), CLIENT_ADDR,
                   link.now)
    assert server.stats["early_application_data"] == 1
    # Past-epoch alerts are ignored (stale_epoch_alert), fatal or not.
    for alert in (b"\x02\x28", b"\x01\x00", b"\x02\x14"):
        assert_dropped(server, record(ContentType.ALERT, alert), CLIENT_ADDR, link.now)
    server.receive_datagram(genuine, CLIENT_ADDR, link.now)
    assert app_data_events(link.server) == [b"epoch test"]


@pytest.mark.parametrize("path", ["fast", "split"])
def test_forged_huge_sequence_numbers_do_not_move_the_window(identity, path) -> None:
    """CVE-2016-2181: an unauthenticated record must not advance the replay window,
    or every genuine record after it is "too old".  `fast`: a one-record datagram
    (receive_datagram's application-data fast path); `split`: the same record after a
    zero-length record, so it goes through split_records."""
    link = established(identity)
    client, server = link.client.connection, link.server.connection
    window = server._read_states[1]
    highest = window.highest_seq
    template = sealed(client, ContentType.APPLICATION_DATA, b"x" * 32)
    prefix = b"" if path == "fast" else record(ContentType.HANDSHAKE, b"", epoch=0)
    for seq in ((1 << 48) - 1, (1 << 48) - 2, 1 << 47, highest + 64, highest + 1000,
                highest + 1):
        forged = bytearray(template)
        forged[5:11] = seq.to_bytes(6, "big")
        forged[-1] ^= 0x01  # and a tag that cannot match
        assert_dropped(server, prefix + bytes(forged), CLIENT_ADDR, link.now)
        assert window.highest_seq == highest
    assert server.stats["record_bad_mac"] == 6
    # Genuine records with normal sequence numbers are all still accepted.
    payloads = [b"after-%d" % i for i in range(5)]
    client.send_many(payloads)
    for datagram, _ in client.datagrams_to_send(link.now):
        server.receive_datagram(datagram, CLIENT_ADDR, link.now)
    server.receive_datagram(template, CLIENT_ADDR, link.now)  # sealed before the others
    assert app_data_events(link.server) == payloads + [b"x" * 32]
    assert server.stats["record_too_old"] == 0 and server.stats["record_replay"] == 0


SUITES = [CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
          CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
          CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256]


@pytest.mark.parametrize("suite, etm", [(s, False) for s in SUITES] + [(SUITES[2], True)],
                         ids=["gcm", "chacha", "cbc-mte", "cbc-etm"])
def test_every_bit_flip_of_a_protected_record_is_dropped(identity, suite, etm) -> None:
    assert suite in SUPPORTED_CIPHER_SUITES
    options: dict[str, Any] = {"cipher_suites": (suite,), "encrypt_then_mac": etm}
    if not etm and "CBC" in suite.name and hasattr(DtlsConfiguration(), "mac_then_encrypt"):
        options["mac_then_encrypt"] = True  # CBC without RFC 7366 is opt-in
    link = established(identity, client=options, server=options)
    client, server = link.client.connection, link.server.connection
    genuine = sealed(client, ContentType.APPLICATION_DATA, b"bit flips")
    for bit in range(len(genuine) * 8):
        forged = bytearray(genuine)
        forged[bit // 8] ^= 1 << (bit % 8)
        if bit // 8 in (3, 4) and forged[3:5] == b"\x00\x02":
            # Epoch 1 -> 2 is the next epoch: held (bounded), not read.  Clear it after.
            server.receive_datagram(bytes(forged), CLIENT_ADDR, link.now)
            assert server._deferred
            server._deferred.clear()
            continue
        assert_dropped(server, bytes(forged), CLIENT_ADDR, link.now)
    assert not app_data_events(link.server) and server.state is HandshakeState.ESTABLISHED
    server.receive_datagram(genuine, CLIENT_ADDR, link.now)
    assert app_data_events(link.server) == [b"bit flips"]


def test_multi_record_datagram_with_one_bad_record(identity) -> None:
    link = established(identity)
    client, server = link.client.connection, link.server.connection
    a = sealed(client, ContentType.APPLICATION_DATA, b"first")
    bad = bytearray(sealed(client, ContentType.APPLICATION_DATA, b"forged"))
    bad[20] ^= 0x40
    b = sealed(client, ContentType.APPLICATION_DATA, b"third")
    junk = [bytes(bad), record(99, b"?", epoch=1), record(ContentType.ALERT, b"\x02\x28"),
            record(ContentType.APPLICATION_DATA, b"epoch 0 data"),
            record(ContentType.HANDSHAKE, b"\x01\x02")]
    server.receive_datagram(a + b"".join(junk) + b, CLIENT_ADDR, link.now)
    assert app_data_events(link.server) == [b"first", b"third"]
    # The bit flip fails authentication; the 1-byte type-99 record is too short for GCM.
    assert server.stats["record_bad_mac"] == 1 and server.stats["record_malformed"] == 1
    assert server.stats["stale_epoch_alert"] == 1
    assert server.stats["early_application_data"] == 1
    assert server.state is HandshakeState.ESTABLISHED
    # A record whose length overruns stops the walk: what follows cannot be located.
    c = sealed(client, ContentType.APPLICATION_DATA, b"fourth")
    d = sealed(client, ContentType.APPLICATION_DATA, b"lost")
    overrun = record(ContentType.APPLICATION_DATA, b"", epoch=1, length=len(d) + 1)
    server.receive_datagram(c + overrun + d, CLIENT_ADDR, link.now)
    assert app_data_events(link.server)[-1:] == [b"fourth"]
    assert server.stats["malformed_trailing_bytes"] == 1
    server.receive_datagram(d, CLIENT_ADDR, link.now)  # d itself was never consumed
    assert app_data_events(link.server)[-1:] == [b"lost"]


@pytest.mark.parametrize("tail", [b"\x00", b"\x17", b"\x17\xfe\xfd", bytes(12), b"\xff" * 50])
def test_trailing_garbage_after_a_genuine_record(identity, tail) -> None:
    link = established(identity)
    client, server = link.client.connection, link.server.connection
    server.receive_datagram(sealed(client, ContentType.APPLICATION_DATA, b"ok") + tail,
                            CLIENT_ADDR, link.now)
    assert app_data_events(link.server) == [b"ok"]
    assert server.stats["malformed_trailing_bytes"] == 1


def test_genuine_record_replayed_and_from_another_address(est) -> None:
    link = est
    client, server = link.client.connection, link.server.connection
    genuine = sealed(client, ContentType.APPLICATION_DATA, b"once")
    server.receive_datagram(genuine, CLIENT_ADDR, link.now)
    assert app_data_events(link.server) == [b"once"]
    link.server.events.clear()
    for _ in range(3):
        assert_dropped(server, genuine, CLIENT_ADDR, link.now)
        assert_dropped(server, genuine + genuine, CLIENT_ADDR, link.now)
    assert_dropped(server, sealed(client, ContentType.APPLICATION_DATA, b"spoof"),
                   ("203.0.113.66", 4433), link.now)
    assert not app_data_events(link.server)


# -- the same input mid-handshake ---------------------------------------------------------


def hostile_set(genuine: bytes) -> list[tuple[str, bytes]]:
    """Malformed records that must be dropped whatever the connection's state."""
    cases = garbage_datagrams(genuine)
    for content_type in (0, 19, 24, 99, 255):
        cases.append((f"type-{content_type}", record(content_type, b"abc", epoch=0)))
    for version in (0x0303, 0x0000, 0xFFFF):
        cases.append((f"version-{version:#x}", genuine[:1] + version.to_bytes(2, "big")
                      + genuine[3:]))
    for epoch in (5, 0xFFFF):
        cases.append((f"epoch-{epoch}", genuine[:3] + epoch.to_bytes(2, "big") + genuine[5:]))
    cases += [
        ("empty-handshake", record(ContentType.HANDSHAKE, b"")),
        ("short-handshake-header", record(ContentType.HANDSHAKE, bytes(11))),
        ("fragment-past-record", record(ContentType.HANDSHAKE,
                                        bytes.fromhex("0b00010000030000000000ff") + b"z")),
        ("empty-alert", record(ContentType.ALERT, b"")),
        ("long-alert", record(ContentType.ALERT, b"\x02\x28\x00")),
        ("epoch0-app-data", record(ContentType.APPLICATION_DATA, b"early")),
    ]
    return cases


def test_hostile_records_mid_handshake_server(identity) -> None:
    link, flight4 = mid_handshake_server(identity)
    server = link.server.connection
    # A record shaped like the client's (epoch 0 handshake, its version).
    template = record(ContentType.HANDSHAKE, bytes(40), seq=3)
    for name, datagram in hostile_set(template):
        assert_dropped(server, datagram, CLIENT_ADDR, 0.0)
    assert server.state is HandshakeState.WAIT_CLIENT_KEY_EXCHANGE
    # ... and the handshake still completes with the real flights.
    link.client.connection.receive_datagram(flight4, SERVER_ADDR, 0.0)
    link.run(lambda: both_completed(link))
    assert both_completed(link)


def test_hostile_records_mid_handshake_client(identity) -> None:
    link = mid_handshake_client(identity)
    client = link.client.connection
    template = record(ContentType.HANDSHAKE, bytes(40), seq=0)
    for name, datagram in hostile_set(template):
        assert_dropped(client, datagram, SERVER_ADDR, 0.0)
    # The client's ClientHello was already taken off it; resend on timeout and finish.
    link.run(lambda: both_completed(link))
    assert both_completed(link)


def test_hostile_records_at_every_step_of_a_handshake(identity) -> None:
    """Before every genuine datagram of a full handshake, the whole hostile set goes to
    the same destination: nothing changes, and the handshake completes as if clean."""
    link = make_pair(identity)
    steps = []

    def interleave(destination, datagram: bytes) -> bytes:
        conn = destination.connection
        source = SERVER_ADDR if destination is link.client else CLIENT_ADDR
        steps.append(conn.state)
        for name, hostile in hostile_set(datagram[:split_records(datagram)[0][0].end]):
            before = snapshot(conn)
            conn.receive_datagram(hostile, source, link.now)
            assert snapshot(conn) == before, (name, conn.state)
        return datagram

    link.filter = interleave
    handshake(link)
    assert len(steps) >= 6
    for endpoint in (link.client, link.server):
        assert not endpoint.of_type(ConnectionTerminated)
        assert endpoint.connection.stats["retransmit_timeout"] == 0


def test_stateless_listener_keeps_nothing_from_hostile_records(identity) -> None:
    link = make_pair(identity)
    server = link.server.connection
    template = record(ContentType.HANDSHAKE, bytes(60), seq=0)
    cases = hostile_set(template) + [
        ("epoch-1", record(ContentType.HANDSHAKE, bytes(40), epoch=1)),
        ("epoch-1-alert", record(ContentType.ALERT, b"\x02\x28", epoch=1)),
        ("alert", record(ContentType.ALERT, b"\x02\x28")),
        ("ccs", record(ContentType.CHANGE_CIPHER_SPEC, b"\x01")),
    ]
    for i, (name, datagram) in enumerate(cases):
        assert_dropped(server, datagram, (f"198.51.100.{i % 250}", 1000 + i), 0.0)
    assert server.peer_address is None and not server._deferred
    assert server.state is HandshakeState.SERVER_WAIT_CLIENT_HELLO
    handshake(link)


def test_forged_huge_epoch0_seq_cannot_stop_final_flight_resends(identity) -> None:
    """The server's last flight (6) is lost once; a forged epoch-0 record with the largest
    sequence number reaches the server meanwhile.  The client's retransmission of flight 5
    must still make the server resend flight 6 (RFC 6347 4.2.4), which has no timer of its
    own.  (The server tells network duplicates from retransmissions by the highest record
    sequence number per epoch, which the forgery sets for epoch 0; what saves the
    handshake is the retransmitted Finished, whose epoch-1 number is authenticated.)"""
    link = make_pair(identity, client={"handshake_timeout": 30.0})
    from dtls.fragments import HandshakeFragment
    forged = HandshakeFragment(22, 1, 60, 0, b"\x00").serialize()  # dropped: too far ahead
    dropped: list[bytes] = []

    def lose_flight6_and_forge(destination, datagram: bytes) -> bytes | None:
        if destination is link.client and not dropped \
                and any(h.epoch == 1 for h in split_records(datagram)[0]):
            dropped.append(datagram)
            link.server.connection.receive_datagram(
                record(ContentType.HANDSHAKE, forged, seq=(1 << 48) - 1), CLIENT_ADDR, link.now)
            return None
        return datagram

    link.filter = lose_flight6_and_forge
    link.client.connection.connect(0.0)
    link.run(lambda: both_completed(link), max_time=40.0)
    stats = link.server.connection.stats
    assert dropped and stats["fragment_too_far_ahead"] + stats["stale_epoch_handshake"] == 1
    assert both_completed(link), (link.client.connection.stats, link.server.connection.stats)
