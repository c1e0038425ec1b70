"""Malformed QR texts are counted on the QR surface (refused.qr), certificates' verdicts not."""

from __future__ import annotations

from pathlib import Path

from gpiozero.pins.mock import MockFactory

from kiosk.app import build_app
from kiosk.camera.files import ImageFrameSource
from kiosk.decision import Reason
from kiosk.telemetry.refused import REFUSED
from tests.e2e.test_gate_safety import NOW, setup


def test_malformed_texts_count_as_refused_qr_and_a_valid_certificate_does_not(
    tmp_path: Path,
) -> None:
    config, text, frames = setup(tmp_path)
    with build_app(config, source=ImageFrameSource(frames), pin_factory=MockFactory(),
                   wall_clock=lambda: NOW) as app:
        app.loop.start()
        before = REFUSED.totals().get("qr", 0)
        assert app.loop.decide("HC1:%%%not-base45").reason is Reason.BASE45_INVALID
        assert app.loop.decide("https://shop.example/menu").reason is Reason.NOT_HC1
        assert REFUSED.totals()["qr"] == before + 2
        assert app.loop.decide(text).allowed
        assert REFUSED.totals()["qr"] == before + 2
