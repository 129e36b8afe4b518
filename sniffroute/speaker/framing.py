"""Strict BGP message framing for a speaker (RFC 4271 4.1, 6.1).

Unlike `parsers.bgp.messages.MessageReader`, which hunts past garbage to keep sniffing a stream, a speaker must
refuse a bad header at once: a wrong marker is Connection Not Synchronized, a bad length Bad Message Length (data:
the length field), an unknown type Bad Message Type (data: the type field).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from parsers.bgp.constants import HEADER_LEN, MARKER, MAX_MESSAGE_LEN, HeaderSubcode, MessageType, NotificationCode
from parsers.bgp.messages import MIN_LENGTH
from parsers.errors import Action, DecodeError, ParseError

_LENGTH = struct.Struct("!H")
_LENGTH_AT, _TYPE_AT = 16, 18
MARKER_LEN = len(MARKER)
# RFC 4271 4.4: a KEEPALIVE is the header alone; every other type has its own minimum (MIN_LENGTH).
_EXACT_LENGTH = {MessageType.KEEPALIVE: HEADER_LEN}


@dataclass(frozen=True, slots=True)
class Frame:
    """One whole message: its type, its body (after the header) and how many buffer bytes it used."""

    type: int
    body: bytes
    size: int


class HeaderError(DecodeError):
    """A bad message header; `data` is what the NOTIFICATION carries back (RFC 4271 6.1)."""

    def __init__(self, error: ParseError, data: bytes) -> None:
        super().__init__(error)
        self.data = data


def _header_error(kind: str, offset: int, length: int, subcode: int, data: bytes, detail: str) -> HeaderError:
    code = NotificationCode.MESSAGE_HEADER_ERROR
    return HeaderError(ParseError(kind, offset, length, Action.SESSION_RESET, code, subcode, detail), data)


def next_frame(buf: bytes | bytearray, max_len: int = MAX_MESSAGE_LEN) -> Frame | None:
    """The message at the start of `buf`, None while it is incomplete, HeaderError if the header is bad.

    The marker is checked as soon as its first bytes arrive, so garbage is refused without waiting for more."""
    seen = min(len(buf), MARKER_LEN)
    if bytes(buf[:seen]) != MARKER[:seen]:
        raise _header_error("bad marker", 0, MARKER_LEN, HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED, b"", "not all ones")
    if len(buf) < HEADER_LEN:
        return None
    (length,) = _LENGTH.unpack_from(buf, _LENGTH_AT)
    msg_type = buf[_TYPE_AT]
    if not HEADER_LEN <= length <= max_len:
        raise _header_error(
            "bad message length",
            _LENGTH_AT,
            2,
            HeaderSubcode.BAD_MESSAGE_LENGTH,
            _LENGTH.pack(length),
            f"{length}, allowed {HEADER_LEN}..{max_len}",
        )
    if msg_type not in MIN_LENGTH:
        raise _header_error(
            "bad message type", _TYPE_AT, 1, HeaderSubcode.BAD_MESSAGE_TYPE, bytes([msg_type]), f"type {msg_type}"
        )
    exact = _EXACT_LENGTH.get(msg_type)
    if length < MIN_LENGTH[msg_type] or (exact is not None and length != exact):
        raise _header_error(
            "bad message length for its type",
            _LENGTH_AT,
            2,
            HeaderSubcode.BAD_MESSAGE_LENGTH,
            _LENGTH.pack(length),
            f"{length} for type {msg_type}",
        )
    if len(buf) < length:
        return None
    return Frame(msg_type, bytes(buf[HEADER_LEN:length]), length)
