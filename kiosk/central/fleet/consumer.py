"""MQTT v5 consumer (paho-mqtt 2.x) and the store-owner thread behind it.

Threads and what they own:

* paho's network thread runs :meth:`FleetConsumer._on_message`: it checks the
  message (:func:`~kiosk.central.fleet.messages.parse`) and puts it on a bounded
  queue. A full queue blocks it, which stops reading from the socket: back
  pressure reaches the broker, which keeps the reports.
* ``kiosk-fleet-store`` owns the :class:`~kiosk.central.fleet.state.FleetState`:
  it applies batches (one transaction each), then acknowledges their QoS 1
  messages (``manual_ack``). A report is therefore PUBACKed only once it is on
  disk: if the service dies first, the broker sends it again and the store's
  de-duplication drops the copy.

Subscriptions: by default one persistent session (``clean_start`` false,
``SessionExpiryInterval`` = ``mqtt.session_expiry_s``) so reports wait at the
broker while the service restarts. With ``mqtt.shared_group`` counts and events
come through ``$share/<group>/…`` on a clean session, and status/availability
through a plain subscription (retained messages are not delivered on shared
subscriptions); every connect subscribes again, as Mosquitto 2.0.11 does not
restore a durable client's shared subscriptions.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kiosk.central.fleet.config import FleetMqttConfig
from kiosk.central.fleet.messages import Message, Rejected, TopicMatcher, parse
from kiosk.central.fleet.state import FleetState

log = logging.getLogger(__name__)

QUEUE_MAX = 20_000
BATCH_MAX = 2_000
RECEIVE_MAXIMUM = 2_000
TICK_S = 1.0
STALL_S = 0.5


class FleetConsumer:
    """Subscribes to the gates' topics and feeds the state on its own thread.

    Args:
        cfg: broker, credentials, topic pattern, session settings.
        state: the fleet state; from :meth:`start` on only this object's thread touches it.
    """

    def __init__(self, cfg: FleetMqttConfig, state: FleetState) -> None:
        self._cfg = cfg
        self._state = state
        self._matcher = TopicMatcher(cfg.topic_root)
        self._queue: queue.Queue[tuple[Message | None, int, int]] = queue.Queue(QUEUE_MAX)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._rejected: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self.connects = 0

    @property
    def connected(self) -> bool:
        """Whether the broker accepted our CONNECT and the link is up."""
        return self._connected.is_set()

    def rejected(self) -> dict[str, int]:
        """Dropped messages by reason code (thread-safe copy)."""
        with self._lock:
            return dict(self._rejected)

    def start(self) -> None:
        """Connect in the background and start the store-owner thread (returns at once)."""
        if self._thread is not None:
            return
        shared = bool(self._cfg.shared_group)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._cfg.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        client.enable_logger(logging.getLogger("kiosk.central.fleet.paho"))
        if self._cfg.tls:
            context = ssl.create_default_context(
                cafile=str(self._cfg.tls_ca) if self._cfg.tls_ca else None
            )
            client.tls_set_context(context)
        if self._cfg.username:
            password = None
            if self._cfg.password_file is not None:
                password = self._cfg.password_file.read_text(encoding="utf-8").strip()
            client.username_pw_set(self._cfg.username, password)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0 if shared else self._cfg.session_expiry_s
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        client.connect_async(
            self._cfg.host,
            self._cfg.port,
            keepalive=self._cfg.keepalive_s,
            clean_start=shared or self._cfg.session_expiry_s == 0,
            properties=props,
        )
        self._client = client
        self._thread = threading.Thread(target=self._own, name="kiosk-fleet-store", daemon=True)
        self._thread.start()
        client.loop_start()
        log.info("fleet consumer connecting to %s:%d", self._cfg.host, self._cfg.port)

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect and stop both threads; unacknowledged reports stay at the broker."""
        self._stop.set()
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------- paho thread

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the fleet consumer: %s", reason)
            return
        self.connects += 1
        self._connected.set()
        plain = ["availability", "status"]
        shared = ["counts", "events"]
        filters = [(self._matcher.filter(s), 1) for s in plain]
        group = self._cfg.shared_group
        for suffix in shared:
            topic = self._matcher.filter(suffix)
            filters.append((f"$share/{group}/{topic}" if group else topic, 1))
        client.subscribe(filters)
        log.info("fleet consumer connected; subscribed to %s", ", ".join(t for t, _ in filters))

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("fleet consumer disconnected: %s", reason)

    def _on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = ""
        try:
            parsed: Message | None = parse(
                self._matcher, topic, bytes(message.payload), self._cfg.max_payload_bytes
            )
        except Rejected as exc:
            with self._lock:
                self._rejected[exc.reason] += 1
            parsed = None
        except Exception:  # a parser bug must not kill paho's thread: count and drop
            log.exception("message check failed")
            with self._lock:
                self._rejected["error"] += 1
            parsed = None
        item = (parsed, message.mid, message.qos)
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    # ------------------------------------------------------- store-owner thread

    def _own(self) -> None:
        next_tick = 0.0
        try:
            while not self._stop.is_set():
                batch = self._take()
                if batch:
                    self._apply(batch)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + TICK_S
                    try:
                        started = time.monotonic()
                        self._state.tick()
                        if time.monotonic() - started > STALL_S:
                            log.warning("slow tick: %.2f s", time.monotonic() - started)
                    except Exception:  # loop boundary: alarms must not stop counting
                        log.exception("fleet tick failed")
        finally:
            self._state.close()

    def _take(self) -> list[tuple[Message | None, int, int]]:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(batch) < BATCH_MAX:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _apply(self, batch: list[tuple[Message | None, int, int]]) -> None:
        messages = [m for m, _, _ in batch if m is not None]
        while not self._stop.is_set():
            try:
                started = time.monotonic()
                self._state.apply(messages)
                spent = time.monotonic() - started
                if spent > STALL_S:  # the trace a lag spike needs: how long, how much
                    log.warning("slow batch: %d messages applied in %.2f s (queue %d)",
                                len(messages), spent, self._queue.qsize())
                break
            except Exception:  # database down or locked: keep the batch, retry
                log.exception("fleet store write failed; retrying in 1 s")
                self._state.reload()
                self._stop.wait(1.0)
        else:
            return  # stopping: not acknowledged, so the broker keeps these reports
        client = self._client
        if client is None:
            return
        for _, mid, qos in batch:
            if qos > 0:
                client.ack(mid, qos)
