"""dtls.errors: how a ConnectionTerminated event maps to the exception users see."""

from __future__ import annotations

import pytest

from dtls.alerts import AlertDescription as A
from dtls.errors import (
    AlertReceived,
    AlertSent,
    CertificateVerificationFailed,
    ConnectionClosed,
    DtlsError,
    HandshakeTimeout,
    error_for_termination,
)
from dtls.events import ConnectionTerminated


@pytest.mark.parametrize(("alert", "by_peer", "established", "kind"), [
    (A.close_notify, True, True, ConnectionClosed),
    (A.close_notify, False, True, ConnectionClosed),
    (None, False, False, HandshakeTimeout),
    (None, False, True, ConnectionClosed),
    (A.handshake_failure, True, False, AlertReceived),
    (A.bad_certificate, True, False, AlertReceived),  # the peer rejected OUR certificate
    (A.bad_certificate, False, False, CertificateVerificationFailed),
    (A.unknown_ca, False, False, CertificateVerificationFailed),
    (A.certificate_expired, False, False, CertificateVerificationFailed),
    (A.decode_error, False, True, AlertSent),
    (200, True, True, AlertReceived),  # outside the registry
])
def test_mapping(alert: A | int | None, by_peer: bool, established: bool,
                 kind: type[DtlsError]) -> None:
    error = error_for_termination(ConnectionTerminated(alert, "why", by_peer),
                                  established=established)
    assert type(error) is kind and isinstance(error, DtlsError)
    if isinstance(error, (AlertReceived, AlertSent)):
        assert error.description == alert
    if isinstance(error, ConnectionClosed):
        assert error.by_peer is by_peer


def test_messages_say_what_happened() -> None:
    received = error_for_termination(
        ConnectionTerminated(A.unknown_psk_identity, "peer sent unknown_psk_identity", True),
        established=False)
    assert str(received) == ("the peer sent a fatal unknown_psk_identity alert: "
                             "it does not know our PSK identity")
    wrong_key = error_for_termination(
        ConnectionTerminated(A.bad_record_mac, "peer sent bad_record_mac", True),
        established=False)
    assert "wrong pre-shared key" in str(wrong_key)
    later = error_for_termination(
        ConnectionTerminated(A.bad_record_mac, "peer sent bad_record_mac", True),
        established=True)
    assert str(later) == "the peer sent a fatal bad_record_mac alert"
    failed = error_for_termination(ConnectionTerminated(
        A.bad_certificate, "bad_certificate: fingerprint mismatch", False), established=False)
    assert "fingerprint mismatch" in str(failed) and failed.reason.endswith("mismatch")
    assert isinstance(HandshakeTimeout("x"), TimeoutError)
