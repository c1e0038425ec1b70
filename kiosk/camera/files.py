"""Frame sources that play arrays, image files and video files like a camera.

These are the development and test stand-ins for the Pi camera: they deliver
the same grayscale :class:`~kiosk.camera.base.Frame` objects, optionally paced
at a frame rate, optionally looping. Pacing uses an injected clock and sleep so
tests run without waiting.

Decision on unreadable images: a corrupt or unreadable image file raises
:class:`~kiosk.errors.CameraError` naming the file when the source reaches it
(it is not skipped). A folder of test images is curated input; silently
skipping one would hide exactly the frame a test or demo meant to show.
Files whose suffix is not an image suffix are ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from kiosk.camera.base import Frame, FrameSource, to_gray
from kiosk.errors import CameraError

log = logging.getLogger(__name__)

#: Suffixes (lower case) that :class:`ImageFrameSource` picks up in a folder.
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pnm"}
)
#: Animated formats :class:`VideoFrameSource` reads with Pillow (no PyAV needed).
PILLOW_VIDEO_SUFFIXES = frozenset({".gif", ".webp", ".apng"})

Clock = Callable[[], float]
Sleep = Callable[[float], None]


def _pil_to_gray(image: Image.Image) -> np.ndarray:
    """One Pillow frame → 2-D uint8 gray; transparent pixels count as white paper."""
    if "A" in image.getbands() or "transparency" in image.info:
        # A QR saved with a transparent background would otherwise turn black
        # on black once the alpha channel is dropped.
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("L"))


def load_image_frames(path: Path) -> list[np.ndarray]:
    """Read every frame of one image file (one for a still image) as gray arrays.

    Raises:
        CameraError: the file is missing, not an image, truncated or corrupt;
            the message names the file.
    """
    try:
        with Image.open(path) as image:
            return [_pil_to_gray(frame) for frame in ImageSequence.Iterator(image)]
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, ...
        raise CameraError(f"{path}: cannot read image: {exc}") from exc


def list_image_files(path: Path) -> list[Path]:
    """The image files of ``path``: the file itself, or a folder's images sorted by name.

    Raises:
        CameraError: ``path`` does not exist, or the folder holds no image file.
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CameraError(f"{path}: no such image file or folder")
    files = sorted(
        (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.name,
    )
    if not files:
        raise CameraError(f"{path}: folder holds no image ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


class ArrayFrameSource(FrameSource):
    """Frames from an iterable of image arrays, converted to gray.

    Args:
        frames: 2-D gray or 3-D RGB/RGBA ``uint8`` arrays. A re-iterable (list,
            tuple, or any object whose ``iter()`` returns a fresh iterator) is
            iterated again on each loop; a one-shot iterator is cached on its
            first pass when ``loop`` is true.
        fps: pace delivery to this many frames per second (``None``: as fast as
            read). When the reader falls more than one frame behind, the
            schedule restarts from now instead of bursting to catch up, as a
            camera would.
        loop: start again after the last frame instead of ending. An empty
            pass ends the stream even when looping.
        clock: monotonic time in seconds (injected for tests).
        sleep: sleep in seconds (injected for tests).

    ``read()`` raises :class:`CameraError` for an array of unsupported shape or
    dtype, and after :meth:`close`.
    """

    def __init__(
        self,
        frames: Iterable[np.ndarray],
        *,
        fps: float | None = None,
        loop: bool = False,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._iterator: Iterator[np.ndarray] | None = None
        self._closed = False
        self._ended = False
        self.frames_read = 0
        self.frames_dropped = 0
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self._frames = frames
        self._loop = loop
        self._clock = clock
        self._sleep = sleep
        self._period = None if fps is None else 1.0 / fps
        self._next_due: float | None = None
        self._in_pass = 0
        # A one-shot iterator cannot be restarted; keep what it gave for the next loops.
        self._cache: list[np.ndarray] | None = [] if loop and iter(frames) is frames else None

    def read(self) -> Frame | None:
        """Next frame (paced when ``fps`` is set); ``None`` once the stream has ended."""
        if self._closed:
            raise CameraError("read from a closed frame source")
        array = self._next_array()
        if array is None:
            return None
        gray = to_gray(array)
        self._pace()
        frame = Frame(gray=gray, timestamp=self._clock(), index=self.frames_read)
        self.frames_read += 1
        return frame

    def close(self) -> None:
        """Stop the stream and close any open file behind it. Idempotent."""
        self._closed = True
        iterator = getattr(self, "_iterator", None)
        self._iterator = None
        close = getattr(iterator, "close", None)
        if callable(close):
            close()  # a generator's close() runs its finally: files get closed now

    def _next_array(self) -> np.ndarray | None:
        while not self._ended:
            if self._iterator is None:
                self._iterator = iter(self._frames)
            try:
                array = next(self._iterator)
            except StopIteration:
                self._iterator = None
                if not self._loop or self._in_pass == 0:
                    self._ended = True
                    return None
                self._in_pass = 0
                if self._cache is not None:
                    self._frames, self._cache = self._cache, None
                continue
            self._in_pass += 1
            if self._cache is not None:
                self._cache.append(array)
            return array
        return None

    def _pace(self) -> None:
        if self._period is None:
            return
        now = self._clock()
        if self._next_due is None:
            self._next_due = now
        delay = self._next_due - now
        if delay > 0:
            self._sleep(delay)
        elif -delay > self._period:
            self._next_due = now  # late by over a frame: re-anchor rather than burst
        self._next_due += self._period


class _ImageFiles:
    """Re-iterable: each file's frames, each repeated ``repeat`` times, decoded lazily."""

    def __init__(self, files: list[Path], repeat: int) -> None:
        self._files = files
        self._repeat = repeat

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self._files:
            for array in load_image_frames(path):
                for _ in range(self._repeat):
                    yield array


class ImageFrameSource(ArrayFrameSource):
    """Frames from one image file or a folder of images (sorted by file name).

    Every frame of a multi-frame file (animated GIF/WebP, multi-page TIFF) is
    played. Each frame is delivered ``repeat`` times in a row, like a phone held
    up to the camera for several frames. Files are decoded lazily, one at a
    time, so a large folder costs no memory up front.

    Raises:
        CameraError: at construction if ``path`` is missing or holds no image;
            from ``read()`` if an image file is corrupt (the message names it).
        ValueError: ``repeat`` < 1 or ``fps`` <= 0.
    """

    def __init__(
        self,
        path: Path,
        *,
        fps: float | None = None,
        loop: bool = False,
        repeat: int = 1,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._iterator = None  # close() must work even if the checks below raise
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat!r}")
        self.files = tuple(list_image_files(Path(path)))
        log.info("image source: %d file(s) from %s, repeat=%d", len(self.files), path, repeat)
        super().__init__(
            _ImageFiles(list(self.files), repeat), fps=fps, loop=loop, clock=clock, sleep=sleep
        )


class _PillowVideo:
    """Re-iterable frames of an animated image, streamed with Pillow."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def probe(self) -> None:
        try:
            with Image.open(self._path):
                pass  # opening parses the header: enough to reject a non-image early
        except Exception as exc:
            raise CameraError(f"{self._path}: cannot read animation: {exc}") from exc

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            with Image.open(self._path) as image:
                for frame in ImageSequence.Iterator(image):
                    yield _pil_to_gray(frame)
        except CameraError:
            raise
        except Exception as exc:
            raise CameraError(f"{self._path}: cannot decode animation: {exc}") from exc


class _AvVideo:
    """Re-iterable frames of a video file, decoded with PyAV (FFmpeg)."""

    def __init__(self, path: Path) -> None:
        try:
            import av  # optional dependency: only video files need it
        except ImportError as exc:
            raise CameraError(
                f"{path}: reading video needs PyAV; install it with `pip install av` "
                "(or use an animated GIF, or camera.source = files)"
            ) from exc
        self._av = av
        self._path = path

    def probe(self) -> None:
        try:
            with self._av.open(str(self._path)) as container:
                if not container.streams.video:
                    raise CameraError(f"{self._path}: file has no video stream")
        except CameraError:
            raise
        except Exception as exc:
            raise CameraError(f"{self._path}: cannot open video: {exc}") from exc

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            with self._av.open(str(self._path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"  # decode on FFmpeg's threads; the loop only waits
                for frame in container.decode(stream):
                    yield frame.to_ndarray(format="gray")
        except CameraError:
            raise
        except Exception as exc:
            raise CameraError(f"{self._path}: cannot decode video: {exc}") from exc


class VideoFrameSource(FrameSource):
    """Frames of a video file (mp4/mkv/avi/... via PyAV, or an animated GIF/WebP via Pillow).

    Every decoded frame is delivered once, converted to gray; ``fps`` paces
    delivery (the file's own frame rate is not used, so a test can play a
    clip at the configured camera rate). ``loop`` reopens the file at its end.

    Raises:
        CameraError: at construction if the file is missing, unreadable, has no
            video stream, or needs PyAV which is not installed; from ``read()``
            if decoding fails mid-stream.
    """

    def __init__(
        self,
        path: Path,
        *,
        fps: float | None = None,
        loop: bool = False,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._inner: ArrayFrameSource | None = None
        self.frames_read = 0
        self.frames_dropped = 0  # a file never drops frames
        path = Path(path)
        if not path.is_file():
            raise CameraError(f"{path}: no such video file")
        frames: _PillowVideo | _AvVideo
        if path.suffix.lower() in PILLOW_VIDEO_SUFFIXES:
            frames = _PillowVideo(path)
        else:
            frames = _AvVideo(path)
        frames.probe()  # fail at start-up, not at the first read
        self.path = path
        self._inner = ArrayFrameSource(frames, fps=fps, loop=loop, clock=clock, sleep=sleep)
        log.info("video source: %s (%s)", path, type(frames).__name__.strip("_"))

    def read(self) -> Frame | None:
        """Next frame; ``None`` at the end of the file (unless looping)."""
        if self._inner is None:
            raise CameraError("read from a closed video source")
        frame = self._inner.read()
        self.frames_read = self._inner.frames_read
        return frame

    def close(self) -> None:
        """Close the file. Idempotent, safe after a failed constructor."""
        inner = getattr(self, "_inner", None)
        self._inner = None
        if inner is not None:
            inner.close()
