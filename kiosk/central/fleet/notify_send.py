"""The notification channels: a signed webhook (stdlib urllib) and e-mail (stdlib smtplib).

Only the notifier's sender thread calls :meth:`Channels.send`. Every attempt
has a timeout; transient failures are retried with exponential backoff up to
``notify.attempts`` attempts in all, and each outcome is counted as
``(channel, outcome)`` for ``kiosk_fleet_notifications_total``.

The webhook body is signed Stripe-style: header
``X-Kiosk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``
(:func:`signature`, checked by :func:`verify`). The secret is read from
``notify.secret_file`` and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import smtplib
import ssl
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from kiosk.central.fleet.alarms import LABELS
from kiosk.central.fleet.config import FleetNotifyConfig, FleetNotifySiteConfig
from kiosk.errors import ConfigError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Kiosk-Signature"
TOLERANCE_S = 300
"""A receiver refuses a signature whose ``t`` is further than this from its own clock."""
MAX_SECRET_BYTES = 4096
_RETRY_HTTP = frozenset({408, 429})


def read_secret(path: Path, key: str, minimum: int = 16) -> bytes:
    """The secret in ``path`` (surrounding white space dropped), at least ``minimum`` bytes.

    Raises:
        ConfigError: naming ``key``, never the secret.
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SECRET_BYTES + 1).strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_BYTES or len(data) < minimum:
        raise ConfigError(f"{key}: {path} must hold {minimum} to {MAX_SECRET_BYTES} bytes")
    return data


def signature(secret: bytes, t: int, body: bytes) -> str:
    """The ``X-Kiosk-Signature`` value for ``body`` sent at UNIX second ``t``."""
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: bytes, header: str, body: bytes, now: float, tolerance: float = TOLERANCE_S
           ) -> bool:
    """What a receiver does: the MAC matches and ``t`` is within ``tolerance`` of ``now``."""
    parts = dict(p.partition("=")[::2] for p in header.split(",") if "=" in p)
    try:
        t = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - t) > tolerance:
        return False  # a replay of an old, correctly signed body
    want = signature(secret, t, body).partition(",v1=")[2]
    return hmac.compare_digest(want, parts.get("v1", ""))


@dataclass(frozen=True)
class Route:
    """Where one site's notifications go (None from :func:`route`: nowhere)."""

    webhook_url: str | None
    email_to: tuple[str, ...]


def route(cfg: FleetNotifyConfig, site: str) -> Route | None:
    """The site's channels: [notify] with its [notify.sites.<site>] overrides."""
    over = cfg.sites.get(site) or FleetNotifySiteConfig()
    if not (cfg.enabled if over.enabled is None else over.enabled):
        return None
    url = over.webhook_url or cfg.webhook_url
    if over.webhook is False:
        url = ""
    to = tuple(a.strip() for a in (over.email_to or cfg.email_to).split(",") if a.strip())
    if over.email is False or not cfg.smtp_host:
        to = ()
    if not url and not to:
        return None
    return Route(url or None, to)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST would become a GET without the signed body: a failure, said so.
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


class Channels:
    """Sends one notice to a route's channels, with retries (sender thread only).

    Args:
        cfg: the [notify] section.
        secret: the webhook's shared secret (None: no webhook configured).
        password: the SMTP password, if any.
        abort: set when shutdown gives up: waits between retries end at once.
        clock: UNIX seconds, the signature's ``t``.
    """

    def __init__(self, cfg: FleetNotifyConfig, secret: bytes | None, password: str | None,
                 abort: threading.Event, clock: Callable[[], float]) -> None:
        self._cfg = cfg
        self._secret = secret
        self._password = password
        self._abort = abort
        self._clock = clock
        self._opener = urllib.request.build_opener(_NoRedirect())
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        # Targets whose last notice failed every attempt: one attempt each until one
        # succeeds, so a dead receiver costs a timeout per notice, not a retry ladder.
        self._down: set[str] = set()

    def count(self, channel: str, outcome: str) -> None:
        """Add one to ``(channel, outcome)`` (any thread)."""
        with self._lock:
            self.counts[(channel, outcome)] += 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        """A copy of the counts (any thread)."""
        with self._lock:
            return dict(self.counts)

    def send(self, where: Route, body: dict[str, Any]) -> None:
        """Deliver ``body`` on each channel of ``where``; failures are counted and logged."""
        if where.webhook_url and self._secret is not None:
            data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
            url = where.webhook_url
            self._attempt("webhook", url, lambda: self._post(url, data))
        if where.email_to:
            message = email_message(body, self._cfg.email_from, where.email_to)
            self._attempt("email", self._cfg.smtp_host, lambda: self._mail(message))

    def _attempt(self, channel: str, target: str, once: Callable[[], str]) -> None:
        """Run ``once`` (returns "ok", "retry" or "fail") up to ``attempts`` times."""
        attempts = 1 if target in self._down else self._cfg.attempts
        for attempt in range(attempts):
            outcome = once()
            if outcome == "ok":
                self.count(channel, "sent")
                self._down.discard(target)
                return
            if outcome == "fail" or attempt + 1 == attempts:
                break
            self.count(channel, "retried")
            delay = min(self._cfg.retry_base_s * 2**attempt, self._cfg.retry_max_s)
            if self._abort.wait(delay):
                break
        self.count(channel, "failed")
        if outcome == "retry":
            self._down.add(target)
        log.warning("notification by %s failed", channel)

    def _post(self, url: str, data: bytes) -> str:
        assert self._secret is not None
        request = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": "application/json",
            "User-Agent": "kiosk-fleet",
            SIGNATURE_HEADER: signature(self._secret, int(self._clock()), data),
        })
        try:
            with self._opener.open(request, timeout=self._cfg.webhook_timeout_s) as response:
                response.read(4096)
                return "ok"
        except urllib.error.HTTPError as exc:
            code = exc.code
            exc.close()
            log.info("webhook answered %d", code)
            return "retry" if code >= 500 or code in _RETRY_HTTP else "fail"
        except (OSError, http.client.HTTPException) as exc:  # refused, timeout, reset
            log.info("webhook unreachable: %s", type(exc).__name__)
            return "retry"

    def _mail(self, message: EmailMessage) -> str:
        cfg = self._cfg
        try:
            with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.smtp_timeout_s) as smtp:
                if cfg.smtp_starttls:
                    ca = None if cfg.smtp_tls_ca is None else str(cfg.smtp_tls_ca)
                    smtp.starttls(context=ssl.create_default_context(cafile=ca))
                if cfg.smtp_username:
                    smtp.login(cfg.smtp_username, self._password or "")
                smtp.send_message(message)
            return "ok"
        except smtplib.SMTPResponseException as exc:
            log.info("SMTP answered %d", exc.smtp_code)
            return "retry" if 400 <= exc.smtp_code < 500 else "fail"
        except smtplib.SMTPRecipientsRefused:
            return "fail"
        except (OSError, smtplib.SMTPException) as exc:
            log.info("SMTP unreachable: %s", type(exc).__name__)
            return "retry"


def email_message(body: dict[str, Any], sender: str, to: tuple[str, ...]) -> EmailMessage:
    """The bilingual (Bahasa Indonesia, then English) e-mail for a notice body."""
    subject, text = email_text(body)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(to)
    message.set_content(text)
    return message


def email_text(body: dict[str, Any]) -> tuple[str, str]:
    """``(subject, text)`` of a notice body, in Bahasa Indonesia and English."""
    site = body["site"]
    if body["event"] == "digest":
        counts = ", ".join(f"{k} {v}" for k, v in sorted(body["today"].items())) or "-"
        n = body["totals"]
        head = (f"Ringkasan harian {site} {body['date']}\n"
                f"Alarm baru: {n['raised']}, pulih: {n['cleared']}, "
                f"masih terbuka: {n['open']}\nHitungan hari ini: {counts}\n\n"
                f"Daily digest {site} {body['date']}\n"
                f"Alarms raised: {n['raised']}, cleared: {n['cleared']}, "
                f"still open: {n['open']}\nToday's counts: {counts}\n")
        lines = [f"- {a['gate']} {a['kind']} {a['raised_at']} -> {a['cleared_at'] or '…'}"
                 for a in body["open"] + body["cleared"]]
        return (f"[kiosk] Ringkasan harian / Daily digest: {site} {body['date']}",
                head + ("\n" + "\n".join(lines) + "\n" if lines else ""))
    label_id, label_en = LABELS.get(body["kind"], (body["kind"], body["kind"]))
    where = f"{site}/{body['gate']}"
    if body["event"] == "raised":
        subject = f"[kiosk] Alarm: {label_id} / {label_en}: {where}"
        text = (f"Alarm {label_id} di {where} sejak {body['raised_at']} ({body['detail']}).\n\n"
                f"Alarm {label_en} at {where} since {body['raised_at']} ({body['detail']}).\n")
    else:
        subject = f"[kiosk] Pulih / Cleared: {label_id} / {label_en}: {where}"
        text = (f"Alarm {label_id} di {where} pulih pada {body['cleared_at']} "
                f"(sejak {body['raised_at']}).\n\n"
                f"Alarm {label_en} at {where} cleared at {body['cleared_at']} "
                f"(raised {body['raised_at']}).\n")
    return subject, text
