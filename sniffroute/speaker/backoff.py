"""Reconnect delays: exponential, bounded, jittered. Pure: the random draw is an argument."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before attempt n+1 after n failures: `first` * 2**n, at most `cap`, scaled by a factor drawn in
    [1 - `jitter`, 1] so that peers restarted together do not retry in lockstep (RFC 4271 10 asks for jitter)."""

    first: float = 1.0
    cap: float = 30.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if not (0 < self.first <= self.cap and 0 <= self.jitter < 1):
            raise ValueError(f"backoff: need 0 < first <= cap and 0 <= jitter < 1, got {self}")

    def delay(self, failures: int, draw: float) -> float:
        """`draw` is uniform in [0, 1) (random.random())."""
        exponent = min(max(failures, 0), 32)  # past the cap already; keeps 2**n small
        return min(self.cap, self.first * 2**exponent) * (1 - self.jitter * draw)
