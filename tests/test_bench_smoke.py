"""Every bench/*.py script runs end to end at a tiny size, so none can rot unnoticed.

Scripts are discovered: a new bench script fails this test until it is either
given tiny arguments in :data:`TINY` (and, where it says something checkable,
a look at its report in :data:`CHECKS`) or has a smoke test of its own in
another test file, found by the script's name next to ``bench``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

BENCH = REPO_ROOT / "bench"
SCRIPTS = sorted(path.name for path in BENCH.glob("*.py") if not path.name.startswith("_"))

# Tiny arguments per script; "{tmp}" becomes the test's temporary folder.
TINY: dict[str, list[str]] = {
    "decode.py": ["--runs", "1", "--frames", "1"],
    "outbox.py": ["--writes", "20", "--messages", "200", "--dir", "{tmp}"],
    "revocation.py": ["--entries", "2000"],
    "pipeline.py": ["--runs", "3", "--repeats", "1"],
    "scan.py": ["--tiny"],
    "distribution.py": ["--size", "65536", "--dir", "{tmp}"],
    # verify.py has its own smoke test (tests/verify/test_bench_verify.py); this one adds rules.
    "verify.py": ["--seconds", "0.3", "--rounds", "2", "--revoked", "1000", "--rules", "20"],
}


def _pipeline(report: dict[str, Any]) -> None:
    assert report["runs"] == 3 and report["passages"] == 3
    assert report["pulses_not_ended_by_the_loop"] == 0
    assert report["frame_to_relay_ms_p50"] >= report["floor_bare_zxing_ms_p50"] > 0


def _scan(report: dict[str, Any]) -> None:
    assert report["backends"]
    for backend in report["backends"].values():
        assert backend["idle"]["frames_decoded_every_frame"] == backend["idle"]["frames"]
        assert backend["first_read"]["clean_1"]["adaptive"]["frames_to_decision"] == 1
        assert backend["corpus"]["wrong_reads"] == 0
    if "pyzbar" in report["backends"]:
        assert report["pyzbar_isolation"]["crashes"] == 0


def _distribution(report: dict[str, Any]) -> None:
    # 64 KiB in 12 KiB chunks: 6 of data (the last one short) and the manifest's one.
    assert report["size_bytes"] == 65536 and report["chunks"] == 7
    assert report["installed"] is True and report["hash_matches"] is True
    assert report["time_to_installed_s"] >= report["first_chunk_to_installed_s"] > 0
    assert report["local_install_s"] > 0 and report["gate_peak_rss_kb"] > 0


def _verify(report: dict[str, Any]) -> None:
    # 20 CertLogic rules, all passing the benchmark certificate, at a measured cost.
    assert report["rules"] == 20 and report["rules_applied"] == 20
    assert report["verify_with_rules_per_s"] > 0
    assert report["certlogic_us_per_scan"] == pytest.approx(
        1e6 / report["verify_with_rules_per_s"] - 1e6 / report["verify_per_s"], abs=0.2)
    assert report["ratio_with_rules"] == pytest.approx(
        report["verify_with_rules_per_s"] / report["raw_ecdsa_per_s"], abs=0.002)


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "pipeline.py": _pipeline,
    "scan.py": _scan,
    "distribution.py": _distribution,
    "verify.py": _verify,
}


def smoked_elsewhere(script: str) -> list[Path]:
    """Test files other than this one that run ``bench/<script>`` themselves."""
    pattern = re.compile(rf"bench[\"']?\s*[/,]\s*[\"']?{re.escape(script)}")
    here = Path(__file__).resolve()
    return [
        path
        for path in (REPO_ROOT / "tests").rglob("test_*.py")
        if path.resolve() != here and pattern.search(path.read_text(encoding="utf-8"))
    ]


def test_every_bench_script_is_smoke_tested() -> None:
    untested = [s for s in SCRIPTS if s not in TINY and not smoked_elsewhere(s)]
    assert untested == [], f"bench scripts with no smoke test: {untested} (add them to TINY)"


def test_the_scripts_known_to_be_tested_elsewhere_are_found() -> None:
    assert smoked_elsewhere("niklist.py") and smoked_elsewhere("verify.py")
    assert not smoked_elsewhere("no-such-bench.py")


def _report(stdout: str) -> Any:
    """The JSON report: the whole output (pretty-printed) or its last JSON line."""
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        assert lines, f"no JSON report in: {stdout[-500:]}"
        return json.loads(lines[-1])


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s in TINY])
def test_bench_script_runs_at_a_tiny_size(script: str, tmp_path: Path) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in TINY[script]]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "SDL_VIDEODRIVER": "dummy"}
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = _report(result.stdout)
    assert isinstance(report, dict) and report
    CHECKS.get(script, lambda report: None)(report)
