"""From a route and its resolved next hops to the flows (and select group) that forward it. Pure.

One flow per ingress VLAN class the router interfaces use (None: untagged), because the VLAN actions depend on
how the frame came in: push a tag, rewrite it, or pop it. Action tuples are shared between routes with the same
next hop, which keeps 100,000 routes cheap to plan and to compare.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

from sniffroute.config import RouterInterface
from sniffroute.fib.model import (
    ROUTE_COOKIE,
    ROUTE_GROUP_BASE,
    ROUTE_GROUP_SPAN,
    Action,
    Bucket,
    Capabilities,
    DecTtl,
    FlowKey,
    FlowMatch,
    FlowSpec,
    GroupSpec,
    IpAddress,
    Network,
    Output,
    PopVlan,
    PushVlan,
    SetEthDst,
    SetEthSrc,
    SetVlanVid,
    ToController,
    ToGroup,
    eth_type_of,
    route_priority,
    shared_actions,
)

GroupKey = tuple[int | None, tuple[tuple[int, IpAddress], ...]]  # (ingress VLAN, (interface, next hop)...)
ACTION_CACHE_LIMIT = 65536


class Egress(NamedTuple):
    """A resolved next hop: its address, the router interface (number) it sits behind, and its MAC.
    (A NamedTuple, like `RoutePlan`: built once per route while planning, where creation cost counts.)"""

    address: IpAddress
    interface: int
    mac: str

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.address.version, int(self.address), self.interface)


def pick_one(hops: Sequence[Egress]) -> Egress:
    """The one path used where the switch has no select groups: the lowest address, deterministically."""
    return min(hops, key=lambda hop: hop.order)


class GroupIds:
    """Stable group ids from the group's next hops (not their MACs: a MAC change modifies the group in place).

    The id is a hash in our range, probed on collision, so it survives a controller restart in the usual case."""

    def __init__(self) -> None:
        self._ids: dict[GroupKey, int] = {}
        self._keys: dict[int, GroupKey] = {}

    def acquire(self, key: GroupKey) -> int:
        gid = self._ids.get(key)
        if gid is not None:
            return gid
        digest = hashlib.blake2b(repr(key).encode(), digest_size=4).digest()
        slot = int.from_bytes(digest, "big") % ROUTE_GROUP_SPAN
        while ROUTE_GROUP_BASE + slot in self._keys:
            slot = (slot + 1) % ROUTE_GROUP_SPAN
        gid = ROUTE_GROUP_BASE + slot
        self._ids[key] = gid
        self._keys[gid] = key
        return gid

    def release(self, key: GroupKey) -> None:
        gid = self._ids.pop(key, None)
        if gid is not None:
            del self._keys[gid]


class RoutePlan(NamedTuple):
    flows: tuple[FlowSpec, ...]
    groups: tuple[tuple[GroupKey, GroupSpec], ...] = ()


class FlowPlanner:
    def __init__(self, router_mac: str, interfaces: Sequence[RouterInterface], capabilities: Capabilities) -> None:
        self.router_mac = router_mac
        self.interfaces = tuple(interfaces)
        self.capabilities = capabilities
        vlans = {interface.vlan for interface in self.interfaces}
        self.ingress_vlans: tuple[int | None, ...] = tuple(sorted(vlans, key=lambda v: -1 if v is None else v))
        self.group_ids = GroupIds()
        self._actions: dict[tuple[int, str, int | None], tuple[Action, ...]] = {}

    def keys_for(self, prefix: Network) -> tuple[FlowKey, ...]:
        """Every flow key a route for `prefix` can have: what an incremental diff compares."""
        priority, eth_type, mac = route_priority(prefix), eth_type_of(prefix), self.router_mac
        if len(self.ingress_vlans) == 1:  # the common case, kept cheap for big tables
            return ((priority, FlowMatch(mac, self.ingress_vlans[0], eth_type, prefix)),)
        return tuple((priority, FlowMatch(mac, vlan, eth_type, prefix)) for vlan in self.ingress_vlans)

    def actions(self, number: int, mac: str, ingress_vlan: int | None) -> tuple[Action, ...]:
        """The actions toward a next hop with `mac` behind router interface `number`, for frames that came in
        with `ingress_vlan` (one shared tuple per distinct answer)."""
        cache_key = (number, mac, ingress_vlan)
        cached = self._actions.get(cache_key)
        if cached is not None:
            return cached
        interface = self.interfaces[number]
        actions: list[Action] = [DecTtl()] if self.capabilities.dec_ttl else []
        actions += [SetEthSrc(self.router_mac), SetEthDst(mac)]
        if interface.vlan is None:
            if ingress_vlan is not None:
                actions.append(PopVlan())
        elif ingress_vlan is None:
            actions.append(PushVlan(interface.vlan))
        elif ingress_vlan != interface.vlan:
            actions.append(SetVlanVid(interface.vlan))
        actions.append(Output(interface.port))
        result = shared_actions(tuple(actions))
        if len(self._actions) >= ACTION_CACHE_LIMIT:
            self._actions.clear()
        self._actions[cache_key] = result
        return result

    def forward_one(self, prefix: Network, number: int, mac: str) -> RoutePlan:
        """`forward` over one next hop (router interface `number`, `mac`): the common case of big tables."""
        if len(self.ingress_vlans) == 1:
            vlan = self.ingress_vlans[0]
            match = FlowMatch(self.router_mac, vlan, eth_type_of(prefix), prefix)
            return RoutePlan((FlowSpec(ROUTE_COOKIE, route_priority(prefix), match, self.actions(number, mac, vlan)),))
        return RoutePlan(
            tuple(
                FlowSpec(ROUTE_COOKIE, priority, match, self.actions(number, mac, match.vlan))
                for priority, match in self.keys_for(prefix)
            )
        )

    def forward(self, prefix: Network, hops: Sequence[Egress]) -> RoutePlan:
        """Flows for a route over one or more resolved next hops (a select group when there are several)."""
        if len(hops) == 1:
            return self.forward_one(prefix, hops[0].interface, hops[0].mac)
        keys = self.keys_for(prefix)
        ordered = sorted(hops, key=lambda hop: hop.order)[: self.capabilities.max_buckets]
        flows: list[FlowSpec] = []
        groups: list[tuple[GroupKey, GroupSpec]] = []
        for priority, match in keys:
            key: GroupKey = (match.vlan, tuple((hop.interface, hop.address) for hop in ordered))
            gid = self.group_ids.acquire(key)
            buckets = tuple(Bucket(1, self.actions(hop.interface, hop.mac, match.vlan)) for hop in ordered)
            groups.append((key, GroupSpec(gid, buckets)))
            flows.append(FlowSpec(ROUTE_COOKIE, priority, match, (ToGroup(gid),)))
        return RoutePlan(tuple(flows), tuple(groups))

    def glean(self, prefix: Network) -> RoutePlan:
        """A connected subnet: frames to hosts not yet resolved go to the controller (punt meter bounds them)."""
        to_controller: tuple[Action, ...] = (ToController(),)
        keys = self.keys_for(prefix)
        return RoutePlan(tuple(FlowSpec(ROUTE_COOKIE, priority, match, to_controller) for priority, match in keys))
