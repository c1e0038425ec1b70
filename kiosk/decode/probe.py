"""What the gate's decoder makes of image and video files, without revealing what it read.

The technician's check behind ``kiosk decode``: each frame of a file goes
through ``decoder.decode(gray)``, the gate's complete per-frame decoding path
(second look and worker isolation included), and the result is summarised as
*whether* a code was read, by which attempt and how fast. The decoded text is
never kept in a report: a QR payload carries a name and a birth date, so only
its length and its prefix type (:func:`prefix_type`) leave this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.decode.base import Decoder

#: Prefixes :func:`prefix_type` names; anything else is "other".
KNOWN_PREFIXES = ("HC1:",)
#: Images above this many pixels are refused before they are decoded (a gate frame
#: is at most 1920×1080; a huge file would only cost memory and time).
MAX_PIXELS = 4096 * 4096


def prefix_type(text: str) -> str:
    """``"HC1:"`` for an EU DCC payload, else ``"other"``: never any of the text itself."""
    for prefix in KNOWN_PREFIXES:
        if text.startswith(prefix):
            return prefix
    return "other"


@dataclass(frozen=True, slots=True)
class CodeSummary:
    """One decoded code, reduced to what may be shown: its length and prefix type."""

    length: int
    prefix: str

    @classmethod
    def of(cls, text: str) -> CodeSummary:
        """The summary of ``text`` (the text itself is not kept)."""
        return cls(len(text), prefix_type(text))


@dataclass(frozen=True, slots=True)
class FrameResult:
    """One frame through the decoder: codes read, the attempt that read them, seconds taken."""

    codes: tuple[CodeSummary, ...]
    attempt: str | None  # None: nothing read
    seconds: float
    symbols_seen: int


@dataclass
class FileReport:
    """The decoder's results for one file (one frame for a still image)."""

    path: Path
    frames: list[FrameResult] = field(default_factory=list)
    truncated: bool = False  # stopped at the frame limit
    error: str | None = None

    @property
    def read(self) -> bool:
        """True when some frame of the file gave a code."""
        return any(frame.codes for frame in self.frames)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (no decoded text; times in milliseconds)."""
        read = [i for i, frame in enumerate(self.frames) if frame.codes]
        times = [frame.seconds * 1000 for frame in self.frames]
        codes = sorted(
            {code for frame in self.frames for code in frame.codes},
            key=lambda c: (c.prefix, c.length),
        )
        out: dict[str, Any] = {"file": str(self.path), "read": self.read}
        if self.error is not None:
            out["error"] = self.error
            return out
        out.update(
            frames=len(self.frames),
            frames_read=len(read),
            first_read_frame=read[0] if read else None,
            attempt=self.frames[read[0]].attempt if read else None,
            codes=[{"length": c.length, "prefix": c.prefix} for c in codes],
            symbols_seen=max((frame.symbols_seen for frame in self.frames), default=0),
            ms=round(times[0], 3) if len(times) == 1 else None,
            ms_mean=round(sum(times) / len(times), 3) if times else None,
            ms_max=round(max(times), 3) if times else None,
        )
        if self.truncated:
            out["truncated"] = True
        return out


def _counters(decoder: Decoder) -> tuple[int, int, dict[str, int]]:
    """What tells the attempts apart: fallback frames, second-look reads and by whom."""
    return (
        int(getattr(decoder, "fallback_frames", 0)),
        int(getattr(decoder, "second_look_reads", 0)),
        dict(getattr(decoder, "second_look_by", {})),
    )


def _attempt(
    decoder: Decoder,
    before: tuple[int, int, dict[str, int]],
    fallback_before: tuple[int, int, dict[str, int]] | None,
) -> str:
    """Which attempt read the frame, from the decoder's counters before and after."""
    fallback_frames, reads, by = _counters(decoder)
    fallback = getattr(decoder, "fallback", None)
    if fallback_frames > before[0] and isinstance(fallback, Decoder):
        assert fallback_before is not None
        return f"fallback {fallback.name}, " + _attempt(fallback, fallback_before, None)
    if reads > before[1]:
        names = [name for name, count in by.items() if count > before[2].get(name, 0)]
        return "second look" + (f" ({names[0]})" if names else "")
    return "first look"


def decode_frame(
    decoder: Decoder, gray: np.ndarray, clock: Callable[[], float] = time.perf_counter
) -> FrameResult:
    """Run ``decoder.decode(gray)`` once and summarise it (the texts are dropped here)."""
    fallback = getattr(decoder, "fallback", None)
    before = _counters(decoder)
    fallback_before = _counters(fallback) if isinstance(fallback, Decoder) else None
    start = clock()
    texts = decoder.decode(gray)
    seconds = clock() - start
    codes = tuple(CodeSummary.of(text) for text in texts)
    attempt = _attempt(decoder, before, fallback_before) if texts else None
    return FrameResult(codes, attempt, seconds, decoder.symbols_seen)


def probe_frames(
    decoder: Decoder, path: Path, frames: Iterable[np.ndarray], max_frames: int
) -> FileReport:
    """Decode up to ``max_frames`` of ``frames`` and report on them as file ``path``."""
    report = FileReport(path)
    for gray in frames:
        if len(report.frames) >= max_frames:
            report.truncated = True
            break
        if gray.size > MAX_PIXELS:
            report.error = f"{gray.shape[1]}x{gray.shape[0]} frame is larger than {MAX_PIXELS} px"
            break
        report.frames.append(decode_frame(decoder, gray))
    return report
