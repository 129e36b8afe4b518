"""One BGP session over one TCP connection, sans-I/O (RFC 4271 8, from OpenSent on).

Bytes received, timer ticks and commands go in, each with `now` (seconds, any monotonic clock); what to send, when
to close and what happened come out as a list of outputs, in order. Nothing here touches a socket or a clock.

The session advertises nothing: it sends OPEN, KEEPALIVE, ROUTE-REFRESH (on request) and NOTIFICATION, and ignores
every UPDATE it receives (the RIB learns routes from the sniffed frames of this same TCP stream). Connecting,
accepting and retrying belong to the edge (`holder`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from parsers.bgp.constants import (
    AS_TRANS,
    MAX_MESSAGE_LEN,
    Afi,
    CapabilityCode,
    CeaseSubcode,
    MessageType,
    NotificationCode,
    OpenSubcode,
    Safi,
)
from parsers.bgp.messages import Keepalive, encode_message
from parsers.bgp.notification import (
    MAX_SHUTDOWN_MESSAGE_LEN,
    Notification,
    decode_notification,
    shutdown_notification,
)
from parsers.bgp.open import (
    BGP_VERSION,
    Capability,
    EnhancedRouteRefresh,
    FourOctetAs,
    GracefulRestart,
    Multiprotocol,
    Open,
    OptionalParameter,
    ParameterType,
    RouteRefreshCapability,
    decode_open,
)
from parsers.bgp.route_refresh import RouteRefresh, decode_route_refresh
from parsers.errors import Action, DecodeError, ParseError
from sniffroute.speaker.config import PeerConfig
from sniffroute.speaker.events import (
    PeerState,
    RefreshReceived,
    RefreshSent,
    SessionDown,
    SessionEstablished,
    SpeakerEvent,
    StateChanged,
)
from sniffroute.speaker.framing import HeaderError, next_frame

# RFC 4271 8.2.2: the hold timer while waiting for the peer's OPEN ("a large value", 4 minutes suggested).
OPEN_SENT_HOLD_TIME = 240.0
# RFC 4271 4.2: the keepalive interval is one third of the hold time.
KEEPALIVES_PER_HOLD_TIME = 3
MAX_OWN_AS = 0xFFFF  # a larger local AS goes in the 4-octet AS capability, AS_TRANS in My AS (RFC 6793 4.1)
OUR_FAMILIES = ((Afi.IPV4, Safi.UNICAST), (Afi.IPV6, Safi.UNICAST))
# RFC 4760 1: a speaker that advertises no multiprotocol capability carries IPv4 unicast only.
IMPLICIT_FAMILIES = frozenset({(Afi.IPV4, Safi.UNICAST)})
# RFC 6608 3: FSM Error subcodes, "Receive Unexpected Message in <state>".
UNEXPECTED_MESSAGE_SUBCODE: Mapping[PeerState, int] = MappingProxyType(
    {PeerState.OPEN_SENT: 1, PeerState.OPEN_CONFIRM: 2, PeerState.ESTABLISHED: 3}
)
UNSPECIFIC = 0  # RFC 4271 4.5
HIGHEST_VERSION = BGP_VERSION.to_bytes(2, "big")  # RFC 4271 6.2: data of Unsupported Version Number
LIVE_STATES = frozenset(UNEXPECTED_MESSAGE_SUBCODE)


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close the TCP connection, after sending everything before this output."""


Output = Send | Close | SpeakerEvent


def build_open(config: PeerConfig) -> Open:
    """Our OPEN: IPv4 and IPv6 unicast, route refresh, enhanced route refresh, 4-octet AS and graceful restart
    as the receiving speaker only (RFC 4724 3: restart time and no address family, so no forwarding state)."""
    my_as = config.local_as if config.local_as <= MAX_OWN_AS else AS_TRANS
    capabilities = (
        *(Capability(CapabilityCode.MULTIPROTOCOL, Multiprotocol(afi, safi)) for afi, safi in OUR_FAMILIES),
        Capability(CapabilityCode.ROUTE_REFRESH, RouteRefreshCapability()),
        Capability(CapabilityCode.ENHANCED_ROUTE_REFRESH, EnhancedRouteRefresh()),
        Capability(CapabilityCode.FOUR_OCTET_AS, FourOctetAs(config.local_as)),
        Capability(CapabilityCode.GRACEFUL_RESTART, GracefulRestart(0, config.restart_time)),
    )
    return Open(
        BGP_VERSION,
        my_as,
        config.hold_time,
        config.router_id,
        (OptionalParameter(ParameterType.CAPABILITIES, capabilities),),
    )


def keeps_locally_initiated(local_id: str, local_as: int, remote_id: str, remote_as: int) -> bool:
    """Collision resolution (RFC 4271 6.8): the connection opened by the speaker with the higher BGP Identifier
    stays; with equal identifiers (allowed for eBGP), the higher AS number decides (RFC 6286 2.3)."""
    local = (int(ipaddress.IPv4Address(local_id)), local_as)
    remote = (int(ipaddress.IPv4Address(remote_id)), remote_as)
    return local > remote


class Session:
    """One connection's session. Call `start` once the TCP connection is up, then feed it.

    `state` begins as CONNECT (we opened the connection) or ACTIVE (the peer did), becomes OPEN_SENT on `start`
    and IDLE when the session ends; after that every input is ignored.
    """

    def __init__(self, config: PeerConfig, *, initiated_locally: bool) -> None:
        self.config = config
        self.initiated_locally = initiated_locally
        self.state = PeerState.CONNECT if initiated_locally else PeerState.ACTIVE
        self.peer_open: Open | None = None
        self.hold_time: int | None = None  # negotiated, once the peer's OPEN is accepted
        self._buf = bytearray()
        self._hold_deadline: float | None = None
        self._keepalive_deadline: float | None = None
        self._keepalive_interval = 0.0

    # -- inputs ----------------------------------------------------------------------------------------------

    def start(self, now: float) -> list[Output]:
        """The TCP connection is up: send our OPEN and wait for the peer's (RFC 4271 8.2.2, Connect state)."""
        if self.state in LIVE_STATES or self.state == PeerState.IDLE:
            return []
        out: list[Output] = [Send(encode_message(build_open(self.config)))]
        self._hold_deadline = now + OPEN_SENT_HOLD_TIME
        self._move(PeerState.OPEN_SENT, out)
        return out

    def receive_data(self, data: bytes, now: float) -> list[Output]:
        """Bytes from the peer; whole messages are handled at once, a partial one is kept."""
        out: list[Output] = []
        if self.state not in LIVE_STATES:
            return out
        self._buf += data
        while self.state in LIVE_STATES:
            try:
                frame = next_frame(self._buf, MAX_MESSAGE_LEN)
            except HeaderError as exc:
                self._fail(out, exc.error, exc.data)
                break
            if frame is None:
                break
            del self._buf[: frame.size]
            handler = _HANDLERS.get((self.state, frame.type))
            if handler is None:
                handler = _HANDLERS_ANY_STATE.get(frame.type, Session._unexpected)
            try:
                handler(self, frame.type, frame.body, now, out)
            except DecodeError as exc:
                self._fail(out, exc.error)
        return out

    def handle_timer(self, now: float) -> list[Output]:
        """Run the timers that are due at `now` (call it at `next_deadline()`, or any time: early is harmless)."""
        out: list[Output] = []
        if self.state not in LIVE_STATES:
            return out
        if self._hold_deadline is not None and now >= self._hold_deadline:
            # RFC 4271 6.5: Hold Timer Expired.
            error = ParseError("hold timer expired", 0, 0, Action.SESSION_RESET, NotificationCode.HOLD_TIMER_EXPIRED)
            self._fail(out, error)
            return out
        if self._keepalive_deadline is not None and now >= self._keepalive_deadline:
            out.append(Send(encode_message(Keepalive())))
            self._keepalive_deadline = now + self._keepalive_interval
        return out

    def next_deadline(self) -> float | None:
        """When `handle_timer` next has something to do; None when no timer runs."""
        if self.state not in LIVE_STATES:
            return None
        deadlines = [d for d in (self._hold_deadline, self._keepalive_deadline) if d is not None]
        return min(deadlines, default=None)

    def connection_lost(self, now: float, reason: str = "connection closed by the peer") -> list[Output]:
        """The TCP connection ended without a NOTIFICATION."""
        out: list[Output] = []
        if self.state == PeerState.IDLE:
            return out
        self._end(out, reason)
        return out

    # -- commands --------------------------------------------------------------------------------------------

    def stop(self, message: str, now: float) -> list[Output]:
        """Cease/Administrative Shutdown carrying `message` (RFC 8203, RFC 9003; cut to 255 bytes), then close."""
        text = message.encode()[:MAX_SHUTDOWN_MESSAGE_LEN].decode(errors="ignore")
        return self.cease(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, now, shutdown_notification(text), "stopped")

    def cease(
        self, subcode: int, now: float, notification: Notification | None = None, reason: str = ""
    ) -> list[Output]:
        """Send a Cease NOTIFICATION (e.g. Connection Collision Resolution) and close; just close if no OPEN
        went out yet."""
        out: list[Output] = []
        if self.state == PeerState.IDLE:
            return out
        if self.state not in LIVE_STATES:
            self._end(out, reason or "closed before OPEN")
            return out
        notification = notification or Notification(int(NotificationCode.CEASE), int(subcode))
        out.append(Send(encode_message(notification)))
        self._end(out, reason or notification.describe(), sent=notification)
        return out

    def refresh_refusal(self, afi: int, safi: int) -> str | None:
        """Why a ROUTE-REFRESH for (afi, safi) cannot be sent now, or None if it can (RFC 2918 4)."""
        if self.state != PeerState.ESTABLISHED or self.peer_open is None:
            return f"session is {self.state}"
        if not self.peer_open.route_refresh:
            return "the peer did not advertise route refresh"
        if (afi, safi) not in OUR_FAMILIES or (afi, safi) not in self.peer_families:
            return f"family {afi}/{safi} was not negotiated"
        return None

    def request_refresh(self, afi: int, safi: int, now: float) -> list[Output]:
        """Ask the peer to resend its routes of one family (RFC 2918 3); nothing when `refresh_refusal` says no."""
        if self.refresh_refusal(afi, safi) is not None:
            return []
        return [Send(encode_message(RouteRefresh(afi, safi))), RefreshSent(self.config.address, afi, safi)]

    @property
    def peer_families(self) -> frozenset[tuple[int, int]]:
        if self.peer_open is None:
            return frozenset()
        return self.peer_open.multiprotocol or IMPLICIT_FAMILIES

    # -- message handlers (see _HANDLERS) --------------------------------------------------------------------

    def _on_open(self, _: int, body: bytes, now: float, out: list[Output]) -> None:
        peer_open = decode_open(body)
        problems = peer_open.problems
        if problems:
            first = problems[0]
            data = HIGHEST_VERSION if first.subcode == OpenSubcode.UNSUPPORTED_VERSION_NUMBER else b""
            self._fail(out, first, data)
            return
        config = self.config
        if peer_open.asn != config.peer_as:
            error = _open_error(
                "bad peer AS", 1, 2, OpenSubcode.BAD_PEER_AS, f"{peer_open.asn}, expected {config.peer_as}"
            )
            self._fail(out, error)
            return
        if config.ibgp and peer_open.router_id == config.router_id:
            # RFC 6286 2.2: within an AS the BGP Identifiers must differ.
            error = _open_error("BGP Identifier equals ours", 5, 4, OpenSubcode.BAD_BGP_IDENTIFIER, peer_open.router_id)
            self._fail(out, error)
            return
        self.peer_open = peer_open
        hold = min(config.hold_time, peer_open.hold_time)  # RFC 4271 4.2
        self.hold_time = hold
        out.append(Send(encode_message(Keepalive())))
        if hold:
            self._keepalive_interval = max(1.0, hold / KEEPALIVES_PER_HOLD_TIME)
            self._keepalive_deadline = now + self._keepalive_interval
            self._hold_deadline = now + hold
        else:
            self._keepalive_deadline = self._hold_deadline = None
        self._move(PeerState.OPEN_CONFIRM, out)

    def _on_first_keepalive(self, _: int, __: bytes, now: float, out: list[Output]) -> None:
        self._restart_hold_timer(now)
        self._move(PeerState.ESTABLISHED, out)
        assert self.peer_open is not None and self.hold_time is not None  # set on entering OpenConfirm
        out.append(SessionEstablished(self.config.address, self.hold_time, self.peer_open))

    def _on_keepalive_or_update(self, _: int, __: bytes, now: float, out: list[Output]) -> None:
        # UPDATEs are ignored on purpose: the sniff pipeline reads them from the same TCP stream.
        self._restart_hold_timer(now)

    def _on_route_refresh(self, _: int, body: bytes, now: float, out: list[Output]) -> None:
        request = decode_route_refresh(body)
        self._restart_hold_timer(now)
        # We advertise nothing, so there is nothing to resend (RFC 7313 5 also ignores unknown subtypes).
        out.append(RefreshReceived(self.config.address, request.afi, request.safi, request.subtype))

    def _on_notification(self, _: int, body: bytes, now: float, out: list[Output]) -> None:
        received = decode_notification(body)
        # RFC 4271 6.4: no reply to a NOTIFICATION; the connection closes.
        self._end(out, f"received {received.describe()}", received=received)

    def _unexpected(self, msg_type: int, _: bytes, now: float, out: list[Output]) -> None:
        subcode = UNEXPECTED_MESSAGE_SUBCODE.get(self.state, UNSPECIFIC)
        error = ParseError(
            f"unexpected {_type_name(msg_type)} in {self.state}",
            0,
            0,
            Action.SESSION_RESET,
            NotificationCode.FSM_ERROR,
            subcode,
        )
        self._fail(out, error, bytes([msg_type]))  # RFC 6608 4: the data is the message type

    # -- helpers ---------------------------------------------------------------------------------------------

    def _restart_hold_timer(self, now: float) -> None:
        if self.hold_time:
            self._hold_deadline = now + self.hold_time

    def _fail(self, out: list[Output], error: ParseError, data: bytes = b"") -> None:
        """Answer bad input or an expired timer: NOTIFICATION with the error's code, then close."""
        notification = Notification(error.code, error.subcode, data)
        out.append(Send(encode_message(notification)))
        self._end(out, f"sent {notification.describe()}: {error}", sent=notification, error=error)

    def _end(
        self,
        out: list[Output],
        reason: str,
        *,
        sent: Notification | None = None,
        received: Notification | None = None,
        error: ParseError | None = None,
    ) -> None:
        was_established = self.state == PeerState.ESTABLISHED
        self._hold_deadline = self._keepalive_deadline = None
        self._buf.clear()
        out.append(Close())
        self._move(PeerState.IDLE, out)
        out.append(SessionDown(self.config.address, reason, was_established, sent, received, error))

    def _move(self, new: PeerState, out: list[Output]) -> None:
        if new != self.state:
            out.append(StateChanged(self.config.address, self.state, new))
            self.state = new


_Handler = Callable[[Session, int, bytes, float, list[Output]], None]

# The transition table: (state, message type) -> handler. A message not listed here (nor in the any-state table)
# in a live state is unexpected: FSM Error (RFC 4271 8.2.2, RFC 6608).
_HANDLERS: Mapping[tuple[PeerState, int], _Handler] = MappingProxyType(
    {
        (PeerState.OPEN_SENT, MessageType.OPEN): Session._on_open,
        (PeerState.OPEN_CONFIRM, MessageType.KEEPALIVE): Session._on_first_keepalive,
        (PeerState.ESTABLISHED, MessageType.KEEPALIVE): Session._on_keepalive_or_update,
        (PeerState.ESTABLISHED, MessageType.UPDATE): Session._on_keepalive_or_update,
        (PeerState.ESTABLISHED, MessageType.ROUTE_REFRESH): Session._on_route_refresh,
    }
)
_HANDLERS_ANY_STATE: Mapping[int, _Handler] = MappingProxyType({MessageType.NOTIFICATION: Session._on_notification})


def _open_error(kind: str, offset: int, length: int, subcode: int, detail: str) -> ParseError:
    return ParseError(kind, offset, length, Action.SESSION_RESET, NotificationCode.OPEN_MESSAGE_ERROR, subcode, detail)


def _type_name(msg_type: int) -> str:
    try:
        return MessageType(msg_type).name
    except ValueError:
        return f"type {msg_type}"
