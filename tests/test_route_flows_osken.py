"""The os-ken backend's route flows: our packed bytes equal os-ken's own serialisation (the oracle), and flows
read back through os-ken's parser come back as the records that were sent."""

from __future__ import annotations

import ipaddress
import itertools
import struct
from dataclasses import replace
from types import SimpleNamespace

import pytest

pytest.importorskip("os_ken")

from os_ken.ofproto import ofproto_parser, ofproto_v1_3, ofproto_v1_3_parser  # noqa: E402

from sniffroute.backends.osken import (  # noqa: E402
    OsKenFlows,
    Packer,
    cookie_of,
    flow_from_raw,
    flow_from_stats,
    group_from_desc,
)
from sniffroute.fib import (  # noqa: E402
    ROUTE_COOKIE,
    Bucket,
    DecTtl,
    FlowCommand,
    FlowMatch,
    FlowOp,
    FlowSpec,
    GroupCommand,
    GroupOp,
    GroupSpec,
    Output,
    PopVlan,
    PushVlan,
    SetEthDst,
    SetEthSrc,
    SetVlanVid,
    ToController,
    ToGroup,
)

DATAPATH = SimpleNamespace(ofproto=ofproto_v1_3, ofproto_parser=ofproto_v1_3_parser, id=1)
MAC, HOP = "02:00:00:00:00:fe", "02:00:00:00:00:01"
FORWARD = (DecTtl(), SetEthSrc(MAC), SetEthDst(HOP), Output(3))

FLOWS = [
    FlowSpec(ROUTE_COOKIE, 0x1000 + 24, FlowMatch(MAC, None, 0x0800, ipaddress.ip_network("198.51.100.0/24")), FORWARD),
    FlowSpec(ROUTE_COOKIE, 0x1000 + 32, FlowMatch(MAC, None, 0x0800, ipaddress.ip_network("10.0.0.1/32")), FORWARD),
    FlowSpec(ROUTE_COOKIE, 0x1000, FlowMatch(MAC, 10, 0x0800, ipaddress.ip_network("0.0.0.0/0")),
             (ToGroup(0x5E000001),)),
    FlowSpec(ROUTE_COOKIE, 0x1000 + 36, FlowMatch(MAC, None, 0x86DD, ipaddress.ip_network("2001:db8:1000::/36")),
             (DecTtl(), SetEthSrc(MAC), SetEthDst(HOP), PushVlan(20), Output(2))),
    FlowSpec(ROUTE_COOKIE, 0x1000 + 24, FlowMatch(MAC, 10, 0x0800, ipaddress.ip_network("10.1.0.0/24")),
             (SetEthSrc(MAC), SetEthDst(HOP), SetVlanVid(30), Output(2))),
    FlowSpec(ROUTE_COOKIE, 0x1000 + 24, FlowMatch(MAC, 10, 0x0800, ipaddress.ip_network("10.2.0.0/24")),
             (SetEthSrc(MAC), SetEthDst(HOP), PopVlan(), Output(1))),
    FlowSpec(ROUTE_COOKIE, 0x1000 + 24, FlowMatch(MAC, None, 0x0800, ipaddress.ip_network("10.3.0.0/24")),
             (ToController(),)),
]  # fmt: skip
GROUP = GroupSpec(0x5E000001, (Bucket(1, FORWARD), Bucket(1, (DecTtl(), SetEthSrc(MAC), SetEthDst(MAC), Output(4)))))


def oracle(op: FlowOp | GroupOp, metered: bool, xid: int) -> bytes:
    msg = OsKenFlows(DATAPATH, metered)._message(op)
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


@pytest.mark.parametrize("metered", [False, True])
@pytest.mark.parametrize("command", list(FlowCommand))
@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: str(f.match.dst))
def test_flow_mods_are_packed_as_os_ken_serialises_them(flow: FlowSpec, command: FlowCommand, metered: bool) -> None:
    op = FlowOp(command, flow)
    assert Packer(metered).flow_mod(op, 77) == oracle(op, metered, 77)


@pytest.mark.parametrize("metered", [False, True])
def test_one_packer_packs_many_flows_as_os_ken_serialises_each(metered: bool) -> None:
    # One Packer reuses bytes between flows of one prefix length and next hop: every flow must still be its own.
    packer = Packer(metered)
    flows = [*FLOWS, *(replace(f, match=replace(f.match, dst=ipaddress.ip_network(n))) for f, n in zip(
        FLOWS, ["203.0.113.0/24", "10.9.9.9/32", "0.0.0.0/0", "2001:db8:f000::/36", "10.4.0.0/24", "10.5.0.0/24",
                "10.6.0.0/24"], strict=True))]  # fmt: skip
    for xid, (flow, command) in enumerate(itertools.product(flows, FlowCommand), start=100):
        op = FlowOp(command, flow)
        assert packer.flow_mod(op, xid) == oracle(op, metered, xid), (flow, command)
    other = replace(FLOWS[0], actions=tuple(FLOWS[0].actions[:-1]) + (Output(7),))  # same prefix, other actions
    assert packer.flow_mod(FlowOp(FlowCommand.ADD, other), 1) == oracle(FlowOp(FlowCommand.ADD, other), metered, 1)


@pytest.mark.parametrize("command", list(GroupCommand))
def test_group_mods_are_packed_as_os_ken_serialises_them(command: GroupCommand) -> None:
    op = GroupOp(command, GROUP)
    assert Packer(False).group_mod(op, 5) == oracle(op, False, 5)


def test_barrier() -> None:
    msg = ofproto_v1_3_parser.OFPBarrierRequest(DATAPATH)
    msg.set_xid(9)
    msg.serialize()
    assert Packer.barrier(9) == bytes(msg.buf)


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: str(f.match.dst))
def test_flows_read_back_are_the_flows_sent(flow: FlowSpec) -> None:
    # The switch's flow stats, as os-ken parses them, from the match and instructions we sent.
    sent = OsKenFlows(DATAPATH, False)._message(FlowOp(FlowCommand.ADD, flow))
    buf = bytearray()
    sent.match.serialize(buf, 0)
    match = ofproto_v1_3_parser.OFPMatch.parser(bytes(buf), 0)
    instructions = []
    for instruction in sent.instructions:
        raw = bytearray()
        instruction.serialize(raw, 0)
        instructions.append(ofproto_v1_3_parser.OFPInstruction.parser(bytes(raw), 0))
    stat = SimpleNamespace(cookie=flow.cookie, priority=flow.priority, match=match, instructions=instructions)
    assert flow_from_stats(DATAPATH, stat) == flow


def test_groups_read_back_are_the_groups_sent() -> None:
    sent = OsKenFlows(DATAPATH, False)._message(GroupOp(GroupCommand.ADD, GROUP))
    buckets = []
    for bucket in sent.buckets:
        raw = bytearray()
        bucket.serialize(raw, 0)
        buckets.append(ofproto_v1_3_parser.OFPBucket.parser(bytes(raw), 0))
    stat = SimpleNamespace(group_id=GROUP.group_id, type=ofproto_v1_3.OFPGT_SELECT, buckets=buckets)
    assert group_from_desc(DATAPATH, stat) == GROUP


def stats_entry(flow: FlowSpec) -> bytes:
    """A flow stats entry as OVS sends it (OpenFlow 1.3 ofp_flow_stats), from the match and actions we sent."""
    from sniffroute.backends.osken import pack_match

    match = pack_match(flow.match)
    instructions = Packer(True).instructions(flow.actions)  # a meter instruction, too, where there is one
    head = struct.pack("!HBxIIHHHH4xQQQ", 48 + len(match) + len(instructions), 0, 7, 0, flow.priority, 0, 0, 0,
                       flow.cookie, 12, 3400)  # fmt: skip
    return head + match + instructions


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: str(f.match.dst))
def test_raw_flow_stats_read_as_os_ken_parses_them(flow: FlowSpec) -> None:
    entries = [stats_entry(flow), stats_entry(FLOWS[0])]
    body = b"".join(entries)
    header = struct.pack("!BBHIHH4x", 4, ofproto_v1_3.OFPT_MULTIPART_REPLY, 16 + len(body), 1, 1, 0)
    parsed = ofproto_parser.msg(DATAPATH, 4, ofproto_v1_3.OFPT_MULTIPART_REPLY, 16 + len(body), 1, header + body)
    assert [flow_from_raw(raw) for raw in entries] == [flow_from_stats(DATAPATH, s) for s in parsed.body]
    assert flow_from_raw(entries[0]) == flow and cookie_of(entries[0]) == ROUTE_COOKIE
