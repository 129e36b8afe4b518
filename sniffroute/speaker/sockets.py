"""The holder's sockets: bound to the router address, TCP-MD5 keys set before the first SYN, non-blocking."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable

from sniffroute.speaker.config import PeerConfig
from sniffroute.speaker.md5 import set_md5

LISTEN_BACKLOG = 16
# linux/in.h and linux/in6.h: bind to a router address before its TAP carries it.
IP_FREEBIND = 15
IPV6_FREEBIND = 78


def canonical(address: str) -> str:
    """One spelling per address (as PeerConfig stores it); a scope suffix (%eth0) is dropped."""
    try:
        return str(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return address


def address_family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def connecting_socket(config: PeerConfig) -> socket.socket:
    """A socket bound to the peer's local address (any port), keyed for TCP-MD5 if configured, ready to connect."""
    sock = socket.socket(address_family(config.address), socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if config.md5_password:
            set_md5(sock, config.address, config.md5_password)
        sock.bind((config.local_address, 0))
    except OSError:
        sock.close()
        raise
    return sock


def listening_socket(address: str, port: int, peers: Iterable[PeerConfig]) -> socket.socket:
    """Listen on (address, port), with the TCP-MD5 key of every peer that has one (accepted sockets inherit it)."""
    family = address_family(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
        else:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        for peer in peers:
            if peer.md5_password:
                set_md5(sock, peer.address, peer.md5_password)
        sock.bind((address, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def describe_os_error(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return str(exc) or type(exc).__name__
