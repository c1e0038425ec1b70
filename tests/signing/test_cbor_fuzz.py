"""The bounded CBOR reader's fuzz target: a bounded libFuzzer run and its hypothesis fallback."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO_ROOT
from tests.fuzzrun import bounded_run, load_module, needs_atheris

FUZZ = REPO_ROOT / "fuzz" / "fuzz_cbor.py"
HARNESS = REPO_ROOT / "fuzz" / "cbor_harness.py"


def _load_harness() -> ModuleType:
    return load_module(HARNESS)


@needs_atheris
def test_atheris_bounded_run(tmp_path: Path) -> None:
    """5,000 libFuzzer iterations over every format's limits, from the seed corpus."""
    bounded_run(FUZZ, 5000, tmp_path)


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
