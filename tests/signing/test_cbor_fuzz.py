"""The bounded CBOR reader's fuzz target: a bounded libFuzzer run and its hypothesis fallback."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, fuzz_runs_done

FUZZ = REPO_ROOT / "fuzz" / "fuzz_cbor.py"
HARNESS = REPO_ROOT / "fuzz" / "cbor_harness.py"


def _load_harness():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("cbor_harness", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_atheris_bounded_run(tmp_path: Path) -> None:
    """5,000 libFuzzer iterations over every format's limits, from the seed corpus."""
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    artifacts.mkdir()
    made = subprocess.run([sys.executable, str(FUZZ), "--make-corpus", str(corpus)],
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert made.returncode == 0, made.stderr
    run = subprocess.run(
        [sys.executable, str(FUZZ), "-runs=5000", "-seed=1", "-max_total_time=60",
         f"-artifact_prefix={artifacts}/", str(corpus)],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert fuzz_runs_done(run.stderr) >= 5000, run.stderr[-2000:]
    assert not list(artifacts.iterdir())


def test_hypothesis_fallback_of_the_same_target() -> None:
    assert _load_harness().run_hypothesis(examples=400) > 400


def test_the_harness_catches_a_lenient_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """The invariants can fail: a reader that lets tag 28 through is caught at once."""
    import cbor2

    from kiosk import cborsafe

    harness = _load_harness()
    monkeypatch.setattr(cborsafe, "loads", lambda data, limits: cbor2.loads(data))
    with pytest.raises(AssertionError):
        harness.check_one(b"\x02" + bytes.fromhex("82d81c6178d81d00"))  # 28("x"), 29(0)
