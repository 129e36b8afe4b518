"""Routes as flows, live: the FIB (sniffroute.fib, pure) driven by the engine, the switch and the kernel.

Inputs arrive on other threads and are queued under one lock: Loc-RIB changes (pipeline thread), ARP seen in
the tunnel and glean hits (OpenFlow thread), barrier replies, errors and the flows read back at connect (OpenFlow
thread). One thread of our own (`sniffroute-fib`) applies them to the Fib, sends the resulting ops through the
backend's `FlowSwitch`, asks the kernel to resolve next hops (a UDP datagram toward the address makes it ARP /
ND through the TAP, bounded and backed off as the Fib asks) and reads the TAPs' neighbour tables (pyroute2).

Audits: the switch's route flows are read again after changes settle and every `AUDIT_SECONDS`; what changed
there behind our back is put right (`Fib.audit`).

Controller restart: the forwarding entries and neighbour MACs are saved in the store ("fib" document) and
restored at start, so the plan equals what the switch still holds and the reconcile sends nothing. Restored
entries the live RIB has not confirmed within `RESTORE_GRACE_SECONDS` are withdrawn.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import countOf
from typing import Any, Protocol

from sniffroute.config import Config
from sniffroute.fib import (
    Barrier,
    Capabilities,
    Fib,
    FlowCommand,
    FlowOp,
    FlowSpec,
    GroupOp,
    GroupSpec,
    NeighbourObservation,
    Op,
    ResolveRequest,
    RouteEntry,
    RouteState,
)
from sniffroute.fib.diff import PHASES, ours
from sniffroute.fib.model import Network, is_route_group
from sniffroute.locrib import entries_from_json, entries_json

log = logging.getLogger("sniffroute.fib")

TICK_SECONDS = 0.2  # the FIB thread's idle period: resolution requests, retries, restore grace
KERNEL_POLL_SECONDS = 1.0
LINKS_REFRESH_SECONDS = 30.0  # the TAPs' link indexes are read again this often (a TAP made anew, say)
KERNEL_RESOLUTION_SECONDS = 5.0  # longer than the kernel takes to give up on a neighbour (3 probes, 1 s apart)
AUDIT_SECONDS = 30.0  # how often the switch's route flows are read again: `sniffroute flows`, and put right
AUDIT_QUIET_SECONDS = 1.0  # ... and once changes have settled for this long
RESTORE_GRACE_SECONDS = 90.0
# A big change (a full table) is planned and sent this many routes at a time: the switch applies one chunk's
# flow mods while the next is planned, instead of waiting for the whole plan.
ROUTES_PER_STEP = 5_000
DOCUMENT_ROUTES_PER_SECOND = 50_000  # a big table's document is rebuilt at most every routes / this seconds
DISCARD_PORT = 9  # RFC 863: a datagram toward it makes the kernel resolve the address, and nobody minds it
ETH_TYPE_ARP = b"\x08\x06"
ETH_TYPE_IPV4 = b"\x08\x00"
ARP_MIN_FRAME = 42
IPV4_DST_END = 14 + 20  # Ethernet header, then the IPv4 destination ends the fixed header
IPV6_DST_END = 14 + 40  # ... and the IPv6 destination the fixed IPv6 header
ETH_TYPE_IPV6 = b"\x86\xdd"
# Kernel neighbour states (linux/neighbour.h) whose link-layer address can be used.
NUD_VALID = 0x02 | 0x04 | 0x08 | 0x10 | 0x80  # REACHABLE STALE DELAY PROBE PERMANENT
NUD_FAILED = 0x20
USER_HZ = 100  # the unit of the kernel's neighbour cache ages (clock_t)


class FlowSwitch(Protocol):
    """What a backend gives the FIB: send ops in order (a Barrier becomes a barrier request whose reply the
    backend reports with `Routing.confirmed(seq)`; an error for an op with `Routing.refused(op, text)`)."""

    def send_ops(self, ops: Sequence[Op]) -> None: ...

    def request_audit(self) -> None:
        """Read the switch's route flows again; the backend answers with `Routing.audit`."""


class OpLedger:
    """Which op each xid carried and which ops a barrier closes, so an error reply maps back to its op and a barrier
    reply to its sequence number. Ops are sent from the pipeline thread; replies arrive on the controller's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: dict[int, FlowOp | GroupOp] = {}  # xid -> op, until the barrier after it is answered
        self._barriers: dict[int, tuple[int, list[int]]] = {}  # barrier xid -> (seq, op xids before it)
        self._pending: list[int] = []

    def sent(self, xid: int, op: FlowOp | GroupOp) -> None:
        self.sent_many(((xid, op),))

    def sent_many(self, sent: Sequence[tuple[int, FlowOp | GroupOp]]) -> None:
        """Ops about to go out, with their xids, in the order they are written."""
        with self._lock:
            self._record(sent)

    def barrier(self, xid: int, seq: int, sent: Sequence[tuple[int, FlowOp | GroupOp]] = ()) -> None:
        """A barrier about to go out (after the ops `sent`, not yet recorded, and every op recorded before)."""
        with self._lock:
            self._record(sent)
            self._barriers[xid] = (seq, self._pending)
            self._pending = []

    def _record(self, sent: Sequence[tuple[int, FlowOp | GroupOp]]) -> None:
        """(lock held)"""
        self._ops.update(sent)
        self._pending.extend(xid for xid, _ in sent)

    def barrier_replied(self, xid: int) -> int | None:
        """The sequence number the barrier confirms, or None when `xid` is not one of our barriers."""
        with self._lock:
            done = self._barriers.pop(xid, None)
            if done is None:
                return None
            seq, xids = done
            for before in xids:
                self._ops.pop(before, None)
            return seq

    def op_of(self, xid: int) -> FlowOp | GroupOp | None:
        with self._lock:
            return self._ops.get(xid)


class Routing:
    def __init__(self, config: Config, capabilities: Capabilities, *, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        # Glean flows for the connected subnets only once the backend says the switch rate-limits them
        # (`set_glean`): until then, and on switches without meters, frames for a host not yet resolved are
        # dropped by the switch (a flood of them must not reach the controller), and hosts are resolved from
        # their own ARP (a host asks for its gateway first) and from the kernel's neighbour table.
        self.fib = Fib(config.router_mac, config.interfaces, capabilities, glean_connected=False)
        self.entries: dict[Network, RouteEntry] = {}  # what the Fib was given (live and restored)
        self.restored: set[Network] = set()
        self.restore_deadline: float | None = None
        self.switch_flows: list[FlowSpec] | None = None  # last read back from the switch
        self.switch_groups: list[GroupSpec] = []
        self.switch_read_at: float | None = None  # wall time of that read
        self.ops_sent = 0
        self._last_ops: float | None = None  # when ops last went out and no audit has read them back since
        self.last_change: float | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._routes: dict[Network, RouteEntry | None] = {}
        # A big change being applied a step at a time (its items, in order, and how far), before `_routes`:
        # slicing a list costs nothing per route, where splitting a dict hashes every network again.
        self._backlog: list[tuple[Network, RouteEntry | None]] = []
        self._backlog_at = 0
        self._seen: list[NeighbourObservation] = []
        self._gleaned: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        self._switch: FlowSwitch | None = None
        # When the switch was read back (None: not yet): incremental ops may go out from then on, and the kernel's
        # neighbour failures count only from then on.
        self._ready_since: float | None = None
        self._netlink: Any = None  # the FIB thread's netlink socket (pyroute2), for the kernel's neighbours
        self._ifindex: dict[str, int] = {}  # TAP name -> link index
        self._ifindex_until = 0.0
        self._thread: threading.Thread | None = None
        self._names = {i.name for i in config.interfaces}
        self._own_v4 = {a.ip.packed for i in config.interfaces for a in i.addresses if a.version == 4}
        self._own_v6 = {a.ip.packed for i in config.interfaces for a in i.addresses if a.version == 6}
        self._ports = {n: (i.port, i.vlan) for n, i in enumerate(config.interfaces)}
        self._version = 0
        self._stuck_reported = 0  # differences an audit could not put right, as last logged
        self._document: tuple[int, Any, float] | None = None
        self.on_ops: Callable[[Sequence[Op]], None] | None = None  # for measurements: called before sending
        self.frozen = False

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="sniffroute-fib", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._document = None  # the last save must hold the latest state, however big the table
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_netlink()

    def _close_netlink(self) -> None:
        netlink, self._netlink, self._ifindex = self._netlink, None, {}
        if netlink is not None:
            try:
                netlink.close()
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                log.debug("closing the netlink socket failed: %s", exc)

    def freeze(self) -> None:
        """Shutting down: the sessions are about to close, and the RIB to empty. The switch keeps forwarding
        with the flows it has, and the store keeps the entries that made them, for the next start."""
        with self._lock:
            self.frozen = True
            self._routes.clear()
            self._backlog, self._backlog_at = [], 0
            self._document = None

    def restore(self, document: Any) -> int:
        """Seed the Fib from a saved "fib" document: entries and neighbour MACs. Returns the entries restored."""
        if not isinstance(document, dict):
            return 0
        now = self.clock()
        entries = entries_from_json(document.get("routes"))
        with self._lock:
            for row in document.get("neighbours") or []:
                try:
                    number = int(row["interface"])
                    port, vlan = self._ports[number]
                    address = ipaddress.ip_address(row["address"])
                    seen = NeighbourObservation(
                        address=address, mac=str(row["mac"]), port=port, vlan=vlan, source="store"
                    )
                except (KeyError, TypeError, ValueError):
                    continue
                self.fib.observe(seen, now)
            self.fib.update(entries, now)
            self.entries.update(entries)
            self.restored = set(entries)
            self.restore_deadline = now + RESTORE_GRACE_SECONDS if entries else None
        return len(entries)

    # -- inputs (any thread) ---------------------------------------------------------------------------------
    def routes_changed(self, changes: Mapping[Network, RouteEntry | None]) -> None:
        if not changes:
            return
        with self._lock:
            if self.frozen:
                return
            self._routes.update(changes)
        self._wake.set()

    def frame_from_switch(self, interface: int, frame: bytes) -> None:
        """A frame from a neighbour (untagged, as the tunnel hands it to the TAP): learn from its ARP; an IP
        datagram not for the router came up through a connected subnet's glean flow: resolve its target."""
        kind = frame[12:14]
        if kind == ETH_TYPE_IPV4:
            if len(frame) >= IPV4_DST_END and frame[IPV4_DST_END - 4 : IPV4_DST_END] not in self._own_v4:
                self._gleaned_target(ipaddress.IPv4Address(frame[IPV4_DST_END - 4 : IPV4_DST_END]))
            return
        if kind == ETH_TYPE_IPV6:
            target = frame[IPV6_DST_END - 16 : IPV6_DST_END]
            if len(frame) >= IPV6_DST_END and target[0] != 0xFF and target not in self._own_v6:
                self._gleaned_target(ipaddress.IPv6Address(target))
            return
        if kind != ETH_TYPE_ARP or len(frame) < ARP_MIN_FRAME:
            return
        sender_mac = frame[22:28]
        sender = ipaddress.IPv4Address(frame[28:32])
        if int(sender) == 0:
            return  # ARP probe (RFC 5227): no address yet
        port, vlan = self._ports[interface]
        mac = ":".join(f"{b:02x}" for b in sender_mac)
        with self._lock:
            self._seen.append(NeighbourObservation(address=sender, mac=mac, port=port, vlan=vlan, source="arp"))
        self._wake.set()

    def _gleaned_target(self, target: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        """A routed frame the switch sent up (a connected subnet's host not yet resolved): resolve its target."""
        with self._lock:
            if len(self._gleaned) < 1024:
                self._gleaned.append(target)
        self._wake.set()

    # -- switch side (the backend's OpenFlow thread) ----------------------------------------------------------
    def set_glean(self, enabled: bool) -> None:
        """Whether the switch may send up frames toward unresolved hosts (glean flows, rate-limited by it)."""
        with self._lock:
            self.fib.set_glean(enabled, self.clock())
            self._version += 1
        self._wake.set()

    def attached(self, switch: FlowSwitch) -> None:
        """A switch connected; nothing is sent until `read_back` tells what it holds."""
        with self._lock:
            self._switch = switch
            self._ready_since = None
            self.fib.disconnected()

    def detached(self) -> None:
        with self._lock:
            self._switch = None
            self._ready_since = None
            self.fib.disconnected()

    def read_back(self, flows: Iterable[FlowSpec], groups: Iterable[GroupSpec]) -> None:
        """The switch's flows and groups (ours, translated by the backend): send only the difference."""
        flows, groups = [f for f in flows if ours(f)], [g for g in groups if is_route_group(g.group_id)]
        with self._lock:
            self._drain(self.clock())
            self.switch_flows, self.switch_groups = flows, groups
            self.switch_read_at = time.time()
            ops = self.fib.reconnect(flows, groups, self.clock())
            self._ready_since = self.clock()
            switch = None if self.frozen else self._switch
            self._version += 1
        changes = sum(1 for op in ops if not isinstance(op, Barrier))
        log.info("switch read back: %d route flows, %d groups; %d ops to converge", len(flows), len(groups), changes)
        if switch is not None and ops:
            self._send(switch, ops)

    def audit(self, flows: Iterable[FlowSpec], groups: Iterable[GroupSpec]) -> None:
        """A later read-back: what the switch holds now (for `sniffroute flows`), and what changed there behind
        our back put right."""
        with self._lock:
            self.switch_flows = [f for f in flows if ours(f)]
            self.switch_groups = [g for g in groups if is_route_group(g.group_id)]
            self.switch_read_at = time.time()
            self._version += 1
            switch = self._switch if self._ready_since is not None and not self.frozen else None
            ops = self.fib.audit(self.switch_flows, self.switch_groups, self.clock()) if switch is not None else []
            stuck = len(self.fib.stuck)
        if stuck and stuck != self._stuck_reported:
            log.warning(
                "the switch holds %d route flows or groups that differ from the plan and did not change when put "
                "right: flows of another controller, or of another OpenFlow version, that this one cannot address "
                "exactly? `sniffroute flows` lists them",
                stuck,
            )
        self._stuck_reported = stuck
        if switch is not None and ops:
            log.info("audit: the switch differs from what was sent; putting it right")  # `_send` says with what
            self._send(switch, ops)

    def confirmed(self, seq: int) -> None:
        with self._lock:
            self.fib.confirm(seq)
            self._version += 1

    def refused(self, op: FlowOp | GroupOp, text: str) -> None:
        log.warning("switch refused %s: %s", op.command.value, text)
        with self._lock:
            self.fib.op_failed(op, text, self.clock())
            self._version += 1
        self._wake.set()

    # -- the FIB thread --------------------------------------------------------------------------------------
    def _loop(self) -> None:
        next_poll = 0.0
        next_audit = self.clock() + AUDIT_SECONDS
        while not self._stop.is_set():
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()
            now = self.clock()
            try:
                if now >= next_poll:
                    self._poll_kernel(now)
                    next_poll = now + KERNEL_POLL_SECONDS
                self._step(now)
                settled = self._last_ops is not None and now - self._last_ops >= AUDIT_QUIET_SECONDS
                if now >= next_audit or settled:
                    next_audit = now + AUDIT_SECONDS
                    self._last_ops = None
                    switch = self._switch if self._ready_since is not None else None
                    if switch is not None:
                        switch.request_audit()
            except Exception:  # a bug here must not stop the controller: say it, go on
                log.exception("FIB step failed")

    def _step(self, now: float) -> None:
        with self._lock:
            self._drain(now)
            if self.restore_deadline is not None and now >= self.restore_deadline:
                gone = {p: None for p in self.restored if p in self.entries}
                log.info("restore grace over: %d restored routes not confirmed by the RIB are withdrawn", len(gone))
                self.fib.update(gone, now)
                for prefix in gone:
                    self.entries.pop(prefix, None)
                self.restored.clear()
                self.restore_deadline = None
            requests = self.fib.resolve_requests(now)
            switch = self._switch if self._ready_since is not None and not self.frozen else None
            ops = self.fib.sync(now) if switch is not None else []
            if ops:
                self._version += 1
        for request in requests:
            _probe(request)
        if switch is not None and ops:
            self._send(switch, ops)

    def _drain(self, now: float) -> None:
        """Apply queued inputs (lock held)."""
        if not self._backlog and len(self._routes) > ROUTES_PER_STEP:
            self._backlog, self._backlog_at, self._routes = list(self._routes.items()), 0, {}
        routes: Sequence[tuple[Network, RouteEntry | None]] = ()
        if self._backlog:
            at = self._backlog_at
            routes = self._backlog[at : at + ROUTES_PER_STEP]
            self._backlog_at = at + ROUTES_PER_STEP
            if self._backlog_at >= len(self._backlog):
                self._backlog, self._backlog_at = [], 0
            if self._backlog or self._routes:
                self._wake.set()  # the rest in the next step, right after this chunk is sent
        elif self._routes:
            routes, self._routes = list(self._routes.items()), {}
        if routes:
            entries, restored = self.entries, self.restored
            for prefix, entry in routes:
                if entry is None:
                    entries.pop(prefix, None)
                else:
                    entries[prefix] = entry
                if restored:
                    restored.discard(prefix)
            self.fib.update_items(routes, now)
            self.last_change = now
            self._version += 1
        if self._seen:
            seen, self._seen = self._seen, []
            for observation in seen:
                if self.fib.observe(observation, now):
                    self._version += 1
        if self._gleaned:
            gleaned, self._gleaned = self._gleaned, []
            for address in gleaned:
                self.fib.glean(address, now)

    def _send(self, switch: FlowSwitch, ops: Sequence[Op]) -> None:
        self.ops_sent += sum(1 for op in ops if not isinstance(op, Barrier))
        log.info("sending %s", describe_ops(ops))
        self._last_ops = self.clock()
        if self.on_ops is not None:
            self.on_ops(ops)
        switch.send_ops(ops)

    def _poll_kernel(self, now: float) -> None:
        """The TAPs' neighbour tables: what the kernel resolved (or failed to) is news for the Fib."""
        try:
            from pyroute2 import IPRoute
        except ImportError:
            return
        found: list[tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address, str | None, int, float | None]] = []
        try:
            # One netlink socket for every poll, and the TAPs' link indexes read again only now and then: each
            # poll holds the interpreter, and a tunnelled frame waiting for it shows in the ping's tail.
            if self._netlink is None:
                self._netlink = IPRoute()
            ipr = self._netlink
            if not self._names <= self._ifindex.keys() or now >= self._ifindex_until:
                self._ifindex = {link.get_attr("IFLA_IFNAME"): link["index"] for link in ipr.get_links()}
                self._ifindex_until = now + LINKS_REFRESH_SECONDS
            for name in self._names:
                if name not in self._ifindex:
                    continue
                for neighbour in ipr.get_neighbours(ifindex=self._ifindex[name]):
                    dst, mac = neighbour.get_attr("NDA_DST"), neighbour.get_attr("NDA_LLADDR")
                    if dst is None:
                        continue
                    cache = neighbour.get_attr("NDA_CACHEINFO")
                    age = cache["ndm_updated"] / USER_HZ if cache else None
                    address = ipaddress.ip_address(dst.split("%")[0])
                    found.append((name, address, mac, neighbour["state"], age))
        except Exception as exc:  # noqa: BLE001 - netlink trouble: a fresh socket, and try again next poll
            log.debug("neighbour table read failed: %s", exc)
            self._close_netlink()
            return
        by_name = {i.name: n for n, i in enumerate(self.config.interfaces)}
        with self._lock:
            for name, address, mac, state, age in found:
                if state & NUD_VALID and mac:
                    port, vlan = self._ports[by_name[name]]
                    seen = NeighbourObservation(address=address, mac=mac, port=port, vlan=vlan, source="kernel")
                    if self.fib.observe(seen, now):
                        self._version += 1
                elif state & NUD_FAILED and failed_while_ready(age, now, self._ready_since):
                    self.fib.lost(address, name, now)

    # -- the store -------------------------------------------------------------------------------------------
    def document(self) -> Any:
        """The "fib" document: restore data, per-route state, the plan and what the switch holds (cached by
        version, so an idle controller does not rebuild it for every save)."""
        with self._lock:
            if self._document is not None:
                version, document, built = self._document
                big = len(self.entries) >= DOCUMENT_ROUTES_PER_SECOND // 5
                spacing = len(self.entries) / DOCUMENT_ROUTES_PER_SECOND
                if version == self._version or big and self.clock() - built < spacing:
                    return document  # unchanged, or a big table rebuilt very recently: the pipeline has work
            version = self._version
            statuses = self.fib.statuses()
            desired = list(self.fib.desired_flows().values())
            groups = list(self.fib.desired_groups().values())
            held = None if self.switch_flows is None else list(self.switch_flows)
            held_groups = list(self.switch_groups)
            neighbours = [
                {"address": str(n.address), "interface": n.interface, "mac": n.mac, "source": n.source}
                for n in self.fib.neighbours.neighbours()
                if n.mac is not None
            ]
            entries = entries_json(self.entries)
            counts = self.fib.counts()
            connected = self._switch is not None
            ready = self._ready_since is not None
        document = {
            "capabilities": self.fib.capabilities.name,
            "switch": {"connected": connected, "reconciled": ready, "read_at": self.switch_read_at},
            "counts": counts,
            "routes": entries,
            "neighbours": neighbours,
            "status": [
                {
                    "prefix": str(s.prefix),
                    "state": s.state.value,
                    "detail": s.detail,
                    "protocol": s.protocol,
                    "next_hops": list(s.next_hops),
                    "switch_errors": s.switch_errors,
                }
                for s in statuses
            ],
            "plan": [flow_text(f) for f in desired],
            "plan_groups": [flow_text(g) for g in groups],
            "held": None if held is None else [flow_text(f) for f in held],
            "held_groups": [flow_text(g) for g in held_groups],
        }
        self._document = (version, document, self.clock())
        return document

    def converged(self) -> bool:
        with self._lock:
            return self._ready_since is not None and all(s.state is not RouteState.PENDING for s in self.fib.statuses())


def action_text(action: Any) -> str:
    """One action the way `sniffroute flows` prints it."""
    name = type(action).__name__
    fields = [str(getattr(action, slot)) for slot in getattr(action, "__slots__", ())]
    return f"{name}({','.join(fields)})" if fields else name


def flow_text(item: FlowSpec | GroupSpec) -> str:
    """A flow or group as one comparable line: equal lines mean equal flows."""
    if isinstance(item, GroupSpec):
        buckets = " | ".join(",".join(map(action_text, b.actions)) for b in item.buckets)
        return f"group={item.group_id:#x} select [{buckets}]"
    match = item.match
    vlan = "untagged" if match.vlan is None else str(match.vlan)
    return f"priority={item.priority} vlan={vlan} dst={match.dst} actions={','.join(map(action_text, item.actions))}"


def failed_while_ready(age: float | None, now: float, ready_since: float | None) -> bool:
    """Whether a kernel neighbour entry that failed `age` seconds ago tells that the neighbour is gone. Frames
    from the TAPs reach the wire only through the switch: a resolution that failed while no switch was connected
    (the controller starting, the switch reconnecting) says nothing of the neighbour, whose flows must stay."""
    if ready_since is None:
        return False
    if age is None:  # no cache ages from this kernel: trust only failures well after the switch came
        return now - ready_since > KERNEL_RESOLUTION_SECONDS
    return now - age >= ready_since


def describe_ops(ops: Sequence[Op], *, named: int = 4) -> str:
    """One log line per batch saying what the switch was told to change: "2 add, 1 delete-strict, 1 group add",
    naming the prefixes (or groups) when there are at most `named` ops."""
    real = [op for op in ops if type(op) is not Barrier]
    commands = [op.command for op in real]
    counts = [(c, countOf(commands, c)) for c in PHASES]  # a full table's batch: 100,000 ops, counted in C
    kinds = (f"{n} {c.value}" if isinstance(c, FlowCommand) else f"{n} group {c.value}" for c, n in counts if n)
    text = ", ".join(kinds) or "barriers only"
    if 0 < len(real) <= named:
        text += ": " + ", ".join(_op_target(op) for op in real)
    return text


def _op_target(op: FlowOp | GroupOp) -> str:
    if isinstance(op, FlowOp):
        return f"{op.command.value} {op.flow.match.dst}"
    return f"{op.command.value} group {op.group.group_id}"


def _probe(request: ResolveRequest) -> None:
    """Make the kernel resolve `request.address` through its TAP: one empty datagram to the discard port."""
    address = request.address
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    target: tuple[Any, ...] = (str(address), DISCARD_PORT)
    if address.version == 6 and address.is_link_local:
        try:
            target = (str(address), DISCARD_PORT, 0, socket.if_nametoindex(request.interface))
        except OSError:
            return
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"", target)
    except OSError as exc:
        log.debug("resolution probe to %s failed: %s", address, exc)
