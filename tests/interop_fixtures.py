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

Issue #3's required interop cells (see the end of this file): `REQUIRED_CASES` (suites,
EtM on/off, client certificate), `run_cell` plays one cell -- our client against the peer's
server or our server against the peer's client, handshake, application data both ways,
checks on both sides' view of the result -- and `run_cells` plays all of one peer's cells
concurrently (a thread pool; every wait is bounded).  Each interop module reports them as
``test_required_cell[<role>-<case>]``; ``python tests/interop_matrix.py`` prints the table.
"""

from __future__ import annotations

import os
import signal
import threading
import time
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


# --------------------------------------------------------------------------------------
# The cells issue #3 requires: our stack against a real peer, one (peer, role, case) each.
#
# `run_cell` plays one cell to the end and raises (AssertionError / PeerError / TimeoutError,
# with the peer's output) when it does not pass.  The three interop test modules each run
# their peer's cells concurrently (a thread pool, `run_cells`) once, then report every cell
# as its own test ``test_required_cell[<role>-<case>]`` so `tests/interop_matrix.py` can
# fold them into the REQUIRED table.  Threads are fine: every wait below is bounded, each
# cell has its own socket, Connection and peer process.

REQUIRED_CASES: dict[str, dict[str, object]] = {
    # case id: what it needs; "suite" is the IANA name (dtls.suites.CipherSuite member).
    "ECDHE_ECDSA_AES128_GCM": {"suite": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
    "ECDHE_RSA_CHACHA20": {"suite": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
    "ECDHE_ECDSA_AES128_CBC_SHA+EtM": {"suite": "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
                                       "etm": True},
    "ECDHE_ECDSA_AES128_CBC_SHA-noEtM": {"suite": "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
                                         "etm": False},
    "PSK_AES128_GCM": {"suite": "TLS_PSK_WITH_AES_128_GCM_SHA256"},
    "client-cert": {"suite": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "client_cert": True},
}
"""Issue #3's list (resumption and DTLS 1.0 live in test_interop_resumption.py)."""

REQUIRED_PEERS: dict[str, tuple[str, ...]] = {
    # case -> peers for which the issue requires it (both roles each)
    **{case: ("openssl", "gnutls", "mbedtls") for case in REQUIRED_CASES},
    "client-cert": ("openssl",),
}
ROLES = ("our-client", "our-server")
CELL_TIMEOUT = 20.0
"""Seconds one cell may take end to end (each wait inside is bounded by less)."""


def _peer_etm_off_supported(implementation: str) -> bool:
    return unavailable_reason(implementation, [], "1.2", etm=False) is None


def cell_etm_sides(implementation: str, case: str) -> tuple[bool, bool]:
    """(peer's encrypt_then_mac, ours) for a case.  "without EtM" is the peer refusing it
    (our side left at its default, on: that is the fallback that matters) -- except for
    mbed TLS, which cannot turn EtM off (python-mbedtls has no switch), where it is OUR
    side that turns it off (`DtlsConfiguration(encrypt_then_mac=False)`)."""
    etm = REQUIRED_CASES[case].get("etm", True)
    if etm:
        return True, True
    if _peer_etm_off_supported(implementation):
        return False, True
    return True, False


def _drive(conn: object, sock: object, until: object, events: object, what: str,
           peer: Peer | None, timeout: float = 10.0) -> None:
    from dtls_testing import drive_udp
    from peers import PeerError

    def done() -> bool:
        if until():  # type: ignore[operator]
            return True
        if peer is not None and peer.proc is not None and peer.proc.poll() is not None:
            time.sleep(0.05)  # let its output readers drain
            raise PeerError(peer, f"exited with code {peer.proc.returncode} while we "
                                  f"waited for {what}")
        return False

    try:
        drive_udp(conn, sock, until=done, on_event=events, timeout=timeout)  # type: ignore[arg-type]
    except TimeoutError:
        detail = peer.diagnostics(2000) if peer is not None else ""
        raise TimeoutError(f"timed out waiting for {what}; our events: "
                           f"{getattr(events, 'items', None)!r}; stats: "
                           f"{dict(getattr(conn, 'stats', {}))}\n{detail}") from None


def run_cell(pki: PKI, implementation: str, role: str, case: str) -> str:
    """Play one cell: handshake with the case's suite, data both ways, checks; returns a
    one-line summary of what was negotiated.  Raises when the cell does not pass."""
    import socket

    from dtls_testing import Events
    from peers import get_suite, peer_class

    from dtls.config import ClientAuth, DtlsConfiguration
    from dtls.connection import Connection
    from dtls.events import ApplicationData, ConnectionTerminated, HandshakeCompleted
    from dtls.suites import CipherSuite

    spec = REQUIRED_CASES[case]
    suite = get_suite(str(spec["suite"]))
    ours_suite = CipherSuite[suite.iana]
    client_cert = bool(spec.get("client_cert"))
    peer_etm, our_etm = cell_etm_sides(implementation, case)
    expect_etm = suite.cbc and peer_etm and our_etm
    leaf = None if suite.psk else pki.server_for(suite.auth)
    from certs import PSK_IDENTITY, PSK_KEY

    tag = f"{implementation}-{role}-{case}-{time.monotonic_ns() % 10**9}"
    up, down = f"up-{tag}", f"down-{tag}"
    events = Events()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer: Peer | None = None
    try:
        if role == "our-client":
            kw: dict[str, object] = {"suite": suite.iana, "etm": peer_etm, "cert": leaf}
            if client_cert:
                kw.update(client_auth="require", ca=pki.ca.cert_path)
            peer = peer_class(implementation, "server")(**kw)
            reason = peer.unavailable()
            if reason:
                raise PeerUnavailable(f"{implementation} server: {reason}")
            peer.start()
            assert peer.port is not None
            sock.connect(("127.0.0.1", peer.port))
            config = DtlsConfiguration(
                cipher_suites=(ours_suite,), encrypt_then_mac=our_etm, mac_then_encrypt=True,
                **({"psk": PSK_KEY, "psk_identity": PSK_IDENTITY.encode()} if suite.psk
                   else {"ca_certificates": (pki.ca.cert,), "server_name": "localhost"}),
                **({"certificate_chain": [pki.client_ecdsa.cert],
                    "private_key": pki.client_ecdsa.key} if client_cert else {}))
            conn = Connection(config, peer_address=("127.0.0.1", peer.port))
            conn.connect(time.monotonic())
        else:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            config = DtlsConfiguration(
                is_client=False, cipher_suites=(ours_suite,), encrypt_then_mac=our_etm,
                mac_then_encrypt=True,
                **({"psk_lookup": {PSK_IDENTITY.encode(): PSK_KEY}.get} if suite.psk
                   else {"certificate_chain": [leaf.cert], "private_key": leaf.key}),  # type: ignore[union-attr]
                **({"client_auth": ClientAuth.REQUIRE, "ca_certificates": (pki.ca.cert,)}
                   if client_cert else {}))
            conn = Connection(config)
            kw = {"suite": suite.iana, "etm": peer_etm, "port": port,
                  "ca": None if suite.psk else pki.ca.cert_path}
            if client_cert:
                kw["cert"] = pki.client_ecdsa
            peer = peer_class(implementation, "client")(**kw)
            reason = peer.unavailable()
            if reason:
                raise PeerUnavailable(f"{implementation} client: {reason}")
            peer.start()

        _drive(conn, sock, events.done(), events, "the handshake", peer)
        done = events.of_type(HandshakeCompleted)
        assert done, f"handshake failed: {events.items!r}\n{peer.diagnostics(2000)}"
        h = done[0]
        assert h.cipher_suite is ours_suite, (h, peer.diagnostics(2000))
        assert h.version == 0xFEFD, h
        assert h.extended_master_secret, h
        assert h.encrypt_then_mac is expect_etm, (h, peer_etm, our_etm)
        if client_cert and role == "our-server":
            assert h.peer_certificate == pki.client_ecdsa.cert, h
        if not suite.psk and role == "our-client":
            assert h.peer_certificate == leaf.cert, h  # type: ignore[union-attr]
        if suite.psk and role == "our-server":
            assert h.psk_identity == PSK_IDENTITY.encode(), h

        def got(line: str) -> bool:
            return any(e.data == (line + "\n").encode() for e in events.of_type(ApplicationData))

        if role == "our-client":
            conn.send((up + "\n").encode())
            # our line reaches the peer server, which echoes it (server -> client data)
            _drive(conn, sock, lambda: got(up), events, "the echo of our line", peer)
            peer.expect_line(up, timeout=5)
            if peer.can_send:
                peer.send_line(down)
                _drive(conn, sock, lambda: got(down), events, "the peer server's line", peer)
            info = peer.wait_handshake(timeout=5) if peer.reports_handshake else None
        else:
            # keep serving while the peer client finishes (it may need our flight again)
            info = None
            if peer.reports_handshake:
                _drive(conn, sock, lambda: any(x.complete for x in peer.handshakes), events,
                       "the peer client to report its handshake", peer)
                info = peer.wait_handshake(timeout=5)
            peer.send_line(up)
            _drive(conn, sock, lambda: got(up), events, "the peer client's line", peer)
            conn.send((down + "\n").encode())
            _drive(conn, sock, lambda: down.encode() in peer.received, events,
                   "the peer client to receive our line", peer)
        if info is not None:
            assert info.iana in (None, suite.iana), info
            assert info.version in (None, "1.2"), info
        conn.close()
        _drive(conn, sock, lambda: True, events, "close_notify to go out", peer, timeout=2)
        assert not [e for e in events.of_type(ConnectionTerminated)
                    if e.alert is not None and int(e.alert) != 0], events.items
        peer.stop()  # s_client's -trace (EtM, EMS as it saw them) is complete only now
        if info is not None and suite.cbc and info.etm is not None:
            assert info.etm is expect_etm, ("peer's view of encrypt_then_mac", info)
        if info is not None and info.ems is not None:
            assert info.ems, ("peer's view of extended_master_secret", info)
        return (f"{suite.iana} etm={h.encrypt_then_mac} (peer etm={peer_etm}, ours={our_etm})"
                f" group={h.named_group.name if h.named_group else None}")
    finally:
        sock.close()
        if peer is not None:
            peer.stop()


def run_cells(pki: PKI, implementation: str, workers: int = 4
              ) -> dict[tuple[str, str], tuple[str, object]]:
    """Every required-or-offered cell of one peer, `workers` at a time:
    {(role, case): ("passed", summary) | ("skipped", reason) | ("failed", exception)}."""
    from concurrent.futures import ThreadPoolExecutor

    cells = [(role, case) for case in REQUIRED_CASES for role in ROLES]

    def one(cell: tuple[str, str]) -> tuple[str, object]:
        try:
            return "passed", run_cell(pki, implementation, cell[0], cell[1])
        except PeerUnavailable as exc:
            return "skipped", exc.reason
        except Exception as exc:  # noqa: BLE001  (reported by the cell's own test)
            return "failed", exc

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(cells, pool.map(one, cells)))


def check_cell(results: dict[tuple[str, str], tuple[str, object]], role: str,
               case: str) -> None:
    """Turn one `run_cells` result into this test's outcome."""
    outcome, detail = results[(role, case)]
    if outcome == "skipped":
        pytest.skip(str(detail))
    if outcome == "failed":
        assert isinstance(detail, BaseException)
        raise detail
    print(detail)


def required_cell_params(implementation: str) -> list[object]:
    """pytest params (role, case) with ids ``<role>-<case>`` for test_required_cell."""
    return [pytest.param(role, case, id=f"{role}-{case}")
            for case in REQUIRED_CASES for role in ROLES]
