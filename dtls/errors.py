"""The exceptions the socket-like front-ends raise (blocking, asyncio, server).

The sans-IO core reports the end of a connection as a `ConnectionTerminated` event;
`error_for_termination` turns that event into one of these, so every front-end raises
the same thing for the same cause:

    DtlsError
    ├── HandshakeTimeout            (also a TimeoutError) the peer never completed it
    ├── AlertReceived               the peer sent a fatal alert (.description, .hint)
    ├── AlertSent                   we aborted with a fatal alert (.description)
    │   └── CertificateVerificationFailed   the peer's certificate failed our check (.reason)
    └── ConnectionClosed            orderly close (close_notify), by either side

Protocol-internal failures stay `dtls.alerts.AlertError`; these are for applications.
"""

from __future__ import annotations

from .alerts import AlertDescription
from .events import ConnectionTerminated

__all__ = [
    "AlertReceived", "AlertSent", "CertificateVerificationFailed", "ConnectionClosed",
    "DtlsError", "HandshakeTimeout", "error_for_termination",
]

_CERTIFICATE_ALERTS = frozenset({
    AlertDescription.bad_certificate, AlertDescription.unsupported_certificate,
    AlertDescription.certificate_revoked, AlertDescription.certificate_expired,
    AlertDescription.certificate_unknown, AlertDescription.unknown_ca,
})


_PEER_HINTS = {
    AlertDescription.bad_certificate: "it rejected our certificate (check the peer's trust "
                                      "settings: pinned fingerprint, CA, expected name)",
    AlertDescription.unsupported_certificate: "it cannot use our certificate's key type",
    AlertDescription.certificate_unknown: "it rejected our certificate",
    AlertDescription.certificate_expired: "it says our certificate has expired "
                                          "(or the clocks disagree)",
    AlertDescription.certificate_revoked: "it says our certificate was revoked",
    AlertDescription.unknown_ca: "it does not trust the CA that issued our certificate",
    AlertDescription.unknown_psk_identity: "it does not know our PSK identity",
    AlertDescription.handshake_failure: "no acceptable parameters in common (cipher "
                                        "suites, groups, signature algorithms) or it "
                                        "requires a client certificate",
    AlertDescription.protocol_version: "it does not support the DTLS version we offered",
}
_HANDSHAKE_MAC_HINT = ("it could not authenticate our handshake: the keys differ, most "
                       "likely a wrong pre-shared key")


def _name(description: AlertDescription | int | None) -> str:
    if isinstance(description, AlertDescription):
        return description.name
    return f"alert {description}"


class DtlsError(Exception):
    """Base class of every error a DTLS front-end raises to its application."""


class HandshakeTimeout(DtlsError, TimeoutError):
    """The handshake did not complete in time (no server, or every flight was lost)."""


class AlertReceived(DtlsError):
    """The peer ended the connection with a fatal alert (RFC 5246 7.2)."""

    def __init__(self, description: AlertDescription | int, reason: str = "", *,
                 hint: str = "") -> None:
        self.description = description
        self.reason = reason
        self.hint = hint
        """What the alert usually means for us (empty when nothing useful can be said)."""
        message = f"the peer sent a fatal {_name(description)} alert"
        super().__init__(f"{message}: {hint}" if hint else message)


class AlertSent(DtlsError):
    """We ended the connection with a fatal alert: the peer broke the protocol."""

    def __init__(self, description: AlertDescription | int, reason: str = "") -> None:
        self.description = description
        self.reason = reason
        super().__init__(reason or _name(description))


class CertificateVerificationFailed(AlertSent):
    """The peer's certificate did not pass our verification; `reason` says why
    (fingerprint mismatch, unknown CA, expired, wrong name...)."""


class ConnectionClosed(DtlsError):
    """The connection was closed in an orderly way; `by_peer` says who closed it."""

    def __init__(self, reason: str = "connection closed", *, by_peer: bool = False) -> None:
        self.by_peer = by_peer
        super().__init__(reason)


def error_for_termination(event: ConnectionTerminated, *, established: bool) -> DtlsError:
    """The exception an application sees for a connection that ended with `event`."""
    alert = event.alert
    if alert == AlertDescription.close_notify:
        return ConnectionClosed("the peer closed the connection" if event.by_peer
                                else "the connection was closed locally", by_peer=event.by_peer)
    if alert is None:
        if not established:
            return HandshakeTimeout(event.reason or "the handshake timed out")
        return ConnectionClosed(event.reason or "the connection ended", by_peer=event.by_peer)
    if event.by_peer:
        hint = _PEER_HINTS.get(alert, "")  # type: ignore[call-overload]
        if not established and alert in (AlertDescription.bad_record_mac,
                                         AlertDescription.decrypt_error):
            hint = _HANDSHAKE_MAC_HINT
        return AlertReceived(alert, event.reason, hint=hint)
    if alert in _CERTIFICATE_ALERTS:
        return CertificateVerificationFailed(alert, event.reason)
    return AlertSent(alert, event.reason)
