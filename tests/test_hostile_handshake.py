"""Hostile handshake fragments and messages through a real Connection (issue 6).

tests/test_fragments.py holds the reassembler itself to its caps; these tests send the
same attacks through `Connection.receive_datagram` as epoch-0 records to a client waiting
for flight 4 and to a server waiting for flight 5, and check that each fragment is
dropped and counted (`fragment_<reason>` in stats) without touching state, that memory
stays bounded (tracemalloc), and that the genuine handshake still completes afterwards
(immediately, or after one retransmission when a forged first fragment poisoned a
message: RFC 6347 4.2.4 resends the whole flight and reassembly restarts).

Then message-level hostility: a ClientHello split mid-cookie at the stateless listener,
a HelloVerifyRequest whose cookie does not fit <0..255>, oversized and duplicated
extension lists.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass

import pytest
from dtls_testing import CLIENT_ADDR, SERVER_ADDR, Link, make_certificate
from test_hostile_records import (
    assert_dropped,
    both_completed,
    make_pair,
    mid_handshake_server,
    record,
    sealed,
    snapshot,
)

from dtls.alerts import AlertDescription
from dtls.connection import Connection, HandshakeState
from dtls.events import ConnectionTerminated
from dtls.extensions import UnknownExtension
from dtls.fragments import (
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_FRAGMENTS_PER_MESSAGE,
    DEFAULT_MAX_MESSAGES_AHEAD,
    HandshakeFragment,
    HandshakeMessage,
    parse_fragments,
)
from dtls.messages import ClientHello, HandshakeType, encode_handshake
from dtls.negotiation import build_client_hello
from dtls.record import split_records
from dtls.recordbase import ContentType


@pytest.fixture(scope="module")
def identity():
    return make_certificate("localhost")


@dataclass
class Victim:
    """A connection mid-handshake and the genuine next message it waits for."""

    link: Link
    conn: Connection
    addr: tuple[str, int]
    flight: bytes  # the genuine datagram(s) it is waiting for, concatenated
    msg_type: int
    seq: int
    body: bytes

    def fragment(self, offset: int, end: int, *, msg_type: int | None = None,
                 length: int | None = None, seq: int | None = None,
                 body: bytes | None = None) -> bytes:
        """A fragment of the genuine next message, with any field overridden."""
        data = self.body[offset:end] if body is None else body
        return HandshakeFragment(self.msg_type if msg_type is None else msg_type,
                                 len(self.body) if length is None else length,
                                 self.seq if seq is None else seq, offset, data).serialize()

    def send(self, *fragments: bytes, seq: int = 500) -> None:
        """One epoch-0 record carrying `fragments`, from the peer's address."""
        self.conn.receive_datagram(record(ContentType.HANDSHAKE, b"".join(fragments), seq=seq),
                                   self.addr, self.link.now)

    def finish(self) -> None:
        """Deliver the genuine flight and let the handshake complete."""
        self.conn.receive_datagram(self.flight, self.addr, self.link.now)
        self.link.run(lambda: both_completed(self.link), max_time=60.0)
        assert both_completed(self.link), (self.conn.stats, self.link.client.events,
                                           self.link.server.events)


def first_fragment(datagram: bytes) -> HandshakeFragment:
    header = split_records(datagram)[0][0]
    return parse_fragments(datagram[header.offset + 13:header.end])[0]


def client_victim(identity) -> Victim:
    link, flight4 = mid_handshake_server(identity)
    fragment = first_fragment(flight4)
    assert fragment.msg_type == HandshakeType.server_hello
    client = link.client.connection
    assert client._reassembler.next_message_seq == fragment.message_seq
    return Victim(link, client, SERVER_ADDR, flight4, fragment.msg_type, fragment.message_seq,
                  bytes(fragment.body))


def server_victim(identity) -> Victim:
    link, flight4 = mid_handshake_server(identity)
    client, server = link.client.connection, link.server.connection
    client.receive_datagram(flight4, SERVER_ADDR, 0.0)
    flight5 = b"".join(d for d, _ in client.datagrams_to_send(0.0))
    fragment = first_fragment(flight5)
    assert fragment.msg_type == HandshakeType.client_key_exchange
    assert server._reassembler.next_message_seq == fragment.message_seq
    return Victim(link, server, CLIENT_ADDR, flight5, fragment.msg_type, fragment.message_seq,
                  bytes(fragment.body))


def fragment_drops(conn: Connection) -> int:
    return sum(v for k, v in conn.stats.items() if k.startswith("fragment_"))


VICTIMS = {"client": client_victim, "server": server_victim}


@pytest.fixture(params=sorted(VICTIMS))
def victim(request, identity) -> Victim:
    return VICTIMS[request.param](identity)


def test_fragment_lengths_that_disagree(victim: Victim) -> None:
    n = len(victim.body)
    victim.send(victim.fragment(0, 10))  # the genuine first piece fixes the length
    for lie in (n + 1, n - 1, 0, n + 100_000, 0xFFFFFF):
        before = fragment_drops(victim.conn)
        fake = victim.fragment(10, 20, length=lie) if lie >= 20 else victim.fragment(
            0, 0, length=lie, body=b"")
        assert_dropped(victim.conn, record(ContentType.HANDSHAKE, fake, seq=501),
                       victim.addr, victim.link.now)
        assert fragment_drops(victim.conn) == before + 1
    assert victim.conn.stats["fragment_inconsistent_header"] >= 3
    victim.finish()


@pytest.mark.parametrize("offset, count, length", [
    (0, 20, 10),  # fragment longer than the message
    (5, 10, 10),  # runs 5 bytes past the end
    (0xFFFFF0, 16, 100),  # offset far outside
    (0xFFFFFF, 1, 0xFFFFFF),  # offset at 2^24-1 of a 16 MiB message
])
def test_fragment_beyond_its_message_cve_2014_0195(victim: Victim, offset, count,
                                                    length) -> None:
    # On the message being waited for, and on a later one that has no buffer yet.
    for seq in (victim.seq, victim.seq + 1):
        fake = HandshakeFragment(victim.msg_type, length, seq, offset, b"A" * count)
        assert_dropped(victim.conn, record(ContentType.HANDSHAKE, fake.serialize()),
                       victim.addr, victim.link.now)
    assert victim.conn.stats["fragment_out_of_bounds"] + \
        victim.conn.stats["fragment_message_too_long"] == 2
    assert victim.conn._reassembler.buffered_bytes == 0
    victim.finish()


def test_overlapping_fragment_with_different_bytes(victim: Victim) -> None:
    victim.send(victim.fragment(0, 30))
    before = snapshot(victim.conn)
    forged = bytes(b ^ 0xFF for b in victim.body[10:40])
    assert_dropped(victim.conn, record(ContentType.HANDSHAKE,
                                       victim.fragment(10, 40, body=forged)),
                   victim.addr, victim.link.now)
    assert victim.conn.stats["fragment_overlap_mismatch"] == 1
    # A consistent overlap is a duplicate: nothing changes either.
    victim.send(victim.fragment(5, 25))
    assert snapshot(victim.conn) == before
    victim.finish()  # the held bytes were genuine: no retransmission needed
    assert victim.conn.stats["reassembly_reset"] == 0


def test_forged_first_fragment_is_recovered_by_retransmission(victim: Victim) -> None:
    """The reverse order: forged bytes arrive first and the genuine ones disagree with
    them.  Epoch 0 is unauthenticated, so this costs one retransmission, no more."""
    forged = bytes(b ^ 0xFF for b in victim.body[:30])
    victim.send(victim.fragment(0, 30, body=forged))
    victim.finish()
    assert victim.conn.stats["fragment_overlap_mismatch"] >= 1
    assert victim.conn.stats["reassembly_reset"] == 1


def test_message_type_changing_between_fragments(victim: Victim) -> None:
    victim.send(victim.fragment(0, 20))
    for other in (HandshakeType.certificate, HandshakeType.finished, 0, 255):
        assert_dropped(victim.conn, record(ContentType.HANDSHAKE,
                                           victim.fragment(20, 40, msg_type=other)),
                       victim.addr, victim.link.now)
    assert victim.conn.stats["fragment_inconsistent_header"] == 3
    assert victim.conn.stats["unprotected_finished"] == 1  # caught before reassembly
    victim.finish()


def test_declared_16_mib_messages_allocate_nothing(victim: Victim) -> None:
    fakes = [HandshakeFragment(victim.msg_type, 0xFFFFFF, seq, offset, b"B" * 1000).serialize()
             for seq in range(victim.seq, victim.seq + DEFAULT_MAX_MESSAGES_AHEAD + 1)
             for offset in (0, 0xFFFFFF - 1000)]
    tracemalloc.start()
    try:
        for fake in fakes:
            victim.send(fake)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024, peak
    assert victim.conn.stats["fragment_message_too_long"] == len(fakes)
    assert victim.conn._reassembler.buffered_bytes == 0
    victim.finish()


def test_large_declared_lengths_are_capped_by_the_buffer(victim: Victim) -> None:
    """Just under the message cap, for every message_seq the reassembler looks ahead to:
    what is reserved stays within max_buffered_bytes, and memory with it."""
    length = 60 * 1024
    tracemalloc.start()
    try:
        for seq in range(victim.seq + 1, victim.seq + DEFAULT_MAX_MESSAGES_AHEAD + 1):
            victim.send(HandshakeFragment(HandshakeType.certificate, length, seq, 0,
                                          b"C" * 100).serialize())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert victim.conn._reassembler.buffered_bytes <= DEFAULT_MAX_BUFFERED_BYTES
    assert victim.conn.stats["fragment_buffer_full"] >= 1
    assert peak < DEFAULT_MAX_BUFFERED_BYTES + 128 * 1024, peak
    victim.finish()  # junk ahead is evicted for (or overwritten by) the genuine messages


@pytest.mark.parametrize("seq_offset", [DEFAULT_MAX_MESSAGES_AHEAD + 1, 1000])
def test_message_seq_far_in_the_future(victim: Victim, seq_offset: int) -> None:
    for seq in (victim.seq + seq_offset, 0xFFFF):
        assert_dropped(victim.conn, record(ContentType.HANDSHAKE,
                                           victim.fragment(0, 10, seq=seq)),
                       victim.addr, victim.link.now)
    assert victim.conn.stats["fragment_too_far_ahead"] == 2
    victim.finish()


def test_zero_length_fragments_repeated(victim: Victim) -> None:
    # 1200 header-only fragments per record, many records: each is counted, none kept.
    empty = victim.fragment(0, 0, body=b"")
    empty_later = victim.fragment(0, 0, body=b"", seq=victim.seq + 2, length=500)
    before = snapshot(victim.conn)
    tracemalloc.start()
    try:
        for i in range(5):
            victim.send(*([empty, empty_later] * 600), seq=600 + i)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert snapshot(victim.conn) == before
    assert victim.conn.stats["fragment_empty_fragment"] == 6000
    assert peak < 1024 * 1024, peak
    victim.finish()


def test_many_tiny_disjoint_fragments_are_capped(victim: Victim) -> None:
    """A later message cut into 1-byte islands: at most max_fragments_per_message ranges
    are tracked; the genuine message with that seq then disagrees (its length differs),
    which costs one retransmission."""
    seq = victim.seq + 1
    fragments = [HandshakeFragment(HandshakeType.certificate, 4000, seq, 2 * i, b"x").serialize()
                 for i in range(600)]
    for i in range(0, 600, 100):
        victim.send(*fragments[i:i + 100], seq=700 + i)
    assert len(victim.conn._reassembler.received_ranges(seq)) == DEFAULT_MAX_FRAGMENTS_PER_MESSAGE
    assert victim.conn.stats["fragment_too_many_fragments"] == 600 - \
        DEFAULT_MAX_FRAGMENTS_PER_MESSAGE
    victim.finish()


# -- the stateless listener and fragmented / oversized ClientHellos ----------------------


def _hellos(identity):
    """(link, first ClientHello datagram, second (with cookie) datagram, its fragment)."""
    link = make_pair(identity)
    client, server = link.client.connection, link.server.connection
    client.connect(0.0)
    (hello1, _), = client.datagrams_to_send(0.0)
    server.receive_datagram(hello1, CLIENT_ADDR, 0.0)
    (hvr, _), = server.datagrams_to_send(0.0)
    client.receive_datagram(hvr, SERVER_ADDR, 0.0)
    (hello2, _), = client.datagrams_to_send(0.0)
    return link, hello1, hello2, first_fragment(hello2)


@pytest.mark.parametrize("cut", ["mid-cookie", "before-cookie", "after-cookie", "1-byte"])
@pytest.mark.parametrize("order", ["in-order", "reversed"])
def test_client_hello_split_mid_cookie_keeps_nothing(identity, cut, order) -> None:
    """RFC 6347 4.2.1: the listener keeps no state before a valid cookie, so it cannot
    reassemble; fragmented ClientHellos are dropped and counted (as OpenSSL's
    DTLSv1_listen does), never buffered, never answered (no amplification)."""
    link, _hello1, hello2, fragment = _hellos(identity)
    server = link.server.connection
    body = bytes(fragment.body)
    cookie_at = 2 + 32 + 1 + body[34] + 1  # version, random, session_id, cookie length
    cookie_length = body[cookie_at - 1]
    assert cookie_length > 0
    at = {"mid-cookie": cookie_at + cookie_length // 2, "before-cookie": cookie_at - 1,
          "after-cookie": cookie_at + cookie_length, "1-byte": 1}[cut]
    pieces = [HandshakeFragment(fragment.msg_type, len(body), fragment.message_seq, a,
                                body[a:b]).serialize() for a, b in ((0, at), (at, len(body)))]
    if order == "reversed":
        pieces.reverse()
    before = snapshot(server)
    # Each piece in its own record and datagram, then both in one record, then both
    # records in one datagram.
    datagrams = [record(ContentType.HANDSHAKE, p, seq=1) for p in pieces]
    datagrams += [record(ContentType.HANDSHAKE, b"".join(pieces), seq=1), b"".join(datagrams)]
    for datagram in datagrams:
        server.receive_datagram(datagram, CLIENT_ADDR, 0.0)
        assert snapshot(server) == before
        assert server.datagrams_to_send(0.0) == []
    assert server.stats["fragmented_client_hello"] == 6
    assert server.peer_address is None and server.state is HandshakeState.SERVER_WAIT_CLIENT_HELLO
    # The unfragmented hello is still accepted.
    server.receive_datagram(hello2, CLIENT_ADDR, 0.0)
    assert server.state is HandshakeState.WAIT_CLIENT_KEY_EXCHANGE


def test_hello_verify_request_cookie_over_255_bytes_is_decode_error(identity) -> None:
    for cookie_field in (b"\xff" + b"c" * 256, b"\xff" + b"c" * 100, b"\x10" + b"c" * 300):
        link = make_pair(identity, server={"cookie_exchange": False})
        client = link.client.connection
        client.connect(0.0)
        client.datagrams_to_send(0.0)
        hvr = HandshakeMessage(HandshakeType.hello_verify_request, 0,
                               b"\xfe\xff" + cookie_field).serialize()
        client.receive_datagram(record(ContentType.HANDSHAKE, hvr, seq=0), SERVER_ADDR, 0.0)
        (end,) = [e for e in iter(client.next_event, None)
                  if isinstance(e, ConnectionTerminated)]
        assert end.alert == AlertDescription.decode_error and not end.by_peer
        (alert, _), = client.datagrams_to_send(0.0)
        assert alert[0] == ContentType.ALERT and alert[-2:] == b"\x02\x32"  # fatal decode_error
        assert client.state is HandshakeState.CLOSED


def _hello_with(hello: ClientHello, extensions: bytes) -> bytes:
    """ClientHello body with its extension block replaced by raw `extensions` bytes."""
    without = ClientHello(hello.client_version, hello.random, hello.session_id, hello.cookie,
                          hello.cipher_suites, hello.compression_methods, [])
    return encode_handshake(without)[1] + extensions


def _listener_hello(server: Connection, body: bytes, seq: int = 0) -> None:
    message = HandshakeMessage(HandshakeType.client_hello, 0, body).serialize()
    server.receive_datagram(record(ContentType.HANDSHAKE, message, seq=seq), CLIENT_ADDR, 0.0)


@pytest.mark.parametrize("case", ["block-past-end", "extension-past-block", "duplicate",
                                  "duplicate-unknown"])
def test_listener_drops_malformed_extension_lists_without_state(identity, case) -> None:
    link = make_pair(identity)
    client, server = link.client.connection, link.server.connection
    client.connect(0.0)
    client.datagrams_to_send(0.0)
    hello = client._client_hello
    assert hello is not None
    ems = b"\x00\x17\x00\x00"
    raw = {"block-past-end": b"\xff\xff" + ems,
           "extension-past-block": b"\x00\x04" + b"\x00\x17\x00\x09",
           "duplicate": b"\x00\x08" + ems + ems,
           "duplicate-unknown": b"\x00\x0a" + b"\xfa\xfa\x00\x01x" * 2}[case]
    before = snapshot(server)
    _listener_hello(server, _hello_with(hello, raw))
    assert snapshot(server) == before and server.datagrams_to_send(0.0) == []
    assert server.stats["malformed_client_hello"] == 1


def test_oversize_extension_list_is_bounded_and_answered_small(identity) -> None:
    """3000 distinct unknown extensions (a 12 KB ClientHello): parsed and ignored; the
    HelloVerifyRequest is far smaller than the hello (no amplification), and with a valid
    cookie the server proceeds normally."""
    link = make_pair(identity)
    client, server = link.client.connection, link.server.connection
    client.connect(0.0)
    client.datagrams_to_send(0.0)
    hello = client._client_hello
    assert hello is not None
    hello.extensions = hello.extensions + [UnknownExtension(0x4000 + i) for i in range(3000)]
    message = HandshakeMessage(HandshakeType.client_hello, 0, encode_handshake(hello)[1])
    datagram = record(ContentType.HANDSHAKE, message.serialize(), seq=0)
    server.receive_datagram(datagram, CLIENT_ADDR, 0.0)
    (hvr, _), = server.datagrams_to_send(0.0)
    assert len(hvr) < 100 < len(datagram)
    hello.cookie = server.configuration.cookie_signer.make(CLIENT_ADDR, hello, 0.0)
    message = HandshakeMessage(HandshakeType.client_hello, 1, encode_handshake(hello)[1])
    server.receive_datagram(record(ContentType.HANDSHAKE, message.serialize(), seq=1),
                            CLIENT_ADDR, 0.0)
    assert server.state is HandshakeState.WAIT_CLIENT_KEY_EXCHANGE
    # A hello larger than one record (> 2^14 + 2048 bytes) cannot even be split off.
    hello.extensions += [UnknownExtension(0x8000 + i, b"z" * 8) for i in range(1000)]
    huge = record(ContentType.HANDSHAKE, HandshakeMessage(
        HandshakeType.client_hello, 0, encode_handshake(hello)[1]).serialize())
    assert len(huge) > 18432
    fresh = make_pair(identity).server.connection
    assert_dropped(fresh, huge, CLIENT_ADDR, 0.0)
    assert fresh.stats["malformed_trailing_bytes"] == 1


def _rewrite_server_hello(datagram: bytes, extensions: bytes) -> bytes:
    """Flight 4 with the ServerHello's extension block replaced (records rebuilt)."""
    headers, _ = split_records(datagram)
    out = b""
    for h in headers:
        payload = datagram[h.offset + 13:h.end]
        fragment = parse_fragments(payload)[0]
        if fragment.msg_type == HandshakeType.server_hello:
            body = bytes(fragment.body)
            session_id_length = body[34]
            head = body[:35 + session_id_length + 3]  # version random session_id suite comp
            body = head + len(extensions).to_bytes(2, "big") + extensions
            payload = HandshakeMessage(fragment.msg_type, fragment.message_seq, body).serialize()
        out += record(h.content_type, payload, seq=h.seq, epoch=h.epoch, version=h.version)
    return out


@pytest.mark.parametrize("case, alert", [
    ("duplicate", AlertDescription.illegal_parameter),
    ("unsolicited", AlertDescription.unsupported_extension),
    ("past-end", AlertDescription.decode_error),
])
def test_server_hello_extension_attacks_are_alerts(identity, case, alert) -> None:
    """RFC 5246 7.4.1.4: "There MUST NOT be more than one extension of the same type";
    an extension the client did not offer is unsupported_extension."""
    link, flight4 = mid_handshake_server(identity)
    client = link.client.connection
    ems = b"\x00\x17\x00\x00"
    extensions = {"duplicate": ems + b"\xff\x01\x00\x01\x00" + ems,
                  "unsolicited": ems + b"\x00\x0f\x00\x01\x01",  # heartbeat (15)
                  "past-end": ems + b"\x00\x0b\x00\x09\x01"}[case]
    client.receive_datagram(_rewrite_server_hello(flight4, extensions), SERVER_ADDR, 0.0)
    ends = [e for e in iter(client.next_event, None) if isinstance(e, ConnectionTerminated)]
    assert [e.alert for e in ends] == [alert]
    (datagram, _), = client.datagrams_to_send(0.0)
    assert datagram[0] == ContentType.ALERT and datagram[-2:] == bytes([2, alert])  # fatal


def test_renegotiation_hello_with_duplicate_extensions_is_illegal_parameter(identity) -> None:
    """Authenticated (epoch 1) but malformed: decoded before renegotiation is refused."""
    from test_hostile_records import established
    link = established(identity)
    client, server = link.client.connection, link.server.connection
    hello = build_client_hello(client.configuration, bytes(32), None)
    body = _hello_with(hello, b"\x00\x08" + b"\x00\x17\x00\x00" * 2)
    message = HandshakeMessage(HandshakeType.client_hello, server._reassembler.next_message_seq,
                               body)
    server.receive_datagram(sealed(client, ContentType.HANDSHAKE, message.serialize()),
                            CLIENT_ADDR, link.now)
    ends = [e for e in iter(server.next_event, None) if isinstance(e, ConnectionTerminated)]
    assert [e.alert for e in ends] == [AlertDescription.illegal_parameter]


# -- conformance details the lists above lean on -------------------------------------------


def test_client_answers_hello_verify_request_with_the_same_parameters(identity) -> None:
    """RFC 6347 4.2.1: "the client MUST use the same parameter values (version, random,
    session_id, cipher_suites, compression_method) as it did in the original ClientHello";
    4.2.2: the second hello has message_seq 1."""
    from dtls.messages import decode_handshake
    _link, hello1, _hello2, fragment2 = _hellos(identity)
    fragment1 = first_fragment(hello1)
    first = decode_handshake(HandshakeType.client_hello, bytes(fragment1.body))
    second = decode_handshake(HandshakeType.client_hello, bytes(fragment2.body))
    assert (fragment1.message_seq, fragment2.message_seq) == (0, 1)
    assert first.cookie == b"" and len(second.cookie) > 0
    for name in ("client_version", "random", "session_id", "cipher_suites",
                 "compression_methods", "extensions"):
        assert getattr(first, name) == getattr(second, name), name


def test_alerts_and_hello_verify_requests_are_never_retransmitted(identity) -> None:
    """RFC 6347 4.2.1 / 4.2.7: the HelloVerifyRequest keeps no state to resend, and alerts
    are not retransmitted (a new one is only made if the offending record comes again)."""
    link, hello1, _hello2, _ = _hellos(identity)
    listener = make_pair(identity).server.connection
    listener.receive_datagram(hello1, CLIENT_ADDR, 0.0)
    assert len(listener.datagrams_to_send(0.0)) == 1 and listener.get_timer() is None
    client = link.client.connection
    client.receive_datagram(record(ContentType.HANDSHAKE, HandshakeMessage(
        HandshakeType.server_hello_done, 1, b"").serialize(), seq=1), SERVER_ADDR, 0.0)
    assert client.state is HandshakeState.CLOSED
    assert len(client.datagrams_to_send(0.0)) == 1  # the fatal alert, once
    assert client.get_timer() is None
    client.handle_timer(1000.0)
    assert client.datagrams_to_send(1000.0) == []


def test_no_stream_cipher_or_null_suite_is_offered() -> None:
    """RFC 6347 4.1.2.2: "RC4 MUST NOT be used with DTLS"; no NULL encryption either."""
    from dtls.config import SUPPORTED_CIPHER_SUITES
    from dtls.suites import CipherSuite
    names = [s.name for s in CipherSuite] + [s.name for s in SUPPORTED_CIPHER_SUITES]
    assert not [n for n in names if "RC4" in n or n.endswith("_NULL_SHA") or "WITH_NULL" in n]


# -- malformed certificates (found by tests/fuzz/fuzz_connection.py) ---------------------


def _mutated_certificate(der: bytes, how: str) -> bytes:
    if how == "bad-version":  # TBSCertificate [0] EXPLICIT version 7: InvalidVersion
        i = der.index(bytes.fromhex("a003020102"))
        return der[:i + 4] + b"\x07" + der[i + 5:]
    if how == "unknown-key-oid":  # id-ecPublicKey 1.2.840.10045.2.1 -> .2.9
        i = der.index(bytes.fromhex("06072a8648ce3d0201"))
        return der[:i + 8] + b"\x09" + der[i + 9:]
    if how == "point-off-curve":  # one bit of the P-256 point's x coordinate
        i = der.index(b"\x03\x42\x00\x04")
        return der[:i + 10] + bytes([der[i + 10] ^ 1]) + der[i + 11:]
    raise AssertionError(how)


def _rewrite_message(datagram: bytes, msg_type: int, body: bytes) -> bytes:
    """A datagram with one unfragmented epoch-0 handshake message's body replaced."""
    headers, _ = split_records(datagram)
    out = b""
    for h in headers:
        payload = datagram[h.offset + 13:h.end]
        if h.content_type == ContentType.HANDSHAKE and h.epoch == 0:
            fragment = parse_fragments(payload)[0]
            if fragment.msg_type == msg_type:
                payload = HandshakeMessage(msg_type, fragment.message_seq, body).serialize()
        out += record(h.content_type, payload, seq=h.seq, epoch=h.epoch, version=h.version)
    return out


CERT_ALERTS = (AlertDescription.bad_certificate, AlertDescription.unsupported_certificate,
               AlertDescription.decode_error, AlertDescription.unknown_ca)


def _certificate_attack(identity, verifier: str, how: str) -> Connection:
    """Deliver a flight whose Certificate carries a mutated leaf; returns the victim."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from dtls.config import ClientAuth
    from dtls.messages import Certificate
    ca = make_certificate("Test CA", ca=True)
    if verifier == "server-ca":
        client_cert = make_certificate("client.example", issuer=ca, client=True)
        link, flight4 = mid_handshake_server(identity, client={
            "certificate_chain": [client_cert[0]], "private_key": client_cert[1]},
            server={"client_auth": ClientAuth.REQUIRE, "ca_certificates": (ca[0],)})
        client, server = link.client.connection, link.server.connection
        client.receive_datagram(flight4, SERVER_ADDR, 0.0)
        flight5 = b"".join(d for d, _ in client.datagrams_to_send(0.0))
        der = client_cert[0].public_bytes(Encoding.DER)
        body = encode_handshake(Certificate([_mutated_certificate(der, how)]))[1]
        server.receive_datagram(_rewrite_message(flight5, HandshakeType.certificate, body),
                                CLIENT_ADDR, 0.0)
        return server
    leaf = make_certificate("localhost", issuer=ca)
    from dtls.verify import fingerprint_sha256
    client_config = {
        "client-none": {"pinned_sha256": (), "verify_peer": False},
        "client-pinned": {"pinned_sha256": (fingerprint_sha256(leaf[0]),)},
        "client-ca": {"pinned_sha256": (), "ca_certificates": (ca[0],)}}[verifier]
    link, flight4 = mid_handshake_server(leaf, client=client_config)
    der = leaf[0].public_bytes(Encoding.DER)
    body = encode_handshake(Certificate([_mutated_certificate(der, how)]))[1]
    link.client.connection.receive_datagram(
        _rewrite_message(flight4, HandshakeType.certificate, body), SERVER_ADDR, 0.0)
    return link.client.connection


def _assert_certificate_alert(victim: Connection) -> None:
    ends = [e for e in iter(victim.next_event, None) if isinstance(e, ConnectionTerminated)]
    assert [e.alert in CERT_ALERTS for e in ends] == [True], ends
    assert victim.state is HandshakeState.CLOSED


@pytest.mark.parametrize("verifier, how", [
    ("client-none", "bad-version"), ("client-pinned", "bad-version"),
    ("client-ca", "bad-version"), ("server-ca", "bad-version"),
    ("client-none", "unknown-key-oid"), ("client-none", "point-off-curve"),
])
def test_malformed_certificate_is_an_alert_not_an_exception(identity, verifier, how) -> None:
    _assert_certificate_alert(_certificate_attack(identity, verifier, how))


@pytest.mark.parametrize("verifier, how", [
    ("client-ca", "unknown-key-oid"), ("client-ca", "point-off-curve"),
    ("server-ca", "unknown-key-oid"), ("server-ca", "point-off-curve"),
])
def test_certificate_with_unusable_key_fails_path_validation(identity, verifier, how) -> None:
    _assert_certificate_alert(_certificate_attack(identity, verifier, how))


@pytest.mark.parametrize("message_seq", [0xFFFF, 0xFFFD])
def test_client_hello_with_a_huge_message_seq_never_raises(identity, message_seq) -> None:
    """RFC 6347 4.2.2: message_seq counts from 0 and has no wrap.  A cookie-bearing
    ClientHello near the top of the range must be dropped (or refused), not crash."""
    link = make_pair(identity)
    client, server = link.client.connection, link.server.connection
    client.connect(0.0)
    client.datagrams_to_send(0.0)
    hello = build_client_hello(client.configuration, bytes(32), None)
    hello.cookie = server.configuration.cookie_signer.make(CLIENT_ADDR, hello, 0.0)
    message = HandshakeMessage(HandshakeType.client_hello, message_seq, encode_handshake(hello)[1])
    server.receive_datagram(record(ContentType.HANDSHAKE, message.serialize(), seq=1),
                            CLIENT_ADDR, 0.0)
    server.datagrams_to_send(0.0)
    server.handle_timer(1.5)
    server.datagrams_to_send(1.5)
