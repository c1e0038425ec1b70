"""NIK input devices: USB keypad / keyboard wedge (evdev), serial e-KTP reader, terminal.

Every device delivers *keys* (``"0"``..``"9"`` or a :class:`~kiosk.nik.entry.Key`)
through ``read_key(timeout_s)``, so the gate feeds one :class:`NikEntry` whatever
is attached. The serial reader turns a whole NIK line into 16 digit keys plus
ENTER. evdev and pyserial are imported inside the adapter that needs them.
Devices never log what they read.
"""

from __future__ import annotations

import contextlib
import logging
import re
import select
from collections import deque
from typing import IO, Any, Protocol

from kiosk.errors import ConfigError, KioskError
from kiosk.nik.entry import Key
from kiosk.nik.keymap import key_for_event

log = logging.getLogger(__name__)

TERMINATORS = {"lf": b"\n", "cr": b"\r", "crlf": b"\r\n"}
_MAX_LINE = 1024  # a reader that never sends a terminator must not grow a buffer forever


class NikInputError(KioskError, OSError):
    """A NIK input device is missing, cannot be opened, or failed."""


class KeySource(Protocol):
    """Something that yields entry keys."""

    def read_key(self, timeout_s: float) -> str | None:
        """The next key, or None when none arrived within ``timeout_s`` seconds."""
        ...

    def close(self) -> None:
        """Release the device; safe to call twice."""
        ...


def extract_nik(line: bytes, pattern: re.Pattern[str]) -> str | None:
    """The NIK in one reader line: the pattern's first group, or None.

    Non-ASCII bytes are dropped before matching, so a reader's framing
    characters cannot smuggle in non-ASCII digits.
    """
    text = line.decode("ascii", errors="ignore")
    match = pattern.search(text)
    if match is None:
        return None
    nik = match.group(1) if match.groups() else match.group(0)
    return nik if nik.isascii() and nik.isdigit() else None


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile ``nik.serial_pattern``. Raises ConfigError with the reason."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"nik.serial_pattern: not a regular expression: {exc}") from None


class _KeyQueue:
    def __init__(self) -> None:
        self._keys: deque[str] = deque()

    def push_nik(self, nik: str) -> None:
        """Queue a whole NIK as digit keys followed by ENTER."""
        self._keys.extend(nik)
        self._keys.append(Key.ENTER)


class SerialKtpReader(_KeyQueue):
    """An e-KTP reader that prints each card's NIK as a text line on a serial port.

    Args:
        port: e.g. ``/dev/ttyUSB0``; ``serial_factory`` opens it (default: pyserial,
            imported lazily; tests pass a fake with ``read(n)``/``close()``).
    """

    def __init__(
        self,
        port: str,
        *,
        baud: int = 9600,
        pattern: str = r"(?<![0-9])([0-9]{16})(?![0-9])",
        terminator: str = "lf",
        serial_factory: Any = None,
    ) -> None:
        super().__init__()
        self._pattern = compile_pattern(pattern)
        self._terminator = TERMINATORS[terminator]
        self._buffer = b""
        self._serial: Any = None
        if serial_factory is None:
            try:
                import serial  # type: ignore[import-untyped,unused-ignore]
            except ImportError as exc:
                raise NikInputError("nik.input = serial needs pyserial installed") from exc
            serial_factory = serial.Serial
        try:
            self._serial = serial_factory(port, baud, timeout=0.1)
        except Exception as exc:  # pyserial raises SerialException (an OSError subclass)
            raise NikInputError(f"cannot open e-KTP reader {port}: {exc}") from exc

    def feed(self, data: bytes) -> None:
        """Add bytes from the port; complete lines with a NIK become keys."""
        self._buffer += data
        while (end := self._buffer.find(self._terminator)) >= 0:
            line, self._buffer = self._buffer[:end], self._buffer[end + len(self._terminator) :]
            nik = extract_nik(line, self._pattern)
            if nik is None:
                log.debug("e-KTP reader line without a NIK ignored (%d bytes)", len(line))
            else:
                self.push_nik(nik)
        if len(self._buffer) > _MAX_LINE:
            self._buffer = b""

    def read_key(self, timeout_s: float) -> str | None:
        """Next key; reads the port (pyserial's own 0.1 s timeout) when none is queued."""
        if not self._keys and self._serial is not None:
            self.feed(self._serial.read(256))
        return self._keys.popleft() if self._keys else None

    def close(self) -> None:
        """Close the port. Safe to call twice."""
        port, self._serial = self._serial, None
        if port is not None:
            port.close()


class TerminalNikSource(_KeyQueue):
    """Simulation: each line typed on a text stream (stdin) is a NIK entry.

    A line of digits becomes digit keys + ENTER; an empty line is CANCEL.
    """

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self._stream = stream

    def read_key(self, timeout_s: float) -> str | None:
        """Next key; reads one line when none is queued and one is ready within ``timeout_s``.

        A real terminal is polled with ``select`` so the scan loop never waits on a
        person typing; an in-memory stream (tests, scripted input) is read directly.
        """
        if not self._keys:
            if not self._line_ready(timeout_s):
                return None
            line = self._stream.readline()
            if not line:
                return None
            text = line.strip()
            if text:
                self.push_nik(text)
            else:
                self._keys.append(Key.CANCEL)
        return self._keys.popleft() if self._keys else None

    def _line_ready(self, timeout_s: float) -> bool:
        try:
            fileno = self._stream.fileno()
        except (OSError, ValueError):  # io.UnsupportedOperation: no descriptor, never blocks
            return True
        ready, _, _ = select.select([fileno], [], [], max(0.0, timeout_s))
        return bool(ready)

    def close(self) -> None:
        """Nothing to release (the stream belongs to the caller)."""


class EvdevKeypad:
    """A USB numeric keypad or keyboard-wedge reader through Linux evdev.

    The device is grabbed exclusively so its keystrokes do not also reach a
    console login on the same machine.

    Args:
        device: ``/dev/input/...`` path, or the name the kernel reports
            (``evdev.InputDevice.name``) to find it among ``/dev/input/event*``.

    Raises:
        NikInputError: evdev is not installed or the device is not found/openable.
    """

    def __init__(self, device: str) -> None:
        try:
            import evdev  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise NikInputError("nik.input = keypad needs python evdev installed") from exc
        self._dev: Any = None
        # One read() can carry a whole wedge-typed NIK: keep every key, in order.
        self._keys: deque[str] = deque()
        try:
            if device.startswith("/"):
                self._dev = evdev.InputDevice(device)
            else:
                for path in evdev.list_devices():
                    candidate = evdev.InputDevice(path)
                    if candidate.name == device:
                        self._dev = candidate
                        break
                    candidate.close()
            if self._dev is None:
                raise NikInputError(f"no input device named {device!r}")
            self._dev.grab()
        except OSError as exc:
            self.close()
            raise NikInputError(f"cannot open keypad {device!r}: {exc}") from exc

    def read_key(self, timeout_s: float) -> str | None:
        """Next key-down mapped by :func:`key_for_event`, or None after ``timeout_s``."""
        if not self._keys and self._dev is not None:
            ready, _, _ = select.select([self._dev.fd], [], [], timeout_s)
            if ready:
                for event in self._dev.read():
                    key = key_for_event(event.type, event.code, event.value)
                    if key is not None:
                        self._keys.append(key)
        return self._keys.popleft() if self._keys else None

    def close(self) -> None:
        """Release the grab and the device. Safe to call twice and after a failed open."""
        dev, self._dev = self._dev, None
        if dev is not None:
            with contextlib.suppress(OSError):  # not grabbed, or already unplugged
                dev.ungrab()
            dev.close()


def open_key_source(
    kind: str,
    *,
    keypad_device: str = "",
    serial_port: str = "/dev/ttyUSB0",
    serial_baud: int = 9600,
    serial_pattern: str = r"(?<![0-9])([0-9]{16})(?![0-9])",
    serial_terminator: str = "lf",
    stream: IO[str] | None = None,
) -> KeySource | None:
    """Open the configured NIK input (``nik.input``); None for ``none``.

    Raises:
        ConfigError: keypad without ``keypad_device``, or a bad serial pattern.
        NikInputError: the device or its library is missing.
    """
    if kind == "none":
        return None
    if kind == "keypad":
        if not keypad_device:
            raise ConfigError("nik.keypad_device: required when nik.input = 'keypad'")
        return EvdevKeypad(keypad_device)
    if kind == "serial":
        return SerialKtpReader(
            serial_port, baud=serial_baud, pattern=serial_pattern, terminator=serial_terminator
        )
    if kind == "terminal":
        import sys

        return TerminalNikSource(stream or sys.stdin)
    raise ConfigError(f"nik.input: unknown device kind {kind!r}")
