"""`sniffroute run` without root, on TAPs made for its user by `sniffroute tap create --user` (as root, once)."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    CONTROLLER_NS,
    ROUTER_V4,
    ROUTER_V6,
    TAP,
    VLAN_TAP,
    Controller,
    Router,
    Switch,
    controller_config,
    start_controller,
)
from tests.lab.netns import Lab, in_ns, run, wait_for

pytestmark = pytest.mark.e2e

MTU = 1500
IPV4_ICMP_HEADERS = 20 + 8
IPV6_ICMP_HEADERS = 40 + 8
TUN_MAJOR, TUN_MINOR = 10, 200  # the Linux TUN/TAP clone device (Documentation/admin-guide/devices.txt)
UNPRIVILEGED = "nobody"
SNIFFROUTE = [sys.executable, "-m", "sniffroute.cli"]


@pytest.fixture
def unprivileged_controller(switch: Switch, router: Router) -> Iterator[Controller]:
    """`sniffroute run` as nobody, no capabilities, on a TAP made for nobody by `sniffroute tap create`.

    /dev/net/tun is 0600 on some machines (distributions ship 0666): a second node of the same device (char 10:200),
    readable by everyone, stands in for a standard one without touching the host's."""
    can_import = [*_as_unprivileged(), sys.executable, "-c", "import sniffroute.cli, pytun, pyroute2, os_ken"]
    if run(can_import, check=False).returncode != 0:
        pytest.skip(f"{UNPRIVILEGED} cannot read this checkout or its venv ({Path.cwd()}): clone it where others may")
    workdir = Path(tempfile.mkdtemp(prefix="st-unprivileged-"))
    lab = Lab(workdir)
    try:
        workdir.chmod(0o755)
        state = workdir / "state"
        state.mkdir(mode=0o777)
        state.chmod(0o777)
        tun = workdir / "tun"
        os.mknod(tun, stat.S_IFCHR | 0o666, os.makedev(TUN_MAJOR, TUN_MINOR))
        tun.chmod(0o666)
        store = state / "rib.sqlite"
        config = workdir / "sniffroute.toml"
        config.write_text(controller_config(store, peers=False, tun_device=str(tun)))
        config.chmod(0o644)
        for name in (TAP, VLAN_TAP):
            create = [*SNIFFROUTE, "tap", "create", "--name", name, "--user", UNPRIVILEGED, "--config", str(config)]
            run(in_ns(CONTROLLER_NS, create))
        yield start_controller(lab, switch, "osken", config, store, user=UNPRIVILEGED)
    finally:
        lab.close()
        for name in (TAP, VLAN_TAP):
            run(in_ns(CONTROLLER_NS, [*SNIFFROUTE, "tap", "delete", "--name", name]), check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def _as_unprivileged() -> list[str]:
    account = pwd.getpwnam(UNPRIVILEGED)
    return ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups", "--inh-caps=-all"]


def test_unprivileged_run_on_a_tap_made_for_its_user(
    switch: Switch, router: Router, unprivileged_controller: Controller
) -> None:
    status = Path(f"/proc/{unprivileged_controller.daemon.process.pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    uid = pwd.getpwnam(UNPRIVILEGED).pw_uid
    assert fields["Uid"].split()[:2] == [str(uid), str(uid)]
    assert int(fields["CapEff"], 16) == 0
    for address, headers in ((ROUTER_V4, IPV4_ICMP_HEADERS), (ROUTER_V6, IPV6_ICMP_HEADERS)):
        full = router.ping(address, size=MTU - headers)
        assert full.returncode == 0, f"{MTU}-byte ping {address}: {full.stdout}{full.stderr}"
    tunnel = wait_for(
        "a tunnel report", lambda: unprivileged_controller.document("tunnel"), deadline=time.monotonic() + 5
    )
    assert tunnel["to_tap"] >= 3 and tunnel["packet_out"] >= 3
