"""Plain-data views of the pipeline for `replay` summaries and `peers` (the keys are documented in README.md)."""

from __future__ import annotations

from typing import Any

from parsers.bgp.constants import family_name
from parsers.bgp.open import Open, capability_name
from sniffroute.pipeline import Pipeline
from sniffroute.sessions import Session, Speaker

MAX_SHOWN_PROBLEMS = 20


def speaker_view(speaker: Speaker) -> dict[str, Any]:
    flow = speaker.flow
    opened: Open | None = speaker.open
    ctx = speaker.ctx
    peer = speaker.peer
    return {
        "address": flow.src,
        "port": flow.sport,
        "asn": opened.asn if opened else (peer.asn if peer else None),
        "router_id": opened.router_id if opened else None,
        "hold_time": opened.hold_time if opened else None,
        "capabilities": sorted({capability_name(c.code) for c in opened.capabilities}) if opened else None,
        "context": None
        if ctx is None
        else {
            "as4": ctx.as4,
            "add_path": sorted(family_name(f) for f in ctx.add_path),
            "extended_message": ctx.extended_message,
            "inferred": ctx.inferred,
        },
        "messages": dict(speaker.messages),
        "gaps": speaker.gaps,
        "end_of_rib": sorted(family_name(f) for f in speaker.end_of_rib),
        "state": peer.state.value if peer else None,
    }


def session_view(session: Session) -> dict[str, Any]:
    client = session.client
    notification = session.notification
    return {
        "id": session.conn_id,
        "endpoints": [f"{client.src}:{client.sport}", f"{client.dst}:{client.dport}"],
        "state": session.state,
        "started": session.started,
        "ended": session.ended,
        "end_reason": session.end_reason,
        "notification": None
        if notification is None
        else {
            "from": session.notification_from,
            "code": notification.code,
            "subcode": notification.subcode,
            "text": notification.describe(),
            "shutdown_message": notification.shutdown_message,
        },
        "inferred": session.inferred,
        "speakers": [speaker_view(s) for s in session.speakers.values()],
    }


def replay_summary(pipeline: Pipeline, captures: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    frames = pipeline.stats
    bgp = pipeline.sessions.stats
    streams = pipeline.streams.stats
    rib = pipeline.rib
    best = {family_name(f): n for f, n in rib.prefix_count().items()}
    return {
        "captures": captures,
        "frames": frames.frames,
        "bytes": frames.bytes,
        "truncated_frames": frames.truncated_frames,
        "tcp_segments": frames.tcp_segments,
        "bgp_segments": frames.bgp_segments,
        "ospf_packets": frames.ospf_packets,
        "skipped": dict(frames.skipped),
        "internal_errors": frames.internal_error_count,
        "internal_error_examples": frames.internal_errors,
        "streams": {
            "connections": streams.connections,
            "out_of_order_segments": streams.out_of_order,
            "duplicate_bytes": streams.duplicate_bytes,
            "gaps": streams.gaps,
            "gap_bytes": streams.gap_bytes,
        },
        "messages": dict(bgp.messages),
        "announced": dict(bgp.announced),
        "withdrawn": dict(bgp.withdrawn),
        "end_of_rib": dict(bgp.end_of_rib),
        "sessions": [session_view(s) for s in pipeline.sessions.all_sessions()],
        "rib": {
            "paths": rib.count(),
            "prefixes": best,
            "peers": len(rib.peers),
            "possibly_stale_peers": sorted(p.address for p in rib.peers.values() if p.possibly_stale),
            "attribute_sets": len(pipeline.sessions.cache),
        },
        "ospf": ospf_summary(pipeline),
        "errors": {
            "count": bgp.error_count,
            "by_action": dict(bgp.actions),
            "first": [e.describe() for e in bgp.errors],
        },
        "seconds": round(seconds, 3),
    }


def ospf_summary(pipeline: Pipeline) -> dict[str, Any]:
    """OSPF packets and LSAs by type, checksum and authentication results, the LSDB and the SPF viewpoint."""
    ospf = pipeline.ospf
    stats = ospf.stats
    return {
        "packets": dict(sorted(stats.packets.items())),
        "lsas": dict(sorted(stats.lsas.items())),
        "decode_errors": stats.decode_errors,
        "packet_checksum_failures": stats.packet_checksum_failures,
        "lsa_checksum_failures": stats.lsa_checksum_failures,
        "auth_failures": stats.auth_failures,
        "auth_unverified": stats.auth_unverified,
        "lsdb": {
            "lsas": ospf.lsa_count(),
            "installed": stats.installed,
            "refreshes": stats.refreshes,
            "duplicates": stats.duplicates,
            "flushes": stats.flushes,
            "aged_out": stats.aged_out,
        },
        "viewpoint": ospf.root_description(),
        "routes": sum(len(table) for table in pipeline.rib.ospf.values()),
        "spf_runs": ospf.spf_runs,
        "notes": list(ospf.notes),
        "problems": [f"{where}: {error}" for _now, where, error in list(stats.problems)[:MAX_SHOWN_PROBLEMS]],
    }
