"""Our wire format, checked by a real dissector: Wireshark's (tshark).

A full DTLS 1.2 handshake between our client and our server (mutual certificate
authentication, so both sides send Certificate, or PSK with an identity hint; the
HelloVerifyRequest cookie exchange; AES-GCM, AES-CBC with and without EtM; then
application data both ways and close_notify) is written datagram by datagram to a pcap
(a tiny writer below: IPv4/UDP in LINKTYPE_RAW, addresses from dtls_testing), together
with the SSLKEYLOGFILE lines our `keylog` hook produced.  tshark must then decode every
record and every handshake message in both directions -- including the encrypted
Finished messages and the application data, which it can only do if our key log and our
record protection are right -- with no "Malformed" packet and no error-level expert info.

Skipped (with the reason) when tshark is not installed: Debian package ``tshark``
(``DEBIAN_FRONTEND=noninteractive apt-get install -y tshark``).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from dtls_testing import CLIENT_ADDR, SERVER_ADDR, Endpoint, Link, make_certificate

from dtls.config import ClientAuth, DtlsConfiguration
from dtls.connection import Connection
from dtls.events import ApplicationData, ConnectionTerminated, HandshakeCompleted
from dtls.suites import CipherSuite

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed (Debian package "
                                "tshark: apt-get install -y tshark)")

PSK = bytes(range(32))
LINKTYPE_RAW = 101  # each packet starts with the IPv4 header


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip4(addr: str) -> bytes:
    return bytes(int(x) for x in addr.split("."))


def udp_packet(src: tuple[str, int], dst: tuple[str, int], payload: bytes, ident: int) -> bytes:
    """An IPv4 + UDP packet carrying `payload` (both checksums correct)."""
    udp_len = 8 + len(payload)
    pseudo = _ip4(src[0]) + _ip4(dst[0]) + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", src[1], dst[1], udp_len, 0) + payload
    udp_sum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", udp_sum) + udp[8:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ident & 0xFFFF, 0x4000, 64,
                         17, 0, _ip4(src[0]), _ip4(dst[0]))
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + udp


def write_pcap(path: Path, packets: list[tuple[float, bytes]]) -> None:
    """libpcap format (microsecond timestamps), LINKTYPE_RAW."""
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        for when, data in packets:
            sec, usec = int(when), int((when - int(when)) * 1_000_000)
            f.write(struct.pack("<IIII", 1_700_000_000 + sec, usec, len(data), len(data)))
            f.write(data)


def _handshake_capture(tmp_path: Path, suite: CipherSuite, etm: bool = True
                       ) -> tuple[Path, Path, list[str], HandshakeCompleted]:
    """Run our client against our server in memory, recording every datagram; returns
    (pcap, key log, direction of each packet 'c2s'/'s2c', the client's HandshakeCompleted)."""
    ca, ca_key = make_certificate("Wire CA", ca=True)
    server_cert, server_key = make_certificate("localhost", issuer=(ca, ca_key))
    client_cert, client_key = make_certificate("wire-client", issuer=(ca, ca_key), client=True)
    keylog: list[str] = []
    if "PSK" in suite.name:  # with an identity hint, so ServerKeyExchange is sent
        client = Connection(DtlsConfiguration(
            psk=PSK, psk_identity=b"wire-id", cipher_suites=(suite,), keylog=keylog.append),
            peer_address=SERVER_ADDR)
        server = Connection(DtlsConfiguration(
            is_client=False, psk_lookup={b"wire-id": PSK}.get, psk_identity_hint=b"wire-hint",
            cipher_suites=(suite,)))
    else:  # mutual certificate authentication
        client = Connection(DtlsConfiguration(
            ca_certificates=(ca,), server_name="localhost", cipher_suites=(suite,),
            certificate_chain=[client_cert], private_key=client_key, encrypt_then_mac=etm,
            mac_then_encrypt=not etm,
            keylog=keylog.append), peer_address=SERVER_ADDR)
        server = Connection(DtlsConfiguration(
            is_client=False, certificate_chain=[server_cert], private_key=server_key,
            cipher_suites=(suite,), client_auth=ClientAuth.REQUIRE, ca_certificates=(ca,),
            encrypt_then_mac=etm, mac_then_encrypt=not etm))
    link = Link(client, server)
    packets: list[tuple[float, bytes]] = []
    directions: list[str] = []

    def record(destination: Endpoint, datagram: bytes) -> bytes:
        to_server = destination is link.server
        src, dst = (CLIENT_ADDR, SERVER_ADDR) if to_server else (SERVER_ADDR, CLIENT_ADDR)
        packets.append((link.now, udp_packet(src, dst, datagram, len(packets))))
        directions.append("c2s" if to_server else "s2c")
        return datagram

    link.filter = record
    client.connect(link.now)
    link.run(until=lambda: bool(link.client.of_type(HandshakeCompleted)
                                and link.server.of_type(HandshakeCompleted)))
    done = link.client.of_type(HandshakeCompleted)
    assert done and link.server.of_type(HandshakeCompleted), (link.client.events,
                                                              link.server.events)
    client.send(b"ping from our client\n")
    server.send(b"pong from our server\n")
    link.run(until=lambda: bool(link.client.of_type(ApplicationData)
                                and link.server.of_type(ApplicationData)))
    client.close()
    link.run(until=lambda: bool(link.server.of_type(ConnectionTerminated)))
    assert link.server.of_type(ConnectionTerminated)[0].by_peer
    pcap, keys = tmp_path / "handshake.pcap", tmp_path / "keylog.txt"
    write_pcap(pcap, packets)
    keys.write_text("".join(line + "\n" for line in keylog))
    assert keylog, "our keylog hook produced no line"
    return pcap, keys, directions, done[0]


def _tshark(pcap: Path, keys: Path, *args: str) -> str:
    assert TSHARK is not None
    result = subprocess.run(
        [TSHARK, "-n", "-r", str(pcap), "-d", f"udp.port=={SERVER_ADDR[1]},dtls",
         "-o", f"tls.keylog_file:{keys}", *args],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


HANDSHAKE_TYPES = {1: "ClientHello", 2: "ServerHello", 3: "HelloVerifyRequest",
                   4: "NewSessionTicket",
                   11: "Certificate", 12: "ServerKeyExchange", 13: "CertificateRequest",
                   14: "ServerHelloDone", 15: "CertificateVerify", 16: "ClientKeyExchange",
                   20: "Finished"}


@pytest.mark.parametrize("suite, etm", [
    pytest.param(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, True, id="aes128-gcm"),
    pytest.param(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, True, id="aes128-cbc-etm"),
    pytest.param(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, False,
                 id="aes128-cbc-mac-then-encrypt"),
    pytest.param(CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256, True, id="psk-aes128-gcm"),
])
def test_tshark_decodes_our_full_handshake(tmp_path: Path, suite: CipherSuite,
                                           etm: bool) -> None:
    pcap, keys, directions, done = _handshake_capture(tmp_path, suite, etm)
    assert done.cipher_suite is suite
    assert done.encrypt_then_mac is (etm and "CBC" in suite.name)

    verbose = _tshark(pcap, keys, "-V")
    assert "Malformed" not in verbose, verbose
    assert "Expert Info (Error" not in verbose, verbose
    assert "[Expert Info (Warning" not in verbose, verbose
    code = f"0x{suite.value:04x}"
    assert f"Cipher Suite: {suite.name} ({code})" in verbose, verbose

    # One line per packet: its protocols, record content types and handshake types.
    fields = _tshark(pcap, keys, "-T", "fields", "-E", "separator=|", "-e", "frame.protocols",
                     "-e", "dtls.record.content_type", "-e", "dtls.handshake.type",
                     "-e", "dtls.record.version", "-e", "_ws.expert.severity")
    rows = [line.split("|") for line in fields.splitlines()]
    assert len(rows) == len(directions), (len(rows), len(directions), fields)
    seen: dict[str, set[str]] = {"c2s": set(), "s2c": set()}
    content: dict[str, set[int]] = {"c2s": set(), "s2c": set()}
    for (protocols, ctypes, htypes, versions, severity), direction in zip(rows, directions):
        assert protocols.startswith("raw:ip:udp:dtls"), (protocols, fields)  # all dissected
        assert ctypes, ("a packet with no DTLS record", fields)
        assert set(versions.split(",")) <= {"0xfefd", "0xfeff"}, versions
        assert not severity or int(severity.split(",")[0], 0) < 0x00600000, (severity, fields)
        content[direction].update(int(c) for c in ctypes.split(","))
        seen[direction].update(HANDSHAKE_TYPES.get(int(h), f"type {h}")
                               for h in htypes.split(",") if h)
    # A server that issues session tickets (RFC 5077) adds NewSessionTicket before its
    # ChangeCipherSpec; nothing else may appear.
    seen["s2c"].discard("NewSessionTicket")
    # A server that issues session tickets (RFC 5077) adds NewSessionTicket before its
    # ChangeCipherSpec; nothing else may appear.
    seen["s2c"].discard("NewSessionTicket")
    if "PSK" in suite.name:
        assert seen["c2s"] == {"ClientHello", "ClientKeyExchange", "Finished"}, seen
        assert seen["s2c"] == {"HelloVerifyRequest", "ServerHello", "ServerKeyExchange",
                               "ServerHelloDone", "Finished"}, seen
        assert f"Identity: {b'wire-id'.hex()}" in verbose, verbose  # PSK Client Params
        assert f"Hint: {b'wire-hint'.hex()}" in verbose, verbose      # PSK Server Params
    else:
        assert seen["c2s"] == {"ClientHello", "Certificate", "ClientKeyExchange",
                               "CertificateVerify", "Finished"}, seen
        assert seen["s2c"] == {"HelloVerifyRequest", "ServerHello", "Certificate",
                               "ServerKeyExchange", "CertificateRequest", "ServerHelloDone",
                               "Finished"}, seen
    # change_cipher_spec, alert (close_notify), handshake, application_data
    assert content["c2s"] == {20, 21, 22, 23}, content
    assert {20, 22, 23} <= content["s2c"], content

    # The ClientHello is sent twice: without a cookie, then with the server's 32-byte one.
    hellos = _tshark(pcap, keys, "-Y", "dtls.handshake.type == 1", "-T", "fields",
                     "-e", "dtls.handshake.cookie_length")
    assert hellos.split() == ["0", "32"], hellos
    # Decrypted with our key log: the application data both ways and the close_notify.
    data = _tshark(pcap, keys, "-Y", "dtls.app_data", "-T", "fields", "-e", "data.data")
    assert [bytes.fromhex(h) for h in data.split()] == [b"ping from our client\n",
                                                        b"pong from our server\n"], data
    alerts = _tshark(pcap, keys, "-Y", "dtls.alert_message", "-T", "fields",
                     "-e", "dtls.alert_message.level", "-e", "dtls.alert_message.desc")
    assert alerts.split() == ["1", "0"], alerts  # warning, close_notify
    summary = _tshark(pcap, keys)
    assert "Encrypted Handshake Message" not in summary, summary  # Finished decrypted
