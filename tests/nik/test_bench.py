"""bench/niklist.py runs end to end at a small size and leaves no file behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT


def test_bench_smoke(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "niklist.py"), "--entries", "200000",
         "--lookups", "1000", "--baseline-entries", "10000", "--kdf-runs", "1",
         "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["bytes_per_entry"] == 8.0
    assert report["members_found"] == 500
    assert set(report["lookup"]) == {"block_index", "interpolation_only"}
    assert report["kdf_ms_per_lookup"]["params"] == {"n": 2**16, "r": 8, "p": 1}
    assert list(tmp_path.iterdir()) == []


def test_bench_refuses_to_write_into_the_repository() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "niklist.py"), "--dir", str(REPO_ROOT)],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode != 0 and "inside the repository" in result.stderr
