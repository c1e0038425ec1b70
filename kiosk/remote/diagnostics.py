"""The ``diagnostics`` command: the self-test's non-actuating checks, inside the running gate.

``kiosk selftest`` needs the devices the service holds and clicks the relay, so
it cannot run on a gate in service. This runs the *other* checks — clock,
trust bundle, NIK list, device certificate, camera frame rate, broker, outbox —
with the verdicts of :mod:`kiosk.provision.checks`, on facts the running gate
already has: its verifier's health, its loop's frame counter and its
publisher's link. Nothing here opens a device or touches the gate machine, so
no output pin can change. Each check is run by
:func:`~kiosk.provision.checks.run_check`: one that raises is a ``fail`` in the
report, never an exception in the scan loop that runs the command.

The report goes out once on ``<root>/events`` (kind ``diagnostics``, not
durable: it is a snapshot, the counted ``command.diagnostics`` event is the
durable record). It is bounded: fixed check names, ``ok``/``warn``/``fail``
and a detail of at most :data:`MAX_DETAIL` printable characters. Checks never
see a holder's data, so the report cannot carry any.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from kiosk.config import KioskConfig
from kiosk.provision import checks
from kiosk.telemetry.payloads import PAYLOAD_VERSION, dumps, iso_utc

__all__ = ["CHECKS", "MAX_DETAIL", "GateDiagnostics", "diagnostics_payload"]

log = logging.getLogger(__name__)

CHECKS = ("clock", "trust", "nik_list", "identity", "camera_rate", "broker", "outbox")
"""Every report names exactly these checks, in this order."""
MAX_DETAIL = 120
# Below this the frame count says nothing about a rate: the previous figure stands.
MIN_RATE_WINDOW_S = 1.0
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_RANK = {"ok": 0, "warn": 1, "fail": 2}


class Link(Protocol):
    """What diagnostics reads from the publisher (:class:`kiosk.telemetry.MqttPublisher`)."""

    @property
    def connected(self) -> bool:
        """Whether the broker link is up."""

    def stats(self) -> Any:
        """Counters with ``pending`` (queued reports, None before counted) and ``last_error``."""

    def send_event(self, payload: bytes) -> None:
        """Queue one non-durable ``events`` message."""

    def notify(self) -> None:
        """Ask for a fresh status report."""


class GateDiagnostics:
    """Runs the checks on the running gate's facts and sends one bounded report.

    Called on the scan loop's thread (the owner of the verifier); each fact is
    a quick read (a health snapshot, a counter, a small file), no device I/O.

    Args:
        config: the gate's configuration.
        health: the running verifier's ``health()``.
        frames: frames the scan loop has processed so far.
        link: the publisher: its link and queue are checked, the report goes out
            through its ``send_event`` and a fresh status follows; None without MQTT
            (the report is only logged).
        monotonic: the gate's monotonic clock, for the frame rate.
        wall_clock: aware "now", for the NIK list and the certificate.
    """

    def __init__(
        self,
        config: KioskConfig,
        *,
        health: Callable[[], Any],
        frames: Callable[[], int],
        link: Link | None,
        monotonic: Callable[[], float],
        wall_clock: Callable[[], datetime],
    ) -> None:
        self._config = config
        self._health = health
        self._frames = frames
        self._link = link
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._sample = (monotonic(), frames())
        self._fps: float | None = None
        self._window_s = 0.0

    def __call__(self, command_id: str | None = None) -> None:
        """Run every check and send the report (errors are logged, never raised)."""
        try:
            report = self.report(command_id)
            log.info("diagnostics: %s", report["result"])
            if self._link is not None:
                self._link.send_event(diagnostics_payload(report))
                self._link.notify()
        except Exception:  # the command was carried out; a lost report must not stop the loop
            log.exception("diagnostics report not sent")

    def report(self, command_id: str | None = None) -> dict[str, Any]:
        """The bounded report: device, time, the command's id, and each check's outcome."""
        now = self._wall_clock()
        config = self._config
        work: dict[str, Callable[[], str]] = {
            "clock": lambda: checks.clock_verdict(self._health(), now),
            "trust": lambda: checks.trust_verdict(self._health()),
            "nik_list": lambda: checks.nik_list_check(config, now),
            "identity": lambda: checks.identity_check(config, now),
            "camera_rate": self._camera_rate,
            "broker": self._broker,
            "outbox": self._outbox,
        }
        results = {name: _bounded(checks.run_check(name, work[name])) for name in CHECKS}
        worst = max((r["status"] for r in results.values()), key=_RANK.__getitem__)
        return {
            "device": config.device.device_id,
            "ts": iso_utc(now),
            "command": command_id,
            "result": worst,
            "checks": results,
        }

    def _camera_rate(self) -> str:
        now, frames = self._monotonic(), self._frames()
        elapsed = now - self._sample[0]
        if elapsed >= MIN_RATE_WINDOW_S:
            self._fps = (frames - self._sample[1]) / elapsed
            self._window_s = elapsed
            self._sample = (now, frames)
        window = f" over {self._window_s:.0f} s" if self._fps is not None else ""
        return checks.camera_rate_verdict(self._config, self._fps, window)

    def _broker(self) -> str:
        if self._link is None:
            return checks.broker_verdict(self._config, False, "no publisher")
        return checks.broker_verdict(
            self._config, self._link.connected, self._link.stats().last_error
        )

    def _outbox(self) -> str:
        if self._link is None:
            return "SKIP: no publisher"
        return checks.outbox_verdict(self._link.stats().pending)


def _bounded(result: checks.CheckResult) -> dict[str, str]:
    """``status`` ok/warn/fail (a skip is ok: nothing is wrong), a capped printable detail."""
    detail = result.detail if result.status != "skip" else f"skipped: {result.detail}"
    detail = _UNPRINTABLE.sub("?", detail)
    if len(detail) > MAX_DETAIL:
        detail = detail[: MAX_DETAIL - 3] + "..."
    return {"status": "ok" if result.status == "skip" else result.status, "detail": detail}


def diagnostics_payload(report: dict[str, Any]) -> bytes:
    """The ``<root>/events`` message of a report (kind ``diagnostics``, docs/mqtt.md)."""
    return dumps(
        {
            "v": PAYLOAD_VERSION,
            "device": report["device"],
            "ts": report["ts"],
            "event": "diagnostics",
            "kind": "diagnostics",
            "command": report["command"],
            "result": report["result"],
            "checks": report["checks"],
        }
    )
