"""Benchmark: revocation hash lists -- memory, load time and lookup time.

Usage: ``python bench/revocation.py [--entries 1000000]``.  Prints one JSON object::

    {"entries": ..., "bytes_per_list": ..., "load_s": ..., "hit_us": ..., "miss_us": ...,
     "frozenset_bytes": ...}

``bytes_per_list`` is what a :class:`HashList` keeps (records + prefix index + bitmap);
``frozenset_bytes`` is what the naive alternative (a ``frozenset`` of 16-byte
``bytes``) would take, measured with tracemalloc.  Lookup times are CPU
microseconds per lookup, best of 5 rounds of 20,000.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import tracemalloc

from kiosk.verify.revocation import HASH_LEN, HashList


def _per_lookup_us(hl: HashList, items: list[bytes]) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for item in items:
            _ = item in hl
        best = min(best, time.process_time() - start)
    return best / len(items) * 1e6


def main() -> None:
    """Run the benchmark and print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.entries
    raw = os.urandom(HASH_LEN * n)
    records = sorted(raw[i : i + HASH_LEN] for i in range(0, len(raw), HASH_LEN))
    data = b"".join(records)
    start = time.perf_counter()
    hl = HashList(data)
    load_s = time.perf_counter() - start
    kept = hl.nbytes
    hits = [records[i] for i in range(0, n, max(1, n // 20_000))][:20_000]
    misses = [os.urandom(HASH_LEN) for _ in range(20_000)]
    tracemalloc.start()
    as_set = frozenset(data[i : i + HASH_LEN] for i in range(0, len(data), HASH_LEN))
    set_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del as_set
    print(json.dumps({
        "entries": n,
        "bytes_per_list": kept,
        "load_s": round(load_s, 4),
        "hit_us": round(_per_lookup_us(hl, hits), 3),
        "miss_us": round(_per_lookup_us(hl, misses), 3),
        "frozenset_bytes": set_bytes,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }))


if __name__ == "__main__":
    main()
