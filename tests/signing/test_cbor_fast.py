"""The compiled fast path of the CBOR reader (kiosk/_cbor.c) against cbor2, its oracle.

Its contract: on any input it either returns exactly what cbor2 returns, or
declines (``Unsupported``) so that cbor2 decides; it never accepts what the
strict reader refuses.  These tests hold it to that on generated values,
on arbitrary bytes and on every shape it must decline, and check that its
error paths free what they built.
"""

from __future__ import annotations

import contextlib
import io
import math
import tracemalloc
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk import cborsafe
from kiosk.cborsafe import CborError, Limits

_cbor = pytest.importorskip("kiosk._cbor", reason="the compiled CBOR decoder is not built")

pytestmark = pytest.mark.skipif(cborsafe.IMPLEMENTATION != "c", reason="compiled path not in use")


def _strict(data: bytes, max_depth: int, text_keys: bool) -> Any:
    """cbor2 as cborsafe runs it, with no tags allowed; raises on refusal or trailing bytes."""
    stream = io.BytesIO(data)
    value = cbor2.CBORDecoder(stream, max_depth=max_depth, allow_indefinite=False,
                              allow_duplicate_keys=False, strict_hashable_types=text_keys,
                              tag_hook=_no_tags, semantic_decoders=_NoSemantics()).decode()
    if stream.tell() != len(data):
        raise ValueError("bytes after the item")
    return value


def _no_tags(*_: object) -> None:
    raise ValueError("tag")


class _NoSemantics(dict[int, Any]):
    def __getitem__(self, tag: int) -> Any:
        return _no_tags

    def get(self, tag: int, default: Any = None) -> Any:
        return _no_tags

    def __contains__(self, tag: object) -> bool:
        return True


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (NaN equal to NaN, 1 not equal to True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a)
                                                     == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


_keys = st.integers(-(2**63), 2**64 - 1) | st.text(max_size=6) | st.binary(max_size=6)
_leaves = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
           | st.text(max_size=20) | st.binary(max_size=20))
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(_keys, inner, max_size=6),
    max_leaves=50,
)


@settings(max_examples=600, deadline=None)
@given(_values, st.booleans())
def test_every_value_of_the_subset_decodes_as_cbor2_decodes_it(value: Any, canonical: bool) -> None:
    data = cbor2.dumps(value, canonical=canonical)
    decoded = _cbor.loads(data, 64, False)
    assert _same(decoded, cbor2.loads(data))
    if canonical:  # keys re-ordered: the decoded value encodes back to the same bytes
        assert cbor2.dumps(decoded, canonical=True) == data
    else:
        assert _same(decoded, value)


def _mutations() -> st.SearchStrategy[bytes]:
    encoded = _values.map(lambda v: bytes(cbor2.dumps(v)))
    return st.builds(
        lambda data, pos, byte, cut: (data[: pos % (len(data) + 1)] + bytes([byte])
                                      + data[pos % (len(data) + 1) + 1 :])[: max(cut, 1)],
        encoded, st.integers(0, 200), st.integers(0, 255), st.integers(1, 400))


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=200) | _mutations(), st.integers(0, 6), st.booleans())
def test_on_any_bytes_it_agrees_with_strict_cbor2_or_declines(data: bytes, depth: int,
                                                              text_keys: bool) -> None:
    try:
        fast = _cbor.loads(data, depth, text_keys)
    except _cbor.Unsupported:
        return
    # Accepted: the strict reader must accept it too and read the same value.
    assert _same(fast, _strict(data, depth, text_keys))
    if text_keys:
        assert all(type(k) in (str, bytes) for k in _keys_of(fast))


def _keys_of(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [k for item in value for k in _keys_of(item)]
    if isinstance(value, dict):
        return list(value) + [k for item in value.values() for k in _keys_of(item)]
    return []


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (_hex("c1 1a 00000001"), "a tag (cbor2 decides: a date tag may be allowed)"),
        (_hex("d81c 01"), "a shared-value tag"),
        (_hex("9f 01 ff"), "indefinite-length array"),
        (_hex("bf ff"), "indefinite-length map"),
        (_hex("5f 4101 ff"), "indefinite-length bytes"),
        (_hex("7f 6161 ff"), "indefinite-length text"),
        (_hex("a2 01 02 01 03"), "duplicate key"),
        (_hex("a2 01 02 1801 03"), "duplicate key, longer encoding"),
        (_hex("a2 6161 01 6161 02"), "duplicate text key"),
        (_hex("a1 f5 01"), "a bool key (equal to 1 in Python)"),
        (_hex("a1 f93c00 01"), "a float key (1.0 equals 1)"),
        (_hex("a1 f6 01"), "a null key"),
        (_hex("a1 80 01"), "an array key (cbor2 makes a tuple)"),
        (_hex("f7"), "undefined"),
        (_hex("f0"), "an unassigned simple value"),
        (_hex("f8 20"), "a one-byte simple value"),
        (_hex("ff"), "a lone break"),
        (_hex("3b ffffffffffffffff"), "an integer below -2**63"),
        (_hex("62 c328"), "text that is not UTF-8"),
        (_hex("63 eda080"), "an encoded surrogate"),
        (_hex("01 02"), "bytes after the item"),
        (b"", "no item"),
        (_hex("5a ffffffff 00"), "a byte string longer than the input"),
        (_hex("9b 00000000ffffffff 00"), "an array longer than the input"),
        (_hex("bb 00000000ffffffff 00"), "a map longer than the input"),
        (_hex("1c"), "reserved additional information"),
        (_hex("19 01"), "a truncated argument"),
        (_hex("fb 0000"), "a truncated double"),
        (b"\x81" * 7, "truncated nesting"),
    ],
)
def test_it_declines_what_it_does_not_decode(data: bytes, why: str) -> None:
    with pytest.raises(_cbor.Unsupported):
        _cbor.loads(data, 8, False)


def test_text_keys_decline_every_other_key() -> None:
    assert _cbor.loads(_hex("a2 6161 01 4162 02"), 8, True) == {"a": 1, b"b": 2}
    with pytest.raises(_cbor.Unsupported):
        _cbor.loads(_hex("a1 01 01"), 8, True)


@pytest.mark.parametrize("depth", [0, 1, 2, 8, 16])
def test_nesting_up_to_the_limit_decodes_and_one_more_declines(depth: int) -> None:
    """Each array or map is one level, as cbor2 counts non-empty ones."""
    nested = b"\x81" * depth + b"\x01"
    assert _cbor.loads(nested, depth, False) == _strict(nested, depth, False)
    with pytest.raises(_cbor.Unsupported):
        _cbor.loads(b"\x81" + nested, depth, False)
    with pytest.raises(_cbor.Unsupported):  # far beyond any format: the C stack stays bounded
        _cbor.loads(b"\x81" * 100_000 + b"\x01", 1_000_000, False)


def test_declined_inputs_still_get_cborsafe_answers() -> None:
    """Through cborsafe.loads the result is the strict reader's, declined or not."""
    dates = Limits(max_bytes=4096, max_depth=8, max_items=256, tags=cborsafe.DATE_TAGS)
    plain = Limits(max_bytes=4096, max_depth=8, max_items=256)
    assert cborsafe.loads(_hex("c1 1a 00000001"), dates).year == 1970
    for data, rule in ((_hex("a2 01 02 01 03"), "duplicate map key"),
                       (_hex("9f 01 ff"), "indefinite-length"),
                       (_hex("01 02"), "bytes after the CBOR item"),
                       (_hex("d81c 01"), "tag 28")):
        with pytest.raises(CborError, match=rule):
            cborsafe.loads(data, plain)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=120) | _mutations())
def test_cborsafe_answers_the_same_with_and_without_it(data: bytes) -> None:
    limits = Limits(max_bytes=400, max_depth=6, max_items=120, tags=cborsafe.DATE_TAGS)
    outcomes = []
    for fast in (_cbor, None):
        original = cborsafe._cbor
        cborsafe._cbor = fast
        try:
            outcomes.append(("value", cbor2.dumps(cborsafe.loads(data, limits))))
        except CborError as exc:
            outcomes.append(("refused", str(exc)))
        finally:
            cborsafe._cbor = original
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize(
    "data",
    [
        # Each fails after building objects: a duplicate key at the end, bad UTF-8 late,
        # a tag deep inside, trailing bytes after a whole map.
        b"\xb5" + cbor2.dumps({f"k{i}": "v" * 50 for i in range(20)})[1:] + cbor2.dumps("k3")
        + b"\x00",
        b"\xa3" + cbor2.dumps("a") + b"\x01" + cbor2.dumps("b") + b"\x02" + cbor2.dumps("a")
        + b"\x03",
        b"\x83" + cbor2.dumps("x" * 100) + cbor2.dumps(b"y" * 100) + b"\x62\xc3\x28",
        b"\x82" + cbor2.dumps([list(range(30))]) + b"\xc1\x01",
        cbor2.dumps({"a": list(range(50))}) + b"\x00",
    ],
)
def test_error_paths_free_what_they_built(data: bytes) -> None:
    with pytest.raises(_cbor.Unsupported):
        _cbor.loads(data, 8, False)

    def decline(times: int) -> None:
        for _ in range(times):
            with contextlib.suppress(_cbor.Unsupported):
                _cbor.loads(data, 8, False)

    decline(500)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        decline(20_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # A leak of the smallest object built (one int) would keep 20,000 x 28 bytes.
    assert grown < 16 * 1024, f"{grown} bytes kept after 20,000 declined decodes"


def test_it_refuses_wrong_argument_types() -> None:
    with pytest.raises(TypeError):
        _cbor.loads(bytearray(b"\x01"), 8, False)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _cbor.loads(b"\x01", 8)  # type: ignore[call-arg]
