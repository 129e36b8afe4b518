"""Record OSPFv2 and OSPFv3 between BIRD 2 routers, with BIRD's own routing tables as the expected result.

    .venv/bin/python -m tests.lab.make_ospf_capture --out tests/fixtures/lab

Topology (every address lives only inside the namespaces made here; `so-sw` holds a plain bridge):

                      area 0.0.0.0                                area 0.0.0.1
    r0 (observer, prio 0) --+
    r1 (DR, prio 200) ------+-- LAN 10.1.0.0/24 ---- so-br         r4 ==ptp== r5 (ASBR, E1)
    r2 (BDR, ASBR E1/E2) ---+   (broadcast)                        (ABR)
    r3 (NSSA ABR) ----------+
    r1 ==ptp== r4,  r2 ==ptp== r4                                   area 0.0.0.2 (NSSA)
                                                                   r3 ==ptp== r6 (ASBR, N1/N2)

Both protocols run side by side in each BIRD (`ospf4`: OSPFv2, `ospf6`: OSPFv3) on the same links, so one
capture holds both. Every router but r0 has a stub network on an ifb device (no dummy module here); r5 and r6
hold a second, larger one. r2 exports statics as E2, E1 and E2 with a forwarding address (its gateway is r3's
LAN address); r5 exports an E1 from area 1 (so area 0 needs r4's ASBR-summary); r6 exports N1/N2 into the NSSA
and r3 translates them. r0 sits on the LAN with priority 0 and cost 1 only: it is what a sniffing switch on that
segment sees, so its table is the oracle for the LAN viewpoint.

Sequence: capture starts (tcpdump on the bridge and on one end of every point-to-point link, then merged) ->
daemons start -> convergence -> dump every table ("initial") -> r1's cost toward r4 10 -> 30 (birdc configure)
-> convergence -> dump ("cost_change") -> r2's link to r4 down -> convergence -> dump ("link_down") -> capture
stopped. The expected JSON records the capture time of each change so a test can replay up to it.

Only BIRD's own output is used for the expected tables (`birdc show route protocol ospf4 all`); nothing here
decodes OSPF.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.lab.netns import Daemon, Lab, LabError, LabTimeout, in_ns, require_tools, run, wait_for

TOOLS = ("ip", "ethtool", "sysctl", "tcpdump", "mergecap", "bird", "birdc")
RUN_BUDGET_S = 150.0  # every wait shares this deadline
QUIET_S = 7.0  # tables unchanged this long = converged (BIRD rate-limits LSA origination to one per 5 s)

CAPTURE = "ospf_lab.pcap"
EXPECTED = "ospf_lab_expected.json"
SWITCH_NS, BRIDGE = "so-sw", "so-br"
LAN_DEV, STUB_DEV = "so-lan", "so-stub"
PROTOCOLS = {4: "ospf4", 6: "ospf6"}  # BIRD protocol names per IP version
HELLO, DEAD, WAIT = 2, 8, 4  # seconds; short so that the run is short (broadcast waits WAIT before electing)
LAN_V4, LAN_V6 = "10.1.0.0/24", "2001:db8:1::/64"


@dataclass(frozen=True, slots=True)
class Link:
    """A point-to-point link: (router, address) at each end, both /30 (v4) and /64 (v6), in one area."""

    a: str
    b: str
    area: int
    v4: str  # the /30, a = .1, b = .2
    v6: str  # the /64, a = ::1, b = ::2
    cost: int = 10

    def dev(self, me: str) -> str:
        other = self.b if me == self.a else self.a
        return f"so-{me}{other}"

    def address(self, me: str, version: int) -> str:
        net = ipaddress.ip_network(self.v4 if version == 4 else self.v6)
        host = 1 if me == self.a else 2
        return f"{net.network_address + host}/{net.prefixlen}"


@dataclass(frozen=True, slots=True)
class Static:
    """A static route exported into OSPF: E1 if `type1`, else E2; `via` makes BIRD set a forwarding address."""

    prefix: str
    metric: int
    type1: bool
    via: str | None = None


@dataclass(frozen=True, slots=True)
class Router:
    name: str
    router_id: str
    lan: int | None = None  # host number on the LAN, None when not on it
    priority: int = 1
    lan_cost: int = 10
    stubs: tuple[str, ...] = ()  # prefixes on the ifb stub device (v4 and v6 mixed)
    statics: tuple[Static, ...] = ()

    @property
    def ns(self) -> str:
        return f"so-{self.name}"


R0 = Router("r0", "10.0.0.100", lan=100, priority=0, lan_cost=1)
R1 = Router("r1", "10.0.0.1", lan=1, priority=200, stubs=("10.255.0.1/32", "2001:db8:ff::1/128"))
R2 = Router(
    "r2",
    "10.0.0.2",
    lan=2,
    priority=100,
    stubs=("10.255.0.2/32", "2001:db8:ff::2/128"),
    statics=(
        Static("172.16.1.0/24", 100, type1=False),
        Static("172.16.2.0/24", 20, type1=True),
        Static("172.16.3.0/24", 30, type1=False, via="10.1.0.3"),
        Static("2001:db8:1721::/64", 100, type1=False),
        Static("2001:db8:1722::/64", 20, type1=True),
        Static("2001:db8:1723::/64", 30, type1=False, via="2001:db8:1::3"),
    ),
)
R3 = Router("r3", "10.0.0.3", lan=3, priority=50, stubs=("10.255.0.3/32", "2001:db8:ff::3/128"))
R4 = Router("r4", "10.0.0.4", stubs=("10.255.0.4/32", "2001:db8:ff::4/128"))
R5 = Router(
    "r5",
    "10.0.0.5",
    stubs=("10.255.0.5/32", "10.20.5.0/24", "2001:db8:ff::5/128", "2001:db8:20:5::/64"),
    statics=(Static("172.18.0.0/24", 5, type1=True), Static("2001:db8:1800::/64", 5, type1=True)),
)
R6 = Router(
    "r6",
    "10.0.0.6",
    stubs=("10.255.0.6/32", "10.30.6.0/24", "2001:db8:ff::6/128", "2001:db8:30:6::/64"),
    statics=(
        Static("172.19.0.0/24", 50, type1=False),
        Static("172.19.1.0/24", 7, type1=True),
        Static("2001:db8:1900::/64", 50, type1=False),
        Static("2001:db8:1901::/64", 7, type1=True),
    ),
)
ROUTERS = (R0, R1, R2, R3, R4, R5, R6)
NSSA_AREA = 2
LINKS = (
    Link("r1", "r4", 0, "10.1.14.0/30", "2001:db8:14::/64"),
    Link("r2", "r4", 0, "10.1.24.0/30", "2001:db8:24::/64"),
    Link("r4", "r5", 1, "10.2.45.0/30", "2001:db8:45::/64"),
    Link("r3", "r6", NSSA_AREA, "10.3.36.0/30", "2001:db8:36::/64"),
)
STUB_AREA = {"r5": 1, "r6": NSSA_AREA}  # area of each router's stub device; area 0 otherwise
COST_CHANGE = ("r1", LINKS[0], 30)  # r1's side of r1-r4: 10 -> 30
LINK_DOWN = ("r2", LINKS[1])  # r2's end of r2-r4 set down
STAGES = ("initial", "cost_change", "link_down")


def _mac(router: Router, index: int) -> str:
    """Fixed MACs (so fixed IPv6 link-local addresses) whatever machine records the capture."""
    return f"02:00:00:00:{int(router.name[1:]):02x}:{index:02x}"


@dataclass(frozen=True, slots=True)
class Interface:
    """One OSPF interface of a router: device, area, BIRD interface type, cost, {IP version: address/len}."""

    dev: str
    area: int
    kind: str
    cost: int
    addresses: dict[int, str]


def _interfaces(router: Router) -> list[Interface]:
    out: list[Interface] = []
    if router.lan is not None:
        lan = {}
        for version, text in ((4, LAN_V4), (6, LAN_V6)):
            net = ipaddress.ip_network(text)
            lan[version] = f"{net.network_address + router.lan}/{net.prefixlen}"
        out.append(Interface(LAN_DEV, 0, "broadcast", router.lan_cost, lan))
    for link in LINKS:
        if router.name in (link.a, link.b):
            addresses = {4: link.address(router.name, 4), 6: link.address(router.name, 6)}
            out.append(Interface(link.dev(router.name), link.area, "ptp", link.cost, addresses))
    return out


# -- BIRD configuration --------------------------------------------------------------------------------------


def bird_config(router: Router, costs: dict[tuple[str, str], int] | None = None) -> str:
    """BIRD 2 config for one router: OSPFv2 and OSPFv3 with the same areas, statics exported as externals."""
    costs = costs or {}
    lines = [
        "log stderr all;",
        f"router id {router.router_id};",
        "protocol device { scan time 1; }",
    ]
    for version in (4, 6):
        statics = [s for s in router.statics if ipaddress.ip_network(s.prefix).version == version]
        if statics:
            lines.append(f"protocol static static{version} {{")
            lines.append(f"  ipv{version};")
            for s in statics:
                target = f"via {s.via}" if s.via else "blackhole"
                attr = "ospf_metric1" if s.type1 else "ospf_metric2"
                lines.append(f"  route {s.prefix} {target} {{ {attr} = {s.metric}; }};")
            lines.append("}")
        lines.append(f"protocol ospf v{2 if version == 4 else 3} {PROTOCOLS[version]} {{")
        lines.append(f"  ipv{version} {{ import all; export where source = RTS_STATIC; }};")
        lines.append("  ecmp yes;")
        areas: dict[int, list[str]] = {}
        for iface in _interfaces(router):
            cost = costs.get((router.name, iface.dev), iface.cost)
            opts = f"type {iface.kind}; cost {cost}; hello {HELLO}; dead {DEAD};"
            if iface.kind == "broadcast":
                opts += f" priority {router.priority}; wait {WAIT};"
            areas.setdefault(iface.area, []).append(f'    interface "{iface.dev}" {{ {opts} }};')
        if router.stubs:
            areas.setdefault(STUB_AREA.get(router.name, 0), []).append(f'    interface "{STUB_DEV}" {{ stub yes; }};')
        for area in sorted(areas):
            lines.append(f"  area {area} {{")
            if area == NSSA_AREA:
                lines.append("    nssa; summary yes;")
            lines += areas[area]
            lines.append("  };")
        lines.append("}")
    return "\n".join(lines) + "\n"


# -- BIRD's tables -------------------------------------------------------------------------------------------

# `10.1.0.0/24          unicast [ospf4 19:30:01.123] * I (150/10) [10.0.0.1]`
ROUTE_LINE = re.compile(
    r"^(?P<prefix>\S+)?\s+unicast \[(?P<proto>\S+) [^\]]*\] (?:\* )?(?P<type>I|IA|E1|E2|N1|N2) "
    r"\((?P<pref>\d+)/(?P<metric>\d+)(?:/(?P<metric2>\d+))?\)(?: \[(?P<rid>[^\]]+)\])?"
)
VIA_LINE = re.compile(r"^\s+via (?P<gw>\S+) on (?P<dev>\S+)")
DEV_LINE = re.compile(r"^\s+dev (?P<dev>\S+)")
ROUTE_TYPES = {"I": "intra", "IA": "inter", "E1": "E1", "E2": "E2", "N1": "N1", "N2": "N2"}


def parse_bird_routes(text: str) -> list[dict[str, Any]]:
    """Routes of `birdc show route protocol P all`; a line without a prefix continues the previous one's net."""
    routes: list[dict[str, Any]] = []
    prefix = None
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        match = ROUTE_LINE.match(line)
        if match:
            prefix = match["prefix"] or prefix
            if prefix is None:
                raise LabError(f"route line without a prefix: {line!r}")
            current = {
                "prefix": str(ipaddress.ip_network(prefix, strict=False)),
                "route_type": ROUTE_TYPES[match["type"]],
                "metric": int(match["metric"]),
                "metric2": int(match["metric2"]) if match["metric2"] else None,
                "router_id": match["rid"],
                "next_hops": [],
            }
            routes.append(current)
            continue
        if current is None:
            continue
        if via := VIA_LINE.match(line):
            current["next_hops"].append({"address": str(ipaddress.ip_address(via["gw"])), "interface": via["dev"]})
        elif dev := DEV_LINE.match(line):
            current["next_hops"].append({"address": None, "interface": dev["dev"]})
    for route in routes:
        route["next_hops"].sort(key=lambda hop: (hop["interface"], hop["address"] or ""))
    return sorted(routes, key=_route_key)


def _route_key(route: dict[str, Any]) -> tuple[int, int, int]:
    net = ipaddress.ip_network(route["prefix"])
    return net.version, int(net.network_address), net.prefixlen


def birdc(router: Router, workdir: Path, *args: str) -> str:
    return run(in_ns(router.ns, ["birdc", "-s", str(_socket(router, workdir)), *args]), timeout=10).stdout


def _socket(router: Router, workdir: Path) -> Path:
    return workdir / f"bird-{router.name}.ctl"


def tables(workdir: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{router: {"ospf4": routes, "ospf6": routes}} straight from every BIRD."""
    return {
        router.name: {
            proto: parse_bird_routes(birdc(router, workdir, "show", "route", "protocol", proto, "all"))
            for proto in PROTOCOLS.values()
        }
        for router in ROUTERS
    }


def neighbours_settled(workdir: Path) -> bool:
    """Every neighbour of every router Full, or 2-Way between two routers that are neither DR nor BDR."""
    for router in ROUTERS:
        for proto in PROTOCOLS.values():
            out = birdc(router, workdir, "show", "ospf", "neighbors", proto)
            states = re.findall(r"^\S+\s+\d+\s+(\S+)", out, flags=re.MULTILINE)
            if not states:
                return False
            if any(not (s.startswith("Full") or s.startswith("2-Way")) for s in states):
                return False
    return True


def settle(what: str, workdir: Path, lab: Lab, deadline: float) -> dict[str, Any]:
    """Wait until every table stays unchanged for QUIET_S seconds with every adjacency settled."""
    last: Any = None
    since = time.monotonic()

    def stable() -> Any:
        nonlocal last, since
        lab.check_running()
        value = tables(workdir)
        if value != last:
            last, since = value, time.monotonic()
            return None
        if time.monotonic() - since < QUIET_S or not neighbours_settled(workdir):
            return None
        return value

    try:
        return wait_for(what, stable, deadline=deadline, interval=0.5)
    except LabTimeout:
        counts = {r: {p: len(t) for p, t in v.items()} for r, v in (last or {}).items()}
        raise LabTimeout(f"timed out waiting for {what}; routes held: {counts}") from None


# -- the run -------------------------------------------------------------------------------------------------


def build_topology(lab: Lab) -> None:
    lab.namespace(SWITCH_NS)
    for router in ROUTERS:
        lab.namespace(router.ns)
        lab.sysctl(router.ns, "net.ipv6.conf.all.accept_dad", "0")
        lab.sysctl(router.ns, "net.ipv6.conf.default.accept_dad", "0")
        lab.sysctl(router.ns, "net.ipv6.conf.default.router_solicitations", "0")
    lan_ports = []
    for router in ROUTERS:
        if router.lan is None:
            continue
        port = f"so-lan{router.name[1:]}"
        lab.veth(router.ns, LAN_DEV, SWITCH_NS, port)
        lab.offloads_off(SWITCH_NS, port)
        lab.ipv6_off(SWITCH_NS, port)
        lan_ports.append(port)
        _router_end(lab, router, LAN_DEV, 0)
    lab.bridge(SWITCH_NS, BRIDGE, lan_ports)
    for index, link in enumerate(LINKS, start=1):
        by_name = {r.name: r for r in ROUTERS}
        ra, rb = by_name[link.a], by_name[link.b]
        lab.veth(ra.ns, link.dev(ra.name), rb.ns, link.dev(rb.name))
        _router_end(lab, ra, link.dev(ra.name), index)
        _router_end(lab, rb, link.dev(rb.name), index)
    for router in ROUTERS:
        if router.stubs:
            run(in_ns(router.ns, ["ip", "link", "add", STUB_DEV, "type", "ifb"]))
            for prefix in router.stubs:
                lab.address(router.ns, STUB_DEV, prefix)
            lab.up(router.ns, STUB_DEV)


def _router_end(lab: Lab, router: Router, dev: str, index: int) -> None:
    run(in_ns(router.ns, ["ip", "link", "set", dev, "address", _mac(router, index)]))
    lab.offloads_off(router.ns, dev)
    for iface in _interfaces(router):
        if iface.dev == dev:
            for address in iface.addresses.values():
                lab.address(router.ns, dev, address)
    lab.up(router.ns, dev)


@dataclass
class Capture:
    name: str
    ns: str
    dev: str
    daemon: Daemon
    path: Path


def start_captures(lab: Lab, workdir: Path, deadline: float) -> list[Capture]:
    """tcpdump on the bridge (it sees every LAN frame in promiscuous mode) and on one end of each ptp link."""
    points = [("lan", SWITCH_NS, BRIDGE)]
    by_name = {r.name: r for r in ROUTERS}
    points += [(f"{link.a}{link.b}", by_name[link.a].ns, link.dev(link.a)) for link in LINKS]
    captures = []
    for name, ns, dev in points:
        path = workdir / f"cap-{name}.pcap"
        argv = ["tcpdump", "-n", "-i", dev, "-s", "0", "-B", "16384", "-U", "-Z", "root", "-w", str(path)]
        argv += ["ip proto 89 or ip6 proto 89"]  # OSPF only (IP protocol 89)
        daemon = lab.start(f"tcpdump-{name}", ns, argv, stop_signal=signal.SIGINT)
        captures.append(Capture(name, ns, dev, daemon, path))
    for cap in captures:
        wait_for(f"tcpdump on {cap.dev}", lambda c=cap: "listening on" in c.daemon.log.read_text(), deadline=deadline)
    return captures


def tcpdump_drops(log: Path) -> int:
    match = re.search(r"(\d+) packets? dropped by kernel", log.read_text(errors="replace"))
    if match is None:
        raise LabError(f"tcpdump printed no statistics; see {log}")
    return int(match.group(1))


def progress(started: float, text: str) -> None:
    print(f"{time.monotonic() - started:5.1f}s {text}", file=sys.stderr, flush=True)


def record(out_dir: Path, workdir: Path) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + RUN_BUDGET_S
    configs = {f"bird-{r.name}.conf": bird_config(r) for r in ROUTERS}
    changer, changed_link, new_cost = COST_CHANGE
    changed = {(changer, changed_link.dev(changer)): new_cost}
    by_name = {r.name: r for r in ROUTERS}
    configs[f"bird-{changer}-cost.conf"] = bird_config(by_name[changer], changed)
    for name, text in configs.items():
        (workdir / name).write_text(text)
    snapshots: dict[str, Any] = {}
    changes: list[dict[str, Any]] = []

    with Lab(workdir) as lab:
        build_topology(lab)
        captures = start_captures(lab, workdir, deadline)
        capture_started = time.time()
        for router in ROUTERS:
            conf = workdir / f"bird-{router.name}.conf"
            lab.start(
                f"bird-{router.name}", router.ns, ["bird", "-f", "-c", str(conf), "-s", str(_socket(router, workdir))]
            )
        for router in ROUTERS:
            wait_for(
                f"bird in {router.ns}",
                lambda r=router: lab.check_running() and _socket(r, workdir).exists(),
                deadline=deadline,
            )
        progress(started, "daemons up; waiting for convergence")
        snapshots["initial"] = settle("initial convergence", workdir, lab, deadline)
        progress(started, "converged; changing a cost")

        changes.append(
            {
                "stage": "cost_change",
                "time": time.time(),
                "router": changer,
                "interface": changed_link.dev(changer),
                "cost": new_cost,
            }
        )
        birdc(by_name[changer], workdir, "configure", f'"{workdir / f"bird-{changer}-cost.conf"}"')
        snapshots["cost_change"] = settle("convergence after the cost change", workdir, lab, deadline)
        progress(started, "converged; link down")

        downer, down_link = LINK_DOWN
        changes.append(
            {"stage": "link_down", "time": time.time(), "router": downer, "interface": down_link.dev(downer)}
        )
        run(in_ns(by_name[downer].ns, ["ip", "link", "set", down_link.dev(downer), "down"]))
        snapshots["link_down"] = settle("convergence after the link down", workdir, lab, deadline)
        progress(started, "converged; stopping")
        time.sleep(1.0)
        for cap in captures:
            lab.stop(cap.daemon)
            drops = tcpdump_drops(cap.daemon.log)
            if drops:
                raise LabError(f"tcpdump on {cap.dev} dropped {drops} packets; rerun")
        interfaces = {r.name: _interface_facts(r) for r in ROUTERS}
        versions = {"bird": _version(["bird", "--version"]), "tcpdump": _version(["tcpdump", "--version"])}

    out_dir.mkdir(parents=True, exist_ok=True)
    run(["mergecap", "-F", "pcap", "-w", str(out_dir / CAPTURE), *(str(c.path) for c in captures)])
    for name, text in configs.items():
        (out_dir / f"ospf_lab_{name}").write_text(text.replace(str(workdir), "WORKDIR"))
    expected = {
        "capture": CAPTURE,
        "capture_started": capture_started,
        "capture_points": [{"name": c.name, "namespace": c.ns, "interface": c.dev} for c in captures],
        "changes": changes,
        "routers": [_router_facts(r, interfaces[r.name]) for r in ROUTERS],
        "stages": {stage: snapshots[stage] for stage in STAGES},
        "sources": versions,
    }
    (out_dir / EXPECTED).write_text(dump_expected(expected))
    return {
        "elapsed_s": round(time.monotonic() - started, 1),
        "routes": {s: sum(len(t) for r in snapshots[s].values() for t in r.values()) for s in STAGES},
        "capture_bytes": (out_dir / CAPTURE).stat().st_size,
    }


def _interface_facts(router: Router) -> list[dict[str, Any]]:
    """Each OSPF interface as the kernel reports it: name, ifindex (the OSPFv3 interface ID BIRD uses),
    addresses including the IPv6 link-local one."""
    data = json.loads(run(in_ns(router.ns, ["ip", "-j", "address", "show"])).stdout)
    wanted = {iface.dev: (iface.area, iface.kind) for iface in _interfaces(router)}
    if router.stubs:
        wanted[STUB_DEV] = (STUB_AREA.get(router.name, 0), "stub")
    out = []
    for link in data:
        if link["ifname"] not in wanted:
            continue
        area, kind = wanted[link["ifname"]]
        out.append(
            {
                "name": link["ifname"],
                "ifindex": link["ifindex"],
                "area": area,
                "kind": kind,
                "mac": link.get("address"),
                "addresses": sorted(f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])),
            }
        )
    return sorted(out, key=lambda item: item["name"])


def _router_facts(router: Router, interfaces: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": router.name,
        "router_id": router.router_id,
        "namespace": router.ns,
        "lan_priority": router.priority if router.lan is not None else None,
        "lan_cost": router.lan_cost if router.lan is not None else None,
        "interfaces": interfaces,
        "statics": [
            {"prefix": s.prefix, "metric": s.metric, "type": "E1" if s.type1 else "E2", "via": s.via}
            for s in router.statics
        ],
    }


def dump_expected(expected: dict[str, Any]) -> str:
    """JSON with one route per line: small, and a re-recording diffs route by route."""
    stages = expected["stages"]
    head = {k: v for k, v in expected.items() if k != "stages"}
    text = json.dumps(head, indent=1)[:-2]
    stage_parts = []
    for stage, by_router in stages.items():
        router_parts = []
        for router, by_proto in by_router.items():
            proto_parts = []
            for proto, routes in by_proto.items():
                rows = ",\n".join(f"     {json.dumps(r)}" for r in routes)
                proto_parts.append(f'    "{proto}": [\n{rows}\n    ]' if rows else f'    "{proto}": []')
            router_parts.append(f'   "{router}": {{\n' + ",\n".join(proto_parts) + "\n   }")
        stage_parts.append(f'  "{stage}": {{\n' + ",\n".join(router_parts) + "\n  }")
    text += ',\n "stages": {\n' + ",\n".join(stage_parts) + "\n }\n}\n"
    if json.loads(text) != expected:
        raise LabError("expected JSON does not round-trip")
    return text


def _version(argv: Sequence[str]) -> str:
    result = run(argv, check=False)
    return (result.stdout or result.stderr).strip().splitlines()[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/lab"))
    parser.add_argument("--keep-workdir", action="store_true", help="leave daemon logs and raw captures in /tmp")
    args = parser.parse_args(argv)
    # A SIGTERM unwinds like an error, so the finally blocks tear the lab down.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        if os.geteuid() != 0:
            raise LabError("needs root: it creates network namespaces and runs tcpdump")
        require_tools(*TOOLS)
        workdir = Path(tempfile.mkdtemp(prefix="so-lab-"))
        try:
            summary = record(args.out, workdir)
        finally:
            if not args.keep_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                print(f"workdir kept: {workdir}", file=sys.stderr)
    except LabError as exc:
        print(f"make_ospf_capture: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
