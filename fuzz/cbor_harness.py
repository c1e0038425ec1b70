"""Fuzz harness of the bounded CBOR reader, :mod:`kiosk.cborsafe` (docs/fuzzing.md).

``fuzz/fuzz_cbor.py`` runs :func:`check_one` under atheris.  The first input
byte picks the format's limits (COSE envelope, protected header, CWT claims,
trust bundle body, NIK manifest); the rest is the CBOR.  Invariants on every
input: the reader returns a value or raises :class:`CborError` (nothing
else); a refusal message is short and never quotes the input; an accepted
input passes :func:`check_bounds` under the same limits, holds no tag but
those its format allows (an independent walk of the item heads), has no
duplicate key or indefinite length (``cbor2``'s own strict mode agrees) and
``cbor2`` reads the very same value from it; whatever the compiled fast path
(kiosk/_cbor.c) accepts, ``cbor2``'s strict mode reads whole and the same;
and no input takes longer than 0.1 s.  Without atheris, :func:`run_hypothesis`
drives the same :func:`check_one`.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Any

import cbor2

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from kiosk import cborsafe  # noqa: E402
from kiosk.nik.listfile import MANIFEST_LIMITS  # noqa: E402
from kiosk.verify.bundle import BODY_LIMITS  # noqa: E402
from kiosk.verify.cose import ENVELOPE_LIMITS, HEADER_LIMITS  # noqa: E402
from kiosk.verify.steps import CLAIMS_LIMITS  # noqa: E402

FORMATS: tuple[tuple[str, cborsafe.Limits], ...] = (
    ("envelope", ENVELOPE_LIMITS),
    ("header", HEADER_LIMITS),
    ("claims", CLAIMS_LIMITS),
    ("bundle", BODY_LIMITS),
    ("manifest", MANIFEST_LIMITS),
)
MAX_INPUT = 65536
MAX_SECONDS = 0.1


def check_one(data: bytes) -> None:
    """Decode one input under the limits its first byte picks; assert the invariants."""
    if not data or len(data) > MAX_INPUT:
        return
    name, limits = FORMATS[data[0] % len(FORMATS)]
    body = data[1:]
    start = time.perf_counter()
    try:
        if name == "envelope":
            _, value = cborsafe.loads_tagged(body, limits, top_tags=frozenset({18, 61}))
        else:
            value = cborsafe.loads(body, limits)
    except cborsafe.CborError as exc:
        message = str(exc)
        assert len(message) < 80, message
        assert len(body) < 16 or body[-16:].hex() not in message
        return
    finally:
        assert time.perf_counter() - start < MAX_SECONDS, name
        _check_fast_path(body, limits)
    if name != "envelope":
        cborsafe.check_bounds(body, max_depth=limits.max_depth, max_items=limits.max_items)
        assert _tags(body) <= limits.tags, "a tag the format does not allow was accepted"
        strict = cbor2.loads(body, allow_duplicate_keys=False, allow_indefinite=False)
        assert _encoded(value) == _encoded(strict), "cbor2 reads another value"


def _check_fast_path(body: bytes, limits: cborsafe.Limits) -> None:
    """What the compiled decoder accepts, strict cbor2 reads whole, as the same value."""
    fast = cborsafe._cbor
    if fast is None:
        return
    try:
        value = fast.loads(body, limits.max_depth, limits.text_keys)
    except fast.Unsupported:
        return
    assert not _tags(body), "the fast path accepted a tag"
    stream = io.BytesIO(body)
    strict = cbor2.CBORDecoder(stream, max_depth=limits.max_depth, allow_indefinite=False,
                               allow_duplicate_keys=False,
                               strict_hashable_types=limits.text_keys).decode()
    assert stream.tell() == len(body), "the fast path accepted bytes after the item"
    assert _encoded(value) == _encoded(strict), "the fast path reads another value"


def _tags(data: bytes) -> set[int]:
    """Every tag number in one definite-length item (the oracle: no cborsafe code)."""
    found: set[int] = set()
    pos, pending = 0, [1]
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        pending[-1] -= 1
        head = data[pos]
        major, info = head >> 5, head & 0x1F
        pos += 1
        value = info
        if 24 <= info <= 27:
            size = 1 << (info - 24)
            value = int.from_bytes(data[pos:pos + size], "big")
            pos += size
        if major in (2, 3):
            pos += value
        elif major == 4:
            pending.append(value)
        elif major == 5:
            pending.append(2 * value)
        elif major == 6:
            found.add(value)
            pending.append(1)
    return found


def _encoded(value: Any) -> bytes:
    # Compare encodings: NaN is not equal to itself.
    return bytes(cbor2.dumps(value, datetime_as_timestamp=False))


def seeds() -> list[bytes]:
    """Initial corpus: a well-formed item of each format, and each format's hostile classics."""
    envelope = cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps({1: -7, 4: b"k" * 8}), {}, b"p",
                                             bytes(64)]))
    claims = cbor2.dumps({1: "XX", 4: 1700000000, 6: 1600000000,
                          -260: {1: {"ver": "1.3.0", "nam": {"fn": "A"}}}})
    bundle = cbor2.dumps({"format": 1, "version": 2, "signers": [{"der": b"x"}]})
    manifest = cbor2.dumps({"format": 1, "kdf": {"alg": "scrypt", "n": 16}})
    hostile = [bytes.fromhex(h) for h in ("82d81c6178d81d00", "a201020103", "9f01ff",
                                          "c11a00000001", "d8238101", "0102")]
    out = [b"\x00" + envelope, b"\x01" + cbor2.dumps({1: -7}), b"\x02" + claims,
           b"\x03" + bundle, b"\x04" + manifest]
    out += [bytes([i]) + h for h in hostile for i in range(len(FORMATS))]
    # Found by this target (2026-12-02): an empty map at the depth limit, accepted by
    # cbor2 but refused by the item walk, so the answer depended on the input's length.
    out.append(bytes.fromhex("3b935900000093590000000001000000000000930000000100000000000000000000a0a0a00000000000a0a0a0a00000a0a0a0a02000000000000000000000"))
    return out


def run_hypothesis(examples: int = 500) -> int:
    """The atheris-less fallback: hypothesis-driven inputs through :func:`check_one`.

    Returns the number of inputs run (seeds included).
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    corpus = seeds()
    for seed in corpus:
        check_one(seed)
    mutations = st.builds(
        lambda seed, pos, byte: seed[:pos % len(seed)] + bytes([byte]) + seed[pos % len(seed) + 1:],
        st.sampled_from(corpus), st.integers(0, 4096), st.integers(0, 255))

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.binary(min_size=1, max_size=400) | mutations)
    def fuzz(data: bytes) -> None:
        check_one(data)

    fuzz()
    return len(corpus) + examples


def make_corpus(folder: Path) -> int:
    """Write the seeds as one file each into ``folder``; returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = seeds()
    for index, seed in enumerate(corpus):
        (folder / f"seed-{index:04d}").write_bytes(seed)
    return len(corpus)
