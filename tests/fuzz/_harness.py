"""Shared setup for the atheris harnesses in this directory (not a test module).

Deterministic where the protocol allows it, so that a corpus recorded once stays deep:
`dtls.connection`'s randoms (client/server random, session ID) come from a fixed
function instead of os.urandom, the cookie secret is fixed, and the certificate and key
are stored next to the corpus (corpus/identity.pem) by make_corpus.py.  ECDHE key
pairs still come from OpenSSL's RNG, so a recorded flight gets a victim as far as the
peer's Finished (which then fails to verify), not further.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CORPUS = HERE / "corpus"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

CLIENT_ADDR = ("192.0.2.1", 40000)
SERVER_ADDR = ("192.0.2.2", 4433)
COOKIE_SECRET = b"fuzz-cookie-secret-0123456789abc"


def fixed_randoms() -> None:
    """Replace the randoms dtls.connection draws with a fixed stream (fuzzing only)."""
    from dtls import connection
    connection.os = types.SimpleNamespace(urandom=lambda n: b"\x5a" * n)  # type: ignore[attr-defined]


def identity() -> tuple[Any, Any]:
    """The server certificate and key the corpus was recorded with (made if missing)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    path = CORPUS / "identity.pem"
    if not path.exists():
        from dtls_testing import make_certificate
        cert, key = make_certificate("localhost")
        CORPUS.mkdir(exist_ok=True)
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    data = path.read_bytes()
    return (x509.load_pem_x509_certificate(data),
            serialization.load_pem_private_key(data, password=None))


def configurations() -> tuple[Any, Any]:
    """(client, server) DtlsConfiguration for the victims; the client verifies nothing
    (any certificate passes), so fuzzed flights get past the Certificate."""
    from dtls.config import DtlsConfiguration
    from dtls.cookie import CookieSigner
    cert, key = identity()
    client = DtlsConfiguration(server_name="localhost", verify_peer=False)
    server = DtlsConfiguration(is_client=False, certificate_chain=[cert], private_key=key,
                               cookie_signer=CookieSigner(secret=COOKIE_SECRET))
    return client, server


def frames(data: bytes) -> list[bytes]:
    """Split an input into datagrams: [2-byte length][bytes]..., the tail as the last."""
    out = []
    pos = 0
    while len(data) - pos >= 2:
        n = int.from_bytes(data[pos:pos + 2], "big")
        if n == 0 or pos + 2 + n > len(data):
            break
        out.append(data[pos + 2:pos + 2 + n])
        pos += 2 + n
    if pos < len(data):
        out.append(data[pos:])
    return out


def framed(datagrams: list[bytes]) -> bytes:
    return b"".join(len(d).to_bytes(2, "big") + d for d in datagrams)


def run(test_one_input: Any, corpus_dir: str) -> None:
    """atheris.Setup + Fuzz; the corpus directory is added when none is given."""
    import atheris
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        argv.append(str(CORPUS / corpus_dir))
    os.makedirs(CORPUS / corpus_dir, exist_ok=True)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
