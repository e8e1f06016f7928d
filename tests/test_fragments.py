"""Tests for dtls.fragments: handshake header, fragmentation, flight packing, reassembly.

The reassembler is fed what RFC 6347 4.2.3 says the network may do (reorder, duplicate,
overlap, change fragment boundaries between retransmissions) and what issue 6 says an
attacker will do (CVE-2014-0195 bounds, 16 MiB lengths, far-future message_seq, header
changes between fragments, rewritten overlaps); every cap has a test that hits it.
"""

from __future__ import annotations

import itertools
import random
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtls.alerts import DecodeError
from dtls.fragments import (
    HANDSHAKE_HEADER_LENGTH,
    DropReason,
    FlightPacker,
    FragmentStatus,
    HandshakeFragment,
    HandshakeHeader,
    HandshakeMessage,
    HandshakeReassembler,
    fragment_message,
    pack_flight,
    parse_fragments,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frag(
    seq: int, offset: int, body: bytes, *, length: int, msg_type: int = 11
) -> HandshakeFragment:
    return HandshakeFragment(msg_type, length, seq, offset, body)


def rand_body(rng: random.Random, n: int) -> bytes:
    # A plain Random seeded from hypothesis's: fast for 20 kB bodies, still reproducible.
    return random.Random(rng.getrandbits(64)).randbytes(n)


# --------------------------------------------------------------------------------------------
# Header and parse
# --------------------------------------------------------------------------------------------


def test_header_known_bytes() -> None:
    header = HandshakeHeader(1, 0x010203, 0x0405, 0x060708, 0x090A0B)
    wire = bytes.fromhex("01 010203 0405 060708 090a0b")
    assert header.serialize() == wire
    assert HandshakeHeader.parse(wire) == header
    assert HandshakeHeader.parse(b"xx" + wire, 2) == header


@given(
    st.integers(0, 0xFF), st.integers(0, 0xFFFFFF), st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFF), st.integers(0, 0xFFFFFF),
)
def test_header_round_trip(t: int, length: int, seq: int, off: int, flen: int) -> None:
    header = HandshakeHeader(t, length, seq, off, flen)
    wire = header.serialize()
    assert len(wire) == HANDSHAKE_HEADER_LENGTH
    assert HandshakeHeader.parse(wire) == header


@pytest.mark.parametrize("fields", [
    (256, 0, 0, 0, 0), (0, 1 << 24, 0, 0, 0), (0, 0, 1 << 16, 0, 0),
    (0, 0, 0, 1 << 24, 0), (0, 0, 0, 0, 1 << 24), (-1, 0, 0, 0, 0),
])
def test_header_serialize_rejects_out_of_range(fields: tuple[int, int, int, int, int]) -> None:
    with pytest.raises(ValueError):
        HandshakeHeader(*fields).serialize()


def test_header_parse_truncated() -> None:
    with pytest.raises(DecodeError):
        HandshakeHeader.parse(bytes(11))
    with pytest.raises(DecodeError):
        HandshakeHeader.parse(bytes(12), 1)


def test_parse_several_fragments_zero_copy() -> None:
    a = fragment_message(1, 0, b"hello", 100)[0]
    b = fragment_message(2, 1, b"", 100)[0]
    c = HandshakeFragment(11, 1000, 2, 500, b"xyz").serialize()
    payload = a + b + c
    fragments = parse_fragments(payload)
    assert [(f.msg_type, f.message_seq, f.fragment_offset, f.length, bytes(f.body))
            for f in fragments] == [(1, 0, 0, 5, b"hello"), (2, 1, 0, 0, b""),
                                    (11, 2, 500, 1000, b"xyz")]
    assert all(isinstance(f.body, memoryview) and f.body.obj is payload for f in fragments)
    assert b"".join(f.serialize() for f in fragments) == payload


@pytest.mark.parametrize("payload", [
    b"",                                                   # no header at all
    bytes(11),                                             # truncated header
    fragment_message(1, 0, b"abc", 10)[0] + bytes(5),      # second header truncated
    fragment_message(1, 0, b"abc", 10)[0][:-1],            # body runs past the record
    HandshakeHeader(1, 0xFFFFFF, 0, 0, 0xFFFFFF).serialize() + b"x",
])
def test_parse_rejects(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_fragments(payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parse_fuzz_only_decode_error(data: bytes) -> None:
    """Random bytes either parse, and then re-serialize byte for byte, or raise DecodeError."""
    try:
        fragments = parse_fragments(data)
    except DecodeError:
        return
    assert b"".join(f.serialize() for f in fragments) == data


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 40), st.integers(0, 0xFFFF),
                          st.binary(max_size=40)), min_size=1, max_size=5),
       st.binary(min_size=1, max_size=20), st.integers(0, 1000))
def test_parse_fuzz_mutated_valid(parts: list[tuple[int, int, int, bytes]],
                                  junk: bytes, where: int) -> None:
    """Valid records with bytes spliced in or cut off never raise anything but DecodeError."""
    payload = b"".join(HandshakeFragment(t, len(b) + extra, seq, extra, b).serialize()
                       for t, extra, seq, b in parts)
    where %= len(payload) + 1
    for mutated in (payload[:where] + junk + payload[where:], payload[:where]):
        try:
            parse_fragments(mutated)
        except DecodeError:
            pass


# --------------------------------------------------------------------------------------------
# Fragmentation and flight packing
# --------------------------------------------------------------------------------------------


@FAST
@given(st.integers(0, 5000), st.integers(1, 2000), st.randoms(use_true_random=False))
def test_fragment_message_covers_body(n: int, max_payload: int, rng: random.Random) -> None:
    body = rand_body(rng, n)
    chunks = fragment_message(22, 7, body, max_payload)
    fragments = [f for c in chunks for f in parse_fragments(c)]
    assert len(fragments) == len(chunks) == max(1, -(-n // max_payload))
    offset = 0
    for f in fragments:
        assert (f.msg_type, f.length, f.message_seq, f.fragment_offset) == (22, n, 7, offset)
        assert 0 < f.fragment_length <= max_payload or n == 0
        offset += f.fragment_length
    assert offset == n
    assert b"".join(bytes(f.body) for f in fragments) == body


def test_fragment_message_empty_and_errors() -> None:
    assert fragment_message(14, 3, b"", 5) == [HandshakeHeader(14, 0, 3, 0, 0).serialize()]
    with pytest.raises(ValueError):
        fragment_message(1, 0, b"abc", 0)


def test_transcript_form_is_unfragmented() -> None:
    """RFC 6347 4.2.6: the Finished hash sees each message as one fragment."""
    message = HandshakeMessage(11, 2, bytes(range(200)))
    canonical = message.serialize()
    assert canonical == HandshakeHeader(11, 200, 2, 0, 200).serialize() + message.body
    assert canonical == fragment_message(11, 2, message.body, 1 << 20)[0]
    assert HandshakeMessage.parse(canonical) == message
    for bad in (canonical[:-1], canonical + b"x", message.fragment(100)[0], canonical[:11]):
        with pytest.raises(DecodeError):
            HandshakeMessage.parse(bad)
    reassembler = HandshakeReassembler(next_message_seq=2)
    for chunk in reversed(message.fragment(33)):
        reassembler.add_record(chunk)
    assert [m.serialize() for m in reassembler.messages()] == [canonical]


Hint = tuple[str, int]  # (content, epoch) as a connection might use


def overhead(hint: Hint) -> int:
    return 13 if hint[1] == 0 else 13 + 8 + 16  # plaintext vs AES-GCM record


Flight = tuple[list[tuple[Hint, HandshakeMessage | bytes]], list[HandshakeMessage]]


@st.composite
def flights(draw: st.DrawFn) -> Flight:
    """A flight: handshake messages in epoch 0, maybe a ChangeCipherSpec, then epoch 1."""
    rng = draw(st.randoms(use_true_random=False))
    sizes = draw(st.lists(st.integers(0, 5000), min_size=1, max_size=5))
    ccs_at = draw(st.integers(0, len(sizes)))
    items: list[tuple[Hint, HandshakeMessage | bytes]] = []
    messages = []
    epoch = 0
    for seq, size in enumerate(sizes):
        if seq == ccs_at:
            items.append((("ccs", 0), b"\x01"))
            epoch = 1
        message = HandshakeMessage(rng.randrange(256), seq, rand_body(rng, size))
        messages.append(message)
        items.append((("handshake", epoch), message))
    if ccs_at == len(sizes):
        items.append((("ccs", 0), b"\x01"))
    return items, messages


@FAST
@given(flights(), st.integers(64, 1500), st.booleans())
def test_pack_flight_fits_and_reassembles(
    flight: Flight,
    datagram_size: int, coalesce: bool,
) -> None:
    items, messages = flight
    datagrams = pack_flight(items, datagram_size, overhead, coalesce=coalesce)
    reassembler = HandshakeReassembler()
    atomic = []
    epochs_seen = []
    for records in datagrams:
        assert records, "no empty datagrams"
        assert sum(overhead(h) + len(p) for h, p in records) <= datagram_size
        for hint, payload in records:
            epochs_seen.append(hint[1])
            if hint[0] == "ccs":
                atomic.append(payload)
                continue
            fragments = parse_fragments(payload)
            assert coalesce or len(fragments) == 1
            for f in fragments:
                assert reassembler.add(f) is FragmentStatus.ACCEPTED
    assert epochs_seen == sorted(epochs_seen), "flight order preserved"
    assert atomic == [b"\x01"]
    assert list(reassembler.messages()) == messages
    assert reassembler.buffered_bytes == 0


def test_pack_flight_coalesces_small_messages() -> None:
    items: list[tuple[Hint, HandshakeMessage | bytes]] = [
        (("handshake", 0), HandshakeMessage(2, 1, bytes(70))),
        (("handshake", 0), HandshakeMessage(12, 2, bytes(100))),
        (("handshake", 0), HandshakeMessage(14, 3, b"")),
    ]
    separate = pack_flight(items, 1200, overhead)
    together = pack_flight(items, 1200, overhead, coalesce=True)
    assert len(separate) == len(together) == 1
    assert len(separate[0]) == 3 and len(together[0]) == 1
    assert [f.msg_type for f in parse_fragments(together[0][0][1])] == [2, 12, 14]


def test_pack_flight_respects_record_limit() -> None:
    message = HandshakeMessage(11, 0, bytes(40000))
    for coalesce in (False, True):
        datagrams = pack_flight([("hs", message)], 60000, lambda _: 13,
                                coalesce=coalesce, max_record_payload=16384)
        assert len(datagrams) == 1
        assert [len(p) for _, p in datagrams[0]] == [16384, 16384, 40000 - 2 * 16372 + 12]


def test_pack_flight_too_small() -> None:
    with pytest.raises(ValueError):
        pack_flight([("hs", HandshakeMessage(1, 0, b"x"))], 13 + 12, lambda _: 13)
    with pytest.raises(ValueError):
        pack_flight([("ccs", b"\x01")], 13, lambda _: 13)
    # One byte more and it fits: header + one body byte per fragment.
    assert len(pack_flight([("hs", HandshakeMessage(1, 0, b"xy"))], 26, lambda _: 13)) == 2


def test_flight_packer_take_api() -> None:
    packer: FlightPacker[str] = FlightPacker([("a", HandshakeMessage(1, 0, bytes(10))),
                                              ("b", b"\x01")])
    assert packer.next_hint == "a" and packer.next_is_handshake and packer.min_room() == 13
    assert packer.take(12) is None
    first = packer.take(16)
    assert first is not None and parse_fragments(first)[0].fragment_length == 4
    rest = packer.take(1000)
    assert rest is not None and parse_fragments(rest)[0].fragment_offset == 4
    assert packer.next_hint == "b" and not packer.next_is_handshake
    assert packer.take(0) is None
    assert packer.take(1) == b"\x01"
    assert packer.done and packer.take(1000) is None
    with pytest.raises(TypeError):
        FlightPacker([("x", "not bytes")])


@FAST
@given(flights(), st.integers(300, 1500), st.integers(64, 299), st.randoms(use_true_random=False))
def test_retransmission_with_smaller_pmtu_overlaps(
    flight: Flight,
    big: int, small: int, rng: random.Random,
) -> None:
    """RFC 6347 4.1.1.1 / 4.2.3: a flight re-sent with smaller fragments mixes with what
    survived of the first transmission; the boundaries differ, the bytes agree."""
    items, messages = flight
    pieces = []
    for size in (big, small):
        for records in pack_flight(items, size, overhead):
            pieces += [p for h, p in records if h[0] == "handshake" and rng.random() < 0.7]
    # Whatever was lost in both rounds, add the small round once more, in full.
    for records in pack_flight(items, small, overhead):
        pieces += [p for h, p in records if h[0] == "handshake"]
    rng.shuffle(pieces)
    reassembler = HandshakeReassembler()
    for piece in pieces:
        result = reassembler.add_record(piece)[0]
        assert result in (FragmentStatus.ACCEPTED, FragmentStatus.DUPLICATE)
    assert list(reassembler.messages()) == messages


# --------------------------------------------------------------------------------------------
# Reassembly: the network's worst
# --------------------------------------------------------------------------------------------


def random_fragments(rng: random.Random, message: HandshakeMessage, max_cuts: int,
                     extra: int) -> list[HandshakeFragment]:
    """A random partition of the message plus `extra` consistent overlapping fragments."""
    n = len(message.body)
    if n == 0:
        empty = frag(message.message_seq, 0, b"", length=0, msg_type=message.msg_type)
        return [empty] * (1 + extra)
    cuts = sorted({0, n, *(rng.randrange(1, n) for _ in range(min(max_cuts, n - 1)))})
    spans = list(itertools.pairwise(cuts))
    for _ in range(extra):  # overlaps and duplicates, consistent with the body
        a = rng.randrange(n)
        spans.append((a, rng.randrange(a + 1, n + 1)))
    return [frag(message.message_seq, a, message.body[a:b], length=n, msg_type=message.msg_type)
            for a, b in spans]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 20000), min_size=1, max_size=6), st.integers(0, 40),
       st.integers(0, 20), st.integers(0, 3), st.randoms(use_true_random=False))
def test_reassembly_any_order(sizes: list[int], max_cuts: int, extra: int, first_seq: int,
                              rng: random.Random) -> None:
    """Messages fragmented randomly, shuffled, duplicated, overlapped and interleaved across
    message_seqs come out exactly as sent, in message_seq order."""
    messages = [HandshakeMessage(rng.randrange(256), first_seq + i, rand_body(rng, n))
                for i, n in enumerate(sizes)]
    fragments = [f for m in messages for f in random_fragments(rng, m, max_cuts, extra)]
    fragments += rng.sample(fragments, len(fragments) // 3)  # plain duplicates
    rng.shuffle(fragments)
    reassembler = HandshakeReassembler(next_message_seq=first_seq)
    delivered: list[HandshakeMessage] = []
    # Pack a few fragments per record, as RFC 6347 4.2.3 allows, and drain as we go.
    i = 0
    while i < len(fragments):
        k = rng.randint(1, 4)
        payload = b"".join(f.serialize() for f in fragments[i:i + k])
        for result in reassembler.add_record(payload):
            # A copy arriving after its message was delivered is a RETRANSMISSION.
            assert isinstance(result, FragmentStatus)
        delivered += reassembler.messages()
        i += k
    assert delivered == messages
    assert reassembler.next_message_seq == first_seq + len(messages)
    assert reassembler.buffered_bytes == 0 and reassembler.pending_message_seqs == []
    assert not any(isinstance(r, DropReason) for r in reassembler.counts)


def test_delivery_waits_for_the_gap() -> None:
    r = HandshakeReassembler()
    assert r.add(frag(1, 0, b"second", length=6)) is FragmentStatus.ACCEPTED
    assert r.next_message() is None and list(r.messages()) == []
    assert r.add(frag(0, 3, b"st", length=5)) is FragmentStatus.ACCEPTED
    assert r.next_message() is None
    assert r.add(frag(0, 0, b"fir", length=5)) is FragmentStatus.ACCEPTED
    assert [(m.message_seq, m.body) for m in r.messages()] == [(0, b"first"), (1, b"second")]
    assert r.next_message_seq == 2


def test_empty_message_and_duplicates() -> None:
    r = HandshakeReassembler()
    assert r.add(frag(0, 0, b"", length=0, msg_type=14)) is FragmentStatus.ACCEPTED
    assert r.add(frag(0, 0, b"", length=0, msg_type=14)) is FragmentStatus.DUPLICATE
    assert r.add(frag(1, 0, b"abcd", length=8)) is FragmentStatus.ACCEPTED
    assert r.add(frag(1, 1, b"bc", length=8)) is FragmentStatus.DUPLICATE
    assert r.received_ranges(1) == [(0, 4)]
    assert r.next_message() == HandshakeMessage(14, 0, b"")
    assert r.next_message() is None


def test_retransmission_reported() -> None:
    """RFC 6347 4.2.4: fragments of a message already delivered mean the peer resent its
    flight; the caller resends its own last flight."""
    r = HandshakeReassembler()
    r.add_record(fragment_message(1, 0, b"hello", 100)[0])
    assert r.next_message() is not None
    assert r.add_record(fragment_message(1, 0, b"hello", 2)[1]) == [FragmentStatus.RETRANSMISSION]
    assert r.counts[FragmentStatus.RETRANSMISSION] == 1
    assert r.pending_message_seqs == []


def test_add_record_decode_error_changes_nothing() -> None:
    r = HandshakeReassembler()
    good = fragment_message(1, 0, b"hello", 100)[0]
    with pytest.raises(DecodeError):
        r.add_record(good + good[:-1])
    assert r.pending_message_seqs == [] and sum(r.counts.values()) == 0


# --------------------------------------------------------------------------------------------
# Reassembly: hostile input and caps
# --------------------------------------------------------------------------------------------


def test_declared_16_mib_allocates_nothing() -> None:
    """Issue 6 / CVE-2014-0195 family: a 16 MiB declared length is refused before any
    allocation, whatever the fragment claims."""
    r = HandshakeReassembler()
    records = [HandshakeHeader(11, 0xFFFFFF, seq, off, 100).serialize() + bytes(100)
               for seq in range(3) for off in (0, 1000, 0xFFFFFF - 100)]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for _ in range(10):
            for record in records:
                assert r.add_record(record) == [DropReason.MESSAGE_TOO_LONG]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024, peak
    assert r.buffered_bytes == 0 and r.pending_message_seqs == []
    assert r.counts[DropReason.MESSAGE_TOO_LONG] == 10 * len(records)


def test_message_length_cap_is_inclusive() -> None:
    r = HandshakeReassembler(max_message_length=1000, max_buffered_bytes=1000)
    assert r.add(frag(0, 0, b"x", length=1001)) is DropReason.MESSAGE_TOO_LONG
    assert r.add(frag(0, 0, b"x", length=1000)) is FragmentStatus.ACCEPTED
    assert r.buffered_bytes == 1000


def test_out_of_bounds_dropped() -> None:
    """CVE-2014-0195: fragment_offset + fragment_length > length must never be written."""
    r = HandshakeReassembler()
    assert r.add(frag(0, 0, b"abcd", length=10)) is FragmentStatus.ACCEPTED
    for offset, body in ((7, b"abcd"), (10, b"a"), (0xFFFFFF, b"a"), (0, bytes(11))):
        assert r.add(frag(0, offset, body, length=10)) is DropReason.OUT_OF_BOUNDS
    assert r.add(frag(1, 1, b"", length=0)) is DropReason.OUT_OF_BOUNDS
    assert r.counts[DropReason.OUT_OF_BOUNDS] == 5
    assert r.received_ranges(0) == [(0, 4)] and r.pending_message_seqs == [0]


def test_far_future_message_seq_dropped() -> None:
    r = HandshakeReassembler(next_message_seq=5, max_messages_ahead=4)
    assert r.add(frag(9, 0, b"ok", length=2)) is FragmentStatus.ACCEPTED
    assert r.add(frag(10, 0, b"no", length=2)) is DropReason.TOO_FAR_AHEAD
    assert r.add(frag(0xFFFF, 0, b"no", length=2)) is DropReason.TOO_FAR_AHEAD
    assert r.pending_message_seqs == [9]
    r0 = HandshakeReassembler(max_messages_ahead=0)
    assert r0.add(frag(1, 0, b"no", length=2)) is DropReason.TOO_FAR_AHEAD


@pytest.mark.parametrize("change", ["msg_type", "length"])
def test_header_change_between_fragments_dropped(change: str) -> None:
    """The first fragment fixes msg_type and length; a fragment disagreeing is dropped (RFC
    6347 4.1.2.7) and the message still completes from the consistent fragments."""
    body = bytes(range(100))
    r = HandshakeReassembler()
    assert r.add(frag(0, 0, body[:40], length=100)) is FragmentStatus.ACCEPTED
    bad = frag(0, 40, body[40:], length=100 if change == "msg_type" else 120,
               msg_type=12 if change == "msg_type" else 11)
    assert r.add(bad) is DropReason.INCONSISTENT_HEADER
    assert r.received_ranges(0) == [(0, 40)]
    assert r.add(frag(0, 40, body[40:], length=100)) is FragmentStatus.ACCEPTED
    # Also after completion, while the message waits for its turn.
    r2 = HandshakeReassembler(next_message_seq=0)
    r2.add(frag(1, 0, body, length=100))
    assert r2.add(frag(1, 0, body, length=100, msg_type=1)) is DropReason.INCONSISTENT_HEADER
    assert r.next_message() == HandshakeMessage(11, 0, body)
    assert r.counts[DropReason.INCONSISTENT_HEADER] == 1


def test_overlap_with_different_bytes_dropped() -> None:
    """A later fragment may not rewrite earlier bytes: it is dropped whole (its new bytes
    too), and the message completes from consistent fragments."""
    body = bytes(range(60))
    r = HandshakeReassembler()
    assert r.add(frag(0, 10, body[10:30], length=60)) is FragmentStatus.ACCEPTED
    tampered = bytearray(body[20:50])
    tampered[5] ^= 0xFF  # inside the held range [10, 30)
    assert r.add(frag(0, 20, bytes(tampered), length=60)) is DropReason.OVERLAP_MISMATCH
    assert r.received_ranges(0) == [(10, 30)], "the non-overlapping part was not written either"
    # Spanning two held ranges, mismatch in the second one.
    assert r.add(frag(0, 40, body[40:50], length=60)) is FragmentStatus.ACCEPTED
    spanning = bytearray(body[0:60])
    spanning[45] ^= 1
    assert r.add(frag(0, 0, bytes(spanning), length=60)) is DropReason.OVERLAP_MISMATCH
    for a, b in ((0, 10), (30, 40), (50, 60)):
        assert r.add(frag(0, a, body[a:b], length=60)) is FragmentStatus.ACCEPTED
    # Once complete, a differing copy is still a mismatch, an equal one a duplicate.
    assert r.add(frag(0, 0, bytes(spanning), length=60)) is DropReason.OVERLAP_MISMATCH
    assert r.add(frag(0, 0, body, length=60)) is FragmentStatus.DUPLICATE
    assert r.next_message() == HandshakeMessage(11, 0, body)
    assert r.counts[DropReason.OVERLAP_MISMATCH] == 3


def test_zero_length_fragments_cause_no_churn() -> None:
    r = HandshakeReassembler()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for i in range(10000):
            assert r.add(frag(i % 7, i % 50, b"", length=100)) is DropReason.EMPTY_FRAGMENT
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024, peak
    assert r.pending_message_seqs == [] and r.buffered_bytes == 0
    assert r.counts[DropReason.EMPTY_FRAGMENT] == 10000


def test_fragment_count_cap() -> None:
    """1000 disjoint 1-byte fragments of one message: the range list stops at the cap, and
    fragments touching held ranges are still accepted; then the message completes."""
    cap = 16
    body = bytes(random.Random(1).randbytes(2000))
    r = HandshakeReassembler(max_fragments_per_message=cap)
    results = [r.add(frag(0, 2 * i, body[2 * i:2 * i + 1], length=2000)) for i in range(1000)]
    assert results.count(FragmentStatus.ACCEPTED) == cap
    assert results.count(DropReason.TOO_MANY_FRAGMENTS) == 1000 - cap
    assert len(r.received_ranges(0)) == cap
    # Touching an existing range merges into it, so it is never refused by the cap.
    assert r.add(frag(0, 1, body[1:2], length=2000)) is FragmentStatus.ACCEPTED
    assert len(r.received_ranges(0)) == cap - 1
    assert r.add(frag(0, 0, body, length=2000)) is FragmentStatus.ACCEPTED
    assert r.next_message() == HandshakeMessage(11, 0, body)


def test_fragment_count_cap_bounds_memory() -> None:
    r = HandshakeReassembler()  # default cap
    tracemalloc.start()
    try:
        r.add(frag(0, 0, b"x", length=60000))
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for i in range(1, 20000):
            r.add(frag(0, 3 * i, b"x", length=60000))
        now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(r.received_ranges(0)) == r.max_fragments_per_message
    assert now - base < 32 * 1024 and peak - base < 64 * 1024, (now - base, peak - base)


def test_buffered_bytes_cap_and_next_message_evicts() -> None:
    """Future messages share max_buffered_bytes; junk there cannot block the next expected
    message, which evicts later messages (farthest first) to fit."""
    r = HandshakeReassembler(max_message_length=1000, max_buffered_bytes=2500,
                             max_messages_ahead=6)
    assert r.add(frag(1, 0, b"a", length=1000)) is FragmentStatus.ACCEPTED
    assert r.add(frag(2, 0, b"b", length=1000)) is FragmentStatus.ACCEPTED
    assert r.add(frag(3, 0, b"c", length=1000)) is DropReason.BUFFER_FULL
    assert r.add(frag(3, 0, bytes(500), length=500)) is FragmentStatus.ACCEPTED
    assert r.buffered_bytes == 2500 and r.pending_message_seqs == [1, 2, 3]
    assert r.add(frag(0, 0, bytes(800), length=800)) is FragmentStatus.ACCEPTED
    assert r.pending_message_seqs == [0, 1] and r.counts[DropReason.EVICTED] == 2
    assert r.buffered_bytes == 1800 <= r.max_buffered_bytes
    assert r.next_message() == HandshakeMessage(11, 0, bytes(800))
    assert r.buffered_bytes == 1000


def test_constructor_validation() -> None:
    for kwargs in ({"max_buffered_bytes": 10, "max_message_length": 11},
                   {"max_messages_ahead": -1}, {"max_fragments_per_message": 0},
                   {"next_message_seq": 1 << 16}, {"max_message_length": 1 << 24}):
        with pytest.raises(ValueError):
            HandshakeReassembler(**kwargs)


@st.composite
def hostile_fragment(draw: st.DrawFn) -> HandshakeFragment:
    """Fragments that break a rule regardless of state: never may they change delivery."""
    kind = draw(st.sampled_from(["oob", "long", "empty", "ahead"]))
    seq = draw(st.integers(0, 0xFFFF))
    body = draw(st.binary(min_size=1, max_size=30))
    if kind == "oob":
        length = draw(st.integers(0, 1000))
        offset = draw(st.integers(max(0, length - len(body) + 1), 0xFFFFFF))
        return HandshakeFragment(11, length, seq, offset, body)
    if kind == "long":
        return HandshakeFragment(11, draw(st.integers(64 * 1024 + 1, 0xFFFFFF)), seq, 0, body)
    if kind == "empty":
        length = draw(st.integers(1, 1000))
        return HandshakeFragment(11, length, seq, draw(st.integers(0, length)), b"")
    return HandshakeFragment(11, 100, draw(st.integers(100, 0xFFFF)), 0, body[:1])


@FAST
@given(st.lists(st.integers(0, 3000), min_size=1, max_size=5),
       st.lists(hostile_fragment(), max_size=50), st.randoms(use_true_random=False))
def test_hostile_fragments_never_change_delivery(sizes: list[int],
                                                 hostile: list[HandshakeFragment],
                                                 rng: random.Random) -> None:
    messages = [HandshakeMessage(rng.randrange(256), i, rand_body(rng, n))
                for i, n in enumerate(sizes)]
    fragments: list[HandshakeFragment] = [f for m in messages
                                          for f in random_fragments(rng, m, 8, 2)]
    fragments += hostile
    rng.shuffle(fragments)
    r = HandshakeReassembler()
    delivered: list[HandshakeMessage] = []
    for f in fragments:
        r.add(f)
        assert r.buffered_bytes <= r.max_buffered_bytes
        assert len(r.pending_message_seqs) <= r.max_messages_ahead + 1
        delivered += r.messages()
    assert delivered == messages


def arbitrary_fragments() -> st.SearchStrategy[HandshakeFragment]:
    return st.builds(HandshakeFragment, st.integers(0, 3), st.integers(0, 300),
                     st.integers(0, 10), st.integers(0, 300), st.binary(max_size=40))


@settings(max_examples=150, deadline=None)
@given(st.lists(arbitrary_fragments(), max_size=80))
def test_reassembler_fuzz_invariants(fragments: list[HandshakeFragment]) -> None:
    """Any fragment sequence: no exception, every cap holds after every step, and whatever
    comes out is consistent with the fragments that were accepted."""
    r = HandshakeReassembler(max_message_length=250, max_buffered_bytes=600,
                             max_messages_ahead=3, max_fragments_per_message=4)
    accepted: dict[int, list[HandshakeFragment]] = {}
    for f in fragments:
        before = set(r.pending_message_seqs)
        result = r.add(f)
        for evicted in before - set(r.pending_message_seqs):
            accepted.pop(evicted, None)  # its successor may legitimately differ
        if result is FragmentStatus.ACCEPTED:
            accepted.setdefault(f.message_seq, []).append(f)
        assert r.buffered_bytes <= r.max_buffered_bytes
        assert len(r.pending_message_seqs) <= r.max_messages_ahead + 1
        for seq in r.pending_message_seqs:
            assert seq <= r.next_message_seq + r.max_messages_ahead
            ranges = r.received_ranges(seq)
            assert len(ranges) <= r.max_fragments_per_message
            assert all(a < b for a, b in ranges)
            assert all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(ranges))
        for m in r.messages():
            for g in accepted.get(m.message_seq, []):
                assert (g.msg_type, g.length) == (m.msg_type, len(m.body))
                assert m.body[g.fragment_offset:g.end] == g.body
    assert sum(r.counts.values()) == len(fragments) + r.counts[DropReason.EVICTED]


def test_messages_generator_pops_lazily() -> None:
    """A handler that stops after the first message leaves the rest buffered."""
    r = HandshakeReassembler()
    for seq in range(3):
        r.add(frag(seq, 0, b"m", length=1))
    it = r.messages()
    assert next(it).message_seq == 0
    assert r.next_message_seq == 1 and r.pending_message_seqs == [1, 2]
