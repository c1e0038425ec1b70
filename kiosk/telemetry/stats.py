"""Counters of the MQTT publisher, and asking the gate's status provider safely."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


def ask_provider(provider: Callable[[], Mapping[str, Any]] | None) -> Mapping[str, Any]:
    """``provider()``, or ``{}`` when there is none or it raised (logged): fields become null."""
    if provider is None:
        return {}
    try:
        return provider()
    except Exception:  # other people's code: report nulls, keep publishing
        log.exception("status provider failed")
        return {}


@dataclass(frozen=True, slots=True)
class PublisherStats:
    """A snapshot of the publisher's counters.

    ``published`` counts outbox rows handed to paho (re-sends included), ``acked``
    rows deleted after PUBACK, ``reconnects`` successful connections after the
    first. ``last_error`` is a reason-code text, never payload or exception text.
    """

    connected: bool
    published: int
    acked: int
    reconnects: int
    last_error: str | None
    pending: int | None
