"""Replay shortcuts that must not change a result: the RIB's one-pass announce against announcing prefix by prefix,
the OSPF part of the pipeline made only when OSPF is seen, and the store written with attribute blocks as decoded
against the store written by encoding them again."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path as FsPath

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.bgp.constants import IPV4_UNICAST
from parsers.capture import open_capture
from sniffroute.ospf.view import OspfView
from sniffroute.pipeline import Pipeline
from sniffroute.rib import Path, Rib
from sniffroute.store import Store
from tests.test_rib import attrs

ROOT = FsPath(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
PREFIXES = [bytes([24, 198, 51, n]) for n in range(8)]


def state(rib: Rib) -> tuple[object, ...]:
    rib.commit()
    routes = sorted((prefix, source, id(path), str(reason)) for _f, prefix, source, path, reason in rib.routes())
    return routes, rib.stats.implicit_withdraws, dict(rib.stats.announced)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=6)), max_size=8))
def test_bulk_announce_is_prefix_by_prefix(updates: list[tuple[int, list[bytes]]]) -> None:
    bulk, single = Rib(), Rib()
    for rib in (bulk, single):
        for n in (1, 2, 3):
            rib.add_peer(f"192.0.2.{n}", "192.0.2.254")
    for peer, prefixes in updates:
        path = Path(peer, attrs(med=peer), f"192.0.2.{peer}", None, 0.0, 0)
        bulk.announce(IPV4_UNICAST, prefixes, None, path)
        for prefix in prefixes:
            single.announce(IPV4_UNICAST, [prefix], None, path)
    assert state(bulk) == state(single)


def test_an_lsdb_is_made_only_when_ospf_is_seen() -> None:
    view = OspfView()
    view.expire(1e9)
    assert view.used_lsdb is None and view.lsa_count() == 0 and view.stats.installed == 0
    assert view.lsdb is view.used_lsdb is not None  # made on first use


def test_a_bgp_replay_loads_no_ospf_codec() -> None:
    code = (
        "import sys; from sniffroute.cli import main; "
        f"main(['replay', '--json', '--no-store', {str(FIXTURES / 'bgp' / 'BGP_MP_NLRI.cap')!r}]); "
        "print(sorted(m for m in sys.modules if m.startswith('parsers.ospf') or m == 'sniffroute.ospf.lsdb'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def replay(capture: FsPath) -> Pipeline:
    pipeline = Pipeline(Rib(track_changes=False))
    with open_capture(capture) as frames:
        for frame in frames:
            pipeline.feed_frame(frame.linktype, frame.data, frame.timestamp, frame.wire_len)
    pipeline.finish(0.0)
    pipeline.commit()
    return pipeline


def dump(path: FsPath) -> list[str]:
    """The store's SQL, but for the token each writer leaves (random: it tells writers apart)."""
    with sqlite3.connect(path) as db:
        return [line for line in db.iterdump() if "'writer'" not in line]


def test_attribute_blocks_as_decoded_store_what_encoding_stores(tmp_path: FsPath) -> None:
    for name in ("bgp/4-byte_AS_numbers_Mixed_Scenario.cap", "bgp/bgp-bgpsec.pcap", "lab/bgp_lab.pcap"):
        pipeline = replay(FIXTURES / name)
        with Store(tmp_path / "encoded.sqlite") as store:
            store.save(pipeline.rib)
        with Store(tmp_path / "as_decoded.sqlite") as store:
            store.save(pipeline.rib, attribute_blocks=pipeline.sessions.cache.block_of)
        assert dump(tmp_path / "as_decoded.sqlite") == dump(tmp_path / "encoded.sqlite"), name


def test_reading_the_store_loads_no_sniff_pipeline(tmp_path: FsPath) -> None:
    """`rib` and `peers` only read the store: the pipeline, the sessions and OSPF stay unloaded (a lookup starts
    about a third faster)."""
    db = str(tmp_path / "rib.sqlite")
    code = (
        "import sys; from sniffroute.cli import main; "
        f"main(['replay', '--json', '--db', {db!r}, {str(FIXTURES / 'lab' / 'bgp_lab.pcap')!r}])"
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    engine = ("sniffroute.pipeline", "sniffroute.sessions", "sniffroute.streams", "sniffroute.ospf.", "parsers.capture")
    for command in (["rib", "100.64.3.7"], ["peers"]):
        code = (
            "import sys; from sniffroute.cli import main; "
            f"assert main({[*command, '--db', db]!r}) == 0; "
            f"print(sorted(m for m in sys.modules if m.startswith({engine!r})))"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
        assert done.stdout.strip().splitlines()[-1] == "[]", command
