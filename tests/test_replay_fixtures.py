"""Every BGP fixture replayed through the pipeline, checked against tshark's reading of the same file.

The committed counts in bgp_expected.json were written by tests/fixtures/make_expected.py from tshark's dissection
(and, where tshark 4.0 cannot see a prefix, from the decoders named in SOURCES.md). The oracle tests run tshark
again when it is installed, so the committed numbers cannot drift from it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.bgp.constants import IPV4_UNICAST
from parsers.capture import open_capture
from sniffroute.pipeline import Pipeline
from sniffroute.summary import replay_summary
from tests.fixtures import make_expected
from tests.helpers import FIXTURES, replay

BGP = FIXTURES / "bgp"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "bgp_expected.json").read_text())
NAMES = sorted(name for name in EXPECTED if not name.startswith("_"))
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")


def summary_of(name: str) -> dict[str, Any]:
    return replay_summary(replay(BGP / name), [], 0.0)


def speakers(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {sp["address"]: sp for session in summary["sessions"] for sp in session["speakers"]}


def test_every_fixture_has_expected_counts() -> None:
    assert sorted(p.name for p in BGP.iterdir()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_counts_equal_tshark(name: str) -> None:
    summary = summary_of(name)
    expected = EXPECTED[name]
    assert summary["internal_errors"] == 0, summary["internal_error_examples"]
    assert summary["messages"] == expected["messages"]
    assert summary["announced"] == expected["announced"]
    assert summary["withdrawn"] == expected["withdrawn"]
    assert sum(summary["end_of_rib"].values()) == expected["eor"]


@pytest.mark.oracle
@needs_tshark
@pytest.mark.parametrize("name", NAMES)
def test_committed_counts_are_tshark_s(name: str) -> None:
    counted = make_expected.count_file(BGP / name, TSHARK)
    expected = EXPECTED[name]
    for key, note in expected.get("notes", {}).items():  # figures tshark 4.0 cannot see, from SOURCES.md
        section, _, family = key.partition("/")
        assert counted[section].get(family, 0) == note["tshark"]
        counted[section][family] = expected[section][family]
    assert {k: counted[k] for k in ("messages", "announced", "withdrawn", "eor")} == {
        k: expected[k] for k in ("messages", "announced", "withdrawn", "eor")
    }


def tshark_shutdown_text(path: Path) -> str:
    out = subprocess.run([TSHARK, "-r", str(path), "-Y", "bgp.type==3", "-V"], capture_output=True, text=True)
    found = re.search(r"^\s*Shutdown Communication: (.*)$", out.stdout, re.MULTILINE)
    assert found, "tshark shows no shutdown communication"
    return found.group(1)


@pytest.mark.oracle
@needs_tshark
@pytest.mark.parametrize(
    "name", ["bgp-shutdown-communication.pcapng", "bgp-extended-shutdown-msg.pcapng", "swisscom_bgp.pcap"]
)
def test_shutdown_communication_equals_tshark(name: str) -> None:
    (session,) = summary_of(name)["sessions"]
    notification = session["notification"]
    assert (notification["code"], notification["subcode"]) == (6, 2)
    assert notification["shutdown_message"] == tshark_shutdown_text(BGP / name)


def test_rfc9003_message_longer_than_rfc8203_allowed() -> None:
    (session,) = summary_of("bgp-extended-shutdown-msg.pcapng")["sessions"]
    assert len(session["notification"]["shutdown_message"].encode()) > 128


def test_shutdown_flushes_the_senders_routes() -> None:
    pipeline = replay(BGP / "swisscom_bgp.pcap")
    (session,) = pipeline.sessions.all_sessions()
    assert session.end_reason == "notification" or session.notification is not None
    assert pipeline.rib.count() == 0  # 27 VPN routes were announced, then Cease ended the session


def test_add_path_negotiated_gives_four_paths_not_twelve() -> None:
    pipeline = replay(BGP / "bgp-add-path.cap")
    summary = replay_summary(pipeline, [], 0.0)
    sender = speakers(summary)["10.0.0.4"]
    assert sender["context"] == {
        "as4": True,
        "add_path": ["ipv4-unicast"],
        "extended_message": False,
        "inferred": False,
    }
    routes = list(pipeline.rib.routes(IPV4_UNICAST))
    assert len(routes) == 4
    assert {(path_id, path.attrs.local_pref) for _fam, _prefix, (_peer, path_id), path, _why in routes} == {
        (0, 500),
        (1, 100),
    }
    best = {path.attrs.local_pref for *_rest, path, why in routes if why is not None}
    assert best == {500}


def test_add_path_without_open_is_inferred_from_what_parses() -> None:
    summary = summary_of("bgp-addpath.pcap")
    (sender,) = speakers(summary).values()
    assert sender["context"]["inferred"] is True
    assert sender["context"]["add_path"] == ["ipv4-unicast", "ipv6-unicast"]
    assert summary["sessions"][0]["inferred"] is True


def test_as4_path_merged_on_a_two_octet_session() -> None:
    # tshark: AS_PATH 23456 23456 with AS4_PATH 655361 2621441 from 172.16.3.1; AS_PATH 2 23456 with AS4_PATH
    # 2621441 from 172.16.3.2. RFC 6793 4.2.3 keeps the leading ASN the AS4_PATH does not cover.
    pipeline = replay(BGP / "4-byte_AS_numbers_Mixed_Scenario.cap")
    paths = {
        pipeline.rib.peers[peer].address: path.attrs.as_path
        for _fam, _prefix, (peer, _id), path, _why in pipeline.rib.routes(IPV4_UNICAST)
    }
    flat = {address: [asn for segment in path for asn in segment.asns] for address, path in paths.items()}
    assert flat == {"172.16.3.1": [655361, 2621441], "172.16.3.2": [2, 2621441]}


def test_hard_reset_ends_the_old_connections_and_learns_on_the_new_one() -> None:
    # tshark: frame 7 FIN on 46612, frame 10 RST on 32031, OPENs on 19252 then 26 routes in 6 UPDATEs.
    pipeline = replay(BGP / "BGP_hard_reset.cap")
    sessions = pipeline.sessions.all_sessions()
    assert [(s.state, s.end_reason) for s in sessions] == [("closed", "fin"), ("closed", "rst"), ("open", None)]
    peers = {(p.address, p.asn) for p in pipeline.rib.peers.values()}
    assert peers == {("1.1.1.1", 65100), ("2.2.2.2", 65200)}
    assert pipeline.rib.count() == 26


def test_truncated_capture_replays_what_it_holds(tmp_path: Path) -> None:
    whole = (BGP / "BGP_hard_reset.cap").read_bytes()
    cut = tmp_path / "cut.cap"
    cut.write_bytes(whole[:3000])
    pipeline = Pipeline()
    with open_capture(cut) as capture:
        for frame in capture:
            pipeline.feed_frame(frame.linktype, frame.data, frame.timestamp, frame.wire_len)
        assert capture.truncated and "after frame 28" in capture.truncated
    pipeline.finish(0.0)
    pipeline.commit()
    assert pipeline.rib.count() == 26


# -- hostile input: the fixtures' frames with bytes flipped and cut must never trip our own code -------------


def fixture_frames() -> list[tuple[int, bytes]]:
    frames = []
    for name in NAMES:
        with open_capture(BGP / name) as capture:
            frames += [(frame.linktype, frame.data) for frame in capture]
    return frames


FRAMES = fixture_frames()


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_frames_cause_no_internal_error(data: st.DataObject) -> None:
    pipeline = Pipeline()
    start = data.draw(st.integers(0, len(FRAMES) - 1))
    for linktype, frame in FRAMES[start : start + 12]:
        mutated = bytearray(frame)
        for _ in range(data.draw(st.integers(0, 6))):
            at = data.draw(st.integers(0, len(mutated) - 1))
            mutated[at] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(mutated)))
        pipeline.feed_frame(linktype, bytes(mutated[: max(cut, len(mutated) - 8)]), 1.0)
    pipeline.finish(2.0)
    pipeline.commit()
    assert pipeline.stats.internal_error_count == 0, pipeline.stats.internal_errors
