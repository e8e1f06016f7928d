"""The DTLS 1.2 / 1.0 key schedule: PRF, master secret, key block, Finished, exporter, ECDHE.

Everything here is a pure function of its inputs (plus `os.urandom` for key generation):
the handshake feeds in randoms, premaster secrets and transcript hashes and gets back the
bytes that go into `CipherState(...)` and Finished messages.

* PRF: TLS 1.2 P_SHA256 / P_SHA384 (RFC 5246 5) for DTLS 1.2, and the TLS 1.0/1.1
  MD5 XOR SHA-1 construction (RFC 4346 5) for DTLS 1.0, which RFC 4347 4.1 inherits.
* master secret (RFC 5246 8.1), extended master secret (RFC 7627 4), key block
  (RFC 5246 6.3), Finished verify_data (RFC 5246 7.4.9), exporter (RFC 5705 4).
* premaster secrets for PSK (RFC 4279 2) and ECDHE_PSK (RFC 5489 2); ECDHE over x25519,
  secp256r1 and secp384r1 (RFC 8422 5) with peer point validation.

Secrets come back as `SecretBytes`, a `bytes` whose repr and str never show the content,
so a stray log line or dataclass repr in the handshake cannot leak them.  The only
function that renders a secret is `keylog_line`, for the SSLKEYLOGFILE a user asked for.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import Enum
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from .alerts import DecodeError, DecryptError, IllegalParameter, InternalError
from .extensions import NamedGroup
from .protection import Protection

Buffer = bytes | bytearray | memoryview

RANDOM_LENGTH = 32
"""ClientHello.random / ServerHello.random (RFC 5246 7.4.1.2)."""

MASTER_SECRET_LENGTH = 48
"""RFC 5246 8.1: the master secret is always exactly 48 bytes."""

VERIFY_DATA_LENGTH = 12
"""RFC 5246 7.4.9: verify_data_length defaults to 12 and every suite here keeps it."""

MAX_PRF_OUTPUT = (1 << 16) - 1
"""Largest PRF output we produce in one call (bounds exporter requests; key blocks are < 200)."""

MAX_PSK_LENGTH = (1 << 16) - 1
"""RFC 4279 2 / 5.3: the PSK travels in a uint16-length vector inside the premaster secret."""

DTLS_SRTP_EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"
"""RFC 5764 4.2: the exporter label DTLS-SRTP uses to derive SRTP master keys and salts."""

_RESERVED_EXPORTER_LABELS = frozenset(
    {b"client finished", b"server finished", b"master secret", b"key expansion",
     b"extended master secret"}
)
"""RFC 5705 4 (and RFC 7627 4): labels the TLS key schedule itself uses; exporting under
them would hand the application a Finished value or key block."""


class SecretBytes(bytes):
    """Bytes that hold a secret: usable wherever bytes are, never shown by repr/str.

    Slicing or concatenating yields plain bytes (as any bytes subclass does), so only
    values this module returns are marked; that is the point where secrets are born.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<secret: {len(self)} bytes>"

    __str__ = __repr__


class PrfAlgorithm(Enum):
    """Which PRF a connection uses: fixed by the version and, for DTLS 1.2, the suite."""

    MD5_SHA1 = "md5-sha1"
    """TLS 1.0/1.1 PRF (RFC 4346 5), used by DTLS 1.0 whatever the suite."""
    SHA256 = "sha256"
    """TLS 1.2 PRF with P_SHA256 (RFC 5246 5): every suite not ending in _SHA384."""
    SHA384 = "sha384"
    """TLS 1.2 PRF with P_SHA384 (RFC 5288 / RFC 5289 / RFC 5487 suites ending in _SHA384)."""

    @property
    def hash_length(self) -> int:
        """Length of the handshake hash that Finished and the EMS session_hash use."""
        return _HASH_LENGTH[self]


_HASH_LENGTH = {PrfAlgorithm.MD5_SHA1: 16 + 20, PrfAlgorithm.SHA256: 32, PrfAlgorithm.SHA384: 48}


# --- PRF -----------------------------------------------------------------------------------

_openssl_hmac_new: Any
try:
    import _hashlib
    _openssl_hmac_new = _hashlib.hmac_new
except ImportError:  # pragma: no cover - Python built without OpenSSL
    _openssl_hmac_new = None


def _hmac_new(key: bytes, digestmod: str) -> Any:
    """A keyed HMAC to copy(): OpenSSL's HMAC object itself, whose copy() is C, where
    hmac.HMAC.copy is Python that builds a new wrapper (the PRF copies the keyed HMAC
    twice per output block, ~16 times per handshake).  Same HMAC, same bytes; hmac.new
    (which falls back to its pure-Python HMAC) where OpenSSL lacks the digest."""
    if _openssl_hmac_new is not None:
        try:
            return _openssl_hmac_new(key, digestmod=digestmod)
        except ValueError:  # UnsupportedDigestmodError (e.g. MD5 under FIPS)
            pass
    return hmac.new(key, digestmod=digestmod)


def p_hash(hash_name: str, secret: Buffer, seed: Buffer, length: int) -> bytes:
    """P_hash(secret, seed) truncated to `length` bytes (RFC 5246 5).

    A(0) = seed, A(i) = HMAC(secret, A(i-1)); output = HMAC(secret, A(1) + seed) ||
    HMAC(secret, A(2) + seed) || ...  The keyed HMAC is set up once and copied, since
    hashing the key dominates for the short outputs TLS asks for.
    """
    if not 0 <= length <= MAX_PRF_OUTPUT:
        raise ValueError(f"PRF output length {length} outside 0..{MAX_PRF_OUTPUT}")
    keyed = _hmac_new(bytes(secret), digestmod=hash_name)
    seed = bytes(seed)
    out = bytearray()
    a = seed
    while len(out) < length:
        h = keyed.copy()
        h.update(a)
        a = h.digest()
        h = keyed.copy()
        h.update(a + seed)
        out += h.digest()
    return bytes(out[:length])


def prf_tls12(hash_name: str, secret: Buffer, label: bytes, seed: Buffer, length: int) -> bytes:
    """TLS 1.2 PRF: P_<hash>(secret, label + seed) (RFC 5246 5)."""
    return p_hash(hash_name, secret, bytes(label) + bytes(seed), length)


def prf_tls10(secret: Buffer, label: bytes, seed: Buffer, length: int) -> bytes:
    """TLS 1.0/1.1 PRF: P_MD5(S1, label + seed) XOR P_SHA-1(S2, label + seed) (RFC 4346 5).

    S1 and S2 are the first and last ceil(len/2) bytes of the secret: for an odd length
    they share the middle byte (RFC 4346 5, "L_S1 = L_S2 = ceil(L_S / 2)").
    """
    secret = bytes(secret)
    half = (len(secret) + 1) // 2
    label_seed = bytes(label) + bytes(seed)
    md5 = p_hash("md5", secret[:half], label_seed, length)
    sha1 = p_hash("sha1", secret[len(secret) - half:], label_seed, length)
    return bytes(x ^ y for x, y in zip(md5, sha1))


def prf(algorithm: PrfAlgorithm, secret: Buffer, label: bytes, seed: Buffer, length: int) -> bytes:
    """PRF(secret, label, seed)[0..length-1] with the connection's PRF."""
    if algorithm is PrfAlgorithm.MD5_SHA1:
        return prf_tls10(secret, label, seed, length)
    return prf_tls12(algorithm.value, secret, label, seed, length)


# --- transcript hash -----------------------------------------------------------------------


def handshake_hash(algorithm: PrfAlgorithm, handshake_messages: Buffer) -> bytes:
    """Hash(handshake_messages) as Finished (RFC 5246 7.4.9) and EMS (RFC 7627 3) use it.

    TLS 1.2 hashes with the PRF hash; TLS 1.0/1.1 (hence DTLS 1.0) concatenates MD5 and
    SHA-1 (RFC 4346 7.4.9, RFC 7627 3).
    """
    data = bytes(handshake_messages)
    if algorithm is PrfAlgorithm.MD5_SHA1:
        return hashlib.md5(data).digest() + hashlib.sha1(data).digest()
    return hashlib.new(algorithm.value, data).digest()


MAX_KEPT_TRANSCRIPT = 256 * 1024
"""Cap on the handshake messages a transcript keeps for an Ed25519 CertificateVerify.

The messages up to CertificateVerify are ClientHello through ClientKeyExchange: with the
reassembler's 64 KiB per-message cap, two certificate chains at the cap still fit."""


class HandshakeTranscript:
    """Running hash of the handshake messages, for every PRF at once.

    The PRF is only known once ServerHello picks a suite, yet ClientHello is already part
    of the transcript, so all three hashes run until then; the hashes hold no buffered
    messages, so memory is constant however long the handshake.  In DTLS the caller feeds
    each message with its 12-byte handshake header reassembled as if unfragmented, and
    leaves out the first ClientHello and HelloVerifyRequest (RFC 6347 4.2.1, 4.2.6).

    With `keep_messages` the transcript also keeps the messages themselves, exactly the
    bytes hashed, for a signature that covers the messages rather than a digest: an
    Ed25519 CertificateVerify (RFC 8422 5.8 with RFC 8032 pure EdDSA).  That copy is
    bounded by `limit` (InternalError past it) and should be dropped with
    `drop_messages` as soon as no CertificateVerify can need it.

    With `only`, just the hash(es) of that one algorithm run: for a transcript started at
    ServerHello, when the PRF is known and no CertificateVerify (which may sign with
    another hash) can come.  Each message then costs one hash update instead of four;
    `digest` of any other algorithm is an InternalError.
    """

    __slots__ = ("_limit", "_md5", "_messages", "_running", "_sha1", "_sha256", "_sha384")

    def __init__(self, *, keep_messages: bool = False,
                 limit: int = MAX_KEPT_TRANSCRIPT, only: PrfAlgorithm | None = None) -> None:
        every = only is None
        md5_sha1 = every or only is PrfAlgorithm.MD5_SHA1
        self._md5 = hashlib.md5() if md5_sha1 else None
        self._sha1 = hashlib.sha1() if md5_sha1 else None
        self._sha256 = hashlib.sha256() if every or only is PrfAlgorithm.SHA256 else None
        self._sha384 = hashlib.sha384() if every or only is PrfAlgorithm.SHA384 else None
        self._running: tuple[Any, ...] = tuple(
            h for h in (self._md5, self._sha1, self._sha256, self._sha384) if h is not None)
        self._messages: bytearray | None = bytearray() if keep_messages else None
        self._limit = limit

    def update(self, message: Buffer) -> None:
        """Append one handshake message (header included) to the transcript."""
        if self._messages is not None:
            if len(self._messages) + len(message) > self._limit:
                self._messages = None
                raise InternalError(f"handshake messages exceed {self._limit} bytes, the "
                                    "most we keep for an Ed25519 CertificateVerify")
            self._messages += message
        for h in self._running:
            h.update(message)

    def digest(self, algorithm: PrfAlgorithm) -> bytes:
        """The handshake hash so far, as `handshake_hash` would compute it."""
        if algorithm is PrfAlgorithm.MD5_SHA1:
            if self._md5 is None or self._sha1 is None:
                raise InternalError("this transcript does not run MD5 and SHA-1")
            return self._md5.copy().digest() + self._sha1.copy().digest()
        h = self._sha256 if algorithm is PrfAlgorithm.SHA256 else self._sha384
        if h is None:
            raise InternalError(f"this transcript does not run {algorithm.value}")
        return h.copy().digest()

    @property
    def keeps_messages(self) -> bool:
        """Whether `messages` is available (kept from the start and not dropped)."""
        return self._messages is not None

    def messages(self) -> bytes:
        """The handshake messages so far, concatenated; ValueError unless kept."""
        if self._messages is None:
            raise ValueError("this transcript does not keep its handshake messages")
        return bytes(self._messages)

    def drop_messages(self) -> None:
        """Forget the kept messages (the hashes keep running); idempotent."""
        self._messages = None

    def release(self) -> None:
        """Free the hashes and kept messages once the handshake is over; `digest` then
        fails (nothing may hash handshake messages after the Finished messages)."""
        self._messages = None
        self._md5 = self._sha1 = self._sha256 = self._sha384 = None
        self._running = (None,)  # update() then fails on None, as digest() does

    def __repr__(self) -> str:
        if self._messages is None:
            return "HandshakeTranscript()"
        return f"HandshakeTranscript(keeping {len(self._messages)} bytes)"


# --- master secret, key block --------------------------------------------------------------


def _check_random(name: str, value: Buffer) -> bytes:
    value = bytes(value)
    if len(value) != RANDOM_LENGTH:
        raise ValueError(f"{name} must be {RANDOM_LENGTH} bytes, not {len(value)}")
    return value


def master_secret(
    algorithm: PrfAlgorithm, pre_master_secret: Buffer, client_random: Buffer, server_random: Buffer
) -> SecretBytes:
    """PRF(pre_master_secret, "master secret", client_random + server_random)[0..47].

    RFC 5246 8.1.  Prefer `extended_master_secret` whenever the peer negotiated RFC 7627:
    this form lets a man in the middle synchronise two sessions (triple handshake).
    """
    seed = _check_random("client_random", client_random) + _check_random("server_random", server_random)
    return SecretBytes(prf(algorithm, pre_master_secret, b"master secret", seed, MASTER_SECRET_LENGTH))


def extended_master_secret(
    algorithm: PrfAlgorithm, pre_master_secret: Buffer, session_hash: Buffer
) -> SecretBytes:
    """PRF(pre_master_secret, "extended master secret", session_hash)[0..47] (RFC 7627 4).

    `session_hash` is the handshake hash up to and including ClientKeyExchange (RFC 7627 3),
    which binds the master secret to this handshake's certificates and key shares.
    """
    session_hash = bytes(session_hash)
    if len(session_hash) != algorithm.hash_length:
        raise ValueError(
            f"session_hash for {algorithm.name} must be {algorithm.hash_length} bytes, "
            f"not {len(session_hash)}"
        )
    return SecretBytes(
        prf(algorithm, pre_master_secret, b"extended master secret", session_hash, MASTER_SECRET_LENGTH)
    )


def key_block_length(protection: Protection) -> int:
    """Bytes of key block a Protection consumes (RFC 5246 6.3).

    MAC keys are as long as the MAC (RFC 5246 6.2.3.1); AEAD suites take no MAC key but a
    fixed IV (RFC 5288 3: 4-byte salt; RFC 7905 2: 12 bytes).  CBC takes no IV: TLS 1.1+
    and DTLS (both versions) carry an explicit IV in every record (RFC 4346 6.3).
    """
    return 2 * (protection.mac_length + protection.key_length + protection.fixed_iv_length)


@dataclass(frozen=True, repr=False)
class KeyMaterial:
    """The key block split into client and server write secrets (RFC 5246 6.3).

    Field order is the key block order.  The repr names the protection and lengths only.
    """

    protection: Protection
    client_write_mac_key: SecretBytes
    server_write_mac_key: SecretBytes
    client_write_key: SecretBytes
    server_write_key: SecretBytes
    client_write_iv: SecretBytes
    server_write_iv: SecretBytes

    def cipher_state_kwargs(self, client_write: bool) -> dict[str, bytes]:
        """Keyword arguments for `CipherState(protection, epoch=..., version=..., **kwargs)`.

        `client_write=True` gives the client's write keys: the client seals with them and
        the server opens with them.
        """
        if client_write:
            return {"key": self.client_write_key, "fixed_iv": self.client_write_iv,
                    "mac_key": self.client_write_mac_key}
        return {"key": self.server_write_key, "fixed_iv": self.server_write_iv,
                "mac_key": self.server_write_mac_key}

    def __repr__(self) -> str:
        p = self.protection
        return (
            f"KeyMaterial({p.cipher.name}, mac={p.mac.name}, etm={p.encrypt_then_mac}, "
            f"mac_key={p.mac_length}, key={p.key_length}, fixed_iv={p.fixed_iv_length} bytes each)"
        )


def derive_key_material(
    algorithm: PrfAlgorithm,
    master_secret: Buffer,
    client_random: Buffer,
    server_random: Buffer,
    protection: Protection,
) -> KeyMaterial:
    """key_block = PRF(master_secret, "key expansion", server_random + client_random).

    RFC 5246 6.3: note the randoms are in the opposite order to the master secret's seed.
    The key block is partitioned MAC keys, then keys, then IVs, client before server.
    """
    seed = _check_random("server_random", server_random) + _check_random("client_random", client_random)
    block = prf(algorithm, master_secret, b"key expansion", seed, key_block_length(protection))
    parts: list[SecretBytes] = []
    offset = 0
    for size in (protection.mac_length, protection.key_length, protection.fixed_iv_length):
        for _ in range(2):  # client_write_*, then server_write_*
            parts.append(SecretBytes(block[offset:offset + size]))
            offset += size
    return KeyMaterial(protection, *parts)


# --- Finished, exporter, key log -----------------------------------------------------------


def verify_data(
    algorithm: PrfAlgorithm,
    master_secret: Buffer,
    handshake_hash: Buffer,
    *,
    from_client: bool,
    length: int = VERIFY_DATA_LENGTH,
) -> bytes:
    """Finished.verify_data = PRF(master_secret, finished_label, Hash(handshake_messages)).

    RFC 5246 7.4.9: finished_label is "client finished" for the client's Finished and
    "server finished" for the server's; `handshake_hash` comes from `handshake_hash` or
    `HandshakeTranscript.digest`, taken before the Finished being computed.
    """
    handshake_hash = bytes(handshake_hash)
    if len(handshake_hash) != algorithm.hash_length:
        raise ValueError(
            f"handshake hash for {algorithm.name} must be {algorithm.hash_length} bytes, "
            f"not {len(handshake_hash)}"
        )
    label = b"client finished" if from_client else b"server finished"
    return prf(algorithm, master_secret, label, handshake_hash, length)


def check_verify_data(expected: Buffer, received: Buffer) -> None:
    """Compare a peer's verify_data in constant time; DecryptError if it differs.

    RFC 5246 7.4.9: a Finished that does not verify ends the handshake with decrypt_error.
    """
    if not hmac.compare_digest(bytes(expected), bytes(received)):
        raise DecryptError("Finished verify_data does not match the handshake")


def export_keying_material(
    algorithm: PrfAlgorithm,
    master_secret: Buffer,
    client_random: Buffer,
    server_random: Buffer,
    label: bytes | str,
    length: int,
    context: Buffer | None = None,
) -> SecretBytes:
    """RFC 5705 4 keying material exporter.

    PRF(master_secret, label, client_random + server_random [+ uint16 len + context]).
    `context=None` and `context=b""` give different outputs, as RFC 5705 4 requires.
    DTLS-SRTP (RFC 5764 4.2) calls this with `DTLS_SRTP_EXPORTER_LABEL` and no context.
    """
    label_bytes = label.encode("ascii") if isinstance(label, str) else bytes(label)
    if not label_bytes:
        raise ValueError("exporter label must not be empty")
    if label_bytes in _RESERVED_EXPORTER_LABELS:
        raise ValueError(f"exporter label {label_bytes!r} is reserved by the TLS key schedule")
    if not 1 <= length <= MAX_PRF_OUTPUT:
        raise ValueError(f"exporter length {length} outside 1..{MAX_PRF_OUTPUT}")
    seed = _check_random("client_random", client_random) + _check_random("server_random", server_random)
    if context is not None:
        context = bytes(context)
        if len(context) > 0xFFFF:
            raise ValueError("exporter context must be shorter than 2^16 bytes (RFC 5705 4)")
        seed += len(context).to_bytes(2, "big") + context
    return SecretBytes(prf(algorithm, master_secret, label_bytes, seed, length))


def keylog_line(client_random: Buffer, master_secret: Buffer) -> str:
    """One NSS key log line: "CLIENT_RANDOM <client_random hex> <master_secret hex>".

    The SSLKEYLOGFILE format Wireshark reads to decrypt (D)TLS 1.2 captures.  This is the
    one deliberate rendering of a secret: write it only where the user asked for key logs.
    """
    client_random = _check_random("client_random", client_random)
    master = bytes(master_secret)
    if len(master) != MASTER_SECRET_LENGTH:
        raise ValueError(f"master secret must be {MASTER_SECRET_LENGTH} bytes, not {len(master)}")
    return f"CLIENT_RANDOM {client_random.hex()} {master.hex()}"


# --- premaster secrets ---------------------------------------------------------------------


def _check_psk(psk: Buffer) -> bytes:
    psk = bytes(psk)
    if not 1 <= len(psk) <= MAX_PSK_LENGTH:
        raise ValueError(f"PSK length {len(psk)} outside 1..{MAX_PSK_LENGTH}")
    return psk


def psk_premaster_secret(psk: Buffer) -> SecretBytes:
    """Plain PSK premaster secret: uint16 N, N zero bytes, uint16 N, psk (RFC 4279 2)."""
    psk = _check_psk(psk)
    n = len(psk).to_bytes(2, "big")
    return SecretBytes(n + bytes(len(psk)) + n + psk)


def ecdhe_psk_premaster_secret(shared_secret: Buffer, psk: Buffer) -> SecretBytes:
    """ECDHE_PSK premaster secret: uint16 len(Z), Z, uint16 len(psk), psk (RFC 5489 2).

    Z is the ECDHE shared secret (`EcdheKeyPair.exchange`), so the session keys need both
    the PSK and the ephemeral key, which gives PSK suites forward secrecy.
    """
    z = bytes(shared_secret)
    if not 1 <= len(z) <= 0xFFFF:
        raise ValueError(f"ECDHE shared secret length {len(z)} outside 1..65535")
    psk = _check_psk(psk)
    return SecretBytes(len(z).to_bytes(2, "big") + z + len(psk).to_bytes(2, "big") + psk)


# --- ECDHE ---------------------------------------------------------------------------------


SUPPORTED_GROUPS = frozenset({NamedGroup.secp256r1, NamedGroup.secp384r1, NamedGroup.x25519})
"""The ECDHE groups we can compute (the wire enum in dtls.extensions lists more)."""

DEFAULT_GROUPS: tuple[NamedGroup, ...] = (NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1)
"""supported_groups order we offer: x25519 first (fast, no point validation pitfalls)."""

_NIST_CURVES: dict[NamedGroup, ec.EllipticCurve] = {
    NamedGroup.secp256r1: ec.SECP256R1(),
    NamedGroup.secp384r1: ec.SECP384R1(),
}
_X25519_LENGTH = 32

PrivateKey = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = x25519.X25519PublicKey | ec.EllipticCurvePublicKey


def _group(group: int) -> NamedGroup:
    if group not in SUPPORTED_GROUPS:
        raise IllegalParameter(f"unsupported ECDHE group {group}")
    return NamedGroup(group)


def _field_length(group: NamedGroup) -> int:
    return (_NIST_CURVES[group].key_size + 7) // 8


def public_point_length(group: int) -> int:
    """Length of an encoded public key: 32 for x25519, 1 + 2 * field size for NIST curves."""
    g = _group(group)
    if g is NamedGroup.x25519:
        return _X25519_LENGTH
    return 1 + 2 * _field_length(g)


def encode_public_key(public_key: PublicKey) -> bytes:
    """ECPoint bytes for ServerKeyExchange / ClientKeyExchange (RFC 8422 5.4, 5.7).

    x25519: the 32-byte u-coordinate (RFC 8422 5.11).  NIST curves: the uncompressed
    point 04 || X || Y, the only format RFC 8422 5.1.2 leaves in use.
    """
    if isinstance(public_key, x25519.X25519PublicKey):
        return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def decode_public_key(group: int, data: Buffer) -> PublicKey:
    """Validate and decode a peer's ECDHE public key.

    DecodeError when the length cannot be right for the group; IllegalParameter for a
    well-sized but unacceptable point: compressed or infinity encodings and points off the
    curve (RFC 8422 5.11 requires validating the peer's point; an invalid-curve point
    would leak our private key bit by bit).  x25519 takes any 32 bytes (RFC 7748 5);
    its low-order points are caught by the all-zero check in `EcdheKeyPair.exchange`.
    """
    g = _group(group)
    data = bytes(data)
    expected = public_point_length(g)
    if g is NamedGroup.x25519:
        if len(data) != expected:
            raise DecodeError(f"x25519 public key must be {expected} bytes, not {len(data)}")
        return x25519.X25519PublicKey.from_public_bytes(data)
    if not data:
        raise DecodeError(f"empty {g.name} public point")
    if data[0] != 0x04:
        # 0x00 = point at infinity, 0x02/0x03 = compressed: none is allowed (RFC 8422 5.1.2).
        raise IllegalParameter(f"{g.name} public point must be uncompressed, not form 0x{data[0]:02x}")
    if len(data) != expected:
        raise DecodeError(f"{g.name} public point must be {expected} bytes, not {len(data)}")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_NIST_CURVES[g], data)
    except ValueError:
        raise IllegalParameter(f"{g.name} public point is not on the curve") from None


class EcdheKeyPair:
    """Our ephemeral ECDHE key for one handshake, and the exchange with the peer's point.

    The repr shows the group and public key only.  Use a fresh pair per handshake: reusing
    one across connections would undo the forward secrecy ECDHE is chosen for.
    """

    __slots__ = ("_private_key", "group", "public_bytes")

    def __init__(self, group: int, private_key: PrivateKey) -> None:
        g = _group(group)
        if g is NamedGroup.x25519:
            if not isinstance(private_key, x25519.X25519PrivateKey):
                raise TypeError("x25519 needs an X25519PrivateKey")
        elif not (isinstance(private_key, ec.EllipticCurvePrivateKey)
                  and private_key.curve.name == _NIST_CURVES[g].name):
            raise TypeError(f"{g.name} needs an EllipticCurvePrivateKey on that curve")
        self.group: NamedGroup = g
        self._private_key = private_key
        self.public_bytes: bytes = encode_public_key(private_key.public_key())

    @classmethod
    def generate(cls, group: int) -> EcdheKeyPair:
        """A fresh random key pair on `group`."""
        g = _group(group)
        if g is NamedGroup.x25519:
            return cls(g, x25519.X25519PrivateKey.generate())
        return cls(g, ec.generate_private_key(_NIST_CURVES[g]))

    def exchange(self, peer_public: Buffer) -> SecretBytes:
        """The ECDHE shared secret with the peer's encoded point: the premaster secret.

        RFC 8422 5.10: for NIST curves the x-coordinate, left-padded to the field size; for
        x25519 the 32-byte output, which must not be all zero (RFC 7748 6.1, RFC 8422 5.11:
        a low-order peer point would force a known secret).
        """
        peer = decode_public_key(self.group, peer_public)
        try:
            if isinstance(self._private_key, x25519.X25519PrivateKey):
                assert isinstance(peer, x25519.X25519PublicKey)
                shared = self._private_key.exchange(peer)
            else:
                assert isinstance(peer, ec.EllipticCurvePublicKey)
                shared = self._private_key.exchange(ec.ECDH(), peer)
        except ValueError:
            # OpenSSL refuses an all-zero X25519 result itself; same alert as our own check.
            raise IllegalParameter(f"{self.group.name} exchange with the peer's point failed") from None
        if hmac.compare_digest(shared, bytes(len(shared))):
            raise IllegalParameter(f"{self.group.name} shared secret is all zero")
        return SecretBytes(shared)

    def __repr__(self) -> str:
        return f"EcdheKeyPair({self.group.name}, public={self.public_bytes.hex()})"


def generate_key_pair(group: int) -> EcdheKeyPair:
    """A fresh ECDHE key pair on `group` (x25519, secp256r1 or secp384r1)."""
    return EcdheKeyPair.generate(group)
