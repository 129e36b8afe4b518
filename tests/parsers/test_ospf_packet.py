"""parsers.ospf.packet and parsers.ospf.auth: the five packet types, both versions, checksums, authentication.

Packets are taken from the captures in tests/fixtures/ospf (field values as tshark 4.0.17 shows them). Digests
for the key tests are built here from the RFC text with hashlib/hmac, not with parsers.ospf.auth.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.errors import DecodeError
from parsers.ospf.auth import AuthStatus, AuthTrailer, AuthType, encode_trailer
from parsers.ospf.checksum import ospf2_checksum
from parsers.ospf.lsa import LsaHeader
from parsers.ospf.packet import (
    AT_BIT,
    ChecksumStatus,
    DatabaseDescription,
    DdFlag,
    Hello,
    LinkStateAck,
    LinkStateRequest,
    LinkStateUpdate,
    OspfPacket,
    PacketType,
    decode_packet,
    encode_packet,
    seal_packet,
)
from tests.parsers.test_ospf_lsa import NETWORK_LSA, ROUTER_LSA

A = IPv4Address

# ospf_simple_password_authentication.cap, frame 1: v2 Hello with simple password "cisco" and an LLS block.
HELLO_SIMPLE = bytes.fromhex(
    "02 01 002c"  # version 2, Hello, length 44
    "c0a86701"  # router ID 192.168.103.1
    "00000001"  # area 0.0.0.1
    "b9f8"  # checksum
    "0001"  # AuType 1: simple password
    "636973636f000000"  # "cisco"
    "fffffff8"  # network mask /29
    "000a 12 01"  # hello interval 10, options (E, L), priority 1
    "00000028"  # dead interval 40
    "0a000002 00000000"  # DR 10.0.0.2, BDR none
    "fff60003 00010004 00000001"  # LLS data block (RFC 5613), outside the OSPF length
)
# OSPF_LSA_types.cap, frame 7: DD with I, M, MS and no headers (and an LLS block)
DD_V2 = bytes.fromhex(
    "02 02 0020 05050505 00000014 874a 0000 0000000000000000"
    "05dc 52 07 00001492"  # MTU 1500, options, flags I|M|MS, sequence 5266
    "fff60003 00010004 00000001"
)
# OSPFv3_broadcast_adjacency.pcap, frame 1: v3 Hello from fe80::1 to ff02::5
HELLO_V3 = bytes.fromhex(
    "03 01 0024"  # version 3, Hello, length 36
    "01010101 00000001"  # router ID, area
    "fb86 00 00"  # checksum, instance 0, 0
    "00000005"  # interface ID 5
    "01 000013"  # priority 1, options V6 E R
    "000a 0028"  # hello 10, dead 40
    "00000000 00000000"  # DR, BDR
)
# ospf3_auth.pcapng: v3 Hello with the AT bit and an RFC 7166 authentication trailer (HMAC-SHA-256)
HELLO_V3_TRAILER = bytes.fromhex(
    "03 01 0028 0a0a0a02 00000000 07d2 00 00"
    "00000002 01 000413 000a 0028 0a0a0a01 0a0a0a02 0a0a0a01"  # options include AT (0x400)
    "0001 0030 0000 0001"  # auth type 1 (HMAC), AT length 48, reserved, SA ID 1
    "0000000052da4e0e"  # 64-bit cryptographic sequence number
    "ca4d7d5869a5da3c2a690edaa7329bee9d7f448c9f31fbe4a0e9b39c6da6cca1"  # 32-byte digest
)


def test_v2_hello_simple_password() -> None:
    packet = decode_packet(HELLO_SIMPLE)
    assert (packet.version, packet.type, packet.length) == (2, PacketType.HELLO, 44)
    assert packet.router_id == A("192.168.103.1") and packet.area_id == A("0.0.0.1")
    assert packet.body == Hello(10, 0x12, 1, 40, A("10.0.0.2"), A("0.0.0.0"), (), A("255.255.255.248"))
    assert packet.auth_type == AuthType.SIMPLE and packet.password == b"cisco"
    assert packet.auth_status is AuthStatus.SIMPLE
    assert packet.checksum_status is ChecksumStatus.OK and packet.problems == ()
    assert packet.trailer == HELLO_SIMPLE[44:]
    assert encode_packet(packet) == HELLO_SIMPLE


def test_v2_dd() -> None:
    packet = decode_packet(DD_V2)
    assert packet.body == DatabaseDescription(1500, 0x52, DdFlag.I | DdFlag.M | DdFlag.MS, 5266, ())
    assert encode_packet(packet) == DD_V2


def test_v3_hello_checksum_needs_addresses() -> None:
    without = decode_packet(HELLO_V3)
    assert without.checksum_status is ChecksumStatus.UNVERIFIED
    packet = decode_packet(HELLO_V3, src="fe80::1", dst="ff02::5")
    assert packet.checksum_status is ChecksumStatus.OK
    assert packet.body == Hello(10, 0x13, 1, 40, A("0.0.0.0"), A("0.0.0.0"), (), None, 5)
    wrong = decode_packet(HELLO_V3, src="fe80::2", dst="ff02::5")
    assert wrong.checksum_status is ChecksumStatus.BAD
    assert [p.kind for p in wrong.problems] == ["ospf packet checksum"] and wrong.problems[0].offset == 12
    assert encode_packet(packet) == HELLO_V3


def test_v3_authentication_trailer_recognised() -> None:
    packet = decode_packet(HELLO_V3_TRAILER, src="fe80::20c:29ff:fe9e:c1b2", dst="ff02::5")
    assert isinstance(packet.body, Hello) and packet.body.options & AT_BIT
    assert packet.auth_trailer == AuthTrailer(1, 1, 0x52DA4E0E, HELLO_V3_TRAILER[56:])
    assert packet.auth_status is AuthStatus.UNVERIFIED
    # the sender's checksum covers the whole IPv6 payload, trailer included (as the kernel computes it)
    assert packet.checksum_status is ChecksumStatus.OK
    assert encode_packet(packet) == HELLO_V3_TRAILER


def test_v3_trailer_verified_with_key() -> None:
    source = bytes.fromhex("fe800000000000000000000000000001")
    key = b"secret"
    head = bytes.fromhex("0001 0024 0000 0007 0000000000000001")  # HMAC, length 16 + 20, SA 7, sequence 1
    body = HELLO_V3[:21] + bytes.fromhex("000413") + HELLO_V3[24:]  # options with the AT bit
    # RFC 7166 4.5: HMAC-SHA-1 over source address, packet, trailer header and Apad; key zero-padded to 20
    apad = bytes.fromhex("878FE1F3") * 5
    digest = hmac.new(key.ljust(20, b"\0"), source + body + head + apad, hashlib.sha1).digest()
    payload = body + head + digest
    ok = decode_packet(payload, src="fe80::1", dst="ff02::5", keys={7: key})
    assert ok.auth_status is AuthStatus.VERIFIED
    bad = decode_packet(payload, src="fe80::1", dst="ff02::5", keys={7: b"other"})
    assert bad.auth_status is AuthStatus.FAILED and "ospf authentication" in [p.kind for p in bad.problems]
    assert decode_packet(payload, src="fe80::1", dst="ff02::5").auth_status is AuthStatus.UNVERIFIED
    assert encode_trailer(ok.auth_trailer) == head + digest  # type: ignore[arg-type]
    # without the AT bit the bytes after a Hello are not a trailer (they would be an LLS block)
    assert decode_packet(HELLO_V3 + head + digest).auth_trailer is None


def test_v3_trailer_on_packets_without_options() -> None:
    ack = bytes.fromhex("03 05 0010 01010101 00000001 0000 00 00")  # an empty LS Ack
    trailer = bytes.fromhex("0001 0024 0000 0002 0000000000000009") + bytes(20)
    packet = decode_packet(ack + trailer)
    assert packet.auth_trailer == AuthTrailer(1, 2, 9, bytes(20)) and packet.auth_status is AuthStatus.UNVERIFIED
    assert decode_packet(ack + trailer + b"\x00").auth_trailer is None  # the length must be exactly the trailer's


def _crypto_hello(key_id: int, digest_len: int) -> bytes:
    auth = bytes.fromhex("0000") + bytes((key_id, digest_len)) + (42).to_bytes(4, "big")
    header = bytes.fromhex("02 01 002c 01020304 00000000 0000 0002") + auth  # checksum 0 (RFC 2328 D.4.3)
    return header + HELLO_SIMPLE[24:44]


def test_v2_md5_verified_with_key() -> None:
    packet = _crypto_hello(5, 16)
    key = b"1234"
    digest = hashlib.md5(packet + key.ljust(16, b"\0")).digest()  # RFC 2328 D.4.3
    decoded = decode_packet(packet + digest, keys={5: key})
    assert decoded.auth_status is AuthStatus.VERIFIED and decoded.key_id == 5 and decoded.crypto_sequence == 42
    assert decoded.checksum_status is ChecksumStatus.NOT_APPLICABLE
    assert decode_packet(packet + digest, keys={5: b"12345"}).auth_status is AuthStatus.FAILED
    assert decode_packet(packet + digest, keys={6: key}).auth_status is AuthStatus.UNVERIFIED
    assert decode_packet(packet + digest[:10]).auth_status is AuthStatus.MALFORMED


@pytest.mark.parametrize(("length", "hash_name"), [(20, "sha1"), (32, "sha256"), (48, "sha384"), (64, "sha512")])
def test_v2_hmac_sha_verified_with_key(length: int, hash_name: str) -> None:
    packet = _crypto_hello(1, length)
    key = b"k" * (length + 3)  # longer than L: hashed first (RFC 5709 3.3)
    prepared = hashlib.new(hash_name, key).digest()
    apad = (bytes.fromhex("878FE1F3") * 16)[:length]
    digest = hmac.new(prepared, packet + apad, hash_name).digest()
    assert decode_packet(packet + digest, keys={1: key}).auth_status is AuthStatus.VERIFIED
    assert decode_packet(packet + digest, keys={1: b"k"}).auth_status is AuthStatus.FAILED


def test_bad_v2_checksum_reported_with_location() -> None:
    broken = bytearray(HELLO_SIMPLE)
    broken[12:14] = b"\x12\x34"
    packet = decode_packet(bytes(broken))
    assert packet.checksum_status is ChecksumStatus.BAD
    (problem,) = packet.problems
    assert problem.kind == "ospf packet checksum" and (problem.offset, problem.length) == (12, 2)
    assert "0x1234" in problem.detail and "0xb9f8" in problem.detail


def _with_checksum(packet: bytes) -> bytes:
    return packet[:12] + ospf2_checksum(packet).to_bytes(2, "big") + packet[14:]


def test_lsu_keeps_lsas_before_a_framing_error() -> None:
    body = (2).to_bytes(4, "big") + ROUTER_LSA + NETWORK_LSA[:30]  # second LSA cut short
    header = bytes.fromhex("02 04") + (24 + len(body)).to_bytes(2, "big") + bytes.fromhex("05050505 00000014")
    decoded = decode_packet(_with_checksum(header + bytes(12) + body))
    assert decoded.checksum_status is ChecksumStatus.OK
    assert isinstance(decoded.body, LinkStateUpdate) and len(decoded.body.lsas) == 1
    (problem,) = decoded.problems
    assert problem.kind == "ospf lsa truncated" and problem.offset == 24 + 4 + len(ROUTER_LSA)


def test_lsu_count_mismatch_reported() -> None:
    body = (3).to_bytes(4, "big") + ROUTER_LSA
    header = bytes.fromhex("02 04") + (24 + len(body)).to_bytes(2, "big") + bytes.fromhex("05050505 00000014")
    decoded = decode_packet(_with_checksum(header + bytes(12) + body))
    assert [p.kind for p in decoded.problems] == ["ospf lsa count"]


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", "ospf packet truncated"),
        (b"\x04" + HELLO_SIMPLE[1:], "ospf version"),
        (HELLO_SIMPLE[:20], "ospf packet truncated"),
        (HELLO_SIMPLE[:2] + b"\x00\x10" + HELLO_SIMPLE[4:], "ospf packet length"),  # 16 < 24
        (HELLO_SIMPLE[:2] + b"\x01\x00" + HELLO_SIMPLE[4:], "ospf packet length"),  # beyond the payload
        (HELLO_SIMPLE[:1] + b"\x09" + HELLO_SIMPLE[2:], "ospf packet type"),
        (HELLO_SIMPLE[:2] + b"\x00\x2e" + HELLO_SIMPLE[4:], "ospf packet length"),  # neighbours not whole IDs
    ],
)
def test_framing_errors(data: bytes, kind: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_packet(data)
    assert caught.value.error.kind == kind


# --- hypothesis


ipv4 = st.integers(0, 2**32 - 1).map(IPv4Address)
u8, u16, u24, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFF), st.integers(0, 2**32 - 1)
options3 = u24.map(lambda options: options & ~AT_BIT)  # the AT bit promises a trailer (tested apart)


def headers(version: int) -> st.SearchStrategy[LsaHeader]:
    kind = u16 if version == 3 else u8
    return st.builds(
        LsaHeader,
        u16,
        u8 if version == 2 else st.just(0),
        kind,
        ipv4,
        ipv4,
        st.integers(-(2**31), 2**31 - 1),
        u16,
        u16,
        st.just(version),
    )


def bodies(version: int) -> st.SearchStrategy[tuple[int, object]]:
    ids = st.lists(ipv4, max_size=4).map(tuple)
    if version == 2:
        hello = st.builds(Hello, u16, u8, u8, u32, ipv4, ipv4, ids, ipv4, st.just(None))
        dd = st.builds(DatabaseDescription, u16, u8, u8, u32, st.lists(headers(2), max_size=3).map(tuple))
    else:
        hello = st.builds(Hello, u16, options3, u8, u16, ipv4, ipv4, ids, st.just(None), u32)
        dd = st.builds(DatabaseDescription, u16, options3, u8, u32, st.lists(headers(3), max_size=3).map(tuple))
    lsr_kind = u16 if version == 3 else u32
    lsr = st.builds(LinkStateRequest, st.lists(st.tuples(lsr_kind, ipv4, ipv4), max_size=3).map(tuple))
    ack = st.builds(LinkStateAck, st.lists(headers(version), max_size=3).map(tuple))
    return st.one_of(
        st.tuples(st.just(PacketType.HELLO), hello),
        st.tuples(st.just(PacketType.DATABASE_DESCRIPTION), dd),
        st.tuples(st.just(PacketType.LINK_STATE_REQUEST), lsr),
        st.tuples(st.just(PacketType.LINK_STATE_ACK), ack),
    )


@settings(max_examples=300)
@given(st.sampled_from([2, 3]).flatmap(lambda v: st.tuples(st.just(v), bodies(v))), ipv4, ipv4, u8)
def test_round_trip(
    version_body: tuple[int, tuple[int, object]], rid: IPv4Address, area: IPv4Address, inst: int
) -> None:
    version, (kind, body) = version_body
    packet = OspfPacket(version, kind, 0, rid, area, 0, body, instance_id=inst if version == 3 else 0)  # type: ignore[arg-type]
    sealed = seal_packet(packet, src="fe80::1", dst="ff02::5")
    data = encode_packet(sealed)
    decoded = decode_packet(data, src="fe80::1", dst="ff02::5")
    assert decoded.checksum_status is ChecksumStatus.OK and decoded.problems == ()
    assert replace(decoded, checksum_status=ChecksumStatus.OK, auth_status=sealed.auth_status) == sealed
    assert encode_packet(decoded) == data


@settings(max_examples=500)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_raise_only_decode_error(data: bytes) -> None:
    for payload in (data, b"\x02" + data, b"\x03" + data[:1] + len(data).to_bytes(2, "big") + data[3:]):
        try:
            packet = decode_packet(payload, src="fe80::1", dst="ff02::5", keys={0: b"k", 1: b"k"})
        except DecodeError:
            continue
        assert packet.length <= len(payload)


@settings(max_examples=500)
@given(st.sampled_from([HELLO_SIMPLE, DD_V2, HELLO_V3, HELLO_V3_TRAILER]), st.data())
def test_mutated_packets_raise_only_decode_error(data: bytes, draw: st.DataObject) -> None:
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        mutated[draw.draw(st.integers(0, len(data) - 1))] = draw.draw(u8)
    try:
        decode_packet(bytes(mutated), src="fe80::1", dst="ff02::5", keys={1: b"x"})
    except DecodeError as failure:
        assert failure.error.offset >= 0
