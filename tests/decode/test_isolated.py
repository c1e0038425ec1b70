"""A decoder that aborts or hangs in its worker process does not stop the gate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from kiosk.app import build_app
from kiosk.camera import ArrayFrameSource
from kiosk.config import load_config
from kiosk.decode import available_backends, create_decoder
from kiosk.decode.base import Decoder
from kiosk.decode.isolated import IsolatedDecoder
from tests.crashdecoders import ABORT, HANG, frame

SPEC = "tests.crashdecoders:MisbehavingDecoder"


class Fallback(Decoder):
    """Stands in for zxing-cpp while the worker is down; records what it saw."""

    name = "fallback"

    def __init__(self) -> None:
        self.frames = 0

    def decode(self, gray: np.ndarray) -> list[str]:
        self.frames += 1
        return ["from-fallback"]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _ready(decoder: IsolatedDecoder) -> None:
    """Wait until the worker answers (its start-up imports take a moment)."""
    deadline = time.monotonic() + 30
    while decoder.decode(frame(5)) != ["pixel-5"]:
        assert time.monotonic() < deadline, "worker never became ready"
        time.sleep(0.02)


@pytest.fixture
def isolated() -> Iterator[tuple[IsolatedDecoder, Fallback, Clock]]:
    fallback, clock = Fallback(), Clock()
    decoder = IsolatedDecoder(SPEC, name="misbehaving", fallback=fallback, timeout_s=0.5,
                              clock=clock)
    _ready(decoder)
    yield decoder, fallback, clock
    decoder.close()


def test_frames_cross_to_the_worker_and_back(
    isolated: tuple[IsolatedDecoder, Fallback, Clock],
) -> None:
    decoder, fallback, _ = isolated
    before = fallback.frames  # the fallback read while the worker started
    assert decoder.decode(frame(9)) == ["pixel-9"]
    assert decoder.decode(frame(0)) == []
    assert decoder.decode(frame(42, (720, 1280))) == ["pixel-42"]
    assert decoder.crashes == 0 and fallback.frames == before


def test_an_abort_is_contained_reported_and_the_worker_comes_back(
    isolated: tuple[IsolatedDecoder, Fallback, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    decoder, fallback, clock = isolated
    first_pid = decoder.worker_pid
    started = time.monotonic()
    assert decoder.decode(frame(ABORT)) == ["from-fallback"]  # this frame: the fallback
    assert time.monotonic() - started < 2.0
    assert decoder.crashes == 1 and decoder.worker_pid is None
    assert "decoder worker misbehaving failed" in caplog.text
    assert decoder.decode(frame(9)) == ["from-fallback"]  # back-off: still the fallback
    clock.t += 1.0  # the back-off has run out: a new worker
    _ready(decoder)
    assert decoder.worker_pid not in (None, first_pid)
    assert fallback.frames >= 2


def test_a_hang_is_cut_after_the_timeout(
    isolated: tuple[IsolatedDecoder, Fallback, Clock],
) -> None:
    decoder, _, clock = isolated
    started = time.monotonic()
    assert decoder.decode(frame(HANG)) == ["from-fallback"]
    assert 0.4 < time.monotonic() - started < 3.0
    assert decoder.crashes == 1
    clock.t += 1.0
    _ready(decoder)
    assert decoder.decode(frame(ABORT)) == ["from-fallback"]
    assert decoder.crashes == 2
    clock.t += 1.5  # the back-off doubled: 2 s
    assert decoder.decode(frame(9)) == ["from-fallback"]
    assert decoder.worker_pid is None


def test_close_stops_the_worker_and_is_idempotent() -> None:
    decoder = IsolatedDecoder(SPEC, name="misbehaving")
    _ready(decoder)
    pid = decoder.worker_pid
    assert pid is not None
    decoder.close()
    decoder.close()
    assert decoder.worker_pid is None
    assert decoder.decode(frame(9)) == []  # closed, no fallback: nothing read


@pytest.mark.skipif("pyzbar" not in available_backends(), reason="pyzbar not installed")
def test_pyzbar_is_isolated_when_asked_and_reads_the_same(tmp_path: Path) -> None:
    from tests.scancorpus import make_case

    case = make_case("clean", 1, 3.0, seed=2)
    plain = create_decoder("pyzbar")
    isolated = create_decoder("pyzbar", isolate=True)
    try:
        assert isinstance(isolated, IsolatedDecoder)
        assert not isinstance(plain, IsolatedDecoder)
        _ready_real(isolated, case.gray, case.text)
        assert isolated.decode(case.gray) == plain.decode(case.gray) == [case.text]
    finally:
        isolated.close()


def _ready_real(decoder: IsolatedDecoder, gray: np.ndarray, text: str) -> None:
    deadline = time.monotonic() + 30
    while not decoder.ready:  # the fallback reads meanwhile
        assert decoder.decode(gray) in ([text], [])
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_the_gate_keeps_turning_when_its_decoder_aborts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "trust").mkdir()
    config = load_config(None, {
        "device.data_dir": str(tmp_path / "state"),
        "verify.trust_dir": str(tmp_path / "trust"),
        "gate.pin_factory": "mock",
        "display.driver": "dummy",
        "display.fullscreen": False,
        "mqtt.enabled": False,
        "decoder.idle_after_s": 0.0,
    })
    fallback = Fallback()
    made: list[IsolatedDecoder] = []

    def misbehaving(backend: str, *, isolate: bool = False) -> IsolatedDecoder:
        made.append(IsolatedDecoder(SPEC, name="misbehaving", fallback=fallback, timeout_s=0.5))
        return made[0]

    monkeypatch.setattr("kiosk.app.create_decoder", misbehaving)
    frames = [frame(5), frame(ABORT), frame(0), frame(0)]
    with build_app(config, source=ArrayFrameSource(frames), pin_factory=MockFactory()) as app:
        _ready(made[0])
        app.loop.start()
        for _ in frames:
            assert app.loop.step()  # the abort frame too: the loop keeps turning
        assert not app.outputs.snapshot()["relay"]
        assert made[0].crashes == 1
        assert app.loop.stats.frames == len(frames)
    assert made[0].worker_pid is None  # leaving the app closed the worker
