"""BGP OPEN (RFC 4271 4.2) with optional parameters (RFC 5492 4, RFC 9072) and capabilities.

Decoding keeps everything a byte-exact encoding needs: how capabilities were grouped into optional parameters
(one parameter holding several, or one parameter each), RFC 9072 extended lengths, unknown parameters and
capabilities as raw bytes. A capability whose value does not decode, or whose decoded form would not encode
back to the same bytes, also stays raw (and `Open.problems` names it if its code is one we know).

Two kinds of error are told apart:
- structural: the lengths do not add up, so the message cannot be split. `decode_open` raises `DecodeError`
  (Message Header Error/Bad Message Length or OPEN Message Error/Unspecific, as RFC 4271 6.1 and 6.2 say).
- semantic: the message splits cleanly but a speaker would refuse it (version, hold time, BGP Identifier, peer
  AS 0, an unsupported parameter, a malformed capability). A sniffer still wants that OPEN, so by default
  `decode_open` returns it and `Open.problems` lists what is wrong; `decode_open(body, strict=True)` raises
  the first problem instead, as a BGP speaker would.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Any

from parsers.bgp.constants import (
    AddPathMode,
    AfiSafi,
    CapabilityCode,
    HeaderSubcode,
    NotificationCode,
    OpenSubcode,
)
from parsers.errors import Action, DecodeError, ParseError

__all__ = [
    "BGP_VERSION",
    "CAPABILITY_CODECS",
    "AddPath",
    "Bgpsec",
    "BgpRole",
    "Capability",
    "CapabilityCodec",
    "EnhancedRouteRefresh",
    "ExtendedMessage",
    "ExtendedNextHop",
    "FourOctetAs",
    "Fqdn",
    "GracefulRestart",
    "LongLivedGracefulRestart",
    "Multiprotocol",
    "MultipleLabels",
    "Open",
    "OptionalParameter",
    "ParameterType",
    "Role",
    "RouteRefreshCapability",
    "capability_name",
    "decode_open",
    "encode_open",
]

BGP_VERSION = 4  # RFC 4271 4.2
OPEN_FIXED_LEN = 10  # version, My AS, Hold Time, BGP Identifier, Opt Parm Len (RFC 4271 4.2)
_FIXED = struct.Struct("!BHH4sB")
_U16 = struct.Struct("!H")
_AFI_SAFI_BYTE = struct.Struct("!HBB")  # AFI (2), SAFI (1), one more octet: a common entry shape
_VERSION_AT, _MY_AS_AT, _HOLD_TIME_AT, _ROUTER_ID_AT, _OPT_LEN_AT = 0, 1, 3, 5, 9
_PARAMS_AT = OPEN_FIXED_LEN
_EXT_PARAMS_AT = OPEN_FIXED_LEN + 3  # after Non-Ext OP Type and the 2-byte Extended Opt. Parm. Length
_MAX_U8, _MAX_U16 = 0xFF, 0xFFFF
_CAP_HEAD = 2  # capability code, capability length (RFC 5492 4)
# RFC 4271 4.2: a non-zero hold time below 3 seconds is unacceptable (6.2: subcode 6).
_MIN_HOLD_TIME = 3
# RFC 4271 6.2: a recognised optional parameter that is malformed gets subcode 0, "Unspecific".
_UNSPECIFIC = 0


class ParameterType(IntEnum):
    """BGP OPEN Optional Parameter Types (IANA)."""

    AUTHENTICATION = 1  # RFC 4271 (deprecated by RFC 5492)
    CAPABILITIES = 2  # RFC 5492 4
    EXTENDED_LENGTH = 255  # RFC 9072 2: marks the extended encoding, never a real parameter


class BgpRole(IntEnum):
    """RFC 9234 4.1, BGP Role values."""

    PROVIDER = 0
    ROUTE_SERVER = 1
    ROUTE_SERVER_CLIENT = 2
    CUSTOMER = 3
    PEER = 4


# --- typed capability values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Multiprotocol:
    """RFC 4760 8: AFI (2), Reserved (1), SAFI (1). The reserved octet is kept for an exact round trip."""

    afi: int
    safi: int
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class RouteRefreshCapability:
    """RFC 2918 2 (code 2), and the pre-standard code 128: no value."""


@dataclass(frozen=True, slots=True)
class ExtendedMessage:
    """RFC 8654 3: no value."""


@dataclass(frozen=True, slots=True)
class EnhancedRouteRefresh:
    """RFC 7313 3: no value."""


@dataclass(frozen=True, slots=True)
class ExtendedNextHop:
    """RFC 8950 3: entries of (NLRI AFI, NLRI SAFI, next-hop AFI), 2 octets each."""

    entries: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True, slots=True)
class Bgpsec:
    """RFC 8205 2.1: Version (4 bits), Direction (1 bit: 1 = send), Reserved (3 bits), AFI (2 octets)."""

    version: int
    send: bool
    afi: int
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class MultipleLabels:
    """RFC 8277 2.1: entries of (AFI, SAFI, Count)."""

    entries: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True, slots=True)
class Role:
    """RFC 9234 4.1: one octet (`BgpRole`)."""

    role: int


@dataclass(frozen=True, slots=True)
class GracefulRestart:
    """RFC 4724 3: Restart Flags (4 bits: R = 8, N = 4 from RFC 8538), Restart Time (12 bits, seconds),
    then (AFI, SAFI, flags) per family (flags bit 0x80: forwarding state preserved)."""

    flags: int
    restart_time: int
    families: tuple[tuple[int, int, int], ...] = ()

    RESTART_STATE = 0x8
    NOTIFICATION = 0x4

    @property
    def restarting(self) -> bool:
        return bool(self.flags & self.RESTART_STATE)

    @property
    def notification(self) -> bool:
        """RFC 8538 2: graceful restart also covers NOTIFICATIONs."""
        return bool(self.flags & self.NOTIFICATION)


@dataclass(frozen=True, slots=True)
class FourOctetAs:
    """RFC 6793 3: the speaker's 4-octet AS number."""

    asn: int


@dataclass(frozen=True, slots=True)
class AddPath:
    """RFC 7911 4: entries of (AFI, SAFI, Send/Receive). The mode stays an int: RFC 7911 4 says a capability
    with another value is ignored, which `Open.add_path` does, but the bytes must still round-trip."""

    entries: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True, slots=True)
class LongLivedGracefulRestart:
    """RFC 9494 2: entries of (AFI, SAFI, flags, long-lived stale time in seconds, 24 bits)."""

    entries: tuple[tuple[int, int, int, int], ...]


@dataclass(frozen=True, slots=True)
class Fqdn:
    """draft-walton-bgp-hostname-capability: hostname length + hostname, domain length + domain."""

    hostname: str
    domain: str = ""


@dataclass(frozen=True, slots=True)
class Capability:
    """One capability (RFC 5492 4): `value` is typed for the codes in `CAPABILITY_CODECS` that decode, and the
    raw value bytes otherwise (unknown code, or a known code whose value is malformed)."""

    code: int
    value: object = b""

    @property
    def name(self) -> str:
        return capability_name(self.code)

    @property
    def well_formed(self) -> bool:
        """False when a code we decode carries a value that does not decode."""
        return _malformed_detail(self) is None


@dataclass(frozen=True, slots=True)
class OptionalParameter:
    """RFC 4271 4.2: a Capabilities parameter (type 2) holds a tuple of `Capability`; any other type keeps
    its value as bytes."""

    type: int
    value: tuple[Capability, ...] | bytes = ()


# --- the capability table ----------------------------------------------------------------------------------


class _Malformed(Exception):
    """A capability value that does not decode; the capability is kept raw."""


def _need(value: bytes, length: int) -> None:
    if len(value) != length:
        raise _Malformed(f"length {len(value)}, expected {length}")


def _entries(value: bytes, unit: int) -> Iterator[bytes]:
    if len(value) % unit:
        raise _Malformed(f"length {len(value)} is not a multiple of {unit}")
    return (value[i : i + unit] for i in range(0, len(value), unit))


def _decode_mp(value: bytes) -> Multiprotocol:
    _need(value, 4)
    return Multiprotocol((value[0] << 8) | value[1], value[3], value[2])


def _encode_mp(cap: Multiprotocol) -> bytes:
    return struct.pack("!HBB", cap.afi, cap.reserved, cap.safi)


def _empty_codec(name: str, cls: type) -> CapabilityCodec:
    """A capability with no value (RFC 2918, RFC 7313, RFC 8654): any value bytes make it malformed."""

    def decode(value: bytes) -> object:
        _need(value, 0)
        return cls()

    return CapabilityCodec(name, decode, lambda _: b"")


def _decode_extended_next_hop(value: bytes) -> ExtendedNextHop:
    return ExtendedNextHop(tuple(struct.unpack("!HHH", e) for e in _entries(value, 6)))


def _encode_extended_next_hop(cap: ExtendedNextHop) -> bytes:
    return b"".join(struct.pack("!HHH", *e) for e in cap.entries)


def _decode_bgpsec(value: bytes) -> Bgpsec:
    _need(value, 3)
    head = value[0]
    return Bgpsec(head >> 4, bool(head & 0x08), (value[1] << 8) | value[2], head & 0x07)


def _encode_bgpsec(cap: Bgpsec) -> bytes:
    if not (0 <= cap.version <= 0xF and 0 <= cap.reserved <= 0x7):
        raise ValueError(f"BGPsec version {cap.version} / reserved {cap.reserved} out of range")
    return struct.pack("!BH", (cap.version << 4) | (0x08 if cap.send else 0) | cap.reserved, cap.afi)


def _decode_afi_safi_byte(value: bytes) -> tuple[tuple[int, int, int], ...]:
    """The common (AFI 2, SAFI 1, one octet) entry list of MULTIPLE_LABELS and ADD-PATH."""
    return tuple(_AFI_SAFI_BYTE.unpack(e) for e in _entries(value, 4))


def _encode_afi_safi_byte(entries: tuple[tuple[int, int, int], ...]) -> bytes:
    return b"".join(_AFI_SAFI_BYTE.pack(*e) for e in entries)


def _decode_role(value: bytes) -> Role:
    _need(value, 1)
    return Role(value[0])


def _decode_graceful_restart(value: bytes) -> GracefulRestart:
    if len(value) < 2:
        raise _Malformed(f"length {len(value)}, expected at least 2")
    head = (value[0] << 8) | value[1]
    return GracefulRestart(head >> 12, head & 0x0FFF, _decode_afi_safi_byte(value[2:]))


def _encode_graceful_restart(cap: GracefulRestart) -> bytes:
    if not (0 <= cap.flags <= 0xF and 0 <= cap.restart_time <= 0x0FFF):
        raise ValueError(f"restart flags {cap.flags} / time {cap.restart_time} out of range")
    return _U16.pack((cap.flags << 12) | cap.restart_time) + _encode_afi_safi_byte(cap.families)


def _decode_four_octet_as(value: bytes) -> FourOctetAs:
    _need(value, 4)
    return FourOctetAs(int.from_bytes(value, "big"))


def _decode_llgr(value: bytes) -> LongLivedGracefulRestart:
    return LongLivedGracefulRestart(
        tuple(((e[0] << 8) | e[1], e[2], e[3], int.from_bytes(e[4:7], "big")) for e in _entries(value, 7))
    )


def _encode_llgr(cap: LongLivedGracefulRestart) -> bytes:
    return b"".join(_AFI_SAFI_BYTE.pack(a, s, f) + t.to_bytes(3, "big") for a, s, f, t in cap.entries)


def _decode_fqdn(value: bytes) -> Fqdn:
    if not value or 1 + value[0] >= len(value):
        raise _Malformed("hostname length runs past the capability")
    split = 1 + value[0]
    if split + 1 + value[split] != len(value):
        raise _Malformed("domain length does not match the capability length")
    try:
        return Fqdn(value[1:split].decode(), value[split + 1 :].decode())
    except UnicodeDecodeError as exc:
        raise _Malformed(f"not UTF-8: {exc.reason}") from None


def _encode_fqdn(cap: Fqdn) -> bytes:
    host, domain = cap.hostname.encode(), cap.domain.encode()
    if len(host) > _MAX_U8 or len(domain) > _MAX_U8:
        raise ValueError("FQDN hostname and domain are limited to 255 bytes each")
    return bytes([len(host)]) + host + bytes([len(domain)]) + domain


@dataclass(frozen=True, slots=True)
class CapabilityCodec:
    """How one capability code is named, decoded and encoded. A codec without `decode` keeps the value raw."""

    name: str
    decode: Callable[[bytes], Any] | None = None
    encode: Callable[[Any], bytes] | None = None


# IANA Capability Codes. Codes without a decoder are named (for `peers`) and keep their values raw.
CAPABILITY_CODECS: Mapping[int, CapabilityCodec] = MappingProxyType(
    {
        CapabilityCode.MULTIPROTOCOL: CapabilityCodec("multiprotocol", _decode_mp, _encode_mp),
        CapabilityCode.ROUTE_REFRESH: _empty_codec("route-refresh", RouteRefreshCapability),
        CapabilityCode.OUTBOUND_ROUTE_FILTERING: CapabilityCodec("outbound-route-filtering"),
        4: CapabilityCodec("multiple-routes"),  # RFC 3107 (deprecated)
        CapabilityCode.EXTENDED_NEXT_HOP: CapabilityCodec(
            "extended-next-hop", _decode_extended_next_hop, _encode_extended_next_hop
        ),
        CapabilityCode.EXTENDED_MESSAGE: _empty_codec("extended-message", ExtendedMessage),
        CapabilityCode.BGPSEC: CapabilityCodec("bgpsec", _decode_bgpsec, _encode_bgpsec),
        CapabilityCode.MULTIPLE_LABELS: CapabilityCodec(
            "multiple-labels",
            lambda v: MultipleLabels(_decode_afi_safi_byte(v)),
            lambda c: _encode_afi_safi_byte(c.entries),
        ),
        CapabilityCode.ROLE: CapabilityCodec("role", _decode_role, lambda c: bytes([c.role])),
        CapabilityCode.GRACEFUL_RESTART: CapabilityCodec(
            "graceful-restart", _decode_graceful_restart, _encode_graceful_restart
        ),
        CapabilityCode.FOUR_OCTET_AS: CapabilityCodec(
            "four-octet-as", _decode_four_octet_as, lambda c: c.asn.to_bytes(4, "big")
        ),
        66: CapabilityCodec("dynamic-capability"),  # draft-ietf-idr-dynamic-cap
        67: CapabilityCodec("multisession"),  # draft-ietf-idr-bgp-multisession
        CapabilityCode.ADD_PATH: CapabilityCodec(
            "add-path",
            lambda v: AddPath(_decode_afi_safi_byte(v)),
            lambda c: _encode_afi_safi_byte(c.entries),
        ),
        CapabilityCode.ENHANCED_ROUTE_REFRESH: _empty_codec("enhanced-route-refresh", EnhancedRouteRefresh),
        CapabilityCode.LONG_LIVED_GRACEFUL_RESTART: CapabilityCodec(
            "long-lived-graceful-restart", _decode_llgr, _encode_llgr
        ),
        72: CapabilityCodec("routing-policy-distribution"),  # draft-ietf-idr-rpd
        CapabilityCode.FQDN: CapabilityCodec("fqdn", _decode_fqdn, _encode_fqdn),
        74: CapabilityCodec("software-version"),  # draft-ietf-idr-software-version
        75: CapabilityCodec("paths-limit"),  # draft-ietf-idr-add-paths-guidance
        CapabilityCode.ROUTE_REFRESH_CISCO: _empty_codec("route-refresh-cisco", RouteRefreshCapability),
        131: CapabilityCodec("multisession-cisco"),  # pre-standard, private-use range
    }
)


def capability_name(code: int) -> str:
    """'add-path', 'graceful-restart', ...; 'capability 200' for a code with no name."""
    codec = CAPABILITY_CODECS.get(code)
    return codec.name if codec is not None else f"capability {code}"


def _decode_capability(code: int, value: bytes) -> Capability:
    codec = CAPABILITY_CODECS.get(code)
    if codec is None or codec.decode is None or codec.encode is None:
        return Capability(code, value)
    try:
        typed = codec.decode(value)
    except _Malformed:
        return Capability(code, value)
    # A form that would not encode to the same bytes (a non-canonical value) stays raw: exact round trips win.
    if codec.encode(typed) != value:
        return Capability(code, value)
    return Capability(code, typed)


def _encode_capability_value(cap: Capability) -> bytes:
    if isinstance(cap.value, bytes | bytearray | memoryview):
        return bytes(cap.value)
    codec = CAPABILITY_CODECS.get(cap.code)
    if codec is None or codec.encode is None:
        raise ValueError(f"capability {cap.code} has no encoder for {type(cap.value).__name__}")
    return codec.encode(cap.value)


def _malformed_detail(cap: Capability) -> str | None:
    """Why a capability of a code we decode holds raw bytes, or None if it is well formed."""
    codec = CAPABILITY_CODECS.get(cap.code)
    if codec is None or codec.decode is None or not isinstance(cap.value, bytes):
        return None
    if not isinstance(_decode_capability(cap.code, cap.value).value, bytes):
        return None  # raw but valid: built by hand, it decodes to its typed form
    try:
        codec.decode(cap.value)
    except _Malformed as exc:
        return str(exc)
    return "value does not encode back to the same bytes (non-canonical)"


# --- the message -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Open:
    """An OPEN message body (RFC 4271 4.2).

    `parameters` keeps the optional parameters as received; `extended_params` says the RFC 9072 encoding
    (2-byte parameter lengths) was used. The properties read the well-formed capabilities of all parameters.
    """

    version: int
    my_as: int
    hold_time: int
    router_id: str
    parameters: tuple[OptionalParameter, ...] = ()
    extended_params: bool = False

    @property
    def capabilities(self) -> tuple[Capability, ...]:
        return tuple(
            cap
            for param in self.parameters
            if param.type == ParameterType.CAPABILITIES and isinstance(param.value, tuple)
            for cap in param.value
        )

    def _values(self, cls: type) -> Iterator:
        return (cap.value for cap in self.capabilities if isinstance(cap.value, cls))

    @property
    def four_octet_as(self) -> int | None:
        """The 4-octet AS capability's AS number (RFC 6793 3), or None if not advertised."""
        return next((v.asn for v in self._values(FourOctetAs)), None)

    @property
    def asn(self) -> int:
        """The speaker's AS: the 4-octet AS if advertised, else My AS (RFC 6793 4.1)."""
        four = self.four_octet_as
        return self.my_as if four is None else four

    @property
    def add_path(self) -> dict[AfiSafi, AddPathMode]:
        """Family -> Send/Receive (RFC 7911 4). A capability with an undefined mode is ignored as a whole."""
        modes: dict[AfiSafi, AddPathMode] = {}
        valid = {int(m) for m in AddPathMode}
        for cap in self._values(AddPath):
            if all(mode in valid for _, _, mode in cap.entries):
                modes.update(((afi, safi), AddPathMode(mode)) for afi, safi, mode in cap.entries)
        return modes

    @property
    def extended_message(self) -> bool:
        return any(True for _ in self._values(ExtendedMessage))

    @property
    def multiprotocol(self) -> frozenset[AfiSafi]:
        """Families advertised (RFC 4760 8). Empty means none advertised: IPv4 unicast only (RFC 4760 1)."""
        return frozenset((cap.afi, cap.safi) for cap in self._values(Multiprotocol))

    @property
    def route_refresh(self) -> bool:
        """Route refresh advertised, under the RFC 2918 code or the pre-standard code 128."""
        return any(True for _ in self._values(RouteRefreshCapability))

    @property
    def enhanced_route_refresh(self) -> bool:
        return any(True for _ in self._values(EnhancedRouteRefresh))

    @property
    def graceful_restart(self) -> GracefulRestart | None:
        return next(self._values(GracefulRestart), None)

    @property
    def role(self) -> int | None:
        return next((v.role for v in self._values(Role)), None)

    @property
    def fqdn(self) -> str | None:
        """'host.domain' (or 'host' without a domain) from the FQDN capability."""
        value = next(self._values(Fqdn), None)
        if value is None:
            return None
        return f"{value.hostname}.{value.domain}" if value.domain else value.hostname

    @property
    def problems(self) -> tuple[ParseError, ...]:
        """What a BGP speaker would refuse in this OPEN (RFC 4271 6.2 and the capability RFCs), in wire order,
        with offsets into the body. Empty for an acceptable OPEN."""
        return tuple(_check(self))


def _open_error(kind: str, offset: int, length: int, subcode: int, detail: str = "") -> ParseError:
    code = NotificationCode.OPEN_MESSAGE_ERROR
    return ParseError(kind, offset, length, Action.SESSION_RESET, code, subcode, detail)


def _length_error(kind: str, offset: int, length: int, detail: str = "") -> ParseError:
    return ParseError(
        kind,
        offset,
        length,
        Action.SESSION_RESET,
        NotificationCode.MESSAGE_HEADER_ERROR,
        HeaderSubcode.BAD_MESSAGE_LENGTH,
        detail,
    )


def _check(msg: Open) -> Iterator[ParseError]:
    if msg.version != BGP_VERSION:
        # RFC 4271 6.2: the NOTIFICATION data would carry the largest version we support.
        yield _open_error(
            "unsupported version",
            _VERSION_AT,
            1,
            OpenSubcode.UNSUPPORTED_VERSION_NUMBER,
            f"version {msg.version}",
        )
    if msg.my_as == 0:
        yield _open_error("peer AS 0", _MY_AS_AT, 2, OpenSubcode.BAD_PEER_AS, "RFC 7607 2")
    if 0 < msg.hold_time < _MIN_HOLD_TIME:
        yield _open_error(
            "unacceptable hold time",
            _HOLD_TIME_AT,
            2,
            OpenSubcode.UNACCEPTABLE_HOLD_TIME,
            f"{msg.hold_time} s",
        )
    if msg.router_id == "0.0.0.0":
        # RFC 6286 2.2: any non-zero 4-octet value is a valid BGP Identifier.
        yield _open_error("BGP Identifier is 0", _ROUTER_ID_AT, 4, OpenSubcode.BAD_BGP_IDENTIFIER)
    roles: set[int] = set()
    head = 3 if msg.extended_params else 2
    at = _EXT_PARAMS_AT if msg.extended_params else _PARAMS_AT
    for param in msg.parameters:
        cap_at = at + head
        if not isinstance(param.value, tuple):
            # Authentication (type 1) is deprecated; no other type is defined (RFC 5492 3).
            subcode = OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER
            size = head + len(param.value)
            yield _open_error("unsupported optional parameter", at, size, subcode, f"type {param.type}")
            at = cap_at + len(param.value)
            continue
        for cap in param.value:
            value = _encode_capability_value(cap)
            detail = _malformed_detail(cap)
            if detail is not None:
                yield _open_error(
                    f"malformed {capability_name(cap.code)} capability",
                    cap_at,
                    _CAP_HEAD + len(value),
                    _UNSPECIFIC,
                    detail,
                )
            elif isinstance(cap.value, Role):
                roles.add(cap.value.role)
                if len(roles) > 1:
                    # RFC 9234 4.2: several Role capabilities must agree.
                    yield _open_error(
                        "conflicting role capabilities",
                        cap_at,
                        _CAP_HEAD + len(value),
                        OpenSubcode.ROLE_MISMATCH,
                    )
            cap_at += _CAP_HEAD + len(value)
        at = cap_at


def decode_open(body: bytes | memoryview, strict: bool = False) -> Open:
    """Decode an OPEN body (the bytes after the 19-byte header).

    Raises `DecodeError` when the lengths do not add up. With `strict`, also raises for the first of
    `Open.problems` (bad version, hold time, BGP Identifier, ...), as a BGP speaker would refuse the OPEN;
    without it those are left for the caller to read from `Open.problems`.
    """
    body = bytes(body)
    size = len(body)
    if size < OPEN_FIXED_LEN:
        raise DecodeError(_length_error("OPEN shorter than its fixed fields", 0, size, f"{size} bytes"))
    version, my_as, hold_time, router_id, opt_len = _FIXED.unpack_from(body)
    extended = opt_len == ParameterType.EXTENDED_LENGTH and size > _PARAMS_AT and body[_PARAMS_AT] == opt_len
    if extended:
        # RFC 9072 2: Non-Ext OP Len 255, Non-Ext OP Type 255, then a 2-byte Extended Opt. Parm. Length.
        if size < _EXT_PARAMS_AT:
            raise DecodeError(
                _length_error("extended optional parameters length truncated", _PARAMS_AT, size - _PARAMS_AT)
            )
        params_at = _EXT_PARAMS_AT
        opt_len = _U16.unpack_from(body, _PARAMS_AT + 1)[0]
        len_at, len_size = _PARAMS_AT + 1, 2
    else:
        params_at = _PARAMS_AT
        len_at, len_size = _OPT_LEN_AT, 1
    if params_at + opt_len != size:
        # RFC 4271 6.1: the message length and the optional parameters length disagree.
        raise DecodeError(
            _length_error(
                "optional parameters length does not match the message",
                len_at,
                len_size,
                f"{opt_len} declared, {size - params_at} present",
            )
        )
    msg = Open(
        version,
        my_as,
        hold_time,
        f"{router_id[0]}.{router_id[1]}.{router_id[2]}.{router_id[3]}",
        _decode_parameters(body, params_at, extended),
        extended,
    )
    if strict:
        problems = msg.problems
        if problems:
            raise DecodeError(problems[0])
    return msg


def _decode_parameters(body: bytes, at: int, extended: bool) -> tuple[OptionalParameter, ...]:
    end = len(body)
    head = 3 if extended else 2
    params: list[OptionalParameter] = []
    while at < end:
        if at + head > end:
            raise DecodeError(_open_error("optional parameter header truncated", at, end - at, _UNSPECIFIC))
        ptype = body[at]
        plen = _U16.unpack_from(body, at + 1)[0] if extended else body[at + 1]
        start, stop = at + head, at + head + plen
        if stop > end:
            raise DecodeError(
                _open_error(
                    "optional parameter runs past the message",
                    at,
                    head,
                    _UNSPECIFIC,
                    f"type {ptype}, length {plen}",
                )
            )
        if ptype == ParameterType.CAPABILITIES:
            params.append(OptionalParameter(ptype, _decode_capabilities(body, start, stop)))
        else:
            params.append(OptionalParameter(ptype, body[start:stop]))
        at = stop
    return tuple(params)


def _decode_capabilities(body: bytes, at: int, end: int) -> tuple[Capability, ...]:
    caps: list[Capability] = []
    while at < end:
        if at + _CAP_HEAD > end:
            raise DecodeError(_open_error("capability header truncated", at, end - at, _UNSPECIFIC))
        code, length = body[at], body[at + 1]
        stop = at + _CAP_HEAD + length
        if stop > end:
            raise DecodeError(
                _open_error(
                    "capability runs past its optional parameter",
                    at,
                    _CAP_HEAD,
                    _UNSPECIFIC,
                    f"{capability_name(code)}, length {length}",
                )
            )
        caps.append(_decode_capability(code, body[at + _CAP_HEAD : stop]))
        at = stop
    return tuple(caps)


def encode_open(msg: Open) -> bytes:
    """The OPEN body. Raises ValueError for what cannot be encoded (a field out of range, parameters too long
    for the encoding chosen, or a classic encoding that would read as RFC 9072's)."""
    try:
        return _encode_open(msg)
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"OPEN field out of range: {exc}") from None


def _encode_open(msg: Open) -> bytes:
    try:
        router_id = ipaddress.IPv4Address(msg.router_id).packed
        fixed = struct.pack("!BHH4s", msg.version, msg.my_as, msg.hold_time, router_id)
    except (struct.error, ipaddress.AddressValueError) as exc:
        raise ValueError(f"OPEN field out of range: {exc}") from None
    limit = _MAX_U16 if msg.extended_params else _MAX_U8
    parts: list[bytes] = []
    for param in msg.parameters:
        if not 0 <= param.type <= _MAX_U8:
            raise ValueError(f"optional parameter type {param.type} out of range")
        if isinstance(param.value, tuple) != (param.type == ParameterType.CAPABILITIES):
            # Decoding splits every Capabilities parameter and no other, so only that shape round-trips.
            raise ValueError(f"parameter type {param.type} cannot hold a {type(param.value).__name__}")
        if isinstance(param.value, tuple):
            value = b"".join(_encode_capability(cap) for cap in param.value)
        else:
            value = bytes(param.value)
        if len(value) > limit:
            raise ValueError(f"optional parameter of {len(value)} bytes exceeds {limit}")
        size = _U16.pack(len(value)) if msg.extended_params else bytes([len(value)])
        parts.append(bytes([param.type]) + size + value)
    params = b"".join(parts)
    if len(params) > limit:
        raise ValueError(f"optional parameters of {len(params)} bytes exceed {limit}; use extended_params")
    if not msg.extended_params and len(params) == _MAX_U8 and params[0] == ParameterType.EXTENDED_LENGTH:
        # RFC 9072 2: this is exactly how the extended encoding announces itself, so it would not decode back.
        raise ValueError("these parameters would read as the RFC 9072 marker; use extended_params")
    if msg.extended_params:
        return (
            fixed
            + bytes([ParameterType.EXTENDED_LENGTH, ParameterType.EXTENDED_LENGTH])
            + _U16.pack(len(params))
            + params
        )
    return fixed + bytes([len(params)]) + params


def _encode_capability(cap: Capability) -> bytes:
    if not 0 <= cap.code <= _MAX_U8:
        raise ValueError(f"capability code {cap.code} out of range")
    value = _encode_capability_value(cap)
    if len(value) > _MAX_U8:
        raise ValueError(f"{capability_name(cap.code)} capability value of {len(value)} bytes exceeds 255")
    return bytes([cap.code, len(value)]) + value
