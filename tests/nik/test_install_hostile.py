"""Installing a NIK list into a hostile or broken data folder: refused in one line, nothing lost.

Planted symlinks (the list folder belongs to the service user; a root
technician runs the install), an endless data source, a full and a
read-only file system (real tmpfs mounts, see tests/smallfs.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiosk.errors import DocumentError
from kiosk.nik.store import MANIFEST_NAME, STATE_NAME, install_list, load_installed
from kiosk.signing import save_public_key
from tests.smallfs import fill, remount_read_only, tmpfs

from .conftest import AUTHORITY, MEMBERS, NOW, TRUSTED, ListFactory

VICTIM_TEXT = b"root's precious file\n"


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "etc-shadow"
    victim.write_bytes(VICTIM_TEXT)
    victim.chmod(0o600)
    return victim


def _stray(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_planted_symlinks_leave_their_target_untouched(make_list: ListFactory,
                                                        tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    gate = tmp_path / "gate"
    gate.mkdir()
    built = make_list(version=1)
    # The fixed temporary names the installer once used, the random-name pattern it uses
    # now, and the final names of the derived files.
    for name in (".niklist-1.data.tmp", ".niklist-1.index.tmp", f".{STATE_NAME}.tmp",
                 f".{MANIFEST_NAME}.tmp", f".{MANIFEST_NAME}.planted.tmp",
                 f".{STATE_NAME}.x.tmp", "niklist-1.index", STATE_NAME):
        (gate / name).symlink_to(victim)
    install_list(built.manifest_path, built.data_path, gate, TRUSTED, NOW)
    assert victim.read_bytes() == VICTIM_TEXT
    assert oct(victim.stat().st_mode & 0o777) == oct(0o600)
    for name in (MANIFEST_NAME, STATE_NAME, "niklist-1.data", "niklist-1.index"):
        assert (gate / name).is_file() and not (gate / name).is_symlink()
    with load_installed(gate, TRUSTED) as status:
        assert status is not None and status.manifest.version == 1


def test_endless_data_source_is_cut_at_the_signed_size(make_list: ListFactory,
                                                        tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    built = make_list(version=1)
    with pytest.raises(DocumentError, match="larger than the 32 bytes the signed manifest says"):
        install_list(built.manifest_path, Path("/dev/zero"), gate, TRUSTED, NOW)
    assert sorted(p.name for p in gate.iterdir()) == []


def test_unreadable_data_source_is_one_line(make_list: ListFactory, tmp_path: Path) -> None:
    built = make_list(version=1)
    with pytest.raises(DocumentError, match="cannot read: Is a directory"):
        install_list(built.manifest_path, tmp_path, tmp_path / "gate", TRUSTED, NOW)


def test_oversized_manifest_file_is_not_read_whole(make_list: ListFactory,
                                                   tmp_path: Path) -> None:
    built = make_list(version=1)
    huge = tmp_path / "huge.manifest"
    with huge.open("wb") as handle:
        handle.truncate(1 << 30)  # sparse: 1 GiB on paper
    with pytest.raises(DocumentError, match="larger than 65536 bytes"):
        install_list(huge, built.data_path, tmp_path / "gate", TRUSTED, NOW)


@pytest.mark.parametrize("leave", [10, 5000], ids=["no-room-for-data", "full-mid-install"])
def test_full_folder_keeps_the_installed_list(make_list: ListFactory, tmp_path: Path,
                                              leave: int) -> None:
    with tmpfs(tmp_path / "fs") as fs:
        gate = fs / "gate"
        first = make_list(version=1)
        install_list(first.manifest_path, first.data_path, gate, TRUSTED, NOW)
        second = make_list([*MEMBERS, "3171014506990009"], version=2)
        fill(fs, leave)
        with pytest.raises(DocumentError, match=r"cannot install NIK list into .*gate: "
                           r"(No space left on device|the data needs)") as caught:
            install_list(second.manifest_path, second.data_path, gate, TRUSTED, NOW)
        assert "\n" not in str(caught.value)
        assert _stray(gate) == []
        assert not (gate / "niklist-2.data").exists()
        with load_installed(gate, TRUSTED) as status:
            assert status is not None and status.manifest.version == 1


def test_read_only_folder_is_a_one_line_cli_refusal(make_list: ListFactory,
                                                    tmp_path: Path) -> None:
    keys = tmp_path / "authority.pem"
    save_public_key(AUTHORITY.public_key(), keys)
    with tmpfs(tmp_path / "fs") as fs:
        gate = fs / "gate"
        first = make_list(version=1)
        install_list(first.manifest_path, first.data_path, gate, TRUSTED, NOW)
        before = {p.name: p.read_bytes() for p in gate.iterdir()}
        remount_read_only(fs)
        # The command reads the real clock: this list must be valid today, whatever the date.
        second = make_list(version=2, issued_at=datetime.now(UTC) - timedelta(hours=1),
                           lifetime=timedelta(days=30))
        done = subprocess.run(
            [sys.executable, "-m", "kiosk", "nik", "install", str(second.manifest_path),
             str(second.data_path), "--list-dir", str(gate), "--keys", str(keys),
             "--config", str(tmp_path / "none.toml")],
            capture_output=True, text=True, timeout=60, env={**os.environ, "TZ": "UTC"})
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Read-only file system" in lines[0], done.stderr
        assert "unchanged" in lines[0]
        assert {p.name: p.read_bytes() for p in gate.iterdir()} == before
