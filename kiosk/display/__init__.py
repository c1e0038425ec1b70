"""The traveller-facing screen: bilingual texts, pure rendering, and the pygame window."""

import os

# pygame prints a greeting to stdout on import, which would corrupt the
# terminal output of the scan loop; this must be set before the first import.
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from kiosk.display.messages import IDLE, Message, message_for
from kiosk.display.screen import NullScreen, Screen, open_screen
from kiosk.errors import DisplayError

__all__ = [
    "IDLE",
    "DisplayError",
    "Message",
    "NullScreen",
    "Screen",
    "message_for",
    "open_screen",
]
