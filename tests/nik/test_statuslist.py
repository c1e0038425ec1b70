"""The signed status list: build, sign, install (atomic, no rollback), load, look up."""

from __future__ import annotations

import os
import random
from datetime import timedelta
from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.errors import DocumentError
from kiosk.nik.build import sort_unique
from kiosk.nik.kdf import DEFAULT_KDF, DEFAULT_WIDTH, KdfParams, derive_entry
from kiosk.nik.listfile import Manifest, StatusList, read_manifest, sign_manifest
from kiosk.nik.store import (
    MANIFEST_NAME,
    data_name,
    index_name,
    install_list,
    installed_manifest,
    load_installed,
    reverify,
)
from kiosk.signing import TRUST_BUNDLE, generate_authority_key, sign_document
from tests.nik.conftest import MEMBERS, NON_MEMBERS, NOW, TRUSTED, ListFactory

REPO = Path(__file__).resolve().parents[2]


def lookup(status: StatusList, nik: str) -> bool:
    m = status.manifest
    return derive_entry(nik, m.salt, m.kdf, m.width) in status


def test_default_parameters_are_the_documented_ones() -> None:
    assert KdfParams(n=2**16, r=8, p=1) == DEFAULT_KDF
    assert DEFAULT_KDF.memory_bytes == 64 * 1024 * 1024
    assert DEFAULT_WIDTH == 8
    doc = (REPO / "docs" / "nik-privacy.md").read_text(encoding="utf-8")
    assert "N = 2^16, r = 8, p = 1" in doc
    assert "8 bytes" in doc


def test_member_and_non_member(make_list: ListFactory, tmp_path: Path) -> None:
    built = make_list()
    install_list(built.manifest_path, built.data_path, tmp_path / "gate", TRUSTED, NOW)
    status = load_installed(tmp_path / "gate", TRUSTED)
    assert status is not None
    with status:
        assert all(lookup(status, nik) for nik in MEMBERS)
        assert not any(lookup(status, nik) for nik in NON_MEMBERS)
        assert status.manifest.count == len(MEMBERS)


def test_invalid_and_duplicate_lines_are_skipped(make_list: ListFactory) -> None:
    built = make_list([*MEMBERS, MEMBERS[0], "not a nik", "3171000101900001"])
    assert built.invalid == 2
    assert built.manifest.count == len(MEMBERS)


def test_manifest_carries_the_signed_fields(make_list: ListFactory) -> None:
    built = make_list(version=7)
    manifest = read_manifest(built.manifest_path.read_bytes(), TRUSTED)
    assert manifest == built.manifest
    assert manifest.version == 7 and len(manifest.salt) == 16
    assert manifest.expires_at - manifest.issued_at == timedelta(days=7)
    assert built.data_path.stat().st_size == manifest.count * manifest.width
    assert "salt" not in manifest.summary()


def test_every_version_has_a_fresh_salt(make_list: ListFactory) -> None:
    one, two = make_list(version=1), make_list(version=2)
    assert one.manifest.salt != two.manifest.salt
    assert one.data_path.read_bytes() != two.data_path.read_bytes()


def test_tampered_signature_is_refused(make_list: ListFactory, tmp_path: Path) -> None:
    built = make_list()
    blob = bytearray(built.manifest_path.read_bytes())
    blob[-5] ^= 0x01  # inside the Ed25519 signature
    built.manifest_path.write_bytes(bytes(blob))
    with pytest.raises(DocumentError, match="bad signature"):
        install_list(built.manifest_path, built.data_path, tmp_path / "gate", TRUSTED, NOW)
    assert not (tmp_path / "gate" / MANIFEST_NAME).exists()


def test_foreign_key_and_wrong_content_type_are_refused(
    make_list: ListFactory, tmp_path: Path
) -> None:
    built = make_list(key=generate_authority_key())
    with pytest.raises(DocumentError, match="unknown authority key"):
        install_list(built.manifest_path, built.data_path, tmp_path / "gate", TRUSTED, NOW)
    from tests.nik.conftest import AUTHORITY

    bundle = tmp_path / "bundle.manifest"
    bundle.write_bytes(
        sign_document(built.manifest.to_cbor(), AUTHORITY, content_type=TRUST_BUNDLE)
    )
    with pytest.raises(DocumentError, match="expected"):
        install_list(bundle, built.data_path, tmp_path / "gate", TRUSTED, NOW)


def test_tampered_data_file_is_refused(make_list: ListFactory, tmp_path: Path) -> None:
    built = make_list()
    data = bytearray(built.data_path.read_bytes())
    data[3] ^= 0x40
    built.data_path.write_bytes(bytes(data))
    with pytest.raises(DocumentError, match="does not match the signed manifest"):
        install_list(built.manifest_path, built.data_path, tmp_path / "gate", TRUSTED, NOW)
    assert list((tmp_path / "gate").iterdir()) == []  # no temp file left behind


def test_truncated_data_file_is_refused(make_list: ListFactory, tmp_path: Path) -> None:
    built = make_list()
    built.data_path.write_bytes(built.data_path.read_bytes()[:-3])
    with pytest.raises(DocumentError, match="does not match"):
        install_list(built.manifest_path, built.data_path, tmp_path / "gate", TRUSTED, NOW)
    with pytest.raises(DocumentError, match="manifest says"):
        StatusList(built.manifest, built.data_path)


def test_installed_data_altered_later_is_caught_on_load(
    make_list: ListFactory, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    built = make_list()
    install_list(built.manifest_path, built.data_path, gate, TRUSTED, NOW)
    installed = gate / data_name(1)
    st_before = installed.stat()
    data = bytearray(installed.read_bytes())
    data[0] ^= 0x01
    installed.write_bytes(bytes(data))
    # mtime changed: the lazy check notices and re-hashes.
    with pytest.raises(DocumentError, match="hash does not match"):
        load_installed(gate, TRUSTED)
    # Same size, mtime and inode restored (bit rot, or a careful attacker): only
    # a full verification (boot option or background reverify) catches it.
    os.utime(installed, ns=(st_before.st_atime_ns, st_before.st_mtime_ns))
    status = load_installed(gate, TRUSTED)
    assert status is not None
    status.close()
    with pytest.raises(DocumentError, match="hash does not match"):
        reverify(status.manifest, installed)
    with pytest.raises(DocumentError, match="hash does not match"):
        load_installed(gate, TRUSTED, full_verify=True)


def test_truncated_installed_file_is_refused_on_load(
    make_list: ListFactory, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    built = make_list()
    install_list(built.manifest_path, built.data_path, gate, TRUSTED, NOW)
    with (gate / data_name(1)).open("r+b") as file:
        file.truncate(8)
    with pytest.raises(DocumentError, match="bytes, expected"):
        load_installed(gate, TRUSTED)


def test_wrong_salt_finds_nobody(make_list: ListFactory, tmp_path: Path) -> None:
    # A manifest whose salt is not the one the data was built with (a build bug,
    # or salts mixed up between versions): members are simply not found.
    built = make_list()
    from tests.nik.conftest import AUTHORITY

    wrong = Manifest(**{**_fields(built.manifest), "salt": os.urandom(16)})
    built.manifest_path.write_bytes(sign_manifest(wrong, AUTHORITY))
    install_list(built.manifest_path, built.data_path, tmp_path / "gate", TRUSTED, NOW)
    status = load_installed(tmp_path / "gate", TRUSTED)
    assert status is not None
    with status:
        assert not any(lookup(status, nik) for nik in MEMBERS)


def _fields(manifest: Manifest) -> dict[str, object]:
    return {name: getattr(manifest, name) for name in Manifest.__slots__}  # type: ignore[attr-defined]


def test_rollback_is_refused(make_list: ListFactory, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    v1, v2 = make_list(version=1), make_list(version=2)
    install_list(v2.manifest_path, v2.data_path, gate, TRUSTED, NOW)
    for old in (v1, v2):
        with pytest.raises(DocumentError, match="rollback"):
            install_list(old.manifest_path, old.data_path, gate, TRUSTED, NOW)
    manifest = installed_manifest(gate, TRUSTED)
    assert manifest is not None and manifest.version == 2
    v3 = make_list(version=3)
    install_list(v3.manifest_path, v3.data_path, gate, TRUSTED, NOW)
    assert sorted(p.name for p in gate.iterdir()) == [
        data_name(3),
        index_name(3),
        MANIFEST_NAME,
        "niklist.state.json",
    ]


def test_expired_list_is_not_installed(make_list: ListFactory, tmp_path: Path) -> None:
    built = make_list(issued_at=NOW - timedelta(days=10), lifetime=timedelta(days=7))
    with pytest.raises(DocumentError, match="expired"):
        install_list(built.manifest_path, built.data_path, tmp_path / "gate", TRUSTED, NOW)


def test_hostile_manifest_payloads_are_document_errors(tmp_path: Path) -> None:
    from tests.nik.conftest import AUTHORITY

    for payload in (
        b"\xff",
        cbor2.dumps([1, 2]),
        cbor2.dumps({"format": 1}),
        cbor2.dumps({"format": 1, "version": "1"}),
    ):
        blob = sign_document(payload, AUTHORITY, content_type="application/vnd.kiosk.nik-list+cbor")
        with pytest.raises(DocumentError):
            read_manifest(blob, TRUSTED)


def test_no_list_installed(tmp_path: Path) -> None:
    assert load_installed(tmp_path / "empty", TRUSTED) is None


def _random_list(
    tmp_path: Path, count: int, width: int, seed: int
) -> tuple[StatusList, set[bytes]]:
    rng = random.Random(seed)
    keys = {rng.randbytes(width) for _ in range(count)}
    # Edge keys: the smallest and largest possible entries.
    keys |= {b"\x00" * width, b"\xff" * width}
    data = sort_unique(b"".join(keys), width)
    path = tmp_path / f"random-{width}-{seed}.data"
    path.write_bytes(data)
    manifest = Manifest(
        version=1,
        salt=b"s" * 16,
        kdf=KdfParams(16, 8, 1),
        width=width,
        count=len(keys),
        issued_at=NOW,
        expires_at=NOW + timedelta(days=1),
        data_sha256=b"\x00" * 32,
    )
    return StatusList(manifest, path), keys


@pytest.mark.parametrize("indexed", [False, True])
@pytest.mark.parametrize("width", [8, 10])
def test_search_agrees_with_a_set(tmp_path: Path, width: int, indexed: bool) -> None:
    status, keys = _random_list(tmp_path, 20_000, width, seed=width)
    if indexed:
        status.use_index(status.make_index())
    with status:
        assert all(key in status for key in keys)
        rng = random.Random(1)
        probes = [rng.randbytes(width) for _ in range(5000)]
        assert [p in status for p in probes] == [p in keys for p in probes]
        assert (
            b"\x00" * (width - 1) + b"\x01" not in status or b"\x00" * (width - 1) + b"\x01" in keys
        )
        assert b"short" not in status


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=8, max_size=8), max_size=300), st.binary(min_size=8, max_size=8))
def test_search_property_skewed_lists(
    tmp_path_factory: pytest.TempPathFactory, keys: list[bytes], probe: bytes
) -> None:
    # Hypothesis makes non-uniform lists (clusters, runs of zeros), where the
    # interpolation guess is far off: the galloping search must stay correct.
    folder = tmp_path_factory.mktemp("skewed")
    data = sort_unique(b"".join(keys), 8)
    (folder / "d").write_bytes(data)
    manifest = Manifest(
        1,
        b"s" * 16,
        KdfParams(16, 8, 1),
        8,
        len(data) // 8,
        NOW,
        NOW + timedelta(days=1),
        b"\x00" * 32,
    )
    with StatusList(manifest, folder / "d") as status:
        assert all(k in status for k in keys)
        assert (probe in status) == (probe in set(keys))
        status.use_index(status.make_index())
        assert all(k in status for k in keys)
        assert (probe in status) == (probe in set(keys))


def test_a_wrong_index_can_only_hide_members(tmp_path: Path) -> None:
    status, keys = _random_list(tmp_path, 5000, 8, seed=3)
    with status:
        good = status.make_index()
        status.use_index(bytes(reversed(good)))  # right length, garbage content
        rng = random.Random(2)
        probes = [rng.randbytes(8) for _ in range(2000)]
        assert not any(p in status for p in probes if p not in keys)  # never a false allow
        with pytest.raises(DocumentError, match="index"):
            status.use_index(good[:-8])


def test_lost_or_altered_index_is_rebuilt_on_load(make_list: ListFactory, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    built = make_list(MEMBERS * 1)
    install_list(built.manifest_path, built.data_path, gate, TRUSTED, NOW)
    original = (gate / index_name(1)).read_bytes()
    (gate / index_name(1)).write_bytes(b"\xff" * len(original))
    status = load_installed(gate, TRUSTED)
    assert status is not None
    with status:
        assert all(lookup(status, nik) for nik in MEMBERS)
    assert (gate / index_name(1)).read_bytes() == original
    (gate / index_name(1)).unlink()
    status = load_installed(gate, TRUSTED)
    assert status is not None
    status.close()
    assert (gate / index_name(1)).read_bytes() == original


def test_rollback_floor_survives_an_authority_key_rotation(
    make_list: ListFactory, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    old_key = generate_authority_key()
    v5 = make_list(version=5, key=old_key)
    install_list(v5.manifest_path, v5.data_path, gate, [old_key.public_key()], NOW)
    # Keys rotated: the installed v5 no longer verifies, but its version still counts.
    v4, v6 = make_list(version=4), make_list(version=6)
    with pytest.raises(DocumentError, match="rollback"):
        install_list(v4.manifest_path, v4.data_path, gate, TRUSTED, NOW)
    assert install_list(v6.manifest_path, v6.data_path, gate, TRUSTED, NOW).version == 6
