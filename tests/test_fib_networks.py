"""`network_from_int` builds networks without the ipaddress constructor: they must be the constructor's, in every
respect the rest of the code (and a user) can see. The oracle is ipaddress itself."""

from __future__ import annotations

import ipaddress
import pickle
import random

import pytest

from sniffroute.fib.model import network_from_int


def visible(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[object, ...]:
    address = network.network_address
    return (
        type(network), network, hash(network), str(network), repr(network), network.prefixlen, network.netmask,
        network.broadcast_address, network.num_addresses, network.is_private, sorted(vars(network)),
        type(address), address, hash(address), repr(address), address.packed, pickle.loads(pickle.dumps(network)),
    )  # fmt: skip


@pytest.mark.parametrize("version", [4, 6])
def test_networks_equal_the_constructors_in_every_visible_respect(version: int) -> None:
    width = 32 if version == 4 else 128
    rng = random.Random(version)
    cases = [(rng.getrandbits(width), rng.randint(0, width)) for _ in range(2000)]
    cases += [(rng.getrandbits(width), length) for length in (0, 1, width - 2, width - 1, width)]
    for value, length in cases:
        made = network_from_int(version, value, length)
        oracle = ipaddress.ip_network((value, length), strict=False)
        assert visible(made) == visible(oracle), (value, length)
        assert made.hosts is not None and list(made.subnets())[:1] == list(oracle.subnets())[:1]
