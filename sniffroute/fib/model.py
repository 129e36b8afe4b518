"""Backend-neutral records for route flows: what a flow matches, what it does, and the ops that change a switch.

Every record is a value: compared by value, hashable, and never changed once made (shared between routes and
used as dict keys). A flow read back from the switch (flow stats, translated by the backend into these records)
therefore equals the flow we planned when the switch holds exactly that flow. Backends must canonicalise what
they read back: lower-case MACs, networks with host bits clear, actions in the order listed here (dec TTL, source
MAC, destination MAC, VLAN, output).

The records made once per route (RouteEntry, FlowMatch, FlowSpec, FlowOp) are not `frozen` dataclasses only
because a frozen dataclass's __init__ costs three times as much, and a full table makes 100,000 of each; the rest
are frozen.

Route flows never time out (no idle or hard timeout): after a controller restart the switch keeps forwarding.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum

from parsers.frames import EtherType
from sniffroute.tunnel import PUNT_PRIORITY, ROUTE_BASE_PRIORITY

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cookies tell our flows apart from everything else on the switch. Route flows carry ROUTE_COOKIE; the punt
# flows of the tunnel carry their own. The diff only ever touches flows whose cookie, masked, is ROUTE_COOKIE.
ROUTE_COOKIE = 0x5E1F_0002
ROUTE_COOKIE_MASK = 0xFFFF_FFFF_FFFF_FFFF

# Select groups for ECMP live in their own id range (OpenFlow 1.3 group ids stop at OFPG_MAX = 0xffffff00);
# a group outside the range is not ours and the diff leaves it alone.
ROUTE_GROUP_BASE = 0x5E00_0000
ROUTE_GROUP_SPAN = 1 << 24
MAX_PREFIX_LENGTH = 128

# The invariant the whole router relies on: the most specific route flow stays below every punt flow.
if not ROUTE_BASE_PRIORITY + MAX_PREFIX_LENGTH < PUNT_PRIORITY:
    raise RuntimeError("route priorities overlap the punt band")


def network_from_int(version: int, value: int, length: int) -> Network:
    """The network of `value` cut to `length` bits (host bits cleared), equal in every respect to what
    `ipaddress.ip_network((value, length), strict=False)` returns, at a third of the cost: a full table builds
    100,000 of them (wire prefixes, flows read back), and the constructor's parsing and checks dominate.
    Lengths must be valid for the version (callers read them from the wire and check them)."""
    width = 32 if version == 4 else 128
    if not _FAST_NETWORKS or length >= width - 1:  # ipaddress gives /31, /32, /127, /128 extra attributes
        kind = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
        return kind((value >> (width - length) << (width - length) if length else 0, length))
    netmasks = _NETMASKS_V4 if version == 4 else _NETMASKS_V6
    netmask, mask = netmasks[length]
    network = object.__new__(ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network)
    address = object.__new__(ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address)
    address._ip = value & mask  # in range: masked to the width
    if version == 6:
        address._scope_id = None
    network.network_address = address
    network.netmask = netmask
    network._prefixlen = length
    return network


def _netmasks(width: int, address: type) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    masks = [((1 << width) - 1) ^ ((1 << (width - n)) - 1) for n in range(width + 1)]
    return [(address(mask), mask) for mask in masks]


_NETMASKS_V4 = _netmasks(32, ipaddress.IPv4Address)
_NETMASKS_V6 = _netmasks(128, ipaddress.IPv6Address)
_FAST_NETWORKS = False


def _fast_networks_agree() -> bool:
    """The shortcut sets the attributes `ipaddress` sets; should a Python version do otherwise, it is not used."""

    def facts(network: Network) -> tuple[object, ...]:
        address = network.network_address
        return network, hash(network), str(network), network.netmask, vars(network), hash(address), repr(address)

    samples = ((4, 0x0A0B0C0D, 24), (4, 0, 0), (4, 0xC0A80000, 16), (6, 0x20010DB8 << 96 | 0xFFFF, 64), (6, 0, 0))
    for version, value, length in samples:
        kind = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
        if facts(network_from_int(version, value, length)) != facts(kind((value, length), strict=False)):
            return False
    return True


_FAST_NETWORKS = _fast_networks_agree()


def route_priority(prefix: Network) -> int:
    """Base plus prefix length: the switch's highest-priority match is then the longest prefix match."""
    return ROUTE_BASE_PRIORITY + prefix.prefixlen


ETH_TYPE_IPV4 = int(EtherType.IPV4)
ETH_TYPE_IPV6 = int(EtherType.IPV6)


def eth_type_of(prefix: Network) -> int:
    return ETH_TYPE_IPV4 if prefix.version == 4 else ETH_TYPE_IPV6


def is_route_group(group_id: int) -> bool:
    return ROUTE_GROUP_BASE <= group_id < ROUTE_GROUP_BASE + ROUTE_GROUP_SPAN


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What the switch protocol of a backend can express; passed in as data, never guessed."""

    name: str
    dec_ttl: bool  # OpenFlow 1.3 dec_nw_ttl; OpenFlow 1.0 has no TTL action
    ipv6: bool  # match IPv6 destinations (OpenFlow 1.0 cannot without Nicira extensions)
    select_groups: bool  # OpenFlow 1.3 select groups for ECMP
    max_buckets: int = 16


OPENFLOW_10 = Capabilities(name="OpenFlow 1.0", dec_ttl=False, ipv6=False, select_groups=False)
OPENFLOW_13 = Capabilities(name="OpenFlow 1.3", dec_ttl=True, ipv6=True, select_groups=True)


@dataclass(slots=True, unsafe_hash=True)
class RouteEntry:
    """A selected route from the RIB; next hops already resolved recursively to directly connected addresses.

    An IPv6 link-local next hop names its interface as a scope: ``fe80::1%tap1``."""

    prefix: Network
    next_hops: tuple[str, ...]
    protocol: str
    distance: int


# -- match ---------------------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class FlowMatch:
    """A route flow's match: frames to the router MAC, of one ingress VLAN (None: untagged), to a prefix.

    The VLAN is matched exactly (OpenFlow 1.0 cannot say "any tag"), so one route has one flow per VLAN the
    router interfaces use; the VLAN actions differ between them (push, rewrite or pop)."""

    eth_dst: str
    vlan: int | None
    eth_type: int
    dst: Network
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Flow keys are hashed many times per route; an ip_network hashes slowly, so compute it once.
        dst = self.dst
        value = hash((self.eth_dst, self.vlan, self.eth_type, int(dst.network_address), dst.prefixlen))
        self._hash = value

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        # A reconcile compares every planned match with one read back: unequal hashes answer most of the unequal
        # ones at once, and the slow network comparison comes last.
        if self is other:
            return True
        if type(other) is not FlowMatch:
            return NotImplemented
        return (
            self._hash == other._hash
            and self.eth_type == other.eth_type
            and self.vlan == other.vlan
            and self.eth_dst == other.eth_dst
            and self.dst == other.dst
        )


# -- actions -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecTtl:
    """Decrement the IPv4 TTL / IPv6 hop limit (OpenFlow 1.3 dec_nw_ttl)."""


@dataclass(frozen=True, slots=True)
class SetEthSrc:
    mac: str


@dataclass(frozen=True, slots=True)
class SetEthDst:
    mac: str


@dataclass(frozen=True, slots=True)
class PushVlan:
    """Tag an untagged frame with `vid` (OpenFlow 1.3 push_vlan + set_field; 1.0 set_vlan_vid)."""

    vid: int


@dataclass(frozen=True, slots=True)
class SetVlanVid:
    """Rewrite the VID of a tagged frame."""

    vid: int


@dataclass(frozen=True, slots=True)
class PopVlan:
    """Remove the tag (OpenFlow 1.3 pop_vlan; 1.0 strip_vlan)."""


@dataclass(frozen=True, slots=True)
class Output:
    port: int


@dataclass(frozen=True, slots=True)
class ToController:
    """Send the whole frame to the controller (connected subnets: the destination still needs resolving)."""


@dataclass(frozen=True, slots=True)
class ToGroup:
    group_id: int


Action = DecTtl | SetEthSrc | SetEthDst | PushVlan | SetVlanVid | PopVlan | Output | ToController | ToGroup
_SHARED_ACTIONS: dict[tuple[Action, ...], tuple[Action, ...]] = {}
SHARED_ACTIONS_LIMIT = 65536


def shared_actions(actions: tuple[Action, ...]) -> tuple[Action, ...]:
    """One tuple object per distinct action list, for the planner and the flows read back alike: comparing a
    plan with the switch's flow then finds the actions identical without comparing them one by one."""
    shared = _SHARED_ACTIONS.get(actions)
    if shared is None:
        if len(_SHARED_ACTIONS) >= SHARED_ACTIONS_LIMIT:
            _SHARED_ACTIONS.clear()
        shared = _SHARED_ACTIONS[actions] = actions
    return shared


# -- flows and groups ----------------------------------------------------------------------------------------

FlowKey = tuple[int, FlowMatch]  # (priority, match): what modify-strict and delete-strict address


@dataclass(slots=True, unsafe_hash=True)
class FlowSpec:
    cookie: int
    priority: int
    match: FlowMatch
    actions: tuple[Action, ...]

    @property
    def key(self) -> FlowKey:
        return (self.priority, self.match)


@dataclass(frozen=True, slots=True)
class Bucket:
    weight: int
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """An OpenFlow 1.3 select group: one bucket per equal-cost next hop."""

    group_id: int
    buckets: tuple[Bucket, ...]


# -- ops -----------------------------------------------------------------------------------------------------


class FlowCommand(Enum):
    ADD = "add"
    MODIFY_STRICT = "modify-strict"
    DELETE_STRICT = "delete-strict"


class GroupCommand(Enum):
    ADD = "add"
    MODIFY = "modify"
    DELETE = "delete"


@dataclass(slots=True, unsafe_hash=True)
class FlowOp:
    command: FlowCommand
    flow: FlowSpec


@dataclass(frozen=True, slots=True)
class GroupOp:
    command: GroupCommand
    group: GroupSpec


@dataclass(frozen=True, slots=True)
class Barrier:
    """Send a barrier request; when its reply comes, call `Fib.confirm(seq)`. Errors for the ops before it
    arrive before the reply (OpenFlow processes a connection's messages in order)."""

    seq: int


Op = FlowOp | GroupOp | Barrier
