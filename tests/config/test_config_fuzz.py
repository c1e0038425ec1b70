"""The config fuzz target (fuzz/fuzz_config.py), run for a bounded number of iterations."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO_ROOT, fuzz_runs_done

FUZZ = REPO_ROOT / "fuzz" / "fuzz_config.py"


def _target():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("fuzz_config", FUZZ)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_atheris_bounded_run(tmp_path: Path) -> None:
    """2,000 libFuzzer iterations over the loader from the seed corpus."""
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    artifacts.mkdir()
    made = subprocess.run([sys.executable, str(FUZZ), "--make-corpus", str(corpus)],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert made.returncode == 0, made.stderr
    run = subprocess.run(
        [sys.executable, str(FUZZ), "-runs=2000", "-seed=1", "-max_total_time=60",
         "-max_len=4096", f"-artifact_prefix={artifacts}/", str(corpus)],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert fuzz_runs_done(run.stderr) >= 2000, run.stderr[-2000:]
    assert not list(artifacts.iterdir())


def test_seeds_pass_the_invariants() -> None:
    target = _target()
    for seed in target.seeds():
        target.check_one(seed)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_target().seeds()), st.integers(0, 10_000), st.binary(max_size=8))
def test_mutated_seeds_pass_the_invariants(seed: bytes, position: int, insert: bytes) -> None:
    """Without atheris: the same invariants on seeds with bytes spliced in."""
    at = position % (len(seed) + 1)
    _target().check_one(seed[:at] + insert + seed[at:])
