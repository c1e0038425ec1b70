"""Files from outside are read with a cap, allocating only what they hold."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from kiosk.capped import FileTooLarge, read_capped


def test_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_capped(path, 100) == b"x" * 100
    with pytest.raises(FileTooLarge, match="100 bytes, above the limit of 99"):
        read_capped(path, 99)


def test_a_huge_file_is_refused_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "sparse"
    with path.open("wb") as handle:
        handle.truncate(1 << 40)
    tracemalloc.start()
    with pytest.raises(FileTooLarge):
        read_capped(path, 64 << 20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20


def test_a_small_file_under_a_big_cap_costs_its_size(tmp_path: Path) -> None:
    path = tmp_path / "small"
    path.write_bytes(b"y" * 1000)
    tracemalloc.start()
    assert len(read_capped(path, 64 << 20)) == 1000
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20


def test_an_endless_device_is_cut(tmp_path: Path) -> None:
    with pytest.raises(FileTooLarge, match="above the limit of 5000000 bytes"):
        read_capped(Path("/dev/zero"), 5_000_000)
    assert read_capped(Path("/dev/null"), 10) == b""
