#!/usr/bin/env python3
"""atheris: the handshake reassembler with small caps, fed records of fragments.

Input: framed records ([2-byte length][payload]..., see _harness.frames), each added
with add_record.  After every record: every cap holds, and each delivered message agrees
with every fragment that was ACCEPTED for its message_seq (the first bytes win, nothing
is rewritten); delivered message_seqs are consecutive.
Run: PYTHONPATH=<atheris> python3 tests/fuzz/fuzz_reassembler.py -max_total_time=60
"""

from __future__ import annotations

import _harness
import atheris

with atheris.instrument_imports():
    from dtls.alerts import DecodeError
    from dtls.fragments import FragmentStatus, HandshakeReassembler, parse_fragments


def test_one_input(data: bytes) -> None:
    r = HandshakeReassembler(max_message_length=3000, max_buffered_bytes=6000,
                             max_messages_ahead=3, max_fragments_per_message=8)
    accepted: dict[int, list] = {}
    expected_seq = 0
    for payload in _harness.frames(data):
        try:
            fragments = parse_fragments(payload)
        except DecodeError:
            continue
        for fragment in fragments:
            before = set(r.pending_message_seqs)
            status = r.add(fragment)
            for evicted in before - set(r.pending_message_seqs):
                if evicted >= r.next_message_seq:
                    accepted.pop(evicted, None)
            if status is FragmentStatus.ACCEPTED:
                accepted.setdefault(fragment.message_seq, []).append(
                    (fragment.msg_type, fragment.length, fragment.fragment_offset,
                     bytes(fragment.body)))
        if r.buffered_bytes > r.max_buffered_bytes:
            raise AssertionError("buffered bytes above the cap")
        if len(r.pending_message_seqs) > r.max_messages_ahead + 1:
            raise AssertionError("too many pending messages")
        for seq in r.pending_message_seqs:
            if len(r.received_ranges(seq)) > r.max_fragments_per_message:
                raise AssertionError("too many ranges")
        for message in r.messages():
            if message.message_seq != expected_seq:
                raise AssertionError("messages out of order")
            expected_seq += 1
            for msg_type, length, offset, body in accepted.pop(message.message_seq, []):
                if (msg_type, length) != (message.msg_type, len(message.body)) or \
                        message.body[offset:offset + len(body)] != body:
                    raise AssertionError("delivered message disagrees with an accepted fragment")


if __name__ == "__main__":
    _harness.run(test_one_input, "reassembler")
