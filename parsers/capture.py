"""Capture files in: pcap and pcapng, plain or gzip'ed, read record by record into `CaptureFrame`s.

The format is told by the magic bytes, never by the file name. Both readers are written here over
`struct.unpack_from` on a chunked buffer rather than wrapping `dpkt.pcap.Reader` / `dpkt.pcapng.Reader`
(dpkt 1.9.8), because those drop what we need:

* neither returns the original (wire) length, so snap-length truncation is invisible;
* `pcapng.Reader` takes link type, timestamp resolution and offset from the first Interface Description Block
  only and ignores the EPB interface id: a file with several interfaces (Ethernet + Linux SLL) is misread;
  a second Section Header Block (possibly in the other byte order) is not understood;
* `pcap.Reader` returns `decimal.Decimal` timestamps for nanosecond files, and a record cut by the end of the
  file comes back short (or raises `dpkt.NeedData`) instead of being reported.

A file cut in the middle of a record does not raise: every complete record is yielded, then iteration stops
and `Capture.truncated` says where. The same happens for a record header that cannot be right (a length
beyond any snap length): the rest of the file cannot be framed, so reading stops there with a note.

File formats: pcap (https://www.tcpdump.org/manpages/pcap-savefile.5.html, draft-ietf-opsawg-pcap),
pcapng (draft-ietf-opsawg-pcapng sections 4.1 SHB, 4.2 IDB, 4.3 EPB, 4.4 SPB, appendix A PB).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from types import TracebackType
from typing import BinaryIO, NamedTuple

from parsers.errors import InputError

__all__ = ["Capture", "CaptureError", "CaptureFrame", "open_capture"]

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20  # bytes read at a time: large enough that read() calls vanish from the profile
MAX_RECORD = 1 << 26  # no capture tool writes a 64 MiB record: a larger length means a corrupt header


NOT_A_CAPTURE = "not a pcap or pcapng capture"


class CaptureError(InputError):
    """The file cannot be read as a capture at all (missing, unreadable, not a capture, bad file header)."""


class CaptureFrame(NamedTuple):
    """One captured frame; `wire_len` > `len(data)` when the capture kept only the first bytes (snaplen). A
    NamedTuple: one is made per frame, at a third of the cost of a frozen dataclass."""

    timestamp: float  # seconds since the epoch, as recorded
    linktype: int  # LINKTYPE_* value (https://www.tcpdump.org/linktypes.html) of the interface it came from
    data: bytes
    wire_len: int


# --- pcap


class PcapMagic(IntEnum):
    """pcap file header magic as read big-endian; the swapped forms mean the other byte order."""

    MICRO = 0xA1B2C3D4  # timestamps in microseconds
    NANO = 0xA1B23C4D  # timestamps in nanoseconds
    KUZNETZOV = 0xA1B2CD34  # Alexey Kuznetzov's patched libpcap: 8 more bytes per record header


# magic as it appears in the first 4 bytes -> (struct byte order, ticks per second, record header length)
_PCAP_MAGICS: dict[bytes, tuple[str, int, int]] = {}
for _magic, _ticks, _hdr in (
    (PcapMagic.MICRO, 1_000_000, 16),
    (PcapMagic.NANO, 1_000_000_000, 16),
    (PcapMagic.KUZNETZOV, 1_000_000, 24),
):
    _PCAP_MAGICS[_magic.to_bytes(4, "big")] = (">", _ticks, _hdr)
    _PCAP_MAGICS[_magic.to_bytes(4, "little")] = ("<", _ticks, _hdr)

PCAP_FILE_HEADER = 24  # magic, version major/minor, thiszone, sigfigs, snaplen, linktype
PCAP_LINKTYPE_MASK = 0x0FFFFFFF  # the top bits of the link type field carry FCS information


# --- pcapng


class BlockType(IntEnum):
    """pcapng block types (draft-ietf-opsawg-pcapng section 11.1)."""

    SHB = 0x0A0D0D0A  # Section Header Block (a palindrome: readable before the byte order is known)
    IDB = 0x00000001  # Interface Description Block
    PB = 0x00000002  # Packet Block (obsolete, appendix A)
    SPB = 0x00000003  # Simple Packet Block
    EPB = 0x00000006  # Enhanced Packet Block


class IdbOption(IntEnum):
    """IDB option codes used for timestamps (draft-ietf-opsawg-pcapng section 4.2)."""

    END = 0
    TSRESOL = 9  # u8: MSB 0 -> 10^-n s, MSB 1 -> 2^-n s; default 10^-6
    TSOFFSET = 14  # s64: seconds added to every timestamp


SHB_MAGIC = struct.pack(">I", BlockType.SHB)
BYTE_ORDER_MAGIC = 0x1A2B3C4D
PCAPNG_MIN_BLOCK = 12  # type, length, trailing length


@dataclass(frozen=True, slots=True)
class _Interface:
    linktype: int
    ticks: int  # timestamp units per second
    offset: int  # seconds
    snaplen: int


Interfaces = list[_Interface]  # per section, indexed by interface id
Frames = Iterator[CaptureFrame]


class Capture:
    """An open capture: iterate for `CaptureFrame`s; use as a context manager to close the file.

    After (or during) iteration: `frames_read`, `link_types` (every link type seen, including interfaces
    declared by a pcapng file), `truncated` (None, or where and why reading stopped early), `position`
    (bytes consumed from the file on disk, compressed bytes for gzip: for progress bars).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.name = os.path.basename(self.path)
        self.frames_read = 0
        self.truncated: str | None = None
        self.link_types: set[int] = set()
        self.compressed = False
        self._read_failure = ""  # why the compressed stream stopped early, if it did
        try:
            self._raw: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close()/__exit__
        except FileNotFoundError:
            raise CaptureError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise CaptureError(f"{self.path}: is a directory, not a capture") from None
        except OSError as exc:
            raise CaptureError(f"{self.path}: cannot open: {exc.strerror or exc}") from None
        try:
            self._file: BinaryIO = self._raw
            head = self._raw.read(4)
            if head[:2] == GZIP_MAGIC:
                self.compressed = True
                self._raw.seek(0)
                import gzip  # here: most captures are not compressed

                self._file = gzip.GzipFile(fileobj=self._raw, mode="rb")  # type: ignore[assignment]
                head = self._read_head()
            # read1 for gzip: a stream cut short then still gives every byte before the cut, where
            # read(n) would raise and drop the bytes it had decompressed.
            self._read = self._file.read1 if self.compressed else self._file.read  # type: ignore[attr-defined]
            self._buf = head
            self._pos = 0  # read position within _buf
            self._consumed = 0  # bytes of the (decompressed) stream before _buf[0]
            if head in _PCAP_MAGICS:
                self.format = "pcap"
                self._records = self._pcap_records(head)
            elif head == SHB_MAGIC:
                self.format = "pcapng"
                self._check_section_header()
                self._records = self._pcapng_records()
            else:
                raise CaptureError(f"{self.path}: {NOT_A_CAPTURE}")
        except CaptureError:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise CaptureError(f"{self.path}: cannot read: {exc}") from None
        self._started = False

    def _read_head(self) -> bytes:
        try:
            return self._file.read(4)
        except (OSError, EOFError, zlib.error) as exc:
            raise CaptureError(f"{self.path}: {NOT_A_CAPTURE} (bad gzip data: {exc})") from None

    # --- buffer ---------------------------------------------------------------------------------------------

    def _fill(self, need: int) -> bool:
        """Make `need` bytes available at `_pos`; False at end of input (or unreadable compressed data)."""
        buf = self._buf
        pos = self._pos
        if pos + need <= len(buf):
            return True
        rest = buf[pos:]
        self._consumed += pos
        want = need - len(rest)
        parts = [rest]
        while want > 0:
            try:
                chunk = self._read(max(CHUNK, want))
            except (EOFError, zlib.error, OSError) as exc:
                self._read_failure = str(exc)
                chunk = b""
            if not chunk:
                self._buf = b"".join(parts)
                self._pos = 0
                return False
            parts.append(chunk)
            want -= len(chunk)
        self._buf = b"".join(parts)
        self._pos = 0
        return True

    def _offset(self) -> int:
        return self._consumed + self._pos

    def _stop(self, what: str) -> None:
        text = f"{what} after frame {self.frames_read} at byte {self._offset()}"
        if self._read_failure:
            text += f" ({self._read_failure})"
        self.truncated = text

    # --- pcap -----------------------------------------------------------------------------------------------

    def _pcap_records(self, magic: bytes) -> Iterator[CaptureFrame]:
        # Not a generator itself: the file header is checked when the capture is opened.
        order, ticks, hdr_len = _PCAP_MAGICS[magic]
        if not self._fill(PCAP_FILE_HEADER):
            raise CaptureError(f"{self.path}: pcap file header cut short ({len(self._buf)} of 24 bytes)")
        _snaplen, linkfield = struct.unpack_from(order + "II", self._buf, 16)
        linktype = linkfield & PCAP_LINKTYPE_MASK
        self.link_types.add(linktype)
        self._pos = PCAP_FILE_HEADER
        return self._pcap_loop(struct.Struct(order + "IIII"), ticks, hdr_len, linktype)

    def _pcap_loop(self, record: struct.Struct, ticks: int, hdr_len: int, linktype: int) -> Frames:
        unpack_from = record.unpack_from
        frame = CaptureFrame
        new = tuple.__new__
        scale = 1.0 / ticks
        buf = self._buf
        pos = self._pos
        end = len(buf)
        count = self.frames_read
        try:
            while True:
                if pos + hdr_len > end:
                    self._pos = pos
                    filled = self._fill(hdr_len)
                    buf, pos, end = self._buf, 0, len(self._buf)
                    if not filled:
                        if end:
                            self._stop("truncated in a record header")
                        elif self._read_failure:
                            self._stop("compressed data cut short")
                        return
                sec, frac, cap_len, wire_len = unpack_from(buf, pos)
                if cap_len > MAX_RECORD:
                    self._pos = pos  # the finally clause would too, but _stop reads it first
                    self._stop(f"bad record header (captured length {cap_len})")
                    return
                start = pos + hdr_len
                stop = start + cap_len
                if stop > end:
                    self._pos = pos
                    filled = self._fill(hdr_len + cap_len)
                    buf, pos, end = self._buf, 0, len(self._buf)
                    if not filled:
                        self._stop("truncated")
                        return
                    start = hdr_len
                    stop = start + cap_len
                pos = stop
                count += 1
                self.frames_read = count
                # CaptureFrame(...) without its generated __new__: one per frame.
                yield new(frame, (sec + frac * scale, linktype, buf[start:stop], max(wire_len, cap_len)))
        finally:
            self._pos = pos

    # --- pcapng ---------------------------------------------------------------------------------------------

    def _check_section_header(self) -> None:
        # The first block must be a whole Section Header Block; checked at open so a bad file fails there.
        if not self._fill(12):
            raise CaptureError(f"{self.path}: pcapng section header cut short")
        (bom,) = struct.unpack_from("<I", self._buf, 8)
        order = "<" if bom == BYTE_ORDER_MAGIC else ">"
        (bom,) = struct.unpack_from(order + "I", self._buf, 8)
        (length,) = struct.unpack_from(order + "I", self._buf, 4)
        if bom != BYTE_ORDER_MAGIC or length < PCAPNG_MIN_BLOCK or length % 4 or length > MAX_RECORD:
            raise CaptureError(f"{self.path}: {NOT_A_CAPTURE} (bad pcapng section header)")
        if not self._fill(length):
            raise CaptureError(f"{self.path}: pcapng section header cut short")

    def _pcapng_records(self) -> Iterator[CaptureFrame]:
        order = "<"
        interfaces: list[_Interface] = []
        first = True
        while True:
            if not self._fill(8):
                if len(self._buf):
                    self._stop("truncated in a block header")
                elif self._read_failure:
                    self._stop("compressed data cut short")
                return
            block_type, block_len = struct.unpack_from(order + "II", self._buf, self._pos)
            if block_type == BlockType.SHB:
                # The byte-order magic follows the length; it decides how this section (and its length) reads.
                if not self._fill(12):
                    if first:
                        raise CaptureError(f"{self.path}: pcapng section header cut short")
                    self._stop("truncated in a section header")
                    return
                bom = self._buf[self._pos + 8 : self._pos + 12]
                if struct.unpack("<I", bom)[0] == BYTE_ORDER_MAGIC:
                    order = "<"
                elif struct.unpack(">I", bom)[0] == BYTE_ORDER_MAGIC:
                    order = ">"
                else:
                    if first:
                        raise CaptureError(f"{self.path}: {NOT_A_CAPTURE} (bad byte-order magic)")
                    self._stop("bad section header")
                    return
                block_len = struct.unpack_from(order + "I", self._buf, self._pos + 4)[0]
                interfaces = []  # interface ids are numbered per section
            if block_len < PCAPNG_MIN_BLOCK or block_len % 4 or block_len > MAX_RECORD:
                if first:
                    raise CaptureError(f"{self.path}: {NOT_A_CAPTURE} (bad block length {block_len})")
                self._stop(f"bad block length {block_len}")
                return
            if not self._fill(block_len):
                if first:
                    raise CaptureError(f"{self.path}: pcapng section header cut short")
                self._stop("truncated")
                return
            first = False
            buf, start = self._buf, self._pos
            body, body_end = start + 8, start + block_len - 4
            frame: CaptureFrame | None = None
            if block_type == BlockType.EPB:
                frame = self._epb(order, buf, body, body_end, interfaces)
            elif block_type == BlockType.IDB:
                iface = _parse_idb(order, buf, body, body_end)
                if iface is not None:
                    interfaces.append(iface)
                    self.link_types.add(iface.linktype)
            elif block_type == BlockType.SPB:
                frame = self._spb(order, buf, body, body_end, interfaces)
            elif block_type == BlockType.PB:
                frame = self._pb(order, buf, body, body_end, interfaces)
            self._pos = start + block_len
            if frame is not None:
                self.frames_read += 1
                yield frame
            elif block_type in (BlockType.EPB, BlockType.SPB, BlockType.PB):
                self._pos = start
                self._stop(f"bad packet block (unknown interface or bad lengths, type {block_type})")
                return

    @staticmethod
    def _epb(order: str, buf: bytes, body: int, body_end: int, ifaces: Interfaces) -> CaptureFrame | None:
        if body + 20 > body_end:
            return None
        iface_id, ts_high, ts_low, cap_len, wire_len = struct.unpack_from(order + "IIIII", buf, body)
        data_start = body + 20
        if iface_id >= len(ifaces) or data_start + cap_len > body_end:
            return None
        iface = ifaces[iface_id]
        ts = _timestamp((ts_high << 32) | ts_low, iface)
        data = buf[data_start : data_start + cap_len]
        return CaptureFrame(ts, iface.linktype, data, max(wire_len, cap_len))

    @staticmethod
    def _pb(order: str, buf: bytes, body: int, body_end: int, ifaces: Interfaces) -> CaptureFrame | None:
        if body + 20 > body_end:
            return None
        iface_id, _drops, ts_high, ts_low, cap_len, wire_len = struct.unpack_from(order + "HHIIII", buf, body)
        data_start = body + 20
        if iface_id >= len(ifaces) or data_start + cap_len > body_end:
            return None
        iface = ifaces[iface_id]
        ts = _timestamp((ts_high << 32) | ts_low, iface)
        data = buf[data_start : data_start + cap_len]
        return CaptureFrame(ts, iface.linktype, data, max(wire_len, cap_len))

    @staticmethod
    def _spb(order: str, buf: bytes, body: int, body_end: int, ifaces: Interfaces) -> CaptureFrame | None:
        # No timestamp and no captured length: the data is the block body (less padding), at most snaplen.
        if body + 4 > body_end or not ifaces:
            return None
        (wire_len,) = struct.unpack_from(order + "I", buf, body)
        iface = ifaces[0]
        cap_len = min(wire_len, body_end - body - 4)
        if iface.snaplen:
            cap_len = min(cap_len, iface.snaplen)
        return CaptureFrame(0.0, iface.linktype, buf[body + 4 : body + 4 + cap_len], max(wire_len, cap_len))

    # --- the public side ------------------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """Bytes consumed from the file on disk (compressed bytes for gzip); for progress reporting."""
        if self.compressed:
            try:
                return self._raw.tell()
            except (OSError, ValueError):
                return 0
        return self._offset()

    def __iter__(self) -> Iterator[CaptureFrame]:
        if self._started:
            raise RuntimeError(f"{self.path}: a capture can be iterated only once")
        self._started = True
        return self._records

    def close(self) -> None:
        if self._file is not self._raw:
            self._file.close()
        self._raw.close()

    def __enter__(self) -> Capture:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _parse_idb(order: str, buf: bytes, body: int, body_end: int) -> _Interface | None:
    if body + 8 > body_end:
        return None
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", buf, body)
    ticks, offset = 1_000_000, 0
    pos = body + 8
    while pos + 4 <= body_end:
        code, length = struct.unpack_from(order + "HH", buf, pos)
        value = buf[pos + 4 : pos + 4 + length]
        if code == IdbOption.END or len(value) < length:
            break
        if code == IdbOption.TSRESOL and length >= 1:
            exponent = value[0] & 0x7F
            ticks = (2 if value[0] & 0x80 else 10) ** min(exponent, 63)
        elif code == IdbOption.TSOFFSET and length >= 8:
            (offset,) = struct.unpack_from(order + "q", value)
        pos += 4 + ((length + 3) & ~3)
    return _Interface(linktype, ticks, offset, snaplen)


def _timestamp(ticks: int, iface: _Interface) -> float:
    # Split before dividing so nanosecond timestamps keep their precision in the float.
    seconds, fraction = divmod(ticks, iface.ticks)
    return iface.offset + seconds + fraction / iface.ticks


def open_capture(path: str | os.PathLike[str]) -> Capture:
    """Open a pcap or pcapng file, gzip'ed or not; raises `CaptureError` when it is not a readable capture."""
    return Capture(path)
