"""sniffroute.rib shortcuts: bulk insert of new prefixes, End-of-RIB flushes that skip a table with nothing stale,
and the path count. Each must give what the prefix-by-prefix walk gives."""

from __future__ import annotations

from parsers.bgp.constants import IPV4_UNICAST, IPV6_UNICAST
from parsers.bgp.nlri import prefix_from_text
from sniffroute.rib import Path, Rib
from tests.test_rib import attrs

P = prefix_from_text("198.51.100.0/24")[1]
Q = prefix_from_text("203.0.113.0/24")[1]
R = prefix_from_text("192.0.2.0/25")[1]


def two_peers() -> Rib:
    rib = Rib()
    for n in (1, 2):
        peer = rib.add_peer(f"192.0.2.{n}", "192.0.2.254")
        peer.asn, peer.local_asn, peer.router_id = 64500 + n, 65000, f"10.0.0.{n}"
    return rib


def path(peer: int, generation: int = 0, med: int | None = None) -> Path:
    return Path(peer, attrs(med=med), f"192.0.2.{peer}", None, 0.0, generation)


def test_a_prefix_repeated_in_one_update_counts_as_an_implicit_withdraw():
    rib = two_peers()
    rib.announce(IPV4_UNICAST, [P, Q, P], None, path(1))
    assert rib.stats.implicit_withdraws == 1
    assert rib.count() == 2 and rib.stats.announced[IPV4_UNICAST] == 3


def test_a_prefix_another_peer_holds_gets_both_paths_and_a_decision():
    rib = two_peers()
    rib.announce(IPV4_UNICAST, [P], None, path(1, med=5))
    second = path(2, med=5)
    rib.announce(IPV4_UNICAST, [Q, P], None, second)
    changes = rib.commit()
    assert rib.count() == 3 and rib.prefix_count() == {IPV4_UNICAST: 2}
    assert {c.prefix for c in changes} == {P, Q}
    assert len(rib.tables[IPV4_UNICAST][P]) == 2  # type: ignore[arg-type]
    assert rib.best(IPV4_UNICAST, Q)[1] is second  # type: ignore[index]


def test_count_matches_the_paths_listed():
    rib = two_peers()
    rib.announce(IPV4_UNICAST, [P, Q], None, path(1))
    rib.announce(IPV4_UNICAST, [P, R], None, path(2))
    rib.announce(IPV6_UNICAST, [prefix_from_text("2001:db8::/32")[1]], None, path(2))
    rib.commit()
    assert rib.count() == sum(1 for _ in rib.routes()) == 5
    assert rib.count(IPV4_UNICAST) == 4


def test_end_of_rib_flush_still_finds_stale_paths_announced_after_a_full_walk():
    rib = two_peers()
    rib.announce(IPV4_UNICAST, [P], None, path(1, generation=2))
    assert rib.flush_peer(1, older_than=2) == 0  # every family walked: nothing older than 2 is left
    assert rib.flush_peer(1, [IPV4_UNICAST], older_than=2) == 0
    rib.announce(IPV4_UNICAST, [Q], None, path(1, generation=1))  # an older session's path arrives after all
    assert rib.flush_peer(1, [IPV4_UNICAST], older_than=2) == 1
    assert Q not in rib.tables[IPV4_UNICAST] and P in rib.tables[IPV4_UNICAST]


def test_flush_of_some_families_does_not_vouch_for_the_others():
    rib = two_peers()
    rib.announce(IPV4_UNICAST, [P], None, path(1, generation=1))
    rib.announce(IPV6_UNICAST, [prefix_from_text("2001:db8::/32")[1]], None, path(1, generation=1))
    assert rib.flush_peer(1, [IPV4_UNICAST], older_than=2) == 1
    assert rib.flush_peer(1, (f for f in [IPV6_UNICAST]), older_than=2) == 1  # any iterable of families
    assert rib.count() == 0


def test_full_flush_then_new_paths_are_flushed_by_generation():
    rib = two_peers()
    rib.announce(IPV4_UNICAST, [P], None, path(1, generation=1))
    assert rib.flush_peer(1) == 1
    rib.announce(IPV4_UNICAST, [Q], None, path(1, generation=1))
    rib.announce(IPV4_UNICAST, [R], None, path(1, generation=3))
    assert rib.flush_peer(1, [IPV4_UNICAST], older_than=3) == 1
    assert list(rib.tables[IPV4_UNICAST]) == [R]
