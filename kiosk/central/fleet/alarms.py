"""Alarm rules: pure functions of one gate's state, the time and the configuration.

An alarm is raised when its condition holds and cleared when it no longer does
(:class:`AlarmBook` records both times). Conditions that flap are debounced by
the rule itself: offline only after ``offline_after_s``, a gap only after
``gap_grace_s`` (a late re-send fills it), a backlog only after it kept growing
for ``backlog_growing_s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kiosk.central.fleet.config import FleetAlarmConfig

KINDS = (
    "offline", "trust", "trust_soon", "behind", "clock", "emergency", "fault", "tailgate",
    "backlog", "gap",
)
LABELS = {
    "offline": ("Gerbang offline", "Gate offline"),
    "trust": ("Data kepercayaan kedaluwarsa", "Trust data stale"),
    "trust_soon": ("Data kepercayaan segera kedaluwarsa", "Trust data goes stale soon"),
    "behind": ("Versi data tertinggal", "Behind the newest trust data"),
    "clock": ("Jam tidak sinkron", "Clock not synchronised"),
    "emergency": ("Darurat", "Emergency"),
    "fault": ("Gangguan pemindai/palang", "Scanner or arm fault"),
    "tailgate": ("Penerobosan tinggi", "Tailgating above rate"),
    "backlog": ("Antrean laporan bertambah", "Outbox backlog growing"),
    "gap": ("Celah urutan hitungan", "Gap in count sequence"),
}
"""Bilingual labels (Bahasa Indonesia, English) of each alarm kind."""


@dataclass
class Watch:
    """What the rules remember about a gate between evaluations (owned by the store owner)."""

    offline_since: float | None = None  # when "offline" arrived (set by the store owner)
    behind_since: float | None = None  # when the gate was first seen behind the newest bundle
    backlog_since: float | None = None
    backlog_last: int = 0
    # (store, first missing seq, last missing seq, when seen)
    gaps: list[tuple[str, int, int, float]] = field(default_factory=list)

    def note_pending(self, pending: int, now: float, minimum: int) -> None:
        """Track whether the outbox keeps growing above ``minimum``."""
        if pending <= minimum or pending < self.backlog_last:
            self.backlog_since = None
        elif self.backlog_since is None:
            self.backlog_since = now
        self.backlog_last = pending


def conditions(
    view: dict[str, Any], watch: Watch, now: float, cfg: FleetAlarmConfig, tailgates_hour: int
) -> dict[str, str]:
    """The alarm kinds whose condition holds now, with a short detail code each."""
    out: dict[str, str] = {}
    silent_since = view["last_seen_s"] + cfg.silent_after_s
    if view["online"] is False:
        if watch.offline_since is None:  # offline before this service started
            watch.offline_since = now
        if now - watch.offline_since >= cfg.offline_after_s:
            out["offline"] = "last will"
    elif now >= silent_since and now - silent_since >= cfg.offline_after_s:
        out["offline"] = "silent"
    if view.get("mode") in ("stale", "expired"):
        out["trust"] = str(view["mode"])
    elif view.get("stale_at") is not None and view["stale_at"] - now <= cfg.trust_warn_s:
        out["trust_soon"] = f"stale in {max(0, int(view['stale_at'] - now)) // 3600} h"
    if view.get("behind") and watch.behind_since is None:
        watch.behind_since = now
    if view.get("behind") and watch.behind_since is not None \
            and now - watch.behind_since >= cfg.behind_after_s:
        error = view.get("dist_error") or view.get("pull_error")
        out["behind"] = f"v{view['bundle_version']} of v{view['behind']}" + (
            f" ({error})" if error else "")
    if view.get("clock_state") == "unsynchronised":
        out["clock"] = "unsynchronised"
    if view.get("gate_mode") == "emergency":
        out["emergency"] = "emergency"
    if view.get("gate_mode") == "fault" or view.get("last_error"):
        out["fault"] = str(view.get("last_error") or "fault")
    if tailgates_hour > cfg.tailgate_per_hour:
        out["tailgate"] = f"{tailgates_hour} this hour"
    if watch.backlog_since is not None and now - watch.backlog_since >= cfg.backlog_growing_s:
        out["backlog"] = f"{watch.backlog_last} pending"
    old = [g for g in watch.gaps if now - g[3] >= cfg.gap_grace_s]
    if old:
        missing = sum(last - first + 1 for _, first, last, _ in old)
        out["gap"] = f"{missing} changes missing"
    return out


@dataclass
class OpenAlarm:
    """An alarm that is raised and not yet cleared."""

    id: int
    site: str
    gate: str
    kind: str
    detail: str
    raised: int


@dataclass(frozen=True)
class AlarmChange:
    """One alarm raised or cleared, as the store owner committed it (for notifications).

    ``at`` is UNIX seconds of the change; alarms carry codes, never personal data.
    """

    event: str  # "raised" or "cleared"
    alarm: OpenAlarm
    at: int


def alarm_json(alarm: OpenAlarm | tuple[Any, ...]) -> dict[str, Any]:
    """The API form of an open alarm or of an alarm row.

    A row is ``(id, site, gate, kind, detail, raised, cleared)``.
    """
    from kiosk.central.fleet.timefmt import iso

    if isinstance(alarm, OpenAlarm):
        row: tuple[Any, ...] = (
            alarm.id,
            alarm.site,
            alarm.gate,
            alarm.kind,
            alarm.detail,
            alarm.raised,
            None,
        )
    else:
        row = alarm
    label_id, label_en = LABELS.get(row[3], (row[3], row[3]))
    return {
        "id": row[0],
        "site": row[1],
        "gate": row[2],
        "kind": row[3],
        "detail": row[4],
        "label_id": label_id,
        "label_en": label_en,
        "raised": iso(row[5]),
        "cleared": None if row[6] is None else iso(row[6]),
    }


def command_json(row: tuple[str, str, int, str]) -> dict[str, Any]:
    """The API form of a command outcome row ``(site, gate, ts_ms, event)``.

    ``event`` is the gate's counter: ``command.<action>`` (carried out),
    ``command.<action>.not_possible`` or ``command_refused.<reason>``.
    """
    from kiosk.central.fleet.timefmt import iso

    site, gate, ts_ms, event = row
    head, _, rest = event.partition(".")
    if head == "command_refused":
        action, outcome = None, f"refused: {rest}"
    else:
        action, _, tail = rest.partition(".")
        outcome = tail or "ok"
    return {"site": site, "gate": gate, "at": iso(ts_ms / 1000), "event": event,
            "action": action.replace("_", "-") if action else None, "outcome": outcome}
