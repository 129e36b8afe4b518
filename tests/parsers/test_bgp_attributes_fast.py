"""parsers.bgp.attributes: the one-pass decoder of common attribute blocks (`_common_attributes`) gives what the
table-driven decoder (`decode_attributes` + the view built from it) gives, and steps aside for anything else; and
an error-free block read back from its decoded attributes is the block itself (what sniffroute.rib_store relies on
when it stores a block as decoded instead of encoding it again).

The reference is the general decoder, checked on its own in test_bgp_attributes. Blocks are built from well-formed
attributes of every code the fast path takes and of some it does not, then bent: flags, lengths, repeats, values
out of range, truncation and random bytes.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.bgp import attributes
from parsers.bgp.attributes import encode_attributes, path_attributes
from parsers.bgp.context import SessionContext
from sniffroute.rib_store import attributes_wire


def attr(flags: int, code: int, value: bytes) -> bytes:
    if flags & 0x10 or len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def general(block: bytes, as4: bool) -> attributes.PathAttributes:
    """The table-driven path alone (the fast path switched off)."""
    saved = attributes._common_attributes
    attributes._common_attributes = lambda *_: None  # type: ignore[assignment]
    try:
        return path_attributes(block, SessionContext(as4=as4))
    finally:
        attributes._common_attributes = saved


AS_PATH_4 = bytes([2, 3]) + struct.pack("!III", 4200000001, 64500, 131072)
AS_PATH_2 = bytes([2, 2]) + struct.pack("!HH", 64500, 64501) + bytes([1, 2]) + struct.pack("!HH", 1, 2)
PARTS = [
    attr(0x40, 1, b"\x00"),  # ORIGIN
    attr(0x40, 1, b"\x02"),
    attr(0x40, 2, AS_PATH_4),  # AS_PATH (reads as 4-octet, or as something else with 2-octet ASes)
    attr(0x40, 2, AS_PATH_2),
    attr(0x50, 2, b""),  # empty, extended length
    attr(0x40, 3, bytes([192, 0, 2, 1])),  # NEXT_HOP
    attr(0x80, 4, struct.pack("!I", 7)),  # MULTI_EXIT_DISC
    attr(0x40, 5, struct.pack("!I", 100)),  # LOCAL_PREF
    attr(0x40, 6, b""),  # ATOMIC_AGGREGATE
    attr(0xC0, 7, struct.pack("!I4s", 4200000001, bytes([10, 0, 0, 1]))),  # AGGREGATOR, 4-octet
    attr(0xC0, 7, struct.pack("!H4s", 64500, bytes([10, 0, 0, 1]))),  # AGGREGATOR, 2-octet
    attr(0xC0, 8, struct.pack("!II", 0xFDE80001, 0xFFFFFF01)),  # COMMUNITIES
    attr(0xE0, 8, struct.pack("!70I", *range(70))),  # partial bit, more than the precompiled layouts
    attr(0xC0, 16, bytes(range(16))),  # EXTENDED_COMMUNITIES
    attr(0xC0, 32, struct.pack("!6I", 4200000001, 1, 2, 64500, 3, 4)),  # LARGE_COMMUNITIES
    attr(0x80, 9, bytes([10, 0, 0, 9])),  # ORIGINATOR_ID: the general decoder's
    attr(0xC0, 17, bytes([2, 1]) + struct.pack("!I", 4200000001)),  # AS4_PATH: merged on 2-octet sessions
    attr(0xC0, 99, b"unknown"),  # unknown optional transitive
    attr(0x00, 1, b"\x00"),  # ORIGIN with the wrong flags
    attr(0x40, 1, b"\x07"),  # ORIGIN undefined
    attr(0x80, 4, b"\x00\x07"),  # MED of the wrong length
    attr(0xC0, 8, b"\x00\x01\x02"),  # COMMUNITIES not a multiple of 4
    attr(0x40, 2, bytes([9, 1, 0, 1])),  # AS_PATH segment type undefined
    attr(0x90, 14, b"\x00\x02\x01\x00\x00"),  # MP_REACH_NLRI
]


@pytest.mark.parametrize("as4", [True, False])
@pytest.mark.parametrize("index", range(len(PARTS)))
def test_each_attribute_alone_and_after_a_common_pair(index: int, as4: bool) -> None:
    for block in (PARTS[index], PARTS[0] + PARTS[2] + PARTS[index]):
        assert path_attributes(block, SessionContext(as4=as4)) == general(block, as4)


def test_a_table_block_takes_the_fast_path() -> None:
    block = PARTS[0] + PARTS[2] + PARTS[5] + PARTS[6] + PARTS[11] + PARTS[14]
    fast = attributes._common_attributes(block, True)
    assert fast is not None and fast == general(block, True)
    assert fast.communities == (0xFDE80001, 0xFFFFFF01) and fast.as_path[0].asns == (4200000001, 64500, 131072)


def test_anything_else_is_left_to_the_general_decoder() -> None:
    for block in (PARTS[0] + PARTS[0], PARTS[15], PARTS[16], PARTS[17], PARTS[18], PARTS[23], PARTS[0][:-1]):
        assert attributes._common_attributes(block, True) is None


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(PARTS), min_size=0, max_size=6),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
    st.integers(0, 10_000),
    st.booleans(),
)
def test_bent_blocks_decode_the_same_both_ways(
    parts: list[bytes], changes: list[tuple[int, int]], cut: int, as4: bool
) -> None:
    block = bytearray(b"".join(parts))
    for at, value in changes:
        if block:
            block[at % len(block)] = value
    if cut % 5 == 0 and block:
        del block[cut % len(block) :]
    raw = bytes(block)
    decoded = path_attributes(raw, SessionContext(as4=as4))
    assert decoded == general(raw, as4)
    # An error-free block stored as decoded is the block the attributes encode to (sniffroute.rib_store).
    assert attributes_wire(decoded, (raw, as4)) == attributes_wire(decoded)
    if not decoded.errors:
        assert encode_attributes(decoded.attributes, SessionContext(as4=as4)) == raw
