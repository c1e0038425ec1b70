"""bench/verify.py runs end to end at a small size and reports what it measured."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kiosk import cborsafe
from kiosk.verify import base45
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize("decoder", ["auto", "python"])
def test_bench_smoke(decoder: str) -> None:
    """``decoder`` picks both accelerators' side: compiled when built, or the references."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "verify.py"), "--seconds", "0.3",
         "--revoked", "70000", "--base45", decoder, "--cbor", decoder],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verify_per_s"] > 0 and report["raw_ecdsa_per_s"] > 0
    assert report["ratio"] == pytest.approx(
        report["verify_per_s"] / report["raw_ecdsa_per_s"], abs=0.002)
    assert report["setup"] == "device" and report["revoked_per_list"] == 70000
    assert report["base45"] == (base45.IMPLEMENTATION if decoder == "auto" else "python")
    assert report["cbor"] == (cborsafe.IMPLEMENTATION if decoder == "auto" else "python")
    assert 550 <= report["qr_chars"] <= 700  # a realistic single-entry certificate
    assert report["rules"] == 0 and "certlogic_us_per_scan" not in report  # --rules 0
