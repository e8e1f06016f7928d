/* Batched UDP I/O around the record layer: see udpio.h.
 *
 * Why in C: the kernel costs ~5 us per send on loopback, so one syscall per record is the
 * limit of any per-packet loop; GSO sends up to 64 records per syscall and sendmmsg many
 * datagrams per syscall, and doing the sealing in the same call keeps it to one Python->C
 * crossing per batch.  Records are sealed back to back, so a GSO run is one iovec.
 */
#define _GNU_SOURCE /* sendmmsg, recvmmsg, struct mmsghdr */
#include "udpio.h"

#include <errno.h>
#include <string.h>

long dtls_compact_results(const dtls_open_result *res, size_t n, uint8_t app_type,
                          uint32_t *spans, uint32_t *counts, uint32_t *others,
                          uint32_t *nothers)
{
    size_t k = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        const int32_t st = res[i].status;
        counts[st >= 0 && st < DTLS_STATUS_SLOTS ? st : DTLS_STATUS_SLOTS - 1]++;
        if (st == DTLS_OK && res[i].type == app_type) {
            spans[2 * k] = res[i].offset;
            spans[2 * k + 1] = res[i].length;
            k++;
        } else if (st == DTLS_OK || st == DTLS_BAD_EPOCH) {
            others[m++] = (uint32_t)i;
        }
    }
    *nothers = (uint32_t)m;
    return (long)k;
}

/* ---- re-protection (no sockets: every platform) ---------------------------------------- */

/* The length of the whole record starting at rec (left bytes on), or 0 if none does. */
static size_t frame(const uint8_t *rec, size_t left)
{
    if (left < DTLS_HEADER_LEN)
        return 0;
    const size_t flen = (size_t)rec[11] << 8 | rec[12];
    if (flen > left - DTLS_HEADER_LEN || flen > DTLS_MAX_FRAGMENT)
        return 0;
    return DTLS_HEADER_LEN + flen;
}

long dtls_reprotect(dtls_state *in_s, dtls_state *out_s, uint8_t app_type, const uint8_t *in,
                    size_t in_len, const uint32_t *spans, size_t ndgrams, uint8_t *out,
                    size_t out_cap, uint32_t *out_lens, size_t lens_cap, uint32_t *others,
                    size_t others_cap, uint32_t *nothers, uint32_t *counts)
{
    *nothers = 0;
    memset(counts, 0, DTLS_STATUS_SLOTS * sizeof counts[0]);
    if (in_len > UINT32_MAX)
        return DTLS_ERR_ARG;
    /* Pass 1 changes nothing: frame every record, refuse bad spans and short outputs. */
    size_t napp = 0, nrec = 0, need = 0;
    for (size_t d = 0; d < ndgrams; d++) {
        const size_t pos = spans[2 * d], dlen = spans[2 * d + 1];
        if (pos > in_len || dlen > in_len - pos)
            return DTLS_ERR_ARG;
        size_t off = 0, rl;
        while ((rl = frame(in + pos + off, dlen - off)) != 0) {
            nrec++;
            if (in[pos + off] == app_type) {
                const size_t pl = rl - DTLS_HEADER_LEN; /* a plaintext is never longer */
                napp++;
                need += dtls_state_record_len(out_s, pl < DTLS_MAX_PLAINTEXT ? pl
                                                                              : DTLS_MAX_PLAINTEXT);
            }
            off += rl;
        }
    }
    if (napp > lens_cap || nrec > others_cap || need > out_cap)
        return DTLS_ERR_SPACE;
    const uint64_t next = dtls_state_next_seq(out_s);
    if (napp && (next > DTLS_MAX_SEQ || DTLS_MAX_SEQ - next < napp - 1))
        return DTLS_ERR_SEQ;

    uint8_t pt[DTLS_MAX_FRAGMENT];
    size_t k = 0, m = 0, opos = 0;
    for (size_t d = 0; d < ndgrams; d++) {
        const size_t pos = spans[2 * d], dlen = spans[2 * d + 1];
        size_t off = 0;
        while (off < dlen) {
            const uint8_t *rec = in + pos + off;
            const size_t rl = frame(rec, dlen - off);
            if (rl == 0) { /* nothing after a bad length can be framed, as dtls_open_batch */
                counts[DTLS_MALFORMED]++;
                break;
            }
            int st = DTLS_BAD_EPOCH; /* other content types go to the caller unopened */
            if (rec[0] == app_type) {
                dtls_open_result res;
                const long r = dtls_open(in_s, rec, rl, pt, sizeof pt, &res);
                if (r >= 0) {
                    const long w = dtls_seal(out_s, app_type, pt, (size_t)r, out + opos,
                                             out_cap - opos);
                    if (w < 0)
                        return w; /* pass 1 ruled out SPACE and SEQ */
                    out_lens[k++] = (uint32_t)w;
                    opos += (size_t)w;
                    counts[DTLS_OK]++;
                    off += rl;
                    continue;
                }
                if (r > DTLS_OPEN_REFUSED)
                    return r;
                st = (int)(DTLS_OPEN_REFUSED - r);
                counts[st < DTLS_STATUS_SLOTS ? st : DTLS_STATUS_SLOTS - 1]++;
            }
            if (st == DTLS_BAD_EPOCH) {
                others[2 * m] = (uint32_t)(pos + off);
                others[2 * m + 1] = (uint32_t)rl;
                m++;
            }
            off += rl;
        }
    }
    *nothers = (uint32_t)m;
    return (long)k;
}

#ifdef _WIN32

long dtls_udp_caps(int fd)
{
    (void)fd;
    return DTLS_ERR_OS_BASE - ENOSYS;
}

long dtls_udp_set_gro(int fd, int on)
{
    (void)fd;
    (void)on;
    return DTLS_ERR_OS_BASE - ENOSYS;
}

long dtls_seal_send(dtls_state *s, int fd, uint8_t type, const uint8_t *in, const uint32_t *lens,
                    size_t n, int mode, uint8_t *out, size_t out_cap, uint32_t *out_lens)
{
    (void)s, (void)fd, (void)type, (void)in, (void)lens, (void)n, (void)mode, (void)out;
    (void)out_cap, (void)out_lens;
    return DTLS_ERR_OS_BASE - ENOSYS;
}

long dtls_recv_open(dtls_state *s, int fd, int mode, uint8_t *buf, size_t cap, size_t slot,
                    size_t max_dgrams, uint8_t *out, size_t out_cap, dtls_open_result *res,
                    size_t res_cap, uint32_t *ndgrams, uint32_t *dropped)
{
    (void)s, (void)fd, (void)mode, (void)buf, (void)cap, (void)slot, (void)max_dgrams;
    (void)out, (void)out_cap, (void)res, (void)res_cap;
    *ndgrams = 0;
    *dropped = 0;
    return DTLS_ERR_OS_BASE - ENOSYS;
}

long dtls_seal_sendto(dtls_state *s, int fd, uint8_t type, const uint8_t *in,
                      const uint32_t *lens, size_t n, int mode, uint8_t *out, size_t out_cap,
                      uint32_t *out_lens, const uint8_t *addr, size_t addrlen)
{
    (void)s, (void)fd, (void)type, (void)in, (void)lens, (void)n, (void)mode, (void)out;
    (void)out_cap, (void)out_lens, (void)addr, (void)addrlen;
    return DTLS_ERR_OS_BASE - ENOSYS;
}

long dtls_recv_from(int fd, int mode, uint8_t *buf, size_t cap, size_t slot, size_t max_dgrams,
                    uint32_t *spans, uint8_t *addrs, uint32_t *addrlens, size_t dg_cap,
                    uint32_t *dropped)
{
    (void)fd, (void)mode, (void)buf, (void)cap, (void)slot, (void)max_dgrams, (void)spans;
    (void)addrs, (void)addrlens, (void)dg_cap;
    *dropped = 0;
    return DTLS_ERR_OS_BASE - ENOSYS;
}

long dtls_seal_send_one(dtls_state *s, int fd, uint8_t type, const uint8_t *in, size_t in_len,
                        uint8_t *out, size_t out_cap)
{
    (void)s, (void)fd, (void)type, (void)in, (void)in_len, (void)out, (void)out_cap;
    return DTLS_ERR_OS_BASE - ENOSYS;
}

long dtls_recv_open_one(dtls_state *s, int fd, uint8_t *buf, size_t cap, uint8_t *out,
                        size_t out_cap, dtls_open_result *res, uint32_t *dlen)
{
    (void)s, (void)fd, (void)buf, (void)cap, (void)out, (void)out_cap, (void)res;
    *dlen = 0;
    return DTLS_ERR_OS_BASE - ENOSYS;
}

long dtls_relay(dtls_state *in_s, int in_fd, int recv_mode, uint8_t *buf, size_t cap,
                size_t slot, size_t max_dgrams, uint32_t *spans, size_t spans_cap,
                dtls_state *out_s, int out_fd, int send_mode, const uint8_t *addr,
                size_t addrlen, uint8_t app_type, uint8_t *out, size_t out_cap,
                uint32_t *out_lens, size_t lens_cap, uint32_t *others, size_t others_cap,
                uint32_t *nothers, uint32_t *counts, uint32_t *info)
{
    (void)in_s, (void)in_fd, (void)recv_mode, (void)buf, (void)cap, (void)slot;
    (void)max_dgrams, (void)spans, (void)spans_cap, (void)out_s, (void)out_fd;
    (void)send_mode, (void)addr, (void)addrlen, (void)app_type, (void)out, (void)out_cap;
    (void)out_lens, (void)lens_cap, (void)others, (void)others_cap, (void)counts;
    memset(info, 0, DTLS_RELAY_INFO * sizeof info[0]);
    *nothers = 0;
    return DTLS_ERR_OS_BASE - ENOSYS;
}

#else

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#ifdef __linux__
#include <netinet/udp.h>
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103 /* linux/udp.h; older libc headers lack it */
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#define HAVE_MMSG 1
#endif

/* Datagrams per sendmmsg/recvmmsg call: bounds the on-stack header arrays (~26 KiB). */
#define MMSG_CHUNK 256

static long os_err(int e)
{
    return DTLS_ERR_OS_BASE - e;
}

#ifdef __linux__
/* Whether sendmmsg and recvmmsg exist (a kernel or seccomp policy may lack them), probed
 * with vlen 0, which moves no data.  Never on the caller's socket: recvmmsg starts by
 * taking the socket's pending error (sock_error(): an ICMP-reported ECONNREFUSED, say), so
 * probing there would swallow an error the caller's next receive must see, and fail the
 * probe while one is pending.  A scratch datagram socket of the same family has no state
 * to lose.  Only if none can be made (EMFILE, say) is the caller's fd probed, with
 * MSG_ERRQUEUE, under which recvmmsg skips the pending-error check (and vlen 0 reads
 * nothing from the error queue). */
static long mmsg_caps(int fd, int domain)
{
    long caps = 0;
    int probe = socket(domain, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (probe < 0 && domain != AF_UNIX)
        probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const int on = probe >= 0 ? probe : fd;
    if (sendmmsg(on, NULL, 0, 0) >= 0)
        caps |= DTLS_UDP_CAP_SENDMMSG;
    if (recvmmsg(on, NULL, 0, MSG_DONTWAIT | (probe >= 0 ? 0 : MSG_ERRQUEUE), NULL) >= 0)
        caps |= DTLS_UDP_CAP_RECVMMSG;
    if (probe >= 0)
        close(probe);
    return caps;
}
#endif

long dtls_udp_caps(int fd)
{
    int v = 0;
    socklen_t l = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) != 0)
        return os_err(errno);
    if (v != SOCK_DGRAM)
        return os_err(EPROTOTYPE);
    long caps = 0;
#ifdef __linux__
    int proto = 0, domain = AF_INET;
    l = sizeof proto;
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l) != 0)
        proto = 0;
    l = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) != 0)
        domain = AF_INET;
    if (proto != IPPROTO_UDP) /* e.g. AF_UNIX datagrams: mmsg only */
        goto mmsg;
    l = sizeof v;
    if (getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &l) == 0)
        caps |= DTLS_UDP_CAP_GSO;
    l = sizeof v;
    if (getsockopt(fd, SOL_UDP, UDP_GRO, &v, &l) == 0) { /* Linux >= 5.14 reads it back */
        caps |= DTLS_UDP_CAP_GRO;
        if (v)
            caps |= DTLS_UDP_CAP_GRO_ON;
    } else {
        /* Older kernels may only set it: probe a scratch socket, never the caller's. */
        int probe = socket(domain, SOCK_DGRAM, IPPROTO_UDP);
        if (probe >= 0) {
            int one = 1;
            if (setsockopt(probe, SOL_UDP, UDP_GRO, &one, sizeof one) == 0)
                caps |= DTLS_UDP_CAP_GRO;
            close(probe);
        }
    }
mmsg:
    caps |= mmsg_caps(fd, domain);
#endif
    return caps;
}

long dtls_udp_set_gro(int fd, int on)
{
#ifdef __linux__
    int v = on ? 1 : 0;
    if (setsockopt(fd, SOL_UDP, UDP_GRO, &v, sizeof v) != 0)
        return os_err(errno);
    return 0;
#else
    (void)fd;
    (void)on;
    return os_err(ENOPROTOOPT);
#endif
}

/* ---- sending ---------------------------------------------------------------------------- */

/* Where datagrams go: to == NULL for a connected socket, else a sockaddr of tolen bytes. */
typedef struct {
    const struct sockaddr *to;
    socklen_t tolen;
} dest;

/* One send per record from record *sent on; advances *sent and *off. 0 or an errno. */
static int send_plain(int fd, const dest *d, const uint8_t *out, const uint32_t *lens, size_t n,
                      size_t *sent, size_t *off)
{
    while (*sent < n) {
        const ssize_t r = d->to ? sendto(fd, out + *off, lens[*sent], 0, d->to, d->tolen)
                                : send(fd, out + *off, lens[*sent], 0);
        if (r < 0)
            return errno;
        *off += lens[*sent];
        (*sent)++;
    }
    return 0;
}

#ifdef HAVE_MMSG
static int send_mmsg(int fd, const dest *d, uint8_t *out, const uint32_t *lens, size_t n,
                     size_t *sent, size_t *off)
{
    struct mmsghdr msgs[MMSG_CHUNK];
    struct iovec iov[MMSG_CHUNK];
    while (*sent < n) {
        const size_t k = n - *sent < MMSG_CHUNK ? n - *sent : MMSG_CHUNK;
        size_t o = *off;
        memset(msgs, 0, k * sizeof msgs[0]);
        for (size_t j = 0; j < k; j++) {
            iov[j].iov_base = out + o;
            iov[j].iov_len = lens[*sent + j];
            msgs[j].msg_hdr.msg_iov = &iov[j];
            msgs[j].msg_hdr.msg_iovlen = 1;
            msgs[j].msg_hdr.msg_name = (void *)d->to;
            msgs[j].msg_hdr.msg_namelen = d->to ? d->tolen : 0;
            o += lens[*sent + j];
        }
        int r = sendmmsg(fd, msgs, (unsigned)k, 0);
        if (r < 0)
            return errno;
        if (r == 0) /* cannot happen for k > 0; never spin */
            return EAGAIN;
        for (int j = 0; j < r; j++)
            *off += lens[*sent + (size_t)j];
        *sent += (size_t)r;
        /* r < k: the kernel stopped at an error; the next call returns it. */
    }
    return 0;
}

static int send_gso(int fd, const dest *d, uint8_t *out, const uint32_t *lens, size_t n,
                    size_t *sent, size_t *off)
{
    while (*sent < n) {
        /* A run: records of one size, optionally ended by one shorter record (the kernel
         * makes every segment gso_size bytes except the last). */
        const size_t seg = lens[*sent];
        size_t k = 1, bytes = seg;
        while (*sent + k < n && k < DTLS_GSO_MAX_SEGMENTS) {
            const size_t l = lens[*sent + k];
            if (l > seg || bytes + l > DTLS_GSO_MAX_BYTES)
                break;
            bytes += l;
            k++;
            if (l < seg)
                break;
        }
        struct iovec iov;
        struct msghdr mh;
        union {
            char buf[CMSG_SPACE(sizeof(uint16_t))];
            struct cmsghdr align;
        } ctl;
        iov.iov_base = out + *off;
        iov.iov_len = bytes;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_name = (void *)d->to;
        mh.msg_namelen = d->to ? d->tolen : 0;
        if (k > 1) {
            const uint16_t gso_size = (uint16_t)seg;
            memset(&ctl, 0, sizeof ctl);
            mh.msg_control = ctl.buf;
            mh.msg_controllen = sizeof ctl.buf;
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof gso_size);
            memcpy(CMSG_DATA(cm), &gso_size, sizeof gso_size);
        }
        if (sendmsg(fd, &mh, 0) < 0) {
            const int e = errno;
            /* EINVAL: segment larger than the route MTU; EIO: no checksum offload.  Send
             * this run one record at a time instead of failing the batch. */
            if (k > 1 && (e == EINVAL || e == EIO)) {
                int r = send_plain(fd, d, out, lens, *sent + k, sent, off);
                if (r)
                    return r;
                continue;
            }
            return e;
        }
        *sent += k;
        *off += bytes;
    }
    return 0;
}
#endif

static long seal_send_to(dtls_state *s, int fd, const dest *d, uint8_t type, const uint8_t *in,
                         const uint32_t *lens, size_t n, int mode, uint8_t *out, size_t out_cap,
                         uint32_t *out_lens)
{
    if (mode != DTLS_UDP_PLAIN && mode != DTLS_UDP_MMSG && mode != DTLS_UDP_GSO)
        return DTLS_ERR_ARG;
#ifndef HAVE_MMSG
    if (mode != DTLS_UDP_PLAIN)
        return os_err(ENOSYS);
#endif
    const uint64_t first = dtls_state_next_seq(s);
    const long total = dtls_seal_batch(s, type, in, lens, n, out, out_cap, out_lens);
    if (total < 0)
        return total;
    size_t sent = 0, off = 0;
    int err = 0;
#ifdef HAVE_MMSG
    if (mode == DTLS_UDP_GSO)
        err = send_gso(fd, d, out, out_lens, n, &sent, &off);
    else if (mode == DTLS_UDP_MMSG)
        err = send_mmsg(fd, d, out, out_lens, n, &sent, &off);
    else
#endif
        err = send_plain(fd, d, out, out_lens, n, &sent, &off);
    if (sent < n) /* unsent records' seqs go back: the wire sees no gap and no reuse */
        dtls_state_set_next_seq(s, first + sent);
    if (sent == 0 && n > 0)
        return os_err(err);
    return (long)sent;
}

long dtls_seal_send(dtls_state *s, int fd, uint8_t type, const uint8_t *in, const uint32_t *lens,
                    size_t n, int mode, uint8_t *out, size_t out_cap, uint32_t *out_lens)
{
    const dest d = {NULL, 0};
    return seal_send_to(s, fd, &d, type, in, lens, n, mode, out, out_cap, out_lens);
}

long dtls_seal_sendto(dtls_state *s, int fd, uint8_t type, const uint8_t *in,
                      const uint32_t *lens, size_t n, int mode, uint8_t *out, size_t out_cap,
                      uint32_t *out_lens, const uint8_t *addr, size_t addrlen)
{
    struct sockaddr_storage ss; /* the caller's bytes may be unaligned */
    if (addrlen < sizeof(sa_family_t) || addrlen > sizeof ss)
        return DTLS_ERR_ARG;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, addr, addrlen);
    const dest d = {(const struct sockaddr *)&ss, (socklen_t)addrlen};
    return seal_send_to(s, fd, &d, type, in, lens, n, mode, out, out_cap, out_lens);
}

long dtls_seal_send_one(dtls_state *s, int fd, uint8_t type, const uint8_t *in, size_t in_len,
                        uint8_t *out, size_t out_cap)
{
    const uint64_t seq = dtls_state_next_seq(s);
    const long n = dtls_seal(s, type, in, in_len, out, out_cap);
    if (n < 0)
        return n;
    if (send(fd, out, (size_t)n, 0) < 0) {
        const int e = errno;
        dtls_state_set_next_seq(s, seq); /* never on the wire: the seq is free again */
        return os_err(e);
    }
    return n;
}

/* ---- receiving -------------------------------------------------------------------------- */

typedef union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
} gro_ctl;

/* The UDP_GRO segment size of a received message, or 0 if it was not coalesced. */
static size_t gro_size(struct msghdr *mh)
{
#ifdef __linux__
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO &&
            cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int g;
            memcpy(&g, CMSG_DATA(cm), sizeof g);
            return g > 0 ? (size_t)g : 0;
        }
    }
#else
    (void)mh;
#endif
    return 0;
}

/* What one receive call got, per slot: bytes, GRO segment size (0: not coalesced), source. */
typedef struct {
    size_t len[MMSG_CHUNK];
    size_t seg[MMSG_CHUNK];
    socklen_t namelen[MMSG_CHUNK];
} slots_got;

/* Receive into nslots (1..MMSG_CHUNK) slots of `slot` bytes at buf with recvmmsg (MMSG,
 * MSG_WAITFORONE) or one recvmsg (PLAIN); names (nslots entries, or NULL) get the sources.
 * Returns the datagrams received (0 when none is pending) or os_err(errno). */
static long recv_slots(int fd, int mode, uint8_t *buf, size_t slot, size_t nslots,
                       struct sockaddr_storage *names, slots_got *g)
{
    struct iovec iov[MMSG_CHUNK];
    gro_ctl ctl[MMSG_CHUNK];
    if (mode == DTLS_UDP_PLAIN)
        nslots = 1;
#ifdef HAVE_MMSG
    if (mode == DTLS_UDP_MMSG) {
        struct mmsghdr msgs[MMSG_CHUNK];
        memset(msgs, 0, nslots * sizeof msgs[0]);
        for (size_t i = 0; i < nslots; i++) {
            iov[i].iov_base = buf + i * slot;
            iov[i].iov_len = slot;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = ctl[i].buf;
            msgs[i].msg_hdr.msg_controllen = sizeof ctl[i].buf;
            if (names) {
                msgs[i].msg_hdr.msg_name = &names[i];
                msgs[i].msg_hdr.msg_namelen = sizeof names[i];
            }
        }
        /* MSG_WAITFORONE: block (if the socket blocks) for the first datagram only. */
        const int r = recvmmsg(fd, msgs, (unsigned)nslots, MSG_WAITFORONE, NULL);
        if (r < 0)
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : os_err(errno);
        for (int i = 0; i < r; i++) {
            g->len[i] = msgs[i].msg_len > slot ? slot : msgs[i].msg_len;
            g->seg[i] = gro_size(&msgs[i].msg_hdr);
            g->namelen[i] = names ? msgs[i].msg_hdr.msg_namelen : 0;
        }
        return r;
    }
#endif
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    iov[0].iov_base = buf;
    iov[0].iov_len = slot;
    mh.msg_iov = &iov[0];
    mh.msg_iovlen = 1;
    mh.msg_control = ctl[0].buf;
    mh.msg_controllen = sizeof ctl[0].buf;
    if (names) {
        mh.msg_name = &names[0];
        mh.msg_namelen = sizeof names[0];
    }
    const ssize_t r = recvmsg(fd, &mh, 0);
    if (r < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : os_err(errno);
    g->len[0] = (size_t)r > slot ? slot : (size_t)r;
    g->seg[0] = gro_size(&mh);
    g->namelen[0] = names ? mh.msg_namelen : 0;
    return 1;
}

/* The checks dtls_recv_open and dtls_recv_from share; the slot count, or a DTLS_ERR_*. */
static long recv_args(int mode, size_t cap, size_t slot, size_t max_dgrams)
{
    if ((mode != DTLS_UDP_PLAIN && mode != DTLS_UDP_MMSG) || slot == 0 || slot > cap ||
        max_dgrams == 0 || cap > UINT32_MAX)
        return DTLS_ERR_ARG;
#ifndef HAVE_MMSG
    if (mode == DTLS_UDP_MMSG)
        return os_err(ENOSYS);
#endif
    size_t nslots = cap / slot;
    if (nslots > max_dgrams)
        nslots = max_dgrams;
    if (nslots > MMSG_CHUNK)
        nslots = MMSG_CHUNK;
    return (long)nslots;
}

long dtls_recv_open(dtls_state *s, int fd, int mode, uint8_t *buf, size_t cap, size_t slot,
                    size_t max_dgrams, uint8_t *out, size_t out_cap, dtls_open_result *res,
                    size_t res_cap, uint32_t *ndgrams, uint32_t *dropped)
{
    *ndgrams = 0;
    *dropped = 0;
    const long nslots = recv_args(mode, cap, slot, max_dgrams);
    if (nslots < 0)
        return nslots;
    if (out_cap < cap)
        return DTLS_ERR_SPACE;
    slots_got g;
    const long nrecv = recv_slots(fd, mode, buf, slot, (size_t)nslots, NULL, &g);
    if (nrecv < 0)
        return nrecv;
    const size_t got = (size_t)nrecv;
    const size_t *got_len = g.len, *seg_size = g.seg;

    size_t nres = 0, opos = 0;
    for (size_t i = 0; i < got; i++) {
        const size_t base = i * slot, len = got_len[i];
        const size_t step = seg_size[i] ? seg_size[i] : (len ? len : 1);
        size_t off = 0;
        do { /* an empty datagram is one datagram with no records */
            const size_t dl = len - off < step ? len - off : step;
            (*ndgrams)++;
            if (res_cap - nres < dl / DTLS_HEADER_LEN + 1) {
                (*dropped)++;
            } else {
                const uint32_t dl32 = (uint32_t)dl;
                const long r = dtls_open_batch(s, buf + base + off, dl, &dl32, 1, out + opos,
                                               out_cap - opos, res + nres, res_cap - nres);
                if (r < 0)
                    return r;
                const size_t opos0 = opos; /* this call's offsets count from here */
                for (size_t j = nres; j < nres + (size_t)r; j++) {
                    if (res[j].status == DTLS_OK) {
                        res[j].offset += (uint32_t)opos0;
                        opos += res[j].length;
                    } else if (res[j].status == DTLS_BAD_EPOCH) {
                        res[j].offset += (uint32_t)(base + off);
                    }
                }
                nres += (size_t)r;
            }
            off += dl;
        } while (off < len);
    }
    return (long)nres;
}

/* Receive into spans (and, if addrs != NULL, addresses): see dtls_recv_from. */
static long recv_spans(int fd, int mode, uint8_t *buf, size_t cap, size_t slot,
                       size_t max_dgrams, uint32_t *spans, uint8_t *addrs, uint32_t *addrlens,
                       size_t dg_cap, uint32_t *dropped)
{
    *dropped = 0;
    const long nslots = recv_args(mode, cap, slot, max_dgrams);
    if (nslots < 0)
        return nslots;
    if (dg_cap == 0)
        return DTLS_ERR_SPACE;
    struct sockaddr_storage names[MMSG_CHUNK];
    slots_got g;
    const long got = recv_slots(fd, mode, buf, slot, (size_t)nslots, addrs ? names : NULL, &g);
    if (got < 0)
        return got;
    size_t n = 0;
    for (size_t i = 0; i < (size_t)got; i++) {
        const size_t len = g.len[i], step = g.seg[i] ? g.seg[i] : (len ? len : 1);
        size_t namelen = g.namelen[i];
        if (namelen > sizeof names[i])
            namelen = sizeof names[i];
        size_t off = 0;
        do { /* an empty datagram is one datagram of length 0 */
            const size_t dl = len - off < step ? len - off : step;
            if (n == dg_cap) {
                (*dropped)++;
            } else {
                spans[2 * n] = (uint32_t)(i * slot + off);
                spans[2 * n + 1] = (uint32_t)dl;
                if (addrs) {
                    memcpy(addrs + n * DTLS_ADDR_SIZE, &names[i], namelen);
                    addrlens[n] = (uint32_t)namelen;
                }
                n++;
            }
            off += dl;
        } while (off < len);
    }
    return (long)n;
}

/* DTLS_ADDR_SIZE must hold any sockaddr the kernel returns. */
typedef char dtls_addr_size_check[DTLS_ADDR_SIZE >= sizeof(struct sockaddr_storage) ? 1 : -1];

long dtls_recv_from(int fd, int mode, uint8_t *buf, size_t cap, size_t slot, size_t max_dgrams,
                    uint32_t *spans, uint8_t *addrs, uint32_t *addrlens, size_t dg_cap,
                    uint32_t *dropped)
{
    if (addrs == NULL || addrlens == NULL)
        return DTLS_ERR_ARG;
    return recv_spans(fd, mode, buf, cap, slot, max_dgrams, spans, addrs, addrlens, dg_cap,
                      dropped);
}

long dtls_recv_open_one(dtls_state *s, int fd, uint8_t *buf, size_t cap, uint8_t *out,
                        size_t out_cap, dtls_open_result *res, uint32_t *dlen)
{
    *dlen = 0;
    if (cap > UINT32_MAX)
        return DTLS_ERR_ARG;
    const ssize_t r = recv(fd, buf, cap, 0);
    if (r < 0)
        return os_err(errno);
    const size_t n = (size_t)r;
    *dlen = (uint32_t)n;
    if (n == 0 || (n >= DTLS_HEADER_LEN && ((size_t)buf[11] << 8 | buf[12]) != n - DTLS_HEADER_LEN))
        return DTLS_RECV_SEVERAL;
    return dtls_open(s, buf, n, out, out_cap, res);
}

/* ---- relaying: see dtls_reprotect (portable, above) ------------------------------------ */

long dtls_relay(dtls_state *in_s, int in_fd, int recv_mode, uint8_t *buf, size_t cap,
                size_t slot, size_t max_dgrams, uint32_t *spans, size_t spans_cap,
                dtls_state *out_s, int out_fd, int send_mode, const uint8_t *addr,
                size_t addrlen, uint8_t app_type, uint8_t *out, size_t out_cap,
                uint32_t *out_lens, size_t lens_cap, uint32_t *others, size_t others_cap,
                uint32_t *nothers, uint32_t *counts, uint32_t *info)
{
    struct sockaddr_storage ss;
    dest d = {NULL, 0};
    memset(info, 0, DTLS_RELAY_INFO * sizeof info[0]);
    *nothers = 0;
    memset(counts, 0, DTLS_STATUS_SLOTS * sizeof counts[0]);
    if (send_mode != DTLS_UDP_PLAIN && send_mode != DTLS_UDP_MMSG && send_mode != DTLS_UDP_GSO)
        return DTLS_ERR_ARG;
#ifndef HAVE_MMSG
    if (send_mode != DTLS_UDP_PLAIN)
        return os_err(ENOSYS);
#endif
    if (addr) {
        if (addrlen < sizeof(sa_family_t) || addrlen > sizeof ss)
            return DTLS_ERR_ARG;
        memset(&ss, 0, sizeof ss);
        memcpy(&ss, addr, addrlen);
        d.to = (const struct sockaddr *)&ss;
        d.tolen = (socklen_t)addrlen;
    }
    const long n = recv_spans(in_fd, recv_mode, buf, cap, slot, max_dgrams, spans, NULL, NULL,
                              spans_cap, &info[DTLS_RELAY_DROPPED]);
    if (n < 0)
        return n;
    info[DTLS_RELAY_DATAGRAMS] = (uint32_t)n;
    const long k = dtls_reprotect(in_s, out_s, app_type, buf, cap, spans, (size_t)n, out,
                                  out_cap, out_lens, lens_cap, others, others_cap, nothers,
                                  counts);
    if (k < 0)
        return k;
    info[DTLS_RELAY_SEALED] = (uint32_t)k;
    size_t sent = 0, off = 0;
    int err = 0;
#ifdef HAVE_MMSG
    if (send_mode == DTLS_UDP_GSO)
        err = send_gso(out_fd, &d, out, out_lens, (size_t)k, &sent, &off);
    else if (send_mode == DTLS_UDP_MMSG)
        err = send_mmsg(out_fd, &d, out, out_lens, (size_t)k, &sent, &off);
    else
#endif
        err = send_plain(out_fd, &d, out, out_lens, (size_t)k, &sent, &off);
    info[DTLS_RELAY_SENT] = (uint32_t)sent;
    info[DTLS_RELAY_ERRNO] = (uint32_t)err;
    return (long)sent;
}

#endif
