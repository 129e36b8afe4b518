"""BGP sessions seen on the wire: who sent which routes, and what a session's end does to them."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.bgp.nlri import prefix_to_text
from parsers.frames import TcpSegment
from sniffroute.pipeline import Pipeline
from sniffroute.rib import PeerState
from tests.bgp_session import (
    ACK,
    RST,
    Connection,
    end_of_rib,
    keepalive,
    notification,
    open_message,
    update,
)

A, B = "10.0.0.1", "10.0.0.2"


def feed(pipeline: Pipeline, segments: list[TcpSegment], now: float = 1.0) -> Pipeline:
    for segment in segments:
        pipeline.feed_segment(segment, now)
    pipeline.commit()
    return pipeline


def table(pipeline: Pipeline) -> dict[tuple[str, str], tuple]:
    """(peer address, prefix) -> (next hop, AS path, MED, stale generation) for every path."""
    rib = pipeline.rib
    return {
        (rib.peers[peer].address, prefix_to_text(fam[0], prefix)): (
            path.next_hop,
            tuple(asn for seg in path.attrs.as_path for asn in seg.asns),
            path.attrs.med,
        )
        for fam, prefix, (peer, _id), path, _why in rib.routes()
    }


def established(gr: int | None = None, port: int = 40000, isn: int = 1000) -> Connection:
    conn = Connection(A, B, client_port=port, client_isn=isn).handshake()
    conn.send(True, open_message(65001, "1.1.1.1", graceful_restart=gr))
    conn.send(False, open_message(65002, "2.2.2.2", graceful_restart=gr), keepalive())
    conn.send(True, keepalive())
    return conn


def with_routes(conn: Connection) -> Connection:
    conn.send(True, update(("198.51.100.0/24", "203.0.113.0/25"), as_path=(65001, 4200000001), med=7))
    conn.send(False, update(("192.0.2.0/24",), as_path=(65002,), next_hop="10.0.0.2"))
    return conn


def test_routes_are_attributed_to_the_sender_with_its_open() -> None:
    pipeline = feed(Pipeline(), with_routes(established()).segments)
    assert table(pipeline) == {
        (A, "198.51.100.0/24"): ("192.0.2.1", (65001, 4200000001), 7),
        (A, "203.0.113.0/25"): ("192.0.2.1", (65001, 4200000001), 7),
        (B, "192.0.2.0/24"): ("10.0.0.2", (65002,), None),
    }
    peers = {(p.address, p.asn, p.router_id, p.local_asn) for p in pipeline.rib.peers.values()}
    assert peers == {(A, 65001, "1.1.1.1", 65002), (B, 65002, "2.2.2.2", 65001)}


def test_withdrawal_removes_only_that_prefix() -> None:
    conn = with_routes(established()).send(True, update(withdraw=("203.0.113.0/25",)))
    assert set(table(feed(Pipeline(), conn.segments))) == {(A, "198.51.100.0/24"), (B, "192.0.2.0/24")}


def test_fin_ends_the_session_and_flushes_both_speakers() -> None:
    conn = with_routes(established()).close(True).close(False)
    pipeline = feed(Pipeline(), conn.segments)
    assert table(pipeline) == {}
    assert {p.state for p in pipeline.rib.peers.values()} == {PeerState.DOWN}
    assert pipeline.sessions.all_sessions()[0].end_reason == "fin"


def test_rst_flushes() -> None:
    conn = with_routes(established()).close(False, RST | ACK)
    pipeline = feed(Pipeline(), conn.segments)
    assert table(pipeline) == {}
    assert pipeline.sessions.all_sessions()[0].end_reason == "rst"


def test_notification_flushes_even_with_graceful_restart() -> None:
    # RFC 8538 aside, a Cease/Administrative Shutdown is a hard stop: nothing is retained.
    conn = with_routes(established(gr=120)).send(True, notification(6, 2)).close(True)
    pipeline = feed(Pipeline(), conn.segments)
    assert table(pipeline) == {}
    session = pipeline.sessions.all_sessions()[0]
    assert session.notification is not None and session.notification.code == 6


def test_graceful_restart_keeps_routes_until_end_of_rib() -> None:
    old = with_routes(established(gr=120)).close(True, RST | ACK)
    pipeline = feed(Pipeline(), old.segments, now=10.0)
    assert len(table(pipeline)) == 3
    assert {p.state for p in pipeline.rib.peers.values()} == {PeerState.STALE}
    new = established(gr=120, port=40001, isn=9000)
    new.send(True, update(("198.51.100.0/24",), as_path=(65001,)), end_of_rib())
    feed(pipeline, new.segments, now=20.0)
    # A's other prefix was not re-announced before its End-of-RIB: gone. B has sent no End-of-RIB yet: kept.
    assert table(pipeline) == {
        (A, "198.51.100.0/24"): ("192.0.2.1", (65001,), None),
        (B, "192.0.2.0/24"): ("10.0.0.2", (65002,), None),
    }


def test_graceful_restart_routes_expire_after_the_restart_time() -> None:
    pipeline = feed(Pipeline(), with_routes(established(gr=30)).close(True, RST | ACK).segments, now=10.0)
    assert len(table(pipeline)) == 3
    feed(pipeline, established(port=40002, isn=7).segments[:1], now=41.0)  # any later event moves the clock on
    assert table(pipeline) == {}


def test_new_session_from_the_same_speaker_replaces_the_old_routes() -> None:
    old = with_routes(established())  # never closed in the capture: the peer restarted
    pipeline = feed(Pipeline(), old.segments)
    new = established(port=40003, isn=77777)
    new.send(True, update(("198.51.100.0/24",), as_path=(65001,)))
    feed(pipeline, new.segments)
    assert table(pipeline) == {(A, "198.51.100.0/24"): ("192.0.2.1", (65001,), None)}


def test_losing_side_of_a_collision_takes_no_routes_with_it() -> None:
    # RFC 4271 6.8: both ends dialled. The established session carries the routes; the second connection
    # exchanges OPENs and is closed with Cease/Connection Collision Resolution.
    winner = with_routes(established())
    pipeline = feed(Pipeline(), winner.segments)
    loser = Connection(B, A, client_port=40010, client_isn=3333).handshake()
    loser.send(True, open_message(65002, "2.2.2.2"))
    loser.send(False, open_message(65001, "1.1.1.1"))
    loser.send(False, notification(6, 7)).close(False).close(True)
    feed(pipeline, loser.segments)
    assert len(table(pipeline)) == 3
    winner.send(True, update(("100.64.0.0/10",), as_path=(65001,)))
    feed(pipeline, winner.segments[-1:])
    assert len(table(pipeline)) == 4


def test_lost_segment_flags_the_sender_possibly_stale_and_resynchronises() -> None:
    conn = with_routes(established())
    conn.send(True, update(("100.64.0.0/10",), as_path=(65001,)))  # this segment is lost
    conn.send(True, update(("100.127.0.0/16",), as_path=(65001,)))
    segments = conn.segments[:-2] + conn.segments[-1:]
    pipeline = feed(Pipeline(), segments)
    pipeline.finish(2.0)
    pipeline.commit()
    stale = {p.address for p in pipeline.rib.peers.values() if p.possibly_stale}
    assert stale == {A}
    assert (A, "100.127.0.0/16") in table(pipeline)  # the message after the gap is read again
    assert (A, "100.64.0.0/10") not in table(pipeline)


def test_malformed_update_resets_the_senders_routes_and_is_reported() -> None:
    conn = with_routes(established())
    # Two MP_REACH_NLRI attributes: RFC 7606 3.g says session reset.
    mp = b"\x80\x0e\x0b\x00\x02\x01\x10" + b"\x20\x01\x0d\xb8" + b"\x00" * 12 + b"\x00"
    bad = b"\xff" * 16 + (19 + 4 + 2 * len(mp)).to_bytes(2, "big") + b"\x02" + b"\x00\x00"
    bad += (2 * len(mp)).to_bytes(2, "big") + mp + mp
    conn.send(True, bad)
    pipeline = feed(Pipeline(), conn.segments)
    assert set(table(pipeline)) == {(B, "192.0.2.0/24")}
    assert pipeline.sessions.stats.error_count >= 1


# -- TCP arrives cut, reordered and repeated: the RIB must not notice ---------------------------------------


def rich_session() -> list[TcpSegment]:
    conn = with_routes(established())
    for i in range(20):
        announce = tuple(f"10.{i}.{j}.0/24" for j in range(1 + i % 7))
        conn.send(i % 2 == 0, update(announce, as_path=(65001, 64512 + i), med=i), keepalive())
        if i % 5 == 4:
            conn.send(True, update(withdraw=(f"10.{i - 2}.0.0/24",)))
    return conn.segments


def resegment(segments: list[TcpSegment], cuts: random.Random) -> list[TcpSegment]:
    """Each payload split at random points into several segments with the right sequence numbers."""
    out = []
    for seg in segments:
        if len(seg.payload) < 2:
            out.append(seg)
            continue
        points = sorted(cuts.sample(range(1, len(seg.payload)), min(3, len(seg.payload) - 1)))
        start = 0
        for end in [*points, len(seg.payload)]:
            out.append(
                TcpSegment(
                    seg.src,
                    seg.dst,
                    seg.sport,
                    seg.dport,
                    (seg.seq + start) & 0xFFFFFFFF,
                    seg.ack,
                    ACK,
                    seg.window,
                    seg.payload[start:end],
                    False,
                    (),
                )  # fmt: skip
            )
            start = end
    return out


BASELINE = table(feed(Pipeline(), rich_session()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), window=st.integers(1, 6), duplicates=st.floats(0, 0.3))
def test_resegmented_reordered_duplicated_stream_gives_the_same_rib(seed: int, window: int, duplicates: float) -> None:
    rng = random.Random(seed)
    handshake, rest = rich_session()[:3], rich_session()[3:]
    pieces = resegment(rest, rng)
    pieces += [p for p in pieces if p.payload and rng.random() < duplicates]  # retransmissions, late
    # Reorder within a sliding window, as a network with several paths would.
    shuffled = []
    pending = list(pieces[: len(pieces) - len(pieces) // 4])
    tail = pieces[len(pending) :]
    while pending:
        shuffled.append(pending.pop(rng.randrange(min(window, len(pending)))))
    pipeline = feed(Pipeline(), handshake + shuffled + tail)
    assert pipeline.streams.stats.gaps == 0
    assert table(pipeline) == BASELINE
    assert len(BASELINE) > 50


def test_a_new_session_that_ends_before_it_is_established_takes_no_stale_route() -> None:
    """RFC 4724 4.2: routes kept stale for a restarting peer stay until its restart time or End-of-RIB; a new
    connection that closes before the session is up (an OPEN and no more) changes nothing."""
    old = with_routes(established(gr=120)).close(True, RST | ACK)
    pipeline = feed(Pipeline(), old.segments, now=10.0)
    attempt = Connection(A, B, client_port=40030, client_isn=4444).handshake()
    attempt.send(True, open_message(65001, "1.1.1.1", graceful_restart=120)).close(False, RST | ACK)
    feed(pipeline, attempt.segments, now=20.0)
    assert len(table(pipeline)) == 3
    assert {p.state for p in pipeline.rib.peers.values()} == {PeerState.STALE}


def test_an_update_establishes_a_session_whose_keepalives_the_capture_missed() -> None:
    """A peer's first UPDATE on its new session settles it even when no KEEPALIVE was seen: when that session
    then ends without graceful restart, its routes go, the stale ones with them."""
    old = with_routes(established(gr=120)).close(True, RST | ACK)
    pipeline = feed(Pipeline(), old.segments, now=10.0)
    new = Connection(A, B, client_port=40031, client_isn=5555).handshake()
    new.send(True, open_message(65001, "1.1.1.1"))
    new.send(False, open_message(65002, "2.2.2.2"))
    new.send(True, update(("100.64.0.0/10",), as_path=(65001,)))
    feed(pipeline, new.segments, now=20.0)
    assert (A, "100.64.0.0/10") in table(pipeline)
    feed(pipeline, new.close(True, RST | ACK).segments[-1:], now=21.0)
    assert {prefix for peer, prefix in table(pipeline) if peer == A} == set()


def test_the_loser_of_a_collision_leaves_graceful_restart_routes_stale() -> None:
    """During a graceful restart both ends dial: the connection that loses the collision may look established
    (KEEPALIVEs both ways before its Cease). The stale routes stay until the winner's End-of-RIB."""
    old = with_routes(established(gr=120)).close(True, RST | ACK)
    pipeline = feed(Pipeline(), old.segments, now=10.0)
    loser = Connection(B, A, client_port=40040, client_isn=6666).handshake()
    loser.send(True, open_message(65002, "2.2.2.2", graceful_restart=120))
    loser.send(False, open_message(65001, "1.1.1.1", graceful_restart=120), keepalive())
    loser.send(True, keepalive())
    loser.send(False, notification(6, 7)).close(False).close(True)
    feed(pipeline, loser.segments, now=20.0)
    assert len(table(pipeline)) == 3
    winner = established(gr=120, port=40041, isn=7777)
    winner.send(True, update(("198.51.100.0/24",), as_path=(65001,)))
    feed(pipeline, winner.segments, now=21.0)
    assert len(table(pipeline)) == 3  # A's other prefix: stale until A's End-of-RIB
    feed(pipeline, winner.send(True, end_of_rib()).segments[-1:], now=22.0)
    assert set(table(pipeline)) == {(A, "198.51.100.0/24"), (B, "192.0.2.0/24")}
