"""The fleet page in real headless Chromium (Debian's, driven by Playwright).

Logs in with a token, sees the gates of a site, sees a count change live
(server-sent events, no reload) when a real simulated gate scans, sees an
offline alarm after a gate process is killed. On a phone (390x844) every gate
is a card of bilingual label/value lines: nothing scrolls sideways, and the
cards stay live. Both save screenshots (tests/artifacts/fleet-desktop.png,
fleet-phone.png; docs/fleet/page-*.png are copies of them).
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
from tests.central.helpers import TOKEN, RawGate, fleet_config, minutes_ago, running
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
            text = page.inner_text("body")
            assert "Gerbang offline / Gate offline" in text and "Masuk" in text
        finally:
            child.kill()
            child.wait(5)


PHONE = {"width": 390, "height": 844}
INSIDE = """el => { const r = el.getBoundingClientRect();
  return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth; }"""
LABEL = "(el, part) => getComputedStyle(el, part).content"


def test_a_phone_shows_each_gate_as_a_live_card_without_sideways_scrolling(
        tmp_path: Path, mosquitto_factory: type[Mosquitto], browser: Any,
        artifacts_dir: Path) -> None:
    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    with running(fleet_config(tmp_path, broker.port)) as fleet:
        # A second gate with long texts that a table cell would not wrap.
        other = RawGate(broker.host, broker.port, "demo-site", "gate-timur-pintu-darurat-02")
        try:
            other.online()
            other.status(minutes_ago(1), last_error="camera: /dev/video0 unplugged " * 3,
                         decoder="zbar-with-a-very-long-decoder-name")
            run_demo(tmp_path / "demo", once=True, broker=(broker.host, broker.port),
                     headless=True, fast=True, out=lambda _: None)
            phone = browser.new_page(viewport=PHONE, device_scale_factor=2)
            phone.goto(fleet.url + "/login")
            phone.fill("#token", TOKEN)
            phone.click("button[type=submit]")
            phone.goto(fleet.url + "#demo-site")
            card = phone.locator('#gates tr[data-gate="demo-gate"]')
            card.locator("td.allowed").filter(has_text="2").wait_for(timeout=15000)
            card.locator("td.denied").filter(has_text="4").wait_for(timeout=15000)
            phone.locator('#gates tr[data-gate="gate-timur-pintu-darurat-02"]').wait_for()
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            assert phone.evaluate(
                "[...document.querySelectorAll('section, .scroll, #gates')]"
                ".every(e => e.scrollWidth <= e.clientWidth + 1)"), "a box scrolls sideways"
            head = phone.locator("#gates thead").bounding_box()  # kept for screen readers
            assert head is not None and head["height"] <= 1  # the labels are on the cells
            for gate in ("demo-gate", "gate-timur-pintu-darurat-02"):
                row = phone.locator(f'#gates tr[data-gate="{gate}"]')
                status, seen = row.locator("td").nth(1), row.locator("td").nth(2)
                for td in (status, seen, row.locator("td").last):
                    td.scroll_into_view_if_needed()
                    assert td.is_visible() and td.evaluate(INSIDE), (gate, td.inner_text())
                assert status.inner_text() in ("daring / online", "luring / offline")
                assert seen.inner_text() != "—"
                # One card per gate: its cells are stacked lines, not table columns.
                boxes = [b for b in (row.locator("td").nth(i).bounding_box() for i in range(3))
                         if b is not None]
                assert len(boxes) == 3 and boxes[0]["y"] < boxes[1]["y"] < boxes[2]["y"]
            # Every line is labelled in both languages; the status keeps its colour.
            status = card.locator("td").nth(1)
            assert status.evaluate(LABEL, "::before") == '"Status"'
            allowed = card.locator("td.allowed")
            assert allowed.evaluate(LABEL, "::before") == '"Masuk hari ini"'
            assert allowed.evaluate(LABEL, "::after") == '"/ Allowed today"'
            assert card.locator("td").nth(2).evaluate(LABEL, "::after") == '"/ Last seen"'
            colour = status.evaluate("el => getComputedStyle(el).color")
            assert colour in ("rgb(46, 125, 50)", "rgb(198, 40, 40)"), colour  # --ok / --bad
            # Live: the demo gate scans again, the card changes without a reload.
            version = int(phone.evaluate("document.body.dataset.version || 0"))
            run_demo(tmp_path / "demo", once=True, broker=(broker.host, broker.port),
                     headless=True, fast=True, out=lambda _: None)
            card.locator("td.allowed").filter(has_text="4").wait_for(timeout=15000)
            card.locator("td.denied").filter(has_text="8").wait_for(timeout=15000)
            assert int(phone.evaluate("document.body.dataset.version")) > version
            assert card.locator("td.allowed").evaluate(INSIDE)
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            phone.screenshot(path=str(artifacts_dir / "fleet-phone.png"), full_page=True)
        finally:
            other.close()


def test_gates_behind_or_near_expiry_and_command_outcomes_show_live(
        tmp_path: Path, mosquitto_factory: type[Mosquitto], browser: Any,
        artifacts_dir: Path) -> None:
    from tests.central.test_fleet_distribution import report

    broker = mosquitto_factory(workdir=tmp_path)
    broker.start()
    config = fleet_config(tmp_path, broker.port)
    g1 = RawGate(broker.host, broker.port, "mall", "g1")
    g2 = RawGate(broker.host, broker.port, "mall", "g2")
    try:
        with running(config) as fleet:
            for gate, version, stale_in in ((g1, 8, 6 * 86400), (g2, 7, 5 * 3600)):
                gate.online()
                gate.status(minutes_ago(0), bundle_version=version, mode="fresh",
                            bundle_stale_in_s=stale_in, dist_error="trust: format"
                            if gate is g2 else None)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(fleet.url)
            page.fill("#token", TOKEN)
            page.click("button[type=submit]")
            behind = page.locator('#gates tr[data-gate="g2"] td.warn')
            behind.filter(has_text="behind v8").wait_for(timeout=15000)
            text = behind.inner_text()
            assert "stale in 4 " in text and "trust: format" in text  # 5 h less the seconds gone
            assert page.locator('#gates tr[data-gate="g1"] td.warn').count() == 0
            # Outcomes arrive live: one carried out, one refused, and a diagnostics report.
            at = minutes_ago(0)
            g1.command_outcome("command.open_once", at)
            g2.command_outcome("command_refused.replayed", at)
            g1.publish("events", report("mall/g1", at, clock=("ok", "synchronised"),
                                        camera_rate=("warn", "3.0 frames/s over 60 s")))
            page.locator('#commands li[data-event="command.open_once"]').wait_for(timeout=15000)
            refused = page.locator('#commands li[data-event="command_refused.replayed"]')
            refused.wait_for(timeout=15000)
            assert "refused: replayed" in refused.inner_text()
            diag = page.locator('#diagnostics li[data-gate="g1"]')
            diag.wait_for(timeout=15000)
            assert "camera_rate: warn" in diag.inner_text()
            page.screenshot(path=str(artifacts_dir / "fleet-distribution.png"), full_page=True)
    finally:
        g1.close()
        g2.close()
