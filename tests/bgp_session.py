"""Hand-built BGP sessions for tests: messages written byte by byte from RFC 4271/4724/6793, not by our encoders.

A `Connection` hands out parsers.frames.TcpSegment records with consistent sequence numbers, so tests can drive
the pipeline (or cut, reorder and duplicate the segments) without a capture file.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from parsers.frames import TcpSegment

MARKER = b"\xff" * 16
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def message(msg_type: int, body: bytes) -> bytes:
    return MARKER + struct.pack("!HB", 19 + len(body), msg_type) + body


def capability(code: int, value: bytes) -> bytes:
    return bytes((code, len(value))) + value


def open_message(asn: int, router_id: str, hold: int = 90, graceful_restart: int | None = None) -> bytes:
    caps = capability(1, b"\x00\x01\x00\x01")  # multiprotocol IPv4 unicast
    caps += capability(65, struct.pack("!I", asn))  # 4-octet AS
    if graceful_restart is not None:  # restart time, then IPv4 unicast with no forwarding-state flag
        caps += capability(64, struct.pack("!H", graceful_restart & 0x0FFF) + b"\x00\x01\x01\x00")
    params = bytes((2, len(caps))) + caps
    my_as = asn if asn < 65536 else 23456
    body = struct.pack("!BHH4sB", 4, my_as, hold, socket.inet_aton(router_id), len(params)) + params
    return message(1, body)


def keepalive() -> bytes:
    return message(4, b"")


def prefixes(*texts: str) -> bytes:
    out = b""
    for text in texts:
        address, length = text.split("/")
        bits = int(length)
        out += bytes((bits,)) + socket.inet_aton(address)[: (bits + 7) // 8]
    return out


def update(
    announce: tuple[str, ...] = (),
    withdraw: tuple[str, ...] = (),
    as_path: tuple[int, ...] = (65001,),
    next_hop: str = "192.0.2.1",
    med: int | None = None,
) -> bytes:
    attrs = b""
    if announce:
        segment = bytes((2, len(as_path))) + b"".join(struct.pack("!I", a) for a in as_path)
        attrs += b"\x40\x01\x01\x00"  # ORIGIN IGP
        attrs += b"\x40\x02" + bytes((len(segment),)) + segment  # AS_PATH, 4-octet ASNs
        attrs += b"\x40\x03\x04" + socket.inet_aton(next_hop)  # NEXT_HOP
        if med is not None:
            attrs += b"\x80\x04\x04" + struct.pack("!I", med)  # MULTI_EXIT_DISC
    withdrawn = prefixes(*withdraw)
    nlri = prefixes(*announce)
    return message(2, struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs + nlri)


def end_of_rib() -> bytes:
    return message(2, b"\x00\x00\x00\x00")


def notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    return message(3, bytes((code, subcode)) + data)


@dataclass
class Direction:
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    segments: list[TcpSegment] = field(default_factory=list)

    def segment(self, flags: int, payload: bytes = b"") -> TcpSegment:
        seg = TcpSegment(self.src, self.dst, self.sport, self.dport, self.seq, 0, flags, 65535, payload, False, ())
        self.seq = (self.seq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        self.segments.append(seg)
        return seg


@dataclass
class Connection:
    """A TCP connection from `client` to `server`:179; `segments` is everything sent, in order."""

    client: str
    server: str
    client_port: int = 40000
    client_isn: int = 1000
    server_isn: int = 5000
    segments: list[TcpSegment] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.up = Direction(self.client, self.server, self.client_port, 179, self.client_isn)
        self.down = Direction(self.server, self.client, 179, self.client_port, self.server_isn)

    def handshake(self) -> Connection:
        self.segments += [self.up.segment(SYN), self.down.segment(SYN | ACK), self.up.segment(ACK)]
        return self

    def send(self, from_client: bool, *messages: bytes) -> Connection:
        side = self.up if from_client else self.down
        self.segments.append(side.segment(PSH | ACK, b"".join(messages)))
        return self

    def close(self, from_client: bool, flags: int = FIN | ACK) -> Connection:
        side = self.up if from_client else self.down
        self.segments.append(side.segment(flags))
        return self
