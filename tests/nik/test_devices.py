"""Input devices: the evdev key mapping, the serial e-KTP reader, the terminal source."""

from __future__ import annotations

import io
import os
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import pytest

from kiosk.errors import ConfigError
from kiosk.nik.devices import (
    EvdevKeypad,
    NikInputError,
    SerialKtpReader,
    TerminalNikSource,
    compile_pattern,
    extract_nik,
    open_key_source,
)
from kiosk.nik.entry import Key, NikEntry
from kiosk.nik.keymap import EV_KEY, KEY_DOWN, KEY_REPEAT, KEY_UP, key_for_event

NIK = "3171014506990001"
EV_SYN, EV_MSC = 0, 4
TOP_ROW = {"1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 7, "7": 8, "8": 9, "9": 10, "0": 11}
KEYPAD = {"7": 71, "8": 72, "9": 73, "4": 75, "5": 76, "6": 77, "1": 79, "2": 80, "3": 81, "0": 82}


@pytest.mark.parametrize("table", [TOP_ROW, KEYPAD])
def test_digit_codes_map_to_digits(table: dict[str, int]) -> None:
    for digit, code in table.items():
        assert key_for_event(EV_KEY, code, KEY_DOWN) == digit


@pytest.mark.parametrize(
    ("code", "key"),
    [(14, Key.BACKSPACE), (111, Key.BACKSPACE), (28, Key.ENTER), (96, Key.ENTER), (1, Key.CANCEL)],
)
def test_control_codes(code: int, key: Key) -> None:
    assert key_for_event(EV_KEY, code, KEY_DOWN) == key


def test_only_key_down_events_count() -> None:
    assert key_for_event(EV_KEY, 2, KEY_UP) is None
    assert key_for_event(EV_KEY, 2, KEY_REPEAT) is None  # a held key is not "1111"
    assert key_for_event(EV_SYN, 0, 0) is None
    assert key_for_event(EV_MSC, 4, 458782) is None
    assert key_for_event(EV_KEY, 30, KEY_DOWN) is None  # KEY_A: not ours


def wedge_events(text: str) -> Iterator[tuple[int, int, int]]:
    """What a keyboard-wedge reader emits for ``text`` + Enter: down/up/syn per key."""
    for ch in text:
        yield (EV_MSC, 4, 0)
        yield (EV_KEY, TOP_ROW[ch], KEY_DOWN)
        yield (EV_SYN, 0, 0)
        yield (EV_KEY, TOP_ROW[ch], KEY_UP)
        yield (EV_SYN, 0, 0)
    yield (EV_KEY, 28, KEY_DOWN)
    yield (EV_KEY, 28, KEY_UP)


def test_synthetic_wedge_stream_fills_the_entry() -> None:
    entry = NikEntry()
    submitted = [
        entry.press(key, 0.0)
        for event in wedge_events(NIK)
        if (key := key_for_event(*event)) is not None
    ]
    assert submitted[-1] == NIK


def test_extract_nik_with_the_default_pattern() -> None:
    pattern = compile_pattern(r"(?<![0-9])([0-9]{16})(?![0-9])")
    assert extract_nik(b"NIK:3171014506990001;NAME=...", pattern) == NIK
    assert extract_nik(b"\x023171014506990001\x03", pattern) == NIK
    assert extract_nik(b"31710145069900011", pattern) is None  # 17 digits is not a NIK
    assert extract_nik("３171014506990001".encode(), pattern) is None
    assert extract_nik(b"", pattern) is None


def test_bad_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="serial_pattern"):
        compile_pattern("([0-9]{16}")


class FakeSerial:
    """Plays bytes in chunks like a port with a read timeout; records close()."""

    def __init__(self, port: str, baud: int, timeout: float, chunks: list[bytes]) -> None:
        self.port, self.baud, self.timeout = port, baud, timeout
        self.chunks = chunks
        self.closed = 0

    def read(self, size: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def close(self) -> None:
        self.closed += 1


def test_serial_reader_turns_lines_into_keys() -> None:
    chunks = [b"garbage line\r\n", b"NIK=31710145", b"06990001\r\n"]
    ports: list[FakeSerial] = []

    def factory(port: str, baud: int, timeout: float) -> FakeSerial:
        ports.append(FakeSerial(port, baud, timeout, chunks))
        return ports[-1]

    reader = SerialKtpReader("/dev/ttyFAKE", baud=115200, terminator="crlf", serial_factory=factory)
    entry = NikEntry()
    submitted = None
    for _ in range(40):
        key = reader.read_key(0.1)
        if key is not None and (result := entry.press(key, 0.0)):
            submitted = result
    assert submitted == NIK
    assert ports[0].baud == 115200
    reader.close()
    reader.close()
    assert ports[0].closed == 1


def test_serial_reader_drops_an_unterminated_flood() -> None:
    reader = SerialKtpReader("x", serial_factory=lambda *a, **k: FakeSerial("x", 1, 0, []))
    reader.feed(b"1" * 5000)
    reader.feed(b"\n" + NIK.encode() + b"\n")
    keys = [reader.read_key(0) for _ in range(17)]
    assert "".join(k for k in keys if k and k.isdigit()) == NIK


def test_serial_port_that_cannot_open() -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("no such port")

    with pytest.raises(NikInputError, match="cannot open e-KTP reader"):
        SerialKtpReader("/dev/ttyNONE", serial_factory=broken)


def test_terminal_source() -> None:
    source = TerminalNikSource(io.StringIO(f"{NIK}\n\n"))
    keys = [source.read_key(0) for _ in range(18)]
    assert "".join(k for k in keys[:16] if k) == NIK
    assert keys[16] == Key.ENTER and keys[17] == Key.CANCEL
    assert source.read_key(0) is None  # end of input


@dataclass
class FakeEvent:
    type: int
    code: int
    value: int


class FakeInputDevice:
    """Behaves like evdev.InputDevice over a pipe: select() works on .fd."""

    registry: ClassVar[dict[str, FakeInputDevice]] = {}

    def __init__(self, path: str) -> None:
        if path not in self.registry:
            raise FileNotFoundError(path)
        source = self.registry[path]
        self.path, self.name, self.fd = path, source.name, source.fd
        self.pending = source.pending
        self.grabbed = False
        self.closed = False

    @classmethod
    def add(cls, path: str, name: str) -> FakeInputDevice:
        device = cls.__new__(cls)
        device.path, device.name = path, name
        device.fd, device.writer = os.pipe()
        device.pending = []
        cls.registry[path] = device
        return device

    def grab(self) -> None:
        self.grabbed = True

    def ungrab(self) -> None:
        self.grabbed = False

    def close(self) -> None:
        self.closed = True

    def read(self) -> list[FakeEvent]:
        os.read(self.fd, 1)
        events, self.pending[:] = list(self.pending), []
        return events


@pytest.fixture
def fake_evdev(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeInputDevice]]:
    FakeInputDevice.registry = {}
    module = types.ModuleType("evdev")
    module.InputDevice = FakeInputDevice  # type: ignore[attr-defined]
    module.list_devices = lambda: sorted(FakeInputDevice.registry)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "evdev", module)
    yield FakeInputDevice
    for device in FakeInputDevice.registry.values():
        os.close(device.fd)
        os.close(device.writer)


def test_evdev_keypad_found_by_name_reads_a_whole_burst(
    fake_evdev: type[FakeInputDevice],
) -> None:
    fake_evdev.add("/dev/input/event0", "AT Translated Set 2 keyboard")
    wedge = fake_evdev.add("/dev/input/event5", "HID 0483:5750 Keypad")
    keypad = EvdevKeypad("HID 0483:5750 Keypad")
    assert keypad.read_key(0.01) is None  # nothing typed yet
    wedge.pending.extend(FakeEvent(*e) for e in wedge_events(NIK))
    os.write(wedge.writer, b"x")
    keys = [keypad.read_key(0.01) for _ in range(17)]
    assert "".join(k for k in keys[:16] if k) == NIK and keys[16] == Key.ENTER
    keypad.close()
    keypad.close()


def test_evdev_keypad_missing(fake_evdev: type[FakeInputDevice]) -> None:
    with pytest.raises(NikInputError, match="no input device named"):
        EvdevKeypad("nothing like it")
    with pytest.raises(NikInputError, match="cannot open keypad"):
        EvdevKeypad("/dev/input/event9")


def test_open_key_source() -> None:
    assert open_key_source("none") is None
    with pytest.raises(ConfigError, match="keypad_device"):
        open_key_source("keypad")
    assert isinstance(open_key_source("terminal", stream=io.StringIO()), TerminalNikSource)


def test_terminal_source_never_blocks_the_loop_on_a_silent_terminal() -> None:
    import os
    import time

    from kiosk.nik.devices import TerminalNikSource

    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "r") as stream:
        source = TerminalNikSource(stream)
        started = time.monotonic()
        assert source.read_key(0.05) is None  # nobody typing: back within the timeout
        assert time.monotonic() - started < 1.0
        os.write(write_end, b"3171015008900001\n")
        keys = [source.read_key(0.5) for _ in range(17)]
    os.close(write_end)
    assert "".join(k for k in keys[:16] if k) == "3171015008900001" and keys[16] == "enter"
