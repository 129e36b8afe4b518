"""parsers.bgp.update.plain_announcement: the one-pass decoder of plain announcements agrees with the full one.

The full decoder (`decode_update` + `update_routes`) is the reference here; test_replay_fixtures checks it against
tshark. Bodies are built from well-formed parts, then bent in the ways RFC 7606 cares about (flags, repeats,
lengths, withdrawals, MP_UNREACH, ADD-PATH, 2-octet sessions) and finally hit by random byte changes.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.bgp.constants import IPV4_UNICAST, IPV6_UNICAST
from parsers.bgp.context import SessionContext
from parsers.bgp.messages import decode_update
from parsers.bgp.update import AttributeCache, plain_announcement, update_routes
from parsers.errors import DecodeError

AS4 = SessionContext(as4=True)
ORIGIN_IGP = bytes([0x40, 1, 1, 0])
AS_PATH_4 = bytes([0x40, 2, 6, 2, 1]) + (4200000001).to_bytes(4, "big")
NEXT_HOP = bytes([0x40, 3, 4, 192, 0, 2, 1])
MED = bytes([0x80, 4, 4, 0, 0, 0, 7])
COMMUNITIES = bytes([0xC0, 8, 8, 0xFD, 0xE8, 0, 1, 0xFD, 0xE8, 0, 2])


def body(withdrawn: bytes = b"", attrs: bytes = b"", nlri: bytes = b"") -> bytes:
    return len(withdrawn).to_bytes(2, "big") + withdrawn + len(attrs).to_bytes(2, "big") + attrs + nlri


def mp_reach(afi: int, next_hop: bytes, nlri: bytes, flags: int = 0x90) -> bytes:
    value = afi.to_bytes(2, "big") + bytes([1, len(next_hop)]) + next_hop + b"\x00" + nlri
    if flags & 0x10:
        return bytes([flags, 14]) + len(value).to_bytes(2, "big") + value
    return bytes([flags, 14, len(value)]) + value


V6_NEXT_HOP = bytes.fromhex("20010db8000000000000000000000001")
LINK_LOCAL = bytes.fromhex("fe800000000000000000000000000001")


def full(raw: bytes, ctx: SessionContext, cache: AttributeCache):
    try:
        return update_routes(decode_update(raw), ctx, cache)
    except DecodeError:
        return None


def check(raw: bytes, ctx: SessionContext = AS4) -> bool:
    """Assert the fast path says what the full decoder says, when it answers; return whether it answered."""
    cache = AttributeCache()
    fast = plain_announcement(raw, ctx, cache)
    if fast is None:
        return False
    family, prefixes, attrs, next_hop, link_local = fast
    out = full(raw, ctx, AttributeCache())
    assert out is not None
    assert out.errors == []
    assert out.withdrawn == [] and out.disabled_families == [] and out.end_of_rib is None
    [announcement] = out.announced
    assert announcement.family == family
    assert announcement.nlri.prefixes == prefixes and announcement.nlri.path_ids is None
    assert (announcement.next_hop, announcement.next_hop_link_local) == (next_hop, link_local)
    assert out.attributes == attrs
    assert out.carried_announced == {family: len(prefixes)} and out.carried_withdrawn == {}
    return True


def test_plain_ipv4_and_ipv6_are_taken_by_the_fast_path():
    v4 = bytes([24, 198, 51, 100, 16, 10, 1, 0])
    assert check(body(attrs=ORIGIN_IGP + AS_PATH_4 + NEXT_HOP + MED, nlri=v4))
    v6 = bytes([48, 0x20, 0x01, 0x0D, 0xB8, 0, 1, 0])
    assert check(body(attrs=ORIGIN_IGP + mp_reach(2, V6_NEXT_HOP + LINK_LOCAL, v6) + AS_PATH_4))
    assert check(body(attrs=ORIGIN_IGP + AS_PATH_4 + mp_reach(2, V6_NEXT_HOP, v6, flags=0x80)))


def test_anything_else_is_left_to_the_full_decoder():
    v4 = bytes([24, 198, 51, 100])
    attrs = ORIGIN_IGP + AS_PATH_4 + NEXT_HOP
    cache = AttributeCache()
    refused = [
        body(withdrawn=v4, attrs=attrs, nlri=v4),  # withdrawals
        body(attrs=attrs),  # nothing announced
        body(attrs=attrs, nlri=bytes([33, 1, 2, 3, 4, 5])),  # IPv4 prefix longer than 32 bits
        body(attrs=attrs, nlri=bytes([24, 198, 51])),  # entry cut short
        body(attrs=ORIGIN_IGP + NEXT_HOP, nlri=v4),  # AS_PATH missing
        body(attrs=AS_PATH_4 + mp_reach(2, V6_NEXT_HOP, bytes([32, 0x20, 1, 0xD, 0xB8]))),  # ORIGIN missing
        body(attrs=ORIGIN_IGP + bytes([0x40, 2, 3, 2, 1, 0]) + NEXT_HOP, nlri=v4),  # malformed AS_PATH
        body(attrs=attrs + mp_reach(2, V6_NEXT_HOP, bytes([32, 0x20, 1, 0xD, 0xB8])), nlri=v4),  # both fields
        body(attrs=attrs + mp_reach(2, V6_NEXT_HOP, b"\x20\x20\x01", flags=0xC0)),  # MP_REACH flags
        body(attrs=attrs + bytes([0x80, 15, 3, 0, 2, 1])),  # MP_UNREACH
        body(attrs=ORIGIN_IGP + AS_PATH_4 + mp_reach(1, bytes(4), v4) * 2),  # repeated MP_REACH
    ]
    for raw in refused:
        assert plain_announcement(raw, AS4, cache) is None
    add_path = SessionContext(as4=True, add_path=frozenset({IPV4_UNICAST, IPV6_UNICAST}))
    assert plain_announcement(body(attrs=attrs, nlri=v4), add_path, cache) is None


PREFIXES_V4 = st.lists(st.integers(0, 32), min_size=1, max_size=6).map(
    lambda lengths: b"".join(bytes([n]) + bytes(range(1, 1 + (n + 7) // 8)) for n in lengths)
)
PREFIXES_V6 = st.lists(st.integers(0, 128), min_size=1, max_size=4).map(
    lambda lengths: b"".join(bytes([n]) + bytes(range(1, 1 + (n + 7) // 8)) for n in lengths)
)


@st.composite
def updates(draw: st.DrawFn) -> tuple[bytes, SessionContext]:
    parts = [ORIGIN_IGP, AS_PATH_4] + draw(st.lists(st.sampled_from([MED, COMMUNITIES]), max_size=2, unique=True))
    if draw(st.integers(0, 5)) == 0:
        del parts[draw(st.integers(0, 1))]  # a mandatory attribute missing
    nlri = b""
    shape = draw(st.sampled_from(["ipv4", "ipv4", "mp", "mp", "both", "none"]))
    if shape in ("ipv4", "both"):
        parts.append(NEXT_HOP)
        nlri = draw(PREFIXES_V4)
    if shape in ("mp", "both"):
        afi = draw(st.sampled_from([1, 2, 2, 3]))
        next_hop = draw(st.sampled_from([bytes(4), V6_NEXT_HOP, V6_NEXT_HOP + LINK_LOCAL, b"", bytes(5)]))
        flags = draw(st.sampled_from([0x80, 0x90, 0x90, 0xD0]))
        reach = mp_reach(afi, next_hop, draw(PREFIXES_V6 if afi == 2 else PREFIXES_V4), flags)
        parts.insert(draw(st.integers(0, len(parts))), reach)
    if draw(st.integers(0, 9)) == 0:
        parts.append(bytes([0x80, 15, 3, 0, 2, 1]))
    if draw(st.integers(0, 9)) == 0:
        parts.append(draw(st.sampled_from(parts)))  # a repeated attribute
    parts = draw(st.permutations(parts))
    withdrawn = draw(PREFIXES_V4) if draw(st.integers(0, 5)) == 0 else b""
    raw = bytearray(body(withdrawn, b"".join(parts), nlri))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        if raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    if draw(st.integers(0, 9)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]
    others = [SessionContext(as4=False), SessionContext(as4=True, add_path=frozenset({IPV6_UNICAST}))]
    ctx = draw(st.sampled_from([AS4, AS4, AS4, *others]))
    return bytes(raw), ctx


@settings(max_examples=500, deadline=None)
@given(updates())
def test_fast_path_agrees_with_the_full_decoder(case: tuple[bytes, SessionContext]) -> None:
    raw, ctx = case
    check(raw, ctx)


def test_the_generated_cases_do_reach_the_fast_path():
    # Not vacuous: the unbent form of the commonest shapes is answered by the fast path.
    assert check(body(attrs=ORIGIN_IGP + AS_PATH_4 + COMMUNITIES + NEXT_HOP, nlri=bytes([0, 8, 10])))
    assert check(body(attrs=mp_reach(1, bytes(4), bytes([32, 1, 2, 3, 4]), 0x80) + ORIGIN_IGP + AS_PATH_4))
