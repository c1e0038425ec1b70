"""The HTTP side: page, JSON API, server-sent events and ``/metrics`` (stdlib ``http.server``).

Routes are a plain table (see :data:`ROUTES` in :class:`FleetWeb`). Every
request is bounded before it is read: the URL (2 KiB), headers (http.server's
own limits), the body (``http.max_body_bytes``, the login form only), the
socket's idle time (10 s), and the number of live event streams (64).
Nothing but ``/healthz``, ``/login`` and the static assets answers without a
token (Bearer) or a session cookie (the login form sets one).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kiosk.central.fleet import views
from kiosk.central.fleet.auth import COOKIE, SESSION_S, Access
from kiosk.central.fleet.chart import site_chart
from kiosk.central.fleet.db import Database
from kiosk.central.fleet.messages import NAME
from kiosk.central.fleet.metrics import MetricsCache
from kiosk.central.fleet.page import login_page, main_page
from kiosk.central.fleet.state import FleetState

log = logging.getLogger(__name__)

MAX_URL = 2048
MAX_STREAMS = 64
STATIC = {"fleet.css": "text/css", "fleet.js": "text/javascript", "icon.svg": "image/svg+xml"}


@dataclass
class FleetWeb:
    """Everything a request needs: the state, the database, access and settings."""

    state: FleetState
    db: Database
    access: Access
    rejected: Callable[[], dict[str, int]]
    max_body: int = 4096
    sse_interval_s: float = 1.0
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.metrics = MetricsCache()
        self.streams = threading.BoundedSemaphore(MAX_STREAMS)
        self.stopping = threading.Event()


class FleetServer(ThreadingHTTPServer):
    """A threading HTTP server bound to one :class:`FleetWeb`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], web: FleetWeb) -> None:
        self.web = web
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """``http://host:port/`` actually listened on."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: FleetServer
    timeout = 10
    protocol_version = "HTTP/1.1"
    server_version = "kiosk-fleet"
    sys_version = ""

    # ----------------------------------------------------------------- plumbing

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(
        self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
        )
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode()
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status: int, text: str) -> None:
        self._json({"error": text}, status)

    def _authorised(self) -> bool:
        access = self.server.web.access
        return access.bearer_ok(self.headers.get("Authorization")) or access.session_ok(
            self.headers.get("Cookie")
        )

    # ------------------------------------------------------------------- routing

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if len(self.path) > MAX_URL:
            self._error(HTTPStatus.REQUEST_URI_TOO_LONG, "URL too long")
            return
        url = urlsplit(self.path)
        path = url.path
        query = {k: v[0] for k, v in parse_qs(url.query, max_num_fields=10).items()}
        try:
            self._route_get(path, query)
        except views.BadQuery as exc:
            self._error(400, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:  # loop boundary of one request
            log.exception("request failed: %s", path[:100])
            self._error(500, "internal error")

    def _route_get(self, path: str, query: dict[str, str]) -> None:
        web = self.server.web
        if path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
            return
        if path.startswith("/static/"):
            self._static(path.removeprefix("/static/"))
            return
        if path == "/login":
            self._send(200, login_page(), "text/html; charset=utf-8")
            return
        if not self._authorised():
            if path == "/":
                self._send(401, login_page(), "text/html; charset=utf-8")
            else:
                self._error(401, "a valid Bearer token or session is required")
            return
        snap = web.state.snapshot()
        if path == "/":
            self._send(200, main_page(), "text/html; charset=utf-8")
        elif path == "/api/gates":
            self._json(views.gates(snap, query.get("site") or None))
        elif path.startswith("/api/gates/"):
            parts = path.removeprefix("/api/gates/").split("/")
            if len(parts) != 2 or not all(NAME.fullmatch(p) for p in parts):
                self._error(404, "no such gate")
                return
            view = snap.gates.get((parts[0], parts[1]))
            if view is None:
                self._error(404, "no such gate")
            else:
                self._json(views.gate_json(view))
        elif path == "/api/sites":
            self._json(views.sites(snap))
        elif path == "/api/alarms":
            if query.get("history"):
                from kiosk.central.fleet.alarms import alarm_json
                from kiosk.central.fleet.store import recent_alarms

                with web.db.connect() as conn:
                    self._json([alarm_json(row) for row in recent_alarms(conn)])
            else:
                self._json(list(snap.alarms))
        elif path == "/api/counts":
            self._counts(query)
        elif path == "/api/commands":
            self._commands(query)
        elif path.startswith("/chart/") and path.endswith(".svg"):
            site = path.removeprefix("/chart/").removesuffix(".svg")
            if not NAME.fullmatch(site):
                self._error(404, "no such site")
                return
            with web.db.connect() as conn:
                hours = views.site_hours(conn, snap, site, web.clock())
            self._send(200, site_chart(site, hours).encode(), "image/svg+xml")
        elif path == "/api/stream":
            self._stream(query.get("site") or None)
        elif path == "/metrics":
            text = web.metrics.render(snap, web.rejected())
            self._send(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._error(404, "not found")

    def do_POST(self) -> None:
        web = self.server.web
        path = urlsplit(self.path).path
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if not 0 <= length <= web.max_body:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
            self.close_connection = True
            return
        body = self.rfile.read(length)
        if path == "/login":
            fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=5)
            sid = web.access.login((fields.get("token") or [""])[0].strip())
            if sid is None:
                self._send(401, login_page(failed=True), "text/html; charset=utf-8")
                return
            cookie = f"{COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_S}"
            self._send(303, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie})
        elif path == "/logout":
            web.access.logout(self.headers.get("Cookie"))
            cookie = f"{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
            self._send(303, b"", "text/plain", {"Location": "/login", "Set-Cookie": cookie})
        else:
            self._error(404, "not found")

    # -------------------------------------------------------------------- pages

    def _static(self, name: str) -> None:
        ctype = STATIC.get(name)
        if ctype is None:
            self._error(404, "not found")
            return
        body = resources.files("kiosk.central.fleet").joinpath("static", name).read_bytes()
        self._send(200, body, ctype)

    def _counts(self, query: dict[str, str]) -> None:
        web = self.server.web
        for key in ("site", "gate"):
            if query.get(key) and not NAME.fullmatch(query[key]):
                raise views.BadQuery(f"{key}: not a site/gate name")
        with web.db.connect() as conn:
            rows = views.counts(
                conn,
                web.state.snapshot(),
                site=query.get("site") or None,
                gate=query.get("gate") or None,
                start=query.get("from"),
                end=query.get("to"),
                bucket=query.get("bucket", "hour"),
                now=web.clock(),
            )
        if query.get("format") == "csv":
            self._send(
                200,
                views.counts_csv(rows).encode(),
                "text/csv; charset=utf-8",
                {"Content-Disposition": 'attachment; filename="counts.csv"'},
            )
        else:
            self._json(rows)

    def _commands(self, query: dict[str, str]) -> None:
        """Command outcomes the gates reported, newest first (``site``, ``gate``, ``limit``)."""
        from kiosk.central.fleet.alarms import command_json
        from kiosk.central.fleet.store import recent_commands

        for key in ("site", "gate"):
            if query.get(key) and not NAME.fullmatch(query[key]):
                raise views.BadQuery(f"{key}: not a site/gate name")
        raw = query.get("limit", "200")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise views.BadQuery("limit: an integer 1..1000")
        with self.server.web.db.connect() as conn:
            rows = recent_commands(
                conn, query.get("site") or None, query.get("gate") or None, int(raw)
            )
        self._json([command_json(row) for row in rows])

    def _stream(self, site: str | None) -> None:
        """Server-sent events: ``update`` with sites, alarms and changed gates of ``site``."""
        web = self.server.web
        if site is not None and not NAME.fullmatch(site):
            raise views.BadQuery("site: not a site name")
        if not web.streams.acquire(blocking=False):
            self._error(503, "too many live streams")
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            self.close_connection = True
            seen = -1
            while not web.stopping.is_set():
                snap = web.state.wait(seen, 15.0)
                if snap.version == seen:
                    self.wfile.write(b": keepalive\n\n")
                    self.wfile.flush()
                    continue
                changed = [
                    views.gate_json(snap.gates[k])
                    for k, v in sorted(snap.changed.items())
                    if v > seen and (site is None or k[0] == site)
                ]
                data = {
                    "version": snap.version,
                    "sites": views.sites(snap),
                    "alarms": list(snap.alarms),
                    "gates": changed,
                    "commands": [
                        c for c in snap.commands if site is None or c["site"] == site
                    ][:views.COMMANDS_SHOWN],
                    "newest_bundle": snap.newest_bundle,
                }
                payload = json.dumps(data, separators=(",", ":"))
                self.wfile.write(f"event: update\ndata: {payload}\n\n".encode())
                self.wfile.flush()
                seen = snap.version
                web.stopping.wait(web.sse_interval_s)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        finally:
            web.streams.release()
