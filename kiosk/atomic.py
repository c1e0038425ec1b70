"""Crash-safe file replacement: the old file or the new one, never a torn mix.

Every install and every state file goes through here (trust bundle, clock
state, NIK list data, index, state and manifest, remote replay memory).

Steps: create a temporary file in the *same* folder with a random name and
``O_CREAT | O_EXCL`` (:func:`tempfile.mkstemp`: a symlink or file planted at
any name is never followed or reused), write and ``fsync`` it, set its mode
on the open descriptor, ``os.replace`` it over the target (atomic on POSIX;
a symlink planted at the target is replaced, its target untouched), then
``fsync`` the folder so the rename itself survives a power cut.  A crash
before the rename leaves the old target untouched plus a stray
``.<name>.*.tmp`` file, which the next write removes; any error removes the
temporary file before it propagates.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "atomic_writer", "fsync_dir"]


@contextlib.contextmanager
def atomic_writer(path: Path, *, mode: int = 0o644,
                  before_rename: Callable[[Path], None] | None = None) -> Iterator[BinaryIO]:
    """Write ``path`` through a temporary file: ``with atomic_writer(p) as out: out.write(...)``.

    The new content replaces ``path`` only when the block ends without an
    exception; an exception (including one raised to refuse the content)
    removes the temporary file and leaves ``path`` as it was.

    Args:
        path: the target file; its folder must exist.
        mode: permission bits of the new file (set on the descriptor, so a
            file swapped in under the temporary name is never chmodded).
        before_rename: test hook called with the synced temporary file just
            before the rename (to simulate a crash between the two steps).

    Raises:
        OSError: the folder is not writable or the disk is full.
    """
    folder = path.parent
    for stale in folder.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()  # a planted symlink is removed, never followed
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        if before_rename is not None:
            before_rename(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(folder)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644,
                 before_rename: Callable[[Path], None] | None = None) -> None:
    """Atomically replace ``path`` with ``data`` (see :func:`atomic_writer`).

    Raises:
        OSError: the folder is not writable or the disk is full; the old file
            is intact and the temporary file is removed.
    """
    with atomic_writer(path, mode=mode, before_rename=before_rename) as handle:
        handle.write(data)


def fsync_dir(folder: Path) -> None:
    """``fsync`` a folder, so renames and unlinks in it survive a power cut."""
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
