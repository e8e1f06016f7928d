/* DTLS record protection: header, nonce/AAD, AEAD or CBC+HMAC, anti-replay, in one call.
 *
 * Contract: dtls/recordapi.py.  EVP contexts are created once per state with the key; per
 * record only the IV changes, so sealing or opening allocates nothing and calls no RNG.
 * HMAC runs on our own constant-time-capable SHA code (sha.c) with precomputed pads, so
 * MAC-then-encrypt records can be checked without a padding-dependent code path.
 */
#include "record.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "sha.h"

#define TAG_LEN 16 /* GCM, ChaCha20-Poly1305, CCM; the CCM_8 ciphers use CCM8_TAG_LEN */
#define CCM8_TAG_LEN 8
#define BLOCK 16
#define GCM_EXPLICIT 8 /* explicit nonce of GCM and CCM records (RFC 5288 3, RFC 6655) */

struct dtls_state {
    int cipher;
    int etm;
    uint16_t epoch;
    uint16_t version;
    uint64_t next_seq;
    size_t mac_len;
    size_t tag_len; /* AEAD only: 16, or 8 for CCM_8 */
    int ccm;        /* AES-CCM: its EVP calling sequence differs from GCM's */
    uint8_t fixed_iv[12];
    EVP_CIPHER_CTX *enc; /* made on the first seal: a state is used in one direction, */
    EVP_CIPHER_CTX *dec; /* and each OpenSSL context costs ~1 KiB per idle session */
    uint8_t key[32];     /* until both exist (cleansed with the state) */
    EVP_CIPHER_CTX *ivgen; /* CBC only: AES-ECB under iv_key, makes explicit IVs */
    dtls_hmac_key hmac;
    dtls_window window;
};

/* ---- byte order ---------------------------------------------------------------------- */

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static void put48(uint8_t *p, uint64_t v)
{
    for (int i = 5; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get48(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 6; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Record header: type(1) version(2) epoch(2) seq(6) length(2) (RFC 6347 4.1). */
static void put_header(uint8_t *h, uint8_t type, uint16_t version, uint16_t epoch, uint64_t seq,
                       size_t len)
{
    h[0] = type;
    put16(h + 1, version);
    put16(h + 3, epoch);
    put48(h + 5, seq);
    put16(h + 11, (uint32_t)len);
}

/* MAC input / AEAD additional data: epoch(2) seq(6) type(1) version(2) length(2)
 * (RFC 5246 6.2.3 with DTLS's epoch||seq as the 64-bit sequence number, RFC 6347 4.1.2.1). */
static void put_aad(uint8_t *a, uint16_t epoch, uint64_t seq, uint8_t type, uint16_t version,
                    size_t len)
{
    put16(a, epoch);
    put48(a + 2, seq);
    a[8] = type;
    put16(a + 9, version);
    put16(a + 11, (uint32_t)len);
}

/* ---- anti-replay window (RFC 6347 4.1.2.6, RFC 4303 3.4.3) ---------------------------- */

static size_t window_words(const dtls_window *w)
{
    return (w->size + 63) / 64 + 1;
}

void dtls_window_init(dtls_window *w, uint32_t size)
{
    memset(w, 0, sizeof *w);
    w->size = size > DTLS_MAX_WINDOW ? DTLS_MAX_WINDOW : size;
}

int dtls_window_check(const dtls_window *w, uint64_t seq)
{
    if (w->size == 0 || !w->have || seq > w->highest)
        return DTLS_OK;
    if (w->highest - seq >= w->size)
        return DTLS_TOO_OLD;
    size_t n = window_words(w);
    if ((w->bits[(seq / 64) % n] >> (seq % 64)) & 1)
        return DTLS_REPLAY;
    return DTLS_OK;
}

void dtls_window_accept(dtls_window *w, uint64_t seq)
{
    size_t n = window_words(w);
    if (!w->have) {
        w->have = 1;
        w->highest = seq;
    } else if (seq > w->highest) {
        /* Clear the words of every 64-seq block the top moves into; a word still holds
         * bits of a block n blocks older, which are all out of the window by now. */
        uint64_t from = w->highest / 64, to = seq / 64;
        if (to - from >= n)
            memset(w->bits, 0, sizeof w->bits);
        else
            for (uint64_t b = from + 1; b <= to; b++)
                w->bits[b % n] = 0;
        w->highest = seq;
    } else if (w->highest - seq >= w->size) {
        return;
    }
    if (w->size)
        w->bits[(seq / 64) % n] |= UINT64_C(1) << (seq % 64);
}

/* ---- primitives ------------------------------------------------------------------------ */

static const EVP_CIPHER *evp_cipher(int cipher)
{
    switch (cipher) {
    case DTLS_CIPHER_AES_128_GCM:
        return EVP_aes_128_gcm();
    case DTLS_CIPHER_AES_256_GCM:
        return EVP_aes_256_gcm();
    case DTLS_CIPHER_CHACHA20_POLY1305:
        return EVP_chacha20_poly1305();
    case DTLS_CIPHER_AES_128_CBC:
        return EVP_aes_128_cbc();
    case DTLS_CIPHER_AES_256_CBC:
        return EVP_aes_256_cbc();
    case DTLS_CIPHER_AES_128_CCM:
    case DTLS_CIPHER_AES_128_CCM_8:
        return EVP_aes_128_ccm();
    case DTLS_CIPHER_AES_256_CCM:
    case DTLS_CIPHER_AES_256_CCM_8:
        return EVP_aes_256_ccm();
    default:
        return NULL;
    }
}

static size_t cipher_key_len(int cipher)
{
    switch (cipher) {
    case DTLS_CIPHER_AES_128_GCM:
    case DTLS_CIPHER_AES_128_CBC:
    case DTLS_CIPHER_AES_128_CCM:
    case DTLS_CIPHER_AES_128_CCM_8:
        return 16;
    case DTLS_CIPHER_AES_256_GCM:
    case DTLS_CIPHER_CHACHA20_POLY1305:
    case DTLS_CIPHER_AES_256_CBC:
    case DTLS_CIPHER_AES_256_CCM:
    case DTLS_CIPHER_AES_256_CCM_8:
        return 32;
    default:
        return 0;
    }
}

static int is_ccm(int cipher)
{
    return cipher >= DTLS_CIPHER_AES_128_CCM && cipher <= DTLS_CIPHER_AES_256_CCM_8;
}

static int is_aead(int cipher)
{
    return (cipher >= DTLS_CIPHER_AES_128_GCM && cipher <= DTLS_CIPHER_CHACHA20_POLY1305) ||
           is_ccm(cipher);
}

/* AEAD tag length (RFC 6655: CCM_8 truncates to 8 bytes); 0 for non-AEAD ciphers. */
static size_t tag_len_of(int cipher)
{
    if (cipher == DTLS_CIPHER_AES_128_CCM_8 || cipher == DTLS_CIPHER_AES_256_CCM_8)
        return CCM8_TAG_LEN;
    return is_aead(cipher) ? TAG_LEN : 0;
}

static int is_cbc(int cipher)
{
    return cipher == DTLS_CIPHER_AES_128_CBC || cipher == DTLS_CIPHER_AES_256_CBC;
}

static size_t mac_len_of(int mac)
{
    switch (mac) {
    case DTLS_MAC_SHA1:
        return 20;
    case DTLS_MAC_SHA256:
        return 32;
    case DTLS_MAC_SHA384:
        return 48;
    default:
        return 0;
    }
}

/* A context keyed for `cipher`.  CCM fixes its nonce length (15 - L) and tag length (M) when
 * the key is set (they go into the B0 flags, NIST SP 800-38C A.2.1), so those are set first:
 * a 12-byte nonce (RFC 6655) and the cipher's tag length, on both directions' contexts. */
static EVP_CIPHER_CTX *new_ctx(int cipher, const EVP_CIPHER *c, const uint8_t *key, int enc)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return NULL;
    if (is_ccm(cipher)) {
        if (EVP_CipherInit_ex(ctx, c, NULL, NULL, NULL, enc) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, (int)tag_len_of(cipher), NULL) != 1 ||
            EVP_CipherInit_ex(ctx, NULL, NULL, key, NULL, enc) != 1)
            goto fail;
    } else if (EVP_CipherInit_ex(ctx, c, NULL, key, NULL, enc) != 1) {
        goto fail;
    }
    EVP_CIPHER_CTX_set_padding(ctx, 0); /* TLS padding is ours, not PKCS#7 */
    return ctx;
fail:
    EVP_CIPHER_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

/* AEAD with a 12-byte nonce on a context from new_ctx.  Encrypt writes ct||tag; decrypt reads
 * ct||tag (in_len >= tag_len, checked by callers) and writes the plaintext.  in may equal out.
 *
 * GCM and ChaCha20-Poly1305: AAD, [expected tag,] update, final (the verdict), [get tag].
 * CCM (one pass over a known length): total length, AAD, [expected tag,] one update, which
 * even for an empty message must run, since it computes or checks the tag: its result is the
 * verdict and there is no final; [get tag]. */
static long aead_crypt(EVP_CIPHER_CTX *ctx, int enc, size_t tag_len, int ccm,
                       const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                       const uint8_t *in, size_t in_len, uint8_t *out)
{
    static const uint8_t nothing[1];
    int outl;
    size_t ct_len = enc ? in_len : in_len - tag_len;
    uint8_t tag[TAG_LEN];

    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, enc) != 1)
        goto fail;
    if (ccm && EVP_CipherUpdate(ctx, NULL, &outl, NULL, (int)ct_len) != 1)
        goto fail;
    if (aad_len && EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1)
        goto fail;
    if (!enc) {
        memcpy(tag, in + ct_len, tag_len);
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, (int)tag_len, tag) != 1)
            goto fail;
    }
    if (ccm) {
        /* A NULL input would be taken for a final call: pass a dummy for empty messages. */
        if (EVP_CipherUpdate(ctx, out, &outl, ct_len ? in : nothing, (int)ct_len) != 1) {
            ERR_clear_error();
            return enc ? DTLS_ERR_INTERNAL : DTLS_ERR_AUTH;
        }
    } else {
        if (ct_len && EVP_CipherUpdate(ctx, out, &outl, in, (int)ct_len) != 1)
            goto fail;
        if (EVP_CipherFinal_ex(ctx, out + ct_len, &outl) != 1) {
            ERR_clear_error();
            return enc ? DTLS_ERR_INTERNAL : DTLS_ERR_AUTH;
        }
    }
    if (enc) {
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, (int)tag_len, out + ct_len) != 1)
            goto fail;
        return (long)(ct_len + tag_len);
    }
    return (long)ct_len;
fail:
    ERR_clear_error();
    return DTLS_ERR_INTERNAL;
}

/* Unpadded CBC over whole blocks on a keyed context; in may equal out. */
static int cbc_crypt(EVP_CIPHER_CTX *ctx, int enc, const uint8_t *iv, const uint8_t *in,
                     size_t len, uint8_t *out)
{
    int outl;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, enc) != 1)
        goto fail;
    if (len && EVP_CipherUpdate(ctx, out, &outl, in, (int)len) != 1)
        goto fail;
    return 0;
fail:
    ERR_clear_error();
    return DTLS_ERR_INTERNAL;
}

/* ---- state ----------------------------------------------------------------------------- */

dtls_state *dtls_state_new(int cipher, int mac, int etm, uint16_t epoch, uint16_t version,
                           const uint8_t *key, size_t key_len, const uint8_t *fixed_iv,
                           size_t fixed_iv_len, const uint8_t *mac_key, size_t mac_key_len,
                           const uint8_t *iv_key, size_t iv_key_len, uint32_t window)
{
    /* Implicit IV: the ChaCha20 IV (RFC 7905 2), else the GCM/CCM salt (RFC 5288, 6655). */
    size_t want_iv = !is_aead(cipher) ? 0 : cipher == DTLS_CIPHER_CHACHA20_POLY1305 ? 12 : 4;
    if ((cipher != DTLS_CIPHER_NULL && evp_cipher(cipher) == NULL) ||
        key_len != cipher_key_len(cipher) || fixed_iv_len != want_iv ||
        window > DTLS_MAX_WINDOW)
        return NULL;
    if (is_cbc(cipher)) {
        if (mac_len_of(mac) == 0 || mac_key_len != mac_len_of(mac) || iv_key_len != key_len)
            return NULL;
    } else if (mac != 0 || etm || mac_key_len || iv_key_len) {
        return NULL;
    }

    dtls_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->cipher = cipher;
    s->etm = etm != 0;
    s->epoch = epoch;
    s->version = version;
    s->mac_len = mac_len_of(mac);
    s->tag_len = tag_len_of(cipher);
    s->ccm = is_ccm(cipher);
    if (fixed_iv_len)
        memcpy(s->fixed_iv, fixed_iv, fixed_iv_len);
    dtls_window_init(&s->window, window);
    if (cipher != DTLS_CIPHER_NULL)
        memcpy(s->key, key, key_len); /* contexts: ensure_ctx, on first use */
    if (is_cbc(cipher)) {
        s->ivgen = new_ctx(DTLS_CIPHER_NULL, key_len == 16 ? EVP_aes_128_ecb() : EVP_aes_256_ecb(),
                           iv_key, 1);
        if (s->ivgen == NULL || dtls_hmac_init(&s->hmac, mac, mac_key, mac_key_len) != 0)
            goto fail;
    }
    return s;
fail:
    dtls_state_free(s);
    return NULL;
}

void dtls_state_free(dtls_state *s)
{
    if (s == NULL)
        return;
    EVP_CIPHER_CTX_free(s->enc);
    EVP_CIPHER_CTX_free(s->dec);
    EVP_CIPHER_CTX_free(s->ivgen);
    OPENSSL_cleanse(s, sizeof *s); /* HMAC pads and the fixed IV are key material */
    free(s);
}

uint64_t dtls_state_next_seq(const dtls_state *s)
{
    return s->next_seq;
}

void dtls_state_set_next_seq(dtls_state *s, uint64_t seq)
{
    s->next_seq = seq;
}

const dtls_window *dtls_state_window(const dtls_state *s)
{
    return &s->window;
}

size_t dtls_state_record_len(const dtls_state *s, size_t n)
{
    switch (s->cipher) {
    case DTLS_CIPHER_NULL:
        return DTLS_HEADER_LEN + n;
    case DTLS_CIPHER_CHACHA20_POLY1305:
        return DTLS_HEADER_LEN + n + TAG_LEN;
    default:
        if (s->tag_len) /* GCM and CCM: explicit nonce || ciphertext || tag */
            return DTLS_HEADER_LEN + GCM_EXPLICIT + n + s->tag_len;
        if (s->etm)
            return DTLS_HEADER_LEN + BLOCK + (n / BLOCK + 1) * BLOCK + s->mac_len;
        return DTLS_HEADER_LEN + BLOCK + ((n + s->mac_len) / BLOCK + 1) * BLOCK;
    }
}

/* ChaCha20-Poly1305 nonce: fixed_iv XOR (0^4 || epoch || seq) (RFC 7905 2). */
static void chacha_nonce(const dtls_state *s, uint16_t epoch, uint64_t seq, uint8_t nonce[12])
{
    uint8_t es[8];
    put16(es, epoch);
    put48(es + 2, seq);
    memcpy(nonce, s->fixed_iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] ^= es[i];
}

/* The direction's context, made on first use (NULL cipher: none needed); 0 or -1. */
static int ensure_ctx(dtls_state *s, int enc)
{
    EVP_CIPHER_CTX **ctx = enc ? &s->enc : &s->dec;
    if (*ctx != NULL || s->cipher == DTLS_CIPHER_NULL)
        return 0;
    *ctx = new_ctx(s->cipher, evp_cipher(s->cipher), s->key, enc);
    return *ctx != NULL ? 0 : -1;
}

/* TLS padding: n+1 bytes of value n, minimal n (RFC 5246 6.2.3.2). */
static void put_padding(uint8_t *p, size_t count)
{
    memset(p, (int)(count - 1), count);
}

/* Seal one record; the caller checked payload size, output space and sequence space. */
static long seal_one(dtls_state *s, uint8_t type, const uint8_t *in, size_t n, uint8_t *out)
{
    const uint64_t seq = s->next_seq;
    const size_t rlen = dtls_state_record_len(s, n);
    uint8_t *frag = out + DTLS_HEADER_LEN;
    uint8_t aad[13], nonce[12];
    long r;

    if (ensure_ctx(s, 1) != 0)
        return DTLS_ERR_INTERNAL;
    put_header(out, type, s->version, s->epoch, seq, rlen - DTLS_HEADER_LEN);
    put_aad(aad, s->epoch, seq, type, s->version, n);
    switch (s->cipher) {
    case DTLS_CIPHER_NULL:
        memmove(frag, in, n);
        break;
    case DTLS_CIPHER_CHACHA20_POLY1305:
        chacha_nonce(s, s->epoch, seq, nonce);
        r = aead_crypt(s->enc, 1, TAG_LEN, 0, nonce, aad, 13, in, n, frag);
        if (r < 0)
            return r;
        break;
    case DTLS_CIPHER_AES_128_GCM:
    case DTLS_CIPHER_AES_256_GCM:
    case DTLS_CIPHER_AES_128_CCM:
    case DTLS_CIPHER_AES_128_CCM_8:
    case DTLS_CIPHER_AES_256_CCM:
    case DTLS_CIPHER_AES_256_CCM_8:
        /* RFC 5288 3 / RFC 6655: nonce = salt(4) || explicit(8); explicit = epoch||seq. */
        memcpy(nonce, s->fixed_iv, 4);
        memcpy(nonce + 4, aad, 8);
        memcpy(frag, aad, 8);
        r = aead_crypt(s->enc, 1, s->tag_len, s->ccm, nonce, aad, 13, in, n,
                       frag + GCM_EXPLICIT);
        if (r < 0)
            return r;
        break;
    default: {
        /* Explicit IV = AES-ECB(iv_key, epoch||seq||0^8): unpredictable, unique, no RNG call. */
        uint8_t block[BLOCK] = {0};
        uint8_t *body = frag + BLOCK;
        int outl;
        memcpy(block, aad, 8);
        if (EVP_EncryptUpdate(s->ivgen, frag, &outl, block, BLOCK) != 1) {
            ERR_clear_error();
            return DTLS_ERR_INTERNAL;
        }
        if (s->etm) {
            /* RFC 7366 3: encrypt plaintext||padding, then MAC the IV and ciphertext. */
            size_t enc_len = (n / BLOCK + 1) * BLOCK;
            memmove(body, in, n);
            put_padding(body + n, enc_len - n);
            if (cbc_crypt(s->enc, 1, frag, body, enc_len, body) != 0)
                return DTLS_ERR_INTERNAL;
            put16(aad + 11, (uint32_t)(BLOCK + enc_len));
            dtls_hmac2(&s->hmac, aad, 13, frag, BLOCK + enc_len, body + enc_len);
        } else {
            size_t enc_len = ((n + s->mac_len) / BLOCK + 1) * BLOCK;
            memmove(body, in, n);
            dtls_hmac2(&s->hmac, aad, 13, body, n, body + n);
            put_padding(body + n + s->mac_len, enc_len - n - s->mac_len);
            if (cbc_crypt(s->enc, 1, frag, body, enc_len, body) != 0)
                return DTLS_ERR_INTERNAL;
        }
    }
    }
    s->next_seq = seq + 1;
    return (long)rlen;
}

long dtls_seal(dtls_state *s, uint8_t type, const uint8_t *in, size_t in_len, uint8_t *out,
               size_t out_cap)
{
    if (in_len > DTLS_MAX_PLAINTEXT)
        return DTLS_ERR_ARG;
    if (s->next_seq > DTLS_MAX_SEQ)
        return DTLS_ERR_SEQ;
    if (dtls_state_record_len(s, in_len) > out_cap)
        return DTLS_ERR_SPACE;
    return seal_one(s, type, in, in_len, out);
}

long dtls_seal_batch(dtls_state *s, uint8_t type, const uint8_t *in, const uint32_t *lens,
                     size_t n, uint8_t *out, size_t out_cap, uint32_t *out_lens)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] > DTLS_MAX_PLAINTEXT)
            return DTLS_ERR_ARG;
        total += dtls_state_record_len(s, lens[i]);
    }
    if (n && (s->next_seq > DTLS_MAX_SEQ || DTLS_MAX_SEQ - s->next_seq < n - 1))
        return DTLS_ERR_SEQ;
    if (total > out_cap)
        return DTLS_ERR_SPACE;
    size_t ipos = 0, opos = 0;
    for (size_t i = 0; i < n; i++) {
        long r = seal_one(s, type, in + ipos, lens[i], out + opos);
        if (r < 0)
            return r;
        out_lens[i] = (uint32_t)r;
        ipos += lens[i];
        opos += (size_t)r;
    }
    return (long)opos;
}

/* Fill type/epoch/seq of a result from a header of at least 13 bytes. */
static void header_fields(const uint8_t *rec, dtls_open_result *res)
{
    res->type = rec[0];
    res->epoch = get16(rec + 3);
    res->seq = get48(rec + 5);
}

/* Open one record of exactly rec_len bytes; out holds at least the fragment length. */
static int open_one(dtls_state *s, const uint8_t *rec, size_t rec_len, uint8_t *out,
                    dtls_open_result *res)
{
    memset(res, 0, sizeof *res);
    if (rec_len < DTLS_HEADER_LEN)
        return res->status = DTLS_MALFORMED;
    header_fields(rec, res);
    const uint16_t version = get16(rec + 1);
    const size_t len = get16(rec + 11);
    const uint8_t *frag = rec + DTLS_HEADER_LEN;
    const uint16_t epoch = res->epoch;
    const uint64_t seq = res->seq;
    uint8_t aad[13], nonce[12];
    size_t plen;
    int st;

    if (len != rec_len - DTLS_HEADER_LEN || len > DTLS_MAX_FRAGMENT)
        return res->status = DTLS_MALFORMED;
    if (epoch != s->epoch) {
        res->length = (uint32_t)rec_len;
        return res->status = DTLS_BAD_EPOCH;
    }
    /* Before version negotiation any DTLS version is fine (RFC 6347 4.1: the
     * ClientHello's record version may be 1.0); afterwards it must be the agreed one. */
    if (s->epoch == 0 ? (version >> 8) != 0xFE : version != s->version)
        return res->status = DTLS_BAD_VERSION;
    st = dtls_window_check(&s->window, seq); /* before decrypting, RFC 6347 4.1.2.6 */
    if (st != DTLS_OK)
        return res->status = st;
    if (ensure_ctx(s, 0) != 0)
        return DTLS_ERR_INTERNAL;

    switch (s->cipher) {
    case DTLS_CIPHER_NULL:
        memcpy(out, frag, len);
        plen = len;
        break;
    case DTLS_CIPHER_AES_128_GCM:
    case DTLS_CIPHER_AES_256_GCM:
    case DTLS_CIPHER_AES_128_CCM:
    case DTLS_CIPHER_AES_128_CCM_8:
    case DTLS_CIPHER_AES_256_CCM:
    case DTLS_CIPHER_AES_256_CCM_8: {
        if (len < GCM_EXPLICIT + s->tag_len)
            return res->status = DTLS_MALFORMED;
        plen = len - GCM_EXPLICIT - s->tag_len;
        memcpy(nonce, s->fixed_iv, 4);
        memcpy(nonce + 4, frag, GCM_EXPLICIT); /* whatever explicit nonce the peer chose */
        put_aad(aad, epoch, seq, res->type, version, plen);
        long r = aead_crypt(s->dec, 0, s->tag_len, s->ccm, nonce, aad, 13, frag + GCM_EXPLICIT,
                            len - GCM_EXPLICIT, out);
        if (r == DTLS_ERR_AUTH)
            return res->status = DTLS_BAD_MAC;
        if (r < 0)
            return DTLS_ERR_INTERNAL;
        break;
    }
    case DTLS_CIPHER_CHACHA20_POLY1305: {
        if (len < TAG_LEN)
            return res->status = DTLS_MALFORMED;
        plen = len - TAG_LEN;
        chacha_nonce(s, epoch, seq, nonce);
        put_aad(aad, epoch, seq, res->type, version, plen);
        long r = aead_crypt(s->dec, 0, TAG_LEN, 0, nonce, aad, 13, frag, len, out);
        if (r == DTLS_ERR_AUTH)
            return res->status = DTLS_BAD_MAC;
        if (r < 0)
            return DTLS_ERR_INTERNAL;
        break;
    }
    default:
        if (s->etm) {
            /* RFC 7366: check the MAC first; padding is then authentic and may be branched on. */
            uint8_t tag[DTLS_MAC_MAX_LEN];
            if (len < 2 * BLOCK + s->mac_len || (len - BLOCK - s->mac_len) % BLOCK)
                return res->status = DTLS_MALFORMED;
            size_t enc_len = len - BLOCK - s->mac_len;
            put_aad(aad, epoch, seq, res->type, version, BLOCK + enc_len);
            dtls_hmac2(&s->hmac, aad, 13, frag, BLOCK + enc_len, tag);
            if (CRYPTO_memcmp(tag, frag + BLOCK + enc_len, s->mac_len) != 0)
                return res->status = DTLS_BAD_MAC;
            if (cbc_crypt(s->dec, 0, frag, frag + BLOCK, enc_len, out) != 0)
                return DTLS_ERR_INTERNAL;
            size_t pad = out[enc_len - 1];
            if (pad + 1 > enc_len)
                return res->status = DTLS_BAD_MAC;
            for (size_t i = enc_len - pad - 1; i < enc_len; i++)
                if (out[i] != pad)
                    return res->status = DTLS_BAD_MAC;
            plen = enc_len - pad - 1;
        } else {
            size_t min = (s->mac_len + 1 + BLOCK - 1) / BLOCK * BLOCK;
            if (len < BLOCK || (len - BLOCK) % BLOCK || len - BLOCK < min)
                return res->status = DTLS_MALFORMED;
            size_t enc_len = len - BLOCK;
            if (cbc_crypt(s->dec, 0, frag, frag + BLOCK, enc_len, out) != 0)
                return DTLS_ERR_INTERNAL;
            put_aad(aad, epoch, seq, res->type, version, 0); /* length filled in by verify */
            long r = dtls_mte_verify(&s->hmac, aad, out, enc_len);
            if (r < 0)
                return res->status = DTLS_BAD_MAC;
            plen = (size_t)r;
        }
    }
    if (plen > DTLS_MAX_PLAINTEXT)
        return res->status = DTLS_RECORD_OVERFLOW;
    dtls_window_accept(&s->window, seq); /* only after authentication */
    res->length = (uint32_t)plen;
    return res->status = DTLS_OK;
}

long dtls_open(dtls_state *s, const uint8_t *rec, size_t rec_len, uint8_t *out, size_t out_cap,
               dtls_open_result *res)
{
    if (rec_len >= DTLS_HEADER_LEN && out_cap < rec_len - DTLS_HEADER_LEN)
        return DTLS_ERR_SPACE;
    int st = open_one(s, rec, rec_len, out, res);
    if (st == DTLS_OK)
        return (long)res->length;
    return st < 0 ? st : DTLS_OPEN_REFUSED - st;
}

long dtls_open_batch(dtls_state *s, const uint8_t *in, size_t in_len, const uint32_t *dgram_lens,
                     size_t ndgrams, uint8_t *out, size_t out_cap, dtls_open_result *res,
                     size_t res_cap)
{
    size_t pos = 0, opos = 0, nres = 0;
    for (size_t d = 0; d < ndgrams; d++) {
        const size_t dlen = dgram_lens[d];
        if (dlen > in_len - pos)
            return DTLS_ERR_ARG;
        size_t off = 0;
        while (off < dlen) {
            if (nres == res_cap)
                return DTLS_ERR_SPACE;
            dtls_open_result *r = &res[nres++];
            const uint8_t *rec = in + pos + off;
            const size_t left = dlen - off;
            size_t flen = left >= DTLS_HEADER_LEN ? get16(rec + 11) : 0;
            if (left < DTLS_HEADER_LEN || flen > left - DTLS_HEADER_LEN ||
                flen > DTLS_MAX_FRAGMENT) {
                /* Nothing after a bad length can be framed: drop the rest of the datagram. */
                memset(r, 0, sizeof *r);
                if (left >= DTLS_HEADER_LEN)
                    header_fields(rec, r);
                r->status = DTLS_MALFORMED;
                break;
            }
            if (out_cap - opos < flen)
                return DTLS_ERR_SPACE;
            int st = open_one(s, rec, DTLS_HEADER_LEN + flen, out + opos, r);
            if (st < 0)
                return st;
            if (st == DTLS_OK) {
                r->offset = (uint32_t)opos;
                opos += r->length;
            } else if (st == DTLS_BAD_EPOCH) {
                r->offset = (uint32_t)(pos + off);
            }
            off += DTLS_HEADER_LEN + flen;
        }
        pos += dlen;
    }
    return (long)nres;
}

size_t dtls_split(const uint8_t *in, size_t len, dtls_record_hdr *hdrs, size_t cap,
                  size_t *parsed)
{
    size_t off = 0, n = 0;
    while (n < cap && len - off >= DTLS_HEADER_LEN) {
        const uint8_t *h = in + off;
        size_t flen = get16(h + 11);
        if (flen > len - off - DTLS_HEADER_LEN || flen > DTLS_MAX_FRAGMENT)
            break;
        dtls_record_hdr *r = &hdrs[n++];
        memset(r, 0, sizeof *r);
        r->type = h[0];
        r->version = get16(h + 1);
        r->epoch = get16(h + 3);
        r->seq = get48(h + 5);
        r->offset = (uint32_t)off;
        r->length = (uint32_t)flen;
        off += DTLS_HEADER_LEN + flen;
    }
    *parsed = off;
    return n;
}

/* ---- raw primitives for known-answer tests ------------------------------------------- */

long dtls_aead_raw(int cipher, int enc, const uint8_t *key, size_t key_len,
                   const uint8_t *nonce, size_t nonce_len, const uint8_t *aad, size_t aad_len,
                   const uint8_t *in, size_t in_len, uint8_t *out)
{
    if (!is_aead(cipher) || key_len != cipher_key_len(cipher) || nonce_len != 12 ||
        (!enc && in_len < tag_len_of(cipher)) || in_len > INT32_MAX || aad_len > INT32_MAX)
        return DTLS_ERR_ARG;
    EVP_CIPHER_CTX *ctx = new_ctx(cipher, evp_cipher(cipher), key, enc != 0);
    if (ctx == NULL)
        return DTLS_ERR_INTERNAL;
    long r = aead_crypt(ctx, enc != 0, tag_len_of(cipher), is_ccm(cipher), nonce, aad, aad_len,
                        in, in_len, out);
    EVP_CIPHER_CTX_free(ctx);
    return r;
}

long dtls_cbc_raw(int enc, const uint8_t *key, size_t key_len, const uint8_t *iv,
                  const uint8_t *in, size_t in_len, uint8_t *out)
{
    if ((key_len != 16 && key_len != 32) || in_len % BLOCK || in_len > INT32_MAX)
        return DTLS_ERR_ARG;
    EVP_CIPHER_CTX *ctx = new_ctx(DTLS_CIPHER_NULL,
                                  key_len == 16 ? EVP_aes_128_cbc() : EVP_aes_256_cbc(), key,
                                  enc != 0);
    if (ctx == NULL)
        return DTLS_ERR_INTERNAL;
    int r = cbc_crypt(ctx, enc != 0, iv, in, in_len, out);
    EVP_CIPHER_CTX_free(ctx);
    return r < 0 ? r : (long)in_len;
}

long dtls_hmac_raw(int mac, const uint8_t *key, size_t key_len, const uint8_t *in,
                   size_t in_len, uint8_t *out)
{
    dtls_hmac_key k;
    if (dtls_hmac_init(&k, mac, key, key_len) != 0)
        return DTLS_ERR_ARG;
    dtls_hmac2(&k, NULL, 0, in, in_len, out);
    long n = (long)k.out_len;
    OPENSSL_cleanse(&k, sizeof k);
    return n;
}
