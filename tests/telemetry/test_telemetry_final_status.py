"""A clean stop leaves the run's totals in the retained status (with store, seq, timezone).

Before, a short run that counted 6 could leave a retained status with totals 0:
the last periodic status went out before the counts. Now the publisher sends a
final status just before ``offline``.
"""

from __future__ import annotations

import json
from pathlib import Path

from kiosk.demo import run_demo
from tests.conftest import Mosquitto
from tests.telemetry.helpers import Recorder, wait_until


def test_the_retained_status_after_a_clean_stop_has_the_runs_totals(
        tmp_path: Path, mosquitto_factory: type[Mosquitto]) -> None:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    assert run_demo(tmp_path / "demo", once=True, broker=(broker.host, broker.port),
                    headless=True, fast=True, out=lambda _: None) == 0
    # A subscriber that arrives afterwards gets only what is retained.
    late = Recorder(broker.host, broker.port, "kiosk/demo-site/demo-gate/status")
    try:
        late.wait_subscribed()
        assert wait_until(lambda: late.messages, 5.0)
        status = json.loads(late.messages[-1].payload)
        assert late.messages[-1].retain
        assert status["totals"]["allowed"] == 2 and status["totals"]["denied"] == 4
        assert status["seq"] == 6 and len(status["store"]) == 32
        assert status["timezone"] == "Asia/Jakarta"
        assert status["today"]["allowed"] == 2
    finally:
        late.close()
