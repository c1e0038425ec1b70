"""ArrayFrameSource and ImageFrameSource: order, repeat, loop, end, gray, errors, pacing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from camgen import FakeClock, decode, qr_gray
from PIL import Image

from kiosk.camera import (
    ArrayFrameSource,
    Frame,
    FrameSource,
    ImageFrameSource,
    open_frame_source,
)
from kiosk.config.schema import CameraConfig
from kiosk.errors import CameraError


def read_all(source: FrameSource, limit: int = 100) -> list[Frame]:
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
        assert len(frames) <= limit, "stream did not end"
    return frames


@pytest.fixture
def qr_folder(tmp_path: Path) -> Path:
    """Three real QR images whose names sort differently from creation order, plus a note."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for name, text in [("b.png", "SECOND"), ("c.jpg", "THIRD"), ("a.png", "FIRST")]:
        Image.fromarray(qr_gray(text, scale=4)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_plays_images_in_name_order_then_ends(qr_folder: Path) -> None:
    with ImageFrameSource(qr_folder) as source:
        frames = read_all(source)
        assert [decode(f.gray) for f in frames] == [["FIRST"], ["SECOND"], ["THIRD"]]
        assert [f.index for f in frames] == [0, 1, 2]
        assert source.read() is None  # end of stream stays ended
        assert source.frames_read == 3
        assert source.frames_dropped == 0
        assert [p.name for p in source.files] == ["a.png", "b.png", "c.jpg"]


def test_each_image_is_repeated_like_a_phone_held_up(qr_folder: Path) -> None:
    with ImageFrameSource(qr_folder, repeat=3) as source:
        texts = [decode(f.gray)[0] for f in read_all(source)]
    assert texts == ["FIRST"] * 3 + ["SECOND"] * 3 + ["THIRD"] * 3


def test_loop_starts_again_and_indices_keep_counting(qr_folder: Path) -> None:
    with ImageFrameSource(qr_folder, loop=True) as source:
        frames = [source.read() for _ in range(7)]
    assert [decode(f.gray)[0] for f in frames if f] == [
        "FIRST",
        "SECOND",
        "THIRD",
        "FIRST",
        "SECOND",
        "THIRD",
        "FIRST",
    ]
    assert [f.index for f in frames if f] == list(range(7))


def test_single_rgb_file_becomes_gray(tmp_path: Path) -> None:
    rgb = np.zeros((30, 40, 3), np.uint8)
    rgb[..., 0] = 255  # pure red → BT.601 luma 76
    Image.fromarray(rgb).save(tmp_path / "red.png")
    with ImageFrameSource(tmp_path / "red.png") as source:
        frame = source.read()
    assert frame is not None
    assert frame.gray.shape == (30, 40)
    assert frame.gray.dtype == np.uint8
    assert frame.gray.flags.c_contiguous
    assert int(frame.gray[0, 0]) == 76


def test_transparent_background_reads_as_white_paper(tmp_path: Path) -> None:
    code = qr_gray("TRANSPARENT", scale=4)
    rgba = np.zeros((*code.shape, 4), np.uint8)
    rgba[..., 3] = np.where(code == 0, 255, 0)  # dark modules opaque black, the rest transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    with ImageFrameSource(tmp_path / "t.png") as source:
        frame = source.read()
    assert frame is not None and decode(frame.gray) == ["TRANSPARENT"]


def test_animated_gif_in_a_folder_plays_every_frame(tmp_path: Path) -> None:
    images = [Image.fromarray(qr_gray(t, scale=4)) for t in ("G1", "G2")]
    images[0].save(tmp_path / "anim.gif", save_all=True, append_images=images[1:], duration=100)
    with ImageFrameSource(tmp_path) as source:
        assert [decode(f.gray) for f in read_all(source)] == [["G1"], ["G2"]]


def test_corrupt_image_raises_camera_error_naming_the_file(qr_folder: Path) -> None:
    (qr_folder / "b2-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with ImageFrameSource(qr_folder) as source:
        assert source.read() is not None  # a.png
        assert source.read() is not None  # b.png
        with pytest.raises(CameraError, match=r"b2-broken\.png"):
            source.read()


def test_missing_path_and_empty_folder_fail_at_open(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="no such image file or folder"):
        ImageFrameSource(tmp_path / "nope")
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(CameraError, match="holds no image"):
        ImageFrameSource(tmp_path)


def test_invalid_repeat_and_fps_are_rejected(qr_folder: Path) -> None:
    with pytest.raises(ValueError, match="repeat"):
        ImageFrameSource(qr_folder, repeat=0)
    with pytest.raises(ValueError, match="fps"):
        ImageFrameSource(qr_folder, fps=0)


def test_close_is_idempotent_and_reading_after_close_fails(qr_folder: Path) -> None:
    source = ImageFrameSource(qr_folder)
    assert source.read() is not None
    source.close()
    source.close()
    with pytest.raises(CameraError, match="closed"):
        source.read()


def test_close_is_safe_on_a_half_built_source() -> None:
    # What close() sees if __init__ raised before setting anything.
    ImageFrameSource.__new__(ImageFrameSource).close()
    ArrayFrameSource.__new__(ArrayFrameSource).close()


def test_pacing_delivers_frames_at_fps_without_real_sleeping() -> None:
    clock = FakeClock()
    frames = [np.full((4, 4), i, np.uint8) for i in range(5)]
    source = ArrayFrameSource(frames, fps=10, clock=clock, sleep=clock.sleep)
    stamps = [f.timestamp for f in read_all(source)]
    assert stamps == pytest.approx([100.0, 100.1, 100.2, 100.3, 100.4])
    assert clock.sleeps == pytest.approx([0.1] * 4)


def test_pacing_only_sleeps_the_remainder_when_the_reader_is_busy() -> None:
    clock = FakeClock()
    source = ArrayFrameSource(
        [np.zeros((2, 2), np.uint8)] * 3, fps=10, clock=clock, sleep=clock.sleep
    )
    source.read()
    clock.advance(0.06)  # the scan loop spent 60 ms decoding
    source.read()
    assert clock.sleeps == pytest.approx([0.04])


def test_a_late_reader_gets_frames_at_once_and_the_schedule_restarts() -> None:
    clock = FakeClock()
    source = ArrayFrameSource(
        [np.zeros((2, 2), np.uint8)] * 4, fps=10, clock=clock, sleep=clock.sleep
    )
    first = source.read()
    clock.advance(0.35)  # a long stall: three frame periods missed
    late = source.read()
    nxt = source.read()
    assert first is not None and late is not None and nxt is not None
    assert late.timestamp == pytest.approx(100.35)  # no waiting when already late
    assert nxt.timestamp == pytest.approx(100.45)  # one period later, not a burst
    assert clock.sleeps == pytest.approx([0.1])


def test_array_source_converts_and_validates_frames() -> None:
    rgb = np.zeros((3, 5, 3), np.uint8)
    mask = np.ones((3, 5), bool)
    source = ArrayFrameSource([rgb, mask, np.zeros((3, 5, 2), np.uint8)])
    first, second = source.read(), source.read()
    assert first is not None and first.gray.shape == (3, 5)
    assert second is not None and int(second.gray.max()) == 255
    with pytest.raises(CameraError, match="shape"):
        source.read()


def test_frames_do_not_alias_the_callers_arrays() -> None:
    array = np.zeros((4, 4), np.uint8)
    frame = ArrayFrameSource([array]).read()
    array[:] = 9
    assert frame is not None and int(frame.gray.max()) == 0


def test_one_shot_iterator_loops_from_a_cache() -> None:
    generator = (np.full((2, 2), i, np.uint8) for i in range(2))
    source = ArrayFrameSource(generator, loop=True)
    values = [int(f.gray[0, 0]) for f in (source.read() for _ in range(5)) if f]
    assert values == [0, 1, 0, 1, 0]


def test_looping_an_empty_input_ends_instead_of_spinning() -> None:
    assert ArrayFrameSource([], loop=True).read() is None


def test_open_frame_source_for_files(qr_folder: Path) -> None:
    cfg = CameraConfig(source="files", path=qr_folder, fps=120.0)
    with open_frame_source(cfg) as source:
        assert isinstance(source, ImageFrameSource)
        frame = source.read()
        assert frame is not None and decode(frame.gray) == ["FIRST"]
    with pytest.raises(CameraError, match=r"camera\.path is required"):
        open_frame_source(CameraConfig(source="files", path=None))
