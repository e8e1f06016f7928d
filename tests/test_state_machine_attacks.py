"""State-machine attacks (issue 6), after the DTLS state-fuzzing literature.

Fiterau-Brostean et al., "Analysis of DTLS Implementations Using Protocol State
Fuzzing" (USENIX Security 2020) learned state machines of 13 DTLS stacks and found,
among others: Finished accepted before ChangeCipherSpec, ChangeCipherSpec accepted before
the key exchange, ClientKeyExchange accepted before the required client Certificate,
handshakes completing without CertificateVerify, a second ClientHello restarting or
confusing a handshake, application data accepted before the handshake ended, and
records processed after an alert.  Each is replayed here against our client and server,
with messages taken from a real in-memory handshake (intercepted, dropped, reordered,
renumbered) or crafted and sealed with the right epoch's keys (`_write_states`), and
each must end in the right fatal alert or a silent drop, never in a HandshakeCompleted
or ApplicationData that should not exist.

`test_every_out_of_order_message_is_unexpected_message` is the systematic version: every
handshake type in every state a real handshake passes through, both roles.
"""

from __future__ import annotations

from typing import Any

import pytest
from dtls_testing import CLIENT_ADDR, SERVER_ADDR, Endpoint, Link, make_certificate
from test_hostile_records import (
    app_data_events,
    assert_dropped,
    both_completed,
    established,
    handshake,
    make_pair,
    mid_handshake_server,
    record,
    sealed,
    snapshot,
)

from dtls.alerts import AlertDescription
from dtls.config import ClientAuth
from dtls.connection import _TRANSITIONS, Connection, HandshakeState
from dtls.events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from dtls.fragments import HandshakeMessage, parse_fragments
from dtls.messages import HandshakeType
from dtls.record import split_records
from dtls.recordbase import ContentType
from dtls.verify import fingerprint_sha256

# -- helpers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def identity():
    return make_certificate("localhost")


def terminations(endpoint: Endpoint) -> list[ConnectionTerminated]:
    endpoint.drain_events()
    return endpoint.of_type(ConnectionTerminated)


def assert_fatal(endpoint: Endpoint, alert: AlertDescription, words: str = "") -> None:
    (end,) = terminations(endpoint)
    assert end.alert == alert and not end.by_peer, end
    assert words in end.reason, end.reason
    assert endpoint.connection.state is HandshakeState.CLOSED
    assert not endpoint.of_type(ApplicationData)


def records_of(datagram: bytes) -> list[tuple[Any, bytes]]:
    """(header, raw record bytes) for each record of a datagram."""
    headers, _ = split_records(datagram)
    return [(h, datagram[h.offset:h.end]) for h in headers]


def handshake_type(header: Any, raw: bytes) -> int | None:
    """msg_type of an epoch-0 handshake record's first fragment (None otherwise)."""
    if header.content_type != ContentType.HANDSHAKE or header.epoch != 0:
        return None
    return parse_fragments(raw[13:])[0].msg_type


def renumber(raw: bytes, message_seq: int) -> bytes:
    """An epoch-0 handshake record with its (single, whole) message's message_seq changed."""
    fragment = parse_fragments(raw[13:])[0]
    message = HandshakeMessage(fragment.msg_type, message_seq, bytes(fragment.body))
    return raw[:11] + len(message.serialize()).to_bytes(2, "big") + message.serialize()


def inject(sender: Connection, receiver: Endpoint, msg_type: int, body: bytes = b"", *,
           epoch: int | None = None, message_seq: int | None = None, now: float = 0.0) -> None:
    """A handshake message from `sender`'s side: sealed with its write state for `epoch`
    (default: its current one), with the receiver's next expected message_seq."""
    seq = receiver.connection._reassembler.next_message_seq if message_seq is None else message_seq
    message = HandshakeMessage(msg_type, seq, body).serialize()
    state = sender._write_states[sender._write_epoch if epoch is None else epoch]
    source = CLIENT_ADDR if receiver.address == SERVER_ADDR else SERVER_ADDR
    receiver.connection.receive_datagram(state.seal(ContentType.HANDSHAKE, message), source, now)


class Stepper:
    """A handshake delivered one record at a time, so that every intermediate state of the
    victim can be stopped at (a flight's records otherwise all go in one call)."""

    def __init__(self, link: Link, victim: Endpoint) -> None:
        self.link, self.victim = link, victim
        self.target: HandshakeState | None = None
        self.held: list[bytes] = []
        link.filter = self._filter

    def _filter(self, destination: Endpoint, datagram: bytes) -> bytes | None:
        if destination is not self.victim:
            return datagram
        source = SERVER_ADDR if destination is self.link.client else CLIENT_ADDR
        for _, raw in records_of(datagram):
            if self.victim.connection.state is self.target or self.held:
                self.held.append(raw)
                continue
            destination.connection.receive_datagram(raw, source, self.link.now)
        return None

    def run_to(self, target: HandshakeState) -> None:
        self.target = target
        if self.link.client.connection.state is HandshakeState.CLIENT_START:
            self.link.client.connection.connect(0.0)
        self.link.run(lambda: self.victim.connection.state is target or bool(self.held),
                      max_time=5.0)
        assert self.victim.connection.state is target, (self.victim.connection.state, target)

    def peer_keys(self) -> Connection:
        """Let the peer process what it has (the victim's input stays held) until it has
        epoch-1 write keys; returns the peer connection."""
        peer = self.link.server if self.victim is self.link.client else self.link.client
        self.link.run(lambda: 1 in peer.connection._write_states, max_time=self.link.now + 0.5)
        assert 1 in peer.connection._write_states
        return peer.connection

    def release(self) -> None:
        """Stop holding; deliver what was held, in order."""
        self.link.filter = None
        source = SERVER_ADDR if self.victim is self.link.client else CLIENT_ADDR
        held, self.held = self.held, []
        for raw in held:
            self.victim.connection.receive_datagram(raw, source, self.link.now)


CLIENT_AUTH: dict[str, Any] = {}


def client_auth_pair(identity, mode: ClientAuth = ClientAuth.REQUIRE) -> Link:
    if "identity" not in CLIENT_AUTH:
        CLIENT_AUTH["identity"] = make_certificate("client.example", client=True)
    cert, key = CLIENT_AUTH["identity"]
    return make_pair(identity, client={"certificate_chain": [cert], "private_key": key},
                     server={"client_auth": mode, "pinned_sha256": (fingerprint_sha256(cert),)})


def fresh_client_hello(client: Connection) -> bytes:
    """A well-formed ClientHello body for `client`'s configuration (a renegotiation one)."""
    import os

    from dtls.messages import encode_handshake
    from dtls.negotiation import build_client_hello
    return encode_handshake(build_client_hello(client.configuration, os.urandom(32), None))[1]


# -- the systematic table ----------------------------------------------------------------

ALL_TYPES = [int(t) for t in HandshakeType] + [5, 21, 99, 254, 255]

CLIENT_STATES = [HandshakeState.WAIT_SERVER_HELLO, HandshakeState.WAIT_SERVER_HELLO_AFTER_COOKIE,
                 HandshakeState.WAIT_SERVER_CERTIFICATE, HandshakeState.WAIT_SERVER_KEY_EXCHANGE,
                 HandshakeState.WAIT_SERVER_HELLO_DONE, HandshakeState.WAIT_SERVER_FINISHED,
                 HandshakeState.ESTABLISHED]
SERVER_STATES = [HandshakeState.WAIT_CLIENT_KEY_EXCHANGE, HandshakeState.WAIT_CLIENT_FINISHED,
                 HandshakeState.ESTABLISHED]
AUTH_CLIENT_STATES = [HandshakeState.WAIT_SERVER_HELLO_DONE_AFTER_REQUEST]
AUTH_SERVER_STATES = [HandshakeState.WAIT_CLIENT_CERTIFICATE,
                      HandshakeState.WAIT_CLIENT_CERTIFICATE_VERIFY]

CASES = ([("client", False, s) for s in CLIENT_STATES] + [("server", False, s) for s in SERVER_STATES]
         + [("client", True, s) for s in AUTH_CLIENT_STATES]
         + [("server", True, s) for s in AUTH_SERVER_STATES])


@pytest.mark.parametrize("role, auth, state", CASES,
                         ids=[f"{r}{'-auth' if a else ''}-{s.value}" for r, a, s in CASES])
def test_every_out_of_order_message_is_unexpected_message(identity, role, auth, state) -> None:
    """Every handshake type the transition table has no entry for, in `state`, as the next
    message_seq and in the newest epoch both sides share: fatal unexpected_message
    (RFC 5246 7.4 / 7.2.2), and the handshake never completes."""
    missing = [t for t in ALL_TYPES if (state, t) not in _TRANSITIONS]
    assert len(missing) >= len(ALL_TYPES) - 3
    refused = 0
    for msg_type in missing:
        link = client_auth_pair(identity) if auth else make_pair(identity)
        victim = getattr(link, role)
        peer = link.server if role == "client" else link.client
        Stepper(link, victim).run_to(state)
        conn = victim.connection
        victim.drain_events()
        completed_before = len(victim.of_type(HandshakeCompleted))
        # The newest epoch both have: authenticated if possible, so the message is not
        # dropped as unauthenticated before the state machine sees it.
        epoch = 1 if 1 in conn._read_states and 1 in peer.connection._write_states else 0
        if msg_type == HandshakeType.finished and epoch == 0:
            before = snapshot(conn)
            inject(peer.connection, victim, msg_type, bytes(12), epoch=0)
            assert snapshot(conn) == before and conn.stats["unprotected_finished"] == 1
            continue
        inject(peer.connection, victim, msg_type, bytes(12), epoch=epoch, now=link.now)
        assert_fatal(victim, AlertDescription.unexpected_message)
        assert len(victim.of_type(HandshakeCompleted)) == completed_before
        refused += 1
        (alert, _), = conn.datagrams_to_send(link.now)[-1:]
        assert alert[0] == ContentType.ALERT
    assert refused >= len(missing) - 1


# -- Finished and ChangeCipherSpec ---------------------------------------------------------


@pytest.mark.parametrize("role", ["client", "server"])
def test_unprotected_finished_before_change_cipher_spec_is_dropped(identity, role) -> None:
    """A plaintext (epoch-0) Finished where the real one is due: dropped, never accepted
    (RFC 5246 7.4.9: Finished is the first message protected with the new keys)."""
    link = make_pair(identity)
    victim = getattr(link, role)
    peer = link.server if role == "client" else link.client
    target = HandshakeState.WAIT_SERVER_FINISHED if role == "client" \
        else HandshakeState.WAIT_CLIENT_FINISHED
    stepper = Stepper(link, victim)
    stepper.run_to(target)
    before = snapshot(victim.connection)
    for verify_data in (bytes(12), b"\xff" * 12, b""):
        inject(peer.connection, victim, HandshakeType.finished, verify_data, epoch=0)
    assert snapshot(victim.connection) == before
    assert victim.connection.stats["unprotected_finished"] == 3
    assert not victim.of_type(HandshakeCompleted)


@pytest.mark.parametrize("role", ["client", "server"])
def test_protected_finished_with_wrong_verify_data_is_decrypt_error(identity, role) -> None:
    # No ticket: the client's Finished is then the server's next message (with a ticket
    # announced, a Finished without it is unexpected_message, tested by the table).
    link = make_pair(identity, server={"session_tickets": False})
    victim = getattr(link, role)
    peer = link.server if role == "client" else link.client
    target = HandshakeState.WAIT_SERVER_FINISHED if role == "client" \
        else HandshakeState.WAIT_CLIENT_FINISHED
    stepper = Stepper(link, victim)
    stepper.run_to(target)
    stepper.peer_keys()
    inject(peer.connection, victim, HandshakeType.finished, bytes(12), epoch=1)
    assert_fatal(victim, AlertDescription.decrypt_error)
    assert not victim.of_type(HandshakeCompleted)


@pytest.mark.parametrize("role", ["client", "server"])
def test_finished_without_change_cipher_spec(identity, role) -> None:
    """DTLS needs no ChangeCipherSpec to know the keys (the epoch names them), and ours
    installs the read keys when the key exchange is done: a genuine Finished whose CCS was
    lost or stripped is accepted, because it authenticates under the new keys and its
    verify_data checks (only the real peer can make one).  Deviation from RFC 5246 7.4.9's
    "fatal error if a Finished message is not preceded by a ChangeCipherSpec" (see
    tests/CONFORMANCE.md); what must hold is that nothing else can complete a handshake."""
    link = make_pair(identity)
    victim = getattr(link, role)
    stripped: list[int] = []

    def strip_ccs(destination: Endpoint, datagram: bytes) -> bytes:
        if destination is not victim:
            return datagram
        kept = [raw for h, raw in records_of(datagram)
                if h.content_type != ContentType.CHANGE_CIPHER_SPEC or stripped.append(1)]
        return b"".join(kept)

    link.filter = strip_ccs
    handshake(link)
    assert stripped and victim.connection.stats["change_cipher_spec"] == 0


def test_finished_overtaking_the_key_exchange_is_held_not_processed(identity) -> None:
    """Flight 5 reordered: Finished (epoch 1) first, then CCS, then ClientKeyExchange.
    The Finished is held until the key exchange gave epoch-1 keys, then verified."""
    link, flight4 = mid_handshake_server(identity)
    client, server = link.client.connection, link.server.connection
    client.receive_datagram(flight4, SERVER_ADDR, 0.0)
    flight5 = b"".join(d for d, _ in client.datagrams_to_send(0.0))
    raws = [raw for _, raw in records_of(flight5)]
    for raw in reversed(raws):
        server.receive_datagram(raw, CLIENT_ADDR, 0.0)
    assert server.stats["deferred"] == 1
    assert server.state is HandshakeState.ESTABLISHED


@pytest.mark.parametrize("role", ["client", "server"])
def test_change_cipher_spec_before_the_key_exchange_changes_nothing(identity, role) -> None:
    """CVE-2014-0224 style early CCS: counted and ignored; no keys exist before the key
    exchange, so records "protected" after it cannot be read, and the handshake goes on."""
    link = make_pair(identity)
    victim = getattr(link, role)
    peer = link.server if role == "client" else link.client
    target = HandshakeState.WAIT_SERVER_CERTIFICATE if role == "client" \
        else HandshakeState.WAIT_CLIENT_KEY_EXCHANGE
    stepper = Stepper(link, victim)
    stepper.run_to(target)
    conn = victim.connection
    before = snapshot(conn)
    for payload in (b"\x01", b"\x02", b"", b"\x01\x01"):
        assert_dropped(conn, record(ContentType.CHANGE_CIPHER_SPEC, payload, seq=50),
                       peer.address, link.now)
    assert conn.stats["change_cipher_spec"] == 4 and sorted(conn._read_states) == [0]
    # A "Finished" in epoch 1 right after it: no epoch-1 keys, so held (bounded) ...
    conn.receive_datagram(record(ContentType.HANDSHAKE, bytes(40), epoch=1, seq=0),
                          peer.address, link.now)
    assert conn.stats["deferred"] == 1
    assert {k: v for k, v in snapshot(conn).items() if k != "deferred"} == \
        {k: v for k, v in before.items() if k != "deferred"}
    # ... and, once the real keys exist, it fails authentication and is dropped.
    stepper.release()
    link.run(lambda: both_completed(link))
    assert both_completed(link) and conn.stats["record_bad_mac"] == 1


# -- client authentication -----------------------------------------------------------------


def _client_flight5(link: Link) -> list[tuple[Any, bytes]]:
    """Run a client-auth handshake up to the client's flight 5 and return its records."""
    client, server = link.client.connection, link.server.connection
    client.connect(0.0)
    for _ in range(2):  # ClientHello, HVR; ClientHello with cookie, flight 4
        for d, _ in client.datagrams_to_send(0.0):
            server.receive_datagram(d, CLIENT_ADDR, 0.0)
        for d, _ in server.datagrams_to_send(0.0):
            client.receive_datagram(d, SERVER_ADDR, 0.0)
    assert server.state is HandshakeState.WAIT_CLIENT_CERTIFICATE
    return records_of(b"".join(d for d, _ in client.datagrams_to_send(0.0)))


def test_client_key_exchange_before_the_required_certificate(identity) -> None:
    link = client_auth_pair(identity)
    records = _client_flight5(link)
    server = link.server.connection
    types = [handshake_type(h, raw) for h, raw in records]
    assert types[:3] == [HandshakeType.certificate, HandshakeType.client_key_exchange,
                         HandshakeType.certificate_verify]
    cert_seq = parse_fragments(records[0][1][13:])[0].message_seq
    # Certificate dropped, the rest as sent: a gap, so nothing is processed ...
    before = snapshot(server)
    for _, raw in records[1:]:
        server.receive_datagram(raw, CLIENT_ADDR, 0.0)
    assert server.state is HandshakeState.WAIT_CLIENT_CERTIFICATE
    assert snapshot(server)["pending"] and before["next_message_seq"] == \
        server._reassembler.next_message_seq
    # ... and the ClientKeyExchange renumbered into the Certificate's place is refused.
    server.receive_datagram(renumber(records[1][1], cert_seq), CLIENT_ADDR, 0.0)
    assert_fatal(link.server, AlertDescription.unexpected_message,
                 "client_key_exchange in state wait_client_certificate")
    assert not link.server.of_type(HandshakeCompleted)


@pytest.mark.parametrize("mode", [ClientAuth.REQUIRE, ClientAuth.REQUEST])
def test_certificate_without_certificate_verify(identity, mode) -> None:
    link = client_auth_pair(identity, mode)
    records = _client_flight5(link)
    client, server = link.client.connection, link.server.connection
    verify_seq = parse_fragments(records[2][1][13:])[0].message_seq
    for _, raw in records[:2]:  # Certificate, ClientKeyExchange; no CertificateVerify
        server.receive_datagram(raw, CLIENT_ADDR, 0.0)
    assert server.state is HandshakeState.WAIT_CLIENT_CERTIFICATE_VERIFY
    # The genuine Finished (message_seq one too high) just waits for the missing message.
    finished = [raw for h, raw in records if h.epoch == 1]
    server.receive_datagram(finished[0], CLIENT_ADDR, 0.0)
    assert server.state is HandshakeState.WAIT_CLIENT_CERTIFICATE_VERIFY
    # A Finished in the CertificateVerify's place, under the client's real keys: refused.
    inject(client, link.server, HandshakeType.finished,
           client._verify_data(from_client=True), epoch=1, message_seq=verify_seq)
    assert_fatal(link.server, AlertDescription.unexpected_message,
                 "finished in state wait_client_certificate_verify")
    assert not link.server.of_type(HandshakeCompleted)


# -- hellos out of place --------------------------------------------------------------------


def test_second_client_hello_mid_handshake(identity) -> None:
    link, _flight4 = mid_handshake_server(identity)
    client, server = link.client.connection, link.server.connection
    hello = client._client_hello_wire
    assert hello is not None
    # The same ClientHello again (message_seq already processed): a retransmission, so
    # the server resends flight 4 and changes nothing else (RFC 6347 4.2.4).
    before = snapshot(server)
    server.receive_datagram(record(ContentType.HANDSHAKE, hello.serialize(), seq=9),
                            CLIENT_ADDR, 0.0)
    resent = b"".join(d for d, _ in server.datagrams_to_send(0.0))
    assert len(resent) > 500 and server.stats["retransmit_on_peer_resend"] == 1
    after = snapshot(server)
    assert {k: v for k, v in after.items() if k not in ("write_next_seq", "timer")} == \
        {k: v for k, v in before.items() if k not in ("write_next_seq", "timer")}
    # A new ClientHello as the next message: unexpected_message, no restart.
    new_hello = HandshakeMessage(HandshakeType.client_hello,
                                 server._reassembler.next_message_seq, hello.body)
    server.receive_datagram(record(ContentType.HANDSHAKE, new_hello.serialize(), seq=10),
                            CLIENT_ADDR, 0.0)
    assert_fatal(link.server, AlertDescription.unexpected_message,
                 "client_hello in state wait_client_key_exchange")


def test_hello_verify_request_after_server_hello(identity) -> None:
    link = make_pair(identity)
    stepper = Stepper(link, link.client)
    stepper.run_to(HandshakeState.WAIT_SERVER_CERTIFICATE)
    client = link.client.connection
    hvr = HandshakeMessage(HandshakeType.hello_verify_request,
                           client._reassembler.next_message_seq,
                           b"\xfe\xff\x04abcd").serialize()
    client.receive_datagram(record(ContentType.HANDSHAKE, hvr, seq=70), SERVER_ADDR, link.now)
    assert_fatal(link.client, AlertDescription.unexpected_message,
                 "hello_verify_request in state wait_server_certificate")


def test_hello_verify_request_replayed_after_server_hello_is_a_retransmission(identity) -> None:
    """A HelloVerifyRequest with the message_seq already used (a late replay): at most a
    retransmission of the server's previous flight, so the client may resend its current
    one (RFC 6347 4.2.4), nothing else: no restart, no new cookie, no new hello."""
    link = make_pair(identity)
    Stepper(link, link.client).run_to(HandshakeState.WAIT_SERVER_CERTIFICATE)
    client = link.client.connection
    before = snapshot(client)
    hvr = HandshakeMessage(HandshakeType.hello_verify_request, 0, b"\xfe\xff\x04abcd")
    client.receive_datagram(record(ContentType.HANDSHAKE, hvr.serialize(), seq=0), SERVER_ADDR,
                            link.now)
    moved = ("datagrams", "timer", "write_next_seq")
    assert {k: v for k, v in snapshot(client).items() if k not in moved} == \
        {k: v for k, v in before.items() if k not in moved}
    assert client._hello_verify_requests == 1
    # At most a resend of the current flight (RFC 6347 4.2.4 allows it), never a new hello.
    assert client.stats["retransmit_on_peer_resend"] <= 1
    assert len(client.datagrams_to_send(link.now)) <= 1


# -- after the handshake --------------------------------------------------------------------


@pytest.mark.parametrize("role", ["client", "server"])
def test_extra_finished_after_the_handshake(identity, role) -> None:
    link = established(identity)
    victim = getattr(link, role)
    peer = link.server if role == "client" else link.client
    # Any verify_data: the state machine refuses the type before it looks at the body
    # (the transcript is released once established anyway).
    inject(peer.connection, victim, HandshakeType.finished, bytes(12), epoch=1, now=link.now)
    assert_fatal(victim, AlertDescription.unexpected_message, "finished in state established")


def test_replayed_final_flight_is_only_a_retransmission(identity) -> None:
    """The client's flight 5 again after the handshake: the server resends flight 6 and
    stays established; replayed epoch-1 records are dropped by the window."""
    link = make_pair(identity)
    flight5: list[bytes] = []

    def capture(destination: Endpoint, datagram: bytes) -> bytes:
        if destination is link.server and any(h.epoch == 1 for h, _ in records_of(datagram)):
            flight5.append(datagram)
        return datagram

    link.filter = capture
    handshake(link)
    server = link.server.connection
    server.receive_datagram(flight5[0], CLIENT_ADDR, link.now)
    assert server.state is HandshakeState.ESTABLISHED
    assert server.stats["record_replay"] == 1  # the epoch-1 Finished
    assert len(link.server.of_type(HandshakeCompleted)) == 1


@pytest.mark.parametrize("role", ["client", "server"])
def test_application_data_before_the_handshake_ends_is_never_delivered(identity, role) -> None:
    link = make_pair(identity)
    victim = getattr(link, role)
    peer = link.server if role == "client" else link.client
    target = HandshakeState.WAIT_SERVER_FINISHED if role == "client" \
        else HandshakeState.WAIT_CLIENT_FINISHED
    stepper = Stepper(link, victim)
    stepper.run_to(target)
    stepper.peer_keys()
    conn = victim.connection
    # Epoch 0 (anyone) and epoch 1 (the genuine peer's keys, before its Finished).
    assert_dropped(conn, record(ContentType.APPLICATION_DATA, b"early 0"), peer.address,
                   link.now)
    early = peer.connection._write_states[1].seal(ContentType.APPLICATION_DATA, b"early 1")
    conn.receive_datagram(early, peer.address, link.now)
    assert conn.stats["early_application_data"] == 2
    assert not app_data_events(victim)
    # The handshake then completes, and the early record is not delivered after it either.
    stepper.release()
    link.run(lambda: both_completed(link))
    assert both_completed(link)
    conn.receive_datagram(early, peer.address, link.now)
    assert not app_data_events(victim)


@pytest.mark.parametrize("role", ["client", "server"])
def test_early_application_data_at_the_listener_and_before_server_hello(identity, role) -> None:
    link = make_pair(identity)
    conn = getattr(link, role).connection
    if role == "client":
        conn.connect(0.0)
        conn.datagrams_to_send(0.0)
    source = SERVER_ADDR if role == "client" else CLIENT_ADDR
    assert_dropped(conn, record(ContentType.APPLICATION_DATA, b"data"), source, 0.0)
    # Epoch 1: the listener drops it; the client holds it (bounded) for keys that, when
    # they come, will not authenticate it.
    conn.receive_datagram(record(ContentType.APPLICATION_DATA, b"data", epoch=1), source, 0.0)
    assert len(conn._deferred) == (1 if role == "client" else 0)
    assert not app_data_events(getattr(link, role))


@pytest.mark.parametrize("how", ["close_notify", "fatal_alert", "local_fatal"])
def test_records_after_close_or_fatal_alert_are_ignored(identity, how) -> None:
    link = established(identity)
    client, server = link.client.connection, link.server.connection
    pending = [sealed(client, ContentType.APPLICATION_DATA, b"after %d" % i) for i in range(3)]
    if how == "close_notify":
        client.close()
    elif how == "fatal_alert":
        client._send_alert(2, AlertDescription.internal_error)
    if how == "local_fatal":
        inject(client, link.server, HandshakeType.server_hello_done, epoch=1, now=link.now)
        link.server.drain_events()
    else:
        for d, _ in client.datagrams_to_send(link.now):
            server.receive_datagram(d, CLIENT_ADDR, link.now)
    assert server.state is HandshakeState.CLOSED
    link.server.drain_events()
    server.datagrams_to_send(link.now)  # our close_notify / fatal alert, already sent
    events_before = len(link.server.events)
    for raw in pending + [record(ContentType.ALERT, b"\x02\x28")]:
        server.receive_datagram(raw, CLIENT_ADDR, link.now)
    inject(client, link.server, HandshakeType.client_hello, epoch=1, now=link.now)
    assert server.stats["after_close"] == 5
    assert server.datagrams_to_send(link.now) == []
    link.server.drain_events()
    assert len(link.server.events) == events_before
    assert not link.server.of_type(ApplicationData) and server.get_timer() is None


# -- renegotiation --------------------------------------------------------------------------


def test_renegotiation_client_hello_is_refused_and_the_connection_stays_up(identity) -> None:
    link = established(identity)
    client, server = link.client.connection, link.server.connection
    inject(client, link.server, HandshakeType.client_hello, fresh_client_hello(client),
           epoch=1, now=link.now)
    (alert, _), = server.datagrams_to_send(link.now)
    assert alert[0] == ContentType.ALERT and len(alert) < 60  # one sealed 2-byte alert
    assert server.state is HandshakeState.ESTABLISHED and server.stats["renegotiation_refused"] == 1
    client.receive_datagram(alert, SERVER_ADDR, link.now)
    assert client.state is HandshakeState.ESTABLISHED and client.stats["warning_alert"] == 1
    # Data still flows both ways afterwards.
    client.send(b"still here")
    server.send(b"me too")
    link.run(lambda: bool(app_data_events(link.server) and app_data_events(link.client)))
    assert app_data_events(link.server) == [b"still here"]
    assert app_data_events(link.client) == [b"me too"]


def test_repeated_hello_requests_are_each_refused(identity) -> None:
    link = established(identity)
    client, server = link.client.connection, link.server.connection
    for _ in range(5):
        inject(server, link.client, HandshakeType.hello_request, epoch=1, now=link.now)
    assert client.stats["renegotiation_refused"] == 5
    assert len(client.datagrams_to_send(link.now)) == 5
    assert client.state is HandshakeState.ESTABLISHED


@pytest.mark.parametrize("role, msg_type, body", [
    ("client", HandshakeType.server_hello_done, b""),
    ("client", HandshakeType.hello_request, b""),
    ("server", HandshakeType.client_hello, bytes(40)),
    ("server", HandshakeType.client_key_exchange, bytes(33)),
], ids=["client-server_hello_done", "client-hello_request", "server-client_hello",
        "server-client_key_exchange"])
def test_spoofed_epoch0_handshake_cannot_touch_an_established_connection(identity, role,
                                                                         msg_type, body) -> None:
    link = established(identity)
    victim = getattr(link, role)
    conn = victim.connection
    source = SERVER_ADDR if role == "client" else CLIENT_ADDR
    before = snapshot(conn)
    nxt = conn._reassembler.next_message_seq
    # An off-path attacker does not know message_seq, but need not: one datagram covers
    # every value the reassembler would look at.
    fragments = b"".join(HandshakeMessage(msg_type, seq, body).serialize()
                         for seq in range(nxt, nxt + 7))
    conn.receive_datagram(record(ContentType.HANDSHAKE, fragments, seq=12345), source, link.now)
    assert conn.state is HandshakeState.ESTABLISHED
    assert conn.datagrams_to_send(link.now) == []  # not even a no_renegotiation warning
    assert snapshot(conn)["next_message_seq"] == before["next_message_seq"]
    assert not terminations(victim)
