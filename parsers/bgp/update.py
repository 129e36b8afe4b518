"""What an UPDATE says, decoded with the sending session's context: routes announced and withdrawn per family.

The attribute block minus MP_REACH/MP_UNREACH is what routes share; it is decoded once per distinct block through
the `interned` cache the caller keeps (a full table has far fewer distinct blocks than prefixes). The MP attributes
carry per-UPDATE NLRI and next hops, so they are split off here and decoded each time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from parsers.bgp.attributes import PathAttributes, missing_mandatory, next_hop_addresses, path_attributes
from parsers.bgp.constants import (
    IPV4_UNICAST,
    AfiSafi,
    AttrCode,
    AttrFlag,
    NotificationCode,
    SegmentType,
    UpdateSubcode,
)
from parsers.bgp.context import SessionContext
from parsers.bgp.messages import Update
from parsers.bgp.nlri import UNICAST_ENTRY_SIZES, NlriField, split_nlri, unicast_prefixes
from parsers.errors import Action, ParseError, strongest

_MP_HEAD = struct.Struct("!HBB")  # AFI, SAFI, next hop length (RFC 4760 3)
_UNREACH_HEAD = struct.Struct("!HB")  # AFI, SAFI (RFC 4760 4)
# Offset of the attribute block inside an UPDATE body is 4 + withdrawn length: errors are reported body-relative.
_ATTRS_FIELD = 2


@dataclass(slots=True)
class Announcement:
    family: AfiSafi
    nlri: NlriField
    next_hop: str | None
    next_hop_link_local: str | None = None


@dataclass(slots=True)
class UpdateRoutes:
    """The routes one UPDATE changes, after RFC 7606 handling.

    With treat-as-withdraw every announced entry has been moved to `withdrawn`; with session reset the caller
    must end the session (the sender's peer would have). `attributes` is shared by every announcement.
    """

    announced: list[Announcement] = field(default_factory=list)
    withdrawn: list[tuple[AfiSafi, NlriField]] = field(default_factory=list)
    attributes: PathAttributes | None = None
    errors: list[ParseError] = field(default_factory=list)
    end_of_rib: AfiSafi | None = None
    disabled_families: list[AfiSafi] = field(default_factory=list)
    # What the message carried per family, before RFC 7606 turned announcements into withdrawals.
    carried_announced: dict[AfiSafi, int] = field(default_factory=dict)
    carried_withdrawn: dict[AfiSafi, int] = field(default_factory=dict)

    @property
    def action(self) -> Action:
        return strongest(self.errors)

    def count_carried(self) -> None:
        for family, nlri in self.withdrawn:
            if nlri.prefixes:
                self.carried_withdrawn[family] = self.carried_withdrawn.get(family, 0) + len(nlri.prefixes)
        for announcement in self.announced:
            family = announcement.family
            self.carried_announced[family] = self.carried_announced.get(family, 0) + len(announcement.nlri.prefixes)


@dataclass(slots=True)
class _Split:
    shared: bytes
    reach: list[tuple[int, int, bytes]] = field(default_factory=list)  # (offset in the block, flags, value)
    unreach: list[tuple[int, int, bytes]] = field(default_factory=list)
    as_path: bytes | None = None
    removed: tuple[tuple[int, int], ...] = ()  # (offset in `shared`, length) of each MP attribute cut out


_MP_CATEGORY = AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE
_MP_FLAGS = AttrFlag.OPTIONAL  # RFC 4760 3 and 4: optional non-transitive


def split_mp_attributes(block: bytes) -> _Split | None:
    """Separate MP_REACH/MP_UNREACH from the shared attributes by walking the headers; None if the walk fails."""
    i = 0
    end = len(block)
    as_path = None
    reach: list[tuple[int, int, bytes]] = []
    unreach: list[tuple[int, int, bytes]] = []
    kept: list[bytes] = []
    removed: list[tuple[int, int]] = []
    start = 0
    shared_len = 0
    while i < end:
        if i + 3 > end:
            return None
        flags = block[i]
        code = block[i + 1]
        if flags & AttrFlag.EXTENDED_LENGTH:
            if i + 4 > end:
                return None
            length = (block[i + 2] << 8) | block[i + 3]
            head = 4
        else:
            length = block[i + 2]
            head = 3
        stop = i + head + length
        if stop > end:
            return None
        if code == AttrCode.MP_REACH_NLRI or code == AttrCode.MP_UNREACH_NLRI:
            (reach if code == AttrCode.MP_REACH_NLRI else unreach).append((i, flags, block[i + head : stop]))
            kept.append(block[start:i])
            shared_len += i - start
            removed.append((shared_len, stop - i))
            start = stop
        elif code == AttrCode.AS_PATH and as_path is None:
            as_path = block[i + head : stop]
        i = stop
    if not reach and not unreach:
        return _Split(block, reach, unreach, as_path)
    kept.append(block[start:])
    return _Split(b"".join(kept), reach, unreach, as_path, tuple(removed))


def _check_mp(split: _Split, attrs_offset: int, out: UpdateRoutes) -> None:
    """RFC 7606 3.c, 3.g: MP attributes with wrong flags, or repeated, leave the session's state unknown."""
    for name, found in (("MP_REACH_NLRI", split.reach), ("MP_UNREACH_NLRI", split.unreach)):
        for at, flags, _value in found:
            if flags & _MP_CATEGORY != _MP_FLAGS:
                out.errors.append(
                    _mp_error(f"{name} flags 0x{flags:02x} are not optional non-transitive", attrs_offset + at, 2)
                )
        for at, _, value in found[1:]:
            out.errors.append(_mp_error(f"{name} repeated", attrs_offset + at, len(value)))


def as_path_fits(value: bytes, as4: bool) -> bool:
    """True when an AS_PATH value splits exactly into valid segments with this AS width (RFC 4271 4.3)."""
    width = 4 if as4 else 2
    i = 0
    end = len(value)
    while i < end:
        if i + 2 > end or not SegmentType.AS_SET <= value[i] <= SegmentType.AS_CONFED_SET or value[i + 1] == 0:
            return False
        i += 2 + value[i + 1] * width
    return i == end


class AttributeCache:
    """Interns decoded attribute blocks per AS width; the RIB shares the resulting objects."""

    __slots__ = ("_blocks", "_entries", "_missing", "hits", "misses")

    def __init__(self) -> None:
        self._entries: dict[tuple[bytes, bool], PathAttributes] = {}
        # id of an interned PathAttributes -> the block and AS width it was decoded from (see `block_of`).
        self._blocks: dict[int, tuple[bytes, bool]] = {}
        # (id of an interned PathAttributes, IPv4 NLRI present) -> missing mandatory attributes. Interned
        # objects live as long as the cache, so their ids are stable keys.
        self._missing: dict[tuple[int, bool], tuple[ParseError, ...]] = {}
        self.hits = 0
        self.misses = 0

    def missing(self, attrs: PathAttributes, has_ipv4_nlri: bool) -> tuple[ParseError, ...]:
        """RFC 7606 3.d for routes carried with these attributes, worked out once per interned set."""
        key = (id(attrs), has_ipv4_nlri)
        found = self._missing.get(key)
        if found is None:
            found = self._missing[key] = missing_mandatory(attrs, True, has_ipv4_nlri)
        return found

    def get(self, block: bytes, ctx: SessionContext) -> PathAttributes:
        key = (block, ctx.as4)
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            found = self._entries[key] = path_attributes(block, ctx)
            self._blocks[id(found)] = key
        else:
            self.hits += 1
        return found

    def block_of(self, attrs: PathAttributes) -> tuple[bytes, bool] | None:
        """The attribute block and AS width (True: 4 octets) an interned set was decoded from, or None for a set
        this cache did not make. Lets a writer keep the wire form without encoding the set again."""
        return self._blocks.get(id(attrs))

    def __len__(self) -> int:
        return len(self._entries)


def update_routes(update: Update, ctx: SessionContext, cache: AttributeCache) -> UpdateRoutes:
    """Decode an UPDATE's routes with the sender's context, applying RFC 7606."""
    out = UpdateRoutes()
    attrs_offset = 2 + len(update.withdrawn) + _ATTRS_FIELD
    nlri_offset = attrs_offset + len(update.attributes)
    add_path = ctx.add_path

    ipv4_add_path = IPV4_UNICAST in add_path
    if update.withdrawn:
        withdrawn = split_nlri(update.withdrawn, IPV4_UNICAST, ipv4_add_path, 2)
        out.withdrawn.append((IPV4_UNICAST, withdrawn))
        if withdrawn.error:
            out.errors.append(withdrawn.error)
    if not update.attributes:
        if update.nlri:
            out.errors.append(_update_error("NLRI without path attributes", nlri_offset, len(update.nlri)))
            out.announced.append(
                Announcement(IPV4_UNICAST, split_nlri(update.nlri, IPV4_UNICAST, ipv4_add_path, nlri_offset), None)
            )
        elif not update.withdrawn:
            out.end_of_rib = IPV4_UNICAST
        out.count_carried()
        _withdraw_all(out)
        return out

    split = split_mp_attributes(update.attributes)
    if split is None:
        # The headers do not walk: let the full decoder say exactly what is wrong.
        attrs = path_attributes(update.attributes, ctx)
        out.errors.extend(_shift(attrs.errors, attrs_offset))
        if not out.errors:
            out.errors.append(_update_error("malformed attribute list", attrs_offset, len(update.attributes)))
        if update.nlri:
            out.announced.append(
                Announcement(IPV4_UNICAST, split_nlri(update.nlri, IPV4_UNICAST, ipv4_add_path, nlri_offset), None)
            )
        out.count_carried()
        _withdraw_all(out)
        return out

    _check_mp(split, attrs_offset, out)
    for where in split.unreach:
        _unreach(where, attrs_offset, ctx, out)
    mp_announced = [a for a in (_reach(where, attrs_offset, ctx, out) for where in split.reach) if a is not None]

    attrs = cache.get(split.shared, ctx) if split.shared else None
    if attrs is not None:
        out.attributes = attrs
        if attrs.errors:
            out.errors.extend(_shift(attrs.errors, attrs_offset, split.removed))
    ipv4 = None
    if update.nlri:
        ipv4 = split_nlri(update.nlri, IPV4_UNICAST, ipv4_add_path, nlri_offset)
        if ipv4.error:
            out.errors.append(ipv4.error)
    has_ipv4 = ipv4 is not None and bool(ipv4.prefixes)
    if has_ipv4 or any(a.nlri.prefixes for a in mp_announced):
        if attrs is None:
            out.errors.append(_update_error("NLRI without ORIGIN/AS_PATH", attrs_offset, 0))
        else:
            missing = cache.missing(attrs, has_ipv4)
            if missing:
                out.errors.extend(_shift(missing, attrs_offset, split.removed))
    if has_ipv4:
        out.announced.append(Announcement(IPV4_UNICAST, ipv4, attrs.next_hop if attrs else None))  # type: ignore[arg-type]
    out.announced.extend(a for a in mp_announced if a.nlri.prefixes)
    if (
        len(split.unreach) == 1
        and not update.withdrawn
        and not update.nlri
        and not split.reach
        and not split.shared
        and len(out.withdrawn) == 1
        and not out.withdrawn[0][1].prefixes
    ):
        out.end_of_rib = out.withdrawn.pop()[0]  # RFC 4724 2: MP_UNREACH with no NLRI and nothing else
    out.count_carried()
    if out.errors and out.action >= Action.TREAT_AS_WITHDRAW:
        _withdraw_all(out)
    return out


_PLAIN_FAMILIES = {(1, 1): UNICAST_ENTRY_SIZES[1], (2, 1): UNICAST_ENTRY_SIZES[2]}  # IPv4 and IPv6 unicast
_V4_SIZES = UNICAST_ENTRY_SIZES[1]
_NEXT_HOPS: dict[tuple[int, int, bytes], tuple[str, ...]] = {}  # MP_REACH next hops seen: a session has few
_MAX_NEXT_HOPS = 4096


def plain_announcement(
    body: bytes, ctx: SessionContext, cache: AttributeCache
) -> tuple[AfiSafi, list[bytes], PathAttributes, str | None, str | None] | None:
    """The routes of the commonest UPDATE, decoded in one pass over the body without intermediate records:
    prefixes of IPv4 or IPv6 unicast (in the NLRI field or one MP_REACH_NLRI, not both), no withdrawals, no path
    identifiers, nothing malformed, attributes without errors. Returns (family, prefixes, attributes, next hop,
    link-local next hop), what `update_routes` gives for such a body; None for any other UPDATE, which
    `decode_update` + `update_routes` then handle in full (errors, withdrawals, End-of-RIB, other families)."""
    size = len(body)
    if size < 4 or body[0] or body[1]:
        return None  # short, or withdrawals
    end = 4 + ((body[2] << 8) | body[3])
    if end > size or end == 4:
        return None
    # Walk the attribute headers: find MP_REACH_NLRI, refuse MP_UNREACH_NLRI and anything that does not walk.
    reach = -1
    value_at = value_end = 0
    i = 4
    while i < end:
        if i + 3 > end:
            return None
        flags = body[i]
        code = body[i + 1]
        if flags & 0x10:  # extended length
            if i + 4 > end:
                return None
            stop = i + 4 + ((body[i + 2] << 8) | body[i + 3])
            head = 4
        else:
            stop = i + 3 + body[i + 2]
            head = 3
        if stop > end:
            return None
        if code == 14:  # MP_REACH_NLRI: once, optional non-transitive (RFC 7606 3.c, 3.g)
            if reach >= 0 or flags & 0xC0 != 0x80:
                return None
            reach, value_at, value_end = i, i + head, stop
        elif code == 15:  # MP_UNREACH_NLRI
            return None
        i = stop
    if reach < 0:
        if end == size or IPV4_UNICAST in ctx.add_path:
            return None
        prefixes = unicast_prefixes(body, end, size, _V4_SIZES)
        if prefixes is None:
            return None
        attrs = cache.get(body[4:end], ctx)
        if attrs.errors or cache.missing(attrs, True):
            return None
        return IPV4_UNICAST, prefixes, attrs, attrs.next_hop, None
    if end != size or value_end - value_at < 4:
        return None  # IPv4 NLRI beside MP_REACH_NLRI, or its fixed fields cut
    family = ((body[value_at] << 8) | body[value_at + 1], body[value_at + 2])
    sizes = _PLAIN_FAMILIES.get(family)
    nlri_at = value_at + 5 + body[value_at + 3]  # AFI, SAFI, next hop length, next hop, reserved octet
    if sizes is None or nlri_at > value_end or family in ctx.add_path:
        return None
    prefixes = unicast_prefixes(body, nlri_at, value_end, sizes)
    if not prefixes:
        return None
    shared = body[4:reach] + body[value_end:end]
    if not shared:
        return None
    attrs = cache.get(shared, ctx)
    if attrs.errors or cache.missing(attrs, False):
        return None
    key = (family[0], family[1], body[value_at + 4 : nlri_at - 1])
    next_hops = _NEXT_HOPS.get(key)
    if next_hops is None:
        if len(_NEXT_HOPS) >= _MAX_NEXT_HOPS:
            _NEXT_HOPS.clear()
        next_hops = _NEXT_HOPS[key] = next_hop_addresses(*key)
    return (
        family,
        prefixes,
        attrs,
        next_hops[0] if next_hops else None,
        next_hops[1] if len(next_hops) > 1 else None,
    )


def _withdraw_all(out: UpdateRoutes) -> None:
    """Treat-as-withdraw (RFC 7606 2): every route the UPDATE announced is withdrawn instead."""
    for announcement in out.announced:
        out.withdrawn.append((announcement.family, announcement.nlri))
    out.announced = []


def _reach(where: tuple[int, bytes], attrs_offset: int, ctx: SessionContext, out: UpdateRoutes) -> Announcement | None:
    at, _, value = where
    offset = attrs_offset + at
    if len(value) < _MP_HEAD.size:
        out.errors.append(_mp_error("MP_REACH_NLRI shorter than its fixed fields", offset, len(value)))
        return None
    afi, safi, nh_len = _MP_HEAD.unpack_from(value)
    nlri_at = _MP_HEAD.size + nh_len + 1  # one reserved byte (RFC 4760 3)
    if nlri_at > len(value):
        out.errors.append(_mp_error("MP_REACH_NLRI next hop runs past the attribute", offset, len(value)))
        return None
    family = (afi, safi)
    next_hops = next_hop_addresses(afi, safi, value[_MP_HEAD.size : _MP_HEAD.size + nh_len])
    field = split_nlri(value[nlri_at:], family, family in ctx.add_path, offset + nlri_at)
    if field.error:
        out.errors.append(field.error)
        out.disabled_families.append(family)
        return None
    return Announcement(
        family,
        field,
        next_hops[0] if next_hops else None,
        next_hops[1] if len(next_hops) > 1 else None,
    )


def _unreach(where: tuple[int, int, bytes], attrs_offset: int, ctx: SessionContext, out: UpdateRoutes) -> None:
    at, _, value = where
    offset = attrs_offset + at
    if len(value) < _UNREACH_HEAD.size:
        out.errors.append(_mp_error("MP_UNREACH_NLRI shorter than its fixed fields", offset, len(value)))
        return
    afi, safi = _UNREACH_HEAD.unpack_from(value)
    family = (afi, safi)
    field = split_nlri(value[_UNREACH_HEAD.size :], family, family in ctx.add_path, offset + 3)
    if field.error:
        out.errors.append(field.error)
        out.disabled_families.append(family)
    out.withdrawn.append((family, field))


def _shift(errors: tuple[ParseError, ...], by: int, removed: tuple[tuple[int, int], ...] = ()) -> list[ParseError]:
    """Make offsets in the shared attribute block relative to the UPDATE body.

    `removed` lists (offset, length) of the MP attributes cut out of the block, in order: an offset past a cut
    moves back by the cut's length."""
    out = []
    for error in errors:
        shift = sum(length for at, length in removed if error.offset >= at)
        out.append(replace(error, offset=error.offset + shift + by))
    return out


def _update_error(kind: str, offset: int, length: int) -> ParseError:
    return ParseError(
        kind,
        offset,
        length,
        Action.TREAT_AS_WITHDRAW,
        NotificationCode.UPDATE_MESSAGE_ERROR,
        UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
    )


def _mp_error(kind: str, offset: int, length: int) -> ParseError:
    # RFC 7606 7.11: a malformed MP_REACH/MP_UNREACH leaves the family's state unknown.
    return ParseError(
        kind,
        offset,
        length,
        Action.SESSION_RESET,
        NotificationCode.UPDATE_MESSAGE_ERROR,
        UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
    )
