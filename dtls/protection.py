"""Record protection parameters: which bulk cipher and MAC protect a record.

A cipher suite (negotiated by the handshake) maps onto one `Protection`; the record layer
only needs to know the bulk cipher, the MAC and whether encrypt-then-MAC (RFC 7366) was
negotiated.  Key sizes follow RFC 5246 6.3 / RFC 5288 / RFC 7905 / RFC 6655.

The integer values of the enums are part of the C ABI (csrc/record.h): do not renumber.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

HEADER_LEN = 13
"""DTLS record header: type(1) version(2) epoch(2) sequence_number(6) length(2)."""

BLOCK_LEN = 16
"""AES block size; also the explicit IV length of CBC records (TLS 1.1+ / DTLS)."""

AEAD_TAG_LEN = 16
"""The AEAD tag of GCM, ChaCha20-Poly1305 and CCM; the _CCM_8 ciphers use CCM_8_TAG_LEN."""
CCM_8_TAG_LEN = 8
"""RFC 6655: AEAD_AES_128/256_CCM_8 truncate the CCM tag to 8 bytes."""
GCM_EXPLICIT_NONCE_LEN = 8
"""RFC 5288 3 / RFC 6655: the explicit part of the GCM or CCM nonce carried in each record
(we send epoch||seq)."""


class BulkCipher(IntEnum):
    NULL = 0
    AES_128_GCM = 1
    AES_256_GCM = 2
    CHACHA20_POLY1305 = 3
    AES_128_CBC = 4
    AES_256_CBC = 5
    AES_128_CCM = 6  # RFC 6655: 16-byte tag
    AES_128_CCM_8 = 7  # RFC 6655: 8-byte tag (RFC 7925's mandatory IoT cipher)
    AES_256_CCM = 8
    AES_256_CCM_8 = 9


class MacAlgorithm(IntEnum):
    NONE = 0
    SHA1 = 1
    SHA256 = 2
    SHA384 = 3


_KEY_LEN = {
    BulkCipher.NULL: 0,
    BulkCipher.AES_128_GCM: 16,
    BulkCipher.AES_256_GCM: 32,
    BulkCipher.CHACHA20_POLY1305: 32,
    BulkCipher.AES_128_CBC: 16,
    BulkCipher.AES_256_CBC: 32,
    BulkCipher.AES_128_CCM: 16,
    BulkCipher.AES_128_CCM_8: 16,
    BulkCipher.AES_256_CCM: 32,
    BulkCipher.AES_256_CCM_8: 32,
}
# The implicit ("fixed") IV from the key block: GCM salt (RFC 5288 3), ChaCha20 IV (RFC 7905 2),
# CCM salt (RFC 6655: the 4-byte client/server_write_IV, exactly as for GCM).
_FIXED_IV_LEN = {
    BulkCipher.NULL: 0,
    BulkCipher.AES_128_GCM: 4,
    BulkCipher.AES_256_GCM: 4,
    BulkCipher.CHACHA20_POLY1305: 12,
    BulkCipher.AES_128_CBC: 0,
    BulkCipher.AES_256_CBC: 0,
    BulkCipher.AES_128_CCM: 4,
    BulkCipher.AES_128_CCM_8: 4,
    BulkCipher.AES_256_CCM: 4,
    BulkCipher.AES_256_CCM_8: 4,
}
_TAG_LEN = {
    BulkCipher.AES_128_GCM: AEAD_TAG_LEN,
    BulkCipher.AES_256_GCM: AEAD_TAG_LEN,
    BulkCipher.CHACHA20_POLY1305: AEAD_TAG_LEN,
    BulkCipher.AES_128_CCM: AEAD_TAG_LEN,
    BulkCipher.AES_128_CCM_8: CCM_8_TAG_LEN,
    BulkCipher.AES_256_CCM: AEAD_TAG_LEN,
    BulkCipher.AES_256_CCM_8: CCM_8_TAG_LEN,
}
_MAC_LEN = {MacAlgorithm.NONE: 0, MacAlgorithm.SHA1: 20, MacAlgorithm.SHA256: 32, MacAlgorithm.SHA384: 48}
_AEAD = tuple(_TAG_LEN)
_CBC = (BulkCipher.AES_128_CBC, BulkCipher.AES_256_CBC)


def aead_tag_length(cipher: BulkCipher) -> int:
    """Bytes of AEAD tag `cipher` appends (16, or 8 for the CCM_8 ciphers); 0 if not AEAD."""
    return _TAG_LEN.get(BulkCipher(cipher), 0)


@dataclass(frozen=True)
class Protection:
    """How records of one epoch are protected.

    AEAD and NULL take no MAC; CBC always takes one, MAC-then-encrypt unless
    `encrypt_then_mac` (RFC 7366) was negotiated.
    """

    cipher: BulkCipher
    mac: MacAlgorithm = MacAlgorithm.NONE
    encrypt_then_mac: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "cipher", BulkCipher(self.cipher))
        object.__setattr__(self, "mac", MacAlgorithm(self.mac))
        if self.cipher in _CBC:
            if self.mac is MacAlgorithm.NONE:
                raise ValueError("CBC protection needs a MAC algorithm")
        elif self.mac is not MacAlgorithm.NONE or self.encrypt_then_mac:
            raise ValueError(f"{self.cipher.name} takes no separate MAC")

    @property
    def is_aead(self) -> bool:
        return self.cipher in _AEAD

    @property
    def is_cbc(self) -> bool:
        return self.cipher in _CBC

    @property
    def key_length(self) -> int:
        return _KEY_LEN[self.cipher]

    @property
    def fixed_iv_length(self) -> int:
        return _FIXED_IV_LEN[self.cipher]

    @property
    def tag_length(self) -> int:
        """AEAD tag bytes per record (RFC 6655: 8 for the CCM_8 ciphers); 0 for NULL and CBC."""
        return _TAG_LEN.get(self.cipher, 0)

    @property
    def mac_length(self) -> int:
        """MAC output length; HMAC keys have the same length (RFC 5246 6.2.3.1)."""
        return _MAC_LEN[self.mac]

    def fragment_length(self, payload_len: int) -> int:
        """Bytes of protected fragment that `seal` produces for `payload_len` plaintext bytes."""
        if self.cipher is BulkCipher.NULL:
            return payload_len
        if self.cipher is BulkCipher.CHACHA20_POLY1305:
            return payload_len + AEAD_TAG_LEN
        if self.is_aead:  # GCM and CCM: explicit nonce || ciphertext || tag
            return GCM_EXPLICIT_NONCE_LEN + payload_len + self.tag_length
        mac = self.mac_length
        # Minimal TLS padding: 1..16 bytes so that the encrypted part is a block multiple.
        if self.encrypt_then_mac:
            return BLOCK_LEN + (payload_len // BLOCK_LEN + 1) * BLOCK_LEN + mac
        return BLOCK_LEN + ((payload_len + mac) // BLOCK_LEN + 1) * BLOCK_LEN

    def record_length(self, payload_len: int) -> int:
        """Bytes on the wire (header included) for one record of `payload_len` bytes."""
        return HEADER_LEN + self.fragment_length(payload_len)

    def max_payload(self, record_len: int) -> int:
        """Largest payload whose record fits in `record_len` bytes (for PMTU sizing); -1 if none."""
        lo, hi = -1, min(record_len, 1 << 14)
        while lo < hi:  # fragment_length is monotone; a few steps of bisection
            mid = (lo + hi + 1) // 2
            if self.record_length(mid) <= record_len:
                lo = mid
            else:
                hi = mid - 1
        return lo


NULL_PROTECTION = Protection(BulkCipher.NULL)


INTEGRITY_LIMITS: dict[BulkCipher, int] = {
    BulkCipher.AES_128_GCM: 2**36,
    BulkCipher.AES_256_GCM: 2**36,
    BulkCipher.CHACHA20_POLY1305: 2**36,
    BulkCipher.AES_128_CCM: 2**23,  # 2^23.5 rounded down
    BulkCipher.AES_256_CCM: 2**23,
    BulkCipher.AES_128_CCM_8: 2**7,
    BulkCipher.AES_256_CCM_8: 2**7,
}
"""Records failing authentication that one key may see before the connection must close
(RFC 9147 4.5.3, integrity limits; DTLS 1.2 has no key update, so closing is the only
answer).  CBC with HMAC (full-length tags) and NULL have no limit here."""
