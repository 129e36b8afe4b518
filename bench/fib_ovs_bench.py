"""Routes as flows against a real Open vSwitch: sniffed UPDATE -> flow confirmed, and 100,000 routes.

The controller side is the product's own code path minus the TAPs: a `LiveEngine` (not started: no TAPs, the
bench thread owns its pipeline), routing enabled as `sniffroute run` does it, os-ken embedded (`osken.start`),
a private OVS userspace switch (tests/e2e/ovs-up.sh) in its own namespace. BGP arrives as TCP segments of a
hand-built session (tests/bgp_session.py) fed to the engine's pipeline, then `LiveEngine._commit` (what the
pipeline thread calls when its queue runs dry) hands the Loc-RIB changes to the FIB thread, which sends the flow
mods and barriers; a route counts as installed when the barrier after its flow mod is answered, and a phase ends
when every flow mod it sent is covered by an answered barrier (the FIB sends a big change in steps).

Figures printed:
- UPDATE -> flow confirmed in OVS: one prefix per UPDATE, p50/p99 over --samples;
- 100,000 routes from an empty switch: first UPDATE fed -> last barrier answered;
- reconnect with 1 % changed: 1 % of the switch's route flows altered behind the controller's back (ovs-ofctl),
  then the OpenFlow connection dropped: reconnect -> read back -> the difference sent and confirmed (the switch's
  own reconnect delay, its connection backoff, is shown apart);
- for both, the CPU time the controller process and ovs-vswitchd spent, and the load average: on a busy machine
  the wall times vary far more than the CPU times.
Namespaces and the bridge are named after SNIFFROUTE_E2E_TAG (default "sfb"), so runs beside the e2e beds do not
collide.

Needs root, ovs-vswitchd/ovsdb-server, os-ken. Usage: sudo .venv/bin/python bench/fib_ovs_bench.py
[--routes 100000] [--samples 300] [--change 0.01]   (re-runs itself inside the controller namespace)
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TAG = os.environ.get("SNIFFROUTE_E2E_TAG", "sfb")  # prefix of the namespaces and bridge made here
SWITCH_NS, CONTROLLER_NS, BRIDGE = f"{TAG}-sw", f"{TAG}-ctl", f"{TAG}-br0"
OPENFLOW_PORT = 6653
ROUTER_MAC = "02:5f:00:00:00:fe"
PEER, ROUTER, PEER_MAC = "10.99.1.1", "10.99.1.254", "02:5f:00:00:01:01"
PORT = 1
PER_UPDATE = 500  # prefixes per UPDATE in the full-table load
INSIDE = "SNIFFROUTE_BENCH_INSIDE"


def ovs_env(base: Path) -> dict[str, str]:
    return {**os.environ, "OVS_RUNDIR": str(base / "run")}


def ofctl(base: Path, *args: str, input_text: str | None = None) -> str:
    argv = ["ovs-ofctl", "-O", "OpenFlow13", *args]
    result = subprocess.run(argv, env=ovs_env(base), capture_output=True, text=True, input=input_text, check=True)
    return result.stdout


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (/proc/PID/stat), to tell our cost from the switch's on a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def outside(args: argparse.Namespace) -> int:
    """Build the switch, run the measurement inside the controller namespace, tear everything down."""
    base = Path(tempfile.mkdtemp(prefix=f"{TAG}-ovs-"))
    env = {**os.environ, "SWNS": SWITCH_NS, "CTLNS": CONTROLLER_NS, "BR": BRIDGE, "OFPORT": str(OPENFLOW_PORT)}
    for ns in (SWITCH_NS, CONTROLLER_NS):
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)
    try:
        subprocess.run(["bash", str(ROOT / "tests/e2e/ovs-up.sh"), str(base)], env=env, check=True, capture_output=True)
        port = f"{TAG}-p1"
        in_sw = ["ip", "netns", "exec", SWITCH_NS]
        subprocess.run([*in_sw, "ip", "link", "add", port, "type", "veth", "peer", "name", f"{port}b"], check=True)
        subprocess.run([*in_sw, "ip", "link", "set", port, "up"], check=True)
        vsctl = ["ovs-vsctl", f"--db=unix:{base / 'run' / 'db.sock'}", "--timeout=10"]
        subprocess.run(
            [*vsctl, "add-port", BRIDGE, port, "--", "set", "interface", port, "ofport_request=1"], check=True
        )
        argv = ["ip", "netns", "exec", CONTROLLER_NS, sys.executable, __file__, *sys.argv[1:]]
        return subprocess.run(argv, env={**os.environ, INSIDE: str(base)}, check=False).returncode
    finally:
        subprocess.run(["bash", str(ROOT / "tests/e2e/ovs-down.sh"), str(base)], capture_output=True, check=False)


def inside(args: argparse.Namespace, base: Path) -> None:
    from parsers.bgp.constants import IPV4_UNICAST  # noqa: F401  (the family the session carries)
    from sniffroute.backends import LiveEngine, osken
    from sniffroute.config import parse_config
    from tests.bgp_session import Connection, open_message, update

    workdir = Path(tempfile.mkdtemp(prefix=f"{TAG}-ctl-"))
    config = parse_config(
        {
            "router_mac": ROUTER_MAC,
            "store": str(workdir / "rib.sqlite"),
            "openflow": {"listen": "10.254.0.2", "port": OPENFLOW_PORT},
            "interfaces": [{"name": f"{TAG}-tap1", "port": PORT, "addresses": [f"{ROUTER}/24"]}],
        }
    )
    engine = LiveEngine(config, workdir / "rib.sqlite")
    from sniffroute.fib import OPENFLOW_13, Barrier

    routing = engine.enable_routing(OPENFLOW_13)
    routing.restore({"routes": [], "neighbours": [{"address": PEER, "interface": 0, "mac": PEER_MAC}]})

    # A phase is done when every flow mod it sent is covered by an answered barrier. The FIB sends a big change
    # in steps (ROUTES_PER_STEP), so "the last barrier sent so far is answered" is not enough: the flow mods
    # sent and confirmed are counted, and a phase waits for the count it expects.
    state: dict[str, Any] = {"sent": 0, "confirmed_ops": 0, "mark": 0, "read_back_ops": None}
    sent_by_barrier: dict[int, int] = {}  # barrier seq -> flow mods sent before it, in all
    progress = threading.Condition()
    confirmed, read_back, attached, audit = routing.confirmed, routing.read_back, routing.attached, routing.audit

    def track_ops(ops: Any) -> None:
        with progress:
            for op in ops:
                if isinstance(op, Barrier):
                    sent_by_barrier[op.seq] = state["sent"]
                else:
                    state["sent"] += 1

    def track_confirmed(seq: int) -> None:
        confirmed(seq)
        with progress:
            state["confirmed_ops"] = max(state["confirmed_ops"], sent_by_barrier.pop(seq, 0))
            progress.notify_all()

    def track_attached(switch: Any) -> None:
        state["attached_at"] = time.perf_counter()  # the switch is back and configured; the read back starts
        attached(switch)

    def track_read_back(flows: Any, groups: Any) -> None:
        state["read_at"] = time.perf_counter()
        before = routing.ops_sent
        read_back(flows, groups)
        state["read_back_ops"] = routing.ops_sent - before
        state["read_flows"] = len(flows)
        with progress:
            progress.notify_all()

    routing.on_ops = track_ops
    routing.confirmed = track_confirmed  # type: ignore[method-assign]

    def track_audit(flows: Any, groups: Any) -> None:
        audit(flows, groups)
        with progress:
            state["audited_at"] = time.perf_counter()
            progress.notify_all()

    routing.read_back = track_read_back  # type: ignore[method-assign]
    routing.audit = track_audit  # type: ignore[method-assign]
    routing.attached = track_attached  # type: ignore[method-assign]
    osken.start(engine)
    deadline = time.monotonic() + 20
    while not routing.document()["switch"]["reconciled"]:
        if time.monotonic() > deadline:
            raise SystemExit("the switch did not connect")
        time.sleep(0.05)

    pipeline = engine.pipeline
    session = Connection(PEER, ROUTER).handshake()
    session.send(True, open_message(64500, PEER)).send(False, open_message(64512, ROUTER))
    for segment in session.segments:
        pipeline.feed_segment(segment, time.time())
    engine._commit()
    fed = len(session.segments)

    def feed(message: bytes) -> None:
        nonlocal fed
        session.send(True, message)
        for segment in session.segments[fed:]:
            pipeline.feed_segment(segment, time.time())
        fed = len(session.segments)
        engine._commit()

    def wait(what: str, flow_mods: int, limit: float = 120.0) -> None:
        """Until `flow_mods` more flow mods than `mark()` saw are confirmed by answered barriers."""
        with progress:
            target = state["mark"] + flow_mods
            if not progress.wait_for(lambda: state["confirmed_ops"] >= target, limit):
                raise SystemExit(f"timed out: {what} ({state['confirmed_ops'] - state['mark']} of {flow_mods})")

    def mark() -> None:
        with progress:
            state["mark"] = state["sent"]

    # 1. UPDATE -> flow confirmed, one prefix at a time.
    latencies = []
    for n in range(args.samples):
        prefix = f"100.{64 + n // 256}.{n % 256}.0/24"
        mark()
        started = time.perf_counter()
        feed(update(announce=(prefix,), as_path=(64500,), next_hop=PEER))
        wait("a single route", 1)
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(f"UPDATE -> flow confirmed in OVS: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({args.samples} updates)")

    # 2. A full table from (nearly) empty.
    network = ipaddress.ip_network("16.0.0.0/4")
    prefixes = [str(p) for p, _ in zip(network.subnets(new_prefix=24), range(args.routes), strict=False)]
    switch_pid = int((base / "run" / "ovs-vswitchd.pid").read_text())
    for start in range(0, len(prefixes), PER_UPDATE):  # the capture is made before the clock starts
        chunk = tuple(prefixes[start : start + PER_UPDATE])
        session.send(True, update(announce=chunk, as_path=(64500, 64501), next_hop=PEER))
    mark()
    cpu = time.process_time(), cpu_seconds(switch_pid)
    started = time.perf_counter()
    for segment in session.segments[fed:]:
        pipeline.feed_segment(segment, time.time())
    fed = len(session.segments)
    fed_at = time.perf_counter()
    engine._commit()
    committed_at = time.perf_counter()
    wait("the full table", len(prefixes), 300)
    total = time.perf_counter() - started
    ours, theirs = time.process_time() - cpu[0], cpu_seconds(switch_pid) - cpu[1]
    print(
        f"{len(prefixes):,} routes into OVS from empty: {total:.2f} s (sniff pipeline {fed_at - started:.2f} s, "
        f"RIB commit + Loc-RIB {committed_at - fed_at:.2f} s, "
        f"FIB + OpenFlow + OVS {total - (committed_at - started):.2f} s)"
    )
    print(f"  CPU: controller {ours:.2f} s, ovs-vswitchd {theirs:.2f} s (load {os.getloadavg()[0]:.2f})")
    flows_in_switch = ofctl(base, "dump-aggregate", BRIDGE, "cookie=0x5e1f0002/-1")
    print(f"  OVS says: {flows_in_switch.strip().splitlines()[-1].strip()}")

    # 3. Reconnect with 1 % changed behind our back. First the audit that follows the full table (1 s after it
    # settles): the next comes AUDIT_SECONDS later, so it cannot put the changes right before the reconnect does.
    installed_at = time.perf_counter()
    with progress:
        if not progress.wait_for(lambda: state.get("audited_at", 0.0) > installed_at, 60):
            raise SystemExit("timed out: the audit after the full table")
    changed = int(len(prefixes) * args.change)
    altered = prefixes[:changed]
    lines = [
        f"cookie=0x5e1f0002,priority={0x1000 + 24},ip,vlan_tci=0x0000/0x1fff,dl_dst={ROUTER_MAC},nw_dst={p},"
        f"actions=dec_ttl,set_field:{ROUTER_MAC}->eth_src,set_field:02:5f:00:00:09:09->eth_dst,output:{PORT}"
        for p in altered[: changed // 2]
    ]
    ofctl(base, "add-flows", BRIDGE, "-", input_text="\n".join(lines) + "\n")  # wrong next-hop MAC
    for p in altered[changed // 2 :]:  # missing
        match = f"priority={0x1000 + 24},ip,vlan_tci=0x0000/0x1fff,dl_dst={ROUTER_MAC},nw_dst={p}"
        ofctl(base, "--strict", "del-flows", BRIDGE, match)
    state["read_back_ops"] = None
    mark()
    cpu = time.process_time(), cpu_seconds(switch_pid)
    started = time.perf_counter()
    subprocess.run(["ovs-appctl", "-t", "ovs-vswitchd", "bridge/reconnect", BRIDGE], env=ovs_env(base), check=True)
    with progress:
        if not progress.wait_for(lambda: state["read_back_ops"] is not None, 120):
            raise SystemExit("timed out: the read back")
    wait("the reconcile", state["read_back_ops"], 120)
    total = time.perf_counter() - started
    ours, theirs = time.process_time() - cpu[0], cpu_seconds(switch_pid) - cpu[1]
    read = state.get("read_at", started) - started
    connected = state.get("attached_at", started) - started
    print(
        f"reconnect with {changed:,} of {len(prefixes):,} flows changed: converged in {total:.2f} s "
        f"(connect + read back of {state.get('read_flows')} flows {read:.2f} s, of which the switch's reconnect "
        f"{connected:.2f} s; {state['read_back_ops']} flow mods)"
    )
    print(f"  CPU: controller {ours:.2f} s, ovs-vswitchd {theirs:.2f} s (load {os.getloadavg()[0]:.2f})")
    print(
        f"  OVS says: {ofctl(base, 'dump-aggregate', BRIDGE, 'cookie=0x5e1f0002/-1').strip().splitlines()[-1].strip()}"
    )
    sys.stdout.flush()
    os._exit(0)  # os-ken's threads do not stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--change", type=float, default=0.01)
    args = parser.parse_args()
    base = os.environ.get(INSIDE)
    if base:
        try:
            inside(args, Path(base))
        except BaseException:  # os-ken's threads would keep the process (and the switch namespace) alive
            traceback.print_exc()
            sys.stdout.flush()
            os._exit(1)
        return 0
    if os.geteuid() != 0:
        print("needs root (network namespaces, Open vSwitch)", file=sys.stderr)
        return 2
    return outside(args)


if __name__ == "__main__":
    sys.exit(main())
