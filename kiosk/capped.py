"""Reading a file from outside with a size cap, never allocating more than the file holds.

``open(...).read(limit + 1)`` reserves ``limit + 1`` bytes up front (64 MiB
for a trust bundle, whatever the file's size); :func:`read_capped` asks the
file system for the size first and reads in 1 MiB chunks where it cannot
(pipes, devices), so memory follows what is actually read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["FileTooLarge", "read_capped"]

_CHUNK = 1 << 20


class FileTooLarge(ValueError):
    """The file holds more than the cap (only its first ``limit + 1`` bytes were read, if any)."""


def read_capped(path: Path, limit: int) -> bytes:
    """The bytes of ``path``; refuses a file above ``limit`` bytes without reading it whole.

    Raises:
        FileTooLarge: more than ``limit`` bytes.
        OSError: cannot open or read (FileNotFoundError when missing).
    """
    with path.open("rb") as handle:
        info = os.fstat(handle.fileno())
        if stat.S_ISREG(info.st_mode):
            if info.st_size > limit:
                raise FileTooLarge(f"{path}: {info.st_size} bytes, above the limit of {limit}")
            data = handle.read(info.st_size + 1)  # + 1: the file may have grown meanwhile
            if len(data) > limit:
                raise FileTooLarge(f"{path}: above the limit of {limit} bytes")
            return data
        chunks: list[bytes] = []
        total = 0
        while chunk := handle.read(min(_CHUNK, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise FileTooLarge(f"{path}: above the limit of {limit} bytes")
        return b"".join(chunks)
