"""What the technician must state about one gate, and how each answer becomes settings.

Every question has a flag (``--fire-alarm 24``), a key in a provisioning
file (``fire_alarm = 24``) and an interactive prompt. Nothing that decides
whether the turnstile opens is defaulted: the fire-alarm input in particular
reads "alarm" (gate held open) when nothing is wired, so "none" must be said.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kiosk.config.ids import IdError, check_id
from kiosk.errors import ProvisionError
from kiosk.provision.configfile import Value

MAX_ANSWERS_BYTES = 64 * 1024


def _pin(text: str, *, optional: bool = True) -> int | None:
    text = text.strip().lower()
    if optional and text in ("none", "no", "-"):
        return None
    if not text.isdigit() or not 2 <= int(text) <= 27:
        raise ValueError("a BCM pin 2..27" + (", or 'none'" if optional else ""))
    return int(text)


def _site(text: str) -> dict[str, Value]:
    return {"device.site": check_id("site", text.strip())}


def _gate(text: str) -> dict[str, Value]:
    return {"device.gate": check_id("gate", text.strip())}


def _broker(text: str) -> dict[str, Value]:
    text = text.strip()
    if text.lower() == "none":
        return {"mqtt.enabled": False}
    url = urlsplit(text)
    if url.scheme != "mqtts" or not url.hostname or url.path not in ("", "/"):
        raise ValueError("mqtts://HOST[:PORT] (TLS with this gate's certificate), or 'none'")
    return {"mqtt.enabled": True, "mqtt.host": url.hostname, "mqtt.port": url.port or 8883}


def _fire_alarm(text: str) -> dict[str, Value]:
    return {"gate.fire_alarm_pin": _pin(text)}


def _passage(text: str) -> dict[str, Value]:
    pin = _pin(text, optional=False)
    return {"gate.passage_pin": pin}


def _exit_button(text: str) -> dict[str, Value]:
    return {"gate.exit_button_pin": _pin(text)}


def _arm_feedback(text: str) -> dict[str, Value]:
    return {"gate.arm_feedback_pin": _pin(text)}


def _staff_keys(text: str) -> dict[str, Value]:
    if text.strip().lower() == "none":
        return {"gate.staff_confirm_pin": None, "gate.staff_refuse_pin": None}
    confirm, sep, refuse = text.partition(",")
    if not sep:
        raise ValueError("CONFIRM_PIN,REFUSE_PIN (e.g. 5,6), or 'none'")
    return {
        "gate.staff_confirm_pin": _pin(confirm, optional=False),
        "gate.staff_refuse_pin": _pin(refuse, optional=False),
    }


def _ktp(text: str) -> dict[str, Value]:
    kind, _, port = text.strip().partition(":")
    if kind == "none":
        return {"nik.input": "none"}
    if kind == "keypad":
        return {"nik.input": "keypad"}
    if kind == "serial":
        if port and not port.startswith("/dev/"):
            raise ValueError("serial:/dev/ttyUSB0 (the reader's port)")
        return {"nik.input": "serial", "nik.serial_port": port or "/dev/ttyUSB0"}
    raise ValueError("none, keypad or serial[:/dev/ttyUSB0]")


def _relay(text: str) -> dict[str, Value]:
    text = text.strip().lower()
    if text not in ("active-high", "active-low"):
        raise ValueError("active-high (relay on with a high pin) or active-low")
    return {"gate.relay_active_high": text == "active-high"}


@dataclass(frozen=True)
class Question:
    """One thing the technician states: flag/file key, prompt, and its settings."""

    key: str
    prompt: str
    parse: Callable[[str], dict[str, Value]]

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--fire-alarm``."""
        return "--" + self.key.replace("_", "-")


QUESTIONS = (
    Question("site", "Site id (e.g. mall-jkt-01)", _site),
    Question("gate", "Gate id within the site (e.g. gate-03)", _gate),
    Question("broker", "Site broker (mqtts://HOST[:PORT], or none)", _broker),
    Question(
        "fire_alarm", "Fire-alarm contact: BCM pin, or none if no panel is wired", _fire_alarm
    ),
    Question("passage", "Passage (beam) sensor: BCM pin", _passage),
    Question("exit_button", "Exit push button: BCM pin, or none", _exit_button),
    Question("arm_feedback", "Arm-position switch: BCM pin, or none", _arm_feedback),
    Question("staff_keys", "Staff keys CONFIRM,REFUSE pins (e.g. 5,6), or none", _staff_keys),
    Question("ktp", "KTP reader: none, keypad or serial[:/dev/ttyUSB0]", _ktp),
    Question("relay", "Relay board: active-high or active-low", _relay),
)


def read_answers_file(path: Path) -> dict[str, str]:
    """A provisioning file: TOML with the question keys (``fire_alarm = "none"``)."""
    data = path.read_bytes()
    if len(data) > MAX_ANSWERS_BYTES:
        raise ProvisionError(f"{path}: {len(data)} bytes, at most {MAX_ANSWERS_BYTES}")
    try:
        raw: dict[str, Any] = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProvisionError(f"{path}: not TOML ({exc})") from None
    known = {q.key for q in QUESTIONS}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ProvisionError(
            f"{path}: unknown key {unknown[0][:40]!r} (known: {', '.join(sorted(known))})"
        )
    return {k: str(v) if not isinstance(v, bool) else str(v).lower() for k, v in raw.items()}


def resolve(
    given: Mapping[str, str | None],
    *,
    ask: Callable[[str], str] | None,
) -> dict[str, Value]:
    """Settings for every question: from ``given`` (flags, file), else ``ask`` (interactive).

    Without ``ask`` (not a terminal) a missing answer is a :class:`ProvisionError`
    naming the flag; a wrong answer is asked again interactively, an error otherwise.
    """
    settings: dict[str, Value] = {}
    for question in QUESTIONS:
        answer = given.get(question.key)
        while True:
            if answer is None:
                if ask is None:
                    raise ProvisionError(
                        f"{question.flag}: not answered ({question.prompt}); provisioning "
                        "states what is wired, nothing is assumed"
                    )
                answer = ask(question.prompt)
            try:
                settings.update(question.parse(answer))
                break
            except (ValueError, IdError) as exc:
                if ask is None:
                    raise ProvisionError(
                        f"{question.flag} {answer[:40]!r}: expected {exc}"
                    ) from None
                print(f"  expected {exc}")
                answer = None
    return settings
