"""Builds the fleet service from its parts and runs it (``kiosk fleet serve``).

:func:`build_service` is a context manager: on entry the database schema exists,
the consumer is connecting and the HTTP server listens; on exit everything
stops in reverse order (HTTP first, so no request reads a closing state).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kiosk.central.fleet.auth import Access, read_tokens
from kiosk.central.fleet.config import FleetConfig
from kiosk.central.fleet.consumer import FleetConsumer
from kiosk.central.fleet.db import Database
from kiosk.central.fleet.metrics import MetricsCache
from kiosk.central.fleet.notify import Notifier
from kiosk.central.fleet.notify_body import StoreFacts
from kiosk.central.fleet.state import FleetState
from kiosk.central.fleet.web import FleetServer, FleetWeb

log = logging.getLogger(__name__)


@dataclass
class FleetService:
    """A running fleet service: its URL, the token made at start (if no token file)."""

    config: FleetConfig
    state: FleetState
    consumer: FleetConsumer
    server: FleetServer
    token: str | None
    notifier: Notifier

    @property
    def url(self) -> str:
        """The page's address, e.g. ``http://127.0.0.1:8080/``."""
        return self.server.url


@contextmanager
def build_service(config: FleetConfig, *, base: Path | None = None) -> Iterator[FleetService]:
    """Start the service described by ``config``; stop it on exit.

    Args:
        config: the validated configuration.
        base: folder a relative SQLite path is resolved against (default: the current one).

    Raises:
        ConfigError: unreadable token file. StoreError: the database cannot be opened.
        OSError: the HTTP address is in use.
    """
    token: str | None = None
    if config.http.token_file is not None:
        tokens = read_tokens(config.http.token_file)
    else:
        token = secrets.token_urlsafe(24)
        tokens = [token]
    db = Database(config.store.url, base)
    facts = StoreFacts(lambda: state.snapshot(), db)
    notifier = Notifier(config.notify, facts)  # reads the secret: fails before anything runs
    state = FleetState(db, config, on_alarm=notifier.feed)
    notifier.resume(state.snapshot().alarms)
    consumer = FleetConsumer(config.mqtt, state)
    web = FleetWeb(
        state=state,
        db=db,
        access=Access(tokens),
        rejected=consumer.rejected,
        max_body=config.http.max_body_bytes,
        sse_interval_s=config.http.sse_interval_s,
    )
    web.metrics = MetricsCache(notifier.exposed)
    try:
        server = FleetServer((config.http.host, config.http.port), web)
    except BaseException:  # address in use: nothing started yet but the state's database
        state.close()
        raise
    http_thread = threading.Thread(
        target=server.serve_forever,
        name="kiosk-fleet-http",
        kwargs={"poll_interval": 0.2},
        daemon=True,
    )
    notifier.start()
    consumer.start()
    http_thread.start()
    log.info("fleet page on %s (store %s)", server.url, db.label)
    try:
        yield FleetService(config, state, consumer, server, token, notifier)
    finally:
        web.stopping.set()
        server.shutdown()
        server.server_close()
        http_thread.join(5)
        consumer.stop()
        notifier.stop()  # after the consumer: no alarm change arrives any more
        facts.close()
