"""Former home of the atomic-write helper, now :mod:`kiosk.atomic` (kept for imports)."""

from __future__ import annotations

from kiosk.atomic import atomic_write, atomic_writer, fsync_dir

__all__ = ["atomic_write", "atomic_writer", "fsync_dir"]
