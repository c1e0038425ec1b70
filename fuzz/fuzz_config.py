"""atheris (libFuzzer) target for the config loader (docs/security.md, config file).

Usage::

    python fuzz/fuzz_config.py --make-corpus fuzz/corpus-config   # seeds
    python fuzz/fuzz_config.py [libFuzzer flags] fuzz/corpus-config

Each input is written as a config file and loaded with the gate's own loader.
Invariants: the loader returns a KioskConfig or raises ConfigError, nothing else;
a refusal names the file and stays short (no unbounded echo); an accepted config
is one the gate can run: valid site and gate ids, a topic root without wildcards
or format fields, finite numbers only, data files inside ``device.data_dir``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

_FOLDER = Path(tempfile.mkdtemp(prefix="kiosk-fuzz-config-"))
_FILE = _FOLDER / "kiosk.toml"


def check_one(data: bytes) -> None:
    """Load ``data`` as a config file and check the invariants (AssertionError on a bug)."""
    from kiosk.config import KioskConfig, load_config
    from kiosk.config.ids import is_valid_id
    from kiosk.errors import ConfigError

    _FILE.write_bytes(data)
    try:
        config = load_config(_FILE)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(str(_FILE)), message[:200]
        assert len(message) < 1000, message[:200]
        return
    assert isinstance(config, KioskConfig)
    assert is_valid_id(config.device.site) and is_valid_id(config.device.gate)
    root = config.mqtt_topic_root
    assert not set(root) & set("#+{}\x00"), root
    for table in dataclasses.fields(config):
        for value in dataclasses.asdict(getattr(config, table.name)).values():
            assert not (isinstance(value, float) and not math.isfinite(value))
    data_dir = config.device.data_dir.resolve()
    for name in (config.counts.db_file, config.verify.bundle_file, config.clock.state_file):
        assert (data_dir / name).resolve().is_relative_to(data_dir), name


def seeds() -> list[bytes]:
    """The shipped config and small hostile files as seeds."""
    shipped = (HERE.parent / "config" / "kiosk.toml").read_bytes()
    return [
        shipped,
        b'[device]\nsite = "mall-1"\ngate = "g_7"\n',
        b'[mqtt]\ntopic_root = "k/{site}/{gate}"\ndiscovery_prefix = "ha"\n',
        b"[gate]\npassback_window_s = 300.0\npassage_timeout_s = 10\n",
        b'[counts]\ndb_file = "db/counts.sqlite"\n',
        b'[nik]\nrate_per_minute = 6.0\nserial_pattern = "([0-9]{16})"\n',
        b"a = [[[[1]]]]\n",
    ]


def make_corpus(folder: Path) -> int:
    """Write the seeds into ``folder``; returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    made = seeds()
    for i, seed in enumerate(made):
        (folder / f"seed-{i:03d}.toml").write_bytes(seed)
    return len(made)


def main() -> None:
    """Make the corpus, or fuzz :func:`check_one`."""
    if len(sys.argv) == 3 and sys.argv[1] == "--make-corpus":
        print(f"{make_corpus(Path(sys.argv[2]))} seeds written")
        return
    import atheris  # type: ignore[import-untyped,unused-ignore]

    with atheris.instrument_imports(include=["kiosk.config"]):
        import kiosk.config.loader  # noqa: F401
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
