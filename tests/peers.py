"""Real DTLS peers (OpenSSL, GnuTLS, mbed TLS) on 127.0.0.1 for the interop suite.

What each peer supports in practice on this machine (probed 2026-11, Debian 12 image;
re-probe with ``python tests/peers.py probe``):

OpenSSL 3.0 (``openssl s_server`` / ``s_client``, Debian package ``openssl``)
    * DTLS 1.2: ``-dtls1_2``. DTLS 1.0: ``-dtls1`` works, but only with ``@SECLEVEL=0``
      in the cipher string (DTLS 1.0 signs with SHA-1 / MD5+SHA-1, which security level 1,
      the 3.0 default, refuses with "no suitable signature algorithm"). The harness appends
      ``:@SECLEVEL=0`` by itself for version "1.0".
    * Suites: every row of `SUITES` (``openssl ciphers -V``; the OpenSSL names are checked
      against ``openssl ciphers -stdname``); CBC-SHA names are ``ECDHE-ECDSA-AES128-SHA``
      (not ``...-CBC-SHA``), CCM_8 ones ``...-CCM8``.
    * Ed25519 certificates: *refused in DTLS* ("no shared cipher" on the server) although
      3.0 accepts them in TLS 1.2; use GnuTLS for Ed25519 interop.
    * Encrypt-then-MAC: on by default; ``-no_etm`` turns it off (both s_client and
      s_server, 3.0 has the flag). Extended master secret: on by default; no CLI flag in
      3.0, but ``Options = -ExtendedMasterSecret`` in an OPENSSL_CONF system_default section
      turns it off (the harness writes that file for ``ems=False``).
    * PSK: ``-psk HEX -psk_identity ID`` (server: ``-nocert``; its -psk_identity is the
      identity it expects).
    * Resumption: s_client ``-sess_out FILE`` / ``-sess_in FILE`` (across two processes);
      tickets by default, ``-no_ticket`` for session-ID resumption. s_server serves DTLS
      connections one after another on the same port, so one server handles both.
    * Client auth: s_server ``-verify 1`` (request) / ``-Verify 1`` (require) with
      ``-CAfile``; s_client ``-cert/-key``.
    * Cookies: s_server always sends HelloVerifyRequest for DTLS.
    * Output: with ``-brief`` the handshake summary goes to stderr and stdout carries only
      application data; ``-brief`` also disables s_server's stdin command letters (Q, q, r,
      R, P, S, ...) and s_client gets ``-nocommands``, so any line can be sent.
    * ``-msg`` is useless for DTLS in 3.0 ("Not TLS data or unknown version"); ``-trace``
      works but its ``-msgfile`` is stdio-buffered (complete only once the process has
      exited) and s_server's trace prints bogus ASN.1 errors on stderr when it traces its
      own fragmented Certificate. So: resumed / EtM / EMS are read from the client's trace
      after `stop()` (s_client exits cleanly when its stdin closes).
    * s_server does not echo: `OpenSSLServer(echo=True)` relays each stdout line back into
      its stdin.

GnuTLS 3.7.9 (``gnutls-serv`` / ``gnutls-cli --udp``, Debian package ``gnutls-bin``)
    * DTLS 1.2 and DTLS 1.0 (``+VERS-DTLS1.0``) both work with default settings (DTLS 1.0
      needs no security-level override, unlike OpenSSL).
    * Suites: every row of `SUITES` (``gnutls-cli -l``); selected with a priority string
      ``NORMAL:-VERS-ALL:+VERS-DTLS1.x:-CIPHER-ALL:-KX-ALL:-MAC-ALL:+C:+K:+M``.
    * Ed25519 server certificates work in DTLS 1.2 (the only peer here where they do), and
      so do Ed25519 client certificates both ways (tests/test_ed25519_client.py).
    * EtM: ``%NO_ETM`` in the priority string; EMS: ``%NO_SESSION_HASH``. gnutls-cli
      prints ``- Options: extended master secret, safe renegotiation, EtM,`` so both are
      observable on the client.
    * PSK: client ``--pskusername/--pskkey HEX``; server ``--pskpasswd FILE`` (lines
      ``identity:hexkey``, written by the harness).
    * Resumption: gnutls-cli ``--resume`` connects, then reconnects resuming (ticket by
      default, ``--noticket`` for session ID) and prints "*** This is a resumed session".
    * Client auth: gnutls-serv *requests a client certificate by default*; the harness
      passes ``--disable-client-cert`` unless ``client_auth`` is set ("request":
      ``--verify-client-cert``, "require": ``--require-client-cert``).
    * gnutls-serv: ``--echo`` echoes; it cannot send its own data (no stdin). It binds
      0.0.0.0 and :: (no bind-address option); we only ever connect to 127.0.0.1.
      Cookies (HelloVerifyRequest) on by default, ``--nocookie`` off.
    * gnutls-cli does not exit when its stdin closes in UDP mode; stop() kills it.
    * gnutls-cli 3.7.9 dies of SIGSEGV in every ECDHE-PSK DTLS handshake, against
      gnutls-serv as against us (gnutls-serv is fine as an ECDHE-PSK server); shown by
      test_interop_gnutls.py::test_gnutls_cli_segfaults_on_ecdhe_psk_with_gnutls_serv_too.

mbed TLS 2.28.8 via python-mbedtls 2.10.1 (PyPI ``python-mbedtls``, manylinux wheel for
CPython 3.11, bundles its own libmbedtls)
    * DTLS 1.2 and DTLS 1.0 (``mbedtls.tls._SUPPORTED_DTLS_VERSION``).
    * Suites: every row of `SUITES` (``mbedtls.tls.ciphers_available()``).
    * EtM and EMS: always offered/accepted (compiled in); python-mbedtls exposes no switch,
      so an ``etm=False`` / ``ems=False`` mbed TLS peer is reported unavailable (the
      interop suite tests "CBC without EtM" against mbed TLS by turning EtM off on our
      side; test_interop_mbedtls.py::test_mbedtls_cannot_turn_encrypt_then_mac_off).
    * PSK: ``DTLSConfiguration(pre_shared_key=(id, key))`` / ``pre_shared_key_store``.
    * Certificates: ECDSA and RSA keys; *no Ed25519* (mbed TLS 2.28 cannot parse the key).
      ``pk.ECC.from_file`` silently loads an RSA key too, so the worker is told the key type.
    * Resumption: none. The wrapper sets up no session cache or ticket keys and its
      TLSSession has no save/restore, so mbed TLS is not a resumption peer.
    * Client auth: ``validate_certificates=True`` + ``trust_store`` on the server makes the
      client certificate required (mbed TLS VERIFY_REQUIRED); no "request only".
    * Cookies: the server does the HelloVerifyRequest exchange (python-mbedtls' accept()
      and HelloVerifyRequest dance, as its example programs do).
    * The client reports the negotiated version and suite only (no EtM/EMS/resumed).
    * Runs in a child Python process (``python tests/peers.py mbedtls-worker JSON``) so a
      stuck handshake can be killed like the CLI tools; it serves connections one after
      another and echoes, like s_server with echo.

Usage, with pytest (see tests/interop_fixtures.py for fixtures that stop peers even when
the test fails)::

    with OpenSSLServer(suite="TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                       cert=pki.server_ecdsa) as server:
        ... our client connects to ("127.0.0.1", server.port), sends b"hi\\n",
            expects b"hi\\n" back (echo)
        info = server.wait_handshake()      # HandshakeInfo(version="1.2", iana=...)

    with OpenSSLClient(port=our_port, suite=..., ca=pki.ca.cert_path) as client:
        client.wait_handshake()
        client.send_line("ping")            # our server receives b"ping\\n"
        client.expect_line("pong")          # after our server sent b"pong\\n"

Every wait is bounded (`DEFAULT_TIMEOUT`, or the per-call timeout) and raises `PeerError`
with the command line and the tail of the peer's stdout/stderr. Missing tools, suites or
features raise `PeerUnavailable` (tests turn that into a skip with its reason).
Child processes get their own process group and are killed on stop(), on __exit__, by
the fixtures, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Union

if TYPE_CHECKING:
    from typing_extensions import Self


__all__ = [
    "DEFAULT_TIMEOUT",
    "GNUTLS_PRIORITIES",
    "MBEDTLS_CIPHERS",
    "OPENSSL_CIPHERS",
    "PEER_CLASSES",
    "SUITES",
    "GnuTLSClient",
    "GnuTLSServer",
    "HandshakeInfo",
    "MbedTLSClient",
    "MbedTLSServer",
    "OpenSSLClient",
    "OpenSSLServer",
    "Peer",
    "PeerError",
    "PeerUnavailable",
    "Suite",
    "free_udp_port",
    "get_suite",
    "gnutls_priority",
    "hard_timeout",
    "openssl_cipher_string",
    "parse_openssl_trace",
    "peer_class",
    "stop_all",
    "tool_versions",
    "unavailable_reason",
]

DEFAULT_TIMEOUT = float(os.environ.get("DTLS_PEER_TIMEOUT", "10"))
"""Seconds any single wait (port bound, handshake, a line) may take before PeerError."""

HOST = "127.0.0.1"
PathLike = Union[str, "os.PathLike[str]"]

# --------------------------------------------------------------------------------------
# Errors


class PeerUnavailable(RuntimeError):
    """A peer, suite or feature is not available here; `reason` says exactly why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PeerError(RuntimeError):
    """A peer failed, exited, or did not do something in time; carries its output."""

    def __init__(self, peer: Peer, message: str) -> None:
        self.peer = peer
        self.message = message
        super().__init__(f"{peer.describe()}: {message}\n{peer.diagnostics()}")


# --------------------------------------------------------------------------------------
# Suites: our IANA names -> each peer's spelling


@dataclass(frozen=True)
class Suite:
    iana: str            # TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (dtls.suites.CipherSuite name)
    code: int            # IANA code point
    auth: str            # certificate the server needs: "ecdsa", "rsa" or "psk" (none)
    cbc: bool            # MAC-then-encrypt / EtM applies
    openssl: str         # openssl cipher string
    gnutls: tuple[str, str, str]  # (kx, cipher, mac) priority keywords
    mbedtls: str         # mbed TLS ciphersuite name

    @property
    def psk(self) -> bool:
        return self.auth == "psk"

    @property
    def dtls10(self) -> bool:
        """Usable with DTLS 1.0 (RFC 5246 A.5: no AEAD, no SHA-256/384 MAC suites)."""
        return self.cbc and self.iana.endswith("_SHA")


def _s(iana: str, code: int, openssl: str, kx: str, cipher: str, mac: str) -> Suite:
    auth = "psk" if "PSK" in iana else ("ecdsa" if "ECDSA" in iana else "rsa")
    return Suite(iana, code, auth, "CBC" in iana, openssl, (kx, cipher, mac),
                 iana.replace("_", "-"))


SUITES: dict[str, Suite] = {s.iana: s for s in [
    _s("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xC02B, "ECDHE-ECDSA-AES128-GCM-SHA256",
       "ECDHE-ECDSA", "AES-128-GCM", "AEAD"),
    _s("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", 0xC02C, "ECDHE-ECDSA-AES256-GCM-SHA384",
       "ECDHE-ECDSA", "AES-256-GCM", "AEAD"),
    _s("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xC02F, "ECDHE-RSA-AES128-GCM-SHA256",
       "ECDHE-RSA", "AES-128-GCM", "AEAD"),
    _s("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 0xC030, "ECDHE-RSA-AES256-GCM-SHA384",
       "ECDHE-RSA", "AES-256-GCM", "AEAD"),
    _s("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0xCCA8, "ECDHE-RSA-CHACHA20-POLY1305",
       "ECDHE-RSA", "CHACHA20-POLY1305", "AEAD"),
    _s("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", 0xCCA9,
       "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA", "CHACHA20-POLY1305", "AEAD"),
    _s("TLS_PSK_WITH_CHACHA20_POLY1305_SHA256", 0xCCAB, "PSK-CHACHA20-POLY1305",
       "PSK", "CHACHA20-POLY1305", "AEAD"),
    _s("TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256", 0xCCAC, "ECDHE-PSK-CHACHA20-POLY1305",
       "ECDHE-PSK", "CHACHA20-POLY1305", "AEAD"),
    _s("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xC009, "ECDHE-ECDSA-AES128-SHA",
       "ECDHE-ECDSA", "AES-128-CBC", "SHA1"),
    _s("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", 0xC00A, "ECDHE-ECDSA-AES256-SHA",
       "ECDHE-ECDSA", "AES-256-CBC", "SHA1"),
    _s("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xC013, "ECDHE-RSA-AES128-SHA",
       "ECDHE-RSA", "AES-128-CBC", "SHA1"),
    _s("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", 0xC014, "ECDHE-RSA-AES256-SHA",
       "ECDHE-RSA", "AES-256-CBC", "SHA1"),
    _s("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", 0xC023, "ECDHE-ECDSA-AES128-SHA256",
       "ECDHE-ECDSA", "AES-128-CBC", "SHA256"),
    _s("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", 0xC024, "ECDHE-ECDSA-AES256-SHA384",
       "ECDHE-ECDSA", "AES-256-CBC", "SHA384"),
    _s("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0xC027, "ECDHE-RSA-AES128-SHA256",
       "ECDHE-RSA", "AES-128-CBC", "SHA256"),
    _s("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", 0xC028, "ECDHE-RSA-AES256-SHA384",
       "ECDHE-RSA", "AES-256-CBC", "SHA384"),
    _s("TLS_PSK_WITH_AES_128_CBC_SHA", 0x008C, "PSK-AES128-CBC-SHA", "PSK", "AES-128-CBC",
       "SHA1"),
    _s("TLS_PSK_WITH_AES_256_CBC_SHA", 0x008D, "PSK-AES256-CBC-SHA", "PSK", "AES-256-CBC",
       "SHA1"),
    _s("TLS_PSK_WITH_AES_128_GCM_SHA256", 0x00A8, "PSK-AES128-GCM-SHA256", "PSK",
       "AES-128-GCM", "AEAD"),
    _s("TLS_PSK_WITH_AES_256_GCM_SHA384", 0x00A9, "PSK-AES256-GCM-SHA384", "PSK",
       "AES-256-GCM", "AEAD"),
    _s("TLS_PSK_WITH_AES_128_CBC_SHA256", 0x00AE, "PSK-AES128-CBC-SHA256", "PSK",
       "AES-128-CBC", "SHA256"),
    _s("TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA", 0xC035, "ECDHE-PSK-AES128-CBC-SHA",
       "ECDHE-PSK", "AES-128-CBC", "SHA1"),
    _s("TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA", 0xC036, "ECDHE-PSK-AES256-CBC-SHA",
       "ECDHE-PSK", "AES-256-CBC", "SHA1"),
    _s("TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256", 0xC037, "ECDHE-PSK-AES128-CBC-SHA256",
       "ECDHE-PSK", "AES-128-CBC", "SHA256"),
    _s("TLS_PSK_WITH_AES_128_CCM", 0xC0A4, "PSK-AES128-CCM", "PSK", "AES-128-CCM", "AEAD"),
    _s("TLS_PSK_WITH_AES_256_CCM", 0xC0A5, "PSK-AES256-CCM", "PSK", "AES-256-CCM", "AEAD"),
    _s("TLS_PSK_WITH_AES_128_CCM_8", 0xC0A8, "PSK-AES128-CCM8", "PSK", "AES-128-CCM-8",
       "AEAD"),
    _s("TLS_PSK_WITH_AES_256_CCM_8", 0xC0A9, "PSK-AES256-CCM8", "PSK", "AES-256-CCM-8",
       "AEAD"),
    _s("TLS_ECDHE_ECDSA_WITH_AES_128_CCM", 0xC0AC, "ECDHE-ECDSA-AES128-CCM", "ECDHE-ECDSA",
       "AES-128-CCM", "AEAD"),
    _s("TLS_ECDHE_ECDSA_WITH_AES_256_CCM", 0xC0AD, "ECDHE-ECDSA-AES256-CCM", "ECDHE-ECDSA",
       "AES-256-CCM", "AEAD"),
    _s("TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", 0xC0AE, "ECDHE-ECDSA-AES128-CCM8",
       "ECDHE-ECDSA", "AES-128-CCM-8", "AEAD"),
    _s("TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8", 0xC0AF, "ECDHE-ECDSA-AES256-CCM8",
       "ECDHE-ECDSA", "AES-256-CCM-8", "AEAD"),
]}

OPENSSL_CIPHERS: dict[str, str] = {k: s.openssl for k, s in SUITES.items()}
"""IANA name -> openssl cipher string (before any ``:@SECLEVEL=0``)."""
GNUTLS_PRIORITIES: dict[str, tuple[str, str, str]] = {k: s.gnutls for k, s in SUITES.items()}
"""IANA name -> (kx, cipher, mac) GnuTLS priority keywords; see `gnutls_priority`."""
MBEDTLS_CIPHERS: dict[str, str] = {k: s.mbedtls for k, s in SUITES.items()}
"""IANA name -> mbed TLS ciphersuite name."""

VERSIONS = ("1.2", "1.0")


def get_suite(name: str) -> Suite:
    """Look a suite up by IANA name (``TLS_`` prefix optional) or by its OpenSSL name."""
    key = name if name.startswith("TLS_") else "TLS_" + name
    if key in SUITES:
        return SUITES[key]
    for s in SUITES.values():
        if name in (s.openssl, s.mbedtls):
            return s
    raise KeyError(f"unknown suite {name!r}; known: {', '.join(SUITES)}")


def openssl_cipher_string(suites: Sequence[Suite], version: str) -> str:
    spec = ":".join(s.openssl for s in suites)
    # OpenSSL 3.0: (D)TLS < 1.2 needs SHA-1 signatures, refused above security level 0.
    return spec + ":@SECLEVEL=0" if version == "1.0" else spec


def gnutls_priority(suites: Sequence[Suite], version: str, *, etm: bool = True,
                    ems: bool = True) -> str:
    """A priority string allowing exactly `suites` with DTLS `version`."""
    parts = ["NORMAL", "-VERS-ALL", "+VERS-DTLS1.0" if version == "1.0" else "+VERS-DTLS1.2",
             "-CIPHER-ALL", "-KX-ALL", "-MAC-ALL"]
    for s in suites:
        kx, cipher, mac = s.gnutls
        parts += [f"+{cipher}", f"+{kx}", f"+{mac}"]
    if not etm:
        parts.append("%NO_ETM")
    if not ems:
        parts.append("%NO_SESSION_HASH")
    return ":".join(dict.fromkeys(parts))


def _version_label(raw: str) -> str:
    """DTLSv1.2 / DTLS1.2 / DTLSv1_2 -> '1.2'; DTLSv1 / DTLS1.0 / DTLSv1_0 -> '1.0'."""
    tail = raw.replace("DTLS", "").lstrip("v").replace("_", ".")
    return {"1": "1.0", "1.0": "1.0", "1.2": "1.2"}.get(tail, raw)


# --------------------------------------------------------------------------------------
# What is installed


def _run(argv: list[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


@functools.cache
def _openssl_probe() -> tuple[str | None, str, frozenset[int]]:
    """(None or why unavailable, version, code points openssl knows at SECLEVEL=0)."""
    exe = shutil.which("openssl")
    if exe is None:
        return "openssl not installed (Debian package openssl)", "", frozenset()
    version = _run([exe, "version"]).stdout.strip()
    out = _run([exe, "ciphers", "-V", "ALL:@SECLEVEL=0"]).stdout
    codes = frozenset(int(a + b, 16) for a, b in
                      re.findall(r"0x([0-9A-Fa-f]{2}),0x([0-9A-Fa-f]{2})", out))
    help_text = _run([exe, "s_client", "-help"]).stderr
    if "-dtls1_2" not in help_text:
        return f"{version} has no DTLS in s_client", version, codes
    return None, version, codes


@functools.cache
def _gnutls_probe() -> tuple[str | None, str, frozenset[int], frozenset[str]]:
    """(None or why unavailable, version, code points, protocols) for gnutls-cli/-serv."""
    cli, serv = shutil.which("gnutls-cli"), shutil.which("gnutls-serv")
    if cli is None or serv is None:
        return ("gnutls-cli/gnutls-serv not installed (apt-get install gnutls-bin)", "",
                frozenset(), frozenset())
    version = _run([cli, "--version"]).stdout.splitlines()[0].strip()
    listing = _run([cli, "-l"]).stdout
    codes = frozenset(int(a + b, 16) for a, b in
                      re.findall(r"0x([0-9a-f]{2}), 0x([0-9a-f]{2})", listing))
    m = re.search(r"^Protocols: (.*)$", listing, re.MULTILINE)
    protocols = frozenset(p.strip() for p in m.group(1).split(",")) if m else frozenset()
    return None, version, codes, protocols


@functools.cache
def _mbedtls_probe() -> tuple[str | None, str, frozenset[str], frozenset[str]]:
    """(None or why unavailable, version, suite names, DTLS versions) for python-mbedtls."""
    try:
        import mbedtls
        from mbedtls import _tls, tls
        from mbedtls import version as mversion
    except ImportError as exc:
        return (f"python-mbedtls not importable ({exc}); pip install python-mbedtls", "",
                frozenset(), frozenset())
    version = f"python-mbedtls {mbedtls.__version__}, {mversion.version}"
    versions = frozenset(_version_label(v.name) for v in _tls._SUPPORTED_DTLS_VERSION)
    return None, version, frozenset(tls.ciphers_available()), versions


def tool_versions() -> dict[str, str]:
    """Implementation name -> version string, or 'unavailable: why'."""
    result = {}
    for name, probe in (("openssl", _openssl_probe), ("gnutls", _gnutls_probe),
                        ("mbedtls", _mbedtls_probe)):
        info = probe()
        result[name] = info[1] if info[0] is None else f"unavailable: {info[0]}"
    return result


def unavailable_reason(implementation: str, suites: Sequence[Suite] = (), version: str = "1.2",
                       *, etm: bool = True, ems: bool = True, key_type: str | None = None,
                       resumption: bool = False, role: str | None = None,
                       client_auth: str | None = None) -> str | None:
    """None when `implementation` can play this configuration here, else the reason."""
    if version not in VERSIONS:
        return f"unknown DTLS version {version!r}"
    if version == "1.0":
        bad = [s.iana for s in suites if not s.dtls10]
        if bad:
            return f"{', '.join(bad)} cannot be used with DTLS 1.0 (TLS 1.1 has no such suite)"
    if implementation == "openssl":
        why, ver, codes = _openssl_probe()
        if why:
            return why
        missing = [s.iana for s in suites if s.code not in codes]
        if missing:
            return f"{ver} was built without {', '.join(missing)}"
        if key_type == "ed25519":
            return (f"{ver} refuses Ed25519 certificates in DTLS (\"no shared cipher\"; "
                    "it allows them in TLS 1.2 only)")
        return None
    if implementation == "gnutls":
        why, ver, codes, protocols = _gnutls_probe()
        if why:
            return why
        wanted = "VERS-DTLS1.0" if version == "1.0" else "VERS-DTLS1.2"
        if protocols and wanted not in protocols:
            return f"{ver} lacks {wanted}"
        missing = [s.iana for s in suites if s.code not in codes]
        if missing:
            return f"{ver} was built without {', '.join(missing)}"
        return None
    if implementation == "mbedtls":
        why, ver, names, versions = _mbedtls_probe()
        if why:
            return why
        if version not in versions:
            return f"{ver} was built without DTLS {version}"
        missing = [s.iana for s in suites if s.mbedtls not in names]
        if missing:
            return f"{ver} was built without {', '.join(missing)}"
        if not etm:
            return ("python-mbedtls cannot disable encrypt-then-mac (no binding for "
                    "mbedtls_ssl_conf_encrypt_then_mac)")
        if not ems:
            return "python-mbedtls cannot disable extended master secret"
        if key_type == "ed25519":
            return "mbed TLS 2.28 has no Ed25519 (cannot parse the key)"
        if resumption:
            return ("python-mbedtls exposes no session resumption (no server session cache or "
                    "ticket keys, no client session save/restore)")
        if client_auth == "request":
            return "python-mbedtls servers can only require client certificates, not request"
        return None
    return f"unknown implementation {implementation!r}"


# --------------------------------------------------------------------------------------
# Ports, cleanup, timeouts

_port_lock = threading.Lock()
_handed_out: set[int] = set()


def free_udp_port(host: str = HOST) -> int:
    """A UDP port nobody has bound on `host` right now (and not handed out before)."""
    with _port_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((host, 0))
                port: int = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("no free UDP port found")


def _udp_port_bound(port: int) -> bool:
    """Whether some socket is bound to UDP `port` (IPv4 or IPv6), from /proc/net/udp*."""
    found_table = False
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        found_table = True
        for line in lines:
            fields = line.split()
            if len(fields) > 1 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    if not found_table:  # no procfs: probe by binding (brief, and only before a peer uses it)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                return True
    return False


_live_lock = threading.Lock()
_live: set[Peer] = set()


def stop_all() -> None:
    """Stop every peer still running (fixtures and atexit call this)."""
    with _live_lock:
        peers = list(_live)
    for p in peers:
        with contextlib.suppress(Exception):
            p.stop()


atexit.register(stop_all)


class HardTimeout(BaseException):
    """Raised in the main thread by `hard_timeout` (BaseException: not swallowed by
    `except Exception` in the code under test)."""


@contextlib.contextmanager
def hard_timeout(seconds: float, what: str = "interop case") -> Iterator[None]:
    """Abort the block after `seconds` with HardTimeout (SIGALRM; main thread only — in
    other threads it only bounds nothing and relies on the per-wait timeouts)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def _fire(signum: int, frame: Any) -> None:
        raise HardTimeout(f"{what} exceeded its hard timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------------------
# Handshake information


@dataclass
class HandshakeInfo:
    """What a peer reported about one handshake (None: the peer does not say)."""

    version: str | None = None       # "1.2" or "1.0"
    cipher: str | None = None        # the peer's own name for the suite
    iana: str | None = None          # our IANA name, when it could be mapped
    resumed: bool | None = None
    etm: bool | None = None          # encrypt_then_mac negotiated
    ems: bool | None = None          # extended_master_secret negotiated
    peer_certificate: str | None = None  # peer's subject as printed, "" = none sent
    verified: bool | None = None     # peer certificate verification result
    raw: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.cipher is not None


def _cert_paths(cert: Any) -> tuple[Path, Path] | None:
    """A certs.Leaf (anything with cert_path/key_path) or a (cert, key) pair."""
    if cert is None:
        return None
    if hasattr(cert, "cert_path") and hasattr(cert, "key_path"):
        return Path(cert.cert_path), Path(cert.key_path)
    cert_path, key_path = cert
    return Path(cert_path), Path(key_path)


def _key_type(key_path: Path) -> str:
    text = key_path.read_bytes()
    if b"BEGIN RSA PRIVATE KEY" in text:
        return "rsa"
    if b"BEGIN EC PRIVATE KEY" in text:
        return "ecdsa"
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    key = load_pem_private_key(text, None)
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ecdsa"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    return type(key).__name__


# --------------------------------------------------------------------------------------
# The process wrapper


class Peer:
    """One peer process. Subclasses build the command line and parse its output."""

    implementation: ClassVar[str] = ""
    role: ClassVar[str] = ""
    exe: ClassVar[str] = ""
    stop_grace: ClassVar[float] = 0.0   # seconds to wait after closing stdin before killing
    can_send: ClassVar[bool] = True     # can inject its own application data
    reports_handshake: ClassVar[bool] = True
    summary_settle: ClassVar[float] = 0.0  # see _settle

    def __init__(self, *, suite: str | Sequence[str] | None = None, version: str = "1.2",
                 cert: Any = None, ca: PathLike | None = None,
                 psk: tuple[str, bytes] | None = None, etm: bool = True, ems: bool = True,
                 port: int | None = None, host: str = HOST,
                 timeout: float = DEFAULT_TIMEOUT, extra_args: Sequence[str] = ()) -> None:
        if version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}, not {version!r}")
        names = [suite] if isinstance(suite, str) else list(suite or [])
        self.suites: tuple[Suite, ...] = tuple(get_suite(n) for n in names)
        if not self.suites:
            raise ValueError("give at least one suite (IANA name)")
        self.version = version
        self.cert = _cert_paths(cert)
        self.ca = Path(ca) if ca is not None else None
        if psk is None and any(s.psk for s in self.suites):
            from certs import PSK_IDENTITY, PSK_KEY
            psk = (PSK_IDENTITY, PSK_KEY)
        self.psk = psk
        self.etm = etm
        self.ems = ems
        self.host = host
        self.port = port
        self.timeout = timeout
        self.extra_args = list(extra_args)
        self.argv: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmpdir: Path | None = None
        self.handshakes: list[HandshakeInfo] = []
        self.received: list[bytes] = []   # application data lines received, without "\n"
        self.stdout_lines: list[bytes] = []
        self.stderr_lines: list[bytes] = []
        self.started_at = 0.0
        self.returncode: int | None = None
        self._cond = threading.Condition()
        self._eof = {"stdout": False, "stderr": False}
        self._partial = {"stdout": b"", "stderr": b""}
        self._readers: list[threading.Thread] = []
        self._stdin_lock = threading.Lock()
        self._stopped = False
        self._settled = 0

    # -- to override
    def _build_argv(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        return None

    def _on_line(self, stream: str, line: bytes) -> None:
        """Called with the condition held for each complete line."""

    def _after_exit(self) -> None:
        """Called once the process has ended (parse files it wrote)."""

    def key_type(self) -> str | None:
        return _key_type(self.cert[1]) if self.cert else None

    # -- description
    def describe(self) -> str:
        suites = ",".join(s.iana for s in self.suites)
        where = f"{self.host}:{self.port}" if self.port else "?"
        return (f"{self.implementation} {self.role} (DTLS {self.version}, {suites}, "
                f"{where})")

    def diagnostics(self, limit: int = 4000) -> str:
        with self._cond:
            out = b"\n".join(self.stdout_lines + ([self._partial["stdout"]]
                                                  if self._partial["stdout"] else []))
            err = b"\n".join(self.stderr_lines + ([self._partial["stderr"]]
                                                  if self._partial["stderr"] else []))
        rc = self.proc.poll() if self.proc else None

        def tail(b: bytes) -> str:
            text = b.decode("utf-8", "replace")
            return text if len(text) <= limit else "[...]" + text[-limit:]

        return (f"  command: {' '.join(self.argv)}\n  exit code: {rc}\n"
                f"  --- stdout ---\n{tail(out)}\n  --- stderr ---\n{tail(err)}")

    # -- lifecycle
    def unavailable(self) -> str | None:
        return unavailable_reason(self.implementation, self.suites, self.version, etm=self.etm,
                                  ems=self.ems, key_type=self.key_type(), role=self.role)

    def start(self) -> Peer:
        if self.proc is not None and not self._stopped:
            # A second process would replace self.proc and outlive stop().
            raise RuntimeError(f"{self.describe()} is already started")
        reason = self.unavailable()
        if reason:
            raise PeerUnavailable(f"{self.implementation} {self.role}: {reason}")
        attempts = 3 if self.role == "server" and self.port is None else 1
        for attempt in range(attempts):
            if self.role == "server" and (self.port is None or attempt):
                self.port = free_udp_port(self.host)
            self._spawn()
            if self.role != "server":
                return self
            try:
                self._wait_bound()
                return self
            except PeerError:
                text = self.diagnostics().lower()
                self.stop()
                if attempt + 1 < attempts and ("in use" in text or "bind" in text):
                    self._reset()
                    continue
                raise
        raise AssertionError("unreachable")

    def _reset(self) -> None:
        self.proc = None
        self._stopped = False
        self.handshakes.clear()
        self.received.clear()
        self.stdout_lines.clear()
        self.stderr_lines.clear()
        self._eof = {"stdout": False, "stderr": False}
        self._partial = {"stdout": b"", "stderr": b""}
        self._readers = []
        self._settled = 0

    def _spawn(self) -> None:
        if self.port is None:
            raise ValueError(f"{self.describe()}: a client needs port=")
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"dtls-{self.implementation}-{self.role}-"))
        self.argv = self._build_argv() + self.extra_args
        env = self._env()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=self.tmpdir, env=env, start_new_session=True)
        with _live_lock:
            _live.add(self)
        for name, pipe in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            t = threading.Thread(target=self._reader, args=(name, pipe), daemon=True,
                                 name=f"{self.implementation}-{self.role}-{name}")
            t.start()
            self._readers.append(t)

    def _reader(self, name: str, pipe: Any) -> None:
        fd = pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self._cond:
                if not chunk:
                    if self._partial[name]:
                        line, self._partial[name] = self._partial[name], b""
                        self._add_line(name, line)
                    self._eof[name] = True
                    self._cond.notify_all()
                    return
                data = self._partial[name] + chunk
                *lines, self._partial[name] = data.split(b"\n")
                for line in lines:
                    self._add_line(name, line)
                self._cond.notify_all()

    def _add_line(self, name: str, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        (self.stdout_lines if name == "stdout" else self.stderr_lines).append(line)
        try:
            self._on_line(name, line)
        except Exception as exc:  # noqa: BLE001  (a parser bug must not kill the reader)
            self.stderr_lines.append(f"[harness: parse error {exc!r}]".encode())

    def _exited(self) -> bool:
        return (self.proc is not None and self.proc.poll() is not None
                and all(self._eof.values()))

    def wait_for(self, predicate: Callable[[], bool], what: str,
                 timeout: float | None = None, allow_exit: bool = False) -> None:
        """Wait (bounded) until predicate() holds; PeerError on timeout or early exit."""
        if self.proc is None:
            raise PeerError(self, f"not started (waiting for {what})")
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self._cond:
            while not predicate():
                if self._exited() and not allow_exit:
                    raise PeerError(self, f"exited with code {self.proc.returncode} "
                                          f"before {what}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PeerError(self, f"timed out after {limit:g} s waiting for {what}")
                self._cond.wait(min(remaining, 0.05))

    def _wait_bound(self) -> None:
        deadline = time.monotonic() + self.timeout
        assert self.port is not None
        while not _udp_port_bound(self.port):
            if self.proc is not None and self.proc.poll() is not None:
                time.sleep(0.05)  # let the readers drain
                raise PeerError(self, f"exited with code {self.proc.returncode} before "
                                      f"binding UDP port {self.port}")
            if time.monotonic() > deadline:
                raise PeerError(self, f"did not bind UDP port {self.port} within "
                                      f"{self.timeout:g} s")
            time.sleep(0.01)

    def wait_handshake(self, n: int = 1, timeout: float | None = None) -> HandshakeInfo:
        """The n-th completed handshake (1-based), waiting for it if need be."""
        if not self.reports_handshake:
            raise PeerUnavailable(f"{self.implementation} {self.role} does not report "
                                  "its handshakes")
        self.wait_for(lambda: len([h for h in self.handshakes if h.complete]) >= n,
                      f"handshake #{n} to complete", timeout)
        if self.summary_settle and n > self._settled:
            self._settle()
            self._settled = n
        return [h for h in self.handshakes if h.complete][n - 1]

    def _settle(self) -> None:
        """Let a multi-line summary finish arriving: until stderr is quiet for
        `summary_settle` seconds (at most 0.5 s)."""
        deadline = time.monotonic() + 0.5
        with self._cond:
            count = len(self.stderr_lines)
            while time.monotonic() < deadline:
                self._cond.wait(self.summary_settle)
                if len(self.stderr_lines) == count:
                    return
                count = len(self.stderr_lines)

    def send_line(self, line: str | bytes) -> None:
        """Send one line of application data (a newline is appended)."""
        if not self.can_send:
            raise PeerUnavailable(f"{self.implementation} {self.role} cannot send its own "
                                  "application data (echo only)")
        data = line.encode() if isinstance(line, str) else bytes(line)
        if b"\n" in data:
            raise ValueError("send one line at a time, without a newline")
        self._write_stdin(data + b"\n")

    def _write_stdin(self, data: bytes) -> None:
        if self.proc is None or self.proc.stdin is None:
            raise PeerError(self, "not started")
        if self.proc.poll() is not None:
            raise PeerError(self, f"exited with code {self.proc.returncode}; cannot send")
        with self._stdin_lock:
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError) as exc:
                raise PeerError(self, f"could not write to stdin: {exc}") from None

    def expect_line(self, line: str | bytes, timeout: float | None = None) -> None:
        """Wait until the peer has received this exact line of application data."""
        want = line.encode() if isinstance(line, str) else bytes(line)
        self.wait_for(lambda: want in self.received, f"application data line {want!r}",
                      timeout)

    def exchange(self, line: str | bytes, timeout: float | None = None) -> None:
        """Client helper: send a line and wait for it to come back (peer server echoes)."""
        self.send_line(line)
        self.expect_line(line, timeout)

    def wait_exit(self, timeout: float | None = None) -> int:
        """Wait for the process to end by itself; its exit code."""
        self.wait_for(self._exited, "the process to exit", timeout, allow_exit=True)
        self.stop()
        assert self.returncode is not None
        return self.returncode

    def stop(self) -> int | None:
        """Stop the process (close stdin, grace, SIGTERM, SIGKILL); idempotent."""
        proc = self.proc
        if proc is None or self._stopped:
            return self.returncode
        self._stopped = True
        try:
            if proc.stdin is not None:
                with self._stdin_lock, contextlib.suppress(OSError, ValueError):
                    proc.stdin.close()
            if self.stop_grace and proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(self.stop_grace)
            for sig, wait in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0)):
                if proc.poll() is not None:
                    break
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)  # our own child's group (start_new_session)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(wait)
            self.returncode = proc.poll()
            for t in self._readers:
                t.join(2.0)
            for pipe in (proc.stdout, proc.stderr):
                with contextlib.suppress(Exception):
                    pipe.close()  # type: ignore[union-attr]
            with contextlib.suppress(Exception):
                self._after_exit()
        finally:
            with _live_lock:
                _live.discard(self)
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
        return self.returncode

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


# --------------------------------------------------------------------------------------
# OpenSSL


def parse_openssl_trace(text: str) -> list[tuple[str, str, list[str]]]:
    """`-trace` output -> [(direction 'sent'/'received', message name, [extension names])]."""
    messages: list[tuple[str, str, list[str]]] = []
    direction = ""
    for line in text.splitlines():
        if line.startswith("Sent Record"):
            direction = "sent"
        elif line.startswith("Received Record"):
            direction = "received"
        else:
            m = re.match(r"^    (\w+), Length=\d+", line)
            if m:
                messages.append((direction, m.group(1), []))
                continue
            m = re.match(r"^\s+extension_type=(\w+)\(\d+\)", line)
            if m and messages:
                messages[-1][2].append(m.group(1))
    return messages


class _OpenSSLPeer(Peer):
    implementation = "openssl"
    exe = "openssl"
    summary_settle = 0.05  # -brief prints "Ciphersuite:" first, the peer certificate after

    def __init__(self, *, trace: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.trace = trace
        self.trace_text = ""

    def _common_args(self) -> list[str]:
        args = ["-dtls1" if self.version == "1.0" else "-dtls1_2",
                "-cipher", openssl_cipher_string(self.suites, self.version), "-brief"]
        if not self.etm:
            args.append("-no_etm")
        if self.psk:
            args += ["-psk_identity", self.psk[0], "-psk", self.psk[1].hex()]
        if self.trace:
            assert self.tmpdir is not None
            args += ["-trace", "-msgfile", str(self.tmpdir / "trace.txt")]
        return args

    def _env(self) -> dict[str, str] | None:
        if self.ems:
            return None
        assert self.tmpdir is not None
        conf = self.tmpdir / "openssl-no-ems.cnf"
        conf.write_text(
            "openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n"
            "[ssl_sect]\nsystem_default = system_default_sect\n"
            "[system_default_sect]\nOptions = -ExtendedMasterSecret\n")
        return {**os.environ, "OPENSSL_CONF": str(conf)}

    def _on_line(self, stream: str, line: bytes) -> None:
        if stream == "stdout":
            self._on_data(line)
            return
        text = line.decode("utf-8", "replace")
        if text.startswith("Protocol version: "):
            self.handshakes.append(HandshakeInfo(version=_version_label(text.split(": ", 1)[1])))
        if not self.handshakes:
            return
        h = self.handshakes[-1]
        h.raw.append(text)
        if text.startswith("Ciphersuite: "):
            h.cipher = text.split(": ", 1)[1]
            try:
                h.iana = get_suite(h.cipher).iana
            except KeyError:
                h.iana = None
        elif text.startswith("Peer certificate: "):
            h.peer_certificate = text.split(": ", 1)[1]
        elif text == "No peer certificate":
            h.peer_certificate = ""
        elif text.startswith("Verification: "):
            h.verified = text.endswith(": OK")
        elif text.startswith("Verification error: "):
            h.verified = False

    def _on_data(self, line: bytes) -> None:
        self.received.append(line)

    def _after_exit(self) -> None:
        if not self.trace or self.tmpdir is None:
            return
        path = self.tmpdir / "trace.txt"
        self.trace_text = path.read_text("utf-8", "replace") if path.exists() else ""
        self._apply_trace(parse_openssl_trace(self.trace_text))

    def _apply_trace(self, messages: list[tuple[str, str, list[str]]]) -> None:
        """Fill resumed/etm/ems of each handshake from the trace (after the process ended)."""
        mine = "received" if self.role == "client" else "sent"
        hellos = [i for i, m in enumerate(messages) if m[1] == "ServerHello" and m[0] == mine]
        for n, i in enumerate(hellos):
            if n >= len(self.handshakes):
                break
            end = hellos[n + 1] if n + 1 < len(hellos) else len(messages)
            later = {m[1] for m in messages[i + 1:end] if m[0] == mine}
            h = self.handshakes[n]
            exts = messages[i][2]
            h.resumed = "ServerHelloDone" not in later
            h.etm = "encrypt_then_mac" in exts
            h.ems = "extended_master_secret" in exts


class OpenSSLServer(_OpenSSLPeer):
    """``openssl s_server``; echoes every line back when `echo` (default)."""

    role = "server"

    def __init__(self, *, echo: bool = True, client_auth: str | None = None,
                 no_ticket: bool = False, naccept: int | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        if client_auth not in (None, "request", "require"):
            raise ValueError("client_auth: None, 'request' or 'require'")
        if client_auth and self.ca is None:
            raise ValueError("client_auth needs ca= (the CA that issued client certificates)")
        if self.cert is None and not all(s.psk for s in self.suites):
            raise ValueError("a certificate suite needs cert=")
        self.echo = echo
        self.client_auth = client_auth
        self.no_ticket = no_ticket
        self.naccept = naccept

    def _build_argv(self) -> list[str]:
        argv = [self.exe, "s_server", "-accept", f"{self.host}:{self.port}",
                *self._common_args()]
        if self.cert:
            argv += ["-cert", str(self.cert[0]), "-key", str(self.cert[1])]
        else:
            argv.append("-nocert")
        if self.ca is not None:
            argv += ["-CAfile", str(self.ca)]
        if self.client_auth == "require":
            argv += ["-Verify", "1", "-verify_return_error"]
        elif self.client_auth == "request":
            argv += ["-verify", "1"]
        if self.no_ticket:
            argv.append("-no_ticket")
        if self.naccept:
            argv += ["-naccept", str(self.naccept)]
        return argv

    def _on_data(self, line: bytes) -> None:
        self.received.append(line)
        if self.echo:  # s_server has no echo mode: relay its stdout back into its stdin
            with contextlib.suppress(PeerError):
                self._write_stdin(line + b"\n")


class OpenSSLClient(_OpenSSLPeer):
    """``openssl s_client``: stdin lines -> server, server's data -> `received`."""

    role = "client"
    stop_grace = 2.0   # exits by itself on stdin EOF, flushing its trace file

    def __init__(self, *, server_name: str | None = "localhost",
                 sess_out: PathLike | None = None, sess_in: PathLike | None = None,
                 no_ticket: bool = False, trace: bool = True, **kw: Any) -> None:
        super().__init__(trace=trace, **kw)
        self.server_name = server_name
        self.sess_out = sess_out
        self.sess_in = sess_in
        self.no_ticket = no_ticket

    def _build_argv(self) -> list[str]:
        argv = [self.exe, "s_client", "-connect", f"{self.host}:{self.port}", "-nocommands",
                *self._common_args()]
        if self.server_name and not re.fullmatch(r"[\d.]+|[0-9a-fA-F:]+", self.server_name):
            argv += ["-servername", self.server_name]
        else:
            argv.append("-noservername")
        if self.ca is not None:
            argv += ["-CAfile", str(self.ca), "-verify_return_error"]
            if self.server_name:
                argv += ["-verify_ip" if re.fullmatch(r"[\d.]+", self.server_name)
                         else "-verify_hostname", self.server_name]
        if self.cert:
            argv += ["-cert", str(self.cert[0]), "-key", str(self.cert[1])]
        if self.sess_out:
            argv += ["-sess_out", str(self.sess_out)]
        if self.sess_in:
            argv += ["-sess_in", str(self.sess_in)]
        if self.no_ticket:
            argv.append("-no_ticket")
        return argv


# --------------------------------------------------------------------------------------
# GnuTLS


def _parse_gnutls_description(desc: str) -> tuple[str | None, list[str]]:
    """'(DTLS1.2-X.509)-(ECDHE-SECP256R1)-(ECDSA-SHA256)-(AES-128-GCM)' -> ('1.2', parts)."""
    parts = re.findall(r"\(([^)]*)\)", desc)
    version = None
    if parts:
        version = _version_label(parts[0].split("-", 1)[0])
    return version, parts


class _GnuTLSPeer(Peer):
    implementation = "gnutls"

    def _priority(self) -> str:
        return gnutls_priority(self.suites, self.version, etm=self.etm, ems=self.ems)

    def _iana_from(self, parts: list[str]) -> str | None:
        """Map the Description back to one of the suites we allowed."""
        words = set(parts[1:])
        for s in self.suites:
            kx, cipher, mac = s.gnutls
            if cipher not in words or (mac != "AEAD" and mac not in words):
                continue
            if kx == "PSK" and any(p.startswith("ECDHE") for p in parts[1:]):
                continue
            if kx == "ECDHE-PSK" and not any(p.startswith("ECDHE") for p in parts[1:]):
                continue
            return s.iana
        return None


class GnuTLSServer(_GnuTLSPeer):
    """``gnutls-serv --udp --echo``: echoes; cannot send its own data."""

    role = "server"
    exe = "gnutls-serv"
    can_send = False
    reports_handshake = False  # prints nothing about DTLS handshakes

    def __init__(self, *, client_auth: str | None = None, cookie: bool = True,
                 no_ticket: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        if client_auth not in (None, "request", "require"):
            raise ValueError("client_auth: None, 'request' or 'require'")
        if client_auth and self.ca is None:
            raise ValueError("client_auth needs ca=")
        if self.cert is None and not all(s.psk for s in self.suites):
            raise ValueError("a certificate suite needs cert=")
        self.client_auth = client_auth
        self.cookie = cookie
        self.no_ticket = no_ticket

    def _build_argv(self) -> list[str]:
        assert self.tmpdir is not None
        argv = [self.exe, "--udp", "--echo", "-p", str(self.port),
                f"--priority={self._priority()}"]
        if self.cert:
            argv += [f"--x509certfile={self.cert[0]}", f"--x509keyfile={self.cert[1]}"]
        if self.psk:
            passwd = self.tmpdir / "psk-passwd.txt"
            passwd.write_text(f"{self.psk[0]}:{self.psk[1].hex()}\n")
            argv.append(f"--pskpasswd={passwd}")
        if self.ca is not None:
            argv.append(f"--x509cafile={self.ca}")
        if self.client_auth == "require":
            argv.append("--require-client-cert")
        elif self.client_auth == "request":
            argv.append("--verify-client-cert")
        else:
            argv.append("--disable-client-cert")
        if not self.cookie:
            argv.append("--nocookie")
        if self.no_ticket:
            argv.append("--noticket")
        return argv

    def _on_line(self, stream: str, line: bytes) -> None:
        # The echo server logs "*** Processing N bytes command: <data>" on stderr.
        prefix = b"*** Processing "
        if line.startswith(prefix) and b" command: " in line:
            self.received.append(line.split(b" command: ", 1)[1])


class GnuTLSClient(_GnuTLSPeer):
    """``gnutls-cli --udp``: stdin lines -> server, server's data -> `received`."""

    role = "client"
    exe = "gnutls-cli"
    stop_grace = 0.2  # does not exit on stdin EOF in UDP mode

    def __init__(self, *, server_name: str | None = "localhost", resume: bool = False,
                 no_ticket: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.server_name = server_name
        self.resume = resume
        self.no_ticket = no_ticket
        self._data_mode = False
        self._pending_cipher = ""

    def _build_argv(self) -> list[str]:
        argv = [self.exe, "--udp", "-p", str(self.port), self.host,
                f"--priority={self._priority()}"]
        if self.ca is not None:
            argv.append(f"--x509cafile={self.ca}")
            if self.server_name:
                argv.append(f"--verify-hostname={self.server_name}")
        else:
            argv.append("--insecure")
        if self.server_name and not re.fullmatch(r"[\d.]+", self.server_name):
            argv.append(f"--sni-hostname={self.server_name}")
        if self.cert:
            argv += [f"--x509certfile={self.cert[0]}", f"--x509keyfile={self.cert[1]}"]
        if self.psk:
            argv += [f"--pskusername={self.psk[0]}", f"--pskkey={self.psk[1].hex()}"]
        if self.resume:
            argv.append("--resume")
        if self.no_ticket:
            argv.append("--noticket")
        return argv

    def _on_line(self, stream: str, line: bytes) -> None:
        if stream != "stdout":
            return
        if self._data_mode:
            self.received.append(line)
            return
        text = line.decode("utf-8", "replace")
        if text.startswith("- Simple Client Mode:"):
            self._data_mode = True
            return
        if text.startswith("Connecting to "):
            self.handshakes.append(HandshakeInfo(resumed=False))  # one per connection
        if not self.handshakes:
            return
        h = self.handshakes[-1]
        h.raw.append(text)
        if text.startswith("- Description: "):
            version, parts = _parse_gnutls_description(text.split(": ", 1)[1])
            h.version = version
            h.iana = self._iana_from(parts)
            self._pending_cipher = text.split(": ", 1)[1]
        elif text.startswith("- Options: "):
            opts = text.split(": ", 1)[1]
            h.ems = "extended master secret" in opts
            h.etm = "EtM" in opts
        elif text.startswith("- Status: "):
            h.verified = "is trusted" in text
        elif text.startswith(" - subject ") and h.peer_certificate is None:
            h.peer_certificate = text.split("`", 1)[1].split("'", 1)[0] if "`" in text else text
        elif text == "*** This is a resumed session":
            h.resumed = True
        elif text in ("- Handshake was completed", "- Resume Handshake was completed"):
            # The last line gnutls-cli prints about a handshake (after Description and
            # Options): only now is the HandshakeInfo complete.
            h.resumed = text.startswith("- Resume")
            h.cipher = self._pending_cipher

    def wait_handshake(self, n: int | None = None, timeout: float | None = None
                       ) -> HandshakeInfo:
        """With resume=True the default is the second (resumed) handshake."""
        return super().wait_handshake(n or (2 if self.resume else 1), timeout)

    def send_line(self, line: str | bytes) -> None:
        # Input typed before the (last) handshake ends would be read too early.
        self.wait_for(lambda: self._data_mode, "gnutls-cli to enter data mode")
        super().send_line(line)


# --------------------------------------------------------------------------------------
# mbed TLS (python-mbedtls) in a child process


class _MbedTLSPeer(Peer):
    implementation = "mbedtls"

    def _config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "role": self.role, "host": self.host, "port": self.port, "version": self.version,
            "ciphers": [s.mbedtls for s in self.suites], "timeout": self.timeout,
        }
        if self.cert:
            cfg["cert"] = str(self.cert[0])
            cfg["key"] = str(self.cert[1])
            cfg["key_type"] = self.key_type()
        if self.ca is not None:
            cfg["ca"] = str(self.ca)
        if self.psk:
            cfg["psk"] = [self.psk[0], self.psk[1].hex()]
        return cfg

    def _build_argv(self) -> list[str]:
        return [sys.executable, "-u", str(Path(__file__).resolve()), "mbedtls-worker",
                json.dumps(self._config())]

    def _on_line(self, stream: str, line: bytes) -> None:
        if stream == "stdout":
            self.received.append(line)
            return
        text = line.decode("utf-8", "replace")
        if text.startswith("mbedtls: handshake "):
            fields = dict(kv.split("=", 1) for kv in text.split()[2:] if "=" in kv)
            h = HandshakeInfo(version=_version_label(fields.get("version", "")),
                              cipher=fields.get("cipher"), raw=[text])
            with contextlib.suppress(KeyError):
                h.iana = get_suite(h.cipher or "").iana
            self.handshakes.append(h)


class MbedTLSServer(_MbedTLSPeer):
    """python-mbedtls DTLS server (HelloVerifyRequest cookies); echoes every record, and
    sends stdin lines (send_line) to the current connection."""

    role = "server"

    def __init__(self, *, client_auth: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        if client_auth not in (None, "require"):
            raise ValueError("python-mbedtls servers support client_auth None or 'require'")
        if client_auth and self.ca is None:
            raise ValueError("client_auth needs ca=")
        if self.cert is None and not all(s.psk for s in self.suites):
            raise ValueError("a certificate suite needs cert=")
        self.client_auth = client_auth

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "client_auth": self.client_auth}


class MbedTLSClient(_MbedTLSPeer):
    """python-mbedtls DTLS client."""

    role = "client"
    stop_grace = 0.5  # sends close_notify and exits on stdin EOF

    def __init__(self, *, server_name: str | None = "localhost", **kw: Any) -> None:
        super().__init__(**kw)
        self.server_name = server_name

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "server_name": self.server_name}


PEER_CLASSES: dict[tuple[str, str], type[Peer]] = {
    ("openssl", "server"): OpenSSLServer, ("openssl", "client"): OpenSSLClient,
    ("gnutls", "server"): GnuTLSServer, ("gnutls", "client"): GnuTLSClient,
    ("mbedtls", "server"): MbedTLSServer, ("mbedtls", "client"): MbedTLSClient,
}


def peer_class(implementation: str, role: str) -> Callable[..., Peer]:
    """The class for ('openssl'|'gnutls'|'mbedtls', 'server'|'client')."""
    return PEER_CLASSES[(implementation, role)]


# --------------------------------------------------------------------------------------
# The mbed TLS worker (runs in the child: stdlib + mbedtls only)


def _mbedtls_worker(cfg: dict[str, Any]) -> int:
    import select

    from mbedtls import pk, x509
    from mbedtls.tls import (
        ClientContext,
        DTLSConfiguration,
        DTLSVersion,
        HelloVerifyRequest,
        ServerContext,
        TrustStore,
    )

    def log(msg: str) -> None:
        sys.stderr.write(f"mbedtls: {msg}\n")
        sys.stderr.flush()

    version = DTLSVersion.DTLSv1_0 if cfg["version"] == "1.0" else DTLSVersion.DTLSv1_2
    kw: dict[str, Any] = {
        "ciphers": tuple(cfg["ciphers"]), "lowest_supported_version": version,
        "highest_supported_version": version, "handshake_timeout_min": 0.5,
        "handshake_timeout_max": 4.0}
    if "cert" in cfg:
        key_cls = pk.RSA if cfg.get("key_type") == "rsa" else pk.ECC
        kw["certificate_chain"] = ((x509.CRT.from_file(cfg["cert"]),),
                                   key_cls.from_file(cfg["key"]))
    if "ca" in cfg:
        kw["trust_store"] = TrustStore.from_pem_file(cfg["ca"])
    if cfg["role"] == "client":
        kw["validate_certificates"] = "ca" in cfg
        if "psk" in cfg:
            kw["pre_shared_key"] = (cfg["psk"][0], bytes.fromhex(cfg["psk"][1]))
    else:
        kw["validate_certificates"] = cfg.get("client_auth") == "require"
        if "psk" in cfg:
            kw["pre_shared_key_store"] = {cfg["psk"][0]: bytes.fromhex(cfg["psk"][1])}
    conf = DTLSConfiguration(**kw)
    timeout = float(cfg["timeout"])
    addr = (cfg["host"], int(cfg["port"]))

    def report(conn: Any) -> None:
        cipher = conn.cipher()
        name = cipher if isinstance(cipher, str) else cipher[0]
        log(f"handshake version={conn.negotiated_tls_version().name} cipher={name}")

    stdin_open = True
    stdin_pending = b""

    def pump(conn: Any, echo: bool) -> None:
        """Relay stdin lines -> conn and conn records -> stdout (and echo them if server).
        A client ends (close_notify) when stdin closes; a server just stops reading it."""
        nonlocal stdin_open, stdin_pending
        stdin_fd = sys.stdin.fileno()
        while True:
            fds = [conn.fileno()] + ([stdin_fd] if stdin_open else [])
            readable, _, _ = select.select(fds, [], [], 0.5)
            if conn.fileno() in readable:
                try:
                    data = conn.recv(65536)
                except Exception as exc:  # noqa: BLE001  (close_notify, alert, peer gone)
                    log(f"connection ended: {type(exc).__name__}: {exc}")
                    return
                if data:
                    sys.stdout.buffer.write(data)
                    sys.stdout.buffer.flush()
                    if echo:
                        conn.send(data)
            if stdin_open and stdin_fd in readable:
                chunk = os.read(stdin_fd, 65536)
                if not chunk:
                    stdin_open = False
                    if echo:
                        continue
                    log("stdin closed; sending close_notify")
                    with contextlib.suppress(Exception):
                        conn.shutdown(socket.SHUT_RDWR)
                    return
                stdin_pending += chunk
                while b"\n" in stdin_pending:
                    line, stdin_pending = stdin_pending.split(b"\n", 1)
                    conn.send(line + b"\n")

    if cfg["role"] == "client":
        sock = ClientContext(conf).wrap_socket(
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
            server_hostname=cfg.get("server_name"))
        sock.settimeout(timeout)
        sock.connect(addr)
        sock.do_handshake()
        sock.settimeout(None)
        report(sock)
        pump(sock, echo=False)
        return 0

    listener = ServerContext(conf).wrap_socket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(addr)
    log(f"listening on {addr[0]}:{addr[1]}")
    while True:  # one connection after another, like s_server
        conn, client = listener.accept()
        conn.setcookieparam(client[0].encode("ascii"))
        try:
            conn.do_handshake()
        except HelloVerifyRequest:
            log(f"HelloVerifyRequest sent to {client[0]}:{client[1]}")
            first, (conn, client) = conn, conn.accept()
            first.close()
            conn.setcookieparam(client[0].encode("ascii"))
        conn.settimeout(timeout)
        try:
            conn.do_handshake()
        except Exception as exc:  # noqa: BLE001  (report it, serve the next client)
            log(f"handshake failed: {type(exc).__name__}: {exc}")
            conn.close()
            continue
        conn.settimeout(None)
        report(conn)
        pump(conn, echo=True)
        with contextlib.suppress(Exception):
            conn.close()


def _probe_report() -> str:
    lines = []
    for name, ver in tool_versions().items():
        lines.append(f"{name:8} {ver}")
        for v in VERSIONS:
            eligible = [s for s in SUITES.values() if v == "1.2" or s.dtls10]
            ok = [s.iana for s in eligible if unavailable_reason(name, [s], v) is None]
            missing = [s.iana for s in eligible if s.iana not in ok]
            lines.append(f"    DTLS {v}: {len(ok)}/{len(eligible)} of our suites usable with it"
                         + (f" (missing: {', '.join(missing)})" if missing else ""))
        for what, kw in (("etm=False", {"etm": False}), ("ems=False", {"ems": False})):
            r = unavailable_reason(name, [], "1.2", **kw)  # type: ignore[arg-type]
            lines.append(f"    {what}: {'yes' if r is None else 'no (' + r + ')'}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "mbedtls-worker":
        try:
            sys.exit(_mbedtls_worker(json.loads(sys.argv[2])))
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001  (reported on stderr for PeerError)
            sys.stderr.write(f"mbedtls: error: {type(exc).__name__}: {exc}\n")
            sys.exit(1)
    elif len(sys.argv) >= 2 and sys.argv[1] == "probe":
        print(_probe_report())
    else:
        sys.exit("usage: python tests/peers.py probe | mbedtls-worker JSON")
