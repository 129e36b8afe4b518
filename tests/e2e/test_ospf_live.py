"""Live OSPF routes become flows, per backend: BIRD routers on a LAN behind switch port 4.

    port 1: r1  gobgpd (the conftest router)          port 2: r2 gobgpd     port 3: h1 host (tests/e2e/test_routing.py)
    port 4: LAN 10.77.4.0/24, a Linux bridge in its own namespace, the router interface 10.77.4.254 on it
              r3  BIRD OSPFv2 area 0, 10.77.4.3, DR   stub 198.51.3.0/24  (198.51.3.1) and 198.51.34.0/24
              r4  BIRD OSPFv2 area 0, 10.77.4.4, BDR  stub 198.51.4.0/24  (198.51.4.1) and 198.51.34.0/24
              r5  BIRD OSPFv2 area 0, 10.77.4.5, priority 0, nothing of its own; gobgpd, iBGP with the controller,
                  announcing 198.51.99.0/24 with next hop 198.51.4.1 (r4's stub; 198.51.99.1 is on r4's lo)

The controller runs no OSPF: it sniffs the routers' multicast (Hellos, flooded LSUs) that the tunnel punts from
port 4, and computes SPF from that LAN, the first whose Hellos it saw. 198.51.34.0/24 is announced by both at the
same cost: ECMP. Oracles: BIRD's own tables (`birdc show route`, `show ospf neighbors`), the switch's flow and
group tables and counters (ovs-ofctl), ping's exit status and counts from the host. The routers start after each
backend's controller, so it sees their LSAs flooded.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    BRIDGE,
    LOCAL_AS,
    SWITCH_NS,
    TAG,
    Controller,
    gobgpd_config,
    interface_toml,
    peer_toml,
    pox_dir,
    start_controller,
)
from tests.e2e.test_routing import (  # noqa: F401 - `bed` is a fixture used by name
    HOST_NS,
    PACKET_IN_ALLOWANCE,
    Bed,
    bed,
    controller_packets,
    established,
    gobgp,
    host_ping,
    received,
    route_flows,
    routing_config,
)
from tests.lab.make_ospf_capture import parse_bird_routes
from tests.lab.netns import Daemon, Lab, LabError, in_ns, run, wait_for

pytestmark = pytest.mark.e2e

LAN_PORT = 4
LAN_NS, LAN_BRIDGE = f"{TAG}-lan", f"{TAG}-lanbr"
LAN_SWITCH_VETH, LAN_UPLINK = f"{TAG}-lan-br", f"{TAG}-lan-up"  # switch port 4 <-> the LAN bridge
LAN_TAP, LAN_ROUTER_V4 = f"{TAG}-tap4", "10.77.4.254"
LAN_DEV, STUB_DEV = f"{TAG}-lan", f"{TAG}-stub"  # inside each router's namespace
HOST_SUBNET = "10.77.3.0/24"
SHARED = "198.51.34.0/24"
HELLO, DEAD, WAIT = 1, 4, 2  # seconds: a dead router is noticed within a few seconds
CONVERGE_LIMIT = 60.0  # adjacency, LSA origination (BIRD waits 5 s between originations), flows
PINGS = 200
IBGP_PREFIX, IBGP_NEXT_HOP, IN_IBGP_PREFIX = "198.51.99.0/24", "198.51.4.1", "198.51.99.1"


@dataclass(frozen=True, slots=True)
class OspfRouter:
    name: str
    lan: str  # the LAN address, also the router ID
    mac: str
    priority: int
    stubs: tuple[str, ...]  # address/len on the stub device

    @property
    def ns(self) -> str:
        return f"{TAG}-{self.name}"

    @property
    def bridge_veth(self) -> str:
        return f"{TAG}-lan{self.name[1:]}"

    @property
    def stub_prefix(self) -> str:
        return re.sub(r"\.1/24$", ".0/24", self.stubs[0])

    @property
    def loopback(self) -> str:
        return self.stubs[0].split("/")[0]


R3 = OspfRouter("r3", "10.77.4.3", "02:57:00:00:04:03", 200, ("198.51.3.1/24", "198.51.34.1/24"))
R4 = OspfRouter("r4", "10.77.4.4", "02:57:00:00:04:04", 100, ("198.51.4.1/24", "198.51.34.1/24"))
# A third router, never DR or BDR and with nothing of its own: when r4 dies, r3 still has a neighbour to flood
# its new network-LSA to, so the switch sees it (a router left alone on a LAN floods nothing, see test below).
R5 = OspfRouter("r5", "10.77.4.5", "02:57:00:00:04:05", 0, ())
OSPF_ROUTERS = (R3, R4, R5)


def bird_config(router: OspfRouter) -> str:
    """OSPFv2 on the LAN (broadcast: the routers elect DR and BDR) and the stub device; nothing into the kernel."""
    lan = f"type broadcast; cost 10; hello {HELLO}; dead {DEAD}; wait {WAIT}; priority {router.priority};"
    return f"""log stderr all;
router id {router.lan};
protocol device {{ scan time 1; }}
protocol ospf v2 ospf4 {{
  ipv4 {{ import all; export none; }};
  ecmp yes;
  area 0 {{
    interface "{LAN_DEV}" {{ {lan} }};
    interface "{STUB_DEV}" {{ stub yes; }};
  }};
}}
"""


def ospf_config(store: Path) -> str:
    """test_routing's controller configuration, a router interface on the LAN's port and r5 as an iBGP peer."""
    return (
        routing_config(store)
        + interface_toml(LAN_TAP, LAN_PORT, (f"{LAN_ROUTER_V4}/24",))
        + peer_toml(R5.lan, LOCAL_AS)
    )


# -- BIRD, the oracle ----------------------------------------------------------------------------------------


@dataclass
class Birds:
    lab: Lab  # the backend's: its close() stops the daemons
    workdir: Path
    daemons: dict[str, Daemon]

    def socket(self, router: OspfRouter) -> Path:
        return self.workdir / f"bird-{router.name}.ctl"

    def birdc(self, router: OspfRouter, *args: str) -> str:
        return run(in_ns(router.ns, ["birdc", "-s", str(self.socket(router)), *args]), timeout=10).stdout

    def routes(self, router: OspfRouter) -> dict[str, dict[str, Any]]:
        """BIRD's OSPF table of `router`, by prefix."""
        text = self.birdc(router, "show", "route", "protocol", "ospf4", "all")
        return {route["prefix"]: route for route in parse_bird_routes(text)}

    def neighbours(self, router: OspfRouter) -> dict[str, tuple[str, str]]:
        """`show ospf neighbors`: router ID -> (state, the neighbour's address on the LAN)."""
        text = self.birdc(router, "show", "ospf", "neighbors", "ospf4")
        rows = re.findall(r"^(\d+\.\d+\.\d+\.\d+)\s+\d+\s+(\S+)\s+\S+\s+\S+\s+(\d+\.\d+\.\d+\.\d+)", text, re.M)
        return {rid: (state, address) for rid, state, address in rows}

    def full(self) -> bool:
        return all(
            any(state.startswith("Full") for state, _ in self.neighbours(router).values()) for router in self.alive()
        )

    def alive(self) -> list[OspfRouter]:
        return [r for r in OSPF_ROUTERS if r.name in self.daemons and self.daemons[r.name].alive()]

    def expected_next_hops(self) -> dict[str, set[str]]:
        """What a stub on the LAN reaches each prefix through, by BIRD's account: the routers holding it
        directly attached at the least cost, each at the address its neighbour reports for it."""
        tables = {r.name: self.routes(r) for r in self.alive()}
        addresses: dict[str, str] = {}
        for router in self.alive():
            for rid, (_state, address) in self.neighbours(router).items():
                addresses[rid] = address
        owners: dict[str, list[tuple[int, OspfRouter]]] = {}
        for router in self.alive():
            for prefix, route in tables[router.name].items():
                if route["next_hops"] and all(hop["address"] is None for hop in route["next_hops"]):
                    owners.setdefault(prefix, []).append((route["metric"], router))
        expected = {}
        for prefix, held in owners.items():
            if prefix == "10.77.4.0/24":
                continue  # the LAN itself: directly attached for the controller as well
            least = min(metric for metric, _ in held)
            expected[prefix] = {addresses.get(r.lan, "?") for metric, r in held if metric == least}
        return expected

    def kill(self, router: OspfRouter) -> None:
        daemon = self.daemons.pop(router.name)
        daemon.stop_signal = signal.SIGKILL
        self.lab.stop(daemon)


@pytest.fixture(scope="module")
def lan(bed: Bed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:  # noqa: F811
    """The LAN on port 4: the bridge namespace, r3, r4 and r5 (stubs, no BIRD yet), r5's gobgpd."""
    missing = [tool for tool in ("bird", "birdc") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the OSPF routers need BIRD 2: {', '.join(missing)} missing (apt-get install bird2)")
    workdir = tmp_path_factory.mktemp(f"{TAG}-ospf-lan")
    lab = Lab(workdir)
    try:
        lab.namespace(LAN_NS)
        lab.veth(SWITCH_NS, LAN_SWITCH_VETH, LAN_NS, LAN_UPLINK)
        ports = [LAN_UPLINK]
        for router in OSPF_ROUTERS:
            lab.namespace(router.ns)
            lab.veth(router.ns, LAN_DEV, LAN_NS, router.bridge_veth)
            run(in_ns(router.ns, ["ip", "link", "set", LAN_DEV, "address", router.mac]))
            lab.ipv6_off(router.ns, LAN_DEV)
            lab.address(router.ns, LAN_DEV, f"{router.lan}/24")
            lab.offloads_off(router.ns, LAN_DEV)
            lab.offloads_off(LAN_NS, router.bridge_veth)
            lab.ipv6_off(LAN_NS, router.bridge_veth)
            lab.up(router.ns, LAN_DEV)
            if router.stubs:
                run(in_ns(router.ns, ["ip", "link", "add", STUB_DEV, "type", "ifb"]))  # no dummy module here
                lab.ipv6_off(router.ns, STUB_DEV)
                for cidr in router.stubs:
                    lab.address(router.ns, STUB_DEV, cidr)
                lab.up(router.ns, STUB_DEV)
            # BIRD writes nothing into the kernel: the way back to the host is a static route via the switch.
            run(in_ns(router.ns, ["ip", "route", "add", HOST_SUBNET, "via", LAN_ROUTER_V4]))
            ports.append(router.bridge_veth)
            (workdir / f"bird-{router.name}.conf").write_text(bird_config(router))
        lab.offloads_off(LAN_NS, LAN_UPLINK)
        lab.ipv6_off(LAN_NS, LAN_UPLINK)
        lab.bridge(LAN_NS, LAN_BRIDGE, ports)
        lab.offloads_off(SWITCH_NS, LAN_SWITCH_VETH)
        lab.up(SWITCH_NS, LAN_SWITCH_VETH)
        bed.switch.add_port(LAN_SWITCH_VETH, LAN_PORT)
        run(in_ns(R4.ns, ["ip", "address", "add", f"{IN_IBGP_PREFIX}/32", "dev", "lo"]))  # not in OSPF: lo is not
        config = workdir / "gobgpd-r5.toml"
        config.write_text(gobgpd_config(LOCAL_AS, R5.lan, ((LAN_ROUTER_V4, "ipv4-unicast"),)))
        argv = ["gobgpd", "-f", str(config), "-p", "--api-hosts=127.0.0.1:50051", "--pprof-disable"]
        lab.start("gobgpd-r5", R5.ns, argv)
        probe = in_ns(R5.ns, ["gobgp", "-p", "50051", "global"])
        wait_for("r5's gobgpd API", lambda: run(probe, check=False).returncode == 0, deadline=time.monotonic() + 15)
        gobgp(R5.ns, "global", "rib", "add", IBGP_PREFIX, "nexthop", IBGP_NEXT_HOP)
        bed.lan_configs = workdir  # type: ignore[attr-defined]
        yield bed
    finally:
        bed.switch.vsctl("--if-exists", "del-port", BRIDGE, LAN_SWITCH_VETH)
        lab.close()


@dataclass
class OspfBed:
    controller: Controller
    bed: Bed
    birds: Birds


@pytest.fixture(scope="module", params=["osken", "pox"])
def ospf_routed(request: pytest.FixtureRequest, lan: Bed) -> Iterator[OspfBed]:
    """The controller, then the BIRD routers (so it sees every LSA flooded), converged by BIRD's account."""
    backend = request.param
    if backend == "pox" and pox_dir() is None:
        pytest.skip("POX tests need POX_DIR pointing at a noxrepo/pox checkout (branch halosaur)")
    workdir = lan.workdir / f"ospf-{backend}"
    workdir.mkdir()
    store = workdir / "rib.sqlite"
    config = workdir / "sniffroute.toml"
    config.write_text(ospf_config(store))
    lab = Lab(workdir)
    try:
        controller = start_controller(lab, lan.switch, backend, config, store)
        birds = Birds(lab, workdir, {})
        for router in OSPF_ROUTERS:
            conf = lan.lan_configs / f"bird-{router.name}.conf"  # type: ignore[attr-defined]
            argv = ["bird", "-f", "-c", str(conf), "-s", str(birds.socket(router))]
            birds.daemons[router.name] = lab.start(f"bird-{router.name}", router.ns, argv)
        deadline = time.monotonic() + CONVERGE_LIMIT
        wait_for(
            "BIRD's control sockets", lambda: all(birds.socket(r).exists() for r in OSPF_ROUTERS), deadline=deadline
        )
        wait_for("every router Full", lambda: lab.check_running() and birds.full(), deadline=deadline)
        yield OspfBed(controller, lan, birds)
        controller.stop()
    finally:
        lab.close()
        lan.switch.ofctl("del-flows", BRIDGE)
        lan.switch.ofctl("del-groups", BRIDGE)
        run(in_ns(HOST_NS, ["ip", "neigh", "flush", "all"]), check=False)


# -- helpers -------------------------------------------------------------------------------------------------


def ospf_rib(controller: Controller) -> dict[str, dict[str, Any]]:
    """`sniffroute rib --protocol ospf --json`, as the store holds it, by prefix."""
    argv = [sys.executable, "-m", "sniffroute.cli", "rib", "--protocol", "ospf", "--json"]
    argv += ["--db", str(controller.store)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    if result.returncode != 0:
        raise LabError(f"sniffroute rib exited {result.returncode}: {result.stderr.strip()}")
    return {route["prefix"]: route for route in json.loads(result.stdout)}


def rib_next_hops(controller: Controller) -> dict[str, set[str]]:
    return {prefix: {h["address"] for h in r["next_hops"]} for prefix, r in ospf_rib(controller).items()}


def groups(ospf: OspfBed) -> dict[int, list[str]]:
    """The switch's groups: group id -> the text of each bucket."""
    out = {}
    for line in ospf.bed.switch.ofctl("dump-groups", BRIDGE).splitlines():
        found = re.search(r"group_id=(\d+)", line)
        if found:
            out[int(found.group(1))] = line.split("bucket=")[1:]
    return out


def destination_macs(text: str) -> set[str]:
    """The destination MACs a flow's or bucket's actions write (OpenFlow 1.3 or 1.0 spelling)."""
    macs = re.findall(r"set_field:([0-9a-f:]{17})->eth_dst", text) + re.findall(r"mod_dl_dst:([0-9a-f:]{17})", text)
    return set(macs)


def wait_converged(ospf: OspfBed, prefixes: tuple[str, ...]) -> dict[str, set[str]]:
    """BIRD's expected next hops, once the store's OSPF RIB agrees and the switch has a flow for each prefix."""
    deadline = time.monotonic() + CONVERGE_LIMIT
    switch = ospf.bed.switch

    def agreed() -> dict[str, set[str]] | None:
        ospf.birds.lab.check_running()
        expected = ospf.birds.expected_next_hops()
        if not set(prefixes) <= expected.keys():
            return None
        rib = rib_next_hops(ospf.controller)
        if any(rib.get(prefix) != expected[prefix] for prefix in prefixes):
            return None
        return expected if set(prefixes) <= set(route_flows(switch)) else None

    try:
        return wait_for(
            f"OSPF routes for {prefixes} in the store and the switch", agreed, deadline=deadline, interval=0.5
        )
    except LabError as exc:
        detail = {
            "bird": ospf.birds.expected_next_hops(),
            "rib": rib_next_hops(ospf.controller),
            "flows": sorted(route_flows(switch)),
        }
        raise AssertionError(f"{exc}: {detail}\n{ospf.controller.log()[-3000:]}") from None


# -- tests ---------------------------------------------------------------------------------------------------


def test_ospf_routes_reach_the_rib_with_birds_next_hops(ospf_routed: OspfBed) -> None:
    expected = wait_converged(ospf_routed, (R3.stub_prefix, R4.stub_prefix, SHARED))
    # BIRD's account, checked against what we configured: each stub behind its own router, the shared one both.
    assert expected[R3.stub_prefix] == {R3.lan} and expected[R4.stub_prefix] == {R4.lan}
    assert expected[SHARED] == {R3.lan, R4.lan}
    rib = ospf_rib(ospf_routed.controller)
    for prefix in (R3.stub_prefix, R4.stub_prefix, SHARED):
        assert {h["address"] for h in rib[prefix]["next_hops"]} == expected[prefix], rib[prefix]
        assert rib[prefix]["best"], rib[prefix]


def test_ospf_routes_are_forwarded_by_the_switch(ospf_routed: OspfBed) -> None:
    wait_converged(ospf_routed, (R3.stub_prefix, R4.stub_prefix))
    switch = ospf_routed.bed.switch
    for router in (R3, R4):
        flow = str(route_flows(switch)[router.stub_prefix]["text"])
        assert f"output:{LAN_PORT}" in flow, flow
        assert destination_macs(flow) == {router.mac}, flow
    for router in (R3, R4):
        warm = host_ping(router.loopback, count=3)  # ARP on both sides of the router, the first reply may wait
        assert received(warm)[1] >= 1, warm.stdout + ospf_routed.controller.log()[-3000:]
        flow_packets = lambda prefix=router.stub_prefix: int(route_flows(switch)[prefix]["n_packets"])  # noqa: E731
        before, tx, matched = controller_packets(switch), switch.port_tx_packets(LAN_PORT), flow_packets()
        ping = host_ping(router.loopback, count=PINGS, interval="0.01")
        assert ping.returncode == 0 and received(ping) == (PINGS, PINGS), ping.stdout
        grown = controller_packets(switch) - before
        print(f"\n[{ospf_routed.controller.backend}] {PINGS} pings to {router.loopback}: {grown} packet-ins")
        assert switch.port_tx_packets(LAN_PORT) - tx >= PINGS
        # That route's flow carried them (OVS updates flow counters a little later than port counters).
        forwarded = lambda m=matched, count=flow_packets: count() - m >= PINGS  # noqa: E731
        wait_for(f"{PINGS} packets on the flow for {router.stub_prefix}", forwarded, deadline=time.monotonic() + 10)
        # Hellos, keepalives and ARP go up meanwhile, about ten a second; the pings through the controller would
        # add 200 at least.
        assert grown < PACKET_IN_ALLOWANCE + PINGS // 4, f"data went through the controller: {grown} packet-ins"


def test_equal_cost_routes(ospf_routed: OspfBed) -> None:
    wait_converged(ospf_routed, (SHARED,))
    controller, switch = ospf_routed.controller, ospf_routed.bed.switch
    flow = str(route_flows(switch)[SHARED]["text"])
    if controller.backend == "osken":
        found = re.search(r"group:(\d+)", flow)
        assert found, f"no select group: {flow}"
        buckets = groups(ospf_routed)[int(found.group(1))]
        assert "type=select" in switch.ofctl("dump-groups", BRIDGE, found.group(1)), buckets
        assert len(buckets) == 2, buckets
        assert [destination_macs(b) for b in buckets if f"output:{LAN_PORT}" in b] in (
            [{R3.mac}, {R4.mac}],
            [{R4.mac}, {R3.mac}],
        ), buckets
    else:
        assert f"output:{LAN_PORT}" in flow and "group:" not in flow, flow
        assert destination_macs(flow) in ({R3.mac}, {R4.mac}), flow
        argv = [sys.executable, "-m", "sniffroute.cli", "rib", SHARED, "--json", "--db", str(controller.store)]
        (route,) = [r for r in json.loads(run(argv).stdout) if r["protocol"] == "ospf" and r["best"]]
        assert route["fib"] == "installed" and "reduced" in (route["fib_detail"] or ""), route
    ping = host_ping("198.51.34.1", count=20, interval="0.01")
    assert received(ping) == (20, 20), ping.stdout


def test_ibgp_next_hop_resolves_through_the_ospf_route(ospf_routed: OspfBed) -> None:
    """r5 announces a prefix over iBGP with r4's stub address as next hop: the flow sends it to r4's MAC, the
    router the covering OSPF route leads to, not to the BGP peer r5."""
    expected = wait_converged(ospf_routed, (R4.stub_prefix,))
    controller, switch = ospf_routed.controller, ospf_routed.bed.switch
    deadline = time.monotonic() + CONVERGE_LIMIT
    wait_for("r5's iBGP session", lambda: established(R5.ns, LAN_ROUTER_V4), deadline=deadline)
    # r5's own account of what it sent us: the prefix with r4's stub address as next hop, unchanged.
    sent = gobgp(R5.ns, "neighbor", LAN_ROUTER_V4, "adj-out")
    assert IBGP_PREFIX in sent and IBGP_NEXT_HOP in sent, sent
    assert expected[R4.stub_prefix] == {R4.lan}  # BIRD: r4's stub, hence the next hop, lies behind r4
    wait_for(f"a route flow for {IBGP_PREFIX}", lambda: IBGP_PREFIX in route_flows(switch), deadline=deadline)
    flow = str(route_flows(switch)[IBGP_PREFIX]["text"])
    assert f"output:{LAN_PORT}" in flow and destination_macs(flow) == {R4.mac}, flow
    host_ping(IN_IBGP_PREFIX, count=2)  # r4 resolves the controller's address for its replies
    tx = switch.port_tx_packets(LAN_PORT)
    ping = host_ping(IN_IBGP_PREFIX, count=20, interval="0.01")
    assert received(ping) == (20, 20), ping.stdout + controller.log()[-2000:]
    assert switch.port_tx_packets(LAN_PORT) - tx >= 20


def test_a_dead_router_leaves_the_switch(ospf_routed: OspfBed) -> None:
    """r4's BIRD killed: r3, the DR, declares it dead (dead interval) and floods a network-LSA without it to r5;
    r4's stub leaves BIRD's table, the RIB and the switch, and the shared prefix goes to r3 alone.

    Without r5, r3 would have no neighbour left to flood to, and a switch that only listens would keep r4's routes
    until their LSAs age out (an hour): the limit of sniffing rather than peering."""
    wait_converged(ospf_routed, (R3.stub_prefix, R4.stub_prefix, SHARED))
    birds, switch = ospf_routed.birds, ospf_routed.bed.switch
    birds.kill(R4)
    deadline = time.monotonic() + CONVERGE_LIMIT
    wait_for("r4's stub to leave r3's table", lambda: R4.stub_prefix not in birds.routes(R3), deadline=deadline)
    started = time.monotonic()
    wait_for("r4's stub to leave the switch", lambda: R4.stub_prefix not in route_flows(switch), deadline=deadline)
    took = time.monotonic() - started
    print(f"\n[{ospf_routed.controller.backend}] r4's stub left the switch {took:.1f} s after it left BIRD's table")
    expected = wait_converged(ospf_routed, (R3.stub_prefix, SHARED))
    assert expected[SHARED] == {R3.lan}
    assert R4.stub_prefix not in ospf_rib(ospf_routed.controller)
    flow = str(route_flows(switch)[SHARED]["text"])
    found = re.search(r"group:(\d+)", flow)
    macs = (
        [destination_macs(b) for b in groups(ospf_routed)[int(found.group(1))]] if found else [destination_macs(flow)]
    )
    assert macs == [{R3.mac}], flow
    assert received(host_ping("198.51.34.1", count=10, interval="0.02")) == (10, 10)
    # Now only r1's 198.51.0.0/16 covers r4's stub, and nothing there answers for it.
    assert received(host_ping(R4.loopback, count=2, wait="1"))[1] == 0
