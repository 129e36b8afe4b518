"""sniffroute.tunnel: where each frame goes, and what the punt flows send up, judged on frames built by scapy.

The punt flows are applied to frames by a small flow table written here from the OpenFlow match semantics
(wildcards, prerequisites, VLAN present/absent), so the tests assert where a packet goes, not what a flow says.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from sniffroute.config import RouterInterface
from sniffroute.tunnel import (
    PUNT_PRIORITY,
    ROUTE_BASE_PRIORITY,
    Match,
    PacketOut,
    Refusal,
    Refused,
    ToTap,
    Tunnel,
    eui64_link_local,
    max_frame_size,
    multicast_mac,
    punt_flows,
    solicited_node,
)

ROUTER_MAC = "02:00:5e:10:00:01"
PEER_MAC = "02:00:00:00:00:aa"
OTHER_MAC = "02:00:00:00:00:bb"
ROUTER_V4, PEER_V4, OTHER_V4 = "192.0.2.254", "192.0.2.1", "192.0.2.77"
ROUTER_V6, PEER_V6, OTHER_V6 = "2001:db8:1::fe", "2001:db8:1::1", "2001:db8:1::77"
ROUTER_VLAN_V4 = "198.51.100.254"


def _interface(name: str, port: int, vlan: int | None, *addresses: str) -> RouterInterface:
    return RouterInterface(
        name=name,
        port=port,
        vlan=vlan,
        addresses=tuple(ipaddress.ip_interface(a) for a in addresses),
        mtu=1500,
    )


PORT1 = _interface("sr1", 1, None, f"{ROUTER_V4}/24", f"{ROUTER_V6}/64")
PORT2_V100 = _interface("sr2", 2, 100, f"{ROUTER_VLAN_V4}/24")
INTERFACES = (PORT1, PORT2_V100)


@pytest.fixture
def tunnel() -> Tunnel:
    return Tunnel(ROUTER_MAC, INTERFACES)


# -- frame sizes ---------------------------------------------------------------------------------------------


def test_largest_frame_is_mtu_plus_ethernet_header_plus_tags() -> None:
    full = Ether(dst=ROUTER_MAC, src=PEER_MAC) / IP(src=PEER_V4, dst=ROUTER_V4) / Raw(b"x" * (1500 - 20))
    tagged = Ether(dst=ROUTER_MAC, src=PEER_MAC) / Dot1Q(vlan=100) / IP(src=PEER_V4, dst=ROUTER_V4)
    tagged = tagged / Raw(b"x" * (1500 - 20))
    assert max_frame_size(1500, 0) == len(bytes(full)) == 1514
    assert max_frame_size(1500, 1) == len(bytes(tagged)) == 1518
    assert max_frame_size(9000, 2) == 9000 + 14 + 8


# -- packet-in -> TAP ----------------------------------------------------------------------------------------


def test_frame_for_the_router_goes_to_its_tap_unchanged(tunnel: Tunnel) -> None:
    frame = bytes(Ether(dst=ROUTER_MAC, src=PEER_MAC) / IP(src=PEER_V4, dst=ROUTER_V4) / TCP(dport=179))
    assert tunnel.from_switch(1, frame) == ToTap(0, frame)


def test_tagged_frame_goes_to_the_vlan_interface_untagged(tunnel: Tunnel) -> None:
    inner = IP(src="198.51.100.1", dst=ROUTER_VLAN_V4) / ICMP()
    tagged = bytes(Ether(dst=ROUTER_MAC, src=PEER_MAC) / Dot1Q(vlan=100, prio=5) / inner)
    untagged = bytes(Ether(dst=ROUTER_MAC, src=PEER_MAC) / inner)
    result = tunnel.from_switch(2, tagged)
    assert isinstance(result, ToTap) and result.interface == 1
    assert result.frame == untagged
    assert Ether(result.frame)[IP].dst == ROUTER_VLAN_V4


@pytest.mark.parametrize(
    ("port", "vlan"),
    [(2, None), (2, 200), (1, 100), (3, None)],
    ids=["untagged on a tagged port", "other vlan", "tag on an untagged port", "no interface on the port"],
)
def test_frames_on_no_router_interface_are_refused(tunnel: Tunnel, port: int, vlan: int | None) -> None:
    frame = Ether(dst=ROUTER_MAC, src=PEER_MAC)
    if vlan is not None:
        frame = frame / Dot1Q(vlan=vlan)
    assert tunnel.from_switch(port, bytes(frame / IP(dst=ROUTER_V4) / ICMP())) == Refused(Refusal.NO_INTERFACE)


def test_unicast_to_another_mac_is_refused(tunnel: Tunnel) -> None:
    frame = bytes(Ether(dst=OTHER_MAC, src=PEER_MAC) / IP(src=PEER_V4, dst=OTHER_V4) / ICMP())
    assert tunnel.from_switch(1, frame) == Refused(Refusal.NOT_FOR_ROUTER)


def test_runt_is_refused(tunnel: Tunnel) -> None:
    assert tunnel.from_switch(1, b"\xff" * 13) == Refused(Refusal.RUNT)


@pytest.mark.parametrize(
    "frame",
    [
        Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / ARP(psrc=PEER_V4, pdst=ROUTER_V4),
        Ether(dst="01:00:5e:00:00:05", src=PEER_MAC) / IP(src=PEER_V4, dst="224.0.0.5", proto=89),
        Ether(dst="01:00:5e:00:00:06", src=PEER_MAC) / IP(src=PEER_V4, dst="224.0.0.6", proto=89),
        Ether(dst="33:33:00:00:00:05", src=PEER_MAC) / IPv6(src="fe80::1", dst="ff02::5", nh=89),
        Ether(dst="33:33:00:00:00:01", src=PEER_MAC) / IPv6(src="fe80::1", dst="ff02::1") / ICMPv6EchoRequest(),
        Ether(dst="33:33:ff:00:00:fe", src=PEER_MAC) / IPv6(src=PEER_V6, dst="ff02::1:ff00:fe") / ICMPv6ND_NS(),
    ],
    ids=["broadcast arp", "AllSPFRouters", "AllDRouters", "OSPFv3 AllSPFRouters", "all-nodes", "solicited-node"],
)
def test_broadcast_and_routing_multicast_go_to_the_tap(tunnel: Tunnel, frame: Any) -> None:
    raw = bytes(frame)
    assert tunnel.from_switch(1, raw) == ToTap(0, raw)


def test_ipv6_groups_are_not_accepted_on_an_ipv4_only_interface(tunnel: Tunnel) -> None:
    frame = Ether(dst="33:33:00:00:00:05", src=PEER_MAC) / Dot1Q(vlan=100) / IPv6(dst="ff02::5", nh=89)
    assert tunnel.from_switch(2, bytes(frame)) == Refused(Refusal.NOT_FOR_ROUTER)


def test_solicited_node_of_another_address_is_refused(tunnel: Tunnel) -> None:
    group = solicited_node(ipaddress.IPv6Address(OTHER_V6))
    frame = Ether(dst=multicast_mac(group), src=PEER_MAC) / IPv6(dst=str(group)) / ICMPv6ND_NS(tgt=OTHER_V6)
    assert tunnel.from_switch(1, bytes(frame)) == Refused(Refusal.NOT_FOR_ROUTER)


# -- TAP -> packet-out ---------------------------------------------------------------------------------------


def test_tap_frame_leaves_by_the_interface_port(tunnel: Tunnel) -> None:
    frame = bytes(Ether(src=ROUTER_MAC, dst=PEER_MAC) / IP(src=ROUTER_V4, dst=PEER_V4) / TCP(sport=179))
    assert tunnel.from_tap(0, frame) == PacketOut(1, frame)


def test_tap_frame_is_tagged_for_a_vlan_interface(tunnel: Tunnel) -> None:
    inner = IP(src=ROUTER_VLAN_V4, dst="198.51.100.1") / UDP(dport=9) / Raw(b"payload")
    out = tunnel.from_tap(1, bytes(Ether(src=ROUTER_MAC, dst=PEER_MAC) / inner))
    assert out.port == 2
    parsed = Ether(out.frame)
    assert parsed[Dot1Q].vlan == 100 and parsed[Dot1Q].prio == 0
    assert bytes(parsed[IP]) == bytes(inner)
    # and the switch's packet-in of that frame comes back to the same TAP, untagged, byte for byte
    echoed = bytes(Ether(src=PEER_MAC, dst=ROUTER_MAC) / Dot1Q(vlan=100) / inner)
    assert tunnel.from_switch(2, echoed) == ToTap(1, bytes(Ether(src=PEER_MAC, dst=ROUTER_MAC) / inner))


# -- punt flows on a fake flow table -------------------------------------------------------------------------


def _fields(in_port: int, packet: Any) -> dict[str, Any]:
    """What an OpenFlow switch would match on for this frame (scapy's decode is the oracle)."""
    packet = Ether(bytes(packet))  # built and decoded again: every field as on the wire
    fields: dict[str, Any] = {"in_port": in_port, "eth_dst": bytes.fromhex(packet[Ether].dst.replace(":", ""))}
    fields["vlan"] = packet[Dot1Q].vlan if Dot1Q in packet else None
    fields["eth_type"] = packet[Dot1Q].type if Dot1Q in packet else packet[Ether].type
    if ARP in packet:
        fields["arp_tpa"] = ipaddress.IPv4Address(packet[ARP].pdst)
    if IP in packet:
        fields["ip_proto"] = packet[IP].proto
        fields["ipv4_dst"] = ipaddress.IPv4Address(packet[IP].dst)
    if IPv6 in packet:
        fields["ip_proto"] = packet[IPv6].nh
        fields["ipv6_dst"] = ipaddress.IPv6Address(packet[IPv6].dst)
    if TCP in packet:
        fields["tcp_src"], fields["tcp_dst"] = packet[TCP].sport, packet[TCP].dport
    return fields


def _matches(match: Match, fields: dict[str, Any]) -> bool:
    for name in Match.__slots__:
        wanted = getattr(match, name)
        if name == "vlan":
            if wanted != fields["vlan"]:  # None: only untagged frames
                return False
        elif wanted is not None and fields.get(name) != wanted:
            return False
    return True


def _punted_by(flows: list, in_port: int, packet: Any) -> list[str]:
    fields = _fields(in_port, packet)
    return [f.purpose for f in flows if _matches(f.match, fields)]


def _flows(*, ipv6_fields: bool = True) -> list:
    return punt_flows(ROUTER_MAC, INTERFACES, ipv6_fields=ipv6_fields)


def test_punt_flows_sit_above_every_route_flow() -> None:
    flows = _flows() + _flows(ipv6_fields=False)
    assert {f.priority for f in flows} == {PUNT_PRIORITY}
    longest_route = ROUTE_BASE_PRIORITY + 128
    assert longest_route < PUNT_PRIORITY


def test_every_punt_flow_is_scoped_to_its_port_and_vlan() -> None:
    for flow in _flows() + _flows(ipv6_fields=False):
        interface = PORT1 if flow.purpose.startswith("sr1 ") else PORT2_V100
        assert (flow.match.in_port, flow.match.vlan) == (interface.port, interface.vlan)


def test_ip_matches_carry_their_prerequisites() -> None:
    # OpenFlow: a network-layer field without its eth_type (or a TCP port without ip_proto 6) is invalid in 1.3
    # and silently matches everything in 1.0.
    for flow in _flows() + _flows(ipv6_fields=False):
        m = flow.match
        if m.arp_tpa is not None:
            assert m.eth_type == 0x0806
        if m.ipv4_dst is not None or m.ipv6_dst is not None or m.ip_proto is not None:
            assert m.eth_type in (0x0800, 0x86DD)
        if m.tcp_src is not None or m.tcp_dst is not None:
            assert m.ip_proto == 6
        assert m.eth_type is not None


ROUTER_TRAFFIC = [
    (1, Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / ARP(op=1, psrc=PEER_V4, pdst=ROUTER_V4)),
    (1, Ether(dst=ROUTER_MAC, src=PEER_MAC) / ARP(op=2, psrc=PEER_V4, pdst=ROUTER_V4)),
    (1, Ether(dst=ROUTER_MAC, src=PEER_MAC) / IP(src=PEER_V4, dst=ROUTER_V4) / ICMP()),
    (1, Ether(dst=ROUTER_MAC, src=PEER_MAC) / IP(src=PEER_V4, dst=ROUTER_V4) / TCP(sport=40000, dport=179)),
    (1, Ether(dst=ROUTER_MAC, src=PEER_MAC) / IP(src=PEER_V4, dst=ROUTER_V4) / TCP(sport=179, dport=40000)),
    (1, Ether(dst="01:00:5e:00:00:05", src=PEER_MAC) / IP(src=PEER_V4, dst="224.0.0.5", proto=89)),
    (1, Ether(dst=ROUTER_MAC, src=PEER_MAC) / IPv6(src=PEER_V6, dst=ROUTER_V6) / ICMPv6EchoRequest()),
    (1, Ether(dst=ROUTER_MAC, src=PEER_MAC) / IPv6(src=PEER_V6, dst=ROUTER_V6) / TCP(sport=179, dport=50000)),
    (1, Ether(dst="33:33:ff:00:00:fe", src=PEER_MAC) / IPv6(src=PEER_V6, dst="ff02::1:ff00:fe") / ICMPv6ND_NS()),
    (1, Ether(dst="33:33:00:00:00:06", src=PEER_MAC) / IPv6(src="fe80::1", dst="ff02::6", nh=89)),
    (2, Ether(dst=ROUTER_MAC, src=PEER_MAC) / Dot1Q(vlan=100) / IP(dst=ROUTER_VLAN_V4) / TCP(dport=179)),
    (2, Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / Dot1Q(vlan=100) / ARP(pdst=ROUTER_VLAN_V4)),
]
ROUTER_TRAFFIC_IDS = [
    "arp request",
    "arp reply",
    "icmp",
    "bgp to us",
    "bgp from peer port",
    "ospf hello",
    "icmpv6 echo",
    "bgp over ipv6",
    "neighbour solicitation",
    "ospfv3 AllDRouters",
    "bgp on vlan",
    "arp on vlan",
]


@pytest.mark.parametrize(("port", "packet"), ROUTER_TRAFFIC, ids=ROUTER_TRAFFIC_IDS)
@pytest.mark.parametrize("ipv6_fields", [True, False], ids=["of13", "of10"])
def test_router_traffic_is_punted(port: int, packet: Any, ipv6_fields: bool) -> None:
    assert _punted_by(_flows(ipv6_fields=ipv6_fields), port, packet)


def test_link_local_neighbour_solicitation_is_punted() -> None:
    link_local = eui64_link_local(ROUTER_MAC)
    assert link_local == ipaddress.IPv6Address("fe80::5eff:fe10:1")  # RFC 4291 appendix A, worked by hand
    group = solicited_node(link_local)
    frame = Ether(dst=multicast_mac(group), src=PEER_MAC) / IPv6(src="fe80::1", dst=str(group))
    frame = frame / ICMPv6ND_NS(tgt=str(link_local))
    assert _punted_by(_flows(), 1, frame)


NOT_FOR_THE_ROUTER = [
    (1, Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / ARP(pdst=OTHER_V4)),
    (1, Ether(dst=ROUTER_MAC, src=PEER_MAC) / IP(src=PEER_V4, dst=OTHER_V4) / TCP(dport=179)),
    (1, Ether(dst=ROUTER_MAC, src=PEER_MAC) / IP(src=PEER_V4, dst="0.0.0.0") / ICMP()),
    (1, Ether(dst=ROUTER_MAC, src=PEER_MAC) / IP(src=PEER_V4, dst=ROUTER_V4) / TCP(sport=40000, dport=22)),
    (1, Ether(dst=ROUTER_MAC, src=PEER_MAC) / IP(src=PEER_V4, dst=ROUTER_V4) / UDP(dport=53)),
    (1, Ether(dst=OTHER_MAC, src=PEER_MAC) / IP(src=PEER_V4, dst=ROUTER_V4) / ICMP()),
    (1, Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / IP(src=PEER_V4, dst="255.255.255.255") / UDP(dport=67)),
    (2, Ether(dst=ROUTER_MAC, src=PEER_MAC) / IP(dst=ROUTER_VLAN_V4) / TCP(dport=179)),
    (2, Ether(dst=ROUTER_MAC, src=PEER_MAC) / Dot1Q(vlan=200) / IP(dst=ROUTER_VLAN_V4) / TCP(dport=179)),
    (3, Ether(dst=ROUTER_MAC, src=PEER_MAC) / IP(dst=ROUTER_V4) / TCP(dport=179)),
]
NOT_FOR_THE_ROUTER_IDS = [
    "arp for another host",
    "transit bgp",
    "transit icmp",
    "other tcp port",
    "udp to the router",
    "other destination mac",
    "dhcp broadcast",
    "untagged on the vlan port",
    "wrong vlan",
    "port without an interface",
]


@pytest.mark.parametrize(("port", "packet"), NOT_FOR_THE_ROUTER, ids=NOT_FOR_THE_ROUTER_IDS)
@pytest.mark.parametrize("ipv6_fields", [True, False], ids=["of13", "of10"])
def test_nothing_else_is_punted(port: int, packet: Any, ipv6_fields: bool) -> None:
    assert not _punted_by(_flows(ipv6_fields=ipv6_fields), port, packet)


def test_transit_ipv6_is_not_punted_where_ipv6_addresses_can_be_matched() -> None:
    transit = Ether(dst=ROUTER_MAC, src=PEER_MAC) / IPv6(src=PEER_V6, dst=OTHER_V6) / TCP(dport=179)
    assert not _punted_by(_flows(ipv6_fields=True), 1, transit)
    # OpenFlow 1.0 cannot tell: every IPv6 frame to the router MAC goes up (documented in the POX backend).
    assert _punted_by(_flows(ipv6_fields=False), 1, transit)


def test_no_ipv6_flows_without_ipv6_addresses() -> None:
    flows = punt_flows(ROUTER_MAC, [PORT2_V100], ipv6_fields=True)
    assert all(f.match.eth_type != 0x86DD for f in flows)
    assert not any(f.match.ipv6_dst for f in flows)
