"""fuzz/fuzz_certlogic.py: a bounded libFuzzer run, and the same invariants under hypothesis."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.certlogic.suites import shared_dir
from tests.conftest import REPO_ROOT, fuzz_runs_done

FUZZ = REPO_ROOT / "fuzz" / "fuzz_certlogic.py"


def _target() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_certlogic", FUZZ)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_atheris_bounded_run(tmp_path: Path) -> None:
    """20,000 libFuzzer iterations (~2 s) from the suites' expressions as seeds."""
    shared_dir("certlogic")
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    artifacts.mkdir()
    made = subprocess.run(
        [sys.executable, str(FUZZ), "--make-corpus", str(corpus)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert made.returncode == 0, made.stderr
    assert len(list(corpus.iterdir())) > 250
    run = subprocess.run(
        [
            sys.executable,
            str(FUZZ),
            "-runs=20000",
            "-seed=1",
            "-max_total_time=60",
            f"-artifact_prefix={artifacts}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert fuzz_runs_done(run.stderr) >= 20000, run.stderr[-2000:]
    assert not list(artifacts.iterdir())


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
