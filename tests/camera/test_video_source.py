"""VideoFrameSource: real QR frames written to a GIF and an MP4, read back."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from camgen import FakeClock, decode, qr_gray
from PIL import Image

from kiosk.camera import VideoFrameSource, open_frame_source
from kiosk.config.schema import CameraConfig
from kiosk.errors import CameraError

TEXTS = ["VIDEO-1", "VIDEO-2", "VIDEO-3"]


def frame_with(text: str) -> np.ndarray:
    """A 320×240 frame with the code on white (even sizes, as video codecs need)."""
    frame = np.full((240, 320), 255, np.uint8)
    code = qr_gray(text, scale=4)
    frame[20 : 20 + code.shape[0], 60 : 60 + code.shape[1]] = code
    return frame


@pytest.fixture
def gif(tmp_path: Path) -> Path:
    path = tmp_path / "clip.gif"
    images = [Image.fromarray(frame_with(t)) for t in TEXTS]
    images[0].save(path, save_all=True, append_images=images[1:], duration=66, loop=0)
    return path


@pytest.fixture
def mp4(tmp_path: Path) -> Path:
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=15)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"qscale": "2"}  # near-lossless: the test is about plumbing, not codecs
        for text in TEXTS:
            for _ in range(2):  # each code held for two frames
                rgb = np.repeat(frame_with(text)[:, :, None], 3, axis=2)
                video_frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                container.mux(stream.encode(video_frame))
        container.mux(stream.encode())  # flush the encoder
    return path


def read_texts(source: VideoFrameSource) -> list[list[str]]:
    out = []
    while (frame := source.read()) is not None:
        assert frame.gray.ndim == 2 and frame.gray.dtype == np.uint8
        out.append(decode(frame.gray))
    return out


def test_animated_gif_is_read_frame_by_frame(gif: Path) -> None:
    with VideoFrameSource(gif) as source:
        assert read_texts(source) == [[t] for t in TEXTS]
        assert source.frames_read == 3
        assert source.read() is None


def test_mp4_is_decoded_to_gray_frames(mp4: Path) -> None:
    with VideoFrameSource(mp4) as source:
        texts = read_texts(source)
    assert texts == [[t] for t in TEXTS for _ in range(2)]


def test_video_loops_by_reopening_the_file(mp4: Path) -> None:
    with VideoFrameSource(mp4, loop=True) as source:
        frames = [source.read() for _ in range(8)]
    assert [decode(f.gray)[0] for f in frames if f][6:] == ["VIDEO-1", "VIDEO-1"]
    assert [f.index for f in frames if f] == list(range(8))


def test_video_is_paced_at_the_configured_rate(gif: Path) -> None:
    clock = FakeClock()
    with VideoFrameSource(gif, fps=15, clock=clock, sleep=clock.sleep) as source:
        stamps = [f.timestamp for f in iter(source.read, None)]
    assert np.diff(stamps) == pytest.approx([1 / 15] * 2)


def test_unreadable_video_fails_at_open(tmp_path: Path) -> None:
    pytest.importorskip("av")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(CameraError, match=r"broken\.mp4"):
        VideoFrameSource(bad)
    with pytest.raises(CameraError, match="no such video file"):
        VideoFrameSource(tmp_path / "missing.mkv")


def test_without_pyav_a_video_file_is_a_clear_error(
    mp4: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(CameraError, match="pip install av"):
        VideoFrameSource(mp4)


def test_open_frame_source_for_video(gif: Path) -> None:
    with open_frame_source(CameraConfig(source="video", path=gif, fps=120.0)) as source:
        assert isinstance(source, VideoFrameSource)
        frame = source.read()
        assert frame is not None and decode(frame.gray) == ["VIDEO-1"]


def test_close_is_idempotent(gif: Path) -> None:
    source = VideoFrameSource(gif)
    source.read()
    source.close()
    source.close()
    with pytest.raises(CameraError, match="closed"):
        source.read()
    VideoFrameSource.__new__(VideoFrameSource).close()
