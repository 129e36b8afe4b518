"""BGP path attributes (RFC 4271 4.3, 5): a table-driven codec, RFC 7606 error handling, RFC 6793 AS4 merge.

Two layers:
- `decode_attributes`/`encode_attributes` work on the wire form: an `Attribute` keeps its flags octet as
  received, so encoding what was decoded gives the same bytes back. Malformed attributes never appear in the
  decoded tuple; each comes back as a `ParseError` with its offset in the block and its RFC 7606 action.
- `path_attributes` builds the semantic view one route needs (`PathAttributes`), with AS4_PATH and
  AS4_AGGREGATOR merged into AS_PATH/AGGREGATOR on 2-octet AS sessions (RFC 6793 4.2.3).

Every attribute code sniffroute knows has one entry in `ATTRIBUTE_CODECS`: its name, decoder, encoder, the
Optional/Transitive bits it must carry and the RFC 7606 action taken when it is malformed. Attributes nothing
here reads (BGPsec, Prefix-SID, tunnel encapsulation, ...) are checked for their flags (and length where the
RFC gives one) and kept raw. MP_REACH_NLRI/MP_UNREACH_NLRI keep their NLRI raw: splitting it needs the
ADD-PATH state, which belongs to the NLRI layer.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from types import MappingProxyType
from typing import NamedTuple

from parsers.bgp.constants import (
    AS_TRANS,
    Afi,
    AttrCode,
    AttrFlag,
    NotificationCode,
    Origin,
    Safi,
    SegmentType,
    UpdateSubcode,
)
from parsers.bgp.context import SessionContext
from parsers.errors import Action, ParseError, strongest

__all__ = [
    "ATTRIBUTE_CODECS",
    "Aggregator",
    "AsSegment",
    "Attribute",
    "AttributeCodec",
    "MpReach",
    "MpUnreach",
    "PathAttributes",
    "as_path_json",
    "as_path_length",
    "decode_attributes",
    "encode_attribute",
    "encode_attributes",
    "format_as_path",
    "format_community",
    "format_large",
    "merge_as4_path",
    "missing_mandatory",
    "neighbor_as",
    "next_hop_addresses",
    "path_attributes",
]

# IANA codes the constants module does not name: kept raw, validated as their RFCs say.
TRAFFIC_ENGINEERING = 24  # RFC 5543
IPV6_EXT_COMMUNITIES = 25  # RFC 5701
MPLS_VPN_MULTICAST_SAFI = 129  # RFC 6514 (next hop carries an RD like SAFI 128)

# Plain ints: enum members are slower to look up and combine on the per-attribute path.
_WELL_KNOWN = int(AttrFlag.TRANSITIVE)  # well-known attributes: Optional 0, Transitive 1 (RFC 4271 4.3)
_OPTIONAL = int(AttrFlag.OPTIONAL)  # optional non-transitive
_OPTIONAL_TRANSITIVE = int(AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE)
_EXTENDED_LENGTH = int(AttrFlag.EXTENDED_LENGTH)
# RFC 7606 3.c judges only these two bits; Partial and Extended Length are never a flags error.
_CATEGORY_BITS = _OPTIONAL_TRANSITIVE

_CONFED_SEGMENTS = frozenset({SegmentType.AS_CONFED_SEQUENCE, SegmentType.AS_CONFED_SET})
_SEGMENT_TYPES = frozenset(int(t) for t in SegmentType)
_SEGMENT_HEAD = 2  # segment type, segment length in ASes (RFC 4271 4.3)
_MAX_SEGMENT_ASNS = 255
_ORIGIN_MAX = int(Origin.INCOMPLETE)
_MAX_SHORT_LEN = 255  # above this an attribute needs the Extended Length bit

# One compiled layout per segment length and AS width: segments are decoded for every distinct block.
_SEGMENT_LAYOUTS = {width: [struct.Struct(f"!{n}{'I' if width == 4 else 'H'}") for n in range(256)] for width in (2, 4)}
# NamedTuples made per attribute and per segment skip their generated __new__ (a Python-level call).
_new_tuple = tuple.__new__
_U32_LAYOUTS = [struct.Struct(f"!{n}I") for n in range(64)]  # communities, by count
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_AGGREGATOR2 = struct.Struct("!H4s")  # RFC 4271 5.1.7: 2-octet AS, IPv4 address
_AGGREGATOR4 = struct.Struct("!I4s")  # RFC 6793 3 (and AGGREGATOR on 4-octet sessions)
_MP_REACH_HEAD = struct.Struct("!HBB")  # AFI, SAFI, next hop length (RFC 4760 3)
_MP_UNREACH_HEAD = struct.Struct("!HB")  # AFI, SAFI (RFC 4760 4)
_RD_LEN = 8  # VPN next hops are prefixed by an all-zero Route Distinguisher (RFC 4364 4.3.2, RFC 4659 3.2.1)
_ZERO_RD = bytes(_RD_LEN)
_IPV4_LEN = 4
_IPV6_LEN = 16
_COMMUNITY_LEN = 4  # RFC 1997
_EXT_COMMUNITY_LEN = 8  # RFC 4360 2
_IPV6_EXT_COMMUNITY_LEN = 20  # RFC 5701 2
_LARGE_COMMUNITY_LEN = 12  # RFC 8092 3
_OTC_LEN = 4  # RFC 9234 5


# ----------------------------------------------------------------------------------------------------
# Records


class AsSegment(NamedTuple):
    """One AS_PATH segment; `type` is a `SegmentType` value (kept a plain int on the hot path). A NamedTuple:
    built for every distinct attribute block, where a frozen dataclass costs three times as much to make."""

    type: int
    asns: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Aggregator:
    """AGGREGATOR / AS4_AGGREGATOR: the aggregating AS and BGP speaker (RFC 4271 5.1.7)."""

    asn: int
    address: str


@dataclass(frozen=True, slots=True)
class MpReach:
    """MP_REACH_NLRI (RFC 4760 3). `nlri` stays raw: splitting it needs the session's ADD-PATH state."""

    afi: int
    safi: int
    next_hop: bytes
    nlri: bytes
    reserved: int = 0  # RFC 4760 3: sent as 0, ignored on receipt; kept for a byte-exact round trip


@dataclass(frozen=True, slots=True)
class MpUnreach:
    """MP_UNREACH_NLRI (RFC 4760 4), withdrawn routes kept raw."""

    afi: int
    safi: int
    nlri: bytes


class Attribute(NamedTuple):
    """One path attribute as on the wire (a NamedTuple, cheap to make: several per distinct attribute block).

    `flags` is the flags octet exactly as received (Extended Length and Partial included), so that encoding
    gives back the same bytes. `value` is typed per code (see `ATTRIBUTE_CODECS`); unknown codes and codes
    kept raw carry `bytes`.
    """

    code: int
    flags: int
    value: object


class _Malformed(Exception):
    """Raised inside this module by a decoder; turned into a `ParseError` by `decode_attributes`."""

    def __init__(self, kind: str, subcode: int, action: Action | None = None, detail: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.subcode = subcode
        self.action = action
        self.detail = detail


Decoder = Callable[[bytes, int, int, SessionContext], object]
Encoder = Callable[[object, SessionContext], bytes]


@dataclass(frozen=True, slots=True)
class AttributeCodec:
    """How one attribute code is read and written.

    flags: the Optional and Transitive bits the attribute must carry (RFC 4271 4.3, 5); a conflict makes the
        attribute malformed (RFC 7606 3.c).
    on_error: the RFC 7606 action for a malformed instance (section 7 or the attribute's own RFC); a decoder
        may name a more precise one for a given fault.
    """

    name: str
    flags: int
    decode: Decoder
    encode: Encoder
    on_error: Action
    rfc: str


# ----------------------------------------------------------------------------------------------------
# Decoders and encoders, one pair per attribute. A decoder reads buf[start:stop] and raises _Malformed.


def _ipv4(buf: bytes, at: int) -> str:
    return f"{buf[at]}.{buf[at + 1]}.{buf[at + 2]}.{buf[at + 3]}"


def _ipv4_bytes(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def _need_length(start: int, stop: int, length: int, name: str) -> None:
    if stop - start != length:
        raise _Malformed(f"{name} length {stop - start}, expected {length}", UpdateSubcode.ATTRIBUTE_LENGTH_ERROR)


def _need_multiple(start: int, stop: int, unit: int, name: str) -> int:
    """The count of `unit`-sized items; RFC 7606 7.8/7.10/7.14, RFC 8092 6 all want a non-zero multiple."""
    size = stop - start
    if size == 0 or size % unit:
        raise _Malformed(
            f"{name} length {size}, not a non-zero multiple of {unit}", UpdateSubcode.ATTRIBUTE_LENGTH_ERROR
        )
    return size // unit


def _decode_origin(buf: bytes, start: int, stop: int, ctx: SessionContext) -> int:
    if stop - start != 1:
        _need_length(start, stop, 1, "ORIGIN")
    value = buf[start]
    if value > _ORIGIN_MAX:
        raise _Malformed(f"ORIGIN value {value} undefined", UpdateSubcode.INVALID_ORIGIN_ATTRIBUTE)
    return value


def _encode_origin(value: object, ctx: SessionContext) -> bytes:
    return bytes((value,))  # type: ignore[arg-type]


def _decode_segments(buf: bytes, start: int, stop: int, width: int, name: str, subcode: int) -> tuple[AsSegment, ...]:
    """AS_PATH-shaped value; malformed per RFC 7606 7.2 (and RFC 6793 6 for AS4_PATH)."""
    segments = []
    layouts = _SEGMENT_LAYOUTS[width]
    i = start
    while i < stop:
        if stop - i < _SEGMENT_HEAD:
            raise _Malformed(f"{name} has one octet after its last segment", subcode)
        seg_type = buf[i]
        count = buf[i + 1]
        if seg_type not in _SEGMENT_TYPES:
            raise _Malformed(f"{name} segment type {seg_type} undefined", subcode)
        if count == 0:
            raise _Malformed(f"{name} segment of length zero", subcode)
        end = i + _SEGMENT_HEAD + count * width
        if end > stop:
            raise _Malformed(f"{name} segment runs past the attribute", subcode)
        segments.append(_new_tuple(AsSegment, (seg_type, layouts[count].unpack_from(buf, i + _SEGMENT_HEAD))))
        i = end
    return tuple(segments)


def _encode_segments(segments: object, width: int) -> bytes:
    char = "I" if width == 4 else "H"
    out = bytearray()
    for seg in segments:  # type: ignore[attr-defined]
        out += struct.pack(f"!BB{len(seg.asns)}{char}", seg.type, len(seg.asns), *seg.asns)
    return bytes(out)


def _decode_as_path(buf: bytes, start: int, stop: int, ctx: SessionContext) -> tuple[AsSegment, ...]:
    # The AS width comes from the session (RFC 6793 4), never from the length.
    return _decode_segments(buf, start, stop, 4 if ctx.as4 else 2, "AS_PATH", UpdateSubcode.MALFORMED_AS_PATH)


def _encode_as_path(value: object, ctx: SessionContext) -> bytes:
    return _encode_segments(value, 4 if ctx.as4 else 2)


def _decode_as4_path(buf: bytes, start: int, stop: int, ctx: SessionContext) -> tuple[AsSegment, ...]:
    _only_from_old_speaker(ctx, "AS4_PATH")
    return _decode_segments(buf, start, stop, 4, "AS4_PATH", UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR)


def _encode_as4_path(value: object, ctx: SessionContext) -> bytes:
    return _encode_segments(value, 4)


def _only_from_old_speaker(ctx: SessionContext, name: str) -> None:
    # RFC 6793 6: between two 4-octet speakers AS4_* MUST be discarded and the UPDATE processed on.
    if ctx.as4:
        raise _Malformed(
            f"{name} on a 4-octet AS session",
            UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
            Action.ATTRIBUTE_DISCARD,
        )


def _decode_next_hop(buf: bytes, start: int, stop: int, ctx: SessionContext) -> str:
    if stop - start != _IPV4_LEN:
        _need_length(start, stop, _IPV4_LEN, "NEXT_HOP")
    return _ipv4(buf, start)


def _encode_address(value: object, ctx: SessionContext) -> bytes:
    return _ipv4_bytes(value)  # type: ignore[arg-type]


def _decode_u32(name: str) -> Decoder:
    def decode(buf: bytes, start: int, stop: int, ctx: SessionContext) -> int:
        if stop - start != 4:
            _need_length(start, stop, 4, name)
        return _U32.unpack_from(buf, start)[0]

    return decode


def _encode_u32(value: object, ctx: SessionContext) -> bytes:
    return _U32.pack(value)


def _decode_atomic_aggregate(buf: bytes, start: int, stop: int, ctx: SessionContext) -> None:
    _need_length(start, stop, 0, "ATOMIC_AGGREGATE")
    return None


def _encode_empty(value: object, ctx: SessionContext) -> bytes:
    return b""


def _decode_aggregator(buf: bytes, start: int, stop: int, ctx: SessionContext) -> Aggregator:
    layout = _AGGREGATOR4 if ctx.as4 else _AGGREGATOR2
    _need_length(start, stop, layout.size, "AGGREGATOR")
    asn, _ = layout.unpack_from(buf, start)
    return Aggregator(asn, _ipv4(buf, stop - _IPV4_LEN))


def _encode_aggregator(value: object, ctx: SessionContext) -> bytes:
    layout = _AGGREGATOR4 if ctx.as4 else _AGGREGATOR2
    return layout.pack(value.asn, _ipv4_bytes(value.address))  # type: ignore[attr-defined]


def _decode_as4_aggregator(buf: bytes, start: int, stop: int, ctx: SessionContext) -> Aggregator:
    _only_from_old_speaker(ctx, "AS4_AGGREGATOR")
    _need_length(start, stop, _AGGREGATOR4.size, "AS4_AGGREGATOR")
    return Aggregator(_U32.unpack_from(buf, start)[0], _ipv4(buf, start + 4))


def _encode_as4_aggregator(value: object, ctx: SessionContext) -> bytes:
    return _AGGREGATOR4.pack(value.asn, _ipv4_bytes(value.address))  # type: ignore[attr-defined]


def _decode_communities(buf: bytes, start: int, stop: int, ctx: SessionContext) -> tuple[int, ...]:
    count = _need_multiple(start, stop, _COMMUNITY_LEN, "COMMUNITIES")
    if count < len(_U32_LAYOUTS):
        return _U32_LAYOUTS[count].unpack_from(buf, start)  # type: ignore[no-any-return]
    return struct.unpack_from(f"!{count}I", buf, start)


def _encode_u32s(value: object, ctx: SessionContext) -> bytes:
    return struct.pack(f"!{len(value)}I", *value)  # type: ignore[arg-type]


def _decode_originator_id(buf: bytes, start: int, stop: int, ctx: SessionContext) -> str:
    _need_length(start, stop, _IPV4_LEN, "ORIGINATOR_ID")
    return _ipv4(buf, start)


def _decode_cluster_list(buf: bytes, start: int, stop: int, ctx: SessionContext) -> tuple[str, ...]:
    count = _need_multiple(start, stop, _IPV4_LEN, "CLUSTER_LIST")
    return tuple(_ipv4(buf, start + 4 * n) for n in range(count))


def _encode_addresses(value: object, ctx: SessionContext) -> bytes:
    return b"".join(_ipv4_bytes(a) for a in value)  # type: ignore[attr-defined]


# RFC 4760 3 + RFC 7606 7.11: a next hop length the family cannot have hides where the NLRI start.
# Families not listed are not checked.
_NEXT_HOP_LENGTHS: Mapping[tuple[int, int], frozenset[int]] = MappingProxyType(
    {
        # IPv4 NLRI: an IPv4 next hop, or IPv6 global (+ link-local) per RFC 8950 4.
        (Afi.IPV4, Safi.UNICAST): frozenset({4, 16, 32}),
        (Afi.IPV4, Safi.MULTICAST): frozenset({4, 16, 32}),
        (Afi.IPV4, Safi.MPLS_LABEL): frozenset({4, 16, 32}),
        # IPv6 NLRI: global, or global + link-local (RFC 2545 3).
        (Afi.IPV6, Safi.UNICAST): frozenset({16, 32}),
        (Afi.IPV6, Safi.MULTICAST): frozenset({16, 32}),
        (Afi.IPV6, Safi.MPLS_LABEL): frozenset({16, 32}),
        # VPN: RD + IPv4 (RFC 4364 4.3.2), RD + IPv6 (+ RD + link-local) (RFC 4659 3.2.1, RFC 8950 4).
        (Afi.IPV4, Safi.MPLS_VPN): frozenset({12, 24, 48}),
        (Afi.IPV6, Safi.MPLS_VPN): frozenset({24, 48}),
    }
)


def _decode_mp_reach(buf: bytes, start: int, stop: int, ctx: SessionContext) -> MpReach:
    size = stop - start
    if size < _MP_REACH_HEAD.size + 1:
        # Without AFI/SAFI the family cannot be disabled: only a session reset is safe (RFC 7606 7.11).
        action = Action.SESSION_RESET if size < _MP_UNREACH_HEAD.size else Action.AFISAFI_DISABLE
        raise _Malformed("MP_REACH_NLRI shorter than its fixed fields", UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, action)
    afi, safi, nh_len = _MP_REACH_HEAD.unpack_from(buf, start)
    nh_at = start + _MP_REACH_HEAD.size
    reserved_at = nh_at + nh_len
    family = f"afi {afi} safi {safi}"
    if reserved_at >= stop:
        raise _Malformed(
            "MP_REACH_NLRI next hop runs past the attribute",
            UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
            Action.AFISAFI_DISABLE,
            family,
        )
    allowed = _NEXT_HOP_LENGTHS.get((afi, safi))
    if allowed is not None and nh_len not in allowed:
        raise _Malformed(
            f"MP_REACH_NLRI next hop length {nh_len}",
            UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
            Action.AFISAFI_DISABLE,
            family,
        )
    return MpReach(afi, safi, buf[nh_at:reserved_at], buf[reserved_at + 1 : stop], buf[reserved_at])


def _encode_mp_reach(value: object, ctx: SessionContext) -> bytes:
    v: MpReach = value  # type: ignore[assignment]
    return b"".join((_MP_REACH_HEAD.pack(v.afi, v.safi, len(v.next_hop)), v.next_hop, bytes((v.reserved,)), v.nlri))


def _decode_mp_unreach(buf: bytes, start: int, stop: int, ctx: SessionContext) -> MpUnreach:
    if stop - start < _MP_UNREACH_HEAD.size:
        raise _Malformed("MP_UNREACH_NLRI shorter than its fixed fields", UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR)
    afi, safi = _MP_UNREACH_HEAD.unpack_from(buf, start)
    return MpUnreach(afi, safi, buf[start + _MP_UNREACH_HEAD.size : stop])


def _encode_mp_unreach(value: object, ctx: SessionContext) -> bytes:
    v: MpUnreach = value  # type: ignore[assignment]
    return _MP_UNREACH_HEAD.pack(v.afi, v.safi) + v.nlri


def _decode_ext_communities(buf: bytes, start: int, stop: int, ctx: SessionContext) -> tuple[bytes, ...]:
    count = _need_multiple(start, stop, _EXT_COMMUNITY_LEN, "EXTENDED_COMMUNITIES")
    return tuple(buf[at : at + _EXT_COMMUNITY_LEN] for at in range(start, start + count * _EXT_COMMUNITY_LEN, 8))


def _encode_joined(value: object, ctx: SessionContext) -> bytes:
    return b"".join(value)  # type: ignore[arg-type]


def _decode_large(buf: bytes, start: int, stop: int, ctx: SessionContext) -> tuple[tuple[int, int, int], ...]:
    count = _need_multiple(start, stop, _LARGE_COMMUNITY_LEN, "LARGE_COMMUNITIES")
    words = struct.unpack_from(f"!{3 * count}I", buf, start)
    return tuple(zip(words[0::3], words[1::3], words[2::3], strict=True))


def _encode_large(value: object, ctx: SessionContext) -> bytes:
    words = [w for triple in value for w in triple]  # type: ignore[attr-defined]
    return struct.pack(f"!{len(words)}I", *words)


def _decode_raw(buf: bytes, start: int, stop: int, ctx: SessionContext) -> bytes:
    return buf[start:stop]


def _raw_multiple(unit: int, name: str) -> Decoder:
    def decode(buf: bytes, start: int, stop: int, ctx: SessionContext) -> bytes:
        _need_multiple(start, stop, unit, name)
        return buf[start:stop]

    return decode


def _raw_length(length: int, name: str) -> Decoder:
    def decode(buf: bytes, start: int, stop: int, ctx: SessionContext) -> bytes:
        _need_length(start, stop, length, name)
        return buf[start:stop]

    return decode


def _encode_raw(value: object, ctx: SessionContext) -> bytes:
    return bytes(value)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------
# The table. Actions are those of RFC 7606 section 7 unless the `rfc` column names the attribute's own RFC.

_TAW = Action.TREAT_AS_WITHDRAW
_DISCARD = Action.ATTRIBUTE_DISCARD
_RESET = Action.SESSION_RESET

# fmt: off
ATTRIBUTE_CODECS: Mapping[int, AttributeCodec] = MappingProxyType({
    AttrCode.ORIGIN: AttributeCodec(
        "ORIGIN", _WELL_KNOWN, _decode_origin, _encode_origin, _TAW, "RFC 7606 7.1"),
    AttrCode.AS_PATH: AttributeCodec(
        "AS_PATH", _WELL_KNOWN, _decode_as_path, _encode_as_path, _TAW, "RFC 7606 7.2"),
    AttrCode.NEXT_HOP: AttributeCodec(
        "NEXT_HOP", _WELL_KNOWN, _decode_next_hop, _encode_address, _TAW, "RFC 7606 7.3"),
    AttrCode.MULTI_EXIT_DISC: AttributeCodec(
        "MULTI_EXIT_DISC", _OPTIONAL, _decode_u32("MULTI_EXIT_DISC"), _encode_u32, _TAW, "RFC 7606 7.4"),
    AttrCode.LOCAL_PREF: AttributeCodec(
        "LOCAL_PREF", _WELL_KNOWN, _decode_u32("LOCAL_PREF"), _encode_u32, _TAW, "RFC 7606 7.5"),
    AttrCode.ATOMIC_AGGREGATE: AttributeCodec(
        "ATOMIC_AGGREGATE", _WELL_KNOWN, _decode_atomic_aggregate, _encode_empty, _DISCARD, "RFC 7606 7.6"),
    AttrCode.AGGREGATOR: AttributeCodec(
        "AGGREGATOR", _OPTIONAL_TRANSITIVE, _decode_aggregator, _encode_aggregator, _DISCARD, "RFC 7606 7.7"),
    AttrCode.COMMUNITIES: AttributeCodec(
        "COMMUNITIES", _OPTIONAL_TRANSITIVE, _decode_communities, _encode_u32s, _TAW, "RFC 7606 7.8"),
    AttrCode.ORIGINATOR_ID: AttributeCodec(
        "ORIGINATOR_ID", _OPTIONAL, _decode_originator_id, _encode_address, _TAW, "RFC 7606 7.9"),
    AttrCode.CLUSTER_LIST: AttributeCodec(
        "CLUSTER_LIST", _OPTIONAL, _decode_cluster_list, _encode_addresses, _TAW, "RFC 7606 7.10"),
    AttrCode.MP_REACH_NLRI: AttributeCodec(
        "MP_REACH_NLRI", _OPTIONAL, _decode_mp_reach, _encode_mp_reach, _RESET, "RFC 7606 7.11, 5.3"),
    AttrCode.MP_UNREACH_NLRI: AttributeCodec(
        "MP_UNREACH_NLRI", _OPTIONAL, _decode_mp_unreach, _encode_mp_unreach, _RESET, "RFC 7606 7.12, 5.3"),
    AttrCode.EXTENDED_COMMUNITIES: AttributeCodec(
        "EXTENDED_COMMUNITIES", _OPTIONAL_TRANSITIVE, _decode_ext_communities, _encode_joined, _TAW,
        "RFC 7606 7.14"),
    AttrCode.AS4_PATH: AttributeCodec(
        "AS4_PATH", _OPTIONAL_TRANSITIVE, _decode_as4_path, _encode_as4_path, _DISCARD, "RFC 6793 6"),
    AttrCode.AS4_AGGREGATOR: AttributeCodec(
        "AS4_AGGREGATOR", _OPTIONAL_TRANSITIVE, _decode_as4_aggregator, _encode_as4_aggregator, _DISCARD,
        "RFC 6793 6"),
    AttrCode.PMSI_TUNNEL: AttributeCodec(
        "PMSI_TUNNEL", _OPTIONAL_TRANSITIVE, _decode_raw, _encode_raw, _TAW, "RFC 6514 5, RFC 7606 3.c"),
    AttrCode.TUNNEL_ENCAPSULATION: AttributeCodec(
        "TUNNEL_ENCAPSULATION", _OPTIONAL_TRANSITIVE, _decode_raw, _encode_raw, _DISCARD, "RFC 9012 13"),
    TRAFFIC_ENGINEERING: AttributeCodec(
        "TRAFFIC_ENGINEERING", _OPTIONAL, _decode_raw, _encode_raw, _TAW, "RFC 7606 7.13"),
    IPV6_EXT_COMMUNITIES: AttributeCodec(
        "IPV6_EXT_COMMUNITIES", _OPTIONAL_TRANSITIVE,
        _raw_multiple(_IPV6_EXT_COMMUNITY_LEN, "IPV6_EXT_COMMUNITIES"), _encode_raw, _TAW, "RFC 7606 7.15"),
    AttrCode.AIGP: AttributeCodec(
        "AIGP", _OPTIONAL, _decode_raw, _encode_raw, _DISCARD, "RFC 7311 4"),
    AttrCode.LARGE_COMMUNITIES: AttributeCodec(
        "LARGE_COMMUNITIES", _OPTIONAL_TRANSITIVE, _decode_large, _encode_large, _TAW, "RFC 8092 6"),
    AttrCode.BGPSEC_PATH: AttributeCodec(
        "BGPSEC_PATH", _OPTIONAL, _decode_raw, _encode_raw, _TAW, "RFC 8205 5.2"),
    AttrCode.OTC: AttributeCodec(
        "OTC", _OPTIONAL_TRANSITIVE, _raw_length(_OTC_LEN, "OTC"), _encode_raw, _TAW, "RFC 9234 5"),
    AttrCode.PREFIX_SID: AttributeCodec(
        "PREFIX_SID", _OPTIONAL_TRANSITIVE, _decode_raw, _encode_raw, _DISCARD, "RFC 8669 6"),
    AttrCode.ATTR_SET: AttributeCodec(
        "ATTR_SET", _OPTIONAL_TRANSITIVE, _decode_raw, _encode_raw, _TAW, "RFC 7606 7.16"),
})
# fmt: on

# The same table indexed by code (all 256), for the per-attribute lookup.
_CODEC_BY_CODE: tuple[AttributeCodec | None, ...] = tuple(ATTRIBUTE_CODECS.get(code) for code in range(256))

# RFC 7606 3.g: a repeated MP attribute makes the whole list malformed; any other repeat is dropped.
_MP_CODES = frozenset({AttrCode.MP_REACH_NLRI, AttrCode.MP_UNREACH_NLRI})
_UPDATE_ERROR = NotificationCode.UPDATE_MESSAGE_ERROR


def _error(kind: str, offset: int, length: int, action: Action, subcode: int, detail: str = "") -> ParseError:
    return ParseError(kind, offset, length, action, _UPDATE_ERROR, subcode, detail)


# ----------------------------------------------------------------------------------------------------
# The wire layer


def decode_attributes(
    data: bytes | memoryview, ctx: SessionContext
) -> tuple[tuple[Attribute, ...], tuple[ParseError, ...]]:
    """Decode a path attribute block; never raises on wire data.

    Returns the well-formed attributes in wire order and the errors, each at the offset of its attribute's
    flags octet within `data`. Malformed, repeated and discarded attributes are left out of the first tuple.
    """
    buf = bytes(data)
    end = len(buf)
    attrs: list[Attribute] = []
    errors: list[ParseError] = []
    seen: set[int] = set()
    codecs = _CODEC_BY_CODE
    i = 0
    while i < end:
        flags = buf[i]
        head = 4 if flags & _EXTENDED_LENGTH else 3
        if end - i < head:
            # RFC 7606 4: too few octets left for an attribute header; the rest of the block is unusable.
            errors.append(
                _error("attribute header truncated", i, end - i, _TAW, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST)
            )
            break
        code = buf[i + 1]
        length = ((buf[i + 2] << 8) | buf[i + 3]) if head == 4 else buf[i + 2]
        start = i + head
        stop = start + length
        if stop > end:
            # RFC 7606 4: the attribute overruns the block. Treat-as-withdraw, unless it is an MP attribute
            # whose NLRI can then not be found (RFC 7606 4, last paragraph: session reset).
            action = _RESET if code in _MP_CODES else _TAW
            errors.append(
                _error(
                    "attribute runs past the end of the attribute block",
                    i,
                    end - i,
                    action,
                    UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
                    f"code {code} length {length}",
                )
            )
            break
        if code in seen:
            mp = code in _MP_CODES
            errors.append(
                _error("repeated MP attribute" if mp else "repeated attribute", i, stop - i,
                       _RESET if mp else _DISCARD, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, f"code {code}")
            )  # fmt: skip
            i = stop
            continue
        seen.add(code)
        codec = codecs[code]
        if codec is None:
            if flags & _OPTIONAL:
                # RFC 4271 5: unknown optional attributes are kept (transitive) or ignored; we keep both, raw.
                attrs.append(Attribute(code, flags, buf[start:stop]))
            else:
                # RFC 4271 6.3, not softened by RFC 7606: an unrecognised well-known attribute resets.
                errors.append(
                    _error("unrecognized well-known attribute", i, stop - i, _RESET,
                           UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, f"code {code}")
                )  # fmt: skip
            i = stop
            continue
        if flags & _CATEGORY_BITS != codec.flags:
            # RFC 7606 3.c: treated as malformed, with the attribute's own action.
            errors.append(
                _error(f"{codec.name} flags conflict", i, stop - i, codec.on_error,
                       UpdateSubcode.ATTRIBUTE_FLAGS_ERROR, f"flags 0x{flags:02x}")
            )  # fmt: skip
            i = stop
            continue
        try:
            value = codec.decode(buf, start, stop, ctx)
        except _Malformed as bad:
            errors.append(_error(bad.kind, i, stop - i, bad.action or codec.on_error, bad.subcode, bad.detail))
        else:
            attrs.append(_new_tuple(Attribute, (code, flags, value)))
        i = stop
    return tuple(attrs), tuple(errors)


def encode_attribute(attr: Attribute, ctx: SessionContext) -> bytes:
    """One attribute with its header; flags as given. A value too long for them is a programmer error."""
    codec = ATTRIBUTE_CODECS.get(attr.code)
    value = codec.encode(attr.value, ctx) if codec is not None else bytes(attr.value)  # type: ignore[arg-type]
    if attr.flags & AttrFlag.EXTENDED_LENGTH:
        return bytes((attr.flags, attr.code)) + _U16.pack(len(value)) + value
    if len(value) > _MAX_SHORT_LEN:
        raise ValueError(f"attribute {attr.code} value of {len(value)} octets needs the Extended Length flag")
    return bytes((attr.flags, attr.code, len(value))) + value


def encode_attributes(attrs: Iterable[Attribute], ctx: SessionContext) -> bytes:
    """The attribute block for `attrs`, in the order given; the inverse of `decode_attributes`."""
    return b"".join(encode_attribute(a, ctx) for a in attrs)


# ----------------------------------------------------------------------------------------------------
# The semantic view


@dataclass(frozen=True, slots=True)
class PathAttributes:
    """What one route's attribute block means. Built once per distinct block and shared by its routes.

    as_path has AS4_PATH merged and aggregator AS4_AGGREGATOR merged (RFC 6793 4.2.3) on 2-octet sessions.
    attributes holds everything decoded, in wire order, MP_REACH/MP_UNREACH and unknown codes included.
    action is the strongest RFC 7606 action among `errors`.
    """

    origin: int | None = None
    as_path: tuple[AsSegment, ...] = ()
    next_hop: str | None = None
    med: int | None = None
    local_pref: int | None = None
    atomic_aggregate: bool = False
    aggregator: Aggregator | None = None
    communities: tuple[int, ...] = ()
    ext_communities: tuple[bytes, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    originator_id: str | None = None
    cluster_list: tuple[str, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    errors: tuple[ParseError, ...] = ()
    action: Action = Action.NONE

    def get(self, code: int) -> Attribute | None:
        """The decoded attribute with this code, if present."""
        for attr in self.attributes:
            if attr.code == code:
                return attr
        return None


# Where each decoded attribute lands in the view (plain int keys: enum lookups cost on this path). AS_PATH,
# AGGREGATOR and ATOMIC_AGGREGATE are placed by `path_attributes` itself.
_VIEW_FIELDS: Mapping[int, str] = MappingProxyType(
    {
        int(AttrCode.ORIGIN): "origin",
        int(AttrCode.NEXT_HOP): "next_hop",
        int(AttrCode.MULTI_EXIT_DISC): "med",
        int(AttrCode.LOCAL_PREF): "local_pref",
        int(AttrCode.COMMUNITIES): "communities",
        int(AttrCode.EXTENDED_COMMUNITIES): "ext_communities",
        int(AttrCode.LARGE_COMMUNITIES): "large_communities",
        int(AttrCode.ORIGINATOR_ID): "originator_id",
        int(AttrCode.CLUSTER_LIST): "cluster_list",
    }
)
_AS_PATH = int(AttrCode.AS_PATH)
_AGGREGATOR = int(AttrCode.AGGREGATOR)
_ATOMIC_AGGREGATE = int(AttrCode.ATOMIC_AGGREGATE)
_AS4_PATH = int(AttrCode.AS4_PATH)
_AS4_AGGREGATOR = int(AttrCode.AS4_AGGREGATOR)


def path_attributes(data: bytes | memoryview, ctx: SessionContext) -> PathAttributes:
    """Decode an attribute block into the view routes share; never raises on wire data."""
    common = _common_attributes(data if type(data) is bytes else bytes(data), ctx.as4)
    if common is not None:
        return common
    attrs, errors = decode_attributes(data, ctx)
    fields: dict[str, object] = {}
    as_path: tuple[AsSegment, ...] = ()
    aggregator: Aggregator | None = None
    as4_path: tuple[AsSegment, ...] | None = None
    as4_aggregator: Aggregator | None = None
    view_fields = _VIEW_FIELDS
    for attr in attrs:
        code = attr.code
        name = view_fields.get(code)
        if name is not None:
            fields[name] = attr.value
        elif code == _AS_PATH:
            as_path = attr.value  # type: ignore[assignment]
        elif code == _AGGREGATOR:
            aggregator = attr.value  # type: ignore[assignment]
        elif code == _ATOMIC_AGGREGATE:
            fields["atomic_aggregate"] = True
        elif code == _AS4_PATH:
            as4_path = attr.value  # type: ignore[assignment]
        elif code == _AS4_AGGREGATOR:
            as4_aggregator = attr.value  # type: ignore[assignment]
    if not ctx.as4 and (as4_path is not None or as4_aggregator is not None):
        notes: list[ParseError] = []
        as_path, aggregator = _merge_as4(
            as_path, aggregator, as4_path, as4_aggregator, _offset_of(data, _AS4_PATH), notes
        )
        errors += tuple(notes)
    fields["as_path"] = as_path
    fields["aggregator"] = aggregator
    fields["attributes"] = attrs
    fields["errors"] = errors
    fields["action"] = strongest(errors) if errors else Action.NONE
    return _new_path_attributes(fields)


# A frozen dataclass sets each of its 15 fields through object.__setattr__ in __init__ (about 5 us); this builds
# the same object by writing the slots directly, once per distinct attribute block. The defaults come from the
# class, so the result equals PathAttributes(**fields).
_PATH_ATTRIBUTE_SLOTS = tuple(
    (f.name, PathAttributes.__dict__[f.name].__set__, f.default) for f in dataclasses.fields(PathAttributes)
)


def _new_path_attributes(fields: dict[str, object]) -> PathAttributes:
    out = object.__new__(PathAttributes)
    get = fields.get
    for name, store, default in _PATH_ATTRIBUTE_SLOTS:
        store(out, get(name, default))
    return out


_NO_ERRORS: tuple[ParseError, ...] = ()
_ACTION_NONE = Action.NONE
_PATH_ATTRIBUTES_NEW = object.__new__
_SLOT_SETTERS = {name: store for name, store, _default in _PATH_ATTRIBUTE_SLOTS}
_SET_ORIGIN = _SLOT_SETTERS["origin"]
_SET_AS_PATH = _SLOT_SETTERS["as_path"]
_SET_NEXT_HOP = _SLOT_SETTERS["next_hop"]
_SET_MED = _SLOT_SETTERS["med"]
_SET_LOCAL_PREF = _SLOT_SETTERS["local_pref"]
_SET_ATOMIC_AGGREGATE = _SLOT_SETTERS["atomic_aggregate"]
_SET_AGGREGATOR = _SLOT_SETTERS["aggregator"]
_SET_COMMUNITIES = _SLOT_SETTERS["communities"]
_SET_EXT_COMMUNITIES = _SLOT_SETTERS["ext_communities"]
_SET_LARGE_COMMUNITIES = _SLOT_SETTERS["large_communities"]
_SET_ORIGINATOR_ID = _SLOT_SETTERS["originator_id"]
_SET_CLUSTER_LIST = _SLOT_SETTERS["cluster_list"]
_SET_ATTRIBUTES = _SLOT_SETTERS["attributes"]
_SET_ERRORS = _SLOT_SETTERS["errors"]
_SET_ACTION = _SLOT_SETTERS["action"]
_SEGMENT_TYPE_OK = tuple(t in _SEGMENT_TYPES for t in range(256))


def _common_attributes(buf: bytes, as4: bool) -> PathAttributes | None:
    """`path_attributes` for the blocks a table is made of, in one pass without the codec table: well-formed
    ORIGIN, AS_PATH, NEXT_HOP, MULTI_EXIT_DISC, LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR, COMMUNITIES,
    EXTENDED_COMMUNITIES and LARGE_COMMUNITIES, each once with the flags its codec wants. None for anything else
    (another code, a repeat, a flags conflict, a length or value the codec would reject): the general decoder
    then says exactly what. What it returns equals what the general path builds, value for value."""
    end = len(buf)
    attrs: list[Attribute] = []
    append = attrs.append
    seen = 0
    origin = next_hop = med = local_pref = aggregator = None
    as_path: tuple[AsSegment, ...] = ()
    communities: tuple[int, ...] = ()
    ext_communities: tuple[bytes, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    atomic_aggregate = False
    i = 0
    while i < end:
        flags = buf[i]
        if flags & _EXTENDED_LENGTH:
            if end - i < 4:
                return None
            start = i + 4
            stop = start + ((buf[i + 2] << 8) | buf[i + 3])
        else:
            if end - i < 3:
                return None
            start = i + 3
            stop = start + buf[i + 2]
        if stop > end:
            return None
        code = buf[i + 1]
        if code > 32 or seen >> code & 1:
            return None
        seen |= 1 << code
        category = flags & _CATEGORY_BITS
        size = stop - start
        value: object
        if code == 2:  # AS_PATH: segments as _decode_segments reads them, with the session's AS width
            if category != _WELL_KNOWN:
                return None
            width = 4 if as4 else 2
            layouts = _SEGMENT_LAYOUTS[width]
            segments = []
            j = start
            while j < stop:
                if stop - j < _SEGMENT_HEAD:
                    return None
                seg_type = buf[j]
                count = buf[j + 1]
                nxt = j + _SEGMENT_HEAD + count * width
                if not _SEGMENT_TYPE_OK[seg_type] or count == 0 or nxt > stop:
                    return None
                segments.append(_new_tuple(AsSegment, (seg_type, layouts[count].unpack_from(buf, j + _SEGMENT_HEAD))))
                j = nxt
            value = as_path = tuple(segments)
        elif code == 1:  # ORIGIN
            if category != _WELL_KNOWN or size != 1 or buf[start] > _ORIGIN_MAX:
                return None
            value = origin = buf[start]
        elif code == 3:  # NEXT_HOP
            if category != _WELL_KNOWN or size != _IPV4_LEN:
                return None
            value = next_hop = _ipv4(buf, start)
        elif code == 8:  # COMMUNITIES
            if category != _OPTIONAL_TRANSITIVE or size == 0 or size % _COMMUNITY_LEN:
                return None
            count = size // _COMMUNITY_LEN
            if count < len(_U32_LAYOUTS):
                value = communities = _U32_LAYOUTS[count].unpack_from(buf, start)
            else:
                value = communities = struct.unpack_from(f"!{count}I", buf, start)
        elif code == 4 or code == 5:  # MULTI_EXIT_DISC (optional), LOCAL_PREF (well-known)
            if category != (_OPTIONAL if code == 4 else _WELL_KNOWN) or size != 4:
                return None
            value = _U32.unpack_from(buf, start)[0]
            if code == 4:
                med = value
            else:
                local_pref = value
        elif code == 32:  # LARGE_COMMUNITIES
            if category != _OPTIONAL_TRANSITIVE or size == 0 or size % _LARGE_COMMUNITY_LEN:
                return None
            words = struct.unpack_from(f"!{size // 4}I", buf, start)
            value = large_communities = tuple(zip(words[0::3], words[1::3], words[2::3], strict=True))
        elif code == 16:  # EXTENDED_COMMUNITIES
            if category != _OPTIONAL_TRANSITIVE or size == 0 or size % _EXT_COMMUNITY_LEN:
                return None
            value = ext_communities = tuple(buf[at : at + _EXT_COMMUNITY_LEN] for at in range(start, stop, 8))
        elif code == 6:  # ATOMIC_AGGREGATE
            if category != _WELL_KNOWN or size:
                return None
            value = None
            atomic_aggregate = True
        elif code == 7:  # AGGREGATOR
            layout = _AGGREGATOR4 if as4 else _AGGREGATOR2
            if category != _OPTIONAL_TRANSITIVE or size != layout.size:
                return None
            value = aggregator = Aggregator(layout.unpack_from(buf, start)[0], _ipv4(buf, stop - _IPV4_LEN))
        else:
            return None
        append(_new_tuple(Attribute, (code, flags, value)))
        i = stop
    out = _PATH_ATTRIBUTES_NEW(PathAttributes)
    _SET_ORIGIN(out, origin)
    _SET_AS_PATH(out, as_path)
    _SET_NEXT_HOP(out, next_hop)
    _SET_MED(out, med)
    _SET_LOCAL_PREF(out, local_pref)
    _SET_ATOMIC_AGGREGATE(out, atomic_aggregate)
    _SET_AGGREGATOR(out, aggregator)
    _SET_COMMUNITIES(out, communities)
    _SET_EXT_COMMUNITIES(out, ext_communities)
    _SET_LARGE_COMMUNITIES(out, large_communities)
    _SET_ORIGINATOR_ID(out, None)
    _SET_CLUSTER_LIST(out, ())
    _SET_ATTRIBUTES(out, tuple(attrs))
    _SET_ERRORS(out, _NO_ERRORS)
    _SET_ACTION(out, _ACTION_NONE)
    return out


def _offset_of(data: bytes | memoryview, code: int) -> int:
    """Where an attribute starts in the block (only needed for the rare AS4_PATH notes)."""
    i = 0
    buf = bytes(data)
    while i + 3 <= len(buf):
        ext = buf[i] & _EXTENDED_LENGTH
        if ext and i + 4 > len(buf):
            break
        length = _U16.unpack_from(buf, i + 2)[0] if ext else buf[i + 2]
        if buf[i + 1] == code:
            return i
        i += (4 if ext else 3) + length
    return 0


def _merge_as4(
    as_path: tuple[AsSegment, ...],
    aggregator: Aggregator | None,
    as4_path: tuple[AsSegment, ...] | None,
    as4_aggregator: Aggregator | None,
    as4_offset: int,
    notes: list[ParseError],
) -> tuple[tuple[AsSegment, ...], Aggregator | None]:
    """RFC 6793 4.2.3: the AS path and aggregator of a route received from a 2-octet AS speaker."""
    if aggregator is not None and as4_aggregator is not None:
        if aggregator.asn != AS_TRANS:
            # Both received and AGGREGATOR names a real AS: a 2-octet speaker aggregated after the AS4
            # attributes were attached, so they describe an older path and are both ignored.
            return as_path, aggregator
        aggregator = as4_aggregator
    if as4_path is None:
        return as_path, aggregator
    if any(seg.type in _CONFED_SEGMENTS for seg in as4_path):
        # RFC 6793 6: confederation segments must not be in AS4_PATH; drop them and go on.
        as4_path = tuple(seg for seg in as4_path if seg.type not in _CONFED_SEGMENTS)
        notes.append(
            _error("AS4_PATH carries confederation segments", as4_offset, 0, Action.NONE,
                   UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, "segments ignored")
        )  # fmt: skip
    return merge_as4_path(as_path, as4_path), aggregator


def merge_as4_path(as_path: tuple[AsSegment, ...], as4_path: tuple[AsSegment, ...]) -> tuple[AsSegment, ...]:
    """RFC 6793 4.2.3: prepend to AS4_PATH the leading part of AS_PATH the AS4 speakers did not see.

    AS numbers are counted as for route selection (AS_SET 1, confederation segments 0). An AS4_PATH longer
    than AS_PATH is ignored. Confederation segments of AS_PATH are carried over when they lead or follow a
    segment that was carried over whole.
    """
    missing = as_path_length(as_path) - as_path_length(as4_path)
    if missing < 0:
        return as_path
    head: list[AsSegment] = []
    whole = True  # the previous AS_PATH segment was prepended entirely (a leading one counts as adjacent)
    for seg in as_path:
        if seg.type in _CONFED_SEGMENTS:
            if not whole:
                break
            head.append(seg)
            continue
        if missing == 0:
            break
        if seg.type == SegmentType.AS_SET:
            head.append(seg)
            missing -= 1
            continue
        take = min(missing, len(seg.asns))
        head.append(seg if take == len(seg.asns) else AsSegment(seg.type, seg.asns[:take]))
        missing -= take
        whole = take == len(seg.asns)
    if (
        head
        and as4_path
        and head[-1].type == SegmentType.AS_SEQUENCE
        and as4_path[0].type == SegmentType.AS_SEQUENCE
        and len(head[-1].asns) + len(as4_path[0].asns) <= _MAX_SEGMENT_ASNS
    ):
        # One sequence split across the two attributes reads as one, as a 4-octet session would have sent it.
        joined = AsSegment(SegmentType.AS_SEQUENCE, head[-1].asns + as4_path[0].asns)
        return (*head[:-1], joined, *as4_path[1:])
    return (*head, *as4_path)


def missing_mandatory(attrs: PathAttributes, has_nlri: bool, has_ipv4_nlri: bool) -> tuple[ParseError, ...]:
    """RFC 7606 3.d: well-known mandatory attributes absent from an UPDATE that carries NLRI.

    NEXT_HOP is needed only for routes in the IPv4 NLRI field (RFC 4760 3 moves the others' next hop into
    MP_REACH_NLRI). LOCAL_PREF's presence depends on iBGP vs eBGP, which this layer does not know. Offsets are
    0 (the block as a whole).
    """
    if not has_nlri:
        return ()
    out = []
    if attrs.origin is None:
        out.append(_missing("ORIGIN", AttrCode.ORIGIN))
    if not _has(attrs, _AS_PATH):
        out.append(_missing("AS_PATH", AttrCode.AS_PATH))
    if has_ipv4_nlri and attrs.next_hop is None:
        out.append(_missing("NEXT_HOP", AttrCode.NEXT_HOP))
    return tuple(out)


def _has(attrs: PathAttributes, code: int) -> bool:
    return code in map(_attribute_code, attrs.attributes)  # in C: this runs once per distinct attribute set


_attribute_code = itemgetter(0)  # Attribute.code


def _missing(name: str, code: int) -> ParseError:
    return _error(f"missing {name}", 0, 0, _TAW, UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE, f"code {code}")


# ----------------------------------------------------------------------------------------------------
# AS path helpers and text forms


def as_path_length(segments: Iterable[AsSegment]) -> int:
    """RFC 4271 9.1.2.2 a + RFC 5065 5.3: AS_SEQUENCE counts its ASes, AS_SET 1, confederation segments 0."""
    total = 0
    for seg in segments:
        if seg.type == SegmentType.AS_SEQUENCE:
            total += len(seg.asns)
        elif seg.type == SegmentType.AS_SET:
            total += 1
    return total


def neighbor_as(segments: Iterable[AsSegment]) -> int | None:
    """RFC 4271 9.1.2.2 c: the first AS of the path, past any confederation segments (RFC 5065 5.3).

    None for an empty path (a route originated inside the AS) or when the path starts with an AS_SET.
    """
    for seg in segments:
        if seg.type in _CONFED_SEGMENTS:
            continue
        return seg.asns[0] if seg.type == SegmentType.AS_SEQUENCE and seg.asns else None
    return None


# Text per segment type, like birdc and gobgp: sequences bare, sets in braces, confederation in parentheses
# (sequence) or brackets (set).
_SEGMENT_TEXT: Mapping[int, tuple[str, str, str]] = MappingProxyType(
    {
        SegmentType.AS_SEQUENCE: ("", " ", ""),
        SegmentType.AS_SET: ("{", ",", "}"),
        SegmentType.AS_CONFED_SEQUENCE: ("(", " ", ")"),
        SegmentType.AS_CONFED_SET: ("[", ",", "]"),
    }
)


def format_as_path(segments: Iterable[AsSegment]) -> str:
    """'64500 65001 {64601,64602} (65010 65011) [65020,65021]'; an empty path is ''."""
    parts = []
    for seg in segments:
        opening, sep, closing = _SEGMENT_TEXT.get(seg.type, ("?(", " ", ")"))
        parts.append(opening + sep.join(map(str, seg.asns)) + closing)
    return " ".join(parts)


# JSON keys of the confederation segments (RFC 5065 3), which must not read as AS numbers of the path.
_CONFED_JSON_KEY: Mapping[int, str] = MappingProxyType(
    {SegmentType.AS_CONFED_SEQUENCE: "confed_sequence", SegmentType.AS_CONFED_SET: "confed_set"}
)


def as_path_json(segments: Iterable[AsSegment]) -> list[object]:
    """The AS path for `--json`: AS_SEQUENCE members as ints, an AS_SET as a nested list of ints, and a
    confederation segment as a nested object, `{"confed_sequence": [...]}` or `{"confed_set": [...]}`.

    '64500 {64601,64602} (65010 65011)' -> [64500, [64601, 64602], {"confed_sequence": [65010, 65011]}].
    """
    out: list[object] = []
    for seg in segments:
        if seg.type == SegmentType.AS_SEQUENCE:
            out.extend(seg.asns)
        elif seg.type == SegmentType.AS_SET:
            out.append(list(seg.asns))
        else:
            out.append({_CONFED_JSON_KEY.get(seg.type, f"segment_{seg.type}"): list(seg.asns)})
    return out


def format_community(community: int) -> str:
    """RFC 1997: 'AS:value', well-known communities included ('65535:65281' is NO_EXPORT)."""
    return f"{community >> 16}:{community & 0xFFFF}"


def format_large(community: tuple[int, int, int]) -> str:
    """RFC 8092 3: 'global:local1:local2'."""
    return f"{community[0]}:{community[1]}:{community[2]}"


def next_hop_addresses(afi: int, safi: int, next_hop: bytes) -> tuple[str, ...]:
    """The addresses in an MP_REACH_NLRI next hop: one, or global + link-local; ('<hex>',) when unrecognised.

    4 octets: IPv4. 16: IPv6 (also for IPv4 NLRI, RFC 8950). 32: IPv6 global + link-local (RFC 2545 3). VPN
    families (SAFI 128/129): the same, each after an all-zero Route Distinguisher (12, 24 or 48 octets).
    An empty next hop (FlowSpec) gives ().
    """
    nh = bytes(next_hop)
    if not nh:
        return ()
    if safi in (Safi.MPLS_VPN, MPLS_VPN_MULTICAST_SAFI):
        parts = _split_rd(nh)
        if parts is None:
            return (nh.hex(),)
        return tuple(_address(p) for p in parts)
    size = len(nh)
    if size == _IPV4_LEN:
        return (_ipv4(nh, 0),)
    if size == _IPV6_LEN:
        return (_address(nh),)
    if size == 2 * _IPV6_LEN:
        return (_address(nh[:_IPV6_LEN]), _address(nh[_IPV6_LEN:]))
    return (nh.hex(),)


def _split_rd(nh: bytes) -> list[bytes] | None:
    """VPN next hop: RD+IPv4, RD+IPv6 or RD+IPv6 twice, each RD zero (RFC 4364 4.3.2, RFC 4659 3.2.1)."""
    size = len(nh)
    if size in (_RD_LEN + _IPV4_LEN, _RD_LEN + _IPV6_LEN):
        chunks = [nh]
    elif size == 2 * (_RD_LEN + _IPV6_LEN):
        chunks = [nh[: size // 2], nh[size // 2 :]]
    else:
        return None
    if any(c[:_RD_LEN] != _ZERO_RD for c in chunks):
        return None
    return [c[_RD_LEN:] for c in chunks]


def _address(raw: bytes) -> str:
    # inet_ntop gives RFC 5952 text as ipaddress does, at a tenth of the cost
    return _ipv4(raw, 0) if len(raw) == _IPV4_LEN else socket.inet_ntop(socket.AF_INET6, raw)
