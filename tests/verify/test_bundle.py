"""Trust bundles: signature, rollback, malformed bodies, atomic install, CLI tools."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import cbor2
import pytest

from kiosk.cli import main
from kiosk.errors import DocumentError
from kiosk.signing import generate_authority_key
from kiosk.verify.bundle import TrustBundle, load_bundle
from kiosk.verify.bundlefile import install_bundle, read_installed
from kiosk.verify.issuer import make_signer

from .bundles import KEYS, make_bundle, sign_body, signed, with_version, write_authority

_, DER = make_signer("Bundle DSC")


def test_round_trip_keeps_everything() -> None:
    bundle = make_bundle(DER, version=5)
    loaded = load_bundle(signed(bundle), KEYS)
    assert loaded == bundle
    store = loaded.store()
    assert len(store) == 1 and next(iter(store)).country == "XX"


def test_tampered_bundle_is_refused() -> None:
    blob = bytearray(signed(make_bundle(DER)))
    blob[len(blob) // 2] ^= 0x01
    with pytest.raises(DocumentError):
        load_bundle(bytes(blob), KEYS)


def test_bundle_from_another_authority_is_refused() -> None:
    rogue = generate_authority_key()
    with pytest.raises(DocumentError, match="unknown authority key"):
        load_bundle(signed(make_bundle(DER), rogue), KEYS)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"\xff\x00", "body refused: "),
        (cbor2.dumps([1, 2]), "not a map"),
        (cbor2.dumps({"format": 4, "version": 1}), "format"),
        (cbor2.dumps({"format": 1, "version": 1, "issued_at": 1, "max_age_s": 1, "grace_s": 1,
                      "valuesets": {}}), "needs format 2"),
        (cbor2.dumps({"format": 1, "version": 0, "issued_at": 1, "max_age_s": 1,
                      "grace_s": 1}), "version"),
        (cbor2.dumps({"format": 1, "version": 1, "issued_at": -5, "max_age_s": 1,
                      "grace_s": 1}), "issued_at"),
        (cbor2.dumps({"format": 1, "version": 1, "issued_at": 1, "max_age_s": 1,
                      "grace_s": 1, "extra": 1}), "unknown keys"),
        (cbor2.dumps({"format": 1, "version": 1, "issued_at": 1, "max_age_s": 1, "grace_s": 1,
                      "revocation": {"uci": b"\x00" * 15}}), "multiple of 16"),
        (cbor2.dumps({"format": 1, "version": 1, "issued_at": 1, "max_age_s": 1, "grace_s": 1,
                      "revocation": {"uci": b"\x02" * 16 + b"\x01" * 16}}), "ascending"),
        (cbor2.dumps({"format": 1, "version": 1, "issued_at": 1, "max_age_s": 1, "grace_s": 1,
                      "signers": [{"der": b"x", "country": "DE", "types": ["q"]}]}), "types"),
        (cbor2.dumps({"format": 1, "version": 1, "issued_at": 1, "max_age_s": 1, "grace_s": 1,
                      "policy": {"default_mode": "nope", "modes": {}, "rules": {}}}),
         "default_mode"),
        (b"\x81" * 20 + b"\x00", "refused: nesting"),  # nesting deeper than 8
        (b"\x9a\x00\x01\x00\x00" + b"\x00" * 65536, "refused"),  # 65,536 > item budget? no
    ],
)
def test_malformed_body_is_refused(body: bytes, match: str) -> None:
    if body.startswith(b"\x9a"):  # an array of 65,536 small ints: fine for bounds, not a map
        match = "not a map"
    with pytest.raises(DocumentError, match=match):
        load_bundle(sign_body(body), KEYS)


def test_item_bomb_is_refused_before_decoding() -> None:
    bomb = b"\x9a\x00\x04\x00\x00" + b"\x00" * 0x40000  # 262,144 items > 200,000
    with pytest.raises(DocumentError, match="refused: container of 262144 items"):
        TrustBundle.from_cbor(bomb)


def test_install_then_rollback_and_equal_version_refused(tmp_path: Path) -> None:
    target = tmp_path / "trust-bundle.cose"
    v2 = make_bundle(DER, version=2)
    assert install_bundle(signed(v2), target, KEYS).version == 2
    for older in (1, 2):
        with pytest.raises(DocumentError, match="rollback refused"):
            install_bundle(signed(with_version(v2, older)), target, KEYS)
    assert read_installed(target, KEYS) == v2
    assert install_bundle(signed(with_version(v2, 3)), target, KEYS).version == 3


def test_bad_bundle_keeps_current(tmp_path: Path) -> None:
    target = tmp_path / "trust-bundle.cose"
    install_bundle(signed(make_bundle(DER, version=1)), target, KEYS)
    before = target.read_bytes()
    tampered = bytearray(signed(make_bundle(DER, version=9)))
    tampered[-5] ^= 0xFF
    with pytest.raises(DocumentError):
        install_bundle(bytes(tampered), target, KEYS)
    with pytest.raises(DocumentError):
        install_bundle(sign_body(b"\xa0"), target, KEYS)
    assert target.read_bytes() == before


def test_damaged_installed_file_can_be_repaired(tmp_path: Path) -> None:
    target = tmp_path / "trust-bundle.cose"
    target.write_bytes(b"half-written garbage")
    assert install_bundle(signed(make_bundle(DER, version=1)), target, KEYS).version == 1


def test_crash_between_write_and_rename_keeps_old_bundle(tmp_path: Path) -> None:
    """A process killed (SIGKILL) after the temp file is synced, before the rename."""
    target = tmp_path / "trust-bundle.cose"
    install_bundle(signed(make_bundle(DER, version=1)), target, KEYS)
    new = tmp_path / "new.cose"
    new.write_bytes(signed(make_bundle(DER, version=2)))
    keys = write_authority(tmp_path)
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from kiosk.signing import load_public_keys
        from kiosk.verify.bundlefile import install_bundle
        def die(tmp):
            assert tmp.read_bytes() == Path({str(new)!r}).read_bytes()
            os.kill(os.getpid(), signal.SIGKILL)
        install_bundle(Path({str(new)!r}).read_bytes(), Path({str(target)!r}),
                       load_public_keys(Path({str(keys)!r})), before_rename=die)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    assert read_installed(target, KEYS).version == 1  # type: ignore[union-attr]
    assert list(tmp_path.glob(".trust-bundle.cose.*.tmp"))  # the torn temp file stayed
    install_bundle(new.read_bytes(), target, KEYS)  # the next install cleans up
    assert read_installed(target, KEYS).version == 2  # type: ignore[union-attr]
    assert not list(tmp_path.glob(".trust-bundle.cose.*.tmp"))


def test_failure_before_rename_removes_temp_and_keeps_old(tmp_path: Path) -> None:
    target = tmp_path / "trust-bundle.cose"
    install_bundle(signed(make_bundle(DER, version=1)), target, KEYS)

    def disk_full(_: Path) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        install_bundle(signed(make_bundle(DER, version=2)), target, KEYS,
                       before_rename=disk_full)
    assert read_installed(target, KEYS).version == 1  # type: ignore[union-attr]
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_keygen_build_sign_inspect_install(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dsc").mkdir()
    (tmp_path / "dsc" / "de.der").write_bytes(DER)
    (tmp_path / "desc.toml").write_text(
        'version = 4\n[signers."de.der"]\ncountry = "DE"\ntypes = ["v"]\n'
        '[revocation]\nuvci = ["URN:UVCI:01:DE:A#1"]\nkids = ["0011223344556677"]\n'
    )
    keys = tmp_path / "keys"
    assert main(["trust", "keygen", "--out-dir", str(keys)]) == 0
    assert main(["trust", "keygen", "--out-dir", str(keys)]) == 1  # never overwrite
    body, blob = tmp_path / "b.cbor", tmp_path / "b.cose"
    assert main(["trust", "build", str(tmp_path / "dsc"), str(tmp_path / "desc.toml"),
                 "--out", str(body)]) == 0
    assert main(["trust", "sign", str(body), "--key", str(keys / "authority.key"),
                 "--out", str(blob)]) == 0
    capsys.readouterr()
    assert main(["trust", "inspect", str(body)]) == 0
    out = capsys.readouterr().out
    assert "UNSIGNED" in out and "version:    4" in out and "country DE types v" in out
    assert main(["trust", "inspect", str(blob), "--authority-keys",
                 str(keys / "authority.pem")]) == 0
    out = capsys.readouterr().out
    assert "signature valid" in out and "uci 1" in out and "blocked kids 1" in out
    assert main(["trust", "inspect", str(blob)]) == 0
    assert "NOT checked" in capsys.readouterr().out
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[device]\ndata_dir = "state"\n[verify]\n'
                      f'authority_keys = "{keys / "authority.pem"}"\n')
    assert main(["trust", "install", str(blob), "--config", str(config)]) == 0
    assert main(["trust", "install", str(blob), "--config", str(config)]) == 1  # rollback
    assert (tmp_path / "state" / "trust-bundle.cose").read_bytes() == blob.read_bytes()
    assert (tmp_path / "state" / "clock.json").exists()  # issue time raised the clock mark
    assert main(["trust", "install", str(body), "--config", str(config)]) == 1  # unsigned
