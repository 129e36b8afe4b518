"""parsers.ospf.lsa / lsa_codec / checksum / opaque: LSA headers and bodies, v2 and v3.

The byte strings are LSAs captured from real routers (tests/fixtures/ospf); the expected field values are
those tshark 4.0.17 shows for them, and the Fletcher checksums were computed by the routers that sent them.
"""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.errors import DecodeError
from parsers.ospf.checksum import fletcher_checksum, fletcher_ok
from parsers.ospf.lsa import (
    External3Lsa,
    ExternalLsa,
    ExternalTos,
    InterAreaPrefixLsa,
    InterAreaRouterLsa,
    IntraAreaPrefixLsa,
    Link3Lsa,
    LinkType,
    Lsa,
    Lsa3Type,
    LsaHeader,
    LsaType,
    Network3Lsa,
    NetworkLsa,
    OpaqueLsa,
    Prefix3,
    RawLsa,
    Router3Link,
    Router3Lsa,
    RouterLink,
    RouterLsa,
    Scope,
    SummaryLsa,
    Tlv,
    TosMetric,
    lsa_type_name,
    prefix_of,
)
from parsers.ospf.lsa_codec import decode_lsa, decode_lsa_header, encode_lsa, seal_lsa
from parsers.ospf.opaque import decode_tlvs, encode_tlvs

A = IPv4Address

# OSPF_LSA_types.cap, frame 12: a router-LSA.
ROUTER_LSA = bytes.fromhex(
    "01be"  # LS age 446
    "22"  # options: DC, E
    "01"  # LS type 1 (router)
    "05050505"  # link state ID 5.5.5.5
    "05050505"  # advertising router 5.5.5.5
    "80000004"  # LS sequence number
    "7caa"  # LS checksum
    "0030"  # length 48
    "00"  # flags: none
    "00"  # 0
    "0002"  # 2 links
    "c0a81400 ffffff00 03 00 000a"  # stub 192.168.20.0/255.255.255.0, no TOS, metric 10
    "0a001402 0a001402 02 00 000a"  # transit: DR 10.0.20.2, own address 10.0.20.2, metric 10
)
# Below, the 20-byte header is written on one line: age, options, type, ID, advertising router, sequence,
# checksum, length (v3: age, type, ID, advertising router, sequence, checksum, length).
# Same frame: network-LSA of 10.0.20.0/30 (DR 10.0.20.2) with two attached routers.
NETWORK_LSA = bytes.fromhex(
    "01be 22 02 0a001402 05050505 80000001 f6ed 0020"
    "fffffffc"  # mask 255.255.255.252
    "05050505 04040404"  # attached routers
)
SUMMARY_NETWORK_LSA = bytes.fromhex(
    "000b 22 03 c0a80a00 04040404 80000001 1e7d 001c"
    "ffffff00"  # mask /24
    "00 00001e"  # TOS 0, metric 30
)
SUMMARY_ASBR_LSA = bytes.fromhex(
    "000b 22 04 02020202 04040404 80000001 6fa0 001c"
    "00000000"  # mask: unused for type 4
    "00 000014"  # metric 20
)
EXTERNAL_LSA = bytes.fromhex(
    "00c5 20 05 ac100300 02020202 80000001 2860 0024"
    "ffffff00"  # mask /24
    "80 000064"  # E bit (type 2 metric), metric 100
    "00000000"  # forwarding address 0.0.0.0
    "00000000"  # external route tag 0
)
# OSPF_type7_LSA.cap: an NSSA LSA with a forwarding address
NSSA_LSA = bytes.fromhex(
    "0066 28 07 ac100300 02020202 80000001 54b5 0024"
    "ffffff00 80 000064"  # mask /24, E bit, metric 100
    "c0a80a01 00000000"  # forwarding address 192.168.10.1, tag 0
)
# OSPFv3_broadcast_adjacency.pcap
ROUTER3_LSA = bytes.fromhex(
    "0028"  # LS age
    "2001"  # LS type: router, area scope
    "00000000"  # link state ID
    "01010101"  # advertising router
    "80000002 d13a 0018"  # sequence, checksum, length 24
    "01"  # flags: B
    "000033"  # options: V6, E, R
)
INTER_AREA_PREFIX_LSA = bytes.fromhex(
    "0029 2003 00000003 01010101 80000001 6259 0024"
    "00 00004a"  # metric 74
    "40 00 0000"  # prefix length 64, options 0, 0
    "20010db8 00000003"  # 2001:db8:0:3::/64 (two 32-bit words)
)
LINK_LSA = bytes.fromhex(
    "0023 0008 00000005 01010101 80000002 3d08 0038"
    "01 000033"  # router priority 1, options
    "fe800000000000000000000000000001"  # link-local address fe80::1
    "00000001"  # 1 prefix
    "40 00 0000 20010db8 00000012"  # 2001:db8:0:12::/64
)
INTRA_AREA_PREFIX_LSA = bytes.fromhex(
    "0023 2009 00000000 01010101 80000001 e8d2 002c"
    "0001"  # 1 prefix
    "2001"  # referenced LS type: router
    "00000000"  # referenced link state ID
    "01010101"  # referenced advertising router
    "40 00 000a 20010db8 00000012"  # 2001:db8:0:12::/64, metric 10
)
NETWORK3_LSA = bytes.fromhex(
    "0001 2002 00000005 01010101 80000001 27cc 0020"
    "00000033"  # 0, options
    "01010101 02020202"  # attached routers
)


def test_router_lsa_fields() -> None:
    lsa, end = decode_lsa(ROUTER_LSA)
    assert end == len(ROUTER_LSA) == 48
    assert lsa.header == LsaHeader(446, 0x22, LsaType.ROUTER, A("5.5.5.5"), A("5.5.5.5"), -0x7FFFFFFC, 0x7CAA, 48)
    assert lsa.checksum_ok and lsa.problem is None and lsa.installable
    assert lsa.body == RouterLsa(
        0,
        (
            RouterLink(A("192.168.20.0"), A("255.255.255.0"), LinkType.STUB, 10),
            RouterLink(A("10.0.20.2"), A("10.0.20.2"), LinkType.TRANSIT, 10),
        ),
    )
    assert not lsa.body.is_abr and not lsa.body.is_asbr
    assert lsa.header.scope is Scope.AREA
    assert lsa.key == (1, A("5.5.5.5"), A("5.5.5.5"))


@pytest.mark.parametrize(
    ("data", "body"),
    [
        (NETWORK_LSA, NetworkLsa(A("255.255.255.252"), (A("5.5.5.5"), A("4.4.4.4")))),
        (SUMMARY_NETWORK_LSA, SummaryLsa(A("255.255.255.0"), 30)),
        (SUMMARY_ASBR_LSA, SummaryLsa(A("0.0.0.0"), 20)),
        (EXTERNAL_LSA, ExternalLsa(A("255.255.255.0"), True, 100, A("0.0.0.0"), 0)),
        (NSSA_LSA, ExternalLsa(A("255.255.255.0"), True, 100, A("192.168.10.1"), 0)),
    ],
)
def test_v2_bodies(data: bytes, body: object) -> None:
    lsa, _ = decode_lsa(data)
    assert lsa.body == body
    assert lsa.checksum_ok
    assert encode_lsa(lsa) == data


def test_v2_prefixes_and_scopes() -> None:
    network, _ = decode_lsa(NETWORK_LSA)
    assert isinstance(network.body, NetworkLsa)
    assert prefix_of(network.header.ls_id, network.body.mask) == IPv4Network("10.0.20.0/30")
    external, _ = decode_lsa(EXTERNAL_LSA)
    assert external.header.scope is Scope.AS
    nssa, _ = decode_lsa(NSSA_LSA)
    assert nssa.header.scope is Scope.AREA
    assert prefix_of(A("10.1.2.3"), A("0.0.0.0")) == IPv4Network("0.0.0.0/0")
    assert lsa_type_name(2, 7) == "nssa-external" and lsa_type_name(3, 0x2009) == "intra-area-prefix"
    assert lsa_type_name(2, 99) == "type 99" and lsa_type_name(3, 0x1234) == "type 0x1234"


@pytest.mark.parametrize(
    ("data", "body", "scope"),
    [
        (ROUTER3_LSA, Router3Lsa(0x01, 0x33, ()), Scope.AREA),
        (
            INTER_AREA_PREFIX_LSA,
            InterAreaPrefixLsa(74, Prefix3(IPv6Network("2001:db8:0:3::/64"), 0, 0)),
            Scope.AREA,
        ),
        (
            LINK_LSA,
            Link3Lsa(1, 0x33, IPv6Address("fe80::1"), (Prefix3(IPv6Network("2001:db8:0:12::/64"), 0, 0),)),
            Scope.LINK,
        ),
        (
            INTRA_AREA_PREFIX_LSA,
            IntraAreaPrefixLsa(
                Lsa3Type.ROUTER, A("0.0.0.0"), A("1.1.1.1"), (Prefix3(IPv6Network("2001:db8:0:12::/64"), 0, 10),)
            ),
            Scope.AREA,
        ),
        (NETWORK3_LSA, Network3Lsa(0x33, (A("1.1.1.1"), A("2.2.2.2"))), Scope.AREA),
    ],
)
def test_v3_bodies(data: bytes, body: object, scope: Scope) -> None:
    lsa, end = decode_lsa(data, 0, 3)
    assert end == len(data)
    assert lsa.body == body
    assert lsa.checksum_ok
    assert lsa.header.scope is scope and lsa.header.version == 3 and lsa.header.options == 0
    assert encode_lsa(lsa) == data


def test_fletcher_checksum_matches_the_routers() -> None:
    for data in (ROUTER_LSA, NETWORK_LSA, EXTERNAL_LSA, NSSA_LSA, ROUTER3_LSA, LINK_LSA, INTRA_AREA_PREFIX_LSA):
        assert fletcher_ok(data)
        assert fletcher_checksum(data) == int.from_bytes(data[16:18], "big")
        # the age is outside the checksum: changing it keeps the LSA valid
        assert fletcher_ok(b"\x0e\x10" + data[2:])


def test_bad_checksum_is_flagged_not_raised() -> None:
    broken = bytearray(ROUTER_LSA)
    broken[30] ^= 0x01  # a bit in the first link's mask
    lsa, _ = decode_lsa(bytes(broken))
    assert not lsa.checksum_ok and not lsa.installable
    assert isinstance(lsa.body, RouterLsa)  # still decoded, for display


def test_zero_checksum_is_not_valid() -> None:
    assert not fletcher_ok(ROUTER_LSA[:16] + b"\x00\x00" + ROUTER_LSA[18:])


def test_body_error_keeps_the_lsa_framed_with_location() -> None:
    data = bytearray(ROUTER_LSA)
    data[22:24] = (3).to_bytes(2, "big")  # claims 3 links, only 2 fit
    lsa, end = decode_lsa(b"\xff" * 8 + bytes(data), 8)
    assert end == 8 + len(data)
    assert isinstance(lsa.body, RawLsa) and lsa.body.data == bytes(data[20:])
    assert lsa.problem is not None and lsa.problem.kind == "ospf lsa truncated"
    assert lsa.problem.offset == 8 + 20 + 4 + 2 * 12  # where the third link would start


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (ROUTER_LSA[:19], "ospf lsa header truncated"),
        (ROUTER_LSA[:18] + b"\x00\x13" + ROUTER_LSA[20:], "ospf lsa length"),  # length 19 < 20
        (ROUTER_LSA[:40], "ospf lsa truncated"),  # length 48, 40 present
    ],
)
def test_framing_errors_raise_decode_error(data: bytes, kind: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_lsa(data)
    assert caught.value.error.kind == kind


def test_header_only() -> None:
    header = decode_lsa_header(ROUTER3_LSA, 0, 3)
    assert header.type == Lsa3Type.ROUTER and header.adv_router == A("1.1.1.1") and header.length == 24


def test_unknown_type_is_raw() -> None:
    lsa = seal_lsa(Lsa(LsaHeader(1, 0, 6, A("1.1.1.1"), A("2.2.2.2"), 1, 0, 0), RawLsa(b"\x01\x02\x03\x04")))
    data = encode_lsa(lsa)
    decoded, _ = decode_lsa(data)
    assert decoded.body == RawLsa(b"\x01\x02\x03\x04") and decoded.checksum_ok


# --- opaque TLVs


def test_opaque_te_link_tlv() -> None:
    # RFC 3630 2.4.2 Link TLV with Link type (p2p), Link ID, TE metric sub-TLVs
    value = bytes.fromhex(
        "0001 0001 01000000"  # link type 1 (point-to-point), padded to 4 bytes
        "0002 0004 c0a80c02"  # link ID 192.168.12.2
        "0005 0004 00000007"  # TE metric 7
        "0006 0004 4cee6b28"  # max bandwidth 125,000,000 bytes/s (IEEE float)
    )
    data = bytes.fromhex("0002") + len(value).to_bytes(2, "big") + value
    (link,) = decode_tlvs(data, 0, len(data), (1,))
    assert link.type == 2 and link.value == value
    assert [(t.type, t.decoded) for t in link.sub_tlvs] == [(1, 1), (2, A("192.168.12.2")), (5, 7), (6, 125e6)]
    assert encode_tlvs((link,)) == data


def test_opaque_bad_tlv_in_known_type_is_a_problem() -> None:
    header = LsaHeader(1, 0, LsaType.OPAQUE_AREA, A("1.0.0.0"), A("1.1.1.1"), 1, 0, 0)
    lsa = seal_lsa(Lsa(header, RawLsa(bytes.fromhex("0001 0008 01010101"))))  # TLV claims 8 bytes, 4 there
    decoded, _ = decode_lsa(encode_lsa(lsa))
    assert isinstance(decoded.body, RawLsa) and decoded.problem is not None
    assert decoded.problem.kind == "ospf tlv length" and decoded.problem.offset == 20


def test_opaque_unknown_type_not_tlvs_is_kept_as_data() -> None:
    header = LsaHeader(1, 0, LsaType.OPAQUE_AREA, A("200.0.0.1"), A("1.1.1.1"), 1, 0, 0)
    lsa = seal_lsa(Lsa(header, RawLsa(b"\x00\x01\x00\x09xyz")))
    decoded, _ = decode_lsa(encode_lsa(lsa))
    assert decoded.body == OpaqueLsa(200, 1, (), b"\x00\x01\x00\x09xyz") and decoded.problem is None
    assert encode_lsa(decoded) == encode_lsa(lsa)


# --- hypothesis: records -> bytes -> records, and arbitrary bytes


ipv4 = st.integers(0, 2**32 - 1).map(IPv4Address)
u8, u16, u24, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFF), st.integers(0, 2**32 - 1)
tos_metrics = st.lists(st.builds(TosMetric, u8, u16), max_size=2).map(tuple)


@st.composite
def prefixes3(draw: st.DrawFn, metric: bool = True) -> Prefix3:
    length = draw(st.integers(0, 128))
    address = draw(st.integers(0, 2**128 - 1)) >> (128 - length) << (128 - length) if length else 0
    return Prefix3(IPv6Network((address, length)), draw(u8), draw(u16) if metric else 0)


v2_bodies = st.one_of(
    st.tuples(
        st.just(LsaType.ROUTER),
        st.builds(
            RouterLsa, u8, st.lists(st.builds(RouterLink, ipv4, ipv4, u8, u16, tos_metrics), max_size=4).map(tuple)
        ),
    ),
    st.tuples(st.just(LsaType.NETWORK), st.builds(NetworkLsa, ipv4, st.lists(ipv4, max_size=4).map(tuple))),
    st.tuples(
        st.sampled_from([LsaType.SUMMARY_NETWORK, LsaType.SUMMARY_ASBR]),
        st.builds(SummaryLsa, ipv4, u24, st.lists(st.builds(TosMetric, u8, u24), max_size=2).map(tuple)),
    ),
    st.tuples(
        st.sampled_from([LsaType.AS_EXTERNAL, LsaType.NSSA_EXTERNAL]),
        st.builds(
            ExternalLsa,
            ipv4,
            st.booleans(),
            u24,
            ipv4,
            u32,
            st.lists(st.builds(ExternalTos, st.booleans(), st.integers(0, 0x7F), u24, ipv4, u32), max_size=2).map(
                tuple
            ),
        ),
    ),
)
v3_bodies = st.one_of(
    st.tuples(
        st.just(Lsa3Type.ROUTER),
        st.builds(
            Router3Lsa, u8, u24, st.lists(st.builds(Router3Link, u8, u16, u32, u32, ipv4), max_size=4).map(tuple)
        ),
    ),
    st.tuples(st.just(Lsa3Type.NETWORK), st.builds(Network3Lsa, u24, st.lists(ipv4, max_size=4).map(tuple))),
    st.tuples(st.just(Lsa3Type.INTER_AREA_PREFIX), st.builds(InterAreaPrefixLsa, u24, prefixes3())),
    st.tuples(st.just(Lsa3Type.INTER_AREA_ROUTER), st.builds(InterAreaRouterLsa, u24, u24, ipv4)),
    st.tuples(
        st.sampled_from([Lsa3Type.AS_EXTERNAL, Lsa3Type.NSSA]),
        st.integers(1, 0xFFFF).flatmap(
            lambda ref: st.builds(
                External3Lsa,
                st.booleans(),
                u24,
                prefixes3(metric=False),
                st.none() | st.integers(1, 2**128 - 1).map(IPv6Address),
                st.none() | u32,
                st.sampled_from([0, ref]),
                st.just(None),
            ).map(lambda b: b if b.referenced_type == 0 else External3Lsa(*_with_referenced_id(b)))
        ),
    ),
    st.tuples(
        st.just(Lsa3Type.LINK),
        st.builds(
            Link3Lsa, u8, u24, st.integers(0, 2**128 - 1).map(IPv6Address), st.lists(prefixes3(), max_size=3).map(tuple)
        ),
    ),
    st.tuples(
        st.just(Lsa3Type.INTRA_AREA_PREFIX),
        st.builds(IntraAreaPrefixLsa, u16, ipv4, ipv4, st.lists(prefixes3(), max_size=3).map(tuple)),
    ),
)


def _with_referenced_id(body: External3Lsa) -> tuple[object, ...]:
    return (body.e_bit, body.metric, body.prefix, body.forwarding, body.tag, body.referenced_type, A("9.9.9.9"))


def _lsa(version: int, kind: int, body: object, age: int, seq: int, ls_id: IPv4Address, adv: IPv4Address) -> Lsa:
    header = LsaHeader(age, 0x22 if version == 2 else 0, kind, ls_id, adv, seq, 0, 0, version)
    return seal_lsa(Lsa(header, body))  # type: ignore[arg-type]


@settings(max_examples=300)
@given(v2_bodies, u16, st.integers(-(2**31), 2**31 - 1), ipv4, ipv4)
def test_v2_round_trip(kind_body: tuple[int, object], age: int, seq: int, ls_id: IPv4Address, adv: IPv4Address) -> None:
    lsa = _lsa(2, *kind_body, age, seq, ls_id, adv)
    data = encode_lsa(lsa)
    decoded, end = decode_lsa(data)
    assert end == len(data) == lsa.header.length
    assert decoded == lsa and decoded.checksum_ok
    assert encode_lsa(decoded) == data


@settings(max_examples=300)
@given(v3_bodies, u16, st.integers(-(2**31), 2**31 - 1), ipv4, ipv4)
def test_v3_round_trip(kind_body: tuple[int, object], age: int, seq: int, ls_id: IPv4Address, adv: IPv4Address) -> None:
    lsa = _lsa(3, *kind_body, age, seq, ls_id, adv)
    data = encode_lsa(lsa)
    decoded, _ = decode_lsa(data, 0, 3)
    assert decoded == lsa and decoded.checksum_ok
    assert encode_lsa(decoded) == data


@settings(max_examples=200)
@given(
    st.sampled_from([LsaType.OPAQUE_LINK, LsaType.OPAQUE_AREA, LsaType.OPAQUE_AS]),
    st.sampled_from([1, 3, 4, 7, 8, 200]),
    u24,
    st.lists(st.tuples(u16, st.binary(max_size=24)), max_size=4),
)
def test_opaque_round_trip(kind: int, opaque_type: int, opaque_id: int, raw: list[tuple[int, bytes]]) -> None:
    body = OpaqueLsa(opaque_type, opaque_id, tuple(Tlv(t, v) for t, v in raw))
    lsa = _lsa(2, kind, body, 1, 1, A(opaque_type << 24 | opaque_id), A("1.1.1.1"))
    data = encode_lsa(lsa)
    decoded, _ = decode_lsa(data)
    assert isinstance(decoded.body, OpaqueLsa) and decoded.problem is None
    assert [(t.type, t.value) for t in decoded.body.tlvs] == raw
    assert encode_lsa(decoded) == data


@settings(max_examples=500)
@given(st.binary(max_size=200), st.sampled_from([2, 3]), st.integers(0, 8))
def test_arbitrary_bytes_raise_only_decode_error(data: bytes, version: int, offset: int) -> None:
    try:
        lsa, end = decode_lsa(data, offset, version)
    except DecodeError:
        return
    assert offset + 20 <= end <= len(data)
    assert isinstance(lsa, Lsa)


@settings(max_examples=300)
@given(
    st.sampled_from([ROUTER_LSA, NETWORK_LSA, EXTERNAL_LSA, ROUTER3_LSA, LINK_LSA, INTRA_AREA_PREFIX_LSA]), st.data()
)
def test_mutated_lsas_raise_only_decode_error(data: bytes, draw: st.DataObject) -> None:
    version = 3 if data[2:4] in (b"\x20\x01", b"\x00\x08", b"\x20\x09") else 2
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        mutated[draw.draw(st.integers(0, len(data) - 1))] = draw.draw(u8)
    with contextlib.suppress(DecodeError):
        decode_lsa(bytes(mutated), 0, version)
