"""NikVerifier.begin/finish and the KdfWorker: same answers as verify(), KDF off the loop thread.

Real signed lists (fast scrypt parameters, as the other NIK tests), real
scrypt, a real worker thread; a gate (threading.Event) holds a derivation
"in progress" where a test needs that deterministically.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from kiosk.decision import Decision, InputKind, Reason
from kiosk.nik import ManualCheck, NikVerifier
from kiosk.nik.listfile import StatusList
from kiosk.nik.ratelimit import TokenBucket
from kiosk.nik.store import install_list, load_installed
from kiosk.nik.verifier import KdfJob
from kiosk.nik.worker import THREAD_NAME, KdfWorker
from tests.nik.conftest import MEMBERS, NON_MEMBERS, NOW, TRUSTED, FakeClock, ListFactory
from tests.nik.test_verifier import ExplodingList, make_verifier

WAIT_S = 5.0  # upper bound for a real worker thread in these tests; never reached when green


def _install(make_list: ListFactory, folder: Path, version: int = 1) -> StatusList:
    built = make_list(version=version)
    install_list(built.manifest_path, built.data_path, folder, TRUSTED, NOW)
    loaded = load_installed(folder, TRUSTED)
    assert loaded is not None
    return loaded


@pytest.fixture
def status_list(make_list: ListFactory, tmp_path: Path) -> StatusList:
    return _install(make_list, tmp_path / "gate")


def staged(verifier: NikVerifier, nik: str) -> Decision:
    """begin → derive → finish, the way the gate's loop runs them apart."""
    started = verifier.begin(nik)
    if isinstance(started, Decision):
        return started
    try:
        entry: bytes | BaseException = started.derive()
    except Exception as exc:
        entry = exc
    return verifier.finish(started, entry)


@dataclass
class Case:
    """A verifier set-up and the NIKs typed at it."""

    name: str
    mode: str
    niks: list[str]
    with_list: bool = True
    now: datetime = NOW
    burst: int = 100
    on_list_unavailable: str = "deny"


LATER = NOW + timedelta(days=8)  # the lists below expire after 7 days
CASES = [
    Case("member-and-non-member", "list", [*MEMBERS, *NON_MEMBERS]),
    Case("invalid", "list", ["3171013202990001", "３171014506990001", "1234", ""]),
    Case("rate-limited", "list", [MEMBERS[0], NON_MEMBERS[0], MEMBERS[1], MEMBERS[2]], burst=2),
    Case("manual", "manual", [MEMBERS[0], "junk"]),
    Case("off", "off", [MEMBERS[0]]),
    Case("no-list", "list", [MEMBERS[0]], with_list=False),
    Case("no-list-to-staff", "list", [MEMBERS[0]], with_list=False, on_list_unavailable="manual"),
    Case("expired", "list", [MEMBERS[0]], now=LATER),
    Case("expired-to-staff", "list", [MEMBERS[0]], now=LATER, on_list_unavailable="manual"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_begin_derive_finish_decides_and_counts_like_verify(
    case: Case, make_list: ListFactory, tmp_path: Path
) -> None:
    def build(folder: str) -> NikVerifier:
        status = _install(make_list, tmp_path / folder) if case.with_list else None
        return make_verifier(
            case.mode,
            FakeClock(),
            status_list=status,
            now=case.now,
            burst=case.burst,
            on_list_unavailable=case.on_list_unavailable,
        )

    sync, split = build("a"), build("b")
    for nik in case.niks:
        assert staged(split, nik) == sync.verify(nik)
    assert split.stats == sync.stats
    assert split.manual.counts == sync.manual.counts
    assert split.stats.attempts == len(case.niks)


@pytest.mark.parametrize("where", ["begin", "derive", "finish"])
def test_an_exception_at_any_step_is_the_same_internal_error(
    where: str,
    status_list: StatusList,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    nik = MEMBERS[0]

    def boom(*args: object) -> bytes:
        raise RuntimeError(f"boom {nik}")  # a message quoting the input must not leak

    if where == "begin":  # the wall clock fails
        verifiers = [make_verifier("list", FakeClock(), status_list=status_list) for _ in "ab"]
        for v in verifiers:
            v._wall_clock = boom  # type: ignore[assignment]
    elif where == "derive":
        monkeypatch.setattr("kiosk.nik.verifier.derive_entry", boom)
        verifiers = [make_verifier("list", FakeClock(), status_list=status_list) for _ in "ab"]
    else:  # the list lookup fails
        broken = ExplodingList(status_list)
        verifiers = [make_verifier("list", FakeClock(), status_list=broken) for _ in "ab"]
    sync, split = verifiers
    expected = sync.verify(nik)
    assert staged(split, nik) == expected
    assert expected.reason is Reason.INTERNAL_ERROR and expected.detail == "RuntimeError"
    assert split.stats == sync.stats and split.stats.errors == 1
    assert nik not in caplog.text and "boom" not in caplog.text


def test_a_list_swapped_while_the_key_is_derived_answers_try_again(
    make_list: ListFactory, tmp_path: Path, status_list: StatusList
) -> None:
    verifier = make_verifier("list", FakeClock(), status_list=status_list)
    job = verifier.begin(MEMBERS[0])
    assert isinstance(job, KdfJob) and job.status_list is status_list
    entry = job.derive()
    verifier.set_list(_install(make_list, tmp_path / "gate-v2", version=2))
    decision = verifier.finish(job, entry)
    # The entry was salted for v1: it means nothing in v2, and v1 is closed now.
    assert decision.reason is Reason.NIK_LIST_UNAVAILABLE and decision.detail == "list changed"
    assert verifier.stats.list_unavailable == 1 and verifier.stats.listed == 0
    # The traveller tries again and the new list answers.
    assert verifier.verify(MEMBERS[0]).detail == "list v2"


def test_a_list_removed_or_expired_meanwhile_gives_no_answer_from_it(
    status_list: StatusList,
) -> None:
    now = [NOW]
    verifier = NikVerifier(
        mode="list",
        limiter=TokenBucket(100, 1.0),
        manual=ManualCheck(timeout_s=60),
        status_list=status_list,
        wall_clock=lambda: now[0],
        monotonic=FakeClock(),
    )
    job = verifier.begin(MEMBERS[0])
    assert isinstance(job, KdfJob)
    now[0] = status_list.manifest.expires_at + timedelta(seconds=1)
    expired = verifier.finish(job, job.derive())
    assert expired.reason is Reason.NIK_LIST_UNAVAILABLE and expired.detail == "list expired"

    now[0] = NOW
    job = verifier.begin(MEMBERS[1])
    assert isinstance(job, KdfJob)
    verifier.set_list(None)
    assert verifier.finish(job, job.derive()).detail == "list changed"


def test_the_job_never_shows_the_nik_or_salt(status_list: StatusList) -> None:
    verifier = make_verifier("list", FakeClock(), status_list=status_list)
    job = verifier.begin(MEMBERS[0])
    assert isinstance(job, KdfJob)
    text = repr(job) + str(job)
    assert MEMBERS[0] not in text and MEMBERS[0][6:12] not in text
    assert status_list.manifest.salt.hex() not in text and repr(job.salt) not in text
    assert "version=1" in text
    aborted = verifier.abort(job, "nik check timed out")
    assert aborted.reason is Reason.INTERNAL_ERROR and aborted.input is InputKind.NIK
    assert verifier.stats.errors == 1


# -- the worker ------------------------------------------------------------------------


class Gate:
    """A derivation held "in progress" until the test opens the gate; then real scrypt."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.open = threading.Event()
        self.started = threading.Event()
        self.threads: list[str] = []
        self.fail = fail

    def derive(self, job: KdfJob) -> bytes:
        self.threads.append(threading.current_thread().name)
        self.started.set()
        if not self.open.wait(WAIT_S):
            raise TimeoutError("test gate never opened")
        if self.fail is not None:
            raise self.fail
        return job.derive()


@pytest.fixture
def worker_factory() -> Iterator[Callable[..., KdfWorker]]:
    made: list[KdfWorker] = []

    def make(*args: object, **kwargs: object) -> KdfWorker:
        worker = KdfWorker(*args, **kwargs)  # type: ignore[arg-type]
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.close()


def _wait_result(worker: KdfWorker) -> tuple[KdfJob, bytes | BaseException]:
    deadline = threading.Event()
    for _ in range(int(WAIT_S / 0.005)):
        result = worker.poll()
        if result is not None:
            return result
        deadline.wait(0.005)
    raise AssertionError("no result from the worker")


def test_worker_derives_with_real_scrypt_on_its_named_thread(
    status_list: StatusList, worker_factory: Callable[..., KdfWorker]
) -> None:
    verifier = make_verifier("list", FakeClock(), status_list=status_list)
    gate = Gate()
    worker = worker_factory(gate.derive)
    job = verifier.begin(MEMBERS[0])
    assert isinstance(job, KdfJob)
    assert worker.poll() is None and not worker.busy
    assert worker.submit(job) and worker.busy
    assert gate.started.wait(WAIT_S)
    assert worker.poll() is None and worker.busy  # in progress: poll does not block
    gate.open.set()
    done, entry = _wait_result(worker)
    assert done is job and entry == job.derive() and not worker.busy
    assert gate.threads == [THREAD_NAME]
    assert verifier.finish(job, entry).allowed


def test_worker_takes_one_job_at_a_time(
    status_list: StatusList, worker_factory: Callable[..., KdfWorker]
) -> None:
    verifier = make_verifier("list", FakeClock(), status_list=status_list)
    gate = Gate()
    worker = worker_factory(gate.derive)
    first, second = verifier.begin(MEMBERS[0]), verifier.begin(NON_MEMBERS[0])
    assert isinstance(first, KdfJob) and isinstance(second, KdfJob)
    assert worker.submit(first)
    assert not worker.submit(second)  # refused, not queued
    gate.open.set()
    assert _wait_result(worker)[0] is first
    assert worker.submit(second)
    assert _wait_result(worker)[0] is second


def test_worker_hands_back_the_exception_of_a_failed_derivation(
    status_list: StatusList, worker_factory: Callable[..., KdfWorker]
) -> None:
    verifier = make_verifier("list", FakeClock(), status_list=status_list)
    gate = Gate(fail=MemoryError())
    gate.open.set()
    worker = worker_factory(gate.derive)
    job = verifier.begin(MEMBERS[0])
    assert isinstance(job, KdfJob)
    assert worker.submit(job)
    _, result = _wait_result(worker)
    assert isinstance(result, MemoryError) and result.__traceback__ is None
    decision = verifier.finish(job, result)
    assert decision.reason is Reason.INTERNAL_ERROR and decision.detail == "MemoryError"
    assert worker.alive and not worker.busy  # the thread survives a failed job


def _kdf_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_close_stops_the_thread_and_is_idempotent() -> None:
    before = len(_kdf_threads())
    with KdfWorker() as worker:
        assert worker.alive and len(_kdf_threads()) == before + 1
        thread = worker._thread
        assert thread.daemon
    assert not thread.is_alive() and not worker.alive
    worker.close()
    assert len(_kdf_threads()) == before
    job_like = object.__new__(KdfJob)
    assert not worker.submit(job_like)  # a closed worker takes nothing


def test_close_does_not_wait_forever_for_a_running_derivation(
    status_list: StatusList, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = make_verifier("list", FakeClock(), status_list=status_list)
    gate = Gate()
    worker = KdfWorker(gate.derive, join_timeout_s=0.05)
    job = verifier.begin(MEMBERS[0])
    assert isinstance(job, KdfJob)
    worker.submit(job)
    assert gate.started.wait(WAIT_S)
    worker.close()  # scrypt cannot be interrupted: close gives up after its timeout
    assert "still running" in caplog.text and MEMBERS[0] not in caplog.text
    gate.open.set()
    worker._thread.join(WAIT_S)
    assert not worker._thread.is_alive()  # it ended on its own, taking no new job


def test_close_is_safe_after_a_failed_init() -> None:
    worker = object.__new__(KdfWorker)
    worker.close()
    worker.close()


def test_nothing_logged_at_debug_holds_the_nik(
    status_list: StatusList,
    worker_factory: Callable[..., KdfWorker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    verifier = make_verifier("list", FakeClock(), status_list=status_list)
    worker = worker_factory()
    for nik in (*MEMBERS, *NON_MEMBERS):
        job = verifier.begin(nik)
        assert isinstance(job, KdfJob)
        assert worker.submit(job)
        done, entry = _wait_result(worker)
        verifier.finish(done, entry)
        log = logging.getLogger("test")
        log.debug("job %r", job)  # what a careless debug line would print
    for nik in (*MEMBERS, *NON_MEMBERS):
        assert nik not in caplog.text and nik[6:12] not in caplog.text
