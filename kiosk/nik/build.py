"""Building a NIK status list (central side, never on a gate).

Input: NIKs of the people whose status allows entry. Every NIK is validated
(invalid ones are counted and skipped, never printed), run through scrypt with
the version's fresh random salt on all cores, and the entries are sorted and
de-duplicated with numpy (the list of 100 M entries is ~800 MB in RAM here; a
gate never holds it in RAM). Output: ``niklist-<version>.data`` and
``niklist-<version>.manifest`` (signed), ready for ``kiosk nik install``.

The builder's KDF work is exactly what an attacker holding a leaked NIK
database must redo against a stolen list, so do not expect to make one cheap
and the other expensive (docs/nik-privacy.md).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.nik.kdf import DEFAULT_WIDTH, MAX_WIDTH, MIN_WIDTH, SALT_BYTES, KdfParams, derive_entry
from kiosk.nik.listfile import Manifest, sha256_file, sign_manifest
from kiosk.nik.validate import PROVINCES, validate_nik

log = logging.getLogger(__name__)

_CHUNK = 256  # NIKs per worker task: large enough to amortise IPC, small for smooth progress


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_list` wrote and counted (no NIKs)."""

    manifest: Manifest
    manifest_path: Path
    data_path: Path
    accepted: int  # valid NIKs read (duplicates included)
    invalid: int  # lines rejected by validation


Progress = Callable[[int], None]


def build_list(
    niks: Iterable[str],
    out_dir: Path,
    key: Ed25519PrivateKey,
    *,
    version: int,
    issued_at: datetime,
    lifetime: timedelta,
    kdf: KdfParams,
    width: int = DEFAULT_WIDTH,
    workers: int = 1,
    progress: Progress | None = None,
) -> BuildResult:
    """Build and sign one list version from ``niks`` (surrounding whitespace ignored).

    Args:
        workers: processes for the KDF; 1 runs in this process (tests).
        progress: called with the number of NIKs derived so far.

    Raises:
        ValueError: ``width`` outside 6..16 bytes or ``version`` below 1.
        OSError: the output folder cannot be written.
    """
    if not MIN_WIDTH <= width <= MAX_WIDTH or version < 1:
        raise ValueError(f"width {width} must be {MIN_WIDTH}..{MAX_WIDTH}, version >= 1")
    salt = secrets.token_bytes(SALT_BYTES)
    counts = {"valid": 0, "invalid": 0}
    today = issued_at.date()

    def valid_chunks() -> Iterator[list[str]]:
        chunk: list[str] = []
        for line in niks:
            nik = line.strip()
            if not validate_nik(nik, today).valid:
                counts["invalid"] += 1
                continue
            counts["valid"] += 1
            chunk.append(nik)
            if len(chunk) == _CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    tasks = ((chunk, salt, kdf.n, kdf.r, kdf.p, width) for chunk in valid_chunks())
    raw = bytearray()
    done = 0
    if workers <= 1:
        results: Iterable[bytes] = map(_derive_chunk, tasks)
        for block in results:
            raw += block
            done += len(block) // width
            if progress:
                progress(done)
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for block in pool.imap(_derive_chunk, tasks, chunksize=1):
                raw += block
                done += len(block) // width
                if progress:
                    progress(done)
    entries = sort_unique(bytes(raw), width)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_path = out_dir / f"niklist-{version}.data"
    data_path.write_bytes(entries)
    digest, _ = sha256_file(data_path)
    manifest = Manifest(
        version=version,
        salt=salt,
        kdf=kdf,
        width=width,
        count=len(entries) // width,
        issued_at=issued_at.replace(microsecond=0),
        expires_at=(issued_at + lifetime).replace(microsecond=0),
        data_sha256=digest,
    )
    manifest_path = out_dir / f"niklist-{version}.manifest"
    manifest_path.write_bytes(sign_manifest(manifest, key))
    log.info(
        "built NIK list version %d: %d entries, %d invalid lines skipped",
        version,
        manifest.count,
        counts["invalid"],
    )
    return BuildResult(manifest, manifest_path, data_path, counts["valid"], counts["invalid"])


def _derive_chunk(task: tuple[list[str], bytes, int, int, int, int]) -> bytes:
    niks, salt, n, r, p, width = task
    params = KdfParams(n, r, p)
    return b"".join(derive_entry(nik, salt, params, width) for nik in niks)


def sort_unique(raw: bytes, width: int) -> bytes:
    """Sort fixed-width entries ascending (as unsigned big-endian bytes) and drop duplicates."""
    if not raw:
        return b""
    if width == 8:
        values = np.unique(np.frombuffer(raw, dtype=">u8").astype(np.uint64))
        return values.astype(">u8").tobytes()
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, width)
    padded = np.zeros((rows.shape[0], 16), dtype=np.uint8)
    padded[:, :width] = rows
    high = padded[:, :8].copy().view(">u8").ravel().astype(np.uint64)
    low = padded[:, 8:].copy().view(">u8").ravel().astype(np.uint64)
    ordered = rows[np.lexsort((low, high))]
    keep = np.ones(ordered.shape[0], dtype=bool)
    keep[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    return bytes(ordered[keep].tobytes())


def synthetic_niks(count: int, seed: int, today: date) -> Iterator[str]:
    """``count`` random, structurally valid NIKs (deterministic for a seed); for tests/bench."""
    rng = random.Random(seed)
    provinces = sorted(PROVINCES)
    for _ in range(count):
        born = today - timedelta(days=rng.randrange(1, 365 * 90))
        day = born.day + (40 if rng.random() < 0.5 else 0)
        yield (
            f"{rng.choice(provinces)}{rng.randrange(1, 80):02d}{rng.randrange(1, 50):02d}"
            f"{day:02d}{born.month:02d}{born.year % 100:02d}{rng.randrange(1, 10000):04d}"
        )


def stderr_progress(total: int | None) -> Progress:
    """A progress callback that rewrites one stderr line at most once a second."""
    start = time.monotonic()
    last = [0.0]

    def report(done: int) -> None:
        now = time.monotonic()
        if now - last[0] < 1.0 and done != total:
            return
        last[0] = now
        rate = done / max(now - start, 1e-9)
        of = f"/{total} ({100 * done / total:.0f}%)" if total else ""
        sys.stderr.write(f"\rderiving {done}{of}, {rate:,.0f}/s ")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return report


def default_workers() -> int:
    """All cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
