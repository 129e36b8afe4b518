"""A small OpenFlow flow table for the FIB tests, written from the OpenFlow 1.3 semantics, not from our code.

It applies flow and group ops (add replaces the same match and priority; modify-strict and delete-strict
address exactly one match and priority; a group referenced by a flow cannot be re-added; deleting a group removes
the flows that use it) and forwards packets: the highest-priority matching flow wins. Packets are plain dicts.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from sniffroute.fib import (
    Barrier,
    DecTtl,
    FlowCommand,
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
from sniffroute.tunnel import PuntFlow

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806


class SwitchError(Exception):
    pass


@dataclass
class FakeSwitch:
    flows: dict[tuple[int, Any], FlowSpec] = field(default_factory=dict)
    punts: list[PuntFlow] = field(default_factory=list)
    groups: dict[int, GroupSpec] = field(default_factory=dict)
    applied: int = 0

    def apply(self, op: Op) -> None:
        if isinstance(op, Barrier):
            return
        self.applied += 1
        if isinstance(op, FlowOp):
            flow = op.flow
            key = (flow.priority, flow.match)
            if op.command is FlowCommand.ADD:
                self.flows[key] = flow
            elif op.command is FlowCommand.MODIFY_STRICT:
                if key in self.flows:  # OpenFlow 1.3: modify of a missing flow adds nothing
                    self.flows[key] = flow
            else:
                self.flows.pop(key, None)
            return
        assert isinstance(op, GroupOp)
        gid = op.group.group_id
        if op.command is GroupCommand.ADD:
            if gid in self.groups:
                raise SwitchError("OFPGMFC_GROUP_EXISTS")
            self.groups[gid] = op.group
        elif op.command is GroupCommand.MODIFY:
            if gid not in self.groups:
                raise SwitchError("OFPGMFC_UNKNOWN_GROUP")
            self.groups[gid] = op.group
        else:
            self.groups.pop(gid, None)
            self.flows = {k: f for k, f in self.flows.items() if ToGroup(gid) not in f.actions}

    def apply_all(self, ops: list[Op]) -> None:
        for op in ops:
            self.apply(op)

    def dump(self) -> list[FlowSpec]:
        return list(self.flows.values())

    def forward(self, packet: dict[str, Any]) -> tuple[Any, ...]:
        """('punt', purpose) | ('controller',) | ('out', port, eth_src, eth_dst, vlan, ttl) | ('drop',);
        a select group answers with the sorted tuple of its buckets' results."""
        best: tuple[int, Any] | None = None
        for punt in self.punts:
            if _punt_matches(punt, packet) and (best is None or punt.priority > best[0]):
                best = (punt.priority, punt)
        for flow in self.flows.values():
            if _route_matches(flow, packet) and (best is None or flow.priority > best[0]):
                best = (flow.priority, flow)
        if best is None:
            return ("drop",)
        chosen = best[1]
        if isinstance(chosen, PuntFlow):
            return ("punt", chosen.purpose)
        return self._run(chosen.actions, packet)

    def _run(self, actions: tuple[Any, ...], packet: dict[str, Any]) -> tuple[Any, ...]:
        p = dict(packet)
        for action in actions:
            if isinstance(action, DecTtl):
                p["ttl"] -= 1
            elif isinstance(action, SetEthSrc):
                p["eth_src"] = action.mac
            elif isinstance(action, SetEthDst):
                p["eth_dst"] = action.mac
            elif isinstance(action, PushVlan):
                assert p["vlan"] is None, "push on a tagged frame would stack a second tag"
                p["vlan"] = action.vid
            elif isinstance(action, SetVlanVid):
                assert p["vlan"] is not None
                p["vlan"] = action.vid
            elif isinstance(action, PopVlan):
                assert p["vlan"] is not None
                p["vlan"] = None
            elif isinstance(action, ToController):
                return ("controller",)
            elif isinstance(action, ToGroup):
                group = self.groups.get(action.group_id)
                if group is None:
                    return ("drop",)
                return tuple(sorted(self._run(b.actions, p) for b in group.buckets))
            elif isinstance(action, Output):
                return ("out", action.port, p["eth_src"], p["eth_dst"], p["vlan"], p["ttl"])
        return ("drop",)


def packet(
    dst: str,
    *,
    in_port: int = 1,
    vlan: int | None = None,
    eth_dst: str,
    ip_proto: int = 17,
    tcp_src: int | None = None,
    tcp_dst: int | None = None,
    eth_src: str = "02:00:00:00:99:99",
    ttl: int = 64,
    arp: bool = False,
) -> dict[str, Any]:
    address = ipaddress.ip_address(dst)
    eth_type = ETH_ARP if arp else (ETH_IPV4 if address.version == 4 else ETH_IPV6)
    return {
        "in_port": in_port,
        "vlan": vlan,
        "eth_src": eth_src,
        "eth_dst": eth_dst,
        "eth_type": eth_type,
        "dst": address,
        "ip_proto": None if arp else ip_proto,
        "tcp_src": tcp_src,
        "tcp_dst": tcp_dst,
        "ttl": ttl,
    }


def _route_matches(flow: FlowSpec, p: dict[str, Any]) -> bool:
    m = flow.match
    return (
        m.eth_dst == p["eth_dst"]
        and m.vlan == p["vlan"]
        and m.eth_type == p["eth_type"]
        and p["dst"].version == m.dst.version
        and p["dst"] in m.dst
    )


def _punt_matches(flow: PuntFlow, p: dict[str, Any]) -> bool:
    m = flow.match
    mac = bytes.fromhex(p["eth_dst"].replace(":", ""))
    checks = [
        m.in_port == p["in_port"],
        m.vlan == p["vlan"],
        m.eth_dst is None or m.eth_dst == mac,
        m.eth_type is None or int(m.eth_type) == p["eth_type"],
        m.arp_tpa is None or (p["eth_type"] == ETH_ARP and m.arp_tpa == p["dst"]),
        m.ip_proto is None or int(m.ip_proto) == p["ip_proto"],
        m.ipv4_dst is None or (p["eth_type"] == ETH_IPV4 and m.ipv4_dst == p["dst"]),
        m.ipv6_dst is None or (p["eth_type"] == ETH_IPV6 and m.ipv6_dst == p["dst"]),
        m.tcp_src is None or m.tcp_src == p["tcp_src"],
        m.tcp_dst is None or m.tcp_dst == p["tcp_dst"],
    ]
    return all(checks)


# -- a small router used by the FIB tests ----------------------------------------------------------------------

ROUTER_MAC = "02:00:5e:10:00:01"


def interface(name: str, port: int, vlan: int | None, *addresses: str) -> Any:
    from sniffroute.config import RouterInterface

    return RouterInterface(
        name=name, port=port, vlan=vlan, addresses=tuple(ipaddress.ip_interface(a) for a in addresses), mtu=1500
    )


# port 1: 10.0.1.0/24 + 2001:db8:1::/64 untagged; port 2: 10.0.2.0/24 untagged; port 3 VLAN 100: 10.0.3.0/24
SR1 = interface("sr1", 1, None, "10.0.1.254/24", "2001:db8:1::fe/64")
SR2 = interface("sr2", 2, None, "10.0.2.254/24")
SR3_V100 = interface("sr3", 3, 100, "10.0.3.254/24")
UNTAGGED = (SR1, SR2)
WITH_VLAN = (SR1, SR2, SR3_V100)


def neighbour_mac(address: str) -> str:
    """A distinct, stable unicast MAC per neighbour address (locally administered)."""
    raw = ipaddress.ip_address(address).packed[-4:]
    return "02:aa:" + ":".join(f"{b:02x}" for b in raw)
