"""`sniffroute run` configuration: a TOML file read with tomllib into frozen records.

Validation errors are `ConfigError`s naming the key (`interfaces[0].addresses[1]`) and the problem; nothing else
escapes. Pure apart from `load_config`, which reads the file.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

DEFAULT_MTU = 1500
MIN_MTU = 68  # RFC 791: every IPv4 host must take 68-byte datagrams
MAX_MTU = 9216  # the largest jumbo frame switches commonly take
IPV6_MIN_MTU = 1280  # RFC 8200 section 5
IFNAMSIZ = 16  # Linux interface names: 15 characters and the terminating NUL
MAX_PORT = 0xFFFFFF00  # OpenFlow 1.3 OFPP_MAX; OpenFlow 1.0 ports stop at 0xff00 (checked by that backend)
MAX_VLAN = 4094  # 802.1Q VIDs 1..4094 (0 and 4095 are reserved)
MAX_ASN = 2**32 - 1
MAX_HOLD_TIME = 0xFFFF
MIN_HOLD_TIME = 3  # RFC 4271 section 4.2: 0 or at least 3 seconds
DEFAULT_HOLD_TIME = 90
DEFAULT_OPENFLOW_PORT = 6653
DEFAULT_PUNT_METER_PPS = 20_000  # what the punt flows may send to the controller (OpenFlow 1.3 meter)
# What the connected subnets' glean flows may send up (a meter of their own: a flood toward unknown hosts must not
# starve the punt flows' BGP and ARP); resolving a host takes one frame.
DEFAULT_GLEAN_METER_PPS = 100
DEFAULT_SAVE_INTERVAL = 1.0  # seconds between writes of the RIB to the store
# Seconds the BGP routes restored from the store at start are held stale for a peer to come back, and then for its
# new session to announce them again: graceful restart's usual restart time (RFC 4724 4.2, 120 s by default in
# FRR, Junos and Cisco IOS).
DEFAULT_RESTORE_HOLD = 120.0
DEFAULT_TUN_DEVICE = "/dev/net/tun"
BACKENDS = ("osken", "pox")
LOG_LEVELS = ("debug", "info", "warning", "error")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]+$")

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
T = TypeVar("T")


class ConfigError(Exception):
    """A configuration problem, located by its key."""

    def __init__(self, key: str, problem: str, source: str = "") -> None:
        self.key = key
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {problem}" if key else f"{where}{problem}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterInterface:
    """A router interface: a switch port (optionally one VLAN on it) carried by its own TAP."""

    name: str  # the TAP's name on the controller host
    port: int  # OpenFlow port number
    vlan: int | None  # 802.1Q VID on that port, None for untagged
    addresses: tuple[Interface, ...]
    mtu: int

    @property
    def vlan_tags(self) -> int:
        return 0 if self.vlan is None else 1


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerConfig:
    """A BGP peer for the session holder."""

    address: Address
    peer_as: int
    local_as: int
    router_id: ipaddress.IPv4Address
    local_address: Address  # configured, or the router address on the peer's subnet
    passive: bool
    hold_time: int
    password: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenFlowConfig:
    listen: str
    port: int
    punt_meter_pps: int  # 0: no meter
    glean_meter_pps: int  # frames toward unresolved hosts the switch may send up; 0: no glean flows


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    router_mac: str  # lower case, colon separated
    interfaces: tuple[RouterInterface, ...]
    peers: tuple[PeerConfig, ...]
    openflow: OpenFlowConfig
    backend: str
    store: Path | None  # None: the default store (`sniffroute rib` finds it)
    save_interval: float
    log_level: str
    tun_device: str = DEFAULT_TUN_DEVICE  # the TUN/TAP clone device (another node of it, char 10:200, works too)
    restore_hold: float = DEFAULT_RESTORE_HOLD
    source: str = ""


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML file; every problem is a ConfigError naming the file and key."""
    import tomllib  # here: every `sniffroute` command imports this module, only `run` reads a file

    source = str(path)
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError("", f"cannot read: {exc.strerror or exc}", source) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"not valid TOML: {exc}", source) from None
    try:
        return parse_config(document, source=source, base=Path(path).resolve().parent)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.problem, source) from None


def parse_config(document: dict[str, Any], *, source: str = "", base: Path | None = None) -> Config:
    """Validate an already-parsed TOML document."""
    known = {
        "router_mac",
        "interfaces",
        "peers",
        "openflow",
        "backend",
        "store",
        "save_interval",
        "log_level",
        "tun_device",
        "restore_hold",
    }
    _no_unknown(document, known, "")
    router_mac = _mac(_get(document, "router_mac", str, ""), "router_mac")
    raw_interfaces = _get(document, "interfaces", list, "")
    if not raw_interfaces:
        raise ConfigError("interfaces", "at least one router interface is needed")
    interfaces = tuple(_interface(item, f"interfaces[{i}]") for i, item in enumerate(raw_interfaces))
    _unique([i.name for i in interfaces], "interfaces", "name")
    _unique([(i.port, i.vlan) for i in interfaces], "interfaces", "port and vlan")
    own = [a for i in interfaces for a in i.addresses]
    peers = tuple(_peer(item, f"peers[{i}]", own) for i, item in enumerate(_get(document, "peers", list, "", [])))
    _unique([str(p.address) for p in peers], "peers", "address")
    openflow = _openflow(_get(document, "openflow", dict, "", {}))
    backend = _get(document, "backend", str, "", "osken")
    if backend not in BACKENDS:
        raise ConfigError("backend", f"{backend!r} is not one of {', '.join(BACKENDS)}")
    store_text = _get(document, "store", str, "", None)
    store = None
    if store_text is not None:
        store = Path(store_text).expanduser()
        if base is not None and not store.is_absolute():
            store = base / store
    save_interval = _number(document, "save_interval", "", DEFAULT_SAVE_INTERVAL)
    if save_interval <= 0:
        raise ConfigError("save_interval", "must be a positive number of seconds")
    log_level = _get(document, "log_level", str, "", "info").lower()
    if log_level not in LOG_LEVELS:
        raise ConfigError("log_level", f"{log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    tun_device = _get(document, "tun_device", str, "", DEFAULT_TUN_DEVICE)
    restore_hold = _number(document, "restore_hold", "", DEFAULT_RESTORE_HOLD)
    if restore_hold <= 0:
        raise ConfigError("restore_hold", "must be a positive number of seconds")
    return Config(
        tun_device=tun_device,
        restore_hold=restore_hold,
        router_mac=router_mac,
        interfaces=interfaces,
        peers=peers,
        openflow=openflow,
        backend=backend,
        store=store,
        save_interval=save_interval,
        log_level=log_level,
        source=source,
    )


def _interface(item: Any, key: str) -> RouterInterface:
    if not isinstance(item, dict):
        raise ConfigError(key, "must be a table")
    _no_unknown(item, {"name", "port", "vlan", "addresses", "mtu"}, key)
    name = _get(item, "name", str, key)
    if not name or len(name) >= IFNAMSIZ or not _IFNAME.match(name):
        raise ConfigError(f"{key}.name", f"{name!r} is not an interface name (1-{IFNAMSIZ - 1} of A-Z a-z 0-9 _ . -)")
    port = _int_in(item, "port", key, 1, MAX_PORT)
    vlan = _int_in(item, "vlan", key, 1, MAX_VLAN, None)
    mtu = _int_in(item, "mtu", key, MIN_MTU, MAX_MTU, DEFAULT_MTU)
    raw_addresses = _get(item, "addresses", list, key)
    if not raw_addresses:
        raise ConfigError(f"{key}.addresses", "at least one address (with its prefix length) is needed")
    addresses = []
    for i, text in enumerate(raw_addresses):
        where = f"{key}.addresses[{i}]"
        if not isinstance(text, str) or "/" not in text:
            raise ConfigError(where, f"{text!r} is not an address with a prefix length, like 192.0.2.1/24")
        try:
            address = ipaddress.ip_interface(text)
        except ValueError as exc:
            raise ConfigError(where, str(exc)) from None
        if address.network.prefixlen == address.max_prefixlen or address.ip == address.network.network_address:
            raise ConfigError(where, f"{text} leaves no room for a neighbour on the link")
        if address.version == 6 and mtu < IPV6_MIN_MTU:
            raise ConfigError(f"{key}.mtu", f"IPv6 needs an MTU of at least {IPV6_MIN_MTU}")
        addresses.append(address)
    _unique([str(a.ip) for a in addresses], f"{key}.addresses", "address")
    return RouterInterface(name=name, port=port, vlan=vlan, addresses=tuple(addresses), mtu=mtu)


def _peer(item: Any, key: str, own: list[Interface]) -> PeerConfig:
    if not isinstance(item, dict):
        raise ConfigError(key, "must be a table")
    known = {"address", "peer_as", "local_as", "router_id", "local_address", "passive", "hold_time", "password"}
    _no_unknown(item, known, key)
    address = _ip(_get(item, "address", str, key), f"{key}.address")
    local_text = _get(item, "local_address", str, key, None)
    if local_text is not None:
        local = _ip(local_text, f"{key}.local_address")
        if local not in {a.ip for a in own}:
            raise ConfigError(f"{key}.local_address", f"{local} is not an address of a router interface")
        if local.version != address.version:
            raise ConfigError(f"{key}.local_address", f"{local} and the peer {address} are of different families")
    else:
        on_link = [a.ip for a in own if address in a.network]
        if not on_link:
            raise ConfigError(f"{key}.address", f"{address} is on no router interface's subnet: set local_address")
        local = on_link[0]
    router_id = _ip(_get(item, "router_id", str, key), f"{key}.router_id")
    if router_id.version != 4:
        raise ConfigError(f"{key}.router_id", "a BGP identifier is an IPv4 address")
    hold_time = _int_in(item, "hold_time", key, 0, MAX_HOLD_TIME, DEFAULT_HOLD_TIME)
    if 0 < hold_time < MIN_HOLD_TIME:
        raise ConfigError(f"{key}.hold_time", f"must be 0 or at least {MIN_HOLD_TIME} seconds (RFC 4271 4.2)")
    return PeerConfig(
        address=address,
        peer_as=_int_in(item, "peer_as", key, 1, MAX_ASN),
        local_as=_int_in(item, "local_as", key, 1, MAX_ASN),
        router_id=router_id,  # type: ignore[arg-type]
        local_address=local,
        passive=_get(item, "passive", bool, key, False),
        hold_time=hold_time,
        password=_get(item, "password", str, key, None),
    )


def _openflow(item: dict[str, Any]) -> OpenFlowConfig:
    _no_unknown(item, {"listen", "port", "punt_meter_pps", "glean_meter_pps"}, "openflow")
    listen = _get(item, "listen", str, "openflow", "127.0.0.1")
    _ip(listen, "openflow.listen")
    return OpenFlowConfig(
        listen=listen,
        port=_int_in(item, "port", "openflow", 1, 0xFFFF, DEFAULT_OPENFLOW_PORT),
        punt_meter_pps=_int_in(item, "punt_meter_pps", "openflow", 0, 2**32 - 1, DEFAULT_PUNT_METER_PPS),
        glean_meter_pps=_int_in(item, "glean_meter_pps", "openflow", 0, 2**32 - 1, DEFAULT_GLEAN_METER_PPS),
    )


_MISSING = object()


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _get(table: dict[str, Any], name: str, kind: type[T], parent: str, default: Any = _MISSING) -> T:
    value = table.get(name, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise ConfigError(_join(parent, name), "missing")
        return default  # type: ignore[no-any-return]
    # TOML booleans are not integers here, whatever Python's bool says.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(_join(parent, name), f"must be {_KIND_NAMES.get(kind, kind.__name__)}, not {value!r}")
    return value


_KIND_NAMES: dict[type, str] = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}
_KIND_NAMES[dict] = "a table"


def _int_in(table: dict[str, Any], name: str, parent: str, low: int, high: int, default: Any = _MISSING) -> Any:
    value = _get(table, name, int, parent, default)
    if value is not None and not low <= value <= high:
        raise ConfigError(_join(parent, name), f"{value} is out of range {low}..{high}")
    return value


def _number(table: dict[str, Any], name: str, parent: str, default: float) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(_join(parent, name), f"must be a number, not {value!r}")
    return float(value)


def _mac(text: str, key: str) -> str:
    mac = text.lower().replace("-", ":")
    if not _MAC.match(mac):
        raise ConfigError(key, f"{text!r} is not a MAC address like 02:00:00:00:00:01")
    first = int(mac[:2], 16)
    if first & 1:
        raise ConfigError(key, f"{text} is a multicast address; a router MAC must be unicast")
    return mac


def _ip(text: str, key: str) -> Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(key, f"{text!r} is not an IP address") from None


def _no_unknown(table: dict[str, Any], known: set[str], parent: str) -> None:
    for name in table:
        if name not in known:
            raise ConfigError(_join(parent, name), f"unknown key (known: {', '.join(sorted(known))})")


def _unique(values: list[Any], key: str, what: str, render: Callable[[Any], str] = str) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ConfigError(key, f"{what} {render(value)} appears twice")
        seen.add(value)
