"""parsers.capture: pcap / pcapng / gzip reading, several interfaces, timestamps, truncation, errors."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.capture import CaptureError, CaptureFrame, open_capture

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURES = sorted([*(FIXTURES / "bgp").iterdir(), *(FIXTURES / "ospf").iterdir()])

# Link layer named in SOURCES.md -> LINKTYPE_*; anything else there is Ethernet.
LINK_NAMES = {"Cisco HDLC": 104, "Frame Relay": 107, "Linux SLL": 113, "raw IPv4": 101}


def documented() -> dict[str, tuple[int, int]]:
    """file name -> (frame count, link type) from the "link layer / frames" column of SOURCES.md."""
    table = {}
    for line in (FIXTURES / "SOURCES.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not cells[0].startswith("`") or "." not in cells[0]:
            continue
        link = cells[3].replace("**", "")
        count = re.search(r",\s*(\d+)", link)
        if count is None:
            continue
        linktype = next((lt for name, lt in LINK_NAMES.items() if link.startswith(name)), 1)
        table[cells[0].strip("`")] = (int(count.group(1)), linktype)
    return table


DOCUMENTED = documented()


def test_sources_md_covers_every_fixture():
    assert sorted(DOCUMENTED) == sorted(p.name for p in CAPTURES)
    assert len(CAPTURES) == 40


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_fixture_yields_documented_frames(path):
    frames_expected, linktype = DOCUMENTED[path.name]
    with open_capture(path) as capture:
        frames = list(capture)
    assert len(frames) == frames_expected == capture.frames_read
    assert capture.truncated is None
    assert capture.link_types == {linktype}
    assert all(f.linktype == linktype and f.wire_len == len(f.data) > 0 for f in frames)
    assert all(f.timestamp > 1e8 for f in frames)  # all recorded after 1973 (not always in order: bgp-bgpsec)
    assert capture.position == path.stat().st_size


def test_timestamps_and_bytes_match_the_file():
    # bgp-addpath.pcap: one raw-IP record, ts 1504706188.053206, 271 bytes starting with an IPv4 header.
    with open_capture(FIXTURES / "bgp" / "bgp-addpath.pcap") as capture:
        (frame,) = capture
    assert frame == CaptureFrame(frame.timestamp, 101, frame.data, 271)
    assert frame.timestamp == pytest.approx(1504706188.053206, abs=1e-6)
    assert frame.data[:4] == bytes.fromhex("4500010f")
    assert capture.format == "pcap" and not capture.compressed


# --- hand-built files

FRAME_A = bytes(range(60))
FRAME_B = b"\x45" + bytes(39)


def pcap_file(
    records: list[tuple[int, int, bytes, int]],
    *,
    magic: int = 0xA1B2C3D4,
    order: str = "<",
    linktype: int = 1,
) -> bytes:
    """A pcap file: records are (seconds, fraction, data, wire length)."""
    out = struct.pack(
        order + "IHHiIII",
        magic,  # magic: micro 0xa1b2c3d4 / nano 0xa1b23c4d, written in `order`
        2,  # version major
        4,  # version minor
        0,  # thiszone
        0,  # sigfigs
        65535,  # snaplen
        linktype,  # link type
    )
    for sec, frac, data, wire in records:
        out += struct.pack(order + "IIII", sec, frac, len(data), wire) + data  # ts sec, ts frac, caplen, len
    return out


def block(order: str, block_type: int, body: bytes) -> bytes:
    """A pcapng block: type, total length, body padded to 32 bits, total length again."""
    body += bytes(-len(body) % 4)
    length = len(body) + 12
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def shb(order: str) -> bytes:
    # byte-order magic, version 1.0, section length -1 (unknown), no options
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(order: str, linktype: int, tsresol: int | None = None) -> bytes:
    body = struct.pack(order + "HHI", linktype, 0, 0)  # link type, reserved, snaplen 0 (none)
    if tsresol is not None:
        body += struct.pack(order + "HH", 9, 1) + bytes([tsresol, 0, 0, 0])  # if_tsresol, length 1, padded
        body += struct.pack(order + "HH", 0, 0)  # opt_endofopt
    return block(order, 1, body)


def epb(order: str, iface: int, ticks: int, data: bytes, wire: int | None = None) -> bytes:
    # interface id, timestamp high 32 bits, low 32 bits, captured length, original length, data
    head = struct.pack(order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire or len(data))
    return block(order, 6, head + data)


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcap_nanosecond_both_byte_orders(tmp_path, order):
    content = pcap_file([(1700000000, 123456789, FRAME_A, 60)], magic=0xA1B23C4D, order=order)
    with open_capture(write(tmp_path, "nano.bin", content)) as capture:
        (frame,) = capture
    assert frame.timestamp == pytest.approx(1700000000.123456789, abs=1e-6)
    assert frame.data == FRAME_A


def test_pcap_big_endian_microseconds(tmp_path):
    content = pcap_file([(10, 500000, FRAME_A, 60), (11, 1, FRAME_B, 40)], order=">", linktype=101)
    with open_capture(write(tmp_path, "be.pcap", content)) as capture:
        frames = list(capture)
    assert [(f.timestamp, f.linktype, f.data) for f in frames] == [
        (10.5, 101, FRAME_A),
        (11.000001, 101, FRAME_B),
    ]


def test_short_captured_frame_keeps_its_wire_length(tmp_path):
    content = pcap_file([(1, 0, FRAME_A, 1514)])  # 60 bytes kept of a 1514-byte frame
    with open_capture(write(tmp_path, "snap.pcap", content)) as capture:
        (frame,) = capture
    assert (len(frame.data), frame.wire_len) == (60, 1514)


def test_pcapng_several_interfaces_link_types_and_resolutions(tmp_path):
    content = (
        shb("<")
        + idb("<", 1)  # interface 0: Ethernet, microseconds (default)
        + idb("<", 101, tsresol=9)  # interface 1: raw IP, nanoseconds
        + epb("<", 0, 1_700_000_000_250_000, FRAME_A)
        + epb("<", 1, 1_700_000_000_123_456_789, FRAME_B, wire=1500)
        + block("<", 5, bytes(8))  # an Interface Statistics Block: skipped
        + shb(">")  # a new section, big-endian, with its own interface list
        + idb(">", 113)
        + epb(">", 0, 5_000_000, FRAME_A)
    )
    with open_capture(write(tmp_path, "multi.pcapng", content)) as capture:
        frames = list(capture)
    assert capture.format == "pcapng"
    assert [f.linktype for f in frames] == [1, 101, 113]
    assert capture.link_types == {1, 101, 113}
    assert frames[0].timestamp == pytest.approx(1_700_000_000.25, abs=1e-6)
    assert frames[1].timestamp == pytest.approx(1_700_000_000.123456789, abs=1e-6)
    assert frames[2].timestamp == 5.0
    assert (frames[1].data, frames[1].wire_len) == (FRAME_B, 1500)
    assert capture.truncated is None and capture.frames_read == 3


def test_pcapng_packet_for_undeclared_interface_stops_with_a_note(tmp_path):
    content = shb("<") + idb("<", 1) + epb("<", 0, 1, FRAME_A) + epb("<", 3, 2, FRAME_B)
    with open_capture(write(tmp_path, "bad.pcapng", content)) as capture:
        frames = list(capture)
    assert len(frames) == 1
    assert capture.truncated is not None and "after frame 1" in capture.truncated


@pytest.mark.parametrize("name", ["bgp/swisscom_bgp.pcap", "bgp/bgp-enhanced-route-refresh-subtype.pcapng"])
def test_gzip_is_read_transparently(tmp_path, name):
    original = FIXTURES / name
    packed = write(tmp_path, "capture.gz", gzip.compress(original.read_bytes()))
    with open_capture(original) as plain, open_capture(packed) as unpacked:
        assert list(unpacked) == list(plain)
        assert unpacked.compressed and unpacked.format == plain.format
        assert unpacked.position == packed.stat().st_size


def record_ends(path: Path) -> list[int]:
    """Byte offsets where each pcap record ends (little-endian microsecond pcap)."""
    content, pos, ends = path.read_bytes(), 24, []
    while pos < len(content):
        (cap_len,) = struct.unpack_from("<I", content, pos + 8)
        pos += 16 + cap_len
        ends.append(pos)
    return ends


@pytest.mark.parametrize("cut_into", ["data", "header"])
def test_truncated_pcap_yields_complete_frames_then_reports(tmp_path, cut_into):
    original = FIXTURES / "bgp" / "BGP_hard_reset.cap"
    ends = record_ends(original)
    assert len(ends) == 32
    cut = ends[20] + (30 if cut_into == "data" else 7)  # inside record 22's data, or its 16-byte header
    path = write(tmp_path, "cut.pcap", original.read_bytes()[:cut])
    with open_capture(original) as full:
        expected = list(full)[:21]
    with open_capture(path) as capture:
        frames = list(capture)
    assert frames == expected
    assert capture.frames_read == 21
    assert capture.truncated is not None
    assert f"after frame 21 at byte {ends[20]}" in capture.truncated


def test_truncated_pcapng_and_truncated_gzip(tmp_path):
    original = (FIXTURES / "ospf" / "OSPFv2_Capture_FINAL.pcapng").read_bytes()
    cut = write(tmp_path, "cut.pcapng", original[: len(original) - 100])
    with open_capture(cut) as capture:
        frames = list(capture)
    assert 0 < len(frames) < 30 and capture.truncated is not None
    packed = gzip.compress(original)
    cut_gz = write(tmp_path, "cut.pcapng.gz", packed[: len(packed) // 2])
    with open_capture(cut_gz) as capture:
        frames_gz = list(capture)
    assert 0 < len(frames_gz) < 30 and capture.truncated is not None
    # Only the gzip trailer (CRC, size) missing: every frame is there, and the cut is still reported.
    no_trailer = write(tmp_path, "trailer.pcapng.gz", packed[:-4])
    with open_capture(no_trailer) as capture:
        assert len(list(capture)) == 30
    assert capture.truncated is not None and "compressed data cut short after frame 30" in capture.truncated


def test_missing_file(tmp_path):
    with pytest.raises(CaptureError, match=r"nothere\.pcap: no such file"):
        open_capture(tmp_path / "nothere.pcap")


@pytest.mark.parametrize("content", [b"hello, this is text\n", b"", b"\x1f\x8bnot really gzip", b"\xd4\xc3"])
def test_not_a_capture(tmp_path, content):
    path = write(tmp_path, "foo.txt", content)
    with pytest.raises(CaptureError, match=r"foo\.txt: not a pcap or pcapng capture"):
        open_capture(path)


def test_cut_file_header_is_an_error(tmp_path):
    path = write(tmp_path, "head.pcap", (FIXTURES / "bgp" / "BGP_MD5.cap").read_bytes()[:10])
    with pytest.raises(CaptureError, match="file header cut short"):
        open_capture(path)


def test_directory_is_an_error(tmp_path):
    with pytest.raises(CaptureError, match="is a directory"):
        open_capture(tmp_path)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prefix=st.sampled_from([b"", pcap_file([]), pcap_file([], order=">"), shb("<") + idb("<", 1), shb(">")]),
    tail=st.binary(max_size=300),
)
def test_arbitrary_bytes_never_raise_anything_but_capture_error(tmp_path, prefix, tail):
    path = write(tmp_path, "fuzz.bin", prefix + tail)
    try:
        capture = open_capture(path)
    except CaptureError:
        return
    with capture:
        frames = list(capture)
    assert capture.frames_read == len(frames)
    assert all(isinstance(f.data, bytes) and f.wire_len >= len(f.data) for f in frames)
