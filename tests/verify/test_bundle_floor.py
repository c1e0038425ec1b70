"""The rollback floor: the highest bundle version ever accepted survives the bundle file.

Real signed bundles, real files in tmp_path; a "restart" is new objects reading
the same state folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.config.schema import ClockConfig, PolicyConfig, VerifyConfig
from kiosk.errors import DocumentError
from kiosk.verify import open_verifier
from kiosk.verify.bundlefile import (
    FLOOR_FILE,
    floor_path,
    install_bundle,
    raise_floor,
    read_floor,
    read_installed,
)
from kiosk.verify.clock import FixedProbe
from kiosk.verify.factory import load_material
from kiosk.verify.issuer import make_signer

from .bundles import KEYS, make_bundle, signed, write_authority
from .conftest import NOW

_, DER = make_signer("Floor DSC")


def _blob(version: int) -> bytes:
    return signed(make_bundle(DER, version=version))


def _cfg(tmp_path: Path) -> VerifyConfig:
    return VerifyConfig(trust_source="bundle", authority_keys=write_authority(tmp_path))


def _gate_version(tmp_path: Path, state: Path) -> int | None:
    """The bundle version a freshly started gate uses (None: no usable bundle)."""
    verifier = open_verifier(_cfg(tmp_path), wall_clock=lambda: NOW, state_dir=state,
                             clock=ClockConfig(), policy=PolicyConfig(),
                             probe=FixedProbe(True))
    try:
        return verifier.health().bundle_version
    finally:
        verifier.close()


def test_install_records_the_floor_next_to_the_bundle(tmp_path: Path) -> None:
    target = tmp_path / "trust-bundle.cose"
    install_bundle(_blob(3), target, KEYS)
    assert floor_path(target) == tmp_path / FLOOR_FILE
    assert json.loads((tmp_path / FLOOR_FILE).read_text()) == {"version": 3}
    install_bundle(_blob(7), target, KEYS)
    assert read_floor(tmp_path / FLOOR_FILE) == 7


def test_deleted_bundle_then_older_signed_install_is_refused_after_restart(
        tmp_path: Path) -> None:
    target = tmp_path / "trust-bundle.cose"
    install_bundle(_blob(5), target, KEYS)
    target.unlink()
    # A new process: nothing in memory, only the state folder.
    for older in (4, 5):
        with pytest.raises(DocumentError, match=r"highest version accepted on this device \(5\)"):
            install_bundle(_blob(older), target, KEYS)
    assert not target.exists()
    assert install_bundle(_blob(6), target, KEYS).version == 6
    assert read_floor(floor_path(target)) == 6


def test_direct_replacement_with_older_signed_bundle_is_refused_at_load(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    target = state / "trust-bundle.cose"
    install_bundle(_blob(2), target, KEYS)
    install_bundle(_blob(3), target, KEYS)
    assert _gate_version(tmp_path, state) == 3
    target.write_bytes(_blob(2))  # genuinely signed, just older: bypasses install_bundle
    with pytest.raises(DocumentError, match="below the highest version accepted"):
        read_installed(target, KEYS)
    caplog.set_level(logging.ERROR)
    # Treated exactly like a forged file: the gate starts, denies everything, logs why.
    assert _gate_version(tmp_path, state) is None
    assert any("rollback refused" in r.getMessage() for r in caplog.records)
    material = load_material(_cfg(tmp_path), state, PolicyConfig())
    assert material.missing
    assert read_floor(floor_path(target)) == 3  # a refused load never lowers the floor


def test_load_adopts_an_installed_bundle_that_predates_the_floor(tmp_path: Path) -> None:
    # A gate upgraded from firmware without the floor: the file exists, no floor yet.
    state = tmp_path / "state"
    state.mkdir()
    (state / "trust-bundle.cose").write_bytes(_blob(4))
    assert not (state / FLOOR_FILE).exists()
    assert _gate_version(tmp_path, state) == 4
    assert read_floor(state / FLOOR_FILE) == 4
    (state / "trust-bundle.cose").unlink()
    with pytest.raises(DocumentError, match="rollback refused"):
        install_bundle(_blob(3), state / "trust-bundle.cose", KEYS)


@pytest.mark.parametrize("content", [
    b"not json", b"", b"[]", b"{}", b'{"version": "7"}', b'{"version": true}',
    b'{"version": -1}', b'{"version": 1.5}', b'{"version": 1}' + b" " * 5000,
])
def test_garbage_floor_counts_as_zero_with_a_warning(
        tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "trust-bundle.cose"
    install_bundle(_blob(3), target, KEYS)
    floor_path(target).write_bytes(content)
    caplog.set_level(logging.WARNING)
    assert read_floor(floor_path(target)) == 0
    assert any("trust floor" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    # The gate still works and the installed-file check still refuses a rollback.
    assert read_installed(target, KEYS).version == 3  # type: ignore[union-attr]
    with pytest.raises(DocumentError, match="not newer than the installed version 3"):
        install_bundle(_blob(2), target, KEYS)
    # The next accepted bundle repairs the floor file.
    install_bundle(_blob(4), target, KEYS)
    assert json.loads(floor_path(target).read_text()) == {"version": 4}


def test_raise_floor_never_lowers(tmp_path: Path) -> None:
    path = tmp_path / FLOOR_FILE
    assert read_floor(path) == 0
    assert raise_floor(path, 5)
    assert not raise_floor(path, 4)
    assert not raise_floor(path, 5)
    assert read_floor(path) == 5


def test_cli_install_raises_the_floor(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[device]\ndata_dir = "state"\n[verify]\n'
                      f'authority_keys = "{write_authority(tmp_path)}"\n')
    for version in (2, 1):
        (tmp_path / f"v{version}.cose").write_bytes(_blob(version))
    assert main(["trust", "install", str(tmp_path / "v2.cose"), "--config", str(config)]) == 0
    assert read_floor(tmp_path / "state" / FLOOR_FILE) == 2
    (tmp_path / "state" / "trust-bundle.cose").unlink()
    capsys.readouterr()
    assert main(["trust", "install", str(tmp_path / "v1.cose"), "--config", str(config)]) == 1
    assert "highest version accepted" in capsys.readouterr().err
    assert not (tmp_path / "state" / "trust-bundle.cose").exists()

