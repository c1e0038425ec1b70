"""Both QR backends on real QR images: plain, inverted, rotated, degraded, empty."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from qrgen import hc1_like, in_scene, load_gray

from kiosk.decode import Decoder, ZxingDecoder, available_backends, create_decoder
from kiosk.decode.zbar import payload_text
from kiosk.errors import DecoderUnavailable

HC1 = hc1_like()
SHORT = "KIOSK-TEST 42"

_decoders: dict[str, Decoder] = {}


def decoder(backend: str) -> Decoder:
    """One decoder per backend for the whole run (creation probes the library)."""
    if backend not in _decoders:
        _decoders[backend] = create_decoder(backend)
    return _decoders[backend]


def test_both_backends_are_installed_here() -> None:
    # The suite is meant to exercise both; a silently skipped backend would hide a regression.
    assert available_backends() == ["zxing", "pyzbar"]


@pytest.mark.parametrize("text", [HC1, SHORT], ids=["hc1-580", "short"])
def test_decodes_a_rendered_qr_png(backend: str, qr_file: Callable[..., Path], text: str) -> None:
    assert len(HC1) == 580
    gray = load_gray(qr_file(text))
    assert decoder(backend).decode(gray) == [text]


def test_decodes_a_code_inside_a_noisy_camera_frame(
    backend: str, qr_file: Callable[..., Path]
) -> None:
    frame = in_scene(load_gray(qr_file(HC1)))
    assert frame.shape == (480, 640)
    assert decoder(backend).decode(frame) == [HC1]


def test_decodes_white_on_black_dark_mode_code(backend: str, qr_file: Callable[..., Path]) -> None:
    gray = load_gray(qr_file(HC1, dark="white", light="black"))
    assert gray[0, 0] == 0  # really inverted: the quiet zone is black
    assert decoder(backend).decode(in_scene(gray)) == [HC1]


def test_zbar_alone_misses_inverted_codes_so_the_second_pass_is_needed(
    qr_file: Callable[..., Path],
) -> None:
    from pyzbar import pyzbar

    gray = load_gray(qr_file(SHORT, dark="white", light="black"))
    assert pyzbar.decode(gray, symbols=[pyzbar.ZBarSymbol.QRCODE]) == []
    assert decoder("pyzbar").decode(gray) == [SHORT]


def test_zxing_without_native_try_invert_inverts_in_python(qr_file: Callable[..., Path]) -> None:
    # zxing-cpp 2.2 has no try_invert keyword; the decoder then runs its own second pass.
    legacy = create_decoder("zxing")
    assert isinstance(legacy, ZxingDecoder)
    legacy.native_invert = False
    assert legacy.decode(load_gray(qr_file(SHORT, dark="white", light="black"))) == [SHORT]
    assert legacy.decode(np.zeros((64, 64), np.uint8)) == []


def test_zxing_reads_a_code_rotated_30_degrees(qr_file: Callable[..., Path]) -> None:
    image = Image.open(qr_file(HC1)).convert("L")
    rotated = np.asarray(
        image.rotate(30, expand=True, fillcolor=255, resample=Image.Resampling.BILINEAR)
    )
    assert decoder("zxing").decode(in_scene(rotated, at=(20, 120))) == [HC1]


def test_zxing_reads_a_noisy_downscaled_code(qr_file: Callable[..., Path]) -> None:
    # Rendered at 4 px/module, shrunk to ~2.4 px/module and blurred by the resampling,
    # then sensor noise: roughly a phone held at arm's length in front of a 640x480 camera.
    image = Image.open(qr_file(HC1, scale=4)).convert("L")
    small = image.resize((image.width * 3 // 5, image.height * 3 // 5), Image.Resampling.BILINEAR)
    rng = np.random.default_rng(3)
    noisy = np.asarray(small).astype(np.float32) + rng.normal(0, 10, (small.height, small.width))
    frame = in_scene(np.clip(noisy, 0, 255).astype(np.uint8))
    assert decoder("zxing").decode(frame) == [HC1]


def test_two_codes_in_one_frame_are_both_returned(
    backend: str, qr_file: Callable[..., Path]
) -> None:
    first = load_gray(qr_file("FIRST-CODE", name="a.png", scale=5))
    second = load_gray(qr_file("SECOND-CODE", name="b.png", scale=5))
    frame = in_scene(first, at=(100, 40))
    frame[100 : 100 + second.shape[0], 360 : 360 + second.shape[1]] = second
    assert sorted(decoder(backend).decode(frame)) == ["FIRST-CODE", "SECOND-CODE"]


@pytest.mark.parametrize("kind", ["black", "white", "gray", "noise"])
def test_frames_without_a_code_give_nothing_quickly(backend: str, kind: str) -> None:
    rng = np.random.default_rng(7)
    frames = {
        "black": np.zeros((480, 640), np.uint8),
        "white": np.full((480, 640), 255, np.uint8),
        "gray": np.full((480, 640), 128, np.uint8),
        "noise": rng.integers(0, 256, (480, 640), dtype=np.uint8),
    }
    started = time.perf_counter()
    assert decoder(backend).decode(frames[kind]) == []
    # A generous bound (measured: a few ms); catches a pathological slow path, not jitter.
    assert time.perf_counter() - started < 0.5


@settings(max_examples=60, deadline=None)
@given(
    image=arrays(
        np.uint8,
        st.tuples(st.integers(0, 48), st.integers(0, 48)),
        elements=st.integers(0, 255),
    )
)
def test_random_images_never_raise(image: np.ndarray) -> None:
    for backend in available_backends():
        result = decoder(backend).decode(image)
        assert isinstance(result, list)
        assert all(isinstance(text, str) for text in result)


def test_non_contiguous_input_is_accepted(backend: str, qr_file: Callable[..., Path]) -> None:
    frame = in_scene(load_gray(qr_file(SHORT, scale=4)))
    view = np.asfortranarray(frame)  # same pixels, column-major memory
    assert decoder(backend).decode(view) == [SHORT]


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32), [[0, 1], [1, 0]]]
)
def test_wrong_input_type_is_a_caller_error(backend: str, bad: object) -> None:
    with pytest.raises(ValueError, match="2-D uint8"):
        decoder(backend).decode(bad)  # type: ignore[arg-type]


def test_payload_bytes_fall_back_to_latin1() -> None:
    assert payload_text("Grüße".encode()) == "Grüße"
    assert payload_text(b"Gr\xfc\xdfe") == "Grüße"


def test_auto_prefers_zxing() -> None:
    assert create_decoder("auto").name == "zxing"


def test_auto_falls_back_to_pyzbar_without_zxing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zxingcpp", None)  # import now raises ImportError
    assert available_backends() == ["pyzbar"]
    assert create_decoder("auto").name == "pyzbar"


def test_explicit_missing_backend_is_decoder_unavailable_with_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "zxingcpp", None)
    with pytest.raises(DecoderUnavailable, match="pip install 'zxing-cpp"):
        create_decoder("zxing")
    monkeypatch.setitem(sys.modules, "pyzbar", None)
    monkeypatch.setitem(sys.modules, "pyzbar.pyzbar", None)
    with pytest.raises(DecoderUnavailable, match="libzbar0"):
        create_decoder("pyzbar")
    with pytest.raises(DecoderUnavailable, match="no QR decoder is installed") as info:
        create_decoder("auto")
    assert isinstance(info.value, ImportError)  # callers catching ImportError still work
    assert available_backends() == []


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown decoder backend 'opencv'"):
        create_decoder("opencv")
