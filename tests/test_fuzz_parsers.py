"""Property-based fuzzing of the parsers an unauthenticated peer reaches (issue 6).

Seeds are real: `real_handshake_corpus()` runs in-memory handshakes (ECDHE_ECDSA with a
session ticket, client certificates, PSK with a hint, ECDHE_PSK) and keeps every
datagram and every reassembled handshake message, so mutations start from bytes that
get past the first length field.  Complements (does not repeat) the per-codec fuzzing in
test_messages.py, the reassembler invariants in test_fragments.py and the C/Python
verdict cross-checks in test_record_crosscheck.py:

* record splitter (both backends): random and mutated datagrams; headers within bounds,
  contiguous, the tail accounted for, both backends identical;
* record open on mutated protected records: never raises, never OK unless unmodified;
* `decode_handshake` for every HandshakeType, random and mutated real bodies, with the
  key exchange each was negotiated under: only AlertError subclasses other than
  internal_error escape; anything accepted re-encodes to the same value;
* the extension-block parser in both hello contexts;
* the reassembler fed real flights re-fragmented at random boundaries per
  "retransmission", shuffled, duplicated and mixed with replays of delivered messages
  and structurally invalid fragments: exactly the original messages come out;
* `Connection.receive_datagram` itself on mutated real datagrams, for a fresh listener
  and a client mid-handshake: never raises, the listener never binds to a forged hello.

Fixed seeds (derandomize) and modest example counts keep this file to a few seconds;
tests/fuzz/ has the coverage-guided (atheris) versions for longer runs.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import pytest
from dtls_testing import CLIENT_ADDR, SERVER_ADDR, Link, make_certificate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtls import _pyrecord
from dtls.alerts import AlertDescription, AlertError
from dtls.buffer import Buffer, decode, encode
from dtls.config import ClientAuth, DtlsConfiguration
from dtls.connection import Connection, HandshakeState
from dtls.events import HandshakeCompleted
from dtls.extensions import HandshakeContext, pull_extensions, push_extensions
from dtls.fragments import (
    HandshakeFragment,
    HandshakeMessage,
    HandshakeReassembler,
    fragment_message,
    parse_fragments,
)
from dtls.messages import HandshakeType, KeyExchangeAlgorithm, decode_handshake, encode_handshake
from dtls.protection import BulkCipher, Protection
from dtls.recordbase import DTLS1_2, MAX_FRAGMENT, ContentType, OpenStatus
from dtls.suites import CipherSuite
from dtls.verify import fingerprint_sha256

try:
    from dtls import _crecord
except ImportError:  # pure-Python install: the twin alone
    _crecord = None  # type: ignore[assignment]

BACKENDS = [_pyrecord] + ([_crecord] if _crecord is not None else [])

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- the corpus --------------------------------------------------------------------------


@dataclass
class Corpus:
    datagrams: list[bytes] = field(default_factory=list)
    """Every datagram of every handshake, both directions, in order."""
    to_client: list[list[bytes]] = field(default_factory=list)
    """Per handshake: the datagrams the server sent, for replay at a fresh client."""
    messages: list[tuple[int, bytes, KeyExchangeAlgorithm]] = field(default_factory=list)
    """(msg_type, body, key exchange) of every epoch-0 handshake message seen."""
    client_hellos: list[bytes] = field(default_factory=list)


SCENARIOS: dict[str, tuple[dict[str, Any], dict[str, Any], KeyExchangeAlgorithm]] = {
    "ecdhe": ({}, {}, KeyExchangeAlgorithm.ECDHE),
    "client-auth": ({"client_cert": True}, {"client_auth": ClientAuth.REQUIRE},
                    KeyExchangeAlgorithm.ECDHE),
    "psk": ({"psk": b"k" * 16, "psk_identity": b"id", "pinned_sha256": (),
             "cipher_suites": (CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256,)},
            {"psk_lookup": {b"id": b"k" * 16}.get, "psk_identity_hint": b"hint"},
            KeyExchangeAlgorithm.PSK),
    "ecdhe-psk": ({"psk": b"k" * 16, "psk_identity": b"id", "pinned_sha256": (),
                   "cipher_suites": (CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,)},
                  {"psk_lookup": {b"id": b"k" * 16}.get}, KeyExchangeAlgorithm.ECDHE_PSK),
}


def scenario_pair(name: str, identity: Any, client_identity: Any) -> Link:
    client_extra, server_extra, _ = SCENARIOS[name]
    client_extra = dict(client_extra)
    cert, key = identity
    client = DtlsConfiguration(server_name="localhost", pinned_sha256=(fingerprint_sha256(cert),))
    server = DtlsConfiguration(is_client=False, certificate_chain=[cert], private_key=key)
    if client_extra.pop("client_cert", False):
        client = replace(client, certificate_chain=[client_identity[0]],
                         private_key=client_identity[1])
        server = replace(server, pinned_sha256=(fingerprint_sha256(client_identity[0]),))
    return Link(Connection(replace(client, **client_extra), peer_address=SERVER_ADDR),
                Connection(replace(server, **server_extra)))


@functools.lru_cache(maxsize=1)
def real_handshake_corpus() -> Corpus:
    """Datagrams and messages of one real handshake per scenario (cached per process)."""
    identity = make_certificate("localhost")
    client_identity = make_certificate("client.example", client=True)
    corpus = Corpus()
    for name, (_, _, kx) in SCENARIOS.items():
        link = scenario_pair(name, identity, client_identity)
        sent_to_client: list[bytes] = []
        reassemblers = {"c": HandshakeReassembler(), "s": HandshakeReassembler()}

        def spy(destination: Any, datagram: bytes, link: Link = link,
                sent: list[bytes] = sent_to_client, rs: dict = reassemblers,
                kx: KeyExchangeAlgorithm = kx) -> bytes:
            corpus.datagrams.append(datagram)
            to_client = destination is link.client
            if to_client:
                sent.append(datagram)
            headers, _ = _pyrecord.split_records(datagram)
            for h in headers:
                if h.content_type == ContentType.HANDSHAKE and h.epoch == 0:
                    r = rs["c" if to_client else "s"]
                    for fragment in parse_fragments(datagram[h.offset + 13:h.end]):
                        if fragment.msg_type == HandshakeType.hello_verify_request:
                            corpus.messages.append((fragment.msg_type, bytes(fragment.body), kx))
                            continue
                        if fragment.msg_type == HandshakeType.client_hello:
                            corpus.client_hellos.append(bytes(fragment.body))
                            corpus.messages.append((fragment.msg_type, bytes(fragment.body), kx))
                            continue
                        r.add(fragment)
                    for message in r.messages():
                        corpus.messages.append((message.msg_type, message.body, kx))
            return datagram

        link.filter = spy
        # The hellos' message_seqs: the server reassembler starts after the ClientHello.
        reassemblers["s"] = HandshakeReassembler(next_message_seq=2)
        reassemblers["c"] = HandshakeReassembler(next_message_seq=1)
        link.client.connection.connect(0.0)
        link.run(lambda link=link: bool(link.client.of_type(HandshakeCompleted)
                                        and link.server.of_type(HandshakeCompleted)))
        assert link.client.of_type(HandshakeCompleted), name
        corpus.to_client.append(sent_to_client)
    # Finished bodies are encrypted on the wire; the plaintext is just verify_data.
    corpus.messages.append((HandshakeType.finished, bytes(range(12)), KeyExchangeAlgorithm.ECDHE))
    corpus.messages.append((HandshakeType.hello_request, b"", KeyExchangeAlgorithm.ECDHE))
    return corpus


def test_corpus_has_every_message_type() -> None:
    types = {t for t, _, _ in real_handshake_corpus().messages}
    assert types >= {int(t) for t in HandshakeType if t != HandshakeType.certificate_status}


def mutate(draw: Any, data: bytes, max_ops: int = 6) -> bytes:
    """A few byte-level edits: set, flip, insert, delete, duplicate a slice, truncate."""
    wire = bytearray(data)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["set", "flip", "insert", "delete", "dup", "truncate"]))
        pos = draw(st.integers(0, len(wire)))
        if op == "set" and pos < len(wire):
            wire[pos] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFE, 0xFF, draw(st.integers(0, 255))]))
        elif op == "flip" and pos < len(wire):
            wire[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            wire[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del wire[pos:pos + draw(st.integers(1, 8))]
        elif op == "dup":
            n = draw(st.integers(1, 32))
            wire[pos:pos] = wire[pos:pos + n]
        elif op == "truncate":
            del wire[pos:]
    return bytes(wire)


# -- the record splitter ---------------------------------------------------------------------


def check_split(data: bytes) -> None:
    results = []
    for backend in BACKENDS:
        headers, trailing = backend.split_records(data)
        pos = 0
        for h in headers:
            assert h.offset == pos and h.length <= MAX_FRAGMENT and h.end <= len(data)
            assert h.content_type == data[pos] and h.length == int.from_bytes(
                data[pos + 11:pos + 13], "big")
            assert 0 <= h.epoch <= 0xFFFF and 0 <= h.seq < 1 << 48
            pos = h.end
        assert trailing == len(data) - pos
        if 0 < trailing:
            # The walk stopped for a reason: a short header, or a bad length at `pos`.
            rest = data[pos:]
            assert len(rest) < 13 or int.from_bytes(rest[11:13], "big") > min(
                MAX_FRAGMENT, len(rest) - 13)
        results.append(([tuple(h) for h in headers], trailing))
    assert all(r == results[0] for r in results)


@FUZZ
@given(st.binary(max_size=300))
def test_split_records_random_bytes(data: bytes) -> None:
    check_split(data)


@FUZZ
@given(st.data())
def test_split_records_mutated_real_datagrams(draw: st.DataObject) -> None:
    corpus = real_handshake_corpus()
    parts = draw.draw(st.lists(st.sampled_from(corpus.datagrams), min_size=1, max_size=3))
    check_split(mutate(draw.draw, b"".join(parts)))


# -- record open on mutated protected records -------------------------------------------------

AEADS = [Protection(BulkCipher.AES_128_GCM), Protection(BulkCipher.CHACHA20_POLY1305),
         Protection(BulkCipher.AES_128_CCM_8)]


@FUZZ
@given(st.data(), st.sampled_from(range(len(AEADS))), st.sampled_from(range(len(BACKENDS))),
       st.binary(max_size=64))
def test_open_mutated_records_never_ok_unless_unchanged(draw: st.DataObject, which: int,
                                                        backend_index: int,
                                                        payload: bytes) -> None:
    protection = AEADS[which]
    backend: ModuleType = BACKENDS[backend_index]
    keys = {"key": bytes(protection.key_length), "fixed_iv": bytes(protection.fixed_iv_length)}
    writer = backend.CipherState(protection, epoch=1, **keys)
    reader = backend.CipherState(protection, epoch=1, **keys)
    writer.next_seq = draw.draw(st.integers(0, (1 << 48) - 2))
    sealed = writer.seal(ContentType.APPLICATION_DATA, payload)
    forged = mutate(draw.draw, sealed)
    highest = reader.highest_seq
    result = reader.open(forged)
    if forged == sealed:
        assert result.status is OpenStatus.OK
    else:
        # Every byte of a record is authenticated (header via the AAD): any change fails.
        assert result.status is not OpenStatus.OK, (forged.hex(), sealed.hex())
        assert reader.highest_seq == highest  # CVE-2016-2181
    assert reader.open(sealed).status is (OpenStatus.OK if forged != sealed else OpenStatus.REPLAY)


# -- handshake message decoders ---------------------------------------------------------------

ALLOWED = (AlertDescription.decode_error, AlertDescription.illegal_parameter,
           AlertDescription.unexpected_message)


def check_decode(msg_type: int, body: bytes, kx: KeyExchangeAlgorithm,
                 version: int = DTLS1_2) -> None:
    try:
        message = decode_handshake(msg_type, body, version=version, key_exchange=kx)
    except AlertError as exc:
        assert exc.description in ALLOWED, exc  # never internal_error on peer input
        return
    encoded_type, again = encode_handshake(message, version=version)
    assert encoded_type == msg_type
    assert decode_handshake(msg_type, again, version=version, key_exchange=kx) == message
    if again != body:
        # The one non-canonical form we accept: an empty extension block (00 00) after a
        # hello, which re-encodes as absent (extensions.push_extensions).
        assert msg_type in (HandshakeType.client_hello, HandshakeType.server_hello)
        assert body == again + b"\x00\x00", (body.hex(), again.hex())


def test_real_messages_round_trip_exactly() -> None:
    for msg_type, body, kx in real_handshake_corpus().messages:
        message = decode_handshake(msg_type, body, key_exchange=kx)
        assert encode_handshake(message) == (msg_type, body)


@FUZZ
@given(st.sampled_from([int(t) for t in HandshakeType] + [5, 99, 255]), st.binary(max_size=300),
       st.sampled_from(list(KeyExchangeAlgorithm)))
def test_decode_handshake_random_bodies(msg_type: int, body: bytes,
                                        kx: KeyExchangeAlgorithm) -> None:
    check_decode(msg_type, body, kx)


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_decode_handshake_mutated_real_bodies(draw: st.DataObject) -> None:
    msg_type, body, kx = draw.draw(st.sampled_from(real_handshake_corpus().messages))
    if draw.draw(st.booleans()):
        # Sometimes decode under another key exchange or type: parsers meet bodies they
        # were not written for when a peer lies about the suite.
        kx = draw.draw(st.sampled_from(list(KeyExchangeAlgorithm)))
    check_decode(msg_type, mutate(draw.draw, body), kx)


# -- the extension block ------------------------------------------------------------------------


def extension_blocks() -> list[tuple[HandshakeContext, bytes]]:
    """The extension block of every real ClientHello and ServerHello."""
    blocks = []
    for msg_type, body, kx in real_handshake_corpus().messages:
        if msg_type not in (HandshakeType.client_hello, HandshakeType.server_hello):
            continue
        hello: Any = decode_handshake(msg_type, body, key_exchange=kx)
        context = HandshakeContext(msg_type)
        blocks.append((context, encode(lambda b, e, c=context: push_extensions(b, e, c),
                                       hello.extensions)))
    return blocks


def check_extensions(context: HandshakeContext, data: bytes) -> None:
    buf = Buffer(data)
    try:
        extensions = pull_extensions(buf, context)
        buf.require_eof("extensions")
    except AlertError as exc:
        assert exc.description in ALLOWED, exc
        return
    types = [e.extension_type for e in extensions]
    assert len(types) == len(set(types))  # RFC 5246 7.4.1.4
    again = encode(lambda b, e: push_extensions(b, e, context), extensions)
    assert decode(lambda b: pull_extensions(b, context), again) == extensions


@FUZZ
@given(st.sampled_from(list(HandshakeContext)), st.binary(max_size=200))
def test_extensions_random_bytes(context: HandshakeContext, data: bytes) -> None:
    check_extensions(context, data)


@FUZZ
@given(st.data())
def test_extensions_mutated_real_blocks(draw: st.DataObject) -> None:
    context, block = draw.draw(st.sampled_from(extension_blocks()))
    if draw.draw(st.booleans()):
        context = HandshakeContext(3 - context)  # the other hello's rules
    check_extensions(context, mutate(draw.draw, block))


# -- the reassembler on real flights ------------------------------------------------------------


def real_flights() -> list[list[HandshakeMessage]]:
    """Runs of consecutive messages as the reassembler sees them (seq renumbered 0..)."""
    corpus = real_handshake_corpus()
    bodies = [(t, b) for t, b, _ in corpus.messages
              if t not in (HandshakeType.client_hello, HandshakeType.hello_verify_request)]
    return [[HandshakeMessage(t, i, b) for i, (t, b) in enumerate(bodies[start:start + 5])]
            for start in range(0, len(bodies) - 1, 3)]


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.randoms(use_true_random=False))
def test_reassembler_real_flights_any_order(draw: st.DataObject, rng: random.Random) -> None:
    flight = draw.draw(st.sampled_from(real_flights()))
    pieces: list[bytes] = []
    for _ in range(draw.draw(st.integers(1, 3))):  # each "retransmission" cut differently
        size = draw.draw(st.integers(1, 400))
        for message in flight:
            pieces += fragment_message(message.msg_type, message.message_seq, message.body, size)
    pieces += rng.sample(pieces, k=min(len(pieces), draw.draw(st.integers(0, 10))))  # dups
    # Structurally invalid fragments never matter, whatever their seq.
    for message in flight[:2]:
        n = len(message.body)
        pieces.append(HandshakeFragment(message.msg_type, n, message.message_seq, n,
                                        b"\x00").serialize())  # one past the end
        pieces.append(HandshakeFragment(message.msg_type, 1 << 23, message.message_seq, 0,
                                        b"\x00").serialize())  # 8 MiB: too long
    pieces.append(HandshakeFragment(11, 10, 5000, 0, b"far future").serialize())
    rng.shuffle(pieces)
    r = HandshakeReassembler()
    delivered: list[HandshakeMessage] = []
    i = 0
    while i < len(pieces):  # several fragments per record, as a packer might put them
        k = rng.randint(1, 4)
        r.add_record(b"".join(pieces[i:i + k]))
        i += k
        assert r.buffered_bytes <= r.max_buffered_bytes
        delivered += r.messages()
        # Replays of delivered messages are recognised as retransmissions.
        for old in delivered[-1:]:
            r.add_record(old.serialize())
    assert delivered == flight


# -- the whole receive path ----------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _identity() -> Any:
    return make_certificate("localhost")


def fresh_listener() -> Connection:
    cert, key = _identity()
    return Connection(DtlsConfiguration(is_client=False, certificate_chain=[cert],
                                        private_key=key))


@FUZZ
@given(st.data())
def test_listener_survives_mutated_client_datagrams(draw: st.DataObject) -> None:
    corpus = real_handshake_corpus()
    server = fresh_listener()
    datagram = mutate(draw.draw, draw.draw(st.sampled_from(corpus.datagrams)))
    server.receive_datagram(datagram, CLIENT_ADDR, 0.0)
    # Forged hellos cannot carry a valid cookie for this server's fresh secret.
    assert server.state is HandshakeState.SERVER_WAIT_CLIENT_HELLO
    assert server.peer_address is None and not server._deferred
    for reply, _addr in server.datagrams_to_send(0.0):
        assert len(reply) <= len(datagram)  # HelloVerifyRequest: no amplification


@FUZZ
@given(st.data())
def test_client_survives_mutated_server_flights(draw: st.DataObject) -> None:
    corpus = real_handshake_corpus()
    index = draw.draw(st.integers(0, len(corpus.to_client) - 1))
    flights = corpus.to_client[index]
    cert, _ = _identity()
    client = Connection(DtlsConfiguration(server_name="localhost",
                                          pinned_sha256=(fingerprint_sha256(cert),),
                                          verify_peer=False),
                        peer_address=SERVER_ADDR)
    client.connect(0.0)
    target = draw.draw(st.integers(0, len(flights) - 1))
    for i, datagram in enumerate(flights):
        if i == target:
            datagram = mutate(draw.draw, datagram)
        client.receive_datagram(datagram, SERVER_ADDR, float(i))  # never raises
        client.handle_timer(float(i))
    client.datagrams_to_send(0.0)
    # A mutated genuine flight cannot complete: the randoms differ from this client's.
    events = list(iter(client.next_event, None))
    assert not any(isinstance(e, HandshakeCompleted) for e in events)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda m: m.BACKEND)
def test_split_of_the_real_corpus(backend: ModuleType) -> None:
    for datagram in real_handshake_corpus().datagrams:
        headers, trailing = backend.split_records(datagram)
        assert headers and trailing == 0
