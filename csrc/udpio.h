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
 * Reads socket options only; changes nothing: the sendmmsg/recvmmsg probes run on a
 * scratch socket, so a pending socket error (SO_ERROR) is neither consumed nor a cause
 * of a missing capability. */
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


/* ---- unconnected sockets: many peers on one socket ----------------------------------------- */

/* Bytes per address entry of dtls_recv_from (>= sizeof(struct sockaddr_storage)). */
#define DTLS_ADDR_SIZE 128

/* Like dtls_seal_send, but for an UNCONNECTED socket: every record goes to the sockaddr of
 * addrlen bytes at addr (raw bytes as dtls_recv_from returns them; need not be aligned).
 * Same modes (GSO sends with msg_name set), same return values and partial-send semantics.
 * DTLS_ERR_ARG also for addrlen outside 2..sizeof(struct sockaddr_storage). */
long dtls_seal_sendto(dtls_state *s, int fd, uint8_t type, const uint8_t *in,
                      const uint32_t *lens, size_t n, int mode, uint8_t *out, size_t out_cap,
                      uint32_t *out_lens, const uint8_t *addr, size_t addrlen);

/* Receive up to max_dgrams datagrams with their source addresses, raw (nothing is opened):
 * slots, modes, blocking and GRO splitting exactly as dtls_recv_open.  Datagram j (after
 * GRO splitting, arrival order) is buf[spans[2j] .. spans[2j] + spans[2j+1]); its source is
 * the addrlens[j] bytes at addrs + j * DTLS_ADDR_SIZE (a struct sockaddr; every segment of
 * a coalesced buffer gets the buffer's source).  spans holds 2 * dg_cap entries, addrs
 * dg_cap * DTLS_ADDR_SIZE bytes, addrlens dg_cap entries; datagrams past dg_cap are counted
 * in *dropped (dg_cap >= 64 * max_dgrams never drops: the kernel coalesces at most 64).
 * Returns the datagrams stored (0 when nothing is pending), DTLS_ERR_ARG, DTLS_ERR_SPACE
 * (dg_cap 0) or DTLS_ERR_OS_BASE - errno. */
long dtls_recv_from(int fd, int mode, uint8_t *buf, size_t cap, size_t slot, size_t max_dgrams,
                    uint32_t *spans, uint8_t *addrs, uint32_t *addrlens, size_t dg_cap,
                    uint32_t *dropped);

/* ---- one record per call, connected socket: the lean path ---------------------------------- */

/* Seal one record (dtls_seal) and send it with one send(); returns the record length, a
 * DTLS_ERR_* from sealing, or DTLS_ERR_OS_BASE - errno (EAGAIN included) with next_seq put
 * back, as the record never left. */
long dtls_seal_send_one(dtls_state *s, int fd, uint8_t type, const uint8_t *in, size_t in_len,
                        uint8_t *out, size_t out_cap);

/* Receive one datagram (one recv() of up to cap bytes into buf; *dlen = its length).  If
 * it is exactly one record (or shorter than a header) it is opened as dtls_open does and
 * that is the return value; otherwise (several records, trailing bytes, a cut record, or
 * an empty datagram) it is left unopened in buf and DTLS_RECV_SEVERAL is returned, for the
 * caller's dtls_open_batch.  DTLS_ERR_OS_BASE - errno for a failed recv (EAGAIN included). */
#define DTLS_RECV_SEVERAL (-200)
long dtls_recv_open_one(dtls_state *s, int fd, uint8_t *buf, size_t cap, uint8_t *out,
                        size_t out_cap, dtls_open_result *res, uint32_t *dlen);

/* ---- relays: open with one state, seal with another, plaintext never leaves C -------------- */

/* Re-protect the records of ndgrams datagrams, datagram d being in[spans[2d] ..
 * spans[2d] + spans[2d+1]) (dtls_recv_from's spans; in_len bounds them all).  Records of
 * content type app_type are opened with in_s exactly as dtls_open does (replay window,
 * authentication; a refused record moves no window) and each accepted payload is sealed
 * with out_s as dtls_seal does (same type): the records land back to back in out, lengths
 * in out_lens, in arrival order, byte-identical to dtls_seal of the same payloads.
 *
 * counts[st] (DTLS_STATUS_SLOTS entries, zeroed first) = records of app_type with open
 * status st: counts[DTLS_OK] re-protected, the others refused; counts[DTLS_MALFORMED] also
 * counts datagrams whose framing broke (the rest of such a datagram is skipped).  Records
 * the caller must see go to others[] as (offset into in, length) pairs, *nothers of them,
 * NOT opened: records of any other content type (handshake, alerts: open them with in_s
 * yourself) and app_type records of another epoch (BAD_EPOCH, also counted).
 *
 * All or nothing for caller errors, checked before any state moves: DTLS_ERR_ARG (a span
 * outside in), DTLS_ERR_SPACE (out_cap below the worst case, the sum over app_type records
 * of dtls_state_record_len(out_s, min(fragment, 2^14)) -- in_len + 93 * (in_len / 13) always
 * suffices -- or lens_cap below the app_type records or others_cap below all records;
 * in_len / 13 + 1 of each suffices), DTLS_ERR_SEQ (out_s lacks the seqs).  Returns the
 * number of records sealed. */
long dtls_reprotect(dtls_state *in_s, dtls_state *out_s, uint8_t app_type, const uint8_t *in,
                    size_t in_len, const uint32_t *spans, size_t ndgrams, uint8_t *out,
                    size_t out_cap, uint32_t *out_lens, size_t lens_cap, uint32_t *others,
                    size_t others_cap, uint32_t *nothers, uint32_t *counts);

/* Indices into dtls_relay's info array. */
#define DTLS_RELAY_DATAGRAMS 0 /* datagrams received (after GRO splitting) */
#define DTLS_RELAY_DROPPED 1   /* datagrams not handled: spans_cap ran out */
#define DTLS_RELAY_SEALED 2    /* records re-protected into out */
#define DTLS_RELAY_SENT 3      /* of those, records sent (the first ones) */
#define DTLS_RELAY_ERRNO 4     /* errno that stopped sending, 0 if all went */
#define DTLS_RELAY_INFO 5

/* One relay step in one call: receive a batch on in_fd as dtls_recv_from does (spans gets
 * 2 * spans_cap entries; no addresses), re-protect it into out as dtls_reprotect does
 * (cap is the in_len), and send every sealed record, one per datagram, on out_fd in
 * send_mode (to addr of addrlen bytes, or connected if addr is NULL).  Returns the records
 * sent, or a negative code from receiving or re-protecting (then nothing was sent; a
 * DTLS_ERR_SPACE from re-protecting has consumed the received datagrams).  Sending stops at
 * the first error (info[DTLS_RELAY_ERRNO]); out_s's next_seq is NOT rewound: the unsent
 * records stay valid in out (records info[SENT] .. info[SEALED]-1) for the caller to send
 * later or drop, and their seqs are never reused. */
long dtls_relay(dtls_state *in_s, int in_fd, int recv_mode, uint8_t *buf, size_t cap,
                size_t slot, size_t max_dgrams, uint32_t *spans, size_t spans_cap,
                dtls_state *out_s, int out_fd, int send_mode, const uint8_t *addr,
                size_t addrlen, uint8_t app_type, uint8_t *out, size_t out_cap,
                uint32_t *out_lens, size_t lens_cap, uint32_t *others, size_t others_cap,
                uint32_t *nothers, uint32_t *counts, uint32_t *info);

#endif
