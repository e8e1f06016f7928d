#!/usr/bin/env python3
"""atheris: the record layer on hostile datagrams.

Each input is one datagram.  split_records must agree between the C and Python
backends and stay within bounds; every located record is then opened with a NULL
(epoch 0) state and with AES-GCM and ChaCha20-Poly1305 states (epoch 1, window 64) of
both backends: open must never raise, both backends must return the same verdict, and
nothing may authenticate (the keys are fixed and the fuzzer cannot forge a tag).
Run: PYTHONPATH=<atheris> python3 tests/fuzz/fuzz_records.py -max_total_time=60
"""

from __future__ import annotations

import _harness
import atheris

with atheris.instrument_imports():
    from dtls import _pyrecord
    from dtls.protection import BulkCipher, Protection
    from dtls.recordbase import MAX_FRAGMENT, OpenStatus

try:
    from dtls import _crecord
    BACKENDS = [_pyrecord, _crecord]
except ImportError:
    BACKENDS = [_pyrecord]

PROTECTIONS = [Protection(BulkCipher.NULL), Protection(BulkCipher.AES_128_GCM),
               Protection(BulkCipher.CHACHA20_POLY1305)]


def _state(backend, protection):
    epoch = 0 if protection.cipher is BulkCipher.NULL else 1
    return backend.CipherState(protection, epoch=epoch, key=bytes(protection.key_length),
                               fixed_iv=bytes(protection.fixed_iv_length), window=64)


def test_one_input(data: bytes) -> None:
    splits = [backend.split_records(data) for backend in BACKENDS]
    headers, trailing = splits[0]
    for other in splits[1:]:
        if [tuple(h) for h in other[0]] != [tuple(h) for h in headers] or other[1] != trailing:
            raise AssertionError(f"split_records differs between backends on {data.hex()}")
    pos = 0
    for h in headers:
        if h.offset != pos or h.end > len(data) or h.length > MAX_FRAGMENT:
            raise AssertionError(f"header out of bounds: {h}")
        pos = h.end
    if trailing != len(data) - pos:
        raise AssertionError("trailing count wrong")
    for protection in PROTECTIONS:
        states = [_state(backend, protection) for backend in BACKENDS]
        for h in headers:
            raw = data[h.offset:h.end]
            results = [state.open(raw) for state in states]
            first = results[0]
            for other in results[1:]:
                if (other.status, other.content_type, other.epoch, other.seq,
                        bytes(other.payload)) != (first.status, first.content_type, first.epoch,
                                                  first.seq, bytes(first.payload)):
                    raise AssertionError(f"open verdicts differ: {first} vs {other}")
            if first.status is OpenStatus.OK and protection.cipher is not BulkCipher.NULL:
                raise AssertionError(f"forged record authenticated: {raw.hex()}")
        # open_batch over the whole datagram agrees with one-by-one opens.
        for backend in BACKENDS:
            backend_states = _state(backend, protection)
            batch = backend_states.open_batch(data)
            if len(batch) < len(headers):
                raise AssertionError("open_batch saw fewer records than split_records")


if __name__ == "__main__":
    _harness.run(test_one_input, "records")
