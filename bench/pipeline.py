"""Benchmark end-to-end frame-to-relay latency against decoding alone.

One realistic frame (640×480 grey, a real ES256-signed HC1 certificate of the
usual ~585 characters rendered by segno as it would appear on a phone) goes
through the real ScanLoop: decode → RepeatFilter → verify → GateOutputs on
gpiozero's MockFactory → (dummy) screen → SQLite count. The latency is measured
from the frame's capture timestamp to the relay pin's rising edge in the
MockFactory history. In the same run, the decoder alone is timed on the same
frame; the ratio says how much the rest of the pipeline adds.

Usage: PYTHONPATH=. python bench/pipeline.py [--runs 100] [--backend zxing]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import numpy as np
import segno
from gpiozero.pins.mock import MockFactory

from kiosk.app import build_app
from kiosk.camera import ArrayFrameSource
from kiosk.config import load_config
from kiosk.decode import create_decoder
from kiosk.demo import camera_frame
from kiosk.verify import issuer

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def certificate_frame() -> tuple[np.ndarray, bytes, int]:
    """A camera frame showing a freshly signed vaccination certificate, its DSC, text length."""
    key, der = issuer.make_signer(
        "Bench DSC", not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=365)
    )
    text = issuer.issue_hc1(
        issuer.sample_vaccination(),
        key,
        der,
        iat=NOW - timedelta(hours=1),
        exp=NOW + timedelta(days=30),
    )
    return camera_frame(segno.make(text, error="m", micro=False)), der, len(text)


def median_ms(samples: list[float]) -> float:
    """Median of seconds, in milliseconds, rounded for JSON."""
    return round(statistics.median(samples) * 1000, 3)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--backend", default="zxing", choices=("zxing", "pyzbar"))
    args = parser.parse_args(argv)
    frame, der, length = certificate_frame()

    decoder = create_decoder(args.backend)
    decode_s = []
    for _ in range(args.runs):
        start = time.perf_counter()
        texts = decoder.decode(frame)
        decode_s.append(time.perf_counter() - start)
        assert len(texts) == 1

    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        trust = Path(folder) / "trust"
        trust.mkdir()
        (trust / "dsc.der").write_bytes(der)
        config = load_config(
            None,
            {
                "device.data_dir": folder,
                "verify.trust_dir": str(trust),
                "decoder.backend": args.backend,
                "decoder.rearm_s": 0.0,
                "gate.pin_factory": "mock",
                "gate.relay_pulse_ms": 50,
                "display.driver": "dummy",
                "display.fullscreen": False,
                "mqtt.enabled": False,
            },
        )
        factory = MockFactory()
        source = ArrayFrameSource([frame], loop=True)
        with build_app(config, source=source, pin_factory=factory, wall_clock=lambda: NOW) as app:
            relay = factory.pin(config.gate.relay_pin)
            for _ in range(args.runs):
                while app.outputs.snapshot()["relay"]:  # let the previous pulse end
                    time.sleep(0.005)
                seen = len(relay.states)
                # The source stamps the frame as it hands it over, right after `before`.
                before = time.monotonic()
                app.loop.step()
                assert relay.states[seen].state, "the frame did not open the gate"
                # MockPin history holds deltas; its last change's absolute monotonic time is
                # kept in _last_change. The 50 ms pulse is still running, so that is the rise.
                latencies.append(relay._last_change - before)
            assert app.loop.stats.allowed == args.runs
    result: dict[str, Any] = {
        "backend": args.backend,
        "runs": args.runs,
        "certificate_chars": length,
        "decode_ms_median": median_ms(decode_s),
        "frame_to_relay_ms_median": median_ms(latencies),
        "frame_to_relay_ms_p95": round(sorted(latencies)[int(0.95 * len(latencies)) - 1] * 1000, 3),
        "ratio_frame_to_relay_over_decode": round(
            statistics.median(latencies) / statistics.median(decode_s), 3
        ),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": sys.version.split()[0],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
