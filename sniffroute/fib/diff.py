"""Desired state against what the switch holds -> ordered flow and group ops. Pure.

Only our flows (cookie in ROUTE_COOKIE's space) and our groups (id in the route group range) are compared; the
punt flows, the table-miss flow and anything else on the switch are never touched. The order of a batch is one
table (`PHASES`): new groups first, then new and changed flows, then what is no longer wanted, so that a next-hop
change is a modify in place and a withdrawn more-specific route falls back to its covering route without a
moment where neither is there. A barrier closes every phase and every `batch_size` ops within one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from sniffroute.fib.model import (
    ROUTE_COOKIE,
    ROUTE_COOKIE_MASK,
    Barrier,
    FlowCommand,
    FlowKey,
    FlowOp,
    FlowSpec,
    GroupCommand,
    GroupOp,
    GroupSpec,
    Op,
    is_route_group,
)

DEFAULT_BATCH_SIZE = 5000

# The order ops leave in. Each phase ends with a barrier, so a flow never points at a group the switch has not
# taken yet, and nothing is removed before its replacement is in.
PHASES: tuple[FlowCommand | GroupCommand, ...] = (
    GroupCommand.ADD,
    GroupCommand.MODIFY,
    FlowCommand.ADD,
    FlowCommand.MODIFY_STRICT,
    FlowCommand.DELETE_STRICT,
    GroupCommand.DELETE,
)


@dataclass(slots=True)
class Changes:
    flows: dict[FlowCommand, list[FlowSpec]] = field(default_factory=lambda: {c: [] for c in FlowCommand})
    groups: dict[GroupCommand, list[GroupSpec]] = field(default_factory=lambda: {c: [] for c in GroupCommand})

    def __bool__(self) -> bool:
        return any(self.flows.values()) or any(self.groups.values())


def ours(flow: FlowSpec) -> bool:
    return flow.cookie & ROUTE_COOKIE_MASK == ROUTE_COOKIE


def index_installed(flows: Iterable[FlowSpec]) -> dict[FlowKey, FlowSpec]:
    """Flow stats read back, keyed like the plan; flows outside our cookie space are dropped here."""
    return {flow.key: flow for flow in flows if ours(flow)}


def diff_flows(
    desired: Mapping[FlowKey, FlowSpec],
    installed: Mapping[FlowKey, FlowSpec],
    keys: Iterable[FlowKey] | None = None,
    changes: Changes | None = None,
) -> Changes:
    """Compare every key (`keys` None) or only the given ones (incremental: the keys a change may touch)."""
    changes = Changes() if changes is None else changes  # an empty Changes is falsy, and still the one to fill
    adds, modifies, deletes = (changes.flows[c] for c in FlowCommand)
    # `have` and `want` found under one key agree on priority and match: only the cookie and actions can differ
    # (compared so, a 100,000-flow reconcile does not compare every match twice more).
    if keys is None:
        found: set[int] = set()
        for key, want in desired.items():
            have = installed.get(key)
            if have is None:
                adds.append(want)
                continue
            found.add(id(have))
            if _differs(have, want):
                modifies.append(want)
        if len(found) < len(installed):
            deletes.extend(have for have in installed.values() if id(have) not in found)
        return changes
    for key in keys:
        want = desired.get(key)
        have = installed.get(key)
        if want is None:
            if have is not None:
                deletes.append(have)
        elif have is None:
            adds.append(want)
        elif _differs(have, want):
            modifies.append(want)
    return changes


def _differs(have: FlowSpec, want: FlowSpec) -> bool:
    """Two flows found under one key (same priority and match): whether the switch's needs modifying."""
    return have is not want and (
        have.actions is not want.actions and have.actions != want.actions or have.cookie != want.cookie
    )


def diff_groups(
    desired: Mapping[int, GroupSpec], installed: Mapping[int, GroupSpec], changes: Changes | None = None
) -> Changes:
    changes = Changes() if changes is None else changes  # an empty Changes is falsy, and still the one to fill
    theirs = {gid: group for gid, group in installed.items() if is_route_group(gid)}
    for gid, want in desired.items():
        have = theirs.get(gid)
        if have is None:
            changes.groups[GroupCommand.ADD].append(want)
        elif have != want:
            changes.groups[GroupCommand.MODIFY].append(want)
    changes.groups[GroupCommand.DELETE].extend(g for gid, g in theirs.items() if gid not in desired)
    return changes


def order(changes: Changes, *, first_seq: int = 1, batch_size: int = DEFAULT_BATCH_SIZE) -> list[Op]:
    """The ops of `changes` in `PHASES` order, a barrier after each phase and every `batch_size` ops."""
    ops: list[Op] = []
    seq = first_seq
    for phase in PHASES:
        for chunk in _chunks(_phase_ops(changes, phase), batch_size):
            ops.extend(chunk)
            ops.append(Barrier(seq))
            seq += 1
    return ops


def diff(
    desired_flows: Mapping[FlowKey, FlowSpec],
    installed_flows: Iterable[FlowSpec],
    desired_groups: Mapping[int, GroupSpec] | None = None,
    installed_groups: Iterable[GroupSpec] = (),
    *,
    first_seq: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[Op]:
    """The full reconcile: everything the switch must do to hold exactly the desired route flows and groups."""
    changes = diff_flows(desired_flows, index_installed(installed_flows))
    diff_groups(desired_groups or {}, {g.group_id: g for g in installed_groups}, changes)
    return order(changes, first_seq=first_seq, batch_size=batch_size)


def _phase_ops(changes: Changes, phase: FlowCommand | GroupCommand) -> list[Op]:
    if isinstance(phase, FlowCommand):
        return [FlowOp(phase, flow) for flow in changes.flows[phase]]
    return [GroupOp(phase, group) for group in changes.groups[phase]]


def _chunks(ops: list[Op], size: int) -> Iterator[list[Op]]:
    for start in range(0, len(ops), size):
        yield ops[start : start + size]
