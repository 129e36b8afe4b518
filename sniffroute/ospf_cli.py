"""The OSPF side of the CLI: `sniffroute lsdb`, and `sniffroute rib --ospf-root` recomputed from the stored LSDB."""

from __future__ import annotations

import argparse
import json
import sys
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from typing import TYPE_CHECKING, Any

from sniffroute.ospf.view import Segment, Viewpoint, compute, spf_inputs
from sniffroute.render import lsdb_lines
from sniffroute.route_json import ospf_route_json
from sniffroute.store import Store, StoreError, default_db_path, stored_lsa

if TYPE_CHECKING:  # `rib --ospf-root` and `lsdb` read the store: no sniff pipeline
    from sniffroute.pipeline import Pipeline


def segments_json(pipeline: Pipeline) -> dict[str, Any]:
    """The segments seen through Hellos, so a later `rib --ospf-root PREFIX` knows the routers on them."""
    ospf = pipeline.ospf
    return {
        "v2": [
            {
                "prefix": str(prefix),
                "elects_dr": segment.elects_dr,
                "neighbors": {str(rid): str(address) for rid, address in segment.neighbors.items()},
            }
            for prefix, segment in ospf.segments.items()
        ],
        "v3_lans": [[str(dr), interface_id] for dr, interface_id in ospf.v3_lans],
    }


def _segments(store: Store) -> tuple[dict[IPv4Network, Segment], list[tuple[IPv4Address, int]]]:
    stored = store.document("ospf_segments") or {}
    segments: dict[IPv4Network, Segment] = {}
    for seen in stored.get("v2", []):
        network = ip_network(seen["prefix"])
        if isinstance(network, IPv4Network):
            neighbors = {IPv4Address(r): IPv4Address(a) for r, a in seen["neighbors"].items()}
            segments[network] = Segment(network, neighbors, seen["elects_dr"])
    return segments, [(IPv4Address(dr), interface_id) for dr, interface_id in stored.get("v3_lans", [])]


def ospf_table(
    store: Store, viewpoint: Viewpoint, prefix: str | None, address: str | None, peer: str | None
) -> list[dict[str, Any]]:
    """The OSPF routes from `viewpoint`, computed now from the stored LSAs; filtered like `rib`."""
    lsas = [stored_lsa(row) for row in store.lsas()]
    if not lsas:
        raise StoreError(f"{store.path}: no OSPF LSAs stored (replay a capture with OSPF first)")
    routes, notes = compute(spf_inputs(lsas), viewpoint, *_segments(store))
    for note in notes:
        print(f"sniffroute: {note}", file=sys.stderr)
    if prefix is not None:
        wanted = ip_network(prefix, strict=False)
        routes = [r for r in routes if r.prefix == wanted]
    elif address is not None:
        target = ip_address(address)
        covering = [r for r in routes if r.prefix.version == target.version and target in r.prefix]
        routes = [max(covering, key=lambda r: r.prefix.prefixlen)] if covering else []
    rows = [ospf_route_json(route, True) for route in routes]
    return [row for row in rows if peer is None or row["peer"] == peer]


def _type_filter(text: str | None) -> tuple[int | None, str | None]:
    """(number, name) from --type: "1", "0x2001" or a name such as "router"."""
    if text is None:
        return None, None
    try:
        return int(text, 0), None
    except ValueError:
        return None, text.lower()


def lsdb_rows(store: Store, area: str | None, kind: str | None) -> list[dict[str, Any]]:
    from parsers.ospf.lsa import lsa_type_name  # the OSPF codec loads only for the commands that read LSAs

    wanted_area = str(IPv4Address(int(area))) if area and area.isdigit() else area
    number, name = _type_filter(kind)
    rows = []
    for row in store.lsas():
        version, row_area, link, ls_type, ls_id, adv, age, installed, _raw = row
        type_name = lsa_type_name(version, ls_type)
        if wanted_area is not None and row_area != wanted_area:
            continue
        if (number is not None and ls_type != number) or (name is not None and type_name != name):
            continue
        header = stored_lsa(row)[2].header
        rows.append(
            {
                "version": version,
                "area": row_area,
                "link": link,
                "type": ls_type,
                "type_name": type_name,
                "ls_id": ls_id,
                "adv_router": adv,
                "age": age,
                "seq": f"{header.seq & 0xFFFFFFFF:#010x}",
                "checksum": f"{header.checksum:#06x}",
                "length": header.length,
                "installed": installed,
            }
        )
    return rows


def cmd_lsdb(args: argparse.Namespace) -> int:
    with Store(args.db or default_db_path(), create=False) as store:
        rows = lsdb_rows(store, args.area, args.type)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("no LSA" + (" matches" if args.area or args.type else " stored"))
        return 0
    print("\n".join(lsdb_lines(rows)))
    return 0
