"""The gate acts before the bookkeeping, and the bookkeeping still loses nothing.

Real parts: signed HC1 codes rendered as camera frames, the real decoder and
verifier, the gate on MockFactory, the SQLite count and anti-passback stores.
Order is read from the relay pin's own history at the moment each store write
happens: the decision's "relay on" must already be there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import segno
from gpiozero.pins.mock import MockFactory

from kiosk.app import GateApp, build_app
from kiosk.camera import ArrayFrameSource
from kiosk.config import KioskConfig, load_config
from kiosk.decision import Decision
from kiosk.demo import camera_frame
from kiosk.telemetry import CountStore
from kiosk.verify import issuer

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
TRAVELLERS = 6


@pytest.fixture(scope="module")
def texts_and_dsc() -> tuple[list[str], bytes]:
    """TRAVELLERS distinct certificates, the first shown again, and a promo code."""
    key, der = issuer.make_signer(
        "Order DSC", not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=365)
    )
    texts = []
    for i in range(TRAVELLERS):
        payload = issuer.sample_vaccination()
        payload["v"][0]["ci"] = f"URN:UVCI:01:DE:ORDER{i:025d}#0"
        texts.append(issuer.issue_hc1(
            payload, key, der, iat=NOW - timedelta(hours=1), exp=NOW + timedelta(days=30)
        ))
    return [*texts, texts[0], "https://promo.example/diskon"], der


class Clock:
    """A virtual monotonic clock: pulses and result screens end when the test says."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _config(tmp_path: Path, der: bytes) -> KioskConfig:
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "dsc.der").write_bytes(der)
    return load_config(None, {
        "device.data_dir": str(tmp_path / "state"),
        "verify.trust_dir": str(trust),
        "decoder.backend": "zxing",
        "decoder.rearm_s": 0.0,
        "gate.pin_factory": "mock",
        "display.driver": "dummy",
        "display.fullscreen": False,
        "mqtt.enabled": False,
    })


@pytest.fixture
def gate(
    tmp_path: Path, texts_and_dsc: tuple[list[str], bytes]
) -> Iterator[tuple[GateApp, MockFactory, Clock, list[Decision], KioskConfig]]:
    texts, der = texts_and_dsc
    config = _config(tmp_path, der)
    frames = [camera_frame(segno.make(text, error="m", micro=False)) for text in texts]
    factory, clock, decisions = MockFactory(), Clock(), []
    source = ArrayFrameSource(frames, clock=clock)
    with build_app(config, source=source, pin_factory=factory, wall_clock=lambda: NOW,
                   monotonic=clock, on_decision=decisions.append) as app:
        app.loop.start()
        yield app, factory, clock, decisions, config
    factory.close()


def _hook(part: Any, method: str, log: list[tuple[str, int, bool]], relay: Any) -> None:
    """Record, at each call of ``part.method``, how much relay history exists and its level."""
    inner = getattr(part, method)

    def recording(*args: Any, **kwargs: Any) -> Any:
        log.append((method, len(relay.states), relay.state == 1))
        return inner(*args, **kwargs)

    setattr(part, method, recording)


def _show_all(app: GateApp, clock: Clock, frames: int) -> None:
    """One loop turn per frame, a second apart: each pulse ends before the next frame."""
    for _ in range(frames):
        assert app.loop.step()
        clock.t += 1.0  # the pulse (0.5 s) ends; no grant (10 s) expires unused
        app.loop.tick()


def test_the_relay_is_driven_before_the_count_and_passback_writes(
    gate: tuple[GateApp, MockFactory, Clock, list[Decision], KioskConfig],
    texts_and_dsc: tuple[list[str], bytes],
) -> None:
    app, factory, clock, decisions, config = gate
    relay = factory.pin(config.gate.relay_pin)
    writes: list[tuple[str, int, bool]] = []
    _hook(app.store, "record", writes, relay)
    passback = app.loop.driver.passback
    assert passback is not None
    _hook(passback, "admit", writes, relay)
    _show_all(app, clock, len(texts_and_dsc[0]))

    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == TRAVELLERS  # the repeat and the promo code are denied
    on_entries = [i + 1 for i, st in enumerate(relay.states) if i and st.state == 1]
    assert len(on_entries) == TRAVELLERS
    counted = [w for w in writes if w[0] == "record"]
    admitted = [w for w in writes if w[0] == "admit"]
    assert len(counted) == len(decisions) and len(admitted) == TRAVELLERS
    # Each allow's writes happen with its "relay on" already in the pin's history.
    allow_writes = [w for w, d in zip(counted, decisions, strict=True) if d.allowed]
    for (_, history, on), (_, admit_history, admit_on), entry in zip(
        allow_writes, admitted, on_entries, strict=True
    ):
        assert on and admit_on
        assert history >= entry and admit_history >= entry


def test_every_decision_is_counted_once_and_on_disk_when_the_turn_ends(
    gate: tuple[GateApp, MockFactory, Clock, list[Decision], KioskConfig],
    texts_and_dsc: tuple[list[str], bytes],
) -> None:
    app, _factory, clock, decisions, config = gate
    shown = len(texts_and_dsc[0])
    for turn in range(shown):
        assert app.loop.step()
        # Durable before the next turn: another connection sees the totals already.
        with sqlite3.connect(str(config.counts_db_path)) as db:
            on_disk = dict(db.execute("SELECT name, value FROM totals").fetchall())
        assert on_disk.get("allowed", 0) + on_disk.get("denied", 0) == turn + 1
        clock.t += 1.0  # the pulse (0.5 s) ends; no grant (10 s) expires unused
        app.loop.tick()
    assert len(decisions) == shown
    assert app.loop.stats.scans == shown
    totals = app.store.totals()
    assert totals["allowed"] == TRAVELLERS == app.loop.stats.allowed
    assert totals["denied"] == shown - TRAVELLERS == app.loop.stats.denied
    app.store.close()
    with CountStore(config.counts_db_path) as again:  # what a restart would find
        assert again.totals()["allowed"] == TRAVELLERS
        assert again.totals()["denied"] == shown - TRAVELLERS
