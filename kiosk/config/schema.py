"""The typed configuration tree: one frozen dataclass per TOML table.

Each field declares its bounds with :func:`setting`; :mod:`kiosk.config.loader`
reads these declarations to validate a file, so the rules live in one place.
Defaults here are the documented defaults of ``config/kiosk.toml``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from kiosk.config.ids import id_problem, quote
from kiosk.config.topics import fill_topic_root, topic_prefix_problem, topic_root_problem
from kiosk.errors import ConfigError

# Hard safety limit for a relay pulse: a turnstile solenoid held longer than this
# overheats, and an open arm that never closes defeats counting.
RELAY_PULSE_HARD_MAX_MS = 5000
# Hard limit for hold-until-passage mode (and for the passage timeout): beyond
# this an unattended open arm is a security hole, whatever the config says.
RELAY_HOLD_HARD_MAX_S = 30


def setting(
    default: Any,
    *,
    doc: str,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    check: Callable[[str], str | None] | None = None,
) -> Any:
    """Declare a config field with its default, documentation and bounds.

    ``check`` (string settings) returns why a value is unusable, or None.
    """
    return field(
        default=default,
        metadata={"doc": doc, "min": min, "max": max, "choices": choices, "check": check},
    )


def data_file_problem(name: str) -> str | None:
    """Why ``name`` is not a relative file name that stays inside ``device.data_dir``."""
    path = PurePosixPath(name)
    if path.is_absolute() or "\\" in name:
        return f"{quote(name)} must be a file name inside device.data_dir, not an absolute path"
    if any(part == ".." for part in path.parts) or not path.parts or name.endswith("/"):
        return f"{quote(name)} must be a file name inside device.data_dir (no '..')"
    return None


def country_problem(code: str) -> str | None:
    """Why ``code`` is not an ISO 3166-1 alpha-2 country code (two capital letters), or None."""
    if len(code) != 2 or not ("A" <= code[0] <= "Z" and "A" <= code[1] <= "Z"):
        return f"{quote(code, 10)} is not a two-letter country code (ISO 3166-1, capitals)"
    return None


SERIAL_PATTERN_MAX = 256


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable regular expression, or None."""
    if len(pattern) > SERIAL_PATTERN_MAX:
        return f"longer than {SERIAL_PATTERN_MAX} characters"
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"not a regular expression: {quote(str(exc), 80)}"
    return None


@dataclass(frozen=True)
class DeviceConfig:
    """Identity of this gate and where it keeps its state."""

    site: str = setting(
        "demo-site", doc="Site identifier, used in MQTT topics.", check=id_problem
    )
    gate: str = setting(
        "gate-01", doc="Gate identifier, unique within the site.", check=id_problem
    )
    data_dir: Path = setting(
        Path("/var/lib/kiosk"), doc="Folder for the count database and runtime state."
    )
    timezone: str = setting(
        "Asia/Jakarta", doc="IANA time zone of the gate; 'today' counters reset at its midnight."
    )

    def __post_init__(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = quote(self.timezone)
            raise ConfigError(f"device.timezone: unknown time zone {zone}") from None

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
    metering: str = setting(
        "centre",
        doc="picamera2 exposure metering (AeMeteringMode): centre (weighted), spot (the middle "
        "of the view: a phone screen held there is exposed for) or matrix.",
        choices=("centre", "spot", "matrix"),
    )
    exposure_mode: str = setting(
        "normal",
        doc="picamera2 AeExposureMode: normal, short (prefers gain over long exposures: "
        "less motion blur from a moving hand) or long.",
        choices=("normal", "short", "long"),
    )
    exposure_value: float = setting(
        0.0,
        doc="picamera2 ExposureValue in stops: -1 halves the exposure (bright phone screens), "
        "+1 doubles it (dark paper), 0 leaves the camera's own.",
        min=-8.0,
        max=8.0,
    )
    autofocus: str = setting(
        "none",
        doc="picamera2 autofocus (Camera Module 3): none (fixed-focus modules: nothing is set), "
        "manual (lens fixed at lens_position), auto (one focus cycle at start) or continuous.",
        choices=("none", "manual", "auto", "continuous"),
    )
    lens_position: float = setting(
        4.0,
        doc="With autofocus = manual: the lens position in dioptres (1 / distance in metres; "
        "4.0 = 25 cm, 0 = infinity).",
        min=0.0,
        max=15.0,
    )
    af_range: str = setting(
        "normal",
        doc="With autofocus = auto or continuous: AfRange normal, macro (close codes only) "
        "or full.",
        choices=("normal", "macro", "full"),
    )
    stall_after_s: float = setting(
        3.0,
        doc="A camera whose frames stop advancing (the same capture time again) for this long "
        "is stalled: reported and restarted (0: no stall detection).",
        min=0.0,
        max=600,
    )
    max_reopens: int = setting(
        5,
        doc="Re-create the camera (after a failure or a stall that a restart in place did "
        "not cure) at most this often; then the service exits for systemd to start it clean "
        "(re-creating a Picamera2 object leaks). A camera that is absent is not counted.",
        min=1,
        max=1000,
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
    idle_after_s: float = setting(
        2.0,
        doc="After this long with a still scene and no QR symbol, only frames that change "
        "the scene are decoded (0: decode every frame).",
        min=0.0,
        max=600,
    )
    isolate: bool = setting(
        True,
        doc="Run pyzbar in a supervised worker process (zbar can abort the process); "
        "zxing-cpp decodes while it restarts.",
    )
    idle_check_every_s: float = setting(
        1.0,
        doc="While idle, a frame is decoded at least this often anyway.",
        min=0.05,
        max=10,
    )
    hold_steady_after_frames: int = setting(
        4,
        doc="Consecutive frames with a QR symbol seen but not read before the screen says "
        "\"hold steady\" (0: never).",
        min=0,
        max=100,
    )


@dataclass(frozen=True)
class VerifyConfig:
    """Local certificate verification."""

    trust_source: str = setting(
        "auto",
        doc="bundle (signed trust bundle only), folder (unsigned dev mode: trust_dir) or "
        "auto (the bundle when installed, else trust_dir when it exists).",
        choices=("auto", "bundle", "folder"),
    )
    trust_dir: Path = setting(
        Path("/etc/kiosk/trust"),
        doc="Dev mode: folder of trusted signer certificates (PEM or DER), unsigned.",
    )
    bundle_file: str = setting(
        "trust-bundle.cose",
        doc="Installed signed trust bundle, inside device.data_dir.",
        check=data_file_problem,
    )
    authority_keys: Path = setting(
        Path("/etc/kiosk/authority"),
        doc="Central authority Ed25519 public key(s): one PEM file or a folder of *.pem.",
    )
    on_expired: str = setting(
        "deny",
        doc="Trust bundle older than max age + grace: deny (TRUST_EXPIRED) or allow "
        "(keep verifying; status shows expired; staff the lane).",
        choices=("deny", "allow"),
    )
    reload_interval_s: float = setting(
        30.0,
        doc="Check the installed bundle file this often and load a new one without a "
        "restart (SIGHUP: at once); 0 = only at start. Signed bundle only.",
        min=0,
        max=3600,
    )


@dataclass(frozen=True)
class ClockConfig:
    """Trusted time on a device without a real-time clock."""

    unsynchronised: str = setting(
        "hold",
        doc="Clock not synchronised: hold (never below the high-water mark), allow (as hold, "
        "and the clock advances the mark) or deny (every scan CLOCK_UNTRUSTED).",
        choices=("hold", "allow", "deny"),
    )
    probe: str = setting(
        "adjtimex",
        doc="How to tell the clock is synchronised: adjtimex (kernel), timesyncd (flag "
        "file) or none (never: rely on the high-water mark).",
        choices=("adjtimex", "timesyncd", "none"),
    )
    state_file: str = setting(
        "clock.json",
        doc="High-water mark of trusted time, inside device.data_dir.",
        check=data_file_problem,
    )
    persist_interval_s: float = setting(
        300.0, doc="Write the high-water mark at most this often.", min=10, max=86400
    )
    max_step_s: float = setting(
        86400.0, doc="A synchronised reading further ahead of the mark (plus the time the "
        "gate has run since) is a jump, adopted only when the trust bundle's validity "
        "covers it.", min=60, max=366 * 86400,
    )
    bundle_tolerance_s: float = setting(
        3600.0, doc="A bundle issued_at up to this far ahead of the trusted time raises the "
        "mark at once; later ones wait until the clock reaches them.", min=0, max=7 * 86400,
    )
    jump_confirm_s: float = setting(
        900.0, doc="Without a trust bundle (dev folder): a jump held this long is adopted; "
        "0 = never.", min=0, max=30 * 86400,
    )


@dataclass(frozen=True)
class PolicyConfig:
    """Entry rules: the scan mode of this site and its overrides of the bundle's rules."""

    mode: str = setting(
        "",
        doc="Scan mode (3G, 2G, booster, any or a bundle-defined one); empty = the "
        "bundle's default mode (any in unsigned dev mode).",
    )
    test_naa_max_hours: int = setting(
        0, doc="Largest NAA/PCR test age in hours; 0 = the bundle's (72).", min=0, max=720
    )
    test_rat_max_hours: int = setting(
        0, doc="Largest rapid antigen test age in hours; 0 = the bundle's (24).", min=0, max=720
    )
    recovery_max_days: int = setting(
        0, doc="Largest days since the first positive test; 0 = the bundle's (180).",
        min=0, max=3650,
    )
    country: str = setting(
        "ID", doc="Country of arrival (ISO 3166-1 alpha-2): the bundle's CertLogic "
        "Acceptance rules of this country apply, with it as external.countryCode.",
        check=country_problem,
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
    relay_mode: str = setting(
        "pulse",
        doc="pulse (relay_pulse_ms per grant) or hold (relay on until passage or timeout).",
        choices=("pulse", "hold"),
    )
    passage_timeout_s: float = setting(
        10.0,
        doc="A grant with no passage within this time is counted unused_grant.",
        min=1,
        max=RELAY_HOLD_HARD_MAX_S,
    )
    passback_window_s: float = setting(
        300.0,
        doc="The same certificate is refused again within this time; 0 turns it off.",
        min=0,
        max=86400,
    )
    amber_led_pin: int = setting(12, doc="BCM pin of the amber (status) LED.", min=2, max=27)
    buzzer_pin: int | None = setting(13, doc="BCM pin of the buzzer; unset = none.", min=2, max=27)
    buzzer_active_high: bool = setting(True, doc="True if the buzzer sounds on a high pin.")
    passage_pin: int = setting(23, doc="BCM pin of the passage (beam) sensor.", min=2, max=27)
    passage_active_high: bool = setting(
        False, doc="True if the sensor pin is high while someone is in the beam."
    )
    fire_alarm_pin: int | None = setting(
        24, doc="BCM pin of the fire-alarm NC contact; unset = none.", min=2, max=27
    )
    fire_alarm_active_high: bool = setting(
        True, doc="True if the pin is high in alarm (NC contact to ground, pull-up)."
    )
    exit_button_pin: int | None = setting(
        None, doc="BCM pin of the exit push button (to ground); unset = none.", min=2, max=27
    )
    arm_feedback_pin: int | None = setting(
        None, doc="BCM pin of the arm-position switch (to ground); unset = none.", min=2, max=27
    )
    staff_confirm_pin: int | None = setting(
        None,
        doc="BCM pin of the staff key confirming a manual KTP check (to ground); unset = none.",
        min=2,
        max=27,
    )
    staff_refuse_pin: int | None = setting(
        None,
        doc="BCM pin of the staff key refusing a manual KTP check (to ground); unset = none.",
        min=2,
        max=27,
    )
    arm_feedback_timeout_s: float = setting(
        1.5, doc="Relay on but the arm did not move within this time: a fault.", min=0.2, max=10
    )
    debounce_ms: int = setting(
        50,
        doc="An input level counts once stable this long (sampled, 2+ samples).",
        min=0,
        max=1000,
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

    db_file: str = setting(
        "counts.sqlite", doc="SQLite file name inside device.data_dir.", check=data_file_problem
    )
    bucket_s: int = setting(
        60, doc="Time-series interval of counts messages, seconds.", min=10, max=3600
    )
    outbox_max_rows: int = setting(
        100_000,
        doc="Above this many queued reports, old ones are merged.",
        min=1000,
        max=10_000_000,
    )
    outbox_max_mb: int = setting(
        64, doc="Above this database size in MiB, old reports are merged.", min=1, max=4096
    )


@dataclass(frozen=True)
class MqttConfig:
    """Reporting to the central system. The gate never needs it to decide."""

    enabled: bool = setting(True, doc="Publish counts and status over MQTT.")
    host: str = setting("127.0.0.1", doc="Broker host name or address.")
    port: int = setting(1883, doc="Broker TCP port.", min=1, max=65535)
    topic_root: str = setting(
        "kiosk/{site}/{gate}",
        doc="Topic prefix; {site} and {gate} are filled in (each once, as a whole level).",
        check=topic_root_problem,
    )
    keepalive_s: int = setting(30, doc="MQTT keepalive.", min=5, max=3600)
    drain_timeout_s: float = setting(
        5.0,
        doc="On exit, wait at most this long for queued counts to reach the broker.",
        min=0,
        max=120,
    )
    tls_ca: Path | None = setting(None, doc="CA certificate (PEM) of the broker; set = use TLS.")
    tls_cert: Path | None = setting(None, doc="This gate's client certificate (PEM).")
    tls_key: Path | None = setting(None, doc="The private key of tls_cert (PEM).")
    username: str = setting("", doc="MQTT user name; empty = none.")
    password_file: Path | None = setting(None, doc="File holding the MQTT password.")
    discovery: bool = setting(True, doc="Announce the gate to Home Assistant (MQTT discovery).")
    discovery_prefix: str = setting(
        "homeassistant", doc="Home Assistant discovery prefix.", check=topic_prefix_problem
    )

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = "mqtt.tls_key" if self.tls_key is None else "mqtt.tls_cert"
            present = "mqtt.tls_cert" if self.tls_key is None else "mqtt.tls_key"
            raise ConfigError(f"{present}: requires {missing} (they are set together)")
        if self.tls_cert is not None and self.tls_ca is None:
            raise ConfigError("mqtt.tls_cert: requires mqtt.tls_ca (client certificates need TLS)")
        if self.password_file is not None and not self.username:
            raise ConfigError("mqtt.password_file: requires mqtt.username")


@dataclass(frozen=True)
class LoggingConfig:
    """Logging to stderr (journald on the device)."""

    level: str = setting("INFO", doc="Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


@dataclass(frozen=True)
class NikConfig:
    """KTP number (NIK) entry: site policy, the signed status list, input device."""

    mode: str = setting(
        "off",
        doc="off (NIK entry refused), list (signed offline status list) or manual (staff check).",
        choices=("off", "list", "manual"),
    )
    list_dir: Path = setting(
        Path("/var/lib/kiosk/niklist"), doc="Folder of the installed NIK status list."
    )
    on_list_unavailable: str = setting(
        "deny",
        doc="list mode with no valid, unexpired list: deny or manual (staff check).",
        choices=("deny", "manual"),
    )
    verify_data_on_load: str = setting(
        "changed",
        doc="Hash the list data at start: changed (only if altered since install) or always.",
        choices=("changed", "always"),
    )
    rate_burst: int = setting(5, doc="NIK attempts allowed in a burst.", min=1, max=100)
    rate_per_minute: float = setting(
        6.0, doc="Sustained NIK attempts per minute after the burst.", min=0.1, max=600
    )
    entry_timeout_s: float = setting(
        20.0, doc="A half-typed NIK is cleared after this many seconds idle.", min=5, max=300
    )
    manual_timeout_s: float = setting(
        60.0,
        doc="A manual KTP check not answered by staff in this time is refused.",
        min=5,
        max=600,
    )
    input: str = setting(
        "none",
        doc="NIK input device: none, keypad (evdev), serial (e-KTP reader) or terminal.",
        choices=("none", "keypad", "serial", "terminal"),
    )
    keypad_device: str = setting(
        "", doc="keypad: /dev/input/... path or the device name as the kernel reports it."
    )
    serial_port: str = setting("/dev/ttyUSB0", doc="serial: the e-KTP reader's serial port.")
    serial_baud: int = setting(9600, doc="serial: baud rate.", min=1200, max=921600)
    serial_pattern: str = setting(
        r"(?<![0-9])([0-9]{16})(?![0-9])",
        doc="serial: regular expression whose first group is the NIK in a line.",
        check=regex_problem,
    )
    serial_terminator: str = setting(
        "lf", doc="serial: line terminator: lf, cr or crlf.", choices=("lf", "cr", "crlf")
    )


def pull_url_problem(url: str) -> str | None:
    """Why ``url`` is not usable as remote.pull_url (empty means "pull is off")."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return f"{quote(url)} must be an https:// URL with a host"
    if parts.query or parts.fragment or parts.username or parts.password:
        return f"{quote(url)} must not carry a query, fragment or credentials"
    return None


@dataclass(frozen=True)
class RemoteConfig:
    """Operators' signed commands over MQTT (docs/remote.md); off unless enabled."""

    commands: bool = setting(
        False,
        doc="Accept commands signed by an operator certified by verify.authority_keys.",
    )
    distribution: bool = setting(
        False,
        doc="Install signed trust bundles and NIK lists the centre publishes over MQTT.",
    )
    updates: bool = setting(
        False,
        doc="Install signed software updates distributed over MQTT (needs distribution).",
    )
    install_root: Path = setting(
        Path("/opt/kiosk"), doc="Where install.sh --pi put releases/ and current."
    )
    memory_file: str = setting(
        "commands.json",
        doc="Accepted command ids until they expire (replay refusal), inside device.data_dir.",
        check=data_file_problem,
    )
    pull_url: str = setting(
        "",
        doc="https:// base URL to poll for releases (kiosk central publish --out-dir); "
        "empty: off. Same checks as MQTT distribution; works without MQTT.",
        check=pull_url_problem,
    )
    pull_interval_s: float = setting(
        900.0, doc="Seconds between polls of remote.pull_url (each gate adds ±10 %).",
        min=10, max=86400,
    )
    pull_ca_file: Path | None = setting(
        None, doc="CA certificate (PEM) for remote.pull_url; unset: the system's CAs."
    )


@dataclass(frozen=True)
class KioskConfig:
    """The whole configuration tree."""

    device: DeviceConfig = field(default_factory=DeviceConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    counts: CountsConfig = field(default_factory=CountsConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    nik: NikConfig = field(default_factory=NikConfig)
    remote: RemoteConfig = field(default_factory=RemoteConfig)

    @property
    def counts_db_path(self) -> Path:
        """Full path of the SQLite count database."""
        return self.device.data_dir / self.counts.db_file

    @property
    def mqtt_topic_root(self) -> str:
        """The topic prefix with site and gate filled in, without a trailing slash."""
        return fill_topic_root(self.mqtt.topic_root, self.device.site, self.device.gate)
