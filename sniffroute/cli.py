"""`sniffroute` command line: replay captures into the RIB, and read the RIB and the sessions back."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from parsers.errors import InputError
from sniffroute.cli_live import add_live_commands
from sniffroute.render import LEGEND, holder_lines, ospf_lines, peer_lines, route_lines, summary_lines
from sniffroute.store import Store, default_db_path

# Each command imports the engine it needs when it runs: `rib` and `peers` read the store and load neither the
# sniff pipeline nor OSPF (but for `rib --ospf-root`), and start about a third faster.

PROGRESS_MIN_BYTES = 4 << 20  # a progress bar only where a replay takes long enough to want one


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # Without argv, this is the program itself (the console script, `python -m`): the process ends on return.
    args.process_exits = argv is None
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except InputError as exc:  # a capture, a store or an argument that cannot be used
        print(f"sniffroute: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `sniffroute rib | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sniffroute", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    db_help = f"SQLite store (default: {default_db_path()}; $SNIFFROUTE_DB overrides)"

    replay = sub.add_parser("replay", help="feed captures through the sniff pipeline into the RIB")
    replay.add_argument("captures", nargs="+", metavar="CAPTURE", help="pcap or pcapng file, gzip'ed or not")
    replay.add_argument("--db", type=Path, help=db_help)
    replay.add_argument("--no-store", action="store_true", help="do not write the store (measure the pipeline)")
    replay.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    replay.add_argument(
        "--bgp-port",
        type=int,
        action="append",
        default=[],
        help="also decode BGP on this TCP port (repeatable)",
    )
    replay.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    replay.add_argument(
        "--ospf-root",
        metavar="ROUTER_ID|PREFIX",
        help="OSPF viewpoint for the RIB: a router ID, or a segment prefix (default: the first LAN seen)",
    )
    replay.set_defaults(handler=cmd_replay)

    rib = sub.add_parser("rib", help="show the Loc-RIB (best paths) or every path")
    rib.add_argument("target", nargs="?", metavar="PREFIX|ADDRESS", help="a prefix, or an address (longest match)")
    rib.add_argument("--peer", metavar="ADDR", help="only routes from this peer")
    rib.add_argument("--all", action="store_true", help="every path, not just the best")
    rib.add_argument("--protocol", choices=["bgp", "ospf"], default=None, help="only routes of this protocol")
    rib.add_argument(
        "--ospf-root",
        metavar="ROUTER_ID|PREFIX",
        help="the OSPF table as router ROUTER_ID (or a stub on segment PREFIX) computes it; implies --protocol ospf",
    )
    rib.add_argument("--json", action="store_true", help="a JSON list, one object per route")
    rib.add_argument("--db", type=Path, help=db_help)
    rib.set_defaults(handler=cmd_rib)

    lsdb = sub.add_parser("lsdb", help="the OSPF link state database seen (like `show ip ospf database`)")
    lsdb.add_argument("--area", help="only this area (a.b.c.d or a number)")
    lsdb.add_argument("--type", help="only this LSA type (a number such as 1 or 0x2001, or a name such as router)")
    lsdb.add_argument("--json", action="store_true", help="a JSON list, one object per LSA")
    lsdb.add_argument("--db", type=Path, help=db_help)
    lsdb.set_defaults(handler=cmd_lsdb)

    peers = sub.add_parser("peers", help="the BGP sessions seen and their state")
    peers.add_argument("--json", action="store_true")
    peers.add_argument("--db", type=Path, help=db_help)
    peers.set_defaults(handler=cmd_peers)

    flows = sub.add_parser("flows", help="the route flow plan next to what the switch holds (`sniffroute run`)")
    flows.add_argument("--json", action="store_true", help="one JSON object: plan, switch, differences, counts")
    flows.add_argument("--db", type=Path, help=db_help)
    flows.set_defaults(handler=cmd_flows)
    add_live_commands(sub)
    return parser


def cmd_replay(args: argparse.Namespace) -> int:
    # Nothing a replay builds is garbage until it ends, and it makes no reference cycles to collect (measured:
    # a few hundred unreachable objects after replaying every fixture, malformed ones included). The cyclic
    # collector would only walk the growing RIB again and again: 6 % of a full table's replay at a threshold of
    # 100,000 allocations, 6-12 % more at the default 700.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _replay(args)
    finally:
        if collecting and not getattr(args, "process_exits", False):
            gc.enable()


def _replay(args: argparse.Namespace) -> int:
    from parsers.capture import open_capture
    from sniffroute.ospf.view import OspfView, Viewpoint
    from sniffroute.ospf_cli import segments_json
    from sniffroute.pipeline import Pipeline
    from sniffroute.rib import Rib
    from sniffroute.summary import replay_summary

    started = time.perf_counter()
    # A replay only stores the outcome: no per-change bookkeeping for a FIB.
    pipeline = Pipeline(
        Rib(track_changes=False),
        bgp_ports=frozenset({179, *args.bgp_port}),
        ospf=OspfView(Viewpoint.parse(args.ospf_root)),
    )
    captures: list[dict[str, Any]] = []
    last_time = 0.0
    for name in args.captures:
        with open_capture(name) as capture:
            record: dict[str, Any] = {"file": str(name), "frames": 0, "truncated": None, "link_types": []}
            captures.append(record)
            feed = pipeline.feed_frame
            for frame in _with_progress(capture, name, args.no_progress or args.json):
                feed(frame.linktype, frame.data, frame.timestamp, frame.wire_len)
                last_time = frame.timestamp
            record["frames"] = capture.frames_read
            record["truncated"] = capture.truncated
            record["link_types"] = sorted(capture.link_types)
    pipeline.finish(last_time)
    pipeline.commit()
    summary = replay_summary(pipeline, captures, time.perf_counter() - started)
    if not args.no_store:
        with Store(args.db or default_db_path()) as store:
            documents = {"sessions": summary["sessions"], "summary": summary, "ospf_segments": segments_json(pipeline)}
            blocks = pipeline.sessions.cache.block_of  # the wire form of every attribute set, as decoded
            lsdb = pipeline.ospf.used_lsdb  # None: no OSPF seen, nothing to store
            store.save(pipeline.rib, documents, lsdb, last_time, attribute_blocks=blocks)
        summary["seconds"] = round(time.perf_counter() - started, 3)
        summary["store"] = str(args.db or default_db_path())
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print("\n".join(summary_lines(summary)))
        if "store" in summary:
            print(f"RIB written to {summary['store']}: `sniffroute rib` shows it")
    if getattr(args, "process_exits", False):
        # What the replay built (the RIB is a reference cycle) is garbage now, and the process is about to end:
        # the collector would walk and free millions of objects at exit for nothing, a quarter of a second and
        # more on a full table. Frozen, they go with the process.
        gc.freeze()
    return 0


def _with_progress(capture: Any, name: str, quiet: bool) -> Any:
    size = os.path.getsize(name)
    if quiet or size < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield from capture
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task(os.path.basename(name), total=size)
        for count, frame in enumerate(capture):
            if not count & 0x3FF:
                progress.update(task, completed=capture.position)
            yield frame


def cmd_lsdb(args: argparse.Namespace) -> int:
    from sniffroute.ospf_cli import cmd_lsdb as lsdb

    return lsdb(args)


def _open_store(args: argparse.Namespace) -> Store:
    return Store(args.db or default_db_path(), create=False)


def cmd_rib(args: argparse.Namespace) -> int:
    prefix = address = None
    if args.target:
        if "/" in args.target:
            prefix = args.target
        else:
            address = args.target
        try:
            import ipaddress

            ipaddress.ip_network(args.target, strict=False)
        except ValueError:
            print(f"sniffroute: {args.target!r} is neither a prefix nor an address", file=sys.stderr)
            return 2
    with _open_store(args) as store:
        if args.ospf_root:
            from sniffroute.ospf.view import Viewpoint
            from sniffroute.ospf_cli import ospf_table

            routes = ospf_table(store, Viewpoint.parse(args.ospf_root), prefix, address, args.peer)
        else:
            routes = store.routes(
                prefix=prefix, address=address, peer=args.peer, all_paths=args.all, protocol=args.protocol
            )
    fib = _fib_states(args)
    if fib:
        for route in routes:
            state = fib.get(route["prefix"]) if route["best"] else None
            route["fib"], route["fib_detail"] = state if state else (None, None)
    if args.json:
        print(json.dumps(routes, indent=1))
        return 0
    if not routes:
        print("no route" + (f" for {args.target}" if args.target else ""))
        return 0 if not args.target else 1
    families: dict[str, list[dict[str, Any]]] = {}
    for route in routes:
        families.setdefault(route["family"], []).append(route)
    for family, rows in families.items():
        best = sum(1 for r in rows if r["best"])
        print(f"Table {family}: {best} best, {len(rows)} shown")
        bgp = [r for r in rows if r["protocol"] == "bgp"]
        ospf = [r for r in rows if r["protocol"] == "ospf"]
        if fib:
            bgp, ospf = _fib_marked(bgp), _fib_marked(ospf)
        lines = route_lines(bgp, show_reason=args.all) + ([""] if bgp and ospf else []) + ospf_lines(ospf)
        print("\n".join(lines))
        print()
    print(LEGEND)
    if fib:
        print(FIB_LEGEND)
    return 0


FIB_MARKS = {"installed": "+", "pending": "~", "failed": "!", "unsupported": "-"}
FIB_LEGEND = "Switch: + installed, ~ pending (next hop unresolved or not yet confirmed), ! failed, - unsupported"


def _fib_states(args: argparse.Namespace) -> dict[str, tuple[str, str]]:
    """prefix -> (state, detail) from the live controller's "fib" document; empty without one."""
    with _open_store(args) as store:
        document = store.document("fib")
    if not isinstance(document, dict):
        return {}
    return {row["prefix"]: (row["state"], row["detail"]) for row in document.get("status") or []}


def _fib_marked(routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for the text table with the switch state marked before the prefix."""
    marked = []
    for route in routes:
        mark = FIB_MARKS.get(route.get("fib") or "", " ")
        marked.append(route | {"prefix": f"{mark}{route['prefix']}"})
    return marked


def cmd_flows(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        document = store.document("fib")
    if not isinstance(document, dict):
        print("sniffroute: no flow plan in this store (is `sniffroute run` using it?)", file=sys.stderr)
        return 1
    plan = document.get("plan") or []
    groups = document.get("plan_groups") or []
    held = document.get("held")
    held_groups = document.get("held_groups") or []
    switch = document.get("switch") or {}
    rows = flow_rows(plan + groups, None if held is None else held + held_groups)
    differences = [row for row in rows if row[0] != "="]
    if args.json:
        out = {
            "switch": switch,
            "counts": document.get("counts"),
            "capabilities": document.get("capabilities"),
            "plan": plan + groups,
            "held": None if held is None else held + held_groups,
            "differences": [{"mark": mark, "flow": text} for mark, text in differences],
            "converged": held is not None and not differences,
        }
        print(json.dumps(out, indent=1))
        return 0
    read_at = switch.get("read_at")
    when = time.strftime("%H:%M:%S", time.localtime(read_at)) if read_at else "never"
    state = "connected" if switch.get("connected") else "not connected"
    print(f"switch {state}, flows read at {when} ({document.get('capabilities')})")
    counts = document.get("counts") or {}
    print("routes: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()))
    for mark, text in rows:
        print(f"{mark} {text}")
    if held is None:
        print("the switch's flows have not been read yet")
    elif differences:
        print(f"{len(differences)} differences (+ planned, not in the switch; - in the switch, not planned)")
    else:
        print("converged: the switch holds exactly the plan")
    return 0


def flow_rows(plan: list[str], held: list[str] | None) -> list[tuple[str, str]]:
    """Each flow once, marked: "=" in both, "+" only planned, "-" only in the switch."""
    if held is None:
        return [("+", text) for text in sorted(plan)]
    planned, holding = set(plan), set(held)
    rows = [("=" if text in holding else "+", text) for text in plan]
    rows += [("-", text) for text in held if text not in planned]
    return sorted(rows, key=lambda row: row[1])


def cmd_peers(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        sessions = store.document("sessions") or []
        peers = store.peers()
        holder = store.document("holder")  # written by `sniffroute run` when it holds sessions itself
        tunnel = store.document("tunnel")
    if args.json:
        print(json.dumps({"sessions": sessions, "peers": peers, "holder": holder, "tunnel": tunnel}, indent=1))
        return 0
    lines = holder_lines(holder) if holder else []
    if tunnel:
        lines.append("tunnel: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in tunnel.items() if v))
    lines += peer_lines(sessions) if sessions else ["no BGP session seen"]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
