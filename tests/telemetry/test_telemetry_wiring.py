"""Telemetry built from the configuration, and the status sources."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kiosk.config import load_config
from kiosk.decision import Decision, Reason
from kiosk.errors import ConfigError
from kiosk.telemetry.payloads import clean_status_fields
from kiosk.telemetry.wiring import StatusSources, make_publisher, open_count_store, verifier_status


@dataclass(frozen=True)
class FakeHealth:
    mode: str = "stale"
    bundle_version: int | None = 9
    bundle_age_s: float | None = 90000.0
    clock_state: str = "held"
    signers: int = 3


class FakeVerifier:
    def health(self) -> FakeHealth:
        return FakeHealth()


def test_status_sources_merge_and_survive_a_broken_source() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    sources = StatusSources(verifier_status(FakeVerifier()), broken)
    sources.add(lambda: {"decoder": "zxing", "camera_fps": 15.0})
    fields = clean_status_fields(sources())
    assert fields["mode"] == "stale" and fields["bundle_version"] == 9
    assert fields["clock_state"] == "held" and fields["decoder"] == "zxing"
    assert fields["last_error"] is None  # not reported by anyone: null, not missing
    assert verifier_status(object())() == {}  # a verifier without health(): nothing


def test_status_fields_drop_unknown_keys_and_wrong_types() -> None:
    fields = clean_status_fields(
        {"mode": 3, "decoder": "x" * 500, "camera_fps": float("nan"), "name": "BUDI"}
    )
    assert fields["mode"] is None and fields["camera_fps"] is None
    assert fields["decoder"] == "x" * 80 and "name" not in fields


def test_store_and_publisher_from_config(tmp_path: Path) -> None:
    config = load_config(
        None,
        {
            "device.data_dir": str(tmp_path),
            "device.timezone": "Asia/Makassar",
            "counts.bucket_s": 300,
            "mqtt.enabled": False,
        },
    )
    with open_count_store(config) as store:
        assert store.bucket_s == 300
        store.record(
            Decision(allowed=True, reason=Reason.OK), datetime(2024, 5, 1, 16, 30, tzinfo=UTC)
        )
        # 16:30 UTC is 00:30 WITA on 2 May.
        assert store.day_totals("2024-05-02")["allowed"] == 1
        publisher = make_publisher(config, store, FakeVerifier())
        publisher.start()  # disabled: nothing starts
        assert not publisher.connected
        publisher.stop()


def test_unknown_timezone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"device\.timezone"):
        load_config(None, {"device.timezone": "Mars/Olympus"})


def test_status_says_how_long_until_the_bundle_goes_stale_and_expires(tmp_path: Path) -> None:
    from datetime import timedelta

    from kiosk.verify import TrustMaterial, TrustStore, Verifier
    from kiosk.verify.clock import FixedProbe, TrustedClock

    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    material = TrustMaterial(store=TrustStore([]), version=4, issued_at=now - timedelta(days=1),
                             max_age_s=7 * 86400, grace_s=14 * 86400)
    clock = TrustedClock(lambda: now, FixedProbe(True), tmp_path / "clock.json")
    fields = clean_status_fields(verifier_status(Verifier(material, clock))())
    assert fields["bundle_stale_in_s"] == 6 * 86400
    assert fields["bundle_expires_in_s"] == 20 * 86400
    assert fields["bundle_version"] == 4
    # A verifier without bundle metadata (dev mode, a stand-in): nothing invented.
    assert clean_status_fields(verifier_status(FakeVerifier())())["bundle_stale_in_s"] is None
