"""A DTLS echo server on one UDP socket serving many peers (blocking).

    python -m dtls selfsigned                      # writes cert.pem and key.pem
    python examples/echo_server_blocking.py cert.pem key.pem 4433
    python -m dtls client 127.0.0.1:4433 --ca cert.pem   # or: openssl s_client -dtls1_2 ...
"""

import sys

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from dtls.config import DtlsConfiguration
from dtls.server import ServerLimits, Session, serve


def echo(session: Session, data: bytes) -> bytes:
    print(f"{session.address}: {data!r}")
    return data  # whatever the handler returns goes back to that peer


if __name__ == "__main__":
    cert_path, key_path, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(cert_path, "rb") as f:
        chain = x509.load_pem_x509_certificates(f.read())
    with open(key_path, "rb") as f:
        key = load_pem_private_key(f.read(), password=None)
    config = DtlsConfiguration(is_client=False, certificate_chain=chain,
                               private_key=key)  # type: ignore[arg-type]
    limits = ServerLimits(max_sessions=1000, idle_timeout=120.0)
    print(f"echoing on 127.0.0.1:{port} (Ctrl-C stops)")
    serve(("127.0.0.1", port), config, echo, limits=limits)
