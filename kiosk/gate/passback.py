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

import errno
import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import stat
import threading
from pathlib import Path

from kiosk.atomic import atomic_write
from kiosk.closing import Closing
from kiosk.errors import TelemetryError

log = logging.getLogger(__name__)

SECRET_FILE = "passback.key"
DB_FILE = "passback.sqlite"
SECRET_BYTES = 32
_SECRET_MAX_BYTES = 1024  # a longer "secret" is not ours


def load_secret(data_dir: Path) -> bytes:
    """The per-device secret, created (0600, atomically) on first use.

    An existing file is used only when it is a regular file (a symlink is not
    followed) owned by this process's user and writable by no one else; one
    that others may also read gets mode 0600 (with a warning).  A short,
    foreign-owned, group/other-writable or symlinked secret is replaced by a
    new one: its content may have been planted, so hashes made with it prove
    nothing.  A replacement is always written 0600, never inheriting the old
    file's mode.

    Raises:
        OSError: the folder or file cannot be read or written.
    """
    path = data_dir / SECRET_FILE
    secret = _existing_secret(path)
    if secret is not None:
        return secret
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(SECRET_BYTES)
    atomic_write(path, secret, mode=0o600)
    return secret


def _existing_secret(path: Path) -> bytes | None:
    """The usable secret at ``path``, or None when there is none or it must be replaced."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        log.warning("anti-passback secret %s is a symlink; replacing it", path)
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            log.warning("anti-passback secret %s is not a regular file; replacing it", path)
            return None
        mode = stat.S_IMODE(info.st_mode)
        if info.st_uid != os.geteuid() or mode & 0o022:
            log.warning("anti-passback secret %s is owned by uid %d with mode %o: it may have "
                        "been planted; replacing it", path, info.st_uid, mode)
            return None
        secret = handle.read(_SECRET_MAX_BYTES + 1)
        if not SECRET_BYTES <= len(secret) <= _SECRET_MAX_BYTES:
            log.warning("anti-passback secret %s has the wrong length; making a new one", path)
            return None
        if mode & 0o077:
            log.warning("anti-passback secret %s was readable by others (mode %o); "
                        "mode set to 600", path, mode)
            os.fchmod(handle.fileno(), 0o600)
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

