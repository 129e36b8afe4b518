"""BGP message framing (RFC 4271 4.1) and the UPDATE and KEEPALIVE bodies; dispatch to the other codecs.

`MessageReader` is a receive buffer in the style of h11's: bytes go in, whole messages come out, nothing is read
from anywhere. After a gap in the byte stream it resynchronises on the next marker that starts a plausible header.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from parsers.bgp.constants import (
    HEADER_LEN,
    MARKER,
    MAX_EXTENDED_MESSAGE_LEN,
    HeaderSubcode,
    MessageType,
    NotificationCode,
    UpdateSubcode,
)
from parsers.bgp.context import SessionContext
from parsers.errors import Action, DecodeError, ParseError

_HEADER = struct.Struct("!16sHB")
_U16 = struct.Struct("!H")
_new_tuple = tuple.__new__
# RFC 4271 4.1: the smallest legal length of each message type (header included).
MIN_LENGTH = {
    MessageType.OPEN: 29,
    MessageType.UPDATE: 23,
    MessageType.NOTIFICATION: 21,
    MessageType.KEEPALIVE: 19,
    MessageType.ROUTE_REFRESH: 23,
}


class RawMessage(NamedTuple):
    """One framed message: its type, its body (after the header) and where it started in the stream (a
    NamedTuple: one per message, cheaper to make than a frozen dataclass)."""

    type: int
    body: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class Skipped:
    """Bytes passed over while looking for a marker (after a gap, or garbage)."""

    offset: int
    length: int
    error: ParseError


class MessageReader:
    """Frames one direction of a BGP byte stream into messages.

    `max_len` is 4096 until both OPENs allowed extended messages (RFC 8654), when the session raises it.
    """

    def __init__(self, max_len: int = MAX_EXTENDED_MESSAGE_LEN) -> None:
        self.max_len = max_len
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._hunting = False

    @property
    def pending(self) -> int:
        """Bytes held that do not yet make a whole message."""
        return len(self._buf)

    def gap(self, missing: int) -> Skipped | None:
        """Bytes were lost: drop the partial message held and hunt for the next marker."""
        dropped = len(self._buf)
        self._base += dropped + missing
        self._buf.clear()
        self._hunting = True
        if not dropped:
            return None
        return Skipped(
            self._base - missing - dropped,
            dropped,
            ParseError("partial message before a gap", 0, dropped, Action.NONE, detail="dropped"),
        )

    def feed(self, data: bytes) -> Iterator[RawMessage | Skipped]:
        """Add bytes; yield every message they complete (and any bytes skipped to find one)."""
        held = self._buf
        if held or type(data) is not bytes:
            held += data
            buf: bytes | bytearray = held
        else:
            buf = data  # nothing held: messages are cut straight out of the new bytes, without copying them in
        pos = 0
        end = len(buf)
        max_len = self.max_len
        done = False
        try:
            while end - pos >= HEADER_LEN:
                if self._hunting or buf[pos : pos + 16] != MARKER:
                    found = self._find_header(buf, pos, end)
                    if found is None:
                        # Keep the tail that could still begin a marker.
                        keep = max(pos, end - HEADER_LEN + 1)
                        if keep > pos:
                            yield self._skip(pos, keep - pos, "no BGP marker")
                            pos = keep
                        break
                    if found > pos:
                        yield self._skip(pos, found - pos, "bytes before the next BGP marker")
                    pos = found
                    self._hunting = False
                length, msg_type = _HEADER.unpack_from(buf, pos)[1:]
                if length < HEADER_LEN or length > max_len:
                    # RFC 4271 6.1 Bad Message Length: the framing is lost; hunt past this marker.
                    yield self._skip(pos, 1, f"bad message length {length}", HeaderSubcode.BAD_MESSAGE_LENGTH)
                    pos += 1
                    self._hunting = True
                    continue
                if end - pos < length:
                    break
                body = bytes(buf[pos + HEADER_LEN : pos + length])
                yield _new_tuple(RawMessage, (msg_type, body, self._base + pos))  # RawMessage(...), minus a call
                pos += length
            done = True
        finally:
            if buf is held:
                if done and pos:
                    del held[:pos]
                    self._base += pos
            elif done:
                held += buf[pos:]
                self._base += pos
            else:
                held += buf  # abandoned half-way: keep every byte, as when they are added to the buffer first

    def _skip(self, pos: int, length: int, why: str, subcode: int = 0) -> Skipped:
        code = NotificationCode.MESSAGE_HEADER_ERROR if subcode else 0
        return Skipped(
            self._base + pos,
            length,
            ParseError(why, self._base + pos, length, Action.SESSION_RESET if subcode else Action.NONE, code, subcode),
        )

    def _find_header(self, buf: bytes | bytearray, pos: int, end: int) -> int | None:
        """Offset of the next marker followed by a plausible length and type."""
        while True:
            found = buf.find(MARKER, pos, end)
            if found < 0 or end - found < HEADER_LEN:
                return None
            # A run of more than 16 0xff bytes: the marker is its last 16 bytes.
            while found + HEADER_LEN <= end and buf[found + 16] == 0xFF and buf[found + 17] == 0xFF:
                found += 1
            if end - found < HEADER_LEN:
                return None
            length, msg_type = _HEADER.unpack_from(buf, found)[1:]
            if msg_type in MIN_LENGTH and MIN_LENGTH[msg_type] <= length <= self.max_len:
                return found
            pos = found + 1


@dataclass(frozen=True, slots=True)
class Update:
    """An UPDATE body split into its three fields (RFC 4271 4.3), kept as bytes.

    The fields are decoded with a session context by parsers.bgp.update; keeping them raw makes the round trip
    exact and lets identical attribute blocks be decoded once.
    """

    withdrawn: bytes = b""
    attributes: bytes = b""
    nlri: bytes = b""

    @property
    def is_ipv4_end_of_rib(self) -> bool:
        """RFC 4724 2: an UPDATE with no withdrawn routes, attributes or NLRI."""
        return not (self.withdrawn or self.attributes or self.nlri)


@dataclass(frozen=True, slots=True)
class Keepalive:
    """RFC 4271 4.4: a header and nothing else."""


def decode_update(body: bytes) -> Update:
    """Split an UPDATE body; inconsistent field lengths are a session reset (RFC 7606 4)."""
    size = len(body)
    if size < 4:
        raise DecodeError(_update_error("UPDATE body shorter than its two length fields", 0, size))
    withdrawn_len = (body[0] << 8) | body[1]
    attrs_at = 2 + withdrawn_len
    if attrs_at + 2 > size:
        raise DecodeError(_update_error("withdrawn routes length runs past the message", 0, 2))
    attrs_len = (body[attrs_at] << 8) | body[attrs_at + 1]
    nlri_at = attrs_at + 2 + attrs_len
    if nlri_at > size:
        raise DecodeError(_update_error("total path attribute length runs past the message", attrs_at, 2))
    return Update(body[2:attrs_at], body[attrs_at + 2 : nlri_at], body[nlri_at:])


def encode_update(update: Update) -> bytes:
    return b"".join(
        (
            _U16.pack(len(update.withdrawn)),
            update.withdrawn,
            _U16.pack(len(update.attributes)),
            update.attributes,
            update.nlri,
        )
    )


def decode_keepalive(body: bytes) -> Keepalive:
    if body:
        raise DecodeError(
            ParseError(
                "KEEPALIVE with a body",
                0,
                len(body),
                Action.SESSION_RESET,
                NotificationCode.MESSAGE_HEADER_ERROR,
                HeaderSubcode.BAD_MESSAGE_LENGTH,
            )
        )
    return Keepalive()


def encode_keepalive(_: Keepalive) -> bytes:
    return b""


def _update_error(kind: str, offset: int, length: int) -> ParseError:
    return ParseError(
        kind,
        offset,
        length,
        Action.SESSION_RESET,
        NotificationCode.UPDATE_MESSAGE_ERROR,
        UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
    )


def _codecs() -> dict[int, tuple[Callable[[bytes], object], Callable[[object], bytes], type]]:
    from parsers.bgp.notification import Notification, decode_notification, encode_notification
    from parsers.bgp.open import Open, decode_open, encode_open
    from parsers.bgp.route_refresh import RouteRefresh, decode_route_refresh, encode_route_refresh

    return {
        MessageType.OPEN: (decode_open, encode_open, Open),
        MessageType.UPDATE: (decode_update, encode_update, Update),
        MessageType.NOTIFICATION: (decode_notification, encode_notification, Notification),
        MessageType.KEEPALIVE: (decode_keepalive, encode_keepalive, Keepalive),
        MessageType.ROUTE_REFRESH: (decode_route_refresh, encode_route_refresh, RouteRefresh),
    }


_CODECS: dict[int, tuple[Callable[[bytes], object], Callable[[object], bytes], type]] = {}


def codecs() -> dict[int, tuple[Callable[[bytes], object], Callable[[object], bytes], type]]:
    """message type -> (decode body, encode body, record class)."""
    if not _CODECS:
        _CODECS.update(_codecs())
    return _CODECS


def decode_body(msg_type: int, body: bytes) -> object:
    """Decode a message body by type; an unknown type is a header error (RFC 4271 6.1)."""
    entry = codecs().get(msg_type)
    if entry is None:
        raise DecodeError(
            ParseError(
                f"unknown message type {msg_type}",
                18,
                1,
                Action.SESSION_RESET,
                NotificationCode.MESSAGE_HEADER_ERROR,
                HeaderSubcode.BAD_MESSAGE_TYPE,
            )
        )
    return entry[0](body)


def encode_message(message: object, ctx: SessionContext | None = None) -> bytes:
    """A whole message (header included) for a record of any message type."""
    for msg_type, (_, encode, cls) in codecs().items():
        if isinstance(message, cls):
            body = encode(message)
            limit = (ctx or SessionContext()).max_message_len
            if HEADER_LEN + len(body) > limit:
                raise ValueError(f"message of {HEADER_LEN + len(body)} bytes exceeds {limit}")
            return _HEADER.pack(MARKER, HEADER_LEN + len(body), msg_type) + body
    raise TypeError(f"not a BGP message record: {type(message).__name__}")
