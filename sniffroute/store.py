"""The RIB on disk: SQLite in WAL mode, so `sniffroute rib` in another process reads what a replay (or the live
controller) wrote while it writes.

Layout: one row per distinct attribute set (`attrs`: the wire bytes from which sniffroute.rib_store gives the
decoded set back exactly, for `rib` and for a restore), one per UPDATE announcement (`paths`: peer, attribute set,
next hop, time), and one per block of routes that share all but their prefix (`route_blocks`, sniffroute.
route_blocks). A full table has few attribute sets, paths and blocks: a route costs a few bytes, and writing a
full table costs a fraction of a second, where a row per route cost more than the replay itself.

Stores written before blocks (schema 2 and 3, a row per route in `routes`) are still read; the next save
rewrites them in this layout.

A writer that saves the same RIB again and again (the live controller) writes only what changed since its last
save (sniffroute.saved_rib). Whatever another connection commits in between (a replay into the same store, any
version of sniffroute, a VACUUM) changes SQLite's data_version, and the next save is whole again.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from ipaddress import IPv4Address
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from parsers.bgp.attributes import PathAttributes
from parsers.bgp.nlri import covering_prefixes, prefix_from_text
from parsers.errors import InputError
from sniffroute.rib import Peer, Rib
from sniffroute.rib_store import LoadedRib, StoredRibError, attributes_from_wire, load_rib
from sniffroute.route_blocks import block_routes, bucket_of, family_code, split_prefixes
from sniffroute.route_json import attributes_json, bgp_route_json, ospf_route_json, route_order
from sniffroute.saved_rib import SavedRib

if TYPE_CHECKING:  # the OSPF codec loads only when LSAs are written or read: `rib` on BGP starts faster
    from parsers.ospf.lsa import Lsa
    from sniffroute.ospf.lsdb import Lsdb

SCHEMA_VERSION = 4  # 2: OSPF routes and LSAs; 3: attribute sets also as wire bytes; 4: routes in blocks
LEGACY_TABLES = ("attrs", "paths", "routes")  # schema 2 and 3: dropped and made again at the next save
CACHE_KIB = 65536  # a full table is rewritten in one transaction: a small page cache spills it to disk midway
LOOKUP_IDS_MAX = 500  # ids per `IN (...)` query (under SQLite's oldest limit of 999 parameters)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS peers (
    id INTEGER PRIMARY KEY, address TEXT NOT NULL, local_address TEXT NOT NULL, asn INTEGER, local_asn INTEGER,
    router_id TEXT, state TEXT NOT NULL, possibly_stale INTEGER NOT NULL, generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS attrs (
    id INTEGER PRIMARY KEY, wire BLOB NOT NULL, wire_as4 INTEGER NOT NULL, wire_errors TEXT);
CREATE TABLE IF NOT EXISTS paths (
    id INTEGER PRIMARY KEY, peer INTEGER NOT NULL, attrs INTEGER NOT NULL, next_hop TEXT, next_hop_ll TEXT,
    since REAL NOT NULL, generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS route_blocks (
    family INTEGER NOT NULL, bucket INTEGER NOT NULL, peer INTEGER NOT NULL, path_id INTEGER NOT NULL,
    path INTEGER NOT NULL, best INTEGER NOT NULL, reason INTEGER, count INTEGER NOT NULL, prefixes BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS route_blocks_by_bucket ON route_blocks (family, bucket);
CREATE TABLE IF NOT EXISTS documents (name TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ospf_routes (
    family INTEGER NOT NULL, prefix BLOB NOT NULL, best INTEGER NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (family, prefix)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lsas (
    version INTEGER NOT NULL, area TEXT, link TEXT, type INTEGER NOT NULL, ls_id TEXT NOT NULL,
    adv_router TEXT NOT NULL, age INTEGER NOT NULL, installed REAL NOT NULL, raw BLOB NOT NULL);
"""


def default_db_path() -> FsPath:
    """$SNIFFROUTE_DB, else $XDG_STATE_HOME/sniffroute/rib.sqlite (~/.local/state/sniffroute/rib.sqlite)."""
    explicit = os.environ.get("SNIFFROUTE_DB")
    if explicit:
        return FsPath(explicit)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return FsPath(state) / "sniffroute" / "rib.sqlite"


class StoreError(InputError):
    """The store is missing, unreadable or of another schema."""


def ospf_selected(rib: Rib) -> set[tuple[tuple[int, int], bytes]]:
    """Prefixes whose Loc-RIB route is OSPF's."""
    return {
        (family, prefix)
        for family, table in rib.ospf.items()
        for prefix in table
        if rib.selected_protocol(family, prefix) == "ospf"
    }


def ospf_route_rows(rib: Rib, ospf_wins: set[tuple[tuple[int, int], bytes]]) -> list[tuple[int, bytes, int, str]]:
    rows = []
    for family, table in rib.ospf.items():
        for prefix, route in table.items():
            best = (family, prefix) in ospf_wins
            rows.append((family_code(family), prefix, int(best), json.dumps(ospf_route_json(route, best))))
    return rows


def _peer_row(p: Peer) -> tuple[Any, ...]:
    return (
        p.id, p.address, p.local_address, p.asn, p.local_asn, p.router_id, p.state.value, int(p.possibly_stale),
        p.generation,
    )  # fmt: skip


def lsa_rows(lsdb: Lsdb, now: float) -> list[tuple[Any, ...]]:
    from parsers.ospf.lsa_codec import encode_lsa

    return [
        (
            entry.scope.version,
            str(entry.scope.area) if entry.scope.area is not None else None,
            entry.scope.link,
            entry.lsa.header.type,
            str(entry.lsa.header.ls_id),
            str(entry.lsa.header.adv_router),
            entry.age(now),
            entry.installed,
            encode_lsa(entry.lsa),
        )
        for entry in lsdb.entries()
    ]


class Store:
    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = FsPath(path)
        if not create and not self.path.exists():
            raise StoreError(f"{self.path}: no RIB here yet (run `sniffroute replay CAPTURE` first, or pass --db)")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._saved: SavedRib | None = None  # what this connection last wrote of a RIB (see `save`)
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            self.db.executescript(_SCHEMA)
            self.legacy = self._stored_legacy()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a sniffroute store ({exc})") from exc

    def _stored_legacy(self) -> bool:
        """A store of schema 2 or 3 holds a row per route: read as it is, rewritten at the next save."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        return row is not None and str(row[0]).isdigit() and int(row[0]) < SCHEMA_VERSION

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One state of the store for every query inside. Otherwise a save by another process (the live
        controller saves every few seconds) can land between two queries, and the second then misses rows
        the first named (a block's path)."""
        db = self.db
        if db.in_transaction:
            yield
            return
        db.execute("BEGIN")  # deferred: the snapshot is taken at the first read, and kept until the end
        try:
            self.legacy = self._stored_legacy()
            yield
        finally:
            db.rollback()  # nothing was written: this only lets the snapshot go

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------------------
    def save(
        self,
        rib: Rib,
        documents: dict[str, Any] | None = None,
        lsdb: Lsdb | None = None,
        now: float = 0.0,
        *,
        attribute_blocks: Callable[[PathAttributes], tuple[bytes, bool] | None] | None = None,
        changed: Mapping[tuple[int, int], set[bytes]] | None = None,
    ) -> int:
        """Replace the stored RIB with `rib` (best flags as of its last commit: a BGP path is best only when the
        Loc-RIB uses BGP for its prefix) and the LSDB's LSAs with their age at `now`; returns routes written.

        `attribute_blocks` gives the block an attribute set was decoded from, where known
        (parsers.bgp.update.AttributeCache.block_of): its wire form is then stored without encoding it again.
        `changed` (Rib.take_changed_prefixes) are the prefixes whose routes changed since this store's previous
        save of the same `rib`: only their routes are written again (sniffroute.saved_rib). The whole RIB is written
        when there is no such save, when another connection has written the store since, when `changed` is None
        (after new OSPF routes or a restore), or when changes have split the blocks into twice as many as a whole
        save makes."""
        db = self.db
        try:
            with db:
                db.execute("BEGIN IMMEDIATE")  # the write lock first: no other save lands between reads and writes
                if self.legacy:  # its tables have other columns: made again in this layout, in this transaction
                    for table in LEGACY_TABLES:
                        db.execute(f"DROP TABLE IF EXISTS {table}")
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        db.execute(statement)
                # Changes only when another connection commits (this one's own commits leave it as it is).
                version = db.execute("PRAGMA data_version").fetchone()[0]
                saved = self._saved
                if (
                    changed is None
                    or saved is None
                    or saved.rib is not rib
                    or saved.fragmented
                    or saved.data_version != version
                ):
                    saved = self._saved = SavedRib(rib, version)
                    for table in ("attrs", "paths", "route_blocks"):
                        db.execute(f"DELETE FROM {table}")
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                for table in ("peers", "documents", "ospf_routes", "lsas"):
                    db.execute(f"DELETE FROM {table}")
                db.executemany("INSERT INTO peers VALUES (?,?,?,?,?,?,?,?,?)", map(_peer_row, rib.peers.values()))
                ospf_wins = ospf_selected(rib)  # prefixes whose Loc-RIB route is OSPF's: decided once for both
                rows = saved.rows(changed, ospf_wins, attribute_blocks)
                db.executemany("DELETE FROM route_blocks WHERE rowid = ?", [(row,) for row in rows.gone_blocks])
                db.executemany("DELETE FROM paths WHERE id = ?", [(row,) for row in rows.gone_paths])
                db.executemany("DELETE FROM attrs WHERE id = ?", [(row,) for row in rows.gone_attrs])
                if rows.whole:  # into the table emptied above: SQLite numbers the rows 1, 2, ...
                    db.executemany("INSERT INTO route_blocks VALUES (?,?,?,?,?,?,?,?,?)", rows.whole)
                    if db.execute("SELECT max(rowid) FROM route_blocks").fetchone()[0] != len(rows.whole):
                        self._saved = None  # numbered otherwise: the next save is whole too
                db.executemany(
                    "INSERT INTO route_blocks (rowid, family, bucket, peer, path_id, path, best, reason, count,"
                    " prefixes) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    rows.new_blocks,
                )
                db.executemany("INSERT INTO attrs VALUES (?,?,?,?)", rows.new_attrs)
                db.executemany("INSERT INTO paths VALUES (?,?,?,?,?,?,?)", rows.new_paths)
                db.executemany("INSERT INTO ospf_routes VALUES (?,?,?,?)", ospf_route_rows(rib, ospf_wins))
                if lsdb is not None:
                    db.executemany("INSERT INTO lsas VALUES (?,?,?,?,?,?,?,?,?)", lsa_rows(lsdb, now))
                for name, value in (documents or {}).items():
                    db.execute("INSERT INTO documents VALUES (?,?)", (name, json.dumps(value)))
        except BaseException:
            self._saved = None  # rolled back: what it recorded was not written; the next save writes it all
            raise
        self.legacy = False
        return rows.routes_written

    # -- reading ---------------------------------------------------------------------------------------------
    def document(self, name: str) -> Any:
        row = self.db.execute("SELECT json FROM documents WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def load_rib(self) -> LoadedRib:
        """The BGP RIB exactly as saved: peers and every path with its attributes (sniffroute.rib_store)."""
        with self._snapshot():
            if self.legacy:
                return LoadedRib(problem="the store was written by an older sniffroute: its RIB cannot be restored")
            return load_rib(self.db)

    def peers(self) -> list[dict[str, Any]]:
        cols = [
            "id",
            "address",
            "local_address",
            "asn",
            "local_asn",
            "router_id",
            "state",
            "possibly_stale",
            "generation",
        ]
        return [dict(zip(cols, row, strict=True)) for row in self.db.execute("SELECT * FROM peers ORDER BY id")]

    def routes(
        self,
        *,
        prefix: str | None = None,
        address: str | None = None,
        peer: str | None = None,
        all_paths: bool = False,
        protocol: str | None = None,
    ) -> list[dict[str, Any]]:
        """Routes as `rib --json` shows them: the Loc-RIB, or every path with `all_paths`; filtered by prefix,
        longest match for an address (over every protocol), peer address, or protocol ("bgp", "ospf")."""
        with self._snapshot():
            return self._routes(prefix, address, peer, all_paths, protocol)

    def _routes(
        self, prefix: str | None, address: str | None, peer: str | None, all_paths: bool, protocol: str | None
    ) -> list[dict[str, Any]]:
        match = None
        if prefix is not None:
            afi, key = prefix_from_text(prefix)
            match = [(family_code((afi, 1)), key), (family_code((afi, 2)), key)]
        elif address is not None:
            found = self._longest_match(address)
            if found is None:
                return []
            match = [found]
        out = []
        if protocol in (None, "bgp"):
            out += self._bgp_routes(match, peer, all_paths)
        if protocol in (None, "ospf"):
            out += self._ospf_routes(match, peer, all_paths)
        out.sort(key=route_order)
        return out

    def _ospf_routes(
        self, match: list[tuple[int, bytes]] | None, peer: str | None, all_paths: bool
    ) -> list[dict[str, Any]]:
        sql = "SELECT json FROM ospf_routes"
        where, args = [], []
        if match is not None:
            where.append("(" + " OR ".join("(family = ? AND prefix = ?)" for _ in match) + ")")
            args += [value for pair in match for value in pair]
        if not all_paths:
            where.append("best = 1")
        if where:
            sql += " WHERE " + " AND ".join(where)
        routes = [json.loads(row[0]) for row in self.db.execute(sql, args)]
        return [r for r in routes if peer is None or r["peer"] == peer]

    def _bgp_routes(
        self, match: list[tuple[int, bytes]] | None, peer: str | None, all_paths: bool
    ) -> list[dict[str, Any]]:
        if self.legacy:
            return self._legacy_bgp_routes(match, peer, all_paths)
        where = []
        args: list[Any] = []
        if match is not None:
            where.append("(" + " OR ".join("(family = ? AND bucket = ?)" for _ in match) + ")")
            args += [value for code, key in match for value in (code, bucket_of(key))]
        if peer is not None:
            where.append("peer IN (SELECT id FROM peers WHERE address = ?)")
            args.append(peer)
        if not all_paths:
            where.append("best = 1")
        sql = "SELECT family, peer, path_id, path, best, reason, prefixes FROM route_blocks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        wanted = set(match) if match is not None else None
        try:
            routes = [r for r in block_routes(self.db.execute(sql, args)) if wanted is None or r[:2] in wanted]
            paths = self._paths({route[4] for route in routes})
            attrs = self._attributes_json({path[4] for path in paths.values()})
            peers = {row["id"]: row for row in self.peers()}
            out = []
            for code, key, peer_id, path_id, path_row, best, reason in routes:
                next_hop, next_hop_ll, since, generation, attrs_id = paths[path_row]
                peer_row = peers[peer_id]
                stale = peer_row["state"] == "stale" or generation < peer_row["generation"]
                route = (code, key, path_id, best, reason, peer_row["address"], peer_row["asn"], stale,
                         peer_row["possibly_stale"], next_hop, next_hop_ll, since)  # fmt: skip
                out.append(bgp_route_json(*route, attrs[attrs_id]))
        except (sqlite3.Error, ValueError, TypeError, KeyError, StoredRibError) as exc:
            raise StoreError(f"{self.path}: the stored RIB is damaged ({exc})") from exc
        return out

    def _paths(self, ids: set[int]) -> dict[int, tuple[Any, ...]]:
        """(next hop, link-local next hop, since, generation, attribute set) of the paths with these row ids."""
        sql = "SELECT id, next_hop, next_hop_ll, since, generation, attrs FROM paths"
        return {row[0]: row[1:] for row in self._rows_with_ids(sql, ids)}

    def _attributes_json(self, ids: set[int]) -> dict[int, dict[str, Any]]:
        """What `rib` shows of the attribute sets with these ids, decoded from their stored wire form."""
        sql = "SELECT id, wire, wire_as4, wire_errors FROM attrs"
        return {
            row[0]: attributes_json(attributes_from_wire(row[1], row[2], row[3]))
            for row in self._rows_with_ids(sql, ids)
        }

    def _rows_with_ids(self, sql: str, ids: set[int]) -> list[tuple[Any, ...]]:
        """The rows of `sql` (a SELECT of a table whose first column is `id`) with these ids: a query per few
        hundred ids for a lookup, the whole table when most of it is asked for."""
        if len(ids) > LOOKUP_IDS_MAX:
            return [row for row in self.db.execute(sql) if row[0] in ids]
        listed = sorted(ids)
        rows = []
        for start in range(0, len(listed), LOOKUP_IDS_MAX):
            chunk = listed[start : start + LOOKUP_IDS_MAX]
            rows += self.db.execute(f"{sql} WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
        return rows

    def _legacy_bgp_routes(
        self, match: list[tuple[int, bytes]] | None, peer: str | None, all_paths: bool
    ) -> list[dict[str, Any]]:
        """Routes of a schema 2 or 3 store: a row per route, each attribute set also as JSON."""
        where = []
        args: list[Any] = []
        if match is not None:
            where.append("(" + " OR ".join("(r.family = ? AND r.prefix = ?)" for _ in match) + ")")
            args += [value for pair in match for value in pair]
        if peer is not None:
            where.append("p.address = ?")
            args.append(peer)
        if not all_paths:
            where.append("r.best = 1")
        sql = (
            "SELECT r.family, r.prefix, r.path_id, r.best, r.reason, p.address, p.asn, p.state, p.possibly_stale,"
            " pa.next_hop, pa.next_hop_ll, pa.since, pa.generation, p.generation, a.json"
            " FROM routes r JOIN peers p ON p.id = r.peer JOIN paths pa ON pa.id = r.path"
            " JOIN attrs a ON a.id = pa.attrs"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        attrs_cache: dict[str, dict[str, Any]] = {}  # one decoded set per stored text, shared by its routes
        out = []
        for row in self.db.execute(sql, args):
            (code, key, path_id, best, reason, peer_addr, peer_as, state, possibly_stale, nh, nh_ll, since, gen,
             peer_gen, attrs_text) = row  # fmt: skip
            attrs = attrs_cache.get(attrs_text)
            if attrs is None:
                attrs = attrs_cache[attrs_text] = json.loads(attrs_text)
            stale = state == "stale" or gen < peer_gen
            route = (code, key, path_id, best, reason, peer_addr, peer_as, stale, possibly_stale, nh, nh_ll, since)
            out.append(bgp_route_json(*route, attrs))
        return out

    def _longest_match(self, address: str) -> tuple[int, bytes] | None:
        afi, candidates = covering_prefixes(address)
        families = [family_code((afi, 1)), family_code((afi, 2))]
        wanted = set(candidates)
        marks = ",".join("?" * len(candidates))
        found = self.db.execute(
            f"SELECT family, prefix FROM ospf_routes WHERE family IN (?, ?) AND prefix IN ({marks})",
            [*families, *candidates],
        ).fetchall()
        if self.legacy:
            found += self.db.execute(
                f"SELECT family, prefix FROM routes WHERE family IN (?, ?) AND prefix IN ({marks})",
                [*families, *candidates],
            ).fetchall()
        else:
            buckets = sorted({bucket_of(key) for key in candidates})
            sql = (
                "SELECT family, prefixes FROM route_blocks"
                f" WHERE family IN (?, ?) AND bucket IN ({','.join('?' * len(buckets))})"
            )
            try:
                for code, blob in self.db.execute(sql, [*families, *buckets]):
                    found += [(code, key) for key in split_prefixes(blob, code >> 8) if key in wanted]
            except (sqlite3.Error, ValueError, TypeError) as exc:
                raise StoreError(f"{self.path}: the stored RIB is damaged ({exc})") from exc
        if not found:
            return None
        return max(found, key=lambda r: r[1][0])

    def lsas(self) -> list[tuple[Any, ...]]:
        """Stored LSAs: (version, area or None, link or None, type, LS ID, advertising router, age, installed,
        raw bytes), in LSDB order."""
        return self.db.execute("SELECT * FROM lsas").fetchall()

    def route_count(self) -> int:
        if self.legacy:
            return self.db.execute("SELECT count(*) FROM routes").fetchone()[0]
        return self.db.execute("SELECT coalesce(sum(count), 0) FROM route_blocks").fetchone()[0]


def stored_lsa(row: tuple[Any, ...]) -> tuple[int, IPv4Address | None, Lsa]:
    """(version, area, LSA) from a row of `Store.lsas()`."""
    version, area, _link, _type, _ls_id, _adv, _age, _installed, raw = row
    from parsers.ospf.lsa_codec import decode_lsa

    lsa, _size = decode_lsa(bytes(raw), 0, version)
    return version, IPv4Address(area) if area is not None else None, lsa
