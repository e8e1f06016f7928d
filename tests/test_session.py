"""dtls.session: the server's bounded LRU session cache."""

from __future__ import annotations

import os

from test_tickets import make_session

from dtls.session import SessionCache


def test_cache_lru_bound() -> None:
    cache = SessionCache()
    sessions = [make_session() for _ in range(4)]
    for s in sessions[:3]:
        cache.put(s, max_entries=3)
    assert cache.get(sessions[0].session_id, 100.0, lifetime=60) is sessions[0]  # now newest
    cache.put(sessions[3], max_entries=3)
    assert len(cache) == 3
    assert sessions[1].session_id not in cache  # least recently used went out
    assert all(s.session_id in cache for s in (sessions[0], sessions[2], sessions[3]))


def test_cache_expiry_and_remove() -> None:
    cache = SessionCache()
    s = make_session(created_at=100.0)
    cache.put(s, max_entries=10)
    assert cache.get(s.session_id, 160.0, lifetime=60) is s
    assert cache.get(s.session_id, 160.5, lifetime=60) is None
    assert s.session_id not in cache  # expired entries are dropped
    cache.put(s, max_entries=10)
    cache.remove(s.session_id)
    assert cache.get(s.session_id, 100.0, lifetime=60) is None
    assert cache.get(os.urandom(32), 100.0, lifetime=60) is None


def test_cache_disabled_or_unnamed() -> None:
    cache = SessionCache()
    cache.put(make_session(), max_entries=0)
    cache.put(make_session(session_id=b""), max_entries=10)
    assert len(cache) == 0
