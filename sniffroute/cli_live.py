"""`sniffroute run` and `sniffroute tap`: the live controller's commands."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path

from sniffroute.config import BACKENDS, DEFAULT_MTU, MAX_MTU, MIN_MTU, Config, ConfigError, load_config
from sniffroute.store import StoreError, default_db_path

POX_BRANCH = "halosaur"
_POX_VERSION_NAME = re.compile(r"""version_name\s*=\s*["']([^"']+)["']""")
EXIT_USAGE = 2
EXIT_FAILURE = 1


def add_live_commands(sub: argparse._SubParsersAction) -> None:
    """Register the live commands on the main parser's subcommands."""
    run = sub.add_parser("run", help="the live controller: router interfaces as TAPs, BGP through the switch")
    run.add_argument("--config", required=True, type=Path, help="TOML configuration (see examples/)")
    run.add_argument("--backend", choices=BACKENDS, help="OpenFlow controller framework (default: the config's)")
    run.add_argument("--pox-dir", type=Path, help=f"POX checkout, branch {POX_BRANCH} (default: $POX_DIR)")
    run.add_argument("--db", type=Path, help="SQLite store (default: the config's `store`, else the default store)")
    run.set_defaults(handler=cmd_run)

    tap = sub.add_parser("tap", help="persistent TAPs, so that `sniffroute run` needs no root")
    tap_sub = tap.add_subparsers(dest="tap_command", required=True)
    create = tap_sub.add_parser("create", help="create a persistent TAP owned by a user (needs CAP_NET_ADMIN)")
    create.add_argument("--name", required=True, help="interface name (the `name` of a router interface)")
    create.add_argument("--user", required=True, help="the user who will run `sniffroute run`")
    create.add_argument("--mtu", type=int, default=None, help=f"MTU (default: the config's, else {DEFAULT_MTU})")
    create.add_argument("--config", type=Path, help="also set the router MAC and the interface's addresses")
    create.set_defaults(handler=cmd_tap_create)
    delete = tap_sub.add_parser("delete", help="delete a TAP")
    delete.add_argument("--name", required=True)
    delete.set_defaults(handler=cmd_tap_delete)


def _fail(message: str, status: int = EXIT_FAILURE) -> int:
    print(f"sniffroute: {message}", file=sys.stderr)
    return status


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    backend = args.backend or config.backend
    store = (args.db or config.store or default_db_path()).resolve()
    if backend == "pox":
        return _exec_pox(args, config, store)
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: every thread's stack to stderr
    return _run_osken(config, store)


def _run_osken(config: Config, store: Path) -> int:
    try:
        from sniffroute.backends import LiveEngine, osken, start_session_holder
    except ImportError as exc:
        return _fail(f"the live controller needs the `live` extra (pip install 'sniffroute[live]'): {exc}")
    from sniffroute.tap import TapError

    engine = LiveEngine(config, store)
    try:
        engine.start()
    except (TapError, StoreError) as exc:
        return _fail(str(exc))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    status = 0
    stop_openflow = None
    stop_holder = None
    try:
        stop_openflow = osken.start(engine)
        stop_holder = start_session_holder(config, engine)
        stop.wait()
    except OSError as exc:  # the OpenFlow port is taken, say
        status = _fail(f"OpenFlow listener on {config.openflow.listen}:{config.openflow.port}: {exc}")
    finally:
        # The holder's NOTIFICATIONs leave through the TAP and the switch: stop it while the switch is attached.
        if stop_holder is not None:
            stop_holder()
            engine.drain()
        if stop_openflow is not None:
            stop_openflow()
        engine.close()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    # os-ken's native threads cannot be stopped (hub.kill is a no-op) and are not daemons: leave without them.
    os._exit(status)


def pox_problem(pox_dir: Path | None) -> str | None:
    """Why `pox_dir` is not a usable POX checkout, or None."""
    if pox_dir is None:
        return "POX not found: pass --pox-dir DIR or set POX_DIR (a noxrepo/pox checkout, branch halosaur)"
    core = pox_dir / "pox" / "core.py"
    if not (pox_dir / "pox.py").is_file() or not core.is_file():
        return f"{pox_dir}: not a POX checkout (no pox.py and pox/core.py)"
    found = _POX_VERSION_NAME.search(core.read_text(errors="replace"))
    branch = found.group(1) if found else "unknown"
    if branch != POX_BRANCH:
        return f"{pox_dir}: POX branch {branch!r}, sniffroute needs {POX_BRANCH!r} (git checkout {POX_BRANCH})"
    return None


def pox_command(pox_dir: Path, config: Config, config_path: Path, store: Path) -> list[str]:
    openflow = config.openflow
    return [
        sys.executable,
        str(pox_dir / "pox.py"),
        "openflow.of_01",
        f"--port={openflow.port}",
        f"--address={openflow.listen}",
        "sniffroute.backends.pox",
        f"--config={config_path.resolve()}",
        f"--db={store}",
    ]


def _exec_pox(args: argparse.Namespace, config: Config, store: Path) -> int:
    env_dir = os.environ.get("POX_DIR")
    pox_dir = args.pox_dir or (Path(env_dir) if env_dir else None)
    problem = pox_problem(pox_dir)
    if problem is not None:
        return _fail(problem)
    assert pox_dir is not None
    command = pox_command(pox_dir, config, args.config, store)
    sys.stdout.flush()
    os.execv(command[0], command)  # POX handles SIGTERM/SIGINT itself; sniffroute.backends.pox cleans up
    return 0  # not reached


def cmd_tap_create(args: argparse.Namespace) -> int:
    from sniffroute.tap import TapError, create_persistent

    mac = None
    addresses = ()
    mtu = args.mtu
    if args.config is not None:
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            return _fail(str(exc), EXIT_USAGE)
        interface = next((i for i in config.interfaces if i.name == args.name), None)
        if interface is None:
            return _fail(f"{args.config}: no router interface named {args.name!r}", EXIT_USAGE)
        mac, addresses = config.router_mac, interface.addresses
        mtu = mtu if mtu is not None else interface.mtu
    mtu = DEFAULT_MTU if mtu is None else mtu
    if not MIN_MTU <= mtu <= MAX_MTU:
        return _fail(f"--mtu {mtu} is out of range {MIN_MTU}..{MAX_MTU}", EXIT_USAGE)
    try:
        uid = create_persistent(args.name, args.user, mtu=mtu, mac=mac, addresses=addresses)
    except TapError as exc:
        return _fail(str(exc))
    print(f"{args.name}: persistent TAP owned by {args.user} (uid {uid}), MTU {mtu}")
    return 0


def cmd_tap_delete(args: argparse.Namespace) -> int:
    from sniffroute.tap import TapError, delete_persistent

    try:
        delete_persistent(args.name)
    except TapError as exc:
        return _fail(str(exc))
    print(f"{args.name}: deleted")
    return 0
