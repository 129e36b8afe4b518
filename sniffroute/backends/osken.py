"""os-ken (OpenFlow 1.3) backend, embedded: no osken-manager, native threads (os-ken 4.x).

On switch connect: TCP_NODELAY on the OpenFlow socket, whole frames (miss_send_len = no-buffer), the punt flows
and meter of an earlier run replaced (by cookie; nothing else is deleted), a table-miss flow that drops, and the
tunnel's punt flows with a meter that bounds what reaches the controller (when the switch has meters; without
them the flows go in unmetered, with a warning), and, under a meter of their own, the connected subnets' glean
flows (frames toward hosts not yet resolved). Route flows stay: the switch's route flows and groups are read
back (flow stats, group descriptions) and the FIB sends only the difference (`OsKenFlows`).
The switch's messages are received in batches (`_recv_loop`: one recv for all the socket holds); packet-ins are
read on os-ken's receive thread (`read_packet_in`) and go straight to the engine; the engine's
packet-outs are packed (`pack_packet_out`) and written by the TAP reader threads themselves (`osken_send`), not
queued for the datapath's sender thread, which carries everything else.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from sniffroute.backends import LiveEngine, osken_send
from sniffroute.backends.openflow_packets import pack_packet_out, read_packet_in
from sniffroute.backends.routing import OpLedger
from sniffroute.fib import (
    OPENFLOW_13,
    ROUTE_COOKIE,
    ROUTE_COOKIE_MASK,
    Barrier,
    Bucket,
    DecTtl,
    FlowCommand,
    FlowMatch,
    FlowOp,
    FlowSpec,
    GroupCommand,
    GroupOp,
    GroupSpec,
    Op,
    Output,
    PopVlan,
    PushVlan,
    SetEthDst,
    SetEthSrc,
    SetVlanVid,
    ToController,
    ToGroup,
)
from sniffroute.fib.model import ETH_TYPE_IPV6, network_from_int, shared_actions
from sniffroute.tunnel import NO_BUFFER, PUNT_COOKIE, TABLE_MISS_PRIORITY, Match, PacketOut, PuntFlow, mac_text

log = logging.getLogger("sniffroute.osken")

PUNT_METER_ID = 1
GLEAN_METER_ID = 2  # the glean flows' own: a flood toward unknown hosts must not use up the punt flows' rate
PUNT_METER_BURST_SECONDS = 0.1  # burst allowance as a share of one second of the rate
ALL_COOKIE_BITS = 0xFFFF_FFFF_FFFF_FFFF
FLOW_XID_BASE = 0x8000_0000  # our flow/group/barrier xids, apart from os-ken's own counter (packet-outs)
SEND_CHUNK_BYTES = 1 << 16  # flow mods are packed together into writes of about this size
UNKNOWN_ACTION = Output(-1)  # read back but not ours to express: differs from any plan, so it is replaced


class SniffrouteOsKen(app_manager.OSKenApp):
    OFP_VERSIONS: ClassVar[list[int]] = [ofproto_v1_3.OFP_VERSION]
    engine: ClassVar[LiveEngine | None] = None  # set by `run` before os-ken instantiates the app

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datapath: Any = None
        self.meter_request_xid: int | None = None
        self.meter_add_xids: set[int] = set()
        self.flows: OsKenFlows | None = None

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
        # Only the punt flows of an earlier run go (by cookie): route flows keep forwarding while we reconcile.
        datapath.send_msg(
            parser.OFPFlowMod(
                datapath,
                cookie=PUNT_COOKIE,
                cookie_mask=ALL_COOKIE_BITS,
                command=ofp.OFPFC_DELETE,
                table_id=ofp.OFPTT_ALL,
                out_port=ofp.OFPP_ANY,
                out_group=ofp.OFPG_ANY,
            )
        )
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
        openflow = engine.config.openflow
        self.meter_add_xids.clear()  # adds of an earlier connection: answered (or not) by now
        rate_meters = (
            0
            if features is None
            or not features.capabilities & ofp.OFPMF_PKTPS
            or not features.band_types & (1 << ofp.OFPMBT_DROP)
            else features.max_meter
        )
        metered = rate_meters >= PUNT_METER_ID and openflow.punt_meter_pps > 0
        # Glean flows only under a meter: unmetered, a flood toward unknown hosts would all reach the controller.
        glean = rate_meters >= GLEAN_METER_ID and openflow.glean_meter_pps > 0
        if metered:
            self._set_meter(datapath, PUNT_METER_ID, openflow.punt_meter_pps)
        elif openflow.punt_meter_pps > 0:
            log.warning("switch has no packet-rate meters: punt flows go in unmetered, and no glean flows")
        for flow in engine.punt_flows(ipv6_fields=True):
            datapath.send_msg(_flow_mod(datapath, flow, metered))
        datapath.send_msg(parser.OFPBarrierRequest(datapath))
        self.datapath = datapath
        engine.attach(lambda out: _packet_out(datapath, out))
        log.info("punt flows installed (%s)", "metered" if metered else "unmetered")
        if glean:
            self._set_meter(datapath, GLEAN_METER_ID, openflow.glean_meter_pps)
        if engine.routing is not None:
            self.flows = OsKenFlows(datapath, glean)
            engine.routing.set_glean(glean)
            engine.routing.attached(self.flows)
            self.flows.request_read_back()

    def _set_meter(self, datapath: Any, meter_id: int, rate: int) -> None:
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        band = parser.OFPMeterBandDrop(rate=rate, burst_size=max(1, int(rate * PUNT_METER_BURST_SECONDS)))
        flags = ofp.OFPMF_PKTPS | ofp.OFPMF_BURST
        # The meter may be there from an earlier run: deleting it would delete every flow that uses it, so add
        # it (an error when it exists, ignored) and then set it as configured.
        add = parser.OFPMeterMod(datapath, ofp.OFPMC_ADD, flags=flags, meter_id=meter_id, bands=[band])
        datapath.send_msg(add)
        self.meter_add_xids.add(add.xid)
        datapath.send_msg(parser.OFPMeterMod(datapath, ofp.OFPMC_MODIFY, flags=flags, meter_id=meter_id, bands=[band]))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def flow_stats(self, ev: Any) -> None:
        if self.flows is not None and ev.msg.datapath is self.flows.datapath:
            try:
                self.flows.flow_stats(ev.msg, self._engine())
            except Exception:  # an exception would end os-ken's event loop: the tunnel would stop
                log.exception("reading the switch's flows failed")

    @set_ev_cls(ofp_event.EventOFPGroupDescStatsReply, MAIN_DISPATCHER)
    def group_desc(self, ev: Any) -> None:
        if self.flows is not None and ev.msg.datapath is self.flows.datapath:
            try:
                self.flows.group_desc(ev.msg, self._engine())
            except Exception:
                log.exception("reading the switch's groups failed")

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def barrier_reply(self, ev: Any) -> None:
        engine = self._engine()
        if self.flows is not None and engine.routing is not None:
            seq = self.flows.ledger.barrier_replied(ev.msg.xid)
            if seq is not None:
                engine.routing.confirmed(seq)

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
        if msg.xid is not None and msg.xid in self.meter_add_xids:
            self.meter_add_xids.discard(msg.xid)
            return  # the meter was there already; the modify after it sets it
        engine = self._engine()
        if self.flows is not None and engine.routing is not None:
            op = self.flows.ledger.op_of(msg.xid)
            if op is not None:
                engine.routing.refused(op, f"OpenFlow error type {msg.type} code {msg.code}")
                return
        log.warning("switch error type %d code %d", msg.type, msg.code)

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def gone(self, ev: Any) -> None:
        if ev.datapath is self.datapath:
            self.datapath = None
            self.flows = None
            engine = self._engine()
            engine.detach()
            if engine.routing is not None:
                engine.routing.detached()
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


def _packet_out(datapath: Any, out: PacketOut) -> bool:
    """Write a packet-out; False when the connection is going (the engine then holds the frame)."""
    return osken_send.send_now(datapath, pack_packet_out(out.port, out.frame))


_OSKEN_PACKET_IN_PARSER = ofproto_v1_3_parser._MSG_PARSERS[ofproto_v1_3.OFPT_PACKET_IN]
_PACKET_IN_LOCK = threading.Lock()  # two connections overlap while a switch reconnects


def _packet_in_parser(datapath: Any, version: int, msg_type: int, msg_len: int, xid: int, buf: Any) -> Any:
    """Stands in for os-ken's packet-in parser on its receive thread: a packet-in that reads cleanly goes straight
    to the engine and no message object or event is made (None tells os-ken there is nothing to dispatch); any
    other goes to os-ken's parser and on to `SniffrouteOsKen.packet_in`."""
    engine = SniffrouteOsKen.engine
    packet_in = read_packet_in(buf) if engine is not None else None
    if packet_in is None:
        return _OSKEN_PACKET_IN_PARSER(datapath, version, msg_type, msg_len, xid, buf)
    try:
        with _PACKET_IN_LOCK:
            engine.packet_in(*packet_in)  # type: ignore[union-attr]
    except Exception:  # the receive thread carries the whole OpenFlow connection: report, never end it
        log.exception("packet-in from port %d failed", packet_in.in_port)
    return None


RECV_BYTES = 256 * 1024  # one recv on the OpenFlow socket: what the switch sent since the last one


def _recv_loop(self: Any) -> None:
    """Stands in for os-ken's `Datapath._recv_loop`, which receives each message in two calls (its header, then the
    rest): every call gives up the interpreter lock and waits to take it back, behind the pipeline and TAP
    threads. This takes what the socket holds, up to `RECV_BYTES`, at once and hands each message on exactly as
    os-ken's loop does: parsed (`_packet_in_parser` for packet-ins), raised to the observers, and to the handlers
    registered for the datapath's state."""
    from os_ken.controller.controller import SocketTimeout
    from os_ken.ofproto import ofproto_parser

    buf = bytearray()
    header = _HEADER.size
    while self.state != DEAD_DISPATCHER:
        try:
            data = self.socket.recv(RECV_BYTES)
        except (SocketTimeout, ssl.SSLError):
            continue
        except (EOFError, OSError):
            break
        if not data:
            break
        buf += data
        offset, end = 0, len(buf)
        while end - offset >= header:
            version, msg_type, msg_len, xid = _HEADER.unpack_from(buf, offset)
            msg_len = max(msg_len, header)  # a length under the header's: os-ken reads on past the header too
            if end - offset < msg_len:
                break
            msg = ofproto_parser.msg(self, version, msg_type, msg_len, xid, buf[offset : offset + msg_len])
            offset += msg_len
            if msg and self.ofp_brick is not None:
                ev = ofp_event.ofp_msg_to_ev(msg)
                self.ofp_brick.send_event_to_observers(ev, self.state)
                state = self.state  # the handlers a message goes to are chosen before any of them runs
                handlers = [h for h in self.ofp_brick.get_handlers(ev) if state in h.callers[ev.__class__].dispatchers]
                for handler in handlers:
                    handler(ev)
        del buf[:offset]


def start(engine: LiveEngine) -> Callable[[], None]:
    """Serve OpenFlow on os-ken's threads; returns the function that stops serving. os-ken's configuration is
    process-wide: call once per process."""
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager
    from os_ken.controller import controller  # registers the --ofp-* options

    openflow = engine.config.openflow
    cfg.CONF(
        args=[f"--ofp-tcp-listen-port={openflow.port}", f"--ofp-listen-host={openflow.listen}"],
        project="os_ken",
    )
    SniffrouteOsKen.engine = engine
    # Flow stats entries stay raw bytes, read by `flow_from_raw` (os-ken's own parsing is far slower), and
    # packet-ins are read by `read_packet_in` on the receive thread.
    ofproto_v1_3_parser.OFPFlowStatsReply.cls_stats_body_cls = RawFlowStats
    ofproto_v1_3_parser._MSG_PARSERS[ofproto_v1_3.OFPT_PACKET_IN] = _packet_in_parser
    controller.Datapath._recv_loop = controller._deactivate(_recv_loop)  # as os-ken's: the socket closed after it
    controller.Datapath._send_loop = osken_send.send_loop  # its writes and the TAP threads' packet-outs: one lock
    if engine.routing is None:
        engine.enable_routing(OPENFLOW_13)
    manager = AppManager.get_instance()
    manager.load_apps([__name__])
    manager.instantiate_apps(**manager.create_contexts())
    log.info("os-ken listening on %s port %d (OpenFlow 1.3)", openflow.listen, openflow.port)

    def stop() -> None:
        engine.detach()
        manager.close()

    return stop


# -- route flows ---------------------------------------------------------------------------------------------


class OsKenFlows:
    """The FIB's ops as OpenFlow 1.3 messages on one datapath, and the switch's flows read back as FIB records.

    Ops are serialised on the caller's thread and written in chunks; each gets an xid of ours, so an error
    message maps back to its op and a barrier reply to its sequence number."""

    def __init__(self, datapath: Any, metered: bool) -> None:
        self.datapath = datapath
        self.metered = metered
        self.packer = Packer(metered)
        self._xids = itertools.count(FLOW_XID_BASE)
        self._send_lock = threading.Lock()  # one sender at a time: xids go out in order
        self.ledger = OpLedger()
        self._read: dict[str, list[Any]] = {"flows": [], "groups": []}
        self._waiting: set[str] = set()
        self._audit = False

    def request_audit(self) -> None:
        if not self._waiting:
            self.request_read_back(audit=True)

    def request_read_back(self, *, audit: bool = False) -> None:
        datapath = self.datapath
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        self._audit = audit
        self._waiting = {"flows", "groups"}
        self._read = {"flows": [], "groups": []}
        datapath.send_msg(
            parser.OFPFlowStatsRequest(
                datapath,
                0,
                ofp.OFPTT_ALL,
                ofp.OFPP_ANY,
                ofp.OFPG_ANY,
                0,
                0,
                parser.OFPMatch(),
            )
        )
        datapath.send_msg(parser.OFPGroupDescStatsRequest(datapath, 0))

    def flow_stats(self, msg: Any, engine: LiveEngine) -> None:
        flows = self._read["flows"]
        for stat in msg.body:
            if isinstance(stat, RawFlowStats):
                if cookie_of(stat.raw) & ROUTE_COOKIE_MASK == ROUTE_COOKIE:
                    flows.append(flow_from_raw(stat.raw))
            elif stat.cookie & ROUTE_COOKIE_MASK == ROUTE_COOKIE:
                flows.append(flow_from_stats(self.datapath, stat))
        self._part_done("flows", msg, engine)

    def group_desc(self, msg: Any, engine: LiveEngine) -> None:
        ofp = self.datapath.ofproto
        self._read["groups"].extend(
            group_from_desc(self.datapath, stat) for stat in msg.body if stat.type == ofp.OFPGT_SELECT
        )
        self._part_done("groups", msg, engine)

    def _part_done(self, part: str, msg: Any, engine: LiveEngine) -> None:
        if msg.flags & self.datapath.ofproto.OFPMPF_REPLY_MORE or part not in self._waiting:
            return
        self._waiting.discard(part)
        if not self._waiting and engine.routing is not None:
            if self._audit:
                engine.routing.audit(self._read["flows"], self._read["groups"])
            else:
                engine.routing.read_back(self._read["flows"], self._read["groups"])

    def send_ops(self, ops: Sequence[Op]) -> None:
        """Pack and write `ops` in order. The ledger learns each op's xid before the bytes carrying it are
        written (an error reply can only name an xid it knows); it is told in batches, not per op."""
        datapath = self.datapath
        packer = self.packer
        flow_mod, group_mod, barrier = packer.flow_mod, packer.group_mod, packer.barrier
        parts: list[bytes] = []
        size = 0
        ledger = self.ledger
        sent: list[tuple[int, FlowOp | GroupOp]] = []
        with self._send_lock:
            xids = self._xids
            for op in ops:
                xid = next(xids) & 0xFFFF_FFFF
                if type(op) is FlowOp:
                    data = flow_mod(op, xid)
                elif type(op) is Barrier:
                    data = barrier(xid)
                    ledger.barrier(xid, op.seq, sent)
                    sent = []
                    parts.append(data)
                    size += len(data)
                    continue
                else:
                    data = group_mod(op, xid)  # type: ignore[arg-type]
                sent.append((xid, op))  # type: ignore[arg-type]
                parts.append(data)
                size += len(data)
                if size >= SEND_CHUNK_BYTES:
                    ledger.sent_many(sent)
                    sent = []
                    datapath.send(b"".join(parts))
                    parts, size = [], 0
            if sent:
                ledger.sent_many(sent)
        if parts:
            datapath.send(b"".join(parts))

    def _message(self, op: Op) -> Any:
        datapath = self.datapath
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        if isinstance(op, Barrier):
            return parser.OFPBarrierRequest(datapath)
        if isinstance(op, GroupOp):
            command = {
                GroupCommand.ADD: ofp.OFPGC_ADD,
                GroupCommand.MODIFY: ofp.OFPGC_MODIFY,
                GroupCommand.DELETE: ofp.OFPGC_DELETE,
            }[op.command]
            buckets = [
                parser.OFPBucket(b.weight, ofp.OFPP_ANY, ofp.OFPG_ANY, _actions(datapath, b.actions))
                for b in op.group.buckets
            ]
            if op.command is GroupCommand.DELETE:
                buckets = []
            return parser.OFPGroupMod(datapath, command, ofp.OFPGT_SELECT, op.group.group_id, buckets)
        flow = op.flow
        command = {
            FlowCommand.ADD: ofp.OFPFC_ADD,
            FlowCommand.MODIFY_STRICT: ofp.OFPFC_MODIFY_STRICT,
            FlowCommand.DELETE_STRICT: ofp.OFPFC_DELETE_STRICT,
        }[op.command]
        instructions = []
        if op.command is not FlowCommand.DELETE_STRICT:
            instructions = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, _actions(datapath, flow.actions))]
            if self.metered and any(isinstance(a, ToController) for a in flow.actions):
                instructions.insert(0, parser.OFPInstructionMeter(GLEAN_METER_ID))
        return parser.OFPFlowMod(
            datapath,
            cookie=flow.cookie,
            command=command,
            priority=flow.priority,
            out_port=ofp.OFPP_ANY,
            out_group=ofp.OFPG_ANY,
            match=_route_match(datapath, flow.match),
            instructions=instructions,
        )


def _route_match(datapath: Any, match: FlowMatch) -> Any:
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    fields: dict[str, Any] = {"eth_dst": match.eth_dst}
    if match.vlan is None:
        fields["vlan_vid"] = ofp.OFPVID_NONE
    elif match.vlan >= 0:
        fields["vlan_vid"] = match.vlan | ofp.OFPVID_PRESENT
    fields["eth_type"] = match.eth_type
    dst = match.dst
    if dst.prefixlen:
        key = "ipv4_dst" if dst.version == 4 else "ipv6_dst"
        full = dst.prefixlen == dst.max_prefixlen
        fields[key] = str(dst.network_address) if full else (str(dst.network_address), str(dst.netmask))
    return parser.OFPMatch(**fields)


def _actions(datapath: Any, actions: Sequence[Any]) -> list[Any]:
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    out: list[Any] = []
    for action in actions:
        if isinstance(action, DecTtl):
            out.append(parser.OFPActionDecNwTtl())
        elif isinstance(action, SetEthSrc):
            out.append(parser.OFPActionSetField(eth_src=action.mac))
        elif isinstance(action, SetEthDst):
            out.append(parser.OFPActionSetField(eth_dst=action.mac))
        elif isinstance(action, PushVlan):
            out.append(parser.OFPActionPushVlan(0x8100))
            out.append(parser.OFPActionSetField(vlan_vid=action.vid | ofp.OFPVID_PRESENT))
        elif isinstance(action, SetVlanVid):
            out.append(parser.OFPActionSetField(vlan_vid=action.vid | ofp.OFPVID_PRESENT))
        elif isinstance(action, PopVlan):
            out.append(parser.OFPActionPopVlan())
        elif isinstance(action, Output):
            out.append(parser.OFPActionOutput(action.port, 0))
        elif isinstance(action, ToController):
            out.append(parser.OFPActionOutput(ofp.OFPP_CONTROLLER, NO_BUFFER))
        elif isinstance(action, ToGroup):
            out.append(parser.OFPActionGroup(action.group_id))
    return out


def _field(match: Any, name: str) -> Any:
    try:
        return match[name]
    except KeyError:
        return None


def flow_from_stats(datapath: Any, stat: Any) -> FlowSpec:
    """A flow stats entry as the FIB's record, canonical (see sniffroute.fib.model)."""
    ofp = datapath.ofproto
    match = stat.match
    eth_type = _field(match, "eth_type") or 0
    vid = _field(match, "vlan_vid")
    if isinstance(vid, tuple):
        vid = vid[0]
    vlan = -1 if vid is None else (vid & 0xFFF if vid & ofp.OFPVID_PRESENT else None)
    eth_dst = _field(match, "eth_dst")
    key = "ipv6_dst" if eth_type == ETH_TYPE_IPV6 else "ipv4_dst"
    dst = _field(match, key)
    if dst is None:
        network = ipaddress.ip_network("::/0" if eth_type == ETH_TYPE_IPV6 else "0.0.0.0/0")
    elif isinstance(dst, tuple):
        length = bin(int(ipaddress.ip_address(dst[1]))).count("1")  # contiguous masks only: ours are
        network = ipaddress.ip_network(f"{dst[0]}/{length}", strict=False)
    else:
        network = ipaddress.ip_network(dst)
    actions: list[Any] = []
    for instruction in stat.instructions:
        if getattr(instruction, "type", None) == ofp.OFPIT_APPLY_ACTIONS:
            actions.extend(_read_actions(datapath, instruction.actions))
    flow_match = FlowMatch(str(eth_dst or "").lower(), vlan, eth_type, network)
    return FlowSpec(stat.cookie, stat.priority, flow_match, tuple(actions))


def group_from_desc(datapath: Any, stat: Any) -> GroupSpec:
    buckets = tuple(Bucket(b.weight, tuple(_read_actions(datapath, b.actions))) for b in stat.buckets)
    return GroupSpec(stat.group_id, buckets)


def _read_actions(datapath: Any, actions: Sequence[Any]) -> list[Any]:
    ofp, parser = datapath.ofproto, datapath.ofproto_parser
    out: list[Any] = []
    pushed = False
    for action in actions:
        if isinstance(action, parser.OFPActionDecNwTtl):
            out.append(DecTtl())
        elif isinstance(action, parser.OFPActionPushVlan):
            pushed = True
        elif isinstance(action, parser.OFPActionPopVlan):
            out.append(PopVlan())
        elif isinstance(action, parser.OFPActionSetField):
            if action.key == "eth_src":
                out.append(SetEthSrc(str(action.value).lower()))
            elif action.key == "eth_dst":
                out.append(SetEthDst(str(action.value).lower()))
            elif action.key == "vlan_vid":
                vid = action.value & 0xFFF
                out.append(PushVlan(vid) if pushed else SetVlanVid(vid))
                pushed = False
            else:
                out.append(UNKNOWN_ACTION)
        elif isinstance(action, parser.OFPActionOutput):
            out.append(ToController() if action.port == ofp.OFPP_CONTROLLER else Output(action.port))
        elif isinstance(action, parser.OFPActionGroup):
            out.append(ToGroup(action.group_id))
        else:
            out.append(UNKNOWN_ACTION)
    return out


# -- fast packing ----------------------------------------------------------------------------------------------
# Building an os-ken message object per flow costs more than OVS takes to apply it (100,000 routes: seconds), so
# route flow mods and barriers are packed here with struct, byte for byte what os-ken would serialise (a test
# compares the two). Action lists are shared between routes, so their bytes are cached.

OFP_VERSION_13 = 4
OFPT_FLOW_MOD, OFPT_GROUP_MOD, OFPT_BARRIER_REQUEST = 14, 15, 20
OFPXMC_OPENFLOW_BASIC = 0x8000
OXM_ETH_DST, OXM_ETH_SRC, OXM_ETH_TYPE, OXM_VLAN_VID, OXM_IPV4_DST, OXM_IPV6_DST = 3, 4, 5, 6, 12, 27
OFPIT_APPLY_ACTIONS, OFPIT_METER = 4, 6
OFPAT_OUTPUT, OFPAT_PUSH_VLAN, OFPAT_POP_VLAN, OFPAT_GROUP, OFPAT_DEC_NW_TTL, OFPAT_SET_FIELD = 0, 17, 18, 22, 24, 25
OFPVID_PRESENT = 0x1000
OFPP_CONTROLLER, OFPP_ANY, OFPG_ANY, OFP_NO_BUFFER = 0xFFFFFFFD, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF
OFPGT_SELECT = 1
_FLOW_COMMANDS = {FlowCommand.ADD: 0, FlowCommand.MODIFY_STRICT: 2, FlowCommand.DELETE_STRICT: 4}
_ADD, _MODIFY_STRICT, _DELETE_STRICT = FlowCommand.ADD, FlowCommand.MODIFY_STRICT, FlowCommand.DELETE_STRICT
_GROUP_COMMANDS = {GroupCommand.ADD: 0, GroupCommand.MODIFY: 1, GroupCommand.DELETE: 2}
_HEADER = struct.Struct("!BBHI")
_FLOW_MOD = struct.Struct("!BBHIQQBBHHHIIIH2x")
_ACTION_CACHE_LIMIT = 65536


def _pad8(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 8)


def _oxm(field: int, value: bytes, mask: bytes | None = None) -> bytes:
    body = value if mask is None else value + mask
    return struct.pack("!HBB", OFPXMC_OPENFLOW_BASIC, field << 1 | (mask is not None), len(body)) + body


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


_MATCH_HEADS: dict[tuple[str, int | None, int], bytes] = {}


def _dst_oxms(width: int, field: int) -> list[tuple[bytes, bytes]]:
    """Per prefix length: the destination OXM's header, and the mask that follows the address (none when full)."""
    out = []
    for length in range(width + 1):
        if length == width:
            out.append((struct.pack("!HBB", OFPXMC_OPENFLOW_BASIC, field << 1, width // 8), b""))
        else:
            mask = ((1 << width) - (1 << (width - length))).to_bytes(width // 8, "big")
            out.append((struct.pack("!HBB", OFPXMC_OPENFLOW_BASIC, field << 1 | 1, width // 4), mask))
    return out


_DST_OXM_V4 = _dst_oxms(32, OXM_IPV4_DST)
_DST_OXM_V6 = _dst_oxms(128, OXM_IPV6_DST)
_MATCH_TLV = [struct.pack("!HH", 1, size) for size in range(1 << 10)]  # an ofp_match header per length
_PADDING = [b"\0" * n for n in range(8)]


def pack_match(match: FlowMatch) -> bytes:
    """The OXM match of a route flow: fields in os-ken's order (by field number), padded to 8 bytes."""
    before, after = match_parts(match)
    dst = match.dst
    if not dst.prefixlen:
        return before + after
    return before + int(dst.network_address).to_bytes(4 if dst.version == 4 else 16, "big") + after


def match_parts(match: FlowMatch) -> tuple[bytes, bytes]:
    """The match's bytes before and after the destination address (no address when the prefix length is 0):
    the same for every route flow of one prefix length."""
    key = (match.eth_dst, match.vlan, match.eth_type)
    head = _MATCH_HEADS.get(key)
    if head is None:
        head = _oxm(OXM_ETH_DST, _mac(match.eth_dst)) + _oxm(OXM_ETH_TYPE, struct.pack("!H", match.eth_type))
        if match.vlan is None:
            head += _oxm(OXM_VLAN_VID, b"\0\0")
        elif match.vlan >= 0:
            head += _oxm(OXM_VLAN_VID, struct.pack("!H", match.vlan | OFPVID_PRESENT))
        if len(_MATCH_HEADS) < _ACTION_CACHE_LIMIT:
            _MATCH_HEADS[key] = head
    dst = match.dst
    length = dst.prefixlen
    if not length:
        size = 4 + len(head)
        return _MATCH_TLV[size] + head, _PADDING[-size % 8]
    width = 4 if dst.version == 4 else 16
    oxm, mask = (_DST_OXM_V4 if width == 4 else _DST_OXM_V6)[length]  # the OXM header; the mask after the address
    size = 4 + len(head) + len(oxm) + width + len(mask)
    return _MATCH_TLV[size] + head + oxm, mask + _PADDING[-size % 8]


def _set_field(field: int, value: bytes) -> bytes:
    oxm = _oxm(field, value)
    body = struct.pack("!HH", OFPAT_SET_FIELD, 0) + oxm
    body = _pad8(body)
    return struct.pack("!HH", OFPAT_SET_FIELD, len(body)) + body[4:]


def pack_actions(actions: Sequence[Any]) -> bytes:
    out = b""
    for action in actions:
        if isinstance(action, DecTtl):
            out += struct.pack("!HH4x", OFPAT_DEC_NW_TTL, 8)
        elif isinstance(action, SetEthSrc):
            out += _set_field(OXM_ETH_SRC, _mac(action.mac))
        elif isinstance(action, SetEthDst):
            out += _set_field(OXM_ETH_DST, _mac(action.mac))
        elif isinstance(action, PushVlan):
            out += struct.pack("!HHH2x", OFPAT_PUSH_VLAN, 8, 0x8100)
            out += _set_field(OXM_VLAN_VID, struct.pack("!H", action.vid | OFPVID_PRESENT))
        elif isinstance(action, SetVlanVid):
            out += _set_field(OXM_VLAN_VID, struct.pack("!H", action.vid | OFPVID_PRESENT))
        elif isinstance(action, PopVlan):
            out += struct.pack("!HH4x", OFPAT_POP_VLAN, 8)
        elif isinstance(action, Output):
            out += struct.pack("!HHIH6x", OFPAT_OUTPUT, 16, action.port, 0)
        elif isinstance(action, ToController):
            out += struct.pack("!HHIH6x", OFPAT_OUTPUT, 16, OFPP_CONTROLLER, NO_BUFFER)
        elif isinstance(action, ToGroup):
            out += struct.pack("!HHI", OFPAT_GROUP, 8, action.group_id)
    return out


class Packer:
    """OpenFlow 1.3 bytes for the FIB's ops; `metered` adds the glean meter to route flows that reach the
    controller (the connected subnets' glean flows)."""

    def __init__(self, metered: bool) -> None:
        self.metered = metered
        self._instructions: dict[tuple[Any, ...], bytes] = {}
        self._by_identity: dict[int, tuple[tuple[Any, ...], bytes]] = {}
        self._flow_mods: dict[tuple[Any, ...], tuple[Any, bytes, bytes, bytes]] = {}

    def instructions(self, actions: tuple[Any, ...]) -> bytes:
        # Plans share one action tuple per next hop: found by identity first (hashing a tuple of actions costs
        # more than packing the rest of the flow mod), by value when it is another tuple.
        known = self._by_identity.get(id(actions))
        if known is not None and known[0] is actions:
            return known[1]
        cached = self._instructions.get(actions)
        if cached is None:
            body = pack_actions(actions)
            cached = struct.pack("!HH4x", OFPIT_APPLY_ACTIONS, 8 + len(body)) + body
            if self.metered and any(isinstance(a, ToController) for a in actions):
                cached = struct.pack("!HHI", OFPIT_METER, 8, GLEAN_METER_ID) + cached
            if len(self._instructions) >= _ACTION_CACHE_LIMIT:
                self._instructions.clear()
            self._instructions[actions] = cached
        if len(self._by_identity) >= _ACTION_CACHE_LIMIT:
            self._by_identity.clear()
        self._by_identity[id(actions)] = (actions, cached)  # the tuple is kept: its id is not reused meanwhile
        return cached

    def flow_mod(self, op: FlowOp, xid: int) -> bytes:
        """A flow mod is the same bytes for every route of one prefix length and next hop, but for its xid and
        destination address: those bytes are made once (`_flow_mod_template`) and the two filled in."""
        flow = op.flow
        match = flow.match
        dst = match.dst
        command = op.command
        actions = None if command is _DELETE_STRICT else flow.actions
        # the common commands by identity: hashing an Enum member calls Python code
        code = 0 if command is _ADD else 2 if command is _MODIFY_STRICT else _FLOW_COMMANDS[command]
        key = (code, flow.cookie, flow.priority, match.eth_dst, match.vlan, match.eth_type, dst.version,
               dst.prefixlen, id(actions))  # fmt: skip
        template = self._flow_mods.get(key)
        if template is None or template[0] is not actions:  # an id can be reused once its tuple is gone
            template = self._flow_mod_template(op, actions)
            if len(self._flow_mods) >= _ACTION_CACHE_LIMIT:
                self._flow_mods.clear()
            self._flow_mods[key] = template
        _, start, middle, end = template
        if not dst.prefixlen:
            return b"".join((start, xid.to_bytes(4, "big"), middle, end))
        address = int(dst.network_address).to_bytes(4 if dst.version == 4 else 16, "big")
        return b"".join((start, xid.to_bytes(4, "big"), middle, address, end))

    def _flow_mod_template(self, op: FlowOp, actions: tuple[Any, ...] | None) -> tuple[Any, bytes, bytes, bytes]:
        """(actions, bytes before the xid, between xid and destination address, after the address)."""
        flow = op.flow
        before, after = match_parts(flow.match)
        instructions = b"" if actions is None else self.instructions(actions)
        dst = flow.match.dst
        address_size = (4 if dst.version == 4 else 16) if dst.prefixlen else 0
        length = _FLOW_MOD.size + len(before) + address_size + len(after) + len(instructions)
        head = _FLOW_MOD.pack(
            OFP_VERSION_13, OFPT_FLOW_MOD, length, 0, flow.cookie, 0, 0, _FLOW_COMMANDS[op.command],
            0, 0, flow.priority, OFP_NO_BUFFER, OFPP_ANY, OFPG_ANY, 0,
        )  # fmt: skip
        return actions, head[:4], head[8:] + before, after + instructions

    def group_mod(self, op: GroupOp, xid: int) -> bytes:
        buckets = b""
        if op.command is not GroupCommand.DELETE:
            for bucket in op.group.buckets:
                actions = pack_actions(bucket.actions)
                buckets += struct.pack("!HHII4x", 16 + len(actions), bucket.weight, OFPP_ANY, OFPG_ANY) + actions
        body = struct.pack("!HBxI", _GROUP_COMMANDS[op.command], OFPGT_SELECT, op.group.group_id) + buckets
        return _HEADER.pack(OFP_VERSION_13, OFPT_GROUP_MOD, _HEADER.size + len(body), xid) + body

    @staticmethod
    def barrier(xid: int) -> bytes:
        return _HEADER.pack(OFP_VERSION_13, OFPT_BARRIER_REQUEST, _HEADER.size, xid)


# -- fast reading ----------------------------------------------------------------------------------------------
# os-ken parses a flow stats entry into objects in ~100 us: a 100,000-flow read back would hold its receive
# thread (and the tunnel's packet-ins) for many seconds. While routing runs, flow stats entries are kept as raw
# bytes (`RawFlowStats`) and read here: only the fields route flows use, action lists cached by their bytes.

_ENTRY_HEAD = struct.Struct("!H2x4x4xH2x2x2x4xQ16x")  # length, priority, cookie (then packet and byte counts)
_OXM_HEAD = struct.Struct("!HBB")
_TLV = struct.Struct("!HH")
_READ_CACHE: dict[bytes, tuple[Any, ...]] = {}
_READ_MATCHES: dict[bytes, tuple[str, int | None, int]] = {}
_MASK_BITS = {
    mask.to_bytes(width // 8, "big"): length
    for width in (32, 128)
    for length in range(width + 1)
    for mask in (((1 << width) - (1 << (width - length))),)
}


class RawFlowStats:
    """A flow stats entry left unparsed (installed as os-ken's flow stats body class by `start`)."""

    __slots__ = ("length", "raw")

    def __init__(self, length: int, raw: bytes) -> None:
        self.length = length
        self.raw = raw

    @classmethod
    def parser(cls, buf: Any, offset: int) -> RawFlowStats:
        (length,) = struct.unpack_from("!H", buf, offset)
        return cls(length, bytes(buf[offset : offset + length]))


def cookie_of(raw: bytes) -> int:
    return _ENTRY_HEAD.unpack_from(raw, 0)[2]


def flow_from_raw(raw: bytes) -> FlowSpec:
    """A raw flow stats entry as the FIB's record; the same result as `flow_from_stats` (a test compares).

    Only the destination differs between route flows: the rest of the match is read once per distinct bytes
    (cached), and so are the instructions."""
    length, priority, cookie = _ENTRY_HEAD.unpack_from(raw, 0)
    offset = _ENTRY_HEAD.size
    _, match_length = _TLV.unpack_from(raw, offset)
    position, end = offset + 4, offset + match_length
    v4 = v6 = None  # (start, end) of the destination OXMs
    rest = b""
    kept = position  # the match bytes other than destinations, from here on, are part of the cache key
    while position + 4 <= end:
        field = raw[position + 2] >> 1
        after = position + 4 + raw[position + 3]
        if field in (OXM_IPV4_DST, OXM_IPV6_DST):
            if field == OXM_IPV4_DST:
                v4 = (position, after)
            else:
                v6 = (position, after)
            rest += raw[kept:position]
            kept = after
        position = after
    rest += raw[kept:end]
    head = _READ_MATCHES.get(rest)
    if head is None:
        head = _read_match_head(rest)
        if len(_READ_MATCHES) >= _ACTION_CACHE_LIMIT:
            _READ_MATCHES.clear()
        _READ_MATCHES[rest] = head
    eth_dst, vlan, eth_type = head
    dst = v6 if eth_type == ETH_TYPE_IPV6 else v4
    if dst is None:
        network = ipaddress.ip_network("::/0" if eth_type == ETH_TYPE_IPV6 else "0.0.0.0/0")
    else:
        start, stop = dst
        masked = raw[start + 2] & 1
        size = (stop - start - 4) // 2 if masked else stop - start - 4
        value = int.from_bytes(raw[start + 4 : start + 4 + size], "big")
        if masked:
            mask = raw[start + 4 + size : stop]
            bits = _MASK_BITS.get(mask)
            if bits is None:
                bits = bin(int.from_bytes(mask, "big")).count("1")  # contiguous masks only: ours are
        else:
            bits = size * 8
        if size in (4, 16):
            network = network_from_int(4 if size == 4 else 6, value, bits)
        else:  # not an address of either width: as ipaddress takes it (or refuses it)
            network = ipaddress.IPv6Network((value, bits), strict=False)
    offset += match_length + (-match_length % 8)
    instructions = raw[offset:length]
    actions = _READ_CACHE.get(instructions)
    if actions is None:
        actions = shared_actions(_read_instructions(instructions))
        if len(_READ_CACHE) >= _ACTION_CACHE_LIMIT:
            _READ_CACHE.clear()
        _READ_CACHE[instructions] = actions
    return FlowSpec(cookie, priority, FlowMatch(eth_dst, vlan, eth_type, network), actions)


def _read_match_head(data: bytes) -> tuple[str, int | None, int]:
    """Router MAC, VLAN (None: untagged, -1: not matched) and EtherType of a match without its destination."""
    fields: dict[int, bytes] = {}
    position = 0
    while position + 4 <= len(data):
        _, field_mask, size = _OXM_HEAD.unpack_from(data, position)
        value = data[position + 4 : position + 4 + size]
        fields[field_mask >> 1] = value[: size // 2] if field_mask & 1 else value
        position += 4 + size
    eth_type = int.from_bytes(fields[OXM_ETH_TYPE], "big") if OXM_ETH_TYPE in fields else 0
    eth_dst = fields[OXM_ETH_DST].hex(":") if OXM_ETH_DST in fields else ""
    vid = int.from_bytes(fields[OXM_VLAN_VID], "big") if OXM_VLAN_VID in fields else None
    vlan = -1 if vid is None else (vid & 0xFFF if vid & OFPVID_PRESENT else None)
    return eth_dst, vlan, eth_type


def _read_instructions(data: bytes) -> tuple[Any, ...]:
    out: list[Any] = []
    offset = 0
    while offset + 4 <= len(data):
        kind, size = _TLV.unpack_from(data, offset)
        if size < 4:
            break
        if kind == OFPIT_APPLY_ACTIONS:
            out.extend(_read_raw_actions(data[offset + 8 : offset + size]))
        elif kind != OFPIT_METER:
            out.append(UNKNOWN_ACTION)
        offset += size
    return tuple(out)


def _read_raw_actions(data: bytes) -> list[Any]:
    out: list[Any] = []
    offset = 0
    pushed = False
    while offset + 4 <= len(data):
        kind, size = _TLV.unpack_from(data, offset)
        if size < 8:
            break
        if kind == OFPAT_OUTPUT:
            (port,) = struct.unpack_from("!I", data, offset + 4)
            out.append(ToController() if port == OFPP_CONTROLLER else Output(port))
        elif kind == OFPAT_DEC_NW_TTL:
            out.append(DecTtl())
        elif kind == OFPAT_PUSH_VLAN:
            pushed = True
        elif kind == OFPAT_POP_VLAN:
            out.append(PopVlan())
        elif kind == OFPAT_GROUP:
            out.append(ToGroup(struct.unpack_from("!I", data, offset + 4)[0]))
        elif kind == OFPAT_SET_FIELD:
            _, field_mask, value_size = _OXM_HEAD.unpack_from(data, offset + 4)
            value = data[offset + 8 : offset + 8 + value_size]
            field = field_mask >> 1
            if field == OXM_ETH_SRC:
                out.append(SetEthSrc(value.hex(":")))
            elif field == OXM_ETH_DST:
                out.append(SetEthDst(value.hex(":")))
            elif field == OXM_VLAN_VID:
                vid = int.from_bytes(value, "big") & 0xFFF
                out.append(PushVlan(vid) if pushed else SetVlanVid(vid))
                pushed = False
            else:
                out.append(UNKNOWN_ACTION)
        else:
            out.append(UNKNOWN_ACTION)
        offset += size
    return out
