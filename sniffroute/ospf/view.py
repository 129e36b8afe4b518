"""OSPF as the sniff pipeline sees it: packets into the LSDB, Hellos into segments, SPF from one viewpoint.

The viewpoint says whose routing table the RIB gets. A router ID ("what does router X's table look like") or
a segment prefix (our switch as a stub on that LAN: next hops are the routers on it). Without one, the first
OSPFv2 segment whose Hellos were seen is used: the link the capture (or the tunnel) sits on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_interface, ip_network
from typing import TYPE_CHECKING

from parsers.errors import InputError
from sniffroute.ospf.stats import LsdbStats

if TYPE_CHECKING:
    # The OSPF codec, the LSDB and SPF load with the first OSPF packet (or SPF run): a replay without OSPF
    # starts faster. The functions below import what they use.
    from parsers.ospf.lsa import Lsa
    from parsers.ospf.packet import Hello
    from sniffroute.ospf.lsdb import Lsdb, SpfInput
    from sniffroute.ospf.spf import OspfRoute, Root

VERSIONS = (2, 3)  # OSPFv2 and OSPFv3 run side by side; SPF runs once per version


class ViewpointError(InputError, ValueError):
    """An --ospf-root that is neither a router ID nor a prefix."""


@dataclass(frozen=True, slots=True)
class Viewpoint:
    """What the user asked for: a router ID, a segment prefix, or nothing (the first segment seen)."""

    router_id: IPv4Address | None = None
    segment: IPv4Network | IPv6Network | None = None

    @classmethod
    def parse(cls, text: str | None) -> Viewpoint:
        if not text:
            return cls()
        try:
            if "/" in text:
                return cls(segment=ip_network(text, strict=False))
            return cls(router_id=IPv4Address(text))
        except ValueError as exc:
            raise ViewpointError(f"--ospf-root {text!r}: give a router ID (a.b.c.d) or a segment prefix") from exc

    def __str__(self) -> str:
        if self.router_id is not None:
            return f"router {self.router_id}"
        if self.segment is not None:
            return f"segment {self.segment}"
        return "first segment seen"


@dataclass(slots=True)
class Segment:
    """An OSPFv2 broadcast/NBMA segment known from Hellos: the routers on it by router ID, with their address."""

    prefix: IPv4Network
    neighbors: dict[IPv4Address, IPv4Address] = field(default_factory=dict)
    elects_dr: bool = False  # broadcast/NBMA: a LAN a stub can sit on; point-to-point Hellos name no DR


def segments_from_hello(segments: dict[IPv4Network, Segment], hello: Hello, router_id: IPv4Address, src: str) -> None:
    """Note a v2 Hello's sender on its segment (RFC 2328 A.3.2: the mask is the interface's)."""
    if hello.network_mask is None or hello.network_mask == IPv4Address(0):
        return  # point-to-point and virtual links carry no mask: not a segment a stub sits on
    try:
        prefix = ip_interface(f"{src}/{hello.network_mask}").network
    except ValueError:
        return
    if not isinstance(prefix, IPv4Network):
        return
    segment = segments.setdefault(prefix, Segment(prefix))
    segment.neighbors[router_id] = IPv4Address(src)
    segment.elects_dr |= hello.dr != IPv4Address(0)


def default_segment(segments: dict[IPv4Network, Segment]) -> IPv4Network | None:
    """The first LAN seen (a segment that elects a DR), else the first segment at all."""
    lans = [s.prefix for s in segments.values() if s.elects_dr]
    return lans[0] if lans else next(iter(segments), None)


def v3_lan_prefix(lans: Sequence[tuple[IPv4Address, int]], spf_input: SpfInput) -> IPv6Network | None:
    """The prefix of the first OSPFv3 LAN seen: its DR's Hellos name the network-LSA (DR router ID, interface
    ID), and the intra-area-prefix LSA that refers to that network-LSA carries the LAN's prefixes."""
    from parsers.ospf.lsa import IntraAreaPrefixLsa, Lsa3Type

    for dr, interface_id in lans:
        for lsas in spf_input.areas.values():
            for lsa in lsas:
                body = lsa.body
                if (
                    isinstance(body, IntraAreaPrefixLsa)
                    and body.referenced_type == Lsa3Type.NETWORK
                    and body.referenced_adv_router == dr
                    and int(body.referenced_id) == interface_id
                    and body.prefixes
                ):
                    return body.prefixes[0].network
    return None


def root_for(
    viewpoint: Viewpoint,
    version: int,
    segments: dict[IPv4Network, Segment],
    default_v3: IPv6Network | None = None,
) -> Root | None:
    from sniffroute.ospf.spf import RouterRoot, SegmentRoot

    if viewpoint.router_id is not None:
        return RouterRoot(viewpoint.router_id)
    wanted = viewpoint.segment
    if wanted is None:
        wanted = default_segment(segments) if version == 2 else default_v3
        if wanted is None:
            return None
    if (wanted.version == 4) != (version == 2):
        return None
    seen = segments.get(wanted) if isinstance(wanted, IPv4Network) else None
    return SegmentRoot(wanted, dict(seen.neighbors) if seen else {})


def compute(
    inputs: dict[int, SpfInput],
    viewpoint: Viewpoint,
    segments: dict[IPv4Network, Segment],
    v3_lans: Sequence[tuple[IPv4Address, int]] = (),
) -> tuple[list[OspfRoute], list[str]]:
    """Routes of every OSPF version present, from the viewpoint; notes say what could not be computed."""
    from sniffroute.ospf.spf import compute_routes

    routes: list[OspfRoute] = []
    notes: list[str] = []
    for version, spf_input in sorted(inputs.items()):
        if not spf_input.areas:
            continue
        default_v3 = v3_lan_prefix(v3_lans, spf_input) if version == 3 else None
        root = root_for(viewpoint, version, segments, default_v3)
        if root is None:
            notes.append(f"OSPFv{version}: no viewpoint (give --ospf-root ROUTER_ID or a segment prefix)")
            continue
        result = compute_routes(spf_input.areas, spf_input.as_scope, root)
        routes.extend(result.routes)
        notes.extend(f"OSPFv{version}: {note}" for note in result.notes)
    return routes, notes


def spf_inputs(lsas: list[tuple[int, IPv4Address | None, Lsa]]) -> dict[int, SpfInput]:
    """SPF inputs per version from stored LSAs: (version, area or None for the AS scope, LSA)."""
    from sniffroute.ospf.lsdb import SpfInput

    areas: dict[int, dict[IPv4Address, list[Lsa]]] = {}
    as_scope: dict[int, list[Lsa]] = {}
    for version, area, lsa in lsas:
        if area is None:
            as_scope.setdefault(version, []).append(lsa)
        else:
            areas.setdefault(version, {}).setdefault(area, []).append(lsa)
    return {
        version: SpfInput(
            {area: tuple(found) for area, found in sorted(areas.get(version, {}).items())},
            tuple(as_scope.get(version, ())),
        )
        for version in areas.keys() | as_scope.keys()
    }


class OspfView:
    """The pipeline's OSPF part: `feed` each protocol-89 datagram; `routes()` recomputes SPF when needed."""

    def __init__(self, viewpoint: Viewpoint | None = None, lsdb: Lsdb | None = None) -> None:
        self.viewpoint = viewpoint or Viewpoint()
        self._lsdb = lsdb  # made on first use (see `lsdb`)
        self.segments: dict[IPv4Network, Segment] = {}
        self.v3_lans: list[tuple[IPv4Address, int]] = []  # (DR router ID, its interface ID), first seen first
        self.notes: list[str] = []
        self.spf_runs = 0
        self._dirty = False

    @property
    def lsdb(self) -> Lsdb:
        """The LSDB, made (and the OSPF codec loaded) on first use."""
        if self._lsdb is None:
            from sniffroute.ospf.lsdb import Lsdb

            self._lsdb = Lsdb()
        return self._lsdb

    @property
    def used_lsdb(self) -> Lsdb | None:
        """The LSDB if anything made it, else None: an LSDB no packet reached is empty."""
        return self._lsdb

    @property
    def stats(self) -> LsdbStats:
        """The LSDB's counters (all zero while no OSPF packet was seen)."""
        return self._lsdb.stats if self._lsdb is not None else LsdbStats()

    def lsa_count(self) -> int:
        return len(self._lsdb) if self._lsdb is not None else 0

    def feed(self, payload: bytes, now: float, src: str, dst: str, vlans: tuple[int, ...] = ()) -> None:
        from parsers.ospf.packet import Hello

        lsdb = self.lsdb
        packet = lsdb.decode(payload, now, src=src, dst=dst)
        if packet is None:
            self._dirty |= bool(lsdb.expire(now))
            return
        hello = packet.body
        if isinstance(hello, Hello):
            if packet.version == 2:
                segments_from_hello(self.segments, hello, packet.router_id, src)
            elif hello.dr == packet.router_id and hello.interface_id is not None:
                lan = (packet.router_id, hello.interface_id)
                if lan not in self.v3_lans:
                    self.v3_lans.append(lan)
        # A capture does not say which link a frame crossed; its VLAN tags are the best hint for link scope.
        link = ",".join(map(str, vlans)) or None
        if lsdb.feed(packet, now, link=link, source=src):
            self._dirty = True

    def expire(self, now: float) -> None:
        if self._lsdb is not None and self._lsdb.expire(now):
            self._dirty = True

    @property
    def dirty(self) -> bool:
        return self._dirty

    def routes(self) -> list[OspfRoute]:
        """Run SPF from the viewpoint over the current LSDB (call when `dirty`)."""
        inputs = {version: self.lsdb.spf_input(version) for version in VERSIONS}
        routes, self.notes = compute(inputs, self.viewpoint, self.segments, self.v3_lans)
        self.spf_runs += 1
        self._dirty = False
        return routes

    def root_description(self) -> str:
        if self.viewpoint.router_id is None and self.viewpoint.segment is None and self.segments:
            return f"segment {default_segment(self.segments)} (first LAN seen)"
        return str(self.viewpoint)
