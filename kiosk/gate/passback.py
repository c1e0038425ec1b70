"""Anti-passback: a certificate admitted here is refused again for a while.

The gate never stores a certificate identifier in clear. It keeps
``HMAC-SHA256(device secret, credential_id)`` with the time of admission in a
small SQLite file in ``device.data_dir``, so the window survives a reboot (a
power cycle must not reopen the loophole) while the file alone reveals nothing:
without the per-device secret (``passback.key``, 32 random bytes, mode 0600,
created on first start) a hash cannot be matched to a certificate, and two
gates' hashes of the same certificate differ.

Times are wall-clock UTC seconds (monotonic time does not survive a reboot). A
clock stepped backwards makes entries last longer (the gate errs on refusing);
stepped forwards, they end early.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import threading
from pathlib import Path

from kiosk.closing import Closing
from kiosk.errors import TelemetryError

log = logging.getLogger(__name__)

SECRET_FILE = "passback.key"
DB_FILE = "passback.sqlite"
SECRET_BYTES = 32


def load_secret(data_dir: Path) -> bytes:
    """The per-device secret, created (0600) on first use.

    Raises:
        OSError: the folder or file cannot be read or written.
    """
    path = data_dir / SECRET_FILE
    try:
        secret = path.read_bytes()
        if len(secret) >= SECRET_BYTES:
            return secret
        log.warning("anti-passback secret %s too short; making a new one", path)
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(SECRET_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
        f.flush()
        os.fsync(f.fileno())
    return secret


class PassbackGuard(Closing):
    """Remembers admitted credentials (as keyed hashes) for ``window_s`` seconds.

    Args:
        data_dir: where the secret and the SQLite file live.
        window_s: how long an admission blocks the same credential; 0 disables
            the guard (every method then does nothing and :meth:`seen` is False).

    Raises:
        TelemetryError: the database or the secret cannot be opened.
    """

    def __init__(self, data_dir: Path, window_s: float) -> None:
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.window_s = window_s
        if window_s <= 0:
            self._secret = b""
            return
        try:
            self._secret = load_secret(data_dir)
            self._conn = sqlite3.connect(
                str(data_dir / DB_FILE), isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS admitted (key BLOB PRIMARY KEY, at REAL NOT NULL)"
            )
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise TelemetryError(f"cannot open anti-passback store in {data_dir}: {exc}") from exc

    @property
    def enabled(self) -> bool:
        """False when ``window_s`` is 0."""
        return self._conn is not None

    def key(self, credential_id: bytes) -> bytes:
        """The keyed hash stored for ``credential_id`` (HMAC-SHA256 with the device secret)."""
        return hmac.new(self._secret, credential_id, hashlib.sha256).digest()

    def seen(self, key: bytes, now_s: float) -> bool:
        """True if ``key`` was admitted less than ``window_s`` before ``now_s`` (UTC seconds)."""
        if self._conn is None:
            return False
        with self._lock:
            row = self._conn.execute("SELECT at FROM admitted WHERE key = ?", (key,)).fetchone()
        return row is not None and now_s - float(row[0]) < self.window_s

    def admit(self, key: bytes, now_s: float) -> None:
        """Record an admission at ``now_s``; also forgets entries older than the window."""
        if self._conn is None:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT INTO admitted (key, at) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET at = excluded.at",
                    (key, now_s),
                )
                self._conn.execute("DELETE FROM admitted WHERE at < ?", (now_s - self.window_s,))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def release(self, key: bytes) -> None:
        """Forget ``key`` (its grant went unused, so the traveller may scan again)."""
        if self._conn is None:
            return
        with self._lock:
            self._conn.execute("DELETE FROM admitted WHERE key = ?", (key,))

    def close(self) -> None:
        """Close the database. Idempotent, safe after a failed constructor."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

