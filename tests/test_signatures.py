"""dtls.signatures: every scheme we offer signs and verifies, with the right alerts."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from dtls.alerts import AlertDescription, AlertError
from dtls.extensions import SignatureScheme as S
from dtls.signatures import (
    DIGEST_SCHEMES,
    SCHEMES,
    TRANSCRIPT_SCHEMES,
    check_private_key,
    choose_scheme,
    scheme_for,
    sign,
    verify,
)

P256 = ec.generate_private_key(ec.SECP256R1())
P384 = ec.generate_private_key(ec.SECP384R1())
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ED = ed25519.Ed25519PrivateKey.generate()
KEYS = {"ecdsa": [P256, P384], "rsa": [RSA], "ed25519": [ED]}


@pytest.mark.parametrize("code", list(SCHEMES), ids=lambda c: S(c).name)
def test_sign_and_verify_every_scheme(code: int) -> None:
    scheme = SCHEMES[code]
    for key in KEYS[scheme.kind.value]:
        signature = sign(key, scheme, b"signed params")
        verify(key.public_key(), scheme, signature, b"signed params")
        with pytest.raises(AlertError) as info:
            verify(key.public_key(), scheme, signature, b"other params")
        assert info.value.description == AlertDescription.decrypt_error


@pytest.mark.parametrize("code", DIGEST_SCHEMES, ids=lambda c: S(c).name)
def test_prehashed_transcript_signatures(code: int) -> None:
    scheme = SCHEMES[code]
    assert scheme.hash is not None
    digest = hashlib.new(scheme.hash.name, b"handshake messages").digest()
    for key in KEYS[scheme.kind.value]:
        signature = sign(key, scheme, digest, prehashed=True)
        verify(key.public_key(), scheme, signature, digest, prehashed=True)


def test_ed25519_never_signs_a_transcript_digest() -> None:
    # RFC 8422 5.8: Ed25519 CertificateVerify signs the handshake messages, not a digest,
    # so it is offered for CertificateVerify but is no digest scheme.
    assert S.ed25519 not in DIGEST_SCHEMES
    assert S.ed25519 in TRANSCRIPT_SCHEMES
    assert set(DIGEST_SCHEMES) == set(TRANSCRIPT_SCHEMES) - {S.ed25519}
    assert choose_scheme(ED, [S.ed25519], for_transcript=True).code is S.ed25519  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        sign(ED, SCHEMES[S.ed25519], bytes(32), prehashed=True)
    with pytest.raises(AlertError) as info:
        verify(ED.public_key(), SCHEMES[S.ed25519], bytes(64), bytes(32), prehashed=True)
    assert info.value.description == AlertDescription.illegal_parameter


def test_scheme_choice_follows_key_and_offer() -> None:
    offer = list(SCHEMES)
    assert choose_scheme(P256, offer).code is S.ecdsa_secp256r1_sha256  # type: ignore[union-attr]
    assert choose_scheme(P384, offer).code is S.ecdsa_secp384r1_sha384  # type: ignore[union-attr]
    assert choose_scheme(RSA, offer).code is S.rsa_pss_rsae_sha256  # type: ignore[union-attr]
    assert choose_scheme(RSA, [S.rsa_pkcs1_sha256]).code is S.rsa_pkcs1_sha256  # type: ignore[union-attr]
    assert choose_scheme(RSA, [S.ecdsa_secp256r1_sha256]) is None
    assert choose_scheme(P256, None) is None


def test_scheme_must_fit_the_key_and_be_offered() -> None:
    signature = sign(P256, SCHEMES[S.ecdsa_secp256r1_sha256], b"x")
    with pytest.raises(AlertError) as info:
        verify(RSA.public_key(), SCHEMES[S.ecdsa_secp256r1_sha256], signature, b"x")
    assert info.value.description == AlertDescription.illegal_parameter
    with pytest.raises(AlertError) as info:
        scheme_for(0x0201)  # rsa_pkcs1_sha1: never offered
    assert info.value.description == AlertDescription.illegal_parameter


def test_private_key_checks() -> None:
    for key in (P256, P384, RSA, ED):
        check_private_key(key)
    with pytest.raises(ValueError):
        check_private_key(ec.generate_private_key(ec.SECP521R1()))
    with pytest.raises(ValueError):
        check_private_key(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(TypeError):
        check_private_key(b"not a key")
