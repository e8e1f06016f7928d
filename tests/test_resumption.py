"""Session resumption over the in-memory link: by session ID (RFC 5246 7.4.1.2), by
ticket (RFC 5077), with loss, and every reason to fall back to a full handshake."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from dtls_testing import SERVER_ADDR, Link, make_certificate

from dtls.alerts import AlertDescription, InternalError
from dtls.config import DtlsConfiguration
from dtls.connection import Connection
from dtls.events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from dtls.session import Session
from dtls.tickets import TicketKeys


@pytest.fixture(scope="module")
def identity() -> Any:
    return make_certificate("localhost")


def configs(identity: Any, client: dict[str, Any] | None = None,
            server: dict[str, Any] | None = None) -> tuple[DtlsConfiguration, DtlsConfiguration]:
    from dtls.verify import fingerprint_sha256
    cert, key = identity
    c = DtlsConfiguration(server_name="localhost", pinned_sha256=(fingerprint_sha256(cert),))
    s = DtlsConfiguration(is_client=False, certificate_chain=[cert], private_key=key)
    return replace(c, **(client or {})), replace(s, **(server or {}))


def run(client_config: DtlsConfiguration, server_config: DtlsConfiguration,
        session: Session | None = None, *, now: float = 0.0, **link_args: Any) -> Link:
    link = Link(Connection(client_config, peer_address=SERVER_ADDR),
                Connection(server_config), **link_args)
    link.now = now
    link.client.connection.connect(link.now, session=session)
    link.run(lambda: bool(link.client.of_type(HandshakeCompleted)
                          and link.server.of_type(HandshakeCompleted)), max_time=now + 60)
    assert link.client.of_type(HandshakeCompleted) and link.server.of_type(HandshakeCompleted), \
        (link.client.events, link.server.events, link.client.connection.stats,
         link.server.connection.stats)
    return link


def resumed(link: Link) -> tuple[bool, bool]:
    return (link.client.of_type(HandshakeCompleted)[0].resumed,
            link.server.of_type(HandshakeCompleted)[0].resumed)


def exchange(link: Link) -> None:
    link.client.connection.send(b"ping")
    link.server.connection.send(b"pong")
    link.run(lambda: bool(link.server.of_type(ApplicationData)
                          and link.client.of_type(ApplicationData)))
    assert [e.data for e in link.server.of_type(ApplicationData)] == [b"ping"]
    assert [e.data for e in link.client.of_type(ApplicationData)] == [b"pong"]


def test_full_handshake_gives_session(identity: Any) -> None:
    c, s = configs(identity)
    link = run(c, s)
    session = link.client.connection.session
    assert session is not None and session.resumable and session.ticket
    assert len(session.session_id) == 32 and session.extended_master_secret
    assert "master_secret=" not in repr(session).replace("extended_master_secret=", "")
    assert resumed(link) == (False, False)
    assert len(s.session_cache) == 1


@pytest.mark.parametrize("loss", [0.0, 0.3])
def test_resume_by_session_id(identity: Any, loss: float) -> None:
    c, s = configs(identity, client={"session_tickets": False})
    first = run(c, s)
    session = first.client.connection.session
    assert session is not None and not session.ticket
    second = run(c, s, session, now=10.0, loss=loss, seed=7)
    assert resumed(second) == (True, True)
    done = second.client.of_type(HandshakeCompleted)[0]
    assert done.peer_certificate == identity[0] and done.extended_master_secret
    assert done.cipher_suite is session.cipher_suite
    assert second.client.connection.session is session
    if not loss:  # application data is not retransmitted
        exchange(second)
    # The abbreviated handshake's keys are fresh (new randoms), the secret the same.
    assert second.client.connection.export_keying_material("EXPERIMENTAL x", 16) != \
        first.client.connection.export_keying_material("EXPERIMENTAL x", 16)


@pytest.mark.parametrize("loss", [0.0, 0.3])
def test_resume_by_ticket(identity: Any, loss: float) -> None:
    c, s = configs(identity, server={"session_cache_size": 0})  # tickets only
    first = run(c, s)
    session = first.client.connection.session
    assert session is not None and session.ticket and session.session_id == b""
    second = run(c, s, session, now=10.0, loss=loss, seed=3)
    assert resumed(second) == (True, True)
    if not loss:
        exchange(second)
    renewed = second.client.connection.session
    assert renewed is not None and renewed.ticket and renewed.ticket != session.ticket
    third = run(c, s, renewed, now=20.0)  # the renewed ticket works too
    assert resumed(third) == (True, True)


def test_client_keeps_answering_server_flight_in_abbreviated_handshake(identity: Any) -> None:
    c, s = configs(identity)
    session = run(c, s).client.connection.session
    link = Link(Connection(c, peer_address=SERVER_ADDR), Connection(s))
    dropped = {"n": 0}

    def drop_first_client_finished(destination: Any, datagram: bytes) -> bytes | None:
        # The client's last flight (CCS + Finished: content type 20 first) is lost once.
        if destination is link.server and datagram[0] == 20 and not dropped["n"]:
            dropped["n"] += 1
            return None
        return datagram

    link.filter = drop_first_client_finished
    link.now = 10.0
    link.client.connection.connect(link.now, session=session)
    link.run(lambda: bool(link.server.of_type(HandshakeCompleted)), max_time=40)
    assert dropped["n"] == 1 and resumed(link) == (True, True)
    assert link.client.connection.stats["retransmit_on_peer_resend"] >= 1


def test_unknown_ticket_and_session_id_fall_back_to_full(identity: Any) -> None:
    c, s = configs(identity)
    session = run(c, s).client.connection.session
    assert session is not None
    other_server = replace(s, ticket_keys=TicketKeys(), session_cache=type(s.session_cache)())
    link = run(c, other_server, session, now=5.0)
    assert resumed(link) == (False, False)
    assert link.server.connection.stats["ticket_rejected"] == 1
    garbled = replace(session, ticket=bytes(len(session.ticket)))
    link = run(c, replace(s, session_cache_size=0), garbled, now=5.0)
    assert resumed(link) == (False, False)


def test_expired_session_and_ticket_full_handshake(identity: Any) -> None:
    c, s = configs(identity, server={"session_lifetime": 100.0})
    session = run(c, s).client.connection.session
    assert session is not None
    assert resumed(run(c, s, session, now=50.0)) == (True, True)
    link = run(c, s, session, now=200.0)
    assert resumed(link) == (False, False)
    assert link.server.connection.stats["ticket_rejected"] == 1
    assert link.server.connection.stats["session_id_unknown"] == 1


def test_ems_mismatch_full_handshake(identity: Any) -> None:
    # A session made without the extended master secret is never resumed (RFC 7627 5.3).
    c, s = configs(identity, client={"require_extended_master_secret": False,
                                     "session_tickets": False},
                   server={"require_extended_master_secret": False})
    first = run(c, s)
    session = first.client.connection.session
    assert session is not None
    no_ems = replace(session, extended_master_secret=False)
    assert not no_ems.resumable
    # The client does not offer it ...
    link = run(c, s, no_ems, now=1.0)
    assert resumed(link) == (False, False)
    # ... and the server refuses one whose hello lacks the extension: drop it on the wire.
    cache = s.session_cache
    (cached,) = [cache.get(session.session_id, 1.0, lifetime=7200)]
    assert cached is not None
    cache.put(replace(cached, extended_master_secret=False), max_entries=10)
    link = run(c, s, session, now=2.0)
    assert resumed(link) == (False, False)
    assert link.server.connection.stats["session_not_resumable"] == 1


def test_server_refuses_resumption_without_ems_in_hello(identity: Any) -> None:
    from dtls.extensions import ExtendedMasterSecret
    c, s = configs(identity, client={"session_tickets": False})
    session = run(c, s).client.connection.session
    client = Connection(c, peer_address=SERVER_ADDR)
    original = client._build_client_hello

    def without_ems() -> Any:
        hello = original()
        hello.extensions = [e for e in hello.extensions
                            if not isinstance(e, ExtendedMasterSecret)]
        return hello

    client._build_client_hello = without_ems  # type: ignore[method-assign]
    link = Link(client, Connection(s))
    link.now = 10.0
    client.connect(link.now, session=session)
    link.run(lambda: bool(link.client.of_type(ConnectionTerminated)
                          or link.client.of_type(HandshakeCompleted)), max_time=40)
    # The server went for a full handshake and (EMS required) refused the hello.
    assert link.server.connection.stats["session_not_resumable"] == 1
    assert not link.client.of_type(HandshakeCompleted)


def test_client_rejects_resumption_without_ems(identity: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from dtls import connection as connection_module
    from dtls import negotiation
    from dtls.extensions import ExtendedMasterSecret
    c, s = configs(identity, client={"session_tickets": False})
    session = run(c, s).client.connection.session
    link = Link(Connection(c, peer_address=SERVER_ADDR), Connection(s))
    link.now = 10.0
    real = negotiation.negotiate

    def no_ems(*args: Any, **kw: Any) -> Any:
        # A server that resumes but drops extended_master_secret from its ServerHello.
        result = real(*args, **kw)
        return replace(result, server_hello_extensions=tuple(
            e for e in result.server_hello_extensions if not isinstance(e, ExtendedMasterSecret)))

    monkeypatch.setattr(connection_module, "negotiate", no_ems)
    link.client.connection.connect(link.now, session=session)
    link.run(lambda: bool(link.client.of_type(ConnectionTerminated)), max_time=40)
    (end,) = link.client.of_type(ConnectionTerminated)
    assert "RFC 7627" in end.reason and end.alert == AlertDescription.handshake_failure


def test_cache_bound_in_server(identity: Any) -> None:
    c, s = configs(identity, client={"session_tickets": False},
                   server={"session_cache_size": 2})
    sessions = [run(c, s, now=float(i)).client.connection.session for i in range(3)]
    assert len(s.session_cache) == 2
    assert sessions[0] is not None and sessions[2] is not None
    assert resumed(run(c, s, sessions[0], now=5.0)) == (False, False)  # evicted
    assert resumed(run(c, s, sessions[2], now=5.0)) == (True, True)


def test_session_for_other_server_name_not_offered(identity: Any) -> None:
    c, s = configs(identity)
    session = run(c, s).client.connection.session
    other = replace(c, server_name="other.example", pinned_sha256=c.pinned_sha256)
    link = run(other, s, session, now=1.0)
    assert resumed(link) == (False, False)


def test_session_in_configuration(identity: Any) -> None:
    c, s = configs(identity)
    session = run(c, s).client.connection.session
    link = run(replace(c, session=session), s, now=1.0)
    assert resumed(link) == (True, True)


def test_fatal_alert_invalidates_cached_session(identity: Any) -> None:
    c, s = configs(identity, client={"session_tickets": False})
    link = run(c, s)
    session = link.client.connection.session
    assert session is not None and session.session_id in s.session_cache
    link.server.connection._fail(InternalError("test"))
    assert session.session_id not in s.session_cache
    assert link.server.connection.session is None


def test_resumed_session_keeps_client_certificate(identity: Any) -> None:
    from dtls.config import ClientAuth
    from dtls.verify import fingerprint_sha256
    client_cert, client_key = make_certificate("client", client=True)
    c, s = configs(identity, client={"certificate_chain": [client_cert],
                                     "private_key": client_key},
                   server={"client_auth": ClientAuth.REQUIRE,
                           "pinned_sha256": (fingerprint_sha256(client_cert),)})
    session = run(c, s).client.connection.session
    link = run(c, s, session, now=1.0)
    assert resumed(link) == (True, True)
    # The abbreviated handshake has no Certificate: the identity comes from the session.
    assert link.server.of_type(HandshakeCompleted)[0].peer_certificate == client_cert
