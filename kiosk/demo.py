"""``kiosk demo``: the whole gate in simulation, for a newcomer's first run.

On first run it makes a demo signer (key + X.509 certificate), a set of sample
certificates as real QR images, and camera-sized frames of them; then it plays
the frames through the real pipeline (decode → verify → gate on gpiozero's
MockFactory → screen → SQLite counts → MQTT when a broker answers) and prints
each decision with the relay and LED states.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import segno
from PIL import Image

from kiosk.app import GateApp, build_app
from kiosk.camera.files import ImageFrameSource
from kiosk.config import KioskConfig, load_config
from kiosk.decision import Decision, Reason
from kiosk.display.messages import message_for
from kiosk.gate import make_pin_factory
from kiosk.telemetry import broker_reachable
from kiosk.verify import issuer

log = logging.getLogger(__name__)

FRAME_SIZE = (640, 480)
MATERIAL_VERSION = 1
# Regenerate demo certificates well before they expire.
MATERIAL_MAX_AGE = timedelta(days=30)


@dataclass(frozen=True)
class Sample:
    """One demo certificate: its file stem, what it shows, and the expected outcome."""

    name: str
    label: str
    expected: Reason


SAMPLES = (
    Sample("01-valid-vaccination", "valid vaccination certificate", Reason.OK),
    Sample("02-valid-test", "valid negative test certificate", Reason.OK),
    Sample("03-expired", "expired vaccination certificate", Reason.EXPIRED),
    Sample("04-tampered", "tampered signature", Reason.SIGNATURE_INVALID),
    Sample("05-unknown-signer", "signed by a key the gate does not trust", Reason.UNKNOWN_SIGNER),
    Sample("06-not-a-certificate", "a shop's promotion QR code", Reason.NOT_HC1),
)


def run_demo(
    workdir: Path,
    *,
    once: bool,
    broker: tuple[str, int] | None = ("127.0.0.1", 1883),
    headless: bool = False,
    fast: bool = False,
    out: Callable[[str], None] = print,
) -> int:
    """Run the demo; returns 0, or 1 if (with ``once``) a sample was decided unexpectedly.

    Args:
        workdir: folder for demo keys, images, counts (created on first run).
        once: play the samples once and exit with a summary; else loop until Ctrl-C.
        broker: (host, port) to publish to when a broker answers there; None: never.
        headless: never open a window (also implied when no display is available).
        fast: do not pace frames at the camera rate (for tests).
        out: where terminal lines go.
    """
    workdir = workdir.resolve()
    ensure_material(workdir)
    config = demo_config(workdir, broker=broker, headless=headless)
    if config.mqtt.enabled:
        out(
            f"publishing counts to mqtt://{config.mqtt.host}:{config.mqtt.port} "
            f"under {config.mqtt_topic_root}/"
        )
    elif broker is not None:
        out(
            f"no MQTT broker answers at mqtt://{config.mqtt.host}:{config.mqtt.port}: "
            "counts stay in the local outbox"
        )
    repeat = max(1, round(config.camera.fps * config.gate.result_hold_s))
    source = ImageFrameSource(
        workdir / "frames",
        fps=None if fast else config.camera.fps,
        loop=not once,
        repeat=repeat,
    )
    reporter = _Reporter(out, workdir / "screens" if config.display.driver == "dummy" else None)
    with build_app(
        config, source=source, pin_factory=make_pin_factory("mock"), on_decision=reporter
    ) as app:
        reporter.app = app
        out(
            f"decoder: {app.decoder_name}; trusted signers: {app.trusted_signers}; "
            f"samples in {workdir / 'qr'}"
        )
        try:
            app.loop.run(threading.Event())
        except KeyboardInterrupt:
            out("stopped")
        totals = app.store.totals()
    seen = reporter.decisions
    if reporter.screens is not None:
        out(f"what the screen showed: {reporter.screens}/*.png")
    allowed = sum(d.allowed for d in seen)
    out(f"allowed: {allowed}, denied: {len(seen) - allowed}")
    out(
        f"counts since first run (SQLite {config.counts_db_path}): "
        f"allowed {totals.get('allowed', 0)}, denied {totals.get('denied', 0)}"
    )
    if once:
        expected = [s.expected for s in SAMPLES]
        got = [d.reason for d in seen]
        if got != expected:
            out(
                f"unexpected decisions: expected {[str(r) for r in expected]}, "
                f"got {[str(r) for r in got]}"
            )
            return 1
    return 0


class _Reporter:
    """Prints each decision with the pin states right after the gate acted on it."""

    def __init__(self, out: Callable[[str], None], screens: Path | None) -> None:
        self.out = out
        self.screens = screens  # where to save what the screen shows, when nobody can see it
        self.app: GateApp | None = None
        self.decisions: list[Decision] = []

    def __call__(self, decision: Decision) -> None:
        self.decisions.append(decision)
        sample = SAMPLES[(len(self.decisions) - 1) % len(SAMPLES)]
        if self.app is None:
            return
        self.out(_line(sample, decision, self.app.outputs.snapshot()))
        if self.screens is not None and len(self.decisions) <= len(SAMPLES):
            self.screens.mkdir(exist_ok=True)
            self.app.screen.save_png(self.screens / f"{sample.name}.png")


def _line(sample: Sample, decision: Decision, pins: dict[str, bool]) -> str:
    verdict = "ALLOWED" if decision.allowed else "DENIED "
    message = message_for(decision.reason, decision.input)
    states = " ".join(f"{name}={'on' if on else 'off'}" for name, on in pins.items())
    return (
        f"{sample.name:<24} {verdict} {decision.reason:<17} {states:<38} "
        f"{message.title_id} / {message.title_en}"
    )


def demo_config(workdir: Path, *, broker: tuple[str, int] | None, headless: bool) -> KioskConfig:
    """The demo's configuration: the shipped config file with simulation overrides."""
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    windowed = has_display and not headless
    host, port = broker or ("127.0.0.1", 1883)
    overrides: dict[str, Any] = {
        "device.site": "demo-site",
        "device.gate": "demo-gate",
        "device.data_dir": str(workdir / "state"),
        "camera.source": "files",
        "camera.path": str(workdir / "frames"),
        "verify.trust_dir": str(workdir / "trust"),
        "gate.pin_factory": "mock",
        # Every run replays the same two valid certificates: anti-passback (kept
        # across restarts) would refuse them on the second run.
        "gate.passback_window_s": 0,
        "display.driver": "auto" if windowed else "dummy",
        "display.fullscreen": False,
        "mqtt.enabled": broker is not None and broker_reachable(host, port),
        "mqtt.host": host,
        "mqtt.port": port,
    }
    return load_config(workdir / "kiosk.toml", overrides)


def ensure_material(workdir: Path, now: datetime | None = None) -> None:
    """Create demo keys, certificates, QR images and frames unless fresh ones exist."""
    now = now or datetime.now(UTC)
    manifest_path = workdir / "manifest.json"
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
            made = datetime.fromisoformat(manifest["generated_at"])
            if manifest.get("version") == MATERIAL_VERSION and now - made < MATERIAL_MAX_AGE:
                return
        except (ValueError, KeyError, TypeError):
            pass  # unreadable manifest: regenerate
    for sub in ("trust", "qr", "frames", "keys", "state"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    payloads = sample_payloads(workdir, now)
    for old in (workdir / "frames").glob("*.png"):
        old.unlink()
    for sample in SAMPLES:
        qr = segno.make(payloads[sample.name], error="m", micro=False)
        qr.save(str(workdir / "qr" / f"{sample.name}.png"), scale=4, border=4)
        Image.fromarray(camera_frame(qr)).save(workdir / "frames" / f"{sample.name}.png")
    (workdir / "kiosk.toml").write_text(
        "# Demo gate configuration, written by `kiosk demo`.\n"
        "# Also runs with: kiosk run --config .kiosk-demo/kiosk.toml\n"
        '[device]\nsite = "demo-site"\ngate = "demo-gate"\ndata_dir = "state"\n'
        '[camera]\nsource = "files"\npath = "frames"\n'
        '[verify]\ntrust_dir = "trust"\n'
        '[gate]\npin_factory = "mock"\n'
        '[display]\ndriver = "dummy"\nfullscreen = false\n'
    )
    manifest_path.write_text(
        json.dumps({"version": MATERIAL_VERSION, "generated_at": now.isoformat()}, indent=2)
    )


def sample_payloads(workdir: Path, now: datetime) -> dict[str, str]:
    """Sign the sample certificates with a fresh demo signer; write its certificate as trusted."""
    key, cert_der = issuer.make_signer(
        "Kiosk Demo DSC", not_before=now - timedelta(days=1), not_after=now + timedelta(days=365)
    )
    rogue_key, rogue_der = issuer.make_signer(
        "Untrusted DSC", not_before=now - timedelta(days=1), not_after=now + timedelta(days=365)
    )
    (workdir / "trust" / "demo-dsc.der").write_bytes(cert_der)
    # The demo key is written for people who want to sign their own samples; it is
    # trusted only by demo gates, never a real one.
    (workdir / "keys" / "README").write_text("Demo signer; trusted by the demo gate only.\n")
    iat, exp = now - timedelta(hours=1), now + timedelta(days=180)
    valid_v = issuer.issue_hc1(issuer.sample_vaccination(), key, cert_der, iat=iat, exp=exp)
    tampered = issuer.tamper_signature(valid_v)
    return {
        "01-valid-vaccination": valid_v,
        "02-valid-test": issuer.issue_hc1(issuer.sample_test(), key, cert_der, iat=iat, exp=exp),
        "03-expired": issuer.issue_hc1(
            issuer.sample_vaccination(),
            key,
            cert_der,
            iat=now - timedelta(days=200),
            exp=now - timedelta(days=1),
        ),
        "04-tampered": tampered,
        "05-unknown-signer": issuer.issue_hc1(
            issuer.sample_vaccination(), rogue_key, rogue_der, iat=iat, exp=exp
        ),
        "06-not-a-certificate": "https://promo.example/diskon-50-persen",
    }


def camera_frame(qr: segno.QRCode) -> np.ndarray:
    """Place ``qr`` on a grey 640×480 frame the way a phone held at 25 cm would appear."""
    modules = np.array(list(qr.matrix_iter(scale=1, border=4)), dtype=np.uint8)
    width, height = FRAME_SIZE
    scale = max(1, (height - 40) // modules.shape[0])
    code = np.where(np.kron(modules, np.ones((scale, scale), dtype=np.uint8)) > 0, 20, 235)
    frame = np.full((height, width), 128, dtype=np.uint8)
    top = (height - code.shape[0]) // 2
    left = (width - code.shape[1]) // 2
    frame[top : top + code.shape[0], left : left + code.shape[1]] = code
    return frame
