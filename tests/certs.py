"""Test PKI for the interop suite, made with `cryptography` (no openssl CLI needed).

`generate_pki(directory)` writes PEM files and returns the objects:

* ``ca``           -- root CA, ECDSA P-256, self-signed ("DTLS Test Root CA")
* ``other_ca``     -- an unrelated root CA, ECDSA P-256 ("DTLS Other Root CA")
* ``server_ecdsa`` -- ECDSA P-256 server leaf: CN localhost, SAN DNS:localhost, IP:127.0.0.1
* ``server_rsa``   -- RSA-2048 server leaf, same names
* ``server_ed25519`` -- Ed25519 server leaf, same names (TLS 1.2 use per RFC 8422)
* ``client_ecdsa`` -- ECDSA P-256 client leaf: CN dtls-test-client, SAN DNS:client.localhost,
  EKU clientAuth
* ``client_ed25519`` -- Ed25519 client leaf, same names and EKU as ``client_ecdsa``
  (CertificateVerify over the handshake messages, RFC 8422 5.8)
* ``expired``      -- ECDSA P-256 server leaf for localhost signed by ``ca``, expired
  yesterday (negative tests: certificate_expired)
* ``foreign``      -- ECDSA P-256 server leaf for localhost signed by ``other_ca``
  (negative tests: unknown_ca)

Every leaf is issued by a CA with SKI/AKI, critical basicConstraints and keyUsage, and an
EKU, so `cryptography.x509.verification` (which `dtls.verify.CaVerifier` uses) accepts the
good ones. Files, in `directory`:

    ca.pem ca.key other-ca.pem other-ca.key
    <name>.pem (leaf only) <name>.key (PKCS#8) <name>-chain.pem (leaf + issuing CA)

for each leaf name above (with ``-`` instead of ``_``: server-ecdsa.pem, ...).

Caching: `cached_pki()` generates once per process into a temporary directory removed at
exit (for scripts such as the interop matrix); the pytest fixture in
`tests/interop_fixtures.py` generates once per test session under pytest's tmp_path_factory.
RSA-2048 key generation is the slow part (~0.1-1 s); everything else is instant.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import ipaddress
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "PKI",
    "PSK_IDENTITY",
    "PSK_KEY",
    "PSK_KEY_HEX",
    "Authority",
    "Leaf",
    "PrivateKey",
    "cached_pki",
    "generate_pki",
]

PrivateKey: TypeAlias = (
    ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey)

PSK_IDENTITY = "dtls-test-client"
"""PSK identity every peer and our stack use in PSK tests."""
PSK_KEY = bytes.fromhex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
"""32-byte PSK shared by PSK tests (peers take it as hex)."""
PSK_KEY_HEX = PSK_KEY.hex()

SERVER_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class Authority:
    name: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Leaf:
    name: str
    cert: x509.Certificate
    key: PrivateKey
    issuer: Authority
    cert_path: Path   # the leaf alone, PEM
    key_path: Path    # PKCS#8 PEM, unencrypted
    chain_path: Path  # leaf then issuing CA, PEM

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    @property
    def key_type(self) -> str:
        """'ecdsa', 'rsa' or 'ed25519'."""
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return "ecdsa"
        if isinstance(self.key, rsa.RSAPrivateKey):
            return "rsa"
        return "ed25519"


@dataclass(frozen=True)
class PKI:
    directory: Path
    ca: Authority
    other_ca: Authority
    server_ecdsa: Leaf
    server_rsa: Leaf
    server_ed25519: Leaf
    client_ecdsa: Leaf
    client_ed25519: Leaf
    expired: Leaf
    foreign: Leaf

    def server_for(self, auth: str) -> Leaf:
        """The server leaf for an authentication kind: 'ecdsa', 'rsa' or 'ed25519'."""
        return {"ecdsa": self.server_ecdsa, "rsa": self.server_rsa,
                "ed25519": self.server_ed25519}[auth]

    @property
    def leaves(self) -> tuple[Leaf, ...]:
        return (self.server_ecdsa, self.server_rsa, self.server_ed25519, self.client_ecdsa,
                self.client_ed25519, self.expired, self.foreign)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _sign_hash(issuer_key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def _make_ca(directory: Path, stem: str, common_name: str, now: _dt.datetime) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dtls tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    _write(key_path, _key_pem(key), private=True)
    return Authority(stem, cert, key, cert_path, key_path)


def _make_leaf(directory: Path, stem: str, issuer: Authority, key: PrivateKey, *,
               common_name: str, dns: tuple[str, ...], ips: tuple[str, ...], client: bool,
               not_before: _dt.datetime, not_after: _dt.datetime) -> Leaf:
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    eku = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dtls tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=is_rsa,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.key.public_key()), critical=False)
        .sign(issuer.key, _sign_hash(issuer.key))
    )
    stem_file = stem.replace("_", "-")
    cert_path = directory / f"{stem_file}.pem"
    key_path = directory / f"{stem_file}.key"
    chain_path = directory / f"{stem_file}-chain.pem"
    pem = cert.public_bytes(serialization.Encoding.PEM)
    _write(cert_path, pem)
    _write(key_path, _key_pem(key), private=True)
    _write(chain_path, pem + issuer.cert_pem)
    return Leaf(stem, cert, key, issuer, cert_path, key_path, chain_path)


def generate_pki(directory: str | Path) -> PKI:
    """Generate the whole test PKI into `directory` (created if missing) and return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    ca = _make_ca(directory, "ca", "DTLS Test Root CA", now)
    other = _make_ca(directory, "other-ca", "DTLS Other Root CA", now)
    valid = (now - _dt.timedelta(days=1), now + _dt.timedelta(days=30))
    lapsed = (now - _dt.timedelta(days=30), now - _dt.timedelta(days=1))

    def server(stem: str, issuer: Authority, key: PrivateKey,
               window: tuple[_dt.datetime, _dt.datetime] = valid) -> Leaf:
        return _make_leaf(directory, stem, issuer, key, common_name="localhost",
                          dns=("localhost",), ips=("127.0.0.1",), client=False,
                          not_before=window[0], not_after=window[1])

    def p256() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def client(stem: str, key: PrivateKey) -> Leaf:
        return _make_leaf(directory, stem, ca, key, common_name="dtls-test-client",
                          dns=("client.localhost",), ips=(), client=True,
                          not_before=valid[0], not_after=valid[1])

    return PKI(
        directory=directory, ca=ca, other_ca=other,
        server_ecdsa=server("server_ecdsa", ca, p256()),
        server_rsa=server("server_rsa", ca,
                          rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        server_ed25519=server("server_ed25519", ca, ed25519.Ed25519PrivateKey.generate()),
        client_ecdsa=client("client_ecdsa", p256()),
        client_ed25519=client("client_ed25519", ed25519.Ed25519PrivateKey.generate()),
        expired=server("expired", ca, p256(), lapsed),
        foreign=server("foreign", other, p256()),
    )


_cache_lock = threading.Lock()
_cached: PKI | None = None


def cached_pki() -> PKI:
    """One PKI per process, in a temporary directory removed at interpreter exit."""
    global _cached
    with _cache_lock:
        if _cached is None:
            directory = Path(tempfile.mkdtemp(prefix="dtls-pki-"))
            atexit.register(shutil.rmtree, directory, True)
            _cached = generate_pki(directory)
        return _cached


if __name__ == "__main__":  # python tests/certs.py DIR: write the PKI somewhere to inspect it
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "pki")
    pki = generate_pki(target)
    for ca in (pki.ca, pki.other_ca):
        print(f"{ca.name:16} {ca.cert_path}")
    for leaf in pki.leaves:
        print(f"{leaf.name:16} {leaf.cert_path}")
