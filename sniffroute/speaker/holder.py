"""The asyncio edge of the session holder: sockets, TCP-MD5, listeners, reconnects. Protocol logic is `session`.

One listener per (local address, port) accepts connections from configured peers only (anything else is closed
at once); each active peer also has a connector that dials out, bound to its local address, and backs off
(exponential, bounded, jittered) after a failure or the end of a session.

Connection collisions (RFC 4271 6.8) are resolved rather than avoided: an active peer may also connect to us.
While a session with that peer is Established, a new connection from it is closed; otherwise it is accepted and
runs beside ours, and when both have the peer's OPEN the one opened by the higher BGP Identifier stays (the other
gets Cease/Connection Collision Resolution). A connector never dials while a connection to its peer is up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from parsers.bgp.constants import Afi, CeaseSubcode, Safi
from sniffroute.speaker.backoff import Backoff
from sniffroute.speaker.config import PeerConfig, PeerConfigError
from sniffroute.speaker.events import (
    ConnectFailed,
    PeerState,
    PeerStatus,
    SessionDown,
    SessionEstablished,
    SpeakerEvent,
    StateChanged,
)
from sniffroute.speaker.session import Close, Output, Send, Session, keeps_locally_initiated
from sniffroute.speaker.sockets import canonical, connecting_socket, describe_os_error, listening_socket

log = logging.getLogger(__name__)

READ_SIZE = 1 << 16
CONNECT_TIMEOUT = 5.0  # a SYN dropped for a TCP-MD5 mismatch never gets an answer: give up and back off
STOP_FLUSH_TIMEOUT = 2.0  # how long `stop` waits for the NOTIFICATIONs to leave
# Rank of each state when several connections to one peer exist: the peer shows its most advanced one.
_RANK = {
    PeerState.IDLE: 0,
    PeerState.CONNECT: 1,
    PeerState.ACTIVE: 1,
    PeerState.OPEN_SENT: 2,
    PeerState.OPEN_CONFIRM: 3,
    PeerState.ESTABLISHED: 4,
}

EventCallback = Callable[[SpeakerEvent], None]


@dataclass(eq=False)
class _Connection:
    session: Session
    writer: asyncio.StreamWriter
    reader: asyncio.StreamReader
    endpoints: tuple[str, int, str, int]
    task: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Peer:
    config: PeerConfig
    status: PeerStatus
    base_state: PeerState  # what the peer shows with no connection: CONNECT/IDLE (active), ACTIVE (passive)
    connections: list[_Connection] = field(default_factory=list)
    failures: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set while no connection exists
    connector: asyncio.Task[None] | None = None


class SessionHolder:
    """Keeps BGP sessions with `peers` up until `stop`.

    `on_event` is called on the holder's event loop with every `SpeakerEvent`; an exception it raises is logged
    and otherwise ignored. `StateChanged` events describe the peer as a whole (its most advanced connection).
    `status`, `state` and `peer_status` may be called from any thread; `request_refresh` too (from another thread
    it is queued onto the loop).
    """

    def __init__(
        self,
        peers: Iterable[PeerConfig],
        on_event: EventCallback | None = None,
        *,
        backoff: Backoff | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        rng: random.Random | None = None,
    ) -> None:
        self._on_event = on_event
        self._backoff = backoff or Backoff()
        self._connect_timeout = connect_timeout
        self._rng = rng or random.Random()
        self._peers: dict[str, _Peer] = {}
        for config in peers:
            if config.address in self._peers:
                raise PeerConfigError(f"address {config.address}: configured twice")
            base = PeerState.ACTIVE if config.passive else PeerState.IDLE
            self._peers[config.address] = _Peer(config, PeerStatus(config.address, base, time.time()), base)
        self._statuses: dict[str, PeerStatus] = {a: p.status for a, p in self._peers.items()}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._servers: list[asyncio.Server] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._done: asyncio.Event | None = None

    # -- public API ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Listen, connect, and keep sessions up; returns once `stop` has finished. Cancelling it closes every
        connection at once (with the NOTIFICATION, but without waiting for it to leave)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._done = asyncio.Event()
        for peer in self._peers.values():
            peer.idle.set()
        listeners: dict[tuple[str, int], list[_Peer]] = {}
        for peer in self._peers.values():
            listeners.setdefault((peer.config.local_address, peer.config.port), []).append(peer)
        for (address, port), peers in listeners.items():
            self._tasks.append(asyncio.create_task(self._listen(address, port, peers), name=f"bgp-listen-{address}"))
        for peer in self._peers.values():
            if not peer.config.passive:
                peer.connector = asyncio.create_task(
                    self._connect_loop(peer), name=f"bgp-connect-{peer.config.address}"
                )
                self._tasks.append(peer.connector)
        try:
            await self._done.wait()
        finally:
            self._shutdown("")

    async def stop(self, message: str = "") -> None:
        """Send Cease/Administrative Shutdown with `message` (RFC 9003) on every session, close everything, and
        make `run` return."""
        connections = self._shutdown(message)
        writers = [c.writer for c in connections]
        if writers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True), STOP_FLUSH_TIMEOUT
                )
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._done is not None:
            self._done.set()

    def stop_threadsafe(self, message: str = "") -> concurrent.futures.Future[None]:
        """`stop` from another thread; the returned future completes when it has."""
        if self._loop is None:
            raise RuntimeError("the holder is not running")
        return asyncio.run_coroutine_threadsafe(self.stop(message), self._loop)

    def request_refresh(self, peer_address: str, afi: int = Afi.IPV4, safi: int = Safi.UNICAST) -> bool:
        """Send a ROUTE-REFRESH for (afi, safi) on the Established session with `peer_address` (e.g. when the sniff
        pipeline lost bytes of that session). False when there is none, or the peer did not negotiate route
        refresh or that family. From another thread the request is queued and True means it was queued."""
        peer = self._peers.get(canonical(peer_address))
        if peer is None or self._loop is None:
            return False
        if threading.get_ident() != self._loop_thread:
            if self.state(peer.config.address) != PeerState.ESTABLISHED:
                return False
            self._loop.call_soon_threadsafe(self._request_refresh, peer, afi, safi)
            return True
        return self._request_refresh(peer, afi, safi)

    def state(self, peer_address: str) -> PeerState:
        return self.peer_status(peer_address).state

    def peer_status(self, peer_address: str) -> PeerStatus:
        """KeyError for an address that is not a configured peer."""
        return self._statuses[canonical(peer_address)]

    def status(self) -> tuple[PeerStatus, ...]:
        return tuple(self._statuses.values())

    @property
    def peers(self) -> tuple[PeerConfig, ...]:
        return tuple(p.config for p in self._peers.values())

    # -- connections -----------------------------------------------------------------------------------------

    async def _connect_loop(self, peer: _Peer) -> None:
        config = peer.config
        loop = asyncio.get_running_loop()
        while not self._stopping:
            await peer.idle.wait()
            if self._stopping:
                return
            peer.base_state = PeerState.CONNECT
            self._update(peer, attempts=peer.status.attempts + 1)
            sock: socket.socket | None = None
            try:
                sock = connecting_socket(config)
                await asyncio.wait_for(loop.sock_connect(sock, (config.address, config.port)), self._connect_timeout)
                reader, writer = await asyncio.open_connection(sock=sock)
            except (OSError, TimeoutError) as exc:
                failure: BaseException | None = exc
            except BaseException:
                if sock is not None:
                    sock.close()  # cancelled (stop) while connecting
                raise
            else:
                failure = None
            if failure is not None:
                exc = failure
                if sock is not None:
                    sock.close()
                reason = describe_os_error(exc, self._connect_timeout)
                delay = self._next_delay(peer)
                self._emit(ConnectFailed(config.address, reason, delay))
                peer.base_state = PeerState.IDLE
                self._update(peer, last_error=f"connect: {reason}")
                await asyncio.sleep(delay)
                continue
            if self._stopping:
                writer.close()
                return
            peer.base_state = PeerState.IDLE  # from now on the connection's own state shows
            connection = self._start_connection(peer, reader, writer, initiated_locally=True)
            if connection.task is not None:
                await asyncio.shield(connection.task)
            await peer.idle.wait()
            peer.base_state = PeerState.IDLE
            self._update(peer)
            await asyncio.sleep(self._next_delay(peer))

    def _next_delay(self, peer: _Peer) -> float:
        delay = self._backoff.delay(peer.failures, self._rng.random())
        peer.failures += 1
        return delay

    async def _listen(self, address: str, port: int, peers: list[_Peer]) -> None:
        failures = 0
        while not self._stopping:
            try:
                sock = listening_socket(address, port, (p.config for p in peers))
                server = await asyncio.start_server(self._accepted, sock=sock)
            except OSError as exc:
                delay = self._backoff.delay(failures, self._rng.random())
                failures += 1
                log.warning("cannot listen on %s port %d: %s; retrying in %.1f s", address, port, exc, delay)
                await asyncio.sleep(delay)
                continue
            self._servers.append(server)
            log.info("listening on %s port %d", address, port)
            return

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername, sockname = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
        peer = self._peers.get(canonical(peername[0])) if peername else None
        if peer is None or self._stopping or canonical(sockname[0]) != peer.config.local_address:
            log.info("closing a connection from %s to %s: not a configured peer of that address", peername, sockname)
            writer.close()
            return
        if any(c.session.state == PeerState.ESTABLISHED for c in peer.connections):
            # RFC 4271 6.8: a collision with an Established session closes the new connection.
            log.info("closing a second connection from %s: its session is Established", peer.config.address)
            writer.close()
            return
        self._start_connection(peer, reader, writer, initiated_locally=False)

    def _start_connection(
        self, peer: _Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, initiated_locally: bool
    ) -> _Connection:
        local = writer.get_extra_info("sockname")
        remote = writer.get_extra_info("peername")
        endpoints = (canonical(local[0]), local[1], canonical(remote[0]), remote[1])
        connection = _Connection(Session(peer.config, initiated_locally=initiated_locally), writer, reader, endpoints)
        peer.connections.append(connection)
        peer.idle.clear()
        connection.task = asyncio.create_task(self._drive(peer, connection), name=f"bgp-{peer.config.address}")
        return connection

    async def _drive(self, peer: _Peer, connection: _Connection) -> None:
        """Feed one connection's session with bytes and timer ticks until it ends."""
        loop = asyncio.get_running_loop()
        session = connection.session
        try:
            self._apply(peer, connection, session.start(loop.time()))
            while session.state != PeerState.IDLE:
                deadline = session.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    data = await asyncio.wait_for(connection.reader.read(READ_SIZE), timeout)
                except TimeoutError:
                    self._apply(peer, connection, session.handle_timer(loop.time()))
                    continue
                except OSError as exc:
                    self._apply(peer, connection, session.connection_lost(loop.time(), f"connection error: {exc}"))
                    break
                if not data:
                    self._apply(peer, connection, session.connection_lost(loop.time()))
                    break
                self._apply(peer, connection, session.receive_data(data, loop.time()))
        except Exception:  # a bug must not take the other sessions down with it
            log.exception("session with %s failed", peer.config.address)
            self._apply(peer, connection, session.connection_lost(loop.time(), "internal error"))
        finally:
            connection.writer.close()
            if connection in peer.connections:
                peer.connections.remove(connection)
            if not peer.connections:
                peer.idle.set()
            self._update(peer)

    def _apply(self, peer: _Peer, connection: _Connection, outputs: list[Output]) -> None:
        """Carry out a session's outputs in order: write, close, report."""
        for output in outputs:
            if isinstance(output, Send):
                if not connection.writer.is_closing():
                    connection.writer.write(output.data)
            elif isinstance(output, Close):
                connection.writer.close()
            elif isinstance(output, StateChanged):
                if output.new == PeerState.OPEN_CONFIRM and self._resolve_collision(peer, connection):
                    break  # this connection lost: what its session said after the OPEN no longer applies
            else:
                if isinstance(output, SessionEstablished):
                    peer.failures = 0
                    self._update(peer, established_count=peer.status.established_count + 1, last_error=None)
                    self._emit(output)
                elif isinstance(output, SessionDown):
                    log.info("session with %s down: %s", peer.config.address, output.reason)
                    self._emit(output)
                    self._update(peer, last_error=output.reason)
                else:
                    self._emit(output)
        self._update(peer)

    def _resolve_collision(self, peer: _Peer, connection: _Connection) -> bool:
        """RFC 4271 6.8, checked when a connection receives the peer's OPEN; True if that connection lost."""
        config = peer.config
        now = asyncio.get_running_loop().time()
        collision = CeaseSubcode.CONNECTION_COLLISION_RESOLUTION
        for other in list(peer.connections):
            if other is connection or other.session.state not in (PeerState.OPEN_CONFIRM, PeerState.ESTABLISHED):
                continue
            loser = connection
            if other.session.state == PeerState.OPEN_CONFIRM and connection.session.peer_open is not None:
                remote_id = connection.session.peer_open.router_id
                keep_ours = keeps_locally_initiated(config.router_id, config.local_as, remote_id, config.peer_as)
                loser = other if other.session.initiated_locally != keep_ours else connection
            log.info("connection collision with %s: closing %s", config.address, loser.endpoints)
            self._apply(peer, loser, loser.session.cease(collision, now))
            return loser is connection
        return False

    def _request_refresh(self, peer: _Peer, afi: int, safi: int) -> bool:
        loop = asyncio.get_running_loop()
        for connection in peer.connections:
            if connection.session.state == PeerState.ESTABLISHED:
                outputs = connection.session.request_refresh(afi, safi, loop.time())
                self._apply(peer, connection, outputs)
                if not outputs:
                    log.info(
                        "no ROUTE-REFRESH to %s: %s", peer.config.address, connection.session.refresh_refusal(afi, safi)
                    )
                return bool(outputs)
        return False

    def _shutdown(self, message: str) -> list[_Connection]:
        """Synchronous part of stopping: NOTIFICATION on every session, close listeners, cancel connectors."""
        first = not self._stopping
        self._stopping = True
        connections: list[_Connection] = []
        for peer in self._peers.values():
            peer.base_state = PeerState.IDLE
        if first and self._loop is not None:
            now = self._loop.time()
            for peer in self._peers.values():
                for connection in list(peer.connections):
                    self._apply(peer, connection, connection.session.stop(message, now))
                    connections.append(connection)
        for server in self._servers:
            server.close()
        for task in self._tasks:
            task.cancel()
        for peer in self._peers.values():
            peer.idle.set()
            self._update(peer)
        return connections

    # -- status and events -----------------------------------------------------------------------------------

    def _update(self, peer: _Peer, **changes: object) -> None:
        """Recompute the peer's snapshot (state from its most advanced connection) and report a state change."""
        primary = max(peer.connections, key=lambda c: _RANK[c.session.state], default=None)
        state = peer.base_state if primary is None else primary.session.state
        if primary is not None and primary.session.state == PeerState.IDLE:
            state = peer.base_state
        old = peer.status
        new = replace(
            old,
            state=state,
            since=old.since if state == old.state else time.time(),
            hold_time=primary.session.hold_time if primary is not None else None,
            peer_router_id=primary.session.peer_open.router_id
            if primary is not None and primary.session.peer_open is not None
            else None,
            connection=primary.endpoints if primary is not None else None,
            **changes,
        )
        if new != old:
            peer.status = new
            self._statuses[peer.config.address] = new
        if new.state != old.state:
            log.info("peer %s: %s -> %s", peer.config.address, old.state, new.state)
            self._emit(StateChanged(peer.config.address, old.state, new.state))

    def _emit(self, event: SpeakerEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:
            log.exception("event callback failed on %r", event)
