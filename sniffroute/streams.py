"""TCP reassembly per direction: segments in, ordered stream events out. Pure: no I/O, time is an argument.

Each connection is a pair of directions (`Flow`). `TcpTracker.feed(segment, now)` returns the events that
segment caused, in order: `Opened` once per direction, `Data` with the next in-order bytes, `Gap` where bytes
are known to be lost, `Closed` when a direction ends. Each byte is delivered at most once, in sequence order.

Policy, where TCP leaves a choice to the observer:
- Overlaps: the first copy of a byte wins (Snort's "first" policy, and what most IDS do by default). A byte
  that was delivered or is held never changes, whatever a retransmission carries.
- Start: the SYN gives the ISN (data starts at ISN + 1). A direction first seen without a SYN (capture
  started mid-session) starts at the first segment that carries payload; bytes before it are not a gap.
- Holes: out-of-order bytes are held until the hole fills, at most `max_pending_bytes` in
  `max_pending_segments` pieces per direction (all its holes together). A hole is declared lost (`Gap`, then
  the held bytes) when the peer ACKs past it, when the held bytes exceed a bound, or when the direction ends
  (RST, eviction, `close_all`). A FIN waits behind its hole like any byte. ACKs far beyond anything seen
  sent are not taken as evidence.
- Connections: a SYN after the connection closed, or a SYN whose ISN lies outside the live stream, starts a
  new `conn_id`; an in-window SYN is ignored (RFC 5961 4). A RST counts only if its sequence number lies near
  the stream (RFC 5961 3 is stricter; a passive observer does not know the receive window).
- Memory: at most `max_connections` are tracked (the least recently active is evicted) and connections idle
  longer than `idle_timeout` (in `now` units) are evicted, checked lazily as `now` advances.

Sequence numbers are 32-bit and wrap (RFC 9293 3.4): each direction keeps an unbounded offset from its start
and converts sequence numbers to offsets with signed 32-bit differences, so wrap needs no special case.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import IntFlag, StrEnum
from operator import itemgetter
from typing import NamedTuple, Protocol

SEQ_MOD = 1 << 32  # sequence numbers are 32-bit (RFC 9293 3.4)
_SEQ_MASK = SEQ_MOD - 1
_SEQ_HALF = 1 << 31
# A sequence number this close to a stream belongs to it (retransmission, late RST); a new connection's ISN is
# random (RFC 6528) and lands this close to the old stream with probability 2**23 / 2**32 = 0.2 %.
NEAR_WINDOW = 1 << 22


class TcpFlag(IntFlag):
    """TCP header control bits (RFC 9293 3.1)."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


# Plain ints for the hot path: IntFlag arithmetic is much slower than int arithmetic.
_FIN = int(TcpFlag.FIN)
_SYN = int(TcpFlag.SYN)
_RST = int(TcpFlag.RST)
_ACK = int(TcpFlag.ACK)
_SLOW_FLAGS = _FIN | _SYN | _RST


class CloseReason(StrEnum):
    FIN = "fin"  # the direction's FIN, after all its bytes
    RST = "rst"  # a RST from either end closes both directions
    EVICTED = "evicted"  # idle longer than idle_timeout, or pushed out by max_connections
    END = "end"  # close_all at the end of the input
    REPLACED = "replaced"  # a new connection (new SYN) took the 4-tuple while this one looked open


class SegmentLike(Protocol):
    """What the tracker reads from a TCP segment (parsers.frames.TcpSegment has these and more)."""

    @property
    def src(self) -> str: ...
    @property
    def dst(self) -> str: ...
    @property
    def sport(self) -> int: ...
    @property
    def dport(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def ack(self) -> int: ...
    @property
    def flags(self) -> int: ...
    @property
    def payload(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Flow:
    """One direction of a TCP connection."""

    src: str
    sport: int
    dst: str
    dport: int

    def reversed(self) -> Flow:
        return Flow(self.dst, self.dport, self.src, self.sport)

    def __str__(self) -> str:
        return f"{self.src}:{self.sport} -> {self.dst}:{self.dport}"


# Events are records, built only by the tracker: no validation in the constructors (they are on the hot path), and
# NamedTuples, which cost a third of a frozen dataclass to make.
class Opened(NamedTuple):
    """A direction seen for the first time; `handshake` is True when its SYN was seen."""

    flow: Flow
    conn_id: int
    now: float
    handshake: bool


class Data(NamedTuple):
    """The next in-order bytes of a direction, never overlapping bytes delivered before."""

    flow: Flow
    conn_id: int
    now: float
    data: bytes


class Gap(NamedTuple):
    """`missing` bytes starting at sequence number `seq` were never seen; delivery resumes after them."""

    flow: Flow
    conn_id: int
    now: float
    missing: int
    seq: int


class Closed(NamedTuple):
    flow: Flow
    conn_id: int
    now: float
    reason: CloseReason


Event = Opened | Data | Gap | Closed


@dataclass(frozen=True, slots=True)
class StreamStats:
    segments: int = 0  # segments fed
    delivered_bytes: int = 0  # bytes handed out in Data events
    duplicate_bytes: int = 0  # bytes seen again (retransmissions, overlaps) or outside a stream, dropped
    out_of_order: int = 0  # segments held because a hole was before them
    gaps: int = 0
    gap_bytes: int = 0
    connections: int = 0  # conn_ids handed out
    evicted: int = 0  # connections dropped for idleness or max_connections
    tracked: int = 0  # connections in the table now (closed ones linger to absorb late segments)


def _delta(a: int, b: int) -> int:
    """a - b as a signed 32-bit difference of sequence numbers."""
    d = (a - b) & _SEQ_MASK
    return d - SEQ_MOD if d >= _SEQ_HALF else d


def _near(a: int, b: int) -> bool:
    return -NEAR_WINDOW <= _delta(a, b) <= NEAR_WINDOW


_start = itemgetter(0)
_new_tuple = tuple.__new__
_Key = tuple[str, int, str, int]


@dataclass(slots=True, eq=False)
class _Half:
    """The reassembly state of one direction. Offsets count sequence space from `base` (SYN = 0 when seen)."""

    key: _Key
    flow: Flow
    conn: _Conn
    ghost: int | None  # next seq of the same direction in the connection this one replaced
    peer: _Half = field(init=False)
    fast_seq: int = -1  # == next_seq when a segment at next_seq can be delivered directly, else -1
    waiting: bool = False  # held bytes or a FIN wait behind a hole: the peer's ACKs may prove a loss
    opened: bool = False
    closed: bool = False
    isn: int | None = None
    base: int = 0
    next: int = 0  # offset of the next byte to deliver
    next_seq: int = 0  # (base + next) mod 2**32
    fin: int | None = None  # offset of the FIN
    pending: list[tuple[int, bytes]] = field(default_factory=list)  # sorted, disjoint, all at offsets > next
    pending_bytes: int = 0

    def refresh(self) -> None:
        live = self.opened and not self.closed
        self.waiting = live and (bool(self.pending) or self.fin is not None)
        self.fast_seq = self.next_seq if live and not self.waiting else -1


@dataclass(slots=True, eq=False)
class _Conn:
    conn_id: int
    last: float
    a: _Half = field(init=False)
    b: _Half = field(init=False)
    closed: bool = False  # both directions ended (or RST): kept only to absorb late segments


class TcpTracker:
    """Reassembles every TCP connection it is fed. See the module docstring for the policies."""

    def __init__(
        self,
        *,
        max_pending_bytes: int = 4 << 20,
        max_pending_segments: int = 16_384,
        max_connections: int = 100_000,
        idle_timeout: float = 3600.0,
    ) -> None:
        if min(max_pending_bytes, max_pending_segments, idle_timeout) < 0 or max_connections < 1:
            raise ValueError("the bounds must not be negative, and max_connections must be at least 1")
        self._max_pending = max_pending_bytes
        self._max_pending_segments = max_pending_segments
        self._max_connections = max_connections
        self._idle = idle_timeout
        self._halves: dict[_Key, _Half] = {}
        self._lru: OrderedDict[int, _Conn] = OrderedDict()  # least recently active first
        self._next_sweep = float("inf")  # no connection can be idle before this time
        self._last_id = 0
        self._segments = 0
        self._delivered = 0
        self._duplicate = 0
        self._out_of_order = 0
        self._gaps = 0
        self._gap_bytes = 0
        self._evicted = 0

    @property
    def stats(self) -> StreamStats:
        return StreamStats(
            segments=self._segments,
            delivered_bytes=self._delivered,
            duplicate_bytes=self._duplicate,
            out_of_order=self._out_of_order,
            gaps=self._gaps,
            gap_bytes=self._gap_bytes,
            connections=self._last_id,
            evicted=self._evicted,
            tracked=len(self._lru),
        )

    # -- entry points --------------------------------------------------------------------------------------
    def feed(self, seg: SegmentLike, now: float) -> list[Event]:
        self._segments += 1
        events: list[Event] = []
        if now > self._next_sweep:
            self._sweep(now, events)
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        half = self._halves.get(key)
        if half is not None and seg.seq == half.fast_seq and not seg.flags & _SLOW_FLAGS:
            # Hot path: the next expected segment, no hole, no control bits.
            conn = half.conn
            conn.last = now
            self._lru.move_to_end(conn.conn_id)
            payload = seg.payload
            if payload:
                n = len(payload)
                half.next += n
                half.fast_seq = half.next_seq = (half.next_seq + n) & _SEQ_MASK
                self._delivered += n
                events.append(_new_tuple(Data, (half.flow, conn.conn_id, now, payload)))  # Data(...), minus a call
            if half.peer.waiting and seg.flags & _ACK:
                self._on_ack(half.peer, seg.ack, now, events)
            return events
        self._slow(seg, key, half, now, events)
        return events

    def close_all(self, now: float) -> list[Event]:
        """End of input: flush every open direction (gaps, held bytes) and close it with reason "end"."""
        events: list[Event] = []
        for conn in self._lru.values():
            if not conn.closed:
                self._close(conn, conn.a, CloseReason.END, now, events)
        self._lru.clear()
        self._halves.clear()
        self._next_sweep = float("inf")
        return events

    # -- segments off the hot path -------------------------------------------------------------------------
    def _slow(self, seg: SegmentLike, key: _Key, half: _Half | None, now: float, events: list[Event]) -> None:
        flags = seg.flags
        if half is None:
            if flags & _RST or not (flags & _SYN or seg.payload):
                return  # nothing to close, or nothing that defines a stream start
            half = self._new_conn(key, now, None, events)
        elif self._starts_new(half, seg):
            half = self._replace(half.conn, key, now, events)
        elif half.conn.closed:
            self._duplicate += len(seg.payload)  # a late segment of a finished connection
            return
        conn = half.conn
        conn.last = now
        self._lru.move_to_end(conn.conn_id)
        self._direction(half, seg, now, events)
        peer = half.peer
        if flags & _ACK and peer.waiting and not conn.closed:
            self._on_ack(peer, seg.ack, now, events)

    def _starts_new(self, half: _Half, seg: SegmentLike) -> bool:
        """Does this segment begin a new connection on the 4-tuple of `half`'s connection?"""
        conn = half.conn
        seq = seg.seq
        if seg.flags & _SYN:
            if not half.opened:
                return conn.closed
            if half.isn is not None:
                if seq == half.isn:
                    return False  # the same SYN again
            elif -NEAR_WINDOW <= _delta((seq + 1) & _SEQ_MASK, half.base) <= 0:
                return False  # the late SYN of a stream picked up mid-session
            return conn.closed or not _near((seq + 1) & _SEQ_MASK, half.next_seq)
        if conn.closed and seg.payload:
            ref = half.next_seq if half.opened else half.ghost
            return ref is None or not _near(seq, ref)  # the SYN of a new connection was not captured
        return False

    def _direction(self, half: _Half, seg: SegmentLike, now: float, events: list[Event]) -> None:
        """Apply one segment to its own direction."""
        flags = seg.flags
        seq = seg.seq
        payload = seg.payload
        if flags & _RST:
            # With nothing known of this direction, any RST counts unless it belongs to the replaced connection.
            valid = _near(seq, half.next_seq) if half.opened else half.ghost is None or not _near(seq, half.ghost)
            if valid:
                self._close(half.conn, half, CloseReason.RST, now, events)
            return
        if not half.opened:
            if flags & _SYN:
                half.isn = half.base = seq
                half.next = 1
            elif payload and (half.ghost is None or not _near(seq, half.ghost)):
                half.base = seq
                half.next = 0
            else:  # a pure ACK/FIN defines no start; bytes near `ghost` belong to the replaced connection
                self._duplicate += len(payload)
                return
            half.opened = True
            half.next_seq = (half.base + half.next) & _SEQ_MASK
            handshake = bool(flags & _SYN)
            events.append(Opened(flow=half.flow, conn_id=half.conn.conn_id, now=now, handshake=handshake))
        elif half.closed:
            self._duplicate += len(payload)
            return
        if flags & _SYN:
            seq = (seq + 1) & _SEQ_MASK  # the SYN takes one sequence number (RFC 9293 3.4)
        offset = half.next + _delta(seq, half.next_seq)
        if flags & _FIN and half.fin is None:
            fin = offset + len(payload)
            if fin >= half.next:
                half.fin = fin
        head = self._accept(half, offset, payload, now, events) if payload else None
        self._advance(half, head, now, events)

    def _accept(self, half: _Half, offset: int, payload: bytes, now: float, events: list[Event]) -> bytes | None:
        """Place a segment's bytes: returns the bytes that continue the stream now, holds later ones."""
        end = offset + len(payload)
        if half.fin is not None and end > half.fin:  # nothing follows a FIN
            keep = max(half.fin - offset, 0)
            self._duplicate += len(payload) - keep
            payload = payload[:keep]
            end = offset + keep
            if not payload:
                return None
        nxt = half.next
        if end <= nxt:
            self._duplicate += end - offset if end > offset else 0
            return None
        if offset < nxt:
            self._duplicate += nxt - offset
            payload = payload[nxt - offset :]
            offset = nxt
        if offset == nxt:
            if half.pending:
                first = half.pending[0][0]
                if end > first:  # where bytes are held, the held copy came first and wins
                    self._hold(half, first, payload[first - offset :])
                    payload = payload[: first - offset]
                    end = first
            half.next = end
            half.next_seq = (half.base + end) & _SEQ_MASK
            return payload
        self._out_of_order += 1
        self._hold(half, offset, payload)
        while half.pending_bytes > self._max_pending or len(half.pending) > self._max_pending_segments:
            # Over a bound: the first hole is given up as lost.
            self._flush_to(half, half.pending[0][0], now, events)
            self._advance(half, None, now, events)
        return None

    def _hold(self, half: _Half, offset: int, payload: bytes) -> None:
        """Hold out-of-order bytes, keeping only those not held already (first copy wins)."""
        pending = half.pending
        end = offset + len(payload)
        i = bisect_right(pending, offset, key=_start)
        s = offset
        if i:
            prev_start, prev = pending[i - 1]
            s = max(s, prev_start + len(prev))
        pieces: list[tuple[int, bytes]] = []
        j = i
        while s < end and j < len(pending) and pending[j][0] < end:
            start, chunk = pending[j]
            if start > s:
                pieces.append((s, payload[s - offset : start - offset]))
            s = max(s, start + len(chunk))
            j += 1
        if s < end:
            pieces.append((s, payload[s - offset :]))
        added = sum(len(piece) for _, piece in pieces)
        self._duplicate += len(payload) - added
        if pieces:
            pending[i:j] = sorted(pending[i:j] + pieces, key=_start)
            half.pending_bytes += added

    def _advance(self, half: _Half, head: bytes | None, now: float, events: list[Event]) -> None:
        """Deliver `head` and the held bytes that now follow it; close the direction if its FIN is reached."""
        pending = half.pending
        if pending and pending[0][0] == half.next:
            chunks = [head] if head else []
            k = 0
            nxt = half.next
            while k < len(pending) and pending[k][0] == nxt:
                chunk = pending[k][1]
                chunks.append(chunk)
                nxt += len(chunk)
                half.pending_bytes -= len(chunk)
                k += 1
            del pending[:k]
            half.next = nxt
            half.next_seq = (half.base + nxt) & _SEQ_MASK
            head = b"".join(chunks)
        if head:
            self._delivered += len(head)
            events.append(Data(flow=half.flow, conn_id=half.conn.conn_id, now=now, data=head))
        if half.fin is not None and half.next == half.fin and not half.closed:
            self._end(half, CloseReason.FIN, now, events)
            half.next += 1  # the FIN takes one sequence number (RFC 9293 3.4)
            half.next_seq = (half.base + half.next) & _SEQ_MASK
            if half.peer.closed:
                half.conn.closed = True
        half.refresh()

    def _flush_to(self, half: _Half, upto: int, now: float, events: list[Event]) -> None:
        """Give up waiting for anything before offset `upto`: held bytes are delivered, holes become Gaps."""
        pending = half.pending
        chunks: list[bytes] = []
        k = 0
        while k < len(pending) and pending[k][0] < upto:
            start, chunk = pending[k]
            if start > half.next:
                if chunks:
                    self._advance_data(half, chunks, now, events)
                    chunks = []
                self._gap(half, start - half.next, now, events)
            chunks.append(chunk)
            half.next = start + len(chunk)
            half.pending_bytes -= len(chunk)
            k += 1
        del pending[:k]
        if chunks:
            self._advance_data(half, chunks, now, events)
        if upto > half.next:
            self._gap(half, upto - half.next, now, events)
        half.next_seq = (half.base + half.next) & _SEQ_MASK

    def _advance_data(self, half: _Half, chunks: list[bytes], now: float, events: list[Event]) -> None:
        data = b"".join(chunks)
        self._delivered += len(data)
        events.append(Data(flow=half.flow, conn_id=half.conn.conn_id, now=now, data=data))

    def _gap(self, half: _Half, missing: int, now: float, events: list[Event]) -> None:
        seq = (half.base + half.next) & _SEQ_MASK
        events.append(Gap(flow=half.flow, conn_id=half.conn.conn_id, now=now, missing=missing, seq=seq))
        self._gaps += 1
        self._gap_bytes += missing
        half.next += missing

    def _on_ack(self, half: _Half, ack: int, now: float, events: list[Event]) -> None:
        """The peer acknowledged `half` up to `ack`: no hole below it will ever be retransmitted."""
        d = _delta(ack, half.next_seq)
        if d <= 0:
            return
        upto = half.next + d
        if half.fin is not None:
            if upto > half.fin + 1 + NEAR_WINDOW:
                return
            upto = min(upto, half.fin)  # the ACK of a FIN is one past it
        else:
            last_start, last = half.pending[-1]
            if upto > last_start + len(last) + NEAR_WINDOW:
                return  # far beyond anything seen sent: no evidence of anything
        self._flush_to(half, upto, now, events)
        self._advance(half, None, now, events)

    # -- connections ---------------------------------------------------------------------------------------
    def _end(self, half: _Half, reason: CloseReason, now: float, events: list[Event]) -> None:
        half.closed = True
        events.append(Closed(flow=half.flow, conn_id=half.conn.conn_id, now=now, reason=reason))

    def _close(self, conn: _Conn, first: _Half, reason: CloseReason, now: float, events: list[Event]) -> None:
        """End both directions, `first` first: holes become Gaps, held bytes are delivered, none dropped."""
        for half in (first, first.peer):
            if half.opened and not half.closed:
                if half.fin is not None:
                    upto = half.fin
                elif half.pending:
                    last_start, last = half.pending[-1]
                    upto = last_start + len(last)
                else:
                    upto = half.next
                self._flush_to(half, upto, now, events)
                self._advance(half, None, now, events)  # closes with "fin" when the FIN was seen
                if not half.closed:
                    self._end(half, reason, now, events)
            half.refresh()
        conn.closed = True

    def _new_conn(self, key: _Key, now: float, ghosts: dict[_Key, int] | None, events: list[Event]) -> _Half:
        while len(self._lru) >= self._max_connections:
            self._evict(next(iter(self._lru.values())), now, events)
        self._last_id += 1
        conn = _Conn(self._last_id, now)
        rkey = (key[2], key[3], key[0], key[1])
        ghosts = ghosts or {}
        a = _Half(key, Flow(*key), conn, ghosts.get(key))
        b = _Half(rkey, Flow(*rkey), conn, ghosts.get(rkey))
        a.peer, b.peer = b, a
        conn.a, conn.b = a, b
        self._halves[rkey] = b
        self._halves[key] = a
        self._lru[conn.conn_id] = conn
        self._next_sweep = min(self._next_sweep, now + self._idle)
        return a

    def _replace(self, conn: _Conn, key: _Key, now: float, events: list[Event]) -> _Half:
        ghosts = {h.key: h.next_seq for h in (conn.a, conn.b) if h.opened}
        if not conn.closed:
            self._close(conn, self._halves[key], CloseReason.REPLACED, now, events)
        self._drop(conn)
        return self._new_conn(key, now, ghosts, events)

    def _drop(self, conn: _Conn) -> None:
        for half in (conn.a, conn.b):
            if self._halves.get(half.key) is half:
                del self._halves[half.key]
        del self._lru[conn.conn_id]

    def _evict(self, conn: _Conn, now: float, events: list[Event]) -> None:
        if not conn.closed:
            self._close(conn, conn.a, CloseReason.EVICTED, now, events)
        self._drop(conn)
        self._evicted += 1

    def _sweep(self, now: float, events: list[Event]) -> None:
        """Evict connections idle longer than idle_timeout (the least recently active come first)."""
        lru = self._lru
        while lru:
            conn = next(iter(lru.values()))
            if now - conn.last <= self._idle:
                self._next_sweep = conn.last + self._idle
                return
            self._evict(conn, now, events)
        self._next_sweep = float("inf")
