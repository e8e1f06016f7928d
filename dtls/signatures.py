"""Signature schemes for ServerKeyExchange and CertificateVerify in DTLS 1.2.

DTLS 1.2 signs with a SignatureAndHashAlgorithm (RFC 5246 7.4.1.4.1); peers use the
RFC 8446 4.2.3 code points for it, including RSA-PSS and Ed25519 (RFC 8422 5.1.3).  In
(D)TLS 1.2 an ECDSA code point fixes the hash only, not the curve.

* ECDSA (P-256, P-384 keys) and RSA PKCS#1 v1.5 / PSS sign a hash; for CertificateVerify
  we sign the running transcript digest (`Prehashed`, dtls.keys.HandshakeTranscript).
* Ed25519 (pure EdDSA, RFC 8032) signs the message itself: the ServerKeyExchange params,
  and for CertificateVerify the concatenated handshake messages (RFC 8422 5.8), which the
  transcript keeps for that purpose while a CertificateVerify may still be needed.
* RSA-PSS uses a salt as long as the hash (RFC 8446 4.2.3) and MGF1 with the same hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from .alerts import AlertDescription, AlertError, DecryptError, IllegalParameter
from .extensions import NamedGroup, SignatureScheme
from .keys import PrfAlgorithm

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

MIN_RSA_BITS = 2048
"""RFC 8422 / NIST SP 800-57: smaller RSA keys are refused for our own certificate."""


class KeyKind(Enum):
    ECDSA = "ecdsa"
    RSA = "rsa"
    ED25519 = "ed25519"


@dataclass(frozen=True)
class Scheme:
    code: SignatureScheme
    kind: KeyKind
    hash: hashes.HashAlgorithm | None
    """The hash signed over; None for Ed25519 (pure EdDSA)."""
    pss: bool = False

    @property
    def transcript(self) -> PrfAlgorithm | None:
        """The transcript digest a CertificateVerify signs; None for Ed25519, which signs
        the handshake messages themselves."""
        if self.hash is None:
            return None
        return {"sha256": PrfAlgorithm.SHA256, "sha384": PrfAlgorithm.SHA384}.get(self.hash.name)


_S = SignatureScheme
_SCHEMES = (
    # Our preference: elliptic curves first (small, fast), then PSS over PKCS#1 v1.5.
    Scheme(_S.ecdsa_secp256r1_sha256, KeyKind.ECDSA, hashes.SHA256()),
    Scheme(_S.ecdsa_secp384r1_sha384, KeyKind.ECDSA, hashes.SHA384()),
    Scheme(_S.ed25519, KeyKind.ED25519, None),
    Scheme(_S.rsa_pss_rsae_sha256, KeyKind.RSA, hashes.SHA256(), pss=True),
    Scheme(_S.rsa_pss_rsae_sha384, KeyKind.RSA, hashes.SHA384(), pss=True),
    Scheme(_S.rsa_pkcs1_sha256, KeyKind.RSA, hashes.SHA256()),
    Scheme(_S.rsa_pkcs1_sha384, KeyKind.RSA, hashes.SHA384()),
)
SCHEMES: dict[int, Scheme] = {int(s.code): s for s in _SCHEMES}
"""Everything we can verify, in the order we offer it (signature_algorithms)."""

DIGEST_SCHEMES: tuple[int, ...] = tuple(c for c, s in SCHEMES.items() if s.transcript)
"""The schemes that sign a transcript digest (`Prehashed`): all but Ed25519."""

TRANSCRIPT_SCHEMES: tuple[int, ...] = tuple(SCHEMES)
"""What a CertificateVerify may use with us (CertificateRequest.supported_signature_algorithms):
the digest schemes and Ed25519, which signs the kept handshake messages."""

_CURVE_GROUPS = {"secp256r1": NamedGroup.secp256r1, "secp384r1": NamedGroup.secp384r1}


def key_kind(key: PrivateKey | PublicKey) -> KeyKind:
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return KeyKind.ECDSA
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return KeyKind.RSA
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return KeyKind.ED25519
    raise AlertError(f"unsupported certificate key type {type(key).__name__}",
                     AlertDescription.unsupported_certificate)


def check_private_key(key: object) -> None:
    """ValueError/TypeError unless we can sign with this key (a configuration mistake)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in _CURVE_GROUPS:
            raise ValueError(f"ECDSA keys must be P-256 or P-384, not {key.curve.name}")
    elif isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    elif not isinstance(key, ed25519.Ed25519PrivateKey):
        raise TypeError("private_key must be an EC (P-256/P-384), RSA or Ed25519 key")


def curve_group(key: PrivateKey | PublicKey) -> NamedGroup | None:
    """The named group of an EC key (RFC 8422 5.3: the client must support it)."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return _CURVE_GROUPS.get(key.curve.name)
    return None


def choose_scheme(key: PrivateKey, offered: Sequence[int] | None, *,
                  for_transcript: bool = False) -> Scheme | None:
    """Our best scheme for `key` that the peer offered, or None.

    `for_transcript`: only schemes a CertificateVerify may use (`TRANSCRIPT_SCHEMES`).
    An ECDSA key prefers the hash matching its curve (P-384 with SHA-384).
    """
    if offered is None:
        return None
    kind = key_kind(key)
    candidates = [s for s in _SCHEMES if s.kind is kind and s.code in offered
                  and (s.code in TRANSCRIPT_SCHEMES or not for_transcript)]
    group = curve_group(key)
    if group is NamedGroup.secp384r1:
        candidates.sort(key=lambda s: s.code != SignatureScheme.ecdsa_secp384r1_sha384)
    return candidates[0] if candidates else None


def scheme_for(code: int | None) -> Scheme:
    """The scheme a peer used; illegal_parameter if we never offered it (7.4.1.4.1)."""
    scheme = SCHEMES.get(code or 0)
    if scheme is None:
        raise IllegalParameter(f"signature algorithm {code} was not offered (RFC 5246 7.4.1.4.1)")
    return scheme


def _padding(scheme: Scheme) -> padding.AsymmetricPadding:
    assert scheme.hash is not None
    if scheme.pss:
        return padding.PSS(mgf=padding.MGF1(scheme.hash), salt_length=scheme.hash.digest_size)
    return padding.PKCS1v15()


def sign(key: PrivateKey, scheme: Scheme, data: bytes, *, prehashed: bool = False) -> bytes:
    """Sign `data` (or, with `prehashed`, the digest `data`) with `scheme`."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        if prehashed:
            raise ValueError("Ed25519 cannot sign a prehashed transcript")
        return key.sign(data)
    assert scheme.hash is not None
    algorithm = Prehashed(scheme.hash) if prehashed else scheme.hash
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(algorithm))
    return key.sign(data, _padding(scheme), algorithm)


def verify(key: PublicKey, scheme: Scheme, signature: bytes, data: bytes, *,
           prehashed: bool = False, what: str = "signature") -> None:
    """Check a peer's signature: decrypt_error when it is wrong (RFC 5246 7.2.2),
    illegal_parameter when the scheme does not fit the certificate's key."""
    if key_kind(key) is not scheme.kind:
        raise IllegalParameter(f"{what} uses {scheme.code.name} but the certificate key is "
                               f"{key_kind(key).value}")
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            if prehashed:
                raise IllegalParameter(f"{what}: Ed25519 cannot verify a prehashed digest")
            key.verify(signature, data)
            return
        assert scheme.hash is not None
        algorithm = Prehashed(scheme.hash) if prehashed else scheme.hash
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            key.verify(signature, data, _padding(scheme), algorithm)
    except InvalidSignature:
        raise DecryptError(f"{what} does not verify") from None


# -- DTLS 1.0 (TLS 1.1 rules): no SignatureAndHashAlgorithm on the wire ------------------


class _MD5SHA1(hashes.HashAlgorithm):
    """OpenSSL's "md5-sha1" digest: PKCS#1 v1.5 over it carries no DigestInfo, which is
    exactly TLS 1.1's RSA signature (RFC 4346 4.7: a 36-byte MD5 || SHA-1 block)."""

    name = "md5-sha1"
    digest_size = 36
    block_size = 64


def legacy_digest(data: bytes) -> bytes:
    """MD5(data) || SHA-1(data): what DTLS 1.0 signs (the transcript has the same form)."""
    md5 = hashes.Hash(hashes.MD5())
    sha1 = hashes.Hash(hashes.SHA1())
    md5.update(data)
    sha1.update(data)
    return md5.finalize() + sha1.finalize()


def sign_legacy(key: PrivateKey, digest: bytes) -> bytes:
    """Sign an MD5 || SHA-1 `digest` as DTLS 1.0 does: RSA PKCS#1 v1.5 over all 36 bytes
    without DigestInfo (RFC 4346 7.4.3, 7.4.8); ECDSA over the SHA-1 part (RFC 4492 5.4,
    5.8).  Ed25519 has no DTLS 1.0 form."""
    if len(digest) != 36:
        raise ValueError("a DTLS 1.0 signature covers a 36-byte MD5 || SHA-1 digest")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(digest[16:], ec.ECDSA(Prehashed(hashes.SHA1())))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, padding.PKCS1v15(), Prehashed(_MD5SHA1()))
    raise ValueError("DTLS 1.0 signs with RSA or ECDSA keys only")


def verify_legacy(key: PublicKey, signature: bytes, digest: bytes, *,
                  what: str = "signature") -> None:
    """Check a DTLS 1.0 signature over an MD5 || SHA-1 `digest` (see `sign_legacy`)."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest[16:], ec.ECDSA(Prehashed(hashes.SHA1())))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), Prehashed(_MD5SHA1()))
        else:
            raise IllegalParameter(f"{what}: a {key_kind(key).value} key cannot sign in "
                                   "DTLS 1.0")
    except InvalidSignature:
        raise DecryptError(f"{what} does not verify") from None
