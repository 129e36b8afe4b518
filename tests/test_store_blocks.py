"""sniffroute.route_blocks through sniffroute.store: routes packed in blocks read back one by one, and lookups,
against Python's ipaddress as the oracle for longest-prefix match."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path as FsPath

import pytest

from parsers.bgp.constants import IPV4_UNICAST, IPV6_UNICAST
from parsers.bgp.nlri import prefix_from_text
from sniffroute.ospf.spf import NextHop, OspfRoute, RouteType
from sniffroute.rib import Path, Rib
from sniffroute.route_blocks import bucket_of, split_prefixes
from sniffroute.store import Store
from tests.test_rib import attrs

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def random_networks(rng: random.Random, version: int, count: int) -> list[Network]:
    """Prefixes of every length class (/0, shorter than an octet, on and off octet boundaries), most of them
    under a few first octets so that buckets hold many and covering prefixes nest."""
    bits = 32 if version == 4 else 128
    lengths = [0, 1, 3, 7, 8, 9, 12, 16, 20, 24, 24, 24, 32] if version == 4 else [0, 2, 8, 15, 16, 29, 32, 48, 64, 128]
    out: set[Network] = set()
    while len(out) < count:
        top = rng.choice([0x0A, 0xC0, 0x20, rng.getrandbits(8)])
        address = (top << (bits - 8)) | rng.getrandbits(bits - 8)
        out.add(ipaddress.ip_network((address, rng.choice(lengths)), strict=False))
    return sorted(out, key=lambda n: (n.version, n))


def build_rib(rng: random.Random, two_peers: bool) -> tuple[Rib, dict[tuple[str, str, int | None], Network]]:
    """A peer with a single path per UPDATE, and maybe a second with ADD-PATH identifiers on some prefixes the
    first also holds; returns the RIB and every (prefix, peer, path id) it holds."""
    rib = Rib()
    first = rib.add_peer("192.0.2.1", "192.0.2.9")
    second = rib.add_peer("192.0.2.2", "192.0.2.9")
    held: dict[tuple[str, str, int | None], Network] = {}
    for version, family in ((4, IPV4_UNICAST), (6, IPV6_UNICAST)):
        networks = random_networks(rng, version, 400)
        for start in range(0, len(networks), 7):  # an UPDATE of up to 7 prefixes
            chunk = networks[start : start + 7]
            path = Path(first.id, attrs((64500, start)), "192.0.2.1", None, 0.0, 0)
            rib.announce(family, [prefix_from_text(str(n))[1] for n in chunk], None, path)
            held.update({(str(n), first.address, None): n for n in chunk})
        for start in range(0, len(networks) if two_peers else 0, 11):
            chunk = networks[start : start + 3]
            ids = [rng.choice([1, 2]) for _ in chunk]
            path = Path(second.id, attrs((64501,)), "192.0.2.2", None, 0.0, 0)
            rib.announce(family, [prefix_from_text(str(n))[1] for n in chunk], ids, path)
            held.update({(str(n), second.address, i): n for n, i in zip(chunk, ids, strict=True)})
    rib.commit()
    return rib, held


@pytest.mark.parametrize("two_peers", [False, True], ids=["one path per prefix", "several"])
@pytest.mark.parametrize("seed", range(3))
def test_every_route_and_every_lookup_reads_back_from_blocks(seed: int, two_peers: bool, tmp_path: FsPath) -> None:
    rng = random.Random(seed)
    rib, held = build_rib(rng, two_peers)
    with Store(tmp_path / "rib.sqlite") as store:
        assert store.save(rib) == len(held)
        assert store.route_count() == len(held)
        blocks = store.db.execute("SELECT count(*) FROM route_blocks").fetchone()[0]
        assert blocks < len(held)  # prefixes of an UPDATE that share a bucket and a best-path outcome share a row
        shown = store.routes(all_paths=True)
        assert {(r["prefix"], r["peer"], r["path_id"]) for r in shown} == set(held)
        assert sum(r["best"] for r in shown) == len({r["prefix"] for r in shown})  # one best per prefix
        networks = set(held.values())
        for version in (4, 6):
            bits = 32 if version == 4 else 128
            for _ in range(200):
                inside = rng.choice([n for n in networks if n.version == version])
                offset = rng.randrange(min(inside.num_addresses, 1 << 20))
                address = ipaddress.ip_address(
                    rng.getrandbits(bits) if rng.random() < 0.3 else int(inside.network_address) + offset
                )
                if address.version != version:  # a random 32-bit value is an IPv4 address for ip_address
                    address = ipaddress.IPv6Address(int(address))
                covering = [n for n in networks if n.version == version and address in n]
                found = store.routes(address=str(address))
                if not covering:
                    assert found == []
                    continue
                longest = str(max(covering, key=lambda n: n.prefixlen))
                assert {r["prefix"] for r in found} == {longest}
                assert [r["best"] for r in found] == [True]
                assert [r["prefix"] for r in store.routes(prefix=longest, all_paths=True)] == [
                    longest for key in held if key[0] == longest
                ]


def test_a_full_table_is_a_row_per_update_and_bucket(tmp_path: FsPath) -> None:
    rib = Rib()
    peer = rib.add_peer("192.0.2.1", "192.0.2.9")
    keys = [prefix_from_text(f"{10 + n // 500}.{n % 250}.{n // 250 % 2}.0/24")[1] for n in range(1000)]
    for start in range(0, len(keys), 10):
        path = Path(peer.id, attrs((64500, start)), "192.0.2.1", None, 0.0, 0)
        rib.announce(IPV4_UNICAST, keys[start : start + 10], None, path)
    rib.commit()
    with Store(tmp_path / "rib.sqlite") as store:
        assert store.save(rib) == 1000
        rows = store.db.execute("SELECT bucket, count, length(prefixes) FROM route_blocks").fetchall()
    assert sorted(rows) == [(10, 10, 40)] * 50 + [(11, 10, 40)] * 50


def test_a_block_cut_inside_a_prefix_is_an_error() -> None:
    keys = [prefix_from_text(text)[1] for text in ("0.0.0.0/0", "10.0.0.0/8", "10.1.2.128/25", "2001:db8::/32")]
    assert split_prefixes(b"".join(keys[:3]), 1) == keys[:3]
    assert split_prefixes(keys[3], 2) == keys[3:]
    assert [bucket_of(k) for k in keys] == [-1, 10, 10, 0x20]
    with pytest.raises(ValueError, match="does not split"):
        split_prefixes(b"".join(keys[:3])[:-1], 1)
    with pytest.raises(ValueError):
        split_prefixes(prefix_from_text("2001:db8::/48")[1], 1)  # longer than an IPv4 address


def test_routes_are_listed_in_address_order(tmp_path: FsPath) -> None:
    """IPv4 before IPv6, then numeric address (not text: 9/8 before 10/8), then length; ipaddress is the oracle."""
    rng = random.Random(7)
    rib, held = build_rib(rng, two_peers=False)
    with Store(tmp_path / "rib.sqlite") as store:
        store.save(rib)
        listed = [r["prefix"] for r in store.routes()]
    networks = sorted(set(held.values()), key=lambda n: (n.version, int(n.network_address), n.prefixlen))
    assert listed == [str(n) for n in networks]


def test_a_reader_sees_one_save_while_another_process_saves(tmp_path: FsPath, monkeypatch: pytest.MonkeyPatch) -> None:
    """`rib` reads blocks, then their paths and attribute sets: a save landing in between (the live controller
    saves every few seconds) must not show half of each."""
    rib, held = build_rib(random.Random(3), two_peers=True)
    with Store(tmp_path / "rib.sqlite") as writer, Store(tmp_path / "rib.sqlite") as reader:
        writer.save(rib)
        read_paths = reader._paths

        def paths_after_a_save(ids: set[int]) -> dict[int, tuple]:
            writer.save(Rib())  # every path row it read blocks for is gone once this commits
            return read_paths(ids)

        monkeypatch.setattr(reader, "_paths", paths_after_a_save)
        shown = reader.routes(all_paths=True)
        assert {(r["prefix"], r["peer"], r["path_id"]) for r in shown} == set(held)
        monkeypatch.undo()
        assert reader.routes(all_paths=True) == []  # the next read sees the new save


def test_a_bgp_path_is_stored_as_best_only_where_bgp_wins_over_ospf(tmp_path: FsPath) -> None:
    """Administrative distance: OSPF (110) beats iBGP (200), eBGP (20) beats OSPF. The stored BGP path of a
    prefix whose route is OSPF's is shown, with --all, as another path; OSPF's route is the best."""
    rib = Rib()
    ibgp = rib.add_peer("10.1.0.1", "10.1.0.254")
    ibgp.asn = ibgp.local_asn = 65000
    ebgp = rib.add_peer("10.2.0.1", "10.2.0.254")
    ebgp.asn, ebgp.local_asn = 64501, 65000
    internal, external = prefix_from_text("198.51.100.0/24")[1], prefix_from_text("203.0.113.0/24")[1]
    alone = prefix_from_text("198.51.101.0/24")[1]  # one iBGP path, and OSPF's route
    rib.announce(IPV4_UNICAST, [internal, alone], None, Path(ibgp.id, attrs((64500,)), "10.1.0.1", None, 0.0, 0))
    other = rib.add_peer("10.1.0.2", "10.1.0.254")  # a second iBGP path: the prefix has a BGP decision too
    other.asn = other.local_asn = 65000
    rib.announce(IPV4_UNICAST, [internal], [7], Path(other.id, attrs((64500, 1)), "10.1.0.2", None, 0.0, 0))
    rib.announce(IPV4_UNICAST, [external], None, Path(ebgp.id, attrs((64501,)), "10.2.0.1", None, 0.0, 0))
    next_hops = frozenset({NextHop(ipaddress.ip_address("10.1.0.9"), None)})
    advertiser = ipaddress.IPv4Address("10.0.0.1")
    networks = ("198.51.100.0/24", "198.51.101.0/24", "203.0.113.0/24")
    rib.set_ospf_routes(
        [OspfRoute(ipaddress.ip_network(n), 10, RouteType.INTRA, next_hops, None, advertiser) for n in networks]
    )
    rib.commit()
    with Store(tmp_path / "rib.sqlite") as store:
        store.save(rib)
        best = {(r["prefix"], r["protocol"]) for r in store.routes()}
        every = {(r["prefix"], r["protocol"], r["peer"], r["best"]) for r in store.routes(all_paths=True)}
    assert best == {("198.51.100.0/24", "ospf"), ("198.51.101.0/24", "ospf"), ("203.0.113.0/24", "bgp")}
    assert every == {
        ("198.51.100.0/24", "ospf", "10.0.0.1", True),
        ("198.51.100.0/24", "bgp", "10.1.0.1", False),
        ("198.51.100.0/24", "bgp", "10.1.0.2", False),
        ("198.51.101.0/24", "ospf", "10.0.0.1", True),
        ("198.51.101.0/24", "bgp", "10.1.0.1", False),
        ("203.0.113.0/24", "bgp", "10.2.0.1", True),
        ("203.0.113.0/24", "ospf", "10.0.0.1", False),
    }
