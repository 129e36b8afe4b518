"""The live tunnel end to end, per backend: BGP through switch -> packet-in -> TAP -> Linux -> session holder.

Two routers: gobgpd on port 1 (IPv4 + IPv6, ANNOUNCED and GOBGP_BULK) and ExaBGP on port 2 (IPv4, EXA_BULK).
Oracles: gobgpd's own view (session state, `adj-out` toward us), ExaBGP's API record of every UPDATE it sent and
of its session state, the switch's flow and port counters, and ping's exit status. sniffroute's output is only
ever what is checked, never the expectation.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.e2e.conftest import (
    ANNOUNCED,
    BRIDGE,
    CONTROLLER_NS,
    EXA_AS,
    EXA_BULK,
    EXA_PORT,
    EXA_ROUTER_V4,
    EXA_V4,
    GOBGP_BULK,
    GOBGP_PEERS,
    HOLD_TIME,
    LOCAL_AS,
    PEER_AS,
    PEER_MAC,
    PEER_V4,
    PEER_V6,
    PEER_VLAN_V4,
    ROUTER_MAC,
    ROUTER_NS,
    ROUTER_PORT,
    ROUTER_V4,
    ROUTER_V6,
    ROUTER_VETH,
    ROUTER_VLAN_V4,
    TAP,
    VLAN,
    VLAN_TAP,
    Controller,
    ExaRouter,
    Router,
    Switch,
    adj_out,
    rib_view,
)
from tests.lab.netns import in_ns, run, wait_for

pytestmark = pytest.mark.e2e

PUNT_PRIORITY = 0xF000  # sniffroute.tunnel.PUNT_PRIORITY, written out: the switch reports numbers
ROUTE_BASE_PRIORITY = 0x1000  # sniffroute.tunnel.ROUTE_BASE_PRIORITY: + prefix length
ROUTE_COOKIE = 0x5E1F0002  # sniffroute.fib.model.ROUTE_COOKIE
MTU = 1500
IPV4_ICMP_HEADERS = 20 + 8
IPV6_ICMP_HEADERS = 40 + 8
UNROUTED_FRAMES = 300
WITHIN_A_SECOND = 1.0
CEASE = 6  # RFC 4271 4.5 NOTIFICATION error code


def _punted_packets(switch: Switch) -> int:
    return sum(f["n_packets"] for f in switch.flows() if f["priority"] == PUNT_PRIORITY)


def _exa_ups(exa_router: ExaRouter) -> int:
    """How many times ExaBGP says its session came up."""
    return sum(1 for m in exa_router.messages() if m.get("type") == "state" and m["neighbor"]["state"] == "up")


def _wait_for_full_tables(router: Router, exa_router: ExaRouter, *, seconds: float = 40) -> None:
    """Both routers' sessions up and their whole tables sent, by their own accounts."""
    deadline = time.monotonic() + seconds
    for peer in (ROUTER_V4, ROUTER_V6):
        wait_for(f"gobgpd's session with {peer}", lambda p=peer: router.established(p), deadline=deadline)
    wait_for("ExaBGP's session", exa_router.established, deadline=deadline)
    wait_for("ExaBGP to send its table", lambda: len(exa_router.sent()) == len(EXA_BULK), deadline=deadline)


def test_sessions_through_the_tunnel_fill_the_rib(
    switch: Switch, router: Router, exa_router: ExaRouter, controller: Controller
) -> None:
    _wait_for_full_tables(router, exa_router)
    expected = adj_out(router)
    announced = {p for p, _ in (*ANNOUNCED, *GOBGP_BULK)}
    assert {r["prefix"] for r in expected} == announced, "gobgpd did not send its table"
    exa_expected = exa_router.sent()
    assert {r["prefix"] for r in exa_expected} == {p for p, _ in EXA_BULK}, "ExaBGP did not send its table"
    settle = time.monotonic() + 20
    while time.monotonic() < settle:
        ours, exa_ours = rib_view(controller, GOBGP_PEERS), rib_view(controller, (EXA_V4,))
        if ours == expected and exa_ours == exa_expected:
            break
        time.sleep(0.3)
    tail = controller.log()[-3000:]
    assert ours == expected, f"the RIB is not what gobgpd says it sent; controller log:\n{tail}"
    assert exa_ours == exa_expected, f"the RIB is not what ExaBGP says it sent; controller log:\n{tail}"
    rib = controller.rib()
    assert {r["peer"] for r in rib} == {PEER_V4, PEER_V6, EXA_V4}
    for route in rib:
        assert route["peer_as"] == (EXA_AS if route["peer"] == EXA_V4 else PEER_AS)
    shared = {p for p, _ in EXA_BULK} & announced  # one path from each router for these
    assert shared and all(len([r for r in rib if r["prefix"] == p]) == 2 for p in shared)

    # The frames crossed the tunnel: the switch punted them, and the ports sent out only packet-outs.
    assert _punted_packets(switch) > 0
    assert switch.port_tx_packets(ROUTER_PORT) > 0 and switch.port_tx_packets(EXA_PORT) > 0
    tunnel = controller.document("tunnel")
    assert tunnel["to_tap"] > 0 and tunnel["packet_out"] > 0, tunnel
    assert tunnel["truncated_packet_in"] == 0

    # Sessions stay up past three hold times: keepalives cross the tunnel both ways, and ExaBGP's never flapped.
    ups = _exa_ups(exa_router)
    time.sleep(3 * HOLD_TIME + 0.5)
    assert router.established(ROUTER_V4) and router.established(ROUTER_V6)
    assert exa_router.established() and _exa_ups(exa_router) == ups
    holder = {p["address"]: p["state"] for p in controller.document("holder") or []}
    assert holder == {PEER_V4: "established", PEER_V6: "established", EXA_V4: "established"}
    assert rib_view(controller, (EXA_V4,)) == exa_router.sent()


def test_switch_holds_punt_flows_and_drops_the_rest(switch: Switch, controller: Controller) -> None:
    flows = switch.flows()
    punt = [f for f in flows if f["priority"] == PUNT_PRIORITY]
    assert punt and all(f["text"].endswith("CONTROLLER:65535") for f in punt), punt  # whole frames
    in_ports = {f"in_port={ROUTER_PORT}", f"in_port={EXA_PORT}"}
    assert all(any(port in f["text"] for port in in_ports) or "in_port" not in f["text"] for f in punt)
    assert any(f"in_port={EXA_PORT}" in f["text"] and EXA_ROUTER_V4 in f["text"] for f in punt), punt
    misses = [f for f in flows if f["priority"] == 0]
    assert len(misses) == 1 and "actions=drop" in misses[0]["text"], misses
    routes = [f for f in flows if f"cookie={ROUTE_COOKIE:#x}" in f["text"]]  # route flows (issue 5) sit below
    others = [f for f in flows if f not in routes]
    assert {f["priority"] for f in others} == {0, PUNT_PRIORITY}, "nothing else is on the switch"
    assert all(ROUTE_BASE_PRIORITY <= f["priority"] <= ROUTE_BASE_PRIORITY + 128 for f in routes), routes
    if controller.backend == "osken":  # OpenFlow 1.3: the punt flows go through a packet-rate meter
        assert all("meter:1" in f["text"] for f in punt), punt
        meters = switch.ofctl("dump-meters", BRIDGE)
        assert "meter=1 pktps" in meters and "type=drop rate=20000" in meters, meters


def test_full_size_pings_cross_the_tunnel(switch: Switch, router: Router, controller: Controller) -> None:
    punted = _punted_packets(switch)
    for address, headers in ((ROUTER_V4, IPV4_ICMP_HEADERS), (ROUTER_V6, IPV6_ICMP_HEADERS)):
        small = router.ping(address, size=56)
        assert small.returncode == 0, f"ping {address}: {small.stdout}{small.stderr}"
        full = router.ping(address, size=MTU - headers)  # don't-fragment: exactly one 1500-byte IP packet each way
        assert full.returncode == 0, f"{MTU}-byte ping {address}: {full.stdout}{full.stderr}"
    # Each echo request was punted (the switch updates flow counters lazily: give it a moment).
    wait_for("punt counters", lambda: _punted_packets(switch) >= punted + 4 * 3, deadline=time.monotonic() + 3)


def test_vlan_interface_carries_full_size_frames(switch: Switch, router: Router, controller: Controller) -> None:
    # The controller host must know the prober's MAC: the router namespace cannot answer tagged ARP itself.
    neigh = ["ip", "neigh", "replace", PEER_VLAN_V4, "lladdr", PEER_MAC, "dev", VLAN_TAP, "nud", "permanent"]
    run(in_ns(CONTROLLER_NS, neigh))
    size = MTU - IPV4_ICMP_HEADERS
    probe = [sys.executable, "-m", "tests.e2e.vlan_probe", ROUTER_VETH, str(VLAN), PEER_MAC, ROUTER_MAC]
    result = run(in_ns(ROUTER_NS, [*probe, PEER_VLAN_V4, ROUTER_VLAN_V4, str(size)]), check=False, timeout=30)
    assert result.returncode == 0, f"no echo reply over VLAN {VLAN}: {result.stdout}{result.stderr}"
    reply = json.loads(result.stdout)
    assert reply["vlan"] == VLAN and reply["ip_length"] == MTU and reply["payload_intact"], reply
    assert reply["frame_bytes"] == MTU + 14 + 4 and reply["source_mac"] == ROUTER_MAC
    vlan_flows = [f for f in switch.flows() if f"dl_vlan={VLAN}" in f["text"] and ROUTER_VLAN_V4 in f["text"]]
    wait_for(
        "the VLAN punt counters",
        lambda: sum(f["n_packets"] for f in vlan_flows) > 0 or None,
        deadline=time.monotonic() + 3,
    )


# ICMP echo requests, one a millisecond, to the address given.
ECHO_FLOOD = """import socket, struct, sys, time
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for sequence in range(int(sys.argv[2])):
    header = struct.pack("!BBHHH", 8, 0, 0, 0x5E1F, sequence) + bytes(56)
    sock.sendto(header[:2] + struct.pack("!H", checksum(header)) + header[4:], (sys.argv[1], 0))
    time.sleep(0.001)
"""


def test_frames_not_for_the_router_never_reach_the_controller(
    switch: Switch, router: Router, controller: Controller
) -> None:
    # Frames to the router's MAC for an address it has no route to (off every connected subnet, so no glean flow
    # either): the switch must drop them itself.
    stranger = "192.0.2.99"  # outside every prefix the bed announces
    run(in_ns(ROUTER_NS, ["ip", "route", "replace", f"{stranger}/32", "dev", ROUTER_VETH]))
    run(in_ns(ROUTER_NS, ["ip", "neigh", "replace", stranger, "lladdr", ROUTER_MAC, "dev", ROUTER_VETH]))
    wait_for("a first tunnel report", lambda: controller.document("tunnel"), deadline=time.monotonic() + 5)
    # The packet-in counts are read right around a quick flood: the three sessions' keepalives and their ACKs keep
    # arriving meanwhile, several a second, and dumping the route flows takes a while. (ping paces unanswered
    # echoes at ~10 ms, and a burst all at once overflows the switch's queue.)
    table_miss_before = sum(f["n_packets"] for f in switch.flows() if f["priority"] == 0)
    before = controller.document("tunnel")["packet_in"]
    argv = [sys.executable, "-c", ECHO_FLOOD, stranger, str(UNROUTED_FRAMES)]
    run(in_ns(ROUTER_NS, argv), timeout=30)
    time.sleep(0.5)  # one save interval and more
    after = controller.document("tunnel")["packet_in"]
    table_miss = sum(f["n_packets"] for f in switch.flows() if f["priority"] == 0)
    assert table_miss - table_miss_before >= UNROUTED_FRAMES
    # Keepalives and ND may arrive meanwhile, never the flood.
    assert after - before < UNROUTED_FRAMES // 10, (before, after)
    assert PEER_MAC  # the flood came from the router's own MAC, which is not special to the switch
    assert LOCAL_AS


UDP_FLOOD = """import socket, sys, time
sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
started = time.monotonic()
for _ in range(int(sys.argv[2])):
    sender.sendto(b"x", (sys.argv[1], 9))
print(time.monotonic() - started)
"""
GLEAN_FLOOD_FRAMES = 2000


def test_a_flood_toward_an_unknown_host_reaches_the_controller_only_at_the_glean_rate(
    switch: Switch, router: Router, controller: Controller
) -> None:
    # An address on the router's subnet that nobody holds: on os-ken its glean flow sends frames up under the
    # glean meter (the default 100 a second, a tenth of a second's burst); POX has no glean flows.
    stranger = "10.77.1.99"
    run(in_ns(ROUTER_NS, ["ip", "neigh", "replace", stranger, "lladdr", ROUTER_MAC, "dev", ROUTER_VETH]))
    wait_for("a first tunnel report", lambda: controller.document("tunnel"), deadline=time.monotonic() + 5)
    before = controller.document("tunnel")["packet_in"]
    flood = run(in_ns(ROUTER_NS, [sys.executable, "-c", UDP_FLOOD, stranger, str(GLEAN_FLOOD_FRAMES)]))
    took = float(flood.stdout)
    time.sleep(0.5)
    after = controller.document("tunnel")["packet_in"]
    keepalives_and_arp = 20
    allowed = 100 * (took + 0.5) + 10 if controller.backend == "osken" else 0
    print(f"\n[{controller.backend}] {GLEAN_FLOOD_FRAMES} frames in {took:.3f} s: {after - before} packet-ins")
    assert after - before <= allowed + keepalives_and_arp, (before, after, took)


def _prefixes_of(controller: Controller, peer: str) -> set[str]:
    return {r["prefix"] for r in controller.rib() if r["peer"] == peer}


def test_withdrawal_and_peer_shutdown_reach_the_rib_within_a_second(router: Router, controller: Controller) -> None:
    deadline = time.monotonic() + 40
    for peer in (ROUTER_V4, ROUTER_V6):
        wait_for(f"gobgpd's session with {peer}", lambda p=peer: router.established(p), deadline=deadline)
    wait_for(
        "the full RIB", lambda: rib_view(controller, GOBGP_PEERS) == adj_out(router), deadline=time.monotonic() + 10
    )
    prefix, attributes = ANNOUNCED[0]
    router.gobgp("global", "rib", "-a", "ipv4", "del", prefix)
    try:
        wait_for(
            f"{prefix} withdrawn",
            lambda: prefix not in _prefixes_of(controller, PEER_V4),
            deadline=time.monotonic() + WITHIN_A_SECOND,
            interval=0.05,
        )
        assert rib_view(controller, GOBGP_PEERS) == adj_out(router)
    finally:
        router.gobgp("global", "rib", "-a", "ipv4", "add", prefix, "nexthop", PEER_V4, *attributes)
    router.gobgp("neighbor", ROUTER_V6, "shutdown", "--reason", "st maintenance")
    router.gobgp("neighbor", ROUTER_V6, "disable")
    try:
        wait_for(
            "the IPv6 peer's routes gone",
            lambda: not _prefixes_of(controller, PEER_V6),
            deadline=time.monotonic() + WITHIN_A_SECOND,
            interval=0.05,
        )
        assert _prefixes_of(controller, PEER_V4) == {p for p, _ in (*ANNOUNCED, *GOBGP_BULK) if ":" not in p}
        ended = [s for s in controller.document("sessions") if s["notification"]]
        assert any(s["notification"]["shutdown_message"] == "st maintenance" for s in ended), ended
    finally:
        router.gobgp("neighbor", ROUTER_V6, "enable")


ADMINISTRATIVE_SHUTDOWN = 2  # RFC 4486 Cease subcode


def test_exabgp_withdrawal_and_going_away_reach_the_rib_within_a_second(
    router: Router, exa_router: ExaRouter, controller: Controller
) -> None:
    _wait_for_full_tables(router, exa_router)
    wait_for(
        "ExaBGP's table in the RIB",
        lambda: rib_view(controller, (EXA_V4,)) == exa_router.sent(),
        deadline=time.monotonic() + 20,
    )
    prefix, route = next((p, r) for p, r in EXA_BULK if p not in {q for q, _ in GOBGP_BULK})
    exa_router.command(f"withdraw route {prefix} next-hop {EXA_V4}")
    try:
        wait_for(
            f"{prefix} withdrawn",
            lambda: prefix not in _prefixes_of(controller, EXA_V4),
            deadline=time.monotonic() + WITHIN_A_SECOND,
            interval=0.05,
        )
        wait_for(
            "ExaBGP's record of the withdrawal",
            lambda: len(exa_router.sent()) == len(EXA_BULK) - 1,
            deadline=time.monotonic() + 5,
        )
        assert prefix not in {r["prefix"] for r in exa_router.sent()}
        assert rib_view(controller, (EXA_V4,)) == exa_router.sent()
    finally:
        exa_router.command(f"announce route {route}")
    wait_for(
        f"{prefix} back",
        lambda: rib_view(controller, (EXA_V4,)) == exa_router.sent() and len(exa_router.sent()) == len(EXA_BULK),
        deadline=time.monotonic() + 5,
    )

    # A teardown: ExaBGP ends the session with a Cease and connects again at once, so the RIB is empty only for
    # a moment. The sniffed session says how it ended; the RIB then holds what ExaBGP sent on the new session.
    ups = _exa_ups(exa_router)
    exa_router.command(f"neighbor {EXA_ROUTER_V4} teardown {ADMINISTRATIVE_SHUTDOWN}")
    wait_for("ExaBGP's new session", lambda: _exa_ups(exa_router) > ups, deadline=time.monotonic() + 10)
    downs = [m["neighbor"].get("reason") for m in exa_router.messages() if m.get("type") == "state"]
    assert f"notification sent (6,{ADMINISTRATIVE_SHUTDOWN})" in downs, downs
    _wait_for_full_tables(router, exa_router)
    wait_for(
        "ExaBGP's table in the RIB again",
        lambda: rib_view(controller, (EXA_V4,)) == exa_router.sent(),
        deadline=time.monotonic() + 20,
    )
    ended = [s for s in controller.document("sessions") if s["notification"]]
    assert any(
        s["notification"]["code"] == CEASE
        and s["notification"]["subcode"] == ADMINISTRATIVE_SHUTDOWN
        and s["notification"]["from"].split(":")[0] == EXA_V4
        for s in ended
    ), ended

    # ExaBGP going away (it closes the connection without a NOTIFICATION) empties its part of the RIB.
    gobgp_prefixes = _prefixes_of(controller, PEER_V4)
    exa_router.stop()
    try:
        wait_for(
            "ExaBGP's routes gone",
            lambda: not _prefixes_of(controller, EXA_V4),
            deadline=time.monotonic() + WITHIN_A_SECOND,
            interval=0.05,
        )
        assert _prefixes_of(controller, PEER_V4) == gobgp_prefixes, "another peer's routes went too"
    finally:
        exa_router.start()
    _wait_for_full_tables(router, exa_router)
    wait_for(
        "ExaBGP's table in the RIB after its restart",
        lambda: rib_view(controller, (EXA_V4,)) == exa_router.sent(),
        deadline=time.monotonic() + 20,
    )


def _notifications_received(router: Router, neighbor: str) -> int:
    messages = router.gobgp_json("neighbor", neighbor).get("state", {}).get("messages", {})
    return int(messages.get("received", {}).get("notification", 0))


# Sent from the peer's address to port 179 while its session is up: the holder refuses the second connection,
# but the kernel has already taken a window of full-size segments through the tunnel by then.
FULL_MSS_SENDER = """
import socket, sys
sock = socket.create_connection((sys.argv[1], 179), timeout=5)
try:
    sock.sendall(bytes(200_000))
except OSError:
    pass
"""
FULL_SIZE_FRAME = MTU + 14  # Ethernet header, no tag


def test_full_mss_tcp_segments_cross_the_tunnel(router: Router, controller: Controller) -> None:
    wanted = f"tcp dst port 179 and greater {FULL_SIZE_FRAME}"
    capture = subprocess.Popen(
        in_ns(CONTROLLER_NS, ["tcpdump", "-i", TAP, "-n", "-c", "5", "-s", "0", wanted]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # tcpdump attaches
        run(in_ns(ROUTER_NS, [sys.executable, "-c", FULL_MSS_SENDER, ROUTER_V4]), check=False, timeout=30)
        out, err = capture.communicate(timeout=10)
    finally:
        capture.kill()
    lengths = [int(m) for m in re.findall(r"length (\d+)", out)]
    # 1500 - 20 (IPv4) - 32 (TCP with the timestamp option) = 1448 bytes of payload: whole frames of 1514 bytes.
    assert len(lengths) == 5 and all(n == MTU - 20 - 32 for n in lengths), f"{out}\n{err}"
    assert controller.document("tunnel")["truncated_packet_in"] == 0


def test_peers_shows_the_holder_and_the_sniffed_sessions(controller: Controller) -> None:
    argv = [sys.executable, "-m", "sniffroute.cli", "peers", "--db", str(controller.store)]
    text = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=True).stdout
    assert text.startswith("session holder:")
    assert re.search(rf"{re.escape(PEER_V4)}\s+established\s+hold \d+ s\s+router-id", text), text
    assert "tunnel: " in text and "packet in " in text
    assert re.search(rf"{re.escape(PEER_V4)}:\d+ <-> {re.escape(ROUTER_V4)}:179|{re.escape(ROUTER_V4)}:\d+ <-> "
                     rf"{re.escape(PEER_V4)}:179", text), text  # fmt: skip


def test_sigterm_notifies_the_peers_and_exits_0(
    switch: Switch, router: Router, exa_router: ExaRouter, controller: Controller
) -> None:
    deadline = time.monotonic() + 40
    for peer in (ROUTER_V4, ROUTER_V6):
        wait_for(f"gobgpd's session with {peer}", lambda p=peer: router.established(p), deadline=deadline)
    wait_for("ExaBGP's session", exa_router.established, deadline=deadline)
    before = {peer: _notifications_received(router, peer) for peer in (ROUTER_V4, ROUTER_V6)}
    rib_before = {(r["prefix"], r["peer"]) for r in controller.rib()}
    assert rib_before
    exa_before = len(exa_router.notifications_received())
    assert controller.stop() == 0, controller.log()[-3000:]
    for peer in (ROUTER_V4, ROUTER_V6):
        assert _notifications_received(router, peer) == before[peer] + 1, f"{peer}: gobgpd got no NOTIFICATION"
        assert not router.established(peer)
    wait_for(
        "ExaBGP's record of our NOTIFICATION",
        lambda: len(exa_router.notifications_received()) == exa_before + 1,
        deadline=time.monotonic() + 5,
    )
    assert exa_router.notifications_received()[-1]["code"] == CEASE
    # the TAP went with the process; the store kept the RIB as it was before our NOTIFICATIONs ended the sessions
    # (what the switch still forwards with, and what the next start restores, stale until the peers are back)
    assert run(["ip", "-n", CONTROLLER_NS, "link", "show", TAP], check=False).returncode != 0
    assert {(r["prefix"], r["peer"]) for r in controller.rib()} == rib_before
    # and the pipeline saw our own NOTIFICATIONs end the last session with each peer
    last: dict[str, dict[str, Any]] = {}
    bgp_sessions = [  # OPENs both ways: not the refused connection of the full-MSS test, nor a collision's loser
        s for s in controller.document("sessions") if all(sp["messages"].get("open") for sp in s["speakers"])
    ]
    for session in sorted(bgp_sessions, key=lambda s: s["started"]):
        addresses = {endpoint.rsplit(":", 1)[0] for endpoint in session["endpoints"]}
        last[(addresses - {ROUTER_V4, ROUTER_V6, EXA_ROUTER_V4}).pop()] = session
    assert set(last) == {PEER_V4, PEER_V6, EXA_V4}
    tunnel = controller.document("tunnel")
    for session in last.values():
        notification = session["notification"]
        assert notification and notification["code"] == CEASE, f"{session}\n{tunnel}\n{controller.log()[-3000:]}"
