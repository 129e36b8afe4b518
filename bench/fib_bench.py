"""FIB benchmark: plan and diff a 100,000-route table, then a 1 % change, as the controller would.

Timed, each on a fresh or prepared `Fib` (pure code, no switch):
- plan: `Fib.update` with the whole table (next-hop lookup, flows and select groups per route);
- first sync: the ops that fill an empty switch (diff against nothing, ordered, with barriers);
- 1 % RIB change: `update` with 1,000 routes moved to another next hop, then the incremental `sync`;
- reconnect: `Fib.reconnect` against a read-back in which 1 % of the flows differ (stale, missing, extra);
- steady reconnect: the read-back equals the plan (the full diff must find nothing).
Prints figures; gates nothing.

Usage: python bench/fib_bench.py [--routes 100000] [--change 0.01] [--ecmp 0.1] [--openflow 13|10] [--repeat 3]
                                [--gc-threshold N]
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sniffroute.config import RouterInterface
from sniffroute.fib import (
    OPENFLOW_10,
    OPENFLOW_13,
    ROUTE_COOKIE,
    Barrier,
    Fib,
    FlowSpec,
    NeighbourObservation,
    Op,
    RouteEntry,
    SetEthDst,
)

SEED = 20261201
ROUTER_MAC = "02:00:5e:10:00:01"
INTERFACES = (
    RouterInterface(name="sr1", port=1, vlan=None, addresses=(ipaddress.ip_interface("10.0.1.254/24"),), mtu=1500),
    RouterInterface(name="sr2", port=2, vlan=None, addresses=(ipaddress.ip_interface("10.0.2.254/24"),), mtu=1500),
)
NEXT_HOPS = ("10.0.1.1", "10.0.1.2", "10.0.2.1", "10.0.2.2")
LENGTHS = (16, 19, 20, 21, 22, 23, 24, 24, 24, 24)  # roughly a DFZ's mix, /24 heavy


def build_table(count: int, ecmp_share: float, rng: random.Random) -> dict[ipaddress.IPv4Network, RouteEntry]:
    table: dict[ipaddress.IPv4Network, RouteEntry] = {}
    while len(table) < count:
        length = rng.choice(LENGTHS)
        prefix = ipaddress.IPv4Network((rng.randrange(1 << 32) >> (32 - length) << (32 - length), length))
        if prefix.is_private or prefix.is_multicast or prefix.is_reserved or prefix.is_loopback:
            continue
        hops = tuple(rng.sample(NEXT_HOPS, 2)) if rng.random() < ecmp_share else (rng.choice(NEXT_HOPS),)
        table[prefix] = RouteEntry(prefix, hops, "bgp", 20)
    return table


def new_fib(openflow: str) -> Fib:
    fib = Fib(ROUTER_MAC, INTERFACES, OPENFLOW_13 if openflow == "13" else OPENFLOW_10)
    for n, hop in enumerate(NEXT_HOPS):
        address = ipaddress.ip_address(hop)
        port = 1 if hop.startswith("10.0.1.") else 2
        fib.observe(NeighbourObservation(address=address, mac=f"02:aa:00:00:00:{n + 1:02x}", port=port, vlan=None), 0.0)
    return fib


def confirm_all(fib: Fib, ops: list[Op]) -> None:
    barriers = [op.seq for op in ops if isinstance(op, Barrier)]
    if barriers:
        fib.confirm(barriers[-1])


def timed(repeat: int, prepare: Callable[[], Any], work: Callable[[Any], Any]) -> tuple[float, float, Any]:
    """Median wall time and median CPU time of `work(prepare())` (CPU time is less disturbed by other processes
    on a busy machine); preparation is not timed."""
    walls, cpus = [], []
    result = None
    for _ in range(repeat):
        state = prepare()
        wall, cpu = time.perf_counter(), time.process_time()
        result = work(state)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def summary(ops: list[Op]) -> str:
    kinds = Counter(op.command.value for op in ops if not isinstance(op, Barrier))
    barriers = sum(isinstance(op, Barrier) for op in ops)
    return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + f", {barriers} barriers"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--routes", type=int, default=100_000)
    parser.add_argument("--change", type=float, default=0.01)
    parser.add_argument("--ecmp", type=float, default=0.1, help="share of routes with two next hops")
    parser.add_argument("--openflow", choices=("13", "10"), default="13")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=0,
        help="raise the collector's first threshold (as a live controller holding a big table may): 0 keeps it",
    )
    args = parser.parse_args()
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, *gc.get_threshold()[1:])

    rng = random.Random(SEED)
    table = build_table(args.routes, args.ecmp, rng)
    changed_prefixes = rng.sample(sorted(table), int(len(table) * args.change))
    changes = {
        p: RouteEntry(p, (next(h for h in NEXT_HOPS if h not in table[p].next_hops),), "bgp", 20)
        for p in changed_prefixes
    }
    print(
        f"{len(table)} routes ({args.ecmp:.0%} with two next hops), OpenFlow {args.openflow[0]}.{args.openflow[1]}, "
        f"gc thresholds {gc.get_threshold()}"
    )

    def planned() -> Fib:
        fib = new_fib(args.openflow)
        fib.update(table, 1.0)
        return fib

    def installed() -> Fib:
        fib = planned()
        confirm_all(fib, fib.sync(1.0))
        return fib

    rows: list[tuple[str, float, float, str]] = []

    def plan(fib: Fib) -> Fib:
        fib.update(table, 1.0)
        return fib

    wall, cpu, fib = timed(args.repeat, lambda: new_fib(args.openflow), plan)
    rows.append(("plan full table", wall, cpu, f"{len(fib.desired_flows())} flows, {len(fib.desired_groups())} groups"))

    wall, cpu, ops = timed(args.repeat, planned, lambda fib: fib.sync(1.0))
    rows.append(("first sync (empty switch)", wall, cpu, summary(ops)))

    def change(fib: Fib) -> list[Op]:
        fib.update(changes, 2.0)
        return fib.sync(2.0)

    wall, cpu, ops = timed(args.repeat, installed, change)
    rows.append((f"update + sync, {len(changes)} routes changed", wall, cpu, summary(ops)))

    def drifted() -> tuple[Fib, list[FlowSpec], list]:
        fib = installed()
        flows = list(fib.desired_flows().values())
        drift = random.Random(SEED + 1)
        count = int(len(flows) * args.change)
        picked = drift.sample(range(len(flows)), count)
        stale, missing = picked[: count // 2], set(picked[count // 2 :])
        for i in stale:
            flow = flows[i]
            flows[i] = FlowSpec(flow.cookie, flow.priority, flow.match, (SetEthDst("02:de:ad:00:00:01"),))
        read_back = [f for i, f in enumerate(flows) if i not in missing]
        template = read_back[0]
        for n in range(count // 2):
            prefix = ipaddress.IPv4Network((0x0A800000 + n * 256, 24))
            match = type(template.match)(template.match.eth_dst, template.match.vlan, template.match.eth_type, prefix)
            read_back.append(FlowSpec(ROUTE_COOKIE, template.priority, match, template.actions))
        return fib, read_back, list(fib.desired_groups().values())

    wall, cpu, ops = timed(args.repeat, drifted, lambda state: state[0].reconnect(state[1], state[2], 3.0))
    rows.append(("reconnect, 1 % of flows differ", wall, cpu, summary(ops)))

    def steady() -> tuple[Fib, list[FlowSpec], list]:
        fib = installed()
        return fib, list(fib.desired_flows().values()), list(fib.desired_groups().values())

    wall, cpu, ops = timed(args.repeat, steady, lambda state: state[0].reconnect(state[1], state[2], 3.0))
    rows.append(("reconnect, switch already right", wall, cpu, summary(ops) if ops else "no ops"))

    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  {'wall':>9}  {'cpu':>9}  result (medians of {args.repeat} runs)")
    for label, wall, cpu, result in rows:
        print(f"{label:<{width}}  {wall * 1000:7.1f}ms  {cpu * 1000:7.1f}ms  {result}")


if __name__ == "__main__":
    main()
