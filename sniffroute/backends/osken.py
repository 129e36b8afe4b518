"""os-ken (OpenFlow 1.3) backend, embedded: no osken-manager, native threads (os-ken 4.x).

On switch connect: TCP_NODELAY on the OpenFlow socket, whole frames (miss_send_len = no-buffer), every flow and
meter of ours removed, a table-miss flow that drops, and the tunnel's punt flows with a meter that bounds what
reaches the controller (when the switch has meters; without them the flows go in unmetered, with a warning).
Packet-ins go to the engine; the engine's packet-outs come back through `send_msg`, which os-ken queues for the
datapath's sender thread, so the TAP reader threads may call it.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any, ClassVar

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3

from sniffroute.backends import LiveEngine
from sniffroute.tunnel import NO_BUFFER, PUNT_COOKIE, TABLE_MISS_PRIORITY, Match, PacketOut, PuntFlow, mac_text

log = logging.getLogger("sniffroute.osken")

PUNT_METER_ID = 1
PUNT_METER_BURST_SECONDS = 0.1  # burst allowance as a share of one second of the rate


class SniffrouteOsKen(app_manager.OSKenApp):
    OFP_VERSIONS: ClassVar[list[int]] = [ofproto_v1_3.OFP_VERSION]
    engine: ClassVar[LiveEngine | None] = None  # set by `run` before os-ken instantiates the app

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datapath: Any = None
        self.meter_request_xid: int | None = None

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, ev: Any) -> None:
        datapath = ev.msg.datapath
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        try:
            datapath.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            log.warning("cannot set TCP_NODELAY on the OpenFlow connection: %s", exc)
        log.info("switch %016x connected", datapath.id)
        datapath.send_msg(parser.OFPSetConfig(datapath, ofp.OFPC_FRAG_NORMAL, NO_BUFFER))
        datapath.send_msg(
            parser.OFPFlowMod(
                datapath,
                command=ofp.OFPFC_DELETE,
                table_id=ofp.OFPTT_ALL,
                out_port=ofp.OFPP_ANY,
                out_group=ofp.OFPG_ANY,
            )
        )
        datapath.send_msg(parser.OFPMeterMod(datapath, command=ofp.OFPMC_DELETE, meter_id=ofp.OFPM_ALL))
        datapath.send_msg(parser.OFPFlowMod(datapath, priority=TABLE_MISS_PRIORITY, match=parser.OFPMatch()))
        request = parser.OFPMeterFeaturesStatsRequest(datapath, 0)
        datapath.send_msg(request)
        self.meter_request_xid = request.xid  # a switch without meters answers it with an error

    @set_ev_cls(ofp_event.EventOFPMeterFeaturesStatsReply, MAIN_DISPATCHER)
    def meter_features(self, ev: Any) -> None:
        self.meter_request_xid = None
        self._install(ev.msg.datapath, ev.msg.body[0] if ev.msg.body else None)

    def _install(self, datapath: Any, features: Any) -> None:
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        engine = self._engine()
        rate = engine.config.openflow.punt_meter_pps
        metered = (
            rate > 0
            and features is not None
            and features.max_meter >= PUNT_METER_ID
            and bool(features.capabilities & ofp.OFPMF_PKTPS)
            and bool(features.band_types & (1 << ofp.OFPMBT_DROP))
        )
        if metered:
            burst = max(1, int(rate * PUNT_METER_BURST_SECONDS))
            band = parser.OFPMeterBandDrop(rate=rate, burst_size=burst)
            flags = ofp.OFPMF_PKTPS | ofp.OFPMF_BURST
            datapath.send_msg(
                parser.OFPMeterMod(datapath, ofp.OFPMC_ADD, flags=flags, meter_id=PUNT_METER_ID, bands=[band])
            )
        elif rate > 0:
            log.warning("switch has no packet-rate meters: punt flows go in unmetered")
        for flow in engine.punt_flows(ipv6_fields=True):
            datapath.send_msg(_flow_mod(datapath, flow, metered))
        datapath.send_msg(parser.OFPBarrierRequest(datapath))
        self.datapath = datapath
        engine.attach(lambda out: _packet_out(datapath, out))
        log.info("punt flows installed (%s)", "metered" if metered else "unmetered")

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev: Any) -> None:
        msg = ev.msg
        self._engine().packet_in(msg.match["in_port"], msg.data, msg.total_len)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def error(self, ev: Any) -> None:
        msg = ev.msg
        if msg.xid is not None and msg.xid == self.meter_request_xid:
            self.meter_request_xid = None
            self._install(msg.datapath, None)
            return
        log.warning("switch error type %d code %d", msg.type, msg.code)

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def gone(self, ev: Any) -> None:
        if ev.datapath is self.datapath:
            self.datapath = None
            self._engine().detach()
            log.info("switch disconnected")

    def _engine(self) -> LiveEngine:
        engine = type(self).engine
        if engine is None:
            raise RuntimeError("SniffrouteOsKen.engine must be set before os-ken starts the app")
        return engine


def _match(parser: Any, ofp: Any, match: Match) -> Any:
    fields: dict[str, Any] = {
        "in_port": match.in_port,
        "vlan_vid": ofp.OFPVID_NONE if match.vlan is None else (match.vlan | ofp.OFPVID_PRESENT),
    }
    if match.eth_dst is not None:
        fields["eth_dst"] = mac_text(match.eth_dst)
    if match.eth_type is not None:
        fields["eth_type"] = int(match.eth_type)
    if match.arp_tpa is not None:
        fields["arp_tpa"] = str(match.arp_tpa)
    if match.ip_proto is not None:
        fields["ip_proto"] = int(match.ip_proto)
    if match.ipv4_dst is not None:
        fields["ipv4_dst"] = str(match.ipv4_dst)
    if match.ipv6_dst is not None:
        fields["ipv6_dst"] = str(match.ipv6_dst)
    if match.tcp_src is not None:
        fields["tcp_src"] = match.tcp_src
    if match.tcp_dst is not None:
        fields["tcp_dst"] = match.tcp_dst
    return parser.OFPMatch(**fields)


def _flow_mod(datapath: Any, flow: PuntFlow, metered: bool) -> Any:
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    actions = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, NO_BUFFER)]
    instructions = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
    if metered:
        instructions.insert(0, parser.OFPInstructionMeter(PUNT_METER_ID))
    return parser.OFPFlowMod(
        datapath,
        cookie=PUNT_COOKIE,
        priority=flow.priority,
        match=_match(parser, ofp, flow.match),
        instructions=instructions,
    )


def _packet_out(datapath: Any, out: PacketOut) -> None:
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    datapath.send_msg(
        parser.OFPPacketOut(
            datapath,
            buffer_id=ofp.OFP_NO_BUFFER,
            in_port=ofp.OFPP_CONTROLLER,
            actions=[parser.OFPActionOutput(out.port, NO_BUFFER)],
            data=out.frame,
        )
    )


def start(engine: LiveEngine) -> Callable[[], None]:
    """Serve OpenFlow on os-ken's threads; returns the function that stops serving. os-ken's configuration is
    process-wide: call once per process."""
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager
    from os_ken.controller import controller  # noqa: F401  registers the --ofp-* options

    openflow = engine.config.openflow
    cfg.CONF(
        args=[f"--ofp-tcp-listen-port={openflow.port}", f"--ofp-listen-host={openflow.listen}"],
        project="os_ken",
    )
    SniffrouteOsKen.engine = engine
    manager = AppManager.get_instance()
    manager.load_apps([__name__])
    manager.instantiate_apps(**manager.create_contexts())
    log.info("os-ken listening on %s port %d (OpenFlow 1.3)", openflow.listen, openflow.port)

    def stop() -> None:
        engine.detach()
        manager.close()

    return stop
