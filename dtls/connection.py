"""A sans-IO DTLS 1.2 connection: handshake state machine, flights, timers, records.

Like aioquic's `QuicConnection` and h11's `Connection`, this object never touches a socket
or a clock.  The application feeds it

    connect(now)                        client: start the handshake
    receive_datagram(data, addr, now)   every datagram from the peer
    handle_timer(now)                   when `get_timer()` says so
    send(data) / close()                application data / orderly shutdown

and drains `datagrams_to_send(now)` (a list of (datagram, address)) and `next_event()`
(dataclasses from dtls.events) after each call.

Scope so far: full DTLS 1.2 handshakes (RFC 6347 4.2, RFC 5246 7) with ECDHE_ECDSA
(P-256, P-384 or Ed25519 certificates), ECDHE_RSA (PSS or PKCS#1 signatures), PSK
(RFC 4279) and ECDHE_PSK (RFC 5489) suites, AES-GCM, ChaCha20-Poly1305 or AES-CBC
(MAC-then-encrypt or RFC 7366 encrypt-then-MAC), over x25519, secp256r1 or secp384r1; the
extended master secret (RFC 7627, required by default); the server's stateless
HelloVerifyRequest cookie (RFC 6347 4.2.1); client certificates (ECDSA, RSA, Ed25519) on request;
ALPN (RFC 7301); RFC 5705 exporter and an NSS key log; session resumption by session ID
(RFC 5246 7.4.1.2, server-side LRU cache) and by RFC 5077 ticket, abbreviated handshake
only for extended-master-secret sessions (RFC 7627 5.3); DTLS 1.0 (RFC 4347) when the
configuration enables it.  Not yet: renegotiation (refused with a warning).

How it is organised:

* Handshake messages go through `HandshakeReassembler` (dtls.fragments) and then a
  transition table `{(HandshakeState, HandshakeType): handler}` (`_TRANSITIONS`, h11
  style); a pair missing from the table is unexpected_message (RFC 5246 7.2.2).  Every
  state change (handshake and flight) goes through `_set_state`, which logs it.
* A server in SERVER_WAIT_CLIENT_HELLO keeps no per-client state: ClientHellos are read
  straight from the record (unfragmented only, as OpenSSL's DTLSv1_listen) and answered
  with a HelloVerifyRequest until one carries a valid cookie; only then does the
  association (reassembler, transcript, peer address) exist.
* Flights (dtls.flight) are resent whole on timeout and when the peer resends its
  previous flight (RFC 6347 4.2.4); HelloVerifyRequest and alerts are never resent.
* Records of an epoch whose keys we do not have yet are held (bounded) and replayed
  once the keys exist (RFC 6347 4.1: reordering across the ChangeCipherSpec).
* Invalid records are dropped silently and counted in `stats` (RFC 6347 4.1.2.7); a
  protocol failure is an `AlertError`, turned into a fatal alert and a
  `ConnectionTerminated` event by `_fail`.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from enum import Enum
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .alerts import (
    AlertDescription,
    AlertError,
    AlertLevel,
    DecodeError,
    HandshakeFailure,
    IllegalParameter,
    InternalError,
    ProtocolVersionError,
    UnexpectedMessage,
)
from .buffer import decode
from .config import ClientAuth, DtlsConfiguration
from .events import ApplicationData, ConnectionTerminated, Event, HandshakeCompleted
from .extensions import NamedGroup, ServerName, SessionTicket, find_extension
from .flight import Flight, FlightEntry, FlightState, RecordHint, RetransmitTimer
from .fragments import (
    DropReason,
    FragmentStatus,
    HandshakeReassembler,
    pack_flight,
    parse_fragments,
)
from .fragments import HandshakeMessage as WireMessage
from .keys import (
    EcdheKeyPair,
    HandshakeTranscript,
    KeyMaterial,
    PrfAlgorithm,
    SecretBytes,
    check_verify_data,
    derive_key_material,
    ecdhe_psk_premaster_secret,
    export_keying_material,
    extended_master_secret,
    keylog_line,
    master_secret,
    psk_premaster_secret,
    verify_data,
)
from .messages import (
    Certificate,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    ClientKeyExchange,
    ClientKeyExchangeECDHE,
    ClientKeyExchangeECDHEPSK,
    ClientKeyExchangePSK,
    Finished,
    HandshakeType,
    HelloVerifyRequest,
    KeyExchangeAlgorithm,
    NewSessionTicket,
    ServerECDHParams,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchange,
    ServerKeyExchangeECDHE,
    ServerKeyExchangeECDHEPSK,
    ServerKeyExchangePSK,
    decode_handshake,
    encode_handshake,
    pull_alert,
)
from .messages import HandshakeMessage as DecodedMessage
from .negotiation import (
    build_client_hello,
    can_answer,
    can_answer_legacy,
    can_offer,
    certificate_request,
    check_server_hello,
    ecdh_params_bytes,
    negotiate,
    resumable,
    select_version,
)
from .protection import BLOCK_LEN, INTEGRITY_LIMITS, NULL_PROTECTION
from .record import CipherState, split_records
from .recordapi import CipherStateAPI
from .recordbase import (
    DTLS1_0,
    DTLS1_2,
    MAX_PLAINTEXT,
    ContentType,
    OpenResult,
    OpenStatus,
    RecordHeader,
)
from .session import Session
from .signatures import (
    TRANSCRIPT_SCHEMES,
    KeyKind,
    Scheme,
    key_kind,
    legacy_digest,
    scheme_for,
    sign,
    sign_legacy,
    verify_legacy,
)
from .signatures import verify as verify_signature
from .suites import Authentication, CipherSuiteInfo, KeyExchange
from .tickets import open_ticket, seal_session
from .verify import CertificateVerifier, load_leaf

__all__ = ["Connection", "ConnectionStateError", "HandshakeState"]

logger = logging.getLogger("dtls.connection")

Address = Any
"""Whatever the caller uses for peer addresses ((host, port) for UDP); compared by ==."""

_CCS = RecordHint(0, ContentType.CHANGE_CIPHER_SPEC)
_EPOCH0 = RecordHint(0, ContentType.HANDSHAKE)
_EPOCH1 = RecordHint(1, ContentType.HANDSHAKE)
_CHANGE_CIPHER_SPEC = b"\x01"  # RFC 5246 7.1

_APPLICATION_DATA_TYPE = bytes((ContentType.APPLICATION_DATA,))
MAX_QUEUED_DATAGRAMS = 256
_DATAGRAM_FALLBACK = (1200, 508, 256)  # see Connection._shrink_datagrams
_RECORD_OVERHEAD: dict[Any, int] = {}  # Protection -> worst-case record overhead
MAX_HELLO_VERIFY_REQUESTS = 3
MAX_NEW_EPOCH_FAILURES = 3
MAX_CLIENT_HELLO_MESSAGE_SEQ = 16
_KEY_EXCHANGE = {KeyExchange.ECDHE: KeyExchangeAlgorithm.ECDHE,
                 KeyExchange.PSK: KeyExchangeAlgorithm.PSK,
                 KeyExchange.ECDHE_PSK: KeyExchangeAlgorithm.ECDHE_PSK}
_POISONING_DROPS = frozenset({DropReason.INCONSISTENT_HEADER, DropReason.OVERLAP_MISMATCH})


class ConnectionStateError(Exception):
    """An API call that the connection's state does not allow (a caller bug)."""


class HandshakeState(Enum):
    CLIENT_START = "client_start"
    WAIT_SERVER_HELLO = "wait_server_hello"  # HelloVerifyRequest or ServerHello
    WAIT_SERVER_HELLO_AFTER_COOKIE = "wait_server_hello_after_cookie"
    WAIT_SERVER_CERTIFICATE = "wait_server_certificate"
    WAIT_SERVER_KEY_EXCHANGE = "wait_server_key_exchange"
    WAIT_SERVER_HELLO_DONE = "wait_server_hello_done"  # or CertificateRequest first
    WAIT_SERVER_HELLO_DONE_AFTER_REQUEST = "wait_server_hello_done_after_request"
    WAIT_SERVER_FINISHED = "wait_server_finished"
    SERVER_WAIT_CLIENT_HELLO = "server_wait_client_hello"
    WAIT_CLIENT_CERTIFICATE = "wait_client_certificate"
    WAIT_CLIENT_KEY_EXCHANGE = "wait_client_key_exchange"
    WAIT_CLIENT_CERTIFICATE_VERIFY = "wait_client_certificate_verify"
    WAIT_CLIENT_FINISHED = "wait_client_finished"
    ESTABLISHED = "established"
    CLOSED = "closed"


Handler = Callable[["Connection", Any, WireMessage, float], None]


def _type_name(msg_type: int) -> str:
    try:
        return HandshakeType(msg_type).name
    except ValueError:
        return f"handshake type {msg_type}"


class Connection:
    """One DTLS 1.2 (or, when enabled, DTLS 1.0) association with one peer, client or
    server (`configuration.is_client`).

    A server connection starts as a stateless listener: it answers a HelloVerifyRequest
    to every address that sends a ClientHello without a valid cookie, remembering nothing,
    and binds to the first address whose ClientHello carries one (`peer_address` is then
    set).  A many-peer front-end can therefore feed datagrams from unknown addresses to
    one listener and, once it binds, file it under that address and start a new one:
    no per-client state exists before the cookie (RFC 6347 4.2.1).
    """

    # Slots: ~50 attributes in an instance dict cost ~1.2 KiB more per idle session (bench/
    # scale.py).  __dict__ stays, for attributes added later and for tests that patch methods.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_alpn_protocol",
        "_app_read",
        "_certificate_request",
        "_checked_hello",
        "_client_hello",
        "_client_hello_wire",
        "_client_random",
        "_datagram_limit",
        "_datagrams",
        "_deferred",
        "_encrypt_then_mac",
        "_events",
        "_expect_ticket",
        "_extended_master_secret",
        "_final_flight",
        "_flight",
        "_flight_state",
        "_forgeries",
        "_group",
        "_handshake_deadline",
        "_hello_verify_requests",
        "_issue_ticket",
        "_key_pair",
        "_master_secret",
        "_new_epoch_failures",
        "_new_ticket",
        "_offered_session",
        "_peer_address",
        "_peer_certificate",
        "_peer_chain",
        "_peer_ecdh_public",
        "_peer_epoch",
        "_peer_handshake_seq",
        "_psk_identity",
        "_read_states",
        "_reassembler",
        "_reassembly_poisoned",
        "_resumed",
        "_retransmit_requested",
        "_send_message_seq",
        "_server_name",
        "_server_random",
        "_session",
        "_session_id",
        "_state",
        "_suite",
        "_timer",
        "_transcript",
        "_verifier",
        "_version",
        "_write_epoch",
        "_write_states",
        "configuration",
        "is_client",
        "stats",
    )

    def __init__(self, configuration: DtlsConfiguration, *,
                 peer_address: Address | None = None) -> None:
        configuration.validate()
        self.configuration = configuration
        self.is_client = configuration.is_client
        self._verifier: CertificateVerifier | None = configuration.build_verifier()
        self._peer_address = peer_address
        self._state = (HandshakeState.CLIENT_START if self.is_client
                       else HandshakeState.SERVER_WAIT_CLIENT_HELLO)
        self.stats: Counter[str] = Counter()
        """Dropped records and other silent events, by reason (RFC 6347 4.1.2.7)."""

        # Record layer: one CipherState per (epoch, direction).  Epoch 0 is read without a
        # replay window: nothing authenticates it, so the window would protect nothing,
        # while one forged record with a huge sequence number would make every genuine
        # handshake record "too old".  Duplicates are the reassembler's to recognise.
        self._read_states: dict[int, CipherStateAPI] = {
            0: CipherState(NULL_PROTECTION, epoch=0, version=DTLS1_2, window=0)}
        self._write_states: dict[int, CipherStateAPI] = {
            0: CipherState(NULL_PROTECTION, epoch=0, version=DTLS1_2)}
        self._write_epoch = 0
        self._peer_epoch = 0  # highest epoch of any authenticated record received
        self._new_epoch_failures = 0
        self._forgeries: dict[int, int] = {}  # authentication failures per read epoch
        self._deferred: list[tuple[RecordHeader, bytes]] = []

        # Handshake.
        self._reassembler = HandshakeReassembler()
        self._peer_handshake_seq: dict[int, int] = {}  # highest record seq, per epoch
        self._reassembly_poisoned = False
        self._send_message_seq = 0
        self._transcript = HandshakeTranscript()
        self._client_hello: ClientHello | None = None
        self._client_hello_wire: WireMessage | None = None
        self._client_random = b""
        self._server_random = b""
        self._suite: CipherSuiteInfo | None = None
        self._group: NamedGroup | None = None
        self._key_pair: EcdheKeyPair | None = None
        self._peer_ecdh_public = b""
        self._extended_master_secret = False
        self._alpn_protocol: bytes | None = None
        self._psk_identity: bytes | None = None
        self._hello_verify_requests = 0
        self._encrypt_then_mac = False
        self._master_secret: SecretBytes | None = None
        self._peer_chain: tuple[bytes, ...] = ()
        self._peer_certificate: x509.Certificate | None = None
        self._certificate_request: CertificateRequest | None = None
        # Listener: a ClientHello a DtlsServer front end already decoded and cookie-checked
        # (see _receive_checked_client_hello); set only during that one call.
        self._checked_hello: tuple[bytes, ClientHello, bool] | None = None
        self._version = DTLS1_2  # until the hellos settle it

        # Sessions (RFC 5246 7.4.1.2, RFC 5077).
        self._offered_session: Session | None = None  # client: what our hello offers
        self._session_id = b""
        self._resumed = False
        self._session: Session | None = None
        self._issue_ticket = False  # server: NewSessionTicket before our Finished
        self._expect_ticket = False  # client: the ServerHello promised one
        self._new_ticket: NewSessionTicket | None = None
        self._server_name: str | None = None  # server: what the client's SNI named

        # Flights and timers.
        self._flight: Flight | None = None
        self._flight_state = FlightState.PREPARING
        self._final_flight = False  # our last flight ends the handshake: answer resends
        self._retransmit_requested = False
        self._timer = RetransmitTimer(configuration.initial_retransmit_timeout,
                                      configuration.max_retransmit_timeout)
        self._handshake_deadline: float | None = None
        # Bytes per handshake datagram: the configured size until retransmissions suggest
        # a path-MTU black hole (see _shrink_datagrams).
        self._datagram_limit = configuration.max_datagram_size

        self._datagrams: list[tuple[bytes, Address]] = []
        self._events: list[Event] = []  # a deque costs ~700 bytes more per connection
        # Once established: the read state of the peer's epoch, for the one-record
        # application-data datagram that is almost all traffic (see receive_datagram).
        self._app_read: CipherStateAPI | None = None

    def __repr__(self) -> str:
        role = "client" if self.is_client else "server"
        return f"<Connection {role} {self._state.value}>"

    # -- public API ----------------------------------------------------------------------

    @property
    def state(self) -> HandshakeState:
        return self._state

    @property
    def _closed(self) -> bool:
        # A method, not an inline comparison: handlers called in a loop may close us.
        return self._state is HandshakeState.CLOSED

    @property
    def peer_address(self) -> Address | None:
        return self._peer_address

    @property
    def session(self) -> Session | None:
        """Once HandshakeCompleted: the session, to resume with a later connection
        (client: `connect(now, session=...)`).  None before, and after a fatal alert."""
        return self._session

    def connect(self, now: float, *, session: Session | None = None) -> None:
        """Client: send the first ClientHello (flight 1, RFC 6347 4.2.4).

        `session` (else `configuration.session`) is offered for resumption if it fits
        the configuration (`dtls.negotiation.can_offer`); the server may still decline
        with a full handshake, which then just proceeds."""
        if not self.is_client or self._state is not HandshakeState.CLIENT_START:
            raise ConnectionStateError("connect() is for a client that has not started")
        offered = session if session is not None else self.configuration.session
        self._offered_session = offered if can_offer(self.configuration, offered) else None
        self._handshake_deadline = now + self.configuration.handshake_timeout
        self._client_random = os.urandom(32)
        self._client_hello = self._build_client_hello()
        self._send_client_hello(now)
        self._set_state(HandshakeState.WAIT_SERVER_HELLO)

    def receive_datagram(self, data: bytes | bytearray | memoryview, addr: Address,
                         now: float) -> None:
        """Process one datagram: any number of records (RFC 6347 4.1)."""
        if self._closed:
            self.stats["after_close"] += 1
            return
        if self._peer_address is not None and addr != self._peer_address:
            self.stats["wrong_address"] += 1
            return
        app_read = self._app_read
        if app_read is not None and data[:1] == _APPLICATION_DATA_TYPE:
            # The common case, without splitting: one application_data record filling the
            # datagram.  open() refuses anything else as MALFORMED (or BAD_EPOCH) before
            # any state changes, and those take the general path below.
            result = app_read.open(data)
            status = result.status
            if status is OpenStatus.OK:
                if self._final_flight:
                    self._final_flight_acknowledged()
                self._event(ApplicationData(bytes(result.payload)))
                return
            if status is not OpenStatus.MALFORMED and status is not OpenStatus.BAD_EPOCH:
                self._count_refused(status, result.epoch)
                return
        self._retransmit_requested = False
        view = memoryview(bytes(data))
        headers, trailing = split_records(view)
        if trailing:
            self.stats["malformed_trailing_bytes"] += 1
        try:
            for header in headers:
                self._receive_record(header, view[header.offset:header.end], addr, now)
                self._replay_deferred(addr, now)
                if self._closed:
                    return
            self._answer_peer_resend(now)
        except AlertError as exc:
            self._fail(exc)

    def _receive_checked_client_hello(self, data: bytes, addr: Address, now: float,
                                      checked: tuple[bytes, ClientHello, bool]) -> None:
        """`receive_datagram` for a listener fed by `dtls.server.DtlsServer`, which has
        already decoded the ClientHello in `data` and checked its cookie (to route it):
        `checked` is (hello body, decoded hello, cookie valid for `addr` at `now`).

        Used only for a hello whose body is byte-for-byte the one decoded; every other
        check (epoch, fragmentation, message_seq) still runs.  Saves a second decode and a
        second cookie HMAC per hello on the server's handshake path."""
        self._checked_hello = checked
        try:
            self.receive_datagram(data, addr, now)
        finally:
            self._checked_hello = None

    def handle_timer(self, now: float) -> None:
        """Call when `get_timer()` has passed: resend the flight or give up."""
        if self._closed:
            return
        if self._handshake_deadline is not None and now >= self._handshake_deadline:
            self._terminate(None, "handshake did not complete within "
                            f"{self.configuration.handshake_timeout:g} s", by_peer=False)
            return
        if self._timer.expired(now) and self._flight is not None \
                and self._flight_state is FlightState.WAITING:
            self._flight.retransmissions += 1
            self.stats["retransmit_timeout"] += 1
            if self._flight.retransmissions >= 2:
                self._shrink_datagrams()
            if self._reassembly_poisoned:
                self._reset_reassembly()
            logger.debug("%r: timer expired, resending flight (%d)", self,
                         self._flight.retransmissions)
            self._transmit_flight()
            self._timer.back_off(now)

    def get_timer(self) -> float | None:
        """The time at which `handle_timer` must be called, or None."""
        if self._closed:
            return None
        times = [t for t in (self._timer.deadline, self._handshake_deadline) if t is not None]
        return min(times) if times else None

    def send(self, data: bytes) -> None:
        """Queue one application_data record (one datagram).  Only once established."""
        if self._state is not HandshakeState.ESTABLISHED:
            raise ConnectionStateError(f"cannot send application data in state {self._state.value}")
        if len(data) > MAX_PLAINTEXT:
            raise ValueError(f"application data of {len(data)} bytes exceeds one record (2^14)")
        record = self._write_states[self._write_epoch].seal(ContentType.APPLICATION_DATA, data)
        self._queue(record, self._peer_address)

    def send_many(self, payloads: Sequence[bytes | bytearray | memoryview]) -> None:
        """Queue each payload as one application_data record in its own datagram, sealed in
        one record-layer batch call (one C crossing for the lot).  Only once established;
        nothing is queued if any payload is too large."""
        if self._state is not HandshakeState.ESTABLISHED:
            raise ConnectionStateError(f"cannot send application data in state {self._state.value}")
        for data in payloads:
            if len(data) > MAX_PLAINTEXT:
                raise ValueError(f"application data of {len(data)} bytes exceeds one record "
                                 "(2^14)")
        if not payloads:
            return
        batch = self._write_states[self._write_epoch].seal_batch(
            ContentType.APPLICATION_DATA, payloads)
        addr = self._peer_address
        for record in batch:
            self._queue(bytes(record), addr)

    # -- fast paths for front-ends that seal and open application data themselves -------

    def application_states(self) -> tuple[CipherStateAPI, CipherStateAPI] | None:
        """(read, write) cipher states of the established epoch, or None.

        For a front-end's batched socket path (dtls._cudpio): it seals application data
        with the write state and opens received records with the read state itself, one C
        call per batch, so the bytes never pass through `receive_datagram` / `send`.  The
        states are this connection's own (sequence numbers and the replay window stay
        shared and consistent).  Every record such a path opens that is NOT accepted
        application data (alerts, handshake retransmissions, other epochs) must still be
        given to `receive_opened`, or close_notify and retransmissions go unnoticed.
        None unless ESTABLISHED.
        """
        if self._state is not HandshakeState.ESTABLISHED:
            return None
        return self._read_states[self._peer_epoch], self._write_states[self._write_epoch]

    @property
    def client_random(self) -> bytes:
        """ClientHello.random of this association (b"" before one was sent or accepted):
        what tells a retransmitted ClientHello from a new one (RFC 6347 4.2.8)."""
        return self._client_random

    @property
    def holding_final_flight(self) -> bool:
        """True while our last handshake flight is kept to answer the peer's retransmissions
        (RFC 6347 4.2.4): a front-end's fast path then reports application data it
        received via `receive_opened(..., application_data=n)`, which ends that."""
        return self._final_flight

    def receive_opened(self, results: Iterable[OpenResult], addr: Address, now: float, *,
                       application_data: int = 0,
                       refused: Mapping[OpenStatus, int] | None = None) -> None:
        """Records a front-end opened itself with `application_states()[0]`.

        `results`: records that are not accepted application data: accepted alerts and
        handshake records are processed as `receive_datagram` would, BAD_EPOCH ones (raw
        records) go through the normal path for their epoch, other refusals are counted.
        `application_data`: how many accepted application_data records the front-end
        delivered itself (they prove the peer has our final flight, RFC 6347 4.2.4).
        `refused`: counts of refused records by status, for `stats`.
        """
        if self._closed:
            self.stats["after_close"] += 1
            return
        if self._peer_address is not None and addr != self._peer_address:
            self.stats["wrong_address"] += 1
            return
        if application_data and self._final_flight:
            self._final_flight_acknowledged()
        if refused:
            for status, count in refused.items():
                if status != OpenStatus.BAD_EPOCH:
                    self._count_refused(status, self._peer_epoch, count)
            if self._closed:
                return
        self._retransmit_requested = False
        try:
            for result in results:
                if result.status == OpenStatus.BAD_EPOCH:
                    self.receive_datagram(result.payload, addr, now)
                elif result.ok:
                    header = RecordHeader(result.content_type, self._version, result.epoch,
                                          result.seq, 0, len(result.payload))
                    self._dispatch_record(header, result.content_type, bytes(result.payload),
                                          addr, now)
                    self._replay_deferred(addr, now)
                else:
                    # Not counted here when `refused` already did (BAD_EPOCH never is).
                    if refused is None:
                        self._count_refused(result.status, result.epoch)
                if self._closed:
                    return
            self._answer_peer_resend(now)
        except AlertError as exc:
            self._fail(exc)

    def close(self) -> None:
        """Send close_notify (RFC 5246 7.2.1) and end the connection."""
        if self._closed:
            return
        self._send_alert(AlertLevel.WARNING, AlertDescription.close_notify)
        self._terminate(AlertDescription.close_notify, "closed locally", by_peer=False)

    def export_keying_material(self, label: bytes | str, length: int,
                               context: bytes | None = None) -> bytes:
        """RFC 5705 keying material (e.g. DTLS-SRTP keys, RFC 5764 4.2); once established."""
        if self._state is not HandshakeState.ESTABLISHED or self._master_secret is None:
            raise ConnectionStateError("keying material exists only once the handshake completed")
        return export_keying_material(self._prf, self._master_secret, self._client_random,
                                      self._server_random, label, length, context)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Datagrams to put on the wire now, each with its destination address."""
        datagrams, self._datagrams = self._datagrams, []
        return datagrams

    def next_event(self) -> Event | None:
        """The next event, or None when there is none."""
        return self._events.pop(0) if self._events else None

    # -- state, events, output -----------------------------------------------------------

    def _set_state(self, new: HandshakeState | FlightState) -> None:
        """The one place state changes, handshake or flight (and gets logged)."""
        old: HandshakeState | FlightState
        if isinstance(new, FlightState):
            old, self._flight_state = self._flight_state, new
        else:
            old, self._state = self._state, new
        # ~20 calls per handshake: build the log arguments (enum .value is a descriptor
        # call) only when DEBUG is on.
        if old is not new and logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s: %s -> %s", "client" if self.is_client else "server",
                         type(new).__name__, old.value, new.value)

    def _event(self, event: Event) -> None:
        if len(self._events) >= self.configuration.max_pending_events:
            self.stats["events_dropped"] += 1
            return
        self._events.append(event)

    def _queue(self, datagram: bytes, addr: Address) -> None:
        if len(self._datagrams) >= MAX_QUEUED_DATAGRAMS:
            self.stats["datagrams_dropped"] += 1
            return
        self._datagrams.append((datagram, addr))

    def _send_alert(self, level: AlertLevel, description: AlertDescription) -> None:
        """One alert record in the current write epoch; alerts are never resent (4.2.4)."""
        record = self._write_states[self._write_epoch].seal(
            ContentType.ALERT, bytes((level, description)))
        self._queue(record, self._peer_address)

    def _invalidate_session(self) -> None:
        # RFC 5246 7.2.2: a session whose connection ended with a fatal alert must not
        # be resumed.
        if not self.is_client and self._session_id:
            self.configuration.session_cache.remove(self._session_id)
        self._session = None

    def _fail(self, exc: AlertError) -> None:
        logger.info("%r: fatal %s", self, exc)
        self._invalidate_session()
        self._send_alert(AlertLevel.FATAL, exc.description)
        self._terminate(exc.description, str(exc), by_peer=False)

    def _terminate(self, alert: AlertDescription | int | None, reason: str,
                   by_peer: bool) -> None:
        self._timer.cancel()
        self._handshake_deadline = None
        self._flight = None
        self._key_pair = None
        self._app_read = None
        self._deferred.clear()
        self._set_state(HandshakeState.CLOSED)
        self._event(ConnectionTerminated(alert, reason, by_peer))

    # -- flights -------------------------------------------------------------------------

    def _handshake(self, message: DecodedMessage) -> WireMessage:
        """Encode one of our handshake messages with the next message_seq (4.2.2)."""
        msg_type, body = encode_handshake(message, version=self._version)
        wire = WireMessage(msg_type, self._send_message_seq, body)
        self._send_message_seq += 1
        return wire

    def _send_flight(self, entries: list[FlightEntry], now: float, *, final: bool = False) -> None:
        """Send a new flight; wait for the answer, or (final) just answer resends."""
        self._flight = Flight(entries, self._reassembler.next_message_seq)
        self._final_flight = final
        self._set_state(FlightState.SENDING)
        self._transmit_flight()
        if final:
            self._set_state(FlightState.FINISHED)
            self._timer.cancel()
        else:
            self._set_state(FlightState.WAITING)
            self._timer.start(now)

    def _record_overhead(self, hint: RecordHint) -> int:
        """Worst-case bytes a record adds to its payload (pack_flight wants an upper bound).

        Constant for NULL and AEAD; CBC padding depends on the length modulo the block
        size, so the maximum over one block's worth of lengths covers every length.
        """
        protection = self._write_states[hint.epoch].protection
        # Called for every piece of every flight (and again on each retransmission):
        # cached per Protection (a frozen value; there are a few dozen at most), shared by
        # all connections, so an idle session holds no cache of its own.
        overhead = _RECORD_OVERHEAD.get(protection)
        if overhead is None:
            if protection.is_cbc:
                overhead = max(int(protection.record_length(n)) - n for n in range(BLOCK_LEN))
            else:
                overhead = int(protection.record_length(0))
            if len(_RECORD_OVERHEAD) < 256:
                _RECORD_OVERHEAD[protection] = overhead
        return overhead

    def _shrink_datagrams(self) -> None:
        """RFC 6347 4.1.1.1: when repeated retransmissions get no answer and the PMTU is
        unknown, back off to smaller records.  One step per unanswered timeout, down a
        ladder of sizes that paths are known to carry: 1200 (IPv6's 1280 minimum MTU less
        headers), 508 (IPv4's 576-byte minimum reassembly size less the largest IP header
        and UDP), 256 (the smallest max_datagram_size: a ClientHello still fits)."""
        for size in _DATAGRAM_FALLBACK:
            if size < self._datagram_limit:
                logger.debug("%r: no answer after %d retransmissions, datagrams %d -> %d "
                             "bytes", self, self._flight.retransmissions if self._flight else 0,
                             self._datagram_limit, size)
                self._datagram_limit = size
                self.stats["datagram_size_reduced"] += 1
                return

    def _transmit_flight(self) -> None:
        """Pack the flight into datagrams and seal each piece with fresh sequence numbers."""
        assert self._flight is not None
        for datagram in pack_flight(self._flight.entries, self._datagram_limit,
                                    self._record_overhead):
            self._queue(b"".join(self._write_states[hint.epoch].seal(hint.content_type, piece)
                                 for hint, piece in datagram), self._peer_address)

    def _reset_reassembly(self) -> None:
        """Forget partially received messages after fragments disagreed with them.

        The reassembler keeps the first msg_type, length and bytes it saw for a message;
        if those came from a forged or corrupted epoch-0 fragment, the genuine ones are
        dropped as inconsistent for ever.  Our resend makes the peer resend its whole
        flight (RFC 6347 4.2.4), so starting that flight's reassembly afresh costs
        nothing that is not about to arrive again.
        """
        self._reassembler = HandshakeReassembler(
            next_message_seq=self._reassembler.next_message_seq)
        self._reassembly_poisoned = False
        self.stats["reassembly_reset"] += 1

    def _resend_on_peer_retransmission(self, now: float) -> None:
        """The peer resent its previous flight: ours was lost (RFC 6347 4.2.4)."""
        if self._flight is None:
            return
        if self._flight_state is FlightState.WAITING:
            self._timer.restart(now)
        elif not (self._flight_state is FlightState.FINISHED and self._final_flight):
            return
        self.stats["retransmit_on_peer_resend"] += 1
        self._flight.retransmissions += 1
        self._transmit_flight()

    # -- records -------------------------------------------------------------------------

    def _receive_record(self, header: RecordHeader, record: memoryview, addr: Address,
                        now: float) -> None:
        state = self._read_states.get(header.epoch)
        if self._state is HandshakeState.SERVER_WAIT_CLIENT_HELLO and header.epoch != 0:
            # Before the cookie nothing is kept, not even a deferred record.  (Epoch 0 has
            # no replay window, so reading it changes no state either.)
            self.stats["unknown_epoch"] += 1
            return
        if state is None:
            # A next-epoch record that overtook the ChangeCipherSpec: keep it for later.
            if header.epoch == max(self._read_states) + 1 \
                    and len(self._deferred) < self.configuration.max_buffered_records:
                self._deferred.append((header, bytes(record)))
                self.stats["deferred"] += 1
            else:
                self.stats["unknown_epoch"] += 1
            return
        result = state.open(record)
        if not result.ok:
            self._count_refused(result.status, header.epoch)
            if self._closed:
                return
            if result.status == OpenStatus.BAD_MAC and header.epoch == 1 \
                    and self._state in _WAITING_FOR_FINISHED:
                self._check_new_epoch_failures()
            return
        self._dispatch_record(header, result.content_type, bytes(result.payload), addr, now)

    def _dispatch_record(self, header: RecordHeader, content_type: int, payload: bytes,
                         addr: Address, now: float) -> None:
        """An authenticated record's payload, by content type."""
        self._peer_epoch = max(self._peer_epoch, header.epoch)
        if self._state is HandshakeState.SERVER_WAIT_CLIENT_HELLO \
                and content_type != ContentType.HANDSHAKE:
            # Before the cookie only ClientHellos mean anything; a spoofed alert must not
            # end a listener that serves every address.
            self.stats["unexpected_before_client_hello"] += 1
            return
        if content_type == ContentType.HANDSHAKE:
            self._receive_handshake(payload, header, addr, now)
        elif content_type == ContentType.CHANGE_CIPHER_SPEC:
            # Keys switch when the messages say so (we install the read state as soon as
            # the key exchange is done); the Finished must then arrive in the new epoch.
            self.stats["change_cipher_spec"] += 1
        elif content_type == ContentType.ALERT:
            self._receive_alert(payload, header.epoch)
        elif content_type == ContentType.APPLICATION_DATA:
            if self._state is HandshakeState.ESTABLISHED and header.epoch == self._peer_epoch:
                if self._final_flight:
                    self._final_flight_acknowledged()
                self._event(ApplicationData(payload))
            else:
                self.stats["early_application_data"] += 1
        else:
            self.stats["unknown_content_type"] += 1

    def _count_refused(self, status: OpenStatus, epoch: int, count: int = 1) -> None:
        """Count refused records (dropped silently, RFC 6347 4.1.2.7) and enforce the
        integrity limit: past `forgery_limit` authentication failures under one key the
        connection closes with bad_record_mac (RFC 9147 4.5.3)."""
        self.stats[f"record_{status.name.lower()}"] += count
        if status != OpenStatus.BAD_MAC:
            return
        failures = self._forgeries.get(epoch, 0) + count
        self._forgeries[epoch] = failures
        state = self._read_states.get(epoch)
        limit = self.configuration.forgery_limit
        if limit is None and state is not None:
            limit = INTEGRITY_LIMITS.get(state.protection.cipher)
        if limit is not None and failures > limit and not self._closed:
            self._fail(AlertError(f"{failures} records failed authentication under the "
                                  f"epoch {epoch} key, over the integrity limit of {limit}",
                                  AlertDescription.bad_record_mac))

    def _check_new_epoch_failures(self) -> None:
        """Fail fast when the peer's first protected records keep failing to authenticate.

        Each is dropped (RFC 6347 4.1.2.7), but while we wait for the peer's Finished,
        several in a row almost surely mean both sides derived different keys: a PSK that
        differs, or a ClientKeyExchange corrupted in flight.  Waiting out the handshake
        timeout would only hide that.  (An attacker gains nothing: unauthenticated
        epoch-0 alerts can end a handshake anyway.)
        """
        self._new_epoch_failures += 1
        if self._new_epoch_failures >= MAX_NEW_EPOCH_FAILURES:
            raise AlertError(f"{self._new_epoch_failures} records under the new keys failed "
                             "authentication: the key exchange (or PSK) does not match",
                             AlertDescription.bad_record_mac)

    def _replay_deferred(self, addr: Address, now: float) -> None:
        while self._deferred and not self._closed:
            ready = [i for i, (h, _) in enumerate(self._deferred) if h.epoch in self._read_states]
            if not ready:
                return
            header, record = self._deferred.pop(ready[0])
            self._receive_record(header, memoryview(record), addr, now)

    def _receive_alert(self, payload: bytes, epoch: int) -> None:
        try:
            alert = decode(pull_alert, payload, "Alert")
        except DecodeError:
            self.stats["malformed_alert"] += 1
            return
        if epoch < self._peer_epoch:
            # The peer already speaks a newer epoch: an alert in an older, unauthenticated
            # one could be anyone's.  (Until then an epoch-0 alert is the peer's only way
            # to refuse our Finished, so it counts.)
            self.stats["stale_epoch_alert"] += 1
            return
        try:
            description: AlertDescription | int = AlertDescription(alert.description)
            name = description.name  # type: ignore[union-attr]
        except ValueError:
            description, name = alert.description, f"alert {alert.description}"
        if description == AlertDescription.close_notify:
            # RFC 5246 7.2.1: answer with our own close_notify.
            self._send_alert(AlertLevel.WARNING, AlertDescription.close_notify)
            self._terminate(description, "peer sent close_notify", by_peer=True)
        elif alert.level == AlertLevel.FATAL:
            self._invalidate_session()
            self._terminate(description, f"peer sent {name}", by_peer=True)
        else:
            logger.info("%r: peer sent warning %s", self, name)
            self.stats["warning_alert"] += 1

    # -- handshake messages --------------------------------------------------------------

    def _receive_handshake(self, payload: bytes, header: RecordHeader, addr: Address,
                           now: float) -> None:
        if self._state is HandshakeState.SERVER_WAIT_CLIENT_HELLO:
            self._receive_stateless_client_hello(payload, header, addr, now)
            return
        try:
            fragments = parse_fragments(payload)
        except DecodeError:
            self.stats["malformed_handshake_record"] += 1
            return
        # A resent flight comes in records with new sequence numbers (RFC 6347 4.2.4: each
        # transmission is sealed afresh); a record whose number we have seen is the
        # network duplicating one (epoch 0 has no replay window to catch it).  Answering
        # duplicates with our whole flight would let every duplicated datagram multiply
        # into flights both ways.
        fresh = header.seq > self._peer_handshake_seq.get(header.epoch, -1)
        if fresh:
            self._peer_handshake_seq[header.epoch] = header.seq
        # Once established, a handshake record of an older epoch than the peer now speaks
        # is unauthenticated (epoch 0) or superseded: it may only be a retransmission of
        # the peer's last flight (RFC 6347 4.2.4), never a new message (as for alerts,
        # stale_epoch_alert).
        stale = self._state is HandshakeState.ESTABLISHED and header.epoch < self._peer_epoch
        for fragment in fragments:
            if stale and fragment.message_seq >= self._reassembler.next_message_seq:
                self.stats["stale_epoch_handshake"] += 1
                continue
            if fragment.msg_type == HandshakeType.finished and header.epoch == 0:
                # RFC 5246 7.4.9: Finished is the first message under the new keys; an
                # unprotected one is an injection attempt or garbage.
                self.stats["unprotected_finished"] += 1
                continue
            result = self._reassembler.add(fragment)
            if result is FragmentStatus.RETRANSMISSION and self._flight is not None \
                    and fragment.message_seq < self._flight.peer_message_seq:
                if fresh:
                    self._retransmit_requested = True
                else:
                    self.stats["duplicate_handshake_record"] += 1
            elif not isinstance(result, FragmentStatus):
                self.stats[f"fragment_{result.value}"] += 1
                if result in _POISONING_DROPS:
                    self._reassembly_poisoned = True
        for message in self._reassembler.messages():
            self._handle_message(message, now)
            if self._closed:
                return

    def _handle_message(self, wire: WireMessage, now: float,
                        decoded: DecodedMessage | None = None) -> None:
        handler = _TRANSITIONS.get((self._state, wire.msg_type))
        if handler is None:
            raise UnexpectedMessage(f"{_type_name(wire.msg_type)} in state {self._state.value}")
        if decoded is None:
            decoded = decode_handshake(
                wire.msg_type, wire.body, version=self._version,
                key_exchange=_KEY_EXCHANGE[self._suite.key_exchange] if self._suite
                else KeyExchangeAlgorithm.ECDHE,
                verify_data_length=self._suite.verify_data_length if self._suite else 12)
        handler(self, decoded, wire, now)

    def _add_to_transcript(self, wire: WireMessage) -> None:
        # RFC 6347 4.2.6: hash as if unfragmented; HandshakeMessage.serialize is that form.
        self._transcript.update(wire.serialize())

    @property
    def _prf(self) -> PrfAlgorithm:
        assert self._suite is not None
        return self._suite.prf_for(self._version)

    def _set_version(self, version: int) -> None:
        """The hellos settled the version: our records carry it from now on (RFC 6347 4.1)."""
        self._version = version
        old = self._write_states[0]
        if old.version != version:
            state = CipherState(NULL_PROTECTION, epoch=0, version=version)
            state.next_seq = old.next_seq
            self._write_states[0] = state

    # -- client side ---------------------------------------------------------------------

    def _build_client_hello(self) -> ClientHello:
        return build_client_hello(self.configuration, self._client_random,
                                  self._offered_session)

    def _send_client_hello(self, now: float) -> None:
        assert self._client_hello is not None
        self._client_hello_wire = self._handshake(self._client_hello)
        # Not in the transcript yet: if a HelloVerifyRequest comes, this hello never counts
        # (RFC 6347 4.2.6); the one the ServerHello answers is added then.
        self._send_flight([(_EPOCH0, self._client_hello_wire)], now)

    def _client_hello_verify_request(self, msg: HelloVerifyRequest, wire: WireMessage,
                                     now: float) -> None:
        assert self._client_hello is not None
        if msg.server_version not in (DTLS1_0, DTLS1_2):
            raise ProtocolVersionError(f"HelloVerifyRequest version {msg.server_version:#06x}")
        # A server may ask again (its secret rotated while our hello was in flight), but a
        # server that never accepts its own cookie must not keep us looping.
        self._hello_verify_requests += 1
        if self._hello_verify_requests > MAX_HELLO_VERIFY_REQUESTS:
            raise HandshakeFailure(f"more than {MAX_HELLO_VERIFY_REQUESTS} "
                                   "HelloVerifyRequests")
        # RFC 6347 4.2.1: same hello, plus the cookie.
        self._client_hello.cookie = msg.cookie
        self._send_client_hello(now)
        self._set_state(HandshakeState.WAIT_SERVER_HELLO_AFTER_COOKIE)

    def _client_server_hello(self, msg: ServerHello, wire: WireMessage, now: float) -> None:
        assert self._client_hello is not None and self._client_hello_wire is not None
        negotiated = check_server_hello(self.configuration, self._client_hello, msg)
        self._set_version(negotiated.version)
        self._suite = negotiated.suite
        self._extended_master_secret = negotiated.extended_master_secret
        self._encrypt_then_mac = negotiated.encrypt_then_mac
        self._alpn_protocol = negotiated.alpn_protocol
        self._server_random = msg.random
        self._session_id = msg.session_id
        self._expect_ticket = find_extension(msg.extensions, SessionTicket) is not None
        # RFC 8422 5.8: an Ed25519 CertificateVerify signs the messages themselves, so keep
        # them while the server may still ask for our Ed25519 certificate.
        # Without a certificate of ours no CertificateVerify of ours can come: only the
        # PRF's hash is ever asked for (see HandshakeTranscript's `only`).
        key = self.configuration.private_key
        can_sign = bool(self.configuration.certificate_chain) and key is not None
        self._transcript = HandshakeTranscript(keep_messages=(
            negotiated.version == DTLS1_2 and self._suite.needs_certificate
            and can_sign and key is not None
            and key_kind(key) is KeyKind.ED25519), only=None if can_sign else self._prf)
        self._add_to_transcript(self._client_hello_wire)
        self._add_to_transcript(wire)
        offered = self._offered_session
        if offered is not None and msg.session_id \
                and msg.session_id == self._client_hello.session_id:
            # RFC 5246 7.4.1.3 / RFC 5077 3.4: the server echoed our session ID, so it
            # resumes: ServerHello, [NewSessionTicket], ChangeCipherSpec, Finished.
            if self._suite.suite != offered.cipher_suite or negotiated.version != offered.version:
                raise IllegalParameter("server resumed the session with a different cipher "
                                       "suite or version (RFC 5246 7.4.1.3)")
            if not self._extended_master_secret:
                # RFC 7627 5.3: the session used it, the resumption must too.
                raise HandshakeFailure("server resumed an extended-master-secret session "
                                       "without the extension (RFC 7627 5.3)")
            self._transcript.drop_messages()  # no CertificateVerify in an abbreviated one
            self._resume(offered)
            self._set_state(HandshakeState.WAIT_SERVER_FINISHED)
            return
        # PSK suites have no Certificate (RFC 4279 2); plain PSK may omit the
        # ServerKeyExchange too, so that state also accepts ServerHelloDone.
        self._set_state(HandshakeState.WAIT_SERVER_CERTIFICATE if self._suite.needs_certificate
                        else HandshakeState.WAIT_SERVER_KEY_EXCHANGE)

    def _verify_peer_certificate(self, certificates: list[bytes]) -> None:
        """Authenticate the peer's Certificate message; remember the leaf."""
        self._peer_chain = tuple(certificates)
        if self._verifier is not None:
            name = self.configuration.server_name if self.is_client else None
            leaf = self._verifier.verify(self._peer_chain, name)
        else:
            leaf = load_leaf(self._peer_chain)
        kind = key_kind(leaf.public_key())  # type: ignore[arg-type]  # others: alert
        expected: tuple[KeyKind, ...]
        if self.is_client:
            assert self._suite is not None
            # RFC 8422 2: ECDHE_ECDSA needs an ECDSA (or EdDSA, 5.1.3) key, ECDHE_RSA an RSA key.
            expected = ((KeyKind.RSA,) if self._suite.authentication is Authentication.RSA
                        else (KeyKind.ECDSA, KeyKind.ED25519))
        elif self._version == DTLS1_2:
            # CertificateVerify signs a digest, or with Ed25519 the kept messages.
            expected = (KeyKind.ECDSA, KeyKind.RSA, KeyKind.ED25519)
        else:
            expected = (KeyKind.ECDSA, KeyKind.RSA)  # RFC 4346 7.4.8: no Ed25519 form
        if kind not in expected:
            raise AlertError(f"a {kind.value} certificate does not fit "
                             f"{self._suite.name if self._suite else 'this handshake'}",
                             AlertDescription.unsupported_certificate)
        self._peer_certificate = leaf

    def _client_certificate(self, msg: Certificate, wire: WireMessage, now: float) -> None:
        self._verify_peer_certificate(msg.certificates)
        self._add_to_transcript(wire)
        self._set_state(HandshakeState.WAIT_SERVER_KEY_EXCHANGE)

    def _client_server_key_exchange(self, msg: ServerKeyExchange, wire: WireMessage,
                                    now: float) -> None:
        if isinstance(msg, ServerKeyExchangeECDHE):
            self._check_server_key_exchange_signature(msg)
            self._accept_server_params(msg.params)
        elif isinstance(msg, ServerKeyExchangeECDHEPSK):
            # RFC 5489 2: unsigned; the PSK in the premaster secret authenticates it.
            self._accept_server_params(msg.params)
        # The identity hint (RFC 4279 2) is informational: we have one configured identity.
        self._add_to_transcript(wire)
        self._set_state(HandshakeState.WAIT_SERVER_HELLO_DONE)

    def _check_server_key_exchange_signature(self, msg: ServerKeyExchangeECDHE) -> None:
        assert self._peer_certificate is not None
        signed = self._client_random + self._server_random + ecdh_params_bytes(msg.params)
        if self._version == DTLS1_0:
            # RFC 4346 7.4.3 / RFC 4492 5.4: MD5+SHA-1 (RSA) or SHA-1 (ECDSA), no algorithm
            # field (the key type fits the suite: _verify_peer_certificate checked it).
            verify_legacy(self._peer_certificate.public_key(),  # type: ignore[arg-type]
                          msg.signature, legacy_digest(signed),
                          what="ServerKeyExchange signature")
            return
        # RFC 8422 5.4: the signature covers both randoms and the params.
        verify_signature(self._peer_certificate.public_key(),  # type: ignore[arg-type]
                         scheme_for(msg.signature_algorithm), msg.signature, signed,
                         what="ServerKeyExchange signature")

    def _accept_server_params(self, params: ServerECDHParams) -> None:
        if params.named_group not in self.configuration.groups:
            raise IllegalParameter(f"server chose group {params.named_group}, "
                                   "which we did not offer")
        self._group = NamedGroup(params.named_group)
        self._peer_ecdh_public = params.public_key

    def _client_certificate_request(self, msg: CertificateRequest, wire: WireMessage,
                                    now: float) -> None:
        assert self._suite is not None
        if not self._suite.needs_certificate:
            # RFC 4279 2: no certificates in PSK suites.
            raise UnexpectedMessage("CertificateRequest in a PSK cipher suite")
        self._certificate_request = msg
        self._add_to_transcript(wire)
        self._set_state(HandshakeState.WAIT_SERVER_HELLO_DONE_AFTER_REQUEST)

    def _client_server_hello_done(self, msg: ServerHelloDone, wire: WireMessage,
                                  now: float) -> None:
        assert self._suite is not None
        if self._suite.uses_ecdhe and self._group is None:
            raise UnexpectedMessage("ServerHelloDone before the ServerKeyExchange")
        self._add_to_transcript(wire)
        entries: list[FlightEntry] = []
        signing: Scheme | None = None
        legacy_signing = False
        if self._certificate_request is not None:
            # RFC 5246 7.4.6: answer a CertificateRequest with our certificate if it fits
            # what the server accepts, else with an empty list and let the server decide.
            if self._version == DTLS1_0:
                legacy_signing = can_answer_legacy(self.configuration, self._certificate_request)
            else:
                signing = can_answer(self.configuration, self._certificate_request)
            chain = (self.configuration.certificate_chain
                     if signing is not None or legacy_signing else [])
            certificate = self._handshake(Certificate([c.public_bytes(Encoding.DER)
                                                       for c in chain]))
            self._add_to_transcript(certificate)
            entries.append((_EPOCH0, certificate))
        message, pre_master_secret = self._client_key_exchange()
        client_key_exchange = self._handshake(message)
        self._add_to_transcript(client_key_exchange)
        entries.append((_EPOCH0, client_key_exchange))
        self._install_keys(pre_master_secret)
        if signing is not None:
            # RFC 5246 7.4.8: sign every handshake message so far, ClientKeyExchange included.
            assert self.configuration.private_key is not None
            if signing.transcript is None:
                # RFC 8422 5.8 / RFC 8032: Ed25519 signs the messages, not a digest.
                signature = sign(self.configuration.private_key, signing,
                                 self._transcript_messages())
            else:
                signature = sign(self.configuration.private_key, signing,
                                 self._transcript.digest(signing.transcript), prehashed=True)
            verify = self._handshake(CertificateVerify(signing.code, signature))
            self._add_to_transcript(verify)
            entries.append((_EPOCH0, verify))
        elif legacy_signing:
            # RFC 4346 7.4.8 / RFC 4492 5.8: the MD5 || SHA-1 transcript, no algorithm.
            assert self.configuration.private_key is not None
            verify = self._handshake(CertificateVerify(None, sign_legacy(
                self.configuration.private_key,
                self._transcript.digest(PrfAlgorithm.MD5_SHA1))))
            self._add_to_transcript(verify)
            entries.append((_EPOCH0, verify))
        self._transcript.drop_messages()  # no CertificateVerify of ours can follow
        finished = self._handshake(Finished(self._verify_data(from_client=True)))
        self._add_to_transcript(finished)
        entries += [(_CCS, _CHANGE_CIPHER_SPEC), (_EPOCH1, finished)]
        self._write_epoch = 1
        self._send_flight(entries, now)
        self._set_state(HandshakeState.WAIT_SERVER_FINISHED)

    def _transcript_messages(self) -> bytes:
        """The kept handshake messages an Ed25519 CertificateVerify covers."""
        if not self._transcript.keeps_messages:
            raise InternalError("an Ed25519 CertificateVerify needs the handshake messages, "
                                "which were not kept")
        return self._transcript.messages()

    def _client_key_exchange(self) -> tuple[ClientKeyExchange, SecretBytes]:
        """Our ClientKeyExchange and the premaster secret, per key exchange."""
        assert self._suite is not None
        config = self.configuration
        if self._suite.key_exchange is KeyExchange.PSK:
            assert config.psk is not None
            return (ClientKeyExchangePSK(config.psk_identity),
                    psk_premaster_secret(config.psk))  # RFC 4279 2
        assert self._group is not None
        key_pair = EcdheKeyPair.generate(self._group)
        shared = key_pair.exchange(self._peer_ecdh_public)
        if self._suite.key_exchange is KeyExchange.ECDHE_PSK:
            assert config.psk is not None
            return (ClientKeyExchangeECDHEPSK(config.psk_identity, key_pair.public_bytes),
                    ecdhe_psk_premaster_secret(shared, config.psk))  # RFC 5489 2
        return ClientKeyExchangeECDHE(key_pair.public_bytes), shared  # RFC 8422 5.7

    def _client_new_session_ticket(self, msg: NewSessionTicket, wire: WireMessage,
                                   now: float) -> None:
        # RFC 5077 3.3: only after an empty session_ticket in the ServerHello, and once.
        if not self._expect_ticket or self._new_ticket is not None:
            raise UnexpectedMessage("NewSessionTicket the ServerHello did not announce")
        self._new_ticket = msg
        self._add_to_transcript(wire)

    def _client_server_finished(self, msg: Finished, wire: WireMessage, now: float) -> None:
        if self._expect_ticket and self._new_ticket is None:
            # RFC 5077 3.2: a server that sends the empty extension MUST send the ticket.
            raise UnexpectedMessage("Finished without the NewSessionTicket the ServerHello "
                                    "announced")
        check_verify_data(self._verify_data(from_client=False), msg.verify_data)
        self._add_to_transcript(wire)
        if self._resumed:
            # Abbreviated handshake: our CCS + Finished is the last flight, resent
            # whenever the server's flight comes again (RFC 6347 4.2.4).
            finished = self._handshake(Finished(self._verify_data(from_client=True)))
            self._add_to_transcript(finished)
            self._write_epoch = 1
            self._send_flight([(_CCS, _CHANGE_CIPHER_SPEC), (_EPOCH1, finished)], now,
                              final=True)
            self._complete(now)
            return
        self._set_state(FlightState.FINISHED)
        self._timer.cancel()
        self._flight = None  # the server sent the last flight; ours is never needed again
        self._complete(now)

    # -- server side ---------------------------------------------------------------------

    def _receive_stateless_client_hello(self, payload: bytes, header: RecordHeader,
                                        addr: Address, now: float) -> None:
        """ClientHellos before the cookie: answered, never stored (RFC 6347 4.2.1)."""
        if header.epoch != 0:
            self.stats["client_hello_wrong_epoch"] += 1
            return
        try:
            fragments = parse_fragments(payload)
        except DecodeError:
            self.stats["malformed_handshake_record"] += 1
            return
        for fragment in fragments:
            if fragment.msg_type != HandshakeType.client_hello:
                self.stats["unexpected_before_client_hello"] += 1
                continue
            if fragment.fragment_offset != 0 or fragment.fragment_length != fragment.length:
                self.stats["fragmented_client_hello"] += 1
                continue
            if fragment.message_seq > MAX_CLIENT_HELLO_MESSAGE_SEQ:
                # 0, or 1 after a HelloVerifyRequest (RFC 6347 4.2.2); a few more after
                # repeated ones.  Near 2^16 our own message_seq would overflow (no wrap).
                self.stats["client_hello_message_seq"] += 1
                continue
            body = bytes(fragment.body)
            checked = self._checked_hello
            if checked is not None and checked[0] == body:
                # The front end decoded these very bytes, for this address and time.
                hello, cookie_ok = checked[1], checked[2]
            else:
                try:
                    decoded = decode_handshake(HandshakeType.client_hello, body)
                except AlertError:
                    # Nothing is authenticated yet and we hold no state: just drop it.
                    self.stats["malformed_client_hello"] += 1
                    continue
                assert isinstance(decoded, ClientHello)
                hello = decoded
                cookie_ok = not self.configuration.cookie_exchange or \
                    self.configuration.cookie_signer.check(addr, hello, now)
            if self.configuration.cookie_exchange and not cookie_ok:
                self._send_hello_verify_request(hello, fragment.message_seq, header.seq,
                                                addr, now)
                continue
            # The association begins here: the client has proved its address.
            self._peer_address = addr
            self._handshake_deadline = now + self.configuration.handshake_timeout
            self._reassembler = HandshakeReassembler(next_message_seq=fragment.message_seq + 1)
            self._send_message_seq = fragment.message_seq  # 4.2.2: ServerHello echoes it
            self._write_states[0].next_seq = header.seq  # continue from the hello, as HVR did
            self._peer_handshake_seq[0] = header.seq  # a duplicate of it is not a resend
            wire = WireMessage(HandshakeType.client_hello, fragment.message_seq, body)
            self._handle_message(wire, now, hello)
            return

    def _send_hello_verify_request(self, hello: ClientHello, message_seq: int, record_seq: int,
                                   addr: Address, now: float) -> None:
        cookie = self.configuration.cookie_signer.make(addr, hello, now)
        # RFC 6347 4.2.1: version DTLS 1.0 in the HVR whatever will be negotiated, the
        # ClientHello's message_seq (4.2.2) and record sequence number.
        _, body = encode_handshake(HelloVerifyRequest(DTLS1_0, cookie))
        message = WireMessage(HandshakeType.hello_verify_request, message_seq, body)
        # The record carries the version we would pick, for DTLS 1.0-only clients.
        try:
            version = select_version(self.configuration, hello)
        except AlertError:
            version = DTLS1_2
        state = CipherState(NULL_PROTECTION, epoch=0, version=version)  # nothing kept
        state.next_seq = record_seq
        self._queue(state.seal(ContentType.HANDSHAKE, message.serialize()), addr)
        self.stats["hello_verify_request"] += 1

    def _find_session(self, hello: ClientHello, now: float) -> Session | None:
        """The session a ClientHello asks to resume: its ticket (RFC 5077 3.4; one that
        does not open just means a full handshake), else its session ID in our cache."""
        config = self.configuration
        ticket = find_extension(hello.extensions, SessionTicket)
        if config.session_tickets and ticket is not None and ticket.ticket:
            session = open_ticket(config.ticket_keys, ticket.ticket, now,
                                  lifetime=config.session_lifetime)
            if session is not None:
                return session
            self.stats["ticket_rejected"] += 1
        if hello.session_id and config.session_cache_size > 0:
            session = config.session_cache.get(hello.session_id, now,
                                               lifetime=config.session_lifetime)
            if session is None:
                self.stats["session_id_unknown"] += 1
            return session
        return None

    def _resume(self, session: Session) -> None:
        """Take the master secret and the peer's identity from `session`; derive keys."""
        self._resumed = True
        self._session = session
        self._master_secret = session.master_secret
        self._extended_master_secret = session.extended_master_secret
        self._psk_identity = session.psk_identity
        self._peer_chain = session.peer_certificate_chain
        self._peer_certificate = load_leaf(self._peer_chain) if self._peer_chain else None
        self._derive_keys()

    def _ticket(self, session: Session, now: float) -> WireMessage:
        config = self.configuration
        ticket = NewSessionTicket(int(config.session_lifetime),
                                  seal_session(config.ticket_keys, session, now))
        message = self._handshake(ticket)
        self._add_to_transcript(message)
        return message

    def _server_client_hello(self, msg: ClientHello, wire: WireMessage, now: float) -> None:
        config = self.configuration
        version = select_version(config, msg)
        sni = find_extension(msg.extensions, ServerName)
        self._server_name = sni.host_name if sni is not None else None
        session = self._find_session(msg, now)
        if session is not None and not resumable(config, msg, session, version):
            self.stats["session_not_resumable"] += 1
            session = None
        negotiated = negotiate(config, msg, resume=session)
        self._set_version(negotiated.version)
        self._issue_ticket = negotiated.issue_ticket
        self._suite, self._group = negotiated.suite, negotiated.group
        self._extended_master_secret = negotiated.extended_master_secret
        self._encrypt_then_mac = negotiated.encrypt_then_mac
        self._alpn_protocol = negotiated.alpn_protocol
        self._client_random = msg.random
        self._server_random = os.urandom(32)

        # RFC 8422 5.8: keep the messages while the client may answer our CertificateRequest
        # with an Ed25519 certificate (its CertificateVerify signs them, not a digest).
        # Without client authentication no CertificateVerify comes: only the PRF's hash is
        # ever asked for (see HandshakeTranscript's `only`).
        self._transcript = HandshakeTranscript(keep_messages=(
            self._version == DTLS1_2 and config.client_auth is not ClientAuth.NONE),
            only=self._prf if config.client_auth is ClientAuth.NONE else None)
        self._add_to_transcript(wire)
        if session is not None:
            self._transcript.drop_messages()  # abbreviated: no CertificateVerify
            # RFC 5246 7.4.1.3: echo the client's session ID; RFC 5077 3.4: also for a
            # ticket.  Abbreviated handshake: SH, [NewSessionTicket], CCS, Finished.
            self._session_id = msg.session_id
            server_hello = self._handshake(ServerHello(
                self._version, self._server_random, msg.session_id, self._suite.code, 0,
                list(negotiated.server_hello_extensions)))
            self._add_to_transcript(server_hello)
            entries: list[FlightEntry] = [(_EPOCH0, server_hello)]
            if self._issue_ticket:
                entries.append((_EPOCH0, self._ticket(session, now)))  # renewed, same session
            self._resume(session)
            finished = self._handshake(Finished(self._verify_data(from_client=False)))
            self._add_to_transcript(finished)
            self._write_epoch = 1
            self._send_flight(entries + [(_CCS, _CHANGE_CIPHER_SPEC), (_EPOCH1, finished)], now)
            self._set_state(HandshakeState.WAIT_CLIENT_FINISHED)
            return
        self._session_id = os.urandom(32) if config.session_cache_size > 0 else b""
        server_hello = self._handshake(ServerHello(
            self._version, self._server_random, self._session_id, self._suite.code, 0,
            list(negotiated.server_hello_extensions)))
        flight = [server_hello]
        suite = self._suite
        if suite.needs_certificate:
            flight.append(self._handshake(Certificate(
                [c.public_bytes(Encoding.DER) for c in config.certificate_chain])))
        if suite.uses_ecdhe:
            assert self._group is not None
            self._key_pair = EcdheKeyPair.generate(self._group)
            params = ServerECDHParams(self._group, self._key_pair.public_bytes)
        if suite.key_exchange is KeyExchange.ECDHE:
            assert config.private_key is not None
            signed = self._client_random + self._server_random + ecdh_params_bytes(params)
            if self._version == DTLS1_0:
                # RFC 4346 7.4.3 / RFC 4492 5.4: no algorithm field, MD5+SHA-1 or SHA-1.
                flight.append(self._handshake(ServerKeyExchangeECDHE(
                    params, None, sign_legacy(config.private_key, legacy_digest(signed)))))
            else:
                scheme = negotiated.signature_scheme
                assert scheme is not None
                flight.append(self._handshake(ServerKeyExchangeECDHE(
                    params, scheme.code, sign(config.private_key, scheme, signed))))
        elif suite.key_exchange is KeyExchange.ECDHE_PSK:
            flight.append(self._handshake(
                ServerKeyExchangeECDHEPSK(config.psk_identity_hint, params)))  # RFC 5489 2
        elif config.psk_identity_hint:
            # RFC 4279 2: plain PSK sends a ServerKeyExchange only to carry a hint.
            flight.append(self._handshake(ServerKeyExchangePSK(config.psk_identity_hint)))
        requesting = suite.needs_certificate and config.client_auth is not ClientAuth.NONE
        if not requesting:
            self._transcript.drop_messages()
        if requesting:
            flight.append(self._handshake(certificate_request(config, self._version)))
        flight.append(self._handshake(ServerHelloDone()))
        for message in flight:
            self._add_to_transcript(message)
        self._send_flight([(_EPOCH0, m) for m in flight], now)
        self._set_state(HandshakeState.WAIT_CLIENT_CERTIFICATE if requesting
                        else HandshakeState.WAIT_CLIENT_KEY_EXCHANGE)

    def _server_client_certificate(self, msg: Certificate, wire: WireMessage,
                                   now: float) -> None:
        if msg.certificates:
            self._verify_peer_certificate(msg.certificates)
        elif self.configuration.client_auth is ClientAuth.REQUIRE:
            # RFC 5246 7.4.6: the server may answer an empty list with handshake_failure.
            raise HandshakeFailure("client sent no certificate, and one is required")
        if self._peer_certificate is None or key_kind(
                self._peer_certificate.public_key()) is not KeyKind.ED25519:  # type: ignore[arg-type]
            self._transcript.drop_messages()  # only an Ed25519 CertificateVerify needs them
        self._add_to_transcript(wire)
        self._set_state(HandshakeState.WAIT_CLIENT_KEY_EXCHANGE)

    def _server_client_key_exchange(self, msg: ClientKeyExchange, wire: WireMessage,
                                    now: float) -> None:
        if isinstance(msg, ClientKeyExchangeECDHE):
            assert self._key_pair is not None
            pre_master_secret = self._key_pair.exchange(msg.public_key)
        else:
            psk = self._lookup_psk(msg.psk_identity)
            if isinstance(msg, ClientKeyExchangePSK):
                pre_master_secret = psk_premaster_secret(psk)  # RFC 4279 2
            else:
                assert self._key_pair is not None
                pre_master_secret = ecdhe_psk_premaster_secret(  # RFC 5489 2
                    self._key_pair.exchange(msg.public_key), psk)
        self._add_to_transcript(wire)
        self._install_keys(pre_master_secret)
        # RFC 5246 7.4.8: a client that sent a certificate proves it owns the key next.
        self._set_state(HandshakeState.WAIT_CLIENT_CERTIFICATE_VERIFY
                        if self._peer_certificate is not None
                        else HandshakeState.WAIT_CLIENT_FINISHED)

    def _lookup_psk(self, identity: bytes) -> bytes:
        lookup = self.configuration.psk_lookup
        assert lookup is not None  # PSK suites are only chosen with a lookup configured
        psk = lookup(identity)
        if not psk:
            # RFC 4279 2: unknown_psk_identity.  (Sending it tells a prober which identities
            # exist; RFC 4279 permits decrypt_error instead, at the cost of clarity.)
            raise AlertError("unknown PSK identity", AlertDescription.unknown_psk_identity)
        self._psk_identity = identity
        return psk

    def _server_certificate_verify(self, msg: CertificateVerify, wire: WireMessage,
                                   now: float) -> None:
        assert self._peer_certificate is not None
        if self._version == DTLS1_0:
            # RFC 4346 7.4.8 / RFC 4492 5.8: over MD5 || SHA-1 (RSA) or SHA-1 (ECDSA).
            verify_legacy(self._peer_certificate.public_key(),  # type: ignore[arg-type]
                          msg.signature, self._transcript.digest(PrfAlgorithm.MD5_SHA1),
                          what="CertificateVerify signature")
            self._add_to_transcript(wire)
            self._set_state(HandshakeState.WAIT_CLIENT_FINISHED)
            return
        scheme = scheme_for(msg.signature_algorithm)
        if scheme.code not in TRANSCRIPT_SCHEMES:
            raise IllegalParameter(f"CertificateVerify with {scheme.code.name}, which our "
                                   "CertificateRequest did not offer")
        public_key = self._peer_certificate.public_key()
        if scheme.transcript is None:
            # RFC 8422 5.8 / RFC 8032: Ed25519 over the handshake messages themselves.
            if key_kind(public_key) is not KeyKind.ED25519:  # type: ignore[arg-type]
                raise IllegalParameter(f"CertificateVerify uses {scheme.code.name} but the "
                                       f"certificate key is {key_kind(public_key).value}")  # type: ignore[arg-type]
            messages = self._transcript_messages()
            verify_signature(public_key, scheme, msg.signature, messages,  # type: ignore[arg-type]
                             what=f"Ed25519 CertificateVerify signature (over "
                                  f"{len(messages)} bytes of handshake messages)")
        else:
            verify_signature(public_key,  # type: ignore[arg-type]
                             scheme, msg.signature, self._transcript.digest(scheme.transcript),
                             prehashed=True, what="CertificateVerify signature")
        self._transcript.drop_messages()
        self._add_to_transcript(wire)
        self._set_state(HandshakeState.WAIT_CLIENT_FINISHED)

    def _server_client_finished(self, msg: Finished, wire: WireMessage, now: float) -> None:
        check_verify_data(self._verify_data(from_client=True), msg.verify_data)
        self._add_to_transcript(wire)
        if self._resumed:
            # Abbreviated handshake: the client sent the last flight (RFC 5246 7.3).
            self._set_state(FlightState.FINISHED)
            self._timer.cancel()
            self._flight = None
            self._complete(now)
            return
        self._session = self._new_session(now)
        entries: list[FlightEntry] = []
        if self._issue_ticket:
            # RFC 5077 3.3: NewSessionTicket goes after the client's Finished, before our CCS.
            entries.append((_EPOCH0, self._ticket(self._session, now)))
        finished = self._handshake(Finished(self._verify_data(from_client=False)))
        self._add_to_transcript(finished)
        self._write_epoch = 1
        # Flight 6 ends the handshake: no timer, but resent whenever flight 5 shows up
        # again (RFC 6347 4.2.4: the last flight's sender answers retransmissions).
        self._send_flight(entries + [(_CCS, _CHANGE_CIPHER_SPEC), (_EPOCH1, finished)], now,
                          final=True)
        self._complete(now)

    # -- both sides ----------------------------------------------------------------------

    def _install_keys(self, pre_master_secret: SecretBytes) -> None:
        """Master secret, key block and the epoch-1 cipher states (RFC 5246 8.1, 6.3)."""
        prf = self._prf
        if self._extended_master_secret:
            # RFC 7627 4: session_hash covers the transcript through ClientKeyExchange.
            self._master_secret = extended_master_secret(
                prf, pre_master_secret, self._transcript.digest(prf))
        else:
            self._master_secret = master_secret(prf, pre_master_secret, self._client_random,
                                                self._server_random)
        if self.configuration.keylog is not None:
            # Only where the user asked for it (SSLKEYLOGFILE, for Wireshark).
            self.configuration.keylog(keylog_line(self._client_random, self._master_secret))
        self._derive_keys()

    def _derive_keys(self) -> None:
        """Key block and epoch-1 cipher states from the master secret (RFC 5246 6.3); an
        abbreviated handshake comes here directly with the session's master secret."""
        assert self._suite is not None and self._master_secret is not None
        prf = self._prf
        material: KeyMaterial = derive_key_material(
            prf, self._master_secret, self._client_random, self._server_random,
            self._suite.protection(self._encrypt_then_mac))
        protection = material.protection
        self._write_states[1] = CipherState(protection, epoch=1, version=self._version,
                                            **material.cipher_state_kwargs(self.is_client))
        self._read_states[1] = CipherState(protection, epoch=1, version=self._version,
                                           **material.cipher_state_kwargs(not self.is_client))
        self._key_pair = None  # forward secrecy: the ephemeral key is no longer needed

    def _verify_data(self, *, from_client: bool) -> bytes:
        assert self._master_secret is not None and self._suite is not None
        return verify_data(self._prf, self._master_secret, self._transcript.digest(self._prf),
                           from_client=from_client, length=self._suite.verify_data_length)

    def _new_session(self, now: float) -> Session:
        """The session a full handshake made (RFC 5246 7.4.1.2)."""
        assert self._suite is not None and self._master_secret is not None
        ticket = self._new_ticket
        return Session(
            self._session_id, self._version, self._suite.suite, self._master_secret,
            self._extended_master_secret, now,
            server_name=self.configuration.server_name if self.is_client else self._server_name,
            alpn_protocol=self._alpn_protocol, psk_identity=self._psk_identity,
            peer_certificate_chain=self._peer_chain,
            ticket=ticket.ticket if ticket is not None else b"",
            ticket_lifetime_hint=ticket.ticket_lifetime_hint if ticket is not None else 0)

    def _complete(self, now: float) -> None:
        assert self._suite is not None
        self._handshake_deadline = None
        self._transcript.drop_messages()
        self._set_state(HandshakeState.ESTABLISHED)
        self._app_read = self._read_states[self._peer_epoch]
        if self.is_client and self._suite.uses_psk:
            self._psk_identity = self.configuration.psk_identity
        config = self.configuration
        if self.is_client:
            if not self._resumed:
                self._session = self._new_session(now)
            elif self._new_ticket is not None and self._new_ticket.ticket:
                assert self._session is not None  # RFC 5077 3.4: the server renewed it
                self._session = replace(self._session, ticket=self._new_ticket.ticket,
                                        ticket_lifetime_hint=self._new_ticket.ticket_lifetime_hint)
        elif not self._resumed and self._session is not None and config.session_cache_size > 0:
            # Resumable only once the handshake completed (RFC 5246 7.4.1.2).
            config.session_cache.put(self._session, max_entries=config.session_cache_size)
        self._event(HandshakeCompleted(
            version=self._version, cipher_suite=self._suite.suite, named_group=self._group,
            resumed=self._resumed,
            extended_master_secret=self._extended_master_secret,
            encrypt_then_mac=self._encrypt_then_mac,
            alpn_protocol=self._alpn_protocol, psk_identity=self._psk_identity,
            peer_certificate=self._peer_certificate, peer_certificate_chain=self._peer_chain))
        self._release_handshake_state()

    def _release_handshake_state(self) -> None:
        """Forget what only the handshake needed once it completed: a few KiB per idle
        session, which add up on a server holding 10,000 (bench/scale.py).  Kept: the final flight
        with its epoch-0 and epoch-1 write states (resent when the peer's last flight shows
        up again, until its first record under the new epoch, RFC 6347 4.2.4), the
        reassembler, whose next message_seq is what tells that retransmission from a new
        message, and the randoms and master secret (the RFC 5705 exporter)."""
        self._transcript.release()
        self._client_hello = self._client_hello_wire = None
        self._verifier = None
        self._key_pair = None
        if not self._final_flight:
            self._release_epoch0_writes()

    def _answer_peer_resend(self, now: float) -> None:
        """After a datagram's records: if one was the peer resending its previous flight,
        resend ours (once per datagram, however many of its records were resends)."""
        if self._retransmit_requested:
            self._retransmit_requested = False
            self._resend_on_peer_retransmission(now)

    def _final_flight_acknowledged(self) -> None:
        """Authenticated application data under the new keys: the peer has our Finished, so
        it will never ask for the final flight again (RFC 6347 4.2.4).  Drop the flight and,
        with nothing left to write at epoch 0, its write state.  (Epoch 0 is still read, so
        stray plaintext records are counted as before.)"""
        self._flight, self._final_flight = None, False
        self._release_epoch0_writes()

    def _release_epoch0_writes(self) -> None:
        """Established with no final flight left to resend: nothing is written at epoch 0
        any more."""
        if self._write_epoch > 0:
            self._write_states.pop(0, None)

    def _refuse_renegotiation(self, msg: Any, wire: WireMessage, now: float) -> None:
        # RFC 5246 7.4.1.1 / RFC 5746 4.2: decline with a warning, keep the connection.
        self.stats["renegotiation_refused"] += 1
        self._send_alert(AlertLevel.WARNING, AlertDescription.no_renegotiation)


_WAITING_FOR_FINISHED = frozenset({HandshakeState.WAIT_CLIENT_FINISHED,
                                   HandshakeState.WAIT_SERVER_FINISHED})

_S = HandshakeState
_T = HandshakeType
_TRANSITIONS: dict[tuple[HandshakeState, int], Handler] = {
    (_S.WAIT_SERVER_HELLO, _T.hello_verify_request): Connection._client_hello_verify_request,
    (_S.WAIT_SERVER_HELLO, _T.server_hello): Connection._client_server_hello,
    (_S.WAIT_SERVER_HELLO_AFTER_COOKIE, _T.server_hello): Connection._client_server_hello,
    (_S.WAIT_SERVER_HELLO_AFTER_COOKIE, _T.hello_verify_request):
        Connection._client_hello_verify_request,
    (_S.WAIT_SERVER_CERTIFICATE, _T.certificate): Connection._client_certificate,
    (_S.WAIT_SERVER_KEY_EXCHANGE, _T.server_key_exchange):
        Connection._client_server_key_exchange,
    (_S.WAIT_SERVER_KEY_EXCHANGE, _T.server_hello_done): Connection._client_server_hello_done,
    (_S.WAIT_SERVER_HELLO_DONE, _T.certificate_request): Connection._client_certificate_request,
    (_S.WAIT_SERVER_HELLO_DONE, _T.server_hello_done): Connection._client_server_hello_done,
    (_S.WAIT_SERVER_HELLO_DONE_AFTER_REQUEST, _T.server_hello_done):
        Connection._client_server_hello_done,
    (_S.WAIT_SERVER_FINISHED, _T.new_session_ticket): Connection._client_new_session_ticket,
    (_S.WAIT_SERVER_FINISHED, _T.finished): Connection._client_server_finished,
    (_S.SERVER_WAIT_CLIENT_HELLO, _T.client_hello): Connection._server_client_hello,
    (_S.WAIT_CLIENT_CERTIFICATE, _T.certificate): Connection._server_client_certificate,
    (_S.WAIT_CLIENT_KEY_EXCHANGE, _T.client_key_exchange):
        Connection._server_client_key_exchange,
    (_S.WAIT_CLIENT_CERTIFICATE_VERIFY, _T.certificate_verify):
        Connection._server_certificate_verify,
    (_S.WAIT_CLIENT_FINISHED, _T.finished): Connection._server_client_finished,
    (_S.ESTABLISHED, _T.hello_request): Connection._refuse_renegotiation,
    (_S.ESTABLISHED, _T.client_hello): Connection._refuse_renegotiation,
}
"""The handshake state machine as data (h11 style): anything else is unexpected_message."""

del _S, _T
