"""The running gate picks up a newly installed trust bundle: real bundles, files, threads.

Bundle v1 trusts DSC "old", v2 trusts DSC "new"; a certificate signed by "new"
is denied before the reload and allowed after it, so each test asserts what a
traveller at the gate would see, not only the version number.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import segno
from gpiozero.pins.mock import MockFactory
from PIL import Image

from kiosk.app import build_app
from kiosk.camera.files import ImageFrameSource
from kiosk.config import load_config
from kiosk.config.schema import PolicyConfig, VerifyConfig
from kiosk.decision import Decision, Reason
from kiosk.demo import camera_frame
from kiosk.errors import ConfigError
from kiosk.verify.atomic import atomic_write
from kiosk.verify.bundlefile import install_bundle, read_floor
from kiosk.verify.clock import FixedProbe, TrustedClock
from kiosk.verify.factory import open_trust_watcher, open_trusted_clock, open_verifier
from kiosk.verify.hc1 import Verifier
from kiosk.verify.issuer import make_signer, sample_vaccination
from kiosk.verify.reload import THREAD_NAME, TrustWatcher, reload_on_sighup
from kiosk.verify.rules import DEFAULT_POLICY

from .bundles import KEYS, make_bundle, signed, write_authority
from .conftest import NOW, issue

OLD = make_signer("Reload DSC old")
NEW = make_signer("Reload DSC new")
TICK = 0.05  # the watcher's poll interval in these tests
DEADLINE_S = 5.0


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {DEADLINE_S} s: {what}")
        time.sleep(0.01)


def _watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


@dataclass
class Gate:
    """A device verifier on a real state folder plus its watcher."""

    state: Path
    cfg: VerifyConfig
    verifier: Verifier
    clock: TrustedClock
    watcher: TrustWatcher | None

    @property
    def bundle(self) -> Path:
        return self.state / self.cfg.bundle_file

    def install(self, version: int, der: bytes, issued_at: datetime = NOW) -> None:
        install_bundle(signed(make_bundle(der, version=version, issued_at=issued_at)),
                       self.bundle, KEYS)

    def decide(self) -> Reason:
        """A valid vaccination certificate signed by the "new" DSC, at NOW."""
        return self.verifier.verify(issue(NEW, sample_vaccination())).reason


@pytest.fixture
def gate_factory(tmp_path: Path) -> Iterator[Callable[..., Gate]]:
    built: list[Gate] = []

    def make(interval_s: float = TICK, source: str = "bundle", install: bool = True,
             mode: str = "") -> Gate:
        state = tmp_path / "state"
        cfg = VerifyConfig(trust_source=source, trust_dir=tmp_path / "trust",
                           authority_keys=write_authority(tmp_path),
                           reload_interval_s=interval_s)
        if install:
            install_bundle(signed(make_bundle(OLD[1], version=1)), state / cfg.bundle_file, KEYS)
        clock = open_trusted_clock(None, wall_clock=lambda: NOW, state_dir=state,
                                   probe=FixedProbe(True))
        verifier = open_verifier(cfg, wall_clock=lambda: NOW, state_dir=state,
                                 policy=PolicyConfig(mode=mode), trusted_clock=clock)
        watcher = open_trust_watcher(verifier, cfg, state_dir=state,
                                     policy=PolicyConfig(mode=mode), clock=clock)
        gate = Gate(state, cfg, verifier, clock, watcher)
        built.append(gate)
        return gate

    yield make
    for gate in built:
        if gate.watcher is not None:
            gate.watcher.close()
        gate.verifier.close()


def test_newer_bundle_installed_while_running_is_used_without_restart(
        gate_factory: Callable[..., Gate], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    gate = gate_factory()
    assert gate.watcher is not None and gate.watcher.thread is not None
    assert gate.watcher.thread.name == THREAD_NAME and gate.watcher.thread.daemon
    assert gate.decide() is Reason.UNKNOWN_SIGNER
    issued = NOW + timedelta(hours=1)
    gate.install(2, NEW[1], issued_at=issued)
    _wait_for(lambda: gate.verifier.material.version == 2, "v2 swapped in")
    assert gate.verifier.health().bundle_version == 2  # what the screen and MQTT status show
    assert gate.decide() is Reason.OK
    assert gate.clock.high_water >= issued.timestamp()  # issue time is trusted time, as at start
    assert read_floor(gate.state / "trust-floor.json") == 2
    assert any("v2 reloaded without restart (was v1)" in r.getMessage()
               and r.levelno == logging.INFO for r in caplog.records)


def _running_at_v2(gate_factory: Callable[..., Gate]) -> Gate:
    """A running gate that has just picked up bundle v2 (trusting the NEW DSC)."""
    gate = gate_factory()
    gate.install(2, NEW[1])
    _wait_for(lambda: gate.verifier.material.version == 2, "v2 swapped in")
    return gate


def test_forged_file_keeps_the_current_material_and_logs_once(
        gate_factory: Callable[..., Gate], caplog: pytest.LogCaptureFixture) -> None:
    gate = _running_at_v2(gate_factory)
    caplog.set_level(logging.ERROR)
    forged = bytearray(signed(make_bundle(NEW[1], OLD[1], version=3)))
    forged[len(forged) // 2] ^= 0x01
    # Replaced by rename, as any copy tool that is not torn would: one new file state.
    atomic_write(gate.bundle, bytes(forged))

    def keeping() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "not usable; keeping v2" in r.getMessage()]

    _wait_for(lambda: len(keeping()) == 1, "the forged file refused")
    time.sleep(10 * TICK)  # ten more polls of the same file state
    assert len(keeping()) == 1
    assert gate.verifier.material.version == 2
    assert gate.decide() is Reason.OK
    # A new state of the file is looked at again: a good bundle still gets through.
    gate.bundle.unlink()
    _wait_for(lambda: len(keeping()) == 2, "the deleted file noticed")
    assert gate.decide() is Reason.OK
    gate.install(3, NEW[1])
    _wait_for(lambda: gate.verifier.material.version == 3, "v3 swapped in")


def test_older_signed_bundle_put_in_place_is_refused_while_running(
        gate_factory: Callable[..., Gate], caplog: pytest.LogCaptureFixture) -> None:
    gate = _running_at_v2(gate_factory)
    caplog.set_level(logging.ERROR)
    atomic_write(gate.bundle, signed(make_bundle(OLD[1], version=1)))  # genuine, older
    _wait_for(lambda: any("rollback refused" in r.getMessage() for r in caplog.records),
              "the rollback refused")
    assert gate.verifier.material.version == 2
    assert gate.decide() is Reason.OK


def test_gate_started_without_bundle_picks_one_up(gate_factory: Callable[..., Gate]) -> None:
    gate = gate_factory(install=False)
    assert gate.verifier.health().mode == "expired"
    assert gate.decide() is Reason.TRUST_EXPIRED
    gate.install(1, NEW[1])
    _wait_for(lambda: gate.verifier.material.version == 1, "the first bundle loaded")
    assert gate.verifier.health().mode == "fresh"
    assert gate.decide() is Reason.OK


def test_new_bundle_without_the_site_scan_mode_keeps_the_current_material(
        gate_factory: Callable[..., Gate], caplog: pytest.LogCaptureFixture) -> None:
    gate = gate_factory(mode="3G")
    caplog.set_level(logging.ERROR)
    # A bundle whose policy lacks the site's mode would stop a gate at start; while
    # running it must not leave the gate without material.
    no_3g = replace(DEFAULT_POLICY, modes={"2G": DEFAULT_POLICY.modes["2G"]}, default_mode="2G")
    install_bundle(signed(replace(make_bundle(NEW[1], version=2), policy=no_3g)),
                   gate.bundle, KEYS)
    assert gate.watcher is not None
    watcher = gate.watcher
    _wait_for(lambda: any("not applied" in r.getMessage() for r in caplog.records),
              "the bundle refused for its policy")
    assert watcher.thread is not None and watcher.thread.is_alive()
    assert gate.verifier.material.version == 1


def test_close_stops_the_thread_promptly(gate_factory: Callable[..., Gate]) -> None:
    gate = gate_factory(interval_s=3600)  # parked in a long wait
    assert gate.watcher is not None and gate.watcher.thread is not None
    thread = gate.watcher.thread
    assert thread.is_alive()
    started = time.monotonic()
    gate.watcher.close()
    assert not thread.is_alive()
    assert time.monotonic() - started < 1.0
    gate.watcher.close()  # idempotent


def test_interval_zero_starts_no_thread(gate_factory: Callable[..., Gate]) -> None:
    before = len(_watch_threads())
    gate = gate_factory(interval_s=0)
    assert gate.watcher is None
    assert len(_watch_threads()) == before
    watcher = TrustWatcher(gate.verifier, gate.bundle, lambda: gate.verifier.material,
                           interval_s=0)
    assert watcher.thread is None
    watcher.close()


def test_dev_folder_mode_has_no_watcher(tmp_path: Path,
                                        gate_factory: Callable[..., Gate]) -> None:
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "dsc.der").write_bytes(OLD[1])
    gate = gate_factory(source="folder", install=False)
    assert gate.verifier.health().mode == "dev"
    assert gate.watcher is None


def test_sighup_reloads_at_once(gate_factory: Callable[..., Gate]) -> None:
    gate = gate_factory(interval_s=3600)  # the poll alone would not see it for an hour
    assert gate.watcher is not None
    previous = signal.getsignal(signal.SIGHUP)
    with reload_on_sighup(gate.watcher) as wired:
        assert wired
        gate.install(2, NEW[1])
        os.kill(os.getpid(), signal.SIGHUP)
        _wait_for(lambda: gate.verifier.material.version == 2, "v2 swapped in after SIGHUP")
    assert signal.getsignal(signal.SIGHUP) == previous
    assert gate.decide() is Reason.OK


def test_sighup_is_not_wired_off_the_main_thread(gate_factory: Callable[..., Gate]) -> None:
    gate = gate_factory(interval_s=3600)
    assert gate.watcher is not None
    watcher = gate.watcher
    result: list[bool] = []

    def enter() -> None:
        with reload_on_sighup(watcher) as wired:
            result.append(wired)

    worker = threading.Thread(target=enter)
    worker.start()
    worker.join(timeout=5)
    assert result == [False]


def test_built_app_reloads_and_closes_its_watcher(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The real wiring: a running app allows a certificate only the new bundle trusts."""
    frames = tmp_path / "frames"
    frames.mkdir()
    qr = segno.make(issue(NEW, sample_vaccination()), error="m", micro=False)
    Image.fromarray(camera_frame(qr)).save(frames / "new.png")
    config = load_config(None, {
        "device.data_dir": str(tmp_path / "state"),
        "verify.trust_source": "bundle",
        "verify.authority_keys": str(write_authority(tmp_path)),
        "verify.reload_interval_s": 3600,  # SIGHUP, not the poll, does it here
        "clock.probe": "none",
        "gate.pin_factory": "mock",
        "display.driver": "dummy",
        "display.fullscreen": False,
        "mqtt.enabled": False,
    })
    bundle = config.device.data_dir / config.verify.bundle_file
    install_bundle(signed(make_bundle(OLD[1], version=1)), bundle, KEYS)
    decisions: list[Decision] = []
    caplog.set_level(logging.INFO)
    before = set(_watch_threads())
    with build_app(config, source=ImageFrameSource(frames, repeat=3),
                   pin_factory=MockFactory(), wall_clock=lambda: NOW,
                   on_decision=decisions.append) as app:
        watchers = [t for t in _watch_threads() if t not in before]
        assert len(watchers) == 1 and watchers[0].is_alive()
        install_bundle(signed(make_bundle(NEW[1], version=2)), bundle, KEYS)
        os.kill(os.getpid(), signal.SIGHUP)
        _wait_for(lambda: any("v2 reloaded without restart" in r.getMessage()
                              for r in caplog.records), "the app's verifier on v2")
        app.loop.run(threading.Event())
    assert not watchers[0].is_alive()
    assert [d.reason for d in decisions] == [Reason.OK]



@pytest.mark.parametrize(("value", "ok"), [(0, True), (0.5, True), (3600, True), (-1, False),
                                           (3601, False)])
def test_reload_interval_is_validated(value: float, ok: bool) -> None:
    overrides = {"verify.reload_interval_s": value}
    if ok:
        assert load_config(None, overrides).verify.reload_interval_s == value
    else:
        with pytest.raises(ConfigError, match=r"verify\.reload_interval_s"):
            load_config(None, overrides)
