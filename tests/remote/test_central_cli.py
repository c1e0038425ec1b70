"""``kiosk central operator`` and ``kiosk central command`` as an operator runs them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.remote.command import CommandRefused, Refusal, check_command
from kiosk.signing import generate_authority_key, save_private_key
from tests.conftest import Mosquitto
from tests.telemetry.helpers import Recorder


def test_keygen_certify_and_publish_a_command_a_gate_accepts(
    tmp_path: Path, mosquitto_factory: type[Mosquitto], capsys: pytest.CaptureFixture[str]
) -> None:
    authority = generate_authority_key()
    save_private_key(authority, tmp_path / "authority.pem")
    assert main(["central", "operator", "keygen", "--out", str(tmp_path / "ops.pem")]) == 0
    assert (tmp_path / "ops.pem").stat().st_mode & 0o777 == 0o600
    assert (
        main(
            [
                "central",
                "operator",
                "certify",
                "--authority-key",
                str(tmp_path / "authority.pem"),
                "--operator-pub",
                str(tmp_path / "ops.pub.pem"),
                "--name",
                "Desk 1",
                "--role",
                "supervisor",
                "--actions",
                "open-once,reload",
                "--sites",
                "mall",
                "--days",
                "1",
                "--out",
                str(tmp_path / "ops.cert"),
            ]
        )
        == 0
    )
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    recorder = Recorder(broker.host, broker.port, "kiosk/mall/+/command")
    recorder.wait_subscribed()
    try:
        status = main(
            [
                "central",
                "command",
                "open-once",
                "--site",
                "mall",
                "--gate",
                "g1",
                "--gate",
                "g2",
                "--key",
                str(tmp_path / "ops.pem"),
                "--cert",
                str(tmp_path / "ops.cert"),
                "--broker",
                f"mqtt://{broker.host}:{broker.port}",
                "--wait",
                "0",
            ]
        )
        assert status == 0
        assert "mall/g1: sent" in capsys.readouterr().out
        deadline = time.monotonic() + 10
        while len(recorder.messages) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        recorder.close()
    by_topic = {m.topic: m for m in recorder.messages}
    assert set(by_topic) == {"kiosk/mall/g1/command", "kiosk/mall/g2/command"}
    assert not any(m.retain for m in recorder.messages)
    keys = [authority.public_key()]
    command = check_command(
        by_topic["kiosk/mall/g1/command"].payload,
        authorities=keys,
        site="mall",
        gate="g1",
        now=time.time(),
    )
    assert command.action == "open-once" and command.operator.name == "Desk 1"
    # Each gate's command names that gate only.
    with pytest.raises(CommandRefused) as caught:
        check_command(
            by_topic["kiosk/mall/g2/command"].payload,
            authorities=keys,
            site="mall",
            gate="g1",
            now=time.time(),
        )
    assert caught.value.reason is Refusal.OTHER_GATE


def test_certify_refuses_an_unknown_action(tmp_path: Path) -> None:
    save_private_key(generate_authority_key(), tmp_path / "authority.pem")
    main(["central", "operator", "keygen", "--out", str(tmp_path / "ops.pem")])
    status = main(
        [
            "central",
            "operator",
            "certify",
            "--authority-key",
            str(tmp_path / "authority.pem"),
            "--operator-pub",
            str(tmp_path / "ops.pub.pem"),
            "--name",
            "x",
            "--role",
            "y",
            "--actions",
            "open-forever",
            "--out",
            str(tmp_path / "ops.cert"),
        ]
    )
    assert status == 2 and not (tmp_path / "ops.cert").exists()
