"""LSA codecs, OSPFv2 (RFC 2328 A.4, RFC 3101, RFC 5250) and OSPFv3 (RFC 5340 A.4): header, bodies, checksum.

`decode_lsa(data, offset, version)` frames one LSA by its header length, verifies its Fletcher checksum and
decodes the body through `BODY_CODECS[(version, type)]`. A body that does not decode leaves the LSA framed: it
becomes `RawLsa` and `Lsa.problem` says where (offsets are into `data`). Only framing errors (a header that does
not fit, a length below 20 or beyond the data) raise `DecodeError`.

`encode_lsa(lsa)` writes the header exactly as recorded (length and checksum included) and the body from its
fields, so decode -> encode gives the same bytes. `seal_lsa(lsa)` returns the LSA with length and checksum
computed, for building test LSAs.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from types import MappingProxyType

from parsers.errors import Action, DecodeError, ParseError
from parsers.ospf.checksum import fletcher_checksum, fletcher_ok
from parsers.ospf.lsa import (
    LSA_HEADER_LEN,
    External3Lsa,
    ExternalLsa,
    ExternalTos,
    InterAreaPrefixLsa,
    InterAreaRouterLsa,
    IntraAreaPrefixLsa,
    Link3Lsa,
    Lsa,
    Lsa3Type,
    LsaBody,
    LsaHeader,
    LsaType,
    Network3Lsa,
    NetworkLsa,
    OpaqueLsa,
    OpaqueType,
    Prefix3,
    RawLsa,
    Router3Link,
    Router3Lsa,
    RouterLink,
    RouterLsa,
    SummaryLsa,
    TosMetric,
)
from parsers.ospf.opaque import decode_tlvs, encode_tlvs

__all__ = [
    "BODY_CODECS",
    "BodyCodec",
    "decode_lsa",
    "decode_lsa_header",
    "encode_lsa",
    "encode_lsa_header",
    "seal_lsa",
]

_HEADER_V2 = struct.Struct("!HBB4s4siHH")  # age, options, type, ID, advertising router, seq, checksum, length
_HEADER_V3 = struct.Struct("!HH4s4siHH")  # age, type, ID, advertising router, seq, checksum, length
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_ROUTER_LINK = struct.Struct("!4s4sBBH")  # link ID, link data, type, # TOS, metric
_ROUTER_LINK3 = struct.Struct("!BxHI I4s")  # type, 0, metric, interface ID, neighbour interface ID, neighbour RID
_EXTERNAL_TOS = struct.Struct("!I4sI")  # E|TOS|metric, forwarding address, tag
_METRIC_MASK = 0xFFFFFF
_E_BIT = 0x80  # v2 external: E in the metric word's top byte
_E3, _F3, _T3 = 0x04, 0x02, 0x01  # v3 AS-external flags (RFC 5340 A.4.7)
_ADDRESS_V6 = 16
_MAX_PREFIX_V6 = 128


def _error(kind: str, offset: int, length: int, detail: str) -> DecodeError:
    return DecodeError(ParseError(kind, offset, length, Action.NONE, detail=detail))


def _need(start: int, size: int, end: int, what: str) -> None:
    if start + size > end:
        raise _error("ospf lsa truncated", start, end - start, f"{what} needs {size} bytes, {max(end - start, 0)} left")


def _rid(data: bytes, at: int) -> IPv4Address:
    return IPv4Address(data[at : at + 4])


# --- header


def decode_lsa_header(data: bytes, offset: int = 0, version: int = 2) -> LsaHeader:
    """The 20-byte LSA header at `offset` (as in DD and LSAck packets and in front of every LSA)."""
    if offset + LSA_HEADER_LEN > len(data):
        raise _error("ospf lsa header truncated", offset, len(data) - offset, "an LSA header needs 20 bytes")
    if version == 3:
        age, kind, ls_id, adv, seq, checksum, length = _HEADER_V3.unpack_from(data, offset)
        options = 0
    else:
        age, options, kind, ls_id, adv, seq, checksum, length = _HEADER_V2.unpack_from(data, offset)
    return LsaHeader(age, options, kind, IPv4Address(ls_id), IPv4Address(adv), seq, checksum, length, version)


def encode_lsa_header(header: LsaHeader) -> bytes:
    ls_id, adv = header.ls_id.packed, header.adv_router.packed
    if header.version == 3:
        return _HEADER_V3.pack(header.age, header.type, ls_id, adv, header.seq, header.checksum, header.length)
    return _HEADER_V2.pack(
        header.age, header.options, header.type, ls_id, adv, header.seq, header.checksum, header.length
    )


# --- OSPFv2 bodies (start, end are offsets into data; the header has been read)


def _tos_list(data: bytes, pos: int, count: int, end: int) -> tuple[tuple[TosMetric, ...], int]:
    _need(pos, 4 * count, end, f"{count} TOS entries")
    entries = tuple(TosMetric(data[pos + 4 * i], _U16.unpack_from(data, pos + 4 * i + 2)[0]) for i in range(count))
    return entries, pos + 4 * count


def _router(data: bytes, start: int, end: int, header: LsaHeader) -> RouterLsa:
    _need(start, 4, end, "router-LSA flags and link count")
    flags, count = data[start], _U16.unpack_from(data, start + 2)[0]
    pos, links = start + 4, []
    for _ in range(count):
        _need(pos, _ROUTER_LINK.size, end, "router-LSA link")
        link_id, link_data, kind, tos_count, metric = _ROUTER_LINK.unpack_from(data, pos)
        tos, pos = _tos_list(data, pos + _ROUTER_LINK.size, tos_count, end)
        links.append(RouterLink(IPv4Address(link_id), IPv4Address(link_data), kind, metric, tos))
    if pos != end:
        raise _error("ospf lsa length", pos, end - pos, f"{end - pos} bytes after {count} router links")
    return RouterLsa(flags, tuple(links))


def _encode_router(body: RouterLsa) -> bytes:
    out = bytearray((body.flags, 0)) + _U16.pack(len(body.links))
    for link in body.links:
        out += _ROUTER_LINK.pack(link.link_id.packed, link.data.packed, link.type, len(link.tos), link.metric)
        for entry in link.tos:
            out += bytes((entry.tos, 0)) + _U16.pack(entry.metric)
    return bytes(out)


def _network(data: bytes, start: int, end: int, header: LsaHeader) -> NetworkLsa:
    _need(start, 4, end, "network-LSA mask")
    if (end - start) % 4:
        raise _error("ospf lsa length", start, end - start, "network-LSA body is not whole 4-byte words")
    return NetworkLsa(_rid(data, start), tuple(_rid(data, at) for at in range(start + 4, end, 4)))


def _encode_network(body: NetworkLsa) -> bytes:
    return body.mask.packed + b"".join(router.packed for router in body.attached)


def _summary(data: bytes, start: int, end: int, header: LsaHeader) -> SummaryLsa:
    _need(start, 8, end, "summary-LSA mask and metric")
    if (end - start) % 4:
        raise _error("ospf lsa length", start, end - start, "summary-LSA body is not whole 4-byte words")
    tos = []
    for at in range(start + 8, end, 4):
        (word,) = _U32.unpack_from(data, at)
        tos.append(TosMetric(word >> 24, word & _METRIC_MASK))
    return SummaryLsa(_rid(data, start), _U32.unpack_from(data, start + 4)[0] & _METRIC_MASK, tuple(tos))


def _encode_summary(body: SummaryLsa) -> bytes:
    out = body.mask.packed + _U32.pack(body.metric & _METRIC_MASK)
    return out + b"".join(_U32.pack(entry.tos << 24 | entry.metric & _METRIC_MASK) for entry in body.tos)


def _external(data: bytes, start: int, end: int, header: LsaHeader) -> ExternalLsa:
    _need(start, 4 + _EXTERNAL_TOS.size, end, "external-LSA")
    if (end - start - 4) % _EXTERNAL_TOS.size:
        raise _error("ospf lsa length", start, end - start, "external-LSA body is not mask + 12-byte entries")
    entries = []
    for at in range(start + 4, end, _EXTERNAL_TOS.size):
        word, forwarding, tag = _EXTERNAL_TOS.unpack_from(data, at)
        top = word >> 24
        entries.append(
            ExternalTos(bool(top & _E_BIT), top & ~_E_BIT, word & _METRIC_MASK, IPv4Address(forwarding), tag)
        )
    first = entries[0]
    return ExternalLsa(_rid(data, start), first.e_bit, first.metric, first.forwarding, first.tag, tuple(entries[1:]))


def _encode_external(body: ExternalLsa) -> bytes:
    out = bytearray(body.mask.packed)
    first = ExternalTos(body.e_bit, 0, body.metric, body.forwarding, body.tag)
    for entry in (first, *body.tos):
        top = (_E_BIT if entry.e_bit else 0) | entry.tos
        out += _EXTERNAL_TOS.pack(top << 24 | entry.metric & _METRIC_MASK, entry.forwarding.packed, entry.tag)
    return bytes(out)


def _opaque(data: bytes, start: int, end: int, header: LsaHeader) -> OpaqueLsa:
    ls_id = int(header.ls_id)
    opaque_type, opaque_id = ls_id >> 24, ls_id & _METRIC_MASK
    try:
        tlvs = decode_tlvs(data, start, end, (opaque_type,))
    except DecodeError:
        if opaque_type in OpaqueType._value2member_map_:
            raise
        return OpaqueLsa(opaque_type, opaque_id, (), bytes(data[start:end]))  # not TLVs: an unknown format
    return OpaqueLsa(opaque_type, opaque_id, tlvs)


def _encode_opaque(body: OpaqueLsa) -> bytes:
    return encode_tlvs(body.tlvs) if body.tlvs or not body.data else body.data


# --- OSPFv3 bodies


def _prefix3(data: bytes, pos: int, end: int) -> tuple[int, int, int, IPv6Network, int]:
    """(length, options, 16-bit field, network, next offset) of an RFC 5340 A.4.1 address prefix."""
    _need(pos, 4, end, "prefix")
    length, options, field = data[pos], data[pos + 1], _U16.unpack_from(data, pos + 2)[0]
    if length > _MAX_PREFIX_V6:
        raise _error("ospf prefix length", pos, 1, f"prefix length {length} > 128")
    size = (length + 31) // 32 * 4
    _need(pos + 4, size, end, f"/{length} prefix")
    address = bytes(data[pos + 4 : pos + 4 + size]).ljust(_ADDRESS_V6, b"\x00")
    network = IPv6Network((int.from_bytes(address, "big"), length), strict=False)
    return length, options, field, network, pos + 4 + size


def _encode_prefix3(network: IPv6Network, options: int, field: int) -> bytes:
    size = (network.prefixlen + 31) // 32 * 4
    return bytes((network.prefixlen, options)) + _U16.pack(field) + network.network_address.packed[:size]


def _prefixes3(data: bytes, pos: int, end: int, count: int) -> tuple[tuple[Prefix3, ...], int]:
    found = []
    for _ in range(count):
        _length, options, field, network, pos = _prefix3(data, pos, end)
        found.append(Prefix3(network, options, field))
    return tuple(found), pos


def _done(pos: int, end: int, what: str) -> None:
    if pos != end:
        raise _error("ospf lsa length", pos, end - pos, f"{end - pos} bytes left after the {what}")


def _router3(data: bytes, start: int, end: int, header: LsaHeader) -> Router3Lsa:
    _need(start, 4, end, "router-LSA flags and options")
    (word,) = _U32.unpack_from(data, start)
    if (end - start - 4) % _ROUTER_LINK3.size:
        raise _error("ospf lsa length", start, end - start, "router-LSA links are not whole 16-byte entries")
    links = []
    for at in range(start + 4, end, _ROUTER_LINK3.size):
        kind, metric, interface, neighbor_interface, neighbor = _ROUTER_LINK3.unpack_from(data, at)
        links.append(Router3Link(kind, metric, interface, neighbor_interface, IPv4Address(neighbor)))
    return Router3Lsa(word >> 24, word & _METRIC_MASK, tuple(links))


def _encode_router3(body: Router3Lsa) -> bytes:
    out = bytearray(_U32.pack(body.flags << 24 | body.options & _METRIC_MASK))
    for link in body.links:
        out += _ROUTER_LINK3.pack(
            link.type, link.metric, link.interface_id, link.neighbor_interface_id, link.neighbor_router_id.packed
        )
    return bytes(out)


def _network3(data: bytes, start: int, end: int, header: LsaHeader) -> Network3Lsa:
    _need(start, 4, end, "network-LSA options")
    if (end - start) % 4:
        raise _error("ospf lsa length", start, end - start, "network-LSA body is not whole 4-byte words")
    options = _U32.unpack_from(data, start)[0] & _METRIC_MASK
    return Network3Lsa(options, tuple(_rid(data, at) for at in range(start + 4, end, 4)))


def _encode_network3(body: Network3Lsa) -> bytes:
    return _U32.pack(body.options & _METRIC_MASK) + b"".join(router.packed for router in body.attached)


def _inter_area_prefix(data: bytes, start: int, end: int, header: LsaHeader) -> InterAreaPrefixLsa:
    _need(start, 4, end, "inter-area-prefix-LSA metric")
    metric = _U32.unpack_from(data, start)[0] & _METRIC_MASK
    _length, options, field, network, pos = _prefix3(data, start + 4, end)
    _done(pos, end, "prefix")
    return InterAreaPrefixLsa(metric, Prefix3(network, options, field))


def _encode_inter_area_prefix(body: InterAreaPrefixLsa) -> bytes:
    prefix = body.prefix
    return _U32.pack(body.metric & _METRIC_MASK) + _encode_prefix3(prefix.network, prefix.options, prefix.metric)


def _inter_area_router(data: bytes, start: int, end: int, header: LsaHeader) -> InterAreaRouterLsa:
    _need(start, 12, end, "inter-area-router-LSA")
    _done(start + 12, end, "destination router ID")
    options = _U32.unpack_from(data, start)[0] & _METRIC_MASK
    metric = _U32.unpack_from(data, start + 4)[0] & _METRIC_MASK
    return InterAreaRouterLsa(options, metric, _rid(data, start + 8))


def _encode_inter_area_router(body: InterAreaRouterLsa) -> bytes:
    options, metric = body.options & _METRIC_MASK, body.metric & _METRIC_MASK
    return _U32.pack(options) + _U32.pack(metric) + body.destination.packed


def _external3(data: bytes, start: int, end: int, header: LsaHeader) -> External3Lsa:
    _need(start, 4, end, "AS-external-LSA flags and metric")
    (word,) = _U32.unpack_from(data, start)
    flags = word >> 24
    _length, options, referenced_type, network, pos = _prefix3(data, start + 4, end)
    forwarding = tag = referenced = None
    if flags & _F3:
        _need(pos, _ADDRESS_V6, end, "forwarding address")
        forwarding, pos = IPv6Address(bytes(data[pos : pos + _ADDRESS_V6])), pos + _ADDRESS_V6
    if flags & _T3:
        _need(pos, 4, end, "external route tag")
        tag, pos = _U32.unpack_from(data, pos)[0], pos + 4
    if referenced_type:
        _need(pos, 4, end, "referenced link state ID")
        referenced, pos = _rid(data, pos), pos + 4
    _done(pos, end, "AS-external-LSA fields")
    prefix = Prefix3(network, options, 0)
    return External3Lsa(bool(flags & _E3), word & _METRIC_MASK, prefix, forwarding, tag, referenced_type, referenced)


def _encode_external3(body: External3Lsa) -> bytes:
    flags = (_E3 if body.e_bit else 0) | (_F3 if body.forwarding else 0) | (_T3 if body.tag is not None else 0)
    out = _U32.pack(flags << 24 | body.metric & _METRIC_MASK)
    out += _encode_prefix3(body.prefix.network, body.prefix.options, body.referenced_type)
    if body.forwarding is not None:
        out += body.forwarding.packed
    if body.tag is not None:
        out += _U32.pack(body.tag)
    if body.referenced_type and body.referenced_id is not None:
        out += body.referenced_id.packed
    return out


def _link3(data: bytes, start: int, end: int, header: LsaHeader) -> Link3Lsa:
    _need(start, 24, end, "link-LSA fixed part")
    (word,) = _U32.unpack_from(data, start)
    link_local = IPv6Address(bytes(data[start + 4 : start + 20]))
    (count,) = _U32.unpack_from(data, start + 20)
    if count > (end - start) // 4:  # every prefix takes at least 4 bytes: refuse to loop on a crafted count
        raise _error("ospf lsa length", start + 20, 4, f"{count} prefixes cannot fit")
    prefixes, pos = _prefixes3(data, start + 24, end, count)
    _done(pos, end, "prefixes")
    return Link3Lsa(word >> 24, word & _METRIC_MASK, link_local, prefixes)


def _encode_link3(body: Link3Lsa) -> bytes:
    out = _U32.pack(body.priority << 24 | body.options & _METRIC_MASK) + body.link_local.packed
    out += _U32.pack(len(body.prefixes))
    return out + b"".join(_encode_prefix3(p.network, p.options, p.metric) for p in body.prefixes)


def _intra_area_prefix(data: bytes, start: int, end: int, header: LsaHeader) -> IntraAreaPrefixLsa:
    _need(start, 12, end, "intra-area-prefix-LSA fixed part")
    count, referenced_type = struct.unpack_from("!HH", data, start)
    prefixes, pos = _prefixes3(data, start + 12, end, count)
    _done(pos, end, "prefixes")
    return IntraAreaPrefixLsa(referenced_type, _rid(data, start + 4), _rid(data, start + 8), prefixes)


def _encode_intra_area_prefix(body: IntraAreaPrefixLsa) -> bytes:
    out = struct.pack("!HH", len(body.prefixes), body.referenced_type)
    out += body.referenced_id.packed + body.referenced_adv_router.packed
    return out + b"".join(_encode_prefix3(p.network, p.options, p.metric) for p in body.prefixes)


@dataclass(frozen=True, slots=True)
class BodyCodec:
    decode: Callable[[bytes, int, int, LsaHeader], LsaBody]
    encode: Callable[..., bytes]
    body: type


# (version, LS type) -> codec. Layouts: RFC 2328 A.4.2-A.4.5, RFC 3101 2.4, RFC 5250 3, RFC 5340 A.4.3-A.4.10.
BODY_CODECS: Mapping[tuple[int, int], BodyCodec] = MappingProxyType(
    {
        (2, LsaType.ROUTER): BodyCodec(_router, _encode_router, RouterLsa),
        (2, LsaType.NETWORK): BodyCodec(_network, _encode_network, NetworkLsa),
        (2, LsaType.SUMMARY_NETWORK): BodyCodec(_summary, _encode_summary, SummaryLsa),
        (2, LsaType.SUMMARY_ASBR): BodyCodec(_summary, _encode_summary, SummaryLsa),
        (2, LsaType.AS_EXTERNAL): BodyCodec(_external, _encode_external, ExternalLsa),
        (2, LsaType.NSSA_EXTERNAL): BodyCodec(_external, _encode_external, ExternalLsa),
        (2, LsaType.OPAQUE_LINK): BodyCodec(_opaque, _encode_opaque, OpaqueLsa),
        (2, LsaType.OPAQUE_AREA): BodyCodec(_opaque, _encode_opaque, OpaqueLsa),
        (2, LsaType.OPAQUE_AS): BodyCodec(_opaque, _encode_opaque, OpaqueLsa),
        (3, Lsa3Type.ROUTER): BodyCodec(_router3, _encode_router3, Router3Lsa),
        (3, Lsa3Type.NETWORK): BodyCodec(_network3, _encode_network3, Network3Lsa),
        (3, Lsa3Type.INTER_AREA_PREFIX): BodyCodec(_inter_area_prefix, _encode_inter_area_prefix, InterAreaPrefixLsa),
        (3, Lsa3Type.INTER_AREA_ROUTER): BodyCodec(_inter_area_router, _encode_inter_area_router, InterAreaRouterLsa),
        (3, Lsa3Type.AS_EXTERNAL): BodyCodec(_external3, _encode_external3, External3Lsa),
        (3, Lsa3Type.NSSA): BodyCodec(_external3, _encode_external3, External3Lsa),
        (3, Lsa3Type.LINK): BodyCodec(_link3, _encode_link3, Link3Lsa),
        (3, Lsa3Type.INTRA_AREA_PREFIX): BodyCodec(_intra_area_prefix, _encode_intra_area_prefix, IntraAreaPrefixLsa),
    }
)


def decode_lsa(data: bytes, offset: int = 0, version: int = 2) -> tuple[Lsa, int]:
    """The LSA at `offset` and the offset just after it. Raises DecodeError only when it cannot be framed."""
    header = decode_lsa_header(data, offset, version)
    end = offset + header.length
    if header.length < LSA_HEADER_LEN:
        raise _error("ospf lsa length", offset + 18, 2, f"LSA length {header.length} < 20")
    if end > len(data):
        raise _error("ospf lsa truncated", offset, len(data) - offset, f"LSA length {header.length} overruns")
    checksum_ok = fletcher_ok(bytes(data[offset:end]))
    codec = BODY_CODECS.get((version, header.type))
    start = offset + LSA_HEADER_LEN
    if codec is None:
        return Lsa(header, RawLsa(bytes(data[start:end])), checksum_ok), end
    try:
        body = codec.decode(data, start, end, header)
    except DecodeError as failure:
        return Lsa(header, RawLsa(bytes(data[start:end])), checksum_ok, failure.error), end
    return Lsa(header, body, checksum_ok), end


def encode_lsa_body(body: LsaBody, version: int, ls_type: int) -> bytes:
    if isinstance(body, RawLsa):
        return body.data
    codec = BODY_CODECS.get((version, ls_type))
    if codec is None or not isinstance(body, codec.body):
        raise ValueError(f"a {type(body).__name__} cannot be encoded as LS type {ls_type:#x} (OSPFv{version})")
    return codec.encode(body)


def encode_lsa(lsa: Lsa) -> bytes:
    header = lsa.header
    return encode_lsa_header(header) + encode_lsa_body(lsa.body, header.version, header.type)


def seal_lsa(lsa: Lsa) -> Lsa:
    """`lsa` with the header's length and Fletcher checksum computed from its contents (for building LSAs)."""
    header = lsa.header
    body = encode_lsa_body(lsa.body, header.version, header.type)
    sized = replace(header, length=LSA_HEADER_LEN + len(body), checksum=0)
    checksum = fletcher_checksum(encode_lsa_header(sized) + body)
    return replace(lsa, header=replace(sized, checksum=checksum), checksum_ok=True, problem=None)
