/* SHA-1 / SHA-256 / SHA-384 HMAC and the constant-time CBC MAC-then-encrypt check
   (RFC 2104, FIPS 180-4, RFC 5246 6.2.3.2, Lucky Thirteen countermeasure). */
#ifndef DTLS_SHA_H
#define DTLS_SHA_H

#include <stddef.h>
#include <stdint.h>

#define DTLS_MAC_SHA1   1
#define DTLS_MAC_SHA256 2
#define DTLS_MAC_SHA384 3
#define DTLS_MAC_MAX_LEN 48
#define DTLS_MAC_MAX_BLOCK 128

/* Compression-function implementation a key uses (dtls_hmac_key.impl). */
#define DTLS_SHA_PORTABLE 0   /* plain C, every CPU; always used for SHA-384 */
#define DTLS_SHA_NI       1   /* x86-64 SHA extensions (SHA-1, SHA-256) */

typedef struct {
    int alg;              /* DTLS_MAC_* */
    uint32_t block_len;   /* 64 or 128 */
    uint32_t out_len;     /* 20, 32 or 48 */
    uint64_t inner[8];    /* hash state after compressing key^ipad (32-bit algs: low 32 bits) */
    uint64_t outer[8];    /* hash state after compressing key^opad */
    int impl;             /* DTLS_SHA_*, chosen by dtls_hmac_init from the CPU's features;
                             DTLS_SHA_PORTABLE (0) in a zeroed struct is valid everywhere */
} dtls_hmac_key;

/* Precompute HMAC key states (RFC 2104); keys longer than the block are hashed first.
   Returns 0, or -1 for an unknown alg. */
int dtls_hmac_init(dtls_hmac_key *k, int alg, const uint8_t *key, size_t key_len);

/* dtls_hmac_init, optionally forcing the portable compression (tests, valgrind).  Without
   force_portable, SHA-1 and SHA-256 use the SHA extensions when the CPU has them (checked
   here, once per key; nothing global is cached).  Returns -1 for an unknown alg, else the
   implementation the key will use: DTLS_SHA_PORTABLE or DTLS_SHA_NI. */
int dtls_hmac_init_impl(dtls_hmac_key *k, int alg, const uint8_t *key, size_t key_len,
                        int force_portable);

/* out = HMAC(k, a[0..alen) || b[0..blen)); either part may be empty (pointer may be NULL if len 0). */
void dtls_hmac2(const dtls_hmac_key *k, const uint8_t *a, size_t alen,
                const uint8_t *b, size_t blen, uint8_t *out);

/* out = HMAC(k, head[0..head_len) || body[0..body_len)) where body_len is secret and
   min_body_len <= body_len <= max_body_len.  Time and memory access pattern depend only on
   head_len, min_body_len and max_body_len; body must be readable up to max_body_len.
   A body_len outside the range gives a wrong MAC but never reads out of bounds. */
void dtls_hmac_ct(const dtls_hmac_key *k, const uint8_t *head, size_t head_len,
                  const uint8_t *body, size_t body_len,
                  size_t min_body_len, size_t max_body_len, uint8_t *out);

/* Constant-time CBC MAC-then-encrypt check for one decrypted TLS/DTLS record.
   pt[0..len) is the decrypted CBC plaintext (explicit IV already removed): data || MAC || padding,
   padding = (n+1) bytes each of value n, 0 <= n <= 255.
   len is public, a multiple of 16 and >= the smallest valid size (mac_len + 1 rounded up to 16);
   the caller checks that (return -1 immediately if not, that's a public check).
   mac_header[0..13) is epoch(2) seq(6) type(1) version(2) length(2): the function writes the
   last two bytes (big-endian data length) itself.
   Returns the data length (>= 0) if padding is well-formed and the HMAC over
   mac_header || data matches, else -1.  No branch and no memory address may depend on n, on
   the data length, or on whether padding/MAC are valid: the only data-dependent branch is the
   final conversion of the validity mask to the return value.  If padding is invalid, proceed as
   if n were 0 (so the MAC computation still happens) and fail.  Compare MACs in constant time. */
long dtls_mte_verify(const dtls_hmac_key *k, uint8_t mac_header[13], const uint8_t *pt, size_t len);

#endif /* DTLS_SHA_H */
