"""Anti-replay window (RFC 6347 4.1.2.6) against a deliberately naive model, both backends."""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtls.protection import BulkCipher, Protection
from dtls.recordbase import MAX_SEQ, MAX_WINDOW, OpenStatus


class ModelWindow:
    """A set of every accepted seq and the highest one: obviously right, unboundedly slow."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.seen: set[int] = set()
        self.highest: int | None = None

    def check(self, seq: int) -> OpenStatus:
        if self.size == 0 or self.highest is None or seq > self.highest:
            return OpenStatus.OK
        if self.highest - seq >= self.size:
            return OpenStatus.TOO_OLD
        return OpenStatus.REPLAY if seq in self.seen else OpenStatus.OK

    def accept(self, seq: int) -> None:
        if self.highest is not None and self.size and self.highest - seq >= self.size:
            return
        self.seen.add(seq)
        self.highest = seq if self.highest is None else max(self.highest, seq)


sizes = st.one_of(st.sampled_from([0, 1, 32, 63, 64, 65, 127, 128, 1000, 1024, MAX_WINDOW]),
                  st.integers(0, MAX_WINDOW))


@st.composite
def seq_streams(draw: st.DrawFn) -> list[tuple[int, bool]]:
    """Seqs near a moving point (replays, reordering, window edges) and occasional jumps."""
    base = draw(st.sampled_from([0, 1000, MAX_SEQ - 5000, MAX_SEQ - 70]))
    ops = []
    for delta, jump, do_accept in draw(st.lists(
            st.tuples(st.integers(-2100, 80), st.booleans(), st.integers(0, 9)), max_size=200)):
        if jump and delta % 11 == 0:
            base = min(MAX_SEQ, base + abs(delta) * 37)
        seq = min(MAX_SEQ, max(0, base + delta))
        if delta > 0:
            base = seq
        ops.append((seq, do_accept != 0))
    return ops


@settings(max_examples=300, deadline=None)
@given(size=sizes, ops=seq_streams())
def test_window_matches_model(backend: ModuleType, size: int, ops: list[tuple[int, bool]]) -> None:
    w, m = backend.ReplayWindow(size), ModelWindow(size)
    assert w.size == size
    for seq, do_accept in ops:
        verdict = w.check(seq)
        assert verdict == m.check(seq), (seq, w.highest)
        if do_accept and verdict == OpenStatus.OK:
            w.accept(seq)
            m.accept(seq)
        assert w.highest == m.highest


@pytest.mark.parametrize("size", [2, 32, 64, 100, 1024, MAX_WINDOW])
def test_window_edges(backend: ModuleType, size: int) -> None:
    w = backend.ReplayWindow(size)
    top = 10_000
    w.accept(top)
    oldest = top - size + 1
    assert w.check(oldest) == OpenStatus.OK  # oldest in-window seq: accepted once
    w.accept(oldest)
    assert w.check(oldest) == OpenStatus.REPLAY
    assert w.check(oldest - 1) == OpenStatus.TOO_OLD  # one below the window
    assert w.check(top) == OpenStatus.REPLAY
    assert w.check(top + 1) == OpenStatus.OK
    # A large jump forgets everything behind the new window.
    w.accept(top + 10 * size + 5000)
    assert w.check(top) == OpenStatus.TOO_OLD
    assert w.check(top + 10 * size + 4999) == OpenStatus.OK


def test_window_at_max_seq(backend: ModuleType) -> None:
    w = backend.ReplayWindow(64)
    assert w.check(MAX_SEQ) == OpenStatus.OK
    w.accept(MAX_SEQ)
    assert w.highest == MAX_SEQ
    assert w.check(MAX_SEQ) == OpenStatus.REPLAY
    assert w.check(MAX_SEQ - 63) == OpenStatus.OK
    assert w.check(MAX_SEQ - 64) == OpenStatus.TOO_OLD
    with pytest.raises(ValueError):
        w.check(MAX_SEQ + 1)
    with pytest.raises(ValueError):
        w.accept(-1)


def test_window_disabled(backend: ModuleType) -> None:
    w = backend.ReplayWindow(0)
    for seq in (5, 5, 0, 5):
        assert w.check(seq) == OpenStatus.OK
        w.accept(seq)
    assert w.highest == 5


@pytest.mark.parametrize("size", [-1, MAX_WINDOW + 1])
def test_window_size_bounds(backend: ModuleType, size: int) -> None:
    with pytest.raises(ValueError):
        backend.ReplayWindow(size)


def test_window_moves_only_after_authentication(backend: ModuleType) -> None:
    """A forged record with a huge seq must not advance the window (CVE-2016-2181)."""
    prot = Protection(BulkCipher.AES_128_GCM)
    keys = {"key": bytes(16), "fixed_iv": bytes(4)}
    sender = backend.CipherState(prot, epoch=1, **keys)
    receiver = backend.CipherState(prot, epoch=1, **keys)
    good = sender.seal(23, b"hello")
    forged = bytearray(good)
    forged[5:11] = (MAX_SEQ).to_bytes(6, "big")  # seq field: unauthenticated until opened
    assert receiver.open(bytes(forged)).status == OpenStatus.BAD_MAC
    assert receiver.highest_seq is None
    assert receiver.open(good).ok
    assert receiver.highest_seq == 0
    assert receiver.open(good).status == OpenStatus.REPLAY


def test_one_window_per_epoch(backend: ModuleType) -> None:
    """Each epoch's state has its own window: seq 0 is fresh again in the next epoch."""
    prot = Protection(BulkCipher.CHACHA20_POLY1305)
    keys = {"key": bytes(32), "fixed_iv": bytes(12)}
    for epoch in (1, 2):
        sender = backend.CipherState(prot, epoch=epoch, **keys)
        receiver = backend.CipherState(prot, epoch=epoch, **keys)
        record = sender.seal(23, b"x")
        assert receiver.open(record).ok
        assert receiver.open(record).status == OpenStatus.REPLAY
        other = backend.CipherState(prot, epoch=3 - epoch, **keys)
        assert other.open(record).status == OpenStatus.BAD_EPOCH
