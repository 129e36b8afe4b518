"""Every OSPF capture in tests/fixtures/ospf through parsers.frames + parsers.ospf, against tshark.

`ospf_expected.json` holds what tshark counts (written by tests/fixtures/make_ospf_expected.py, cross-checked
with SOURCES.md): packets by type, LSAs in Link State Updates by type, bad packet checksums, authentication
kinds. The oracle tests re-run tshark when it is installed and compare LSA headers frame by frame.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from functools import cache
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from parsers.capture import open_capture
from parsers.frames import IpDatagram, IpProto, decode_frame
from parsers.ospf.auth import AuthStatus
from parsers.ospf.lsa import OpaqueLsa, OpaqueType
from parsers.ospf.lsa_codec import encode_lsa, seal_lsa
from parsers.ospf.packet import ChecksumStatus, LinkStateUpdate, OspfPacket, decode_packet, encode_packet
from tests.fixtures import make_ospf_expected

FIXTURES = Path(__file__).parents[1] / "fixtures"
OSPF_DIR = FIXTURES / "ospf"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "ospf_expected.json").read_text())
CAPTURES = sorted(name for name in EXPECTED if not name.startswith("_"))
PACKET_NAMES = {int(number): name for number, name in make_ospf_expected.PACKET_TYPES.items()}
AUTH_NAMES = {0: "null", 1: "simple", 2: "cryptographic"}
TSHARK = shutil.which("tshark")


@cache
def decoded(name: str) -> tuple[tuple[int, IpDatagram, OspfPacket], ...]:
    """(frame number, datagram, packet) for every OSPF packet of a capture."""
    found = []
    with open_capture(OSPF_DIR / name) as capture:
        for number, frame in enumerate(capture, 1):
            datagram = decode_frame(frame.linktype, frame.data)
            if isinstance(datagram, IpDatagram) and datagram.proto == IpProto.OSPF:
                found.append((number, datagram, decode_packet(datagram.payload, src=datagram.src, dst=datagram.dst)))
    return tuple(found)


def lsa_key(version: int, ls_type: int) -> str:
    return f"{ls_type:#06x}" if version == 3 else str(ls_type)


def counts(name: str) -> dict[str, Any]:
    packets: Counter[str] = Counter()
    lsas: Counter[str] = Counter()
    auth: Counter[str] = Counter()
    bad_checksums = bad_lsa_checksums = 0
    for _number, _datagram, packet in decoded(name):
        packets[PACKET_NAMES[packet.type]] += 1
        if packet.version == 2:
            auth[AUTH_NAMES.get(packet.auth_type, f"type {packet.auth_type}")] += 1
        else:
            auth["trailer" if packet.auth_trailer is not None else "none"] += 1
        bad_checksums += packet.checksum_status is ChecksumStatus.BAD
        if isinstance(packet.body, LinkStateUpdate):
            for lsa in packet.body.lsas:
                lsas[lsa_key(packet.version, lsa.header.type)] += 1
                bad_lsa_checksums += not lsa.checksum_ok
    return {
        "packets": dict(sorted(packets.items())),
        "lsas": dict(sorted(lsas.items())),
        "auth": dict(sorted(auth.items())),
        "packet_checksum_bad": bad_checksums,
        "lsa_checksum_bad": bad_lsa_checksums,
    }


@pytest.mark.parametrize("name", CAPTURES)
def test_counts_equal_tshark(name: str) -> None:
    expected = {key: value for key, value in EXPECTED[name].items() if key != "notes"}
    assert counts(name) == expected


def test_every_fixture_is_covered() -> None:
    assert sorted(path.name for path in OSPF_DIR.iterdir()) == CAPTURES
    assert len(CAPTURES) == 16


@pytest.mark.parametrize("name", CAPTURES)
def test_packets_and_lsas_re_encode_exactly(name: str) -> None:
    for number, datagram, packet in decoded(name):
        assert encode_packet(packet) == datagram.payload, f"frame {number}"
        if isinstance(packet.body, LinkStateUpdate):
            for lsa in packet.body.lsas:
                assert lsa.problem is None, f"frame {number}: {lsa.problem}"
                # the routers' checksums are the oracle for ours
                assert seal_lsa(lsa).header.checksum == lsa.header.checksum, f"frame {number}"
                assert seal_lsa(lsa).header.length == len(encode_lsa(lsa)) == lsa.header.length


def test_ospf_sr_bad_packet_checksum_reported_not_fatal() -> None:
    ((number, _datagram, packet),) = decoded("ospf-sr.pcapng")
    assert number == 1
    assert packet.checksum_status is ChecksumStatus.BAD
    (problem,) = packet.problems
    assert (problem.kind, problem.offset, problem.length) == ("ospf packet checksum", 12, 2)
    assert "0x421d" in problem.detail and "0x1d42" in problem.detail  # tshark: "0x421d [incorrect, should be 0x1d42]"
    assert isinstance(packet.body, LinkStateUpdate)
    assert all(lsa.checksum_ok for lsa in packet.body.lsas)


def test_ospf_sr_opaque_lsas() -> None:
    ((_number, _datagram, packet),) = decoded("ospf-sr.pcapng")
    assert isinstance(packet.body, LinkStateUpdate)
    info, extended = (lsa.body for lsa in packet.body.lsas[:2])
    assert isinstance(info, OpaqueLsa) and info.opaque_type == OpaqueType.ROUTER_INFORMATION
    hostname, sid_range = info.tlvs
    assert hostname.decoded == "node5"
    assert sid_range.decoded == 5 and sid_range.sub_tlvs[0].decoded == 10000  # range size 5, first label 10000
    assert isinstance(extended, OpaqueLsa) and extended.opaque_type == OpaqueType.EXTENDED_PREFIX
    (prefix_range,) = extended.tlvs
    assert prefix_range.decoded == (0, 1, 0, IPv4Network("192.168.0.0/32"))
    assert prefix_range.sub_tlvs[0].decoded == (0, 0, 4)  # prefix-SID: flags 0, algorithm 0, index 4


def test_grace_lsa() -> None:
    lsas = [
        lsa
        for _n, _d, p in decoded("ospfv2-lsa-type-9.pcapng")
        if isinstance(p.body, LinkStateUpdate)
        for lsa in p.body.lsas
    ]
    body = lsas[0].body
    assert isinstance(body, OpaqueLsa) and body.opaque_type == OpaqueType.GRACE
    assert [t.decoded for t in body.tlvs] == [300, 3, IPv4Address("192.168.1.254")]  # period, reason, address


def test_te_lsa() -> None:
    ((_n, _d, packet),) = decoded("ospfv2-lsa-type-10-mpls-te.pcapng")
    assert isinstance(packet.body, LinkStateUpdate)
    router_address, link = (lsa.body for lsa in packet.body.lsas[1:])
    assert isinstance(router_address, OpaqueLsa) and router_address.tlvs[0].decoded == IPv4Address("1.1.1.1")
    assert isinstance(link, OpaqueLsa)
    subs = {tlv.type: tlv.decoded for tlv in link.tlvs[0].sub_tlvs}
    assert subs[1] == 2 and subs[2] == IPv4Address("192.168.12.2") and subs[5] == 1  # transit, link ID, TE metric
    assert subs[6] == 125e6  # 1 Gbit/s in bytes per second


def test_authentication_kinds() -> None:
    simple = decoded("ospf_simple_password_authentication.cap")
    assert {p.password for _n, _d, p in simple} == {b"cisco"}
    for name in ("OSPF_with_MD5_auth.cap", "OSPFv2_Capture_FINAL.pcapng"):
        packets = [p for _n, _d, p in decoded(name)]
        assert {p.auth_status for p in packets} == {AuthStatus.UNVERIFIED}  # no key known
        assert {p.checksum_status for p in packets} == {ChecksumStatus.NOT_APPLICABLE}
    ((_n, _d, hello),) = decoded("ospf3_auth.pcapng")
    assert hello.auth_trailer is not None and hello.auth_status is AuthStatus.UNVERIFIED


def test_md5_digest_of_a_real_router_verifies_with_its_key() -> None:
    with open_capture(FIXTURES / "ospf_auth" / "ospf-md5_key-1234.pcap") as capture:
        (frame,) = list(capture)
    datagram = decode_frame(frame.linktype, frame.data)
    assert isinstance(datagram, IpDatagram)
    packet = decode_packet(datagram.payload)
    assert packet.auth_status is AuthStatus.UNVERIFIED and packet.key_id == 1
    assert packet.crypto_sequence == 1425328458  # as tshark shows it
    verified = decode_packet(datagram.payload, keys={1: b"1234"})
    assert verified.auth_status is AuthStatus.VERIFIED and verified.problems == ()
    for wrong in ({1: b"12345"}, {1: b"cisco"}, {1: b"1234\x00x"}):
        failed = decode_packet(datagram.payload, keys=wrong)
        assert failed.auth_status is AuthStatus.FAILED
        assert [p.kind for p in failed.problems] == ["ospf authentication"]


# --- tshark as oracle, field by field


def tshark_lsu_headers(name: str) -> Iterator[tuple[int, list[tuple[str, str, str, str, str]]]]:
    """(frame number, [(LS type, advertising router, sequence, checksum, length), ...]) per Link State Update."""
    argv = [TSHARK or "tshark", "-n", "-r", str(OSPF_DIR / name), "-Y", "ospf.msg == 4", "-T", "fields"]
    argv += ["-E", "occurrence=a", "-E", "separator=|", "-e", "frame.number", "-e", "ospf.lsa", "-e", "ospf.v3.lsa"]
    argv += ["-e", "ospf.advrouter", "-e", "ospf.lsa.seqnum", "-e", "ospf.lsa.chksum", "-e", "ospf.lsa.length"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    for line in done.stdout.splitlines():
        number, v2_types, v3_types, *columns = line.split("|")
        types = (v3_types or v2_types).split(",")
        split = [column.split(",") for column in columns]
        yield int(number), list(zip(types, *split, strict=True))


@pytest.mark.oracle
@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
@pytest.mark.parametrize("name", CAPTURES)
def test_lsa_headers_equal_tshark(name: str) -> None:
    ours = {
        number: [
            (
                f"{lsa.header.type:#06x}" if packet.version == 3 else str(lsa.header.type),
                str(lsa.header.adv_router),
                f"{lsa.header.seq & 0xFFFFFFFF:#010x}",
                f"{lsa.header.checksum:#06x}",
                str(lsa.header.length),
            )
            for lsa in packet.body.lsas
        ]
        for number, _datagram, packet in decoded(name)
        if isinstance(packet.body, LinkStateUpdate)
    }
    assert ours == dict(tshark_lsu_headers(name))


@pytest.mark.oracle
@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
def test_expected_json_is_what_tshark_says_today() -> None:
    assert TSHARK is not None
    fresh, problems = make_ospf_expected.build(TSHARK)
    assert problems == []
    fresh.pop("_about")
    committed = {name: value for name, value in EXPECTED.items() if not name.startswith("_")}
    assert fresh == committed
