"""Next-hop resolution: which next hop has which MAC behind which router interface. A pure state machine.

Inputs: neighbour observations (ARP/ND the pipeline sees, kernel neighbour tables read by an edge), which
addresses routes want, and `now`. Outputs: resolution requests ("resolve X on interface Y") for the edge to act
on (through the TAP, so the kernel does ARP/ND), backed off and bounded per address; an address that never
answers is FAILED after `max_tries` and then asked about only every `failed_retry` seconds. The table holds at
most `max_neighbours` entries: when full, the least recently used entry no route wants is evicted, and when
every entry is wanted the newcomer is refused (and reported by the caller).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum

from sniffroute.fib.model import IpAddress

NeighbourKey = tuple[IpAddress, int]  # (address, interface number): link-local addresses repeat across links


class NeighbourState(Enum):
    UNRESOLVED = "unresolved"
    RESOLVED = "resolved"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolverLimits:
    max_neighbours: int = 4096
    max_tries: int = 5
    first_backoff: float = 1.0  # seconds before the second request; doubles per try
    max_backoff: float = 30.0
    failed_retry: float | None = 60.0  # None: a failed next hop is only revived by an observation
    max_requests_per_call: int = 64  # a burst of new next hops is spread over several calls


@dataclass(frozen=True, slots=True, kw_only=True)
class NeighbourObservation:
    """A neighbour seen: from an ARP/ND frame on a switch port (and VLAN), or from a kernel neighbour table."""

    address: IpAddress
    mac: str
    port: int
    vlan: int | None
    source: str = "arp"


@dataclass(frozen=True, slots=True)
class ResolveRequest:
    """Ask the kernel to resolve `address` on the TAP named `interface` (ARP / ND through the TAP)."""

    address: IpAddress
    interface: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A read-only view of one entry."""

    address: IpAddress
    interface: int
    state: NeighbourState
    mac: str | None
    tries: int
    source: str | None


@dataclass(slots=True)
class _Entry:
    address: IpAddress
    interface: int
    state: NeighbourState
    mac: str | None
    tries: int
    next_try: float
    last_used: float
    wanted: bool
    source: str | None

    def view(self) -> Neighbour:
        return Neighbour(self.address, self.interface, self.state, self.mac, self.tries, self.source)


class NeighbourTable:
    def __init__(self, interface_names: tuple[str, ...], limits: ResolverLimits | None = None) -> None:
        self.limits = limits or ResolverLimits()
        self._names = interface_names
        self._entries: dict[NeighbourKey, _Entry] = {}  # insertion order = least recently touched first
        self.evicted: list[NeighbourKey] = []  # drained by the owner, which withdraws what used them
        self.refused = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: NeighbourKey) -> Neighbour | None:
        entry = self._entries.get(key)
        return None if entry is None else entry.view()

    def neighbours(self) -> list[Neighbour]:
        return [entry.view() for entry in self._entries.values()]

    def want(self, key: NeighbourKey, now: float) -> Neighbour | None:
        """A route needs this next hop. None when the table is full of wanted entries (refused)."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._insert(key, now)
            if entry is None:
                return None
        entry.wanted = True
        entry.last_used = now
        return entry.view()

    def claim(self, key: NeighbourKey, now: float) -> tuple[NeighbourState, str | None, int] | None:
        """`want` for the planning loop: (state, MAC, tries) without building a view; None when refused."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._insert(key, now)
            if entry is None:
                return None
        entry.wanted = True
        entry.last_used = now
        return entry.state, entry.mac, entry.tries

    def release(self, key: NeighbourKey, now: float) -> None:
        """No route needs this next hop any more; it may be evicted (its MAC is kept until then)."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.wanted = False
            entry.last_used = now
            self._touch(key, entry)

    def observe(self, key: NeighbourKey, mac: str, source: str, now: float) -> bool:
        """Record a MAC seen for a neighbour; True when what forwarding uses (state or MAC) changed."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._insert(key, now)
            if entry is None:
                return False
        changed = entry.state is not NeighbourState.RESOLVED or entry.mac != mac
        entry.state = NeighbourState.RESOLVED
        entry.mac = mac
        entry.tries = 0
        entry.source = source
        entry.last_used = now
        self._touch(key, entry)
        return changed

    def forget(self, key: NeighbourKey, now: float) -> bool:
        """The neighbour is gone (kernel entry FAILED, port down): resolve it again. True when it was resolved."""
        entry = self._entries.get(key)
        if entry is None or entry.state is not NeighbourState.RESOLVED:
            return False
        entry.state = NeighbourState.UNRESOLVED
        entry.mac = None
        entry.tries = 0
        entry.next_try = now
        return True

    def requests(self, now: float) -> tuple[list[ResolveRequest], list[NeighbourKey]]:
        """Resolution requests due at `now`, and the keys that have just turned FAILED."""
        limits = self.limits
        due: list[ResolveRequest] = []
        failed: list[NeighbourKey] = []
        for key, entry in self._entries.items():
            if len(due) >= limits.max_requests_per_call:
                break
            if not entry.wanted or entry.state is NeighbourState.RESOLVED or entry.next_try > now:
                continue
            if entry.state is NeighbourState.UNRESOLVED and entry.tries >= limits.max_tries:
                entry.state = NeighbourState.FAILED
                failed.append(key)
            if entry.state is NeighbourState.FAILED:
                if limits.failed_retry is None:
                    entry.next_try = float("inf")
                    continue
                entry.next_try = now + limits.failed_retry
            else:
                entry.next_try = now + min(limits.first_backoff * 2**entry.tries, limits.max_backoff)
            entry.tries += 1
            due.append(ResolveRequest(entry.address, self._names[entry.interface], entry.tries))
        return due, failed

    def _touch(self, key: NeighbourKey, entry: _Entry) -> None:
        # Move to the end: eviction scans from the front for the least recently used unwanted entry.
        del self._entries[key]
        self._entries[key] = entry

    def _insert(self, key: NeighbourKey, now: float) -> _Entry | None:
        if len(self._entries) >= self.limits.max_neighbours and not self._evict_one():
            self.refused += 1
            return None
        address, interface = key
        entry = _Entry(address, interface, NeighbourState.UNRESOLVED, None, 0, now, now, False, None)
        self._entries[key] = entry
        return entry

    def _evict_one(self) -> bool:
        victim = next((key for key, entry in self._entries.items() if not entry.wanted), None)
        if victim is None:
            return False
        del self._entries[victim]
        self.evicted.append(victim)
        return True


def parse_next_hop(text: str) -> tuple[IpAddress, str | None] | None:
    """An address and its scope (interface name) from ``192.0.2.1`` or ``fe80::1%tap1``; None when not one."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    scope = getattr(address, "scope_id", None)
    if scope:
        address = ipaddress.IPv6Address(text.split("%", 1)[0])
    return address, scope
