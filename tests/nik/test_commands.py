"""``kiosk nik`` on the command line: check, build-list, inspect, install; [nik] config."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.config import load_config
from kiosk.config.schema import NikConfig
from kiosk.errors import ConfigError
from kiosk.signing import save_private_key, save_public_key
from tests.nik.conftest import AUTHORITY, TRUSTED

NIK = "3171014506990001"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_check_valid_prints_decoded_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "nik", "check", NIK, "--today", "2026-11-26")
    assert status == 0
    assert json.loads(out) == {
        "valid": True,
        "reason": None,
        "province": {"code": "31", "name": "DKI Jakarta"},
        "regency_code": "71",
        "district_code": "01",
        "sex": "female",
        "birth_date": "1999-06-05",
    }
    assert NIK not in err


@pytest.mark.parametrize(
    ("nik", "reason"),
    [
        ("317101450699000", "length"),
        ("9701014506990001", "province"),
        (NIK[:-4] + "0000", "serial"),
    ],
)
def test_check_invalid(capsys: pytest.CaptureFixture[str], nik: str, reason: str) -> None:
    status, out, _ = run(capsys, "nik", "check", nik)
    assert status == 1
    assert json.loads(out) == {"valid": False, "reason": reason}


def test_check_reads_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(NIK + "\n"))
    status, out, _ = run(capsys, "nik", "check", "-")
    assert status == 0 and json.loads(out)["valid"] is True


def test_build_inspect_install_round_trip(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key, pub = tmp_path / "authority.key", tmp_path / "authority.pem"
    save_private_key(AUTHORITY, key)
    save_public_key(TRUSTED[0], pub)
    niks = tmp_path / "niks.txt"
    niks.write_text(f"{NIK}\n3273012301850002\nnot-a-nik\n\n", encoding="ascii")
    out_dir = tmp_path / "central"
    status, out, err = run(
        capsys, "nik", "build-list", "--niks", str(niks), "--key", str(key), "--version", "3",
        "--out", str(out_dir), "--scrypt-n", "16", "--workers", "1", "--lifetime-days", "2",
    )  # fmt: skip
    assert status == 0, err
    summary = json.loads(out)
    assert summary["count"] == 2 and summary["invalid_lines"] == 2
    assert summary["kdf"] == {"alg": "scrypt", "n": 16, "r": 8, "p": 1}
    assert NIK not in out + err

    manifest = out_dir / "niklist-3.manifest"
    status, out, _ = run(capsys, "nik", "inspect", str(manifest), "--keys", str(pub))
    assert status == 0
    shown = json.loads(out)
    assert shown["signature"] == "valid" and shown["version"] == 3 and not shown["expired"]
    assert "salt" not in shown
    status, out, _ = run(capsys, "nik", "inspect", str(manifest))
    assert json.loads(out)["signature"].startswith("not checked")

    gate = tmp_path / "gate"
    argv = ["nik", "install", str(manifest), str(out_dir / "niklist-3.data")]
    argv += ["--list-dir", str(gate), "--keys", str(pub), "--config", str(tmp_path / "none")]
    status, out, _ = run(capsys, *argv)
    assert status == 0 and json.loads(out)["installed_in"] == str(gate)
    status, _, _ = run(capsys, *argv)  # same version again: rollback protection
    assert status == 1


def test_build_synthetic_on_two_workers(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    key = tmp_path / "authority.key"
    save_private_key(AUTHORITY, key)
    status, out, err = run(
        capsys, "nik", "build-list", "--synthetic", "600", "--key", str(key), "--version", "1",
        "--out", str(tmp_path / "out"), "--scrypt-n", "16", "--workers", "2",
    )  # fmt: skip
    assert status == 0
    assert json.loads(out)["count"] == 600
    assert "deriving 600/600 (100%)" in err


def test_nik_config_defaults_and_validation(tmp_path: Path) -> None:
    assert load_config(None).nik == NikConfig()
    assert NikConfig().mode == "off"
    path = tmp_path / "kiosk.toml"
    path.write_text('[nik]\nmode = "maybe"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"kiosk.toml:2: nik.mode: 'maybe' is not one of"):
        load_config(path)
    path.write_text("[nik]\nrate_burst = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"nik.rate_burst: 0 is below the minimum 1"):
        load_config(path)


def test_build_refuses_a_bad_width(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    key = tmp_path / "authority.key"
    save_private_key(AUTHORITY, key)
    status, _, _ = run(
        capsys, "nik", "build-list", "--synthetic", "3", "--key", str(key), "--version", "1",
        "--out", str(tmp_path / "out"), "--scrypt-n", "16", "--width", "4", "--quiet",
    )  # fmt: skip
    assert status == 1 and "width 4" in caplog.text
