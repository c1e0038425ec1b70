"""The page's HTML: two static documents shipped in the package (no CDN, no templates).

The main page is a shell; ``static/fleet.js`` fills it from the JSON API and
keeps it live with server-sent events. All text is bilingual (Bahasa
Indonesia / English), as on the gate.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def _asset(name: str) -> bytes:
    return resources.files("kiosk.central.fleet").joinpath("static", name).read_bytes()


def main_page() -> bytes:
    """The fleet page (needs a session or token)."""
    return _asset("index.html")


def login_page(*, failed: bool = False) -> bytes:
    """The login form; with ``failed`` it says the token was not accepted."""
    note = (
        b'<p class="err" role="alert">Token tidak diterima / Token not accepted</p>'
        if failed
        else b""
    )
    return _asset("login.html").replace(b"<!--NOTE-->", note)
