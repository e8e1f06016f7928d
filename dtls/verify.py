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

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

from cryptography import x509
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


def load_leaf(chain: Sequence[bytes]) -> x509.Certificate:
    """The sender's certificate (first in the list, RFC 5246 7.4.2), parsed."""
    if not chain:
        raise BadCertificate("the peer sent no certificate")
    try:
        return x509.load_der_x509_certificate(chain[0])
    except ValueError as exc:
        raise BadCertificate(f"the peer certificate does not parse: {exc}") from None


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
        leaf = load_leaf(chain)
        try:
            intermediates = [x509.load_der_x509_certificate(c) for c in chain[1:]]
        except ValueError as exc:
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
        return leaf


def _own_name(leaf: x509.Certificate) -> x509.DNSName | x509.IPAddress:
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise BadCertificate("server certificate has no subjectAltName") from None
    for name in names:
        if isinstance(name, (x509.DNSName, x509.IPAddress)):
            return name
    raise BadCertificate("server certificate has no DNS or IP subjectAltName")


def _subject(name: str) -> x509.DNSName | x509.IPAddress:
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

