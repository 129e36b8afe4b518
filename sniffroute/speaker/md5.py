"""TCP-MD5 signatures (RFC 2385) on Linux: the `struct tcp_md5sig` argument of setsockopt(TCP_MD5SIG).

The packing is pure and tested; `set_md5` is the one call that touches a socket.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

TCP_MD5SIG = 14  # linux/tcp.h
TCP_MD5SIG_MAXKEYLEN = 80  # linux/tcp.h
SOCKADDR_STORAGE_LEN = 128  # struct __kernel_sockaddr_storage
# struct tcp_md5sig { sockaddr_storage tcpm_addr; u8 tcpm_flags; u8 tcpm_prefixlen; u16 tcpm_keylen;
#                     int tcpm_ifindex; u8 tcpm_key[80]; }  -- native byte order except inside the sockaddr.
_TCP_MD5SIG = struct.Struct(f"={SOCKADDR_STORAGE_LEN}sBBHi{TCP_MD5SIG_MAXKEYLEN}s")
# sockaddr_in: family (native), port (network order), address; sockaddr_in6 adds flowinfo and scope id.
_SOCKADDR_IN = struct.Struct("=H2s4s")
_SOCKADDR_IN6 = struct.Struct("=H2sI16sI")


def md5sig(peer: str, key: bytes | None) -> bytes:
    """The tcp_md5sig argument that sets (or, with key None or empty, removes) the key for one peer address."""
    address = ipaddress.ip_address(peer)
    if address.version == 4:
        sockaddr = _SOCKADDR_IN.pack(socket.AF_INET, b"\0\0", address.packed)
    else:
        sockaddr = _SOCKADDR_IN6.pack(socket.AF_INET6, b"\0\0", 0, address.packed, 0)
    key = key or b""
    if len(key) > TCP_MD5SIG_MAXKEYLEN:
        raise ValueError(f"TCP-MD5 key of {len(key)} bytes exceeds {TCP_MD5SIG_MAXKEYLEN}")
    return _TCP_MD5SIG.pack(sockaddr, 0, 0, len(key), 0, key)


def set_md5(sock: socket.socket, peer: str, password: str | None) -> None:
    """Sign (and require signatures on) segments exchanged with `peer` on `sock`: the connecting socket, or a
    listening one before the peer connects (accepted sockets inherit the key)."""
    sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, md5sig(peer, password.encode() if password else None))
