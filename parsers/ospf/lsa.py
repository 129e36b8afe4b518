"""OSPF link state advertisements as immutable records: the API the LSDB and SPF are written against.

Every LSA, OSPFv2 (RFC 2328 A.4) or OSPFv3 (RFC 5340 A.4), is one `Lsa`:

    Lsa(header: LsaHeader, body: <one of the body records below>, checksum_ok: bool, problem: ParseError | None)

* `LsaHeader(age, options, type, ls_id, adv_router, seq, checksum, length, version)`. `type` is the v2 LS type
  (1..11, `LsaType`) or the full 16-bit v3 LS type (0x2001 ..., `Lsa3Type`; U and S bits included). v3 headers
  have no options byte: `options` is 0 there and the options live in the body. `ls_id`, `adv_router` are
  `IPv4Address` in both versions (v3 link state IDs are plain 32-bit numbers, shown dotted as BIRD and tshark
  do). `seq` is the signed 32-bit LS sequence number (0x80000001 = -0x7FFFFFFF is the first one).
  `header.key` = `LsaKey(type, ls_id, adv_router)` identifies the LSA instance-independently (RFC 2328 12.1).
  `header.scope` is `Scope.LINK`, `Scope.AREA` or `Scope.AS` (flooding scope: v2 by type, v3 by the S bits).
* `checksum_ok` is False when the Fletcher checksum (RFC 2328 12.1.7) does not verify: such an LSA must not be
  installed. `problem` is set when the body could not be decoded (it is then `RawLsa`).

OSPFv2 bodies (IPv4Address for every address, mask and ID; metrics are ints):
* `RouterLsa(flags, links)`; `links` are `RouterLink(link_id, data, type: LinkType, metric, tos)`. The meaning
  of `link_id`/`data` per `type` is RFC 2328 A.4.2: POINT_TO_POINT (neighbour router ID / own interface
  address or ifIndex), TRANSIT (DR interface address / own address), STUB (network / mask), VIRTUAL (neighbour
  router ID / own address). `flags` bits: `RouterFlag.B` (ABR), `E` (ASBR), `V` (virtual link endpoint),
  `NT` (NSSA translator); see `is_abr`, `is_asbr`.
* `NetworkLsa(mask, attached)`: `attached` are router IDs; the network is `prefix_of(header.ls_id, mask)`.
* `SummaryLsa(mask, metric, tos)`: type 3 (network: `prefix_of(ls_id, mask)`) and type 4 (ASBR: ls_id is the
  ASBR's router ID, mask 0.0.0.0).
* `ExternalLsa(mask, e_bit, metric, forwarding, tag, tos)`: type 5 (AS external) and type 7 (NSSA, RFC 3101).
  `e_bit` True = type 2 metric (E2/N2). `forwarding` 0.0.0.0 = via the advertising router.
* `OpaqueLsa(opaque_type, opaque_id, tlvs)`: types 9/10/11 (RFC 5250); `tlvs` are `Tlv(type, value, sub_tlvs,
  decoded)` where `decoded` holds the value when it is simple (a number, address, name, bandwidth) and
  `sub_tlvs` the nested TLVs of containers (TE Link, Extended Prefix/Link); `value` always keeps the bytes.

OSPFv3 bodies (prefixes are `Prefix3(network: IPv6Network, options, metric)`; metric is only meaningful in
intra-area-prefix LSAs, 0 elsewhere):
* `Router3Lsa(flags, options, links)`; `links` are `Router3Link(type: LinkType, metric, interface_id,
  neighbor_interface_id, neighbor_router_id)` (RFC 5340 A.4.3). Transit links name the DR by
  (neighbor_router_id, neighbor_interface_id) = the network LSA's (adv_router, ls_id).
* `Network3Lsa(options, attached)`.
* `InterAreaPrefixLsa(metric, prefix)` (0x2003), `InterAreaRouterLsa(options, metric, destination)` (0x2004).
* `External3Lsa(e_bit, metric, prefix, forwarding, tag, referenced_type, referenced_id)` (0x4005, NSSA 0x2007);
  absent optional fields are None.
* `Link3Lsa(priority, options, link_local, prefixes)` (0x0008), `IntraAreaPrefixLsa(referenced_type,
  referenced_id, referenced_adv_router, prefixes)` (0x2009).

Anything else (unknown types, undecodable bodies) is `RawLsa(data)` with the body bytes.

Decoding and encoding live in `parsers.ospf.lsa_codec` (`decode_lsa`, `encode_lsa`); this module holds only the
records, the numbers and small helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import NamedTuple

from parsers.errors import ParseError

__all__ = [
    "DO_NOT_AGE",
    "INITIAL_SEQUENCE",
    "LSA_HEADER_LEN",
    "MAX_AGE",
    "MAX_AGE_DIFF",
    "MAX_SEQUENCE",
    "ExternalLsa",
    "External3Lsa",
    "InterAreaPrefixLsa",
    "InterAreaRouterLsa",
    "IntraAreaPrefixLsa",
    "Link3Lsa",
    "LinkType",
    "Lsa",
    "Lsa3Type",
    "LsaBody",
    "LsaHeader",
    "LsaKey",
    "LsaType",
    "Network3Lsa",
    "NetworkLsa",
    "OpaqueLsa",
    "OpaqueType",
    "Prefix3",
    "RawLsa",
    "Router3Lsa",
    "Router3Link",
    "RouterFlag",
    "RouterLink",
    "RouterLsa",
    "Scope",
    "SummaryLsa",
    "Tlv",
    "TosMetric",
    "lsa_type_name",
    "prefix_of",
]

# RFC 2328 Appendix B architectural constants
MAX_AGE = 3600  # seconds
MAX_AGE_DIFF = 900  # seconds
LS_REFRESH_TIME = 1800
INITIAL_SEQUENCE = -0x7FFFFFFF  # 0x80000001 as a signed 32-bit number (RFC 2328 12.1.6)
MAX_SEQUENCE = 0x7FFFFFFF
LSA_HEADER_LEN = 20  # RFC 2328 A.4.1 and RFC 5340 A.4.2
DO_NOT_AGE = 0x8000  # the DoNotAge bit of LS age (RFC 1793 2.2); the age itself is the low 15 bits


class LsaType(IntEnum):
    """OSPFv2 LS types (RFC 2328 A.4.1, RFC 3101 2.4 NSSA, RFC 5250 opaque)."""

    ROUTER = 1
    NETWORK = 2
    SUMMARY_NETWORK = 3
    SUMMARY_ASBR = 4
    AS_EXTERNAL = 5
    GROUP_MEMBERSHIP = 6  # MOSPF, obsolete
    NSSA_EXTERNAL = 7
    EXTERNAL_ATTRIBUTES = 8  # obsolete
    OPAQUE_LINK = 9
    OPAQUE_AREA = 10
    OPAQUE_AS = 11


class Lsa3Type(IntEnum):
    """OSPFv3 LS types, U/S bits included (RFC 5340 A.4.2.1)."""

    ROUTER = 0x2001
    NETWORK = 0x2002
    INTER_AREA_PREFIX = 0x2003
    INTER_AREA_ROUTER = 0x2004
    AS_EXTERNAL = 0x4005
    GROUP_MEMBERSHIP = 0x2006
    NSSA = 0x2007
    LINK = 0x0008
    INTRA_AREA_PREFIX = 0x2009


class Scope(IntEnum):
    """Flooding scope (RFC 5340 A.4.2.1 S1/S2 bits; RFC 2328 / RFC 5250 by type for v2)."""

    LINK = 0
    AREA = 1
    AS = 2
    RESERVED = 3


class LinkType(IntEnum):
    """Router-LSA link types (RFC 2328 A.4.2; RFC 5340 A.4.3 uses 1, 2 and 4)."""

    POINT_TO_POINT = 1
    TRANSIT = 2
    STUB = 3
    VIRTUAL = 4


class RouterFlag(IntFlag):
    """Router-LSA flag bits (RFC 2328 A.4.2, RFC 3101 2.1 Nt, RFC 5340 A.4.3)."""

    B = 0x01  # area border router
    E = 0x02  # AS boundary router
    V = 0x04  # endpoint of a fully adjacent virtual link
    W = 0x08  # wildcard multicast receiver (MOSPF, obsolete)
    NT = 0x10  # NSSA translator


class OpaqueType(IntEnum):
    """Opaque types (IANA OSPF Opaque LSA Option Types)."""

    TE = 1  # RFC 3630
    SYCAMORE = 2
    GRACE = 3  # RFC 3623
    ROUTER_INFORMATION = 4  # RFC 7770
    L1VPN = 5
    INTER_AS_TE_V2 = 6
    EXTENDED_PREFIX = 7  # RFC 7684
    EXTENDED_LINK = 8  # RFC 7684


class LsaKey(NamedTuple):
    """What identifies an LSA apart from its instance (RFC 2328 12.1)."""

    type: int
    ls_id: IPv4Address
    adv_router: IPv4Address


_V2_SCOPES = {LsaType.OPAQUE_LINK: Scope.LINK, LsaType.AS_EXTERNAL: Scope.AS, LsaType.OPAQUE_AS: Scope.AS}
_V3_SCOPE_SHIFT = 13  # S2 S1 are bits 14..13 of the v3 LS type


@dataclass(frozen=True, slots=True)
class LsaHeader:
    """The 20-byte LSA header (RFC 2328 A.4.1 / RFC 5340 A.4.2); see the module docstring."""

    age: int
    options: int
    type: int
    ls_id: IPv4Address
    adv_router: IPv4Address
    seq: int
    checksum: int
    length: int
    version: int = 2

    @property
    def key(self) -> LsaKey:
        return LsaKey(self.type, self.ls_id, self.adv_router)

    @property
    def scope(self) -> Scope:
        if self.version == 3:
            return Scope((self.type >> _V3_SCOPE_SHIFT) & 0x3)
        return _V2_SCOPES.get(self.type, Scope.AREA)  # type: ignore[call-overload]

    @property
    def do_not_age(self) -> bool:
        return bool(self.age & DO_NOT_AGE)

    @property
    def known_type(self) -> bool:
        kinds = Lsa3Type if self.version == 3 else LsaType
        return self.type in kinds._value2member_map_


class TosMetric(NamedTuple):
    """A TOS-specific metric (RFC 2328 A.4.2; obsolete, kept for exact re-encoding)."""

    tos: int
    metric: int


@dataclass(frozen=True, slots=True)
class RouterLink:
    link_id: IPv4Address
    data: IPv4Address
    type: int  # LinkType, or the raw number if unknown
    metric: int
    tos: tuple[TosMetric, ...] = ()


@dataclass(frozen=True, slots=True)
class RouterLsa:
    flags: int  # RouterFlag bits
    links: tuple[RouterLink, ...]

    @property
    def is_abr(self) -> bool:
        return bool(self.flags & RouterFlag.B)

    @property
    def is_asbr(self) -> bool:
        return bool(self.flags & RouterFlag.E)


@dataclass(frozen=True, slots=True)
class NetworkLsa:
    mask: IPv4Address
    attached: tuple[IPv4Address, ...]


@dataclass(frozen=True, slots=True)
class SummaryLsa:
    mask: IPv4Address
    metric: int  # 24 bits; 0xFFFFFF = LSInfinity
    tos: tuple[TosMetric, ...] = ()


@dataclass(frozen=True, slots=True)
class ExternalTos:
    e_bit: bool
    tos: int
    metric: int
    forwarding: IPv4Address
    tag: int


@dataclass(frozen=True, slots=True)
class ExternalLsa:
    mask: IPv4Address
    e_bit: bool  # True: type 2 external metric
    metric: int
    forwarding: IPv4Address
    tag: int
    tos: tuple[ExternalTos, ...] = ()


@dataclass(frozen=True, slots=True)
class Tlv:
    """One TLV of an opaque LSA (RFC 5250 / RFC 7770 style: 16-bit type and length, value padded to 4 bytes).

    `value` holds the value without its padding (the length field is `len(value)`).
    """

    type: int
    value: bytes
    sub_tlvs: tuple[Tlv, ...] = ()
    decoded: object = None  # int, float, str, IPv4Address, tuple... when the value is simple


@dataclass(frozen=True, slots=True)
class OpaqueLsa:
    opaque_type: int
    opaque_id: int  # 24 bits
    tlvs: tuple[Tlv, ...]
    data: bytes = b""  # the body when it is not a TLV sequence (unknown opaque type that does not parse)


@dataclass(frozen=True, slots=True)
class Prefix3:
    """An OSPFv3 address prefix (RFC 5340 A.4.1): `metric` is the 16-bit field after the options."""

    network: IPv6Network
    options: int
    metric: int = 0


@dataclass(frozen=True, slots=True)
class Router3Link:
    type: int
    metric: int
    interface_id: int
    neighbor_interface_id: int
    neighbor_router_id: IPv4Address


@dataclass(frozen=True, slots=True)
class Router3Lsa:
    flags: int  # RouterFlag bits
    options: int  # 24 bits
    links: tuple[Router3Link, ...]

    @property
    def is_abr(self) -> bool:
        return bool(self.flags & RouterFlag.B)

    @property
    def is_asbr(self) -> bool:
        return bool(self.flags & RouterFlag.E)


@dataclass(frozen=True, slots=True)
class Network3Lsa:
    options: int
    attached: tuple[IPv4Address, ...]


@dataclass(frozen=True, slots=True)
class InterAreaPrefixLsa:
    metric: int
    prefix: Prefix3


@dataclass(frozen=True, slots=True)
class InterAreaRouterLsa:
    options: int
    metric: int
    destination: IPv4Address


@dataclass(frozen=True, slots=True)
class External3Lsa:
    e_bit: bool
    metric: int
    prefix: Prefix3  # its `metric` field carries the Referenced LS Type on the wire; kept 0 here
    forwarding: IPv6Address | None
    tag: int | None
    referenced_type: int
    referenced_id: IPv4Address | None


@dataclass(frozen=True, slots=True)
class Link3Lsa:
    priority: int
    options: int
    link_local: IPv6Address
    prefixes: tuple[Prefix3, ...]


@dataclass(frozen=True, slots=True)
class IntraAreaPrefixLsa:
    referenced_type: int
    referenced_id: IPv4Address
    referenced_adv_router: IPv4Address
    prefixes: tuple[Prefix3, ...]


@dataclass(frozen=True, slots=True)
class RawLsa:
    data: bytes


LsaBody = (
    RouterLsa
    | NetworkLsa
    | SummaryLsa
    | ExternalLsa
    | OpaqueLsa
    | Router3Lsa
    | Network3Lsa
    | InterAreaPrefixLsa
    | InterAreaRouterLsa
    | External3Lsa
    | Link3Lsa
    | IntraAreaPrefixLsa
    | RawLsa
)


@dataclass(frozen=True, slots=True)
class Lsa:
    header: LsaHeader
    body: LsaBody
    checksum_ok: bool = True
    problem: ParseError | None = None

    @property
    def key(self) -> LsaKey:
        return self.header.key

    @property
    def installable(self) -> bool:
        """False for an LSA whose checksum failed: RFC 2328 13 (1) discards it."""
        return self.checksum_ok


def prefix_of(ls_id: IPv4Address, mask: IPv4Address) -> IPv4Network:
    """The network an LSA names by (ID, mask); host bits in the ID are dropped (RFC 2328 Appendix E)."""
    bits = int(mask)
    length = 32 - (~bits & 0xFFFFFFFF).bit_length()
    return IPv4Network((int(ls_id) & bits, length), strict=False)  # strict=False: a non-contiguous mask


_V3_NAMES = {
    Lsa3Type.ROUTER: "router",
    Lsa3Type.NETWORK: "network",
    Lsa3Type.INTER_AREA_PREFIX: "inter-area-prefix",
    Lsa3Type.INTER_AREA_ROUTER: "inter-area-router",
    Lsa3Type.AS_EXTERNAL: "as-external",
    Lsa3Type.GROUP_MEMBERSHIP: "group-membership",
    Lsa3Type.NSSA: "nssa",
    Lsa3Type.LINK: "link",
    Lsa3Type.INTRA_AREA_PREFIX: "intra-area-prefix",
}
_V2_NAMES = {
    LsaType.ROUTER: "router",
    LsaType.NETWORK: "network",
    LsaType.SUMMARY_NETWORK: "summary-network",
    LsaType.SUMMARY_ASBR: "summary-asbr",
    LsaType.AS_EXTERNAL: "as-external",
    LsaType.GROUP_MEMBERSHIP: "group-membership",
    LsaType.NSSA_EXTERNAL: "nssa-external",
    LsaType.EXTERNAL_ATTRIBUTES: "external-attributes",
    LsaType.OPAQUE_LINK: "opaque-link",
    LsaType.OPAQUE_AREA: "opaque-area",
    LsaType.OPAQUE_AS: "opaque-as",
}


def lsa_type_name(version: int, ls_type: int) -> str:
    """A short name for an LS type ("router", "nssa-external", ...); unknown ones as "type 0x....."."""
    names: dict[int, str] = _V3_NAMES if version == 3 else _V2_NAMES  # type: ignore[assignment]
    name = names.get(ls_type)
    if name is not None:
        return name
    return f"type {ls_type:#06x}" if version == 3 else f"type {ls_type}"
