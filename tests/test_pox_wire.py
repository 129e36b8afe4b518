"""The POX backend's per-frame path: the switch connection's reads (sniffroute.backends.pox_reader), OpenFlow 1.0
packet-ins read with struct, and packet-outs sent from several threads at once, against POX's own unpackers (the
oracle; those tests skip without POX_DIR) and through a real socket pair."""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sniffroute.backends.openflow_packets import PacketIn, read_packet_in_10
from sniffroute.backends.pox_reader import ConnectionReader

FRAME = bytes.fromhex("02570000 00fe0257 00000001 0800") + bytes(range(256)) * 6  # 1550 bytes
BARRIER_REPLY, ECHO_REQUEST, PACKET_IN = 19, 2, 10


def packet_in_10(in_port: int, data: bytes, total_len: int, xid: int = 7) -> bytes:
    """An OpenFlow 1.0 packet-in as the switch sends it, packed from the specification's layout."""
    body = struct.pack("!IHHBx", 0xFFFFFFFF, total_len, in_port, 0) + data
    return struct.pack("!BBHI", 1, PACKET_IN, 8 + len(body), xid) + body


def header_only(kind: int, xid: int) -> bytes:
    return struct.pack("!BBHI", 1, kind, 8, xid)


class Recorder:
    """A POX Connection's surface as of_01 has it: sock, buf, unpackers and handlers tables."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.seen: list[Any] = []  # what the handlers were given
        self.unpackers = [self._unpacker(kind) for kind in range(22)]
        self.handlers = [lambda con, msg: con.seen.append(msg)] * 22
        self.packet_ins: list[PacketIn] = []

    @staticmethod
    def _unpacker(kind: int) -> Any:
        def unpack(raw: bytes, offset: int) -> tuple[int, tuple[int, bytes]]:
            length = int.from_bytes(raw[offset + 2 : offset + 4], "big")
            return offset + length, (kind, bytes(raw[offset : offset + length]))

        return unpack


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, switch = socket.socketpair()
    ours.setblocking(False)
    yield ours, switch
    ours.close()
    switch.close()


def reader_for(connection: Recorder) -> ConnectionReader:
    reader = ConnectionReader(connection, lambda *args: connection.packet_ins.append(PacketIn(*args)))
    reader.install()
    return reader


def drain(connection: Any) -> None:
    """Call read until the socket holds nothing more (read returns True on EAGAIN)."""
    for _ in range(10_000):
        try:
            connection.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        assert connection.read() is True


def test_packet_ins_go_to_the_engine_and_the_rest_to_pox_in_order(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, switch = pair
    connection = Recorder(ours)
    reader_for(connection)
    cut = packet_in_10(2, FRAME[:128], len(FRAME))
    stream = packet_in_10(1, FRAME, len(FRAME)) + header_only(BARRIER_REPLY, 42) + cut + header_only(ECHO_REQUEST, 5)
    for start in range(0, len(stream), 700):  # messages split across reads
        switch.sendall(stream[start : start + 700])
        drain(connection)
    assert connection.packet_ins == [PacketIn(1, FRAME, len(FRAME)), PacketIn(2, FRAME[:128], len(FRAME))]
    assert connection.seen == [(BARRIER_REPLY, header_only(BARRIER_REPLY, 42)), (ECHO_REQUEST, header_only(2, 5))]


def test_what_pox_had_buffered_is_read_first(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, switch = pair
    connection = Recorder(ours)
    whole = packet_in_10(3, FRAME, len(FRAME))
    connection.buf = whole[:100]  # POX's own read stopped mid-message when the reader took over
    reader_for(connection)
    switch.sendall(whole[100:])
    drain(connection)
    assert connection.packet_ins == [PacketIn(3, FRAME, len(FRAME))]
    assert connection.buf == b""


def test_closed_or_foreign_connection_reads_false(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, switch = pair
    connection = Recorder(ours)
    reader_for(connection)
    switch.sendall(struct.pack("!BBHI", 4, PACKET_IN, 8, 1))  # OpenFlow 1.3 on a 1.0 connection
    assert connection.read() is False
    switch.close()
    closed = Recorder(ours)
    reader_for(closed)
    assert closed.read() is False


def test_failing_handler_or_unpacker_or_engine_skips_one_message(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, switch = pair
    connection = Recorder(ours)

    def broken(_raw: bytes, _offset: int) -> Any:
        raise ValueError("unreadable")

    connection.unpackers[BARRIER_REPLY] = broken
    failures = iter([RuntimeError("engine")])

    def engine(*args: Any) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        connection.packet_ins.append(PacketIn(*args))

    ConnectionReader(connection, engine).install()
    stream = (
        packet_in_10(1, FRAME, len(FRAME))
        + header_only(BARRIER_REPLY, 1)
        + header_only(30, 2)  # no unpacker for this type
        + packet_in_10(2, FRAME, len(FRAME))
        + header_only(ECHO_REQUEST, 3)
    )
    switch.sendall(stream)
    drain(connection)
    assert connection.packet_ins == [PacketIn(2, FRAME, len(FRAME))]
    assert connection.seen == [(ECHO_REQUEST, header_only(ECHO_REQUEST, 3))]


def test_packet_in_read_declines_what_is_not_one() -> None:
    buf = packet_in_10(1, FRAME[:40], 40)
    assert read_packet_in_10(buf[:17]) is None
    assert read_packet_in_10(buf[:-1]) is None  # its end has not arrived
    assert read_packet_in_10(bytes([1, BARRIER_REPLY]) + buf[2:]) is None
    assert read_packet_in_10(bytes([1, PACKET_IN, 0, 12]) + buf[4:]) is None  # length below the fixed part
    assert read_packet_in_10(b"xx" + buf, 2) == PacketIn(1, FRAME[:40], 40)


@given(st.binary(max_size=120))
def test_any_bytes_read_or_decline_without_raising(data: bytes) -> None:
    buf = packet_in_10(1, FRAME[:40], 40)
    for mutated in (data, buf[: len(data)], buf[:18] + data, buf[:4] + data):
        read = read_packet_in_10(mutated)
        assert read is None or isinstance(read.frame, bytes)


# -- against POX's own unpackers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pox_of() -> Any:
    text = os.environ.get("POX_DIR")
    if not text or not (Path(text) / "pox.py").is_file():
        pytest.skip("POX's own unpackers are the oracle here: set POX_DIR to a noxrepo/pox checkout (halosaur)")
    sys.path.insert(0, text)
    import pox.openflow.libopenflow_01 as of
    from pox.openflow.util import make_type_to_unpacker_table

    return SimpleNamespace(of=of, unpackers=make_type_to_unpacker_table())


def pox_reads(pox_of: Any, buf: bytes) -> PacketIn:
    _, message = pox_of.unpackers[PACKET_IN](buf, 0)
    return PacketIn(message.in_port, message.data, message.total_len)


@pytest.mark.parametrize(("port", "size", "total_len"), [(1, 1550, 1550), (0xFEFF, 128, 1550), (7, 0, 60)])
def test_packet_in_reads_as_pox_reads_it(pox_of: Any, port: int, size: int, total_len: int) -> None:
    message = pox_of.of.ofp_packet_in(in_port=port, data=FRAME[:size], total_len=total_len, reason=0, xid=99)
    buf = message.pack()
    assert buf == packet_in_10(port, FRAME[:size], total_len, xid=99)  # the hand-packed ones are POX's too
    assert read_packet_in_10(buf) == pox_reads(pox_of, buf)


@settings(max_examples=50, deadline=None)
@given(port=st.integers(0, 0xFFFF), data=st.binary(max_size=300), extra=st.integers(0, 2000))
def test_any_packet_in_reads_as_pox_reads_it(pox_of: Any, port: int, data: bytes, extra: int) -> None:
    buf = pox_of.of.ofp_packet_in(in_port=port, data=data, total_len=len(data) + extra, xid=1).pack()
    assert read_packet_in_10(buf) == pox_reads(pox_of, buf)


def test_other_messages_reach_pox_handlers_as_pox_unpacks_them(
    pox_of: Any, pair: tuple[socket.socket, socket.socket]
) -> None:
    of = pox_of.of
    ours, switch = pair
    connection = Recorder(ours)
    connection.unpackers = pox_of.unpackers
    reader_for(connection)
    stats = of.ofp_stats_reply(
        body=[of.ofp_flow_stats(match=of.ofp_match(dl_type=0x800, nw_dst="10.0.0.0/8"), priority=9, cookie=5)],
        xid=11,
    )
    messages = [
        of.ofp_barrier_reply(xid=3),
        of.ofp_error(type=of.OFPET_FLOW_MOD_FAILED, code=of.OFPFMFC_OVERLAP, xid=4, data=b"\x01" * 12),
        stats,
        of.ofp_echo_request(xid=8),
    ]
    stream = b"".join(m.pack() for m in messages)
    stream = packet_in_10(4, FRAME, len(FRAME)) + stream + packet_in_10(5, FRAME[:60], 60)
    switch.sendall(stream)
    drain(connection)
    assert connection.packet_ins == [PacketIn(4, FRAME, len(FRAME)), PacketIn(5, FRAME[:60], 60)]
    expected = [pox_of.unpackers[m.header_type](m.pack(), 0)[1] for m in messages]
    assert [type(m) for m in connection.seen] == [type(m) for m in expected]
    assert connection.seen == expected


def test_packet_outs_from_many_threads_reach_the_socket_whole_as_pox_reads_them(pox_of: Any) -> None:
    from sniffroute.backends.pox import PacketOuts
    from sniffroute.tunnel import PacketOut

    written: list[bytes] = []

    def send_in_two_writes(data: bytes) -> None:  # as a partial socket write followed by the rest would
        written.append(data[:20])
        threading.Event().wait(0.0001)  # let another thread in between the two halves, if it can
        written.append(data[20:])

    connection = SimpleNamespace(send=send_in_two_writes)
    outs = PacketOuts(connection)
    frames = {port: FRAME[: 60 + port] for port in range(1, 9)}
    threads = [
        threading.Thread(target=lambda p=port: [outs.send(PacketOut(p, frames[p])) for _ in range(50)])
        for port in frames
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stream, offset, seen = b"".join(written), 0, []
    while offset < len(stream):
        offset, message = pox_of.unpackers[13](stream, offset)  # OFPT_PACKET_OUT
        assert len(message.actions) == 1 and message.buffer_id is None
        seen.append((message.actions[0].port, message.data))
    assert sorted(seen) == sorted((port, frame) for port, frame in frames.items() for _ in range(50))
    assert connection.send is not send_in_two_writes  # POX's own sends now take the same lock
