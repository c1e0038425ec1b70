"""``kiosk selftest``: a technician's walk through every part of one gate.

Each check prints one line, ``PASS``/``FAIL``/``SKIP`` with the part and what
was seen, so a technician on site can read it from a phone's SSH client:
relay click (listen for it; with an arm switch wired, the arm must move),
each LED, the buzzer, the level of every input (beam clear? fire-alarm contact
closed?), one camera frame, and a test picture on the screen. The exit status
is 0 only when nothing failed.

``--sim`` runs the same checks on simulated hardware: gpiozero's MockFactory
(inputs at their normal levels), a generated camera frame played from a file,
and SDL's dummy display, so CI proves the self-test itself works.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import segno
from PIL import Image

from kiosk.camera import open_frame_source
from kiosk.config import KioskConfig, load_config
from kiosk.demo import camera_frame
from kiosk.display import open_screen
from kiosk.display.render import NEUTRAL, TEXT, TEXT_DIM, TextBlock, View
from kiosk.gate import GateInputs, GateOutputs, OutputState, make_pin_factory

log = logging.getLogger(__name__)

CLICK_S = 0.3  # how long each output is switched on, long enough to see and hear

TEST_VIEW = View(
    "selftest",
    NEUTRAL,
    (TextBlock("TES LAYAR", 0.16, 0.12), TextBlock("SCREEN TEST", 0.09, 0.06, TEXT, 1)),
    (
        TextBlock("Jika teks ini terbaca dari 1,5 m, layar baik", 0.07, 0.05),
        TextBlock("Readable from 1.5 m: the screen is fine", 0.06, 0.045, TEXT_DIM),
    ),
)


# A warning fails the self-test: it is the bar for a gate to go into service.
_LINE_STATUS = {"ok": "PASS", "skip": "SKIP", "warn": "FAIL", "fail": "FAIL"}


class _Report:
    def __init__(self, out: Callable[[str], None], *, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet  # --json: lines are collected, printed as one document
        self.failed = 0
        self.results: list[dict[str, str]] = []

    def line(self, status: str, part: str, detail: str) -> None:
        self.failed += status == "FAIL"
        self.results.append({"status": status, "part": part, "detail": detail})
        if not self.quiet:
            self.out(f"{status:<4} {part:<12} {detail}")

    def check(self, part: str, work: Callable[[], str]) -> None:
        """Run ``work`` (:func:`kiosk.provision.checks.run_check`) and print its line."""
        from kiosk.provision.checks import run_check

        result = run_check(part, work)
        self.line(_LINE_STATUS[result.status], part, result.detail)


def run_selftest(
    config_path: Path | None,
    *,
    sim: bool = False,
    out: Callable[[str], None] = print,
    json_out: bool = False,
) -> int:
    """Run every check; returns 0 when none failed, else 1.

    Args:
        config_path: the gate's config file (ignored with ``sim``).
        sim: simulated hardware (mock GPIO, a file frame, dummy display).
        out: where report lines go.
        json_out: one JSON document (``{"passed": bool, "failed": n, "checks":
            [{"status", "part", "detail"}]}``) instead of lines, for machines.
    """
    report = _Report(out, quiet=json_out)
    with contextlib.ExitStack() as stack:
        if sim:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kiosk-selftest-")))
            config = _sim_config(tmp)
        else:
            assert config_path is not None
            config = load_config(config_path)
        factory = make_pin_factory(config.gate.pin_factory)
        stack.callback(factory.close)
        _gpio_checks(report, config, factory)
        report.check("camera", lambda: _camera(config))
        report.check("screen", lambda: _screen(config))
        _system_checks(report, config, sim=sim)
    if json_out:
        import json

        out(json.dumps({"passed": not report.failed, "failed": report.failed,
                        "checks": report.results}))
    else:
        out(f"selftest: {'FAILED (' + str(report.failed) + ')' if report.failed else 'all passed'}")
    return 1 if report.failed else 0


def _system_checks(report: _Report, config: KioskConfig, *, sim: bool) -> None:
    """Clock, trust bundle, device certificate, broker and outbox (kiosk.provision.checks).

    The running gate's ``diagnostics`` command judges the same facts with the same
    verdicts (kiosk.remote.diagnostics); here each fact is gathered afresh.
    """
    from kiosk.provision import checks

    if sim:
        report.check("clock", lambda: "SKIP: --sim (the host's clock)")
        report.check("trust", lambda: "SKIP: --sim (sample trust material)")
    else:
        report.check("clock", lambda: checks.clock_check(config))
        report.check("trust", lambda: checks.trust_check(config))
    report.check("camera rate", lambda: checks.camera_rate_check(config))
    report.check("nik list", lambda: checks.nik_list_check(config))
    report.check("identity", lambda: checks.identity_check(config))
    report.check("broker", lambda: checks.broker_check(config))
    report.check("outbox", lambda: checks.outbox_check(config))


def _sim_config(tmp: Path) -> KioskConfig:
    frame = tmp / "frame.png"
    Image.fromarray(camera_frame(segno.make("KIOSK SELFTEST", micro=False))).save(frame)
    return load_config(
        None,
        {
            "device.data_dir": str(tmp),
            "camera.source": "files",
            "camera.path": str(frame),
            "gate.pin_factory": "mock",
            "display.driver": "dummy",
            "display.fullscreen": False,
            "mqtt.enabled": False,
        },
    )


def _gpio_checks(report: _Report, config: KioskConfig, factory: Any) -> None:
    try:
        outputs = GateOutputs(config.gate, factory)
        inputs = GateInputs(config.gate, factory)
    except Exception as exc:
        hint = " (is the kiosk service running? systemctl stop kiosk)"
        report.line("FAIL", "gpio", f"{type(exc).__name__}: {exc}{hint}")
        return
    with outputs, inputs:
        for name in ("relay", "green", "red", "amber"):
            part = name if name == "relay" else f"led {name}"
            report.check(part, functools.partial(_click, outputs, inputs, name, config))
        report.check("buzzer", lambda: _buzzer(outputs))
        levels = inputs.read_raw()
        for name in inputs.names:
            report.check(f"input {name}", functools.partial(_input, name, levels[name]))


def _click(outputs: GateOutputs, inputs: GateInputs, name: str, config: KioskConfig) -> str:
    pins = {
        "relay": config.gate.relay_pin,
        "green": config.gate.green_led_pin,
        "red": config.gate.red_led_pin,
        "amber": config.gate.amber_led_pin,
    }
    outputs.apply(OutputState(**{name: True}))
    on = outputs.snapshot()[name]
    moved = None
    deadline = time.monotonic() + CLICK_S
    while time.monotonic() < deadline:
        if name == "relay" and "arm" in inputs.names and inputs.read_raw()["arm"]:
            moved = True
        time.sleep(0.02)
    outputs.apply(OutputState())
    off = not outputs.snapshot()[name]
    if not (on and off):
        raise RuntimeError(f"BCM {pins[name]} did not follow (on={on}, off={not off})")
    if name == "relay" and "arm" in inputs.names and not moved:
        raise RuntimeError("relay switched but the arm switch never closed")
    hint = "listen for the click" if name == "relay" else "look at the LED"
    return f"BCM {pins[name]} on {CLICK_S:.1f} s then off ({hint})"


def _buzzer(outputs: GateOutputs) -> str:
    if not outputs.has_buzzer:
        return "SKIP: no buzzer configured (gate.buzzer_pin)"
    outputs.beep("test")
    return "one beep (listen)"


def _input(name: str, active: bool) -> str:
    normal = {
        "passage": "beam clear",
        "fire_alarm": "contact closed, no alarm",
        "exit": "button released",
        "arm": "arm at rest",
    }[name]
    if active:
        problem = {
            "passage": "beam blocked: clear it, or check alignment/wiring",
            "fire_alarm": "ALARM or cut wire: check the NC contact loop. NOTHING WIRED? An "
            "unwired input reads ALARM and holds the gate OPEN: wire the panel's NC contact, "
            "or provision with --fire-alarm none",
            "exit": "button held or shorted",
            "arm": "arm switch closed at rest: check the switch",
        }[name]
        raise RuntimeError(problem)
    return normal


def _camera(config: KioskConfig) -> str:
    with open_frame_source(config.camera) as source:
        frame = source.read()
    if frame is None:
        raise RuntimeError("the camera delivered no frame")
    gray = np.asarray(frame.gray)
    h, w = gray.shape[:2]
    mean = float(gray.mean())
    if mean < 10 or mean > 245:
        raise RuntimeError(f"frame {w}x{h} is almost uniform (mean {mean:.0f}): lens cap? light?")
    return f"frame {w}x{h}, mean brightness {mean:.0f}"


def _screen(config: KioskConfig) -> str:
    if not config.display.enabled:
        return "SKIP: display.enabled = false"
    with open_screen(config.display) as screen:
        screen.show_view(TEST_VIEW)
        size = getattr(screen, "size", (0, 0))
    return f"test picture shown at {size[0]}x{size[1]}"
