"""dtls.flight: the RFC 6347 4.2.4.1 retransmission timer."""

from __future__ import annotations

import pytest

from dtls.flight import RetransmitTimer


def test_doubles_from_the_initial_value_up_to_the_cap() -> None:
    timer = RetransmitTimer(1.0, 60.0)
    timer.start(0.0)
    deadlines = [timer.deadline]
    for _ in range(8):
        assert timer.deadline is not None
        now = timer.deadline
        assert timer.expired(now)
        timer.back_off(now)
        deadlines.append(timer.deadline)
    assert deadlines == [1.0, 3.0, 7.0, 15.0, 31.0, 63.0, 123.0, 183.0, 243.0]


def test_new_flight_resets_and_peer_triggered_resend_keeps_the_value() -> None:
    timer = RetransmitTimer(1.0, 60.0)
    timer.start(0.0)
    timer.back_off(1.0)
    timer.back_off(3.0)
    assert timer.value == 4.0
    timer.restart(5.0)
    assert timer.deadline == pytest.approx(9.0) and timer.value == 4.0
    timer.start(10.0)
    assert timer.value == 1.0 and timer.deadline == 11.0
    timer.cancel()
    assert timer.deadline is None and not timer.expired(1e9)
