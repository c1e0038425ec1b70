"""A hostile installed bundle or NIK list is counted for operators (refused.bundle, .nik)."""

from __future__ import annotations

from pathlib import Path

from kiosk.config.schema import NikConfig, PolicyConfig, VerifyConfig
from kiosk.nik.store import MANIFEST_NAME
from kiosk.nik.wiring import load_list
from kiosk.telemetry.refused import REFUSED
from kiosk.verify.factory import load_material
from tests.signing import hostile

from .bundles import make_bundle, sign_body, write_authority


def _take(surface: str) -> tuple[int, str]:
    report = REFUSED.take(surface)
    return (0, "") if report is None else (report.count, report.reason)


def test_hostile_installed_bundle_counts_once_with_a_code(tmp_path: Path) -> None:
    cfg = VerifyConfig(trust_source="bundle", authority_keys=write_authority(tmp_path))
    _take("bundle")
    before = REFUSED.totals()["bundle"]
    (tmp_path / cfg.bundle_file).write_bytes(hostile.trust_install_bomb())
    assert load_material(cfg, tmp_path, PolicyConfig()).missing
    assert REFUSED.totals()["bundle"] == before + 1
    count, reason = _take("bundle")
    assert count == 1 and reason.startswith("cbor_")


def test_forged_installed_bundle_counts_as_bad_signature(tmp_path: Path) -> None:
    cfg = VerifyConfig(trust_source="bundle", authority_keys=write_authority(tmp_path))
    _take("bundle")
    blob = bytearray(sign_body(make_bundle(version=2).to_cbor()))
    blob[-1] ^= 1
    (tmp_path / cfg.bundle_file).write_bytes(bytes(blob))
    assert load_material(cfg, tmp_path, PolicyConfig()).missing
    assert _take("bundle") == (1, "bad_signature")


def test_no_bundle_is_not_a_refusal(tmp_path: Path) -> None:
    cfg = VerifyConfig(trust_source="bundle", authority_keys=write_authority(tmp_path))
    _take("bundle")
    assert load_material(cfg, tmp_path, PolicyConfig()).missing
    assert _take("bundle") == (0, "")


def test_hostile_installed_nik_manifest_is_counted(tmp_path: Path) -> None:
    keys = write_authority(tmp_path)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / MANIFEST_NAME).write_bytes(hostile.nik_install_bomb())
    _take("nik")
    assert load_list(NikConfig(mode="list", list_dir=lists), keys) is None
    count, reason = _take("nik")
    assert count == 1 and reason.startswith("cbor_")
