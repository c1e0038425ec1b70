"""The gate's side of distribution: fetch a newer release, install it, report.

One thread (``kiosk-dist``) owns every staging file and every install. The
MQTT network thread only routes messages on ``dist`` topics into a bounded
queue (:meth:`ReleaseReceiver.offer`); when the queue overflows the chunk is
dropped and counted, and once the queue has drained the receiver subscribes
to the missing chunk topics again, which makes the broker resend the retained
chunks. So a gate on a slow link converges, and one that was offline catches
up on its next connect, without anything central keeping track of gates.

A release is fetched only when its descriptor's version is newer than what is
installed; a fleet-, site- and gate-wide release of the same kind may coexist,
and the newest wins. Installing goes through the same functions as the
``kiosk trust install`` / ``kiosk nik install`` commands: the running gate's
trust watcher and NIK list then pick the new files up as after a manual
install. Outcomes are reported in the status (``dist_state``, ``dist_error``,
``nik_version``) and in the log; nothing from a message is echoed unbounded.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kiosk.closing import Closing
from kiosk.errors import DocumentError
from kiosk.remote.distribution import (
    KINDS,
    VARIANT_KINDS,
    Assembly,
    Release,
    ReleaseError,
    choose,
    descriptor_topic,
    parse_descriptor,
    scope_roots,
    variant_topic,
)

__all__ = ["THREAD_NAME", "Installers", "ReleaseReceiver", "Subscriber"]

log = logging.getLogger(__name__)

THREAD_NAME = "kiosk-dist"
#: Chunks waiting for the thread at most (12 KiB each: about 6 MB).
QUEUE_MESSAGES = 512
#: A download that made no progress for this long is asked for again.
STALL_S = 30.0
#: How long after a descriptor the offers of its kind are compared.
SETTLE_S = 0.5


class Subscriber(Protocol):
    """The part of the MQTT link the receiver uses (thread-safe in paho)."""

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1 (retained messages on it are delivered again)."""

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic``."""


@dataclass
class Installers:
    """How each kind is installed and which version is in force (the gate's own functions)."""

    installed_version: Callable[[str], int]
    install: Callable[[str, Mapping[str, Path]], int]
    #: The body formats this gate reads, for kinds published in variants (empty: any).
    readable: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def descriptor_topics(self, scope: str, kind: str) -> list[str]:
        """The plain descriptor topic of ``kind`` and those of the variants this gate reads."""
        variants = sorted(self.readable.get(kind, ()), reverse=True)
        if kind not in VARIANT_KINDS:
            variants = []
        # Best first: the broker sends the retained descriptors in subscription order.
        return [variant_topic(scope, kind, f) for f in variants] + [descriptor_topic(scope, kind)]


@dataclass
class _Download:
    scope: str
    release: Release
    files: dict[str, Assembly]
    progress_at: float
    asked_again: int = 0


@dataclass
class _State:
    state: str = "idle"
    error: str = ""
    refused: dict[str, int] = field(default_factory=dict)
    dropped: int = 0


class ReleaseReceiver(Closing):
    """Receives releases for one gate and installs them (owns the ``kiosk-dist`` thread)."""

    def __init__(
        self,
        *,
        topic_root: str,
        site: str,
        gate: str,
        staging: Path,
        installers: Installers,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._scopes = scope_roots(topic_root, site, gate)
        self._staging = staging
        self._installers = installers
        self._clock = clock
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(QUEUE_MESSAGES)
        self._downloads: dict[str, _Download] = {}  # kind -> download (thread only)
        # (kind, scope, variant) -> the descriptor retained there; variant "" is the plain topic
        self._offers: dict[tuple[str, str, str], Release] = {}
        self._due: dict[str, float] = {}  # kind -> when to choose among its offers (thread only)
        self._subscriber: Subscriber | None = None
        self._lock = threading.Lock()  # guards _status
        self._status = _State()
        self._thread: threading.Thread | None = None
        shutil.rmtree(staging, ignore_errors=True)  # parts of an earlier run are not trusted

    # ------------------------------------------------------------ MQTT side

    def topics(self) -> list[str]:
        """The descriptor topics to subscribe to on every connect."""
        return [
            topic
            for scope in self._scopes
            for kind in KINDS
            for topic in self._installers.descriptor_topics(scope, kind)
        ]

    def wants(self, topic: str) -> bool:
        """Whether ``topic`` is one of this gate's distribution topics."""
        return any(topic.startswith(f"{scope}/dist/") for scope in self._scopes)

    def offer(self, topic: str, payload: bytes) -> None:
        """Queue one message (from the MQTT thread; never blocks, never parses)."""
        try:
            self._queue.put_nowait((topic, bytes(payload)))
        except queue.Full:
            with self._lock:
                self._status.dropped += 1

    def start(self, subscriber: Subscriber) -> None:
        """Start the thread; ``subscriber`` is used for the chunk topics."""
        self._subscriber = subscriber
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and remove partial downloads."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(5)
            self._thread = None
        shutil.rmtree(self._staging, ignore_errors=True)

    def status(self) -> dict[str, Any]:
        """Status fields: ``dist_state``, ``dist_error``, ``nik_version``."""
        with self._lock:
            state = self._status
            fields: dict[str, Any] = {"dist_state": state.state, "dist_error": state.error}
        with contextlib.suppress(Exception):
            fields["nik_version"] = self._installers.installed_version("nik")
        return fields

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        while True:
            due = min(self._due.values(), default=None)
            wait = 1.0 if due is None else min(1.0, max(0.0, due - self._clock()))
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                pass
            else:
                if item is None:
                    return
                self._safely(self._handle, *item)
            self._safely(self._consider_due)
            if self._queue.empty():
                self._ask_again_if_stalled()

    @staticmethod
    def _safely(step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception:  # a bug here must not end distribution for good
            log.exception("distribution: message handling failed")

    def _consider_due(self) -> None:
        now = self._clock()
        for kind, due in list(self._due.items()):
            if now >= due:
                del self._due[kind]
                self._consider(kind)

    def _handle(self, topic: str, payload: bytes) -> None:
        scope = next((s for s in self._scopes if topic.startswith(f"{s}/dist/")), None)
        if scope is None:
            return
        parts = topic[len(scope) + len("/dist/") :].split("/")
        kind = parts[0]
        if kind not in KINDS:
            return
        if len(parts) == 1:
            self._on_descriptor(kind, scope, "", payload)
        elif len(parts) == 2 and kind in VARIANT_KINDS and parts[1][:1] == "f":
            self._on_descriptor(kind, scope, parts[1], payload)
        elif len(parts) == 3:
            self._on_chunk(kind, scope, parts[1], parts[2], payload)

    def _on_descriptor(self, kind: str, scope: str, variant: str, payload: bytes) -> None:
        if not payload:
            self._offers.pop((kind, scope, variant), None)  # the release was withdrawn
            return
        try:
            release = parse_descriptor(payload, kind)
            if variant and variant != f"f{release.format}":
                raise ReleaseError(f"descriptor on {variant} states format {release.format}")
        except ReleaseError as exc:
            self._refuse(kind, "descriptor", str(exc))
            return
        self._offers[(kind, scope, variant)] = release
        # Descriptors come in a burst (a connect, or one publish of several variants):
        # choose once the burst has settled, so the best variant is not beaten by the first.
        self._due.setdefault(kind, self._clock() + SETTLE_S)

    def _consider(self, kind: str) -> None:
        """Start fetching the newest offered release of ``kind`` if it is newer."""
        offers = [(r, s) for (k, s, _v), r in self._offers.items() if k == kind]
        if not offers:
            return
        best, unreadable = choose(offers, self._installers.readable.get(kind, ()))
        if unreadable:
            self._refuse(kind, "format", unreadable)
        if best is None:
            return
        release, scope = best
        installed = self._installers.installed_version(kind)
        current = self._downloads.get(kind)
        if release.version <= installed:
            if current is not None:
                self._drop(kind)
            if not unreadable:
                self._set_state("idle" if not self._downloads else "downloading")
            return
        if current is not None and current.release == release and current.scope == scope:
            return
        if current is not None:
            self._drop(kind)
        try:
            files = {ref.role: Assembly(ref, self._staging / kind) for ref in release.files}
        except OSError as exc:
            self._refuse(kind, "disk", f"cannot stage: {exc.strerror}")
            return
        self._downloads[kind] = _Download(scope, release, files, self._clock())
        log.info("distribution: fetching %s v%d (installed v%d)", kind, release.version, installed)
        self._set_state("downloading")
        self._subscribe(kind)
        self._finish_if_complete(kind)

    def _subscribe(self, kind: str) -> None:
        download = self._downloads[kind]
        if self._subscriber is None:
            return
        for ref in download.release.files:
            self._subscriber.subscribe(f"{download.scope}/dist/{kind}/{ref.sha256}/+")

    def _on_chunk(self, kind: str, scope: str, sha: str, index: str, payload: bytes) -> None:
        download = self._downloads.get(kind)
        if download is None or download.scope != scope or not index.isdigit():
            return
        assembly = next((a for a in download.files.values() if a.ref.sha256 == sha), None)
        if assembly is None:
            return
        try:
            assembly.add(int(index), payload)
        except ReleaseError as exc:
            self._refuse(kind, "chunk", str(exc))
            return
        except OSError as exc:
            self._refuse(kind, "disk", f"cannot stage: {exc.strerror}")
            self._drop(kind)
            return
        download.progress_at = self._clock()
        self._finish_if_complete(kind)

    def _finish_if_complete(self, kind: str) -> None:
        download = self._downloads.get(kind)
        if download is None or not all(a.complete for a in download.files.values()):
            return
        self._drop(kind, keep_files=True)
        try:
            paths = {role: a.verified() for role, a in download.files.items()}
            version = self._installers.install(kind, paths)
        except ReleaseError as exc:
            self._refuse(kind, "hash", str(exc))
        except (DocumentError, OSError) as exc:
            self._refuse(kind, "install", str(exc)[:160])
        else:
            log.warning("distribution: %s v%d installed", kind, version)
            self._set_state("installed", "")
        finally:
            for assembly in download.files.values():
                assembly.discard()
        self._consider(kind)

    def _drop(self, kind: str, *, keep_files: bool = False) -> None:
        download = self._downloads.pop(kind, None)
        if download is None:
            return
        if self._subscriber is not None:
            for ref in download.release.files:
                self._subscriber.unsubscribe(f"{download.scope}/dist/{kind}/{ref.sha256}/+")
        if not keep_files:
            for assembly in download.files.values():
                assembly.discard()

    def _ask_again_if_stalled(self) -> None:
        now = self._clock()
        with self._lock:
            dropped, self._status.dropped = self._status.dropped, 0
        for kind, download in list(self._downloads.items()):
            if dropped or now - download.progress_at >= STALL_S:
                # Resubscribing makes the broker send the retained chunks again.
                download.progress_at = now
                download.asked_again += 1
                if self._subscriber is not None:
                    for ref in download.release.files:
                        topic = f"{download.scope}/dist/{kind}/{ref.sha256}/+"
                        self._subscriber.unsubscribe(topic)
                        self._subscriber.subscribe(topic)

    def _refuse(self, kind: str, reason: str, detail: str) -> None:
        log.warning("distribution: %s refused (%s): %s", kind, reason, detail[:160])
        with self._lock:
            key = f"{kind}.{reason}"
            self._status.refused[key] = self._status.refused.get(key, 0) + 1
            self._status.state = "refused"
            self._status.error = f"{kind}: {reason}"

    def _set_state(self, state: str, error: str | None = None) -> None:
        with self._lock:
            self._status.state = state
            if error is not None:
                self._status.error = error
