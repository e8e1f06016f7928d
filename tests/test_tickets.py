"""dtls.tickets: the RFC 5077 ticket codec and the rotating ticket keys."""

from __future__ import annotations

import os

from dtls.keys import SecretBytes
from dtls.session import Session
from dtls.suites import CipherSuite
from dtls.tickets import (
    MAX_TICKET_LENGTH,
    TicketKeys,
    decode_session,
    encode_session,
    open_ticket,
    seal_session,
)


def make_session(**kw: object) -> Session:
    fields: dict[str, object] = {
        "session_id": os.urandom(32), "version": 0xFEFD,
        "cipher_suite": CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "master_secret": SecretBytes(os.urandom(48)), "extended_master_secret": True,
        "created_at": 100.0, "server_name": "localhost", "alpn_protocol": b"h2",
        "psk_identity": None, "peer_certificate_chain": (b"cert-1", b"cert-2")}
    fields.update(kw)
    return Session(**fields)  # type: ignore[arg-type]


def same(a: Session, b: Session) -> bool:
    return (a.session_id, a.version, a.cipher_suite, bytes(a.master_secret),
            a.extended_master_secret, a.created_at, a.server_name, a.alpn_protocol,
            a.psk_identity, a.peer_certificate_chain) == \
        (b.session_id, b.version, b.cipher_suite, bytes(b.master_secret),
         b.extended_master_secret, b.created_at, b.server_name, b.alpn_protocol,
         b.psk_identity, b.peer_certificate_chain)


def test_session_state_round_trip() -> None:
    session = make_session(psk_identity=b"id", alpn_protocol=None, server_name=None)
    decoded = decode_session(encode_session(session))
    assert decoded is not None and same(decoded, session)


def test_garbled_state_is_no_session() -> None:
    data = encode_session(make_session())
    assert decode_session(data[:-1]) is None
    assert decode_session(b"\x02" + data[1:]) is None  # unknown format
    assert decode_session(data + b"\x00") is None
    assert decode_session(b"") is None


def test_master_secret_not_in_repr() -> None:
    session = make_session()
    assert session.master_secret.hex() not in repr(session)
    assert "master_secret=" not in repr(session).replace("extended_master_secret=", "")
    assert repr(TicketKeys()).startswith("<TicketKeys")


def test_seal_open_round_trip_and_tamper() -> None:
    keys = TicketKeys()
    session = make_session()
    ticket = seal_session(keys, session, 100.0)
    opened = open_ticket(keys, ticket, 101.0, lifetime=7200)
    assert opened is not None and same(opened, session)
    assert bytes(session.master_secret) not in ticket  # encrypted
    for i in (0, 20, len(ticket) - 1):  # key name, nonce, tag
        forged = bytearray(ticket)
        forged[i] ^= 1
        assert open_ticket(keys, bytes(forged), 101.0, lifetime=7200) is None
    assert open_ticket(keys, ticket[:40], 101.0, lifetime=7200) is None
    assert open_ticket(TicketKeys(), ticket, 101.0, lifetime=7200) is None  # other server


def test_lifetime_enforced() -> None:
    keys = TicketKeys(rotation_interval=10_000)
    ticket = seal_session(keys, make_session(created_at=100.0), 100.0)
    assert open_ticket(keys, ticket, 100.0 + 7200, lifetime=7200) is not None
    assert open_ticket(keys, ticket, 100.0 + 7201, lifetime=7200) is None
    assert open_ticket(keys, ticket, 50.0, lifetime=7200) is None  # from the future


def test_rotation_accepts_current_and_previous_only() -> None:
    keys = TicketKeys(rotation_interval=100)
    session = make_session(created_at=0.0)
    old = seal_session(keys, session, 0.0)
    newer = seal_session(keys, session, 150.0)  # rotated: old key is now "previous"
    assert old[:16] != newer[:16]
    assert open_ticket(keys, old, 150.0, lifetime=7200) is not None
    assert open_ticket(keys, newer, 150.0, lifetime=7200) is not None
    seal_session(keys, session, 260.0)  # rotated again: the first key is gone
    assert open_ticket(keys, old, 260.0, lifetime=7200) is None
    assert open_ticket(keys, newer, 260.0, lifetime=7200) is not None
    # Idle for two intervals: both keys retire.
    assert open_ticket(keys, newer, 1000.0, lifetime=7200) is None


def test_oversized_state_gives_empty_ticket() -> None:
    chain = tuple(os.urandom(30_000) for _ in range(3))
    assert seal_session(TicketKeys(), make_session(peer_certificate_chain=chain), 100.0) == b""
    assert MAX_TICKET_LENGTH == 0xFFFF
