#!/usr/bin/env python3
"""atheris: every handshake message decoder and the extension parser.

Input: byte 0 selects the handshake type (from the list below), byte 1 the key exchange
and DTLS version, the rest is the body.  Only decode_error / illegal_parameter /
unexpected_message may escape; anything accepted must re-encode to the same value (and
to the same bytes, but for an empty extension block, which re-encodes as absent).
Run: PYTHONPATH=<atheris> python3 tests/fuzz/fuzz_handshake.py -max_total_time=60
"""

from __future__ import annotations

import _harness
import atheris

with atheris.instrument_imports():
    from dtls.alerts import AlertDescription, AlertError
    from dtls.buffer import Buffer
    from dtls.extensions import HandshakeContext, pull_extensions
    from dtls.messages import (
        HandshakeType,
        KeyExchangeAlgorithm,
        decode_handshake,
        encode_handshake,
    )
    from dtls.recordbase import DTLS1_0, DTLS1_2

TYPES = [int(t) for t in HandshakeType] + [99]
KXS = list(KeyExchangeAlgorithm)
ALLOWED = {AlertDescription.decode_error, AlertDescription.illegal_parameter,
           AlertDescription.unexpected_message}
EXTENSIONS = 0xEE  # selector byte 0: parse the rest as a bare extension block


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    body = data[2:]
    if data[0] == EXTENSIONS:
        context = HandshakeContext.client_hello if data[1] & 1 else HandshakeContext.server_hello
        try:
            pull_extensions(Buffer(body), context)
        except AlertError as exc:
            if exc.description not in ALLOWED:
                raise
        return
    msg_type = TYPES[data[0] % len(TYPES)]
    kx = KXS[data[1] % len(KXS)]
    version = DTLS1_0 if data[1] & 0x80 else DTLS1_2
    try:
        message = decode_handshake(msg_type, body, version=version, key_exchange=kx)
    except AlertError as exc:
        if exc.description not in ALLOWED:
            raise
        return
    encoded_type, again = encode_handshake(message, version=version)
    if encoded_type != msg_type:
        raise AssertionError("type changed on re-encoding")
    if decode_handshake(msg_type, again, version=version, key_exchange=kx) != message:
        raise AssertionError(f"not stable: {body.hex()}")
    if again != body and not (msg_type in (1, 2) and body == again + b"\x00\x00"):
        raise AssertionError(f"non-canonical encoding accepted: {body.hex()} -> {again.hex()}")


if __name__ == "__main__":
    _harness.run(test_one_input, "handshake")
