/* Timing sanity check for dtls_mte_verify (not a proof; x86-64): median rdtscp cycles for a
   valid record with n = 0 and n = 255, bad padding and a bad MAC, 1200-byte records; the
   percentages (relative to the first case) should be noise.  Runs each MAC algorithm with the
   portable compression and with what dtls_hmac_init picks (SHA-NI on CPUs that have it).  Build and run from the repo root:
     gcc -O2 -Icsrc tests/ct/bench_mte.c csrc/sha.c -o /tmp/bench_mte && /tmp/bench_mte */
#include "sha.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>

#define LEN 1200
#define ITERS 20001
enum { VALID0, VALID255, BADPAD, BADMAC, NCASE };
static const char *names[NCASE] = { "valid n=0", "valid n=255", "invalid padding", "bad MAC" };

static int cmp(const void *a, const void *b)
{
    unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return (x > y) - (x < y);
}

/* data || HMAC(hdr || data) || (n+1) x n, total LEN bytes. */
static long build(const dtls_hmac_key *k, const uint8_t hdr[13], uint8_t *pt, size_t n)
{
    uint8_t h[13];
    size_t dl = LEN - k->out_len - 1 - n, i;
    memcpy(h, hdr, 13);
    h[11] = (uint8_t)(dl >> 8);
    h[12] = (uint8_t)dl;
    for (i = 0; i < dl; i++)
        pt[i] = (uint8_t)(i * 7 + 3);
    dtls_hmac2(k, h, 13, pt, dl, pt + dl);
    memset(pt + dl + k->out_len, (int)n, n + 1);
    return (long)dl;
}

int main(void)
{
    static unsigned long long t[NCASE][ITERS];
    static uint8_t pt[NCASE][LEN];
    const uint8_t hdr0[13] = { 0, 1, 0, 0, 0, 0, 0, 42, 23, 0xfe, 0xfd, 0, 0 };
    uint8_t key[48], hdr[13];
    int alg, c, force;
    long i;

    for (i = 0; i < 48; i++)
        key[i] = (uint8_t)(i * 13);
    for (alg = 1; alg <= 3; alg++) for (force = 1; force >= 0; force--) {
        dtls_hmac_key k;
        long expect[NCASE];
        int impl = dtls_hmac_init_impl(&k, alg, key, 32, force);
        if (!force && impl == DTLS_SHA_PORTABLE)
            continue;   /* SHA-384, or no SHA-NI: the portable run above was the same */
        expect[VALID0] = build(&k, hdr0, pt[VALID0], 0);
        expect[VALID255] = build(&k, hdr0, pt[VALID255], 255);
        build(&k, hdr0, pt[BADPAD], 200);
        pt[BADPAD][LEN - 100] ^= 1;          /* one bad padding byte */
        expect[BADPAD] = -1;
        build(&k, hdr0, pt[BADMAC], 0);
        pt[BADMAC][LEN - 1 - 5] ^= 1;        /* one bad MAC byte */
        expect[BADMAC] = -1;
        for (i = 0; i < ITERS; i++) {
            for (c = 0; c < NCASE; c++) {
                unsigned long long t0, t1;
                unsigned aux;
                long r;
                memcpy(hdr, hdr0, 13);
                _mm_lfence();
                t0 = __rdtscp(&aux);
                r = dtls_mte_verify(&k, hdr, pt[c], LEN);
                t1 = __rdtscp(&aux);
                _mm_lfence();
                if (r != expect[c]) {
                    fprintf(stderr, "alg %d case %d: got %ld want %ld\n", alg, c, r, expect[c]);
                    return 1;
                }
                t[c][i] = t1 - t0;
            }
        }
        printf("alg %d (mac %u, %s):", alg, k.out_len, impl == DTLS_SHA_NI ? "sha-ni" : "portable");
        {
            unsigned long long base = 0;
            for (c = 0; c < NCASE; c++) {
                unsigned long long m;
                qsort(t[c], ITERS, sizeof t[c][0], cmp);
                m = t[c][ITERS / 2];
                if (c == 0)
                    base = m;
                printf("  %s %llu (%+.2f%%)", names[c], m, 100.0 * ((double)m - (double)base) / (double)base);
            }
        }
        printf("\n");
    }
    return 0;
}
