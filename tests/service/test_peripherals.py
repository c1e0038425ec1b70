"""A missing or unplugged peripheral degrades one function, is reported, and comes back.

Through the real wiring (:func:`kiosk.app.build_app`): a camera that is absent
at start (camera.source = files, a folder that does not exist yet), a serial
KTP reader on a port that is not there, a display that cannot open. The gate
must start anyway, keep deciding what it can, report each fault (event hook,
counted ``fault.<part>``, ``last_error`` in the status), keep the watchdog fed
for an absent camera, and pick each device up when it appears.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory
from PIL import Image

from kiosk.app import build_app
from kiosk.config import load_config
from kiosk.errors import CameraError, DisplayError
from kiosk.nik.devices import NikInputError
from kiosk.peripherals import FaultBoard, RetryingKeySource, RetryingScreen
from kiosk.service import Heartbeat, Notifier


def test_gate_starts_without_camera_reader_and_screen_and_reports_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The screen sets SDL_VIDEODRIVER process-wide; give it back to the other tests.
    monkeypatch.setenv("SDL_VIDEODRIVER", os.environ.get("SDL_VIDEODRIVER", "dummy"))
    (tmp_path / "trust").mkdir()
    frames = tmp_path / "camera"  # not there yet: the camera is "absent"
    config = load_config(
        None,
        {
            "device.data_dir": str(tmp_path / "state"),
            "verify.trust_dir": str(tmp_path / "trust"),
            "gate.pin_factory": "mock",
            "camera.source": "files",
            "camera.path": str(frames),
            "camera.frame_timeout_s": 0.1,
            "camera.loop": True,
            "display.driver": "kmsdrm",  # no DRM device here: the screen cannot open
            "display.fullscreen": False,
            "nik.input": "serial",
            "nik.serial_port": str(tmp_path / "ttyUSB-missing"),
            "mqtt.enabled": False,
        },
    )
    events: list[tuple[str, dict[str, object]]] = []
    clock = [0.0]
    beat = Heartbeat(Notifier(None), monotonic=lambda: clock[0], fault_grace_s=1.0)
    with build_app(
        config,
        pin_factory=MockFactory(),
        heartbeat=beat,
        on_event=lambda e, f: events.append((e, f)),
    ) as app:
        faults = {f["part"] for e, f in events if e == "fault"}
        assert {"camera", "ktp_reader", "screen"} <= faults
        totals = app.store.totals()
        assert totals.get("fault.camera") == 1 and totals.get("fault.ktp_reader") == 1
        assert totals.get("fault.screen") == 1
        app.loop.start()
        for _ in range(3):  # the loop turns (no frames): it never raises
            assert app.loop.step()
            clock[0] += 10.0  # far beyond the fault grace
        # Absent camera: the heartbeat keeps the gate alive (KTP entry still served).
        assert beat.turn(progress=False, fault=True)
        # Still one event per outage, not one per retry.
        assert sum(1 for e, f in events if e == "fault" and f["part"] == "camera") == 1

        # The camera appears: frames flow, the fault clears.
        frames.mkdir()
        Image.fromarray(np.full((120, 160), 128, np.uint8)).save(frames / "a.png")
        deadline = time.monotonic() + 10  # the camera is looked for every 5 s
        while "camera" in _faults(app) and time.monotonic() < deadline:
            app.loop.step()
            time.sleep(0.05)
        assert "camera" not in _faults(app)
        assert ("recovered", {"part": "camera"}) in events
        assert app.loop.stats.frames >= 1


def _faults(app: object) -> dict[str, str]:
    board = app.screen._board  # type: ignore[attr-defined]
    assert isinstance(board, FaultBoard)
    return board.faults


class FlakyKeys:
    """A key source that fails on read after ``fail_after`` keys (unplugged)."""

    def __init__(self, keys: str, fail_after: int | None = None) -> None:
        self.keys = list(keys)
        self.fail_after = fail_after
        self.closed = False

    def read_key(self, timeout_s: float) -> str | None:
        if self.fail_after is not None and self.fail_after <= 0:
            raise NikInputError("device vanished")
        if self.fail_after is not None:
            self.fail_after -= 1
        return self.keys.pop(0) if self.keys else None

    def close(self) -> None:
        self.closed = True


def test_reader_unplugged_mid_run_is_reported_once_and_reopened() -> None:
    clock = [0.0]
    changes: list[tuple[str, bool]] = []
    counted: list[str] = []
    board = FaultBoard(counted.append, lambda p, f: changes.append((p, f)))
    devices = [FlakyKeys("12", fail_after=2), FlakyKeys("3")]
    plugged = [True]

    def opener() -> FlakyKeys:
        if not plugged[0]:
            raise NikInputError("no such port")
        return devices.pop(0)

    keys = RetryingKeySource(opener, board, retry_s=5.0, monotonic=lambda: clock[0])
    assert [keys.read_key(0), keys.read_key(0)] == ["1", "2"]
    plugged[0] = False
    assert keys.read_key(0) is None  # the read fails: closed, reported
    assert board.status() == {"last_error": "ktp_reader: NikInputError: device vanished"}
    for _ in range(3):
        clock[0] += 1.0
        assert keys.read_key(0) is None  # not yet retried (5 s), or retried and still absent
    clock[0] += 10.0
    assert keys.read_key(0) is None
    assert counted == ["fault.ktp_reader"]  # one outage, one event
    plugged[0] = True
    clock[0] += 10.0
    assert keys.read_key(0) == "3"
    assert changes == [("ktp_reader", True), ("ktp_reader", False)]
    assert board.status() == {}
    keys.close()
    keys.close()


def test_screen_that_fails_while_drawing_degrades_and_redraws_on_return() -> None:
    clock = [0.0]
    board = FaultBoard()
    drawn: list[str] = []
    broken = [False]

    class FakeScreen:
        size = (800, 480)

        def show_view(self, view: object) -> None:
            if broken[0]:
                raise DisplayError("drm master lost")
            drawn.append(getattr(view, "kind", "?"))

        def poll_quit(self) -> bool:
            return False

        def close(self) -> None:
            pass

    def opener() -> FakeScreen:
        if broken[0]:
            raise DisplayError("no display")
        return FakeScreen()

    from kiosk.display.views import view_for

    screen = RetryingScreen(opener, board, retry_s=1.0, monotonic=lambda: clock[0])  # type: ignore[arg-type]
    screen.show_view(view_for("idle", None, None))
    broken[0] = True
    screen.show_view(view_for("idle", None, None))
    assert "screen" in board.faults and screen.size == (0, 0)
    broken[0] = False
    clock[0] += 2.0
    screen.show_view(view_for("idle", None, None))
    assert "screen" not in board.faults and len(drawn) >= 2
    screen.close()


def test_camera_error_at_open_is_a_fault_not_a_crash(tmp_path: Path) -> None:
    from kiosk.peripherals import RetryingFrameSource

    board = FaultBoard()

    def opener() -> object:
        raise CameraError("no camera on CSI port")

    source = RetryingFrameSource(opener, board, timeout_s=0.01)  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        source.read()
    assert board.faults["camera"].startswith("CameraError")
    source.close()
    source.close()
