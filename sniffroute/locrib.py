"""The Loc-RIB the FIB consumes: the selected route of every prefix, across protocols, with next hops resolved
recursively to directly connected addresses. Pure.

After each `Pipeline.commit()`, `LocRib.apply(changes, ospf_changed)` returns the prefixes whose forwarding entry
changed (`RouteEntry`, or None when the prefix has no usable route any more), ready for `Fib.update`.

- BGP best path: its next hop when it lies on a router interface's subnet; otherwise (iBGP, a next hop behind
  other routers) the next hops of the OSPF route that covers it, longest match: "recursive" next hops.
- OSPF route: its next hops (ECMP when SPF found several); a directly attached OSPF network has none and is left
  to the FIB's connected routes.
- Between protocols the RIB's administrative distances decide (`Rib.selected_protocol`).

An OSPF change can move any recursive next hop, so BGP routes with recursive next hops are remembered and
recomputed when OSPF changes; everything else is recomputed only when its own best path changes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

from parsers.bgp.constants import Afi, AfiSafi
from parsers.bgp.nlri import covering_prefixes
from sniffroute.config import RouterInterface
from sniffroute.fib.model import Network, RouteEntry, network_from_int
from sniffroute.rib import Path, Rib, RouteChange

BGP = "bgp"
HOP_CACHE_LIMIT = 65536
WIDTHS = {Afi.IPV4: (4, 4), Afi.IPV6: (16, 6)}  # address bytes, IP version
OSPF = "ospf"
Key = tuple[AfiSafi, bytes]


class LocRib:
    def __init__(self, rib: Rib, interfaces: Sequence[RouterInterface]) -> None:
        self.rib = rib
        self._entries: dict[Key, RouteEntry] = {}  # by wire prefix: hashing bytes is cheap, networks are not
        self._hops: dict[str, tuple[str, ...] | None] = {}  # next hop -> itself when connected, None when not
        self._subnets = [a.network for i in interfaces for a in i.addresses]
        self._recursive: set[Key] = set()  # BGP prefixes whose next hop resolves through OSPF
        self._ospf_keys: set[Key] = set()  # OSPF prefixes seen at the last apply
        # While `apply` runs: id of a Path -> (the path, its next hops, distance, whether they are recursive).
        self._by_path: dict[int, tuple[Path, tuple[str, ...], int, bool]] | None = None
        self.unresolved = 0  # selected routes whose next hop resolves to nothing connected (last apply)

    def apply(self, changes: Iterable[RouteChange], ospf_changed: bool = False) -> dict[Network, RouteEntry | None]:
        """The forwarding entries that changed because of these best-path changes (and OSPF, when it changed)."""
        return self._apply({(c.family, c.prefix) for c in changes}, ospf_changed)

    def _apply(self, keys: set[Key], ospf_changed: bool) -> dict[Network, RouteEntry | None]:
        if ospf_changed:
            now_ospf = {(family, prefix) for family, table in self.rib.ospf.items() for prefix in table}
            keys |= now_ospf | self._ospf_keys | self._recursive
            self._ospf_keys = now_ospf
        out: dict[Network, RouteEntry | None] = {}
        entries = self._entries
        self._by_path = {}  # for this apply only: OSPF (recursive next hops) may differ at the next
        try:
            for key in keys:
                entry = self.entry(key)
                old = entries.get(key)
                if entry is None:
                    if old is not None:
                        del entries[key]
                        out[old.prefix] = None
                elif old is None or entry != old:
                    entries[key] = entry
                    out[entry.prefix] = entry
        finally:
            self._by_path = None
        return out

    @property
    def table(self) -> dict[Network, RouteEntry]:
        return {entry.prefix: entry for entry in self._entries.values()}

    def rebuild(self) -> dict[Network, RouteEntry | None]:
        """Every prefix of the RIB (and every entry held) considered again: after a load, or as an audit."""
        keys = {(family, prefix) for family, table in self.rib.tables.items() for prefix in table}
        keys |= self._entries.keys()
        return self._apply(keys, True)

    # -- one prefix ----------------------------------------------------------------------------------------
    def entry(self, key: Key) -> RouteEntry | None:
        family, prefix = key
        if self._recursive:
            self._recursive.discard(key)
        network = self._network(key)
        if network is None:
            return None
        sole = self.rib.sole_bgp_path(family, prefix)
        if sole is not None:
            return self._bgp_entry(key, network, sole)
        protocol, best = self.rib.selected(family, prefix)
        if protocol == OSPF:
            route = self.rib.ospf[family][prefix]
            hops = tuple(sorted({str(h.address) for h in route.next_hops if h.address is not None}))
            if not hops:
                return None  # directly attached in OSPF: the FIB's connected route covers it if it is ours
            return RouteEntry(network, hops, OSPF, self.rib.distances.ospf)
        if protocol == BGP and best is not None:
            return self._bgp_entry(key, network, best[1])
        return None

    def _bgp_entry(self, key: Key, network: Network, path: Path) -> RouteEntry | None:
        # An UPDATE's prefixes share one Path: its next hops and distance are worked out once per apply.
        memo = self._by_path
        known = None if memo is None else memo.get(id(path))
        if known is None or known[0] is not path:
            before = len(self._recursive)
            hops = self._bgp_next_hops(key, path)  # adds the key to the recursive ones, if it is
            known = (path, hops, self.rib.bgp_distance(path), len(self._recursive) > before)
            if memo is not None:
                memo[id(path)] = known
        elif known[3]:
            self._recursive.add(key)
        _, hops, distance, _ = known
        if not hops:
            return None
        return RouteEntry(network, hops, BGP, distance)

    def _bgp_next_hops(self, key: Key, path: Path) -> tuple[str, ...]:
        text = path.next_hop or path.next_hop_link_local
        if text is None:
            return ()
        try:
            direct = self._hops[text]
        except KeyError:
            direct = self._direct(text)
            if len(self._hops) >= HOP_CACHE_LIMIT:
                self._hops.clear()
            self._hops[text] = direct
        if direct is not None:
            return direct
        self._recursive.add(key)
        return self._via_ospf(text)

    def _direct(self, text: str) -> tuple[str, ...] | None:
        """(text,) when the next hop is directly connected (or link-local); None when it must be resolved."""
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return ()
        if address.version == 6 and address.is_link_local or self._connected(address):
            return (text,)
        return None

    def _via_ospf(self, text: str) -> tuple[str, ...]:
        """The connected next hops of the most specific OSPF route covering a BGP next hop."""
        try:
            afi, candidates = covering_prefixes(text)
        except ValueError:
            return ()
        table = self.rib.ospf.get((afi, 1), {})
        for prefix in candidates:
            route = table.get(prefix)
            if route is not None:
                hops = sorted({str(h.address) for h in route.next_hops if h.address is not None})
                return tuple(h for h in hops if self._connected(ipaddress.ip_address(h)))
        return ()

    def _connected(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address.version == n.version and address in n for n in self._subnets)

    def _network(self, key: Key) -> Network | None:
        """The network of a unicast wire prefix (length byte, then the significant bytes), without text."""
        (afi, _), prefix = key
        if not prefix:
            return None
        kind = WIDTHS.get(afi)
        if kind is None:
            return None
        width, version = kind
        length, bits = prefix[0], width * 8
        value = int.from_bytes(prefix[1:].ljust(width, b"\0"), "big")
        if length > bits or len(prefix) - 1 > width or value & ((1 << (bits - length)) - 1):
            return None  # not a prefix (host bits set): ipaddress would refuse it too
        return network_from_int(version, value, length)


def entries_json(table: Mapping[Network, RouteEntry]) -> list[dict[str, object]]:
    """The Loc-RIB as stored (so a restarted controller can keep the switch's flows until the RIB refills)."""
    return [
        {"prefix": str(e.prefix), "next_hops": list(e.next_hops), "protocol": e.protocol, "distance": e.distance}
        for e in table.values()
    ]


def entries_from_json(rows: object) -> dict[Network, RouteEntry]:
    """The stored Loc-RIB back; rows that do not parse are skipped (a damaged document is not a crash)."""
    out: dict[Network, RouteEntry] = {}
    if not isinstance(rows, list):
        return out
    for row in rows:
        try:
            network = ipaddress.ip_network(row["prefix"])
            entry = RouteEntry(
                network, tuple(str(h) for h in row["next_hops"]), str(row["protocol"]), int(row["distance"])
            )
        except (KeyError, TypeError, ValueError):
            continue
        out[network] = entry
    return out
