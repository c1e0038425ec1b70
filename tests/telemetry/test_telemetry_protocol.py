"""Protocol corner cases against a scripted fake broker (see fake_broker.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.config.schema import MqttConfig
from kiosk.telemetry import CountStore, MqttPublisher

from .fake_broker import FakeBroker
from .helpers import at, decisions, wait_until

DEVICE = "site-a/gate-01"


@pytest.fixture
def fakes() -> Iterator[list[FakeBroker]]:
    made: list[FakeBroker] = []
    yield made
    for f in made:
        f.close()


def seqs(fake: FakeBroker, topic: str, connection: int | None = None) -> list[int]:
    return [
        json.loads(s.payload)["seq"]
        for s in fake.published(topic)
        if connection is None or s.connection == connection
    ]


def test_rows_are_kept_until_puback_and_resent_after_reconnect(
    fakes: list[FakeBroker], root: str, tmp_path: Path
) -> None:
    counts = f"{root}/counts"
    fake = FakeBroker(silent_connections=1, drop_after=5, drop_topic=counts)
    fakes.append(fake)
    db = tmp_path / "counts.sqlite"
    with CountStore(db, DEVICE) as store:
        for i, d in enumerate(decisions(12)):
            store.record(d, at(i))
        cfg = MqttConfig(host="127.0.0.1", port=fake.port, keepalive_s=5)
        pub = MqttPublisher(cfg, root, DEVICE, db, window=5)
        try:
            pub.start()
            # First link: five counts sent, none acknowledged, link dropped.
            assert wait_until(lambda: len(seqs(fake, counts, 0)) == 5, 5.0)
            assert wait_until(lambda: not pub.connected, 5.0)
            assert store.pending_count() == 12  # nothing deleted without a PUBACK
            # Second link: the five are re-sent (DUP) and everything is acknowledged.
            assert pub.drain(10.0)
            assert store.pending_count() == 0
        finally:
            pub.stop(2.0)
    assert seqs(fake, counts, 0) == [1, 2, 3, 4, 5]
    again = seqs(fake, counts, 1)
    assert again == list(range(1, 13))
    assert all(s.dup for s in fake.published(counts)[5:10])
    stats = pub.stats()
    assert stats.acked == 12 and stats.reconnects == 1


def test_falls_back_to_mqtt_311_when_v5_is_refused(
    fakes: list[FakeBroker], root: str, tmp_path: Path
) -> None:
    fake = FakeBroker(refuse_v5=True)
    fakes.append(fake)
    db = tmp_path / "counts.sqlite"
    with CountStore(db, DEVICE) as store:
        for i, d in enumerate(decisions(3)):
            store.record(d, at(i))
        cfg = MqttConfig(host="127.0.0.1", port=fake.port, keepalive_s=5)
        pub = MqttPublisher(cfg, root, DEVICE, db)
        try:
            pub.start()
            assert pub.drain(10.0)
            assert pub.connected
        finally:
            pub.stop(2.0)
    assert fake.protocols[:2] == [5, 4]
    assert seqs(fake, f"{root}/counts") == [1, 2, 3]
    assert [s.payload for s in fake.published(f"{root}/availability")] == [b"online", b"offline"]
