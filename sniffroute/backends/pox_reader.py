"""The switch connection's reads under POX: packet-ins straight to the engine, everything else to POX as before.

POX's `Connection.read` receives at most 2048 bytes per call, so a full-size packet-in takes about one turn of
POX's cooperative loop (a select on the hub thread and two thread wake-ups), and each one is unpacked into an
`ofp_packet_in` and raised as a PacketIn event on core.openflow and on the connection. `ConnectionReader` takes
the connection's `read` over (an attribute of that one Connection object: POX's own files stay as they are):
it takes what the socket holds, up to `READ_BYTES`, at once, reads the packet-ins with struct and hands them to
the engine; every other message goes through the connection's own unpacker and handler tables, as POX's read
would send it (flow stats, barrier replies, errors, port status, echo requests).

POX-free: the connection is duck-typed (`sock`, `buf`, `unpackers`, `handlers`, as in pox.openflow.of_01).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

from sniffroute.backends.openflow_packets import OFP_VERSION_10, OFPT_PACKET_IN, read_packet_in_10

log = logging.getLogger("sniffroute.pox")

READ_BYTES = 256 * 1024  # one recv: what the switch sent since the last turn of POX's loop
OFPT_HELLO = 0
_HEADER = struct.Struct("!BBH")  # version, type, length
HEADER_BYTES = 8
PacketInSink = Callable[[int, bytes, int], None]  # in_port, frame, total_len


class ConnectionReader:
    """Stands in for `read` of one POX OpenFlow 1.0 Connection; called on POX's thread by of_01's loop when the
    socket is readable. Returns False when the connection is to be closed, as POX's read does."""

    def __init__(self, connection: Any, packet_in: PacketInSink) -> None:
        self._connection = connection
        self._packet_in = packet_in
        self._rest = b""  # the start of a message whose end has not arrived yet

    def install(self) -> None:
        self._connection.read = self.read

    def read(self) -> bool:
        connection = self._connection
        try:
            chunk = connection.sock.recv(READ_BYTES)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        buf = self._rest + chunk if self._rest else chunk
        if connection.buf:  # what POX's own read had buffered when this reader took over
            buf = connection.buf + buf
            connection.buf = b""
        offset, end = 0, len(buf)
        while end - offset >= HEADER_BYTES:
            version, kind, length = _HEADER.unpack_from(buf, offset)
            if version != OFP_VERSION_10 and kind != OFPT_HELLO:
                log.warning("OpenFlow version 0x%02x (type %d) on the switch connection: closing it", version, kind)
                return False
            if length < HEADER_BYTES:
                log.warning("OpenFlow message of length %d on the switch connection: closing it", length)
                return False
            if end - offset < length:
                break
            if kind == OFPT_PACKET_IN:
                packet_in = read_packet_in_10(buf, offset)
                if packet_in is not None:
                    offset += length
                    try:
                        self._packet_in(*packet_in)
                    except Exception:  # this read carries the whole connection: report, never end it
                        log.exception("packet-in from port %d failed", packet_in.in_port)
                    continue
            self._to_pox(kind, buf[offset : offset + length])
            offset += length
        self._rest = buf[offset:]
        return True

    def _to_pox(self, kind: int, message: bytes) -> None:
        """One whole message through the connection's unpacker and handler for its type, as POX's read does."""
        connection = self._connection
        try:
            _, parsed = connection.unpackers[kind](message, 0)
        except Exception:  # the framing holds (the length is known): skip just this message
            log.exception("unreadable OpenFlow message of type %d (%d bytes) skipped", kind, len(message))
            return
        try:
            connection.handlers[kind](connection, parsed)
        except Exception:
            log.exception("handling OpenFlow message of type %d failed", kind)
