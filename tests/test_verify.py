"""dtls.verify: pinned fingerprints and CA path validation, with the alert for each failure."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from dtls_testing import make_certificate

from dtls.alerts import AlertDescription, AlertError
from dtls.verify import CaVerifier, PinnedFingerprintVerifier, fingerprint_sha256

CA = make_certificate("Verify CA", ca=True)
LEAF, LEAF_KEY = make_certificate("localhost", issuer=CA)
DER = LEAF.public_bytes(Encoding.DER)


def failure(call) -> AlertError:  # type: ignore[no-untyped-def]
    with pytest.raises(AlertError) as info:
        call()
    return info.value


def test_pinned_fingerprint() -> None:
    assert fingerprint_sha256(LEAF) == fingerprint_sha256(DER)
    verifier = PinnedFingerprintVerifier([bytes(32), fingerprint_sha256(LEAF)])
    assert verifier.verify([DER], None) == LEAF
    err = failure(lambda: PinnedFingerprintVerifier([bytes(32)]).verify([DER], None))
    assert err.description == AlertDescription.bad_certificate
    assert fingerprint_sha256(LEAF).hex(":") in str(err)


def test_pins_must_be_sha256() -> None:
    with pytest.raises(ValueError):
        PinnedFingerprintVerifier([])
    with pytest.raises(ValueError):
        PinnedFingerprintVerifier([b"short"])


@pytest.mark.parametrize("chain, reason", [([], "no certificate"), ([b"\x30\x00"], "parse")])
def test_missing_or_garbage_certificate_is_bad_certificate(chain, reason) -> None:
    err = failure(lambda: PinnedFingerprintVerifier([bytes(32)]).verify(chain, None))
    assert err.description == AlertDescription.bad_certificate and reason in str(err)


def test_ca_path_and_hostname() -> None:
    verifier = CaVerifier([CA[0]])
    assert verifier.verify([DER], "localhost") == LEAF
    err = failure(lambda: verifier.verify([DER], "example.com"))
    assert err.description == AlertDescription.bad_certificate and "server name" in str(err)
    err = failure(lambda: CaVerifier([make_certificate("Other", ca=True)[0]]).verify(
        [DER], "localhost"))
    assert err.description == AlertDescription.unknown_ca
    assert CaVerifier([CA[0]], check_hostname=False).verify([DER], None) == LEAF


def test_client_certificates_use_the_client_profile() -> None:
    client, _ = make_certificate("client.example", issuer=CA, client=True)
    der = client.public_bytes(Encoding.DER)
    assert CaVerifier([CA[0]], peer="client").verify([der], None) == client
    # A serverAuth-only certificate is not a client certificate (RFC 5280 4.2.1.12).
    err = failure(lambda: CaVerifier([CA[0]], peer="client").verify([DER], None))
    assert err.description == AlertDescription.bad_certificate and "EKU" in str(err)


def test_intermediate_certificates_are_used() -> None:
    intermediate = make_certificate("Intermediate", issuer=CA, ca=True)
    leaf, _ = make_certificate("localhost", issuer=intermediate)
    chain = [leaf.public_bytes(Encoding.DER), intermediate[0].public_bytes(Encoding.DER)]
    assert CaVerifier([CA[0]]).verify(chain, "localhost") == leaf
    err = failure(lambda: CaVerifier([CA[0]]).verify(chain[:1], "localhost"))
    assert err.description == AlertDescription.unknown_ca


def test_expired_certificate() -> None:
    ca_cert, ca_key = CA
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = (
        x509.CertificateBuilder()
        .subject_name(LEAF.subject).issuer_name(ca_cert.subject).public_key(LEAF_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=10))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    err = failure(lambda: CaVerifier([ca_cert]).verify([expired.public_bytes(Encoding.DER)],
                                                       "localhost"))
    assert err.description in (AlertDescription.certificate_expired,
                               AlertDescription.bad_certificate)
    assert "expired" in str(err).lower() or "valid" in str(err).lower()


def test_ip_address_server_name() -> None:
    # No iPAddress SAN in the leaf: an IP literal never matches its DNS name.
    err = failure(lambda: CaVerifier([CA[0]]).verify([DER], "127.0.0.1"))
    assert err.description == AlertDescription.bad_certificate


# -- the cache of verified chains ----------------------------------------------------------


def _ca_and_leaf() -> tuple[x509.Certificate, x509.Certificate]:
    ca = make_certificate("Cache CA", ca=True)
    leaf, _ = make_certificate("localhost", issuer=ca)
    return ca[0], leaf


def test_a_verified_chain_is_reused_but_only_for_the_same_question() -> None:
    from dtls.verify import _VERIFIED
    _VERIFIED.clear()
    ca, leaf = _ca_and_leaf()
    der = [leaf.public_bytes(Encoding.DER)]
    verifier = CaVerifier([ca])
    assert verifier.verify(der, "localhost") == leaf
    assert len(_VERIFIED._entries) == 1
    assert CaVerifier([ca]).verify(der, "localhost") == leaf  # served from the cache
    assert len(_VERIFIED._entries) == 1
    with pytest.raises(AlertError):  # another name is another question: validated afresh
        verifier.verify(der, "other.example")
    other_ca, _ = _ca_and_leaf()
    with pytest.raises(AlertError):  # other roots too
        CaVerifier([other_ca]).verify(der, "localhost")
    assert len(_VERIFIED._entries) == 1  # failures are never cached


def test_verified_chain_cache_is_bounded_and_skips_certificates_out_of_validity() -> None:
    from dtls.verify import _VerifiedChains
    cache = _VerifiedChains()
    ca, leaf = _ca_and_leaf()
    for i in range(_VerifiedChains.MAX_ENTRIES + 10):
        cache.put(("key", i), leaf, [leaf, ca])
    assert len(cache._entries) == _VerifiedChains.MAX_ENTRIES
    assert cache.get(("key", 0)) is None and cache.get(("key", 73)) is leaf  # oldest went
    # An entry past a certificate's notAfter is dropped, not answered.
    key = ("key", 73)
    cert, not_before, _ = cache._entries[key]
    cache._entries[key] = (cert, not_before,
                           datetime.datetime.now(datetime.timezone.utc)
                           - datetime.timedelta(seconds=1))
    assert cache.get(key) is None and key not in cache._entries
