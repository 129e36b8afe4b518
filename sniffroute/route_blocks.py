"""How the store packs routes: one row per run of prefixes that share everything but the prefix.

A full table is a few hundred thousand prefixes but only tens of thousands of UPDATEs, and every prefix of an
UPDATE has the same peer, path and (usually) best-path outcome. So a row (`route_blocks` in sniffroute.store)
holds a block: the family, a bucket, the peer, the ADD-PATH identifier, the path, the best flag and reason, and
the prefixes themselves as the RIB keys them (length byte, then the octets it covers) laid end to end. SQLite's
cost is per row, about a microsecond; a row per prefix made writing the store cost more than the replay itself.

The bucket is the first octet of the prefix (-1 for a /0), so that a lookup reads the few blocks of one bucket,
not the table: every prefix covering an address has its bucket among the first octets of the covering prefixes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from itertools import groupby
from operator import countOf, itemgetter
from typing import Any

from parsers.bgp.nlri import UNICAST_ENTRY_SIZES, unicast_prefixes
from sniffroute.rib import Path, Reason, Rib

NO_PATH_ID = -1  # a route without an ADD-PATH identifier (those are 0..2**32-1): the column is never NULL
REASON_CODES = {reason: code for code, reason in enumerate(Reason)}
_ONLY_PATH = REASON_CODES[Reason.ONLY_PATH]
_first = itemgetter(0)
_second = itemgetter(1)
_bucket_octet = itemgetter(slice(1, 2))

# (family code, bucket, peer, path id, path row, best, reason code or None, prefix count, prefixes)
BlockRow = tuple[int, int, int, int, int, int, int | None, int, bytes]


def family_code(family: tuple[int, int]) -> int:
    return (family[0] << 8) | family[1]


def code_family(code: int) -> tuple[int, int]:
    return code >> 8, code & 0xFF


def bucket_of(key: bytes) -> int:
    """The bucket of a RIB key: its first address octet, or -1 for a /0 (which has none)."""
    return key[1] if len(key) > 1 else -1


def split_prefixes(blob: bytes, afi: int) -> list[bytes]:
    """The RIB keys laid end to end in a block of that AFI (ValueError unless they split exactly into prefixes
    of its address width)."""
    keys = unicast_prefixes(blob, 0, len(blob), UNICAST_ENTRY_SIZES[afi])
    if keys is None:
        raise ValueError(f"a stored block of {len(blob)} octets does not split into AFI {afi} prefixes")
    return keys


def bucket_prefixes(blob: bytes, afi: int, bucket: int) -> list[bytes]:
    """`split_prefixes`, and ValueError unless every prefix is of `bucket`: a block filed under another bucket
    would be missed by every lookup."""
    keys = split_prefixes(blob, afi)
    if set(map(_bucket_octet, keys)) != {b"" if bucket == -1 else bytes((bucket,))}:
        raise ValueError(f"a stored block of bucket {bucket} holds a prefix of another bucket")
    return keys


def block_rows(
    rib: Rib, ospf_wins: Collection[tuple[tuple[int, int], bytes]], row_of: Callable[[Path], int]
) -> list[BlockRow]:
    """Every BGP route of `rib`, packed in blocks. A best path counts as best only when the Loc-RIB uses BGP for
    its prefix (not in `ospf_wins`). `row_of` gives a path's row id in the `paths` table."""
    rows: list[BlockRow] = []
    for family, table in rib.tables.items():
        code = family_code(family)
        if not ospf_wins and not countOf(map(type, table.values()), dict):
            rows += _single_path_blocks(code, table, row_of)
        else:
            rows += entry_blocks(rib, family, table.items(), ospf_wins, row_of)
    return rows


def _single_path_blocks(code: int, table: dict[bytes, Any], row_of: Callable[[Path], int]) -> list[BlockRow]:
    """The common table: one path per prefix, best as the only path. The prefixes of an UPDATE sit next to each
    other in the table (in the order they were announced), so runs of the same (bucket, path) are the blocks;
    the passes over the prefixes run in C, and Python works once per run."""
    rows: list[BlockRow] = []
    keys = zip(map(_bucket_octet, table), table.values(), strict=True)
    for (octet, path), run in groupby(zip(keys, table, strict=True), key=_first):
        prefixes = list(map(_second, run))
        bucket = octet[0] if octet else -1
        rows.append(
            (code, bucket, path.peer, NO_PATH_ID, row_of(path), 1, _ONLY_PATH, len(prefixes), b"".join(prefixes))
        )
    return rows


def entry_blocks(
    rib: Rib,
    family: tuple[int, int],
    entries: Iterable[tuple[bytes, Any]],
    ospf_wins: Collection[tuple[tuple[int, int], bytes]],
    row_of: Callable[[Path], int],
) -> list[BlockRow]:
    """The blocks of some prefixes of a family, given with their RIB entries: any table (several paths per prefix,
    ADD-PATH identifiers, prefixes whose route is OSPF's)."""
    code = family_code(family)
    decisions = rib.decisions[family]
    groups: dict[tuple[Any, ...], list[bytes]] = {}
    for prefix, entry in entries:
        lost = bool(ospf_wins) and (family, prefix) in ospf_wins
        bucket = bucket_of(prefix)
        if type(entry) is Path:
            key: tuple[Any, ...] = (bucket, entry.peer, NO_PATH_ID, entry, int(not lost), None if lost else _ONLY_PATH)
            groups.setdefault(key, []).append(prefix)
            continue
        decision = decisions.get(prefix)
        for source, path in entry.items():
            best = decision is not None and decision[0] == source and not lost
            reason = REASON_CODES[decision[1]] if best else None
            path_id = NO_PATH_ID if source[1] is None else source[1]
            groups.setdefault((bucket, source[0], path_id, path, int(best), reason), []).append(prefix)
    return [
        (code, bucket, peer, path_id, row_of(path), best, reason, len(prefixes), b"".join(prefixes))
        for (bucket, peer, path_id, path, best, reason), prefixes in groups.items()
    ]


def block_routes(rows: Any) -> Iterator[tuple[int, bytes, int, int, int, int, int | None]]:
    """(family code, prefix, peer, path id, path row, best, reason code) for each route of rows read back as
    (family, peer, path_id, path, best, reason, prefixes)."""
    for code, peer, path_id, path, best, reason, blob in rows:
        for prefix in split_prefixes(blob, code >> 8):
            yield code, prefix, peer, path_id, path, best, reason
