"""sniffroute.ospf.lsdb: RFC 2328 13.1 instance comparison, installation, flushing, aging, scopes, statistics.

The unit tests build packets from records; the fixture tests replay the captures and compare the final database
with what tshark's dissection of the same Link State Updates implies (newest instance per LSA, gone when MaxAge).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.capture import open_capture
from parsers.frames import IpDatagram, IpProto, decode_frame
from parsers.ospf.checksum import ospf2_checksum
from parsers.ospf.lsa import (
    MAX_AGE,
    ExternalLsa,
    Link3Lsa,
    LinkType,
    Lsa,
    Lsa3Type,
    LsaHeader,
    LsaKey,
    LsaType,
    Prefix3,
    RawLsa,
    RouterLink,
    RouterLsa,
    Scope,
)
from parsers.ospf.lsa_codec import seal_lsa
from parsers.ospf.packet import (
    ChecksumStatus,
    DatabaseDescription,
    LinkStateAck,
    LinkStateRequest,
    LinkStateUpdate,
    OspfPacket,
    PacketType,
    encode_packet,
    seal_packet,
)
from sniffroute.ospf.lsdb import ChangeKind, Lsdb, ScopeKey, compare_instances

A = IPv4Address
AREA = A("0.0.0.1")
R1, R2 = A("1.1.1.1"), A("2.2.2.2")
FIXTURES = Path(__file__).parent / "fixtures" / "ospf"
TSHARK = shutil.which("tshark")


def router_lsa(seq: int = 1, metric: int = 10, age: int = 1, adv: IPv4Address = R1) -> Lsa:
    header = LsaHeader(age, 0x22, LsaType.ROUTER, adv, adv, seq, 0, 0)
    body = RouterLsa(0, (RouterLink(A("10.0.0.0"), A("255.255.255.0"), LinkType.STUB, metric),))
    return seal_lsa(Lsa(header, body))


def external_lsa(seq: int = 1) -> Lsa:
    header = LsaHeader(1, 0x20, LsaType.AS_EXTERNAL, A("172.16.0.0"), R2, seq, 0, 0)
    return seal_lsa(Lsa(header, ExternalLsa(A("255.255.0.0"), True, 20, A("0.0.0.0"), 0)))


def update(*lsas: Lsa, area: IPv4Address = AREA, version: int = 2, sender: IPv4Address = R2) -> OspfPacket:
    body = LinkStateUpdate(tuple(lsas), len(lsas))
    return OspfPacket(version, PacketType.LINK_STATE_UPDATE, 0, sender, area, 0, body)


def header(seq: int, checksum: int = 0x1000, age: int = 1) -> LsaHeader:
    return LsaHeader(age, 0, 1, R1, R1, seq, checksum, 36)


# --- RFC 2328 13.1


def test_higher_sequence_is_newer() -> None:
    assert compare_instances(header(2), 1, header(1), 1) == 1
    assert compare_instances(header(-0x7FFFFFFF), 1, header(0x7FFFFFFE), 1) == -1  # signed comparison


def test_same_sequence_higher_checksum_is_newer() -> None:
    assert compare_instances(header(5, 0x2000), 1, header(5, 0x1000), 1) == 1
    assert compare_instances(header(5, 0x0FFF), 1, header(5, 0xF000), 1) == -1  # unsigned 16-bit


def test_maxage_wins_then_age_difference() -> None:
    assert compare_instances(header(5), MAX_AGE, header(5), 10) == 1
    assert compare_instances(header(5), 10, header(5), MAX_AGE) == -1
    assert compare_instances(header(5), 10, header(5), 1000) == 1  # differ by more than MaxAgeDiff (900)
    assert compare_instances(header(5), 10, header(5), 910) == 0  # exactly 900: the same instance
    assert compare_instances(header(5), MAX_AGE, header(5), MAX_AGE) == 0


# --- installing


def test_add_duplicate_refresh_modify() -> None:
    lsdb = Lsdb()
    first = router_lsa(seq=1)
    (added,) = lsdb.feed(update(first), 100.0)
    assert added.kind is ChangeKind.ADDED and added.new == first and added.old is None
    assert added.scope == ScopeKey(2, Scope.AREA, AREA) and added.key == LsaKey(1, R1, R1)

    assert lsdb.feed(update(first, sender=R1), 101.0) == []  # unicast retransmission of the same instance
    assert lsdb.stats.duplicates == 1

    refresh = router_lsa(seq=2)
    assert lsdb.feed(update(refresh), 1900.0) == []  # new sequence number, same contents: not a change
    entry = lsdb.get(added.scope, added.key)
    assert entry is not None and entry.lsa == refresh and entry.refreshes == 1 and entry.installed == 1900.0
    assert entry.first_seen == 100.0 and lsdb.stats.refreshes == 1

    changed = router_lsa(seq=3, metric=20)
    (modified,) = lsdb.feed(update(changed), 1901.0)
    assert modified.kind is ChangeKind.MODIFIED and modified.old == refresh and modified.new == changed

    assert lsdb.feed(update(router_lsa(seq=2)), 1902.0) == []  # an older instance arriving late
    assert lsdb.stats.stale == 1
    assert len(lsdb) == 1 and lsdb.stats.installed == 3


def test_maxage_flushes_and_old_copies_do_not_return() -> None:
    lsdb = Lsdb()
    lsdb.feed(update(router_lsa(seq=4)), 0.0)
    (flushed,) = lsdb.feed(update(router_lsa(seq=4, age=MAX_AGE)), 10.0)  # premature aging by the originator
    assert flushed.kind is ChangeKind.FLUSHED and flushed.new is None and len(lsdb) == 0
    assert lsdb.feed(update(router_lsa(seq=4, age=MAX_AGE)), 11.0) == []  # re-flooded by a neighbour
    assert lsdb.stats.duplicates == 1
    assert lsdb.feed(update(router_lsa(seq=4, age=5)), 12.0) == []  # a late retransmission of the old one
    assert len(lsdb) == 0 and lsdb.stats.stale == 1
    (again,) = lsdb.feed(update(router_lsa(seq=5)), 13.0)
    assert again.kind is ChangeKind.ADDED


def test_maxage_lsa_not_in_database_is_discarded() -> None:
    lsdb = Lsdb()
    assert lsdb.feed(update(router_lsa(age=MAX_AGE)), 0.0) == []
    assert len(lsdb) == 0 and lsdb.stats.discarded == 1


def test_lsas_age_out_when_not_refreshed() -> None:
    lsdb = Lsdb()
    lsdb.feed(update(router_lsa(age=3000)), 0.0)
    (entry,) = lsdb.entries()
    assert entry.age(100.0) == 3100 and entry.age(10_000.0) == MAX_AGE
    assert lsdb.expire(599.0) == []
    aged, added = lsdb.feed(update(external_lsa()), 600.0)  # any later packet drives the clock
    assert aged.kind is ChangeKind.AGED_OUT and aged.old is not None and added.kind is ChangeKind.ADDED
    assert [e.lsa.header.type for e in lsdb.entries()] == [LsaType.AS_EXTERNAL]
    assert lsdb.stats.aged_out == 1


def test_refresh_postpones_aging() -> None:
    lsdb = Lsdb()
    lsdb.feed(update(router_lsa(seq=1, age=3000)), 0.0)
    lsdb.feed(update(router_lsa(seq=2, age=1)), 500.0)
    assert lsdb.expire(700.0) == [] and len(lsdb) == 1


def test_do_not_age() -> None:
    lsdb = Lsdb()
    lsdb.feed(update(router_lsa(age=0x8000 | 10)), 0.0)
    assert lsdb.expire(100_000.0) == [] and lsdb.entries()[0].age(100_000.0) == 10


def test_bad_lsa_checksum_is_not_installed() -> None:
    lsa = router_lsa()
    payload = bytearray(encode_packet(seal_packet(update(lsa, lsa))))
    first = 24 + 4  # OSPFv2 header, "# LSAs"
    payload[first + 30] ^= 0x01  # a bit in the first copy's stub network mask
    payload[12:14] = ospf2_checksum(bytes(payload)).to_bytes(2, "big")  # the packet itself stays valid
    lsdb = Lsdb()
    changes = lsdb.feed_payload(bytes(payload), 5.0, src="10.0.0.2", dst="224.0.0.5")
    assert [c.kind for c in changes] == [ChangeKind.ADDED] and changes[0].new == lsa  # only the good copy
    assert lsdb.stats.lsa_checksum_failures == 1
    (_now, where, problem) = lsdb.stats.problems[0]
    assert (problem.kind, problem.offset, problem.length) == ("ospf lsa checksum", first, lsa.header.length)
    assert "ID 1.1.1.1 from 1.1.1.1" in problem.detail and where == "10.0.0.2"


def test_bad_packet_checksum_drops_the_packet_unless_told_otherwise() -> None:
    packet = replace(update(router_lsa()), checksum_status=ChecksumStatus.BAD)
    strict = Lsdb()
    assert strict.feed(packet, 0.0) == [] and len(strict) == 0
    assert strict.stats.packet_checksum_failures == 1 and strict.stats.lsas["v2 router"] == 1
    lenient = Lsdb(accept_bad_packet_checksum=True)
    assert [c.kind for c in lenient.feed(packet, 0.0)] == [ChangeKind.ADDED]


def test_unknown_v2_type_discarded() -> None:
    lsa = seal_lsa(Lsa(LsaHeader(1, 0, 12, R1, R1, 1, 0, 0), RawLsa(b"")))
    lsdb = Lsdb()
    assert lsdb.feed(update(lsa), 0.0) == [] and lsdb.stats.discarded == 1


# --- scopes and queries


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 3), st.integers(0, 800)), min_size=1, max_size=12))
def test_database_keeps_the_newest_instance(instances: list[tuple[int, int, int]]) -> None:
    # Without MaxAge and with ages within MaxAgeDiff, 13.1 reduces to: highest (sequence, checksum) wins.
    lsdb = Lsdb()
    sent = []
    for now, (seq, metric, age) in enumerate(instances):
        lsa = router_lsa(seq=seq, metric=metric, age=age)
        sent.append(lsa)
        lsdb.feed(update(lsa), float(now))
    (entry,) = lsdb.entries()
    newest = max(sent, key=lambda lsa: (lsa.header.seq, lsa.header.checksum))
    assert (entry.lsa.header.seq, entry.lsa.header.checksum) == (newest.header.seq, newest.header.checksum)
    assert lsdb.stats.installed + lsdb.stats.duplicates + lsdb.stats.stale == len(instances)


def test_unicast_updates_counted() -> None:
    payload = encode_packet(seal_packet(update(router_lsa())))
    lsdb = Lsdb()
    lsdb.feed_payload(payload, 0.0, src="10.0.0.2", dst="224.0.0.5")
    lsdb.feed_payload(payload, 1.0, src="10.0.0.2", dst="10.0.0.1")
    assert lsdb.stats.unicast_updates == 1 and lsdb.stats.duplicates == 1


def test_scopes_and_queries() -> None:
    lsdb = Lsdb()
    lsdb.feed(update(router_lsa(), external_lsa()), 0.0)
    lsdb.feed(update(router_lsa(adv=R2), area=A("0.0.0.0")), 0.0)
    link_lsa = seal_lsa(
        Lsa(
            LsaHeader(1, 0, Lsa3Type.LINK, A("0.0.0.5"), R1, 1, 0, 0, 3),
            Link3Lsa(1, 0x13, IPv6Address("fe80::1"), (Prefix3(IPv6Network("2001:db8::/64"), 0),)),
        )
    )
    lsdb.feed(update(link_lsa, version=3), 0.0, link="vlan 10")
    assert lsdb.areas(2) == [A("0.0.0.0"), AREA] and lsdb.areas(3) == [AREA]
    assert [e.lsa.header.type for e in lsdb.entries(version=2, scope=Scope.AS)] == [LsaType.AS_EXTERNAL]
    assert lsdb.entries(version=2, area="0.0.0.1", ls_type=1)[0].lsa.header.adv_router == R1
    (link_entry,) = lsdb.entries(version=3)
    assert link_entry.scope == ScopeKey(3, Scope.LINK, AREA, "vlan 10")
    spf = lsdb.spf_input(2)
    assert list(spf.areas) == [A("0.0.0.0"), AREA] and [lsa.header.type for lsa in spf.as_scope] == [5]
    assert lsdb.spf_input(3).areas[AREA] == (link_lsa,)


def test_dd_lsr_ack_are_known_not_installed() -> None:
    lsdb = Lsdb()
    headers = (router_lsa(seq=3).header, external_lsa().header)
    dd = OspfPacket(2, PacketType.DATABASE_DESCRIPTION, 0, R2, AREA, 0, DatabaseDescription(1500, 0x42, 0, 1, headers))
    lsr = OspfPacket(2, PacketType.LINK_STATE_REQUEST, 0, R1, AREA, 0, LinkStateRequest(((1, R1, R1),)))
    ack = OspfPacket(2, PacketType.LINK_STATE_ACK, 0, R1, AREA, 0, LinkStateAck((router_lsa(seq=2).header,)))
    for packet in (dd, lsr, ack):
        assert lsdb.feed(packet, 1.0) == []
    assert len(lsdb) == 0
    known = lsdb.known()
    assert [k.key.type for k in known] == [1, 5]
    assert known[0].header is not None and known[0].header.seq == 3  # the newest header is kept
    lsdb.feed(update(router_lsa(seq=3)), 2.0)
    assert [k.key.type for k in lsdb.known(missing_only=True)] == [5]
    assert lsdb.stats.packets == {
        "v2 database description": 1,
        "v2 link state request": 1,
        "v2 link state ack": 1,
        "v2 link state update": 1,
    }


# --- captures


def replay(name: str, **options: bool) -> Lsdb:
    lsdb = Lsdb(**options)
    with open_capture(FIXTURES / name) as capture:
        for frame in capture:
            datagram = decode_frame(frame.linktype, frame.data)
            if isinstance(datagram, IpDatagram) and datagram.proto == IpProto.OSPF:
                link = ",".join(map(str, datagram.vlans))
                lsdb.feed_payload(datagram.payload, frame.timestamp, src=datagram.src, dst=datagram.dst, link=link)
    return lsdb


def test_every_capture_replays_without_errors() -> None:
    for path in sorted(FIXTURES.iterdir()):
        lsdb = replay(path.name)
        assert lsdb.stats.decode_errors == 0, path.name
        assert lsdb.stats.lsa_checksum_failures == 0, path.name


def test_authentication_counted_and_failures_not_installed() -> None:
    assert replay("OSPF_with_MD5_auth.cap").stats.auth_unverified == 34
    keyed = Lsdb(keys={1: b"1234"})
    wrong = Lsdb(keys={1: b"4321"})
    with open_capture(FIXTURES.parent / "ospf_auth" / "ospf-md5_key-1234.pcap") as capture:
        frame = next(iter(capture))
    datagram = decode_frame(frame.linktype, frame.data)
    assert isinstance(datagram, IpDatagram)
    keyed.feed_payload(datagram.payload, frame.timestamp, src=datagram.src, dst=datagram.dst)
    wrong.feed_payload(datagram.payload, frame.timestamp, src=datagram.src, dst=datagram.dst)
    assert (keyed.stats.auth_failures, keyed.stats.auth_unverified) == (0, 0)
    assert wrong.stats.auth_failures == 1 and wrong.stats.problems[0][2].kind == "ospf authentication"


def test_ospf_sr_packet_dropped_then_accepted() -> None:
    strict = replay("ospf-sr.pcapng")
    assert len(strict) == 0 and strict.stats.packet_checksum_failures == 1
    (_now, _where, problem) = strict.stats.problems[0]
    assert problem.kind == "ospf packet checksum" and problem.offset == 12
    lenient = replay("ospf-sr.pcapng", accept_bad_packet_checksum=True)
    assert sorted(e.lsa.header.type for e in lenient.entries()) == [1, 5, 10, 10]


def test_replay_statistics_match_tshark_counts() -> None:
    import json

    expected = json.loads((FIXTURES.parent / "ospf_expected.json").read_text())
    lsdb = replay("OSPF_LSA_types.cap")
    assert sum(lsdb.stats.packets.values()) == sum(expected["OSPF_LSA_types.cap"]["packets"].values())
    assert sum(lsdb.stats.lsas.values()) == sum(expected["OSPF_LSA_types.cap"]["lsas"].values())
    assert lsdb.stats.lsas["v2 as-external"] == expected["OSPF_LSA_types.cap"]["lsas"]["5"]


def tshark_final_database(name: str) -> set[tuple[int, str, str, int]]:
    """(type, link state ID, advertising router, sequence) of the newest instance of every LSA in the capture's
    Link State Updates as tshark dissects them, left out when that instance has MaxAge (RFC 2328 13.1, 14)."""
    fields = [
        "ospf.version",
        "ospf.lsa",
        "ospf.v3.lsa",
        "ospf.lsa.id",
        "ospf.link_state_id",
        "ospf.lsid_opaque_type",
        "ospf.lsid.opaque_id",
        "ospf.lsid_te_lsa.instance",
        "ospf.advrouter",
        "ospf.lsa.seqnum",
        "ospf.lsa.chksum",
        "ospf.lsa.age",
    ]
    argv = [TSHARK or "tshark", "-n", "-r", str(FIXTURES / name), "-Y", "ospf.msg == 4", "-T", "fields"]
    argv += ["-E", "occurrence=a", "-E", "separator=|"] + [arg for field in fields for arg in ("-e", field)]
    newest: dict[tuple[int, str, str], tuple[int, int, int]] = {}
    for line in subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines():
        version, v2_types, v3_types, v2_ids, v3_ids, opaque_types, opaque_ids, te_ids, advs, seqs, sums, ages = (
            [item for item in column.split(",") if item] for column in line.split("|")
        )
        # tshark names the opaque ID of a TE LSA (opaque type 1) "instance", every other one "opaque_id"
        plain_ids, other_ids, te_instances = iter(v2_ids), iter(opaque_ids), iter(te_ids)
        opaque = ((t, next(te_instances) if t == "1" else next(other_ids)) for t in opaque_types)
        for index, ls_type in enumerate(v3_types or v2_types):
            kind = int(ls_type, 16) if v3_types else int(ls_type)
            if v3_types:
                ls_id = v3_ids[index]
            elif kind in (9, 10, 11):
                opaque_type, opaque_id = next(opaque)
                ls_id = str(A(int(opaque_type) << 24 | int(opaque_id)))
            else:
                ls_id = next(plain_ids)
            seq = int(seqs[index], 16)
            seq = seq - (1 << 32) if seq & 0x80000000 else seq
            instance = (seq, int(sums[index], 16), int(ages[index]) >= MAX_AGE)
            key = (kind, ls_id, advs[index])
            if key not in newest or instance > newest[key]:
                newest[key] = instance
    return {(*key, seq) for key, (seq, _sum, maxage) in newest.items() if not maxage}


@pytest.mark.oracle
@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir() if p.name != "ospf-sr.pcapng"))
def test_final_database_equals_newest_instances_in_tshark(name: str) -> None:
    lsdb = replay(name)
    ours = {
        (e.lsa.header.type, str(e.lsa.header.ls_id), str(e.lsa.header.adv_router), e.lsa.header.seq)
        for e in lsdb.entries()
    }
    assert ours == tshark_final_database(name)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_capture_payloads_never_raise(draw: st.DataObject) -> None:
    payloads = _fixture_payloads()
    lsdb = Lsdb(keys={1: b"1234"})
    for now in range(draw.draw(st.integers(1, 8))):
        src, dst, payload = draw.draw(st.sampled_from(payloads))
        mutated = bytearray(payload)
        for _ in range(draw.draw(st.integers(0, 4))):
            mutated[draw.draw(st.integers(0, len(payload) - 1))] = draw.draw(st.integers(0, 255))
        lsdb.feed_payload(bytes(mutated), float(now * 1000), src=src, dst=dst)
    assert len(lsdb) == len(lsdb.entries())


_PAYLOADS: list[tuple[str, str, bytes]] = []


def _fixture_payloads() -> list[tuple[str, str, bytes]]:
    if not _PAYLOADS:
        for path in sorted(FIXTURES.iterdir()):
            with open_capture(path) as capture:
                for frame in capture:
                    datagram = decode_frame(frame.linktype, frame.data)
                    if isinstance(datagram, IpDatagram) and datagram.proto == IpProto.OSPF:
                        _PAYLOADS.append((datagram.src, datagram.dst, datagram.payload))
    return _PAYLOADS
