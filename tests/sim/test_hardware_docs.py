"""hardware/ has the wiring diagram (SVG + PNG), a pin map matching the config, and a BOM."""

from __future__ import annotations

from PIL import Image

from kiosk.config.schema import GateConfig
from tests.conftest import REPO_ROOT

HW = REPO_ROOT / "hardware"


def test_diagram_images_exist_and_match_in_size() -> None:
    svg = (HW / "wiring.svg").read_text()
    assert svg.startswith("<svg") and "GPIO17" in svg
    with Image.open(HW / "wiring.png") as png:
        assert png.size == (1500, 980)


def test_pinmap_lists_every_default_pin() -> None:
    text = (HW / "pinmap.md").read_text()
    g = GateConfig()
    for key in (
        "relay_pin",
        "green_led_pin",
        "red_led_pin",
        "amber_led_pin",
        "buzzer_pin",
        "passage_pin",
        "fire_alarm_pin",
    ):
        pin = getattr(g, key)
        assert f"| GPIO{pin} |" in text, key
        assert f"`gate.{key}`" in text, key
    assert "gpio=17,27,22,12,13=op,dl" in text


def test_bom_has_part_numbers() -> None:
    text = (HW / "bom.md").read_text()
    for part in ("ULN2003A", "PC817", "HDR-30-24", "SC0874"):
        assert part in text
