"""Scale-out: instances on one broker through a shared subscription and one PostgreSQL.

Two instances (``$share/fleet/...`` for counts and events, a real PostgreSQL
server started by the fixture) must show exactly the totals, today's counters
and hourly series that one SQLite instance shows for the same traffic,
including duplicated and replayed reports.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from kiosk.central.fleet.service import FleetService
from kiosk.decision import Decision, InputKind, Reason
from tests.central.helpers import (
    RawGate,
    api,
    fleet_config,
    gate_view,
    minutes_ago,
    running,
    wait_until,
)
from tests.conftest import Mosquitto

MIX = [
    Decision(allowed=True, reason=Reason.OK, input=InputKind.QR),
    Decision(allowed=False, reason=Reason.EXPIRED, input=InputKind.QR),
    Decision(allowed=True, reason=Reason.OK, input=InputKind.NIK),
    Decision(allowed=False, reason=Reason.REVOKED, input=InputKind.QR),
]


def _strip(gates: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(g["site"], g["gate"], g["seq"], g["totals"], g["today"]) for g in gates]


def test_two_instances_on_postgresql_equal_one_on_sqlite(
        tmp_path: Path, mosquitto_factory: type[Mosquitto],
        postgres_db: Callable[[], str]) -> None:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    pg_url = postgres_db()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shared = {"store.url": pg_url, "mqtt.shared_group": "fleet"}
    single = fleet_config(tmp_path, broker.port)
    first = fleet_config(tmp_path / "a", broker.port, **shared)
    second = fleet_config(tmp_path / "b", broker.port, **shared)
    rng = random.Random(13)
    gates = [RawGate(broker.host, broker.port, f"site-{i % 2}", f"g{i}") for i in range(4)]
    try:
        with running(single) as one, running(first) as a, running(second) as b:
            for gate in gates:
                gate.online()
            at = minutes_ago(1)
            for _ in range(60):
                gate = rng.choice(gates)
                gate.decide(rng.choice(MIX), at)
                if rng.random() < 0.3:  # QoS 1 re-sends and replays
                    gate.publish("counts", rng.choice(gate.sent))
            for gate in gates:
                gate.status(at)
            want = {(g.site, g.gate): g.seq for g in gates}

            def caught_up(service: FleetService) -> bool:
                return all((gate_view(service, s, n) or {}).get("seq") == seq
                           for (s, n), seq in want.items())

            assert wait_until(lambda: caught_up(one) and caught_up(a) and caught_up(b), 20)
            time.sleep(2.5)  # one shared sync of "today" from the database
            expected = _strip(api(one, "/api/gates"))
            assert _strip(api(a, "/api/gates")) == expected
            assert _strip(api(b, "/api/gates")) == expected
            assert api(a, "/api/counts?bucket=day") == api(one, "/api/counts?bucket=day")
            assert api(b, "/api/sites") == api(one, "/api/sites")
            # The broker really split the counts between the two instances.
            split = [s.state.snapshot().counters.get("messages.counts", 0) for s in (a, b)]
            assert all(split) and sum(split) == one.state.snapshot().counters["messages.counts"]
            total = sum(len(g.sent) for g in gates)
            allowed = sum(g.totals.get("allowed", 0) for g in gates)
            assert sum(s["today"].get("allowed", 0) for s in api(one, "/api/sites")) == allowed
            assert total == 60
    finally:
        for gate in gates:
            gate.close()
