"""cffi builder for the C record layer (`dtls._record`), used by setup.py's cffi_modules.

The cdef below mirrors csrc/record.h; cffi cannot parse the header's computed macros,
so the few constants Python needs are restated here and checked by tests.
Set DTLS_SANITIZE=1 to build with AddressSanitizer and UBSan (CI does, for the record tests).
"""

import os

from cffi import FFI

CDEF = """
#define DTLS_HEADER_LEN 13
#define DTLS_MAX_PLAINTEXT 16384
#define DTLS_MAX_WINDOW 2048
#define DTLS_MAX_OVERHEAD 93
#define DTLS_ERR_INTERNAL -1
#define DTLS_ERR_ARG -2
#define DTLS_ERR_SEQ -3
#define DTLS_ERR_SPACE -4
#define DTLS_ERR_AUTH -5

typedef struct {
    uint64_t highest;
    uint32_t size;
    uint32_t have;
    ...;
} dtls_window;
void dtls_window_init(dtls_window *w, uint32_t size);
int dtls_window_check(const dtls_window *w, uint64_t seq);
void dtls_window_accept(dtls_window *w, uint64_t seq);

typedef struct dtls_state dtls_state;
dtls_state *dtls_state_new(int cipher, int mac, int etm, uint16_t epoch, uint16_t version,
                           const uint8_t *key, size_t key_len, const uint8_t *fixed_iv,
                           size_t fixed_iv_len, const uint8_t *mac_key, size_t mac_key_len,
                           const uint8_t *iv_key, size_t iv_key_len, uint32_t window);
void dtls_state_free(dtls_state *s);
uint64_t dtls_state_next_seq(const dtls_state *s);
void dtls_state_set_next_seq(dtls_state *s, uint64_t seq);
const dtls_window *dtls_state_window(const dtls_state *s);
size_t dtls_state_record_len(const dtls_state *s, size_t payload_len);

long dtls_seal(dtls_state *s, uint8_t type, const uint8_t *in, size_t in_len, uint8_t *out,
               size_t out_cap);
long dtls_seal_batch(dtls_state *s, uint8_t type, const uint8_t *in, const uint32_t *lens,
                     size_t n, uint8_t *out, size_t out_cap, uint32_t *out_lens);

typedef struct {
    int32_t status;
    uint16_t epoch;
    uint8_t type;
    uint64_t seq;
    uint32_t offset;
    uint32_t length;
    ...;
} dtls_open_result;
#define DTLS_OPEN_REFUSED -100
long dtls_open(dtls_state *s, const uint8_t *rec, size_t rec_len, uint8_t *out, size_t out_cap,
               dtls_open_result *res);
long dtls_open_batch(dtls_state *s, const uint8_t *in, size_t in_len,
                     const uint32_t *dgram_lens, size_t ndgrams, uint8_t *out, size_t out_cap,
                     dtls_open_result *res, size_t res_cap);

typedef struct {
    uint16_t version;
    uint16_t epoch;
    uint8_t type;
    uint64_t seq;
    uint32_t offset;
    uint32_t length;
    ...;
} dtls_record_hdr;
size_t dtls_split(const uint8_t *in, size_t len, dtls_record_hdr *hdrs, size_t cap,
                  size_t *parsed);

long dtls_aead_raw(int cipher, int enc, const uint8_t *key, size_t key_len,
                   const uint8_t *nonce, size_t nonce_len, const uint8_t *aad, size_t aad_len,
                   const uint8_t *in, size_t in_len, uint8_t *out);
long dtls_cbc_raw(int enc, const uint8_t *key, size_t key_len, const uint8_t *iv,
                  const uint8_t *in, size_t in_len, uint8_t *out);
long dtls_hmac_raw(int mac, const uint8_t *key, size_t key_len, const uint8_t *in,
                   size_t in_len, uint8_t *out);

/* csrc/sha.h: our constant-time HMAC and CBC MAC-then-encrypt check (tests/test_sha_c.py). */
#define DTLS_MAC_MAX_LEN 48
typedef struct {
    int alg;
    uint32_t block_len;
    uint32_t out_len;
    ...;
} dtls_hmac_key;
int dtls_hmac_init(dtls_hmac_key *k, int alg, const uint8_t *key, size_t key_len);
int dtls_hmac_init_impl(dtls_hmac_key *k, int alg, const uint8_t *key, size_t key_len,
                        int force_portable);
void dtls_hmac2(const dtls_hmac_key *k, const uint8_t *a, size_t alen,
                const uint8_t *b, size_t blen, uint8_t *out);
void dtls_hmac_ct(const dtls_hmac_key *k, const uint8_t *head, size_t head_len,
                  const uint8_t *body, size_t body_len,
                  size_t min_body_len, size_t max_body_len, uint8_t *out);
long dtls_mte_verify(const dtls_hmac_key *k, uint8_t mac_header[13], const uint8_t *pt,
                     size_t len);

/* csrc/udpio.h: seal+send and receive+open batches on a UDP socket (tests/test_udpio.py). */
#define DTLS_UDP_CAP_GSO 1
#define DTLS_UDP_CAP_GRO 2
#define DTLS_UDP_CAP_SENDMMSG 4
#define DTLS_UDP_CAP_RECVMMSG 8
#define DTLS_UDP_CAP_GRO_ON 16
#define DTLS_UDP_PLAIN 0
#define DTLS_UDP_MMSG 1
#define DTLS_UDP_GSO 2
#define DTLS_GSO_MAX_SEGMENTS 64
#define DTLS_GSO_MAX_BYTES 65000
#define DTLS_ERR_OS_BASE -1000
long dtls_udp_caps(int fd);
long dtls_udp_set_gro(int fd, int on);
long dtls_seal_send(dtls_state *s, int fd, uint8_t type, const uint8_t *in, const uint32_t *lens,
                    size_t n, int mode, uint8_t *out, size_t out_cap, uint32_t *out_lens);
long dtls_recv_open(dtls_state *s, int fd, int mode, uint8_t *buf, size_t cap, size_t slot,
                    size_t max_dgrams, uint8_t *out, size_t out_cap, dtls_open_result *res,
                    size_t res_cap, uint32_t *ndgrams, uint32_t *dropped);
#define DTLS_STATUS_SLOTS 16
long dtls_compact_results(const dtls_open_result *res, size_t n, uint8_t app_type,
                          uint32_t *spans, uint32_t *counts, uint32_t *others,
                          uint32_t *nothers);
#define DTLS_ADDR_SIZE 128
long dtls_seal_sendto(dtls_state *s, int fd, uint8_t type, const uint8_t *in,
                      const uint32_t *lens, size_t n, int mode, uint8_t *out, size_t out_cap,
                      uint32_t *out_lens, const uint8_t *addr, size_t addrlen);
long dtls_recv_from(int fd, int mode, uint8_t *buf, size_t cap, size_t slot, size_t max_dgrams,
                    uint32_t *spans, uint8_t *addrs, uint32_t *addrlens, size_t dg_cap,
                    uint32_t *dropped);
long dtls_seal_send_one(dtls_state *s, int fd, uint8_t type, const uint8_t *in, size_t in_len,
                        uint8_t *out, size_t out_cap);
#define DTLS_RECV_SEVERAL -200
long dtls_recv_open_one(dtls_state *s, int fd, uint8_t *buf, size_t cap, uint8_t *out,
                        size_t out_cap, dtls_open_result *res, uint32_t *dlen);
long dtls_reprotect(dtls_state *in_s, dtls_state *out_s, uint8_t app_type, const uint8_t *in,
                    size_t in_len, const uint32_t *spans, size_t ndgrams, uint8_t *out,
                    size_t out_cap, uint32_t *out_lens, size_t lens_cap, uint32_t *others,
                    size_t others_cap, uint32_t *nothers, uint32_t *counts);
#define DTLS_RELAY_DATAGRAMS 0
#define DTLS_RELAY_DROPPED 1
#define DTLS_RELAY_SEALED 2
#define DTLS_RELAY_SENT 3
#define DTLS_RELAY_ERRNO 4
#define DTLS_RELAY_INFO 5
long dtls_relay(dtls_state *in_s, int in_fd, int recv_mode, uint8_t *buf, size_t cap,
                size_t slot, size_t max_dgrams, uint32_t *spans, size_t spans_cap,
                dtls_state *out_s, int out_fd, int send_mode, const uint8_t *addr,
                size_t addrlen, uint8_t app_type, uint8_t *out, size_t out_cap,
                uint32_t *out_lens, size_t lens_cap, uint32_t *others, size_t others_cap,
                uint32_t *nothers, uint32_t *counts, uint32_t *info);
"""

_SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
             "-fno-sanitize-recover=undefined"]
_sanitize = os.environ.get("DTLS_SANITIZE") == "1"

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "dtls._record",
    '#include "record.h"\n#include "sha.h"\n#include "udpio.h"\n',
    sources=["csrc/record.c", "csrc/sha.c", "csrc/udpio.c"],
    include_dirs=["csrc"],
    libraries=["crypto"],
    extra_compile_args=["-O2", "-Wall", "-Wextra"] + (_SANITIZE if _sanitize else []),
    extra_link_args=_SANITIZE if _sanitize else [],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
