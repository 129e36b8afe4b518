"""The BGP RIB restored from the store after a restart: exact round trip, stale routes and how they end.

The reference for the round trip is the RIB the pipeline built from each fixture (itself checked against tshark
in test_replay_fixtures): every path read back must equal it, attributes, peers and best paths included.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from parsers.bgp.attributes import PathAttributes, path_attributes
from parsers.bgp.constants import AttrCode, SegmentType
from parsers.bgp.context import SessionContext
from parsers.bgp.nlri import prefix_to_text
from parsers.frames import TcpSegment
from sniffroute import backends, cli
from sniffroute.config import ConfigError, parse_config
from sniffroute.locrib import LocRib, entries_from_json, entries_json
from sniffroute.pipeline import Pipeline
from sniffroute.rib import PeerState, Rib
from sniffroute.rib_store import attributes_from_wire, attributes_wire
from sniffroute.route_blocks import bucket_of, split_prefixes
from sniffroute.store import Store, StoreError
from tests.bgp_session import ACK, RST, Connection, end_of_rib, keepalive, notification, open_message, update
from tests.helpers import FIXTURES, replay
from tests.test_backends import PEER_MAC, ROUTER_MAC, FakeTap
from tests.test_backends import _config as backend_config
from tests.test_config import _document as config_document
from tests.test_sessions import A, B, established, feed, table, with_routes

BGP = FIXTURES / "bgp"
NAMES = sorted(p.name for p in BGP.iterdir())
HOLD = 120.0

# Every column of the stored BGP RIB except the surrogate row ids, one row per block of routes.
LOGICAL_BLOCKS = """
SELECT r.family, r.bucket, r.path_id, r.best, r.reason, r.count, r.prefixes,
       p.id, p.address, p.local_address, p.asn, p.local_asn, p.router_id, p.state, p.possibly_stale, p.generation,
       pa.next_hop, pa.next_hop_ll, pa.since, pa.generation, a.wire, a.wire_as4, a.wire_errors
FROM route_blocks r JOIN peers p ON p.id = r.peer JOIN paths pa ON pa.id = r.path JOIN attrs a ON a.id = pa.attrs
"""


def stored_rows(path: Path) -> tuple[list[tuple], list[tuple], int, int]:
    """One row per route (however the routes are packed in blocks), peers, attribute sets, paths."""
    with Store(path) as store:
        rows = []
        for family, bucket, path_id, best, reason, count, blob, *rest in store.db.execute(LOGICAL_BLOCKS):
            prefixes = split_prefixes(blob, family >> 8)
            assert len(prefixes) == count and {bucket_of(p) for p in prefixes} == {bucket}
            rows += [(family, prefix, path_id, best, reason, *rest) for prefix in prefixes]
        rows.sort()
        peers = store.db.execute("SELECT * FROM peers ORDER BY id").fetchall()
        attrs = store.db.execute("SELECT count(*) FROM attrs").fetchone()[0]
        paths = store.db.execute("SELECT count(*) FROM paths").fetchone()[0]
    return rows, peers, attrs, paths


def saved(rib: Rib, path: Path) -> Path:
    with Store(path) as store:
        store.save(rib)
    return path


def restored(path: Path, stale_until: float | None = None) -> Rib:
    with Store(path) as store:
        loaded = store.load_rib()
    assert loaded.problem is None
    rib = Rib()
    assert rib.restore(loaded.peers, loaded.routes, stale_until=stale_until) == loaded.path_count
    return rib


def paths_of(rib: Rib) -> dict[tuple, tuple]:
    return {
        (family, prefix, source): (path.attrs, path.next_hop, path.next_hop_link_local, path.since, path.generation)
        for family, prefix, source, path, _why in rib.routes()
    }


def best_of(rib: Rib) -> dict[tuple, tuple]:
    out = {}
    for family, table_ in rib.tables.items():
        for prefix in table_:
            found = rib.best(family, prefix)
            assert found is not None
            out[(family, prefix)] = (found[0], found[2])
    return out


# -- attributes ----------------------------------------------------------------------------------------------
def interned(name: str) -> list[PathAttributes]:
    """Every attribute set the fixture's UPDATEs carried, routes still held or not."""
    return list(replay(BGP / name).sessions.cache._entries.values())


@pytest.mark.parametrize("name", NAMES)
def test_every_attribute_set_of_every_fixture_reads_back_equal(name: str) -> None:
    for attrs in interned(name):
        assert attributes_from_wire(*attributes_wire(attrs)) == attrs


def test_the_fixtures_carry_what_the_round_trip_must_keep() -> None:
    """The round trip above means something only if these occur in the fixtures' attribute sets."""
    every = [attrs for name in NAMES for attrs in interned(name)]
    codes = {a.code for attrs in every for a in attrs.attributes}
    segment_types = {seg.type for attrs in every for seg in attrs.as_path}
    assert {AttrCode.AS4_PATH, AttrCode.COMMUNITIES, AttrCode.EXTENDED_COMMUNITIES} <= codes
    assert AttrCode.LARGE_COMMUNITIES in codes and AttrCode.AGGREGATOR in codes
    assert {a.code for attrs in every for a in attrs.attributes if type(a.value) is bytes} >= {33, 40}  # kept raw
    assert {SegmentType.AS_SET, SegmentType.AS_CONFED_SEQUENCE} <= segment_types
    assert any(attrs.errors for attrs in every), "no attribute set with errors"


@pytest.mark.parametrize("as4", [False, True])
def test_unknown_and_malformed_attributes_read_back_equal(as4: bool) -> None:
    block = (
        b"\x40\x01\x01\x02"  # ORIGIN INCOMPLETE
        + b"\x50\x02\x00\x00"  # empty AS_PATH, Extended Length flag set
        + b"\x40\x03\x04\xc0\x00\x02\x01"  # NEXT_HOP
        + b"\x80\x04\x03\x00\x00\x01"  # MED of 3 octets: malformed, treat-as-withdraw
        + b"\xe0\xfa\x03abc"  # unknown optional transitive code 250, Partial bit set
        + b"\x80\xfb\x00"  # unknown optional non-transitive code 251, empty
        + b"\xc0\x11\x0a\x02\x02\x00\x01\x00\x00\x00\x00\xfd\xe8"  # AS4_PATH (discarded when as4)
    )
    attrs = path_attributes(block, SessionContext(as4=as4))
    assert {a.code for a in attrs.attributes} >= {250, 251} and attrs.errors
    again = attributes_from_wire(*attributes_wire(attrs))
    assert again == attrs
    assert [(a.code, a.flags) for a in again.attributes] == [(a.code, a.flags) for a in attrs.attributes]


def test_errors_and_their_action_survive() -> None:
    (attrs,) = [a for name in NAMES for a in interned(name) if a.errors][:1]
    again = attributes_from_wire(*attributes_wire(attrs))
    assert again.errors == attrs.errors and again.action == attrs.action


# -- the store round trip --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_store_load_store_gives_the_same_rows(name: str, tmp_path: Path) -> None:
    original = replay(BGP / name).rib
    first = saved(original, tmp_path / "first.sqlite")
    again = restored(first)
    assert paths_of(again) == paths_of(original)
    assert best_of(again) == best_of(original)
    assert stored_rows(saved(again, tmp_path / "second.sqlite")) == stored_rows(first)


def test_fixtures_with_routes_cover_add_path_mp_next_hops_and_several_peers(tmp_path: Path) -> None:
    """The round trip above is not only over empty RIBs."""
    ribs = {name: replay(BGP / name).rib for name in NAMES}
    assert sum(1 for rib in ribs.values() if rib.count()) >= 12
    routes = [route for rib in ribs.values() for route in rib.routes()]
    assert any(source[1] is not None for _f, _p, source, _path, _why in routes)  # ADD-PATH identifiers
    assert any(path.next_hop_link_local for *_rest, path, _why in routes)  # MP_REACH global + link-local
    assert any(family == (2, 1) for family, *_rest in routes)
    assert any(len(rib.peers) > 1 and len(best_of(rib)) < rib.count() for rib in ribs.values())  # real decisions


@pytest.mark.parametrize("name", ["bgp-add-path.cap", "IBGP_adjacency.cap", "BGP_MP_NLRI.cap"])
def test_restored_as_stale_keeps_every_path_and_best_path(name: str, tmp_path: Path) -> None:
    original = replay(BGP / name).rib
    rib = restored(saved(original, tmp_path / "rib.sqlite"), stale_until=500.0)
    assert paths_of(rib) == paths_of(original)
    assert best_of(rib) == best_of(original)
    with_routes_ = {path.peer for *_rest, path, _why in rib.routes()}
    assert with_routes_
    for peer in rib.peers.values():
        assert (peer.state, peer.stale_deadline) == ((PeerState.STALE, 500.0) if peer.id in with_routes_ else
                                                     (original.peers[peer.id].state, None))  # fmt: skip
    # What `sniffroute rib` reads: every restored route marked stale, the same best paths as before.
    with Store(saved(rib, tmp_path / "stale.sqlite")) as store:
        shown = store.routes(all_paths=True)
    with Store(tmp_path / "rib.sqlite") as store:
        before = store.routes(all_paths=True)
    assert shown and all(route["stale"] for route in shown)
    assert [{**r, "stale": None} for r in shown] == [{**r, "stale": None} for r in before]


def test_restored_rib_gives_the_forwarding_entries_the_original_gave(tmp_path: Path) -> None:
    """What the FIB restored from its own document must find behind it: the same Loc-RIB entries."""
    original = feed(Pipeline(), with_routes(established()).segments).rib
    rib = restored(saved(original, tmp_path / "rib.sqlite"), stale_until=500.0)
    interfaces = backend_config(tmp_path / "unused.sqlite").interfaces  # 192.0.2.254/24: next hop 192.0.2.1
    expected = LocRib(original, interfaces).rebuild()
    assert expected and LocRib(rib, interfaces).rebuild() == expected
    assert entries_from_json(entries_json(expected)) == expected  # as the "fib" document carries them


def test_restore_only_into_an_empty_rib(tmp_path: Path) -> None:
    original = replay(BGP / "BGP_MP_NLRI.cap").rib
    with Store(saved(original, tmp_path / "rib.sqlite")) as store:
        loaded = store.load_rib()
    with pytest.raises(ValueError):
        original.restore(loaded.peers, loaded.routes)


# -- stale routes and how they end (hand-built sessions) -------------------------------------------------------
RESTART = 1000.0


def restarted(tmp_path: Path, gr: int | None = None) -> Pipeline:
    """A controller that saw A and B exchange routes, restarted at RESTART with its RIB from the store."""
    before = feed(Pipeline(), with_routes(established(gr)).segments)
    with Store(saved(before.rib, tmp_path / "rib.sqlite")) as store:
        loaded = store.load_rib()
    pipeline = Pipeline()
    pipeline.rib.restore(loaded.peers, loaded.routes, stale_until=RESTART + HOLD)
    pipeline.sessions.adopt_restored(HOLD)
    return pipeline


def stale_view(pipeline: Pipeline, tmp_path: Path) -> dict[tuple[str, str], bool]:
    """(peer, prefix) -> stale, as `sniffroute rib --all --json` shows it."""
    with Store(saved(pipeline.rib, tmp_path / "view.sqlite")) as store:
        return {(r["peer"], r["prefix"]): r["stale"] for r in store.routes(all_paths=True)}


ALL_THREE = {(A, "198.51.100.0/24"), (A, "203.0.113.0/25"), (B, "192.0.2.0/24")}


def test_restored_routes_go_when_the_peer_never_comes_back(tmp_path: Path) -> None:
    pipeline = restarted(tmp_path)
    assert stale_view(pipeline, tmp_path) == dict.fromkeys(ALL_THREE, True)
    pipeline.sessions.expire(RESTART + HOLD - 1)
    assert set(table(pipeline)) == ALL_THREE
    pipeline.sessions.expire(RESTART + HOLD)
    pipeline.commit()
    assert table(pipeline) == {}
    assert {p.state for p in pipeline.rib.peers.values()} == {PeerState.DOWN}


def test_new_session_replaces_restored_routes_and_end_of_rib_ends_the_rest(tmp_path: Path) -> None:
    pipeline = restarted(tmp_path)
    new = established(port=40001, isn=9000)
    new.send(True, update(("198.51.100.0/24",), as_path=(65001,), med=9))
    feed(pipeline, new.segments, now=RESTART + 10)
    assert table(pipeline)[(A, "198.51.100.0/24")] == ("192.0.2.1", (65001,), 9)  # the new announcement
    assert stale_view(pipeline, tmp_path) == {
        (A, "198.51.100.0/24"): False,
        (A, "203.0.113.0/25"): True,  # not announced again (yet)
        (B, "192.0.2.0/24"): True,
    }
    feed(pipeline, new.send(True, end_of_rib()).segments[-1:], now=RESTART + 11)
    assert set(table(pipeline)) == {(A, "198.51.100.0/24"), (B, "192.0.2.0/24")}
    # B's new session sent no End-of-RIB: its restored route goes HOLD seconds after the session took over.
    pipeline.sessions.expire(RESTART + 12)  # the first check after the take-over starts the hold
    pipeline.sessions.expire(RESTART + 12 + HOLD - 1)
    assert (B, "192.0.2.0/24") in table(pipeline)
    pipeline.sessions.expire(RESTART + 12 + HOLD)
    pipeline.commit()
    assert table(pipeline) == {(A, "198.51.100.0/24"): ("192.0.2.1", (65001,), 9)}
    assert {p.state for p in pipeline.rib.peers.values()} == {PeerState.ESTABLISHED}


@pytest.mark.parametrize("loser_first", [True, False], ids=["loser's OPEN first", "winner's OPEN first"])
def test_the_loser_of_a_collision_takes_no_restored_route_with_it(loser_first: bool, tmp_path: Path) -> None:
    """After a restart both ends dial (RFC 4271 6.8): one connection exchanges OPENs, even KEEPALIVEs, and is
    closed with Cease/Connection Collision Resolution; the other carries the routes. The restored routes stay,
    stale, until the winner's End-of-RIB: no moment without them (a route flow deleted and added again)."""
    pipeline = restarted(tmp_path)
    loser = Connection(B, A, client_port=40020, client_isn=7000).handshake()
    loser.send(True, open_message(65002, "2.2.2.2"))
    loser.send(False, open_message(65001, "1.1.1.1"), keepalive())
    loser.send(True, keepalive())
    winner = Connection(A, B, client_port=40021, client_isn=8000).handshake()
    winner.send(True, open_message(65001, "1.1.1.1"))
    winner.send(False, open_message(65002, "2.2.2.2"))
    loser.send(False, notification(6, 7)).close(False).close(True)
    winner.send(False, keepalive())
    winner.send(True, keepalive())
    first, second = (loser, winner) if loser_first else (winner, loser)
    ordered = interleave(first.segments, second.segments)
    feed(pipeline, ordered, now=RESTART + 5)
    pipeline.commit()
    assert set(table(pipeline)) == ALL_THREE
    winner.send(True, update(("198.51.100.0/24",), as_path=(65001,), med=9))
    feed(pipeline, winner.segments[-1:], now=RESTART + 6)
    pipeline.commit()
    assert set(table(pipeline)) == ALL_THREE
    assert stale_view(pipeline, tmp_path)[(A, "203.0.113.0/25")] is True
    feed(pipeline, winner.send(True, end_of_rib()).segments[-1:], now=RESTART + 7)
    pipeline.commit()
    assert set(table(pipeline)) == {(A, "198.51.100.0/24"), (B, "192.0.2.0/24")}


def interleave(first: list[TcpSegment], second: list[TcpSegment]) -> list[TcpSegment]:
    """The two connections' segments taking turns, the first one's first."""
    out: list[TcpSegment] = []
    for pair in zip(first, second, strict=False):
        out += pair
    longer = first if len(first) > len(second) else second
    return out + longer[min(len(first), len(second)) :]


def test_the_restart_deadline_does_not_cut_a_session_that_came_back(tmp_path: Path) -> None:
    pipeline = restarted(tmp_path)
    new = established(port=40001, isn=9000)
    feed(pipeline, new.segments, now=RESTART + HOLD - 5)  # back just in time, still sending its table
    pipeline.sessions.expire(RESTART + HOLD - 4)
    pipeline.sessions.expire(RESTART + HOLD + 10)
    pipeline.commit()
    assert set(table(pipeline)) == ALL_THREE
    assert set(stale_view(pipeline, tmp_path).values()) == {True}


def test_session_that_carried_on_across_the_restart_keeps_them_possibly_stale(tmp_path: Path) -> None:
    pipeline = restarted(tmp_path)
    # The same connection, seen again mid-stream: no SYN, no OPEN, one more UPDATE from A.
    carried = Connection(A, B, client_port=40000, client_isn=1000)
    carried.send(True, update(("198.18.0.0/15",), as_path=(65001,)))
    feed(pipeline, carried.segments, now=RESTART + 5)
    for now in (RESTART + 6, RESTART + 6 + 2 * HOLD):
        pipeline.sessions.expire(now)
    pipeline.commit()
    peer_a = next(p for p in pipeline.rib.peers.values() if p.address == A)
    assert (peer_a.state, peer_a.possibly_stale) == (PeerState.ESTABLISHED, True)
    assert {k for k in table(pipeline) if k[0] == A} == {(A, "198.51.100.0/24"), (A, "203.0.113.0/25"),
                                                        (A, "198.18.0.0/15")}  # fmt: skip


def test_restored_peer_in_graceful_restart_again_keeps_the_usual_rules(tmp_path: Path) -> None:
    pipeline = restarted(tmp_path, gr=60)
    new = established(gr=60, port=40001, isn=9000)
    new.send(True, update(("198.51.100.0/24",), as_path=(65001,))).close(True, RST | ACK)
    feed(pipeline, new.segments, now=RESTART + 10)
    assert {p.state for p in pipeline.rib.peers.values()} == {PeerState.STALE}  # down again, routes kept
    pipeline.sessions.expire(RESTART + 10 + 60)
    pipeline.commit()
    assert table(pipeline) == {}


# -- old and damaged stores ------------------------------------------------------------------------------------
OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE peers (
    id INTEGER PRIMARY KEY, address TEXT NOT NULL, local_address TEXT NOT NULL, asn INTEGER, local_asn INTEGER,
    router_id TEXT, state TEXT NOT NULL, possibly_stale INTEGER NOT NULL, generation INTEGER NOT NULL);
CREATE TABLE attrs (id INTEGER PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE paths (
    id INTEGER PRIMARY KEY, peer INTEGER NOT NULL, attrs INTEGER NOT NULL, next_hop TEXT, next_hop_ll TEXT,
    since REAL NOT NULL, generation INTEGER NOT NULL);
CREATE TABLE routes (
    family INTEGER NOT NULL, prefix BLOB NOT NULL, peer INTEGER NOT NULL, path_id INTEGER NOT NULL,
    path INTEGER NOT NULL, best INTEGER NOT NULL, reason INTEGER,
    PRIMARY KEY (family, prefix, peer, path_id)) WITHOUT ROWID;
INSERT INTO meta VALUES ('schema', '2');
INSERT INTO peers VALUES (1, '10.0.0.1', '10.0.0.2', 65001, 65002, '1.1.1.1', 'established', 0, 1);
INSERT INTO paths VALUES (1, 1, 1, '192.0.2.1', NULL, 1.0, 1);
INSERT INTO routes VALUES (257, X'18c63364', 1, -1, 1, 1, 0);
"""
OLD_ATTRS = {"as_path": [65001], "origin": "igp", "med": None, "local_pref": None, "communities": [],
             "large_communities": [], "ext_communities": [], "atomic_aggregate": False, "aggregator": None,
             "originator_id": None, "cluster_list": [], "other_attributes": [], "errors": []}  # fmt: skip


def old_store(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO attrs VALUES (1, ?)", (json.dumps(OLD_ATTRS),))
    db.commit()
    db.close()
    return path


def test_a_store_of_an_older_sniffroute_opens_and_restores_nothing(tmp_path: Path) -> None:
    with Store(old_store(tmp_path / "old.sqlite")) as store:
        loaded = store.load_rib()
        assert (loaded.peers, loaded.routes) == ((), ())
        assert "older sniffroute" in (loaded.problem or "")
        assert [r["prefix"] for r in store.routes()] == ["198.51.100.0/24"]  # `rib` still reads it
        store.save(replay(BGP / "BGP_MP_NLRI.cap").rib)  # the next save brings it up to date
        assert store.load_rib().problem is None and store.load_rib().routes


ONE_BLOCK = "rowid IN (SELECT rowid FROM route_blocks LIMIT 1)"
CUT_BLOCK = f"UPDATE route_blocks SET prefixes = CAST(prefixes || X'20c6' AS BLOB) WHERE {ONE_BLOCK}"  # a /32, 1 octet


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE attrs SET wire = X'40010105'",  # ORIGIN of length 1 announcing 5 octets
        "UPDATE attrs SET wire_errors = '[[1, 2]]'",
        "UPDATE attrs SET wire = 'text'",
        "UPDATE peers SET state = 'dreaming'",
        "DELETE FROM paths",
        CUT_BLOCK,
        f"UPDATE route_blocks SET prefixes = 'text' WHERE {ONE_BLOCK}",
        f"UPDATE route_blocks SET bucket = bucket + 1 WHERE {ONE_BLOCK}",  # its lookups would miss
        f"UPDATE route_blocks SET family = 16389 WHERE {ONE_BLOCK}",  # a family the RIB does not hold
        "DROP TABLE attrs",
    ],
)
def test_a_damaged_store_restores_nothing_and_says_why(damage: str, tmp_path: Path) -> None:
    path = saved(replay(BGP / "BGP_MP_NLRI.cap").rib, tmp_path / "rib.sqlite")
    with Store(path) as store:
        assert store.load_rib().routes
        store.db.execute(damage)
        store.db.commit()
        loaded = store.load_rib()
    assert (loaded.peers, loaded.routes) == ((), ()) and loaded.problem


@pytest.mark.parametrize(
    "damage",
    [
        CUT_BLOCK,
        f"UPDATE route_blocks SET prefixes = 'text' WHERE {ONE_BLOCK}",
        "UPDATE attrs SET wire = X'40010105'",
        "DELETE FROM paths",
        "DELETE FROM peers",
    ],
)
def test_rib_on_a_damaged_store_says_so(damage: str, tmp_path: Path) -> None:
    """`sniffroute rib` gets a StoreError (a one-line error) from a damaged block or attribute set."""
    path = saved(replay(BGP / "BGP_MP_NLRI.cap").rib, tmp_path / "rib.sqlite")
    with Store(path) as store:
        assert store.routes(all_paths=True)
        store.db.execute(damage)
        store.db.commit()
        with pytest.raises(StoreError, match="damaged"):
            store.routes(all_paths=True)


def test_prefix_keys_read_back_as_text(tmp_path: Path) -> None:
    """The stored prefix keys are the RIB's: the restored table prints the same prefixes."""
    original = replay(BGP / "BGP_MP_NLRI.cap").rib
    rib = restored(saved(original, tmp_path / "rib.sqlite"))
    texts = {prefix_to_text(f[0], p) for f, p, *_rest in rib.routes()}
    assert texts == {prefix_to_text(f[0], p) for f, p, *_rest in original.routes()}


# -- the live engine across a restart --------------------------------------------------------------------------
def frames(segments: list[TcpSegment]) -> list[bytes]:
    return [
        bytes(
            Ether(src=PEER_MAC, dst=ROUTER_MAC)
            / IP(src=s.src, dst=s.dst)
            / TCP(sport=s.sport, dport=s.dport, seq=s.seq, ack=s.ack, flags=s.flags, window=s.window)
            / Raw(s.payload)
        )
        for s in segments
    ]


def shown(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[tuple[str, str], bool]:
    """(peer, prefix) -> stale, from `sniffroute rib --all --json --db PATH`."""
    capsys.readouterr()
    assert cli.main(["rib", "--all", "--json", "--db", str(path)]) == 0
    return {(r["peer"], r["prefix"]): r["stale"] for r in json.loads(capsys.readouterr().out)}


def wait(predicate, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_live_restart_shows_the_rib_at_once_and_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(backends, "open_tap", lambda interface, *_: FakeTap(interface))
    store = tmp_path / "rib.sqlite"
    first = backends.LiveEngine(backend_config(store), store)
    first.start()
    try:
        for frame in frames(with_routes(established()).segments):
            first._to_pipeline(frame)
        wait(lambda: set(shown(store, capsys)) == ALL_THREE, "the first run's routes in the store")
        # Shutting down: the session holder's NOTIFICATIONs (here: a reset) would empty the RIB; the store keeps it.
        first.freeze_rib()
        for frame in frames(with_routes(established()).close(True, RST | ACK).segments[-1:]):
            first._to_pipeline(frame)
        wait(lambda: first.pipeline.rib.count() == 0, "the reset to empty the running RIB")
    finally:
        first.close()
    assert shown(store, capsys) == dict.fromkeys(ALL_THREE, False)

    second = backends.LiveEngine(backend_config(store), store)
    second.start()
    try:
        wait(lambda: shown(store, capsys) == dict.fromkeys(ALL_THREE, True), "the restored routes, stale")
        assert {p.state for p in second.pipeline.rib.peers.values()} == {PeerState.STALE}
    finally:
        second.close()


def test_live_start_on_an_older_store_starts_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(backends, "open_tap", lambda interface, *_: FakeTap(interface))
    store = old_store(tmp_path / "old.sqlite")
    engine = backends.LiveEngine(backend_config(store), store)
    caplog.set_level("WARNING", logger="sniffroute.live")
    engine.start()
    try:
        said = lambda: any("older sniffroute" in r.getMessage() for r in caplog.records)  # noqa: E731
        wait(said, "the warning that the RIB was not restored")
        assert engine.pipeline.rib.count() == 0
    finally:
        engine.close()
    with Store(store) as reopened:  # saved since, in the current form: the next start restores it
        assert reopened.load_rib().problem is None


def test_restore_hold_is_configurable_and_positive() -> None:
    assert parse_config(config_document()).restore_hold == 120.0
    assert parse_config(config_document() | {"restore_hold": 30}).restore_hold == 30.0
    with pytest.raises(ConfigError, match="restore_hold"):
        parse_config(config_document() | {"restore_hold": 0})
