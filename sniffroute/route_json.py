"""Routes as `sniffroute rib --json` shows them (DESIGN.md), from what the store holds: one dict per route, the
same keys for BGP and OSPF, and the order routes are listed in."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from parsers.bgp.attributes import PathAttributes, as_path_json, format_community, format_large
from parsers.bgp.constants import Afi, AttrCode, Origin, family_name
from parsers.bgp.nlri import prefix_to_text
from sniffroute.rib import Reason
from sniffroute.route_blocks import NO_PATH_ID, code_family

if TYPE_CHECKING:  # the OSPF modules load only when OSPF routes are shown
    from sniffroute.ospf.spf import OspfRoute

_REASONS = list(Reason)  # by the code the store keeps (sniffroute.route_blocks.REASON_CODES)
_SHARED_ATTRS = {  # shown in their own keys; other codes are listed by number
    AttrCode.ORIGIN,
    AttrCode.AS_PATH,
    AttrCode.NEXT_HOP,
    AttrCode.MULTI_EXIT_DISC,
    AttrCode.LOCAL_PREF,
    AttrCode.ATOMIC_AGGREGATE,
    AttrCode.AGGREGATOR,
    AttrCode.COMMUNITIES,
    AttrCode.ORIGINATOR_ID,
    AttrCode.CLUSTER_LIST,
    AttrCode.EXTENDED_COMMUNITIES,
    AttrCode.LARGE_COMMUNITIES,
    AttrCode.AS4_PATH,
    AttrCode.AS4_AGGREGATOR,
}

_ORIGIN_NAMES = {int(origin): origin.name.lower() for origin in Origin}


def attributes_json(attrs: PathAttributes) -> dict[str, Any]:
    """The attribute fields of a route as shown by `rib --json` (DESIGN.md)."""
    origin = attrs.origin
    return {
        "as_path": as_path_json(attrs.as_path),
        "origin": _ORIGIN_NAMES.get(origin, origin),  # type: ignore[arg-type]
        "med": attrs.med,
        "local_pref": attrs.local_pref,
        "communities": [format_community(c) for c in attrs.communities],
        "large_communities": [format_large(c) for c in attrs.large_communities],
        "ext_communities": [c.hex() for c in attrs.ext_communities],
        "atomic_aggregate": attrs.atomic_aggregate,
        "aggregator": f"{attrs.aggregator.asn}:{attrs.aggregator.address}" if attrs.aggregator else None,
        "originator_id": attrs.originator_id,
        "cluster_list": list(attrs.cluster_list),
        "other_attributes": sorted({a.code for a in attrs.attributes} - _SHARED_ATTRS),
        "errors": [str(e) for e in attrs.errors],
    }


def ospf_route_json(route: OspfRoute, best: bool) -> dict[str, Any]:
    """An OSPF route as `rib --json` shows it: the BGP keys that mean nothing for OSPF are empty."""
    hops = sorted(
        ({"address": str(h.address) if h.address is not None else None, "interface": h.interface}
         for h in route.next_hops),
        key=lambda h: (h["address"] or "", h["interface"] or ""),
    )  # fmt: skip
    family = (Afi.IPV4 if route.prefix.version == 4 else Afi.IPV6, 1)
    return {
        "prefix": str(route.prefix),
        "family": family_name(family),
        "protocol": "ospf",
        "peer": str(route.advertiser),
        "peer_as": None,
        "path_id": None,
        "next_hop": next((h["address"] for h in hops if h["address"]), None),
        "next_hop_link_local": None,
        "next_hops": hops,
        "metric": route.metric,
        "type2_metric": route.type2_metric,
        "area": str(route.area) if route.area is not None else None,
        "route_type": route.route_type.value,
        "as_path": [],
        "origin": None,
        "med": None,
        "local_pref": None,
        "communities": [],
        "large_communities": [],
        "best": best,
        "reason": None,
        "stale": False,
        "possibly_stale": False,
        "since": None,
    }


def bgp_route_json(
    code: int,
    key: bytes,
    path_id: int,
    best: int,
    reason: int | None,
    peer: str,
    peer_as: int | None,
    stale: bool,
    possibly_stale: int,
    next_hop: str | None,
    next_hop_link_local: str | None,
    since: float,
    attrs: dict[str, Any],
) -> dict[str, Any]:
    """A BGP route as `rib --json` shows it (DESIGN.md), from the stored columns of the route, its peer and path."""
    family = code_family(code)
    return {
        "prefix": prefix_to_text(family[0], key),
        "family": family_name(family),
        "protocol": "bgp",
        "peer": peer,
        "peer_as": peer_as,
        "path_id": None if path_id == NO_PATH_ID else path_id,
        "next_hop": next_hop,
        "next_hop_link_local": next_hop_link_local,
        **attrs,
        "best": bool(best),
        "reason": _REASONS[reason].value if reason is not None else None,
        "stale": stale,
        "possibly_stale": bool(possibly_stale),
        "since": since,
    }


def route_order(route: dict[str, Any]) -> tuple[Any, ...]:
    """IPv4 before IPv6, then by address, length, best first, peer, path id. inet_pton, not ipaddress: a full
    table's listing sorted 600,000 routes, and building an ip_network for each took most of its time."""
    address, _, length = route["prefix"].partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return (family == socket.AF_INET6, socket.inet_pton(family, address), int(length), not route["best"],
            route["peer"], route["path_id"] or 0)  # fmt: skip
