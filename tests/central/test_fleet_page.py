"""The fleet page in real headless Chromium (Debian's, driven by Playwright).

Logs in with a token, sees the gates of a site, sees a count change live
(server-sent events, no reload) when a real simulated gate scans, sees an
offline alarm after a gate process is killed, and saves screenshots at desktop
and phone width (tests/artifacts/fleet-*.png).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kiosk.demo import run_demo
from tests.central.helpers import TOKEN, fleet_config, running
from tests.central.test_fleet_counts import _KILLABLE
from tests.conftest import Mosquitto

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium; skips without it locally, fails on CI (install.sh --dev has it)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"chromium not found at {CHROMIUM}")
        pytest.skip("chromium not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        instance = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield instance
        finally:
            instance.close()


def test_login_live_counts_and_offline_alarm(
        tmp_path: Path, mosquitto_factory: type[Mosquitto], browser: Any,
        artifacts_dir: Path) -> None:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    config = fleet_config(tmp_path, broker.port, **{"alarms.offline_after_s": 5})
    with running(config) as fleet:
        child = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(broker.port)],
                                 stdout=subprocess.PIPE)
        try:
            assert child.stdout is not None and child.stdout.readline() == b"up\n"
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(fleet.url)
            assert page.locator("#token").is_visible()  # 401: the login form
            page.fill("#token", "not-the-token-000000")
            page.click("button[type=submit]")
            assert page.locator(".err").is_visible()
            page.fill("#token", TOKEN)
            page.click("button[type=submit]")
            page.wait_for_selector('.card[data-site="site-c"]')
            cookie = next(c for c in page.context.cookies() if c["name"] == "kiosk_fleet")
            assert cookie["httpOnly"] and cookie["value"] != TOKEN
            # A real simulated gate scans its six samples: its site appears, live.
            run_demo(tmp_path / "demo", once=True, broker=(broker.host, broker.port),
                     headless=True, fast=True, out=lambda _: None)
            page.click('.card[data-site="demo-site"]')
            row = page.locator('#gates tr[data-gate="demo-gate"]')
            row.locator("td.allowed").filter(has_text="2").wait_for(timeout=15000)
            assert row.locator("td.denied").inner_text() == "4"
            version = int(page.evaluate("document.body.dataset.version || 0"))
            run_demo(tmp_path / "demo", once=True, broker=(broker.host, broker.port),
                     headless=True, fast=True, out=lambda _: None)
            row.locator("td.allowed").filter(has_text="4").wait_for(timeout=15000)
            assert int(page.evaluate("document.body.dataset.version")) > version  # no reload
            page.screenshot(path=str(artifacts_dir / "fleet-desktop.png"), full_page=True)
            # A gate process killed: last will, then (debounced) the offline alarm.
            child.kill()
            page.locator('#alarms li[data-kind="offline"][data-gate="site-c/g3"]').wait_for(
                timeout=15000)
            phone = browser.new_page(viewport={"width": 390, "height": 844},
                                     device_scale_factor=2)
            phone.context.add_cookies(page.context.cookies())
            phone.goto(fleet.url + "#demo-site")
            phone.wait_for_selector('#gates tr[data-gate="demo-gate"]')
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, "the page must not scroll sideways on a phone"
            phone.screenshot(path=str(artifacts_dir / "fleet-phone.png"), full_page=True)
            text = page.inner_text("body") + phone.inner_text("body")
            assert "Gerbang offline / Gate offline" in text and "Masuk" in text
        finally:
            child.kill()
            child.wait(5)
