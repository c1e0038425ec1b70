"""Base45 codec: RFC 9285 vectors, strict validation, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.verify import base45


@pytest.mark.parametrize(
    ("raw", "text"),
    [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"),
     (b"ietf!", "QED8WEX0"), (b"", ""), (b"\x00", "00"), (b"\xff\xff", "FGW")],
)
def test_rfc_vectors(raw: bytes, text: str) -> None:
    assert base45.encode(raw) == text
    assert base45.decode(text) == raw


@pytest.mark.parametrize(
    "bad",
    ["GGW",  # 65536 > 0xFFFF
     ":::",  # 91124 > 0xFFFF
     "A",  # length 1 mod 3
     "ABCD",  # length 1 mod 3
     "aBC",  # lower case is not in the alphabet
     "AB#",  # '#' is not in the alphabet
     "ÄBC",  # non-ASCII
     "BB8::",  # final pair 2024 > 0xFF
     ],
)
def test_decode_rejects_invalid(bad: str) -> None:
    with pytest.raises(base45.Base45Error):
        base45.decode(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_round_trip(data: bytes) -> None:
    assert base45.decode(base45.encode(data)) == data


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.text(alphabet=base45.ALPHABET + "ab#", max_size=60))
def test_decode_only_raises_its_own_error(text: str) -> None:
    try:
        out = base45.decode(text)
    except base45.Base45Error:
        return
    # Whatever decodes must re-encode to the same text (the encoding is canonical).
    assert base45.encode(out) == text
