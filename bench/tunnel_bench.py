"""Tunnel benchmark: host namespace -> OVS (userspace) -> packet-in -> controller -> TAP -> Linux, and back.

Prints, per backend: ping RTT to the router address p50/p99 idle and under TCP load, and TCP throughput with
iperf3 to the router address (on the BGP port, the only TCP port the tunnel punts). Reference points printed
beside them: the 2012 seed's own report (~4 Mb/s, 1-50 ms RTT) and the targets (>= 100 Mb/s, p99 <= 2 ms idle),
and the machine's load average as each backend's run began (the tail follows what else the machine is doing).
Needs root, Open vSwitch, gobgpd, iperf3; POX runs too when POX_DIR points at a halosaur checkout.

Usage: sudo python bench/tunnel_bench.py [--backends osken,pox] [--pings 500] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = {"tcp_mbps": 4.0, "rtt_ms": "1-50"}
TARGET = {"tcp_mbps": 100.0, "p99_idle_ms": 2.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="osken,pox")
    parser.add_argument("--pings", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    marker = "TUNNEL-FIGURES "
    rows = []
    for backend in args.backends.split(","):  # a fresh switch for each: no flows left by the other backend
        env = {
            **os.environ,
            "SNIFFROUTE_E2E_TAG": os.environ.get("SNIFFROUTE_E2E_TAG", "sb"),
            "TUNNEL_BENCH_BACKENDS": backend,
            "TUNNEL_BENCH_PINGS": str(args.pings),
            "TUNNEL_BENCH_SECONDS": str(args.seconds),
        }
        load_before = os.getloadavg()[0]  # what else the machine was doing: the tail follows it
        argv = [sys.executable, "-m", "pytest", str(ROOT / "bench" / "tunnel_figures.py"), "-q", "-s",
                "-p", "no:cacheprovider", "-o", "addopts=", "-W", "ignore"]  # fmt: skip
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        found = [json.loads(line[len(marker) :]) for line in done.stdout.splitlines() if line.startswith(marker)]
        if not found:
            print(f"{backend}: no figures", done.stdout[-2000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
        rows += [{**row, "load_before": round(load_before, 2)} for row in found]
    if not rows:
        return 1
    columns = ("idle p50", "idle p99", "load p50", "load p99", "TCP Mb/s")
    print(f"{'backend':<8} " + " ".join(f"{c:>9}" for c in columns) + f" {'vs seed':>8} {'load':>5}")
    for row in rows:
        idle, load = row["ping_idle"], row["ping_under_load"]
        mbps = row["tcp_mbps"] or 0.0
        print(
            f"{row['backend']:<8} {idle.get('p50_ms', '-'):>9} {idle.get('p99_ms', '-'):>9} "
            f"{load.get('p50_ms', '-'):>9} {load.get('p99_ms', '-'):>9} {mbps:>9} {mbps / SEED['tcp_mbps']:>7.0f}x"
            f" {row['load_before']:>5.2f}"
        )
    print(f"RTT in ms. Seed (2012, as reported): {SEED['tcp_mbps']} Mb/s, {SEED['rtt_ms']} ms; "
          f"targets: >= {TARGET['tcp_mbps']} Mb/s, idle p99 <= {TARGET['p99_idle_ms']} ms. "
          "load: the 1-minute load average as the backend's run began")  # fmt: skip
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
