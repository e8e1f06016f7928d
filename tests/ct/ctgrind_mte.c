/* Constant-time check of dtls_mte_verify and dtls_hmac_ct (csrc/sha.c), "ctgrind" style.
 *
 * Secrets (the decrypted record bytes, the HMAC key states and, for dtls_hmac_ct, the body
 * length) are marked undefined with memcheck client requests before each call, so valgrind
 * memcheck reports every conditional branch ("Conditional jump or move depends on
 * uninitialised value(s)") and every memory address ("Use of uninitialised value of size N")
 * that depends on them.  Public values (record length, header, MAC algorithm) stay defined.
 *
 * Expected under valgrind: reports only from the final `if (good != 0)` in dtls_mte_verify,
 * the one branch the API allows (turning the validity mask into the return value); a
 * compiler may also turn it into a cmov, giving no report at all.  tests/ct/run_ctgrind.sh
 * builds this and checks exactly that.
 *
 * Cases: every MAC algorithm; record lengths 64, 304 (> MAC + 256), 1200; padding lengths
 * 0, 1, 100, 255 where they fit; for each a valid record, a corrupted MAC byte, a corrupted
 * padding byte and all-0xff bytes (padding longer than the record for len < 256 + MAC + 1).
 * The results are checked too, so a broken build cannot look "constant-time".
 *
 * Only the portable compression functions are checked: keys are made with
 * dtls_hmac_init_impl(..., force_portable=1).  Valgrind (3.19 at least) cannot execute the SHA
 * extensions (SIGILL on sha1rnds4/sha256rnds2; it also hides the SHA bit of CPUID, so an
 * unforced key would fall back to portable under valgrind anyway).  The SHA-NI rounds are
 * fixed sequences of data-independent instructions with no branches or table lookups on the
 * data, and everything around them (block construction, masking, MAC extraction) is the same
 * code for both implementations, so this covers what could leak.
 *
 * `ctgrind_mte selftest` branches on a marked byte on purpose: the script expects valgrind
 * to report it, proving the marking works.
 */
#include "sha.h"

#include <stdio.h>
#include <string.h>
#include <valgrind/memcheck.h>

enum { VALID, BAD_MAC, BAD_PAD, ALL_FF };

static uint8_t pt[1200];

static void secret(const void *p, size_t n)
{
    VALGRIND_MAKE_MEM_UNDEFINED(p, n);
}

static void public_(const void *p, size_t n)
{
    VALGRIND_MAKE_MEM_DEFINED(p, n);
}

/* Build data || MAC || (n+1) x n in pt[0..len), damage it as `mode` says, and verify it
   with the record and the key marked secret.  Returns 1 if the result is as expected. */
static int check_mte(dtls_hmac_key *k, const uint8_t hdr0[13], size_t len, size_t n, int mode)
{
    uint8_t hdr[13];
    size_t dl = len - k->out_len - 1 - n, i;
    long r, want = mode == VALID ? (long)dl : -1;

    memcpy(hdr, hdr0, 13);
    hdr[11] = (uint8_t)(dl >> 8);
    hdr[12] = (uint8_t)dl;
    for (i = 0; i < dl; i++)
        pt[i] = (uint8_t)(i * 31 + 7);
    dtls_hmac2(k, hdr, 13, pt, dl, pt + dl);
    memset(pt + dl + k->out_len, (int)n, n + 1);
    if (mode == BAD_MAC)
        pt[dl + 3] ^= 0x10;
    else if (mode == BAD_PAD)
        pt[len - 2] ^= 0x10;   /* a padding byte (n >= 1) */
    else if (mode == ALL_FF)
        memset(pt, 0xff, len);

    secret(pt, len);
    secret(k->inner, sizeof k->inner);
    secret(k->outer, sizeof k->outer);
    r = dtls_mte_verify(k, hdr, pt, len);
    public_(&r, sizeof r);
    public_(hdr, sizeof hdr);   /* bytes 11..12 now hold the (secret) data length */
    public_(k->inner, sizeof k->inner);
    public_(k->outer, sizeof k->outer);
    public_(pt, len);
    if (r != want)
        fprintf(stderr, "WRONG: alg %d len %zu n %zu mode %d: got %ld want %ld\n",
                k->alg, len, n, mode, r, want);
    return r == want;
}

/* dtls_hmac_ct with a secret body length (and secret body and key); compares with
   dtls_hmac2 after making the result public. */
static int check_hmac_ct(dtls_hmac_key *k, size_t head_len, size_t body_len, size_t mn, size_t mx)
{
    uint8_t out[DTLS_MAC_MAX_LEN], want[DTLS_MAC_MAX_LEN];
    size_t i;

    for (i = 0; i < sizeof pt; i++)
        pt[i] = (uint8_t)(i * 13 + 1);
    dtls_hmac2(k, pt, head_len, pt + head_len, body_len, want);
    secret(pt + head_len, mx);
    secret(&body_len, sizeof body_len);
    secret(k->inner, sizeof k->inner);
    secret(k->outer, sizeof k->outer);
    dtls_hmac_ct(k, pt, head_len, pt + head_len, body_len, mn, mx, out);
    public_(out, sizeof out);
    public_(&body_len, sizeof body_len);
    public_(k->inner, sizeof k->inner);
    public_(k->outer, sizeof k->outer);
    public_(pt, sizeof pt);
    if (memcmp(out, want, k->out_len) != 0) {
        fprintf(stderr, "WRONG: dtls_hmac_ct alg %d head %zu body %zu [%zu, %zu]\n",
                k->alg, head_len, body_len, mn, mx);
        return 0;
    }
    return 1;
}

static int selftest(void)
{
    volatile uint8_t x = 1;
    secret((const void *)&x, 1);
    if (x)   /* deliberate secret-dependent branch: valgrind must report this line */
        puts("selftest branch taken");
    return 0;
}

int main(int argc, char **argv)
{
    static const uint8_t key[32] = { 1, 2, 3 };
    static const uint8_t hdr[13] = { 0, 1, 0, 0, 0, 0, 0, 9, 23, 0xfe, 0xfd, 0, 0 };
    static const size_t lens[3] = { 1200, 304, 64 };
    static const size_t ns[4] = { 0, 1, 100, 255 };
    int alg, li, ni, bad = 0, runs = 0;

    if (argc > 1 && strcmp(argv[1], "selftest") == 0)
        return selftest();
    if (!RUNNING_ON_VALGRIND)
        fprintf(stderr, "note: not under valgrind, only the results are checked\n");
    for (alg = DTLS_MAC_SHA1; alg <= DTLS_MAC_SHA384; alg++) {
        dtls_hmac_key k;
        /* force_portable: see the top comment (valgrind has no SHA-NI) */
        if (dtls_hmac_init_impl(&k, alg, key, sizeof key, 1) != DTLS_SHA_PORTABLE)
            return 2;
        for (li = 0; li < 3; li++) {
            for (ni = 0; ni < 4; ni++) {
                size_t len = lens[li], n = ns[ni];
                if (n + 1 + k.out_len > len)
                    continue;
                bad += !check_mte(&k, hdr, len, n, VALID);
                bad += !check_mte(&k, hdr, len, n, BAD_MAC);
                if (n > 0)
                    bad += !check_mte(&k, hdr, len, n, BAD_PAD);
                runs += 2 + (n > 0);
            }
            bad += !check_mte(&k, hdr, lens[li], 0, ALL_FF);
            runs++;
        }
        /* head 13 as in the MtE check, and head 0; windows narrower and wider than 256 */
        bad += !check_hmac_ct(&k, 13, 0, 0, 300);
        bad += !check_hmac_ct(&k, 13, 300, 0, 300);
        bad += !check_hmac_ct(&k, 13, 777, 700, 1000);
        bad += !check_hmac_ct(&k, 0, 130, 0, 1100);
        runs += 4;
    }
    printf("%s (%d calls)\n", bad ? "WRONG RESULTS" : "results ok", runs);
    return bad != 0;
}
