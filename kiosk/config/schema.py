"""The typed configuration tree: one frozen dataclass per TOML table.

Each field declares its bounds with :func:`setting`; :mod:`kiosk.config.loader`
reads these declarations to validate a file, so the rules live in one place.
Defaults here are the documented defaults of ``config/kiosk.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Hard safety limit for a relay pulse: a turnstile solenoid held longer than this
# overheats, and an open arm that never closes defeats counting.
RELAY_PULSE_HARD_MAX_MS = 5000


def setting(
    default: Any,
    *,
    doc: str,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """Declare a config field with its default, documentation and bounds."""
    return field(default=default, metadata={"doc": doc, "min": min, "max": max, "choices": choices})


@dataclass(frozen=True)
class DeviceConfig:
    """Identity of this gate and where it keeps its state."""

    site: str = setting("demo-site", doc="Site identifier, used in MQTT topics.")
    gate: str = setting("gate-01", doc="Gate identifier, unique within the site.")
    data_dir: Path = setting(
        Path("/var/lib/kiosk"), doc="Folder for the count database and runtime state."
    )

    @property
    def device_id(self) -> str:
        """Fleet-wide identity: ``<site>/<gate>``."""
        return f"{self.site}/{self.gate}"


@dataclass(frozen=True)
class CameraConfig:
    """Where frames come from."""

    source: str = setting(
        "picamera2",
        doc="picamera2 (the Pi camera), files (an image file or folder) or video (a video file).",
        choices=("picamera2", "files", "video"),
    )
    path: Path | None = setting(None, doc="Image file/folder or video file for files/video.")
    width: int = setting(
        640, doc="Width of the low-resolution stream in pixels.", min=160, max=4056
    )
    height: int = setting(
        480, doc="Height of the low-resolution stream in pixels.", min=120, max=3040
    )
    fps: float = setting(
        15.0, doc="Frames per second requested (and paced for files).", min=1, max=120
    )
    frame_timeout_s: float = setting(
        2.0, doc="A camera that delivers no frame within this time is a fault.", min=0.1, max=60
    )
    loop: bool = setting(False, doc="files/video: start again at the end instead of stopping.")


@dataclass(frozen=True)
class DecoderConfig:
    """QR decoding."""

    backend: str = setting(
        "auto",
        doc="auto (zxing-cpp when installed, else pyzbar), zxing or pyzbar.",
        choices=("auto", "zxing", "pyzbar"),
    )
    rearm_s: float = setting(
        2.0,
        doc="A code held in view is one scan until it has been out of view this long.",
        min=0.0,
        max=60,
    )


@dataclass(frozen=True)
class VerifyConfig:
    """Local certificate verification."""

    trust_dir: Path = setting(
        Path("/etc/kiosk/trust"), doc="Folder of trusted signer certificates (PEM or DER)."
    )


@dataclass(frozen=True)
class GateConfig:
    """Turnstile outputs on GPIO (BCM numbering)."""

    pin_factory: str = setting(
        "native",
        doc="native (gpiozero picks lgpio/rpigpio on the Pi) or mock (simulation).",
        choices=("native", "mock"),
    )
    relay_pin: int = setting(17, doc="BCM pin driving the relay board.", min=2, max=27)
    relay_active_high: bool = setting(True, doc="True if the relay energises on a high pin.")
    relay_pulse_ms: int = setting(
        500, doc="Relay pulse length on allow.", min=50, max=RELAY_PULSE_HARD_MAX_MS
    )
    green_led_pin: int = setting(27, doc="BCM pin of the green (allowed) LED.", min=2, max=27)
    red_led_pin: int = setting(22, doc="BCM pin of the red (denied) LED.", min=2, max=27)
    led_active_high: bool = setting(True, doc="True if the LEDs light on a high pin.")
    result_hold_s: float = setting(
        3.0,
        doc="How long the result LED and screen stay before returning to idle.",
        min=0.5,
        max=30,
    )


@dataclass(frozen=True)
class DisplayConfig:
    """The traveller-facing screen (pygame)."""

    enabled: bool = setting(True, doc="Show results on a screen.")
    driver: str = setting(
        "auto",
        doc="SDL video driver: auto, kmsdrm (Pi console), x11, wayland or dummy (headless).",
        choices=("auto", "kmsdrm", "x11", "wayland", "dummy"),
    )
    width: int = setting(800, doc="Window width in pixels.", min=320, max=3840)
    height: int = setting(480, doc="Window height in pixels.", min=240, max=2160)
    fullscreen: bool = setting(True, doc="Full screen on the device; windowed in development.")


@dataclass(frozen=True)
class CountsConfig:
    """Local, durable counters."""

    db_file: str = setting("counts.sqlite", doc="SQLite file name inside device.data_dir.")


@dataclass(frozen=True)
class MqttConfig:
    """Reporting to the central system. The gate never needs it to decide."""

    enabled: bool = setting(True, doc="Publish counts and status over MQTT.")
    host: str = setting("127.0.0.1", doc="Broker host name or address.")
    port: int = setting(1883, doc="Broker TCP port.", min=1, max=65535)
    topic_root: str = setting(
        "kiosk/{site}/{gate}", doc="Topic prefix; {site} and {gate} are filled in."
    )
    keepalive_s: int = setting(30, doc="MQTT keepalive.", min=5, max=3600)
    drain_timeout_s: float = setting(
        5.0,
        doc="On exit, wait at most this long for queued counts to reach the broker.",
        min=0,
        max=120,
    )


@dataclass(frozen=True)
class LoggingConfig:
    """Logging to stderr (journald on the device)."""

    level: str = setting("INFO", doc="Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


@dataclass(frozen=True)
class KioskConfig:
    """The whole configuration tree."""

    device: DeviceConfig = field(default_factory=DeviceConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    counts: CountsConfig = field(default_factory=CountsConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    @property
    def counts_db_path(self) -> Path:
        """Full path of the SQLite count database."""
        return self.device.data_dir / self.counts.db_file

    @property
    def mqtt_topic_root(self) -> str:
        """The topic prefix with site and gate filled in, without a trailing slash."""
        root = self.mqtt.topic_root.format(site=self.device.site, gate=self.device.gate)
        return root.rstrip("/")
