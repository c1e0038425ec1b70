"""The bounded CBOR reader: what it refuses, before building what, and that it agrees with cbor2."""

from __future__ import annotations

import threading
import time
import tracemalloc
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk import cborsafe
from kiosk.cborsafe import CborError, Limits, check_bounds, loads, loads_tagged

from .hostile import shared_ref_bomb

PLAIN = Limits(max_bytes=1 << 20, max_depth=8, max_items=1000)
DATES = Limits(max_bytes=1 << 20, max_depth=8, max_items=1000, tags=cborsafe.DATE_TAGS)
TEXT_KEYS = Limits(max_bytes=1 << 20, max_depth=8, max_items=1000, text_keys=True)


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


@pytest.mark.parametrize(
    ("data", "limits", "match"),
    [
        (_hex("d81c 01"), DATES, r"tag 28 \(shared value\) is not allowed"),  # shareable
        (_hex("82 d81c 01 d81d 00"), DATES, r"tag 2[89] \(shared (value|reference)\)"),
        (_hex("c2 42 0100"), DATES, r"tag 2 \(bignum\) is not allowed"),  # bignum
        (_hex("d823 61 78"), DATES, r"tag 35 \(regular expression\)"),  # regular expression
        (_hex("d824 61 78"), DATES, r"tag 36 \(MIME message\)"),  # MIME message
        (_hex("d90102 81 01"), DATES, r"tag 258 \(set\)"),  # set
        (_hex("d9d9f7 01"), DATES, "tag 55799 is not allowed"),  # self-described
        (_hex("d2 80"), DATES, "tag 18 is not allowed"),  # COSE_Sign1, not at an envelope's head
        (_hex("c1 1a 00000001"), PLAIN, r"tag 1 \(epoch date-time\)"),  # only where allowed
        (_hex("a2 01 02 01 03"), PLAIN, "duplicate map key"),
        (_hex("a2 01 02 1801 03"), PLAIN, "duplicate map key"),  # same key, longer encoding
        (_hex("a2 01 02 f93c00 03"), PLAIN, "duplicate map key"),  # 1 and 1.0
        (_hex("a2 f5 02 01 03"), PLAIN, "duplicate map key"),  # true and 1 (equal in Python)
        (_hex("a2 6161 01 6161 02"), TEXT_KEYS, "duplicate map key"),
        (_hex("a1 01 01"), TEXT_KEYS, "not a text or byte string"),
        (_hex("9f 01 ff"), PLAIN, "indefinite-length"),
        (_hex("bf ff"), PLAIN, "indefinite-length"),
        (_hex("5f 4101 ff"), PLAIN, "indefinite-length"),
        (_hex("7f 6161 ff"), PLAIN, "indefinite-length"),
        (_hex("01 02"), PLAIN, "bytes after the CBOR item"),
        (_hex("5a ffffffff 00"), PLAIN, "truncated"),
        (b"", PLAIN, "truncated|not well-formed"),
        (_hex("ff"), PLAIN, "not well-formed"),
        (b"\x81" * 9 + b"\x01", PLAIN, "nesting"),
        (b"\x82" + b"\x81" * 9 + b"\x01" + b"\x59\x04\x00" + bytes(1024), PLAIN,
         "nesting deeper than 8"),  # long enough for the item walk to run first
        (b"\x99\x03\xe9" + b"\x00" * 1001, PLAIN, "container of 1001 items"),
        (b"\x85" + b"\x84" * 300 + b"\x00" * 1200, PLAIN, "more than 1000 items|nesting"),
        (b"\x5a\x00\x10\x00\x01" + b"\x00" * (1 << 20), PLAIN, "above the limit"),
    ],
)
def test_refusals_name_the_rule(data: bytes, limits: Limits, match: str) -> None:
    with pytest.raises(CborError, match=match):
        loads(data, limits)


def test_refusal_never_quotes_the_content() -> None:
    secret = "NIK 3171014506990001 " * 20
    data = cbor2.dumps({secret: 1})[:-1] + cbor2.dumps(secret) + b"\x02"  # the key twice
    data = b"\xa2" + data[1:]
    with pytest.raises(CborError) as caught:
        loads(data, TEXT_KEYS)
    assert "3171" not in str(caught.value) and len(str(caught.value)) < 80


def test_allowed_dates_decode_as_cbor2_does() -> None:
    data = _hex("a2 6273 63 c0 74 323032312d30362d31355430383a30303a30305a 6169 c1 1a 00000001")
    assert loads(data, DATES) == cbor2.loads(data)


@pytest.mark.parametrize("levels", [8, 30, 60])
def test_shared_reference_bomb_is_refused_at_once(levels: int) -> None:
    bomb = shared_ref_bomb(levels)
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(CborError, match=r"tag 2[89] \(shared"):
        loads(bomb, DATES)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 0.05 and peak < 1 << 20


def test_envelope_tags_only_in_front() -> None:
    limits = Limits(max_bytes=1 << 16, max_depth=4, max_items=64)
    top = frozenset({18, 61})
    assert loads_tagged(_hex("d2 82 01 02"), limits, top_tags=top) == ((18,), [1, 2])
    assert loads_tagged(_hex("d83d d2 80"), limits, top_tags=top) == ((61, 18), [])
    assert loads_tagged(_hex("80"), limits, top_tags=top) == ((), [])
    with pytest.raises(CborError, match="tag 24 is not allowed"):
        loads_tagged(_hex("d818 80"), limits, top_tags=top)
    with pytest.raises(CborError, match="tag 18 is not allowed"):
        loads_tagged(_hex("d2 81 d2 80"), limits, top_tags=top)  # a tag inside the item
    with pytest.raises(CborError, match="more than 2 tags"):
        loads_tagged(_hex("d2 d2 d2 80"), limits, top_tags=top)
    with pytest.raises(CborError, match="truncated"):
        loads_tagged(_hex("d9 00"), limits, top_tags=top)


def test_a_failed_decode_does_not_spoil_the_next() -> None:
    deep = b"\x81" * 8 + b"\x9f\x01"  # fails half-way at depth 8, inside an indefinite array
    for _ in range(3):
        with pytest.raises(CborError):
            loads(deep, PLAIN)
        assert loads(b"\x81" * 8 + b"\x01", PLAIN) == [[[[[[[[1]]]]]]]]


def test_threads_decode_independently() -> None:
    values = [{"n": i, "list": list(range(i % 50))} for i in range(200)]
    encoded = [cbor2.dumps(v) for v in values]
    failures: list[Any] = []

    def work() -> None:
        for value, data in zip(values, encoded, strict=True):
            if loads(data, TEXT_KEYS) != value:
                failures.append(value)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="tags"):
        Limits(max_bytes=10, max_depth=1, max_items=1, tags=frozenset({28}))
    with pytest.raises(ValueError, match="max_items"):
        Limits(max_bytes=10, max_depth=1, max_items=11)


# -- properties --------------------------------------------------------------

_scalars = (st.integers(-(2**64), 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=20)
            | st.booleans() | st.none() | st.floats(allow_nan=False))
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_the_subset_round_trips(value: Any) -> None:
    data = cbor2.dumps(value)
    if len(data) > TEXT_KEYS.max_bytes:
        return
    assert loads(data, TEXT_KEYS) == value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_any_bytes_give_a_value_or_cbor_error(data: bytes) -> None:
    limits = Limits(max_bytes=300, max_depth=6, max_items=40, tags=cborsafe.DATE_TAGS)
    try:
        value = loads(data, limits)
    except CborError:
        return
    # Accepted: cbor2 reads the same value, and the bounds hold.
    check_bounds(data, max_depth=6, max_items=40)
    assert _same(value, cbor2.loads(data))


def _same(a: Any, b: Any) -> bool:
    # NaN is not equal to itself; compare encodings instead.
    return bool(cbor2.dumps(a) == cbor2.dumps(b))


_tagged = st.recursive(
    st.integers(0, 10) | st.text(max_size=4),
    lambda inner: st.lists(inner, min_size=1, max_size=3)
    | st.builds(lambda t, v: cbor2.CBORTag(t, v),
                st.sampled_from([2, 3, 4, 5, 21, 24, 28, 29, 30, 32, 35, 36, 37, 258, 1000]),
                inner),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(_tagged)
def test_no_tag_but_the_dates_ever_passes(value: Any) -> None:
    try:
        data = cbor2.dumps(value)
    except Exception:  # cbor2 may refuse to encode some tag contents
        return
    has_tag = any(isinstance(v, cbor2.CBORTag) for v in _walk(value))
    if not has_tag:
        return
    with pytest.raises(CborError):
        loads(data, DATES)


def _walk(value: Any) -> list[Any]:
    out = [value]
    if isinstance(value, list):
        for item in value:
            out += _walk(item)
    elif isinstance(value, cbor2.CBORTag):
        out += _walk(value.value)
    return out


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), st.integers(-(2**63), 2**63), min_size=1,
                       max_size=6),
       st.data())
def test_a_repeated_key_is_always_refused(entries: dict[str, int], data: st.DataObject) -> None:
    pairs = [cbor2.dumps(k) + cbor2.dumps(v) for k, v in entries.items()]
    again = data.draw(st.sampled_from(sorted(entries)))
    pairs.insert(data.draw(st.integers(0, len(pairs))), cbor2.dumps(again) + b"\x00")
    encoded = bytes([0xA0 + len(pairs)]) + b"".join(pairs) if len(pairs) < 24 else b""
    with pytest.raises(CborError, match="duplicate map key"):
        loads(encoded, TEXT_KEYS)


def test_large_inputs_decode_exactly_through_the_reused_decoder() -> None:
    limits = Limits(max_bytes=1 << 22, max_depth=4, max_items=100_000, text_keys=True)
    for size in (4095, 4097, 70_000):
        value = {"blob": bytes(range(256)) * (size // 256), "list": list(range(size // 10))}
        assert loads(cbor2.dumps(value), limits) == value


@pytest.mark.parametrize(
    "data",
    [b"\x81" * 8 + b"\x80", b"\x81" * 9 + b"\x80", b"\x81" * 7 + b"\xa0", b"\x81" * 8 + b"\xc1\x01",
     b"\x81" * 7 + b"\xc1\x01", b"\x81" * 8 + b"\xa1\x01\x01", b"\x81" * 7 + b"\xa1\x01\x81\x01"],
)
def test_the_item_walk_counts_depth_as_cbor2_does(data: bytes) -> None:
    """Short inputs skip the walk: both must agree, or length would change the answer."""
    try:
        cbor2.loads(data, max_depth=8)
        by_cbor2 = True
    except cbor2.CBORDecodeError:
        by_cbor2 = False
    try:
        check_bounds(data, max_depth=8, max_items=100)
        by_walk = True
    except CborError:
        by_walk = False
    assert by_walk == by_cbor2
