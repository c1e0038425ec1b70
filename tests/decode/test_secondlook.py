"""The second look (kiosk.decode.secondlook) on the synthetic phone-screen corpus."""

from __future__ import annotations

import numpy as np
import pytest
import zxingcpp

from kiosk.decode import create_decoder
from kiosk.decode.texture import qr_like_region
from kiosk.decode.zxing import ZxingDecoder
from tests import scancorpus

QR = zxingcpp.BarcodeFormat.QRCode


@pytest.fixture(scope="module")
def cases() -> list[scancorpus.Case]:
    """Every condition × severity at 3 px/module (39 frames) and the hard ones at 2.5."""
    hard = ("blur", "motion_blur", "low_contrast", "moire")
    return scancorpus.corpus(3.0) + scancorpus.corpus(2.5, conditions=hard)


def test_the_second_look_recovers_misses_and_never_reads_a_wrong_text(
    cases: list[scancorpus.Case],
) -> None:
    bare = sum(
        any(b.text == c.text for b in zxingcpp.read_barcodes(c.gray, formats=QR)) for c in cases
    )
    decoder = ZxingDecoder()
    results = [decoder.decode(c.gray) for c in cases]
    read = sum(r == [c.text] for r, c in zip(results, cases, strict=True))
    wrong = [(c.condition, c.severity) for r, c in zip(results, cases, strict=True)
             if r and r != [c.text]]
    assert wrong == []
    assert bare < len(cases)  # the corpus has misses for the bare library
    assert read > bare, (read, bare)
    assert decoder.second_look_reads == read - bare
    assert decoder.second_looks >= decoder.second_look_reads > 0


def test_without_the_second_look_the_gate_reads_what_the_library_reads(
    cases: list[scancorpus.Case],
) -> None:
    decoder = ZxingDecoder(second_look=False)
    for case in cases[:12]:
        bare = [b.text for b in zxingcpp.read_barcodes(case.gray, formats=QR) if b.valid]
        assert decoder.decode(case.gray) == bare
    assert decoder.second_looks == 0


def test_an_empty_scene_gets_no_second_look() -> None:
    rng = np.random.default_rng(9)
    decoder = create_decoder("zxing")
    assert isinstance(decoder, ZxingDecoder)
    for _ in range(10):
        frame = scancorpus.idle_frame(rng, scancorpus.idle_scene(rng))
        assert qr_like_region(frame) is None
        assert decoder.decode(frame) == []
    assert decoder.second_looks == 0


def test_the_qr_like_region_holds_the_code() -> None:
    case = scancorpus.make_case("blur", 3, 3.0, seed=4)
    box = qr_like_region(case.gray)
    assert box is not None
    top, left, bottom, right = box
    assert 150 <= bottom - top <= 480 and 150 <= right - left <= 640
    # The crop alone, enhanced, is what the decoder reads.
    crop = np.ascontiguousarray(case.gray[top:bottom, left:right])
    assert crop.shape[0] * crop.shape[1] < case.gray.size


def test_texture_that_is_no_code_reads_nothing() -> None:
    """A patch of random blocks passes the texture check; no text may come out of it."""
    rng = np.random.default_rng(2)
    frame = np.full((480, 640), 120, dtype=np.uint8)
    blocks = rng.integers(0, 2, (100, 100)).astype(np.uint8) * 170 + 40
    frame[90:390, 170:470] = np.kron(blocks, np.ones((3, 3), dtype=np.uint8))
    assert qr_like_region(frame) is not None
    decoder = ZxingDecoder()
    assert decoder.decode(frame) == []
    assert decoder.second_looks == 1 and decoder.second_look_reads == 0
