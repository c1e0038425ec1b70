"""The exception hierarchy: one base, specific leaves.

Each leaf also subclasses the matching built-in where one fits, so callers that
only know the built-in (``ValueError``, ``TimeoutError``, ``OSError``) still
catch it. Verification failures are *not* exceptions that escape the scan loop:
they become deny decisions (see :mod:`kiosk.decision`).
"""


class KioskError(Exception):
    """Base of every error raised by this package."""


class ConfigError(KioskError, ValueError):
    """A configuration file or override is invalid.

    The message names the file, the dotted key, the line (when known) and the
    reason, e.g. ``kiosk.toml:12: gate.relay_pulse_ms: 9000 is above the maximum 5000``.
    """


class CameraError(KioskError, OSError):
    """The frame source failed (device missing, stream ended unexpectedly)."""


class CameraTimeout(CameraError, TimeoutError):
    """The camera did not deliver a frame within the configured timeout."""


class DecoderUnavailable(KioskError, ImportError):
    """The requested QR decoder backend is not installed on this machine."""


class VerificationError(KioskError, ValueError):
    """A certificate failed a verification step; carries the deny reason.

    Raised inside the verifier only and always converted into a deny decision
    before it reaches the scan loop.
    """

    def __init__(self, reason: "object", detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail


class TelemetryError(KioskError):
    """The local count store or the MQTT publisher failed."""


class GpioError(KioskError, OSError):
    """A gate output could not be set up or driven (pin in use, invalid, closed)."""


class GpioUnavailable(GpioError):
    """No GPIO backend works on this machine (not a Pi, library missing, no permission)."""


class DisplayError(KioskError, RuntimeError):
    """The screen could not be opened or drawn (no video device, driver missing)."""


class DocumentError(KioskError, ValueError):
    """A signed document from the central authority (trust bundle, NIK status list)
    is malformed, of the wrong kind, too large, or not signed by a trusted authority key.
    The current document stays in force."""


class EnrolmentError(KioskError, ValueError):
    """The enrolment CA refused a request (unknown, used or expired token; bad CSR)."""


class ProvisionError(KioskError, ValueError):
    """Provisioning this gate cannot go on (a missing answer, a certificate that does not fit)."""
