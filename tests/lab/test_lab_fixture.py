"""The committed lab recording is self-consistent: expected JSON well formed, and (with tshark as the oracle)
the captures carry the UPDATEs, prefixes and the one NOTIFICATION the JSON says they do.

These checks never use sniffroute's own decoders; the replay comparison lives in tests/test_lab_replay.py.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

LAB = Path(__file__).resolve().parents[1] / "fixtures" / "lab"
EXPECTED_FILE = LAB / "bgp_lab_expected.json"
TSHARK = shutil.which("tshark")
MAX_CAPTURE_BYTES = 300_000
PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")  # classic pcap, either byte order (not pcapng)
ROUTE_FIELDS = {
    "prefix",
    "peer",
    "peer_as",
    "next_hop",
    "as_path",
    "origin",
    "med",
    "local_pref",
    "communities",
    "large_communities",
}
ORIGINS = {"igp", "egp", "incomplete"}
UPDATE = "2"  # RFC 4271 section 4.1 message type
# tshark subtrees whose children are prefixes ("198.18.0.0/24": {...}), and whether they add or remove.
ANNOUNCE_TREES = {"bgp.update.nlri": True, "bgp.update.path_attribute.mp_reach_nlri": True}
WITHDRAW_TREES = {"bgp.update.withdrawn_routes": False, "bgp.update.path_attribute.mp_unreach_nlri": False}
PREFIX_TREES = {**ANNOUNCE_TREES, **WITHDRAW_TREES}

pytestmark = pytest.mark.skipif(not EXPECTED_FILE.exists(), reason="lab capture not recorded yet")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed: the capture oracle is unavailable")


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads(EXPECTED_FILE.read_text())


def _community_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(":"))


def _routes(expected: dict[str, Any], stage: str) -> list[dict[str, Any]]:
    return expected[stage]["routes"]


def _prefixes_by_peer(routes: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for route in routes:
        out[route["peer"]].add(route["prefix"])
    return dict(out)


def _shut_down_addresses(expected: dict[str, Any]) -> set[str]:
    return {sp["address"] for s in expected["sessions"] if s["shut_down"] for sp in s["speakers"]}


# -- the JSON alone ------------------------------------------------------------------------------------------


def test_expected_json_schema(expected):
    assert {"capture", "sessions", "before_shutdown", "after_shutdown", "notification"} <= set(expected)
    assert (LAB / expected["capture"]).exists()
    assert (LAB / expected["capture_before_shutdown"]).exists()
    for stage in ("before_shutdown", "after_shutdown"):
        for route in _routes(expected, stage):
            assert set(route) == ROUTE_FIELDS, route
            assert str(ipaddress.ip_network(route["prefix"])) == route["prefix"]
            assert str(ipaddress.ip_address(route["peer"])) == route["peer"]
            assert str(ipaddress.ip_address(route["next_hop"])) == route["next_hop"]
            assert route["origin"] in ORIGINS
            assert route["as_path"][0] == route["peer_as"], "eBGP: the path starts at the sender"
            for hop in route["as_path"]:
                assert isinstance(hop, int) or (isinstance(hop, list) and all(isinstance(a, int) for a in hop))
            assert route["med"] is None or 0 <= route["med"] < 2**32
            assert route["communities"] == sorted(route["communities"], key=_community_key)
            assert all(len(c.split(":")) == 3 for c in route["large_communities"])
    keys = [(r["prefix"], r["peer"]) for r in _routes(expected, "before_shutdown")]
    assert len(keys) == len(set(keys)), "one path per prefix and sender"


def test_recording_covers_the_features_it_claims(expected):
    routes = _routes(expected, "before_shutdown")
    assert len(routes) >= 300
    assert {ipaddress.ip_network(r["prefix"]).version for r in routes} == {4, 6}
    assert any(any(isinstance(hop, list) for hop in r["as_path"]) for r in routes), "an AS_SET"
    assert any(any(isinstance(a, int) and a > 0xFFFF for a in r["as_path"]) for r in routes), "a 4-byte ASN"
    assert any(r["communities"] for r in routes) and any(r["large_communities"] for r in routes)
    assert {r["origin"] for r in routes} == ORIGINS
    assert len({json.dumps({k: v for k, v in r.items() if k != "prefix"}) for r in routes}) >= 10
    senders = {r["peer"] for r in routes}
    assert len(senders) == 4, "both directions of both sessions carry routes"


def test_shutdown_flushes_only_the_shut_session(expected):
    gone = _shut_down_addresses(expected)
    before = _prefixes_by_peer(_routes(expected, "before_shutdown"))
    after = _prefixes_by_peer(_routes(expected, "after_shutdown"))
    assert gone and not gone & set(after), "no route of the shut-down session survives"
    assert set(after) == set(before) - gone
    for peer, prefixes in after.items():
        assert prefixes <= before[peer], "the session that stayed up only loses relayed routes"
    notification = expected["notification"]
    # RFC 4486 section 3: Cease / Administrative Shutdown
    assert (notification["code"], notification["subcode"]) == (6, 2)
    assert 0 < len(notification["message"].encode()) <= 255  # RFC 9003 section 2


def test_captures_are_small_pcaps(expected):
    for name in (expected["capture"], expected["capture_before_shutdown"]):
        path = LAB / name
        assert path.stat().st_size < MAX_CAPTURE_BYTES
        assert path.read_bytes()[:4] in PCAP_MAGICS


# -- tshark as the oracle ------------------------------------------------------------------------------------


class _Obj(list):  # type: ignore[type-arg]
    """A JSON object kept as (key, value) pairs: tshark repeats keys when a frame holds several messages."""


def _tshark_frames(capture: Path, display_filter: str = "bgp") -> list[_Obj]:
    assert TSHARK is not None
    out = subprocess.run(
        [TSHARK, "-n", "-r", str(capture), "-Y", display_filter, "-T", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return json.loads(out, object_pairs_hook=_Obj) if out.strip() else []


def _get(obj: _Obj, key: str) -> list[Any]:
    return [v for k, v in obj if k == key]


def _messages(frame: _Obj) -> tuple[str, list[_Obj]]:
    """(source address, BGP messages in order) of one frame."""
    layers = _get(_get(frame, "_source")[0], "layers")[0]
    src = [v for k, v in layers if k in ("ip", "ipv6")]
    address = [a for layer in src for key in ("ip.src", "ipv6.src") for a in _get(layer, key)][0]
    messages: list[_Obj] = []
    for value in _get(layers, "bgp"):
        messages += value if not isinstance(value, _Obj) else [value]
    return str(ipaddress.ip_address(address)), messages


def _prefix_changes(node: Any, announce: bool | None = None) -> list[tuple[bool, str]]:
    """(announced?, prefix) in message order, from every NLRI / withdrawn subtree under `node`."""
    changes: list[tuple[bool, str]] = []
    if isinstance(node, _Obj):
        for key, value in node:
            if announce is not None and "/" in key:
                changes.append((announce, str(ipaddress.ip_network(key))))
            changes += _prefix_changes(value, PREFIX_TREES.get(key, announce))
    elif isinstance(node, list):
        for value in node:
            changes += _prefix_changes(value, announce)
    return changes


def _replay_prefixes(capture: Path) -> tuple[dict[str, set[str]], dict[str, int], int]:
    """Per sender: prefixes held after announcing/withdrawing in capture order, and UPDATE counts; plus the
    number of NLRI entries seen in all."""
    held: dict[str, set[str]] = defaultdict(set)
    updates: dict[str, int] = defaultdict(int)
    entries = 0
    for frame in _tshark_frames(capture, "bgp.type == 2"):
        sender, messages = _messages(frame)
        for message in messages:
            if _get(message, "bgp.type") != [UPDATE]:
                continue
            updates[sender] += 1
            for announced, prefix in _prefix_changes(message):
                entries += 1
                (held[sender].add if announced else held[sender].discard)(prefix)
    return {k: v for k, v in held.items() if v}, dict(updates), entries


@pytest.mark.oracle
@needs_tshark
def test_notification_in_capture(expected):
    frames = _tshark_frames(LAB / expected["capture"], "bgp.type == 3")
    assert len(frames) == 1, "exactly one NOTIFICATION: the administrative shutdown"
    layers = _get(_get(frames[0], "_source")[0], "layers")[0]
    number = int(_get(_get(layers, "frame")[0], "frame.number")[0])
    assert number == expected["notification_frame"] == expected["last_frame_before_notification"] + 1
    sender, messages = _messages(frames[0])
    assert sender == expected["notification"]["sender"]
    (message,) = [m for m in messages if _get(m, "bgp.type") == ["3"]]
    assert int(_get(message, "bgp.notify.major_error")[0]) == expected["notification"]["code"]
    assert int(_get(message, "bgp.notify.minor_error_cease")[0]) == expected["notification"]["subcode"]
    assert _get(message, "bgp.notify.communication") == [expected["notification"]["message"]]


@pytest.mark.oracle
@needs_tshark
def test_cut_capture_ends_right_before_the_notification(expected):
    cut = LAB / expected["capture_before_shutdown"]
    assert _tshark_frames(cut, "bgp.type == 3") == []
    last = _tshark_frames(cut, f"frame.number == {expected['last_frame_before_notification']}")
    assert len(last) == 1
    assert _tshark_frames(cut, f"frame.number > {expected['last_frame_before_notification']}") == []


@pytest.mark.oracle
@needs_tshark
def test_cut_capture_prefixes_match_the_daemons(expected):
    held, updates, entries = _replay_prefixes(LAB / expected["capture_before_shutdown"])
    routes = _routes(expected, "before_shutdown")
    assert held == _prefixes_by_peer(routes)
    for sender, count in updates.items():
        mine = [r for r in routes if r["peer"] == sender]
        attribute_sets = {json.dumps({k: v for k, v in r.items() if k != "prefix"}) for r in mine}
        # Each UPDATE carries one attribute set; none carries more prefixes than were ever sent.
        assert count >= len(attribute_sets)
        assert count <= entries + 2  # + End-of-RIB markers, one per family
    assert entries > len(routes), "withdrawals happened before the shutdown"


@pytest.mark.oracle
@needs_tshark
def test_whole_capture_prefixes_match_after_shutdown(expected):
    held, _, _ = _replay_prefixes(LAB / expected["capture"])
    gone = _shut_down_addresses(expected)
    surviving = {peer: prefixes for peer, prefixes in held.items() if peer not in gone}
    assert surviving == _prefixes_by_peer(_routes(expected, "after_shutdown"))
    # The shut session sent no withdrawals for its own routes: the NOTIFICATION alone must flush them.
    assert set(held) & gone
