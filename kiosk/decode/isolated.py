"""A decoder run in a supervised worker process, so a native crash cannot take the gate down.

zbar is known to abort the whole process on some images (an assertion in
``qr_code_data_list_extract_text``, also a double free). :class:`IsolatedDecoder`
runs such a backend in a child process (``kiosk-decoder``, started with
``spawn``: the gate's threads are not forked). Frames cross through one
shared-memory buffer; only the frame's shape and the texts cross the pipe.

When the worker dies (abort, segfault) or does not answer within
``timeout_s`` (a hang: it is killed), that is counted in :attr:`crashes` and
logged, the frame is decoded by the ``fallback`` decoder (zxing-cpp when
installed, else nothing is read), and a new worker is started after a
back-off (1 s, doubling to 30 s; back to 1 s once a worker has run for 30 s).
Until the new worker reports ready, frames go to the fallback, so the loop
keeps turning and the relay guard and the gate's state machine are never held
up for more than ``timeout_s``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from kiosk.decode.base import Decoder, check_gray

log = logging.getLogger(__name__)

WORKER_NAME = "kiosk-decoder"
# Back-off before a crashed worker is started again, in seconds.
FIRST_BACKOFF_S, MAX_BACKOFF_S = 1.0, 30.0
# Frames up to this size fit the buffer made at start (1920×1080); larger ones grow it.
DEFAULT_CAPACITY = 1920 * 1080


def _load(spec: str) -> Callable[[], Decoder]:
    """``"package.module:Name"`` → the callable that makes the decoder."""
    module, _, name = spec.partition(":")
    factory: Callable[[], Decoder] = getattr(importlib.import_module(module), name)
    return factory


def _serve(conn: Connection, buffer_name: str, spec: str) -> None:
    """The worker: decode the frame in shared memory for each (height, width) request."""
    decoder = _load(spec)()
    buffer = SharedMemory(name=buffer_name)
    try:
        conn.send("ready")
        while True:
            request = conn.recv()
            if request is None:
                break
            height, width = request
            frame: np.ndarray = np.ndarray((height, width), dtype=np.uint8, buffer=buffer.buf)
            texts = decoder.decode(frame)
            del frame  # the buffer cannot close while a view on it exists
            conn.send(texts)
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass  # the gate closed the pipe or stopped: end quietly
    finally:
        buffer.close()


class IsolatedDecoder(Decoder):
    """Runs the decoder made by ``spec`` (``"module:Callable"``) in a supervised process.

    Args:
        spec: what the worker builds, e.g. ``"kiosk.decode.zbar:PyzbarDecoder"``.
        name: the backend name reported (``decoder.backend``).
        fallback: decodes a frame while the worker is down (None: read nothing).
        timeout_s: how long one frame may take in the worker before it is killed.
        clock: monotonic seconds (back-off timing).

    Counters: ``crashes`` (workers that died or hung), ``fallback_frames``.
    :meth:`close` stops the worker and frees the buffer; idempotent.
    """

    def __init__(
        self,
        spec: str,
        *,
        name: str,
        fallback: Decoder | None = None,
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._buffer: SharedMemory | None = None
        self._closed = False
        self.spec = spec
        self.name = name
        self.fallback = fallback
        self.timeout_s = timeout_s
        self._clock = clock
        self.crashes = 0
        self.fallback_frames = 0
        self._ready = False
        self._backoff = FIRST_BACKOFF_S
        self._restart_at = float("-inf")
        self._started_at = clock()
        self._context = multiprocessing.get_context("spawn")
        self._start(DEFAULT_CAPACITY)

    @property
    def ready(self) -> bool:
        """True while a worker runs and has reported ready (updated by :meth:`decode`)."""
        return self._ready

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the worker to report ready; True if it has.

        The gate never waits (frames go to the fallback meanwhile); a one-shot
        tool does, so that what it measures is the worker, not the fallback.
        """
        if self._ready:
            return True
        if self._closed or self._conn is None or not self._conn.poll(timeout_s):
            return False
        return self._worker_ready(0)

    @property
    def worker_pid(self) -> int | None:
        """The worker's process id while one runs."""
        return self._process.pid if self._process is not None else None

    def decode(self, gray: np.ndarray) -> list[str]:
        """Texts of the QR codes in ``gray`` from the worker; see :meth:`Decoder.decode`.

        Never raises for a worker that crashed or hung: the fallback decides.
        """
        image = check_gray(gray)
        self.symbols_seen = 0
        if image.size == 0:
            return []
        if self._closed or not self._worker_ready(image.size):
            return self._fall_back(image)
        assert self._conn is not None and self._buffer is not None
        height, width = image.shape
        target: np.ndarray = np.ndarray((height, width), dtype=np.uint8, buffer=self._buffer.buf)
        target[:] = image
        del target
        try:
            self._conn.send((height, width))
            if not self._conn.poll(self.timeout_s):
                return self._crashed(image, f"no answer within {self.timeout_s:.1f} s")
            texts: list[str] = self._conn.recv()
        except (EOFError, OSError):
            return self._crashed(image, self._exit_reason())
        if self._clock() - self._started_at >= MAX_BACKOFF_S:
            self._backoff = FIRST_BACKOFF_S  # up long enough: the next crash restarts soon
        self.symbols_seen = len(texts)
        return texts

    def close(self) -> None:
        """Stop the worker (asked, then killed) and free the shared buffer. Idempotent."""
        self._closed = True
        self._stop(ask=True)

    def _worker_ready(self, size: int) -> bool:
        """True when a worker is up and has said so; starts one when it is due."""
        if self._process is None:
            if self._clock() < self._restart_at:
                return False
            self._start(max(size, DEFAULT_CAPACITY))
        assert self._buffer is not None and self._conn is not None
        if size > self._buffer.size:  # a bigger frame than the buffer: a new worker
            self._stop(ask=True)
            self._start(size)
        if not self._ready:
            try:
                self._ready = self._conn.poll(0) and self._conn.recv() == "ready"
            except (EOFError, OSError):
                self._crashed(None, self._exit_reason())
                return False
        return self._ready

    def _start(self, capacity: int) -> None:
        self._buffer = SharedMemory(create=True, size=capacity)
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(child, self._buffer.name, self.spec), name=WORKER_NAME,
            daemon=True,
        )
        process.start()
        child.close()
        self._process, self._conn, self._ready = process, parent, False
        self._started_at = self._clock()
        log.info("decoder worker %s started (pid %s)", self.name, process.pid)

    def _stop(self, *, ask: bool) -> None:
        process, conn, buffer = self._process, self._conn, self._buffer
        self._process = self._conn = self._buffer = None
        self._ready = False
        if conn is not None:
            if ask and process is not None and process.is_alive():
                with contextlib.suppress(OSError):  # it may die meanwhile
                    conn.send(None)
            conn.close()
        if process is not None:
            process.join(0.5 if ask else 0)
            if process.is_alive():
                process.kill()
                process.join(2.0)
        if buffer is not None:
            buffer.close()
            buffer.unlink()

    def _exit_reason(self) -> str:
        process = self._process
        if process is None:
            return "worker gone"
        process.join(0.2)
        return f"worker exited with code {process.exitcode}"

    def _crashed(self, image: np.ndarray | None, reason: str) -> list[str]:
        """Count and report a dead or hung worker, schedule its restart, use the fallback."""
        self.crashes += 1
        self._stop(ask=False)
        self._restart_at = self._clock() + self._backoff
        log.error(
            "decoder worker %s failed (%s); %s until it restarts in %.0f s (crash %d)",
            self.name, reason, self.fallback.name if self.fallback else "no decoding",
            self._backoff, self.crashes,
        )  # fmt: skip
        self._backoff = min(MAX_BACKOFF_S, self._backoff * 2)
        return [] if image is None else self._fall_back(image)

    def _fall_back(self, image: np.ndarray) -> list[str]:
        self.fallback_frames += 1
        if self.fallback is None:
            return []
        texts = self.fallback.decode(image)
        self.symbols_seen = self.fallback.symbols_seen
        return texts

    def __repr__(self) -> str:
        return f"IsolatedDecoder({self.spec!r}, pid={self.worker_pid})"

