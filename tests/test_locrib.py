"""sniffroute.locrib: selected routes across protocols, next hops resolved recursively, changes only."""

from __future__ import annotations

import ipaddress

from parsers.bgp.attributes import AsSegment, PathAttributes
from parsers.bgp.constants import IPV4_UNICAST, SegmentType
from parsers.bgp.nlri import prefix_from_text
from sniffroute.config import RouterInterface
from sniffroute.fib import Fib, NeighbourObservation, RouteEntry
from sniffroute.fib.model import OPENFLOW_13, FlowOp, Output, ToGroup
from sniffroute.locrib import LocRib, entries_from_json, entries_json
from sniffroute.ospf.spf import NextHop, OspfRoute, RouteType
from sniffroute.rib import Path, Rib

NET = ipaddress.ip_network
P = prefix_from_text("198.51.100.0/24")[1]
INTERFACES = (
    RouterInterface(name="tap1", port=1, vlan=None, addresses=(ipaddress.ip_interface("10.1.0.254/24"),), mtu=1500),
    RouterInterface(name="tap2", port=2, vlan=None, addresses=(ipaddress.ip_interface("10.2.0.254/24"),), mtu=1500),
)


def ospf(prefix: str, metric: int, *hops: str) -> OspfRoute:
    next_hops = frozenset(NextHop(ipaddress.ip_address(h), None) for h in hops) or frozenset({NextHop(None, None)})
    return OspfRoute(NET(prefix), metric, RouteType.INTRA, next_hops, None, ipaddress.IPv4Address("10.0.0.1"))


def attrs(length: int) -> PathAttributes:
    return PathAttributes(as_path=(AsSegment(SegmentType.AS_SEQUENCE, tuple(range(64500, 64500 + length))),))


def make_rib(*peers: tuple[str, int]) -> Rib:
    rib = Rib()
    for address, asn in peers:
        peer = rib.add_peer(address, "10.1.0.254")
        peer.asn, peer.local_asn = asn, 65000
    return rib


def test_ebgp_next_hop_on_a_router_subnet_is_used_as_is() -> None:
    rib = make_rib(("10.1.0.1", 64501))
    loc = LocRib(rib, INTERFACES)
    rib.announce(IPV4_UNICAST, [P], None, Path(1, attrs(1), "10.1.0.1", None, 0.0, 0))
    assert loc.apply(rib.commit()) == {
        NET("198.51.100.0/24"): RouteEntry(NET("198.51.100.0/24"), ("10.1.0.1",), "bgp", 20)
    }
    assert loc.apply(rib.commit()) == {}  # nothing changed: nothing to say
    rib.withdraw(IPV4_UNICAST, [P], None, 1)
    assert loc.apply(rib.commit()) == {NET("198.51.100.0/24"): None}


def test_best_path_moves_when_the_better_one_is_withdrawn() -> None:
    rib = make_rib(("10.1.0.1", 64501), ("10.2.0.1", 64502))
    loc = LocRib(rib, INTERFACES)
    rib.announce(IPV4_UNICAST, [P], None, Path(1, attrs(3), "10.1.0.1", None, 0.0, 0))
    rib.announce(IPV4_UNICAST, [P], None, Path(2, attrs(1), "10.2.0.1", None, 0.0, 0))
    assert loc.apply(rib.commit())[NET("198.51.100.0/24")].next_hops == ("10.2.0.1",)
    rib.withdraw(IPV4_UNICAST, [P], None, 2)
    assert loc.apply(rib.commit())[NET("198.51.100.0/24")].next_hops == ("10.1.0.1",)


def test_ibgp_next_hop_resolves_through_ospf_with_ecmp_and_follows_ospf_changes() -> None:
    rib = make_rib(("10.1.0.1", 65000))
    loc = LocRib(rib, INTERFACES)
    rib.announce(IPV4_UNICAST, [P], None, Path(1, attrs(1), "192.0.2.7", None, 0.0, 0))
    assert loc.apply(rib.commit()) == {}  # next hop behind nothing we know: no forwarding entry
    rib.set_ospf_routes([ospf("192.0.2.0/24", 10, "10.1.0.1", "10.2.0.1"), ospf("10.1.0.0/24", 1)])
    changes = loc.apply(rib.commit(), ospf_changed=True)
    # The /24 reaches 192.0.2.7 over two equal paths: both connected next hops; the OSPF route is there too.
    assert changes[NET("198.51.100.0/24")] == RouteEntry(NET("198.51.100.0/24"), ("10.1.0.1", "10.2.0.1"), "bgp", 200)
    assert changes[NET("192.0.2.0/24")].protocol == "ospf"
    assert NET("10.1.0.0/24") not in changes  # directly attached: the FIB's connected route
    rib.set_ospf_routes([ospf("192.0.2.0/24", 10, "10.2.0.1"), ospf("10.1.0.0/24", 1)])
    changes = loc.apply(rib.commit(), ospf_changed=True)
    assert changes[NET("198.51.100.0/24")].next_hops == ("10.2.0.1",)


def test_ospf_wins_over_ibgp_by_distance() -> None:
    rib = make_rib(("10.1.0.1", 65000))
    loc = LocRib(rib, INTERFACES)
    rib.announce(IPV4_UNICAST, [P], None, Path(1, attrs(1), "10.1.0.1", None, 0.0, 0))
    loc.apply(rib.commit())
    rib.set_ospf_routes([ospf("198.51.100.0/24", 5, "10.2.0.1")])
    changes = loc.apply(rib.commit(), ospf_changed=True)
    assert changes == {NET("198.51.100.0/24"): RouteEntry(NET("198.51.100.0/24"), ("10.2.0.1",), "ospf", 110)}


def test_stored_entries_round_trip_and_damage_is_skipped() -> None:
    table = {NET("198.51.100.0/24"): RouteEntry(NET("198.51.100.0/24"), ("10.1.0.1",), "bgp", 20)}
    rows = entries_json(table)
    assert entries_from_json(rows) == table
    assert entries_from_json([*rows, {"prefix": "bogus"}, 7]) == table
    assert entries_from_json("nope") == {}


def test_ecmp_entry_becomes_a_select_group_in_the_fib() -> None:
    rib = make_rib(("10.1.0.1", 65000))
    loc = LocRib(rib, INTERFACES)
    rib.announce(IPV4_UNICAST, [P], None, Path(1, attrs(1), "192.0.2.7", None, 0.0, 0))
    rib.set_ospf_routes([ospf("192.0.2.0/24", 10, "10.1.0.1", "10.2.0.1")])
    fib = Fib("02:00:00:00:00:fe", INTERFACES, OPENFLOW_13)
    fib.update(loc.apply(rib.commit(), ospf_changed=True), 0.0)
    for port, hop in ((1, "10.1.0.1"), (2, "10.2.0.1")):
        fib.observe(
            NeighbourObservation(
                address=ipaddress.ip_address(hop), mac=f"02:00:00:00:00:0{port}", port=port, vlan=None
            ),
            0.0,
        )
    flows = {op.flow.match.dst: op.flow for op in fib.sync(0.0) if isinstance(op, FlowOp)}
    assert isinstance(flows[NET("198.51.100.0/24")].actions[0], ToGroup)
    assert isinstance(flows[NET("192.0.2.0/24")].actions[0], ToGroup)
    assert not any(isinstance(a, Output) for a in flows[NET("198.51.100.0/24")].actions)
