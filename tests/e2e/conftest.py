"""End-to-end fixtures: a private OVS userspace switch, a gobgpd router on port 1, `sniffroute run` as controller.

    st-ctl  sniffroute run (TAP st-tap1 10.77.1.254/24 2001:db8:77:1::fe/64, router MAC)  -- OpenFlow over veth --+
    st-sw   ovs-vswitchd, bridge st-br0 (OpenFlow 1.0 + 1.3, fail secure)  <------------------------------------+
              port 1: st-r1-br  <-- veth -->  st-r1  gobgpd AS 64501  10.77.1.1/24 2001:db8:77:1::1/64

The TAP lives in st-ctl, away from the port veths in st-sw, so nothing reaches the router address except through
packet-in and the TAP (test bed pitfall 7). Everything is torn down even when a test fails. Skips, with the
reason, when not root or when a tool is missing.
"""

from __future__ import annotations

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

from tests.lab.make_bgp_capture import gobgp_adj_in
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


def gobgpd_config() -> str:
    lines = ["[global.config]", f"  as = {PEER_AS}", f'  router-id = "{PEER_V4}"']
    for address, family in ((ROUTER_V4, "ipv4-unicast"), (ROUTER_V6, "ipv6-unicast")):
        lines += [
            "[[neighbors]]",
            "  [neighbors.config]",
            f'    neighbor-address = "{address}"',
            f"    peer-as = {LOCAL_AS}",
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
        switch.vsctl(
            "add-port", BRIDGE, SWITCH_VETH, "--", "set", "interface", SWITCH_VETH, f"ofport_request={ROUTER_PORT}"
        )
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


def controller_config(store: Path, *, peers: bool = True, tun_device: str | None = None) -> str:
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

[[interfaces]]
name = "{TAP}"
port = {ROUTER_PORT}
addresses = ["{ROUTER_V4}/24", "{ROUTER_V6}/64"]

[[interfaces]]
name = "{VLAN_TAP}"
port = {ROUTER_PORT}
vlan = {VLAN}
addresses = ["{ROUTER_VLAN_V4}/24"]
"""
    if peers:
        for address in (PEER_V4, PEER_V6):
            text += f"""
[[peers]]
address = "{address}"
peer_as = {PEER_AS}
local_as = {LOCAL_AS}
router_id = "{ROUTER_V4}"
hold_time = {HOLD_TIME}
"""
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
    request: pytest.FixtureRequest, switch: Switch, router: Router, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Controller]:
    """`sniffroute run` with the built-in session holder peering with the router over IPv4 and IPv6; one per
    backend and module (tests run in file order, so a test that stops it goes last)."""
    backend = request.param
    if backend == "pox" and pox_dir() is None:
        pytest.skip("POX tests need POX_DIR pointing at a noxrepo/pox checkout (branch halosaur)")
    workdir = tmp_path_factory.mktemp(f"{TAG}-{backend}")
    store = workdir / "rib.sqlite"
    config = workdir / "sniffroute.toml"
    config.write_text(controller_config(store))
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


def adj_out(router: Router) -> list[dict[str, Any]]:
    """What the router sent us, by its own account."""
    routes = gobgp_adj_in(router.gobgp_json("neighbor", ROUTER_V4, "adj-out", "-a", "ipv4"), PEER_V4, PEER_AS)
    routes += gobgp_adj_in(router.gobgp_json("neighbor", ROUTER_V6, "adj-out", "-a", "ipv6"), PEER_V6, PEER_AS)
    return sorted((_normalised(r) for r in routes), key=lambda r: (r["peer"], r["prefix"]))


def rib_view(controller: Controller) -> list[dict[str, Any]]:
    """What `sniffroute rib --json` shows, in the same form as `adj_out`."""
    return sorted((_normalised(r) for r in controller.rib()), key=lambda r: (r["peer"], r["prefix"]))
