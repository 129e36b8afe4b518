"""The link state database built from sniffed OSPF packets. Pure: packets and their capture time in, changes out.

One `Lsdb` holds both versions. Each LSA lives in a flooding scope (`ScopeKey`): an area (v2 types 1-4, 7, 10;
v3 S bits = area), the AS (v2 types 5, 11; v3 AS scope) or a link (v2 type 9; v3 link scope, e.g. Link-LSAs),
where a link is an area plus the caller's name for the segment (`link`, e.g. the VLAN tags).

What goes in:
* Link State Updates, multicast floods and unicast retransmissions alike. Each LSA is compared with the copy in
  the database by RFC 2328 13.1 (`compare_instances`: sequence number, checksum, MaxAge, age difference beyond
  MaxAgeDiff). A newer instance is installed; it is a change only when its contents differ (RFC 2328 13.2:
  options, body; a refresh with a new sequence number and the same contents is counted, not reported). A
  MaxAge instance flushes the LSA (RFC 2328 14). The same instance again is a duplicate; an older one is
  counted as stale. An LSA whose Fletcher checksum fails is never installed (RFC 2328 13 (1)) and counted
  with its location.
* Database Description, LS Request and LS Acknowledgment packets: LSA headers (or request keys) are recorded
  as "known to exist" (`known`), and never installed: they carry no contents.
* Time: the age of an installed LSA grows with `now` (capture time during replay). An LSA that nobody
  refreshes reaches MaxAge and leaves the database (`ChangeKind.AGED_OUT`); `feed` does this on the way, and
  `expire(now)` can be called on a timer.

Flushed LSAs leave a tombstone for MaxAge seconds so that a late retransmission of the old instance does not
bring it back (a real router keeps the MaxAge copy until every neighbour acknowledged it, RFC 2328 14).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from ipaddress import IPv4Address, ip_address
from typing import NamedTuple

from parsers.errors import DecodeError
from parsers.ospf.auth import AuthStatus
from parsers.ospf.lsa import DO_NOT_AGE, MAX_AGE, MAX_AGE_DIFF, Lsa, LsaHeader, LsaKey, Scope, lsa_type_name
from parsers.ospf.packet import (
    ChecksumStatus,
    DatabaseDescription,
    LinkStateAck,
    LinkStateRequest,
    LinkStateUpdate,
    OspfPacket,
    PacketType,
    decode_packet,
)
from sniffroute.ospf.stats import LsdbStats

__all__ = [
    "ChangeKind",
    "Known",
    "Lsdb",
    "LsdbChange",
    "LsdbEntry",
    "LsdbStats",
    "ScopeKey",
    "SpfInput",
    "compare_instances",
    "packet_type_name",
]

MAX_TOMBSTONES = 1024  # past this many, tombstones older than MaxAge are swept


class ScopeKey(NamedTuple):
    """Where an LSA is flooded: `area` is None for the AS scope, `link` is set for link scope only."""

    version: int
    scope: Scope
    area: IPv4Address | None
    link: str | None = None


class ChangeKind(Enum):
    ADDED = "added"
    MODIFIED = "modified"  # a newer instance with different contents
    FLUSHED = "flushed"  # a MaxAge instance was flooded (premature aging, RFC 2328 14.1)
    AGED_OUT = "aged out"  # not refreshed: its age reached MaxAge in the database


@dataclass(frozen=True, slots=True)
class LsdbChange:
    kind: ChangeKind
    scope: ScopeKey
    key: LsaKey
    old: Lsa | None
    new: Lsa | None
    now: float


@dataclass(frozen=True, slots=True)
class LsdbEntry:
    """An installed LSA with the time its instance arrived, what sent it and how often it was seen again."""

    scope: ScopeKey
    lsa: Lsa
    installed: float  # capture time of the instance's arrival
    first_seen: float  # when the LSA (any instance) was first installed
    sender: IPv4Address  # router ID in the header of the packet that brought this instance
    duplicates: int = 0  # copies of this very instance received after it was installed
    refreshes: int = 0  # newer instances with the same contents

    def age(self, now: float) -> int:
        """The LS age now (RFC 2328 14: it grows by one per second in the database, up to MaxAge)."""
        header = self.lsa.header
        if header.do_not_age:
            return header.age & ~DO_NOT_AGE
        return min(MAX_AGE, header.age + max(0, int(now - self.installed)))


@dataclass(frozen=True, slots=True)
class Known:
    """An LSA known to exist from a DD, LS Request or LS Ack (`header` is None for a request)."""

    scope: ScopeKey
    key: LsaKey
    header: LsaHeader | None
    seen: float
    sender: IPv4Address


@dataclass(frozen=True, slots=True)
class SpfInput:
    """What `sniffroute.ospf.spf.compute_routes(areas, as_scope, root)` takes, for one version."""

    areas: Mapping[IPv4Address, tuple[Lsa, ...]]
    as_scope: tuple[Lsa, ...]


def compare_instances(a: LsaHeader, a_age: int, b: LsaHeader, b_age: int) -> int:
    """RFC 2328 13.1: 1 when instance a is newer, -1 when b is, 0 when they are the same instance."""
    if a.seq != b.seq:
        return 1 if a.seq > b.seq else -1
    if a.checksum != b.checksum:
        return 1 if a.checksum > b.checksum else -1
    a_max, b_max = a_age >= MAX_AGE, b_age >= MAX_AGE
    if a_max != b_max:
        return 1 if a_max else -1
    if abs(a_age - b_age) > MAX_AGE_DIFF:
        return 1 if a_age < b_age else -1
    return 0


def _is_multicast(address: str) -> bool:
    try:
        return ip_address(address).is_multicast
    except ValueError:
        return False


def _newer(a: LsaHeader, b: LsaHeader) -> bool:
    return compare_instances(a, _header_age(a), b, _header_age(b)) > 0


def _header_age(header: LsaHeader) -> int:
    return header.age & ~DO_NOT_AGE  # DoNotAge (RFC 1793) is not part of the age


_PACKET_NAMES = {
    PacketType.HELLO: "hello",
    PacketType.DATABASE_DESCRIPTION: "database description",
    PacketType.LINK_STATE_REQUEST: "link state request",
    PacketType.LINK_STATE_UPDATE: "link state update",
    PacketType.LINK_STATE_ACK: "link state ack",
}


def packet_type_name(kind: int) -> str:
    return _PACKET_NAMES.get(kind, f"type {kind}")  # type: ignore[call-overload]


def _same_contents(a: Lsa, b: Lsa) -> bool:
    # RFC 2328 13.2: options, length and body (age, sequence and checksum left out)
    return a.header.options == b.header.options and a.header.length == b.header.length and a.body == b.body


class Lsdb:
    """Feed packets with `feed` (or raw IP payloads with `feed_payload`); read `entries`, `spf_input`, `stats`."""

    def __init__(self, keys: Mapping[int, bytes] | None = None, *, accept_bad_packet_checksum: bool = False) -> None:
        self.keys = dict(keys or {})  # v2 key ID / v3 SA ID -> secret, for verifying digests
        # A router drops a packet whose checksum fails (RFC 2328 8.2) and waits for the retransmission; a
        # sniffer may prefer to trust each LSA's own checksum instead.
        self.accept_bad_packet_checksum = accept_bad_packet_checksum
        self.stats = LsdbStats()
        self._db: dict[ScopeKey, dict[LsaKey, LsdbEntry]] = {}
        self._tombstones: dict[tuple[ScopeKey, LsaKey], tuple[LsaHeader, float]] = {}
        self._known: dict[tuple[ScopeKey, LsaKey], Known] = {}
        self._expiry: list[tuple[float, int, ScopeKey, LsaKey]] = []  # (time MaxAge is reached, seq, ...)

    # --- input

    def feed_payload(
        self, payload: bytes, now: float, *, src: str | None = None, dst: str | None = None, link: str | None = None
    ) -> list[LsdbChange]:
        """An IP payload of protocol 89 (as `parsers.frames.IpDatagram` gives it): decode, count, feed."""
        packet = self.decode(payload, now, src=src, dst=dst)
        if packet is None:
            return self.expire(now)
        return self.feed(packet, now, link=link, source=src)

    def decode(
        self, payload: bytes, now: float, *, src: str | None = None, dst: str | None = None
    ) -> OspfPacket | None:
        """Decode with this LSDB's keys, counting what fails; None for a packet that could not be decoded."""
        try:
            packet = decode_packet(payload, src=src, dst=dst, keys=self.keys)
        except DecodeError as failure:
            self.stats.decode_errors += 1
            self.stats.problems.append((now, src or "", failure.error))
            return None
        if dst is not None and isinstance(packet.body, LinkStateUpdate) and not _is_multicast(dst):
            self.stats.unicast_updates += 1
        return packet

    def feed(
        self, packet: OspfPacket, now: float, *, link: str | None = None, source: str | None = None
    ) -> list[LsdbChange]:
        """One decoded packet seen at `now`; returns the changes it caused (expiries due by `now` included)."""
        changes = self.expire(now)
        stats = self.stats
        stats.packets[f"v{packet.version} {packet_type_name(packet.type)}"] += 1
        where = source or str(packet.router_id)
        for problem in packet.problems:
            stats.problems.append((now, where, problem))
        if packet.checksum_status is ChecksumStatus.BAD:
            stats.packet_checksum_failures += 1
        if packet.auth_status in (AuthStatus.FAILED, AuthStatus.MALFORMED):
            stats.auth_failures += 1
        elif packet.auth_status is AuthStatus.UNVERIFIED:
            stats.auth_unverified += 1
        bad_checksum = packet.checksum_status is ChecksumStatus.BAD and not self.accept_bad_packet_checksum
        if bad_checksum or packet.auth_status is AuthStatus.FAILED:
            # A router drops such a packet (RFC 2328 8.2, D.5); its LSAs are counted but not installed.
            if isinstance(packet.body, LinkStateUpdate):
                self._count_lsas(packet)
            return changes
        body = packet.body
        if isinstance(body, LinkStateUpdate):
            self._count_lsas(packet)
            for lsa in body.lsas:
                change = self._receive(packet, lsa, now, link)
                if change is not None:
                    changes.append(change)
        elif isinstance(body, DatabaseDescription | LinkStateAck):
            for header in body.headers:
                self._know(packet, header.key, header, now, link)
        elif isinstance(body, LinkStateRequest):
            for kind, ls_id, adv in body.entries:
                self._know(packet, LsaKey(kind, ls_id, adv), None, now, link)
        return changes

    def _count_lsas(self, packet: OspfPacket) -> None:
        assert isinstance(packet.body, LinkStateUpdate)
        for lsa in packet.body.lsas:
            self.stats.lsas[f"v{packet.version} {lsa_type_name(packet.version, lsa.header.type)}"] += 1

    def _scope_of(self, packet: OspfPacket, header: LsaHeader, link: str | None) -> ScopeKey:
        scope = header.scope
        if scope is Scope.AS:
            return ScopeKey(packet.version, scope, None)
        if scope is Scope.LINK:
            return ScopeKey(packet.version, scope, packet.area_id, link or "")
        return ScopeKey(packet.version, Scope.AREA, packet.area_id)

    def _know(self, packet: OspfPacket, key: LsaKey, header: LsaHeader | None, now: float, link: str | None) -> None:
        if header is not None:
            scope = self._scope_of(packet, header, link)
        else:
            probe = LsaHeader(0, 0, key.type, key.ls_id, key.adv_router, 0, 0, 0, packet.version)
            scope = self._scope_of(packet, probe, link)
        previous = self._known.get((scope, key))
        # keep the newest header: a request says less than a DD header, an ack may be of an older instance
        if previous is not None and previous.header is not None and (header is None or _newer(previous.header, header)):
            header = previous.header
        self._known[(scope, key)] = Known(scope, key, header, now, packet.router_id)

    def _receive(self, packet: OspfPacket, lsa: Lsa, now: float, link: str | None) -> LsdbChange | None:
        stats = self.stats
        header = lsa.header
        if not lsa.checksum_ok:
            stats.lsa_checksum_failures += 1  # the packet's problems say where it is
            return None
        if header.version == 2 and not header.known_type:
            stats.discarded += 1  # RFC 2328 13 (2): unknown LS type
            return None
        scope = self._scope_of(packet, header, link)
        key = header.key
        table = self._db.setdefault(scope, {})
        current = table.get(key)
        age = _header_age(header)
        if current is None:
            tomb = self._tombstones.get((scope, key))
            if tomb is not None:
                order = compare_instances(header, age, tomb[0], MAX_AGE) if now - tomb[1] < MAX_AGE else 1
                if order == 0:
                    stats.duplicates += 1  # the flush itself, flooded on by a neighbour
                    return None
                if order < 0:
                    stats.stale += 1  # a late copy of the flushed instance
                    return None
                del self._tombstones[(scope, key)]
            if age >= MAX_AGE:
                stats.discarded += 1  # RFC 2328 13 (4): a MaxAge LSA we do not hold is acknowledged and dropped
                return None
            table[key] = LsdbEntry(scope, lsa, now, now, packet.router_id)
            self._schedule(scope, key, header, now)
            stats.installed += 1
            return LsdbChange(ChangeKind.ADDED, scope, key, None, lsa, now)
        order = compare_instances(header, age, current.lsa.header, current.age(now))
        if order == 0:
            table[key] = replace(current, duplicates=current.duplicates + 1)
            stats.duplicates += 1
            return None
        if order < 0:
            stats.stale += 1
            return None
        if age >= MAX_AGE:
            del table[key]
            self._tombstones[(scope, key)] = (header, now)
            stats.flushes += 1
            return LsdbChange(ChangeKind.FLUSHED, scope, key, current.lsa, None, now)
        stats.installed += 1
        self._schedule(scope, key, header, now)
        if _same_contents(current.lsa, lsa):
            stats.refreshes += 1
            table[key] = replace(
                current, lsa=lsa, installed=now, sender=packet.router_id, refreshes=current.refreshes + 1
            )
            return None
        table[key] = LsdbEntry(scope, lsa, now, current.first_seen, packet.router_id)
        return LsdbChange(ChangeKind.MODIFIED, scope, key, current.lsa, lsa, now)

    # --- aging

    def _schedule(self, scope: ScopeKey, key: LsaKey, header: LsaHeader, now: float) -> None:
        if header.do_not_age:
            return
        due = now + (MAX_AGE - _header_age(header))
        heapq.heappush(self._expiry, (due, id(header), scope, key))

    def expire(self, now: float) -> list[LsdbChange]:
        """Remove the LSAs whose age has reached MaxAge by `now` (nobody refreshed them)."""
        changes: list[LsdbChange] = []
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _due, _tag, scope, key = heapq.heappop(heap)
            table = self._db.get(scope)
            entry = table.get(key) if table else None
            if entry is None or entry.age(now) < MAX_AGE:
                continue  # a newer instance arrived since this was scheduled
            del table[key]  # type: ignore[union-attr]
            self._tombstones[(scope, key)] = (entry.lsa.header, now)
            self.stats.aged_out += 1
            changes.append(LsdbChange(ChangeKind.AGED_OUT, scope, key, entry.lsa, None, now))
        if len(self._tombstones) > MAX_TOMBSTONES:
            self._tombstones = {k: v for k, v in self._tombstones.items() if now - v[1] < MAX_AGE}
        return changes

    # --- queries

    def entries(
        self,
        *,
        version: int | None = None,
        area: IPv4Address | str | None = None,
        ls_type: int | None = None,
        scope: Scope | None = None,
    ) -> list[LsdbEntry]:
        """Installed LSAs, filtered; sorted by version, scope, area, type, link state ID, advertising router."""
        wanted_area = IPv4Address(area) if isinstance(area, str) else area
        found = []
        for key, table in self._db.items():
            if version is not None and key.version != version:
                continue
            if scope is not None and key.scope is not scope:
                continue
            if wanted_area is not None and key.area != wanted_area:
                continue
            found.extend(e for k, e in table.items() if ls_type is None or k.type == ls_type)
        return sorted(found, key=_entry_order)

    def get(self, scope: ScopeKey, key: LsaKey) -> LsdbEntry | None:
        return self._db.get(scope, {}).get(key)

    def areas(self, version: int | None = None) -> list[IPv4Address]:
        return sorted({k.area for k in self._db if k.area is not None and (version is None or k.version == version)})

    def known(self, *, missing_only: bool = False) -> list[Known]:
        """LSAs known from DD / LSR / LSAck; with `missing_only`, those not installed in a version as new."""
        found = []
        for (scope, key), item in self._known.items():
            if missing_only:
                entry = self.get(scope, key)
                if entry is not None and (
                    item.header is None
                    or compare_instances(item.header, _header_age(item.header), entry.lsa.header, entry.age(item.seen))
                    <= 0
                ):
                    continue
            found.append(item)
        return sorted(found, key=lambda k: (_scope_order(k.scope), k.key.type, int(k.key.ls_id), int(k.key.adv_router)))

    def spf_input(self, version: int = 2) -> SpfInput:
        """Current LSAs per area (link-scope ones of the area's links included) and the AS-scope ones."""
        areas: dict[IPv4Address, list[Lsa]] = {}
        as_scope: list[Lsa] = []
        for key, table in self._db.items():
            if key.version != version:
                continue
            if key.area is None:
                as_scope.extend(e.lsa for e in table.values())
            else:
                areas.setdefault(key.area, []).extend(e.lsa for e in table.values())
        return SpfInput({area: tuple(lsas) for area, lsas in sorted(areas.items())}, tuple(as_scope))

    def __len__(self) -> int:
        return sum(len(table) for table in self._db.values())


def _scope_order(scope: ScopeKey) -> tuple[int, int, int, str]:
    return (scope.version, int(scope.scope), int(scope.area) if scope.area is not None else -1, scope.link or "")


def _entry_order(entry: LsdbEntry) -> tuple[object, ...]:
    key = entry.lsa.key
    return (*_scope_order(entry.scope), key.type, int(key.ls_id), int(key.adv_router))
