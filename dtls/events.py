"""Events a `Connection` reports to its application (`Connection.next_event()`).

Plain dataclasses, as aioquic's `quic.events` and h11's events: the application matches
on the type.  None of them carries key material, so they are safe to log.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509

from .alerts import AlertDescription
from .extensions import NamedGroup
from .suites import CipherSuite


@dataclass(frozen=True)
class Event:
    """Base class of every connection event."""


@dataclass(frozen=True)
class HandshakeCompleted(Event):
    """Both Finished messages verified (RFC 5246 7.4.9): application data may flow.

    `peer_certificate` is the verified leaf (None when the peer sent none);
    `peer_certificate_chain` is every DER certificate the peer sent, leaf first.
    """

    version: int
    cipher_suite: CipherSuite
    named_group: NamedGroup | None
    """The ECDHE group; None for plain PSK suites."""
    extended_master_secret: bool
    encrypt_then_mac: bool = False
    """RFC 7366 negotiated (CBC suites only)."""
    alpn_protocol: bytes | None = None
    """RFC 7301: the application protocol both sides agreed on, if ALPN was used."""
    psk_identity: bytes | None = None
    """PSK suites: the identity the client used (RFC 4279 2)."""
    peer_certificate: x509.Certificate | None = None
    peer_certificate_chain: tuple[bytes, ...] = field(default=(), repr=False)
    resumed: bool = False
    """An abbreviated handshake resumed an earlier session (RFC 5246 7.3); the peer
    certificate is then the one verified when the session was made."""


@dataclass(frozen=True)
class ApplicationData(Event):
    """The plaintext of one authenticated application_data record (RFC 6347 4.1)."""

    data: bytes


@dataclass(frozen=True)
class ConnectionTerminated(Event):
    """The connection is over; nothing more will be sent or delivered.

    `alert` is the alert that ended it (close_notify for an orderly close; None when it
    ended without one, e.g. a handshake that timed out).  `by_peer` says who sent it, and
    `reason` is a human-readable explanation (for our own alerts: why we sent it).
    """

    alert: AlertDescription | int | None
    """An int only for an alert code outside RFC 5246's registry, sent by the peer."""
    reason: str
    by_peer: bool
