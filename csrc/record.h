/* DTLS 1.2 / 1.0 record protection (RFC 6347 4.1, RFC 4347 4.1): one call per record or batch.
 *
 * The wire format and the order of checks are specified in dtls/recordapi.py; the pure-Python
 * twin dtls/_pyrecord.py implements the same contract and the tests hold both to it.
 * Numbers below are shared with dtls/protection.py and dtls/recordbase.py.
 */
#ifndef DTLS_RECORD_H
#define DTLS_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define DTLS_CIPHER_NULL 0
#define DTLS_CIPHER_AES_128_GCM 1
#define DTLS_CIPHER_AES_256_GCM 2
#define DTLS_CIPHER_CHACHA20_POLY1305 3
#define DTLS_CIPHER_AES_128_CBC 4
#define DTLS_CIPHER_AES_256_CBC 5
#define DTLS_CIPHER_AES_128_CCM 6   /* RFC 6655: 16-byte tag */
#define DTLS_CIPHER_AES_128_CCM_8 7 /* RFC 6655: 8-byte tag */
#define DTLS_CIPHER_AES_256_CCM 8
#define DTLS_CIPHER_AES_256_CCM_8 9

/* Open statuses (recordbase.OpenStatus). */
#define DTLS_OK 0
#define DTLS_MALFORMED 1
#define DTLS_BAD_EPOCH 2
#define DTLS_BAD_VERSION 3
#define DTLS_REPLAY 4
#define DTLS_TOO_OLD 5
#define DTLS_BAD_MAC 6
#define DTLS_RECORD_OVERFLOW 7

/* Caller errors and failures (negative returns). */
#define DTLS_ERR_INTERNAL (-1) /* OpenSSL failed where it cannot on valid input */
#define DTLS_ERR_ARG (-2)      /* bad argument: lengths, cipher id, oversized plaintext */
#define DTLS_ERR_SEQ (-3)      /* 48-bit sequence space exhausted */
#define DTLS_ERR_SPACE (-4)    /* output buffer or result array too small */
#define DTLS_ERR_AUTH (-5)     /* raw AEAD decryption: tag mismatch */

#define DTLS_HEADER_LEN 13
#define DTLS_MAX_PLAINTEXT 16384
#define DTLS_MAX_FRAGMENT (16384 + 2048)
#define DTLS_MAX_SEQ ((UINT64_C(1) << 48) - 1)
#define DTLS_MAX_WINDOW 2048
/* One spare word so that any run of `size` consecutive seqs fits the ring (RFC 6479 style). */
#define DTLS_WINDOW_WORDS (DTLS_MAX_WINDOW / 64 + 1)
/* The most a sealed record grows beyond its payload: header, IV, MAC, padding. */
#define DTLS_MAX_OVERHEAD (DTLS_HEADER_LEN + 16 + 48 + 16)

typedef struct {
    uint64_t highest; /* highest accepted seq, valid when have != 0 */
    uint32_t size;    /* window size in seqs; 0 disables replay detection */
    uint32_t have;
    uint64_t bits[DTLS_WINDOW_WORDS]; /* bit (seq % 64) of word (seq / 64) % nwords */
} dtls_window;

void dtls_window_init(dtls_window *w, uint32_t size);
int dtls_window_check(const dtls_window *w, uint64_t seq); /* DTLS_OK, DTLS_REPLAY, DTLS_TOO_OLD */
void dtls_window_accept(dtls_window *w, uint64_t seq);

typedef struct dtls_state dtls_state;

/* NULL on bad arguments or allocation failure.  Key lengths are checked by the caller too. */
dtls_state *dtls_state_new(int cipher, int mac, int etm, uint16_t epoch, uint16_t version,
                           const uint8_t *key, size_t key_len, const uint8_t *fixed_iv,
                           size_t fixed_iv_len, const uint8_t *mac_key, size_t mac_key_len,
                           const uint8_t *iv_key, size_t iv_key_len, uint32_t window);
void dtls_state_free(dtls_state *s);
uint64_t dtls_state_next_seq(const dtls_state *s);
void dtls_state_set_next_seq(dtls_state *s, uint64_t seq);
const dtls_window *dtls_state_window(const dtls_state *s);
/* Record length on the wire for a payload of `payload_len` bytes. */
size_t dtls_state_record_len(const dtls_state *s, size_t payload_len);

/* Seal one record with seq = next_seq into out; returns its length or a DTLS_ERR_*. */
long dtls_seal(dtls_state *s, uint8_t type, const uint8_t *in, size_t in_len, uint8_t *out,
               size_t out_cap);

/* Seal n payloads, concatenated in `in` with lengths `lens`, back to back into out;
 * out_lens[i] receives each record's length.  All or nothing: checks sizes and sequence
 * space first.  Returns the total bytes written or a DTLS_ERR_*. */
long dtls_seal_batch(dtls_state *s, uint8_t type, const uint8_t *in, const uint32_t *lens,
                     size_t n, uint8_t *out, size_t out_cap, uint32_t *out_lens);

typedef struct {
    int32_t status;  /* DTLS_OK or another status */
    uint16_t epoch;
    uint8_t type;
    uint8_t reserved;
    uint64_t seq;
    uint32_t offset; /* OK: plaintext in out; BAD_EPOCH: raw record in the input */
    uint32_t length;
} dtls_open_result;

/* Open exactly one record.  out must hold the fragment length (plaintext is never longer).
 * Fills *res.  Returns the plaintext length (>= 0) if the record was accepted, else
 * DTLS_OPEN_REFUSED - status for a refused record, or a DTLS_ERR_* (-1..-5).  Folding the
 * length into the return value saves the caller a field read on the hot path. */
#define DTLS_OPEN_REFUSED (-100)
long dtls_open(dtls_state *s, const uint8_t *rec, size_t rec_len, uint8_t *out, size_t out_cap,
               dtls_open_result *res);

/* Open every record of ndgrams datagrams laid back to back in `in` (lengths in dgram_lens).
 * Plaintexts go back to back into out (out_cap >= total input is always enough).  Returns
 * the number of results written, or a DTLS_ERR_*. res_cap >= total/13 + ndgrams suffices. */
long dtls_open_batch(dtls_state *s, const uint8_t *in, size_t in_len,
                     const uint32_t *dgram_lens, size_t ndgrams, uint8_t *out, size_t out_cap, dtls_open_result *res,
                     size_t res_cap);

typedef struct {
    uint16_t version;
    uint16_t epoch;
    uint8_t type;
    uint8_t reserved[3];
    uint64_t seq;
    uint32_t offset; /* header start */
    uint32_t length; /* fragment length */
} dtls_record_hdr;

/* Locate records in a datagram without copying; stops at a truncated header, a length past
 * the end, or a length over DTLS_MAX_FRAGMENT.  Returns the count (at most cap) and sets
 * *parsed to the bytes covered by the records returned. */
size_t dtls_split(const uint8_t *in, size_t len, dtls_record_hdr *hdrs, size_t cap,
                  size_t *parsed);

/* Raw primitives on the same code paths, for known-answer tests.  dtls_aead_raw takes any
 * AEAD cipher id (GCM, ChaCha20-Poly1305, CCM, CCM_8) with a 12-byte nonce; the output is
 * ct||tag with the cipher's tag length (16, or 8 for CCM_8). */
long dtls_aead_raw(int cipher, int enc, const uint8_t *key, size_t key_len,
                   const uint8_t *nonce, size_t nonce_len, const uint8_t *aad, size_t aad_len,
                   const uint8_t *in, size_t in_len, uint8_t *out);
long dtls_cbc_raw(int enc, const uint8_t *key, size_t key_len, const uint8_t *iv,
                  const uint8_t *in, size_t in_len, uint8_t *out);
long dtls_hmac_raw(int mac, const uint8_t *key, size_t key_len, const uint8_t *in,
                   size_t in_len, uint8_t *out);

#endif
