"""parsers.bgp.open: OPEN bodies from real captures, hand-written cases, every error path, round trips."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from parsers.bgp.constants import MARKER, AddPathMode, CapabilityCode, MessageType
from parsers.bgp.context import negotiate
from parsers.bgp.open import (
    CAPABILITY_CODECS,
    AddPath,
    BgpRole,
    Bgpsec,
    Capability,
    EnhancedRouteRefresh,
    ExtendedMessage,
    ExtendedNextHop,
    FourOctetAs,
    Fqdn,
    GracefulRestart,
    LongLivedGracefulRestart,
    MultipleLabels,
    Multiprotocol,
    Open,
    OptionalParameter,
    ParameterType,
    Role,
    RouteRefreshCapability,
    capability_name,
    decode_open,
    encode_open,
)
from parsers.errors import Action, DecodeError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bgp"
CAPS = ParameterType.CAPABILITIES

# --- OPEN bodies taken from the fixtures (tshark -T fields -e tcp.payload, header stripped) -----------------

# bgp-add-path.cap frame 1: one capability per optional parameter.
ADD_PATH_OPEN = bytes.fromhex(
    "04"  # version 4
    "fc00"  # My AS 64512
    "00b4"  # hold time 180
    "0a000006"  # BGP Identifier 10.0.0.6
    "24"  # optional parameters length 36
    "0206" "01040001" "0001"  # param 2 len 6: multiprotocol (1) len 4: AFI 1, reserved 0, SAFI 1
    "0202" "8000"  # param 2 len 2: route refresh, Cisco code 128, len 0
    "0202" "0200"  # param 2 len 2: route refresh (2), len 0
    "0202" "4600"  # param 2 len 2: enhanced route refresh (70), len 0
    "0206" "4504" "0001" "01" "03"  # param 2 len 6: ADD-PATH (69) len 4: AFI 1, SAFI 1, send/receive 3
    "0206" "4104" "0000fc00"  # param 2 len 6: 4-octet AS (65) len 4: 64512
)  # fmt: skip

# bgp-4byte-asn.pcap frame 6: several capabilities in one optional parameter, AS_TRANS in My AS.
FOUR_BYTE_ASN_OPEN = bytes.fromhex(
    "04" "5ba0" "00b4" "00000101"  # version 4, My AS 23456 (AS_TRANS), hold 180, identifier 0.0.1.1
    "1a"  # optional parameters length 26
    "0218"  # one Capabilities parameter of 24 bytes:
    "01040001" "0001"  # multiprotocol: IPv4 unicast
    "0200"  # route refresh
    "4002" "c12c"  # graceful restart len 2: flags 0xc (R and N), restart time 0x12c = 300 s
    "4104" "a4c46652"  # 4-octet AS 2764334674
    "4504" "0001" "01" "01"  # ADD-PATH: IPv4 unicast, receive
)  # fmt: skip

# bgp-bgpsec.pcap frame 6: BGPsec, Extended Message and FQDN capabilities.
BGPSEC_OPEN = bytes.fromhex(
    "04" "0002" "00b4" "ac120002" "4e"  # version 4, My AS 2, hold 180, identifier 172.18.0.2, opt len 78
    "0206" "01040001" "0001"  # multiprotocol IPv4 unicast
    "0202" "8000"  # route refresh (Cisco)
    "0202" "0200"  # route refresh
    "0202" "4600"  # enhanced route refresh
    "0206" "4104" "00000002"  # 4-octet AS 2
    "0202" "0600"  # extended message (6), len 0
    "0206" "4504" "0001" "01" "01"  # ADD-PATH IPv4 unicast receive
    "0209" "4907" "05" "6267706431" "00"  # FQDN (73) len 7: hostname len 5 "bgpd1", domain len 0
    "0205" "0703" "08" "0001"  # BGPsec (7) len 3: version 0, direction 1 (send), AFI 1
    "0205" "0703" "00" "0001"  # BGPsec: version 0, direction 0 (receive), AFI 1
    "0205" "0703" "08" "0002"  # BGPsec: send, AFI 2
    "0204" "4002" "8078"  # graceful restart: flags 0x8 (R), restart time 120 s
)  # fmt: skip

# bgp-lu-multiple-labels.pcap frame 6: Multiple Labels capability (RFC 8277).
MULTIPLE_LABELS_OPEN = bytes.fromhex(
    "04" "0064" "00b4" "00000001" "2a"  # version 4, My AS 100, hold 180, identifier 0.0.0.1, opt len 42
    "0228"  # one Capabilities parameter of 40 bytes:
    "4002" "812c"  # graceful restart: flags 0x8 (R), 300 s
    "0804" "0001" "04" "07"  # multiple labels (8) len 4: AFI 1, SAFI 4, count 7
    "0200"  # route refresh
    "01040001" "0001"  # multiprotocol IPv4 unicast
    "01040001" "0004"  # multiprotocol IPv4 labelled unicast
    "4104" "00000064"  # 4-octet AS 100
    "4508" "0001" "01" "01" "0001" "04" "01"  # ADD-PATH: IPv4 unicast receive, IPv4 LU receive
)  # fmt: skip

# bgplu.cap frame 8: labelled unicast with graceful restart and ADD-PATH.
BGPLU_OPEN = bytes.fromhex(
    "04" "0001" "00b4" "0a010101" "24"  # version 4, My AS 1, hold 180, identifier 10.1.1.1, opt len 36
    "0222"  # one Capabilities parameter of 34 bytes:
    "01040001" "0001"  # multiprotocol IPv4 unicast
    "01040001" "0004"  # multiprotocol IPv4 labelled unicast
    "0200"  # route refresh
    "4002" "012c"  # graceful restart: no flags, 300 s
    "4104" "00000001"  # 4-octet AS 1
    "4508" "0001" "01" "01" "0001" "04" "01"  # ADD-PATH: IPv4 unicast receive, IPv4 LU receive
)  # fmt: skip

# swisscom_bgp.pcap frame 4: VPN families, graceful restart per family, extended next hop.
SWISSCOM_OPEN = bytes.fromhex(
    "04" "5ba0" "00b4" "cb00715a" "44"  # version 4, AS_TRANS, hold 180, identifier 203.0.113.90, opt len 68
    "0206" "01040001" "0080"  # multiprotocol IPv4 MPLS VPN (SAFI 128)
    "0206" "01040002" "0080"  # multiprotocol IPv6 MPLS VPN
    "0202" "8000"  # route refresh (Cisco)
    "0202" "0200"  # route refresh
    "0206" "4104" "fbf0005a"  # 4-octet AS 4226809946
    "020c" "400a" "0078" "0001" "80" "00" "0002" "80" "00"  # GR len 10: 120 s; (1, 128, 0), (2, 128, 0)
    "0214" "0512" "000100010002" "000100020002" "000100800002"  # extended next hop (5) len 18: 3 entries
)  # fmt: skip

# 4-byte_AS_numbers_Full_Support.cap frame 2: a private capability (131) that stays raw.
FULL_SUPPORT_OPEN = bytes.fromhex(
    "04" "5ba0" "00b4" "28000001" "1d"  # version 4, AS_TRANS, hold 180, identifier 40.0.0.1, opt len 29
    "0206" "01040001" "0001"  # multiprotocol IPv4 unicast
    "0202" "8000"  # route refresh (Cisco)
    "0202" "0200"  # route refresh
    "0203" "8301" "00"  # capability 131 (Cisco multisession) len 1: 0x00
    "0206" "4104" "00280001"  # 4-octet AS 2621441 (asdot 40.1)
)  # fmt: skip

# pypacker_packets_bgp2.pcap frame 8: no optional parameters at all.
# version 4, My AS 65033, hold 180, identifier 192.168.0.15, optional parameters length 0
BARE_OPEN = bytes.fromhex("04" "fe09" "00b4" "c0a8000f" "00")  # fmt: skip

FIXTURE_OPENS = [
    ADD_PATH_OPEN,
    FOUR_BYTE_ASN_OPEN,
    BGPSEC_OPEN,
    MULTIPLE_LABELS_OPEN,
    BGPLU_OPEN,
    SWISSCOM_OPEN,
    FULL_SUPPORT_OPEN,
    BARE_OPEN,
]

# RFC 9072 extended optional parameters, hand-written.
EXTENDED_OPEN = bytes.fromhex(
    "04" "fde8" "005a" "c0000201"  # version 4, My AS 65000, hold 90, identifier 192.0.2.1
    "ff"  # Non-Ext OP Len 255
    "ff"  # Non-Ext OP Type 255: the extended encoding follows
    "000d"  # Extended Opt. Parm. Length 13
    "02" "000a"  # Capabilities parameter, 2-byte length 10:
    "01040002" "0001"  # multiprotocol IPv6 unicast
    "0600"  # extended message
    "0200"  # route refresh
)  # fmt: skip


def _body(version: int = 4, asn: int = 65001, hold: int = 180, router_id: bytes = b"\n\0\0\1") -> bytes:
    """Fixed fields of a hand-written OPEN (identifier 10.0.0.1 by default), then no parameters."""
    return bytes([version]) + asn.to_bytes(2, "big") + hold.to_bytes(2, "big") + router_id + b"\x00"


def _with_params(params: bytes, **fixed: int) -> bytes:
    return _body(**fixed)[:-1] + bytes([len(params)]) + params


# --- real OPENs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", FIXTURE_OPENS + [EXTENDED_OPEN])
def test_fixture_opens_round_trip_exactly(body):
    msg = decode_open(body)
    assert encode_open(msg) == body
    assert decode_open(encode_open(msg)) == msg
    assert msg.problems == ()


def test_add_path_open_keeps_one_capability_per_parameter():
    msg = decode_open(ADD_PATH_OPEN)
    assert (msg.version, msg.my_as, msg.hold_time, msg.router_id) == (4, 64512, 180, "10.0.0.6")
    assert [len(p.value) for p in msg.parameters] == [1] * 6
    assert [c.code for c in msg.capabilities] == [1, 128, 2, 70, 69, 65]
    assert msg.add_path == {(1, 1): AddPathMode.BOTH}
    assert msg.route_refresh and msg.enhanced_route_refresh
    assert msg.multiprotocol == frozenset({(1, 1)})
    assert msg.asn == msg.four_octet_as == 64512
    assert not msg.extended_message and msg.graceful_restart is None and msg.fqdn is None


def test_four_byte_asn_open_groups_capabilities_in_one_parameter():
    msg = decode_open(FOUR_BYTE_ASN_OPEN)
    assert len(msg.parameters) == 1 and len(msg.parameters[0].value) == 5
    assert msg.my_as == 23456
    assert msg.asn == 2764334674
    assert msg.graceful_restart == GracefulRestart(flags=0xC, restart_time=300)
    assert msg.graceful_restart.restarting and msg.graceful_restart.notification
    assert msg.add_path == {(1, 1): AddPathMode.RECEIVE}
    assert msg.route_refresh and not msg.enhanced_route_refresh


def test_bgpsec_open_reads_extended_message_fqdn_and_bgpsec():
    msg = decode_open(BGPSEC_OPEN)
    assert msg.extended_message
    assert msg.fqdn == "bgpd1"
    bgpsec = [c.value for c in msg.capabilities if c.code == CapabilityCode.BGPSEC]
    assert bgpsec == [Bgpsec(0, True, 1), Bgpsec(0, False, 1), Bgpsec(0, True, 2)]
    assert msg.graceful_restart == GracefulRestart(flags=0x8, restart_time=120)
    assert capability_name(CapabilityCode.BGPSEC) == "bgpsec"


def test_multiple_labels_open():
    msg = decode_open(MULTIPLE_LABELS_OPEN)
    assert Capability(8, MultipleLabels(((1, 4, 7),))) in msg.capabilities
    assert msg.multiprotocol == frozenset({(1, 1), (1, 4)})
    assert msg.add_path == {(1, 1): AddPathMode.RECEIVE, (1, 4): AddPathMode.RECEIVE}


def test_bgplu_open():
    msg = decode_open(BGPLU_OPEN)
    assert msg.router_id == "10.1.1.1"
    assert msg.graceful_restart == GracefulRestart(0, 300)
    assert msg.multiprotocol == frozenset({(1, 1), (1, 4)})


def test_swisscom_open_graceful_restart_families_and_extended_next_hop():
    msg = decode_open(SWISSCOM_OPEN)
    assert msg.asn == 4226809946
    assert msg.graceful_restart == GracefulRestart(0, 120, ((1, 128, 0), (2, 128, 0)))
    assert Capability(5, ExtendedNextHop(((1, 1, 2), (1, 2, 2), (1, 128, 2)))) in msg.capabilities
    assert msg.multiprotocol == frozenset({(1, 128), (2, 128)})


def test_private_capability_stays_raw_and_is_named_by_number_when_unknown():
    msg = decode_open(FULL_SUPPORT_OPEN)
    assert Capability(131, b"\x00") in msg.capabilities
    assert msg.asn == 2621441
    assert capability_name(200) == "capability 200"
    assert capability_name(CapabilityCode.ADD_PATH) == "add-path"


def test_bare_open_has_no_capabilities():
    msg = decode_open(BARE_OPEN)
    assert msg.parameters == () and msg.capabilities == ()
    assert msg.asn == msg.my_as == 65033
    assert msg.four_octet_as is None and msg.add_path == {} and not msg.route_refresh


def test_extended_optional_parameters_rfc_9072():
    msg = decode_open(EXTENDED_OPEN)
    assert msg.extended_params
    caps = (
        Capability(1, Multiprotocol(2, 1)),
        Capability(6, ExtendedMessage()),
        Capability(2, RouteRefreshCapability()),
    )
    assert msg.parameters == (OptionalParameter(CAPS, caps),)
    # The same OPEN without the flag takes the RFC 4271 encoding: no Non-Ext OP Type and 2-byte total
    # length (3 bytes), and a 1-byte length for the one parameter (1 byte).
    classic = encode_open(Open(4, 65000, 90, "192.0.2.1", msg.parameters))
    assert len(classic) == len(EXTENDED_OPEN) - 4
    assert decode_open(classic).parameters == msg.parameters


def test_parameter_type_255_round_trips_where_it_is_not_the_rfc_9072_marker():
    # classic, opt len 4: param 255 len 0, then param 2 len 0; kept as received and reported as 2/4
    body = _with_params(b"\xff\x00\x02\x00")
    msg = decode_open(body)
    assert not msg.extended_params and msg.parameters[0] == OptionalParameter(255, b"")
    assert [p.subcode for p in msg.problems] == [4]
    assert encode_open(msg) == body


def test_extended_encoding_carries_parameters_over_255_bytes():
    caps = tuple(Capability(200, bytes(200)) for _ in range(2))
    msg = Open(4, 65000, 90, "192.0.2.1", (OptionalParameter(CAPS, caps),), extended_params=True)
    body = encode_open(msg)
    assert body[9:11] == b"\xff\xff" and int.from_bytes(body[11:13], "big") == 3 + 404
    assert decode_open(body) == msg
    with pytest.raises(ValueError, match="extended_params"):
        params = (OptionalParameter(CAPS, caps[:1]), OptionalParameter(CAPS, caps[1:]))
        encode_open(Open(4, 65000, 90, "192.0.2.1", params))


def test_negotiate_reads_the_fixture_opens():
    a, b = decode_open(ADD_PATH_OPEN), decode_open(ADD_PATH_OPEN)
    ctx = negotiate(a, b)
    assert ctx.as4 and ctx.add_path == frozenset({(1, 1)}) and not ctx.extended_message
    # bgp-4byte-asn: both sides only receive paths, so neither sends path identifiers.
    ctx = negotiate(decode_open(FOUR_BYTE_ASN_OPEN), decode_open(BGPLU_OPEN))
    assert ctx.as4 and ctx.add_path == frozenset()
    assert not negotiate(decode_open(BARE_OPEN), decode_open(ADD_PATH_OPEN)).as4


def test_accepts_memoryview():
    assert decode_open(memoryview(ADD_PATH_OPEN)) == decode_open(ADD_PATH_OPEN)


# --- properties on hand-built OPENs -------------------------------------------------------------------------


def _open(*caps: Capability, **kw) -> Open:
    return Open(4, 65001, 180, "10.0.0.1", (OptionalParameter(CAPS, caps),), **kw)


def test_route_refresh_from_the_cisco_code_alone():
    assert _open(Capability(128, RouteRefreshCapability())).route_refresh
    assert not _open(Capability(70, EnhancedRouteRefresh())).route_refresh


def test_add_path_capability_with_an_undefined_mode_is_ignored_whole():
    msg = _open(Capability(69, AddPath(((1, 1, 2), (2, 1, 7)))), Capability(69, AddPath(((1, 4, 1),))))
    # RFC 7911 4: mode 7 is undefined, so the first capability is ignored, the second kept.
    assert msg.add_path == {(1, 4): AddPathMode.RECEIVE}


def test_fqdn_with_domain_and_role():
    msg = _open(Capability(73, Fqdn("r1", "example.net")), Capability(9, Role(BgpRole.CUSTOMER)))
    assert msg.fqdn == "r1.example.net"
    assert msg.role == BgpRole.CUSTOMER
    assert decode_open(encode_open(msg)) == msg


def test_long_lived_graceful_restart_is_typed():
    cap = Capability(71, LongLivedGracefulRestart(((1, 1, 0x80, 86400),)))
    body = encode_open(_open(cap))
    # code 71, length 7, AFI 1, SAFI 1, flags 0x80, stale time 86400 (0x015180)
    assert body.endswith(bytes.fromhex("4707" "0001" "01" "80" "015180"))  # fmt: skip
    assert decode_open(body).capabilities == (cap,)


def test_malformed_capability_of_a_known_code_in_properties_is_skipped():
    msg = _open(Capability(65, b"\x00\x01"), Capability(6, b"\x01"))
    assert msg.four_octet_as is None and msg.asn == 65001
    assert not msg.extended_message
    assert not msg.capabilities[0].well_formed


# --- structural errors: decode_open raises ------------------------------------------------------------------


def _raises(body: bytes, **kw):
    with pytest.raises(DecodeError) as info:
        decode_open(body, **kw)
    err = info.value.error
    assert err.action is Action.SESSION_RESET
    return err


@pytest.mark.parametrize("size", [0, 1, 9])
def test_shorter_than_fixed_fields_is_bad_message_length(size):
    err = _raises(BARE_OPEN[:size])
    assert (err.code, err.subcode, err.offset, err.length) == (1, 2, 0, size)


def test_optional_parameters_length_past_the_end():
    # opt len 36 with only 35 bytes present
    err = _raises(ADD_PATH_OPEN[:-1])
    assert (err.code, err.subcode, err.offset, err.length) == (1, 2, 9, 1)


def test_bytes_after_the_optional_parameters():
    err = _raises(BARE_OPEN + b"\x00")  # opt len 0, one byte follows
    assert (err.code, err.subcode, err.offset) == (1, 2, 9)


@pytest.mark.parametrize("cut", [11, 12])
def test_extended_length_field_truncated(cut):
    err = _raises(EXTENDED_OPEN[:cut])
    assert (err.code, err.subcode, err.offset) == (1, 2, 10)


def test_extended_length_disagrees_with_the_message():
    err = _raises(EXTENDED_OPEN + b"\x00")
    assert (err.code, err.subcode, err.offset, err.length) == (1, 2, 11, 2)


def test_optional_parameter_header_truncated():
    err = _raises(_with_params(b"\x02"))  # a lone parameter type byte
    assert (err.code, err.subcode, err.offset, err.length) == (2, 0, 10, 1)


def test_optional_parameter_runs_past_the_message():
    err = _raises(_with_params(b"\x02\x05\x02\x00"))  # param 2 claims 5 bytes, 2 present
    assert (err.code, err.subcode, err.offset, err.length) == (2, 0, 10, 2)


def test_extended_optional_parameter_runs_past_the_message():
    # Non-Ext len/type 255, ext len 3, then param type 2 with 2-byte length 1 and no value
    err = _raises(_body()[:-1] + bytes.fromhex("ff" "ff" "0003" "02" "0001"))  # fmt: skip
    assert (err.code, err.subcode, err.offset, err.length) == (2, 0, 13, 3)


def test_capability_header_truncated():
    # param 2 len 3: route refresh (02 00), then a lone capability code byte 0x41
    err = _raises(_with_params(b"\x02\x03\x02\x00\x41"))
    assert (err.code, err.subcode, err.offset, err.length) == (2, 0, 14, 1)


def test_capability_runs_past_its_parameter():
    # param 2 len 4, holding 4-octet AS (65) declaring length 4 with only 2 bytes inside the parameter,
    # followed by another parameter whose bytes must not be borrowed
    err = _raises(_with_params(b"\x02\x04\x41\x04\x00\x01\x02\x02\x02\x00"))
    assert (err.code, err.subcode, err.offset, err.length) == (2, 0, 12, 2)
    assert "four-octet-as" in err.detail


# --- semantic problems: reported, or raised with strict -----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "subcode", "offset", "length"),
    [
        (_body(version=3), 1, 0, 1),  # RFC 4271 6.2 Unsupported Version Number
        (_body(asn=0), 2, 1, 2),  # RFC 7607 2 Bad Peer AS
        (_body(hold=1), 6, 3, 2),  # RFC 4271 6.2 Unacceptable Hold Time
        (_body(hold=2), 6, 3, 2),
        (_body(router_id=bytes(4)), 3, 5, 4),  # RFC 6286 2.2 Bad BGP Identifier
    ],
)
def test_semantic_problems_are_reported_or_raised(body, subcode, offset, length):
    msg = decode_open(body)
    (problem,) = msg.problems
    assert (problem.code, problem.subcode, problem.offset, problem.length) == (2, subcode, offset, length)
    assert problem.action is Action.SESSION_RESET
    assert encode_open(msg) == body
    err = _raises(body, strict=True)
    assert err == problem


@pytest.mark.parametrize("hold", [0, 3, 65535])
def test_acceptable_hold_times(hold):
    assert decode_open(_body(hold=hold), strict=True).hold_time == hold


def test_several_problems_in_wire_order_strict_raises_the_first():
    body = _body(version=5, hold=2, router_id=bytes(4))
    assert [p.subcode for p in decode_open(body).problems] == [1, 6, 3]
    assert _raises(body, strict=True).subcode == 1


def test_unsupported_optional_parameter_is_kept_raw_and_reported():
    # param 1 (authentication, deprecated) len 2: 0xab 0xcd; then a Capabilities param with route refresh
    body = _with_params(b"\x01\x02\xab\xcd\x02\x02\x02\x00")
    msg = decode_open(body)
    assert msg.parameters[0] == OptionalParameter(ParameterType.AUTHENTICATION, b"\xab\xcd")
    assert msg.route_refresh
    (problem,) = msg.problems
    assert (problem.code, problem.subcode, problem.offset, problem.length) == (2, 4, 10, 4)
    assert encode_open(msg) == body
    assert _raises(body, strict=True).subcode == 4


def test_malformed_known_capability_is_kept_raw_and_reported():
    # param 2 len 7: route refresh (02 00), then multiprotocol (01) with length 3 instead of 4: 00 01 00
    body = _with_params(b"\x02\x07\x02\x00\x01\x03\x00\x01\x00")
    msg = decode_open(body)
    assert msg.capabilities[1] == Capability(1, b"\x00\x01\x00")
    assert msg.multiprotocol == frozenset()
    (problem,) = msg.problems
    assert (problem.code, problem.subcode, problem.offset, problem.length) == (2, 0, 14, 5)
    assert "multiprotocol" in problem.kind and "length 3" in problem.detail
    assert encode_open(msg) == body


def test_malformed_known_capability_in_extended_encoding_offsets():
    # extended: ext len 6, param 2 with 2-byte length 3: route refresh with length 1 (value 0x00)
    body = _body()[:-1] + bytes.fromhex("ff" "ff" "0006" "02" "0003" "0201" "00")  # fmt: skip
    (problem,) = decode_open(body).problems
    assert (problem.subcode, problem.offset, problem.length) == (0, 16, 3)


def test_conflicting_roles_are_a_role_mismatch():
    # param 2 len 6: role (9) len 1 = 3 (customer), role len 1 = 4 (peer)
    body = _with_params(b"\x02\x06\x09\x01\x03\x09\x01\x04")
    (problem,) = decode_open(body).problems
    assert (problem.code, problem.subcode, problem.offset, problem.length) == (2, 11, 15, 3)
    assert decode_open(_with_params(b"\x02\x06\x09\x01\x03\x09\x01\x03")).problems == ()


# --- encoder refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "msg",
    [
        Open(4, 65536, 180, "10.0.0.1"),  # My AS is 2 octets
        Open(256, 1, 180, "10.0.0.1"),
        Open(4, 1, 180, "10.0.0.256"),
        # 255 bytes of classic parameters starting with type 255 would read as RFC 9072's encoding
        Open(4, 1, 180, "10.0.0.1", (OptionalParameter(255, bytes(253)),)),
        Open(4, 1, 180, "10.0.0.1", (OptionalParameter(256, b""),)),
        Open(4, 1, 180, "10.0.0.1", (OptionalParameter(CAPS, b"\x02\x00"),)),  # capabilities must be split
        Open(4, 1, 180, "10.0.0.1", (OptionalParameter(1, ()),)),
        _open(Capability(256, b"")),
        _open(Capability(200, bytes(256))),
        _open(Capability(64, GracefulRestart(16, 0))),
        _open(Capability(7, Bgpsec(16, True, 1))),
        _open(Capability(73, Fqdn("x" * 256))),
        _open(Capability(65, FourOctetAs(1 << 32))),
        _open(Capability(1, Multiprotocol(1 << 16, 1))),
        _open(Capability(200, object())),  # no encoder for code 200, and not bytes
    ],
)
def test_encoder_refuses_what_cannot_round_trip(msg):
    with pytest.raises(ValueError):
        encode_open(msg)


def test_capability_table_is_consistent():
    for code, codec in CAPABILITY_CODECS.items():
        assert 0 <= code <= 255 and codec.name
        assert (codec.decode is None) == (codec.encode is None), code
    assert capability_name(CapabilityCode.FQDN) == "fqdn"


# --- generated OPENs ----------------------------------------------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
_entries = st.lists(st.tuples(u16, u8, u8), max_size=3).map(tuple)  # (AFI, SAFI, one octet)
_next_hop_entries = st.lists(st.tuples(u16, u16, u16), max_size=3).map(tuple)  # (AFI, SAFI, next-hop AFI)
_text = st.text(st.characters(codec="utf-8"), max_size=12)

TYPED_CAPABILITIES = st.one_of(
    st.builds(lambda a, s, r: Capability(1, Multiprotocol(a, s, r)), u16, u8, u8),
    st.sampled_from([2, 128]).map(lambda c: Capability(c, RouteRefreshCapability())),
    st.builds(lambda e: Capability(5, ExtendedNextHop(e)), _next_hop_entries),
    st.just(Capability(6, ExtendedMessage())),
    st.builds(
        lambda v, d, a, r: Capability(7, Bgpsec(v, d, a, r)),
        st.integers(0, 15),
        st.booleans(),
        u16,
        st.integers(0, 7),
    ),  # fmt: skip
    st.builds(lambda e: Capability(8, MultipleLabels(e)), _entries),
    st.builds(lambda r: Capability(9, Role(r)), u8),
    st.builds(
        lambda f, t, fams: Capability(64, GracefulRestart(f, t, tuple(fams))),
        st.integers(0, 15),
        st.integers(0, 0xFFF),
        st.lists(st.tuples(u16, u8, u8), max_size=3),
    ),
    st.builds(lambda a: Capability(65, FourOctetAs(a)), u32),
    st.builds(lambda e: Capability(69, AddPath(e)), _entries),
    st.just(Capability(70, EnhancedRouteRefresh())),
    st.builds(
        lambda e: Capability(71, LongLivedGracefulRestart(tuple(e))),
        st.lists(st.tuples(u16, u8, u8, st.integers(0, 0xFFFFFF)), max_size=2),
    ),
    st.builds(lambda h, d: Capability(73, Fqdn(h, d)), _text, _text),
)


def _stays_raw(cap: Capability) -> bool:
    codec = CAPABILITY_CODECS.get(cap.code)
    if codec is None or codec.decode is None:
        return True
    try:
        codec.decode(cap.value)  # type: ignore[arg-type]
    except Exception:
        return True
    return False


RAW_CAPABILITIES = st.builds(Capability, u8, st.binary(max_size=12)).filter(_stays_raw)
CAPABILITY_LISTS = st.lists(st.one_of(TYPED_CAPABILITIES, RAW_CAPABILITIES), max_size=4).map(tuple)
PARAMETERS = st.one_of(
    st.builds(lambda caps: OptionalParameter(CAPS, caps), CAPABILITY_LISTS),
    st.builds(OptionalParameter, u8.filter(lambda t: t != CAPS), st.binary(max_size=8)),
)
OPENS = st.builds(
    Open,
    u8,
    u16,
    u16,
    st.ip_addresses(v=4).map(str),
    st.lists(PARAMETERS, max_size=4).map(tuple),
    st.booleans(),
)


@given(OPENS)
@settings(suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
def test_generated_opens_round_trip(msg):
    try:
        body = encode_open(msg)
    except ValueError:
        assume(False)  # parameters too long for the classic encoding
    decoded = decode_open(body)
    assert decoded == msg
    assert encode_open(decoded) == body
    # Reported problems never stop a non-strict decode, and their offsets stay inside the body.
    for problem in decoded.problems:
        assert problem.offset >= 0 and problem.offset + problem.length <= len(body)


def _decodes_exactly_or_raises_decode_error(body: bytes) -> None:
    try:
        msg = decode_open(body)
    except DecodeError as exc:
        assert 0 <= exc.error.offset <= len(body)
        assert exc.error.code in (1, 2)
        return
    assert encode_open(msg) == body
    for problem in msg.problems:
        assert problem.offset + problem.length <= len(body)


@given(st.binary(max_size=80))
def test_arbitrary_bytes_never_raise_anything_but_decode_error(body):
    _decodes_exactly_or_raises_decode_error(body)


@given(st.binary(max_size=60))
def test_arbitrary_parameters_behind_valid_fixed_fields(params):
    # Valid fixed fields and a consistent length reach the parameter and capability walkers every time.
    _decodes_exactly_or_raises_decode_error(_with_params(params))


@given(st.sampled_from(FIXTURE_OPENS + [EXTENDED_OPEN]), st.data())
def test_mutated_fixture_opens(body, data):
    mutated = bytearray(body)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        at = data.draw(st.integers(0, max(len(mutated) - 1, 0)))
        if kind == "flip" and mutated:
            mutated[at] = data.draw(u8)
        elif kind == "insert":
            mutated.insert(at, data.draw(u8))
        elif mutated:
            del mutated[at]
    _decodes_exactly_or_raises_decode_error(bytes(mutated))


# --- tshark as an independent oracle over every OPEN in the fixtures ----------------------------------------


def _tshark_opens(capture: Path) -> list[tuple[bytes, list[str]]]:
    fields = ["tcp.payload", "bgp.open.myas", "bgp.open.holdtime", "bgp.open.identifier", "bgp.cap.type"]
    argv = [
        "tshark",
        "-r",
        str(capture),
        "-o",
        "tcp.check_checksum:FALSE",
        "-Y",
        "bgp.type == 1",
        "-T",
        "fields",
    ]
    for field in fields:
        argv += ["-e", field]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    opens = []
    for line in out.splitlines():
        payload, *rest = line.split("\t")
        data = bytes.fromhex(payload.replace(":", ""))
        at = data.find(MARKER)
        length = int.from_bytes(data[at + 16 : at + 18], "big")
        if data[at + 18] == MessageType.OPEN and at + length <= len(data):
            opens.append((data[at + 19 : at + length], rest))
    return opens


@pytest.mark.oracle
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_every_fixture_open_agrees_with_tshark():
    seen = 0
    for capture in sorted(FIXTURES.iterdir()):
        for body, (my_as, hold, ident, cap_types) in _tshark_opens(capture):
            msg = decode_open(body, strict=True)
            assert encode_open(msg) == body, capture.name
            assert (msg.my_as, msg.hold_time, msg.router_id) == (int(my_as), int(hold), ident), capture.name
            codes = [int(c) for c in cap_types.split(",")] if cap_types else []
            assert [c.code for c in msg.capabilities] == codes, capture.name
            seen += 1
    assert seen >= 40  # SOURCES.md counts 45 OPENs; a few sit split across segments


def test_raw_value_that_decodes_is_well_formed_and_comes_back_typed():
    # Built by hand as raw bytes (AFI 1, reserved 0, SAFI 1): not a problem, and decoding types it.
    msg = _open(Capability(1, bytes.fromhex("0001" "00" "01")))  # fmt: skip
    assert msg.capabilities[0].well_formed and msg.problems == ()
    assert decode_open(encode_open(msg)).capabilities == (Capability(1, Multiprotocol(1, 1)),)
