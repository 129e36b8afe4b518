"""OSPF decoding: parsers.ospf against scapy's OSPF contrib on the fixture captures. Prints figures; gates nothing.

For every OSPF packet of tests/fixtures/ospf (IP payloads found with parsers.frames): packets/s and LSAs/s for
`parsers.ospf.packet.decode_packet` (checksums verified, records built) and for scapy's `OSPF_Hdr` /
`OSPFv3_Hdr` (a full dissection of every field, no verification), and, per capture, whether each decoder's
LSA counts by type equal tshark's (tests/fixtures/ospf_expected.json).

Usage: python bench/ospf_decode.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from parsers.capture import open_capture  # noqa: E402
from parsers.frames import IpDatagram, IpProto, decode_frame  # noqa: E402
from parsers.ospf.packet import LinkStateUpdate, decode_packet  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"


def payloads() -> dict[str, list[tuple[str, str, bytes]]]:
    found: dict[str, list[tuple[str, str, bytes]]] = {}
    for path in sorted((FIXTURES / "ospf").iterdir()):
        with open_capture(path) as capture:
            for frame in capture:
                datagram = decode_frame(frame.linktype, frame.data)
                if isinstance(datagram, IpDatagram) and datagram.proto == IpProto.OSPF:
                    found.setdefault(path.name, []).append((datagram.src, datagram.dst, datagram.payload))
    return found


def own_lsas(src: str, dst: str, payload: bytes) -> list[str]:
    packet = decode_packet(payload, src=src, dst=dst)
    if not isinstance(packet.body, LinkStateUpdate):
        return []
    return [f"{lsa.header.type:#06x}" if packet.version == 3 else str(lsa.header.type) for lsa in packet.body.lsas]


def scapy_lsas(src: str, dst: str, payload: bytes) -> list[str]:
    from scapy.contrib.ospf import OSPF_Hdr, OSPF_LSUpd, OSPFv3_Hdr, OSPFv3_LSUpd

    if payload[0] == 3:
        packet = OSPFv3_Hdr(payload)
        update = packet.getlayer(OSPFv3_LSUpd)
        return [_scapy_type(lsa, 3) for lsa in update.lsalist] if update is not None else []
    packet = OSPF_Hdr(payload)
    update = packet.getlayer(OSPF_LSUpd)
    return [_scapy_type(lsa, 2) for lsa in update.lsalist] if update is not None else []


def _scapy_type(lsa: object, version: int) -> str:
    kind = getattr(lsa, "type", None) if "type" in getattr(lsa, "fields", {}) else None
    if kind is None:
        return f"undecoded {type(lsa).__name__}"  # scapy fell back to a raw layer
    return f"{kind:#06x}" if version == 3 else str(kind)


def timed(decoder, packets: list[tuple[str, str, bytes]], repeat: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    lsas = 0
    start = time.perf_counter()
    for _ in range(repeat):
        for src, dst, payload in packets:
            lsas += len(decoder(src, dst, payload))
    return time.perf_counter() - start, lsas // repeat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    expected = json.loads((FIXTURES / "ospf_expected.json").read_text())
    captures = payloads()
    everything = [item for items in captures.values() for item in items]
    print(f"{len(everything)} OSPF packets in {len(captures)} captures, x{args.repeat}")
    for name, decoder in (("parsers.ospf", own_lsas), ("scapy contrib", scapy_lsas)):
        seconds, lsas = timed(decoder, everything, args.repeat)
        rate = len(everything) * args.repeat / seconds
        print(f"  {name:14} {rate:10,.0f} packets/s  {lsas * args.repeat / seconds:10,.0f} LSAs/s")
    print("LSA counts by type vs tshark (ospf_expected.json):")
    for name, items in captures.items():
        want = expected[name]["lsas"]
        cells = []
        for label, decoder in (("own", own_lsas), ("scapy", scapy_lsas)):
            try:
                got = dict(Counter(t for src, dst, payload in items for t in decoder(src, dst, payload)))
                cells.append(f"{label} {'ok' if got == want else f'DIFFERS {dict(sorted(got.items()))}'}")
            except Exception as failure:  # noqa: BLE001 - a crash in the library under test is a result here
                cells.append(f"{label} raised {type(failure).__name__}: {failure}")
        print(f"  {name:42} " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
