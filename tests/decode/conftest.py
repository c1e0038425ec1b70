"""Fixtures for the decoder tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from qrgen import save_qr

from kiosk.decode import available_backends


@pytest.fixture
def qr_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``qr_file(text, name="qr.png", **render)`` → path of a rendered QR image."""

    def make(text: str, name: str = "qr.png", **render: object) -> Path:
        return save_qr(tmp_path / name, text, **render)  # type: ignore[arg-type]

    return make


@pytest.fixture(params=available_backends())
def backend(request: pytest.FixtureRequest) -> str:
    """Each decoder backend installed on this machine."""
    return str(request.param)
