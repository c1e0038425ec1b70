"""Benchmark: durable count writes and outbox drain rate, each against a same-run baseline.

Usage: ``python bench/outbox.py [--writes 2000] [--messages 100000] [--dir DIR]``.
Needs the ``mosquitto`` binary (a private broker is started on a free port).
Prints one JSON object::

    {"durable_writes_per_s": ..., "raw_sqlite_inserts_per_s": ..., "write_ratio": ...,
     "drain_msgs_per_s": ..., "raw_paho_qos1_per_s": ..., "drain_ratio": ..., ...}

* Writes: :meth:`CountStore.record` (totals + daily + outbox row, one WAL
  transaction with ``synchronous=FULL``) against a raw ``INSERT`` of a payload of
  the same size, also one ``synchronous=FULL`` WAL transaction each, in the same
  folder (``--dir``, default a temporary folder under the current directory, so
  the disk is the one you care about).
* Drain: ``--messages`` reports queued in the outbox as after an outage, then the
  time until :meth:`MqttPublisher.drain` reports it empty (every row PUBACKed and
  deleted) against raw paho publishing the same number of same-size messages at
  QoS 1 with the same in-flight window, waiting for every PUBACK, to the same broker.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt

from kiosk.config.schema import MqttConfig
from kiosk.decision import Decision, InputKind, Reason
from kiosk.telemetry import CountStore, MqttPublisher
from kiosk.telemetry.payloads import CountsHeader, counts_payload

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
WINDOW = 20  # MqttPublisher's default in-flight window


def _decisions(n: int) -> list[Decision]:
    reasons = [Reason.OK, Reason.EXPIRED, Reason.OK, Reason.REVOKED]
    return [
        Decision(allowed=r is Reason.OK, reason=r, input=InputKind.QR)
        for r in (reasons[i % len(reasons)] for i in range(n))
    ]


def durable_writes(folder: Path, n: int) -> float:
    with CountStore(folder / "counts.sqlite", "bench/gate-01") as store:
        stream = _decisions(n)
        start = time.perf_counter()
        for i, d in enumerate(stream):
            store.record(d, T0 + timedelta(seconds=i))
        return n / (time.perf_counter() - start)


def raw_inserts(folder: Path, n: int, size: int) -> float:
    conn = sqlite3.connect(str(folder / "raw.sqlite"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
    blob = b"x" * size
    start = time.perf_counter()
    for _ in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (payload) VALUES (?)", (blob,))
        conn.execute("COMMIT")
    rate = n / (time.perf_counter() - start)
    conn.close()
    return rate


def fill_outbox(db: Path, n: int) -> int:
    """Queue ``n`` genuine counts reports quickly (one transaction); returns payload size."""
    with CountStore(db, "bench/gate-01") as store:
        store_id, boot = store.store_id, store.boot
    totals = {"allowed": 0, "denied": 0, "denied.expired": 0, "input.qr": 0, "input.nik": 0}
    rows = []
    for i in range(1, n + 1):
        totals["allowed"] += 1
        totals["input.qr"] += 1
        at = T0 + timedelta(seconds=i)
        head = CountsHeader("bench/gate-01", store_id, boot, i, i)
        payload = counts_payload(
            head,
            at_first=at,
            at=at,
            bucket_s=60,
            change={"result": "allowed", "reason": "ok", "input": "qr"},
            delta={"allowed": 1, "input.qr": 1},
            totals=totals,
        )
        rows.append(("counts", payload, at.isoformat()))
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO outbox (topic, payload, qos, retain, created_at) VALUES (?, ?, 1, 0, ?)", rows
    )
    conn.execute("UPDATE meta SET value = ? WHERE key = 'count_seq'", (str(n),))
    conn.execute("COMMIT")
    conn.close()
    return len(rows[-1][1])


def drain_rate(db: Path, port: int, n: int) -> float:
    cfg = MqttConfig(host="127.0.0.1", port=port, keepalive_s=30, discovery=False)
    pub = MqttPublisher(cfg, "bench/site/gate-01", "bench/gate-01", db, window=WINDOW)
    start = time.perf_counter()
    pub.start()
    try:
        if not pub.drain(600.0):
            raise RuntimeError("outbox did not drain within 600 s")
        return n / (time.perf_counter() - start)
    finally:
        pub.stop(5.0)


def raw_paho_rate(port: int, n: int, size: int) -> float:
    """QoS 1 publishes with at most WINDOW unacknowledged, as the publisher keeps them.

    The window is kept by a semaphore rather than by queueing all ``n`` inside
    paho: 100,000 messages queued in paho at once stalled for minutes here.
    """
    window = threading.Semaphore(WINDOW)
    done = threading.Event()
    acked = 0

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1
        window.release()
        if acked == n:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(WINDOW)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    payload = b"x" * size
    start = time.perf_counter()
    for _ in range(n):
        window.acquire()
        client.publish("bench/raw/counts", payload, qos=1)
    if not done.wait(600):
        raise RuntimeError("raw paho baseline did not finish within 600 s")
    rate = n / (time.perf_counter() - start)
    client.disconnect()
    client.loop_stop()
    return rate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path.cwd())
    args = parser.parse_args()
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-outbox-") as tmp:
        folder = Path(tmp)
        writes = durable_writes(folder, args.writes)
        size = fill_outbox(folder / "drain.sqlite", 1)  # payload size of a typical report
        raw = raw_inserts(folder, args.writes, size)
        port = _free_port()
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n")
        broker = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            time.sleep(0.5)
            (folder / "drain.sqlite").unlink()
            size = fill_outbox(folder / "drain.sqlite", args.messages)
            drain = drain_rate(folder / "drain.sqlite", port, args.messages)
            paho_rate = raw_paho_rate(port, args.messages, size)
        finally:
            broker.kill()
            broker.wait(10)
    print(
        json.dumps(
            {
                "durable_writes_per_s": round(writes),
                "raw_sqlite_inserts_per_s": round(raw),
                "write_ratio": round(writes / raw, 2),
                "drain_msgs_per_s": round(drain),
                "raw_paho_qos1_per_s": round(paho_rate),
                "drain_ratio": round(drain / paho_rate, 2),
                "messages": args.messages,
                "payload_bytes": size,
                "window": WINDOW,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "sqlite": sqlite3.sqlite_version,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
