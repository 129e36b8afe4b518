"""Network-namespace scaffolding for lab recordings: namespaces, veths, addresses, daemons, deadlines.

Every command is an argv list run without a shell, and every return code is checked. A `Lab` remembers what it
created so that `close()` (called from a `finally` or a `with` block) removes all of it, processes first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")

IP = "ip"
ETHTOOL = "ethtool"
# Checksums are computed in software so the capture holds the bytes the peer received, checksums right.
OFFLOADS = ("tx", "rx", "tso", "gso", "gro")


class LabError(RuntimeError):
    """A lab step failed: a command exited non-zero, a tool is missing or a deadline passed."""


class LabTimeout(LabError):
    """A deadline passed before the awaited condition held."""


def require_tools(*names: str) -> dict[str, str]:
    """Map each tool name to its path, or fail naming every missing one and what provides it."""
    found = {name: shutil.which(name) for name in names}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        raise LabError(f"missing tools: {', '.join(missing)} (install them or fix PATH; see tests/lab/README.md)")
    return {name: path for name, path in found.items() if path is not None}


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run argv (no shell), capture its output, and raise LabError with stderr when it fails."""
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def in_ns(ns: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs `argv` inside namespace `ns`."""
    return [IP, "netns", "exec", ns, *argv]


def wait_for(what: str, predicate: Callable[[], T | None], *, deadline: float, interval: float = 0.2) -> T:
    """Poll `predicate` until it returns something truthy, or raise LabError once `deadline` passes.

    `deadline` is an absolute `time.monotonic()` value so that several waits can share one time budget.
    """
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise LabTimeout(f"timed out waiting for {what}")
        time.sleep(interval)


@dataclass
class Daemon:
    """A process started by the lab, with the files its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Lab:
    """Owns namespaces and processes; `close()` undoes everything, in reverse order of creation."""

    workdir: Path
    namespaces: list[str] = field(default_factory=list)
    daemons: list[Daemon] = field(default_factory=list)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- topology --------------------------------------------------------------------------------------------

    def namespace(self, name: str) -> str:
        """Create namespace `name` (removing a leftover of the same name first) with its loopback up."""
        if name in run([IP, "netns", "list"]).stdout.split():
            run([IP, "netns", "delete", name])
        run([IP, "netns", "add", name])
        self.namespaces.append(name)
        run(in_ns(name, [IP, "link", "set", "lo", "up"]))
        return name

    def veth(self, ns_a: str, dev_a: str, ns_b: str, dev_b: str) -> None:
        """A veth pair with `dev_a` in `ns_a` and `dev_b` in `ns_b`, both ends still down."""
        run(in_ns(ns_a, [IP, "link", "add", dev_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b]))

    def sysctl(self, ns: str, key: str, value: str) -> None:
        run(in_ns(ns, ["sysctl", "-q", "-w", f"{key}={value}"]))

    def ipv6_off(self, ns: str, dev: str) -> None:
        """No IPv6 on a device that only switches frames (no MLD or router solicitations in the capture)."""
        self.sysctl(ns, f"net.ipv6.conf.{dev}.disable_ipv6", "1")

    def address(self, ns: str, dev: str, cidr: str) -> None:
        """Add an address; IPv6 ones skip duplicate address detection so sessions need not wait for it."""
        if ":" in cidr:
            self.sysctl(ns, f"net.ipv6.conf.{dev}.accept_dad", "0")
            run(in_ns(ns, [IP, "-6", "address", "add", cidr, "dev", dev, "nodad"]))
        else:
            run(in_ns(ns, [IP, "address", "add", cidr, "dev", dev]))

    def offloads_off(self, ns: str, dev: str) -> None:
        argv = [ETHTOOL, "-K", dev]
        for feature in OFFLOADS:
            argv += [feature, "off"]
        run(in_ns(ns, argv))

    def up(self, ns: str, dev: str) -> None:
        run(in_ns(ns, [IP, "link", "set", dev, "up"]))

    def bridge(self, ns: str, name: str, ports: Sequence[str]) -> None:
        """A Linux bridge without STP, so ports forward at once."""
        run(in_ns(ns, [IP, "link", "add", name, "type", "bridge", "stp_state", "0", "forward_delay", "0"]))
        self.ipv6_off(ns, name)
        for port in ports:
            run(in_ns(ns, [IP, "link", "set", port, "master", name]))
            self.up(ns, port)
        self.up(ns, name)

    # -- processes -------------------------------------------------------------------------------------------

    def start(
        self,
        name: str,
        ns: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> Daemon:
        """Start `argv` in namespace `ns`, stdout and stderr to WORKDIR/NAME.log."""
        log = self.workdir / f"{name}.log"
        out: IO[bytes] = log.open("wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        process = subprocess.Popen(
            in_ns(ns, argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
        out.close()
        daemon = Daemon(name=name, process=process, log=log, stop_signal=stop_signal)
        self.daemons.append(daemon)
        return daemon

    def stop(self, daemon: Daemon, *, grace: float = 5.0) -> int:
        """Signal the daemon's process group, wait `grace` seconds, then kill it; returns its exit status."""
        if daemon.alive():
            _signal_group(daemon.process, daemon.stop_signal)
            try:
                daemon.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(daemon.process, signal.SIGKILL)
                daemon.process.wait(timeout=grace)
        if daemon in self.daemons:
            self.daemons.remove(daemon)
        return daemon.process.returncode

    def check_running(self) -> bool:
        """True, or LabError quoting the log tail of the first daemon that exited early."""
        for daemon in self.daemons:
            if not daemon.alive():
                tail = daemon.log.read_text(errors="replace")[-1500:]
                raise LabError(f"{daemon.name} exited with {daemon.process.returncode}:\n{tail}")
        return True

    def close(self) -> None:
        """Stop every daemon still running, then delete every namespace; keep going past failures."""
        errors: list[str] = []
        for daemon in reversed(list(self.daemons)):
            try:
                self.stop(daemon)
            except (OSError, subprocess.SubprocessError) as exc:
                errors.append(f"{daemon.name}: {exc}")
        for ns in reversed(self.namespaces):
            result = run([IP, "netns", "delete", ns], check=False)
            if result.returncode != 0:
                errors.append(f"netns {ns}: {result.stderr.strip()}")
        self.namespaces.clear()
        if errors:
            raise LabError("teardown incomplete: " + "; ".join(errors))


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    # Daemons run under `ip netns exec` in their own session: signal the whole group so the daemon gets it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
