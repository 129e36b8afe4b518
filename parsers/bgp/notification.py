"""BGP NOTIFICATION (RFC 4271 4.5) with names for its codes and the shutdown communication (RFC 9003).

Any body of two bytes or more is a valid NOTIFICATION: the data is kept as received. What the data means is
read on demand: `shutdown_message` for Cease/Administrative Shutdown and Cease/Administrative Reset, with
`problems` saying why a communication that is present could not be read (RFC 9003 5: log it, never fail).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from parsers.bgp.constants import (
    CeaseSubcode,
    HeaderSubcode,
    NotificationCode,
    OpenSubcode,
    UpdateSubcode,
)
from parsers.errors import Action, DecodeError, ParseError

__all__ = [
    "ADMINISTRATIVE_RESET",
    "ADMINISTRATIVE_SHUTDOWN",
    "CODE_NAMES",
    "MAX_SHUTDOWN_MESSAGE_LEN",
    "SUBCODE_NAMES",
    "Notification",
    "code_name",
    "decode_notification",
    "encode_notification",
    "shutdown_notification",
    "subcode_name",
]

NOTIFICATION_FIXED_LEN = 2  # Error code, Error subcode (RFC 4271 4.5)
DATA_AT = NOTIFICATION_FIXED_LEN
MAX_SHUTDOWN_MESSAGE_LEN = 255  # RFC 9003 2: the length octet bounds it (RFC 8203 allowed 128)
ADMINISTRATIVE_SHUTDOWN = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN
ADMINISTRATIVE_RESET = CeaseSubcode.ADMINISTRATIVE_RESET
# RFC 9003 2: the subcodes whose data may carry a shutdown communication.
_SHUTDOWN_SUBCODES = frozenset({ADMINISTRATIVE_SHUTDOWN, ADMINISTRATIVE_RESET})
_SEND_HOLD_TIMER_EXPIRED = 8  # RFC 9687 4 (not yet in constants.NotificationCode)
_UNSPECIFIC = 0  # RFC 4271 4.5: "If no appropriate Error Subcode is defined, then a zero (Unspecific) value"

# IANA BGP Error (Notification) Codes.
CODE_NAMES: Mapping[int, str] = MappingProxyType(
    {
        NotificationCode.MESSAGE_HEADER_ERROR: "Message Header Error",  # RFC 4271 4.5
        NotificationCode.OPEN_MESSAGE_ERROR: "OPEN Message Error",
        NotificationCode.UPDATE_MESSAGE_ERROR: "UPDATE Message Error",
        NotificationCode.HOLD_TIMER_EXPIRED: "Hold Timer Expired",
        NotificationCode.FSM_ERROR: "Finite State Machine Error",
        NotificationCode.CEASE: "Cease",
        NotificationCode.ROUTE_REFRESH_MESSAGE_ERROR: "ROUTE-REFRESH Message Error",  # RFC 7313 5
        _SEND_HOLD_TIMER_EXPIRED: "Send Hold Timer Expired",
    }
)

# IANA subcode registries, per error code. Subcode 0 is "Unspecific" for every code (RFC 4271 4.5).
SUBCODE_NAMES: Mapping[int, Mapping[int, str]] = MappingProxyType(
    {
        NotificationCode.MESSAGE_HEADER_ERROR: MappingProxyType(
            {
                HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED: "Connection Not Synchronized",  # RFC 4271 6.1
                HeaderSubcode.BAD_MESSAGE_LENGTH: "Bad Message Length",
                HeaderSubcode.BAD_MESSAGE_TYPE: "Bad Message Type",
            }
        ),
        NotificationCode.OPEN_MESSAGE_ERROR: MappingProxyType(
            {
                OpenSubcode.UNSUPPORTED_VERSION_NUMBER: "Unsupported Version Number",  # RFC 4271 6.2
                OpenSubcode.BAD_PEER_AS: "Bad Peer AS",
                OpenSubcode.BAD_BGP_IDENTIFIER: "Bad BGP Identifier",
                OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER: "Unsupported Optional Parameter",
                5: "Authentication Failure",  # RFC 4271 (deprecated)
                OpenSubcode.UNACCEPTABLE_HOLD_TIME: "Unacceptable Hold Time",
                OpenSubcode.UNSUPPORTED_CAPABILITY: "Unsupported Capability",  # RFC 5492 5
                OpenSubcode.ROLE_MISMATCH: "Role Mismatch",  # RFC 9234 4.2
            }
        ),
        NotificationCode.UPDATE_MESSAGE_ERROR: MappingProxyType(
            {
                UpdateSubcode.MALFORMED_ATTRIBUTE_LIST: "Malformed Attribute List",  # RFC 4271 6.3
                UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: "Unrecognized Well-known Attribute",
                UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE: "Missing Well-known Attribute",
                UpdateSubcode.ATTRIBUTE_FLAGS_ERROR: "Attribute Flags Error",
                UpdateSubcode.ATTRIBUTE_LENGTH_ERROR: "Attribute Length Error",
                UpdateSubcode.INVALID_ORIGIN_ATTRIBUTE: "Invalid ORIGIN Attribute",
                7: "AS Routing Loop",  # RFC 1771 (deprecated)
                UpdateSubcode.INVALID_NEXT_HOP_ATTRIBUTE: "Invalid NEXT_HOP Attribute",
                UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR: "Optional Attribute Error",
                UpdateSubcode.INVALID_NETWORK_FIELD: "Invalid Network Field",
                UpdateSubcode.MALFORMED_AS_PATH: "Malformed AS_PATH",
            }
        ),
        NotificationCode.FSM_ERROR: MappingProxyType(
            {
                1: "Receive Unexpected Message in OpenSent State",  # RFC 6608 3
                2: "Receive Unexpected Message in OpenConfirm State",
                3: "Receive Unexpected Message in Established State",
            }
        ),
        NotificationCode.CEASE: MappingProxyType(
            {
                CeaseSubcode.MAXIMUM_PREFIXES_REACHED: "Maximum Number of Prefixes Reached",  # RFC 4486 4
                CeaseSubcode.ADMINISTRATIVE_SHUTDOWN: "Administrative Shutdown",
                CeaseSubcode.PEER_DECONFIGURED: "Peer De-configured",
                CeaseSubcode.ADMINISTRATIVE_RESET: "Administrative Reset",
                CeaseSubcode.CONNECTION_REJECTED: "Connection Rejected",
                CeaseSubcode.OTHER_CONFIGURATION_CHANGE: "Other Configuration Change",
                CeaseSubcode.CONNECTION_COLLISION_RESOLUTION: "Connection Collision Resolution",
                CeaseSubcode.OUT_OF_RESOURCES: "Out of Resources",
                CeaseSubcode.HARD_RESET: "Hard Reset",  # RFC 8538 3
                CeaseSubcode.BFD_DOWN: "BFD Down",  # RFC 9384
            }
        ),
        NotificationCode.ROUTE_REFRESH_MESSAGE_ERROR: MappingProxyType(
            {1: "Invalid Message Length"}  # RFC 7313 5
        ),
    }
)


def code_name(code: int) -> str:
    """'Cease', 'OPEN Message Error', ...; 'code 9' for a code with no name."""
    return CODE_NAMES.get(code, f"code {code}")


def subcode_name(code: int, subcode: int) -> str:
    """'Administrative Shutdown', 'Unspecific', ...; 'subcode 42' for a subcode with no name."""
    name = SUBCODE_NAMES.get(code, {}).get(subcode)
    if name is not None:
        return name
    return "Unspecific" if subcode == _UNSPECIFIC else f"subcode {subcode}"


@dataclass(frozen=True, slots=True)
class Notification:
    """A NOTIFICATION body: error code, error subcode and the data as received."""

    code: int
    subcode: int
    data: bytes = b""

    @property
    def code_name(self) -> str:
        return code_name(self.code)

    @property
    def subcode_name(self) -> str:
        return subcode_name(self.code, self.subcode)

    @property
    def shutdown_message(self) -> str | None:
        """The shutdown communication (RFC 9003 2) of a Cease/Administrative Shutdown or Reset, or None when
        there is none or it cannot be read (then `problems` says why)."""
        return _shutdown(self)[0]

    @property
    def problems(self) -> tuple[ParseError, ...]:
        """Why a shutdown communication that is present could not be read, or has bytes after it. Offsets are
        into the body. These never end anything: the session is closing already (RFC 9003 5)."""
        return _shutdown(self)[1]

    def describe(self) -> str:
        """'Cease/Administrative Shutdown: "text"', or the names followed by the data in hex."""
        text = f"{self.code_name}/{self.subcode_name}"
        message, problems = _shutdown(self)
        if message is not None and not problems:
            return f'{text}: "{message}"'
        if message is not None:
            return f'{text}: "{message}" (+{self.data[1 + len(message.encode()) :].hex()})'
        return f"{text} (data {self.data.hex()})" if self.data else text


def _shutdown(msg: Notification) -> tuple[str | None, tuple[ParseError, ...]]:
    data = msg.data
    if msg.code != NotificationCode.CEASE or msg.subcode not in _SHUTDOWN_SUBCODES or not data:
        return None, ()
    length = data[0]
    text = data[1 : 1 + length]
    if len(text) < length:
        detail = f"{length} declared, {len(text)} present"
        return None, (_problem("shutdown communication length runs past the data", DATA_AT, 1, detail),)
    try:
        message: str | None = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = DATA_AT + 1 + exc.start
        return None, (_problem("shutdown communication is not UTF-8", where, 1, exc.reason),)
    if not length:
        message = None  # RFC 9003 2: a zero length means no communication
    trailing = len(data) - 1 - length
    if trailing:
        return message, (_problem("bytes after the shutdown communication", DATA_AT + 1 + length, trailing),)
    return message, ()


def _problem(kind: str, offset: int, length: int, detail: str = "") -> ParseError:
    # Nothing to answer with: the peer is closing the session already.
    return ParseError(kind, offset, length, Action.NONE, detail=detail)


def decode_notification(body: bytes | memoryview) -> Notification:
    """Decode a NOTIFICATION body (after the 19-byte header); shorter than 2 bytes is a Bad Message Length."""
    if len(body) < NOTIFICATION_FIXED_LEN:
        raise DecodeError(
            ParseError(
                "NOTIFICATION shorter than its code and subcode",
                0,
                len(body),
                Action.SESSION_RESET,
                NotificationCode.MESSAGE_HEADER_ERROR,
                HeaderSubcode.BAD_MESSAGE_LENGTH,
                f"{len(body)} bytes",
            )
        )
    return Notification(body[0], body[1], bytes(body[DATA_AT:]))


def encode_notification(msg: Notification) -> bytes:
    if not (0 <= msg.code <= 0xFF and 0 <= msg.subcode <= 0xFF):
        raise ValueError(f"NOTIFICATION code {msg.code} / subcode {msg.subcode} out of range")
    return bytes((msg.code, msg.subcode)) + bytes(msg.data)


def shutdown_notification(message: str, subcode: int = ADMINISTRATIVE_SHUTDOWN) -> Notification:
    """A Cease NOTIFICATION carrying `message` as its shutdown communication (RFC 9003 2)."""
    if subcode not in _SHUTDOWN_SUBCODES:
        raise ValueError(f"Cease subcode {subcode} carries no shutdown communication")
    text = message.encode("utf-8")
    if len(text) > MAX_SHUTDOWN_MESSAGE_LEN:
        raise ValueError(f"shutdown communication of {len(text)} bytes exceeds {MAX_SHUTDOWN_MESSAGE_LEN}")
    return Notification(int(NotificationCode.CEASE), int(subcode), bytes([len(text)]) + text)
