"""QR decoding with zbar through pyzbar (the fallback backend)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from kiosk.decode.base import Decoder, check_gray, unique
from kiosk.errors import DecoderUnavailable

log = logging.getLogger(__name__)

_INSTALL_HINT = (
    "install the zbar library and its binding: `sudo apt install libzbar0` and "
    "`pip install 'pyzbar==0.1.9'`"
)


def payload_text(data: bytes) -> str:
    """QR payload bytes → text: UTF-8, or Latin-1 (which never fails) when not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


class PyzbarDecoder(Decoder):
    """zbar restricted to QR codes, with a second pass on the inverted image.

    zbar only finds dark modules on a light background; a phone in dark mode
    shows light-on-dark codes, so when the first pass finds nothing the image is
    inverted (``255 - gray``) and scanned again. Idle frames therefore cost two
    scans; that is the price of the fallback backend.

    Raises:
        DecoderUnavailable: pyzbar or libzbar0 is missing (with an install hint).
    """

    name = "pyzbar"

    def __init__(self) -> None:
        try:
            from pyzbar import pyzbar
        except (ImportError, OSError) as exc:
            raise DecoderUnavailable(f"pyzbar is not usable ({exc}); {_INSTALL_HINT}") from exc
        self._pyzbar: Any = pyzbar
        self._symbols = [pyzbar.ZBarSymbol.QRCODE]

    def decode(self, gray: np.ndarray) -> list[str]:
        """Texts of the QR codes in ``gray``; see :meth:`Decoder.decode`."""
        image = check_gray(gray)
        self.symbols_seen = 0
        if image.size == 0:
            return []
        texts = self._scan(image)
        if not texts:
            texts = self._scan(np.invert(image))  # light-on-dark (dark-mode phone screens)
        self.symbols_seen = len(texts)
        return texts

    def _scan(self, image: np.ndarray) -> list[str]:
        height, width = image.shape
        try:
            # The (bytes, width, height) form is zbar's 8-bit gray "Y800" input.
            found = self._pyzbar.decode((image.tobytes(), width, height), symbols=self._symbols)
        except Exception:
            # A zbar fault on one frame must not stop the gate; the next frame is a new try.
            log.warning("pyzbar failed on a %dx%d frame", width, height, exc_info=True)
            return []
        return unique(payload_text(symbol.data) for symbol in found)
