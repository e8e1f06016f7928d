"""Pytest fixtures for interop tests: the test PKI and a pool of real peers.

How a test module gets them (tests/ is not a package; pytest puts tests/ on sys.path, so
this file imports as ``interop_fixtures``):

* Recommended: register this file as a plugin from the test module::

      pytest_plugins = ["interop_fixtures"]   # fixtures: pki, interop_peers
      if TYPE_CHECKING:                        # for annotations only: importing it for
          from interop_fixtures import PeerPool  # real first defeats assert rewriting

  pytest honours ``pytest_plugins`` in test modules (it refuses it only in non-root
  conftest files); the plugin is loaded once, the first time a module names it, and its
  fixtures are then visible to every test (tests/conftest.py need not change). This keeps
  ruff's F811 quiet, which importing fixtures by name does not.
* Or import the fixture functions into the module namespace (visible in that module
  only)::

      from interop_fixtures import interop_peers, pki  # noqa: F401,F811

Either way the PKI is generated once per process (see `pki`).

Fixtures:

``pki`` (session)
    `certs.PKI` generated under pytest's temporary directory; one per process even when
    several modules import the fixture.
``interop_peers`` (function)
    A `PeerPool`: ``interop_peers.start(OpenSSLServer(...))`` starts a peer (a peer that is
    unavailable here -- tool missing, suite not compiled in, feature not controllable --
    skips the test with the precise reason) and every peer is stopped at teardown, also
    when the test failed or hit its hard timeout. The peers' command lines and output are
    printed at teardown, so pytest shows them with any failure.
    The whole test is bounded by a hard timeout (SIGALRM): the module-level constant
    ``INTEROP_CASE_TIMEOUT`` in the test module, else ``DTLS_INTEROP_CASE_TIMEOUT`` from
    the environment, else 30 s.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import TypeVar

import pytest
from certs import PKI, generate_pki
from peers import HardTimeout, Peer, PeerUnavailable, stop_all, unavailable_reason

__all__ = ["PeerPool", "interop_peers", "pki", "require_peer"]

P = TypeVar("P", bound=Peer)

_pki_cache: PKI | None = None


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """The test PKI (CA, server/client leaves, expired and foreign leaves), PEM on disk."""
    global _pki_cache
    if _pki_cache is None:
        _pki_cache = generate_pki(tmp_path_factory.mktemp("pki"))
    return _pki_cache


def require_peer(implementation: str, *args: object, **kw: object) -> None:
    """Skip the current test, with the reason, unless `unavailable_reason(...)` is None."""
    reason = unavailable_reason(implementation, *args, **kw)  # type: ignore[arg-type]
    if reason:
        pytest.skip(f"{implementation}: {reason}")


class PeerPool:
    """Peers started for one test; all stopped by the fixture's teardown."""

    def __init__(self) -> None:
        self.peers: list[Peer] = []

    def start(self, peer: P) -> P:
        self.peers.append(peer)
        try:
            peer.start()
        except PeerUnavailable as exc:
            pytest.skip(exc.reason)
        return peer

    def stop_all(self) -> None:
        for peer in reversed(self.peers):
            try:
                peer.stop()
            except Exception as exc:  # noqa: BLE001  (keep stopping the others)
                print(f"stopping {peer!r} failed: {exc!r}")

    def report(self) -> str:
        return "\n".join(f"== {p!r}\n{p.diagnostics(2000)}" for p in self.peers
                         if p.proc is not None)


def _case_timeout(request: pytest.FixtureRequest) -> float:
    value = getattr(request.module, "INTEROP_CASE_TIMEOUT", None)
    if value is None:
        value = os.environ.get("DTLS_INTEROP_CASE_TIMEOUT", "30")
    return float(value)


@pytest.fixture
def interop_peers(request: pytest.FixtureRequest) -> Iterator[PeerPool]:
    pool = PeerPool()
    seconds = _case_timeout(request)
    armed = threading.current_thread() is threading.main_thread() and seconds > 0
    previous = None
    if armed:
        def _fire(signum: int, frame: object) -> None:
            raise HardTimeout(f"{request.node.nodeid} exceeded its hard timeout of "
                              f"{seconds:g} s")

        previous = signal.signal(signal.SIGALRM, _fire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield pool
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        pool.stop_all()
        report = pool.report()
        if report:
            print(report)


def pytest_unconfigure(config: pytest.Config) -> None:  # when loaded as a plugin
    stop_all()
