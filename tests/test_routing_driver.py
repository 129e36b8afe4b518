"""sniffroute.backends.routing: the FIB driven by the engine (no threads started: steps run by hand)."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

from sniffroute.backends.routing import ROUTES_PER_STEP, Routing, describe_ops, failed_while_ready, flow_text
from sniffroute.config import parse_config
from sniffroute.fib import OPENFLOW_13, Barrier, FlowCommand, FlowOp, Op, RouteEntry

NET = ipaddress.ip_network("198.51.100.0/24")
PEER, PEER_MAC, ROUTER_MAC = "10.1.0.1", "02:00:00:00:00:01", "02:00:00:00:00:fe"
CONFIG = parse_config(
    {
        "router_mac": ROUTER_MAC,
        "openflow": {"listen": "127.0.0.1", "port": 6653},
        "interfaces": [{"name": "tap1", "port": 1, "addresses": ["10.1.0.254/24"]}],
    }
)


class Switch:
    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.audits = 0

    def send_ops(self, ops: Sequence[Op]) -> None:
        self.ops.extend(ops)

    def request_audit(self) -> None:
        self.audits += 1


def arp_reply(sender: str, mac: str) -> bytes:
    """An ARP reply from `sender` to the router, as the tunnel hands it to the TAP (RFC 826 layout)."""
    sha = bytes.fromhex(mac.replace(":", ""))
    tha = bytes.fromhex(ROUTER_MAC.replace(":", ""))
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + sha + ipaddress.IPv4Address(sender).packed
    arp += tha + ipaddress.IPv4Address("10.1.0.254").packed
    return tha + sha + b"\x08\x06" + arp


def routing() -> tuple[Routing, Switch, list[float]]:
    now = [100.0]
    driver = Routing(CONFIG, OPENFLOW_13, clock=lambda: now[0])
    switch = Switch()
    driver.attached(switch)
    return driver, switch, now


def routed(*, confirm: bool = False) -> tuple[Routing, Switch, list[float]]:
    """A route to NET via PEER, PEER's MAC seen in its ARP, the switch read back (empty): the flows sent, and,
    with `confirm`, their barriers answered."""
    driver, switch, now = routing()
    driver.routes_changed({NET: RouteEntry(NET, (PEER,), "bgp", 20)})
    driver.frame_from_switch(0, arp_reply(PEER, PEER_MAC))
    driver.read_back([], [])
    if confirm:
        for op in switch.ops:
            if isinstance(op, Barrier):
                driver.confirmed(op.seq)
    return driver, switch, now


def flows(ops: Sequence[Op]) -> dict[object, FlowOp]:
    return {op.flow.match.dst: op for op in ops if isinstance(op, FlowOp)}


def test_nothing_goes_out_before_the_switch_is_read_back_then_only_the_difference() -> None:
    driver, switch, now = routing()
    driver.routes_changed({NET: RouteEntry(NET, (PEER,), "bgp", 20)})
    driver.frame_from_switch(0, arp_reply(PEER, PEER_MAC))
    driver._step(now[0])
    assert switch.ops == []  # not read back yet
    driver.read_back([], [])
    sent = flows(switch.ops)
    assert sent[NET].command is FlowCommand.ADD
    assert any("SetEthDst(02:00:00:00:00:01)" in flow_text(op.flow) for op in sent.values())
    for op in switch.ops:
        if isinstance(op, Barrier):
            driver.confirmed(op.seq)
    status = {s["prefix"]: s["state"] for s in driver.document()["status"]}
    assert status[str(NET)] == "installed"


def test_a_restored_store_matches_the_switch_and_sends_nothing() -> None:
    driver, switch, now = routed()
    held = [op.flow for op in switch.ops if isinstance(op, FlowOp)]
    document = driver.document()

    again, switch_again, _ = routing()
    assert again.restore(document) == 1
    again.read_back(held, [])
    assert switch_again.ops == []


def test_a_refused_flow_marks_its_route_failed() -> None:
    driver, switch, now = routed()
    driver.refused(flows(switch.ops)[NET], "OpenFlow error type 5 code 0")
    status = {s["prefix"]: s for s in driver.document()["status"]}
    assert status[str(NET)]["state"] == "failed" and status[str(NET)]["switch_errors"] == 1


def test_frozen_the_switch_keeps_its_flows_while_the_rib_empties() -> None:
    driver, switch, now = routed()
    sent = len(switch.ops)
    driver.freeze()
    driver.routes_changed({NET: None})
    driver._step(now[0] + 1)
    assert len(switch.ops) == sent
    assert [r["prefix"] for r in driver.document()["routes"]] == [str(NET)]  # kept for the next start


def test_restored_entries_the_rib_does_not_confirm_go_after_the_grace_period() -> None:
    driver, switch, now = routing()
    other = ipaddress.ip_network("203.0.113.0/24")
    document = {
        "routes": [
            {"prefix": str(NET), "next_hops": [PEER], "protocol": "bgp", "distance": 20},
            {"prefix": str(other), "next_hops": [PEER], "protocol": "bgp", "distance": 20},
        ],
        "neighbours": [{"address": PEER, "interface": 0, "mac": PEER_MAC}],
    }
    assert driver.restore(document) == 2
    driver.read_back([], [])
    driver.routes_changed({NET: RouteEntry(NET, (PEER,), "bgp", 20)})  # the live RIB confirms one
    switch.ops.clear()
    now[0] += 1000
    driver._step(now[0])
    deleted = flows(switch.ops)
    assert set(deleted) == {other} and deleted[other].command is FlowCommand.DELETE_STRICT


def test_flows_command_marks_what_the_switch_lacks(tmp_path, capsys) -> None:  # noqa: ANN001
    import json

    from sniffroute.cli import main
    from sniffroute.rib import Rib
    from sniffroute.store import Store

    driver, switch, now = routed(confirm=True)
    held = [op.flow for op in switch.ops if isinstance(op, FlowOp)]
    driver.audit(held[1:], [])  # the switch lost one flow behind our back
    db = tmp_path / "rib.sqlite"
    with Store(db) as store:
        store.save(Rib(), {"fib": driver.document()})
    assert main(["flows", "--json", "--db", str(db)]) == 0
    view = json.loads(capsys.readouterr().out)
    assert not view["converged"]
    assert view["differences"] == [{"mark": "+", "flow": flow_text(held[0])}]
    assert main(["flows", "--db", str(db)]) == 0
    text = capsys.readouterr().out
    assert "1 differences" in text and f"+ {flow_text(held[0])}" in text
    driver.audit(held, [])
    with Store(db) as store:
        store.save(Rib(), {"fib": driver.document()})
    assert main(["flows", "--json", "--db", str(db)]) == 0
    assert json.loads(capsys.readouterr().out)["converged"]


def test_a_full_table_goes_out_in_chunks_each_closed_by_a_barrier() -> None:
    driver, switch, now = routing()
    driver.frame_from_switch(0, arp_reply(PEER, PEER_MAC))
    driver.read_back([], [])
    table = ipaddress.ip_network("16.0.0.0/8").subnets(new_prefix=24)
    nets = [net for net, _ in zip(table, range(ROUTES_PER_STEP * 2 + 10), strict=False)]
    driver.routes_changed({net: RouteEntry(net, (PEER,), "bgp", 20) for net in nets})
    steps = []
    while driver._wake.is_set() or not steps:
        driver._wake.clear()
        before = len(switch.ops)
        driver._step(now[0])
        steps.append(switch.ops[before:])
    assert [sum(isinstance(op, FlowOp) for op in ops) for ops in steps] == [ROUTES_PER_STEP, ROUTES_PER_STEP, 10]
    assert all(isinstance(ops[-1], Barrier) for ops in steps)
    assert set(nets) <= set(flows(switch.ops))


def test_frames_up_through_glean_flows_ask_to_resolve_their_target_v4_and_v6() -> None:
    config = parse_config(
        {
            "router_mac": ROUTER_MAC,
            "interfaces": [{"name": "tap1", "port": 1, "addresses": ["10.1.0.254/24", "2001:db8:1::fe/64"]}],
        }
    )
    driver = Routing(config, OPENFLOW_13, clock=lambda: 100.0)
    driver.set_glean(True)
    eth = bytes.fromhex(ROUTER_MAC.replace(":", "")) + bytes.fromhex("020000000009")
    ipv4 = eth + b"\x08\x00" + bytes(16) + ipaddress.IPv4Address("10.1.0.7").packed
    ipv6 = eth + b"\x86\xdd" + bytes(24) + ipaddress.IPv6Address("2001:db8:1::7").packed
    to_router = eth + b"\x86\xdd" + bytes(24) + ipaddress.IPv6Address("2001:db8:1::fe").packed
    multicast = eth + b"\x86\xdd" + bytes(24) + ipaddress.IPv6Address("ff02::1:ff00:7").packed
    for frame in (ipv4, ipv6, to_router, multicast):
        driver.frame_from_switch(0, frame)
    with driver._lock:
        driver._drain(100.0)  # not `_step`: it would send the resolution probes
    wanted = {str(request.address) for request in driver.fib.resolve_requests(100.0)}
    assert wanted == {"10.1.0.7", "2001:db8:1::7"}


def test_each_batch_sent_is_described_in_one_line() -> None:
    driver, switch, _ = routed()
    assert describe_ops(switch.ops) == f"2 add: add {NET}, add {PEER}/32"  # the route and its next hop's host flow
    many = [op for op in switch.ops if isinstance(op, FlowOp)] * 5 + [Barrier(1)]
    assert describe_ops(many) == "10 add"
    assert describe_ops([Barrier(2)]) == "barriers only"


def test_a_kernel_neighbour_failure_counts_only_when_the_switch_was_there() -> None:
    # No switch: the kernel's ARP went nowhere, whatever it concluded.
    assert not failed_while_ready(age=0.5, now=100.0, ready_since=None)
    # Failed 4 s ago, switch ready for 1 s: a failure from before the switch came, e.g. while restarting.
    assert not failed_while_ready(age=4.0, now=100.0, ready_since=99.0)
    # Failed after the switch came: the neighbour did not answer through it.
    assert failed_while_ready(age=0.5, now=100.0, ready_since=98.0)
    # A kernel without cache ages: only failures well after the switch came count.
    assert not failed_while_ready(age=None, now=100.0, ready_since=98.0)
    assert failed_while_ready(age=None, now=110.0, ready_since=98.0)


class _Neighbour(dict):
    """A pyroute2 neighbour message, as far as the FIB reads one."""

    def __init__(self, address: str, state: int, age: float) -> None:
        super().__init__(state=state)
        self.attrs = {"NDA_DST": address, "NDA_LLADDR": None, "NDA_CACHEINFO": {"ndm_updated": int(age * 100)}}

    def get_attr(self, name: str) -> object:
        return self.attrs.get(name)


def _kernel_reports(monkeypatch, neighbours: list[_Neighbour]) -> None:  # noqa: ANN001
    import pyroute2

    class Link(dict):
        def get_attr(self, name: str) -> object:
            return "tap1" if name == "IFLA_IFNAME" else None

    class FakeIPRoute:
        def __enter__(self) -> FakeIPRoute:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def close(self) -> None:
            return None

        def get_links(self) -> list[Link]:
            return [Link(index=7)]

        def get_neighbours(self, ifindex: int) -> list[_Neighbour]:
            return neighbours if ifindex == 7 else []

    monkeypatch.setattr(pyroute2, "IPRoute", FakeIPRoute)


def test_the_kernel_failing_a_next_hop_before_the_switch_came_keeps_its_routes(monkeypatch) -> None:  # noqa: ANN001
    driver, switch, now = routed(confirm=True)
    switch.ops.clear()
    # Failed 10 s ago: before the switch was read back (the controller starting, its ARP going nowhere).
    kernel = [_Neighbour(PEER, 0x20, age=10.0)]
    _kernel_reports(monkeypatch, kernel)
    now[0] += 1.0
    driver._poll_kernel(now[0])
    driver._step(now[0])
    assert switch.ops == []
    # Failed just now, the switch connected: the next hop is gone, its route waits for it.
    kernel[:] = [_Neighbour(PEER, 0x20, age=0.1)]
    driver._poll_kernel(now[0])
    driver._step(now[0])
    assert flows(switch.ops)[NET].command is FlowCommand.DELETE_STRICT


def test_an_audit_re_adds_a_lost_flow_and_warns_once_about_one_it_cannot_fix(caplog) -> None:  # noqa: ANN001
    driver, switch, now = routed(confirm=True)
    held = [op.flow for op in switch.ops if isinstance(op, FlowOp)]
    lost = next(flow for flow in held if flow.match.dst == NET)
    switch.ops.clear()
    driver.audit([flow for flow in held if flow is not lost], [])  # the switch lost a flow behind our back
    assert [(op.command, op.flow) for op in switch.ops if isinstance(op, FlowOp)] == [(FlowCommand.ADD, lost)]
    for op in switch.ops:
        if isinstance(op, Barrier):
            driver.confirmed(op.seq)
    switch.ops.clear()
    with caplog.at_level("WARNING", logger="sniffroute.fib"):
        for _ in range(3):  # the add did not take: it is not sent again, and said once
            driver.audit([flow for flow in held if flow is not lost], [])
    assert not any(isinstance(op, FlowOp) for op in switch.ops)
    warnings = [r for r in caplog.records if "did not change when put right" in r.getMessage()]
    assert len(warnings) == 1 and "1 route flows" in warnings[0].getMessage()
