"""``kiosk decode IMAGE|FOLDER|VIDEO... [--json]``: the gate's decoder on files.

The technician's tool for "why does this phone not open the gate?": each file
goes through the decoder the gate would make from its configuration
(``decoder.backend``, ``decoder.isolate``; ``/etc/kiosk/kiosk.toml`` when it
exists, or ``--config``), frame by frame through ``decode(gray)``, the
gate's whole per-frame path. It prints per file whether a code was read, by
which attempt (first look, second look and its enhancement, or the fallback
while an isolated worker is down), and the time taken. It never prints the
decoded text (a certificate holds a name and a birth date): only each code's
length and prefix type ("HC1:" or "other").

The file is decoded at its own resolution; the gate sees what the camera
delivers (``camera.width`` × ``camera.height``), so a photo taken with a
phone may read where the gate's camera would not.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # every `kiosk` command imports this module: numpy and Pillow load on use
    import numpy as np

    from kiosk.decode.base import Decoder
    from kiosk.decode.probe import FileReport

DEFAULT_CONFIG = Path("/etc/kiosk/kiosk.toml")
DEFAULT_MAX_FRAMES = 1000  # frames decoded per file at most
# How long the tool waits for an isolated decoder's worker to start (a Pi 3 takes ~2 s).
WORKER_START_S = 10.0
#: Suffixes read as video (through PyAV); animated GIF/WebP are read as images, frame by frame.
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".h264", ".mjpeg"})
log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to the ``kiosk`` parser."""
    decode = commands.add_parser(
        "decode",
        help="the gate's QR decoder on image/video files (prints length and prefix, never text)",
    )
    decode.add_argument("paths", type=Path, nargs="+", metavar="IMAGE|FOLDER|VIDEO")
    decode.add_argument("--json", action="store_true", help="one JSON document on stdout")
    decode.add_argument(
        "--config", type=Path, help=f"config file for decoder.* (default {DEFAULT_CONFIG} if any)"
    )
    decode.add_argument(
        "--backend", choices=("auto", "zxing", "pyzbar"), help="override decoder.backend"
    )
    decode.add_argument(
        "--isolate", action=argparse.BooleanOptionalAction, help="override decoder.isolate"
    )
    decode.add_argument(
        "--max-frames",
        type=_positive,
        default=DEFAULT_MAX_FRAMES,
        help=f"frames decoded per file at most (default {DEFAULT_MAX_FRAMES})",
    )
    decode.set_defaults(handler=_decode)


def _positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _decode(args: argparse.Namespace) -> int:
    from kiosk.config import load_config
    from kiosk.decode import create_decoder
    from kiosk.decode.isolated import IsolatedDecoder

    path = (
        args.config
        if args.config is not None
        else (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    )
    settings = load_config(path).decoder
    backend = args.backend or settings.backend
    isolate = settings.isolate if args.isolate is None else args.isolate
    decoder = create_decoder(backend, isolate=isolate)
    isolated = isinstance(decoder, IsolatedDecoder)
    if isinstance(decoder, IsolatedDecoder) and not decoder.wait_ready(WORKER_START_S):
        log.warning("decoder worker not ready after %.0f s: the fallback decodes", WORKER_START_S)
    try:
        reports = [
            report
            for target in args.paths
            for report in probe_path(decoder, target, args.max_frames)
        ]
    finally:
        decoder.close()
    if args.json:
        document = {
            "decoder": {"backend": decoder.name, "isolated": isolated},
            "files": [report.to_json() for report in reports],
        }
        print(json.dumps(document, indent=2))
    else:
        print(f"decoder: {decoder.name}{' (isolated worker)' if isolated else ''}")
        for report in reports:
            print(describe(report))
    return 0 if reports and all(report.read for report in reports) else 1


def probe_path(decoder: Decoder, target: Path, max_frames: int) -> list[FileReport]:
    """Reports for one command-line path: a file, or each image of a folder.

    An unreadable file or folder gives a report with ``error`` set, not an
    exception, so one bad file does not hide the others' results.
    """
    from kiosk.camera.files import list_image_files
    from kiosk.decode.probe import FileReport, probe_frames
    from kiosk.errors import CameraError

    try:
        files = [target] if target.suffix.lower() in VIDEO_SUFFIXES else list_image_files(target)
    except CameraError as exc:
        return [FileReport(target, error=str(exc))]
    reports = []
    for file in files:
        try:
            frames = _video_frames(file) if file.suffix.lower() in VIDEO_SUFFIXES else _images(file)
            reports.append(probe_frames(decoder, file, frames, max_frames))
        except CameraError as exc:
            reports.append(FileReport(file, error=str(exc)))
    return reports


def _images(path: Path) -> list[np.ndarray]:
    """The frames of an image file, refused before decoding when it is too large."""
    from PIL import Image

    from kiosk.camera.files import load_image_frames
    from kiosk.decode.probe import MAX_PIXELS
    from kiosk.errors import CameraError

    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, ...
        raise CameraError(f"{path}: cannot read image: {exc}") from exc
    if width * height > MAX_PIXELS:
        raise CameraError(f"{path}: {width}x{height} image is larger than {MAX_PIXELS} px")
    return load_image_frames(path)


def _video_frames(path: Path) -> Iterator[np.ndarray]:
    """The frames of a video file, one at a time (the file is closed at the end)."""
    from kiosk.camera.files import VideoFrameSource

    with VideoFrameSource(path) as source:
        while (frame := source.read()) is not None:
            yield frame.gray


def describe(report: FileReport) -> str:
    """One line for a person: what was read (length and prefix only), how, how fast."""
    if report.error is not None:
        return f"{report.path}: error: {report.error}"
    summary = report.to_json()
    codes = ", ".join(f"{c['prefix']} {c['length']} chars" for c in summary["codes"])
    frames = summary["frames"]
    if frames == 0:
        return f"{report.path}: no frame in the file"
    if frames == 1:
        timing = f"in {summary['ms']:.1f} ms"
    else:
        timing = f"{summary['ms_mean']:.1f} ms mean, {summary['ms_max']:.1f} ms max per frame"
    more = " (stopped at the frame limit)" if report.truncated else ""
    if not report.read:
        seen = summary["symbols_seen"]
        why = f"{seen} QR symbol(s) seen but not read" if seen else "no QR symbol seen"
        count = "" if frames == 1 else f" in {frames} frames"
        return f"{report.path}: no code read{count} ({why}), {timing}{more}"
    plural = "code" if len(summary["codes"]) == 1 else "codes"
    where = (
        ""
        if frames == 1
        else (
            f" in {summary['frames_read']} of {frames} frames, first at frame "
            f"{summary['first_read_frame']},"
        )
    )
    return (
        f"{report.path}: read {len(summary['codes'])} {plural} ({codes}){where} by "
        f"{summary['attempt']}, {timing}{more}"
    )
