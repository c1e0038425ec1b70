"""The relay's safe state through the real wiring: at start, after an exception in the loop.

A process killed with SIGKILL cannot switch anything off; that case is covered
by the hardware (relay input pulled to its inactive level, boot-time GPIO
config), see hardware/pinmap.md.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import segno
from gpiozero.pins.mock import MockFactory
from PIL import Image

from kiosk.app import build_app
from kiosk.camera.base import Frame, FrameSource
from kiosk.camera.files import ImageFrameSource
from kiosk.config import KioskConfig, load_config
from kiosk.demo import camera_frame
from kiosk.errors import CameraTimeout
from kiosk.verify import issuer
from tests.gate.pinhistory import active_intervals

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def setup(tmp_path: Path, **overrides: object) -> tuple[KioskConfig, str, Path]:
    key, der = issuer.make_signer(
        "Safety DSC", not_before=NOW - timedelta(days=9), not_after=NOW + timedelta(days=99)
    )
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "dsc.der").write_bytes(der)
    text = issuer.issue_hc1(
        issuer.sample_vaccination(), key, der, iat=NOW - timedelta(1), exp=NOW + timedelta(9)
    )
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray(camera_frame(segno.make(text, micro=False))).save(frames / "a.png")
    config = load_config(
        None,
        {
            "device.data_dir": str(tmp_path / "state"),
            "verify.trust_dir": str(tmp_path / "trust"),
            "gate.pin_factory": "mock",
            "gate.relay_pulse_ms": 2000,
            "display.driver": "dummy",
            "display.fullscreen": False,
            "mqtt.enabled": False,
            **overrides,
        },
    )
    return config, text, frames


@pytest.mark.parametrize("active_high", [True, False])
def test_relay_never_active_at_start(tmp_path: Path, active_high: bool) -> None:
    config, _, frames = setup(tmp_path, **{"gate.relay_active_high": active_high})
    factory = MockFactory()
    with build_app(
        config, source=ImageFrameSource(frames), pin_factory=factory, wall_clock=lambda: NOW
    ) as app:
        app.loop.start()
        relay = factory.pin(config.gate.relay_pin)
        assert relay.state == (not active_high)
        assert active_intervals(relay, active_high) == []
        assert app.outputs.snapshot()["relay"] is False


def test_exception_inside_the_loop_drops_the_relay_at_once(tmp_path: Path) -> None:
    config, text, frames = setup(tmp_path)
    factory = MockFactory()
    with build_app(
        config, source=ImageFrameSource(frames), pin_factory=factory, wall_clock=lambda: NOW
    ) as app:
        app.loop.start()
        assert app.loop.decide(text).allowed
        assert app.outputs.snapshot()["relay"] is True  # a 2 s pulse has just started

        def broken(gray: object) -> list[str]:
            raise RuntimeError("decoder crashed")

        app.loop._decoder.decode = broken  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="decoder crashed"):
            app.loop.step()
        # Still inside build_app: the loop itself made the relay safe, not the exit.
        assert app.outputs.snapshot()["relay"] is False
        [(_, duration)] = active_intervals(factory.pin(config.gate.relay_pin), True)
        assert duration < 1.0


class _StalledCamera(FrameSource):
    """Times out ``stalls`` times, then delivers one real frame, then ends."""

    def __init__(self, stalls: int, frame: Path) -> None:
        self.stalls = stalls
        self._frame: Path | None = frame

    def read(self) -> Frame | None:
        if self.stalls:
            self.stalls -= 1
            raise CameraTimeout("no frame")
        if self._frame is None:
            return None
        gray = np.asarray(Image.open(self._frame).convert("L"))
        self._frame = None
        return Frame(gray=gray, timestamp=0.0, index=0)

    def close(self) -> None:
        """Nothing to release."""


def test_stalled_camera_shows_scanner_fault_then_recovers(tmp_path: Path) -> None:
    config, _, frames = setup(tmp_path)
    events: list[tuple[str, dict[str, object]]] = []
    with build_app(
        config,
        source=_StalledCamera(3, frames / "a.png"),
        pin_factory=MockFactory(),
        wall_clock=lambda: NOW,
        on_event=lambda e, f: events.append((e, f)),
    ) as app:
        app.loop.run(threading.Event())
        totals = app.store.totals()
    screens = [f["screen"] for e, f in events if e == "screen"]
    assert screens[:2] == ["idle", "scanner_fault"]
    assert "allowed" in screens  # frames came back: the scan still worked
    assert totals["fault.scanner"] == 1
    assert ("mode", {"mode": "fault"}) in events
