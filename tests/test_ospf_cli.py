"""`sniffroute replay` of the BIRD lab capture, then `sniffroute rib --ospf-root X` prints what BIRD on X printed.

The oracle is tests/fixtures/lab/ospf_lab_expected.json: `birdc show route` of every router, dumped by
tests/lab/make_ospf_capture.py. The whole capture ends after the last topology change, so it is compared with the
last stage. r0 sits on the LAN with nothing else and interface cost 1: its table is what the default viewpoint (a
stub on the first LAN seen) computes, one higher.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sniffroute.cli import main
from tests.helpers import FIXTURES

LAB = FIXTURES / "lab"
EXPECTED: dict[str, Any] = json.loads((LAB / "ospf_lab_expected.json").read_text())
STAGE = EXPECTED["stages"]["link_down"]
ROUTERS = {r["name"]: r["router_id"] for r in EXPECTED["routers"]}
BIRD_TYPE = {"N1": "E1", "N2": "E2"}  # BIRD shows routes from type-7 LSAs as E1/E2
SEGMENT_OBSERVER_COST = 1
# OSPFv3 LSAs do not carry a router's interface addresses, so from r3's viewpoint we cannot know that this
# external's forwarding address (2001:db8:1::3) is r3's own, and BIRD on r3 drops it.
KNOWN_EXTRA = {"r3": {"2001:db8:1723::/64"}}


def bird_table(router: str, cost_offset: int = 0) -> dict[str, tuple]:
    routes = STAGE[router]["ospf4"] + STAGE[router]["ospf6"]
    return {
        r["prefix"]: (
            r["route_type"],
            r["metric"] - cost_offset,
            r["metric2"],
            frozenset(h["address"] for h in r["next_hops"]),
        )
        for r in routes
    }


def our_table(routes: list[dict[str, Any]]) -> dict[str, tuple]:
    assert all(r["protocol"] == "ospf" for r in routes)
    return {
        r["prefix"]: (
            BIRD_TYPE.get(r["route_type"], r["route_type"]),
            r["metric"],
            r["type2_metric"],
            frozenset(h["address"] for h in r["next_hops"]),
        )
        for r in routes
    }


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("ospf") / "rib.sqlite")
    assert main(["replay", str(LAB / EXPECTED["capture"]), "--db", path, "--no-progress", "--json"]) == 0
    return path


def rib_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["rib", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("router", sorted(set(ROUTERS) - {"r0"}))
def test_rib_from_a_router_equals_its_bird_table(router: str, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    ours = our_table(rib_json(capsys, "--db", db, "--protocol", "ospf", "--ospf-root", ROUTERS[router]))
    theirs = bird_table(router)
    # BIRD also lists the router's own interface networks as OSPF routes with no next hop; compare those by
    # presence and metric only.
    assert ours.keys() - theirs.keys() == KNOWN_EXTRA.get(router, set())
    assert theirs.keys() <= ours.keys()
    for prefix, (kind, metric, metric2, hops) in theirs.items():
        assert ours[prefix][:3] == (kind, metric, metric2), prefix
        if hops != {None}:
            assert ours[prefix][3] == hops, prefix


def test_default_viewpoint_is_a_stub_on_the_lan(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    ours = our_table(rib_json(capsys, "--db", db, "--protocol", "ospf"))
    theirs = bird_table("r0", SEGMENT_OBSERVER_COST)
    assert ours.keys() == theirs.keys()
    assert {p: v[:3] for p, v in ours.items()} == {p: v[:3] for p, v in theirs.items()}


def test_lsdb_lists_every_lsa_the_routers_hold(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["lsdb", "--db", db, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    routers = {row["adv_router"] for row in rows if row["type_name"] == "router" and row["version"] == 2}
    assert routers >= {rid for name, rid in ROUTERS.items()}
    assert main(["lsdb", "--db", db, "--area", "1", "--type", "router"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("OSPFv2 area 0.0.0.1") and "OSPFv3 area 0.0.0.1" in text


def test_unknown_root_is_reported(db: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert rib_json(capsys, "--db", db, "--ospf-root", "192.0.2.99") == []
