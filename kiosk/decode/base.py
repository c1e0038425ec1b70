"""The QR decoder contract and the backend factory.

Two backends read QR codes from a grayscale frame: zxing-cpp (preferred: faster
and reads inverted, rotated and small codes) and pyzbar/zbar (the fallback that
Raspberry Pi OS has packaged for years). Each backend module imports its
library lazily, so a missing library becomes :class:`DecoderUnavailable` with an
install hint instead of an ImportError at start-up.
"""

from __future__ import annotations

import abc
import importlib
import logging
from collections.abc import Iterable

import numpy as np

from kiosk.errors import DecoderUnavailable

log = logging.getLogger(__name__)

#: Backends in order of preference for ``"auto"``.
BACKENDS: tuple[str, ...] = ("zxing", "pyzbar")
_MODULES = {"zxing": "zxingcpp", "pyzbar": "pyzbar.pyzbar"}


class Decoder(abc.ABC):
    """Finds QR codes in a grayscale image and returns their texts."""

    #: Backend name as used in ``decoder.backend`` ("zxing", "pyzbar").
    name: str
    #: QR symbols found by the last :meth:`decode`, read or not (a backend that
    #: cannot tell reports only those it read).
    symbols_seen: int = 0

    @abc.abstractmethod
    def decode(self, gray: np.ndarray) -> list[str]:
        """Return the texts of all QR codes in ``gray`` (QR only), ``[]`` if none.

        Args:
            gray: 2-D ``uint8`` image (rows × columns).

        Never raises because of what the image shows (noise, blank, partial or
        damaged codes): a failure inside the decoding library is logged and
        counts as "no code". A text appears once even if the code is seen
        twice in the frame.

        Raises:
            ValueError: ``gray`` is not a 2-D ``uint8`` array (a caller bug).
        """

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release what the decoder holds (a worker process); idempotent. Default: nothing."""


def check_gray(gray: np.ndarray) -> np.ndarray:
    """Validate a decoder input and return it C-contiguous (copied only if needed).

    Raises:
        ValueError: not a 2-D ``uint8`` array.
    """
    if not isinstance(gray, np.ndarray) or gray.ndim != 2 or gray.dtype != np.uint8:
        shape = getattr(gray, "shape", None)
        dtype = getattr(gray, "dtype", type(gray).__name__)
        raise ValueError(f"decoder input must be a 2-D uint8 array, got {dtype} {shape}")
    return np.ascontiguousarray(gray)


def unique(texts: Iterable[str]) -> list[str]:
    """The texts in first-seen order, each once."""
    return list(dict.fromkeys(texts))


def available_backends() -> list[str]:
    """Backends whose library imports on this machine, in order of preference."""
    found = []
    for backend in BACKENDS:
        try:
            importlib.import_module(_MODULES[backend])
        except (ImportError, OSError):  # pyzbar raises ImportError when libzbar0 is missing
            continue
        found.append(backend)
    return found


def create_decoder(backend: str, *, isolate: bool = False) -> Decoder:
    """Make the decoder for ``backend``: ``"auto"``, ``"zxing"`` or ``"pyzbar"``.

    ``"auto"`` picks zxing-cpp when it imports, otherwise pyzbar. ``isolate``
    runs pyzbar in a supervised worker process
    (:class:`~kiosk.decode.isolated.IsolatedDecoder`; zbar can abort the
    process), with zxing-cpp as the fallback while the worker is down when it
    is installed. Close the decoder when done (:meth:`Decoder.close`).

    Raises:
        DecoderUnavailable: the requested backend (or, for ``"auto"``, every
            backend) is not installed; the message says how to install it.
        ValueError: unknown backend name.
    """
    if backend == "auto":
        failures = []
        for candidate in BACKENDS:
            try:
                decoder = create_decoder(candidate, isolate=isolate)
            except DecoderUnavailable as exc:
                failures.append(str(exc))
                continue
            log.info("QR decoder: %s (auto)", decoder.name)
            return decoder
        raise DecoderUnavailable("no QR decoder is installed; " + "; ".join(failures))
    if backend == "zxing":
        from kiosk.decode.zxing import ZxingDecoder

        return ZxingDecoder()
    if backend == "pyzbar":
        from kiosk.decode.zbar import PyzbarDecoder

        decoder = PyzbarDecoder()  # raises DecoderUnavailable here, not in the worker
        if not isolate:
            return decoder
        from kiosk.decode.isolated import IsolatedDecoder

        try:
            fallback: Decoder | None = create_decoder("zxing")
        except DecoderUnavailable:
            fallback = None
        return IsolatedDecoder("kiosk.decode.zbar:PyzbarDecoder", name="pyzbar",
                               fallback=fallback)
    raise ValueError(f"unknown decoder backend {backend!r} (auto, {', '.join(BACKENDS)})")
