"""Socket addresses as the batched UDP I/O passes them: raw sockaddr bytes (what recvmmsg
fills in and sendmsg takes) to and from the tuples socket.recvfrom returns.

Pure Python, shared by dtls._cudpio and its twin dtls._pyudpio, so both convert exactly
alike (and neither needs the other: the twin must work without the C extension).
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import Any

_ADDR_SIZE = 128  # csrc/udpio.h DTLS_ADDR_SIZE (tests/test_udpio_server.py checks they agree)
_FAMILY = struct.Struct("=H")  # sa_family_t, host order, first in every sockaddr
_AF_INET = int(socket.AF_INET)
_AF_INET6 = int(socket.AF_INET6)
_ADDR_CACHE_MAX = 4096
# Raw sockaddr bytes -> address tuple, and (family, tuple) -> raw bytes.  Bounded: cleared
# when full (a server with more peers than this just converts again).  Shared by threads:
# single dict operations are atomic, and a lost insert only costs a conversion.
_tuples: dict[bytes, Any] = {}
_raws: dict[tuple[int, Any], bytes] = {}


def _link_local(a: bytes) -> bool:
    return (a[0] == 0xFE and a[1] & 0xC0 == 0x80) or (a[0] == 0xFF and a[1] & 0x0F == 0x02)


def _parse_sockaddr(raw: bytes) -> Any:
    """A raw sockaddr as socket.recvfrom gives it: ('127.0.0.1', 5000) for IPv4,
    ('::1', 5000, flowinfo, scope_id) for IPv6 (link-local hosts get '%scope' as
    getnameinfo appends it); any other family comes back as the raw bytes."""
    fam = _FAMILY.unpack_from(raw)[0] if len(raw) >= 2 else -1
    if fam == _AF_INET and len(raw) >= 8:
        return (socket.inet_ntop(socket.AF_INET, raw[4:8]), int.from_bytes(raw[2:4], "big"))
    if fam == _AF_INET6 and len(raw) >= 28:
        a = raw[8:24]
        host = socket.inet_ntop(socket.AF_INET6, a)
        scope = int.from_bytes(raw[24:28], sys.byteorder)
        if scope and _link_local(a):
            try:
                host += "%" + socket.if_indextoname(scope)
            except OSError:
                host += "%" + str(scope)
        return (host, int.from_bytes(raw[2:4], "big"), int.from_bytes(raw[4:8], "big"), scope)
    return raw


def _addr_tuple(raw: bytes) -> Any:
    try:
        return _tuples[raw]
    except KeyError:
        pass
    t = _parse_sockaddr(raw)
    if len(_tuples) >= _ADDR_CACHE_MAX:
        _tuples.clear()
    _tuples[raw] = t
    return t


def _port(p: Any) -> int:
    if type(p) is not int:
        raise TypeError(f"port must be an int, not {type(p).__name__}")
    if not 0 <= p <= 65535:
        raise OverflowError("port must be 0-65535.")
    return p


def _pack_sockaddr(family: int, addr: Any) -> bytes:
    if not isinstance(addr, tuple):
        raise TypeError(f"address must be a tuple or raw sockaddr bytes, not "
                        f"{type(addr).__name__}")
    if family == _AF_INET:
        if len(addr) != 2:
            raise TypeError("AF_INET address must be a pair (host, port)")
        host, port = addr[0], _port(addr[1])
        try:
            a = socket.inet_pton(socket.AF_INET, host)
        except OSError:  # a hostname: resolve as socket.sendto would
            ai = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
            a = socket.inet_pton(socket.AF_INET, str(ai[0][4][0]))
        return _FAMILY.pack(_AF_INET) + port.to_bytes(2, "big") + a + bytes(8)
    if family == _AF_INET6:
        if not 2 <= len(addr) <= 4:
            raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
        host, port = addr[0], _port(addr[1])
        flow = addr[2] if len(addr) > 2 else 0
        scope = addr[3] if len(addr) > 3 else 0
        if not 0 <= flow <= 0xFFFFF:
            raise OverflowError("flowinfo must be 0-1048575.")
        try:
            name, pct, sc = host.partition("%")
            a = socket.inet_pton(socket.AF_INET6, name)
            if pct and not scope:
                scope = int(sc) if sc.isdigit() else socket.if_nametoindex(sc)
        except OSError:
            sa: Any = socket.getaddrinfo(host, port, socket.AF_INET6, socket.SOCK_DGRAM)[0][4]
            a = socket.inet_pton(socket.AF_INET6, str(sa[0]).partition("%")[0])
            scope = scope or int(sa[3])
        return (_FAMILY.pack(_AF_INET6) + port.to_bytes(2, "big") + flow.to_bytes(4, "big") + a
                + scope.to_bytes(4, sys.byteorder))
    raise ValueError(f"address family {family} needs raw sockaddr bytes")


def _sockaddr(sock: socket.socket, addr: Any) -> bytes:
    """The raw sockaddr for `addr` on sock's family (cached), or addr if it is raw bytes."""
    if type(addr) is bytes:
        if not 2 <= len(addr) <= _ADDR_SIZE:
            raise ValueError(f"a raw socket address is 2..{_ADDR_SIZE} bytes")
        return addr
    key = (int(sock.family), addr)
    try:
        return _raws[key]
    except KeyError:
        pass
    except TypeError:  # unhashable: a list, say
        raise TypeError("address must be a tuple or raw sockaddr bytes") from None
    raw = _pack_sockaddr(key[0], addr)
    if len(_raws) >= _ADDR_CACHE_MAX:
        _raws.clear()
    _raws[key] = raw
    return raw
