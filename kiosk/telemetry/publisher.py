"""MQTT publisher of the durable outbox (paho-mqtt 2.x, MQTT v5 with 3.1.1 fallback).

Threads and what they own:

* paho's network thread runs the callbacks of :class:`~kiosk.telemetry.link.MqttLink`;
  they only set flags, queue acks and wake the drain thread.
* the ``kiosk-outbox`` drain thread owns the :class:`OutboxReader` connection,
  the mid → seq map and every ``publish()`` of outbox rows and status. It waits on
  a Condition with a timeout (never sleeps blindly) and stops on an Event.
* the caller's thread calls :meth:`MqttPublisher.start`, ``notify``, ``drain``
  and ``stop``.

Status is published retained on every connect, at least every
``status_interval_s`` and, after new counts, at most every
``status_min_interval_s`` (so dashboards follow within seconds without a status
per scan). Home Assistant discovery configs go out on every connect and when
Home Assistant announces ``online`` on its status topic, at most once per
``announce_min_interval_s`` for the latter (a flood of ``online`` messages
yields one re-announcement at once and at most one more per minute).

Refused hostile input (:mod:`kiosk.telemetry.refused`) is reported in the
status (``refused``) and as ``refused.<surface>`` events, at most one per
surface per ``announce_min_interval_s``.

No PUBACK timeout while connected: MQTT allows re-sending a QoS 1 message only
after a reconnect (paho does that with DUP), and a broker that stops answering
is detected by the keepalive, which drops the link and triggers exactly that.

Delivery: outbox rows go out at QoS 1 with at most ``window`` in flight, and a row
is deleted only when ``on_publish`` reports the broker's PUBACK for its mid. Rows
in flight when the connection drops are re-sent after reconnect (paho resends its
in-flight messages with DUP; the rest follow from the outbox). A PUBACK lost in a
disconnect therefore yields a duplicate: receivers de-duplicate by
``(device, store, seq)``. Nothing is dropped while disconnected.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from paho.mqtt.client import error_string
from paho.mqtt.enums import MQTTErrorCode

import kiosk
from kiosk.config.schema import MqttConfig
from kiosk.errors import TelemetryError
from kiosk.telemetry.discovery import discovery_messages
from kiosk.telemetry.link import (
    CONTROL_HEADROOM,
    MAX_INBOUND_PACKET_BYTES,
    MqttLink,
    ReleaseSink,
)
from kiosk.telemetry.outbox import OutboxReader
from kiosk.telemetry.payloads import StatusInfo, refused_event_payload, status_payload
from kiosk.telemetry.refused import REFUSED, RefusalCounter
from kiosk.telemetry.stats import PublisherStats, ask_provider

log = logging.getLogger(__name__)

_QUEUED = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)  # paho keeps both
_REFUSED_RETRY_S = 30.0  # pause after the broker refused an outbox message
MAX_QUEUED_EVENTS = 4
"""Non-durable events (:meth:`MqttPublisher.send_event`) waiting at most at once."""


class MqttPublisher:
    """Publishes the outbox at ``db_path`` to ``<topic_root>/…`` and reports status.

    Args:
        cfg: broker host/port/keepalive; when ``cfg.enabled`` is False,
            :meth:`start` does nothing and counts simply stay queued.
        topic_root: prefix without trailing slash, e.g. ``kiosk/site/gate-01``.
        device_id: ``<site>/<gate>``, reported in status.
        db_path: the count database written by :class:`~kiosk.telemetry.store.CountStore`.
        client_id: MQTT client id; default ``kiosk-<site>-<gate>``.
        window: most outbox messages awaiting PUBACK at once (default 20).
        status_interval_s: seconds between retained status updates (also sent on
            every connect); default 60.
        poll_s: the drain thread re-checks the outbox at least this often even
            without :meth:`notify` (a safety net, not the normal path); default 5.
        clock: monotonic seconds, for uptime and scheduling.
        wall_clock: aware "now" for status timestamps.
        status_provider: the gate's health for status (fields in
            :data:`~kiosk.telemetry.payloads.STATUS_FIELDS`). Called on the drain
            thread: must be quick; missing keys, wrong types or an exception
            make those fields null.
        timezone: the gate's local zone for the "today" counters (default UTC).
        status_min_interval_s: least seconds between status updates caused by new
            counts (default 5).
        announce_min_interval_s: least seconds between discovery re-announcements
            caused by Home Assistant's ``online``, and between two ``refused``
            events of one surface (default 60).
        refusals: the refusal counter to report (default: the gate's, REFUSED).
        max_inbound_bytes: largest MQTT packet accepted from the broker, announced
            as Maximum Packet Size on v5 (default
            :data:`~kiosk.telemetry.link.MAX_INBOUND_PACKET_BYTES`, 16 KiB).

    Raises:
        ValueError: ``window`` outside 1 .. 200.
    """

    def __init__(
        self,
        cfg: MqttConfig,
        topic_root: str,
        device_id: str,
        db_path: Path,
        *,
        client_id: str | None = None,
        window: int = 20,
        status_interval_s: float = 60.0,
        poll_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        status_provider: Callable[[], Mapping[str, Any]] | None = None,
        timezone: tzinfo = UTC,
        status_min_interval_s: float = 5.0,
        announce_min_interval_s: float = 60.0,
        refusals: RefusalCounter = REFUSED,
        max_inbound_bytes: int = MAX_INBOUND_PACKET_BYTES,
        on_command: Callable[[bytes, bool], None] | None = None,
        releases: ReleaseSink | None = None,
    ) -> None:
        if not 1 <= window <= 200:
            raise ValueError("window must be 1 .. 200 (the outbox compactor protects 256 rows)")
        self._cfg = cfg
        self._root = topic_root.rstrip("/")
        self._device_id = device_id
        self._db_path = db_path
        self._window = window
        self._status_interval_s = status_interval_s
        self._poll_s = poll_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._status_provider = status_provider
        self._tz = timezone
        self._status_min_s = status_min_interval_s
        self._announce_min_s = announce_min_interval_s
        self._refusals = refusals
        self._started_at = clock()
        self.availability_topic = f"{self._root}/availability"
        self.status_topic = f"{self._root}/status"

        # Guarded by _cond: the wake flag, drain bookkeeping and the counters.
        self._cond = threading.Condition()
        self._wake = False
        self._published = 0
        self._acked = 0
        self._last_error: str | None = None
        self._pending: int | None = None  # outbox size last counted by the drain thread
        self._drain_epoch = 0  # bumped by drain(); the thread echoes it once it has counted
        self._counted_epoch = 0
        self._dirty = False  # new counts since the last status

        self._link = MqttLink(
            cfg,
            client_id or "kiosk-" + device_id.replace("/", "-"),
            self.availability_topic,
            inflight=window + CONTROL_HEADROOM,
            wake=self._kick,
            on_error=self._set_error,
            birth_topic=f"{cfg.discovery_prefix}/status" if cfg.discovery else None,
            refusals=refusals,
            max_packet_bytes=max_inbound_bytes,
            command_topic=f"{self._root}/command" if on_command is not None else None,
            on_command=on_command,
            releases=releases,
        )
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        # Drain-thread only: paho mid -> outbox seq, and the pause after a refusal.
        self._inflight: dict[int, int] = {}
        self._refused_until = 0.0
        self._birth_pending = False  # Home Assistant asked; waiting for the interval
        self._last_birth_announce = -1e18
        self._last_refusal_event: dict[str, float] = {}
        # Guarded by _cond: non-durable events waiting for the drain thread (send_event).
        self._events: collections.deque[bytes] = collections.deque(maxlen=MAX_QUEUED_EVENTS)

    # ----------------------------------------------------------------- public API

    @property
    def connected(self) -> bool:
        """Whether the broker has accepted our CONNECT and the link is up."""
        return self._link.connected

    @property
    def births_seen(self) -> int:
        """Home Assistant ``online`` messages received (each may ask for discovery)."""
        return self._link.births

    def stats(self) -> PublisherStats:
        """The current counters (thread-safe snapshot)."""
        connects = self._link.connects
        with self._cond:
            return PublisherStats(
                connected=self.connected,
                published=self._published,
                acked=self._acked,
                reconnects=max(0, connects - 1),
                last_error=self._last_error,
                pending=self._pending,
            )

    def start(self) -> None:
        """Start connecting in the background and start the drain thread.

        Returns at once: with no network the gate keeps working and paho retries
        with a back-off of 1 s doubling to 60 s. Calling it twice does nothing.
        """
        if self._thread is not None or self._stopped:
            return
        if not self._cfg.enabled:
            log.info("MQTT disabled: counts stay queued in %s", self._db_path)
            return
        try:
            self._link.open()
        except TelemetryError as exc:
            # A bad certificate path must not stop the gate: it decides and counts,
            # and the reports wait in the outbox until the configuration is fixed.
            log.error("MQTT not started: %s; counts stay queued", exc)
            self._set_error("tls: cannot load certificates")
            self._stopped = True
            return
        self._thread = threading.Thread(target=self._run, name="kiosk-outbox", daemon=True)
        self._thread.start()
        log.info("publishing to %s:%d under %s", self._cfg.host, self._cfg.port, self._root)

    def subscribe(self, topic: str) -> None:
        """Subscribe to ``topic`` now and after every reconnect (QoS 1; thread-safe)."""
        self._link.subscribe(topic)

    def unsubscribe(self, topic: str) -> None:
        """Undo :meth:`subscribe`."""
        self._link.unsubscribe(topic)

    def notify(self) -> None:
        """Tell the drain thread that new rows were queued or the gate's status changed.

        A status report follows (at most one per ``status_min_interval_s``). Never blocks.
        """
        with self._cond:
            self._dirty = True
            self._wake = True
            self._cond.notify_all()

    def send_event(self, payload: bytes) -> None:
        """Queue one non-durable ``<root>/events`` message (QoS 1, not retained).

        For reports that are a snapshot, not a count (the ``diagnostics``
        command's): the drain thread sends it once connected. Thread-safe, never
        blocks; at most :data:`MAX_QUEUED_EVENTS` wait (beyond that the oldest is dropped)
        and waiting ones are lost on stop: the outbox is for counted reports.
        """
        with self._cond:
            self._events.append(payload)
            self._wake = True
            self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until the broker acknowledged every row.

        Returns whether the outbox is empty. Without a running drain thread it only
        counts the rows (opening a short-lived reader in this thread).

        Raises:
            TelemetryError: only in that case, if the database cannot be opened.
        """
        thread = self._thread
        if thread is None or not thread.is_alive():
            with OutboxReader(self._db_path) as reader:
                return reader.pending_count() == 0
        deadline = self._clock() + timeout
        with self._cond:
            self._drain_epoch += 1
            epoch = self._drain_epoch
            self._wake = True
            self._cond.notify_all()
            # Only a count taken after this call started can prove emptiness.
            while not (self._counted_epoch >= epoch and self._pending == 0):
                remaining = deadline - self._clock()
                if remaining <= 0 or not thread.is_alive():
                    return False
                self._cond.wait(remaining)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Publish "offline", disconnect cleanly and stop all threads. Idempotent.

        Does not wait for the outbox to drain (call :meth:`drain` first); rows not
        yet acknowledged stay on disk for the next run. ``timeout`` bounds the join
        of the drain thread plus the wait for the broker to take "offline"; paho's
        own thread then stops within about a second.
        """
        if self._stopped:
            return
        self._stopped = True
        deadline = self._clock() + timeout
        self._stop_event.set()
        self._kick()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - self._clock()))
            if self._thread.is_alive():
                log.warning("kiosk-outbox thread did not stop within %.1f s", timeout)
        self._link.close(deadline - self._clock())

    def __enter__(self) -> MqttPublisher:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop(self._cfg.drain_timeout_s)

    # --------------------------------------------------------------- drain thread

    def _kick(self) -> None:
        # Called from paho's thread too: the lock is only ever held for a few
        # bytecodes (never across I/O), so this does not block.
        with self._cond:
            self._wake = True
            self._cond.notify_all()

    def _set_error(self, text: str) -> None:
        with self._cond:
            self._last_error = text

    def _run(self) -> None:
        reader: OutboxReader | None = None
        next_status = next_count = 0.0
        last_status = -1e9
        try:
            while not self._stop_event.is_set():
                timeout = self._poll_s
                if self.connected:  # wake up in time for the periodic status
                    due = next_status
                    if self._dirty:
                        due = min(due, last_status + self._status_min_s)
                    if self._birth_pending:
                        due = min(due, self._last_birth_announce + self._announce_min_s)
                    for surface in self._refusals.pending_surfaces():
                        last = self._last_refusal_event.get(surface, -1e18)
                        due = min(due, last + self._announce_min_s)
                    timeout = max(0.0, min(timeout, due - self._clock()))
                with self._cond:
                    if not self._wake:
                        self._cond.wait(timeout)
                    self._wake = False
                    epoch = self._drain_epoch
                if self._stop_event.is_set():
                    break
                try:
                    if reader is None:
                        reader = OutboxReader(self._db_path)
                    if self._link.fall_back_if_refused():
                        self._inflight.clear()  # those rows go out again on the new client
                    self._take_acks(reader)
                    if self.connected:
                        now = self._clock()
                        connected_now = self._link.take_just_connected()
                        self._birth_pending |= self._link.take_birth()
                        birth_due = self._birth_pending and (
                            now >= self._last_birth_announce + self._announce_min_s
                        )
                        if birth_due:
                            self._birth_pending = False
                            self._last_birth_announce = now
                        if connected_now or birth_due:
                            self._announce()
                        self._report_refusals(now)
                        self._send_events()
                        dirty_due = self._dirty and now >= last_status + self._status_min_s
                        if connected_now or now >= next_status or dirty_due:
                            with self._cond:
                                self._dirty = False
                            self._publish_status(reader)
                            next_status, last_status = now + self._status_interval_s, now
                        self._fill_window(reader)
                    # Emptiness (what drain() needs) on every step; the exact number
                    # (a table scan, slow with 100,000 queued) at most once a second.
                    if not reader.has_pending():
                        pending, next_count = 0, 0.0
                    elif self._clock() >= next_count:
                        pending, next_count = reader.pending_count(), self._clock() + 1.0
                    else:
                        pending = max(1, self._pending or 1)
                    with self._cond:
                        self._pending = pending
                        self._counted_epoch = epoch
                        self._cond.notify_all()
                except Exception as exc:  # loop boundary: keep reporting, never die
                    log.exception("outbox drain step failed")
                    self._set_error(f"drain: {type(exc).__name__}")
                    self._stop_event.wait(1.0)
            # A clean stop ends with a final status, so the retained message shows the
            # totals this run counted (not those of its last periodic status).
            if self.connected:
                if reader is None:
                    reader = OutboxReader(self._db_path)
                self._take_acks(reader)
                self._publish_status(reader)
        except Exception:  # loop boundary: a failed last status must not block the stop
            log.exception("final status not published")
        finally:
            if reader is not None:
                reader.close()

    def _take_acks(self, reader: OutboxReader) -> None:
        """Delete the rows whose PUBACK arrived; pause after a refused row."""
        done: list[int] = []
        for ack in self._link.acks():
            seq = self._inflight.pop(ack.mid, None)
            if seq is None:
                continue  # availability/status
            if ack.failed:
                # Refused (e.g. not authorised): keep the row and retry later rather
                # than lose a count; status shows the reason meanwhile.
                log.warning("broker refused outbox message %d: %s", seq, ack.reason)
                self._set_error(f"publish refused: {ack.reason}")
                self._refused_until = self._clock() + _REFUSED_RETRY_S
            else:
                done.append(seq)
        if done:
            reader.ack_many(done)
            with self._cond:
                self._acked += len(done)

    def _fill_window(self, reader: OutboxReader) -> None:
        """Publish the oldest rows not in flight, keeping at most ``window`` unacked."""
        room = self._window - len(self._inflight)
        if room <= 0 or self._clock() < self._refused_until:
            return
        in_flight = set(self._inflight.values())
        sent = 0
        for msg in reader.pending(self._window + len(in_flight)):
            if msg.seq in in_flight:
                continue
            info = self._link.publish(f"{self._root}/{msg.topic}", msg.payload, msg.qos, msg.retain)
            if info.rc not in _QUEUED:
                self._set_error(f"publish: {error_string(info.rc)}")
                break
            # NO_CONN still queues the message inside paho, which sends it on connect.
            self._inflight[info.mid] = msg.seq
            sent += 1
            if sent >= room:
                break
        if sent:
            with self._cond:
                self._published += sent

    def _announce(self) -> None:
        cfg, root, version = self._cfg, self._root, kiosk.__version__
        messages = discovery_messages(
            prefix=cfg.discovery_prefix, device_id=self._device_id, root=root, version=version
        )
        for topic, payload in messages if cfg.discovery else ():
            self._link.publish(topic, payload, 1, True)

    def _report_refusals(self, now: float) -> None:
        """One ``refused.<surface>`` event per surface and interval, never the content."""
        for surface in self._refusals.pending_surfaces():
            if now < self._last_refusal_event.get(surface, -1e18) + self._announce_min_s:
                continue
            report = self._refusals.take(surface)
            if report is None:
                continue
            self._last_refusal_event[surface] = now
            payload = refused_event_payload(
                device_id=self._device_id,
                at=self._wall_clock(),
                surface=report.surface,
                count=report.count,
                reason=report.reason,
            )
            self._link.publish(f"{self._root}/events", payload, 1, False)
            with self._cond:
                self._dirty = True  # the status counters follow within status_min_interval_s

    def _send_events(self) -> None:
        with self._cond:
            events = list(self._events)
            self._events.clear()
        for payload in events:
            self._link.publish(f"{self._root}/events", payload, 1, False)

    def _publish_status(self, reader: OutboxReader) -> None:
        stats = self.stats()
        now = self._wall_clock()
        day = now.astimezone(self._tz).date().isoformat()
        store_id, seq, totals = reader.count_snapshot()
        info = StatusInfo(
            device_id=self._device_id,
            version=kiosk.__version__,
            uptime_s=self._clock() - self._started_at,
            totals=totals,
            pending=reader.pending_count(),
            published=stats.published,
            acked=stats.acked,
            reconnects=stats.reconnects,
            last_error=stats.last_error,
            day=day,
            today=reader.day_totals(day),
            gate=ask_provider(self._status_provider),
            refused=self._refusals.totals(),
            store_id=store_id,
            seq=seq,
            timezone=str(getattr(self._tz, "key", "UTC")),
        )
        self._link.publish(self.status_topic, status_payload(info, now), 1, True)


__all__ = ["MqttPublisher", "PublisherStats"]
