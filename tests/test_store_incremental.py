"""Saves that rewrite only the buckets whose routes changed (sniffroute.saved_rib through sniffroute.store): after
every save the store holds what a whole save of the same RIB holds, route for route, with no row that no route
names; the RIB itself (Rib.routes) is the oracle."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path as FsPath
from typing import Any

import pytest

from parsers.bgp.constants import IPV4_UNICAST, IPV6_UNICAST
from parsers.bgp.nlri import prefix_to_text
from sniffroute.ospf.spf import NextHop, OspfRoute, RouteType
from sniffroute.rib import Path, Rib
from sniffroute.store import Store
from tests.test_rib import attrs
from tests.test_store_blocks import build_rib


def shown(store: Store) -> set[tuple[Any, ...]]:
    return {
        (r["prefix"], r["peer"], r["path_id"], r["next_hop"], r["since"], r["best"], r["reason"])
        for r in store.routes(all_paths=True)
        if r["protocol"] == "bgp"
    }


def held(rib: Rib) -> set[tuple[Any, ...]]:
    """What the RIB holds, as `shown` reads it from the store (every path, the best with its reason)."""
    rib.commit()
    return {
        (
            prefix_to_text(family[0], prefix),
            rib.peers[source[0]].address,
            source[1],
            path.next_hop,
            path.since,
            reason is not None,
            None if reason is None else reason.value,
        )
        for family, prefix, source, path, reason in rib.routes()
    }


def unnamed_rows(store: Store) -> tuple[int, int]:
    """Paths no block names, and attribute sets no path names: what a save that rewrites part of the RIB must
    delete with the last block or path naming them."""
    db = store.db
    paths = db.execute("SELECT count(*) FROM paths WHERE id NOT IN (SELECT path FROM route_blocks)").fetchone()[0]
    attrs_rows = db.execute("SELECT count(*) FROM attrs WHERE id NOT IN (SELECT attrs FROM paths)").fetchone()[0]
    return paths, attrs_rows


def churn(rng: random.Random, rib: Rib, round_: int) -> None:
    """A few UPDATEs' worth: new paths for prefixes held or not, withdrawals, ADD-PATH paths, a /0."""
    peers = list(rib.peers.values())
    for family in (IPV4_UNICAST, IPV6_UNICAST):
        keys = list(rib.tables.get(family, {}))
        for _ in range(rng.randint(0, 4)):
            chosen = rng.sample(keys, min(len(keys), rng.randint(1, 5)))
            peer = rng.choice(peers)
            path = Path(peer.id, attrs((64500 + peer.id, round_)), peer.address, None, float(round_), 0)
            if peer.id == 2:
                rib.announce(family, chosen, [rng.choice([1, 2, 3]) for _ in chosen], path)
            else:
                rib.announce(family, chosen, None, path)
        for _ in range(rng.randint(0, 3)):
            chosen = rng.sample(keys, min(len(keys), rng.randint(1, 4)))
            peer = rng.choice(peers)
            rib.withdraw(family, chosen, [1] * len(chosen) if peer.id == 2 else None, peer.id)
    if rng.random() < 0.2:
        peer = peers[0]
        default = Path(peer.id, attrs((64500, round_)), peer.address, None, float(round_), 0)
        rib.announce(IPV4_UNICAST, [b"\x00"], None, default)


@pytest.mark.parametrize("seed", range(4))
def test_each_save_of_the_changes_leaves_what_a_whole_save_leaves(seed: int, tmp_path: FsPath) -> None:
    rng = random.Random(seed)
    rib, _held = build_rib(rng, two_peers=True)
    total = sum(1 for _ in rib.routes())
    with Store(tmp_path / "live.sqlite") as live:
        assert rib.take_changed_prefixes() is None  # the first save writes everything
        assert live.save(rib, changed=None) == total
        for round_ in range(25):
            churn(rng, rib, round_)
            if round_ == 12:
                rib.flush_peer(1, [IPV6_UNICAST])  # a session's end for one family: many buckets at once
            rib.commit()
            changed = rib.take_changed_prefixes()
            assert changed is not None
            written = live.save(rib, changed=changed)
            expected = held(rib)
            assert shown(live) == expected, round_
            assert unnamed_rows(live) == (0, 0), round_
            assert written <= len(expected)
            with Store(tmp_path / f"whole{round_}.sqlite") as whole:
                whole.save(rib)
                assert shown(whole) == expected
                assert whole.route_count() == live.route_count()
        restored = Rib()
        loaded = live.load_rib()
        assert loaded.problem is None
        restored.restore(loaded.peers, loaded.routes)
        # Paths only: these test attribute sets carry no wire attributes, so the restored ones decide otherwise.
        assert {route[:5] for route in held(restored)} == {route[:5] for route in held(rib)}


def test_a_save_writes_only_the_routes_that_changed(tmp_path: FsPath) -> None:
    rib = Rib()
    peer = rib.add_peer("192.0.2.1", "192.0.2.9")
    keys = [bytes([24, 10, n // 256, n % 256]) for n in range(700)]
    for start in range(0, len(keys), 7):  # UPDATEs of 7 prefixes
        path = Path(peer.id, attrs((64500, start)), peer.address, None, 0.0, 0)
        rib.announce(IPV4_UNICAST, keys[start : start + 7], None, path)
    rib.commit()

    def blocks() -> set[tuple[Any, ...]]:
        return set(live.db.execute("SELECT rowid, * FROM route_blocks").fetchall())

    with Store(tmp_path / "live.sqlite") as live:
        assert live.save(rib, changed=rib.take_changed_prefixes()) == 700
        before = blocks()
        assert len(before) == 100
        new = bytes([16, 10, 99])
        rib.announce(IPV4_UNICAST, [new], None, Path(peer.id, attrs((64999,)), peer.address, None, 1.0, 0))
        rib.commit()
        changed = rib.take_changed_prefixes()
        assert changed == {IPV4_UNICAST: {new}}
        assert live.save(rib, changed=changed) == 1  # a block of its own; no other row is written again
        after = blocks()
        assert before < after and len(after) == 101
        # A new path for one prefix of an UPDATE: its block goes, the other six are stored again without it.
        rib.announce(IPV4_UNICAST, [keys[10]], None, Path(peer.id, attrs((64998,)), peer.address, None, 2.0, 0))
        rib.commit()
        assert live.save(rib, changed=rib.take_changed_prefixes()) == 7
        assert len(after - blocks()) == 1 and len(blocks() - after) == 2
        assert ("10.0.10.0/24", peer.address, None, peer.address, 2.0, True, "only path") in shown(live)
        assert ("10.99.0.0/16", peer.address, None, peer.address, 1.0, True, "only path") in shown(live)
        assert shown(live) == held(rib)
        assert live.save(rib, changed=rib.take_changed_prefixes()) == 0  # nothing changed: nothing written


def test_a_save_by_another_writer_in_between_makes_the_next_save_whole(tmp_path: FsPath) -> None:
    rib, _held = build_rib(random.Random(6), two_peers=True)
    other, _ = build_rib(random.Random(7), two_peers=False)
    with Store(tmp_path / "rib.sqlite") as live, Store(tmp_path / "rib.sqlite") as replay:
        live.save(rib, changed=rib.take_changed_prefixes())
        replay.save(other)  # `sniffroute replay --db` on the live controller's store
        churn(random.Random(8), rib, 1)
        rib.commit()
        assert live.save(rib, changed=rib.take_changed_prefixes()) == len(held(rib))
        assert shown(live) == held(rib)
        assert unnamed_rows(live) == (0, 0)


def test_a_save_that_failed_is_followed_by_a_whole_one(tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch) -> None:
    import sniffroute.store as store_module

    rib, _held = build_rib(random.Random(9), two_peers=True)
    with Store(tmp_path / "rib.sqlite") as live:
        live.save(rib, changed=rib.take_changed_prefixes())
        churn(random.Random(10), rib, 1)
        rib.commit()

        def disk_full(*_args: object) -> list[tuple[Any, ...]]:
            raise OSError("disk full")

        monkeypatch.setattr(store_module, "ospf_route_rows", disk_full)
        with pytest.raises(OSError):
            live.save(rib, changed=rib.take_changed_prefixes())  # rolled back, its changes taken from the RIB
        monkeypatch.undo()
        churn(random.Random(11), rib, 2)
        rib.commit()
        assert live.save(rib, changed=rib.take_changed_prefixes()) == len(held(rib))
        assert shown(live) == held(rib)


def test_new_ospf_routes_rewrite_every_bucket(tmp_path: FsPath) -> None:
    """OSPF moves BGP's choices far from any BGP change: a BGP path stops being selected where OSPF's route wins
    (administrative distance), and the IGP cost to a next hop picks another best path. New OSPF routes make the
    next save whole."""
    rib = Rib()
    first, second = rib.add_peer("10.1.0.1", "10.1.0.254"), rib.add_peer("10.1.0.2", "10.1.0.254")
    for peer in (first, second):
        peer.asn = peer.local_asn = 65000  # iBGP (200): OSPF (110) wins
    keys = [bytes([24, 198, 51, n]) for n in range(100)]
    rib.announce(IPV4_UNICAST, keys, None, Path(first.id, attrs((64500,)), "10.1.0.1", None, 0.0, 0))
    both = bytes([24, 203, 0, 113])  # two paths: the lower peer address wins, until IGP costs differ
    for peer in (first, second):
        rib.announce(IPV4_UNICAST, [both], [1], Path(peer.id, attrs((64500,)), peer.address, None, 0.0, 0))
    rib.commit()
    with Store(tmp_path / "rib.sqlite") as live:
        live.save(rib, changed=rib.take_changed_prefixes())
        assert {r["peer"] for r in live.routes(prefix="203.0.113.0/24")} == {"10.1.0.1"}

        def ospf(network: str, metric: int) -> OspfRoute:
            next_hops = frozenset({NextHop(ipaddress.ip_address("10.1.0.9"), None)})
            advertiser = ipaddress.ip_address("10.0.0.1")
            return OspfRoute(ipaddress.ip_network(network), metric, RouteType.INTRA, next_hops, None, advertiser)

        rib.set_ospf_routes([ospf("198.51.7.0/24", 10), ospf("10.1.0.1/32", 50), ospf("10.1.0.2/32", 5)])
        rib.commit()
        assert live.save(rib, changed=rib.take_changed_prefixes()) == 102
        best = {r["prefix"]: (r["protocol"], r["peer"]) for r in live.routes()}
        assert best["198.51.7.0/24"] == ("ospf", "10.0.0.1")
        assert best["198.51.8.0/24"] == ("bgp", "10.1.0.1")
        assert best["203.0.113.0/24"] == ("bgp", "10.1.0.2")
    with Store(tmp_path / "whole.sqlite") as whole:
        whole.save(rib)
        assert shown(whole) == shown(Store(tmp_path / "rib.sqlite"))


def test_a_peer_found_internal_hands_its_prefixes_to_ospf_in_the_next_save(tmp_path: FsPath) -> None:
    """Which protocol wins can change with no route changing: a peer whose AS was not known counts as eBGP (20,
    before OSPF's 110); once its OPEN shows it internal (200), OSPF's route wins. The save after writes that."""
    rib = Rib()
    peer = rib.add_peer("10.1.0.1", "10.1.0.254")
    key = bytes([24, 198, 51, 7])
    rib.announce(IPV4_UNICAST, [key], None, Path(peer.id, attrs((64500,)), "10.1.0.1", None, 0.0, 0))
    next_hops = frozenset({NextHop(ipaddress.ip_address("10.1.0.9"), None)})
    advertiser = ipaddress.ip_address("10.0.0.1")
    rib.set_ospf_routes(
        [OspfRoute(ipaddress.ip_network("198.51.7.0/24"), 10, RouteType.INTRA, next_hops, None, advertiser)]
    )
    rib.commit()
    with Store(tmp_path / "rib.sqlite") as live:
        live.save(rib, changed=rib.take_changed_prefixes())
        assert {(r["protocol"], r["best"]) for r in live.routes(all_paths=True)} == {("bgp", True), ("ospf", False)}
        peer.asn = peer.local_asn = 65000
        rib.commit()
        changed = rib.take_changed_prefixes()
        assert changed == {}
        assert live.save(rib, changed=changed) == 1
        assert {(r["protocol"], r["best"]) for r in live.routes(all_paths=True)} == {("bgp", False), ("ospf", True)}


def test_blocks_split_by_changes_are_packed_again_by_a_whole_save(
    tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each change splits a block in two or three; once a record holds twice the blocks it started with, the
    next save is whole and packs them as a save of the whole RIB does."""
    import sniffroute.saved_rib as saved_rib

    monkeypatch.setattr(saved_rib, "FRAGMENTED_SLACK", 0)
    rib = Rib()
    peer = rib.add_peer("192.0.2.1", "192.0.2.9")
    keys = [bytes([24, 10, n // 256, n % 256]) for n in range(700)]
    for start in range(0, len(keys), 7):
        rib.announce(IPV4_UNICAST, keys[start : start + 7], None, Path(peer.id, attrs(), peer.address, None, 0.0, 0))
    rib.commit()
    rng = random.Random(12)
    with Store(tmp_path / "live.sqlite") as live:
        live.save(rib, changed=rib.take_changed_prefixes())

        def stored_blocks() -> int:
            return live.db.execute("SELECT count(*) FROM route_blocks").fetchone()[0]

        packed, whole_saves = stored_blocks(), 0
        for round_ in range(300):
            key = rng.choice(keys)
            rib.announce(IPV4_UNICAST, [key], None, Path(peer.id, attrs(), peer.address, None, float(round_), 0))
            rib.commit()
            if live.save(rib, changed=rib.take_changed_prefixes()) == len(keys):
                whole_saves += 1
                with Store(tmp_path / f"whole{round_}.sqlite") as whole:
                    whole.save(rib)
                    packed = whole.db.execute("SELECT count(*) FROM route_blocks").fetchone()[0]
                assert stored_blocks() == packed
            assert stored_blocks() <= 2 * packed + 2  # a save takes it past twice the packed count, the next packs
        assert whole_saves >= 1
        assert shown(live) == held(rib)


def test_any_other_connection_writing_the_store_makes_the_next_save_whole(tmp_path: FsPath) -> None:
    """Not only another sniffroute: an older version, a VACUUM (which may number rows anew), a hand edit."""
    import sqlite3

    rib, _held = build_rib(random.Random(13), two_peers=True)
    with Store(tmp_path / "rib.sqlite") as live:
        live.save(rib, changed=rib.take_changed_prefixes())
        with sqlite3.connect(tmp_path / "rib.sqlite") as other:
            other.execute("DELETE FROM route_blocks WHERE rowid % 2 = 0")
        churn(random.Random(14), rib, 1)
        rib.commit()
        assert live.save(rib, changed=rib.take_changed_prefixes()) == len(held(rib))
        assert shown(live) == held(rib)
        churn(random.Random(15), rib, 2)
        rib.commit()
        assert live.save(rib, changed=rib.take_changed_prefixes()) < len(held(rib))  # its own saves: not whole
        assert shown(live) == held(rib)


def test_a_best_path_settled_after_the_changes_were_taken_is_taken_again() -> None:
    """The live engine saves even when a commit failed: the prefixes a later commit settles are noted again."""
    rib = Rib()
    first, second = rib.add_peer("192.0.2.1", "192.0.2.9"), rib.add_peer("192.0.2.2", "192.0.2.9")
    key = bytes([24, 203, 0, 113])
    rib.commit()
    assert rib.take_changed_prefixes() is None
    for peer in (first, second):
        rib.announce(IPV4_UNICAST, [key], [1], Path(peer.id, attrs(), peer.address, None, 0.0, 0))
    assert rib.take_changed_prefixes() == {IPV4_UNICAST: {key}}  # taken before the decision was made
    rib.commit()
    assert rib.take_changed_prefixes() == {IPV4_UNICAST: {key}}
