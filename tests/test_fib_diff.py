"""sniffroute.fib diff and sync: the ops that take a switch from what it holds to the plan, in a safe order.

Expectations come from the perturbations the tests make to a fake switch (tests/fib_fakeswitch.py) and from
forwarding checks run after every single op, not from the FIB's own view."""

from __future__ import annotations

import ipaddress
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sniffroute.fib import (
    OPENFLOW_13,
    ROUTE_COOKIE,
    Barrier,
    Fib,
    FlowCommand,
    FlowMatch,
    FlowOp,
    FlowSpec,
    GroupCommand,
    GroupOp,
    GroupSpec,
    NeighbourObservation,
    Op,
    RouteEntry,
    SetEthDst,
    diff,
)
from sniffroute.fib.diff import PHASES
from tests.fib_fakeswitch import ROUTER_MAC, UNTAGGED, FakeSwitch, neighbour_mac, packet

NOW = 100.0
HOPS = ("10.0.2.1", "10.0.2.2", "10.0.1.1", "10.0.1.2")


def _route(prefix: str, *hops: str) -> RouteEntry:
    return RouteEntry(ipaddress.ip_network(prefix), tuple(hops), "bgp", 20)


def _fib(*hops: str) -> Fib:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    for hop in hops or HOPS:
        port = 2 if hop.startswith("10.0.2.") else 1
        fib.observe(
            NeighbourObservation(address=ipaddress.ip_address(hop), mac=neighbour_mac(hop), port=port, vlan=None), NOW
        )
    return fib


def _commands(ops: list[Op]) -> list[str]:
    return [op.command.value for op in ops if not isinstance(op, Barrier)]


def _installed(fib: Fib) -> FakeSwitch:
    switch = FakeSwitch()
    switch.apply_all(fib.sync(NOW))
    return switch


def _table(count: int, seed: int = 1) -> dict[ipaddress.IPv4Network, RouteEntry]:
    rng = random.Random(seed)
    table = {}
    for i in range(count):
        prefix = ipaddress.ip_network((int(ipaddress.ip_address("100.0.0.0")) + i * 256, 24))
        table[prefix] = RouteEntry(prefix, (rng.choice(HOPS),), "bgp", 20)
    return table


def test_diff_of_the_plan_with_itself_is_empty() -> None:
    fib = _fib()
    fib.update(_table(500), NOW)
    desired = fib.desired_flows()
    assert diff(desired, list(desired.values()), fib.desired_groups(), list(fib.desired_groups().values())) == []
    switch = _installed(fib)
    assert fib.sync(NOW) == []  # nothing changed since the last sync
    assert fib.reconnect(switch.dump(), switch.groups.values(), NOW) == []


def test_next_hop_change_is_a_modify_in_place() -> None:
    fib = _fib()
    fib.update({ipaddress.ip_network("198.51.100.0/24"): _route("198.51.100.0/24", "10.0.2.1")}, NOW)
    switch = _installed(fib)
    fib.update({ipaddress.ip_network("198.51.100.0/24"): _route("198.51.100.0/24", "10.0.1.1")}, NOW)
    ops = fib.sync(NOW)
    assert _commands(ops) == ["modify-strict"]
    switch.apply_all(ops)
    assert switch.forward(packet("198.51.100.9", eth_dst=ROUTER_MAC))[1:4] == (1, ROUTER_MAC, neighbour_mac("10.0.1.1"))


def test_neighbour_mac_change_modifies_the_routes_using_it() -> None:
    fib = _fib()
    fib.update(
        {r.prefix: r for r in (_route("198.51.100.0/24", "10.0.2.1"), _route("203.0.113.0/24", "10.0.2.2"))}, NOW
    )
    switch = _installed(fib)
    moved = NeighbourObservation(address=ipaddress.ip_address("10.0.2.1"), mac="02:bb:00:00:00:01", port=2, vlan=None)
    assert fib.observe(moved, NOW)
    ops = fib.sync(NOW)
    flows = [op for op in ops if isinstance(op, FlowOp)]
    assert {(op.command, op.flow.match.dst) for op in flows} == {
        (FlowCommand.MODIFY_STRICT, ipaddress.ip_network("198.51.100.0/24")),
        (FlowCommand.MODIFY_STRICT, ipaddress.ip_network("10.0.2.1/32")),  # the neighbour's host route
    }
    switch.apply_all(ops)
    assert switch.forward(packet("198.51.100.9", eth_dst=ROUTER_MAC))[3] == "02:bb:00:00:00:01"


def test_ops_follow_the_phase_table_with_barriers() -> None:
    fib = _fib()
    fib.update(
        {r.prefix: r for r in (_route("198.51.100.0/24", "10.0.2.1"), _route("203.0.113.0/24", "10.0.2.1"))}, NOW
    )
    _installed(fib)
    fib.update(
        {
            ipaddress.ip_network("198.51.100.0/24"): None,  # delete
            ipaddress.ip_network("203.0.113.0/24"): _route("203.0.113.0/24", "10.0.2.1", "10.0.1.1"),  # to a group
            ipaddress.ip_network("192.0.2.0/24"): _route("192.0.2.0/24", "10.0.1.2"),  # add
        },
        NOW,
    )
    ops = fib.sync(NOW)
    kinds = [op.command for op in ops if not isinstance(op, Barrier)]
    assert kinds == sorted(kinds, key=PHASES.index)
    assert kinds == [GroupCommand.ADD, FlowCommand.ADD, FlowCommand.MODIFY_STRICT, FlowCommand.DELETE_STRICT]
    # a barrier closes each phase, so each kind is confirmed before the next starts
    for before, after in zip(ops, ops[1:], strict=False):
        if not isinstance(before, Barrier) and not isinstance(after, Barrier):
            assert before.command is after.command
    assert isinstance(ops[-1], Barrier)


def _probe_each_op(switch: FakeSwitch, ops: list[Op], destination: str) -> list[tuple]:
    seen = []
    for op in ops:
        switch.apply(op)
        seen.append(switch.forward(packet(destination, eth_dst=ROUTER_MAC)))
    return seen


def test_withdrawing_a_more_specific_never_blackholes() -> None:
    fib = _fib()
    fib.update({r.prefix: r for r in (_route("198.51.0.0/16", "10.0.2.2"), _route("198.51.100.0/24", "10.0.2.1"))}, NOW)
    switch = _installed(fib)
    # withdraw the /24 and move the /16 to another next hop in the same batch
    fib.update(
        {
            ipaddress.ip_network("198.51.100.0/24"): None,
            ipaddress.ip_network("198.51.0.0/16"): _route("198.51.0.0/16", "10.0.1.1"),
        },
        NOW,
    )
    results = _probe_each_op(switch, fib.sync(NOW), "198.51.100.9")
    assert all(r[0] == "out" for r in results)
    assert results[-1][3] == neighbour_mac("10.0.1.1")


def test_moving_between_a_group_and_a_single_path_never_blackholes() -> None:
    fib = _fib()
    prefix = ipaddress.ip_network("198.51.100.0/24")
    fib.update({prefix: _route(str(prefix), "10.0.2.1")}, NOW)
    switch = _installed(fib)
    fib.update({prefix: _route(str(prefix), "10.0.2.1", "10.0.1.1")}, NOW)
    assert all(r[0] != "drop" for r in _probe_each_op(switch, fib.sync(NOW), "198.51.100.9"))
    fib.update({prefix: _route(str(prefix), "10.0.1.2")}, NOW)
    ops = fib.sync(NOW)
    assert [op.command for op in ops if isinstance(op, GroupOp)] == [GroupCommand.DELETE]
    assert all(r[0] != "drop" for r in _probe_each_op(switch, ops, "198.51.100.9"))
    assert switch.groups == {}


def test_reconnect_with_one_percent_changed_sends_only_the_difference() -> None:
    rng = random.Random(3)
    fib = _fib()
    fib.update(_table(10_000), NOW)
    switch = _installed(fib)
    # what the switch holds drifted while we were away: 1 % of our flows
    ours = sorted(switch.flows, key=repr)
    rng.shuffle(ours)
    stale, missing = ours[:40], ours[40:70]
    for key in stale:
        flow = switch.flows[key]
        switch.flows[key] = FlowSpec(
            flow.cookie, flow.priority, flow.match, (SetEthDst("02:de:ad:00:00:01"), *flow.actions[2:])
        )
    for key in missing:
        del switch.flows[key]
    extra_prefixes = [ipaddress.ip_network((int(ipaddress.ip_address("20.0.0.0")) + i * 256, 24)) for i in range(30)]
    template = switch.flows[ours[-1]]
    extra = [
        FlowSpec(ROUTE_COOKIE, template.priority, _match_like(template, p), template.actions) for p in extra_prefixes
    ]
    foreign = [FlowSpec(0x5E1F_0001, template.priority, _match_like(template, p), ()) for p in extra_prefixes]
    for flow in extra:
        switch.flows[flow.key] = flow
    for flow in foreign:
        switch.flows[(flow.priority, ("foreign", flow.match))] = flow
    ops = fib.reconnect(switch.dump(), switch.groups.values(), NOW)
    flow_ops = [op for op in ops if isinstance(op, FlowOp)]
    assert {(op.flow.priority, op.flow.match) for op in flow_ops if op.command is FlowCommand.MODIFY_STRICT} == set(
        stale
    )
    assert {(op.flow.priority, op.flow.match) for op in flow_ops if op.command is FlowCommand.ADD} == set(missing)
    assert [op.flow for op in flow_ops if op.command is FlowCommand.DELETE_STRICT] == extra  # never the foreign ones
    assert len(flow_ops) == 100
    switch.apply_all(ops)
    assert fib.reconnect(switch.dump(), switch.groups.values(), NOW) == []


def _match_like(flow: FlowSpec, prefix: ipaddress.IPv4Network) -> FlowMatch:
    return FlowMatch(flow.match.eth_dst, flow.match.vlan, flow.match.eth_type, prefix)


def test_incremental_sync_touches_only_changed_routes() -> None:
    fib = _fib()
    table = _table(2_000)
    fib.update(table, NOW)
    _installed(fib)
    changed = dict(list(table.items())[:20])
    fib.update(
        {
            p: RouteEntry(p, ("10.0.1.2" if e.next_hops[0] != "10.0.1.2" else "10.0.1.1",), "bgp", 20)
            for p, e in changed.items()
        },
        NOW,
    )
    ops = fib.sync(NOW)
    assert sorted(_commands(ops)) == ["modify-strict"] * 20
    assert {op.flow.match.dst for op in ops if isinstance(op, FlowOp)} == set(changed)


def test_replace_withdraws_what_the_new_table_lacks() -> None:
    fib = _fib()
    fib.update(_table(50), NOW)
    _installed(fib)
    kept = dict(list(_table(50).items())[:10])
    fib.replace(kept, NOW)
    ops = fib.sync(NOW)
    assert sorted(_commands(ops)) == ["delete-strict"] * 40
    assert {s.prefix for s in fib.statuses() if s.protocol == "bgp"} == set(kept)


def test_barrier_numbers_keep_increasing_across_syncs() -> None:
    fib = _fib()
    seqs = []
    for n in range(3):
        fib.update({ipaddress.ip_network(f"198.51.{n}.0/24"): _route(f"198.51.{n}.0/24", "10.0.2.1")}, NOW)
        seqs += [op.seq for op in fib.sync(NOW) if isinstance(op, Barrier)]
    assert seqs == sorted(set(seqs)) and len(seqs) >= 3


# -- a random walk of RIB and neighbour changes: the switch must always forward as the longest match says ---------

PREFIXES = sorted(
    {
        str(ipaddress.ip_network(f"100.{a}.{b}.0/{length}", strict=False))
        for a in range(2)
        for b in (0, 128)
        for length in (16, 17, 24, 25)
    }
)
WALK_HOPS = ("10.0.2.1", "10.0.2.2", "10.0.1.1", "10.0.1.7")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("route"), st.sampled_from(PREFIXES), st.lists(st.sampled_from(WALK_HOPS), max_size=3)),
            st.tuples(st.just("mac"), st.sampled_from(WALK_HOPS), st.integers(1, 3)),
            st.tuples(st.just("lost"), st.sampled_from(WALK_HOPS), st.just(0)),
            st.tuples(st.just("reconnect"), st.just(""), st.just(0)),
        ),
        max_size=25,
    )
)
def test_random_changes_keep_switch_and_plan_in_step(steps: list) -> None:
    fib = Fib(ROUTER_MAC, UNTAGGED, OPENFLOW_13)
    switch = FakeSwitch()
    table: dict[str, tuple[str, ...]] = {}
    macs: dict[str, str] = {}

    def see(hop: str, version: int) -> None:
        macs[hop] = f"02:cc:00:00:{version:02x}:{WALK_HOPS.index(hop):02x}"
        port = 2 if hop.startswith("10.0.2.") else 1
        fib.observe(NeighbourObservation(address=ipaddress.ip_address(hop), mac=macs[hop], port=port, vlan=None), NOW)

    for hop in WALK_HOPS[:3]:  # the last one never resolves
        see(hop, 0)
    switch.apply_all(fib.sync(NOW))
    for kind, arg, extra in steps:
        if kind == "route":
            hops = tuple(dict.fromkeys(extra))
            prefix = ipaddress.ip_network(arg)
            if hops:
                table[arg] = hops
                fib.update({prefix: RouteEntry(prefix, hops, "bgp", 20)}, NOW)
            else:
                table.pop(arg, None)
                fib.update({prefix: None}, NOW)
            switch.apply_all(fib.sync(NOW))
        elif kind == "mac":  # a new MAC, or the first one for the late next hop
            see(arg, extra)
            switch.apply_all(fib.sync(NOW))
        elif kind == "lost":
            macs.pop(arg, None)
            fib.lost(ipaddress.ip_address(arg), "sr2" if arg.startswith("10.0.2.") else "sr1", NOW)
            switch.apply_all(fib.sync(NOW))
        else:
            switch.apply_all(fib.reconnect(switch.dump(), switch.groups.values(), NOW))
        assert {f.key: f for f in switch.dump()} == dict(fib.desired_flows())
        for destination in ("100.0.0.1", "100.0.127.1", "100.0.128.1", "100.1.0.200", "100.1.128.200", "100.2.0.1"):
            usable = {p: tuple(h for h in hops if h in macs) for p, hops in table.items()}
            best = _lpm_usable(usable, destination)
            result = switch.forward(packet(destination, eth_dst=ROUTER_MAC))
            if best is None:
                assert result == ("drop",), destination
            else:
                got = {r[3] for r in result} if isinstance(result[0], tuple) else {result[3]}
                assert got == {macs[h] for h in best}, destination
    assert fib.reconnect(switch.dump(), switch.groups.values(), NOW) == []


def _lpm_usable(table: dict[str, tuple[str, ...]], destination: str) -> tuple[str, ...] | None:
    """Longest match among routes with at least one resolved next hop (the others are not installed)."""
    address = ipaddress.ip_address(destination)
    best: tuple[int, tuple[str, ...]] | None = None
    for prefix, hops in table.items():
        network = ipaddress.ip_network(prefix)
        if hops and address in network and (best is None or network.prefixlen > best[0]):
            best = (network.prefixlen, hops)
    return None if best is None else best[1]


def test_an_audit_puts_right_what_changed_behind_our_back() -> None:
    fib = _fib()
    fib.update(_table(200), NOW)
    switch = _installed(fib)
    fib.confirm(10**6)  # every barrier answered
    assert fib.audit(switch.dump(), switch.groups.values(), NOW) == []  # nothing changed: nothing sent
    keys = sorted(switch.flows, key=repr)
    gone, altered = keys[:3], keys[3]
    for key in gone:
        del switch.flows[key]  # e.g. ovs-ofctl del-flows by hand
    flow = switch.flows[altered]
    switch.flows[altered] = FlowSpec(flow.cookie, flow.priority, flow.match, (SetEthDst("02:de:ad:00:00:01"),))
    ops = fib.audit(switch.dump(), switch.groups.values(), NOW)
    assert sorted(_commands(ops)) == ["add", "add", "add", "modify-strict"]
    switch.apply_all(ops)
    fib.confirm(_last_barrier(ops))
    assert fib.audit(switch.dump(), switch.groups.values(), NOW) == [] and not fib.stuck
    assert all(switch.forward(packet(f"100.0.{i}.1", eth_dst=ROUTER_MAC))[0] == "out" for i in range(200))


def test_an_audit_waits_while_ops_are_in_flight() -> None:
    fib = _fib()
    fib.update(_table(20), NOW)
    ops = fib.sync(NOW)  # sent, not yet confirmed: a read-back now may predate them
    assert fib.audit([], [], NOW) == []
    fib.confirm(_last_barrier(ops))
    assert _commands(fib.audit([], [], NOW)) == _commands(ops)  # confirmed, yet the switch lost them all


def test_a_difference_the_switch_keeps_is_fixed_once_then_reported_not_resent() -> None:
    fib = _fib()
    fib.update(_table(5), NOW)
    switch = _installed(fib)
    fib.confirm(10**6)
    key = sorted(switch.flows, key=repr)[0]
    flow = switch.flows[key]
    # a flow the switch will not change from here: one an op of this protocol cannot address
    held = FlowSpec(flow.cookie, flow.priority, flow.match, (SetEthDst("02:de:ad:00:00:01"),))
    switch.flows[key] = held
    first = fib.audit(switch.dump(), switch.groups.values(), NOW)
    assert _commands(first) == ["modify-strict"] and not fib.stuck
    fib.confirm(_last_barrier(first))
    assert fib.audit(switch.dump(), switch.groups.values(), NOW + 1) == []  # not again, and again
    assert fib.stuck == {key}
    assert fib.audit(switch.dump(), switch.groups.values(), NOW + 2) == [] and fib.stuck == {key}
    switch.flows[key] = flow  # put right by other means: nothing is stuck any more
    assert fib.audit(switch.dump(), switch.groups.values(), NOW + 3) == [] and not fib.stuck


def _last_barrier(ops: list[Op]) -> int:
    return [op.seq for op in ops if isinstance(op, Barrier)][-1]


def test_an_audit_leaves_a_refused_group_and_its_route_to_their_backoff() -> None:
    fib = _fib()
    prefix = "198.51.100.0/24"
    fib.update({ipaddress.ip_network(prefix): _route(prefix, "10.0.2.1", "10.0.2.2")}, NOW)
    ops = fib.sync(NOW)
    group_add = next(op for op in ops if isinstance(op, GroupOp))
    fib.op_failed(group_add, "group table full", NOW)  # the switch refused it: backed off, retried later
    fib.confirm(10**6)
    switch = FakeSwitch()
    switch.apply_all([op for op in ops if op is not group_add and not isinstance(op, GroupOp)])
    # read back now: the group is missing, as it should be while it waits; the audit must not resend it early
    again = fib.audit(switch.dump(), switch.groups.values(), NOW + 0.1)
    assert not any(isinstance(op, GroupOp) for op in again)


def test_an_audit_puts_right_a_group_altered_behind_our_back_while_every_flow_is_right() -> None:
    fib = _fib()
    prefix = "198.51.100.0/24"
    fib.update({ipaddress.ip_network(prefix): _route(prefix, "10.0.2.1", "10.0.2.2")}, NOW)
    switch = _installed(fib)
    fib.confirm(10**6)
    gid, group = next(iter(switch.groups.items()))
    switch.groups[gid] = GroupSpec(gid, group.buckets[:1])  # e.g. ovs-ofctl mod-group by hand: one bucket left
    ops = fib.audit(switch.dump(), switch.groups.values(), NOW)
    assert [(type(op), op.command) for op in ops if not isinstance(op, Barrier)] == [(GroupOp, GroupCommand.MODIFY)]
    switch.apply_all(ops)
    assert switch.groups[gid] == group
