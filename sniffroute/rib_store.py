"""The BGP RIB read back from the store, exactly: what `sniffroute run` restores after a restart.

The `attrs` table keeps each attribute set twice: as JSON for `sniffroute rib` (what it shows, lossy), and in a
form that gives the same `PathAttributes` back: the wire encoding of its well-formed attributes, the AS width it
was encoded with, and the errors found when it was first decoded (malformed attributes never reach
`PathAttributes.attributes`, so decoding the encoding again cannot find them). Decoding that block with the
same AS width gives the same attributes in the same order, and the same RFC 6793 AS4 merge.

Loading is all or nothing: a store whose rows do not hold together gives no routes and says why
(`LoadedRib.problem`); it never raises. (sniffroute.store says the same of a store an older sniffroute wrote.)
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from parsers.bgp.attributes import PathAttributes, decode_attributes, encode_attributes, path_attributes
from parsers.bgp.constants import AfiSafi, AttrCode
from parsers.bgp.context import SessionContext
from parsers.errors import Action, ParseError, strongest
from sniffroute.rib import Path, Peer, PeerState
from sniffroute.route_blocks import NO_PATH_ID, bucket_prefixes, code_family

RESTORED_FAMILIES = frozenset({(1, 1), (2, 1)})  # what the RIB holds (sniffroute.sessions.RIB_FAMILIES)
_AS4_ONLY = frozenset({int(AttrCode.AS4_PATH), int(AttrCode.AS4_AGGREGATOR)})
_CONTEXTS = {as4: SessionContext(as4=as4) for as4 in (False, True)}


class RestoredRoutes(NamedTuple):
    """Prefixes of one family with the same path, as stored in a block: `path.peer` is the stored peer id."""

    family: AfiSafi
    prefixes: list[bytes]
    path_id: int | None
    path: Path


@dataclass(frozen=True, slots=True)
class LoadedRib:
    """Peers (with their stored ids) and every path of their Adj-RIB-In; `problem` says why nothing loaded."""

    peers: tuple[Peer, ...] = ()
    routes: tuple[RestoredRoutes, ...] = ()
    problem: str | None = None

    @property
    def path_count(self) -> int:
        return sum(len(block.prefixes) for block in self.routes)


class StoredRibError(Exception):
    """The stored RIB cannot be read back as it was written."""


# -- writing -------------------------------------------------------------------------------------------------
def attributes_wire(
    attrs: PathAttributes, decoded_from: tuple[bytes, bool] | None = None
) -> tuple[bytes, int, str | None]:
    """(wire block, AS width flag, errors as JSON or None) for the `attrs` row of an attribute set.

    AS4_PATH and AS4_AGGREGATOR only survive decoding on a 2-octet AS session (RFC 6793 6), so their presence
    says which width decoded the set; without them both widths give the same attributes back.

    `decoded_from` (block, AS width), when known (parsers.bgp.update.AttributeCache.block_of), saves the encoding:
    a block decoded without errors holds exactly the attributes decoded, and encoding them with the same width
    gives it back byte for byte."""
    as4 = not any(a.code in _AS4_ONLY for a in attrs.attributes)
    if decoded_from is not None and not attrs.errors and decoded_from[1] == as4:
        block = decoded_from[0]
    else:
        block = encode_attributes(attrs.attributes, _CONTEXTS[as4])
    errors = json.dumps([_error_json(e) for e in attrs.errors]) if attrs.errors else None
    return block, int(as4), errors


def _error_json(error: ParseError) -> list[Any]:
    return [error.kind, error.offset, error.length, int(error.action), error.code, error.subcode, error.detail]


# -- reading -------------------------------------------------------------------------------------------------
def attributes_from_wire(block: bytes, as4: bool, errors_json: str | None) -> PathAttributes:
    """The `PathAttributes` an `attributes_wire` row was made from (StoredRibError if it cannot be)."""
    ctx = _CONTEXTS[bool(as4)]
    attrs = path_attributes(block, ctx)
    if not attrs.errors and not errors_json:  # the common set: decoded cleanly, stored without errors
        return attrs
    # Errors now are decoding errors (a damaged row) or notes of the RFC 6793 merge, which the stored errors
    # hold with those of the first decoding.
    _attributes, fresh = decode_attributes(block, ctx)
    if fresh:
        raise StoredRibError(f"stored attribute block does not decode cleanly ({fresh[0]})")
    errors = tuple(_error_from_json(item) for item in json.loads(errors_json)) if errors_json else ()
    return replace(attrs, errors=errors, action=strongest(errors) if errors else Action.NONE)


def _error_from_json(item: Any) -> ParseError:
    kind, offset, length, action, code, subcode, detail = item
    fields = (offset, length, code, subcode)
    if not isinstance(kind, str) or not isinstance(detail, str) or not all(type(v) is int for v in fields):
        raise StoredRibError(f"stored attribute error {item!r} is not one")
    return ParseError(kind, offset, length, Action(action), code, subcode, detail)


def load_rib(db: sqlite3.Connection) -> LoadedRib:
    """Every peer and every path of the stored BGP RIB, or none and the reason. Never raises."""
    try:
        return _load(db)
    except (sqlite3.Error, StoredRibError, ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        return LoadedRib(problem=f"the stored RIB is damaged ({exc})")


def _load(db: sqlite3.Connection) -> LoadedRib:
    peers: dict[int, Peer] = {}
    for pid, address, local_address, asn, local_asn, router_id, state, possibly_stale, generation in db.execute(
        "SELECT id, address, local_address, asn, local_asn, router_id, state, possibly_stale, generation"
        " FROM peers ORDER BY id"
    ):
        if not isinstance(address, str) or not isinstance(local_address, str) or type(generation) is not int:
            raise StoredRibError(f"peer {pid} is incomplete")
        peers[pid] = Peer(
            pid,
            address,
            local_address,
            asn=asn,
            local_asn=local_asn,
            router_id=router_id,
            state=PeerState(state),
            generation=generation,
            sessions_seen=generation,
            possibly_stale=bool(possibly_stale),
        )
    attrs: dict[int, PathAttributes] = {}
    for aid, block, as4, errors in db.execute("SELECT id, wire, wire_as4, wire_errors FROM attrs"):
        if not isinstance(block, bytes):
            raise StoredRibError(f"attribute set {aid} is not bytes")
        attrs[aid] = attributes_from_wire(block, bool(as4), errors)
    paths: dict[int, Path] = {}
    for path_row, peer, aid, next_hop, next_hop_ll, since, generation in db.execute(
        "SELECT id, peer, attrs, next_hop, next_hop_ll, since, generation FROM paths"
    ):
        if peer not in peers or aid not in attrs or type(generation) is not int:
            raise StoredRibError(f"path {path_row} names a peer or attribute set that is not stored")
        paths[path_row] = Path(peer, attrs[aid], next_hop, next_hop_ll, float(since), generation)
    routes = []
    for code, bucket, peer, path_id, path_row, blob in db.execute(
        "SELECT family, bucket, peer, path_id, path, prefixes FROM route_blocks"
    ):
        family = code_family(code)
        path = paths.get(path_row)
        if path is None or path.peer != peer or family not in RESTORED_FAMILIES or not isinstance(blob, bytes):
            raise StoredRibError(f"block of routes ({code}, {bucket}, {peer}, {path_row}) does not hold together")
        prefixes = bucket_prefixes(blob, family[0], bucket)
        routes.append(RestoredRoutes(family, prefixes, None if path_id == NO_PATH_ID else path_id, path))
    return LoadedRib(tuple(peers.values()), tuple(routes))
