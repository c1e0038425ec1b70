"""Benchmark frame-to-relay latency through the real gate against a bare decode floor.

Each run shows the gate a *different* freshly signed vaccination certificate
(640×480 grey, a real ES256-signed HC1 code of the usual ~585 characters
rendered by segno as it would appear on a phone), so anti-passback never
refuses one. The frame goes through the real wiring of :func:`kiosk.app.build_app`:
frame source → decoder → RepeatFilter → verifier → gate driver → GateOutputs
on gpiozero's MockFactory → (dummy) screen → SQLite count. The latency runs
from the frame's capture timestamp (``Frame.timestamp``, stamped by the
source as it hands the frame over) to the moment the relay *pin* changed level
(the MockPin's own record of its last change, same monotonic clock). After each
frame the loop keeps ticking, as a camera's frames would make it, until the
state machine itself ends the pulse (the relay guard never has to cut it,
which the bench checks), then a passage on the beam sensor closes the grant.

Floors, measured in the same run on the same frames: a bare zxing-cpp call
restricted to QR codes (what any gate must spend to read the code at all),

* ``floor_bare_zxing``: in a tight loop, the issue's definition (warm caches);
* ``floor_in_loop``: one bare call per frame on an untouched copy of it, right
  after that frame's pulse and passage, i.e. after the same idle wait the gate's
  own decode comes after (cold caches, as a traveller's first frame finds them).

Ratios are p50/p50 and p99/p99. ``--steps`` adds where the time goes: median
offsets (µs from the capture stamp) at which each step of the path starts and ends.

Usage: PYTHONPATH=. python bench/pipeline.py [--runs 100] [--backend zxing] [--steps]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import numpy as np
import segno
import zxingcpp
from gpiozero.pins.mock import MockFactory

from kiosk.app import build_app
from kiosk.camera import ArrayFrameSource
from kiosk.config import load_config
from kiosk.decode import create_decoder
from kiosk.demo import camera_frame
from kiosk.verify import issuer

NOW = datetime(2026, 6, 1, tzinfo=UTC)
# The loop's ticks end a pulse within one turn; twice this means something else cut it.
PULSE_MS = 50
PASSAGE_PIN = 23


def certificate_frames(count: int) -> tuple[list[np.ndarray], list[str], bytes]:
    """``count`` camera frames, each showing a different signed certificate; texts; the DSC."""
    key, der = issuer.make_signer(
        "Bench DSC", not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=365)
    )
    frames, texts = [], []
    for i in range(count):
        payload = issuer.sample_vaccination()
        # A distinct UVCI per traveller: anti-passback keys on the certificate identifier.
        payload["v"][0]["ci"] = f"URN:UVCI:01:DE:BENCH{i:025d}#0"
        text = issuer.issue_hc1(
            payload, key, der, iat=NOW - timedelta(hours=1), exp=NOW + timedelta(days=30)
        )
        frames.append(camera_frame(segno.make(text, error="m", micro=False)))
        texts.append(text)
    return frames, texts, der


def percentile_ms(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1, nearest rank) of seconds, in milliseconds, rounded for JSON."""
    ordered = sorted(samples)
    rank = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return round(ordered[rank] * 1000, 3)


def bare_decode_s(frames: list[np.ndarray], texts: list[str], repeats: int) -> list[float]:
    """Seconds per bare zxing-cpp QR-only call on each frame (the floor)."""
    samples = []
    for _ in range(repeats):
        for frame, text in zip(frames, texts, strict=True):
            start = time.perf_counter()
            found = zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.QRCode)
            samples.append(time.perf_counter() - start)
            assert [b.text for b in found] == [text]
    return samples


def gate_decode_s(backend: str, frames: list[np.ndarray], repeats: int) -> list[float]:
    """Seconds per call of the gate's own decoder (``create_decoder(backend).decode``)."""
    decoder = create_decoder(backend)
    samples = []
    for _ in range(repeats):
        for frame in frames:
            start = time.perf_counter()
            assert len(decoder.decode(frame)) == 1
            samples.append(time.perf_counter() - start)
    return samples


# The parts of the path --steps times: (label, attribute path from the loop, method).
STEPS = (
    ("poll", ("_pacers", 0), "poll"),
    ("throttle", ("throttle",), "wants"),
    ("decode", ("_decoder",), "decode"),
    ("verify", ("_verifier",), "verify"),
    ("admit", ("driver",), "admit"),
    ("outputs", ("driver", "outputs"), "apply"),
    ("passback_write", ("driver", "passback"), "admit"),
    ("screen", (), "_show"),
    ("count", ("_store",), "record"),
    ("tick", (), "tick"),
)


def _instrument(loop: Any, marks: list[tuple[str, float]]) -> None:
    """Wrap each part in :data:`STEPS` so its start and end land in ``marks`` (bench only)."""
    for label, path, method in STEPS:
        part = loop
        for step in path:
            part = part[step] if isinstance(step, int) else getattr(part, step, None)
        if part is None:
            continue
        inner = getattr(part, method)

        def timed(*args: Any, _inner: Any = inner, _label: str = label, **kwargs: Any) -> Any:
            marks.append((_label + ">", time.monotonic()))
            try:
                return _inner(*args, **kwargs)
            finally:
                marks.append((_label + "<", time.monotonic()))

        setattr(part, method, timed)


def step_offsets(marks: list[list[tuple[str, float]]], stamps: list[float]) -> dict[str, Any]:
    """Median start/end (µs after the capture stamp) of each step, over the frames."""
    offsets: dict[str, list[float]] = {}
    for frame_marks, stamp in zip(marks, stamps, strict=True):
        seen: set[str] = set()
        for label, at in frame_marks:
            if label not in seen:  # the first call of a step in the frame's turn
                seen.add(label)
                offsets.setdefault(label, []).append((at - stamp) * 1e6)
    medians = {label: float(np.median(values)) for label, values in offsets.items()}
    return {
        label.rstrip("><"): [round(medians[label.rstrip("><") + ">"], 1),
                             round(medians.get(label.rstrip("><") + "<", float("nan")), 1)]
        for label in sorted(medians, key=medians.__getitem__) if label.endswith(">")
    }


def relay_on_at(pin: Any, since: int) -> float | None:
    """Monotonic time the relay pin went active in its history after entry ``since``.

    gpiozero's MockPin keeps each change as a delta from the previous one and
    the monotonic time of its last change; walking back from that gives each
    change's time.
    """
    at = pin._last_change
    for index in range(len(pin.states) - 1, since - 1, -1):
        if pin.states[index].state and (index == 0 or not pin.states[index - 1].state):
            return float(at)
        at -= pin.states[index].timestamp
    return None


def frame_to_relay_s(
    backend: str, frames: list[np.ndarray], texts: list[str], der: bytes, steps: bool = False
) -> dict[str, Any]:
    """Show each frame to a built gate once; seconds from capture to relay on, per frame.

    Also the in-loop floor: a bare call per frame on an untouched copy, after the
    same wait as the gate's own decode.
    """
    latencies: list[float] = []
    in_loop_floor: list[float] = []
    cold = [frame.copy() for frame in frames]
    per_frame_marks: list[list[tuple[str, float]]] = []
    cut_by_guard = 0

    with tempfile.TemporaryDirectory() as folder:
        trust = Path(folder) / "trust"
        trust.mkdir()
        (trust / "dsc.der").write_bytes(der)
        config = load_config(
            None,
            {
                "device.data_dir": folder,
                "verify.trust_dir": str(trust),
                "decoder.backend": backend,
                "decoder.rearm_s": 0.0,
                "gate.pin_factory": "mock",
                "gate.relay_pulse_ms": PULSE_MS,
                "gate.passage_pin": PASSAGE_PIN,
                "gate.debounce_ms": 0,
                "display.driver": "dummy",
                "display.fullscreen": False,
                "mqtt.enabled": False,
            },
        )
        factory = MockFactory()
        stamps: list[float] = []

        def capture_clock() -> float:
            """The source's clock: each frame's capture timestamp, recorded."""
            stamps.append(time.monotonic())
            return stamps[-1]

        source = ArrayFrameSource(frames, clock=capture_clock)
        with build_app(config, source=source, pin_factory=factory, wall_clock=lambda: NOW) as app:
            app.loop.start()
            marks: list[tuple[str, float]] = []
            if steps:
                _instrument(app.loop, marks)
            beam = factory.pin(PASSAGE_PIN)
            relay = factory.pin(config.gate.relay_pin)
            for frame, text in zip(cold, texts, strict=True):
                del marks[:]
                history = len(relay.states)
                assert app.loop.step(), "the source ended early"
                # The turn's own tick may already have ended a short pulse: read the history.
                opened = relay_on_at(relay, history)
                assert opened is not None, "the frame did not open the gate"
                latencies.append(opened - stamps[-1])
                per_frame_marks.append(list(marks))
                started = time.monotonic()
                while app.outputs.snapshot()["relay"]:  # the loop's own ticks end the pulse
                    app.loop.tick()
                    time.sleep(0.002)
                if time.monotonic() - started > 2 * PULSE_MS / 1000:
                    cut_by_guard += 1
                for level in (True, False):  # the traveller walks through: grant used
                    beam.drive_high() if level else beam.drive_low()
                    app.loop.tick()
                    app.loop.tick()
                start = time.perf_counter()  # the same wait as the next gate frame has had
                found = zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.QRCode)
                in_loop_floor.append(time.perf_counter() - start)
                assert [b.text for b in found] == [text]
            stats = app.loop.stats
            assert stats.allowed == len(frames), f"{stats.denied} of {len(frames)} denied"
            totals = app.store.totals()
    return {
        "latencies": latencies,
        "in_loop_floor": in_loop_floor,
        "steps": step_offsets(per_frame_marks, stamps) if steps else None,
        "pulses_not_ended_by_the_loop": cut_by_guard,
        "passages": totals.get("passage", 0),
        "allowed_counted": totals.get("allowed", 0),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100, help="certificates shown (each once)")
    parser.add_argument("--repeats", type=int, default=5, help="floor calls per frame")
    parser.add_argument("--backend", default="zxing", choices=("zxing", "pyzbar"))
    parser.add_argument("--steps", action="store_true", help="time each step of the path")
    args = parser.parse_args(argv)
    frames, texts, der = certificate_frames(args.runs)
    floor = bare_decode_s(frames, texts, args.repeats)
    gate_decode = gate_decode_s(args.backend, frames, args.repeats)
    run = frame_to_relay_s(args.backend, frames, texts, der, steps=args.steps)
    latencies = run["latencies"]
    p50, p99 = percentile_ms(latencies, 0.5), percentile_ms(latencies, 0.99)
    floor50, floor99 = percentile_ms(floor, 0.5), percentile_ms(floor, 0.99)
    loop50 = percentile_ms(run["in_loop_floor"], 0.5)
    loop99 = percentile_ms(run["in_loop_floor"], 0.99)
    result: dict[str, Any] = {
        "bench": "pipeline",
        "backend": args.backend,
        "runs": args.runs,
        "certificate_chars": round(sum(map(len, texts)) / len(texts)),
        "floor_bare_zxing_ms_p50": floor50,
        "floor_bare_zxing_ms_p99": floor99,
        "floor_in_loop_ms_p50": loop50,
        "floor_in_loop_ms_p99": loop99,
        "gate_decoder_ms_p50": percentile_ms(gate_decode, 0.5),
        "frame_to_relay_ms_p50": p50,
        "frame_to_relay_ms_p99": p99,
        "ratio_p50_over_floor_p50": round(p50 / floor50, 3),
        "ratio_p99_over_floor_p99": round(p99 / floor99, 3),
        "ratio_p50_over_in_loop_floor_p50": round(p50 / loop50, 3),
        "ratio_p99_over_in_loop_floor_p99": round(p99 / loop99, 3),
        "pulses_not_ended_by_the_loop": run["pulses_not_ended_by_the_loop"],
        "passages": run["passages"],
        "allowed_counted": run["allowed_counted"],
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": sys.version.split()[0],
    }
    if run["steps"] is not None:
        result["steps_us_from_capture"] = run["steps"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
