"""sniffroute.config: the example parses, and every mistake is a ConfigError naming its key. Also the checks
`sniffroute run` makes before it starts anything (POX checkout, configuration errors as exit status 2)."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sniffroute.cli import main
from sniffroute.cli_live import pox_command, pox_problem
from sniffroute.config import DEFAULT_MTU, ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).parent.parent / "examples" / "sniffroute.toml"

MINIMAL = """
router_mac = "02:00:5e:10:00:01"
[[interfaces]]
name = "sr1"
port = 1
addresses = ["192.0.2.254/24", "2001:db8:1::fe/64"]
"""


def _document(extra: str = "") -> dict[str, Any]:
    return tomllib.loads(MINIMAL + extra)


def _error(document: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    return caught.value


def test_example_config_parses() -> None:
    config = load_config(EXAMPLE)
    assert config.router_mac == "02:00:5e:10:00:01"
    assert [(i.name, i.port, i.vlan) for i in config.interfaces] == [("sr-port1", 1, None), ("sr-port2-v100", 2, 100)]
    assert config.interfaces[0].addresses == (
        ipaddress.ip_interface("192.0.2.254/24"),
        ipaddress.ip_interface("2001:db8:1::fe/64"),
    )
    assert config.interfaces[1].mtu == DEFAULT_MTU
    first, second = config.peers
    assert (str(first.address), first.peer_as, first.local_as, first.hold_time) == ("192.0.2.1", 64500, 64512, 90)
    # no local_address: the router address on the peer's subnet
    assert str(second.local_address) == "2001:db8:1::fe"
    assert config.openflow.port == 6653 and config.backend == "osken"


def test_minimal_config_takes_defaults() -> None:
    config = parse_config(_document())
    assert config.peers == ()
    assert config.store is None
    assert config.openflow.listen == "127.0.0.1"
    assert config.interfaces[0].vlan is None and config.interfaces[0].vlan_tags == 0


def test_store_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "sr.toml"
    path.parent.mkdir()
    path.write_text(MINIMAL.replace("[[interfaces]]", 'store = "state/rib.sqlite"\n[[interfaces]]'))
    assert load_config(path).store == path.parent / "state" / "rib.sqlite"


def _without(document: dict[str, Any], key: str) -> dict[str, Any]:
    del document[key]
    return document


def _interface_with(**changes: Any) -> dict[str, Any]:
    document = _document()
    document["interfaces"][0].update(changes)
    return document


def _peer(**fields: Any) -> dict[str, Any]:
    peer = {"address": "192.0.2.1", "peer_as": 64500, "local_as": 64512, "router_id": "192.0.2.254"}
    peer.update(fields)
    document = _document()
    document["peers"] = [{k: v for k, v in peer.items() if v is not None}]
    return document


CASES = [
    (_without(_document(), "router_mac"), "router_mac", "missing"),
    (_document() | {"router_mac": "02:00:5e:10:00"}, "router_mac", "not a MAC"),
    (_document() | {"router_mac": "01:00:5e:00:00:05"}, "router_mac", "multicast"),
    (_document() | {"interfaces": []}, "interfaces", "at least one"),
    (_document() | {"routermac": "x"}, "routermac", "unknown key"),
    (_document() | {"backend": "ryu"}, "backend", "not one of"),
    (_document() | {"save_interval": 0}, "save_interval", "positive"),
    (_document() | {"openflow": {"port": 70000}}, "openflow.port", "out of range"),
    (_document() | {"openflow": {"listen": "localhost"}}, "openflow.listen", "not an IP address"),
    (_interface_with(name="a-name-far-too-long"), "interfaces[0].name", "not an interface name"),
    (_interface_with(name="bad name"), "interfaces[0].name", "not an interface name"),
    (_interface_with(port=0), "interfaces[0].port", "out of range"),
    (_interface_with(port="1"), "interfaces[0].port", "must be an integer"),
    (_interface_with(port=True), "interfaces[0].port", "must be an integer"),
    (_interface_with(vlan=4095), "interfaces[0].vlan", "out of range"),
    (_interface_with(mtu=67), "interfaces[0].mtu", "out of range"),
    (_interface_with(mtu=1000), "interfaces[0].mtu", "IPv6 needs"),
    (_interface_with(addresses=[]), "interfaces[0].addresses", "at least one"),
    (_interface_with(addresses=["192.0.2.254"]), "interfaces[0].addresses[0]", "prefix length"),
    (_interface_with(addresses=["192.0.2.300/24"]), "interfaces[0].addresses[0]", "192.0.2.300"),
    (_interface_with(addresses=["192.0.2.254/32"]), "interfaces[0].addresses[0]", "no room"),
    (_interface_with(addresses=["192.0.2.0/24"]), "interfaces[0].addresses[0]", "no room"),
    (_interface_with(addresses=["192.0.2.1/24", "192.0.2.1/25"]), "interfaces[0].addresses", "appears twice"),
    (_interface_with(colour="red"), "interfaces[0].colour", "unknown key"),
    (_peer(address="203.0.113.1"), "peers[0].address", "no router interface's subnet"),
    (_peer(local_address="192.0.2.99"), "peers[0].local_address", "not an address of a router interface"),
    (_peer(local_address="2001:db8:1::fe"), "peers[0].local_address", "different families"),
    (_peer(router_id="2001:db8::1"), "peers[0].router_id", "IPv4"),
    (_peer(hold_time=2), "peers[0].hold_time", "RFC 4271"),
    (_peer(peer_as=0), "peers[0].peer_as", "out of range"),
    (_peer(peer_as=2**32), "peers[0].peer_as", "out of range"),
    (_peer(local_as=None), "peers[0].local_as", "missing"),
    (_peer(passive="yes"), "peers[0].passive", "true or false"),
]


@pytest.mark.parametrize(("document", "key", "problem"), CASES, ids=[f"{c[1]}: {c[2]}" for c in CASES])
def test_mistakes_name_their_key(document: dict[str, Any], key: str, problem: str) -> None:
    error = _error(document)
    assert error.key == key
    assert problem in error.problem


def test_duplicate_interfaces_are_refused() -> None:
    document = _document()
    document["interfaces"].append(dict(document["interfaces"][0], name="sr2"))
    assert "port and vlan (1, None) appears twice" in str(_error(document))
    document["interfaces"][1].update(name="sr1", port=2)
    assert "name sr1 appears twice" in str(_error(document))


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("router_mac = \n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_config(broken)
    with pytest.raises(ConfigError, match=r"absent\.toml: cannot read"):
        load_config(tmp_path / "absent.toml")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(MINIMAL.replace("port = 1", "port = -1"))
    with pytest.raises(ConfigError, match=r"wrong\.toml: interfaces\[0\]\.port: -1 is out of range"):
        load_config(wrong)


def test_run_with_a_bad_config_exits_2_and_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL.replace('"02:00:5e:10:00:01"', '"zz"'))
    assert main(["run", "--config", str(bad)]) == 2
    assert "router_mac" in capsys.readouterr().err


# -- POX checkout checks -------------------------------------------------------------------------------------


def _fake_pox(root: Path, version_name: str) -> Path:
    (root / "pox").mkdir(parents=True)
    (root / "pox.py").write_text("# POX launcher\n")
    (root / "pox" / "core.py").write_text(f'  version = (0,8,0)\n  version_name = "{version_name}"\n')
    return root


def test_pox_must_be_the_halosaur_branch(tmp_path: Path) -> None:
    assert pox_problem(_fake_pox(tmp_path / "good", "halosaur")) is None
    problem = pox_problem(_fake_pox(tmp_path / "old", "gar"))
    assert problem is not None and "'gar'" in problem and "halosaur" in problem
    assert "not a POX checkout" in (pox_problem(tmp_path) or "")
    assert "POX_DIR" in (pox_problem(None) or "")


def test_run_without_pox_says_where_to_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POX_DIR", raising=False)
    config = tmp_path / "sr.toml"
    config.write_text(MINIMAL)
    assert main(["run", "--config", str(config), "--backend", "pox"]) == 1
    assert "halosaur" in capsys.readouterr().err


def test_pox_command_loads_the_component_by_module_name(tmp_path: Path) -> None:
    config_path = tmp_path / "sr.toml"
    config_path.write_text(MINIMAL)
    config = load_config(config_path)
    argv = pox_command(Path("/opt/pox"), config, config_path, tmp_path / "rib.sqlite")
    assert argv[1:] == [
        "/opt/pox/pox.py",
        "openflow.of_01",
        "--port=6653",
        "--address=127.0.0.1",
        "sniffroute.backends.pox",
        f"--config={config_path.resolve()}",
        f"--db={tmp_path / 'rib.sqlite'}",
    ]
