"""The fleet service's configuration: defaults, flags, and errors naming file, line and key."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.central.fleet.config import flag_overrides, load_fleet_config
from kiosk.central.fleet.messages import Rejected, TopicMatcher, parse
from kiosk.cli import main
from kiosk.errors import ConfigError


def test_the_embedded_defaults() -> None:
    config = load_fleet_config(None)
    assert (config.mqtt.host, config.mqtt.port) == ("127.0.0.1", 1883)
    assert (config.http.host, config.http.port) == ("127.0.0.1", 8080)
    assert config.store.url == "sqlite:///fleet.sqlite"
    assert config.mqtt.topic_root == "kiosk/{site}/{gate}"


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text('[mqtt]\nhost = "broker.lan"\n[http]\nport = 9000\n')
    overrides = flag_overrides(broker="mqtts://mq.example:8884", listen="0.0.0.0:8181",
                               database="postgresql://fleet@db/fleet", token_file="t.txt")
    config = load_fleet_config(path, overrides)
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("mq.example", 8884, True)
    assert (config.http.host, config.http.port) == ("0.0.0.0", 8181)
    assert config.store.url == "postgresql://fleet@db/fleet"
    assert config.http.token_file == tmp_path / "t.txt"


@pytest.mark.parametrize(("text", "expected"), [
    ('[mqtt]\nport = 99999\n', "fleet.toml:2: mqtt.port: 99999 is above the maximum 65535"),
    ('[http]\n\nhots = "x"\n', "fleet.toml:3: http.hots: unknown key"),
    ('[mqtt]\ntopic_root = "kiosk/#"\n', "fleet.toml:2: mqtt.topic_root: "),
    ('[store]\nurl = "mysql://x"\n', "fleet.toml:2: store.url: expected sqlite:///PATH"),
    ('[alarms]\noffline_after_s = "soon"\n', "fleet.toml:2: alarms.offline_after_s: expected a"),
])
def test_errors_name_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_fleet_config(path)
    assert str(info.value).startswith(f"{tmp_path}/{expected}")


@pytest.mark.parametrize("flags", [
    ["--broker", "http://x:1"], ["--broker", "mqtt://x:notaport"], ["--listen", "8080"],
    ["--database", "mysql://x"],
])
def test_bad_flags_are_config_errors(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "serve", "--check-config", *flags]) == 2
    assert "config error" in capsys.readouterr().err


def test_check_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "serve", "--check-config", "--broker", "mqtt://10.0.0.5:1884"]) == 0
    assert "broker 10.0.0.5:1884" in capsys.readouterr().out


def test_a_custom_topic_root_is_followed() -> None:
    matcher = TopicMatcher("acme/{site}/lanes/{gate}")
    assert matcher.filter("counts") == "acme/+/lanes/+/counts"
    assert matcher.match("acme/mall-1/lanes/l7/status") == ("mall-1", "l7", "status")
    with pytest.raises(Rejected):
        matcher.match("kiosk/mall-1/l7/status")


@settings(max_examples=300, deadline=None)
@given(topic=st.text(max_size=60), payload=st.binary(max_size=300))
def test_the_parser_never_raises_anything_but_rejected(topic: str, payload: bytes) -> None:
    matcher = TopicMatcher("kiosk/{site}/{gate}")
    for candidate in (topic, f"kiosk/s/g/{topic}", "kiosk/s/g/counts", "kiosk/s/g/status"):
        with contextlib.suppress(Rejected):
            parse(matcher, candidate, payload, 65536)


@settings(max_examples=200, deadline=None)
@given(body=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=6),
    max_leaves=30))
def test_json_of_any_shape_is_rejected_or_well_typed(body: object) -> None:
    import json

    matcher = TopicMatcher("kiosk/{site}/{gate}")
    seeds = [body]
    if isinstance(body, dict):
        seeds.append({**body, "v": 1, "device": "s/g"})
    for seed in seeds:
        for suffix in ("status", "counts", "events"):
            try:
                msg = parse(matcher, f"kiosk/s/g/{suffix}", json.dumps(seed).encode(), 65536)
            except Rejected:
                continue
            assert msg.site == "s" and msg.gate == "g"


def test_device_code_never_imports_the_central_side() -> None:
    import subprocess
    import sys

    code = ("import sys, kiosk.app, kiosk.cli, kiosk.demo, kiosk.scanloop\n"
            "from kiosk.cli import _parser\n_parser()\n"
            "print(sorted(m for m in sys.modules if m.startswith('kiosk.central')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_shipped_example_config_is_valid_and_says_every_default() -> None:
    from tests.conftest import REPO_ROOT

    config = load_fleet_config(REPO_ROOT / "config" / "fleet.toml")
    defaults = load_fleet_config(None)
    assert config.mqtt == defaults.mqtt and config.alarms == defaults.alarms
    assert config.http.token_file == Path("/etc/kiosk/fleet-tokens")
