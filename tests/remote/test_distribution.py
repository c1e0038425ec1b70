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
    Release,
    ReleaseError,
    choose,
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


@pytest.mark.parametrize("bad", [0, -1, 100, True, "3", 2.0, [3]])
def test_a_descriptor_format_out_of_bounds_is_refused(bad: object) -> None:
    doc = json.loads(release_for("trust", 2, {"bundle": b"x"}, 2).to_json())
    assert parse_descriptor(json.dumps(doc).encode(), "trust").format == 2
    doc["format"] = bad
    with pytest.raises(ReleaseError, match="format"):
        parse_descriptor(json.dumps(doc).encode(), "trust")


def _offer(version: int, body_format: int | None, scope: str = "s") -> tuple[Release, str]:
    return release_for("trust", version, {"bundle": f"{version}/{body_format}".encode()},
                       body_format), scope


def test_choose_takes_the_newest_version_then_the_newest_readable_format() -> None:
    offers = [_offer(2, 1), _offer(2, 2), _offer(1, 3)]
    assert choose(offers, (1, 2, 3)) == (_offer(2, 2), "")
    assert choose(offers, (1,)) == (_offer(2, 1), "")
    assert choose(offers, ()) == (_offer(2, 2), "")  # no formats known: any
    assert choose([], (1,)) == (None, "")
    # A descriptor from before variants states no format: tried, its install decides.
    assert choose([_offer(4, None), _offer(3, 2)], (2,)) == (_offer(4, None), "")


def test_choose_says_when_the_newest_version_is_out_of_reach() -> None:
    best, problem = choose([_offer(3, 3), _offer(2, 2)], (1, 2))
    assert best == _offer(2, 2)
    assert problem == "no readable format for v3 (offered 3; reads 1, 2)"
    assert choose([_offer(3, 3)], (1, 2))[0] is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 4)), max_size=6),
       st.sets(st.integers(1, 4), min_size=1))
def test_choose_never_picks_an_unreadable_format(pairs: list[tuple[int, int]],
                                                 readable: set[int]) -> None:
    offers = [_offer(v, f) for v, f in pairs]
    best, problem = choose(offers, tuple(sorted(readable)))
    usable = [(v, f) for v, f in pairs if f in readable]
    if best is None:
        assert not usable
    else:
        assert best[0].format in readable
        assert (best[0].version, best[0].format) == max(usable)
    assert bool(problem) == (bool(pairs) and max(pairs)[0] not in {v for v, _ in usable})
