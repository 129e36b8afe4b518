"""The FIB: selected routes and neighbour facts in, flow ops and resolution requests out. Pure; `now` is passed.

    fib = Fib(router_mac, interfaces, OPENFLOW_13)
    fib.update({prefix: RouteEntry(...) or None}, now)    # RIB changes (or fib.replace(table, now))
    fib.observe(NeighbourObservation(...), now)           # ARP/ND seen, kernel neighbour tables
    requests = fib.resolve_requests(now)                  # -> the edge resolves them through the TAPs
    ops = fib.sync(now)                                   # -> the backend sends them; Barrier(seq) -> confirm
    fib.confirm(seq); fib.op_failed(op, text, now)        # barrier replies and OpenFlow errors
    ops = fib.reconnect(flows_read_back, groups_read_back, now)  # on switch (re)connect: only the difference

Precedence for one prefix: a router interface's subnet, then a host route to a resolved neighbour on such a
subnet, then the RIB's route. Routes whose next hops are all unresolved install nothing and are pending.
Per-prefix state lives in one record (`_Route`), so a change costs one lookup by prefix and the sets that link
next hops and groups to routes hash records by identity, not networks by value (which is slow in Python).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sniffroute.config import RouterInterface
from sniffroute.fib.diff import DEFAULT_BATCH_SIZE, Changes, diff_flows, diff_groups, index_installed, order
from sniffroute.fib.model import (
    Barrier,
    Capabilities,
    FlowCommand,
    FlowKey,
    FlowOp,
    FlowSpec,
    GroupCommand,
    GroupOp,
    GroupSpec,
    IpAddress,
    Network,
    Op,
    RouteEntry,
    is_route_group,
)
from sniffroute.fib.plan import Egress, FlowPlanner, GroupKey, RoutePlan, pick_one
from sniffroute.fib.resolve import (
    NeighbourKey,
    NeighbourObservation,
    NeighbourState,
    NeighbourTable,
    ResolveRequest,
    ResolverLimits,
    parse_next_hop,
)
from sniffroute.fib.status import ErrorBackoff, RouteState, RouteStatus, SwitchError

CONNECTED = "connected"
NEIGHBOUR = "neighbour"
NO_PLAN = RoutePlan(())
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
HOP_CACHE_LIMIT = 65536
_RESOLVED, _FAILED = NeighbourState.RESOLVED, NeighbourState.FAILED  # enum member lookups are slow in a loop
_INSTALLED, _PENDING, _FAILED_ROUTE = RouteState.INSTALLED, RouteState.PENDING, RouteState.FAILED
_STALE = ()  # actions of a flow whose modify failed: differs from any plan, so the next diff modifies again


@dataclass(frozen=True, slots=True)
class _Planned:
    """How a prefix was planned, kept for its status."""

    state: RouteState
    detail: str
    protocol: str
    next_hops: tuple[str, ...]


class _Route:
    """Everything about one prefix: its sources (RIB, connected subnet, neighbour host), plan and switch state."""

    __slots__ = ("prefix", "entry", "host", "connected", "flows", "groups", "planned", "hops", "error", "awaiting")

    def __init__(self, prefix: Network) -> None:
        self.prefix = prefix
        self.entry: RouteEntry | None = None
        self.host: NeighbourKey | None = None
        self.connected: int | None = None
        self.flows: tuple[FlowSpec, ...] = ()  # the plan (one flow per ingress VLAN, or none)
        self.groups: tuple[tuple[GroupKey, GroupSpec], ...] = ()
        self.planned: _Planned | None = None
        self.hops: tuple[NeighbourKey, ...] = ()
        self.error: SwitchError | None = None
        self.awaiting: int | None = None  # the barrier that confirms what was last sent for it

    @property
    def unused(self) -> bool:
        return self.entry is None and self.host is None and self.connected is None


class Fib:
    def __init__(
        self,
        router_mac: str,
        interfaces: Sequence[RouterInterface],
        capabilities: Capabilities,
        *,
        limits: ResolverLimits | None = None,
        glean_connected: bool = True,
        error_backoff: ErrorBackoff | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.capabilities = capabilities
        self.planner = FlowPlanner(router_mac, interfaces, capabilities)
        self.interfaces = self.planner.interfaces
        self.neighbours = NeighbourTable(tuple(i.name for i in self.interfaces), limits)
        self.glean_connected = glean_connected
        self.error_backoff = error_backoff or ErrorBackoff()
        self.batch_size = batch_size
        self.switch_errors = 0
        self._by_port_vlan = {(i.port, i.vlan): n for n, i in enumerate(self.interfaces)}
        self._by_name = {i.name: n for n, i in enumerate(self.interfaces)}
        self._own = {a.ip for i in self.interfaces for a in i.addresses}
        self._subnets: list[tuple[Network, int]] = sorted(
            ((a.network, n) for n, i in enumerate(self.interfaces) for a in i.addresses),
            key=lambda item: -item[0].prefixlen,
        )
        self._routes: dict[Network, _Route] = {}
        self._hop_cache: dict[str, NeighbourKey | None] = {}
        self._planned_cache: dict[tuple[str, str], _Planned] = {}
        self._hop_users: dict[NeighbourKey, set[_Route]] = {}
        # While `update_items` runs (and only then: nothing else changes neighbours meanwhile): the last next hop
        # `_plan_one` claimed, (key, state, MAC, its users). Routes of one UPDATE share a next hop, and hashing a
        # neighbour key (an address) twice per route is costly.
        self._in_batch = False
        self._last_claim: tuple[NeighbourKey, NeighbourState, str | None, set[_Route]] | None = None
        self._desired: dict[FlowKey, FlowSpec] = {}
        self._group_users: dict[GroupKey, set[_Route]] = {}
        self._groups: dict[int, GroupSpec] = {}
        self._group_keys: dict[int, GroupKey] = {}
        self._dirty: set[_Route] = set()
        self._failed: set[_Route] = set()
        self._sent: dict[FlowKey, FlowSpec] = {}
        self._sent_groups: dict[int, GroupSpec] = {}
        self._group_holdoff: dict[int, float] = {}
        self._batches: dict[int, list[_Route]] = {}
        self._seq = 0
        # Audits: what the last one sent to put right, and what it found still wrong after such a fix (flows of
        # another controller or OpenFlow version that this protocol cannot address exactly).
        self._audit_fixed: set[FlowKey | int] = set()
        self.stuck: set[FlowKey | int] = set()
        for network, number in reversed(self._subnets):  # the first interface holding a subnet wins
            self._route(network).connected = number
        for route in list(self._routes.values()):
            self._replan(route, 0.0)

    # -- inputs --------------------------------------------------------------------------------------------

    def update(self, changes: Mapping[Network, RouteEntry | None], now: float) -> None:
        """RIB changes: a prefix's selected route, or None when it has none any more."""
        self.update_items(changes.items(), now)

    def update_items(self, changes: Iterable[tuple[Network, RouteEntry | None]], now: float) -> None:
        """`update` for (prefix, entry) pairs applied in order (a later pair for a prefix wins)."""
        routes = self._routes
        self._in_batch, self._last_claim = True, None
        try:
            for prefix, entry in changes:
                route = routes.get(prefix)
                if entry is None:
                    if route is None or route.entry is None:
                        continue
                elif route is None:
                    route = routes[prefix] = _Route(prefix)
                route.entry = entry
                self._replan(route, now)
        finally:
            self._in_batch, self._last_claim = False, None

    def replace(self, table: Mapping[Network, RouteEntry], now: float) -> None:
        """The whole RIB: what is not in `table` is withdrawn."""
        gone = {p: None for p, r in self._routes.items() if r.entry is not None and p not in table}
        self.update(gone, now)
        self.update(table, now)

    def observe(self, seen: NeighbourObservation, now: float) -> bool:
        """A neighbour's MAC seen on a router interface; True when some flow changes because of it."""
        number = self._by_port_vlan.get((seen.port, seen.vlan))
        mac = seen.mac.lower()
        if number is None or seen.address in self._own or _not_unicast(mac):
            return False
        if not self._on_link(seen.address, number):
            return False
        key = (seen.address, number)
        changed = self.neighbours.observe(key, mac, seen.source, now)
        self._drain_evicted(now)
        if key not in self._hop_users:
            self.neighbours.release(key, now)  # only a host route uses it: evictable
        if changed:
            self._neighbour_changed(key, now)
        return changed

    def lost(self, address: IpAddress, interface: str, now: float) -> None:
        """A neighbour is gone (kernel entry failed, link down): its routes wait for it to resolve again."""
        number = self._by_name.get(interface)
        if number is not None and self.neighbours.forget((address, number), now):
            self._neighbour_changed((address, number), now)

    def glean(self, address: IpAddress, now: float) -> None:
        """Traffic to a host on one of our subnets reached the controller: resolve it, so a host flow follows."""
        subnet = self._subnet(address)
        if subnet is not None and address not in self._own and address != subnet[0].network_address:
            self.neighbours.want((address, subnet[1]), now)
            self._drain_evicted(now)

    def set_glean(self, enabled: bool, now: float) -> None:
        """Glean flows for the connected subnets on or off (a switch that can rate-limit them, or not)."""
        if enabled == self.glean_connected:
            return
        self.glean_connected = enabled
        for route in [r for r in self._routes.values() if r.connected is not None]:
            self._replan(route, now)

    def resolve_requests(self, now: float) -> list[ResolveRequest]:
        """Requests due now (bounded and backed off); next hops that just ran out of tries turn routes failed."""
        requests, failed = self.neighbours.requests(now)
        for key in failed:
            users = self._hop_users.get(key)
            if users:
                for route in list(users):
                    self._replan(route, now)
            else:
                self.neighbours.release(key, now)
        return requests

    # -- outputs -------------------------------------------------------------------------------------------

    def sync(self, now: float) -> list[Op]:
        """Flow and group ops for everything that changed since the last sync (retries included when due)."""
        held: set[_Route] = set()
        due = [r for r in self._failed if r.error is not None and r.error.retry_at <= now]
        self._dirty.update(due)
        keys: list[FlowKey] = []
        owners: dict[int, _Route] = {}  # id of a planned flow -> its route (cheaper than looking up its prefix)
        for route in self._dirty:
            if route.error is not None and route.error.retry_at > now and route.flows:
                held.add(route)  # still backing off after a switch error
                continue
            # a plan has a flow per ingress VLAN, i.e. every key the prefix can have; without one, compute them
            flows = route.flows
            if len(flows) == 1:
                flow = flows[0]
                keys.append(flow.key)
                owners[id(flow)] = route
            elif flows:
                keys.extend(flow.key for flow in flows)
            else:
                keys.extend(self.planner.keys_for(route.prefix))
            if route.unused:
                self._forget(route)
        self._dirty = held
        changes = diff_flows(self._desired, self._sent, keys)
        self._diff_groups(changes, now)
        ops = self._emit(changes, owners)
        for route in due:
            if route.awaiting is None:  # nothing left to send: what failed is moot now
                route.error = None
                self._failed.discard(route)
        return ops

    def reconnect(self, flows: Iterable[FlowSpec], groups: Iterable[GroupSpec], now: float) -> list[Op]:
        """The switch (re)connected and reported what it holds: the ops that make it hold the plan, and no more."""
        self._take_read_back(flows, groups)
        self._audit_fixed, self.stuck = set(), set()
        self.disconnected()
        self._group_holdoff.clear()
        for route in self._dirty:
            if route.unused:
                self._forget(route)
        self._dirty.clear()
        changes = diff_flows(self._desired, self._sent)
        self._diff_groups(changes, now)
        return self._emit(changes)

    def audit(self, flows: Iterable[FlowSpec], groups: Iterable[GroupSpec], now: float) -> list[Op]:
        """A later read-back of the switch: what changed behind our back (a flow deleted or altered by hand, a
        switch that lost part of its table) is put right. Only when nothing is in flight, since the read-back may
        then predate our own ops. A difference still there after one fix is not sent again (see `stuck`)."""
        if self._batches or self._dirty:
            return []
        self._take_read_back(flows, groups)
        changes = diff_flows(self._desired, self._sent)
        self._diff_groups(changes, now)  # a group in its hold-off after a switch error waits, as at every sync
        if not changes:
            self._audit_fixed, self.stuck = set(), set()
            return []
        backing_off = {f.key for r in self._failed if r.error is not None and r.error.retry_at > now for f in r.flows}
        previous, found = self._audit_fixed, set[FlowKey | int]()
        for command, wanted in changes.flows.items():
            wanted = [flow for flow in wanted if flow.key not in backing_off]  # their retry is due later
            found.update(flow.key for flow in wanted)
            changes.flows[command] = [flow for flow in wanted if flow.key not in previous]
        for group_command, wanted_groups in changes.groups.items():
            found.update(group.group_id for group in wanted_groups)
            changes.groups[group_command] = [g for g in wanted_groups if g.group_id not in previous]
        self._audit_fixed, self.stuck = found, found & previous
        return self._emit(changes)

    def _take_read_back(self, flows: Iterable[FlowSpec], groups: Iterable[GroupSpec]) -> None:
        """What the switch reported holding (our cookie and group range only) becomes what we know it holds."""
        self._sent = index_installed(flows)
        self._sent_groups = {g.group_id: g for g in groups if is_route_group(g.group_id)}

    def disconnected(self) -> None:
        """The switch went away: nothing is confirmed until it reconnects and is read back."""
        for batch in self._batches.values():
            for route in batch:
                route.awaiting = None
        self._batches.clear()

    def confirm(self, seq: int) -> None:
        """The barrier `seq` was answered: every op before it that drew no error is in the switch."""
        for barrier in sorted(s for s in self._batches if s <= seq):
            for route in self._batches.pop(barrier):
                if route.awaiting == barrier:
                    route.awaiting = None
                    route.error = None
                    self._failed.discard(route)

    def op_failed(self, op: FlowOp | GroupOp, text: str, now: float) -> None:
        """The switch refused an op (table full, bad action...): the routes it served fail, and retry later."""
        self.switch_errors += 1
        routes: Iterable[_Route]
        if isinstance(op, FlowOp):
            flow = op.flow
            if op.command is FlowCommand.ADD:
                self._sent.pop(flow.key, None)
            elif op.command is FlowCommand.MODIFY_STRICT:
                self._sent[flow.key] = FlowSpec(flow.cookie, flow.priority, flow.match, _STALE)
            else:
                self._sent[flow.key] = flow
            route = self._routes.get(flow.match.dst)
            routes = () if route is None else (route,)
        else:
            group = op.group
            if op.command is GroupCommand.ADD:
                self._sent_groups.pop(group.group_id, None)
            elif op.command is GroupCommand.MODIFY:
                self._sent_groups[group.group_id] = GroupSpec(group.group_id, ())
            else:
                self._sent_groups[group.group_id] = group
            key = self._group_keys.get(group.group_id)
            routes = tuple(self._group_users.get(key, ())) if key is not None else ()
            attempts = max((r.error.attempts for r in routes if r.error is not None), default=0) + 1
            self._group_holdoff[group.group_id] = now + self.error_backoff.delay(attempts)
        for route in routes:
            attempts = 1 if route.error is None else route.error.attempts + 1
            route.error = SwitchError(text, attempts, now + self.error_backoff.delay(attempts))
            route.awaiting = None
            self._failed.add(route)

    # -- views ---------------------------------------------------------------------------------------------

    def desired_flows(self) -> Mapping[FlowKey, FlowSpec]:
        return self._desired

    def desired_groups(self) -> Mapping[int, GroupSpec]:
        return self._groups

    def status(self, prefix: Network) -> RouteStatus | None:
        route = self._routes.get(prefix)
        return None if route is None else self._status(route)

    def statuses(self) -> list[RouteStatus]:
        return [s for s in map(self._status, self._routes.values()) if s is not None]

    def counts(self) -> dict[str, int]:
        """Routes per state, and the switch errors counted so far (for logs and `sniffroute flows`)."""
        tally = {state.value: 0 for state in RouteState}
        for status in self.statuses():
            tally[status.state.value] += 1
        tally["switch_errors"] = self.switch_errors
        tally["neighbours"] = len(self.neighbours)
        return tally

    def _status(self, route: _Route) -> RouteStatus | None:
        planned = route.planned
        if planned is None:
            return None
        if planned.state is not RouteState.INSTALLED:
            return RouteStatus(route.prefix, planned.state, planned.detail, planned.protocol, planned.next_hops)
        error = route.error
        if error is not None:
            state, why = RouteState.FAILED, f"switch refused: {error.text} (attempt {error.attempts})"
        elif route.awaiting is not None:
            state, why = RouteState.PENDING, "sent, awaiting the switch's confirmation"
        elif all(self._sent.get(flow.key) == flow for flow in route.flows):
            state, why = RouteState.INSTALLED, ""
        else:
            state, why = RouteState.PENDING, "not yet in the switch"
        detail = "; ".join(text for text in (why, planned.detail) if text)
        errors = 0 if error is None else error.attempts
        return RouteStatus(route.prefix, state, detail, planned.protocol, planned.next_hops, errors)

    # -- planning ------------------------------------------------------------------------------------------

    def _route(self, prefix: Network) -> _Route:
        route = self._routes.get(prefix)
        if route is None:
            route = self._routes[prefix] = _Route(prefix)
        return route

    def _forget(self, route: _Route) -> None:
        if self._routes.get(route.prefix) is route:
            del self._routes[route.prefix]
        self._failed.discard(route)

    def _replan(self, route: _Route, now: float) -> None:
        for key in route.hops:
            users = self._hop_users.get(key)
            if users is not None:
                users.discard(route)
                if not users:
                    del self._hop_users[key]
                    self.neighbours.release(key, now)
        route.hops = ()
        plan, route.planned = self._plan(route, now)
        self._set_plan(route, plan)
        if route.planned is None:
            route.error = None
            self._failed.discard(route)
        self._dirty.add(route)

    def _plan(self, route: _Route, now: float) -> tuple[RoutePlan, _Planned | None]:
        prefix = route.prefix
        if prefix.version == 6 and not self.capabilities.ipv6:
            if route.unused:
                return NO_PLAN, None
            detail = f"IPv6 routes need a switch protocol that matches IPv6 ({self.capabilities.name} cannot)"
            protocol = route.entry.protocol if route.entry is not None else CONNECTED
            return NO_PLAN, _Planned(RouteState.UNSUPPORTED, detail, protocol, ())
        if route.connected is not None:
            interface = self.interfaces[route.connected].name
            plan = self.planner.glean(prefix) if self.glean_connected else NO_PLAN
            return plan, _Planned(RouteState.INSTALLED, f"connected on {interface}", CONNECTED, ())
        if route.host is not None:
            neighbour = self.neighbours.get(route.host)
            if neighbour is not None and neighbour.mac is not None:
                hop = Egress(route.host[0], route.host[1], neighbour.mac)
                return self.planner.forward(prefix, [hop]), _Planned(RouteState.INSTALLED, "", NEIGHBOUR, ())
        entry = route.entry
        if entry is None:
            return NO_PLAN, None
        if len(entry.next_hops) == 1:  # the common case, kept cheap for big tables: one resolved next hop
            plan = self._plan_one(route, entry, now)
            if plan is not None:
                return plan
        resolved: list[Egress] = []
        used: list[str] = []
        waiting: list[str] = []
        problems: list[str] = []
        keys: list[NeighbourKey] = []
        for text in entry.next_hops:
            key = self._hop_key(text)
            if key is None:
                problems.append(f"next hop {text} is on no router interface")
                continue
            claimed = self._claim_hop(route, key, now)
            if claimed is None:
                problems.append(f"next hop {text} not tracked: neighbour table full")
                continue
            state, mac, tries = claimed
            keys.append(key)
            if state is _RESOLVED and mac is not None:
                resolved.append(Egress(key[0], key[1], mac))
                used.append(text)
            elif state is _FAILED:
                problems.append(f"next hop {text} did not resolve after {tries} tries")
            else:
                waiting.append(text)
        route.hops = tuple(keys)
        if not resolved:
            if waiting:
                detail = "; ".join(["next hop unresolved: " + ", ".join(waiting), *problems])
                return NO_PLAN, _Planned(_PENDING, detail, entry.protocol, ())
            return NO_PLAN, _Planned(_FAILED_ROUTE, "; ".join(problems) or "no next hop", entry.protocol, ())
        if len(resolved) == 1 and not waiting and not problems:
            return self.planner.forward(prefix, resolved), self._installed(entry.protocol, used[0])
        notes = [f"next hop unresolved: {t}" for t in waiting] + problems
        if len(resolved) > 1 and not self.capabilities.select_groups:
            chosen = pick_one(resolved)
            notes.insert(0, f"ECMP over {len(resolved)} next hops reduced to {chosen.address} (no select groups)")
            resolved = [chosen]
        elif len(resolved) > self.capabilities.max_buckets:
            notes.insert(0, f"ECMP limited to {self.capabilities.max_buckets} of {len(resolved)} next hops")
        ordered = sorted(resolved, key=lambda h: h.order)[: self.capabilities.max_buckets]
        hops_used = tuple(str(hop.address) for hop in ordered)
        plan = self.planner.forward(prefix, resolved)
        return plan, _Planned(_INSTALLED, "; ".join(notes), entry.protocol, hops_used)

    def _plan_one(self, route: _Route, entry: RouteEntry, now: float) -> tuple[RoutePlan, _Planned] | None:
        """A route over one next hop that is resolved: its plan, as the general case in `_plan` makes it. None
        in every other case (which `_plan` then handles; claiming the next hop again changes nothing)."""
        text = entry.next_hops[0]
        key = self._hop_key(text)
        if key is None:
            return None
        last = self._last_claim
        # The same key object (from `_hop_cache`) as the last route's, still used: a neighbour with users is
        # wanted, so not evicted, and nothing else changes neighbours while a batch is planned.
        if last is not None and last[0] is key and last[3]:
            _, state, mac, users = last
            users.add(route)
        else:
            claimed = self._claim_hop(route, key, now)
            if claimed is None:
                return None
            state, mac, _ = claimed
            if self._in_batch:
                self._last_claim = (key, state, mac, self._hop_users[key])
        route.hops = (key,)
        if state is not _RESOLVED or mac is None:
            return None
        return self.planner.forward_one(route.prefix, key[1], mac), self._installed(entry.protocol, text)

    def _claim_hop(self, route: _Route, key: NeighbourKey, now: float) -> tuple[NeighbourState, str | None, int] | None:
        """Claim next hop `key` for `route`, which becomes one of its users: (state, MAC, tries), or None when the
        neighbour table has no room for it."""
        claimed = self.neighbours.claim(key, now)
        if self.neighbours.evicted:
            self._drain_evicted(now)
        if claimed is not None:
            users = self._hop_users.get(key)
            if users is None:
                users = self._hop_users[key] = set()
            users.add(route)
        return claimed

    def _installed(self, protocol: str, next_hop: str) -> _Planned:
        """Shared status records for the common case (one next hop, nothing to note): 100,000 routes, few hops."""
        cache_key = (protocol, next_hop)
        planned = self._planned_cache.get(cache_key)
        if planned is None:
            if len(self._planned_cache) >= HOP_CACHE_LIMIT:
                self._planned_cache.clear()
            planned = self._planned_cache[cache_key] = _Planned(_INSTALLED, "", protocol, (next_hop,))
        return planned

    def _set_plan(self, route: _Route, plan: RoutePlan) -> None:
        desired = self._desired
        for flow in route.flows:
            desired.pop(flow.key, None)
        for key, group in route.groups:
            users = self._group_users.get(key)
            if users is not None:
                users.discard(route)
                if not users:
                    del self._group_users[key]
                    self._groups.pop(group.group_id, None)
                    self._group_keys.pop(group.group_id, None)
                    self.planner.group_ids.release(key)
        for flow in plan.flows:
            desired[flow.key] = flow
        for key, group in plan.groups:
            self._group_users.setdefault(key, set()).add(route)
            self._groups[group.group_id] = group
            self._group_keys[group.group_id] = key
        route.flows, route.groups = plan.flows, plan.groups

    def _neighbour_changed(self, key: NeighbourKey, now: float) -> None:
        for route in list(self._hop_users.get(key, ())):
            self._replan(route, now)
        address, number = key
        subnet = self._subnet(address)
        if subnet is not None and subnet[1] == number and not address.is_link_local:
            host = self._route(ipaddress.ip_network(address))
            host.host = key
            self._replan(host, now)

    def _drain_evicted(self, now: float) -> None:
        while self.neighbours.evicted:
            key = self.neighbours.evicted.pop()
            route = self._routes.get(ipaddress.ip_network(key[0]))
            if route is not None and route.host == key:
                route.host = None
                self._replan(route, now)

    def _diff_groups(self, changes: Changes, now: float) -> None:
        diff_groups(self._groups, self._sent_groups, changes)
        for command in (GroupCommand.ADD, GroupCommand.MODIFY):
            waiting = changes.groups[command]
            changes.groups[command] = [g for g in waiting if self._group_holdoff.get(g.group_id, 0.0) <= now]

    def _emit(self, changes: Changes, owners: Mapping[int, _Route] | None = None) -> list[Op]:
        """Order the changes into ops and note what they send; `owners` maps planned flows (by id) to routes."""
        ops = order(changes, first_seq=self._seq + 1, batch_size=self.batch_size)
        owners = owners or {}
        since_barrier: list[_Route] = []
        sent, sent_groups, routes = self._sent, self._sent_groups, self._routes
        for op in ops:
            if isinstance(op, Barrier):
                self._seq = op.seq
                if since_barrier:
                    self._batches[op.seq] = since_barrier
                    for route in since_barrier:
                        route.awaiting = op.seq
                    since_barrier = []
            elif isinstance(op, FlowOp):
                flow = op.flow
                if op.command is FlowCommand.DELETE_STRICT:
                    sent.pop(flow.key, None)
                else:
                    sent[flow.key] = flow
                route = owners.get(id(flow)) or routes.get(flow.match.dst)
                if route is not None and route.planned is not None:
                    since_barrier.append(route)
            elif op.command is GroupCommand.DELETE:
                sent_groups.pop(op.group.group_id, None)
            else:
                sent_groups[op.group.group_id] = op.group
        return ops

    # -- addresses -----------------------------------------------------------------------------------------

    def _hop_key(self, text: str) -> NeighbourKey | None:
        try:
            return self._hop_cache[text]
        except KeyError:
            pass
        key = self._parse_hop(text)
        if len(self._hop_cache) >= HOP_CACHE_LIMIT:
            self._hop_cache.clear()
        self._hop_cache[text] = key
        return key

    def _parse_hop(self, text: str) -> NeighbourKey | None:
        parsed = parse_next_hop(text)
        if parsed is None:
            return None
        address, scope = parsed
        if scope is not None:
            number = self._by_name.get(scope)
            return None if number is None else (address, number)
        if address.is_link_local and address.version == 6:
            with_v6 = [n for n, i in enumerate(self.interfaces) if any(a.version == 6 for a in i.addresses)]
            return (address, with_v6[0]) if len(with_v6) == 1 else None
        subnet = self._subnet(address)
        return None if subnet is None else (address, subnet[1])

    def _subnet(self, address: IpAddress) -> tuple[Network, int] | None:
        """The most specific router interface subnet holding `address`, and the interface's number."""
        for network, number in self._subnets:
            if address.version == network.version and address in network:
                return network, number
        return None

    def _on_link(self, address: IpAddress, number: int) -> bool:
        if address.version == 6 and address.is_link_local:
            return True
        return any(address in a.network for a in self.interfaces[number].addresses if a.version == address.version)


def _not_unicast(mac: str) -> bool:
    return mac == BROADCAST_MAC or int(mac[:2], 16) & 1 == 1
