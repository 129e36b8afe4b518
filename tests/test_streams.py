"""Tests for sniffroute.streams: TCP reassembly per direction."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sniffroute.streams import (
    SEQ_MOD,
    Closed,
    CloseReason,
    Data,
    Event,
    Flow,
    Gap,
    Opened,
    TcpFlag,
    TcpTracker,
)

FIXTURES = Path(__file__).parent / "fixtures"

A, B = "10.0.0.1", "10.0.0.2"
APORT, BPORT = 40000, 179
AB = Flow(A, APORT, B, BPORT)
BA = AB.reversed()
F, S, R, K, P = TcpFlag.FIN, TcpFlag.SYN, TcpFlag.RST, TcpFlag.ACK, TcpFlag.PSH


@dataclass(frozen=True, slots=True)
class Seg:
    """The fields of parsers.frames.TcpSegment that the tracker reads, and the rest with defaults."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int = 0
    flags: int = int(K)
    window: int = 65535
    payload: bytes = b""
    md5: bool = False
    vlans: tuple[int, ...] = ()


def a2b(seq: int, payload: bytes = b"", flags: int = int(K | P), ack: int = 0) -> Seg:
    return Seg(A, B, APORT, BPORT, seq % SEQ_MOD, ack % SEQ_MOD, int(flags), 65535, payload)


def b2a(seq: int, payload: bytes = b"", flags: int = int(K | P), ack: int = 0) -> Seg:
    return Seg(B, A, BPORT, APORT, seq % SEQ_MOD, ack % SEQ_MOD, int(flags), 65535, payload)


def feed(tracker: TcpTracker, *segs: Seg, now: float = 0.0) -> list[Event]:
    events: list[Event] = []
    for seg in segs:
        events.extend(tracker.feed(seg, now))
    return events


def data_of(events: list[Event], flow: Flow = AB) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Data) and e.flow == flow)


def kinds(events: list[Event], flow: Flow | None = None) -> list[str]:
    return [type(e).__name__ for e in events if flow is None or e.flow == flow]


def gaps(events: list[Event]) -> list[tuple[int, int]]:
    return [(e.missing, e.seq) for e in events if isinstance(e, Gap)]


def closes(events: list[Event]) -> list[tuple[Flow, str]]:
    return [(e.flow, e.reason) for e in events if isinstance(e, Closed)]


ISN = 1000  # A's ISN: A's data starts at 1001


def handshake(tracker: TcpTracker, isn_a: int = ISN, isn_b: int = 5000) -> list[Event]:
    return feed(
        tracker,
        a2b(isn_a, flags=S),
        b2a(isn_b, flags=S | K, ack=isn_a + 1),
        a2b(isn_a + 1, flags=K, ack=isn_b + 1),
    )


# -- basics --------------------------------------------------------------------------------------------------
def test_flow_reversed() -> None:
    assert AB.reversed() == Flow(B, BPORT, A, APORT)
    assert AB.reversed().reversed() == AB


def test_in_order_with_handshake() -> None:
    t = TcpTracker()
    events = handshake(t)
    assert events == [
        Opened(flow=AB, conn_id=1, now=0.0, handshake=True),
        Opened(flow=BA, conn_id=1, now=0.0, handshake=True),
    ]
    events = feed(t, a2b(1001, b"hello "), a2b(1007, b"world"), b2a(5001, b"reply"), now=2.5)
    assert events == [
        Data(flow=AB, conn_id=1, now=2.5, data=b"hello "),
        Data(flow=AB, conn_id=1, now=2.5, data=b"world"),
        Data(flow=BA, conn_id=1, now=2.5, data=b"reply"),
    ]
    stats = t.stats
    assert (stats.segments, stats.delivered_bytes, stats.connections, stats.gaps) == (6, 16, 1, 0)
    assert stats.duplicate_bytes == 0 and stats.out_of_order == 0


def test_pure_acks_produce_no_events() -> None:
    t = TcpTracker()
    handshake(t)
    assert feed(t, a2b(1001, b"x"), b2a(5001, flags=K, ack=1002), b2a(5001, flags=K, ack=1002))[1:] == []
    # An unknown connection's pure ACK opens nothing either.
    assert feed(t, Seg("1.1.1.1", "2.2.2.2", 1, 2, 77)) == []
    assert t.stats.connections == 1


def test_out_of_order_is_held_until_the_hole_fills() -> None:
    t = TcpTracker()
    handshake(t)
    assert feed(t, a2b(1011, b"KLMNO"), a2b(1006, b"FGHIJ")) == []
    events = feed(t, a2b(1001, b"ABCDE"))
    assert kinds(events) == ["Data"]  # one contiguous delivery
    assert data_of(events) == b"ABCDEFGHIJKLMNO"
    assert t.stats.out_of_order == 2


def test_duplicates_are_delivered_once() -> None:
    t = TcpTracker()
    handshake(t)
    events = feed(t, a2b(1001, b"abc"), a2b(1001, b"abc"), a2b(1004, b"def"), a2b(1001, b"abc"))
    assert data_of(events) == b"abcdef"
    assert t.stats.duplicate_bytes == 6


def test_overlap_with_delivered_bytes_first_copy_wins() -> None:
    t = TcpTracker()
    handshake(t)
    # The retransmission carries different bytes where it overlaps: the delivered copy stands.
    events = feed(t, a2b(1001, b"abcd"), a2b(1003, b"XXef"))
    assert data_of(events) == b"abcdef"
    assert t.stats.duplicate_bytes == 2


def test_overlap_with_held_bytes_first_copy_wins() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, a2b(1005, b"efgh"))  # held: offsets 4..7
    feed(t, a2b(1011, b"kl"))  # held: offsets 10..11
    feed(t, a2b(1003, b"XXYYZZZZZZ"))  # overlaps both held pieces; only 1003-1004 and 1009-1010 are new
    events = feed(t, a2b(1001, b"abQQ"))  # in order, overlaps the bytes held at 1003
    assert data_of(events) == b"abXXefghZZkl"


def test_in_order_segment_spanning_held_bytes() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, a2b(1004, b"de"))
    events = feed(t, a2b(1001, b"abc??fg"))  # covers the hole and overlaps the held "de"
    assert data_of(events) == b"abcdefg"


# -- sequence numbers ----------------------------------------------------------------------------------------
def test_sequence_wrap() -> None:
    t = TcpTracker()
    isn = SEQ_MOD - 3  # data starts at 2**32 - 2 and wraps after two bytes
    handshake(t, isn_a=isn)
    events = feed(t, a2b(isn + 1, b"ab"), a2b(0, b"cd"), a2b(4, b"gh"), a2b(2, b"ef"))
    assert data_of(events) == b"abcdefgh"
    assert gaps(events) == []


def test_gap_sequence_across_wrap() -> None:
    t = TcpTracker()
    isn = SEQ_MOD - 3
    handshake(t, isn_a=isn)
    feed(t, a2b(isn + 1, b"ab"), a2b(2, b"ef"))  # the 2 bytes at seq 0 are missing
    events = feed(t, b2a(5001, flags=K, ack=4))
    assert gaps(events) == [(2, 0)]
    assert data_of(events) == b"ef"


def test_syn_and_fin_take_one_sequence_number() -> None:
    t = TcpTracker()
    handshake(t)
    events = feed(t, a2b(1001, b"abc", flags=K | P | F))  # FIN at 1004
    assert closes(events) == [(AB, "fin")]
    # The ACK of the FIN (1005) is not a gap, and a pure FIN retransmission is ignored.
    assert feed(t, b2a(5001, flags=K, ack=1005), a2b(1004, flags=K | F)) == []


def test_syn_with_payload() -> None:
    t = TcpTracker()
    events = feed(t, a2b(ISN, b"early", flags=S), a2b(ISN + 6, b"!"))
    assert data_of(events) == b"early!"


# -- start and end -------------------------------------------------------------------------------------------
def test_mid_session_start() -> None:
    t = TcpTracker()
    events = feed(t, a2b(777, b"first"), a2b(770, b"earlier"), a2b(782, b"next"))
    assert events[0] == Opened(flow=AB, conn_id=1, now=0.0, handshake=False)
    assert data_of(events) == b"firstnext"  # bytes before the start are neither delivered nor a gap
    assert gaps(events) == []
    assert gaps(t.close_all(1.0)) == []


def test_fin_before_a_hole_waits() -> None:
    t = TcpTracker()
    handshake(t)
    events = feed(t, a2b(1001, b"ab"), a2b(1005, b"ef", flags=K | P | F))
    assert closes(events) == []
    events = feed(t, a2b(1003, b"cd"))
    assert kinds(events) == ["Data", "Closed"]
    assert data_of(events) == b"cdef"
    assert closes(events) == [(AB, "fin")]


def test_fin_alone_behind_a_hole_is_a_gap_when_acked() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, a2b(1001, b"ab"), a2b(1005, flags=K | F))  # 1003-1004 not seen, FIN at 1005
    events = feed(t, b2a(5001, flags=K, ack=1006))
    assert gaps(events) == [(2, 1003)]
    assert closes(events) == [(AB, "fin")]


def test_both_fins_then_late_segments_are_absorbed() -> None:
    t = TcpTracker()
    handshake(t)
    events = feed(t, a2b(1001, b"x", flags=K | F), b2a(5001, b"y", flags=K | F), a2b(1001, b"x"), b2a(5002))
    assert closes(events) == [(AB, "fin"), (BA, "fin")]
    assert data_of(events, AB) == b"x" and data_of(events, BA) == b"y"
    assert t.close_all(9.0) == []  # nothing is open any more


def test_rst_closes_both_directions() -> None:
    t = TcpTracker()
    handshake(t)
    events = feed(t, a2b(1001, b"a"), b2a(5001, flags=R | K, ack=1002))
    assert closes(events) == [(BA, "rst"), (AB, "rst")]
    # In-flight data after the RST starts nothing.
    assert feed(t, a2b(1002, b"late")) == []
    assert t.stats.connections == 1


def test_rst_far_from_the_stream_is_ignored() -> None:
    t = TcpTracker()
    handshake(t)
    assert feed(t, a2b(1001 + (1 << 30), flags=R)) == []
    assert data_of(feed(t, a2b(1001, b"still open"))) == b"still open"


def test_rst_flushes_held_bytes_with_a_gap() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, a2b(1001, b"ab"), a2b(1005, b"ef"))
    events = feed(t, a2b(1007, flags=R))
    assert kinds(events) == ["Gap", "Data", "Closed", "Closed"]
    assert gaps(events) == [(2, 1003)]
    assert data_of(events) == b"ef"


def test_close_all_flushes_holes() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, a2b(1001, b"ab"), a2b(1005, b"ef"), a2b(1009, b"ij"), b2a(5001, b"z"))
    events = t.close_all(5.0)
    assert [type(e).__name__ for e in events] == ["Gap", "Data", "Gap", "Data", "Closed", "Closed"]
    assert gaps(events) == [(2, 1003), (2, 1007)]
    assert data_of(events) == b"efij"
    assert {c for _, c in closes(events)} == {"end"}
    assert all(e.now == 5.0 for e in events)


# -- gaps ----------------------------------------------------------------------------------------------------
def test_gap_when_the_peer_acks_beyond_a_hole() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, a2b(1001, b"ab"), a2b(1006, b"fgh"))  # 1003..1005 never captured
    events = feed(t, b2a(5001, flags=K, ack=1009))
    assert events == [
        Gap(flow=AB, conn_id=1, now=0.0, missing=3, seq=1003),
        Data(flow=AB, conn_id=1, now=0.0, data=b"fgh"),
    ]
    assert (t.stats.gaps, t.stats.gap_bytes) == (1, 3)
    # The stream goes on after the gap.
    assert data_of(feed(t, a2b(1009, b"i"))) == b"i"


def test_ack_inside_a_hole_gives_up_only_what_the_peer_has() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, a2b(1001, b"ab"), a2b(1007, b"gh"))
    events = feed(t, b2a(5001, flags=K, ack=1005))  # the peer holds up to 1004: 1003-1004 are lost
    assert events == [Gap(flow=AB, conn_id=1, now=0.0, missing=2, seq=1003)]
    events = feed(t, a2b(1005, b"ef"))  # 1005-1006 still come
    assert data_of(events) == b"efgh"


def test_ack_without_held_bytes_is_no_gap() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, a2b(1001, b"ab"))
    # The capture may have reordered the data behind its ACK: wait for it.
    assert feed(t, b2a(5001, flags=K, ack=1010)) == []
    assert data_of(feed(t, a2b(1003, b"cd"))) == b"cd"


def test_ack_piggybacked_on_data_detects_a_gap() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, a2b(1001, b"ab"), a2b(1004, b"d"))
    events = feed(t, b2a(5001, b"resp", ack=1005))
    assert data_of(events, BA) == b"resp"
    assert gaps(events) == [(1, 1003)]
    assert data_of(events, AB) == b"d"


def test_gap_when_pending_exceeds_the_bound() -> None:
    t = TcpTracker(max_pending_bytes=10)
    handshake(t)
    feed(t, a2b(1001, b"a"), a2b(1003, b"cdef"), a2b(1008, b"hijk"))  # 8 bytes held behind two holes
    events = feed(t, a2b(1013, b"mno"))  # 11 held > 10: the first hole is given up
    assert kinds(events) == ["Gap", "Data"]
    assert gaps(events) == [(1, 1002)]
    assert data_of(events) == b"cdef"
    events = feed(t, a2b(1007, b"g"))  # the second hole fills normally
    assert data_of(events) == b"ghijk"


# -- connections ---------------------------------------------------------------------------------------------
def test_new_syn_after_close_starts_a_new_connection() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, a2b(1001, b"old", flags=K | P | F), b2a(5001, flags=K | F, ack=1005))
    events = handshake(t, isn_a=ISN + 100_000, isn_b=9000)  # a close ISN is fine once the old one closed
    assert [e.conn_id for e in events if isinstance(e, Opened)] == [2, 2]
    events = feed(t, a2b(ISN + 100_001, b"new"))
    assert events == [Data(flow=AB, conn_id=2, now=0.0, data=b"new")]


def test_new_syn_after_rst_starts_a_new_connection() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, a2b(1001, flags=R))
    events = handshake(t, isn_a=777, isn_b=888)
    assert [(type(e).__name__, e.conn_id) for e in events] == [("Opened", 2), ("Opened", 2)]


def test_syn_far_from_a_live_stream_replaces_it() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, a2b(1001, b"a"), a2b(1003, b"c"))
    events = feed(t, a2b(3_000_000_000, flags=S), now=1.0)
    # The old connection is flushed and closed first, then the new one opens.
    assert kinds(events) == ["Gap", "Data", "Closed", "Closed", "Opened"]
    assert closes(events) == [(AB, "replaced"), (BA, "replaced")]
    assert events[-1] == Opened(flow=AB, conn_id=2, now=1.0, handshake=True)


def test_retransmitted_and_in_window_syns_are_ignored() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, a2b(1001, b"abc"))
    assert feed(t, a2b(ISN, flags=S), a2b(1500, flags=S)) == []
    assert data_of(feed(t, a2b(1004, b"d"))) == b"d"
    assert t.stats.connections == 1


def test_replaced_connections_late_bytes_do_not_open_the_new_one() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, b2a(5001, b"old reply"))
    feed(t, a2b(3_000_000_000, flags=S))  # new connection; B has not answered yet
    assert feed(t, b2a(5010, b"late old bytes")) == []
    events = feed(t, b2a(70_000, flags=S | K, ack=3_000_000_001), b2a(70_001, b"new reply"))
    assert data_of(events, BA) == b"new reply"
    assert {e.conn_id for e in events} == {2}


def test_conn_ids_are_unique_and_increasing() -> None:
    t = TcpTracker()
    ids = []
    for port in range(5):
        seg = Seg(A, B, 1000 + port, BPORT, 1, payload=b"x")
        ids += [e.conn_id for e in t.feed(seg, 0.0) if isinstance(e, Opened)]
    assert ids == [1, 2, 3, 4, 5]


def test_eviction_of_the_least_recently_active() -> None:
    t = TcpTracker(max_connections=2)

    def seg(port: int, seq: int) -> Seg:
        return Seg(A, B, port, BPORT, seq, payload=b"x")

    t.feed(seg(1, 100), 0.0)
    t.feed(seg(2, 100), 1.0)
    t.feed(seg(1, 101), 2.0)  # connection 1 is now the most recently active
    events = t.feed(seg(3, 100), 3.0)
    assert closes(events) == [(Flow(A, 2, B, BPORT), "evicted")]
    assert events[-2:] == [
        Opened(flow=Flow(A, 3, B, BPORT), conn_id=3, now=3.0, handshake=False),
        Data(flow=Flow(A, 3, B, BPORT), conn_id=3, now=3.0, data=b"x"),
    ]
    assert t.stats.evicted == 1 and t.stats.tracked == 2
    assert t.feed(seg(1, 102), 4.0)[0].conn_id == 1  # still tracked


def test_idle_timeout_is_checked_lazily() -> None:
    t = TcpTracker(idle_timeout=10.0)
    handshake(t)
    feed(t, a2b(1001, b"a"), now=5.0)
    assert feed(t, b2a(5001, b"b"), now=15.0) != []  # 10 s idle is not yet more than 10 s
    events = feed(t, a2b(1002, b"c"), now=26.0)
    assert closes(events) == [(AB, "evicted"), (BA, "evicted")]
    # The segment that arrived after the timeout starts over, mid-session.
    assert events[2:] == [
        Opened(flow=AB, conn_id=2, now=26.0, handshake=False),
        Data(flow=AB, conn_id=2, now=26.0, data=b"c"),
    ]


def test_idle_sweep_evicts_other_connections() -> None:
    t = TcpTracker(idle_timeout=10.0)
    handshake(t)
    events = t.feed(Seg("1.1.1.1", "2.2.2.2", 1, 2, 50, payload=b"x"), 100.0)
    assert closes(events) == [(AB, "evicted"), (BA, "evicted")]
    assert t.stats.tracked == 1


def test_eviction_flushes_held_bytes() -> None:
    t = TcpTracker(max_connections=1)
    handshake(t)
    feed(t, a2b(1001, b"a"), a2b(1003, b"c"))
    events = t.feed(Seg("1.1.1.1", "2.2.2.2", 1, 2, 50, payload=b"x"), 1.0)
    assert kinds(events) == ["Gap", "Data", "Closed", "Closed", "Opened", "Data"]
    assert gaps(events) == [(1, 1002)]
    assert closes(events) == [(AB, "evicted"), (BA, "evicted")]


def test_late_syn_of_a_stream_picked_up_mid_session() -> None:
    t = TcpTracker()
    feed(t, a2b(1001, b"ab"))
    assert feed(t, a2b(1000, flags=S), a2b(1003, b"cd")) == [Data(flow=AB, conn_id=1, now=0.0, data=b"cd")]


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        TcpTracker(max_connections=0)


# -- a real capture ------------------------------------------------------------------------------------------
def read_segments(path: Path) -> list[tuple[float, Seg]]:
    out = []
    with path.open("rb") as f:
        for ts, frame in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(frame).data
            tcp = ip.data
            src, dst = dpkt.utils.inet_to_str(ip.src), dpkt.utils.inet_to_str(ip.dst)
            out.append((ts, Seg(src, dst, tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.flags, tcp.win, tcp.data)))
    return out


def test_hard_reset_capture() -> None:
    # Session on port 46612 (captured mid-session) closed with FINs; a SYN from port 32031 refused with RST;
    # a new session on port 19252 with its handshake (tshark: `tcp.stream` 0, 1, 2).
    t = TcpTracker()
    events: list[Event] = []
    segments = read_segments(FIXTURES / "bgp" / "BGP_hard_reset.cap")
    for ts, seg in segments:
        events.extend(t.feed(seg, ts))
    opened = {(e.flow.sport, e.flow.dport): (e.conn_id, e.handshake) for e in events if isinstance(e, Opened)}
    assert opened == {
        (46612, 179): (1, False),
        (179, 46612): (1, False),
        (32031, 179): (2, True),
        (19252, 179): (3, True),
        (179, 19252): (3, True),
    }
    assert sorted((e.conn_id, e.flow.sport, e.reason) for e in events if isinstance(e, Closed)) == [
        (1, 179, "fin"),
        (1, 46612, "fin"),
        (2, 32031, "rst"),
    ]
    assert gaps(events) == []
    # Every payload byte of the capture is delivered once (the capture has no retransmissions).
    for flow in {e.flow for e in events}:
        sent = b"".join(
            s.payload
            for _, s in segments
            if (s.src, s.sport, s.dst, s.dport) == (flow.src, flow.sport, flow.dst, flow.dport)
        )
        assert data_of(events, flow) == sent
    assert t.stats.delivered_bytes == sum(len(s.payload) for _, s in segments)
    assert t.stats.duplicate_bytes == 0
    assert closes(t.close_all(segments[-1][0])) == [
        (Flow("1.1.1.1", 19252, "2.2.2.2", 179), "end"),
        (Flow("2.2.2.2", 179, "1.1.1.1", 19252), "end"),
    ]


# Messages per capture, as counted by tshark (/work/shared/captures/SOURCES.md).
BGP_MESSAGES = {
    "4-byte_AS_numbers_Full_Support.cap": 16,
    "4-byte_AS_numbers_Mixed_Scenario.cap": 4,
    "BGP_AS_set.cap": 10,
    "BGP_MD5.cap": 10,
    "BGP_MP_NLRI.cap": 24,
    "BGP_hard_reset.cap": 26,
    "BGP_soft_reset.cap": 21,
    "IBGP_adjacency.cap": 24,
    "bgp-4byte-asn.pcap": 35,
    "bgp-add-path.cap": 12,
    "bgp-bgpsec.pcap": 32,
    "bgp-enhanced-route-refresh-subtype.pcapng": 8,
    "bgp-lu-multiple-labels.pcap": 20,
    "bgp-shutdown-communication.pcapng": 1,  # sent twice: the retransmission is delivered once
    "bgp_as_confed_sequence.pcapng": 3,
    "bgplu.cap": 9,
    "pypacker_packets_bgp2.pcap": 9,
    "swisscom_bgp-multi-sources.pcap": 456,
    "swisscom_bgp.pcap": 36,
}


@pytest.mark.parametrize("name", sorted(BGP_MESSAGES))
def test_bgp_captures_reassemble_into_whole_messages(name: str) -> None:
    capture = pytest.importorskip("parsers.capture")
    frames = pytest.importorskip("parsers.frames")
    t = TcpTracker()
    events: list[Event] = []
    with capture.open_capture(FIXTURES / "bgp" / name) as frames_in:
        for frame in frames_in:
            packet = frames.decode_frame(frame.linktype, frame.data)
            if isinstance(packet, frames.TcpSegment):
                events += t.feed(packet, frame.timestamp)
    events += t.close_all(0.0)
    assert gaps(events) == []
    streams: dict[tuple[int, Flow], bytes] = {}
    for e in events:
        if isinstance(e, Data):
            streams[e.conn_id, e.flow] = streams.get((e.conn_id, e.flow), b"") + e.data
    messages = 0
    for stream in streams.values():
        at = 0
        while at < len(stream):  # every direction is a sequence of whole BGP messages (RFC 4271 4.1)
            assert stream[at : at + 16] == b"\xff" * 16  # marker
            at += int.from_bytes(stream[at + 16 : at + 18], "big")  # length, header included
            messages += 1
        assert at == len(stream)
    assert messages == BGP_MESSAGES[name]


# -- properties ----------------------------------------------------------------------------------------------
@st.composite
def cut_stream(draw: st.DrawFn) -> tuple[int, bytes, list[tuple[int, bytes]]]:
    """A random stream starting after a random ISN, cut into consecutive segments (offset, bytes)."""
    isn = draw(st.one_of(st.integers(0, SEQ_MOD - 1), st.integers(SEQ_MOD - 200, SEQ_MOD - 1)))
    data = draw(st.binary(min_size=1, max_size=600))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(data) - 1), max_size=30)))) if len(data) > 1 else []
    bounds = [0, *cuts, len(data)]
    pieces = [(lo, data[lo:hi]) for lo, hi in zip(bounds, bounds[1:], strict=False)]
    return isn, data, pieces


def run(isn: int, pieces: list[tuple[int, bytes]], fin_at: int | None, order: list[int]) -> list[Event]:
    t = TcpTracker()
    events = t.feed(a2b(isn, flags=S), 0.0)
    segs = [a2b(isn + 1 + off, chunk) for off, chunk in pieces]
    if fin_at is not None:
        segs.append(a2b(isn + 1 + fin_at, flags=K | F))
    for i in order:
        events += t.feed(segs[i], 1.0)
    events += t.close_all(2.0)
    return events


@settings(max_examples=300, deadline=None)
@given(cut_stream(), st.randoms(use_true_random=False), st.booleans())
def test_shuffled_duplicated_overlapping_segments_give_the_stream(
    stream: tuple[int, bytes, list[tuple[int, bytes]]], rnd: random.Random, with_fin: bool
) -> None:
    isn, data, pieces = stream
    # Retransmissions: exact copies and overlapping re-cuts of the same bytes.
    extra = [rnd.choice(pieces) for _ in range(rnd.randint(0, len(pieces)))]
    for _ in range(rnd.randint(0, 5)):
        lo = rnd.randrange(len(data))
        hi = rnd.randint(lo + 1, len(data))
        extra.append((lo, data[lo:hi]))
    all_pieces = pieces + extra
    order = list(range(len(all_pieces) + with_fin))
    rnd.shuffle(order)
    events = run(isn, all_pieces, len(data) if with_fin else None, order)
    assert data_of(events) == data
    assert gaps(events) == []
    assert closes(events)[-1] == (AB, "fin" if with_fin else "end")


@settings(max_examples=300, deadline=None)
@given(cut_stream(), st.randoms(use_true_random=False))
def test_one_lost_segment_gives_exactly_one_gap(
    stream: tuple[int, bytes, list[tuple[int, bytes]]], rnd: random.Random
) -> None:
    isn, data, pieces = stream
    lost = rnd.randrange(len(pieces))
    lost_off, lost_bytes = pieces[lost]
    kept = [p for i, p in enumerate(pieces) if i != lost]
    kept += [rnd.choice(kept) for _ in range(rnd.randint(0, len(kept)))] if kept else []
    order = list(range(len(kept) + 1))  # the FIN makes the loss of the last segment visible
    rnd.shuffle(order)
    events = run(isn, kept, len(data), order)
    assert gaps(events) == [(len(lost_bytes), (isn + 1 + lost_off) % SEQ_MOD)]
    assert data_of(events) == data[:lost_off] + data[lost_off + len(lost_bytes) :]
    # The gap sits exactly where the bytes are missing.
    before = b"".join(e.data for e in events[: kinds(events).index("Gap")] if isinstance(e, Data))
    assert before == data[:lost_off]
    assert closes(events) == [(AB, "fin")]


FLAG_CHOICES = [int(K), int(K | P), int(S), int(S | K), int(F | K), int(R), int(R | K), int(K | P | F)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.sampled_from([0, 1, 2, 100, SEQ_MOD - 1, 1 << 31, 1 << 24]),
            st.integers(0, 40),
            st.sampled_from(FLAG_CHOICES),
            st.binary(max_size=12),
            st.integers(0, 3),
        ),
        max_size=60,
    ),
    st.integers(1, 3),
    st.integers(0, 30),
)
def test_arbitrary_segments_keep_the_event_grammar(
    ops: list[tuple[bool, int, int, int, bytes, int]], max_connections: int, max_pending: int
) -> None:
    """Any input: per (conn_id, flow) one Opened first, then Data/Gap, at most one Closed, nothing after."""
    t = TcpTracker(max_connections=max_connections, max_pending_bytes=max_pending, idle_timeout=5.0)
    events: list[Event] = []
    now = 0.0
    for forward, base, delta, flags, payload, port in ops:
        now += 1.0
        seq = base + delta
        seg = a2b(seq, payload, flags, ack=seq) if forward else b2a(seq, payload, flags, ack=seq)
        seg = replace(seg, sport=seg.sport + port) if forward else replace(seg, dport=seg.dport + port)
        events += t.feed(seg, now)
    events += t.close_all(now)
    state: dict[tuple[int, Flow], str] = {}
    seen: set[int] = set()
    for e in events:
        key = (e.conn_id, e.flow)
        if isinstance(e, Opened):
            assert key not in state
            if e.conn_id not in seen:  # new conn_ids appear in increasing order
                assert e.conn_id > max(seen, default=0)
                seen.add(e.conn_id)
            state[key] = "open"
        else:
            assert state.get(key) == "open"
            if isinstance(e, Closed):
                state[key] = "closed"
                assert e.reason in set(CloseReason)
            elif isinstance(e, Gap):
                assert e.missing > 0
            else:
                assert e.data
    assert all(v == "closed" for v in state.values())
    stats = t.stats
    assert stats.delivered_bytes == sum(len(e.data) for e in events if isinstance(e, Data))
    assert stats.gap_bytes == sum(e.missing for e in events if isinstance(e, Gap))


def test_gap_when_held_segments_exceed_the_bound() -> None:
    t = TcpTracker(max_pending_segments=2)
    handshake(t)
    feed(t, a2b(1003, b"c"), a2b(1005, b"e"))  # two pieces held: at the bound
    events = feed(t, a2b(1007, b"g"))  # a third: the first hole (1001-1002) is given up
    assert gaps(events) == [(2, 1001)]
    assert data_of(events) == b"c"
    assert data_of(feed(t, a2b(1004, b"d"))) == b"de"


def test_ack_far_beyond_anything_sent_is_no_evidence() -> None:
    t = TcpTracker()
    handshake(t)
    feed(t, a2b(1001, b"ab"), a2b(1005, b"ef"))
    assert feed(t, b2a(5001, flags=K, ack=1005 + (1 << 30))) == []
    assert data_of(feed(t, a2b(1003, b"cd"))) == b"cdef"
