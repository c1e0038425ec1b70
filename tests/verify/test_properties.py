"""Property tests: verify() never raises and always denies garbage with a Reason."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.decision import Reason
from kiosk.verify import Verifier, base45, steps
from kiosk.verify.issuer import make_signer, sample_vaccination

from .conftest import issue, verifier_for

_SIGNER = make_signer("Property DSC")
_VERIFIER: Verifier = verifier_for(_SIGNER[1])
_VALID = issue(_SIGNER, sample_vaccination())
_SETTINGS = settings(max_examples=250, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


def _denied(text: str) -> None:
    """verify() returns (never raises) a deny with a specific reason."""
    decision = _VERIFIER.verify(text)
    assert isinstance(decision.reason, Reason)
    assert not decision.allowed
    assert decision.reason is not Reason.OK


def test_valid_baseline() -> None:
    assert _VERIFIER.verify(_VALID).allowed


@_SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    _denied(text)


@_SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes_after_prefix(data: bytes) -> None:
    _denied("HC1:" + base45.encode(data))


@_SETTINGS
@given(st.integers(min_value=0, max_value=len(_VALID) - 1))
def test_truncations(cut: int) -> None:
    _denied(_VALID[:cut])


@_SETTINGS
@given(st.integers(min_value=4, max_value=len(_VALID) - 1), st.sampled_from(base45.ALPHABET))
def test_character_substitutions(pos: int, char: str) -> None:
    if _VALID[pos] == char:
        return
    text = _VALID[:pos] + char + _VALID[pos + 1:]
    decision = _VERIFIER.verify(text)
    if decision.allowed:
        # Deflate has redundant encodings (e.g. the dynamic Huffman header may
        # describe codes no symbol uses): another compressed form of the very
        # same signed COSE is the same certificate.  Anything else is a forgery.
        assert steps.inflate(base45.decode(text[4:])) == _COSE
    else:
        assert isinstance(decision.reason, Reason) and decision.reason is not Reason.OK


_INNER = base45.decode(_VALID[4:])
_COSE = steps.inflate(_INNER)


@_SETTINGS
@given(st.integers(min_value=0, max_value=len(_INNER) * 8 - 1))
def test_bit_flips_in_compressed_payload(bit: int) -> None:
    flipped = bytearray(_INNER)
    flipped[bit // 8] ^= 1 << (bit % 8)
    result = _VERIFIER.inspect("HC1:" + base45.encode(bytes(flipped)))
    assert isinstance(result.decision.reason, Reason)
    if result.decision.allowed:
        # A flip in unused deflate bits can inflate to the very same COSE bytes;
        # what must never happen is a *different* certificate being accepted.
        assert result.payload == sample_vaccination()
