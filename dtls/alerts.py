"""Alerts (RFC 5246 7.2, RFC 6347 4.1.2.7) and the exceptions that carry them.

Protocol code raises an `AlertError` subclass; the connection turns it into an alert record
and a termination event.  Each subclass names the alert it stands for, so a decode routine
can simply `raise DecodeError("ClientHello: cookie runs past the message")`.
"""

from __future__ import annotations

from enum import IntEnum


class AlertLevel(IntEnum):
    WARNING = 1
    FATAL = 2


class AlertDescription(IntEnum):
    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    record_overflow = 22
    decompression_failure = 30
    handshake_failure = 40
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    no_renegotiation = 100
    missing_extension = 109
    unsupported_extension = 110
    unrecognized_name = 112
    unknown_psk_identity = 115
    no_application_protocol = 120


class AlertError(Exception):
    """A protocol failure that ends the connection with a fatal alert."""

    description: AlertDescription = AlertDescription.internal_error

    def __init__(self, message: str = "", description: AlertDescription | None = None) -> None:
        if description is not None:
            self.description = description
        super().__init__(message or self.description.name)

    def __str__(self) -> str:
        return f"{self.description.name}: {self.args[0]}" if self.args else self.description.name


class DecodeError(AlertError):
    description = AlertDescription.decode_error


class IllegalParameter(AlertError):
    description = AlertDescription.illegal_parameter


class UnexpectedMessage(AlertError):
    description = AlertDescription.unexpected_message


class HandshakeFailure(AlertError):
    description = AlertDescription.handshake_failure


class DecryptError(AlertError):
    description = AlertDescription.decrypt_error


class ProtocolVersionError(AlertError):
    description = AlertDescription.protocol_version


class UnsupportedExtension(AlertError):
    description = AlertDescription.unsupported_extension


class InternalError(AlertError):
    description = AlertDescription.internal_error
