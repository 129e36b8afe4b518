"""Record a BGP capture between real daemons, with the daemons' own RIBs as the expected result.

    /opt/venv-sr/bin/python -m tests.lab.make_bgp_capture --out tests/fixtures/lab

Topology (all addresses live only inside the namespaces made here; the switch namespace holds a plain bridge):

    srlab-a  gobgpd  AS 4200000001  a0 192.0.2.1/24 2001:db8::1/64   (tcpdump on a0: sees both sessions)
    srlab-b  ExaBGP  AS 64500       b0 192.0.2.2/24 2001:db8::2/64   session a-b over IPv4, passive
    srlab-c  gobgpd  AS 64502       c0 192.0.2.3/24 2001:db8::3/64   session a-c over IPv6, passive
    srlab-sw bridge srbr0 joining the other ends

Sequence: tables loaded while A's neighbours are administratively down, sessions enabled, convergence, A and
B withdraw some prefixes, RIB snapshot ("before_shutdown"), A shuts session a-b down with a message and
disables it, flush, RIB snapshot ("after_shutdown"), capture stopped, capture cut before the NOTIFICATION.

The expected routes come from the daemons only: gobgp's `neighbor ADDR adj-in -j` and ExaBGP's api log of
every UPDATE received, replayed to a final state. Nothing here decodes BGP itself.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.lab.netns import Daemon, Lab, LabError, LabTimeout, in_ns, require_tools, run, wait_for

MODULE = "tests.lab.make_bgp_capture"  # how ExaBGP starts our api process
SEED = 20260501
RUN_BUDGET_S = 75.0  # every wait shares this deadline, so a run ends well under 90 s
TOOLS = ("ip", "ethtool", "sysctl", "unshare", "tcpdump", "tshark", "editcap", "gobgpd", "gobgp")
EXABGP = Path(sys.executable).with_name("exabgp")

CAPTURE = "bgp_lab.pcap"
CUT_CAPTURE = "bgp_lab_before_shutdown.pcap"
EXPECTED = "bgp_lab_expected.json"
SHUTDOWN_TEXT = "sniffroute lab: planned maintenance on a-b"
# RFC 4486 section 3: Cease (6) / Administrative Shutdown (2); RFC 9003 carries the text.
CEASE, ADMIN_SHUTDOWN = 6, 2

GOBGP_API = "127.0.0.1:50051"
GOBGP_PORT = "50051"
SWITCH_NS, BRIDGE = "srlab-sw", "srbr0"


@dataclass(frozen=True, slots=True)
class Speaker:
    ns: str
    dev: str  # the speaker's end of its veth; the bridge holds `dev + "s"`
    asn: int
    router_id: str
    ipv4: str
    ipv6: str


A = Speaker("srlab-a", "a0", 4200000001, "10.0.0.1", "192.0.2.1", "2001:db8::1")
B = Speaker("srlab-b", "b0", 64500, "10.0.0.2", "192.0.2.2", "2001:db8::2")
C = Speaker("srlab-c", "c0", 64502, "10.0.0.3", "192.0.2.3", "2001:db8::3")
SPEAKERS = (A, B, C)


# -- the announced table: fixed, generated from SEED ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profile:
    """One attribute set. `as_path` is written as gobgp's CLI takes it: `{..}` is an AS_SET."""

    origin: str
    as_path: str
    med: int | None
    communities: tuple[str, ...]
    large_communities: tuple[str, ...]


# Several distinct attribute sets so that UPDATEs group prefixes in different ways.
A_PROFILES = (
    Profile("igp", "64496", None, (), ()),
    Profile("igp", "64496 4200000200", 50, ("65001:100",), ("4200000001:1:2",)),
    Profile("egp", "64497 4200000201 {64601,64602}", 0, ("65001:200", "65001:300"), ()),
    Profile("incomplete", "4200000202", 4294967295, (), ("4200000001:2:3", "4200000001:2:4")),
    Profile("igp", "64498 64498 64498 4200000203", 100, ("64496:1", "65001:100", "65535:0"), ("64496:0:1",)),
    Profile("egp", "{4200000300,64603}", None, ("65001:400",), ()),
    Profile("igp", "64499 4200000204 4200000205 {64604}", 7, (), ("4200000001:7:7",)),
    Profile("incomplete", "64496 4200000206", None, ("65001:500", "65001:501", "65001:502"), ("4200000001:9:9",)),
    Profile("igp", "4200000207 64511", 20, ("64511:1",), ()),
    Profile("egp", "64496 {64605,64606,4200000301}", 300, ("65001:600",), ("4200000001:1:1", "4200000001:1:3")),
)
C_PROFILES = (
    Profile("igp", "64520", 10, ("64502:1",), ("64502:0:1",)),
    Profile("incomplete", "64521 4200000400", None, ("64502:2",), ()),
)


@dataclass(frozen=True, slots=True)
class Announcement:
    prefix: str
    profile: Profile

    @property
    def family(self) -> str:
        return "ipv6" if ":" in self.prefix else "ipv4"


def build_a_table(seed: int = SEED) -> list[Announcement]:
    """A's table: 300 IPv4 prefixes of mixed lengths and 40 IPv6 ones, each with a seeded attribute set."""
    rng = random.Random(seed)
    prefixes: list[str] = []
    # 240 /24s picked out of 198.18.0.0/15 (RFC 2544 benchmarking space, 512 /24s).
    slash24 = sorted(rng.sample(range(512), 240))
    prefixes += [str(ipaddress.ip_network((0xC6120000 + (i << 8), 24))) for i in slash24]
    prefixes += ["198.18.0.0/15", "198.18.0.0/16", "198.19.0.0/16"]  # covering aggregates
    # 198.51.100.0/24 cut into /25../28 and 203.0.113.0/24 into /27 and /32 hosts.
    prefixes += ["198.51.100.0/25", "198.51.100.128/26", "198.51.100.192/27", "198.51.100.224/28"]
    prefixes += [f"203.0.113.{32 * i}/27" for i in range(8)]
    hosts = sorted(rng.sample(range(1, 255), 45))
    prefixes += [f"203.0.113.{h}/32" for h in hosts]
    v6: list[str] = ["2001:db8::/32", "2001:db8:1000::/36"]
    v6 += [f"2001:db8:{0x100 + i:x}::/48" for i in sorted(rng.sample(range(256), 20))]
    v6 += [f"2001:db8:2000:{i:x}00::/56" for i in range(8)]
    v6 += [f"2001:db8:3000:{i:x}::/64" for i in range(6)]
    v6 += [f"2001:db8:4000::{i:x}/128" for i in range(1, 5)]
    prefixes += v6
    return [Announcement(p, rng.choice(A_PROFILES)) for p in prefixes]


def pick_withdrawals(table: Sequence[Announcement], seed: int = SEED) -> list[str]:
    """25 IPv4 and 5 IPv6 prefixes of A's table that A withdraws before the shutdown."""
    rng = random.Random(seed + 1)
    v4 = [a.prefix for a in table if a.family == "ipv4"]
    v6 = [a.prefix for a in table if a.family == "ipv6"]
    return sorted(rng.sample(v4, 25)) + sorted(rng.sample(v6, 5))


C_TABLE = (
    *(Announcement(f"100.64.{i}.0/24", C_PROFILES[i % 2]) for i in range(6)),
    *(Announcement(f"2001:db8:c{i}::/48", C_PROFILES[i % 2]) for i in range(4)),
)

# ExaBGP's routes toward A (ExaBGP sends the AS_PATH as written, so it starts with its own AS).
B_ROUTES = (
    "route 192.0.2.128/25 next-hop 192.0.2.2 origin igp as-path [ 64500 ] med 5 community [ 64500:10 ];",
    "route 198.51.100.0/24 next-hop 192.0.2.2 origin egp as-path [ 64500 4200000500 ] "
    "large-community [ 64500:1:1 64500:1:2 ];",
    "route 203.0.113.0/24 next-hop 192.0.2.2 origin incomplete as-path [ 64500 64510 ] ( 64701 4200000702 ) "
    "community [ 64500:20 64500:30 ] large-community [ 64500:2:2 ];",
    "route 100.65.0.0/16 next-hop 192.0.2.2 origin igp as-path [ 64500 64501 ] med 0;",
    "route 100.66.1.0/24 next-hop 192.0.2.2 origin igp as-path [ 64500 64501 ] med 0;",
    "route 100.66.2.0/24 next-hop 192.0.2.2 origin igp as-path [ 64500 64501 ] med 0;",
    "route 2001:db8:b000::/40 next-hop 2001:db8::2 origin igp as-path [ 64500 ] community [ 64500:60 ];",
    "route 2001:db8:b100::/48 next-hop 2001:db8::2 origin egp as-path [ 64500 4200000600 ] med 60 "
    "large-community [ 64500:6:6 ];",
    "route 2001:db8:b200::/48 next-hop 2001:db8::2 origin igp as-path [ 64500 4200000600 ] med 60 "
    "large-community [ 64500:6:6 ];",
)
B_WITHDRAWALS = (
    "withdraw route 100.66.1.0/24 next-hop 192.0.2.2",
    "withdraw route 100.66.2.0/24 next-hop 192.0.2.2",
    "withdraw route 2001:db8:b200::/48 next-hop 2001:db8::2",
)


def gobgp_add_argv(ann: Announcement, next_hop: str) -> list[str]:
    p = ann.profile
    argv = ["gobgp", "-p", GOBGP_PORT, "global", "rib", "-a", ann.family, "add", ann.prefix]
    argv += ["origin", p.origin, "nexthop", next_hop, "aspath", p.as_path]
    if p.med is not None:
        argv += ["med", str(p.med)]
    if p.communities:
        argv += ["community", ",".join(p.communities)]
    if p.large_communities:
        argv += ["large-community", ",".join(p.large_communities)]
    return argv


def gobgp_del_argv(prefix: str) -> list[str]:
    family = "ipv6" if ":" in prefix else "ipv4"
    return ["gobgp", "-p", GOBGP_PORT, "global", "rib", "-a", family, "del", prefix]


# -- daemon configurations -----------------------------------------------------------------------------------


def gobgpd_config(me: Speaker, peers: Iterable[tuple[str, int, bool, bool]]) -> str:
    """gobgpd TOML; each peer is (address, AS, passive, admin_down). Short timers, both unicast families."""
    lines = [
        "[global.config]",
        f"  as = {me.asn}",
        f'  router-id = "{me.router_id}"',
        f'  local-address-list = ["{me.ipv4}", "{me.ipv6}"]',
    ]
    for address, asn, passive, admin_down in peers:
        local = me.ipv6 if ":" in address else me.ipv4
        lines += [
            "",
            "[[neighbors]]",
            "  [neighbors.config]",
            f'    neighbor-address = "{address}"',
            f"    peer-as = {asn}",
            f"    admin-down = {str(admin_down).lower()}",
            "  [neighbors.transport.config]",
            f'    local-address = "{local}"',
            f"    passive-mode = {str(passive).lower()}",
            "  [neighbors.timers.config]",
            "    connect-retry = 1",
            "    hold-time = 90",
            "    keepalive-interval = 30",
            "    idle-hold-time-after-reset = 1",
        ]
        for family in ("ipv4-unicast", "ipv6-unicast"):
            lines += [
                "  [[neighbors.afi-safis]]",
                "    [neighbors.afi-safis.config]",
                f'      afi-safi-name = "{family}"',
            ]
    return "\n".join(lines) + "\n"


def exabgp_config(api_argv: Sequence[str]) -> str:
    routes = "\n".join(f"\t\t{r}" for r in B_ROUTES)
    return f"""process recorder {{
\trun {" ".join(api_argv)};
\tencoder json;
}}

neighbor {A.ipv4} {{
\trouter-id {B.router_id};
\tlocal-address {B.ipv4};
\tlocal-as {B.asn};
\tpeer-as {A.asn};
\thold-time 90;
\tpassive true;
\tgroup-updates true;

\tfamily {{
\t\tipv4 unicast;
\t\tipv6 unicast;
\t}}

\tapi {{
\t\tprocesses [ recorder ];
\t\tneighbor-changes;
\t\treceive {{
\t\t\tparsed;
\t\t\tupdate;
\t\t\tnotification;
\t\t\topen;
\t\t}}
\t}}

\tstatic {{
{routes}
\t}}
}}
"""


# -- ExaBGP api process: records what ExaBGP receives, sends withdrawals on a trigger file -------------------


def api_process(log_path: Path, trigger: Path, commands: Sequence[str]) -> int:
    """Runs under ExaBGP: append everything ExaBGP writes to us to `log_path`; once `trigger` exists, send
    `commands` to ExaBGP (one per line) and keep recording until ExaBGP closes our stdin."""
    stdin = sys.stdin.fileno()
    sent = False
    # Raw reads, never sys.stdin.readline(): a buffered reader can hold lines that select() no longer sees.
    with log_path.open("ab") as log:
        while True:
            ready, _, _ = select.select([stdin], [], [], 0.1)
            if ready:
                chunk = os.read(stdin, 1 << 16)
                if not chunk:
                    return 0
                log.write(chunk)
                log.flush()
            if not sent and trigger.exists():
                sys.stdout.write("".join(command + "\n" for command in commands))
                sys.stdout.flush()
                sent = True


# -- normalising the daemons' views into one schema ----------------------------------------------------------

ORIGINS = {0: "igp", 1: "egp", 2: "incomplete"}
AS_SET, AS_SEQUENCE = 1, 2  # RFC 4271 section 4.3, AS_PATH segment types


def _addr(text: str) -> str:
    """One spelling for addresses whichever daemon printed them (Python's compressed form)."""
    return str(ipaddress.ip_address(text))


def _prefix(text: str) -> str:
    return str(ipaddress.ip_network(text, strict=False))


def _route(
    prefix: str,
    peer: str,
    peer_as: int,
    next_hop: str,
    as_path: list[Any],
    origin: str,
    med: int | None,
    local_pref: int | None,
    communities: Iterable[str],
    large_communities: Iterable[str],
) -> dict[str, Any]:
    return {
        "prefix": _prefix(prefix),
        "peer": _addr(peer),
        "peer_as": peer_as,
        "next_hop": _addr(next_hop),
        "as_path": as_path,
        "origin": origin,
        "med": med,
        "local_pref": local_pref,
        "communities": sorted(communities, key=_community_key),
        "large_communities": sorted(large_communities, key=_community_key),
    }


def _community_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(":"))


def _route_sort_key(route: dict[str, Any]) -> tuple[int, str, int, str]:
    net = ipaddress.ip_network(route["prefix"])
    return (net.version, route["peer"], int(net.network_address), str(net.prefixlen))


def gobgp_adj_in(dump: dict[str, Any], peer: str, peer_as: int) -> list[dict[str, Any]]:
    """Routes from `gobgp neighbor ADDR adj-in -a FAMILY -j`: {prefix: [path, ...]} with typed attributes."""
    routes = []
    for paths in dump.values():
        for path in paths:
            if path.get("withdrawal") or path.get("stale"):
                continue
            attrs = {a["type"]: a for a in path["attrs"]}
            as_path: list[Any] = []
            for segment in attrs.get(2, {}).get("as_paths", []):
                if segment["segment_type"] == AS_SET:
                    as_path.append(list(segment["asns"]))
                else:
                    as_path.extend(segment["asns"])
            next_hop = attrs[14]["nexthop"] if 14 in attrs else attrs[3]["nexthop"]
            communities = [f"{c >> 16}:{c & 0xFFFF}" for c in attrs.get(8, {}).get("communities", [])]
            large = [f"{v['ASN']}:{v['LocalData1']}:{v['LocalData2']}" for v in attrs.get(32, {}).get("value", [])]
            routes.append(
                _route(
                    path["nlri"]["prefix"],
                    peer,
                    peer_as,
                    next_hop,
                    as_path,
                    ORIGINS[attrs[1]["value"]],
                    attrs[4]["metric"] if 4 in attrs else None,
                    attrs[5]["value"] if 5 in attrs else None,
                    communities,
                    large,
                )
            )
    return routes


def exabgp_received(log_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Replay ExaBGP's api log: (routes held now, NOTIFICATIONs received). A session going down empties the
    table of that peer, as ExaBGP's own Adj-RIB-In does."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    notifications: list[dict[str, Any]] = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        neighbor = event.get("neighbor", {})
        peer = neighbor.get("address", {}).get("peer")
        peer_as = neighbor.get("asn", {}).get("peer")
        if event.get("type") == "state" and neighbor.get("state") == "down":
            table = {k: v for k, v in table.items() if k[1] != _addr(peer)}
        elif event.get("type") == "notification":
            notifications.append(neighbor.get("notification", {}))
        elif event.get("type") == "update":
            update = neighbor["message"]["update"]
            for nlris in update.get("withdraw", {}).values():
                for nlri in nlris:
                    table.pop((_prefix(nlri["nlri"]), _addr(peer)), None)
            attribute = update.get("attribute", {})
            for by_next_hop in update.get("announce", {}).values():
                for next_hop, nlris in by_next_hop.items():
                    for nlri in nlris:
                        route = _exabgp_route(nlri["nlri"], peer, peer_as, next_hop, attribute)
                        table[(route["prefix"], route["peer"])] = route
    return list(table.values()), notifications


def _exabgp_route(prefix: str, peer: str, peer_as: int, next_hop: str, attribute: dict[str, Any]) -> dict[str, Any]:
    as_path: list[Any] = []
    for segment in _exabgp_segments(attribute.get("as-path", [])):
        if segment["element"] == "as-set":
            as_path.append(list(segment["value"]))
        else:
            as_path.extend(segment["value"])
    return _route(
        prefix,
        peer,
        peer_as,
        next_hop,
        as_path,
        attribute["origin"],
        attribute.get("med"),
        attribute.get("local-preference"),
        (f"{a}:{b}" for a, b in attribute.get("community", [])),
        (f"{a}:{b}:{c}" for a, b, c in attribute.get("large-community", [])),
    )


def _exabgp_segments(as_path: Any) -> list[dict[str, Any]]:
    # ExaBGP 5 writes {"0": {"element": "as-sequence", "value": [...]}, ...}; older ones a flat list.
    if isinstance(as_path, dict):
        return [as_path[k] for k in sorted(as_path, key=int)]
    return [{"element": "as-sequence", "value": list(as_path)}]


# -- talking to the running daemons --------------------------------------------------------------------------


def gobgp(ns: str, *args: str, timeout: float = 10.0) -> str:
    return run(in_ns(ns, ["gobgp", "-p", GOBGP_PORT, *args]), timeout=timeout).stdout


def gobgp_json(ns: str, *args: str) -> Any:
    text = gobgp(ns, *args, "-j").strip()
    return json.loads(text) if text else {}


ESTABLISHED = 6  # gobgp's api.PeerState.SessionState value, as its JSON prints it


def neighbor_established(ns: str, address: str) -> bool:
    info = gobgp_json(ns, "neighbor", address)
    state = info.get("state", {}).get("session_state")
    return state == ESTABLISHED or str(state).lower() == "established"


def adj_in(ns: str, address: str, peer_as: int) -> list[dict[str, Any]]:
    """gobgp's Adj-RIB-In for one neighbour; a neighbour without a session holds none (gobgp says so)."""
    routes = []
    for family in ("ipv4", "ipv6"):
        argv = ["gobgp", "-p", GOBGP_PORT, "neighbor", address, "adj-in", "-a", family, "-j"]
        result = run(in_ns(ns, argv), check=False)
        if result.returncode != 0 and "is not established" in result.stdout + result.stderr:
            continue
        if result.returncode != 0:
            raise LabError(f"{' '.join(argv)} exited {result.returncode}: {result.stdout}{result.stderr}")
        dump = json.loads(result.stdout) if result.stdout.strip() else {}
        routes += gobgp_adj_in(dump if isinstance(dump, dict) else {}, address, peer_as)
    return routes


def global_count(ns: str, family: str) -> int:
    dump = gobgp_json(ns, "global", "rib", "-a", family)
    return len(dump) if isinstance(dump, dict) else 0


def snapshot(exabgp_log: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What every receiver holds from every sender, sorted; and ExaBGP's NOTIFICATIONs."""
    routes = adj_in(A.ns, B.ipv4, B.asn) + adj_in(A.ns, C.ipv6, C.asn) + adj_in(C.ns, A.ipv6, A.asn)
    received, notifications = exabgp_received(exabgp_log)
    routes += received
    return sorted(routes, key=_route_sort_key), notifications


def expected_counts(a_routes: int, a_withdrawn: int) -> dict[str, int]:
    """How many (prefix, sender) pairs the receivers must hold at each stage, from the tables alone.

    A relays B's routes to C and C's to B (plain eBGP); nobody sends a route back to the AS it came from.
    """
    b_routes, b_withdrawn, c_routes = len(B_ROUTES), len(B_WITHDRAWALS), len(C_TABLE)

    def total(a: int, b: int, b_up: bool) -> int:
        b_side = (a + c_routes) + b if b_up else 0  # B receives A's and C's; A receives B's
        return b_side + c_routes + a + (b if b_up else 0)  # A receives C's; C receives A's and B's

    return {
        "converged": total(a_routes, b_routes, True),
        "before": total(a_routes - a_withdrawn, b_routes - b_withdrawn, True),
        "after": total(a_routes - a_withdrawn, b_routes - b_withdrawn, False),
    }


def settle(what: str, probe: Any, count: int, *, deadline: float, quiet_s: float = 1.0) -> Any:
    """Wait until `probe()` returns `count` routes and stays unchanged for `quiet_s` seconds."""
    last: Any = None
    since = time.monotonic()

    def stable() -> Any:
        nonlocal last, since
        value = probe()
        if value != last:
            last, since = value, time.monotonic()
            return None
        return value if len(value) == count and time.monotonic() - since >= quiet_s else None

    try:
        return wait_for(what, stable, deadline=deadline, interval=0.25)
    except LabTimeout:
        by_peer = Counter(route["peer"] for route in last or [])
        raise LabTimeout(
            f"timed out waiting for {what}: {len(last or [])} routes held, {count} expected; by sender {dict(by_peer)}"
        ) from None


# -- the run -------------------------------------------------------------------------------------------------


def build_topology(lab: Lab) -> None:
    lab.namespace(SWITCH_NS)
    for sp in SPEAKERS:
        lab.namespace(sp.ns)
        lab.veth(sp.ns, sp.dev, SWITCH_NS, sp.dev + "s")
        lab.offloads_off(sp.ns, sp.dev)
        lab.offloads_off(SWITCH_NS, sp.dev + "s")
        lab.ipv6_off(SWITCH_NS, sp.dev + "s")
        lab.address(sp.ns, sp.dev, f"{sp.ipv4}/24")
        lab.address(sp.ns, sp.dev, f"{sp.ipv6}/64")
        # No router solicitations or temporary addresses: only what the sessions need goes on the wire.
        lab.sysctl(sp.ns, f"net.ipv6.conf.{sp.dev}.router_solicitations", "0")
        lab.up(sp.ns, sp.dev)
    lab.bridge(SWITCH_NS, BRIDGE, [sp.dev + "s" for sp in SPEAKERS])


def with_hostname(name: str, argv: Sequence[str]) -> list[str]:
    """argv run in a fresh UTS namespace named `name`: gobgpd's OPEN carries the host name (FQDN capability),
    and the capture should not depend on the machine it was recorded on."""
    code = "import os, socket, sys; socket.sethostname(sys.argv[1]); os.execvp(sys.argv[2], sys.argv[2:])"
    return ["unshare", "--uts", sys.executable, "-c", code, name, *argv]


def add_routes(ns: str, table: Sequence[Announcement], next_hops: dict[str, str], parallel: int = 16) -> None:
    """Load a table through gobgp's CLI, a few commands at a time; each exit status is checked."""
    pending = [gobgp_add_argv(a, next_hops[a.family]) for a in table]
    for start in range(0, len(pending), parallel):
        batch = [_spawn(in_ns(ns, argv)) for argv in pending[start : start + parallel]]
        for argv, proc in batch:
            _, err = proc.communicate(timeout=20)
            if proc.returncode != 0:
                raise LabError(f"{' '.join(argv)} exited {proc.returncode}: {err.strip()}")


def _spawn(argv: list[str]) -> tuple[list[str], subprocess.Popen[str]]:
    return argv, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def tcpdump_drops(log: Path) -> int:
    match = re.search(r"(\d+) packets? dropped by kernel", log.read_text(errors="replace"))
    if match is None:
        raise LabError(f"tcpdump printed no statistics; see {log}")
    return int(match.group(1))


def notification_frames(pcap: Path) -> list[tuple[int, int, int, str]]:
    """(frame number, code, subcode, shutdown text) of each NOTIFICATION, from tshark."""
    fields = (
        "frame.number",
        "bgp.notify.major_error",
        "bgp.notify.minor_error_cease",
        "bgp.notify.communication",
    )
    argv = ["tshark", "-n", "-r", str(pcap), "-Y", "bgp.type == 3", "-T", "fields", "-E", "occurrence=f"]
    for name in fields:
        argv += ["-e", name]
    out = run(argv).stdout
    frames = []
    for line in out.splitlines():
        number, code, subcode, text = (line.split("\t") + ["", "", "", ""])[:4]
        frames.append((int(number), int(code), int(subcode or 0), text))
    return frames


def progress(started: float, text: str) -> None:
    print(f"{time.monotonic() - started:5.1f}s {text}", file=sys.stderr, flush=True)


def record(out_dir: Path, workdir: Path) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + RUN_BUDGET_S
    table = build_a_table()
    withdrawn = pick_withdrawals(table)
    exabgp_log = workdir / "exabgp-received.jsonl"
    trigger = workdir / "exabgp-withdraw"
    commands_file = workdir / "exabgp-commands.json"
    commands_file.write_text(json.dumps(list(B_WITHDRAWALS)))
    configs = {
        "gobgpd-a.toml": gobgpd_config(A, [(B.ipv4, B.asn, False, True), (C.ipv6, C.asn, False, True)]),
        "gobgpd-c.toml": gobgpd_config(C, [(A.ipv6, A.asn, True, False)]),
        "exabgp-b.conf": exabgp_config(
            [
                sys.executable,
                "-m",
                MODULE,
                "--api-process",
            ]
            + [str(exabgp_log), str(trigger), str(commands_file)]
        ),
    }
    configs["gobgp-routes.txt"] = "".join(
        f"ip netns exec {ns} {shlex.join(gobgp_add_argv(ann, nh[ann.family]))}\n"
        for ns, tbl, nh in (
            (C.ns, C_TABLE, {"ipv4": C.ipv4, "ipv6": C.ipv6}),
            (A.ns, table, {"ipv4": A.ipv4, "ipv6": A.ipv6}),
        )
        for ann in tbl
    ) + "".join(f"ip netns exec {A.ns} {shlex.join(gobgp_del_argv(p))}\n" for p in withdrawn)
    for name, text in configs.items():
        (workdir / name).write_text(text)
    pcap = workdir / CAPTURE

    with Lab(workdir) as lab:
        build_topology(lab)
        tcpdump = lab.start(
            "tcpdump",
            A.ns,
            ["tcpdump", "-n", "-i", A.dev, "-s", "0", "-B", "16384", "-U", "-Z", "root", "-w", str(pcap)],
            stop_signal=signal.SIGINT,
        )
        wait_for("tcpdump to listen", lambda: "listening on" in tcpdump.log.read_text(), deadline=deadline)
        repo_root = Path(__file__).resolve().parents[2]
        lab.start(
            "exabgp-b",
            B.ns,
            [str(EXABGP), "server", str(workdir / "exabgp-b.conf")],
            env={
                "exabgp_daemon_user": "root",
                "exabgp_daemon_drop": "false",
                "exabgp_api_cli": "false",
                "exabgp_log_destination": "stdout",
                # A passive ExaBGP listens only where told to.
                "exabgp_tcp_bind": B.ipv4,
                "PYTHONPATH": str(repo_root),
            },
            cwd=repo_root,
        )
        gobgpd_argv = ["gobgpd", "-p", f"--api-hosts={GOBGP_API}", "--pprof-disable", "-f"]
        daemon_c = lab.start("gobgpd-c", C.ns, with_hostname("srlab-c", [*gobgpd_argv, str(workdir / "gobgpd-c.toml")]))
        daemon_a = lab.start("gobgpd-a", A.ns, with_hostname("srlab-a", [*gobgpd_argv, str(workdir / "gobgpd-a.toml")]))
        for sp, daemon in ((A, daemon_a), (C, daemon_c)):
            wait_for(f"gobgpd in {sp.ns}", lambda sp=sp, d=daemon: _api_up(sp.ns, d), deadline=deadline)

        progress(started, "daemons up; loading tables")
        add_routes(C.ns, C_TABLE, {"ipv4": C.ipv4, "ipv6": C.ipv6})
        add_routes(A.ns, table, {"ipv4": A.ipv4, "ipv6": A.ipv6})
        counts = {f: sum(1 for a in table if a.family == f) for f in ("ipv4", "ipv6")}
        for family, want in counts.items():
            got = global_count(A.ns, family)
            if got != want:
                raise LabError(f"gobgpd A holds {got} {family} routes, {want} were added")

        progress(started, f"tables loaded ({len(table)} routes in A); enabling sessions")
        for peer in (B.ipv4, C.ipv6):
            gobgp(A.ns, "neighbor", peer, "enable")
        for peer in (B.ipv4, C.ipv6):
            wait_for(
                f"session to {peer}",
                lambda p=peer: lab.check_running() and neighbor_established(A.ns, p),
                deadline=deadline,
            )
        progress(started, "sessions established")
        want = expected_counts(len(table), len(withdrawn))
        converged = settle("initial convergence", lambda: snapshot(exabgp_log)[0], want["converged"], deadline=deadline)

        progress(started, f"converged ({len(converged)} routes held); withdrawing")
        for prefix in withdrawn:
            run(in_ns(A.ns, gobgp_del_argv(prefix)))
        trigger.touch()
        before = settle(
            "convergence after withdrawals",
            lambda: snapshot(exabgp_log)[0],
            want["before"],
            deadline=deadline,
        )

        progress(started, f"{len(before)} routes held; shutting a-b down")
        gobgp(A.ns, "neighbor", B.ipv4, "shutdown", "--reason", SHUTDOWN_TEXT)
        wait_for("session a-b down", lambda: not neighbor_established(A.ns, B.ipv4), deadline=deadline)
        gobgp(A.ns, "neighbor", B.ipv4, "disable")
        progress(started, "a-b down")
        after = settle("flush after shutdown", lambda: snapshot(exabgp_log)[0], want["after"], deadline=deadline)
        notifications = snapshot(exabgp_log)[1]
        progress(started, f"flushed ({len(after)} routes held); stopping")
        time.sleep(0.5)  # let the last withdrawals toward C and their ACKs reach the capture
        lab.stop(tcpdump)
        drops = tcpdump_drops(tcpdump.log)
        if drops:
            raise LabError(f"tcpdump dropped {drops} packets; rerun")
        if not neighbor_established(A.ns, C.ipv6):
            raise LabError("session a-c should have stayed up")

    return _write_outputs(out_dir, workdir, configs, pcap, before, after, notifications, time.monotonic() - started)


def _api_up(ns: str, daemon: Daemon) -> bool:
    if not daemon.alive():
        raise LabError(f"{daemon.name} exited: {daemon.log.read_text(errors='replace')[-2000:]}")
    return run(in_ns(ns, ["gobgp", "-p", GOBGP_PORT, "global"]), check=False).returncode == 0


def _write_outputs(
    out_dir: Path,
    workdir: Path,
    configs: dict[str, str],
    pcap: Path,
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
    notifications: list[dict[str, Any]],
    elapsed: float,
) -> dict[str, Any]:
    frames = notification_frames(pcap)
    if len(frames) != 1:
        raise LabError(f"expected exactly one NOTIFICATION in the capture, tshark sees {frames}")
    number, code, subcode, text = frames[0]
    if (code, subcode, text) != (CEASE, ADMIN_SHUTDOWN, SHUTDOWN_TEXT):
        raise LabError(f"NOTIFICATION on the wire is {code}/{subcode} {text!r}")
    if not any(n.get("code") == CEASE and n.get("subcode") == ADMIN_SHUTDOWN for n in notifications):
        raise LabError(f"ExaBGP did not report the Cease/Administrative Shutdown it received: {notifications}")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pcap, out_dir / CAPTURE)
    run(["editcap", "-F", "pcap", "-r", str(pcap), str(out_dir / CUT_CAPTURE), f"1-{number - 1}"])
    # Reference copies: the scratch directory's random name would make every re-recording differ.
    for name, text_ in configs.items():
        (out_dir / name).write_text(text_.replace(str(workdir), "WORKDIR"))
    expected = {
        "capture": CAPTURE,
        "capture_before_shutdown": CUT_CAPTURE,
        "last_frame_before_notification": number - 1,
        "notification_frame": number,
        "sessions": _sessions(),
        "before_shutdown": {"routes": before},
        "after_shutdown": {"routes": after},
        "notification": {
            "code": code,
            "subcode": subcode,
            "message": text,
            "sender": A.ipv4,
            "receiver": B.ipv4,
        },
        "sources": {
            "gobgpd": _version(["gobgpd", "--version"]),
            "exabgp": _version([str(EXABGP), "version"]).splitlines()[0],
            "tcpdump": _version(["tcpdump", "--version"]).splitlines()[0],
            "seed": SEED,
        },
    }
    (out_dir / EXPECTED).write_text(dump_expected(expected))
    return {
        "elapsed_s": round(elapsed, 1),
        "before": len(before),
        "after": len(after),
        "notification": number,
    }


def dump_expected(expected: dict[str, Any]) -> str:
    """JSON with one route per line: small, and a re-recording diffs route by route."""
    parts = []
    for key, value in expected.items():
        if isinstance(value, dict) and set(value) == {"routes"}:
            rows = ",\n".join(f"   {json.dumps(route)}" for route in value["routes"])
            text = f'{{"routes": [\n{rows}\n ]}}' if rows else '{"routes": []}'
        else:
            text = json.dumps(value, indent=1).replace("\n", "\n ")
        parts.append(f" {json.dumps(key)}: {text}")
    text = "{\n" + ",\n".join(parts) + "\n}\n"
    if json.loads(text) != expected:
        raise LabError("expected JSON does not round-trip")
    return text


def _sessions() -> list[dict[str, Any]]:
    def side(sp: Speaker, address: str, daemon: str) -> dict[str, Any]:
        return {"address": address, "as": sp.asn, "router_id": sp.router_id, "daemon": daemon}

    return [
        {
            "name": "a-b",
            "transport": "ipv4",
            "families": ["ipv4-unicast", "ipv6-unicast"],
            "speakers": [side(A, A.ipv4, "gobgpd"), side(B, B.ipv4, "exabgp")],
            "shut_down": True,
        },
        {
            "name": "a-c",
            "transport": "ipv6",
            "families": ["ipv4-unicast", "ipv6-unicast"],
            "speakers": [side(A, A.ipv6, "gobgpd"), side(C, C.ipv6, "gobgpd")],
            "shut_down": False,
        },
    ]


def _version(argv: Sequence[str]) -> str:
    result = run(argv, check=False)
    return (result.stdout or result.stderr).strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/lab"))
    parser.add_argument("--keep-workdir", action="store_true", help="leave daemon logs and raw dumps in /tmp")
    parser.add_argument("--api-process", nargs=3, metavar=("LOG", "TRIGGER", "COMMANDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.api_process:
        log, trigger, commands = (Path(p) for p in args.api_process)
        return api_process(log, trigger, json.loads(commands.read_text()))
    # A SIGTERM unwinds like an error, so the finally blocks tear the lab down.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        if os.geteuid() != 0:
            raise LabError("needs root: it creates network namespaces and runs tcpdump")
        require_tools(*TOOLS)
        if not EXABGP.exists():
            raise LabError(f"ExaBGP not found at {EXABGP} (pip install exabgp into this interpreter's venv)")
        workdir = Path(tempfile.mkdtemp(prefix="srlab-"))
        try:
            summary = record(args.out, workdir)
        finally:
            if not args.keep_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                print(f"workdir kept: {workdir}", file=sys.stderr)
    except LabError as exc:
        print(f"make_bgp_capture: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
