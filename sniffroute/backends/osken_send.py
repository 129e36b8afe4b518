"""Packet-outs written from the TAP reader threads, one thread hand-off shorter than os-ken's sending.

os-ken queues every message for a sender thread of its own (`Datapath._send_loop`), so a tunnelled frame would
wake two threads on its way to the switch: the TAP reader that read it, then the sender. On a quiet machine that
second wake-up is the largest part of a ping's time in the controller, and much of its tail. `send_now` writes a
packet-out from the caller's thread instead. Everything else (flow mods, barriers, requests, replies) still goes
through os-ken's queue, in order. One lock per datapath, taken around every write by both, keeps messages whole.
A packet-out (a BGP keepalive, say) waits for the write under way, not behind a full table's queued flow mods;
packet-outs and the messages of other threads have no order between them to keep.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from os_ken.controller.handler import DEAD_DISPATCHER
from os_ken.lib import hub

log = logging.getLogger("sniffroute.osken")
_CREATE_LOCK = threading.Lock()


def _write_lock(datapath: Any) -> threading.Lock:
    lock = getattr(datapath, "_sniffroute_write_lock", None)
    if lock is None:
        with _CREATE_LOCK:  # the sender thread and the first packet-out may both get here first
            lock = getattr(datapath, "_sniffroute_write_lock", None)
            if lock is None:
                lock = datapath._sniffroute_write_lock = threading.Lock()
    return lock


def send_now(datapath: Any, buf: bytes) -> bool:
    """Write one message from the caller's thread. False when the connection is going (nothing is written)."""
    with _write_lock(datapath):
        if datapath.send_q is None or datapath.state == DEAD_DISPATCHER:
            return False
        try:
            datapath.socket.sendall(buf)
        except OSError as exc:  # a partial write leaves the stream unusable: end it, as os-ken's sender does
            log.debug("send to switch %s failed: %s", datapath.address, exc)
            datapath._close_write()
            return False
    return True


def send_loop(self: Any) -> None:
    """Stands in for os-ken's `Datapath._send_loop`: the same, but each write under the datapath's write lock."""
    lock = _write_lock(self)
    try:
        while self.state != DEAD_DISPATCHER:
            buf, close_socket = self.send_q.get()
            self._send_q_sem.release()
            with lock:
                self.socket.sendall(buf)
            if close_socket:
                break
    except TimeoutError:  # os-ken's SocketTimeout
        log.debug("socket timed out while sending to switch %s", self.address)
    except OSError as exc:
        log.debug("socket error while sending to switch %s: %s", self.address, exc)
    finally:
        queue, self.send_q = self.send_q, None  # no new messages; those waiting on the semaphore are let go
        try:
            while queue.get(block=False):
                self._send_q_sem.release()
        except hub.QueueEmpty:
            pass
        self._close_write()
