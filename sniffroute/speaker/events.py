"""What the session holder reports: peer states (RFC 4271 8.2.2 names), events and status snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from parsers.bgp.notification import Notification
from parsers.bgp.open import Open
from parsers.errors import ParseError


class PeerState(StrEnum):
    """RFC 4271 8.2.2 session states, spelled as `gobgp neighbor -j` spells them."""

    IDLE = "idle"  # not trying: backing off before the next attempt, or stopped
    CONNECT = "connect"  # active peer: TCP connection under way
    ACTIVE = "active"  # passive peer: waiting for the peer to connect
    OPEN_SENT = "opensent"
    OPEN_CONFIRM = "openconfirm"
    ESTABLISHED = "established"


@dataclass(frozen=True, slots=True)
class StateChanged:
    peer: str
    old: PeerState
    new: PeerState


@dataclass(frozen=True, slots=True)
class SessionEstablished:
    """Both OPENs accepted and the first KEEPALIVE received. `hold_time` is the negotiated one (0: no timers)."""

    peer: str
    hold_time: int
    peer_open: Open


@dataclass(frozen=True, slots=True)
class SessionDown:
    """A connection ended. `sent`/`received` are the NOTIFICATIONs that ended it (None when the TCP connection
    just closed); `error` locates the bad input when we sent one because of it."""

    peer: str
    reason: str
    was_established: bool
    sent: Notification | None = None
    received: Notification | None = None
    error: ParseError | None = None


@dataclass(frozen=True, slots=True)
class RefreshSent:
    """A ROUTE-REFRESH (RFC 2918) we sent."""

    peer: str
    afi: int
    safi: int


@dataclass(frozen=True, slots=True)
class RefreshReceived:
    """A ROUTE-REFRESH the peer sent: ignored (we advertise nothing), reported for the record."""

    peer: str
    afi: int
    safi: int
    subtype: int


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    """An outgoing TCP connection failed (refused, unreachable, timed out; a TCP-MD5 mismatch looks like a
    timeout); the next attempt comes after `retry_in` seconds."""

    peer: str
    reason: str
    retry_in: float


SpeakerEvent = StateChanged | SessionEstablished | SessionDown | RefreshSent | RefreshReceived | ConnectFailed


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """A snapshot of one peer, safe to read from any thread.

    `connection` is (local address, local port, peer address, peer port) of the session in use, which is how the
    sniff pipeline names the same TCP stream; None when there is none. `since` is wall-clock time (time.time()).
    """

    address: str
    state: PeerState
    since: float
    hold_time: int | None = None
    peer_router_id: str | None = None
    connection: tuple[str, int, str, int] | None = None
    established_count: int = 0
    attempts: int = 0
    last_error: str | None = None
