"""The paho-mqtt edge: one connection to the broker, its will and its callbacks.

:class:`MqttLink` turns paho's callbacks (which run on paho's network thread) into
state the drain thread reads: a ``connected`` flag, a "just connected" latch and a
queue of acknowledgements. The callbacks never block and never touch SQLite; they
set flags, enqueue and call ``wake``. (paho may even call ``on_publish`` before
``publish()`` has returned the mid, paho issue #482, so acks are matched to rows
later, on the drain thread, never inside the callback.)

Protocol: MQTT v5 first. A broker that refuses v5 ("unsupported protocol
version") gets a fresh 3.1.1 client; paho's ``protocol`` is fixed per client,
so the link replaces the client and bumps ``generation``, and acks of the old
client are dropped (their rows are still in the outbox and are sent again).

Security: with ``mqtt.tls_ca`` set the link speaks TLS (server verified against
that CA, host name checked) and presents ``mqtt.tls_cert``/``tls_key`` as its
per-device client certificate; ``mqtt.username`` with a password read from
``mqtt.password_file`` (never from the config text, never logged).

Inbound: the only subscription is Home Assistant's birth topic
(``<discovery_prefix>/status``). Its handler compares the payload with the
literal ``online`` and sets a latch; it holds no reference to the gate, so no
MQTT message can open a turnstile.

Size: every inbound packet is bounded by :data:`MAX_INBOUND_PACKET_BYTES`. On v5
the CONNECT announces it as Maximum Packet Size, so a conforming broker never
sends more (Mosquitto drops such messages for this client); on v5 and on the
3.1.1 fallback alike, :class:`_BoundedClient` looks at the length in a packet's
fixed header and drops the connection *before* reading the body, because paho
itself would buffer a packet of any announced size (up to 256 MB) in memory.
Refused input is counted (``refused.mqtt``) and named in ``last_error``.
"""

from __future__ import annotations

import errno
import logging
import queue
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from kiosk.config.schema import MqttConfig
from kiosk.errors import TelemetryError
from kiosk.telemetry.payloads import OFFLINE, ONLINE
from kiosk.telemetry.refused import REFUSED, RefusalCounter

log = logging.getLogger(__name__)

_UNSUPPORTED_PROTOCOL = 132  # CONNACK "Unsupported protocol version" (v5 0x84; v3 rc 1 maps here)
CONTROL_HEADROOM = 16
"""paho in-flight slots for availability, status and discovery beyond the counts window."""
_MAX_BIRTH_PAYLOAD = 16  # Home Assistant sends "online"/"offline"; anything longer is ignored
MAX_INBOUND_PACKET_BYTES = 16 * 1024
"""Largest MQTT packet (fixed header included) the gate accepts from a broker.

The gate only ever receives acknowledgements, CONNACK/DISCONNECT with reason
properties and Home Assistant's few-byte birth message: 16 KiB is generous."""
_PROTOCOL_ERRORS = (130, 129)  # "Protocol error", "Malformed packet"


def _os_error_code(exc: OSError) -> str:
    """A short, content-free name for a connect failure (errno name or class name)."""
    if exc.errno is not None and exc.errno in errno.errorcode and not isinstance(exc, ssl.SSLError):
        return errno.errorcode[exc.errno]
    return type(exc).__name__


class _BoundedClient(mqtt.Client):
    """A paho client that refuses an oversized inbound packet before reading its body.

    paho reads a packet's fixed header (type byte and Remaining Length) one byte
    at a time, then asks :meth:`_sock_recv` for the whole body and appends what
    arrives to one buffer until the announced length is in memory. Checking the
    announced length at that point bounds memory by ``max_packet`` whatever the
    broker claims. Raising OSError there makes paho treat the link as lost: it
    closes the socket, reports the disconnect and reconnects with its back-off.
    (Relies on paho 2.x internals; ``tests/telemetry/test_telemetry_hostile.py``
    fails if they change.)
    """

    def __init__(
        self,
        *args: Any,
        max_packet: int,
        on_oversize: Callable[[int], None],
        on_connect_error: Callable[[OSError], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._kiosk_max_packet = max_packet
        self._kiosk_on_oversize = on_oversize
        self._kiosk_on_connect_error = on_connect_error
        self._kiosk_hostile = False  # the link that just ended sent hostile input
        self._kiosk_backoff: int | None = None

    def mark_hostile(self) -> None:
        """The current link sent hostile input: do not reconnect at once."""
        self._kiosk_hostile = True

    def _reconnect_wait(self) -> None:
        # paho resets its back-off on every accepted CONNACK, so a broker that accepts
        # and then sends garbage would be retried every second forever. After such a
        # link the back-off goes on doubling (1 s .. 60 s) from where it stood.
        hostile, self._kiosk_hostile = self._kiosk_hostile, False
        if hostile:
            with self._reconnect_delay_mutex:
                self._reconnect_delay = self._kiosk_backoff
        super()._reconnect_wait()
        self._kiosk_backoff = self._reconnect_delay if hostile else None

    def _sock_recv(self, bufsize: int) -> bytes:
        packet = self._in_packet
        if packet["have_remaining"]:
            total = 1 + len(packet["remaining_count"]) + packet["remaining_length"]
            if total > self._kiosk_max_packet:
                self._kiosk_hostile = True
                self._kiosk_on_oversize(total)
                raise ConnectionAbortedError(errno.EMSGSIZE, "inbound MQTT packet too large")
        return super()._sock_recv(bufsize)

    def reconnect(self) -> mqtt.MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:  # paho's loop retries; we only want the reason for status
            self._kiosk_on_connect_error(exc)
            raise


class _QuietNoConn(logging.Filter):
    """Demote paho 2.2's "Client is not connected" ERROR to DEBUG.

    paho logs it from its network loop whenever the socket is gone, i.e. on every
    outage and every clean stop; at ERROR it would flood journald with noise.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith("Client is not conn"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            # Handlers do not re-check the logger's level: drop it unless DEBUG is on.
            return _PAHO_LOG.isEnabledFor(logging.DEBUG)
        return True


_PAHO_LOG = logging.getLogger(f"{__name__}.paho")
_PAHO_LOG.addFilter(_QuietNoConn())


@dataclass(frozen=True, slots=True)
class Ack:
    """The broker answered a QoS 1 publish: ``failed`` for a v5 reason code >= 0x80."""

    mid: int
    failed: bool
    reason: str


class ReleaseSink(Protocol):
    """What the link needs of the release receiver (kiosk.remote.receiver)."""

    def topics(self) -> list[str]:
        """Descriptor topics to subscribe to on connect."""

    def wants(self, topic: str) -> bool:
        """Whether a message on ``topic`` is for the receiver."""

    def offer(self, topic: str, payload: bytes) -> None:
        """Take one message (never blocks)."""


class MqttLink:
    """A paho client that connects in the background and reconnects forever.

    Args:
        cfg: host, port and keepalive (seconds).
        client_id: MQTT client id.
        availability_topic: gets the retained will "offline", and "online" on
            every successful connect.
        inflight: paho's in-flight limit for QoS 1 messages.
        wake: called (from paho's thread) whenever something happened; must not block.
        on_error: receives short reason-code texts for status; must not block.
        birth_topic: Home Assistant's status topic to watch, or None.
        refusals: where refused inbound input is counted (surface ``mqtt``).
        max_packet_bytes: the largest inbound packet accepted (and announced on v5).
        command_topic: the gate's command topic to subscribe to, or None (off).
        on_command: gets ``(payload, retained)`` of each message on it (from paho's
            thread; must not block or parse).
        releases: the distribution receiver (kiosk.remote.receiver), or None: its
            descriptor topics are subscribed on connect and its messages routed to it.
    """

    def __init__(
        self,
        cfg: MqttConfig,
        client_id: str,
        availability_topic: str,
        *,
        inflight: int,
        wake: Callable[[], None],
        on_error: Callable[[str], None],
        birth_topic: str | None = None,
        refusals: RefusalCounter = REFUSED,
        max_packet_bytes: int = MAX_INBOUND_PACKET_BYTES,
        command_topic: str | None = None,
        on_command: Callable[[bytes, bool], None] | None = None,
        releases: ReleaseSink | None = None,
    ) -> None:
        self._cfg = cfg
        self._refusals = refusals
        self._max_packet = max_packet_bytes
        self._births = 0
        self._birth_topic = birth_topic
        self._command_topic = command_topic
        self._releases = releases
        # Chunk topics the release receiver asked for: subscribed again on every connect.
        self._extra_topics: set[str] = set()
        # True from the moment a connect has taken its copy of the topics: from then on
        # subscribe() subscribes itself (guarded by _lock, so no topic falls in between).
        self._extras_live = False
        self._on_command = on_command
        self._birth_seen = False
        self._client_id = client_id
        self._availability = availability_topic
        self._inflight = inflight
        self._wake = wake
        self._on_error = on_error
        self._protocol = MQTTProtocolVersion.MQTTv5
        self._generation = 0
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._lock = threading.Lock()  # guards the latches and counters below
        self._just_connected = False
        self._fallback_wanted = False
        self._connects = 0
        self._closing = False
        self._connack_refused = False  # the last CONNECT was refused: keep that reason
        self._oversize: int | None = None  # size of the packet that made us drop the link
        # (generation, ack) from on_publish; read by the drain thread.
        self._acks: queue.SimpleQueue[tuple[int, Ack]] = queue.SimpleQueue()

    @property
    def connected(self) -> bool:
        """Whether the broker accepted our CONNECT and the link is up."""
        return self._connected.is_set()

    @property
    def connects(self) -> int:
        """Successful connections so far (the first one included)."""
        with self._lock:
            return self._connects

    @property
    def births(self) -> int:
        """Home Assistant ``online`` messages accepted so far."""
        with self._lock:
            return self._births

    @property
    def protocol(self) -> MQTTProtocolVersion:
        """The MQTT version in use (v5 unless the broker refused it)."""
        return self._protocol

    def open(self) -> None:
        """Start connecting in the background; returns at once. Call once.

        Raises:
            TelemetryError: the TLS files or the password file cannot be read
                (the message names the file, never its content).
        """
        self._client = self._make_client()

    def take_birth(self) -> bool:
        """True once after Home Assistant announced ``online`` (to re-send discovery)."""
        with self._lock:
            flag, self._birth_seen = self._birth_seen, False
        return flag

    def take_just_connected(self) -> bool:
        """True once after each successful connect (to send status). Drain thread."""
        with self._lock:
            flag, self._just_connected = self._just_connected, False
        return flag

    def fall_back_if_refused(self) -> bool:
        """Replace a v5 client the broker refused by a 3.1.1 one. Drain thread only.

        Returns True if the client was replaced: the caller must forget every mid it
        is tracking, since the old client's in-flight messages die with it.
        """
        with self._lock:
            wanted, self._fallback_wanted = self._fallback_wanted, False
        if not wanted or self._protocol != MQTTProtocolVersion.MQTTv5 or self._closing:
            return False
        log.warning("broker refused MQTT v5; falling back to MQTT 3.1.1")
        old = self._client
        self._generation += 1  # callbacks of the old client are ignored from now on
        self._protocol = MQTTProtocolVersion.MQTTv311
        if old is not None:
            old.disconnect()
            old.loop_stop()
        self._client = self._make_client()
        return True

    def acks(self) -> list[Ack]:
        """Acknowledgements received since the last call, for the current client only."""
        out: list[Ack] = []
        while True:
            try:
                generation, ack = self._acks.get_nowait()
            except queue.Empty:
                return out
            if generation == self._generation:
                out.append(ack)

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1 now (if connected) and on every later connect."""
        with self._lock:
            self._extra_topics.add(topic)
            live = self._extras_live
        client = self._client
        if client is not None and live:
            client.subscribe(topic, qos=1)

    def unsubscribe(self, topic: str) -> None:
        """Forget a topic added with :meth:`subscribe`."""
        with self._lock:
            self._extra_topics.discard(topic)
            live = self._extras_live
        client = self._client
        if client is not None and live:
            client.unsubscribe(topic)

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> mqtt.MQTTMessageInfo:
        """Hand one message to paho (never blocks on the network).

        ``info.rc`` MQTT_ERR_SUCCESS or MQTT_ERR_NO_CONN both mean paho keeps the
        message and sends it once connected; other codes mean it was not queued.

        Raises:
            RuntimeError: :meth:`open` was not called.
        """
        if self._client is None:
            raise RuntimeError("link not open")
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    def close(self, timeout: float) -> None:
        """Publish "offline" (waiting up to ``timeout`` s for the broker), disconnect
        cleanly so the will is not sent, and stop paho's thread. Idempotent."""
        self._closing = True
        client, self._client = self._client, None
        if client is None:
            return
        if self._connected.is_set():
            info = client.publish(self._availability, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(max(0.0, timeout))
            except (RuntimeError, ValueError):
                log.warning("could not publish offline before disconnecting")
        client.disconnect()
        client.loop_stop()  # paho's thread notices within about a second
        self._connected.clear()

    # ------------------------------------------------------------------ internals

    def _make_client(self) -> mqtt.Client:
        generation = self._generation
        client = _BoundedClient(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=self._protocol,
            userdata=generation,
            max_packet=self._max_packet,
            on_oversize=lambda size: self._on_oversize(generation, size),
            on_connect_error=lambda exc: self._on_connect_error(generation, exc),
        )
        client.enable_logger(_PAHO_LOG)
        self._secure(client)
        client.reconnect_delay_set(1, 60)
        client.max_inflight_messages_set(self._inflight)
        client.will_set(self._availability, OFFLINE, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        properties = None
        if self._protocol == MQTTProtocolVersion.MQTTv5:
            # v5 lets the client state its limit: a conforming broker then never sends
            # a larger packet (it drops the message for this client instead).
            properties = Properties(PacketTypes.CONNECT)
            properties.MaximumPacketSize = self._max_packet
        client.connect_async(
            self._cfg.host, self._cfg.port, keepalive=self._cfg.keepalive_s, properties=properties
        )
        client.loop_start()
        return client

    def _secure(self, client: mqtt.Client) -> None:
        cfg = self._cfg
        if cfg.tls_ca is not None:
            try:
                # PROTOCOL_TLS_CLIENT: TLS 1.2+ with certificate and host name checks on.
                client.tls_set(
                    ca_certs=str(cfg.tls_ca),
                    certfile=None if cfg.tls_cert is None else str(cfg.tls_cert),
                    keyfile=None if cfg.tls_key is None else str(cfg.tls_key),
                    cert_reqs=ssl.CERT_REQUIRED,
                    tls_version=ssl.PROTOCOL_TLS_CLIENT,
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise TelemetryError(
                    f"cannot load TLS files {cfg.tls_ca}, {cfg.tls_cert}, {cfg.tls_key}: {reason}"
                ) from None  # from None: the chained error may quote a key file's path only
        if cfg.username:
            password = None
            if cfg.password_file is not None:
                try:
                    password = cfg.password_file.read_text(encoding="utf-8").strip("\r\n")
                except OSError as exc:
                    raise TelemetryError(
                        f"cannot read mqtt.password_file {cfg.password_file}: {exc.strerror}"
                    ) from None
            client.username_pw_set(cfg.username, password)

    # paho callbacks: run on paho's network thread. No blocking, no SQLite.

    def _on_connect(
        self,
        client: mqtt.Client,
        generation: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if generation != self._generation:
            return
        if reason_code.is_failure:
            self._on_error(f"connect refused: {reason_code}")
            self._connack_refused = True
            if reason_code.value == _UNSUPPORTED_PROTOCOL:
                with self._lock:
                    self._fallback_wanted = True
            log.warning("broker refused connection: %s", reason_code)
            self._wake()
            return
        # publish() only queues a packet for this very thread to write: non-blocking.
        client.publish(self._availability, ONLINE, qos=1, retain=True)
        if self._birth_topic is not None:
            client.subscribe(self._birth_topic, qos=1)
        if self._command_topic is not None:
            # A broker clears the retain flag on live delivery unless asked to keep
            # it (v5 "retain as published"): the gate must see it to refuse a
            # retained command, which would otherwise come back on every reconnect.
            if self._protocol == MQTTProtocolVersion.MQTTv5:
                options = SubscribeOptions(qos=1, retainAsPublished=True)
                client.subscribe(self._command_topic, options=options)
            else:
                client.subscribe(self._command_topic, qos=1)
        if self._releases is not None:
            with self._lock:
                extra = sorted(self._extra_topics)
                self._extras_live = True
            for topic in [*self._releases.topics(), *extra]:
                client.subscribe(topic, qos=1)
        self._connected.set()
        self._connack_refused = False
        with self._lock:
            self._connects += 1
            self._just_connected = True
        log.info("connected to MQTT broker %s:%d", self._cfg.host, self._cfg.port)
        self._wake()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        generation: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if generation != self._generation:
            return
        was_connected = self._connected.is_set()
        self._connected.clear()
        with self._lock:
            self._extras_live = False
        oversize, self._oversize = self._oversize, None
        refused, self._connack_refused = self._connack_refused, False
        if self._closing:
            pass
        elif oversize is not None:
            pass  # _on_oversize named the reason; this disconnect is ours
        elif refused and not was_connected:
            # After a refused CONNECT paho also reports a disconnect; keep the refusal's
            # reason (e.g. "Not authorized") in status rather than this generic one.
            pass
        else:
            # Every other end of a link is reported, including one that never got a
            # CONNACK (a broker that closes at once or answers with garbage).
            where = "disconnected" if was_connected else "connection lost before CONNACK"
            self._on_error(f"{where}: {reason_code}")
            if reason_code.value in _PROTOCOL_ERRORS:
                self._refusals.note("mqtt", "protocol_error")
                if isinstance(client, _BoundedClient):
                    client.mark_hostile()
            log.warning("MQTT link ended (%s: %s); counts stay queued", where, reason_code)
        self._wake()

    def _on_oversize(self, generation: int, size: int) -> None:
        # paho's network thread, inside a read: no blocking.
        if generation != self._generation:
            return
        self._oversize = size
        self._refusals.note("mqtt", "too_large")
        self._on_error(f"inbound packet too large: {size} > {self._max_packet} bytes")
        log.warning(
            "broker sent a %d-byte MQTT packet (limit %d): dropped the connection unread",
            size,
            self._max_packet,
        )

    def _on_connect_error(self, generation: int, exc: OSError) -> None:
        if generation != self._generation or self._closing:
            return
        self._on_error(f"connect failed: {_os_error_code(exc)}")

    def _on_publish(
        self,
        client: mqtt.Client,
        generation: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        self._acks.put((int(generation), Ack(mid, reason_code.is_failure, str(reason_code))))
        self._wake()

    def _on_message(self, client: mqtt.Client, generation: Any, msg: mqtt.MQTTMessage) -> None:
        # Untrusted input. Commands go unparsed to the loop's inbox; otherwise only the
        # exact birth topic and the literal "online" count, and the only effect is a
        # latch that makes the drain thread re-send discovery configs.
        if generation != self._generation:
            return
        if self._releases is not None and self._releases.wants(msg.topic):
            self._releases.offer(msg.topic, bytes(msg.payload))  # bounded queue, no parsing
            return
        if msg.topic == self._command_topic and self._on_command is not None:
            # Signed commands are verified on the scan loop's thread, never here: the
            # inbox only copies a bounded message (kiosk.remote.runner.CommandInbox).
            self._on_command(bytes(msg.payload), bool(msg.retain))
            return
        if msg.topic != self._birth_topic:
            self._refusals.note("mqtt", "unexpected_topic")  # never subscribed to it
            return
        payload = bytes(msg.payload)
        if len(payload) > _MAX_BIRTH_PAYLOAD:
            self._refusals.note("mqtt", "too_large")
            return
        if payload.strip() != ONLINE:
            return  # "offline" or other short text: Home Assistant's business, not an attack
        with self._lock:
            self._birth_seen = True
            self._births += 1
        self._wake()
