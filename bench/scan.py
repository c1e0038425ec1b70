"""Benchmark the scan path: idle cost, first read after a quiet spell, decoding a phone corpus.

All through the gate's real parts; every ratio is against a baseline measured
in the same run:

* **idle**: the real loop (``build_app``: frame source → idle throttle →
  decoder → gate on MockFactory) on 640×480 frames of an empty scene with
  fresh sensor noise each frame, at a virtual 15 fps (frame times advance by
  1/15 s; nothing sleeps, so the process CPU time is the cost). CPU seconds per
  idle second with the adaptive rate (``decoder.idle_after_s`` as shipped)
  against the same loop decoding every frame (``idle_after_s = 0``, the
  previous path) and against a bare zxing-cpp QR-only call per frame.
* **first_read**: after the scene has been still for longer than
  ``idle_after_s``, a phone comes into view; frames from its first frame to the
  decision, adaptive against every-frame decoding.
* **corpus**: the synthetic phone-screen corpus (tests/scancorpus.py: 13
  conditions × 3 severities) through ``create_decoder(backend).decode``, success
  per condition and wrong reads, against a bare library call on the same frames.
* **pyzbar_isolation**: pyzbar in-process against pyzbar in its supervised
  worker process (``decoder.isolate``), interleaved on the same frames.

Usage: PYTHONPATH=. python bench/scan.py [--idle-frames 450] [--seeds 2] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import numpy as np
import zxingcpp
from gpiozero.pins.mock import MockFactory

from kiosk.app import GateApp, build_app
from kiosk.camera import ArrayFrameSource
from kiosk.config import load_config
from kiosk.decode import Decoder, available_backends, create_decoder
from kiosk.decode.zxing import ZxingDecoder
from tests import scancorpus

FPS = 15.0


class VirtualClock:
    """Monotonic seconds that advance by one frame interval per frame read."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def frame(self) -> float:
        """The source's clock: the next frame's capture time."""
        self.t += 1.0 / FPS
        return self.t


@contextmanager
def gate(
    backend: str, frames: Callable[[], Iterator[np.ndarray]], idle_after_s: float | None
) -> Iterator[tuple[GateApp, VirtualClock]]:
    """A gate built by ``build_app`` fed by ``frames``, on a virtual 15 fps clock."""
    clock = VirtualClock()
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "trust").mkdir()
        overrides: dict[str, Any] = {
            "device.data_dir": folder,
            "verify.trust_dir": str(Path(folder) / "trust"),
            "decoder.backend": backend,
            "gate.pin_factory": "mock",
            "display.driver": "dummy",
            "display.fullscreen": False,
            "mqtt.enabled": False,
        }
        if idle_after_s is not None:
            overrides["decoder.idle_after_s"] = idle_after_s
        config = load_config(None, overrides)
        source = ArrayFrameSource(frames(), clock=clock.frame)
        with build_app(config, source=source, pin_factory=MockFactory(), monotonic=clock) as app:
            app.loop.start()
            yield app, clock


def idle_frames(count: int, seed: int) -> list[np.ndarray]:
    """``count`` frames of one empty scene, each with its own sensor noise."""
    rng = np.random.default_rng(seed)
    scene = scancorpus.idle_scene(rng)
    return [scancorpus.idle_frame(rng, scene) for _ in range(count)]


def loop_cpu_per_frame(backend: str, frames: list[np.ndarray], idle_after_s: float | None,
                       warmup: int) -> tuple[float, int]:
    """CPU seconds per loop turn over ``frames`` after ``warmup`` turns; frames decoded."""

    def play() -> Iterator[np.ndarray]:
        while True:
            yield from frames

    with gate(backend, play, idle_after_s) as (app, _clock):
        for _ in range(warmup):
            app.loop.step()
        throttle = app.loop.throttle
        decoded_before = throttle.decoded if throttle is not None else 0
        start = time.process_time()
        for _ in range(len(frames)):
            app.loop.step()
        cpu = time.process_time() - start
        decoded = (throttle.decoded if throttle is not None else 0) - decoded_before
        assert app.loop.stats.scans == 0, "an idle frame was read as a code"
    return cpu / len(frames), decoded


def bare_cpu_per_frame(frames: list[np.ndarray]) -> float:
    """CPU seconds per bare zxing-cpp QR-only call (the floor any decoding gate pays)."""
    for frame in frames[:5]:
        zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.QRCode)
    start = time.process_time()
    for frame in frames:
        zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.QRCode)
    return (time.process_time() - start) / len(frames)


def idle_report(backend: str, count: int, seed: int) -> dict[str, Any]:
    """Idle CPU per idle second: adaptive, every frame, bare call."""
    frames = idle_frames(count, seed)
    warmup = int(FPS * 3)  # past idle_after_s (2 s as shipped)
    every_s, every_decoded = loop_cpu_per_frame(backend, frames, 0.0, warmup)
    adaptive_s, adaptive_decoded = loop_cpu_per_frame(backend, frames, None, warmup)
    bare_s = bare_cpu_per_frame(frames)
    return {
        "frames": count,
        "fps": FPS,
        "cpu_s_per_idle_s_adaptive": round(adaptive_s * FPS, 5),
        "cpu_s_per_idle_s_every_frame": round(every_s * FPS, 5),
        "cpu_s_per_idle_s_bare_zxing": round(bare_s * FPS, 5),
        "frames_decoded_adaptive": adaptive_decoded,
        "frames_decoded_every_frame": every_decoded,
        "ratio_adaptive_over_every_frame": round(adaptive_s / every_s, 3),
        "ratio_adaptive_over_bare_zxing": round(adaptive_s / bare_s, 3),
        "ratio_every_frame_over_bare_zxing": round(every_s / bare_s, 3),
    }


def first_read(backend: str, case: scancorpus.Case, idle_after_s: float | None,
               seed: int) -> dict[str, Any]:
    """Frames from the phone's first frame to the decision, after a still spell."""
    still = idle_frames(int(FPS * 4), seed)
    showing = 30

    def play() -> Iterator[np.ndarray]:
        yield from still
        for _ in range(showing):
            yield case.gray

    with gate(backend, play, idle_after_s) as (app, _clock):
        for _ in still:
            app.loop.step()
        for turn in range(showing):
            start = time.perf_counter()
            app.loop.step()
            if app.loop.stats.scans:
                return {"frames_to_decision": turn + 1,
                        "turn_ms": round((time.perf_counter() - start) * 1000, 3)}
    return {"frames_to_decision": None, "turn_ms": None}


def first_read_report(backend: str, seed: int) -> dict[str, Any]:
    """First read after idle, adaptive against every frame, for a clean and a hard code."""
    report: dict[str, Any] = {}
    for condition, severity in (("clean", 1), ("blur", 2), ("low_contrast", 2)):
        case = scancorpus.make_case(condition, severity, 3.0, seed)
        report[f"{condition}_{severity}"] = {
            "adaptive": first_read(backend, case, None, seed),
            "every_frame": first_read(backend, case, 0.0, seed),
        }
    return report


def corpus_pass(decoder: Decoder, cases: list[scancorpus.Case]) -> dict[str, Any]:
    """Success per condition, wrong reads and time per frame of ``decoder`` on ``cases``."""
    per: dict[str, list[int]] = {}
    wrong = 0
    start = time.process_time()
    for case in cases:
        texts = decoder.decode(case.gray)
        tally = per.setdefault(case.condition, [0, 0])
        tally[0] += texts == [case.text]
        tally[1] += 1
        wrong += any(text != case.text for text in texts)
    cpu = time.process_time() - start
    read = sum(t[0] for t in per.values())
    return {
        "read": read,
        "frames": len(cases),
        "success": round(read / len(cases), 4),
        "wrong_reads": wrong,
        "cpu_ms_per_frame": round(cpu / len(cases) * 1000, 3),
        "per_condition": {name: f"{t[0]}/{t[1]}" for name, t in per.items()},
    }


def corpus_report(backend: str, seeds: int, tiny: bool = False) -> dict[str, Any]:
    """The corpus at 3, 2.5 and 2 px/module (640×480) and 3 px/module at 1280×720.

    ``tiny``: three conditions at 3 px/module only (the smoke test).
    """
    report: dict[str, Any] = {}
    sets = [("640x480_3px", 3.0, (480, 640)), ("640x480_2.5px", 2.5, (480, 640)),
            ("640x480_2px", 2.0, (480, 640)), ("1280x720_3px", 3.0, (720, 1280))]
    conditions = ("clean", "blur", "moire") if tiny else scancorpus.CONDITIONS
    for name, px, size in sets[:1] if tiny else sets:
        cases = scancorpus.corpus(px, range(seeds), conditions=conditions, size=size)
        if backend == "zxing":
            first = corpus_pass(ZxingDecoder(second_look=False), cases)
            gate_decoder = ZxingDecoder()
            full = corpus_pass(gate_decoder, cases)
            full["second_looks"] = gate_decoder.second_looks
            full["second_look_reads"] = gate_decoder.second_look_reads
            full["second_look_by"] = gate_decoder.second_look_by
            report[name] = {"first_attempt": first, "with_second_look": full}
        else:
            report[name] = {"first_attempt": corpus_pass(create_decoder(backend), cases)}
    report["wrong_reads"] = sum(
        part["wrong_reads"] for entry in report.values() for part in entry.values()
    )
    return report


def isolation_report(runs: int) -> dict[str, Any]:
    """pyzbar in-process against pyzbar in its supervised worker: wall ms per frame, same frames."""
    from kiosk.decode.isolated import IsolatedDecoder

    rng = np.random.default_rng(3)
    frames = {
        "code": scancorpus.make_case("clean", 1, 3.0, seed=5).gray,
        "idle": scancorpus.idle_frame(rng, scancorpus.idle_scene(rng)),
    }
    plain = create_decoder("pyzbar")
    isolated = create_decoder("pyzbar", isolate=True)
    assert isinstance(isolated, IsolatedDecoder)
    try:
        deadline = time.monotonic() + 30
        while not isolated.ready:  # the worker starts (the fallback reads meanwhile)
            isolated.decode(frames["code"])
            assert time.monotonic() < deadline, "the decoder worker never became ready"
            time.sleep(0.01)
        report: dict[str, Any] = {}
        for kind, gray in frames.items():
            times: dict[str, list[float]] = {"in_process": [], "isolated": []}
            for _ in range(runs):  # interleaved, so both see the same machine
                for name, decoder in (("in_process", plain), ("isolated", isolated)):
                    start = time.perf_counter()
                    decoder.decode(gray)
                    times[name].append(time.perf_counter() - start)
            inside = float(np.median(times["in_process"]))
            outside = float(np.median(times["isolated"]))
            report[kind] = {
                "in_process_ms": round(inside * 1000, 3),
                "isolated_ms": round(outside * 1000, 3),
                "added_ms": round((outside - inside) * 1000, 3),
                "ratio": round(outside / inside, 3),
            }
        report["crashes"] = isolated.crashes
        return report
    finally:
        isolated.close()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle-frames", type=int, default=450, help="idle frames (30 s)")
    parser.add_argument("--seeds", type=int, default=2, help="corpus copies (different codes)")
    parser.add_argument("--backend", action="append", choices=("zxing", "pyzbar"))
    parser.add_argument("--tiny", action="store_true", help="smoke-test size")
    args = parser.parse_args(argv)
    if args.tiny:
        args.idle_frames, args.seeds = 30, 1
    backends = args.backend or available_backends()
    result: dict[str, Any] = {
        "bench": "scan",
        "frame": "640x480 gray",
        "backends": {},
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "zxing_cpp": metadata.version("zxing-cpp"),
    }
    for backend in backends:
        result["backends"][backend] = {
            "idle": idle_report(backend, args.idle_frames, seed=7),
            "first_read": first_read_report(backend, seed=11),
            "corpus": corpus_report(backend, args.seeds, args.tiny),
        }
    if "pyzbar" in backends:
        result["pyzbar_isolation"] = isolation_report(5 if args.tiny else 60)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
