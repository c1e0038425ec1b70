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

The check runs between decode and relay, so it is answered from memory: the
table is read once at open and every change goes to memory first
(:meth:`PassbackGuard.mark`, before the relay) and to disk after
(:meth:`PassbackGuard.admit`, after the relay). The memory holds what the table
holds (the admissions of the last ``window_s`` seconds, about 150 bytes each:
some 6 MB at one admission every 2 s over the longest window, 24 h), and this
process is the file's only writer.
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
        self._recent: dict[bytes, float] = {}  # the table's rows, for the check before the relay
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
            self._recent = {
                bytes(key): float(at)
                for key, at in self._conn.execute("SELECT key, at FROM admitted ORDER BY at")
            }
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
        """True if ``key`` was admitted (or marked) less than ``window_s`` before ``now_s``.

        Answered from memory (no disk access): ``now_s`` is UTC seconds.
        """
        if self._conn is None:
            return False
        with self._lock:
            at = self._recent.get(key)
        return at is not None and now_s - at < self.window_s

    def mark(self, key: bytes, now_s: float) -> None:
        """Note an admission at ``now_s`` in memory only: :meth:`seen` answers True at once.

        For the moment between the decision and the disk write (:meth:`admit`),
        so a second scan in that moment is refused too. A process that dies
        before :meth:`admit` forgets the mark.
        """
        if self._conn is None:
            return
        with self._lock:
            self._remember(key, now_s)

    def admit(self, key: bytes, now_s: float) -> None:
        """Record an admission at ``now_s`` on disk (and in memory); forgets expired entries."""
        if self._conn is None:
            return
        with self._lock:
            self._remember(key, now_s)
            self._forget_before(now_s - self.window_s)
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

    def _remember(self, key: bytes, now_s: float) -> None:
        """Memory entry for ``key``, moved to the end: the dict stays in admission order."""
        self._recent.pop(key, None)
        self._recent[key] = now_s

    def _forget_before(self, cutoff: float) -> None:
        """Drop the oldest memory entries older than ``cutoff`` (caller holds the lock).

        Stops at the first younger one: after a clock step backwards a few
        expired entries may stay a while, which :meth:`seen` ignores anyway.
        """
        while self._recent:
            key, at = next(iter(self._recent.items()))
            if at >= cutoff:
                return
            del self._recent[key]

    def release(self, key: bytes) -> None:
        """Forget ``key`` (its grant went unused, so the traveller may scan again)."""
        if self._conn is None:
            return
        with self._lock:
            self._recent.pop(key, None)
            self._conn.execute("DELETE FROM admitted WHERE key = ?", (key,))

    def close(self) -> None:
        """Close the database. Idempotent, safe after a failed constructor."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

