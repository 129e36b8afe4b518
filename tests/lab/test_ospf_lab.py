"""SPF on the LSAs sniffed from the BIRD lab gives, route by route, the table BIRD itself computed.

tests/fixtures/lab/ospf_lab.pcap was recorded by tests/lab/make_ospf_capture.py (BIRD 2 routers in network
namespaces; OSPFv2 and OSPFv3 side by side); ospf_lab_expected.json holds `birdc show route protocol ... all`
of every router at three stages: converged, after a cost change, after a link went down. The capture is
replayed up to the moment of each change, the LSAs are collected per area, and SPF is run from each router's
viewpoint (and from the LAN segment, whose oracle is r0: a router on it with nothing else and cost 1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from ipaddress import IPv4Address, ip_interface, ip_network
from pathlib import Path
from typing import Any

import pytest

from parsers.capture import open_capture
from parsers.frames import IpDatagram, IpProto, decode_frame
from sniffroute.ospf.lsdb import Lsdb
from sniffroute.ospf.spf import NextHop, OspfRoute, RouterRoot, SegmentRoot, compute_routes

LAB = Path(__file__).resolve().parents[1] / "fixtures" / "lab"
EXPECTED_FILE = LAB / "ospf_lab_expected.json"
PROTOCOL_VERSION = {"ospf4": 2, "ospf6": 3}
LAN_PREFIX = {"ospf4": "10.1.0.0/24", "ospf6": "2001:db8:1::/64"}
OBSERVER = "r0"  # BIRD on the LAN only, cost OBSERVER_COST: the oracle for the segment viewpoint
BIRD_TYPE = {"N1": "E1", "N2": "E2"}  # BIRD shows routes from type-7 LSAs as E1/E2

pytestmark = pytest.mark.skipif(not EXPECTED_FILE.exists(), reason="OSPF lab capture not recorded yet")


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads(EXPECTED_FILE.read_text())


# -- the LSDB, as sniffed (sniffroute.ospf.lsdb) -------------------------------------------------------------


def sniff(capture: Path, until: float | None) -> Lsdb:
    """Every OSPF packet of the capture before `until` (capture time) fed to an LSDB, as the pipeline does."""
    lsdb = Lsdb()
    with open_capture(capture) as frames:
        for frame in frames:
            if until is not None and frame.timestamp >= until:
                break
            datagram = decode_frame(frame.linktype, frame.data)
            if isinstance(datagram, IpDatagram) and datagram.proto == IpProto.OSPF:
                lsdb.feed_payload(datagram.payload, frame.timestamp, src=datagram.src, dst=datagram.dst)
    return lsdb


def _stage_ends(expected: dict[str, Any]) -> dict[str, float | None]:
    """The state of a stage is everything captured before the next change (the last one: the whole capture)."""
    cuts = {change["stage"]: change["time"] for change in expected["changes"]}
    return {"initial": cuts["cost_change"], "cost_change": cuts["link_down"], "link_down": None}


@pytest.fixture(scope="module")
def lsdbs(expected) -> dict[str, Lsdb]:
    capture = LAB / expected["capture"]
    return {stage: sniff(capture, until) for stage, until in _stage_ends(expected).items()}


def _routes(lsdb: Lsdb, version: int, root: RouterRoot | SegmentRoot) -> list[OspfRoute]:
    spf_input = lsdb.spf_input(version)
    result = compute_routes(spf_input.areas, spf_input.as_scope, root)
    assert not result.notes, result.notes
    return list(result.routes)


# -- comparing with BIRD -------------------------------------------------------------------------------------


def _interface_names(expected: dict[str, Any], router: str, version: int) -> dict[str, str]:
    """BIRD's interface name for each of our interface identifiers (v2: own address, v3: interface ID)."""
    facts = next(r for r in expected["routers"] if r["name"] == router)
    names: dict[str, str] = {}
    for interface in facts["interfaces"]:
        if version == 3:
            names[str(interface["ifindex"])] = interface["name"]
        else:
            for address in interface["addresses"]:
                if ":" not in address:
                    names[address.split("/")[0]] = interface["name"]
    return names


def _ours(route: OspfRoute, names: dict[str, str] | None, cost_offset: int = 0) -> dict[str, Any]:
    def hop(nh: NextHop) -> tuple[str | None, str | None]:
        interface = None
        if names is not None and nh.interface is not None:
            interface = names.get(nh.interface, f"?{nh.interface}")
        return (str(nh.address) if nh.address is not None else None, interface)

    return {
        "route_type": BIRD_TYPE.get(route.route_type.value, route.route_type.value),
        "metric": route.metric + cost_offset,
        "metric2": route.type2_metric,
        "next_hops": sorted(map(hop, route.next_hops), key=str),
        # With several equal-cost paths the originator BIRD names is one of several: compare it otherwise.
        "router_id": str(route.advertiser) if len(route.next_hops) == 1 else None,
    }


def _theirs(route: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    # Interfaces are compared where we can name one (the outgoing interface of a stub on an ifb device is not
    # in any LSA).
    ours_interfaces = {address: interface for address, interface in ours["next_hops"]}
    hops = []
    for nh in route["next_hops"]:
        interface = nh["interface"] if ours_interfaces.get(nh["address"]) is not None else None
        hops.append((nh["address"], interface))
    return {
        "route_type": route["route_type"],
        "metric": route["metric"],
        "metric2": route["metric2"],
        "next_hops": sorted(hops, key=str),
        "router_id": route["router_id"] if len(hops) == 1 else None,
    }


def _compare(ours: list[OspfRoute], theirs: list[dict[str, Any]], names, cost_offset: int = 0) -> None:
    ours_by_prefix = {str(r.prefix): _ours(r, names, cost_offset) for r in ours}
    theirs_by_prefix = {r["prefix"]: r for r in theirs}
    assert sorted(ours_by_prefix) == sorted(theirs_by_prefix), "the same destinations"
    mismatches = {}
    for prefix, mine in ours_by_prefix.items():
        bird = _theirs(theirs_by_prefix[prefix], mine)
        if mine != bird:
            mismatches[prefix] = {"ours": mine, "bird": bird}
    assert not mismatches, json.dumps(mismatches, indent=1)


def _router_root(facts: dict[str, Any]) -> RouterRoot:
    """The router's viewpoint, told its interface addresses (configuration, as `ip address` shows it)."""
    addresses = frozenset(ip_interface(a).ip for i in facts["interfaces"] for a in i["addresses"])
    return RouterRoot(IPv4Address(facts["router_id"]), addresses)


CASES = [
    (stage, router, proto)
    for stage in ("initial", "cost_change", "link_down")
    for router in ("r0", "r1", "r2", "r3", "r4", "r5", "r6")
    for proto in ("ospf4", "ospf6")
]


@pytest.mark.parametrize(("stage", "router", "proto"), CASES)
def test_router_viewpoint_matches_bird(expected, lsdbs, stage, router, proto):
    facts = next(r for r in expected["routers"] if r["name"] == router)
    version = PROTOCOL_VERSION[proto]
    ours = _routes(lsdbs[stage], version, _router_root(facts))
    _compare(ours, expected["stages"][stage][router][proto], _interface_names(expected, router, version))


@pytest.mark.parametrize("stage", ["initial", "cost_change", "link_down"])
@pytest.mark.parametrize("proto", ["ospf4", "ospf6"])
def test_segment_viewpoint_matches_the_observer_router(expected, lsdbs, stage, proto):
    """From the LAN: next hops are the routers on the segment; BIRD on r0 adds r0's own interface cost."""
    observer = next(r for r in expected["routers"] if r["name"] == OBSERVER)
    version = PROTOCOL_VERSION[proto]
    ours = _routes(lsdbs[stage], version, SegmentRoot(ip_network(LAN_PREFIX[proto])))
    _compare(ours, expected["stages"][stage][OBSERVER][proto], None, cost_offset=observer["lan_cost"])


def test_the_changes_change_the_tables(expected, lsdbs):
    """The stages differ, in BIRD and in ours, so the comparisons above test the changes too."""
    stages = expected["stages"]
    assert stages["initial"]["r3"]["ospf4"] != stages["cost_change"]["r3"]["ospf4"]
    assert stages["cost_change"]["r3"]["ospf4"] != stages["link_down"]["r3"]["ospf4"]
    r3 = RouterRoot(IPv4Address("10.0.0.3"))
    tables = [_routes(lsdbs[stage], 2, r3) for stage in ("initial", "cost_change", "link_down")]
    assert tables[0] != tables[1] != tables[2]


def test_recording_covers_the_features_it_claims(expected):
    types = {
        route["route_type"]
        for stage in expected["stages"].values()
        for by_proto in stage.values()
        for routes in by_proto.values()
        for route in routes
    }
    assert types == {"intra", "inter", "E1", "E2"}
    initial = expected["stages"]["initial"]
    assert any(len(r["next_hops"]) > 1 for r in initial["r3"]["ospf4"]), "an equal-cost multipath route"
    assert any(len(r["next_hops"]) > 1 for r in initial["r3"]["ospf6"])
    by_prefix = {r["prefix"]: r for r in initial["r0"]["ospf4"]}
    # E2 with a forwarding address on the LAN: the next hop is r3, not the ASBR r2.
    assert by_prefix["172.16.3.0/24"]["next_hops"][0]["address"] == "10.1.0.3"
    assert by_prefix["172.19.0.0/24"]["router_id"] == "10.0.0.3", "NSSA route translated by r3"


def test_capture_is_small_clean_and_holds_both_versions(expected, lsdbs):
    assert (LAB / expected["capture"]).stat().st_size < 200_000
    full = lsdbs["link_down"]
    assert full.areas(2) == [IPv4Address(a) for a in ("0.0.0.0", "0.0.0.1", "0.0.0.2")]
    assert full.areas(3) == full.areas(2)
    stats = full.stats
    assert (stats.decode_errors, stats.packet_checksum_failures, stats.lsa_checksum_failures) == (0, 0, 0)
    assert stats.flushes > 0, "the link going down flushed something (r2-r4's adjacency)"


# -- re-recording end to end ---------------------------------------------------------------------------------

LAB_TOOLS = ("ip", "ethtool", "tcpdump", "mergecap", "bird", "birdc")


@pytest.mark.e2e
def test_lab_script_records_a_consistent_capture(tmp_path):
    """Runs the recording (about 45 s) into a scratch directory and checks its own replay against its tables."""
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and tcpdump")
    missing = [tool for tool in LAB_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)}")
    repo = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-m", "tests.lab.make_ospf_capture", "--out", str(tmp_path)]
    recording = subprocess.Popen(argv, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = recording.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        recording.terminate()  # SIGTERM: the script removes its namespaces and daemons before it exits
        _, stderr = recording.communicate(timeout=60)
        pytest.fail(f"the recording took more than 240 s:\n{stderr}")
    assert recording.returncode == 0, stderr
    fresh = json.loads((tmp_path / "ospf_lab_expected.json").read_text())
    for stage, until in _stage_ends(fresh).items():
        sniffed = sniff(tmp_path / fresh["capture"], until)
        for facts in fresh["routers"]:
            for proto, version in PROTOCOL_VERSION.items():
                ours = _routes(sniffed, version, _router_root(facts))
                names = _interface_names(fresh, facts["name"], version)
                _compare(ours, fresh["stages"][stage][facts["name"]][proto], names)
