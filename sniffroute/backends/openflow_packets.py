"""Packet-ins read and packet-outs packed with struct: the tunnel's per-frame path.

os-ken turns every packet-in into a message object, its match into field objects and the message into an event
handed to the app's thread; POX does the same with its ofp_packet_in and PacketIn events, and both build an
object per packet-out. At thousands of frames a second that is most of the controller's time, so the backends
read and pack those messages here, byte for byte what os-ken and POX read and write (tests compare them with
os-ken's codec, and the OpenFlow 1.0 packet-ins with POX's own unpacker when POX is there).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

OFP_VERSION_10, OFP_VERSION_13 = 1, 4
OFPT_PACKET_IN, OFPT_PACKET_OUT = 10, 13
OFPP_CONTROLLER, OFP_NO_BUFFER = 0xFFFFFFFD, 0xFFFFFFFF
OFPP10_NONE = 0xFFFF
OXM_OF_IN_PORT = 0x8000_0004  # class OPENFLOW_BASIC, field IN_PORT, no mask, 4 bytes
OFPMT_OXM = 1
_HEADER = struct.Struct("!BBHI")
_PACKET_IN_FIXED = struct.Struct("!BBHIIHBBQHH")  # header, buffer_id, total_len, reason, table, cookie, match head
_OXM_HEADER = struct.Struct("!I")
_PORT = struct.Struct("!I")
# header, buffer_id, in_port, actions_len, pad(6); then one output action: type, len, port, max_len, pad(6)
_PACKET_OUT_HEAD = struct.Struct("!BBHIIIH6xHHIH6x")
_OUTPUT_ACTION_LEN = 16
# OpenFlow 1.0: header, buffer_id, in_port, actions_len; one output action: type, len, port, max_len
_PACKET_OUT_10_HEAD = struct.Struct("!BBHIIHHHHHH")
_OUTPUT_ACTION_10_LEN = 8
MATCH_OFFSET = 24  # where ofp_match starts in a packet-in
# OpenFlow 1.0 packet-in: header, buffer_id, total_len, in_port, reason, pad; the frame follows
_PACKET_IN_10 = struct.Struct("!BBHIIHHBx")


class PacketIn(NamedTuple):
    in_port: int
    frame: bytes
    total_len: int  # the frame's length on the wire: more than len(frame) when the switch cut it


def read_packet_in(buf: bytes | bytearray | memoryview) -> PacketIn | None:
    """The in_port, frame and total length of an OpenFlow 1.3 packet-in; None when `buf` is not one that reads
    cleanly (the caller then leaves it to os-ken, which reports what is wrong)."""
    if len(buf) < _PACKET_IN_FIXED.size:
        return None
    version, kind, length, _, _, total_len, _, _, _, match_type, match_len = _PACKET_IN_FIXED.unpack_from(buf)
    if version != OFP_VERSION_13 or kind != OFPT_PACKET_IN or match_type != OFPMT_OXM or length > len(buf):
        return None
    match_end = MATCH_OFFSET + match_len
    data_start = MATCH_OFFSET + (match_len + 7) // 8 * 8 + 2  # the match padded to 8 bytes, then 2 bytes of pad
    if match_len < 4 or data_start > length:
        return None
    in_port = None
    offset = MATCH_OFFSET + 4
    while offset + 4 <= match_end:
        (header,) = _OXM_HEADER.unpack_from(buf, offset)
        if header == OXM_OF_IN_PORT and offset + 8 <= match_end:
            (in_port,) = _PORT.unpack_from(buf, offset + 4)
            break
        offset += 4 + (header & 0xFF)
    if in_port is None:
        return None
    frame = bytes(buf[data_start : min(length, data_start + total_len)])
    return PacketIn(in_port, frame, total_len)


def read_packet_in_10(buf: bytes, offset: int = 0) -> PacketIn | None:
    """The in_port, frame and total length of the OpenFlow 1.0 packet-in at `offset` in `buf`; None when there is
    none that reads cleanly there (the caller then leaves it to POX's own unpacker)."""
    if len(buf) - offset < _PACKET_IN_10.size:
        return None
    version, kind, length, _, _, total_len, in_port, _ = _PACKET_IN_10.unpack_from(buf, offset)
    if version != OFP_VERSION_10 or kind != OFPT_PACKET_IN or not _PACKET_IN_10.size <= length <= len(buf) - offset:
        return None
    return PacketIn(in_port, buf[offset + _PACKET_IN_10.size : offset + length], total_len)


def pack_packet_out(port: int, frame: bytes, xid: int = 0) -> bytes:
    """A packet-out of `frame` through switch port `port`: no buffer, in_port CONTROLLER, whole frame."""
    length = _PACKET_OUT_HEAD.size + len(frame)
    head = _PACKET_OUT_HEAD.pack(
        OFP_VERSION_13, OFPT_PACKET_OUT, length, xid, OFP_NO_BUFFER, OFPP_CONTROLLER, _OUTPUT_ACTION_LEN,
        0, _OUTPUT_ACTION_LEN, port, 0xFFFF,
    )  # fmt: skip
    return head + frame


def pack_packet_out_10(port: int, frame: bytes, xid: int = 0) -> bytes:
    """The OpenFlow 1.0 packet-out of `frame` through switch port `port`: no buffer, in_port NONE."""
    length = _PACKET_OUT_10_HEAD.size + len(frame)
    head = _PACKET_OUT_10_HEAD.pack(
        OFP_VERSION_10, OFPT_PACKET_OUT, length, xid, OFP_NO_BUFFER, OFPP10_NONE, _OUTPUT_ACTION_10_LEN,
        0, _OUTPUT_ACTION_10_LEN, port, 0,
    )  # fmt: skip
    return head + frame
