"""What a writer last stored of its RIB, so that its next save writes only the routes that changed.

The live controller saves its RIB every second or so while routes change. Rewriting a full table each time costs
the pipeline thread a third of a second or more, for a handful of changed prefixes. So a writer that keeps saving
the same RIB keeps this record: every block it stored (sniffroute.route_blocks) under its row id, by bucket, and
the row ids it gave paths and attribute sets. A save then takes the changed prefixes (`Rib.take_changed_prefixes`)
out of the blocks holding them, stores their routes as they are now in new blocks, and deletes the paths and
attribute sets that no block names any more. The store then holds what a save of the whole RIB would.

Each change splits a block: what stays is stored again, the changed prefixes go to new blocks. Blocks get smaller
and more numerous as routes change, up to a row per route. A record that holds more than twice the blocks it
started with (and `FRAGMENTED_SLACK` more) is `fragmented`: the writer then saves the whole RIB again, in a new
record.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from parsers.bgp.attributes import PathAttributes
from sniffroute.rib import Path, Rib
from sniffroute.rib_store import attributes_wire
from sniffroute.route_blocks import BlockRow, block_rows, bucket_of, entry_blocks, family_code, split_prefixes

Family = tuple[int, int]
FRAGMENTED_SLACK = 1024  # blocks a record may gain beyond twice its first count before it is `fragmented`
_BLOB = 8  # the prefixes of a block row
_COUNT = 7
_path_of = itemgetter(4)
_count_of = itemgetter(_COUNT)


@dataclass(slots=True)
class RowChanges:
    """The rows one save writes and deletes. A block row in `new_blocks` leads with its row id; `whole` is the
    first save's every block, whose row ids are 1, 2, ... in order (what SQLite gives rows inserted into an empty
    table without one: binding them costs a tenth of the inserts)."""

    whole: list[BlockRow] = field(default_factory=list)
    new_blocks: list[tuple[Any, ...]] = field(default_factory=list)
    gone_blocks: list[int] = field(default_factory=list)
    new_attrs: list[tuple[Any, ...]] = field(default_factory=list)
    new_paths: list[tuple[Any, ...]] = field(default_factory=list)
    gone_paths: list[int] = field(default_factory=list)
    gone_attrs: list[int] = field(default_factory=list)

    @property
    def routes_written(self) -> int:
        return sum(map(_count_of, self.whole)) + sum(row[1 + _COUNT] for row in self.new_blocks)


class SavedRib:
    """The rows of one RIB as stored by one writer. `data_version` is SQLite's for the writer's connection when it
    saved: while it is unchanged, no other connection has written the store since."""

    def __init__(self, rib: Rib, data_version: int) -> None:
        self.rib = rib
        self.data_version = data_version
        self._blocks: dict[tuple[int, int], dict[int, BlockRow]] = {}  # (family code, bucket) -> row id -> block
        self._unfiled: list[BlockRow] = []  # the first save's blocks (row ids from 1), filed when first needed
        self._next_block = self._next_path = self._next_attr = 1  # row ids, never given twice
        self._path_rows: dict[Path, int] = {}  # Path compares by identity
        self._attr_rows: dict[int, int] = {}  # id of an attribute set -> its row
        # Worked out from the two above when a second save comes (`_file`), kept up to date from then on:
        self._paths: dict[int, tuple[Path, int]] = {}  # path row -> (path, attribute row)
        self._path_refs: Counter[int] = Counter()  # path row -> blocks naming it
        self._attrs: dict[int, PathAttributes] = {}  # attribute row -> the set: held, so its id is not reused
        self._attr_refs: Counter[int] = Counter()  # attribute row -> paths naming it
        self._ospf_wins: frozenset[tuple[Family, bytes]] = frozenset()
        self._written = False
        self._block_count = self._first_count = 0

    @property
    def fragmented(self) -> bool:
        """More than twice the blocks of the first save (and the slack): a whole save would pack them again."""
        return self._block_count > 2 * self._first_count + FRAGMENTED_SLACK

    def rows(
        self,
        changed: Mapping[Family, set[bytes]] | None,
        ospf_wins: Collection[tuple[Family, bytes]],
        attribute_blocks: Callable[[PathAttributes], tuple[bytes, bool] | None] | None = None,
    ) -> RowChanges:
        """The rows that bring the store from this record's last save to the RIB as it is now: every route the
        first time, then the routes of the `changed` prefixes and of those whose protocol (`ospf_wins`,
        sniffroute.store.ospf_selected) flipped since."""
        wins = frozenset(ospf_wins)
        out = RowChanges()
        if not self._written:
            # A replay saves once: what a later save needs is worked out only if one comes (the live engine).
            self._written = True
            self._ospf_wins = wins
            blocks = self._unfiled = block_rows(self.rib, wins, self._row_maker(out, attribute_blocks, first=True))
            out.whole = blocks
            self._next_block += len(blocks)
            self._block_count = self._first_count = len(blocks)
            return out
        if changed is None:
            raise ValueError("a record writes a whole RIB only once: start a new one")
        if wins != self._ospf_wins:
            changed = {family: set(keys) for family, keys in changed.items()}
            for family, prefix in wins ^ self._ospf_wins:
                changed.setdefault(family, set()).add(prefix)
            self._ospf_wins = wins
        if self._unfiled:
            self._file()
        row_of = self._row_maker(out, attribute_blocks, first=False)
        unnamed: set[int] = set()
        for family, keys in changed.items():
            if keys:
                self._rewrite(family, keys, wins, row_of, out, unnamed)
        for path_row in unnamed:
            if not self._path_refs[path_row]:
                del self._path_refs[path_row]
                self._forget_path(path_row, out)
        return out

    def _rewrite(
        self,
        family: Family,
        keys: set[bytes],
        wins: frozenset[tuple[Family, bytes]],
        row_of: Callable[[Path], int],
        out: RowChanges,
        unnamed: set[int],
    ) -> None:
        """Take `keys` out of the blocks that hold them (what else such a block holds is stored again as it
        was), then store their routes as the RIB has them now."""
        code = family_code(family)
        by_bucket: dict[int, list[bytes]] = {}
        for key in keys:
            by_bucket.setdefault(bucket_of(key), []).append(key)
        for bucket, moved in by_bucket.items():
            stored = self._blocks.get((code, bucket))
            if not stored:
                continue
            for rowid, block in list(stored.items()):
                blob = block[_BLOB]
                if not any(key in blob for key in moved):  # in C; a match may be misaligned, the split decides
                    continue
                prefixes = split_prefixes(blob, family[0])
                kept = [prefix for prefix in prefixes if prefix not in keys]
                if len(kept) == len(prefixes):
                    continue
                del stored[rowid]
                self._block_count -= 1
                out.gone_blocks.append(rowid)
                path_row = _path_of(block)
                self._path_refs[path_row] -= 1
                unnamed.add(path_row)
                if kept:
                    self._add((*block[:_COUNT], len(kept), b"".join(kept)), out)
        table = self.rib.tables.get(family, {})
        current = [(key, table[key]) for key in keys if key in table]
        if current:  # none for a family without BGP routes (an OSPF prefix whose protocol flipped)
            for block in entry_blocks(self.rib, family, current, wins, row_of):
                self._add(block, out)

    def _add(self, block: BlockRow, out: RowChanges) -> None:
        rowid = self._next_block
        self._next_block += 1
        key = (block[0], block[1])
        stored = self._blocks.get(key)
        if stored is None:
            stored = self._blocks[key] = {}
        stored[rowid] = block
        self._block_count += 1
        self._path_refs[_path_of(block)] += 1
        out.new_blocks.append((rowid, *block))

    def _file(self) -> None:
        """What the first save left to a second: its blocks by bucket, and the references between rows."""
        for rowid, block in enumerate(self._unfiled, 1):
            self._blocks.setdefault((block[0], block[1]), {})[rowid] = block
        self._path_refs.update(map(_path_of, self._unfiled))
        self._unfiled = []
        attr_rows = self._attr_rows
        for path, path_row in self._path_rows.items():
            attrs_row = attr_rows[id(path.attrs)]
            self._paths[path_row] = (path, attrs_row)
            self._attrs[attrs_row] = path.attrs
        self._attr_refs.update(attrs_row for _path, attrs_row in self._paths.values())

    def _row_maker(
        self,
        out: RowChanges,
        attribute_blocks: Callable[[PathAttributes], tuple[bytes, bool] | None] | None,
        *,
        first: bool,
    ) -> Callable[[Path], int]:
        """`row_of` for `block_rows`: a path's row, made with its attribute set's when new. The first save only
        numbers them (a replay's only save, on a full table: tens of thousands of paths)."""
        path_rows, attr_rows = self._path_rows, self._attr_rows

        def row_of(path: Path) -> int:
            found = path_rows.get(path)
            if found is None:
                attrs = path.attrs
                attrs_row = attr_rows.get(id(attrs))
                if attrs_row is None:
                    attrs_row = attr_rows[id(attrs)] = self._next_attr
                    self._next_attr += 1
                    if not first:
                        self._attrs[attrs_row] = attrs
                    block = attribute_blocks(attrs) if attribute_blocks else None
                    out.new_attrs.append((attrs_row, *attributes_wire(attrs, block)))
                found = path_rows[path] = self._next_path
                self._next_path += 1
                if not first:
                    self._paths[found] = (path, attrs_row)
                    self._attr_refs[attrs_row] += 1
                out.new_paths.append(
                    (found, path.peer, attrs_row, path.next_hop, path.next_hop_link_local, path.since,
                     path.generation)
                )  # fmt: skip
            return found

        return row_of

    def _forget_path(self, path_row: int, out: RowChanges) -> None:
        path, attrs_row = self._paths.pop(path_row)
        del self._path_rows[path]
        out.gone_paths.append(path_row)
        self._attr_refs[attrs_row] -= 1
        if not self._attr_refs[attrs_row]:
            del self._attr_refs[attrs_row]
            del self._attr_rows[id(self._attrs.pop(attrs_row))]
            out.gone_attrs.append(attrs_row)
