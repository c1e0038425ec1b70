"""The anti-passback secret on disk: owner-only, never inherited, never followed, never planted."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from kiosk.gate.passback import SECRET_BYTES, SECRET_FILE, load_secret


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _plant(tmp_path: Path, content: bytes, mode: int) -> Path:
    path = tmp_path / SECRET_FILE
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_first_start_writes_0600(tmp_path: Path) -> None:
    os.umask(0o022)
    secret = load_secret(tmp_path / "data")
    assert len(secret) == SECRET_BYTES and _mode(tmp_path / "data" / SECRET_FILE) == 0o600


@pytest.mark.parametrize("old_mode", [0o644, 0o666, 0o604])
def test_a_regenerated_key_never_keeps_the_old_mode(tmp_path: Path, old_mode: int) -> None:
    path = _plant(tmp_path, b"short", old_mode)
    secret = load_secret(tmp_path)
    assert secret != b"short" and len(secret) == SECRET_BYTES
    assert _mode(path) == 0o600 and path.read_bytes() == secret


def test_a_readable_key_is_kept_and_fixed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _plant(tmp_path, b"k" * SECRET_BYTES, 0o644)
    with caplog.at_level(logging.WARNING):
        assert load_secret(tmp_path) == b"k" * SECRET_BYTES
    assert _mode(path) == 0o600
    assert "readable by others" in caplog.text


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_a_key_others_could_write_is_replaced(tmp_path: Path, mode: int) -> None:
    path = _plant(tmp_path, b"p" * SECRET_BYTES, mode)
    secret = load_secret(tmp_path)
    assert secret != b"p" * SECRET_BYTES and _mode(path) == 0o600


def test_a_symlinked_key_is_replaced_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"v" * 64)
    victim.chmod(0o644)
    data = tmp_path / "data"
    data.mkdir()
    (data / SECRET_FILE).symlink_to(victim)
    secret = load_secret(data)
    assert secret != b"v" * SECRET_BYTES
    assert victim.read_bytes() == b"v" * 64 and _mode(victim) == 0o644
    assert not (data / SECRET_FILE).is_symlink() and _mode(data / SECRET_FILE) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_key_owned_by_someone_else_is_replaced(tmp_path: Path) -> None:
    path = _plant(tmp_path, b"o" * SECRET_BYTES, 0o600)
    os.chown(path, 4321, 4321)
    secret = load_secret(tmp_path)
    assert secret != b"o" * SECRET_BYTES and path.stat().st_uid == 0 and _mode(path) == 0o600


def test_a_key_that_is_a_folder_or_huge_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / SECRET_FILE).mkdir()
    with pytest.raises(OSError):  # a folder at the name cannot be replaced by a file
        load_secret(tmp_path / "a")
    path = _plant(tmp_path, b"h" * 5000, 0o600)
    assert len(load_secret(tmp_path)) == SECRET_BYTES and path.stat().st_size == SECRET_BYTES
