"""Benchmark: NIK status-list lookups at 100 million entries, through mmap.

Usage: ``python bench/niklist.py [--entries 100000000] [--dir /tmp] [--lookups 10000]``.
Prints one JSON object. Nothing is left behind: the data file (8 bytes per
entry, 800 MB at 100 M) is written under ``--dir`` (never the repository) and
deleted at the end, even on error.

Method:

- Entries are random 8-byte keys generated directly (numpy, in a child process
  so the lookup process never holds them): scrypt output is uniform, so this
  is the same distribution as a real list without 100 M scrypt calls. The KDF
  is therefore excluded from the lookup figures and measured separately with
  the production parameters (``kdf_ms_per_lookup``).
- The file is fsynced and evicted from the page cache (posix_fadvise
  DONTNEED) before the lookups, so the first pass faults its pages in
  ("first_touch"); a second pass over the same keys is "warm".
- Memory: VmRSS, RssAnon and RssFile from /proc/self/status before opening the
  list and after both passes. mmap'd file pages show up in RssFile: page cache
  that the kernel can drop under pressure, not process heap (RssAnon).
- Baselines in the same run: Python ``bisect`` over an in-memory sorted list of
  ``--baseline-entries`` keys (speed, and the RAM it needs per entry), and a
  raw single-entry mmap read (the floor for any on-disk search).
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import multiprocessing
import os
import platform
import random
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from kiosk.nik import listfile
from kiosk.nik.kdf import DEFAULT_KDF, derive_entry
from kiosk.nik.listfile import Manifest, StatusList

WIDTH = 8
RELEASE_DEFAULT = listfile.RELEASE_EVERY


def _generate(path: str, members_path: str, count: int, seed: int) -> None:
    """Child process: sorted unique random keys to ``path``, a sample of them to members."""
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(0, 2**64 - 1, size=count, dtype=np.uint64, endpoint=True))
    keys.astype(">u8").tofile(path)
    # The block index install derives: first entry of every 4 KiB block.
    keys[:: listfile.block_entries(WIDTH)].astype(">u8").tofile(path + ".index")
    sample = rng.choice(keys, size=min(20_000, keys.size), replace=False)
    sample.astype(">u8").tofile(members_path)


def _memory() -> dict[str, int]:
    """VmRSS / RssAnon / RssFile of this process in kB (Linux)."""
    wanted = ("VmRSS", "RssAnon", "RssFile")
    values: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in wanted:
                values[name] = int(rest.split()[0])
    return values


def _evict(path: Path) -> None:
    """Write back and drop ``path``'s pages from the page cache (no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    return {
        "p50_us": round(ordered[len(ordered) // 2] / 1000, 2),
        "p99_us": round(ordered[int(len(ordered) * 0.99)] / 1000, 2),
        "max_us": round(ordered[-1] / 1000, 2),
    }


def _time_each(check: object, probes: list[bytes]) -> tuple[list[int], int]:
    contains = check.__contains__  # type: ignore[attr-defined]
    samples, hits = [], 0
    for probe in probes:
        start = time.perf_counter_ns()
        found = contains(probe)
        samples.append(time.perf_counter_ns() - start)
        hits += found
    return samples, hits


def run(args: argparse.Namespace) -> dict[str, object]:
    folder = Path(args.dir)
    need = args.entries * WIDTH * 1.05 + 50e6
    free = shutil.disk_usage(folder).free
    if free < need:
        raise SystemExit(f"{folder}: {free / 1e9:.1f} GB free, need {need / 1e9:.1f} GB")
    data = folder / f"niklist-bench-{os.getpid()}.data"
    members_file = folder / f"niklist-bench-{os.getpid()}.members"
    try:
        start = time.perf_counter()
        child = multiprocessing.get_context("fork").Process(
            target=_generate, args=(str(data), str(members_file), args.entries, args.seed)
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"generator failed with exit code {child.exitcode}")
        generate_s = time.perf_counter() - start
        size = data.stat().st_size
        count = size // WIDTH
        members_raw = members_file.read_bytes()
        members = [members_raw[i : i + WIDTH] for i in range(0, len(members_raw), WIDTH)]
        rng = random.Random(args.seed)
        half = args.lookups // 2
        probes = rng.sample(members, min(half, len(members)))
        probes += [rng.randbytes(WIDTH) for _ in range(args.lookups - len(probes))]
        rng.shuffle(probes)

        now = datetime.now(UTC)
        manifest = Manifest(
            1, b"\0" * 16, DEFAULT_KDF, WIDTH, count, now, now + timedelta(days=1), b"\0" * 32
        )
        modes: dict[str, dict[str, object]] = {}
        for mode in ("block_index", "interpolation_only"):
            _evict(data)
            before = _memory()
            index = Path(str(data) + ".index").read_bytes() if mode == "block_index" else None
            with StatusList(manifest, data, index=index) as status:
                first, hits = _time_each(status, probes)
                warm, hits_again = _time_each(status, probes)
                after = _memory()
            assert hits == hits_again and hits >= len(probes) // 2
            modes[mode] = {
                "first_touch": _percentiles(first),
                "warm": _percentiles(warm),
                "rss_growth_kb": {k: after[k] - before[k] for k in before},
                "found": hits,
            }
        production = modes["block_index"]

        with StatusList(manifest, data) as status:
            # Floor: one raw 8-byte read at a random entry of the mapping (warm pages).
            mm = status._mm
            assert mm is not None
            raw = []
            for probe in probes[:2000]:
                at = (int.from_bytes(probe, "big") * count >> 64) * WIDTH
                t0 = time.perf_counter_ns()
                mm[at : at + WIDTH]
                raw.append(time.perf_counter_ns() - t0)
        # Same lookups with the periodic MADV_DONTNEED switched off: what the
        # mapping alone would add to the RSS (pages are in the page cache now).
        listfile.RELEASE_EVERY = 10**12
        unreleased_before = _memory()
        with StatusList(manifest, data) as status:
            _time_each(status, probes)
            unreleased_after = _memory()
        listfile.RELEASE_EVERY = RELEASE_DEFAULT

        # Install-time verification cost: SHA-256 of the whole file from disk.
        _evict(data)
        start = time.perf_counter()
        digest = hashlib.sha256()
        with data.open("rb") as file:
            while chunk := file.read(4 * 1024 * 1024):
                digest.update(chunk)
        sha256_s = time.perf_counter() - start
    finally:
        data.unlink(missing_ok=True)
        Path(str(data) + ".index").unlink(missing_ok=True)
        members_file.unlink(missing_ok=True)

    # Baseline: bisect over an in-memory Python list (smaller N; RAM per entry measured).
    base_before = _memory()["RssAnon"]
    in_memory = sorted(rng.randbytes(WIDTH) for _ in range(args.baseline_entries))
    base_ram_kb = _memory()["RssAnon"] - base_before
    base_probes = rng.sample(in_memory, len(probes) // 2) + probes[: len(probes) // 2]

    class _Bisect:
        def __contains__(self, key: bytes) -> bool:
            i = bisect.bisect_left(in_memory, key)
            return i < len(in_memory) and in_memory[i] == key

    base, _ = _time_each(_Bisect(), base_probes)

    kdf_ms = []
    for _ in range(args.kdf_runs):
        t0 = time.perf_counter()
        derive_entry("3171014506990001", b"s" * 16, DEFAULT_KDF, WIDTH)
        kdf_ms.append((time.perf_counter() - t0) * 1000)

    growth = production["rss_growth_kb"]
    assert isinstance(growth, dict)
    first_p99 = production["first_touch"]["p99_us"]  # type: ignore[index]
    warm_p99 = production["warm"]["p99_us"]  # type: ignore[index]
    return {
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}",
        "entries": count,
        "file_bytes": size,
        "bytes_per_entry": size / count,
        "index_bytes": -(-count // listfile.block_entries(WIDTH)) * WIDTH,
        "generate_and_sort_s": round(generate_s, 1),
        "lookups": len(probes),
        "members_found": production["found"],
        "lookup": modes,
        "raw_mmap_read_warm": _percentiles(raw),
        "baseline_bisect_in_memory": {
            "entries": args.baseline_entries,
            **_percentiles(base),
            "ram_bytes_per_entry": round(base_ram_kb * 1024 / args.baseline_entries, 1),
            "ram_at_list_size_mb": round(base_ram_kb * 1024 / args.baseline_entries * count / 1e6),
        },
        "rss_growth_without_page_release_kb": {
            k: unreleased_after[k] - unreleased_before[k] for k in unreleased_before
        },
        "kdf_ms_per_lookup": {
            "params": {"n": DEFAULT_KDF.n, "r": DEFAULT_KDF.r, "p": DEFAULT_KDF.p},
            "median": round(statistics.median(kdf_ms), 1),
            "runs": args.kdf_runs,
        },
        "sha256_full_file_s": round(sha256_s, 2),
        "sha256_mb_per_s": round(size / sha256_s / 1e6),
        "targets": {
            "bytes_per_entry_le_10": size / count <= 10,
            "p99_warm_lt_1ms": warm_p99 < 1000,
            "p99_first_touch_lt_1ms": first_p99 < 1000,
            "rss_anon_growth_lt_64mb": growth["RssAnon"] < 64 * 1024,
            "rss_total_growth_lt_64mb": growth["VmRSS"] < 64 * 1024,
        },
    }


def main() -> None:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=100_000_000)
    parser.add_argument("--dir", default="/tmp", help="where the temporary data file goes")
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--baseline-entries", type=int, default=1_000_000)
    parser.add_argument("--kdf-runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if Path(args.dir).resolve().is_relative_to(Path(__file__).resolve().parents[1]):
        sys.exit("refusing to write the benchmark file inside the repository")
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
