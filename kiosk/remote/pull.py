"""The second distribution transport: pull releases over HTTPS from a static URL.

Fleets too large to push a 16 MB revocation list through a broker to every gate
put releases on a plain web server or CDN instead (``kiosk central publish
--out-dir``). The layout mirrors the MQTT topics, so one scope model serves
both transports::

    <base>/<scope root>/dist/<kind>.json        the descriptor (as on MQTT)
    <base>/<scope root>/dist/<kind>/<sha256>    each file, whole

where ``<scope root>`` is ``kiosk/_all/_all`` (fleet), ``kiosk/<site>/_all``
(site) or ``kiosk/<site>/<gate>``. Nothing fetched is trusted: the descriptor
is parsed with the MQTT transport's bounds, a file is streamed into staging
and refused the moment it runs past its announced size or past a deadline
(a server that trickles bytes cannot hold the thread), and it is used only
when its size and SHA-256 match; it is then installed through the very
installers the MQTT receiver uses (authority signature, version strictly
greater, not expired, atomic). A truncated, forged, older or hanging download
changes nothing and is reported in the status (``pull_state``,
``pull_error``).

One thread (``kiosk-pull``) owns every request and staging file.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import random
import shutil
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kiosk.closing import Closing
from kiosk.config.schema import pull_url_problem
from kiosk.errors import DocumentError
from kiosk.remote.distribution import (
    KINDS,
    MAX_DESCRIPTOR_BYTES,
    FileRef,
    Release,
    ReleaseError,
    choose,
    descriptor_topic,
    parse_descriptor,
    scope_roots,
)
from kiosk.remote.receiver import Installers

__all__ = ["THREAD_NAME", "PullError", "ReleasePuller", "file_path"]

log = logging.getLogger(__name__)

THREAD_NAME = "kiosk-pull"
#: Bytes read per ``read()``; the deadline is checked between reads.
READ_BYTES = 64 * 1024
#: Every file must arrive at this rate at least (bytes/s) after a fixed allowance,
#: so a stalled or trickling server is cut off: 16 MB gets 30 s + 160 s.
MIN_RATE = 100 * 1024
ALLOWANCE_S = 30.0


class PullError(Exception):
    """One fetch failed; the message says why (bounded, names no secret)."""


def file_path(scope_root: str, kind: str, sha256: str) -> str:
    """The path of one release file below the base URL (the publisher writes the same)."""
    return f"{descriptor_topic(scope_root, kind)}/{sha256}"


@dataclass
class _Status:
    state: str = "idle"
    error: str = ""
    last_ok: float | None = None


class ReleasePuller(Closing):
    """Polls a static HTTPS location for this gate's releases and installs newer ones."""

    def __init__(
        self,
        *,
        base_url: str,
        topic_root: str,
        site: str,
        gate: str,
        staging: Path,
        installers: Installers,
        interval_s: float,
        ca_file: Path | None = None,
        timeout_s: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        problem = pull_url_problem(base_url)
        if problem or not base_url:
            raise ValueError(problem or "remote.pull_url is empty")
        self._base = base_url.rstrip("/")
        self._scopes = scope_roots(topic_root, site, gate)
        self._staging = staging
        self._installers = installers
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._clock = clock
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _HttpsOnlyRedirects()
        )
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _status
        self._status = _Status()
        self._thread: threading.Thread | None = None
        shutil.rmtree(staging, ignore_errors=True)  # parts of an earlier run are not trusted

    def start(self) -> None:
        """Start polling (the first poll comes after a short random delay)."""
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and remove partial downloads."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._timeout_s + 5)
            self._thread = None
        shutil.rmtree(self._staging, ignore_errors=True)

    def status(self) -> dict[str, Any]:
        """Status fields: ``pull_state``, ``pull_error``, ``pull_ok_age_s``."""
        with self._lock:
            s = self._status
            age = None if s.last_ok is None else round(self._clock() - s.last_ok)
            return {"pull_state": s.state, "pull_error": s.error, "pull_ok_age_s": age}

    def _run(self) -> None:
        # The first poll comes soon after start (a gate that was off catches up); later
        # ones are spread by ±10 % so gates that booted together drift apart.
        delay = random.uniform(0.5, 5.0)
        while not self._stop.wait(delay):
            try:
                self.poll()
            except Exception:  # a bug here must not end the transport for good
                log.exception("pull: poll failed")
            delay = self._interval_s * random.uniform(0.9, 1.1)

    def poll(self) -> None:
        """One round: for each kind, fetch and install the newest offer if it is newer.

        Runs on the ``kiosk-pull`` thread (tests call it directly).
        """
        errors = []
        for kind in KINDS:
            try:
                self._poll_kind(kind)
            except PullError as exc:
                errors.append(f"{kind}: {exc}")
                log.warning("pull: %s refused: %s", kind, exc)
        with self._lock:
            self._status.state = "refused" if errors else "idle"
            self._status.error = "; ".join(errors)[:200]
            if not errors:
                self._status.last_ok = self._clock()

    def _poll_kind(self, kind: str) -> None:
        offers: list[tuple[Release, str]] = []
        for scope in self._scopes:
            for topic in self._installers.descriptor_topics(scope, kind):
                payload = self._get(f"{topic}.json", MAX_DESCRIPTOR_BYTES)
                if payload is None:
                    continue
                try:
                    offers.append((parse_descriptor(payload, kind), scope))
                except ReleaseError as exc:
                    raise PullError(f"descriptor: {exc}") from None
        if not offers:
            return
        best, unreadable = choose(offers, self._installers.readable.get(kind, ()))
        installed = self._installers.installed_version(kind)
        if best is None or best[0].version <= installed:
            if unreadable:
                raise PullError(unreadable)
            return
        release, scope = best
        log.info("pull: fetching %s v%d (installed v%d)", kind, release.version, installed)
        with self._lock:
            self._status.state = "downloading"
        folder = self._staging / kind
        folder.mkdir(parents=True, exist_ok=True)
        try:
            paths = {ref.role: self._fetch(scope, kind, ref, folder) for ref in release.files}
            try:
                version = self._installers.install(kind, paths)
            except (DocumentError, OSError) as exc:
                raise PullError(f"install: {str(exc)[:160]}") from None
            log.warning("pull: %s v%d installed", kind, version)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if unreadable:
            raise PullError(unreadable)

    def _fetch(self, scope: str, kind: str, ref: FileRef, folder: Path) -> Path:
        """Stream one file into ``folder``; its path once size and SHA-256 match."""
        target = folder / ref.sha256
        deadline = self._clock() + ALLOWANCE_S + ref.size / MIN_RATE
        digest = hashlib.sha256()
        size = 0
        with self._open(file_path(scope, kind, ref.sha256)) as response, open(target, "wb") as out:
            if response is None:
                raise PullError(f"{ref.role}: not found on the server")
            while chunk := response.read(READ_BYTES):
                size += len(chunk)
                if size > ref.size:
                    raise PullError(f"{ref.role}: longer than the announced {ref.size} bytes")
                if self._clock() > deadline or self._stop.is_set():
                    raise PullError(f"{ref.role}: too slow ({size} of {ref.size} bytes in time)")
                digest.update(chunk)
                out.write(chunk)
        if size != ref.size:
            raise PullError(f"{ref.role}: truncated ({size} of {ref.size} bytes)")
        if digest.hexdigest() != ref.sha256:
            raise PullError(f"{ref.role}: SHA-256 does not match the descriptor")
        return target

    def _get(self, path: str, limit: int) -> bytes | None:
        """A small document (at most ``limit`` bytes), or None when the server has none."""
        deadline = self._clock() + ALLOWANCE_S
        body = bytearray()
        with self._open(path) as response:
            if response is None:
                return None
            while chunk := response.read(limit + 1 - len(body)):
                body += chunk
                if len(body) > limit:
                    raise PullError(f"{path.rsplit('/', 1)[-1]}: larger than {limit} bytes")
                if self._clock() > deadline or self._stop.is_set():
                    raise PullError(f"{path.rsplit('/', 1)[-1]}: too slow")
        return bytes(body)

    def _open(self, path: str) -> _Response:
        request = urllib.request.Request(
            f"{self._base}/{path}", headers={"User-Agent": "kiosk-gate"}
        )
        try:
            raw = self._opener.open(request, timeout=self._timeout_s)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 404:
                return _Response(None)
            raise PullError(f"HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PullError(f"cannot reach the server: {str(reason)[:120]}") from None
        return _Response(raw)


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to other https:// locations (never down to plain HTTP)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> Any:
        if urlsplit(newurl).scheme != "https":
            raise PullError("redirected away from https")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Response:
    """``with`` around an optional response; read errors become :class:`PullError`."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def __enter__(self) -> _Reader | None:
        return _Reader(self._raw) if self._raw is not None else None

    def __exit__(self, *exc_info: object) -> None:
        if self._raw is not None:
            self._raw.close()


class _Reader:
    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def read(self, size: int) -> bytes:
        """At most ``size`` bytes: what one receive brings (a trickle cannot hold a read)."""
        try:
            data: bytes = self._raw.read1(size)
        except (TimeoutError, OSError, ValueError, http.client.HTTPException) as exc:
            raise PullError(f"read failed: {str(exc)[:120] or type(exc).__name__}") from None
        return data
