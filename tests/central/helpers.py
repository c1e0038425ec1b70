"""Helpers for fleet-service tests: a running service, HTTP calls, a raw gate publisher."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from kiosk.central.fleet.config import FleetConfig, load_fleet_config
from kiosk.central.fleet.service import FleetService, build_service
from kiosk.decision import Decision
from kiosk.telemetry.payloads import (
    CountsHeader,
    StatusInfo,
    counts_payload,
    decision_change,
    event_payload,
    status_payload,
    total_names,
)

TOKEN = "test-token-0123456789abcdef"


def wait_until(predicate: Callable[[], object], timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (OSError, KeyError, IndexError, TypeError):
            pass
        time.sleep(step)
    try:
        return bool(predicate())
    except (OSError, KeyError, IndexError, TypeError):
        return False


def fleet_config(tmp: Path, port: int, **overrides: Any) -> FleetConfig:
    """A config for a private broker, a SQLite file in ``tmp`` and any free HTTP port."""
    tokens = tmp / "tokens"
    tokens.write_text(f"# operators\n{TOKEN}\n")
    values: dict[str, Any] = {
        "mqtt.host": "127.0.0.1",
        "mqtt.port": port,
        "mqtt.client_id": f"fleet-{uuid.uuid4().hex[:8]}",
        "http.port": 0,
        "http.token_file": str(tokens),
        "http.sse_interval_s": 0.2,
        "store.url": f"sqlite:///{tmp / 'fleet.sqlite'}",
    }
    values.update(overrides)
    return load_fleet_config(None, values)


@contextmanager
def running(config: FleetConfig) -> Iterator[FleetService]:
    """The service, connected to its broker (waits up to 10 s)."""
    with build_service(config) as service:
        assert wait_until(lambda: service.consumer.connected, 10), "fleet did not connect"
        time.sleep(0.2)  # SUBACK
        yield service


def get(service: FleetService, path: str, token: str | None = TOKEN) -> tuple[int, bytes]:
    """``GET path`` with a Bearer token; returns (status, body)."""
    request = urllib.request.Request(service.url.rstrip("/") + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def api(service: FleetService, path: str) -> Any:
    """The JSON of an authorised ``GET``."""
    status, body = get(service, path)
    assert status == 200, (status, body[:200])
    return json.loads(body)


def gate_view(service: FleetService, site: str, gate: str) -> dict[str, Any] | None:
    """The API's view of one gate, or None while it is unknown."""
    status, body = get(service, f"/api/gates/{site}/{gate}")
    return json.loads(body) if status == 200 else None


class RawGate:
    """Publishes a gate's messages exactly as the contract says, with full control.

    For duplicates, replays, gaps and hostile input; counting and payloads come
    from the gate's own functions in :mod:`kiosk.telemetry.payloads`.
    """

    def __init__(self, host: str, port: int, site: str, gate: str, store: str | None = None):
        self.site, self.gate = site, gate
        self.root = f"kiosk/{site}/{gate}"
        self.store = store or uuid.uuid4().hex
        self.totals: dict[str, int] = {}
        self.sent: list[bytes] = []
        self.seq = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.will_set(f"{self.root}/availability", b"offline", qos=1, retain=True)
        self.client.connect(host, port, keepalive=5)
        self.client.loop_start()

    def publish(self, suffix: str, payload: bytes, retain: bool = False) -> None:
        """One QoS 1 message, waited for."""
        info = self.client.publish(f"{self.root}/{suffix}", payload, qos=1, retain=retain)
        info.wait_for_publish(5)

    def decide(self, decision: Decision, at: datetime, *, send: bool = True) -> bytes:
        """Count one decision and publish (or only build) its counts message."""
        self.seq += 1
        delta = dict.fromkeys(total_names(decision), 1)
        for name in delta:
            self.totals[name] = self.totals.get(name, 0) + 1
        payload = counts_payload(
            CountsHeader(f"{self.site}/{self.gate}", self.store, 1, self.seq, self.seq),
            at_first=at, at=at, bucket_s=60, change=decision_change(decision),
            delta=delta, totals=dict(self.totals),
        )
        self.sent.append(payload)
        if send:
            self.publish("counts", payload)
        return payload

    def status(self, at: datetime, **extra: Any) -> None:
        """A retained status carrying the current totals, store and seq."""
        info = StatusInfo(
            device_id=f"{self.site}/{self.gate}", version="0.1.0", uptime_s=1,
            totals=dict(self.totals), pending=extra.pop("pending", 0), published=0, acked=0,
            reconnects=0, last_error=None, day=at.date().isoformat(), today={},
            gate=extra, store_id=self.store, seq=self.seq, timezone="Asia/Jakarta",
        )
        self.publish("status", status_payload(info, at), retain=True)

    def command_outcome(self, event: str, at: datetime) -> None:
        """A command outcome event (``command.<action>`` or ``command_refused.<reason>``)."""
        self.publish("events", event_payload(
            device_id=f"{self.site}/{self.gate}", store_id=self.store, seq=max(self.seq, 1),
            at=at, event=event, kind="command"))

    def online(self) -> None:
        """Retained ``online``."""
        self.publish("availability", b"online", retain=True)

    def close(self) -> None:
        """Disconnect cleanly (no last will)."""
        self.client.disconnect()
        self.client.loop_stop()


def minutes_ago(n: int) -> datetime:
    """An aware UTC time ``n`` minutes before now."""
    from datetime import UTC

    return datetime.now(UTC) - timedelta(minutes=n)
