"""The fuzz target, run for a bounded number of iterations; bundle-parser properties."""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.errors import DocumentError
from kiosk.verify.bundle import TrustBundle
from kiosk.verify.cborlimits import CborBoundsError, check_bounds
from tests.conftest import REPO_ROOT, fuzz_runs_done

FUZZ = REPO_ROOT / "fuzz" / "fuzz_verify.py"
HARNESS = REPO_ROOT / "fuzz" / "harness.py"


def _load_target():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("harness", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_atheris_bounded_run(tmp_path: Path) -> None:
    """3,000 libFuzzer iterations over the whole chain (~3 s) from the seed corpus."""
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    artifacts.mkdir()
    made = subprocess.run([sys.executable, str(FUZZ), "--make-corpus", str(corpus)],
                          capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert made.returncode == 0, made.stderr
    assert len(list(corpus.iterdir())) > 400  # shared DCC PREFIX strings + own samples
    run = subprocess.run(
        [sys.executable, str(FUZZ), "-runs=3000", "-seed=1", "-max_total_time=60",
         f"-artifact_prefix={artifacts}/", str(corpus)],
        capture_output=True, text=True, timeout=180, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert fuzz_runs_done(run.stderr) >= 3000, run.stderr[-2000:]
    assert not list(artifacts.iterdir())


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
