"""Router interfaces as TAP devices on the controller host: open, configure, read and write frames.

A TAP is opened with python-pytun as `IFF_TAP | IFF_NO_PI` (no 4-byte packet-information header) and set up
through pyroute2: router MAC, MTU, addresses, up. Only what differs from the wanted state is changed, so a TAP made
beforehand by `sniffroute tap create` (persistent, owned by a user, already configured) is opened by that user
without any privilege: opening needs only read/write access to /dev/net/tun; changing the device needs
CAP_NET_ADMIN.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import pwd
from collections.abc import Iterable
from dataclasses import dataclass

from sniffroute.config import DEFAULT_TUN_DEVICE as TUN_DEVICE
from sniffroute.config import Interface, RouterInterface
from sniffroute.tunnel import max_frame_size

IFA_F_NODAD = 0x02  # linux/if_addr.h: no duplicate address detection (the router owns its addresses)
IFF_UP = 0x1  # linux/if.h


class TapError(Exception):
    """A TAP could not be opened, created or configured; the message says which and why."""


@dataclass(frozen=True, slots=True)
class LinkState:
    mac: str
    mtu: int
    up: bool
    addresses: frozenset[Interface]
    owner: int | None


class Tap:
    """One open TAP. `read` returns one whole frame (blocking); `write` sends one to the Linux stack."""

    def __init__(self, interface: RouterInterface, tun_device: str = TUN_DEVICE) -> None:
        import pytun

        self.interface = interface
        self.read_size = max_frame_size(interface.mtu, interface.vlan_tags)
        try:
            self._device = pytun.TunTapDevice(
                name=interface.name, flags=pytun.IFF_TAP | pytun.IFF_NO_PI, dev=tun_device
            )
        except pytun.Error as exc:
            raise TapError(_open_problem(interface.name, tun_device, exc)) from None
        self.fd = self._device.fileno()

    def read(self) -> bytes:
        return os.read(self.fd, self.read_size)

    def write(self, frame: bytes) -> None:
        os.write(self.fd, frame)

    def close(self) -> None:
        self._device.close()


def open_tap(interface: RouterInterface, router_mac: str, tun_device: str = TUN_DEVICE) -> Tap:
    """Open the interface's TAP (creating it when it does not exist) and bring it to the configured state."""
    tap = Tap(interface, tun_device)
    try:
        configure(interface.name, mac=router_mac, mtu=interface.mtu, addresses=interface.addresses)
    except TapError:
        tap.close()
        raise
    return tap


def link_state(name: str) -> LinkState | None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return None
        index = found[0]
        link = ipr.get_links(index)[0]
        addresses = frozenset(
            ipaddress.ip_interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}") for a in ipr.get_addr(index=index)
        )
        info = link.get_attr("IFLA_LINKINFO")
        data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
        owner = data.get_attr("IFLA_TUN_OWNER") if data is not None and hasattr(data, "get_attr") else None
        return LinkState(
            mac=link.get_attr("IFLA_ADDRESS"),
            mtu=link.get_attr("IFLA_MTU"),
            up=bool(link["flags"] & IFF_UP),
            addresses=addresses,
            owner=owner,
        )


def configure(name: str, *, mac: str | None, mtu: int, addresses: Iterable[Interface] = ()) -> None:
    """Set MAC, MTU and addresses, then up; touch only what differs (so a prepared TAP needs no privilege)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    wanted = tuple(addresses)
    state = link_state(name)
    if state is None:
        raise TapError(f"{name}: no such interface")
    step = ""
    try:
        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname=name)[0]
            if mac is not None and state.mac != mac:
                step = f"set MAC {mac}"
                ipr.link("set", index=index, address=mac)
            if state.mtu != mtu:
                step = f"set MTU {mtu}"
                ipr.link("set", index=index, mtu=mtu)
            if not state.up:
                step = "bring it up"
                ipr.link("set", index=index, state="up")
            for address in wanted:
                if address in state.addresses:
                    continue
                step = f"add address {address}"
                flags = IFA_F_NODAD if address.version == 6 else 0
                ipr.addr(
                    "add",
                    index=index,
                    address=str(address.ip),
                    prefixlen=address.network.prefixlen,
                    flags=flags,
                )
    except NetlinkError as exc:
        hint = " (needs CAP_NET_ADMIN: run as root once with `sniffroute tap create`)" if exc.code == 1 else ""
        raise TapError(f"{name}: cannot {step}: {os.strerror(exc.code)}{hint}") from None


def create_persistent(
    name: str, user: str, *, mtu: int, mac: str | None = None, addresses: Iterable[Interface] = ()
) -> int:
    """Create a persistent TAP owned by `user` (no packet-info header), configure it; returns the owner's uid."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise TapError(f"{name}: no user named {user!r}") from None
    try:
        with IPRoute() as ipr:
            if ipr.link_lookup(ifname=name):
                raise TapError(f"{name}: an interface of that name exists already (`sniffroute tap delete` it)")
            ipr.link(
                "add",
                ifname=name,
                kind="tuntap",
                mode="tap",
                uid=account.pw_uid,
                gid=account.pw_gid,
                ifr={"no_pi": True},
            )
    except NetlinkError as exc:
        raise TapError(f"{name}: cannot create: {os.strerror(exc.code)}") from None
    configure(name, mac=mac, mtu=mtu, addresses=addresses)
    return account.pw_uid


def delete_persistent(name: str) -> None:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=name)
            if not found:
                raise TapError(f"{name}: no such interface")
            ipr.link("del", index=found[0])
    except NetlinkError as exc:
        raise TapError(f"{name}: cannot delete: {os.strerror(exc.code)}") from None


def _open_problem(name: str, tun_device: str, exc: Exception) -> str:
    detail = str(exc)
    if not os.access(tun_device, os.R_OK | os.W_OK):
        return (
            f"{name}: cannot open {tun_device} ({detail}): it must be readable and writable by this user "
            "(mode 0666 on standard distributions) or the process needs CAP_NET_ADMIN"
        )
    if getattr(exc, "errno", None) == errno.EBUSY or "Device or resource busy" in detail:
        # A persistent TAP takes one queue: another process (an earlier controller still running?) has it open.
        return f"{name}: the TAP is in use by another process (is another sniffroute controller still running?)"
    return (
        f"{name}: cannot attach the TAP ({detail}): create it for this user first "
        f"(`sudo sniffroute tap create --name {name} --user $USER`) or run with CAP_NET_ADMIN"
    )
