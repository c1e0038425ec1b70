"""Home Assistant MQTT discovery: the gate appears with its sensors, zero configuration.

Each entity is one retained config message on
``<prefix>/<component>/<node_id>/<object_id>/config`` (Home Assistant's discovery
topic layout), with ``node_id`` = ``kiosk_<site>_<gate>``. States come from the
gate's own retained topics, so nothing extra is published per scan:

* ``binary_sensor`` *online*: ``<root>/availability`` (connectivity).
* ``sensor`` *allowed today*, *denied today*: ``<root>/status`` → ``today`` (the
  gate's local calendar day, ``device.timezone``; reset at local midnight).
* ``sensor`` *allowed total*, *denied total*, *outbox pending*, *trust mode*,
  *gate mode*, *trust age*: ``<root>/status``.

All entities except *online* use ``<root>/availability`` as their availability,
so a gate that died shows "unavailable" rather than stale numbers.
"""

from __future__ import annotations

import re
from typing import Any

from kiosk.telemetry.payloads import OFFLINE, ONLINE, dumps

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def node_id(device_id: str) -> str:
    """``kiosk_<site>_<gate>`` with only the characters discovery topics allow."""
    return "kiosk_" + _UNSAFE.sub("_", device_id.replace("/", "_"))


def _null_safe(expr: str) -> str:
    # A null field (e.g. no trust bundle yet) must render as unknown, not "None".
    return f"{{{{ {expr} if {expr} is not none else 'unknown' }}}}"


# object_id: (component, name, status expression or None for availability, extras)
_ENTITIES: dict[str, tuple[str, str, str | None, dict[str, Any]]] = {
    "online": ("binary_sensor", "Online", None, {"device_class": "connectivity"}),
    "allowed_today": (
        "sensor",
        "Allowed today",
        "value_json.today.allowed",
        {"state_class": "total_increasing", "icon": "mdi:account-check"},
    ),
    "denied_today": (
        "sensor",
        "Denied today",
        "value_json.today.denied",
        {"state_class": "total_increasing", "icon": "mdi:account-cancel"},
    ),
    "allowed_total": (
        "sensor",
        "Allowed total",
        "value_json.totals.allowed",
        {"state_class": "total_increasing", "entity_category": "diagnostic"},
    ),
    "denied_total": (
        "sensor",
        "Denied total",
        "value_json.totals.denied",
        {"state_class": "total_increasing", "entity_category": "diagnostic"},
    ),
    "mode": ("sensor", "Trust mode", "value_json.mode", {"icon": "mdi:certificate"}),
    "gate_mode": ("sensor", "Gate mode", "value_json.gate_mode", {"icon": "mdi:gate"}),
    "trust_age": (
        "sensor",
        "Trust bundle age",
        "value_json.bundle_age_s",
        {"device_class": "duration", "unit_of_measurement": "s", "entity_category": "diagnostic"},
    ),
    "outbox_pending": (
        "sensor",
        "Reports queued",
        "value_json.outbox.pending",
        {"state_class": "measurement", "entity_category": "diagnostic"},
    ),
}


def discovery_messages(
    *, prefix: str, device_id: str, root: str, version: str
) -> list[tuple[str, bytes]]:
    """(topic, payload) of every discovery config, to publish retained at QoS 1."""
    node = node_id(device_id)
    site, _, gate = device_id.partition("/")
    availability_topic = f"{root}/availability"
    device = {
        "identifiers": [node],
        "name": f"Gate {gate} ({site})",
        "manufacturer": "kiosk",
        "model": "entry gate scanner",
        "sw_version": version,
    }
    out: list[tuple[str, bytes]] = []
    for object_id, (component, name, expr, extras) in _ENTITIES.items():
        config: dict[str, Any] = {
            "name": name,
            "unique_id": f"{node}_{object_id}",
            "object_id": f"{node}_{object_id}",
            "device": device,
            "origin": {"name": "kiosk", "sw_version": version},
            **extras,
        }
        if expr is None:
            config["state_topic"] = availability_topic
            config["payload_on"] = ONLINE.decode()
            config["payload_off"] = OFFLINE.decode()
        else:
            config["state_topic"] = f"{root}/status"
            config["value_template"] = _null_safe(expr)
            config["availability_topic"] = availability_topic
            config["payload_available"] = ONLINE.decode()
            config["payload_not_available"] = OFFLINE.decode()
        out.append((f"{prefix}/{component}/{node}/{object_id}/config", dumps(config)))
    return out
