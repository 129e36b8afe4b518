"""Store saves as the live controller makes them: a full table written whole, against saves of what changed.

Replays the dense capture of bench/make_capture.py (600,000 prefixes; generated when absent) into a RIB that
notes its changes, as the live engine's does, and writes it whole to a fresh store. Then, for each churn size, a
number of rounds: that many UPDATEs (1-5 random prefixes of the table each, a new path) are announced and
committed, and the store saves what changed (`Store.save(..., changed=Rib.take_changed_prefixes())`). Prints each
size's save times (fastest and median) against the whole save measured in the same run; gates nothing.

Usage: python bench/store_save_bench.py [--out bench/out] [--rounds 7]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from make_capture import bench_capture  # noqa: E402

from parsers.bgp.constants import IPV4_UNICAST  # noqa: E402
from parsers.capture import open_capture  # noqa: E402
from sniffroute.pipeline import Pipeline  # noqa: E402
from sniffroute.rib import Path as RibPath  # noqa: E402
from sniffroute.rib import Rib  # noqa: E402
from sniffroute.store import Store  # noqa: E402

CHURN = (1, 10, 100, 1000)  # UPDATEs between two saves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    capture = bench_capture(args.out, "dense")
    gc.disable()  # as during a replay: the collector would walk the growing table again and again
    pipeline = Pipeline(Rib())
    with open_capture(capture) as frames:
        for frame in frames:
            pipeline.feed_frame(frame.linktype, frame.data, frame.timestamp, frame.wire_len)
    pipeline.finish(0.0)
    rib = pipeline.rib
    rib.commit()
    routes = rib.count()
    rng = random.Random(1)
    keys = list(rib.tables[IPV4_UNICAST])
    template = next(iter(rib.tables[IPV4_UNICAST].values()))
    with tempfile.TemporaryDirectory() as scratch, Store(Path(scratch) / "live.sqlite") as store:
        start = time.perf_counter()
        store.save(rib, changed=rib.take_changed_prefixes())
        whole = time.perf_counter() - start
        print(f"{routes:,} routes; whole save {whole * 1000:.0f} ms")
        print(f"{'UPDATEs/save':>13}{'routes written':>16}{'fastest ms':>12}{'median ms':>11}{'× faster':>10}")
        for updates in CHURN:
            times, written = [], []
            for round_ in range(args.rounds):
                for _ in range(updates):
                    chosen = rng.sample(keys, rng.randint(1, 5))
                    path = RibPath(template.peer, template.attrs, template.next_hop, None, float(round_), 0)
                    rib.announce(IPV4_UNICAST, chosen, None, path)
                rib.commit()
                start = time.perf_counter()
                written.append(store.save(rib, changed=rib.take_changed_prefixes()))
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            print(
                f"{updates:>13}{statistics.median(written):>16,.0f}{min(times) * 1000:>12.1f}{median * 1000:>11.1f}"
                f"{whole / median:>10.0f}"
            )


if __name__ == "__main__":
    main()
