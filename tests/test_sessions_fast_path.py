"""sniffroute.sessions: UPDATEs taken by the one-pass decoder leave the RIB and the counters exactly as the full
decoder leaves them, on sessions seen from their OPENs and on sessions picked up mid-way (inferred context)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sniffroute.sessions as sessions_module
from sniffroute.pipeline import Pipeline
from tests.bgp_session import Connection, keepalive, message, open_message, update

V6_NEXT_HOP = bytes.fromhex("20010db8000000000000000000000001")


def v6_update(announce: list[int], as_path: tuple[int, ...], add_path_ids: bool = False) -> bytes:
    nlri = b""
    for n in announce:
        if add_path_ids:
            nlri += struct.pack("!I", 0xFF000000 | n)  # read without path ids, 0xFF is no prefix length
        nlri += bytes([48, 0x20, 0x01, 0x0D, 0xB8, 0, n])
    reach = struct.pack("!HBB", 2, 1, 16) + V6_NEXT_HOP + b"\x00" + nlri
    segment = bytes((2, len(as_path))) + b"".join(struct.pack("!I", a) for a in as_path)
    attrs = b"\x40\x01\x01\x00" + b"\x40\x02" + bytes((len(segment),)) + segment
    attrs += bytes([0x90, 14]) + len(reach).to_bytes(2, "big") + reach
    return message(2, b"\x00\x00" + len(attrs).to_bytes(2, "big") + attrs)


def two_octet_update(announce: list[int], as_path: tuple[int, ...]) -> bytes:
    """An IPv4 announcement as a 2-octet AS speaker sends it (RFC 4271 4.3): only the AS width tells it apart."""
    segment = bytes((2, len(as_path))) + b"".join(struct.pack("!H", a) for a in as_path)
    attrs = b"\x40\x01\x01\x00" + b"\x40\x02" + bytes((len(segment),)) + segment + b"\x40\x03\x04\xc0\x00\x02\x01"
    nlri = b"".join(bytes([16, 10, n]) for n in announce)
    return message(2, b"\x00\x00" + len(attrs).to_bytes(2, "big") + attrs + nlri)


def v6_withdraw(withdraw: list[int]) -> bytes:
    value = struct.pack("!HB", 2, 1) + b"".join(bytes([48, 0x20, 0x01, 0x0D, 0xB8, 0, n]) for n in withdraw)
    attrs = bytes([0x80, 15, len(value)]) + value
    return message(2, b"\x00\x00" + len(attrs).to_bytes(2, "big") + attrs)


MESSAGES = st.one_of(
    st.builds(
        lambda nets, path, gone: update(
            announce=tuple(f"10.{n}.0.0/16" for n in nets), withdraw=tuple(f"10.{n}.0.0/16" for n in gone), as_path=path
        ),
        st.lists(st.integers(0, 20), max_size=4),
        st.sampled_from([(65001,), (65001, 65002), (4200000001, 65003)]),
        st.sampled_from([[], [], [3], [4, 5]]),
    ),
    st.builds(
        v6_update,
        st.lists(st.integers(0, 20), min_size=1, max_size=4),
        st.sampled_from([(65001,), (65002, 65003)]),
        st.sampled_from([False, False, False, True]),
    ),
    st.builds(v6_withdraw, st.lists(st.integers(0, 20), min_size=1, max_size=3)),
    st.builds(two_octet_update, st.lists(st.integers(0, 20), min_size=1, max_size=3), st.just((65001, 65002))),
)


def replay(opens: bool, sent: list[bytes]) -> tuple:
    conn = Connection("192.0.2.2", "192.0.2.1")
    if opens:
        conn.handshake()
        conn.send(True, open_message(4200000002, "10.0.0.2")).send(False, open_message(64496, "10.0.0.1"))
        conn.send(True, keepalive()).send(False, keepalive())
    for raw in sent:
        conn.send(True, raw)
    pipeline = Pipeline()
    for n, segment in enumerate(conn.segments):
        pipeline.feed_segment(segment, float(n))
    pipeline.finish(float(len(conn.segments)))
    pipeline.commit()
    stats = pipeline.sessions.stats
    routes = sorted(
        (family, prefix, source, path.next_hop, path.next_hop_link_local, path.attrs, reason is not None)
        for family, prefix, source, path, reason in pipeline.rib.routes()
    )
    return routes, dict(stats.announced), dict(stats.withdrawn), stats.error_count, dict(stats.actions)


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.lists(MESSAGES, min_size=1, max_size=10))
def test_fast_path_leaves_what_the_full_decoder_leaves(opens: bool, sent: list[bytes]) -> None:
    fast = replay(opens, sent)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sessions_module, "plain_announcement", lambda body, ctx, cache: None)
        assert replay(opens, sent) == fast


def test_a_family_first_seen_in_a_plain_announcement_settles_its_add_path_use():
    # Mid-session: the IPv4 UPDATE settles the AS width; the first IPv6 UPDATE reads without path identifiers, so
    # the session has none for IPv6 and a later IPv6 NLRI that only reads with them is malformed (RFC 7606 5.3).
    sent = [update(announce=("10.1.0.0/16",)), v6_update([1], (65001,)), v6_update([2], (65001,), add_path_ids=True)]
    routes, announced, _withdrawn, errors, actions = replay(False, sent)
    assert errors == 1 and actions == {"session_reset": 1}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sessions_module, "plain_announcement", lambda body, ctx, cache: None)
        assert replay(False, sent) == (routes, announced, _withdrawn, errors, actions)
