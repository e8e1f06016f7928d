/* SHA-1 / SHA-256 / SHA-384 HMAC and the constant-time CBC MAC-then-encrypt record check.
   FIPS 180-4 for the hashes, RFC 2104 for HMAC, RFC 5246 6.2.3.2 for the record format.
   The MtE check follows the Lucky Thirteen countermeasure (AlFardan & Paterson, 2013):
   the amount of hashing, the branches and the memory addresses touched depend only on the
   public record length, never on the padding length or on whether anything is valid. */
#include "sha.h"

#include <string.h>

/* SHA extensions (SHA-NI) for SHA-1 and SHA-256 on x86-64 with GCC or clang.  The functions
   carry their own target attribute, so the file builds with default flags; they only run
   after the CPU check in sha_ni_usable().  Elsewhere only the portable code exists. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DTLS_HAVE_SHA_NI 1
#include <immintrin.h>
#if defined(__clang__) || !defined(__GNUC__) || __GNUC__ < 11
#include <cpuid.h>   /* no __builtin_cpu_supports("sha") before GCC 11, nor in older clang */
#endif
#else
#define DTLS_HAVE_SHA_NI 0
#endif

/* ---------- constant-time helpers ---------- */

/* Hide a value from the optimiser so it cannot prove a mask is 0/1 and branch on it. */
static uint64_t ct_barrier(uint64_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    __asm__("" : "+r"(x));
#endif
    return x;
}

/* All-ones if x == 0, else 0.  Inputs go through the barrier too: otherwise GCC shares
   e.g. the i - n of a mask with the address pt + len - 1 - i, which leaks nothing but
   makes secret-taint checkers (valgrind) unable to tell. */
static uint64_t ct_is_zero(uint64_t x)
{
    x = ct_barrier(x);
    return ct_barrier(0 - ((~x & (x - 1)) >> 63));
}

static uint64_t ct_eq(uint64_t a, uint64_t b)
{
    return ct_is_zero(a ^ b);
}

/* All-ones if a < b (unsigned, whole 64-bit range), else 0. */
static uint64_t ct_lt(uint64_t a, uint64_t b)
{
    a = ct_barrier(a);
    b = ct_barrier(b);
    return ct_barrier(0 - ((a ^ ((a ^ b) | ((a - b) ^ b))) >> 63));
}

static uint64_t ct_ge(uint64_t a, uint64_t b)
{
    return ~ct_lt(a, b);
}

static uint64_t ct_le(uint64_t a, uint64_t b)
{
    return ~ct_lt(b, a);
}

/* Clear key material; volatile so the stores are not dropped as dead. */
static void wipe(void *p, size_t n)
{
    volatile uint8_t *q = (volatile uint8_t *)p;
    while (n--)
        *q++ = 0;
}

/* ---------- big-endian byte access (no unaligned casts) ---------- */

static uint32_t load32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t load64(const uint8_t *p)
{
    return (uint64_t)load32(p) << 32 | (uint64_t)load32(p + 4);
}

static void store32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void store64(uint8_t *p, uint64_t v)
{
    store32(p, (uint32_t)(v >> 32));
    store32(p + 4, (uint32_t)v);
}

static uint32_t rol32(uint32_t x, unsigned r)
{
    return (x << r) | (x >> (32 - r));
}

static uint32_t ror32(uint32_t x, unsigned r)
{
    return (x >> r) | (x << (32 - r));
}

static uint64_t ror64(uint64_t x, unsigned r)
{
    return (x >> r) | (x << (64 - r));
}

/* ---------- compression functions (FIPS 180-4 section 6) ---------- */

static void sha1_compress(uint32_t h[5], const uint8_t *blk)
{
    const uint32_t k0 = 0x5a827999, k1 = 0x6ed9eba1, k2 = 0x8f1bbcdc, k3 = 0xca62c1d6;
    uint32_t w[80], a, b, c, d, e, t;
    unsigned i;

    for (i = 0; i < 16; i++)
        w[i] = load32(blk + 4 * i);
    for (i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4];
    /* Four plain loops, one per round function, rather than a switch inside one loop. */
    for (i = 0; i < 20; i++) {
        t = rol32(a, 5) + ((b & c) | (~b & d)) + e + k0 + w[i];
        e = d; d = c; c = rol32(b, 30); b = a; a = t;
    }
    for (; i < 40; i++) {
        t = rol32(a, 5) + (b ^ c ^ d) + e + k1 + w[i];
        e = d; d = c; c = rol32(b, 30); b = a; a = t;
    }
    for (; i < 60; i++) {
        t = rol32(a, 5) + ((b & c) | (b & d) | (c & d)) + e + k2 + w[i];
        e = d; d = c; c = rol32(b, 30); b = a; a = t;
    }
    for (; i < 80; i++) {
        t = rol32(a, 5) + (b ^ c ^ d) + e + k3 + w[i];
        e = d; d = c; c = rol32(b, 30); b = a; a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

static const uint32_t K256[64] = {
    0x428a2f98UL, 0x71374491UL, 0xb5c0fbcfUL, 0xe9b5dba5UL,
    0x3956c25bUL, 0x59f111f1UL, 0x923f82a4UL, 0xab1c5ed5UL,
    0xd807aa98UL, 0x12835b01UL, 0x243185beUL, 0x550c7dc3UL,
    0x72be5d74UL, 0x80deb1feUL, 0x9bdc06a7UL, 0xc19bf174UL,
    0xe49b69c1UL, 0xefbe4786UL, 0x0fc19dc6UL, 0x240ca1ccUL,
    0x2de92c6fUL, 0x4a7484aaUL, 0x5cb0a9dcUL, 0x76f988daUL,
    0x983e5152UL, 0xa831c66dUL, 0xb00327c8UL, 0xbf597fc7UL,
    0xc6e00bf3UL, 0xd5a79147UL, 0x06ca6351UL, 0x14292967UL,
    0x27b70a85UL, 0x2e1b2138UL, 0x4d2c6dfcUL, 0x53380d13UL,
    0x650a7354UL, 0x766a0abbUL, 0x81c2c92eUL, 0x92722c85UL,
    0xa2bfe8a1UL, 0xa81a664bUL, 0xc24b8b70UL, 0xc76c51a3UL,
    0xd192e819UL, 0xd6990624UL, 0xf40e3585UL, 0x106aa070UL,
    0x19a4c116UL, 0x1e376c08UL, 0x2748774cUL, 0x34b0bcb5UL,
    0x391c0cb3UL, 0x4ed8aa4aUL, 0x5b9cca4fUL, 0x682e6ff3UL,
    0x748f82eeUL, 0x78a5636fUL, 0x84c87814UL, 0x8cc70208UL,
    0x90befffaUL, 0xa4506cebUL, 0xbef9a3f7UL, 0xc67178f2UL,
};

static void sha256_compress(uint32_t h[8], const uint8_t *blk)
{
    uint32_t w[64], v[8], t1, t2;
    unsigned i;

    for (i = 0; i < 16; i++)
        w[i] = load32(blk + 4 * i);
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    for (i = 0; i < 8; i++)
        v[i] = h[i];
    for (i = 0; i < 64; i++) {
        /* v[0..7] = a b c d e f g h */
        t1 = v[7] + (ror32(v[4], 6) ^ ror32(v[4], 11) ^ ror32(v[4], 25))
             + ((v[4] & v[5]) ^ (~v[4] & v[6])) + K256[i] + w[i];
        t2 = (ror32(v[0], 2) ^ ror32(v[0], 13) ^ ror32(v[0], 22))
             + ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
        v[7] = v[6]; v[6] = v[5]; v[5] = v[4]; v[4] = v[3] + t1;
        v[3] = v[2]; v[2] = v[1]; v[1] = v[0]; v[0] = t1 + t2;
    }
    for (i = 0; i < 8; i++)
        h[i] += v[i];
}

static const uint64_t K512[80] = {
    0x428a2f98d728ae22ULL, 0x7137449123ef65cdULL,
    0xb5c0fbcfec4d3b2fULL, 0xe9b5dba58189dbbcULL,
    0x3956c25bf348b538ULL, 0x59f111f1b605d019ULL,
    0x923f82a4af194f9bULL, 0xab1c5ed5da6d8118ULL,
    0xd807aa98a3030242ULL, 0x12835b0145706fbeULL,
    0x243185be4ee4b28cULL, 0x550c7dc3d5ffb4e2ULL,
    0x72be5d74f27b896fULL, 0x80deb1fe3b1696b1ULL,
    0x9bdc06a725c71235ULL, 0xc19bf174cf692694ULL,
    0xe49b69c19ef14ad2ULL, 0xefbe4786384f25e3ULL,
    0x0fc19dc68b8cd5b5ULL, 0x240ca1cc77ac9c65ULL,
    0x2de92c6f592b0275ULL, 0x4a7484aa6ea6e483ULL,
    0x5cb0a9dcbd41fbd4ULL, 0x76f988da831153b5ULL,
    0x983e5152ee66dfabULL, 0xa831c66d2db43210ULL,
    0xb00327c898fb213fULL, 0xbf597fc7beef0ee4ULL,
    0xc6e00bf33da88fc2ULL, 0xd5a79147930aa725ULL,
    0x06ca6351e003826fULL, 0x142929670a0e6e70ULL,
    0x27b70a8546d22ffcULL, 0x2e1b21385c26c926ULL,
    0x4d2c6dfc5ac42aedULL, 0x53380d139d95b3dfULL,
    0x650a73548baf63deULL, 0x766a0abb3c77b2a8ULL,
    0x81c2c92e47edaee6ULL, 0x92722c851482353bULL,
    0xa2bfe8a14cf10364ULL, 0xa81a664bbc423001ULL,
    0xc24b8b70d0f89791ULL, 0xc76c51a30654be30ULL,
    0xd192e819d6ef5218ULL, 0xd69906245565a910ULL,
    0xf40e35855771202aULL, 0x106aa07032bbd1b8ULL,
    0x19a4c116b8d2d0c8ULL, 0x1e376c085141ab53ULL,
    0x2748774cdf8eeb99ULL, 0x34b0bcb5e19b48a8ULL,
    0x391c0cb3c5c95a63ULL, 0x4ed8aa4ae3418acbULL,
    0x5b9cca4f7763e373ULL, 0x682e6ff3d6b2b8a3ULL,
    0x748f82ee5defb2fcULL, 0x78a5636f43172f60ULL,
    0x84c87814a1f0ab72ULL, 0x8cc702081a6439ecULL,
    0x90befffa23631e28ULL, 0xa4506cebde82bde9ULL,
    0xbef9a3f7b2c67915ULL, 0xc67178f2e372532bULL,
    0xca273eceea26619cULL, 0xd186b8c721c0c207ULL,
    0xeada7dd6cde0eb1eULL, 0xf57d4f7fee6ed178ULL,
    0x06f067aa72176fbaULL, 0x0a637dc5a2c898a6ULL,
    0x113f9804bef90daeULL, 0x1b710b35131c471bULL,
    0x28db77f523047d84ULL, 0x32caab7b40c72493ULL,
    0x3c9ebe0a15c9bebcULL, 0x431d67c49c100d4cULL,
    0x4cc5d4becb3e42b6ULL, 0x597f299cfc657e2aULL,
    0x5fcb6fab3ad6faecULL, 0x6c44198c4a475817ULL,
};

static void sha512_compress(uint64_t h[8], const uint8_t *blk)
{
    uint64_t w[80], v[8], t1, t2;
    unsigned i;

    for (i = 0; i < 16; i++)
        w[i] = load64(blk + 8 * i);
    for (i = 16; i < 80; i++) {
        uint64_t s0 = ror64(w[i - 15], 1) ^ ror64(w[i - 15], 8) ^ (w[i - 15] >> 7);
        uint64_t s1 = ror64(w[i - 2], 19) ^ ror64(w[i - 2], 61) ^ (w[i - 2] >> 6);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    for (i = 0; i < 8; i++)
        v[i] = h[i];
    for (i = 0; i < 80; i++) {
        t1 = v[7] + (ror64(v[4], 14) ^ ror64(v[4], 18) ^ ror64(v[4], 41))
             + ((v[4] & v[5]) ^ (~v[4] & v[6])) + K512[i] + w[i];
        t2 = (ror64(v[0], 28) ^ ror64(v[0], 34) ^ ror64(v[0], 39))
             + ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
        v[7] = v[6]; v[6] = v[5]; v[5] = v[4]; v[4] = v[3] + t1;
        v[3] = v[2]; v[2] = v[1]; v[1] = v[0]; v[0] = t1 + t2;
    }
    for (i = 0; i < 8; i++)
        h[i] += v[i];
}

/* ---------- SHA extensions (Intel SHA-NI, also on AMD Zen) ---------- */

#if DTLS_HAVE_SHA_NI

#define SHA_NI_TARGET __attribute__((target("sha,sse4.1")))

/* Whether this CPU runs the code below: SHA, SSSE3 (pshufb, palignr), SSE4.1 (pextrd).
   GCC's builtin reads what libgcc found at load time (cheap); the cpuid fallback costs a few
   microseconds in a VM, so the result is kept per key, in dtls_hmac_key.impl. */
static int sha_ni_usable(void)
{
#if !defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11
    return __builtin_cpu_supports("sha") && __builtin_cpu_supports("ssse3")
           && __builtin_cpu_supports("sse4.1");
#else
    unsigned a, b, c, d;

    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid(1, a, b, c, d);
    if (!(c & (1u << 9)) || !(c & (1u << 19)))      /* SSSE3, SSE4.1 */
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 29) & 1;                           /* SHA */
#endif
}

/* SHA-256.  sha256rnds2 does two rounds on the state split as ABEF (a in the top dword) and
   CDGH, taking W[t] + K[t] for the two rounds in the low two dwords of its third operand;
   the new ABEF comes out and the old ABEF is the new CDGH, so two calls with the operands
   swapped do four rounds and leave the registers as they started.  Message words are kept
   four per register, W[4i] in the low dword (little-endian order after a per-dword byte
   swap of the big-endian block). */

/* Rounds 4i..4i+3 with message words m = W[4i..4i+3]. */
#define SHA256_NI_ROUNDS(m, i) do {                                                   \
        __m128i wk_ = _mm_add_epi32((m), _mm_loadu_si128((const __m128i *)(K256 + 4 * (i)))); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk_);                                \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk_, 0x0e));       \
    } while (0)

/* a = W[t-16..t-13], b = W[t-12..], c = W[t-8..], d = W[t-4..t-1]  ->  a = W[t..t+3]:
   msg1 adds sigma0(W[t-15..t-12]) to a, palignr gives W[t-7..t-4], msg2 adds
   sigma1(W[t-2..t+1]) (its last two from its own first results). */
#define SHA256_NI_SCHED(a, b, c, d)                                                   \
    ((a) = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32((a), (b)),         \
                                              _mm_alignr_epi8((d), (c), 4)), (d)))

SHA_NI_TARGET
static void sha256_ni_blocks(uint64_t st[8], const uint8_t *p, size_t nblk)
{
    /* pshufb mask: reverse the bytes of each dword */
    const __m128i bswap32 = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i abef = _mm_set_epi32((int)st[0], (int)st[1], (int)st[4], (int)st[5]);
    __m128i cdgh = _mm_set_epi32((int)st[2], (int)st[3], (int)st[6], (int)st[7]);
    unsigned i;

    for (; nblk > 0; nblk--, p += 64) {
        const __m128i abef0 = abef, cdgh0 = cdgh;
        __m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), bswap32);
        __m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), bswap32);
        __m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), bswap32);
        __m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), bswap32);

        SHA256_NI_ROUNDS(m0, 0);
        SHA256_NI_ROUNDS(m1, 1);
        SHA256_NI_ROUNDS(m2, 2);
        SHA256_NI_ROUNDS(m3, 3);
        for (i = 4; i < 16; i += 4) {
            SHA256_NI_SCHED(m0, m1, m2, m3);
            SHA256_NI_ROUNDS(m0, i);
            SHA256_NI_SCHED(m1, m2, m3, m0);
            SHA256_NI_ROUNDS(m1, i + 1);
            SHA256_NI_SCHED(m2, m3, m0, m1);
            SHA256_NI_ROUNDS(m2, i + 2);
            SHA256_NI_SCHED(m3, m0, m1, m2);
            SHA256_NI_ROUNDS(m3, i + 3);
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    st[0] = (uint32_t)_mm_extract_epi32(abef, 3);
    st[1] = (uint32_t)_mm_extract_epi32(abef, 2);
    st[4] = (uint32_t)_mm_extract_epi32(abef, 1);
    st[5] = (uint32_t)_mm_extract_epi32(abef, 0);
    st[2] = (uint32_t)_mm_extract_epi32(cdgh, 3);
    st[3] = (uint32_t)_mm_extract_epi32(cdgh, 2);
    st[6] = (uint32_t)_mm_extract_epi32(cdgh, 1);
    st[7] = (uint32_t)_mm_extract_epi32(cdgh, 0);
}

/* SHA-1.  sha1rnds4 does four rounds on ABCD (a in the top dword) with the round function
   and constant picked by its immediate (0..3 for rounds 0-19, 20-39, 40-59, 60-79), taking
   W[t] + E, W[t+1], W[t+2], W[t+3] from the top dword down.  The E of the next four rounds
   is rol30 of the A from before the previous four; sha1nexte adds that to the top word of
   the next message register.  Message words are kept four per register, W[4i] on top (a
   byte reversal of the big-endian 16 bytes). */

/* Four rounds with message words m; prev holds ABCD from before the previous four. */
#define SHA1_NI_ROUNDS(m, f) do {                                                     \
        __m128i wk_ = _mm_sha1nexte_epu32(prev, (m));                                 \
        prev = abcd;                                                                  \
        abcd = _mm_sha1rnds4_epu32(abcd, wk_, (f));                                   \
    } while (0)

/* a = W[t-16..t-13], b = W[t-12..], c = W[t-8..], d = W[t-4..t-1]  ->  a = W[t..t+3]:
   msg1 xors W[t-14..t-11] into a, then W[t-8..t-5], and msg2 xors W[t-3..t], rotates by 1. */
#define SHA1_NI_SCHED(a, b, c, d)                                                     \
    ((a) = _mm_sha1msg2_epu32(_mm_xor_si128(_mm_sha1msg1_epu32((a), (b)), (c)), (d)))

SHA_NI_TARGET
static void sha1_ni_blocks(uint64_t st[8], const uint8_t *p, size_t nblk)
{
    /* pshufb mask: reverse all 16 bytes */
    const __m128i bswap128 = _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
    __m128i abcd = _mm_set_epi32((int)st[0], (int)st[1], (int)st[2], (int)st[3]);
    __m128i e = _mm_set_epi32((int)st[4], 0, 0, 0);   /* E in the top dword, rest 0 */

    for (; nblk > 0; nblk--, p += 64) {
        const __m128i abcd0 = abcd, e0 = e;
        __m128i prev;
        __m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), bswap128);
        __m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), bswap128);
        __m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), bswap128);
        __m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), bswap128);

        /* rounds 0-3 take E from the state itself */
        prev = abcd;
        abcd = _mm_sha1rnds4_epu32(abcd, _mm_add_epi32(e, m0), 0);
        SHA1_NI_ROUNDS(m1, 0);                                /* rounds 4-7 */
        SHA1_NI_ROUNDS(m2, 0);
        SHA1_NI_ROUNDS(m3, 0);
        SHA1_NI_SCHED(m0, m1, m2, m3); SHA1_NI_ROUNDS(m0, 0); /* rounds 16-19 */
        SHA1_NI_SCHED(m1, m2, m3, m0); SHA1_NI_ROUNDS(m1, 1); /* rounds 20-23 */
        SHA1_NI_SCHED(m2, m3, m0, m1); SHA1_NI_ROUNDS(m2, 1);
        SHA1_NI_SCHED(m3, m0, m1, m2); SHA1_NI_ROUNDS(m3, 1);
        SHA1_NI_SCHED(m0, m1, m2, m3); SHA1_NI_ROUNDS(m0, 1);
        SHA1_NI_SCHED(m1, m2, m3, m0); SHA1_NI_ROUNDS(m1, 1);
        SHA1_NI_SCHED(m2, m3, m0, m1); SHA1_NI_ROUNDS(m2, 2); /* rounds 40-43 */
        SHA1_NI_SCHED(m3, m0, m1, m2); SHA1_NI_ROUNDS(m3, 2);
        SHA1_NI_SCHED(m0, m1, m2, m3); SHA1_NI_ROUNDS(m0, 2);
        SHA1_NI_SCHED(m1, m2, m3, m0); SHA1_NI_ROUNDS(m1, 2);
        SHA1_NI_SCHED(m2, m3, m0, m1); SHA1_NI_ROUNDS(m2, 2);
        SHA1_NI_SCHED(m3, m0, m1, m2); SHA1_NI_ROUNDS(m3, 3); /* rounds 60-63 */
        SHA1_NI_SCHED(m0, m1, m2, m3); SHA1_NI_ROUNDS(m0, 3);
        SHA1_NI_SCHED(m1, m2, m3, m0); SHA1_NI_ROUNDS(m1, 3);
        SHA1_NI_SCHED(m2, m3, m0, m1); SHA1_NI_ROUNDS(m2, 3);
        SHA1_NI_SCHED(m3, m0, m1, m2); SHA1_NI_ROUNDS(m3, 3); /* rounds 76-79 */
        /* E after round 79 is rol30(A before round 76), which prev holds */
        e = _mm_sha1nexte_epu32(prev, e0);
        abcd = _mm_add_epi32(abcd, abcd0);
    }
    st[0] = (uint32_t)_mm_extract_epi32(abcd, 3);
    st[1] = (uint32_t)_mm_extract_epi32(abcd, 2);
    st[2] = (uint32_t)_mm_extract_epi32(abcd, 1);
    st[3] = (uint32_t)_mm_extract_epi32(abcd, 0);
    st[4] = (uint32_t)_mm_extract_epi32(e, 3);
}

#endif /* DTLS_HAVE_SHA_NI */

/* ---------- per-algorithm glue ---------- */

static const uint32_t IV_SHA1[5] = {
    0x67452301UL, 0xefcdab89UL, 0x98badcfeUL, 0x10325476UL, 0xc3d2e1f0UL,
};

static const uint32_t IV_SHA256[8] = {
    0x6a09e667UL, 0xbb67ae85UL, 0x3c6ef372UL, 0xa54ff53aUL,
    0x510e527fUL, 0x9b05688cUL, 0x1f83d9abUL, 0x5be0cd19UL,
};

static const uint64_t IV_SHA384[8] = {
    0xcbbb9d5dc1059ed8ULL, 0x629a292a367cd507ULL,
    0x9159015a3070dd17ULL, 0x152fecd8f70e5939ULL,
    0x67332667ffc00b31ULL, 0x8eb44a8768581511ULL,
    0xdb0c2e0d64f98fa7ULL, 0x47b5481dbefa4fa4ULL,
};

/* Block length, digest length and length-field size; 0 block length for an unknown alg. */
static void alg_params(int alg, size_t *block_len, size_t *out_len, size_t *len_field)
{
    *block_len = 64;
    *len_field = 8;
    switch (alg) {
    case DTLS_MAC_SHA1:
        *out_len = 20;
        break;
    case DTLS_MAC_SHA256:
        *out_len = 32;
        break;
    case DTLS_MAC_SHA384:
        *block_len = 128;
        *out_len = 48;
        *len_field = 16;
        break;
    default:
        *block_len = 0;
        *out_len = 0;
        break;
    }
}

static void set_iv(int alg, uint64_t st[8])
{
    unsigned i;

    for (i = 0; i < 8; i++) {
        if (alg == DTLS_MAC_SHA384)
            st[i] = IV_SHA384[i];
        else if (alg == DTLS_MAC_SHA256)
            st[i] = IV_SHA256[i];
        else
            st[i] = i < 5 ? IV_SHA1[i] : 0;
    }
}

/* Compress nblk consecutive blocks at p into st with the key's implementation.  One state
   type for all three hashes keeps the HMAC code generic; the 32-bit hashes keep their words
   in the low halves.  impl is public (it says which CPU instructions exist). */
static void compress_blocks(int alg, int impl, uint64_t st[8], const uint8_t *p, size_t nblk)
{
    uint32_t h[8];
    unsigned i;

    if (alg == DTLS_MAC_SHA384) {
        for (; nblk > 0; nblk--, p += 128)
            sha512_compress(st, p);
        return;
    }
#if DTLS_HAVE_SHA_NI
    if (impl == DTLS_SHA_NI) {
        if (alg == DTLS_MAC_SHA1)
            sha1_ni_blocks(st, p, nblk);
        else
            sha256_ni_blocks(st, p, nblk);
        return;
    }
#else
    (void)impl;
#endif
    for (i = 0; i < 8; i++)
        h[i] = (uint32_t)st[i];
    for (; nblk > 0; nblk--, p += 64) {
        if (alg == DTLS_MAC_SHA1)
            sha1_compress(h, p);
        else
            sha256_compress(h, p);
    }
    for (i = 0; i < 8; i++)
        st[i] = h[i];
}

static void compress(int alg, int impl, uint64_t st[8], const uint8_t *blk)
{
    compress_blocks(alg, impl, st, blk, 1);
}

static void write_digest(int alg, const uint64_t st[8], uint8_t *out)
{
    unsigned i;

    if (alg == DTLS_MAC_SHA384) {
        for (i = 0; i < 6; i++)
            store64(out + 8 * i, st[i]);
    } else {
        unsigned words = alg == DTLS_MAC_SHA1 ? 5 : 8;
        for (i = 0; i < words; i++)
            store32(out + 4 * i, (uint32_t)st[i]);
    }
}

/* ---------- streaming hash (public-length data only) ---------- */

typedef struct {
    uint64_t st[8];
    uint8_t buf[DTLS_MAC_MAX_BLOCK];
    size_t fill;
    uint64_t total;   /* bytes fed so far, including any precomputed prefix */
    size_t block_len;
    size_t len_field;
    int alg;
    int impl;         /* DTLS_SHA_* */
} hash_ctx;

/* Start from st (or the IV if NULL) with `done` bytes already compressed. */
static void hc_start(hash_ctx *c, int alg, int impl, const uint64_t *st, uint64_t done)
{
    size_t out_len;

    c->alg = alg;
    c->impl = impl;
    alg_params(alg, &c->block_len, &out_len, &c->len_field);
    if (st)
        memcpy(c->st, st, sizeof c->st);
    else
        set_iv(alg, c->st);
    c->fill = 0;
    c->total = done;
}

static void hc_update(hash_ctx *c, const uint8_t *p, size_t n)
{
    /* memcpy with a NULL source is undefined even for 0 bytes. */
    if (n == 0)
        return;
    c->total += n;
    if (c->fill > 0) {
        size_t take = c->block_len - c->fill;
        if (take > n)
            take = n;
        memcpy(c->buf + c->fill, p, take);
        c->fill += take;
        p += take;
        n -= take;
        if (c->fill < c->block_len)
            return;
        compress(c->alg, c->impl, c->st, c->buf);
        c->fill = 0;
    }
    if (n >= c->block_len) {
        size_t nblk = n / c->block_len;   /* public lengths only */
        compress_blocks(c->alg, c->impl, c->st, p, nblk);
        p += nblk * c->block_len;
        n -= nblk * c->block_len;
    }
    if (n > 0) {
        memcpy(c->buf, p, n);
        c->fill = n;
    }
}

static void hc_final(hash_ctx *c, uint8_t *out)
{
    size_t bl = c->block_len;

    c->buf[c->fill++] = 0x80;
    if (c->fill > bl - c->len_field) {
        memset(c->buf + c->fill, 0, bl - c->fill);
        compress(c->alg, c->impl, c->st, c->buf);
        c->fill = 0;
    }
    memset(c->buf + c->fill, 0, bl - c->fill);
    if (c->len_field == 16)
        store64(c->buf + bl - 16, c->total >> 61);
    store64(c->buf + bl - 8, c->total << 3);
    compress(c->alg, c->impl, c->st, c->buf);
    write_digest(c->alg, c->st, out);
}

/* ---------- HMAC ---------- */

int dtls_hmac_init_impl(dtls_hmac_key *k, int alg, const uint8_t *key, size_t key_len,
                        int force_portable)
{
    uint8_t kb[DTLS_MAC_MAX_BLOCK], blk[DTLS_MAC_MAX_BLOCK];
    size_t bl, out_len, len_field, i;
    hash_ctx c;

    alg_params(alg, &bl, &out_len, &len_field);
    if (bl == 0)
        return -1;
    memset(k, 0, sizeof *k);
    k->alg = alg;
    k->block_len = (uint32_t)bl;
    k->out_len = (uint32_t)out_len;
    k->impl = DTLS_SHA_PORTABLE;
#if DTLS_HAVE_SHA_NI
    if (!force_portable && alg != DTLS_MAC_SHA384 && sha_ni_usable())
        k->impl = DTLS_SHA_NI;
#else
    (void)force_portable;
#endif

    memset(kb, 0, sizeof kb);
    if (key_len > bl) {
        hc_start(&c, alg, k->impl, NULL, 0);
        hc_update(&c, key, key_len);
        hc_final(&c, kb);
        wipe(&c, sizeof c);
    } else if (key_len > 0) {
        memcpy(kb, key, key_len);
    }

    for (i = 0; i < bl; i++)
        blk[i] = (uint8_t)(kb[i] ^ 0x36);
    set_iv(alg, k->inner);
    compress(alg, k->impl, k->inner, blk);
    for (i = 0; i < bl; i++)
        blk[i] = (uint8_t)(kb[i] ^ 0x5c);
    set_iv(alg, k->outer);
    compress(alg, k->impl, k->outer, blk);

    wipe(kb, sizeof kb);
    wipe(blk, sizeof blk);
    return k->impl;
}

int dtls_hmac_init(dtls_hmac_key *k, int alg, const uint8_t *key, size_t key_len)
{
    return dtls_hmac_init_impl(k, alg, key, key_len, 0) < 0 ? -1 : 0;
}

/* Outer hash: H(key^opad || inner_digest), starting from the precomputed state. */
static void hmac_outer(const dtls_hmac_key *k, const uint8_t *inner_digest, uint8_t *out)
{
    hash_ctx c;

    hc_start(&c, k->alg, k->impl, k->outer, k->block_len);
    hc_update(&c, inner_digest, k->out_len);
    hc_final(&c, out);
}

void dtls_hmac2(const dtls_hmac_key *k, const uint8_t *a, size_t alen,
                const uint8_t *b, size_t blen, uint8_t *out)
{
    uint8_t ih[DTLS_MAC_MAX_LEN];
    hash_ctx c;

    hc_start(&c, k->alg, k->impl, k->inner, k->block_len);
    hc_update(&c, a, alen);
    hc_update(&c, b, blen);
    hc_final(&c, ih);
    hmac_outer(k, ih, out);
}

/* Byte `pos` of head || body, 0 past max_body.  Branches only on the public position. */
static uint8_t msg_byte(const uint8_t *head, size_t head_len,
                        const uint8_t *body, size_t max_body, size_t pos)
{
    if (pos < head_len)
        return head[pos];
    pos -= head_len;
    return pos < max_body ? body[pos] : 0;
}

void dtls_hmac_ct(const dtls_hmac_key *k, const uint8_t *head, size_t head_len,
                  const uint8_t *body, size_t body_len,
                  size_t min_body_len, size_t max_body_len, uint8_t *out)
{
    const size_t bl = k->block_len;
    /* Shifts instead of division: a divide by a secret operand may be variable-time. */
    const unsigned shift = bl == 128 ? 7 : 6;
    const uint64_t len_field = bl == 128 ? 16 : 8;
    uint64_t st[8], res[8], plen, final_blk, bitlen;
    uint8_t blk[DTLS_MAC_MAX_BLOCK], ih[DTLS_MAC_MAX_LEN];
    size_t j, i, w, first_masked, last;

    if (min_body_len > max_body_len)
        min_body_len = max_body_len;
    /* Secret: inner message length after the ipad block, its final block, its bit length. */
    plen = (uint64_t)head_len + (uint64_t)body_len;
    final_blk = (plen + len_field) >> shift;
    bitlen = ((uint64_t)bl + plen) << 3;
    /* Public: blocks that are pure data for every allowed length, and the last block any
       allowed length can need. */
    first_masked = (head_len + min_body_len) / bl;
    last = (head_len + max_body_len + (size_t)len_field) / bl;

    memcpy(st, k->inner, sizeof st);
    /* Blocks overlapping the head are copied out; the pure-body ones after them are hashed
       in place, in one call. */
    for (j = 0; j < first_masked && j * bl < head_len; j++) {
        for (i = 0; i < bl; i++)
            blk[i] = msg_byte(head, head_len, body, max_body_len, j * bl + i);
        compress(k->alg, k->impl, st, blk);
    }
    if (j < first_masked)
        compress_blocks(k->alg, k->impl, st, body + (j * bl - head_len), first_masked - j);

    /* Every remaining block is built with masks and compressed; only the state after the
       real final block is kept. */
    memset(res, 0, sizeof res);
    for (j = first_masked; j <= last; j++) {
        uint64_t is_final = ct_eq(j, final_blk);
        for (i = 0; i < bl; i++) {
            size_t pos = j * bl + i;
            uint64_t v = msg_byte(head, head_len, body, max_body_len, pos);
            v = (v & ct_lt(pos, plen)) | (0x80 & ct_eq(pos, plen));
            /* Bit length goes in the last 8 bytes; for SHA-384 the upper 8 of its 16-byte
               field stay zero. */
            if (i >= bl - 8)
                v |= (bitlen >> (8 * (bl - 1 - i))) & 0xff & is_final;
            blk[i] = (uint8_t)v;
        }
        compress(k->alg, k->impl, st, blk);
        for (w = 0; w < 8; w++)
            res[w] |= st[w] & is_final;
    }

    write_digest(k->alg, res, ih);
    hmac_outer(k, ih, out);
}

/* ---------- CBC MAC-then-encrypt record check ---------- */

long dtls_mte_verify(const dtls_hmac_key *k, uint8_t mac_header[13], const uint8_t *pt, size_t len)
{
    const size_t ml = k->out_len;
    uint8_t calc[DTLS_MAC_MAX_LEN], rot[DTLS_MAC_MAX_LEN], mac[DTLS_MAC_MAX_LEN];
    uint64_t n, acc, good, data_len, r, diff;
    size_t i, j, win, start, min_body;

    /* Public shape checks.  65535 bounds the 16-bit length in the MAC header. */
    if (ml == 0 || ml > DTLS_MAC_MAX_LEN || len < ml + 1 || len % 16 != 0 || len > 65535)
        return -1;

    /* Padding: the last n+1 bytes must all equal n.  Scan a fixed window of up to 256
       bytes and mask in only those within the padding. */
    n = pt[len - 1];
    win = len < 256 ? len : 256;
    acc = 0;
    for (i = 0; i < win; i++)
        acc |= ct_le(i, n) & (uint64_t)(pt[len - 1 - i] ^ n);
    good = ct_is_zero(acc) & ct_le(n + 1 + ml, len);
    /* Bad padding: carry on as if n were 0 so the same work is done. */
    n &= good;
    data_len = len - ml - 1 - n;

    mac_header[11] = (uint8_t)(data_len >> 8);
    mac_header[12] = (uint8_t)data_len;
    min_body = len >= ml + 256 ? len - ml - 256 : 0;
    dtls_hmac_ct(k, mac_header, 13, pt, (size_t)data_len, min_body, len - ml - 1, calc);

    /* Pull the received MAC out of pt[data_len..data_len+ml) without a secret address:
       scan the public window holding every possible MAC position into a buffer rotated by
       r = (data_len - start) mod ml, noting r on the way (no secret modulo). */
    win = len < ml + 256 ? len : ml + 256;
    start = len - win;
    memset(rot, 0, sizeof rot);
    r = 0;
    j = 0;
    for (i = start; i < len; i++) {
        uint64_t in_mac = ct_ge(i, data_len) & ct_lt(i, data_len + ml);
        rot[j] = (uint8_t)(rot[j] | (pt[i] & in_mac));
        r |= j & ct_eq(i, data_len);
        j++;
        if (j == ml)   /* public counter */
            j = 0;
    }
    /* Un-rotate: mac[i] = rot[(i + r) mod ml], reading every rot byte for each i. */
    for (i = 0; i < ml; i++) {
        /* Barrier on i so GCC cannot turn i + r into the loop's induction variable. */
        uint64_t idx = ct_barrier(i) + r;
        uint64_t m = 0;
        idx -= ml & ct_ge(idx, ml);
        for (j = 0; j < ml; j++)
            m |= rot[j] & ct_eq(j, idx);
        mac[i] = (uint8_t)m;
    }

    diff = 0;
    for (i = 0; i < ml; i++)
        diff |= (uint64_t)(mac[i] ^ calc[i]);
    good &= ct_is_zero(diff);

    /* The one data-dependent branch: mask to return value. */
    if (good != 0)
        return (long)data_len;
    return -1;
}
