"""Access tokens (``--token-file``) and the page's login sessions.

A token file holds one token per line (operators and machines); blank lines and
``#`` comments are ignored; tokens shorter than 16 characters are refused so a
guessable one cannot be configured by accident. The API and ``/metrics`` take
``Authorization: Bearer <token>``; the page's login form exchanges a token for
a random session id in an ``HttpOnly``, ``SameSite=Strict`` cookie, so the token
itself never sits in the browser.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kiosk.errors import ConfigError

MIN_TOKEN = 16
MAX_TOKEN = 256
SESSION_S = 12 * 3600
MAX_SESSIONS = 10_000
COOKIE = "kiosk_fleet"


def read_tokens(path: Path) -> list[str]:
    """The tokens in ``path``.

    Raises:
        ConfigError: unreadable, empty, or a token that is too short or too long
            (the message names the line, never the token).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read token file: {exc.strerror or exc}") from exc
    tokens = []
    for number, line in enumerate(text.splitlines(), start=1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if not MIN_TOKEN <= len(token) <= MAX_TOKEN or any(c.isspace() for c in token):
            raise ConfigError(
                f"{path}:{number}: a token must be {MIN_TOKEN}..{MAX_TOKEN} characters, no spaces"
            )
        tokens.append(token)
    if not tokens:
        raise ConfigError(f"{path}: no token in the file")
    return tokens


class Access:
    """Checks tokens and session cookies (thread-safe)."""

    def __init__(self, tokens: list[str], clock: Callable[[], float] = time.monotonic) -> None:
        self._tokens = [t.encode() for t in tokens]
        self._clock = clock
        self._sessions: dict[str, float] = {}
        self._lock = threading.Lock()

    def token_ok(self, token: str) -> bool:
        """Whether ``token`` is one of the configured tokens (constant time per token)."""
        given = token.encode()[:MAX_TOKEN]
        ok = False
        for known in self._tokens:
            ok |= hmac.compare_digest(given, known)
        return ok

    def bearer_ok(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries a valid Bearer token."""
        if not header or not header.startswith("Bearer "):
            return False
        return self.token_ok(header.removeprefix("Bearer ").strip())

    def login(self, token: str) -> str | None:
        """A new session id for a valid token, else None."""
        if not self.token_ok(token):
            return None
        now = self._clock()
        sid = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._sessions = {s: t for s, t in self._sessions.items() if t > now}
                while len(self._sessions) >= MAX_SESSIONS:
                    self._sessions.pop(next(iter(self._sessions)))
            self._sessions[sid] = now + SESSION_S
        return sid

    def session_ok(self, cookie_header: str | None) -> bool:
        """Whether the ``Cookie`` header holds a live session."""
        if not cookie_header or len(cookie_header) > 4096:
            return False
        for part in cookie_header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                with self._lock:
                    expiry = self._sessions.get(value)
                return expiry is not None and expiry > self._clock()
        return False

    def logout(self, cookie_header: str | None) -> None:
        """End the session named in the ``Cookie`` header, if any."""
        for part in (cookie_header or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                with self._lock:
                    self._sessions.pop(value, None)
