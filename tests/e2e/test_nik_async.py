"""A typed NIK in list mode: the scan loop keeps turning while scrypt runs on kiosk-nik-kdf.

The gate is built by the real ``build_app`` from config (list mode, a real
signed list installed under the authority key, real HC1 certificates for the
QR side, gpiozero's MockFactory); keys come from a fake keypad the test fills.
Where a derivation must stay "in progress" deterministically, the worker's
derive is wrapped by a gate (``threading.Event``) that the test opens; the
derivation itself is always the real scrypt.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pygame
import pytest
import segno
from gpiozero.pins.mock import MockFactory

from kiosk.app import GateApp, build_app
from kiosk.camera import ArrayFrameSource
from kiosk.config import KioskConfig, load_config
from kiosk.demo import camera_frame
from kiosk.display.render import draw_view
from kiosk.display.views import nik_checking_view, view_for
from kiosk.nik.build import build_list
from kiosk.nik.kdf import DEFAULT_KDF, KdfParams
from kiosk.nik.store import install_list
from kiosk.nik.verifier import KdfJob
from kiosk.nik.worker import CHECK_TIMEOUT_S as NIK_CHECK_TIMEOUT_S
from kiosk.nik.worker import THREAD_NAME, KdfWorker
from kiosk.signing import generate_authority_key, save_public_key
from kiosk.verify import issuer

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
MEMBER, OTHER_MEMBER = "3171014506990001", "3273012301850002"
NON_MEMBER = "5171011212120001"
PULSE_MS = 150
FAST_KDF = KdfParams(n=2**4, r=8, p=1)
WAIT_S = 5.0  # bound for anything a real thread does here; never reached when green


class Keys:
    """A keypad the test types on: keys wait here until the loop reads them."""

    def __init__(self) -> None:
        self.queue: list[str] = []

    def type(self, *niks: str) -> None:
        for nik in niks:
            self.queue += [*nik, "enter"]

    def read_key(self, timeout_s: float) -> str | None:
        return self.queue.pop(0) if self.queue else None

    def close(self) -> None:
        pass


class Gate:
    """Holds the worker's derivation until opened; then the real scrypt (or a failure)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.started = threading.Event()
        self.fail: Exception | None = None

    def derive(self, job: KdfJob) -> bytes:
        self.started.set()
        if not self.open.wait(WAIT_S):
            raise TimeoutError("test gate never opened")
        self.open.clear()  # one derivation per opening
        if self.fail is not None:
            raise self.fail
        return job.derive()


class Clock:
    """The gate's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _config(tmp_path: Path, kdf: KdfParams) -> KioskConfig:
    key = generate_authority_key()
    save_public_key(key.public_key(), tmp_path / "authority.pem")
    built = build_list(
        [MEMBER, OTHER_MEMBER],
        tmp_path / "central",
        key,
        version=1,
        issued_at=NOW - timedelta(hours=1),
        lifetime=timedelta(days=7),
        kdf=kdf,
    )
    install_list(
        built.manifest_path, built.data_path, tmp_path / "niklist", [key.public_key()], NOW
    )
    signer_key, der = issuer.make_signer(
        "NIK e2e DSC", not_before=NOW - timedelta(days=30), not_after=NOW + timedelta(days=700)
    )
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "dsc.der").write_bytes(der)
    hc1 = issuer.issue_hc1(
        issuer.sample_vaccination(),
        signer_key,
        der,
        iat=NOW - timedelta(days=1),
        exp=NOW + timedelta(days=90),
    )
    (tmp_path / "qr.txt").write_text(hc1)
    return load_config(
        None,
        {
            "device.data_dir": str(tmp_path / "state"),
            "verify.trust_dir": str(tmp_path / "trust"),
            "verify.authority_keys": str(tmp_path / "authority.pem"),
            "gate.pin_factory": "mock",
            "gate.relay_pulse_ms": PULSE_MS,
            "gate.debounce_ms": 0,
            "display.driver": "dummy",
            "display.fullscreen": False,
            "mqtt.enabled": False,
            "nik.mode": "list",
            "nik.list_dir": str(tmp_path / "niklist"),
            # A key source must exist for the worker to be built; the test swaps in its keypad.
            "nik.input": "terminal",
        },
    )


def _frames(tmp_path: Path) -> ArrayFrameSource:
    """One frame with the certificate's QR code, then empty frames for ever."""
    qr = camera_frame(segno.make((tmp_path / "qr.txt").read_text(), error="m", micro=False))
    blank = np.full_like(qr, 235)

    class Frames:
        def __iter__(self) -> Iterator[np.ndarray]:
            yield qr
            while True:
                yield blank

    return ArrayFrameSource(Frames())


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Gate:
    """build_app's worker with its derivation behind a test gate (still real scrypt)."""
    gate = Gate()
    monkeypatch.setattr("kiosk.app.KdfWorker", lambda: KdfWorker(gate.derive))
    return gate


class Run:
    """A built gate with the test's keypad, clock and event record."""

    def __init__(self, app: GateApp, keys: Keys, clock: Clock, factory: MockFactory) -> None:
        self.app, self.keys, self.clock, self.factory = app, keys, clock, factory
        self.events: list[tuple[str, dict[str, Any]]] = []

    def decisions(self) -> list[dict[str, Any]]:
        return [f for e, f in self.events if e == "decision"]

    def screens(self) -> list[str]:
        return [f["screen"] for e, f in self.events if e == "screen"]

    def step_until(self, done: Any, *, frames: bool = True) -> int:
        """Run loop turns until ``done()``; returns the turns taken.

        ``frames``: whole turns with a camera frame each (the first frame holds
        the certificate's QR code); else only the gate's tick, no frame.
        """
        deadline = time.monotonic() + WAIT_S
        turns = 0
        while not done():
            assert time.monotonic() < deadline, "loop condition not reached in time"
            if frames:
                assert self.app.loop.step()
            else:
                self.app.loop.tick()
            turns += 1
            time.sleep(0.001)
        return turns


@pytest.fixture
def run_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    stack: list[Any] = []

    def start(kdf: KdfParams = FAST_KDF, clock: Clock | None = None) -> Run:
        config = _config(tmp_path, kdf)
        factory, keys = MockFactory(), Keys()
        clock = clock or Clock()
        context = build_app(
            config,
            source=_frames(tmp_path),
            pin_factory=factory,
            wall_clock=lambda: NOW,
            monotonic=clock,
            on_event=lambda e, f: run.events.append((e, f)),
            keys=keys,
        )
        app = context.__enter__()
        stack.append(context)
        run = Run(app, keys, clock, factory)
        app.loop.start()
        return run

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


def test_the_loop_turns_and_a_pulse_ends_on_time_while_the_kdf_runs(
    run_gate: Any, gated: Gate
) -> None:
    run = run_gate()
    loop, outputs = run.app.loop, run.app.outputs
    assert loop.step()  # the QR frame: a real certificate, allowed
    assert run.decisions() == [{"result": "allow", "reason": "ok", "input": "qr"}]
    assert outputs.snapshot()["relay"] is True
    pulse_ends = run.clock.now + PULSE_MS / 1000

    run.keys.type(MEMBER)
    assert loop.step()  # reads the 16 digits and ENTER: submitted, not decided
    assert loop.nik_checking and gated.started.wait(WAIT_S)
    assert run.screens()[-1] == "nik_checking"
    frames = loop.stats.frames
    for _ in range(5):  # the derivation is still held: frames keep flowing
        run.clock.now += 0.05
        assert loop.step()
        if run.clock.now < pulse_ends:
            assert outputs.snapshot()["relay"] is True
        else:
            assert outputs.snapshot()["relay"] is False  # ended on the first turn past it
    assert run.clock.now >= pulse_ends
    assert loop.stats.frames == frames + 5
    assert len(run.decisions()) == 1 and loop.nik_checking  # no NIK decision yet

    gated.open.set()
    run.step_until(lambda: not loop.nik_checking)
    assert run.decisions()[-1] == {"result": "allow", "reason": "ok", "input": "nik"}
    assert outputs.snapshot()["relay"] is True  # the NIK holder's own pulse
    for _ in range(3):
        assert loop.step()
    assert len(run.decisions()) == 2
    totals = run.app.store.totals()
    assert totals["allowed"] == 2 and totals["input.nik"] == 1 and totals["input.qr"] == 1
    assert loop.stats.scans == 2 and loop.stats.allowed == 2


def test_the_real_production_kdf_leaves_the_loop_turning(run_gate: Any) -> None:
    # No test gate: build_app's own worker runs scrypt at N=2^16 (~0.2 s here, ~1 s on a Pi 4).
    run = run_gate(kdf=DEFAULT_KDF)
    loop = run.app.loop
    assert [t.name for t in threading.enumerate()].count(THREAD_NAME) == 1
    assert loop.step()  # the QR frame
    run.keys.type(MEMBER)
    assert loop.step()
    assert loop.nik_checking
    frames = loop.stats.frames
    turns = run.step_until(lambda: not loop.nik_checking)
    assert turns >= 3 and loop.stats.frames == frames + turns
    assert run.decisions()[-1] == {"result": "allow", "reason": "ok", "input": "nik"}


def test_a_second_nik_typed_while_busy_waits_for_the_first(run_gate: Any, gated: Gate) -> None:
    run = run_gate()
    loop = run.app.loop
    loop.tick()
    run.keys.type(MEMBER, NON_MEMBER)  # a reader delivering two NIKs at once
    loop.tick()
    assert loop.nik_checking and len(run.keys.queue) == 17  # the second waits in the device
    loop.tick()
    assert len(run.keys.queue) == 17 and run.decisions() == []
    gated.open.set()
    run.step_until(lambda: len(run.decisions()) == 1, frames=False)
    assert loop.nik_checking and run.keys.queue == []  # the second is now being checked
    gated.open.set()
    run.step_until(lambda: not loop.nik_checking, frames=False)
    assert [(d["result"], d["reason"]) for d in run.decisions()] == [
        ("allow", "ok"),
        ("deny", "nik_not_listed"),
    ]
    totals = run.app.store.totals()
    assert totals["allowed"] == 1 and totals["denied.nik_not_listed"] == 1


def test_a_failed_derivation_is_an_internal_error_deny(
    run_gate: Any, gated: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run = run_gate()
    loop = run.app.loop
    gated.fail = RuntimeError(f"boom {MEMBER}")
    run.keys.type(MEMBER)
    loop.tick()
    gated.open.set()
    run.step_until(lambda: not loop.nik_checking, frames=False)
    assert run.decisions() == [{"result": "deny", "reason": "internal_error", "input": "nik"}]
    assert run.app.store.totals()["denied.internal_error"] == 1
    assert MEMBER not in caplog.text and "boom" not in caplog.text
    # The worker survives: the next NIK is checked normally.
    gated.fail = None
    run.keys.type(OTHER_MEMBER)
    loop.tick()
    gated.open.set()
    run.step_until(lambda: not loop.nik_checking, frames=False)
    assert run.decisions()[-1]["result"] == "allow"


def test_no_result_in_time_is_denied_and_the_late_result_dropped(
    run_gate: Any, gated: Gate
) -> None:
    run = run_gate()
    loop = run.app.loop
    run.keys.type(MEMBER)
    loop.tick()
    assert gated.started.wait(WAIT_S)
    assert loop.next_deadline(run.clock.now) == run.clock.now + NIK_CHECK_TIMEOUT_S
    run.clock.now += NIK_CHECK_TIMEOUT_S - 0.01
    loop.tick()
    assert loop.nik_checking
    run.clock.now += 0.01
    loop.tick()
    assert not loop.nik_checking
    assert run.decisions() == [{"result": "deny", "reason": "internal_error", "input": "nik"}]
    # Typed while the stuck derivation still runs: denied at once, never left waiting.
    run.keys.type(OTHER_MEMBER)
    loop.tick()
    assert not loop.nik_checking and run.decisions()[-1]["reason"] == "internal_error"
    # The late result arrives and is dropped: nothing decided or counted twice.
    gated.open.set()
    assert loop.nik_check is not None
    worker = loop.nik_check.worker
    run.step_until(lambda: not worker.busy, frames=False)
    assert len(run.decisions()) == 2
    assert run.app.store.totals()["denied.internal_error"] == 2
    assert run.app.loop._nik_verifier.stats.errors == 2
    # The worker is free again.
    run.keys.type(OTHER_MEMBER)
    loop.tick()
    gated.open.set()
    run.step_until(lambda: not loop.nik_checking, frames=False)
    assert run.decisions()[-1] == {"result": "allow", "reason": "ok", "input": "nik"}


def test_a_stopped_worker_denies_at_once(run_gate: Any, gated: Gate) -> None:
    run = run_gate()
    loop = run.app.loop
    run.keys.type(MEMBER)
    loop.tick()
    assert gated.started.wait(WAIT_S)
    assert loop.nik_check is not None
    worker = loop.nik_check.worker
    gated.open.set()  # lets close() join
    worker.close()
    loop.tick()  # poll may still see the result finished before the stop
    assert not loop.nik_checking
    assert len(run.decisions()) == 1
    run.keys.type(OTHER_MEMBER)
    loop.tick()
    assert run.decisions()[-1] == {"result": "deny", "reason": "internal_error", "input": "nik"}


def test_leaving_the_app_stops_the_kdf_thread(run_gate: Any, tmp_path: Path) -> None:
    before = [t.name for t in threading.enumerate()].count(THREAD_NAME)
    config = _config(tmp_path, FAST_KDF)
    with build_app(config, source=_frames(tmp_path), pin_factory=MockFactory()) as app:
        assert app.loop.nik_check is not None
        assert [t.name for t in threading.enumerate()].count(THREAD_NAME) == before + 1
    assert [t.name for t in threading.enumerate()].count(THREAD_NAME) == before


def test_the_nik_never_reaches_a_log_at_debug(
    run_gate: Any, gated: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    run = run_gate()
    loop = run.app.loop
    for nik in (MEMBER, NON_MEMBER, MEMBER):  # allow, deny, anti-passback deny
        run.keys.type(nik)
        loop.tick()
        gated.open.set()
        run.step_until(lambda: not loop.nik_checking, frames=False)
    assert [d["reason"] for d in run.decisions()] == ["ok", "nik_not_listed", "already_admitted"]
    text = caplog.text + repr(run.events)
    for nik in (MEMBER, NON_MEMBER):
        assert nik not in text and nik[6:12] not in text


def test_the_checking_screen_is_bilingual_and_calm() -> None:
    view = view_for("nik_checking", None)
    assert view == nik_checking_view() and view.kind == "nik_checking"
    drawn = draw_view(pygame.Surface((800, 480)), view)
    shown = " ".join(line.text for line in drawn)
    assert "MEMERIKSA NIK" in shown and "CHECKING YOUR ID NUMBER" in shown
