"""Packet-ins read and packet-outs packed by sniffroute.backends.openflow_packets, against os-ken's own serialisation
and parser (the oracle)."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("os_ken")

from os_ken.ofproto import ofproto_v1_0, ofproto_v1_0_parser, ofproto_v1_3, ofproto_v1_3_parser  # noqa: E402

from sniffroute.backends.openflow_packets import (  # noqa: E402
    PacketIn,
    pack_packet_out,
    pack_packet_out_10,
    read_packet_in,
)

DATAPATH = SimpleNamespace(ofproto=ofproto_v1_3, ofproto_parser=ofproto_v1_3_parser, id=1)
FRAME = bytes.fromhex("02570000 00fe0257 00000001 0800") + bytes(range(256)) * 6  # 1550 bytes


def osken_packet_in(match: ofproto_v1_3_parser.OFPMatch, data: bytes, total_len: int) -> bytes:
    """A packet-in as a switch sends it: os-ken can parse these but not serialise them, so it is packed by hand."""
    match_buf = bytearray()
    match.serialize(match_buf, 0)
    fixed = struct.pack(ofproto_v1_3.OFP_PACKET_IN_PACK_STR, 0xFFFFFFFF, total_len, 0, 0, 7)
    body = fixed + bytes(match_buf) + b"\0\0" + data
    length = 8 + len(body)
    return bytes([4, ofproto_v1_3.OFPT_PACKET_IN]) + length.to_bytes(2, "big") + (77).to_bytes(4, "big") + body


def osken_reads(buf: bytes) -> PacketIn:
    msg = ofproto_v1_3_parser.OFPPacketIn.parser(DATAPATH, 4, ofproto_v1_3.OFPT_PACKET_IN, len(buf), 77, buf)
    return PacketIn(msg.match["in_port"], bytes(msg.data), msg.total_len)


@pytest.mark.parametrize(
    "match",
    [
        ofproto_v1_3_parser.OFPMatch(in_port=3),
        ofproto_v1_3_parser.OFPMatch(in_port=0xFFFFFF00, metadata=5),
        ofproto_v1_3_parser.OFPMatch(tunnel_id=9, in_port=2, vlan_vid=0x1000 | 10),  # in_port not first
    ],
)
def test_packet_in_reads_as_osken_reads_it(match: ofproto_v1_3_parser.OFPMatch) -> None:
    buf = osken_packet_in(match, FRAME, len(FRAME))
    assert read_packet_in(buf) == osken_reads(buf)


def test_cut_packet_in_keeps_the_wire_length() -> None:
    buf = osken_packet_in(ofproto_v1_3_parser.OFPMatch(in_port=1), FRAME[:128], len(FRAME))
    read = read_packet_in(buf)
    assert read == osken_reads(buf)
    assert read is not None and read.total_len > len(read.frame)


def test_packet_in_without_in_port_or_of_another_kind_is_left_to_osken() -> None:
    no_port = osken_packet_in(ofproto_v1_3_parser.OFPMatch(metadata=1), FRAME, len(FRAME))
    assert read_packet_in(no_port) is None
    other = bytearray(osken_packet_in(ofproto_v1_3_parser.OFPMatch(in_port=1), FRAME, len(FRAME)))
    other[1] = ofproto_v1_3.OFPT_FLOW_REMOVED
    assert read_packet_in(bytes(other)) is None


@given(st.binary(max_size=200))
def test_any_bytes_read_or_decline_without_raising(data: bytes) -> None:
    buf = osken_packet_in(ofproto_v1_3_parser.OFPMatch(in_port=1), FRAME[:40], 40)
    for mutated in (data, buf[: len(data)], buf[:24] + data):
        read = read_packet_in(mutated)
        assert read is None or isinstance(read.frame, bytes)


@pytest.mark.parametrize("port", [1, 0xFFFFFF00])
def test_packet_out_is_byte_for_byte_osken(port: int) -> None:
    parser = ofproto_v1_3_parser
    message = parser.OFPPacketOut(
        DATAPATH,
        buffer_id=ofproto_v1_3.OFP_NO_BUFFER,
        in_port=ofproto_v1_3.OFPP_CONTROLLER,
        actions=[parser.OFPActionOutput(port, ofproto_v1_3.OFPCML_NO_BUFFER)],
        data=FRAME,
    )
    message.set_xid(0)
    message.serialize()
    assert pack_packet_out(port, FRAME) == bytes(message.buf)


@pytest.mark.parametrize("port", [1, 0xFF00 - 1])
def test_openflow_10_packet_out_is_byte_for_byte_osken(port: int) -> None:
    datapath = SimpleNamespace(ofproto=ofproto_v1_0, ofproto_parser=ofproto_v1_0_parser, id=1)
    parser = ofproto_v1_0_parser
    message = parser.OFPPacketOut(
        datapath,
        buffer_id=ofproto_v1_0.OFP_NO_BUFFER,
        in_port=ofproto_v1_0.OFPP_NONE,
        actions=[parser.OFPActionOutput(port, 0)],
        data=FRAME,
    )
    message.set_xid(0)
    message.serialize()
    assert pack_packet_out_10(port, FRAME) == bytes(message.buf)
