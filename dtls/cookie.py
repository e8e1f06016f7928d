"""Stateless HelloVerifyRequest cookies (RFC 6347 4.2.1).

The server answers a ClientHello without a valid cookie with a HelloVerifyRequest and keeps
nothing: the cookie itself proves, when it comes back, that the client can receive at the
address it claims.  RFC 6347 4.2.1 suggests

    Cookie = HMAC(Secret, Client-IP, Client-Parameters)

with a secret that changes now and then, accepting the previous one for a while so that
handshakes in flight during a rotation still complete.  Client-Parameters are the fields
the client MUST repeat unchanged in its second ClientHello (version, random, session_id,
cipher_suites, compression_method; 4.2.1).  Extensions are deliberately left out: RFC 6347
does not require them to be identical, and some clients change them.
"""

from __future__ import annotations

import hmac
import os
import struct
from typing import Any

from .messages import ClientHello

COOKIE_LENGTH = 32
"""HMAC-SHA256 output; well inside the 0..255 bytes a DTLS 1.2 cookie may have."""

DEFAULT_ROTATE_INTERVAL = 300.0
"""Seconds between secret rotations; a cookie stays valid for one to two intervals."""


def _address_bytes(addr: Any) -> bytes:
    # Host and port as text: works for IPv4/IPv6 tuples and for in-memory test addresses.
    return repr(tuple(addr) if isinstance(addr, (tuple, list)) else addr).encode()


def _client_parameters(hello: ClientHello) -> bytes:
    suites = struct.pack(f"!{len(hello.cipher_suites)}H", *hello.cipher_suites)
    return b"".join((
        struct.pack("!H", hello.client_version),
        hello.random,
        bytes([len(hello.session_id)]), hello.session_id,
        struct.pack("!H", len(suites)), suites,
        bytes([len(hello.compression_methods)]), bytes(hello.compression_methods),
    ))


class CookieSigner:
    """Makes and checks cookies with a current and a previous secret.

    One signer is shared by every server connection of a configuration, so it holds no
    per-client state.  Rotation is driven by the `now` the caller passes (sans-IO: no
    clock of its own).  The repr never shows the secrets.
    """

    __slots__ = ("_current", "_previous", "_rotated_at", "rotate_interval")

    def __init__(self, rotate_interval: float = DEFAULT_ROTATE_INTERVAL,
                 secret: bytes | None = None) -> None:
        if rotate_interval <= 0:
            raise ValueError("rotate_interval must be positive")
        self.rotate_interval = rotate_interval
        self._current = secret if secret is not None else os.urandom(32)
        self._previous: bytes | None = None
        self._rotated_at: float | None = None

    def __repr__(self) -> str:
        return f"CookieSigner(rotate_interval={self.rotate_interval})"

    def rotate(self) -> None:
        """Start a new secret now; cookies made with the old one stay valid one more period."""
        self._previous = self._current
        self._current = os.urandom(32)

    def _tick(self, now: float) -> None:
        if self._rotated_at is None:
            self._rotated_at = now
        elif now - self._rotated_at >= self.rotate_interval:
            self.rotate()
            self._rotated_at = now

    @staticmethod
    def _mac(secret: bytes, addr: Any, hello: ClientHello) -> bytes:
        data = _address_bytes(addr) + b"\x00" + _client_parameters(hello)
        return hmac.digest(secret, data, "sha256")  # one-shot, in C: the same HMAC-SHA256

    def make(self, addr: Any, hello: ClientHello, now: float) -> bytes:
        """The cookie for this client address and ClientHello."""
        self._tick(now)
        return self._mac(self._current, addr, hello)

    def check(self, addr: Any, hello: ClientHello, now: float) -> bool:
        """Whether `hello.cookie` was made by us, recently, for this address and hello."""
        self._tick(now)
        if len(hello.cookie) != COOKIE_LENGTH:
            return False
        ok = hmac.compare_digest(hello.cookie, self._mac(self._current, addr, hello))
        if self._previous is not None:
            # Both compared, so timing does not reveal which secret matched.
            ok |= hmac.compare_digest(hello.cookie, self._mac(self._previous, addr, hello))
        return ok
