"""Peer certificate verification: a pinned SHA-256 fingerprint or a CA store.

Two verifiers with one interface (`CertificateVerifier.verify(chain, server_name)` ->
leaf certificate, or raise):

* `PinnedFingerprintVerifier`: the WebRTC model (RFC 8122 5, RFC 8827 6.5): the peer's
  certificate may be self-signed; what authenticates it is that the SHA-256 of its DER
  encoding equals a fingerprint learned out of band.
* `CaVerifier`: chain building and path validation with `cryptography.x509.verification`
  (RFC 5280 6, plus the CA/B-style profile it enforces) and the RFC 6125 hostname check
  against the server_name we sent.

Failures raise an `AlertError` whose description is the alert RFC 5246 7.2.2 names for
it (bad_certificate, unknown_ca, certificate_expired), and whose message says why.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Literal, Protocol

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from .alerts import AlertDescription, AlertError

__all__ = [
    "BadCertificate", "CaVerifier", "CertificateExpired", "CertificateVerifier",
    "PinnedFingerprintVerifier", "UnknownCA", "fingerprint_sha256", "load_leaf",
]


class BadCertificate(AlertError):
    description = AlertDescription.bad_certificate


class UnknownCA(AlertError):
    description = AlertDescription.unknown_ca


class CertificateExpired(AlertError):
    description = AlertDescription.certificate_expired


def fingerprint_sha256(cert: bytes | x509.Certificate) -> bytes:
    """SHA-256 over the certificate's DER encoding (RFC 8122 5 / RFC 4572 5)."""
    der = cert if isinstance(cert, bytes) else cert.public_bytes(Encoding.DER)
    return hashlib.sha256(der).digest()


PARSE_ERRORS = (ValueError, KeyError, TypeError, x509.InvalidVersion, x509.DuplicateExtension,
                UnsupportedAlgorithm)
"""What cryptography raises on malformed certificate bytes (parsing is partly lazy)."""


def load_leaf(chain: Sequence[bytes]) -> x509.Certificate:
    """The sender's certificate (first in the list, RFC 5246 7.4.2), parsed."""
    if not chain:
        raise BadCertificate("the peer sent no certificate")
    try:
        leaf = x509.load_der_x509_certificate(chain[0])
        leaf.public_key()  # parsed lazily: an unusable key must fail here, as an alert
    except PARSE_ERRORS as exc:
        raise BadCertificate(f"the peer certificate does not parse: {exc}") from None
    return leaf


class CertificateVerifier(Protocol):
    """Decides whether a peer's Certificate message authenticates it."""

    def verify(self, chain: Sequence[bytes], server_name: str | None) -> x509.Certificate:
        """The verified leaf; an AlertError naming the reason otherwise."""
        ...


class PinnedFingerprintVerifier:
    """Accepts exactly the certificates whose SHA-256 fingerprint is pinned."""

    def __init__(self, fingerprints: Iterable[bytes]) -> None:
        self.fingerprints = tuple(bytes(f) for f in fingerprints)
        if not self.fingerprints or any(len(f) != 32 for f in self.fingerprints):
            raise ValueError("pin at least one fingerprint, each 32 bytes (SHA-256)")

    def verify(self, chain: Sequence[bytes], server_name: str | None) -> x509.Certificate:
        leaf = load_leaf(chain)
        actual = hashlib.sha256(chain[0]).digest()
        # Compare against every pin so timing says nothing about which one came close.
        matched = False
        for pin in self.fingerprints:
            matched |= hmac.compare_digest(actual, pin)
        if not matched:
            raise BadCertificate(
                f"peer certificate SHA-256 fingerprint {actual.hex(':')} matches no pinned "
                "fingerprint")
        return leaf


class CaVerifier:
    """Path validation to one of `roots` with the profile for the peer's role.

    `peer="server"` (a client checking its server): serverAuth profile, and with
    `check_hostname` the name must match `server_name` (RFC 6125; an IP literal is checked
    against iPAddress subjectAltNames, RFC 5280 4.2.1.6).  Without the hostname check the
    chain is still validated, and the leaf's own first subjectAltName stands in for the
    name, because cryptography's server verifier always wants one.
    `peer="client"` (a server checking client certificates): clientAuth profile, no name.
    """

    def __init__(self, roots: Iterable[x509.Certificate], *, check_hostname: bool = True,
                 peer: Literal["server", "client"] = "server") -> None:
        self.roots = tuple(roots)
        if not self.roots:
            raise ValueError("CaVerifier needs at least one root certificate")
        if peer not in ("server", "client"):
            raise ValueError("peer must be 'server' or 'client'")
        self.check_hostname = check_hostname and peer == "server"
        self.peer = peer
        self._store = Store(list(self.roots))

    def verify(self, chain: Sequence[bytes], server_name: str | None) -> x509.Certificate:
        key = (self.roots, self.peer, self.check_hostname,
               server_name if self.check_hostname else None, tuple(bytes(c) for c in chain))
        leaf = _VERIFIED.get(key)
        if leaf is not None:
            return leaf
        leaf = load_leaf(chain)
        try:
            intermediates = [x509.load_der_x509_certificate(c) for c in chain[1:]]
        except PARSE_ERRORS as exc:
            raise BadCertificate(f"an intermediate certificate does not parse: {exc}") from None
        builder = PolicyBuilder().store(self._store)
        try:
            if self.peer == "client":
                builder.build_client_verifier().verify(leaf, intermediates)
            else:
                if self.check_hostname:
                    if not server_name:
                        raise BadCertificate("hostname check requested but no server_name set")
                    subject = _subject(server_name)
                else:
                    subject = _own_name(leaf)
                builder.build_server_verifier(subject).verify(leaf, intermediates)
        except VerificationError as exc:
            raise _classify(str(exc)) from None
        except PARSE_ERRORS as exc:  # malformed fields found while verifying
            raise BadCertificate(f"the peer certificate does not parse: {exc}") from None
        _VERIFIED.put(key, leaf, [leaf, *intermediates, *self.roots])
        return leaf


class _VerifiedChains:
    """Chains that passed `CaVerifier.verify`, so that a peer seen again (a client that
    reconnects to its server, a server whose clients share a certificate) costs a dict
    lookup instead of path validation (~50 us of native code, one of the largest costs of
    a full handshake).

    The answer is the same as validating again: the key holds everything validation looks
    at (the exact DER of the chain, the roots, the profile, the name) except the time, and
    an entry is used only while the time is within the validity of every certificate that
    could be on the path (the chain's and the roots'), so no expiry can be missed.  Only
    successes are kept.  Bounded: the oldest entry goes first.  Shared by all verifiers,
    because a configuration builds one per connection; a lock keeps it consistent across
    threads.
    """

    MAX_ENTRIES = 64

    def __init__(self) -> None:
        self._entries: dict[object, tuple[x509.Certificate, datetime, datetime]] = {}
        self._lock = threading.Lock()

    def get(self, key: object) -> x509.Certificate | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        leaf, not_before, not_after = entry
        if not not_before <= datetime.now(timezone.utc) <= not_after:
            with self._lock:
                self._entries.pop(key, None)
            return None
        return leaf

    def put(self, key: object, leaf: x509.Certificate,
            certificates: Iterable[x509.Certificate]) -> None:
        certificates = list(certificates)
        not_before = max(c.not_valid_before_utc for c in certificates)
        not_after = min(c.not_valid_after_utc for c in certificates)
        if not not_before <= datetime.now(timezone.utc) <= not_after:
            return  # some certificate is outside its validity: nothing to reuse
        with self._lock:
            if key not in self._entries and len(self._entries) >= self.MAX_ENTRIES:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = (leaf, not_before, not_after)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_VERIFIED = _VerifiedChains()


def _own_name(leaf: x509.Certificate) -> x509.DNSName | x509.IPAddress:
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise BadCertificate("server certificate has no subjectAltName") from None
    for name in names:
        if isinstance(name, (x509.DNSName, x509.IPAddress)):
            return name
    raise BadCertificate("server certificate has no DNS or IP subjectAltName")


@functools.lru_cache(maxsize=64)
def _subject(name: str) -> x509.DNSName | x509.IPAddress:
    """The general name to check `name` against.  Cached (bounded; the names are immutable):
    a client checks the same configured server_name on every handshake, and telling a host
    name from an IP literal costs a failed ipaddress parse."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _classify(message: str) -> AlertError:
    """Map a cryptography verification failure onto the alert RFC 5246 7.2.2 defines."""
    lowered = message.lower()
    if "subjectaltname" in lowered or "san" in lowered.split():
        return BadCertificate(f"certificate does not match the server name: {message}")
    if "expired" in lowered or "not valid at" in lowered or "validity" in lowered:
        return CertificateExpired(message)
    if "candidates exhausted" in lowered or "issuer" in lowered:
        return UnknownCA(f"no path to a trusted root: {message}")
    return BadCertificate(message)

