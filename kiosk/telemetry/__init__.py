"""Counts that survive power cuts, reported over MQTT when a broker is reachable.

* :class:`CountStore` (scan loop) records each decision and queues its report in
  one SQLite transaction.
* :class:`MqttPublisher` (its own ``kiosk-outbox`` thread) sends the queued
  reports at QoS 1 and deletes each one only after the broker's PUBACK.

Wiring (the scan loop owns the store, the publisher owns its thread)::

    store = CountStore(cfg.counts_db_path, cfg.device.device_id)
    publisher = MqttPublisher(cfg.mqtt, cfg.mqtt_topic_root, cfg.device.device_id,
                              cfg.counts_db_path)
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
from kiosk.telemetry.publisher import MqttPublisher, PublisherStats
from kiosk.telemetry.store import CountStore, OutboxMessage, OutboxReader

__all__ = [
    "CountStore",
    "MqttPublisher",
    "OutboxMessage",
    "OutboxReader",
    "PublisherStats",
    "broker_reachable",
]
