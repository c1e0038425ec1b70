"""Draw the gate wiring diagram as hardware/wiring.svg and hardware/wiring.png.

One list of primitives is rendered twice (SVG by hand, PNG with Pillow), so the
two images cannot drift apart. Pins are taken from the defaults of
``kiosk.config.schema.GateConfig`` (the values shipped in config/kiosk.toml).

    .venv/bin/python hardware/wiring.py
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from PIL import Image, ImageDraw, ImageFont

from kiosk.config.schema import GateConfig

HERE = Path(__file__).resolve().parent
W, H = 1500, 980

# BCM → physical header pin (40-pin header, same on Pi 4 and Pi 5).
HEADER = {12: 32, 13: 33, 16: 36, 17: 11, 22: 15, 23: 16, 24: 18, 25: 22, 27: 13}


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int
    title: str
    lines: tuple[str, ...] = ()
    fill: str = "#f4f6fa"


@dataclass(frozen=True)
class Wire:
    points: tuple[tuple[int, int], ...]
    color: str
    label: str = ""


@dataclass(frozen=True)
class Label:
    x: int
    y: int
    text: str
    size: int = 15
    color: str = "#222222"


def primitives() -> tuple[list[Box], list[Wire], list[Label]]:
    g = GateConfig()
    pin = {
        "relay": g.relay_pin,
        "green": g.green_led_pin,
        "red": g.red_led_pin,
        "amber": g.amber_led_pin,
        "buzzer": g.buzzer_pin or 13,
        "passage": g.passage_pin,
        "fire": g.fire_alarm_pin or 24,
        "exit": 25,
        "arm": 16,
    }
    rows = [
        ("relay", "relay IN (high trigger)"),
        ("green", "green LED"),
        ("red", "red LED"),
        ("amber", "amber LED"),
        ("buzzer", "buzzer driver"),
        ("passage", "passage sensor (opto)"),
        ("fire", "fire alarm NC (opto)"),
        ("exit", "exit button (optional)"),
        ("arm", "arm switch (optional)"),
    ]
    ys = {name: 170 + i * 62 for i, (name, _) in enumerate(rows)}
    pi_lines = (
        *(f"GPIO{pin[n]:<2} (pin {HEADER.get(pin[n], '?'):>2})  {what}" for n, what in rows),
        "GND (pins 6, 9, 14, 20, 25, 30, 34, 39)",
        "5V (pins 2, 4) to relay board VCC",
    )
    boxes = [
        Box(40, 110, 470, 690, "Raspberry Pi 4 / 5 (BCM numbering)", pi_lines, "#e9f3e9"),
        Box(
            640,
            110,
            330,
            170,
            "1-ch relay board, opto-isolated",
            (
                "5 V coil, jumper = HIGH trigger",
                "IN: 10 kOhm pull-down to GND",
                "COM / NO: dry contact",
            ),
        ),
        Box(
            1090,
            110,
            370,
            230,
            "Turnstile controller",
            (
                "OPEN input (dry contact, NO)",
                "FIRE / FREE input (NC, own loop)",
                "arm position switch out",
                "24 V supply for its sensors",
            ),
        ),
        Box(
            640,
            330,
            330,
            190,
            "Indicator + buzzer driver",
            (
                "ULN2003A (or 2N2222 + 1 kOhm)",
                "LEDs 12 V panel lamps or",
                "5 mm LED + 330 Ohm direct",
                "active buzzer 5 V",
            ),
        ),
        Box(
            640,
            570,
            330,
            170,
            "2-ch optocoupler input module",
            (
                "PC817, 24 V side: sensor + fire",
                "3.3 V side: open collector",
                "to GPIO, Pi pull-up on",
            ),
        ),
        Box(
            1090,
            420,
            370,
            120,
            "Through-beam passage sensor",
            ("NPN output, 24 V", "output ON while beam broken"),
        ),
        Box(
            1090,
            590,
            370,
            120,
            "Fire alarm panel",
            ("volt-free NC contact, opens in alarm", "(cut wire = alarm = gate open)"),
        ),
        Box(
            1090,
            760,
            370,
            130,
            "Optional contacts (to GND)",
            ("exit push button, NO", "arm-position microswitch, NO"),
        ),
    ]
    wires = [
        Wire(((510, ys["relay"]), (600, ys["relay"]), (600, 180), (640, 180)), "#c0392b"),
        Wire(((970, 230), (1090, 230)), "#7f8c8d", "COM/NO"),
        Wire(((510, ys["green"]), (590, ys["green"]), (590, 380), (640, 380)), "#27ae60"),
        Wire(((510, ys["red"]), (580, ys["red"]), (580, 410), (640, 410)), "#c0392b"),
        Wire(((510, ys["amber"]), (570, ys["amber"]), (570, 440), (640, 440)), "#d68910"),
        Wire(((510, ys["buzzer"]), (560, ys["buzzer"]), (560, 470), (640, 470)), "#8e44ad"),
        Wire(((510, ys["passage"]), (600, ys["passage"]), (600, 620), (640, 620)), "#2471a3"),
        Wire(((510, ys["fire"]), (590, ys["fire"]), (590, 660), (640, 660)), "#e67e22"),
        Wire(((970, 620), (1030, 620), (1030, 480), (1090, 480)), "#2471a3", "24 V NPN"),
        Wire(((970, 660), (1040, 660), (1040, 650), (1090, 650)), "#e67e22", "NC loop"),
        Wire(((1460, 650), (1485, 650), (1485, 300), (1460, 300)), "#e67e22"),
        Wire(
            (
                (510, ys["exit"]),
                (545, ys["exit"]),
                (545, 752),
                (1060, 752),
                (1060, 800),
                (1090, 800),
            ),
            "#566573",
        ),
        Wire(
            ((510, ys["arm"]), (532, ys["arm"]), (532, 766), (1045, 766), (1045, 840), (1090, 840)),
            "#566573",
        ),
    ]
    labels = [
        Label(1100, 572, "2nd NC contact of the panel -> turnstile FIRE input", 13, "#e67e22"),
        Label(
            40,
            40,
            "kiosk gate wiring: Pi + relay board + turnstile + passage sensor + fire alarm",
            22,
            "#111111",
        ),
        Label(
            40,
            72,
            "Pins = config/kiosk.toml defaults (see hardware/pinmap.md). "
            "All grounds common except the opto-isolated 24 V side.",
            15,
        ),
        Label(
            40,
            830,
            "Safe at power-on and when the process is killed: GPIO 9-27 have pull-downs "
            "at reset; config.txt gpio=17=op,dl",
            15,
        ),
        Label(
            40,
            855,
            "drives the relay pin low from the first stage of boot; the 10 kOhm pull-down "
            "on the relay board IN holds it off if the Pi hangs or is removed.",
            15,
        ),
        Label(
            40,
            880,
            "The fire panel's second NC contact goes straight to the turnstile's FIRE "
            "input: free passage does not depend on the Pi.",
            15,
        ),
        Label(
            40,
            905,
            "Never connect 24 V sensor outputs to a GPIO: always through the optocoupler "
            "module (GPIO is 3.3 V and not 5 V tolerant).",
            15,
        ),
    ]
    return boxes, wires, labels


def svg(boxes: list[Box], wires: list[Wire], labels: list[Label]) -> str:
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Arial, sans-serif">',
        f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
    ]
    for b in boxes:
        out.append(
            f'<rect x="{b.x}" y="{b.y}" width="{b.w}" height="{b.h}" rx="8" fill="{b.fill}" '
            'stroke="#34495e" stroke-width="2"/>'
        )
        out.append(_svg_text(b.x + 12, b.y + 26, b.title, 17, "#111111", bold=True))
        for i, line in enumerate(b.lines):
            step = 62 if b.title.startswith("Raspberry") else 26
            y = b.y + 60 + i * step if i < 9 or step == 26 else b.y + 60 + 9 * 62 + (i - 9) * 26
            out.append(_svg_text(b.x + 12, y, line, 14, "#222222"))
    for w in wires:
        pts = " ".join(f"{x},{y}" for x, y in w.points)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{w.color}" stroke-width="3"/>')
        if w.label:
            x, y = _mid(w)
            out.append(_svg_text(x + 4, y - 6, w.label, 13, w.color))
    for lb in labels:
        out.append(_svg_text(lb.x, lb.y, lb.text, lb.size, lb.color))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _svg_text(x: int, y: int, text: str, size: int, color: str, bold: bool = False) -> str:
    weight = ' font-weight="bold"' if bold else ""
    return f'<text x="{x}" y="{y}" font-size="{size}" fill="{color}"{weight}>{escape(text)}</text>'


def _mid(w: Wire) -> tuple[int, int]:
    (x1, y1), (x2, y2) = w.points[-2], w.points[-1]
    return (x1 + x2) // 2 - 30, (y1 + y2) // 2


def png(boxes: list[Box], wires: list[Wire], labels: list[Label]) -> Image.Image:
    image = Image.new("RGB", (W, H), "#ffffff")
    draw = ImageDraw.Draw(image)

    def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        try:
            return ImageFont.truetype("DejaVuSans.ttf", size)
        except OSError:
            return ImageFont.load_default(size=size)

    for b in boxes:
        draw.rounded_rectangle(
            (b.x, b.y, b.x + b.w, b.y + b.h), 8, fill=b.fill, outline="#34495e", width=2
        )
        draw.text((b.x + 12, b.y + 26), b.title, fill="#111111", font=font(17), anchor="ls")
        for i, line in enumerate(b.lines):
            step = 62 if b.title.startswith("Raspberry") else 26
            y = b.y + 60 + i * step if i < 9 or step == 26 else b.y + 60 + 9 * 62 + (i - 9) * 26
            draw.text((b.x + 12, y), line, fill="#222222", font=font(14), anchor="ls")
    for w in wires:
        draw.line(list(w.points), fill=w.color, width=3, joint="curve")
        if w.label:
            x, y = _mid(w)
            draw.text((x + 4, y - 6), w.label, fill=w.color, font=font(13), anchor="ls")
    for lb in labels:
        draw.text((lb.x, lb.y), lb.text, fill=lb.color, font=font(lb.size), anchor="ls")
    return image


def main() -> None:
    boxes, wires, labels = primitives()
    (HERE / "wiring.svg").write_text(svg(boxes, wires, labels), encoding="utf-8")
    png(boxes, wires, labels).save(HERE / "wiring.png", optimize=True)
    print(HERE / "wiring.svg", HERE / "wiring.png")


if __name__ == "__main__":
    main()
