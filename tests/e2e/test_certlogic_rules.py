"""End to end: CertLogic rules go build → sign → install → real QR scans decided by them.

The central side's commands build a format-3 bundle with the EU value sets and
two business rules, sign it with an authority key made by ``kiosk trust
keygen``, and the gate's ``kiosk trust install`` puts it in place. Then the
real gate wiring (camera frames of real QR images, real decoders, real ES256
signatures, MockFactory pins, SQLite counts, the screen's views) scans
certificates that every built-in check accepts, and the rules decide.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pygame
import pytest
import segno
from gpiozero.pins.mock import MockFactory
from PIL import Image

from kiosk.app import build_app
from kiosk.camera.files import ImageFrameSource
from kiosk.cli import main
from kiosk.config import load_config
from kiosk.decision import Decision, Reason
from kiosk.demo import camera_frame
from kiosk.display.render import decision_view, draw_view
from kiosk.verify import issuer

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
VALUESETS = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "valuesets"
BOOSTER_ID = "Diperlukan vaksin penguat (dosis ketiga)."
BOOSTER_EN = "A booster (third dose) is required."


def _rule(identifier: str, logic: Any, en: str, id_: str) -> dict[str, Any]:
    return {
        "Identifier": identifier, "Type": "Acceptance", "Country": "ID", "Version": "1.0.0",
        "SchemaVersion": "1.0.0", "Engine": "CERTLOGIC", "EngineVersion": "1.3.3",
        "CertificateType": "Vaccination",
        "Description": [{"lang": "en", "desc": en}, {"lang": "id", "desc": id_}],
        "ValidFrom": "2026-01-01T00:00:00Z", "ValidTo": "2030-01-01T00:00:00Z",
        "AffectedFields": ["v.0.dn", "v.0.dt"], "Logic": logic,
    }


RULES = [
    _rule("VR-ID-0100", {"if": [{"var": "payload.v.0"},
                                {">=": [{"var": "payload.v.0.dn"}, 3]}, True]},
          BOOSTER_EN, BOOSTER_ID),
    # At most 270 days since the last dose, as the EU's rules say it.
    _rule("VR-ID-0101", {"if": [{"var": "payload.v.0"}, {"not-after": [
        {"plusTime": [{"var": "external.validationClock"}, 0, "day"]},
        {"plusTime": [{"var": "payload.v.0.dt"}, 270, "day"]}]}, True]},
          "The last dose must be at most 270 days old.",
          "Dosis terakhir paling lama 270 hari yang lalu."),
]


def _frames(folder: Path, texts: list[str]) -> Path:
    folder.mkdir()
    for number, text in enumerate(texts):
        qr = segno.make(text, error="m", micro=False)
        Image.fromarray(camera_frame(qr)).save(folder / f"{number:02d}.png")
    return folder


def _shown(decision: Decision) -> str:
    drawn = draw_view(pygame.Surface((800, 480)), decision_view(decision))
    return " ".join(line.text for line in drawn)


def _central_side(tmp_path: Path, dsc_der: bytes) -> Path:
    """keygen, build (DSC folder + value sets + rules), sign: the signed bundle."""
    keys, dscs = tmp_path / "keys", tmp_path / "dscs"
    dscs.mkdir()
    (dscs / "id-dsc.der").write_bytes(dsc_der)
    (tmp_path / "release.toml").write_text(
        f'version = 7\nissued_at = "{(NOW - timedelta(hours=1)).isoformat()}"\n'
        '[signers."id-dsc.der"]\ncountry = "DE"\n')
    (tmp_path / "rules.json").write_text(json.dumps(RULES))
    body, signed = tmp_path / "bundle.cbor", tmp_path / "bundle.cose"
    assert main(["trust", "keygen", "--out-dir", str(keys)]) == 0
    assert main(["trust", "build", str(dscs), str(tmp_path / "release.toml"), "--out", str(body),
                 "--valuesets", str(VALUESETS), "--rules", str(tmp_path / "rules.json")]) == 0
    assert main(["trust", "sign", str(body), "--key", str(keys / "authority.key"),
                 "--out", str(signed)]) == 0
    return signed


def test_rules_in_a_signed_bundle_decide_real_scans(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    key, der = issuer.make_signer("E2E rules DSC")
    signed = _central_side(tmp_path, der)
    config_file = tmp_path / "kiosk.toml"
    config_file.write_text(
        f'[device]\ndata_dir = "{tmp_path / "state"}"\n'
        f'[verify]\ntrust_source = "bundle"\nauthority_keys = "{tmp_path / "keys"}/authority.pem"\n'
        '[policy]\ncountry = "ID"\n'
        '[gate]\npin_factory = "mock"\n[display]\ndriver = "dummy"\nfullscreen = false\n'
        '[mqtt]\nenabled = false\n[clock]\nprobe = "none"\n')
    capsys.readouterr()
    assert main(["trust", "install", str(signed), "--config", str(config_file)]) == 0
    assert "installed trust bundle v7" in capsys.readouterr().out

    iat, exp = NOW - timedelta(days=1), NOW + timedelta(days=90)

    def vaccination(dn: int, days_ago: int) -> str:
        dt = (NOW - timedelta(days=days_ago)).date().isoformat()
        hcert = issuer.sample_vaccination(dn=dn, sd=2, dt=dt)
        return issuer.issue_hc1(hcert, key, der, iat=iat, exp=exp, issuer="DE")

    texts = [vaccination(2, 30), vaccination(3, 30), vaccination(3, 300)]
    decisions: list[Decision] = []
    config = load_config(config_file)
    source = ImageFrameSource(_frames(tmp_path / "frames", texts), repeat=3, fps=15)
    with build_app(config, source=source, pin_factory=MockFactory(), wall_clock=lambda: NOW,
                   on_decision=decisions.append) as app:
        assert app.trusted_signers == 1  # the installed bundle, not a dev folder
        app.loop.run(threading.Event())
        totals = app.store.totals()

    assert [d.reason for d in decisions] == [Reason.RULE_FAILED, Reason.OK, Reason.RULE_FAILED]
    booster, allowed, old = decisions
    assert booster.detail == "rules: rule VR-ID-0100 failed"
    assert old.detail == "rules: rule VR-ID-0101 failed"
    assert allowed.allowed and allowed.holder_masked and "*" in allowed.holder_masked
    # Counted by reason; only the rule's Identifier, never personal data, in the detail.
    assert totals["allowed"] == 1 and totals["denied.rule_failed"] == 2
    for decision in (booster, old):
        assert "Erika" not in repr(decision) and "1964" not in repr(decision)
    # The screen shows the rule's description, Bahasa Indonesia first, then English.
    shown = _shown(booster)
    assert BOOSTER_ID in shown and BOOSTER_EN in shown and "SYARAT MASUK" in shown
    assert "Dosis terakhir paling lama 270 hari yang lalu." in _shown(old)
