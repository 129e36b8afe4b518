"""The sniff pipeline: frames in, RIB changes out. Every frame source (replay, tunnel, SPAN) feeds this one object.

frames -> TCP segments -> per-direction streams -> BGP sessions -> RIB, and
frames -> OSPF packets -> LSDB -> SPF -> RIB. Pure: the caller passes each frame's
link type, bytes and capture time, and reads the RIB, the sessions and the counters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from parsers.bgp.constants import BGP_PORT
from parsers.frames import IpDatagram, IpProto, Skipped, TcpSegment, decode_frame
from sniffroute.ospf.view import OspfView
from sniffroute.rib import Rib, RouteChange
from sniffroute.sessions import SessionTracker, Speaker
from sniffroute.streams import TcpTracker

MAX_KEPT_INTERNAL_ERRORS = 20


@dataclass(slots=True)
class FrameStats:
    frames: int = 0
    bytes: int = 0
    tcp_segments: int = 0
    bgp_segments: int = 0
    ospf_packets: int = 0
    truncated_frames: int = 0  # captured shorter than on the wire (snap length): their bytes leave a gap
    skipped: Counter[str] = field(default_factory=Counter)
    # Exceptions from our own code, kept with the frame that raised them; a hostile frame must not stop the
    # controller, and a replay must still say that something went wrong.
    internal_errors: list[str] = field(default_factory=list)
    internal_error_count: int = 0


class Pipeline:
    """Feed frames with `feed_frame`; call `finish` at the end of the input; read `rib`, `sessions`, `stats`."""

    def __init__(
        self,
        rib: Rib | None = None,
        *,
        bgp_ports: frozenset[int] = frozenset({BGP_PORT}),
        on_gap: Callable[[Speaker, float], None] | None = None,
        ospf: OspfView | None = None,
    ) -> None:
        self.rib = rib if rib is not None else Rib()
        self.ospf = ospf if ospf is not None else OspfView()
        self.streams = TcpTracker()
        self.sessions = SessionTracker(self.rib, on_gap=on_gap)
        self.stats = FrameStats()
        self.bgp_ports = bgp_ports

    def feed_frame(self, linktype: int, data: bytes, now: float, wire_len: int | None = None) -> None:
        try:
            self._feed_frame(linktype, data, now, wire_len)
        except Exception as exc:  # noqa: BLE001 - any bug: count it, keep the frame's number, go on
            stats = self.stats
            stats.internal_error_count += 1
            if len(stats.internal_errors) < MAX_KEPT_INTERNAL_ERRORS:
                stats.internal_errors.append(f"frame {stats.frames}: {type(exc).__name__}: {exc}")

    def _feed_frame(self, linktype: int, data: bytes, now: float, wire_len: int | None) -> None:
        stats = self.stats
        stats.frames += 1
        stats.bytes += len(data)
        if wire_len is not None and wire_len > len(data):
            stats.truncated_frames += 1
        packet = decode_frame(linktype, data)
        if type(packet) is TcpSegment:
            stats.tcp_segments += 1
            self.feed_segment(packet, now)
        elif isinstance(packet, Skipped):
            stats.skipped[packet.reason.split(":")[0]] += 1
        elif isinstance(packet, IpDatagram):
            if packet.proto == IpProto.OSPF:
                stats.ospf_packets += 1
                self.ospf.feed(packet.payload, now, packet.src, packet.dst, packet.vlans)
            else:
                stats.skipped[f"ip protocol {packet.proto}"] += 1

    def feed_segment(self, segment: TcpSegment, now: float) -> None:
        if segment.sport not in self.bgp_ports and segment.dport not in self.bgp_ports:
            self.stats.skipped["tcp, not BGP"] += 1
            return
        self.stats.bgp_segments += 1
        handle = self.sessions.handle
        for event in self.streams.feed(segment, now):
            handle(event)

    def finish(self, now: float) -> None:
        # Held bytes and gaps are delivered; the sessions stay up, as far as anyone saw (see sessions).
        for event in self.streams.close_all(now):
            self.sessions.handle(event)
        self.sessions.finish(now)
        self.ospf.expire(now)

    def commit(self) -> list[RouteChange]:
        """Settle the RIB: SPF first when the LSDB changed (its costs feed the BGP decision), then best paths."""
        if self.ospf.dirty:
            self.rib.set_ospf_routes(self.ospf.routes())
        return self.rib.commit()
