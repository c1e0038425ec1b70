"""Benchmark: the fleet service under N simulated gates, against the broker's own latency.

Usage: ``python bench/fleet.py [--gates 1000] [--seconds 30] [--scans-per-min 2]``.
Needs the ``mosquitto`` binary. Starts a private Mosquitto on a free port and
``kiosk fleet serve`` as a separate process (SQLite in a temporary folder), then
simulates the gates from ONE asyncio process: a minimal MQTT 3.1.1 client per
gate (CONNECT with the gate's last will, QoS 1 PUBLISH, PUBACK, PINGREQ), with
payloads built by the gate's own functions (:mod:`kiosk.telemetry.payloads`).
Each gate publishes retained ``online`` and a status on connect, a status every
10–60 s, counts at ``--scans-per-min``, and a tailgate on 2 % of its counts.

Lag: every 0.25 s a probe report goes to a random gate; it is timed from its
publish until ``GET /api/gates/<site>/<gate>`` shows its ``seq`` (polled every
20 ms). The baseline, measured in the same run: the same probe from publish
until a plain subscriber on the same broker receives it. Prints one JSON object::

    {"gates": ..., "handled_msgs_per_s": ..., "lag_p50_ms": ..., "lag_p90_ms": ...,
     "lag_p99_ms": ..., "broker_lag_p50_ms": ..., "lag_ratio_p50": ...,
     "service_rss_mb": ..., "service_cpu_pct": ..., "generator_cpu_pct": ..., ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _ports import free_port, wait_port

from kiosk.decision import Decision, InputKind, Reason
from kiosk.telemetry.payloads import (
    CountsHeader,
    StatusInfo,
    counts_payload,
    decision_change,
    event_payload,
    status_payload,
    total_names,
)

TOKEN = "bench-token-" + "x" * 16
MIX = [
    Decision(allowed=True, reason=Reason.OK, input=InputKind.QR),
    Decision(allowed=True, reason=Reason.OK, input=InputKind.QR),
    Decision(allowed=True, reason=Reason.OK, input=InputKind.NIK),
    Decision(allowed=False, reason=Reason.EXPIRED, input=InputKind.QR),
]


# --------------------------------------------------------------- minimal MQTT


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def _packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _varint(len(body)) + body


class MiniClient:
    """One MQTT 3.1.1 connection: QoS 1 publish without waiting, PUBACKs counted."""

    def __init__(self, client_id: str, will_topic: str | None = None) -> None:
        self.client_id = client_id
        self.will_topic = will_topic
        self._next_id = 0
        self.acked = 0
        self.on_publish: Any = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self, host: str, port: int, keepalive: int = 60) -> None:
        """TCP connect, CONNECT (with the will), CONNACK; then a reader task."""
        reader, writer = await asyncio.open_connection(host, port)
        flags = 0x02
        payload = _str(self.client_id)
        if self.will_topic:
            flags |= 0x04 | 0x08 | 0x20  # will, QoS 1, retained
            payload += _str(self.will_topic) + _str(b"offline")
        body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload
        writer.write(_packet(0x10, body))
        await writer.drain()
        head = await reader.readexactly(4)
        if head[0] != 0x20 or head[3] != 0:
            raise RuntimeError(f"CONNACK refused: {head!r}")
        self._writer = writer
        asyncio.get_running_loop().create_task(self._read(reader))
        asyncio.get_running_loop().create_task(self._ping(keepalive))

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """QoS 1 PUBLISH (buffered; the PUBACK is counted when it comes)."""
        assert self._writer is not None
        self._next_id = self._next_id % 65535 + 1
        body = _str(topic) + struct.pack("!H", self._next_id) + payload
        self._writer.write(_packet(0x32 | (1 if retain else 0), body))

    async def subscribe(self, topic: str) -> None:
        """SUBSCRIBE at QoS 0 (received messages go to ``on_publish``)."""
        assert self._writer is not None
        self._writer.write(_packet(0x82, struct.pack("!H", 1) + _str(topic) + b"\x00"))
        await self._writer.drain()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                first = (await reader.readexactly(1))[0]
                length, shift = 0, 0
                while True:
                    byte = (await reader.readexactly(1))[0]
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                body = await reader.readexactly(length) if length else b""
                kind = first & 0xF0
                if kind == 0x40:
                    self.acked += 1
                elif kind == 0x30 and self.on_publish is not None:
                    size = struct.unpack("!H", body[:2])[0]
                    qos = (first >> 1) & 3
                    start = 2 + size + (2 if qos else 0)
                    self.on_publish(body[2 : 2 + size].decode(), body[start:])
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    async def _ping(self, keepalive: int) -> None:
        while self._writer is not None and not self._writer.is_closing():
            await asyncio.sleep(keepalive / 2)
            self._writer.write(b"\xc0\x00")

    def close(self) -> None:
        """DISCONNECT cleanly (no will) and close."""
        if self._writer is not None:
            self._writer.write(b"\xe0\x00")
            self._writer.close()
            self._writer = None


# --------------------------------------------------------------- the gates


@dataclass
class Gate:
    """A simulated gate's counters, built with the gate's own payload functions."""

    site: str
    name: str
    client: MiniClient
    store: str = field(default_factory=lambda: uuid.uuid4().hex)
    seq: int = 0
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def root(self) -> str:
        return f"kiosk/{self.site}/{self.name}"

    def count(self, decision: Decision, at: datetime) -> int:
        """Publish one decision's counts message; returns its seq."""
        self.seq += 1
        delta = dict.fromkeys(total_names(decision), 1)
        for key in delta:
            self.totals[key] = self.totals.get(key, 0) + 1
        head = CountsHeader(f"{self.site}/{self.name}", self.store, 1, self.seq, self.seq)
        payload = counts_payload(head, at_first=at, at=at, bucket_s=60,
                                 change=decision_change(decision), delta=delta,
                                 totals=dict(self.totals))
        self.client.publish(f"{self.root}/counts", payload)
        return self.seq

    def tailgate(self, at: datetime) -> None:
        """A tailgate: its counts change and its event."""
        self.seq += 1
        self.totals["tailgate"] = self.totals.get("tailgate", 0) + 1
        head = CountsHeader(f"{self.site}/{self.name}", self.store, 1, self.seq, self.seq)
        self.client.publish(f"{self.root}/counts", counts_payload(
            head, at_first=at, at=at, bucket_s=60, change={"event": "tailgate"},
            delta={"tailgate": 1}, totals=dict(self.totals)))
        self.client.publish(f"{self.root}/events", event_payload(
            device_id=f"{self.site}/{self.name}", store_id=self.store, seq=self.seq, at=at,
            event="tailgate", kind="alarm"))

    def status(self, at: datetime) -> None:
        """The retained status with store and seq."""
        info = StatusInfo(
            device_id=f"{self.site}/{self.name}", version="0.1.0", uptime_s=60,
            totals=dict(self.totals), pending=0, published=self.seq, acked=self.seq,
            reconnects=0, last_error=None, day=at.date().isoformat(), today={},
            gate={"mode": "fresh", "gate_mode": "normal", "bundle_version": 7,
                  "bundle_age_s": 3600.0, "clock_state": "synchronised", "camera_fps": 15.0,
                  "decoder": "zxing", "store_unsaved": 0},
            store_id=self.store, seq=self.seq, timezone="Asia/Jakarta")
        self.client.publish(f"{self.root}/status", status_payload(info, at), retain=True)


# --------------------------------------------------------------- processes


def _raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _http_get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {TOKEN}\r\n"
                 f"Connection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return data.partition(b"\r\n\r\n")[2]


async def _handled(port: int) -> int:
    text = (await _http_get(port, "/metrics")).decode()
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("kiosk_fleet_messages_total{"))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --------------------------------------------------------------- the run


async def _run(args: argparse.Namespace, mq_port: int, http_port: int, pid: int) -> dict[str, Any]:
    rng = random.Random(args.seed)
    gates: list[Gate] = []
    connect_t0 = time.monotonic()
    sem = asyncio.Semaphore(200)

    async def connect(index: int) -> None:
        site = f"site-{index % args.sites:03d}"
        name = f"gate-{index:05d}"
        client = MiniClient(f"kiosk-{site}-{name}", f"kiosk/{site}/{name}/availability")
        async with sem:
            await client.connect("127.0.0.1", mq_port)
        gate = Gate(site, name, client)
        client.publish(f"kiosk/{site}/{name}/availability", b"online", retain=True)
        gate.status(datetime.now(UTC))
        gates.append(gate)

    await asyncio.gather(*(connect(i) for i in range(args.gates)))
    connect_s = time.monotonic() - connect_t0

    broker_seen: dict[tuple[str, int], float] = {}
    watcher = MiniClient(f"bench-watch-{uuid.uuid4().hex[:6]}")
    await watcher.connect("127.0.0.1", mq_port)

    def seen(topic: str, payload: bytes) -> None:
        if topic.endswith("/counts"):
            body = json.loads(payload)
            broker_seen[(body["device"], body["seq"])] = time.monotonic()

    watcher.on_publish = seen
    await watcher.subscribe("kiosk/+/+/counts")

    # Let the service take the retained burst of connects before measuring.
    async def settled() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            body = await _http_get(http_port, "/api/sites")
            if sum(s["gates"] for s in json.loads(body)) >= args.gates:
                return
            await asyncio.sleep(0.5)

    await settled()
    stop = asyncio.Event()
    per_gate_s = 60.0 / args.scans_per_min

    async def traffic(gate: Gate) -> None:
        next_status = time.monotonic() + rng.uniform(10, 60)
        await asyncio.sleep(rng.uniform(0, per_gate_s))
        while not stop.is_set():
            now = datetime.now(UTC)
            if rng.random() < 0.02:
                gate.tailgate(now)
            else:
                gate.count(rng.choice(MIX), now)
            if time.monotonic() >= next_status:
                gate.status(now)
                next_status = time.monotonic() + rng.uniform(10, 60)
            await asyncio.sleep(rng.expovariate(1 / per_gate_s))

    lags: list[float] = []
    broker_lags: list[float] = []
    missed = 0

    async def probe() -> None:
        nonlocal missed
        gate = rng.choice(gates)
        t0 = time.monotonic()
        seq = gate.count(MIX[0], datetime.now(UTC))
        device = f"{gate.site}/{gate.name}"
        path = f"/api/gates/{gate.site}/{gate.name}"
        while time.monotonic() - t0 < 30:
            body = await _http_get(http_port, path)
            try:
                if json.loads(body)["seq"] >= seq:
                    lags.append(time.monotonic() - t0)
                    if (device, seq) in broker_seen:
                        broker_lags.append(broker_seen[(device, seq)] - t0)
                    return
            except (ValueError, KeyError):
                pass
            await asyncio.sleep(0.02)
        missed += 1

    tasks = [asyncio.create_task(traffic(g)) for g in gates]
    handled0, wall0 = await _handled(http_port), time.monotonic()
    cpu0, gen0 = _proc_cpu_s(pid), time.process_time()
    probes = []
    while time.monotonic() - wall0 < args.seconds:
        probes.append(asyncio.create_task(probe()))
        await asyncio.sleep(0.25)
    await asyncio.gather(*probes)
    wall = time.monotonic() - wall0
    handled1 = await _handled(http_port)
    cpu1, gen1 = _proc_cpu_s(pid), time.process_time()
    stop.set()
    for task in tasks:
        task.cancel()
    rss = _proc_rss_mb(pid)
    for gate in gates:
        gate.client.close()
    watcher.close()
    p50 = _pct(lags, 0.5)
    broker_p50 = _pct(broker_lags, 0.5)
    return {
        "gates": args.gates,
        "sites": args.sites,
        "seconds": round(wall, 1),
        "connect_s": round(connect_s, 1),
        "handled_msgs_per_s": round((handled1 - handled0) / wall, 1),
        "probes": len(lags),
        "probes_missed": missed,
        "lag_p50_ms": round(p50 * 1000, 1),
        "lag_p90_ms": round(_pct(lags, 0.9) * 1000, 1),
        "lag_p99_ms": round(_pct(lags, 0.99) * 1000, 1),
        "lag_max_ms": round(max(lags, default=float("nan")) * 1000, 1),
        "broker_lag_p50_ms": round(broker_p50 * 1000, 1),
        "lag_ratio_p50": round(p50 / broker_p50, 1) if broker_p50 > 0 else None,
        "service_rss_mb": round(rss, 1),
        "service_cpu_pct": round(100 * (cpu1 - cpu0) / wall, 1),
        "generator_cpu_pct": round(100 * (gen1 - gen0) / wall, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; prints and returns its JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=1000)
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--scans-per-min", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    args.sites = max(1, min(args.sites, args.gates))
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    _raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        folder = Path(tmp)
        mq_port, http_port = free_port(), free_port()
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {mq_port} 127.0.0.1\nallow_anonymous true\n"
                        "persistence false\nmax_queued_messages 100000\n")
        (folder / "tokens").write_text(TOKEN + "\n")
        broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, preexec_fn=_raise_fd_limit)
        service = None
        try:
            wait_port(mq_port, 10)
            service = subprocess.Popen(
                [sys.executable, "-m", "kiosk", "fleet", "serve", "--broker",
                 f"mqtt://127.0.0.1:{mq_port}", "--listen", f"127.0.0.1:{http_port}",
                 "--database", f"sqlite:///{folder / 'fleet.sqlite'}",
                 "--token-file", str(folder / "tokens")],
                stdout=subprocess.DEVNULL, stderr=open(folder / "service.log", "wb"),  # noqa: SIM115
            )
            wait_port(http_port, 20)
            result = asyncio.run(_run(args, mq_port, http_port, service.pid))
        finally:
            if service is not None:
                service.terminate()
                service.wait(20)
            broker.terminate()
            broker.wait(10)
        # The service's own stall trace (slow batches/ticks), for explaining a spike.
        warnings = [line.split(": ", 1)[-1] for line in
                    (folder / "service.log").read_text(errors="replace").splitlines()
                    if " WARNING " in line or " ERROR " in line]
        result["service_warnings"] = len(warnings)
        result["service_warning_sample"] = warnings[:3]
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
