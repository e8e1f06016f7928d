"""The hello negotiation rules of dtls.negotiation, each with the alert its RFC names."""

from __future__ import annotations

from dataclasses import replace

import pytest
from dtls_testing import make_certificate

from dtls.alerts import AlertDescription, AlertError
from dtls.config import SUPPORTED_CIPHER_SUITES, DtlsConfiguration
from dtls.extensions import (
    ALPN,
    ECPointFormats,
    ExtendedMasterSecret,
    NamedGroup,
    RenegotiationInfo,
    ServerName,
    SignatureAlgorithms,
    SupportedGroups,
    UnknownExtension,
    find_extension,
)
from dtls.messages import ServerHello
from dtls.negotiation import build_client_hello, check_server_hello, negotiate
from dtls.suites import CipherSuite

CLIENT = DtlsConfiguration(verify_peer=False, server_name="example.com")
_CERT, _KEY = make_certificate("example.com")
SERVER = DtlsConfiguration(is_client=False, certificate_chain=[_CERT], private_key=_KEY)
GCM = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256


def alert_of(call) -> AlertDescription:  # type: ignore[no-untyped-def]
    with pytest.raises(AlertError) as info:
        call()
    return info.value.description


def hello(**changes):  # type: ignore[no-untyped-def]
    return replace(build_client_hello(CLIENT, bytes(32)), **changes)


def without(kind):  # type: ignore[no-untyped-def]
    return [e for e in hello().extensions if type(e) is not kind]


def test_client_hello_offers_what_is_configured() -> None:
    ch = build_client_hello(replace(CLIENT, alpn_protocols=(b"coap",)), bytes(32))
    assert find_extension(ch.extensions, ServerName) == ServerName("example.com")
    assert find_extension(ch.extensions, ExtendedMasterSecret) is not None
    assert find_extension(ch.extensions, ALPN) == ALPN([b"coap"])
    ip = build_client_hello(replace(CLIENT, server_name="192.0.2.1"), bytes(32))
    assert find_extension(ip.extensions, ServerName) is None  # RFC 6066 3: no IP literals


def test_server_uses_its_preference_order() -> None:
    reverse = tuple(reversed(SUPPORTED_CIPHER_SUITES))
    n = negotiate(replace(SERVER, cipher_suites=reverse),
                  hello(cipher_suites=[int(s) for s in SUPPORTED_CIPHER_SUITES]))
    # The server has no PSKs, so its most preferred usable suite is the last ECDSA one.
    assert n.suite.suite is next(s for s in reverse if "ECDHE_ECDSA" in s.name)
    assert n.suite.suite is not SUPPORTED_CIPHER_SUITES[0]


def test_psk_suites_need_a_psk_and_certificate_suites_a_certificate() -> None:
    psk_server = DtlsConfiguration(is_client=False, psk_lookup={b"id": b"k"}.get)
    offer = hello(cipher_suites=[int(s) for s in SUPPORTED_CIPHER_SUITES])
    assert negotiate(psk_server, offer).suite.uses_psk
    assert not negotiate(SERVER, offer).suite.uses_psk
    n = negotiate(psk_server, hello(cipher_suites=[0x00A8]))  # PSK_WITH_AES_128_GCM_SHA256
    assert n.group is None
    assert find_extension(list(n.server_hello_extensions), ECPointFormats) is None


def test_a_suite_the_client_cannot_finish_is_skipped_for_the_next() -> None:
    # No secp256r1 on the client: our P-256 certificate is out, ECDHE_PSK still works.
    both = replace(SERVER, psk_lookup={b"id": b"k"}.get)
    extensions = without(SupportedGroups) + [SupportedGroups([NamedGroup.x25519])]
    n = negotiate(both, hello(extensions=extensions, cipher_suites=[
        int(GCM), int(CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256)]))
    assert n.suite.suite is CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256
    assert alert_of(lambda: negotiate(both, hello(extensions=extensions))) == \
        AlertDescription.handshake_failure


def test_missing_supported_groups_means_secp256r1() -> None:
    assert negotiate(SERVER, hello(extensions=without(SupportedGroups))).group \
        is NamedGroup.secp256r1


@pytest.mark.parametrize("change, alert", [
    ({"client_version": 0xFEFF}, AlertDescription.protocol_version),
    ({"cipher_suites": [0x002F]}, AlertDescription.handshake_failure),
    ({"extensions": without(SignatureAlgorithms)}, AlertDescription.handshake_failure),
    ({"extensions": without(ExtendedMasterSecret)}, AlertDescription.handshake_failure),
])
def test_server_refusals(change: dict, alert: AlertDescription) -> None:
    assert alert_of(lambda: negotiate(SERVER, hello(**change))) == alert


def test_compressed_points_only_is_illegal_parameter() -> None:
    extensions = without(ECPointFormats) + [ECPointFormats([1])]
    assert alert_of(lambda: negotiate(SERVER, hello(extensions=extensions))) == \
        AlertDescription.illegal_parameter


def test_renegotiation_scsv_is_answered_with_the_extension() -> None:
    ch = hello(extensions=without(RenegotiationInfo), cipher_suites=[GCM, 0x00FF])
    n = negotiate(SERVER, ch)
    assert RenegotiationInfo(b"") in n.server_hello_extensions
    n = negotiate(SERVER, hello(extensions=without(RenegotiationInfo)))
    assert find_extension(list(n.server_hello_extensions), RenegotiationInfo) is None


def server_hello(**changes):  # type: ignore[no-untyped-def]
    base = ServerHello(0xFEFD, bytes(32), b"", GCM, 0,
                       [RenegotiationInfo(b""), ExtendedMasterSecret()])
    return replace(base, **changes)


def test_acceptable_server_hello() -> None:
    n = check_server_hello(CLIENT, hello(), server_hello())
    assert n.suite.suite is GCM and n.extended_master_secret and n.alpn_protocol is None


@pytest.mark.parametrize("change, alert", [
    ({"server_version": 0xFEFF}, AlertDescription.protocol_version),
    ({"cipher_suite": 0x009C}, AlertDescription.illegal_parameter),  # RSA kx: never offered
    ({"compression_method": 1}, AlertDescription.illegal_parameter),
    ({"extensions": [ExtendedMasterSecret(), UnknownExtension(0x1234)]},
     AlertDescription.unsupported_extension),
    ({"extensions": [RenegotiationInfo(b"x" * 12), ExtendedMasterSecret()]},
     AlertDescription.handshake_failure),
    ({"extensions": []}, AlertDescription.handshake_failure),  # no EMS (RFC 7627 5.3)
])
def test_client_refusals(change: dict, alert: AlertDescription) -> None:
    assert alert_of(lambda: check_server_hello(CLIENT, hello(), server_hello(**change))) == alert


def test_server_hello_alpn_must_be_one_offered_protocol() -> None:
    config = replace(CLIENT, alpn_protocols=(b"a", b"b"))
    offer = build_client_hello(config, bytes(32))
    ok = server_hello(extensions=[ExtendedMasterSecret(), ALPN([b"b"])])
    assert check_server_hello(config, offer, ok).alpn_protocol == b"b"
    for bad in ([b"a", b"b"], [b"c"]):
        answer = server_hello(extensions=[ExtendedMasterSecret(), ALPN(bad)])
        assert alert_of(lambda a=answer: check_server_hello(config, offer, a)) == \
            AlertDescription.illegal_parameter


def test_extended_master_secret_can_be_made_optional() -> None:
    config = replace(CLIENT, require_extended_master_secret=False)
    n = check_server_hello(config, hello(), server_hello(extensions=[]))
    assert not n.extended_master_secret


def test_usable_cipher_suites_follows_changes_to_the_configuration() -> None:
    """The memo is keyed on the inputs, not the object: a configuration changed in place
    gets the new answer."""
    from dtls.config import _USABLE_SUITES_CACHE
    from dtls.recordbase import DTLS1_0
    psk_suite = CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256
    ecdsa_suite = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    config = DtlsConfiguration(cipher_suites=(psk_suite, ecdsa_suite), verify_peer=False)
    assert config.usable_cipher_suites() == (ecdsa_suite,)
    assert config.usable_cipher_suites() == (ecdsa_suite,)  # from the memo
    assert _USABLE_SUITES_CACHE
    config.psk = b"k" * 16
    assert config.usable_cipher_suites() == (psk_suite, ecdsa_suite)
    config.cipher_suites = (ecdsa_suite, psk_suite)
    assert config.usable_cipher_suites() == (ecdsa_suite, psk_suite)
    config.verify_peer = True  # nothing to check a certificate with: PSK only
    assert config.usable_cipher_suites() == (psk_suite,)
    config.cipher_suites = [ecdsa_suite, psk_suite]  # type: ignore[assignment]  # a list
    assert config.usable_cipher_suites() == (psk_suite,)
    config.versions = (DTLS1_0,)  # no AEAD suite in DTLS 1.0
    assert config.usable_cipher_suites() == ()
    # A server's certificate suites follow its key.
    cert, key = make_certificate()
    server = DtlsConfiguration(is_client=False, cipher_suites=(psk_suite, ecdsa_suite),
                               certificate_chain=[cert], private_key=key)
    assert server.usable_cipher_suites() == (ecdsa_suite,)
    server.psk_lookup = {}.get
    assert server.usable_cipher_suites() == (psk_suite, ecdsa_suite)
