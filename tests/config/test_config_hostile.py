"""A hostile config corpus: each file `kiosk check-config` must refuse, and why.

Every entry names the line and the dotted key the message must start with, so a
technician sees where to look. A property test then feeds the loader arbitrary
bytes and arbitrary TOML over the schema's own keys: nothing but ConfigError may
come out.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.cli import main
from kiosk.config import KioskConfig, load_config
from kiosk.config.ids import ID_PATTERN, id_problem, is_valid_id
from kiosk.config.loader import MAX_CONFIG_BYTES
from kiosk.errors import ConfigError

# (name, file text, line, key, fragment of the reason)
CORPUS: list[tuple[str, str, int, str, str]] = [
    ("nan rate", "[nik]\nrate_per_minute = nan\n", 2, "nik.rate_per_minute", "finite"),
    ("nan window", "[gate]\npassback_window_s = nan\n", 2, "gate.passback_window_s", "finite"),
    ("inf timeout", "[gate]\npassage_timeout_s = inf\n", 2, "gate.passage_timeout_s", "finite"),
    ("huge exponent", "[camera]\nfps = 1e400\n", 2, "camera.fps", "finite"),
    ("unknown field", '[mqtt]\ntopic_root = "k/{site}/{x}/{gate}"\n', 2, "mqtt.topic_root",
     "only {site} and {gate}"),
    ("format spec", '[mqtt]\ntopic_root = "k/{site:>999999999}/{gate}"\n', 2, "mqtt.topic_root",
     "only {site} and {gate}"),
    ("attribute", '[mqtt]\ntopic_root = "k/{site.__class__}/{gate}"\n', 2, "mqtt.topic_root",
     "only {site} and {gate}"),
    ("field in a level", '[mqtt]\ntopic_root = "k/s-{site}/{gate}"\n', 2, "mqtt.topic_root",
     "only {site} and {gate}"),
    ("no gate", '[mqtt]\ntopic_root = "k/{site}"\n', 2, "mqtt.topic_root", "{gate} exactly once"),
    ("gate twice", '[mqtt]\ntopic_root = "{gate}/{site}/{gate}"\n', 2, "mqtt.topic_root",
     "{gate} exactly once"),
    ("hash", '[mqtt]\ntopic_root = "k/#/{site}/{gate}"\n', 2, "mqtt.topic_root", "'#'"),
    ("trailing hash", '[mqtt]\ntopic_root = "k/{site}/{gate}/#"\n', 2, "mqtt.topic_root", "'#'"),
    ("plus", '[mqtt]\ntopic_root = "k+/{site}/{gate}"\n', 2, "mqtt.topic_root", "'k+'"),
    ("nul in root", '[mqtt]\ntopic_root = "k\\u0000/{site}/{gate}"\n', 2, "mqtt.topic_root",
     "U+0000"),
    ("empty level", '[mqtt]\ntopic_root = "k//{site}/{gate}"\n', 2, "mqtt.topic_root",
     "empty topic level"),
    ("broker topic", '[mqtt]\ntopic_root = "$SYS/{site}/{gate}"\n', 2, "mqtt.topic_root",
     "'$SYS'"),
    ("prefix plus", '[mqtt]\ndiscovery_prefix = "+"\n', 2, "mqtt.discovery_prefix", "'+'"),
    ("prefix hash", '[mqtt]\ndiscovery_prefix = "ha/#"\n', 2, "mqtt.discovery_prefix", "'#'"),
    ("prefix field", '[mqtt]\ndiscovery_prefix = "{site}"\n', 2, "mqtt.discovery_prefix",
     "only {site}"),
    ("prefix empty", '[mqtt]\ndiscovery_prefix = ""\n', 2, "mqtt.discovery_prefix", "empty"),
    ("site slash", '[device]\nsite = "a/b"\n', 2, "device.site", "not a valid id"),
    ("site nul", '[device]\nsite = "a\\u0000b"\n', 2, "device.site", "U+0000"),
    ("site line separator", '[device]\nsite = "a\\u2028b"\n', 2, "device.site", "U+2028"),
    ("site bidi override", '[device]\nsite = "a\\u202eb"\n', 2, "device.site", "U+202E"),
    ("site unicode digit", '[device]\nsite = "mall٣"\n', 2, "device.site", "not a valid id"),
    ("site dotdot", '[device]\nsite = ".."\n', 2, "device.site", "not a valid id"),
    ("site space", '[device]\nsite = "my mall"\n', 2, "device.site", "not a valid id"),
    ("site empty", '[device]\nsite = ""\n', 2, "device.site", "not a valid id"),
    ("site too long", f'[device]\nsite = "{"a" * 65}"\n', 2, "device.site", "65 characters"),
    ("gate leading dash", '[device]\ngate = "-g1"\n', 2, "device.gate", "not a valid id"),
    ("gate wildcard", '[device]\ngate = "a/#"\n', 2, "device.gate", "not a valid id"),
    ("gate newline", '[device]\ngate = "g1\\n"\n', 2, "device.gate", "U+000A"),
    ("db escapes", '[counts]\ndb_file = "../../etc/passwd"\n', 2, "counts.db_file", "'..'"),
    ("db absolute", '[counts]\ndb_file = "/etc/shadow"\n', 2, "counts.db_file", "absolute"),
    ("bundle escapes", '[verify]\nbundle_file = "x/../../b"\n', 2, "verify.bundle_file", "'..'"),
    ("clock absolute", '[clock]\nstate_file = "/tmp/c.json"\n', 2, "clock.state_file",
     "absolute"),
    ("db backslash", '[counts]\ndb_file = "..\\\\x"\n', 2, "counts.db_file", "absolute"),
    ("bad regex", '[nik]\nserial_pattern = "([0-9]{16}"\n', 2, "nik.serial_pattern",
     "not a regular expression"),
    ("long regex", f'[nik]\nserial_pattern = "{"a" * 300}"\n', 2, "nik.serial_pattern",
     "longer than 256"),
    ("long string", f'[mqtt]\nhost = "{"h" * 2000}"\n', 2, "mqtt.host", "longer than 1024"),
    ("long choice echo", f'[decoder]\nbackend = "{"x" * 900}"\n', 2, "decoder.backend",
     "(900 characters) is not one of"),
    ("long time zone", f'[device]\ntimezone = "{"Z" * 900}"\n', 2, "device.timezone",
     "(900 characters)"),
    ("huge int", f"[gate]\nrelay_pin = {'9' * 4000}\n", 2, "gate.relay_pin", "(4000 digits)"),
    ("nul path", '[verify]\ntrust_dir = "a\\u0000b"\n', 2, "verify.trust_dir", "not a usable path"),
]

# (name, file content, fragment of the file-level reason)
FILE_CORPUS: list[tuple[str, bytes, str]] = [
    ("deep arrays", b"a = " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
    ("deep inline tables", b"a = " + b"{b=" * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
    ("long integer literal", b"[gate]\nrelay_pin = " + b"9" * 5000 + b"\n", "number is too long"),
    ("not utf-8", b"[device]\n# \xff\xfe\nsite = 'x'\n", ":2: not UTF-8"),
    ("too large", b"#" * (MAX_CONFIG_BYTES + 1), f"larger than {MAX_CONFIG_BYTES} bytes"),
    ("not toml", b"[gate\n", "not valid TOML"),
]


def _write(folder: Path, content: str | bytes) -> Path:
    path = folder / "kiosk.toml"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [entry[1:] for entry in CORPUS],
    ids=[entry[0] for entry in CORPUS],
)
def test_hostile_setting_is_refused_with_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, fragment: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: {key}: "), message
    assert fragment in message, message
    assert len(message) < 400 + len(str(path)), "a refused value is never echoed unbounded"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [entry[1:] for entry in FILE_CORPUS],
    ids=[entry[0] for entry in FILE_CORPUS],
)
def test_hostile_file_is_refused_cleanly(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}"), message
    assert fragment in message, message
    assert info.value.__cause__ is None  # no RecursionError or decode traceback chained


def test_check_config_refuses_each_hostile_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _name, text, line, key, _fragment in CORPUS:
        path = _write(tmp_path, text)
        assert main(["check-config", str(path)]) == 2, key
        assert f"{path}:{line}: {key}: " in capsys.readouterr().err


def test_huge_format_spec_is_refused_without_building_it(tmp_path: Path) -> None:
    # str.format would have built a 1 GB string from this 40-byte setting.
    path = _write(tmp_path, '[mqtt]\ntopic_root = "k/{site:>999999999}/{gate}"\n')
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ConfigError):
        load_config(path)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 0.5 and peak < 5_000_000


@pytest.mark.parametrize(
    ("template", "root"),
    [
        ("kiosk/{site}/{gate}", "kiosk/mall-1/g_7"),
        ("fleet/v1/{gate}/{site}/", "fleet/v1/g_7/mall-1"),
        ("{site}/{gate}", "mall-1/g_7"),
    ],
)
def test_valid_topic_roots_are_filled_by_level(tmp_path: Path, template: str, root: str) -> None:
    path = _write(
        tmp_path, f'[device]\nsite = "mall-1"\ngate = "g_7"\n[mqtt]\ntopic_root = "{template}"\n'
    )
    assert load_config(path).mqtt_topic_root == root


def test_valid_data_file_names_stay_inside_the_data_folder(tmp_path: Path) -> None:
    path = _write(tmp_path, '[counts]\ndb_file = "db/counts-2.sqlite"\n')
    config = load_config(path)
    assert config.counts_db_path == config.device.data_dir / "db" / "counts-2.sqlite"


@given(st.text(max_size=80))
def test_id_rule_is_one_pattern(value: str) -> None:
    valid = is_valid_id(value)
    assert valid == (id_problem(value) is None)
    if valid:
        assert 1 <= len(value) <= 64 and value.isascii()
        assert not set(value) & set("/#+.\\ \x00\n") and ID_PATTERN.fullmatch(value)


# ------------------------------------------------------------- property tests


def _toml_string(text: str) -> str:
    out = []
    for char in text:
        if " " <= char <= "~" and char not in '"\\':
            out.append(char)
        else:
            out.append(f"\\U{ord(char):08X}")
    return '"' + "".join(out) + '"'


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


_SCHEMA_KEYS = {
    table.name: [f.name for f in dataclasses.fields(type(getattr(KioskConfig(), table.name)))]
    for table in dataclasses.fields(KioskConfig)
}
_TEMPLATE_TEXT = st.sampled_from(
    ["{site}", "{gate}", "{", "}", "/", "#", "+", "..", "\x00", "\u2028", "{site:>9}", "a", "$"]
)
_SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.lists(_TEMPLATE_TEXT, max_size=8).map("".join),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_TABLES = st.sampled_from(sorted(_SCHEMA_KEYS)).flatmap(
    lambda table: st.tuples(
        st.just(table),
        st.dictionaries(
            st.one_of(st.sampled_from(_SCHEMA_KEYS[table]), st.text(max_size=8)),
            _VALUES,
            max_size=4,
        ),
    )
)


def _render(tables: list[tuple[str, dict[str, object]]]) -> str:
    lines = []
    seen = set()
    for table, keys in tables:
        if table in seen:
            continue
        seen.add(table)
        lines.append(f"[{table}]")
        lines += [f"{_toml_string(k)} = {_toml_value(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def _load_bytes(content: bytes) -> KioskConfig:
    with tempfile.TemporaryDirectory() as folder:
        return load_config(_write(Path(folder), content))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_TABLES, max_size=4))
def test_arbitrary_toml_over_the_schema_gives_config_or_config_error(
    tables: list[tuple[str, dict[str, object]]],
) -> None:
    text = _render(tables)
    try:
        config = _load_bytes(text.encode("utf-8"))
    except ConfigError as exc:
        assert len(str(exc)) < 1000, "a refusal never echoes a value unbounded"
        return
    # Whatever was accepted is something the gate can run.
    assert is_valid_id(config.device.site) and is_valid_id(config.device.gate)
    assert "#" not in config.mqtt_topic_root and "+" not in config.mqtt_topic_root
    for table in dataclasses.fields(config):
        for value in dataclasses.asdict(getattr(config, table.name)).values():
            assert not (isinstance(value, float) and not math.isfinite(value))


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_config_or_config_error(content: bytes) -> None:
    try:
        config = _load_bytes(content)
    except ConfigError as exc:
        assert str(exc).startswith("/") and len(str(exc)) < 1000
        return
    assert isinstance(config, KioskConfig)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('[mqtt]\n"discovery_prefix" = "+"\n', 2),
        ("[ 'mqtt' ]\n\ndiscovery_prefix = '+'\n", 3),
        ('# c\nmqtt.discovery_prefix = "+"\n', 2),
        ('[mqtt]\nhost = "h"\n[device]\nsite = "s"\n\n[mqtt . x]\n', 6),
    ],
)
def test_quoted_and_dotted_keys_still_get_their_line(tmp_path: Path, text: str, line: int) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:{line}: mqtt."), str(info.value)
