"""bench/fleet.py at a tiny size: it runs, and its figures are plausible."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import REPO_ROOT


def test_fleet_bench_tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT / "bench"))  # as when run as a script: _ports
    spec = importlib.util.spec_from_file_location("bench_fleet", REPO_ROOT / "bench" / "fleet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_fleet"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    result = module.main(["--gates", "12", "--sites", "3", "--seconds", "2"])
    assert result["gates"] == 12 and result["probes"] >= 4 and result["probes_missed"] == 0
    assert result["handled_msgs_per_s"] > 0
    assert 0 < result["broker_lag_p50_ms"] <= result["lag_p50_ms"] < 2000
    assert 10 < result["service_rss_mb"] < 300
