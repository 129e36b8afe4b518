"""Replaying the real-daemon capture gives, route by route, what the daemons themselves received.

tests/fixtures/lab/ was recorded by tests/lab/make_bgp_capture.py: gobgpd and ExaBGP in network namespaces, tcpdump
on the link, and the expected routes taken from the daemons' own RIB dumps (gobgp adj-in -j, ExaBGP's received
log) -- never from sniffroute.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from sniffroute.store import Store
from tests.helpers import FIXTURES, replay

LAB = FIXTURES / "lab"
EXPECTED_FILE = LAB / "bgp_lab_expected.json"
FIELDS = (
    "prefix",
    "peer",
    "next_hop",
    "as_path",
    "origin",
    "med",
    "local_pref",
    "communities",
    "large_communities",
)

pytestmark = pytest.mark.skipif(not EXPECTED_FILE.exists(), reason="lab capture not recorded yet")


def _key(route: dict[str, Any]) -> tuple[str, str]:
    return route["prefix"], route["peer"]


def _normalised(route: dict[str, Any]) -> dict[str, Any]:
    out = {f: route[f] for f in FIELDS}
    out["communities"] = sorted(out["communities"])
    out["large_communities"] = sorted(out["large_communities"])
    # One spelling for an address, whoever printed it (::ffff:192.0.2.1 and ::ffff:c000:201 are the same).
    out["next_hop"] = str(ipaddress.ip_address(out["next_hop"])) if out["next_hop"] else None
    return out


def _stored_routes(pipeline, tmp_path) -> list[dict[str, Any]]:
    with Store(tmp_path / "rib.sqlite") as store:
        store.save(pipeline.rib)
        return store.routes(all_paths=True)


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads(EXPECTED_FILE.read_text())


def _compare(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    ours_by_key = {_key(r): _normalised(r) for r in ours}
    theirs_by_key = {_key(r): _normalised(r) for r in theirs}
    assert len(ours_by_key) == len(ours), "one path per prefix and peer expected in the lab capture"
    missing = sorted(set(theirs_by_key) - set(ours_by_key))
    extra = sorted(set(ours_by_key) - set(theirs_by_key))
    assert not missing, f"{len(missing)} routes the daemons hold are missing, e.g. {missing[:5]}"
    assert not extra, f"{len(extra)} routes the daemons do not hold, e.g. {extra[:5]}"
    wrong = [(k, ours_by_key[k], theirs_by_key[k]) for k in theirs_by_key if ours_by_key[k] != theirs_by_key[k]]
    assert not wrong, f"{len(wrong)} routes differ; first: ours {wrong[0][1]} vs daemon {wrong[0][2]}"


def test_cut_before_shutdown_holds_every_route(expected, tmp_path):
    pipeline = replay(LAB / "bgp_lab_before_shutdown.pcap")
    assert expected["before_shutdown"]["routes"], "the lab capture must carry routes"
    _compare(_stored_routes(pipeline, tmp_path), expected["before_shutdown"]["routes"])
    assert pipeline.sessions.stats.error_count == 0
    assert pipeline.streams.stats.gaps == 0


def test_whole_capture_flushes_routes_at_shutdown(expected, tmp_path):
    pipeline = replay(LAB / expected["capture"])
    _compare(_stored_routes(pipeline, tmp_path), expected["after_shutdown"]["routes"])
    notifications = [s.notification for s in pipeline.sessions.all_sessions() if s.notification is not None]
    assert notifications, "the shutdown NOTIFICATION must be seen"
    sent = expected["notification"]
    assert (notifications[0].code, notifications[0].subcode) == (sent["code"], sent["subcode"])
    assert notifications[0].shutdown_message == sent["message"]
