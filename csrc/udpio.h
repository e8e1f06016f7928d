/* Batched UDP I/O for the record layer: seal a batch and send it, receive a batch and open it,
 * each in one C call and as few syscalls as the socket allows (UDP GSO/GRO, sendmmsg/recvmmsg).
 *
 * Linux-only fast paths are detected per socket at run time (dtls_udp_caps); elsewhere the
 * capability mask is 0 and only DTLS_UDP_PLAIN works.  Nothing here keeps global state: the
 * caller owns every buffer and caches the mask per socket.
 */
#ifndef DTLS_UDPIO_H
#define DTLS_UDPIO_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

/* Capability bits (dtls_udp_caps). */
#define DTLS_UDP_CAP_GSO 1         /* UDP_SEGMENT (Linux >= 4.18) */
#define DTLS_UDP_CAP_GRO 2         /* UDP_GRO can be enabled (Linux >= 5.0) */
#define DTLS_UDP_CAP_SENDMMSG 4
#define DTLS_UDP_CAP_RECVMMSG 8
#define DTLS_UDP_CAP_GRO_ON 16     /* UDP_GRO is enabled on this socket now */

/* Send/receive modes. */
#define DTLS_UDP_PLAIN 0 /* one send/recv per datagram */
#define DTLS_UDP_MMSG 1  /* sendmmsg / recvmmsg */
#define DTLS_UDP_GSO 2   /* send only: runs of equal-size records per sendmsg with UDP_SEGMENT */

/* At most this many segments and bytes per GSO send.  64 is the kernel's UDP_MAX_SEGMENTS;
 * 65000 keeps the UDP payload under the IPv4 (65507) and IPv6 (65487) datagram limits. */
#define DTLS_GSO_MAX_SEGMENTS 64
#define DTLS_GSO_MAX_BYTES 65000

/* An OS error e is returned as DTLS_ERR_OS_BASE - e, apart from record.h's DTLS_ERR_*. */
#define DTLS_ERR_OS_BASE (-1000)

/* The capability mask of a UDP socket, or DTLS_ERR_OS_BASE - errno (e.g. ENOTSOCK).
 * Reads socket options only; changes nothing. */
long dtls_udp_caps(int fd);

/* Enable (on != 0) or disable UDP GRO on a receiving socket: 0 or DTLS_ERR_OS_BASE - errno. */
long dtls_udp_set_gro(int fd, int on);

/* Seal n payloads (concatenated in `in`, lengths in `lens`) as dtls_seal_batch does, into
 * out (out_lens[i] = record i's length), and send them on the CONNECTED socket fd, one record
 * per datagram, in the given mode.  Returns the number of records sent (0..n) or a negative
 * code: DTLS_ERR_* from sealing (nothing sent, next_seq unchanged), DTLS_ERR_ARG for a bad
 * mode, DTLS_ERR_OS_BASE - errno when the first send failed.
 *
 * Partial sends (EAGAIN, ENOBUFS, any error after some records went out): the return value k
 * says records 0..k-1 were sent and next_seq is set to the seq after record k-1, so the
 * caller retries payloads k.. and gets the same record bytes a complete send would have
 * given.  Reusing the unsent records' seqs is safe: their ciphertexts never left this
 * process, so no nonce appears twice on the wire. */
long dtls_seal_send(dtls_state *s, int fd, uint8_t type, const uint8_t *in, const uint32_t *lens,
                    size_t n, int mode, uint8_t *out, size_t out_cap, uint32_t *out_lens);

/* Receive up to max_dgrams datagrams from fd into buf, split into slots of `slot` bytes
 * (cap / slot of them at most), with recvmmsg (mode MMSG; MSG_WAITFORONE, so only the first
 * datagram may block, and only if the socket does) or one recvmsg (mode PLAIN).  A UDP_GRO
 * control message splits a coalesced slot into its gso_size datagrams; slots must be 65535
 * bytes when GRO is on or coalesced data is truncated.  Every record of every datagram is
 * opened as dtls_open_batch does: plaintexts back to back in out (out_cap >= cap suffices),
 * one result per record; OK offsets are into out, BAD_EPOCH offsets into buf.
 *
 * Returns the number of results (0 when nothing is pending on a non-blocking socket), or
 * DTLS_ERR_ARG / DTLS_ERR_SPACE (out_cap < cap) / DTLS_ERR_OS_BASE - errno.  *ndgrams gets
 * the datagrams received (after GRO splitting); *dropped the datagrams not opened because
 * res_cap ran out (res_cap >= cap / 13 + 2 * max_dgrams avoids that unless GRO segments are
 * tiny). */
long dtls_recv_open(dtls_state *s, int fd, int mode, uint8_t *buf, size_t cap, size_t slot,
                    size_t max_dgrams, uint8_t *out, size_t out_cap, dtls_open_result *res,
                    size_t res_cap, uint32_t *ndgrams, uint32_t *dropped);

/* Compact n results of dtls_recv_open for a zero-object receive path: for every OK record of
 * content type app_type, spans[2k] = its offset into out and spans[2k+1] = its length (k in
 * arrival order; spans holds 2n entries).  counts[st] += 1 for every record with status st
 * (counts has DTLS_STATUS_SLOTS entries, the last catching any larger status).  The indices
 * of the other records a caller must not miss (OK records of other types, BAD_EPOCH records)
 * go to others[] (n entries), their count to *nothers.  Returns k, the number of spans. */
#define DTLS_STATUS_SLOTS 16
long dtls_compact_results(const dtls_open_result *res, size_t n, uint8_t app_type,
                          uint32_t *spans, uint32_t *counts, uint32_t *others,
                          uint32_t *nothers);

#endif
