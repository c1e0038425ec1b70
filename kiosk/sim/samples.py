"""``kiosk simulate --make-samples DIR``: trust material, QR images and a config for scenarios.

The certificates are signed by a throw-away demo signer and are valid around
:data:`SAMPLE_TIME` (June 2021), the ``start`` of the example scenarios: on
the simulator's virtual clock they never go stale, so the committed samples in
``config/scenarios/samples/`` keep working for years. No real person's data:
the holder is the issuer module's sample person.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import segno
from PIL import Image

from kiosk.demo import camera_frame
from kiosk.verify import issuer

SAMPLE_TIME = datetime(2021, 6, 1, 8, 0, tzinfo=UTC)

CONFIG = """\
# Gate configuration for the example scenarios (written by kiosk simulate --make-samples).
# kiosk simulate always uses mock GPIO, the dummy display, no MQTT and a fresh data_dir.
[verify]
trust_dir = "trust"
"""


def sample_payloads(now: datetime = SAMPLE_TIME) -> tuple[bytes, dict[str, str]]:
    """A trusted signer's certificate (DER) and sample QR texts by name."""
    nb, na = now - timedelta(days=60), now + timedelta(days=730)
    key, der = issuer.make_signer("Kiosk Scenario DSC", not_before=nb, not_after=na)
    rogue_key, rogue_der = issuer.make_signer("Untrusted DSC", not_before=nb, not_after=na)
    iat, exp = now - timedelta(days=1), now + timedelta(days=180)
    vacc = issuer.sample_vaccination()
    valid = issuer.issue_hc1(vacc, key, der, iat=iat, exp=exp)
    return der, {
        "valid-vaccination": valid,
        "valid-test": issuer.issue_hc1(issuer.sample_test(), key, der, iat=iat, exp=exp),
        "expired": issuer.issue_hc1(
            vacc, key, der, iat=now - timedelta(days=200), exp=now - timedelta(days=1)
        ),
        "tampered": issuer.tamper_signature(valid),
        "unknown-signer": issuer.issue_hc1(vacc, rogue_key, rogue_der, iat=iat, exp=exp),
        "not-a-certificate": "https://promo.example/diskon-50-persen",
    }


def make_samples(folder: Path, now: datetime = SAMPLE_TIME) -> list[Path]:
    """Write ``trust/``, ``qr/*.png`` (camera-sized frames) and ``kiosk.toml`` under ``folder``.

    Returns the files written. Existing files are overwritten (a new signer
    each time, so the QR images and the trusted certificate always match).

    Raises:
        OSError: the folder cannot be written.
    """
    der, payloads = sample_payloads(now)
    (folder / "trust").mkdir(parents=True, exist_ok=True)
    (folder / "qr").mkdir(parents=True, exist_ok=True)
    written = [folder / "trust" / "scenario-dsc.der"]
    written[0].write_bytes(der)
    for name, text in payloads.items():
        qr = segno.make(text, error="m", micro=False)
        path = folder / "qr" / f"{name}.png"
        Image.fromarray(camera_frame(qr)).save(path, optimize=True)
        written.append(path)
    config = folder / "kiosk.toml"
    config.write_text(CONFIG, encoding="utf-8")
    written.append(config)
    return written
