"""Measurements behind bench/tunnel_bench.py, run by pytest so they reuse the end-to-end bed (tests/e2e/conftest).

Not part of the test suite (it lives in bench/ and asserts nothing): each "test" measures one backend and prints
one JSON line that tunnel_bench.py collects.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import (
    CONTROLLER_NS,
    ROUTER_NS,
    ROUTER_V4,
    TAG,
    Controller,
    Router,
    Switch,
    controller_config,
    pox_dir,
    start_controller,
)
from tests.lab.netns import Lab, in_ns, run, wait_for

pytest_plugins = ["tests.e2e.conftest"]

PUNTED_TCP_PORT = 179  # the tunnel punts TCP to the router only on the BGP port
PINGS = int(os.environ.get("TUNNEL_BENCH_PINGS", "500"))
SECONDS = int(os.environ.get("TUNNEL_BENCH_SECONDS", "8"))
RTT = re.compile(r"time=([\d.]+) ms")


@pytest.fixture(scope="module", params=os.environ.get("TUNNEL_BENCH_BACKENDS", "osken,pox").split(","))
def bare_controller(
    request: pytest.FixtureRequest, switch: Switch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Controller]:
    """`sniffroute run` without peers, so port 179 on the router address is free for iperf3."""
    if request.param == "pox" and pox_dir() is None:
        pytest.skip("POX_DIR not set")
    workdir = tmp_path_factory.mktemp(f"{TAG}-bench-{request.param}")
    config = workdir / "sniffroute.toml"
    config.write_text(controller_config(workdir / "rib.sqlite", peers=False))
    lab = Lab(workdir)
    try:
        controller = start_controller(lab, switch, request.param, config, workdir / "rib.sqlite")
        yield controller
        controller.stop()
    finally:
        lab.close()


def _pings(count: int, interval: float) -> list[float]:
    argv = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", "1", ROUTER_V4]
    out = subprocess.run(in_ns(ROUTER_NS, argv), capture_output=True, text=True, timeout=count * 2 + 30).stdout
    return [float(m) for m in RTT.findall(out)]


def _percentiles(samples: list[float]) -> dict[str, float | int]:
    if len(samples) < 2:
        return {"received": len(samples)}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"received": len(samples), "p50_ms": round(cuts[49], 3), "p99_ms": round(cuts[98], 3)}


def _iperf_client(seconds: int) -> subprocess.Popen[str]:
    argv = ["iperf3", "-c", ROUTER_V4, "-p", str(PUNTED_TCP_PORT), "-t", str(seconds), "-J"]
    return subprocess.Popen(in_ns(ROUTER_NS, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_tunnel_figures(bare_controller: Controller, router: Router) -> None:  # router: the host namespace
    # gobgpd there keeps connecting to the router address on the BGP port: the iperf3 server would take it for its
    # client and wait on it (both iperf3 runs then time out), so the peer is switched off for the measurement.
    router.gobgp("neighbor", ROUTER_V4, "disable")
    server = subprocess.Popen(
        in_ns(CONTROLLER_NS, ["iperf3", "-s", "-B", ROUTER_V4, "-p", str(PUNTED_TCP_PORT)]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        listening = ["ss", "-Htln", f"src {ROUTER_V4}:{PUNTED_TCP_PORT}"]
        wait_for(
            "iperf3 to listen",
            lambda: run(in_ns(CONTROLLER_NS, listening)).stdout.strip(),
            deadline=time.monotonic() + 10,
        )
        _pings(5, 0.2)  # ARP and flows warmed up
        idle = _percentiles(_pings(PINGS, 0.01))
        load = _iperf_client(SECONDS + 2)
        time.sleep(1.0)
        loaded = _percentiles(_pings(min(PINGS, SECONDS * 50), 0.02))
        busy = _report(load)
        alone = _iperf_run(SECONDS)
    finally:
        server.kill()
        server.wait()  # the next backend's server binds the same port
    figures = {
        "backend": bare_controller.backend,
        "ping_idle": idle,
        "ping_under_load": loaded,
        "tcp_mbps": _mbps(alone),
        "tcp_mbps_while_pinging": _mbps(busy),
        "retransmits": alone.get("end", {}).get("sum_sent", {}).get("retransmits"),
        "iperf_errors": [r["error"] for r in (busy, alone) if "error" in r],
        "tunnel": bare_controller.document("tunnel"),
    }
    print("TUNNEL-FIGURES " + json.dumps(figures))


def _iperf_run(seconds: int) -> dict:
    """One iperf3 run; again while the server is still closing the previous test (it refuses a new one then)."""
    for _ in range(10):
        report = _report(_iperf_client(seconds))
        if "busy" not in report.get("error", ""):
            return report
        time.sleep(0.5)
    return report


def _report(client: subprocess.Popen[str]) -> dict:
    try:
        out, err = client.communicate(timeout=SECONDS + 30)
    except subprocess.TimeoutExpired:
        client.kill()
        return {"error": "iperf3 did not finish"}
    return json.loads(out) if out.strip() else {"error": err}


def _mbps(report: dict) -> float | None:
    bits = report.get("end", {}).get("sum_received", {}).get("bits_per_second")
    return round(bits / 1e6, 1) if bits else None
