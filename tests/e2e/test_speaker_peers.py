"""The session holder against real peers, each in its own network namespace; the peers themselves are the oracle.

    sk-hold   SessionHolder (in a thread of this process that joined the namespace)
      sk-h-gobgp 192.0.2.1/29 192.0.2.3/29 2001:db8:5c::1/64  <-> sk-gobgp-h 192.0.2.2/29 2001:db8:5c::2/64  sk-gobgp
      sk-h-exa   192.0.2.9/30                                  <-> sk-exa-h   192.0.2.10/30                  sk-exa
      sk-h-bird  192.0.2.13/30                                 <-> sk-bird-h  192.0.2.14/30                  sk-bird

Sessions: gobgpd over IPv4 (both sides dial; one session must result), gobgpd over IPv6 with
TCP-MD5 (gobgpd passive), gobgpd with a TCP-MD5 password the holder gets wrong (never connects), ExaBGP active
toward the passive holder, BIRD 2 with a 3 s hold time (frozen with SIGSTOP, then restarted). What counts is what
the peers report: `gobgp neighbor -j`, `birdc show protocols all`, ExaBGP's api log of what it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sniffroute.speaker import (
    ConnectFailed,
    PeerConfig,
    PeerState,
    SessionDown,
    SessionEstablished,
    SessionHolder,
    SpeakerEvent,
)
from tests.lab.netns import Daemon, Lab, LabError, in_ns, run, wait_for

pytestmark = pytest.mark.e2e

HOLD_NS, GOBGP_NS, EXA_NS, BIRD_NS = "sk-hold", "sk-gobgp", "sk-exa", "sk-bird"
LOCAL_AS, ROUTER_ID = 65000, "192.0.2.1"
GOBGP_AS, EXA_AS, BIRD_AS = 4200000001, 64500, 64600
GOBGP_API_PORT = "50051"
MD5_PASSWORD = "sk-secret"
SHUTDOWN_TEXT = "sk maintenance window 42"


@dataclass(frozen=True, slots=True)
class Link:
    ns: str
    holder_dev: str
    peer_dev: str
    holder_addresses: tuple[str, ...]
    peer_addresses: tuple[str, ...]


LINKS = (
    Link(
        GOBGP_NS,
        "sk-h-gobgp",
        "sk-gobgp-h",
        ("192.0.2.1/29", "192.0.2.3/29", "2001:db8:5c::1/64"),
        ("192.0.2.2/29", "2001:db8:5c::2/64"),
    ),
    Link(EXA_NS, "sk-h-exa", "sk-exa-h", ("192.0.2.9/30",), ("192.0.2.10/30",)),
    Link(BIRD_NS, "sk-h-bird", "sk-bird-h", ("192.0.2.13/30",), ("192.0.2.14/30",)),
)

GOBGP_V4, GOBGP_V6, GOBGP_WRONG_MD5 = "192.0.2.2", "2001:db8:5c::2", "192.0.2.2"
HOLDER_FOR_GOBGP_V4, HOLDER_FOR_GOBGP_V6, HOLDER_WRONG_MD5 = "192.0.2.1", "2001:db8:5c::1", "192.0.2.3"
EXA, HOLDER_FOR_EXA = "192.0.2.10", "192.0.2.9"
BIRD, HOLDER_FOR_BIRD = "192.0.2.14", "192.0.2.13"

PEERS = (
    # gobgpd dials too (not passive): the holder must cope with the peer's connection as well as its own.
    PeerConfig(
        address=GOBGP_V4,
        peer_as=GOBGP_AS,
        local_as=LOCAL_AS,
        router_id=ROUTER_ID,
        local_address=HOLDER_FOR_GOBGP_V4,
        hold_time=9,
    ),
    PeerConfig(
        address=GOBGP_V6,
        peer_as=GOBGP_AS,
        local_as=LOCAL_AS,
        router_id=ROUTER_ID,
        local_address=HOLDER_FOR_GOBGP_V6,
        hold_time=9,
        md5_password=MD5_PASSWORD,
    ),
    PeerConfig(
        address=EXA,
        peer_as=EXA_AS,
        local_as=LOCAL_AS,
        router_id=ROUTER_ID,
        local_address=HOLDER_FOR_EXA,
        passive=True,
        hold_time=9,
    ),
    PeerConfig(
        address=BIRD,
        peer_as=BIRD_AS,
        local_as=LOCAL_AS,
        router_id=ROUTER_ID,
        local_address=HOLDER_FOR_BIRD,
        hold_time=3,
    ),
)
# A second holder, on its own address, with the wrong password for a gobgpd neighbour that has the right one.
WRONG_MD5_PEER = PeerConfig(
    address=GOBGP_WRONG_MD5,
    peer_as=GOBGP_AS,
    local_as=LOCAL_AS,
    router_id="192.0.2.3",
    local_address=HOLDER_WRONG_MD5,
    hold_time=9,
    md5_password="sk-wrong",
)
TOOLS = ("ip", "ethtool", "gobgpd", "gobgp", "bird", "birdc")
EXABGP = Path(sys.executable).with_name("exabgp")


def _missing_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: network namespaces and daemons"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not EXABGP.exists():
        missing.append(f"exabgp (pip install exabgp into {Path(sys.executable).parent})")
    if missing:
        return f"missing: {', '.join(missing)} (apt-get install gobgpd bird2 ethtool iproute2)"
    return None


# -- the holder, run in a thread that joined the holder's namespace ---------------------------------------------

CLONE_NEWNET = 0x40000000  # linux/sched.h


def _join_namespace(ns: str) -> None:
    """setns(2) for the calling thread only: the sockets it opens afterwards live in `ns`."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({ns}): {os.strerror(errno)}")
    finally:
        os.close(fd)


@dataclass
class HolderThread:
    ns: str
    peers: tuple[PeerConfig, ...]
    log: Path  # every event, one per line, for the record when a test fails
    events: list[SpeakerEvent] = field(default_factory=list)
    holder: SessionHolder | None = None
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"holder-{self.ns}", daemon=True)

    def start(self) -> HolderThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("holder thread did not start")
        if self.error is not None:
            raise self.error
        return self

    def _main(self) -> None:
        try:
            _join_namespace(self.ns)
            self.holder = SessionHolder(self.peers, on_event=self._record, connect_timeout=2.0)
        except BaseException as exc:
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            asyncio.run(self.holder.run())
        except BaseException as exc:
            self.error = exc

    def _record(self, event: SpeakerEvent) -> None:
        self.events.append(event)
        with self.log.open("a") as log:
            log.write(f"{time.time():.3f} {event!r}\n")

    def stop(self, message: str = "") -> None:
        if self.holder is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # it may not have reached its loop
                self.holder.stop_threadsafe(message).result(timeout=10)
        self._thread.join(timeout=10)

    def of(self, kind: type, peer: str) -> list[Any]:
        return [e for e in list(self.events) if isinstance(e, kind) and e.peer == peer]


# -- the peers ----------------------------------------------------------------------------------------------------


def gobgpd_config() -> str:
    lines = ["[global.config]", f"  as = {GOBGP_AS}", '  router-id = "192.0.2.2"']
    neighbours = (
        (HOLDER_FOR_GOBGP_V4, GOBGP_V4, False, None),
        (HOLDER_FOR_GOBGP_V6, GOBGP_V6, True, MD5_PASSWORD),
        (HOLDER_WRONG_MD5, GOBGP_WRONG_MD5, True, "sk-right"),
    )
    for neighbour, local, passive, password in neighbours:
        lines += [
            "[[neighbors]]",
            "  [neighbors.config]",
            f'    neighbor-address = "{neighbour}"',
            f"    peer-as = {LOCAL_AS}",
        ]
        if password:
            lines.append(f'    auth-password = "{password}"')
        lines += [
            "  [neighbors.transport.config]",
            f'    local-address = "{local}"',
            f"    passive-mode = {str(passive).lower()}",
            "  [neighbors.timers.config]",
            "    connect-retry = 1",
            "    hold-time = 9",
            "    keepalive-interval = 3",
            "    idle-hold-time-after-reset = 1",
        ]
        for family in ("ipv4-unicast", "ipv6-unicast"):
            lines += [
                "  [[neighbors.afi-safis]]",
                "    [neighbors.afi-safis.config]",
                f'      afi-safi-name = "{family}"',
            ]
    return "\n".join(lines) + "\n"


RECORDER = """import os, sys
with open(sys.argv[1], "ab") as log:
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        log.write(chunk)
        log.flush()
"""


def exabgp_config(recorder: Path, log: Path) -> str:
    return f"""process recorder {{
\trun {sys.executable} {recorder} {log};
\tencoder json;
}}

neighbor {HOLDER_FOR_EXA} {{
\trouter-id 192.0.2.10;
\tlocal-address {EXA};
\tlocal-as {EXA_AS};
\tpeer-as {LOCAL_AS};
\thold-time 9;

\tfamily {{
\t\tipv4 unicast;
\t\tipv6 unicast;
\t}}

\tapi {{
\t\tprocesses [ recorder ];
\t\tneighbor-changes;
\t\treceive {{
\t\t\tparsed;
\t\t\tupdate;
\t\t\tnotification;
\t\t\topen;
\t\t\trefresh;
\t\t}}
\t}}
}}
"""


def bird_config(log: Path) -> str:
    return f"""log "{log}" all;
router id 192.0.2.14;
protocol device {{ }}
protocol bgp sk_holder {{
\tlocal {BIRD} as {BIRD_AS};
\tneighbor {HOLDER_FOR_BIRD} as {LOCAL_AS};
\thold time 3;
\tkeepalive time 1;
\tconnect retry time 1;
\terror wait time 1, 2;
\tipv4 {{ import all; export none; }};
\tipv6 {{ import all; export none; }};
}}
"""


@dataclass
class Peers:
    lab: Lab
    workdir: Path
    exa_log: Path
    bird_log: Path
    bird_socket: Path
    bird_config: Path
    gobgpd: Daemon
    exabgp: Daemon
    bird: Daemon

    # gobgp
    def gobgp_json(self, *args: str) -> Any:
        text = run(in_ns(GOBGP_NS, ["gobgp", "-p", GOBGP_API_PORT, *args, "-j"]), timeout=10).stdout.strip()
        return json.loads(text) if text else None

    def gobgp_neighbor(self, address: str) -> dict[str, Any]:
        return self.gobgp_json("neighbor", address) or {}

    def gobgp_state(self, address: str) -> str:
        try:
            neighbor = self.gobgp_neighbor(address)
        except LabError:  # gobgpd's API is not listening yet (seen on a loaded machine)
            return "api not ready"
        state = neighbor.get("state", {}).get("session_state")
        return {6: "established"}.get(state, str(state).lower())

    # BIRD
    def birdc(self, *args: str) -> str:
        return run(in_ns(BIRD_NS, ["birdc", "-s", str(self.bird_socket), *args]), check=False, timeout=10).stdout

    def bird_established(self) -> bool:
        return "Established" in self.birdc("show", "protocols", "sk_holder")

    def start_bird(self) -> None:
        self.bird = _start_bird(self.lab, self.bird_config, self.bird_socket)

    # ExaBGP
    def exa_messages(self) -> list[dict[str, Any]]:
        if not self.exa_log.exists():
            return []
        messages = []
        for line in self.exa_log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                messages.append(json.loads(line))
        return messages

    def exa_state(self) -> str | None:
        states = [m["neighbor"]["state"] for m in self.exa_messages() if m.get("type") == "state"]
        return states[-1] if states else None


def _start_bird(lab: Lab, config: Path, control_socket: Path) -> Daemon:
    return lab.start("bird", BIRD_NS, ["bird", "-f", "-c", str(config), "-s", str(control_socket)])


def _setup_links(lab: Lab) -> None:
    lab.namespace(HOLD_NS)
    for link in LINKS:
        lab.namespace(link.ns)
        lab.veth(HOLD_NS, link.holder_dev, link.ns, link.peer_dev)
        for ns, dev, addresses in (
            (HOLD_NS, link.holder_dev, link.holder_addresses),
            (link.ns, link.peer_dev, link.peer_addresses),
        ):
            for address in addresses:
                lab.address(ns, dev, address)
            lab.offloads_off(ns, dev)
            lab.up(ns, dev)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reason = _missing_reason()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("sk-speaker")
    with Lab(workdir) as lab:
        _setup_links(lab)
        yield lab


@pytest.fixture(scope="module")
def peers(lab: Lab) -> Peers:
    workdir = lab.workdir
    gobgp_conf = workdir / "gobgpd.toml"
    gobgp_conf.write_text(gobgpd_config())
    gobgpd = lab.start(
        "gobgpd",
        GOBGP_NS,
        ["gobgpd", "-f", str(gobgp_conf), "-p", f"--api-hosts=127.0.0.1:{GOBGP_API_PORT}", "--pprof-disable"],
    )
    recorder, exa_log, exa_conf = workdir / "recorder.py", workdir / "exabgp-api.log", workdir / "exabgp.conf"
    recorder.write_text(RECORDER)
    exa_conf.write_text(exabgp_config(recorder, exa_log))
    exa_env = {"exabgp_daemon_user": "root", "exabgp_daemon_drop": "false", "exabgp_api_cli": "false"}
    exabgp = lab.start("exabgp", EXA_NS, [str(EXABGP), "server", str(exa_conf)], env=exa_env)
    bird_log, bird_conf, bird_socket = workdir / "bird.log", workdir / "bird.conf", workdir / "bird.ctl"
    bird_conf.write_text(bird_config(bird_log))
    bird = _start_bird(lab, bird_conf, bird_socket)
    return Peers(lab, workdir, exa_log, bird_log, bird_socket, bird_conf, gobgpd, exabgp, bird)


@pytest.fixture(scope="module")
def holder(lab: Lab, peers: Peers) -> Iterator[HolderThread]:
    thread = HolderThread(HOLD_NS, PEERS, lab.workdir / "holder-events.log").start()
    try:
        yield thread
    finally:
        thread.stop("sk test teardown")


@pytest.fixture(scope="module")
def wrong_md5_holder(lab: Lab, peers: Peers) -> Iterator[HolderThread]:
    thread = HolderThread(HOLD_NS, (WRONG_MD5_PEER,), lab.workdir / "wrong-md5-holder-events.log").start()
    try:
        yield thread
    finally:
        thread.stop()


def _wait(what: str, predicate: Callable[[], Any], seconds: float, lab: Lab) -> Any:
    def check() -> Any:
        lab.check_running()
        return predicate()

    return wait_for(what, check, deadline=time.monotonic() + seconds, interval=0.25)


# -- the tests (in order: they share one set of sessions) ---------------------------------------------------------


def test_every_peer_sees_the_session_established(lab, peers, holder, wrong_md5_holder):
    # gobgpd accepts a passive neighbour only after ~6 s of idle hold at start-up: allow for it.
    _wait("gobgpd IPv4 session", lambda: peers.gobgp_state(HOLDER_FOR_GOBGP_V4) == "established", 25, lab)
    _wait("gobgpd IPv6 + TCP-MD5 session", lambda: peers.gobgp_state(HOLDER_FOR_GOBGP_V6) == "established", 25, lab)
    _wait("ExaBGP session", lambda: peers.exa_state() == "up", 25, lab)
    _wait("BIRD session", peers.bird_established, 25, lab)
    for peer in PEERS:
        status = holder.holder.peer_status(peer.address)
        assert status.state == PeerState.ESTABLISHED and status.established_count == 1, status  # no flapping


def test_peers_received_our_capabilities(peers, holder):
    opens = [m["neighbor"] for m in peers.exa_messages() if m.get("type") == "open"]
    body = [n["open"] for n in opens if n["direction"] == "receive"][0]
    assert body["asn"] == LOCAL_AS and body["router_id"] == ROUTER_ID and body["hold_time"] == 9
    capabilities = {int(code): cap for code, cap in body["capabilities"].items()}
    assert set(capabilities) == {1, 2, 64, 65, 70}
    assert sorted(capabilities[1]["families"]) == ["ipv4/unicast", "ipv6/unicast"]
    assert capabilities[65]["asn4"] == LOCAL_AS
    assert capabilities[64]["time"] == 120 and not capabilities[64]["address-family-flags"]  # receiving side only
    protocols = peers.birdc("show", "protocols", "all", "sk_holder")
    neighbor_caps = protocols.split("Neighbor capabilities", 1)[1].split("Session:", 1)[0]
    features = {line.strip() for line in neighbor_caps.splitlines() if line.strip()}
    expected = {"Multiprotocol", "AF announced: ipv4 ipv6", "Route refresh", "Enhanced refresh", "Graceful restart"}
    assert features == expected | {"4-octet AS numbers"}, protocols
    remote_caps = peers.gobgp_neighbor(HOLDER_FOR_GOBGP_V4)["state"]["remote_cap"]
    names = sorted(cap["type_url"].rsplit(".", 1)[1] for cap in remote_caps)
    assert names == sorted(
        [
            "MultiProtocolCapability",
            "MultiProtocolCapability",
            "RouteRefreshCapability",
            "EnhancedRouteRefreshCapability",
            "FourOctetASNCapability",
            "GracefulRestartCapability",
        ]
    )


def test_nothing_is_advertised_to_any_peer(peers, holder):
    for address in (HOLDER_FOR_GOBGP_V4, HOLDER_FOR_GOBGP_V6):
        received = peers.gobgp_neighbor(address)["state"]["messages"]["received"]
        assert received.get("update", 0) == 0, received
        for family in ("ipv4", "ipv6"):
            assert not peers.gobgp_json("neighbor", address, "adj-in", "-a", family)
    assert not [m for m in peers.exa_messages() if m.get("type") == "update"]
    protocols = peers.birdc("show", "protocols", "all", "sk_holder")
    assert re.search(r"Routes:\s+0 imported", protocols) and re.search(r"Import updates:\s+0 ", protocols), protocols


def test_route_refresh_on_request_reaches_gobgpd(peers, holder):
    def refreshes() -> int:
        return peers.gobgp_neighbor(HOLDER_FOR_GOBGP_V4)["state"]["messages"]["received"].get("refresh", 0)

    before = refreshes()
    assert holder.holder.request_refresh(GOBGP_V4, 1, 1)  # from another thread: queued onto the holder's loop
    _wait("gobgpd to count the ROUTE-REFRESH", lambda: refreshes() == before + 1, 5, peers.lab)
    assert not holder.holder.request_refresh("192.0.2.77", 1, 1)  # not a peer


def test_wrong_md5_password_never_connects(peers, wrong_md5_holder):
    _wait("failed attempts", lambda: len(wrong_md5_holder.of(ConnectFailed, GOBGP_WRONG_MD5)) >= 2, 15, peers.lab)
    # gobgpd listens on that address (the IPv4 session above was dialled to it): only the signature differs, so
    # its kernel drops our SYNs without an answer instead of refusing them.
    assert all("no answer" in e.reason for e in wrong_md5_holder.of(ConnectFailed, GOBGP_WRONG_MD5))
    assert peers.gobgp_state(HOLDER_WRONG_MD5) != "established"
    assert wrong_md5_holder.holder.state(GOBGP_WRONG_MD5) != PeerState.ESTABLISHED
    assert not wrong_md5_holder.of(SessionEstablished, GOBGP_WRONG_MD5)


def test_hold_timer_expiry_when_the_peer_freezes(peers, holder):
    _wait("BIRD session", peers.bird_established, 15, peers.lab)
    os.killpg(peers.bird.process.pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:

        def expired() -> bool:
            return any(e.sent is not None and e.sent.code == 4 for e in holder.of(SessionDown, BIRD))

        _wait("the holder's hold timer to expire", expired, 8, peers.lab)
        assert time.monotonic() - frozen_at <= 3 + 2  # hold time 3 s, and the timer had started before the freeze
    finally:
        os.killpg(peers.bird.process.pid, signal.SIGCONT)
    _wait("BIRD to come back", peers.bird_established, 20, peers.lab)


def test_reconnects_after_the_peer_restarts(peers, holder):
    before = holder.holder.peer_status(BIRD).established_count
    peers.lab.stop(peers.bird)
    _wait("the holder to see BIRD go", lambda: holder.holder.state(BIRD) != PeerState.ESTABLISHED, 10, peers.lab)
    peers.start_bird()
    _wait("BIRD session again", peers.bird_established, 25, peers.lab)
    _wait("the holder again", lambda: holder.holder.peer_status(BIRD).established_count == before + 1, 10, peers.lab)


def test_shutdown_message_reaches_the_peers(peers, holder):
    _wait("BIRD session", peers.bird_established, 15, peers.lab)
    assert peers.gobgp_state(HOLDER_FOR_GOBGP_V4) == "established" and peers.exa_state() == "up"
    holder.stop(SHUTDOWN_TEXT)
    assert holder.error is None
    _wait("BIRD to log the message", lambda: SHUTDOWN_TEXT in peers.bird_log.read_text(errors="replace"), 10, peers.lab)
    _wait(
        "gobgpd to log the message",
        lambda: SHUTDOWN_TEXT in peers.gobgpd.log.read_text(errors="replace"),
        10,
        peers.lab,
    )
    _wait(
        "ExaBGP to record the NOTIFICATION and its message",
        lambda: [
            m for m in peers.exa_messages() if SHUTDOWN_TEXT in json.dumps(m.get("neighbor", {}).get("notification"))
        ],
        10,
        peers.lab,
    )
