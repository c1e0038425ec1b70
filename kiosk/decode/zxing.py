"""QR decoding with zxing-cpp (the preferred backend)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from kiosk.decode.base import Decoder, check_gray, unique
from kiosk.decode.secondlook import Box, second_look, symbol_box
from kiosk.decode.texture import qr_like_region
from kiosk.errors import DecoderUnavailable

log = logging.getLogger(__name__)

_INSTALL_HINT = "install it with `pip install 'zxing-cpp>=2.2,<4'`"


class ZxingDecoder(Decoder):
    """zxing-cpp restricted to QR codes, also reading inverted (light-on-dark) codes.

    Restricting ``formats`` to QR skips every other reader: idle frames (most
    frames at a gate) cost a fraction of an all-formats scan. Inverted codes
    are found by zxing-cpp itself (``try_invert``, on by default since 2.2);
    with a zxing-cpp that lacks the option, a second pass on ``255 - gray``
    runs when the first finds nothing.

    When nothing is read but a QR symbol is seen (reported by zxing-cpp with
    an error, or a QR-like patch: :mod:`kiosk.decode.texture`), a *second look*
    re-reads that region enhanced (:mod:`kiosk.decode.secondlook`); so
    :meth:`decode` is the whole per-frame path, retries included. Counters:
    ``second_looks`` (frames that got one) and ``second_look_reads`` (of those,
    frames it read), ``second_look_by`` (reads per enhancement).

    Args:
        second_look: False turns the second look off (the bare library call).

    Raises:
        DecoderUnavailable: zxing-cpp is not installed (with an install hint).
    """

    name = "zxing"

    def __init__(self, *, second_look: bool = True) -> None:
        self.second_look = second_look
        self.second_looks = 0
        self.second_look_reads = 0
        self.second_look_by: dict[str, int] = {}
        self._errored: list[Box] = []
        try:
            import zxingcpp
        except ImportError as exc:
            raise DecoderUnavailable(f"zxing-cpp is not installed; {_INSTALL_HINT}") from exc
        self._zx: Any = zxingcpp
        self._formats = zxingcpp.BarcodeFormat.QRCode
        self.native_invert = self._supports("try_invert")
        # Symbols found but not read (checksum, format errors) are reported too (2.2+).
        self.reports_errors = self._supports("return_errors")

    def decode(self, gray: np.ndarray) -> list[str]:
        """Texts of the QR codes in ``gray``; see :meth:`Decoder.decode`."""
        image = check_gray(gray)
        self.symbols_seen = 0
        self._errored = []
        if image.size == 0:
            return []
        texts = self._read(image)
        if not texts and not self.native_invert:
            texts = self._read(np.invert(image))
        if not texts and self.second_look:
            texts = self._second_look(image)
        return texts

    def _second_look(self, image: np.ndarray) -> list[str]:
        """Re-read the region where a symbol was seen, enhanced; [] if none was seen.

        The QR-like patch comes first: a symbol reported with an error often has
        a box around part of the code only (one finder pattern and a guess).
        """
        box = qr_like_region(image)
        if box is None and self._errored:
            box = self._errored[0]
        if box is None:
            return []
        self.second_looks += 1
        texts, by = second_look(image, box, self._read_enhanced)
        if by is not None:
            self.second_look_reads += 1
            self.second_look_by[by] = self.second_look_by.get(by, 0) + 1
        return texts

    def _read_enhanced(self, image: np.ndarray) -> list[str]:
        texts = self._read(image)
        if not texts and not self.native_invert:
            texts = self._read(np.invert(image))
        return texts

    def _read(self, image: np.ndarray) -> list[str]:
        options: dict[str, Any] = {"formats": self._formats}
        if self.native_invert:
            options["try_invert"] = True
        if self.reports_errors:
            options["return_errors"] = True
        try:
            found = self._zx.read_barcodes(image, **options)
        except Exception:
            # A library fault on one frame must not stop the gate; the next frame is a new try.
            log.warning(
                "zxing-cpp failed on a %dx%d frame", image.shape[1], image.shape[0], exc_info=True
            )
            return []
        self.symbols_seen += len(found)
        self._errored += [
            symbol_box(_corners(barcode.position), (image.shape[0], image.shape[1]))
            for barcode in found
            if not barcode.valid
        ]
        # Only a symbol whose error correction and checksums passed gives a text.
        return unique(barcode.text for barcode in found if barcode.valid)

    def _supports(self, option: str) -> bool:
        """Whether this zxing-cpp's read_barcodes accepts the flag ``option``."""
        blank = np.full((8, 8), 255, dtype=np.uint8)
        try:
            self._zx.read_barcodes(blank, formats=self._formats, **{option: True})
        except TypeError:
            log.info("zxing-cpp without %s", option)
            return False
        return True


def _corners(position: Any) -> list[tuple[float, float]]:
    """The four corners (x, y) of a zxing-cpp ``Position``."""
    points = (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
    return [(float(p.x), float(p.y)) for p in points]
