"""Counts that survive power cuts, reported over MQTT when a broker is reachable.

* :class:`CountStore` (scan loop) records each decision and queues its report in
  one SQLite transaction.
* :class:`MqttPublisher` (its own ``kiosk-outbox`` thread) sends the queued
  reports at QoS 1 and deletes each one only after the broker's PUBACK.

Wiring (the scan loop owns the store, the publisher owns its thread); the
helpers in :mod:`kiosk.telemetry.wiring` do this from the configuration::

    store = open_count_store(cfg)          # CountStore(db, device_id, bucket_s=..., ...)
    publisher = make_publisher(cfg, store, verifier)
    publisher.start()                      # returns at once, even with no network
    ...
    store.record(decision, clock.now())    # per scan: durable before the gate moves on
    publisher.notify()                     # wake the drain thread; never blocks
    ...
    publisher.drain(cfg.mqtt.drain_timeout_s)  # on exit: best effort, counts stay on disk
    publisher.stop()
    store.close()

The topic contract is documented in ``docs/mqtt.md``.
"""

from kiosk.telemetry.net import broker_reachable
from kiosk.telemetry.outbox import OutboxMessage, OutboxReader
from kiosk.telemetry.publisher import MqttPublisher
from kiosk.telemetry.stats import PublisherStats
from kiosk.telemetry.store import CountStore

__all__ = [
    "CountStore",
    "MqttPublisher",
    "OutboxMessage",
    "OutboxReader",
    "PublisherStats",
    "broker_reachable",
]
