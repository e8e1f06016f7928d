#!/usr/bin/env python3
"""atheris: Connection.receive_datagram, the whole receive path, three victims.

Input: byte 0 picks the victim, the rest is framed datagrams (_harness.frames):
  0  a fresh stateless listener;
  1  a client that sent its ClientHello, got the corpus's HelloVerifyRequest and sent
     the hello with the cookie (so a recorded flight 4 takes it to WAIT_SERVER_FINISHED);
  2  a server that accepted the corpus's ClientHello with a cookie (WAIT_CLIENT_KEY_EXCHANGE).
After every datagram also handle_timer.  receive_datagram must never raise; the
listener must never bind (a valid cookie for the fixed secret needs the fixed hello
bytes, which the corpus has: then binding is legitimate and we stop checking); no
victim may report HandshakeCompleted (every recorded Finished fails with fresh ECDHE
keys).  Run: PYTHONPATH=<atheris> python3 tests/fuzz/fuzz_connection.py -max_total_time=60
"""

from __future__ import annotations

import _harness
import atheris

with atheris.instrument_imports():
    from dtls.connection import Connection, HandshakeState
    from dtls.events import HandshakeCompleted

_harness.fixed_randoms()
CLIENT_CONFIG, SERVER_CONFIG = _harness.configurations()
SETUP = (_harness.CORPUS / "setup").read_bytes() if (_harness.CORPUS / "setup").exists() else b""
HVR, HELLO2 = (_harness.frames(SETUP) + [b"", b""])[:2]


def victim(kind: int) -> Connection:
    if kind == 1:
        client = Connection(CLIENT_CONFIG, peer_address=_harness.SERVER_ADDR)
        client.connect(0.0)
        client.receive_datagram(HVR, _harness.SERVER_ADDR, 0.0)
        client.datagrams_to_send(0.0)
        return client
    server = Connection(SERVER_CONFIG)
    if kind == 2:
        server.receive_datagram(HELLO2, _harness.CLIENT_ADDR, 0.0)
        server.datagrams_to_send(0.0)
    return server


def test_one_input(data: bytes) -> None:
    if not data:
        return
    kind = data[0] % 3
    conn = victim(kind)
    source = _harness.SERVER_ADDR if kind == 1 else _harness.CLIENT_ADDR
    now = 0.0
    for datagram in _harness.frames(data[1:])[:16]:
        conn.receive_datagram(datagram, source, now)
        now += 0.5
        conn.handle_timer(now)
        conn.datagrams_to_send(now)
        for event in iter(conn.next_event, None):
            if isinstance(event, HandshakeCompleted):
                raise AssertionError("a fuzzed flight completed a handshake")  # noqa: TRY004
        if kind == 0 and conn.state is not HandshakeState.SERVER_WAIT_CLIENT_HELLO:
            return  # the corpus hello with its valid cookie: a real association now


if __name__ == "__main__":
    _harness.run(test_one_input, "connection")
