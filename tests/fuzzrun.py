"""Running the fuzz targets in fuzz/ from the test suite: one bounded libFuzzer run each."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO_ROOT

needs_atheris = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None, reason="atheris not installed"
)


def load_module(path: Path) -> ModuleType:
    """Import a fuzz/ script as a module (its seeds, checks and hypothesis fallback)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runs_done(stderr: str) -> int:
    """How many inputs libFuzzer reports; it may overshoot ``-runs`` a little."""
    found = re.findall(r"Done (\d+) runs", stderr)
    return int(found[-1]) if found else 0


def bounded_run(
    script: Path,
    runs: int,
    tmp_path: Path,
    *,
    extra: Sequence[str] = (),
    corpus_check: Callable[[Path], None] | None = None,
    make_timeout: float = 60,
    run_timeout: float = 120,
) -> None:
    """Make the script's seed corpus, run ``runs`` iterations, require no crash artifact."""
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    artifacts.mkdir()
    made = subprocess.run([sys.executable, str(script), "--make-corpus", str(corpus)],
                          capture_output=True, text=True, timeout=make_timeout, cwd=REPO_ROOT)
    assert made.returncode == 0, made.stderr
    if corpus_check is not None:
        corpus_check(corpus)
    run = subprocess.run(
        [sys.executable, str(script), f"-runs={runs}", "-seed=1", "-max_total_time=60", *extra,
         f"-artifact_prefix={artifacts}/", str(corpus)],
        capture_output=True, text=True, timeout=run_timeout, cwd=REPO_ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert runs_done(run.stderr) >= runs, run.stderr[-2000:]
    assert not list(artifacts.iterdir())
