"""Resumable sessions (RFC 5246 7.4.1.2, RFC 5077) and the server's session-ID cache.

A `Session` is what an abbreviated handshake needs to reuse: the master secret, the
cipher suite and version it was made for, and whether it used the extended master
secret (RFC 7627 5.3: only such sessions are resumed here).  A client gets one from
`Connection.session` after HandshakeCompleted and passes it to `connect(now,
session=...)` (or `DtlsConfiguration.session`) for the next connection; a server keeps
them in a `SessionCache` and/or hands them to the client inside a ticket (dtls.tickets).

The master secret is never shown by repr.  A Session is deliberately not given a
serialization format of its own (no pickle of secrets by accident): a server that wants
sessions to survive a restart uses tickets, whose codec is explicit.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .keys import SecretBytes
from .suites import CipherSuite

__all__ = ["Session", "SessionCache"]

MAX_SESSION_ID_LENGTH = 32  # RFC 5246 7.4.1.2: opaque SessionID<0..32>


@dataclass(frozen=True, eq=False)
class Session:
    """One resumable session.  Opaque to applications: pass it back, do not edit it."""

    session_id: bytes
    """What the server named the session (may be empty when it is resumable by ticket only)."""
    version: int
    cipher_suite: CipherSuite
    master_secret: SecretBytes = field(repr=False)
    extended_master_secret: bool
    created_at: float
    """When the full handshake that made it completed (the caller's clock, as `now`)."""
    server_name: str | None = None
    alpn_protocol: bytes | None = None
    psk_identity: bytes | None = None
    peer_certificate_chain: tuple[bytes, ...] = field(default=(), repr=False)
    ticket: bytes = field(default=b"", repr=False)
    """Client: the RFC 5077 ticket the server issued for this session (opaque)."""
    ticket_lifetime_hint: int = 0
    """Client: seconds the server suggested keeping the ticket (0: unspecified)."""

    @property
    def resumable(self) -> bool:
        """Whether offering this session can lead to an abbreviated handshake here."""
        return self.extended_master_secret and bool(self.session_id or self.ticket)


class SessionCache:
    """The server's session-ID cache: least recently used first out, entries expire.

    Bounds come from the configuration at each call (`session_cache_size`,
    `session_lifetime`), so one cache can be shared by every connection built from a
    configuration, like the cookie signer.  Not thread-safe (sans-IO: one caller).
    """

    def __init__(self) -> None:
        self._entries: OrderedDict[bytes, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._entries

    def put(self, session: Session, *, max_entries: int) -> None:
        if not session.session_id or max_entries <= 0:
            return
        self._entries[session.session_id] = session
        self._entries.move_to_end(session.session_id)
        while len(self._entries) > max_entries:
            self._entries.popitem(last=False)

    def get(self, session_id: bytes, now: float, *, lifetime: float) -> Session | None:
        """The session named `session_id` if it is still alive (an expired one is removed)."""
        session = self._entries.get(session_id)
        if session is None:
            return None
        if not session.created_at <= now <= session.created_at + lifetime:
            del self._entries[session_id]
            return None
        self._entries.move_to_end(session_id)
        return session

    def remove(self, session_id: bytes) -> None:
        """Forget a session (e.g. after a fatal alert on a connection using it, RFC 5246 7.2.2)."""
        self._entries.pop(session_id, None)

    def clear(self) -> None:
        self._entries.clear()

    def __repr__(self) -> str:
        return f"<SessionCache {len(self._entries)} sessions>"
