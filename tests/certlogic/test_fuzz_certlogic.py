"""fuzz/fuzz_certlogic.py: a bounded libFuzzer run, and the same invariants under hypothesis."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.certlogic.suites import shared_dir
from tests.conftest import REPO_ROOT
from tests.fuzzrun import bounded_run, load_module, needs_atheris

FUZZ = REPO_ROOT / "fuzz" / "fuzz_certlogic.py"


def _target() -> ModuleType:
    return load_module(FUZZ)


def _more_than(corpus: Path, count: int) -> None:
    assert len(list(corpus.iterdir())) > count  # shared seeds + own samples


@needs_atheris
def test_atheris_bounded_run(tmp_path: Path) -> None:
    """20,000 libFuzzer iterations (~2 s) from the suites' expressions as seeds."""
    shared_dir("certlogic")
    bounded_run(FUZZ, 20000, tmp_path, corpus_check=lambda corpus: _more_than(corpus, 250))


TARGET = _target()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_same_invariants_without_atheris(data: bytes) -> None:
    TARGET.check_one(b"\x01" + data)  # the tree code: every input is an expression
    TARGET.check_one(b"\x00" + data)


def test_decoder_reaches_deep_and_valid_expressions() -> None:
    from kiosk.certlogic import CertLogicError, compile_expression

    deep, _ = TARGET.decode(b"\x01" + b"\x07\x01\x01" * 80)
    with pytest.raises(CertLogicError, match="nested deeper"):
        compile_expression(deep)
    expr, context = TARGET.decode(b'\x00[{"var": "x"}, {"x": 3}]')
    assert compile_expression(expr).run(context) == 3
