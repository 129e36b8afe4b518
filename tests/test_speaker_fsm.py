"""The session holder's pure state machine (sniffroute.speaker.session) with a fake clock, its framing, backoff
and TCP-MD5 packing; then the asyncio edge over loopback (no root needed).

Expected bytes are written out by hand from the RFCs, field by field, never produced by our encoders.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sniffroute.speaker import (
    PeerConfig,
    PeerConfigError,
    PeerState,
    RefreshReceived,
    RefreshSent,
    SessionDown,
    SessionEstablished,
    SessionHolder,
    StateChanged,
)
from sniffroute.speaker.backoff import Backoff
from sniffroute.speaker.md5 import md5sig
from sniffroute.speaker.session import (
    OPEN_SENT_HOLD_TIME,
    Close,
    Send,
    Session,
    keeps_locally_initiated,
)

MARKER = b"\xff" * 16


def header(length: int, msg_type: int) -> bytes:
    """RFC 4271 4.1: marker, 2-byte length (header included), 1-byte type."""
    return MARKER + length.to_bytes(2, "big") + bytes([msg_type])


KEEPALIVE = header(19, 4)

# Our OPEN for local AS 65000, router ID 192.0.2.1, hold 90, restart time 120 (RFC 4271 4.2, RFC 5492 4).
OUR_OPEN = (
    header(57, 1)
    + b"\x04"  # version 4
    + b"\xfd\xe8"  # My AS 65000
    + b"\x00\x5a"  # hold time 90
    + b"\xc0\x00\x02\x01"  # BGP Identifier 192.0.2.1
    + b"\x1c"  # optional parameters length 28
    + b"\x02\x1a"  # parameter type 2 (capabilities), length 26
    + b"\x01\x04\x00\x01\x00\x01"  # multiprotocol: AFI 1, reserved, SAFI 1 (RFC 4760 8)
    + b"\x01\x04\x00\x02\x00\x01"  # multiprotocol: AFI 2, reserved, SAFI 1
    + b"\x02\x00"  # route refresh (RFC 2918)
    + b"\x46\x00"  # enhanced route refresh, code 70 (RFC 7313)
    + b"\x41\x04\x00\x00\xfd\xe8"  # 4-octet AS 65000, code 65 (RFC 6793)
    + b"\x40\x02\x00\x78"  # graceful restart, code 64: flags 0, restart time 120, no families (RFC 4724 3)
)

# The same with local AS 4200000001: My AS is AS_TRANS (RFC 6793 4.1), the capability carries the real AS.
OUR_OPEN_AS4 = (
    header(57, 1)
    + b"\x04"
    + b"\x5b\xa0"  # My AS 23456 (AS_TRANS)
    + b"\x00\x5a"
    + b"\xc0\x00\x02\x01"
    + b"\x1c\x02\x1a"
    + b"\x01\x04\x00\x01\x00\x01\x01\x04\x00\x02\x00\x01\x02\x00\x46\x00"
    + b"\x41\x04\xfa\x56\xea\x01"  # 4-octet AS 4200000001
    + b"\x40\x02\x00\x78"
)


def peer_open(
    asn: int = 65001,
    hold: int = 9,
    router_id: bytes = b"\xc0\x00\x02\x02",
    caps: bytes | None = None,
    version: int = 4,
) -> bytes:
    """An OPEN from the peer: 2-byte AS, capabilities multiprotocol IPv4 + IPv6, route refresh, 4-octet AS."""
    if caps is None:
        caps = (
            b"\x01\x04\x00\x01\x00\x01"  # IPv4 unicast
            + b"\x01\x04\x00\x02\x00\x01"  # IPv6 unicast
            + b"\x02\x00"  # route refresh
            + b"\x41\x04"
            + asn.to_bytes(4, "big")  # 4-octet AS
        )
    params = (b"\x02" + bytes([len(caps)]) + caps) if caps else b""
    my_as = asn if asn <= 0xFFFF else 23456
    body = bytes([version]) + my_as.to_bytes(2, "big") + hold.to_bytes(2, "big") + router_id
    body += bytes([len(params)]) + params
    return header(19 + len(body), 1) + body


def notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    """RFC 4271 4.5: error code, error subcode, data."""
    return header(21 + len(data), 3) + bytes([code, subcode]) + data


def config(**changes: object) -> PeerConfig:
    values: dict[str, object] = {
        "address": "192.0.2.2",
        "peer_as": 65001,
        "local_as": 65000,
        "router_id": "192.0.2.1",
        "local_address": "192.0.2.1",
        "hold_time": 90,
    }
    values.update(changes)
    return PeerConfig(**values)  # type: ignore[arg-type]


def sent(outputs: list) -> list[bytes]:
    return [o.data for o in outputs if isinstance(o, Send)]


def closed(outputs: list) -> bool:
    return any(isinstance(o, Close) for o in outputs)


def down(outputs: list) -> SessionDown:
    (event,) = [o for o in outputs if isinstance(o, SessionDown)]
    return event


def started(cfg: PeerConfig | None = None, now: float = 0.0) -> tuple[Session, list]:
    session = Session(cfg or config(), initiated_locally=True)
    return session, session.start(now)


def established(cfg: PeerConfig | None = None, hold: int = 9) -> Session:
    session, _ = started(cfg)
    session.receive_data(peer_open(hold=hold), 1.0)
    session.receive_data(KEEPALIVE, 2.0)
    assert session.state == PeerState.ESTABLISHED
    return session


# -- OPEN and the happy path -----------------------------------------------------------------------------------


def test_open_is_byte_exact():
    session, outputs = started()
    assert sent(outputs) == [OUR_OPEN]
    assert session.state == PeerState.OPEN_SENT
    assert outputs[-1] == StateChanged("192.0.2.2", PeerState.CONNECT, PeerState.OPEN_SENT)


def test_open_with_a_four_octet_local_as():
    _, outputs = started(config(local_as=4200000001))
    assert sent(outputs) == [OUR_OPEN_AS4]


def test_established_after_open_and_keepalive():
    session, _ = started()
    outputs = session.receive_data(peer_open(hold=9), 1.0)
    assert sent(outputs) == [KEEPALIVE]
    assert session.state == PeerState.OPEN_CONFIRM
    assert session.hold_time == 9  # RFC 4271 4.2: the smaller of 90 and 9
    outputs = session.receive_data(KEEPALIVE, 2.0)
    assert session.state == PeerState.ESTABLISHED
    (event,) = [o for o in outputs if isinstance(o, SessionEstablished)]
    assert event.hold_time == 9 and event.peer_open.asn == 65001 and event.peer_open.router_id == "192.0.2.2"
    assert not sent(outputs)


def test_messages_split_anywhere_give_the_same_result():
    whole, _ = started()
    whole_out = whole.receive_data(peer_open() + KEEPALIVE, 1.0)
    split, _ = started()
    split_out: list = []
    for byte in peer_open() + KEEPALIVE:
        split_out += split.receive_data(bytes([byte]), 1.0)
    assert split.state == whole.state == PeerState.ESTABLISHED
    assert sent(split_out) == sent(whole_out) == [KEEPALIVE]


def test_updates_are_ignored_but_keep_the_session_alive():
    session = established(hold=9)
    update = header(23, 2) + b"\x00\x00\x00\x00"  # End-of-RIB: no withdrawn routes, no attributes
    assert session.receive_data(update, 8.0) == []
    assert session.next_deadline() is not None
    assert session.handle_timer(10.5)  # a keepalive is due, the hold timer is not (8 + 9 = 17)
    assert session.state == PeerState.ESTABLISHED


def test_four_octet_peer_as_is_read_from_the_capability():
    session, _ = started(config(peer_as=4200000002))
    session.receive_data(peer_open(asn=4200000002), 1.0)
    assert session.state == PeerState.OPEN_CONFIRM


# -- timers with a fake clock ----------------------------------------------------------------------------------


def test_keepalives_every_third_of_the_hold_time_and_hold_expiry():
    session = established(hold=9)  # OPEN at t=1, first KEEPALIVE received at t=2
    assert session.next_deadline() == pytest.approx(4.0)  # keepalive timer from t=1, interval 3
    assert session.handle_timer(3.9) == []  # early: nothing
    assert sent(session.handle_timer(4.0)) == [KEEPALIVE]
    assert session.next_deadline() == pytest.approx(7.0)
    assert sent(session.handle_timer(7.0)) == [KEEPALIVE]
    assert sent(session.handle_timer(10.0)) == [KEEPALIVE]
    assert session.next_deadline() == pytest.approx(11.0)  # hold timer: last message at t=2, hold 9
    outputs = session.handle_timer(11.0)
    assert sent(outputs) == [notification(4, 0)]  # RFC 4271 6.5: Hold Timer Expired
    assert closed(outputs) and session.state == PeerState.IDLE
    assert down(outputs).was_established and down(outputs).sent.code == 4
    assert session.next_deadline() is None


def test_any_message_restarts_the_hold_timer():
    session = established(hold=9)
    session.receive_data(KEEPALIVE, 10.0)
    assert session.handle_timer(11.0) and session.state == PeerState.ESTABLISHED
    session.handle_timer(18.9)
    assert session.state == PeerState.ESTABLISHED
    assert sent(session.handle_timer(19.0))[-1] == notification(4, 0)


def test_hold_time_zero_runs_no_timers():
    session, _ = started(config(hold_time=0))
    session.receive_data(peer_open(hold=9) + KEEPALIVE, 1.0)
    assert session.state == PeerState.ESTABLISHED and session.hold_time == 0
    assert session.next_deadline() is None
    assert session.handle_timer(10_000.0) == []


def test_open_sent_waits_four_minutes_for_the_peer_open():
    session, _ = started(now=100.0)
    assert session.next_deadline() == pytest.approx(100.0 + OPEN_SENT_HOLD_TIME)
    assert session.handle_timer(339.0) == []
    assert sent(session.handle_timer(340.0)) == [notification(4, 0)]


# -- OPEN errors (RFC 4271 6.2) --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (peer_open(asn=65009), notification(2, 2)),  # Bad Peer AS
        (peer_open(hold=2), notification(2, 6)),  # Unacceptable Hold Time
        (peer_open(hold=1), notification(2, 6)),
        (peer_open(version=3), notification(2, 1, b"\x00\x04")),  # Unsupported Version: we speak 4
        (peer_open(router_id=b"\x00\x00\x00\x00"), notification(2, 3)),  # Bad BGP Identifier
        (peer_open(caps=b"\x41\x02\x00\x01"), notification(2, 0)),  # 4-octet AS capability of length 2
    ],
    ids=["bad-peer-as", "hold-2", "hold-1", "version-3", "zero-id", "malformed-capability"],
)
def test_bad_open_is_answered_and_closed(message: bytes, expected: bytes):
    session, _ = started()
    outputs = session.receive_data(message, 1.0)
    assert sent(outputs) == [expected]
    assert closed(outputs) and session.state == PeerState.IDLE
    assert not down(outputs).was_established


def test_ibgp_peer_with_our_identifier_is_refused():
    session, _ = started(config(peer_as=65000))
    outputs = session.receive_data(peer_open(asn=65000, router_id=b"\xc0\x00\x02\x01"), 1.0)
    assert sent(outputs) == [notification(2, 3)]


def test_ebgp_peer_may_share_our_identifier():
    session, _ = started()
    session.receive_data(peer_open(router_id=b"\xc0\x00\x02\x01"), 1.0)
    assert session.state == PeerState.OPEN_CONFIRM  # RFC 6286 2.2 only forbids it within an AS


def test_open_whose_parameters_overrun_the_message():
    body = b"\x04\xfd\xe9\x00\x09\xc0\x00\x02\x02\x05\x02\x03\x02\x00"  # says 5 bytes of parameters, has 4
    session, _ = started()
    outputs = session.receive_data(header(19 + len(body), 1) + body, 1.0)
    assert sent(outputs) == [notification(1, 2)]  # RFC 4271 6.1: lengths disagree


# -- hostile peers: framing errors (RFC 4271 6.1) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("garbage", "expected"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", notification(1, 1)),  # Connection Not Synchronized
        (b"\xff" * 15 + b"\x00" + b"\x00\x13\x04", notification(1, 1)),  # marker with one bad byte
        (MARKER + b"\x10\x01\x04", notification(1, 2, b"\x10\x01")),  # length 4097 > 4096
        (MARKER + b"\xff\xff\x02", notification(1, 2, b"\xff\xff")),  # length 65535
        (MARKER + b"\x00\x12\x04", notification(1, 2, b"\x00\x12")),  # length 18 < 19
        (MARKER + b"\x00\x14\x04\x00", notification(1, 2, b"\x00\x14")),  # KEEPALIVE with a body
        (MARKER + b"\x00\x13\x01", notification(1, 2, b"\x00\x13")),  # OPEN of 19 bytes (< 29)
        (MARKER + b"\x00\x13\x09", notification(1, 3, b"\x09")),  # Bad Message Type
    ],
    ids=["http", "bad-marker", "oversized", "max-length", "too-short", "long-keepalive", "short-open", "type-9"],
)
def test_bad_header_is_answered_and_closed(garbage: bytes, expected: bytes):
    session, _ = started()
    outputs = session.receive_data(garbage, 1.0)
    assert sent(outputs) == [expected]
    assert closed(outputs) and session.state == PeerState.IDLE
    assert session.receive_data(peer_open(), 2.0) == []  # nothing after the end


def test_garbage_is_refused_without_waiting_for_a_whole_header():
    session, _ = started()
    assert sent(session.receive_data(b"\x00", 1.0)) == [notification(1, 1)]


@pytest.mark.parametrize(
    ("state_setup", "message", "expected"),
    [
        ("opensent", header(23, 2) + b"\x00\x00\x00\x00", notification(5, 1, b"\x02")),  # UPDATE in OpenSent
        ("opensent", KEEPALIVE, notification(5, 1, b"\x04")),
        ("openconfirm", peer_open(), notification(5, 2, b"\x01")),  # a second OPEN
        ("established", peer_open(), notification(5, 3, b"\x01")),
    ],
)
def test_unexpected_messages_are_fsm_errors(state_setup: str, message: bytes, expected: bytes):
    session, _ = started()
    if state_setup in ("openconfirm", "established"):
        session.receive_data(peer_open(), 1.0)
    if state_setup == "established":
        session.receive_data(KEEPALIVE, 1.0)
    assert session.state == state_setup
    assert sent(session.receive_data(message, 2.0)) == [expected]  # RFC 6608 3 subcodes
    assert session.state == PeerState.IDLE


def test_a_notification_is_not_answered():
    session = established()
    outputs = session.receive_data(notification(6, 2, b"\x05maint"), 3.0)
    assert sent(outputs) == [] and closed(outputs)
    event = down(outputs)
    assert event.received.shutdown_message == "maint" and event.was_established


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_arbitrary_bytes_never_escape(data: bytes, after_establishing: bool):
    session = established() if after_establishing else started()[0]
    outputs = session.receive_data(data, 3.0)
    for message in sent(outputs):
        # Whatever we answer is a KEEPALIVE or a NOTIFICATION that ends the session.
        assert message[:16] == MARKER and message[18] in (3, 4)
        if message[18] == 3:
            assert message[19] in (1, 2, 3, 5, 7) and closed(outputs)
    if closed(outputs):
        assert session.state == PeerState.IDLE and session.next_deadline() is None


# -- commands: shutdown and ROUTE-REFRESH ----------------------------------------------------------------------


def test_stop_sends_the_shutdown_communication():
    session = established()
    outputs = session.stop("maintenance", 5.0)
    # Cease (6) / Administrative Shutdown (2), length 11, "maintenance" (RFC 9003 2)
    assert sent(outputs) == [header(33, 3) + b"\x06\x02\x0b" + b"maintenance"]
    assert closed(outputs) and session.state == PeerState.IDLE


def test_stop_cuts_a_long_message_on_a_character_boundary():
    session = established()
    (message,) = sent(session.stop("é" * 200, 5.0))  # 400 bytes of UTF-8
    assert message[21] == 254  # 127 whole characters; the 128th would need bytes 255 and 256
    assert message[22:].decode() == "é" * 127


def test_stop_before_the_open_just_closes():
    session = Session(config(), initiated_locally=True)
    outputs = session.stop("bye", 0.0)
    assert sent(outputs) == [] and closed(outputs)


def test_route_refresh_on_request():
    session = established()
    outputs = session.request_refresh(2, 1, 5.0)
    # AFI 2, reserved (RFC 2918) / subtype 0 (RFC 7313), SAFI 1
    assert sent(outputs) == [header(23, 5) + b"\x00\x02\x00\x01"]
    assert RefreshSent("192.0.2.2", 2, 1) in outputs


def test_route_refresh_only_where_negotiated():
    not_yet, _ = started()
    assert not_yet.request_refresh(1, 1, 1.0) == []
    no_capability = Session(config(), initiated_locally=True)
    no_capability.start(0.0)
    no_capability.receive_data(peer_open(caps=b"\x41\x04\x00\x00\xfd\xe9") + KEEPALIVE, 1.0)
    assert no_capability.request_refresh(1, 1, 2.0) == []
    assert "route refresh" in no_capability.refresh_refusal(1, 1)
    ipv4_only = Session(config(), initiated_locally=True)
    ipv4_only.start(0.0)
    ipv4_only.receive_data(peer_open(caps=b"\x02\x00") + KEEPALIVE, 1.0)  # no multiprotocol: IPv4 unicast only
    assert sent(ipv4_only.request_refresh(1, 1, 2.0))
    assert ipv4_only.request_refresh(2, 1, 2.0) == []


def test_incoming_route_refresh_is_ignored():
    session = established()
    outputs = session.receive_data(header(23, 5) + b"\x00\x01\x00\x01", 3.0)
    assert outputs == [RefreshReceived("192.0.2.2", 1, 1, 0)]
    outputs = session.receive_data(header(24, 5) + b"\x00\x01\x01\x01\x00", 3.0)  # BoRR of 5 bytes
    assert sent(outputs) == [notification(7, 1)]  # RFC 7313 5: Invalid Message Length


# -- collision resolution, backoff, TCP-MD5, configuration -----------------------------------------------------


def test_collision_keeps_the_connection_of_the_higher_identifier():
    assert keeps_locally_initiated("192.0.2.9", 65000, "192.0.2.1", 65001)
    assert not keeps_locally_initiated("10.0.0.1", 65000, "192.0.2.1", 65001)
    assert not keeps_locally_initiated("192.0.2.1", 65000, "192.0.2.1", 65001)  # equal: the larger AS wins


def test_backoff_grows_is_bounded_and_jittered():
    backoff = Backoff(first=1.0, cap=30.0, jitter=0.25)
    assert backoff.delay(0, 0.0) == 1.0
    assert backoff.delay(3, 0.0) == 8.0
    assert backoff.delay(3, 0.999) == pytest.approx(8.0 * 0.75, rel=1e-3)
    assert backoff.delay(10, 0.0) == 30.0 and backoff.delay(10_000, 0.5) == 30.0 * 0.875
    with pytest.raises(ValueError):
        Backoff(first=0)


class _SockaddrStorage(ctypes.Structure):
    _fields_ = [("ss_family", ctypes.c_ushort), ("data", ctypes.c_char * 126)]
    _align_ = 8


class _TcpMd5sig(ctypes.Structure):
    """struct tcp_md5sig from linux/tcp.h, laid out by the C compiler's rules (ctypes), not by our struct format."""

    _fields_ = [
        ("tcpm_addr", ctypes.c_char * 128),
        ("tcpm_flags", ctypes.c_uint8),
        ("tcpm_prefixlen", ctypes.c_uint8),
        ("tcpm_keylen", ctypes.c_uint16),
        ("tcpm_ifindex", ctypes.c_int),
        ("tcpm_key", ctypes.c_uint8 * 80),
    ]


def test_md5sig_matches_the_kernel_struct():
    packed = md5sig("192.0.2.2", b"secret")
    assert len(packed) == ctypes.sizeof(_TcpMd5sig) == 216
    parsed = _TcpMd5sig.from_buffer_copy(packed)
    assert parsed.tcpm_keylen == 6 and bytes(parsed.tcpm_key[:6]) == b"secret"
    addr = packed[: _TcpMd5sig.tcpm_flags.offset]
    assert struct.unpack_from("=H", addr)[0] == socket.AF_INET
    assert addr[4:8] == socket.inet_pton(socket.AF_INET, "192.0.2.2")  # sockaddr_in: family, port, address
    packed6 = md5sig("2001:db8::2", b"k")
    assert struct.unpack_from("=H", packed6)[0] == socket.AF_INET6
    assert packed6[8:24] == socket.inet_pton(socket.AF_INET6, "2001:db8::2")  # after family, port, flowinfo
    assert _TcpMd5sig.from_buffer_copy(md5sig("192.0.2.2", None)).tcpm_keylen == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"address": "not-an-ip"}, "address"),
        ({"address": "2001:db8::2"}, "families differ"),
        ({"peer_as": 0}, "peer_as"),
        ({"local_as": 2**32}, "local_as"),
        ({"router_id": "0.0.0.0"}, "router_id"),
        ({"hold_time": 2}, "hold_time"),
        ({"md5_password": "x" * 81}, "md5_password"),
        ({"port": 0}, "port"),
    ],
)
def test_config_errors_name_the_field(changes: dict, field: str):
    with pytest.raises(PeerConfigError, match=field):
        config(**changes)


def test_config_spells_addresses_one_way():
    cfg = config(address="2001:DB8:0::2", local_address="2001:db8::1")
    assert cfg.address == "2001:db8::2"


# -- the asyncio edge over loopback ----------------------------------------------------------------------------

LOOPBACK_PORT = 17979


async def _wait(predicate, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def _pair(port: int, **a_changes: object) -> tuple[PeerConfig, PeerConfig]:
    a = config(address="127.0.0.2", local_address="127.0.0.1", port=port, hold_time=9, **a_changes)
    b = config(
        address="127.0.0.1",
        local_address="127.0.0.2",
        peer_as=65000,
        local_as=65001,
        router_id="192.0.2.2",
        port=port,
        passive=True,
    )
    return a, b


def test_two_holders_hold_a_session_and_part_with_a_message():
    async def scenario() -> list:
        events_b: list = []
        a_cfg, b_cfg = _pair(LOOPBACK_PORT)
        a = SessionHolder([a_cfg])
        b = SessionHolder([b_cfg], on_event=events_b.append)
        tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
        await _wait(lambda: a.state("127.0.0.2") == b.state("127.0.0.1") == PeerState.ESTABLISHED)
        status = a.peer_status("127.0.0.2")
        assert status.hold_time == 9 and status.peer_router_id == "192.0.2.2"
        assert status.connection is not None and status.connection[2:] == ("127.0.0.2", LOOPBACK_PORT)
        assert a.request_refresh("127.0.0.2", 2, 1)
        await _wait(lambda: any(isinstance(e, RefreshReceived) for e in events_b))
        await a.stop("going away")
        await _wait(lambda: any(isinstance(e, SessionDown) for e in events_b))
        await b.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 5.0)
        return events_b

    events = asyncio.run(scenario())
    (gone,) = [e for e in events if isinstance(e, SessionDown)]
    assert gone.received is not None and gone.received.shutdown_message == "going away"


def test_holder_answers_garbage_and_keeps_serving():
    async def scenario() -> bytes:
        _, b_cfg = _pair(LOOPBACK_PORT + 1)
        b = SessionHolder([b_cfg])
        task = asyncio.create_task(b.run())
        for _ in range(100):  # until the listener is up
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.2", LOOPBACK_PORT + 1, local_addr=("127.0.0.1", 0)
                )
                break
            except OSError:
                await asyncio.sleep(0.05)
        writer.write(b"\x00" * 40)
        answer = await asyncio.wait_for(reader.read(), 5.0)  # OPEN, then the NOTIFICATION, then EOF
        writer.close()
        assert b.state("127.0.0.1") in (PeerState.ACTIVE, PeerState.OPEN_SENT)
        await b.stop()
        await asyncio.wait_for(task, 5.0)
        return answer

    answer = asyncio.run(scenario())
    assert answer.endswith(notification(1, 1))


def test_md5_mismatch_never_connects_and_match_does():
    async def scenario(password_a: str) -> PeerState:
        a_cfg, b_cfg = _pair(LOOPBACK_PORT + 2, md5_password=password_a)
        b_cfg = PeerConfig(**{**_fields(b_cfg), "md5_password": "right"})
        a = SessionHolder([a_cfg], connect_timeout=1.0)
        b = SessionHolder([b_cfg])
        tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
        with contextlib.suppress(AssertionError):
            await _wait(lambda: a.state("127.0.0.2") == PeerState.ESTABLISHED, timeout=3.0)
        state = a.state("127.0.0.2")
        await a.stop()
        await b.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 5.0)
        return state

    assert asyncio.run(scenario("right")) == PeerState.ESTABLISHED
    assert asyncio.run(scenario("wrong")) != PeerState.ESTABLISHED


def _fields(cfg: PeerConfig) -> dict:
    return {name: getattr(cfg, name) for name in cfg.__dataclass_fields__}


def test_both_sides_active_settle_on_one_connection():
    """Each holder dials the other at once: the collision resolves to one TCP connection, the same on both sides,
    and neither flaps afterwards."""

    async def scenario() -> None:
        port = LOOPBACK_PORT + 3
        a_cfg, b_cfg = _pair(port)
        b = SessionHolder([PeerConfig(**{**_fields(b_cfg), "passive": False})])
        a = SessionHolder([a_cfg])
        tasks = [asyncio.create_task(b.run()), asyncio.create_task(a.run())]
        await _wait(lambda: a.state("127.0.0.2") == b.state("127.0.0.1") == PeerState.ESTABLISHED)
        await asyncio.sleep(1.0)
        a_status, b_status = a.peer_status("127.0.0.2"), b.peer_status("127.0.0.1")
        assert a_status.state == b_status.state == PeerState.ESTABLISHED
        assert a_status.established_count == b_status.established_count == 1
        la, pa, ra, rpa = a_status.connection
        assert (ra, rpa, la, pa) == b_status.connection
        await a.stop()
        await b.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 5.0)

    asyncio.run(scenario())


def test_a_second_connection_while_established_and_a_stranger_are_closed():
    async def scenario() -> None:
        port = LOOPBACK_PORT + 4
        a_cfg, b_cfg = _pair(port)
        a, b = SessionHolder([a_cfg]), SessionHolder([b_cfg])
        tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
        await _wait(lambda: a.state("127.0.0.2") == b.state("127.0.0.1") == PeerState.ESTABLISHED)
        for source in ("127.0.0.1", "127.0.0.5"):  # the peer again, then an address that is no peer
            reader, writer = await asyncio.open_connection("127.0.0.2", port, local_addr=(source, 0))
            assert await asyncio.wait_for(reader.read(), 5.0) == b""  # closed at once, no OPEN
            writer.close()
        assert b.peer_status("127.0.0.1").established_count == 1 and b.state("127.0.0.1") == PeerState.ESTABLISHED
        await a.stop()
        await b.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 5.0)

    asyncio.run(scenario())
