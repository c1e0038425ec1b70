"""The command runner on a real gate machine: only a valid command actuates, exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.gate import GateMachine, MachineConfig, Mode
from kiosk.remote.actions import MachineActions
from kiosk.remote.command import MAX_COMMAND_BYTES
from kiosk.remote.replay import AcceptedCommands
from kiosk.remote.runner import (
    REFUSED_EVENTS_PER_MINUTE,
    CommandInbox,
    CommandOutcome,
    CommandRunner,
)
from tests.remote.test_command import AUTHORITY, NOW, certificate, message


class Service:
    """A real gate machine behind the real action adapter; service calls are recorded."""

    def __init__(self) -> None:
        self.machine = GateMachine(MachineConfig())
        self.machine.start(0.0)
        self.calls: list[str] = []
        self.actions = MachineActions(
            self.machine,
            lambda: 1.0,
            reload=lambda: self.calls.append("reload"),
            restart=lambda: self.calls.append("restart"),
            diagnostics=lambda command_id: self.calls.append("diagnostics"),
        )


Gate = tuple[CommandRunner, Service, list[str]]


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    actions = Service()
    runner = CommandRunner(
        authorities=[AUTHORITY.public_key()],
        site="mall",
        gate="g1",
        memory=AcceptedCommands(tmp_path / "commands.json", now=NOW),
        actions=actions.actions,
        clock=lambda: NOW,
    )
    recorded: list[str] = []
    original = runner.handle

    def handle(message: bytes, *, retained: bool) -> CommandOutcome:
        outcome = original(message, retained=retained)
        if outcome.event is not None:
            recorded.append(outcome.event)
        return outcome

    runner.handle = handle  # type: ignore[method-assign]
    return runner, actions, recorded


def relay_grants(actions: Service) -> int:
    return sum(e.name == "remote_open" for e in actions.machine.take_effects())


def test_a_valid_open_once_actuates_exactly_once(gate: Gate) -> None:
    runner, actions, recorded = gate
    blob = message()
    first = runner.handle(blob, retained=False)
    assert first.accepted and actions.machine.outputs.relay
    assert relay_grants(actions) == 1
    again = runner.handle(blob, retained=False)
    assert not again.accepted and again.reason == "replayed"
    assert relay_grants(actions) == 0
    assert recorded == ["command.open_once", "command_refused.replayed"]


@pytest.mark.parametrize(
    ("blob", "retained", "reason"),
    [
        (b"open", False, "malformed"),
        (message(gate="g2"), False, "other_gate"),
        (message(issued_at=NOW - 3600), False, "expired"),
        (message(), True, "retained"),
        (message(action="emergency-on"), False, "action_not_allowed"),
    ],
)
def test_refused_commands_do_not_actuate_and_are_reported(
    gate: Gate, blob: bytes, retained: bool, reason: str
) -> None:
    runner, actions, recorded = gate
    outcome = runner.handle(blob, retained=retained)
    assert not outcome.accepted and outcome.reason == reason
    assert not actions.machine.outputs.relay and relay_grants(actions) == 0
    assert recorded == [f"command_refused.{reason}"]


def test_emergency_and_maintenance_actions(gate: Gate) -> None:
    runner, actions, recorded = gate
    cert = certificate(actions=("emergency-on", "emergency-off", "reload", "diagnostics"))
    runner.handle(message(action="emergency-on", cert=cert), retained=False)
    assert actions.machine.mode is Mode.EMERGENCY
    runner.handle(message(action="emergency-off", cert=cert), retained=False)
    assert actions.machine.mode is Mode.NORMAL
    runner.handle(message(action="reload", cert=cert), retained=False)
    runner.handle(message(action="diagnostics", cert=cert), retained=False)
    assert actions.calls == ["reload", "diagnostics"]
    assert recorded == [
        "command.emergency_on",
        "command.emergency_off",
        "command.reload",
        "command.diagnostics",
    ]


def test_open_once_in_emergency_is_reported_as_not_possible(gate: Gate) -> None:
    runner, actions, recorded = gate
    actions.machine.on_fire_alarm(True, 0.5)
    outcome = runner.handle(message(), retained=False)
    assert not outcome.accepted and outcome.reason == "not_possible"
    assert recorded == ["command.open_once.not_possible"]


def test_a_flood_of_garbage_is_counted_but_reported_at_a_bounded_rate(gate: Gate) -> None:
    runner, _actions, recorded = gate
    for _ in range(500):
        runner.handle(b"\x82\x41x\x41y", retained=False)
    assert runner.refused["operator_untrusted"] + runner.refused["malformed"] == 500
    assert len(recorded) == REFUSED_EVENTS_PER_MINUTE


def test_inbox_is_bounded_and_keeps_oversized_messages_recognisable() -> None:
    inbox = CommandInbox(capacity=2)
    inbox.offer(b"a", False)
    inbox.offer(b"b" * (MAX_COMMAND_BYTES + 1), True)
    inbox.offer(b"c", False)
    inbox.offer(b"d" * (10 * MAX_COMMAND_BYTES), False)
    assert inbox.dropped == 2
    assert inbox.take() == [(b"a", False), (b"b" * (MAX_COMMAND_BYTES + 1), True)]
    assert inbox.take() == []
