"""Outages, restarts and crashes against a private Mosquitto on a free port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kiosk.telemetry import CountStore, MqttPublisher

from .helpers import Broker, Recorder, assert_exact, at, decisions, dedup_counts, wait_until

DEVICE = "site-a/gate-01"
MakeRecorder = Callable[[str, int, str], Recorder]


def persistent_receiver(broker: Broker, root: str, tmp_path: Path) -> Recorder:
    """A receiver whose subscription survives broker restarts.

    The broker gets persistence just for this receiver's session, so messages the
    gate publishes before the receiver has reconnected are queued for it rather
    than lost: the test then observes exactly what reached the broker.
    """
    with broker.conf.open("a") as f:
        f.write(f"persistence true\npersistence_location {tmp_path}/\n")
    return Recorder("127.0.0.1", broker.port, f"{root}/counts", persistent=True)


def received_seqs(rec: Recorder, root: str) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in rec.on(f"{root}/counts")]


def assert_complete(rec: Recorder, root: str, store: CountStore, n: int) -> None:
    bodies = received_seqs(rec, root)
    by_seq = {b["seq"]: b for b in bodies}  # the receiver de-duplicates by (store, seq)
    missing = sorted(set(range(1, n + 1)) - set(by_seq))
    assert not missing, f"gap or loss in seq: {missing} got {[b['seq'] for b in bodies]}"
    assert sorted(by_seq) == list(range(1, n + 1))
    assert {b["store"] for b in bodies} == {store.store_id}
    assert by_seq[n]["totals"] == store.totals()


def test_counts_recorded_during_outage_all_arrive(
    broker: Broker, root: str, tmp_path: Path
) -> None:
    # Create the receiver's persistent session, then take the broker down.
    broker.conf.write_text(broker.conf.read_text().replace("persistence false\n", ""))
    rec = persistent_receiver(broker, root, tmp_path)
    broker.start()
    rec.wait_subscribed()
    broker.stop()

    db = tmp_path / "counts.sqlite"
    n = 200
    with CountStore(db, DEVICE) as store:
        pub = MqttPublisher(broker.cfg, root, DEVICE, db)
        try:
            pub.start()
            slowest = 0.0
            for i, d in enumerate(decisions(n)):
                t0 = time.monotonic()
                store.record(d, at(i))
                pub.notify()
                slowest = max(slowest, time.monotonic() - t0)
            assert slowest < 0.5, "record() must never wait for the network"
            assert not pub.connected and store.pending_count() == n

            broker.start()
            assert pub.drain(20.0)
            assert wait_until(lambda: len({b["seq"] for b in received_seqs(rec, root)}) >= n, 10)
            assert_complete(rec, root, store, n)
            assert store.pending_count() == 0
        finally:
            pub.stop(5.0)
            rec.close()


def test_broker_restart_mid_operation_loses_nothing(
    broker: Broker, root: str, tmp_path: Path
) -> None:
    broker.conf.write_text(broker.conf.read_text().replace("persistence false\n", ""))
    rec = persistent_receiver(broker, root, tmp_path)
    broker.start()
    rec.wait_subscribed()
    db = tmp_path / "counts.sqlite"
    with CountStore(db, DEVICE) as store:
        pub = MqttPublisher(broker.cfg, root, DEVICE, db, window=5)
        try:
            pub.start()
            for i, d in enumerate(decisions(100)):
                store.record(d, at(i))
                pub.notify()
            broker.stop()  # while counts are (probably) still in flight
            assert wait_until(lambda: not pub.connected, 5.0)
            for i, d in enumerate(decisions(150)[100:], start=100):
                store.record(d, at(i))
                pub.notify()
            broker.start()
            assert pub.drain(20.0)
            wait_until(lambda: len({b["seq"] for b in received_seqs(rec, root)}) >= 150, 10)
            assert_complete(rec, root, store, 150)
            assert pub.stats().reconnects >= 1
        finally:
            pub.stop(5.0)
            rec.close()


_CHILD = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from kiosk.config.schema import MqttConfig
    from kiosk.telemetry import CountStore, MqttPublisher
    port, root, db = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    CountStore(db, "site-a/gate-01").close()
    cfg = MqttConfig(host="127.0.0.1", port=port, keepalive_s=5)
    MqttPublisher(cfg, root, "site-a/gate-01", db).start()
    print("started", flush=True)
    threading.Event().wait()  # until killed
    """
)


def test_last_will_reports_offline_after_kill_9(
    broker: Broker, root: str, tmp_path: Path, recorder_factory: MakeRecorder
) -> None:
    broker.start()
    rec = recorder_factory("127.0.0.1", broker.port, f"{root}/availability")
    rec.wait_subscribed()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(broker.port), root, str(tmp_path / "c.sqlite")],
        env=env,
        stdout=subprocess.PIPE,
    )
    try:
        assert wait_until(lambda: [m.payload for m in rec.on(f"{root}/availability")], 10.0)
        assert rec.on(f"{root}/availability")[-1].payload == b"online"
        child.kill()  # SIGKILL: no clean disconnect, only the broker's will can tell
        child.wait(5)
        assert wait_until(lambda: len(rec.on(f"{root}/availability")) >= 2, 12.0)
        offline = rec.on(f"{root}/availability")[-1]
        assert offline.payload == b"offline"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)


@pytest.mark.parametrize("max_rows", [100_000, 150], ids=["plain", "coalesced-during-outage"])
def test_1000_scans_with_broker_down_for_a_while_totals_exact(
    broker: Broker, root: str, tmp_path: Path, max_rows: int
) -> None:
    """Acceptance: a stream of 1,000 scans, the broker down for a third of it.

    With ``max_rows=150`` the outbox overflows during the outage and old reports
    are merged (docs/mqtt.md, bounded disk use): the receiver must still end with
    exactly the device's totals, and the sum of the deltas it got must match.
    """
    broker.conf.write_text(broker.conf.read_text().replace("persistence false\n", ""))
    rec = persistent_receiver(broker, root, tmp_path)
    broker.start()
    rec.wait_subscribed()
    db = tmp_path / "counts.sqlite"
    n = 1000
    stream = decisions(n)
    with CountStore(db, DEVICE, max_rows=max_rows, check_every=50) as store:
        pub = MqttPublisher(broker.cfg, root, DEVICE, db)
        try:
            pub.start()
            assert wait_until(lambda: pub.connected, 5.0)
            for i in range(n):
                if i == 300:
                    broker.stop()  # outage: no clean disconnect for anyone
                if i == 650:
                    assert not pub.connected
                    broker.start()
                store.record(stream[i], at(i))
                pub.notify()
                if 300 <= i < 650 and i % 50 == 0:
                    time.sleep(0.1)  # the outage lasts a while, scans keep coming
            assert pub.drain(30.0)
            totals = store.totals()
            assert totals["allowed"] + totals["denied"] == n
            last_seq = n

            def complete() -> bool:
                got = received_seqs(rec, root)
                return any(b["seq"] == last_seq for b in got)

            assert wait_until(complete, 15.0)
            kept = dedup_counts(received_seqs(rec, root))
            assert kept[-1]["seq"] == n
            assert_exact(kept, totals)
            if max_rows < n:
                assert any(b["seq"] > b["seq_first"] for b in kept), "nothing was coalesced"
        finally:
            pub.stop(5.0)
            rec.close()
