"""``/metrics`` in the Prometheus text exposition format (version 0.0.4).

Built from one snapshot and cached per snapshot version, so a scrape never
recomputes the fleet twice for the same state. Labels are few and of low
cardinality: ``site``, ``gate``, ``result``, ``reason``, ``kind``; names and
label values come from checked topics and counter names only.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping

from kiosk.central.fleet.state import Snapshot

_HELP = {
    "kiosk_fleet_gate_online": ("gauge", "1 if the gate is online (availability), else 0."),
    "kiosk_fleet_gate_trust_bundle_age_seconds": ("gauge", "Age of the gate's trust bundle."),
    "kiosk_fleet_gate_outbox_pending": ("gauge", "Reports queued on the gate, not yet acked."),
    "kiosk_fleet_gate_decisions_total": ("counter", "Decisions by result and reason."),
    "kiosk_fleet_gate_passages_total": ("counter", "Passages through the gate."),
    "kiosk_fleet_gate_tailgates_total": ("counter", "Tailgating events at the gate."),
    "kiosk_fleet_alarms_open": ("gauge", "Alarms raised and not cleared, by kind."),
    "kiosk_fleet_messages_total": ("counter", "Messages applied, by topic."),
    "kiosk_fleet_messages_rejected_total": ("counter", "Messages dropped, by reason."),
    "kiosk_fleet_duplicate_reports_total": ("counter", "Counts reports already seen (QoS 1)."),
    "kiosk_fleet_sequence_gaps_total": ("counter", "Gaps detected in gates' count sequences."),
    "kiosk_fleet_notifications_total": (
        "counter", "Alarm notifications by channel and outcome (sent, failed, dropped, retried)."
    ),
}


class MetricsCache:
    """Renders the exposition text at most once per snapshot version (thread-safe)."""

    def __init__(
        self, notifications: Callable[[], Mapping[tuple[str, str], int]] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._key: tuple[int, int, int] = (-1, -1, -1)
        self._text = ""
        self._notifications = notifications or dict

    def render(self, snap: Snapshot, rejected: Mapping[str, int]) -> str:
        """The text for this snapshot, the consumer's rejected and the notifier's counts."""
        sent = self._notifications()
        key = (snap.version, sum(rejected.values()), sum(sent.values()))
        with self._lock:
            if key != self._key:
                self._text, self._key = render(snap, rejected, sent), key
            return self._text


def render(
    snap: Snapshot,
    rejected: Mapping[str, int],
    notifications: Mapping[tuple[str, str], int] | None = None,
) -> str:
    """The exposition text (see module docstring)."""
    lines: dict[str, list[str]] = {name: [] for name in _HELP}

    def add(name: str, labels: Mapping[str, str], value: float) -> None:
        text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        lines[name].append(f"{name}{{{text}}} {value:g}" if text else f"{name} {value:g}")

    for (site, gate), view in sorted(snap.gates.items()):
        ids = {"site": site, "gate": gate}
        add("kiosk_fleet_gate_online", ids, 1 if view["online"] else 0)
        if view.get("bundle_age_s") is not None:
            add("kiosk_fleet_gate_trust_bundle_age_seconds", ids, view["bundle_age_s"])
        if view.get("outbox_pending") is not None:
            add("kiosk_fleet_gate_outbox_pending", ids, view["outbox_pending"])
        totals = view["totals"]
        add(
            "kiosk_fleet_gate_decisions_total",
            {**ids, "result": "allowed", "reason": "ok"},
            totals.get("allowed", 0),
        )
        for name, value in sorted(totals.items()):
            if name.startswith("denied."):
                labels = {**ids, "result": "denied", "reason": name.removeprefix("denied.")}
                add("kiosk_fleet_gate_decisions_total", labels, value)
        add("kiosk_fleet_gate_passages_total", ids, totals.get("passage", 0))
        add("kiosk_fleet_gate_tailgates_total", ids, totals.get("tailgate", 0))
    kinds = Counter(a["kind"] for a in snap.alarms)
    for kind, n in sorted(kinds.items()):
        add("kiosk_fleet_alarms_open", {"kind": kind}, n)
    for name, value in sorted(snap.counters.items()):
        if name.startswith("messages."):
            add("kiosk_fleet_messages_total", {"topic": name.removeprefix("messages.")}, value)
    for reason, value in sorted(rejected.items()):
        add("kiosk_fleet_messages_rejected_total", {"reason": reason}, value)
    add("kiosk_fleet_duplicate_reports_total", {}, snap.counters.get("duplicates", 0))
    add("kiosk_fleet_sequence_gaps_total", {}, snap.counters.get("gaps", 0))
    for (channel, outcome), value in sorted((notifications or {}).items()):
        add("kiosk_fleet_notifications_total", {"channel": channel, "outcome": outcome}, value)
    out = []
    for name, (kind, text) in _HELP.items():
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(lines[name])
    return "\n".join(out) + "\n"
