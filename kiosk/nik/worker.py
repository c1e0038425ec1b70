"""The NIK key-derivation worker: scrypt off the gate's loop thread.

One scrypt derivation at the production parameters takes ~0.2 s on an x86 core
and an estimated ~1 s on a Pi 4. Run on the loop thread it would stop camera
frames, relay pulse timing and the sampling of the passage sensor and the fire
alarm for that long. :class:`KdfWorker` owns one daemon thread,
``kiosk-nik-kdf``, that runs only :meth:`KdfJob.derive` — a pure function of
the job's NIK, salt and parameters. Nothing else crosses: the verifier, its
rate limit, the staff desk and the status list's mapping stay with the loop
thread, which calls :meth:`~kiosk.nik.verifier.NikVerifier.begin` before and
:meth:`~kiosk.nik.verifier.NikVerifier.finish` after.

The NIK crosses the thread boundary in memory only (inside the job, whose
``repr`` hides it); it is never logged here. hashlib's scrypt releases the GIL,
so the loop thread keeps running while a derivation is in progress.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from kiosk.closing import Closing
from kiosk.decision import Decision, InputKind, Reason
from kiosk.nik.verifier import KdfJob

log = logging.getLogger(__name__)

THREAD_NAME = "kiosk-nik-kdf"
JOIN_TIMEOUT_S = 2.0
# Upper bound on one NIK check in the background (~1 s on a Pi 4): past it the NIK
# is denied INTERNAL_ERROR rather than left pending (a stuck or lost derivation).
CHECK_TIMEOUT_S = 10.0

Result = tuple[KdfJob, bytes | BaseException]


def _derive(job: KdfJob) -> bytes:
    return job.derive()


class KdfWorker(Closing):
    """One background thread deriving NIK list entries, one job at a time.

    Only the thread that owns the gate's loop calls :meth:`submit`,
    :meth:`poll` and :meth:`close`; the hand-off in both directions is a
    ``queue.SimpleQueue``, so no lock is shared with the loop.

    Args:
        derive: the derivation, ``KdfJob.derive`` by default. Tests inject a
            gated wrapper to hold a derivation "in progress" deterministically.
        join_timeout_s: how long :meth:`close` waits for the thread.
    """

    def __init__(
        self,
        derive: Callable[[KdfJob], bytes] = _derive,
        *,
        join_timeout_s: float = JOIN_TIMEOUT_S,
    ) -> None:
        self._derive = derive
        self._join_timeout_s = join_timeout_s
        self._jobs: queue.SimpleQueue[KdfJob | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._stop = threading.Event()
        # Set on submit, cleared when poll() hands the result back: the loop allows
        # one derivation at a time (each holds 64 MiB at the default parameters).
        self._in_flight: KdfJob | None = None
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """True from :meth:`submit` until :meth:`poll` returned that job's result."""
        return self._in_flight is not None

    @property
    def alive(self) -> bool:
        """True while the thread runs and :meth:`close` has not been called."""
        return self._thread.is_alive() and not self._stop.is_set()

    def submit(self, job: KdfJob) -> bool:
        """Queue ``job`` for derivation; False (nothing queued) when busy or stopped."""
        if self.busy or not self.alive:
            return False
        self._in_flight = job
        self._jobs.put(job)
        return True

    def poll(self) -> Result | None:
        """A finished ``(job, entry or the exception derive raised)``, or None. Never blocks."""
        try:
            result = self._results.get_nowait()
        except queue.Empty:
            return None
        if result[0] is self._in_flight:
            self._in_flight = None
        return result

    def close(self) -> None:
        """Stop the thread; waits up to ``join_timeout_s``. Safe twice and after a failed init.

        A running scrypt call cannot be interrupted: close waits for it up to the
        timeout, then leaves the daemon thread to finish on its own (it touches
        nothing but its job and the result queue, and the process exit ends it).
        """
        stop = getattr(self, "_stop", None)
        thread = getattr(self, "_thread", None)
        if stop is None or thread is None or stop.is_set():
            return
        stop.set()
        self._jobs.put(None)  # wake the thread if it waits for a job
        if thread.ident is None:  # never started
            return
        thread.join(self._join_timeout_s)
        if thread.is_alive():
            log.warning(
                "NIK key derivation still running after %.1f s; left to finish",
                self._join_timeout_s,
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self._jobs.get()
            if job is None or self._stop.is_set():
                return
            result: bytes | BaseException
            try:
                result = self._derive(job)
            except Exception as exc:  # handed to the loop, which denies INTERNAL_ERROR
                # The loop logs the type name only; the traceback's frames hold the
                # NIK, so they are dropped rather than kept alive with the result.
                result = exc.with_traceback(None)
            self._results.put((job, result))
            del job, result  # hold the NIK no longer than needed


@runtime_checkable
class StagedNikVerifier(Protocol):
    """A NIK verifier whose key derivation can run apart (:class:`~kiosk.nik.NikVerifier`).

    ``begin``, ``finish`` and ``abort`` run on the loop thread and never raise;
    only ``KdfJob.derive`` runs on the :class:`KdfWorker`.
    """

    def begin(self, nik: str) -> Decision | KdfJob:
        """A decision now, or the job to derive."""
        ...

    def finish(self, job: KdfJob, entry: bytes | BaseException) -> Decision:
        """The decision once the job's entry (or the derivation's exception) is known."""
        ...

    def abort(self, job: KdfJob, why: str) -> Decision:
        """An INTERNAL_ERROR deny for a job that got no result."""
        ...


class NikCheck:
    """The loop thread's side of a typed NIK checked in the background: one at a time.

    :meth:`start` runs the verifier's ``begin`` and hands a derivation to the
    worker; :meth:`poll`, called every loop turn, returns the decision once the
    entry is derived (``finish``), the derivation failed, the worker stopped,
    or ``timeout_s`` passed (both: ``INTERNAL_ERROR``). A result arriving after
    its NIK timed out is dropped. Never raises; never logs the NIK.

    Args:
        verifier: the NIK verifier (begin/finish/abort).
        worker: the derivation thread.
        timeout_s: the longest a typed NIK waits for its result, in monotonic seconds.
    """

    def __init__(
        self, verifier: StagedNikVerifier, worker: KdfWorker, timeout_s: float = CHECK_TIMEOUT_S
    ) -> None:
        self.verifier = verifier
        self.worker = worker
        self.timeout_s = timeout_s
        self._job: KdfJob | None = None
        self._since = 0.0

    @property
    def pending(self) -> bool:
        """True while a typed NIK waits for its derivation."""
        return self._job is not None

    def deadline(self) -> float | None:
        """When the pending NIK times out (monotonic seconds), or None."""
        return self._since + self.timeout_s if self._job is not None else None

    def start(self, nik: str, now: float) -> Decision | None:
        """Begin checking ``nik``: a decision to act on now, or None (derivation submitted).

        Callers submit nothing while :attr:`pending`. When the worker cannot
        take the job (still stuck on one that timed out, or stopped), the NIK is
        denied at once rather than left waiting.
        """
        try:
            started = self.verifier.begin(nik)
        except Exception as exc:  # the verifier promises not to raise; a bug must still deny
            # Type name only: an exception message (or traceback) could quote the NIK.
            log.error("NIK verifier raised %s; denying", type(exc).__name__)
            return Decision.deny(Reason.INTERNAL_ERROR, type(exc).__name__, InputKind.NIK)
        if isinstance(started, Decision):
            return started
        if not self.worker.submit(started):
            why = "nik checker busy" if self.worker.alive else "nik checker stopped"
            return self.verifier.abort(started, why)
        log.debug("NIK key derivation submitted")
        self._job, self._since = started, now
        return None

    def poll(self, now: float) -> Decision | None:
        """The pending NIK's decision when there is one; None while it is still derived."""
        result = self.worker.poll()
        job = self._job
        if result is not None and result[0] is not job:
            log.debug("late NIK key derivation dropped (its check had timed out)")
            result = None
        if job is None:
            return None
        if result is not None:
            self._job = None
            return self.verifier.finish(job, result[1])
        if not self.worker.alive:
            self._job = None
            return self.verifier.abort(job, "nik checker stopped")
        if now - self._since >= self.timeout_s:
            self._job = None
            return self.verifier.abort(job, "nik check timed out")
        return None
