"""parsers.bgp.nlri: splitting NLRI fields, ADD-PATH identifiers, prefixes to and from text."""

from hypothesis import given
from hypothesis import strategies as st

from parsers.bgp.constants import IPV4_UNICAST, IPV6_UNICAST, Afi, Safi
from parsers.bgp.nlri import (
    Nlri,
    canonical,
    encode_nlri,
    nlri_fits,
    prefix_from_text,
    prefix_to_text,
    split_nlri,
)
from parsers.errors import Action

# Two IPv4 prefixes: 10.0.0.0/8 and 198.51.100.0/24.
TWO_V4 = bytes(
    [
        8, 10,  # /8, one octet: 10
        24, 198, 51, 100,  # /24, three octets: 198.51.100
    ]
)  # fmt: skip


def test_split_plain_ipv4():
    field = split_nlri(TWO_V4, IPV4_UNICAST, False)
    assert field.error is None
    assert [prefix_to_text(Afi.IPV4, p) for p in field.prefixes] == ["10.0.0.0/8", "198.51.100.0/24"]
    assert field.path_ids is None


def test_split_with_path_ids():
    data = bytes(
        [
            0, 0, 0, 1,  # path identifier 1
            24, 192, 0, 2,  # 192.0.2.0/24
            0, 0, 0, 2,  # path identifier 2
            24, 192, 0, 2,  # the same prefix again, another path
        ]
    )  # fmt: skip
    field = split_nlri(data, IPV4_UNICAST, True)
    assert field.error is None
    assert field.entries() == [Nlri(bytes([24, 192, 0, 2]), 1), Nlri(bytes([24, 192, 0, 2]), 2)]


def test_add_path_field_read_without_ids_is_an_error_not_garbage():
    data = bytes([0, 0, 0, 1, 24, 192, 0, 2])  # path id 1, 192.0.2.0/24
    error = split_nlri(data, IPV4_UNICAST, False).error
    # Without ids the first byte (0) reads as 0.0.0.0/0, then 0, 0 likewise, then /1 takes one octet and
    # /24 runs past the field: the split must say so rather than invent prefixes.
    assert error is not None
    assert error.action is Action.SESSION_RESET
    assert error.offset == 5
    assert not nlri_fits(data, IPV4_UNICAST, False)
    assert nlri_fits(data, IPV4_UNICAST, True)


def test_prefix_length_over_32_is_malformed():
    field = split_nlri(bytes([33, 1, 2, 3, 4, 5]), IPV4_UNICAST, False)
    assert field.prefixes == []
    assert field.error is not None and field.error.offset == 0


def test_ipv6_prefix_text_round_trip():
    afi, key = prefix_from_text("2001:db8:1::/48")
    assert afi == Afi.IPV6
    assert key == bytes([48, 0x20, 0x01, 0x0D, 0xB8, 0x00, 0x01])
    assert prefix_to_text(afi, key) == "2001:db8:1::/48"
    field = split_nlri(key, IPV6_UNICAST, False)
    assert field.error is None and field.prefixes == [key]


def test_prefix_from_text_clears_host_bits():
    assert prefix_from_text("192.0.2.77/24")[1] == bytes([24, 192, 0, 2])
    assert prefix_from_text("0.0.0.0/0")[1] == bytes([0])


def test_canonical_clears_trailing_bits():
    assert canonical(bytes([23, 192, 0, 3])) == bytes([23, 192, 0, 2])
    same = bytes([24, 192, 0, 3])
    assert canonical(same) is same


def test_labelled_and_vpn_split_by_bit_length():
    # VPNv4: length 112 bits = label (3) + RD (8) + /24 (3 octets)
    entry = bytes([112]) + bytes([0x00, 0x01, 0x41]) + bytes(8) + bytes([10, 1, 2])
    field = split_nlri(entry + entry, (Afi.IPV4, Safi.MPLS_VPN), False)
    assert field.error is None and len(field.prefixes) == 2


def test_evpn_split_by_route_type_length():
    route = bytes([2, 5]) + b"abcde"  # type 2, 5 octets
    field = split_nlri(route * 3, (Afi.L2VPN, Safi.EVPN), False)
    assert field.error is None and len(field.prefixes) == 3


prefixes_v4 = st.integers(0, 32).flatmap(
    lambda bits: st.binary(min_size=(bits + 7) // 8, max_size=(bits + 7) // 8).map(lambda b: bytes([bits]) + b)
)


@given(st.lists(st.tuples(prefixes_v4, st.one_of(st.none(), st.integers(0, 2**32 - 1))), max_size=30))
def test_encode_split_round_trip(items):
    with_ids = all(pid is not None for _, pid in items) and items
    entries = [Nlri(p, pid if with_ids else None) for p, pid in items]
    field = split_nlri(encode_nlri(entries), IPV4_UNICAST, bool(with_ids))
    assert field.error is None
    assert field.entries() == entries


@given(
    st.binary(max_size=200),
    st.booleans(),
    st.sampled_from([IPV4_UNICAST, IPV6_UNICAST, (1, 128), (25, 70), (1, 99)]),
)
def test_split_never_raises(data, add_path, family):
    field = split_nlri(data, family, add_path)
    consumed = sum(len(p) for p in field.prefixes) + 4 * len(field.path_ids or ())
    assert consumed <= len(data)
    if field.error is None:
        assert consumed == len(data)
    if field.path_ids is not None:
        assert len(field.path_ids) == len(field.prefixes)
