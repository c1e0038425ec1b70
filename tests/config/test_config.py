"""Configuration loading and validation: every error names file, line, key and reason."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.config import KioskConfig, load_config
from kiosk.config.schema import RELAY_PULSE_HARD_MAX_MS
from kiosk.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "kiosk.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_is_valid_and_equals_the_defaults() -> None:
    # The shipped file documents every default; drifting apart would mislead technicians.
    assert load_config(SHIPPED) == dataclasses.replace(
        load_config(None), camera=load_config(None).camera
    )
    assert load_config(SHIPPED) == KioskConfig()


def test_shipped_config_documents_every_key() -> None:
    shipped = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    for table in dataclasses.fields(KioskConfig):
        assert table.name in shipped, f"[{table.name}] missing from config/kiosk.toml"
        section_type = type(getattr(KioskConfig(), table.name))
        for key in dataclasses.fields(section_type):
            assert key.name in shipped[table.name], f"{table.name}.{key.name} not documented"
            assert key.metadata["doc"], f"{table.name}.{key.name} has no doc"


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[gate]\nrelay_pin = 17\nrelay_pulse = 400\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path}:3: gate.relay_pulse: unknown key" in message
    assert "relay_pulse_ms" in message  # the known keys are listed as a hint


def test_unknown_table_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "[gates]\nrelay_pin = 17\n")
    with pytest.raises(ConfigError, match=r"kiosk.toml:1: gates: unknown key"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[gate]\nrelay_pulse_ms = "500"\n',
            "gate.relay_pulse_ms: expected an integer, got a string",
        ),
        ("[gate]\nrelay_pulse_ms = 1.5\n", "gate.relay_pulse_ms: expected an integer, got float"),
        ("[gate]\nrelay_active_high = 1\n", "gate.relay_active_high: expected true or false"),
        ("[mqtt]\nport = true\n", "mqtt.port: expected an integer, got a boolean"),
        ('[camera]\nfps = "fast"\n', "camera.fps: expected a number, got a string"),
        ("[device]\nsite = 7\n", "device.site: expected a string, got int"),
        ("gate = 3\n", "gate: expected a table, got int"),
    ],
)
def test_wrong_type_names_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text))


def test_out_of_range_names_key_line_and_bound(tmp_path: Path) -> None:
    path = write(tmp_path, "# comment\n[gate]\n\nrelay_pulse_ms = 9000\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}:4: gate.relay_pulse_ms: 9000 is above the maximum {RELAY_PULSE_HARD_MAX_MS}"
    )


def test_below_minimum(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"camera.fps: 0.5 is below the minimum 1"):
        load_config(write(tmp_path, "[camera]\nfps = 0.5\n"))


def test_bad_choice_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"decoder.backend: 'opencv' is not one of: auto, zxing"):
        load_config(write(tmp_path, '[decoder]\nbackend = "opencv"\n'))


def test_not_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid TOML"):
        load_config(write(tmp_path, "[gate\nrelay_pin = 17\n"))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read"):
        load_config(tmp_path / "absent.toml")


def test_files_source_requires_a_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r":2: camera.path: required when camera.source"):
        load_config(write(tmp_path, '[camera]\nsource = "files"\n'))


def test_duplicate_pins_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"gate.red_led_pin: pin 17 is already used by gate.relay_pin"
    ):
        load_config(write(tmp_path, "[gate]\nred_led_pin = 17\n"))


def test_topic_wildcards_in_identity_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"device.gate"):
        load_config(write(tmp_path, '[device]\ngate = "a/#"\n'))


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[verify]\ntrust_dir = "trust"\n[camera]\nsource = "files"\npath = "f"\n'
    )
    config = load_config(path)
    assert config.verify.trust_dir == tmp_path / "trust"
    assert config.camera.path == tmp_path / "f"


def test_overrides_apply_and_are_validated(tmp_path: Path) -> None:
    path = write(tmp_path, "[gate]\nrelay_pulse_ms = 500\n")
    assert load_config(path, {"gate.relay_pulse_ms": 400}).gate.relay_pulse_ms == 400
    with pytest.raises(ConfigError, match=r"gate.relay_pulse_ms: 6000 is above"):
        load_config(path, {"gate.relay_pulse_ms": 6000})
    with pytest.raises(ConfigError, match=r"expected 'table.key'"):
        load_config(path, {"relay_pulse_ms": 1})


def test_config_is_frozen() -> None:
    config = load_config(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.gate.relay_pulse_ms = 1  # type: ignore[misc]


def test_derived_values() -> None:
    config = load_config(None, {"device.site": "mall", "device.gate": "g7"})
    assert config.mqtt_topic_root == "kiosk/mall/g7"
    assert config.device.device_id == "mall/g7"
    assert config.counts_db_path == Path("/var/lib/kiosk/counts.sqlite")


@given(st.text(max_size=200))
def test_arbitrary_text_gives_config_or_config_error(text: str) -> None:
    # Hostile or corrupt files must never raise anything but ConfigError.
    try:
        result = load_config(None, {}) if not text else _load_text(text)
    except ConfigError:
        return
    assert isinstance(result, KioskConfig)


def _load_text(text: str) -> KioskConfig:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "k.toml"
        path.write_text(text, encoding="utf-8")
        return load_config(path)


@pytest.mark.parametrize(
    ("text", "key", "other"),
    [
        ("[gate]\npassage_pin = 17\n", "gate.passage_pin", "gate.relay_pin"),
        ("[gate]\nbuzzer_pin = 23\n", "gate.passage_pin", "gate.buzzer_pin"),
        ("[gate]\nfire_alarm_pin = 12\n", "gate.fire_alarm_pin", "gate.amber_led_pin"),
    ],
)
def test_every_gate_pin_is_checked_for_clashes(
    tmp_path: Path, text: str, key: str, other: str
) -> None:
    with pytest.raises(ConfigError, match=rf"{key}: pin \d+ is already used by {other}"):
        load_config(write(tmp_path, text))


def test_unset_optional_pins_do_not_clash(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[gate]\nexit_button_pin = ""\narm_feedback_pin = ""\n'))
    assert config.gate.exit_button_pin is None and config.gate.arm_feedback_pin is None


def test_section_rules_name_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[mqtt]\nhost = "broker"\ntls_cert = "gate.pem"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:3: mqtt.tls_cert: ")


def _float_keys() -> list[str]:
    """Every float setting of the schema, as ``table.key``."""
    import typing

    keys = []
    for table in dataclasses.fields(KioskConfig):
        section = type(getattr(KioskConfig(), table.name))
        hints = typing.get_type_hints(section)
        fields = dataclasses.fields(section)
        keys += [f"{table.name}.{f.name}" for f in fields if hints[f.name] is float]
    return keys


@pytest.mark.parametrize("literal", ["nan", "+nan", "-nan", "inf", "+inf", "-inf"])
@pytest.mark.parametrize(
    "key", ["nik.rate_per_minute", "gate.passback_window_s", "gate.passage_timeout_s"]
)
def test_non_finite_numbers_are_refused_with_file_line_and_key(
    tmp_path: Path, key: str, literal: str
) -> None:
    # nan passed every range check: it switched the NIK rate limit and anti-passback
    # off and held a grant open forever in hold mode.
    table, name = key.split(".")
    path = write(tmp_path, f"[{table}]\n# note\n{name} = {literal}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:3: {key}: expected a finite number, got ")


def test_every_float_setting_refuses_nan(tmp_path: Path) -> None:
    keys = _float_keys()
    assert len(keys) >= 10  # the schema has many: this loop must really cover them
    for key in keys:
        table, name = key.split(".")
        path = write(tmp_path, f"[{table}]\n{name} = nan\n")
        with pytest.raises(ConfigError, match=rf"{path}:2: {key}: expected a finite number"):
            load_config(path)
        with pytest.raises(ConfigError, match=rf"{key}: expected a finite number"):
            load_config(None, {key: float("inf")})
