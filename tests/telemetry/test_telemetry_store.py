"""CountStore / OutboxReader against a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.decision import Decision, InputKind, Reason
from kiosk.errors import TelemetryError
from kiosk.telemetry import CountStore, OutboxReader

from .helpers import at, decisions

DEVICE = "site-a/gate-01"


def tally(ds: list[Decision]) -> dict[str, int]:
    """The expected totals, computed independently of the store."""
    c: Counter[str] = Counter({"allowed": 0, "denied": 0, "input.qr": 0, "input.nik": 0})
    for d in ds:
        c["allowed" if d.allowed else "denied"] += 1
        if not d.allowed:
            c[f"denied.{d.reason.value}"] += 1
        c[f"input.{d.input.value}"] += 1
    return dict(c)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "counts.sqlite"


def test_record_counts_per_reason_and_input(db: Path) -> None:
    with CountStore(db, DEVICE) as store:
        assert store.totals() == {"allowed": 0, "denied": 0, "input.nik": 0, "input.qr": 0}
        after = store.record(Decision(allowed=True, reason=Reason.OK), at(0))
        store.record(Decision.deny(Reason.EXPIRED), at(1))
        store.record(Decision.deny(Reason.EXPIRED), at(2))
        last = store.record(Decision.deny(Reason.NIK_NOT_LISTED, input=InputKind.NIK), at(3))
        assert after["allowed"] == 1
        expected = {
            "allowed": 1,
            "denied": 3,
            "denied.expired": 2,
            "denied.nik_not_listed": 1,
            "input.qr": 3,
            "input.nik": 1,
        }
        assert store.totals() == expected == last
        assert store.pending_count() == 4


def test_outbox_payload_is_the_report_of_that_decision(db: Path) -> None:
    d = Decision(
        allowed=False,
        reason=Reason.REVOKED,
        holder_masked="B*** S******",
        detail="kid 1234 revoked",
    )
    with CountStore(db, DEVICE) as store:
        totals = store.record(d, at(5))
        (msg,) = store.pending(10)
    body = json.loads(msg.payload)
    assert msg.topic == "counts" and msg.qos == 1 and not msg.retain
    assert body == {
        "v": 1,
        "device": DEVICE,
        "store": store.store_id,
        "boot": 1,
        "seq": 1,
        "seq_first": 1,
        "ts": "2024-05-01T08:00:05.000Z",
        "ts_first": "2024-05-01T08:00:05.000Z",
        "bucket": {"start": "2024-05-01T08:00:00.000Z", "s": 60},
        "result": "denied",
        "reason": "revoked",
        "input": "qr",
        "delta": {"denied": 1, "denied.revoked": 1, "input.qr": 1},
        "totals": totals,
    }
    # Nothing personal or free-text leaves the device.
    assert b"B***" not in msg.payload and b"kid" not in msg.payload


def test_gate_events_are_counted_and_reported_in_sequence(db: Path) -> None:
    with CountStore(db, DEVICE) as store:
        store.record(Decision(allowed=True, reason=Reason.OK), at(1))
        store.record_event("passage", at(2))
        totals = store.record_event("passage", at(3))
        store.record_event("tailgate", at(4))
        messages = store.pending(10)
    assert totals["passage"] == 2 and totals["allowed"] == 1
    bodies = [json.loads(m.payload) for m in messages if m.topic == "counts"]
    assert [b.get("event") for b in bodies] == [None, "passage", "passage", "tailgate"]
    assert [b["seq"] for b in bodies] == [1, 2, 3, 4]
    assert bodies[-1]["totals"]["tailgate"] == 1 and "result" not in bodies[-1]
    # The tailgate is an alarm: also on <root>/events, with the seq of its count.
    (alarm,) = [json.loads(m.payload) for m in messages if m.topic == "events"]
    assert alarm == {
        "v": 1,
        "device": DEVICE,
        "store": store.store_id,
        "seq": 4,
        "ts": "2024-05-01T08:00:04.000Z",
        "event": "tailgate",
        "kind": "alarm",
    }


@pytest.mark.parametrize("name", ["", "Passage", "denied;drop", "a b", "1st", "x."])
def test_invalid_event_names_are_refused_without_writing(db: Path, name: str) -> None:
    with CountStore(db, DEVICE) as store:
        with pytest.raises(ValueError, match="invalid event counter name"):
            store.record_event(name, at(1))
        assert store.pending_count() == 0


def test_timestamps_are_reported_in_utc(db: Path) -> None:
    wib = timezone(timedelta(hours=7))  # Western Indonesia Time
    with CountStore(db, DEVICE) as store:
        store.record(decisions(1)[0], datetime(2024, 5, 1, 15, 0, 0, 123456, tzinfo=wib))
        (msg,) = store.pending(1)
    assert json.loads(msg.payload)["ts"] == "2024-05-01T08:00:00.123Z"
    assert msg.created_at == "2024-05-01T08:00:00.123Z"


def test_totals_outbox_and_boot_survive_reopen(db: Path) -> None:
    with CountStore(db, DEVICE) as store:
        for i, d in enumerate(decisions(10)):
            store.record(d, at(i))
        before, store_id = store.totals(), store.store_id
        assert store.boot == 1
    with CountStore(db, DEVICE) as store:
        assert store.totals() == before == tally(decisions(10))
        assert store.pending_count() == 10
        assert store.boot == 2 and store.store_id == store_id
        assert json.loads(store.pending(1)[0].payload)["boot"] == 1  # report keeps its boot


def test_seq_gapless_and_monotonic_across_acks_and_reopen(db: Path) -> None:
    with CountStore(db, DEVICE) as store:
        for i, d in enumerate(decisions(5)):
            store.record(d, at(i))
        seqs = [m.seq for m in store.pending(100)]
        assert seqs == [1, 2, 3, 4, 5]
        for seq in seqs:
            store.ack(seq)  # delete everything: the next seq must not restart
        assert store.pending_count() == 0
    with CountStore(db, DEVICE) as store:
        store.record(decisions(1)[0], at(9))
        (msg,) = store.pending(10)
        assert msg.seq == 6 and json.loads(msg.payload)["seq"] == 6


def test_record_is_atomic_when_the_outbox_insert_fails(db: Path) -> None:
    with CountStore(db, DEVICE) as store:
        store.record(decisions(1)[0], at(0))
        before = store.totals()
        # A real SQLite failure inside the transaction, after the totals were updated.
        raw = sqlite3.connect(db)
        raw.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
        raw.commit()
        with pytest.raises(TelemetryError):
            store.record(Decision.deny(Reason.EXPIRED), at(1))
        assert store.totals() == before
        assert store.pending_count() == 1
        raw.execute("DROP TRIGGER fail")
        raw.commit()
        raw.close()
        store.record(Decision.deny(Reason.EXPIRED), at(2))  # and the store still works
        assert [m.seq for m in store.pending(10)] == [1, 2]


def test_database_is_sound_and_in_wal_mode(db: Path) -> None:
    with CountStore(db, DEVICE) as store:
        for i, d in enumerate(decisions(20)):
            store.record(d, at(i))
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_naive_timestamp_rejected_without_writing(db: Path) -> None:
    with CountStore(db, DEVICE) as store, pytest.raises(ValueError):
        store.record(decisions(1)[0], datetime(2024, 5, 1, 8, 0))
    with OutboxReader(db) as reader:
        assert reader.pending_count() == 0


def test_close_is_idempotent_and_use_after_close_fails(db: Path) -> None:
    store = CountStore(db, DEVICE)
    store.close()
    store.close()
    with pytest.raises(TelemetryError):
        store.totals()


def test_unopenable_path_raises_telemetry_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(TelemetryError):
        CountStore(blocker / "counts.sqlite", DEVICE)


def test_writer_and_reader_threads_do_not_lose_rows(db: Path) -> None:
    """The scan loop records while the publisher thread acks: every row is seen once."""
    n = 300
    acked: list[int] = []
    done = threading.Event()

    def publisher() -> None:
        with OutboxReader(db) as reader:  # opened in its own thread, as the publisher does
            while not (done.is_set() and reader.pending_count() == 0):
                batch = [m.seq for m in reader.pending(17)]
                reader.ack_many(batch)
                acked.extend(batch)

    with CountStore(db, DEVICE) as store:
        t = threading.Thread(target=publisher, name="test-reader")
        t.start()
        for i, d in enumerate(decisions(n)):
            store.record(d, at(i))
        done.set()
        t.join(30)
        assert not t.is_alive()
        assert store.totals() == tally(decisions(n))
    assert acked == list(range(1, n + 1))


decision_st = st.one_of(
    st.builds(
        lambda k: Decision(allowed=True, reason=Reason.OK, input=k), st.sampled_from(InputKind)
    ),
    st.builds(
        lambda r, k: Decision.deny(r, input=k),
        st.sampled_from([r for r in Reason if r is not Reason.OK]),
        st.sampled_from(InputKind),
    ),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ds=st.lists(decision_st, max_size=25))
def test_totals_equal_tallies_for_any_sequence(tmp_path: Path, ds: list[Decision]) -> None:
    db = tmp_path / f"h{len(list(tmp_path.iterdir()))}.sqlite"
    with CountStore(db, DEVICE) as store:
        for i, d in enumerate(ds):
            last = store.record(d, at(i))
            assert last == store.totals()
        assert store.totals() == tally(ds)
        msgs = store.pending(1000)
    assert [m.seq for m in msgs] == list(range(1, len(ds) + 1))
    if msgs:
        assert json.loads(msgs[-1].payload)["totals"] == tally(ds)
