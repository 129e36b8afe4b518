"""BGP sessions seen on reassembled TCP streams: framing, context, session life, and routes into the RIB.

One session per TCP connection; each direction is a speaker, and routes are attributed to the sender. Decoding is
driven by the context both OPENs give (parsers.bgp.context). A capture that starts mid-session has no OPEN pair:
the missing facts are inferred from what decodes exactly, once per session and family, and the session is marked
inferred. Pure: stream events and `now` in, RIB calls and records out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from parsers.bgp.constants import (
    AddPathMode,
    AfiSafi,
    AttrCode,
    CeaseSubcode,
    MessageType,
    NotificationCode,
    family_name,
)
from parsers.bgp.context import SessionContext, negotiate
from parsers.bgp.messages import MessageReader, RawMessage, Skipped, Update, decode_body, decode_update
from parsers.bgp.nlri import nlri_fits
from parsers.bgp.notification import Notification
from parsers.bgp.open import Open
from parsers.bgp.update import (
    AttributeCache,
    UpdateRoutes,
    as_path_fits,
    plain_announcement,
    split_mp_attributes,
    update_routes,
)
from parsers.errors import Action, DecodeError, ParseError
from sniffroute.rib import Path, Peer, PeerState, Rib
from sniffroute.streams import Closed, CloseReason, Data, Flow, Gap, Opened

MAX_ERRORS_KEPT = 200  # the summary keeps the first errors in full and counts the rest


# A new SYN on the same 4-tuple means the peer restarted: the old session is over as surely as with FIN or RST.
# End of input and idle eviction say nothing about the session, so its routes stay.
_SESSION_ENDING = frozenset({CloseReason.FIN, CloseReason.RST, CloseReason.REPLACED})


@dataclass(slots=True)
class ErrorRecord:
    """A problem found in a session's bytes, located: which speaker, which message, where in it."""

    flow: str
    message_offset: int  # stream offset of the message (or of the skipped bytes)
    error: ParseError
    now: float

    def describe(self) -> str:
        return f"{self.flow} message at stream byte {self.message_offset}: {self.error}"


@dataclass(slots=True)
class Speaker:
    """One direction of a session: the sender, what it sent, and how to decode it."""

    flow: Flow
    reader: MessageReader = field(default_factory=MessageReader)
    open: Open | None = None
    ctx: SessionContext | None = None  # decided context; None while facts are missing
    as4: bool | None = None  # inferred facts, while no OPEN pair decides them
    add_path: dict[AfiSafi, bool] = field(default_factory=dict)
    peer: Peer | None = None
    messages: Counter[str] = field(default_factory=Counter)
    gaps: int = 0
    end_of_rib: set[AfiSafi] = field(default_factory=set)
    generation: int = 0  # stamped on the paths it sends (see Peer.generation)
    confirmed: bool = False  # a KEEPALIVE followed its OPEN: it accepted the other side's OPEN


@dataclass(slots=True)
class Session:
    conn_id: int
    client: Flow  # the direction whose first bytes (or SYN) we saw first
    started: float
    speakers: dict[Flow, Speaker] = field(default_factory=dict)
    state: str = "open"
    ended: float | None = None
    end_reason: str | None = None
    notification: Notification | None = None
    notification_from: str | None = None

    @property
    def inferred(self) -> bool:
        return any(s.ctx is not None and s.ctx.inferred for s in self.speakers.values())


@dataclass(slots=True)
class BgpStats:
    messages: Counter[str] = field(default_factory=Counter)
    announced: Counter[str] = field(default_factory=Counter)  # per "afi/safi"
    withdrawn: Counter[str] = field(default_factory=Counter)
    end_of_rib: Counter[str] = field(default_factory=Counter)
    gaps: int = 0
    gap_bytes: int = 0
    errors: list[ErrorRecord] = field(default_factory=list)
    error_count: int = 0
    actions: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class RestoredHold:
    """A peer whose routes were restored from the store: their generation, and how long a new session may take
    to announce them again (deadline: set once it took over)."""

    generation: int
    hold: float
    deadline: float | None = None


class SessionTracker:
    """Consumes stream events for BGP connections; keeps sessions, speakers and the RIB current."""

    def __init__(self, rib: Rib, on_gap: Callable[[Speaker, float], None] | None = None) -> None:
        self.rib = rib
        self.sessions: dict[int, Session] = {}
        self.finished: list[Session] = []
        self.cache = AttributeCache()
        self.stats = BgpStats()
        self._peers: dict[tuple[str, str], Peer] = {}
        self._stale: set[int] = set()
        self._restored: dict[int, RestoredHold] = {}  # peers whose routes came from the store (adopt_restored)
        self._on_gap = on_gap

    # -- stream events -------------------------------------------------------------------------------------
    def handle(self, event: Opened | Data | Gap | Closed) -> None:
        if self._stale:
            self._expire_stale(event.now)
        if type(event) is Data:
            session = self.sessions.get(event.conn_id)
            speaker = session.speakers.get(event.flow) if session is not None else None
            if speaker is None:
                speaker = self._speaker(event.conn_id, event.flow, event.now)
                session = self.sessions[event.conn_id]
            now = event.now
            message = self._message
            for item in speaker.reader.feed(event.data):
                if type(item) is RawMessage:
                    message(session, speaker, item, now)  # type: ignore[arg-type]
                else:
                    self._skipped(speaker, item, now)  # type: ignore[arg-type]
        elif isinstance(event, Opened):
            self._speaker(event.conn_id, event.flow, event.now)
        elif isinstance(event, Gap):
            speaker = self._speaker(event.conn_id, event.flow, event.now)
            speaker.gaps += 1
            self.stats.gaps += 1
            self.stats.gap_bytes += event.missing
            skipped = speaker.reader.gap(event.missing)
            if skipped is not None:
                self._skipped(speaker, skipped, event.now)
            if speaker.peer is not None:
                speaker.peer.possibly_stale = True
            if self._on_gap is not None:
                self._on_gap(speaker, event.now)
        elif isinstance(event, Closed):
            session = self.sessions.get(event.conn_id)
            if session is not None and event.reason in _SESSION_ENDING:
                self._end(session, event.reason, event.now)

    def finish(self, now: float) -> None:
        """End of input: sessions still open stay up (their routes stay); stale timers are checked."""
        self._expire_stale(now)
        if self._restored:
            self._expire_restored(now)

    def expire(self, now: float) -> None:
        """Check the stale timers without an event (a live controller whose peers have gone quiet)."""
        self._expire_stale(now)
        if self._restored:
            self._expire_restored(now)

    # -- routes restored from the store ------------------------------------------------------------------------
    def adopt_restored(self, hold: float) -> None:
        """Take over the peers `Rib.restore` put in the RIB, their routes held stale, as after a graceful restart
        of their sessions (RFC 4724 4.2), with these bounds:

        - the peer never comes back: its routes go at the peer's `stale_deadline` (set by `Rib.restore`);
        - a new session from it (an OPEN seen) takes over: its announcements replace the restored routes, and
          the restored routes it did not announce again go at its End-of-RIB for the family, or `hold` seconds
          after it took over when no End-of-RIB comes;
        - a session that was under way across the restart (UPDATEs without an OPEN) keeps the restored routes
          as its own, the peer marked possibly stale: what it sent meanwhile was not seen.
        """
        for peer in self.rib.peers.values():
            self._peers.setdefault((peer.address, peer.local_address), peer)
            if peer.state is PeerState.STALE:
                self._stale.add(peer.id)
                self._restored[peer.id] = RestoredHold(peer.generation, hold)

    def _expire_restored(self, now: float) -> None:
        for peer_id, held in list(self._restored.items()):
            peer = self.rib.peers[peer_id]
            if peer.state is PeerState.DOWN:
                del self._restored[peer_id]  # flushed with the peer
            elif peer.generation == held.generation:
                if peer.state is PeerState.ESTABLISHED:  # a session that carried on across the restart
                    peer.possibly_stale = True
                    del self._restored[peer_id]
            elif held.deadline is None:
                held.deadline = now + held.hold  # a new session took over since the last check
            elif now >= held.deadline:
                self.rib.flush_peer(peer_id, older_than=held.generation + 1)
                del self._restored[peer_id]

    # -- speakers and peers --------------------------------------------------------------------------------
    def _speaker(self, conn_id: int, flow: Flow, now: float) -> Speaker:
        session = self.sessions.get(conn_id)
        if session is None:
            session = self.sessions[conn_id] = Session(conn_id, flow, now)
        speaker = session.speakers.get(flow)
        if speaker is None:
            speaker = session.speakers[flow] = Speaker(flow)
            speaker.reader.max_len = 65535  # until the OPENs say otherwise: never reject a message we can frame
        return speaker

    def _peer_for(self, speaker: Speaker) -> Peer:
        if speaker.peer is None:
            key = (speaker.flow.src, speaker.flow.dst)
            peer = self._peers.get(key)
            if peer is None:
                peer = self._peers[key] = self.rib.add_peer(speaker.flow.src, speaker.flow.dst)
            speaker.peer = peer
        return speaker.peer

    # -- messages ------------------------------------------------------------------------------------------
    def _message(self, session: Session, speaker: Speaker, raw: RawMessage, now: float) -> None:
        msg_type = raw.type
        name = _TYPE_NAMES.get(msg_type) or _type_name(msg_type)
        speaker.messages[name] += 1
        self.stats.messages[name] += 1
        if msg_type == _UPDATE:
            self._update(session, speaker, raw, now)
            return
        try:
            message = decode_body(raw.type, raw.body)
        except DecodeError as exc:
            self._error(speaker, raw.offset, exc.error, now)
            return
        if raw.type == MessageType.OPEN:
            self._open(session, speaker, message, now)  # type: ignore[arg-type]
        elif raw.type == MessageType.KEEPALIVE:
            if speaker.open is not None and not speaker.confirmed:
                speaker.confirmed = True
                other = self._other(session, speaker)
                if other is not None and other.confirmed:
                    self._established(session)
        elif raw.type == MessageType.NOTIFICATION:
            session.notification = message  # type: ignore[assignment]
            session.notification_from = speaker.flow.src
            self._end(session, "notification", now)

    def _open(self, session: Session, speaker: Speaker, message: Open, now: float) -> None:
        speaker.open = message
        peer = self._peer_for(speaker)
        other = self._other(session, speaker)
        peer.sessions_seen += 1
        speaker.generation = peer.sessions_seen
        current = self.sessions.get(peer.session) if peer.session is not None else None
        if current is None or current.state != "open":
            self._take_over(peer, session, speaker)
        # Otherwise another session of this speaker is still open: a collision (RFC 4271 6.8), where one of the two
        # is about to be closed, or a restart whose close the capture missed. The first UPDATE decides (_update).
        peer.asn = message.asn
        peer.router_id = message.router_id
        speaker.ctx = None
        speaker.end_of_rib.clear()
        if other is not None and other.open is not None:
            peer.local_asn = other.open.asn
            if other.peer is not None:
                other.peer.local_asn = message.asn
            for one, two in ((speaker, other), (other, speaker)):
                one.ctx = negotiate(one.open, two.open)  # type: ignore[arg-type]
                one.reader.max_len = one.ctx.max_message_len

    def _established(self, session: Session) -> None:
        """Both sides accepted the other's OPEN. Of two colliding connections the loser is closed before this
        (RFC 4271 6.8), so a session that gets here replaces any other one still open for the same speakers."""
        for speaker in session.speakers.values():
            peer = speaker.peer
            if peer is None:
                continue
            if peer.session != session.conn_id:
                self._take_over(peer, session, speaker)
            self._settle(peer)

    def _take_over(self, peer: Peer, session: Session, speaker: Speaker) -> None:
        """`session` becomes the one whose routes count for `peer`; what an earlier session left goes. Routes held
        stale (graceful restart, or restored at a restart) stay stale until the session is established
        (`_settle`): it can end before, the loser of a collision say, and then takes none of them with it."""
        if peer.state is not PeerState.STALE:
            if peer.id not in self._restored:  # restored routes go at End-of-RIB or when their hold ends
                self.rib.flush_peer(peer.id, older_than=speaker.generation)  # an earlier session that never closed
            peer.state = PeerState.ESTABLISHED
        peer.session = session.conn_id
        peer.generation = speaker.generation
        peer.possibly_stale = False

    def _settle(self, peer: Peer) -> None:
        """The peer's session is established (KEEPALIVEs both ways, or an UPDATE): the routes still stale from
        before go at its End-of-RIB (RFC 4724 4.2), or when a restored peer's hold ends."""
        if peer.state is PeerState.STALE:
            self._stale.discard(peer.id)
            peer.state = PeerState.ESTABLISHED

    def _other(self, session: Session, speaker: Speaker) -> Speaker | None:
        return session.speakers.get(speaker.flow.reversed())

    def _context(self, speaker: Speaker, update: Update) -> SessionContext:
        """The decided context, or one inferred from this UPDATE for the facts still unknown."""
        if speaker.ctx is not None and not speaker.ctx.inferred:
            return speaker.ctx
        own = speaker.open
        split = split_mp_attributes(update.attributes)
        if speaker.as4 is None:
            if own is not None and own.four_octet_as is None:
                speaker.as4 = False
            elif split is not None and split.as_path:
                fits4 = as_path_fits(split.as_path, True)
                fits2 = as_path_fits(split.as_path, False)
                has_as4_path = _has_attribute(split.shared, AttrCode.AS4_PATH)
                # AS4_PATH is only sent on 2-octet sessions (RFC 6793 4.2.2); else prefer what fits.
                speaker.as4 = not has_as4_path if fits4 == fits2 else fits4
        families: list[tuple[AfiSafi, bytes]] = []
        if update.withdrawn:
            families.append(((1, 1), update.withdrawn))
        if update.nlri:
            families.append(((1, 1), update.nlri))
        if split is not None:
            # MP_REACH: AFI, SAFI, next-hop length, next hop, reserved, NLRI. MP_UNREACH: AFI, SAFI, NLRI.
            mp_fields = [(value, 5 + value[3]) for _at, _flags, value in split.reach if len(value) >= 4]
            mp_fields += [(value, 3) for _at, _flags, value in split.unreach if len(value) >= 3]
            for value, start in mp_fields:
                families.append((((value[0] << 8) | value[1], value[2]), value[start:]))
        for family, data in families:
            if family in speaker.add_path or not data:
                continue
            if own is not None and not own.add_path.get(family, 0) & AddPathMode.SEND:
                speaker.add_path[family] = False
            else:
                # Path identifiers only when the field cannot be read without them (never a length heuristic
                # alone: a field that reads both ways is taken as it reads without).
                speaker.add_path[family] = not nlri_fits(data, family, False) and nlri_fits(data, family, True)
        ctx = SessionContext(
            as4=speaker.as4 if speaker.as4 is not None else True,
            add_path=frozenset(f for f, on in speaker.add_path.items() if on),
            extended_message=True,
            inferred=True,
        )
        speaker.ctx = ctx
        return ctx

    def _update(self, session: Session, speaker: Speaker, raw: RawMessage, now: float) -> None:
        ctx = speaker.ctx
        peer = speaker.peer
        if (
            ctx is not None
            and (not ctx.inferred or speaker.as4 is not None)
            and peer is not None
            and peer.session == session.conn_id
            and peer.state is not PeerState.STALE  # its first UPDATE settles it (below)
        ):
            # Most UPDATEs of a session under way just announce: decoded in one pass, straight into the RIB. An
            # inferred context qualifies once its AS width and the family's ADD-PATH use are settled (_context
            # would infer nothing new from this UPDATE).
            plain = plain_announcement(raw.body, ctx, self.cache)
            if plain is not None and (not ctx.inferred or plain[0] in speaker.add_path):
                family, prefixes, attrs, next_hop, link_local = plain
                self.stats.announced[_FAMILY_KEYS.get(family) or _family_key(family)] += len(prefixes)
                path = Path(peer.id, attrs, next_hop, link_local, now, speaker.generation)
                self.rib.announce(family, prefixes, None, path)
                return
        try:
            update = decode_update(raw.body)
        except DecodeError as exc:
            self._error(speaker, raw.offset, exc.error, now)
            self._reset(session, speaker, now)
            return
        ctx = self._context(speaker, update)
        routes = update_routes(update, ctx, self.cache)
        peer = self._peer_for(speaker)
        if peer.session != session.conn_id:
            if speaker.open is None:
                speaker.generation = peer.generation  # a session already under way when the capture began
            self._take_over(peer, session, speaker)
        self._settle(peer)
        for error in routes.errors:
            self._error(speaker, raw.offset, error, now)
        self._apply(speaker, peer, routes, now)
        if routes.errors and routes.action >= Action.SESSION_RESET:
            self._reset(session, speaker, now)

    def _apply(self, speaker: Speaker, peer: Peer, routes: UpdateRoutes, now: float) -> None:
        stats = self.stats
        rib = self.rib
        for family, count in routes.carried_withdrawn.items():
            stats.withdrawn[_family_key(family)] += count
        for family, count in routes.carried_announced.items():
            stats.announced[_family_key(family)] += count
        for family, gone in routes.withdrawn:
            if gone.prefixes and family in RIB_FAMILIES:
                rib.withdraw(family, gone.prefixes, gone.path_ids, peer.id)
        for family in routes.disabled_families:
            rib.flush_peer(peer.id, [family])
        attrs = routes.attributes
        for announcement in routes.announced:
            if announcement.family in RIB_FAMILIES and attrs is not None:
                path = Path(
                    peer.id,
                    attrs,
                    announcement.next_hop,
                    announcement.next_hop_link_local,
                    now,
                    speaker.generation,
                )
                rib.announce(announcement.family, announcement.nlri.prefixes, announcement.nlri.path_ids, path)
        if routes.end_of_rib is not None:
            family = routes.end_of_rib
            stats.end_of_rib[_family_key(family)] += 1
            speaker.end_of_rib.add(family)
            # RFC 4724 4.2: routes still stale from before the restart go once the family is complete.
            rib.flush_peer(peer.id, [family], older_than=peer.generation)

    # -- session end ---------------------------------------------------------------------------------------
    def _end(self, session: Session, reason: str, now: float) -> None:
        if session.state != "open":
            return
        session.state = "closed"
        session.ended = now
        session.end_reason = reason
        if _collision_loser(session):
            self._collision_lost(session, now)
        else:
            self._flush_ended(session, now)
        self.finished.append(session)

    def _collision_lost(self, session: Session, now: float) -> None:
        """The loser of a collision (RFC 4271 6.8) takes no routes with it: the other connection carries on. Routes
        that were stale before it came (a graceful restart under way, a restore) are stale again."""
        for speaker in session.speakers.values():
            peer = speaker.peer
            if peer is None or peer.session != session.conn_id:
                continue
            if peer.stale_deadline is not None and now < peer.stale_deadline:
                peer.state = PeerState.STALE
                self._stale.add(peer.id)

    def _flush_ended(self, session: Session, now: float) -> None:
        hard = session.notification is not None and not _graceful_notification(session)
        for speaker in session.speakers.values():
            peer = speaker.peer
            if peer is None or peer.state is not PeerState.ESTABLISHED or peer.session != session.conn_id:
                continue  # not the session whose routes count
            restart = _restart_time(speaker, self._other(session, speaker))
            if restart is not None and not hard:
                peer.state = PeerState.STALE
                peer.stale_deadline = now + restart
                self._stale.add(peer.id)
            else:
                self.rib.flush_peer(peer.id)
                peer.state = PeerState.DOWN

    def _reset(self, session: Session, speaker: Speaker, now: float) -> None:
        """RFC 7606 session reset: the receiver would have torn the session down, dropping the sender's routes."""
        if speaker.peer is not None:
            self.rib.flush_peer(speaker.peer.id)
            speaker.peer.state = PeerState.DOWN

    def _expire_stale(self, now: float) -> None:
        for peer_id in list(self._stale):
            peer = self.rib.peers[peer_id]
            if peer.state is not PeerState.STALE:
                self._stale.discard(peer_id)
            elif peer.stale_deadline is not None and now >= peer.stale_deadline:
                self.rib.flush_peer(peer_id)
                peer.state = PeerState.DOWN
                self._stale.discard(peer_id)

    # -- problems ------------------------------------------------------------------------------------------
    def _skipped(self, speaker: Speaker, skipped: Skipped, now: float) -> None:
        self._error(speaker, skipped.offset, skipped.error, now)

    def _error(self, speaker: Speaker, offset: int, error: ParseError, now: float) -> None:
        stats = self.stats
        stats.error_count += 1
        stats.actions[error.action.name.lower()] += 1
        if len(stats.errors) < MAX_ERRORS_KEPT:
            flow = speaker.flow
            stats.errors.append(ErrorRecord(f"{flow.src}:{flow.sport}->{flow.dst}:{flow.dport}", offset, error, now))

    def all_sessions(self) -> list[Session]:
        return sorted(self.sessions.values(), key=lambda s: s.conn_id)


RIB_FAMILIES = frozenset({(1, 1), (2, 1)})


_FAMILY_KEYS: dict[AfiSafi, str] = {}
_TYPE_NAMES = {int(t): t.name.lower() for t in MessageType}
_UPDATE = int(MessageType.UPDATE)


def _family_key(family: AfiSafi) -> str:
    key = _FAMILY_KEYS.get(family)
    if key is None:
        key = _FAMILY_KEYS[family] = f"{family[0]}/{family[1]}"
    return key


def _type_name(msg_type: int) -> str:
    return _TYPE_NAMES.get(msg_type) or f"type-{msg_type}"


def _has_attribute(block: bytes, code: int) -> bool:
    i = 0
    end = len(block)
    while i + 3 <= end:
        flags, this = block[i], block[i + 1]
        if flags & 0x10:
            if i + 4 > end:
                return False
            length, head = (block[i + 2] << 8) | block[i + 3], 4
        else:
            length, head = block[i + 2], 3
        if this == code:
            return True
        i += head + length
    return False


def _restart_time(speaker: Speaker, other: Speaker | None) -> int | None:
    """Seconds the receiver keeps the sender's routes after the session drops (RFC 4724 4.2), or None."""
    if speaker.open is None or other is None or other.open is None:
        return None
    sent = speaker.open.graceful_restart
    if sent is None or other.open.graceful_restart is None:
        return None
    return sent.restart_time


def _collision_loser(session: Session) -> bool:
    """Closed with Cease/Connection Collision Resolution: the other connection between the two won (RFC 4271 6.8)."""
    notification = session.notification
    return (
        notification is not None
        and notification.code == NotificationCode.CEASE
        and notification.subcode == CeaseSubcode.CONNECTION_COLLISION_RESOLUTION
    )


def _graceful_notification(session: Session) -> bool:
    """RFC 8538: with the N bit from both sides, a NOTIFICATION other than Hard Reset keeps GR routes."""
    notification = session.notification
    if notification is None:
        return True
    if notification.code == NotificationCode.CEASE and notification.subcode == CeaseSubcode.HARD_RESET:
        return False
    n_bit = 0x4  # RFC 8538 2: the "N" bit in the Restart Flags
    opens = [s.open for s in session.speakers.values()]
    return (
        all(o is not None and o.graceful_restart is not None and o.graceful_restart.flags & n_bit for o in opens)
        and len(opens) == 2
    )


__all__ = ["SessionTracker", "Session", "Speaker", "BgpStats", "ErrorRecord", "family_name"]
