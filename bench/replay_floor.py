"""The least any Python replay must do, against tshark's time on the same capture in the same run.

For each capture of bench/make_capture.py (generated when absent): a Python process that reads the pcap, takes
each frame's TCP payload (Ethernet, IPv4, TCP, as these captures hold), joins each direction's payloads and splits
them into BGP messages, decoding nothing; then tshark extracting the replay bench's fields. Prints both times, and
what 2× and 10× tshark leave a whole `sniffroute replay` command. Gates nothing.

Usage: python bench/replay_floor.py [--out bench/out] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from make_capture import bench_capture  # the benchmarks' folder: on sys.path as the script's own
from replay_bench import TSHARK_FIELDS

HERE = Path(__file__).resolve().parent

# Run as its own process: start-up counts, as it does for the replay.
SPLIT_ONLY = r"""
import struct, sys
data = open(sys.argv[1], "rb").read()
record = struct.Struct("<IIII").unpack_from
streams = {}
messages = 0
i, end = 24, len(data)
while i + 16 <= end:
    caplen = record(data, i)[2]
    frame = data[i + 16 : i + 16 + caplen]
    i += 16 + caplen
    ip = 14
    tcp = ip + (frame[ip] & 15) * 4
    payload = frame[tcp + (frame[tcp + 12] >> 4) * 4 :]
    if not payload:
        continue
    key = frame[ip + 12 : ip + 20] + frame[tcp : tcp + 4]
    buffer = streams.get(key)
    if buffer is None:
        buffer = streams[key] = bytearray()
    buffer += payload
    at = 0
    while len(buffer) - at >= 19:
        length = (buffer[at + 16] << 8) | buffer[at + 17]
        if len(buffer) - at < length:
            break
        messages += 1
        at += length
    del buffer[:at]
print(messages)
"""


def timed(argv: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tshark = shutil.which("tshark")
    if tshark is None:
        sys.exit("tshark is needed: it is the reference")
    print(f"{'capture':<13}{'split only s':>14}{'tshark s':>10}{'2× budget s':>13}{'10× budget s':>14}")
    for kind in ("dense", "sparse"):
        capture = bench_capture(args.out, kind)
        fields = [arg for field in TSHARK_FIELDS for arg in ("-e", field)]
        tshark_s = timed([tshark, "-n", "-r", str(capture), "-Y", "bgp.type==2", "-T", "fields", *fields], args.repeat)
        floor_s = timed([sys.executable, "-c", SPLIT_ONLY, str(capture)], args.repeat)
        print(f"{capture.name:<13}{floor_s:>14.3f}{tshark_s:>10.3f}{tshark_s / 2:>13.3f}{tshark_s / 10:>14.3f}")


if __name__ == "__main__":
    main()
