"""POX (OpenFlow 1.0) backend: a POX component loaded by module name from the installed package.

    pox.py openflow.of_01 --port=6653 sniffroute.backends.pox --config=sniffroute.toml [--db=PATH]

(`sniffroute run --backend pox` starts exactly that with this interpreter.) POX must be the `halosaur` branch.
On switch connect (POX's `clear_flows_on_connect` is turned off: the route flows keep forwarding while we
reconcile): TCP_NODELAY on the OpenFlow socket (POX leaves
Nagle on, which can hold replies for the switch's delayed ACK), a lowest-priority drop flow so that only punt
flows reach the controller, and the punt flows with whole frames. OpenFlow 1.0 cannot match IPv6 addresses, so
IPv6 is punted by the router's MAC and the multicast MACs it listens on. The connection's reads are taken over
(`sniffroute.backends.pox_reader`): packet-ins go straight to the engine, other messages to POX's handlers and
the events below. TAP reader threads send their packet-outs themselves, under the connection's send lock
(`PacketOuts`). Route flows: the switch's flows are read back (flow stats) and the FIB sends only the difference
(`PoxFlows`). OpenFlow 1.0 has no TTL decrement, no select groups (ECMP uses one path) and no IPv6 matches (IPv6
routes are reported unsupported); its deletes cannot filter by cookie, so punt flows of an earlier run with
another configuration stay until the switch restarts.

Importing this module needs POX; nothing else in sniffroute imports it.
"""

from __future__ import annotations

import faulthandler
import ipaddress
import logging
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pox.openflow.libopenflow_01 as of
from pox.core import core
from pox.lib.addresses import EthAddr, IPAddr

from sniffroute.backends import LiveEngine, start_session_holder
from sniffroute.backends.openflow_packets import pack_packet_out_10
from sniffroute.backends.pox_reader import ConnectionReader
from sniffroute.backends.routing import OpLedger
from sniffroute.config import ConfigError, load_config
from sniffroute.fib import (
    OPENFLOW_10,
    Barrier,
    FlowCommand,
    FlowMatch,
    FlowOp,
    FlowSpec,
    Op,
    Output,
    PopVlan,
    PushVlan,
    SetEthDst,
    SetEthSrc,
    SetVlanVid,
    ToController,
)
from sniffroute.store import default_db_path
from sniffroute.tap import TapError
from sniffroute.tunnel import NO_BUFFER, PUNT_COOKIE, TABLE_MISS_PRIORITY, Match, PacketOut, PuntFlow

log = logging.getLogger("sniffroute.pox")

OF10_MAX_PORT = 0xFF00  # OFPP_MAX in OpenFlow 1.0
UNKNOWN_ACTION = Output(-1)  # read back but not ours to express: differs from any plan, so it is replaced


class SniffroutePox:
    def __init__(self, engine: LiveEngine) -> None:
        self.engine = engine
        self.connection: Any = None
        self.flows: PoxFlows | None = None
        core.openflow.addListenerByName("ConnectionUp", self._connection_up)
        core.openflow.addListenerByName("ConnectionDown", self._connection_down)
        core.openflow.addListenerByName("PacketIn", self._packet_in)
        core.openflow.addListenerByName("FlowStatsReceived", self._flow_stats)
        core.openflow.addListenerByName("BarrierIn", self._barrier_in)
        core.openflow.addListenerByName("ErrorIn", self._error_in)

    def _connection_up(self, event: Any) -> None:
        connection = event.connection
        try:
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            log.warning("cannot set TCP_NODELAY on the OpenFlow connection: %s", exc)
        connection.send(of.ofp_flow_mod(priority=TABLE_MISS_PRIORITY, match=of.ofp_match()))  # no action: drop
        for flow in self.engine.punt_flows(ipv6_fields=False):
            connection.send(_flow_mod(flow))
        connection.send(of.ofp_barrier_request())
        self.connection = connection
        ConnectionReader(connection, self.engine.packet_in).install()
        self.engine.attach(PacketOuts(connection).send)
        log.info("switch %016x connected; punt flows installed", event.dpid)
        routing = self.engine.routing
        if routing is not None:
            self.flows = PoxFlows(connection)
            routing.attached(self.flows)
            self.flows.request_read_back()

    def _flow_stats(self, event: Any) -> None:
        routing = self.engine.routing
        if routing is not None and self.flows is not None and event.connection is self.connection:
            try:
                flows = [flow_from_stats(stat) for stat in event.stats]
            except Exception:  # an unreadable entry: say so; the switch keeps what it has
                log.exception("reading the switch's flows failed")
                return
            if self.flows.auditing:
                self.flows.auditing = False
                routing.audit(flows, [])
            else:
                routing.read_back(flows, [])

    def _barrier_in(self, event: Any) -> None:
        routing = self.engine.routing
        if routing is not None and self.flows is not None and event.connection is self.connection:
            seq = self.flows.ledger.barrier_replied(event.xid)
            if seq is not None:
                routing.confirmed(seq)

    def _error_in(self, event: Any) -> None:
        routing = self.engine.routing
        if routing is not None and self.flows is not None and event.connection is self.connection:
            op = self.flows.ledger.op_of(event.xid)
            if op is not None:
                event.should_log = False
                routing.refused(op, f"OpenFlow error type {event.ofp.type} code {event.ofp.code}")

    def _connection_down(self, event: Any) -> None:
        if event.connection is self.connection:
            self.connection = None
            self.flows = None
            self.engine.detach()
            if self.engine.routing is not None:
                self.engine.routing.detached()
            log.info("switch disconnected")

    def _packet_in(self, event: Any) -> None:
        self.engine.packet_in(event.port, event.data, event.ofp.total_len)


def _match(match: Match) -> Any:
    fields: dict[str, Any] = {
        "in_port": match.in_port,
        "dl_vlan": of.OFP_VLAN_NONE if match.vlan is None else match.vlan,
    }
    if match.eth_dst is not None:
        fields["dl_dst"] = EthAddr(match.eth_dst)
    if match.eth_type is not None:
        fields["dl_type"] = int(match.eth_type)
    if match.arp_tpa is not None:
        fields["nw_dst"] = IPAddr(str(match.arp_tpa))  # OpenFlow 1.0: nw_dst is the ARP target address
    if match.ip_proto is not None:
        fields["nw_proto"] = int(match.ip_proto)
    if match.ipv4_dst is not None:
        fields["nw_dst"] = IPAddr(str(match.ipv4_dst))
    if match.ipv6_dst is not None:
        raise ValueError("OpenFlow 1.0 cannot match IPv6 addresses: ask for punt flows without ipv6_fields")
    if match.tcp_src is not None:
        fields["tp_src"] = match.tcp_src
    if match.tcp_dst is not None:
        fields["tp_dst"] = match.tcp_dst
    return of.ofp_match(**fields)


def _flow_mod(flow: PuntFlow) -> Any:
    return of.ofp_flow_mod(
        cookie=PUNT_COOKIE,
        priority=flow.priority,
        match=_match(flow.match),
        actions=[of.ofp_action_output(port=of.OFPP_CONTROLLER, max_len=NO_BUFFER)],
    )


class PacketOuts:
    """Packet-outs packed and sent on the TAP reader threads themselves: handing each to POX's thread would take
    two more thread wake-ups per frame (`call_later` pings POX's select hub, which wakes its scheduler). The
    connection's `send` is put under a lock first, so POX's own sends (handshake, echo replies, flow mods) and
    ours never interleave on the socket. POX's send never blocks: what the socket does not take at once goes to
    POX's deferred sender, and later sends queue behind it, in order."""

    def __init__(self, connection: Any) -> None:
        self._send = serialise_sends(connection)

    def send(self, out: PacketOut) -> None:
        self._send(pack_packet_out_10(out.port, out.frame))


def serialise_sends(connection: Any) -> Callable[[Any], None]:
    """Every send on `connection` under one lock, whichever thread calls it (returns the locked send)."""
    send = connection.send
    lock = threading.Lock()

    def locked_send(data: Any) -> None:
        with lock:
            send(data)

    connection.send = locked_send
    return locked_send


def launch(config: str, db: str | None = None) -> None:
    """POX entry point: `sniffroute.backends.pox --config=FILE [--db=PATH]`."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: every thread's stack to stderr
    try:
        settings = load_config(config)
    except ConfigError as exc:
        log.error("%s", exc)
        core.quit(exit_code=2)
        return
    too_high = [i.name for i in settings.interfaces if i.port >= OF10_MAX_PORT]
    if too_high:
        log.error("%s: OpenFlow 1.0 ports stop at %d", ", ".join(too_high), OF10_MAX_PORT - 1)
        core.quit(exit_code=2)
        return
    engine = LiveEngine(settings, Path(db) if db else (settings.store or default_db_path()))
    try:
        engine.start()
    except (TapError, OSError) as exc:
        log.error("%s", exc)
        core.quit(exit_code=1)
        return
    engine.enable_routing(OPENFLOW_10)
    stop_holder = start_session_holder(settings, engine)

    def going_down(_event: Any) -> None:
        # POX's thread still runs the connection here: the holder's NOTIFICATIONs leave before the switch goes.
        stop_holder()
        engine.drain()
        engine.close()

    core.addListenerByName("GoingDownEvent", going_down)

    def openflow_ready() -> None:
        core.openflow.miss_send_len = NO_BUFFER  # whole frames in every packet-in
        core.openflow.clear_flows_on_connect = False  # the route flows are reconciled, never wiped
        SniffroutePox(engine)

    core.call_when_ready(openflow_ready, ["openflow"], name="sniffroute")


# -- route flows ---------------------------------------------------------------------------------------------


class PoxFlows:
    """The FIB's ops as OpenFlow 1.0 messages: packed on the caller's thread, sent on POX's. Each message's xid
    maps an error back to its op and a barrier reply to its sequence number."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._send_lock = threading.Lock()  # one sender at a time: the ledger sees each batch whole
        self.ledger = OpLedger()
        self.auditing = False

    def request_read_back(self, *, audit: bool = False) -> None:
        self.auditing = audit
        request = of.ofp_flow_stats_request(match=of.ofp_match(), table_id=0xFF, out_port=of.OFPP_NONE)
        core.call_later(self.connection.send, of.ofp_stats_request(body=request))

    def request_audit(self) -> None:
        self.request_read_back(audit=True)

    def send_ops(self, ops: Sequence[Op]) -> None:
        parts: list[bytes] = []
        with self._send_lock:
            for op in ops:
                if isinstance(op, Barrier):
                    message = of.ofp_barrier_request()
                    self.ledger.barrier(message.xid, op.seq)
                elif isinstance(op, FlowOp):
                    message = _route_flow_mod(op)
                    self.ledger.sent(message.xid, op)
                else:
                    continue  # no groups in OpenFlow 1.0: the FIB never plans them for it
                parts.append(message.pack())
        core.call_later(self.connection.send, b"".join(parts))


_COMMANDS = {
    FlowCommand.ADD: of.OFPFC_ADD,
    FlowCommand.MODIFY_STRICT: of.OFPFC_MODIFY_STRICT,
    FlowCommand.DELETE_STRICT: of.OFPFC_DELETE_STRICT,
}


def _route_flow_mod(op: FlowOp) -> Any:
    flow = op.flow
    match = flow.match
    ofmatch = of.ofp_match(
        dl_dst=EthAddr(match.eth_dst),
        dl_vlan=of.OFP_VLAN_NONE if match.vlan is None else match.vlan,
        dl_type=match.eth_type,
    )
    if match.dst.prefixlen:
        ofmatch.set_nw_dst(str(match.dst.network_address), match.dst.prefixlen)
    actions: list[Any] = []
    if op.command is not FlowCommand.DELETE_STRICT:
        for action in flow.actions:
            if isinstance(action, SetEthSrc):
                actions.append(of.ofp_action_dl_addr.set_src(EthAddr(action.mac)))
            elif isinstance(action, SetEthDst):
                actions.append(of.ofp_action_dl_addr.set_dst(EthAddr(action.mac)))
            elif isinstance(action, PushVlan | SetVlanVid):
                actions.append(of.ofp_action_vlan_vid(vlan_vid=action.vid))
            elif isinstance(action, PopVlan):
                actions.append(of.ofp_action_strip_vlan())
            elif isinstance(action, Output):
                actions.append(of.ofp_action_output(port=action.port))
            elif isinstance(action, ToController):
                actions.append(of.ofp_action_output(port=of.OFPP_CONTROLLER, max_len=NO_BUFFER))
    return of.ofp_flow_mod(
        command=_COMMANDS[op.command],
        cookie=flow.cookie,
        priority=flow.priority,
        match=ofmatch,
        actions=actions,
        out_port=of.OFPP_NONE,
    )


def flow_from_stats(stat: Any) -> FlowSpec:
    """A flow stats entry as the FIB's record, canonical (see sniffroute.fib.model)."""
    match = stat.match
    vlan = None if match.dl_vlan in (None, of.OFP_VLAN_NONE) else int(match.dl_vlan)
    address, bits = match.get_nw_dst()
    network = ipaddress.ip_network(f"{address or '0.0.0.0'}/{bits if address else 0}", strict=False)
    actions: list[Any] = []
    for action in stat.actions:
        if isinstance(action, of.ofp_action_dl_addr):
            mac = str(action.dl_addr).lower()
            actions.append(SetEthSrc(mac) if action.type == of.OFPAT_SET_DL_SRC else SetEthDst(mac))
        elif isinstance(action, of.ofp_action_vlan_vid):
            actions.append(PushVlan(action.vlan_vid) if vlan is None else SetVlanVid(action.vlan_vid))
        elif isinstance(action, of.ofp_action_strip_vlan):
            actions.append(PopVlan())
        elif isinstance(action, of.ofp_action_output):
            actions.append(ToController() if action.port == of.OFPP_CONTROLLER else Output(action.port))
        else:
            actions.append(UNKNOWN_ACTION)
    eth_dst = str(match.dl_dst).lower() if match.dl_dst is not None else ""
    flow_match = FlowMatch(eth_dst, vlan, int(match.dl_type or 0), network)
    return FlowSpec(stat.cookie, stat.priority, flow_match, tuple(actions))
