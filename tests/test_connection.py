"""Protocol tests for dtls.connection over the in-memory link (no sockets, fake clock)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from dtls_testing import CLIENT_ADDR, SERVER_ADDR, Link, make_certificate

from dtls.alerts import AlertDescription, AlertError
from dtls.config import SUPPORTED_CIPHER_SUITES, ClientAuth, DtlsConfiguration
from dtls.connection import Connection, ConnectionStateError, HandshakeState
from dtls.cookie import CookieSigner
from dtls.events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from dtls.extensions import NamedGroup, SignatureAlgorithms
from dtls.fragments import HandshakeFragment, HandshakeMessage, parse_fragments
from dtls.messages import ClientHello, HandshakeType
from dtls.record import split_records
from dtls.recordbase import ContentType
from dtls.suites import CipherSuite, suite_info
from dtls.verify import fingerprint_sha256


@pytest.fixture(scope="module")
def server_identity():
    return make_certificate("localhost")


def make_pair(server_identity, *, client: dict | None = None, server: dict | None = None,
              **link_args) -> Link:
    cert, key = server_identity
    client_config = DtlsConfiguration(server_name="localhost",
                                      pinned_sha256=(fingerprint_sha256(cert),))
    server_config = DtlsConfiguration(is_client=False, certificate_chain=[cert],
                                      private_key=key)
    client_config = replace(client_config, **(client or {}))
    server_config = replace(server_config, **(server or {}))
    return Link(Connection(client_config, peer_address=SERVER_ADDR), Connection(server_config),
                **link_args)


def both_completed(link: Link) -> bool:
    return bool(link.client.of_type(HandshakeCompleted) and link.server.of_type(HandshakeCompleted))


def both_terminated(link: Link) -> bool:
    return bool(link.client.of_type(ConnectionTerminated)
                and link.server.of_type(ConnectionTerminated))


def handshake(link: Link, max_time: float = 30.0) -> None:
    link.client.connection.connect(link.now)
    link.run(lambda: both_completed(link), max_time=max_time)
    assert both_completed(link), (link.client.events, link.server.events,
                                  link.client.connection.stats, link.server.connection.stats)


# -- the happy path ---------------------------------------------------------------------


def test_full_handshake_data_both_ways_and_close(server_identity) -> None:
    link = make_pair(server_identity)
    handshake(link)
    (done,) = link.client.of_type(HandshakeCompleted)
    assert done.version == 0xFEFD
    assert done.cipher_suite is CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    assert done.named_group is NamedGroup.x25519
    assert done.extended_master_secret
    assert done.peer_certificate == server_identity[0]
    assert link.server.of_type(HandshakeCompleted)[0].peer_certificate is None
    assert link.client.connection.state is HandshakeState.ESTABLISHED
    assert link.server.connection.stats["hello_verify_request"] == 1

    link.client.connection.send(b"ping")
    link.server.connection.send(b"pong")
    link.run(lambda: bool(link.server.of_type(ApplicationData)
                          and link.client.of_type(ApplicationData)))
    assert [e.data for e in link.server.of_type(ApplicationData)] == [b"ping"]
    assert [e.data for e in link.client.of_type(ApplicationData)] == [b"pong"]

    link.client.connection.close()
    link.run(lambda: both_terminated(link))
    (client_end,) = link.client.of_type(ConnectionTerminated)
    (server_end,) = link.server.of_type(ConnectionTerminated)
    assert client_end.alert == AlertDescription.close_notify and not client_end.by_peer
    assert server_end.alert == AlertDescription.close_notify and server_end.by_peer
    assert link.server.connection.state is HandshakeState.CLOSED
    assert link.client.connection.get_timer() is None
    with pytest.raises(ConnectionStateError):
        link.client.connection.send(b"too late")


PSK = b"0123456789abcdef"
CLIENT_PSK = {"psk": PSK, "psk_identity": b"client-1"}
SERVER_PSK = {"psk_lookup": {b"client-1": PSK}.get}


@pytest.fixture(scope="module")
def rsa_identity():
    return make_certificate("localhost", key_type="rsa")


@pytest.mark.parametrize("suite", SUPPORTED_CIPHER_SUITES, ids=lambda s: s.name)
@pytest.mark.parametrize("etm", [False, True], ids=["mte", "etm"])
def test_every_suite_in_memory(server_identity, rsa_identity, suite: CipherSuite,
                               etm: bool) -> None:
    identity = rsa_identity if "_RSA_" in suite.name else server_identity
    link = make_pair(identity,
                     client={"cipher_suites": (suite,), "encrypt_then_mac": etm,
                             "mac_then_encrypt": not etm, **CLIENT_PSK},
                     server={"cipher_suites": SUPPORTED_CIPHER_SUITES, "mac_then_encrypt": True,
                             **SERVER_PSK})
    handshake(link)
    (done,) = link.server.of_type(HandshakeCompleted)
    assert done.cipher_suite is suite
    assert done.encrypt_then_mac is (etm and "CBC" in suite.name)
    assert done.psk_identity == (b"client-1" if "PSK" in suite.name else None)
    assert (done.named_group is None) is ("TLS_PSK" in suite.name)
    link.client.connection.send(b"x" * 1000)
    link.run(lambda: bool(link.server.of_type(ApplicationData)))
    assert link.server.of_type(ApplicationData)[0].data == b"x" * 1000


def test_server_picks_by_its_own_preference(server_identity) -> None:
    reverse = tuple(reversed(SUPPORTED_CIPHER_SUITES))
    link = make_pair(server_identity,
                     client={"cipher_suites": SUPPORTED_CIPHER_SUITES, **CLIENT_PSK},
                     server={"cipher_suites": reverse, **SERVER_PSK})
    handshake(link)
    assert link.client.of_type(HandshakeCompleted)[0].cipher_suite is reverse[0]


def test_default_suites_are_aead_only() -> None:
    suites = DtlsConfiguration().cipher_suites
    assert all(suite_info(s).is_aead for s in suites)
    assert not any(s.name.endswith("CCM_8") for s in suites)  # 8-byte tags: only on request


def test_secp384r1(server_identity) -> None:
    link = make_pair(server_identity, server={"groups": (NamedGroup.secp384r1,)})
    handshake(link)
    assert link.client.of_type(HandshakeCompleted)[0].named_group is NamedGroup.secp384r1


def test_client_without_secp256r1_cannot_use_our_p256_certificate(server_identity) -> None:
    link = make_pair(server_identity, client={"groups": (NamedGroup.x25519,)})
    link.client.connection.connect(0.0)
    link.run(lambda: both_terminated(link))
    end = link.server.of_type(ConnectionTerminated)[0]
    assert end.alert == AlertDescription.handshake_failure
    assert "secp256r1" in end.reason  # RFC 8422 5.3


def test_secp256r1_only(server_identity) -> None:
    link = make_pair(server_identity, client={"groups": (NamedGroup.secp256r1,)})
    handshake(link)
    assert link.server.of_type(HandshakeCompleted)[0].named_group is NamedGroup.secp256r1


def test_server_prefers_its_own_group_order(server_identity) -> None:
    link = make_pair(server_identity,
                     server={"groups": (NamedGroup.secp256r1, NamedGroup.x25519)})
    handshake(link)
    assert link.client.of_type(HandshakeCompleted)[0].named_group is NamedGroup.secp256r1


def test_without_cookie_exchange(server_identity) -> None:
    link = make_pair(server_identity, server={"cookie_exchange": False})
    handshake(link)
    assert link.server.connection.stats["hello_verify_request"] == 0


def test_small_datagrams_fragment_the_flights(server_identity) -> None:
    # 256-byte datagrams force the Certificate and ServerKeyExchange into fragments.
    link = make_pair(server_identity, server={"max_datagram_size": 256},
                     client={"max_datagram_size": 256})
    sizes: list[int] = []

    def spy(destination, datagram: bytes) -> bytes:
        sizes.append(len(datagram))
        return datagram

    link.filter = spy
    handshake(link)
    assert max(sizes) <= 256


@pytest.mark.parametrize("suite", [CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384,
                                   CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256])
def test_protected_records_respect_the_datagram_size(server_identity, suite) -> None:
    # Flight 6's epoch-1 Finished plus CBC padding must still fit: overhead is worst case.
    link = make_pair(server_identity, server={"max_datagram_size": 256, "cipher_suites": (suite,)},
                     client={"max_datagram_size": 256, "cipher_suites": (suite,)})
    sizes: list[int] = []
    link.filter = lambda destination, datagram: sizes.append(len(datagram)) or datagram
    handshake(link)
    assert max(sizes) <= 256


def test_send_before_handshake_is_refused(server_identity) -> None:
    link = make_pair(server_identity)
    with pytest.raises(ConnectionStateError):
        link.client.connection.send(b"x")
    link.client.connection.connect(0.0)
    with pytest.raises(ConnectionStateError):
        link.client.connection.connect(0.0)


def test_connection_repr_and_events_hold_no_secrets(server_identity) -> None:
    link = make_pair(server_identity)
    handshake(link)
    server = link.server.connection
    text = repr(server) + repr(server.configuration) + repr(link.server.events)
    assert server._master_secret is not None
    assert server._master_secret.hex() not in text
    assert "PRIVATE" not in text and "private_key=" not in text


# -- reliability ------------------------------------------------------------------------


def test_handshake_completes_with_30_percent_loss(server_identity) -> None:
    link = make_pair(server_identity, seed=7, loss=0.3)
    handshake(link, max_time=120.0)
    stats_c, stats_s = link.client.connection.stats, link.server.connection.stats
    assert link.dropped > 0
    assert stats_c["retransmit_timeout"] + stats_s["retransmit_timeout"] \
        + stats_s["retransmit_on_peer_resend"] + stats_c["retransmit_on_peer_resend"] > 0


@pytest.mark.parametrize("seed", range(8))
def test_handshake_survives_loss_duplication_reordering(server_identity, seed: int) -> None:
    link = make_pair(server_identity, seed=seed, loss=0.3, duplicate=0.2, reorder=0.3)
    handshake(link, max_time=200.0)
    link.client.connection.send(b"after the storm")
    link.run(lambda: bool(link.server.of_type(ApplicationData)), max_time=link.now + 5)


def test_lost_final_flight_is_resent_when_the_client_resends(server_identity) -> None:
    link = make_pair(server_identity)
    dropped = []

    def drop_server_finished(destination, datagram: bytes) -> bytes | None:
        headers, _ = split_records(datagram)
        if destination is link.client and any(h.epoch == 1 for h in headers) and not dropped:
            dropped.append(datagram)
            return None
        return datagram

    link.filter = drop_server_finished
    handshake(link)
    assert dropped
    assert link.client.connection.stats["retransmit_timeout"] == 1
    assert link.server.connection.stats["retransmit_on_peer_resend"] == 1


def test_handshake_state_is_released_but_the_final_flight_is_still_resent(
        server_identity) -> None:
    # bench/scale.py: an idle server session keeps only what it still needs.
    link = make_pair(server_identity)
    to_server: list[bytes] = []
    lost: list[bytes] = []

    def record(destination, datagram: bytes) -> bytes | None:
        if destination is link.server:
            to_server.append(datagram)
        elif not lost and any(h.epoch == 1 for h in split_records(datagram)[0]):
            lost.append(datagram)  # the server's final flight, lost once
            return None
        return datagram

    link.filter = record
    handshake(link)  # completes once the client's timer resends its flight
    server = link.server.connection
    assert lost and server.stats["retransmit_on_peer_resend"] == 1
    assert vars(server) == {}  # every attribute has a slot: no per-instance dict
    assert server._key_pair is None and server._verifier is None
    assert server._transcript._sha256 is None and not server._transcript.keeps_messages
    # Still held: the final flight (NewSessionTicket at epoch 0, CCS, Finished at epoch 1).
    assert server._flight is not None and set(server._write_states) == {0, 1}
    assert link.client.connection.state is HandshakeState.ESTABLISHED
    finished = to_server[-1]  # the client's resent flight ends with its Finished
    assert any(h.epoch == 1 for h in split_records(finished)[0])
    # The client's first record under the new keys: the flight and epoch-0 writes go.
    link.client.connection.send(b"first")
    link.run(lambda: bool(link.server.of_type(ApplicationData)))
    assert server._flight is None and set(server._write_states) == {1}
    server.receive_datagram(finished, CLIENT_ADDR, link.now)
    assert server.datagrams_to_send(link.now) == []
    assert server.stats["retransmit_on_peer_resend"] == 1
    server.send(b"still fine")
    link.run(lambda: bool(link.client.of_type(ApplicationData)))
    assert [e.data for e in link.client.of_type(ApplicationData)] == [b"still fine"]
    assert server.state is HandshakeState.ESTABLISHED


def test_network_duplicates_of_a_flight_are_not_answered_but_resends_are(
        server_identity) -> None:
    """RFC 6347 4.2.4: resend our flight when the peer resends its previous one.  A resend
    carries new record sequence numbers; a byte-identical copy is the network duplicating
    a datagram and must not trigger a flight (or duplicates multiply into flights)."""
    link = make_pair(server_identity)
    link.client.connection.connect(link.now)
    client, server = link.client.connection, link.server.connection
    [(hello, _)] = client.datagrams_to_send(link.now)
    server.receive_datagram(hello, CLIENT_ADDR, link.now)
    [(hvr, _)] = server.datagrams_to_send(link.now)
    client.receive_datagram(hvr, SERVER_ADDR, link.now)
    [(hello2, _)] = client.datagrams_to_send(link.now)
    server.receive_datagram(hello2, CLIENT_ADDR, link.now)
    flight4 = server.datagrams_to_send(link.now)
    assert flight4
    server.receive_datagram(hello2, CLIENT_ADDR, link.now)  # the network duplicated it
    assert server.datagrams_to_send(link.now) == []
    assert server.stats["duplicate_handshake_record"] == 1
    client.handle_timer(client.get_timer())  # the client's genuine resend
    [(resent, _)] = client.datagrams_to_send(link.now)
    assert resent != hello2
    server.receive_datagram(resent, CLIENT_ADDR, link.now)
    assert len(server.datagrams_to_send(link.now)) == len(flight4)
    assert server.stats["retransmit_on_peer_resend"] == 1


def test_timer_doubles_and_caps(server_identity) -> None:
    client = make_pair(server_identity, client={"max_retransmit_timeout": 4.0}).client.connection
    client.connect(0.0)
    client.datagrams_to_send(0.0)
    deadlines = []
    now = 0.0
    for _ in range(5):
        now = client.get_timer()
        deadlines.append(now)
        client.handle_timer(now)
        assert len(client.datagrams_to_send(now)) == 1  # the whole flight, again
    gaps = [b - a for a, b in zip([0.0] + deadlines, deadlines)]
    assert gaps == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_handshake_gives_up_after_handshake_timeout(server_identity) -> None:
    link = make_pair(server_identity, client={"handshake_timeout": 10.0}, loss=1.0)
    link.client.connection.connect(0.0)
    link.run(lambda: bool(link.client.of_type(ConnectionTerminated)))
    (end,) = link.client.of_type(ConnectionTerminated)
    assert end.alert is None and "10 s" in end.reason and link.now == pytest.approx(10.0)


def test_next_epoch_records_are_buffered_until_keys_exist(server_identity) -> None:
    # Hold back the datagrams with the server's epoch-0 records of flight 5? Simpler: the
    # client's flight 5 is one datagram; split it so Finished (epoch 1) arrives first.
    link = make_pair(server_identity)

    def finished_first(destination, datagram: bytes) -> bytes | None:
        headers, _ = split_records(datagram)
        if destination is link.server and len(headers) > 1 and headers[-1].epoch == 1:
            last = headers[-1]
            destination.connection.receive_datagram(datagram[last.offset:last.end],
                                                    CLIENT_ADDR, link.now)
            return datagram[:last.offset]
        return datagram

    link.filter = finished_first
    handshake(link)
    assert link.server.connection.stats["deferred"] == 1


def test_deferred_records_are_bounded(server_identity) -> None:
    link = make_pair(server_identity, server={"max_buffered_records": 2})
    server = link.server.connection
    server.receive_datagram(_client_hello_with_cookie(link), CLIENT_ADDR, 0.0)
    assert server.state is HandshakeState.WAIT_CLIENT_KEY_EXCHANGE
    fake = bytes([ContentType.HANDSHAKE, 0xFE, 0xFD, 0, 1]) + bytes(6) + bytes([0, 1, 0])
    for _ in range(5):
        server.receive_datagram(fake, CLIENT_ADDR, 0.0)
    # No epoch-1 keys yet: two records held for later, the rest dropped.
    assert server.stats["deferred"] == 2 and server.stats["unknown_epoch"] == 3


def test_stateless_server_defers_nothing(server_identity) -> None:
    server = make_pair(server_identity).server.connection
    fake = bytes([ContentType.HANDSHAKE, 0xFE, 0xFD, 0, 1]) + bytes(6) + bytes([0, 1, 0])
    server.receive_datagram(fake, CLIENT_ADDR, 0.0)
    assert server.stats["deferred"] == 0 and server.stats["unknown_epoch"] == 1


# -- the stateless cookie exchange -------------------------------------------------------


def test_stateless_server_keeps_nothing_before_a_valid_cookie(server_identity) -> None:
    link = make_pair(server_identity)
    client, server = link.client.connection, link.server.connection
    client.connect(0.0)
    (hello,), = [[d for d, _ in client.datagrams_to_send(0.0)]]
    for i in range(3):
        server.receive_datagram(hello, ("198.51.100.7", 1000 + i), 0.0)
    replies = server.datagrams_to_send(0.0)
    assert [addr for _, addr in replies] == [("198.51.100.7", 1000 + i) for i in range(3)]
    assert server.state is HandshakeState.SERVER_WAIT_CLIENT_HELLO
    assert server.peer_address is None and server.get_timer() is None
    # Each HelloVerifyRequest echoes the ClientHello's record sequence number (4.2.1).
    headers, _ = split_records(replies[0][0])
    assert headers[0].seq == split_records(hello)[0][0].seq


def _client_hello_with_cookie(link: Link) -> bytes:
    client, server = link.client.connection, link.server.connection
    client.connect(0.0)
    (hello, _), = client.datagrams_to_send(0.0)
    server.receive_datagram(hello, CLIENT_ADDR, 0.0)
    (hvr, _), = server.datagrams_to_send(0.0)
    client.receive_datagram(hvr, SERVER_ADDR, 0.0)
    (hello2, _), = client.datagrams_to_send(0.0)
    return hello2


def test_cookie_is_bound_to_the_client_address(server_identity) -> None:
    link = make_pair(server_identity)
    hello2 = _client_hello_with_cookie(link)
    server = link.server.connection
    server.receive_datagram(hello2, ("203.0.113.9", 5555), 0.0)
    assert server.state is HandshakeState.SERVER_WAIT_CLIENT_HELLO
    assert server.stats["hello_verify_request"] == 2
    server.receive_datagram(hello2, CLIENT_ADDR, 0.0)
    assert server.state is HandshakeState.WAIT_CLIENT_KEY_EXCHANGE
    assert server.peer_address == CLIENT_ADDR


# -- certificate verification and negotiation failures -----------------------------------


def test_wrong_pinned_fingerprint_fails_with_bad_certificate_on_both_sides(
        server_identity) -> None:
    link = make_pair(server_identity, client={"pinned_sha256": (b"\x00" * 32,)})
    link.client.connection.connect(0.0)
    link.run(lambda: both_terminated(link))
    (client_end,) = link.client.of_type(ConnectionTerminated)
    (server_end,) = link.server.of_type(ConnectionTerminated)
    assert client_end.alert == AlertDescription.bad_certificate and not client_end.by_peer
    assert "fingerprint" in client_end.reason
    assert server_end.alert == AlertDescription.bad_certificate and server_end.by_peer
    assert not link.client.of_type(HandshakeCompleted)


def test_ca_verification_with_hostname(server_identity) -> None:
    ca = make_certificate("Test CA", ca=True)
    leaf = make_certificate("localhost", issuer=ca)
    link = make_pair(leaf, client={"pinned_sha256": (), "ca_certificates": (ca[0],)},
                     server={"certificate_chain": [leaf[0]], "private_key": leaf[1]})
    handshake(link)


@pytest.mark.parametrize("case, alert, words", [
    ("other_ca", AlertDescription.unknown_ca, "trusted root"),
    ("wrong_name", AlertDescription.bad_certificate, "server name"),
])
def test_ca_verification_failures(case: str, alert: AlertDescription, words: str) -> None:
    ca = make_certificate("Test CA", ca=True)
    leaf = make_certificate("localhost", issuer=ca)
    roots = (make_certificate("Other CA", ca=True)[0],) if case == "other_ca" else (ca[0],)
    name = "example.com" if case == "wrong_name" else "localhost"
    link = make_pair(leaf, client={"pinned_sha256": (), "ca_certificates": roots,
                                   "server_name": name},
                     server={"certificate_chain": [leaf[0]], "private_key": leaf[1]})
    link.client.connection.connect(0.0)
    link.run(lambda: both_terminated(link))
    (client_end,) = link.client.of_type(ConnectionTerminated)
    assert client_end.alert == alert and words in client_end.reason
    assert link.server.of_type(ConnectionTerminated)[0].alert == alert


def test_client_requires_a_verifier() -> None:
    with pytest.raises(ValueError, match="pinned_sha256"):
        Connection(DtlsConfiguration())
    Connection(DtlsConfiguration(verify_peer=False))


def test_no_common_group_is_handshake_failure(server_identity) -> None:
    link = make_pair(server_identity, client={"groups": (NamedGroup.x25519,)},
                     server={"groups": (NamedGroup.secp256r1,)})
    link.client.connection.connect(0.0)
    link.run(lambda: both_terminated(link))
    assert link.server.of_type(ConnectionTerminated)[0].alert == AlertDescription.handshake_failure
    assert link.client.of_type(ConnectionTerminated)[0].by_peer


def test_server_requires_extended_master_secret(server_identity) -> None:
    link = make_pair(server_identity)
    client = link.client.connection
    build = client._build_client_hello

    def without_ems() -> ClientHello:  # a client that does not offer RFC 7627
        hello = build()
        hello.extensions = [e for e in hello.extensions if e.extension_type != 23]
        return hello

    client._build_client_hello = without_ems  # type: ignore[method-assign]
    client.connect(0.0)
    link.run(lambda: both_terminated(link))
    end = link.server.of_type(ConnectionTerminated)[0]
    assert end.alert == AlertDescription.handshake_failure
    assert "extended_master_secret" in end.reason  # RFC 7627 5.2: the server must abort
    assert link.client.of_type(ConnectionTerminated)[0].by_peer


def test_tampered_server_key_exchange_is_decrypt_error(server_identity) -> None:
    link = make_pair(server_identity, server={"cookie_exchange": False})

    def flip_signature_byte(destination, datagram: bytes) -> bytes:
        headers, _ = split_records(datagram)
        data = bytearray(datagram)
        for h in headers:
            if h.content_type != ContentType.HANDSHAKE or h.epoch != 0:
                continue
            pos = h.offset + 13
            for fragment in parse_fragments(datagram[pos:h.end]):
                if fragment.msg_type == HandshakeType.server_key_exchange:
                    data[pos + 12 + fragment.fragment_length - 1] ^= 1  # last signature byte
                pos += 12 + fragment.fragment_length
        return bytes(data)

    link.filter = flip_signature_byte
    link.client.connection.connect(0.0)
    link.run(lambda: both_terminated(link))
    end = link.client.of_type(ConnectionTerminated)[0]
    assert end.alert in (AlertDescription.decrypt_error, AlertDescription.decode_error)


def test_invalid_records_are_dropped_and_counted(server_identity) -> None:
    link = make_pair(server_identity)
    handshake(link)
    client, server = link.client.connection, link.server.connection
    client.send(b"genuine")
    (record, _), = client.datagrams_to_send(link.now)
    forged = bytearray(record)
    forged[-1] ^= 0xFF
    server.receive_datagram(bytes(forged), CLIENT_ADDR, link.now)
    server.receive_datagram(record, CLIENT_ADDR, link.now)
    server.receive_datagram(record, CLIENT_ADDR, link.now)  # replay
    server.receive_datagram(b"\x17garbage", CLIENT_ADDR, link.now)
    server.receive_datagram(record, ("198.51.100.1", 1), link.now)  # another address
    link.server.drain_events()
    assert [e.data for e in link.server.of_type(ApplicationData)] == [b"genuine"]
    assert server.stats["record_bad_mac"] == 1 and server.stats["record_replay"] == 1
    assert server.stats["wrong_address"] == 1
    assert server.state is HandshakeState.ESTABLISHED


def _inject_from_server(link: Link, msg_type: HandshakeType) -> None:
    """An authenticated epoch-1 handshake message from the server, next in message_seq."""
    server = link.server.connection
    message = HandshakeMessage(msg_type, server._send_message_seq, b"")
    record = server._write_states[1].seal(ContentType.HANDSHAKE, message.serialize())
    link.client.connection.receive_datagram(record, SERVER_ADDR, link.now)


def test_unexpected_handshake_message_is_unexpected_message(server_identity) -> None:
    link = make_pair(server_identity)
    handshake(link)
    _inject_from_server(link, HandshakeType.server_hello_done)
    link.run(lambda: both_terminated(link))
    client_end = link.client.of_type(ConnectionTerminated)[0]
    assert client_end.alert == AlertDescription.unexpected_message
    assert "server_hello_done in state established" in client_end.reason
    assert link.server.of_type(ConnectionTerminated)[0].alert == \
        AlertDescription.unexpected_message


def test_renegotiation_is_refused_with_a_warning(server_identity) -> None:
    link = make_pair(server_identity)
    handshake(link)
    _inject_from_server(link, HandshakeType.hello_request)
    (alert, _), = link.client.connection.datagrams_to_send(link.now)
    opened = link.server.connection._read_states[1].open(alert)
    assert opened.content_type == ContentType.ALERT and bytes(opened.payload) == b"\x01\x64"
    assert link.client.connection.state is HandshakeState.ESTABLISHED


# -- what unauthenticated or stray input cannot do ---------------------------------------


def _plaintext_record(content_type: int, payload: bytes, seq: int = 100, epoch: int = 0) -> bytes:
    return (bytes([content_type, 0xFE, 0xFD]) + epoch.to_bytes(2, "big") + seq.to_bytes(6, "big")
            + len(payload).to_bytes(2, "big") + payload)


def test_listener_ignores_spoofed_alerts(server_identity) -> None:
    link = make_pair(server_identity)
    server = link.server.connection
    server.receive_datagram(_plaintext_record(ContentType.ALERT, b"\x02\x28"), CLIENT_ADDR, 0.0)
    assert server.state is HandshakeState.SERVER_WAIT_CLIENT_HELLO
    handshake(link)


def test_epoch0_alert_after_handshake_is_ignored(server_identity) -> None:
    link = make_pair(server_identity)
    handshake(link)
    client = link.client.connection
    client.receive_datagram(_plaintext_record(ContentType.ALERT, b"\x02\x28", seq=999),
                            SERVER_ADDR, link.now)
    assert client.state is HandshakeState.ESTABLISHED
    assert client.stats["stale_epoch_alert"] == 1


def test_unprotected_finished_is_dropped(server_identity) -> None:
    link = make_pair(server_identity)
    hello2 = _client_hello_with_cookie(link)
    server = link.server.connection
    server.receive_datagram(hello2, CLIENT_ADDR, 0.0)
    fake = HandshakeMessage(HandshakeType.finished, 3, bytes(12)).serialize()
    server.receive_datagram(_plaintext_record(ContentType.HANDSHAKE, fake), CLIENT_ADDR, 0.0)
    assert server.stats["unprotected_finished"] == 1
    assert server.state is HandshakeState.WAIT_CLIENT_KEY_EXCHANGE


def test_pending_events_are_bounded(server_identity) -> None:
    link = make_pair(server_identity, server={"max_pending_events": 3})
    handshake(link)
    server = link.server.connection
    client = link.client.connection
    for i in range(10):
        client.send(b"%d" % i)
    for datagram, _ in client.datagrams_to_send(link.now):
        server.receive_datagram(datagram, CLIENT_ADDR, link.now)
    # The link drained HandshakeCompleted already: 3 data events fit, 7 are dropped.
    events = [server.next_event() for _ in range(4)]
    assert [e.data for e in events[:3]] == [b"0", b"1", b"2"] and events[3] is None
    assert server.stats["events_dropped"] == 7


def test_client_accepts_a_255_byte_cookie(server_identity) -> None:
    link = make_pair(server_identity, server={"cookie_exchange": False})
    client = link.client.connection
    client.connect(0.0)
    client.datagrams_to_send(0.0)
    hvr = HandshakeMessage(HandshakeType.hello_verify_request, 0,
                           b"\xfe\xff" + bytes([255]) + b"c" * 255).serialize()
    client.receive_datagram(_plaintext_record(ContentType.HANDSHAKE, hvr, seq=0), SERVER_ADDR,
                            0.0)
    assert client.state is HandshakeState.WAIT_SERVER_HELLO_AFTER_COOKIE
    (hello2, _), = client.datagrams_to_send(0.0)
    assert b"c" * 255 in hello2
    link.server.connection.receive_datagram(hello2, CLIENT_ADDR, 0.0)
    link.run(lambda: both_completed(link))
    assert both_completed(link)


def test_final_flight_is_kept_until_the_peer_proves_it_finished(server_identity) -> None:
    link = make_pair(server_identity)
    handshake(link)
    server = link.server.connection
    assert server._flight is not None  # still answering resends of flight 5
    link.client.connection.send(b"proof")
    link.run(lambda: bool(link.server.of_type(ApplicationData)))
    assert server._flight is None


def test_server_refusing_our_finished_reaches_the_client(server_identity) -> None:
    """The server's alert is in epoch 0 (it never switched): the client must still take it."""
    link = make_pair(server_identity)
    server = link.server.connection
    real = server._verify_data

    def wrong_for_client(*, from_client: bool) -> bytes:
        value = real(from_client=from_client)
        return bytes(12) if from_client else value

    server._verify_data = wrong_for_client  # type: ignore[method-assign]
    link.client.connection.connect(0.0)
    link.run(lambda: both_terminated(link))
    assert link.server.of_type(ConnectionTerminated)[0].alert == AlertDescription.decrypt_error
    client_end = link.client.of_type(ConnectionTerminated)[0]
    assert client_end.alert == AlertDescription.decrypt_error and client_end.by_peer


def test_exporter_and_key_log_agree_on_both_sides(server_identity) -> None:
    client_lines: list[str] = []
    server_lines: list[str] = []
    link = make_pair(server_identity, client={"keylog": client_lines.append},
                     server={"keylog": server_lines.append})
    with pytest.raises(ConnectionStateError):
        link.client.connection.export_keying_material("EXPERIMENTAL-x", 16)
    handshake(link)
    client, server = link.client.connection, link.server.connection
    for context in (None, b"", b"ctx"):
        a = client.export_keying_material("EXTRACTOR-dtls_srtp", 60, context)
        assert a == server.export_keying_material("EXTRACTOR-dtls_srtp", 60, context)
        assert len(a) == 60
    assert client_lines == server_lines and len(client_lines) == 1
    assert client_lines[0].startswith("CLIENT_RANDOM ")
    assert "keylog" not in repr(client.configuration)


def test_ca_verification_needs_a_server_name() -> None:
    ca, _ = make_certificate("CA", ca=True)
    with pytest.raises(ValueError, match="server_name"):
        Connection(DtlsConfiguration(ca_certificates=(ca,)))


# -- client certificates -----------------------------------------------------------------


@pytest.fixture(scope="module")
def client_identity():
    return make_certificate("client.example", client=True)


def test_client_certificate_required_and_pinned(server_identity, client_identity) -> None:
    cert, key = client_identity
    link = make_pair(server_identity,
                     client={"certificate_chain": [cert], "private_key": key},
                     server={"client_auth": ClientAuth.REQUIRE,
                             "pinned_sha256": (fingerprint_sha256(cert),)})
    handshake(link)
    assert link.server.of_type(HandshakeCompleted)[0].peer_certificate == cert
    assert link.client.connection._certificate_request is not None


def test_client_certificate_verified_against_a_ca(server_identity) -> None:
    ca = make_certificate("Client CA", ca=True)
    cert, key = make_certificate("client.example", issuer=ca, client=True)
    link = make_pair(server_identity,
                     client={"certificate_chain": [cert], "private_key": key},
                     server={"client_auth": ClientAuth.REQUIRE, "ca_certificates": (ca[0],)})
    handshake(link)
    assert link.server.of_type(HandshakeCompleted)[0].peer_certificate == cert


def test_requested_but_absent_client_certificate_is_fine(server_identity, client_identity) -> None:
    link = make_pair(server_identity, server={
        "client_auth": ClientAuth.REQUEST,
        "pinned_sha256": (fingerprint_sha256(client_identity[0]),)})
    handshake(link)
    assert link.server.of_type(HandshakeCompleted)[0].peer_certificate is None


def test_required_but_absent_client_certificate_fails(server_identity, client_identity) -> None:
    link = make_pair(server_identity, server={
        "client_auth": ClientAuth.REQUIRE,
        "pinned_sha256": (fingerprint_sha256(client_identity[0]),)})
    link.client.connection.connect(0.0)
    link.run(lambda: both_terminated(link))
    end = link.server.of_type(ConnectionTerminated)[0]
    assert end.alert == AlertDescription.handshake_failure and "no certificate" in end.reason
    assert link.client.of_type(ConnectionTerminated)[0].by_peer


def test_wrong_client_pin_is_bad_certificate(server_identity, client_identity) -> None:
    cert, key = client_identity
    link = make_pair(server_identity,
                     client={"certificate_chain": [cert], "private_key": key},
                     server={"client_auth": ClientAuth.REQUIRE, "pinned_sha256": (bytes(32),)})
    link.client.connection.connect(0.0)
    link.run(lambda: both_terminated(link))
    assert link.server.of_type(ConnectionTerminated)[0].alert == AlertDescription.bad_certificate
    assert link.client.of_type(ConnectionTerminated)[0].alert == AlertDescription.bad_certificate


def test_client_without_the_private_key_fails_certificate_verify(
        server_identity, client_identity) -> None:
    cert, _ = client_identity
    _, other_key = make_certificate("impostor")
    link = make_pair(server_identity,
                     client={"certificate_chain": [cert], "private_key": other_key},
                     server={"client_auth": ClientAuth.REQUIRE,
                             "pinned_sha256": (fingerprint_sha256(cert),)})
    link.client.connection.connect(0.0)
    link.run(lambda: both_terminated(link))
    end = link.server.of_type(ConnectionTerminated)[0]
    assert end.alert == AlertDescription.decrypt_error and "CertificateVerify" in end.reason


def test_server_asking_for_client_certificates_needs_trust_settings(server_identity) -> None:
    cert, key = server_identity
    with pytest.raises(ValueError, match="pinned_sha256"):
        Connection(DtlsConfiguration(is_client=False, certificate_chain=[cert],
                                     private_key=key, client_auth=ClientAuth.REQUIRE))


# -- ALPN and repeated HelloVerifyRequests -----------------------------------------------


def test_alpn_server_preference(server_identity) -> None:
    link = make_pair(server_identity, client={"alpn_protocols": (b"h2", b"coap", b"webrtc")},
                     server={"alpn_protocols": (b"webrtc", b"coap")})
    handshake(link)
    assert link.client.of_type(HandshakeCompleted)[0].alpn_protocol == b"webrtc"
    assert link.server.of_type(HandshakeCompleted)[0].alpn_protocol == b"webrtc"


def test_alpn_only_on_one_side_is_not_negotiated(server_identity) -> None:
    link = make_pair(server_identity, client={"alpn_protocols": (b"coap",)})
    handshake(link)
    assert link.client.of_type(HandshakeCompleted)[0].alpn_protocol is None


def test_alpn_without_overlap_is_no_application_protocol(server_identity) -> None:
    link = make_pair(server_identity, client={"alpn_protocols": (b"coap",)},
                     server={"alpn_protocols": (b"webrtc",)})
    link.client.connection.connect(0.0)
    link.run(lambda: both_terminated(link))
    assert link.client.of_type(ConnectionTerminated)[0].alert == \
        AlertDescription.no_application_protocol


def test_client_answers_a_second_hello_verify_request(server_identity) -> None:
    link = make_pair(server_identity)
    hello2 = _client_hello_with_cookie(link)
    server = link.server.connection
    server.configuration.cookie_signer.rotate()
    server.configuration.cookie_signer.rotate()  # our cookie is now two secrets old
    server.receive_datagram(hello2, CLIENT_ADDR, 0.0)
    assert server.state is HandshakeState.SERVER_WAIT_CLIENT_HELLO
    link.run(lambda: both_completed(link))
    assert both_completed(link) and server.stats["hello_verify_request"] == 2


class _RejectingSigner(CookieSigner):
    def check(self, addr, hello, now) -> bool:  # type: ignore[no-untyped-def]
        return False


def test_client_gives_up_on_endless_hello_verify_requests(server_identity) -> None:
    link = make_pair(server_identity, server={"cookie_signer": _RejectingSigner()})
    link.client.connection.connect(0.0)
    link.run(lambda: bool(link.client.of_type(ConnectionTerminated)))
    end = link.client.of_type(ConnectionTerminated)[0]
    assert end.alert == AlertDescription.handshake_failure and "HelloVerifyRequests" in end.reason


def test_without_extended_master_secret_when_both_allow_it(server_identity) -> None:
    link = make_pair(server_identity, client={"require_extended_master_secret": False},
                     server={"require_extended_master_secret": False})
    client = link.client.connection
    build = client._build_client_hello

    def without_ems() -> ClientHello:
        hello = build()
        hello.extensions = [e for e in hello.extensions if e.extension_type != 23]
        return hello

    client._build_client_hello = without_ems  # type: ignore[method-assign]
    handshake(link)
    assert not link.server.of_type(HandshakeCompleted)[0].extended_master_secret
    link.client.connection.send(b"legacy master secret")
    link.run(lambda: bool(link.server.of_type(ApplicationData)))


# -- forged epoch-0 records cannot stall the handshake ------------------------------------


def test_forged_huge_sequence_number_does_not_block_epoch_0(server_identity) -> None:
    link = make_pair(server_identity)
    client = link.client.connection
    client.connect(0.0)
    junk = HandshakeMessage(HandshakeType.hello_request, 40, b"").serialize()
    # Without a window at epoch 0 this moves nothing; with one, every genuine record of
    # the handshake would now be "too old".
    client.receive_datagram(_plaintext_record(ContentType.HANDSHAKE, junk, seq=(1 << 48) - 2),
                            SERVER_ADDR, 0.0)
    link.run(lambda: both_completed(link))
    assert both_completed(link) and client.stats["record_too_old"] == 0


def test_forged_fragment_that_poisons_reassembly_is_forgotten_on_timeout(
        server_identity) -> None:
    link = make_pair(server_identity)
    forged: list[bytes] = []

    def forge_before_server_hello(destination, datagram: bytes) -> bytes:
        if destination is link.client and not forged and len(datagram) > 200:
            # A fragment claiming ServerHello (message_seq 1) is 999 bytes long: the
            # genuine one then disagrees with it and is dropped as inconsistent.
            fake = HandshakeFragment(HandshakeType.server_hello, 999, 1, 0, b"\x00" * 10)
            forged.append(_plaintext_record(ContentType.HANDSHAKE, fake.serialize(), seq=50))
            destination.connection.receive_datagram(forged[0], SERVER_ADDR, link.now)
        return datagram

    link.filter = forge_before_server_hello
    handshake(link)
    client = link.client.connection
    assert forged and client.stats["fragment_inconsistent_header"] >= 1
    assert client.stats["reassembly_reset"] == 1


# -- PSK ---------------------------------------------------------------------------------

PSK_GCM = CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256


def psk_pair(server_identity, *, client: dict | None = None, server: dict | None = None,
             **link_args) -> Link:
    return make_pair(server_identity,
                     client={"pinned_sha256": (), "cipher_suites": (PSK_GCM,), **CLIENT_PSK,
                             **(client or {})},
                     server={"certificate_chain": [], "private_key": None, **SERVER_PSK,
                             **(server or {})}, **link_args)


def test_psk_only_client_and_server(server_identity) -> None:
    link = psk_pair(server_identity, server={"psk_identity_hint": b"say who you are"})
    handshake(link)
    done = link.server.of_type(HandshakeCompleted)[0]
    assert done.cipher_suite is PSK_GCM and done.psk_identity == b"client-1"
    assert done.peer_certificate is None and done.named_group is None
    link.client.connection.send(b"psk data")
    link.run(lambda: bool(link.server.of_type(ApplicationData)))


def test_unknown_psk_identity(server_identity) -> None:
    link = psk_pair(server_identity, client={"psk_identity": b"stranger"})
    link.client.connection.connect(0.0)
    link.run(lambda: both_terminated(link))
    for endpoint in (link.client, link.server):
        assert endpoint.of_type(ConnectionTerminated)[0].alert == \
            AlertDescription.unknown_psk_identity


@pytest.mark.parametrize("suite", [PSK_GCM,
                                   CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256])
def test_wrong_psk_fails_fast_with_bad_record_mac(server_identity, suite) -> None:
    link = psk_pair(server_identity, client={"psk": b"not the right key", "cipher_suites": (suite,)})
    link.client.connection.connect(0.0)
    link.run(lambda: both_terminated(link))
    server_end = link.server.of_type(ConnectionTerminated)[0]
    assert server_end.alert == AlertDescription.bad_record_mac and "PSK" in server_end.reason
    assert link.client.of_type(ConnectionTerminated)[0].by_peer
    assert link.now < 10  # three client flights, not the 120 s handshake timeout


def test_psk_client_needs_no_certificate_trust(server_identity) -> None:
    config = DtlsConfiguration(psk=PSK, psk_identity=b"client-1")
    assert all("PSK" in s.name for s in config.usable_cipher_suites())
    Connection(config)
    with pytest.raises(ValueError, match="no usable cipher suite"):
        Connection(DtlsConfiguration(is_client=False))


# -- certificate key types ---------------------------------------------------------------


@pytest.mark.parametrize("key_type, suite, scheme", [
    ("p384", CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0x0503),
    ("ed25519", CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0x0807),
    ("rsa", CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 0x0804),
])
def test_server_certificate_key_types(key_type: str, suite: CipherSuite, scheme: int) -> None:
    identity = make_certificate("localhost", key_type=key_type)
    link = make_pair(identity)
    schemes: list[int] = []

    def watch_server_key_exchange(destination, datagram: bytes) -> bytes:
        for h in split_records(datagram)[0]:
            if h.epoch == 0 and h.content_type == ContentType.HANDSHAKE:
                for f in parse_fragments(datagram[h.offset + 13:h.end]):
                    if f.msg_type == HandshakeType.server_key_exchange and f.fragment_offset == 0:
                        # named_curve(1) group(2) point<1..255> then the scheme (2 bytes)
                        body = bytes(f.body)
                        point_length = body[3]
                        schemes.append(int.from_bytes(body[4 + point_length:6 + point_length],
                                                      "big"))
        return datagram

    link.filter = watch_server_key_exchange
    handshake(link)
    assert link.client.of_type(HandshakeCompleted)[0].cipher_suite is suite
    assert schemes and set(schemes) == {scheme}


def test_rsa_server_falls_back_to_pkcs1_when_pss_is_not_offered(rsa_identity) -> None:
    link = make_pair(rsa_identity)
    client = link.client.connection
    build = client._build_client_hello

    def pkcs1_only() -> ClientHello:
        hello = build()
        for ext in hello.extensions:
            if isinstance(ext, SignatureAlgorithms):
                ext.schemes = [0x0401]
        return hello

    client._build_client_hello = pkcs1_only  # type: ignore[method-assign]
    handshake(link)


def test_rsa_server_cannot_serve_an_ecdsa_only_client(rsa_identity) -> None:
    link = make_pair(rsa_identity, client={"cipher_suites": (
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,)})
    link.client.connection.connect(0.0)
    link.run(lambda: both_terminated(link))
    assert link.server.of_type(ConnectionTerminated)[0].alert == AlertDescription.handshake_failure


def test_certificate_key_must_fit_the_suite(rsa_identity) -> None:
    # RFC 8422 2: an ECDHE_ECDSA suite with an RSA certificate is unsupported_certificate.
    client = Connection(DtlsConfiguration(verify_peer=False))
    client._suite = suite_info(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
    with pytest.raises(AlertError) as info:
        client._verify_peer_certificate([rsa_identity[0].public_bytes(Encoding.DER)])
    assert info.value.description == AlertDescription.unsupported_certificate


def test_rsa_client_certificate(server_identity) -> None:
    ca = make_certificate("Client CA", ca=True)
    cert, key = make_certificate("client.example", issuer=ca, client=True, key_type="rsa")
    link = make_pair(server_identity,
                     client={"certificate_chain": [cert], "private_key": key},
                     server={"client_auth": ClientAuth.REQUIRE, "ca_certificates": (ca[0],)})
    handshake(link)
    assert link.server.of_type(HandshakeCompleted)[0].peer_certificate == cert


def test_unusable_private_keys_are_configuration_errors() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec as _ec
    cert, _ = make_certificate("localhost")
    with pytest.raises(ValueError, match="P-256 or P-384"):
        DtlsConfiguration(is_client=False, certificate_chain=[cert],
                          private_key=_ec.generate_private_key(_ec.SECP521R1())).validate()


# -- batch API and the front-ends' fast path ---------------------------------------------


def test_send_many_seals_one_datagram_per_payload(server_identity) -> None:
    link = make_pair(server_identity)
    with pytest.raises(ConnectionStateError):
        link.client.connection.send_many([b"early"])
    handshake(link)
    payloads = [b"p%d" % i for i in range(12)] + [b""]
    link.client.connection.send_many(payloads)
    link.run(lambda: len(link.server.of_type(ApplicationData)) == len(payloads))
    assert [e.data for e in link.server.of_type(ApplicationData)] == payloads
    with pytest.raises(ValueError):
        link.client.connection.send_many([b"ok", bytes(2**14 + 1)])
    link.client.connection.send_many([])


def test_fast_path_states_and_receive_opened(server_identity) -> None:
    """What a front-end's batched socket path does: seal and open with the connection's
    own states, hand everything that is not application data to receive_opened."""
    link = make_pair(server_identity)
    assert link.client.connection.application_states() is None
    handshake(link)
    link.run(lambda: False, max_time=0.1)  # settle
    client, server = link.client.connection, link.server.connection
    c_states, s_states = client.application_states(), server.application_states()
    assert c_states is not None and s_states is not None
    _, c_write = c_states
    s_read, _ = s_states
    # Application data sealed by the client's write state opens with the server's read
    # state; the server's own sequence numbers and replay window move.
    record = c_write.seal(ContentType.APPLICATION_DATA, b"fast")
    opened = s_read.open(record)
    assert opened.ok and bytes(opened.payload) == b"fast"
    assert not s_read.open(record).ok  # the shared window saw it
    # An alert opened by the front-end goes to receive_opened and ends the connection.
    client.close()
    [(alert_record, _)] = client.datagrams_to_send(link.now)
    result = s_read.open(alert_record)
    assert result.ok and result.content_type == ContentType.ALERT
    server.receive_opened([result], CLIENT_ADDR, link.now, application_data=1,
                          refused={})
    assert server.state is HandshakeState.CLOSED
    (end,) = [e for e in iter(server.next_event, None) if isinstance(e, ConnectionTerminated)]
    assert end.by_peer and end.alert == AlertDescription.close_notify
    assert server.application_states() is None


def test_receive_opened_counts_refusals_and_ignores_other_addresses(server_identity) -> None:
    from dtls.recordbase import OpenStatus
    link = make_pair(server_identity)
    handshake(link)
    server = link.server.connection
    server.receive_opened([], CLIENT_ADDR, link.now,
                          refused={OpenStatus.BAD_MAC: 3, OpenStatus.REPLAY: 2})
    assert server.stats["record_bad_mac"] == 3 and server.stats["record_replay"] == 2
    server.receive_opened([], ("203.0.113.9", 1), link.now, refused={OpenStatus.BAD_MAC: 1})
    assert server.stats["wrong_address"] == 1 and server.stats["record_bad_mac"] == 3


# -- integrity limits (RFC 9147 4.5.3) ---------------------------------------------------


def _forge(link: Link) -> bytes:
    """An application_data record under the client's key with a corrupted tag."""
    states = link.client.connection.application_states()
    assert states is not None
    record = bytearray(states[1].seal(ContentType.APPLICATION_DATA, b"forged"))
    record[-1] ^= 1
    return bytes(record)


def test_forgery_limit_closes_the_connection_with_bad_record_mac(server_identity) -> None:
    link = make_pair(server_identity, server={"forgery_limit": 3})
    handshake(link)
    server = link.server.connection
    for _ in range(3):
        server.receive_datagram(_forge(link), CLIENT_ADDR, link.now)
    assert server.state is HandshakeState.ESTABLISHED and server.stats["record_bad_mac"] == 3
    server.receive_datagram(_forge(link), CLIENT_ADDR, link.now)
    assert server.state is HandshakeState.CLOSED
    (end,) = [e for e in iter(server.next_event, None) if isinstance(e, ConnectionTerminated)]
    assert end.alert == AlertDescription.bad_record_mac and not end.by_peer
    assert "integrity limit of 3" in end.reason
    [(alert, _)] = server.datagrams_to_send(link.now)  # the fatal alert goes to the client
    link.client.connection.receive_datagram(alert, SERVER_ADDR, link.now)
    assert link.client.connection.state is HandshakeState.CLOSED


def test_forgery_limit_defaults_to_the_ciphers_integrity_limit(server_identity) -> None:
    from dtls.protection import INTEGRITY_LIMITS, BulkCipher
    suite = CipherSuite.TLS_PSK_WITH_AES_128_CCM_8
    link = make_pair(server_identity, client={**CLIENT_PSK, "cipher_suites": (suite,)},
                     server={**SERVER_PSK, "cipher_suites": (suite,)})
    handshake(link)
    server = link.server.connection
    limit = INTEGRITY_LIMITS[BulkCipher.AES_128_CCM_8]
    assert limit == 128
    for _ in range(limit):
        server.receive_datagram(_forge(link), CLIENT_ADDR, link.now)
    assert server.state is HandshakeState.ESTABLISHED
    server.receive_datagram(_forge(link), CLIENT_ADDR, link.now)
    assert server.state is HandshakeState.CLOSED


def test_forgery_limit_validates() -> None:
    with pytest.raises(ValueError):
        DtlsConfiguration(forgery_limit=0, verify_peer=False).validate()


# -- CBC only with encrypt-then-MAC unless MAC-then-encrypt is allowed ----------------------


CBC = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256


def test_server_refuses_cbc_without_encrypt_then_mac_by_default(server_identity) -> None:
    link = make_pair(server_identity, client={"cipher_suites": (CBC,), "encrypt_then_mac": False,
                                              "mac_then_encrypt": True},
                     server={"cipher_suites": (CBC,)})
    link.client.connection.connect(link.now)
    link.run(lambda: bool(link.client.of_type(ConnectionTerminated)))
    (end,) = link.server.of_type(ConnectionTerminated)
    assert end.alert == AlertDescription.handshake_failure and "mac_then_encrypt" in end.reason


def test_client_refuses_a_server_choosing_cbc_without_encrypt_then_mac(server_identity) -> None:
    link = make_pair(server_identity, client={"cipher_suites": (CBC,)},
                     server={"cipher_suites": (CBC,), "encrypt_then_mac": False,
                             "mac_then_encrypt": True})
    link.client.connection.connect(link.now)
    link.run(lambda: bool(link.client.of_type(ConnectionTerminated)))
    (end,) = link.client.of_type(ConnectionTerminated)
    assert end.alert == AlertDescription.handshake_failure and "mac_then_encrypt" in end.reason
    assert not link.client.of_type(HandshakeCompleted)


def test_cbc_with_encrypt_then_mac_needs_no_opt_in(server_identity) -> None:
    link = make_pair(server_identity, client={"cipher_suites": (CBC,)},
                     server={"cipher_suites": (CBC,)})
    handshake(link)
    assert link.client.of_type(HandshakeCompleted)[0].encrypt_then_mac
