"""Server-rendered SVG chart: entries (allowed) and refusals per local hour of one site."""

from __future__ import annotations

from collections import Counter
from html import escape

WIDTH, HEIGHT = 480, 180
_LEFT, _BOTTOM, _TOP = 34, 22, 26


def site_chart(site: str, hours: list[Counter[str]]) -> str:
    """A 24-bar chart of ``allowed`` (green) with ``denied`` (red) on top, per local hour."""
    peak = max([h["allowed"] + h["denied"] for h in hours] + [1])
    scale = (HEIGHT - _BOTTOM - _TOP) / peak
    slot = (WIDTH - _LEFT - 6) / 24
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="Masuk per jam / Entries per hour: {escape(site)}">',
        "<style>text{font:11px sans-serif;fill:#444}.a{fill:#2e7d32}.d{fill:#c62828}"
        ".g{stroke:#ddd}</style>",
        f'<text x="{_LEFT}" y="14">Masuk per jam / Entries per hour — {escape(site)}</text>',
    ]
    base = HEIGHT - _BOTTOM
    for tick in (0, peak // 2, peak):
        y = base - tick * scale
        parts.append(f'<line class="g" x1="{_LEFT}" x2="{WIDTH - 4}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text x="2" y="{y + 4:.1f}">{tick}</text>')
    for index, counts in enumerate(hours):
        x = _LEFT + index * slot + 1
        allowed, denied = counts["allowed"], counts["denied"]
        h_a, h_d = allowed * scale, denied * scale
        title = f"{index:02d}:00 — masuk/allowed {allowed}, ditolak/denied {denied}"
        parts.append(f"<g><title>{title}</title>")
        parts.append(
            f'<rect class="a" x="{x:.1f}" y="{base - h_a:.1f}" width="{slot - 2:.1f}" '
            f'height="{h_a:.1f}"/>'
        )
        parts.append(
            f'<rect class="d" x="{x:.1f}" y="{base - h_a - h_d:.1f}" width="{slot - 2:.1f}" '
            f'height="{h_d:.1f}"/></g>'
        )
        if index % 3 == 0:
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 6}">{index:02d}</text>')
    parts.append("</svg>")
    return "".join(parts)
