"""QR decoding: backends behind one :class:`Decoder` interface, and de-duplication.

Importing this package imports neither zxing-cpp nor pyzbar; they load when a
decoder is created.
"""

from kiosk.decode.base import BACKENDS, Decoder, available_backends, create_decoder
from kiosk.decode.debounce import RepeatFilter
from kiosk.decode.idle import IdleThrottle
from kiosk.decode.zbar import PyzbarDecoder
from kiosk.decode.zxing import ZxingDecoder

__all__ = [
    "BACKENDS",
    "Decoder",
    "IdleThrottle",
    "PyzbarDecoder",
    "RepeatFilter",
    "ZxingDecoder",
    "available_backends",
    "create_decoder",
]
