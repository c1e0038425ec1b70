"""``kiosk trust install`` into a hostile or broken data folder: one-line refusal, nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.errors import DocumentError
from kiosk.verify.bundlefile import install_bundle, read_installed
from kiosk.verify.issuer import make_signer
from tests.smallfs import fill, remount_read_only, tmpfs

from .bundles import KEYS, make_bundle, signed, write_authority

_, DER = make_signer("Hostile DSC")
BUNDLE = "trust-bundle.cose"


def _config(folder: Path, data_dir: Path) -> Path:
    keys = write_authority(folder)
    config = folder / "kiosk.toml"
    config.write_text(f'[device]\ndata_dir = "{data_dir}"\n[verify]\nauthority_keys = "{keys}"\n')
    return config


def _install_cli(bundle: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiosk", "trust", "install", str(bundle),
                           "--config", str(config)],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))


def test_planted_symlinks_leave_their_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    data = tmp_path / "data"
    data.mkdir()
    for name in (f".{BUNDLE}.tmp", f".{BUNDLE}.abcd.tmp", ".trust-floor.json.x.tmp", BUNDLE,
                 "trust-floor.json"):
        (data / name).symlink_to(victim)
    blob = signed(make_bundle(DER, version=3))
    install_bundle(blob, data / BUNDLE, KEYS)
    assert victim.read_bytes() == b"precious"
    assert (data / BUNDLE).read_bytes() == blob and not (data / BUNDLE).is_symlink()


def test_oversized_input_is_not_read_whole(tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "data")
    huge = tmp_path / "huge.cose"
    with huge.open("wb") as handle:
        handle.truncate(1 << 40)  # sparse: 1 TiB on paper
    done = _install_cli(huge, config)
    assert done.returncode == 1
    assert "larger than the 67108864-byte bundle limit" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("broken", ["full", "read-only"])
def test_broken_data_folder_is_a_one_line_refusal(tmp_path: Path, broken: str) -> None:
    with tmpfs(tmp_path / "fs") as fs:
        data = fs / "data"
        data.mkdir()
        config = _config(tmp_path, data)
        first = tmp_path / "v1.cose"
        first.write_bytes(signed(make_bundle(DER, version=1)))
        assert _install_cli(first, config).returncode == 0
        before = {p.name: p.read_bytes() for p in data.iterdir()}
        second = tmp_path / "v2.cose"
        second.write_bytes(signed(make_bundle(*[DER] * 20, version=2)))  # ~10 KB
        if broken == "full":
            fill(fs, 100)
        else:
            remount_read_only(fs)
        done = _install_cli(second, config)
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        reason = "No space left on device" if broken == "full" else "Read-only file system"
        assert lines[0].startswith("refused: ") and reason in lines[0]
        assert "the installed bundle is unchanged" in lines[0]
        assert {p.name: p.read_bytes() for p in data.iterdir() if p.name != "filler"} == before
        bundle = read_installed(data / BUNDLE, KEYS)
        assert bundle is not None and bundle.version == 1


def test_unreadable_input_is_a_document_error(tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "data")
    done = _install_cli(tmp_path, config)  # a folder
    assert done.returncode == 1 and "cannot read: Is a directory" in done.stderr


def test_refusal_before_any_write(tmp_path: Path) -> None:
    with pytest.raises(DocumentError):
        install_bundle(b"\xd2garbage", tmp_path / BUNDLE, KEYS)
    assert list(tmp_path.iterdir()) == []
