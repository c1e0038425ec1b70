"""The DID trust-list fuzz target (fuzz/fuzz_didtrust.py), run for a bounded number of runs."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO_ROOT
from tests.fuzzrun import bounded_run, load_module, needs_atheris

FUZZ = REPO_ROOT / "fuzz" / "fuzz_didtrust.py"


@cache
def _target() -> ModuleType:
    return load_module(FUZZ)


@cache
def _seeds() -> tuple[bytes, ...]:
    return tuple(_target().seeds())


@needs_atheris
def test_atheris_bounded_run(tmp_path: Path) -> None:
    """2,000 libFuzzer iterations over the DID reader from the seed corpus."""
    bounded_run(FUZZ, 2000, tmp_path, extra=("-max_len=8192",))


def test_seeds_pass_the_invariants() -> None:
    target = _target()
    for seed in _seeds():
        target.check_one(seed)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5), st.integers(0, 10_000), st.binary(max_size=8))
def test_mutated_seeds_pass_the_invariants(which: int, position: int, insert: bytes) -> None:
    """Without atheris: the same invariants on seeds with bytes spliced in."""
    seed = _seeds()[which % len(_seeds())]
    at = position % (len(seed) + 1)
    _target().check_one(seed[:at] + insert + seed[at:])
