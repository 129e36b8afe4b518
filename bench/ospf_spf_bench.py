"""SPF benchmark: a full route calculation on a synthetic OSPFv2 LSDB (default 1,000 routers, 10,000 prefixes).

The LSDB is one backbone area: routers in a ring with random chords (point-to-point links, costs 1..20, so
equal-cost paths occur), a share of them on broadcast LANs with a network-LSA, each router with stub prefixes
(10 per router by default), a few ABRs announcing summaries and a few ASBRs announcing type-5 externals, some with
a forwarding address. Timed: `compute_routes` from one router's viewpoint and from a LAN segment (graph
building included, as a changed LSDB needs it). Prints figures; gates nothing. BIRD is not measured here: it
cannot be fed a synthetic LSDB without building the network, and its SPF runs inside its own event loop.

Usage: python bench/ospf_spf_bench.py [--routers 1000] [--prefixes 10000] [--externals 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from ipaddress import IPv4Address, IPv4Network, ip_network

from parsers.ospf.lsa import (
    ExternalLsa,
    LinkType,
    Lsa,
    LsaHeader,
    LsaType,
    NetworkLsa,
    RouterFlag,
    RouterLink,
    RouterLsa,
    SummaryLsa,
)
from sniffroute.ospf.spf import RouterRoot, SegmentRoot, compute_routes

SEED = 20261201
OPT_E = 0x02
BACKBONE = IPv4Address(0)
LAN_SIZE = 5  # routers per broadcast segment
LAN_SHARE = 0.25  # share of routers that sit on a LAN
CHORDS_PER_ROUTER = 1.5


def _lsa(kind: int, ls_id: IPv4Address, adv: IPv4Address, body: object) -> Lsa:
    return Lsa(LsaHeader(1, OPT_E, kind, ls_id, adv, 1, 0, 0), body)  # type: ignore[arg-type]


def _rid(i: int) -> IPv4Address:
    return IPv4Address(0x0A000000 + i + 1)


def _p2p_address(link: int, side: int) -> IPv4Address:
    return IPv4Address(0xAC100000 + link * 4 + 1 + side)  # 172.16.0.0/12, one /30 per link


def build_lsdb(routers: int, prefixes: int, externals: int, seed: int = SEED) -> tuple[list[Lsa], list[Lsa]]:
    """(area-0 LSAs, AS-external LSAs)."""
    rng = random.Random(seed)
    links: dict[int, list[RouterLink]] = {i: [] for i in range(routers)}
    pairs = {(i, (i + 1) % routers) for i in range(routers)}
    while len(pairs) < routers * (1 + CHORDS_PER_ROUTER):
        a, b = rng.sample(range(routers), 2)
        if (b, a) not in pairs:
            pairs.add((a, b))
    for index, (a, b) in enumerate(sorted(pairs)):
        cost = rng.randint(1, 20)
        net = IPv4Network((int(_p2p_address(index, -1)), 30))
        for me, other, side in ((a, b, 0), (b, a, 1)):
            links[me].append(RouterLink(_rid(other), _p2p_address(index, side), LinkType.POINT_TO_POINT, cost))
            links[me].append(RouterLink(net.network_address, net.netmask, LinkType.STUB, cost))
    area: list[Lsa] = []
    on_lan = rng.sample(range(routers), int(routers * LAN_SHARE) // LAN_SIZE * LAN_SIZE)
    for lan in range(len(on_lan) // LAN_SIZE):
        members = on_lan[lan * LAN_SIZE : (lan + 1) * LAN_SIZE]
        base = 0xC0000000 + lan * 256  # 192.0.0.0 upwards, one /24 per LAN
        dr = IPv4Address(base + 1)
        for position, member in enumerate(members):
            links[member].append(RouterLink(dr, IPv4Address(base + 1 + position), LinkType.TRANSIT, rng.randint(1, 20)))
        body = NetworkLsa(IPv4Address("255.255.255.0"), tuple(_rid(m) for m in members))
        area.append(_lsa(LsaType.NETWORK, dr, _rid(members[0]), body))
    for n in range(prefixes):
        owner = n % routers
        net = IPv4Network((0x64000000 + n * 16, 28))  # 100.0.0.0/28 upwards
        links[owner].append(RouterLink(net.network_address, net.netmask, LinkType.STUB, rng.randint(1, 10)))
    abrs = set(rng.sample(range(routers), 10))
    asbrs = sorted(rng.sample(range(routers), 10))
    for i in range(routers):
        flags = (RouterFlag.B if i in abrs else 0) | (RouterFlag.E if i in asbrs else 0)
        area.append(_lsa(LsaType.ROUTER, _rid(i), _rid(i), RouterLsa(flags, tuple(links[i]))))
    for n, abr in enumerate(sorted(abrs) * 50):
        net = IPv4Network((0x0B000000 + n * 256, 24))  # 11.0.0.0/24 upwards
        area.append(_lsa(LsaType.SUMMARY_NETWORK, net.network_address, _rid(abr), SummaryLsa(net.netmask, n % 100)))
    external: list[Lsa] = []
    for n in range(externals):
        net = IPv4Network((0x0C000000 + n * 256, 24))  # 12.0.0.0/24 upwards
        forwarding = IPv4Address(0xC0000000 + 2) if n % 4 == 0 and on_lan else IPv4Address(0)
        body = ExternalLsa(net.netmask, n % 2 == 0, 10 + n % 50, forwarding, 0)
        external.append(_lsa(LsaType.AS_EXTERNAL, net.network_address, _rid(asbrs[n % len(asbrs)]), body))
    return area, external


def timed(repeat: int, work) -> tuple[float, float, float, object]:
    """Median and best wall time, median CPU time (less disturbed by other processes on a busy machine)."""
    walls, cpus = [], []
    result = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), min(walls), statistics.median(cpus), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--routers", type=int, default=1000)
    parser.add_argument("--prefixes", type=int, default=10000)
    parser.add_argument("--externals", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    start = time.perf_counter()
    area, external = build_lsdb(args.routers, args.prefixes, args.externals)
    built = time.perf_counter() - start
    print(
        f"LSDB: {args.routers} routers, {args.prefixes} stub prefixes, {len(area)} area LSAs, "
        f"{len(external)} type-5 LSAs (generated in {built:.2f} s)"
    )
    areas = {BACKBONE: area}
    lan = ip_network("192.0.0.0/24")
    for label, root in (("router 10.0.0.1", RouterRoot(_rid(0))), (f"segment {lan}", SegmentRoot(lan))):
        median, best, cpu, result = timed(args.repeat, lambda root=root: compute_routes(areas, external, root))
        routes = result.routes  # type: ignore[attr-defined]
        ecmp = sum(1 for r in routes if len(r.next_hops) > 1)
        print(
            f"full SPF from {label:22s} wall median {median * 1000:6.1f} ms, best {best * 1000:6.1f} ms; "
            f"CPU median {cpu * 1000:6.1f} ms; {len(routes)} routes ({ecmp} with several next hops)"
        )


if __name__ == "__main__":
    main()
