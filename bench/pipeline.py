"""Benchmark frame-to-relay latency through the real gate against a bare decode floor.

Each run shows the gate a *different* freshly signed vaccination certificate
(640×480 grey, a real ES256-signed HC1 code of the usual ~585 characters
rendered by segno as it would appear on a phone), so anti-passback never
refuses one. The frame goes through the real wiring of :func:`kiosk.app.build_app`:
frame source → decoder → RepeatFilter → verifier → gate driver → GateOutputs
on gpiozero's MockFactory → (dummy) screen → SQLite count. The latency runs
from the frame's capture timestamp (``Frame.timestamp``, stamped by the
source as it hands the frame over) to the moment the relay is switched on. After each frame the
loop keeps ticking, as a camera's frames would make it, until the state
machine itself ends the pulse (the relay guard never has to cut it, which the
bench checks), then a passage on the beam sensor closes the grant.

The floor, measured in the same run on the same frames: a bare zxing-cpp call
restricted to QR codes (what any gate must spend to read the code at all).
Ratios are p50/p50 and p99/p99.

Usage: PYTHONPATH=. python bench/pipeline.py [--runs 100] [--backend zxing]
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


def frame_to_relay_s(backend: str, frames: list[np.ndarray], der: bytes) -> dict[str, Any]:
    """Show each frame to a built gate once; seconds from capture to relay on, per frame."""
    latencies: list[float] = []
    relay_on_at: list[float] = []
    cut_by_guard = 0

    def on_event(event: str, fields: dict[str, Any]) -> None:
        if event == "relay" and fields["state"] == "on":
            relay_on_at.append(time.monotonic())

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
        with build_app(
            config, source=source, pin_factory=factory, wall_clock=lambda: NOW, on_event=on_event
        ) as app:
            app.loop.start()
            beam = factory.pin(PASSAGE_PIN)
            for _ in frames:
                seen = len(relay_on_at)
                assert app.loop.step(), "the source ended early"
                assert len(relay_on_at) == seen + 1, "the frame did not open the gate"
                latencies.append(relay_on_at[-1] - stamps[-1])
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
            stats = app.loop.stats
            assert stats.allowed == len(frames), f"{stats.denied} of {len(frames)} denied"
            totals = app.store.totals()
    return {
        "latencies": latencies,
        "pulses_not_ended_by_the_loop": cut_by_guard,
        "passages": totals.get("passage", 0),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100, help="certificates shown (each once)")
    parser.add_argument("--repeats", type=int, default=5, help="floor calls per frame")
    parser.add_argument("--backend", default="zxing", choices=("zxing", "pyzbar"))
    args = parser.parse_args(argv)
    frames, texts, der = certificate_frames(args.runs)
    floor = bare_decode_s(frames, texts, args.repeats)
    gate_decode = gate_decode_s(args.backend, frames, args.repeats)
    run = frame_to_relay_s(args.backend, frames, der)
    latencies = run["latencies"]
    p50, p99 = percentile_ms(latencies, 0.5), percentile_ms(latencies, 0.99)
    floor50, floor99 = percentile_ms(floor, 0.5), percentile_ms(floor, 0.99)
    result: dict[str, Any] = {
        "bench": "pipeline",
        "backend": args.backend,
        "runs": args.runs,
        "certificate_chars": round(sum(map(len, texts)) / len(texts)),
        "floor_bare_zxing_ms_p50": floor50,
        "floor_bare_zxing_ms_p99": floor99,
        "gate_decoder_ms_p50": percentile_ms(gate_decode, 0.5),
        "frame_to_relay_ms_p50": p50,
        "frame_to_relay_ms_p99": p99,
        "ratio_p50_over_floor_p50": round(p50 / floor50, 3),
        "ratio_p99_over_floor_p99": round(p99 / floor99, 3),
        "pulses_not_ended_by_the_loop": run["pulses_not_ended_by_the_loop"],
        "passages": run["passages"],
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": sys.version.split()[0],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
