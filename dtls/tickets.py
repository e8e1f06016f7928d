"""RFC 5077 session tickets: the server's session state, sealed for the client to keep.

Ticket format (RFC 5077 4 recommends a similar one; the format is the server's own
business, clients treat it as opaque):

    opaque key_name[16];      which ticket key sealed it
    opaque nonce[12];
    opaque sealed<...>;       AES-256-GCM(key, nonce, state, aad=key_name), tag included

The state is an explicit, versioned encoding of a `Session` (no pickle), parsed with the
same bounds-checked Buffer as wire messages.  `TicketKeys` rotates the key every
`rotation_interval` seconds of the caller's clock and accepts the current and the
previous one, so a ticket stays usable for at least one interval.  Anything that fails
to open or parse, or has outlived `lifetime`, is simply not a session: the server then
does a full handshake (RFC 5077 3.4), never an alert.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .alerts import AlertError
from .buffer import Buffer
from .keys import SecretBytes
from .session import MAX_SESSION_ID_LENGTH, Session
from .suites import CipherSuite

__all__ = ["MAX_TICKET_LENGTH", "TicketKey", "TicketKeys", "decode_session", "encode_session",
           "open_ticket", "seal_session"]

KEY_NAME_LENGTH = 16
NONCE_LENGTH = 12
TAG_LENGTH = 16
MAX_TICKET_LENGTH = 0xFFFF  # RFC 5077 3.3: opaque ticket<0..2^16-1>
_STATE_FORMAT = 1


@dataclass(frozen=True)
class TicketKey:
    name: bytes
    key: bytes = field(repr=False)
    created_at: float

    @classmethod
    def generate(cls, now: float) -> TicketKey:
        return cls(os.urandom(KEY_NAME_LENGTH), AESGCM.generate_key(256), now)


class TicketKeys:
    """The server's ticket keys: a current one (seals) and the previous one (still opens).

    Share one instance between the connections of a server (it lives in the
    configuration).  Keys are made from os.urandom and never leave the process, so a
    restart invalidates every ticket: clients then just do a full handshake.
    """

    def __init__(self, rotation_interval: float = 3600.0) -> None:
        if rotation_interval <= 0:
            raise ValueError("rotation_interval must be positive")
        self.rotation_interval = rotation_interval
        self._current: TicketKey | None = None
        self._previous: TicketKey | None = None

    def _rotate(self, now: float) -> None:
        if self._current is None:
            self._current = TicketKey.generate(now)
            return
        age = now - self._current.created_at
        if age >= 2 * self.rotation_interval:
            # Idle for two intervals: the old current key is past its time as "previous".
            self._previous, self._current = None, TicketKey.generate(now)
        elif age >= self.rotation_interval:
            self._previous, self._current = self._current, TicketKey.generate(now)

    def rotate_now(self, now: float) -> None:
        """Start a new current key at once (e.g. on suspicion of compromise: call twice)."""
        self._previous, self._current = self._current, TicketKey.generate(now)

    def seal(self, plaintext: bytes, now: float) -> bytes:
        self._rotate(now)
        assert self._current is not None
        nonce = os.urandom(NONCE_LENGTH)
        key = self._current
        return key.name + nonce + AESGCM(key.key).encrypt(nonce, plaintext, key.name)

    def open(self, ticket: bytes, now: float) -> bytes | None:
        """The plaintext, or None if no key we hold sealed this ticket."""
        self._rotate(now)
        if len(ticket) < KEY_NAME_LENGTH + NONCE_LENGTH + TAG_LENGTH:
            return None
        name = ticket[:KEY_NAME_LENGTH]
        nonce = ticket[KEY_NAME_LENGTH:KEY_NAME_LENGTH + NONCE_LENGTH]
        key = next((k for k in (self._current, self._previous)
                    if k is not None and k.name == name), None)
        if key is None:
            return None
        try:
            return AESGCM(key.key).decrypt(nonce, ticket[KEY_NAME_LENGTH + NONCE_LENGTH:], name)
        except InvalidTag:
            return None

    def __repr__(self) -> str:
        held = sum(k is not None for k in (self._current, self._previous))
        return f"<TicketKeys {held} keys, rotating every {self.rotation_interval:g} s>"


# -- session state codec -----------------------------------------------------------------


def _push_optional(buf: Buffer, value: bytes | None, what: str) -> None:
    buf.push_uint8(value is not None, what)
    buf.push_vector(2, value or b"", what)


def _pull_optional(buf: Buffer, what: str) -> bytes | None:
    present = buf.pull_uint8(what)
    value = buf.pull_vector(2, what)
    return value if present else None


def encode_session(session: Session) -> bytes:
    """The session as ticket plaintext (the client's own ticket is not included)."""
    buf = Buffer()
    buf.push_uint8(_STATE_FORMAT, "format")
    buf.push_uint16(session.version, "version")
    buf.push_uint16(session.cipher_suite, "cipher_suite")
    buf.push_uint8(session.extended_master_secret, "extended_master_secret")
    buf.push_uint64(max(0, round(session.created_at * 1000)), "created_at")
    buf.push_vector(1, session.session_id, "session_id", max_length=MAX_SESSION_ID_LENGTH)
    buf.push_vector(1, session.master_secret, "master_secret")
    _push_optional(buf, session.server_name.encode() if session.server_name else None,
                   "server_name")
    _push_optional(buf, session.alpn_protocol, "alpn_protocol")
    _push_optional(buf, session.psk_identity, "psk_identity")
    with buf.push_block(3, "peer_certificate_chain"):
        for cert in session.peer_certificate_chain:
            buf.push_vector(3, cert, "certificate")
    return buf.data


def decode_session(data: bytes) -> Session | None:
    """Parse ticket plaintext; None if it is not a state this code wrote."""
    buf = Buffer(data)
    try:
        if buf.pull_uint8("format") != _STATE_FORMAT:
            return None
        version = buf.pull_uint16("version")
        suite = CipherSuite(buf.pull_uint16("cipher_suite"))
        ems = bool(buf.pull_uint8("extended_master_secret"))
        created_at = buf.pull_uint64("created_at") / 1000
        session_id = buf.pull_vector(1, "session_id", max_length=MAX_SESSION_ID_LENGTH)
        master_secret = SecretBytes(buf.pull_vector(1, "master_secret", 48, 48))
        name = _pull_optional(buf, "server_name")
        alpn = _pull_optional(buf, "alpn_protocol")
        identity = _pull_optional(buf, "psk_identity")
        chain: list[bytes] = []
        with buf.pull_block(3, "peer_certificate_chain"):
            while not buf.eof():
                chain.append(buf.pull_vector(3, "certificate"))
        buf.require_eof("session state")
        return Session(session_id, version, suite, master_secret, ems, created_at,
                       server_name=name.decode() if name is not None else None,
                       alpn_protocol=alpn, psk_identity=identity,
                       peer_certificate_chain=tuple(chain))
    except (AlertError, ValueError, UnicodeDecodeError):
        return None


def seal_session(keys: TicketKeys, session: Session, now: float) -> bytes:
    """A ticket for `session`, or b"" when it would not fit in a NewSessionTicket
    (RFC 5077 3.3 allows an empty ticket: "no ticket this time")."""
    ticket = keys.seal(encode_session(session), now)
    return ticket if len(ticket) <= MAX_TICKET_LENGTH else b""


def open_ticket(keys: TicketKeys, ticket: bytes, now: float, *,
                lifetime: float) -> Session | None:
    """The session inside a client's ticket, or None: unknown key, forged, garbled or
    expired tickets all mean "full handshake" (RFC 5077 3.4)."""
    plaintext = keys.open(ticket, now)
    if plaintext is None:
        return None
    session = decode_session(plaintext)
    # created_at was rounded to the millisecond when sealed.
    if session is None or not session.created_at - 0.001 <= now <= session.created_at + lifetime:
        return None
    return session
