#!/usr/bin/env python3
"""Write the seed corpus for the atheris harnesses from real in-memory handshakes.

    python3 tests/fuzz/make_corpus.py        # (re)writes tests/fuzz/corpus/

With the harnesses' fixed randoms and cookie secret (see _harness.py), so that the
recorded HelloVerifyRequest / ClientHello-with-cookie (corpus/setup) put the
connection harness's victims exactly where the recorded flights continue.  Decoder
seeds also come from the PSK, ECDHE_PSK and client-certificate handshakes of
tests/test_fuzz_parsers.py.  Small: a few dozen files, a few tens of KB.
"""

from __future__ import annotations

import shutil

import _harness

_harness.fixed_randoms()

import fuzz_handshake
from dtls_testing import Link
from test_fuzz_parsers import real_handshake_corpus

from dtls.buffer import encode
from dtls.connection import Connection
from dtls.events import HandshakeCompleted
from dtls.extensions import HandshakeContext, push_extensions
from dtls.fragments import fragment_message, parse_fragments
from dtls.messages import HandshakeType, KeyExchangeAlgorithm, decode_handshake
from dtls.record import split_records
from dtls.recordbase import ContentType


def record_handshake() -> list[tuple[str, bytes]]:
    """(direction "c"/"s" = delivered to client/server, datagram) of one full handshake."""
    client_config, server_config = _harness.configurations()
    link = Link(Connection(client_config, peer_address=_harness.SERVER_ADDR),
                Connection(server_config))
    seen: list[tuple[str, bytes]] = []
    link.filter = lambda d, dg: seen.append(("c" if d is link.client else "s", dg)) or dg
    link.client.connection.connect(0.0)
    link.run(lambda: bool(link.client.of_type(HandshakeCompleted)
                          and link.server.of_type(HandshakeCompleted)))
    assert link.client.of_type(HandshakeCompleted), "recording handshake failed"
    return seen


def main() -> None:
    corpus = _harness.CORPUS
    identity = corpus / "identity.pem"
    keep = identity.read_bytes() if identity.exists() else None
    if corpus.exists():
        shutil.rmtree(corpus)
    corpus.mkdir()
    if keep is not None:
        identity.write_bytes(keep)
    _harness.identity()  # makes identity.pem if it was missing
    files: dict[str, list[bytes]] = {"records": [], "handshake": [], "reassembler": [],
                                     "connection": []}

    seen = record_handshake()
    to_client = [d for who, d in seen if who == "c"]
    to_server = [d for who, d in seen if who == "s"]
    hvr, flight4, flight6 = to_client[0], to_client[1], to_client[2:]
    hello1, hello2, flight5 = to_server[0], to_server[1], to_server[2:]
    (corpus / "setup").write_bytes(_harness.framed([hvr, hello2]))

    files["records"] += [d for _, d in seen] + [hello1 + hvr, flight4[:13], flight4 + b"\x00"]
    files["connection"] += [b"\x00" + _harness.framed([hello1, hello2]),
                            b"\x00" + hello1,
                            b"\x01" + _harness.framed([flight4] + flight6),
                            b"\x01" + flight4,
                            b"\x02" + _harness.framed(flight5)]
    # The reassembler sees record payloads: each handshake record's, and re-cut ones.
    for datagram in [flight4] + flight5:
        headers, _ = split_records(datagram)
        payloads = [datagram[h.offset + 13:h.end] for h in headers
                    if h.content_type == ContentType.HANDSHAKE and h.epoch == 0]
        files["reassembler"].append(_harness.framed(payloads))
        pieces = []
        for payload in payloads:
            for f in parse_fragments(payload):
                pieces += fragment_message(f.msg_type, f.message_seq - 1, bytes(f.body), 97)
        files["reassembler"].append(_harness.framed(pieces[::-1]))

    types, kxs = fuzz_handshake.TYPES, fuzz_handshake.KXS
    for msg_type, body, kx in real_handshake_corpus().messages:
        files["handshake"].append(bytes([types.index(msg_type), kxs.index(kx)]) + body)
        if msg_type in (HandshakeType.client_hello, HandshakeType.server_hello):
            hello = decode_handshake(msg_type, body, key_exchange=kx)
            context = HandshakeContext(msg_type)
            block = encode(lambda b, e, c=context: push_extensions(b, e, c), hello.extensions)
            files["handshake"].append(bytes([fuzz_handshake.EXTENSIONS, msg_type & 1]) + block)
    files["handshake"].append(bytes([types.index(HandshakeType.finished),
                                     kxs.index(KeyExchangeAlgorithm.ECDHE)]) + bytes(12))

    total = 0
    for target, seeds in files.items():
        (corpus / target).mkdir()
        for i, seed in enumerate(dict.fromkeys(seeds)):  # drop exact duplicates
            (corpus / target / f"seed-{i:03d}").write_bytes(seed)
            total += len(seed)
        print(f"{target}: {len(set(seeds))} seeds")
    print(f"{total} bytes in {corpus}")


if __name__ == "__main__":
    main()
