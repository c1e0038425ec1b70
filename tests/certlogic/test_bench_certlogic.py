"""bench/certlogic.py runs end to end at a small size and reports what it measured."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.certlogic.suites import shared_dir
from tests.conftest import REPO_ROOT


def test_bench_smoke() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "certlogic.py"), "--seconds", "0.3",
         "--rounds", "2", "--revoked", "20000", "--valuesets", str(shared_dir("valuesets"))],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rules"] == 20 and report["rules_applicable"] == 15
    assert report["verify_per_s"] > report["verify_and_rules_per_s"] > 0
    assert report["ratio"] == pytest.approx(
        report["verify_and_rules_per_s"] / report["verify_per_s"], abs=0.002)
    assert 0 < report["rules_us_per_scan"] < 10_000  # a real figure, not a placeholder
    assert report["within_budget"] == (report["rules_us_per_scan"] <= report["budget_us"])
    assert report["revoked_per_list"] == 20000


def test_bench_refuses_missing_value_sets() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "certlogic.py"), "--seconds", "0.1",
         "--valuesets", str(REPO_ROOT / "no-such-folder")],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 2 and "value sets not found" in result.stderr
