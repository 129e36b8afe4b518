"""parsers.bgp.update: an UPDATE's routes under a session context, with RFC 7606 handling."""

from parsers.bgp.constants import IPV4_UNICAST, IPV6_UNICAST
from parsers.bgp.context import SessionContext
from parsers.bgp.messages import decode_update
from parsers.bgp.nlri import prefix_to_text
from parsers.bgp.update import AttributeCache, as_path_fits, split_mp_attributes, update_routes
from parsers.errors import Action

AS4 = SessionContext(as4=True)

ORIGIN_IGP = bytes([0x40, 1, 1, 0])  # flags well-known transitive, ORIGIN, length 1, IGP
# AS_PATH, 4-octet: one AS_SEQUENCE of 2 ASNs: 64500, 4200000001
AS_PATH_4 = bytes([0x40, 2, 10, 2, 2]) + (64500).to_bytes(4, "big") + (4200000001).to_bytes(4, "big")
NEXT_HOP = bytes([0x40, 3, 4, 192, 0, 2, 1])  # NEXT_HOP 192.0.2.1
MED_50 = bytes([0x80, 4, 4, 0, 0, 0, 50])  # optional non-transitive MULTI_EXIT_DISC 50


def body(withdrawn: bytes = b"", attrs: bytes = b"", nlri: bytes = b"") -> bytes:
    return len(withdrawn).to_bytes(2, "big") + withdrawn + len(attrs).to_bytes(2, "big") + attrs + nlri


def mp_reach_v6(nlri: bytes, link_local: bool = True) -> bytes:
    next_hop = bytes.fromhex("20010db8000000000000000000000001")
    if link_local:
        next_hop += bytes.fromhex("fe800000000000000000000000000001")
    value = (2).to_bytes(2, "big") + bytes([1, len(next_hop)]) + next_hop + b"\x00" + nlri  # AFI 2, SAFI 1, reserved
    return bytes([0x90, 14]) + len(value).to_bytes(2, "big") + value  # optional, extended length, MP_REACH_NLRI


def routes(raw: bytes, ctx: SessionContext = AS4, cache: AttributeCache | None = None):
    return update_routes(decode_update(raw), ctx, AttributeCache() if cache is None else cache)


def test_ipv4_announcement():
    out = routes(body(attrs=ORIGIN_IGP + AS_PATH_4 + NEXT_HOP + MED_50, nlri=bytes([24, 198, 51, 100])))
    assert out.errors == []
    [announcement] = out.announced
    assert announcement.family == IPV4_UNICAST
    assert [prefix_to_text(1, p) for p in announcement.nlri.prefixes] == ["198.51.100.0/24"]
    assert announcement.next_hop == "192.0.2.1"
    assert out.attributes.med == 50
    assert [s.asns for s in out.attributes.as_path] == [(64500, 4200000001)]


def test_ipv6_mp_reach_with_link_local_next_hop():
    nlri = bytes([48, 0x20, 0x01, 0x0D, 0xB8, 0, 1])  # 2001:db8:1::/48
    out = routes(body(attrs=ORIGIN_IGP + AS_PATH_4 + mp_reach_v6(nlri)))
    assert out.errors == []
    [announcement] = out.announced
    assert announcement.family == IPV6_UNICAST
    assert announcement.next_hop == "2001:db8::1"
    assert announcement.next_hop_link_local == "fe80::1"
    assert prefix_to_text(2, announcement.nlri.prefixes[0]) == "2001:db8:1::/48"


def test_end_of_rib_markers():
    assert routes(body()).end_of_rib == IPV4_UNICAST
    unreach = bytes([0x80, 15, 3, 0, 2, 1])  # MP_UNREACH_NLRI, AFI 2 SAFI 1, no NLRI
    out = routes(body(attrs=unreach))
    assert out.end_of_rib == IPV6_UNICAST
    assert out.withdrawn == []


def test_identical_attribute_blocks_are_decoded_once():
    cache = AttributeCache()
    shared = ORIGIN_IGP + AS_PATH_4
    a = routes(body(attrs=shared + mp_reach_v6(bytes([32, 0x20, 1, 0xD, 0xB8]))), cache=cache)
    b = routes(body(attrs=shared + mp_reach_v6(bytes([32, 0x20, 1, 0xD, 0xB9]))), cache=cache)
    assert a.attributes is b.attributes
    assert (cache.misses, cache.hits) == (1, 1)


def test_malformed_as_path_is_treat_as_withdraw():
    bad_path = bytes([0x40, 2, 6, 2, 2, 0, 0, 0xFB, 0xF4])  # says 2 ASNs of 4 octets, holds 4 bytes
    out = routes(body(attrs=ORIGIN_IGP + bad_path + NEXT_HOP, nlri=bytes([24, 198, 51, 100])))
    assert out.action is Action.TREAT_AS_WITHDRAW
    assert out.announced == []
    assert [(f, [prefix_to_text(1, p) for p in n.prefixes]) for f, n in out.withdrawn] == [
        (IPV4_UNICAST, ["198.51.100.0/24"])
    ]
    # the error points into the UPDATE body: 2 (withdrawn length) + 2 (attribute length) + ORIGIN (4 bytes)
    assert any(e.offset == 8 for e in out.errors), out.errors


def test_missing_next_hop_with_ipv4_nlri_is_treat_as_withdraw():
    out = routes(body(attrs=ORIGIN_IGP + AS_PATH_4, nlri=bytes([24, 198, 51, 100])))
    assert out.action is Action.TREAT_AS_WITHDRAW
    assert out.announced == []


def test_error_offsets_account_for_cut_mp_attributes():
    bad_med = bytes([0x80, 4, 3, 0, 0, 1])  # MED of 3 bytes
    nlri = bytes([32, 0x20, 1, 0xD, 0xB8])
    reach = mp_reach_v6(nlri)
    out = routes(body(attrs=ORIGIN_IGP + AS_PATH_4 + reach + bad_med))
    expected = 4 + len(ORIGIN_IGP) + len(AS_PATH_4) + len(reach)
    assert any(e.offset == expected for e in out.errors), [(e.kind, e.offset) for e in out.errors]


def test_split_mp_attributes_keeps_the_rest_in_order():
    reach = mp_reach_v6(bytes([32, 0x20, 1, 0xD, 0xB8]))
    split = split_mp_attributes(ORIGIN_IGP + reach + AS_PATH_4)
    assert split.shared == ORIGIN_IGP + AS_PATH_4
    assert [at for at, _, _ in split.reach] == [len(ORIGIN_IGP)]
    assert split.as_path == AS_PATH_4[3:]
    assert split_mp_attributes(ORIGIN_IGP[:2]) is None


def test_as_path_width_check():
    four = AS_PATH_4[3:]
    two = bytes([2, 2, 0xFB, 0xF4, 0xFD, 0xE8])  # AS_SEQUENCE 64500 65000, 2-octet
    assert as_path_fits(four, True) and not as_path_fits(four, False)
    assert as_path_fits(two, False) and not as_path_fits(two, True)


def test_repeated_or_misflagged_mp_attribute_is_session_reset_but_counted():
    nlri = bytes([32, 0x20, 1, 0xD, 0xB8])
    reach = mp_reach_v6(nlri)
    out = routes(body(attrs=ORIGIN_IGP + AS_PATH_4 + reach + reach))
    assert out.action is Action.SESSION_RESET
    assert out.announced == []  # nothing may enter the RIB
    assert out.carried_announced == {IPV6_UNICAST: 2}  # but the message carried two announcements
    misflagged = bytes([0x50]) + reach[1:]  # well-known transitive + extended length: wrong for MP_REACH
    out = routes(body(attrs=ORIGIN_IGP + AS_PATH_4 + misflagged))
    assert out.action is Action.SESSION_RESET
    assert out.carried_announced == {IPV6_UNICAST: 1}
