"""parsers.frames: link layers, VLANs, IPv4/IPv6 headers, TCP, tunnels, padding, never raising."""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers.capture import open_capture
from parsers.frames import LINK_DECODERS, IpDatagram, Skipped, TcpSegment, decode_frame

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BGP_CAPTURES = sorted((FIXTURES / "bgp").iterdir())
BGP_PORT = 179


def decoded(name: str) -> list[TcpSegment | IpDatagram | Skipped]:
    with open_capture(FIXTURES / name) as capture:
        return [decode_frame(f.linktype, f.data) for f in capture]


def bgp_segments(packets) -> list[TcpSegment]:
    return [p for p in packets if type(p) is TcpSegment and BGP_PORT in (p.sport, p.dport) and p.payload]


# --- real captures


@pytest.mark.parametrize("path", BGP_CAPTURES, ids=lambda p: p.name)
def test_every_bgp_fixture_gives_bgp_segments(path):
    packets = decoded(f"bgp/{path.name}")
    segments = bgp_segments(packets)
    assert segments
    # At least one segment starts with a BGP marker (others may continue a message).
    assert any(s.payload.startswith(b"\xff" * 16) for s in segments)


def test_tcp_fields_of_a_known_segment():
    # BGP_MD5.cap frame 1, as tshark shows it: 192.168.100.1:25820 -> 192.168.100.2:179, SYN,
    # raw seq 2672392074, ack 0, window 16384, no payload.
    first = decoded("bgp/BGP_MD5.cap")[0]
    assert first == TcpSegment(
        src="192.168.100.1",
        dst="192.168.100.2",
        sport=25820,
        dport=179,
        seq=2672392074,
        ack=0,
        flags=0x02,
        window=16384,
        payload=b"",
        md5=True,
        vlans=(),
    )
    assert first.md5 and first.vlans == ()


def test_md5_option_is_seen_on_every_segment_of_the_md5_capture():
    packets = decoded("bgp/BGP_MD5.cap")
    assert len(packets) == 16 and all(type(p) is TcpSegment and p.md5 for p in packets)


def test_no_md5_where_there_is_none():
    packets = decoded("bgp/BGP_AS_set.cap")
    assert packets and not any(p.md5 for p in packets if type(p) is TcpSegment)


def test_vlan_fixture():
    (segment,) = decoded("bgp/bgp-encap.pcap")
    assert type(segment) is TcpSegment and segment.vlans == (14,) and segment.payload[:16] == b"\xff" * 16


@pytest.mark.parametrize(
    ("name", "family_colon"),
    [
        ("bgp/bgp-addpath.pcap", False),  # raw IP (LINKTYPE_RAW)
        ("bgp/bgp-enhanced-route-refresh-subtype.pcapng", True),  # Linux SLL, IPv6 transport
        ("bgp/bgp-extended-shutdown-msg.pcapng", False),  # Linux SLL, IPv4
        ("bgp/4-byte_AS_numbers_Full_Support.cap", False),  # Cisco HDLC
        ("bgp/bgp_as_confed_sequence.pcapng", False),  # Frame Relay (Cisco encapsulation)
    ],
)
def test_other_link_layers_decode(name, family_colon):
    packets = decoded(name)
    segments = bgp_segments(packets)
    assert len(segments) == len(packets)
    assert all((":" in s.src) == family_colon for s in segments)


def test_frame_relay_ospf():
    v2 = decoded("ospf/OSPF_NBMA_adjacencies.cap")
    assert len(v2) == 99 and all(type(p) is IpDatagram and p.proto == 89 and p.version == 4 for p in v2)
    assert (v2[0].src, v2[0].dst) == ("10.0.0.1", "10.0.0.2")
    v3 = decoded("ospf/OSPFv3_NBMA_adjacencies.pcap")
    assert len(v3) == 86 and all(type(p) is IpDatagram and p.proto == 89 and p.version == 6 for p in v3)


def test_ospf_in_gre_gives_the_inner_datagram():
    packets = decoded("ospf/ospf_over_gre_tunnel.cap")
    assert len(packets) == 63 and all(type(p) is IpDatagram and p.proto == 89 for p in packets)
    # Outer header 192.168.12.1 -> 192.168.23.3 (TTL 255); inner 192.168.13.1 -> 224.0.0.5 (TTL 1).
    assert (packets[0].src, packets[0].dst, packets[0].ttl) == ("192.168.13.1", "224.0.0.5", 1)
    assert packets[0].payload[0] == 2  # OSPF version 2


def test_ipv6_ah_is_stepped_over():
    packets = decoded("ospf/OSPFv3_with_AH.pcap")
    assert len(packets) == 61
    assert all(type(p) is IpDatagram and p.proto == 89 and p.version == 6 for p in packets)
    assert packets[0].src == "fe80::1" and packets[0].payload[0] == 3  # OSPF version 3


def test_hdlc_keepalives_and_cdp_are_skipped():
    packets = decoded("ospf/OSPF_Down-Bit.cap")
    kinds = Counter(p.reason if type(p) is Skipped else p.proto for p in packets)
    assert kinds[89] == 48
    assert sum(n for k, n in kinds.items() if isinstance(k, str) and k.startswith("not IP")) == 50


# --- hand-built frames

MACS = bytes.fromhex("020000000002020000000001")  # destination, source


def ipv4(payload: bytes, proto: int = 6, *, options: bytes = b"", frag: int = 0, total: int = -1) -> bytes:
    ihl = (20 + len(options)) // 4
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,  # version 4, header length in words
        0,  # DSCP/ECN
        total if total >= 0 else ihl * 4 + len(payload),  # total length
        0x1234,  # identification
        frag,  # flags + fragment offset
        64,  # TTL
        proto,  # protocol
        0,  # header checksum (not checked)
        bytes([192, 0, 2, 1]),  # source 192.0.2.1
        bytes([192, 0, 2, 2]),  # destination 192.0.2.2
    )
    return header + options + payload


def ipv6(payload: bytes, next_header: int = 6, *, extensions: bytes = b"") -> bytes:
    return (
        struct.pack(
            "!IHBB",
            0x60000000,  # version 6, traffic class 0, flow label 0
            len(extensions) + len(payload),  # payload length
            next_header,  # next header (first extension, or the upper layer)
            64,  # hop limit
        )
        + bytes.fromhex("20010db8000000000000000000000001")  # source 2001:db8::1
        + bytes.fromhex("20010db8000000000000000000000002")  # destination 2001:db8::2
        + extensions
        + payload
    )


def tcp(payload: bytes = b"", *, options: bytes = b"", flags: int = 0x18) -> bytes:
    offset = (20 + len(options)) // 4
    header = struct.pack(
        "!HHIIHHHH",
        40000,  # source port
        179,  # destination port
        1000,  # sequence number
        2000,  # acknowledgement number
        (offset << 12) | flags,  # data offset in words + flags (PSH|ACK)
        16384,  # window
        0,  # checksum (not checked)
        0,  # urgent pointer
    )
    return header + options + payload


def ether(ethertype: int, body: bytes) -> bytes:
    return MACS + struct.pack("!H", ethertype) + body


KEEPALIVE = b"\xff" * 16 + bytes([0, 19, 4])  # BGP marker, length 19, type KEEPALIVE


def test_ethernet_padding_never_becomes_payload():
    # IPv4 + TCP with no payload is 54 bytes; Ethernet pads it to the 60-byte minimum with 6 bytes.
    frame = ether(0x0800, ipv4(tcp(flags=0x10))) + b"\x00" * 6
    assert len(frame) == 60
    segment = decode_frame(1, frame)
    assert type(segment) is TcpSegment and segment.payload == b"" and segment.flags == 0x10
    # Same with a short payload and non-zero padding, through the general path (802.1Q tag).
    tagged = MACS + struct.pack("!HHH", 0x8100, 0x0064, 0x0800) + ipv4(tcp(b"ab")) + b"PADDING!"
    segment = decode_frame(1, tagged)
    assert type(segment) is TcpSegment and segment.payload == b"ab" and segment.vlans == (100,)


def test_ipv6_padding_is_cut_too():
    segment = decode_frame(1, ether(0x86DD, ipv6(tcp(KEEPALIVE))) + b"\xee" * 10)
    assert type(segment) is TcpSegment and segment.payload == KEEPALIVE
    assert (segment.src, segment.dst) == ("2001:db8::1", "2001:db8::2")


def test_qinq_tags_outermost_first():
    # S-tag 0x88a8 VLAN 200 (PCP 5 set above the id), C-tag 0x8100 VLAN 100, then IPv4.
    frame = MACS + struct.pack("!HHHHH", 0x88A8, 0xA0C8, 0x8100, 0x0064, 0x0800) + ipv4(tcp(KEEPALIVE))
    segment = decode_frame(1, frame)
    assert type(segment) is TcpSegment and segment.vlans == (200, 100) and segment.payload == KEEPALIVE


def test_ipv4_options_use_ihl():
    router_alert = bytes([0x94, 4, 0, 0])  # IP option 148 (router alert), length 4, value 0
    segment = decode_frame(1, ether(0x0800, ipv4(tcp(KEEPALIVE), options=router_alert)))
    assert type(segment) is TcpSegment and segment.payload == KEEPALIVE and segment.dport == 179


def test_ipv6_extension_headers_are_walked():
    hop_by_hop = bytes([60, 0]) + bytes([1, 4, 0, 0, 0, 0])  # next: dest options, length 0 (8 bytes), PadN
    dest_opts = bytes([44, 0]) + bytes([1, 4, 0, 0, 0, 0])  # next: fragment, 8 bytes
    atomic_fragment = bytes([6, 0, 0, 0]) + b"\x00\x00\x00\x01"  # next: TCP, offset 0, M=0, id 1
    packet = ipv6(tcp(KEEPALIVE), next_header=0, extensions=hop_by_hop + dest_opts + atomic_fragment)
    segment = decode_frame(1, ether(0x86DD, packet))
    assert type(segment) is TcpSegment and segment.payload == KEEPALIVE


def test_fragments_are_skipped():
    first_fragment = ipv4(tcp(KEEPALIVE), frag=0x2000)  # MF set, offset 0
    assert decode_frame(1, ether(0x0800, first_fragment)).reason.startswith("ip fragment")
    fragment_header = bytes([6, 0]) + struct.pack("!HI", 0x0001, 7)  # next TCP, offset 0, M=1, id 7
    v6 = ipv6(tcp(KEEPALIVE), next_header=44, extensions=fragment_header)
    assert decode_frame(1, ether(0x86DD, v6)).reason.startswith("ip fragment")


def test_tso_zero_total_length_takes_the_captured_bytes():
    segment = decode_frame(1, ether(0x0800, ipv4(tcp(KEEPALIVE), total=0)))
    assert type(segment) is TcpSegment and segment.payload == KEEPALIVE


def test_md5_option_parsing():
    md5 = bytes([19, 18]) + bytes(16) + bytes([1, 1])  # kind 19, length 18, digest, NOP NOP
    assert decode_frame(101, ipv4(tcp(options=md5))).md5
    timestamps = bytes([1, 1, 8, 10]) + bytes(8)  # NOP NOP, timestamps (kind 8, length 10)
    assert not decode_frame(101, ipv4(tcp(options=timestamps))).md5
    # The bytes 19, 18 inside another option's value are not an MD5 option.
    hidden = bytes([8, 10, 19, 18, 0, 0, 0, 0, 0, 0, 1, 1])  # timestamps carrying 0x13 0x12, NOP NOP
    assert not decode_frame(101, ipv4(tcp(options=hidden))).md5
    broken = bytes([2, 0, 19, 18])  # MSS with length 0: the walk stops safely
    assert not decode_frame(101, ipv4(tcp(options=broken))).md5


def test_linux_sll2_and_loopback():
    # SLL2: protocol 0x0800, reserved, ifindex 2, ARPHRD_ETHER 1, packet type 0 (to us), address length 6,
    # address (8 bytes).
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, bytes(8)) + ipv4(tcp(KEEPALIVE))
    assert decode_frame(276, sll2).payload == KEEPALIVE
    # Loopback: AF_INET 2 in little-endian host order, AF_INET6 24 (NetBSD/OpenBSD) in network order.
    assert decode_frame(0, struct.pack("<I", 2) + ipv4(tcp(KEEPALIVE))).payload == KEEPALIVE
    assert decode_frame(108, struct.pack(">I", 24) + ipv6(tcp(KEEPALIVE))).payload == KEEPALIVE


def test_frame_relay_rfc2427_and_hdlc():
    q922 = bytes([0x18, 0x41])  # DLCI 100, EA bit set on the second byte
    nlpid_ip = q922 + bytes([0x03, 0xCC]) + ipv4(tcp(KEEPALIVE))  # UI control, NLPID IPv4
    assert decode_frame(107, nlpid_ip).payload == KEEPALIVE
    nlpid_ip6 = q922 + bytes([0x03, 0x8E]) + ipv6(tcp(KEEPALIVE))  # UI control, NLPID IPv6
    assert decode_frame(107, nlpid_ip6).src == "2001:db8::1"
    snap = q922 + bytes([0x03, 0x00, 0x80, 0, 0, 0, 0x08, 0x00]) + ipv4(tcp(KEEPALIVE))  # pad, SNAP, PID IPv4
    assert decode_frame(107, snap).payload == KEEPALIVE
    lmi = q922 + bytes([0x03, 0x08, 0x00, 0x75])  # Q.933 signalling (LMI)
    assert decode_frame(107, lmi).reason.startswith("not IP")
    slarp = bytes([0x8F, 0x00, 0x80, 0x35]) + bytes(14)  # Cisco HDLC broadcast, control 0, SLARP
    assert "SLARP" in decode_frame(104, slarp).reason


def test_gre_with_key_and_mpls():
    gre = struct.pack("!HHI", 0x2000, 0x0800, 42) + ipv4(b"\x02\x01" + bytes(10), proto=89)  # K bit, key 42
    inner = decode_frame(101, ipv4(gre, proto=47))
    assert type(inner) is IpDatagram and inner.proto == 89 and inner.payload[:2] == b"\x02\x01"
    label = struct.pack("!I", (16 << 12) | 0x100 | 64)  # label 16, bottom of stack, TTL 64
    assert decode_frame(1, ether(0x8847, label + ipv4(tcp(KEEPALIVE)))).payload == KEEPALIVE


def test_nested_tunnels_are_bounded():
    packet = ipv4(tcp(KEEPALIVE))
    for _ in range(10):
        packet = ipv4(struct.pack("!HH", 0, 0x0800) + packet, proto=47)  # plain GRE around IPv4
    assert decode_frame(101, packet).reason.startswith("unsupported")


@pytest.mark.parametrize(
    ("linktype", "data", "reason"),
    [
        (147, b"\x00" * 40, "link type: 147"),
        (1, ether(0x0806, bytes(28)), "not IP: ethertype 0x0806 (ARP)"),
        (1, ether(0x88CC, bytes(20)), "not IP"),
        (1, b"\x00" * 10, "truncated: ethernet header"),
        (1, ether(0x0800, ipv4(tcp(KEEPALIVE))[:30]), "truncated: ipv4 datagram at offset 14"),
        (1, ether(0x0800, b"\x65" + bytes(39)), "malformed: ipv4 version 6 at offset 14"),
        (101, ipv4(bytes(12)), "truncated: tcp header at offset 20"),
        (101, b"\x95" + bytes(19), "not IP: version nibble 9"),
    ],
)
def test_skipped_reasons(linktype, data, reason):
    result = decode_frame(linktype, data)
    assert type(result) is Skipped and result.reason.startswith(reason)


def test_non_tcp_ip_payload():
    udp = struct.pack("!HHHH", 5000, 53, 8, 0)  # source port, destination port, length, checksum
    result = decode_frame(101, ipv4(udp, proto=17))
    assert result == IpDatagram("192.0.2.1", "192.0.2.2", 17, udp, 64, (), 4)


# --- fuzz

LINK_TYPES = sorted(LINK_DECODERS) + [147]
PREFIXES = [
    b"",
    MACS + b"\x08\x00",
    MACS + b"\x86\xdd",
    MACS + b"\x81\x00\x00\x0e\x08\x00",
    bytes([0x18, 0x41, 3]),
]


@given(st.sampled_from(LINK_TYPES), st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(linktype, data):
    assert type(decode_frame(linktype, data)) in (TcpSegment, IpDatagram, Skipped)


@given(
    st.sampled_from(LINK_TYPES),
    st.sampled_from(PREFIXES),
    st.sampled_from([0x45, 0x46, 0x4F, 0x60]),
    st.binary(max_size=120),
)
def test_plausible_headers_with_arbitrary_rest_never_raise(linktype, prefix, first, rest):
    # Start like a real frame so the fuzz reaches the IP, extension header, GRE and TCP option code.
    result = decode_frame(linktype, prefix + bytes([first]) + rest)
    assert type(result) in (TcpSegment, IpDatagram, Skipped)
    if type(result) is TcpSegment:
        assert len(result.payload) <= len(rest)
