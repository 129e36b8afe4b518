"""End-to-end fixtures: a private OVS userspace switch, a gobgpd router on port 1, `sniffroute run` as controller,
and for the live tests (`controller`) an ExaBGP router on port 2 and a few hundred prefixes from each router.

    st-ctl  sniffroute run (TAP st-tap1 10.77.1.254/24 2001:db8:77:1::fe/64, router MAC)  -- OpenFlow over veth --+
                           (TAP st-tap2 10.77.2.254/24, `controller` only)                                       |
    st-sw   ovs-vswitchd, bridge st-br0 (OpenFlow 1.0 + 1.3, fail secure)  <------------------------------------+
              port 1: st-r1-br   <-- veth -->  st-r1   gobgpd AS 64501  10.77.1.1/24 2001:db8:77:1::1/64
              port 2: st-exa-br  <-- veth -->  st-exa  ExaBGP AS 64502  10.77.2.1/24  (`exa_router`)

The TAP lives in st-ctl, away from the port veths in st-sw, so nothing reaches the router address except through
packet-in and the TAP (test bed pitfall 7). Everything is torn down even when a test fails. Skips, with the
reason, when not root or when a tool is missing.
"""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.lab.make_bgp_capture import _exabgp_route, gobgp_adj_in
from tests.lab.netns import Daemon, Lab, LabError, in_ns, run, wait_for

HERE = Path(__file__).parent
# Every name the bed creates starts with TAG, so two beds (SNIFFROUTE_E2E_TAG=xx) can run side by side.
TAG = os.environ.get("SNIFFROUTE_E2E_TAG", "st")
SWITCH_NS, CONTROLLER_NS, ROUTER_NS = f"{TAG}-sw", f"{TAG}-ctl", f"{TAG}-r1"
ROUTER_VETH, SWITCH_VETH = f"{TAG}-r1-ns", f"{TAG}-r1-br"
BRIDGE = f"{TAG}-br0"
OPENFLOW_PORT = 6653
CONTROLLER_TARGET = f"tcp:10.254.0.2:{OPENFLOW_PORT}"  # set by ovs-up.sh, inside st-ctl
OPENFLOW_LISTEN = "10.254.0.2"
ROUTER_PORT = 1
ROUTER_MAC = "02:57:00:00:00:fe"
TAP = f"{TAG}-tap1"
VLAN = 10  # a second router interface: port 1, VLAN 10 (this kernel has no 8021q: tests/e2e/vlan_probe.py speaks it)
VLAN_TAP = f"{TAG}-tap1v10"
ROUTER_VLAN_V4, PEER_VLAN_V4 = "10.77.10.254", "10.77.10.1"
ROUTER_V4, ROUTER_V6 = "10.77.1.254", "2001:db8:77:1::fe"
PEER_V4, PEER_V6 = "10.77.1.1", "2001:db8:77:1::1"
PEER_MAC = "02:57:00:00:00:01"
PEER_AS, LOCAL_AS = 64501, 64512
GOBGP_API_PORT = "50051"
HOLD_TIME = 3  # seconds, the least RFC 4271 allows: "stays up past three hold times" fits in a test
TOOLS = ("ip", "ethtool", "ovs-vswitchd", "ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-ofctl", "gobgpd", "gobgp")

# What the router announces: prefix, gobgp attribute arguments.
ANNOUNCED = (
    ("198.18.1.0/24", ["origin", "igp", "aspath", "64498 4200000200", "med", "50", "community", "65001:100"]),
    ("198.18.2.0/23", ["origin", "egp", "aspath", "64499 {64601,64602}", "large-community", "65001:1:2"]),
    ("198.18.8.0/22", ["origin", "incomplete", "aspath", "64497"]),
    ("203.0.113.128/25", ["origin", "igp", "aspath", "64496 64497", "community", "65001:200,65001:201"]),
    ("2001:db8:1000::/36", ["origin", "igp", "aspath", "64498", "med", "10"]),
    ("2001:db8:2000::/48", ["origin", "igp", "aspath", "64499 4200000300", "community", "65001:300"]),
    ("2001:db8:3000::/64", ["origin", "egp", "aspath", "64496"]),
)

# Port 2 (live tests only): ExaBGP, IPv4, actively connecting to the holder.
EXA_NS, EXA_VETH, EXA_SWITCH_VETH = f"{TAG}-exa", f"{TAG}-exa-ns", f"{TAG}-exa-br"
EXA_PORT = 2
EXA_TAP = f"{TAG}-tap2"
EXA_ROUTER_V4, EXA_V4 = "10.77.2.254", "10.77.2.1"
EXA_MAC = "02:57:00:00:00:02"
EXA_AS = 64502
EXABGP = Path(sys.executable).with_name("exabgp")

GOBGP_BULK_V4, GOBGP_BULK_V6, EXA_BULK_V4 = 300, 100, 300
SHARED_PREFIXES = 10  # ExaBGP also announces the first few of gobgpd's IPv4 bulk: two paths for one prefix
ORIGINS = ("igp", "egp", "incomplete")


def _bulk_prefix(base: str, index: int, block: int, lengths: tuple[int, ...]) -> str:
    """The index-th block of 2**block addresses after `base`, as a prefix of a varying length inside it."""
    network = ipaddress.ip_network(base)
    start = network.network_address + (index << block)
    length = lengths[index % len(lengths)]
    return str(ipaddress.ip_network((start, length)))


def _gobgp_bulk() -> tuple[tuple[str, list[str]], ...]:
    """gobgpd's bulk table: prefix, gobgp attribute arguments (4-byte ASNs, AS_SETs, MEDs, communities)."""
    routes = []
    as_paths = ("64498", "64498 4200000{:03d}", "64499 {{64601,64602}}", "4200000200 64497 {{4200000300,64603}}")
    for count, base, block, lengths in (
        (GOBGP_BULK_V4, "100.64.0.0/10", 10, (22, 23, 24, 25, 28)),
        (GOBGP_BULK_V6, "2001:db8:8000::/33", 80, (48, 56, 64, 60)),
    ):
        for index in range(count):
            args = ["origin", ORIGINS[index % 3], "aspath", as_paths[index % 4].format(index)]
            if index % 2:
                args += ["med", str(index)]
            if index % 3 == 0:
                args += ["community", f"65001:{index},65001:{index + 1000}" if index % 2 else f"65001:{index}"]
            if index % 4 == 1:
                args += ["large-community", f"4200000200:{index}:7"]
            routes.append((_bulk_prefix(base, index, block, lengths), args))
    return tuple(routes)


def _exa_bulk() -> tuple[tuple[str, str], ...]:
    """ExaBGP's bulk table: prefix, the route in ExaBGP's own syntax (for its config and its API alike)."""
    routes = []
    as_paths = (  # a sequence, then a set: ExaBGP writes segments one after the other
        f"[ {EXA_AS} ]",
        f"[ {EXA_AS} 4200000500 ]",
        f"[ {EXA_AS} 64510 ] ( 64601 64602 )",
        f"[ {EXA_AS} 64511 64513 ]",
    )
    shared = [prefix for prefix, _ in GOBGP_BULK[:SHARED_PREFIXES]]
    prefixes = shared + [_bulk_prefix("100.96.0.0/11", i, 10, (24, 22, 27)) for i in range(EXA_BULK_V4 - len(shared))]
    for index, prefix in enumerate(prefixes):
        text = f"{prefix} next-hop {EXA_V4} origin {ORIGINS[index % 3]} as-path {as_paths[index % 4]}"
        if index % 2 == 0:
            text += f" med {index}"
        if index % 3 == 1:
            text += f" community [ 65002:{index} 65002:{index + 2000} ]"
        if index % 5 == 2:
            text += f" large-community [ {EXA_AS}:{index}:9 ]"
        routes.append((prefix, text))
    return tuple(routes)


GOBGP_BULK = _gobgp_bulk()
EXA_BULK = _exa_bulk()


def _missing_reason() -> str | None:
    if os.geteuid() != 0:
        return "end-to-end tests need root (network namespaces, OVS, TAPs)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing tools: {', '.join(missing)} (apt-get install openvswitch-switch gobgpd ethtool iproute2)"
    return None


@pytest.fixture(scope="session")
def e2e_ready() -> None:
    reason = _missing_reason()
    if reason:
        pytest.skip(reason)


@dataclass
class Switch:
    base: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "OVS_RUNDIR": str(self.base / "run")}

    def _run(self, argv: list[str], *, check: bool = True) -> str:
        result = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=20, check=False)
        if check and result.returncode != 0:
            raise LabError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def vsctl(self, *args: str) -> str:
        return self._run(["ovs-vsctl", f"--db=unix:{self.base / 'run' / 'db.sock'}", "--timeout=10", *args])

    def add_port(self, dev: str, port: int) -> None:
        """Put `dev` on the bridge as OpenFlow port `port`."""
        self.vsctl("add-port", BRIDGE, dev, "--", "set", "interface", dev, f"ofport_request={port}")

    def ofctl(self, *args: str) -> str:
        return self._run(["ovs-ofctl", "-O", "OpenFlow13", *args])

    def reconnect_controller(self) -> None:
        """Connect at once instead of after OVS's backoff (test bed pitfalls 4 and 8)."""
        self.vsctl("del-controller", BRIDGE)
        self.vsctl(
            "--",
            "set-controller",
            BRIDGE,
            CONTROLLER_TARGET,
            "--",
            "set",
            "controller",
            BRIDGE,
            "connection-mode=out-of-band",
            "max_backoff=1000",
        )

    def connected(self) -> bool:
        return "true" in self.vsctl("--columns=is_connected", "list", "controller")

    def flows(self) -> list[dict[str, Any]]:
        """The bridge's flows: priority, n_packets and the match/actions text."""
        flows = []
        for line in self.ofctl("dump-flows", BRIDGE).splitlines():
            if "priority=" not in line:
                continue
            fields = dict(part.split("=", 1) for part in line.replace(",", " ").split() if "=" in part)
            flows.append({"priority": int(fields["priority"]), "n_packets": int(fields["n_packets"]), "text": line})
        return flows

    def port_tx_packets(self, port: int) -> int:
        text = self.ofctl("dump-ports", BRIDGE, str(port))
        tx = text.split("tx pkts=", 1)[1]
        return int(tx.split(",", 1)[0])


@pytest.fixture(scope="module")
def switch(e2e_ready: None) -> Iterator[Switch]:
    base = Path(tempfile.mkdtemp(prefix=f"{TAG}-ovs-"))
    env = {**os.environ, "SWNS": SWITCH_NS, "CTLNS": CONTROLLER_NS, "BR": BRIDGE, "OFPORT": str(OPENFLOW_PORT)}
    for ns in (SWITCH_NS, CONTROLLER_NS):  # leftovers of an interrupted run
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)
    try:
        subprocess.run(
            ["bash", str(HERE / "ovs-up.sh"), str(base)], capture_output=True, text=True, env=env, check=True
        )
        yield Switch(base)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"ovs-up.sh failed: {exc.stdout}{exc.stderr}")
    finally:
        subprocess.run(["bash", str(HERE / "ovs-down.sh"), str(base)], capture_output=True, check=False)


def gobgpd_config(
    asn: int = PEER_AS,
    router_id: str = PEER_V4,
    neighbors: tuple[tuple[str, str], ...] = ((ROUTER_V4, "ipv4-unicast"), (ROUTER_V6, "ipv6-unicast")),
    peer_as: int = LOCAL_AS,
) -> str:
    """gobgpd's configuration: by default r1's, with the controller's router addresses as neighbours (address,
    family), reconnecting at once."""
    lines = ["[global.config]", f"  as = {asn}", f'  router-id = "{router_id}"']
    for address, family in neighbors:
        lines += [
            "[[neighbors]]",
            "  [neighbors.config]",
            f'    neighbor-address = "{address}"',
            f"    peer-as = {peer_as}",
            "  [neighbors.timers.config]",
            "    connect-retry = 1",
            "    idle-hold-time-after-reset = 1",
            "  [[neighbors.afi-safis]]",
            "    [neighbors.afi-safis.config]",
            f'      afi-safi-name = "{family}"',
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Router:
    lab: Lab

    def gobgp(self, *args: str) -> str:
        return run(in_ns(ROUTER_NS, ["gobgp", "-p", GOBGP_API_PORT, *args]), timeout=10).stdout

    def gobgp_json(self, *args: str) -> Any:
        text = self.gobgp(*args, "-j").strip()
        return json.loads(text) if text else {}

    def established(self, address: str) -> bool:
        state = self.gobgp_json("neighbor", address).get("state", {}).get("session_state")
        return state == 6 or str(state).lower() == "established"  # api.PeerState.SessionState ESTABLISHED

    def ping(self, address: str, *, size: int, count: int = 3) -> subprocess.CompletedProcess[str]:
        argv = ["ping", "-M", "do", "-s", str(size), "-c", str(count), "-i", "0.2", "-W", "2", address]
        return run(in_ns(ROUTER_NS, argv), check=False, timeout=20)


@pytest.fixture(scope="module")
def router(switch: Switch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    workdir = tmp_path_factory.mktemp(f"{TAG}-router")
    lab = Lab(workdir)
    try:
        lab.namespace(ROUTER_NS)
        lab.veth(ROUTER_NS, ROUTER_VETH, SWITCH_NS, SWITCH_VETH)
        run(in_ns(ROUTER_NS, ["ip", "link", "set", ROUTER_VETH, "address", PEER_MAC]))
        lab.address(ROUTER_NS, ROUTER_VETH, f"{PEER_V4}/24")
        lab.address(ROUTER_NS, ROUTER_VETH, f"{PEER_V6}/64")
        lab.offloads_off(ROUTER_NS, ROUTER_VETH)  # TCP through the userspace datapath (pitfall 1)
        lab.offloads_off(SWITCH_NS, SWITCH_VETH)
        lab.up(ROUTER_NS, ROUTER_VETH)
        lab.up(SWITCH_NS, SWITCH_VETH)
        switch.add_port(SWITCH_VETH, ROUTER_PORT)
        config = workdir / "gobgpd.toml"
        config.write_text(gobgpd_config())
        lab.start(
            "gobgpd",
            ROUTER_NS,
            ["gobgpd", "-f", str(config), "-p", f"--api-hosts=127.0.0.1:{GOBGP_API_PORT}", "--pprof-disable"],
        )
        router = Router(lab)
        deadline = time.monotonic() + 15
        wait_for("gobgpd API", lambda: _api_up(router), deadline=deadline)
        for prefix, attributes in ANNOUNCED:
            family = "ipv6" if ":" in prefix else "ipv4"
            next_hop = PEER_V6 if family == "ipv6" else PEER_V4
            router.gobgp("global", "rib", "-a", family, "add", prefix, "nexthop", next_hop, *attributes)
        yield router
    finally:
        lab.close()


def _api_up(router: Router) -> bool:
    lab = router.lab
    lab.check_running()
    return run(in_ns(ROUTER_NS, ["gobgp", "-p", GOBGP_API_PORT, "global"]), check=False).returncode == 0


BULK_PARALLEL = 8  # gobgp CLI calls at a time: one call per route, and each takes ~30 ms


@pytest.fixture(scope="module")
def gobgp_bulk(router: Router) -> tuple[tuple[str, list[str]], ...]:
    """The router's table grows by GOBGP_BULK (live tests only; it stays until the router goes)."""
    commands = []
    for prefix, attributes in GOBGP_BULK:
        family, next_hop = ("ipv6", PEER_V6) if ":" in prefix else ("ipv4", PEER_V4)
        gobgp = ["gobgp", "-p", GOBGP_API_PORT, "global", "rib", "-a", family, "add", prefix, "nexthop", next_hop]
        commands.append(in_ns(ROUTER_NS, [*gobgp, *attributes]))
    for start in range(0, len(commands), BULK_PARALLEL):
        batch = commands[start : start + BULK_PARALLEL]
        running = [
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for argv in batch
        ]
        for argv, process in zip(batch, running, strict=True):
            out, _ = process.communicate(timeout=30)
            if process.returncode != 0:
                raise LabError(f"{' '.join(argv)} exited {process.returncode}: {out.strip()}")
    held = set(router.gobgp_json("global", "rib", "-a", "ipv4")) | set(router.gobgp_json("global", "rib", "-a", "ipv6"))
    if not {prefix for prefix, _ in GOBGP_BULK} <= held:
        raise LabError("gobgpd did not take the whole bulk table")
    return GOBGP_BULK


# ExaBGP's API process: what ExaBGP writes (JSON, one message a line) goes to a log; lines written into a FIFO go
# to ExaBGP as commands. Opening the FIFO for writing fails at once (ENXIO) while this process is not reading it.
EXA_API_PROCESS = """import os, sys, threading
log_path, commands_path = sys.argv[1], sys.argv[2]

def relay():
    while True:
        with open(commands_path) as commands:
            for line in commands:
                sys.stdout.write(line)
                sys.stdout.flush()

threading.Thread(target=relay, daemon=True).start()
with open(log_path, "ab") as log:
    while chunk := os.read(0, 65536):
        log.write(chunk)
        log.flush()
"""


def exabgp_config(api_process: Path, api_log: Path, commands: Path) -> str:
    routes = "".join(f"\t\troute {text};\n" for _, text in EXA_BULK)
    return f"""process api {{
\trun {sys.executable} {api_process} {api_log} {commands};
\tencoder json;
}}

neighbor {EXA_ROUTER_V4} {{
\trouter-id {EXA_V4};
\tlocal-address {EXA_V4};
\tlocal-as {EXA_AS};
\tpeer-as {LOCAL_AS};
\thold-time {HOLD_TIME};
\tfamily {{
\t\tipv4 unicast;
\t}}
\tapi {{
\t\tprocesses [ api ];
\t\tneighbor-changes;
\t\tsend {{
\t\t\tparsed;
\t\t\tupdate;
\t\t}}
\t\treceive {{
\t\t\tparsed;
\t\t\tnotification;
\t\t}}
\t}}
\tstatic {{
{routes}\t}}
}}
"""


@dataclass
class ExaRouter:
    """ExaBGP on port 2; its API log is the record of what it sent and received, across restarts."""

    lab: Lab
    config: Path
    api_log: Path
    commands: Path
    daemon: Daemon | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        argv = [str(EXABGP), "server", str(self.config)]
        self.daemon = self.lab.start(f"exabgp-{self.starts}", EXA_NS, argv, env=EXABGP_ENV)

    def stop(self) -> None:
        """SIGTERM: ExaBGP closes its connections without a NOTIFICATION."""
        if self.daemon is not None:
            self.lab.stop(self.daemon)
            self.daemon = None

    def messages(self) -> list[dict[str, Any]]:
        if not self.api_log.exists():
            return []
        text = self.api_log.read_text(errors="replace")
        messages = []
        for line in text[: text.rfind("\n") + 1].splitlines():  # whole lines only: the log is still being written
            if line.startswith("{"):
                messages.append(json.loads(line))
        return messages

    def established(self) -> bool:
        if self.daemon is None or not self.daemon.alive():
            return False
        states = [m["neighbor"]["state"] for m in self.messages() if m.get("type") == "state"]
        return bool(states) and states[-1] == "up"

    def sent(self) -> list[dict[str, Any]]:
        """The routes ExaBGP holds announced to the holder now, by its own account, in `rib_view`'s form."""
        return [_normalised(route) for route in exabgp_sent(self.messages())]

    def notifications_received(self) -> list[dict[str, Any]]:
        return [
            m["neighbor"]["notification"]
            for m in self.messages()
            if m.get("type") == "notification" and m.get("neighbor", {}).get("direction") == "receive"
        ]

    def command(self, text: str) -> None:
        """One API command (`announce route ...`, `withdraw route ...`, `neighbor ADDR teardown N`)."""
        deadline = time.monotonic() + 5
        while True:
            try:
                fd = os.open(self.commands, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:  # the relay is between two readers, or not started yet
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        try:
            os.write(fd, f"{text}\n".encode())
        finally:
            os.close(fd)


def exabgp_sent(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replay ExaBGP's sent UPDATEs: the table it announced, emptied when a session went down or a new one began
    (a stopped ExaBGP may not have written its "down")."""
    table: dict[str, dict[str, Any]] = {}
    for message in messages:
        neighbor = message.get("neighbor", {})
        if message.get("type") == "state" and neighbor.get("state") in ("down", "connected"):
            table.clear()
        update = neighbor.get("message", {}).get("update")  # not an End-of-RIB ("eor")
        if message.get("type") != "update" or neighbor.get("direction") != "send" or update is None:
            continue
        for nlris in update.get("withdraw", {}).values():
            for nlri in nlris:
                table.pop(str(ipaddress.ip_network(nlri["nlri"])), None)
        attribute = update.get("attribute", {})
        for by_next_hop in update.get("announce", {}).values():
            for next_hop, nlris in by_next_hop.items():
                for nlri in nlris:
                    route = _exabgp_route(nlri["nlri"], neighbor["address"]["local"], EXA_AS, next_hop, attribute)
                    table[route["prefix"]] = route
    return sorted(table.values(), key=lambda r: r["prefix"])


EXABGP_ENV = {
    "exabgp_daemon_user": "root",
    "exabgp_daemon_drop": "false",
    "exabgp_api_cli": "false",
    "exabgp_log_destination": "stdout",
    "exabgp_tcp_bind": "",  # active only: the holder's connections are refused, ExaBGP's accepted
}


def attach_to_switch(
    lab: Lab, switch: Switch, ns: str, veth: str, switch_veth: str, port: int, cidr: str, mac: str
) -> None:
    """A new namespace `ns` with one IPv4 address and MAC on switch port `port`: IPv6 and offloads off (TCP
    through the userspace datapath, test bed pitfall 1)."""
    lab.namespace(ns)
    lab.veth(ns, veth, SWITCH_NS, switch_veth)
    run(in_ns(ns, ["ip", "link", "set", veth, "address", mac]))
    lab.ipv6_off(ns, veth)
    lab.address(ns, veth, cidr)
    lab.offloads_off(ns, veth)
    lab.offloads_off(SWITCH_NS, switch_veth)
    lab.up(ns, veth)
    lab.up(SWITCH_NS, switch_veth)
    switch.add_port(switch_veth, port)


@pytest.fixture(scope="module")
def exa_router(switch: Switch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExaRouter]:
    if not EXABGP.exists():
        pytest.skip(f"ExaBGP is not installed next to {sys.executable} (pip install exabgp)")
    workdir = tmp_path_factory.mktemp(f"{TAG}-exabgp")
    lab = Lab(workdir)
    try:
        attach_to_switch(lab, switch, EXA_NS, EXA_VETH, EXA_SWITCH_VETH, EXA_PORT, f"{EXA_V4}/24", EXA_MAC)
        api_process, api_log, commands = workdir / "api.py", workdir / "api.log", workdir / "commands"
        api_process.write_text(EXA_API_PROCESS)
        os.mkfifo(commands)
        config = workdir / "exabgp.conf"
        config.write_text(exabgp_config(api_process, api_log, commands))
        exa_router = ExaRouter(lab, config, api_log, commands)
        exa_router.start()
        yield exa_router
    finally:
        lab.close()


def interface_toml(name: str, port: int, addresses: tuple[str, ...], vlan: int | None = None) -> str:
    """One `[[interfaces]]` table of the controller's configuration."""
    tagged = "" if vlan is None else f"vlan = {vlan}\n"
    listed = ", ".join(f'"{address}"' for address in addresses)
    return f'\n[[interfaces]]\nname = "{name}"\nport = {port}\n{tagged}addresses = [{listed}]\n'


def peer_toml(address: str, peer_as: int) -> str:
    """One `[[peers]]` table: a session the holder keeps, with the bed's short hold time."""
    return f"""
[[peers]]
address = "{address}"
peer_as = {peer_as}
local_as = {LOCAL_AS}
router_id = "{ROUTER_V4}"
hold_time = {HOLD_TIME}
"""


def controller_config(store: Path, *, peers: bool = True, tun_device: str | None = None, exabgp: bool = False) -> str:
    text = f"""router_mac = "{ROUTER_MAC}"
store = "{store}"
save_interval = 0.2
log_level = "info"
"""
    if tun_device is not None:
        text += f'tun_device = "{tun_device}"\n'
    text += f"""
[openflow]
listen = "{OPENFLOW_LISTEN}"
port = {OPENFLOW_PORT}
"""
    text += interface_toml(TAP, ROUTER_PORT, (f"{ROUTER_V4}/24", f"{ROUTER_V6}/64"))
    text += interface_toml(VLAN_TAP, ROUTER_PORT, (f"{ROUTER_VLAN_V4}/24",), vlan=VLAN)
    if exabgp:
        text += interface_toml(EXA_TAP, EXA_PORT, (f"{EXA_ROUTER_V4}/24",))
    if peers:
        for address, asn in ((PEER_V4, PEER_AS), (PEER_V6, PEER_AS), (EXA_V4, EXA_AS))[: 3 if exabgp else 2]:
            text += peer_toml(address, asn)
    return text


@dataclass
class Controller:
    daemon: Daemon
    store: Path
    lab: Lab
    backend: str
    exit_status: int | None = None

    def rib(self) -> list[dict[str, Any]]:
        argv = [sys.executable, "-m", "sniffroute.cli", "rib", "--json", "--all", "--db", str(self.store)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        if result.returncode != 0:
            raise LabError(f"sniffroute rib exited {result.returncode}: {result.stderr.strip()}")
        return json.loads(result.stdout)

    def document(self, name: str) -> Any:
        from sniffroute.store import Store

        if not self.store.exists():
            return None
        with Store(self.store) as store:
            return store.document(name)

    def log(self) -> str:
        return self.daemon.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, and the exit status."""
        if self.exit_status is None:
            self.exit_status = self.lab.stop(self.daemon, grace=10)
        return self.exit_status


def pox_dir() -> Path | None:
    text = os.environ.get("POX_DIR")
    return Path(text) if text and (Path(text) / "pox.py").is_file() else None


def start_controller(
    lab: Lab, switch: Switch, backend: str, config: Path, store: Path, *, user: str | None = None
) -> Controller:
    """`sniffroute run` in the controller namespace (as `user`, without any capability, when given), connected."""
    argv = [sys.executable, "-m", "sniffroute.cli", "run", "--config", str(config), "--backend", backend]
    if user is not None:
        account = pwd.getpwnam(user)
        ids = [f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups", "--inh-caps=-all"]
        argv = ["setpriv", *ids, *argv]
    daemon = lab.start(f"sniffroute-{backend}", CONTROLLER_NS, argv)
    controller = Controller(daemon, store, lab, backend)
    deadline = time.monotonic() + 20
    wait_for("the OpenFlow listener", lambda: lab.check_running() and _listening(), deadline=deadline)
    switch.reconnect_controller()
    wait_for("the switch to connect", switch.connected, deadline=deadline)
    return controller


@pytest.fixture(scope="module", params=["osken", "pox"])
def controller(
    request: pytest.FixtureRequest,
    switch: Switch,
    router: Router,
    gobgp_bulk: tuple[tuple[str, list[str]], ...],
    exa_router: ExaRouter,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Controller]:
    """`sniffroute run` with the built-in session holder peering with the gobgpd router over IPv4 and IPv6 and
    with ExaBGP over IPv4, both announcing their bulk tables; one per backend and module (tests run in file
    order, so a test that stops it goes last)."""
    backend = request.param
    if backend == "pox" and pox_dir() is None:
        pytest.skip("POX tests need POX_DIR pointing at a noxrepo/pox checkout (branch halosaur)")
    workdir = tmp_path_factory.mktemp(f"{TAG}-{backend}")
    store = workdir / "rib.sqlite"
    config = workdir / "sniffroute.toml"
    config.write_text(controller_config(store, exabgp=True))
    lab = Lab(workdir)
    try:
        controller = start_controller(lab, switch, backend, config, store)
        yield controller
        controller.stop()
    finally:
        lab.close()


def _listening() -> bool:
    out = run(in_ns(CONTROLLER_NS, ["ss", "-Htln", f"sport = :{OPENFLOW_PORT}"]), check=False).stdout
    return bool(out.strip())


ROUTE_FIELDS = ("prefix", "peer", "next_hop", "as_path", "origin", "med", "communities", "large_communities")


def _normalised(route: dict[str, Any]) -> dict[str, Any]:
    out = {name: route[name] for name in ROUTE_FIELDS}
    out["communities"] = sorted(out["communities"])
    out["large_communities"] = sorted(out["large_communities"])
    return out


GOBGP_PEERS = (PEER_V4, PEER_V6)


def adj_out(router: Router) -> list[dict[str, Any]]:
    """What the router sent us, by its own account."""
    routes = gobgp_adj_in(router.gobgp_json("neighbor", ROUTER_V4, "adj-out", "-a", "ipv4"), PEER_V4, PEER_AS)
    routes += gobgp_adj_in(router.gobgp_json("neighbor", ROUTER_V6, "adj-out", "-a", "ipv6"), PEER_V6, PEER_AS)
    return sorted((_normalised(r) for r in routes), key=lambda r: (r["peer"], r["prefix"]))


def rib_view(controller: Controller, peers: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """What `sniffroute rib --json` shows (from `peers` only, when given), in the same form as `adj_out`."""
    routes = (_normalised(r) for r in controller.rib() if peers is None or r["peer"] in peers)
    return sorted(routes, key=lambda r: (r["peer"], r["prefix"]))
