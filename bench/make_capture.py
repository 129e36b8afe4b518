"""Generate large BGP captures for the replay benchmark, independently of sniffroute's own encoders.

dense:  500,000 IPv4 + 100,000 IPv6 prefixes, 1-50 prefixes per UPDATE, messages packed back to back and cut
        into full-MSS TCP segments (so messages span segments), attribute sets drawn from a large pool.
sparse: 1-10 prefixes per UPDATE and one UPDATE per TCP segment, as a slow peer sends them.

Both start with an OPEN exchange (4-octet AS, multiprotocol IPv4/IPv6) so the decoding context is known, as on
any session recorded from its start. Usage: python bench/make_capture.py dense|sparse OUT.pcap [--seed N]
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
from pathlib import Path

import dpkt

MARKER = b"\xff" * 16
MSS = 1448
SPEAKER = ("192.0.2.2", 40179)
COLLECTOR = ("192.0.2.1", 179)
SPEAKER_AS = 4200000002
COLLECTOR_AS = 64496
MAC_SPEAKER = bytes.fromhex("020000000002")
MAC_COLLECTOR = bytes.fromhex("020000000001")


def message(msg_type: int, body: bytes) -> bytes:
    return MARKER + struct.pack("!HB", 19 + len(body), msg_type) + body


def open_message(asn: int, router_id: bytes) -> bytes:
    caps = b"".join(
        [
            bytes([1, 4]) + struct.pack("!HBB", 1, 0, 1),  # multiprotocol IPv4 unicast
            bytes([1, 4]) + struct.pack("!HBB", 2, 0, 1),  # multiprotocol IPv6 unicast
            bytes([2, 0]),  # route refresh
            bytes([65, 4]) + struct.pack("!I", asn),  # 4-octet AS
        ]
    )
    params = bytes([2, len(caps)]) + caps
    my_as = asn if asn < 65536 else 23456
    return message(1, struct.pack("!BHH4sB", 4, my_as, 90, router_id, len(params)) + params)


def attribute(flags: int, code: int, value: bytes) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def attribute_pool(rng: random.Random, size: int) -> list[bytes]:
    """Distinct attribute blocks without NEXT_HOP (added per family): ORIGIN, AS_PATH, MED, COMMUNITIES, ..."""
    pool = []
    for _ in range(size):
        hops = [SPEAKER_AS] + [
            rng.choice((rng.randint(1, 64495), rng.randint(131072, 4199999999))) for _ in range(rng.randint(0, 7))
        ]
        as_path = bytes([2, len(hops)]) + b"".join(struct.pack("!I", a) for a in hops)
        if rng.random() < 0.05:
            members = [rng.randint(1, 64495) for _ in range(rng.randint(2, 4))]
            as_path += bytes([1, len(members)]) + b"".join(struct.pack("!I", a) for a in members)
        block = attribute(0x40, 1, bytes([rng.choice((0, 0, 0, 2))]))
        block += attribute(0x40, 2, as_path)
        if rng.random() < 0.4:
            block += attribute(0x80, 4, struct.pack("!I", rng.randint(0, 1000)))
        communities = [
            struct.pack("!HH", rng.randint(1, 65535), rng.randint(0, 65535)) for _ in range(rng.randint(0, 5))
        ]
        if communities:
            block += attribute(0xC0, 8, b"".join(communities))
        if rng.random() < 0.1:
            block += attribute(0xC0, 32, struct.pack("!III", SPEAKER_AS, rng.randint(0, 100), rng.randint(0, 100)))
        pool.append(block)
    return pool


def prefixes_v4(rng: random.Random, count: int) -> list[bytes]:
    seen: set[bytes] = set()
    while len(seen) < count:
        bits = rng.choice((24, 24, 24, 23, 22, 20, 19, 16))
        net = rng.randint(0x01000000, 0xDFFFFFFF) >> (32 - bits) << (32 - bits)
        seen.add(bytes([bits]) + net.to_bytes(4, "big")[: (bits + 7) // 8])
    return sorted(seen)


def prefixes_v6(rng: random.Random, count: int) -> list[bytes]:
    seen: set[bytes] = set()
    while len(seen) < count:
        bits = rng.choice((48, 48, 48, 44, 40, 36, 32))
        net = (0x2000 << 112 | rng.getrandbits(125)) >> (128 - bits) << (128 - bits)
        seen.add(bytes([bits]) + net.to_bytes(16, "big")[: (bits + 7) // 8])
    return sorted(seen)


def updates(rng: random.Random, v4: list[bytes], v6: list[bytes], per_update: tuple[int, int], pool: list[bytes]):
    next_hop_v4 = attribute(0x40, 3, bytes([192, 0, 2, 2]))
    next_hop_v6 = bytes.fromhex("20010db8000000000000000000000002")
    lo, hi = per_update
    i = 0
    while i < len(v4):
        n = rng.randint(lo, hi)
        chunk = v4[i : i + n]
        i += n
        body_attrs = rng.choice(pool) + next_hop_v4
        yield message(2, struct.pack("!HH", 0, len(body_attrs)) + body_attrs + b"".join(chunk))
    i = 0
    while i < len(v6):
        n = rng.randint(lo, hi)
        chunk = v6[i : i + n]
        i += n
        reach = struct.pack("!HBB", 2, 1, 16) + next_hop_v6 + b"\0" + b"".join(chunk)
        body_attrs = rng.choice(pool) + attribute(0x80, 14, reach)
        yield message(2, struct.pack("!HH", 0, len(body_attrs)) + body_attrs)


class Writer:
    """Ethernet/IPv4/TCP frames of one connection, both directions, into a pcap."""

    def __init__(self, out) -> None:
        self.pcap = dpkt.pcap.Writer(out, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
        self.seq = {SPEAKER: 1000, COLLECTOR: 5000}
        self.time = 1_700_000_000.0

    def send(self, src: tuple[str, int], payload: bytes, flags: int = 0x18) -> None:
        dst = COLLECTOR if src == SPEAKER else SPEAKER
        tcp = dpkt.tcp.TCP(
            sport=src[1],
            dport=dst[1],
            seq=self.seq[src],
            ack=self.seq[dst],
            flags=flags,
            win=65535,
            data=payload,
        )
        ip = dpkt.ip.IP(
            src=bytes(map(int, src[0].split("."))),
            dst=bytes(map(int, dst[0].split("."))),
            p=6,
            ttl=64,
            data=tcp,
        )
        ip.len = 20 + len(bytes(tcp))
        eth = dpkt.ethernet.Ethernet(
            src=MAC_SPEAKER if src == SPEAKER else MAC_COLLECTOR,
            dst=MAC_COLLECTOR if src == SPEAKER else MAC_SPEAKER,
            type=dpkt.ethernet.ETH_TYPE_IP,
            data=ip,
        )
        self.seq[src] = (self.seq[src] + len(payload) + (1 if flags & 0x03 else 0)) & 0xFFFFFFFF
        self.time += 0.00001
        self.pcap.writepkt(bytes(eth), ts=self.time)


def write_capture(kind: str, path: str, seed: int) -> None:
    rng = random.Random(seed)
    if kind == "dense":
        v4, v6, per_update, pool_size = prefixes_v4(rng, 500_000), prefixes_v6(rng, 100_000), (1, 50), 20_000
    else:
        v4, v6, per_update, pool_size = prefixes_v4(rng, 100_000), prefixes_v6(rng, 20_000), (1, 10), 20_000
    pool = attribute_pool(rng, pool_size)
    with open(path, "wb") as out:
        w = Writer(out)
        w.send(SPEAKER, open_message(SPEAKER_AS, bytes([10, 0, 0, 2])))
        w.send(COLLECTOR, open_message(COLLECTOR_AS, bytes([10, 0, 0, 1])))
        w.send(SPEAKER, message(4, b""))
        w.send(COLLECTOR, message(4, b""))
        pending = bytearray()
        sent = 0
        for update in updates(rng, v4, v6, per_update, pool):
            if kind == "sparse":
                w.send(SPEAKER, update)
                sent += 1
                if sent % 2 == 0:
                    w.send(COLLECTOR, b"", flags=0x10)
                continue
            pending += update
            while len(pending) >= MSS:
                w.send(SPEAKER, bytes(pending[:MSS]))
                del pending[:MSS]
                sent += 1
                if sent % 2 == 0:
                    w.send(COLLECTOR, b"", flags=0x10)
        if pending:
            w.send(SPEAKER, bytes(pending))
        w.send(SPEAKER, message(2, bytes(4)))  # End-of-RIB
    print(f"{path}: {len(v4)} IPv4 + {len(v6)} IPv6 prefixes", file=sys.stderr)


def bench_capture(out: Path, kind: str) -> Path:
    """OUT/KIND.pcap, written first (seed 1) when absent: the capture the benchmarks share."""
    capture = out / f"{kind}.pcap"
    if not capture.exists():
        out.mkdir(parents=True, exist_ok=True)
        write_capture(kind, str(capture), 1)
    return capture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["dense", "sparse"])
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    write_capture(args.kind, args.out, args.seed)


if __name__ == "__main__":
    main()
