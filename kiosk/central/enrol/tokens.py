"""One-time enrolment tokens: issued for one ``<site>/<gate>``, redeemed once, then dead.

Only a SHA-256 of each token is stored (``tokens.json``, mode 0600), so a copy
of the CA folder's token book does not let anyone enrol. Redeeming takes an
exclusive lock on the book, so two requests with the same token cannot both win.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kiosk.config.ids import device_identity
from kiosk.errors import EnrolmentError
from kiosk.verify.atomic import atomic_write

# A token is 32 random bytes, URL-safe base64 (43 characters).
TOKEN_BYTES = 32
MAX_TOKEN_CHARS = 128
DEFAULT_TOKEN_HOURS = 72.0


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


class TokenBook:
    """The token book of one CA folder.

    Args:
        path: ``tokens.json`` (created on first use).
        clock: aware UTC now (injected for tests).
    """

    def __init__(self, path: Path, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.path = path
        self._clock = clock

    def issue(self, site: str, gate: str, valid_hours: float = DEFAULT_TOKEN_HOURS) -> str:
        """A new token for ``<site>/<gate>``, valid ``valid_hours``; returned once, never stored."""
        identity = device_identity(site, gate)
        if not 0 < valid_hours <= 24 * 30:
            raise EnrolmentError(f"token validity {valid_hours} h: must be >0 and at most 720 h")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        expires = self._clock() + timedelta(hours=valid_hours)
        with self._locked() as book:
            book[_digest(token)] = {
                "identity": identity,
                "expires": expires.isoformat(),
                "used": None,
            }
            self._save(book)
        return token

    def check(self, token: str) -> str:
        """The identity ``token`` was issued for, if it is valid and unused (not redeemed)."""
        with self._locked() as book:
            return self._valid(book, token)["identity"]

    def redeem(self, token: str, identity: str) -> None:
        """Mark ``token`` used for ``identity``; raise :class:`EnrolmentError` if it may not be."""
        with self._locked() as book:
            entry = self._valid(book, token)
            if not hmac.compare_digest(entry["identity"], identity):
                raise EnrolmentError(
                    f"the token was issued for {entry['identity']}, not for this request"
                )
            entry["used"] = self._clock().isoformat()
            self._save(book)

    def _valid(self, book: dict[str, Any], token: str) -> dict[str, Any]:
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
            raise EnrolmentError("enrolment token: missing or too long")
        entry = book.get(_digest(token))
        if entry is None:
            raise EnrolmentError("enrolment token: unknown (typed wrongly, or from another CA)")
        if entry["used"] is not None:
            raise EnrolmentError(f"enrolment token: already used at {entry['used']}")
        if datetime.fromisoformat(entry["expires"]) <= self._clock():
            raise EnrolmentError(f"enrolment token: expired at {entry['expires']}")
        return entry

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_suffix(".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                book = json.loads(self.path.read_text()) if self.path.exists() else {}
                yield book
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _save(self, book: dict[str, Any]) -> None:
        data = json.dumps(book, indent=1, sort_keys=True).encode()
        atomic_write(self.path, data, mode=0o600)
