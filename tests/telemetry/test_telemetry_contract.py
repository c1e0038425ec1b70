"""The topic contract: real published payloads validated against docs/asyncapi.yaml.

Also: no personal data on any topic or in the logs, Home Assistant discovery and
its untrusted birth message, and the status fields from the status provider.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as mqtt
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from kiosk.config.schema import MqttConfig
from kiosk.decision import Decision, InputKind, Reason
from kiosk.telemetry import CountStore, MqttPublisher
from tests.conftest import REPO_ROOT, Mosquitto

from .helpers import Recorder, at, wait_until

DEVICE = "site-a/gate-01"
DOC_URI = "urn:kiosk:asyncapi"
# What a careless implementation could leak: a name, a NIK, a birth date, a payload.
PERSONAL = ("BUDI", "SANTOSO", "B***", "3171234567890001", "1990-01-31", "HC1:")


def asyncapi() -> dict[str, Any]:
    # The document is JSON-formatted YAML (YAML 1.2 is a superset of JSON), so the
    # tests need no YAML library.
    return dict(json.loads((REPO_ROOT / "docs" / "asyncapi.yaml").read_text()))


def validator(doc: dict[str, Any], message: str) -> jsonschema.Draft7Validator:
    registry: Registry[Any] = Registry().with_resource(
        DOC_URI, Resource.from_contents(doc, default_specification=DRAFT7)
    )
    ref = doc["components"]["messages"][message]["payload"]["$ref"]
    return jsonschema.Draft7Validator({"$ref": DOC_URI + ref}, registry=registry)


def schema_for(topic: str, root: str) -> str | None:
    if topic.startswith("homeassistant/") and topic.endswith("/config"):
        return "haConfig"
    return {
        f"{root}/availability": "availability",
        f"{root}/status": "status",
        f"{root}/counts": "counts",
        f"{root}/events": "event",
    }.get(topic)


def gate_status() -> dict[str, Any]:
    return {
        "mode": "fresh",
        "bundle_version": 7,
        "bundle_age_s": 3600.25,
        "clock_state": "synchronised",
        "camera_fps": 14.9,
        "decoder": "zxing",
        "last_error": None,
        "store_unsaved": 0,
        "holder": "BUDI SANTOSO",  # not a status field: must be dropped
    }


def personal_decisions() -> list[Decision]:
    detail = "holder BUDI SANTOSO born 1990-01-31 NIK 3171234567890001 HC1:NCFOXN"
    return [
        Decision(allowed=True, reason=Reason.OK, holder_masked="B*** S******", detail=detail),
        Decision.deny(Reason.EXPIRED, detail),
        Decision.deny(Reason.NIK_NOT_LISTED, detail, input=InputKind.NIK),
    ]


@pytest.fixture
def private_broker(mosquitto_factory: type[Mosquitto], tmp_path: Path) -> Iterator[Mosquitto]:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    yield broker
    broker.stop()  # explicitly: the factory's own clean-up does not reach every broker


def test_published_payloads_match_the_asyncapi_contract_and_carry_no_personal_data(
    private_broker: Mosquitto, root: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    doc = asyncapi()
    rec = Recorder("127.0.0.1", private_broker.port, "#")
    rec.wait_subscribed()
    db = tmp_path / "counts.sqlite"
    cfg = MqttConfig(host="127.0.0.1", port=private_broker.port, keepalive_s=5)
    with CountStore(db, DEVICE) as store:
        pub = MqttPublisher(
            cfg, root, DEVICE, db, status_provider=gate_status, status_min_interval_s=0.1
        )
        try:
            pub.start()
            for i, d in enumerate(personal_decisions()):
                store.record(d, at(i))
            for j, event in enumerate(("passage", "tailgate", "emergency_clear", "fault.arm")):
                store.record_event(event, at(10 + j))
            pub.notify()
            assert pub.drain(10.0)
            # Refusal events (kind "refused") come from the process-wide refusal counter,
            # which earlier tests in the same run may have fed: count the outbox's events.
            assert wait_until(lambda: len([
                m for m in rec.on(f"{root}/events")
                if json.loads(m.payload).get("kind") != "refused"
            ]) == 3, 15.0)
            assert wait_until(lambda: len(rec.on(f"{root}/counts")) == 7, 5.0)
        finally:
            pub.stop(5.0)
    assert wait_until(lambda: rec.on(f"{root}/availability")[-1].payload == b"offline", 5.0)
    rec.close()

    seen: dict[str, int] = {}
    for m in rec.messages:
        name = schema_for(m.topic, root)
        assert name is not None, f"unexpected topic {m.topic}"
        payload: Any = m.payload.decode()
        if name not in ("availability",):
            payload = json.loads(payload)
        if name == "event" and payload.get("kind") == "refused":
            name = "refusedEvent"  # the events channel's other message (oneOf)
        errors = list(validator(doc, name).iter_errors(payload))
        assert not errors, f"{m.topic}: {[e.message for e in errors]}"
        seen[name] = seen.get(name, 0) + 1
        for word in PERSONAL:
            assert word.encode() not in m.payload, f"{word} leaked on {m.topic}"
    assert set(seen) - {"refusedEvent"} == {"availability", "status", "counts", "event", "haConfig"}
    for word in PERSONAL:
        assert word not in caplog.text, f"{word} leaked into the log"

    status = json.loads(rec.on(f"{root}/status")[-1].payload)
    assert status["mode"] == "fresh" and status["bundle_version"] == 7
    assert status["camera_fps"] == 14.9 and "holder" not in status
    kinds = [json.loads(m.payload)["kind"] for m in rec.on(f"{root}/events")]
    assert [k for k in kinds if k != "refused"] == ["alarm", "clear", "fault"]


def test_status_fields_degrade_to_null_when_the_provider_fails(
    private_broker: Mosquitto, root: str, tmp_path: Path
) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("camera gone")

    rec = Recorder("127.0.0.1", private_broker.port, f"{root}/status")
    rec.wait_subscribed()
    db = tmp_path / "counts.sqlite"
    CountStore(db, DEVICE).close()
    cfg = MqttConfig(host="127.0.0.1", port=private_broker.port, keepalive_s=5, discovery=False)
    pub = MqttPublisher(cfg, root, DEVICE, db, status_provider=broken)
    try:
        pub.start()
        assert wait_until(lambda: rec.on(f"{root}/status"), 5.0)
    finally:
        pub.stop(5.0)
        rec.close()
    body = json.loads(rec.on(f"{root}/status")[0].payload)
    assert body["mode"] is None and body["decoder"] is None and body["last_error"] is None
    assert not list(validator(asyncapi(), "status").iter_errors(body))


def test_home_assistant_discovery_and_untrusted_birth_messages(
    private_broker: Mosquitto, root: str, tmp_path: Path
) -> None:
    prefix = f"ha{uuid.uuid4().hex[:6]}"
    rec = Recorder("127.0.0.1", private_broker.port, f"{prefix}/#")
    rec.wait_subscribed()
    db = tmp_path / "counts.sqlite"
    CountStore(db, DEVICE).close()
    cfg = MqttConfig(
        host="127.0.0.1", port=private_broker.port, keepalive_s=5, discovery_prefix=prefix
    )
    configs = lambda: [m for m in rec.on_prefix(prefix) if m.topic.endswith("/config")]  # noqa: E731
    ha = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"ha-{uuid.uuid4().hex[:6]}")
    ha.connect("127.0.0.1", private_broker.port)
    ha.loop_start()
    pub = MqttPublisher(cfg, root, DEVICE, db)
    try:
        pub.start()
        assert wait_until(lambda: len(configs()) == 9, 5.0)
        topics = {m.topic for m in configs()}
        assert f"{prefix}/binary_sensor/kiosk_site-a_gate-01/online/config" in topics
        assert f"{prefix}/sensor/kiosk_site-a_gate-01/allowed_today/config" in topics
        late = Recorder("127.0.0.1", private_broker.port, f"{prefix}/+/+/+/config")
        late.wait_subscribed()
        assert wait_until(lambda: len(late.messages) == 9, 5.0)  # retained for newcomers
        assert all(m.retain for m in late.messages)
        late.close()
        # Garbage, oversize or other text on the birth topic changes nothing ...
        for junk in (b"", b"offline", b"ONLINE!", b"online" * 10, b"\xff\xfe", b'{"a":1}'):
            ha.publish(f"{prefix}/status", junk, qos=1).wait_for_publish(2)
        # ... while "online" (Home Assistant restarted) re-announces every entity.
        ha.publish(f"{prefix}/status", b"online", qos=1).wait_for_publish(2)
        assert wait_until(lambda: len(configs()) == 18, 5.0)
        assert len(configs()) == 18
        allowed_today = json.loads(
            next(m.payload for m in configs() if m.topic.endswith("allowed_today/config"))
        )
        assert allowed_today["state_topic"] == f"{root}/status"
        assert allowed_today["availability_topic"] == f"{root}/availability"
    finally:
        pub.stop(5.0)
        ha.loop_stop()
        ha.disconnect()
        rec.close()
