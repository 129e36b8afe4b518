"""parsers.bgp.messages: framing, resynchronisation after a gap, UPDATE fields, dispatch."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers.bgp.constants import MARKER, HeaderSubcode
from parsers.bgp.messages import (
    Keepalive,
    MessageReader,
    RawMessage,
    Skipped,
    Update,
    decode_body,
    decode_update,
    encode_message,
    encode_update,
)
from parsers.errors import Action, DecodeError

KEEPALIVE = MARKER + bytes([0, 19, 4])  # marker, length 19, type 4
# An IPv4 End-of-RIB: marker, length 23, type 2, withdrawn length 0, attribute length 0.
EOR = MARKER + bytes([0, 23, 2, 0, 0, 0, 0])


def messages(items):
    return [i for i in items if isinstance(i, RawMessage)]


def test_frames_back_to_back_messages():
    reader = MessageReader()
    out = messages(reader.feed(KEEPALIVE + EOR + KEEPALIVE))
    assert [m.type for m in out] == [4, 2, 4]
    assert [m.offset for m in out] == [0, 19, 42]
    assert out[1].body == bytes(4)
    assert reader.pending == 0


def test_frames_messages_split_anywhere():
    stream = KEEPALIVE + EOR + KEEPALIVE
    for cut in range(1, len(stream)):
        reader = MessageReader()
        got = messages(reader.feed(stream[:cut])) + messages(reader.feed(stream[cut:]))
        assert [m.type for m in got] == [4, 2, 4], cut


def test_gap_resynchronises_on_next_marker():
    reader = MessageReader()
    # half an EoR, then bytes lost, then the tail of some message followed by a KEEPALIVE
    list(reader.feed(EOR[:10]))
    skipped = reader.gap(100)
    assert skipped is not None and skipped.length == 10
    out = list(reader.feed(b"\x00\x01tail-of-lost-message" + KEEPALIVE))
    assert [type(i) for i in out] == [Skipped, RawMessage]
    assert out[1].type == 4
    assert out[1].offset == 10 + 100 + 22  # stream offset counts the lost bytes


def test_marker_inside_garbage_with_implausible_header_is_not_taken():
    reader = MessageReader()
    reader.gap(1)
    bogus = MARKER + bytes([0, 5, 9])  # length 5 < 19, type 9: not a header
    out = list(reader.feed(bogus + KEEPALIVE))
    got = messages(out)
    assert len(got) == 1 and got[0].type == 4


def test_bad_length_is_reported_and_framing_recovers():
    reader = MessageReader(max_len=4096)
    bad = MARKER + bytes([0x20, 0x00, 2])  # length 8192 > 4096
    out = list(reader.feed(bad + KEEPALIVE))
    errors = [i.error for i in out if isinstance(i, Skipped)]
    assert errors and errors[0].subcode == HeaderSubcode.BAD_MESSAGE_LENGTH
    assert errors[0].action is Action.SESSION_RESET
    assert [m.type for m in messages(out)] == [4]


def test_update_fields_split_and_round_trip():
    body = bytes(
        [
            0, 2, 8, 10,  # withdrawn length 2: 10.0.0.0/8
            0, 4, 0x40, 1, 1, 0,  # attribute length 4: ORIGIN IGP
            24, 192, 0, 2,  # NLRI 192.0.2.0/24
        ]
    )  # fmt: skip
    update = decode_update(body)
    assert update == Update(bytes([8, 10]), bytes([0x40, 1, 1, 0]), bytes([24, 192, 0, 2]))
    assert encode_update(update) == body


@pytest.mark.parametrize(
    "body, offset",
    [
        (bytes([0]), 0),  # shorter than the two length fields
        (bytes([0, 9, 0, 0]), 0),  # withdrawn length 9 runs past the end
        (bytes([0, 0, 0, 9, 1]), 2),  # attribute length 9 runs past the end
    ],
)
def test_update_length_errors_are_session_reset(body, offset):
    with pytest.raises(DecodeError) as info:
        decode_update(body)
    assert info.value.error.action is Action.SESSION_RESET
    assert info.value.error.offset == offset


def test_end_of_rib_detected():
    assert decode_update(bytes(4)).is_ipv4_end_of_rib


def test_dispatch_and_encode_keepalive():
    assert decode_body(4, b"") == Keepalive()
    assert encode_message(Keepalive()) == KEEPALIVE
    with pytest.raises(DecodeError):
        decode_body(4, b"x")
    with pytest.raises(DecodeError) as info:
        decode_body(42, b"")
    assert info.value.error.subcode == HeaderSubcode.BAD_MESSAGE_TYPE


@given(st.binary(max_size=300), st.integers(1, 50))
def test_reader_never_raises_and_accounts_for_every_byte(data, chunk):
    reader = MessageReader()
    reader.gap(0)
    seen = 0
    for i in range(0, len(data), chunk):
        for item in reader.feed(data[i : i + chunk]):
            seen += (len(item.body) + 19) if isinstance(item, RawMessage) else item.length
    assert seen + reader.pending == len(data)


@given(st.binary(max_size=120))
def test_decode_update_only_raises_decode_error(body):
    try:
        update = decode_update(body)
    except DecodeError:
        return
    assert encode_update(update) == body
