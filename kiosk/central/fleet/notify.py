"""Alarm notifications: debounced raised/cleared notices and a daily digest per site.

The store owner hands each committed alarm change to :meth:`Notifier.feed`,
which only appends to a bounded queue (the oldest change is dropped and
counted when it is full), so the MQTT side never waits for a network. One
thread, ``kiosk-fleet-notify``, owns every send (:mod:`.notify_send`): it
moves changes through the :class:`Debouncer`, sends what is due, and at each
site's ``notify.digest_time`` (the site's zone, as its gates report it) the
digest. Every clock is passed in, so tests run on a virtual one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from kiosk.central.fleet.alarms import AlarmChange, OpenAlarm
from kiosk.central.fleet.config import FleetNotifyConfig
from kiosk.central.fleet.notify_body import FleetFacts, alarm_body, digest_body, next_local
from kiosk.central.fleet.notify_send import Channels, read_secret, route

log = logging.getLogger(__name__)

ZONES_S = 30.0
"""How often the sites and their zones are re-read for digests (a digest may be this late)."""


class Debouncer:
    """Which alarm changes are worth a notice (pure; the caller passes the time).

    A raise is due once the alarm is still open ``delay_s`` after it was raised;
    a clear is sent only for alarms whose raise was sent.
    """

    def __init__(self, delay_s: float) -> None:
        self._delay = delay_s
        self._pending: dict[int, AlarmChange] = {}
        self._sent: set[int] = set()

    def resume(self, change: AlarmChange, now: float) -> None:
        """Take an alarm open at start: past its window, its raise was sent by the last run."""
        if change.at + self._delay <= now:
            self._sent.add(change.alarm.id)
        else:
            self._pending[change.alarm.id] = change

    def offer(self, change: AlarmChange) -> AlarmChange | None:
        """Take one change; returns it if it is to be sent at once (a clear)."""
        alarm_id = change.alarm.id
        if change.event == "raised":
            self._pending[alarm_id] = change
            return None
        if self._pending.pop(alarm_id, None) is not None:
            return None  # a blip: raised and cleared within the window
        if alarm_id in self._sent:
            self._sent.discard(alarm_id)
            return change
        return None

    def due(self, now: float) -> list[AlarmChange]:
        """The raises whose window ended by ``now`` (each returned once)."""
        out = [c for c in self._pending.values() if c.at + self._delay <= now]
        for change in out:
            del self._pending[change.alarm.id]
            self._sent.add(change.alarm.id)
        return out

    def next_due(self) -> float | None:
        """When the next raise becomes due, or None."""
        return min((c.at + self._delay for c in self._pending.values()), default=None)


class Notifier:
    """The queue and the sender thread (see module docstring).

    Args:
        cfg: the [notify] section (validated).
        facts: the fleet's sites, zones and alarm history, for digests.
        clock: UNIX seconds (tests pass a virtual clock).
        poll_s: how often the sender looks at the clock while idle (real seconds).

    Raises:
        ConfigError: the secret or password file is unreadable.
    """

    def __init__(self, cfg: FleetNotifyConfig, facts: FleetFacts,
                 clock: Callable[[], float] = time.time, poll_s: float = 1.0) -> None:
        self._cfg = cfg
        self._facts = facts
        self._clock = clock
        self._poll = poll_s
        secret = (read_secret(cfg.secret_file, "notify.secret_file")
                  if cfg.secret_file is not None else None)
        password = (read_secret(cfg.smtp_password_file, "notify.smtp_password_file", 1).decode()
                    if cfg.smtp_password_file is not None else None)
        self._abort = threading.Event()
        self.channels = Channels(cfg, secret, password, self._abort, clock)
        self._queue: deque[AlarmChange] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._debounce = Debouncer(cfg.debounce_s)
        self._digest_due: dict[str, float] = {}
        self._zones: dict[str, str | None] = {}
        self._zones_at = float("-inf")
        self.active = cfg.enabled or any(s.enabled for s in cfg.sites.values())
        """False: nothing is enabled anywhere, so no thread runs and feed() ignores changes."""
        self._thread = threading.Thread(target=self._run, name="kiosk-fleet-notify", daemon=True)
        self.sent: Counter[str] = Counter()  # notices handed to channels, by event

    def counts(self) -> dict[tuple[str, str], int]:
        """``(channel, outcome)`` counts for /metrics (any thread)."""
        return self.channels.snapshot()

    def exposed(self) -> dict[tuple[str, str], int]:
        """:meth:`counts` with a zero for every outcome of each channel in use (/metrics).

        A counter that exists from the start lets ``rate()`` see its first increase.
        """
        cfg = self._cfg
        used = ["queue"] if self.active else []
        if self.active and (cfg.webhook_url or any(s.webhook_url for s in cfg.sites.values())):
            used.append("webhook")
        if self.active and cfg.smtp_host:
            used.append("email")
        zeros = {(c, o): 0 for c in used for o in ("sent", "failed", "dropped", "retried")}
        return {**zeros, **self.counts()}

    def resume(self, open_alarms: Iterable[Mapping[str, Any]]) -> None:
        """Adopt the alarms open when the service starts (API form), before :meth:`start`.

        So an alarm raised before a restart is still notified as cleared when it ends
        (and one raised within ``debounce_s`` before it, as raised when due).
        """
        now = self._clock()
        for a in open_alarms:
            raised = int(datetime.fromisoformat(a["raised"]).timestamp())
            alarm = OpenAlarm(a["id"], a["site"], a["gate"], a["kind"], a["detail"], raised)
            self._debounce.resume(AlarmChange("raised", alarm, raised), now)

    def feed(self, change: AlarmChange) -> None:
        """Queue one alarm change; never blocks (drops the oldest when full)."""
        if not self.active:
            return
        with self._cond:
            if len(self._queue) >= self._cfg.queue_size:
                self._queue.popleft()
                self.channels.count("queue", "dropped")
            self._queue.append(change)
            self._cond.notify()

    def start(self) -> None:
        """Start the sender thread (none when nothing is enabled)."""
        if self.active:
            self._thread.start()

    def stop(self) -> None:
        """Send what is queued for at most ``stop_timeout_s``, then give up (idempotent)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if not self._thread.is_alive():
            return
        self._thread.join(self._cfg.stop_timeout_s)
        self._abort.set()  # retries waiting end now; what is left is dropped and counted
        self._thread.join(self._cfg.webhook_timeout_s + self._cfg.smtp_timeout_s + 1)

    def pump(self) -> None:
        """One round: queued changes, due raises, due digests (sender thread, or a test)."""
        with self._cond:
            batch = list(self._queue)
            self._queue.clear()
        for change in batch:
            if self._abort.is_set():
                self.channels.count("queue", "dropped")
            elif (ready := self._debounce.offer(change)) is not None:
                self._deliver(ready.alarm.site, alarm_body(ready))
        now = self._clock()
        for change in self._debounce.due(now):
            self._deliver(change.alarm.site, alarm_body(change))
        if self._cfg.digest_time:
            self._digests(now)

    def _digests(self, now: float) -> None:
        if now - self._zones_at >= ZONES_S:  # 10,000 gates are not walked every second
            try:
                self._zones, self._zones_at = dict(self._facts.site_zones()), now
            except Exception:
                log.exception("digest: sites unreadable")
                return
        for site, zone_name in sorted(self._zones.items()):
            due = self._digest_due.get(site)
            if due is None:  # first seen: the next digest time, not one already past
                self._digest_due[site] = next_local(now, self._cfg.digest_time, zone_name)
                continue
            if now < due or self._abort.is_set():
                continue
            self._digest_due[site] = next_local(now, self._cfg.digest_time, zone_name)
            if route(self._cfg, site) is None:
                continue
            try:
                body = digest_body(self._facts, site, now, zone_name)
            except Exception:  # database away: this site's digest is skipped today
                log.exception("digest for %s failed", site)
                continue
            self._deliver(site, body)

    def _deliver(self, site: str, body: dict[str, Any]) -> None:
        where = route(self._cfg, site)
        if where is None:
            return
        if self._abort.is_set():  # shutdown gave up: counted, not attempted
            self.channels.count("queue", "dropped")
            return
        self.sent[body["event"]] += 1
        self.channels.send(where, body)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._stopping:
                    self._cond.wait(self._poll)
                stopping = self._stopping and not self._queue
            try:
                self.pump()
            except Exception:  # a bug must not end notifications for good
                log.exception("notifier round failed")
            if stopping or self._abort.is_set():
                return
