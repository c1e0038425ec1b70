"""Release descriptors and reassembly: bounded, order-free, never trusting the sender."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.remote.distribution import (
    CHUNK_BYTES,
    MAX_DESCRIPTOR_BYTES,
    Assembly,
    ReleaseError,
    parse_descriptor,
    release_for,
    scope_roots,
    split,
)


def test_scopes_use_a_level_no_real_id_can_take() -> None:
    assert scope_roots("kiosk/{site}/{gate}", "mall", "g1") == (
        "kiosk/_all/_all",
        "kiosk/mall/_all",
        "kiosk/mall/g1",
    )


def test_a_descriptor_round_trips() -> None:
    release = release_for("nik", 7, {"manifest": b"m" * 10, "data": b"d" * 50_000})
    assert parse_descriptor(release.to_json(), "nik") == release
    assert release.files[1].chunks == 5


@pytest.mark.parametrize(
    "payload",
    [
        b"x" * (MAX_DESCRIPTOR_BYTES + 1),
        b"not json",
        b"[" * 5000,
        json.dumps({"v": 1, "kind": "nik", "version": 1}).encode(),  # kind mismatch for trust
        json.dumps(
            {"v": 1, "kind": "trust", "version": True, "chunk_bytes": CHUNK_BYTES, "files": []}
        ).encode(),
        json.dumps(
            {"v": 1, "kind": "trust", "version": 2, "chunk_bytes": 999, "files": []}
        ).encode(),
        json.dumps(
            {
                "v": 1,
                "kind": "trust",
                "version": 2,
                "chunk_bytes": CHUNK_BYTES,
                "files": [{"role": "bundle", "size": 2**40, "sha256": "0" * 64}],
            }
        ).encode(),
        json.dumps(
            {
                "v": 1,
                "kind": "trust",
                "version": 2,
                "chunk_bytes": CHUNK_BYTES,
                "files": [{"role": "bundle", "size": 1, "sha256": "../../etc"}],
            }
        ).encode(),
    ],
)
def test_hostile_descriptors_are_refused(payload: bytes) -> None:
    with pytest.raises(ReleaseError):
        parse_descriptor(payload, "trust")


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=70),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=5),
        max_leaves=20,
    )
)
def test_any_json_is_refused_or_well_formed(doc: object) -> None:
    try:
        release = parse_descriptor(json.dumps(doc).encode(), "trust")
    except ReleaseError:
        return
    assert release.kind == "trust" and release.version > 0


def test_chunks_in_any_order_with_duplicates_rebuild_the_file(tmp_path: Path) -> None:
    content = random.Random(1).randbytes(5 * CHUNK_BYTES + 123)
    release = release_for("trust", 2, {"bundle": content})
    assembly = Assembly(release.files[0], tmp_path)
    pieces = list(split(content))
    random.Random(2).shuffle(pieces)
    for index, chunk in pieces + pieces[:3]:
        assembly.add(index, chunk)
    assert assembly.verified().read_bytes() == content


def test_wrong_chunks_are_refused_and_a_wrong_file_never_verifies(tmp_path: Path) -> None:
    content = b"a" * (CHUNK_BYTES + 10)
    assembly = Assembly(release_for("trust", 2, {"bundle": content}).files[0], tmp_path)
    with pytest.raises(ReleaseError):
        assembly.add(2, b"x")  # out of range
    with pytest.raises(ReleaseError):
        assembly.add(1, b"a" * 11)  # the last chunk is 10 bytes
    assembly.add(0, b"b" * CHUNK_BYTES)  # right length, wrong content
    with pytest.raises(ReleaseError, match="missing"):
        assembly.verified()
    assembly.add(1, b"a" * 10)
    with pytest.raises(ReleaseError, match="hash"):
        assembly.verified()
    assembly.discard()
    assert not assembly.path.exists()
