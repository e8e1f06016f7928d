/* dudect-style leakage test of dtls_mte_verify (CBC MAC-then-encrypt record check).
 *
 * Method (Reparaz, Balasch, Verbauwhede, "Dude, is my code constant time?", DATE 2017):
 * two input classes, measured interleaved in random order: class 0 is one FIXED record
 * with valid padding of the maximal length 255 and a wrong MAC; class 1 is a RANDOM record
 * per measurement (random padding length byte, padding and MAC bytes: bad padding of any
 * claimed length, or valid short padding with a wrong MAC).  Both are rejected, so the
 * verdict (which the caller reveals anyway by dropping the record) is the same; what must
 * not show is why and where (Lucky Thirteen: padding length, padding vs MAC failure).
 * A record that verifies is not one of the classes: its different return path is allowed
 * (tests/ct/run_ctgrind.sh allows the final verdict too).  Times (rdtscp cycles) are compared
 * with Welch's t-test, on all measurements and on subsets cropped at increasing
 * percentiles (which removes the upper tail that interrupts and frequency changes add).
 * If the time does not depend on the class, |t| stays small however many measurements
 * are taken; dudect's threshold for "leakage" is |t| > 4.5 (at such |t| the chance that
 * two equal distributions look this different is below 1e-5).  A pass is evidence at
 * this sample size, not a proof; tests/ct/run_ctgrind.sh is the structural check.
 *
 * Build and run from the repo root (x86-64):
 *   gcc -O2 -Icsrc tests/ct/dudect_mte.c csrc/sha.c -lm -o /tmp/dudect_mte
 *   /tmp/dudect_mte [measurements per algorithm, default 2000000] [portable|auto]
 * Exit status: 0 when every |t| < 4.5, 1 when leakage is detected, 2 on a setup error.
 */
#include "sha.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>

#define LEN 1200
#define BATCH 10000   /* inputs prepared ahead of each batch of measurements */
#define NCROP 50      /* percentile crops */
#define THRESHOLD 4.5

typedef struct {
    double n[2], mean[2], m2[2];
} welch;

static void welch_add(welch *w, int cls, double x)
{
    double d;
    w->n[cls] += 1;
    d = x - w->mean[cls];
    w->mean[cls] += d / w->n[cls];
    w->m2[cls] += d * (x - w->mean[cls]);
}

static double welch_t(const welch *w)
{
    double v0, v1;
    if (w->n[0] < 2 || w->n[1] < 2)
        return 0;
    v0 = w->m2[0] / (w->n[0] - 1);
    v1 = w->m2[1] / (w->n[1] - 1);
    if (v0 + v1 == 0)
        return 0;
    return (w->mean[0] - w->mean[1]) / sqrt(v0 / w->n[0] + v1 / w->n[1]);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)   /* xorshift64*: reproducible, not cryptographic */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* data || HMAC(hdr || data) || (n+1) x n: a valid record with padding length n. */
static void build_valid(const dtls_hmac_key *k, const uint8_t hdr0[13], uint8_t *pt, size_t n)
{
    uint8_t h[13];
    size_t dl = LEN - k->out_len - 1 - n, i;
    memcpy(h, hdr0, 13);
    h[11] = (uint8_t)(dl >> 8);
    h[12] = (uint8_t)dl;
    for (i = 0; i < dl; i++)
        pt[i] = (uint8_t)(i * 7 + 3);
    dtls_hmac2(k, h, 13, pt, dl, pt + dl);
    memset(pt + dl + k->out_len, (int)n, n + 1);
}

static int run(int alg, long total, int force_portable)
{
    static uint8_t inputs[BATCH][LEN];
    static uint8_t classes[BATCH];
    static uint64_t times[BATCH];
    static uint64_t first[BATCH];
    uint64_t crops[NCROP];
    welch all, cropped[NCROP];
    const uint8_t hdr0[13] = { 0, 1, 0, 0, 0, 0, 0, 42, 23, 0xfe, 0xfd, 0, 0 };
    uint8_t key[48], valid[LEN], fixed[LEN], hdr[13];
    dtls_hmac_key k;
    long done = 0, i, valid_random = 0;
    int impl, c, have_crops = 0;
    double tmax = 0;

    for (i = 0; i < 48; i++)
        key[i] = (uint8_t)(i * 13 + 1);
    impl = dtls_hmac_init_impl(&k, alg, key, 32, force_portable);
    if (impl < 0)
        return 2;
    build_valid(&k, hdr0, valid, 255);
    memcpy(hdr, hdr0, 13);
    if (dtls_mte_verify(&k, hdr, valid, LEN) != (long)(LEN - k.out_len - 256)) {
        fprintf(stderr, "alg %d: the valid record does not verify\n", alg);
        return 2;
    }
    memcpy(fixed, valid, LEN);
    fixed[LEN - 256 - 1] ^= 1;  /* the MAC's last byte: padding stays valid */
    memcpy(hdr, hdr0, 13);
    if (dtls_mte_verify(&k, hdr, fixed, LEN) >= 0) {
        fprintf(stderr, "alg %d: the fixed-class record verifies\n", alg);
        return 2;
    }
    memset(&all, 0, sizeof all);
    memset(cropped, 0, sizeof cropped);
    while (done < total) {
        for (i = 0; i < BATCH; i++) {
            classes[i] = (uint8_t)(rng() & 1);
            memcpy(inputs[i], classes[i] ? valid : fixed, LEN);
            if (classes[i]) {  /* random tail: padding length byte, padding and MAC bytes */
                size_t j;
                for (j = LEN - 1 - 255 - k.out_len; j < LEN; j++)
                    inputs[i][j] = (uint8_t)rng();
            }
        }
        for (i = 0; i < BATCH; i++) {
            uint64_t t0, t1;
            unsigned aux;
            long r;
            memcpy(hdr, hdr0, 13);
            _mm_lfence();
            t0 = __rdtscp(&aux);
            r = dtls_mte_verify(&k, hdr, inputs[i], LEN);
            t1 = __rdtscp(&aux);
            _mm_lfence();
            times[i] = t1 - t0;
            if (r >= 0)
                valid_random++;  /* a random tail that verified: must not happen */
        }
        if (!have_crops) {  /* percentiles from the first batch, as dudect does */
            memcpy(first, times, sizeof first);
            qsort(first, BATCH, sizeof first[0], cmp_u64);
            for (c = 0; c < NCROP; c++) {
                double p = 1 - pow(0.5, 10.0 * (c + 1) / NCROP);
                crops[c] = first[(size_t)(p * (BATCH - 1))];
            }
            have_crops = 1;
            continue;  /* the first batch only calibrates (and warms caches) */
        }
        for (i = 0; i < BATCH; i++) {
            welch_add(&all, classes[i], (double)times[i]);
            for (c = 0; c < NCROP; c++)
                if (times[i] < crops[c])
                    welch_add(&cropped[c], classes[i], (double)times[i]);
        }
        done += BATCH;
    }
    tmax = fabs(welch_t(&all));
    for (c = 0; c < NCROP; c++) {
        double t = fabs(welch_t(&cropped[c]));
        if (cropped[c].n[0] > 1000 && cropped[c].n[1] > 1000 && t > tmax)
            tmax = t;
    }
    printf("alg %d (MAC %u bytes, %s): %ld measurements, mean cycles fixed %.1f random %.1f, "
           "max |t| = %.2f -> %s\n", alg, k.out_len, impl == DTLS_SHA_NI ? "sha-ni" : "portable",
           done, all.mean[0], all.mean[1], tmax,
           tmax < THRESHOLD ? "no leakage detected" : "LEAKAGE");
    if (valid_random) {
        fprintf(stderr, "alg %d: %ld class inputs verified\n", alg, valid_random);
        return 2;
    }
    return tmax < THRESHOLD ? 0 : 1;
}

int main(int argc, char **argv)
{
    long total = argc > 1 ? atol(argv[1]) : 2000000;
    int force = argc > 2 && strcmp(argv[2], "portable") == 0;
    int alg, worst = 0;
    if (total < 2 * BATCH) {
        fprintf(stderr, "need at least %d measurements\n", 2 * BATCH);
        return 2;
    }
    for (alg = 1; alg <= 3; alg++) {  /* HMAC-SHA1, -SHA256, -SHA384 */
        int r = run(alg, total, force);
        if (r > worst)
            worst = r;
    }
    return worst;
}
