"""OSPF packets, both versions: the common header (RFC 2328 A.3.1, RFC 5340 A.3.1) and the five packet types.

`decode_packet(payload, src=..., dst=..., keys=...)` takes the IP payload of protocol 89 and returns an
`OspfPacket`. It raises `DecodeError` only when the packet cannot be framed (too short, unknown version or
type, length beyond the payload, a body that does not fit). Everything else is reported on the record:

* `checksum_status`: OSPFv2 packets are checked unless they use cryptographic authentication (RFC 2328 D.4.3);
  OSPFv3 packets when the IPv6 source and destination are given (pseudo-header, RFC 5340 A.3.1). The v3
  checksum is the IPv6 upper-layer checksum over the whole payload, authentication trailer included, as the
  sender in tests/fixtures/ospf/ospf3_auth.pcapng computes it.
* `auth_status`: see `parsers.ospf.auth`; `keys` maps a v2 key ID or a v3 SA ID to its secret.
* `problems`: each with the offset into `payload`: a bad packet checksum, an LSA whose Fletcher checksum
  fails (the LSA is kept, flagged `checksum_ok=False`, and must not be installed) or whose body does not decode,
  an LSA that does not frame in an LSU (the LSAs before it are kept), an LS count that does not match.

Bytes after the OSPF length (the v2 digest, the v3 authentication trailer, link padding) are kept in
`trailer`, so `encode_packet` gives the payload back byte for byte. Hello and DD records serve both versions:
v2-only fields (`network_mask`) are None in v3 and v3-only fields (`interface_id`) are None in v2.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum, IntEnum, IntFlag
from ipaddress import IPv4Address, ip_address
from types import MappingProxyType

from parsers.errors import Action, DecodeError, ParseError
from parsers.ospf.auth import (
    V3_AUTH_TYPE_HMAC,
    V3_TRAILER_HEAD,
    AuthStatus,
    AuthTrailer,
    AuthType,
    decode_trailer,
    verify_v2,
    verify_v3,
)
from parsers.ospf.checksum import ospf2_checksum, ospf3_checksum
from parsers.ospf.lsa import LSA_HEADER_LEN, Lsa, LsaHeader
from parsers.ospf.lsa_codec import decode_lsa, decode_lsa_header, encode_lsa, encode_lsa_header

__all__ = [
    "AT_BIT",
    "BODY_CODECS",
    "ChecksumStatus",
    "DatabaseDescription",
    "DdFlag",
    "Hello",
    "LinkStateAck",
    "LinkStateRequest",
    "LinkStateUpdate",
    "OspfPacket",
    "PacketType",
    "decode_packet",
    "encode_packet",
    "seal_packet",
]

OSPF_PROTO = 89
HEADER_V2 = 24  # RFC 2328 A.3.1
HEADER_V3 = 16  # RFC 5340 A.3.1
_HEADER_V2 = struct.Struct("!BBH4s4sHH8s")
_HEADER_V3 = struct.Struct("!BBH4s4sHBB")
_U32 = struct.Struct("!I")
AT_BIT = 0x000400  # OSPFv3 options: authentication trailer present (RFC 7166 2.2)
L_BIT = 0x000200  # OSPFv3 options: LLS data block present (RFC 5613 2.1)
LLS_HEAD = 4  # LLS checksum, LLS data length (RFC 5613 2.2)
_CRYPTO_AUTH = struct.Struct("!HBBI")  # v2 cryptographic auth field: 0, key ID, auth data length, sequence


class PacketType(IntEnum):
    """OSPF packet types (RFC 2328 A.3.1)."""

    HELLO = 1
    DATABASE_DESCRIPTION = 2
    LINK_STATE_REQUEST = 3
    LINK_STATE_UPDATE = 4
    LINK_STATE_ACK = 5


class DdFlag(IntFlag):
    """Database Description flags (RFC 2328 A.3.3)."""

    MS = 0x01
    M = 0x02
    I = 0x04  # noqa: E741 - the RFC's name


class ChecksumStatus(Enum):
    OK = "ok"
    BAD = "bad"
    NOT_APPLICABLE = "not applicable"  # v2 with cryptographic authentication
    UNVERIFIED = "unverified"  # v3 without the IPv6 addresses for the pseudo-header


@dataclass(frozen=True, slots=True)
class Hello:
    hello_interval: int
    options: int
    priority: int
    dead_interval: int
    dr: IPv4Address  # v2: the DR's interface address; v3: its router ID
    bdr: IPv4Address
    neighbors: tuple[IPv4Address, ...]
    network_mask: IPv4Address | None = None  # v2 only
    interface_id: int | None = None  # v3 only


@dataclass(frozen=True, slots=True)
class DatabaseDescription:
    mtu: int
    options: int
    flags: int  # DdFlag bits
    sequence: int
    headers: tuple[LsaHeader, ...]


@dataclass(frozen=True, slots=True)
class LinkStateRequest:
    entries: tuple[tuple[int, IPv4Address, IPv4Address], ...]  # (LS type, link state ID, advertising router)


@dataclass(frozen=True, slots=True)
class LinkStateUpdate:
    lsas: tuple[Lsa, ...]
    count: int  # the "# LSAs" field as sent


@dataclass(frozen=True, slots=True)
class LinkStateAck:
    headers: tuple[LsaHeader, ...]


PacketBody = Hello | DatabaseDescription | LinkStateRequest | LinkStateUpdate | LinkStateAck


@dataclass(frozen=True, slots=True)
class OspfPacket:
    version: int
    type: int
    length: int
    router_id: IPv4Address
    area_id: IPv4Address
    checksum: int
    body: PacketBody
    auth_type: int = AuthType.NULL  # v2
    auth_data: bytes = bytes(8)  # v2: the 64-bit authentication field as sent
    instance_id: int = 0  # v3
    reserved: int = 0  # v3: the header's last byte
    trailer: bytes = b""  # bytes after the OSPF length in the IP payload (v2 digest, v3 AT, padding)
    checksum_status: ChecksumStatus = ChecksumStatus.OK
    auth_status: AuthStatus = AuthStatus.NONE
    problems: tuple[ParseError, ...] = ()

    @property
    def key_id(self) -> int | None:
        """v2 cryptographic authentication: the key ID (RFC 2328 D.3)."""
        if self.version != 2 or self.auth_type != AuthType.CRYPTOGRAPHIC:
            return None
        return self.auth_data[2]

    @property
    def crypto_sequence(self) -> int | None:
        if self.version != 2 or self.auth_type != AuthType.CRYPTOGRAPHIC:
            return None
        return _U32.unpack_from(self.auth_data, 4)[0]

    @property
    def password(self) -> bytes | None:
        """v2 simple password authentication: the cleartext password (RFC 2328 D.2)."""
        if self.version != 2 or self.auth_type != AuthType.SIMPLE:
            return None
        return self.auth_data.rstrip(b"\x00")

    @property
    def auth_trailer(self) -> AuthTrailer | None:
        """v3: the RFC 7166 authentication trailer, or None.

        Hello and DD packets announce it with the AT bit, and carry it after the LLS block when the L bit is set
        too (RFC 7166 4.2 / RFC 5613 2.2). The other packet types have no options: a trailer is recognised
        when the bytes after the packet parse as one of HMAC type whose length is exactly theirs.
        """
        if self.version != 3 or not self.trailer:
            return None
        body = self.body
        if isinstance(body, Hello | DatabaseDescription):
            if not body.options & AT_BIT:
                return None
            start = 0
            if body.options & L_BIT and len(self.trailer) >= LLS_HEAD:
                start = int.from_bytes(self.trailer[2:4], "big") * 4  # LLS data length in 32-bit words
            return decode_trailer(self.trailer[start:])
        trailer = decode_trailer(self.trailer)
        if trailer is None or trailer.auth_type != V3_AUTH_TYPE_HMAC:
            return None
        return trailer if V3_TRAILER_HEAD + len(trailer.digest) == len(self.trailer) else None


def _error(kind: str, offset: int, length: int, detail: str) -> DecodeError:
    return DecodeError(ParseError(kind, offset, length, Action.NONE, detail=detail))


def _ids(data: bytes, start: int, end: int, what: str) -> tuple[IPv4Address, ...]:
    if (end - start) % 4:
        raise _error("ospf packet length", start, end - start, f"{what} are not whole 4-byte IDs")
    return tuple(IPv4Address(data[at : at + 4]) for at in range(start, end, 4))


def _headers(data: bytes, start: int, end: int, version: int) -> tuple[LsaHeader, ...]:
    if (end - start) % LSA_HEADER_LEN:
        raise _error("ospf packet length", start, end - start, "LSA headers are not whole 20-byte entries")
    return tuple(decode_lsa_header(data, at, version) for at in range(start, end, LSA_HEADER_LEN))


# --- bodies: decode(data, start, end, version) and encode(body, version)

_HELLO_V2 = struct.Struct("!4sHBBI4s4s")  # mask, hello interval, options, priority, dead interval, DR, BDR
_HELLO_V3 = struct.Struct("!IIHH4s4s")  # interface ID, priority|options, hello, dead, DR, BDR


def _hello(data: bytes, start: int, end: int, version: int) -> Hello:
    layout = _HELLO_V3 if version == 3 else _HELLO_V2
    if start + layout.size > end:
        raise _error("ospf packet truncated", start, end - start, f"a Hello needs {layout.size} bytes")
    neighbors = _ids(data, start + layout.size, end, "Hello neighbours")
    if version == 3:
        interface, word, hello, dead, dr, bdr = layout.unpack_from(data, start)
        priority, options = word >> 24, word & 0xFFFFFF
        return Hello(hello, options, priority, dead, IPv4Address(dr), IPv4Address(bdr), neighbors, None, interface)
    mask, hello, options, priority, dead, dr, bdr = layout.unpack_from(data, start)
    return Hello(hello, options, priority, dead, IPv4Address(dr), IPv4Address(bdr), neighbors, IPv4Address(mask))


def _encode_hello(body: Hello, version: int) -> bytes:
    neighbors = b"".join(n.packed for n in body.neighbors)
    if version == 3:
        word = body.priority << 24 | body.options & 0xFFFFFF
        fixed = _HELLO_V3.pack(
            body.interface_id or 0, word, body.hello_interval, body.dead_interval, body.dr.packed, body.bdr.packed
        )
        return fixed + neighbors
    mask = (body.network_mask or IPv4Address(0)).packed
    fixed = _HELLO_V2.pack(
        mask, body.hello_interval, body.options, body.priority, body.dead_interval, body.dr.packed, body.bdr.packed
    )
    return fixed + neighbors


_DD_V2 = struct.Struct("!HBBI")  # MTU, options, flags, sequence
_DD_V3 = struct.Struct("!IHBBI")  # 0|options, MTU, 0, flags, sequence


def _dd(data: bytes, start: int, end: int, version: int) -> DatabaseDescription:
    layout = _DD_V3 if version == 3 else _DD_V2
    if start + layout.size > end:
        raise _error("ospf packet truncated", start, end - start, f"a Database Description needs {layout.size} bytes")
    headers = _headers(data, start + layout.size, end, version)
    if version == 3:
        options, mtu, _zero, flags, sequence = layout.unpack_from(data, start)
        return DatabaseDescription(mtu, options & 0xFFFFFF, flags, sequence, headers)
    mtu, options, flags, sequence = layout.unpack_from(data, start)
    return DatabaseDescription(mtu, options, flags, sequence, headers)


def _encode_dd(body: DatabaseDescription, version: int) -> bytes:
    if version == 3:
        fixed = _DD_V3.pack(body.options & 0xFFFFFF, body.mtu, 0, body.flags, body.sequence)
    else:
        fixed = _DD_V2.pack(body.mtu, body.options, body.flags, body.sequence)
    return fixed + b"".join(encode_lsa_header(h) for h in body.headers)


_LSR_ENTRY = struct.Struct("!I4s4s")  # v2: LS type (32 bits); v3: 0 (16) + LS type (16)


def _lsr(data: bytes, start: int, end: int, version: int) -> LinkStateRequest:
    if (end - start) % _LSR_ENTRY.size:
        raise _error("ospf packet length", start, end - start, "LS requests are not whole 12-byte entries")
    entries = []
    for at in range(start, end, _LSR_ENTRY.size):
        kind, ls_id, adv = _LSR_ENTRY.unpack_from(data, at)
        entries.append((kind, IPv4Address(ls_id), IPv4Address(adv)))
    return LinkStateRequest(tuple(entries))


def _encode_lsr(body: LinkStateRequest, version: int) -> bytes:
    return b"".join(_LSR_ENTRY.pack(kind, ls_id.packed, adv.packed) for kind, ls_id, adv in body.entries)


def _lsu(data: bytes, start: int, end: int, version: int) -> LinkStateUpdate:
    if start + 4 > end:
        raise _error("ospf packet truncated", start, end - start, "a Link State Update needs its LSA count")
    (count,) = _U32.unpack_from(data, start)
    lsas, pos, framed = [], start + 4, data[:end]
    # LSAs are read while bytes remain; the count is checked by decode_packet. A framing error inside the LSU
    # raises with the LSAs read so far attached, so that decode_packet can keep them.
    while pos < end:
        try:
            lsa, pos = decode_lsa(framed, pos, version)
        except DecodeError as failure:
            raise _PartialUpdate(LinkStateUpdate(tuple(lsas), count), failure.error) from None
        lsas.append(lsa)
    return LinkStateUpdate(tuple(lsas), count)


class _PartialUpdate(Exception):
    def __init__(self, update: LinkStateUpdate, error: ParseError) -> None:
        super().__init__(str(error))
        self.update = update
        self.error = error


def _encode_lsu(body: LinkStateUpdate, version: int) -> bytes:
    return _U32.pack(body.count) + b"".join(encode_lsa(lsa) for lsa in body.lsas)


def _ack(data: bytes, start: int, end: int, version: int) -> LinkStateAck:
    return LinkStateAck(_headers(data, start, end, version))


def _encode_ack(body: LinkStateAck, version: int) -> bytes:
    return b"".join(encode_lsa_header(h) for h in body.headers)


@dataclass(frozen=True, slots=True)
class PacketCodec:
    decode: Callable[[bytes, int, int, int], PacketBody]
    encode: Callable[..., bytes]
    body: type


# packet type -> codec (RFC 2328 A.3.2-A.3.6, RFC 5340 A.3.2-A.3.6)
BODY_CODECS: Mapping[int, PacketCodec] = MappingProxyType(
    {
        PacketType.HELLO: PacketCodec(_hello, _encode_hello, Hello),
        PacketType.DATABASE_DESCRIPTION: PacketCodec(_dd, _encode_dd, DatabaseDescription),
        PacketType.LINK_STATE_REQUEST: PacketCodec(_lsr, _encode_lsr, LinkStateRequest),
        PacketType.LINK_STATE_UPDATE: PacketCodec(_lsu, _encode_lsu, LinkStateUpdate),
        PacketType.LINK_STATE_ACK: PacketCodec(_ack, _encode_ack, LinkStateAck),
    }
)


def _address_bytes(address: str | bytes | None) -> bytes | None:
    if address is None or isinstance(address, bytes):
        return address
    try:
        return ip_address(address).packed
    except ValueError:
        return None


def decode_packet(
    payload: bytes,
    *,
    src: str | bytes | None = None,
    dst: str | bytes | None = None,
    keys: Mapping[int, bytes] | None = None,
) -> OspfPacket:
    """The OSPF packet in an IP payload (protocol 89); `src`/`dst` are the IP addresses (text or packed)."""
    size = len(payload)
    if size < 1:
        raise _error("ospf packet truncated", 0, 0, "empty payload")
    version = payload[0]
    if version not in (2, 3):
        raise _error("ospf version", 0, 1, f"version {version} is neither 2 nor 3")
    header_len = HEADER_V3 if version == 3 else HEADER_V2
    if size < header_len:
        raise _error("ospf packet truncated", 0, size, f"an OSPFv{version} header needs {header_len} bytes")
    auth_type, auth_data, instance_id, reserved = AuthType.NULL, bytes(8), 0, 0
    if version == 3:
        _v, kind, length, rid, area, checksum, instance_id, reserved = _HEADER_V3.unpack_from(payload)
    else:
        _v, kind, length, rid, area, checksum, auth_type, auth_data = _HEADER_V2.unpack_from(payload)
    if length < header_len or length > size:
        raise _error("ospf packet length", 2, 2, f"packet length {length}, header {header_len}, payload {size}")
    codec = BODY_CODECS.get(kind)
    if codec is None:
        raise _error("ospf packet type", 1, 1, f"unknown packet type {kind}")
    problems: list[ParseError] = []
    try:
        body = codec.decode(payload, header_len, length, version)
    except _PartialUpdate as partial:
        body = partial.update
        problems.append(partial.error)
    if isinstance(body, LinkStateUpdate):
        problems.extend(_lsa_problems(body, header_len))
    if isinstance(body, LinkStateUpdate) and body.count != len(body.lsas) and not problems:
        problems.append(
            ParseError(
                "ospf lsa count", header_len, 4, Action.NONE, detail=f"# LSAs {body.count}, {len(body.lsas)} present"
            )
        )
    packet = OspfPacket(
        version,
        kind,
        length,
        IPv4Address(rid),
        IPv4Address(area),
        checksum,
        body,
        auth_type,
        bytes(auth_data),
        instance_id,
        reserved,
        bytes(payload[length:]),
    )
    return _verify(packet, payload, _address_bytes(src), _address_bytes(dst), keys or {}, problems)


def _lsa_problems(update: LinkStateUpdate, header_len: int) -> list[ParseError]:
    """Each LSA whose checksum fails (RFC 2328 13 (1)) or whose body does not decode, located in the payload."""
    found = []
    at = header_len + 4  # after the "# LSAs" field
    for lsa in update.lsas:
        header = lsa.header
        if not lsa.checksum_ok:
            what = f"LS type {header.type:#x} ID {header.ls_id} from {header.adv_router}"
            found.append(
                ParseError("ospf lsa checksum", at, header.length, Action.NONE, detail=f"{what}: not installed")
            )
        if lsa.problem is not None:
            found.append(lsa.problem)
        at += header.length
    return found


def _verify(
    packet: OspfPacket,
    payload: bytes,
    src: bytes | None,
    dst: bytes | None,
    keys: Mapping[int, bytes],
    problems: list[ParseError],
) -> OspfPacket:
    ospf = bytes(payload[: packet.length])
    checksum_status, auth_status = ChecksumStatus.OK, AuthStatus.NONE
    if packet.version == 2:
        if packet.auth_type == AuthType.CRYPTOGRAPHIC:
            checksum_status = ChecksumStatus.NOT_APPLICABLE
            _zero, key_id, digest_len, _seq = _CRYPTO_AUTH.unpack(packet.auth_data)
            digest = packet.trailer[:digest_len]
            auth_status = (
                verify_v2(ospf, digest, keys.get(key_id)) if len(digest) == digest_len else AuthStatus.MALFORMED
            )
        else:
            auth_status = AuthStatus.SIMPLE if packet.auth_type == AuthType.SIMPLE else AuthStatus.NONE
            if packet.auth_type not in (AuthType.NULL, AuthType.SIMPLE):
                auth_status = AuthStatus.MALFORMED
            if ospf2_checksum(ospf) != packet.checksum:
                checksum_status = ChecksumStatus.BAD
    else:
        if src is not None and dst is not None and len(src) == len(dst) == 16:
            if ospf3_checksum(bytes(payload), src, dst) != packet.checksum:
                checksum_status = ChecksumStatus.BAD
        else:
            checksum_status = ChecksumStatus.UNVERIFIED
        trailer = packet.auth_trailer
        if _at_bit(packet) or trailer is not None:
            auth_status = verify_v3(ospf, src, trailer, keys.get(trailer.sa_id) if trailer else None)
    if checksum_status is ChecksumStatus.BAD:
        detail = f"checksum {packet.checksum:#06x}, computed " + (
            f"{ospf2_checksum(ospf):#06x}"
            if packet.version == 2
            else f"{ospf3_checksum(bytes(payload), src, dst):#06x}"  # type: ignore[arg-type]
        )
        problems.append(ParseError("ospf packet checksum", 12, 2, Action.NONE, detail=detail))
    if auth_status in (AuthStatus.FAILED, AuthStatus.MALFORMED):
        problems.append(
            ParseError(
                "ospf authentication",
                packet.length,
                len(packet.trailer),
                Action.NONE,
                detail=f"authentication {auth_status.value}",
            )
        )
    return replace(packet, checksum_status=checksum_status, auth_status=auth_status, problems=tuple(problems))


def _at_bit(packet: OspfPacket) -> bool:
    body = packet.body
    return isinstance(body, Hello | DatabaseDescription) and bool(body.options & AT_BIT)


def encode_packet(packet: OspfPacket) -> bytes:
    """The IP payload for `packet`: header fields as recorded (length and checksum too), body, trailer."""
    codec = BODY_CODECS.get(packet.type)
    if codec is None or not isinstance(packet.body, codec.body):
        raise ValueError(f"a {type(packet.body).__name__} cannot be encoded as packet type {packet.type}")
    body = codec.encode(packet.body, packet.version)
    rid, area = packet.router_id.packed, packet.area_id.packed
    if packet.version == 3:
        header = _HEADER_V3.pack(
            3, packet.type, packet.length, rid, area, packet.checksum, packet.instance_id, packet.reserved
        )
    else:
        header = _HEADER_V2.pack(
            2, packet.type, packet.length, rid, area, packet.checksum, packet.auth_type, packet.auth_data
        )
    return header + body + packet.trailer


def seal_packet(packet: OspfPacket, *, src: str | None = None, dst: str | None = None) -> OspfPacket:
    """`packet` with its length and checksum computed (v3 needs `src` and `dst`), for building test packets."""
    header_len = HEADER_V3 if packet.version == 3 else HEADER_V2
    codec = BODY_CODECS[packet.type]
    sized = replace(packet, length=header_len + len(codec.encode(packet.body, packet.version)), checksum=0)
    if packet.version == 2:
        ospf = encode_packet(replace(sized, trailer=b""))
        if packet.auth_type == AuthType.CRYPTOGRAPHIC:
            return sized
        return replace(sized, checksum=ospf2_checksum(ospf))
    source, destination = _address_bytes(src), _address_bytes(dst)
    if source is None or destination is None:
        raise ValueError("an OSPFv3 checksum needs the IPv6 source and destination")
    return replace(sized, checksum=ospf3_checksum(encode_packet(sized), source, destination))
