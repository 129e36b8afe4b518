"""The live engine both controller backends drive: TAPs, the tunnel, the sniff pipeline and the store.

A backend (POX or os-ken) only translates: it calls `LiveEngine.packet_in` with each packet-in, gives the engine a
`send` callable when a switch connects (`attach`) and takes it back when it goes (`detach`), and turns the
tunnel's punt flows into its own flow mods. Everything else happens here, in threads of our own:

- one reader thread per TAP: a frame the Linux stack sends becomes a packet-out through `send`. While no switch
  is connected (a reconnect, the controller starting) frames are held, a bounded number for a bounded time, and
  sent when one connects: a KEEPALIVE sent during a one-second reconnect then arrives a moment late instead of
  waiting for TCP's backed-off retransmission, which a short hold time may not survive;
- one pipeline thread: every frame that crosses the tunnel, both ways, is queued for the sniff pipeline, which
  the thread feeds, commits and saves to the store every `save_interval` (and at `close`). A slow pipeline or
  a slow disk never holds up the OpenFlow connection: the queue is bounded and overflow is counted, not waited on.
  The thread commits the RIB whenever its queue runs dry, so a sniffed UPDATE reaches the FIB at once.

With routing enabled (`enable_routing`, by the backend, which knows the switch protocol's capabilities), the
Loc-RIB's changes go to `sniffroute.backends.routing.Routing`, which turns them into flows on its own thread.
"""

from __future__ import annotations

import gc
import json
import logging
import queue
import select
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parsers.bgp.constants import MessageType
from parsers.frames import LinkType
from sniffroute.backends.routing import Routing
from sniffroute.config import Config
from sniffroute.fib import Capabilities
from sniffroute.locrib import LocRib
from sniffroute.pipeline import Pipeline
from sniffroute.sessions import Speaker
from sniffroute.store import Store
from sniffroute.summary import session_view
from sniffroute.tap import Tap, open_tap
from sniffroute.tunnel import PacketOut, PuntFlow, Refused, Tunnel, punt_flows

log = logging.getLogger("sniffroute.live")

PIPELINE_QUEUE_FRAMES = 200_000  # frames waiting for the pipeline before new ones are dropped (and counted)
TAP_POLL_SECONDS = 0.25  # how often an idle TAP reader looks whether it should stop
PIPELINE_POLL_SECONDS = 0.1
DRAIN_QUIET_SECONDS = 0.1
KEEPALIVE = MessageType.KEEPALIVE.name.lower()  # how sniffroute.sessions counts them
DRAIN_LIMIT_SECONDS = 1.0
COMMIT_INTERVAL_SECONDS = 0.05  # under a steady stream of frames, the RIB is still committed this often
EXPIRE_INTERVAL_SECONDS = 1.0  # stale routes (graceful restart, restored) expire on time even without frames
FIB_DOCUMENT = "fib"
HELD_FRAMES = 1024  # TAP frames held while no switch is connected; the oldest go first
HELD_SECONDS = 5.0  # ... and for at most this long: older ones are dropped when a switch connects
# A controller that routes holds a table's worth of long-lived objects (paths, entries, plans, flows per route):
# at the collector's default pace (every 700 allocations) a 100,000-route load spends about a third of its time
# re-walking them. Cycles are rare here; the collector still runs, only less often (as `sniffroute replay` does).
ROUTING_GC_THRESHOLDS = (100_000, 50, 100)
Send = Callable[[PacketOut], bool | None]  # False: the backend could not take it (its connection is going)


@dataclass(slots=True)
class TunnelCounters:
    packet_in: int = 0
    to_tap: int = 0
    from_tap: int = 0
    packet_out: int = 0
    truncated_packet_in: int = 0  # the switch buffered and cut the frame; it cannot be delivered
    no_switch: int = 0  # TAP frames read while no switch was connected: held for the next one
    no_switch_dropped: int = 0  # ... and of those, the ones never sent (too many, or held too long)
    pipeline_dropped: int = 0
    pipeline_errors: int = 0
    tap_write_errors: int = 0
    packet_out_errors: int = 0
    switch_connections: int = 0

    def as_dict(self, refused: Counter[str]) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__} | {"refused": dict(refused)}  # type: ignore[attr-defined]


class LiveEngine:
    def __init__(self, config: Config, store_path: Path) -> None:
        self.config = config
        self.store_path = store_path
        self.tunnel = Tunnel(config.router_mac, config.interfaces)
        self.counters = TunnelCounters()
        self.refused: Counter[str] = Counter()
        self.pipeline = Pipeline(on_gap=self._gap)
        self.on_gap: Callable[[str], None] | None = None  # peer address whose sniffed stream lost bytes
        self.documents: dict[str, Callable[[], Any]] = {}  # more documents to save with the RIB
        self._taps: list[Tap] = []
        self._tap_busy: list[bool] = []  # per TAP: a frame read and not yet passed on (`drain` waits for it)
        self._send: Send | None = None
        self._held: deque[tuple[PacketOut, bytes, float]] = deque()  # frames read while no switch was connected
        self._held_lock = threading.Lock()
        self._frames: queue.SimpleQueue[tuple[bytes, float] | None] = queue.SimpleQueue()
        self._queued = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.routing: Routing | None = None
        self._locrib: LocRib | None = None  # built and used on the pipeline thread only
        self._saved_fib: Any = None  # the "fib" document a previous run left in the store
        self._saved_documents: dict[str, Any] = {}
        self._freeze_rib = threading.Event()  # shutting down: the store keeps the RIB as it is now

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the TAPs and start the reader and pipeline threads (raises TapError, StoreError)."""
        store = Store(self.store_path)  # fail now, not at the first save, when the store is unusable
        try:
            self._saved_fib = store.document(FIB_DOCUMENT)  # read before the first save replaces it
        except Exception:  # noqa: BLE001 - an old or damaged store: start without it
            self._saved_fib = None
        finally:
            store.close()
        try:
            for interface in self.config.interfaces:
                self._taps.append(open_tap(interface, self.config.router_mac, self.config.tun_device))
        except Exception:
            self.close()
            raise
        self._spawn(self._pipeline_loop, "sniffroute-pipeline")
        self._tap_busy = [False] * len(self._taps)
        for number, tap in enumerate(self._taps):
            self._spawn(lambda n=number, t=tap: self._tap_loop(n, t), f"sniffroute-tap-{tap.interface.name}")
        log.info("TAPs up: %s", ", ".join(t.interface.name for t in self._taps))

    def _restore_rib(self, store: Store) -> None:
        """The BGP RIB a previous run saved, held stale until the peers' sessions are back (SessionTracker.
        adopt_restored): `sniffroute rib` shows it from the first save on, and the restored forwarding entries
        have it behind them. Run by the pipeline thread before any frame and any save: a full table takes
        seconds, and the switch connection and the TAPs need not wait for it (frames queue meanwhile)."""
        loaded = store.load_rib()
        if loaded.problem is not None:
            log.warning("BGP RIB not restored: %s", loaded.problem)
            return
        if not loaded.routes:
            return
        hold = self.config.restore_hold
        try:
            count = self.pipeline.rib.restore(loaded.peers, loaded.routes, stale_until=time.time() + hold)
            self.pipeline.sessions.adopt_restored(hold)
        except Exception:  # a bug must not keep the controller down: start empty, as without a store
            log.exception("BGP RIB not restored")
            self.pipeline = Pipeline(on_gap=self._gap)
            return
        peers = len({route.path.peer for route in loaded.routes})
        log.info("restored %d BGP paths of %d peers from the store, stale until their sessions are back", count, peers)

    def freeze_rib(self) -> None:
        """Shutting down: the sessions are about to close and the RIB to empty. The store keeps the RIB as it is
        now (routes and peers), for the next start to restore; later saves update the documents only."""
        self._freeze_rib.set()

    def enable_routing(self, capabilities: Capabilities) -> Routing:
        """Routes as flows: a Fib for this switch protocol, restored from what a previous run stored."""
        gc.set_threshold(*ROUTING_GC_THRESHOLDS)
        routing = Routing(self.config, capabilities)
        restored = routing.restore(self._saved_fib)
        if restored:
            log.info("restored %d forwarding entries from the store; the switch keeps its flows", restored)
        self.documents[FIB_DOCUMENT] = routing.document
        routing.start()
        self.routing = routing
        return routing

    def close(self) -> None:
        """Stop the threads, save the RIB a last time, close the TAPs. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.routing is not None:
            self.routing.stop()
        self._stop.set()
        self._frames.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        for tap in self._taps:
            tap.close()
        self._taps.clear()

    def drain(self, quiet: float = DRAIN_QUIET_SECONDS, limit: float = DRAIN_LIMIT_SECONDS) -> None:
        """Wait until the TAPs have been quiet for `quiet` seconds (at most `limit`): what the Linux stack sent
        last, a NOTIFICATION say, has then left through the switch and reached the pipeline's queue (or is held
        for the next switch, with none connected). Quiet also means no frame waiting in a TAP or being passed on:
        on a busy machine a reader thread can wait longer than `quiet` for its turn."""
        deadline = time.monotonic() + limit
        seen = -1
        while time.monotonic() < deadline and (seen != self.counters.from_tap or self._taps_busy()):
            seen = self.counters.from_tap
            time.sleep(quiet)

    def _taps_busy(self) -> bool:
        if any(self._tap_busy):
            return True
        poller = select.poll()
        for tap in self._taps:
            poller.register(tap.fd, select.POLLIN)
        return any(events & select.POLLIN for _fd, events in poller.poll(0))

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- switch side -----------------------------------------------------------------------------------------
    def punt_flows(self, *, ipv6_fields: bool) -> list[PuntFlow]:
        return punt_flows(self.config.router_mac, self.config.interfaces, ipv6_fields=ipv6_fields)

    def attach(self, send: Send) -> None:
        """A switch connected: frames held meanwhile go out first, then the TAPs' new frames."""
        self.counters.switch_connections += 1
        with self._held_lock:
            held, self._held = self._held, deque()
            fresh = time.monotonic() - HELD_SECONDS
            for out, frame, at in held:
                if at < fresh or send(out) is False:
                    self.counters.no_switch_dropped += 1
                    continue
                self.counters.packet_out += 1
                self._to_pipeline(frame)
            self._send = send

    def detach(self) -> None:
        self._send = None

    def _send_or_hold(self, out: PacketOut, frame: bytes) -> None:
        """A TAP frame to the switch, or, with none connected (or its connection going), held for the next."""
        send = self._send
        while True:
            if send is not None and send(out) is not False:
                self.counters.packet_out += 1
                self._to_pipeline(frame)
                return
            with self._held_lock:
                if self._send is send:  # no newer switch to try
                    if len(self._held) >= HELD_FRAMES:
                        self._held.popleft()
                        self.counters.no_switch_dropped += 1
                    self._held.append((out, frame, time.monotonic()))
                    self.counters.no_switch += 1
                    return
                send = self._send  # one connected meanwhile

    def packet_in(self, in_port: int, frame: bytes, total_len: int | None = None) -> None:
        """A packet-in from the switch (called on the backend's OpenFlow thread)."""
        counters = self.counters
        counters.packet_in += 1
        if total_len is not None and total_len > len(frame):
            counters.truncated_packet_in += 1
            return
        routed = self.tunnel.from_switch(in_port, frame)
        if isinstance(routed, Refused):
            self.refused[routed.reason.name.lower()] += 1
            return
        try:
            self._taps[routed.interface].write(routed.frame)
        except (OSError, IndexError):
            counters.tap_write_errors += 1
            return
        counters.to_tap += 1
        routing = self.routing
        if routing is not None:
            routing.frame_from_switch(routed.interface, routed.frame)
        self._to_pipeline(routed.frame)

    # -- TAP side --------------------------------------------------------------------------------------------
    def _tap_loop(self, number: int, tap: Tap) -> None:
        poller = select.poll()
        poller.register(tap.fd, select.POLLIN)
        counters = self.counters
        busy = self._tap_busy
        while not self._stop.is_set():
            if not poller.poll(TAP_POLL_SECONDS * 1000):
                continue
            busy[number] = True
            try:
                frame = tap.read()
            except OSError as exc:
                log.error("%s: read failed: %s", tap.interface.name, exc)
                busy[number] = False
                return
            counters.from_tap += 1
            try:
                self._send_or_hold(self.tunnel.from_tap(number, frame), frame)
            except Exception:  # a backend bug must not end this TAP's tunnel: say it once, count, go on
                counters.packet_out_errors += 1
                if counters.packet_out_errors == 1:
                    log.exception("packet-out failed (counted in packet_out_errors; later failures are not logged)")
            finally:
                busy[number] = False

    # -- pipeline --------------------------------------------------------------------------------------------
    def _to_pipeline(self, frame: bytes) -> None:
        if self._queued >= PIPELINE_QUEUE_FRAMES:
            self.counters.pipeline_dropped += 1
            return
        self._queued += 1  # approximate across threads; only bounds memory
        self._frames.put((frame, time.time()))

    def _pipeline_loop(self) -> None:
        store = Store(self.store_path)
        self._restore_rib(store)
        feed = self.pipeline.feed_frame
        ethernet = int(LinkType.ETHERNET)
        next_save = time.monotonic()
        next_commit = next_save
        next_expire = next_save
        saved_signature: tuple[Any, ...] | None = None
        frozen = False
        try:
            while True:
                try:
                    item = self._frames.get(timeout=PIPELINE_POLL_SECONDS)
                except queue.Empty:
                    item = ()
                if not frozen and self._freeze_rib.is_set():
                    self._save(store)  # before any frame queued after the request is fed
                    frozen = True
                if item is None:
                    break
                if item:
                    self._queued -= 1
                    try:
                        feed(ethernet, item[0], item[1])
                    except Exception:  # a pipeline bug must not stop the tunnel: count it, say it once
                        self._failed("feed")
                if time.monotonic() >= next_expire:
                    self.pipeline.sessions.expire(time.time())
                    next_expire = time.monotonic() + EXPIRE_INTERVAL_SECONDS
                if self.routing is not None and (self._frames.empty() or time.monotonic() >= next_commit):
                    self._commit()
                    next_commit = time.monotonic() + COMMIT_INTERVAL_SECONDS
                if time.monotonic() >= next_save:
                    # A full table is rewritten only when routes or sessions changed, not for each KEEPALIVE.
                    signature = self._rib_signature()
                    if signature != saved_signature and not frozen:
                        if self._save(store):
                            saved_signature = signature
                    else:
                        self._save_documents(store)
                    next_save = time.monotonic() + self.config.save_interval
            if frozen:
                self._save_documents(store)
            else:
                self._save(store)
        finally:
            store.close()

    def _commit(self) -> None:
        """Settle the RIB and hand the Loc-RIB's changes to the FIB (pipeline thread only)."""
        try:
            ospf_changed = self.pipeline.ospf.dirty
            changes = self.pipeline.commit()
            routing = self.routing
            if routing is None:
                return
            if self._locrib is None:
                self._locrib = LocRib(self.pipeline.rib, self.config.interfaces)
                routing.routes_changed(self._locrib.rebuild())
            elif changes or ospf_changed:
                routing.routes_changed(self._locrib.apply(changes, ospf_changed))
        except Exception:
            self._failed("commit")

    def _rib_signature(self) -> tuple[Any, ...]:
        """Changes whenever what the store holds would: messages other than KEEPALIVE, gaps, sessions, peers, and
        the OSPF LSDB and segments (OSPF routes change without any BGP message)."""
        sessions = self.pipeline.sessions
        stats = sessions.stats
        messages = sum(count for kind, count in stats.messages.items() if kind != KEEPALIVE)
        peers = tuple((p.id, p.state, p.generation, p.possibly_stale) for p in self.pipeline.rib.peers.values())
        states = tuple(s.state for s in sessions.all_sessions())
        ospf = self.pipeline.ospf
        lsdb = ospf.lsdb.stats
        changes = (lsdb.installed, lsdb.refreshes, lsdb.flushes, lsdb.aged_out, len(ospf.segments))
        return messages, stats.gaps, states, peers, changes

    def _failed(self, what: str) -> None:
        self.counters.pipeline_errors += 1
        if self.counters.pipeline_errors == 1:
            log.exception("pipeline %s failed (counted in pipeline_errors; later failures are not logged)", what)

    def _gap(self, speaker: Speaker, _now: float) -> None:
        if self.on_gap is not None:
            self.on_gap(speaker.flow.src)

    def _documents(self) -> dict[str, Any]:
        documents = {
            "sessions": [session_view(s) for s in self.pipeline.sessions.all_sessions()],
            "tunnel": self.counters.as_dict(self.refused),
        }
        for name, provide in self.documents.items():
            documents[name] = provide()
        return documents

    def _save(self, store: Store) -> bool:
        try:
            self._commit()
            documents = self._documents()
            rib = self.pipeline.rib
            # Only the routes that changed since the last save are written again (a full table takes a third of a
            # second and more to write whole); the first save writes it all.
            store.save(rib, documents, changed=rib.take_changed_prefixes())
            self._saved_documents = documents
        except Exception:  # the store (or a bug) must not stop the tunnel; the next save tries again
            self._failed("save")
            return False
        return True

    def _save_documents(self, store: Store) -> bool:
        try:
            with store.db:
                for name, value in self._documents().items():
                    if value is self._saved_documents.get(name):
                        continue  # unchanged (a provider returns the same object while nothing changed)
                    store.db.execute("INSERT OR REPLACE INTO documents VALUES (?,?)", (name, json.dumps(value)))
                    self._saved_documents[name] = value
        except Exception:
            self._failed("save")
            return False
        return True


HOLDER_STOP_SECONDS = 5.0
SHUTDOWN_MESSAGE = "sniffroute shutting down"


def start_session_holder(config: Config, engine: LiveEngine | None = None) -> Callable[[], None]:
    """Start the BGP session holder for the configured peers on a thread of its own (asyncio); returns the
    function that stops it (Cease/Administrative Shutdown with a message to every peer). No peers: nothing runs."""
    if not config.peers:
        return lambda: None
    import asyncio

    from sniffroute.speaker import PeerConfig, SessionHolder

    peers = [
        PeerConfig(
            address=str(p.address),
            peer_as=p.peer_as,
            local_as=p.local_as,
            router_id=str(p.router_id),
            local_address=str(p.local_address),
            passive=p.passive,
            hold_time=p.hold_time,
            md5_password=p.password,
        )
        for p in config.peers
    ]
    holder = SessionHolder(peers, lambda event: log.info("bgp: %s", event))
    if engine is not None:
        engine.on_gap = _refresh_on_gap(holder)
        engine.documents["holder"] = lambda: [
            {name: getattr(status, name) for name in status.__dataclass_fields__} for status in holder.status()
        ]
    thread = threading.Thread(target=lambda: asyncio.run(holder.run()), name="sniffroute-bgp", daemon=True)
    thread.start()

    def stop() -> None:
        if engine is not None:
            engine.freeze_rib()  # the peers' routes leave the RIB now; the store keeps them for the next start
            if engine.routing is not None:
                engine.routing.freeze()  # ... and the switch its flows
        deadline = time.monotonic() + HOLDER_STOP_SECONDS
        while thread.is_alive() and time.monotonic() < deadline:
            try:
                holder.stop_threadsafe(SHUTDOWN_MESSAGE).result(timeout=HOLDER_STOP_SECONDS)
                break
            except RuntimeError:  # its loop has not started yet
                time.sleep(PIPELINE_POLL_SECONDS)
            except TimeoutError:
                log.warning("the session holder did not stop in time")
                break
        thread.join(timeout=HOLDER_STOP_SECONDS)

    return stop


def _refresh_on_gap(holder: Any) -> Callable[[str], None]:
    from parsers.bgp.constants import Afi, Safi

    configured = {p.address for p in holder.peers}

    def refresh(address: str) -> None:
        if address in configured:
            for afi in (Afi.IPV4, Afi.IPV6):
                holder.request_refresh(address, afi, Safi.UNICAST)

    return refresh
