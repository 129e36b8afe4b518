"""The tunnel between the switch's router interfaces and their TAPs: which frame goes where. Pure.

- A packet-in on an interface's port (and VLAN) addressed to the router MAC, to broadcast or to a routing / ND
  multicast group goes to that interface's TAP, VLAN tag removed (`Tunnel.from_switch`).
- A frame read from TAP n leaves by interface n's port, tagged as configured (`Tunnel.from_tap`). No flooding,
  no MAC learning: the interface says where.
- The punt flows that send the router's own traffic up are data (`punt_flows`): backends translate them into
  OpenFlow 1.0 or 1.3 flow mods. They sit in the `PUNT_PRIORITY` band, above every route flow, and match the
  router's addresses (or, where OpenFlow 1.0 cannot match IPv6, the router's MAC and multicast MACs), so that a
  learned route, even a default one, never swallows them and nothing else is sent up.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum

from parsers.bgp.constants import BGP_PORT
from parsers.frames import ETHERNET_HEADER, VLAN_TAG, EtherType
from sniffroute.config import RouterInterface

VLAN_TPID = int(EtherType.VLAN)  # 802.1Q C-tag, the tag the interfaces use
VLAN_VID_MASK = 0x0FFF
MAC_BYTES = 6
ETHERTYPE_OFFSET = 2 * MAC_BYTES
BROADCAST_MAC = b"\xff" * MAC_BYTES
NO_BUFFER = 0xFFFF  # OFPCML_NO_BUFFER (1.3), the largest miss_send_len / max_len (1.0): whole frames

# Flow priorities (OpenFlow: higher wins). Route flows later take ROUTE_BASE_PRIORITY + prefix length, which
# stays below the punt band whatever the prefix length.
PUNT_PRIORITY = 0xF000
ROUTE_BASE_PRIORITY = 0x1000
TABLE_MISS_PRIORITY = 0
PUNT_COOKIE = 0x5E1F_0001  # marks the punt flows on the switch (route flows carry their own cookie)


class IpProtocol(IntEnum):
    """IANA protocol numbers the punt flows match."""

    ICMP = 1
    TCP = 6
    OSPF = 89
    ICMPV6 = 58


# Routing and ND multicast groups (RFC 2328 A.1: AllSPFRouters/AllDRouters; RFC 5340 A.1; RFC 4291 2.7.1).
OSPF_IPV4_GROUPS = (ipaddress.IPv4Address("224.0.0.5"), ipaddress.IPv4Address("224.0.0.6"))
OSPF_IPV6_GROUPS = (ipaddress.IPv6Address("ff02::5"), ipaddress.IPv6Address("ff02::6"))
ALL_NODES = ipaddress.IPv6Address("ff02::1")
SOLICITED_NODE_PREFIX = ipaddress.IPv6Network("ff02::1:ff00:0/104")  # RFC 4291 2.7.1
SOLICITED_NODE_BITS = 24
IPV4_MULTICAST_MAC_PREFIX = b"\x01\x00\x5e"  # RFC 1112 6.4: low 23 bits of the group
IPV4_MULTICAST_MAC_BITS = 23
IPV6_MULTICAST_MAC_PREFIX = b"\x33\x33"  # RFC 2464 7: low 32 bits of the group
IPV6_MULTICAST_MAC_BYTES = 4
LINK_LOCAL_PREFIX = ipaddress.IPv6Network("fe80::/64")
EUI64_UL_BIT = 0x02  # RFC 4291 appendix A: the universal/local bit is inverted in an interface identifier
EUI64_FILLER = b"\xff\xfe"


def max_frame_size(mtu: int, vlan_tags: int) -> int:
    """The largest frame an interface carries: the IP MTU, the Ethernet header and each 802.1Q tag in use."""
    return mtu + ETHERNET_HEADER + VLAN_TAG * vlan_tags


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def multicast_mac(group: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """The Ethernet destination that carries an IP multicast group."""
    if group.version == 4:
        low = int(group) & ((1 << IPV4_MULTICAST_MAC_BITS) - 1)
        return IPV4_MULTICAST_MAC_PREFIX + low.to_bytes(3, "big")
    return IPV6_MULTICAST_MAC_PREFIX + group.packed[-IPV6_MULTICAST_MAC_BYTES:]


def solicited_node(address: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    low = int(address) & ((1 << SOLICITED_NODE_BITS) - 1)
    return ipaddress.IPv6Address(int(SOLICITED_NODE_PREFIX.network_address) | low)


def eui64_link_local(mac: str) -> ipaddress.IPv6Address:
    """The link-local address Linux gives an interface with this MAC (addr_gen_mode eui64, the default)."""
    raw = bytearray(mac_bytes(mac))
    raw[0] ^= EUI64_UL_BIT
    identifier = bytes(raw[:3]) + EUI64_FILLER + bytes(raw[3:])
    return ipaddress.IPv6Address(LINK_LOCAL_PREFIX.network_address.packed[:8] + identifier)


def ipv6_addresses(interface: RouterInterface, router_mac: str) -> list[ipaddress.IPv6Address]:
    """The interface's IPv6 addresses, link-local included (when it has any IPv6 at all)."""
    configured = [a.ip for a in interface.addresses if a.version == 6]
    if not configured:
        return []
    link_local = eui64_link_local(router_mac)
    return configured if link_local in configured else [*configured, link_local]  # type: ignore[list-item]


def router_macs(interface: RouterInterface, router_mac: str) -> frozenset[bytes]:
    """Destination MACs whose frames are for the router on this interface."""
    macs = {mac_bytes(router_mac), BROADCAST_MAC}
    if any(a.version == 4 for a in interface.addresses):
        macs.update(multicast_mac(g) for g in OSPF_IPV4_GROUPS)
    v6 = ipv6_addresses(interface, router_mac)
    if v6:
        macs.update(multicast_mac(g) for g in (*OSPF_IPV6_GROUPS, ALL_NODES))
        macs.update(multicast_mac(solicited_node(a)) for a in v6)
    return frozenset(macs)


# -- frames --------------------------------------------------------------------------------------------------


def vlan_of(frame: bytes) -> int | None:
    """The 802.1Q VID of a tagged frame, None when untagged (or too short to say)."""
    if len(frame) < ETHERNET_HEADER + VLAN_TAG:
        return None
    tpid, tci = struct.unpack_from("!HH", frame, ETHERTYPE_OFFSET)
    return tci & VLAN_VID_MASK if tpid == VLAN_TPID else None


def pop_vlan(frame: bytes) -> bytes:
    return frame[:ETHERTYPE_OFFSET] + frame[ETHERTYPE_OFFSET + VLAN_TAG :]


def push_vlan(frame: bytes, vid: int) -> bytes:
    return frame[:ETHERTYPE_OFFSET] + struct.pack("!HH", VLAN_TPID, vid) + frame[ETHERTYPE_OFFSET:]


class Refusal(Enum):
    """Why a packet-in does not go to a TAP."""

    RUNT = "shorter than an Ethernet header"
    NO_INTERFACE = "no router interface on that port and VLAN"
    NOT_FOR_ROUTER = "destination MAC is not the router's, broadcast or a routing/ND group"


@dataclass(frozen=True, slots=True)
class ToTap:
    """Write `frame` (untagged) to the TAP of interface number `interface`."""

    interface: int
    frame: bytes


@dataclass(frozen=True, slots=True)
class Refused:
    reason: Refusal


@dataclass(frozen=True, slots=True)
class PacketOut:
    """Send `frame` (tagged as the interface wants) out of switch port `port`."""

    port: int
    frame: bytes


class Tunnel:
    """Frames between the switch's router interfaces (port + VLAN) and the TAPs, by interface number."""

    def __init__(self, router_mac: str, interfaces: Sequence[RouterInterface]) -> None:
        self.router_mac = router_mac
        self.interfaces = tuple(interfaces)
        self._by_port_vlan = {(i.port, i.vlan): n for n, i in enumerate(self.interfaces)}
        self._accepted = [router_macs(i, router_mac) for i in self.interfaces]

    def interface_for(self, port: int, vlan: int | None) -> int | None:
        return self._by_port_vlan.get((port, vlan))

    def from_switch(self, in_port: int, frame: bytes) -> ToTap | Refused:
        if len(frame) < ETHERNET_HEADER:
            return Refused(Refusal.RUNT)
        vlan = vlan_of(frame)
        number = self._by_port_vlan.get((in_port, vlan))
        if number is None:
            return Refused(Refusal.NO_INTERFACE)
        if frame[:MAC_BYTES] not in self._accepted[number]:
            return Refused(Refusal.NOT_FOR_ROUTER)
        return ToTap(number, frame if vlan is None else pop_vlan(frame))

    def from_tap(self, interface: int, frame: bytes) -> PacketOut:
        config = self.interfaces[interface]
        return PacketOut(config.port, frame if config.vlan is None else push_vlan(frame, config.vlan))


# -- punt flows ----------------------------------------------------------------------------------------------

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """Fields a punt flow matches; None means wildcard, except `vlan`, where None means untagged."""

    in_port: int
    vlan: int | None
    eth_dst: bytes | None = None
    eth_type: int | None = None
    arp_tpa: ipaddress.IPv4Address | None = None
    ip_proto: int | None = None
    ipv4_dst: ipaddress.IPv4Address | None = None
    ipv6_dst: ipaddress.IPv6Address | None = None
    tcp_src: int | None = None
    tcp_dst: int | None = None


@dataclass(frozen=True, slots=True)
class PuntFlow:
    """Send matching frames, whole, to the controller. `purpose` names it in logs and tests."""

    purpose: str
    priority: int
    match: Match


def punt_flows(router_mac: str, interfaces: Iterable[RouterInterface], *, ipv6_fields: bool) -> list[PuntFlow]:
    """The flows that send the router's own traffic up, per interface. `ipv6_fields`: whether the switch
    protocol matches IPv6 addresses (OpenFlow 1.3); without them (1.0) IPv6 is matched by destination MAC."""
    mac = mac_bytes(router_mac)
    flows: list[PuntFlow] = []
    for interface in interfaces:

        def punt(purpose: str, interface: RouterInterface = interface, **fields: object) -> None:
            match = Match(in_port=interface.port, vlan=interface.vlan, **fields)  # type: ignore[arg-type]
            flows.append(PuntFlow(f"{interface.name} {purpose}", PUNT_PRIORITY, match))

        v4 = [a.ip for a in interface.addresses if a.version == 4]
        for address in v4:
            punt(f"arp for {address}", eth_type=EtherType.ARP, arp_tpa=address)
            ip = {"eth_dst": mac, "eth_type": EtherType.IPV4, "ipv4_dst": address}
            punt(f"icmp to {address}", ip_proto=IpProtocol.ICMP, **ip)
            punt(f"bgp to {address}", ip_proto=IpProtocol.TCP, tcp_dst=BGP_PORT, **ip)
            punt(f"bgp from peers of {address}", ip_proto=IpProtocol.TCP, tcp_src=BGP_PORT, **ip)
            punt(f"ospf to {address}", ip_proto=IpProtocol.OSPF, **ip)
        if v4:
            for group in OSPF_IPV4_GROUPS:
                punt(
                    f"ospf to {group}",
                    eth_dst=multicast_mac(group),
                    eth_type=EtherType.IPV4,
                    ip_proto=IpProtocol.OSPF,
                    ipv4_dst=group,
                )
        v6 = ipv6_addresses(interface, router_mac)
        if not v6:
            continue
        if not ipv6_fields:
            punt("ipv6 to the router mac", eth_dst=mac, eth_type=EtherType.IPV6)
            groups = [*OSPF_IPV6_GROUPS, ALL_NODES, *dict.fromkeys(solicited_node(a) for a in v6)]
            for group in groups:
                punt(f"ipv6 to {group}", eth_dst=multicast_mac(group), eth_type=EtherType.IPV6)
            continue
        for address in v6:
            ip6 = {"eth_dst": mac, "eth_type": EtherType.IPV6, "ipv6_dst": address}
            punt(f"icmpv6 to {address}", ip_proto=IpProtocol.ICMPV6, **ip6)
            punt(f"bgp to {address}", ip_proto=IpProtocol.TCP, tcp_dst=BGP_PORT, **ip6)
            punt(f"bgp from peers of {address}", ip_proto=IpProtocol.TCP, tcp_src=BGP_PORT, **ip6)
            punt(f"ospfv3 to {address}", ip_proto=IpProtocol.OSPF, **ip6)
        for group in (ALL_NODES, *dict.fromkeys(solicited_node(a) for a in v6)):
            punt(
                f"nd to {group}",
                eth_dst=multicast_mac(group),
                eth_type=EtherType.IPV6,
                ip_proto=IpProtocol.ICMPV6,
                ipv6_dst=group,
            )
        for group in OSPF_IPV6_GROUPS:
            punt(
                f"ospfv3 to {group}",
                eth_dst=multicast_mac(group),
                eth_type=EtherType.IPV6,
                ip_proto=IpProtocol.OSPF,
                ipv6_dst=group,
            )
    return flows
