"""``kiosk decode``: the gate's decoder on real QR image files, never printing the payload."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from PIL import Image
from qrgen import hc1_like, in_scene, load_gray

from kiosk.cli import main
from kiosk.decode import commands
from kiosk.decode.zxing import ZxingDecoder
from tests import scancorpus

QrFile = Callable[..., Path]
PAYLOAD = hc1_like(580, seed=7)


@pytest.fixture(autouse=True)
def _no_system_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The gate's /etc/kiosk/kiosk.toml, if this machine has one, must not pick the backend.
    monkeypatch.setattr(commands, "DEFAULT_CONFIG", tmp_path / "absent.toml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(["decode", *argv])
    out, err = capsys.readouterr()
    assert PAYLOAD[4:40] not in out + err  # never the payload, not even a piece of it
    return status, out


def scene_file(path: Path, gray: np.ndarray) -> Path:
    Image.fromarray(gray).save(path)
    return path


def test_a_code_is_reported_by_length_prefix_attempt_and_time(
    qr_file: QrFile, capsys: pytest.CaptureFixture[str]
) -> None:
    path = qr_file(PAYLOAD)
    status, out = run(capsys, str(path), "--backend", "zxing")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "decoder: zxing"
    assert lines[1].startswith(f"{path}: read 1 code (HC1: 580 chars) by first look, in ")
    assert lines[1].endswith(" ms")


def test_json_for_a_folder_with_a_blank_and_another_code(
    tmp_path: Path, qr_file: QrFile, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    qr_file(PAYLOAD, name="shots/a-dcc.png")
    qr_file("https://example.test/ticket/1", name="shots/b-url.png", scale=4)
    scene_file(folder / "c-blank.png", in_scene(np.full((10, 10), 120, np.uint8)))
    (folder / "notes.txt").write_text("not an image")
    status, out = run(capsys, str(folder), "--json", "--backend", "zxing")
    assert status == 1  # one image read nothing
    document = json.loads(out)
    assert document["decoder"] == {"backend": "zxing", "isolated": False}
    files = {Path(f["file"]).name: f for f in document["files"]}
    assert sorted(files) == ["a-dcc.png", "b-url.png", "c-blank.png"]
    assert files["a-dcc.png"]["codes"] == [{"length": 580, "prefix": "HC1:"}]
    assert files["a-dcc.png"]["attempt"] == "first look"
    assert files["a-dcc.png"]["ms"] > 0
    assert files["b-url.png"]["codes"] == [{"length": 29, "prefix": "other"}]
    assert files["c-blank.png"]["read"] is False
    assert files["c-blank.png"]["attempt"] is None
    assert files["c-blank.png"]["symbols_seen"] == 0
    assert "example.test" not in out


def test_a_frame_only_the_second_look_reads_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare_misses = [
        case
        for case in scancorpus.corpus(3.0)
        if not any(b.valid for b in zxingcpp.read_barcodes(case.gray))
        and ZxingDecoder().decode(case.gray) == [case.text]
    ]
    assert bare_misses, "the corpus has frames only the second look reads"
    case = bare_misses[0]
    path = scene_file(tmp_path / f"{case.condition}.png", case.gray)
    assert (load_gray(path) == case.gray).all()
    status, out = run(capsys, str(path), "--json", "--backend", "zxing")
    assert status == 0
    (report,) = json.loads(out)["files"]
    assert report["attempt"].startswith("second look (")
    assert report["codes"] == [{"length": len(case.text), "prefix": "HC1:"}]
    assert case.text[4:30] not in out


def test_an_animated_file_reports_the_first_frame_that_read(
    tmp_path: Path, qr_file: QrFile, capsys: pytest.CaptureFixture[str]
) -> None:
    code = load_gray(qr_file(PAYLOAD))
    empty = np.full((10, 10), 120, np.uint8)
    # Different noise in each frame: a GIF writer merges identical consecutive frames.
    frames = [
        in_scene(empty, seed=1),
        in_scene(empty, seed=2),
        in_scene(code),
        in_scene(code, at=(60, 150)),
    ]
    path = tmp_path / "clip.gif"
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=66, loop=0)
    status, out = run(capsys, str(path), "--backend", "zxing")
    assert status == 0
    line = out.splitlines()[1]
    assert "read 1 code (HC1: 580 chars) in 2 of 4 frames, first at frame 2, by first look" in line
    assert "ms mean" in line and "ms max per frame" in line

    status, out = run(capsys, str(path), "--backend", "zxing", "--max-frames", "2", "--json")
    (report,) = json.loads(out)["files"]
    assert status == 1
    assert (report["frames"], report["read"], report["truncated"]) == (2, False, True)


def test_a_video_file_is_read_frame_by_frame(
    tmp_path: Path, qr_file: QrFile, capsys: pytest.CaptureFixture[str]
) -> None:
    av = pytest.importorskip("av")
    code = in_scene(load_gray(qr_file(PAYLOAD, scale=4)), at=(20, 120))
    blank = in_scene(np.full((10, 10), 120, np.uint8))
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.options = {"crf": "12"}
        for gray in [blank] * 3 + [code] * 3:
            rgb = np.repeat(gray[:, :, None], 3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    status, out = run(capsys, str(path), "--json", "--backend", "zxing")
    (report,) = json.loads(out)["files"]
    assert status == 0
    assert report["frames"] == 6
    assert report["first_read_frame"] == 3
    assert report["codes"] == [{"length": 580, "prefix": "HC1:"}]


def test_bad_files_are_reported_one_by_one_without_hiding_the_good_one(
    tmp_path: Path, qr_file: QrFile, capsys: pytest.CaptureFixture[str]
) -> None:
    good = qr_file(PAYLOAD)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good.read_bytes()[:60])
    huge = tmp_path / "huge.png"
    Image.new("L", (4200, 4200), 255).save(huge)
    missing = tmp_path / "missing.png"
    status, out = run(capsys, str(corrupt), str(huge), str(missing), str(good))
    assert status == 1
    lines = out.splitlines()[1:]
    assert lines[0].startswith(f"{corrupt}: error: {corrupt}: cannot read image")
    assert lines[1] == f"{huge}: error: {huge}: 4200x4200 image is larger than 16777216 px"
    assert lines[2] == f"{missing}: error: {missing}: no such image file or folder"
    assert lines[3].startswith(f"{good}: read 1 code (HC1: 580 chars)")


def test_the_configured_backend_and_isolation_are_used(
    tmp_path: Path, qr_file: QrFile, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pyzbar.pyzbar")
    config = tmp_path / "kiosk.toml"
    config.write_text('[decoder]\nbackend = "pyzbar"\nisolate = true\n')
    path = qr_file(PAYLOAD)
    status, out = run(capsys, str(path), "--config", str(config), "--json")
    assert status == 0
    document = json.loads(out)
    assert document["decoder"] == {"backend": "pyzbar", "isolated": True}
    # The tool waits for the worker, so the worker (not the fallback) decoded it.
    assert document["files"][0]["attempt"] == "first look"
    assert document["files"][0]["codes"] == [{"length": 580, "prefix": "HC1:"}]

    status, out = run(capsys, str(path), "--config", str(config), "--no-isolate")
    assert status == 0
    assert out.splitlines()[0] == "decoder: pyzbar"


def test_a_file_without_frames_and_a_bad_frame_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kiosk.decode.commands import describe
    from kiosk.decode.probe import FileReport

    assert (
        describe(FileReport(tmp_path / "empty.mp4"))
        == f"{tmp_path / 'empty.mp4'}: no frame in the file"
    )
    with pytest.raises(SystemExit) as info:
        main(["decode", "--max-frames", "0", str(tmp_path)])
    assert info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
