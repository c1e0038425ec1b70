"""MqttPublisher against the machine's Mosquitto (127.0.0.1:1883) with a real subscriber."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kiosk
from kiosk.config.schema import MqttConfig
from kiosk.telemetry import CountStore, MqttPublisher, broker_reachable

from .helpers import MACHINE_BROKER, Recorder, at, clear_retained, decisions, free_port, wait_until

DEVICE = "site-a/gate-01"
MakeRecorder = Callable[[str, int, str], Recorder]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "counts.sqlite"


@pytest.fixture
def shared_root(root: str) -> Iterator[str]:
    yield root
    clear_retained(*MACHINE_BROKER, root)


def counts_seqs(rec: Recorder, root: str) -> list[int]:
    return [json.loads(m.payload)["seq"] for m in rec.on(f"{root}/counts")]


def test_counts_arrive_in_seq_order_and_outbox_drains(
    machine_broker: MqttConfig, shared_root: str, db: Path, recorder_factory: MakeRecorder
) -> None:
    root = shared_root
    rec = recorder_factory(*MACHINE_BROKER, f"{root}/#")
    rec.wait_subscribed()
    n = 60
    with CountStore(db, DEVICE) as store:
        pub = MqttPublisher(machine_broker, root, DEVICE, db, window=8)
        try:
            for i, d in enumerate(decisions(n // 2)):  # some queued before start …
                store.record(d, at(i))
            pub.start()
            for i, d in enumerate(decisions(n)[n // 2 :], start=n // 2):  # … some after
                store.record(d, at(i))
                pub.notify()
            assert pub.drain(10.0)
            assert store.pending_count() == 0
            assert wait_until(lambda: len(counts_seqs(rec, root)) >= n, 5.0)
            assert counts_seqs(rec, root) == list(range(1, n + 1))
            last = json.loads(rec.on(f"{root}/counts")[-1].payload)
            assert last["totals"] == store.totals() and last["v"] == 1
            stats = pub.stats()
            assert stats.acked == n and stats.published >= n and stats.pending == 0
            assert stats.connected and stats.last_error is None
        finally:
            pub.stop(5.0)


def test_new_subscriber_sees_retained_online_and_status(
    machine_broker: MqttConfig, shared_root: str, db: Path, recorder_factory: MakeRecorder
) -> None:
    root = shared_root
    with CountStore(db, DEVICE) as store:
        for i, d in enumerate(decisions(7)):
            store.record(d, at(i))
        totals = store.totals()
    pub = MqttPublisher(machine_broker, root, DEVICE, db)
    try:
        pub.start()
        assert pub.drain(10.0)
        # Status is published on connect; wait for the one that reports the drained outbox.
        late = recorder_factory(*MACHINE_BROKER, f"{root}/+")
        late.wait_subscribed()
        assert wait_until(lambda: late.on(f"{root}/availability"), 5.0)
        assert wait_until(lambda: late.on(f"{root}/status"), 5.0)
        avail = late.on(f"{root}/availability")[-1]
        assert avail.payload == b"online" and avail.retain
        status = late.on(f"{root}/status")[-1]
        assert status.retain
        body = json.loads(status.payload)
        assert body["v"] == 1 and body["device"] == DEVICE
        assert body["version"] == kiosk.__version__
        assert body["totals"] == totals
        assert body["uptime_s"] >= 0
    finally:
        pub.stop(5.0)


def test_status_is_republished_periodically(
    machine_broker: MqttConfig, shared_root: str, db: Path, recorder_factory: MakeRecorder
) -> None:
    root = shared_root
    rec = recorder_factory(*MACHINE_BROKER, f"{root}/status")
    rec.wait_subscribed()
    with CountStore(db, DEVICE) as store:
        pub = MqttPublisher(machine_broker, root, DEVICE, db, status_interval_s=0.3)
        try:
            pub.start()
            assert wait_until(lambda: len(rec.on(f"{root}/status")) >= 1, 5.0)
            store.record(decisions(1)[0], at(0))
            pub.notify()
            # A later status reflects the new count without any reconnect.
            assert wait_until(
                lambda: json.loads(rec.on(f"{root}/status")[-1].payload)["totals"]["allowed"] == 1,
                5.0,
            )
        finally:
            pub.stop(5.0)


def test_clean_stop_publishes_offline(
    machine_broker: MqttConfig, shared_root: str, db: Path, recorder_factory: MakeRecorder
) -> None:
    root = shared_root
    rec = recorder_factory(*MACHINE_BROKER, f"{root}/availability")
    rec.wait_subscribed()
    CountStore(db, DEVICE).close()
    pub = MqttPublisher(machine_broker, root, DEVICE, db)
    pub.start()
    assert wait_until(lambda: pub.connected, 5.0)
    assert wait_until(lambda: [m.payload for m in rec.on(f"{root}/availability")] == [b"online"], 5)
    pub.stop(5.0)
    pub.stop(5.0)  # idempotent
    assert not pub.connected
    assert wait_until(lambda: len(rec.on(f"{root}/availability")) == 2, 5.0)
    assert rec.on(f"{root}/availability")[-1].payload == b"offline"
    # And it is retained: a newcomer learns the gate is offline.
    late = recorder_factory(*MACHINE_BROKER, f"{root}/availability")
    late.wait_subscribed()
    assert wait_until(lambda: late.on(f"{root}/availability"), 5.0)
    assert late.on(f"{root}/availability")[-1].payload == b"offline"


def test_disabled_publisher_keeps_counts_queued(db: Path, root: str) -> None:
    with CountStore(db, DEVICE) as store:
        store.record(decisions(1)[0], at(0))
        pub = MqttPublisher(MqttConfig(enabled=False), root, DEVICE, db)
        pub.start()
        assert not pub.connected
        assert pub.drain(0.1) is False
        pub.stop(1.0)
        assert store.pending_count() == 1


def test_no_broker_start_returns_at_once_and_stop_is_prompt(db: Path, root: str) -> None:
    cfg = MqttConfig(host="127.0.0.1", port=free_port(), keepalive_s=5)
    with CountStore(db, DEVICE) as store:
        pub = MqttPublisher(cfg, root, DEVICE, db)
        pub.start()
        store.record(decisions(1)[0], at(0))
        pub.notify()
        assert pub.drain(0.5) is False
        assert not pub.connected
        pub.stop(2.0)
        assert store.pending_count() == 1


def test_broker_reachable(machine_broker: MqttConfig) -> None:
    assert broker_reachable(*MACHINE_BROKER)
    assert not broker_reachable("127.0.0.1", free_port(), timeout=0.2)
