"""The config fuzz target (fuzz/fuzz_config.py), run for a bounded number of iterations."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO_ROOT
from tests.fuzzrun import bounded_run, load_module, needs_atheris

FUZZ = REPO_ROOT / "fuzz" / "fuzz_config.py"


def _target() -> ModuleType:
    return load_module(FUZZ)


@needs_atheris
def test_atheris_bounded_run(tmp_path: Path) -> None:
    """2,000 libFuzzer iterations over the loader from the seed corpus."""
    bounded_run(FUZZ, 2000, tmp_path, extra=('-max_len=4096',))


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
