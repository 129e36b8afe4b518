"""The LSDB's counters, apart from the LSDB: a replay without OSPF reports them (all zero) without loading the
OSPF codec (sniffroute.ospf.lsdb re-exports them)."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from parsers.errors import ParseError

MAX_PROBLEMS = 1000  # problems kept for display; counters keep counting beyond


@dataclass(slots=True)
class LsdbStats:
    packets: Counter[str] = field(default_factory=Counter)  # "v2 hello", ...
    lsas: Counter[str] = field(default_factory=Counter)  # LSAs in LSUs by "v2 router", "v3 link", ...
    decode_errors: int = 0
    packet_checksum_failures: int = 0
    lsa_checksum_failures: int = 0
    auth_failures: int = 0  # digest present, key given, mismatch (or malformed)
    auth_unverified: int = 0  # digest present, no key
    installed: int = 0
    duplicates: int = 0
    refreshes: int = 0
    stale: int = 0  # older than the database copy
    flushes: int = 0
    aged_out: int = 0
    discarded: int = 0  # unknown v2 types, MaxAge LSAs not in the database
    unicast_updates: int = 0  # LSUs sent to a router's own address: retransmissions (RFC 2328 13.6) or replies
    problems: deque[tuple[float, str, ParseError]] = field(default_factory=lambda: deque(maxlen=MAX_PROBLEMS))
