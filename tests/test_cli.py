"""The `sniffroute` commands as a user runs them: replay into a store, then read it back."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sniffroute.cli import main
from tests.helpers import FIXTURES

LAB = FIXTURES / "lab"
LAB_EXPECTED: dict[str, Any] = json.loads((LAB / "bgp_lab_expected.json").read_text())
README = (Path(__file__).parents[1] / "README.md").read_text()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    path = str(tmp_path / "rib.sqlite")
    code, out, _ = run(capsys, "replay", str(LAB / "bgp_lab_before_shutdown.pcap"), "--db", path, "--no-progress")
    assert code == 0 and "RIB written to" in out
    return path


def test_missing_file_is_one_clear_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "replay", str(tmp_path / "nope.pcap"), "--db", str(tmp_path / "x.sqlite"))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "nope.pcap" in err and "no such file" in err


def test_non_capture_is_one_clear_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "replay", str(FIXTURES / "SOURCES.md"), "--db", str(tmp_path / "x.sqlite"))
    assert code == 1 and err.count("\n") == 1 and "not a pcap or pcapng" in err


def test_truncated_capture_replays_and_says_where(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes((FIXTURES / "bgp" / "BGP_hard_reset.cap").read_bytes()[:3000])
    code, out, _ = run(capsys, "replay", str(cut), "--db", str(tmp_path / "x.sqlite"))
    assert code == 0
    assert re.search(r"truncated .* after frame 28 at byte \d+", out)


def test_rib_json_is_the_best_paths(capsys: pytest.CaptureFixture[str], db: str) -> None:
    code, out, _ = run(capsys, "rib", "--json", "--db", db)
    routes = json.loads(out)
    assert code == 0 and routes and all(r["best"] for r in routes)
    assert len({(r["family"], r["prefix"]) for r in routes}) == len(routes)
    for key in ("prefix", "protocol", "peer", "next_hop", "as_path", "origin", "med", "local_pref", "communities"):
        assert key in routes[0] and f"`{key}`" in README
    expected_prefixes = {r["prefix"] for r in LAB_EXPECTED["before_shutdown"]["routes"]}
    assert {r["prefix"] for r in routes} == expected_prefixes


def test_rib_all_gives_every_path_the_daemons_received(capsys: pytest.CaptureFixture[str], db: str) -> None:
    _, out, _ = run(capsys, "rib", "--all", "--json", "--db", db)
    assert len(json.loads(out)) == len(LAB_EXPECTED["before_shutdown"]["routes"])


def test_address_does_a_longest_prefix_match(capsys: pytest.CaptureFixture[str], db: str) -> None:
    # The lab announces 192.0.2.128/25 and the covering 100.64/10 space; pick an address inside a /25.
    _, out, _ = run(capsys, "rib", "192.0.2.200", "--json", "--db", db)
    (route,) = json.loads(out)
    assert route["prefix"] == "192.0.2.128/25"
    code, out, _ = run(capsys, "rib", "233.252.0.1", "--db", db)  # MCAST-TEST-NET: nobody announces it
    assert code == 1 and out.startswith("no route for 233.252.0.1")


def test_peer_filter(capsys: pytest.CaptureFixture[str], db: str) -> None:
    _, out, _ = run(capsys, "rib", "--all", "--peer", "192.0.2.2", "--json", "--db", db)
    routes = json.loads(out)
    expected = [r for r in LAB_EXPECTED["before_shutdown"]["routes"] if r["peer"] == "192.0.2.2"]
    assert routes and {r["peer"] for r in routes} == {"192.0.2.2"} and len(routes) == len(expected)


def test_rib_text_is_aligned_like_birdc(capsys: pytest.CaptureFixture[str], db: str) -> None:
    _, out, _ = run(capsys, "rib", "--db", db)
    tables = out.split("Table ")[1:]
    assert len(tables) == 2  # IPv4 and IPv6 unicast
    for text in tables:
        lines = text.splitlines()
        header = next(line for line in lines if "Network" in line)
        columns = [header.index(name) for name in ("Next Hop", "Peer", "AS Path", "Attributes")]
        rows = [line for line in lines if line.startswith("*>")]
        assert rows and all(row[c - 1] == " " and row[c] != " " for row in rows for c in columns)


def test_peers(capsys: pytest.CaptureFixture[str], db: str) -> None:
    _, out, _ = run(capsys, "peers", "--json", "--db", db)
    sessions = json.loads(out)["sessions"]
    seen = {(sp["address"], sp["asn"], sp["router_id"]) for s in sessions for sp in s["speakers"]}
    expected = {(sp["address"], sp["as"], sp["router_id"]) for s in LAB_EXPECTED["sessions"] for sp in s["speakers"]}
    assert seen == expected


def test_replay_json_keys_are_documented(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "replay", str(FIXTURES / "bgp" / "bgp-add-path.cap"), "--json", "--no-store")
    summary = json.loads(out)
    assert code == 0
    undocumented = [key for key in summary if f"`{key}`" not in README]
    assert not undocumented


def test_rib_without_a_store_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "rib", "--db", str(tmp_path / "missing.sqlite"))
    assert code == 1 and "missing.sqlite" in err
