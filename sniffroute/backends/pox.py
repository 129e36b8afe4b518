"""POX (OpenFlow 1.0) backend: a POX component loaded by module name from the installed package.

    pox.py openflow.of_01 --port=6653 sniffroute.backends.pox --config=sniffroute.toml [--db=PATH]

(`sniffroute run --backend pox` starts exactly that with this interpreter.) POX must be the `halosaur` branch.
On switch connect (POX has already cleared the switch's flows): TCP_NODELAY on the OpenFlow socket (POX leaves
Nagle on, which can hold replies for the switch's delayed ACK), a lowest-priority drop flow so that only punt
flows reach the controller, and the punt flows with whole frames. OpenFlow 1.0 cannot match IPv6 addresses, so
IPv6 is punted by the router's MAC and the multicast MACs it listens on. TAP reader threads hand packet-outs to
POX's cooperative thread with `core.call_later`.

Importing this module needs POX; nothing else in sniffroute imports it.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import pox.openflow.libopenflow_01 as of
from pox.core import core
from pox.lib.addresses import EthAddr, IPAddr

from sniffroute.backends import LiveEngine, start_session_holder
from sniffroute.config import ConfigError, load_config
from sniffroute.store import default_db_path
from sniffroute.tap import TapError
from sniffroute.tunnel import NO_BUFFER, PUNT_COOKIE, TABLE_MISS_PRIORITY, Match, PacketOut, PuntFlow

log = logging.getLogger("sniffroute.pox")

OF10_MAX_PORT = 0xFF00  # OFPP_MAX in OpenFlow 1.0


class SniffroutePox:
    def __init__(self, engine: LiveEngine) -> None:
        self.engine = engine
        self.connection: Any = None
        core.openflow.addListenerByName("ConnectionUp", self._connection_up)
        core.openflow.addListenerByName("ConnectionDown", self._connection_down)
        core.openflow.addListenerByName("PacketIn", self._packet_in)

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
        self.engine.attach(lambda out: _send_later(connection, out))
        log.info("switch %016x connected; punt flows installed", event.dpid)

    def _connection_down(self, event: Any) -> None:
        if event.connection is self.connection:
            self.connection = None
            self.engine.detach()
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


def _send_later(connection: Any, out: PacketOut) -> None:
    """From a TAP thread: pack here, send on POX's thread."""
    message = of.ofp_packet_out(data=out.frame, action=of.ofp_action_output(port=out.port))
    core.call_later(connection.send, message.pack())


def launch(config: str, db: str | None = None) -> None:
    """POX entry point: `sniffroute.backends.pox --config=FILE [--db=PATH]`."""
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
    stop_holder = start_session_holder(settings, engine)

    def going_down(_event: Any) -> None:
        # POX's thread still runs the connection here: the holder's NOTIFICATIONs leave before the switch goes.
        stop_holder()
        engine.drain()
        engine.close()

    core.addListenerByName("GoingDownEvent", going_down)

    def openflow_ready() -> None:
        core.openflow.miss_send_len = NO_BUFFER  # whole frames in every packet-in
        SniffroutePox(engine)

    core.call_when_ready(openflow_ready, ["openflow"], name="sniffroute")
