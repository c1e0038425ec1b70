"""Scenario file validation: every error names the file and the step."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.errors import ConfigError
from kiosk.sim.scenario import load_scenario


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text('start = "2021-06-01T08:00:00Z"\n' + text)
    return path


def test_parses_steps_in_time_order_with_overrides(tmp_path: Path) -> None:
    s = load_scenario(
        write(
            tmp_path,
            'config = "k.toml"\n[overrides]\n"gate.relay_pulse_ms" = 400\n'
            "[[step]]\nat = 5\npassage = true\n"
            '[[step]]\nat = 1.5\npayload = "HC1:x"\n',
        )
    )
    assert s.config == tmp_path.resolve() / "k.toml"
    assert s.overrides == {"gate.relay_pulse_ms": 400}
    assert [(st.at, st.action) for st in s.steps] == [(1.5, "payload"), (5.0, "passage")]
    assert "HC1:x" not in repr(s.steps)  # payloads and NIKs are never printed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[step]]\nat = 1\nscna = "x.png"\n', r"step 1 \(at=1\): unknown key\(s\) \['scna'\]"),
        (
            "[[step]]\nat = 1\n[[step]]\nat = 2\nwait = 3\n",
            r"step 1 \(at=1\): expected exactly one",
        ),
        ("[[step]]\nat = 2\npassage = true\nfire_alarm = true\n", r"step 1 .*exactly one"),
        ("[[step]]\nat = -1\npassage = true\n", r"step 1: at: required"),
        ("[[step]]\npassage = true\n", r"step 1: at: required"),
        ('[[step]]\nat = 1\nfire_alarm = "yes"\n', r"fire_alarm: expected bool"),
        ("[[step]]\nat = 1\npassage = false\n", r"passage: only `true`"),
        ("speed = 2\n", r"unknown key\(s\) \['speed'\]"),
    ],
)
def test_errors_name_the_step(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_scenario(write(tmp_path, text))


def test_missing_start(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[[step]]\nat = 1\npassage = true\n")
    with pytest.raises(ConfigError, match="start: required"):
        load_scenario(path)


def test_cli_reports_scenario_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "[[step]]\nat = 3\nbogus = 1\n")
    assert main(["simulate", str(path)]) == 2
    assert "step 1 (at=3): unknown key(s) ['bogus']" in capsys.readouterr().err


def test_make_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--make-samples", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "qr" / "valid-vaccination.png").is_file()
    assert (tmp_path / "s" / "trust" / "scenario-dsc.der").is_file()
    assert (tmp_path / "s" / "kiosk.toml").is_file()
