"""The fleet state and its single owner: every write to it and to the database.

Only the store-owner thread (``kiosk-fleet-store``, see
:mod:`kiosk.central.fleet.consumer`) calls :meth:`FleetState.apply` and
:meth:`FleetState.tick`. HTTP threads read :meth:`FleetState.snapshot`, an
immutable picture swapped in after each batch, and wait for the next one with
:meth:`FleetState.wait` (server-sent events).

Totals: a gate's totals are those of its current count store with the highest
``seq`` seen, from ``counts`` or from the retained ``status`` (which carries
``store`` and ``seq``), so a retained status never replaces newer totals.
Hourly and "today" series add each report's ``delta`` exactly once (the
database decides what is new, :mod:`kiosk.central.fleet.store`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kiosk.central.fleet import store
from kiosk.central.fleet.alarms import (
    AlarmChange,
    OpenAlarm,
    Watch,
    alarm_json,
    command_json,
    conditions,
)
from kiosk.central.fleet.config import FleetConfig
from kiosk.central.fleet.db import Database
from kiosk.central.fleet.messages import (
    Availability,
    Counts,
    Diagnostics,
    Event,
    Message,
    Status,
)
from kiosk.central.fleet.timefmt import iso, local_day, zone

log = logging.getLogger(__name__)

Key = tuple[str, str]
SHARED_SYNC_S = 2.0
SWEEP_S = 5.0
"""With a shared subscription, how often totals, today and gaps are re-read from the database."""
RECENT_COMMANDS = 50
"""Command outcomes the page shows (all are in the database: ``/api/commands``)."""


@dataclass
class GateState:
    """Everything known about one gate (store-owner thread only)."""

    site: str
    gate: str
    online: bool | None = None
    last_seen: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)
    store: str | None = None
    seq: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    totals_ts: float = 0.0
    status_ts: float = 0.0  # the gate's own time of its last status (stale_in counts from it)
    timezone: str | None = None
    today_date: str = ""
    today_end: int = 0
    today: Counter[str] = field(default_factory=Counter)
    hour: int = 0
    this_hour: Counter[str] = field(default_factory=Counter)
    watch: Watch = field(default_factory=Watch)
    events: deque[tuple[str, str, str]] = field(default_factory=lambda: deque(maxlen=10))
    diagnostics: dict[str, Any] | None = None  # the latest report, as the API shows it

    def take_totals(
        self, store_id: str | None, seq: int, totals: dict[str, int], ts: float
    ) -> bool:
        """Adopt these totals if they are newer than the ones held; True if adopted."""
        if store_id is None:  # a status from firmware without store/seq
            if self.store is not None or self.seq:
                return False
        elif store_id == self.store:
            if seq < self.seq:
                return False
        elif self.store is not None and ts <= self.totals_ts:
            return False  # an older count database than the one already followed
        self.store, self.seq, self.totals, self.totals_ts = store_id, seq, totals, ts
        return True


@dataclass(frozen=True)
class Snapshot:
    """An immutable picture of the fleet for readers (``gates`` keyed ``(site, gate)``)."""

    version: int
    at: float
    gates: MappingProxyType[Key, dict[str, Any]]
    changed: MappingProxyType[Key, int]
    alarms: tuple[dict[str, Any], ...]
    counters: MappingProxyType[str, int]
    commands: tuple[dict[str, Any], ...] = ()  # newest first
    newest_bundle: int = 0  # the newest bundle version any gate reports


class FleetState:
    """The fleet, its database and its alarms; owned by one thread.

    Args:
        db: where facts are kept (schema created here).
        cfg: the service configuration (alarm thresholds, retention).
        clock: UNIX seconds (tests pass a fake).
        on_alarm: told of each committed raise and clear (must not block: notifications).
    """

    def __init__(
        self,
        db: Database,
        cfg: FleetConfig,
        clock: Callable[[], float] = time.time,
        on_alarm: Callable[[AlarmChange], None] | None = None,
    ):
        self._on_alarm = on_alarm
        self._db = db
        self._cfg = cfg
        self._clock = clock
        db.create_schema()
        self._conn = db.connect()
        self._gates: dict[Key, GateState] = {}
        self._stream_max: dict[tuple[str, str, str], int] = {}
        self._open: dict[tuple[str, str, str], OpenAlarm] = {}
        self._views: dict[Key, dict[str, Any]] = {}
        self._changed: dict[Key, int] = {}
        self._version = 0
        self.counters: Counter[str] = Counter()
        self._cond = threading.Condition()
        self._snapshot = Snapshot(
            0, 0.0, MappingProxyType({}), MappingProxyType({}), (), MappingProxyType({})
        )
        self._last_prune = 0.0
        self._last_sync = 0.0
        self._zone_changed: set[Key] = set()
        self._touched: set[Key] = set()
        self._last_sweep = 0.0
        self._newest_bundle = 0
        self._newest_moved = False
        self._commands: deque[dict[str, Any]] = deque(maxlen=RECENT_COMMANDS)
        self._load()

    # ------------------------------------------------------------------ readers

    def snapshot(self) -> Snapshot:
        """The newest picture (any thread)."""
        return self._snapshot

    def wait(self, version: int, timeout: float) -> Snapshot:
        """The first picture newer than ``version``, or the current one after ``timeout`` s."""
        with self._cond:
            self._cond.wait_for(lambda: self._snapshot.version > version, timeout)
            return self._snapshot

    # ------------------------------------------------------------ owner thread

    def count(self, name: str, n: int = 1) -> None:
        """Add to a service counter (``/metrics``); owner thread."""
        self.counters[name] += n

    def apply(self, batch: Iterable[Message]) -> None:
        """Apply a batch of checked messages in one transaction, then publish a snapshot.

        Database rows are touched in phases (report ids, hourly, streams, gates),
        each in key order, so instances sharing one PostgreSQL never deadlock.
        """
        now = self._clock()
        messages = list(batch)
        dirty: set[Key] = set()
        with self._conn.transaction() as conn:
            counts = sorted(
                {(m.site, m.gate, m.store, m.seq_first): m for m in messages
                 if isinstance(m, Counts)}.items()
            )
            new = {key for key, msg in counts if store.record_report(conn, msg, int(now))}
            hourly: Counter[tuple[str, str, int, str]] = Counter()
            streams: dict[tuple[str, str, str], Counts] = {}
            for msg in messages:
                gate = self._gate(msg.site, msg.gate)
                gate.last_seen = now
                dirty.add((msg.site, msg.gate))
                if isinstance(msg, Availability):
                    self.count("messages.availability")
                    if not msg.online and gate.online is not False:
                        gate.watch.offline_since = now
                    elif msg.online:
                        gate.watch.offline_since = None
                    gate.online = msg.online
                elif isinstance(msg, Status):
                    self.count("messages.status")
                    self._apply_status(gate, msg, now)
                elif isinstance(msg, Counts):
                    self.count("messages.counts")
                    key = (msg.site, msg.gate, msg.store, msg.seq_first)
                    if key not in new:
                        self.count("duplicates")
                        gate.take_totals(msg.store, msg.seq, msg.totals, msg.ts.timestamp())
                        continue
                    new.discard(key)  # a second copy in this batch is a duplicate
                    self._apply_counts(gate, msg, now)
                    hour = store.hour_of(msg)
                    for name, value in msg.delta.items():
                        hourly[(msg.site, msg.gate, hour, name)] += value
                    best = streams.get((msg.site, msg.gate, msg.store))
                    if best is None or msg.seq > best.seq:
                        streams[(msg.site, msg.gate, msg.store)] = msg
                elif isinstance(msg, Event):
                    self.count("messages.events")
                    entry = (iso(msg.ts.timestamp()), msg.event, msg.kind)
                    if entry not in gate.events:
                        gate.events.append(entry)
                    if msg.kind == "command":
                        self._note_command(conn, msg)
                elif isinstance(msg, Diagnostics):
                    self.count("messages.diagnostics")
                    gate.diagnostics = {
                        "at": iso(msg.ts.timestamp()),
                        "result": msg.result,
                        "checks": {k: {"status": v, "detail": d} for k, (v, d) in
                                   sorted(msg.checks.items())},
                    }
            store.add_hourly(conn, hourly)
            for _, msg in sorted(streams.items()):
                store.advance_stream(conn, msg)
            for gate_key in sorted(self._zone_changed):
                # Read back with this batch's hourly rows (same transaction): another day.
                self._load_today(self._gates[gate_key], now)
            self._zone_changed.clear()
            for gate_key in sorted(dirty):
                store.save_gate(conn, self._gate_row(self._gates[gate_key]))
        if self._note_newest():
            dirty.update(self._gates)  # every gate's "behind" is measured against it
        self._refresh(dirty)

    def tick(self) -> None:
        """Evaluate alarms, roll days and hours over, prune old report ids (about 1/s)."""
        now = self._clock()
        dirty: set[Key] = set()
        raised: list[tuple[tuple[str, str, str], str]] = []
        cleared: list[tuple[str, str, str]] = []
        hour = int(now) // store.HOUR * store.HOUR
        # Gates that sent something are checked every tick; all of them (silence,
        # debounce timers, day and hour roll-over) every SWEEP_S: a 10,000-gate
        # sweep every second would take the owner thread from the messages.
        if now - self._last_sweep >= SWEEP_S:
            self._last_sweep = now
            keys: Iterable[Key] = list(self._gates)
        else:
            keys = [k for k in self._touched if k in self._gates]
        self._touched.clear()
        for key in keys:
            gate = self._gates[key]
            if now >= gate.today_end:
                self._load_today(gate, now)
                dirty.add(key)
            if gate.hour != hour:
                gate.hour, gate.this_hour = hour, Counter()
            view = self._views.get(key) or self._view(gate)
            found = conditions(view, gate.watch, now, self._cfg.alarms, gate.this_hour["tailgate"])
            for kind in found:
                if (gate.site, gate.gate, kind) not in self._open:
                    raised.append(((gate.site, gate.gate, kind), found[kind]))
            for open_key in [k for k in self._open if k[:2] == key and k[2] not in found]:
                cleared.append(open_key)
        if raised or cleared:
            changes: list[AlarmChange] = []
            with self._conn.transaction() as conn:
                for akey, detail in raised:
                    alarm_id = store.raise_alarm(conn, *akey, detail, int(now))
                    self._open[akey] = OpenAlarm(alarm_id, *akey, detail, int(now))
                    changes.append(AlarmChange("raised", self._open[akey], int(now)))
                    log.info("alarm raised: %s/%s %s (%s)", akey[0], akey[1], akey[2], detail)
                for akey in cleared:
                    gone = self._open.pop(akey)
                    store.clear_alarm(conn, gone.id, int(now))
                    changes.append(AlarmChange("cleared", gone, int(now)))
                    log.info("alarm cleared: %s/%s %s", *akey)
            if self._on_alarm is not None:
                for change in changes:
                    self._on_alarm(change)
            dirty.update(a[:2] for a, _ in raised)
            dirty.update(a[:2] for a in cleared)
            self.count("alarms.raised", len(raised))
        if self._cfg.mqtt.shared_group and now - self._last_sync >= SHARED_SYNC_S:
            self._last_sync = now
            dirty.update(self._sync_shared(now))
        if now - self._last_prune > 3600:
            self._last_prune = now
            with self._conn.transaction() as conn:
                store.prune_reports(conn, self._cfg.store.dedup_days, now)
        self._refresh(dirty, force=bool(raised or cleared))

    def reload(self) -> None:
        """Forget the in-memory state and read it again from the database.

        After a failed batch (rolled back) memory may hold changes the database
        does not; reading back what was committed keeps the two equal.
        """
        self._gates.clear()
        self._stream_max.clear()
        self._open.clear()
        self._views.clear()
        self._zone_changed.clear()
        self._commands.clear()
        try:
            self._conn.close()
            self._conn = self._db.connect()
            self._load()
        except Exception:  # database still down: the next batch retries
            log.exception("fleet state reload failed")

    def close(self) -> None:
        """Close the owner's connection."""
        self._conn.close()

    # ------------------------------------------------------------------ internals

    def _gate(self, site: str, gate_name: str) -> GateState:
        key = (site, gate_name)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = GateState(site, gate_name)
            self._load_today(gate, self._clock())
        return gate

    def _note_command(self, conn: Any, msg: Event) -> None:
        ts_ms = int(msg.ts.timestamp() * 1000)
        store.record_command(conn, msg.site, msg.gate, ts_ms, msg.event)
        entry = command_json((msg.site, msg.gate, ts_ms, msg.event))
        if entry not in self._commands:
            self._commands.appendleft(entry)

    def _note_newest(self) -> bool:
        """Whether the fleet's newest bundle version moved since the last call."""
        moved, self._newest_moved = self._newest_moved, False
        return moved

    def _apply_status(self, gate: GateState, msg: Status, now: float) -> None:
        gate.fields = msg.fields
        gate.status_ts = msg.ts.timestamp()
        version = msg.fields.get("bundle_version")
        if type(version) is int and version > self._newest_bundle:
            self._newest_bundle, self._newest_moved = version, True
        if type(version) is not int or version >= self._newest_bundle:
            gate.watch.behind_since = None  # caught up (the alarm rule sets it when behind)
        if msg.timezone and msg.timezone != gate.timezone:
            gate.timezone = msg.timezone
            self._zone_changed.add((gate.site, gate.gate))  # today re-read after the batch
        gate.take_totals(msg.store, msg.seq or 0, msg.totals, msg.ts.timestamp())
        gate.watch.note_pending(
            int(msg.fields.get("outbox_pending") or 0), now, self._cfg.alarms.backlog_min
        )

    def _apply_counts(self, gate: GateState, msg: Counts, now: float) -> None:
        """Memory effects of a new (not duplicate) report."""
        gate.take_totals(msg.store, msg.seq, msg.totals, msg.ts.timestamp())
        self._track_gaps(gate, msg, now)
        if gate.today_end - 86400 - 7200 <= msg.bucket_start < gate.today_end:
            day = local_day(msg.bucket_start, zone(gate.timezone))[0]
            if day == gate.today_date:
                gate.today.update(msg.delta)
        if store.hour_of(msg) == gate.hour:
            gate.this_hour.update(msg.delta)

    def _track_gaps(self, gate: GateState, msg: Counts, now: float) -> None:
        key = (gate.site, gate.gate, msg.store)
        top = self._stream_max.get(key)
        if top is None or msg.seq_first == top + 1:
            self._stream_max[key] = max(msg.seq, top or 0)
            return
        if msg.seq_first > top + 1:
            gate.watch.gaps.append((msg.store, top + 1, msg.seq_first - 1, now))
            self.count("gaps")
            self._stream_max[key] = msg.seq
            return
        kept = []
        for store_id, first, last, since in gate.watch.gaps:
            if store_id != msg.store or msg.seq < first or msg.seq_first > last:
                kept.append((store_id, first, last, since))
                continue
            if first < msg.seq_first:
                kept.append((store_id, first, msg.seq_first - 1, since))
            if msg.seq < last:
                kept.append((store_id, msg.seq + 1, last, since))
        gate.watch.gaps = kept

    def _sync_shared(self, now: float) -> set[Key]:
        """Adopt what other instances wrote: they receive the counts this one does not.

        Each instance sees only its share of ``counts`` on a shared subscription,
        but all of them write the one database, so totals, today and gaps are
        read back from it (status and availability reach every instance).
        """
        changed: set[Key] = set()
        for row in store.load_streams(self._conn):
            key = (row.site, row.gate)
            gate = self._gates.get(key) or self._gate(row.site, row.gate)
            self._stream_max[(row.site, row.gate, row.store)] = max(
                row.seq, self._stream_max.get((row.site, row.gate, row.store), 0))
            if gate.take_totals(row.store, row.seq, row.totals, float(row.ts)):
                changed.add(key)
        windows: dict[tuple[int, int], list[GateState]] = {}
        for gate in self._gates.values():
            _, start, end = local_day(now, zone(gate.timezone))
            windows.setdefault((start, end), []).append(gate)
        for (start, end), members in windows.items():
            sums: dict[Key, Counter[str]] = {}
            for site, name, _, counter, value in store.hourly(
                self._conn, site=None, gate=None, start=start, end=end
            ):
                sums.setdefault((site, name), Counter())[counter] += value
            for gate in members:
                today = sums.get((gate.site, gate.gate), Counter())
                if today != gate.today:
                    gate.today = today
                    changed.add((gate.site, gate.gate))
        found: dict[Key, list[tuple[str, int, int]]] = {}
        for site, name, store_id, first, last in store.gaps(self._conn):
            found.setdefault((site, name), []).append((store_id, first, last))
        for key, gate in self._gates.items():
            since = {(g[0], g[1], g[2]): g[3] for g in gate.watch.gaps}
            fresh = [(s, a, b, since.get((s, a, b), now)) for s, a, b in found.get(key, [])]
            if fresh != gate.watch.gaps:
                gate.watch.gaps = fresh
                changed.add(key)
        return changed

    def _load_today(self, gate: GateState, now: float) -> None:
        day, start, end = local_day(now, zone(gate.timezone))
        gate.today_date, gate.today_end = day, end
        gate.today = Counter(store.today_from_hourly(self._conn, gate.site, gate.gate, start, end))
        hour = int(now) // store.HOUR * store.HOUR
        gate.hour = hour
        gate.this_hour = Counter(
            store.today_from_hourly(self._conn, gate.site, gate.gate, hour, hour + store.HOUR)
        )

    def _gate_row(self, gate: GateState) -> tuple[Any, ...]:
        blob = {
            "fields": gate.fields,
            "seq": gate.seq,
            "totals": gate.totals,
            "totals_ts": gate.totals_ts,
            "status_ts": gate.status_ts,
            "diagnostics": gate.diagnostics,
        }
        online = -1 if gate.online is None else int(gate.online)
        return (
            gate.site,
            gate.gate,
            online,
            int(gate.last_seen * 1000),
            gate.store,
            json.dumps(blob),
            gate.timezone,
        )

    def _load(self) -> None:
        now = self._clock()
        for site, gate_name, online, last_seen, store_id, blob, tz in store.load_gates(self._conn):
            gate = GateState(site, gate_name)
            gate.online = None if online == -1 else bool(online)
            gate.last_seen = int(last_seen) / 1000
            gate.timezone = tz
            data = json.loads(blob or "{}")
            gate.fields = data.get("fields", {})
            gate.store, gate.seq = store_id, int(data.get("seq", 0))
            gate.totals, gate.totals_ts = data.get("totals", {}), float(data.get("totals_ts", 0))
            gate.status_ts = float(data.get("status_ts", 0))
            gate.diagnostics = data.get("diagnostics")
            self._gates[(site, gate_name)] = gate
            self._load_today(gate, now)
        for row in store.load_streams(self._conn):
            self._stream_max[(row.site, row.gate, row.store)] = row.seq
            known = self._gates.get((row.site, row.gate))
            if known is not None and row.store == known.store and row.seq > known.seq:
                known.seq, known.totals = row.seq, row.totals
        for site, gate_name, store_id, first, last in store.gaps(self._conn):
            if (site, gate_name) in self._gates:
                self._gates[(site, gate_name)].watch.gaps.append((store_id, first, last, now))
        versions = [g.fields.get("bundle_version") for g in self._gates.values()]
        self._newest_bundle = max((v for v in versions if type(v) is int), default=0)
        self._commands.extend(
            command_json(row) for row in store.recent_commands(self._conn, limit=RECENT_COMMANDS)
        )
        for alarm_id, site, gate_name, kind, detail, raised in store.open_alarms(self._conn):
            self._open[(site, gate_name, kind)] = OpenAlarm(
                alarm_id, site, gate_name, kind, detail, raised
            )
        self._refresh(set(self._gates), force=True)
        log.info("fleet state loaded: %d gates, %d open alarms", len(self._gates), len(self._open))

    def _view(self, gate: GateState) -> dict[str, Any]:
        f = gate.fields
        version, stale_in = f.get("bundle_version"), f.get("bundle_stale_in_s")
        behind = type(version) is int and version < self._newest_bundle
        return {
            "site": gate.site,
            "gate": gate.gate,
            "online": gate.online is True,
            "last_seen": iso(gate.last_seen) if gate.last_seen else None,
            "last_seen_s": gate.last_seen,
            "gate_mode": f.get("gate_mode"),
            "mode": f.get("mode"),
            "bundle_version": f.get("bundle_version"),
            "bundle_age_s": f.get("bundle_age_s"),
            "stale_at": None if stale_in is None else gate.status_ts + stale_in,
            "behind": self._newest_bundle if behind else None,
            "nik_version": f.get("nik_version"),
            "dist_error": f.get("dist_error") or None,
            "pull_error": f.get("pull_error") or None,
            "diagnostics": gate.diagnostics,
            "clock_state": f.get("clock_state"),
            "version": f.get("version"),
            "decoder": f.get("decoder"),
            "camera_fps": f.get("camera_fps"),
            "outbox_pending": f.get("outbox_pending"),
            "last_error": f.get("last_error"),
            "store": gate.store,
            "seq": gate.seq,
            "timezone": gate.timezone,
            "totals": dict(gate.totals),
            "today": {"date": gate.today_date, **gate.today},
            "gaps": [{"store": s, "first": a, "last": b} for s, a, b, _ in gate.watch.gaps],
            "events": [{"ts": t, "event": e, "kind": k} for t, e, k in gate.events],
            "alarms": sorted(k[2] for k in self._open if k[:2] == (gate.site, gate.gate)),
        }

    def _refresh(self, dirty: set[Key], *, force: bool = False) -> None:
        if not dirty and not force:
            return
        self._version += 1
        self._touched.update(dirty)
        for key in dirty:
            self._views[key] = self._view(self._gates[key])
            self._changed[key] = self._version
        alarms = tuple(alarm_json(a) for a in sorted(self._open.values(), key=lambda a: a.raised))
        snapshot = Snapshot(
            self._version,
            self._clock(),
            MappingProxyType(dict(self._views)),
            MappingProxyType(dict(self._changed)),
            alarms,
            MappingProxyType(dict(self.counters)),
            tuple(self._commands),
            self._newest_bundle,
        )
        with self._cond:
            self._snapshot = snapshot
            self._cond.notify_all()
