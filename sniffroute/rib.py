"""Adj-RIB-In per peer and the Loc-RIB with the BGP decision process (RFC 4271 9.1). Pure: no I/O.

OSPF routes (computed by sniffroute.ospf from the LSDB) sit beside the BGP tables; between protocols the lowest
administrative distance wins, and their metrics are the IGP cost the BGP decision reads for a next hop.

Routes are keyed by family and wire prefix (parsers.bgp.nlri). A `Path` is what one UPDATE said for all its
prefixes (shared attributes, next hop, peer, time), so a full table holds one Path per UPDATE rather than per
prefix. Changes to best paths are collected and handed out by `commit()`, for the store and later the FIB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import Enum
from itertools import repeat
from operator import countOf
from typing import TYPE_CHECKING

from parsers.bgp.attributes import PathAttributes, as_path_length, neighbor_as
from parsers.bgp.constants import AfiSafi
from parsers.bgp.nlri import covering_prefixes, prefix_from_text

if TYPE_CHECKING:
    from sniffroute.ospf.spf import OspfRoute

DEFAULT_LOCAL_PREF = 100  # RFC 4271 5.1.5 leaves it to policy; 100 is what every implementation uses


class PeerState(Enum):
    ESTABLISHED = "established"  # OPENs seen both ways, or routes seen (a capture started mid-session)
    STALE = "stale"  # session went down with graceful restart: routes kept, marked stale (RFC 4724 4.2)
    DOWN = "down"  # session ended; its routes are gone


@dataclass(slots=True)
class Peer:
    """A BGP speaker whose routes we saw, as seen by one receiver (the other end of its session)."""

    id: int
    address: str
    local_address: str
    asn: int | None = None
    local_asn: int | None = None
    router_id: str | None = None
    state: PeerState = PeerState.ESTABLISHED
    generation: int = 0  # the generation of the session whose routes count; paths of older ones are stale
    sessions_seen: int = 0  # OPENs seen from this speaker: each new session gets the next generation
    session: int | None = None  # connection id of the session whose routes count
    possibly_stale: bool = False  # bytes of its stream were lost: routes may be missing or outdated
    stale_deadline: float | None = None  # graceful restart: when the retained routes expire

    @property
    def ebgp(self) -> bool | None:
        if self.asn is None or self.local_asn is None:
            return None
        return self.asn != self.local_asn


@dataclass(slots=True, eq=False)
class Path:
    """What one UPDATE announced: shared by every prefix it carried, and never changed once made. (Not a frozen
    dataclass only because one is made per UPDATE, and a frozen dataclass's __init__ costs about four times as
    much; it compares by identity, so nothing hashes its fields.)"""

    peer: int
    attrs: PathAttributes
    next_hop: str | None
    next_hop_link_local: str | None
    since: float
    generation: int


class Reason(Enum):
    """Why the best path won over the next candidate (GoBGP's BestPathReason), in decision order."""

    ONLY_PATH = "only path"
    LOCAL_PREF = "local preference"
    AS_PATH = "AS path length"
    ORIGIN = "origin"
    MED = "MED"
    EBGP = "eBGP over iBGP"
    IGP_COST = "IGP cost"
    ROUTER_ID = "router ID"
    CLUSTER_LIST = "cluster list length"
    PEER_ADDRESS = "peer address"
    PATH_ID = "path identifier"


Source = tuple[int, int | None]  # (peer id, ADD-PATH path id)


@dataclass(frozen=True, slots=True)
class RouteChange:
    """A best path that changed: old and new (None when there was none / is none now)."""

    family: AfiSafi
    prefix: bytes
    old: Path | None
    new: Path | None
    reason: Reason | None


@dataclass(slots=True)
class RibStats:
    announced: dict[AfiSafi, int] = field(default_factory=dict)
    withdrawn: dict[AfiSafi, int] = field(default_factory=dict)
    implicit_withdraws: int = 0


Entry = Path | dict[Source, Path]  # one path without an ADD-PATH id, or every path of the prefix by source


@dataclass(frozen=True, slots=True)
class Distances:
    """Administrative distances: between protocols, the lowest wins (the usual defaults)."""

    ebgp: int = 20
    ospf: int = 110
    ibgp: int = 200


class Rib:
    """All paths of all peers per family and prefix; best paths computed on `commit()`.

    A prefix with a single path (the common case: one peer, no ADD-PATH) holds that Path directly, and it is its
    own best path; only prefixes with several paths keep a dict of them and a recorded decision. With
    `track_changes`, `commit()` returns every best-path change since the last commit (what the FIB consumes);
    without, it only settles decisions (a replay that just stores the result).
    """

    def __init__(
        self,
        igp_cost: Callable[[str | None], int | None] | None = None,
        *,
        track_changes: bool = True,
        distances: Distances | None = None,
    ) -> None:
        self.peers: dict[int, Peer] = {}
        self.distances = distances or Distances()
        # family -> prefix -> OSPF route of the chosen viewpoint, replaced whole after each SPF run.
        self.ospf: dict[AfiSafi, dict[bytes, OspfRoute]] = {}
        # family -> prefix -> Entry. A peer's Adj-RIB-In is this table read by source.
        self.tables: dict[AfiSafi, dict[bytes, Entry]] = {}
        self.decisions: dict[AfiSafi, dict[bytes, tuple[Source, Reason]]] = {}
        self.track_changes = track_changes
        self._dirty: dict[AfiSafi, set[bytes]] = {}
        self._old_best: dict[tuple[AfiSafi, bytes], Path | None] = {}
        # family -> prefixes whose routes changed since `take_changed_prefixes`; None until it is first called (a
        # replay stores its RIB whole and never asks).
        self._changed: dict[AfiSafi, set[bytes]] | None = None
        self._all_changed = False  # a change reaching any prefix (new OSPF routes, a restore)
        self._igp_cost = igp_cost or self.ospf_cost
        self.stats = RibStats()
        # peer -> a generation no path of the peer is older than, where known: lets `flush_peer(older_than=...)`
        # (every End-of-RIB) skip walking a full table that has nothing that old.
        self._oldest: dict[int, float] = {}

    # -- peers ---------------------------------------------------------------------------------------------
    def add_peer(self, address: str, local_address: str) -> Peer:
        peer = Peer(len(self.peers) + 1, address, local_address)
        self.peers[peer.id] = peer
        return peer

    def _table(self, family: AfiSafi) -> dict[bytes, Entry]:
        table = self.tables.get(family)
        if table is None:
            table = self.tables[family] = {}
            self._dirty[family] = set()
            self.decisions[family] = {}
        return table

    # -- route updates -------------------------------------------------------------------------------------
    def announce(self, family: AfiSafi, prefixes: list[bytes], path_ids: list[int] | None, path: Path) -> None:
        table = self._table(family)
        stats = self.stats
        stats.announced[family] = stats.announced.get(family, 0) + len(prefixes)
        if self.track_changes:
            self._remember(family, prefixes)
        if self._changed is not None:
            _note_changed(self._changed, family, prefixes)
        peer = path.peer
        oldest = self._oldest.get(peer)
        if oldest is not None and path.generation < oldest:
            self._oldest[peer] = path.generation
        if path_ids is None:
            # One pass in C for the common case, prefixes not in the table yet (a table being learnt): setdefault
            # inserts those and hands back what the others hold. An occurrence that gets `path` back is a new
            # prefix, or one this path already holds (a repeat within the list): a replacement, counted as such.
            size = len(table)
            found = list(map(table.setdefault, prefixes, repeat(path)))
            kept = found.count(path)
            stats.implicit_withdraws += kept - (len(table) - size)
            if kept == len(found):
                return
            # Prefixes that held something else, in order (the inserts above touched other prefixes only).
            for prefix, current in zip(prefixes, found, strict=True):
                if current is path:
                    continue
                current = table[prefix]
                if type(current) is Path and current.peer == peer:
                    table[prefix] = path
                    stats.implicit_withdraws += 1
                else:
                    self._add_source(family, table, prefix, current, (peer, None), path)
        else:
            for prefix, path_id in zip(prefixes, path_ids, strict=True):
                self._add_source(family, table, prefix, table.get(prefix), (peer, path_id), path)

    def _add_source(
        self,
        family: AfiSafi,
        table: dict[bytes, Entry],
        prefix: bytes,
        current: Entry | None,
        source: Source,
        path: Path,
    ) -> None:
        if current is None:
            sources: dict[Source, Path] = {}
        elif type(current) is Path:
            sources = {(current.peer, None): current}
        else:
            sources = current  # type: ignore[assignment]
        if source in sources:
            self.stats.implicit_withdraws += 1
        sources[source] = path
        table[prefix] = sources
        self._dirty[family].add(prefix)

    def withdraw(self, family: AfiSafi, prefixes: list[bytes], path_ids: list[int] | None, peer: int) -> None:
        stats = self.stats
        stats.withdrawn[family] = stats.withdrawn.get(family, 0) + len(prefixes)
        table = self.tables.get(family)
        if table is None:
            return
        if self.track_changes:
            self._remember(family, prefixes)
        if self._changed is not None:
            _note_changed(self._changed, family, prefixes)
        ids: list[int | None] = path_ids if path_ids is not None else [None] * len(prefixes)  # type: ignore[assignment]
        dirty = self._dirty[family]
        for prefix, path_id in zip(prefixes, ids, strict=True):
            current = table.get(prefix)
            if current is None:
                continue
            if type(current) is Path:
                if current.peer == peer and path_id is None:
                    del table[prefix]
            elif current.pop((peer, path_id), None) is not None:  # type: ignore[union-attr]
                dirty.add(prefix)
                if not current:
                    del table[prefix]

    def flush_peer(self, peer: int, families: Iterable[AfiSafi] | None = None, older_than: int | None = None) -> int:
        """Remove a peer's routes (all, of some families, or those of generations before `older_than`)."""
        oldest = self._oldest.get(peer)
        if older_than is not None and oldest is not None and oldest >= older_than:
            return 0  # nothing that old
        removed = 0
        chosen = list(families) if families is not None else list(self.tables)
        every_family = families is None or set(self.tables) <= set(chosen)
        for family in chosen:
            table = self.tables.get(family)
            if not table:
                continue
            dirty = self._dirty[family]
            doomed_single = []
            for prefix, current in table.items():
                if type(current) is Path:
                    if current.peer == peer and (older_than is None or current.generation < older_than):
                        doomed_single.append(prefix)
                    continue
                gone = [
                    s for s, p in current.items() if s[0] == peer and (older_than is None or p.generation < older_than)
                ]
                if gone:
                    if self.track_changes:
                        self._remember(family, [prefix])
                    if self._changed is not None:
                        _note_changed(self._changed, family, [prefix])
                    for source in gone:
                        del current[source]
                    removed += len(gone)
                    dirty.add(prefix)
            if self.track_changes:
                self._remember(family, doomed_single)
            if self._changed is not None:
                _note_changed(self._changed, family, doomed_single)
            for prefix in doomed_single:
                del table[prefix]
            removed += len(doomed_single)
            for prefix in [p for p, c in table.items() if type(c) is dict and not c]:
                del table[prefix]
        if every_family:
            # What is left of the peer is at least this recent (nothing left at all after a full flush).
            self._oldest[peer] = (
                float("inf") if older_than is None else older_than if oldest is None else max(older_than, oldest)
            )
        return removed

    # -- restart -----------------------------------------------------------------------------------------------
    def restore(
        self,
        peers: Iterable[Peer],
        routes: Iterable[tuple[AfiSafi, list[bytes], int | None, Path]],
        *,
        stale_until: float | None = None,
    ) -> int:
        """Put a RIB read back from the store (sniffroute.rib_store) into this empty one and settle its best
        paths; returns the paths restored. `routes` are blocks of prefixes with one path each, the stored blocks
        (sniffroute.route_blocks); their paths name their peers by the ids in `peers`.

        With `stale_until`, every peer that has routes is held stale until then, as the routes of a peer in
        graceful restart are (RFC 4724 4.2): sniffroute.sessions ends it (`SessionTracker.adopt_restored`)."""
        if self.peers or any(self.tables.values()):
            raise ValueError("a RIB is restored only into an empty one")
        ids: dict[int, int] = {}
        for stored in peers:
            peer = self.add_peer(stored.address, stored.local_address)
            ids[stored.id] = peer.id
            peer.asn, peer.local_asn, peer.router_id = stored.asn, stored.local_asn, stored.router_id
            peer.state, peer.possibly_stale = stored.state, stored.possibly_stale
            peer.generation = stored.generation
            peer.sessions_seen = max(stored.sessions_seen, stored.generation)  # a new session's OPEN comes after
        self._all_changed = True
        renamed: dict[int, Path] = {}
        with_routes: set[int] = set()
        count = 0
        tracking, self.track_changes = self.track_changes, False  # a FIB starts from the whole table, not changes
        for family, prefixes, path_id, path in routes:
            if ids[path.peer] != path.peer:
                moved = renamed.get(id(path))
                if moved is None:
                    moved = renamed[id(path)] = replace(path, peer=ids[path.peer])
                path = moved
            self.announce(family, prefixes, None if path_id is None else [path_id] * len(prefixes), path)
            with_routes.add(path.peer)
            count += len(prefixes)
        self.stats = RibStats()  # nothing was announced on the wire
        if stale_until is not None:
            for peer_id in with_routes:
                peer = self.peers[peer_id]
                peer.state = PeerState.STALE
                peer.stale_deadline = stale_until
        self.commit()
        self.track_changes = tracking
        return count

    # -- best path -----------------------------------------------------------------------------------------
    def best(self, family: AfiSafi, prefix: bytes) -> tuple[Source, Path, Reason] | None:
        """The best path of a prefix as of the last commit (single paths are always current)."""
        table = self.tables.get(family)
        current = None if table is None else table.get(prefix)
        if current is None:
            return None
        if type(current) is Path:
            return (current.peer, None), current, Reason.ONLY_PATH
        decision = self.decisions[family].get(prefix)
        if decision is None or decision[0] not in current:  # type: ignore[operator]
            return None
        return decision[0], current[decision[0]], decision[1]  # type: ignore[index]

    def take_changed_prefixes(self) -> dict[AfiSafi, set[bytes]] | None:
        """The prefixes whose paths changed, or whose best path `commit` settled, since the last call, by family.
        None when any prefix may have changed: the first call, a restore, new OSPF routes. What a store needs to
        write only what changed (sniffroute.saved_rib)."""
        changed = None if self._changed is None or self._all_changed else self._changed
        self._changed, self._all_changed = {}, False
        return changed

    def _remember(self, family: AfiSafi, prefixes: Iterable[bytes]) -> None:
        """Note the best path before a change, once per commit, so the change record can name it."""
        old = self._old_best
        for prefix in prefixes:
            key = (family, prefix)
            if key not in old:
                best = self.best(family, prefix)
                old[key] = best[1] if best else None

    def commit(self) -> list[RouteChange]:
        """Settle best paths for prefixes with several paths; return best-path changes when tracking them."""
        for family, dirty in self._dirty.items():
            if not dirty:
                continue
            table = self.tables[family]
            decisions = self.decisions[family]
            if self._changed is not None:  # noted again as settled: a save taken before a failed commit missed it
                _note_changed(self._changed, family, dirty)
            for prefix in dirty:
                current = table.get(prefix)
                if type(current) is dict:
                    decisions[prefix] = (
                        self.decide(current) if len(current) > 1 else (next(iter(current)), Reason.ONLY_PATH)
                    )
                else:
                    decisions.pop(prefix, None)
            dirty.clear()
        if not self._old_best:
            return []
        changes = []
        for (family, prefix), old in self._old_best.items():
            now = self.best(family, prefix)
            new = now[1] if now else None
            if new is not old:
                changes.append(RouteChange(family, prefix, old, new, now[2] if now else None))
        self._old_best.clear()
        return changes

    def decide(self, sources: dict[Source, Path]) -> tuple[Source, Reason]:
        """RFC 4271 9.1.2.2: eliminate step by step; the reason is the step that left a single candidate."""
        candidates = list(sources.items())
        steps: list[tuple[Reason, Callable[[list[tuple[Source, Path]]], list[tuple[Source, Path]]]]] = [
            (Reason.LOCAL_PREF, lambda c: _keep_min(c, lambda s, p: -_local_pref(p))),
            (Reason.AS_PATH, lambda c: _keep_min(c, lambda s, p: as_path_length(p.attrs.as_path))),
            (Reason.ORIGIN, lambda c: _keep_min(c, lambda s, p: _origin(p))),
            (Reason.MED, _med_step),
            (Reason.EBGP, lambda c: _keep_min(c, lambda s, p: 0 if self.peers[p.peer].ebgp else 1)),
            (Reason.IGP_COST, lambda c: _keep_min(c, lambda s, p: self._cost(p))),
            (Reason.ROUTER_ID, lambda c: _keep_min(c, lambda s, p: self._router_id_key(p))),
            (Reason.CLUSTER_LIST, lambda c: _keep_min(c, lambda s, p: len(p.attrs.cluster_list))),
            (
                Reason.PEER_ADDRESS,
                lambda c: _keep_min(c, lambda s, p: _address_key(self.peers[p.peer].address)),
            ),
            (Reason.PATH_ID, lambda c: _keep_min(c, lambda s, p: s[1] if s[1] is not None else -1)),
        ]
        for reason, step in steps:
            candidates = step(candidates)
            if len(candidates) == 1:
                return candidates[0][0], reason
        return candidates[0][0], Reason.PATH_ID

    def _cost(self, path: Path) -> int:
        cost = self._igp_cost(path.next_hop)
        return cost if cost is not None else 0

    def _router_id_key(self, path: Path) -> tuple[int, ...]:
        # RFC 4456 9: a reflected route is compared by its ORIGINATOR_ID instead of the peer's router ID.
        router_id = path.attrs.originator_id or self.peers[path.peer].router_id or "255.255.255.255"
        return _address_key(router_id)

    # -- reading ---------------------------------------------------------------------------------------------
    def routes(self, family: AfiSafi | None = None) -> Iterator[tuple[AfiSafi, bytes, Source, Path, Reason | None]]:
        """Every path: (family, prefix, source, path, reason if it is the best path else None).

        Call commit() first for current decisions."""
        for fam, table in self.tables.items():
            if family is not None and fam != family:
                continue
            decisions = self.decisions[fam]
            for prefix, current in table.items():
                if type(current) is Path:
                    yield fam, prefix, (current.peer, None), current, Reason.ONLY_PATH
                    continue
                decision = decisions.get(prefix)
                for source, path in current.items():  # type: ignore[union-attr]
                    best = decision is not None and decision[0] == source
                    yield fam, prefix, source, path, decision[1] if best else None  # type: ignore[index]

    # -- OSPF routes and the choice between protocols ---------------------------------------------------------
    def set_ospf_routes(self, routes: Iterable[OspfRoute]) -> int:
        """Replace the OSPF routes; returns how many prefixes changed. Every BGP decision is re-run, since IGP
        costs to next hops may have moved."""
        new: dict[AfiSafi, dict[bytes, OspfRoute]] = {}
        for route in routes:
            afi, prefix = prefix_from_text(str(route.prefix))
            new.setdefault((afi, 1), {})[prefix] = route
        changed = 0
        for family in new.keys() | self.ospf.keys():
            before, after = self.ospf.get(family, {}), new.get(family, {})
            changed += sum(1 for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        if changed:
            self.ospf = new
            self._all_changed = True  # IGP costs and the protocol chosen may move for any prefix
            for family, decisions in self.decisions.items():
                self._dirty[family].update(decisions)
        return changed

    def ospf_cost(self, address: str | None) -> int | None:
        """The OSPF metric to `address` (longest match), or None when OSPF has no route to it."""
        if address is None or not self.ospf:
            return None
        try:
            afi, candidates = covering_prefixes(address)
        except ValueError:
            return None
        table = self.ospf.get((afi, 1), {})
        for prefix in candidates:
            route = table.get(prefix)
            if route is not None:
                return route.metric
        return None

    def bgp_distance(self, path: Path) -> int:
        ebgp = self.peers[path.peer].ebgp
        return self.distances.ibgp if ebgp is False else self.distances.ebgp

    def sole_bgp_path(self, family: AfiSafi, prefix: bytes) -> Path | None:
        """The prefix's path when it has exactly one BGP path and its family no OSPF routes: then that path is the
        selected route, with no decision to consult (the common case of a big table). None otherwise."""
        if family in self.ospf:
            return None
        table = self.tables.get(family)
        current = None if table is None else table.get(prefix)
        return current if type(current) is Path else None

    def selected_protocol(self, family: AfiSafi, prefix: bytes) -> str | None:
        """Which protocol's route the Loc-RIB uses for the prefix: "bgp", "ospf" or None."""
        return self.selected(family, prefix)[0]

    def selected(self, family: AfiSafi, prefix: bytes) -> tuple[str | None, tuple[Source, Path, Reason] | None]:
        """The selected protocol, and the BGP best path (whichever protocol wins): one lookup for both."""
        best = self.best(family, prefix)
        ospf_table = self.ospf.get(family)
        ospf = ospf_table.get(prefix) if ospf_table else None
        if best is None:
            return ("ospf" if ospf is not None else None), None
        if ospf is not None and self.distances.ospf < self.bgp_distance(best[1]):
            return "ospf", best
        return "bgp", best

    def longest_match(self, address: str) -> tuple[AfiSafi, bytes] | None:
        """The most specific unicast prefix in the RIB that covers `address`, or None."""
        afi, candidates = covering_prefixes(address)
        families = [f for f in self.tables if f[0] == afi]
        for prefix in candidates:
            for family in families:
                if prefix in self.tables[family]:
                    return family, prefix
        return None

    def count(self, family: AfiSafi | None = None) -> int:
        total = 0
        for fam, table in self.tables.items():
            if family not in (None, fam):
                continue
            entries = table.values()
            several = countOf(map(type, entries), dict)  # counted in C: most prefixes have a single Path
            total += len(table) - several
            if several:
                total += sum(len(entry) for entry in entries if type(entry) is dict)  # type: ignore[arg-type]
        return total

    def prefix_count(self) -> dict[AfiSafi, int]:
        return {family: len(table) for family, table in self.tables.items() if table}


def _note_changed(changed: dict[AfiSafi, set[bytes]], family: AfiSafi, prefixes: Iterable[bytes]) -> None:
    keys = changed.get(family)
    if keys is None:
        keys = changed[family] = set()
    keys.update(prefixes)


def _keep_min(
    candidates: list[tuple[Source, Path]], key: Callable[[Source, Path], object]
) -> list[tuple[Source, Path]]:
    keys = [key(s, p) for s, p in candidates]
    low = min(keys)  # type: ignore[type-var]
    return [c for c, k in zip(candidates, keys, strict=True) if k == low]


def _local_pref(path: Path) -> int:
    value = path.attrs.local_pref
    return DEFAULT_LOCAL_PREF if value is None else value


def _origin(path: Path) -> int:
    value = path.attrs.origin
    return 2 if value is None else value


def _med_step(candidates: list[tuple[Source, Path]]) -> list[tuple[Source, Path]]:
    """RFC 4271 9.1.2.2 c: among routes from the same neighbouring AS, only the lowest MED stays."""
    lowest: dict[int | None, int] = {}
    for _, path in candidates:
        asn = neighbor_as(path.attrs.as_path)
        med = path.attrs.med or 0  # a missing MED is the lowest possible value (RFC 4271 9.1.2.2 c)
        if asn not in lowest or med < lowest[asn]:
            lowest[asn] = med
    return [(s, p) for s, p in candidates if (p.attrs.med or 0) == lowest[neighbor_as(p.attrs.as_path)]]


def _address_key(address: str) -> tuple[int, ...]:
    """Numeric order for IPv4 and IPv6 text (IPv4 first)."""
    import ipaddress

    ip = ipaddress.ip_address(address)
    return (ip.version, int(ip))
