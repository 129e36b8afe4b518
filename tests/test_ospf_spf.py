"""sniffroute.ospf.spf on hand-built LSDBs: each test names the RFC step it exercises.

The real-daemon comparison (BIRD's own tables) lives in tests/lab/test_ospf_lab.py; here the expected values
are worked out by hand from the topology drawn above each test, and a property test checks the costs and
equal-cost next hops against an all-pairs shortest-path computation (Floyd-Warshall) on random graphs.
"""

from __future__ import annotations

import itertools
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_network

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.ospf.lsa import (
    MAX_AGE,
    External3Lsa,
    ExternalLsa,
    InterAreaPrefixLsa,
    IntraAreaPrefixLsa,
    Link3Lsa,
    LinkType,
    Lsa,
    Lsa3Type,
    LsaHeader,
    LsaType,
    Network3Lsa,
    NetworkLsa,
    Prefix3,
    Router3Link,
    Router3Lsa,
    RouterFlag,
    RouterLink,
    RouterLsa,
    SummaryLsa,
)
from sniffroute.ospf.spf import LS_INFINITY, NextHop, RouterRoot, RouteType, SegmentRoot, compute_routes

A = IPv4Address
BACKBONE, AREA1 = A("0.0.0.0"), A("0.0.0.1")
OPT_E, OPT_NP = 0x02, 0x08  # RFC 2328 A.2 E-bit; RFC 3101 N/P-bit


def _lsa(kind: int, ls_id: str, adv: str, body, *, version: int = 2, options: int = OPT_E, age: int = 1, seq=1):
    header = LsaHeader(age, options, kind, A(ls_id), A(adv), seq, 0, 0, version)
    return Lsa(header, body)


def router(rid: str, *links: RouterLink, flags: int = 0, options: int = OPT_E) -> Lsa:
    return _lsa(LsaType.ROUTER, rid, rid, RouterLsa(flags, links), options=options)


def ptp(neighbor: str, own: str, cost: int) -> RouterLink:
    return RouterLink(A(neighbor), A(own), LinkType.POINT_TO_POINT, cost)


def transit(dr: str, own: str, cost: int) -> RouterLink:
    return RouterLink(A(dr), A(own), LinkType.TRANSIT, cost)


def stub(prefix: str, cost: int) -> RouterLink:
    net = ip_network(prefix)
    return RouterLink(net.network_address, net.netmask, LinkType.STUB, cost)


def network(dr: str, adv: str, mask: str, *attached: str) -> Lsa:
    return _lsa(LsaType.NETWORK, dr, adv, NetworkLsa(A(mask), tuple(A(r) for r in attached)))


def summary(prefix: str, adv: str, metric: int) -> Lsa:
    net = ip_network(prefix)
    return _lsa(LsaType.SUMMARY_NETWORK, str(net.network_address), adv, SummaryLsa(net.netmask, metric))


def asbr_summary(asbr: str, adv: str, metric: int) -> Lsa:
    return _lsa(LsaType.SUMMARY_ASBR, asbr, adv, SummaryLsa(A("0.0.0.0"), metric))


def external(prefix: str, adv: str, metric: int, *, type2: bool, fwd: str = "0.0.0.0", nssa: bool = False) -> Lsa:
    net = ip_network(prefix)
    kind = LsaType.NSSA_EXTERNAL if nssa else LsaType.AS_EXTERNAL
    body = ExternalLsa(net.netmask, type2, metric, A(fwd), 0)
    return _lsa(kind, str(net.network_address), adv, body, options=OPT_NP if nssa else OPT_E)


def table(result):
    return {str(r.prefix): r for r in result.routes}


def hops(*pairs: tuple[str | None, str | None]) -> frozenset[NextHop]:
    return frozenset(NextHop(A(a) if a else None, i) for a, i in pairs)


# Area 0:
#
#   R1 (1.1.1.1) --+                     +-- ptp 5 (10.0.24.0/30) -- R4 (4.4.4.4) -- stub 192.0.2.0/24 (1)
#   R2 (2.2.2.2) --+-- LAN 10.0.0.0/24 --+                            |
#   R3 (3.3.3.3) --+   DR R1, cost 10    +-- ptp 5 (10.0.34.0/30) ----+
#
# R5 claims a link to R1 that R1 does not list; the network-LSA lists R6, which has no link to it.
R1, R2, R3, R4, R5, R6 = "1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4", "5.5.5.5", "6.6.6.6"
AREA0 = [
    router(R1, transit("10.0.0.1", "10.0.0.1", 10), stub("10.255.0.1/32", 0)),
    router(R2, transit("10.0.0.1", "10.0.0.2", 10), ptp(R4, "10.0.24.1", 5), stub("10.0.24.0/30", 5)),
    router(R3, transit("10.0.0.1", "10.0.0.3", 10), ptp(R4, "10.0.34.1", 5), stub("10.0.34.0/30", 5)),
    router(
        R4,
        ptp(R2, "10.0.24.2", 5),
        stub("10.0.24.0/30", 5),
        ptp(R3, "10.0.34.2", 5),
        stub("10.0.34.0/30", 5),
        stub("192.0.2.0/24", 1),
        flags=RouterFlag.B,
    ),
    router(R5, ptp(R1, "10.0.15.2", 1), stub("198.18.5.0/24", 1)),
    router(R6, stub("198.18.6.0/24", 1)),
    network("10.0.0.1", R1, "255.255.255.0", R1, R2, R3, R6),
]


def test_equal_cost_next_hops_are_kept_as_a_set():
    """RFC 2328 16.1 (2)(d): R1 reaches R4 through R2 and R3 at 15; the stub behind it inherits both."""
    routes = table(compute_routes({BACKBONE: AREA0}, [], RouterRoot(A(R1))))
    stub_route = routes["192.0.2.0/24"]
    assert stub_route.metric == 16
    assert stub_route.route_type == RouteType.INTRA
    assert stub_route.next_hops == hops(("10.0.0.2", "10.0.0.1"), ("10.0.0.3", "10.0.0.1"))
    assert stub_route.area == BACKBONE
    assert routes["10.0.0.0/24"].next_hops == hops((None, "10.0.0.1")), "the LAN is directly attached"
    assert routes["10.255.0.1/32"].next_hops == hops((None, None)), "own stub, no interface in the LSAs"


def test_point_to_point_next_hop_is_the_neighbours_interface_address():
    """RFC 2328 16.1.1: from R4, R2 is reached at the address in R2's link back to R4, out of 10.0.24.2."""
    routes = table(compute_routes({BACKBONE: AREA0}, [], RouterRoot(A(R4))))
    lan = routes["10.0.0.0/24"]
    assert lan.metric == 15
    assert lan.next_hops == hops(("10.0.24.1", "10.0.24.2"), ("10.0.34.1", "10.0.34.2"))
    assert routes["10.0.24.0/30"].next_hops == hops((None, "10.0.24.2")), "own subnet: directly attached"
    assert routes["10.0.24.0/30"].metric == 5


def test_links_that_fail_the_bidirectional_check_are_not_used():
    """RFC 2328 16.1 (2)(b): R5's one-sided link and R6's missing link back to the network are ignored."""
    routes = table(compute_routes({BACKBONE: AREA0}, [], RouterRoot(A(R1))))
    assert "198.18.5.0/24" not in routes
    assert "198.18.6.0/24" not in routes
    # R5's own view: it has a link to R1, R1 none back, so it reaches nothing but its own stub.
    assert set(table(compute_routes({BACKBONE: AREA0}, [], RouterRoot(A(R5))))) == {"198.18.5.0/24"}


def test_segment_viewpoint_uses_the_routers_on_the_segment():
    """A stub on the LAN: the network vertex is the root; next hops are the routers' LAN addresses."""
    routes = table(compute_routes({BACKBONE: AREA0}, [], SegmentRoot(ip_network("10.0.0.0/24"))))
    assert routes["10.0.0.0/24"].metric == 0
    assert routes["10.0.0.0/24"].next_hops == hops((None, None))
    assert routes["192.0.2.0/24"].metric == 6
    assert routes["192.0.2.0/24"].next_hops == hops(("10.0.0.2", None), ("10.0.0.3", None))
    assert routes["10.255.0.1/32"].next_hops == hops(("10.0.0.1", None))


def test_segment_without_a_network_lsa_is_found_through_stub_links():
    """One router on our segment: no DR, no network-LSA; R2 lists 10.9.0.0/24 as a stub. Its address on the
    segment comes from the caller (Hellos)."""
    lsas = [*AREA0[:1], router(R2, transit("10.0.0.1", "10.0.0.2", 10), stub("10.9.0.0/24", 1)), *AREA0[2:]]
    root = SegmentRoot(ip_network("10.9.0.0/24"), {A(R2): A("10.9.0.2")})
    result = compute_routes({BACKBONE: lsas}, [], root)
    routes = table(result)
    assert routes["10.9.0.0/24"].next_hops == hops((None, None)) and routes["10.9.0.0/24"].metric == 0
    assert routes["10.0.0.0/24"].metric == 10, "routers on the segment are at 0, as from a network vertex"
    assert routes["192.0.2.0/24"].next_hops == hops(("10.9.0.2", None))
    assert "stub links" in result.notes[0]


def test_unknown_roots_give_no_routes_and_say_why():
    result = compute_routes({BACKBONE: AREA0}, [], RouterRoot(A("9.9.9.9")))
    assert result.routes == () and "9.9.9.9" in result.notes[0]
    result = compute_routes({BACKBONE: AREA0}, [], SegmentRoot(ip_network("10.9.0.0/24")))
    assert result.routes == () and "10.9.0.0/24" in result.notes[0]


def test_maxage_and_bad_checksum_lsas_take_no_part():
    """RFC 2328 14 / 13 (1): a flushed R4 router-LSA and a corrupted one both remove R4 from the graph."""
    flushed = [lsa for lsa in AREA0 if str(lsa.header.adv_router) != R4]
    r4 = next(lsa for lsa in AREA0 if str(lsa.header.adv_router) == R4)
    aged = Lsa(LsaHeader(MAX_AGE, OPT_E, LsaType.ROUTER, A(R4), A(R4), 2, 0, 0), r4.body)
    corrupt = Lsa(r4.header, r4.body, checksum_ok=False)
    for replacement in (aged, corrupt):
        routes = table(compute_routes({BACKBONE: [*flushed, replacement]}, [], RouterRoot(A(R1))))
        assert "192.0.2.0/24" not in routes


# Inter-area and external routes on top of area 0:
#   R4 is an ABR: summaries 198.51.100.0/24 (20), 192.0.2.0/24 (1, also intra), 203.0.113.0/24 (LSInfinity),
#   ASBR-summary for 9.9.9.9 (7). R2 is an ASBR (E-bit).
#   Type-5 from 9.9.9.9: 100.64.0.0/24 E2 100, 100.64.1.0/24 E1 3.
#   Type-5 from R2: 100.64.2.0/24 E2 30 with forwarding address 10.0.0.3 (R3's LAN address).
INTER = [
    summary("198.51.100.0/24", R4, 20),
    summary("192.0.2.0/24", R4, 1),
    summary("203.0.113.0/24", R4, LS_INFINITY),
    asbr_summary("9.9.9.9", R4, 7),
]
EXTERNALS = [
    external("100.64.0.0/24", "9.9.9.9", 100, type2=True),
    external("100.64.1.0/24", "9.9.9.9", 3, type2=False),
    external("100.64.2.0/24", R2, 30, type2=True, fwd="10.0.0.3"),
]


def _area0_with_asbr() -> list[Lsa]:
    lsas = [lsa for lsa in AREA0 if str(lsa.header.adv_router) != R2]
    lsas.append(
        router(
            R2,
            transit("10.0.0.1", "10.0.0.2", 10),
            ptp(R4, "10.0.24.1", 5),
            stub("10.0.24.0/30", 5),
            flags=RouterFlag.E,
        )
    )
    return lsas + INTER


def test_inter_area_routes_from_summaries():
    """RFC 2328 16.2: cost to the ABR plus the summary's metric; intra-area beats inter; LSInfinity skipped."""
    routes = table(compute_routes({BACKBONE: _area0_with_asbr()}, EXTERNALS, RouterRoot(A(R1))))
    inter = routes["198.51.100.0/24"]
    assert (inter.route_type, inter.metric, inter.advertiser) == (RouteType.INTER, 35, A(R4))
    assert inter.next_hops == hops(("10.0.0.2", "10.0.0.1"), ("10.0.0.3", "10.0.0.1"))
    assert routes["192.0.2.0/24"].route_type == RouteType.INTRA
    assert "203.0.113.0/24" not in routes


def test_external_routes_e1_e2_through_an_asbr_summary():
    """RFC 2328 16.4: the ASBR 9.9.9.9 is 15 + 7 = 22 away; E2 keeps 22 as its first metric, E1 adds."""
    routes = table(compute_routes({BACKBONE: _area0_with_asbr()}, EXTERNALS, RouterRoot(A(R1))))
    e2, e1 = routes["100.64.0.0/24"], routes["100.64.1.0/24"]
    assert (e2.route_type, e2.metric, e2.type2_metric, e2.area) == (RouteType.E2, 22, 100, None)
    assert (e1.route_type, e1.metric, e1.type2_metric) == (RouteType.E1, 25, None)
    assert e1.next_hops == inter_hops()


def inter_hops():
    return hops(("10.0.0.2", "10.0.0.1"), ("10.0.0.3", "10.0.0.1"))


def test_forwarding_address_on_a_shared_network_is_the_next_hop():
    """RFC 2328 16.4 (3): R2 advertises with forwarding address 10.0.0.3; R1 forwards straight to R3."""
    routes = table(compute_routes({BACKBONE: _area0_with_asbr()}, EXTERNALS, RouterRoot(A(R1))))
    fwd = routes["100.64.2.0/24"]
    assert (fwd.metric, fwd.type2_metric, fwd.advertiser) == (10, 30, A(R2))
    assert fwd.next_hops == hops(("10.0.0.3", "10.0.0.1"))
    # R3 owns the forwarding address: it does not route the prefix back to itself.
    assert "100.64.2.0/24" not in table(compute_routes({BACKBONE: _area0_with_asbr()}, EXTERNALS, RouterRoot(A(R3))))


def test_e1_beats_e2_and_lower_type2_metric_wins():
    """RFC 2328 16.4 (6): type 1 before type 2 whatever the costs; among type 2 the external metric first."""
    extra = [
        external("100.64.0.0/24", R2, 5000, type2=False),  # E1, very expensive, still preferred over the E2
        external("100.64.1.0/24", R2, 1, type2=True),  # E2 loses against 9.9.9.9's E1
    ]
    routes = table(compute_routes({BACKBONE: _area0_with_asbr()}, EXTERNALS + extra, RouterRoot(A(R1))))
    assert (routes["100.64.0.0/24"].route_type, routes["100.64.0.0/24"].advertiser) == (RouteType.E1, A(R2))
    assert routes["100.64.1.0/24"].advertiser == A("9.9.9.9")


# An NSSA behind R4: area 0.0.0.1 holds R4 and R8 on ptp 10.1.48.0/30; R8 exports 172.16.0.0/16 as N2 50 and
# 172.17.0.0/16 as N1 4 (forwarding address R8's 10.1.48.2, as RFC 3101 asks of P-bit LSAs).
R8 = "8.8.8.8"
NSSA = [
    router(R4, ptp(R8, "10.1.48.1", 10), stub("10.1.48.0/30", 10), flags=RouterFlag.B, options=OPT_NP),
    router(R8, ptp(R4, "10.1.48.2", 10), stub("10.1.48.0/30", 10), flags=RouterFlag.E, options=OPT_NP),
    external("172.16.0.0/16", R8, 50, type2=True, fwd="10.1.48.2", nssa=True),
    external("172.17.0.0/16", R8, 4, type2=False, fwd="10.1.48.2", nssa=True),
]


def test_nssa_routes_for_routers_attached_to_the_nssa():
    """RFC 3101 2.5: R4 (in the NSSA) uses R8's type-7 LSAs; the forwarding address is its next hop."""
    routes = table(compute_routes({BACKBONE: _area0_with_asbr(), AREA1: NSSA}, EXTERNALS, RouterRoot(A(R4))))
    n2, n1 = routes["172.16.0.0/16"], routes["172.17.0.0/16"]
    assert (n2.route_type, n2.metric, n2.type2_metric, n2.area) == (RouteType.N2, 10, 50, AREA1)
    assert (n1.route_type, n1.metric) == (RouteType.N1, 14)
    assert n2.next_hops == hops(("10.1.48.2", "10.1.48.1"))


def test_nssa_internal_routers_ignore_type5_and_backbone_routers_ignore_type7():
    """Type-5 LSAs are not flooded into an NSSA (its router-LSAs have no E-bit); type-7 stay inside it."""
    areas = {BACKBONE: _area0_with_asbr(), AREA1: NSSA}
    inside = table(compute_routes(areas, EXTERNALS, RouterRoot(A(R8))))
    assert not any(str(p).startswith("100.64.") for p in inside)
    assert "172.16.0.0/16" not in inside, "its own type-7"
    outside = table(compute_routes(areas, EXTERNALS, RouterRoot(A(R1))))
    assert "172.16.0.0/16" not in outside


def test_area_border_router_reads_only_backbone_summaries():
    """RFC 2328 16.2: an ABR ignores summaries in non-backbone areas."""
    nssa = [*NSSA, summary("198.18.99.0/24", R8, 1)]
    routes = table(compute_routes({BACKBONE: _area0_with_asbr(), AREA1: nssa}, [], RouterRoot(A(R4))))
    assert "198.18.99.0/24" not in routes


# -- OSPFv3 --------------------------------------------------------------------------------------------------
#
#   R1 (ifid 5) --+-- LAN 2001:db8:1::/64, DR R1 (interface 5), cost 10
#   R2 (ifid 7) --+
#   R2 (ifid 8) == ptp cost 3 == R3 (ifid 9);  R3 advertises 2001:db8:3::/64 (metric 2) and an E2 with a
#   forwarding address on the LAN (R1's 2001:db8:1::1).


def _v3(kind: int, ls_id: int, adv: str, body) -> Lsa:
    return Lsa(LsaHeader(1, 0, kind, A(ls_id), A(adv), 1, 0, 0, 3), body)


def _link(rid: str, ifid: int, link_local: str, *prefixes: str) -> Lsa:
    body = Link3Lsa(1, 0x13, IPv6Address(link_local), tuple(Prefix3(IPv6Network(p), 0) for p in prefixes))
    return _v3(Lsa3Type.LINK, ifid, rid, body)


def _prefixes(adv: str, ref_type: int, ref_id: int, ref_adv: str, *prefixes: tuple[str, int]) -> Lsa:
    body = IntraAreaPrefixLsa(
        ref_type, A(ref_id), A(ref_adv), tuple(Prefix3(IPv6Network(p), 0, m) for p, m in prefixes)
    )
    return _v3(Lsa3Type.INTRA_AREA_PREFIX, ref_id, adv, body)


V3_AREA0 = [
    _v3(Lsa3Type.ROUTER, 0, R1, Router3Lsa(0, 0x13, (Router3Link(LinkType.TRANSIT, 10, 5, 5, A(R1)),))),
    _v3(
        Lsa3Type.ROUTER,
        0,
        R2,
        Router3Lsa(
            0,
            0x13,
            (Router3Link(LinkType.TRANSIT, 10, 7, 5, A(R1)), Router3Link(LinkType.POINT_TO_POINT, 3, 8, 9, A(R3))),
        ),
    ),
    _v3(
        Lsa3Type.ROUTER,
        0,
        R3,
        Router3Lsa(RouterFlag.E, 0x13, (Router3Link(LinkType.POINT_TO_POINT, 3, 9, 8, A(R2)),)),
    ),
    _v3(Lsa3Type.NETWORK, 5, R1, Network3Lsa(0x13, (A(R1), A(R2)))),
    _link(R1, 5, "fe80::1", "2001:db8:1::/64"),
    _link(R2, 7, "fe80::2", "2001:db8:1::/64"),
    _link(R2, 8, "fe80::2:8", "2001:db8:23::/64"),
    _link(R3, 9, "fe80::3:9", "2001:db8:23::/64"),
    _prefixes(R1, Lsa3Type.NETWORK, 5, R1, ("2001:db8:1::/64", 0)),
    _prefixes(R2, Lsa3Type.ROUTER, 0, R2, ("2001:db8:23::/64", 3)),
    _prefixes(R3, Lsa3Type.ROUTER, 0, R3, ("2001:db8:23::/64", 3), ("2001:db8:3::/64", 2)),
    _v3(Lsa3Type.INTER_AREA_PREFIX, 1, R2, InterAreaPrefixLsa(7, Prefix3(IPv6Network("2001:db8:99::/48"), 0))),
]
V3_EXTERNALS = [
    _v3(
        Lsa3Type.AS_EXTERNAL,
        1,
        R3,
        External3Lsa(True, 40, Prefix3(IPv6Network("2001:db8:e::/48"), 0), IPv6Address("2001:db8:1::1"), None, 0, None),
    ),
    _v3(
        Lsa3Type.AS_EXTERNAL,
        2,
        R3,
        External3Lsa(False, 4, Prefix3(IPv6Network("2001:db8:f::/48"), 0), None, None, 0, None),
    ),
]


def test_v3_next_hops_are_link_local_addresses_from_link_lsas():
    """RFC 5340 4.8.1: R1 reaches R3 via R2's link-local address on the LAN (its Link-LSA for interface 7)."""
    routes = table(compute_routes({BACKBONE: V3_AREA0}, V3_EXTERNALS, RouterRoot(A(R1))))
    far = routes["2001:db8:3::/64"]
    assert (far.metric, far.route_type) == (15, RouteType.INTRA)
    assert far.next_hops == frozenset({NextHop(IPv6Address("fe80::2"), "5")})
    assert routes["2001:db8:1::/64"].next_hops == frozenset({NextHop(None, "5")})


def test_v3_point_to_point_and_own_prefixes():
    routes = table(compute_routes({BACKBONE: V3_AREA0}, V3_EXTERNALS, RouterRoot(A(R3))))
    assert routes["2001:db8:1::/64"].next_hops == frozenset({NextHop(IPv6Address("fe80::2:8"), "9")})
    assert routes["2001:db8:1::/64"].metric == 13
    assert routes["2001:db8:23::/64"].next_hops == frozenset({NextHop(None, "9")}), "named by its Link-LSA"
    assert routes["2001:db8:3::/64"].next_hops == frozenset({NextHop(None, None)})


def test_v3_inter_area_and_externals_with_forwarding_address():
    from_r1 = table(compute_routes({BACKBONE: V3_AREA0}, V3_EXTERNALS, RouterRoot(A(R1))))
    inter = from_r1["2001:db8:99::/48"]
    assert (inter.metric, inter.route_type, inter.advertiser) == (17, RouteType.INTER, A(R2))
    assert inter.next_hops == frozenset({NextHop(IPv6Address("fe80::2"), "5")})
    routes = table(compute_routes({BACKBONE: V3_AREA0}, V3_EXTERNALS, RouterRoot(A(R2))))
    assert "2001:db8:99::/48" not in routes, "its own summary"
    e2 = routes["2001:db8:e::/48"]
    assert (e2.route_type, e2.metric, e2.type2_metric) == (RouteType.E2, 10, 40)
    assert e2.next_hops == frozenset({NextHop(IPv6Address("2001:db8:1::1"), "7")}), "the forwarding address"
    e1 = routes["2001:db8:f::/48"]
    assert (e1.route_type, e1.metric) == (RouteType.E1, 7)
    assert e1.next_hops == frozenset({NextHop(IPv6Address("fe80::3:9"), "8")})


def test_v3_segment_viewpoint():
    routes = table(compute_routes({BACKBONE: V3_AREA0}, V3_EXTERNALS, SegmentRoot(ip_network("2001:db8:1::/64"))))
    assert routes["2001:db8:3::/64"].metric == 5
    assert routes["2001:db8:3::/64"].next_hops == frozenset({NextHop(IPv6Address("fe80::2"), None)})


# -- property: costs and equal-cost next hops against Floyd-Warshall -----------------------------------------


@st.composite
def ptp_graphs(draw):
    size = draw(st.integers(2, 9))
    pairs = list(itertools.combinations(range(size), 2))
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs)))
    costs = {pair: draw(st.integers(1, 4)) for pair in chosen}  # small costs: plenty of equal-cost paths
    return size, costs


def _rid(i: int) -> str:
    return f"10.0.0.{i + 1}"


def _address(a: int, b: int) -> str:
    """Router a's address on its link to router b."""
    return f"172.{16 + a}.{b}.1"


@settings(max_examples=150, deadline=None)
@given(ptp_graphs())
def test_costs_and_next_hops_match_all_pairs_shortest_paths(graph):
    size, costs = graph
    links: dict[int, list[RouterLink]] = {i: [stub(f"192.0.2.{i}/32", 0)] for i in range(size)}
    for (a, b), cost in costs.items():
        links[a].append(ptp(_rid(b), _address(a, b), cost))
        links[b].append(ptp(_rid(a), _address(b, a), cost))
    lsas = [router(_rid(i), *links[i]) for i in range(size)]
    inf = float("inf")
    dist = [[0 if i == j else inf for j in range(size)] for i in range(size)]
    for (a, b), cost in costs.items():
        dist[a][b] = dist[b][a] = cost
    for k, i, j in itertools.product(range(size), repeat=3):
        dist[i][j] = min(dist[i][j], dist[i][k] + dist[k][j])
    routes = table(compute_routes({BACKBONE: lsas}, [], RouterRoot(A(_rid(0)))))
    for target in range(size):
        prefix = f"192.0.2.{target}/32"
        if dist[0][target] == inf:
            assert prefix not in routes
            continue
        assert routes[prefix].metric == dist[0][target]
        if target == 0:
            continue
        expected = {
            NextHop(A(_address(n, 0)), _address(0, n))
            for (a, b), cost in costs.items()
            for n in ((b,) if a == 0 else (a,) if b == 0 else ())
            if cost + dist[n][target] == dist[0][target]
        }
        assert routes[prefix].next_hops == expected
