"""sniffroute.rib: Adj-RIB-In per peer, best path per RFC 4271 9.1.2.2, change records."""

from __future__ import annotations

import pytest

from parsers.bgp.attributes import AsSegment, PathAttributes
from parsers.bgp.constants import IPV4_UNICAST, IPV6_UNICAST, SegmentType
from parsers.bgp.nlri import prefix_from_text
from parsers.errors import Action
from sniffroute.rib import Path, Reason, Rib

P = prefix_from_text("198.51.100.0/24")[1]
Q = prefix_from_text("203.0.113.0/24")[1]


def attrs(
    as_path=(64500,),
    *,
    as_set=(),
    confed=(),
    origin=0,
    med=None,
    local_pref=None,
    originator_id=None,
    cluster_list=(),
) -> PathAttributes:
    segments = []
    if confed:
        segments.append(AsSegment(SegmentType.AS_CONFED_SEQUENCE, tuple(confed)))
    if as_path:
        segments.append(AsSegment(SegmentType.AS_SEQUENCE, tuple(as_path)))
    if as_set:
        segments.append(AsSegment(SegmentType.AS_SET, tuple(as_set)))
    return PathAttributes(
        origin=origin,
        as_path=tuple(segments),
        next_hop="192.0.2.1",
        med=med,
        local_pref=local_pref,
        atomic_aggregate=False,
        aggregator=None,
        communities=(),
        ext_communities=(),
        large_communities=(),
        originator_id=originator_id,
        cluster_list=tuple(cluster_list),
        attributes=(),
        errors=(),
        action=Action.NONE,
    )


@pytest.fixture
def rib() -> Rib:
    rib = Rib()
    for n, asn in ((1, 64500), (2, 64501), (3, 65000)):
        peer = rib.add_peer(f"192.0.2.{n}", "192.0.2.254")
        peer.asn = asn
        peer.local_asn = 65000
        peer.router_id = f"10.0.0.{10 - n}"
    return rib


def announce(rib: Rib, peer: int, a: PathAttributes, prefix: bytes = P, path_id=None, now=0.0) -> Path:
    path = Path(peer, a, f"192.0.2.{peer}", None, now, rib.peers[peer].generation)
    rib.announce(IPV4_UNICAST, [prefix], None if path_id is None else [path_id], path)
    return path


def best_peer(rib: Rib, prefix: bytes = P) -> tuple[int, Reason]:
    (peer, _), _, reason = rib.best(IPV4_UNICAST, prefix)
    return peer, reason


def test_single_path_is_best_and_reported(rib):
    path = announce(rib, 1, attrs())
    changes = rib.commit()
    assert len(changes) == 1
    assert changes[0].new is path and changes[0].old is None
    assert best_peer(rib) == (1, Reason.ONLY_PATH)
    assert rib.commit() == []  # nothing changed since


@pytest.mark.parametrize(
    "one, two, winner, reason",
    [
        (attrs(local_pref=200), attrs((64501,), local_pref=100), 1, Reason.LOCAL_PREF),
        (attrs((64500, 64510, 64520)), attrs((64501, 64510)), 2, Reason.AS_PATH),
        # an AS_SET counts as one, whatever its size (RFC 4271 9.1.2.2 a)
        (attrs((64500,), as_set=(1, 2, 3, 4)), attrs((64501, 64510, 64520)), 1, Reason.AS_PATH),
        (attrs(origin=2), attrs((64501,), origin=0), 2, Reason.ORIGIN),
    ],
)
def test_decision_steps(rib, one, two, winner, reason):
    announce(rib, 1, one)
    announce(rib, 2, two)
    rib.commit()
    assert best_peer(rib) == (winner, reason)


def test_med_compared_only_within_the_same_neighbour_as(rib):
    # Same neighbour AS 64500 from peers 1 and 2: lower MED wins.
    announce(rib, 1, attrs((64500, 64999), med=50))
    announce(rib, 2, attrs((64500, 64999), med=10))
    rib.commit()
    assert best_peer(rib) == (2, Reason.MED)
    # Different neighbour ASes: MED is not compared; the decision falls to eBGP/router ID.
    announce(rib, 1, attrs((64500, 64999), med=50), prefix=Q)
    announce(rib, 2, attrs((64501, 64999), med=10), prefix=Q)
    rib.commit()
    assert best_peer(rib, Q)[1] is not Reason.MED


def test_ebgp_preferred_over_ibgp(rib):
    announce(rib, 3, attrs((64999,)))  # peer 3 is in our AS 65000: iBGP
    announce(rib, 1, attrs((64999,)))
    rib.commit()
    assert best_peer(rib) == (1, Reason.EBGP)


def test_confederation_segments_do_not_count(rib):
    announce(rib, 1, attrs((64999,), confed=(65001, 65002, 65003)))
    announce(rib, 2, attrs((64998, 64999)))
    rib.commit()
    assert best_peer(rib) == (1, Reason.AS_PATH)


def test_router_id_then_originator_id(rib):
    # peer 1 router id 10.0.0.9, peer 2 10.0.0.8: lower wins
    announce(rib, 1, attrs((64999,)))
    announce(rib, 2, attrs((64999,)))
    rib.commit()
    assert best_peer(rib) == (2, Reason.ROUTER_ID)
    # a reflected route is compared by ORIGINATOR_ID instead
    announce(rib, 1, attrs((64999,), originator_id="10.0.0.1"))
    rib.commit()
    assert best_peer(rib) == (1, Reason.ROUTER_ID)


def test_withdraw_moves_best_and_reports_change(rib):
    first = announce(rib, 1, attrs(local_pref=300))
    second = announce(rib, 2, attrs((64501,), local_pref=100))
    rib.commit()
    rib.withdraw(IPV4_UNICAST, [P], None, 1)
    changes = rib.commit()
    assert [(c.old, c.new) for c in changes] == [(first, second)]
    rib.withdraw(IPV4_UNICAST, [P], None, 2)
    changes = rib.commit()
    assert [(c.old, c.new) for c in changes] == [(second, None)]
    assert P not in rib.tables[IPV4_UNICAST]


def test_implicit_withdraw_replaces_the_path(rib):
    announce(rib, 1, attrs(med=1))
    rib.commit()
    newer = announce(rib, 1, attrs(med=2), now=5.0)
    changes = rib.commit()
    assert len(changes) == 1 and changes[0].new is newer
    assert rib.count() == 1
    assert rib.stats.implicit_withdraws == 1


def test_add_path_keeps_every_path_of_a_peer(rib):
    announce(rib, 1, attrs(med=5), path_id=1)
    announce(rib, 1, attrs(med=5), path_id=2)
    rib.commit()
    assert rib.count() == 2
    assert best_peer(rib)[1] is Reason.PATH_ID


def test_flush_peer_and_generations(rib):
    announce(rib, 1, attrs())
    announce(rib, 1, attrs(), prefix=Q)
    rib.commit()
    rib.peers[1].generation += 1
    announce(rib, 1, attrs())  # re-announced in the new session
    assert rib.flush_peer(1, older_than=rib.peers[1].generation) == 1  # Q was not: it goes
    changes = rib.commit()
    assert {c.prefix for c in changes} == {P, Q}
    assert Q not in rib.tables[IPV4_UNICAST]
    assert rib.flush_peer(1) == 1


def test_untracked_rib_settles_the_same_decisions(rib):
    quiet = Rib(track_changes=False)
    quiet.peers = rib.peers
    for r in (rib, quiet):
        announce(r, 1, attrs((64500, 64510)))
        announce(r, 2, attrs((64501,)))
        announce(r, 1, attrs(), prefix=Q)
    assert quiet.commit() == []
    rib.commit()
    for prefix in (P, Q):
        assert best_peer(quiet, prefix) == best_peer(rib, prefix)
    assert best_peer(quiet) == (2, Reason.AS_PATH)


def test_longest_match_prefers_the_most_specific_covering_prefix() -> None:
    rib = Rib()
    peer = rib.add_peer("192.0.2.9", "192.0.2.1").id
    path = Path(peer, PathAttributes(), "192.0.2.9", None, 0.0, 0)
    for text in ("10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "0.0.0.0/0"):
        rib.announce(IPV4_UNICAST, [prefix_from_text(text)[1]], None, path)
    rib.announce(IPV6_UNICAST, [prefix_from_text("2001:db8::/32")[1]], None, path)
    assert rib.longest_match("10.1.2.3") == (IPV4_UNICAST, prefix_from_text("10.1.2.0/24")[1])
    assert rib.longest_match("10.1.3.3") == (IPV4_UNICAST, prefix_from_text("10.1.0.0/16")[1])
    assert rib.longest_match("192.0.2.1") == (IPV4_UNICAST, prefix_from_text("0.0.0.0/0")[1])
    assert rib.longest_match("2001:db8:1::1") == (IPV6_UNICAST, prefix_from_text("2001:db8::/32")[1])
    assert rib.longest_match("2001:db9::1") is None


def ospf_route(prefix: str, metric: int):  # noqa: ANN201 - an OspfRoute as SPF makes it
    from ipaddress import IPv4Address, ip_network

    from sniffroute.ospf.spf import NextHop, OspfRoute, RouteType

    return OspfRoute(
        ip_network(prefix), metric, RouteType.INTRA, frozenset({NextHop(IPv4Address("10.9.9.9"), None)}),
        IPv4Address(0), IPv4Address("10.0.0.1"),
    )  # fmt: skip


def test_ospf_cost_to_the_next_hop_decides_between_ibgp_paths() -> None:
    rib = Rib()
    for n in (1, 2):
        peer = rib.add_peer(f"10.255.0.{n}", "10.255.0.9")
        peer.asn = peer.local_asn = 65000
        peer.router_id = f"10.0.0.{n}"
    attrs = PathAttributes(as_path=(AsSegment(SegmentType.AS_SEQUENCE, (64500,)),))
    for n in (1, 2):
        rib.announce(IPV4_UNICAST, [P], None, Path(n, attrs, f"10.255.0.{n}", None, 0.0, 0))
    rib.commit()
    assert best_peer(rib) == (1, Reason.ROUTER_ID)
    rib.set_ospf_routes([ospf_route("10.255.0.1/32", 30), ospf_route("10.255.0.0/24", 10)])
    rib.commit()
    # 10.255.0.1 by its /32 at 30, 10.255.0.2 by the covering /24 at 10: the IGP cost step now decides.
    assert best_peer(rib) == (2, Reason.IGP_COST)


def test_lowest_administrative_distance_wins_between_protocols(rib: Rib) -> None:
    ibgp, ebgp = 3, 1
    announce(rib, ibgp, PathAttributes(), prefix_from_text("10.20.0.0/16")[1])
    announce(rib, ebgp, PathAttributes(), prefix_from_text("10.30.0.0/16")[1])
    rib.set_ospf_routes([ospf_route("10.20.0.0/16", 5), ospf_route("10.30.0.0/16", 5), ospf_route("10.40.0.0/16", 5)])
    rib.commit()
    chosen = {
        text: rib.selected_protocol(IPV4_UNICAST, prefix_from_text(text)[1])
        for text in ("10.20.0.0/16", "10.30.0.0/16", "10.40.0.0/16", "10.50.0.0/16")
    }
    assert chosen == {"10.20.0.0/16": "ospf", "10.30.0.0/16": "bgp", "10.40.0.0/16": "ospf", "10.50.0.0/16": None}
