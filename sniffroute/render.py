"""Human output for the CLI: aligned columns in the manner of `gobgp global rib` and `birdc show route`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _as_path_text(as_path: list[Any]) -> str:
    parts = []
    for item in as_path:
        if isinstance(item, list):
            parts.append("{" + ",".join(str(a) for a in item) + "}")
        else:
            parts.append(str(item))
    return " ".join(parts)


def _status(route: dict[str, Any]) -> str:
    mark = "*>" if route["best"] else "* "
    if route["stale"]:
        mark = "S" + mark[1]
    elif route["possibly_stale"]:
        mark = "?" + mark[1]
    return mark


def _attributes_text(route: dict[str, Any]) -> str:
    attrs = [f"origin {route['origin']}"]
    if route["med"] is not None:
        attrs.append(f"med {route['med']}")
    if route["local_pref"] is not None:
        attrs.append(f"localpref {route['local_pref']}")
    if route["communities"]:
        attrs.append("community " + " ".join(route["communities"]))
    if route["large_communities"]:
        attrs.append("large " + " ".join(route["large_communities"]))
    return ", ".join(attrs)


def route_lines(routes: Iterable[dict[str, Any]], show_reason: bool = False) -> list[str]:
    rows = []
    routes = list(routes)  # alive until the end: the ids below name the same lists throughout
    # Routes of one attribute set share its lists (sniffroute.store), so the text of their AS path and
    # attributes is made once per set: a full table has some 15,000 sets for 600,000 routes.
    texts: dict[tuple[Any, ...], tuple[str, str]] = {}
    for r in routes:
        shared = (id(r["as_path"]), id(r["communities"]), id(r["large_communities"]), r["origin"], r["med"],
                  r["local_pref"])  # fmt: skip
        text = texts.get(shared)
        if text is None:
            text = texts[shared] = (_as_path_text(r["as_path"]), _attributes_text(r))
        as_path, attrs = text
        if show_reason and r["best"] and r["reason"]:
            attrs = f"{attrs}, best: {r['reason']}"
        prefix = r["prefix"] if r["path_id"] is None else f"{r['prefix']} id {r['path_id']}"
        rows.append((_status(r), prefix, r["next_hop"] or "-", r["peer"], as_path, attrs))
    return _columns(("", "Network", "Next Hop", "Peer", "AS Path", "Attributes"), rows)


LEGEND = (
    "Status: *> best, * other path, S stale (graceful restart, or restored at a restart), "
    "? possibly stale (bytes lost in capture)"
)


def holder_lines(holder: list[dict[str, Any]]) -> list[str]:
    """The session holder's own view of its peers (what `sniffroute run` keeps up), before the sniffed view."""
    lines = ["session holder:"]
    for peer in holder:
        state = f"  {peer['address']:>39}  {peer['state']:<12}"
        if peer.get("hold_time"):
            state += f"  hold {peer['hold_time']} s"
        if peer.get("peer_router_id"):
            state += f"  router-id {peer['peer_router_id']}"
        state += f"  up {peer.get('established_count', 0)} times, {peer.get('attempts', 0)} attempts"
        if peer.get("last_error"):
            state += f"; last error: {peer['last_error']}"
        lines.append(state)
    return lines


def peer_lines(sessions: list[dict[str, Any]]) -> list[str]:
    lines = []
    for s in sessions:
        head = f"session {s['id']}  {s['endpoints'][0]} <-> {s['endpoints'][1]}  {s['state']}"
        if s["end_reason"]:
            head += f" ({s['end_reason']}"
            if s["notification"]:
                head += f": {s['notification']['text']} from {s['notification']['from']}"
            head += ")"
        if s["inferred"]:
            head += "  [context inferred: no OPEN pair in the capture]"
        lines.append(head)
        for sp in s["speakers"]:
            ctx = sp["context"] or {}
            msgs = ", ".join(f"{k} {v}" for k, v in sorted(sp["messages"].items())) or "no messages"
            lines.append(
                f"  {sp['address']:>39}  AS {sp['asn'] if sp['asn'] is not None else '?':<10}"
                f"  router-id {sp['router_id'] or '?':<15}  {msgs}"
            )
            if sp["capabilities"]:
                lines.append(f"  {'':>39}  capabilities: {', '.join(sp['capabilities'])}")
            if ctx:
                flags = ["as4" if ctx["as4"] else "as2"]
                if ctx["add_path"]:
                    flags.append("add-path " + " ".join(ctx["add_path"]))
                if ctx["extended_message"]:
                    flags.append("extended-message")
                lines.append(f"  {'':>39}  decoding: {', '.join(flags)}")
    return lines


def summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    for capture in summary["captures"]:
        line = f"{capture['file']}: {capture['frames']} frames"
        if capture.get("truncated"):
            line += f" -- {capture['truncated']}"
        lines.append(line)
    lines.append(
        f"frames {summary['frames']}, TCP segments {summary['tcp_segments']}, BGP segments {summary['bgp_segments']}"
    )
    msgs = summary["messages"]
    lines.append("BGP messages: " + (", ".join(f"{k} {v}" for k, v in sorted(msgs.items())) or "none"))
    for label, key in (("announced", "announced"), ("withdrawn", "withdrawn"), ("End-of-RIB", "end_of_rib")):
        if summary[key]:
            lines.append(f"{label}: " + ", ".join(f"{k} {v}" for k, v in sorted(summary[key].items())))
    streams = summary["streams"]
    if streams["gaps"]:
        lines.append(
            f"GAPS: {streams['gaps']} ({streams['gap_bytes']} bytes never seen); routes of "
            + ", ".join(summary["rib"]["possibly_stale_peers"] or ["-"])
            + " are marked possibly stale"
        )
    rib = summary["rib"]
    lines.append(
        f"BGP RIB: {rib['paths']} paths from {rib['peers']} peers, best: "
        + (", ".join(f"{k} {v}" for k, v in sorted(rib["prefixes"].items())) or "none")
        + f"; {rib['attribute_sets']} distinct attribute sets"
    )
    lines.extend(ospf_summary_lines(summary["ospf"], summary["ospf_packets"]))
    lines.append(f"sessions: {len(summary['sessions'])}")
    for s in summary["sessions"]:
        speakers = " / ".join(
            f"{sp['address']} AS {sp['asn'] if sp['asn'] is not None else '?'}" for sp in s["speakers"]
        )
        end = s["end_reason"] or s["state"]
        if s["notification"]:
            end += f": {s['notification']['text']}"
        lines.append(f"  {s['id']}: {speakers} -- {end}{' [inferred]' if s['inferred'] else ''}")
    errors = summary["errors"]
    if errors["count"]:
        lines.append(f"errors: {errors['count']} ({', '.join(f'{k} {v}' for k, v in errors['by_action'].items())})")
        lines.extend(f"  {e}" for e in errors["first"][:10])
    if summary["internal_errors"]:
        lines.append(f"internal errors (frames skipped, please report): {summary['internal_errors']}")
        lines.extend(f"  {e}" for e in summary["internal_error_examples"][:10])
    lines.append(f"done in {summary['seconds']} s")
    return lines


def ospf_summary_lines(ospf: dict[str, Any], packets: int) -> list[str]:
    if not packets:
        return []
    counts = ", ".join(f"{k} {v}" for k, v in ospf["packets"].items())
    lines = [f"OSPF packets: {counts}"]
    if ospf["lsas"]:
        lines.append("OSPF LSAs in updates: " + ", ".join(f"{k} {v}" for k, v in ospf["lsas"].items()))
    failures = {
        "undecodable": ospf["decode_errors"],
        "bad packet checksum": ospf["packet_checksum_failures"],
        "bad LSA checksum": ospf["lsa_checksum_failures"],
        "authentication failed": ospf["auth_failures"],
        "authentication not verifiable (no key)": ospf["auth_unverified"],
    }
    if any(failures.values()):
        lines.append("OSPF problems: " + ", ".join(f"{k} {v}" for k, v in failures.items() if v))
        lines.extend(f"  {p}" for p in ospf["problems"][:10])
    lsdb = ospf["lsdb"]
    lines.append(
        f"LSDB: {lsdb['lsas']} LSAs ({lsdb['refreshes']} refreshes, {lsdb['duplicates']} duplicates, "
        f"{lsdb['flushes']} flushed); SPF from {ospf['viewpoint']}: {ospf['routes']} routes"
    )
    lines.extend(f"  {note}" for note in ospf["notes"])
    return lines


def ospf_lines(routes: list[dict[str, Any]]) -> list[str]:
    """OSPF routes in columns, like `birdc show route protocol ospf`: type, metric(s), next hops, area."""
    rows = []
    for r in routes:
        metric = str(r["metric"]) if r["type2_metric"] is None else f"{r['metric']}/{r['type2_metric']}"
        hops = ", ".join(
            (h["address"] or "direct") + (f" ({h['interface']})" if h["interface"] else "") for h in r["next_hops"]
        )
        rows.append((_status(r), r["prefix"], r["route_type"], metric, r["area"] or "-", r["peer"], hops or "-"))
    header = ("", "Network", "Type", "Metric", "Area", "Advertiser", "Next Hops")
    return _columns(header, rows)


def lsdb_lines(rows: list[dict[str, Any]]) -> list[str]:
    """LSAs grouped by version and area, like `birdc show ospf lsadb`."""
    lines: list[str] = []
    header = ("Type", "LS ID", "Router", "Sequence", "Age", "Checksum")
    groups: dict[tuple[int, str], list[tuple[str, ...]]] = {}
    for r in rows:
        scope = f"area {r['area']}" if r["area"] else "AS scope"
        if r["link"]:
            scope += f", link {r['link']}"
        groups.setdefault((r["version"], scope), []).append(
            (r["type_name"], r["ls_id"], r["adv_router"], r["seq"], str(r["age"]), r["checksum"])
        )
    for (version, scope), group in groups.items():
        lines.append(f"OSPFv{version} {scope}")
        lines.extend("  " + line for line in _columns(header, group))
        lines.append("")
    return lines[:-1]


def _columns(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Rows aligned under `header`; the last column is left ragged."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]) for row in [header, *rows]]
