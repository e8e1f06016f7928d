"""dtls.messages and dtls.extensions: byte-exact codecs, strict decoding, real peers.

Expected bytes are written out by hand from the RFC presentation-language layouts (cited
per case), so a round trip is checked against the RFCs and not only against ourselves.
Interop tests capture what OpenSSL and GnuTLS actually send (and what OpenSSL accepts
from us) over loopback UDP; they skip, saying why, when a binary is missing.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtls.alerts import AlertError, DecodeError, IllegalParameter, InternalError, UnexpectedMessage
from dtls.buffer import Buffer, decode, encode
from dtls.extensions import (
    ALPN,
    ECPointFormats,
    EncryptThenMac,
    ExtendedMasterSecret,
    Extension,
    ExtensionType,
    HandshakeContext,
    NamedGroup,
    RenegotiationInfo,
    ServerName,
    SessionTicket,
    SignatureAlgorithms,
    SignatureScheme,
    SupportedGroups,
    UnknownExtension,
    UseSrtp,
    find_extension,
    pull_extension,
    pull_extensions,
    push_extension,
    push_extensions,
)
from dtls.messages import (
    Alert,
    Certificate,
    CertificateRequest,
    CertificateVerify,
    ChangeCipherSpec,
    ClientHello,
    ClientKeyExchangeECDHE,
    ClientKeyExchangeECDHEPSK,
    ClientKeyExchangePSK,
    Finished,
    HandshakeType,
    HelloRequest,
    HelloVerifyRequest,
    KeyExchangeAlgorithm,
    NewSessionTicket,
    ServerECDHParams,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchangeECDHE,
    ServerKeyExchangeECDHEPSK,
    ServerKeyExchangePSK,
    decode_handshake,
    encode_handshake,
    pull_alert,
    pull_certificate,
    pull_certificate_request,
    pull_certificate_verify,
    pull_change_cipher_spec,
    pull_client_hello,
    pull_client_key_exchange,
    pull_finished,
    pull_hello_request,
    pull_hello_verify_request,
    pull_new_session_ticket,
    pull_server_ecdh_params,
    pull_server_hello,
    pull_server_hello_done,
    pull_server_key_exchange,
    push_alert,
    push_certificate,
    push_certificate_request,
    push_certificate_verify,
    push_change_cipher_spec,
    push_client_hello,
    push_client_key_exchange,
    push_finished,
    push_hello_request,
    push_hello_verify_request,
    push_new_session_ticket,
    push_server_ecdh_params,
    push_server_hello,
    push_server_hello_done,
    push_server_key_exchange,
)
from dtls.recordbase import DTLS1_0, DTLS1_2

CH = HandshakeContext.client_hello
SH = HandshakeContext.server_hello
ECDHE, PSK, ECDHE_PSK = (KeyExchangeAlgorithm.ECDHE, KeyExchangeAlgorithm.PSK,
                         KeyExchangeAlgorithm.ECDHE_PSK)

Pull = Callable[[Buffer], Any]
Push = Callable[[Buffer, Any], None]


def h(text: str) -> bytes:
    """Hex with spaces and `#` comments, so expected bytes can be laid out like the RFC."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


RANDOM = bytes(range(32))

# The pull functions under test, by name; extra arguments bound with partial so every
# entry is Buffer -> value.  Fuzzing walks this table.
PULLS: dict[str, Pull] = {
    "hello_request": pull_hello_request,
    "client_hello": pull_client_hello,
    "hello_verify_request": pull_hello_verify_request,
    "server_hello": pull_server_hello,
    "certificate": pull_certificate,
    "server_ecdh_params": pull_server_ecdh_params,
    "ske_ecdhe_12": partial(pull_server_key_exchange, key_exchange=ECDHE, version=DTLS1_2),
    "ske_ecdhe_10": partial(pull_server_key_exchange, key_exchange=ECDHE, version=DTLS1_0),
    "ske_psk": partial(pull_server_key_exchange, key_exchange=PSK),
    "ske_ecdhe_psk": partial(pull_server_key_exchange, key_exchange=ECDHE_PSK),
    "certificate_request_12": partial(pull_certificate_request, version=DTLS1_2),
    "certificate_request_10": partial(pull_certificate_request, version=DTLS1_0),
    "server_hello_done": pull_server_hello_done,
    "cke_ecdhe": partial(pull_client_key_exchange, key_exchange=ECDHE),
    "cke_psk": partial(pull_client_key_exchange, key_exchange=PSK),
    "cke_ecdhe_psk": partial(pull_client_key_exchange, key_exchange=ECDHE_PSK),
    "certificate_verify_12": partial(pull_certificate_verify, version=DTLS1_2),
    "certificate_verify_10": partial(pull_certificate_verify, version=DTLS1_0),
    "finished_12": pull_finished,
    "finished_32": partial(pull_finished, verify_data_length=32),
    "new_session_ticket": pull_new_session_ticket,
    "alert": pull_alert,
    "change_cipher_spec": pull_change_cipher_spec,
    "extension_ch": partial(pull_extension, ctx=CH),
    "extension_sh": partial(pull_extension, ctx=SH),
    "extensions_ch": partial(pull_extensions, ctx=CH),
    "extensions_sh": partial(pull_extensions, ctx=SH),
}

PUSHES: dict[str, Push] = {
    "hello_request": push_hello_request,
    "client_hello": push_client_hello,
    "hello_verify_request": push_hello_verify_request,
    "server_hello": push_server_hello,
    "certificate": push_certificate,
    "server_ecdh_params": push_server_ecdh_params,
    "ske_ecdhe_12": partial(push_server_key_exchange, version=DTLS1_2),
    "ske_ecdhe_10": partial(push_server_key_exchange, version=DTLS1_0),
    "ske_psk": push_server_key_exchange,
    "ske_ecdhe_psk": push_server_key_exchange,
    "certificate_request_12": partial(push_certificate_request, version=DTLS1_2),
    "certificate_request_10": partial(push_certificate_request, version=DTLS1_0),
    "server_hello_done": push_server_hello_done,
    "cke_ecdhe": push_client_key_exchange,
    "cke_psk": push_client_key_exchange,
    "cke_ecdhe_psk": push_client_key_exchange,
    "certificate_verify_12": partial(push_certificate_verify, version=DTLS1_2),
    "certificate_verify_10": partial(push_certificate_verify, version=DTLS1_0),
    "finished_12": push_finished,
    "finished_32": push_finished,
    "new_session_ticket": push_new_session_ticket,
    "alert": push_alert,
    "change_cipher_spec": push_change_cipher_spec,
    "extension_ch": lambda b, e: push_extension(b, e, CH),
    "extension_sh": lambda b, e: push_extension(b, e, SH),
    "extensions_ch": lambda b, e: push_extensions(b, e, CH),
    "extensions_sh": lambda b, e: push_extensions(b, e, SH),
}


@dataclass
class Case:
    id: str
    codec: str  # key into PULLS / PUSHES
    value: Any
    wire: bytes | None = None  # hand-written expected encoding, when given


CASES: list[Case] = [
    # RFC 6347 4.2.1 ClientHello: version, random, session_id<0..32>, cookie<0..2^8-1>,
    # cipher_suites<2..2^16-2>, compression_methods<1..2^8-1>, extensions<0..2^16-1>.
    Case("client_hello", "client_hello", ClientHello(
        DTLS1_2, RANDOM, b"", b"\xc0\xc1", [0xC02B, 0x00FF], [0],
        [SupportedGroups([NamedGroup.x25519, NamedGroup.secp256r1]), ECPointFormats([0]),
         SignatureAlgorithms([SignatureScheme.ecdsa_secp256r1_sha256,
                              SignatureScheme.rsa_pss_rsae_sha256]),
         ExtendedMasterSecret(), ServerName("a.io")]), h("""
        fe fd                                  # client_version DTLS 1.2
        000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
        00                                     # session_id<0..32>: empty
        02 c0 c1                               # cookie<0..2^8-1>
        00 04 c0 2b 00 ff                      # cipher_suites
        01 00                                  # compression_methods: null
        00 2b                                  # extensions<0..2^16-1>, 43 bytes
          00 0a 00 06 00 04 00 1d 00 17        # supported_groups: x25519, secp256r1
          00 0b 00 02 01 00                    # ec_point_formats: uncompressed
          00 0d 00 06 00 04 04 03 08 04        # signature_algorithms
          00 17 00 00                          # extended_master_secret
          00 00 00 09 00 07 00 00 04 61 2e 69 6f   # server_name: host_name "a.io"
        """)),
    Case("client_hello_no_extensions", "client_hello", ClientHello(
        DTLS1_0, RANDOM, b"\x55" * 32, b"", [0xC009]), h("""
        fe ff 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
        20 """ + "55" * 32 + """
        00  00 02 c0 09  01 00
        """)),
    # RFC 6347 4.2.1 HelloVerifyRequest: server_version, cookie<0..2^8-1>.
    Case("hello_verify_request", "hello_verify_request",
         HelloVerifyRequest(DTLS1_0, b"\xaa" * 4), h("fe ff 04 aaaaaaaa")),
    Case("hello_verify_request_empty_cookie", "hello_verify_request",
         HelloVerifyRequest(DTLS1_2, b""), h("fe fd 00")),
    Case("hello_verify_request_max_cookie", "hello_verify_request",
         HelloVerifyRequest(DTLS1_0, bytes(255)), h("fe ff ff") + bytes(255)),
    # RFC 5246 7.4.1.3 ServerHello.
    Case("server_hello", "server_hello", ServerHello(
        DTLS1_2, RANDOM, b"\x11" * 32, 0xC02B, 0,
        [RenegotiationInfo(), ExtendedMasterSecret(), ECPointFormats([0]), ALPN([b"h2"]),
         ServerName(None), SessionTicket()]), h("""
        fe fd 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
        20 """ + "11" * 32 + """
        c0 2b  00                              # cipher_suite, compression_method
        00 20                                  # extensions, 32 bytes
          ff 01 00 01 00                       # renegotiation_info: empty
          00 17 00 00                          # extended_master_secret
          00 0b 00 02 01 00                    # ec_point_formats
          00 10 00 05 00 03 02 68 32           # ALPN "h2"
          00 00 00 00                          # server_name acknowledgement
          00 23 00 00                          # session_ticket acknowledgement
        """)),
    Case("server_hello_no_extensions", "server_hello",
         ServerHello(DTLS1_0, RANDOM, b"", 0x002F, 0),
         h("fe ff 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
           "00 00 2f 00")),
    # RFC 5246 7.4.2: certificate_list<0..2^24-1> of ASN.1Cert<1..2^24-1>.
    Case("certificate", "certificate", Certificate([b"AB", b"CDE"]),
         h("00 00 0b  00 00 02 41 42  00 00 03 43 44 45")),
    Case("certificate_empty", "certificate", Certificate([]), h("00 00 00")),
    # RFC 8422 5.4: curve_type named_curve(3), NamedCurve, ECPoint<1..2^8-1>.
    Case("server_ecdh_params", "server_ecdh_params", ServerECDHParams(29, b"\x04\x05"),
         h("03 00 1d 02 04 05")),
    # ... then digitally-signed: SignatureAndHashAlgorithm + signature<0..2^16-1> (TLS 1.2).
    Case("ske_ecdhe_12", "ske_ecdhe_12",
         ServerKeyExchangeECDHE(ServerECDHParams(29, b"\x01\x02\x03\x04"), 0x0403,
                                b"\x0a\x0b\x0c"),
         h("03 00 1d 04 01020304  04 03  00 03 0a0b0c")),
    # RFC 4346 4.7 / RFC 4492 5.4: TLS 1.1 has no algorithm field.
    Case("ske_ecdhe_10", "ske_ecdhe_10",
         ServerKeyExchangeECDHE(ServerECDHParams(23, b"\x04\x01"), None, b"\x0a\x0b"),
         h("03 00 17 02 0401  00 02 0a0b")),
    # RFC 4279 2: psk_identity_hint<0..2^16-1>.
    Case("ske_psk", "ske_psk", ServerKeyExchangePSK(b"hint"), h("00 04 68696e74")),
    Case("ske_psk_empty_hint", "ske_psk", ServerKeyExchangePSK(b""), h("00 00")),
    # RFC 5489 2: psk_identity_hint, then ServerECDHParams, no signature.
    Case("ske_ecdhe_psk", "ske_ecdhe_psk",
         ServerKeyExchangeECDHEPSK(b"hi", ServerECDHParams(29, b"\x05")),
         h("00 02 6869  03 00 1d 01 05")),
    # RFC 5246 7.4.4: certificate_types<1..2^8-1>, supported_signature_algorithms,
    # certificate_authorities<0..2^16-1> of DistinguishedName<1..2^16-1>.
    Case("certificate_request_12", "certificate_request_12",
         CertificateRequest([64], [0x0403, 0x0804], [b"CA-DN"]),
         h("01 40  00 04 0403 0804  00 07 00 05 43412d444e")),
    Case("certificate_request_10", "certificate_request_10",
         CertificateRequest([1, 64], None, []), h("02 01 40  00 00")),
    Case("server_hello_done", "server_hello_done", ServerHelloDone(), b""),
    Case("hello_request", "hello_request", HelloRequest(), b""),
    # RFC 8422 5.7: ECPoint ecdh_Yc<1..2^8-1>.  RFC 4279 2: psk_identity<0..2^16-1>.
    Case("cke_ecdhe", "cke_ecdhe", ClientKeyExchangeECDHE(b"\xaa\xbb\xcc"), h("03 aabbcc")),
    Case("cke_psk", "cke_psk", ClientKeyExchangePSK(b"id1"), h("00 03 696431")),
    Case("cke_ecdhe_psk", "cke_ecdhe_psk", ClientKeyExchangeECDHEPSK(b"id", b"\xab\xcd"),
         h("00 02 6964  02 abcd")),
    # RFC 5246 7.4.8 / RFC 4346 7.4.8.
    Case("certificate_verify_12", "certificate_verify_12",
         CertificateVerify(0x0804, b"\x99\x98"), h("08 04 00 02 9998")),
    Case("certificate_verify_10", "certificate_verify_10",
         CertificateVerify(None, b"\x99\x98"), h("00 02 9998")),
    # RFC 5246 7.4.9: verify_data[verify_data_length], no prefix.
    Case("finished_12", "finished_12", Finished(bytes(range(12))), bytes(range(12))),
    Case("finished_32", "finished_32", Finished(bytes(range(32))), bytes(range(32))),
    # RFC 5077 3.3: uint32 ticket_lifetime_hint; opaque ticket<0..2^16-1>.
    Case("new_session_ticket", "new_session_ticket", NewSessionTicket(7200, b"tkt"),
         h("00 00 1c 20  00 03 746b74")),
    # RFC 5246 7.2 / 7.1.
    Case("alert", "alert", Alert(2, 40), h("02 28")),
    Case("change_cipher_spec", "change_cipher_spec", ChangeCipherSpec(), h("01")),
    # Extensions one by one (type, length, body).
    Case("ext_server_name", "extension_ch", ServerName("example.com"),
         h("00 00 00 10 00 0e 00 00 0b") + b"example.com"),
    Case("ext_server_name_ack", "extension_sh", ServerName(None), h("00 00 00 00")),
    Case("ext_supported_groups", "extension_ch",
         SupportedGroups([29, 23, 24]), h("00 0a 00 08 00 06 001d 0017 0018")),
    Case("ext_ec_point_formats", "extension_sh", ECPointFormats([0, 1, 2]),
         h("00 0b 00 04 03 00 01 02")),
    Case("ext_signature_algorithms", "extension_ch",
         SignatureAlgorithms([0x0403, 0x0503, 0x0804, 0x0807, 0x0401]),
         h("00 0d 00 0c 00 0a 0403 0503 0804 0807 0401")),
    Case("ext_extended_master_secret", "extension_ch", ExtendedMasterSecret(),
         h("00 17 00 00")),
    Case("ext_encrypt_then_mac", "extension_sh", EncryptThenMac(), h("00 16 00 00")),
    Case("ext_renegotiation_info", "extension_ch", RenegotiationInfo(bytes(range(12))),
         h("ff 01 00 0d 0c") + bytes(range(12))),
    Case("ext_session_ticket", "extension_ch", SessionTicket(b"T1"), h("00 23 00 02 5431")),
    Case("ext_session_ticket_empty", "extension_ch", SessionTicket(b""), h("00 23 00 00")),
    Case("ext_alpn", "extension_ch", ALPN([b"h2", b"http/1.1"]),
         h("00 10 00 0e 00 0c 02 6832 08") + b"http/1.1"),
    Case("ext_use_srtp", "extension_ch", UseSrtp([0x0001, 0x0007], b"\x01"),
         h("00 0e 00 08 00 04 0001 0007 01 01")),
    Case("ext_use_srtp_no_mki", "extension_sh", UseSrtp([0x0007]),
         h("00 0e 00 05 00 02 0007 00")),
    Case("ext_unknown_grease", "extension_ch", UnknownExtension(0x0A0A, b"\x00"),
         h("0a 0a 00 01 00")),
    Case("ext_unknown_padding", "extension_ch", UnknownExtension(21, bytes(5)),
         h("00 15 00 05 0000000000")),
    Case("extensions_ch_list", "extensions_ch",
         [ExtendedMasterSecret(), UnknownExtension(0x1234, b"")],
         h("00 08  00 17 00 00  12 34 00 00")),
    Case("extensions_sh_empty", "extensions_sh", [], b""),
]


def roundtrip_case_ids() -> list[str]:
    return [c.id for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=roundtrip_case_ids())
def test_round_trip_byte_exact(case: Case) -> None:
    wire = encode(PUSHES[case.codec], case.value)
    if case.wire is not None:
        assert wire.hex() == case.wire.hex()
    assert decode(PULLS[case.codec], wire) == case.value
    assert encode(PUSHES[case.codec], decode(PULLS[case.codec], wire)) == wire


@pytest.mark.parametrize("case", CASES, ids=roundtrip_case_ids())
def test_every_truncation_is_decode_error(case: Case) -> None:
    """No prefix of a valid encoding decodes, except a hello cut right before its
    optional extension block (RFC 5246 7.4.1.2 makes that a valid, shorter hello)."""
    wire = encode(PUSHES[case.codec], case.value)
    pull = PULLS[case.codec]
    for n in range(len(wire)):
        try:
            value = decode(pull, wire[:n])
        except DecodeError:
            continue
        assert case.codec in ("client_hello", "server_hello", "extensions_ch",
                              "extensions_sh"), f"prefix {n} of {len(wire)} decoded"
        assert encode(PUSHES[case.codec], value) == wire[:n]
        assert (value.extensions if hasattr(value, "extensions") else value) == []


@pytest.mark.parametrize("case", CASES, ids=roundtrip_case_ids())
def test_trailing_byte_is_decode_error(case: Case) -> None:
    wire = encode(PUSHES[case.codec], case.value)
    with pytest.raises(DecodeError):
        decode(PULLS[case.codec], wire + b"\x00")


# -- fuzzing --------------------------------------------------------------------------

SEEDS: dict[str, list[bytes]] = {}
for _case in CASES:
    SEEDS.setdefault(_case.codec, []).append(encode(PUSHES[_case.codec], _case.value))
del _case

FUZZ = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check_decode_is_safe(pull: Pull, push: Push, data: bytes) -> None:
    """Only alert-carrying errors may escape, and anything accepted re-encodes stably."""
    try:
        value = decode(pull, data)
    except (DecodeError, IllegalParameter):
        return
    again = encode(push, value)
    assert decode(pull, again) == value


@pytest.mark.parametrize("codec", sorted(PULLS))
@FUZZ
@given(data=st.binary(max_size=200))
def test_fuzz_random_bytes(codec: str, data: bytes) -> None:
    check_decode_is_safe(PULLS[codec], PUSHES[codec], data)


@pytest.mark.parametrize("codec", sorted(PULLS))
@FUZZ
@given(draw=st.data())
def test_fuzz_mutated_valid_encodings(codec: str, draw: st.DataObject) -> None:
    """Random bytes rarely get past the first length; mutating good encodings does."""
    wire = bytearray(draw.draw(st.sampled_from(SEEDS.get(codec, [b""]))))
    for _ in range(draw.draw(st.integers(1, 4))):
        op = draw.draw(st.sampled_from(["set", "insert", "delete"]))
        pos = draw.draw(st.integers(0, len(wire)))
        if op == "set" and pos < len(wire):
            wire[pos] = draw.draw(st.integers(0, 255))
        elif op == "insert":
            wire[pos:pos] = draw.draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del wire[pos:pos + draw.draw(st.integers(1, 4))]
    check_decode_is_safe(PULLS[codec], PUSHES[codec], bytes(wire))


@FUZZ
@given(msg_type=st.integers(0, 255), body=st.binary(max_size=120),
       version=st.sampled_from([DTLS1_0, DTLS1_2]), kx=st.sampled_from(list(KeyExchangeAlgorithm)))
def test_fuzz_decode_handshake(msg_type: int, body: bytes, version: int,
                               kx: KeyExchangeAlgorithm) -> None:
    try:
        msg = decode_handshake(msg_type, body, version=version, key_exchange=kx)
    except (DecodeError, IllegalParameter, UnexpectedMessage):
        return
    assert encode_handshake(msg, version=version)[0] == msg_type


# -- strictness: the rules beyond vector bounds ---------------------------------------


def client_hello_wire(extensions: bytes, compression: bytes = b"\x01\x00") -> bytes:
    return (h("fe fd") + RANDOM + h("00 00 00 02 c0 2b") + compression
            + len(extensions).to_bytes(2, "big") + extensions)


def test_duplicate_extension_is_illegal_parameter() -> None:
    # RFC 5246 7.4.1.4: "There MUST NOT be more than one extension of the same type."
    groups = h("00 0a 00 04 00 02 00 1d")
    with pytest.raises(IllegalParameter, match="more than one extension of type 10"):
        decode(pull_client_hello, client_hello_wire(groups + groups))
    unknown = h("12 34 00 00")  # duplicates of types we do not model are refused too
    with pytest.raises(IllegalParameter, match="type 4660"):
        decode(pull_client_hello, client_hello_wire(unknown + h("00 17 00 00") + unknown))
    sh = (h("fe fd") + RANDOM + h("00 c0 2b 00 00 08") + h("00 17 00 00") * 2)
    with pytest.raises(IllegalParameter):
        decode(pull_server_hello, sh)
    with pytest.raises(InternalError, match="duplicate"):
        encode(push_client_hello, ClientHello(DTLS1_2, RANDOM, cipher_suites=[1], extensions=[
            ExtendedMasterSecret(), ExtendedMasterSecret()]))


@pytest.mark.parametrize("ext", [
    h("00 17 00 01 00"),  # extended_master_secret, RFC 7627 5.1: empty
    h("00 16 00 02 00 00"),  # encrypt_then_mac, RFC 7366 2: empty
], ids=["extended_master_secret", "encrypt_then_mac"])
def test_empty_extension_with_body_is_decode_error(ext: bytes) -> None:
    with pytest.raises(DecodeError, match="must be empty"):
        decode(pull_client_hello, client_hello_wire(ext))


@pytest.mark.parametrize("ext", [
    h("00 00 00 01 00"),  # server_name in ServerHello, RFC 6066 3: SHALL be empty
    h("00 23 00 01 00"),  # session_ticket in ServerHello, RFC 5077 3.2: MUST be empty
], ids=["server_name", "session_ticket"])
def test_server_hello_acknowledgements_must_be_empty(ext: bytes) -> None:
    with pytest.raises(DecodeError, match="ServerHello extension_data must be empty"):
        decode(partial(pull_extension, ctx=SH), ext)


def test_server_name_rules() -> None:
    pull = partial(pull_extension, ctx=CH)
    with pytest.raises(DecodeError, match="server_name_list: length 0"):
        decode(pull, h("00 00 00 02 00 00"))  # ServerNameList<1..2^16-1>
    with pytest.raises(DecodeError, match="unknown name_type 1"):
        decode(pull, h("00 00 00 06 00 04 01 00 01 61"))
    with pytest.raises(IllegalParameter, match="more than one host_name"):
        decode(pull, h("00 00 00 0a 00 08 00 00 01 61 00 00 01 62"))
    with pytest.raises(IllegalParameter, match="not ASCII"):
        decode(pull, h("00 00 00 06 00 04 00 00 01 ff"))
    with pytest.raises(DecodeError, match="host_name: length 0"):
        decode(pull, h("00 00 00 05 00 03 00 00 00"))


def test_vector_bounds_in_messages() -> None:
    with pytest.raises(DecodeError, match="ClientHello.session_id: length 33"):
        decode(pull_client_hello, h("fe fd") + RANDOM + b"\x21" + bytes(33))
    with pytest.raises(DecodeError, match="ClientHello.cipher_suites: length 0"):
        decode(pull_client_hello, h("fe fd") + RANDOM + h("00 00 00 00 01 00"))
    with pytest.raises(DecodeError, match="cipher_suites: odd length"):
        decode(pull_client_hello, h("fe fd") + RANDOM + h("00 00 00 03 c0 2b 00 01 00"))
    with pytest.raises(DecodeError, match="compression_methods: length 0"):
        decode(pull_client_hello, client_hello_wire(b"", compression=b"\x00"))
    with pytest.raises(DecodeError, match="ProtocolName: length 0"):  # ProtocolName<1..2^8-1>
        decode(partial(pull_extension, ctx=CH), h("00 10 00 04 00 02 00 61"))
    with pytest.raises(DecodeError, match="protocol_name_list: length 1 outside 2"):
        decode(partial(pull_extension, ctx=CH), h("00 10 00 03 00 01 00"))
    with pytest.raises(DecodeError, match="supported_groups.named_group_list: length 0"):
        decode(partial(pull_extension, ctx=CH), h("00 0a 00 02 00 00"))
    with pytest.raises(DecodeError, match="ec_point_format_list: length 0"):
        decode(partial(pull_extension, ctx=CH), h("00 0b 00 01 00"))
    with pytest.raises(DecodeError, match="ServerECDHParams.public: length 0"):
        decode(pull_server_ecdh_params, h("03 00 1d 00"))
    with pytest.raises(DecodeError, match="ASN.1Cert: length 0"):
        decode(pull_certificate, h("00 00 03 00 00 00"))
    with pytest.raises(DecodeError, match="DistinguishedName: length 0"):
        decode(partial(pull_certificate_request, version=DTLS1_0), h("01 40 00 02 00 00"))
    with pytest.raises(DecodeError, match="certificate_types: length 0"):
        decode(partial(pull_certificate_request, version=DTLS1_0), h("00 00 00"))
    with pytest.raises(DecodeError, match="extension_data: length 5 runs past"):
        decode(partial(pull_extension, ctx=CH), h("00 17 00 05 00"))


def test_compression_without_null_is_illegal_parameter() -> None:
    # RFC 5246 7.4.1.2: the vector MUST contain CompressionMethod.null.
    with pytest.raises(IllegalParameter, match="null is missing"):
        decode(pull_client_hello, client_hello_wire(b"", compression=b"\x01\x01"))
    ch = decode(pull_client_hello, client_hello_wire(h("00 17 00 00"), b"\x02\x01\x00"))
    assert ch.compression_methods == [1, 0]


def test_explicit_curve_is_illegal_parameter() -> None:
    # RFC 8422 5.4: only named_curve(3); explicit_prime(1)/explicit_char2(2) are deprecated.
    for curve_type in (1, 2, 0, 255):
        with pytest.raises(IllegalParameter, match="curve_type"):
            decode(pull_server_ecdh_params, bytes([curve_type]) + h("00 1d 01 05"))


def test_change_cipher_spec_value() -> None:
    with pytest.raises(IllegalParameter, match="not 1"):
        decode(pull_change_cipher_spec, b"\x02")
    with pytest.raises(DecodeError):
        decode(pull_change_cipher_spec, b"\x01\x01")
    with pytest.raises(DecodeError):
        decode(pull_change_cipher_spec, b"")


def test_finished_length_is_the_callers() -> None:
    with pytest.raises(DecodeError, match="Finished.verify_data: truncated"):
        decode(pull_finished, bytes(11))
    with pytest.raises(DecodeError, match="trailing"):
        decode(pull_finished, bytes(13))
    assert decode_handshake(20, bytes(32), verify_data_length=32) == Finished(bytes(32))


def test_version_mismatches_are_caller_errors() -> None:
    with pytest.raises(InternalError, match="0xfefe"):
        decode(partial(pull_certificate_verify, version=0xFEFE), h("00 00"))
    with pytest.raises(InternalError, match="DTLS 1.2 needs"):
        encode(push_certificate_verify, CertificateVerify(None, b""))
    with pytest.raises(InternalError, match="DTLS 1.0 has no"):
        encode(partial(push_certificate_verify, version=DTLS1_0), CertificateVerify(1, b""))
    with pytest.raises(InternalError, match="needs signature algorithms"):
        encode(push_certificate_request, CertificateRequest([1], None, []))
    with pytest.raises(InternalError, match="has no signature algorithms"):
        encode(partial(push_certificate_request, version=DTLS1_0),
               CertificateRequest([1], [0x0403], []))
    with pytest.raises(InternalError, match="32 bytes"):
        encode(push_server_hello, ServerHello(DTLS1_2, b"short"))


def test_decode_handshake_dispatch() -> None:
    for case in CASES:
        msg_type = getattr(case.value, "msg_type", None)
        if msg_type is None:
            continue
        version = DTLS1_0 if case.codec.endswith("_10") else DTLS1_2
        kx = {"ske_ecdhe_12": ECDHE, "ske_ecdhe_10": ECDHE, "ske_psk": PSK,
              "ske_ecdhe_psk": ECDHE_PSK, "cke_ecdhe": ECDHE, "cke_psk": PSK,
              "cke_ecdhe_psk": ECDHE_PSK}.get(case.codec)
        length = 32 if case.codec == "finished_32" else 12
        t, body = encode_handshake(case.value, version=version)
        assert t == msg_type
        assert decode_handshake(t, body, version=version, key_exchange=kx,
                                verify_data_length=length) == case.value
    with pytest.raises(UnexpectedMessage):
        decode_handshake(99, b"")
    with pytest.raises(DecodeError, match="ServerHelloDone: 1 trailing"):
        decode_handshake(HandshakeType.server_hello_done, b"\x00")
    with pytest.raises(InternalError, match="needs key_exchange"):
        decode_handshake(HandshakeType.server_key_exchange, b"")
    with pytest.raises(InternalError):
        encode_handshake(Alert(1, 0))  # type: ignore[arg-type]


def test_find_extension_and_empty_block() -> None:
    exts: list[Extension] = [UnknownExtension(5, b"x"), SupportedGroups([29])]
    assert find_extension(exts, SupportedGroups) == SupportedGroups([29])
    assert find_extension(exts, SignatureAlgorithms) is None
    # A present-but-empty extension block decodes like an absent one (and re-encodes
    # as absent, the one non-byte-exact case; see push_extensions).
    ch = decode(pull_client_hello, client_hello_wire(b""))
    assert ch.extensions == []
    assert len(encode(push_client_hello, ch)) == len(client_hello_wire(b"")) - 2


def test_alert_errors_carry_descriptions() -> None:
    with pytest.raises(AlertError) as info:
        decode(pull_client_hello, b"\xfe")
    assert info.value.description.name == "decode_error"
    assert "ClientHello.client_version" in str(info.value)


# -- interop: real peers over loopback UDP --------------------------------------------
# Record header (RFC 6347 4.1): type(1) version(2) epoch(2) sequence_number(6) length(2).
# Handshake header (RFC 6347 4.2.2): msg_type(1) length(3) message_seq(2)
# fragment_offset(3) fragment_length(3).  Parsed by hand here: the codec under test
# only covers bodies.

OPENSSL = shutil.which("openssl")
GNUTLS_CLI = shutil.which("gnutls-cli")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl binary not found on PATH")
needs_gnutls = pytest.mark.skipif(
    GNUTLS_CLI is None, reason="gnutls-cli not found (apt-get install -y gnutls-bin)")
TIMEOUT = 5.0


def records(datagram: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(content_type, epoch, fragment) for each record in a datagram."""
    pos = 0
    while pos < len(datagram):
        assert len(datagram) - pos >= 13, "truncated record header"
        content_type = datagram[pos]
        epoch = int.from_bytes(datagram[pos + 3:pos + 5], "big")
        length = int.from_bytes(datagram[pos + 11:pos + 13], "big")
        yield content_type, epoch, datagram[pos + 13:pos + 13 + length]
        pos += 13 + length


class Reassembler:
    """Just enough handshake reassembly for what real peers send in one flight."""

    def __init__(self) -> None:
        self.parts: dict[int, tuple[int, bytearray, set[int]]] = {}
        self.other: list[tuple[int, bytes]] = []  # non-handshake records

    def feed(self, datagram: bytes) -> None:
        for content_type, epoch, fragment in records(datagram):
            if content_type != 22 or epoch != 0:
                self.other.append((content_type, fragment))
                continue
            pos = 0
            while pos < len(fragment):
                msg_type = fragment[pos]
                length = int.from_bytes(fragment[pos + 1:pos + 4], "big")
                message_seq = int.from_bytes(fragment[pos + 4:pos + 6], "big")
                offset = int.from_bytes(fragment[pos + 6:pos + 9], "big")
                frag_len = int.from_bytes(fragment[pos + 9:pos + 12], "big")
                data = fragment[pos + 12:pos + 12 + frag_len]
                _, body, have = self.parts.setdefault(
                    message_seq, (msg_type, bytearray(length), set()))
                body[offset:offset + frag_len] = data
                have.update(range(offset, offset + frag_len))
                pos += 12 + frag_len

    def complete(self) -> list[tuple[int, bytes]]:
        return [(t, bytes(body)) for _, (t, body, have) in sorted(self.parts.items())
                if len(have) == len(body)]


def handshake_record(msg_type: int, body: bytes, message_seq: int, record_seq: int,
                     version: int = DTLS1_2) -> bytes:
    """One unfragmented handshake message in one epoch-0 record."""
    length = len(body).to_bytes(3, "big")
    hs = (bytes([msg_type]) + length + message_seq.to_bytes(2, "big") + bytes(3) + length
          + body)
    return (bytes([22]) + version.to_bytes(2, "big") + bytes(2) + record_seq.to_bytes(6, "big")
            + len(hs).to_bytes(2, "big") + hs)


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(TIMEOUT)
    return sock


def first_client_hello(cmd: list[str]) -> tuple[bytes, bytes]:
    """Run a DTLS client at a bare UDP socket; return (raw datagram, ClientHello body)."""
    with udp_socket() as sock:
        port = str(sock.getsockname()[1])
        proc = subprocess.Popen([c.replace("PORT", port) for c in cmd], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            datagram, _ = sock.recvfrom(65535)
        finally:
            proc.kill()
            proc.wait()
    return datagram, strip_headers(datagram)


def strip_headers(datagram: bytes) -> bytes:
    """Check and remove the 13-byte record header and the 12-byte handshake header."""
    assert datagram[0] == 22, "not a handshake record"
    assert datagram[1:3] in (b"\xfe\xff", b"\xfe\xfd"), "not a DTLS record"
    record_length = int.from_bytes(datagram[11:13], "big")
    hs = datagram[13:13 + record_length]
    assert hs[0] == HandshakeType.client_hello
    length = int.from_bytes(hs[1:4], "big")
    offset, frag_len = int.from_bytes(hs[6:9], "big"), int.from_bytes(hs[9:12], "big")
    assert offset == 0 and frag_len == length == len(hs) - 12, "fragmented ClientHello"
    return hs[12:]


def check_real_client_hello(body: bytes, version: int = DTLS1_2,
                            cookie: bytes = b"", ecc: bool = True) -> ClientHello:
    """Decode a captured ClientHello, check the basics, and that it re-encodes exactly.

    `ecc=False` for a client offering only plain PSK suites, which (rightly, RFC 8422
    4) sends no supported_groups.
    """
    ch = decode(pull_client_hello, body)
    assert ch.client_version == version
    assert ch.cipher_suites and len(ch.random) == 32 and ch.cookie == cookie
    assert 0 in ch.compression_methods
    if ecc:
        assert find_extension(ch.extensions, SupportedGroups) is not None
    if version == DTLS1_2:
        assert find_extension(ch.extensions, SignatureAlgorithms) is not None
    assert encode(push_client_hello, ch) == body
    return ch


OPENSSL_CLIENT = [OPENSSL or "openssl", "s_client", "-connect", "127.0.0.1:PORT"]


@needs_openssl
def test_openssl_client_hello() -> None:
    _, body = first_client_hello(OPENSSL_CLIENT + ["-dtls1_2"])
    ch = check_real_client_hello(body)
    assert find_extension(ch.extensions, ExtendedMasterSecret) is not None
    groups = find_extension(ch.extensions, SupportedGroups)
    assert groups is not None and NamedGroup.x25519 in groups.groups


@needs_openssl
def test_openssl_client_hello_with_sni_alpn_srtp() -> None:
    _, body = first_client_hello(OPENSSL_CLIENT + [
        "-dtls1_2", "-servername", "example.com", "-alpn", "h2,http/1.1",
        "-use_srtp", "SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM"])
    ch = check_real_client_hello(body)
    assert find_extension(ch.extensions, ServerName) == ServerName("example.com")
    assert find_extension(ch.extensions, ALPN) == ALPN([b"h2", b"http/1.1"])
    assert find_extension(ch.extensions, UseSrtp) == UseSrtp([1, 7], b"")


@needs_openssl
def test_openssl_client_hello_dtls1_0() -> None:
    _, body = first_client_hello(OPENSSL_CLIENT + ["-dtls1", "-cipher", "ALL:@SECLEVEL=0"])
    check_real_client_hello(body, DTLS1_0)


@needs_gnutls
def test_gnutls_client_hello() -> None:
    _, body = first_client_hello([
        GNUTLS_CLI or "gnutls-cli", "--udp", "--insecure", "-p", "PORT",
        "--sni-hostname", "example.com", "--alpn", "h2", "--alpn", "coap",
        "--srtp-profiles", "SRTP_AES128_CM_HMAC_SHA1_80", "127.0.0.1"])
    ch = check_real_client_hello(body)
    assert find_extension(ch.extensions, RenegotiationInfo) == RenegotiationInfo(b"")
    assert find_extension(ch.extensions, ServerName) == ServerName("example.com")
    assert find_extension(ch.extensions, ALPN) == ALPN([b"h2", b"coap"])
    assert any(isinstance(e, UnknownExtension) for e in ch.extensions)  # e.g. status_request


# -- interop: OpenSSL's server flights decoded with our codec -------------------------


@pytest.fixture(scope="module")
def ecdsa_identity(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Any, bytes]:
    """A throwaway P-256 key and self-signed certificate: (cert path, key path, key, DER)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    d = tmp_path_factory.mktemp("pki")
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return (str(d / "cert.pem"), str(d / "key.pem"), key,
            cert.public_bytes(serialization.Encoding.DER))


def free_udp_port() -> int:
    with udp_socket() as sock:
        return int(sock.getsockname()[1])


def openssl_server_flight(args: list[str], ch: ClientHello,
                          until: int = HandshakeType.server_hello_done
                          ) -> tuple[HelloVerifyRequest, list[tuple[int, bytes]]]:
    """Send our ClientHello to `openssl s_server`, answer its HelloVerifyRequest, and
    return the HVR and the reassembled (msg_type, body) list of its next flight."""
    port = free_udp_port()
    proc = subprocess.Popen([OPENSSL or "openssl", "s_server", "-accept", str(port), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, bufsize=0)
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline, output = time.monotonic() + TIMEOUT, b""
        while b"ACCEPT" not in output:  # s_server prints ACCEPT once its socket is bound
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                pytest.skip(f"openssl s_server {' '.join(args)} did not start: {output!r}")
            output += chunk
        with udp_socket() as sock:
            sock.connect(("127.0.0.1", port))
            sock.send(handshake_record(1, encode(push_client_hello, ch), 0, 0, DTLS1_0))
            first = Reassembler()
            first.feed(sock.recv(65535))
            [(msg_type, body)] = first.complete()
            assert msg_type == HandshakeType.hello_verify_request
            hvr = decode_handshake(msg_type, body)
            assert isinstance(hvr, HelloVerifyRequest)
            # RFC 6347 4.2.1: the second ClientHello echoes the cookie, message_seq 1.
            ch.cookie = hvr.cookie
            sock.send(handshake_record(1, encode(push_client_hello, ch), 1, 1, DTLS1_0))
            flight = Reassembler()
            while not any(t == until for t, _ in flight.complete()):
                flight.feed(sock.recv(65535))
                for content_type, fragment in flight.other:
                    if content_type == 21:
                        pytest.fail(f"openssl sent an alert: {decode(pull_alert, fragment)}")
            return hvr, flight.complete()
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def our_client_hello(version: int, suites: list[int], sigalgs: bool = True) -> ClientHello:
    exts: list[Extension] = [SupportedGroups([NamedGroup.x25519, NamedGroup.secp256r1]),
                             ECPointFormats([0]), ExtendedMasterSecret(), RenegotiationInfo()]
    if sigalgs:
        exts.insert(2, SignatureAlgorithms([SignatureScheme.ecdsa_secp256r1_sha256,
                                            SignatureScheme.rsa_pss_rsae_sha256]))
    return ClientHello(version, os.urandom(32), cipher_suites=suites, extensions=exts)


@needs_openssl
@pytest.mark.parametrize("version", [DTLS1_2, DTLS1_0], ids=["dtls1_2", "dtls1_0"])
def test_openssl_server_ecdhe_ecdsa_flight(version: int,
                                           ecdsa_identity: tuple[str, str, Any, bytes]
                                           ) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    cert_path, key_path, key, der = ecdsa_identity
    dtls12 = version == DTLS1_2
    suite = 0xC02B if dtls12 else 0xC009  # ECDHE-ECDSA-AES128-GCM-SHA256 / -AES128-SHA
    ch = our_client_hello(version, [suite], sigalgs=dtls12)
    hvr, flight = openssl_server_flight(
        ["-dtls1_2" if dtls12 else "-dtls1", "-cipher", "ALL:@SECLEVEL=0",
         "-cert", cert_path, "-key", key_path, "-verify", "1"], ch)
    assert len(hvr.cookie) > 0
    kx = KeyExchangeAlgorithm.ECDHE
    msgs = [decode_handshake(t, b, version=version, key_exchange=kx) for t, b in flight]
    assert [type(m) for m in msgs] == [ServerHello, Certificate, ServerKeyExchangeECDHE,
                                       CertificateRequest, ServerHelloDone]
    sh, cert, ske, creq, _ = msgs
    assert isinstance(sh, ServerHello) and sh.cipher_suite == suite
    assert sh.server_version == version
    assert find_extension(sh.extensions, ExtendedMasterSecret) is not None
    assert isinstance(cert, Certificate) and cert.certificates == [der]
    assert isinstance(ske, ServerKeyExchangeECDHE)
    assert ske.params.named_group == NamedGroup.x25519 and len(ske.params.public_key) == 32
    assert isinstance(creq, CertificateRequest)
    assert (creq.supported_signature_algorithms is not None) == dtls12
    # The signature covers client_random + server_random + ServerECDHParams (RFC 8422
    # 5.4): re-encoding the params must reproduce exactly what OpenSSL signed.
    if dtls12:
        assert ske.signature_algorithm == SignatureScheme.ecdsa_secp256r1_sha256
    signed = ch.random + sh.random + encode(push_server_ecdh_params, ske.params)
    digest = hashes.SHA256() if dtls12 else hashes.SHA1()
    key.public_key().verify(ske.signature, signed, ec.ECDSA(digest))
    for t, body in flight:  # and every body re-encodes to the bytes OpenSSL sent
        msg = decode_handshake(t, body, version=version, key_exchange=kx)
        assert encode_handshake(msg, version=version) == (t, body)


@needs_openssl
@pytest.mark.parametrize("suite,kx", [(0x00A8, PSK), (0xC035, ECDHE_PSK)],
                         ids=["psk", "ecdhe_psk"])
def test_openssl_server_psk_flight(suite: int, kx: KeyExchangeAlgorithm) -> None:
    ch = our_client_hello(DTLS1_2, [suite])
    _, flight = openssl_server_flight(
        ["-dtls1_2", "-nocert", "-psk", "0102030405060708", "-psk_hint", "the hint",
         "-cipher", "PSK:ECDHEPSK"], ch)
    msgs = [decode_handshake(t, b, key_exchange=kx) for t, b in flight]
    assert [m.msg_type for m in msgs] == [2, 12, 14]
    ske = msgs[1]
    assert isinstance(ske, (ServerKeyExchangePSK, ServerKeyExchangeECDHEPSK))
    assert ske.psk_identity_hint == b"the hint"
    if isinstance(ske, ServerKeyExchangeECDHEPSK):
        assert ske.params.named_group == NamedGroup.x25519
    for (t, body), msg in zip(flight, msgs):
        assert encode_handshake(msg) == (t, body)


# -- interop: OpenSSL's client answering flights we encode ----------------------------


def serve_openssl_client(client_args: list[str], flight: Callable[[ClientHello], list[Any]],
                         kx: KeyExchangeAlgorithm) -> tuple[ClientHello, Any, list[int]]:
    """Play server for `openssl s_client`: HVR, then `flight(second ClientHello)`.

    Returns the cookie-bearing ClientHello, the decoded ClientKeyExchange, and the
    content types of the non-handshake records that followed (CCS expected).
    """
    with udp_socket() as sock:
        port = str(sock.getsockname()[1])
        proc = subprocess.Popen([OPENSSL or "openssl", "s_client", "-dtls1_2", "-connect",
                                 f"127.0.0.1:{port}", *client_args], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            datagram, addr = sock.recvfrom(65535)
            ecc = kx is not KeyExchangeAlgorithm.PSK
            check_real_client_hello(strip_headers(datagram), ecc=ecc)
            cookie = os.urandom(20)
            sock.sendto(handshake_record(
                3, encode(push_hello_verify_request, HelloVerifyRequest(DTLS1_0, cookie)),
                0, 0, DTLS1_0), addr)
            datagram, addr = sock.recvfrom(65535)
            # RFC 6347 4.2.1: the client retries with our cookie.
            ch = check_real_client_hello(strip_headers(datagram), cookie=cookie, ecc=ecc)
            out = b"".join(handshake_record(*encode_handshake(msg), seq + 1, seq + 1)
                           for seq, msg in enumerate(flight(ch)))
            sock.sendto(out, addr)
            answer = Reassembler()
            while not answer.complete() or not answer.other:
                answer.feed(sock.recvfrom(65535)[0])
                for content_type, fragment in answer.other:
                    if content_type == 21:
                        pytest.fail(f"openssl sent an alert: {decode(pull_alert, fragment)}")
            [(msg_type, body)] = answer.complete()
            assert msg_type == HandshakeType.client_key_exchange
            cke = decode_handshake(msg_type, body, key_exchange=kx)
            assert encode_handshake(cke) == (msg_type, body)
            _, ccs = answer.other[0]
            assert decode(pull_change_cipher_spec, ccs) == ChangeCipherSpec()
            return ch, cke, [t for t, _ in answer.other]
        finally:
            proc.kill()
            proc.wait()


def server_hello_for(ch: ClientHello, suite: int) -> ServerHello:
    """A ServerHello answering only extensions the client sent (RFC 5246 7.4.1.4: an
    unsolicited one draws unsupported_extension, as OpenSSL's PSK-only client shows)."""
    exts: list[Extension] = [RenegotiationInfo()]  # client sent the SCSV (RFC 5746 3.6)
    if find_extension(ch.extensions, ECPointFormats) is not None:
        exts.append(ECPointFormats([0]))
    if find_extension(ch.extensions, ExtendedMasterSecret) is not None:
        exts.append(ExtendedMasterSecret())
    return ServerHello(DTLS1_2, os.urandom(32), os.urandom(32), suite, 0, exts)


def x25519_public() -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    return X25519PrivateKey.generate().public_key().public_bytes_raw()


@needs_openssl
def test_openssl_client_accepts_our_signed_ecdhe_flight(
        ecdsa_identity: tuple[str, str, Any, bytes]) -> None:
    """OpenSSL checks our ServerKeyExchange signature, so a ClientKeyExchange coming back
    proves ServerHello/Certificate/SKE/CertificateRequest/ServerHelloDone encode right."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    _, _, key, der_cert = ecdsa_identity

    def flight(ch: ClientHello) -> list[Any]:
        sh = server_hello_for(ch, 0xC02B)
        params = ServerECDHParams(NamedGroup.x25519, x25519_public())
        signed = ch.random + sh.random + encode(push_server_ecdh_params, params)
        signature = key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return [sh, Certificate([der_cert]),
                ServerKeyExchangeECDHE(params, SignatureScheme.ecdsa_secp256r1_sha256,
                                       signature),
                ServerHelloDone()]

    _, cke, _ = serve_openssl_client(["-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], flight, ECDHE)
    assert isinstance(cke, ClientKeyExchangeECDHE) and len(cke.public_key) == 32


@needs_openssl
@pytest.mark.parametrize("suite,cipher,kx", [
    (0x00A8, "PSK-AES128-GCM-SHA256", PSK),
    (0xC037, "ECDHE-PSK-AES128-CBC-SHA256", ECDHE_PSK),
], ids=["psk", "ecdhe_psk"])
def test_openssl_client_psk_key_exchange(suite: int, cipher: str,
                                         kx: KeyExchangeAlgorithm) -> None:
    def flight(ch: ClientHello) -> list[Any]:
        ske: Any = (ServerKeyExchangePSK(b"hint") if kx is PSK else
                    ServerKeyExchangeECDHEPSK(b"hint", ServerECDHParams(29, x25519_public())))
        return [server_hello_for(ch, suite), ske, ServerHelloDone()]

    _, cke, _ = serve_openssl_client(
        ["-psk", "0102030405060708", "-psk_identity", "client-7", "-cipher", cipher], flight, kx)
    assert cke.psk_identity == b"client-7"
    if kx is ECDHE_PSK:
        assert isinstance(cke, ClientKeyExchangeECDHEPSK) and len(cke.public_key) == 32


def test_extension_type_names_cover_models() -> None:
    for cls in (ServerName, SupportedGroups, ECPointFormats, SignatureAlgorithms,
                ExtendedMasterSecret, EncryptThenMac, RenegotiationInfo, SessionTicket, ALPN,
                UseSrtp):
        assert ExtensionType(cls.extension_type).name


def test_context_dependent_extension_encoding() -> None:
    with pytest.raises(InternalError, match="needs a host_name"):
        encode(lambda b, e: push_extension(b, e, CH), ServerName(None))
    with pytest.raises(InternalError, match="carries no name"):
        encode(lambda b, e: push_extension(b, e, SH), ServerName("a.io"))
    with pytest.raises(InternalError, match="not ASCII"):
        encode(lambda b, e: push_extension(b, e, CH), ServerName("bücher.de"))
    with pytest.raises(InternalError, match="must be empty"):
        encode(lambda b, e: push_extension(b, e, SH), SessionTicket(b"x"))
    with pytest.raises(InternalError, match="protocol_name_list"):
        encode(lambda b, e: push_extension(b, e, CH), ALPN([]))
