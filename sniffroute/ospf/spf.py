"""OSPF route calculation (RFC 2328 16, RFC 5340 4.8, RFC 3101 2.5): LSAs in, immutable routes out.

Pure: the input is the LSAs of each area plus the AS-scope ones, as plain iterables of `parsers.ospf.lsa.Lsa`
(an LSDB hands over its current instances; nothing here depends on how it stores them). OSPFv2 and OSPFv3 are
both handled: each area's LSAs are first turned into one version-neutral graph (`_AreaGraph`), and the
calculation runs on that.

Viewpoints (`Root`):
* `RouterRoot(router_id)`: "what does router X's routing table look like". Next hops are what X would use:
  the neighbour's interface address (OSPFv2: from the neighbour's router-LSA link back to X on a
  point-to-point link, or its transit link data on a network; OSPFv3: the neighbour's link-local address from
  its Link-LSA), with the outgoing interface named by X's own interface address (v2) or interface ID (v3).
* `SegmentRoot(prefix)`: a stub attached to a LAN segment (our switch): the network vertex of that segment is
  the root, so next hops are the routers on the segment, and metrics are counted from the segment (a router
  on it with interface cost C sees every metric C higher).

Steps, as RFC 2328 numbers them: 16.1 shortest-path tree per area (network vertices before routers on equal
cost, the bidirectional-link check, equal-cost next hops merged as sets), then stub networks / v3 prefixes;
16.2 inter-area routes from type-3/4 (backbone only on an area border router); 16.4 AS-external routes from
type-5 and (RFC 3101) type-7 in NSSAs the root is attached to, with E1/E2 and the forwarding address.
Not handled: virtual links (16.3, transit areas), TOS metrics, RFC 1583 compatibility (16.4.1 uses the
RFC 2328 preference), demand circuits, incremental SPF (bench/ospf_spf_bench.py times a full run).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import NamedTuple

from parsers.ospf.lsa import (
    MAX_AGE,
    External3Lsa,
    ExternalLsa,
    InterAreaPrefixLsa,
    InterAreaRouterLsa,
    IntraAreaPrefixLsa,
    Link3Lsa,
    LinkType,
    Lsa,
    Lsa3Type,
    LsaType,
    Network3Lsa,
    NetworkLsa,
    Router3Lsa,
    RouterFlag,
    RouterLsa,
    SummaryLsa,
)

__all__ = [
    "LS_INFINITY",
    "NextHop",
    "OspfRoute",
    "Root",
    "RouteType",
    "RouterRoot",
    "SegmentRoot",
    "SpfResult",
    "compute_routes",
]

LS_INFINITY = 0xFFFFFF  # RFC 2328 Appendix B: summary and external metrics at this value are unreachable
BACKBONE = IPv4Address(0)
OPTION_E = 0x02  # RFC 2328 A.2 / RFC 5340 A.2: E-bit, the area takes AS-external LSAs
PREFIX_NU = 0x01  # RFC 5340 A.4.1.1: NU-bit, the prefix is not to be used in routing
PREFIX_LA = 0x02  # RFC 5340 A.4.1.1: LA-bit, the prefix is an interface address of the advertising router

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


class RouteType(StrEnum):
    """Path types (RFC 2328 11; N1/N2 are RFC 3101 type-7 routes)."""

    INTRA = "intra"
    INTER = "inter"
    E1 = "E1"
    E2 = "E2"
    N1 = "N1"
    N2 = "N2"


class NextHop(NamedTuple):
    """`address` None means directly attached; `interface` names the root's outgoing interface (OSPFv2: its own
    interface address, OSPFv3: its interface ID), None when unknown or when the root is a segment."""

    address: Address | None
    interface: str | None


NextHops = frozenset[NextHop]


@dataclass(frozen=True, slots=True)
class OspfRoute:
    """One destination of the computed table. `metric` is the path cost (for E2/N2: the cost to the ASBR or
    forwarding address), `type2_metric` the external type 2 metric (E2/N2 only). `area` is the area the path
    runs through (None for AS-external type-5 routes); `advertiser` the router that originated the LSA."""

    prefix: Network
    metric: int
    route_type: RouteType
    next_hops: NextHops
    area: IPv4Address | None
    advertiser: IPv4Address
    type2_metric: int | None = None


@dataclass(frozen=True, slots=True)
class RouterRoot:
    """A router's own view. `addresses` adds interface addresses the LSAs do not reveal (OSPFv3 LSAs carry
    prefixes, not the router's addresses): an external route whose forwarding address is the router's own is
    not used."""

    router_id: IPv4Address
    addresses: frozenset[IPv4Address | IPv6Address] = frozenset()


@dataclass(frozen=True, slots=True)
class SegmentRoot:
    """A stub on the segment `prefix`. `neighbors` (router ID -> its address on the segment, e.g. learned from
    Hellos) fills in what the LSAs cannot say: when no router on the segment has formed an adjacency there is no
    network-LSA, and the routers only advertise the prefix as a stub link, without their address."""

    prefix: Network
    neighbors: Mapping[IPv4Address, Address] = field(default_factory=dict, hash=False)


Root = RouterRoot | SegmentRoot


@dataclass(frozen=True, slots=True)
class SpfResult:
    """Routes sorted by prefix, and notes on what was skipped (root not found, unreachable ASBR, ...)."""

    routes: tuple[OspfRoute, ...]
    notes: tuple[str, ...] = ()


# -- the version-neutral graph of one area -------------------------------------------------------------------
#
# Prefixes are handled as (IP version, network as int, length) tuples and addresses as ints until the routes are
# built: hashing `ipaddress` objects dominates the run time otherwise.

PrefixKey = tuple[int, int, int]
RouterKey = tuple[str, int]  # ("R", router id)
NetKey = tuple[str, int, int]  # ("N", v2 link state ID | v3 DR router id, 0 | v3 DR interface ID)
VertexKey = RouterKey | NetKey

_MASK_LENGTHS = {(0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF: length for length in range(33)}


def _v2_key(ls_id: int, mask: int) -> PrefixKey:
    length = _MASK_LENGTHS.get(mask)
    if length is None:  # a non-contiguous mask: keep the leading ones, as prefix_of does
        length = 32 - (~mask & 0xFFFFFFFF).bit_length()
        mask = _mask(4, length)
    return 4, ls_id & mask, length


def _v3_key(network: IPv6Network) -> PrefixKey:
    return 6, int(network.network_address), network.prefixlen


def _mask(version: int, length: int) -> int:
    bits = 32 if version == 4 else 128
    return ((1 << bits) - 1) ^ ((1 << (bits - length)) - 1)


def _network(key: PrefixKey) -> Network:
    version, address, length = key
    return IPv4Network((address, length)) if version == 4 else IPv6Network((address, length))


def _contains(key: PrefixKey, address: Address) -> bool:
    return key[0] == address.version and int(address) & _mask(key[0], key[2]) == key[1]


@dataclass(frozen=True, slots=True)
class _Edge:
    """A link from a router vertex: to a router (point-to-point/virtual) or a network (transit)."""

    target: VertexKey
    cost: int
    interface: str | None  # the router's own interface (v2 address, v3 interface ID)
    neighbor_address: Address | None = None  # point-to-point only: the far end's address


@dataclass(slots=True)
class _Router:
    router_id: IPv4Address
    flags: int = 0
    edges: list[_Edge] = field(default_factory=list)
    targets: set[VertexKey] = field(default_factory=set)  # for the bidirectional check
    stubs: list[tuple[PrefixKey, int]] = field(default_factory=list)  # (prefix, cost from this router)
    own: set[Address] = field(default_factory=set)  # the router's interface addresses that the LSAs reveal
    interfaces: dict[PrefixKey, str] = field(default_factory=dict)  # v3: link prefix -> interface ID (Link-LSA)

    def add_edge(self, edge: _Edge) -> None:
        self.edges.append(edge)
        self.targets.add(edge.target)

    def interface_for(self, prefix: PrefixKey) -> str | None:
        """The own interface on a directly attached prefix: v3 from Link-LSAs, v2 from the interface address."""
        found = self.interfaces.get(prefix)
        if found is not None:
            return found
        # OSPFv2 names interfaces by their address; OSPFv3 ones (IPv6 own addresses) only by interface ID.
        return next((str(a) for a in self.own if a.version == 4 and _contains(prefix, a)), None)


@dataclass(slots=True)
class _Net:
    advertiser: IPv4Address
    attached: frozenset[int]
    prefixes: list[tuple[PrefixKey, int]] = field(default_factory=list)
    member_address: dict[int, Address] = field(default_factory=dict)  # router id -> its address on the segment


@dataclass(frozen=True, slots=True)
class _Summary:
    destination: PrefixKey | int  # a prefix (type 3 / 0x2003) or an ASBR's router id (type 4 / 0x2004)
    metric: int
    advertiser: IPv4Address


@dataclass(frozen=True, slots=True)
class _External:
    prefix: PrefixKey
    type2: bool
    metric: int
    forwarding: Address | None
    advertiser: IPv4Address
    nssa: bool


@dataclass(slots=True)
class _AreaGraph:
    area: IPv4Address
    routers: dict[int, _Router] = field(default_factory=dict)
    networks: dict[NetKey, _Net] = field(default_factory=dict)
    summaries: list[_Summary] = field(default_factory=list)
    nssa: list[_External] = field(default_factory=list)
    # Router-LSAs carry the E option bit except in stub areas and NSSAs (RFC 2328 12.1.2, RFC 3101 2.2), where
    # type-5 LSAs are not flooded and take no part in the calculation.
    external_capable: bool = False


def _live(lsas: Iterable[Lsa]) -> list[Lsa]:
    """Installable LSAs that are not being flushed (RFC 2328 16: MaxAge LSAs take no part)."""
    return [lsa for lsa in lsas if lsa.installable and (lsa.header.age & 0x7FFF) < MAX_AGE]


_P2P_LINKS = (LinkType.POINT_TO_POINT, LinkType.VIRTUAL)


def _build_v2(area: IPv4Address, lsas: list[Lsa]) -> _AreaGraph:
    graph = _AreaGraph(area)
    by_ls_id: dict[int, list[tuple[Lsa, NetworkLsa]]] = defaultdict(list)
    router_lsas: dict[int, RouterLsa] = {}
    for lsa in lsas:
        body, header = lsa.body, lsa.header
        if isinstance(body, RouterLsa) and header.type == LsaType.ROUTER:
            router_lsas[int(header.adv_router)] = body
            graph.external_capable |= bool(header.options & OPTION_E)
        elif isinstance(body, NetworkLsa) and header.type == LsaType.NETWORK:
            by_ls_id[int(header.ls_id)].append((lsa, body))
        elif isinstance(body, SummaryLsa) and header.type == LsaType.SUMMARY_NETWORK:
            prefix = _v2_key(int(header.ls_id), int(body.mask))
            graph.summaries.append(_Summary(prefix, body.metric, header.adv_router))
        elif isinstance(body, SummaryLsa) and header.type == LsaType.SUMMARY_ASBR:
            graph.summaries.append(_Summary(int(header.ls_id), body.metric, header.adv_router))
        elif isinstance(body, ExternalLsa) and header.type == LsaType.NSSA_EXTERNAL:
            graph.nssa.append(_v2_external(lsa, body, nssa=True))
    # One pass over every link: transit members per network, point-to-point addresses per (router, neighbour).
    members: dict[int, dict[int, IPv4Address]] = defaultdict(dict)
    p2p_data: dict[tuple[int, int], list[IPv4Address]] = defaultdict(list)
    for rid, body in router_lsas.items():
        router = _Router(IPv4Address(rid), body.flags)
        graph.routers[rid] = router
        for link in body.links:
            kind = link.type
            if kind == LinkType.STUB:
                router.stubs.append((_v2_key(int(link.link_id), int(link.data)), link.metric))
            elif kind == LinkType.TRANSIT:
                ls_id = int(link.link_id)
                router.add_edge(_Edge(("N", ls_id, 0), link.metric, str(link.data)))
                router.own.add(link.data)
                members[ls_id][rid] = link.data
            elif kind in _P2P_LINKS:
                neighbor = int(link.link_id)
                router.add_edge(_Edge(("R", neighbor), link.metric, str(link.data)))
                if kind == LinkType.POINT_TO_POINT:
                    router.own.add(link.data)
                    p2p_data[(rid, neighbor)].append(link.data)
    # The far end's address of a point-to-point link: its link back to us, on our subnet if it has several.
    for rid, router in graph.routers.items():
        for index, edge in enumerate(router.edges):
            if edge.target[0] != "R":
                continue
            candidates = p2p_data.get((edge.target[1], rid), [])
            if len(candidates) > 1 and edge.interface is not None:
                own = IPv4Address(edge.interface)
                subnets = [prefix for prefix, _ in router.stubs if _contains(prefix, own)]
                candidates = [c for c in candidates if any(_contains(p, c) for p in subnets)] or candidates
            chosen = candidates[0] if candidates else None
            router.edges[index] = _Edge(edge.target, edge.cost, edge.interface, chosen)
    for ls_id, instances in by_ls_id.items():
        lsa, body = _pick_network(ls_id, instances, members)
        net = _Net(lsa.header.adv_router, frozenset(int(r) for r in body.attached))
        net.prefixes.append((_v2_key(ls_id, int(body.mask)), 0))
        net.member_address = dict(members.get(ls_id, {}))
        graph.networks[("N", ls_id, 0)] = net
    return graph


def _pick_network(
    ls_id: int, instances: list[tuple[Lsa, NetworkLsa]], members: Mapping[int, Mapping[int, IPv4Address]]
) -> tuple[Lsa, NetworkLsa]:
    """A network-LSA is looked up by link state ID alone (RFC 2328 16.1 (2)); if a stale one from a former DR
    is still around, take the one whose originator is the DR (its own transit link data equals the ID)."""
    if len(instances) == 1:
        return instances[0]

    def is_dr(item: tuple[Lsa, NetworkLsa]) -> bool:
        data = members.get(ls_id, {}).get(int(item[0].header.adv_router))
        return data is not None and int(data) == ls_id

    return max(instances, key=lambda item: (is_dr(item), item[0].header.seq))


def _v2_external(lsa: Lsa, body: ExternalLsa, *, nssa: bool) -> _External:
    forwarding = body.forwarding if int(body.forwarding) else None
    prefix = _v2_key(int(lsa.header.ls_id), int(body.mask))
    return _External(prefix, body.e_bit, body.metric, forwarding, lsa.header.adv_router, nssa)


def _build_v3(area: IPv4Address, lsas: list[Lsa]) -> _AreaGraph:
    graph = _AreaGraph(area)
    links: dict[tuple[int, int], Link3Lsa] = {}  # (router id, interface id) -> Link-LSA
    prefixes: list[IntraAreaPrefixLsa] = []
    networks: list[tuple[Lsa, Network3Lsa]] = []
    router_bodies: dict[int, list[Router3Lsa]] = defaultdict(list)
    for lsa in lsas:
        body, header = lsa.body, lsa.header
        if isinstance(body, Router3Lsa):
            router_bodies[int(header.adv_router)].append(body)
            graph.external_capable |= bool(body.options & OPTION_E)
        elif isinstance(body, Network3Lsa):
            networks.append((lsa, body))
        elif isinstance(body, Link3Lsa):
            links[(int(header.adv_router), int(header.ls_id))] = body
        elif isinstance(body, IntraAreaPrefixLsa):
            prefixes.append(body)
        elif isinstance(body, InterAreaPrefixLsa) and not body.prefix.options & PREFIX_NU:
            graph.summaries.append(_Summary(_v3_key(body.prefix.network), body.metric, header.adv_router))
        elif isinstance(body, InterAreaRouterLsa):
            graph.summaries.append(_Summary(int(body.destination), body.metric, header.adv_router))
        elif isinstance(body, External3Lsa) and header.type == Lsa3Type.NSSA:
            graph.nssa.append(_v3_external(lsa, body, nssa=True))
    # A router may split its description over several router-LSAs (RFC 5340 4.4.3.2): the union is the vertex.
    for rid, bodies in router_bodies.items():
        router = _Router(IPv4Address(rid), bodies[0].flags)
        graph.routers[rid] = router
        for body in bodies:
            for link in body.links:
                interface = str(link.interface_id)
                neighbor = int(link.neighbor_router_id)
                if link.type == LinkType.TRANSIT:
                    router.add_edge(_Edge(("N", neighbor, link.neighbor_interface_id), link.metric, interface))
                elif link.type in _P2P_LINKS:
                    far = links.get((neighbor, link.neighbor_interface_id))
                    address = far.link_local if far is not None else None
                    router.add_edge(_Edge(("R", neighbor), link.metric, interface, address))
    for (rid, interface_id), link_lsa in links.items():
        owner = graph.routers.get(rid)
        if owner is not None:
            for prefix in link_lsa.prefixes:
                owner.interfaces.setdefault(_v3_key(prefix.network), str(interface_id))
    for lsa, body in networks:
        key: NetKey = ("N", int(lsa.header.adv_router), int(lsa.header.ls_id))
        net = _Net(lsa.header.adv_router, frozenset(int(r) for r in body.attached))
        for rid, member in graph.routers.items():
            for edge in member.edges:
                if edge.target == key and edge.interface is not None:
                    far = links.get((rid, int(edge.interface)))
                    if far is not None:
                        net.member_address[rid] = far.link_local
        graph.networks[key] = net
    for body in prefixes:
        usable = [(_v3_key(p.network), p.metric) for p in body.prefixes if not p.options & PREFIX_NU]
        if body.referenced_type == Lsa3Type.ROUTER:
            owner = graph.routers.get(int(body.referenced_adv_router))
            if owner is not None:
                owner.stubs.extend(usable)
                owner.own |= {p.network.network_address for p in body.prefixes if p.options & PREFIX_LA}
        elif body.referenced_type == Lsa3Type.NETWORK:
            net_key: NetKey = ("N", int(body.referenced_adv_router), int(body.referenced_id))
            referenced = graph.networks.get(net_key)
            if referenced is not None:
                referenced.prefixes.extend(usable)
    return graph


def _v3_external(lsa: Lsa, body: External3Lsa, *, nssa: bool) -> _External:
    forwarding = body.forwarding if body.forwarding is not None and int(body.forwarding) else None
    prefix = _v3_key(body.prefix.network)
    return _External(prefix, body.e_bit, body.metric, forwarding, lsa.header.adv_router, nssa)


def _build(area: IPv4Address, lsas: Iterable[Lsa]) -> _AreaGraph:
    live = _live(lsas)
    version = next((lsa.header.version for lsa in live), 2)
    return _build_v3(area, live) if version == 3 else _build_v2(area, live)


# -- 16.1: the shortest-path tree of one area ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reached:
    cost: int
    hops: NextHops


def _shortest_paths(graph: _AreaGraph, root: VertexKey) -> dict[VertexKey, _Reached]:
    """Dijkstra over router and network vertices. Candidates are ordered by (cost, network first) so that a
    router reached through a network at equal cost sees the network's next hops (RFC 2328 16.1 (3))."""
    done: dict[VertexKey, _Reached] = {}
    best: dict[VertexKey, _Reached] = {root: _Reached(0, frozenset())}
    if root[0] == "R":
        direct = {edge.target for edge in graph.routers[root[1]].edges if edge.target[0] == "N"}
    else:
        direct = {root}
    heap: list[tuple[int, int, VertexKey]] = [(0, 0, root)]
    while heap:
        cost, _, vertex = heapq.heappop(heap)
        if vertex in done or best[vertex].cost != cost:
            continue
        reached = best[vertex]
        done[vertex] = reached
        for target, link_cost, hops in _links_from(graph, vertex, reached, root, vertex in direct):
            if target in done:
                continue
            total = cost + link_cost
            current = best.get(target)
            if current is None or total < current.cost:
                best[target] = _Reached(total, hops)
                heapq.heappush(heap, (total, 1 if target[0] == "R" else 0, target))
            elif total == current.cost and not hops <= current.hops:
                best[target] = _Reached(total, current.hops | hops)
    return done


def _links_from(
    graph: _AreaGraph, vertex: VertexKey, reached: _Reached, root: VertexKey, direct: bool
) -> Iterable[tuple[VertexKey, int, NextHops]]:
    """(neighbour, link cost, next hops to it) for every link of `vertex` that passes the bidirectional check.

    RFC 2328 16.1.1: next hops are set on links out of the root and out of networks the root is attached to
    (there: the far router's address on the network); everywhere else they are inherited from the parent."""
    if vertex[0] == "R":
        router = graph.routers[vertex[1]]
        at_root = vertex == root
        for edge in router.edges:
            target = edge.target
            if target[0] == "R":
                far = graph.routers.get(target[1])
                if far is None or vertex not in far.targets:
                    continue
                hops = frozenset({NextHop(edge.neighbor_address, edge.interface)}) if at_root else reached.hops
            else:
                net = graph.networks.get(target)  # type: ignore[arg-type]
                if net is None or vertex[1] not in net.attached:
                    continue
                hops = frozenset({NextHop(None, edge.interface)}) if at_root else reached.hops
            yield target, edge.cost, hops
        return
    net = graph.networks[vertex]  # type: ignore[index]
    parent_hops = reached.hops or frozenset({NextHop(None, None)})  # the segment root has no hops of its own
    for rid in net.attached:
        far = graph.routers.get(rid)
        if far is None or vertex not in far.targets:
            continue
        if direct:
            address = net.member_address.get(rid)
            hops = frozenset(NextHop(address, h.interface) if h.address is None else h for h in parent_hops)
        else:
            hops = reached.hops
        yield ("R", rid), 0, hops


# -- the whole table -----------------------------------------------------------------------------------------

_TYPE_ORDER = {RouteType.INTRA: 0, RouteType.INTER: 1, RouteType.E1: 2, RouteType.N1: 2, RouteType.E2: 3}


@dataclass(slots=True)
class _Entry:
    cost: int
    hops: NextHops
    area: IPv4Address | None
    advertiser: IPv4Address
    route_type: RouteType
    type2: int | None = None

    def rank(self) -> tuple[int, int, int]:
        """RFC 2328 11 / 16.4 (6): intra < inter < type 1 external < type 2 external; then costs."""
        return _TYPE_ORDER.get(self.route_type, 3), self.type2 or 0, self.cost


def _offer(table: dict[PrefixKey, _Entry], prefix: PrefixKey, entry: _Entry) -> None:
    """Keep the better entry; on a tie merge the next hops (equal-cost multipath)."""
    current = table.get(prefix)
    if current is None:
        table[prefix] = entry
        return
    new, old = entry.rank(), current.rank()
    if new < old:
        table[prefix] = entry
    elif new == old and not entry.hops <= current.hops:
        current.hops = current.hops | entry.hops


@dataclass(slots=True)
class _AreaRun:
    graph: _AreaGraph
    paths: dict[VertexKey, _Reached]
    root_id: int | None


def compute_routes(
    areas: Mapping[IPv4Address, Iterable[Lsa]],
    as_scope: Iterable[Lsa],
    root: Root,
) -> SpfResult:
    """The routing table seen from `root`.

    `areas` maps each area ID to its area-scope LSAs (for OSPFv3 add the link-scope Link-LSAs seen on that
    area's links: they give neighbours' link-local addresses). `as_scope` holds the AS-external LSAs (type 5 /
    0x4005). One OSPF version per call. Types the calculation does not use (opaque, unknown) are ignored.
    """
    notes: list[str] = []
    graphs = {area: _build(area, lsas) for area, lsas in areas.items()}
    runs = _runs(graphs, root, notes)
    if not runs:
        return SpfResult((), tuple(notes))
    table: dict[PrefixKey, _Entry] = {}
    for run in runs:
        _intra_area(run, table)
    asbrs = _inter_area(runs, table, root)
    externals = [_external_of(lsa) for lsa in _live(as_scope)]
    extra_own = root.addresses if isinstance(root, RouterRoot) else frozenset()
    _externals(runs, table, asbrs, [e for e in externals if e is not None], extra_own, notes)
    routes = tuple(
        OspfRoute(
            prefix=_network(prefix),
            metric=entry.cost,
            route_type=entry.route_type,
            next_hops=entry.hops,
            area=entry.area,
            advertiser=entry.advertiser,
            type2_metric=entry.type2,
        )
        for prefix, entry in sorted(table.items())
    )
    return SpfResult(routes, tuple(notes))


def _runs(graphs: Mapping[IPv4Address, _AreaGraph], root: Root, notes: list[str]) -> list[_AreaRun]:
    if isinstance(root, RouterRoot):
        rid = int(root.router_id)
        runs = [
            _AreaRun(graph, _shortest_paths(graph, ("R", rid)), rid)
            for _, graph in sorted(graphs.items())
            if rid in graph.routers
        ]
        if not runs:
            notes.append(f"router {root.router_id} has no router-LSA in any area")
        return runs
    wanted = (root.prefix.version, int(root.prefix.network_address), root.prefix.prefixlen)
    neighbors = {int(rid): address for rid, address in root.neighbors.items()}
    for _, graph in sorted(graphs.items()):
        for key, net in graph.networks.items():
            if any(prefix == wanted for prefix, _ in net.prefixes):
                for rid, address in neighbors.items():
                    net.member_address.setdefault(rid, address)
                return [_AreaRun(graph, _shortest_paths(graph, key), None)]
    for _, graph in sorted(graphs.items()):
        key = _stub_segment(graph, wanted, neighbors)
        if key is not None:
            notes.append(f"no network-LSA for segment {root.prefix}: reached through the routers' stub links")
            return [_AreaRun(graph, _shortest_paths(graph, key), None)]
    notes.append(f"no network-LSA or stub link describes segment {root.prefix}")
    return []


STUB_SEGMENT: NetKey = ("N", -1, 0)  # not a link state ID: the segment root made up from stub links


def _stub_segment(graph: _AreaGraph, wanted: PrefixKey, neighbors: Mapping[int, Address]) -> NetKey | None:
    """A segment without a network-LSA: a network vertex joined to every router that has it as a stub link
    (at that link's cost), so that SPF can start there. Next-hop addresses come from `neighbors` only."""
    attached = {rid: cost for rid, router in graph.routers.items() for prefix, cost in router.stubs if prefix == wanted}
    if not attached:
        return None
    net = _Net(IPv4Address(min(attached)), frozenset(attached), [(wanted, 0)])
    net.member_address = {rid: neighbors[rid] for rid in attached if rid in neighbors}
    graph.networks[STUB_SEGMENT] = net
    for rid, cost in attached.items():
        graph.routers[rid].add_edge(_Edge(STUB_SEGMENT, cost, None))
    return STUB_SEGMENT


def _intra_area(run: _AreaRun, table: dict[PrefixKey, _Entry]) -> None:
    """RFC 2328 16.1 (2) / RFC 5340 4.8.1: network vertices' prefixes, then every router's stub prefixes."""
    graph = run.graph
    area = graph.area
    for vertex, reached in run.paths.items():
        if vertex[0] == "N":
            net = graph.networks[vertex]  # type: ignore[index]
            hops = reached.hops or frozenset({NextHop(None, None)})  # the segment root itself
            for prefix, metric in net.prefixes:
                _offer(table, prefix, _Entry(reached.cost + metric, hops, area, net.advertiser, RouteType.INTRA))
            continue
        router = graph.routers[vertex[1]]
        own = vertex[1] == run.root_id
        for prefix, metric in router.stubs:
            hops = frozenset({NextHop(None, router.interface_for(prefix))}) if own else reached.hops
            _offer(table, prefix, _Entry(reached.cost + metric, hops, area, router.router_id, RouteType.INTRA))


@dataclass(slots=True)
class _AsbrPath:
    cost: int
    hops: NextHops
    area: IPv4Address
    intra: bool


def _inter_area(runs: list[_AreaRun], table: dict[PrefixKey, _Entry], root: Root) -> dict[int, list[_AsbrPath]]:
    """RFC 2328 16.2: summaries of the backbone if the root is an area border router, else of its one area.
    Returns every known path to each ASBR (intra-area ones from the trees, inter-area ones from type 4)."""
    asbrs: dict[int, list[_AsbrPath]] = defaultdict(list)
    for run in runs:
        for vertex, reached in run.paths.items():
            if vertex[0] == "R" and vertex[1] != run.root_id:
                router = run.graph.routers[vertex[1]]
                if router.flags & RouterFlag.E:
                    asbrs[vertex[1]].append(_AsbrPath(reached.cost, reached.hops, run.graph.area, True))
    is_abr = len(runs) > 1
    examined = [r for r in runs if r.graph.area == BACKBONE] if is_abr else runs
    intra = {prefix for prefix, entry in table.items() if entry.route_type == RouteType.INTRA}
    inter_asbr: dict[int, _AsbrPath] = {}
    own = int(root.router_id) if isinstance(root, RouterRoot) else None
    for run in examined:
        for summary in run.graph.summaries:
            if summary.metric >= LS_INFINITY or int(summary.advertiser) == own:
                continue
            border = run.paths.get(("R", int(summary.advertiser)))
            if border is None:
                continue
            cost = border.cost + summary.metric
            destination = summary.destination
            if isinstance(destination, int):
                if destination == own or any(p.intra for p in asbrs.get(destination, [])):
                    continue
                path = inter_asbr.get(destination)
                if path is None or cost < path.cost:
                    inter_asbr[destination] = _AsbrPath(cost, border.hops, run.graph.area, False)
                elif cost == path.cost:
                    path.hops = path.hops | border.hops
                continue
            if destination in intra:
                continue
            _offer(table, destination, _Entry(cost, border.hops, run.graph.area, summary.advertiser, RouteType.INTER))
    for destination, path in inter_asbr.items():
        asbrs[destination].append(path)
    return asbrs


def _external_of(lsa: Lsa) -> _External | None:
    body = lsa.body
    if isinstance(body, ExternalLsa) and lsa.header.type == LsaType.AS_EXTERNAL:
        return _v2_external(lsa, body, nssa=False)
    if isinstance(body, External3Lsa) and lsa.header.type == Lsa3Type.AS_EXTERNAL:
        return _v3_external(lsa, body, nssa=False)
    return None


def _preferred(paths: list[_AsbrPath]) -> _AsbrPath | None:
    """RFC 2328 16.4.1 (RFC1583Compatibility off): intra-area paths through non-backbone areas first, then the
    cheapest of the rest; equal costs merge their next hops."""
    if not paths:
        return None
    if len(paths) == 1:
        return paths[0]
    preferred = [p for p in paths if p.intra and p.area != BACKBONE] or paths
    cheapest = min(p.cost for p in preferred)
    winners = [p for p in preferred if p.cost == cheapest]
    hops = frozenset().union(*(p.hops for p in winners))
    return _AsbrPath(cheapest, hops, winners[0].area, winners[0].intra)


def _externals(
    runs: list[_AreaRun],
    table: dict[PrefixKey, _Entry],
    asbrs: dict[int, list[_AsbrPath]],
    type5: list[_External],
    extra_own: frozenset[Address],
    notes: list[str],
) -> None:
    """RFC 2328 16.4 for type 5 and RFC 3101 2.5 for type 7 (only in NSSAs the root is attached to, and only
    through ASBRs reachable inside that NSSA)."""
    internal = dict(table)  # forwarding addresses resolve through intra- and inter-area routes only
    lookup = _LongestMatch(internal)
    root_ids = {run.root_id for run in runs}
    # A forwarding address of our own would make us our own next hop (BIRD and FRR skip such LSAs too).
    own = {a for run in runs if run.root_id in run.graph.routers for a in run.graph.routers[run.root_id].own}
    own |= extra_own
    preferred: dict[int, _AsbrPath | None] = {}
    candidates: list[tuple[_External, _AsbrPath | None, IPv4Address | None]] = []
    for ext in type5 if any(run.graph.external_capable for run in runs) else ():
        asbr = int(ext.advertiser)
        if asbr in root_ids:
            continue
        if asbr not in preferred:
            preferred[asbr] = _preferred(asbrs.get(asbr, []))
        candidates.append((ext, preferred[asbr], None))
    for run in runs:
        for ext in run.graph.nssa:
            if int(ext.advertiser) == run.root_id:
                continue
            reached = run.paths.get(("R", int(ext.advertiser)))
            path = _AsbrPath(reached.cost, reached.hops, run.graph.area, True) if reached else None
            candidates.append((ext, path, run.graph.area))
    for ext, asbr, nssa_area in candidates:
        if ext.metric >= LS_INFINITY or ext.prefix in internal or ext.forwarding in own:
            continue
        if asbr is None:
            notes.append(f"{_network(ext.prefix)}: ASBR {ext.advertiser} unreachable")
            continue
        cost, hops = asbr.cost, asbr.hops
        if ext.forwarding is not None:
            via = lookup.match(ext.forwarding)
            if via is None:
                notes.append(f"{_network(ext.prefix)}: forwarding address {ext.forwarding} unreachable")
                continue
            cost = via.cost
            # A forwarding address on a directly attached network is itself the next hop (RFC 2328 16.4 (3)).
            hops = frozenset(NextHop(ext.forwarding, h.interface) if h.address is None else h for h in via.hops)
        if ext.nssa:
            route_type = RouteType.N2 if ext.type2 else RouteType.N1
        else:
            route_type = RouteType.E2 if ext.type2 else RouteType.E1
        if ext.type2:
            entry = _Entry(cost, hops, nssa_area, ext.advertiser, route_type, ext.metric)
        else:
            entry = _Entry(cost + ext.metric, hops, nssa_area, ext.advertiser, route_type)
        _offer(table, ext.prefix, entry)


class _LongestMatch:
    """Longest-prefix match over a routing table, one dict probe per prefix length."""

    def __init__(self, table: Mapping[PrefixKey, _Entry]) -> None:
        by_length: dict[tuple[int, int], dict[int, _Entry]] = defaultdict(dict)
        for (version, address, length), entry in table.items():
            by_length[(version, length)][address] = entry
        self._levels = [
            (version, _mask(version, length), by_length[(version, length)])
            for version, length in sorted(by_length, reverse=True)
        ]

    def match(self, address: Address) -> _Entry | None:
        value = int(address)
        for version, mask, entries in self._levels:
            if version == address.version:
                entry = entries.get(value & mask)
                if entry is not None:
                    return entry
        return None
