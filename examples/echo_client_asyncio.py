"""asyncio DTLS echo client: sends each argument, prints each reply.

    python examples/echo_client_asyncio.py HOST PORT FINGERPRINT_HEX [MESSAGE...]

FINGERPRINT_HEX is the SHA-256 of the server's certificate (echo_server_asyncio.py
prints it): the client pins it, WebRTC style, instead of checking a CA.
"""

import asyncio
import sys

import dtls.aio
from dtls.config import DtlsConfiguration


async def main(host: str, port: str, fingerprint: str, *messages: str) -> None:
    config = DtlsConfiguration(pinned_sha256=(bytes.fromhex(fingerprint),))
    async with await dtls.aio.connect(host, int(port), config) as client:
        print("connected:", client.cipher_suite.name)
        for message in messages or ("hello",):
            client.send(message.encode())
            print("reply:", (await asyncio.wait_for(client.recv(), 5)).decode())


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
