"""sniffroute.fib planning, judged by where a fake OpenFlow table sends packets (tests/fib_fakeswitch.py).

Expected forwarding comes from a brute-force longest-prefix match over the route table written in the test,
and from the tunnel's punt flows, never from the flows the FIB produced."""

from __future__ import annotations

import ipaddress
import random

import pytest

from sniffroute.fib import (
    OPENFLOW_10,
    OPENFLOW_13,
    Barrier,
    DecTtl,
    Fib,
    FlowOp,
    GroupCommand,
    GroupOp,
    NeighbourObservation,
    RouteEntry,
    RouteState,
    ToGroup,
)
from sniffroute.tunnel import PUNT_PRIORITY, punt_flows
from tests.fib_fakeswitch import ROUTER_MAC, UNTAGGED, WITH_VLAN, FakeSwitch, neighbour_mac, packet

NOW = 100.0


def _seen(fib: Fib, address: str, port: int, vlan: int | None = None) -> None:
    ip = ipaddress.ip_address(address)
    fib.observe(NeighbourObservation(address=ip, mac=neighbour_mac(address), port=port, vlan=vlan), NOW)


def _route(prefix: str, *hops: str, protocol: str = "bgp") -> RouteEntry:
    return RouteEntry(ipaddress.ip_network(prefix), tuple(hops), protocol, 20)


def _switch(fib: Fib, interfaces=UNTAGGED, *, ipv6_fields: bool = True) -> FakeSwitch:
    switch = FakeSwitch(punts=punt_flows(ROUTER_MAC, interfaces, ipv6_fields=ipv6_fields))
    ops = fib.sync(NOW)
    switch.apply_all(ops)
    barriers = [op.seq for op in ops if isinstance(op, Barrier)]
    if barriers:
        fib.confirm(barriers[-1])
    return switch


def test_default_routes_never_swallow_the_routers_own_traffic() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    _seen(fib, "10.0.2.1", 2)
    _seen(fib, "2001:db8:1::1", 1)
    fib.update({r.prefix: r for r in (_route("0.0.0.0/0", "10.0.2.1"), _route("::/0", "2001:db8:1::1"))}, NOW)
    switch = _switch(fib)
    assert max(f.priority for f in fib.desired_flows().values()) < PUNT_PRIORITY
    to_router = {
        "arp": packet("10.0.1.254", eth_dst="ff:ff:ff:ff:ff:ff", arp=True),
        "bgp": packet("10.0.1.254", eth_dst=ROUTER_MAC, ip_proto=6, tcp_dst=179, tcp_src=40000),
        "bgp reply": packet("10.0.1.254", eth_dst=ROUTER_MAC, ip_proto=6, tcp_src=179, tcp_dst=40000),
        "ospf": packet("224.0.0.5", eth_dst="01:00:5e:00:00:05", ip_proto=89),
        "icmp": packet("10.0.1.254", eth_dst=ROUTER_MAC, ip_proto=1),
        "bgp v6": packet("2001:db8:1::fe", eth_dst=ROUTER_MAC, ip_proto=6, tcp_dst=179),
        "nd": packet("ff02::1:ff00:fe", eth_dst="33:33:ff:00:00:fe", ip_proto=58),
    }
    for name, frame in to_router.items():
        assert switch.forward(frame)[0] == "punt", name
    # ... while everything else does follow the default routes
    assert switch.forward(packet("198.51.100.7", eth_dst=ROUTER_MAC)) == (
        "out", 2, ROUTER_MAC, neighbour_mac("10.0.2.1"), None, 63,
    )  # fmt: skip
    assert switch.forward(packet("2001:db8:99::1", eth_dst=ROUTER_MAC))[:2] == ("out", 1)


def test_host_routes_of_the_longest_prefixes_stay_below_the_punt_band() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    _seen(fib, "10.0.2.1", 2)
    _seen(fib, "2001:db8:1::1", 1)
    fib.update({r.prefix: r for r in (_route("10.0.1.254/32", "10.0.2.1"), _route("::1/128", "2001:db8:1::1"))}, NOW)
    switch = _switch(fib)
    assert switch.forward(packet("10.0.1.254", eth_dst=ROUTER_MAC, ip_proto=6, tcp_dst=179))[0] == "punt"
    assert all(f.priority < PUNT_PRIORITY for f in fib.desired_flows().values())


def _lpm_oracle(table: dict[str, str], destination: str) -> str | None:
    address = ipaddress.ip_address(destination)
    best: tuple[int, str] | None = None
    for prefix, hop in table.items():
        network = ipaddress.ip_network(prefix)
        if address in network and (best is None or network.prefixlen > best[0]):
            best = (network.prefixlen, hop)
    return None if best is None else best[1]


def test_the_switch_does_longest_prefix_match() -> None:
    rng = random.Random(7)
    hops = ["10.0.2.1", "10.0.2.2", "10.0.2.3", "10.0.1.9"]
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    for hop in hops:
        _seen(fib, hop, 2 if hop.startswith("10.0.2.") else 1)
    table: dict[str, str] = {"0.0.0.0/0": hops[0]}
    base = int(ipaddress.ip_address("172.16.0.0"))
    for _ in range(300):
        length = rng.choice([8, 12, 16, 20, 24, 28, 32])
        network = ipaddress.ip_network((base + rng.randrange(1 << 16) * 256 + rng.randrange(256), length), strict=False)
        table[str(network)] = rng.choice(hops)
    fib.update({ipaddress.ip_network(p): _route(p, h) for p, h in table.items()}, NOW)
    switch = _switch(fib)
    for _ in range(500):
        destination = str(ipaddress.ip_address(base + rng.randrange(1 << 24)))
        expected = _lpm_oracle(table, destination)
        result = switch.forward(packet(destination, eth_dst=ROUTER_MAC))
        assert result[0] == "out" and result[3] == neighbour_mac(expected), destination


def test_only_frames_for_the_router_mac_are_routed() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    _seen(fib, "10.0.2.1", 2)
    fib.update({ipaddress.ip_network("0.0.0.0/0"): _route("0.0.0.0/0", "10.0.2.1")}, NOW)
    switch = _switch(fib)
    assert switch.forward(packet("198.51.100.7", eth_dst="02:00:00:00:00:42")) == ("drop",)


def test_openflow_10_cannot_decrement_ttl_nor_route_ipv6() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_10)
    _seen(fib, "10.0.2.1", 2)
    _seen(fib, "2001:db8:1::1", 1)
    fib.update(
        {r.prefix: r for r in (_route("198.51.100.0/24", "10.0.2.1"), _route("2001:db8:9::/48", "2001:db8:1::1"))}, NOW
    )
    switch = _switch(fib, ipv6_fields=False)
    assert switch.forward(packet("198.51.100.7", eth_dst=ROUTER_MAC))[-1] == 64  # TTL untouched
    assert not any(DecTtl() in f.actions for f in fib.desired_flows().values())
    assert not any(f.match.dst.version == 6 for f in fib.desired_flows().values())  # not even connected ones
    status = fib.status(ipaddress.ip_network("2001:db8:9::/48"))
    assert status is not None and status.state is RouteState.UNSUPPORTED and "OpenFlow 1.0" in status.detail
    assert switch.forward(packet("2001:db8:9::1", eth_dst=ROUTER_MAC)) != ("out",)
    assert switch.forward(packet("2001:db8:9::1", eth_dst=ROUTER_MAC))[0] in ("drop", "punt")


def test_ecmp_is_a_select_group_on_openflow_13() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    _seen(fib, "10.0.2.1", 2)
    _seen(fib, "10.0.1.1", 1)
    fib.update({ipaddress.ip_network("198.51.100.0/24"): _route("198.51.100.0/24", "10.0.2.1", "10.0.1.1")}, NOW)
    ops = fib.sync(NOW)
    group_ops = [op for op in ops if isinstance(op, GroupOp)]
    assert [op.command for op in group_ops] == [GroupCommand.ADD]
    assert len(group_ops[0].group.buckets) == 2
    first_flow = next(i for i, op in enumerate(ops) if isinstance(op, FlowOp))
    assert ops.index(group_ops[0]) < first_flow  # the group exists before a flow points at it
    switch = FakeSwitch()
    switch.apply_all(ops)
    result = switch.forward(packet("198.51.100.7", eth_dst=ROUTER_MAC))
    assert {r[1] for r in result} == {1, 2}
    assert {r[3] for r in result} == {neighbour_mac("10.0.2.1"), neighbour_mac("10.0.1.1")}


def test_ecmp_without_groups_uses_one_deterministic_path_and_says_so() -> None:
    outcomes = set()
    for order in (("10.0.2.1", "10.0.1.1"), ("10.0.1.1", "10.0.2.1")):
        fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_10)
        _seen(fib, "10.0.2.1", 2)
        _seen(fib, "10.0.1.1", 1)
        fib.update({ipaddress.ip_network("198.51.100.0/24"): _route("198.51.100.0/24", *order)}, NOW)
        switch = _switch(fib, ipv6_fields=False)
        assert not any(isinstance(a, ToGroup) for f in fib.desired_flows().values() for a in f.actions)
        outcomes.add(switch.forward(packet("198.51.100.7", eth_dst=ROUTER_MAC)))
        status = fib.status(ipaddress.ip_network("198.51.100.0/24"))
        assert status is not None and "reduced to 10.0.1.1" in status.detail and status.next_hops == ("10.0.1.1",)
    assert len(outcomes) == 1  # the same path whatever the order the RIB gave


@pytest.mark.parametrize(
    ("in_port", "in_vlan", "hop", "out_port", "out_vlan"),
    [
        (1, None, "10.0.3.1", 3, 100),  # untagged in, VLAN interface out: push
        (3, 100, "10.0.2.1", 2, None),  # tagged in, untagged out: pop
        (3, 100, "10.0.3.1", 3, 100),  # tagged in, same VLAN out
    ],
)
def test_vlan_interfaces_get_the_right_tag(
    in_port: int, in_vlan: int | None, hop: str, out_port: int, out_vlan
) -> None:
    fib = Fib(ROUTER_MAC, WITH_VLAN, OPENFLOW_13)
    _seen(fib, hop, out_port, out_vlan)
    fib.update({ipaddress.ip_network("198.51.100.0/24"): _route("198.51.100.0/24", hop)}, NOW)
    switch = _switch(fib, WITH_VLAN)
    result = switch.forward(packet("198.51.100.7", in_port=in_port, vlan=in_vlan, eth_dst=ROUTER_MAC))
    assert result == ("out", out_port, ROUTER_MAC, neighbour_mac(hop), out_vlan, 63)


def test_connected_subnet_gleans_then_forwards_to_a_resolved_host() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    switch = _switch(fib)
    assert switch.forward(packet("10.0.2.7", in_port=1, eth_dst=ROUTER_MAC)) == ("controller",)
    fib.glean(ipaddress.ip_address("10.0.2.7"), NOW)
    requests = fib.resolve_requests(NOW)
    assert [(str(r.address), r.interface) for r in requests] == [("10.0.2.7", "sr2")]
    _seen(fib, "10.0.2.7", 2)
    switch.apply_all(fib.sync(NOW))
    assert switch.forward(packet("10.0.2.7", in_port=1, eth_dst=ROUTER_MAC)) == (
        "out", 2, ROUTER_MAC, neighbour_mac("10.0.2.7"), None, 63,
    )  # fmt: skip
    status = fib.status(ipaddress.ip_network("10.0.2.0/24"))
    assert status is not None and status.protocol == "connected"


def test_observations_off_the_interface_subnet_or_port_are_ignored() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    bad = [
        ("10.0.2.1", 1, None),  # right address, wrong port
        ("10.0.9.1", 2, None),  # on no subnet of port 2
        ("10.0.2.1", 7, None),  # no router interface on port 7
        ("10.0.2.254", 2, None),  # our own address
    ]
    for address, port, vlan in bad:
        seen = NeighbourObservation(
            address=ipaddress.ip_address(address), mac="02:aa:00:00:00:01", port=port, vlan=vlan
        )
        assert not fib.observe(seen, NOW)
    seen = NeighbourObservation(address=ipaddress.ip_address("10.0.2.1"), mac="ff:ff:ff:ff:ff:ff", port=2, vlan=None)
    assert not fib.observe(seen, NOW)
    assert len(fib.neighbours) == 0


def test_glean_flows_come_and_go_with_set_glean() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13, glean_connected=False)
    switch = _switch(fib)
    to_unknown_host = packet("10.0.2.7", in_port=1, eth_dst=ROUTER_MAC)
    assert switch.forward(to_unknown_host) == ("drop",)
    fib.set_glean(True, NOW)
    switch.apply_all(fib.sync(NOW))
    assert switch.forward(to_unknown_host) == ("controller",)
    fib.set_glean(False, NOW)
    switch.apply_all(fib.sync(NOW))
    assert switch.forward(to_unknown_host) == ("drop",)
