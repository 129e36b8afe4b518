"""parsers.bgp.route_refresh: RFC 2918 / RFC 7313 bodies from captures, ORF bytes, errors, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parsers.bgp.constants import RouteRefreshSubtype
from parsers.bgp.route_refresh import RouteRefresh, decode_route_refresh, encode_route_refresh
from parsers.errors import Action, DecodeError

# bgp-enhanced-route-refresh-subtype.pcapng frames 1-3: normal refresh, BoRR, EoRR for IPv4 unicast.
NORMAL = bytes.fromhex("0001" "00" "01")  # AFI 1, subtype 0 (normal; RFC 2918 reserved), SAFI 1  # fmt: skip
BORR = bytes.fromhex("0001" "01" "01")  # AFI 1, subtype 1 (Beginning of Route Refresh), SAFI 1  # fmt: skip
EORR = bytes.fromhex("0001" "02" "01")  # AFI 1, subtype 2 (End of Route Refresh), SAFI 1  # fmt: skip
# BGP_soft_reset.cap frame 7 is byte-identical to NORMAL; bgp-add-path.cap frames 5 and 6 to BORR and EORR.


@pytest.mark.parametrize(
    ("body", "subtype"),
    [
        (NORMAL, RouteRefreshSubtype.NORMAL),
        (BORR, RouteRefreshSubtype.BEGIN_OF_ROUTE_REFRESH),
        (EORR, RouteRefreshSubtype.END_OF_ROUTE_REFRESH),
    ],
)
def test_fixture_route_refreshes(body, subtype):
    msg = decode_route_refresh(body)
    assert msg == RouteRefresh(1, 1, subtype)
    assert msg.family == (1, 1)
    assert msg.problems == ()
    assert encode_route_refresh(msg) == body


def test_unknown_subtype_is_kept_and_reported_for_ignoring():
    body = bytes.fromhex("0002" "07" "80")  # AFI 2, subtype 7 (unassigned), SAFI 128  # fmt: skip
    msg = decode_route_refresh(body)
    assert (msg.afi, msg.safi, msg.subtype) == (2, 128, 7)
    (problem,) = msg.problems
    # RFC 7313 5: ignore the message; nothing to reset
    assert (problem.offset, problem.length, problem.action) == (2, 1, Action.NONE)
    assert encode_route_refresh(msg) == body


def test_normal_refresh_keeps_orf_entries():
    body = bytes.fromhex(
        "0001" "00" "01"  # AFI 1, normal, SAFI 1
        "01"  # When-to-refresh: IMMEDIATE (RFC 5291 4)
        "40" "0009"  # ORF type 64 (Address Prefix ORF, RFC 5292), length of the entries 9
        "00"  # action ADD, match PERMIT
        "0000000a"  # sequence 10
        "18" "20"  # minlen 24, maxlen 32
        "08" "0a"  # prefix 10.0.0.0/8
    )  # fmt: skip
    msg = decode_route_refresh(body)
    assert msg.orf == body[4:]
    assert encode_route_refresh(msg) == body


@pytest.mark.parametrize("size", [0, 1, 3])
def test_shorter_than_four_bytes(size):
    with pytest.raises(DecodeError) as info:
        decode_route_refresh(NORMAL[:size])
    err = info.value.error
    assert (err.code, err.subcode, err.offset, err.length) == (1, 2, 0, size)
    assert err.action is Action.SESSION_RESET


@pytest.mark.parametrize("body", [BORR + b"\x00", EORR + b"\x00\x00"])
def test_borr_eorr_longer_than_four_bytes_is_invalid_message_length(body):
    with pytest.raises(DecodeError) as info:
        decode_route_refresh(body)
    err = info.value.error
    # RFC 7313 5: ROUTE-REFRESH Message Error (7) / Invalid Message Length (1), at the extra bytes
    assert (err.code, err.subcode, err.offset, err.length) == (7, 1, 4, len(body) - 4)
    assert err.action is Action.SESSION_RESET


@pytest.mark.parametrize(
    "msg",
    [RouteRefresh(1 << 16, 1), RouteRefresh(1, 256), RouteRefresh(1, 1, -1), RouteRefresh(1, 1, 1, b"\x00")],
)
def test_encoder_refuses(msg):
    with pytest.raises(ValueError):
        encode_route_refresh(msg)


u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
REFRESHES = st.one_of(
    st.builds(RouteRefresh, u16, u8, st.sampled_from([0, 3, 200, 255]), st.binary(max_size=12)),
    st.builds(RouteRefresh, u16, u8, st.sampled_from([1, 2])),
)


@given(REFRESHES)
def test_generated_round_trip(msg):
    body = encode_route_refresh(msg)
    assert decode_route_refresh(body) == msg
    assert encode_route_refresh(decode_route_refresh(body)) == body


@given(st.binary(max_size=12))
def test_arbitrary_bytes(body):
    try:
        msg = decode_route_refresh(body)
    except DecodeError as exc:
        assert exc.error.code in (1, 7)
        return
    assert encode_route_refresh(msg) == body
