"""Blocking DTLS echo client: a UDP client with its socket swapped for dtls.connect().

    python examples/echo_client_blocking.py HOST PORT FINGERPRINT_HEX [MESSAGE...]

FINGERPRINT_HEX is the SHA-256 of the server's certificate (echo_server_asyncio.py
prints it; `openssl x509 -noout -fingerprint -sha256` too, without the colons).
"""

import sys

import dtls
from dtls.config import DtlsConfiguration


def main(host: str, port: str, fingerprint: str, *messages: str) -> None:
    config = DtlsConfiguration(pinned_sha256=(bytes.fromhex(fingerprint.replace(":", "")),))
    with dtls.connect((host, int(port)), config, timeout=5) as sock:
        for message in messages or ("hello",):
            sock.send(message.encode())  # one datagram; the first send runs the handshake
            print("reply:", sock.recv(65536).decode())
        print("cipher suite:", sock.cipher_suite.name)
    # leaving the block sent close_notify and closed the socket


if __name__ == "__main__":
    main(*sys.argv[1:])
