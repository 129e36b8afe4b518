"""What the session holder is told about each peer: a frozen record, validated when it is built."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from parsers.bgp.constants import BGP_PORT

# RFC 4271 4.2: a hold time is 0 or at least 3 seconds.
MIN_HOLD_TIME = 3
MAX_HOLD_TIME = 0xFFFF
DEFAULT_HOLD_TIME = 90  # RFC 4271 10, suggested value
MAX_AS = 0xFFFFFFFF  # RFC 6793: 4-octet AS numbers
# RFC 4724 3: the Restart Time field is 12 bits; 120 s is the common default.
MAX_RESTART_TIME = 0x0FFF
DEFAULT_RESTART_TIME = 120
TCP_MD5_MAX_KEY_LEN = 80  # TCP_MD5SIG_MAXKEYLEN, linux/tcp.h


class PeerConfigError(ValueError):
    """A peer setting that cannot work; the message names the field and the problem."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerConfig:
    """One BGP peer of the holder.

    `address` is the peer's address and `local_address` ours (the router address on a TAP); both must be of the
    same family. A `passive` peer is only ever accepted, never connected to. `port` is the BGP port on both
    ends (179; another value lets tests run without privileges). `md5_password` turns on TCP-MD5 (RFC 2385) on
    the connecting socket and, for this peer's address, on the listening one.
    """

    address: str
    peer_as: int
    local_as: int
    router_id: str
    local_address: str
    passive: bool = False
    hold_time: int = DEFAULT_HOLD_TIME
    md5_password: str | None = None
    port: int = BGP_PORT
    restart_time: int = DEFAULT_RESTART_TIME

    def __post_init__(self) -> None:
        peer = _address("address", self.address)
        local = _address("local_address", self.local_address)
        if peer.version != local.version:
            raise PeerConfigError(f"address {self.address} and local_address {self.local_address}: families differ")
        for name in ("address", "local_address"):
            canonical = str(_address(name, getattr(self, name)))
            object.__setattr__(self, name, canonical)  # one spelling, so lookups by address always match
        for name in ("peer_as", "local_as"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 < value <= MAX_AS:
                raise PeerConfigError(f"{name} {value!r}: expected an AS number in 1..{MAX_AS}")
        try:
            router_id = ipaddress.IPv4Address(self.router_id)
        except (ipaddress.AddressValueError, ValueError):
            raise PeerConfigError(f"router_id {self.router_id!r}: expected a dotted quad") from None
        if int(router_id) == 0:
            raise PeerConfigError("router_id 0.0.0.0: a BGP Identifier must be non-zero (RFC 6286 2.2)")
        if not isinstance(self.hold_time, int) or not (
            self.hold_time == 0 or MIN_HOLD_TIME <= self.hold_time <= MAX_HOLD_TIME
        ):
            raise PeerConfigError(f"hold_time {self.hold_time!r}: expected 0 or {MIN_HOLD_TIME}..{MAX_HOLD_TIME} s")
        if not isinstance(self.port, int) or not 0 < self.port <= 0xFFFF:
            raise PeerConfigError(f"port {self.port!r}: expected 1..65535")
        if not isinstance(self.restart_time, int) or not 0 <= self.restart_time <= MAX_RESTART_TIME:
            raise PeerConfigError(f"restart_time {self.restart_time!r}: expected 0..{MAX_RESTART_TIME} s")
        if self.md5_password is not None:
            size = len(self.md5_password.encode())
            if not 0 < size <= TCP_MD5_MAX_KEY_LEN:
                raise PeerConfigError(f"md5_password: {size} bytes, expected 1..{TCP_MD5_MAX_KEY_LEN}")

    @property
    def ibgp(self) -> bool:
        return self.peer_as == self.local_as

    @property
    def family(self) -> int:
        """4 or 6."""
        return ipaddress.ip_address(self.address).version


def _address(name: str, text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise PeerConfigError(f"{name} {text!r}: not an IP address") from None
