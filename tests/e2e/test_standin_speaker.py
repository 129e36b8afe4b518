"""Any speaker bound to the router addresses can hold the sessions instead of the built-in holder: here gobgpd, in
the controller's namespace, with `local-address` set to the TAP addresses. Its sessions cross the tunnel like the
holder's, and the RIB fills from the sniffed frames the same way."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    CONTROLLER_NS,
    GOBGP_API_PORT,
    LOCAL_AS,
    PEER_AS,
    PEER_V4,
    PEER_V6,
    ROUTER_V4,
    ROUTER_V6,
    Controller,
    Router,
    Switch,
    adj_out,
    controller_config,
    rib_view,
    start_controller,
)
from tests.lab.netns import Lab, in_ns, run, wait_for

pytestmark = pytest.mark.e2e


def standin_config() -> str:
    lines = ["[global.config]", f"  as = {LOCAL_AS}", f'  router-id = "{ROUTER_V4}"']
    for peer, local, family in ((PEER_V4, ROUTER_V4, "ipv4-unicast"), (PEER_V6, ROUTER_V6, "ipv6-unicast")):
        lines += [
            "[[neighbors]]",
            "  [neighbors.config]",
            f'    neighbor-address = "{peer}"',
            f"    peer-as = {PEER_AS}",
            "  [neighbors.transport.config]",
            f'    local-address = "{local}"',
            "  [neighbors.timers.config]",
            "    connect-retry = 1",
            "  [[neighbors.afi-safis]]",
            "    [neighbors.afi-safis.config]",
            f'      afi-safi-name = "{family}"',
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def controller_with_gobgpd(switch: Switch, router: Router, tmp_path: Path) -> Iterator[Controller]:
    lab = Lab(tmp_path)
    try:
        store = tmp_path / "rib.sqlite"
        config = tmp_path / "sniffroute.toml"
        config.write_text(controller_config(store, peers=False))
        controller = start_controller(lab, switch, "osken", config, store)
        speaker_config = tmp_path / "standin.toml"
        speaker_config.write_text(standin_config())
        argv = ["gobgpd", "-f", str(speaker_config), "-p", f"--api-hosts=127.0.0.1:{GOBGP_API_PORT}"]
        lab.start("gobgpd-standin", CONTROLLER_NS, [*argv, "--pprof-disable"])
        yield controller
    finally:
        lab.close()


def test_gobgpd_on_the_tap_address_fills_the_rib(router: Router, controller_with_gobgpd: Controller) -> None:
    deadline = time.monotonic() + 40
    for peer in (ROUTER_V4, ROUTER_V6):
        wait_for(f"gobgpd's session with {peer}", lambda p=peer: router.established(p), deadline=deadline)
    expected = adj_out(router)
    settle = time.monotonic() + 10
    while (ours := rib_view(controller_with_gobgpd)) != expected and time.monotonic() < settle:
        time.sleep(0.3)
    assert ours == expected
    # the stand-in, not sniffroute, holds the sessions: its own view says so
    neighbors = run(in_ns(CONTROLLER_NS, ["gobgp", "-p", GOBGP_API_PORT, "neighbor"])).stdout
    assert neighbors.count("Establ") == 2, neighbors
    assert controller_with_gobgpd.document("holder") is None


EXABGP = Path(sys.executable).with_name("exabgp")


def exabgp_standin_config() -> str:
    """ExaBGP actively connecting from the router address; it announces nothing."""
    return f"""neighbor {PEER_V4} {{
\trouter-id {ROUTER_V4};
\tlocal-address {ROUTER_V4};
\tlocal-as {LOCAL_AS};
\tpeer-as {PEER_AS};
\thold-time 9;
\tfamily {{
\t\tipv4 unicast;
\t}}
}}
"""


@pytest.fixture
def controller_with_exabgp(switch: Switch, router: Router, tmp_path: Path) -> Iterator[Controller]:
    if not EXABGP.exists():
        pytest.skip("ExaBGP is not installed in this environment (pip install exabgp)")
    lab = Lab(tmp_path)
    try:
        store = tmp_path / "rib.sqlite"
        config = tmp_path / "sniffroute.toml"
        config.write_text(controller_config(store, peers=False))
        controller = start_controller(lab, switch, "osken", config, store)
        speaker_config = tmp_path / "exabgp.conf"
        speaker_config.write_text(exabgp_standin_config())
        env = {
            "exabgp_daemon_user": "root",
            "exabgp_daemon_drop": "false",
            "exabgp_api_cli": "false",
            "exabgp_log_destination": "stdout",
            "exabgp_tcp_bind": "",  # active only: the BGP port stays free
        }
        lab.start("exabgp-standin", CONTROLLER_NS, [str(EXABGP), "server", str(speaker_config)], env=env)
        yield controller
    finally:
        lab.close()


def test_exabgp_on_the_tap_address_fills_the_rib(router: Router, controller_with_exabgp: Controller) -> None:
    wait_for("gobgpd's session with ExaBGP", lambda: router.established(ROUTER_V4), deadline=time.monotonic() + 40)
    expected = [r for r in adj_out(router) if r["peer"] == PEER_V4]
    settle = time.monotonic() + 10
    while (ours := rib_view(controller_with_exabgp)) != expected and time.monotonic() < settle:
        time.sleep(0.3)
    assert ours and ours == expected
    assert controller_with_exabgp.document("holder") is None
    sessions = controller_with_exabgp.document("sessions")
    speakers = {sp["address"]: sp for s in sessions for sp in s["speakers"]}
    assert speakers[ROUTER_V4]["asn"] == LOCAL_AS and speakers[PEER_V4]["asn"] == PEER_AS
