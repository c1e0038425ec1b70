"""Alarm notifications with real parts: a local HTTP receiver that checks the signature on
its own, a real SMTP server (aiosmtpd), the real store owner on SQLite with a virtual
clock, and one run through the whole service with a real Mosquitto.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.central.fleet.alarms import AlarmChange, OpenAlarm
from kiosk.central.fleet.config import FleetNotifyConfig, load_fleet_config
from kiosk.central.fleet.db import Database
from kiosk.central.fleet.messages import Availability, Status, TopicMatcher, parse
from kiosk.central.fleet.notify import Notifier
from kiosk.central.fleet.notify_body import StoreFacts, next_local
from kiosk.central.fleet.notify_send import SIGNATURE_HEADER, route, verify
from kiosk.central.fleet.state import FleetState
from kiosk.errors import ConfigError
from tests.central.helpers import RawGate, fleet_config, get, running, wait_until
from tests.central.test_fleet_alarms import T0, Clock, _tailgate
from tests.conftest import Mosquitto, free_port

SECRET = b"s3cret-shared-with-the-receiver"
BODY_KEYS = {"v", "event", "alarm_id", "kind", "label_id", "label_en", "site", "gate",
             "detail", "raised_at", "cleared_at"}


class Receiver:
    """A webhook receiver on a free port: answers from a script, checks each signature."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.answers = list(answers or [])
        self.hits: list[dict[str, Any]] = []
        self.bodies: list[dict[str, Any]] = []  # only the correctly signed ones
        self.release = threading.Event()
        self.release.set()
        self.now = time.time
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                header = self.headers.get(SIGNATURE_HEADER, "")
                outer.release.wait(30)
                # Checked here from the documented rule, not with the module's verify().
                parts = dict(p.split("=", 1) for p in header.split(","))
                mac = hmac.new(SECRET, parts["t"].encode() + b"." + raw,
                               hashlib.sha256).hexdigest()
                good = (hmac.compare_digest(mac, parts["v1"])
                        and abs(int(parts["t"]) - outer.now()) <= 300)
                code = outer.answers.pop(0) if outer.answers else 200
                outer.hits.append({"header": header, "raw": raw, "good": good, "code": code})
                if good and code < 300:
                    outer.bodies.append(json.loads(raw))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class NoFacts:
    """Digest facts of an empty fleet (tests without a state)."""

    def site_zones(self) -> dict[str, str | None]:
        return {}

    def alarms_since(self, site: str, since: int) -> list[tuple[Any, ...]]:
        return []

    def alarm_counts(self, site: str, since: int) -> tuple[int, int, int]:
        return 0, 0, 0

    def today(self, site: str) -> dict[str, int]:
        return {}


def _notify(tmp_path: Path, **values: Any) -> FleetNotifyConfig:
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET + b"\n")
    base = {"notify.enabled": True, "notify.secret_file": str(secret),
            "notify.retry_base_s": 0.01, "notify.debounce_s": 0, "notify.digest_time": ""}
    base.update({f"notify.{k}": v for k, v in values.items()})
    return load_fleet_config(None, base).notify


def _change(event: str, alarm_id: int = 1, at: float = T0, detail: str = "last will",
            site: str = "mall-1") -> AlarmChange:
    return AlarmChange(event, OpenAlarm(alarm_id, site, "g1", "offline", detail, int(T0)),
                       int(at))


def test_a_raised_alarm_is_posted_signed_with_codes_only(tmp_path: Path,
                                                        receiver: Receiver) -> None:
    clock = Clock()
    receiver.now = clock
    notifier = Notifier(_notify(tmp_path, webhook_url=receiver.url), NoFacts(), clock)
    notifier.feed(_change("raised", detail="scanner: 3171234567890001 unreadable"))
    notifier.pump()
    (hit,) = receiver.hits
    assert hit["good"]
    (body,) = receiver.bodies
    assert set(body) == BODY_KEYS  # nothing else leaves
    assert body["event"] == "raised" and body["kind"] == "offline"
    assert (body["site"], body["gate"]) == ("mall-1", "g1")
    assert body["raised_at"] == "2026-05-01T03:00:00Z" and body["cleared_at"] is None
    assert "3171234567890001" not in hit["raw"].decode()  # an identity number is masked
    # A receiver's check: good now, refused as a replay later, refused when altered.
    assert verify(SECRET, hit["header"], hit["raw"], clock.now)
    assert not verify(SECRET, hit["header"], hit["raw"], clock.now + 301)
    assert not verify(SECRET, hit["header"], hit["raw"].replace(b"g1", b"g2"), clock.now)
    assert not verify(b"another-secret-of-16+", hit["header"], hit["raw"], clock.now)
    assert notifier.counts() == {("webhook", "sent"): 1}


@pytest.mark.parametrize(("answers", "attempts", "counts"), [
    ([503, 500, 200], 3, {("webhook", "retried"): 2, ("webhook", "sent"): 1}),
    ([429, 408, 200], 3, {("webhook", "retried"): 2, ("webhook", "sent"): 1}),
    ([400], 1, {("webhook", "failed"): 1}),
    ([503] * 9, 4, {("webhook", "retried"): 3, ("webhook", "failed"): 1}),
])
def test_retries_with_backoff_and_a_cap_but_not_after_a_4xx(
    tmp_path: Path, receiver: Receiver, answers: list[int], attempts: int,
    counts: dict[tuple[str, str], int], caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.answers = answers
    notifier = Notifier(_notify(tmp_path, webhook_url=receiver.url, attempts=4),
                        NoFacts())
    caplog.set_level(logging.DEBUG)
    notifier.feed(_change("raised"))
    notifier.pump()
    assert len(receiver.hits) == attempts and all(h["good"] for h in receiver.hits)
    assert notifier.counts() == counts
    assert SECRET.decode() not in caplog.text


def test_a_receiver_that_stays_down_gets_one_attempt_per_notice_until_it_answers(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.answers = [503, 503, 503, 200, 503, 200]
    notifier = Notifier(_notify(tmp_path, webhook_url=receiver.url, attempts=3), NoFacts())
    codes = []
    for n in range(3):
        before = len(receiver.hits)
        notifier.feed(_change("raised", alarm_id=n))
        notifier.pump()
        codes.append([h["code"] for h in receiver.hits[before:]])
    # All three attempts; then one (it worked: back to normal); then a retry again.
    assert codes == [[503, 503, 503], [200], [503, 200]]
    assert [b["alarm_id"] for b in receiver.bodies] == [1, 2]


def test_an_unreachable_receiver_is_retried_then_failed(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens
    notifier = Notifier(_notify(tmp_path, webhook_url=url, attempts=3), NoFacts())
    notifier.feed(_change("raised"))
    notifier.pump()
    assert notifier.counts() == {("webhook", "retried"): 2, ("webhook", "failed"): 1}


def _status(site: str, gate: str, at: float, zone: str = "Asia/Jakarta", **fields: Any) -> Status:
    body = {"v": 1, "device": f"{site}/{gate}", "version": "0.1.0",
            "ts": datetime.fromtimestamp(at, UTC).isoformat(), "uptime_s": 5,
            "timezone": zone, "mode": "fresh", "gate_mode": "normal",
            "clock_state": "synchronised", "last_error": None, "totals": {},
            "store": "cd" * 16, "seq": 0, "bundle_version": 3, "bundle_age_s": 60.0,
            "camera_fps": 15.0, "decoder": "zxing", "store_unsaved": 0,
            "today": {"date": "2026-05-01", "allowed": 0, "denied": 0},
            "outbox": {"pending": 0, "published": 0, "acked": 0, "reconnects": 0,
                       "last_error": None}}
    body.update(fields)
    msg = parse(TopicMatcher("kiosk/{site}/{gate}"), f"kiosk/{site}/{gate}/status",
                json.dumps(body).encode(), 65536)
    assert isinstance(msg, Status)
    return msg


def _fleet(tmp_path: Path, clock: Clock, notify: FleetNotifyConfig, url: str | None = None
           ) -> tuple[FleetState, Notifier, StoreFacts]:
    config = load_fleet_config(None, {"store.url": url or f"sqlite:///{tmp_path / 'f.sqlite'}"})
    db = Database(config.store.url)
    facts = StoreFacts(lambda: state.snapshot(), db)
    notifier = Notifier(notify, facts, clock)
    state = FleetState(db, config, clock, on_alarm=notifier.feed)
    return state, notifier, facts


def test_debounce_on_a_virtual_clock(tmp_path: Path, receiver: Receiver) -> None:
    clock = Clock()
    receiver.now = clock
    state, notifier, facts = _fleet(tmp_path, clock,
                                    _notify(tmp_path, webhook_url=receiver.url, debounce_s=60))
    state.apply([Availability("s", "g", True),
                 _status("s", "g", clock.now, clock_state="unsynchronised")])
    state.tick()  # raised in the store ...
    notifier.pump()
    clock.now += 30
    state.apply([_status("s", "g", clock.now)])
    state.tick()  # ... and cleared 30 s later: a blip
    notifier.pump()
    clock.now += 120
    notifier.pump()
    assert receiver.hits == []
    state.apply([_status("s", "g", clock.now, clock_state="unsynchronised")])
    state.tick()
    clock.now += 59
    notifier.pump()
    assert receiver.hits == []
    clock.now += 1
    notifier.pump()
    assert [(b["event"], b["kind"]) for b in receiver.bodies] == [("raised", "clock")]
    clock.now += 600
    state.apply([_status("s", "g", clock.now)])
    state.tick()
    notifier.pump()
    assert [b["event"] for b in receiver.bodies] == ["raised", "cleared"]
    cleared = receiver.bodies[1]
    assert cleared["raised_at"] == receiver.bodies[0]["raised_at"]
    assert cleared["cleared_at"] == datetime.fromtimestamp(clock.now, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    assert all(h["good"] for h in receiver.hits)
    facts.close()
    state.close()


def test_alarms_open_across_a_restart_are_still_notified(tmp_path: Path,
                                                         receiver: Receiver) -> None:
    clock = Clock()
    receiver.now = clock
    cfg = _notify(tmp_path, webhook_url=receiver.url, debounce_s=60)
    state, _, facts = _fleet(tmp_path, clock, cfg)
    state.apply([Availability("s", "g", True), Availability("s", "h", True),
                 _status("s", "g", clock.now, clock_state="unsynchronised")])
    state.tick()  # g's alarm: old enough at the restart to have been notified
    clock.now += 590
    state.apply([_status("s", "g", clock.now, clock_state="unsynchronised"),
                 _status("s", "h", clock.now, gate_mode="emergency")])
    state.tick()  # h's alarm: 10 s old at the restart, not yet due
    facts.close()
    state.close()
    clock.now += 10
    state, notifier, facts = _fleet(tmp_path, clock, cfg)
    notifier.resume(state.snapshot().alarms)
    notifier.pump()
    assert receiver.hits == []
    clock.now += 50
    notifier.pump()
    assert [(b["event"], b["gate"]) for b in receiver.bodies] == [("raised", "h")]
    state.apply([_status("s", "g", clock.now)])
    state.tick()
    notifier.pump()
    assert [(b["event"], b["gate"]) for b in receiver.bodies] == [("raised", "h"),
                                                                ("cleared", "g")]
    facts.close()
    state.close()


def test_a_full_queue_drops_the_oldest_and_feeding_never_waits(tmp_path: Path,
                                                              receiver: Receiver) -> None:
    receiver.release.clear()  # the receiver hangs: the sender thread is stuck in a POST
    cfg = _notify(tmp_path, webhook_url=receiver.url, queue_size=10, webhook_timeout_s=60)
    notifier = Notifier(cfg, NoFacts(), poll_s=0.02)
    notifier.start()
    notifier.feed(_change("raised", alarm_id=0))
    assert wait_until(lambda: notifier.sent["raised"] == 1, 10)
    started = time.monotonic()
    for n in range(1, 26):
        notifier.feed(_change("raised", alarm_id=n))
    assert time.monotonic() - started < 2  # loose: 25 appends, never a network wait
    assert notifier.counts()[("queue", "dropped")] == 15
    receiver.release.set()
    notifier.stop()  # drains what is left
    ids = [b["alarm_id"] for b in receiver.bodies]
    assert ids == [0, *range(16, 26)]  # the 10 newest survived, in order
    assert notifier.counts()[("webhook", "sent")] == 11
    notifier.stop()  # idempotent


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_daily_digest_comes_at_each_sites_local_time(
    tmp_path: Path, receiver: Receiver, backend: str, request: pytest.FixtureRequest
) -> None:
    clock = Clock()  # 03:00 UTC = 10:00 in Jakarta (UTC+7), 11:00 in Makassar (UTC+8)
    receiver.now = clock
    cfg = _notify(tmp_path, webhook_url=receiver.url, digest_time="10:05", debounce_s=60)
    url = request.getfixturevalue("postgres_db")() if backend == "postgresql" else None
    state, notifier, facts = _fleet(tmp_path, clock, cfg, url)
    state.apply([Availability("s", "g", True), Availability("east", "e1", True),
                 _status("s", "g", clock.now), _tailgate(clock, 1), _tailgate(clock, 2),
                 _status("east", "e1", clock.now, zone="Asia/Makassar")])
    state.apply([_status("s", "g", clock.now, clock_state="unsynchronised",
                         gate_mode="emergency")])
    state.tick()
    clock.now += 10
    state.apply([_status("s", "g", clock.now, clock_state="unsynchronised")])
    state.tick()  # emergency cleared (a blip: no notice), clock still open
    notifier.pump()
    assert receiver.hits == []
    clock.now = T0 + 299
    notifier.pump()  # the clock alarm's raise was due at T0 + 60
    assert [b["event"] for b in receiver.bodies] == ["raised"]
    clock.now = T0 + 300  # 10:05 in Jakarta
    notifier.pump()
    digests = [b for b in receiver.bodies if b["event"] == "digest"]
    (digest,) = digests
    assert digest["site"] == "s" and digest["date"] == "2026-05-01"
    assert digest["zone"] == "Asia/Jakarta"
    assert digest["totals"] == {"raised": 2, "cleared": 1, "open": 1}
    assert {a["kind"] for a in digest["open"]} == {"clock"}
    assert [a["kind"] for a in digest["cleared"]] == ["emergency"]
    assert digest["today"]["tailgate"] == 2
    clock.now = T0 + 3600
    notifier.pump()
    assert len([b for b in receiver.bodies if b["event"] == "digest"]) == 1  # once a day
    # Makassar's 10:05 is 02:05 UTC: already past today, so tomorrow, once.
    clock.now = next_local(T0, "10:05", "Asia/Makassar")
    assert clock.now == datetime(2026, 5, 2, 2, 5, tzinfo=UTC).timestamp()
    notifier.pump()
    sites = [b["site"] for b in receiver.bodies if b["event"] == "digest"]
    assert sites == ["s", "east"]
    facts.close()
    state.close()


def test_per_site_overrides(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    (tmp_path / "secret").write_bytes(SECRET)
    path.write_text(
        '[notify]\nenabled = true\nwebhook_url = "https://hooks.example/all"\n'
        'secret_file = "secret"\nsmtp_host = "mx.example"\nemail_from = "fleet@example.id"\n'
        'email_to = "ops@example.id"\n'
        '[notify.sites.quiet]\nenabled = false\n'
        '[notify.sites.mall-1]\nwebhook_url = "https://hooks.example/mall"\n'
        'email_to = "mall@example.id, night@example.id"\n'
        '[notify.sites.mail-only]\nwebhook = false\n'
        '[notify.sites.off-by-default]\n')
    cfg = load_fleet_config(path).notify
    assert cfg.secret_file == tmp_path / "secret"
    assert route(cfg, "quiet") is None
    mall = route(cfg, "mall-1")
    assert mall is not None and mall.webhook_url == "https://hooks.example/mall"
    assert mall.email_to == ("mall@example.id", "night@example.id")
    other = route(cfg, "anything")
    assert other is not None and other.webhook_url == "https://hooks.example/all"
    mail = route(cfg, "mail-only")
    assert mail is not None and mail.webhook_url is None and mail.email_to == ("ops@example.id",)
    path.write_text('[notify.sites.only-me]\nenabled = true\nwebhook_url = "http://h/x"\n'
                    'webhook = true\n[notify]\nsecret_file = "secret"\n')
    cfg = load_fleet_config(path).notify
    assert route(cfg, "only-me") is not None and route(cfg, "others") is None


@pytest.mark.parametrize(("text", "expected"), [
    ('[notify]\nwebhook_url = "http://h/x"\n', "fleet.toml:2: notify.secret_file: required"),
    ('[notify]\nwebhook_url = "ftp://h/x"\n', "fleet.toml:2: notify.webhook_url: expected an"),
    ('[notify]\n\ndigest_time = "7am"\n', "fleet.toml:3: notify.digest_time: expected HH:MM"),
    ('[notify]\nemail_to = "ops at example"\n', "fleet.toml:2: notify.email_to: expected e-mail"),
    ('[notify]\nsmtp_host = "mx"\n', "fleet.toml:2: notify.email_from: required"),
    ('[notify]\nqueue_size = 1\n', "fleet.toml:2: notify.queue_size: 1 is below the minimum"),
    ('[notify.sites.mall-1]\nemail = true\n',
     "fleet.toml:2: notify.sites.mall-1.email: requires notify.smtp_host"),
    ('[notify.sites.mall-1]\nwebhok = "x"\n', "fleet.toml:2: notify.sites.mall-1.webhok: unknown"),
    ('[notify.sites.mall-1]\nwebhook = true\n',
     "fleet.toml:2: notify.sites.mall-1.webhook: no webhook_url"),
    ('[notify]\nsites = 3\n', "fleet.toml:2: notify.sites: expected a table"),
    ('[notify.sites."a b"]\n', "fleet.toml:1: notify.sites.a b: a site name"),
])
def test_config_errors_name_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_fleet_config(path)
    assert str(info.value).startswith(f"{tmp_path}/{expected}")


def test_an_unreadable_or_short_secret_is_a_config_error(tmp_path: Path) -> None:
    cfg = _notify(tmp_path, webhook_url="http://h/x")
    (tmp_path / "secret").write_text("short\n")
    with pytest.raises(ConfigError, match=r"notify.secret_file: .* 16 to") as info:
        Notifier(cfg, NoFacts())
    assert "short" not in str(info.value).replace(str(tmp_path), "")
    (tmp_path / "secret").unlink()
    with pytest.raises(ConfigError, match=r"notify\.secret_file: cannot read"):
        Notifier(cfg, NoFacts())


def test_email_through_a_real_smtp_server(tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    received: list[Any] = []
    logins: list[tuple[bytes, bytes]] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope)
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"smtp-password-0123")

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port,
                            authenticator=authenticator, auth_require_tls=False)
    controller.start()
    try:
        (tmp_path / "smtp-pass").write_text("smtp-password-0123\n")
        cfg = _notify(tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False,
                      smtp_username="fleet", smtp_password_file=str(tmp_path / "smtp-pass"),
                      email_from="fleet@example.id",
                      email_to="ops@example.id, night@example.id")
        notifier = Notifier(cfg, NoFacts())
        notifier.feed(_change("raised"))
        notifier.pump()
        notifier.feed(_change("cleared", at=T0 + 300))
        notifier.pump()
    finally:
        controller.stop()
    assert logins == [(b"fleet", b"smtp-password-0123")] * 2
    assert len(received) == 2
    first = received[0]
    assert first.mail_from == "fleet@example.id"
    assert first.rcpt_tos == ["ops@example.id", "night@example.id"]
    text = first.content.decode()
    assert "Subject: [kiosk] Alarm: Gerbang offline / Gate offline: mall-1/g1" in text
    assert "Alarm Gerbang offline di mall-1/g1 sejak 2026-05-01T03:00:00Z" in text
    assert "Alarm Gate offline at mall-1/g1 since 2026-05-01T03:00:00Z" in text
    second = received[1].content.decode()
    assert "Pulih / Cleared" in second and "cleared at 2026-05-01T03:05:00Z" in second
    assert notifier.counts() == {("email", "sent"): 2}


def test_a_gate_going_offline_reaches_the_webhook_through_the_service(
    tmp_path: Path, mosquitto_factory: type[Mosquitto], receiver: Receiver
) -> None:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    (tmp_path / "secret").write_bytes(SECRET)
    config = fleet_config(tmp_path, broker.port, **{
        "alarms.offline_after_s": 5, "notify.enabled": True, "notify.webhook_url": receiver.url,
        "notify.secret_file": str(tmp_path / "secret"), "notify.debounce_s": 2,
    })
    with running(config) as fleet:
        gate = RawGate(broker.host, broker.port, "mall-1", "g7")
        gate.online()
        gate.status(datetime.now(UTC))
        gate.publish("availability", b"offline", retain=True)
        assert wait_until(lambda: receiver.bodies, 30), "no notification"
        (body,) = receiver.bodies
        assert (body["event"], body["kind"], body["site"], body["gate"]) == (
            "raised", "offline", "mall-1", "g7")
        gate.online()
        assert wait_until(lambda: len(receiver.bodies) == 2, 20)
        assert receiver.bodies[1]["event"] == "cleared"
        status, text = get(fleet, "/metrics")
        assert status == 200
        metrics = text.decode()
        assert 'kiosk_fleet_notifications_total{channel="webhook",outcome="sent"} 2' in metrics
        assert 'kiosk_fleet_notifications_total{channel="webhook",outcome="failed"} 0' in metrics
        assert 'kiosk_fleet_notifications_total{channel="queue",outcome="dropped"} 0' in metrics
        assert 'channel="email"' not in metrics  # not configured
        gate.close()


def test_the_shipped_example_config_says_every_notify_default() -> None:
    from tests.conftest import REPO_ROOT

    text = (REPO_ROOT / "config" / "fleet.toml").read_text()
    assert load_fleet_config(REPO_ROOT / "config" / "fleet.toml").notify == FleetNotifyConfig()
    for name in FleetNotifyConfig.__dataclass_fields__:
        assert f"\n{name} = " in text or f"# [notify.{name}." in text, name


@settings(max_examples=300, deadline=None)
@given(header=st.text(max_size=200), body=st.binary(max_size=200),
       t=st.integers(min_value=0, max_value=2**40))
def test_verify_answers_any_header_with_a_bool_and_accepts_only_the_right_one(
    header: str, body: bytes, t: int
) -> None:
    from kiosk.central.fleet.notify_send import signature

    assert verify(SECRET, header, body, t) in (True, False)
    good = signature(SECRET, t, body)
    assert verify(SECRET, good, body, t)
    assert not verify(SECRET, good, body + b" ", t)
    mac = good.partition(",v1=")[2]
    assert not verify(SECRET, f"t={t + 1},v1={mac}", body, t)  # the time is signed too


def test_the_digest_email_is_bilingual_and_bounded() -> None:
    from kiosk.central.fleet.notify_body import LIST_MAX, digest_body
    from kiosk.central.fleet.notify_send import email_text

    class Facts(NoFacts):
        def alarms_since(self, site: str, since: int) -> list[tuple[Any, ...]]:
            rows = [(n, site, f"g{n}", "offline", "silent", int(T0) - 60, int(T0) - 30)
                    for n in range(3 * LIST_MAX)]
            return [(999, site, "g1", "clock", "unsynchronised", int(T0) - 90000, None), *rows]

        def alarm_counts(self, site: str, since: int) -> tuple[int, int, int]:
            return 1000, 1000, 1

        def today(self, site: str) -> dict[str, int]:
            return {"allowed": 40, "denied": 2}

    body = digest_body(Facts(), "mall-1", T0, "Asia/Jakarta")
    assert len(body["raised"]) == len(body["cleared"]) == LIST_MAX and len(body["open"]) == 1
    assert body["totals"] == {"raised": 1000, "cleared": 1000, "open": 1}
    subject, text = email_text(body)
    assert subject == "[kiosk] Ringkasan harian / Daily digest: mall-1 2026-05-01"
    assert "Alarm baru: 1000, pulih: 1000, masih terbuka: 1" in text
    assert "Alarms raised: 1000, cleared: 1000, still open: 1" in text
    assert "Hitungan hari ini: allowed 40, denied 2" in text
    assert "- g1 clock 2026-04-30T02:00:00Z -> …" in text
    assert len(text.splitlines()) < 2 * LIST_MAX + 20


def test_stop_gives_up_after_its_timeout_and_counts_what_is_left(tmp_path: Path,
                                                                 receiver: Receiver) -> None:
    receiver.release.clear()  # the receiver never answers in time
    cfg = _notify(tmp_path, webhook_url=receiver.url, stop_timeout_s=0.5, webhook_timeout_s=1,
                  attempts=5, retry_base_s=5)
    notifier = Notifier(cfg, NoFacts(), poll_s=0.02)
    notifier.start()
    for n in range(4):
        notifier.feed(_change("raised", alarm_id=n))
    started = time.monotonic()
    notifier.stop()
    took = time.monotonic() - started
    assert not notifier._thread.is_alive()
    assert took < 10  # loose: 0.5 s of draining, then at most one attempt's timeout
    counts = notifier.counts()
    # The first notice timed out (and waits for its retry were cut short); the rest,
    # never attempted, are counted as dropped.
    assert counts[("webhook", "failed")] == 1 and counts[("queue", "dropped")] == 3
    assert receiver.bodies == []


def test_email_over_starttls_checks_the_servers_certificate(tmp_path: Path) -> None:
    import ssl

    from aiosmtpd.controller import Controller

    from tests.telemetry.certs import make_pki

    pki = make_pki(tmp_path / "pki")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append((session.ssl is not None, envelope))
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True)
    controller.start()
    try:
        common = {"smtp_host": "127.0.0.1", "smtp_port": port, "email_from": "f@example.id",
                  "email_to": "ops@example.id", "attempts": 1}
        trusting = Notifier(_notify(tmp_path, smtp_tls_ca=str(pki.ca), **common), NoFacts())
        trusting.feed(_change("raised"))
        trusting.pump()
        system_cas = Notifier(_notify(tmp_path, **common), NoFacts())  # the test CA is unknown
        system_cas.feed(_change("raised"))
        system_cas.pump()
    finally:
        controller.stop()
    assert [tls for tls, _ in received] == [True]
    assert trusting.counts() == {("email", "sent"): 1}
    assert system_cas.counts() == {("email", "failed"): 1}
