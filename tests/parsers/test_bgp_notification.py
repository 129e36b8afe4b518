"""parsers.bgp.notification: names, shutdown communication (RFC 9003), real NOTIFICATIONs, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers.bgp.constants import CeaseSubcode, NotificationCode
from parsers.bgp.notification import (
    ADMINISTRATIVE_RESET,
    MAX_SHUTDOWN_MESSAGE_LEN,
    Notification,
    code_name,
    decode_notification,
    encode_notification,
    shutdown_notification,
    subcode_name,
)
from parsers.errors import Action, DecodeError

# --- NOTIFICATION bodies from the fixtures (header stripped) ------------------------------------------------

# bgp-shutdown-communication.pcapng frame 1: Cease (6) / Administrative Shutdown (2), RFC 8203 communication.
SHUTDOWN = (
    bytes.fromhex(
        "06"  # error code 6, Cease
        "02"  # subcode 2, Administrative Shutdown
        "34"  # communication length 52
    )
    + b"This is a test of the shutdown communication system."
)
# Frame 2 of the same capture: the same text under Cease / Administrative Reset (4).
RESET = bytes.fromhex("0604" "34") + b"This is a test of the shutdown communication system."  # fmt: skip

# bgp-extended-shutdown-msg.pcapng: a 210-byte communication, which only RFC 9003 allows (RFC 8203: 128).
_TICKET = b"[TICKET-1-1438367390] software upgrade; Expected downtime for 2 hours;"
EXTENDED_SHUTDOWN = bytes.fromhex("0602" "d2") + _TICKET * 3  # Cease/Admin Shutdown, length 210  # fmt: skip

# swisscom_bgp.pcap frame 28: pmacct closing its collector session.
# Cease / Administrative Shutdown, communication length 38.
SWISSCOM_SHUTDOWN = bytes.fromhex("0602" "26") + b"pmacct received SIGINT - shutting down"  # fmt: skip

# bgp-4byte-asn.pcap frame 85: Cease / Other Configuration Change (6), no data.
OTHER_CONFIG_CHANGE = bytes.fromhex("0606")
# bgp-lu-multiple-labels.pcap frame 20: Cease / Administrative Reset, no data.
ADMIN_RESET_NO_DATA = bytes.fromhex("0604")

FIXTURES = [SHUTDOWN, RESET, EXTENDED_SHUTDOWN, SWISSCOM_SHUTDOWN, OTHER_CONFIG_CHANGE, ADMIN_RESET_NO_DATA]


@pytest.mark.parametrize("body", FIXTURES)
def test_fixture_notifications_round_trip(body):
    msg = decode_notification(body)
    assert encode_notification(msg) == body
    assert msg.problems == ()


def test_shutdown_communication():
    msg = decode_notification(SHUTDOWN)
    assert (msg.code, msg.subcode) == (NotificationCode.CEASE, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN)
    text = "This is a test of the shutdown communication system."
    assert msg.shutdown_message == text
    assert msg.describe() == f'Cease/Administrative Shutdown: "{text}"'


def test_administrative_reset_carries_a_communication_too():
    msg = decode_notification(RESET)
    assert msg.subcode_name == "Administrative Reset"
    assert msg.shutdown_message == "This is a test of the shutdown communication system."


def test_extended_shutdown_communication_of_210_bytes():
    msg = decode_notification(EXTENDED_SHUTDOWN)
    assert len(msg.shutdown_message) == 210
    assert msg.shutdown_message.startswith("[TICKET-1-1438367390] software upgrade")


def test_swisscom_shutdown():
    assert decode_notification(SWISSCOM_SHUTDOWN).shutdown_message == "pmacct received SIGINT - shutting down"


def test_cease_without_data():
    msg = decode_notification(OTHER_CONFIG_CHANGE)
    assert msg.describe() == "Cease/Other Configuration Change"
    assert msg.shutdown_message is None
    assert decode_notification(ADMIN_RESET_NO_DATA).shutdown_message is None


# --- names --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "subcode", "names"),
    [
        (1, 2, ("Message Header Error", "Bad Message Length")),
        (2, 0, ("OPEN Message Error", "Unspecific")),
        (2, 7, ("OPEN Message Error", "Unsupported Capability")),  # RFC 5492
        (2, 11, ("OPEN Message Error", "Role Mismatch")),  # RFC 9234
        (3, 11, ("UPDATE Message Error", "Malformed AS_PATH")),
        (4, 0, ("Hold Timer Expired", "Unspecific")),
        (5, 3, ("Finite State Machine Error", "Receive Unexpected Message in Established State")),
        (6, 1, ("Cease", "Maximum Number of Prefixes Reached")),
        (6, 9, ("Cease", "Hard Reset")),  # RFC 8538
        (6, 10, ("Cease", "BFD Down")),
        (7, 1, ("ROUTE-REFRESH Message Error", "Invalid Message Length")),  # RFC 7313
        (6, 42, ("Cease", "subcode 42")),
        (9, 1, ("code 9", "subcode 1")),
    ],
)
def test_names(code, subcode, names):
    msg = Notification(code, subcode)
    assert (msg.code_name, msg.subcode_name) == names
    assert (code_name(code), subcode_name(code, subcode)) == names


def test_describe_shows_other_data_in_hex():
    # OPEN Message Error / Unsupported Capability, data: the capability refused (code 69, length 0)
    msg = decode_notification(bytes.fromhex("0207" "4500"))  # fmt: skip
    assert msg.describe() == "OPEN Message Error/Unsupported Capability (data 4500)"
    assert msg.shutdown_message is None and msg.problems == ()


# --- shutdown communications that cannot be read: None plus a problem, never an exception -------------------


def test_length_running_past_the_data():
    # Cease / Admin Shutdown, communication length 10, 3 bytes present
    msg = decode_notification(bytes.fromhex("0602" "0a" "616263"))  # fmt: skip
    assert msg.shutdown_message is None
    (problem,) = msg.problems
    assert (problem.offset, problem.length, problem.action) == (2, 1, Action.NONE)
    assert "runs past" in problem.kind
    assert msg.describe() == "Cease/Administrative Shutdown (data 0a616263)"


def test_invalid_utf8():
    # Cease / Admin Reset, length 3: 'a', 0xff (never valid in UTF-8), 'b'
    msg = decode_notification(bytes.fromhex("0604" "03" "61ff62"))  # fmt: skip
    assert msg.shutdown_message is None
    (problem,) = msg.problems
    assert (problem.offset, problem.length) == (4, 1)  # the 0xff byte: body offset 2 + 1 + 1
    assert "UTF-8" in problem.kind


def test_bytes_after_the_communication_are_reported_and_kept():
    body = bytes.fromhex("0602" "02" "6869" "0000")  # length 2 "hi", then 2 stray bytes  # fmt: skip
    msg = decode_notification(body)
    assert msg.shutdown_message == "hi"
    (problem,) = msg.problems
    assert (problem.offset, problem.length) == (5, 2)
    assert encode_notification(msg) == body


def test_zero_length_means_no_communication():
    msg = decode_notification(bytes.fromhex("0602" "00"))  # fmt: skip
    assert msg.shutdown_message is None and msg.problems == ()


def test_other_subcodes_never_read_a_communication():
    msg = decode_notification(bytes.fromhex("0603" "02" "6869"))  # Cease / Peer De-configured  # fmt: skip
    assert msg.shutdown_message is None and msg.problems == ()


# --- building and errors ------------------------------------------------------------------------------------


def test_shutdown_notification_builds_rfc_9003_data():
    msg = shutdown_notification("maintenance ✓")
    assert encode_notification(msg) == bytes.fromhex("0602" "0f") + "maintenance ✓".encode()  # fmt: skip
    assert decode_notification(encode_notification(msg)) == msg
    assert shutdown_notification("bye", ADMINISTRATIVE_RESET).subcode == 4


def test_shutdown_notification_limits():
    assert len(shutdown_notification("x" * MAX_SHUTDOWN_MESSAGE_LEN).data) == 256
    with pytest.raises(ValueError):
        shutdown_notification("x" * (MAX_SHUTDOWN_MESSAGE_LEN + 1))
    with pytest.raises(ValueError):
        shutdown_notification("é" * 128)  # 256 bytes in UTF-8
    with pytest.raises(ValueError):
        shutdown_notification("bye", CeaseSubcode.HARD_RESET)


@pytest.mark.parametrize("body", [b"", b"\x06"])
def test_shorter_than_code_and_subcode_is_bad_message_length(body):
    with pytest.raises(DecodeError) as info:
        decode_notification(body)
    err = info.value.error
    assert (err.code, err.subcode, err.offset, err.length, err.action) == (
        1,
        2,
        0,
        len(body),
        Action.SESSION_RESET,
    )


@pytest.mark.parametrize("msg", [Notification(256, 0), Notification(6, -1)])
def test_encoder_refuses_out_of_range(msg):
    with pytest.raises(ValueError):
        encode_notification(msg)


# --- generated ----------------------------------------------------------------------------------------------

u8 = st.integers(0, 0xFF)


@given(st.builds(Notification, u8, u8, st.binary(max_size=300)))
def test_generated_notifications_round_trip_and_never_raise_reading(msg):
    body = encode_notification(msg)
    assert decode_notification(body) == msg
    # Every reading of the data is total: no exception for any bytes.
    assert isinstance(msg.describe(), str)
    assert msg.shutdown_message is None or isinstance(msg.shutdown_message, str)
    for problem in msg.problems:
        assert problem.offset >= 2 and problem.offset + problem.length <= len(body)


@given(st.binary(max_size=64))
def test_arbitrary_bytes(body):
    try:
        msg = decode_notification(body)
    except DecodeError as exc:
        assert len(body) < 2 and exc.error.subcode == 2
        return
    assert encode_notification(msg) == body
    msg.describe()


@given(st.text(st.characters(codec="utf-8"), min_size=1).filter(lambda t: len(t.encode()) <= 255))
def test_generated_shutdown_messages(text):
    msg = decode_notification(encode_notification(shutdown_notification(text)))
    assert msg.shutdown_message == text
    assert msg.describe() == f'Cease/Administrative Shutdown: "{text}"'
