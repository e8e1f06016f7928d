"""asyncio DTLS echo server on one UDP socket, one handler task per peer.

    python examples/echo_server_asyncio.py CERT.pem KEY.pem [PORT]

It prints its certificate's SHA-256 fingerprint for the clients to pin.  A test
certificate: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
-subj /CN=localhost -days 30 -keyout key.pem -out cert.pem
"""

import asyncio
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

import dtls.aio
from dtls.config import DtlsConfiguration
from dtls.verify import fingerprint_sha256


async def echo(peer: dtls.aio.DtlsPeer) -> None:
    print("handshake with", peer.peer_address, peer.cipher_suite.name, flush=True)
    async for data in peer:  # until the peer sends close_notify
        peer.send(data)


async def main(cert: str, key: str, port: str = "4433") -> None:
    chain = x509.load_pem_x509_certificates(Path(cert).read_bytes())
    config = DtlsConfiguration(is_client=False, certificate_chain=chain,
                               private_key=load_pem_private_key(Path(key).read_bytes(), None))
    async with await dtls.aio.serve(echo, "127.0.0.1", int(port), config) as server:
        print("listening on", server.address, flush=True)
        print("fingerprint", fingerprint_sha256(chain[0]).hex(), flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
