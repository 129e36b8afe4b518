"""BGP ROUTE-REFRESH (RFC 2918 3) with the Enhanced Route Refresh subtypes (RFC 7313 3) and ORF entries.

The body is AFI (2), Message Subtype (1, reserved in RFC 2918), SAFI (1); a normal refresh may be followed by
Outbound Route Filtering entries (RFC 5291 4), kept as bytes. Errors (RFC 7313 5, RFC 4271 6.1):
- shorter than 4 bytes: Message Header Error/Bad Message Length (it is below the message's minimum length);
- BoRR or EoRR (subtype 1 or 2) of any length but 4: ROUTE-REFRESH Message Error/Invalid Message Length.
An unknown subtype decodes (and round-trips) but is listed in `RouteRefresh.problems` with action NONE:
RFC 7313 5 says such a message is ignored, not that it is an error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from parsers.bgp.constants import HeaderSubcode, NotificationCode, RouteRefreshSubtype
from parsers.errors import Action, DecodeError, ParseError

__all__ = ["ROUTE_REFRESH_LEN", "RouteRefresh", "decode_route_refresh", "encode_route_refresh"]

ROUTE_REFRESH_LEN = 4  # RFC 2918 3
_HEAD = struct.Struct("!HBB")
_SUBTYPE_AT = 2
_INVALID_MESSAGE_LENGTH = 1  # RFC 7313 5, ROUTE-REFRESH Message Error subcode
_SUBTYPES = frozenset(int(s) for s in RouteRefreshSubtype)
# RFC 7313 5: only these must be exactly 4 bytes; a normal refresh may carry ORF entries (RFC 5291 4).
_FIXED_LENGTH_SUBTYPES = frozenset(
    {RouteRefreshSubtype.BEGIN_OF_ROUTE_REFRESH, RouteRefreshSubtype.END_OF_ROUTE_REFRESH}
)


@dataclass(frozen=True, slots=True)
class RouteRefresh:
    """A ROUTE-REFRESH for one family; `subtype` is 0 (normal), 1 (BoRR) or 2 (EoRR), RFC 7313 3.
    `orf` holds the bytes after the first four (RFC 5291 ORF entries), usually empty."""

    afi: int
    safi: int
    subtype: int = RouteRefreshSubtype.NORMAL
    orf: bytes = b""

    @property
    def family(self) -> tuple[int, int]:
        return (self.afi, self.safi)

    @property
    def problems(self) -> tuple[ParseError, ...]:
        """An unknown subtype: RFC 7313 5 says the message is ignored (so the action is NONE)."""
        if self.subtype in _SUBTYPES:
            return ()
        detail = f"subtype {self.subtype}"
        return (ParseError("unknown ROUTE-REFRESH subtype", _SUBTYPE_AT, 1, Action.NONE, detail=detail),)


def decode_route_refresh(body: bytes | memoryview) -> RouteRefresh:
    """Decode a ROUTE-REFRESH body (the bytes after the 19-byte header)."""
    size = len(body)
    if size < ROUTE_REFRESH_LEN:
        raise DecodeError(
            ParseError(
                "ROUTE-REFRESH shorter than 4 bytes",
                0,
                size,
                Action.SESSION_RESET,
                NotificationCode.MESSAGE_HEADER_ERROR,
                HeaderSubcode.BAD_MESSAGE_LENGTH,
                f"{size} bytes",
            )
        )
    afi, subtype, safi = _HEAD.unpack_from(body)
    if size != ROUTE_REFRESH_LEN and subtype in _FIXED_LENGTH_SUBTYPES:
        raise DecodeError(
            ParseError(
                "BoRR/EoRR ROUTE-REFRESH is not 4 bytes",
                ROUTE_REFRESH_LEN,
                size - ROUTE_REFRESH_LEN,
                Action.SESSION_RESET,
                NotificationCode.ROUTE_REFRESH_MESSAGE_ERROR,
                _INVALID_MESSAGE_LENGTH,
                f"{size} bytes, subtype {subtype}",
            )
        )
    return RouteRefresh(afi, safi, subtype, bytes(body[ROUTE_REFRESH_LEN:]))


def encode_route_refresh(msg: RouteRefresh) -> bytes:
    """The ROUTE-REFRESH body; ValueError for a field out of range or ORF bytes on a BoRR/EoRR."""
    if msg.orf and msg.subtype in _FIXED_LENGTH_SUBTYPES:
        raise ValueError("a BoRR/EoRR ROUTE-REFRESH carries nothing after its 4 bytes (RFC 7313 5)")
    try:
        return _HEAD.pack(msg.afi, msg.subtype, msg.safi) + bytes(msg.orf)
    except struct.error as exc:
        raise ValueError(f"ROUTE-REFRESH field out of range: {exc}") from None
