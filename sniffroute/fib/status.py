"""What became of each route: installed, pending (next hop unresolved, or not yet confirmed by the switch),
failed (the switch refused it, or its next hop never resolved) or unsupported by the switch protocol."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sniffroute.fib.model import Network


class RouteState(Enum):
    INSTALLED = "installed"
    PENDING = "pending"
    FAILED = "failed"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class RouteStatus:
    prefix: Network
    state: RouteState
    detail: str  # why pending / failed, or a note on an installed route (one ECMP path used)
    protocol: str
    next_hops: tuple[str, ...]  # the next hops the flows use
    switch_errors: int = 0  # flow_mod / group_mod errors counted for this route


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorBackoff:
    """Retry a route the switch refused after first, 2*first, ... seconds, at most `most` apart."""

    first: float = 1.0
    most: float = 300.0

    def delay(self, attempts: int) -> float:
        return min(self.first * 2 ** max(attempts - 1, 0), self.most)


@dataclass(slots=True)
class SwitchError:
    text: str
    attempts: int
    retry_at: float
