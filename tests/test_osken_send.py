"""sniffroute.backends.osken_send: packet-outs written from the callers' threads, everything else through os-ken's
sender thread; on a real socket pair, every message whole and each thread's in order, many threads at once."""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

import pytest

pytest.importorskip("os_ken.base.app_manager")  # first: os-ken's controller module imports only after it

from os_ken.controller.controller import Datapath as OsKenDatapath  # noqa: E402
from os_ken.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER  # noqa: E402
from os_ken.lib import hub  # noqa: E402

from sniffroute.backends import osken_send  # noqa: E402

QUEUE = 16  # os-ken's send queue size


class Datapath:
    """The parts of os-ken's Datapath that sending uses, on one end of a socket pair."""

    def __init__(self) -> None:
        self.socket, self.peer = socket.socketpair()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # a big message takes several writes
        self.peer.settimeout(10)  # a message that never comes fails the test instead of hanging it
        self.send_q: Any = hub.Queue(QUEUE)
        self._send_q_sem = hub.BoundedSemaphore(QUEUE)
        self.state = MAIN_DISPATCHER
        self.address = ("test", 0)
        self.closed_write = False

    def _close_write(self) -> None:
        self.closed_write = True
        self.socket.shutdown(socket.SHUT_WR)

    send = OsKenDatapath.send  # os-ken's own queueing
    _send_loop = osken_send.send_loop


def message(sender: int, n: int, size: int = 40) -> bytes:
    body = struct.pack("!HI", sender, n).ljust(size - 4, b"x")
    return struct.pack("!I", size) + body


def read_messages(sock: socket.socket, count: int) -> list[tuple[int, int]]:
    got, buf = [], b""
    while len(got) < count:
        chunk = sock.recv(65536)
        assert chunk, "stream ended early"
        buf += chunk
        while len(buf) >= 4 and len(buf) >= struct.unpack_from("!I", buf)[0]:
            size = struct.unpack_from("!I", buf)[0]
            assert size >= 10 and buf[10:size] == b"x" * (size - 10), "a message arrived torn or interleaved"
            got.append(struct.unpack_from("!HI", buf, 4))
            buf = buf[size:]
    return got


def test_a_packet_out_is_written_by_the_callers_thread() -> None:
    datapath = Datapath()  # no sender thread running at all
    assert osken_send.send_now(datapath, message(1, 1))
    assert read_messages(datapath.peer, 1) == [(1, 1)]


def test_the_sender_thread_writes_the_queue_in_order_and_ends_on_a_closing_message() -> None:
    datapath = Datapath()
    for i in range(3):
        assert datapath.send(message(1, i))
    sender = threading.Thread(target=datapath._send_loop, daemon=True)
    sender.start()
    assert read_messages(datapath.peer, 3) == [(1, 0), (1, 1), (1, 2)]
    datapath.state = DEAD_DISPATCHER
    assert datapath.send(b"", close_socket=True)
    sender.join(5)
    assert not sender.is_alive() and datapath.send_q is None and datapath.closed_write
    assert osken_send.send_now(datapath, message(1, 9)) is False  # gone: refused, not lost silently


def test_packet_outs_and_queued_messages_from_many_threads_stay_whole_and_each_threads_in_order() -> None:
    datapath = Datapath()
    sender = threading.Thread(target=datapath._send_loop, daemon=True)
    sender.start()
    threads, per_thread = 8, 2000

    def burst(n: int) -> None:
        # Even threads write packet-outs themselves, odd ones queue (flow mods); now and then a message the
        # socket takes in many writes, which a write not under the lock would tear.
        write = (lambda buf: osken_send.send_now(datapath, buf)) if n % 2 == 0 else datapath.send
        for i in range(per_thread):
            assert write(message(n, i, 100_000 if i % 97 == 0 else 40))

    workers = [threading.Thread(target=burst, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    got = read_messages(datapath.peer, threads * per_thread)  # here: a torn message fails the test at once
    for worker in workers:
        worker.join(10)
    for n in range(threads):
        assert [i for s, i in got if s == n] == list(range(per_thread))


def test_a_going_connection_refuses_a_packet_out() -> None:
    datapath = Datapath()
    datapath.send_q = None  # os-ken's sender ended: the connection is going
    assert osken_send.send_now(datapath, message(1, 1)) is False
    datapath.peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        datapath.peer.recv(1)


def test_a_failed_write_ends_the_connection_instead_of_leaving_it_torn() -> None:
    datapath = Datapath()
    datapath.peer.close()  # the switch went away
    assert osken_send.send_now(datapath, message(1, 1) * 20_000) is False
    assert datapath.closed_write
