"""Routes as flows end to end, per backend: the switch forwards what the RIB says, and keeps forwarding.

    port 1: r1  gobgpd AS 64501 (the conftest router) 10.77.1.1   lo 198.51.7.1, 192.0.2.1
    port 2: r2  gobgpd AS 64502                       10.77.2.1   lo 198.51.100.1, 192.0.2.1
    port 3: h1  a host                                10.77.3.1   default via 10.77.3.254 (the router)

r1 announces 198.51.0.0/16 and 192.0.2.0/24 (AS path prepended); r2 announces 198.51.100.0/24 and 192.0.2.0/24.
Oracles: the switch's own flow table, flow and port counters (ovs-ofctl), ping/iperf3 exit status and output,
gobgpd's sessions. Measured times are printed (run with -s to see them).
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    BRIDGE,
    CONTROLLER_NS,
    HOLD_TIME,
    OPENFLOW_LISTEN,
    OPENFLOW_PORT,
    PEER_AS,
    PEER_V4,
    PEER_V6,
    ROUTER_MAC,
    ROUTER_NS,
    ROUTER_PORT,
    ROUTER_V4,
    ROUTER_V6,
    TAG,
    Controller,
    Router,
    Switch,
    _listening,
    attach_to_switch,
    gobgpd_config,
    interface_toml,
    peer_toml,
    pox_dir,
    start_controller,
)
from tests.lab.netns import Daemon, Lab, in_ns, run, wait_for

pytestmark = pytest.mark.e2e

R2_NS, R2_VETH, R2_SWITCH_VETH = f"{TAG}-r2", f"{TAG}-r2-ns", f"{TAG}-r2-br"
HOST_NS, HOST_VETH, HOST_SWITCH_VETH = f"{TAG}-h1", f"{TAG}-h1-ns", f"{TAG}-h1-br"
R2_PORT, HOST_PORT = 2, 3
R2_V4, R2_ROUTER_V4, R2_AS, R2_MAC = "10.77.2.1", "10.77.2.254", 64502, "02:57:00:00:00:02"
HOST_V4, HOST_ROUTER_V4, HOST_MAC = "10.77.3.1", "10.77.3.254", "02:57:00:00:00:03"
TAPS = (f"{TAG}-tap1", f"{TAG}-tap2", f"{TAG}-tap3")
GOBGP_API = "50051"
R1_LOOPBACKS = ("198.51.7.1", "192.0.2.1")
R2_LOOPBACKS = ("198.51.100.1", "192.0.2.1")
COVERING, SPECIFIC, CONTESTED = "198.51.0.0/16", "198.51.100.0/24", "192.0.2.0/24"
IN_COVERING, IN_SPECIFIC, IN_CONTESTED = "198.51.7.1", "198.51.100.1", "192.0.2.1"
ROUTE_BASE_PRIORITY = 0x1000  # sniffroute.tunnel.ROUTE_BASE_PRIORITY, written out: the switch reports numbers
PUNT_PRIORITY = 0xF000
ROUTE_COOKIE = 0x5E1F_0002  # sniffroute.fib.ROUTE_COOKIE
AUDIT_SECONDS = 30.0  # sniffroute.backends.routing.AUDIT_SECONDS: how often the switch's flows are read again
WITHIN_A_SECOND = 1.0
DATA_PINGS = 200
TRANSFER_BYTES = 4 << 20
PACKET_IN_ALLOWANCE = 60  # keepalives, ARP refreshes, a glean or two: far below the data packets


# A TCP transfer without extra tools: the sink on r1 counts what arrives until the source closes.
TCP_SINK = """import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
connection, _ = server.accept()
total = 0
while chunk := connection.recv(65536):
    total += len(chunk)
print(total)
"""
TCP_SOURCE = """import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30) as connection:
    connection.sendall(bytes(int(sys.argv[3])))
"""


def routing_config(store: Path) -> str:
    text = f"""router_mac = "{ROUTER_MAC}"
store = "{store}"
save_interval = 0.2
log_level = "info"

[openflow]
listen = "{OPENFLOW_LISTEN}"
port = {OPENFLOW_PORT}
"""
    text += interface_toml(TAPS[0], ROUTER_PORT, (f"{ROUTER_V4}/24", f"{ROUTER_V6}/64"))
    text += interface_toml(TAPS[1], R2_PORT, (f"{R2_ROUTER_V4}/24",))
    text += interface_toml(TAPS[2], HOST_PORT, (f"{HOST_ROUTER_V4}/24",))
    for address, asn in ((PEER_V4, PEER_AS), (PEER_V6, PEER_AS), (R2_V4, R2_AS)):
        text += peer_toml(address, asn)
    return text


def gobgp(ns: str, *args: str) -> str:
    return run(in_ns(ns, ["gobgp", "-p", GOBGP_API, *args]), timeout=10).stdout


def established(ns: str, neighbour: str) -> bool:
    out = run(in_ns(ns, ["gobgp", "-p", GOBGP_API, "neighbor", neighbour, "-j"]), check=False).stdout.strip()
    try:
        state = json.loads(out).get("state", {}).get("session_state") if out else None
    except ValueError:
        return False
    return state == 6 or str(state).lower() == "established"  # api.PeerState.SessionState ESTABLISHED


@dataclass
class Bed:
    switch: Switch
    router: Router
    lab: Lab
    workdir: Path
    r2_config: Path

    def start_r2(self) -> None:
        self.r2 = self.lab.start(
            "gobgpd-r2",
            R2_NS,
            ["gobgpd", "-f", str(self.r2_config), "-p", f"--api-hosts=127.0.0.1:{GOBGP_API}", "--pprof-disable"],
        )
        deadline = time.monotonic() + 15
        probe = in_ns(R2_NS, ["gobgp", "-p", GOBGP_API, "global"])
        wait_for("r2's gobgpd API", lambda: run(probe, check=False).returncode == 0, deadline=deadline)
        for prefix in (SPECIFIC, CONTESTED):
            gobgp(R2_NS, "global", "rib", "add", prefix, "nexthop", R2_V4)

    def kill_r2(self) -> None:
        self.r2.stop_signal = 9
        self.lab.stop(self.r2)


@pytest.fixture(scope="module")
def bed(switch: Switch, router: Router, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    workdir = tmp_path_factory.mktemp(f"{TAG}-routing")
    lab = Lab(workdir)
    try:
        for ns, veth, switch_veth, port, cidr, mac in (
            (R2_NS, R2_VETH, R2_SWITCH_VETH, R2_PORT, f"{R2_V4}/24", R2_MAC),
            (HOST_NS, HOST_VETH, HOST_SWITCH_VETH, HOST_PORT, f"{HOST_V4}/24", HOST_MAC),
        ):
            attach_to_switch(lab, switch, ns, veth, switch_veth, port, cidr, mac)
        run(in_ns(HOST_NS, ["ip", "route", "add", "default", "via", HOST_ROUTER_V4]))
        # The prefixes exist on the routers' loopbacks; replies go back to the host through the switch too.
        for ns, loopbacks, via in ((ROUTER_NS, R1_LOOPBACKS, ROUTER_V4), (R2_NS, R2_LOOPBACKS, R2_ROUTER_V4)):
            for address in loopbacks:
                run(in_ns(ns, ["ip", "addr", "add", f"{address}/32", "dev", "lo"]))
            run(in_ns(ns, ["ip", "route", "add", "10.77.3.0/24", "via", via]))
        router.gobgp("global", "rib", "add", COVERING, "nexthop", PEER_V4)
        router.gobgp("global", "rib", "add", CONTESTED, "nexthop", PEER_V4, "aspath", "64601 64602")
        config = workdir / "gobgpd-r2.toml"
        config.write_text(gobgpd_config(R2_AS, R2_V4, ((R2_ROUTER_V4, "ipv4-unicast"),)))
        bed = Bed(switch, router, lab, workdir, config)
        bed.start_r2()
        yield bed
    finally:
        for ns in (ROUTER_NS,):
            for address in R1_LOOPBACKS:
                run(in_ns(ns, ["ip", "addr", "del", f"{address}/32", "dev", "lo"]), check=False)
        lab.close()


@pytest.fixture(scope="module", params=["osken", "pox"])
def routed(request: pytest.FixtureRequest, bed: Bed) -> Iterator[tuple[Controller, Bed]]:
    backend = request.param
    if backend == "pox" and pox_dir() is None:
        pytest.skip("POX tests need POX_DIR pointing at a noxrepo/pox checkout (branch halosaur)")
    workdir = bed.workdir / backend
    workdir.mkdir()
    store = workdir / "rib.sqlite"
    config = workdir / "sniffroute.toml"
    config.write_text(routing_config(store))
    lab = Lab(workdir)
    try:
        controller = start_controller(lab, bed.switch, backend, config, store)
        controller.config = config  # type: ignore[attr-defined]
        yield controller, bed
        controller.stop()
    finally:
        lab.close()
        # The next backend starts from an empty switch and an empty store, and meets the host as a new router:
        # without glean flows (see README) it learns a host from the host's own ARP for it.
        bed.switch.ofctl("del-flows", BRIDGE)
        bed.switch.ofctl("del-groups", BRIDGE)
        run(in_ns(HOST_NS, ["ip", "neigh", "flush", "all"]), check=False)


# -- helpers -------------------------------------------------------------------------------------------------


def route_flows(switch: Switch) -> dict[str, dict[str, object]]:
    """The switch's route flows by destination prefix: text, packets, duration."""
    flows: dict[str, dict[str, object]] = {}
    for flow in switch.flows():
        if not ROUTE_BASE_PRIORITY <= flow["priority"] < PUNT_PRIORITY:
            continue
        text = flow["text"]
        found = re.search(r"nw_dst=([0-9./]+)", text) or re.search(r"ipv6_dst=([0-9a-f:./]+)", text)
        prefix = found.group(1) if found else ("0.0.0.0/0" if "ip," in text or "ip " in text else "?")
        if "/" not in prefix:
            prefix += "/32" if "." in prefix else "/128"
        duration = float(re.search(r"duration=([0-9.]+)s", text).group(1))  # type: ignore[union-attr]
        flows[prefix] = {"text": text, "n_packets": flow["n_packets"], "duration": duration}
    return flows


def output_port(switch: Switch, prefix: str) -> int | None:
    flow = route_flows(switch).get(prefix)
    if flow is None:
        return None
    found = re.search(r"output:(\d+)", str(flow["text"]))
    return int(found.group(1)) if found else None


def controller_packets(switch: Switch) -> int:
    """Packets the switch sent to the controller: punt flows and glean flows (their action says so)."""
    return sum(f["n_packets"] for f in switch.flows() if "CONTROLLER" in f["text"])


def host_ping(
    address: str, *, count: int = 5, interval: str = "0.05", wait: str = "1", ns: str = HOST_NS
) -> subprocess.CompletedProcess[str]:
    argv = ["ping", "-n", "-c", str(count), "-i", interval, "-W", wait, address]
    return run(in_ns(ns, argv), check=False, timeout=120)


def received(ping: subprocess.CompletedProcess[str]) -> tuple[int, int]:
    found = re.search(r"(\d+) packets transmitted, (\d+) received", ping.stdout)
    assert found, ping.stdout + ping.stderr
    return int(found.group(1)), int(found.group(2))


def time_until(what: str, predicate, limit: float = 10.0) -> float:  # noqa: ANN001
    start = time.monotonic()
    wait_for(what, predicate, deadline=start + limit, interval=0.02)
    return time.monotonic() - start


def wait_converged(controller: Controller, switch: Switch, prefixes: tuple[str, ...], limit: float = 40) -> None:
    deadline = time.monotonic() + limit
    for neighbour in (ROUTER_V4,):
        wait_for("r1's session", lambda n=neighbour: established(ROUTER_NS, n), deadline=deadline)
    wait_for("r2's session", lambda: established(R2_NS, R2_ROUTER_V4), deadline=deadline)
    wait_for(f"route flows for {prefixes}", lambda: set(prefixes) <= set(route_flows(switch)), deadline=deadline)


KERNEL_GIVES_UP = 3.0  # seconds: an unanswered ARP (3 probes, 1 s apart) leaves a FAILED neighbour entry
KERNEL_POLL = 1.0  # how often the FIB reads the TAPs' neighbour tables


def reconnect(switch: Switch) -> None:
    """Drop the OpenFlow connection and reconnect at once, the controller staying configured."""
    switch._run(["ovs-appctl", "-t", "ovs-vswitchd", "bridge/reconnect", BRIDGE])


def restart_controller(controller: Controller, switch: Switch, *, switch_away: float = 0.0) -> None:
    """Start `sniffroute run` again in place of a stopped one, and let the switch reconnect at once (or, with
    `switch_away`, bring the OpenFlow link back up that many seconds after the new controller listens)."""
    config = str(controller.config)  # type: ignore[attr-defined]
    argv = [sys.executable, "-m", "sniffroute.cli", "run", "--config", config, "--backend", controller.backend]
    controller.daemon = controller.lab.start(f"sniffroute-{controller.backend}-again", CONTROLLER_NS, argv)
    controller.exit_status = None
    deadline = time.monotonic() + 20 + switch_away
    wait_for("the OpenFlow listener", lambda: controller.lab.check_running() and _listening(), deadline=deadline)
    if switch_away:
        time.sleep(switch_away)
        openflow_link(up=True)
    reconnect(switch)
    wait_for("the switch to connect", switch.connected, deadline=deadline)


def openflow_link(*, up: bool) -> None:
    """The controller namespace's end of the OpenFlow link (tests/e2e/ovs-up.sh), up or down."""
    run(["ip", "-n", CONTROLLER_NS, "link", "set", "st-of-ctl", "up" if up else "down"])


class RibWatch:
    """The controller's best BGP routes as its store shows them (prefix -> stale or possibly stale), read every 50 ms
    on a thread of its own: what `sniffroute rib` printed at each moment of a restart. After kill -9 the peers'
    old connections may carry on into the new run: their routes are then kept as possibly stale, not stale."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.seen: list[dict[str, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rib-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from sniffroute.store import Store, StoreError

        while not self._stop.wait(0.05):
            try:
                with Store(self.store, create=False) as store:
                    routes = store.routes(protocol="bgp")
            except (StoreError, sqlite3.Error):
                continue
            held = {route["prefix"]: route["stale"] or route["possibly_stale"] for route in routes if route["best"]}
            self.seen.append(held)

    def stop(self) -> list[dict[str, bool]]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.seen


def start_ping(address: str, count: int) -> subprocess.Popen[str]:
    argv = in_ns(HOST_NS, ["ping", "-n", "-c", str(count), "-i", "0.01", "-W", "1", address])
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@dataclass(frozen=True)
class PingRun:
    sent: int
    received: int
    lost: tuple[int, ...]  # icmp_seq of the requests without a reply: where in the run the loss fell

    def __str__(self) -> str:
        where = f" (icmp_seq {', '.join(map(str, self.lost[:20]))})" if self.lost else ""
        return f"{self.sent - self.received} of {self.sent} pings lost{where}"


def finish_ping(process: subprocess.Popen[str]) -> PingRun:
    out, err = process.communicate(timeout=120)
    sent, got = received(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    answered = {int(seq) for seq in re.findall(r"icmp_seq=(\d+) ttl=", out)}
    return PingRun(sent, got, tuple(seq for seq in range(1, sent + 1) if seq not in answered))


def interrupt_ping(process: subprocess.Popen[str]) -> PingRun:
    """Stop a ping with SIGINT, as a user does. ping exits at once, so the request it sent last may still be on
    its way (a stop within one round trip of a send catches it): an unanswered last request is not a loss."""
    process.send_signal(signal.SIGINT)
    run = finish_ping(process)
    if run.lost and run.lost[-1] == run.sent:
        return PingRun(run.sent - 1, run.received, run.lost[:-1])
    return run


# -- tests ---------------------------------------------------------------------------------------------------


def test_traffic_is_forwarded_by_the_switch(routed: tuple[Controller, Bed]) -> None:
    controller, bed = routed
    switch = bed.switch
    wait_converged(controller, switch, (COVERING, SPECIFIC, CONTESTED))
    warm = host_ping(IN_COVERING, count=3)  # the host's ARP for the router, the router's resolution of the host
    assert received(warm)[1] >= 1, warm.stdout + controller.log()[-3000:]
    before = controller_packets(switch)
    tx_before = switch.port_tx_packets(ROUTER_PORT)
    ping = host_ping(IN_COVERING, count=DATA_PINGS, interval="0.005")
    assert received(ping) == (DATA_PINGS, DATA_PINGS), ping.stdout
    ttl = {int(t) for t in re.findall(r"ttl=(\d+)", ping.stdout)}
    # The reply left r1 with TTL 64; the switch decrements it where it can (OpenFlow 1.3), not on OpenFlow 1.0.
    assert ttl == ({63} if controller.backend == "osken" else {64}), ttl

    server = subprocess.Popen(
        in_ns(ROUTER_NS, [sys.executable, "-c", TCP_SINK, IN_COVERING, "5201"]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        client = run(in_ns(HOST_NS, [sys.executable, "-c", TCP_SOURCE, IN_COVERING, "5201", str(TRANSFER_BYTES)]))
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert client.returncode == 0
    assert int(out.strip() or -1) == TRANSFER_BYTES, out + err  # what r1 received, counted by r1
    data_packets = switch.port_tx_packets(ROUTER_PORT) - tx_before
    grown = controller_packets(switch) - before
    print(f"\n[{controller.backend}] data packets out of port 1: {data_packets}; packets to the controller: {grown}")
    assert data_packets > DATA_PINGS + TRANSFER_BYTES // 65536  # whatever the segment sizes, far more than punts
    assert grown < PACKET_IN_ALLOWANCE, f"data went through the controller: {grown} packet-ins"


def test_flows_command_shows_the_switch_converged(routed: tuple[Controller, Bed]) -> None:
    controller, bed = routed
    wait_converged(controller, bed.switch, (COVERING, SPECIFIC, CONTESTED))

    def flows() -> dict[str, object]:
        argv = [sys.executable, "-m", "sniffroute.cli", "flows", "--json", "--db", str(controller.store)]
        return json.loads(run(argv).stdout)

    deadline = time.monotonic() + 10
    while not (view := flows())["converged"] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert view["converged"], view["differences"]
    # What it says the switch holds is what the switch says it holds (ovs-ofctl), flow for flow.
    assert len(view["held"]) == len(route_flows(bed.switch))
    routes = {r["prefix"]: r for r in controller.rib() if r["best"]}
    assert routes[SPECIFIC]["fib"] == "installed" and routes[COVERING]["fib"] == "installed"


def test_longest_prefix_match_picks_the_specific_router(routed: tuple[Controller, Bed]) -> None:
    controller, bed = routed
    switch = bed.switch
    wait_converged(controller, switch, (COVERING, SPECIFIC))
    assert output_port(switch, SPECIFIC) == R2_PORT
    assert output_port(switch, COVERING) == ROUTER_PORT
    for address, port, other in ((IN_SPECIFIC, R2_PORT, ROUTER_PORT), (IN_COVERING, ROUTER_PORT, R2_PORT)):
        tx, tx_other = switch.port_tx_packets(port), switch.port_tx_packets(other)
        ping = host_ping(address, count=50, interval="0.01")
        assert received(ping) == (50, 50), ping.stdout
        assert switch.port_tx_packets(port) - tx >= 50
        assert switch.port_tx_packets(other) - tx_other < 25  # keepalives only


def test_best_path_moves_when_the_better_one_is_withdrawn(routed: tuple[Controller, Bed]) -> None:
    controller, bed = routed
    switch = bed.switch
    wait_converged(controller, switch, (CONTESTED,))
    assert output_port(switch, CONTESTED) == R2_PORT  # r2's AS path is shorter
    gobgp(R2_NS, "global", "rib", "del", CONTESTED)
    took = time_until("the contested prefix to move to r1", lambda: output_port(switch, CONTESTED) == ROUTER_PORT)
    print(f"\n[{controller.backend}] best path moved in the switch {took * 1000:.0f} ms after r2's withdrawal")
    assert took < WITHIN_A_SECOND
    tx = switch.port_tx_packets(ROUTER_PORT)
    assert received(host_ping(IN_CONTESTED, count=20, interval="0.01")) == (20, 20)
    assert switch.port_tx_packets(ROUTER_PORT) - tx >= 20
    gobgp(R2_NS, "global", "rib", "add", CONTESTED, "nexthop", R2_V4)
    time_until("the contested prefix back on r2", lambda: output_port(switch, CONTESTED) == R2_PORT)


def test_withdrawal_leaves_the_switch_within_a_second(routed: tuple[Controller, Bed]) -> None:
    controller, bed = routed
    switch = bed.switch
    wait_converged(controller, switch, (SPECIFIC,))
    gobgp(R2_NS, "global", "rib", "del", SPECIFIC)
    took = time_until("the withdrawn prefix to leave the switch", lambda: SPECIFIC not in route_flows(switch))
    print(f"\n[{controller.backend}] withdrawn route left the switch in {took * 1000:.0f} ms")
    assert took < WITHIN_A_SECOND
    gobgp(R2_NS, "global", "rib", "add", SPECIFIC, "nexthop", R2_V4)
    time_until("the prefix back", lambda: SPECIFIC in route_flows(switch))


def test_a_flow_deleted_behind_our_back_comes_back(routed: tuple[Controller, Bed]) -> None:
    """Atrium's "routes in the daemon but not in the switch": the periodic audit of the switch's flows puts back
    a route flow someone deleted by hand."""
    controller, bed = routed
    switch = bed.switch
    wait_converged(controller, switch, (SPECIFIC,))
    switch.ofctl("del-flows", BRIDGE, f"cookie={ROUTE_COOKIE:#x}/-1,ip,nw_dst={SPECIFIC}")
    assert SPECIFIC not in route_flows(switch)
    took = time_until("the deleted flow back", lambda: SPECIFIC in route_flows(switch), limit=AUDIT_SECONDS + 10)
    print(f"\n[{controller.backend}] a flow deleted by hand was back in {took:.1f} s")
    host_ping(IN_SPECIFIC, count=2)  # the router resolves the host: the first reply may wait for it
    assert received(host_ping(IN_SPECIFIC, count=3)) == (3, 3)
    assert any("audit: the switch differs" in line for line in controller.log().splitlines())


def test_default_route_does_not_swallow_bgp_or_arp(routed: tuple[Controller, Bed]) -> None:
    controller, bed = routed
    switch = bed.switch
    wait_converged(controller, switch, (SPECIFIC,))
    gobgp(R2_NS, "global", "rib", "add", "0.0.0.0/0", "nexthop", R2_V4)
    try:
        time_until("the default route flow", lambda: "0.0.0.0/0" in route_flows(switch))
        punted = sum(f["n_packets"] for f in switch.flows() if f["priority"] == PUNT_PRIORITY)
        run(in_ns(HOST_NS, ["ip", "neigh", "flush", "dev", HOST_VETH]))  # the host must ARP again
        assert received(host_ping(HOST_ROUTER_V4, count=3)) == (3, 3)  # ARP and ICMP for the router: punted
        assert received(host_ping(IN_COVERING, count=3)) == (3, 3)  # more specific routes still win
        time.sleep(2 * HOLD_TIME)
        assert established(ROUTER_NS, ROUTER_V4) and established(R2_NS, R2_ROUTER_V4)
        assert sum(f["n_packets"] for f in switch.flows() if f["priority"] == PUNT_PRIORITY) > punted
    finally:
        gobgp(R2_NS, "global", "rib", "del", "0.0.0.0/0")
    time_until("the default route to go", lambda: "0.0.0.0/0" not in route_flows(switch))


def test_a_host_that_never_asks_for_the_router_is_gleaned(routed: tuple[Controller, Bed]) -> None:
    """The host knows the router's MAC already (a static entry), so it never ARPs: only a glean flow lets the
    router find it. OpenFlow 1.0 has no meters and sniffroute installs glean flows only under one."""
    controller, bed = routed
    if controller.backend != "osken":
        pytest.skip("glean flows need an OpenFlow 1.3 meter; on POX a host is learned from its own ARP")
    switch = bed.switch
    wait_converged(controller, switch, (COVERING,))
    quiet_host = "10.77.3.2"  # an address the router has never heard from
    host = ["ip", "address", "add", f"{quiet_host}/24", "dev", HOST_VETH]
    run(in_ns(HOST_NS, host))
    try:
        with router_mac_pinned((HOST_NS, HOST_ROUTER_V4, HOST_VETH)):
            assert f"{quiet_host}/32" not in route_flows(switch)
            argv = ["ping", "-n", "-c", "5", "-i", "0.3", "-W", "1", "-I", quiet_host, IN_COVERING]
            ping = run(in_ns(HOST_NS, argv), check=False)
            sent, got = received(ping)
            print(f"\n[{controller.backend}] a host that never ARPs: {got} of {sent} replies")
            assert got >= sent - 1, ping.stdout + controller.log()[-3000:]  # the first reply may go to the glean
            assert f"{quiet_host}/32" in route_flows(switch)
    finally:
        run(in_ns(HOST_NS, ["ip", "address", "del", f"{quiet_host}/24", "dev", HOST_VETH]), check=False)


def test_switch_reconnect_loses_nothing(routed: tuple[Controller, Bed]) -> None:
    controller, bed = routed
    switch = bed.switch
    wait_converged(controller, switch, (COVERING, SPECIFIC, CONTESTED))
    host_ping(IN_COVERING, count=2)  # the router resolves the host: the first reply may wait for it, as on any router
    assert received(host_ping(IN_COVERING, count=3)) == (3, 3)
    before = route_flows(switch)
    ping = start_ping(IN_COVERING, 300)
    time.sleep(0.5)
    connections = controller.document("tunnel")["switch_connections"]
    expiries = _hold_timer_expiries(controller)
    reconnect(switch)  # not del-controller: OVS flushes its flows when a bridge loses its last controller
    deadline = time.monotonic() + 10
    again = lambda: controller.document("tunnel")["switch_connections"] > connections  # noqa: E731
    wait_for("the switch to reconnect", again, deadline=deadline)
    if controller.backend == "osken":
        time.sleep(1.0)
        controller.daemon.process.send_signal(signal.SIGUSR1)  # the threads' stacks, for a stall (see below)
    pings = finish_ping(ping)
    after = route_flows(switch)
    print(f"\n[{controller.backend}] switch reconnect: {pings}")
    # The sessions must outlive the reconnect too: frames the Linux stack sends meanwhile are held and sent when
    # the switch is back, so no KEEPALIVE waits for TCP's backed-off retransmission past the 3 s hold time.
    dropped = _hold_timer_expiries(controller) > expiries
    assert not pings.lost and not dropped, f"{pings}\n{_reconnect_diagnostics(controller, switch)}"
    assert set(after) == set(before)
    for prefix, flow in before.items():  # the same flows, never deleted and re-added: counters kept running
        assert after[prefix]["duration"] >= flow["duration"], prefix


def _hold_timer_expiries(controller: Controller) -> int:
    log = controller.log()
    return log.count("Hold Timer Expired") + log.count("hold timer expired")


def _reconnect_diagnostics(controller: Controller, switch: Switch) -> str:
    """The controller's OpenFlow and FIB lines and the switch's connection log lines, for a reconnect gone wrong."""
    log = controller.log()
    ours = [line for line in log.splitlines() if "sniffroute.osken" in line or "sniffroute.fib" in line]
    stacks = log[log.find("Thread 0x") :] if "Thread 0x" in log else ""
    ovs_log = switch.base / "log" / "ovs-vswitchd.log"
    text = ovs_log.read_text(errors="replace") if ovs_log.exists() else f"({ovs_log} not found)"
    wanted = ("rconn", "connmgr", "not found", "|WARN|", "|ERR|")
    theirs = [line for line in text.splitlines() if any(word in line for word in wanted)]
    state = [str(controller.document("tunnel")), switch.vsctl("show"), switch.ofctl("dump-flows", BRIDGE)]
    state.append(switch.ofctl("meter-stats", BRIDGE))
    state.append(switch._run(["ovs-appctl", "-t", "ovs-vswitchd", "dpctl/dump-flows"], check=False))
    return "\n".join(ours[-20:] + theirs[-30:] + state + [stacks[:20000]])


@contextlib.contextmanager
def router_mac_pinned(*neighbours: tuple[str, str, str]) -> Iterator[None]:
    """The router's MAC as a permanent neighbour entry (namespace, router address, device) while the block runs:
    hosts that neither ask for it nor age it out, whatever the router's control plane does meanwhile. Each host
    first pings the router once: its ARP for the router is how a router without glean flows (POX) learns it, as
    from any host on the LAN; pinned before that, a host the router never met would get no replies."""
    for ns, address, dev in neighbours:
        host_ping(address, count=1, wait="2", ns=ns)
        run(in_ns(ns, ["ip", "neigh", "replace", address, "lladdr", ROUTER_MAC, "dev", dev, "nud", "permanent"]))
    try:
        yield
    finally:
        for ns, address, dev in neighbours:
            run(in_ns(ns, ["ip", "neigh", "del", address, "dev", dev]), check=False)


def converged_and_pinging(
    controller: Controller, switch: Switch, count: int
) -> tuple[dict[str, dict[str, object]], subprocess.Popen[str]]:
    """Before a restart: the routes converged and in the store, the host resolved; the route flows as they are,
    and a ping of `count` toward the specific route under way."""
    wait_converged(controller, switch, (COVERING, SPECIFIC, CONTESTED))
    time.sleep(0.5)  # the store has the converged state
    host_ping(IN_SPECIFIC, count=2)  # the router resolves the host: the first reply may wait for it
    return route_flows(switch), start_ping(IN_SPECIFIC, count)


def fib_lines(controller: Controller, stopped: Daemon) -> str:
    """The FIB's last log lines of a stopped controller and of the one that took over."""
    old = [line for line in stopped.log.read_text(errors="replace").splitlines() if "sniffroute.fib" in line]
    new = [line for line in controller.log().splitlines() if "sniffroute.fib" in line]
    return "\n".join(["stopped controller:", *old[-10:], "restarted controller:", *new[-20:]])


@pytest.mark.parametrize("signal_name", ["TERM", "KILL"])
def test_controller_restart_loses_no_pings(routed: tuple[Controller, Bed], signal_name: str) -> None:
    controller, bed = routed
    switch = bed.switch
    # The data plane is what is measured: the hosts hold the router's MAC, since while no controller runs
    # nothing answers ARP for the router, and a host re-validating its entry just then could lose a ping.
    with router_mac_pinned((HOST_NS, HOST_ROUTER_V4, HOST_VETH), (R2_NS, R2_ROUTER_V4, R2_VETH)):
        before, ping = converged_and_pinging(controller, switch, 600)
        time.sleep(0.5)
        if signal_name == "KILL":
            controller.daemon.stop_signal = 9
        watch = RibWatch(controller.store)
        stopped = controller.daemon
        controller.lab.stop(stopped, grace=10)
        started = time.monotonic()
        restart_controller(controller, switch)
        wait_converged(controller, switch, (COVERING, SPECIFIC, CONTESTED))
        seen = watch.stop()
        pings = finish_ping(ping)
    print(f"\n[{controller.backend}] restart after SIG{signal_name}: {pings}; "
          f"sessions and flows back in {time.monotonic() - started:.1f} s")  # fmt: skip
    # The RIB came back from the store at once, and no route went missing from it since. After SIGTERM the peers
    # had our NOTIFICATIONs, so every route shows stale (only the restored RIB marks them so; the first run stored
    # them with their sessions up) until the sessions are back. After kill -9 a peer's old connection may carry on
    # into the new run (its keepalives arrive before our new kernel resets it): its routes are its own again.
    prefixes = {COVERING, SPECIFIC, CONTESTED}
    changes = [view for n, view in enumerate(seen) if n == 0 or view != seen[n - 1]]
    start = 0
    if signal_name == "TERM":
        restored = [n for n, view in enumerate(seen) if prefixes <= view.keys() and all(view[p] for p in prefixes)]
        assert restored, f"the restarted RIB never showed the restored routes: {changes}\n{controller.log()[-3000:]}"
        start = restored[0]
    assert all(prefixes <= view.keys() for view in seen[start:]), f"routes left the RIB: {changes}"
    # The sessions' own announcements replace them.
    fresh = lambda: not any(r["stale"] for r in controller.rib() if r["protocol"] == "bgp")  # noqa: E731
    wait_for("the sessions' routes in place of the restored ones", fresh, deadline=time.monotonic() + 20)
    assert not pings.lost, f"{pings}\n{controller.log()[-3000:]}"
    if signal_name == "TERM":
        # After kill -9 the peers still hold the old sessions; their collision with the new ones can make a peer
        # drop a session (and its routes) once more, which re-adds its flows: forwarding held, counters did not.
        after = route_flows(switch)
        readded = [p for p in (COVERING, SPECIFIC, CONTESTED) if after[p]["duration"] < before[p]["duration"]]
        assert not readded, f"{readded} re-added after SIGTERM\n{fib_lines(controller, stopped)}"


def test_restart_while_the_switch_is_away_keeps_every_flow(routed: tuple[Controller, Bed]) -> None:
    """The new controller starts while the switch cannot reach it, for longer than the kernel takes to give up
    on ARP (its first BGP connects fail through a TAP with no switch behind it). Those failures say nothing of
    the neighbours: when the switch is back, no route flow may go, not even for a moment. The host and r2 keep
    the router's MAC meanwhile: with no control plane for about 8 s, their own ARP entries for the router could
    age out, and the pings would then measure that rather than the switch's flows."""
    controller, bed = routed
    switch = bed.switch
    with router_mac_pinned((HOST_NS, HOST_ROUTER_V4, HOST_VETH), (R2_NS, R2_ROUTER_V4, R2_VETH)):
        before, ping = converged_and_pinging(controller, switch, 100_000)
        openflow_link(up=False)
        stopped = controller.daemon
        try:
            controller.lab.stop(stopped, grace=10)
            restart_controller(controller, switch, switch_away=KERNEL_GIVES_UP + 1.5)
        finally:
            openflow_link(up=True)
        wait_converged(controller, switch, (COVERING, SPECIFIC, CONTESTED))
        time.sleep(2 * KERNEL_POLL)  # the FIB has read the kernel's neighbour tables since
        pings = interrupt_ping(ping)
    after = route_flows(switch)
    print(f"\n[{controller.backend}] restart with the switch away {KERNEL_GIVES_UP + 1.5:.1f} s: {pings}")
    assert not pings.lost, f"{pings}\n{fib_lines(controller, stopped)}"
    # Every route flow, IPv4 and IPv6, routes and hosts: still there, never deleted and added again.
    readded = [p for p in before if p not in after or after[p]["duration"] < before[p]["duration"]]
    assert not readded, f"re-added: {readded}\n{fib_lines(controller, stopped)}"


def test_peer_death_moves_flows_within_a_second(routed: tuple[Controller, Bed]) -> None:
    controller, bed = routed
    switch = bed.switch
    wait_converged(controller, switch, (SPECIFIC, CONTESTED))
    assert output_port(switch, CONTESTED) == R2_PORT
    bed.kill_r2()
    try:
        took = time_until("r2's routes to leave the switch", lambda: SPECIFIC not in route_flows(switch))
        moved = time_until("the contested prefix to move to r1", lambda: output_port(switch, CONTESTED) == ROUTER_PORT)
        print(f"\n[{controller.backend}] r2 killed: its route left in {took * 1000:.0f} ms")
        assert took < WITHIN_A_SECOND and moved < WITHIN_A_SECOND
    finally:
        bed.start_r2()
