"""Real full and read-only file systems for install tests: a tiny tmpfs (needs root).

Tests that use :func:`tmpfs` are skipped when the process may not mount
(not root, or no mount namespace permission in a container).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "64k") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``path`` for the block; skips the test when impossible."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def remount_read_only(path: Path) -> None:
    """Make the tmpfs at ``path`` read-only (even root cannot write then)."""
    done = _mount("-o", "remount,ro", str(path))
    assert done.returncode == 0, done.stderr


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer could still add under ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def fill(path: Path, leave: int) -> None:
    """Write a filler file so that about ``leave`` bytes stay free."""
    size = max(0, free_bytes(path) - leave)
    with (path / "filler").open("wb") as handle:
        handle.write(b"\0" * size)
