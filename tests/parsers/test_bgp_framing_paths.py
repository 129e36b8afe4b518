"""parsers.bgp.messages.MessageReader: bytes that arrive while nothing is held are framed where they lie; the
messages, offsets and skips must be those of the buffered path (taken for bytearray/memoryview input)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from parsers.bgp.constants import MARKER
from parsers.bgp.messages import MessageReader


def message(msg_type: int, body: bytes) -> bytes:
    return MARKER + (19 + len(body)).to_bytes(2, "big") + bytes([msg_type]) + body


PIECES = st.one_of(
    st.binary(max_size=40).map(lambda body: message(2, body)),
    st.just(message(4, b"")),
    st.binary(min_size=1, max_size=30),  # garbage: the reader hunts for the next marker
    st.just(MARKER + b"\x00\x05\x02"),  # a bad length
)


def run(chunks: list[bytes], wrap, stop_after: int | None = None) -> list[tuple]:
    reader = MessageReader(max_len=4096)
    seen: list[tuple] = []
    for n, chunk in enumerate(chunks):
        feed = reader.feed(wrap(chunk))
        for k, item in enumerate(feed):
            seen.append((type(item).__name__, *item) if isinstance(item, tuple) else (item.offset, item.length))
            if stop_after is not None and n == stop_after and k == 0:
                break  # the caller stops reading half-way: what it did not take must come back
        del feed
    gap = reader.gap(0)
    seen.append(("pending", reader.pending, None if gap is None else (gap.offset, gap.length)))
    return seen


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=12), st.lists(st.integers(0, 400), max_size=8), st.none() | st.integers(0, 8))
def test_bytes_are_framed_as_the_buffered_path_frames_them(pieces, cuts, stop_after):
    stream = b"".join(pieces)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    chunks = [stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    reference = run(chunks, bytearray, stop_after)
    assert run(chunks, bytes, stop_after) == reference
    assert run(chunks, memoryview, stop_after) == reference


def test_one_message_per_chunk_is_cut_from_the_chunk():
    reader = MessageReader()
    first = message(2, b"\x00\x00\x00\x00")
    [raw] = list(reader.feed(first))
    assert (raw.type, raw.body, raw.offset) == (2, b"\x00\x00\x00\x00", 0)
    [raw] = list(reader.feed(first + first[:5]))
    assert raw.offset == len(first) and reader.pending == 5
    [raw] = list(reader.feed(first[5:]))
    assert raw.offset == 2 * len(first) and reader.pending == 0
