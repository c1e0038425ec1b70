"""The fuzz target, run for a bounded number of iterations; bundle-parser properties."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import ModuleType

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.errors import DocumentError
from kiosk.verify.bundle import TrustBundle
from kiosk.verify.cborlimits import CborBoundsError, check_bounds
from tests.conftest import REPO_ROOT
from tests.fuzzrun import bounded_run, load_module, needs_atheris

FUZZ = REPO_ROOT / "fuzz" / "fuzz_verify.py"
HARNESS = REPO_ROOT / "fuzz" / "harness.py"


def _load_target() -> ModuleType:
    return load_module(HARNESS)


def _more_than(corpus: Path, count: int) -> None:
    assert len(list(corpus.iterdir())) > count  # shared seeds + own samples


@needs_atheris
def test_atheris_bounded_run(tmp_path: Path) -> None:
    """3,000 libFuzzer iterations over the whole chain (~3 s) from the seed corpus."""
    bounded_run(FUZZ, 3000, tmp_path, corpus_check=lambda corpus: _more_than(corpus, 400),
                make_timeout=120, run_timeout=180)


def test_hypothesis_fallback_of_the_same_target() -> None:
    """The same invariants without atheris (what runs where libFuzzer is unavailable)."""
    assert _load_target().run_hypothesis(examples=300) > 300


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_bundle_body_parser_only_raises_document_error(body: bytes) -> None:
    with contextlib.suppress(DocumentError):
        TrustBundle.from_cbor(body)


_LEAF = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.binary(max_size=40) \
    | st.text(max_size=10)
_CBOR = st.recursive(_LEAF, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4),
                     max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["format", "version", "issued_at", "max_age_s",
                                        "grace_s", "signers", "revocation", "policy"]),
                       _CBOR, max_size=8))
def test_structured_bundle_bodies_only_raise_document_error(obj: dict[str, object]) -> None:
    with contextlib.suppress(DocumentError):
        TrustBundle.from_cbor(cbor2.dumps(obj))


@settings(max_examples=300, deadline=None)
@given(_CBOR)
def test_bounds_walker_agrees_with_cbor2(obj: object) -> None:
    data = cbor2.dumps(obj)
    check_bounds(data, max_depth=50, max_items=10_000)  # well-formed: accepted
    with pytest.raises(CborBoundsError):
        check_bounds(data + b"\x00", max_depth=50, max_items=10_000)
    if len(data) > 1:
        try:
            check_bounds(data[:-1], max_depth=50, max_items=10_000)
        except CborBoundsError:
            pass
        else:  # a truncation can still be one complete item only if cbor2 agrees
            cbor2.loads(data[:-1])
