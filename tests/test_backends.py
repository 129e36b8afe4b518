"""sniffroute.backends.LiveEngine without root: TAPs replaced by socket pairs that keep frame boundaries.

Checks the threads' contract: a TAP frame becomes a packet-out (tagged for a VLAN interface), a packet-in for the
router is written to the TAP, a truncated or foreign one is not, and the tunnelled frames reach the store,
where a second reader sees them.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Dot1Q, Ether

from parsers.capture import open_capture
from sniffroute import backends
from sniffroute.config import Config, OpenFlowConfig, RouterInterface
from sniffroute.store import Store
from sniffroute.tunnel import PacketOut

ROUTER_MAC = "02:00:5e:10:00:01"
PEER_MAC = "02:00:00:00:00:aa"
WAIT_SECONDS = 5


class FakeTap:
    """A TAP stand-in: `fd` is one end of a SOCK_SEQPACKET pair (one frame per read), `peer` the Linux side."""

    def __init__(self, interface: RouterInterface, *_: object) -> None:
        self.interface = interface
        self._ours, self.peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.fd = self._ours.fileno()
        self.read_size = 65536

    def read(self) -> bytes:
        return self._ours.recv(self.read_size)

    def write(self, frame: bytes) -> None:
        self._ours.send(frame)

    def close(self) -> None:
        self._ours.close()
        self.peer.close()


def _config(store: Path) -> Config:
    def interface(name: str, port: int, vlan: int | None, address: str) -> RouterInterface:
        return RouterInterface(name=name, port=port, vlan=vlan, addresses=(ipaddress.ip_interface(address),), mtu=1500)

    return Config(
        router_mac=ROUTER_MAC,
        interfaces=(interface("sr1", 1, None, "192.0.2.254/24"), interface("sr2", 2, 100, "198.51.100.254/24")),
        peers=(),
        openflow=OpenFlowConfig(listen="127.0.0.1", port=6653, punt_meter_pps=0, glean_meter_pps=0),
        backend="osken",
        store=store,
        save_interval=0.05,
        log_level="info",
    )


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    taps: list[FakeTap] = []

    def fake_open(interface: RouterInterface, *args: object) -> FakeTap:
        taps.append(FakeTap(interface))
        return taps[-1]

    monkeypatch.setattr(backends, "open_tap", fake_open)
    live = backends.LiveEngine(_config(tmp_path / "rib.sqlite"), tmp_path / "rib.sqlite")
    live.start()
    live.fake_taps = taps  # type: ignore[attr-defined]
    yield live
    live.close()


def _wait(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_tap_frames_become_packet_outs(engine: backends.LiveEngine) -> None:
    sent: list[PacketOut] = []
    arrived = threading.Event()
    engine.attach(lambda out: (sent.append(out), arrived.set()))
    untagged = bytes(Ether(src=ROUTER_MAC, dst=PEER_MAC) / IP(src="198.51.100.254", dst="198.51.100.1") / ICMP())
    engine.fake_taps[1].peer.send(untagged)  # type: ignore[attr-defined]
    assert arrived.wait(WAIT_SECONDS)
    assert sent[0].port == 2
    assert Ether(sent[0].frame)[Dot1Q].vlan == 100


def test_tap_frames_without_a_switch_are_counted_not_sent(engine: backends.LiveEngine) -> None:
    engine.fake_taps[0].peer.send(bytes(Ether(src=ROUTER_MAC, dst=PEER_MAC) / IP() / ICMP()))  # type: ignore[attr-defined]
    _wait(lambda: engine.counters.no_switch == 1, "the frame to be counted")
    assert engine.counters.packet_out == 0


def test_packet_ins_for_the_router_reach_its_tap(engine: backends.LiveEngine) -> None:
    frame = bytes(Ether(dst=ROUTER_MAC, src=PEER_MAC) / Dot1Q(vlan=100) / IP(dst="198.51.100.254") / ICMP())
    engine.packet_in(2, frame, len(frame))
    linux_side = engine.fake_taps[1].peer  # type: ignore[attr-defined]
    linux_side.settimeout(WAIT_SECONDS)
    got = linux_side.recv(65536)
    assert Dot1Q not in Ether(got) and Ether(got)[IP].dst == "198.51.100.254"
    # cut by a buffering switch: never delivered; for someone else: refused
    engine.packet_in(2, frame[: len(frame) - 8], len(frame))
    engine.packet_in(1, bytes(Ether(dst=PEER_MAC) / IP(dst="192.0.2.1") / ICMP()))
    assert engine.counters.truncated_packet_in == 1
    assert engine.refused == {"not_for_router": 1}
    assert engine.counters.to_tap == 1


def test_tunnelled_frames_reach_the_store(engine: backends.LiveEngine, tmp_path: Path) -> None:
    engine.attach(lambda out: None)
    syn = Ether(dst=ROUTER_MAC, src=PEER_MAC) / IP(src="192.0.2.1", dst="192.0.2.254") / TCP(dport=179, flags="S")
    engine.packet_in(1, bytes(syn))
    engine.fake_taps[0].peer.send(bytes(Ether(src=ROUTER_MAC, dst=PEER_MAC) / IP() / ICMP()))  # type: ignore[attr-defined]

    def stored() -> dict | None:
        with Store(tmp_path / "rib.sqlite") as store:
            return store.document("tunnel")

    _wait(lambda: (stored() or {}).get("packet_out") == 1, "the tunnel counters in the store")
    _wait(lambda: engine.pipeline.stats.frames == 2 and engine.pipeline.stats.bgp_segments == 1, "the pipeline")


def test_ospf_routes_reach_the_store_without_any_bgp(engine: backends.LiveEngine, tmp_path: Path) -> None:
    """OSPF alone (no BGP message ever) changes what the store must hold: the saved RIB follows the LSDB."""
    engine.attach(lambda out: None)
    _wait(lambda: (tmp_path / "rib.sqlite").exists(), "the first save")
    time.sleep(0.2)  # saves of the empty RIB are behind us
    with open_capture(Path(__file__).parent / "fixtures" / "lab" / "ospf_lab.pcap") as capture:
        frames = [bytes(Ether(frame.data)) for frame in capture if IP in Ether(frame.data)]
    for frame in frames[:400]:
        engine.fake_taps[0].peer.send(frame)  # type: ignore[attr-defined]

    def ospf_routes() -> list[dict]:
        with Store(tmp_path / "rib.sqlite") as store:
            return store.routes(protocol="ospf")

    _wait(lambda: engine.pipeline.stats.ospf_packets > 0, "the OSPF packets in the pipeline")
    _wait(lambda: bool(ospf_routes()), "OSPF routes in the store")


def _frames_to(engine: backends.LiveEngine, count: int) -> list[bytes]:
    frames = [bytes(Ether(src=ROUTER_MAC, dst=PEER_MAC) / IP(id=n) / ICMP()) for n in range(count)]
    before = engine.counters.from_tap
    for frame in frames:
        engine.fake_taps[0].peer.send(frame)  # type: ignore[attr-defined]
    _wait(lambda: engine.counters.from_tap == before + count, "the TAP frames")
    return frames


def test_frames_read_while_no_switch_is_connected_go_out_when_one_connects(engine: backends.LiveEngine) -> None:
    frames = _frames_to(engine, 3)
    _wait(lambda: engine.counters.no_switch == 3, "the frames to be held")
    sent: list[PacketOut] = []
    engine.attach(lambda out: sent.append(out))
    assert [out.frame for out in sent] == frames  # in the order the Linux stack sent them
    assert (engine.counters.packet_out, engine.counters.no_switch_dropped) == (3, 0)
    _wait(lambda: engine.pipeline.stats.frames == 3, "the held frames in the pipeline, once sent")


def test_held_frames_are_bounded_in_number_and_age(
    engine: backends.LiveEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backends, "HELD_FRAMES", 2)
    frames = _frames_to(engine, 3)
    _wait(lambda: engine.counters.no_switch == 3, "the frames to be held")
    sent: list[PacketOut] = []
    engine.attach(lambda out: sent.append(out))
    assert [out.frame for out in sent] == frames[1:]  # the oldest went
    engine.detach()
    _frames_to(engine, 1)
    _wait(lambda: engine.counters.no_switch == 4, "the next frame to be held")
    monkeypatch.setattr(backends, "HELD_SECONDS", 0.0)
    engine.attach(lambda out: sent.append(out))
    assert len(sent) == 2  # held too long: not sent
    assert engine.counters.no_switch_dropped == 2  # one too many, one too old


def test_a_frame_the_going_connection_refuses_waits_for_the_next(engine: backends.LiveEngine) -> None:
    engine.attach(lambda out: False)  # the backend's connection is closing
    frames = _frames_to(engine, 1)
    _wait(lambda: engine.counters.no_switch == 1, "the frame to be held")
    sent: list[PacketOut] = []
    engine.attach(lambda out: sent.append(out))
    assert [out.frame for out in sent] == frames


def test_drain_waits_for_a_frame_still_being_passed_on(
    engine: backends.LiveEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shutting down: the last NOTIFICATION must reach the switch and the pipeline before the engine closes, even
    when its reader thread takes longer than the quiet interval to pass it on (a busy machine)."""
    sent: list[PacketOut] = []
    engine.attach(sent.append)
    from_tap = engine.tunnel.from_tap

    def slow(number: int, frame: bytes) -> PacketOut:
        time.sleep(0.3)
        return from_tap(number, frame)

    monkeypatch.setattr(engine.tunnel, "from_tap", slow)
    engine.fake_taps[0].peer.send(bytes(Ether(src=ROUTER_MAC, dst=PEER_MAC) / IP() / ICMP()))  # type: ignore[attr-defined]
    _wait(lambda: engine.counters.from_tap == 1, "the frame to be read")
    engine.drain(quiet=0.02, limit=WAIT_SECONDS)
    assert len(sent) == 1


def test_drain_waits_for_a_frame_not_yet_read(tmp_path: Path) -> None:
    live = backends.LiveEngine(_config(tmp_path / "rib.sqlite"), tmp_path / "rib.sqlite")  # no reader threads
    tap = FakeTap(_config(tmp_path / "rib.sqlite").interfaces[0])
    live._taps = [tap]
    live._tap_busy = [False]
    try:
        tap.peer.send(b"frame")
        started = time.monotonic()
        live.drain(quiet=0.02, limit=0.5)
        assert time.monotonic() - started >= 0.5  # waited for it, to the limit
        tap.read()
        started = time.monotonic()
        live.drain(quiet=0.02, limit=0.5)
        assert time.monotonic() - started < 0.2
    finally:
        tap.close()
