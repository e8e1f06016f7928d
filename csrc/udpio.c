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
    /* vlen 0 sends and receives nothing; only a missing syscall fails (ENOSYS). */
    if (sendmmsg(fd, NULL, 0, 0) >= 0)
        caps |= DTLS_UDP_CAP_SENDMMSG;
    if (recvmmsg(fd, NULL, 0, MSG_DONTWAIT, NULL) >= 0)
        caps |= DTLS_UDP_CAP_RECVMMSG;
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

/* One send per record from record *sent on; advances *sent and *off. 0 or an errno. */
static int send_plain(int fd, const uint8_t *out, const uint32_t *lens, size_t n, size_t *sent,
                      size_t *off)
{
    while (*sent < n) {
        if (send(fd, out + *off, lens[*sent], 0) < 0)
            return errno;
        *off += lens[*sent];
        (*sent)++;
    }
    return 0;
}

#ifdef HAVE_MMSG
static int send_mmsg(int fd, uint8_t *out, const uint32_t *lens, size_t n, size_t *sent,
                     size_t *off)
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

static int send_gso(int fd, uint8_t *out, const uint32_t *lens, size_t n, size_t *sent,
                    size_t *off)
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
                int r = send_plain(fd, out, lens, *sent + k, sent, off);
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

long dtls_seal_send(dtls_state *s, int fd, uint8_t type, const uint8_t *in, const uint32_t *lens,
                    size_t n, int mode, uint8_t *out, size_t out_cap, uint32_t *out_lens)
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
        err = send_gso(fd, out, out_lens, n, &sent, &off);
    else if (mode == DTLS_UDP_MMSG)
        err = send_mmsg(fd, out, out_lens, n, &sent, &off);
    else
#endif
        err = send_plain(fd, out, out_lens, n, &sent, &off);
    if (sent < n) /* unsent records' seqs go back: the wire sees no gap and no reuse */
        dtls_state_set_next_seq(s, first + sent);
    if (sent == 0 && n > 0)
        return os_err(err);
    return (long)sent;
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

long dtls_recv_open(dtls_state *s, int fd, int mode, uint8_t *buf, size_t cap, size_t slot,
                    size_t max_dgrams, uint8_t *out, size_t out_cap, dtls_open_result *res,
                    size_t res_cap, uint32_t *ndgrams, uint32_t *dropped)
{
    *ndgrams = 0;
    *dropped = 0;
    if ((mode != DTLS_UDP_PLAIN && mode != DTLS_UDP_MMSG) || slot == 0 || slot > cap ||
        max_dgrams == 0 || cap > UINT32_MAX)
        return DTLS_ERR_ARG;
#ifndef HAVE_MMSG
    if (mode == DTLS_UDP_MMSG)
        return os_err(ENOSYS);
#endif
    if (out_cap < cap)
        return DTLS_ERR_SPACE;
    size_t nslots = cap / slot;
    if (nslots > max_dgrams)
        nslots = max_dgrams;
    if (nslots > MMSG_CHUNK)
        nslots = MMSG_CHUNK;
    if (mode == DTLS_UDP_PLAIN)
        nslots = 1;

    struct iovec iov[MMSG_CHUNK];
    gro_ctl ctl[MMSG_CHUNK];
    size_t got_len[MMSG_CHUNK], seg_size[MMSG_CHUNK];
    size_t got = 0;
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
        }
        /* MSG_WAITFORONE: block (if the socket blocks) for the first datagram only. */
        int r = recvmmsg(fd, msgs, (unsigned)nslots, MSG_WAITFORONE, NULL);
        if (r < 0)
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : os_err(errno);
        got = (size_t)r;
        for (size_t i = 0; i < got; i++) {
            got_len[i] = msgs[i].msg_len;
            seg_size[i] = gro_size(&msgs[i].msg_hdr);
        }
    } else
#endif
    {
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        iov[0].iov_base = buf;
        iov[0].iov_len = slot;
        mh.msg_iov = &iov[0];
        mh.msg_iovlen = 1;
        mh.msg_control = ctl[0].buf;
        mh.msg_controllen = sizeof ctl[0].buf;
        ssize_t r = recvmsg(fd, &mh, 0);
        if (r < 0)
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : os_err(errno);
        got = 1;
        got_len[0] = (size_t)r;
        seg_size[0] = gro_size(&mh);
    }

    size_t nres = 0, opos = 0;
    for (size_t i = 0; i < got; i++) {
        const size_t base = i * slot, len = got_len[i] > slot ? slot : got_len[i];
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

#endif
