"""Shared material for the NIK tests: an authority key, small KDF parameters, lists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.nik.build import BuildResult, build_list
from kiosk.nik.kdf import KdfParams
from kiosk.signing import generate_authority_key

# Tests use N=2^4 so a list of thousands builds in well under a second; the
# production parameters are asserted separately (test_statuslist.py).
FAST_KDF = KdfParams(n=2**4, r=8, p=1)
TODAY = date(2026, 11, 26)
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
AUTHORITY = generate_authority_key()
TRUSTED: list[Ed25519PublicKey] = [AUTHORITY.public_key()]
MEMBERS = [
    "3171014506990001",  # Jakarta, woman born 1999-06-05
    "3273012301850002",
    "9601010101000003",  # Papua Barat Daya (2022 code)
    "1101016902000004",  # woman born 29 Feb 2000
]
NON_MEMBERS = ["3171014506990002", "3273012301850001", "5171011212120001"]


@dataclass
class ListFactory:
    """Builds signed lists into a folder."""

    folder: Path

    def __call__(
        self,
        niks: list[str] | None = None,
        *,
        version: int = 1,
        issued_at: datetime = NOW - timedelta(hours=1),
        lifetime: timedelta = timedelta(days=7),
        key: Ed25519PrivateKey = AUTHORITY,
    ) -> BuildResult:
        return build_list(
            MEMBERS if niks is None else niks,
            self.folder / f"central-v{version}",
            key,
            version=version,
            issued_at=issued_at,
            lifetime=lifetime,
            kdf=FAST_KDF,
        )


@pytest.fixture
def make_list(tmp_path: Path) -> ListFactory:
    """``make_list(niks, version=..)`` → BuildResult of a signed list (fast KDF)."""
    return ListFactory(tmp_path)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


WallClock = Callable[[], datetime]
