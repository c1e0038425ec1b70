"""Crash-safe file replacement: the old file or the new one, never a torn mix.

Steps: write a temporary file in the *same* folder, flush and ``fsync`` it,
``os.replace`` it over the target (atomic on POSIX), then ``fsync`` the folder
so the rename itself survives a power cut.  A crash before the rename leaves
the old target untouched plus a stray ``.<name>.*.tmp`` file, which the next
write removes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644,
                 before_rename: Callable[[Path], None] | None = None) -> None:
    """Atomically replace ``path`` with ``data``.

    Args:
        path: the target file; its folder must exist.
        data: the new content.
        mode: permission bits of the new file.
        before_rename: test hook called with the synced temporary file just
            before the rename (to simulate a crash between the two steps).

    Raises:
        OSError: the folder is not writable or the disk is full; the old file
            is intact and the temporary file is removed.
    """
    folder = path.parent
    for stale in folder.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if before_rename is not None:
            before_rename(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
