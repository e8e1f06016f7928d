"""Flights and the retransmission timer (RFC 6347 4.2.4).

DTLS makes the handshake reliable by treating each *flight* (the messages one side sends
before waiting for the other) as a unit: it is resent whole, never message by message.
The RFC 6347 4.2.4 state machine has four states:

    PREPARING -> SENDING -> WAITING --(timer expires / peer resends its previous flight)--+
                               |  ^---------------------- SENDING <----------------------+
                               +--(peer's next flight received)--> PREPARING, or FINISHED

`FlightState` names them; `Flight` is what gets resent; `RetransmitTimer` is the timer
with the 4.2.4.1 policy: 1 s initial value, doubled on every expiry, capped at 60 s.  The
connection owns sealing (record sequence numbers must be fresh on every resend, 4.2.4:
"the same handshake message ... with a new record sequence number").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .fragments import HandshakeMessage
from .recordbase import ContentType


class FlightState(Enum):
    PREPARING = "preparing"
    SENDING = "sending"
    WAITING = "waiting"
    FINISHED = "finished"


@dataclass(frozen=True)
class RecordHint:
    """How a flight piece is wrapped: which epoch's keys and which content type."""

    epoch: int
    content_type: ContentType


FlightEntry = tuple[RecordHint, HandshakeMessage | bytes]


@dataclass
class Flight:
    """Our last flight, kept so it can be resent whole.

    `peer_message_seq` is the message_seq the peer's answer starts at: a handshake
    fragment below it is the peer resending its *previous* flight, which means this one
    was lost (4.2.4); fragments at or above it belong to the answer itself.
    """

    entries: list[FlightEntry]
    peer_message_seq: int
    retransmissions: int = 0


@dataclass
class RetransmitTimer:
    """The RFC 6347 4.2.4.1 timer: initial value, doubling on expiry, capped.

    The value goes back to `initial` whenever a new flight starts (our choice among the
    RFC's options: a fresh flight means the last exchange got through).
    """

    initial: float = 1.0
    maximum: float = 60.0
    value: float = field(init=False)
    deadline: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.value = self.initial

    def start(self, now: float) -> None:
        """Arm for a new flight, at the initial value."""
        self.value = self.initial
        self.deadline = now + self.value

    def back_off(self, now: float) -> None:
        """The timer expired and the flight was resent: double the value (4.2.4.1)."""
        self.value = min(self.value * 2, self.maximum)
        self.deadline = now + self.value

    def restart(self, now: float) -> None:
        """Re-arm at the current value (resend triggered by the peer, not by expiry)."""
        self.deadline = now + self.value

    def cancel(self) -> None:
        self.deadline = None

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline
