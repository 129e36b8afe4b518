"""Opaque LSA bodies (RFC 5250): a sequence of TLVs, decoded where the value is simple, otherwise kept raw.

A TLV is a 16-bit type, a 16-bit length and the value padded to a multiple of 4 bytes (RFC 3630 2.3.2,
RFC 7770 2, RFC 7684 2). `TLV_CODECS` says, per (opaque type, TLV type path), what the value means: a name, a
decoder for simple values and, for containers, where the nested TLVs start inside the value. TLVs not in the
table keep their bytes only. The encoder writes `Tlv.value` back, so a decoded TLV re-encodes byte for byte.

Covered: TE (RFC 3630: Router Address; Link with link type, link ID, local/remote addresses, TE metric,
bandwidths, administrative group), Grace (RFC 3623), Router Information (RFC 7770 capabilities, RFC 5642
hostname, RFC 8665 SR algorithms, SID/Label range, SRLB, SRMS preference), Extended Prefix / Extended Link
(RFC 7684, with the RFC 8665 Extended Prefix Range TLV and Prefix-SID / Adjacency-SID sub-TLVs).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType

from parsers.errors import Action, DecodeError, ParseError
from parsers.ospf.lsa import OpaqueType, Tlv

__all__ = ["TLV_CODECS", "TlvCodec", "decode_tlvs", "encode_tlvs", "tlv_name"]

TLV_HEAD = 4  # type, length
_HEAD = struct.Struct("!HH")
MAX_TLV_DEPTH = 3  # containers nest at most this deep: bounds work on crafted input


def _u(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _address(value: bytes) -> IPv4Address | None:
    return IPv4Address(value) if len(value) == 4 else None


def _addresses(value: bytes) -> tuple[IPv4Address, ...] | None:
    if not value or len(value) % 4:
        return None
    return tuple(IPv4Address(value[i : i + 4]) for i in range(0, len(value), 4))


def _float(value: bytes) -> float | None:
    return struct.unpack("!f", value)[0] if len(value) == 4 else None  # IEEE floating point, bytes/s


def _floats(value: bytes) -> tuple[float, ...] | None:
    if len(value) != 32:  # RFC 3630 2.5.8: eight priority levels
        return None
    return struct.unpack("!8f", value)


def _int_of(size: int) -> Callable[[bytes], int | None]:
    def decode(value: bytes) -> int | None:
        return _u(value) if len(value) == size else None

    return decode


def _text(value: bytes) -> str | None:
    try:
        return value.rstrip(b"\x00").decode("ascii")
    except UnicodeDecodeError:
        return None


def _bytes_list(value: bytes) -> tuple[int, ...]:
    return tuple(value)


def _sid(value: bytes) -> int | None:
    # RFC 8665 2.1: a 3-byte label (20 rightmost bits) or a 4-byte index
    if len(value) == 3:
        return _u(value) & 0xFFFFF
    return _u(value) if len(value) == 4 else None


def _range(value: bytes) -> int | None:
    return _u(value[:3]) if len(value) >= 4 else None  # range size (3), reserved (1), then sub-TLVs


def _extended_prefix(value: bytes) -> tuple[int, int, int, IPv4Network] | None:
    # RFC 7684 2.1: route type, prefix length, address family, flags, address prefix (whole 32-bit words)
    if len(value) < 4:
        return None
    route_type, length, family, flags = value[0], value[1], value[2], value[3]
    size = (length + 31) // 32 * 4
    if length > 32 or len(value) < 4 + size:
        return None
    address = value[4 : 4 + size].ljust(4, b"\x00")
    return route_type, family, flags, IPv4Network((_u(address), length), strict=False)


def _extended_prefix_subs(value: bytes) -> int:
    return 4 + (value[1] + 31) // 32 * 4 if len(value) >= 2 else len(value)


def _extended_prefix_range(value: bytes) -> tuple[int, int, int, IPv4Network] | None:
    # RFC 8665 4: prefix length, AF, range size (2), flags, reserved (3), address prefix
    if len(value) < 8:
        return None
    length, family, size, flags = value[0], value[1], int.from_bytes(value[2:4], "big"), value[4]
    words = (length + 31) // 32 * 4
    if length > 32 or len(value) < 8 + words:
        return None
    address = value[8 : 8 + words].ljust(4, b"\x00")
    return family, size, flags, IPv4Network((_u(address), length), strict=False)


def _extended_prefix_range_subs(value: bytes) -> int:
    return 8 + (value[0] + 31) // 32 * 4 if value else 0


def _extended_link(value: bytes) -> tuple[int, IPv4Address, IPv4Address] | None:
    # RFC 7684 3.1: link type, reserved (3), link ID, link data
    if len(value) < 12:
        return None
    return value[0], IPv4Address(value[4:8]), IPv4Address(value[8:12])


def _segment_sid(value: bytes) -> tuple[int, int, int] | None:
    # RFC 8665 5 / 6.1: flags, reserved|weight, MT-ID, algorithm|weight ..., then the SID
    if len(value) < 7:
        return None
    return value[0], value[3], _sid(value[4:]) or 0


def _adjacency_sid(value: bytes) -> tuple[int, int, int] | None:
    # RFC 8665 6.1: flags, reserved, MT-ID, weight, SID/label/index
    if len(value) < 7:
        return None
    return value[0], value[3], _sid(value[4:]) or 0


@dataclass(frozen=True, slots=True)
class TlvCodec:
    name: str
    decode: Callable[[bytes], object] | None = None  # value -> decoded (None when it does not fit)
    subs_at: Callable[[bytes], int] | None = None  # containers: where nested TLVs start inside the value


def _at(offset: int) -> Callable[[bytes], int]:
    return lambda value: offset


# (opaque type, TLV type, sub-TLV type, ...) -> codec. Sources: RFC 3630 2.4/2.5, RFC 3623 Appendix A,
# RFC 7770 2.4, RFC 5642 3, RFC 8665 3, RFC 7684 2/3, IANA "OSPF Router Information (RI) TLVs".
TLV_CODECS: Mapping[tuple[int, ...], TlvCodec] = MappingProxyType(
    {
        (OpaqueType.TE, 1): TlvCodec("router-address", _address),
        (OpaqueType.TE, 2): TlvCodec("link", None, _at(0)),
        (OpaqueType.TE, 2, 1): TlvCodec("link-type", _int_of(1)),
        (OpaqueType.TE, 2, 2): TlvCodec("link-id", _address),
        (OpaqueType.TE, 2, 3): TlvCodec("local-address", _addresses),
        (OpaqueType.TE, 2, 4): TlvCodec("remote-address", _addresses),
        (OpaqueType.TE, 2, 5): TlvCodec("te-metric", _int_of(4)),
        (OpaqueType.TE, 2, 6): TlvCodec("max-bandwidth", _float),
        (OpaqueType.TE, 2, 7): TlvCodec("max-reservable-bandwidth", _float),
        (OpaqueType.TE, 2, 8): TlvCodec("unreserved-bandwidth", _floats),
        (OpaqueType.TE, 2, 9): TlvCodec("admin-group", _int_of(4)),
        (OpaqueType.GRACE, 1): TlvCodec("grace-period", _int_of(4)),
        (OpaqueType.GRACE, 2): TlvCodec("restart-reason", _int_of(1)),
        (OpaqueType.GRACE, 3): TlvCodec("interface-address", _address),
        (OpaqueType.ROUTER_INFORMATION, 1): TlvCodec("informational-capabilities", _int_of(4)),
        (OpaqueType.ROUTER_INFORMATION, 2): TlvCodec("functional-capabilities", _int_of(4)),
        (OpaqueType.ROUTER_INFORMATION, 7): TlvCodec("hostname", _text),
        (OpaqueType.ROUTER_INFORMATION, 8): TlvCodec("sr-algorithms", _bytes_list),
        (OpaqueType.ROUTER_INFORMATION, 9): TlvCodec("sid-label-range", _range, _at(4)),
        (OpaqueType.ROUTER_INFORMATION, 9, 1): TlvCodec("sid-label", _sid),
        (OpaqueType.ROUTER_INFORMATION, 12): TlvCodec("srlb-range", _range, _at(4)),
        (OpaqueType.ROUTER_INFORMATION, 12, 1): TlvCodec("sid-label", _sid),
        (OpaqueType.ROUTER_INFORMATION, 14): TlvCodec("srms-preference", lambda v: v[0] if len(v) == 4 else None),
        (OpaqueType.EXTENDED_PREFIX, 1): TlvCodec("extended-prefix", _extended_prefix, _extended_prefix_subs),
        (OpaqueType.EXTENDED_PREFIX, 1, 2): TlvCodec("prefix-sid", _segment_sid),
        (OpaqueType.EXTENDED_PREFIX, 2): TlvCodec(
            "extended-prefix-range", _extended_prefix_range, _extended_prefix_range_subs
        ),
        (OpaqueType.EXTENDED_PREFIX, 2, 2): TlvCodec("prefix-sid", _segment_sid),
        (OpaqueType.EXTENDED_LINK, 1): TlvCodec("extended-link", _extended_link, _at(12)),
        (OpaqueType.EXTENDED_LINK, 1, 2): TlvCodec("adjacency-sid", _adjacency_sid),
        (OpaqueType.EXTENDED_LINK, 1, 3): TlvCodec("lan-adjacency-sid", None),
    }
)


def tlv_name(path: tuple[int, ...]) -> str:
    codec = TLV_CODECS.get(path)
    return codec.name if codec else f"tlv {path[-1]}"


def _error(kind: str, offset: int, length: int, detail: str) -> DecodeError:
    return DecodeError(ParseError(kind, offset, length, Action.NONE, detail=detail))


def decode_tlvs(data: bytes, start: int, end: int, path: tuple[int, ...], depth: int = 0) -> tuple[Tlv, ...]:
    """The TLVs in data[start:end]; `path` is (opaque type, enclosing TLV types...). Raises DecodeError."""
    tlvs: list[Tlv] = []
    pos = start
    while pos < end:
        if pos + TLV_HEAD > end:
            raise _error("ospf tlv truncated", pos, end - pos, f"{end - pos} bytes left, a TLV header needs 4")
        kind, length = _HEAD.unpack_from(data, pos)
        value_end = pos + TLV_HEAD + length
        if value_end > end:
            raise _error("ospf tlv length", pos, TLV_HEAD, f"TLV {kind} length {length} overruns by {value_end - end}")
        value = bytes(data[pos + TLV_HEAD : value_end])
        codec = TLV_CODECS.get((*path, kind))
        decoded = codec.decode(value) if codec and codec.decode else None
        subs: tuple[Tlv, ...] = ()
        if codec and codec.subs_at and depth < MAX_TLV_DEPTH:
            at = codec.subs_at(value)
            if at <= length:
                try:
                    subs = decode_tlvs(data, pos + TLV_HEAD + at, value_end, (*path, kind), depth + 1)
                except DecodeError:
                    subs = ()  # the container's value is kept raw; its own framing was fine
        tlvs.append(Tlv(kind, value, subs, decoded))
        pos = value_end + (-length % 4)  # padding to a 32-bit boundary
    return tuple(tlvs)


def encode_tlvs(tlvs: tuple[Tlv, ...]) -> bytes:
    """TLVs back to bytes: the kept value of each, zero-padded to 4 bytes (sub-TLVs live inside `value`)."""
    out = bytearray()
    for tlv in tlvs:
        out += _HEAD.pack(tlv.type, len(tlv.value)) + tlv.value + bytes(-len(tlv.value) % 4)
    return bytes(out)
