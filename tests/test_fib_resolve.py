"""sniffroute.fib next-hop resolution and route status: pending until resolved, bounded when it never is,
failed and retried with backoff when the switch refuses a flow."""

from __future__ import annotations

import ipaddress

from sniffroute.fib import (
    OPENFLOW_13,
    Barrier,
    ErrorBackoff,
    Fib,
    FlowCommand,
    FlowOp,
    NeighbourObservation,
    ResolverLimits,
    RouteEntry,
    RouteState,
)
from sniffroute.fib.resolve import NeighbourState, NeighbourTable
from tests.fib_fakeswitch import ROUTER_MAC, UNTAGGED, FakeSwitch, neighbour_mac, packet

PREFIX = ipaddress.ip_network("198.51.100.0/24")
HOP = "10.0.2.1"


def _route(*hops: str, prefix: ipaddress.IPv4Network = PREFIX) -> RouteEntry:
    return RouteEntry(prefix, hops, "bgp", 20)


def _seen(address: str, port: int = 2, mac: str | None = None) -> NeighbourObservation:
    return NeighbourObservation(
        address=ipaddress.ip_address(address), mac=mac or neighbour_mac(address), port=port, vlan=None
    )


def _state(fib: Fib, prefix: ipaddress.IPv4Network = PREFIX) -> RouteState:
    status = fib.status(prefix)
    assert status is not None
    return status.state


def _barrier(ops: list) -> int:
    return [op.seq for op in ops if isinstance(op, Barrier)][-1]


def test_unresolved_is_pending_then_resolved_then_installed() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    switch = FakeSwitch()
    switch.apply_all(fib.sync(0.0))
    fib.update({PREFIX: _route(HOP)}, 1.0)
    assert _state(fib) is RouteState.PENDING
    assert "unresolved: 10.0.2.1" in fib.status(PREFIX).detail
    assert not any(op.flow.match.dst == PREFIX for op in fib.sync(1.0) if isinstance(op, FlowOp))
    requests = fib.resolve_requests(1.0)
    assert [(str(r.address), r.interface, r.attempt) for r in requests] == [(HOP, "sr2", 1)]
    assert fib.resolve_requests(1.5) == []  # backed off
    fib.observe(_seen(HOP), 2.0)
    assert fib.resolve_requests(100.0) == []  # resolved: nothing more to ask
    ops = fib.sync(2.0)
    assert _state(fib) is RouteState.PENDING and "awaiting" in fib.status(PREFIX).detail
    switch.apply_all(ops)
    fib.confirm(_barrier(ops))
    assert _state(fib) is RouteState.INSTALLED
    assert switch.forward(packet("198.51.100.1", eth_dst=ROUTER_MAC))[:2] == ("out", 2)
    counts = fib.counts()
    assert counts["installed"] >= 1 and counts["pending"] == 0 and counts["switch_errors"] == 0


def test_a_next_hop_that_never_resolves_fails_after_bounded_backed_off_tries() -> None:
    limits = ResolverLimits(max_tries=4, first_backoff=1.0, max_backoff=8.0, failed_retry=60.0)
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13, limits=limits)
    fib.update({PREFIX: _route(HOP)}, 0.0)
    times = []
    now = 0.0
    while now <= 3600.0:
        times += [now for _ in fib.resolve_requests(now)]
        now += 0.25
    # 4 tries at 0, 1, 3, 7 s; then failed, and one try a minute
    assert times[:4] == [0.0, 1.0, 3.0, 7.0]
    assert len(times) <= 4 + 3600 / 60 + 1
    assert all(b - a >= 60.0 for a, b in zip(times[4:], times[5:], strict=False))
    status = fib.status(PREFIX)
    assert status.state is RouteState.FAILED and "did not resolve after" in status.detail
    # it can still come back
    fib.observe(_seen(HOP), now)
    assert _state(fib) is RouteState.PENDING  # planned, not yet in the switch
    assert any(isinstance(op, FlowOp) and op.flow.match.dst == PREFIX for op in fib.sync(now))


def test_neighbour_memory_is_bounded_and_oldest_unused_goes_first() -> None:
    table = NeighbourTable(("sr1",), ResolverLimits(max_neighbours=100))
    for i in range(300):
        table.observe((ipaddress.ip_address(f"10.1.{i // 256}.{i % 256}"), 0), "02:00:00:00:00:01", "arp", float(i))
    assert len(table) == 100
    kept = {str(n.address) for n in table.neighbours()}
    assert kept == {f"10.1.{i // 256}.{i % 256}" for i in range(200, 300)}
    assert len(table.evicted) == 200


def test_wanted_next_hops_are_not_evicted_and_overflow_is_reported() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13, limits=ResolverLimits(max_neighbours=50))
    routes = {}
    for i in range(80):
        prefix = ipaddress.ip_network(f"100.{i}.0.0/16")
        routes[prefix] = RouteEntry(prefix, (f"10.0.2.{i + 1}",), "bgp", 20)
    fib.update(routes, 0.0)
    assert len(fib.neighbours) == 50
    states = [fib.status(p) for p in routes]
    assert sum(s.state is RouteState.PENDING for s in states) == 50
    full = [s for s in states if s.state is RouteState.FAILED]
    assert len(full) == 30 and all("neighbour table full" in s.detail for s in full)
    # a burst of ARP from other hosts cannot push a wanted next hop out
    for i in range(200):
        fib.observe(_seen(f"10.0.1.{i + 1}", port=1), 1.0)
    assert {str(n.address) for n in fib.neighbours.neighbours()} >= {f"10.0.2.{i + 1}" for i in range(50)}
    # resolution requests are spread out, not a burst of 50 at once
    assert len(fib.resolve_requests(2.0)) <= fib.neighbours.limits.max_requests_per_call


def test_withdrawn_routes_release_their_next_hops() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    fib.update({PREFIX: _route(HOP)}, 0.0)
    fib.update({PREFIX: None}, 1.0)
    assert fib.status(PREFIX) is None
    assert fib.resolve_requests(1.0) == []  # nobody wants it any more


def test_switch_error_fails_the_route_and_retries_with_backoff() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13, error_backoff=ErrorBackoff(first=2.0, most=10.0))
    fib.observe(_seen(HOP), 0.0)
    fib.update({PREFIX: _route(HOP)}, 0.0)
    switch = FakeSwitch()
    ops = fib.sync(0.0)
    refused = next(op for op in ops if isinstance(op, FlowOp) and op.flow.match.dst == PREFIX)
    switch.apply_all([op for op in ops if op is not refused])
    fib.op_failed(refused, "OFPFMFC_TABLE_FULL", 0.0)
    fib.confirm(_barrier(ops))
    status = fib.status(PREFIX)
    assert status.state is RouteState.FAILED and "OFPFMFC_TABLE_FULL" in status.detail and status.switch_errors == 1
    assert fib.switch_errors == 1
    assert fib.sync(1.0) == []  # not yet: backing off
    retry = fib.sync(2.0)
    assert [(op.command, op.flow.match.dst) for op in retry if isinstance(op, FlowOp)] == [(FlowCommand.ADD, PREFIX)]
    fib.op_failed(retry[0], "OFPFMFC_TABLE_FULL", 2.0)  # again: the next try waits twice as long
    assert fib.sync(5.9) == []
    second = fib.sync(6.0)
    assert len([op for op in second if isinstance(op, FlowOp)]) == 1
    switch.apply_all(second)
    fib.confirm(_barrier(second))
    assert _state(fib) is RouteState.INSTALLED
    assert switch.forward(packet("198.51.100.1", eth_dst=ROUTER_MAC))[:2] == ("out", 2)


def test_failed_modify_is_sent_again_as_a_modify() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13, error_backoff=ErrorBackoff(first=1.0))
    fib.observe(_seen(HOP), 0.0)
    fib.observe(_seen("10.0.2.2"), 0.0)
    fib.update({PREFIX: _route(HOP)}, 0.0)
    fib.confirm(_barrier(fib.sync(0.0)))
    fib.update({PREFIX: _route("10.0.2.2")}, 1.0)
    modify = next(op for op in fib.sync(1.0) if isinstance(op, FlowOp))
    fib.op_failed(modify, "OFPBAC_BAD_OUT_PORT", 1.0)
    again = [op for op in fib.sync(2.0) if isinstance(op, FlowOp)]
    assert [op.command for op in again] == [FlowCommand.MODIFY_STRICT]


def test_lost_neighbour_makes_its_routes_pending_again() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    fib.observe(_seen(HOP), 0.0)
    fib.update({PREFIX: _route(HOP)}, 0.0)
    fib.confirm(_barrier(fib.sync(0.0)))
    assert _state(fib) is RouteState.INSTALLED
    fib.lost(ipaddress.ip_address(HOP), "sr2", 5.0)
    assert _state(fib) is RouteState.PENDING
    ops = fib.sync(5.0)
    assert any(
        isinstance(op, FlowOp) and op.command is FlowCommand.DELETE_STRICT and op.flow.match.dst == PREFIX for op in ops
    )
    assert fib.neighbours.get((ipaddress.ip_address(HOP), 1)).state is NeighbourState.UNRESOLVED


def test_routes_of_one_batch_sharing_a_next_hop_follow_it_through_changes() -> None:
    """The planner remembers the next hop it claimed last within a batch; whatever order routes, withdrawals and
    MAC changes come in, every route ends on the neighbour's current MAC and a withdrawn one lets it go."""
    other = ipaddress.ip_network("203.0.113.0/24")
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    switch = FakeSwitch()
    fib.observe(_seen(HOP), 0.0)
    # one batch: the same prefix twice (the later entry wins), a withdrawal of it in between, another prefix
    fib.update_items(
        [(PREFIX, _route(HOP)), (PREFIX, None), (other, _route(HOP, prefix=other)), (PREFIX, _route(HOP))], 1.0
    )
    switch.apply_all(fib.sync(1.0))
    for address in ("198.51.100.1", "203.0.113.1"):
        out = switch.forward(packet(address, eth_dst=ROUTER_MAC))
        assert (out[0], out[1], out[3]) == ("out", 2, neighbour_mac(HOP))
    fib.observe(_seen(HOP, mac="02:00:00:00:99:99"), 2.0)  # the neighbour's MAC changes between batches
    fib.update_items([(other, _route(HOP, prefix=other))], 3.0)
    switch.apply_all(fib.sync(3.0))
    for address in ("198.51.100.1", "203.0.113.1"):
        out = switch.forward(packet(address, eth_dst=ROUTER_MAC))
        assert (out[0], out[1], out[3]) == ("out", 2, "02:00:00:00:99:99")
    fib.update_items([(PREFIX, None), (other, None)], 4.0)
    assert fib.neighbours.get((ipaddress.ip_address(HOP), 1)) is not None
    assert fib.resolve_requests(4.0) == []  # nobody wants it any more
    switch.apply_all(fib.sync(4.0))
    assert switch.forward(packet("198.51.100.1", eth_dst=ROUTER_MAC))[0] != "out"


def test_partial_ecmp_uses_the_resolved_paths_and_names_the_others() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    fib.observe(_seen(HOP), 0.0)
    fib.update({PREFIX: _route(HOP, "10.0.2.9")}, 0.0)
    fib.confirm(_barrier(fib.sync(0.0)))
    status = fib.status(PREFIX)
    assert status.state is RouteState.INSTALLED and status.next_hops == (HOP,) and "10.0.2.9" in status.detail


def test_next_hop_on_no_interface_is_failed_not_tracked() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    fib.update({PREFIX: _route("192.0.2.1")}, 0.0)
    assert _state(fib) is RouteState.FAILED
    assert len(fib.neighbours) == 0


def test_link_local_next_hop_with_scope() -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    prefix = ipaddress.ip_network("2001:db8:9::/48")
    fib.update({prefix: RouteEntry(prefix, ("fe80::1%sr1",), "bgp", 20)}, 0.0)
    fib.observe(_seen("fe80::1", port=1), 0.0)
    switch = FakeSwitch()
    switch.apply_all(fib.sync(0.0))
    assert switch.forward(packet("2001:db8:9::5", eth_dst=ROUTER_MAC))[:4] == (
        "out",
        1,
        ROUTER_MAC,
        neighbour_mac("fe80::1"),
    )
